/* Tests of 2-d convolution and pooling: values of every op (conv2d, its input and weight
 * gradients, max and mean pooling with strides, padding and ceil mode, the pooling gradient)
 * against direct loops written here in float64, over many shapes; against PyTorch (reference
 * outputs computed at test time by tests/jit/torch_conv_ref.py into .npy files); gradients by
 * central differences (mt_verify_grad, float64) including second derivatives through the
 * gradient ops; shape and dtype errors at build and at run time; the Pylearn2 convolutional
 * network tutorial's shapes; fusion of the bias and relu after a convolution in FAST_RUN; the
 * expression language and the printer. Cases run on MLTRAIN_TEST_DEVICE (host, or OpenCL
 * through copies to the host). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "jit_ref.h"
#include "mltrain/graph_grad.h"
#include "mltrain/graph_parse.h"
#include "mltrain/jit_verify.h"

/* ---------------------------------------------------------------- helpers */

static mt_graph *new_graph(void)
{
    mt_graph *g = NULL;
    MT_CHECK_OK(mt_graph_new(&g));
    mt_graph_set_origin(g, __FILE__, __LINE__);
    return g;
}

static int64_t numel(const int64_t *d, int32_t nd)
{
    int64_t n = 1;
    for (int32_t i = 0; i < nd; i++) n *= d[i];
    return n;
}

static double *dalloc(int64_t n)
{
    double *p = calloc((size_t)(n > 0 ? n : 1), sizeof(double));
    MT_CHECK(p != NULL);
    return p;
}

static double *filled(int64_t n, uint64_t seed)
{
    double *p = dalloc(n);
    jt_fill(p, (size_t)n, -1.0, 1.0, seed);
    return p;
}

/* The values an array of dtype dt will actually hold (so references see rounded inputs). */
static void round_to(mt_dtype dt, double *v, int64_t n)
{
    if (dt == MT_FLOAT64) return;
    void *buf = malloc((size_t)n * mt_dtype_size(dt) + 1);
    MT_CHECK(buf != NULL);
    mt_dtype_convert(buf, dt, (ptrdiff_t)mt_dtype_size(dt), v, MT_FLOAT64, sizeof(double),
                     (size_t)n);
    mt_dtype_convert(v, MT_FLOAT64, sizeof(double), buf, dt, (ptrdiff_t)mt_dtype_size(dt),
                     (size_t)n);
    free(buf);
}

/* Tolerance of a float32 sum of k products of values in [-1, 1]. */
static void sum_tol(mt_dtype dt, int64_t k, double *atol, double *rtol)
{
    jt_tol(dt, atol, rtol);
    if (dt == MT_FLOAT32) *atol = 2e-7 * (double)(k + 1), *rtol = 1e-5;
    if (dt == MT_FLOAT64) *atol = 1e-14 * (double)(k + 1);
}

/* ---------------------------------------------------------------- direct references */

typedef struct geo {
    int64_t n, c, h, w, o, kh, kw, sh, sw, ph, pw, oh, ow;
} geo;

static geo conv_geo(int64_t n, int64_t c, int64_t h, int64_t w, int64_t o, int64_t kh,
                    int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw)
{
    geo q = {n, c, h, w, o, kh, kw, sh, sw, ph, pw, 0, 0};
    q.oh = (h + 2 * ph - kh) / sh + 1;
    q.ow = (w + 2 * pw - kw) / sw + 1;
    return q;
}

/* x[n, c, i, j] with zero padding. */
static double xat(const geo *q, const double *x, int64_t n, int64_t c, int64_t i, int64_t j)
{
    if (i < 0 || i >= q->h || j < 0 || j >= q->w) return 0.0;
    return x[((n * q->c + c) * q->h + i) * q->w + j];
}

static void ref_conv(const geo *q, const double *x, const double *w, double *y)
{
    for (int64_t n = 0; n < q->n; n++)
        for (int64_t o = 0; o < q->o; o++)
            for (int64_t a = 0; a < q->oh; a++)
                for (int64_t b = 0; b < q->ow; b++) {
                    double s = 0;
                    for (int64_t c = 0; c < q->c; c++)
                        for (int64_t i = 0; i < q->kh; i++)
                            for (int64_t j = 0; j < q->kw; j++)
                                s += xat(q, x, n, c, a * q->sh - q->ph + i, b * q->sw - q->pw + j) *
                                     w[((o * q->c + c) * q->kh + i) * q->kw + j];
                    y[((n * q->o + o) * q->oh + a) * q->ow + b] = s;
                }
}

/* dx = sum over the uses of each input pixel; dw = sum over the outputs. */
static void ref_conv_grads(const geo *q, const double *x, const double *w, const double *dy,
                           double *dx, double *dw)
{
    memset(dx, 0, (size_t)(q->n * q->c * q->h * q->w) * sizeof(double));
    memset(dw, 0, (size_t)(q->o * q->c * q->kh * q->kw) * sizeof(double));
    for (int64_t n = 0; n < q->n; n++)
        for (int64_t o = 0; o < q->o; o++)
            for (int64_t a = 0; a < q->oh; a++)
                for (int64_t b = 0; b < q->ow; b++) {
                    double g = dy[((n * q->o + o) * q->oh + a) * q->ow + b];
                    for (int64_t c = 0; c < q->c; c++)
                        for (int64_t i = 0; i < q->kh; i++)
                            for (int64_t j = 0; j < q->kw; j++) {
                                int64_t ii = a * q->sh - q->ph + i, jj = b * q->sw - q->pw + j;
                                int64_t wi = ((o * q->c + c) * q->kh + i) * q->kw + j;
                                if (ii < 0 || ii >= q->h || jj < 0 || jj >= q->w) continue;
                                int64_t xi = ((n * q->c + c) * q->h + ii) * q->w + jj;
                                dx[xi] += g * w[wi];
                                dw[wi] += g * x[xi];
                            }
                }
}

typedef struct pgeo {
    int64_t n, c, h, w, kh, kw, sh, sw, ph, pw, oh, ow;
    bool max, ceil_mode;
} pgeo;

/* Output size by the documented formula: floor or ceil of (H + 2p - K) / s, plus one, minus
 * one when in ceil mode the last window starts at or past H + p. */
static int64_t pool_size(int64_t h, int64_t k, int64_t s, int64_t p, bool ceil_mode)
{
    double q = (double)(h + 2 * p - k) / (double)s;
    int64_t o = (int64_t)(ceil_mode ? ceil(q) : floor(q)) + 1;
    if (ceil_mode && (o - 1) * s >= h + p) o--;
    return o;
}

static pgeo pool_geo(int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw,
                     int64_t sh, int64_t sw, int64_t ph, int64_t pw, bool max, bool ceil_mode)
{
    pgeo q = {n, c, h, w, kh, kw, sh, sw, ph, pw, 0, 0, max, ceil_mode};
    q.oh = pool_size(h, kh, sh, ph, ceil_mode);
    q.ow = pool_size(w, kw, sw, pw, ceil_mode);
    return q;
}

/* Window (a, b) of plane pl: the flat positions inside the input, in C order. */
static int64_t window(const pgeo *q, int64_t a, int64_t b, int64_t *pos)
{
    int64_t k = 0;
    for (int64_t i = a * q->sh - q->ph; i < a * q->sh - q->ph + q->kh; i++)
        for (int64_t j = b * q->sw - q->pw; j < b * q->sw - q->pw + q->kw; j++)
            if (i >= 0 && i < q->h && j >= 0 && j < q->w) pos[k++] = i * q->w + j;
    return k;
}

/* y = pool(x); dx = the pooling gradient of dy (max: the first maximal element). */
static void ref_pool(const pgeo *q, const double *x, const double *dy, double *y, double *dx)
{
    int64_t pos[1024];
    int64_t hw = q->h * q->w, ohw = q->oh * q->ow;
    if (dx) memset(dx, 0, (size_t)(q->n * q->c * hw) * sizeof(double));
    for (int64_t pl = 0; pl < q->n * q->c; pl++)
        for (int64_t a = 0; a < q->oh; a++)
            for (int64_t b = 0; b < q->ow; b++) {
                int64_t k = window(q, a, b, pos);
                MT_CHECK(k > 0);
                const double *xp = x + pl * hw;
                double r = q->max ? xp[pos[0]] : 0.0;
                int64_t best = pos[0];
                for (int64_t t = 0; t < k; t++) {
                    double v = xp[pos[t]];
                    if (q->max && v > r) r = v, best = pos[t];
                    if (!q->max) r += v;
                }
                if (!q->max) r /= (double)k;
                if (y) y[pl * ohw + a * q->ow + b] = r;
                if (!dx) continue;
                double g = dy[pl * ohw + a * q->ow + b];
                if (q->max)
                    dx[pl * hw + best] += g;
                else
                    for (int64_t t = 0; t < k; t++) dx[pl * hw + pos[t]] += g / (double)k;
            }
}

/* ---------------------------------------------------------------- running graphs */

/* Runs outs (FAST_COMPILE via jt_eval, which also checks the fused schedule in CHECK mode). */
static void run(mt_graph *g, int32_t nout, const mt_var *outs, int32_t nin, const mt_var *vars,
                const mt_array *const *arrs, mt_array *res)
{
    jt_eval(g, nout, outs, nin, vars, arrs, res);
}

/* One conv2d configuration: y, dx and dw (through conv2d_grad_input / _weight) against the
 * references, in dtype dt. */
static void check_conv(mt_dtype dt, geo q, uint64_t seed)
{
    const int64_t xd[4] = {q.n, q.c, q.h, q.w}, wd[4] = {q.o, q.c, q.kh, q.kw};
    const int64_t yd[4] = {q.n, q.o, q.oh, q.ow};
    int64_t nx = numel(xd, 4), nw = numel(wd, 4), ny = numel(yd, 4);
    double *x = filled(nx, seed), *w = filled(nw, seed + 1), *dy = filled(ny, seed + 2);
    round_to(dt, x, nx), round_to(dt, w, nw), round_to(dt, dy, ny);
    double *y = dalloc(ny), *dx = dalloc(nx), *dw = dalloc(nw);
    ref_conv(&q, x, w, y);
    ref_conv_grads(&q, x, w, dy, dx, dw);

    mt_graph *g = new_graph();
    mt_var X = mt_graph_placeholder(g, "x", dt, 4, xd);
    mt_var W = mt_graph_placeholder(g, "w", dt, 4, wd);
    mt_var DY = mt_graph_placeholder(g, "dy", dt, 4, yd);
    const int32_t s[2] = {(int32_t)q.sh, (int32_t)q.sw}, p[2] = {(int32_t)q.ph, (int32_t)q.pw};
    const int32_t k[2] = {(int32_t)q.kh, (int32_t)q.kw};
    mt_var outs[3] = {mt_graph_conv2d(g, X, W, s, p),
                      mt_graph_conv2d_grad_input(g, DY, W, X, s, p),
                      mt_graph_conv2d_grad_weight(g, X, DY, k, s, p)};
    MT_CHECK_OK(mt_graph_status(g));
    mt_array A[3], R[3];
    memset(R, 0, sizeof R);
    jt_arr(&A[0], dt, 4, xd, x), jt_arr(&A[1], dt, 4, wd, w), jt_arr(&A[2], dt, 4, yd, dy);
    const mt_array *arrs[3] = {&A[0], &A[1], &A[2]};
    mt_var vars[3] = {X, W, DY};
    run(g, 3, outs, 3, vars, arrs, R);
    double at, rt;
    sum_tol(dt, q.c * q.kh * q.kw, &at, &rt);
    jt_expect_tol(&R[0], dt, 4, yd, y, at, rt);
    sum_tol(dt, q.o * q.kh * q.kw, &at, &rt);
    jt_expect_tol(&R[1], dt, 4, xd, dx, at, rt);
    sum_tol(dt, q.n * q.oh * q.ow, &at, &rt);
    jt_expect_tol(&R[2], dt, 4, wd, dw, at, rt);
    for (int i = 0; i < 3; i++) mt_array_clear(&A[i]), mt_array_clear(&R[i]);
    mt_graph_free(g);
    free(x), free(w), free(dy), free(y), free(dx), free(dw);
}

/* One pooling configuration: y and the gradient against the references. */
static void check_pool(mt_dtype dt, pgeo q, uint64_t seed)
{
    const int64_t xd[4] = {q.n, q.c, q.h, q.w}, yd[4] = {q.n, q.c, q.oh, q.ow};
    int64_t nx = numel(xd, 4), ny = numel(yd, 4);
    double *x = filled(nx, seed), *dy = filled(ny, seed + 1);
    /* ties: a few repeated values so the first-maximum rule matters */
    for (int64_t i = 3; i < nx; i += 7) x[i] = x[i - 1];
    round_to(dt, x, nx), round_to(dt, dy, ny);
    double *y = dalloc(ny), *dx = dalloc(nx);
    ref_pool(&q, x, dy, y, dx);

    mt_graph *g = new_graph();
    mt_var X = mt_graph_placeholder(g, "x", dt, 4, xd);
    mt_var DY = mt_graph_placeholder(g, "dy", dt, 4, yd);
    const int32_t k[2] = {(int32_t)q.kh, (int32_t)q.kw}, s[2] = {(int32_t)q.sh, (int32_t)q.sw};
    const int32_t p[2] = {(int32_t)q.ph, (int32_t)q.pw};
    mt_pool_mode mode = q.max ? MT_POOL_MAX : MT_POOL_MEAN;
    mt_var Y = mt_graph_pool2d(g, X, mode, k, s, p, q.ceil_mode);
    mt_var outs[2] = {Y, mt_graph_pool2d_grad(g, X, Y, DY, mode, k, s, p, q.ceil_mode)};
    MT_CHECK_OK(mt_graph_status(g));
    const mt_type *yt = mt_graph_type(g, Y);
    for (int d = 0; d < 4; d++) MT_CHECK_EQ_INT(yt->shape[d], yd[d]);
    mt_array A[2], R[2];
    memset(R, 0, sizeof R);
    jt_arr(&A[0], dt, 4, xd, x), jt_arr(&A[1], dt, 4, yd, dy);
    const mt_array *arrs[2] = {&A[0], &A[1]};
    mt_var vars[2] = {X, DY};
    run(g, 2, outs, 2, vars, arrs, R);
    double at, rt;
    sum_tol(dt, q.kh * q.kw, &at, &rt);
    jt_expect_tol(&R[0], dt, 4, yd, y, at, rt);
    jt_expect_tol(&R[1], dt, 4, xd, dx, at, rt);
    for (int i = 0; i < 2; i++) mt_array_clear(&A[i]), mt_array_clear(&R[i]);
    mt_graph_free(g);
    free(x), free(dy), free(y), free(dx);
}

/* ---------------------------------------------------------------- values */

MT_TEST(conv2d_values_many_shapes)
{
    /* n, c, h, w, o, kh, kw, sh, sw, ph, pw */
    static const int64_t cfg[][11] = {
        {1, 1, 5, 5, 1, 3, 3, 1, 1, 0, 0},   {2, 3, 7, 6, 4, 3, 2, 1, 1, 0, 0},
        {2, 2, 8, 9, 3, 3, 3, 2, 2, 1, 1},   {3, 4, 6, 6, 2, 1, 1, 1, 1, 0, 0},
        {2, 3, 5, 7, 2, 5, 3, 1, 2, 2, 1},   {1, 2, 4, 4, 5, 4, 4, 1, 1, 0, 0},
        {4, 1, 9, 9, 3, 3, 3, 3, 3, 0, 0},   {2, 2, 6, 5, 2, 2, 2, 2, 1, 1, 0},
        {3, 2, 4, 5, 3, 1, 1, 2, 2, 1, 1},   {5, 3, 3, 3, 2, 3, 3, 1, 1, 1, 1},
        {40, 2, 6, 6, 3, 3, 3, 1, 1, 0, 0}, /* several images per GEMM chunk */
        {3, 1, 40, 40, 2, 5, 5, 1, 1, 0, 0}, /* one image per chunk */
        {24, 8, 10, 10, 32, 3, 3, 1, 1, 1, 1}, /* split over the thread pool */
    };
    for (size_t i = 0; i < sizeof cfg / sizeof cfg[0]; i++) {
        const int64_t *c = cfg[i];
        geo q = conv_geo(c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10]);
        check_conv(MT_FLOAT64, q, 10 + i);
        check_conv(MT_FLOAT32, q, 20 + i);
    }
}

/* The batch is split over threads in fixed ranges and the weight gradient's range sums are
 * added in order: one thread and several give bit-identical results, run after run. */
MT_TEST(conv2d_results_independent_of_threads)
{
    const int64_t xd[4] = {32, 16, 12, 12}, wd[4] = {16, 16, 3, 3}, yd[4] = {32, 16, 10, 10};
    mt_graph *g = new_graph();
    mt_var X = mt_graph_placeholder(g, "x", MT_FLOAT32, 4, xd);
    mt_var W = mt_graph_placeholder(g, "w", MT_FLOAT32, 4, wd);
    mt_var DY = mt_graph_placeholder(g, "dy", MT_FLOAT32, 4, yd);
    const int32_t k[2] = {3, 3};
    mt_var outs[3] = {mt_graph_conv2d(g, X, W, NULL, NULL),
                      mt_graph_conv2d_grad_input(g, DY, W, X, NULL, NULL),
                      mt_graph_conv2d_grad_weight(g, X, DY, k, NULL, NULL)};
    double *x = filled(numel(xd, 4), 1), *w = filled(numel(wd, 4), 2);
    double *dy = filled(numel(yd, 4), 3);
    mt_array A[3];
    jt_arr(&A[0], MT_FLOAT32, 4, xd, x), jt_arr(&A[1], MT_FLOAT32, 4, wd, w);
    jt_arr(&A[2], MT_FLOAT32, 4, yd, dy);
    const mt_array *arrs[3] = {&A[0], &A[1], &A[2]};
    mt_var vars[3] = {X, W, DY};
    const int64_t sizes[3] = {numel(yd, 4), numel(xd, 4), numel(wd, 4)};
    double *first[3] = {dalloc(sizes[0]), dalloc(sizes[1]), dalloc(sizes[2])};
    const char *threads[4] = {"1", "2", "3", NULL};
    for (int run = 0; run < 5; run++) {
        /* a function's pool is made on its first call with MLTRAIN_NUM_THREADS threads */
        if (run < 4 && threads[run]) setenv("MLTRAIN_NUM_THREADS", threads[run], 1);
        else unsetenv("MLTRAIN_NUM_THREADS");
        mt_function *f = NULL;
        MT_CHECK_OK(mt_function_new(&f, g, 3, vars, 3, outs, 0, NULL, jt_dev(), NULL));
        mt_array R[3];
        memset(R, 0, sizeof R);
        MT_CHECK_OK(mt_function_call(f, 3, arrs, 3, R));
        mt_function_free(f);
        for (int i = 0; i < 3; i++) {
            double *v = dalloc(sizes[i]);
            jt_read(&R[i], v, (size_t)sizes[i]);
            if (run == 0) memcpy(first[i], v, (size_t)sizes[i] * sizeof(double));
            else if (memcmp(first[i], v, (size_t)sizes[i] * sizeof(double)) != 0)
                mt_test_fail(__FILE__, __LINE__, "output %d differs in run %d", i, run);
            free(v);
            mt_array_clear(&R[i]);
        }
    }
    unsetenv("MLTRAIN_NUM_THREADS");
    for (int i = 0; i < 3; i++) mt_array_clear(&A[i]), free(first[i]);
    mt_graph_free(g);
    free(x), free(w), free(dy);
}

MT_TEST(conv2d_float16_computes_in_float32)
{
    check_conv(MT_FLOAT16, conv_geo(2, 2, 5, 5, 3, 3, 3, 1, 1, 1, 1), 7);
}

MT_TEST(conv2d_tutorial_sizes)
{
    /* the Pylearn2 tutorial's two layers, a small batch */
    check_conv(MT_FLOAT32, conv_geo(3, 1, 28, 28, 64, 5, 5, 1, 1, 0, 0), 31);
    check_conv(MT_FLOAT32, conv_geo(3, 64, 11, 11, 64, 5, 5, 1, 1, 0, 0), 32);
}

MT_TEST(pool2d_values_many_shapes)
{
    /* n, c, h, w, kh, kw, sh, sw, ph, pw, ceil */
    static const int64_t cfg[][11] = {
        {1, 1, 4, 4, 2, 2, 2, 2, 0, 0, 0},  {2, 3, 5, 5, 2, 2, 2, 2, 0, 0, 0},
        {2, 3, 5, 5, 2, 2, 2, 2, 0, 0, 1},  {2, 2, 24, 24, 4, 4, 2, 2, 0, 0, 1},
        {2, 2, 7, 7, 4, 4, 2, 2, 0, 0, 1},  {1, 2, 7, 6, 3, 2, 2, 1, 1, 1, 0},
        {1, 2, 7, 6, 3, 2, 2, 1, 1, 1, 1},  {2, 1, 6, 8, 3, 3, 3, 3, 0, 0, 1},
        {1, 1, 3, 3, 4, 4, 2, 2, 0, 0, 1},  {1, 1, 5, 5, 1, 1, 3, 3, 0, 0, 1},
        {3, 2, 9, 9, 3, 3, 1, 1, 1, 1, 0},  {1, 1, 8, 8, 3, 3, 4, 4, 2, 2, 1},
        {32, 16, 24, 24, 3, 3, 2, 2, 1, 1, 1}, /* large enough for the thread pool */
    };
    for (size_t i = 0; i < sizeof cfg / sizeof cfg[0]; i++) {
        const int64_t *c = cfg[i];
        for (int m = 0; m < 2; m++) {
            pgeo q = pool_geo(c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], m == 0,
                              c[10] != 0);
            check_pool(MT_FLOAT64, q, 40 + i);
            check_pool(MT_FLOAT32, q, 60 + i);
        }
    }
}

MT_TEST(pool2d_output_sizes)
{
    mt_graph *g = new_graph();
    const int64_t s28[4] = {-1, 64, 24, 24}, s11[4] = {-1, 64, 7, 7};
    mt_var a = mt_graph_placeholder(g, "a", MT_FLOAT32, 4, s28);
    mt_var b = mt_graph_placeholder(g, "b", MT_FLOAT32, 4, s11);
    const int32_t k4[2] = {4, 4}, s2[2] = {2, 2}, k2[2] = {2, 2};
    /* Pylearn2 max_pool: ceil((24 - 4) / 2) + 1 = 11, ceil((7 - 4) / 2) + 1 = 3 */
    const mt_type *t = mt_graph_type(g, mt_graph_pool2d(g, a, MT_POOL_MAX, k4, s2, NULL, true));
    MT_CHECK_EQ_INT(t->shape[2], 11);
    MT_CHECK_EQ_INT(t->shape[3], 11);
    MT_CHECK_EQ_INT(t->shape[0], -1);
    t = mt_graph_type(g, mt_graph_pool2d(g, b, MT_POOL_MAX, k4, s2, NULL, true));
    MT_CHECK_EQ_INT(t->shape[2], 3);
    MT_CHECK_EQ_INT(t->shape[3], 3);
    /* floor mode: (7 - 4) / 2 + 1 = 2 */
    t = mt_graph_type(g, mt_graph_pool2d(g, b, MT_POOL_MAX, k4, s2, NULL, false));
    MT_CHECK_EQ_INT(t->shape[2], 2);
    /* stride defaults to the pool size */
    t = mt_graph_type(g, mt_graph_pool2d(g, b, MT_POOL_MEAN, k2, NULL, NULL, false));
    MT_CHECK_EQ_INT(t->shape[2], 3);
    t = mt_graph_type(g, mt_graph_pool2d(g, b, MT_POOL_MEAN, k2, NULL, NULL, true));
    MT_CHECK_EQ_INT(t->shape[2], 4);
    MT_CHECK_OK(mt_graph_status(g));
    MT_CHECK_OK(mt_graph_verify(g));
    mt_graph_free(g);
}

MT_TEST(pool2d_max_propagates_nan)
{
    mt_graph *g = new_graph();
    const int64_t xd[4] = {1, 1, 2, 4}, yd[4] = {1, 1, 1, 2};
    mt_var x = mt_graph_placeholder(g, "x", MT_FLOAT64, 4, xd);
    const int32_t k[2] = {2, 2};
    mt_var y = mt_graph_pool2d(g, x, MT_POOL_MAX, k, NULL, NULL, false);
    mt_var ones = mt_graph_ones_like(g, y);
    mt_var dx = mt_graph_pool2d_grad(g, x, y, ones, MT_POOL_MAX, k, NULL, NULL, false);
    const double xv[8] = {1, NAN, 5, 2, 3, 4, 5, 0};
    mt_array X, R[2];
    memset(R, 0, sizeof R);
    jt_arr(&X, MT_FLOAT64, 4, xd, xv);
    const mt_array *arrs[1] = {&X};
    mt_var outs[2] = {y, dx};
    MT_CHECK_OK(mt_graph_eval(g, 2, outs, 1, &x, arrs, jt_dev(), R));
    const double ey[2] = {NAN, 5}, edx[8] = {0, 1, 1, 0, 0, 0, 0, 0};
    jt_expect(&R[0], MT_FLOAT64, 4, yd, ey);
    jt_expect(&R[1], MT_FLOAT64, 4, xd, edx); /* the NaN, and the first of the tied 5s */
    mt_array_clear(&X), mt_array_clear(&R[0]), mt_array_clear(&R[1]);
    mt_graph_free(g);
}

/* ---------------------------------------------------------------- PyTorch */

#ifndef MT_CONV_TORCH_SCRIPT
#define MT_CONV_TORCH_SCRIPT "torch_conv_ref.py"
#endif

static void load_npy(mt_array *out, const char *dir, const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.npy", dir, name);
    MT_CHECK_OK(mt_npy_load(out, jt_dev(), path, 0));
}

/* c<i>_x, _w, _dy, _y, _dx, _dw, _cfg [sh, sw, ph, pw]: conv2d and its gradients (through
 * mt_graph_lop, as training computes them) against PyTorch's. Returns the number of cases. */
static int torch_conv_cases(const char *dir)
{
    int ncases = 0;
    for (int i = 0;; i++, ncases++) {
        char name[64], p[1024];
        snprintf(p, sizeof p, "%s/c%d_x.npy", dir, i);
        FILE *fp = fopen(p, "rb");
        if (!fp) break;
        fclose(fp);
        mt_array a[7];
        memset(a, 0, sizeof a);
        static const char *const nm[] = {"x", "w", "dy", "y", "dx", "dw", "cfg"};
        for (int k = 0; k < 7; k++) {
            snprintf(name, sizeof name, "c%d_%s", i, nm[k]);
            load_npy(&a[k], dir, name);
        }
        int64_t cfg[4];
        MT_CHECK_OK(mt_array_to_host(cfg, sizeof cfg, &a[6]));
        mt_graph *g = new_graph();
        mt_var X = mt_graph_placeholder(g, "x", MT_FLOAT64, 4, a[0].dims);
        mt_var W = mt_graph_placeholder(g, "w", MT_FLOAT64, 4, a[1].dims);
        mt_var DY = mt_graph_placeholder(g, "dy", MT_FLOAT64, 4, a[2].dims);
        const int32_t s[2] = {(int32_t)cfg[0], (int32_t)cfg[1]};
        const int32_t pd[2] = {(int32_t)cfg[2], (int32_t)cfg[3]};
        mt_var Y = mt_graph_conv2d(g, X, W, s, pd);
        mt_var wrt[2] = {X, W}, gr[2];
        MT_CHECK_OK(mt_graph_lop(g, 1, &Y, 2, wrt, &DY, gr, NULL));
        mt_var outs[3] = {Y, gr[0], gr[1]}, vars[3] = {X, W, DY};
        const mt_array *arrs[3] = {&a[0], &a[1], &a[2]};
        mt_array R[3];
        memset(R, 0, sizeof R);
        run(g, 3, outs, 3, vars, arrs, R);
        for (int k = 0; k < 3; k++) {
            size_t n = (size_t)mt_array_size(&a[3 + k]);
            double *e = dalloc((int64_t)n);
            jt_read(&a[3 + k], e, n);
            jt_expect_tol(&R[k], MT_FLOAT64, 4, a[3 + k].dims, e, 1e-12, 1e-10);
            free(e);
            mt_array_clear(&R[k]);
        }
        for (int k = 0; k < 7; k++) mt_array_clear(&a[k]);
        mt_graph_free(g);
    }
    return ncases;
}

/* p<i>_x, _dy, _y, _dx, _cfg [kh, kw, sh, sw, ph, pw, ceil, max]: pooling and its gradient. */
static int torch_pool_cases(const char *dir)
{
    int npool = 0;
    for (int i = 0;; i++, npool++) {
        char name[64], p[1024];
        snprintf(p, sizeof p, "%s/p%d_x.npy", dir, i);
        FILE *fp = fopen(p, "rb");
        if (!fp) break;
        fclose(fp);
        mt_array a[5];
        memset(a, 0, sizeof a);
        static const char *const nm[] = {"x", "dy", "y", "dx", "cfg"};
        for (int k = 0; k < 5; k++) {
            snprintf(name, sizeof name, "p%d_%s", i, nm[k]);
            load_npy(&a[k], dir, name);
        }
        int64_t cfg[8];
        MT_CHECK_OK(mt_array_to_host(cfg, sizeof cfg, &a[4]));
        mt_graph *g = new_graph();
        mt_var X = mt_graph_placeholder(g, "x", MT_FLOAT64, 4, a[0].dims);
        mt_var DY = mt_graph_placeholder(g, "dy", MT_FLOAT64, 4, a[1].dims);
        const int32_t k[2] = {(int32_t)cfg[0], (int32_t)cfg[1]};
        const int32_t s[2] = {(int32_t)cfg[2], (int32_t)cfg[3]};
        const int32_t pd[2] = {(int32_t)cfg[4], (int32_t)cfg[5]};
        mt_var Y = mt_graph_pool2d(g, X, cfg[7] ? MT_POOL_MAX : MT_POOL_MEAN, k, s, pd,
                                   cfg[6] != 0);
        mt_var gx;
        MT_CHECK_OK(mt_graph_lop(g, 1, &Y, 1, &X, &DY, &gx, NULL));
        mt_var outs[2] = {Y, gx}, vars[2] = {X, DY};
        const mt_array *arrs[2] = {&a[0], &a[1]};
        mt_array R[2];
        memset(R, 0, sizeof R);
        run(g, 2, outs, 2, vars, arrs, R);
        for (int t = 0; t < 2; t++) {
            size_t n = (size_t)mt_array_size(&a[2 + t]);
            double *e = dalloc((int64_t)n);
            jt_read(&a[2 + t], e, n);
            jt_expect_tol(&R[t], MT_FLOAT64, 4, a[2 + t].dims, e, 1e-13, 1e-12);
            free(e);
            mt_array_clear(&R[t]);
        }
        for (int t = 0; t < 5; t++) mt_array_clear(&a[t]);
        mt_graph_free(g);
    }
    return npool;
}

/* The script (tests/jit/torch_conv_ref.py) writes float64 cases into the case's directory. */
MT_TEST(conv2d_and_pool2d_match_pytorch)
{
    const char *dir = mt_test_tmpdir();
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' '%s' > '%s/torch.log' 2>&1",
             MT_CONV_TORCH_SCRIPT, dir, dir);
    int rc = system(cmd);
    if (rc != 0) {
        if (WIFEXITED(rc) && WEXITSTATUS(rc) == 77) MT_SKIP("PyTorch is not available");
        mt_test_fail(__FILE__, __LINE__, "%s failed (status %d), see %s/torch.log", cmd, rc, dir);
    }
    MT_CHECK(torch_conv_cases(dir) >= 4);
    MT_CHECK(torch_pool_cases(dir) >= 4);
}

/* ---------------------------------------------------------------- gradients */

typedef struct vgcase {
    mt_graph *g;
    int32_t n;
    mt_var v[4];
    mt_array a[4];
} vgcase;

static mt_var vg_in(vgcase *t, const char *name, const int64_t *dims, uint64_t seed)
{
    MT_CHECK(t->n < 4);
    int64_t n = numel(dims, 4);
    double *v = filled(n, seed);
    mt_var x = mt_graph_placeholder(t->g, name, MT_FLOAT64, 4, dims);
    jt_arr(&t->a[t->n], MT_FLOAT64, 4, dims, v);
    free(v);
    t->v[t->n++] = x;
    return x;
}

static void vg_check(const char *file, int line, vgcase *t, mt_var out, const char *what)
{
    if (!out || mt_graph_status(t->g))
        mt_test_fail(file, line, "%s: building failed: %s", what, mt_graph_last_error(t->g));
    const mt_array *arrs[4];
    for (int32_t i = 0; i < t->n; i++) arrs[i] = &t->a[i];
    mt_verify_grad_options o;
    mt_verify_grad_options_init(&o);
    o.dev = jt_dev();
    mt_verify_grad_report rep;
    mt_status st = mt_verify_grad(t->g, out, t->n, t->v, arrs, &o, &rep);
    if (st != MT_OK)
        mt_test_fail(file, line, "%s: %s: %s", what, mt_status_name(st), mt_last_error());
    if (!rep.passed) mt_test_fail(file, line, "%s: report says failed", what);
}
#define VG(t, out, what) vg_check(__FILE__, __LINE__, t, out, what)

static void vg_free(vgcase *t)
{
    for (int32_t i = 0; i < t->n; i++) mt_array_clear(&t->a[i]);
    mt_graph_free(t->g);
}

MT_TEST(conv2d_gradients_numeric)
{
    /* c, h, w, o, kh, kw, sh, sw, ph, pw */
    static const int32_t cfg[][10] = {
        {2, 5, 5, 3, 3, 3, 1, 1, 0, 0},
        {2, 6, 5, 2, 3, 2, 2, 1, 1, 0},
        {1, 7, 7, 2, 3, 3, 2, 2, 1, 1},
    };
    for (size_t i = 0; i < sizeof cfg / sizeof cfg[0]; i++) {
        const int32_t *c = cfg[i];
        vgcase t = {new_graph(), 0, {0}, {{0}}};
        const int64_t xd[4] = {2, c[0], c[1], c[2]}, wd[4] = {c[3], c[0], c[4], c[5]};
        mt_var x = vg_in(&t, "x", xd, 100 + i), w = vg_in(&t, "w", wd, 200 + i);
        const int32_t s[2] = {c[6], c[7]}, p[2] = {c[8], c[9]};
        VG(&t, mt_graph_conv2d(t.g, x, w, s, p), "conv2d wrt x and w");
        vg_free(&t);
    }
}

MT_TEST(conv2d_second_order_numeric)
{
    /* the gradient ops are differentiable too: d/d(dy, w) of conv2d_grad_input and d/d(x, dy)
     * of conv2d_grad_weight, and a Hessian-vector-like composite */
    vgcase t = {new_graph(), 0, {0}, {{0}}};
    const int64_t xd[4] = {2, 2, 6, 5}, wd[4] = {3, 2, 3, 2}, yd[4] = {2, 3, 3, 4};
    const int32_t s[2] = {2, 1}, p[2] = {1, 0}, k[2] = {3, 2};
    mt_var x = vg_in(&t, "x", xd, 1), w = vg_in(&t, "w", wd, 2), dy = vg_in(&t, "dy", yd, 3);
    VG(&t, mt_graph_conv2d_grad_input(t.g, dy, w, x, s, p), "conv2d_grad_input wrt dy, w");
    VG(&t, mt_graph_conv2d_grad_weight(t.g, x, dy, k, s, p), "conv2d_grad_weight wrt x, dy");
    /* d/dx of (d sum(conv(x, w)^2) / dw): exercises the rules of the rules */
    mt_var y = mt_graph_conv2d(t.g, x, w, s, p);
    mt_var cost = mt_graph_sum(t.g, mt_graph_mul(t.g, y, y), 0, NULL, false);
    mt_var gw;
    MT_CHECK_OK(mt_graph_grad(t.g, cost, 1, &w, &gw, NULL));
    VG(&t, gw, "gradient of the weight gradient");
    /* R-op (double reverse through the gradient ops): conv2d is linear in x, so J_x v =
     * conv2d(v, w); with v = x that is y itself */
    mt_var jv;
    MT_CHECK_OK(mt_graph_rop(t.g, 1, &y, 1, &x, &x, &jv, NULL));
    mt_array R[2];
    memset(R, 0, sizeof R);
    const mt_array *arrs[2] = {&t.a[0], &t.a[1]};
    mt_var outs[2] = {jv, y}, vars[2] = {x, w};
    run(t.g, 2, outs, 2, vars, arrs, R);
    double a[72], b[72];
    jt_read(&R[0], a, 72), jt_read(&R[1], b, 72);
    MT_CHECK_ALLCLOSE(a, b, 72, 1e-14, 1e-13);
    mt_array_clear(&R[0]), mt_array_clear(&R[1]);
    vg_free(&t);
}

/* Operands that are views (a transposed input, a broadcast kernel) are made contiguous first. */
MT_TEST(conv2d_of_views)
{
    const int64_t xtd[4] = {2, 3, 7, 5}, xd[4] = {2, 3, 5, 7}, wd[4] = {4, 3, 2, 3};
    geo q = conv_geo(2, 3, 5, 7, 4, 2, 3, 1, 2, 1, 0);
    double *xt = filled(numel(xtd, 4), 5), *x = dalloc(numel(xd, 4)), *w = filled(6, 6);
    for (int64_t n = 0; n < 6; n++) /* x[n, c] = xt[n, c].T */
        for (int64_t i = 0; i < 5; i++)
            for (int64_t j = 0; j < 7; j++) x[(n * 5 + i) * 7 + j] = xt[(n * 7 + j) * 5 + i];
    /* the kernel [4, 3, 2, 3] is broadcast_to(v [1, 1, 2, 3]) */
    double *wf = dalloc(numel(wd, 4)), *y = dalloc(2 * 4 * q.oh * q.ow);
    for (int64_t i = 0; i < numel(wd, 4); i++) wf[i] = w[i % 6];
    ref_conv(&q, x, wf, y);
    mt_graph *g = new_graph();
    mt_var XT = mt_graph_placeholder(g, "xt", MT_FLOAT64, 4, xtd);
    const int64_t vd[4] = {1, 1, 2, 3};
    mt_var V = mt_graph_placeholder(g, "v", MT_FLOAT64, 4, vd);
    const int32_t perm[4] = {0, 1, 3, 2}, s[2] = {1, 2}, p[2] = {1, 0};
    mt_var out = mt_graph_conv2d(g, mt_graph_transpose(g, XT, perm),
                                 mt_graph_broadcast_to(g, V, 4, wd), s, p);
    mt_array A[2], R = {0};
    jt_arr(&A[0], MT_FLOAT64, 4, xtd, xt), jt_arr(&A[1], MT_FLOAT64, 4, vd, w);
    const mt_array *arrs[2] = {&A[0], &A[1]};
    mt_var vars[2] = {XT, V};
    run(g, 1, &out, 2, vars, arrs, &R);
    const int64_t yd[4] = {2, 4, q.oh, q.ow};
    jt_expect_tol(&R, MT_FLOAT64, 4, yd, y, 1e-13, 1e-12);
    mt_array_clear(&A[0]), mt_array_clear(&A[1]), mt_array_clear(&R);
    mt_graph_free(g);
    free(xt), free(x), free(w), free(wf), free(y);
}

MT_TEST(pool2d_gradients_numeric)
{
    /* h, w, kh, kw, sh, sw, ph, pw, ceil */
    static const int32_t cfg[][9] = {
        {4, 4, 2, 2, 2, 2, 0, 0, 0}, {5, 5, 2, 2, 2, 2, 0, 0, 1}, {7, 7, 4, 4, 2, 2, 0, 0, 1},
        {6, 5, 3, 2, 2, 1, 1, 1, 0}, {6, 5, 3, 3, 2, 2, 1, 1, 1},
    };
    for (size_t i = 0; i < sizeof cfg / sizeof cfg[0]; i++) {
        const int32_t *c = cfg[i];
        for (int m = 0; m < 2; m++) {
            vgcase t = {new_graph(), 0, {0}, {{0}}};
            const int64_t xd[4] = {2, 2, c[0], c[1]};
            /* distinct values: max pooling is smooth away from ties */
            mt_var x = vg_in(&t, "x", xd, 300 + i);
            const int32_t k[2] = {c[2], c[3]}, s[2] = {c[4], c[5]}, p[2] = {c[6], c[7]};
            mt_pool_mode mode = m ? MT_POOL_MEAN : MT_POOL_MAX;
            VG(&t, mt_graph_pool2d(t.g, x, mode, k, s, p, c[8] != 0),
               m ? "mean pool2d" : "max pool2d");
            vg_free(&t);
        }
    }
}

MT_TEST(pool2d_second_order_numeric)
{
    for (int m = 0; m < 2; m++) {
        vgcase t = {new_graph(), 0, {0}, {{0}}};
        const int64_t xd[4] = {1, 2, 7, 7}, yd[4] = {1, 2, 3, 3};
        const int32_t k[2] = {4, 4}, s[2] = {2, 2};
        mt_pool_mode mode = m ? MT_POOL_MEAN : MT_POOL_MAX;
        mt_var x = vg_in(&t, "x", xd, 5), dy = vg_in(&t, "dy", yd, 6);
        mt_var y = mt_graph_pool2d(t.g, x, mode, k, s, NULL, true);
        /* pool2d_grad is linear in dy (its gradient: pool2d(x, .)), piecewise constant in x */
        VG(&t, mt_graph_pool2d_grad(t.g, x, y, dy, mode, k, s, NULL, true), "pool2d_grad");
        /* R-op of pooling (double reverse through pool2d_grad) against finite differences */
        mt_var rv;
        MT_CHECK_OK(mt_graph_rop(t.g, 1, &y, 1, &x, &x, &rv, NULL));
        /* pooling is positively homogeneous: J x = pool(x) (max), linear (mean) */
        mt_array R[2];
        memset(R, 0, sizeof R);
        const mt_array *arrs[1] = {&t.a[0]};
        mt_var outs[2] = {rv, y};
        run(t.g, 2, outs, 1, &x, arrs, R);
        double a[18], b[18];
        jt_read(&R[0], a, 18), jt_read(&R[1], b, 18);
        MT_CHECK_ALLCLOSE(a, b, 18, 1e-14, 1e-13);
        mt_array_clear(&R[0]), mt_array_clear(&R[1]);
        vg_free(&t);
    }
}

MT_TEST(cnn_gradient_numeric)
{
    /* a small conv -> bias -> relu -> pool -> conv -> pool network, all parameters */
    vgcase t = {new_graph(), 0, {0}, {{0}}};
    const int64_t xd[4] = {2, 1, 9, 9}, w1d[4] = {3, 1, 3, 3}, w2d[4] = {2, 3, 2, 2};
    const int64_t bd[4] = {1, 3, 1, 1};
    mt_var x = vg_in(&t, "x", xd, 11), w1 = vg_in(&t, "w1", w1d, 12);
    mt_var b1 = vg_in(&t, "b1", bd, 13), w2 = vg_in(&t, "w2", w2d, 14);
    mt_graph *g = t.g;
    const int32_t k3[2] = {3, 3}, s2[2] = {2, 2}, k2[2] = {2, 2};
    mt_var h = mt_graph_relu(g, mt_graph_add(g, mt_graph_conv2d(g, x, w1, NULL, NULL), b1));
    h = mt_graph_pool2d(g, h, MT_POOL_MEAN, k3, s2, NULL, true);
    h = mt_graph_pool2d(g, mt_graph_conv2d(g, h, w2, NULL, NULL), MT_POOL_MAX, k2, NULL, NULL,
                        true);
    VG(&t, h, "small CNN");
    vg_free(&t);
}

/* ---------------------------------------------------------------- errors */

MT_TEST(conv2d_shape_errors)
{
    mt_graph *g = new_graph();
    const int64_t xd[4] = {2, 3, 5, 5}, wbad[4] = {4, 2, 3, 3}, wbig[4] = {4, 3, 6, 6};
    const int64_t x3[3] = {3, 5, 5};
    mt_var x = mt_graph_placeholder(g, "x", MT_FLOAT32, 4, xd);
    mt_var w1 = mt_graph_placeholder(g, "w1", MT_FLOAT32, 4, wbad);
    mt_var w2 = mt_graph_placeholder(g, "w2", MT_FLOAT32, 4, wbig);
    mt_var x3v = mt_graph_placeholder(g, "x3", MT_FLOAT32, 3, x3);
    MT_CHECK(mt_graph_conv2d(g, x, w1, NULL, NULL) == MT_VAR_NONE);
    MT_CHECK_EQ_INT(mt_last_status(), MT_ERR_SHAPE);
    MT_CHECK(strstr(mt_last_error(), "input channels differ") != NULL);
    MT_CHECK(strstr(mt_last_error(), "(2, 3, 5, 5)") != NULL);
    MT_CHECK(strstr(mt_last_error(), "(4, 2, 3, 3)") != NULL);
    mt_graph_clear_error(g);
    MT_CHECK(mt_graph_conv2d(g, x, w2, NULL, NULL) == MT_VAR_NONE);
    MT_CHECK(strstr(mt_last_error(), "larger than the padded input") != NULL);
    MT_CHECK(strstr(mt_last_error(), "(4, 3, 6, 6)") != NULL);
    mt_graph_clear_error(g);
    const int32_t p1[2] = {1, 1};
    MT_CHECK(mt_graph_conv2d(g, x, w2, NULL, p1) != MT_VAR_NONE); /* 5 + 2 >= 6 */
    const int32_t s0[2] = {0, 1}, pneg[2] = {0, -1};
    MT_CHECK(mt_graph_conv2d(g, x, w2, s0, p1) == MT_VAR_NONE);
    MT_CHECK_EQ_INT(mt_last_status(), MT_ERR_INVALID);
    MT_CHECK(strstr(mt_last_error(), "stride") != NULL);
    mt_graph_clear_error(g);
    MT_CHECK(mt_graph_conv2d(g, x, w2, NULL, pneg) == MT_VAR_NONE);
    MT_CHECK(strstr(mt_last_error(), "pad") != NULL);
    mt_graph_clear_error(g);
    MT_CHECK(mt_graph_conv2d(g, x3v, w2, NULL, NULL) == MT_VAR_NONE);
    MT_CHECK(strstr(mt_last_error(), "must be 4-d") != NULL);
    mt_graph_clear_error(g);
    /* graph-level contract: one dtype (mt_graph_make does not cast) */
    const int64_t wd[4] = {4, 3, 3, 3};
    mt_var w64 = mt_graph_placeholder(g, "w64", MT_FLOAT64, 4, wd);
    mt_op_attrs a;
    memset(&a, 0, sizeof a);
    a.win.stride[0] = a.win.stride[1] = 1;
    mt_var in[2] = {x, w64};
    MT_CHECK(mt_graph_make(g, MT_OP_CONV2D, &a, 2, in) == MT_VAR_NONE);
    MT_CHECK_EQ_INT(mt_last_status(), MT_ERR_DTYPE);
    mt_graph_clear_error(g);
    /* the builder promotes: float32 x float64 -> float64 */
    MT_CHECK_EQ_INT(mt_graph_type(g, mt_graph_conv2d(g, x, w64, NULL, NULL))->dtype, MT_FLOAT64);
    mt_graph_free(g);
}

MT_TEST(pool2d_shape_errors)
{
    mt_graph *g = new_graph();
    const int64_t xd[4] = {2, 3, 3, 3};
    mt_var x = mt_graph_placeholder(g, "x", MT_FLOAT32, 4, xd);
    const int32_t k4[2] = {4, 4}, k2[2] = {2, 2}, p2[2] = {2, 0}, s2[2] = {2, 2};
    MT_CHECK(mt_graph_pool2d(g, x, MT_POOL_MAX, k4, s2, NULL, false) == MT_VAR_NONE);
    MT_CHECK_EQ_INT(mt_last_status(), MT_ERR_SHAPE);
    MT_CHECK(strstr(mt_last_error(), "(2, 3, 3, 3)") != NULL);
    MT_CHECK(strstr(mt_last_error(), "larger than the padded input") != NULL);
    mt_graph_clear_error(g);
    /* ceil mode: one clipped window */
    MT_CHECK_EQ_INT(
        mt_graph_type(g, mt_graph_pool2d(g, x, MT_POOL_MAX, k4, s2, NULL, true))->shape[2], 1);
    MT_CHECK(mt_graph_pool2d(g, x, MT_POOL_MEAN, k2, NULL, p2, false) == MT_VAR_NONE);
    MT_CHECK_EQ_INT(mt_last_status(), MT_ERR_INVALID);
    MT_CHECK(strstr(mt_last_error(), "smaller than the pool size") != NULL);
    mt_graph_clear_error(g);
    MT_CHECK(mt_graph_pool2d(g, x, (mt_pool_mode)7, k2, NULL, NULL, false) == MT_VAR_NONE);
    MT_CHECK(strstr(mt_last_error(), "pooling mode") != NULL);
    mt_graph_clear_error(g);
    /* pool2d_grad: dy must have the pooled shape */
    mt_var y = mt_graph_pool2d(g, x, MT_POOL_MAX, k2, NULL, NULL, false);
    MT_CHECK(mt_graph_pool2d_grad(g, x, y, x, MT_POOL_MAX, k2, NULL, NULL, false) == MT_VAR_NONE);
    MT_CHECK(strstr(mt_last_error(), "dy (2, 3, 3, 3) must have the shape (2, 3, 1, 1)") != NULL);
    mt_graph_free(g);
}

MT_TEST(conv2d_run_time_shape_errors)
{
    /* unknown channel and spatial sizes: checked when the function runs */
    mt_graph *g = new_graph();
    const int64_t xd[4] = {-1, -1, -1, -1}, wd[4] = {2, 3, 3, 3};
    mt_var x = mt_graph_placeholder(g, "x", MT_FLOAT64, 4, xd);
    mt_var w = mt_graph_placeholder(g, "w", MT_FLOAT64, 4, wd);
    mt_var y = mt_graph_conv2d(MT_AT(g), x, w, NULL, NULL);
    MT_CHECK(mt_graph_flags(g, y) & MT_NODE_RTCHECK);
    const int32_t k2[2] = {2, 2};
    mt_var z = mt_graph_pool2d(g, y, MT_POOL_MAX, k2, NULL, NULL, false);
    MT_CHECK_OK(mt_graph_status(g));
    mt_function *f = NULL;
    MT_CHECK_OK(mt_function_new(&f, g, 2, (mt_var[]){x, w}, 1, &z, 0, NULL, jt_dev(), NULL));
    double v[2 * 4 * 6 * 6];
    jt_fill(v, sizeof v / sizeof v[0], -1, 1, 3);
    mt_array X, W, R = {0};
    const int64_t good[4] = {2, 3, 6, 6}, bad[4] = {2, 4, 6, 6}, small[4] = {2, 3, 2, 6};
    jt_arr(&W, MT_FLOAT64, 4, wd, v);
    jt_arr(&X, MT_FLOAT64, 4, good, v);
    const mt_array *in[2] = {&X, &W};
    MT_CHECK_OK(mt_function_call(f, 2, in, 1, &R));
    const int64_t rd[4] = {2, 2, 2, 2};
    MT_CHECK_EQ_INT(R.ndim, 4);
    for (int d = 0; d < 4; d++) MT_CHECK_EQ_INT(R.dims[d], rd[d]);
    mt_array_clear(&R), mt_array_clear(&X);
    jt_arr(&X, MT_FLOAT64, 4, bad, v);
    MT_CHECK_ERR(mt_function_call(f, 2, in, 1, &R), MT_ERR_SHAPE, "input channels differ");
    MT_CHECK(strstr(mt_last_error(), "(2, 4, 6, 6)") != NULL);
    MT_CHECK(strstr(mt_last_error(), "test_conv.c") != NULL); /* the node's provenance */
    mt_array_clear(&X);
    jt_arr(&X, MT_FLOAT64, 4, small, v);
    MT_CHECK_ERR(mt_function_call(f, 2, in, 1, &R), MT_ERR_SHAPE, "larger than the padded input");
    mt_array_clear(&X), mt_array_clear(&W);
    mt_function_free(f);
    mt_graph_free(g);
}

/* ---------------------------------------------------------------- the tutorial network */

/* Builds Pylearn2's convolutional tutorial (conv 5x5 x 64 -> bias -> relu -> max pool 4x4
 * stride 2 ceil, twice) for input [nb, 1, 28, 28]; returns the output. */
static mt_var tutorial(mt_graph *g, mt_dtype dt, int64_t nb, mt_var *x, mt_var *p)
{
    const int64_t xd[4] = {nb, 1, 28, 28}, w1d[4] = {64, 1, 5, 5}, w2d[4] = {64, 64, 5, 5};
    const int64_t bd[1] = {64};
    *x = mt_graph_placeholder(g, "x", dt, 4, xd);
    p[0] = mt_graph_placeholder(g, "w1", dt, 4, w1d);
    p[1] = mt_graph_placeholder(g, "b1", dt, 1, bd);
    p[2] = mt_graph_placeholder(g, "w2", dt, 4, w2d);
    p[3] = mt_graph_placeholder(g, "b2", dt, 1, bd);
    const int32_t k4[2] = {4, 4}, s2[2] = {2, 2}, pat[4] = {-1, 0, -1, -1};
    mt_var h = *x;
    for (int l = 0; l < 2; l++) {
        mt_var b = mt_graph_dimshuffle(g, p[2 * l + 1], 4, pat);
        h = mt_graph_relu(g, mt_graph_add(g, mt_graph_conv2d(g, h, p[2 * l], NULL, NULL), b));
        h = mt_graph_pool2d(g, h, MT_POOL_MAX, k4, s2, NULL, true);
    }
    return h;
}

MT_TEST(pylearn2_tutorial_shapes_values_and_fusion)
{
    mt_graph *g = new_graph();
    mt_var x, p[4];
    mt_var h = tutorial(g, MT_FLOAT32, -1, &x, p);
    MT_CHECK_OK(mt_graph_status(g));
    const mt_type *t = mt_graph_type(g, h);
    const int64_t hd[4] = {-1, 64, 3, 3};
    for (int d = 0; d < 4; d++) MT_CHECK_EQ_INT(t->shape[d], hd[d]);
    /* the 11x11 map between the layers */
    mt_var c2 = mt_graph_input(g, mt_graph_input(g, mt_graph_input(g, h, 0), 0), 0);
    while (mt_graph_op(g, c2) != MT_OP_CONV2D) c2 = mt_graph_input(g, c2, 0);
    MT_CHECK_EQ_INT(mt_graph_type(g, mt_graph_input(g, c2, 0))->shape[2], 11);

    /* values of a batch of 2 against the direct loops */
    const int64_t nb = 2;
    geo q1 = conv_geo(nb, 1, 28, 28, 64, 5, 5, 1, 1, 0, 0);
    geo q2 = conv_geo(nb, 64, 11, 11, 64, 5, 5, 1, 1, 0, 0);
    pgeo p1 = pool_geo(nb, 64, 24, 24, 4, 4, 2, 2, 0, 0, true, true);
    pgeo p2 = pool_geo(nb, 64, 7, 7, 4, 4, 2, 2, 0, 0, true, true);
    MT_CHECK_EQ_INT(p1.oh, 11);
    MT_CHECK_EQ_INT(p2.oh, 3);
    int64_t nx = nb * 784, nw1 = 64 * 25, nw2 = 64 * 64 * 25;
    double *xv = filled(nx, 1), *w1 = filled(nw1, 2), *b1 = filled(64, 3);
    double *w2 = filled(nw2, 4), *b2 = filled(64, 5);
    for (int64_t i = 0; i < nw2; i++) w2[i] *= 0.1;
    round_to(MT_FLOAT32, xv, nx), round_to(MT_FLOAT32, w1, nw1), round_to(MT_FLOAT32, b1, 64);
    round_to(MT_FLOAT32, w2, nw2), round_to(MT_FLOAT32, b2, 64);
    double *y1 = dalloc(nb * 64 * 576), *h1 = dalloc(nb * 64 * 121);
    double *y2 = dalloc(nb * 64 * 49), *h2 = dalloc(nb * 64 * 9);
    ref_conv(&q1, xv, w1, y1);
    for (int64_t i = 0; i < nb * 64 * 576; i++) y1[i] = fmax(y1[i] + b1[(i / 576) % 64], 0.0);
    ref_pool(&p1, y1, NULL, h1, NULL);
    ref_conv(&q2, h1, w2, y2);
    for (int64_t i = 0; i < nb * 64 * 49; i++) y2[i] = fmax(y2[i] + b2[(i / 49) % 64], 0.0);
    ref_pool(&p2, y2, NULL, h2, NULL);

    mt_array A[5], R = {0};
    const int64_t xd[4] = {nb, 1, 28, 28}, w1d[4] = {64, 1, 5, 5}, w2d[4] = {64, 64, 5, 5};
    const int64_t bd[1] = {64};
    jt_arr(&A[0], MT_FLOAT32, 4, xd, xv), jt_arr(&A[1], MT_FLOAT32, 4, w1d, w1);
    jt_arr(&A[2], MT_FLOAT32, 1, bd, b1), jt_arr(&A[3], MT_FLOAT32, 4, w2d, w2);
    jt_arr(&A[4], MT_FLOAT32, 1, bd, b2);
    mt_var vars[5] = {x, p[0], p[1], p[2], p[3]};
    const mt_array *arrs[5] = {&A[0], &A[1], &A[2], &A[3], &A[4]};
    mt_function *f = NULL;
    MT_CHECK_OK(mt_function_new(&f, g, 5, vars, 1, &h, 0, NULL, jt_dev(), NULL));
    MT_CHECK_OK(mt_function_call(f, 5, arrs, 1, &R));
    const int64_t od[4] = {nb, 64, 3, 3};
    jt_expect_tol(&R, MT_FLOAT32, 4, od, h2, 1e-4, 1e-4);
    /* FAST_RUN: the bias add and relu after each conv are one kernel reading the conv result:
     * steps = 2 x (bias view, conv, fused bias+relu, pool) */
    mt_function_stats st;
    mt_function_get_stats(f, &st);
    MT_CHECK_EQ_INT(st.n_fused, 2);
    MT_CHECK_EQ_INT(st.n_fused_nodes, 4);
    if (st.n_steps != 8) { /* + the two bias dimshuffles (views) */
        mt_strbuf sb;
        mt_strbuf_init(&sb);
        mt_function_print(f, &sb);
        mt_test_fail(__FILE__, __LINE__, "%d steps:\n%s", (int)st.n_steps, sb.data);
    }
    mt_array_clear(&R);
    for (int i = 0; i < 5; i++) mt_array_clear(&A[i]);
    mt_function_free(f);
    mt_graph_free(g);
    free(xv), free(w1), free(b1), free(w2), free(b2), free(y1), free(h1), free(y2), free(h2);
}

MT_TEST(pylearn2_tutorial_gradients_fuse_and_run)
{
    /* the training step's gradients: relu' * dy fuses after pool2d_grad, values checked in
     * MT_MODE_CHECK against the reference schedule */
    mt_graph *g = new_graph();
    mt_var x, p[4];
    mt_var h = tutorial(g, MT_FLOAT32, 4, &x, p);
    mt_var cost = mt_graph_mean(g, mt_graph_mul(g, h, h), 0, NULL, false);
    mt_var gr[4];
    MT_CHECK_OK(mt_graph_grad(g, cost, 4, p, gr, NULL));
    mt_var outs[5] = {cost, gr[0], gr[1], gr[2], gr[3]};
    int64_t nx = 4 * 784, nw2 = 64 * 64 * 25;
    double *xv = filled(nx, 7), *w1 = filled(1600, 8), *b1 = filled(64, 9);
    double *w2 = filled(nw2, 10), *b2 = filled(64, 11);
    mt_array A[5], R[5];
    memset(R, 0, sizeof R);
    const int64_t xd[4] = {4, 1, 28, 28}, w1d[4] = {64, 1, 5, 5}, w2d[4] = {64, 64, 5, 5};
    const int64_t bd[1] = {64};
    jt_arr(&A[0], MT_FLOAT32, 4, xd, xv), jt_arr(&A[1], MT_FLOAT32, 4, w1d, w1);
    jt_arr(&A[2], MT_FLOAT32, 1, bd, b1), jt_arr(&A[3], MT_FLOAT32, 4, w2d, w2);
    jt_arr(&A[4], MT_FLOAT32, 1, bd, b2);
    mt_var vars[5] = {x, p[0], p[1], p[2], p[3]};
    const mt_array *arrs[5] = {&A[0], &A[1], &A[2], &A[3], &A[4]};
    run(g, 5, outs, 5, vars, arrs, R);
    for (int i = 1; i < 5; i++) {
        MT_CHECK_EQ_INT(R[i].ndim, i % 2 ? 4 : 1);
        MT_CHECK_EQ_INT(R[i].dims[0], 64);
    }
    for (int i = 0; i < 5; i++) mt_array_clear(&A[i]), mt_array_clear(&R[i]);
    mt_graph_free(g);
    free(xv), free(w1), free(b1), free(w2), free(b2);
}

/* ---------------------------------------------------------------- graph and language */

MT_TEST(conv_nodes_hash_cons_print_and_verify)
{
    mt_graph *g = new_graph();
    const int64_t xd[4] = {2, 3, 8, 8}, wd[4] = {4, 3, 3, 3};
    mt_var x = mt_graph_placeholder(g, "x", MT_FLOAT32, 4, xd);
    mt_var w = mt_graph_placeholder(g, "w", MT_FLOAT32, 4, wd);
    const int32_t s[2] = {2, 2}, p[2] = {1, 0}, one[2] = {1, 1}, zero[2] = {0, 0};
    mt_var a = mt_graph_conv2d(g, x, w, s, p), b = mt_graph_conv2d(g, x, w, s, p);
    MT_CHECK_EQ_INT(a, b);
    MT_CHECK(mt_graph_conv2d(g, x, w, NULL, NULL) == mt_graph_conv2d(g, x, w, one, zero));
    MT_CHECK(mt_graph_conv2d(g, x, w, NULL, NULL) != a);
    const int32_t k2[2] = {2, 2};
    mt_var m = mt_graph_pool2d(g, a, MT_POOL_MAX, k2, NULL, NULL, true);
    MT_CHECK(m == mt_graph_pool2d(g, a, MT_POOL_MAX, k2, k2, NULL, true));
    MT_CHECK(m != mt_graph_pool2d(g, a, MT_POOL_MEAN, k2, NULL, NULL, true));
    MT_CHECK(m != mt_graph_pool2d(g, a, MT_POOL_MAX, k2, NULL, NULL, false));
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    MT_CHECK_OK(mt_graph_print(g, 1, &m, &sb));
    MT_CHECK(strstr(sb.data, "conv2d{stride=(2,2), pad=(1,0)}") != NULL);
    MT_CHECK(strstr(sb.data, "pool2d{max, pool=(2,2), stride=(2,2), pad=(0,0), ceil_mode}") !=
             NULL);
    mt_strbuf_deinit(&sb);
    mt_var gr[2];
    mt_var cost = mt_graph_sum(g, m, 0, NULL, false);
    MT_CHECK_OK(mt_graph_grad(g, cost, 2, (mt_var[]){x, w}, gr, NULL));
    mt_strbuf_init(&sb);
    MT_CHECK_OK(mt_graph_print(g, 2, gr, &sb));
    MT_CHECK(strstr(sb.data, "conv2d_grad_input{stride=(2,2), pad=(1,0)}") != NULL);
    MT_CHECK(strstr(sb.data, "conv2d_grad_weight{kernel=(3,3), stride=(2,2), pad=(1,0)}") != NULL);
    MT_CHECK(strstr(sb.data, "pool2d_grad{max") != NULL);
    mt_strbuf_deinit(&sb);
    MT_CHECK_OK(mt_graph_verify(g));
    mt_graph_free(g);
}

MT_TEST(expression_language_functions)
{
    mt_graph *g = new_graph();
    const int64_t xd[4] = {2, 3, 9, 8}, wd[4] = {4, 3, 3, 2};
    mt_graph_placeholder(g, "x", MT_FLOAT64, 4, xd);
    mt_graph_placeholder(g, "w", MT_FLOAT64, 4, wd);
    static const struct {
        const char *text;
        int64_t shape[4];
    } ok[] = {
        {"conv2d(x, w)", {2, 4, 7, 7}},
        {"conv2d(x, w, stride=2, pad=(1, 0))", {2, 4, 5, 4}},
        {"x.conv2d(w, 1, 1)", {2, 4, 9, 9}},
        {"max_pool2d(x, 2)", {2, 3, 4, 4}},
        {"max_pool2d(x, (4, 4), stride=2, ceil_mode=True)", {2, 3, 4, 3}},
        {"avg_pool2d(x, 3, stride=(2, 1), pad=1, ceil_mode=True)", {2, 3, 5, 8}},
        {"relu(conv2d(x, w) + 1).max_pool2d(2, ceil_mode=True)", {2, 4, 4, 4}},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        mt_var v = MT_VAR_NONE;
        mt_status st = mt_graph_parse(g, ok[i].text, 0, NULL, NULL, &v, NULL);
        if (st != MT_OK) mt_test_fail(__FILE__, __LINE__, "%s: %s", ok[i].text, mt_last_error());
        const mt_type *t = mt_graph_type(g, v);
        for (int d = 0; d < 4; d++)
            if (t->shape[d] != ok[i].shape[d])
                mt_test_fail(__FILE__, __LINE__, "%s: axis %d is %lld, expected %lld",
                             ok[i].text, d, (long long)t->shape[d], (long long)ok[i].shape[d]);
    }
    mt_var v;
    MT_CHECK_ERR(mt_graph_parse(g, "conv2d(x, w, stride=(1, 2, 3))", 0, NULL, NULL, &v, NULL),
                 MT_ERR_INVALID,
                 "'stride' must be an int or a pair of ints");
    mt_graph_clear_error(g);
    MT_CHECK_ERR(mt_graph_parse(g, "max_pool2d(x)", 0, NULL, NULL, &v, NULL), MT_ERR_INVALID,
                 "missing required argument 'pool'");
    mt_graph_clear_error(g);
    MT_CHECK_ERR(mt_graph_parse(g, "conv2d(x, w.transpose(1, 0, 2, 3))", 0, NULL, NULL, &v, NULL),
                 MT_ERR_SHAPE, "input channels differ");
    mt_graph_free(g);
}
