/* The OpenCL backend on a real device (PoCL in CI), checked against the host backend and
 * against plain reference loops: device listing, raw buffer transfers with offsets, the kernel
 * launch convention, copies between devices and through strided views, generated elementwise
 * and reduction kernels, CLBlast GEMM, counter-based random fills, the caching allocator,
 * streams/events and the error paths.
 *
 * Every case skips (exit 77) when no OpenCL device is present. PoCL compiles each new program
 * in about a second and CLBlast's first GEMM of a routine in 5-10 s (both cached on disk under
 * POCL_CACHE_DIR), so the cases share a few expressions and one GEMM shape family per dtype. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "mltrain/gpuarray.h"
#include "mt_test.h"
#include "mt_test_device.h"

#include "../../src/gpuarray/gpuarray_impl.h"

/* ---------------------------------------------------------------- helpers */

static mt_device *open_cl(void) { return mt_test_open_or_skip("opencl"); }
static mt_device *open_host(void) { return mt_test_open_or_skip("host"); }

/* xorshift64*: test data independent of the library's Philox. */
static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static double urand(double lo, double hi)
{
    g_rng ^= g_rng >> 12;
    g_rng ^= g_rng << 25;
    g_rng ^= g_rng >> 27;
    uint64_t x = g_rng * 0x2545f4914f6cdd1dull;
    return lo + (hi - lo) * ((double)(x >> 11) * 0x1.0p-53);
}

/* n values in [lo, hi) (rounded to integers when `integral`), stored as dtype dt. */
static void *rand_data(mt_dtype dt, size_t n, double lo, double hi, bool integral)
{
    double *d = mt_malloc(n * sizeof *d);
    void *out = mt_malloc(n * mt_dtype_size(dt) + 1);
    MT_CHECK(d && out);
    for (size_t i = 0; i < n; i++) d[i] = integral ? floor(urand(lo, hi)) : urand(lo, hi);
    mt_dtype_convert(out, dt, (ptrdiff_t)mt_dtype_size(dt), d, MT_FLOAT64, sizeof(double), n);
    mt_free(d);
    return out;
}

/* The array's elements in C order, as raw bytes (caller frees). */
static void *fetch_raw(const mt_array *a)
{
    size_t nb = mt_array_nbytes(a);
    void *p = mt_malloc(nb + 1);
    MT_CHECK(p);
    MT_CHECK_OK(mt_array_to_host(p, nb, a));
    return p;
}

/* The array's elements in C order converted to float64 (caller frees). */
static double *fetch_f64(const mt_array *a)
{
    size_t n = (size_t)mt_array_size(a);
    void *raw = fetch_raw(a);
    double *d = mt_malloc(n * sizeof *d + 1);
    MT_CHECK(d);
    mt_dtype_convert(d, MT_FLOAT64, sizeof(double), raw, a->dtype,
                     (ptrdiff_t)mt_dtype_size(a->dtype), n);
    mt_free(raw);
    return d;
}

/* Relative tolerance for results of inexact functions, by dtype. */
static double tol_of(mt_dtype dt)
{
    switch (dt) {
    case MT_FLOAT16: return 2e-3;
    case MT_BFLOAT16: return 1.6e-2;
    case MT_FLOAT32: return 4e-6;
    case MT_FLOAT64: return 1e-13;
    default: return 0;
    }
}

/* Checks that two arrays (any devices) hold the same values: bitwise when exact, else within
 * the dtype's tolerance. */
static void check_same(const char *what, const mt_array *got, const mt_array *want, bool exact)
{
    MT_CHECK_EQ_INT(got->dtype, want->dtype);
    MT_CHECK_EQ_INT(mt_array_size(got), mt_array_size(want));
    if (exact) {
        size_t nb = mt_array_nbytes(got), es = mt_array_itemsize(got);
        char *g = fetch_raw(got), *w = fetch_raw(want);
        for (size_t i = 0; i < nb; i += es) {
            if (memcmp(g + i, w + i, es) != 0) {
                double gv, wv;
                mt_dtype_convert(&gv, MT_FLOAT64, 0, g + i, got->dtype, 0, 1);
                mt_dtype_convert(&wv, MT_FLOAT64, 0, w + i, got->dtype, 0, 1);
                mt_test_fail(__FILE__, __LINE__, "%s: element %zu differs: %.17g vs %.17g", what,
                             i / es, gv, wv);
            }
        }
        mt_free(g);
        mt_free(w);
        return;
    }
    double *g = fetch_f64(got), *w = fetch_f64(want);
    double rtol = tol_of(got->dtype);
    mt_test_allclose(__FILE__, __LINE__, what, g, w, (size_t)mt_array_size(got), rtol, rtol);
    mt_free(g);
    mt_free(w);
}

static mt_array make_array(mt_device *dev, mt_dtype dt, int32_t nd, const int64_t *dims,
                           const void *data)
{
    mt_array a = {0};
    MT_CHECK_OK(mt_array_from_host(&a, dev, dt, nd, dims, data));
    return a;
}

/* ---------------------------------------------------------------- devices and buffers */

MT_TEST(device_list)
{
    mt_device *cl = open_cl();
    const mt_device_info *info = mt_device_get_info(cl);
    MT_CHECK_STR_EQ(info->name, "opencl:0:0");
    MT_CHECK_STR_EQ(mt_device_name(cl), "opencl:0:0");
    MT_CHECK(info->global_mem > 0);
    MT_CHECK(info->max_alloc > 0 && info->max_alloc <= info->global_mem);
    MT_CHECK(info->compute_units > 0);
    MT_CHECK(strlen(info->description) > 0);
    MT_CHECK(!mt_device_is_host_addressable(cl));
    mt_device_info *list = NULL;
    int32_t n = 0;
    MT_CHECK_OK(mt_device_list(&list, &n));
    MT_CHECK(n >= 2);
    MT_CHECK_STR_EQ(list[0].name, "host");
    bool found = false;
    for (int32_t i = 0; i < n; i++) {
        if (strcmp(list[i].name, "opencl:0:0") != 0) continue;
        found = true;
        MT_CHECK_STR_EQ(list[i].backend, "opencl");
        MT_CHECK_EQ_INT(list[i].global_mem, info->global_mem);
        MT_CHECK_EQ_INT(list[i].compute_units, info->compute_units);
        MT_CHECK_STR_EQ(list[i].description, info->description);
    }
    MT_CHECK(found);
    mt_free(list);
    /* the same name opens the same shared device */
    mt_device *again = NULL;
    MT_CHECK_OK(mt_device_open(&again, "opencl:0:0"));
    MT_CHECK(again == cl);
    mt_device_release(again);
    mt_device *none = NULL;
    MT_CHECK_ERR(mt_device_open(&none, "opencl:0:99"), MT_ERR_NOT_FOUND, "opencl:0:99");
    MT_CHECK_ERR(mt_device_open(&none, "opencl:42:0"), MT_ERR_NOT_FOUND, "opencl:42:0");
    mt_device_release(cl);
}

MT_TEST(buffer_roundtrip)
{
    mt_device *cl = open_cl();
    enum { N = 1000 };
    unsigned char src[N], back[N];
    for (int i = 0; i < N; i++) src[i] = (unsigned char)(i * 7 + 3);
    mt_buffer *b = NULL, *c = NULL;
    MT_CHECK_OK(mt_buffer_new(&b, cl, N));
    MT_CHECK_OK(mt_buffer_new(&c, cl, N));
    MT_CHECK(mt_buffer_host_ptr(b) == NULL);
    MT_CHECK_EQ_INT(mt_buffer_size(b), N);
    MT_CHECK(mt_buffer_device(b) == cl);
    MT_CHECK_OK(mt_buffer_write(b, 0, src, N, NULL));
    /* overwrite an inner range at an odd offset, read back pieces at offsets */
    MT_CHECK_OK(mt_buffer_write(b, 101, src + 500, 333, NULL));
    memset(back, 0, sizeof back);
    MT_CHECK_OK(mt_buffer_read(back, b, 0, N, NULL));
    for (int i = 0; i < N; i++) {
        unsigned char want = i >= 101 && i < 434 ? src[500 + i - 101] : src[i];
        MT_CHECK_EQ_INT(back[i], want);
    }
    memset(back, 0, sizeof back);
    MT_CHECK_OK(mt_buffer_read(back, b, 997, 3, NULL));
    MT_CHECK(memcmp(back, src + 997, 3) == 0);
    /* device -> device with offsets, and an overlapping copy inside one buffer */
    MT_CHECK_OK(mt_buffer_write(b, 0, src, N, NULL));
    MT_CHECK_OK(mt_buffer_copy(c, 10, b, 500, 400, NULL));
    MT_CHECK_OK(mt_buffer_read(back, c, 10, 400, NULL));
    MT_CHECK(memcmp(back, src + 500, 400) == 0);
    MT_CHECK_OK(mt_buffer_copy(b, 3, b, 0, 900, NULL));
    MT_CHECK_OK(mt_buffer_read(back, b, 3, 900, NULL));
    MT_CHECK(memcmp(back, src, 900) == 0);
    /* host buffer <-> OpenCL buffer */
    mt_device *host = open_host();
    mt_buffer *h = NULL;
    MT_CHECK_OK(mt_buffer_new(&h, host, N));
    MT_CHECK_OK(mt_buffer_write(b, 0, src, N, NULL));
    MT_CHECK_OK(mt_buffer_copy(h, 0, b, 0, N, NULL));
    MT_CHECK(memcmp(mt_buffer_host_ptr(h), src, N) == 0);
    memset(mt_buffer_host_ptr(h), 0x5a, 100);
    MT_CHECK_OK(mt_buffer_copy(c, 900, h, 0, 100, NULL));
    MT_CHECK_OK(mt_buffer_read(back, c, 900, 100, NULL));
    for (int i = 0; i < 100; i++) MT_CHECK_EQ_INT(back[i], 0x5a);
    /* an empty buffer is valid */
    mt_buffer *e = NULL;
    MT_CHECK_OK(mt_buffer_new(&e, cl, 0));
    MT_CHECK_EQ_INT(mt_buffer_size(e), 0);
    MT_CHECK_OK(mt_buffer_read(back, e, 0, 0, NULL));
    mt_buffer_release(e);
    mt_buffer_release(h);
    mt_buffer_release(c);
    mt_buffer_release(b);
    mt_device_release(host);
    mt_device_release(cl);
}

/* A hand-written kernel in the launch convention: buffers as (pointer, byte offset) pairs,
 * scalars of 4 and 8 bytes, nwork as a scalar and a grid-stride loop. */
static const char k_axpy_src[] =
    "__kernel void mt_test_axpy(__global char *p0, ulong o0, __global char *p1, ulong o1,\n"
    "                           float alpha, int bias, long nwork) {\n"
    "    __global const float *x = (__global const float *)(p0 + o0);\n"
    "    __global float *y = (__global float *)(p1 + o1);\n"
    "    for (long w = get_global_id(0); w < nwork; w += get_global_size(0))\n"
    "        y[w] = alpha * x[w] + (float)bias + (float)w;\n"
    "}\n";

static mt_status gen_axpy(void *ctx, mt_strbuf *src, char *entry, size_t entry_len)
{
    (void)ctx;
    mt_strbuf_append(src, k_axpy_src);
    snprintf(entry, entry_len, "mt_test_axpy");
    return MT_OK;
}

MT_TEST(kernel_launch_convention)
{
    mt_device *cl = open_cl();
    void *k = NULL;
    MT_CHECK_OK(mt__kernel_get(cl, "test_opencl:axpy", gen_axpy, NULL, &k));
    void *k2 = NULL;
    MT_CHECK_OK(mt__kernel_get(cl, "test_opencl:axpy", gen_axpy, NULL, &k2));
    MT_CHECK(k == k2); /* cached */
    /* sizes around the local size, a prime with a tail, and one large enough for many groups */
    const int64_t sizes[] = {1, 7, 255, 257, 100003};
    const int64_t nmax = 100003, xoff = 5, yoff = 3;
    float *x = rand_data(MT_FLOAT32, (size_t)(nmax + xoff), -2, 2, false);
    float *y = mt_malloc((size_t)(nmax + yoff + 1) * sizeof *y);
    mt_buffer *bx = NULL, *by = NULL;
    MT_CHECK_OK(mt_buffer_new(&bx, cl, (size_t)(nmax + xoff) * 4));
    MT_CHECK_OK(mt_buffer_new(&by, cl, (size_t)(nmax + yoff + 1) * 4));
    MT_CHECK_OK(mt_buffer_write(bx, 0, x, (size_t)(nmax + xoff) * 4, NULL));
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        int64_t n = sizes[si];
        float alpha = 1.5f;
        int32_t bias = -3;
        for (int64_t i = 0; i < nmax + yoff + 1; i++) y[i] = -7.0f;
        MT_CHECK_OK(mt_buffer_write(by, 0, y, (size_t)(nmax + yoff + 1) * 4, NULL));
        mt_karg args[5] = {
            {.kind = MT_KARG_BUFFER, .buf = bx, .offset = (size_t)xoff * 4},
            {.kind = MT_KARG_BUFFER, .buf = by, .offset = (size_t)yoff * 4},
            {.kind = MT_KARG_SCALAR, .scalar = &alpha, .size = 4},
            {.kind = MT_KARG_SCALAR, .scalar = &bias, .size = 4},
            {.kind = MT_KARG_SCALAR, .scalar = &n, .size = 8},
        };
        MT_CHECK_OK(cl->ops->kernel_launch(cl, k, 5, args, n, 1024, NULL));
        MT_CHECK_OK(mt_buffer_read(y, by, 0, (size_t)(nmax + yoff + 1) * 4, NULL));
        for (int64_t i = 0; i < nmax + yoff + 1; i++) {
            float want = -7.0f;
            if (i >= yoff && i < yoff + n) {
                int64_t w = i - yoff;
                want = alpha * x[xoff + w] + (float)bias + (float)w;
            }
            if (fabsf(y[i] - want) > 1e-6f * (1.0f + fabsf(want)))
                mt_test_fail(__FILE__, __LINE__, "n=%lld: y[%lld] = %g, want %g", (long long)n,
                             (long long)i, (double)y[i], (double)want);
        }
    }
    /* a launch whose arguments do not match the kernel's parameters */
    mt_karg bad[1] = {{.kind = MT_KARG_BUFFER, .buf = bx, .offset = 0}};
    MT_CHECK_ERR(cl->ops->kernel_launch(cl, k, 1, bad, 10, 1, NULL), MT_ERR_INVALID,
                 "takes 7 parameters");
    mt_buffer_release(bx);
    mt_buffer_release(by);
    mt_free(x);
    mt_free(y);
    mt_device_release(cl);
}

/* ---------------------------------------------------------------- array copies */

MT_TEST(array_copies_strided)
{
    mt_device *cl = open_cl();
    mt_device *host = open_host();
    const int64_t dims[3] = {4, 6, 5};
    float *data = rand_data(MT_FLOAT32, 120, -100, 100, false);
    mt_array h = make_array(host, MT_FLOAT32, 3, dims, data);
    mt_array d = {0}, back = {0};
    MT_CHECK_OK(mt_array_copy_to(&d, &h, cl));
    MT_CHECK(mt_array_device(&d) == cl);
    check_same("host -> opencl", &d, &h, true);
    MT_CHECK_OK(mt_array_copy_to(&back, &d, host));
    check_same("opencl -> host", &back, &h, true);
    mt_array_clear(&back);
    /* views with negative steps and a permutation, on both devices */
    mt_slice sl[3] = {mt_slice_range(MT_SLICE_UNSET, MT_SLICE_UNSET, -1),
                      mt_slice_range(5, 0, -2), mt_slice_range(1, 5, 1)};
    const int32_t perm[3] = {2, 0, 1};
    mt_array hv = {0}, dv = {0}, hvt = {0}, dvt = {0};
    MT_CHECK_OK(mt_array_slice(&hv, &h, 3, sl));
    MT_CHECK_OK(mt_array_slice(&dv, &d, 3, sl));
    MT_CHECK_OK(mt_array_transpose(&hvt, &hv, perm));
    MT_CHECK_OK(mt_array_transpose(&dvt, &dv, perm));
    /* reference: plain index loops over the host data */
    float ref[4 * 3 * 4];
    int r = 0;
    for (int k = 1; k < 5; k++)
        for (int i = 3; i >= 0; i--)
            for (int j = 5; j > 0; j -= 2) ref[r++] = data[i * 30 + j * 5 + k];
    MT_CHECK_EQ_INT(mt_array_size(&dvt), r);
    float *got = fetch_raw(&dvt);
    MT_CHECK(memcmp(got, ref, sizeof ref) == 0);
    mt_free(got);
    /* copies of the strided view: opencl -> opencl, opencl -> host, host view -> opencl */
    mt_array c1 = {0}, c2 = {0}, c3 = {0};
    MT_CHECK_OK(mt_array_copy_to(&c1, &dvt, NULL));
    MT_CHECK(mt_array_is_c_contiguous(&c1) && mt_array_device(&c1) == cl);
    MT_CHECK_OK(mt_array_copy_to(&c2, &dvt, host));
    MT_CHECK_OK(mt_array_copy_to(&c3, &hvt, cl));
    got = fetch_raw(&c1);
    MT_CHECK(memcmp(got, ref, sizeof ref) == 0);
    mt_free(got);
    check_same("strided view opencl -> host", &c2, &c1, true);
    check_same("strided host view -> opencl", &c3, &c1, true);
    /* copy into a strided destination view on the device */
    mt_array z = {0}, zv = {0}, zvt = {0};
    MT_CHECK_OK(mt_array_zeros(&z, cl, MT_FLOAT32, 3, dims));
    MT_CHECK_OK(mt_array_slice(&zv, &z, 3, sl));
    MT_CHECK_OK(mt_array_transpose(&zvt, &zv, perm));
    MT_CHECK_OK(mt_array_copy(&zvt, &c3));
    float *zr = fetch_raw(&z);
    r = 0;
    for (int k = 1; k < 5; k++)
        for (int i = 3; i >= 0; i--)
            for (int j = 5; j > 0; j -= 2) {
                MT_CHECK_EQ_INT(zr[i * 30 + j * 5 + k] == ref[r], 1);
                zr[i * 30 + j * 5 + k] = 0;
                r++;
            }
    for (int i = 0; i < 120; i++) MT_CHECK(zr[i] == 0.0f); /* nothing else written */
    mt_free(zr);
    mt_array *arrs[] = {&h, &d, &hv, &dv, &hvt, &dvt, &c1, &c2, &c3, &z, &zv, &zvt};
    for (size_t i = 0; i < sizeof arrs / sizeof arrs[0]; i++) mt_array_clear(arrs[i]);
    mt_free(data);
    mt_device_release(host);
    mt_device_release(cl);
}

MT_TEST(array_convert_on_device)
{
    mt_device *cl = open_cl();
    mt_device *host = open_host();
    /* values that stress conversions: fractions, negatives, halfway cases, out of range */
    enum { N = 64 };
    double src[N];
    for (int i = 0; i < N; i++) src[i] = (i - 32) * 13.37 + (i % 3) * 0.5;
    src[0] = 65504.0 * 1.5; /* float16 overflow */
    src[1] = 1.0 / 3.0;
    src[2] = -0.0;
    src[3] = 2.5; /* round half to even */
    const int64_t dims[1] = {N};
    const mt_dtype targets[] = {MT_FLOAT32, MT_FLOAT16, MT_BFLOAT16, MT_INT32, MT_UINT8,
                                MT_BOOL, MT_INT64};
    for (size_t t = 0; t < sizeof targets / sizeof targets[0]; t++) {
        mt_dtype dt = targets[t];
        if (mt_dtype_is_int(dt)) {
            /* in range for uint8 too: out-of-range float -> int is tested with the host
             * conversions, not here */
            for (int i = 0; i < N; i++) src[i] = fmod(fabs(src[i]), 250.0);
        }
        mt_array hs = make_array(host, MT_FLOAT64, 1, dims, src), ds = {0};
        MT_CHECK_OK(mt_array_copy_to(&ds, &hs, cl));
        mt_array hc = {0}, dc = {0};
        MT_CHECK_OK(mt_array_astype(&hc, &hs, dt));
        MT_CHECK_OK(mt_array_astype(&dc, &ds, dt));
        MT_CHECK(mt_array_device(&dc) == cl);
        /* reference: the core conversion routine on host memory */
        char want[N * 8];
        mt_dtype_convert(want, dt, (ptrdiff_t)mt_dtype_size(dt), src, MT_FLOAT64, 8, N);
        char *got = fetch_raw(&dc);
        if (memcmp(got, want, N * mt_dtype_size(dt)) != 0)
            mt_test_fail(__FILE__, __LINE__, "float64 -> %s on opencl differs from the reference",
                         mt_dtype_name(dt));
        mt_free(got);
        check_same(mt_dtype_name(dt), &dc, &hc, true);
        /* and back through a strided, reversed view into float32 on the device */
        mt_slice rev = mt_slice_range(MT_SLICE_UNSET, MT_SLICE_UNSET, -3);
        mt_array dv = {0}, dback = {0}, hv = {0}, hback = {0};
        MT_CHECK_OK(mt_array_slice(&dv, &dc, 1, &rev));
        MT_CHECK_OK(mt_array_slice(&hv, &hc, 1, &rev));
        MT_CHECK_OK(mt_array_astype(&dback, &dv, MT_FLOAT32));
        MT_CHECK_OK(mt_array_astype(&hback, &hv, MT_FLOAT32));
        check_same("reversed view back to float32", &dback, &hback, true);
        mt_array *arrs[] = {&hs, &ds, &hc, &dc, &dv, &dback, &hv, &hback};
        for (size_t i = 0; i < sizeof arrs / sizeof arrs[0]; i++) mt_array_clear(arrs[i]);
    }
    mt_device_release(host);
    mt_device_release(cl);
}

/* ---------------------------------------------------------------- elementwise */

/* Runs expr on host and on OpenCL over the same inputs (given on the host) and compares each
 * output; exact[j] selects a bitwise comparison for output j. */
static void elemwise_both(const mt_kexpr *e, int32_t nin, mt_array *hin, const mt_dtype *odt,
                          int32_t nd, const int64_t *dims, const bool *exact, const char *what)
{
    mt_device *cl = open_cl();
    mt_device *host = mt_array_device(&hin[0]);
    mt_array din[8] = {{0}}, hout[8] = {{0}}, dout[8] = {{0}};
    const mt_array *hip[8], *dip[8];
    mt_array *hop[8], *dop[8];
    for (int32_t i = 0; i < nin; i++) {
        MT_CHECK_OK(mt_array_copy_to(&din[i], &hin[i], cl));
        hip[i] = &hin[i];
        dip[i] = &din[i];
    }
    for (int32_t j = 0; j < e->nouts; j++) {
        MT_CHECK_OK(mt_array_empty(&hout[j], host, odt[j], nd, dims, 'C'));
        MT_CHECK_OK(mt_array_empty(&dout[j], cl, odt[j], nd, dims, 'C'));
        hop[j] = &hout[j];
        dop[j] = &dout[j];
    }
    MT_CHECK_OK(mt_elemwise(e, nin, hip, hop, 0, NULL));
    MT_CHECK_OK(mt_elemwise(e, nin, dip, dop, 0, NULL));
    for (int32_t j = 0; j < e->nouts; j++) {
        char label[96];
        snprintf(label, sizeof label, "%s: output %d (%s)", what, (int)j,
                 mt_sop_name(e->nodes[e->outs[j]].op));
        check_same(label, &dout[j], &hout[j], exact[j]);
        mt_array_clear(&hout[j]);
        mt_array_clear(&dout[j]);
    }
    for (int32_t i = 0; i < nin; i++) mt_array_clear(&din[i]);
    mt_device_release(cl);
}

/* The same float expression in float32 and float64: exact arithmetic and inexact functions. */
static void float_math(mt_dtype dt)
{
    mt_device *cl = open_cl(); /* skips before any work when there is no device */
    mt_device *host = open_host();
    const int64_t n = 100003;
    void *a = rand_data(dt, (size_t)n, -3, 3, false), *b = rand_data(dt, (size_t)n, 0.1, 4, false),
         *c = rand_data(dt, (size_t)n, -10, 10, false);
    mt_array in[3] = {make_array(host, dt, 1, &n, a), make_array(host, dt, 1, &n, b),
                      make_array(host, dt, 1, &n, c)};
    mt_kexpr e;
    mt_kexpr_init(&e);
    int32_t ia = mt_kexpr_input(&e, 0, dt), ib = mt_kexpr_input(&e, 1, dt),
            ic = mt_kexpr_input(&e, 2, dt);
    int32_t outs[8] = {
        mt_kexpr_binary(&e, MT_SOP_ADD, ia, ib),
        mt_kexpr_binary(&e, MT_SOP_MUL, ia, ic),
        mt_kexpr_where(&e, mt_kexpr_binary(&e, MT_SOP_LT, ia, ic),
                       mt_kexpr_binary(&e, MT_SOP_MAX, ia, ib), mt_kexpr_unary(&e, MT_SOP_NEG, ic)),
        mt_kexpr_binary(&e, MT_SOP_DIV, ic, ib),
        mt_kexpr_unary(&e, MT_SOP_EXP, ia),
        mt_kexpr_unary(&e, MT_SOP_LOG, ib),
        mt_kexpr_unary(&e, MT_SOP_TANH, ia),
        mt_kexpr_unary(&e, MT_SOP_SIGMOID, mt_kexpr_unary(&e, MT_SOP_SQRT, ib)),
    };
    for (int j = 0; j < 8; j++) MT_CHECK_OK(mt_kexpr_add_output(&e, outs[j]));
    MT_CHECK_OK(mt_kexpr_validate(&e));
    const mt_dtype odt[8] = {dt, dt, dt, dt, dt, dt, dt, dt};
    const bool exact[8] = {true, true, true, false, false, false, false, false};
    elemwise_both(&e, 3, in, odt, 1, &n, exact, mt_dtype_name(dt));
    mt_kexpr_deinit(&e);
    for (int i = 0; i < 3; i++) mt_array_clear(&in[i]);
    mt_free(a);
    mt_free(b);
    mt_free(c);
    mt_device_release(host);
    mt_device_release(cl);
}

MT_TEST(elemwise_float32)
{
    float_math(MT_FLOAT32);
}

MT_TEST(elemwise_float64)
{
    float_math(MT_FLOAT64);
}

/* Integer semantics must match bit for bit: floor division and modulo (Python), division by
 * zero giving 0, wrapping products, shifts, bit ops, comparisons to bool, widening casts. */
MT_TEST(elemwise_int32)
{
    mt_device *cl = open_cl();
    mt_device *host = open_host();
    const int64_t n = 4099;
    int32_t *a = rand_data(MT_INT32, (size_t)n, -2e9, 2e9, true);
    int32_t *b = rand_data(MT_INT32, (size_t)n, -50, 50, true);
    int32_t *s = rand_data(MT_INT32, (size_t)n, 0, 31, true);
    b[0] = 0;
    a[1] = INT32_MIN;
    b[1] = -1;
    mt_array in[3] = {make_array(host, MT_INT32, 1, &n, a), make_array(host, MT_INT32, 1, &n, b),
                      make_array(host, MT_INT32, 1, &n, s)};
    mt_kexpr e;
    mt_kexpr_init(&e);
    int32_t ia = mt_kexpr_input(&e, 0, MT_INT32), ib = mt_kexpr_input(&e, 1, MT_INT32),
            is = mt_kexpr_input(&e, 2, MT_INT32);
    int32_t outs[8] = {
        mt_kexpr_binary(&e, MT_SOP_FLOORDIV, ia, ib),
        mt_kexpr_binary(&e, MT_SOP_MOD, ia, ib),
        mt_kexpr_binary(&e, MT_SOP_MUL, ia, ib),
        mt_kexpr_binary(&e, MT_SOP_SUB, ib, ia),
        mt_kexpr_binary(&e, MT_SOP_LSHIFT, ib, is),
        mt_kexpr_binary(&e, MT_SOP_BITXOR, mt_kexpr_binary(&e, MT_SOP_RSHIFT, ia, is), ib),
        mt_kexpr_binary(&e, MT_SOP_LE, ia, ib),
        mt_kexpr_binary(&e, MT_SOP_MUL, mt_kexpr_cast(&e, ia, MT_INT64),
                        mt_kexpr_cast(&e, ib, MT_INT64)),
    };
    for (int j = 0; j < 8; j++) MT_CHECK_OK(mt_kexpr_add_output(&e, outs[j]));
    MT_CHECK_OK(mt_kexpr_validate(&e));
    const mt_dtype odt[8] = {MT_INT32, MT_INT32, MT_INT32, MT_INT32,
                             MT_INT32, MT_INT32, MT_BOOL,  MT_INT64};
    const bool exact[8] = {true, true, true, true, true, true, true, true};
    elemwise_both(&e, 3, in, odt, 1, &n, exact, "int32");
    mt_kexpr_deinit(&e);
    for (int i = 0; i < 3; i++) mt_array_clear(&in[i]);
    mt_free(a);
    mt_free(b);
    mt_free(s);
    mt_device_release(host);
    mt_device_release(cl);
}

/* float16 and bfloat16 storage: compute in float32, round once when stored. */
MT_TEST(elemwise_half)
{
    mt_device *cl = open_cl();
    mt_device *host = open_host();
    const int64_t n = 3001;
    void *a = rand_data(MT_FLOAT16, (size_t)n, -8, 8, false),
         *b = rand_data(MT_FLOAT16, (size_t)n, -8, 8, false),
         *c = rand_data(MT_BFLOAT16, (size_t)n, -300, 300, false),
         *d = rand_data(MT_BFLOAT16, (size_t)n, -3, 3, false);
    mt_array in[4] = {make_array(host, MT_FLOAT16, 1, &n, a), make_array(host, MT_FLOAT16, 1, &n, b),
                      make_array(host, MT_BFLOAT16, 1, &n, c),
                      make_array(host, MT_BFLOAT16, 1, &n, d)};
    mt_kexpr e;
    mt_kexpr_init(&e);
    int32_t ia = mt_kexpr_input(&e, 0, MT_FLOAT16), ib = mt_kexpr_input(&e, 1, MT_FLOAT16),
            ic = mt_kexpr_input(&e, 2, MT_BFLOAT16), id = mt_kexpr_input(&e, 3, MT_BFLOAT16);
    int32_t outs[6] = {
        mt_kexpr_binary(&e, MT_SOP_MUL, ia, ib),
        mt_kexpr_binary(&e, MT_SOP_ADD, ic, id),
        mt_kexpr_cast(&e, ic, MT_FLOAT16),
        mt_kexpr_cast(&e, ia, MT_BFLOAT16),
        mt_kexpr_cast(&e, ia, MT_FLOAT32),
        mt_kexpr_unary(&e, MT_SOP_EXP, ia),
    };
    for (int j = 0; j < 6; j++) MT_CHECK_OK(mt_kexpr_add_output(&e, outs[j]));
    MT_CHECK_OK(mt_kexpr_validate(&e));
    const mt_dtype odt[6] = {MT_FLOAT16, MT_BFLOAT16, MT_FLOAT16,
                             MT_BFLOAT16, MT_FLOAT32, MT_FLOAT16};
    const bool exact[6] = {true, true, true, true, true, false};
    elemwise_both(&e, 4, in, odt, 1, &n, exact, "float16/bfloat16");
    mt_kexpr_deinit(&e);
    for (int i = 0; i < 4; i++) mt_array_clear(&in[i]);
    mt_free(a);
    mt_free(b);
    mt_free(c);
    mt_free(d);
    mt_device_release(host);
    mt_device_release(cl);
}

/* Broadcast and strided inputs, and a strided output view, against a plain index loop. */
MT_TEST(elemwise_broadcast_strided)
{
    mt_device *cl = open_cl();
    /* a: (5,1,7) as the transpose of a (7,1,5) array; b: (4,7) rows 7,5,3,1 of an (8,7) array;
     * out: (5,4,7) written through the transpose of a (7,4,5) array */
    const int64_t adims[3] = {7, 1, 5}, bdims[2] = {8, 7}, odims[3] = {7, 4, 5};
    float *ad = rand_data(MT_FLOAT32, 35, -5, 5, false), *bd = rand_data(MT_FLOAT32, 56, -5, 5, false);
    mt_array as = make_array(cl, MT_FLOAT32, 3, adims, ad), bs = make_array(cl, MT_FLOAT32, 2, bdims, bd);
    mt_array av = {0}, bv = {0}, o0 = {0}, o1s = {0}, o1 = {0};
    MT_CHECK_OK(mt_array_transpose(&av, &as, NULL));
    mt_slice bsl = mt_slice_range(7, MT_SLICE_UNSET, -2);
    MT_CHECK_OK(mt_array_slice(&bv, &bs, 1, &bsl));
    MT_CHECK_EQ_INT(bv.dims[0], 4);
    const int64_t rdims[3] = {5, 4, 7};
    MT_CHECK_OK(mt_array_empty(&o0, cl, MT_FLOAT32, 3, rdims, 'C'));
    MT_CHECK_OK(mt_array_empty(&o1s, cl, MT_FLOAT32, 3, odims, 'C'));
    MT_CHECK_OK(mt_array_transpose(&o1, &o1s, NULL));
    mt_kexpr e;
    mt_kexpr_init(&e);
    int32_t ia = mt_kexpr_input(&e, 0, MT_FLOAT32), ib = mt_kexpr_input(&e, 1, MT_FLOAT32);
    MT_CHECK_OK(mt_kexpr_add_output(&e, mt_kexpr_binary(&e, MT_SOP_ADD, ia, ib)));
    MT_CHECK_OK(mt_kexpr_add_output(&e, mt_kexpr_binary(&e, MT_SOP_MAX, ia, ib)));
    const mt_array *ins[2] = {&av, &bv};
    mt_array *outs[2] = {&o0, &o1};
    MT_CHECK_OK(mt_elemwise(&e, 2, ins, outs, 0, NULL));
    float *r0 = fetch_raw(&o0), *r1 = fetch_raw(&o1);
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 4; j++)
            for (int k = 0; k < 7; k++) {
                float x = ad[k * 5 + i];          /* a[i,0,k] = as[k,0,i] */
                float y = bd[(7 - 2 * j) * 7 + k]; /* b[j,k] = bs[7-2j,k] */
                int idx = (i * 4 + j) * 7 + k;
                MT_CHECK(r0[idx] == x + y);
                MT_CHECK(r1[idx] == (x > y ? x : y));
            }
    mt_free(r0);
    mt_free(r1);
    mt_kexpr_deinit(&e);
    mt_array *arrs[] = {&as, &bs, &av, &bv, &o0, &o1s, &o1};
    for (size_t i = 0; i < sizeof arrs / sizeof arrs[0]; i++) mt_array_clear(arrs[i]);
    mt_free(ad);
    mt_free(bd);
    mt_device_release(cl);
}

/* ---------------------------------------------------------------- reductions */

static void reduce_both(const mt_array *h, const mt_array *d, mt_reduce_op op, int32_t naxes,
                        const int32_t *axes, bool keepdims, bool exact)
{
    mt_array hr = {0}, dr = {0};
    MT_CHECK_OK(mt_array_reduce(&hr, h, op, naxes, axes, keepdims));
    MT_CHECK_OK(mt_array_reduce(&dr, d, op, naxes, axes, keepdims));
    MT_CHECK(mt_array_device(&dr) == mt_array_device(d));
    MT_CHECK_EQ_INT(dr.ndim, hr.ndim);
    for (int32_t i = 0; i < hr.ndim; i++) MT_CHECK_EQ_INT(dr.dims[i], hr.dims[i]);
    char label[96];
    snprintf(label, sizeof label, "%s over %d axes of %s", mt_reduce_op_name(op), (int)naxes,
             mt_dtype_name(h->dtype));
    check_same(label, &dr, &hr, exact);
    mt_array_clear(&hr);
    mt_array_clear(&dr);
}

MT_TEST(reduce_float32)
{
    mt_device *cl = open_cl();
    mt_device *host = open_host();
    const int64_t dims[3] = {6, 7, 9};
    float *data = rand_data(MT_FLOAT32, 378, -10, 10, false);
    data[100] = data[200] = 12.5f; /* a tie for argmax: the first index wins */
    mt_array h = make_array(host, MT_FLOAT32, 3, dims, data), d = {0};
    MT_CHECK_OK(mt_array_copy_to(&d, &h, cl));
    const int32_t ax0[1] = {0}, ax12[2] = {1, 2}, ax2[1] = {2}, ax1[1] = {1};
    reduce_both(&h, &d, MT_REDUCE_SUM, 1, ax0, false, false);
    reduce_both(&h, &d, MT_REDUCE_SUM, 2, ax12, false, false);
    reduce_both(&h, &d, MT_REDUCE_SUM, 0, NULL, false, false);
    reduce_both(&h, &d, MT_REDUCE_MEAN, 1, ax2, true, false);
    reduce_both(&h, &d, MT_REDUCE_MAX, 1, ax1, false, true);
    reduce_both(&h, &d, MT_REDUCE_ARGMAX, 1, ax2, false, true);
    reduce_both(&h, &d, MT_REDUCE_ARGMAX, 0, NULL, false, true);
    /* the device's full sum against a float64 loop */
    mt_array s = {0};
    MT_CHECK_OK(mt_array_reduce(&s, &d, MT_REDUCE_SUM, 0, NULL, false));
    double want = 0;
    for (int i = 0; i < 378; i++) want += data[i];
    double *got = fetch_f64(&s);
    MT_CHECK_CLOSE(got[0], want, 1e-4, 1e-6);
    mt_free(got);
    /* argmax over all axes is 100 (first of the tie) */
    mt_array am = {0};
    MT_CHECK_OK(mt_array_reduce(&am, &d, MT_REDUCE_ARGMAX, 0, NULL, false));
    got = fetch_f64(&am);
    MT_CHECK_EQ_INT((int64_t)got[0], 100);
    mt_free(got);
    mt_array_clear(&am);
    mt_array_clear(&s);
    mt_array_clear(&h);
    mt_array_clear(&d);
    mt_free(data);
    mt_device_release(host);
    mt_device_release(cl);
}

MT_TEST(reduce_int32_strided)
{
    mt_device *cl = open_cl();
    mt_device *host = open_host();
    const int64_t dims[2] = {33, 40};
    int32_t *data = rand_data(MT_INT32, 1320, -1e6, 1e6, true);
    mt_array h = make_array(host, MT_INT32, 2, dims, data), d = {0};
    MT_CHECK_OK(mt_array_copy_to(&d, &h, cl));
    /* a transposed, reversed view: reductions must follow the strides */
    mt_array hv = {0}, dv = {0}, ht = {0}, dt = {0};
    mt_slice sl[2] = {mt_slice_range(MT_SLICE_UNSET, MT_SLICE_UNSET, -1), mt_slice_all()};
    MT_CHECK_OK(mt_array_slice(&hv, &h, 2, sl));
    MT_CHECK_OK(mt_array_slice(&dv, &d, 2, sl));
    MT_CHECK_OK(mt_array_transpose(&ht, &hv, NULL));
    MT_CHECK_OK(mt_array_transpose(&dt, &dv, NULL));
    const int32_t ax0[1] = {0}, ax1[1] = {1};
    reduce_both(&ht, &dt, MT_REDUCE_SUM, 1, ax0, false, true);
    reduce_both(&ht, &dt, MT_REDUCE_SUM, 1, ax1, true, true);
    reduce_both(&ht, &dt, MT_REDUCE_MAX, 0, NULL, false, true);
    mt_array *arrs[] = {&h, &d, &hv, &dv, &ht, &dt};
    for (size_t i = 0; i < sizeof arrs / sizeof arrs[0]; i++) mt_array_clear(arrs[i]);
    mt_free(data);
    mt_device_release(host);
    mt_device_release(cl);
}

/* ---------------------------------------------------------------- GEMM */

/* want = alpha * op(a) @ op(b) + beta * c0, all from host copies, in float64. a is stored as
 * (M,K) or (K,M) when ta, with row stride lda (elements); likewise b. */
static void naive_gemm(double *want, const double *a, int64_t lda, bool ta, const double *b,
                       int64_t ldb, bool tb, const double *c0, int64_t m, int64_t n, int64_t k,
                       double alpha, double beta)
{
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double s = 0;
            for (int64_t p = 0; p < k; p++) {
                double x = ta ? a[p * lda + i] : a[i * lda + p];
                double y = tb ? b[j * ldb + p] : b[p * ldb + j];
                s += x * y;
            }
            want[i * n + j] = alpha * s + (c0 ? beta * c0[i * n + j] : 0.0);
        }
}

static void check_gemm_result(const mt_array *c, const double *want, int64_t count, int64_t k,
                              const char *what)
{
    double *got = fetch_f64(c);
    double tol = c->dtype == MT_FLOAT32 ? 2e-6 * (double)k : 1e-13 * (double)k;
    mt_test_allclose(__FILE__, __LINE__, what, got, want, (size_t)count, tol, tol);
    mt_free(got);
}

static void gemm_cases(mt_dtype dt)
{
    mt_device *cl = open_cl();
    mt_device *host = open_host();
    const int64_t M = 13, N = 11, K = 17;
    /* a big (20,30) matrix: A = big[2:15, 3:20] (lda 30); its transpose view serves as a
     * transposed operand without a copy */
    const int64_t bigd[2] = {20, 30}, bd[2] = {K, N}, btd[2] = {N, K};
    void *bigraw = rand_data(dt, 600, -1, 1, false), *braw = rand_data(dt, (size_t)(K * N), -1, 1, false);
    void *btraw = rand_data(dt, (size_t)(N * K), -1, 1, false);
    double big[600], b[17 * 11], bt[11 * 17];
    mt_dtype_convert(big, MT_FLOAT64, 8, bigraw, dt, (ptrdiff_t)mt_dtype_size(dt), 600);
    mt_dtype_convert(b, MT_FLOAT64, 8, braw, dt, (ptrdiff_t)mt_dtype_size(dt), (size_t)(K * N));
    mt_dtype_convert(bt, MT_FLOAT64, 8, btraw, dt, (ptrdiff_t)mt_dtype_size(dt), (size_t)(N * K));
    mt_array bigd_a = make_array(cl, dt, 2, bigd, bigraw), bb = make_array(cl, dt, 2, bd, braw);
    mt_array bbt_s = make_array(cl, dt, 2, btd, btraw), bbt = {0};
    MT_CHECK_OK(mt_array_transpose(&bbt, &bbt_s, NULL)); /* (K,N) view, F-contiguous */
    mt_slice sl[2] = {mt_slice_range(2, 15, 1), mt_slice_range(3, 20, 1)};
    mt_array a = {0};
    MT_CHECK_OK(mt_array_slice(&a, &bigd_a, 2, sl));
    const int64_t cd[2] = {M, N};
    mt_array c = {0};
    MT_CHECK_OK(mt_array_empty(&c, cl, dt, 2, cd, 'C'));
    MT_CHECK_OK(mt_array_fill(&c, mt_scalar_f64(NAN))); /* beta 0 must not read C */
    double want[13 * 11], c0[13 * 11];
    mt_mem_stats before, after;
    /* 1: strided A (lda 30) @ B, with no copy of A (no allocation) */
    mt_device_mem_stats(cl, &before);
    MT_CHECK_OK(mt_array_gemm(&c, &a, &bb, 1.5, 0.0, false, false));
    mt_device_mem_stats(cl, &after);
    MT_CHECK_EQ_INT(after.allocs, before.allocs);
    naive_gemm(want, big + 2 * 30 + 3, 30, false, b, N, false, NULL, M, N, K, 1.5, 0);
    check_gemm_result(&c, want, M * N, K, "strided A @ B");
    /* 2: A @ (transposed view of Bt), accumulating into C with beta */
    double *cprev = fetch_f64(&c);
    memcpy(c0, cprev, sizeof c0);
    mt_free(cprev);
    mt_device_mem_stats(cl, &before);
    MT_CHECK_OK(mt_array_gemm(&c, &a, &bbt, -0.5, 2.0, false, false));
    mt_device_mem_stats(cl, &after);
    MT_CHECK_EQ_INT(after.allocs, before.allocs); /* the transposed view is not copied */
    naive_gemm(want, big + 2 * 30 + 3, 30, false, bt, K, true, c0, M, N, K, -0.5, 2.0);
    check_gemm_result(&c, want, M * N, K, "A @ transposed view, beta 2");
    /* 3: the trans flags: op(A) = (big[3:20, 2:15])^T */
    mt_slice slt[2] = {mt_slice_range(3, 20, 1), mt_slice_range(2, 15, 1)};
    mt_array at = {0};
    MT_CHECK_OK(mt_array_slice(&at, &bigd_a, 2, slt));
    MT_CHECK_OK(mt_array_gemm(&c, &at, &bbt_s, 1.0, 0.0, true, true));
    naive_gemm(want, big + 3 * 30 + 2, 30, true, bt, K, true, NULL, M, N, K, 1.0, 0);
    check_gemm_result(&c, want, M * N, K, "trans_a, trans_b");
    mt_array *arrs[] = {&bigd_a, &bb, &bbt_s, &bbt, &a, &c, &at};
    for (size_t i = 0; i < sizeof arrs / sizeof arrs[0]; i++) mt_array_clear(arrs[i]);
    mt_free(bigraw);
    mt_free(braw);
    mt_free(btraw);
    mt_device_release(host);
    mt_device_release(cl);
}

static void gemm_batched(mt_dtype dt)
{
    mt_device *cl = open_cl();
    const int64_t B = 3, M = 13, N = 11, K = 17;
    const int64_t ad[3] = {B, M, K}, bd[3] = {1, K, N}, cd[3] = {B, M, N};
    void *araw = rand_data(dt, (size_t)(B * M * K), -1, 1, false),
         *braw = rand_data(dt, (size_t)(K * N), -1, 1, false);
    double a[3 * 13 * 17], b[17 * 11], want[3 * 13 * 11];
    mt_dtype_convert(a, MT_FLOAT64, 8, araw, dt, (ptrdiff_t)mt_dtype_size(dt), (size_t)(B * M * K));
    mt_dtype_convert(b, MT_FLOAT64, 8, braw, dt, (ptrdiff_t)mt_dtype_size(dt), (size_t)(K * N));
    mt_array aa = make_array(cl, dt, 3, ad, araw), bb = make_array(cl, dt, 3, bd, braw), c = {0};
    MT_CHECK_OK(mt_array_empty(&c, cl, dt, 3, cd, 'C'));
    /* b has batch 1: broadcast over the batch */
    MT_CHECK_OK(mt_array_gemm(&c, &aa, &bb, 1.0, 0.0, false, false));
    for (int64_t i = 0; i < B; i++)
        naive_gemm(want + i * M * N, a + i * M * K, K, false, b, N, false, NULL, M, N, K, 1.0, 0);
    check_gemm_result(&c, want, B * M * N, K, "batched, B broadcast");
    /* matmul with a reversed batch view of A */
    mt_slice rev = mt_slice_range(MT_SLICE_UNSET, MT_SLICE_UNSET, -1);
    mt_array ar = {0}, out = {0};
    MT_CHECK_OK(mt_array_slice(&ar, &aa, 1, &rev));
    MT_CHECK_OK(mt_array_matmul(&out, &ar, &bb));
    for (int64_t i = 0; i < B; i++)
        naive_gemm(want + i * M * N, a + (B - 1 - i) * M * K, K, false, b, N, false, NULL, M, N,
                   K, 1.0, 0);
    check_gemm_result(&out, want, B * M * N, K, "matmul, reversed batch");
    mt_array *arrs[] = {&aa, &bb, &c, &ar, &out};
    for (size_t i = 0; i < sizeof arrs / sizeof arrs[0]; i++) mt_array_clear(arrs[i]);
    mt_free(araw);
    mt_free(braw);
    mt_device_release(cl);
}

MT_TEST(gemm_float32)
{
    gemm_cases(MT_FLOAT32);
}

MT_TEST(gemm_float32_batched)
{
    gemm_batched(MT_FLOAT32);
}

MT_TEST(gemm_float64)
{
    mt_device *cl = open_cl();
    if (!mt_device_get_info(cl)->fp64) MT_SKIP("the OpenCL device has no float64");
    gemm_cases(MT_FLOAT64);
    gemm_batched(MT_FLOAT64);
    mt_device_release(cl);
}

/* The backend's GEMM entry directly: offsets are bytes and must be whole elements. */
MT_TEST(gemm_backend_errors)
{
    mt_device *cl = open_cl();
    mt_buffer *buf = NULL;
    MT_CHECK_OK(mt_buffer_new(&buf, cl, 4096));
    MT_CHECK_ERR(cl->ops->gemm(cl, MT_FLOAT32, false, false, 2, 2, 2, 1.0, buf->handle, 2, 2, 0,
                               buf->handle, 0, 2, 0, 0.0, buf->handle, 64, 2, 0, 1, NULL),
                 MT_ERR_INVALID, "multiple of the element size");
    MT_CHECK_ERR(cl->ops->gemm(cl, MT_INT32, false, false, 2, 2, 2, 1.0, buf->handle, 0, 2, 0,
                               buf->handle, 0, 2, 0, 0.0, buf->handle, 64, 2, 0, 1, NULL),
                 MT_ERR_DTYPE, "int32");
    /* an operand past the end of its buffer: CLBlast's own check, named */
    MT_CHECK_ERR(cl->ops->gemm(cl, MT_FLOAT32, false, false, 64, 64, 64, 1.0, buf->handle, 0, 64,
                               0, buf->handle, 0, 64, 0, 0.0, buf->handle, 0, 64, 0, 1, NULL),
                 MT_ERR_INVALID, "CLBlastInsufficientMemory");
    mt_buffer_release(buf);
    mt_device_release(cl);
}

/* ---------------------------------------------------------------- random, allocator, streams */

MT_TEST(random_uniform_matches_host)
{
    mt_device *cl = open_cl();
    mt_device *host = open_host();
    const mt_dtype dts[] = {MT_FLOAT32, MT_FLOAT64};
    const int64_t dims[2] = {37, 29};
    for (size_t t = 0; t < 2; t++) {
        mt_array h = {0}, d = {0};
        MT_CHECK_OK(mt_array_empty(&h, host, dts[t], 2, dims, 'C'));
        MT_CHECK_OK(mt_array_empty(&d, cl, dts[t], 2, dims, 'C'));
        MT_CHECK_OK(mt_array_random_uniform(&h, 1234, 77, -2.0, 3.0));
        MT_CHECK_OK(mt_array_random_uniform(&d, 1234, 77, -2.0, 3.0));
        check_same("random uniform", &d, &h, true);
        double *v = fetch_f64(&d);
        for (int i = 0; i < 37 * 29; i++) MT_CHECK(v[i] >= -2.0 && v[i] < 3.0);
        mt_free(v);
        /* another seed gives other numbers */
        MT_CHECK_OK(mt_array_random_uniform(&d, 1235, 77, -2.0, 3.0));
        char *a = fetch_raw(&d), *b = fetch_raw(&h);
        MT_CHECK(memcmp(a, b, mt_array_nbytes(&d)) != 0);
        mt_free(a);
        mt_free(b);
        mt_array_clear(&h);
        mt_array_clear(&d);
    }
    mt_device_release(host);
    mt_device_release(cl);
}

MT_TEST(allocator_reuse_and_peak)
{
    mt_device *cl = open_cl();
    mt_device_empty_cache(cl);
    mt_device_mem_reset_peak(cl);
    mt_mem_stats s0, s;
    mt_device_mem_stats(cl, &s0);
    mt_buffer *a = NULL, *b = NULL;
    MT_CHECK_OK(mt_buffer_new(&a, cl, 100000));
    MT_CHECK_OK(mt_buffer_new(&b, cl, 300000));
    mt_device_mem_stats(cl, &s);
    MT_CHECK(s.in_use >= s0.in_use + 400000);
    uint64_t peak = s.peak;
    MT_CHECK(peak >= s.in_use);
    MT_CHECK_EQ_INT(s.backend_allocs, s0.backend_allocs + 2);
    mt_buffer_release(a);
    mt_buffer_release(b);
    mt_device_mem_stats(cl, &s);
    MT_CHECK_EQ_INT(s.in_use, s0.in_use);
    MT_CHECK(s.cached >= 400000);
    MT_CHECK_EQ_INT(s.peak, peak);
    /* the same size again comes from the cache, and the memory works */
    MT_CHECK_OK(mt_buffer_new(&a, cl, 99999));
    mt_device_mem_stats(cl, &s);
    MT_CHECK_EQ_INT(s.backend_allocs, s0.backend_allocs + 2);
    MT_CHECK_EQ_INT(s.cache_hits, s0.cache_hits + 1);
    double v[4] = {1, 2, 3, 4}, w[4] = {0};
    MT_CHECK_OK(mt_buffer_write(a, 99999 - 32, v, 32, NULL));
    MT_CHECK_OK(mt_buffer_read(w, a, 99999 - 32, 32, NULL));
    MT_CHECK(memcmp(v, w, 32) == 0);
    mt_buffer_release(a);
    mt_device_empty_cache(cl);
    mt_device_mem_stats(cl, &s);
    MT_CHECK_EQ_INT(s.cached, 0);
    mt_device_release(cl);
}

MT_TEST(streams_and_events)
{
    mt_device *cl = open_cl();
    enum { N = 1 << 20 };
    float *x = rand_data(MT_FLOAT32, N, -1, 1, false), *y = mt_malloc(N * sizeof *y);
    mt_buffer *a = NULL, *b = NULL;
    MT_CHECK_OK(mt_buffer_new(&a, cl, N * 4));
    MT_CHECK_OK(mt_buffer_new(&b, cl, N * 4));
    mt_stream *s = NULL;
    mt_event *e0 = NULL, *e1 = NULL;
    MT_CHECK_OK(mt_stream_new(&s, cl));
    MT_CHECK_OK(mt_event_new(&e0, cl));
    MT_CHECK_OK(mt_event_new(&e1, cl));
    MT_CHECK_OK(mt_event_record(e0, s));
    MT_CHECK_OK(mt_buffer_write(a, 0, x, N * 4, s));
    MT_CHECK_OK(mt_buffer_copy(b, 0, a, 0, N * 4, s));
    MT_CHECK_OK(mt_event_record(e1, s));
    /* the default stream waits for the copy on s, then reads the result */
    MT_CHECK_OK(mt_stream_wait_event(NULL, e1));
    MT_CHECK_OK(mt_buffer_read(y, b, 0, N * 4, NULL));
    MT_CHECK(memcmp(x, y, N * 4) == 0);
    MT_CHECK_OK(mt_event_sync(e1));
    float ms = -1;
    MT_CHECK_OK(mt_event_elapsed_ms(&ms, e0, e1));
    MT_CHECK(ms >= 0.0f && ms < 60000.0f);
    MT_CHECK_OK(mt_stream_sync(s));
    mt_event_free(e0);
    mt_event_free(e1);
    mt_stream_free(s);
    mt_buffer_release(a);
    mt_buffer_release(b);
    mt_free(x);
    mt_free(y);
    mt_device_release(cl);
}

/* ---------------------------------------------------------------- error paths */

static mt_status gen_bad(void *ctx, mt_strbuf *src, char *entry, size_t entry_len)
{
    (void)ctx;
    mt_strbuf_append(src, "__kernel void mt_test_bad(__global float *x) {\n"
                          "    x[0] = undeclared_thing + 1.0f;\n"
                          "}\n");
    snprintf(entry, entry_len, "mt_test_bad");
    return MT_OK;
}

MT_TEST(errors)
{
    mt_device *cl = open_cl();
    void *k = NULL;
    MT_CHECK_ERR(mt__kernel_get(cl, "test_opencl:bad", gen_bad, NULL, &k), MT_ERR_COMPILE,
                 "CL_BUILD_PROGRAM_FAILURE");
    MT_CHECK(strstr(mt_last_error(), "mt_test_bad") != NULL);    /* the entry */
    MT_CHECK(strstr(mt_last_error(), "undeclared_thing") != NULL); /* the log */
    MT_CHECK(strstr(mt_last_error(), "opencl:0:0") != NULL);
    /* an entry name the program lacks */
    MT_CHECK_ERR(cl->ops->kernel_build(cl, "__kernel void f(__global int *x) { x[0] = 1; }\n",
                                       "g", &k),
                 MT_ERR_COMPILE, "CL_INVALID_KERNEL_NAME");
    /* more than the device can hold in one allocation */
    mt_buffer *buf = NULL;
    size_t huge = (size_t)mt_device_get_info(cl)->max_alloc + ((size_t)1 << 30);
    MT_CHECK_ERR(mt_buffer_new(&buf, cl, huge), MT_ERR_NOMEM, "opencl:0:0");
    MT_CHECK(buf == NULL);
    void *h = NULL;
    MT_CHECK_ERR(cl->ops->alloc(cl, huge, &h), MT_ERR_NOMEM, "clCreateBuffer");
    /* reading past the end of a buffer, through the API and the backend itself */
    MT_CHECK_OK(mt_buffer_new(&buf, cl, 100));
    char tmp[200];
    MT_CHECK_ERR(mt_buffer_read(tmp, buf, 50, 51, NULL), MT_ERR_RANGE, "100-byte");
    MT_CHECK_ERR(cl->ops->read(cl, tmp, buf->handle, (size_t)buf->capacity, 1, NULL),
                 MT_ERR_RANGE, "past the end");
    MT_CHECK_ERR(mt_buffer_write(buf, 101, tmp, 1, NULL), MT_ERR_RANGE, NULL);
    mt_buffer_release(buf);
    mt_device_release(cl);
}
