/* Numeric checks of the symbolic gradients: mt_verify_grad (central differences in float64,
 * random projections) on every differentiable op at ordinary points and at the hard points
 * (sigmoid/softplus/softmax/logsoftmax/logsumexp at |x| = 30, 100, 800), with broadcasting
 * and unknown sizes; explicit reference values where the choice is a convention (ties, zeros,
 * pow at 0); second derivatives (Hessian-vector products against finite differences of the
 * gradient); R-op against finite differences of the function; L-op and seeds. References are
 * computed here with plain C loops or by finite differences of the evaluated function, never
 * from the code under test. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mltrain/graph_grad.h"
#include "mltrain/jit.h"
#include "mltrain/jit_verify.h"
#include "mt_test.h"

#define NELEM(a) ((int32_t)(sizeof(a) / sizeof((a)[0])))

/* ---------------------------------------------------------------- helpers */

static mt_graph *new_graph(void)
{
    mt_graph *g = NULL;
    MT_CHECK_OK(mt_graph_new(&g));
    mt_graph_set_origin(g, __FILE__, __LINE__);
    return g;
}

static mt_device *host(void)
{
    static mt_device *dev;
    if (!dev) MT_CHECK_OK(mt_device_open(&dev, "host"));
    return dev;
}

static int64_t numel(int32_t nd, const int64_t *dims)
{
    int64_t n = 1;
    for (int32_t i = 0; i < nd; i++) n *= dims[i];
    return n;
}

/* Host array of dtype dt with the given values. */
static void mk_arr(mt_array *out, mt_dtype dt, int32_t nd, const int64_t *dims, const double *v)
{
    int64_t n = numel(nd, dims);
    void *buf = malloc((size_t)(n > 0 ? n : 1) * mt_dtype_size(dt));
    MT_CHECK(buf != NULL);
    mt_dtype_convert(buf, dt, (ptrdiff_t)mt_dtype_size(dt), v, MT_FLOAT64, sizeof(double),
                     (size_t)n);
    MT_CHECK_OK(mt_array_from_host(out, host(), dt, nd, dims, buf));
    free(buf);
}

static void read_arr(const mt_array *a, double *out, int64_t n)
{
    MT_CHECK_EQ_INT(mt_array_size(a), n);
    mt_array c;
    memset(&c, 0, sizeof(c));
    MT_CHECK_OK(mt_array_astype(&c, a, MT_FLOAT64));
    MT_CHECK_OK(mt_array_to_host(out, (size_t)n * sizeof(double), &c));
    mt_array_clear(&c);
}

/* A test case's inputs: placeholders and their values. */
typedef struct tcase {
    mt_graph *g;
    int32_t n;
    mt_var v[8];
    mt_array a[8];
} tcase;

static tcase *tc_new(void)
{
    tcase *t = calloc(1, sizeof(tcase));
    MT_CHECK(t != NULL);
    t->g = new_graph();
    return t;
}

/* Placeholder with static shape pdims (NULL: dims; -1 entries allowed) and values v of shape
 * dims. */
static mt_var tc_in(tcase *t, const char *name, mt_dtype dt, int32_t nd, const int64_t *dims,
                    const int64_t *pdims, const double *v)
{
    MT_CHECK(t->n < 8);
    mt_var x = mt_graph_placeholder(t->g, name, dt, nd, pdims ? pdims : dims);
    MT_CHECK(x != MT_VAR_NONE);
    mk_arr(&t->a[t->n], dt, nd, dims, v);
    t->v[t->n++] = x;
    return x;
}

static void tc_free(tcase *t)
{
    for (int32_t i = 0; i < t->n; i++) mt_array_clear(&t->a[i]);
    mt_graph_free(t->g);
    free(t);
}

static void vg_at(const char *file, int line, tcase *t, mt_var out, const char *what)
{
    if (!out || mt_graph_status(t->g))
        mt_test_fail(file, line, "%s: building failed: %s", what, mt_graph_last_error(t->g));
    const mt_array *arrs[8];
    for (int32_t i = 0; i < t->n; i++) arrs[i] = &t->a[i];
    mt_verify_grad_report rep;
    mt_status st = mt_verify_grad(t->g, out, t->n, t->v, arrs, NULL, &rep);
    if (st != MT_OK)
        mt_test_fail(file, line, "%s: %s: %s", what, mt_status_name(st), mt_last_error());
    if (!rep.passed) mt_test_fail(file, line, "%s: report says failed", what);
}
#define VG(t, out, what) vg_at(__FILE__, __LINE__, t, out, what)

/* Evaluates out (n elements) at the case's values into res. */
static void eval_at(const char *file, int line, tcase *t, mt_var out, double *res, int64_t n)
{
    if (!out || mt_graph_status(t->g))
        mt_test_fail(file, line, "building failed: %s", mt_graph_last_error(t->g));
    const mt_array *arrs[8];
    for (int32_t i = 0; i < t->n; i++) arrs[i] = &t->a[i];
    mt_array r;
    memset(&r, 0, sizeof(r));
    mt_status st = mt_graph_eval(t->g, 1, &out, t->n, t->v, arrs, NULL, &r);
    if (st) mt_test_fail(file, line, "eval: %s: %s", mt_status_name(st), mt_last_error());
    read_arr(&r, res, n);
    mt_array_clear(&r);
}
#define EVAL(t, out, res, n) eval_at(__FILE__, __LINE__, t, out, res, n)

static mt_var grad1(tcase *t, mt_var cost, mt_var wrt)
{
    mt_var gv = MT_VAR_NONE;
    MT_CHECK_OK(mt_graph_grad(t->g, cost, 1, &wrt, &gv, NULL));
    return gv;
}

static mt_var sum_all(mt_graph *g, mt_var x)
{
    return mt_graph_sum(g, x, 0, NULL, false);
}

static void expect_close(const char *what, const double *got, const double *want, int64_t n,
                         double atol, double rtol)
{
    for (int64_t i = 0; i < n; i++) {
        bool ok = fabs(got[i] - want[i]) <= atol + rtol * fabs(want[i]) && isfinite(got[i]);
        if (!ok)
            mt_test_fail(__FILE__, __LINE__, "%s[%lld]: got %.17g, want %.17g", what,
                         (long long)i, got[i], want[i]);
    }
}

/* ---------------------------------------------------------------- unary elementwise */

typedef mt_var (*unary_fn)(mt_graph *, mt_var);
typedef struct unary_case {
    const char *name;
    unary_fn fn;
    double v[6];
} unary_case;

static const unary_case unary_cases[] = {
    {"neg", mt_graph_neg, {-1.5, -0.3, 0.2, 0.7, 1.1, 2.4}},
    {"abs", mt_graph_abs, {-1.5, -0.3, 0.2, 0.7, -1.1, 2.4}},
    {"sign", mt_graph_sign, {-1.5, -0.3, 0.2, 0.7, -1.1, 2.4}},
    {"reciprocal", mt_graph_reciprocal, {-1.5, -0.3, 0.2, 0.7, -1.1, 2.4}},
    {"square", mt_graph_square, {-1.5, -0.3, 0.2, 0.7, -1.1, 2.4}},
    {"sqrt", mt_graph_sqrt, {0.2, 0.5, 1.0, 1.7, 3.0, 9.5}},
    {"rsqrt", mt_graph_rsqrt, {0.2, 0.5, 1.0, 1.7, 3.0, 9.5}},
    {"log", mt_graph_log, {0.2, 0.5, 1.0, 1.7, 3.0, 9.5}},
    {"log2", mt_graph_log2, {0.2, 0.5, 1.0, 1.7, 3.0, 9.5}},
    {"log10", mt_graph_log10, {0.2, 0.5, 1.0, 1.7, 3.0, 9.5}},
    {"log1p", mt_graph_log1p, {-0.9, -0.5, -0.1, 0.2, 1.6, 5.0}},
    {"log1mexp", mt_graph_log1mexp, {-5.0, -2.0, -0.7, -0.2, -0.05, -0.01}},
    {"exp", mt_graph_exp, {-2.1, -0.7, -0.1, 0.3, 1.2, 2.5}},
    {"exp2", mt_graph_exp2, {-2.1, -0.7, -0.1, 0.3, 1.2, 2.5}},
    {"expm1", mt_graph_expm1, {-2.1, -0.7, -1e-3, 0.3, 1.2, 2.5}},
    {"sin", mt_graph_sin, {-2.1, -0.7, -0.1, 0.3, 1.2, 2.5}},
    {"cos", mt_graph_cos, {-2.1, -0.7, -0.1, 0.3, 1.2, 2.5}},
    {"tan", mt_graph_tan, {-1.2, -0.7, -0.1, 0.3, 0.9, 1.3}},
    {"arcsin", mt_graph_arcsin, {-0.9, -0.5, -0.1, 0.2, 0.6, 0.85}},
    {"arccos", mt_graph_arccos, {-0.9, -0.5, -0.1, 0.2, 0.6, 0.85}},
    {"arctan", mt_graph_arctan, {-2.1, -0.7, -0.1, 0.3, 1.2, 2.5}},
    {"sinh", mt_graph_sinh, {-2.1, -0.7, -0.1, 0.3, 1.2, 2.5}},
    {"cosh", mt_graph_cosh, {-2.1, -0.7, -0.1, 0.3, 1.2, 2.5}},
    {"tanh", mt_graph_tanh, {-2.1, -0.7, -0.1, 0.3, 1.2, 2.5}},
    {"erf", mt_graph_erf, {-2.1, -0.7, -0.1, 0.3, 1.2, 2.5}},
    {"erfc", mt_graph_erfc, {-2.1, -0.7, -0.1, 0.3, 1.2, 2.5}},
    {"sigmoid", mt_graph_sigmoid, {-2.1, -0.7, -0.1, 0.3, 1.2, 2.5}},
    {"softplus", mt_graph_softplus, {-2.1, -0.7, -0.1, 0.3, 1.2, 2.5}},
    {"relu", mt_graph_relu, {-1.5, -0.3, 0.2, 0.7, -1.1, 2.4}},
    {"floor", mt_graph_floor, {-1.3, -0.7, 0.2, 0.6, 1.3, 2.8}},
    {"ceil", mt_graph_ceil, {-1.3, -0.7, 0.2, 0.6, 1.3, 2.8}},
    {"round", mt_graph_round, {-1.3, -0.7, 0.2, 0.6, 1.3, 2.8}},
    {"trunc", mt_graph_trunc, {-1.3, -0.7, 0.2, 0.6, 1.3, 2.8}},
};

MT_TEST(unary_ops_f64)
{
    int64_t d[2] = {2, 3};
    for (int32_t k = 0; k < NELEM(unary_cases); k++) {
        tcase *t = tc_new();
        mt_var x = tc_in(t, "x", MT_FLOAT64, 2, d, NULL, unary_cases[k].v);
        VG(t, unary_cases[k].fn(t->g, x), unary_cases[k].name);
        tc_free(t);
    }
}

/* Second derivatives: the gradient of each op is itself differentiated (grad of grad). */
MT_TEST(unary_ops_second_derivative)
{
    int64_t d[1] = {6};
    for (int32_t k = 0; k < NELEM(unary_cases); k++) {
        tcase *t = tc_new();
        mt_var x = tc_in(t, "x", MT_FLOAT64, 1, d, NULL, unary_cases[k].v);
        mt_var gx = grad1(t, sum_all(t->g, unary_cases[k].fn(t->g, x)), x);
        VG(t, gx, unary_cases[k].name);
        tc_free(t);
    }
}

/* Flat ops get zeros (connected), not errors; exact values where the rule is a convention. */
MT_TEST(unary_conventions_at_kinks)
{
    tcase *t = tc_new();
    int64_t d[1] = {5};
    double xv[5] = {-2.0, -0.0, 0.0, 1.5, 3.0};
    mt_var x = tc_in(t, "x", MT_FLOAT64, 1, d, NULL, xv);
    double r[5];
    /* abs'(0) = 0, relu'(0) = 0, sign' = 0 */
    EVAL(t, grad1(t, sum_all(t->g, mt_graph_abs(t->g, x)), x), r, 5);
    double e_abs[5] = {-1, 0, 0, 1, 1};
    expect_close("abs'", r, e_abs, 5, 0, 0);
    EVAL(t, grad1(t, sum_all(t->g, mt_graph_relu(t->g, x)), x), r, 5);
    double e_relu[5] = {0, 0, 0, 1, 1};
    expect_close("relu'", r, e_relu, 5, 0, 0);
    double zeros[5] = {0, 0, 0, 0, 0};
    EVAL(t, grad1(t, sum_all(t->g, mt_graph_sign(t->g, x)), x), r, 5);
    expect_close("sign'", r, zeros, 5, 0, 0);
    EVAL(t, grad1(t, sum_all(t->g, mt_graph_floor(t->g, x)), x), r, 5);
    expect_close("floor'", r, zeros, 5, 0, 0);
    mt_var cmp = mt_graph_cast(t->g, mt_graph_gt(t->g, x, mt_graph_literal_float(t->g, 0.5)),
                               MT_FLOAT64);
    EVAL(t, grad1(t, sum_all(t->g, mt_graph_mul(t->g, cmp, x)), x), r, 5);
    double e_cmp[5] = {0, 0, 0, 1, 1}; /* the comparison contributes zero, the product x */
    expect_close("cmp*x", r, e_cmp, 5, 0, 0);
    tc_free(t);
}

/* ---------------------------------------------------------------- binary elementwise */

typedef mt_var (*binary_fn)(mt_graph *, mt_var, mt_var);
static const struct {
    const char *name;
    binary_fn fn;
} binary_cases[] = {
    {"add", mt_graph_add},         {"sub", mt_graph_sub},         {"mul", mt_graph_mul},
    {"div", mt_graph_div},         {"pow", mt_graph_pow},         {"maximum", mt_graph_maximum},
    {"minimum", mt_graph_minimum}, {"arctan2", mt_graph_arctan2}, {"logaddexp", mt_graph_logaddexp},
    {"mod", mt_graph_mod},         {"floordiv", mt_graph_floordiv},
};

MT_TEST(binary_ops_broadcast_f64)
{
    int64_t da[2] = {2, 3}, db[1] = {3}, dc[2] = {2, 1};
    double av[6] = {0.3, 1.7, 2.2, 0.9, 1.4, 2.6}, bv[3] = {0.7, 1.3, 2.05};
    double cv[2] = {0.45, 1.15};
    for (int32_t k = 0; k < NELEM(binary_cases); k++) {
        tcase *t = tc_new();
        mt_var a = tc_in(t, "a", MT_FLOAT64, 2, da, NULL, av);
        mt_var b = tc_in(t, "b", MT_FLOAT64, 1, db, NULL, bv);
        mt_var c = tc_in(t, "c", MT_FLOAT64, 2, dc, NULL, cv);
        VG(t, binary_cases[k].fn(t->g, a, b), binary_cases[k].name);
        VG(t, binary_cases[k].fn(t->g, c, b), binary_cases[k].name); /* both broadcast */
        tc_free(t);
    }
}

MT_TEST(binary_ops_second_derivative)
{
    int64_t da[1] = {3};
    double av[3] = {0.3, 1.7, 2.2}, bv[3] = {0.7, 1.3, 2.05};
    for (int32_t k = 0; k < NELEM(binary_cases); k++) {
        tcase *t = tc_new();
        mt_var a = tc_in(t, "a", MT_FLOAT64, 1, da, NULL, av);
        mt_var b = tc_in(t, "b", MT_FLOAT64, 1, da, NULL, bv);
        mt_var cost = sum_all(t->g, binary_cases[k].fn(t->g, a, b));
        mt_var w[2] = {a, b}, gr[2];
        MT_CHECK_OK(mt_graph_grad(t->g, cost, 2, w, gr, NULL));
        /* d/d(a,b) of sum(u_a * da + u_b * db): a mixed Hessian-vector product */
        mt_var both = mt_graph_concatenate(t->g, 2, gr, 0);
        VG(t, both, binary_cases[k].name);
        tc_free(t);
    }
}

MT_TEST(where_clip_pow_constants)
{
    tcase *t = tc_new();
    int64_t d[1] = {6};
    double xv[6] = {-1.7, -0.6, 0.3, 0.8, 1.4, 2.3}, yv[6] = {0.5, -0.4, 1.2, -0.9, 0.7, 1.1};
    mt_var x = tc_in(t, "x", MT_FLOAT64, 1, d, NULL, xv);
    mt_var y = tc_in(t, "y", MT_FLOAT64, 1, d, NULL, yv);
    mt_graph *g = t->g;
    VG(t, mt_graph_where(g, mt_graph_gt(g, x, y), mt_graph_mul(g, x, y), mt_graph_exp(g, y)),
       "where");
    VG(t, mt_graph_clip(g, x, mt_graph_literal_float(g, -1.0), mt_graph_literal_float(g, 1.0)),
       "clip");
    double ev[5] = {0.0, 1.0, 2.0, 3.0, 0.5};
    for (int32_t k = 0; k < 4; k++) /* integer constant exponents, negative bases too */
        VG(t, mt_graph_pow(g, x, mt_graph_literal_float(g, ev[k])), "pow const");
    VG(t, mt_graph_pow(g, mt_graph_abs(g, x), mt_graph_scalar(g, MT_FLOAT64, 0.5)), "pow 0.5");
    VG(t, mt_graph_pow(g, mt_graph_exp(g, y), x), "pow both");
    VG(t, mt_graph_sigmoid_crossentropy_logits(g, x, mt_graph_sigmoid(g, y)), "sigmoid xent");
    tc_free(t);
}

/* x ** y at x = 0: d/dx is the limit (y = 1 -> 1, y = 2, 3 -> 0), d/dx x**0 = 0, d/dy = 0. */
MT_TEST(pow_at_zero)
{
    tcase *t = tc_new();
    int64_t d[1] = {4};
    double xv[4] = {0, 0, 0, 0}, yv[4] = {1, 2, 3, 0};
    mt_var x = tc_in(t, "x", MT_FLOAT64, 1, d, NULL, xv);
    mt_var y = tc_in(t, "y", MT_FLOAT64, 1, d, NULL, yv);
    mt_var cost = sum_all(t->g, mt_graph_pow(t->g, x, y));
    mt_var w[2] = {x, y}, gr[2];
    MT_CHECK_OK(mt_graph_grad(t->g, cost, 2, w, gr, NULL));
    double r[4], ex[4] = {1, 0, 0, 0}, ey[4] = {0, 0, 0, 0};
    EVAL(t, gr[0], r, 4);
    expect_close("d/dx x**y at 0", r, ex, 4, 0, 0);
    EVAL(t, gr[1], r, 4);
    expect_close("d/dy x**y at 0", r, ey, 4, 0, 0);
    /* constant exponents */
    double e2[4] = {0, 0, 0, 0}, e1[4] = {1, 1, 1, 1};
    EVAL(t, grad1(t, sum_all(t->g, mt_graph_pow(t->g, x, mt_graph_literal_float(t->g, 2))), x),
         r, 4);
    expect_close("d/dx x**2 at 0", r, e2, 4, 0, 0);
    EVAL(t, grad1(t, sum_all(t->g, mt_graph_pow(t->g, x, mt_graph_literal_float(t->g, 1))), x),
         r, 4);
    expect_close("d/dx x**1 at 0", r, e1, 4, 0, 0);
    EVAL(t, grad1(t, sum_all(t->g, mt_graph_pow(t->g, x, mt_graph_literal_float(t->g, 0))), x),
         r, 4);
    expect_close("d/dx x**0 at 0", r, e2, 4, 0, 0);
    tc_free(t);
}

/* maximum/minimum ties go to the first operand. */
MT_TEST(maximum_minimum_ties)
{
    tcase *t = tc_new();
    int64_t d[1] = {3};
    double av[3] = {1, 2, 3}, bv[3] = {1, 5, 0};
    mt_var a = tc_in(t, "a", MT_FLOAT64, 1, d, NULL, av);
    mt_var b = tc_in(t, "b", MT_FLOAT64, 1, d, NULL, bv);
    mt_var w[2] = {a, b}, gr[2];
    double r[3];
    MT_CHECK_OK(mt_graph_grad(t->g, sum_all(t->g, mt_graph_maximum(t->g, a, b)), 2, w, gr, NULL));
    double ea[3] = {1, 0, 1}, eb[3] = {0, 1, 0};
    EVAL(t, gr[0], r, 3);
    expect_close("dmax/da", r, ea, 3, 0, 0);
    EVAL(t, gr[1], r, 3);
    expect_close("dmax/db", r, eb, 3, 0, 0);
    MT_CHECK_OK(mt_graph_grad(t->g, sum_all(t->g, mt_graph_minimum(t->g, a, b)), 2, w, gr, NULL));
    double fa[3] = {1, 1, 0}, fb[3] = {0, 0, 1};
    EVAL(t, gr[0], r, 3);
    expect_close("dmin/da", r, fa, 3, 0, 0);
    EVAL(t, gr[1], r, 3);
    expect_close("dmin/db", r, fb, 3, 0, 0);
    tc_free(t);
}

/* ---------------------------------------------------------------- hard points */

static double ref_sigmoid(double x)
{
    return x >= 0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x));
}

MT_TEST(hard_points_sigmoid_softplus)
{
    tcase *t = tc_new();
    int64_t d[1] = {8};
    double xv[8] = {-800, -100, -30, -1, 1, 30, 100, 800};
    mt_var x = tc_in(t, "x", MT_FLOAT64, 1, d, NULL, xv);
    VG(t, mt_graph_sigmoid(t->g, x), "sigmoid");
    VG(t, mt_graph_softplus(t->g, x), "softplus");
    VG(t, mt_graph_logaddexp(t->g, x, mt_graph_neg(t->g, x)), "logaddexp");
    double r[8], e[8];
    EVAL(t, grad1(t, sum_all(t->g, mt_graph_softplus(t->g, x)), x), r, 8);
    for (int i = 0; i < 8; i++) e[i] = ref_sigmoid(xv[i]); /* d softplus(800)/dx = 1 */
    expect_close("softplus'", r, e, 8, 1e-300, 1e-14);
    EVAL(t, grad1(t, sum_all(t->g, mt_graph_sigmoid(t->g, x)), x), r, 8);
    for (int i = 0; i < 8; i++) e[i] = ref_sigmoid(xv[i]) * ref_sigmoid(-xv[i]);
    /* relative accuracy also in the tails (e.g. 9.36e-14 at x = 30), not only absolute */
    expect_close("sigmoid'", r, e, 8, 1e-300, 1e-12);
    /* second derivatives stay finite too */
    mt_var gs = grad1(t, sum_all(t->g, mt_graph_softplus(t->g, x)), x);
    EVAL(t, grad1(t, sum_all(t->g, gs), x), r, 8);
    for (int i = 0; i < 8; i++) e[i] = ref_sigmoid(xv[i]) * ref_sigmoid(-xv[i]);
    expect_close("softplus''", r, e, 8, 1e-300, 1e-12);
    tc_free(t);
}

MT_TEST(hard_points_softmax_family)
{
    int64_t d[2] = {3, 3};
    double xv[9] = {0, 1000, -1000, 30, -30, 100, 800, -800, 0.5};
    double uv[9] = {0.7, 1.3, 0.9, 1.1, 0.6, 1.4, 1.0, 0.8, 1.2};
    tcase *t = tc_new();
    mt_var x = tc_in(t, "x", MT_FLOAT64, 2, d, NULL, xv);
    mt_graph *g = t->g;
    VG(t, mt_graph_softmax(g, x, 1), "softmax");
    VG(t, mt_graph_logsoftmax(g, x, 1), "logsoftmax");
    VG(t, mt_graph_logsumexp(g, x, 0, NULL, false), "logsumexp all");
    int32_t ax1 = 1;
    VG(t, mt_graph_logsumexp(g, x, 1, &ax1, true), "logsumexp axis 1");
    /* explicit: d/dx sum(u * logsoftmax(x)) = u - softmax(x) * sum(u) per row */
    mt_var u = mt_graph_constant(g, MT_FLOAT64, 2, d, uv);
    double r[9], e[9];
    EVAL(t, grad1(t, sum_all(g, mt_graph_mul(g, u, mt_graph_logsoftmax(g, x, 1))), x), r, 9);
    for (int row = 0; row < 3; row++) {
        double m = -INFINITY, s = 0, us = 0;
        for (int j = 0; j < 3; j++) m = fmax(m, xv[row * 3 + j]);
        for (int j = 0; j < 3; j++) s += exp(xv[row * 3 + j] - m);
        for (int j = 0; j < 3; j++) us += uv[row * 3 + j];
        for (int j = 0; j < 3; j++)
            e[row * 3 + j] = uv[row * 3 + j] - exp(xv[row * 3 + j] - m) / s * us;
    }
    expect_close("logsoftmax'", r, e, 9, 1e-12, 1e-12);
    /* softmax crossentropy with labels at the hard points: softmax(x) - onehot */
    int64_t dl[1] = {3};
    double lv[3] = {1, 2, 0};
    mt_var lab = tc_in(t, "labels", MT_INT64, 1, dl, NULL, lv);
    VG(t, mt_graph_softmax_crossentropy_labels(g, x, lab, 1), "softmax_xent_labels");
    EVAL(t, grad1(t, sum_all(g, mt_graph_softmax_crossentropy_labels(g, x, lab, 1)), x), r, 9);
    for (int row = 0; row < 3; row++) {
        double m = -INFINITY, s = 0;
        for (int j = 0; j < 3; j++) m = fmax(m, xv[row * 3 + j]);
        for (int j = 0; j < 3; j++) s += exp(xv[row * 3 + j] - m);
        for (int j = 0; j < 3; j++)
            e[row * 3 + j] = exp(xv[row * 3 + j] - m) / s - (j == (int)lv[row] ? 1.0 : 0.0);
    }
    expect_close("softmax_xent_labels'", r, e, 9, 1e-12, 1e-12);
    tc_free(t);
}

/* ---------------------------------------------------------------- reductions */

MT_TEST(reductions)
{
    int64_t d[2] = {3, 4}, pd[2] = {-1, 4};
    double xv[12] = {0.5, -1.2, 0.8, 1.9, -0.4, 1.1, 0.65, -0.9, 1.35, 0.75, -1.6, 0.95};
    tcase *t = tc_new();
    mt_var x = tc_in(t, "x", MT_FLOAT64, 2, d, NULL, xv);
    mt_var xu = tc_in(t, "xu", MT_FLOAT64, 2, d, pd, xv); /* unknown leading size */
    mt_graph *g = t->g;
    int32_t a0 = 0, a1 = 1;
    mt_reduce_op ops[5] = {MT_REDUCE_SUM, MT_REDUCE_MEAN, MT_REDUCE_PROD, MT_REDUCE_MAX,
                           MT_REDUCE_MIN};
    for (int k = 0; k < 5; k++) {
        VG(t, mt_graph_reduce(g, ops[k], x, 0, NULL, false), mt_reduce_op_name(ops[k]));
        VG(t, mt_graph_reduce(g, ops[k], x, 1, &a0, false), mt_reduce_op_name(ops[k]));
        VG(t, mt_graph_reduce(g, ops[k], x, 1, &a1, true), mt_reduce_op_name(ops[k]));
        VG(t, mt_graph_reduce(g, ops[k], xu, 1, &a0, true), mt_reduce_op_name(ops[k]));
    }
    VG(t, mt_graph_var(g, x, 1, &a1, false, 1.0), "var");
    VG(t, mt_graph_std(g, xu, 1, &a0, false, 0.0), "std unknown size");
    VG(t, mt_graph_logsumexp(g, xu, 1, &a1, false), "logsumexp");
    /* second derivatives through the reductions */
    VG(t, grad1(t, mt_graph_prod(g, x, 0, NULL, false), x), "prod''");
    VG(t, grad1(t, mt_graph_sum(g, mt_graph_max(g, mt_graph_mul(g, x, x), 1, &a1, false), 0,
                                NULL, false), x), "max''");
    tc_free(t);
}

/* prod with zeros: exact (one zero: the product of the others; two: 0); max ties split. */
MT_TEST(prod_zeros_and_max_ties)
{
    int64_t d[2] = {3, 4};
    double xv[12] = {2, 0, 3, 0.5, /* one zero */ 0, 4, 0, 1.5, /* two zeros */ 1, 2, 3, 4};
    tcase *t = tc_new();
    mt_var x = tc_in(t, "x", MT_FLOAT64, 2, d, NULL, xv);
    mt_graph *g = t->g;
    int32_t a1 = 1;
    double r[12], e[12];
    EVAL(t, grad1(t, sum_all(g, mt_graph_prod(g, x, 1, &a1, false)), x), r, 12);
    for (int row = 0; row < 3; row++)
        for (int j = 0; j < 4; j++) {
            double p = 1;
            for (int k = 0; k < 4; k++)
                if (k != j) p *= xv[row * 4 + k];
            e[row * 4 + j] = p; /* d/dx_j prod = product of the others */
        }
    expect_close("prod' with zeros", r, e, 12, 0, 1e-15);
    VG(t, mt_graph_prod(g, x, 1, &a1, false), "prod with zeros");
    double tv[4] = {1, 3, 3, 2};
    int64_t d4[1] = {4};
    mt_var y = tc_in(t, "y", MT_FLOAT64, 1, d4, NULL, tv);
    EVAL(t, grad1(t, mt_graph_max(g, y, 0, NULL, false), y), r, 4);
    double ey[4] = {0, 0.5, 0.5, 0};
    expect_close("max ties", r, ey, 4, 0, 0);
    tc_free(t);
}

/* ---------------------------------------------------------------- nnet */

MT_TEST(nnet_ops)
{
    int64_t d[2] = {3, 4}, dl[1] = {3}, dl0[1] = {4};
    double xv[12] = {0.5, -1.2, 0.8, 1.9, -0.4, 1.1, 0.65, -0.9, 1.35, 0.75, -1.6, 0.95};
    double pv[12], tv[12], lv[3] = {3, 0, 2}, l0[4] = {2, 0, 1, 1};
    for (int i = 0; i < 12; i++) {
        pv[i] = 0.05 + 0.9 * (double)((i * 7) % 12) / 12.0;
        tv[i] = 0.1 + 0.8 * (double)((i * 5) % 12) / 12.0;
    }
    tcase *t = tc_new();
    mt_graph *g = t->g;
    mt_var x = tc_in(t, "x", MT_FLOAT64, 2, d, NULL, xv);
    mt_var p = tc_in(t, "p", MT_FLOAT64, 2, d, NULL, pv);
    mt_var tg = tc_in(t, "t", MT_FLOAT64, 2, d, NULL, tv);
    mt_var lab = tc_in(t, "lab", MT_INT32, 1, dl, NULL, lv);
    mt_var lab0 = tc_in(t, "lab0", MT_INT64, 1, dl0, NULL, l0);
    VG(t, mt_graph_softmax(g, x, 0), "softmax axis 0");
    VG(t, mt_graph_logsoftmax(g, x, 0), "logsoftmax axis 0");
    VG(t, mt_graph_crossentropy(g, p, tg, 1), "crossentropy");
    VG(t, mt_graph_crossentropy_labels(g, p, lab, 1), "crossentropy_labels");
    VG(t, mt_graph_crossentropy_labels(g, p, lab0, 0), "crossentropy_labels axis 0");
    VG(t, mt_graph_softmax_crossentropy(g, x, tg, 1), "softmax_crossentropy");
    VG(t, mt_graph_softmax_crossentropy_labels(g, x, lab0, 0), "softmax_xent_labels axis 0");
    VG(t, mt_graph_sigmoid_crossentropy_logits(g, x, p), "sigmoid_crossentropy_logits");
    /* second derivatives */
    VG(t, grad1(t, sum_all(g, mt_graph_softmax_crossentropy_labels(g, x, lab, 1)), x),
       "softmax_xent_labels''");
    VG(t, grad1(t, sum_all(g, mt_graph_crossentropy_labels(g, p, lab, 1)), p),
       "crossentropy_labels''");
    VG(t, grad1(t, sum_all(g, mt_graph_mul(g, tg, mt_graph_softmax(g, x, 1))), x), "softmax''");
    tc_free(t);
}

/* The labels crossentropy's gradient with the specialize rewrites on (FAST_RUN), where
 * xent_softmax_dx replaces gk * (softmax - onehot) by the fused op: mt_verify_grad in FAST_RUN
 * along both axes, and the compiled FAST_RUN gradient (checked to hold the fused op) against
 * central differences of the cost computed here. */
MT_TEST(fused_xent_gradient_fast_run)
{
    int64_t d[2] = {3, 4}, dl[1] = {3}, dl0[1] = {4};
    double xv[12] = {0.5, -1.2, 0.8, 1.9, -0.4, 1.1, 0.65, -0.9, 30.0, 0.75, -1.6, -30.0};
    double lv[3] = {3, 0, 2}, l0[4] = {2, 0, 1, 1};
    tcase *t = tc_new();
    mt_graph *g = t->g;
    mt_var x = tc_in(t, "x", MT_FLOAT64, 2, d, NULL, xv);
    mt_var lab = tc_in(t, "lab", MT_INT32, 1, dl, NULL, lv);
    mt_var lab0 = tc_in(t, "lab0", MT_INT64, 1, dl0, NULL, l0);
    const mt_array *arrs[3] = {&t->a[0], &t->a[1], &t->a[2]};
    mt_verify_grad_options o;
    mt_verify_grad_options_init(&o);
    o.mode = MT_MODE_FAST_RUN;
    mt_verify_grad_report rep;
    MT_CHECK_OK(mt_verify_grad(g, mt_graph_softmax_crossentropy_labels(g, x, lab, 1), 3, t->v,
                               arrs, &o, &rep));
    MT_CHECK(rep.passed);
    MT_CHECK_OK(mt_verify_grad(g, mt_graph_softmax_crossentropy_labels(g, x, lab0, 0), 3, t->v,
                               arrs, &o, &rep));
    MT_CHECK(rep.passed);
    /* the FAST_RUN gradient of mean(xent) holds the fused op, and matches central differences */
    mt_var cost = mt_graph_mean(g, mt_graph_softmax_crossentropy_labels(g, x, lab, 1), 0, NULL,
                                false);
    mt_var gx = grad1(t, cost, x);
    mt_function_options fo;
    mt_function_options_init(&fo);
    mt_function *f = NULL;
    mt_var ins[2] = {x, lab};
    MT_CHECK_OK(mt_function_new(&f, g, 2, ins, 1, &gx, 0, NULL, host(), &fo));
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    MT_CHECK_OK(mt_function_print(f, &sb));
    MT_CHECK(strstr(sb.data, "softmax_crossentropy_labels_dx") != NULL);
    MT_CHECK(strstr(sb.data, "one_hot") == NULL);
    mt_strbuf_deinit(&sb);
    mt_array r = {0};
    MT_CHECK_OK(mt_function_call(f, 2, arrs, 1, &r));
    double sym[12], num[12];
    read_arr(&r, sym, 12);
    mt_array_clear(&r);
    mt_function_free(f);
    for (int i = 0; i < 12; i++) {
        double c[2], h = 1e-5 * fmax(1.0, fabs(xv[i]));
        for (int s2 = 0; s2 < 2; s2++) {
            double xp[12];
            memcpy(xp, xv, sizeof xp);
            xp[i] += s2 ? -h : h;
            mt_array_clear(&t->a[0]);
            mk_arr(&t->a[0], MT_FLOAT64, 2, d, xp);
            EVAL(t, cost, &c[s2], 1);
        }
        num[i] = (c[0] - c[1]) / (2 * h);
    }
    expect_close("d mean(xent) / dx", sym, num, 12, 1e-8, 1e-6);
    tc_free(t);
}

/* ---------------------------------------------------------------- products */

MT_TEST(matmul_gemm)
{
    int64_t da[2] = {3, 4}, db[2] = {4, 2}, dba[3] = {2, 3, 4}, dbb[3] = {1, 4, 2};
    int64_t dv[1] = {4}, dc[2] = {1, 2}, dat[2] = {4, 3}, dbt[2] = {2, 4};
    double v[24];
    for (int i = 0; i < 24; i++) v[i] = sin(1.3 * i + 0.4);
    tcase *t = tc_new();
    mt_graph *g = t->g;
    mt_var a = tc_in(t, "a", MT_FLOAT64, 2, da, NULL, v);
    mt_var b = tc_in(t, "b", MT_FLOAT64, 2, db, NULL, v + 3);
    mt_var ba = tc_in(t, "ba", MT_FLOAT64, 3, dba, NULL, v);
    mt_var bb = tc_in(t, "bb", MT_FLOAT64, 3, dbb, NULL, v + 5);
    mt_var vec = tc_in(t, "vec", MT_FLOAT64, 1, dv, NULL, v + 7);
    mt_var c = tc_in(t, "c", MT_FLOAT64, 2, dc, NULL, v + 11);
    mt_var at = tc_in(t, "at", MT_FLOAT64, 2, dat, NULL, v + 2);
    mt_var bt = tc_in(t, "bt", MT_FLOAT64, 2, dbt, NULL, v + 9);
    VG(t, mt_graph_matmul(g, a, b), "matmul");
    VG(t, mt_graph_matmul(g, ba, bb), "batched matmul, broadcast batch");
    VG(t, mt_graph_matmul(g, vec, b), "vector @ matrix");
    VG(t, mt_graph_dot(g, a, vec), "dot");
    VG(t, mt_graph_gemm(g, a, b, c, 0.7, 1.3, false, false), "gemm");
    VG(t, mt_graph_gemm(g, at, b, c, -0.5, 0.25, true, false), "gemm ta");
    VG(t, mt_graph_gemm(g, a, bt, c, 1.5, 0.0, false, true), "gemm tb");
    VG(t, mt_graph_gemm(g, at, bt, c, 1.0, 1.0, true, true), "gemm ta tb");
    tc_free(t);
}

/* ---------------------------------------------------------------- shapes and indexing */

MT_TEST(shape_ops)
{
    int64_t d[2] = {3, 4}, d3[3] = {2, 3, 2}, pd3[3] = {-1, 3, 2}, d1[1] = {4}, dcat[2] = {3, 2};
    int64_t pcat[2] = {3, -1};
    double v[24];
    for (int i = 0; i < 24; i++) v[i] = cos(0.7 * i + 0.1) * (1 + 0.1 * i);
    tcase *t = tc_new();
    mt_graph *g = t->g;
    mt_var x = tc_in(t, "x", MT_FLOAT64, 2, d, NULL, v);
    mt_var y = tc_in(t, "y", MT_FLOAT64, 3, d3, pd3, v + 1); /* unknown batch size */
    mt_var r = tc_in(t, "r", MT_FLOAT64, 1, d1, NULL, v + 5);
    mt_var c = tc_in(t, "c", MT_FLOAT64, 2, dcat, pcat, v + 7); /* unknown along concat axis */
    int64_t s26[2] = {2, 6}, s234[3] = {2, 3, 4};
    int32_t perm[3] = {2, 0, 1}, pat[4] = {1, -1, 0, -1};
    VG(t, mt_graph_reshape(g, x, 2, s26), "reshape");
    VG(t, mt_graph_flatten(g, y, 2), "flatten unknown batch");
    VG(t, mt_graph_flatten(g, y, 1), "flatten all");
    VG(t, mt_graph_transpose(g, y, perm), "transpose");
    VG(t, mt_graph_dimshuffle(g, x, 4, pat), "dimshuffle new axes");
    VG(t, mt_graph_squeeze(g, mt_graph_expand_dims(g, x, 1), 0, NULL), "expand+squeeze");
    VG(t, mt_graph_broadcast_to(g, r, 3, s234), "broadcast_to");
    VG(t, mt_graph_mul(g, mt_graph_broadcast_like(g, r, x), x), "broadcast_like");
    mt_var parts[3] = {x, c, x};
    VG(t, mt_graph_concatenate(g, 3, parts, 1), "concatenate");
    mt_var st2[2] = {x, mt_graph_exp(g, x)};
    VG(t, mt_graph_stack(g, 2, st2, 0), "stack");
    mt_var sp[2];
    MT_CHECK_OK(mt_graph_split(g, x, 1, 2, NULL, sp));
    VG(t, mt_graph_mul(g, sp[0], mt_graph_exp(g, sp[1])), "split");
    VG(t, mt_graph_shape_assert(g, y, 3, (int64_t[3]){2, -1, 2}), "shape_assert");
    VG(t, mt_graph_grad_clip(g, mt_graph_mul(g, x, x), -100.0, 100.0), "grad_clip inactive");
    tc_free(t);
}

MT_TEST(indexing_ops)
{
    int64_t d[2] = {4, 3}, di[1] = {5}, dy[2] = {2, 3}, dg[3] = {2, 2, 3}, dii[2] = {2, 2};
    double v[24];
    for (int i = 0; i < 24; i++) v[i] = 0.3 * i - 2.0 + 0.05 * i * i;
    double iv[5] = {2, 0, 2, 3, -1}, iiv[4] = {1, 1, 0, 2};
    tcase *t = tc_new();
    mt_graph *g = t->g;
    mt_var x = tc_in(t, "x", MT_FLOAT64, 2, d, NULL, v);
    mt_var idx = tc_in(t, "idx", MT_INT64, 1, di, NULL, iv);
    mt_var y = tc_in(t, "y", MT_FLOAT64, 2, dy, NULL, v + 3);
    mt_var ii = tc_in(t, "ii", MT_INT32, 2, dii, NULL, iiv);
    mt_var z = tc_in(t, "z", MT_FLOAT64, 3, dg, NULL, v + 6);
    mt_idx items[2] = {mt_idx_slice(MT_IDX_NONE, MT_IDX_NONE, -2), mt_idx_int(1)};
    VG(t, mt_graph_index(g, x, 2, items), "index negative step + int");
    mt_idx it2[2] = {mt_idx_slice(1, 3, 1), mt_idx_all()};
    VG(t, mt_graph_index(g, x, 2, it2), "slice");
    VG(t, mt_graph_set_subtensor(g, x, 2, it2, mt_graph_mul(g, y, y)), "set_subtensor");
    VG(t, mt_graph_inc_subtensor(g, x, 2, it2, mt_graph_exp(g, y)), "inc_subtensor");
    mt_idx it3[2] = {mt_idx_int(0), mt_idx_all()};
    VG(t, mt_graph_inc_subtensor(g, x, 2, it3, mt_graph_sin(g, mt_graph_index(g, y, 1, it3))),
       "inc_subtensor broadcast row");
    VG(t, mt_graph_gather(g, x, idx, 0), "gather duplicates");
    VG(t, mt_graph_gather(g, x, ii, 1), "gather 2-d idx axis 1");
    VG(t, mt_graph_scatter_add(g, x, ii, z, 0), "scatter_add");
    VG(t, grad1(t, sum_all(g, mt_graph_mul(g, mt_graph_gather(g, x, idx, 0),
                                           mt_graph_gather(g, x, idx, 0))), x), "gather''");
    /* one_hot has no gradient but is a constant factor */
    VG(t, mt_graph_mul(g, mt_graph_one_hot(g, idx, 3, MT_FLOAT64),
                       mt_graph_gather(g, x, idx, 0)), "one_hot factor");
    tc_free(t);
}

/* stop_gradient and grad_clip change the gradient on purpose: explicit values. */
MT_TEST(stop_gradient_and_clip_values)
{
    int64_t d[1] = {4};
    double xv[4] = {-3, -0.5, 0.25, 4};
    tcase *t = tc_new();
    mt_graph *g = t->g;
    mt_var x = tc_in(t, "x", MT_FLOAT64, 1, d, NULL, xv);
    double r[4], e[4];
    /* d/dx sum(stop_gradient(x) * x) = x */
    EVAL(t, grad1(t, sum_all(g, mt_graph_mul(g, mt_graph_stop_gradient(g, x), x)), x), r, 4);
    expect_close("stop_gradient", r, xv, 4, 0, 0);
    /* d/dx sum(grad_clip(x*x, -1, 2)) = 2x clipped... the clip applies to the incoming 1 */
    mt_var sq = mt_graph_grad_clip(g, mt_graph_mul(g, x, x), -1.0, 2.0);
    mt_var cost = sum_all(g, mt_graph_mul(g, mt_graph_literal_float(g, 3.0), sq));
    EVAL(t, grad1(t, cost, x), r, 4);
    for (int i = 0; i < 4; i++) e[i] = 2.0 * 2.0 * xv[i]; /* incoming 3 clipped to 2 */
    expect_close("grad_clip", r, e, 4, 0, 0);
    tc_free(t);
}

/* ---------------------------------------------------------------- casts and float32 */

MT_TEST(float32_and_casts)
{
    int64_t d[2] = {2, 3};
    double xv[6] = {-1.2, -0.4, 0.3, 0.9, 1.6, 2.2};
    tcase *t = tc_new();
    mt_graph *g = t->g;
    mt_var x = tc_in(t, "x", MT_FLOAT32, 2, d, NULL, xv);
    mt_var y = tc_in(t, "y", MT_FLOAT64, 2, d, NULL, xv);
    mt_var gx = grad1(t, sum_all(g, mt_graph_tanh(g, x)), x);
    MT_CHECK_EQ_INT(mt_graph_type(g, gx)->dtype, MT_FLOAT32); /* no float64 creeping in */
    VG(t, mt_graph_mul(g, mt_graph_tanh(g, x), mt_graph_literal_float(g, 2.0)), "float32 tanh");
    VG(t, mt_graph_softmax(g, x, 1), "float32 softmax");
    VG(t, mt_graph_exp(g, mt_graph_cast(g, x, MT_FLOAT64)), "cast f32->f64");
    mt_var h = tc_in(t, "h", MT_FLOAT16, 2, d, NULL, xv);
    VG(t, mt_graph_mul(g, mt_graph_tanh(g, h), h), "float16 x*tanh(x)");
    MT_CHECK_EQ_INT(mt_graph_type(g, grad1(t, sum_all(g, mt_graph_exp(g, h)), h))->dtype,
                    MT_FLOAT16);
    VG(t, mt_graph_mul(g, mt_graph_cast(g, y, MT_FLOAT32), x), "cast f64->f32");
    /* a float cast to int gives zero gradient (connected), not an error */
    mt_var gi = grad1(t, sum_all(g, mt_graph_add(g, mt_graph_cast(g, mt_graph_cast(g, y,
                                                                                  MT_INT32),
                                                                 MT_FLOAT64), y)), y);
    double r[6], ones[6] = {1, 1, 1, 1, 1, 1};
    EVAL(t, gi, r, 6);
    expect_close("through int cast", r, ones, 6, 0, 0);
    tc_free(t);
}

/* ---------------------------------------------------------------- second derivatives */

/* Small MLP-like cost c(W1, b1, W2) = sum(softplus(tanh(X @ W1 + b1) @ W2) * T); its gradient
 * g(W) is checked by verify_grad (d sum(u * g) / dW is a Hessian-vector product), and the
 * Hessian-vector product H v = d <g, v> / dW against (g(W + h v) - g(W - h v)) / 2h. */
MT_TEST(hessian_vector_product_mlp)
{
    int64_t dx[2] = {3, 4}, dw1[2] = {4, 5}, db1[1] = {5}, dw2[2] = {5, 2}, dt[2] = {3, 2};
    double xv[12], w1v[20], b1v[5], w2v[10], tv[6], vv[20];
    for (int i = 0; i < 12; i++) xv[i] = sin(0.9 * i + 0.3);
    for (int i = 0; i < 20; i++) w1v[i] = 0.5 * cos(1.1 * i + 0.2);
    for (int i = 0; i < 5; i++) b1v[i] = 0.1 * i - 0.2;
    for (int i = 0; i < 10; i++) w2v[i] = 0.4 * sin(1.7 * i + 1.0);
    for (int i = 0; i < 6; i++) tv[i] = 0.2 + 0.1 * i;
    for (int i = 0; i < 20; i++) vv[i] = cos(2.3 * i);
    tcase *t = tc_new();
    mt_graph *g = t->g;
    mt_var X = tc_in(t, "X", MT_FLOAT64, 2, dx, NULL, xv);
    mt_var W1 = tc_in(t, "W1", MT_FLOAT64, 2, dw1, NULL, w1v);
    mt_var b1 = tc_in(t, "b1", MT_FLOAT64, 1, db1, NULL, b1v);
    mt_var W2 = tc_in(t, "W2", MT_FLOAT64, 2, dw2, NULL, w2v);
    mt_var T = tc_in(t, "T", MT_FLOAT64, 2, dt, NULL, tv);
    mt_var V = tc_in(t, "V", MT_FLOAT64, 2, dw1, NULL, vv);
    mt_var h = mt_graph_tanh(g, mt_graph_add(g, mt_graph_matmul(g, X, W1), b1));
    mt_var cost = sum_all(g, mt_graph_mul(g, mt_graph_softplus(g, mt_graph_matmul(g, h, W2)), T));
    mt_var w[3] = {W1, b1, W2}, gr[3];
    MT_CHECK_OK(mt_graph_grad(g, cost, 3, w, gr, NULL));
    VG(t, gr[0], "d cost / dW1");
    VG(t, gr[2], "d cost / dW2");
    mt_var hv = grad1(t, sum_all(g, mt_graph_mul(g, gr[0], V)), W1);
    double hvr[20], gp[20], gm[20], e[20];
    EVAL(t, hv, hvr, 20);
    /* finite differences of the gradient along V (float64 central, h = 1e-5) */
    double step = 1e-5, wp[20];
    for (int s = 0; s < 2; s++) {
        for (int i = 0; i < 20; i++) wp[i] = w1v[i] + (s ? -step : step) * vv[i];
        mt_array_clear(&t->a[1]);
        mk_arr(&t->a[1], MT_FLOAT64, 2, dw1, wp);
        EVAL(t, gr[0], s ? gm : gp, 20);
    }
    for (int i = 0; i < 20; i++) e[i] = (gp[i] - gm[i]) / (2 * step);
    expect_close("Hv", hvr, e, 20, 1e-7, 1e-6);
    tc_free(t);
}

/* ---------------------------------------------------------------- R-op and L-op */

/* f(W, x) = softmax(W @ x) * x[:3]; J v by rop against (f(p + h v) - f(p - h v)) / 2h. */
MT_TEST(rop_vs_finite_differences)
{
    int64_t dw[2] = {3, 4}, dx[1] = {4}, d3[1] = {3};
    double wv[12], xv[4], vwv[12], vxv[4];
    for (int i = 0; i < 12; i++) {
        wv[i] = 0.6 * sin(1.3 * i + 0.5);
        vwv[i] = cos(0.7 * i);
    }
    for (int i = 0; i < 4; i++) {
        xv[i] = 0.4 * i - 0.5;
        vxv[i] = 1.0 - 0.3 * i;
    }
    tcase *t = tc_new();
    mt_graph *g = t->g;
    mt_var W = tc_in(t, "W", MT_FLOAT64, 2, dw, NULL, wv);
    mt_var x = tc_in(t, "x", MT_FLOAT64, 1, dx, NULL, xv);
    mt_var VW = tc_in(t, "VW", MT_FLOAT64, 2, dw, NULL, vwv);
    mt_var VX = tc_in(t, "VX", MT_FLOAT64, 1, dx, NULL, vxv);
    mt_var f = mt_graph_mul(g, mt_graph_softmax(g, mt_graph_matmul(g, W, x), 0),
                            mt_graph_slice_axis(g, x, 0, 0, 3, 1));
    mt_var f2 = mt_graph_grad_clip(g, mt_graph_exp(g, mt_graph_matmul(g, W, x)), -0.1, 0.1);
    mt_var fs[2] = {f, f2}, wrt[2] = {W, x}, ev[2] = {VW, VX}, jv[2];
    MT_CHECK_OK(mt_graph_rop(g, 2, fs, 2, wrt, ev, jv, NULL));
    double r[3], r2[3], fp[3], fm[3], fp2[3], fm2[3], e[3], e2[3];
    EVAL(t, jv[0], r, 3);
    EVAL(t, jv[1], r2, 3);
    double step = 1e-5, wp[12], xp[4];
    for (int s = 0; s < 2; s++) {
        double k = s ? -step : step;
        for (int i = 0; i < 12; i++) wp[i] = wv[i] + k * vwv[i];
        for (int i = 0; i < 4; i++) xp[i] = xv[i] + k * vxv[i];
        mt_array_clear(&t->a[0]);
        mt_array_clear(&t->a[1]);
        mk_arr(&t->a[0], MT_FLOAT64, 2, dw, wp);
        mk_arr(&t->a[1], MT_FLOAT64, 1, dx, xp);
        EVAL(t, f, s ? fm : fp, 3);
        EVAL(t, f2, s ? fm2 : fp2, 3);
    }
    for (int i = 0; i < 3; i++) {
        e[i] = (fp[i] - fm[i]) / (2 * step);
        e2[i] = (fp2[i] - fm2[i]) / (2 * step);
    }
    expect_close("Jv", r, e, 3, 1e-8, 1e-6);
    /* grad_clip is the identity forward: its R-op is not clipped */
    expect_close("Jv through grad_clip", r2, e2, 3, 1e-8, 1e-6);
    (void)d3;
    tc_free(t);
}

/* lop(f, x, v) = d sum(v * f) / dx: against central differences of sum(v * f); seeds
 * (known gradients) give the same. */
MT_TEST(lop_and_known_grads)
{
    int64_t dx[1] = {4}, dy[2] = {2, 4};
    double xv[4] = {0.3, -0.8, 1.2, 0.5}, vv[8] = {1, -2, 0.5, 0.25, 1.5, -0.75, 2, 0.1};
    tcase *t = tc_new();
    mt_graph *g = t->g;
    mt_var x = tc_in(t, "x", MT_FLOAT64, 1, dx, NULL, xv);
    mt_var v = tc_in(t, "v", MT_FLOAT64, 2, dy, NULL, vv);
    mt_var f = mt_graph_stack(g, 2, (mt_var[2]){mt_graph_sin(g, x), mt_graph_mul(g, x,
                                                                                    mt_graph_exp(g, x))},
                              0);
    mt_var l = MT_VAR_NONE, k = MT_VAR_NONE;
    MT_CHECK_OK(mt_graph_lop(g, 1, &f, 1, &x, &v, &l, NULL));
    mt_grad_options o;
    mt_grad_options_init(&o);
    o.n_known = 1;
    o.known_vars = &f;
    o.known_grads = &v;
    MT_CHECK_OK(mt_graph_grad(g, MT_VAR_NONE, 1, &x, &k, &o));
    MT_CHECK_EQ_INT(l, k); /* the same nodes (hash-consed) */
    double r[4], e[4], step = 1e-6, xp[4], cp, cm;
    EVAL(t, l, r, 4);
    mt_var c = sum_all(g, mt_graph_mul(g, v, f));
    for (int i = 0; i < 4; i++) {
        for (int s = 0; s < 2; s++) {
            memcpy(xp, xv, sizeof(xp));
            xp[i] += s ? -step : step;
            mt_array_clear(&t->a[0]);
            mk_arr(&t->a[0], MT_FLOAT64, 1, dx, xp);
            EVAL(t, c, s ? &cm : &cp, 1);
        }
        e[i] = (cp - cm) / (2 * step);
    }
    expect_close("lop", r, e, 4, 1e-8, 1e-7);
    /* seeds add to the cost's own gradient: d/dx [sum(w * f)] seeded with v on f equals the
     * L-op with cotangent v + w */
    mt_var wv = mt_graph_mul(g, v, mt_graph_literal_float(g, 0.5));
    mt_var ks = MT_VAR_NONE, lw = MT_VAR_NONE, vw = mt_graph_add(g, v, wv);
    MT_CHECK_OK(mt_graph_grad(g, sum_all(g, mt_graph_mul(g, wv, f)), 1, &x, &ks, &o));
    MT_CHECK_OK(mt_graph_lop(g, 1, &f, 1, &x, &vw, &lw, NULL));
    mt_array_clear(&t->a[0]);
    mk_arr(&t->a[0], MT_FLOAT64, 1, dx, xv);
    double r1[4], r2[4];
    EVAL(t, ks, r1, 4);
    EVAL(t, lw, r2, 4);
    expect_close("seed + cost", r1, r2, 4, 1e-14, 1e-14);
    tc_free(t);
}

/* ---------------------------------------------------------------- the checker itself */

MT_TEST(verify_grad_detects_wrong_gradient)
{
    int64_t d[1] = {3};
    double xv[3] = {0.5, -1.5, 2.0};
    tcase *t = tc_new();
    mt_graph *g = t->g;
    mt_var x = tc_in(t, "x", MT_FLOAT64, 1, d, NULL, xv);
    const mt_array *arrs[1] = {&t->a[0]};
    /* x * stop_gradient(x): the symbolic gradient is x, the function's derivative 2x */
    mt_var out = mt_graph_mul(g, x, mt_graph_stop_gradient(g, x));
    mt_verify_grad_report rep;
    MT_CHECK_ERR(mt_verify_grad(g, out, 1, &x, arrs, NULL, &rep), MT_ERR_INTERNAL, "numeric");
    MT_CHECK(!rep.passed);
    MT_CHECK(strstr(mt_last_error(), "'x'") != NULL);
    MT_CHECK(strstr(mt_last_error(), "mul") != NULL);
    MT_CHECK(strstr(mt_last_error(), "symbolic") != NULL);
    MT_CHECK(rep.worst_input == 0);
    MT_CHECK(fabs(rep.numeric - 2 * rep.symbolic) < 1e-6 * fabs(rep.numeric) + 1e-9);
    /* a kink at the point: sqrt at 0 has no finite derivative */
    double zv[3] = {0.0, 1.0, 2.0};
    mt_array_clear(&t->a[0]);
    mk_arr(&t->a[0], MT_FLOAT64, 1, d, zv);
    MT_CHECK_ERR(mt_verify_grad(g, mt_graph_sqrt(g, x), 1, &x, arrs, NULL, &rep), MT_ERR_INVALID,
                 "not finite");
    /* arguments */
    MT_CHECK_ERR(mt_verify_grad(g, out, 1, &out, arrs, NULL, &rep), MT_ERR_INVALID,
                 "not a placeholder");
    tc_free(t);
}

/* The checker on the OpenCL device (PoCL in CI): the function runs there, the perturbation
 * stays on the host. Kept to one small expression because PoCL compiles slowly. */
MT_TEST(verify_grad_on_opencl)
{
    mt_device *cl = NULL;
    if (mt_device_open(&cl, "opencl") != MT_OK) MT_SKIP("no OpenCL device");
    int64_t dx[2] = {2, 3}, dw[2] = {3, 2};
    double xv[6] = {0.5, -1.0, 1.5, 0.25, -0.5, 2.0}, wv[6] = {0.3, -0.2, 0.1, 0.7, -0.6, 0.4};
    tcase *t = tc_new();
    mt_graph *g = t->g;
    mt_var x = tc_in(t, "x", MT_FLOAT64, 2, dx, NULL, xv);
    mt_var w = tc_in(t, "w", MT_FLOAT64, 2, dw, NULL, wv);
    mt_var out = mt_graph_logsoftmax(g, mt_graph_tanh(g, mt_graph_matmul(g, x, w)), 1);
    const mt_array *arrs[2] = {&t->a[0], &t->a[1]};
    mt_verify_grad_options o;
    mt_verify_grad_options_init(&o);
    o.dev = cl;
    o.n_tests = 1;
    mt_verify_grad_report rep;
    MT_CHECK_OK(mt_verify_grad(g, out, 2, t->v, arrs, &o, &rep));
    MT_CHECK(rep.passed && rep.n_evals > 24);
    tc_free(t);
    mt_device_release(cl);
}
