/* Reductions (mt_array_reduce, mt_reduce_fused) against an independent reference: plain loops
 * over the view's elements in C order, reading the host copy of the data through the view's own
 * offset and strides, accumulating floats in long double and integers with explicit wrap-around.
 * Every case runs on the device under test (MLTRAIN_TEST_DEVICE, default host); the interp_*
 * cases repeat the main ones on the host with MLTRAIN_NO_CC=1 (the generic loop and the
 * expression interpreter), cuda_source_compiles checks the CUDA rendering with nvcc where one is
 * installed, and opencl_matches_reference runs a few kernels on OpenCL where a device exists. */
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mltrain/gpuarray.h"
#include "mt_test.h"

#include "../../src/gpuarray/reduce_impl.h"

/* ---------------------------------------------------------------- helpers */

static mt_device *open_named(const char *name)
{
    mt_device *dev = NULL;
    mt_status st = mt_device_open(&dev, name);
    if (st == MT_ERR_NOT_BUILT || st == MT_ERR_NOT_FOUND) MT_SKIP(mt_last_error());
    MT_CHECK_OK(st);
    return dev;
}

static mt_device *open_dev(void)
{
    return open_named(mt_test_device_name());
}

/* Switches this process to the interpreter path (each case is its own process). */
static void use_interp(void)
{
    if (strcmp(mt_test_device_name(), "host") != 0) MT_SKIP("the interpreter runs on the host");
    setenv("MLTRAIN_NO_CC", "1", 1);
}

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return g_rng;
}
static double urand(void)
{
    return (double)(rnd() >> 11) * 0x1p-53;
}

typedef enum fillmode { FILL_WIDE, FILL_SMALL, FILL_TIES } fillmode;

/* One random element of dt at p. SMALL: values near 1 (products); TIES: few distinct values. */
static void rand_elem(void *p, mt_dtype dt, fillmode m)
{
    double f = m == FILL_SMALL  ? 0.5 + urand()
               : m == FILL_TIES ? (double)(rnd() % 4) - 1.0
                                : urand() * 4.0 - 2.0;
    int64_t span = m == FILL_SMALL ? 3 : m == FILL_TIES ? 3 : 0;
    uint64_t r = rnd();
    switch (dt) {
    case MT_BOOL:
        *(uint8_t *)p = (uint8_t)(r % 5 != 0);
        break;
    case MT_INT8:
        *(int8_t *)p = (int8_t)(span ? (int64_t)(r % 7) - span : (int64_t)(r % 201) - 100);
        break;
    case MT_INT16:
        *(int16_t *)p = (int16_t)(span ? (int64_t)(r % 7) - span : (int64_t)(r % 60001) - 30000);
        break;
    case MT_INT32:
        *(int32_t *)p =
            (int32_t)(span ? (int64_t)(r % 7) - span : (int64_t)(r % 4000001) - 2000000);
        break;
    case MT_INT64:
        *(int64_t *)p = span ? (int64_t)(r % 7) - span : (int64_t)(r >> 1) - (int64_t)(1ull << 62);
        break;
    case MT_UINT8:
        *(uint8_t *)p = (uint8_t)(span ? r % 4 : r % 256);
        break;
    case MT_UINT16:
        *(uint16_t *)p = (uint16_t)(span ? r % 4 : r % 65536);
        break;
    case MT_UINT32:
        *(uint32_t *)p = (uint32_t)(span ? r % 4 : r);
        break;
    case MT_UINT64:
        *(uint64_t *)p = span ? r % 4 : r;
        break;
    case MT_FLOAT16:
        *(uint16_t *)p = mt_f32_to_f16((float)f);
        break;
    case MT_BFLOAT16:
        *(uint16_t *)p = mt_f32_to_bf16((float)f);
        break;
    case MT_FLOAT32:
        *(float *)p = (float)f;
        break;
    default:
        *(double *)p = f;
        break;
    }
}

/* A device array with a host copy of its bytes; views keep the base's host copy. */
typedef struct tarr {
    mt_array a;
    char *host; /* host copy of the base array's bytes (owned by the base) */
    size_t base_off;
} tarr;

static tarr make_arr(mt_device *dev, mt_dtype dt, int32_t nd, const int64_t *dims, fillmode m)
{
    tarr t = {0};
    int64_t n = 1;
    for (int32_t i = 0; i < nd; i++)
        n *= dims[i];
    size_t isz = mt_dtype_size(dt);
    t.host = malloc((size_t)(n ? n : 1) * isz);
    MT_CHECK(t.host != NULL);
    for (int64_t i = 0; i < n; i++)
        rand_elem(t.host + i * (int64_t)isz, dt, m);
    MT_CHECK_OK(mt_array_from_host(&t.a, dev, dt, nd, dims, t.host));
    t.base_off = t.a.offset;
    return t;
}

static void free_arr(tarr *t)
{
    mt_array_clear(&t->a);
    free(t->host);
    t->host = NULL;
}

/* Uploads the (edited) host copy again as a new base array. */
static void reupload(tarr *t, mt_device *dev, int32_t nd, const int64_t *dims)
{
    mt_dtype dt = t->a.dtype;
    mt_array_clear(&t->a);
    MT_CHECK_OK(mt_array_from_host(&t->a, dev, dt, nd, dims, t->host));
    t->base_off = t->a.offset;
}

/* A view of base (same host copy). */
static tarr view_of(const tarr *base, const mt_array *v)
{
    tarr t = *base;
    t.a = *v;
    return t;
}

/* Host address of the view's element at multi-index idx. */
static const char *host_elem(const tarr *t, const int64_t *idx)
{
    int64_t off = (int64_t)t->a.offset - (int64_t)t->base_off;
    for (int32_t i = 0; i < t->a.ndim; i++)
        off += idx[i] * t->a.strides[i];
    return t->host + off;
}

/* Element value as long double (floats), int64 (signed, bool) and uint64 (unsigned). */
static void get_elem(const char *p, mt_dtype dt, long double *f, int64_t *i, uint64_t *u)
{
    *f = 0;
    *i = 0;
    *u = 0;
    switch (dt) {
    case MT_BOOL:
        *i = *(const uint8_t *)p != 0;
        *u = (uint64_t)*i;
        *f = (long double)*i;
        return;
    case MT_INT8:
        *i = *(const int8_t *)p;
        break;
    case MT_INT16:
        *i = *(const int16_t *)p;
        break;
    case MT_INT32:
        *i = *(const int32_t *)p;
        break;
    case MT_INT64:
        *i = *(const int64_t *)p;
        break;
    case MT_UINT8:
        *u = *(const uint8_t *)p;
        break;
    case MT_UINT16:
        *u = *(const uint16_t *)p;
        break;
    case MT_UINT32:
        *u = *(const uint32_t *)p;
        break;
    case MT_UINT64:
        *u = *(const uint64_t *)p;
        break;
    case MT_FLOAT16:
        *f = mt_f16_to_f32(*(const uint16_t *)p);
        return;
    case MT_BFLOAT16:
        *f = mt_bf16_to_f32(*(const uint16_t *)p);
        return;
    case MT_FLOAT32:
        *f = *(const float *)p;
        return;
    default:
        *f = *(const double *)p;
        return;
    }
    if (mt_dtype_kind(dt) == 'i') {
        *u = (uint64_t)*i;
        *f = (long double)*i;
    } else {
        *i = (int64_t)*u;
        *f = (long double)*u;
    }
}

/* NumPy's result dtypes, written out independently of the library's table. */
static mt_dtype expect_dtype(mt_reduce_op op, mt_dtype in)
{
    char k = mt_dtype_kind(in);
    switch (op) {
    case MT_REDUCE_SUM:
    case MT_REDUCE_PROD:
        return k == 'f' ? in : k == 'u' ? MT_UINT64 : MT_INT64;
    case MT_REDUCE_MEAN:
        return k == 'f' ? in : MT_FLOAT64;
    case MT_REDUCE_ARGMAX:
    case MT_REDUCE_ARGMIN:
        return MT_INT64;
    case MT_REDUCE_ALL:
    case MT_REDUCE_ANY:
        return MT_BOOL;
    default:
        return in;
    }
}

/* Relative precision of a float dtype. */
static double ulp_rel(mt_dtype dt)
{
    switch (dt) {
    case MT_FLOAT16:
        return 0x1p-10;
    case MT_BFLOAT16:
        return 0x1p-7;
    case MT_FLOAT32:
        return 0x1p-23;
    default:
        return 0x1p-52;
    }
}

/* Rounds to a float dtype like a store would (ties may differ by double rounding: tolerated). */
static double round_to(double v, mt_dtype dt)
{
    switch (dt) {
    case MT_FLOAT16:
        return mt_f16_to_f32(mt_f64_to_f16(v));
    case MT_BFLOAT16:
        return mt_bf16_to_f32(mt_f64_to_bf16(v));
    case MT_FLOAT32:
        return (float)v;
    default:
        return v;
    }
}

/* Reference state of one output. */
typedef struct refst {
    long double sum, sabs, prod, mx, mn;
    uint64_t usum, uprod;
    int64_t imx, imn;
    uint64_t umx, umn;
    int64_t amx, amn, anan;
    bool have, nan, all, any;
    int64_t count;
} refst;

static void ref_add(refst *r, mt_dtype dt, const char *p, int64_t k)
{
    long double f;
    int64_t i;
    uint64_t u;
    get_elem(p, dt, &f, &i, &u);
    char kind = mt_dtype_kind(dt);
    bool isnan_ = kind == 'f' && isnan(f);
    r->sum += f;
    r->sabs += fabsl(f);
    r->prod *= f;
    r->usum += u;
    r->uprod *= u;
    bool nz = kind == 'f' ? (f != 0 || isnan_) : u != 0;
    r->all = r->all && nz;
    r->any = r->any || nz;
    if (isnan_) {
        if (!r->nan) r->anan = k;
        r->nan = true;
    } else if (kind == 'f') {
        if (r->amx < 0 || f > r->mx) {
            r->mx = f;
            r->amx = k;
        }
        if (r->amn < 0 || f < r->mn) {
            r->mn = f;
            r->amn = k;
        }
    } else if (kind == 'i' || kind == 'b') {
        if (r->amx < 0 || i > r->imx) {
            r->imx = i;
            r->amx = k;
        }
        if (r->amn < 0 || i < r->imn) {
            r->imn = i;
            r->amn = k;
        }
    } else {
        if (r->amx < 0 || u > r->umx) {
            r->umx = u;
            r->amx = k;
        }
        if (r->amn < 0 || u < r->umn) {
            r->umn = u;
            r->amn = k;
        }
    }
    r->count++;
}

/* Compares output element got (bytes of dtype od) with the reference of op over dtype dt. */
static void ref_check(const refst *r, mt_reduce_op op, mt_dtype dt, mt_dtype od, const char *got,
                      const char *what, int64_t j)
{
    char kind = mt_dtype_kind(dt);
    long double gf;
    int64_t gi;
    uint64_t gu;
    get_elem(got, od, &gf, &gi, &gu);
    char msg[256];
    snprintf(msg, sizeof msg, "%s: %s over %s, output %lld", what, mt_reduce_op_name(op),
             mt_dtype_name(dt), (long long)j);
    bool f = kind == 'f';
    bool ok = true;
    double e = 0, tol = 0;
    switch (op) {
    case MT_REDUCE_SUM:
    case MT_REDUCE_MEAN:
        if (!f && op == MT_REDUCE_SUM) {
            ok = gu == r->usum;
            break;
        }
        e = (double)(op == MT_REDUCE_MEAN ? r->sum / (long double)r->count : r->sum);
        if (r->count == 0 && op == MT_REDUCE_MEAN) e = NAN;
        tol = 1e-13 * (double)r->sabs / (op == MT_REDUCE_MEAN && r->count ? (double)r->count : 1);
        e = round_to(e, od);
        tol += ulp_rel(od) * fabs(e);
        ok = mt_test_close((double)gf, e, tol, 0);
        break;
    case MT_REDUCE_PROD:
        if (!f) {
            ok = gu == r->uprod;
            break;
        }
        e = round_to((double)r->prod, od);
        ok = mt_test_close((double)gf, e, 0, ulp_rel(od) + 1e-13 * (double)r->count);
        break;
    case MT_REDUCE_MAX:
    case MT_REDUCE_MIN: {
        bool mx = op == MT_REDUCE_MAX;
        if (f) {
            e = r->nan ? NAN : (double)(mx ? r->mx : r->mn);
            ok = mt_test_close((double)gf, e, 0, 0);
        } else if (kind == 'u') {
            ok = gu == (mx ? r->umx : r->umn);
        } else {
            ok = gi == (mx ? r->imx : r->imn);
        }
        break;
    }
    case MT_REDUCE_ARGMAX:
    case MT_REDUCE_ARGMIN:
        e = (double)(r->nan ? r->anan : op == MT_REDUCE_ARGMAX ? r->amx : r->amn);
        ok = gi == (int64_t)e;
        break;
    case MT_REDUCE_ALL:
        ok = (gi != 0) == r->all;
        e = r->all;
        break;
    case MT_REDUCE_ANY:
        ok = (gi != 0) == r->any;
        e = r->any;
        break;
    default:
        ok = false;
        break;
    }
    if (!ok)
        mt_test_fail(__FILE__, __LINE__,
                     "%s: got %.17Lg (int %lld, uint %llu), expected %.17g "
                     "(tol %.3g; int sum %llu prod %llu)",
                     msg, gf, (long long)gi, (unsigned long long)gu, e, tol,
                     (unsigned long long)r->usum, (unsigned long long)r->uprod);
}

/* Test-side axis normalisation (valid axes only). */
static void axes_mask(bool *mask, int32_t nd, int32_t naxes, const int32_t *axes)
{
    for (int32_t i = 0; i < MT_MAX_DIMS; i++)
        mask[i] = naxes == 0 && i < nd;
    for (int32_t i = 0; i < naxes; i++)
        mask[axes[i] < 0 ? axes[i] + nd : axes[i]] = true;
}

/* The reference reduction of view t; returns a calloc'ed array of J states. */
static refst *reference(const tarr *t, const bool *mask, int64_t *J_out)
{
    const mt_array *a = &t->a;
    int64_t J = 1, N = 1;
    for (int32_t i = 0; i < a->ndim; i++) {
        N *= a->dims[i];
        if (!mask[i]) J *= a->dims[i];
    }
    refst *r = calloc((size_t)(J ? J : 1), sizeof *r);
    MT_CHECK(r != NULL);
    for (int64_t j = 0; j < J; j++) {
        r[j].prod = 1;
        r[j].uprod = 1;
        r[j].all = true;
        r[j].amx = r[j].amn = r[j].anan = -1;
    }
    int64_t idx[MT_MAX_DIMS] = {0};
    for (int64_t n = 0; n < N; n++) {
        int64_t rem = n;
        for (int32_t i = a->ndim - 1; i >= 0; i--) {
            idx[i] = rem % a->dims[i];
            rem /= a->dims[i];
        }
        int64_t jo = 0, ko = 0;
        for (int32_t i = 0; i < a->ndim; i++) {
            if (mask[i])
                ko = ko * a->dims[i] + idx[i];
            else
                jo = jo * a->dims[i] + idx[i];
        }
        ref_add(&r[jo], a->dtype, host_elem(t, idx), ko);
    }
    *J_out = J;
    return r;
}

/* Checks out's dtype and shape for op over the view and the mask, and its values. */
static void check_result(const mt_array *out, const tarr *t, mt_reduce_op op, const bool *mask,
                         bool keepdims, const char *what)
{
    const mt_array *a = &t->a;
    MT_CHECK_EQ_INT(out->dtype, expect_dtype(op, a->dtype));
    int32_t nd = 0;
    for (int32_t i = 0; i < a->ndim; i++) {
        if (!mask[i]) {
            MT_CHECK_EQ_INT(out->dims[nd], a->dims[i]);
            nd++;
        } else if (keepdims) {
            MT_CHECK_EQ_INT(out->dims[nd], 1);
            nd++;
        }
    }
    MT_CHECK_EQ_INT(out->ndim, nd);
    int64_t J;
    refst *r = reference(t, mask, &J);
    size_t osz = mt_dtype_size(out->dtype);
    char *got = malloc((size_t)(J ? J : 1) * osz);
    MT_CHECK(got != NULL);
    MT_CHECK_OK(mt_array_to_host(got, (size_t)J * osz, out));
    for (int64_t j = 0; j < J; j++)
        ref_check(&r[j], op, a->dtype, out->dtype, got + j * (int64_t)osz, what, j);
    free(got);
    free(r);
}

static void check_reduce(const tarr *t, mt_reduce_op op, int32_t naxes, const int32_t *axes,
                         bool keepdims, const char *what)
{
    mt_array out = {0};
    mt_status st = mt_array_reduce(&out, &t->a, op, naxes, axes, keepdims);
    if (st != MT_OK)
        mt_test_fail(__FILE__, __LINE__, "%s: reduce %s over %s failed: %s: %s", what,
                     mt_reduce_op_name(op), mt_dtype_name(t->a.dtype), mt_status_name(st),
                     mt_last_error());
    bool mask[MT_MAX_DIMS];
    axes_mask(mask, t->a.ndim, naxes, axes);
    check_result(&out, t, op, mask, keepdims, what);
    mt_array_clear(&out);
}

static const mt_reduce_op g_ops[] = {MT_REDUCE_SUM,  MT_REDUCE_PROD,   MT_REDUCE_MAX,
                                     MT_REDUCE_MIN,  MT_REDUCE_ARGMAX, MT_REDUCE_ARGMIN,
                                     MT_REDUCE_MEAN, MT_REDUCE_ALL,    MT_REDUCE_ANY};
#define NOPS ((int)(sizeof g_ops / sizeof g_ops[0]))

/* Every op over one dtype: a (6, 37) array reduced over axis 1 (products over small values). */
static void all_ops_dtype(mt_dtype dt)
{
    mt_device *dev = open_dev();
    int64_t dims[2] = {6, 37};
    tarr wide = make_arr(dev, dt, 2, dims, FILL_WIDE);
    tarr small = make_arr(dev, dt, 2, dims, FILL_SMALL);
    int32_t ax = 1;
    for (int o = 0; o < NOPS; o++) {
        const tarr *t = g_ops[o] == MT_REDUCE_PROD ? &small : &wide;
        check_reduce(t, g_ops[o], 1, &ax, false, "all_ops axis 1");
    }
    free_arr(&wide);
    free_arr(&small);
    mt_device_release(dev);
}

/* ---------------------------------------------------------------- result dtypes and names */

MT_TEST(names_and_result_dtypes)
{
    MT_CHECK_STR_EQ(mt_reduce_op_name(MT_REDUCE_SUM), "sum");
    MT_CHECK_STR_EQ(mt_reduce_op_name(MT_REDUCE_ARGMIN), "argmin");
    MT_CHECK_STR_EQ(mt_reduce_op_name(MT_REDUCE_ANY), "any");
    MT_CHECK_STR_EQ(mt_reduce_op_name((mt_reduce_op)99), "invalid");
    for (int o = 0; o < NOPS; o++)
        for (int d = 0; d < MT_DTYPE_COUNT; d++)
            MT_CHECK_EQ_INT(mt_reduce_result_dtype(g_ops[o], (mt_dtype)d),
                            expect_dtype(g_ops[o], (mt_dtype)d));
    MT_CHECK_EQ_INT(mt_reduce_result_dtype(MT_REDUCE_SUM, MT_INT8), MT_INT64);
    MT_CHECK_EQ_INT(mt_reduce_result_dtype(MT_REDUCE_SUM, MT_UINT16), MT_UINT64);
    MT_CHECK_EQ_INT(mt_reduce_result_dtype(MT_REDUCE_SUM, MT_BOOL), MT_INT64);
    MT_CHECK_EQ_INT(mt_reduce_result_dtype(MT_REDUCE_MEAN, MT_INT32), MT_FLOAT64);
    MT_CHECK_EQ_INT(mt_reduce_result_dtype(MT_REDUCE_SUM, MT_FLOAT16), MT_FLOAT16);
    MT_CHECK_EQ_INT(mt_reduce_result_dtype(MT_REDUCE_ARGMAX, MT_FLOAT32), MT_INT64);
    MT_CHECK_EQ_INT(mt_reduce_result_dtype(MT_REDUCE_ALL, MT_FLOAT64), MT_BOOL);
}

/* ---------------------------------------------------------------- every op over every dtype */

MT_TEST(all_ops_bool)
{
    all_ops_dtype(MT_BOOL);
}
MT_TEST(all_ops_int8)
{
    all_ops_dtype(MT_INT8);
}
MT_TEST(all_ops_int16)
{
    all_ops_dtype(MT_INT16);
}
MT_TEST(all_ops_int32)
{
    all_ops_dtype(MT_INT32);
}
MT_TEST(all_ops_int64)
{
    all_ops_dtype(MT_INT64);
}
MT_TEST(all_ops_uint8)
{
    all_ops_dtype(MT_UINT8);
}
MT_TEST(all_ops_uint16)
{
    all_ops_dtype(MT_UINT16);
}
MT_TEST(all_ops_uint32)
{
    all_ops_dtype(MT_UINT32);
}
MT_TEST(all_ops_uint64)
{
    all_ops_dtype(MT_UINT64);
}
MT_TEST(all_ops_float16)
{
    all_ops_dtype(MT_FLOAT16);
}
MT_TEST(all_ops_bfloat16)
{
    all_ops_dtype(MT_BFLOAT16);
}
MT_TEST(all_ops_float32)
{
    all_ops_dtype(MT_FLOAT32);
}
MT_TEST(all_ops_float64)
{
    all_ops_dtype(MT_FLOAT64);
}

/* ---------------------------------------------------------------- axes, keepdims, layouts */

static void axes_3d_body(void)
{
    mt_device *dev = open_dev();
    int64_t dims[3] = {4, 5, 6};
    tarr t = make_arr(dev, MT_FLOAT32, 3, dims, FILL_WIDE);
    static const int32_t sets[][3] = {{0},    {1},    {2},      {0, 1},    {0, 2},
                                      {1, 2}, {2, 0}, {-1, -3}, {0, 1, 2}, {-2}};
    static const int32_t nset[] = {1, 1, 1, 2, 2, 2, 2, 2, 3, 1};
    static const mt_reduce_op ops[] = {MT_REDUCE_SUM, MT_REDUCE_MAX, MT_REDUCE_ARGMAX,
                                       MT_REDUCE_MEAN};
    for (int s = 0; s < 10; s++)
        for (int o = 0; o < 4; o++) {
            char what[64];
            snprintf(what, sizeof what, "3-D axes set %d", s);
            check_reduce(&t, ops[o], nset[s], sets[s], (s + o) % 2 == 0, what);
        }
    check_reduce(&t, MT_REDUCE_SUM, 0, NULL, true, "3-D all axes keepdims");
    free_arr(&t);
    mt_device_release(dev);
}

static void axes_4d_body(void)
{
    mt_device *dev = open_dev();
    int64_t dims[4] = {3, 4, 2, 5};
    tarr t = make_arr(dev, MT_INT32, 4, dims, FILL_WIDE);
    /* a non-contiguous 4-D view: axes permuted */
    int32_t perm[4] = {2, 0, 3, 1};
    mt_array tr;
    MT_CHECK_OK(mt_array_transpose(&tr, &t.a, perm));
    tarr tv = view_of(&t, &tr);
    static const int32_t sets[][4] = {{0}, {3}, {1, 3}, {0, 2}, {0, 1, 2}, {1, 2, 3}, {-4, -1}};
    static const int32_t nset[] = {1, 1, 2, 2, 3, 3, 2};
    static const mt_reduce_op ops[] = {MT_REDUCE_SUM, MT_REDUCE_MIN, MT_REDUCE_ARGMIN,
                                       MT_REDUCE_ALL};
    for (int s = 0; s < 7; s++)
        for (int o = 0; o < 4; o++) {
            check_reduce(&t, ops[o], nset[s], sets[s], o % 2 == 1, "4-D contiguous");
            check_reduce(&tv, ops[o], nset[s], sets[s], o % 2 == 0, "4-D transposed");
        }
    mt_array_clear(&tr);
    free_arr(&t);
    mt_device_release(dev);
}

/* Sliced views with steps (negative too), a transpose, a broadcast (stride 0) input. */
static void views_body(mt_dtype dt)
{
    mt_device *dev = open_dev();
    int64_t dims[3] = {7, 6, 9};
    static const mt_reduce_op fops[] = {MT_REDUCE_SUM, MT_REDUCE_ARGMAX, MT_REDUCE_MAX};
    static const mt_reduce_op iops[] = {MT_REDUCE_PROD, MT_REDUCE_ARGMIN, MT_REDUCE_ANY};
    const mt_reduce_op *ops = mt_dtype_is_float(dt) ? fops : iops;
    tarr t = make_arr(dev, dt, 3, dims, FILL_SMALL);
    mt_slice sl[3] = {mt_slice_range(1, 7, 2), mt_slice_range(MT_SLICE_UNSET, MT_SLICE_UNSET, -1),
                      mt_slice_range(8, 0, -3)};
    mt_array s1, s2, bc, tr;
    MT_CHECK_OK(mt_array_slice(&s1, &t.a, 3, sl)); /* (3, 6, 3), negative strides */
    MT_CHECK_OK(mt_array_transpose(&tr, &s1, NULL));
    mt_slice sl2[2] = {mt_slice_all(), mt_slice_index(2)};
    MT_CHECK_OK(mt_array_slice(&s2, &t.a, 2, sl2)); /* (7, 9), strides (6 * 9, 1) items */
    int64_t bdims[3] = {4, 7, 9};
    MT_CHECK_OK(mt_array_broadcast_to(&bc, &s2, 3, bdims)); /* stride 0 on axis 0 */
    tarr views[4] = {view_of(&t, &s1), view_of(&t, &tr), view_of(&t, &s2), view_of(&t, &bc)};
    static const int32_t sets[][2] = {{0}, {-1}, {0, 1}};
    static const int32_t nset[] = {1, 1, 2};
    for (int v = 0; v < 4; v++)
        for (int o = 0; o < 3; o++)
            for (int s = 0; s < 3; s++) {
                char what[64];
                snprintf(what, sizeof what, "view %d axes set %d", v, s);
                check_reduce(&views[v], ops[o], nset[s], sets[s], s == 1, what);
            }
    for (int v = 0; v < 4; v++)
        check_reduce(&views[v], MT_REDUCE_SUM, 0, NULL, false, "view all");
    mt_array_clear(&s1);
    mt_array_clear(&s2);
    mt_array_clear(&bc);
    mt_array_clear(&tr);
    free_arr(&t);
    mt_device_release(dev);
}

MT_TEST(axes_3d_keepdims)
{
    axes_3d_body();
}
MT_TEST(axes_4d_transposed)
{
    axes_4d_body();
}
MT_TEST(strided_negative_broadcast_views_f64)
{
    views_body(MT_FLOAT64);
}
MT_TEST(strided_negative_broadcast_views_i16)
{
    views_body(MT_INT16);
}

/* ---------------------------------------------------------------- special sizes */

static void zero_d_body(void)
{
    mt_device *dev = open_dev();
    tarr t = make_arr(dev, MT_FLOAT32, 0, NULL, FILL_WIDE);
    for (int o = 0; o < NOPS; o++) {
        check_reduce(&t, g_ops[o], 0, NULL, false, "0-d");
        check_reduce(&t, g_ops[o], 0, NULL, true, "0-d keepdims");
    }
    int32_t ax = 0;
    mt_array out = {0};
    MT_CHECK_ERR(mt_array_reduce(&out, &t.a, MT_REDUCE_SUM, 1, &ax, false), MT_ERR_RANGE,
                 "axis 0 is out of bounds for array of dimension 0");
    free_arr(&t);
    mt_device_release(dev);
}

static void size_zero_body(void)
{
    mt_device *dev = open_dev();
    int64_t d1[1] = {0}, d2[2] = {3, 0}, d3[2] = {0, 3};
    tarr a = make_arr(dev, MT_FLOAT32, 1, d1, FILL_WIDE);
    tarr b = make_arr(dev, MT_INT32, 2, d2, FILL_WIDE);
    tarr c = make_arr(dev, MT_FLOAT64, 2, d3, FILL_WIDE);
    int32_t ax1 = 1;
    static const mt_reduce_op ok_ops[] = {MT_REDUCE_SUM, MT_REDUCE_PROD, MT_REDUCE_MEAN,
                                          MT_REDUCE_ALL, MT_REDUCE_ANY};
    for (int o = 0; o < 5; o++) {
        check_reduce(&a, ok_ops[o], 0, NULL, false, "size 0, all");
        check_reduce(&b, ok_ops[o], 1, &ax1, false, "(3, 0) over axis 1");
        check_reduce(&b, ok_ops[o], 1, &ax1, true, "(3, 0) over axis 1, keepdims");
    }
    /* explicit values, independent of the reference helper */
    mt_array out = {0};
    MT_CHECK_OK(mt_array_reduce(&out, &a.a, MT_REDUCE_MEAN, 0, NULL, false));
    float mv = 0;
    MT_CHECK_OK(mt_array_to_host(&mv, 4, &out));
    MT_CHECK(isnan(mv));
    mt_array_clear(&out);
    MT_CHECK_OK(mt_array_reduce(&out, &b.a, MT_REDUCE_PROD, 1, &ax1, false));
    int64_t pv[3];
    MT_CHECK_OK(mt_array_to_host(pv, sizeof pv, &out));
    MT_CHECK(pv[0] == 1 && pv[1] == 1 && pv[2] == 1);
    mt_array_clear(&out);
    static const mt_reduce_op bad[] = {MT_REDUCE_MAX, MT_REDUCE_MIN, MT_REDUCE_ARGMAX,
                                       MT_REDUCE_ARGMIN};
    for (int o = 0; o < 4; o++) {
        char msg[128];
        snprintf(msg, sizeof msg, "zero-size array to reduction operation %s which has no identity",
                 mt_reduce_op_name(bad[o]));
        MT_CHECK_ERR(mt_array_reduce(&out, &a.a, bad[o], 0, NULL, false), MT_ERR_INVALID, msg);
        MT_CHECK_ERR(mt_array_reduce(&out, &b.a, bad[o], 1, &ax1, false), MT_ERR_INVALID, msg);
        /* zero outputs: nothing to reduce, no error (NumPy) */
        check_reduce(&c, bad[o], 1, &ax1, false, "(0, 3) over axis 1");
    }
    free_arr(&a);
    free_arr(&b);
    free_arr(&c);
    mt_device_release(dev);
}

MT_TEST(zero_d_input)
{
    zero_d_body();
}
MT_TEST(size_zero_inputs)
{
    size_zero_body();
}

/* ---------------------------------------------------------------- NaN, ties */

static void nan_ties_body(void)
{
    mt_device *dev = open_dev();
    /* float32 (5, 8): NaNs in some rows, ties everywhere */
    int64_t dims[2] = {5, 8};
    tarr t = make_arr(dev, MT_FLOAT32, 2, dims, FILL_TIES);
    float *h = (float *)t.host;
    h[0 * 8 + 3] = NAN;
    h[0 * 8 + 6] = NAN;
    h[2 * 8 + 7] = NAN;
    h[4 * 8 + 0] = -NAN;
    reupload(&t, dev, 2, dims);
    int32_t ax1 = 1, ax0 = 0;
    for (int o = 0; o < NOPS; o++) {
        check_reduce(&t, g_ops[o], 1, &ax1, false, "NaN rows");
        check_reduce(&t, g_ops[o], 1, &ax0, false, "NaN columns");
    }
    /* explicit: argmax of [1, 3, 3, 2, 3] is 1, argmin of [2, 1, 1, 5] is 1, first NaN wins */
    float v1[5] = {1, 3, 3, 2, 3}, v2[4] = {2, 1, 1, 5}, v3[6] = {1, NAN, 7, NAN, 9, -1};
    mt_array a = {0}, out = {0};
    int64_t n5 = 5, n4 = 4, n6 = 6, r = -1;
    MT_CHECK_OK(mt_array_from_host(&a, dev, MT_FLOAT32, 1, &n5, v1));
    MT_CHECK_OK(mt_array_reduce(&out, &a, MT_REDUCE_ARGMAX, 0, NULL, false));
    MT_CHECK_OK(mt_array_to_host(&r, 8, &out));
    MT_CHECK_EQ_INT(r, 1);
    mt_array_clear(&out);
    mt_array_clear(&a);
    MT_CHECK_OK(mt_array_from_host(&a, dev, MT_FLOAT32, 1, &n4, v2));
    MT_CHECK_OK(mt_array_reduce(&out, &a, MT_REDUCE_ARGMIN, 0, NULL, false));
    MT_CHECK_OK(mt_array_to_host(&r, 8, &out));
    MT_CHECK_EQ_INT(r, 1);
    mt_array_clear(&out);
    mt_array_clear(&a);
    MT_CHECK_OK(mt_array_from_host(&a, dev, MT_FLOAT32, 1, &n6, v3));
    for (int k = 0; k < 2; k++) {
        MT_CHECK_OK(
            mt_array_reduce(&out, &a, k ? MT_REDUCE_ARGMIN : MT_REDUCE_ARGMAX, 0, NULL, false));
        MT_CHECK_OK(mt_array_to_host(&r, 8, &out));
        MT_CHECK_EQ_INT(r, 1);
        mt_array_clear(&out);
    }
    float fv = 0;
    MT_CHECK_OK(mt_array_reduce(&out, &a, MT_REDUCE_MIN, 0, NULL, false));
    MT_CHECK_OK(mt_array_to_host(&fv, 4, &out));
    MT_CHECK(isnan(fv));
    mt_array_clear(&out);
    mt_array_clear(&a);
    /* float16 with NaN */
    tarr hf = make_arr(dev, MT_FLOAT16, 2, dims, FILL_TIES);
    ((uint16_t *)hf.host)[1 * 8 + 2] = 0x7E00;
    reupload(&hf, dev, 2, dims);
    for (int o = 0; o < NOPS; o++)
        check_reduce(&hf, g_ops[o], 1, &ax1, true, "float16 NaN");
    free_arr(&hf);
    free_arr(&t);
    mt_device_release(dev);
}

/* Large K so the host splits each output into chunks (two-stage): ties and NaNs placed in
 * different chunks must still give the first index; sums must match the reference. */
static void two_stage_body(void)
{
    mt_device *dev = open_dev();
    int64_t dims[2] = {2, 300000};
    tarr t = make_arr(dev, MT_FLOAT64, 2, dims, FILL_WIDE);
    double *h = (double *)t.host;
    h[150000] = 5.0; /* row 0: max ties at 150000, 170000, 299999 */
    h[170000] = 5.0;
    h[299999] = 5.0;
    h[300000 + 250000] = NAN; /* row 1: NaNs at 250000 and 260000, a larger max earlier */
    h[300000 + 260000] = NAN;
    h[300000 + 1000] = 9.0;
    reupload(&t, dev, 2, dims);
    int32_t ax1 = 1, ax0 = 0;
    static const mt_reduce_op ops[] = {MT_REDUCE_ARGMAX, MT_REDUCE_ARGMIN, MT_REDUCE_MAX,
                                       MT_REDUCE_SUM, MT_REDUCE_MEAN};
    for (int o = 0; o < 5; o++)
        check_reduce(&t, ops[o], 1, &ax1, false, "two-stage rows");
    int64_t r[2];
    mt_array out = {0};
    MT_CHECK_OK(mt_array_reduce(&out, &t.a, MT_REDUCE_ARGMAX, 1, &ax1, false));
    MT_CHECK_OK(mt_array_to_host(r, sizeof r, &out));
    MT_CHECK_EQ_INT(r[0], 150000);
    MT_CHECK_EQ_INT(r[1], 250000);
    mt_array_clear(&out);
    check_reduce(&t, MT_REDUCE_SUM, 1, &ax0, false, "many outputs, K = 2");
    free_arr(&t);
    /* int64 sums and all/any over many elements, two outputs */
    tarr ti = make_arr(dev, MT_INT64, 2, dims, FILL_WIDE);
    check_reduce(&ti, MT_REDUCE_SUM, 1, &ax1, false, "int64 two-stage sum");
    check_reduce(&ti, MT_REDUCE_MIN, 0, NULL, false, "int64 full min");
    check_reduce(&ti, MT_REDUCE_ARGMIN, 0, NULL, false, "int64 full argmin");
    free_arr(&ti);
    /* columns: few outputs, many rows (tiled kernels whose rows are split into chunks) */
    int64_t dc[2] = {100000, 20};
    tarr tc = make_arr(dev, MT_FLOAT64, 2, dc, FILL_WIDE);
    double *hc = (double *)tc.host;
    hc[60000 * 20 + 3] = NAN;
    hc[70000 * 20 + 3] = NAN;
    hc[10 * 20 + 5] = 7.0;
    hc[90000 * 20 + 5] = 7.0;
    reupload(&tc, dev, 2, dc);
    static const mt_reduce_op cops[] = {MT_REDUCE_SUM, MT_REDUCE_ARGMAX, MT_REDUCE_MAX,
                                        MT_REDUCE_MEAN, MT_REDUCE_ARGMIN};
    for (int o = 0; o < 5; o++)
        check_reduce(&tc, cops[o], 1, &ax0, o == 1, "two-stage columns");
    free_arr(&tc);
    tarr tb = make_arr(dev, MT_BOOL, 2, dims, FILL_WIDE);
    check_reduce(&tb, MT_REDUCE_ALL, 1, &ax1, false, "bool all");
    check_reduce(&tb, MT_REDUCE_ANY, 1, &ax1, false, "bool any");
    check_reduce(&tb, MT_REDUCE_SUM, 0, NULL, false, "bool count");
    free_arr(&tb);
    mt_device_release(dev);
}

MT_TEST(nan_and_ties)
{
    nan_ties_body();
}
MT_TEST(two_stage_ties_nan)
{
    two_stage_body();
}

/* ---------------------------------------------------------------- accuracy */

static void ones_body(void)
{
    mt_device *dev = open_dev();
    int64_t n = 20000000;
    mt_array a = {0}, out = {0};
    MT_CHECK_OK(mt_array_empty(&a, dev, MT_FLOAT32, 1, &n, 'C'));
    MT_CHECK_OK(mt_array_fill(&a, mt_scalar_f64(1.0)));
    float f = 0;
    MT_CHECK_OK(mt_array_reduce(&out, &a, MT_REDUCE_SUM, 0, NULL, false));
    MT_CHECK_OK(mt_array_to_host(&f, 4, &out));
    MT_CHECK(f == 20000000.0f);
    mt_array_clear(&out);
    MT_CHECK_OK(mt_array_reduce(&out, &a, MT_REDUCE_MEAN, 0, NULL, false));
    MT_CHECK_OK(mt_array_to_host(&f, 4, &out));
    MT_CHECK(f == 1.0f);
    mt_array_clear(&out);
    mt_array_clear(&a);

    MT_CHECK_OK(mt_array_empty(&a, dev, MT_FLOAT16, 1, &n, 'C'));
    MT_CHECK_OK(mt_array_fill(&a, mt_scalar_f64(1.0)));
    uint16_t h = 0;
    MT_CHECK_OK(mt_array_reduce(&out, &a, MT_REDUCE_MEAN, 0, NULL, false));
    MT_CHECK_OK(mt_array_to_host(&h, 2, &out));
    MT_CHECK(mt_f16_to_f32(h) == 1.0f);
    mt_array_clear(&out);
    /* a float16 sum of 2e7 is +inf in float16 (as in NumPy), but exact when the map widens */
    MT_CHECK_OK(mt_array_reduce(&out, &a, MT_REDUCE_SUM, 0, NULL, false));
    MT_CHECK_OK(mt_array_to_host(&h, 2, &out));
    MT_CHECK(isinf(mt_f16_to_f32(h)));
    mt_array_clear(&out);
    mt_kexpr e;
    mt_kexpr_init(&e);
    int32_t x = mt_kexpr_input(&e, 0, MT_FLOAT16);
    MT_CHECK_OK(mt_kexpr_add_output(&e, mt_kexpr_cast(&e, x, MT_FLOAT32)));
    MT_CHECK_OK(mt_array_empty(&out, dev, MT_FLOAT32, 0, NULL, 'C'));
    const mt_array *ins[1] = {&a};
    MT_CHECK_OK(mt_reduce_fused(&e, 1, ins, MT_REDUCE_SUM, 0, NULL, &out, 0, NULL));
    MT_CHECK_OK(mt_array_to_host(&f, 4, &out));
    MT_CHECK(f == 20000000.0f);
    mt_array_clear(&out);
    mt_kexpr_deinit(&e);
    mt_array_clear(&a);
    mt_device_release(dev);
}

/* float64: pairwise summation of 0.1 two million times stays within a few ulp (a running sum is
 * off by ~1e-11 relative); float32 data with a large offset (naive float32 sums lose it). */
static void accuracy_body(void)
{
    mt_device *dev = open_dev();
    int64_t n = 2000000;
    mt_array a = {0}, out = {0};
    MT_CHECK_OK(mt_array_empty(&a, dev, MT_FLOAT64, 1, &n, 'C'));
    MT_CHECK_OK(mt_array_fill(&a, mt_scalar_f64(0.1)));
    double d = 0;
    MT_CHECK_OK(mt_array_reduce(&out, &a, MT_REDUCE_SUM, 0, NULL, false));
    MT_CHECK_OK(mt_array_to_host(&d, 8, &out));
    long double exact = 2000000.0L * (long double)0.1;
    MT_CHECK_CLOSE(d, (double)exact, 0, 4e-16);
    mt_array_clear(&out);
    mt_array_clear(&a);
    int64_t dims[1] = {1000003};
    tarr t = make_arr(dev, MT_FLOAT32, 1, dims, FILL_WIDE);
    for (int64_t i = 0; i < dims[0]; i++)
        ((float *)t.host)[i] += 1000.0f;
    reupload(&t, dev, 1, dims);
    check_reduce(&t, MT_REDUCE_SUM, 0, NULL, false, "float32 sum with offset");
    check_reduce(&t, MT_REDUCE_MEAN, 0, NULL, false, "float32 mean with offset");
    free_arr(&t);
    /* deterministic: the same call twice gives the same bits */
    int64_t dims2[1] = {777777};
    tarr u = make_arr(dev, MT_FLOAT32, 1, dims2, FILL_WIDE);
    float r1 = 0, r2 = 1;
    MT_CHECK_OK(mt_array_reduce(&out, &u.a, MT_REDUCE_SUM, 0, NULL, false));
    MT_CHECK_OK(mt_array_to_host(&r1, 4, &out));
    mt_array_clear(&out);
    MT_CHECK_OK(mt_array_reduce(&out, &u.a, MT_REDUCE_SUM, 0, NULL, false));
    MT_CHECK_OK(mt_array_to_host(&r2, 4, &out));
    mt_array_clear(&out);
    MT_CHECK(memcmp(&r1, &r2, 4) == 0);
    free_arr(&u);
    mt_device_release(dev);
}

/* Column reductions (the tiled kernels on CPU devices: bands of rows, stage 2 over the bands).
 * float64 0.1 summed down 300000 rows: a running sum is off by ~5e-12 relative, the blocked and
 * pairwise sum stays near 1e-15. A float32 matrix whose rows are wider than a host tile (4096)
 * and whose row count is no multiple of the block or of the row groups: sums, max, argmin and a
 * fused map with a broadcast row, checked against the reference, and the same call twice gives
 * the same bits. */
static void columns_body(void)
{
    mt_device *dev = open_dev();
    int64_t dl[2] = {300000, 8};
    mt_array a = {0}, out = {0};
    MT_CHECK_OK(mt_array_empty(&a, dev, MT_FLOAT64, 2, dl, 'C'));
    MT_CHECK_OK(mt_array_fill(&a, mt_scalar_f64(0.1)));
    int32_t ax0 = 0;
    double d[8];
    MT_CHECK_OK(mt_array_reduce(&out, &a, MT_REDUCE_SUM, 1, &ax0, false));
    MT_CHECK_OK(mt_array_to_host(d, sizeof d, &out));
    long double exact = 300000.0L * (long double)0.1;
    for (int k = 0; k < 8; k++)
        MT_CHECK_CLOSE(d[k], (double)exact, 0, 1.5e-15);
    mt_array_clear(&out);
    mt_array_clear(&a);

    int64_t dw[2] = {701, 4500};
    tarr t = make_arr(dev, MT_FLOAT32, 2, dw, FILL_WIDE);
    float *h = (float *)t.host;
    h[300 * 4500 + 17] = NAN; /* NaN in a later band than the column's maximum */
    h[5 * 4500 + 17] = 9.0f;
    h[10 * 4500 + 4400] = -9.0f; /* argmin ties in two bands: the first wins */
    h[600 * 4500 + 4400] = -9.0f;
    reupload(&t, dev, 2, dw);
    static const mt_reduce_op ops[] = {MT_REDUCE_SUM, MT_REDUCE_MAX, MT_REDUCE_ARGMIN};
    for (int o = 0; o < 3; o++) /* few distinct kernels: OpenCL compiles slowly */
        check_reduce(&t, ops[o], 1, &ax0, false, "wide columns");
    float *r1 = malloc(4500 * sizeof(float)), *r2 = malloc(4500 * sizeof(float));
    MT_CHECK(r1 != NULL && r2 != NULL);
    MT_CHECK_OK(mt_array_reduce(&out, &t.a, MT_REDUCE_SUM, 1, &ax0, false));
    MT_CHECK_OK(mt_array_to_host(r1, 4500 * sizeof(float), &out));
    mt_array_clear(&out);
    MT_CHECK_OK(mt_array_reduce(&out, &t.a, MT_REDUCE_SUM, 1, &ax0, false));
    MT_CHECK_OK(mt_array_to_host(r2, 4500 * sizeof(float), &out));
    mt_array_clear(&out);
    MT_CHECK(memcmp(r1, r2, 4500 * sizeof(float)) == 0);

    /* sum over rows of x * y, y one row broadcast down the columns */
    int64_t dy = 4500;
    tarr y = make_arr(dev, MT_FLOAT32, 1, &dy, FILL_WIDE);
    mt_kexpr e;
    mt_kexpr_init(&e);
    int32_t i0 = mt_kexpr_input(&e, 0, MT_FLOAT32), i1 = mt_kexpr_input(&e, 1, MT_FLOAT32);
    MT_CHECK_OK(mt_kexpr_add_output(&e, mt_kexpr_binary(&e, MT_SOP_MUL, i0, i1)));
    MT_CHECK_OK(mt_array_empty(&out, dev, MT_FLOAT32, 1, &dy, 'C'));
    const mt_array *ins[2] = {&t.a, &y.a};
    MT_CHECK_OK(mt_reduce_fused(&e, 2, ins, MT_REDUCE_SUM, 1, &ax0, &out, 0, NULL));
    MT_CHECK_OK(mt_array_to_host(r1, 4500 * sizeof(float), &out));
    for (int64_t c = 0; c < 4500; c += 7) {
        long double sum = 0, sabs = 0;
        for (int64_t r = 0; r < 701; r++) {
            float v = h[r * 4500 + c] * ((float *)y.host)[c];
            sum += (long double)v;
            sabs += fabsl((long double)v);
        }
        if (isnan((double)sum))
            MT_CHECK(isnan(r1[c]));
        else
            MT_CHECK_CLOSE(r1[c], (double)sum, 1e-6 * (double)sabs, 1e-6);
    }
    mt_array_clear(&out);
    mt_kexpr_deinit(&e);
    free(r1);
    free(r2);
    free_arr(&y);
    free_arr(&t);
    mt_device_release(dev);
}

MT_TEST(sum_20m_ones_exact)
{
    ones_body();
}
MT_TEST(columns_accuracy_wide_deterministic)
{
    columns_body();
}
MT_TEST(pairwise_accuracy)
{
    accuracy_body();
}

/* ---------------------------------------------------------------- fused maps */

static void fused_body(void)
{
    mt_device *dev = open_dev();
    /* sum of squares over axis 1 of a (30, 50) float32 array */
    int64_t d2[2] = {30, 50};
    tarr x = make_arr(dev, MT_FLOAT32, 2, d2, FILL_WIDE);
    mt_kexpr e;
    mt_kexpr_init(&e);
    int32_t i0 = mt_kexpr_input(&e, 0, MT_FLOAT32);
    MT_CHECK_OK(mt_kexpr_add_output(&e, mt_kexpr_binary(&e, MT_SOP_MUL, i0, i0)));
    mt_array out = {0};
    int64_t n30 = 30;
    MT_CHECK_OK(mt_array_empty(&out, dev, MT_FLOAT32, 1, &n30, 'C'));
    const mt_array *ins[2] = {&x.a, NULL};
    int32_t ax1 = 1;
    MT_CHECK_OK(mt_reduce_fused(&e, 1, ins, MT_REDUCE_SUM, 1, &ax1, &out, 0, NULL));
    float got[30];
    MT_CHECK_OK(mt_array_to_host(got, sizeof got, &out));
    for (int r = 0; r < 30; r++) {
        long double s = 0;
        for (int c = 0; c < 50; c++) {
            float v = ((float *)x.host)[r * 50 + c];
            s += (long double)(v * v);
        }
        MT_CHECK_CLOSE(got[r], (double)s, 0, 1e-6);
    }
    mt_array_clear(&out);
    mt_kexpr_deinit(&e);

    /* mean of x * y with broadcasting: x (4, 1, 6), y (5, 6) -> (4, 5, 6), over axes (0, 2) */
    int64_t dx[3] = {4, 1, 6}, dy[2] = {5, 6};
    tarr bx = make_arr(dev, MT_FLOAT32, 3, dx, FILL_WIDE);
    tarr by = make_arr(dev, MT_FLOAT32, 2, dy, FILL_WIDE);
    mt_kexpr_init(&e);
    int32_t a0 = mt_kexpr_input(&e, 0, MT_FLOAT32), a1 = mt_kexpr_input(&e, 1, MT_FLOAT32);
    MT_CHECK_OK(mt_kexpr_add_output(&e, mt_kexpr_binary(&e, MT_SOP_MUL, a0, a1)));
    int32_t axes[2] = {0, -1};
    ins[0] = &bx.a;
    ins[1] = &by.a;
    for (int keep = 0; keep < 2; keep++) {
        int64_t od[3] = {1, 5, 1};
        if (keep)
            MT_CHECK_OK(mt_array_empty(&out, dev, MT_FLOAT32, 3, od, 'C'));
        else
            MT_CHECK_OK(mt_array_empty(&out, dev, MT_FLOAT32, 1, &od[1], 'C'));
        MT_CHECK_OK(mt_reduce_fused(&e, 2, ins, MT_REDUCE_MEAN, 2, axes, &out, 0, NULL));
        float m[5];
        MT_CHECK_OK(mt_array_to_host(m, sizeof m, &out));
        for (int j = 0; j < 5; j++) {
            long double s = 0;
            for (int i = 0; i < 4; i++)
                for (int k = 0; k < 6; k++)
                    s += (long double)(((float *)bx.host)[i * 6 + k] *
                                       ((float *)by.host)[j * 6 + k]);
            MT_CHECK_CLOSE(m[j], (double)(s / 24), 1e-6, 1e-6);
        }
        mt_array_clear(&out);
    }
    /* max and argmax of x * y over axis 1 (the broadcast axis of x) */
    int32_t axm = 1;
    int64_t od2[2] = {4, 6};
    MT_CHECK_OK(mt_array_empty(&out, dev, MT_INT64, 2, od2, 'C'));
    MT_CHECK_OK(mt_reduce_fused(&e, 2, ins, MT_REDUCE_ARGMAX, 1, &axm, &out, 0, NULL));
    int64_t am[24];
    MT_CHECK_OK(mt_array_to_host(am, sizeof am, &out));
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 6; k++) {
            int64_t best = -1;
            float bv = 0;
            for (int j = 0; j < 5; j++) {
                float v = ((float *)bx.host)[i * 6 + k] * ((float *)by.host)[j * 6 + k];
                if (best < 0 || v > bv) {
                    best = j;
                    bv = v;
                }
            }
            MT_CHECK_EQ_INT(am[i * 6 + k], best);
        }
    mt_array_clear(&out);
    mt_kexpr_deinit(&e);

    /* count of x > prm0 (bool map, int64 sum), any/all, into a strided output view */
    mt_kexpr_init(&e);
    i0 = mt_kexpr_input(&e, 0, MT_FLOAT32);
    int32_t p0 = mt_kexpr_param(&e, 0, MT_FLOAT32);
    MT_CHECK_OK(mt_kexpr_add_output(&e, mt_kexpr_binary(&e, MT_SOP_GT, i0, p0)));
    mt_scalar thr = mt_scalar_f64(0.5);
    ins[0] = &x.a;
    int64_t big = 60;
    mt_array ob = {0}, ov = {0};
    MT_CHECK_OK(mt_array_zeros(&ob, dev, MT_INT64, 1, &big));
    mt_slice every2 = mt_slice_range(0, 60, 2);
    MT_CHECK_OK(mt_array_slice(&ov, &ob, 1, &every2));
    MT_CHECK_OK(mt_reduce_fused(&e, 1, ins, MT_REDUCE_SUM, 1, &ax1, &ov, 1, &thr));
    int64_t cnt[60];
    MT_CHECK_OK(mt_array_to_host(cnt, sizeof cnt, &ob));
    for (int r = 0; r < 30; r++) {
        int64_t c = 0;
        for (int k = 0; k < 50; k++)
            c += ((float *)x.host)[r * 50 + k] > 0.5f;
        MT_CHECK_EQ_INT(cnt[2 * r], c);
        MT_CHECK_EQ_INT(cnt[2 * r + 1], 0);
    }
    mt_array_clear(&ov);
    mt_array_clear(&ob);
    MT_CHECK_OK(mt_array_empty(&out, dev, MT_BOOL, 0, NULL, 'C'));
    uint8_t bres = 9;
    thr = mt_scalar_f64(1.99);
    MT_CHECK_OK(mt_reduce_fused(&e, 1, ins, MT_REDUCE_ANY, 0, NULL, &out, 1, &thr));
    MT_CHECK_OK(mt_array_to_host(&bres, 1, &out));
    bool anyv = false;
    for (int k = 0; k < 1500; k++)
        anyv = anyv || ((float *)x.host)[k] > 1.99f;
    MT_CHECK_EQ_INT(bres, anyv);
    thr = mt_scalar_f64(-3.0);
    MT_CHECK_OK(mt_reduce_fused(&e, 1, ins, MT_REDUCE_ALL, 0, NULL, &out, 1, &thr));
    MT_CHECK_OK(mt_array_to_host(&bres, 1, &out));
    MT_CHECK_EQ_INT(bres, 1);
    mt_array_clear(&out);
    mt_kexpr_deinit(&e);

    /* a map reading the element index (materialised first): sum of index over a (10, 20)
     * array is 199 * 200 / 2; over axis 0 it is sum_i (20 i + k) */
    mt_kexpr_init(&e);
    i0 = mt_kexpr_input(&e, 0, MT_FLOAT32);
    int32_t ix = mt_kexpr_index(&e);
    int32_t z =
        mt_kexpr_binary(&e, MT_SOP_MUL, i0, mt_kexpr_const(&e, mt_scalar_f64(0), MT_FLOAT32));
    int32_t sum = mt_kexpr_binary(&e, MT_SOP_ADD, mt_kexpr_cast(&e, z, MT_FLOAT64),
                                  mt_kexpr_cast(&e, ix, MT_FLOAT64));
    MT_CHECK_OK(mt_kexpr_add_output(&e, sum));
    int64_t d10[2] = {10, 20};
    tarr q = make_arr(dev, MT_FLOAT32, 2, d10, FILL_WIDE);
    ins[0] = &q.a;
    int64_t n20 = 20;
    MT_CHECK_OK(mt_array_empty(&out, dev, MT_FLOAT64, 1, &n20, 'C'));
    int32_t ax0 = 0;
    MT_CHECK_OK(mt_reduce_fused(&e, 1, ins, MT_REDUCE_SUM, 1, &ax0, &out, 0, NULL));
    double sv[20];
    MT_CHECK_OK(mt_array_to_host(sv, sizeof sv, &out));
    for (int k = 0; k < 20; k++)
        MT_CHECK_CLOSE(sv[k], 900.0 + 10.0 * k, 0, 0);
    mt_array_clear(&out);
    mt_kexpr_deinit(&e);
    free_arr(&q);
    free_arr(&bx);
    free_arr(&by);
    free_arr(&x);
    mt_device_release(dev);
}

MT_TEST(fused_maps)
{
    fused_body();
}

/* ---------------------------------------------------------------- errors */

MT_TEST(error_paths)
{
    mt_device *dev = open_dev();
    int64_t dims[2] = {3, 4};
    tarr t = make_arr(dev, MT_FLOAT32, 2, dims, FILL_WIDE);
    mt_array out = {0};
    int32_t bad[2] = {0, 2}, dup[2] = {1, -1}, neg[1] = {-3};
    MT_CHECK_ERR(mt_array_reduce(&out, &t.a, MT_REDUCE_SUM, 2, bad, false), MT_ERR_RANGE,
                 "axis 2 is out of bounds for array of dimension 2");
    MT_CHECK_ERR(mt_array_reduce(&out, &t.a, MT_REDUCE_MAX, 1, neg, false), MT_ERR_RANGE,
                 "axis -3 is out of bounds");
    MT_CHECK_ERR(mt_array_reduce(&out, &t.a, MT_REDUCE_SUM, 2, dup, false), MT_ERR_INVALID,
                 "duplicate value in 'axis'");
    MT_CHECK_ERR(mt_array_reduce(&out, &t.a, (mt_reduce_op)42, 0, NULL, false), MT_ERR_INVALID,
                 "invalid op");
    MT_CHECK_ERR(mt_array_reduce(&out, &t.a, MT_REDUCE_SUM, 1, NULL, false), MT_ERR_INVALID,
                 "NULL");
    MT_CHECK(out.buf == NULL);

    mt_kexpr e;
    mt_kexpr_init(&e);
    int32_t i0 = mt_kexpr_input(&e, 0, MT_FLOAT32);
    MT_CHECK_OK(mt_kexpr_add_output(&e, mt_kexpr_unary(&e, MT_SOP_ABS, i0)));
    const mt_array *ins[2] = {&t.a, &t.a};
    int64_t n3 = 3, n4 = 4;
    int32_t ax1 = 1;
    MT_CHECK_OK(mt_array_empty(&out, dev, MT_FLOAT64, 1, &n3, 'C'));
    MT_CHECK_ERR(mt_reduce_fused(&e, 1, ins, MT_REDUCE_SUM, 1, &ax1, &out, 0, NULL), MT_ERR_DTYPE,
                 "output is float64 but sum of float32 gives float32");
    mt_array_clear(&out);
    MT_CHECK_OK(mt_array_empty(&out, dev, MT_FLOAT32, 1, &n4, 'C'));
    MT_CHECK_ERR(mt_reduce_fused(&e, 1, ins, MT_REDUCE_SUM, 1, &ax1, &out, 0, NULL), MT_ERR_SHAPE,
                 "output shape (4");
    mt_array_clear(&out);
    MT_CHECK_OK(mt_array_empty(&out, dev, MT_FLOAT32, 1, &n3, 'C'));
    /* the map reads input 0 as float32: an int32 input is refused */
    mt_array ti = {0};
    MT_CHECK_OK(mt_array_zeros(&ti, dev, MT_INT32, 2, dims));
    const mt_array *insi[1] = {&ti};
    MT_CHECK_ERR(mt_reduce_fused(&e, 1, insi, MT_REDUCE_SUM, 1, &ax1, &out, 0, NULL), MT_ERR_DTYPE,
                 "input 0 is int32 but the map reads it as float32");
    /* incompatible broadcast */
    mt_array tb = {0};
    int64_t d5[1] = {5};
    MT_CHECK_OK(mt_array_zeros(&tb, dev, MT_FLOAT32, 1, d5));
    const mt_array *insb[2] = {&t.a, &tb};
    MT_CHECK_ERR(mt_reduce_fused(&e, 2, insb, MT_REDUCE_SUM, 1, &ax1, &out, 0, NULL), MT_ERR_SHAPE,
                 NULL);
    /* read-only output (broadcast view) */
    mt_array ro = {0};
    MT_CHECK_OK(mt_array_broadcast_to(&ro, &tb, 1, d5));
    MT_CHECK_ERR(mt_reduce_fused(&e, 1, ins, MT_REDUCE_SUM, 0, NULL, &ro, 0, NULL), MT_ERR_INVALID,
                 "read-only");
    /* a map with two outputs, a param beyond nparams */
    MT_CHECK_OK(mt_kexpr_add_output(&e, i0));
    MT_CHECK_ERR(mt_reduce_fused(&e, 1, ins, MT_REDUCE_SUM, 1, &ax1, &out, 0, NULL), MT_ERR_INVALID,
                 "exactly one output");
    mt_kexpr_deinit(&e);
    mt_kexpr_init(&e);
    i0 = mt_kexpr_input(&e, 0, MT_FLOAT32);
    MT_CHECK_OK(mt_kexpr_add_output(
        &e, mt_kexpr_binary(&e, MT_SOP_ADD, i0, mt_kexpr_param(&e, 2, MT_FLOAT32))));
    mt_scalar pv[1] = {mt_scalar_f64(1)};
    MT_CHECK_ERR(mt_reduce_fused(&e, 1, ins, MT_REDUCE_SUM, 1, &ax1, &out, 1, pv), MT_ERR_INVALID,
                 NULL);
    MT_CHECK_ERR(mt_reduce_fused(&e, 1, ins, MT_REDUCE_MAX, 3, (int32_t[]){0, 1, 1}, &out, 3,
                                 (mt_scalar[]){pv[0], pv[0], pv[0]}),
                 MT_ERR_INVALID, "duplicate");
    mt_kexpr_deinit(&e);
    mt_array_clear(&ro);
    mt_array_clear(&tb);
    mt_array_clear(&ti);
    mt_array_clear(&out);
    free_arr(&t);
    mt_device_release(dev);
}

/* ---------------------------------------------------------------- the interpreter path */

MT_TEST(interp_all_ops_all_dtypes)
{
    use_interp();
    for (int d = 0; d < MT_DTYPE_COUNT; d++)
        all_ops_dtype((mt_dtype)d);
}
MT_TEST(interp_axes_and_views)
{
    use_interp();
    axes_3d_body();
    axes_4d_body();
    views_body(MT_FLOAT64);
    views_body(MT_INT16);
}
MT_TEST(interp_special_sizes_nan)
{
    use_interp();
    zero_d_body();
    size_zero_body();
    nan_ties_body();
    two_stage_body();
}
MT_TEST(interp_20m_ones_and_accuracy)
{
    use_interp();
    ones_body();
    accuracy_body();
    columns_body();
}
MT_TEST(interp_fused_maps)
{
    use_interp();
    fused_body();
}

/* ---------------------------------------------------------------- other backends' sources */

/* The CUDA rendering compiles with NVRTC (the library a CUDA backend would use; no GPU is
 * needed), loaded with dlopen where a CUDA toolkit is installed. */
typedef int (*nvrtc_create_fn)(void **, const char *, const char *, int, const char *const *,
                               const char *const *);
typedef int (*nvrtc_compile_fn)(void *, int, const char *const *);
typedef int (*nvrtc_logsize_fn)(void *, size_t *);
typedef int (*nvrtc_log_fn)(void *, char *);
typedef int (*nvrtc_destroy_fn)(void **);

MT_TEST(cuda_source_compiles)
{
    const char *env = getenv("MLTRAIN_NVRTC");
    void *lib = dlopen(env && *env ? env : "libnvrtc.so", RTLD_NOW);
    if (!lib) lib = dlopen("/usr/local/cuda/lib64/libnvrtc.so", RTLD_NOW);
    if (!lib) MT_SKIP("no libnvrtc (set MLTRAIN_NVRTC to its path)");
    nvrtc_create_fn create;
    nvrtc_compile_fn compile;
    nvrtc_logsize_fn logsize;
    nvrtc_log_fn getlog;
    nvrtc_destroy_fn destroy;
    *(void **)&create = dlsym(lib, "nvrtcCreateProgram");
    *(void **)&compile = dlsym(lib, "nvrtcCompileProgram");
    *(void **)&logsize = dlsym(lib, "nvrtcGetProgramLogSize");
    *(void **)&getlog = dlsym(lib, "nvrtcGetProgramLog");
    *(void **)&destroy = dlsym(lib, "nvrtcDestroyProgram");
    MT_CHECK(create && compile && logsize && getlog && destroy);
    mt_kexpr e;
    mt_kexpr_init(&e);
    int32_t a = mt_kexpr_input(&e, 0, MT_FLOAT16), b = mt_kexpr_input(&e, 1, MT_INT32);
    int32_t p = mt_kexpr_param(&e, 0, MT_FLOAT32);
    int32_t m = mt_kexpr_binary(&e, MT_SOP_MUL, mt_kexpr_cast(&e, a, MT_FLOAT32),
                                mt_kexpr_cast(&e, b, MT_FLOAT32));
    MT_CHECK_OK(mt_kexpr_add_output(
        &e, mt_kexpr_cast(&e, mt_kexpr_binary(&e, MT_SOP_ADD, m, p), MT_FLOAT16)));
    mt_kexpr e2; /* identity over each dtype */
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    for (int o = 0; o < NOPS; o++) {
        static const int dts[] = {-1,         MT_BOOL,     MT_INT8,    MT_UINT64,
                                  MT_FLOAT16, MT_BFLOAT16, MT_FLOAT32, MT_FLOAT64};
        for (int di = 0; di < 8; di++) {
            int d = dts[di];
            bool fused = d < 0;
            mt_dtype dt = fused ? MT_FLOAT16 : (mt_dtype)d;
            mt_kexpr_init(&e2);
            MT_CHECK_OK(mt_kexpr_add_output(&e2, mt_kexpr_input(&e2, 0, dt)));
            mt__rsig sig = {.lang = MT_KLANG_CUDA,
                            .op = g_ops[o],
                            .map = fused ? &e : &e2,
                            .nin = fused ? 2 : 1,
                            .in_dt = {dt, MT_INT32},
                            .map_dt = dt,
                            .ndj = (o + d) % 3,
                            .ndk = 1 + (o + d + 3) % 2,
                            .inner = {'g', 'z'},
                            .interleave = (o + d) % 2 == 0,
                            .lanes = 1,
                            .nparams = fused ? 1 : 0};
            if (sig.interleave) sig.ndk = 1;
            sig.out_dt = mt_reduce_result_dtype(g_ops[o], dt);
            sig.acc = mt__reduce_acc_kind(g_ops[o], dt);
            mt_strbuf_clear(&sb);
            MT_CHECK_OK(mt__reduce_source(&sb, &sig, "mt_reduce_test"));
            void *prog = NULL;
            MT_CHECK(create(&prog, sb.data, "reduce.cu", 0, NULL, NULL) == 0);
            const char *opts[] = {"--gpu-architecture=compute_75", "-default-device"};
            int rc = compile(prog, 2, opts);
            if (rc != 0) {
                size_t n = 0;
                logsize(prog, &n);
                char *log = calloc(n + 1, 1);
                if (log) getlog(prog, log);
                char path[600];
                snprintf(path, sizeof path, "%s/reduce.cu", mt_test_tmpdir());
                mt_file_write_atomic(path, sb.data, sb.len, 0644);
                mt_test_fail(__FILE__, __LINE__, "NVRTC rejected the %s kernel over %s (%s): %s",
                             mt_reduce_op_name(g_ops[o]), mt_dtype_name(dt), path, log ? log : "");
            }
            destroy(&prog);
            mt_kexpr_deinit(&e2);
        }
    }
    mt_strbuf_deinit(&sb);
    mt_kexpr_deinit(&e);
    /* lib stays loaded: unloading it would orphan its runtime's allocations (LeakSanitizer) */
}

/* A few reductions on an OpenCL device (where present) against the same reference. */
MT_TEST(opencl_matches_reference)
{
    mt_device *dev = open_named("opencl");
    int64_t dims[2] = {3, 50000};
    tarr t = make_arr(dev, MT_FLOAT32, 2, dims, FILL_TIES);
    ((float *)t.host)[50000 + 30000] = NAN;
    reupload(&t, dev, 2, dims);
    int32_t ax1 = 1, ax0 = 0;
    check_reduce(&t, MT_REDUCE_SUM, 0, NULL, false, "opencl full sum (two-stage)");
    check_reduce(&t, MT_REDUCE_ARGMAX, 1, &ax1, false, "opencl argmax rows (two-stage)");
    check_reduce(&t, MT_REDUCE_MAX, 1, &ax0, true, "opencl max columns");
    int64_t d3[3] = {4, 6, 5};
    tarr u = make_arr(dev, MT_INT16, 3, d3, FILL_WIDE);
    int32_t axs[2] = {0, 2};
    check_reduce(&u, MT_REDUCE_SUM, 2, axs, false, "opencl int16 sum axes (0, 2)");
    free_arr(&u);
    free_arr(&t);
    mt_device_release(dev);
}
