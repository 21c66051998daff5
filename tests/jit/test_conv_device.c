/* Convolution and pooling on an accelerator device (MLTRAIN_TEST_DEVICE: opencl, cudaemu:0 or
 * cuda:0) against the host path of the same graph: conv2d with both gradients, max and mean
 * pooling with their gradient (ties, padding, strides, overlapping windows, ceil-mode windows
 * past the padded input, NaNs), in float32 and float64, plus the gpuarray entry points directly
 * (pool2d(x, v), shape errors). Max pooling and its gradient must agree bit for bit (the same
 * element is chosen and the same dy values are added in the same order); sums agree within
 * per-dtype tolerances. On cuda:0 the case also reports whether cuDNN ran (MT_TEST_DNN). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jit_ref.h"

#ifndef MT_TEST_DNN
#define MT_TEST_DNN 0
#endif
#if MT_TEST_DNN
uint64_t mt__cuda_dnn_calls(void); /* src/gpuarray/cuda_dnn.c */
uint64_t mt__cuda_dnn_algo_queries(void);
#endif

static mt_device *g_host;

/* The device under test; SKIP when it cannot be opened here. */
static mt_device *dev_or_skip(void)
{
    const char *name = getenv("MLTRAIN_TEST_DEVICE");
    if (!name || !*name || strcmp(name, "host") == 0) MT_SKIP("MLTRAIN_TEST_DEVICE names no device");
    if (!g_host) MT_CHECK_OK(mt_device_open(&g_host, "host"));
    mt_device *d = NULL;
    mt_status st = mt_device_open(&d, name);
    if (st != MT_OK) MT_SKIP("cannot open the test device here");
    mt_device_release(d);
    return jt_dev();
}

static int64_t numel(const int64_t *d)
{
    return d[0] * d[1] * d[2] * d[3];
}

/* Evaluates outs on dev with inputs made from vals (dtype dt); results read back as doubles. */
static void eval_on(mt_device *dev, mt_graph *g, int32_t nout, const mt_var *outs, int32_t nin,
                    const mt_var *vars, const int64_t (*dims)[4], double *const *vals,
                    mt_dtype dt, double **res)
{
    mt_array in[4], r[4];
    memset(in, 0, sizeof in);
    memset(r, 0, sizeof r);
    const mt_array *ptrs[4];
    for (int32_t i = 0; i < nin; i++) {
        void *buf = malloc((size_t)numel(dims[i]) * mt_dtype_size(dt) + 1);
        MT_CHECK(buf != NULL);
        mt_dtype_convert(buf, dt, (ptrdiff_t)mt_dtype_size(dt), vals[i], MT_FLOAT64,
                         sizeof(double), (size_t)numel(dims[i]));
        MT_CHECK_OK(mt_array_from_host(&in[i], dev, dt, 4, dims[i], buf));
        free(buf);
        ptrs[i] = &in[i];
    }
    mt_status st = mt_graph_eval(g, nout, outs, nin, vars, ptrs, dev, r);
    if (st != MT_OK)
        mt_test_fail(__FILE__, __LINE__, "mt_graph_eval on %s: %s", mt_device_name(dev),
                     mt_last_error());
    for (int32_t j = 0; j < nout; j++) {
        MT_CHECK(mt_array_device(&r[j]) == dev);
        size_t n = (size_t)mt_array_size(&r[j]);
        void *buf = malloc(n * mt_dtype_size(dt) + 1);
        MT_CHECK(buf != NULL);
        MT_CHECK_OK(mt_array_to_host(buf, n * mt_dtype_size(dt), &r[j]));
        res[j] = calloc(n + 1, sizeof(double));
        MT_CHECK(res[j] != NULL);
        mt_dtype_convert(res[j], MT_FLOAT64, sizeof(double), buf, dt, (ptrdiff_t)mt_dtype_size(dt),
                         n);
        free(buf);
        mt_array_clear(&r[j]);
    }
    for (int32_t i = 0; i < nin; i++) mt_array_clear(&in[i]);
}

/* a == b elementwise: exactly (NaN == NaN) when exact, else within atol + rtol |b|. */
static void compare(const char *what, const double *a, const double *b, int64_t n, bool exact,
                    double atol, double rtol)
{
    for (int64_t i = 0; i < n; i++) {
        bool same = (isnan(a[i]) && isnan(b[i])) || a[i] == b[i];
        if (!same && !exact && !isnan(a[i]) && !isnan(b[i]))
            same = fabs(a[i] - b[i]) <= atol + rtol * fabs(b[i]);
        if (!same)
            mt_test_fail(__FILE__, __LINE__, "%s: element %lld is %.17g on the device, %.17g on "
                         "the host", what, (long long)i, a[i], b[i]);
    }
}

static double *values(int64_t n, uint64_t seed, int levels)
{
    double *v = malloc((size_t)n * sizeof(double) + 8);
    MT_CHECK(v != NULL);
    jt_fill(v, (size_t)n, -1.0, 1.0, seed);
    /* few distinct values: many ties inside pooling windows */
    if (levels > 0)
        for (int64_t i = 0; i < n; i++) v[i] = floor(v[i] * levels) / levels;
    return v;
}

/* ---------------------------------------------------------------- convolution */

/* cfg: n c h w o kh kw sh sw ph pw */
static void check_conv(mt_device *dev, mt_dtype dt, const int64_t *q, uint64_t seed)
{
    const int64_t oh = (q[2] + 2 * q[9] - q[5]) / q[7] + 1, ow = (q[3] + 2 * q[10] - q[6]) / q[8] + 1;
    const int64_t dims[3][4] = {{q[0], q[1], q[2], q[3]}, {q[4], q[1], q[5], q[6]},
                                {q[0], q[4], oh, ow}};
    double *vals[3];
    for (int i = 0; i < 3; i++) vals[i] = values(numel(dims[i]), seed + (uint64_t)i, 0);
    mt_graph *g = NULL;
    MT_CHECK_OK(mt_graph_new(&g));
    mt_var X = mt_graph_placeholder(g, "x", dt, 4, dims[0]);
    mt_var W = mt_graph_placeholder(g, "w", dt, 4, dims[1]);
    mt_var DY = mt_graph_placeholder(g, "dy", dt, 4, dims[2]);
    const int32_t s[2] = {(int32_t)q[7], (int32_t)q[8]}, p[2] = {(int32_t)q[9], (int32_t)q[10]};
    const int32_t k[2] = {(int32_t)q[5], (int32_t)q[6]};
    mt_var outs[3] = {mt_graph_conv2d(g, X, W, s, p), mt_graph_conv2d_grad_input(g, DY, W, X, s, p),
                      mt_graph_conv2d_grad_weight(g, X, DY, k, s, p)};
    MT_CHECK_OK(mt_graph_status(g));
    mt_var vars[3] = {X, W, DY};
    double *rd[3], *rh[3];
    eval_on(dev, g, 3, outs, 3, vars, dims, vals, dt, rd);
    eval_on(g_host, g, 3, outs, 3, vars, dims, vals, dt, rh);
    const int64_t *od[3] = {dims[2], dims[0], dims[1]};
    static const char *const nm[3] = {"conv2d", "conv2d_grad_input", "conv2d_grad_weight"};
    /* a sum of K terms of magnitude <= 1 */
    const int64_t terms[3] = {q[1] * q[5] * q[6], q[4] * q[5] * q[6], q[0] * oh * ow};
    for (int j = 0; j < 3; j++) {
        double eps = dt == MT_FLOAT64 ? 1e-15 : 2e-7;
        compare(nm[j], rd[j], rh[j], numel(od[j]), false, eps * (double)terms[j], 1e-5);
        free(rd[j]), free(rh[j]);
    }
    for (int i = 0; i < 3; i++) free(vals[i]);
    mt_graph_free(g);
}

MT_TEST(conv2d_and_gradients_match_host)
{
    mt_device *dev = dev_or_skip();
#if MT_TEST_DNN
    uint64_t before = mt__cuda_dnn_calls();
#endif
    static const int64_t cfg[][11] = {
        {2, 3, 8, 8, 4, 3, 3, 1, 1, 0, 0},   {3, 2, 9, 7, 5, 3, 2, 2, 1, 1, 2},
        {2, 4, 5, 5, 3, 1, 1, 1, 1, 0, 0},   {1, 1, 6, 6, 2, 6, 6, 1, 1, 0, 0},
        {4, 3, 10, 11, 6, 5, 5, 2, 3, 2, 1}, {2, 1, 4, 4, 1, 2, 2, 3, 3, 1, 1},
        {5, 8, 12, 12, 16, 3, 3, 1, 1, 1, 1},
    };
    for (size_t i = 0; i < sizeof cfg / sizeof cfg[0]; i++) {
        check_conv(dev, MT_FLOAT32, cfg[i], 10 + i);
        check_conv(dev, MT_FLOAT64, cfg[i], 40 + i);
    }
#if MT_TEST_DNN
    printf("cuDNN ran %llu of the convolutions\n",
           (unsigned long long)(mt__cuda_dnn_calls() - before));
#endif
}

/* y = conv(x [n, 2, 6, 6], w [3, 2, 3, 3]) on dev against the host. */
static void check_conv_n(mt_device *dev, int64_t n)
{
    const int64_t xd[4] = {n, 2, 6, 6}, wd[4] = {3, 2, 3, 3}, yd[4] = {n, 3, 4, 4};
    const int64_t nx = numel(xd), nw = numel(wd), ny = numel(yd);
    double *x = values(nx, 100 + (uint64_t)n, 0), *w = values(nw, 200 + (uint64_t)n, 0);
    float *xf = malloc((size_t)nx * sizeof(float)), *wf = malloc((size_t)nw * sizeof(float));
    float *yf = malloc((size_t)ny * sizeof(float)), *hf = malloc((size_t)ny * sizeof(float));
    MT_CHECK(xf && wf && yf && hf);
    for (int64_t i = 0; i < nx; i++) xf[i] = (float)x[i];
    for (int64_t i = 0; i < nw; i++) wf[i] = (float)w[i];
    const mt_conv2d_params cp = {{1, 1}, {0, 0}};
    mt_device *on[2] = {dev, g_host};
    float *out[2] = {yf, hf};
    for (int k = 0; k < 2; k++) {
        mt_array X, W, Y;
        MT_CHECK_OK(mt_array_from_host(&X, on[k], MT_FLOAT32, 4, xd, xf));
        MT_CHECK_OK(mt_array_from_host(&W, on[k], MT_FLOAT32, 4, wd, wf));
        MT_CHECK_OK(mt_array_empty(&Y, on[k], MT_FLOAT32, 4, yd, 'C'));
        MT_CHECK_OK(mt_conv2d_forward(&Y, &X, &W, &cp));
        MT_CHECK_OK(mt_array_to_host(out[k], (size_t)ny * sizeof(float), &Y));
        mt_array_clear(&X), mt_array_clear(&W), mt_array_clear(&Y);
    }
    for (int64_t i = 0; i < ny; i++)
        if (!(fabsf(yf[i] - hf[i]) <= 1e-5f))
            mt_test_fail(__FILE__, __LINE__, "batch %lld: element %lld is %.9g on the device, "
                         "%.9g on the host", (long long)n, (long long)i, yf[i], hf[i]);
    free(x), free(w), free(xf), free(wf), free(yf), free(hf);
}

/* 70 shapes, more than the 64 convolution plans a CUDA device keeps: every result is right, the
 * most recent shapes reuse their plans, the oldest were evicted and are planned again. */
MT_TEST(conv2d_plans_are_reused_and_evicted)
{
    mt_device *dev = dev_or_skip();
#if MT_TEST_DNN
    uint64_t calls = mt__cuda_dnn_calls(), queries = mt__cuda_dnn_algo_queries();
#endif
    for (int64_t n = 1; n <= 70; n++) check_conv_n(dev, n);
#if MT_TEST_DNN
    if (mt__cuda_dnn_calls() == calls) MT_SKIP("cuDNN did not run these convolutions here");
    MT_CHECK(mt__cuda_dnn_algo_queries() - queries == 70);
    queries = mt__cuda_dnn_algo_queries();
    for (int64_t n = 70; n > 10; n--) check_conv_n(dev, n);
    MT_CHECK(mt__cuda_dnn_algo_queries() == queries); /* all cached: no heuristic query */
    check_conv_n(dev, 1);
    MT_CHECK(mt__cuda_dnn_algo_queries() == queries + 1); /* evicted: planned again */
#endif
}

/* ---------------------------------------------------------------- pooling */

/* cfg: n c h w kh kw sh sw ph pw ceil; levels: value quantisation (ties) */
static void check_pool(mt_device *dev, mt_dtype dt, const int64_t *q, bool max, int levels,
                       bool nans, uint64_t seed)
{
    mt_graph *g = NULL;
    MT_CHECK_OK(mt_graph_new(&g));
    const int64_t xd[4] = {q[0], q[1], q[2], q[3]};
    mt_var X = mt_graph_placeholder(g, "x", dt, 4, xd);
    const int32_t k[2] = {(int32_t)q[4], (int32_t)q[5]}, s[2] = {(int32_t)q[6], (int32_t)q[7]};
    const int32_t p[2] = {(int32_t)q[8], (int32_t)q[9]};
    mt_pool_mode mode = max ? MT_POOL_MAX : MT_POOL_MEAN;
    mt_var Y = mt_graph_pool2d(g, X, mode, k, s, p, q[10] != 0);
    MT_CHECK_OK(mt_graph_status(g));
    const int64_t *ys = mt_graph_type(g, Y)->shape;
    const int64_t dims[2][4] = {{xd[0], xd[1], xd[2], xd[3]}, {ys[0], ys[1], ys[2], ys[3]}};
    mt_var DY = mt_graph_placeholder(g, "dy", dt, 4, dims[1]);
    mt_var outs[2] = {Y, mt_graph_pool2d_grad(g, X, Y, DY, mode, k, s, p, q[10] != 0)};
    MT_CHECK_OK(mt_graph_status(g));
    double *vals[2] = {values(numel(dims[0]), seed, levels), values(numel(dims[1]), seed + 1, 0)};
    if (nans)
        for (int64_t i = 5; i < numel(dims[0]); i += 11) vals[0][i] = NAN;
    mt_var vars[2] = {X, DY};
    double *rd[2], *rh[2];
    eval_on(dev, g, 2, outs, 2, vars, dims, vals, dt, rd);
    eval_on(g_host, g, 2, outs, 2, vars, dims, vals, dt, rh);
    double eps = dt == MT_FLOAT64 ? 1e-14 : 1e-6;
    compare(max ? "max pool" : "mean pool", rd[0], rh[0], numel(dims[1]), max, eps, eps);
    compare(max ? "max pool gradient" : "mean pool gradient", rd[1], rh[1], numel(dims[0]), max,
            eps, eps);
    for (int j = 0; j < 2; j++) free(rd[j]), free(rh[j]), free(vals[j]);
    mt_graph_free(g);
}

MT_TEST(pool2d_and_gradient_match_host)
{
    mt_device *dev = dev_or_skip();
    static const int64_t cfg[][11] = {
        {2, 3, 8, 8, 2, 2, 2, 2, 0, 0, 0},  {2, 2, 9, 7, 3, 3, 2, 2, 1, 1, 0},
        {1, 3, 7, 9, 3, 2, 2, 2, 0, 1, 1},  {2, 2, 10, 10, 3, 3, 3, 3, 1, 1, 1},
        {1, 2, 11, 6, 4, 3, 1, 2, 2, 1, 1}, {3, 1, 5, 5, 5, 5, 1, 1, 2, 2, 0},
        {1, 1, 6, 5, 3, 3, 2, 2, 0, 0, 1},
    };
    for (size_t i = 0; i < sizeof cfg / sizeof cfg[0]; i++) {
        for (int m = 0; m < 2; m++) {
            check_pool(dev, MT_FLOAT32, cfg[i], m == 0, 3, false, 100 + i);
            check_pool(dev, MT_FLOAT64, cfg[i], m == 0, 4, false, 200 + i);
            check_pool(dev, MT_FLOAT64, cfg[i], m == 0, 0, false, 300 + i);
        }
        check_pool(dev, MT_FLOAT32, cfg[i], true, 0, true, 400 + i);
    }
}

/* ---------------------------------------------------------------- the gpuarray entry points */

MT_TEST(pool2d_with_values_and_shape_errors)
{
    mt_device *dev = dev_or_skip();
    const int64_t xd[4] = {1, 2, 5, 5}, yd[4] = {1, 2, 3, 3};
    const int64_t n = numel(xd), ny = numel(yd);
    double *x = values(n, 7, 2), *v = values(n, 8, 0);
    float xf[50], vf[50], yf[18];
    for (int64_t i = 0; i < n; i++) xf[i] = (float)x[i], vf[i] = (float)v[i];
    mt_array X, V, Y;
    MT_CHECK_OK(mt_array_from_host(&X, dev, MT_FLOAT32, 4, xd, xf));
    MT_CHECK_OK(mt_array_from_host(&V, dev, MT_FLOAT32, 4, xd, vf));
    MT_CHECK_OK(mt_array_empty(&Y, dev, MT_FLOAT32, 4, yd, 'C'));
    /* window 3, stride 2, pad 1 (floor size 3) */
    const mt_pool2d_params p = {{3, 3}, {2, 2}, {1, 1}, MT_POOL2D_MAX};
    MT_CHECK_OK(mt_pool2d_forward(&Y, &X, &V, &p));
    MT_CHECK_OK(mt_array_to_host(yf, sizeof yf, &Y));
    for (int64_t pl = 0; pl < 2; pl++)
        for (int64_t oh = 0; oh < 3; oh++)
            for (int64_t ow = 0; ow < 3; ow++) {
                int64_t best = -1;
                for (int64_t i = oh * 2 - 1; i < oh * 2 + 2; i++)
                    for (int64_t j = ow * 2 - 1; j < ow * 2 + 2; j++) {
                        if (i < 0 || j < 0 || i >= 5 || j >= 5) continue;
                        int64_t at = pl * 25 + i * 5 + j;
                        if (best < 0 || xf[at] > xf[best]) best = at;
                    }
                MT_CHECK(yf[pl * 9 + oh * 3 + ow] == vf[best]);
            }
    /* a y that is no pooling of x, and a conv output of the wrong size */
    mt_array Bad;
    const int64_t bd[4] = {1, 2, 4, 3};
    MT_CHECK_OK(mt_array_empty(&Bad, dev, MT_FLOAT32, 4, bd, 'C'));
    MT_CHECK_ERR(mt_pool2d_forward(&Bad, &X, NULL, &p), MT_ERR_SHAPE, "pool2d_forward");
    const mt_conv2d_params cp = {{1, 1}, {0, 0}};
    MT_CHECK_ERR(mt_conv2d_forward(&Bad, &X, &V, &cp), MT_ERR_SHAPE, "conv2d_forward");
    (void)ny;
    mt_array_clear(&X), mt_array_clear(&V), mt_array_clear(&Y), mt_array_clear(&Bad);
    free(x), free(v);
}
