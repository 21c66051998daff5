/* Value equivalence of every rewrite rule: each expression is evaluated unrewritten (the
 * reference executor, MT_MODE_FAST_COMPILE, runs no rewrites) and after mt_graph_optimize (which
 * must have applied the rule under test), on random inputs and on edge inputs (+-0, +-inf,
 * NaN, denormals, dtype limits, huge |x|). An element passes when the rewritten value equals the
 * unrewritten one (per-dtype tolerance, NaN equals NaN), or, where the unrewritten graph is
 * unstable (overflow, cancellation), when it equals an exact reference computed here in long
 * double. The named stability cases of the issue are checked exactly (log(1 + 1e-30), log(
 * sigmoid(-800)), log(softmax([0, 1000, -1000])), ...). Constant folding is checked bit for bit
 * against the kernels for every scalar op and many dtypes. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "jit_ref.h"
#include "mltrain/graph_grad.h"
#include "mltrain/graph_rewrite.h"

#define NELEM(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* ---------------------------------------------------------------- helpers */

static mt_graph *new_graph(void)
{
    mt_graph *g = NULL;
    MT_CHECK_OK(mt_graph_new(&g));
    return g;
}

/* Unrewritten evaluation (FAST_COMPILE runs no rewrites). */
static void eval_at(const char *file, int line, mt_graph *g, int32_t nout, const mt_var *outs,
                    int32_t nin, const mt_var *vars, const mt_array *const *arrs, mt_array *res)
{
    mt_status st = mt_graph_eval(g, nout, outs, nin, vars, arrs, jt_dev(), res);
    if (st != MT_OK)
        mt_test_fail(file, line, "mt_graph_eval: %s: %s", mt_status_name(st), mt_last_error());
}
#define EVAL(g, nout, outs, nin, vars, arrs, res) \
    eval_at(__FILE__, __LINE__, g, nout, outs, nin, vars, arrs, res)

/* Optimizes outs in place and checks that `rule` (if not NULL) was applied. */
static void optimize_at(const char *file, int line, mt_graph *g, int32_t n, mt_var *outs,
                        const char *rule)
{
    mt_rewrite_options o;
    mt_rewrite_options_init(&o);
    o.verify = true;
    mt_rewrite_stats st;
    mt_status s = mt_graph_optimize(g, n, outs, &o, &st);
    if (s != MT_OK) mt_test_fail(file, line, "optimize: %s", mt_last_error());
    if (rule && mt_rewrite_stats_count(&st, rule) < 1) {
        mt_strbuf sb;
        mt_strbuf_init(&sb);
        mt_rewrite_stats_format(&st, &sb);
        mt_test_fail(file, line, "rule %s was not applied: %s", rule, sb.data ? sb.data : "");
    }
}
#define OPTIMIZE(g, n, outs, rule) optimize_at(__FILE__, __LINE__, g, n, outs, rule)

static double *read_all(const mt_array *a)
{
    size_t n = (size_t)mt_array_size(a);
    double *v = malloc((n + 1) * sizeof(double));
    MT_CHECK(v != NULL);
    jt_read(a, v, n);
    return v;
}

/* got[i] passes when it equals orig[i] (or, where that fails, ref[i] if ref is given). */
static void compare_at(const char *file, int line, const char *what, mt_dtype dt, size_t n,
                       const double *in, const double *orig, const double *got,
                       const double *ref, double scale)
{
    double atol, rtol;
    jt_tol(dt, &atol, &rtol);
    atol *= scale;
    rtol *= scale;
    size_t via_ref = 0;
    for (size_t i = 0; i < n; i++) {
        if (mt_test_close(got[i], orig[i], atol, rtol)) continue;
        if (ref && mt_test_close(got[i], ref[i], atol, rtol)) {
            via_ref++;
            continue;
        }
        mt_test_fail(file, line, "%s: element %zu (input %.17g): rewritten %.17g, unrewritten "
                     "%.17g, exact %.17g", what, i, in ? in[i] : NAN, got[i], orig[i],
                     ref ? ref[i] : NAN);
    }
    (void)via_ref;
}
#define COMPARE(what, dt, n, in, orig, got, ref, scale) \
    compare_at(__FILE__, __LINE__, what, dt, n, in, orig, got, ref, scale)

/* Edge inputs of every test (converted to the dtype under test). */
static const double k_edges[] = {
    0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0, 1e-30, -1e-30, 1e-300, 5e-324, -5e-324,
    1e-310, 1e-40, 1e-8, -1e-8, 0.6931, -0.6931, 3.0, -3.0, 20.0, -20.0, 37.0, -37.0, 40.0,
    -40.0, 88.0, -88.0, 89.0, -89.0, 700.0, -700.0, 710.0, -745.0, 800.0, -800.0, 1e4, -1e4,
    1e30, -1e30, DBL_MAX, -DBL_MAX, FLT_MAX, -FLT_MAX, INFINITY, -INFINITY, NAN, 127.0,
    -128.0, 255.0, 65504.0, 2147483647.0, -2147483648.0, 9.2e18, -9.2e18};

/* edges + random values in [-3, 3] and [-40, 40]; returns the count. */
static int test_inputs(double *v, int cap, uint64_t seed)
{
    int n = NELEM(k_edges);
    memcpy(v, k_edges, sizeof(k_edges));
    MT_CHECK(cap >= n + 96);
    jt_fill(v + n, 64, -3, 3, seed);
    jt_fill(v + n + 64, 32, -40, 40, seed + 1);
    return n + 96;
}

/* The values as the dtype holds them. */
static void round_to(mt_dtype dt, double *v, int n)
{
    for (int i = 0; i < n; i++) {
        unsigned char buf[8];
        mt_dtype_convert(buf, dt, 0, &v[i], MT_FLOAT64, 0, 1);
        mt_dtype_convert(&v[i], MT_FLOAT64, 0, buf, dt, 0, 1);
    }
}

/* ---------------------------------------------------------------- elementwise drivers */

typedef mt_var (*build1_fn)(mt_graph *g, mt_var x);
typedef long double (*ref1_fn)(long double x);

/* f(x) unrewritten vs rewritten (rule must apply), with ref (may be NULL) where they differ. */
static void unary_case(const char *file, int line, const char *rule, mt_dtype dt, build1_fn f,
                       ref1_fn ref, double scale)
{
    double xs[256];
    int n = test_inputs(xs, 256, 7);
    round_to(dt, xs, n);
    mt_graph *g = new_graph();
    int64_t dims[1] = {n};
    mt_var x = mt_graph_placeholder(g, "x", dt, 1, dims);
    mt_var y = f(g, x), y2 = y;
    MT_CHECK(y != MT_VAR_NONE);
    mt_array in = {0}, r0 = {0}, r1 = {0};
    jt_arr(&in, dt, 1, dims, xs);
    const mt_array *ins[1] = {&in};
    eval_at(file, line, g, 1, &y, 1, &x, ins, &r0);
    optimize_at(file, line, g, 1, &y2, rule);
    eval_at(file, line, g, 1, &y2, 1, &x, ins, &r1);
    double *o = read_all(&r0), *w = read_all(&r1), rf[256];
    mt_dtype odt = r0.dtype;
    MT_CHECK_EQ_INT(r1.dtype, odt);
    for (int i = 0; ref && i < n; i++) rf[i] = (double)ref((long double)xs[i]);
    if (ref) round_to(odt, rf, n);
    compare_at(file, line, rule, odt, (size_t)n, xs, o, w, ref ? rf : NULL, scale);
    free(o);
    free(w);
    mt_array_clear(&in);
    mt_array_clear(&r0);
    mt_array_clear(&r1);
    mt_graph_free(g);
}
#define UNARY(rule, dt, f, ref, scale) unary_case(__FILE__, __LINE__, rule, dt, f, ref, scale)

typedef mt_var (*build2_fn)(mt_graph *g, mt_var x, mt_var y);
typedef long double (*ref2_fn)(long double x, long double y);

/* f(x, y) over all pairs of 24 edge values plus 200 random pairs. */
static void binary_case(const char *file, int line, const char *rule, mt_dtype dt, build2_fn f,
                        ref2_fn ref, double scale)
{
    static const double e[] = {0.0, -0.0, 1.0, -1.0, 1e-30, 5e-324, 3.0, -3.0, 40.0, -40.0,
                               710.0, -745.0, 800.0, -800.0, 1e4, -1e4, 1e30, DBL_MAX,
                               -DBL_MAX, INFINITY, -INFINITY, NAN, 0.25, 1e300};
    enum { NE = NELEM(e), N = NE * NE + 200 };
    static double xs[N], ys[N], rf[N];
    for (int i = 0; i < NE; i++)
        for (int j = 0; j < NE; j++) {
            xs[i * NE + j] = e[i];
            ys[i * NE + j] = e[j];
        }
    jt_fill(xs + NE * NE, 200, -30, 30, 11);
    jt_fill(ys + NE * NE, 200, -30, 30, 12);
    round_to(dt, xs, N);
    round_to(dt, ys, N);
    mt_graph *g = new_graph();
    int64_t dims[1] = {N};
    mt_var x = mt_graph_placeholder(g, "x", dt, 1, dims);
    mt_var y = mt_graph_placeholder(g, "y", dt, 1, dims);
    mt_var z = f(g, x, y), z2 = z;
    MT_CHECK(z != MT_VAR_NONE);
    mt_array ax = {0}, ay = {0}, r0 = {0}, r1 = {0};
    jt_arr(&ax, dt, 1, dims, xs);
    jt_arr(&ay, dt, 1, dims, ys);
    mt_var vars[2] = {x, y};
    const mt_array *ins[2] = {&ax, &ay};
    eval_at(file, line, g, 1, &z, 2, vars, ins, &r0);
    optimize_at(file, line, g, 1, &z2, rule);
    eval_at(file, line, g, 1, &z2, 2, vars, ins, &r1);
    double *o = read_all(&r0), *w = read_all(&r1);
    for (int i = 0; ref && i < N; i++) rf[i] = (double)ref((long double)xs[i], (long double)ys[i]);
    if (ref) round_to(r0.dtype, rf, N);
    compare_at(file, line, rule, r0.dtype, N, xs, o, w, ref ? rf : NULL, scale);
    free(o);
    free(w);
    mt_array_clear(&ax);
    mt_array_clear(&ay);
    mt_array_clear(&r0);
    mt_array_clear(&r1);
    mt_graph_free(g);
}
#define BINARY(rule, dt, f, ref, scale) binary_case(__FILE__, __LINE__, rule, dt, f, ref, scale)

/* Evaluates y(x) for one 1-D input, rewritten or not, into out (n values). */
static void eval_1d(mt_graph *g, mt_var x, mt_var y, mt_dtype dt, const double *xs, int n,
                    double *out)
{
    int64_t dims[1] = {n};
    mt_array in = {0}, r = {0};
    jt_arr(&in, dt, 1, dims, xs);
    const mt_array *ins[1] = {&in};
    EVAL(g, 1, &y, 1, &x, ins, &r);
    jt_read(&r, out, (size_t)mt_array_size(&r));
    mt_array_clear(&in);
    mt_array_clear(&r);
}

/* ---------------------------------------------------------------- exact references */

static long double r_log1p(long double x) { return log1pl(x); }
static long double r_log1m(long double x) { return log1pl(-x); }
static long double r_expm1(long double x) { return expm1l(x); }
static long double r_softplus(long double x)
{
    return x > 30 ? x + log1pl(expl(-x)) : log1pl(expl(x));
}
static long double r_log1mexp(long double x)
{
    return x > -0.693147180559945309417L ? logl(-expm1l(x)) : log1pl(-expl(x));
}
static long double r_logsig(long double x) { return -r_softplus(-x); }
static long double r_log1msig(long double x) { return -r_softplus(x); }
static long double r_sigmoid(long double x)
{
    return x >= 0 ? 1.0L / (1.0L + expl(-x)) : expl(x) / (1.0L + expl(x));
}
static long double r_sigmoid_neg(long double x) { return r_sigmoid(-x); }
static long double r_logaddexp(long double a, long double b)
{
    if (isnan(a) || isnan(b)) return NAN;
    long double m = a > b ? a : b;
    if (isinf(m)) return m;
    return m + log1pl(expl(-fabsl(a - b)));
}
static long double r_div(long double a, long double b) { return a / b; }
static long double r_mul(long double a, long double b) { return a * b; }

/* ---------------------------------------------------------------- builders */

static mt_var one(mt_graph *g) { return mt_graph_literal_float(g, 1.0); }
static mt_var b_log1p(mt_graph *g, mt_var x) { return mt_graph_log(g, mt_graph_add(g, one(g), x)); }
static mt_var b_log1p_r(mt_graph *g, mt_var x)
{
    return mt_graph_log(g, mt_graph_add(g, x, one(g)));
}
static mt_var b_log1m(mt_graph *g, mt_var x) { return mt_graph_log(g, mt_graph_sub(g, one(g), x)); }
static mt_var b_expm1(mt_graph *g, mt_var x) { return mt_graph_sub(g, mt_graph_exp(g, x), one(g)); }
static mt_var b_log1mexp_a(mt_graph *g, mt_var x)
{
    return mt_graph_log(g, mt_graph_sub(g, one(g), mt_graph_exp(g, x)));
}
static mt_var b_log1mexp_b(mt_graph *g, mt_var x)
{
    return mt_graph_log1p(g, mt_graph_neg(g, mt_graph_exp(g, x)));
}
static mt_var b_log1mexp_c(mt_graph *g, mt_var x)
{
    return mt_graph_log(g, mt_graph_neg(g, mt_graph_expm1(g, x)));
}
static mt_var b_softplus_a(mt_graph *g, mt_var x)
{
    return mt_graph_log(g, mt_graph_add(g, one(g), mt_graph_exp(g, x)));
}
static mt_var b_softplus_b(mt_graph *g, mt_var x) { return mt_graph_log1p(g, mt_graph_exp(g, x)); }
static mt_var b_logsig(mt_graph *g, mt_var x) { return mt_graph_log(g, mt_graph_sigmoid(g, x)); }
static mt_var b_log1msig_a(mt_graph *g, mt_var x)
{
    return mt_graph_log(g, mt_graph_sub(g, one(g), mt_graph_sigmoid(g, x)));
}
static mt_var b_log1msig_b(mt_graph *g, mt_var x)
{
    return mt_graph_log1p(g, mt_graph_neg(g, mt_graph_sigmoid(g, x)));
}
static mt_var b_sig_a(mt_graph *g, mt_var x)
{
    mt_var e = mt_graph_exp(g, x);
    return mt_graph_div(g, e, mt_graph_add(g, one(g), e));
}
static mt_var b_sig_b(mt_graph *g, mt_var x)
{
    return mt_graph_div(g, one(g), mt_graph_add(g, one(g), mt_graph_exp(g, mt_graph_neg(g, x))));
}
static mt_var b_sig_c(mt_graph *g, mt_var x)
{
    return mt_graph_div(g, one(g), mt_graph_add(g, mt_graph_exp(g, x), one(g)));
}
static mt_var b_sig_d(mt_graph *g, mt_var x)
{
    return mt_graph_reciprocal(g, mt_graph_add(g, one(g), mt_graph_exp(g, mt_graph_neg(g, x))));
}
static mt_var b_logaddexp(mt_graph *g, mt_var a, mt_var b)
{
    return mt_graph_log(g, mt_graph_add(g, mt_graph_exp(g, a), mt_graph_exp(g, b)));
}
static mt_var b_mul_recip(mt_graph *g, mt_var a, mt_var b)
{
    return mt_graph_mul(g, a, mt_graph_reciprocal(g, b));
}
static mt_var b_div_recip(mt_graph *g, mt_var a, mt_var b)
{
    return mt_graph_div(g, a, mt_graph_reciprocal(g, b));
}

/* ---------------------------------------------------------------- stability: elementwise */

MT_TEST(log1p_values)
{
    UNARY("log1p", MT_FLOAT64, b_log1p, r_log1p, 1);
    UNARY("log1p", MT_FLOAT32, b_log1p_r, r_log1p, 1);
    UNARY("log1p", MT_FLOAT64, b_log1m, r_log1m, 1);
    UNARY("log1p", MT_FLOAT16, b_log1m, r_log1m, 1);
    /* the issue's example: log(1 + x) at 1e-30 is 1e-30 after the rewrite */
    mt_graph *g = new_graph();
    mt_var x = mt_graph_placeholder(g, "x", MT_FLOAT64, 1, (const int64_t[]){2});
    mt_var y = b_log1p(g, x);
    OPTIMIZE(g, 1, &y, "log1p");
    double in[2] = {1e-30, -1e-20}, out[2];
    eval_1d(g, x, y, MT_FLOAT64, in, 2, out);
    MT_CHECK(out[0] == 1e-30 && out[1] == -1e-20);
    mt_graph_free(g);
}

MT_TEST(expm1_log1mexp_values)
{
    UNARY("expm1", MT_FLOAT64, b_expm1, r_expm1, 1);
    UNARY("expm1", MT_FLOAT32, b_expm1, r_expm1, 1);
    UNARY("log1mexp", MT_FLOAT64, b_log1mexp_a, r_log1mexp, 1);
    UNARY("log1mexp", MT_FLOAT64, b_log1mexp_b, r_log1mexp, 1);
    UNARY("log1mexp", MT_FLOAT32, b_log1mexp_c, r_log1mexp, 1);
}

MT_TEST(softplus_values)
{
    UNARY("softplus", MT_FLOAT64, b_softplus_a, r_softplus, 1);
    UNARY("softplus", MT_FLOAT32, b_softplus_b, r_softplus, 1);
    UNARY("softplus", MT_BFLOAT16, b_softplus_a, r_softplus, 1);
}

MT_TEST(log_sigmoid_values)
{
    UNARY("log_sigmoid", MT_FLOAT64, b_logsig, r_logsig, 1);
    UNARY("log_sigmoid", MT_FLOAT32, b_logsig, r_logsig, 1);
    UNARY("log1m_sigmoid", MT_FLOAT64, b_log1msig_a, r_log1msig, 1);
    UNARY("log1m_sigmoid", MT_FLOAT32, b_log1msig_b, r_log1msig, 1);
    /* log(sigmoid(-800)) = -800 and log(1 - sigmoid(800)) = -800 */
    mt_graph *g = new_graph();
    mt_var x = mt_graph_placeholder(g, "x", MT_FLOAT64, 1, (const int64_t[]){1});
    mt_var ys[2] = {b_logsig(g, x), b_log1msig_a(g, x)};
    OPTIMIZE(g, 2, ys, "log_sigmoid");
    double out[1];
    eval_1d(g, x, ys[0], MT_FLOAT64, (const double[]){-800}, 1, out);
    MT_CHECK(out[0] == -800.0);
    eval_1d(g, x, ys[1], MT_FLOAT64, (const double[]){800}, 1, out);
    MT_CHECK(out[0] == -800.0);
    mt_graph_free(g);
}

MT_TEST(sigmoid_values)
{
    UNARY("sigmoid", MT_FLOAT64, b_sig_a, r_sigmoid, 1);
    UNARY("sigmoid", MT_FLOAT32, b_sig_b, r_sigmoid, 1);
    UNARY("sigmoid", MT_FLOAT64, b_sig_c, r_sigmoid_neg, 1);
    UNARY("sigmoid", MT_FLOAT64, b_sig_d, r_sigmoid, 1);
}

MT_TEST(logaddexp_values)
{
    BINARY("logaddexp", MT_FLOAT64, b_logaddexp, r_logaddexp, 1);
    BINARY("logaddexp", MT_FLOAT32, b_logaddexp, r_logaddexp, 1);
    /* log(exp(x) + exp(y)) at 10000 = 10000 + log 2 */
    mt_graph *g = new_graph();
    int64_t d1[1] = {1};
    mt_var a = mt_graph_placeholder(g, "a", MT_FLOAT64, 1, d1);
    mt_var b = mt_graph_placeholder(g, "b", MT_FLOAT64, 1, d1);
    mt_var z = b_logaddexp(g, a, b);
    OPTIMIZE(g, 1, &z, "logaddexp");
    mt_array A = {0}, B = {0}, R = {0};
    jt_arr(&A, MT_FLOAT64, 1, d1, (const double[]){10000});
    jt_arr(&B, MT_FLOAT64, 1, d1, (const double[]){10000});
    mt_var vars[2] = {a, b};
    const mt_array *ins[2] = {&A, &B};
    EVAL(g, 1, &z, 2, vars, ins, &R);
    double out;
    jt_read(&R, &out, 1);
    MT_CHECK_CLOSE(out, 10000.0 + 0.69314718055994530942, 0, 1e-15);
    mt_array_clear(&A);
    mt_array_clear(&B);
    mt_array_clear(&R);
    mt_graph_free(g);
}

/* ---------------------------------------------------------------- stability: softmax family */

/* Exact row references in long double. */
static long double lse_row(const double *x, int n)
{
    long double m = -INFINITY;
    for (int i = 0; i < n; i++) {
        if (isnan(x[i])) return NAN;
        if (x[i] > m) m = x[i];
    }
    if (isinf(m)) return m;
    long double s = 0;
    for (int i = 0; i < n; i++) s += expl((long double)x[i] - m);
    return m + logl(s);
}

enum { ROWS = 7, COLS = 4 };
static const double k_rows[ROWS][COLS] = {
    {0.5, -1.25, 2.0, 0.0},       {1000, 1000, -3, 2},          {0, 1000, -1000, 5},
    {-800, -805, -900, -1e4},     {1e-30, -1e-30, 0.0, -0.0},   {88.5, -88.5, 700, 710},
    {-INFINITY, 0, 1, 2},
};

/* outs[k] = build(x) for a (ROWS, COLS) input; compared with exact row references. */
static void rows_case(const char *file, int line, const char *rule, mt_dtype dt,
                      mt_var (*f)(mt_graph *, mt_var), void (*ref)(const double *, int, double *),
                      bool per_row_scalar)
{
    double xs[ROWS * COLS];
    memcpy(xs, k_rows, sizeof(xs));
    round_to(dt, xs, ROWS * COLS);
    mt_graph *g = new_graph();
    int64_t dims[2] = {ROWS, COLS};
    mt_var x = mt_graph_placeholder(g, "x", dt, 2, dims);
    mt_var y = f(g, x), y2 = y;
    mt_array in = {0}, r0 = {0}, r1 = {0};
    jt_arr(&in, dt, 2, dims, xs);
    const mt_array *ins[1] = {&in};
    eval_at(file, line, g, 1, &y, 1, &x, ins, &r0);
    optimize_at(file, line, g, 1, &y2, rule);
    eval_at(file, line, g, 1, &y2, 1, &x, ins, &r1);
    double *o = read_all(&r0), *w = read_all(&r1);
    int per = per_row_scalar ? 1 : COLS;
    double rf[ROWS * COLS];
    for (int r = 0; r < ROWS; r++) ref(xs + r * COLS, COLS, rf + r * per);
    round_to(r0.dtype, rf, ROWS * per);
    compare_at(file, line, rule, r0.dtype, (size_t)(ROWS * per), NULL, o, w, rf, 1);
    free(o);
    free(w);
    mt_array_clear(&in);
    mt_array_clear(&r0);
    mt_array_clear(&r1);
    mt_graph_free(g);
}

static void ref_logsoftmax(const double *x, int n, double *out)
{
    long double l = lse_row(x, n);
    for (int i = 0; i < n; i++) out[i] = (double)((long double)x[i] - l);
}
static void ref_softmax(const double *x, int n, double *out)
{
    long double l = lse_row(x, n);
    for (int i = 0; i < n; i++) out[i] = (double)expl((long double)x[i] - l);
}
static void ref_lse(const double *x, int n, double *out)
{
    *out = (double)lse_row(x, n);
}
static mt_var b_logsoftmax(mt_graph *g, mt_var x)
{
    return mt_graph_log(g, mt_graph_softmax(g, x, 1));
}
static mt_var b_softmax_keep(mt_graph *g, mt_var x)
{
    mt_var e = mt_graph_exp(g, x);
    return mt_graph_div(g, e, mt_graph_sum(g, e, 1, (const int32_t[]){1}, true));
}
static mt_var b_lse(mt_graph *g, mt_var x)
{
    return mt_graph_log(g, mt_graph_sum(g, mt_graph_exp(g, x), 1, (const int32_t[]){1}, false));
}

MT_TEST(softmax_family_values)
{
    rows_case(__FILE__, __LINE__, "logsoftmax", MT_FLOAT64, b_logsoftmax, ref_logsoftmax, false);
    rows_case(__FILE__, __LINE__, "logsoftmax", MT_FLOAT32, b_logsoftmax, ref_logsoftmax, false);
    rows_case(__FILE__, __LINE__, "softmax", MT_FLOAT64, b_softmax_keep, ref_softmax, false);
    rows_case(__FILE__, __LINE__, "softmax", MT_FLOAT32, b_softmax_keep, ref_softmax, false);
    rows_case(__FILE__, __LINE__, "logsumexp", MT_FLOAT64, b_lse, ref_lse, true);
    rows_case(__FILE__, __LINE__, "logsumexp", MT_FLOAT32, b_lse, ref_lse, true);
}

MT_TEST(softmax_family_issue_examples)
{
    mt_graph *g = new_graph();
    int64_t d3[1] = {3}, d2[1] = {2};
    mt_var x = mt_graph_placeholder(g, "x", MT_FLOAT64, 1, d3);
    mt_var v = mt_graph_placeholder(g, "v", MT_FLOAT64, 1, d2);
    mt_var e = mt_graph_exp(g, v);
    mt_var outs[3] = {
        mt_graph_log(g, mt_graph_softmax(g, x, 0)),                           /* logsoftmax */
        mt_graph_div(g, e, mt_graph_sum(g, e, 0, NULL, false)),               /* softmax */
        mt_graph_log(g, mt_graph_sum(g, e, 0, NULL, false)),                  /* logsumexp */
    };
    OPTIMIZE(g, 3, outs, "logsoftmax");
    double r3[3], r2[2], r1;
    eval_1d(g, x, outs[0], MT_FLOAT64, (const double[]){0, 1000, -1000}, 3, r3);
    MT_CHECK(r3[0] == -1000.0 && r3[1] == 0.0 && r3[2] == -2000.0);
    eval_1d(g, v, outs[1], MT_FLOAT64, (const double[]){1000, 1000}, 2, r2);
    MT_CHECK(r2[0] == 0.5 && r2[1] == 0.5);
    eval_1d(g, v, outs[2], MT_FLOAT64, (const double[]){-800, -805}, 2, &r1);
    MT_CHECK_CLOSE(r1, -800.0 + log1p(exp(-5.0)), 0, 2e-16);
    mt_graph_free(g);
}

/* ---------------------------------------------------------------- crossentropy */

MT_TEST(crossentropy_values)
{
    enum { N = 8, K = 4 };
    double xs[N * K] = {0.5, -1.25, 2.0, 0.0,   1000, 1000, -3, 2,    0, 1000, -1000, 5,
                        -800, -805, -900, -1e4, 3, 1, 2, 0,           -INFINITY, 0, 1, 2,
                        INFINITY, 0, 1, 2,      NAN, 0, 1, 2};
    double ts[N * K];
    jt_fill(ts, N * K, 0, 1, 5);
    for (int r = 0; r < N; r++) { /* rows of target probabilities */
        double s = 0;
        for (int k = 0; k < K; k++) s += ts[r * K + k];
        for (int k = 0; k < K; k++) ts[r * K + k] /= s;
    }
    double ys[N] = {0, 1, 2, 3, 2, 1, 1, 0};
    mt_graph *g = new_graph();
    int64_t dx[2] = {N, K}, dy[1] = {N};
    mt_var x = mt_graph_placeholder(g, "x", MT_FLOAT64, 2, dx);
    mt_var t = mt_graph_placeholder(g, "t", MT_FLOAT64, 2, dx);
    mt_var y = mt_graph_placeholder(g, "y", MT_INT64, 1, dy);
    mt_var sm = mt_graph_softmax(g, x, 1);
    mt_var oh = mt_graph_one_hot(g, y, K, MT_FLOAT64);
    int32_t ax1[1] = {1};
    mt_var outs[4] = {
        mt_graph_crossentropy(g, sm, t, 1),
        mt_graph_crossentropy_labels(g, sm, y, 1),
        mt_graph_neg(g, mt_graph_sum(g, mt_graph_mul(g, t, mt_graph_log(g, sm)), 1, ax1, false)),
        mt_graph_neg(g, mt_graph_log(g, mt_graph_sum(g, mt_graph_mul(g, sm, oh), 1, ax1, false))),
    };
    mt_var opt[4];
    memcpy(opt, outs, sizeof(opt));
    OPTIMIZE(g, 4, opt, "xent_softmax");
    MT_CHECK(mt_graph_op(g, opt[1]) == MT_OP_SOFTMAX_XENT_LABELS);
    MT_CHECK(mt_graph_op(g, opt[2]) == MT_OP_SOFTMAX_XENT);
    mt_array X = {0}, T = {0}, Y = {0}, r0[4] = {{0}}, r1[4] = {{0}};
    jt_arr(&X, MT_FLOAT64, 2, dx, xs);
    jt_arr(&T, MT_FLOAT64, 2, dx, ts);
    jt_arr(&Y, MT_INT64, 1, dy, ys);
    mt_var vars[3] = {x, t, y};
    const mt_array *ins[3] = {&X, &T, &Y};
    EVAL(g, 4, outs, 3, vars, ins, r0);
    EVAL(g, 4, opt, 3, vars, ins, r1);
    /* exact references */
    double ref_t[N], ref_y[N];
    for (int r = 0; r < N; r++) {
        long double l = lse_row(xs + r * K, K), s = 0;
        for (int k = 0; k < K; k++) {
            long double ls = (long double)xs[r * K + k] - l;
            s += ts[r * K + k] * ls;
        }
        ref_t[r] = (double)-s;
        ref_y[r] = (double)(l - (long double)xs[r * K + (int)ys[r]]);
    }
    const double *refs[4] = {ref_t, ref_y, ref_t, ref_y};
    for (int i = 0; i < 4; i++) {
        double *o = read_all(&r0[i]), *w = read_all(&r1[i]);
        COMPARE("crossentropy", MT_FLOAT64, N, NULL, o, w, refs[i], 10);
        free(o);
        free(w);
        mt_array_clear(&r0[i]);
        mt_array_clear(&r1[i]);
    }
    mt_array_clear(&X);
    mt_array_clear(&T);
    mt_array_clear(&Y);
    mt_graph_free(g);
}

MT_TEST(crossentropy_onehot_guards)
{
    /* the gather form with labels out of range (original: -log(0) = inf) and rows with +inf or
     * NaN logits (original: NaN): the guarded fused form must give the same */
    enum { N = 6, K = 3 };
    double xs[N * K] = {1, 2, 3,  1, 2, 3,  1, 2, 3,  INFINITY, 0, 1,  NAN, 0, 1,  -1, 5, 0.5};
    double ys[N] = {0, -1, 3, 1, 2, 1};
    mt_graph *g = new_graph();
    int64_t dx[2] = {N, K}, dy[1] = {N};
    mt_var x = mt_graph_placeholder(g, "x", MT_FLOAT32, 2, dx);
    mt_var y = mt_graph_placeholder(g, "y", MT_INT32, 1, dy);
    mt_var oh = mt_graph_one_hot(g, y, K, MT_FLOAT32);
    mt_var z = mt_graph_neg(
        g, mt_graph_log(g, mt_graph_sum(g, mt_graph_mul(g, mt_graph_softmax(g, x, -1), oh), 1,
                                        (const int32_t[]){-1}, false)));
    mt_var z2 = z;
    OPTIMIZE(g, 1, &z2, "xent_onehot");
    mt_array X = {0}, Y = {0}, r0 = {0}, r1 = {0};
    jt_arr(&X, MT_FLOAT32, 2, dx, xs);
    jt_arr(&Y, MT_INT32, 1, dy, ys);
    mt_var vars[2] = {x, y};
    const mt_array *ins[2] = {&X, &Y};
    EVAL(g, 1, &z, 2, vars, ins, &r0);
    EVAL(g, 1, &z2, 2, vars, ins, &r1);
    double *o = read_all(&r0), *w = read_all(&r1);
    MT_CHECK(isinf(o[1]) && isinf(w[1]) && isinf(w[2]));
    MT_CHECK(isnan(o[3]) && isnan(w[3]) && isnan(w[4]));
    COMPARE("xent_onehot", MT_FLOAT32, N, NULL, o, w, NULL, 1);
    free(o);
    free(w);
    mt_array_clear(&X);
    mt_array_clear(&Y);
    mt_array_clear(&r0);
    mt_array_clear(&r1);
    mt_graph_free(g);
}

MT_TEST(crossentropy_gradient_values)
{
    /* d/dx sum(crossentropy_labels(softmax(x), y)) = softmax(x) - onehot(y), and with target
     * probabilities softmax(x) * sum(t) - t; the unrewritten gradient divides by a probability
     * that underflows for large logits */
    enum { N = 5, K = 4 };
    double xs[N * K] = {0.5, -1.25, 2.0, 0.0,   0, 1000, -1000, 5,   -800, -805, -900, -1e4,
                        3, 1, 2, 0,            1e4, -1e4, 0, 1};
    double ys[N] = {0, 2, 3, 1, 1};
    double ts[N * K];
    jt_fill(ts, N * K, 0, 1, 9);
    mt_graph *g = new_graph();
    int64_t dx[2] = {N, K}, dy[1] = {N};
    mt_var x = mt_graph_placeholder(g, "x", MT_FLOAT64, 2, dx);
    mt_var y = mt_graph_placeholder(g, "y", MT_INT64, 1, dy);
    mt_var t = mt_graph_placeholder(g, "t", MT_FLOAT64, 2, dx);
    mt_var sm = mt_graph_softmax(g, x, 1);
    mt_var c[2] = {mt_graph_sum(g, mt_graph_crossentropy_labels(g, sm, y, 1), 0, NULL, false),
                   mt_graph_sum(g, mt_graph_crossentropy(g, sm, t, 1), 0, NULL, false)};
    mt_var gr[2], opt[2];
    MT_CHECK_OK(mt_graph_grad(g, c[0], 1, &x, &gr[0], NULL));
    MT_CHECK_OK(mt_graph_grad(g, c[1], 1, &x, &gr[1], NULL));
    memcpy(opt, gr, sizeof(opt));
    OPTIMIZE(g, 2, opt, "xent_softmax_grad");
    mt_array X = {0}, Y = {0}, T = {0}, r0[2] = {{0}}, r1[2] = {{0}};
    jt_arr(&X, MT_FLOAT64, 2, dx, xs);
    jt_arr(&Y, MT_INT64, 1, dy, ys);
    jt_arr(&T, MT_FLOAT64, 2, dx, ts);
    mt_var vars[3] = {x, y, t};
    const mt_array *ins[3] = {&X, &Y, &T};
    EVAL(g, 2, gr, 3, vars, ins, r0);
    EVAL(g, 2, opt, 3, vars, ins, r1);
    double ref[2][N * K];
    for (int r = 0; r < N; r++) {
        long double l = lse_row(xs + r * K, K), st = 0;
        for (int k = 0; k < K; k++) st += ts[r * K + k];
        for (int k = 0; k < K; k++) {
            long double p = expl((long double)xs[r * K + k] - l);
            ref[0][r * K + k] = (double)(p - (k == (int)ys[r] ? 1 : 0));
            ref[1][r * K + k] = (double)(p * st - ts[r * K + k]);
        }
    }
    for (int i = 0; i < 2; i++) {
        double *o = read_all(&r0[i]), *w = read_all(&r1[i]);
        MT_CHECK(!isnan(w[1 * K + 2])); /* the unrewritten gradient is NaN there */
        COMPARE("crossentropy gradient", MT_FLOAT64, N * K, xs, o, w, ref[i], 10);
        free(o);
        free(w);
        mt_array_clear(&r0[i]);
        mt_array_clear(&r1[i]);
    }
    mt_array_clear(&X);
    mt_array_clear(&Y);
    mt_array_clear(&T);
    mt_graph_free(g);
}

/* ---------------------------------------------------------------- fused labels gradient */

/* Rows of logits for xent_softmax_dx: ordinary values, +-inf, NaN, huge, denormals, +-0,
 * all-equal rows, rows far below zero. */
enum { DX_K = 5, DX_N = 16 };
static const double k_dx_rows[DX_N][DX_K] = {
    {0.5, -1.25, 2.0, 0.0, 3.0},          {1000, 1000, -3, 2, 0},
    {INFINITY, 0, 1, 2, 3},               {-INFINITY, 0, 1, 2, 3},
    {NAN, 0, 1, 2, 3},                    {1e30, -1e30, 0, 1, 2},
    {-1e30, -1e30, -1e30, -1e30, -1e30},  {5e-324, -5e-324, 1e-310, 1e-40, 0},
    {0.0, -0.0, 0.0, -0.0, 0.0},          {7, 7, 7, 7, 7},
    {INFINITY, INFINITY, INFINITY, INFINITY, INFINITY},
    {-INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY},
    {-800, -805, -900, -1e4, -750},       {88, 89, -88, 3, 1e-8},
    {-3.5, 2.25, 0.125, -0.5, 1.75},      {20, -20, 40, -40, 0.3}};
static const double k_dx_labels[DX_N] = {0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 2};

/* Layouts of the logits handed to the compiled gradient. */
typedef enum dx_layout {
    DX_ROWS = 0,  /* [N, K] C-contiguous, class axis last (the host row pass) */
    DX_COLS,      /* [K, N] C-contiguous, class axis 0 */
    DX_STRIDED,   /* [N, K] view of a [K, N] array (class axis last, not contiguous) */
} dx_layout;

/* The gradient of cost(softmax_crossentropy_labels(x, y)) compiled in FAST_RUN with the rule
 * on or off ("xent_softmax_dx" disabled). */
static mt_function *dx_function(mt_graph *g, mt_var x, mt_var y, mt_var gx, bool on)
{
    mt_function_options o;
    mt_function_options_init(&o);
    const char *off[1] = {"xent_softmax_dx"};
    o.n_disabled_rewrites = on ? 0 : 1;
    o.disabled_rewrites = off;
    mt_function *f = NULL;
    mt_var ins[2] = {x, y};
    MT_CHECK_OK(mt_function_new(&f, g, 2, ins, 1, &gx, 0, NULL, jt_dev(), &o));
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    MT_CHECK_OK(mt_function_print(f, &sb));
    bool fused = strstr(sb.data, "softmax_crossentropy_labels_dx") != NULL;
    bool onehot = strstr(sb.data, "one_hot") != NULL;
    if (fused != on || onehot == on)
        mt_test_fail(__FILE__, __LINE__, "rule %s but the schedule is:\n%s", on ? "on" : "off",
                     sb.data);
    mt_strbuf_deinit(&sb);
    return f;
}

typedef struct dx_case {
    mt_graph *g;
    mt_var x, y, gx;
    mt_function *on, *off;
    mt_array xa, ya; /* the arguments: xa may be a view (DX_STRIDED) */
    int32_t axis;
} dx_case;

static void dx_case_init(dx_case *c, mt_dtype dt, mt_dtype ldt, dx_layout lay, bool mean,
                         bool static_batch, const double *labels)
{
    memset(c, 0, sizeof *c);
    c->g = new_graph();
    c->axis = lay == DX_COLS ? 0 : 1;
    int64_t n = static_batch ? DX_N : -1;
    int64_t xs[2] = {lay == DX_COLS ? DX_K : n, lay == DX_COLS ? n : DX_K}, ys[1] = {n};
    c->x = mt_graph_placeholder(c->g, "x", dt, 2, xs);
    c->y = mt_graph_placeholder(c->g, "y", ldt, 1, ys);
    mt_var l = mt_graph_softmax_crossentropy_labels(c->g, c->x, c->y, c->axis);
    mt_var cost = mean ? mt_graph_mean(c->g, l, 0, NULL, false)
                       : mt_graph_sum(c->g, l, 0, NULL, false);
    MT_CHECK_OK(mt_graph_grad(c->g, cost, 1, &c->x, &c->gx, NULL));
    c->on = dx_function(c->g, c->x, c->y, c->gx, true);
    c->off = dx_function(c->g, c->x, c->y, c->gx, false);
    double v[DX_N * DX_K];
    int64_t rd[2] = {DX_N, DX_K}, cd[2] = {DX_K, DX_N}, ld[1] = {DX_N};
    if (lay == DX_ROWS) {
        memcpy(v, k_dx_rows, sizeof v);
        jt_arr(&c->xa, dt, 2, rd, v);
    } else {
        for (int r = 0; r < DX_N; r++)
            for (int k = 0; k < DX_K; k++) v[k * DX_N + r] = k_dx_rows[r][k];
        mt_array t = {0};
        jt_arr(&t, dt, 2, cd, v);
        if (lay == DX_COLS) c->xa = t;
        else {
            MT_CHECK_OK(mt_array_transpose(&c->xa, &t, NULL));
            MT_CHECK(!mt_array_is_c_contiguous(&c->xa));
            mt_array_clear(&t);
        }
    }
    jt_arr(&c->ya, ldt, 1, ld, labels);
}

static void dx_case_free(dx_case *c)
{
    mt_function_free(c->on);
    mt_function_free(c->off);
    mt_array_clear(&c->xa);
    mt_array_clear(&c->ya);
    mt_graph_free(c->g);
}

/* Rule on and off: the same bits (NaN equals NaN) on the host, every layout and dtype; finite
 * rows also against a long double reference gz * (softmax - onehot), where a label outside
 * [0, K) matches no class (one_hot's rule). */
static void dx_values_labels(mt_dtype dt, mt_dtype ldt, dx_layout lay, bool mean,
                             bool static_batch, const double *labels)
{
    dx_case c;
    dx_case_init(&c, dt, ldt, lay, mean, static_batch, labels);
    const mt_array *ins[2] = {&c.xa, &c.ya};
    mt_array r[2] = {{0}, {0}};
    MT_CHECK_OK(mt_function_call(c.on, 2, ins, 1, &r[0]));
    MT_CHECK_OK(mt_function_call(c.off, 2, ins, 1, &r[1]));
    size_t n = DX_N * DX_K, isz = mt_dtype_size(dt);
    unsigned char *b[2];
    for (int i = 0; i < 2; i++) {
        MT_CHECK_EQ_INT(r[i].dtype, dt);
        b[i] = malloc(n * isz);
        MT_CHECK(b[i] != NULL);
        MT_CHECK_OK(mt_array_to_host(b[i], n * isz, &r[i]));
    }
    double on[DX_N * DX_K], off[DX_N * DX_K];
    jt_read(&r[0], on, n);
    jt_read(&r[1], off, n);
    for (size_t i = 0; i < n; i++) {
        bool same = (isnan(on[i]) && isnan(off[i])) || memcmp(b[0] + i * isz, b[1] + i * isz,
                                                              isz) == 0;
        if (!same)
            mt_test_fail(__FILE__, __LINE__, "%s axis %d layout %d %s: element %zu: %.17g with "
                         "the fused op, %.17g unfused", mt_dtype_name(dt), (int)c.axis, (int)lay,
                         mean ? "mean" : "sum", i, on[i], off[i]);
    }
    /* the exact value for rows of finite logits (as the dtype holds them) */
    double atol, rtol, xr[DX_K];
    jt_tol(dt, &atol, &rtol);
    for (int row = 0; row < DX_N; row++) {
        memcpy(xr, k_dx_rows[row], sizeof xr);
        round_to(dt, xr, DX_K);
        bool finite = true;
        for (int k = 0; k < DX_K; k++) finite = finite && isfinite(xr[k]);
        if (!finite) continue;
        long double m = xr[0], se = 0, gz = mean ? 1.0L / DX_N : 1.0L;
        for (int k = 1; k < DX_K; k++) m = xr[k] > m ? xr[k] : m;
        for (int k = 0; k < DX_K; k++) se += expl((long double)xr[k] - m);
        for (int k = 0; k < DX_K; k++) {
            long double p = expl((long double)xr[k] - m) / se;
            long double want = gz * (p - (k == labels[row]));
            size_t at = lay == DX_COLS ? (size_t)(k * DX_N + row) : (size_t)(row * DX_K + k);
            if (!mt_test_close(on[at], (double)want, atol, rtol))
                mt_test_fail(__FILE__, __LINE__, "%s row %d class %d: %.17g, exact %.17g",
                             mt_dtype_name(dt), row, k, on[at], (double)want);
        }
    }
    free(b[0]);
    free(b[1]);
    mt_array_clear(&r[0]);
    mt_array_clear(&r[1]);
    dx_case_free(&c);
}

static void dx_values(mt_dtype dt, mt_dtype ldt, dx_layout lay, bool mean, bool static_batch)
{
    dx_values_labels(dt, ldt, lay, mean, static_batch, k_dx_labels);
}

MT_TEST(xent_softmax_dx_values)
{
    if (!mt_device_is_host_addressable(jt_dev())) MT_SKIP("bit comparisons are for the host");
    const mt_dtype dts[2] = {MT_FLOAT32, MT_FLOAT64};
    for (int d = 0; d < 2; d++) {
        for (int lay = DX_ROWS; lay <= DX_STRIDED; lay++) {
            dx_values(dts[d], MT_INT64, (dx_layout)lay, true, false);
            dx_values(dts[d], MT_INT32, (dx_layout)lay, true, true);
            dx_values(dts[d], MT_INT64, (dx_layout)lay, false, true);
        }
    }
    dx_values(MT_FLOAT16, MT_INT64, DX_ROWS, true, false); /* the generic path on the host */
    dx_values(MT_FLOAT16, MT_INT32, DX_COLS, false, true);
}

/* A label outside [0, K): the fused op fails with ERR_RANGE naming itself, the label, its row
 * and the range, on the row pass and on the generic path alike (the unfused one_hot gives a
 * zero row instead, so the rule-off function still runs). */
/* Labels outside [0, K) (negative or K): the fused op keeps one_hot's rule (no class matches,
 * the row is gz * softmax), so rule on and off still give the same bits and no error. */
MT_TEST(xent_softmax_dx_labels_out_of_range)
{
    if (!mt_device_is_host_addressable(jt_dev())) MT_SKIP("bit comparisons are for the host");
    static const struct {
        mt_dtype dt;
        dx_layout lay;
    } cases[] = {{MT_FLOAT32, DX_ROWS}, {MT_FLOAT64, DX_COLS}, {MT_FLOAT32, DX_STRIDED},
                 {MT_FLOAT16, DX_ROWS}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int bad = 0; bad < 2; bad++) {
            double lv[DX_N];
            memcpy(lv, k_dx_labels, sizeof lv);
            lv[6] = bad ? -1 : DX_K;
            lv[9] = bad ? DX_K + 7 : -3;
            dx_values_labels(cases[i].dt, bad ? MT_INT32 : MT_INT64, cases[i].lay, true, true,
                             lv);
        }
}

/* ---------------------------------------------------------------- algebra */

static mt_var b_mul1(mt_graph *g, mt_var x)
{
    return mt_graph_mul(g, x, mt_graph_literal_int(g, 1));
}
static mt_var b_add0(mt_graph *g, mt_var x)
{
    return mt_graph_add(g, mt_graph_literal_int(g, 0), x);
}
static mt_var b_sub0(mt_graph *g, mt_var x)
{
    return mt_graph_sub(g, x, mt_graph_literal_int(g, 0));
}
static mt_var b_div1(mt_graph *g, mt_var x) { return mt_graph_div(g, x, one(g)); }
static mt_var b_negneg(mt_graph *g, mt_var x) { return mt_graph_neg(g, mt_graph_neg(g, x)); }
static mt_var b_mulm1(mt_graph *g, mt_var x)
{
    return mt_graph_mul(g, x, mt_graph_literal_int(g, -1));
}
static mt_var b_zerosub(mt_graph *g, mt_var x)
{
    return mt_graph_sub(g, mt_graph_literal_int(g, 0), x);
}
static mt_var b_pow0(mt_graph *g, mt_var x)
{
    return mt_graph_pow(g, x, mt_graph_literal_int(g, 0));
}
static mt_var b_pow1(mt_graph *g, mt_var x)
{
    return mt_graph_pow(g, x, mt_graph_literal_int(g, 1));
}
static mt_var b_pown1(mt_graph *g, mt_var x)
{
    return mt_graph_pow(g, x, mt_graph_literal_float(g, -1.0));
}
static mt_var b_powh(mt_graph *g, mt_var x)
{
    return mt_graph_pow(g, x, mt_graph_literal_float(g, 0.5));
}
static mt_var b_recrec(mt_graph *g, mt_var x)
{
    return mt_graph_reciprocal(g, mt_graph_reciprocal(g, x));
}
static mt_var b_onediv(mt_graph *g, mt_var x) { return mt_graph_div(g, one(g), x); }
static long double r_recip(long double x) { return 1.0L / x; }
static long double r_ident(long double x) { return x; }

MT_TEST(identity_values)
{
    const mt_dtype dts[4] = {MT_FLOAT64, MT_FLOAT32, MT_INT32, MT_INT8};
    for (int k = 0; k < 4; k++) {
        UNARY("mul_one", dts[k], b_mul1, NULL, 0);
        UNARY("add_zero", dts[k], b_add0, NULL, 0);
        UNARY("sub_zero", dts[k], b_sub0, NULL, 0);
        UNARY("neg_neg", dts[k], b_negneg, NULL, 0);
        UNARY("mul_neg_one", dts[k], b_mulm1, NULL, 0);
        UNARY("sub_from_zero", dts[k], b_zerosub, NULL, 0);
        UNARY("pow_zero", dts[k], b_pow0, NULL, 0);
        UNARY("pow_one", dts[k], b_pow1, NULL, 0);
    }
    UNARY("div_one", MT_FLOAT64, b_div1, NULL, 0);
    UNARY("div_one", MT_FLOAT16, b_div1, NULL, 0);
    UNARY("pow_neg_one", MT_FLOAT64, b_pown1, NULL, 0);
    UNARY("pow_neg_one", MT_FLOAT32, b_pown1, NULL, 0);
    UNARY("pow_half", MT_FLOAT64, b_powh, NULL, 0);
    UNARY("pow_half", MT_FLOAT32, b_powh, NULL, 1);
    /* recip(recip(x)) -> x: the original overflows for denormals (1/5e-324 = inf) */
    UNARY("recip_recip", MT_FLOAT64, b_recrec, r_ident, 0);
    UNARY("div_to_recip", MT_FLOAT64, b_onediv, r_recip, 0);
    BINARY("mul_recip", MT_FLOAT64, b_mul_recip, r_div, 1);
    BINARY("mul_recip", MT_FLOAT32, b_mul_recip, r_div, 1);
    BINARY("div_recip", MT_FLOAT64, b_div_recip, r_mul, 1);
}

/* x**n for n = 2..16, float and integer; the chains reorder the roundings, so floats get a
 * tolerance of a few ulps per multiplication. */
static int g_pow_n;
static mt_var b_pown(mt_graph *g, mt_var x)
{
    return mt_graph_pow(g, x, mt_graph_literal_int(g, g_pow_n));
}
static long double r_pown(long double x) { return powl(x, g_pow_n); }

MT_TEST(pow_int_values)
{
    for (g_pow_n = 2; g_pow_n <= 16; g_pow_n++) {
        UNARY("pow_int", MT_FLOAT64, b_pown, r_pown, 4.0 * g_pow_n);
        UNARY("pow_int", MT_FLOAT32, b_pown, r_pown, 4.0 * g_pow_n);
        UNARY("pow_int", MT_INT64, b_pown, NULL, 0);
        UNARY("pow_int", MT_UINT8, b_pown, NULL, 0);
    }
    /* mltrain eval 'a + a**10' a=[0,1,2] */
    mt_graph *g = new_graph();
    mt_var a = mt_graph_placeholder(g, "a", MT_INT64, 1, (const int64_t[]){3});
    mt_var y = mt_graph_add(g, a, mt_graph_pow(g, a, mt_graph_literal_int(g, 10)));
    OPTIMIZE(g, 1, &y, "pow_int");
    double out[3];
    eval_1d(g, a, y, MT_INT64, (const double[]){0, 1, 2}, 3, out);
    MT_CHECK(out[0] == 0 && out[1] == 2 && out[2] == 1026);
    mt_graph_free(g);
}

MT_TEST(finite_identity_values)
{
    /* integers: exact for every value, including the limits */
    mt_graph *g = new_graph();
    mt_var i = mt_graph_placeholder(g, "i", MT_INT32, 1, (const int64_t[]){5});
    mt_var outs[2] = {mt_graph_sub(g, i, i), mt_graph_mul(g, i, mt_graph_literal_int(g, 0))};
    mt_var opt[2] = {outs[0], outs[1]};
    OPTIMIZE(g, 2, opt, "sub_self");
    double in[5] = {0, 1, -7, 2147483647.0, -2147483648.0}, a[5], b[5];
    for (int k = 0; k < 2; k++) {
        eval_1d(g, i, outs[k], MT_INT32, in, 5, a);
        eval_1d(g, i, opt[k], MT_INT32, in, 5, b);
        COMPARE("finite identities", MT_INT32, 5, in, a, b, NULL, 0);
    }
    mt_graph_free(g);
    /* a large finite constant (not folded) */
    g = new_graph();
    enum { N = 5000 };
    static double data[N];
    for (int k = 0; k < N; k++) data[k] = (k % 7 - 3) * 1e300 + 0.5;
    mt_var c = mt_graph_constant(g, MT_FLOAT64, 1, (const int64_t[]){N}, data);
    mt_var tc = mt_graph_tanh(g, c);
    mt_var co[4] = {mt_graph_sub(g, c, c), mt_graph_div(g, c, c),
                    mt_graph_mul(g, tc, mt_graph_literal_float(g, 0.0)), mt_graph_sub(g, tc, tc)};
    mt_var copt[4] = {co[0], co[1], co[2], co[3]};
    OPTIMIZE(g, 4, copt, "mul_zero");
    for (int k = 0; k < 4; k++) {
        mt_array r0 = {0}, r1 = {0};
        EVAL(g, 1, &co[k], 0, NULL, NULL, &r0);
        EVAL(g, 1, &copt[k], 0, NULL, NULL, &r1);
        double *o = read_all(&r0), *w = read_all(&r1);
        COMPARE("finite identities", MT_FLOAT64, N, data, o, w, NULL, 0);
        free(o);
        free(w);
        mt_array_clear(&r0);
        mt_array_clear(&r1);
    }
    mt_graph_free(g);
}

/* ---------------------------------------------------------------- constant folding */

/* Folding op over constant operands must reproduce the kernels bit for bit. */
static void fold_check(mt_sop sop, mt_dtype dt, mt_dtype cast_to)
{
    static const double e[] = {0.0, -0.0, 1.0, -1.0, 0.5, -2.5, 3.0, 7.0, -7.0, 1e-30, 5e-324,
                               19.5, -19.5, 36.9, -36.9, -0.7, -0.69, 1e-5,
                               1e-40, 20.0, -20.0, 37.5, -37.5, 88.7, -100.0, 127.0, -128.0,
                               255.0, 300.0, 65504.0, 1e5, -1e5, 3e9, -3e9, 1e19, 1e30, -1e30,
                               DBL_MAX, INFINITY, -INFINITY, NAN};
    enum { NE = NELEM(e) };
    int nin = sop == MT_SOP_CAST ? 1 : mt_sop_arity(sop);
    int n = nin == 1 ? NE : NE * NE;
    static double a[NE * NE], b[NE * NE], c[NE * NE];
    for (int i = 0; i < n; i++) {
        a[i] = nin == 1 ? e[i] : e[i / NE];
        b[i] = e[i % NE];
        c[i] = (i * 7) % 3 == 0;
    }
    mt_graph *g = new_graph();
    int64_t dims[1] = {n};
    unsigned char *buf = malloc((size_t)n * 8 + 8);
    MT_CHECK(buf != NULL);
    mt_var ops[3];
    const double *src[3] = {a, b, c};
    for (int k = 0; k < nin; k++) {
        mt_dtype odt = sop == MT_SOP_WHERE && k == 0 ? MT_BOOL : dt;
        const double *s = sop == MT_SOP_WHERE ? src[(k + 2) % 3] : src[k];
        mt_dtype_convert(buf, odt, (ptrdiff_t)mt_dtype_size(odt), s, MT_FLOAT64, 8, (size_t)n);
        ops[k] = mt_graph_constant(g, odt, 1, dims, buf);
    }
    free(buf);
    mt_op_attrs at;
    memset(&at, 0, sizeof(at));
    at.sop = sop;
    at.dtype = cast_to;
    mt_var y = mt_graph_make(g, MT_OP_ELEMWISE, &at, nin, ops);
    if (!y) { /* not defined for this dtype */
        mt_graph_clear_error(g);
        mt_graph_free(g);
        return;
    }
    mt_var y2 = y;
    OPTIMIZE(g, 1, &y2, "constant_fold");
    MT_CHECK_EQ_INT(mt_graph_op(g, y2), MT_OP_CONST);
    mt_array r0 = {0};
    EVAL(g, 1, &y, 0, NULL, NULL, &r0);
    size_t sz = mt_dtype_size(r0.dtype);
    unsigned char *kern = malloc((size_t)n * sz + 8);
    MT_CHECK(kern != NULL);
    MT_CHECK_OK(mt_array_to_host(kern, (size_t)n * sz, &r0));
    const unsigned char *fold = mt_graph_attrs(g, y2)->data;
    for (int i = 0; i < n; i++) {
        const unsigned char *p = kern + (size_t)i * sz, *q = fold + (size_t)i * sz;
        if (memcmp(p, q, sz) == 0) continue;
        double dp, dq;
        mt_dtype_convert(&dp, MT_FLOAT64, 0, p, r0.dtype, 0, 1);
        mt_dtype_convert(&dq, MT_FLOAT64, 0, q, r0.dtype, 0, 1);
        if (isnan(dp) && isnan(dq)) continue; /* NaN payloads may differ */
        mt_test_fail(__FILE__, __LINE__, "fold of %s over %s (-> %s): element %d (%.17g, %.17g): "
                     "kernel %.17g, folded %.17g", mt_sop_name(sop), mt_dtype_name(dt),
                     mt_dtype_name(r0.dtype), i, a[i], b[i], dp, dq);
    }
    free(kern);
    mt_array_clear(&r0);
    mt_graph_free(g);
}

MT_TEST(constant_folding_matches_kernels)
{
    /* the kernel interpreter (the host's reference, which compiled kernels match bit for bit):
     * hundreds of distinct one-op kernels would otherwise each be compiled once */
    setenv("MLTRAIN_NO_CC", "1", 0);
    const mt_dtype fdts[4] = {MT_FLOAT64, MT_FLOAT32, MT_FLOAT16, MT_BFLOAT16};
    const mt_dtype idts[6] = {MT_INT8, MT_INT32, MT_INT64, MT_UINT8, MT_UINT64, MT_BOOL};
    for (int s = 0; s < MT_SOP_COUNT; s++) {
        mt_sop sop = (mt_sop)s;
        int ar = mt_sop_arity(sop);
        if (ar < 1 || sop == MT_SOP_CAST || sop >= MT_SOP_RAND_UNIFORM) continue;
        for (int k = 0; k < 4; k++) fold_check(sop, fdts[k], MT_FLOAT64);
        for (int k = 0; k < 6; k++) fold_check(sop, idts[k], MT_FLOAT64);
    }
    const mt_dtype all[10] = {MT_FLOAT64, MT_FLOAT32, MT_FLOAT16, MT_BFLOAT16, MT_INT8, MT_INT32,
                              MT_INT64, MT_UINT8, MT_UINT64, MT_BOOL};
    for (int i = 0; i < 10; i++)
        for (int j = 0; j < 10; j++) /* (a cast to the same dtype is removed, not folded) */
            if (i != j) fold_check(MT_SOP_CAST, all[i], all[j]);
}

/* ---------------------------------------------------------------- shapes, casts, reductions */

MT_TEST(shape_and_cast_values)
{
    mt_graph *g = new_graph();
    int64_t d[2] = {3, 4};
    mt_var x = mt_graph_placeholder(g, "x", MT_INT8, 2, d);
    mt_var f = mt_graph_placeholder(g, "f", MT_FLOAT32, 2, d);
    mt_var outs[6] = {
        mt_graph_cast(g, mt_graph_cast(g, x, MT_INT32), MT_FLOAT64),
        mt_graph_cast(g, mt_graph_cast(g, x, MT_INT16), MT_UINT8),
        mt_graph_cast(g, mt_graph_cast(g, f, MT_FLOAT64), MT_INT32),
        mt_graph_transpose(g, mt_graph_transpose(g, mt_graph_transpose(g, f, NULL), NULL), NULL),
        mt_graph_reshape(g, mt_graph_reshape(g, f, 1, (const int64_t[]){12}), 2,
                         (const int64_t[]){2, 6}),
        mt_graph_broadcast_to(
            g,
            mt_graph_broadcast_to(g, mt_graph_sum(g, f, 1, (const int32_t[]){1}, true), 2,
                                  (const int64_t[]){3, 4}),
            3, (const int64_t[]){2, 3, 4}),
    };
    mt_var opt[6];
    memcpy(opt, outs, sizeof(opt));
    OPTIMIZE(g, 6, opt, "cast_cast");
    double xs[12] = {-128, 127, 0, -1, 5, 100, -3, 64, 1, 2, 3, -77};
    double fs[12] = {1.5, -2.5, 1e10, -1e10, NAN, INFINITY, -INFINITY, 3e9, -0.0, 0.0, 7.75, 1e-40};
    mt_array X = {0}, F = {0};
    jt_arr(&X, MT_INT8, 2, d, xs);
    jt_arr(&F, MT_FLOAT32, 2, d, fs);
    mt_var vars[2] = {x, f};
    const mt_array *ins[2] = {&X, &F};
    mt_array r0[6] = {{0}}, r1[6] = {{0}};
    EVAL(g, 6, outs, 2, vars, ins, r0);
    EVAL(g, 6, opt, 2, vars, ins, r1);
    for (int k = 0; k < 6; k++) {
        MT_CHECK_EQ_INT(r0[k].dtype, r1[k].dtype);
        MT_CHECK_EQ_INT(mt_array_size(&r0[k]), mt_array_size(&r1[k]));
        double *o = read_all(&r0[k]), *w = read_all(&r1[k]);
        COMPARE("shape/cast", r0[k].dtype, (size_t)mt_array_size(&r0[k]), NULL, o, w, NULL, 0);
        free(o);
        free(w);
        mt_array_clear(&r0[k]);
        mt_array_clear(&r1[k]);
    }
    mt_array_clear(&X);
    mt_array_clear(&F);
    mt_graph_free(g);
}

/* The identity rules for nodes the builders never create (they return x themselves), made
 * with mt_graph_make. */
MT_TEST(identity_node_values)
{
    mt_graph *g = new_graph();
    int64_t d[2] = {2, 3};
    mt_var x = mt_graph_placeholder(g, "x", MT_FLOAT32, 2, d);
    mt_op_attrs a;
    memset(&a, 0, sizeof(a));
    a.nperm = 2;
    a.perm[0] = 0;
    a.perm[1] = 1;
    mt_var ds = mt_graph_make(g, MT_OP_DIMSHUFFLE, &a, 1, &x);
    memset(&a, 0, sizeof(a));
    a.nshape = 2;
    a.shape[0] = 2;
    a.shape[1] = 3;
    mt_var rs = mt_graph_make(g, MT_OP_RESHAPE, &a, 1, &ds);
    mt_var bc = mt_graph_make(g, MT_OP_BROADCAST_TO, &a, 1, &rs);
    memset(&a, 0, sizeof(a));
    a.sop = MT_SOP_CAST;
    a.dtype = MT_FLOAT32;
    mt_var y = mt_graph_make(g, MT_OP_ELEMWISE, &a, 1, &bc), y2 = y;
    MT_CHECK(y != MT_VAR_NONE && y != x);
    OPTIMIZE(g, 1, &y2, "dimshuffle_identity");
    MT_CHECK_EQ_INT(y2, x);
    double xs[6] = {1.5, -0.0, INFINITY, NAN, 1e-40, -3}, o[6], w[6];
    mt_array X = {0}, r0 = {0}, r1 = {0};
    jt_arr(&X, MT_FLOAT32, 2, d, xs);
    const mt_array *ins[1] = {&X};
    EVAL(g, 1, &y, 1, &x, ins, &r0);
    EVAL(g, 1, &y2, 1, &x, ins, &r1);
    jt_read(&r0, o, 6);
    jt_read(&r1, w, 6);
    COMPARE("identities", MT_FLOAT32, 6, xs, o, w, NULL, 0);
    mt_array_clear(&X);
    mt_array_clear(&r0);
    mt_array_clear(&r1);
    mt_graph_free(g);
}

MT_TEST(reduction_of_broadcast_values)
{
    mt_graph *g = new_graph();
    int64_t d[2] = {4, 1};
    mt_var x = mt_graph_placeholder(g, "x", MT_FLOAT32, 2, d);
    mt_var i = mt_graph_placeholder(g, "i", MT_INT32, 2, d);
    mt_var b = mt_graph_broadcast_to(g, x, 3, (const int64_t[]){2, 4, 5});
    mt_var bi = mt_graph_broadcast_to(g, i, 2, (const int64_t[]){4, 3});
    const int32_t a0[1] = {0}, a2[1] = {2}, a02[2] = {0, 2};
    mt_var outs[8] = {
        mt_graph_sum(g, b, 2, a02, false),   mt_graph_sum(g, b, 1, a2, true),
        mt_graph_max(g, b, 1, a0, false),    mt_graph_mean(g, b, 2, a02, true),
        mt_graph_any(g, b, 1, a2, false),    mt_graph_sum(g, bi, 1, (const int32_t[]){1}, false),
        mt_graph_prod(g, x, 1, (const int32_t[]){1}, false),
        mt_graph_argmax(g, b, 1, a2, false),
    };
    mt_var opt[8];
    memcpy(opt, outs, sizeof(opt));
    OPTIMIZE(g, 8, opt, "reduce_broadcast");
    double xs[4] = {1.5, -0.0, INFINITY, NAN}, is[4] = {2147483647.0, -5, 0, 7};
    mt_array X = {0}, I = {0};
    jt_arr(&X, MT_FLOAT32, 2, d, xs);
    jt_arr(&I, MT_INT32, 2, d, is);
    mt_var vars[2] = {x, i};
    const mt_array *ins[2] = {&X, &I};
    mt_array r0[8] = {{0}}, r1[8] = {{0}};
    EVAL(g, 8, outs, 2, vars, ins, r0);
    EVAL(g, 8, opt, 2, vars, ins, r1);
    for (int k = 0; k < 8; k++) {
        MT_CHECK_EQ_INT(r0[k].dtype, r1[k].dtype);
        double *o = read_all(&r0[k]), *w = read_all(&r1[k]);
        COMPARE("reduce_broadcast", r0[k].dtype, (size_t)mt_array_size(&r0[k]), NULL, o, w, NULL,
                1);
        free(o);
        free(w);
        mt_array_clear(&r0[k]);
        mt_array_clear(&r1[k]);
    }
    mt_array_clear(&X);
    mt_array_clear(&I);
    mt_graph_free(g);
}

MT_TEST(argmax_values)
{
    enum { R = 5, C = 6 };
    double xs[R * C];
    jt_fill(xs, R * C, -4, 4, 3); /* no ties: the rewritten argmax equals the original */
    mt_graph *g = new_graph();
    int64_t d[2] = {R, C};
    mt_var x = mt_graph_placeholder(g, "x", MT_FLOAT64, 2, d);
    const int32_t a1[1] = {1}, a0[1] = {0};
    mt_var outs[5] = {
        mt_graph_argmax(g, mt_graph_softmax(g, x, 1), 1, a1, false),
        mt_graph_argmax(g, mt_graph_sigmoid(g, x), 1, a0, true),
        mt_graph_argmin(g, mt_graph_tanh(g, mt_graph_exp(g, x)), 1, a1, false),
        mt_graph_argmax(g, mt_graph_neg(g, x), 1, a1, false),
        mt_graph_argmax(g, mt_graph_logsoftmax(g, x, 0), 1, a0, false),
    };
    mt_var opt[5];
    memcpy(opt, outs, sizeof(opt));
    OPTIMIZE(g, 5, opt, "argmax_monotone");
    mt_array X = {0};
    jt_arr(&X, MT_FLOAT64, 2, d, xs);
    const mt_array *ins[1] = {&X};
    mt_array r0[5] = {{0}}, r1[5] = {{0}};
    EVAL(g, 5, outs, 1, &x, ins, r0);
    EVAL(g, 5, opt, 1, &x, ins, r1);
    for (int k = 0; k < 5; k++) {
        double *o = read_all(&r0[k]), *w = read_all(&r1[k]);
        COMPARE("argmax", MT_INT64, (size_t)mt_array_size(&r0[k]), NULL, o, w, NULL, 0);
        free(o);
        free(w);
        mt_array_clear(&r0[k]);
        mt_array_clear(&r1[k]);
    }
    /* saturation: sigmoid(40) == sigmoid(50) in float64, so the original picks the first of
     * the tie; the rewritten graph gives the true argmax of x */
    double sat[R * C];
    for (int k = 0; k < R * C; k++) sat[k] = k % C == 3 ? 50.0 : 40.0 - k % C;
    mt_array S = {0}, s1 = {0};
    jt_arr(&S, MT_FLOAT64, 2, d, sat);
    const mt_array *sins[1] = {&S};
    mt_var sg = mt_graph_argmax(g, mt_graph_sigmoid(g, x), 1, a1, false);
    OPTIMIZE(g, 1, &sg, "argmax_monotone");
    EVAL(g, 1, &sg, 1, &x, sins, &s1);
    double *w = read_all(&s1);
    for (int r = 0; r < R; r++) MT_CHECK(w[r] == 3);
    free(w);
    mt_array_clear(&S);
    mt_array_clear(&s1);
    mt_array_clear(&X);
    mt_graph_free(g);
}

MT_TEST(gemm_values)
{
    enum { M = 5, K = 7, N = 3 };
    double xs[M * K], ws[K * N], wts[N * K], bs[N], cs[M * N];
    jt_fill(xs, M * K, -1, 1, 21);
    jt_fill(ws, K * N, -1, 1, 22);
    jt_fill(wts, N * K, -1, 1, 23);
    jt_fill(bs, N, -1, 1, 24);
    jt_fill(cs, M * N, -1, 1, 25);
    cs[4] = INFINITY;
    cs[7] = NAN;
    const mt_dtype dts[2] = {MT_FLOAT32, MT_FLOAT64};
    for (int k = 0; k < 2; k++) {
        mt_dtype dt = dts[k];
        mt_graph *g = new_graph();
        int64_t dx[2] = {M, K}, dw[2] = {K, N}, dwt[2] = {N, K}, db[1] = {N}, dc[2] = {M, N};
        mt_var x = mt_graph_placeholder(g, "x", dt, 2, dx);
        mt_var w = mt_graph_placeholder(g, "w", dt, 2, dw);
        mt_var wt = mt_graph_placeholder(g, "wt", dt, 2, dwt);
        mt_var b = mt_graph_placeholder(g, "b", dt, 1, db);
        mt_var c = mt_graph_placeholder(g, "c", dt, 2, dc);
        mt_var outs[4] = {
            mt_graph_add(g, mt_graph_dot(g, x, w), b),
            mt_graph_add(g,
                         mt_graph_mul(g, mt_graph_literal_float(g, 2.0), mt_graph_matmul(g, x, w)),
                         mt_graph_mul(g, mt_graph_literal_float(g, -0.5), c)),
            mt_graph_sub(g, c, mt_graph_matmul(g, x, mt_graph_transpose(g, wt, NULL))),
            mt_graph_mul(
                g,
                mt_graph_matmul(g, mt_graph_transpose(g, mt_graph_transpose(g, x, NULL), NULL), w),
                mt_graph_literal_float(g, 3.0)),
        };
        mt_var opt[4];
        memcpy(opt, outs, sizeof(opt));
        OPTIMIZE(g, 4, opt, "gemm_bias");
        for (int i = 0; i < 4; i++) MT_CHECK_EQ_INT(mt_graph_op(g, opt[i]), MT_OP_GEMM);
        mt_array X = {0}, W = {0}, WT = {0}, B = {0}, Cc = {0}, r0[4] = {{0}}, r1[4] = {{0}};
        jt_arr(&X, dt, 2, dx, xs);
        jt_arr(&W, dt, 2, dw, ws);
        jt_arr(&WT, dt, 2, dwt, wts);
        jt_arr(&B, dt, 1, db, bs);
        jt_arr(&Cc, dt, 2, dc, cs);
        mt_var vars[5] = {x, w, wt, b, c};
        const mt_array *ins[5] = {&X, &W, &WT, &B, &Cc};
        EVAL(g, 4, outs, 5, vars, ins, r0);
        EVAL(g, 4, opt, 5, vars, ins, r1);
        for (int i = 0; i < 4; i++) {
            double *o = read_all(&r0[i]), *v = read_all(&r1[i]);
            COMPARE("gemm", dt, (size_t)mt_array_size(&r0[i]), NULL, o, v, NULL, 10);
            free(o);
            free(v);
            mt_array_clear(&r0[i]);
            mt_array_clear(&r1[i]);
        }
        mt_array_clear(&X);
        mt_array_clear(&W);
        mt_array_clear(&WT);
        mt_array_clear(&B);
        mt_array_clear(&Cc);
        mt_graph_free(g);
    }
}
