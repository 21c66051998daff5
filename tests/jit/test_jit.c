/* Tests of the jit reference executor, op by op: every op of MT_OP_MAP evaluated through
 * mt_graph_eval on small inputs and compared with an independent reference computed here with
 * plain C loops in double (per-dtype tolerances). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "jit_ref.h"

#define NELEM(a) ((int32_t)(sizeof(a) / sizeof((a)[0])))

static mt_graph *new_graph(void)
{
    mt_graph *g = NULL;
    MT_CHECK_OK(mt_graph_new(&g));
    mt_graph_set_origin(g, __FILE__, __LINE__);
    return g;
}

static void clear_all(mt_array *a, int32_t n)
{
    for (int32_t i = 0; i < n; i++) mt_array_clear(&a[i]);
}

/* ---------------------------------------------------------------- elementwise */

MT_TEST(elemwise_broadcast_promotion)
{
    mt_graph *g = new_graph();
    int64_t s23[2] = {2, 3}, s3[1] = {3}, s21[2] = {2, 1};
    mt_var a = mt_graph_placeholder(g, "a", MT_FLOAT32, 2, s23);
    mt_var b = mt_graph_placeholder(g, "b", MT_FLOAT64, 1, s3);
    mt_var c = mt_graph_placeholder(g, "c", MT_INT8, 2, s21);
    mt_var i = mt_graph_placeholder(g, "i", MT_INT32, 1, s3);
    mt_var outs[6] = {
        mt_graph_add(g, mt_graph_mul(g, a, b), mt_graph_literal_float(g, 2.5)), /* float64 */
        mt_graph_mul(g, c, a),                                                  /* float32 */
        mt_graph_exp(g, i),                                                     /* float64 */
        mt_graph_lt(g, a, b),                                                   /* bool */
        mt_graph_where(g, mt_graph_lt(g, a, b), a, b),                          /* float64 */
        mt_graph_mul(g, a, mt_graph_literal_float(g, 2.0)),                     /* float32 */
    };
    double av[6] = {0.5, -1.25, 2.0, 3.5, -0.75, 1.0}, bv[3] = {1.5, -2.0, 0.25};
    double cv[2] = {3, -2}, iv[3] = {0, 1, -2};
    mt_array A, B, C, I, r[6] = {{0}};
    jt_arr(&A, MT_FLOAT32, 2, s23, av);
    jt_arr(&B, MT_FLOAT64, 1, s3, bv);
    jt_arr(&C, MT_INT8, 2, s21, cv);
    jt_arr(&I, MT_INT32, 1, s3, iv);
    mt_var vars[4] = {a, b, c, i};
    const mt_array *arrs[4] = {&A, &B, &C, &I};
    jt_eval(g, 6, outs, 4, vars, arrs, r);
    double e0[6], e1[6], e2[3], e3[6], e4[6], e5[6];
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 3; x++) {
            double va = av[y * 3 + x], vb = bv[x];
            e0[y * 3 + x] = va * vb + 2.5;
            e1[y * 3 + x] = cv[y] * va;
            e3[y * 3 + x] = va < vb;
            e4[y * 3 + x] = va < vb ? va : vb;
            e5[y * 3 + x] = va * 2.0;
        }
    for (int x = 0; x < 3; x++) e2[x] = exp(iv[x]);
    jt_expect(&r[0], MT_FLOAT64, 2, s23, e0);
    jt_expect(&r[1], MT_FLOAT32, 2, s23, e1);
    jt_expect(&r[2], MT_FLOAT64, 1, s3, e2);
    jt_expect(&r[3], MT_BOOL, 2, s23, e3);
    jt_expect(&r[4], MT_FLOAT64, 2, s23, e4);
    jt_expect(&r[5], MT_FLOAT32, 2, s23, e5);
    clear_all(r, 6);
    mt_array_clear(&A);
    mt_array_clear(&B);
    mt_array_clear(&C);
    mt_array_clear(&I);
    mt_graph_free(g);
}

static double ref_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }
static double ref_softplus(double x) { return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)); }
static double ref_relu(double x) { return x > 0 ? x : 0; }
static double ref_rsqrt(double x) { return 1.0 / sqrt(x); }
static double ref_sign(double x) { return (double)((x > 0) - (x < 0)); }
static double ref_neg(double x) { return -x; }
static double ref_square(double x) { return x * x; }
static double ref_recip(double x) { return 1.0 / x; }
static double ref_log1mexp(double x) { return log(-expm1(x)); }

typedef struct unary_case {
    mt_sop sop;
    double (*fn)(double);
    double lo, hi; /* domain of the inputs */
} unary_case;

static const unary_case g_unary[] = {
    {MT_SOP_NEG, ref_neg, -3, 3},       {MT_SOP_ABS, fabs, -3, 3},
    {MT_SOP_SIGN, ref_sign, -3, 3},     {MT_SOP_RECIP, ref_recip, 0.5, 3},
    {MT_SOP_SQUARE, ref_square, -3, 3}, {MT_SOP_SQRT, sqrt, 0, 4},
    {MT_SOP_RSQRT, ref_rsqrt, 0.1, 4},  {MT_SOP_EXP, exp, -3, 3},
    {MT_SOP_EXP2, exp2, -3, 3},         {MT_SOP_EXPM1, expm1, -1e-3, 3},
    {MT_SOP_LOG, log, 0.1, 5},          {MT_SOP_LOG2, log2, 0.1, 5},
    {MT_SOP_LOG10, log10, 0.1, 5},      {MT_SOP_LOG1P, log1p, -0.5, 5},
    {MT_SOP_LOG1MEXP, ref_log1mexp, -5, -0.01},
    {MT_SOP_SIN, sin, -3, 3},           {MT_SOP_COS, cos, -3, 3},
    {MT_SOP_TAN, tan, -1.2, 1.2},       {MT_SOP_ASIN, asin, -0.9, 0.9},
    {MT_SOP_ACOS, acos, -0.9, 0.9},     {MT_SOP_ATAN, atan, -3, 3},
    {MT_SOP_SINH, sinh, -3, 3},         {MT_SOP_COSH, cosh, -3, 3},
    {MT_SOP_TANH, tanh, -3, 3},         {MT_SOP_ERF, erf, -2, 2},
    {MT_SOP_ERFC, erfc, -2, 2},         {MT_SOP_SIGMOID, ref_sigmoid, -30, 30},
    {MT_SOP_SOFTPLUS, ref_softplus, -30, 30},
    {MT_SOP_RELU, ref_relu, -3, 3},     {MT_SOP_FLOOR, floor, -3, 3},
    {MT_SOP_CEIL, ceil, -3, 3},         {MT_SOP_ROUND, nearbyint, -3, 3},
    {MT_SOP_TRUNC, trunc, -3, 3},
};

static void run_unary(mt_dtype dt, double atol, double rtol)
{
    enum { N = 16 };
    int32_t nc = NELEM(g_unary);
    mt_graph *g = new_graph();
    int64_t shape[1] = {N};
    mt_var *xs = calloc((size_t)nc, sizeof *xs), *ys = calloc((size_t)nc, sizeof *ys);
    mt_array *in = calloc((size_t)nc, sizeof *in), *res = calloc((size_t)nc, sizeof *res);
    const mt_array **arrs = calloc((size_t)nc, sizeof *arrs);
    double vals[N], expect[N];
    for (int32_t k = 0; k < nc; k++) {
        char name[16];
        snprintf(name, sizeof name, "x%d", (int)k);
        xs[k] = mt_graph_placeholder(g, name, dt, 1, shape);
        ys[k] = mt_graph_unary(g, g_unary[k].sop, xs[k]);
        jt_fill(vals, N, g_unary[k].lo, g_unary[k].hi, (uint64_t)k + 1);
        jt_arr(&in[k], dt, 1, shape, vals);
        arrs[k] = &in[k];
    }
    jt_eval(g, nc, ys, nc, xs, arrs, res);
    for (int32_t k = 0; k < nc; k++) {
        double x[N];
        jt_read(&in[k], x, N); /* the values as rounded to dt */
        for (int i = 0; i < N; i++) expect[i] = g_unary[k].fn(x[i]);
        fprintf(stderr, "  %s\n", mt_sop_name(g_unary[k].sop));
        jt_expect_tol(&res[k], dt, 1, shape, expect, atol, rtol);
    }
    clear_all(in, nc);
    clear_all(res, nc);
    free(xs);
    free(ys);
    free(in);
    free(res);
    free(arrs);
    mt_graph_free(g);
}

MT_TEST(elemwise_unary_float64)
{
    run_unary(MT_FLOAT64, 1e-13, 1e-12);
}

MT_TEST(elemwise_unary_float32)
{
    run_unary(MT_FLOAT32, 1e-6, 1e-5);
}

static double py_floordiv(double a, double b) { return b == 0 ? 0 : floor(a / b); }
static double py_mod(double a, double b) { return b == 0 ? 0 : a - floor(a / b) * b; }

MT_TEST(elemwise_binary)
{
    mt_graph *g = new_graph();
    int64_t s[1] = {8};
    mt_var a = mt_graph_placeholder(g, "a", MT_FLOAT64, 1, s);
    mt_var b = mt_graph_placeholder(g, "b", MT_FLOAT64, 1, s);
    mt_var ia = mt_graph_placeholder(g, "ia", MT_INT32, 1, s);
    mt_var ib = mt_graph_placeholder(g, "ib", MT_INT32, 1, s);
    mt_var outs[] = {
        mt_graph_sub(g, a, b),       mt_graph_div(g, a, b),     mt_graph_pow(g, mt_graph_abs(g, a), b),
        mt_graph_maximum(g, a, b),   mt_graph_minimum(g, a, b), mt_graph_arctan2(g, a, b),
        mt_graph_logaddexp(g, a, b), mt_graph_floordiv(g, a, b), mt_graph_mod(g, a, b),
        mt_graph_floordiv(g, ia, ib), mt_graph_mod(g, ia, ib),  mt_graph_div(g, ia, ib),
        mt_graph_ge(g, a, b),        mt_graph_ne(g, ia, ib),
        mt_graph_clip(g, a, mt_graph_literal_float(g, -1.0), mt_graph_literal_float(g, 1.5)),
    };
    int32_t no = NELEM(outs);
    double av[8] = {-7, 7, -7.5, 2.25, 0.5, -3, 1000, -1000};
    double bv[8] = {2, -2, 2, 0.5, 3, -0.25, 999, -998};
    double iav[8] = {-7, 7, -7, 7, 5, 0, 9, -9};
    double ibv[8] = {2, -2, -2, 2, 0, 3, 4, 4};
    mt_array A, B, IA, IB, r[16] = {{0}};
    jt_arr(&A, MT_FLOAT64, 1, s, av);
    jt_arr(&B, MT_FLOAT64, 1, s, bv);
    jt_arr(&IA, MT_INT32, 1, s, iav);
    jt_arr(&IB, MT_INT32, 1, s, ibv);
    mt_var vars[4] = {a, b, ia, ib};
    const mt_array *arrs[4] = {&A, &B, &IA, &IB};
    jt_eval(g, no, outs, 4, vars, arrs, r);
    double e[16][8];
    for (int k = 0; k < 8; k++) {
        double x = av[k], y = bv[k], p = iav[k], q = ibv[k];
        e[0][k] = x - y;
        e[1][k] = x / y;
        e[2][k] = pow(fabs(x), y);
        e[3][k] = x > y ? x : y;
        e[4][k] = x < y ? x : y;
        e[5][k] = atan2(x, y);
        e[6][k] = fmax(x, y) + log1p(exp(-fabs(x - y)));
        e[7][k] = py_floordiv(x, y);
        e[8][k] = py_mod(x, y);
        e[9][k] = py_floordiv(p, q);
        e[10][k] = py_mod(p, q);
        e[11][k] = q == 0 ? (p > 0 ? INFINITY : p < 0 ? -INFINITY : NAN) : p / q;
        e[12][k] = x >= y;
        e[13][k] = p != q;
        e[14][k] = x < -1 ? -1 : x > 1.5 ? 1.5 : x;
    }
    mt_dtype dts[15] = {MT_FLOAT64, MT_FLOAT64, MT_FLOAT64, MT_FLOAT64, MT_FLOAT64,
                        MT_FLOAT64, MT_FLOAT64, MT_FLOAT64, MT_FLOAT64, MT_INT32,
                        MT_INT32,   MT_FLOAT64, MT_BOOL,    MT_BOOL,    MT_FLOAT64};
    for (int k = 0; k < no; k++) {
        fprintf(stderr, "  output %d\n", k);
        jt_expect(&r[k], dts[k], 1, s, e[k]);
    }
    clear_all(r, no);
    mt_array_clear(&A);
    mt_array_clear(&B);
    mt_array_clear(&IA);
    mt_array_clear(&IB);
    mt_graph_free(g);
}

MT_TEST(constants_and_cast)
{
    mt_graph *g = new_graph();
    int64_t s[2] = {2, 2};
    double cv[4] = {1.5, -2.5, 3.75, 100.0};
    mt_var c = mt_graph_constant(g, MT_FLOAT64, 2, s, cv);
    mt_var x = mt_graph_placeholder(g, "x", MT_FLOAT64, 2, s);
    mt_var outs[4] = {
        mt_graph_add(g, c, x),
        mt_graph_cast(g, mt_graph_add(g, c, x), MT_INT8), /* truncates toward zero */
        mt_graph_full(g, MT_FLOAT32, 2, s, 7.0),
        c,
    };
    double xv[4] = {1, 2, 3, 20}, e0[4], e1[4], e2[4] = {7, 7, 7, 7};
    for (int k = 0; k < 4; k++) {
        e0[k] = cv[k] + xv[k];
        double t = trunc(e0[k]);
        e1[k] = (double)(int8_t)(int64_t)t;
    }
    mt_array X, r[4] = {{0}};
    jt_arr(&X, MT_FLOAT64, 2, s, xv);
    const mt_array *arrs[1] = {&X};
    jt_eval(g, 4, outs, 1, &x, arrs, r);
    jt_expect(&r[0], MT_FLOAT64, 2, s, e0);
    jt_expect(&r[1], MT_INT8, 2, s, e1);
    jt_expect(&r[2], MT_FLOAT32, 2, s, e2);
    jt_expect(&r[3], MT_FLOAT64, 2, s, cv);
    /* Outputs never alias function memory: writing into them is safe. */
    MT_CHECK(r[2].flags & MT_ARRAY_WRITEABLE);
    MT_CHECK(r[3].flags & MT_ARRAY_WRITEABLE);
    clear_all(r, 4);
    mt_array_clear(&X);
    mt_graph_free(g);
}

/* ---------------------------------------------------------------- reductions */

MT_TEST(reductions_axes)
{
    mt_graph *g = new_graph();
    int64_t s[3] = {3, 4, 5};
    enum { N = 60 };
    mt_var x = mt_graph_placeholder(g, "x", MT_FLOAT64, 3, s);
    int32_t ax1[1] = {1}, ax02[2] = {0, 2}, axm1[1] = {-1}, ax0[1] = {0};
    mt_var outs[] = {
        mt_graph_sum(g, x, 1, ax1, false),    mt_graph_sum(g, x, 1, ax1, true),
        mt_graph_mean(g, x, 2, ax02, false),  mt_graph_max(g, x, 0, NULL, false),
        mt_graph_argmax(g, x, 1, axm1, false), mt_graph_prod(g, x, 1, ax0, false),
        mt_graph_var(g, x, 1, ax1, false, 0),  mt_graph_std(g, x, 1, ax1, false, 1),
        mt_graph_any(g, mt_graph_gt(g, x, mt_graph_literal_float(g, 0.9)), 1, axm1, false),
        mt_graph_min(g, x, 1, ax1, false),
    };
    int32_t no = NELEM(outs);
    double xv[N];
    jt_fill(xv, N, -1, 1, 7);
    mt_array X, r[10] = {{0}};
    jt_arr(&X, MT_FLOAT64, 3, s, xv);
    const mt_array *arrs[1] = {&X};
    jt_eval(g, no, outs, 1, &x, arrs, r);
#define X3(i, j, k) xv[((i) * 4 + (j)) * 5 + (k)]
    double sum1[15], mean02[4], mx = -INFINITY, am[12], pr0[20], var1[15], std1[15], any2[12],
        min1[15];
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 5; k++) {
            double sm = 0, sq = 0, mn = INFINITY;
            for (int j = 0; j < 4; j++) {
                sm += X3(i, j, k);
                mn = fmin(mn, X3(i, j, k));
            }
            for (int j = 0; j < 4; j++) sq += (X3(i, j, k) - sm / 4) * (X3(i, j, k) - sm / 4);
            sum1[i * 5 + k] = sm;
            var1[i * 5 + k] = sq / 4;
            std1[i * 5 + k] = sqrt(sq / 3);
            min1[i * 5 + k] = mn;
        }
    for (int j = 0; j < 4; j++) {
        double sm = 0;
        for (int i = 0; i < 3; i++)
            for (int k = 0; k < 5; k++) sm += X3(i, j, k);
        mean02[j] = sm / 15;
    }
    for (int n = 0; n < N; n++) mx = fmax(mx, xv[n]);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++) {
            int best = 0;
            bool an = false;
            for (int k = 0; k < 5; k++) {
                if (X3(i, j, k) > X3(i, j, best)) best = k;
                an |= X3(i, j, k) > 0.9;
            }
            am[i * 4 + j] = best;
            any2[i * 4 + j] = an;
        }
    for (int j = 0; j < 4; j++)
        for (int k = 0; k < 5; k++) pr0[j * 5 + k] = X3(0, j, k) * X3(1, j, k) * X3(2, j, k);
#undef X3
    int64_t s35[2] = {3, 5}, s315[3] = {3, 1, 5}, s4[1] = {4}, s34[2] = {3, 4}, s45[2] = {4, 5};
    jt_expect(&r[0], MT_FLOAT64, 2, s35, sum1);
    jt_expect(&r[1], MT_FLOAT64, 3, s315, sum1);
    jt_expect(&r[2], MT_FLOAT64, 1, s4, mean02);
    jt_expect(&r[3], MT_FLOAT64, 0, NULL, &mx);
    jt_expect(&r[4], MT_INT64, 2, s34, am);
    jt_expect(&r[5], MT_FLOAT64, 2, s45, pr0);
    jt_expect(&r[6], MT_FLOAT64, 2, s35, var1);
    jt_expect(&r[7], MT_FLOAT64, 2, s35, std1);
    jt_expect(&r[8], MT_BOOL, 2, s34, any2);
    jt_expect(&r[9], MT_FLOAT64, 2, s35, min1);
    clear_all(r, no);
    mt_array_clear(&X);
    mt_graph_free(g);
}

MT_TEST(reduction_int_promotes)
{
    mt_graph *g = new_graph();
    int64_t s[2] = {2, 3};
    mt_var x = mt_graph_placeholder(g, "x", MT_INT32, 2, s);
    mt_var outs[2] = {mt_graph_sum(g, x, 0, NULL, false), mt_graph_mean(g, x, 0, NULL, false)};
    double xv[6] = {1, 2, 3, 4, 5, 2000000000}, sm = 0;
    for (int i = 0; i < 6; i++) sm += xv[i];
    double mean = sm / 6;
    mt_array X, r[2] = {{0}};
    jt_arr(&X, MT_INT32, 2, s, xv);
    const mt_array *arrs[1] = {&X};
    jt_eval(g, 2, outs, 1, &x, arrs, r);
    jt_expect(&r[0], MT_INT64, 0, NULL, &sm);
    jt_expect(&r[1], MT_FLOAT64, 0, NULL, &mean);
    clear_all(r, 2);
    mt_array_clear(&X);
    mt_graph_free(g);
}

/* ---------------------------------------------------------------- products */

static void ref_matmul(const double *a, const double *b, double *c, int m, int k, int n)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int p = 0; p < k; p++) s += a[i * k + p] * b[p * n + j];
            c[i * n + j] = s;
        }
}

MT_TEST(matmul_batched)
{
    mt_graph *g = new_graph();
    int64_t sa[3] = {2, 3, 4}, sb[3] = {2, 4, 5}, sa1[3] = {1, 3, 4}, sv[1] = {4}, sm[2] = {4, 5};
    mt_var a = mt_graph_placeholder(g, "a", MT_FLOAT64, 3, sa);
    mt_var b = mt_graph_placeholder(g, "b", MT_FLOAT64, 3, sb);
    mt_var a1 = mt_graph_placeholder(g, "a1", MT_FLOAT32, 3, sa1);
    mt_var v = mt_graph_placeholder(g, "v", MT_FLOAT64, 1, sv);
    mt_var m = mt_graph_placeholder(g, "m", MT_FLOAT64, 2, sm);
    mt_var outs[4] = {mt_graph_matmul(g, a, b), mt_graph_matmul(g, a1, b),
                      mt_graph_matmul(g, v, m), mt_graph_dot(g, v, m)};
    double av[24], bv[40], a1v[12], vv[4], mv[20];
    jt_fill(av, 24, -1, 1, 1);
    jt_fill(bv, 40, -1, 1, 2);
    for (int i = 0; i < 12; i++) a1v[i] = (double)(i % 5) * 0.25 - 0.5; /* exact in float32 */
    jt_fill(vv, 4, -1, 1, 4);
    jt_fill(mv, 20, -1, 1, 5);
    mt_array A, B, A1, V, M, r[4] = {{0}};
    jt_arr(&A, MT_FLOAT64, 3, sa, av);
    jt_arr(&B, MT_FLOAT64, 3, sb, bv);
    jt_arr(&A1, MT_FLOAT32, 3, sa1, a1v);
    jt_arr(&V, MT_FLOAT64, 1, sv, vv);
    jt_arr(&M, MT_FLOAT64, 2, sm, mv);
    mt_var vars[5] = {a, b, a1, v, m};
    const mt_array *arrs[5] = {&A, &B, &A1, &V, &M};
    jt_eval(g, 4, outs, 5, vars, arrs, r);
    double e0[30], e1[30], e2[5];
    for (int t = 0; t < 2; t++) {
        ref_matmul(av + t * 12, bv + t * 20, e0 + t * 15, 3, 4, 5);
        ref_matmul(a1v, bv + t * 20, e1 + t * 15, 3, 4, 5);
    }
    ref_matmul(vv, mv, e2, 1, 4, 5);
    int64_t so[3] = {2, 3, 5}, s5[1] = {5};
    jt_expect(&r[0], MT_FLOAT64, 3, so, e0);
    jt_expect(&r[1], MT_FLOAT64, 3, so, e1);
    jt_expect(&r[2], MT_FLOAT64, 1, s5, e2);
    jt_expect(&r[3], MT_FLOAT64, 1, s5, e2);
    clear_all(r, 4);
    mt_array_clear(&A);
    mt_array_clear(&B);
    mt_array_clear(&A1);
    mt_array_clear(&V);
    mt_array_clear(&M);
    mt_graph_free(g);
}

MT_TEST(gemm_forms)
{
    mt_graph *g = new_graph();
    int64_t sa[2] = {3, 4}, sb[2] = {5, 4}, sc[1] = {5};
    int64_t s4a[4] = {2, 2, 3, 4}, s4b[4] = {2, 1, 4, 3}, s4c[2] = {1, 3};
    mt_var a = mt_graph_placeholder(g, "a", MT_FLOAT64, 2, sa);
    mt_var b = mt_graph_placeholder(g, "b", MT_FLOAT64, 2, sb);
    mt_var c = mt_graph_placeholder(g, "c", MT_FLOAT64, 1, sc);
    mt_var a4 = mt_graph_placeholder(g, "a4", MT_FLOAT64, 4, s4a);
    mt_var b4 = mt_graph_placeholder(g, "b4", MT_FLOAT64, 4, s4b);
    mt_var c4 = mt_graph_placeholder(g, "c4", MT_FLOAT64, 2, s4c);
    mt_var outs[2] = {mt_graph_gemm(g, a, b, c, 2.0, 0.5, false, true),
                      mt_graph_gemm(g, a4, b4, c4, -1.0, 1.0, false, false)};
    double av[12], bv[20], cv[5], a4v[48], b4v[24], c4v[3];
    jt_fill(av, 12, -1, 1, 11);
    jt_fill(bv, 20, -1, 1, 12);
    jt_fill(cv, 5, -1, 1, 13);
    jt_fill(a4v, 48, -1, 1, 14);
    jt_fill(b4v, 24, -1, 1, 15);
    jt_fill(c4v, 3, -1, 1, 16);
    mt_array A, B, C, A4, B4, C4, r[2] = {{0}};
    jt_arr(&A, MT_FLOAT64, 2, sa, av);
    jt_arr(&B, MT_FLOAT64, 2, sb, bv);
    jt_arr(&C, MT_FLOAT64, 1, sc, cv);
    jt_arr(&A4, MT_FLOAT64, 4, s4a, a4v);
    jt_arr(&B4, MT_FLOAT64, 4, s4b, b4v);
    jt_arr(&C4, MT_FLOAT64, 2, s4c, c4v);
    mt_var vars[6] = {a, b, c, a4, b4, c4};
    const mt_array *arrs[6] = {&A, &B, &C, &A4, &B4, &C4};
    jt_eval(g, 2, outs, 6, vars, arrs, r);
    double e0[15], e1[36];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 5; j++) {
            double s = 0;
            for (int p = 0; p < 4; p++) s += av[i * 4 + p] * bv[j * 4 + p];
            e0[i * 5 + j] = 2.0 * s + 0.5 * cv[j];
        }
    for (int t0 = 0; t0 < 2; t0++)
        for (int t1 = 0; t1 < 2; t1++) {
            double prod[9];
            ref_matmul(a4v + (t0 * 2 + t1) * 12, b4v + t0 * 12, prod, 3, 4, 3);
            for (int i = 0; i < 9; i++) e1[(t0 * 2 + t1) * 9 + i] = -prod[i] + c4v[i % 3];
        }
    int64_t so[2] = {3, 5}, so4[4] = {2, 2, 3, 3};
    jt_expect(&r[0], MT_FLOAT64, 2, so, e0);
    jt_expect(&r[1], MT_FLOAT64, 4, so4, e1);
    clear_all(r, 2);
    mt_array_clear(&A);
    mt_array_clear(&B);
    mt_array_clear(&C);
    mt_array_clear(&A4);
    mt_array_clear(&B4);
    mt_array_clear(&C4);
    mt_graph_free(g);
}

/* ---------------------------------------------------------------- views */

MT_TEST(views_slice_transpose_reshape)
{
    mt_graph *g = new_graph();
    int64_t s[2] = {4, 5};
    mt_var x = mt_graph_placeholder(g, "x", MT_FLOAT64, 2, s);
    mt_idx rev_odd[2] = {mt_idx_slice(MT_IDX_NONE, MT_IDX_NONE, -1), mt_idx_slice(1, 5, 2)};
    mt_idx last[1] = {mt_idx_int(-1)};
    mt_idx neg[2] = {mt_idx_slice(-1, 0, -2), mt_idx_slice(-2, MT_IDX_NONE, -3)};
    int64_t r54[2] = {5, 4}, rinf[2] = {2, -1}, s345[3] = {3, 4, 5};
    int32_t pat[3] = {1, -1, 0};
    mt_var t = mt_graph_transpose(g, x, NULL);
    mt_var outs[] = {
        mt_graph_index(g, x, 2, rev_odd),       /* x[::-1, 1:5:2] */
        mt_graph_index(g, x, 1, last),          /* x[-1] */
        mt_graph_index(g, x, 2, neg),           /* x[-1:0:-2, -2::-3] */
        t,                                      /* x.T */
        mt_graph_reshape(g, x, 2, r54),         /* view */
        mt_graph_reshape(g, t, 2, rinf),        /* x.T.reshape(2, -1): copy */
        mt_graph_flatten(g, x, 1),
        mt_graph_expand_dims(g, x, 1),
        mt_graph_squeeze(g, mt_graph_expand_dims(g, x, 0), 0, NULL),
        mt_graph_broadcast_to(g, x, 3, s345),
        mt_graph_dimshuffle(g, x, 3, pat),      /* x.dimshuffle(1, 'x', 0) */
    };
    int32_t no = NELEM(outs);
    double xv[20];
    for (int i = 0; i < 20; i++) xv[i] = i;
    mt_array X, r[11] = {{0}};
    jt_arr(&X, MT_FLOAT64, 2, s, xv);
    const mt_array *arrs[1] = {&X};
    jt_eval(g, no, outs, 1, &x, arrs, r);
#define XV(i, j) xv[(i) * 5 + (j)]
    double e0[8], e1[5], e2[4], e3[20], e5[20], e9[60], e10[20];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 2; j++) e0[i * 2 + j] = XV(3 - i, 1 + 2 * j);
    for (int j = 0; j < 5; j++) e1[j] = XV(3, j);
    /* rows 3, 1 (stop 0 excluded); columns 3, 0 */
    e2[0] = XV(3, 3); e2[1] = XV(3, 0); e2[2] = XV(1, 3); e2[3] = XV(1, 0);
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 5; j++) {
            e3[j * 4 + i] = XV(i, j);
            e10[j * 4 + i] = XV(i, j);
        }
    memcpy(e5, e3, sizeof e5); /* the transposed values in C order, reshaped */
    for (int k = 0; k < 3; k++) memcpy(e9 + k * 20, xv, sizeof xv);
#undef XV
    int64_t so0[2] = {4, 2}, so1[1] = {5}, so2[2] = {2, 2}, so3[2] = {5, 4}, so5[2] = {2, 10};
    int64_t so6[1] = {20}, so7[3] = {4, 1, 5}, so10[3] = {5, 1, 4};
    jt_expect(&r[0], MT_FLOAT64, 2, so0, e0);
    jt_expect(&r[1], MT_FLOAT64, 1, so1, e1);
    jt_expect(&r[2], MT_FLOAT64, 2, so2, e2);
    jt_expect(&r[3], MT_FLOAT64, 2, so3, e3);
    jt_expect(&r[4], MT_FLOAT64, 2, so3, xv);
    jt_expect(&r[5], MT_FLOAT64, 2, so5, e5);
    jt_expect(&r[6], MT_FLOAT64, 1, so6, xv);
    jt_expect(&r[7], MT_FLOAT64, 3, so7, xv);
    jt_expect(&r[8], MT_FLOAT64, 2, s, xv);
    jt_expect(&r[9], MT_FLOAT64, 3, s345, e9);
    jt_expect(&r[10], MT_FLOAT64, 3, so10, e10);
    clear_all(r, no);
    mt_array_clear(&X);
    mt_graph_free(g);
}

MT_TEST(reshape_unknown_dims_and_broadcast_like)
{
    mt_graph *g = new_graph();
    int64_t s[2] = {-1, 6}, spec[3] = {MT_RESHAPE_KEEP, 2, -1};
    mt_var x = mt_graph_placeholder(g, "x", MT_FLOAT32, 2, s);
    int64_t s1[1] = {6};
    mt_var b = mt_graph_placeholder(g, "b", MT_FLOAT32, 1, s1);
    mt_var outs[3] = {mt_graph_reshape(g, x, 3, spec), mt_graph_broadcast_like(g, b, x),
                      mt_graph_flatten(g, x, 2)};
    double xv[18], bv[6], e1[18];
    for (int i = 0; i < 18; i++) xv[i] = i * 0.5;
    for (int i = 0; i < 6; i++) bv[i] = -i;
    for (int i = 0; i < 18; i++) e1[i] = bv[i % 6];
    int64_t ds[2] = {3, 6};
    mt_array X, B, r[3] = {{0}};
    jt_arr(&X, MT_FLOAT32, 2, ds, xv);
    jt_arr(&B, MT_FLOAT32, 1, s1, bv);
    mt_var vars[2] = {x, b};
    const mt_array *arrs[2] = {&X, &B};
    jt_eval(g, 3, outs, 2, vars, arrs, r);
    int64_t so[3] = {3, 2, 3};
    jt_expect(&r[0], MT_FLOAT32, 3, so, xv);
    jt_expect(&r[1], MT_FLOAT32, 2, ds, e1);
    jt_expect(&r[2], MT_FLOAT32, 2, ds, xv);
    clear_all(r, 3);
    mt_array_clear(&X);
    mt_array_clear(&B);
    mt_graph_free(g);
}

/* ---------------------------------------------------------------- softmax family */

MT_TEST(softmax_extremes)
{
    mt_graph *g = new_graph();
    int64_t s2[1] = {2}, s3[1] = {3};
    mt_var a = mt_graph_placeholder(g, "a", MT_FLOAT64, 1, s2);
    mt_var b = mt_graph_placeholder(g, "b", MT_FLOAT64, 1, s3);
    mt_var af = mt_graph_placeholder(g, "af", MT_FLOAT32, 1, s2);
    mt_var bf = mt_graph_placeholder(g, "bf", MT_FLOAT32, 1, s3);
    mt_var outs[6] = {mt_graph_softmax(g, a, 0),  mt_graph_logsoftmax(g, b, 0),
                      mt_graph_softmax(g, af, -1), mt_graph_logsoftmax(g, bf, -1),
                      mt_graph_logsumexp(g, a, 0, NULL, false),
                      mt_graph_softmax(g, b, 0)};
    double av[2] = {1000, 1000}, bv[3] = {0, 1000, -1000};
    mt_array A, B, AF, BF, r[6] = {{0}};
    jt_arr(&A, MT_FLOAT64, 1, s2, av);
    jt_arr(&B, MT_FLOAT64, 1, s3, bv);
    jt_arr(&AF, MT_FLOAT32, 1, s2, av);
    jt_arr(&BF, MT_FLOAT32, 1, s3, bv);
    mt_var vars[4] = {a, b, af, bf};
    const mt_array *arrs[4] = {&A, &B, &AF, &BF};
    jt_eval(g, 6, outs, 4, vars, arrs, r);
    double half[2] = {0.5, 0.5}, ls[3] = {-1000, 0, -2000}, lse = 1000 + log(2.0);
    double sm[3] = {0, 1, 0};
    jt_expect(&r[0], MT_FLOAT64, 1, s2, half);
    jt_expect(&r[1], MT_FLOAT64, 1, s3, ls);
    jt_expect(&r[2], MT_FLOAT32, 1, s2, half);
    jt_expect(&r[3], MT_FLOAT32, 1, s3, ls);
    jt_expect(&r[4], MT_FLOAT64, 0, NULL, &lse);
    jt_expect(&r[5], MT_FLOAT64, 1, s3, sm);
    clear_all(r, 6);
    mt_array_clear(&A);
    mt_array_clear(&B);
    mt_array_clear(&AF);
    mt_array_clear(&BF);
    mt_graph_free(g);
}

/* Row-wise softmax, logsoftmax and the label crossentropy along the last axis (the host runs
 * these in one pass per row, other devices through the generic operations): extreme, infinite,
 * NaN, all -inf and denormal rows, float32 and float64, against float64 formulas with the
 * documented finite shift ms = isfinite(max) ? max : 0; a label outside the row is an error. */
MT_TEST(softmax_rows_edge_values)
{
    enum { R = 7, C = 3 };
    double xv[R * C] = {1000, 0, -1000,  INFINITY, 0, 1,  NAN, 0, 1,
                        -INFINITY, -INFINITY, -INFINITY,  4e-310, -4e-310, 0,
                        -0.0, 0.0, 1e-30,  88, 89, -88};
    double lv[R] = {0, 1, 2, 0, 1, 2, 1};
    for (int d = 0; d < 2; d++) {
        mt_dtype dt = d ? MT_FLOAT32 : MT_FLOAT64;
        mt_graph *g = new_graph();
        int64_t s[2] = {R, C}, sr[1] = {R};
        mt_var x = mt_graph_placeholder(g, "x", dt, 2, s);
        mt_var l = mt_graph_placeholder(g, "l", MT_INT64, 1, sr);
        mt_var outs[3] = {mt_graph_softmax(g, x, 1), mt_graph_logsoftmax(g, x, -1),
                          mt_graph_softmax_crossentropy_labels(g, x, l, 1)};
        double xs[R * C];
        for (int k = 0; k < R * C; k++) xs[k] = d ? (double)(float)xv[k] : xv[k];
        mt_array X, L, r[3] = {{0}};
        jt_arr(&X, dt, 2, s, xs);
        jt_arr(&L, MT_INT64, 1, sr, lv);
        mt_var vars[2] = {x, l};
        const mt_array *arrs[2] = {&X, &L};
        jt_eval(g, 3, outs, 2, vars, arrs, r);
        double e0[R * C], e1[R * C], e2[R];
        for (int i = 0; i < R; i++) {
            double m = -INFINITY, se = 0;
            bool nan = false;
            for (int j = 0; j < C; j++) {
                nan |= isnan(xs[i * C + j]);
                m = fmax(m, xs[i * C + j]);
            }
            double ms = nan || !isfinite(m) ? 0 : m;
            for (int j = 0; j < C; j++) se += exp(xs[i * C + j] - ms);
            for (int j = 0; j < C; j++) {
                e0[i * C + j] = exp(xs[i * C + j] - ms) / se;
                e1[i * C + j] = (xs[i * C + j] - ms) - log(se);
            }
            e2[i] = ms + log(se) - xs[i * C + (int)lv[i]];
        }
        double tol = d ? 1e-5 : 1e-12;
        jt_expect_tol(&r[0], dt, 2, s, e0, tol, tol);
        jt_expect_tol(&r[1], dt, 2, s, e1, tol, tol);
        jt_expect_tol(&r[2], dt, 1, sr, e2, tol, tol);
        clear_all(r, 3);
        /* a label outside [0, C) */
        lv[2] = 3;
        mt_array L2;
        jt_arr(&L2, MT_INT64, 1, sr, lv);
        lv[2] = 2;
        const mt_array *arrs2[2] = {&X, &L2};
        mt_array bad = {0};
        MT_CHECK(mt_graph_eval(g, 1, &outs[2], 2, vars, arrs2, jt_dev(), &bad) != MT_OK);
        mt_array_clear(&L2);
        mt_array_clear(&X);
        mt_array_clear(&L);
        mt_graph_free(g);
    }
}

MT_TEST(softmax_axes_and_logsumexp)
{
    mt_graph *g = new_graph();
    int64_t s[2] = {3, 4};
    mt_var x = mt_graph_placeholder(g, "x", MT_FLOAT64, 2, s);
    int32_t ax0[1] = {0}, ax1[1] = {1};
    mt_var outs[5] = {mt_graph_softmax(g, x, 0), mt_graph_logsoftmax(g, x, 1),
                      mt_graph_logsumexp(g, x, 1, ax1, false),
                      mt_graph_logsumexp(g, x, 1, ax0, true),
                      mt_graph_logsumexp(g, x, 0, NULL, false)};
    /* row 2 is all -inf: logsumexp -inf, not NaN */
    double xv[12] = {1, 2, 3, 4, -5, 0.5, 700, -700, -INFINITY, -INFINITY, -INFINITY, -INFINITY};
    mt_array X, r[5] = {{0}};
    jt_arr(&X, MT_FLOAT64, 2, s, xv);
    const mt_array *arrs[1] = {&X};
    jt_eval(g, 5, outs, 1, &x, arrs, r);
    double e0[12], e1[12], e2[3], e3[4], e4;
    for (int j = 0; j < 4; j++) { /* softmax over axis 0, column j */
        double m = -INFINITY, s0 = 0;
        for (int i = 0; i < 3; i++) m = fmax(m, xv[i * 4 + j]);
        for (int i = 0; i < 3; i++) s0 += exp(xv[i * 4 + j] - m);
        for (int i = 0; i < 3; i++) e0[i * 4 + j] = exp(xv[i * 4 + j] - m) / s0;
        e3[j] = m + log(s0);
    }
    for (int i = 0; i < 3; i++) {
        double m = -INFINITY, s1 = 0;
        for (int j = 0; j < 4; j++) m = fmax(m, xv[i * 4 + j]);
        double ms = isfinite(m) ? m : 0;
        for (int j = 0; j < 4; j++) s1 += exp(xv[i * 4 + j] - ms);
        for (int j = 0; j < 4; j++) e1[i * 4 + j] = xv[i * 4 + j] - ms - log(s1);
        e2[i] = ms + log(s1);
    }
    double se4 = 0;
    for (int k = 0; k < 12; k++) se4 += exp(xv[k] - 700);
    e4 = 700 + log(se4);
    int64_t s3[1] = {3}, s14[2] = {1, 4};
    jt_expect(&r[0], MT_FLOAT64, 2, s, e0);
    jt_expect(&r[1], MT_FLOAT64, 2, s, e1); /* row 2: -inf - 0 - log(0) = NaN, as NumPy */
    jt_expect(&r[2], MT_FLOAT64, 1, s3, e2);
    jt_expect(&r[3], MT_FLOAT64, 2, s14, e3);
    jt_expect(&r[4], MT_FLOAT64, 0, NULL, &e4);
    clear_all(r, 5);
    mt_array_clear(&X);
    mt_graph_free(g);
}

MT_TEST(crossentropy_forms)
{
    mt_graph *g = new_graph();
    int64_t s[2] = {3, 4}, s3[1] = {3};
    mt_var p = mt_graph_placeholder(g, "p", MT_FLOAT64, 2, s);
    mt_var t = mt_graph_placeholder(g, "t", MT_FLOAT64, 2, s);
    mt_var z = mt_graph_placeholder(g, "z", MT_FLOAT64, 2, s);
    mt_var l = mt_graph_placeholder(g, "l", MT_INT64, 1, s3);
    mt_var outs[5] = {mt_graph_crossentropy(g, p, t, 1),
                      mt_graph_crossentropy_labels(g, p, l, 1),
                      mt_graph_softmax_crossentropy(g, z, t, 1),
                      mt_graph_softmax_crossentropy_labels(g, z, l, -1),
                      mt_graph_sigmoid_crossentropy_logits(g, z, t)};
    double pv[12], tv[12], zv[12] = {1000, 0, -1000, 5, 1, 2, 3, 4, -1, 0, 1, 0.5};
    double lv[3] = {1, 3, 0};
    jt_fill(pv, 12, 0.05, 1, 21);
    jt_fill(tv, 12, 0, 1, 22);
    for (int i = 0; i < 3; i++) {
        double sp = 0, st = 0;
        for (int j = 0; j < 4; j++) {
            sp += pv[i * 4 + j];
            st += tv[i * 4 + j];
        }
        for (int j = 0; j < 4; j++) {
            pv[i * 4 + j] /= sp;
            tv[i * 4 + j] /= st;
        }
    }
    mt_array P, T, Z, L, r[5] = {{0}};
    jt_arr(&P, MT_FLOAT64, 2, s, pv);
    jt_arr(&T, MT_FLOAT64, 2, s, tv);
    jt_arr(&Z, MT_FLOAT64, 2, s, zv);
    jt_arr(&L, MT_INT64, 1, s3, lv);
    mt_var vars[4] = {p, t, z, l};
    const mt_array *arrs[4] = {&P, &T, &Z, &L};
    jt_eval(g, 5, outs, 4, vars, arrs, r);
    double e0[3], e1[3], e2[3], e3[3], e4[12];
    for (int i = 0; i < 3; i++) {
        double m = -INFINITY, se = 0;
        for (int j = 0; j < 4; j++) m = fmax(m, zv[i * 4 + j]);
        for (int j = 0; j < 4; j++) se += exp(zv[i * 4 + j] - m);
        double lse = m + log(se);
        e0[i] = e2[i] = 0;
        for (int j = 0; j < 4; j++) {
            e0[i] -= tv[i * 4 + j] * log(pv[i * 4 + j]);
            e2[i] -= tv[i * 4 + j] * (zv[i * 4 + j] - lse);
        }
        e1[i] = -log(pv[i * 4 + (int)lv[i]]);
        e3[i] = lse - zv[i * 4 + (int)lv[i]];
    }
    for (int k = 0; k < 12; k++) {
        double x = zv[k];
        e4[k] = (x > 0 ? x + log1p(exp(-x)) : log1p(exp(x))) - x * tv[k];
    }
    jt_expect(&r[0], MT_FLOAT64, 1, s3, e0);
    jt_expect(&r[1], MT_FLOAT64, 1, s3, e1);
    jt_expect(&r[2], MT_FLOAT64, 1, s3, e2);
    jt_expect(&r[3], MT_FLOAT64, 1, s3, e3);
    jt_expect(&r[4], MT_FLOAT64, 2, s, e4);
    clear_all(r, 5);
    /* A label out of range is a run-time ERR_RANGE naming it. */
    double bad[3] = {1, 4, 0};
    mt_array LB;
    jt_arr(&LB, MT_INT64, 1, s3, bad);
    const mt_array *arrs2[4] = {&P, &T, &Z, &LB};
    mt_var o1 = outs[1];
    MT_CHECK_ERR(mt_graph_eval(g, 1, &o1, 4, vars, arrs2, jt_dev(), r), MT_ERR_RANGE,
                 "label 4 is out of range");
    mt_array_clear(&LB);
    mt_array_clear(&P);
    mt_array_clear(&T);
    mt_array_clear(&Z);
    mt_array_clear(&L);
    mt_graph_free(g);
}

/* softmax_crossentropy_labels_dx(gz, x, y) = gz * (softmax(x) - onehot(y)) along the axis
 * against plain loops: class axis last (the host row pass) and first (the generic kernel),
 * a broadcast gz, int64 and int32 labels, a +inf and a huge row; labels out of range match no
 * class, as in one_hot. */
MT_TEST(softmax_crossentropy_labels_dx_values)
{
    mt_graph *g = new_graph();
    int64_t s[2] = {3, 4}, st[2] = {4, 3}, s3[1] = {3}, s1[1] = {1};
    mt_var x = mt_graph_placeholder(g, "x", MT_FLOAT64, 2, s);
    mt_var xt = mt_graph_placeholder(g, "xt", MT_FLOAT64, 2, st);
    mt_var gz = mt_graph_placeholder(g, "gz", MT_FLOAT64, 1, s3);
    mt_var g1 = mt_graph_placeholder(g, "g1", MT_FLOAT64, 1, s1);
    mt_var l = mt_graph_placeholder(g, "l", MT_INT64, 1, s3);
    mt_var l32 = mt_graph_placeholder(g, "l32", MT_INT32, 1, s3);
    mt_var outs[4] = {mt_graph_softmax_crossentropy_labels_dx(g, gz, x, l, 1),
                      mt_graph_softmax_crossentropy_labels_dx(g, g1, x, l32, 1),
                      mt_graph_softmax_crossentropy_labels_dx(g, gz, xt, l, 0),
                      mt_graph_softmax_crossentropy_labels_dx(g, g1, xt, l32, 0)};
    double xv[12] = {1000, 0, -1000, 5, 1, 2, INFINITY, 4, -1, 0, 1e300, 0.5}, xtv[12];
    double gv[3] = {0.5, -2, 0.25}, g1v[1] = {1.5}, lv[3] = {1, 3, 0};
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++) xtv[j * 3 + i] = xv[i * 4 + j];
    mt_array X, XT, GZ, G1, L, L32, r[4] = {{0}};
    jt_arr(&X, MT_FLOAT64, 2, s, xv);
    jt_arr(&XT, MT_FLOAT64, 2, st, xtv);
    jt_arr(&GZ, MT_FLOAT64, 1, s3, gv);
    jt_arr(&G1, MT_FLOAT64, 1, s1, g1v);
    jt_arr(&L, MT_INT64, 1, s3, lv);
    jt_arr(&L32, MT_INT32, 1, s3, lv);
    mt_var vars[6] = {x, xt, gz, g1, l, l32};
    const mt_array *arrs[6] = {&X, &XT, &GZ, &G1, &L, &L32};
    jt_eval(g, 4, outs, 6, vars, arrs, r);
    double e[2][12], et[2][12];
    for (int i = 0; i < 3; i++) {
        double m = -INFINITY, se = 0;
        for (int j = 0; j < 4; j++) m = fmax(m, xv[i * 4 + j]);
        if (!isfinite(m)) m = 0;
        for (int j = 0; j < 4; j++) se += exp(xv[i * 4 + j] - m);
        for (int j = 0; j < 4; j++) {
            double d = exp(xv[i * 4 + j] - m) / se - (j == (int)lv[i]);
            e[0][i * 4 + j] = gv[i] * d;
            e[1][i * 4 + j] = g1v[0] * d;
            et[0][j * 3 + i] = e[0][i * 4 + j];
            et[1][j * 3 + i] = e[1][i * 4 + j];
        }
    }
    jt_expect(&r[0], MT_FLOAT64, 2, s, e[0]);
    jt_expect(&r[1], MT_FLOAT64, 2, s, e[1]);
    jt_expect(&r[2], MT_FLOAT64, 2, st, et[0]);
    jt_expect(&r[3], MT_FLOAT64, 2, st, et[1]);
    clear_all(r, 4);
    /* labels out of range (4, -2) match no class: that row is gz * softmax */
    double bad[3] = {1, 0, 4}, neg[3] = {1, -2, 0};
    mt_array LB, LN;
    jt_arr(&LB, MT_INT64, 1, s3, bad);
    jt_arr(&LN, MT_INT32, 1, s3, neg);
    const mt_array *arrs2[6] = {&X, &XT, &GZ, &G1, &LB, &LN};
    jt_eval(g, 4, outs, 6, vars, arrs2, r);
    for (int i = 0; i < 3; i++) {
        double m = -INFINITY, se = 0;
        for (int j = 0; j < 4; j++) m = fmax(m, xv[i * 4 + j]);
        if (!isfinite(m)) m = 0;
        for (int j = 0; j < 4; j++) se += exp(xv[i * 4 + j] - m);
        for (int j = 0; j < 4; j++) {
            double p = exp(xv[i * 4 + j] - m) / se;
            e[0][i * 4 + j] = gv[i] * (p - (j == (int)bad[i]));
            e[1][i * 4 + j] = g1v[0] * (p - (j == (int)neg[i]));
            et[0][j * 3 + i] = e[0][i * 4 + j];
            et[1][j * 3 + i] = e[1][i * 4 + j];
        }
    }
    jt_expect(&r[0], MT_FLOAT64, 2, s, e[0]);
    jt_expect(&r[1], MT_FLOAT64, 2, s, e[1]);
    jt_expect(&r[2], MT_FLOAT64, 2, st, et[0]);
    jt_expect(&r[3], MT_FLOAT64, 2, st, et[1]);
    clear_all(r, 4);
    mt_array_clear(&LB);
    mt_array_clear(&LN);
    mt_array_clear(&X);
    mt_array_clear(&XT);
    mt_array_clear(&GZ);
    mt_array_clear(&G1);
    mt_array_clear(&L);
    mt_array_clear(&L32);
    mt_graph_free(g);
}

/* An output gradient whose size was unknown when the graph was built does not broadcast at run
 * time (as in elementwise ops, whose graph this op replaces): size 1 against a batch of 3 is an
 * error naming it; the matching size runs. */
MT_TEST(softmax_crossentropy_labels_dx_no_late_broadcast)
{
    mt_graph *g = new_graph();
    int64_t sx[2] = {-1, 4}, sg[1] = {-1};
    mt_var x = mt_graph_placeholder(g, "x", MT_FLOAT64, 2, sx);
    mt_var gz = mt_graph_placeholder(g, "gz", MT_FLOAT64, 1, sg);
    mt_var l = mt_graph_placeholder(g, "l", MT_INT64, 1, sg);
    mt_var out = mt_graph_softmax_crossentropy_labels_dx(g, gz, x, l, 1);
    MT_CHECK_OK(mt_graph_status(g));
    int64_t s[2] = {3, 4}, s3[1] = {3}, s1[1] = {1};
    double xv[12] = {0}, gv[3] = {1, 1, 1}, lv[3] = {0, 1, 2};
    mt_array X, G3, G1, L, r = {0};
    jt_arr(&X, MT_FLOAT64, 2, s, xv);
    jt_arr(&G3, MT_FLOAT64, 1, s3, gv);
    jt_arr(&G1, MT_FLOAT64, 1, s1, gv);
    jt_arr(&L, MT_INT64, 1, s3, lv);
    mt_var vars[3] = {x, gz, l};
    const mt_array *ok[3] = {&X, &G3, &L}, *bad[3] = {&X, &G1, &L};
    MT_CHECK_OK(mt_graph_eval(g, 1, &out, 3, vars, ok, jt_dev(), &r));
    mt_array_clear(&r);
    MT_CHECK_ERR(mt_graph_eval(g, 1, &out, 3, vars, bad, jt_dev(), &r), MT_ERR_SHAPE,
                 "cannot broadcast to 3 at run time");
    mt_array_clear(&X);
    mt_array_clear(&G3);
    mt_array_clear(&G1);
    mt_array_clear(&L);
    mt_graph_free(g);
}

/* ---------------------------------------------------------------- indexing */

MT_TEST(gather_scatter_add_duplicates)
{
    mt_graph *g = new_graph();
    int64_t sx[2] = {5, 3}, si[1] = {4}, si2[2] = {2, 2}, sy[2] = {4, 3};
    mt_var x = mt_graph_placeholder(g, "x", MT_FLOAT64, 2, sx);
    mt_var idx = mt_graph_placeholder(g, "idx", MT_INT32, 1, si);
    mt_var idx2 = mt_graph_placeholder(g, "idx2", MT_INT64, 2, si2);
    mt_var y = mt_graph_placeholder(g, "y", MT_FLOAT64, 2, sy);
    mt_var outs[3] = {mt_graph_gather(g, x, idx, 0), mt_graph_gather(g, x, idx2, 1),
                      mt_graph_scatter_add(g, x, idx, y, 0)};
    double xv[15], iv[4] = {0, 2, 2, -1}, i2v[4] = {2, 0, -3, 1}, yv[12];
    for (int k = 0; k < 15; k++) xv[k] = k;
    for (int k = 0; k < 12; k++) yv[k] = 100 * (k + 1);
    mt_array X, I, I2, Y, r[3] = {{0}};
    jt_arr(&X, MT_FLOAT64, 2, sx, xv);
    jt_arr(&I, MT_INT32, 1, si, iv);
    jt_arr(&I2, MT_INT64, 2, si2, i2v);
    jt_arr(&Y, MT_FLOAT64, 2, sy, yv);
    mt_var vars[4] = {x, idx, idx2, y};
    const mt_array *arrs[4] = {&X, &I, &I2, &Y};
    jt_eval(g, 3, outs, 4, vars, arrs, r);
    double e0[12], e1[20], e2[15];
    for (int j = 0; j < 4; j++) {
        int row = (int)iv[j] < 0 ? (int)iv[j] + 5 : (int)iv[j];
        for (int c = 0; c < 3; c++) e0[j * 3 + c] = xv[row * 3 + c];
    }
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 4; j++) {
            int col = (int)i2v[j] < 0 ? (int)i2v[j] + 3 : (int)i2v[j];
            e1[i * 4 + j] = xv[i * 3 + col];
        }
    memcpy(e2, xv, sizeof e2);
    for (int j = 0; j < 4; j++) {
        int row = (int)iv[j] < 0 ? (int)iv[j] + 5 : (int)iv[j];
        for (int c = 0; c < 3; c++) e2[row * 3 + c] += yv[j * 3 + c]; /* duplicates add */
    }
    int64_t so1[3] = {5, 2, 2};
    jt_expect(&r[0], MT_FLOAT64, 2, sy, e0);
    jt_expect(&r[1], MT_FLOAT64, 3, so1, e1);
    jt_expect(&r[2], MT_FLOAT64, 2, sx, e2);
    clear_all(r, 3);
    double badv[4] = {0, 5, 1, 1};
    mt_array BAD;
    jt_arr(&BAD, MT_INT32, 1, si, badv);
    const mt_array *arrs2[4] = {&X, &BAD, &I2, &Y};
    MT_CHECK_ERR(mt_graph_eval(g, 1, &outs[0], 4, vars, arrs2, jt_dev(), r), MT_ERR_RANGE,
                 "index 5 is out of range for axis 0 of size 5");
    mt_array_clear(&BAD);
    mt_array_clear(&X);
    mt_array_clear(&I);
    mt_array_clear(&I2);
    mt_array_clear(&Y);
    mt_graph_free(g);
}

MT_TEST(set_inc_subtensor)
{
    mt_graph *g = new_graph();
    int64_t sx[2] = {4, 5}, sy[2] = {2, 3};
    mt_var x = mt_graph_placeholder(g, "x", MT_FLOAT64, 2, sx);
    mt_var y = mt_graph_placeholder(g, "y", MT_FLOAT64, 2, sy);
    mt_idx it1[2] = {mt_idx_slice(1, 3, 1), mt_idx_slice(MT_IDX_NONE, MT_IDX_NONE, 2)};
    mt_idx it2[2] = {mt_idx_slice(MT_IDX_NONE, MT_IDX_NONE, -1), mt_idx_int(1)};
    mt_idx it3[1] = {mt_idx_int(-2)};
    mt_var outs[3] = {mt_graph_set_subtensor(g, x, 2, it1, y),
                      mt_graph_inc_subtensor(g, x, 2, it2, mt_graph_literal_float(g, 10.0)),
                      mt_graph_inc_subtensor(g, x, 1, it3, mt_graph_literal_int(g, -1))};
    double xv[20], yv[6];
    for (int k = 0; k < 20; k++) xv[k] = k;
    for (int k = 0; k < 6; k++) yv[k] = -(k + 1);
    mt_array X, Y, r[3] = {{0}};
    jt_arr(&X, MT_FLOAT64, 2, sx, xv);
    jt_arr(&Y, MT_FLOAT64, 2, sy, yv);
    mt_var vars[2] = {x, y};
    const mt_array *arrs[2] = {&X, &Y};
    jt_eval(g, 3, outs, 2, vars, arrs, r);
    double e0[20], e1[20], e2[20];
    memcpy(e0, xv, sizeof e0);
    memcpy(e1, xv, sizeof e1);
    memcpy(e2, xv, sizeof e2);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++) e0[(1 + i) * 5 + 2 * j] = yv[i * 3 + j];
    for (int i = 0; i < 4; i++) e1[i * 5 + 1] += 10;
    for (int j = 0; j < 5; j++) e2[2 * 5 + j] -= 1;
    jt_expect(&r[0], MT_FLOAT64, 2, sx, e0);
    jt_expect(&r[1], MT_FLOAT64, 2, sx, e1);
    jt_expect(&r[2], MT_FLOAT64, 2, sx, e2);
    /* The input is never modified. */
    jt_expect(&X, MT_FLOAT64, 2, sx, xv);
    clear_all(r, 3);
    mt_array_clear(&X);
    mt_array_clear(&Y);
    mt_graph_free(g);
}

MT_TEST(one_hot_arange_concat)
{
    mt_graph *g = new_graph();
    int64_t sl[2] = {2, 3}, sa[2] = {2, 3}, sb[2] = {2, 1};
    mt_var l = mt_graph_placeholder(g, "l", MT_INT64, 2, sl);
    mt_var a = mt_graph_placeholder(g, "a", MT_FLOAT32, 2, sa);
    mt_var b = mt_graph_placeholder(g, "b", MT_FLOAT64, 2, sb);
    mt_var cat[2] = {a, b}, st[2] = {a, a};
    mt_var outs[6] = {mt_graph_one_hot(g, l, 4, MT_FLOAT32),
                      mt_graph_arange(g, MT_FLOAT64, 0, 1, 0.25),
                      mt_graph_arange(g, MT_INT32, 5, -3, -2),
                      mt_graph_concatenate(g, 2, cat, 1),
                      mt_graph_stack(g, 2, st, 0),
                      mt_graph_one_hot(g, l, 0, MT_INT8)};
    double lv[6] = {0, 3, -1, 4, 2, 2}, av[6] = {1, 2, 3, 4, 5, 6}, bv[2] = {-1, -2};
    mt_array L, A, B, r[6] = {{0}};
    jt_arr(&L, MT_INT64, 2, sl, lv);
    jt_arr(&A, MT_FLOAT32, 2, sa, av);
    jt_arr(&B, MT_FLOAT64, 2, sb, bv);
    mt_var vars[3] = {l, a, b};
    const mt_array *arrs[3] = {&L, &A, &B};
    jt_eval(g, 6, outs, 3, vars, arrs, r);
    double e0[24] = {0}, e1[4] = {0, 0.25, 0.5, 0.75}, e2[4] = {5, 3, 1, -1}, e3[8], e4[12];
    for (int k = 0; k < 6; k++)
        if (lv[k] >= 0 && lv[k] < 4) e0[k * 4 + (int)lv[k]] = 1;
    for (int i = 0; i < 2; i++) {
        for (int j = 0; j < 3; j++) e3[i * 4 + j] = av[i * 3 + j];
        e3[i * 4 + 3] = bv[i];
    }
    memcpy(e4, av, sizeof av);
    memcpy(e4 + 6, av, sizeof av);
    int64_t s0[3] = {2, 3, 4}, s4[1] = {4}, s3[2] = {2, 4}, s5[3] = {2, 2, 3}, s6[3] = {2, 3, 0};
    jt_expect(&r[0], MT_FLOAT32, 3, s0, e0);
    jt_expect(&r[1], MT_FLOAT64, 1, s4, e1);
    jt_expect(&r[2], MT_INT32, 1, s4, e2);
    jt_expect(&r[3], MT_FLOAT64, 2, s3, e3);
    jt_expect(&r[4], MT_FLOAT32, 3, s5, e4);
    jt_expect(&r[5], MT_INT8, 3, s6, NULL);
    clear_all(r, 6);
    mt_array_clear(&L);
    mt_array_clear(&A);
    mt_array_clear(&B);
    mt_graph_free(g);
}

MT_TEST(split_parts)
{
    mt_graph *g = new_graph();
    int64_t s[2] = {2, 6}, sizes[3] = {1, 3, -1};
    mt_var x = mt_graph_placeholder(g, "x", MT_FLOAT64, 2, s);
    mt_var parts[3];
    MT_CHECK_OK(mt_graph_split(g, x, 1, 3, sizes, parts));
    double xv[12];
    for (int k = 0; k < 12; k++) xv[k] = k;
    mt_array X, r[3] = {{0}};
    jt_arr(&X, MT_FLOAT64, 2, s, xv);
    const mt_array *arrs[1] = {&X};
    jt_eval(g, 3, parts, 1, &x, arrs, r);
    double e0[2] = {0, 6}, e1[6] = {1, 2, 3, 7, 8, 9}, e2[4] = {4, 5, 10, 11};
    int64_t s0[2] = {2, 1}, s1[2] = {2, 3}, s2[2] = {2, 2};
    jt_expect(&r[0], MT_FLOAT64, 2, s0, e0);
    jt_expect(&r[1], MT_FLOAT64, 2, s1, e1);
    jt_expect(&r[2], MT_FLOAT64, 2, s2, e2);
    clear_all(r, 3);
    mt_array_clear(&X);
    mt_graph_free(g);
}

/* ---------------------------------------------------------------- random */

static void stats(const double *v, int n, double *mean, double *sd, double *lo, double *hi)
{
    double s = 0, q = 0;
    *lo = INFINITY;
    *hi = -INFINITY;
    for (int i = 0; i < n; i++) {
        s += v[i];
        *lo = fmin(*lo, v[i]);
        *hi = fmax(*hi, v[i]);
    }
    *mean = s / n;
    for (int i = 0; i < n; i++) q += (v[i] - *mean) * (v[i] - *mean);
    *sd = sqrt(q / (n - 1));
}

MT_TEST(random_reproducible)
{
    enum { N = 4000 };
    mt_graph *g = new_graph();
    mt_graph_set_seed(g, 1234);
    int64_t s[1] = {N};
    mt_var outs[4] = {mt_graph_random_uniform(g, MT_FLOAT32, 1, s, -2, 3),
                      mt_graph_random_normal(g, MT_FLOAT64, 1, s, 1, 2),
                      mt_graph_random_binomial(g, MT_INT32, 1, s, 5, 0.3),
                      mt_graph_random_uniform(g, MT_FLOAT32, 1, s, -2, 3)};
    mt_function *f = NULL, *f2 = NULL;
    mt_function_options o;
    mt_function_options_init(&o);
    o.mode = MT_MODE_FAST_COMPILE;
    MT_CHECK_OK(mt_function_new(&f, g, 0, NULL, 4, outs, 0, NULL, jt_dev(), &o));
    MT_CHECK_OK(mt_function_new(&f2, g, 0, NULL, 4, outs, 0, NULL, jt_dev(), &o));
    mt_array r1[4] = {{0}}, r2[4] = {{0}}, q[4] = {{0}};
    MT_CHECK_OK(mt_function_call(f, 0, NULL, 4, r1));
    MT_CHECK_OK(mt_function_call(f, 0, NULL, 4, r2));
    MT_CHECK_EQ_INT(mt_function_rng_counter(f), 2);
    double *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b);
    double mean, sd, lo, hi;
    jt_read(&r1[0], a, N);
    stats(a, N, &mean, &sd, &lo, &hi);
    MT_CHECK(lo >= -2 && hi < 3);
    MT_CHECK_CLOSE(mean, 0.5, 0.1, 0);
    MT_CHECK_CLOSE(sd, 5 / sqrt(12.0), 0.1, 0);
    jt_read(&r1[1], a, N);
    stats(a, N, &mean, &sd, &lo, &hi);
    MT_CHECK_CLOSE(mean, 1, 0.15, 0);
    MT_CHECK_CLOSE(sd, 2, 0.15, 0);
    jt_read(&r1[2], a, N);
    stats(a, N, &mean, &sd, &lo, &hi);
    MT_CHECK(lo >= 0 && hi <= 5);
    MT_CHECK_CLOSE(mean, 1.5, 0.1, 0);
    MT_CHECK_CLOSE(sd, sqrt(5 * 0.3 * 0.7), 0.1, 0);
    /* Two random nodes with the same parameters draw different numbers. */
    jt_read(&r1[0], a, N);
    jt_read(&r1[3], b, N);
    MT_CHECK(memcmp(a, b, N * sizeof *a) != 0);
    /* Successive calls differ; a fresh function repeats the sequence; the counter restarts it. */
    for (int k = 0; k < 3; k++) {
        jt_read(&r1[k], a, N);
        jt_read(&r2[k], b, N);
        MT_CHECK(memcmp(a, b, N * sizeof *a) != 0);
    }
    MT_CHECK_OK(mt_function_call(f2, 0, NULL, 4, q));
    for (int k = 0; k < 4; k++) {
        jt_read(&r1[k], a, N);
        jt_read(&q[k], b, N);
        MT_CHECK(memcmp(a, b, N * sizeof *a) == 0);
    }
    clear_all(q, 4);
    mt_function_set_rng_counter(f2, 1);
    MT_CHECK_OK(mt_function_call(f2, 0, NULL, 4, q));
    for (int k = 0; k < 4; k++) {
        jt_read(&r2[k], a, N);
        jt_read(&q[k], b, N);
        MT_CHECK(memcmp(a, b, N * sizeof *a) == 0);
    }
    clear_all(q, 4);
    clear_all(r1, 4);
    clear_all(r2, 4);
    free(a);
    free(b);
    mt_function_free(f);
    mt_function_free(f2);
    mt_graph_free(g);
}

MT_TEST(random_shape_from_variable)
{
    mt_graph *g = new_graph();
    int64_t s[2] = {-1, 3};
    mt_var x = mt_graph_placeholder(g, "x", MT_FLOAT32, 2, s);
    mt_var mask = mt_graph_random(g, MT_RANDOM_BINOMIAL, MT_FLOAT32, 0, NULL, x, 1, 0.5);
    mt_var y = mt_graph_mul(g, x, mask);
    double xv[12];
    for (int k = 0; k < 12; k++) xv[k] = k + 1;
    int64_t ds[2] = {4, 3};
    mt_array X, r[2] = {{0}};
    jt_arr(&X, MT_FLOAT32, 2, ds, xv);
    const mt_array *arrs[1] = {&X};
    mt_var outs[2] = {mask, y};
    jt_eval(g, 2, outs, 1, &x, arrs, r);
    double m[12], yv[12], e[12];
    jt_read(&r[0], m, 12);
    jt_read(&r[1], yv, 12);
    for (int k = 0; k < 12; k++) {
        MT_CHECK(m[k] == 0 || m[k] == 1);
        e[k] = xv[k] * m[k];
    }
    jt_expect(&r[1], MT_FLOAT32, 2, ds, e);
    clear_all(r, 2);
    mt_array_clear(&X);
    mt_graph_free(g);
}

/* ---------------------------------------------------------------- identities and checks */

MT_TEST(size_identities_shape_assert)
{
    mt_graph *g = new_graph();
    int64_t s[2] = {-1, 3}, want[2] = {4, -1};
    mt_var x = mt_graph_placeholder(g, "x", MT_FLOAT64, 2, s);
    int32_t ax0[1] = {0};
    mt_var outs[5] = {mt_graph_size_of(g, x, 0, NULL), mt_graph_size_of(g, x, 1, ax0),
                      mt_graph_stop_gradient(g, x), mt_graph_grad_clip(g, x, -1, 1),
                      mt_graph_shape_assert(g, x, 2, want)};
    double xv[15]; /* 4x3 below, then 5x3 for the failing call */
    for (int k = 0; k < 15; k++) xv[k] = k - 6;
    int64_t ds[2] = {4, 3};
    mt_array X, r[5] = {{0}};
    jt_arr(&X, MT_FLOAT64, 2, ds, xv);
    const mt_array *arrs[1] = {&X};
    jt_eval(g, 5, outs, 1, &x, arrs, r);
    double n12 = 12, n4 = 4;
    jt_expect(&r[0], MT_INT64, 0, NULL, &n12);
    jt_expect(&r[1], MT_INT64, 0, NULL, &n4);
    jt_expect(&r[2], MT_FLOAT64, 2, ds, xv);
    jt_expect(&r[3], MT_FLOAT64, 2, ds, xv);
    jt_expect(&r[4], MT_FLOAT64, 2, ds, xv);
    clear_all(r, 5);
    mt_array_clear(&X);
    int64_t ds2[2] = {5, 3};
    jt_arr(&X, MT_FLOAT64, 2, ds2, xv);
    arrs[0] = &X;
    MT_CHECK_ERR(mt_graph_eval(g, 1, &outs[4], 1, &x, arrs, jt_dev(), r), MT_ERR_SHAPE, "(5, 3)");
    MT_CHECK(strstr(mt_last_error(), "(4, ?)") != NULL);
    MT_CHECK(strstr(mt_last_error(), "test_jit.c") != NULL);
    mt_array_clear(&X);
    mt_graph_free(g);
}

MT_TEST(runtime_shape_check_names_shapes_and_provenance)
{
    mt_graph *g = new_graph();
    int64_t s[1] = {-1};
    mt_var a = mt_graph_placeholder(g, "a", MT_FLOAT64, 1, s);
    mt_var b = mt_graph_placeholder(g, "b", MT_FLOAT64, 1, s);
    mt_var y = mt_graph_add(MT_AT(g), a, b);
    MT_CHECK(mt_graph_flags(g, y) & MT_NODE_RTCHECK);
    double v[4] = {1, 2, 3, 4};
    int64_t s3[1] = {3}, s4[1] = {4};
    mt_array A, B, r = {0};
    jt_arr(&A, MT_FLOAT64, 1, s3, v);
    jt_arr(&B, MT_FLOAT64, 1, s4, v);
    mt_var vars[2] = {a, b};
    const mt_array *arrs[2] = {&A, &B};
    MT_CHECK_ERR(mt_graph_eval(g, 1, &y, 2, vars, arrs, jt_dev(), &r), MT_ERR_SHAPE, "(3,)");
    const char *msg = mt_last_error();
    MT_CHECK(strstr(msg, "(4,)") != NULL);
    MT_CHECK(strstr(msg, "test_jit.c:") != NULL);
    MT_CHECK(r.buf == NULL);
    /* Equal sizes pass. */
    mt_array_clear(&B);
    jt_arr(&B, MT_FLOAT64, 1, s3, v);
    jt_eval(g, 1, &y, 2, vars, arrs, &r);
    double e[3] = {2, 4, 6};
    jt_expect(&r, MT_FLOAT64, 1, s3, e);
    mt_array_clear(&r);
    mt_array_clear(&A);
    mt_array_clear(&B);
    mt_graph_free(g);
}

MT_TEST(float16_softmax_and_sum)
{
    mt_graph *g = new_graph();
    int64_t s[2] = {2, 4};
    mt_var x = mt_graph_placeholder(g, "x", MT_FLOAT16, 2, s);
    mt_var outs[2] = {mt_graph_softmax(g, x, 1), mt_graph_sum(g, x, 0, NULL, false)};
    double xv[8] = {0.5, 1, -1, 2, 600, 600, -3, 0}; /* exp(600) overflows float16/32 */
    mt_array X, r[2] = {{0}};
    jt_arr(&X, MT_FLOAT16, 2, s, xv);
    const mt_array *arrs[1] = {&X};
    jt_eval(g, 2, outs, 1, &x, arrs, r);
    double e0[8], sm = 0;
    for (int i = 0; i < 2; i++) {
        double m = -INFINITY, se = 0;
        for (int j = 0; j < 4; j++) m = fmax(m, xv[i * 4 + j]);
        for (int j = 0; j < 4; j++) se += exp(xv[i * 4 + j] - m);
        for (int j = 0; j < 4; j++) e0[i * 4 + j] = exp(xv[i * 4 + j] - m) / se;
    }
    for (int k = 0; k < 8; k++) sm += xv[k];
    jt_expect(&r[0], MT_FLOAT16, 2, s, e0);
    jt_expect_tol(&r[1], MT_FLOAT16, 0, NULL, &sm, 0, 1e-3);
    clear_all(r, 2);
    mt_array_clear(&X);
    mt_graph_free(g);
}

/* SCAN: the final state of a cumulative sum over the rows of x [2, 3] (values: test_scan.c). */
static mt_var scan_op(mt_graph *g, mt_var x)
{
    mt_graph *body = new_graph();
    int64_t s3[1] = {3};
    mt_var bx = mt_graph_placeholder(body, "x", MT_FLOAT64, 1, s3);
    mt_var bh = mt_graph_placeholder(body, "h", MT_FLOAT64, 1, s3);
    mt_var bin[2] = {bx, bh}, bout[1] = {mt_graph_add(body, bh, bx)}, fin = MT_VAR_NONE;
    mt_var ops[2] = {x, mt_graph_zeros(g, MT_FLOAT64, 1, s3)};
    mt_scan_spec spec = {1, 1, 0, 0, -1, false};
    MT_CHECK_OK(mt_graph_scan(g, body, &spec, bin, bout, ops, NULL, &fin));
    mt_graph_free(body);
    return fin;
}

/* One output using conv2d, its two gradient ops, pool2d and pool2d_grad on img [1, 1, 2, 3]
 * (values: test_conv.c). */
static mt_var conv_ops(mt_graph *g, mt_var img)
{
    mt_var c = mt_graph_conv2d(g, img, img, NULL, NULL); /* [1, 1, 1, 1] */
    mt_var gi = mt_graph_conv2d_grad_input(g, c, img, img, NULL, NULL);
    mt_var gw = mt_graph_conv2d_grad_weight(g, img, c, (int32_t[]){2, 3}, NULL, NULL);
    mt_var p = mt_graph_pool2d(g, gw, MT_POOL_MAX, (int32_t[]){2, 2}, (int32_t[]){1, 1}, NULL,
                               false);
    return mt_graph_add(g, gi, mt_graph_pool2d_grad(g, gw, p, p, MT_POOL_MAX, (int32_t[]){2, 2},
                                                    (int32_t[]){1, 1}, NULL, false));
}

/* Every op of MT_OP_MAP is produced by some builder here and runs through the reference
 * executor (the values are checked by the cases above; here: that each runs). */
MT_TEST(every_op_runs)
{
    mt_graph *g = new_graph();
    int64_t s[2] = {2, 3}, s3[1] = {3}, s2[1] = {2}, spec[2] = {3, 2}, any[2] = {-1, 3};
    mt_var x = mt_graph_placeholder(g, "x", MT_FLOAT64, 2, s);
    mt_var l = mt_graph_placeholder(g, "l", MT_INT32, 1, s2);
    mt_var k = mt_graph_placeholder(g, "k", MT_INT64, 1, s3);
    mt_var w = mt_graph_placeholder(g, "w", MT_FLOAT64, 2, spec);
    double cv[3] = {1, 2, 3};
    int32_t ax1[1] = {1};
    mt_idx it[2] = {mt_idx_all(), mt_idx_slice(0, 2, 1)};
    mt_var sm = mt_graph_softmax(g, x, 1);
    mt_var cat[2] = {x, x};
    mt_var outs[] = {
        mt_graph_add(g, x, mt_graph_constant(g, MT_FLOAT64, 1, s3, cv)), /* ELEMWISE, CONST */
        mt_graph_sum(g, x, 1, ax1, false),                              /* REDUCE */
        mt_graph_logsumexp(g, x, 1, ax1, false),                        /* LOGSUMEXP */
        mt_graph_size_of(g, mt_graph_placeholder(g, "u", MT_FLOAT64, 2, any), 0, NULL),
        sm,                                                             /* SOFTMAX */
        mt_graph_logsoftmax(g, x, 1),
        mt_graph_crossentropy(g, sm, sm, 1),
        mt_graph_crossentropy_labels(g, sm, l, 1),
        mt_graph_softmax_crossentropy(g, x, sm, 1),
        mt_graph_softmax_crossentropy_labels(g, x, l, 1),
        mt_graph_softmax_crossentropy_labels_dx(g, mt_graph_sum(g, x, 1, ax1, false), x, l, 1),
        mt_graph_matmul(g, x, w),
        mt_graph_gemm(g, x, w, mt_graph_zeros(g, MT_FLOAT64, 2, (int64_t[]){2, 2}), 1, 0, false, false),
        mt_graph_reshape(g, x, 2, spec),
        mt_graph_transpose(g, x, NULL),                                 /* DIMSHUFFLE */
        mt_graph_broadcast_to(g, mt_graph_expand_dims(g, x, 0), 3, (int64_t[]){2, 2, 3}),
        mt_graph_broadcast_like(g, mt_graph_constant(g, MT_FLOAT64, 1, s3, cv), x),
        mt_graph_concatenate(g, 2, cat, 0),
        mt_graph_index(g, x, 2, it),                                    /* SLICE */
        mt_graph_set_subtensor(g, x, 2, it, mt_graph_literal_float(g, 0)),
        mt_graph_inc_subtensor(g, x, 2, it, mt_graph_literal_float(g, 1)),
        mt_graph_gather(g, x, k, 1),
        mt_graph_scatter_add(g, x, l, mt_graph_ones(g, MT_FLOAT64, 2, (int64_t[]){2, 2}), 1),
        mt_graph_one_hot(g, l, 3, MT_FLOAT32),
        mt_graph_arange(g, MT_INT64, 0, 5, 1),
        mt_graph_random_uniform(g, MT_FLOAT32, 1, s3, 0, 1),
        mt_graph_stop_gradient(g, x),
        mt_graph_grad_clip(g, x, -1, 1),
        mt_graph_shape_assert(g, mt_graph_find_placeholder(g, "u"), 2, (int64_t[]){4, -1}),
        conv_ops(g, mt_graph_reshape(g, x, 4, (int64_t[]){1, 1, 2, 3})), /* CONV2D*, POOL2D* */
        scan_op(g, x),                                                  /* SCAN */
    };
    int32_t no = NELEM(outs);
    MT_CHECK_OK(mt_graph_status(g));
    bool seen[MT_OP_COUNT] = {false};
    mt_var *order = NULL;
    int32_t n = 0;
    MT_CHECK_OK(mt_graph_toposort(g, no, outs, &order, &n));
    for (int32_t i = 0; i < n; i++) seen[mt_graph_op(g, order[i])] = true;
    mt_free(order);
    /* ALLREDUCE needs collective hooks: tests/jit/test_collective.c runs it */
    for (int op = 0; op < MT_OP_COUNT; op++)
        if (!seen[op] && op != MT_OP_ALLREDUCE)
            mt_test_fail(__FILE__, __LINE__, "op %s not covered", mt_op_name((mt_op)op));
    double xv[6] = {1, -2, 3, 0.5, 0, -1}, lv[2] = {2, 0}, kv[3] = {2, -1, 0}, wv[6], uv[12] = {0};
    jt_fill(wv, 6, -1, 1, 3);
    int64_t su[2] = {4, 3};
    mt_array X, L, K, W, U, r[32] = {{0}};
    jt_arr(&X, MT_FLOAT64, 2, s, xv);
    jt_arr(&L, MT_INT32, 1, s2, lv);
    jt_arr(&K, MT_INT64, 1, s3, kv);
    jt_arr(&W, MT_FLOAT64, 2, spec, wv);
    jt_arr(&U, MT_FLOAT64, 2, su, uv);
    MT_CHECK_ERR(mt_graph_eval(g, no, outs, 4, (mt_var[]){x, l, k, w},
                               (const mt_array *[]){&X, &L, &K, &W}, jt_dev(), r),
                 MT_ERR_INVALID, "'u'");
    (void)uv;
    mt_var vars[5] = {x, l, k, w, mt_graph_find_placeholder(g, "u")};
    const mt_array *arrs[5] = {&X, &L, &K, &W, &U};
    jt_eval(g, no, outs, 5, vars, arrs, r);
    double twelve = 12;
    jt_expect(&r[3], MT_INT64, 0, NULL, &twelve);
    clear_all(r, no);
    mt_array_clear(&X);
    mt_array_clear(&L);
    mt_array_clear(&K);
    mt_array_clear(&W);
    mt_array_clear(&U);
    mt_graph_free(g);
}
