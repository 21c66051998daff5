/* Advanced indexing on an accelerator device (MLTRAIN_TEST_DEVICE: opencl, cudaemu:0 or cuda:0):
 * gpuarray's indexing kernels (mt_array_take, mt_array_scatter_add, mt_array_take_labels)
 * against plain loops over host copies, bit for bit, for every dtype, int32/int64 and other
 * integer indices, negative and repeated indices, any axis, strided views, indices on another
 * device, empty index arrays and empty axes, and the out-of-range errors (index, axis, size and
 * flat position, as the host path reports them). Scatter-add with many repeated indices must
 * equal a sequential loop bit for bit and be the same from run to run. The graph ops (gather,
 * scatter_add, the label crossentropies and their gradients, one_hot) then run on the device and
 * on the host through the reference executor and must agree, including their error messages and
 * the MLTRAIN_INDEX_PATH=host round trip. The fused labels-crossentropy gradient
 * (softmax_crossentropy_labels_dx) compiled for the device must agree with the unfused
 * gradient there and with the host. Skips where the device cannot be opened. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jit_ref.h"
#include "mltrain/graph_grad.h"

static mt_device *g_host;

static void release_host(void)
{
    mt_device_release(g_host);
    g_host = NULL;
}

/* The device under test; SKIP when none is named or it cannot be opened here. */
static mt_device *dev_or_skip(void)
{
    const char *name = getenv("MLTRAIN_TEST_DEVICE");
    if (!name || !*name || strcmp(name, "host") == 0)
        MT_SKIP("MLTRAIN_TEST_DEVICE names no device");
    if (!g_host) {
        MT_CHECK_OK(mt_device_open(&g_host, "host"));
        atexit(release_host);
    }
    mt_device *d = NULL;
    mt_status st = mt_device_open(&d, name);
    if (st != MT_OK) MT_SKIP("cannot open the test device here");
    mt_device_release(d);
    return jt_dev();
}

static const mt_dtype k_all[] = {MT_BOOL,   MT_INT8,    MT_INT16,   MT_INT32, MT_INT64,
                                 MT_UINT8,  MT_UINT16,  MT_UINT32,  MT_UINT64, MT_FLOAT16,
                                 MT_BFLOAT16, MT_FLOAT32, MT_FLOAT64};
#define N_ALL ((int)(sizeof k_all / sizeof k_all[0]))

static int64_t numel(int32_t nd, const int64_t *dims)
{
    int64_t n = 1;
    for (int32_t d = 0; d < nd; d++) n *= dims[d];
    return n;
}

/* New array of dtype dt on dev from doubles (NumPy casting). */
static void make(mt_array *out, mt_device *dev, mt_dtype dt, int32_t nd, const int64_t *dims,
                 const double *vals)
{
    size_t n = (size_t)numel(nd, dims);
    void *buf = malloc(n * mt_dtype_size(dt) + 1);
    MT_CHECK(buf != NULL);
    mt_dtype_convert(buf, dt, (ptrdiff_t)mt_dtype_size(dt), vals, MT_FLOAT64, sizeof(double), n);
    MT_CHECK_OK(mt_array_from_host(out, dev, dt, nd, dims, buf));
    free(buf);
}

/* The elements of a in C order (malloc'ed bytes). */
static unsigned char *bytes_of(const mt_array *a)
{
    size_t nb = mt_array_nbytes(a);
    unsigned char *b = malloc(nb + 1);
    MT_CHECK(b != NULL);
    MT_CHECK_OK(mt_array_to_host(b, nb, a));
    return b;
}

/* The elements of an integer array as int64. */
static int64_t *ints_of(const mt_array *a)
{
    size_t n = (size_t)mt_array_size(a);
    unsigned char *b = bytes_of(a);
    int64_t *v = malloc(n * sizeof *v + 1);
    MT_CHECK(v != NULL);
    mt_dtype_convert(v, MT_INT64, sizeof *v, b, a->dtype, (ptrdiff_t)mt_dtype_size(a->dtype), n);
    free(b);
    return v;
}

static void expect_shape(const mt_array *a, mt_device *dev, mt_dtype dt, int32_t nd,
                         const int64_t *dims)
{
    MT_CHECK(mt_array_device(a) == dev);
    MT_CHECK_EQ_INT(a->dtype, dt);
    MT_CHECK_EQ_INT(a->ndim, nd);
    for (int32_t d = 0; d < nd; d++) MT_CHECK_EQ_INT(a->dims[d], dims[d]);
}

static void expect_bytes(const char *what, const mt_array *a, const unsigned char *want)
{
    unsigned char *got = bytes_of(a);
    size_t es = mt_array_itemsize(a), n = (size_t)mt_array_size(a);
    for (size_t i = 0; i < n; i++)
        if (memcmp(got + i * es, want + i * es, es) != 0)
            mt_test_fail(__FILE__, __LINE__, "%s (%s): element %zu differs from the reference",
                         what, mt_dtype_name(a->dtype), i);
    free(got);
}

/* Reference np.take on C-ordered bytes: x [outer, n, inner] -> out [outer, m, inner]. */
static unsigned char *ref_take(const unsigned char *x, size_t es, int64_t outer, int64_t n,
                               int64_t inner, const int64_t *idx, int64_t m)
{
    unsigned char *o = malloc((size_t)(outer * m * inner) * es + 1);
    MT_CHECK(o != NULL);
    for (int64_t a = 0; a < outer; a++)
        for (int64_t j = 0; j < m; j++) {
            int64_t k = idx[j] < 0 ? idx[j] + n : idx[j];
            MT_CHECK(k >= 0 && k < n);
            memcpy(o + (size_t)((a * m + j) * inner) * es, x + (size_t)((a * n + k) * inner) * es,
                   (size_t)inner * es);
        }
    return o;
}

/* d += s for one element of dtype dt, as np.add.at (wrapping integers, bool OR, halves
 * rounded after the addition). */
static void add_elem(mt_dtype dt, unsigned char *d, const unsigned char *s)
{
    size_t es = mt_dtype_size(dt);
    switch (dt) {
    case MT_BOOL: d[0] = (uint8_t)(d[0] || s[0]); return;
    case MT_FLOAT32: {
        float a, b;
        memcpy(&a, d, 4), memcpy(&b, s, 4);
        a = a + b;
        memcpy(d, &a, 4);
        return;
    }
    case MT_FLOAT64: {
        double a, b;
        memcpy(&a, d, 8), memcpy(&b, s, 8);
        a = a + b;
        memcpy(d, &a, 8);
        return;
    }
    case MT_FLOAT16:
    case MT_BFLOAT16: {
        uint16_t a, b;
        memcpy(&a, d, 2), memcpy(&b, s, 2);
        a = dt == MT_FLOAT16 ? mt_f32_to_f16(mt_f16_to_f32(a) + mt_f16_to_f32(b))
                             : mt_f32_to_bf16(mt_bf16_to_f32(a) + mt_bf16_to_f32(b));
        memcpy(d, &a, 2);
        return;
    }
    default: { /* little-endian integers of es bytes: add modulo 2^(8 es) */
        uint64_t a = 0, b = 0;
        memcpy(&a, d, es), memcpy(&b, s, es);
        a += b;
        memcpy(d, &a, es);
        return;
    }
    }
}

/* Reference np.add.at on a copy of x [outer, n, inner] with y [outer, m, inner]. */
static unsigned char *ref_scatter(mt_dtype dt, const unsigned char *x, int64_t outer, int64_t n,
                                  int64_t inner, const int64_t *idx, int64_t m,
                                  const unsigned char *y)
{
    size_t es = mt_dtype_size(dt), nb = (size_t)(outer * n * inner) * es;
    unsigned char *o = malloc(nb + 1);
    MT_CHECK(o != NULL);
    memcpy(o, x, nb);
    for (int64_t a = 0; a < outer; a++)
        for (int64_t j = 0; j < m; j++) {
            int64_t k = idx[j] < 0 ? idx[j] + n : idx[j];
            MT_CHECK(k >= 0 && k < n);
            for (int64_t i = 0; i < inner; i++)
                add_elem(dt, o + (size_t)((a * n + k) * inner + i) * es,
                         y + (size_t)((a * m + j) * inner + i) * es);
        }
    return o;
}

/* Values representable in every dtype after NumPy casting (bool: nonzero). */
static void values(double *v, int64_t n, uint64_t seed, bool fractional)
{
    jt_fill(v, (size_t)n, 0, 1, seed);
    for (int64_t i = 0; i < n; i++)
        v[i] = fractional ? v[i] * 8 - 4 : floor(v[i] * 100);
}

static mt_array view_slice(const mt_array *a, int32_t ns, const mt_slice *s)
{
    mt_array v = {0};
    MT_CHECK_OK(mt_array_slice(&v, a, ns, s));
    return v;
}

/* ---------------------------------------------------------------- take */

MT_TEST(take_every_dtype_and_axis)
{
    mt_device *dev = dev_or_skip();
    const int64_t xd[3] = {3, 4, 5}, id[2] = {2, 3};
    double xv[60], iv[6] = {2, -1, 0, 2, -3, 1};
    mt_array I = {0};
    make(&I, dev, MT_INT64, 2, id, iv);
    int64_t *ix = ints_of(&I);
    for (int t = 0; t < N_ALL; t++) {
        mt_dtype dt = k_all[t];
        values(xv, 60, 11 + (uint64_t)t, mt_dtype_is_float(dt));
        mt_array X = {0};
        make(&X, dev, dt, 3, xd, xv);
        unsigned char *xb = bytes_of(&X);
        for (int32_t axis = -1; axis < 3; axis++) {
            int32_t ax = axis < 0 ? axis + 3 : axis;
            int64_t outer = numel(ax, xd), inner = numel(2 - ax, xd + ax + 1);
            mt_array O = {0};
            MT_CHECK_OK(mt_array_take(&O, &X, &I, axis));
            int64_t od[4];
            int32_t nd = 0;
            for (int32_t d = 0; d < ax; d++) od[nd++] = xd[d];
            od[nd++] = id[0], od[nd++] = id[1];
            for (int32_t d = ax + 1; d < 3; d++) od[nd++] = xd[d];
            expect_shape(&O, dev, dt, nd, od);
            unsigned char *want = ref_take(xb, mt_dtype_size(dt), outer, xd[ax], inner, ix, 6);
            expect_bytes("take", &O, want);
            free(want);
            mt_array_clear(&O);
        }
        free(xb);
        mt_array_clear(&X);
    }
    free(ix);
    mt_array_clear(&I);
}

/* Strided x and indices, int32 / uint8 / int16 indices, and indices held by the host device. */
MT_TEST(take_views_and_index_dtypes)
{
    mt_device *dev = dev_or_skip();
    const int64_t bd[2] = {4, 6}, ld[1] = {10};
    double bv[24], lv[10] = {5, 99, -1, 99, 0, 99, 3, 99, -6, 99};
    values(bv, 24, 3, true);
    mt_array B = {0}, XT = {0}, L = {0};
    make(&B, dev, MT_FLOAT32, 2, bd, bv);
    MT_CHECK_OK(mt_array_transpose(&XT, &B, NULL)); /* [6, 4], not contiguous */
    MT_CHECK(!mt_array_is_c_contiguous(&XT));
    mt_array XC = {0};
    MT_CHECK_OK(mt_array_copy_to(&XC, &XT, dev));
    unsigned char *xb = bytes_of(&XC);
    const mt_dtype idts[3] = {MT_INT32, MT_INT16, MT_INT64};
    for (int t = 0; t < 3; t++) {
        make(&L, dev, idts[t], 1, ld, lv);
        mt_slice s = mt_slice_range(0, 10, 2); /* 5, -1, 0, 3, -6: every other entry */
        mt_array IV = view_slice(&L, 1, &s);
        MT_CHECK(!mt_array_is_c_contiguous(&IV));
        int64_t *ix = ints_of(&IV);
        mt_array O = {0};
        MT_CHECK_OK(mt_array_take(&O, &XT, &IV, 0));
        expect_shape(&O, dev, MT_FLOAT32, 2, (int64_t[]){5, 4});
        unsigned char *want = ref_take(xb, 4, 1, 6, 4, ix, 5);
        expect_bytes("take of a transposed view", &O, want);
        free(want);
        mt_array_clear(&O);
        /* along the axis of size 4, 5 (flat position 0 of the view) is out of range */
        MT_CHECK_ERR(mt_array_take(&O, &XT, &IV, 1), MT_ERR_RANGE,
                     "index 5 is out of range for axis 1 of size 4 (at flat position 0)");
        free(ix);
        mt_array_clear(&IV);
        mt_array_clear(&L);
    }
    /* uint8 indices held by the host device, x on the device */
    double uv[3] = {5, 0, 2};
    const int64_t ud[1] = {3};
    mt_array U = {0}, O = {0};
    make(&U, g_host, MT_UINT8, 1, ud, uv);
    MT_CHECK_OK(mt_array_take(&O, &XT, &U, 0));
    int64_t ix[3] = {5, 0, 2};
    unsigned char *want = ref_take(xb, 4, 1, 6, 4, ix, 3);
    expect_shape(&O, dev, MT_FLOAT32, 2, (int64_t[]){3, 4});
    expect_bytes("take with uint8 host indices", &O, want);
    free(want);
    mt_array_clear(&O);
    mt_array_clear(&U);
    free(xb);
    mt_array_clear(&XC);
    mt_array_clear(&XT);
    mt_array_clear(&B);
}

MT_TEST(take_empty_and_errors)
{
    mt_device *dev = dev_or_skip();
    const int64_t xd[2] = {5, 3}, e0[1] = {0}, id[2] = {2, 3};
    double xv[15], bad[6] = {0, 4, 1, 2, -6, 9};
    values(xv, 15, 5, true);
    mt_array X = {0}, E = {0}, O = {0}, BAD = {0};
    make(&X, dev, MT_FLOAT64, 2, xd, xv);
    make(&E, dev, MT_INT64, 1, e0, NULL);
    /* empty index array: an empty result of the gathered shape */
    MT_CHECK_OK(mt_array_take(&O, &X, &E, 0));
    expect_shape(&O, dev, MT_FLOAT64, 2, (int64_t[]){0, 3});
    mt_array_clear(&O);
    MT_CHECK_OK(mt_array_take(&O, &X, &E, 1));
    expect_shape(&O, dev, MT_FLOAT64, 2, (int64_t[]){5, 0});
    mt_array_clear(&O);
    /* the first bad entry in C order is named, with its flat position */
    make(&BAD, dev, MT_INT32, 2, id, bad);
    MT_CHECK_ERR(mt_array_take(&O, &X, &BAD, 0), MT_ERR_RANGE,
                 "index -6 is out of range for axis 0 of size 5 (at flat position 4)");
    MT_CHECK(O.buf == NULL);
    MT_CHECK_ERR(mt_array_take(&O, &X, &BAD, 1), MT_ERR_RANGE,
                 "index 4 is out of range for axis 1 of size 3 (at flat position 1)");
    /* nothing to gather (an empty outer axis) still checks the indices */
    mt_array Z = {0};
    make(&Z, dev, MT_FLOAT32, 2, (int64_t[]){0, 3}, NULL);
    MT_CHECK_ERR(mt_array_take(&O, &Z, &BAD, 1), MT_ERR_RANGE,
                 "index 4 is out of range for axis 1 of size 3 (at flat position 1)");
    /* an empty axis has no valid index */
    MT_CHECK_ERR(mt_array_take(&O, &Z, &BAD, 0), MT_ERR_RANGE,
                 "index 0 is out of range for axis 0 of size 0 (at flat position 0)");
    /* argument errors */
    MT_CHECK_ERR(mt_array_take(&O, &X, &BAD, 2), MT_ERR_INVALID, "axis 2 is out of range");
    MT_CHECK_ERR(mt_array_take(&O, &BAD, &X, 0), MT_ERR_DTYPE, "indices must be integers");
    mt_array_clear(&Z);
    mt_array_clear(&BAD);
    mt_array_clear(&E);
    mt_array_clear(&X);
}

/* ---------------------------------------------------------------- scatter-add */

MT_TEST(scatter_add_every_dtype)
{
    mt_device *dev = dev_or_skip();
    double iv[6] = {1, -1, 1, 0, 3, 1}, xv[24], yv[36];
    mt_array I = {0};
    make(&I, dev, MT_INT64, 1, (int64_t[]){6}, iv);
    int64_t ix[6] = {1, -1, 1, 0, 3, 1};
    for (int t = 0; t < N_ALL; t++) {
        mt_dtype dt = k_all[t];
        bool fr = mt_dtype_is_float(dt);
        for (int32_t axis = 0; axis < 2; axis++) {
            /* axis 0: x [4, 3], y [6, 3]; axis 1: x [2, 4, 3], y [2, 6, 3] */
            const int64_t xd0[2] = {4, 3}, yd0[2] = {6, 3}, xd1[3] = {2, 4, 3},
                          yd1[3] = {2, 6, 3};
            int32_t nd = axis == 0 ? 2 : 3;
            const int64_t *xd = axis == 0 ? xd0 : xd1, *yd = axis == 0 ? yd0 : yd1;
            values(xv, numel(nd, xd), 40 + (uint64_t)t, fr);
            values(yv, numel(nd, yd), 80 + (uint64_t)t, fr);
            mt_array X = {0}, Y = {0}, O = {0};
            make(&X, dev, dt, nd, xd, xv);
            make(&Y, dev, dt, nd, yd, yv);
            MT_CHECK_OK(mt_array_scatter_add(&O, &X, &I, &Y, axis));
            expect_shape(&O, dev, dt, nd, xd);
            unsigned char *xb = bytes_of(&X), *yb = bytes_of(&Y);
            unsigned char *want = ref_scatter(dt, xb, axis == 0 ? 1 : 2, 4, 3, ix, 6, yb);
            expect_bytes("scatter_add", &O, want);
            free(want), free(xb), free(yb);
            mt_array_clear(&O);
            mt_array_clear(&X);
            mt_array_clear(&Y);
        }
    }
    mt_array_clear(&I);
}

/* Thousands of repeated indices: every row's values are added in the order of the indices, so
 * the result equals the sequential loop bit for bit and never changes between runs. */
MT_TEST(scatter_add_repeats_deterministic)
{
    mt_device *dev = dev_or_skip();
    enum { N = 37, M = 2000, INNER = 3, OUTER = 2 };
    double *iv = malloc(M * sizeof(double)), *xv = malloc(OUTER * N * INNER * sizeof(double));
    double *yv = malloc(OUTER * M * INNER * sizeof(double));
    int64_t *ix = malloc(M * sizeof(int64_t));
    MT_CHECK(iv && xv && yv && ix);
    jt_fill(iv, M, -N, N, 7);
    for (int j = 0; j < M; j++) ix[j] = (int64_t)floor(iv[j]), iv[j] = (double)ix[j];
    jt_fill(xv, OUTER * N * INNER, -1, 1, 8);
    jt_fill(yv, OUTER * M * INNER, -1, 1, 9);
    const mt_dtype dts[3] = {MT_FLOAT32, MT_FLOAT16, MT_FLOAT64};
    mt_array I = {0};
    make(&I, dev, MT_INT32, 2, (int64_t[]){40, 50}, iv);
    for (int t = 0; t < 3; t++) {
        mt_dtype dt = dts[t];
        const int64_t xd[3] = {OUTER, N, INNER}, yd[4] = {OUTER, 40, 50, INNER};
        mt_array X = {0}, Y = {0}, O1 = {0}, O2 = {0};
        make(&X, dev, dt, 3, xd, xv);
        make(&Y, dev, dt, 4, yd, yv);
        MT_CHECK_OK(mt_array_scatter_add(&O1, &X, &I, &Y, 1));
        MT_CHECK_OK(mt_array_scatter_add(&O2, &X, &I, &Y, 1));
        unsigned char *xb = bytes_of(&X), *yb = bytes_of(&Y), *b1 = bytes_of(&O1);
        unsigned char *want = ref_scatter(dt, xb, OUTER, N, INNER, ix, M, yb);
        expect_bytes("scatter_add with 2000 repeated indices", &O1, want);
        expect_bytes("scatter_add run twice", &O2, b1);
        free(want), free(xb), free(yb), free(b1);
        mt_array_clear(&X);
        mt_array_clear(&Y);
        mt_array_clear(&O1);
        mt_array_clear(&O2);
    }
    mt_array_clear(&I);
    free(iv), free(xv), free(yv), free(ix);
}

MT_TEST(scatter_add_broadcast_views_and_errors)
{
    mt_device *dev = dev_or_skip();
    const int64_t xd[2] = {3, 4};
    double xv[12], iv[8] = {2, 9, -3, 9, 2, 9, 0, 9}, five = 5;
    values(xv, 12, 21, true);
    mt_array X = {0}, L = {0}, S = {0}, O = {0}, E = {0};
    make(&X, dev, MT_FLOAT64, 2, xd, xv);
    make(&L, dev, MT_INT64, 1, (int64_t[]){8}, iv);
    mt_slice s = mt_slice_range(0, 8, 2); /* 2, -3, 2, 0: a strided view */
    mt_array IV = view_slice(&L, 1, &s);
    int64_t ix[4] = {2, -3, 2, 0};
    /* a 0-d int32 value broadcast over every gathered element, converted to float64 */
    make(&S, dev, MT_INT32, 0, NULL, &five);
    MT_CHECK_OK(mt_array_scatter_add(&O, &X, &IV, &S, 1));
    unsigned char *xb = bytes_of(&X);
    double yv[12];
    for (int k = 0; k < 12; k++) yv[k] = 5;
    unsigned char *want = ref_scatter(MT_FLOAT64, xb, 3, 4, 1, ix, 4, (unsigned char *)yv);
    expect_bytes("scatter_add of a broadcast scalar", &O, want);
    free(want);
    mt_array_clear(&O);
    /* a transposed (non-contiguous) x */
    mt_array XT = {0}, XTC = {0};
    MT_CHECK_OK(mt_array_transpose(&XT, &X, NULL)); /* [4, 3] */
    MT_CHECK_OK(mt_array_copy_to(&XTC, &XT, dev));
    unsigned char *tb = bytes_of(&XTC);
    MT_CHECK_OK(mt_array_scatter_add(&O, &XT, &IV, &S, 0));
    want = ref_scatter(MT_FLOAT64, tb, 1, 4, 3, ix, 4, (unsigned char *)yv);
    expect_bytes("scatter_add into a transposed x", &O, want);
    free(want), free(tb);
    mt_array_clear(&O);
    /* empty indices: a copy of x */
    make(&E, dev, MT_INT64, 1, (int64_t[]){0}, NULL);
    MT_CHECK_OK(mt_array_scatter_add(&O, &X, &E, &S, 0));
    expect_bytes("scatter_add with no indices", &O, xb);
    MT_CHECK(O.buf != X.buf);
    mt_array_clear(&O);
    /* out of range: the first bad entry, in the view's C order */
    MT_CHECK_ERR(mt_array_scatter_add(&O, &X, &L, &S, 1), MT_ERR_RANGE,
                 "index 9 is out of range for axis 1 of size 4 (at flat position 1)");
    MT_CHECK(O.buf == NULL);
    double nv[3] = {1, -4, 0};
    mt_array NEG = {0};
    make(&NEG, dev, MT_INT32, 1, (int64_t[]){3}, nv);
    MT_CHECK_ERR(mt_array_scatter_add(&O, &X, &NEG, &S, 0), MT_ERR_RANGE,
                 "index -4 is out of range for axis 0 of size 3 (at flat position 1)");
    mt_array_clear(&NEG);
    /* values that do not broadcast */
    mt_array Y2 = {0};
    make(&Y2, dev, MT_FLOAT64, 2, (int64_t[]){3, 3}, xv);
    MT_CHECK_ERR(mt_array_scatter_add(&O, &X, &IV, &Y2, 1), MT_ERR_SHAPE, NULL);
    free(xb);
    mt_array_clear(&Y2);
    mt_array_clear(&XT);
    mt_array_clear(&XTC);
    mt_array_clear(&E);
    mt_array_clear(&S);
    mt_array_clear(&IV);
    mt_array_clear(&L);
    mt_array_clear(&X);
}

/* ---------------------------------------------------------------- labels */

MT_TEST(take_labels_axes_and_errors)
{
    mt_device *dev = dev_or_skip();
    const int64_t xd[3] = {2, 4, 3};
    double xv[24];
    values(xv, 24, 31, true);
    mt_array X = {0};
    make(&X, dev, MT_FLOAT32, 3, xd, xv);
    unsigned char *xb = bytes_of(&X);
    /* axis 1: labels [2, 3]; axis 0: [4, 3]; axis -1: [2, 4] */
    double l1[6] = {0, 3, 1, 2, 2, 0}, l0[12] = {1, 0, 1, 0, 0, 1, 1, 1, 0, 0, 1, 0};
    double l2[8] = {2, 0, 1, 1, 0, 2, 2, 1};
    const double *lv[3] = {l0, l1, l2};
    const int64_t ld[3][2] = {{4, 3}, {2, 3}, {2, 4}};
    for (int32_t axis = 0; axis < 3; axis++) {
        for (int t = 0; t < 2; t++) {
            mt_array L = {0}, O = {0};
            make(&L, dev, t ? MT_INT32 : MT_INT64, 2, ld[axis], lv[axis]);
            MT_CHECK_OK(mt_array_take_labels(&O, &X, &L, axis == 2 ? -1 : axis));
            expect_shape(&O, dev, MT_FLOAT32, 2, ld[axis]);
            int64_t outer = numel(axis, xd), n = xd[axis], inner = numel(2 - axis, xd + axis + 1);
            float want[12];
            for (int64_t o = 0; o < outer; o++)
                for (int64_t i = 0; i < inner; i++) {
                    int64_t k = (int64_t)lv[axis][o * inner + i];
                    memcpy(&want[o * inner + i], xb + ((o * n + k) * inner + i) * 4, 4);
                }
            expect_bytes("take_labels", &O, (const unsigned char *)want);
            mt_array_clear(&O);
            mt_array_clear(&L);
        }
    }
    /* labels as a transposed view of a [3, 2] array */
    double lt[6] = {0, 2, 3, 2, 1, 0}; /* its transpose is {0, 3, 1}, {2, 2, 0} = l1 */
    mt_array LT = {0}, LV = {0}, O = {0};
    make(&LT, dev, MT_INT64, 2, (int64_t[]){3, 2}, lt);
    MT_CHECK_OK(mt_array_transpose(&LV, &LT, NULL));
    MT_CHECK_OK(mt_array_take_labels(&O, &X, &LV, 1));
    float want[6];
    for (int64_t o = 0; o < 2; o++)
        for (int64_t i = 0; i < 3; i++)
            memcpy(&want[o * 3 + i], xb + ((o * 4 + (int64_t)l1[o * 3 + i]) * 3 + i) * 4, 4);
    expect_bytes("take_labels of transposed labels", &O, (const unsigned char *)want);
    mt_array_clear(&O);
    /* errors: negative labels are out of range, the first in C order is named */
    double bad[6] = {0, 3, -1, 4, 2, 0};
    mt_array B = {0};
    make(&B, dev, MT_INT64, 2, (int64_t[]){2, 3}, bad);
    MT_CHECK_ERR(mt_array_take_labels(&O, &X, &B, 1), MT_ERR_RANGE,
                 "label -1 is out of range for axis 1 of size 4 (at flat position 2)");
    MT_CHECK(O.buf == NULL);
    MT_CHECK_ERR(mt_array_take_labels(&O, &X, &B, 0), MT_ERR_SHAPE,
                 "labels of shape (2, 3) do not match values of shape (2, 4, 3) without axis 0");
    /* no labels at all */
    mt_array Z = {0}, ZL = {0};
    make(&Z, dev, MT_FLOAT32, 2, (int64_t[]){0, 4}, NULL);
    make(&ZL, dev, MT_INT64, 1, (int64_t[]){0}, NULL);
    MT_CHECK_OK(mt_array_take_labels(&O, &Z, &ZL, 1));
    expect_shape(&O, dev, MT_FLOAT32, 1, (int64_t[]){0});
    mt_array_clear(&O);
    free(xb);
    mt_array_clear(&Z);
    mt_array_clear(&ZL);
    mt_array_clear(&B);
    mt_array_clear(&LV);
    mt_array_clear(&LT);
    mt_array_clear(&X);
}

/* ---------------------------------------------------------------- graph ops */

/* Evaluates outs on dev with the given inputs (made on dev from doubles); results as doubles. */
static mt_status eval_on(mt_device *dev, mt_graph *g, int32_t nout, const mt_var *outs,
                         int32_t nin, const mt_var *vars, const mt_dtype *dts,
                         const int64_t (*dims)[2], const int32_t *nds, double *const *vals,
                         double **res)
{
    mt_array in[4], r[8];
    memset(in, 0, sizeof in);
    memset(r, 0, sizeof r);
    const mt_array *ptrs[4];
    for (int32_t i = 0; i < nin; i++) {
        make(&in[i], dev, dts[i], nds[i], dims[i], vals[i]);
        ptrs[i] = &in[i];
    }
    mt_status st = mt_graph_eval(g, nout, outs, nin, vars, ptrs, dev, r);
    for (int32_t j = 0; j < nout && st == MT_OK; j++) {
        MT_CHECK(mt_array_device(&r[j]) == dev);
        size_t n = (size_t)mt_array_size(&r[j]);
        res[j] = calloc(n + 1, sizeof(double));
        MT_CHECK(res[j] != NULL);
        jt_read(&r[j], res[j], n);
    }
    for (int32_t j = 0; j < nout; j++) mt_array_clear(&r[j]);
    for (int32_t i = 0; i < nin; i++) mt_array_clear(&in[i]);
    return st;
}

MT_TEST(graph_index_ops_match_host)
{
    mt_device *dev = dev_or_skip();
    enum { B = 6, K = 5 };
    mt_graph *g = NULL;
    MT_CHECK_OK(mt_graph_new(&g));
    const int64_t xd[2] = {B, K}, ld[1] = {B}, id[1] = {4};
    mt_var x = mt_graph_placeholder(g, "x", MT_FLOAT32, 2, xd);
    mt_var l = mt_graph_placeholder(g, "l", MT_INT32, 1, ld);
    mt_var ix = mt_graph_placeholder(g, "ix", MT_INT64, 1, id);
    mt_var xent = mt_graph_softmax_crossentropy_labels(g, x, l, 1);
    mt_var cost = mt_graph_mean(g, xent, 0, NULL, false);
    mt_var ga = mt_graph_gather(g, x, ix, 1);
    mt_var gcost = mt_graph_sum(g, mt_graph_mul(g, ga, ga), 0, NULL, false);
    mt_var grads[2];
    MT_CHECK_OK(mt_graph_grad(g, cost, 1, &x, &grads[0], NULL));
    MT_CHECK_OK(mt_graph_grad(g, gcost, 1, &x, &grads[1], NULL)); /* a scatter_add */
    mt_var outs[7] = {xent,
                      mt_graph_crossentropy_labels(g, mt_graph_softmax(g, x, 1), l, 1),
                      ga,
                      mt_graph_scatter_add(g, x, ix, mt_graph_ones(g, MT_FLOAT32, 2,
                                                                   (int64_t[]){B, 4}), 1),
                      grads[0],
                      grads[1],
                      mt_graph_one_hot(g, l, K, MT_FLOAT32)};
    MT_CHECK_OK(mt_graph_status(g));
    const int64_t on[7] = {B, B, B * 4, B * K, B * K, B * K, B * K};
    double xv[B * K], lv[B] = {0, 4, 2, 2, 1, 3}, iv[4] = {3, -1, 3, 0};
    jt_fill(xv, B * K, -3, 3, 41);
    double *vals[3] = {xv, lv, iv};
    mt_var vars[3] = {x, l, ix};
    const mt_dtype dts[3] = {MT_FLOAT32, MT_INT32, MT_INT64};
    const int64_t dims[3][2] = {{B, K}, {B, 0}, {4, 0}};
    const int32_t nds[3] = {2, 1, 1};
    double *rd[7], *rh[7], *rr[7];
    MT_CHECK_OK(eval_on(dev, g, 7, outs, 3, vars, dts, dims, nds, vals, rd));
    MT_CHECK_OK(eval_on(g_host, g, 7, outs, 3, vars, dts, dims, nds, vals, rh));
    /* the host round trip on the device (MLTRAIN_INDEX_PATH=host) gives the same values */
    setenv("MLTRAIN_INDEX_PATH", "host", 1);
    mt_status st = eval_on(dev, g, 7, outs, 3, vars, dts, dims, nds, vals, rr);
    unsetenv("MLTRAIN_INDEX_PATH");
    MT_CHECK_OK(st);
    static const char *const names[7] = {"softmax_crossentropy_labels", "crossentropy_labels",
                                         "gather", "scatter_add", "d xent / dx",
                                         "d sum(gather^2) / dx", "one_hot"};
    for (int j = 0; j < 7; j++) {
        /* gathers, scatter-adds and one_hot are exact; the rest within float32 rounding */
        bool exact = j == 2 || j == 3 || j == 5 || j == 6;
        double tol = exact ? 0 : 1e-5;
        for (int64_t i = 0; i < on[j]; i++) {
            if (fabs(rd[j][i] - rh[j][i]) > tol * (1 + fabs(rh[j][i])))
                mt_test_fail(__FILE__, __LINE__, "%s: element %lld is %.9g on the device, %.9g "
                             "on the host", names[j], (long long)i, rd[j][i], rh[j][i]);
            if (rd[j][i] != rr[j][i] && exact)
                mt_test_fail(__FILE__, __LINE__, "%s: element %lld is %.9g with the device "
                             "kernels, %.9g through the host", names[j], (long long)i, rd[j][i],
                             rr[j][i]);
        }
        free(rd[j]), free(rh[j]), free(rr[j]);
    }
    /* errors name the node and the index exactly as on the host */
    double badl[B] = {0, 5, 2, 2, 1, 3}, badi[4] = {3, -1, -6, 0};
    double *bv[3] = {xv, badl, iv}, *bi[3] = {xv, lv, badi}, *none[7];
    MT_CHECK_ERR(eval_on(dev, g, 1, &outs[0], 3, vars, dts, dims, nds, bv, none), MT_ERR_RANGE,
                 "label 5 is out of range for axis 1 of size 5 (at flat position 1)");
    MT_CHECK_ERR(eval_on(dev, g, 1, &outs[2], 3, vars, dts, dims, nds, bi, none), MT_ERR_RANGE,
                 "index -6 is out of range for axis 1 of size 5 (at flat position 2)");
    MT_CHECK_ERR(eval_on(dev, g, 1, &outs[3], 3, vars, dts, dims, nds, bi, none), MT_ERR_RANGE,
                 "index -6 is out of range for axis 1 of size 5 (at flat position 2)");
    mt_graph_free(g);
}

/* The gradient of mean(softmax_crossentropy_labels(x, y)) compiled for the device in FAST_RUN
 * with xent_softmax_dx on (one softmax_crossentropy_labels_dx step: the generic softmax and
 * kernel there) and off (one_hot, softmax, elementwise kernel), along the last axis and axis 0:
 * on equals off within float32 rounding, and equals the host's fused row pass. A label out of
 * range is the same error as on the host. */
static mt_function *grad_fn(mt_device *dev, mt_graph *g, const mt_var *ins, mt_var out, bool on)
{
    mt_function_options o;
    mt_function_options_init(&o);
    const char *off[1] = {"xent_softmax_dx"};
    o.n_disabled_rewrites = on ? 0 : 1;
    o.disabled_rewrites = off;
    mt_function *f = NULL;
    MT_CHECK_OK(mt_function_new(&f, g, 2, ins, 1, &out, 0, NULL, dev, &o));
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    MT_CHECK_OK(mt_function_print(f, &sb));
    MT_CHECK((strstr(sb.data, "softmax_crossentropy_labels_dx") != NULL) == on);
    mt_strbuf_deinit(&sb);
    return f;
}

static double *call_fn(mt_function *f, mt_device *dev, const mt_array *const *host_ins,
                       size_t n, mt_status *st_out)
{
    mt_array in[2] = {{0}, {0}}, r = {0};
    for (int i = 0; i < 2; i++) MT_CHECK_OK(mt_array_copy_to(&in[i], host_ins[i], dev));
    const mt_array *ptrs[2] = {&in[0], &in[1]};
    double *v = NULL;
    mt_status st = mt_function_call(f, 2, ptrs, 1, &r);
    if (st == MT_OK) {
        v = calloc(n + 1, sizeof(double));
        MT_CHECK(v != NULL);
        jt_read(&r, v, n);
    }
    if (st_out) *st_out = st;
    else MT_CHECK_OK(st);
    mt_array_clear(&r);
    mt_array_clear(&in[0]);
    mt_array_clear(&in[1]);
    return v;
}

MT_TEST(fused_xent_gradient_on_device)
{
    mt_device *dev = dev_or_skip();
    enum { B = 6, K = 5 };
    double xv[B * K], lv[B] = {0, 4, 2, 2, 1, 3}, bad[B] = {0, 4, 2, 5, 1, 3};
    jt_fill(xv, B * K, -3, 3, 43);
    xv[7] = 1e30; /* a huge logit */
    for (int axis = 1; axis >= 0; axis--) {
        mt_graph *g = NULL;
        MT_CHECK_OK(mt_graph_new(&g));
        int64_t xd[2] = {axis ? B : K, axis ? K : B}, ld[1] = {B};
        mt_var x = mt_graph_placeholder(g, "x", MT_FLOAT32, 2, xd);
        mt_var l = mt_graph_placeholder(g, "l", MT_INT32, 1, ld);
        mt_var cost = mt_graph_mean(g, mt_graph_softmax_crossentropy_labels(g, x, l, axis), 0,
                                    NULL, false);
        mt_var gx;
        MT_CHECK_OK(mt_graph_grad(g, cost, 1, &x, &gx, NULL));
        mt_var ins[2] = {x, l};
        mt_array X = {0}, L = {0}, LB = {0};
        make(&X, g_host, MT_FLOAT32, 2, xd, xv); /* the same values, transposed shape */
        make(&L, g_host, MT_INT32, 1, ld, lv);
        make(&LB, g_host, MT_INT32, 1, ld, bad);
        const mt_array *hin[2] = {&X, &L}, *hbad[2] = {&X, &LB};
        mt_function *fon = grad_fn(dev, g, ins, gx, true), *foff = grad_fn(dev, g, ins, gx, false);
        mt_function *fh = grad_fn(g_host, g, ins, gx, true);
        double *on = call_fn(fon, dev, hin, B * K, NULL), *off = call_fn(foff, dev, hin, B * K,
                                                                         NULL);
        double *host = call_fn(fh, g_host, hin, B * K, NULL);
        for (int i = 0; i < B * K; i++) {
            if (fabs(on[i] - off[i]) > 1e-7 + 1e-6 * fabs(off[i]) ||
                fabs(on[i] - host[i]) > 1e-7 + 1e-6 * fabs(host[i]))
                mt_test_fail(__FILE__, __LINE__, "axis %d element %d: %.9g fused on the device, "
                             "%.9g unfused, %.9g fused on the host", axis, i, on[i], off[i],
                             host[i]);
        }
        /* a label outside [0, K) matches no class, as in one_hot: the same values fused and
         * unfused (only the gradient is computed here, so nothing reports the label) */
        free(on), free(off), free(host);
        on = call_fn(fon, dev, hbad, B * K, NULL);
        off = call_fn(foff, dev, hbad, B * K, NULL);
        host = call_fn(fh, g_host, hbad, B * K, NULL);
        for (int i = 0; i < B * K; i++) {
            if (fabs(on[i] - off[i]) > 1e-7 + 1e-6 * fabs(off[i]) ||
                fabs(on[i] - host[i]) > 1e-7 + 1e-6 * fabs(host[i]))
                mt_test_fail(__FILE__, __LINE__, "bad label, axis %d element %d: %.9g fused on "
                             "the device, %.9g unfused, %.9g fused on the host", axis, i, on[i],
                             off[i], host[i]);
        }
        free(on), free(off), free(host);
        mt_function_free(fon);
        mt_function_free(foff);
        mt_function_free(fh);
        mt_array_clear(&X);
        mt_array_clear(&L);
        mt_array_clear(&LB);
        mt_graph_free(g);
    }
}
