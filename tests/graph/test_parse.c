/* Tests of the expression language (graph_parse.h): parsed graphs compared with the same graph
 * built through the C builders (hash-consing makes equal expressions the same variable),
 * Python precedence, every function of the table, error statuses, columns, messages and the
 * caret rendering, provenance spans, limits, and garbage input that must never crash. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph_test_util.h"
#include "mltrain/graph_parse.h"

/* A graph with placeholders a, b (float32[3]), c (float32[4]), m (float64[2,3]),
 * q (float64[3,3]), t (float32[2,3,4]), ia, ib (int32[3]), i (int64[2]), bl (bool[3]),
 * lab (int64[2]), u (float32[?,3]). */
typedef struct env {
    mt_graph *g;
    mt_var a, b, c, m, q, t, ia, ib, i, bl, lab, u;
} env;

static env make_env(void)
{
    env e;
    e.g = new_graph();
    e.a = ph(e.g, "a", MT_FLOAT32, 1, SHAPE(3));
    e.b = ph(e.g, "b", MT_FLOAT32, 1, SHAPE(3));
    e.c = ph(e.g, "c", MT_FLOAT32, 1, SHAPE(4));
    e.m = ph(e.g, "m", MT_FLOAT64, 2, SHAPE(2, 3));
    e.q = ph(e.g, "q", MT_FLOAT64, 2, SHAPE(3, 3));
    e.t = ph(e.g, "t", MT_FLOAT32, 3, SHAPE(2, 3, 4));
    e.ia = ph(e.g, "ia", MT_INT32, 1, SHAPE(3));
    e.ib = ph(e.g, "ib", MT_INT32, 1, SHAPE(3));
    e.i = ph(e.g, "i", MT_INT64, 1, SHAPE(2));
    e.bl = ph(e.g, "bl", MT_BOOL, 1, SHAPE(3));
    e.lab = ph(e.g, "lab", MT_INT64, 1, SHAPE(2));
    e.u = ph(e.g, "u", MT_FLOAT32, 2, SHAPE(-1, 3));
    return e;
}

static mt_var parse_ok(const char *file, int line, mt_graph *g, const char *text)
{
    mt_var v = MT_VAR_NONE;
    mt_parse_error err;
    mt_status st = mt_graph_parse(g, text, 0, NULL, NULL, &v, &err);
    if (st != MT_OK || v == MT_VAR_NONE)
        mt_test_fail(file, line, "parse of '%s' failed: %s (%d:%d: %s)", text, mt_status_name(st),
                     (int)err.line, (int)err.col, err.message);
    if (mt_graph_status(g) != MT_OK)
        mt_test_fail(file, line, "graph error after parsing '%s': %s", text,
                     mt_graph_last_error(g));
    return v;
}
#define PARSE(g, text) parse_ok(__FILE__, __LINE__, (g), (text))

static void same(const char *file, int line, mt_graph *g, const char *text, mt_var want)
{
    if (want == MT_VAR_NONE)
        mt_test_fail(file, line, "reference for '%s' failed: %s", text, mt_graph_last_error(g));
    mt_var got = parse_ok(file, line, g, text);
    if (got != want) {
        mt_strbuf sb;
        mt_strbuf_init(&sb);
        mt_graph_print_node(g, got, &sb);
        mt_strbuf_append(&sb, "  vs  ");
        mt_graph_print_node(g, want, &sb);
        mt_test_fail(file, line, "'%s' parsed to v%d, expected v%d: %s", text, (int)got, (int)want,
                     sb.data);
    }
}
#define SAME(text, want) same(__FILE__, __LINE__, g, (text), (want))

/* Both texts parse to the same variable. */
static void equiv(const char *file, int line, mt_graph *g, const char *x, const char *y)
{
    mt_var vx = parse_ok(file, line, g, x), vy = parse_ok(file, line, g, y);
    if (vx != vy)
        mt_test_fail(file, line, "'%s' (v%d) differs from '%s' (v%d)", x, (int)vx, y, (int)vy);
}
#define EQUIV(x, y) equiv(__FILE__, __LINE__, g, (x), (y))

static mt_var lit(mt_graph *g, int64_t v)
{
    return mt_graph_literal_int(g, v);
}

/* ---------------------------------------------------------------- structure vs builders */

MT_TEST(operators_match_builders)
{
    env e = make_env();
    mt_graph *g = e.g;
    mt_var a = e.a, b = e.b;
    SAME("a + b", mt_graph_add(g, a, b));
    SAME("a - b", mt_graph_sub(g, a, b));
    SAME("a * b", mt_graph_mul(g, a, b));
    SAME("a / b", mt_graph_div(g, a, b));
    SAME("a // b", mt_graph_floordiv(g, a, b));
    SAME("a % b", mt_graph_mod(g, a, b));
    SAME("a ** b", mt_graph_pow(g, a, b));
    SAME("a + b * a", mt_graph_add(g, a, mt_graph_mul(g, b, a)));
    SAME("(a + b) * a", mt_graph_mul(g, mt_graph_add(g, a, b), a));
    SAME("a - b - a", mt_graph_sub(g, mt_graph_sub(g, a, b), a));
    SAME("a ** b ** a", mt_graph_pow(g, a, mt_graph_pow(g, b, a)));
    SAME("-a ** 2", mt_graph_neg(g, mt_graph_pow(g, a, lit(g, 2))));
    SAME("a ** -b", mt_graph_pow(g, a, mt_graph_neg(g, b)));
    SAME("+a", a);
    SAME("exp(a) + 1", mt_graph_add(g, mt_graph_exp(g, a), lit(g, 1)));
    SAME("a * 2.5", mt_graph_mul(g, a, mt_graph_literal_float(g, 2.5)));
    SAME("a + 1e-3", mt_graph_add(g, a, mt_graph_literal_float(g, 1e-3)));
    SAME("a + .5", mt_graph_add(g, a, mt_graph_literal_float(g, 0.5)));
    SAME("a + 0x10 + 0o7 + 0b11 + 1_000",
         mt_graph_add(
             g,
             mt_graph_add(g, mt_graph_add(g, mt_graph_add(g, a, lit(g, 16)), lit(g, 7)), lit(g, 3)),
             lit(g, 1000)));
    SAME("a @ q", mt_graph_matmul(g, a, e.q));
    SAME("m.T", mt_graph_transpose(g, e.m, NULL));
    SAME("m @ q.T", mt_graph_matmul(g, e.m, mt_graph_transpose(g, e.q, NULL)));
    SAME("a < b", mt_graph_lt(g, a, b));
    SAME("a <= b", mt_graph_le(g, a, b));
    SAME("a > b", mt_graph_gt(g, a, b));
    SAME("a >= b", mt_graph_ge(g, a, b));
    SAME("a == b", mt_graph_eq(g, a, b));
    SAME("a != b", mt_graph_ne(g, a, b));
    SAME("a < b < a", mt_graph_logical_and(g, mt_graph_lt(g, a, b), mt_graph_lt(g, b, a)));
    SAME("a < b <= a == b",
         mt_graph_logical_and(g,
                              mt_graph_logical_and(g, mt_graph_lt(g, a, b), mt_graph_le(g, b, a)),
                              mt_graph_eq(g, a, b)));
    SAME("a if a > b else b", mt_graph_where(g, mt_graph_gt(g, a, b), a, b));
    SAME("not a > b", mt_graph_logical_not(g, mt_graph_gt(g, a, b)));
    SAME("a > b and b > a or a == b",
         mt_graph_logical_or(g, mt_graph_logical_and(g, mt_graph_gt(g, a, b), mt_graph_gt(g, b, a)),
                             mt_graph_eq(g, a, b)));
    SAME("a and b", mt_graph_logical_and(g, a, b));
    SAME("(a > b) & (b > a)", mt_graph_logical_and(g, mt_graph_gt(g, a, b), mt_graph_gt(g, b, a)));
    SAME("bl | (a > b)", mt_graph_logical_or(g, e.bl, mt_graph_gt(g, a, b)));
    SAME("bl ^ bl", mt_graph_logical_xor(g, e.bl, e.bl));
    SAME("~bl", mt_graph_logical_not(g, e.bl));
    SAME("ia & ib", mt_graph_binary(g, MT_SOP_BITAND, e.ia, e.ib));
    SAME("ia | ib", mt_graph_binary(g, MT_SOP_BITOR, e.ia, e.ib));
    SAME("ia ^ ib", mt_graph_binary(g, MT_SOP_BITXOR, e.ia, e.ib));
    SAME("~ia", mt_graph_unary(g, MT_SOP_BITNOT, e.ia));
    SAME("ia << 2", mt_graph_binary(g, MT_SOP_LSHIFT, e.ia, lit(g, 2)));
    SAME("ia >> ib", mt_graph_binary(g, MT_SOP_RSHIFT, e.ia, e.ib));
    SAME("ia + 1", mt_graph_add(g, e.ia, lit(g, 1)));
    mt_graph_free(g);
}

MT_TEST(literals_and_folding)
{
    env e = make_env();
    mt_graph *g = e.g;
    SAME("-1", lit(g, -1));
    SAME("2 * 3", lit(g, 6));
    SAME("7 // -2", lit(g, -4)); /* Python floor division */
    SAME("-7 % 3", lit(g, 2));   /* sign of the divisor */
    SAME("7 % -3", lit(g, -2));
    SAME("2 ** 10", lit(g, 1024));
    SAME("2 ** -1", mt_graph_literal_float(g, 0.5));
    SAME("-9223372036854775808", lit(g, INT64_MIN));
    SAME("-2.5", mt_graph_literal_float(g, -2.5));
    SAME("pi", mt_graph_literal_float(g, 3.141592653589793));
    SAME("e", mt_graph_literal_float(g, 2.718281828459045));
    SAME("inf", mt_graph_literal_float(g, INFINITY));
    SAME("-inf", mt_graph_literal_float(g, -INFINITY));
    SAME("1e400", mt_graph_literal_float(g, INFINITY)); /* Python: inf */
    SAME("True", mt_graph_scalar(g, MT_BOOL, 1));
    SAME("False", mt_graph_scalar(g, MT_BOOL, 0));
    SAME("1 / 3", mt_graph_div(g, lit(g, 1), lit(g, 3)));
    SAME("a * (1 + 2)", mt_graph_mul(g, e.a, lit(g, 3)));
    int64_t v3[3] = {1, 2, 3};
    SAME("[1, 2, 3]", mt_graph_constant(g, MT_INT64, 1, SHAPE(3), v3));
    SAME("(1, 2, 3)", mt_graph_constant(g, MT_INT64, 1, SHAPE(3), v3));
    double f4[4] = {1, 2.5, 3, 4};
    SAME("[[1, 2.5], [3, 4]]", mt_graph_constant(g, MT_FLOAT64, 2, SHAPE(2, 2), f4));
    uint8_t b2[2] = {1, 0};
    SAME("[True, False]", mt_graph_constant(g, MT_BOOL, 1, SHAPE(2), b2));
    int64_t ib[2] = {1, 2};
    SAME("[True, 2]", mt_graph_constant(g, MT_INT64, 1, SHAPE(2), ib));
    double none[1] = {0};
    SAME("[]", mt_graph_constant(g, MT_FLOAT64, 1, SHAPE(0), none));
    SAME("[a, b]", mt_graph_stack(g, 2, (mt_var[]){e.a, e.b}, 0));
    SAME("float32(2)", mt_graph_cast(g, lit(g, 2), MT_FLOAT32));
    mt_graph_free(g);
}

MT_TEST(indexing_matches_builders)
{
    env e = make_env();
    mt_graph *g = e.g;
    mt_var m = e.m, t = e.t;
    SAME("m[0, 1:]",
         mt_graph_index(g, m, 2,
                        (mt_idx[]){mt_idx_int(0), mt_idx_slice(1, MT_IDX_NONE, MT_IDX_NONE)}));
    SAME("m[:, ::-1]",
         mt_graph_index(g, m, 2,
                        (mt_idx[]){mt_idx_all(), mt_idx_slice(MT_IDX_NONE, MT_IDX_NONE, -1)}));
    SAME("m[None, ..., 1]",
         mt_graph_index(g, m, 3, (mt_idx[]){mt_idx_newaxis(), mt_idx_ellipsis(), mt_idx_int(1)}));
    SAME("m[-1]", mt_graph_index(g, m, 1, (mt_idx[]){mt_idx_int(-1)}));
    SAME("m[(0, 1)]", mt_graph_index(g, m, 2, (mt_idx[]){mt_idx_int(0), mt_idx_int(1)}));
    SAME("m[0:2:1, 2 - 1]",
         mt_graph_index(g, m, 2, (mt_idx[]){mt_idx_slice(0, 2, 1), mt_idx_int(1)}));
    SAME("m[i]", mt_graph_gather(g, m, e.i, 0));
    SAME("m[:, i]", mt_graph_gather(g, m, e.i, 1));
    SAME("m[..., i]", mt_graph_gather(g, m, e.i, 1));
    SAME("m[1:, i]",
         mt_graph_gather(
             g,
             mt_graph_index(g, m, 2,
                            (mt_idx[]){mt_idx_slice(1, MT_IDX_NONE, MT_IDX_NONE), mt_idx_all()}),
             e.i, 1));
    SAME("t[0, i]",
         mt_graph_gather(g, mt_graph_index(g, t, 2, (mt_idx[]){mt_idx_int(0), mt_idx_all()}), e.i,
                         0));
    SAME("t[i, 0]",
         mt_graph_gather(g, mt_graph_index(g, t, 2, (mt_idx[]){mt_idx_all(), mt_idx_int(0)}), e.i,
                         0));
    SAME("t[None, :, i]",
         mt_graph_gather(
             g, mt_graph_index(g, t, 3, (mt_idx[]){mt_idx_newaxis(), mt_idx_all(), mt_idx_all()}),
             e.i, 2));
    int64_t idx[2] = {1, 0};
    mt_var ci = mt_graph_constant(g, MT_INT64, 1, SHAPE(2), idx);
    SAME("m[:, [1, 0]]", mt_graph_gather(g, m, ci, 1));
    SAME("take(m, [1, 0], axis=1)", mt_graph_gather(g, m, ci, 1));
    SAME("take(m, i)", mt_graph_gather(g, mt_graph_flatten(g, m, 1), e.i, 0));
    SAME("m.shape[1] * a", mt_graph_mul(g, lit(g, 3), e.a));
    SAME("u.shape[1] + a", mt_graph_add(g, lit(g, 3), e.a));
    SAME("split(m, 3, axis=1)[1]", mt_graph_slice_axis(g, m, 1, 1, 2, 1));
    SAME("set_subtensor(m[0, 1:], 5)",
         mt_graph_set_subtensor(
             g, m, 2, (mt_idx[]){mt_idx_int(0), mt_idx_slice(1, MT_IDX_NONE, MT_IDX_NONE)},
             lit(g, 5)));
    SAME("inc_subtensor(m[:, 1], a[:2])",
         mt_graph_inc_subtensor(
             g, m, 2, (mt_idx[]){mt_idx_all(), mt_idx_int(1)},
             mt_graph_index(g, e.a, 1, (mt_idx[]){mt_idx_slice(MT_IDX_NONE, 2, MT_IDX_NONE)})));
    SAME("inc_subtensor(m[i], 1)", mt_graph_scatter_add(g, m, e.i, lit(g, 1), 0));
    SAME("inc_subtensor(m[:, i], 1)", mt_graph_scatter_add(g, m, e.i, lit(g, 1), 1));
    mt_graph_free(g);
}

/* Unary functions: f(a) is the builder's node. */
MT_TEST(unary_functions_match_builders)
{
    static const struct {
        const char *name;
        mt_var (*fn)(mt_graph *, mt_var);
    } tab[] = {
        {"abs", mt_graph_abs},
        {"absolute", mt_graph_abs},
        {"sign", mt_graph_sign},
        {"negative", mt_graph_neg},
        {"exp", mt_graph_exp},
        {"exp2", mt_graph_exp2},
        {"expm1", mt_graph_expm1},
        {"log", mt_graph_log},
        {"log2", mt_graph_log2},
        {"log10", mt_graph_log10},
        {"log1p", mt_graph_log1p},
        {"log1mexp", mt_graph_log1mexp},
        {"sqrt", mt_graph_sqrt},
        {"rsqrt", mt_graph_rsqrt},
        {"square", mt_graph_square},
        {"reciprocal", mt_graph_reciprocal},
        {"sin", mt_graph_sin},
        {"cos", mt_graph_cos},
        {"tan", mt_graph_tan},
        {"arcsin", mt_graph_arcsin},
        {"asin", mt_graph_arcsin},
        {"arccos", mt_graph_arccos},
        {"acos", mt_graph_arccos},
        {"arctan", mt_graph_arctan},
        {"atan", mt_graph_arctan},
        {"sinh", mt_graph_sinh},
        {"cosh", mt_graph_cosh},
        {"tanh", mt_graph_tanh},
        {"erf", mt_graph_erf},
        {"erfc", mt_graph_erfc},
        {"sigmoid", mt_graph_sigmoid},
        {"expit", mt_graph_sigmoid},
        {"softplus", mt_graph_softplus},
        {"relu", mt_graph_relu},
        {"floor", mt_graph_floor},
        {"ceil", mt_graph_ceil},
        {"trunc", mt_graph_trunc},
        {"round", mt_graph_round},
        {"around", mt_graph_round},
        {"isnan", mt_graph_isnan},
        {"isinf", mt_graph_isinf},
        {"isfinite", mt_graph_isfinite},
        {"logical_not", mt_graph_logical_not},
        {"stop_gradient", mt_graph_stop_gradient},
        {"disconnected_grad", mt_graph_stop_gradient},
        {"consider_constant", mt_graph_stop_gradient},
    };
    env e = make_env();
    mt_graph *g = e.g;
    char text[64];
    for (size_t k = 0; k < sizeof(tab) / sizeof(tab[0]); k++) {
        snprintf(text, sizeof text, "%s(a)", tab[k].name);
        SAME(text, tab[k].fn(g, e.a));
        snprintf(text, sizeof text, "a.%s()", tab[k].name);
        SAME(text, tab[k].fn(g, e.a));
        snprintf(text, sizeof text, "np.%s(a)", tab[k].name);
        SAME(text, tab[k].fn(g, e.a));
    }
    mt_graph_free(g);
}

MT_TEST(binary_functions_match_builders)
{
    static const struct {
        const char *name;
        mt_var (*fn)(mt_graph *, mt_var, mt_var);
    } tab[] = {
        {"add", mt_graph_add},
        {"subtract", mt_graph_sub},
        {"multiply", mt_graph_mul},
        {"divide", mt_graph_div},
        {"true_divide", mt_graph_div},
        {"floor_divide", mt_graph_floordiv},
        {"mod", mt_graph_mod},
        {"remainder", mt_graph_mod},
        {"power", mt_graph_pow},
        {"pow", mt_graph_pow},
        {"maximum", mt_graph_maximum},
        {"minimum", mt_graph_minimum},
        {"arctan2", mt_graph_arctan2},
        {"atan2", mt_graph_arctan2},
        {"logaddexp", mt_graph_logaddexp},
        {"equal", mt_graph_eq},
        {"not_equal", mt_graph_ne},
        {"less", mt_graph_lt},
        {"less_equal", mt_graph_le},
        {"greater", mt_graph_gt},
        {"greater_equal", mt_graph_ge},
        {"logical_and", mt_graph_logical_and},
        {"logical_or", mt_graph_logical_or},
        {"logical_xor", mt_graph_logical_xor},
        {"dot", mt_graph_dot},
        {"matmul", mt_graph_matmul},
    };
    env e = make_env();
    mt_graph *g = e.g;
    char text[64];
    for (size_t k = 0; k < sizeof(tab) / sizeof(tab[0]); k++) {
        snprintf(text, sizeof text, "%s(a, b)", tab[k].name);
        SAME(text, tab[k].fn(g, e.a, e.b));
        snprintf(text, sizeof text, "a.%s(b)", tab[k].name);
        SAME(text, tab[k].fn(g, e.a, e.b));
    }
    SAME("bitwise_and(ia, ib)", mt_graph_binary(g, MT_SOP_BITAND, e.ia, e.ib));
    SAME("bitwise_or(ia, ib)", mt_graph_binary(g, MT_SOP_BITOR, e.ia, e.ib));
    SAME("bitwise_xor(ia, ib)", mt_graph_binary(g, MT_SOP_BITXOR, e.ia, e.ib));
    SAME("left_shift(ia, ib)", mt_graph_binary(g, MT_SOP_LSHIFT, e.ia, e.ib));
    SAME("right_shift(ia, ib)", mt_graph_binary(g, MT_SOP_RSHIFT, e.ia, e.ib));
    SAME("invert(ia)", mt_graph_unary(g, MT_SOP_BITNOT, e.ia));
    SAME("bitwise_not(bl)", mt_graph_logical_not(g, e.bl));
    SAME("positive(a)", e.a);
    SAME("where(a > 0, a, b)", mt_graph_where(g, mt_graph_gt(g, e.a, lit(g, 0)), e.a, e.b));
    SAME("switch(bl, a, 0)", mt_graph_where(g, e.bl, e.a, lit(g, 0)));
    SAME("clip(a, 0, 1)", mt_graph_clip(g, e.a, lit(g, 0), lit(g, 1)));
    SAME("a.clip(0, None)", mt_graph_maximum(g, e.a, lit(g, 0)));
    SAME("clip(a, None, b)", mt_graph_minimum(g, e.a, e.b));
    SAME("cast(a, float64)", mt_graph_cast(g, e.a, MT_FLOAT64));
    SAME("a.astype('float64')", mt_graph_cast(g, e.a, MT_FLOAT64));
    SAME("float64(a)", mt_graph_cast(g, e.a, MT_FLOAT64));
    SAME("np.float64(a)", mt_graph_cast(g, e.a, MT_FLOAT64));
    SAME("cast(a, 'f16')", mt_graph_cast(g, e.a, MT_FLOAT16));
    SAME("a.astype(b.dtype)", e.a);
    SAME("grad_clip(a, -1, 1)", mt_graph_grad_clip(g, e.a, -1, 1));
    SAME("round(a, 2)",
         mt_graph_div(g, mt_graph_round(g, mt_graph_mul(g, e.a, mt_graph_literal_float(g, 100))),
                      mt_graph_literal_float(g, 100)));
    mt_graph_free(g);
}

MT_TEST(reductions_and_nnet_match_builders)
{
    env e = make_env();
    mt_graph *g = e.g;
    mt_var m = e.m;
    SAME("sum(m)", mt_graph_sum(g, m, 0, NULL, false));
    SAME("m.sum(axis=0)", mt_graph_sum(g, m, 1, AXES(0), false));
    SAME("m.sum(1, keepdims=True)", mt_graph_sum(g, m, 1, AXES(1), true));
    SAME("sum(m, axis=(0, 1))", mt_graph_sum(g, m, 2, AXES(0, 1), false));
    SAME("sum(m, axis=-1)", mt_graph_sum(g, m, 1, AXES(-1), false));
    SAME("sum(m, dtype=float32)", mt_graph_sum(g, mt_graph_cast(g, m, MT_FLOAT32), 0, NULL, false));
    SAME("sum(ia, dtype=int32)", mt_graph_cast(g, mt_graph_sum(g, e.ia, 0, NULL, false), MT_INT32));
    SAME("sum(ia, axis=())", mt_graph_cast(g, e.ia, MT_INT64));
    SAME("prod(m, axis=0)", mt_graph_prod(g, m, 1, AXES(0), false));
    SAME("mean(m, axis=1)", mt_graph_mean(g, m, 1, AXES(1), false));
    SAME("max(m, axis=1)", mt_graph_max(g, m, 1, AXES(1), false));
    SAME("amax(m)", mt_graph_max(g, m, 0, NULL, false));
    SAME("min(m, axis=0, keepdims=True)", mt_graph_min(g, m, 1, AXES(0), true));
    SAME("amin(m)", mt_graph_min(g, m, 0, NULL, false));
    SAME("argmax(m, axis=1)", mt_graph_argmax(g, m, 1, AXES(1), false));
    SAME("m.argmin()", mt_graph_argmin(g, m, 0, NULL, false));
    SAME("all(bl)", mt_graph_all(g, e.bl, 0, NULL, false));
    SAME("any(m > 0, axis=0)", mt_graph_any(g, mt_graph_gt(g, m, lit(g, 0)), 1, AXES(0), false));
    SAME("var(m, axis=0)", mt_graph_var(g, m, 1, AXES(0), false, 0));
    SAME("m.std(ddof=1)", mt_graph_std(g, m, 0, NULL, false, 1));
    SAME("logsumexp(m, axis=1, keepdims=True)", mt_graph_logsumexp(g, m, 1, AXES(1), true));
    SAME("softmax(m)", mt_graph_softmax(g, m, -1));
    SAME("softmax(m, axis=0)", mt_graph_softmax(g, m, 0));
    SAME("logsoftmax(m)", mt_graph_logsoftmax(g, m, -1));
    SAME("log_softmax(m, 0)", mt_graph_logsoftmax(g, m, 0));
    SAME("crossentropy(softmax(m), softmax(m))",
         mt_graph_crossentropy(g, mt_graph_softmax(g, m, -1), mt_graph_softmax(g, m, -1), -1));
    SAME("categorical_crossentropy(softmax(m), lab)",
         mt_graph_crossentropy_labels(g, mt_graph_softmax(g, m, -1), e.lab, -1));
    SAME("softmax_crossentropy(m, lab)", mt_graph_softmax_crossentropy_labels(g, m, e.lab, -1));
    SAME("softmax_cross_entropy(m, m)", mt_graph_softmax_crossentropy(g, m, m, -1));
    SAME("sigmoid_crossentropy_logits(a, b)", mt_graph_sigmoid_crossentropy_logits(g, e.a, e.b));
    SAME("binary_crossentropy_logits(a, b)", mt_graph_sigmoid_crossentropy_logits(g, e.a, e.b));
    SAME("sigmoid_cross_entropy_with_logits(a, b)",
         mt_graph_sigmoid_crossentropy_logits(g, e.a, e.b));
    mt_graph_free(g);
}

MT_TEST(shape_functions_match_builders)
{
    env e = make_env();
    mt_graph *g = e.g;
    mt_var m = e.m, t = e.t;
    SAME("reshape(m, (3, 2))", mt_graph_reshape(g, m, 2, SHAPE(3, 2)));
    SAME("m.reshape(3, 2)", mt_graph_reshape(g, m, 2, SHAPE(3, 2)));
    SAME("m.reshape((3, -1))", mt_graph_reshape(g, m, 2, SHAPE(3, -1)));
    SAME("m.reshape(6)", mt_graph_reshape(g, m, 1, SHAPE(6)));
    SAME("transpose(t)", mt_graph_transpose(g, t, NULL));
    SAME("t.transpose(1, 0, 2)", mt_graph_transpose(g, t, AXES(1, 0, 2)));
    SAME("transpose(t, (2, 0, 1))", mt_graph_transpose(g, t, AXES(2, 0, 1)));
    SAME("swapaxes(t, 0, -1)", mt_graph_transpose(g, t, AXES(2, 1, 0)));
    SAME("m.dimshuffle(1, 'x', 0)", mt_graph_dimshuffle(g, m, 3, AXES(1, -1, 0)));
    SAME("dimshuffle(m, (1, 'x', 0))", mt_graph_dimshuffle(g, m, 3, AXES(1, -1, 0)));
    SAME("flatten(t)", mt_graph_flatten(g, t, 1));
    SAME("t.flatten(2)", mt_graph_flatten(g, t, 2));
    SAME("ravel(t)", mt_graph_flatten(g, t, 1));
    SAME("expand_dims(m, 0)", mt_graph_expand_dims(g, m, 0));
    SAME("expand_dims(m, (0, -1))", mt_graph_expand_dims(g, mt_graph_expand_dims(g, m, 0), 3));
    mt_var m1 = mt_graph_expand_dims(g, m, 1);
    SAME("squeeze(m[:, None])", mt_graph_squeeze(g, m1, 0, NULL));
    SAME("m[:, None].squeeze(axis=1)", mt_graph_squeeze(g, m1, 1, AXES(1)));
    SAME("broadcast_to(a, (2, 3))", mt_graph_broadcast_to(g, e.a, 2, SHAPE(2, 3)));
    SAME("broadcast_to(a, m.shape)", mt_graph_broadcast_to(g, e.a, 2, SHAPE(2, 3)));
    SAME("broadcast_to(a, u.shape)", mt_graph_broadcast_like(g, e.a, e.u));
    SAME("concatenate([a, b])", mt_graph_concatenate(g, 2, (mt_var[]){e.a, e.b}, 0));
    SAME("concatenate((m, m), axis=1)", mt_graph_concatenate(g, 2, (mt_var[]){m, m}, 1));
    SAME("concatenate([m, a], axis=None)",
         mt_graph_concatenate(g, 2, (mt_var[]){mt_graph_flatten(g, m, 1), e.a}, 0));
    SAME("stack([a, b], axis=1)", mt_graph_stack(g, 2, (mt_var[]){e.a, e.b}, 1));
    mt_var parts[2];
    MT_CHECK_OK(mt_graph_split(g, e.c, 0, 2, NULL, parts));
    SAME("split(c, 2)[1]", parts[1]);
    MT_CHECK_OK(mt_graph_split(g, e.c, 0, 2, SHAPE(1, -1), parts));
    SAME("split(c, [1])[1]", parts[1]);
    SAME("one_hot(lab, 4)", mt_graph_one_hot(g, e.lab, 4, MT_FLOAT64));
    SAME("to_one_hot(lab, 4, dtype=float32)", mt_graph_one_hot(g, e.lab, 4, MT_FLOAT32));
    mt_graph_free(g);
}

MT_TEST(generators_match_builders)
{
    env e = make_env();
    mt_graph *g = e.g;
    SAME("arange(5)", mt_graph_arange(g, MT_INT64, 0, 5, 1));
    SAME("arange(1, 2, 0.25)", mt_graph_arange(g, MT_FLOAT64, 1, 2, 0.25));
    SAME("arange(3, dtype=float32)", mt_graph_arange(g, MT_FLOAT32, 0, 3, 1));
    SAME("zeros((2, 2))", mt_graph_zeros(g, MT_FLOAT64, 2, SHAPE(2, 2)));
    SAME("zeros(3, int32)", mt_graph_zeros(g, MT_INT32, 1, SHAPE(3)));
    SAME("ones((2,), dtype='float32')", mt_graph_ones(g, MT_FLOAT32, 1, SHAPE(2)));
    SAME("full((2, 3), 7)", mt_graph_full(g, MT_INT64, 2, SHAPE(2, 3), 7));
    SAME("full(2, 1.5)", mt_graph_full(g, MT_FLOAT64, 1, SHAPE(2), 1.5));
    SAME("full(2, True)", mt_graph_full(g, MT_BOOL, 1, SHAPE(2), 1));
    SAME("zeros(u.shape, float32)", mt_graph_full_like(g, e.u, MT_FLOAT32, 0));
    SAME("zeros_like(a)", mt_graph_zeros_like(g, e.a));
    SAME("ones_like(a)", mt_graph_ones_like(g, e.a));
    SAME("a.full_like(3, dtype=int8)", mt_graph_full_like(g, e.a, MT_INT8, 3));
    /* random draws are never merged: check the node's op and attributes */
    mt_var r = PARSE(g, "uniform(-1, 1, size=(2, 3), dtype=float32)");
    const mt_op_attrs *at = mt_graph_attrs(g, r);
    MT_CHECK_EQ_INT(mt_graph_op(g, r), MT_OP_RANDOM);
    MT_CHECK_EQ_INT(at->dist, MT_RANDOM_UNIFORM);
    MT_CHECK(at->p0 == -1 && at->p1 == 1);
    CHECK_TYPE(g, r, "float32[2,3]");
    r = PARSE(g, "np.random.normal(size=u.shape)");
    MT_CHECK_EQ_INT(mt_graph_attrs(g, r)->dist, MT_RANDOM_NORMAL);
    MT_CHECK(mt_graph_attrs(g, r)->p0 == 0 && mt_graph_attrs(g, r)->p1 == 1);
    CHECK_TYPE(g, r, "float64[?,3]");
    r = PARSE(g, "binomial(1, 0.25, a.shape, float32)");
    MT_CHECK_EQ_INT(mt_graph_attrs(g, r)->dist, MT_RANDOM_BINOMIAL);
    MT_CHECK(mt_graph_attrs(g, r)->p0 == 1 && mt_graph_attrs(g, r)->p1 == 0.25);
    CHECK_TYPE(g, r, "float32[3]");
    r = PARSE(g, "random_uniform()");
    CHECK_TYPE(g, r, "float64[]");
    MT_CHECK(PARSE(g, "uniform(size=2)") != PARSE(g, "uniform(size=2)"));
    mt_graph_free(g);
}

/* ---------------------------------------------------------------- precedence */

MT_TEST(precedence_table)
{
    env e = make_env();
    mt_graph *g = e.g;
    /* clang-format off */
    static const char *const pairs[][2] = {
        {"a + b * a", "a + (b * a)"},
        {"a * b + a", "(a * b) + a"},
        {"a - b + a", "(a - b) + a"},
        {"a / b * a", "(a / b) * a"},
        {"a // b % a", "(a // b) % a"},
        {"-a ** b", "-(a ** b)"},
        {"a ** -b", "a ** (-b)"},
        {"a ** b ** a", "a ** (b ** a)"},
        {"-a * b", "(-a) * b"},
        {"- - a", "-(-a)"},
        {"a + b < a * b", "(a + b) < (a * b)"},
        {"ia | ib & ia", "ia | (ib & ia)"},
        {"ia ^ ib & ia", "ia ^ (ib & ia)"},
        {"ia | ib ^ ia", "ia | (ib ^ ia)"},
        {"ia & ib << ia", "ia & (ib << ia)"},
        {"ia << ib + ia", "ia << (ib + ia)"},
        {"ia >> ib - ia", "ia >> (ib - ia)"},
        {"~ia + ib", "(~ia) + ib"},
        {"ia | ib < ia", "(ia | ib) < ia"},
        {"not a < b and b < a", "(not (a < b)) and (b < a)"},
        {"a < b or b < a and a == b", "(a < b) or ((b < a) and (a == b))"},
        {"not a == b", "not (a == b)"},
        {"a if a < b else b if b < a else a", "a if (a < b) else (b if (b < a) else a)"},
        {"a + 1 if bl else b", "(a + 1) if bl else b"},
        {"-a.sum()", "-(a.sum())"},
        {"a[0] ** 2", "(a[0]) ** 2"},
        {"-m.T[0]", "-((m.T)[0])"},
        {"a @ q + a", "(a @ q) + a"},
        {"a * b @ q", "(a * b) @ q"},
        {"a @ q * b", "(a @ q) * b"},
        {"a < b == b", "(a < b) & (b == b)"},
        {"2 ** 3 ** 2 * a", "512 * a"},
        {"-2 ** 2 * a", "-4 * a"},
        {"(-2) ** 2 * a", "4 * a"},
        {"a\n  +\n  b  # comment", "a + b"},
        {"a + \\\n b", "a + b"},
    };
    /* clang-format on */
    for (size_t k = 0; k < sizeof(pairs) / sizeof(pairs[0]); k++)
        EQUIV(pairs[k][0], pairs[k][1]);
    mt_graph_free(g);
}

/* ---------------------------------------------------------------- every function */

/* clang-format off */
static const char *const examples[][2] = {
    {"abs", "abs(a)"}, {"absolute", "absolute(a)"}, {"sign", "sign(a)"},
    {"negative", "negative(a)"}, {"positive", "positive(a)"}, {"exp", "exp(a)"},
    {"exp2", "exp2(a)"}, {"expm1", "expm1(a)"}, {"log", "log(a)"}, {"log2", "log2(a)"},
    {"log10", "log10(a)"}, {"log1p", "log1p(a)"}, {"log1mexp", "log1mexp(-a)"},
    {"sqrt", "sqrt(a)"}, {"rsqrt", "rsqrt(a)"}, {"square", "square(a)"},
    {"reciprocal", "reciprocal(a)"}, {"sin", "sin(a)"}, {"cos", "cos(a)"}, {"tan", "tan(a)"},
    {"arcsin", "arcsin(a)"}, {"asin", "asin(a)"}, {"arccos", "arccos(a)"}, {"acos", "acos(a)"},
    {"arctan", "arctan(a)"}, {"atan", "atan(a)"}, {"sinh", "sinh(a)"}, {"cosh", "cosh(a)"},
    {"tanh", "tanh(a)"}, {"erf", "erf(a)"}, {"erfc", "erfc(a)"}, {"sigmoid", "sigmoid(a)"},
    {"expit", "expit(a)"}, {"softplus", "softplus(a)"}, {"relu", "relu(a)"},
    {"floor", "floor(a)"}, {"ceil", "ceil(a)"}, {"trunc", "trunc(a)"}, {"isnan", "isnan(a)"},
    {"isinf", "isinf(a)"}, {"isfinite", "isfinite(a)"}, {"logical_not", "logical_not(a)"},
    {"invert", "invert(ia)"}, {"bitwise_not", "bitwise_not(ia)"}, {"round", "round(a, 1)"},
    {"around", "around(a)"}, {"stop_gradient", "stop_gradient(a)"},
    {"disconnected_grad", "disconnected_grad(a)"}, {"consider_constant", "consider_constant(a)"},
    {"grad_clip", "grad_clip(a, -1, 1)"}, {"add", "add(a, 1)"}, {"subtract", "subtract(a, b)"},
    {"multiply", "multiply(a, b)"}, {"divide", "divide(a, b)"},
    {"true_divide", "true_divide(ia, ib)"}, {"floor_divide", "floor_divide(a, b)"},
    {"mod", "mod(ia, 3)"}, {"remainder", "remainder(a, b)"}, {"power", "power(a, 2)"},
    {"pow", "pow(a, b)"}, {"maximum", "maximum(a, 0)"}, {"minimum", "minimum(a, b)"},
    {"arctan2", "arctan2(a, b)"}, {"atan2", "atan2(a, b)"}, {"logaddexp", "logaddexp(a, b)"},
    {"equal", "equal(a, b)"}, {"not_equal", "not_equal(a, b)"}, {"less", "less(a, b)"},
    {"less_equal", "less_equal(a, b)"}, {"greater", "greater(a, b)"},
    {"greater_equal", "greater_equal(a, b)"}, {"logical_and", "logical_and(a, b)"},
    {"logical_or", "logical_or(a, b)"}, {"logical_xor", "logical_xor(a, b)"},
    {"bitwise_and", "bitwise_and(ia, ib)"}, {"bitwise_or", "bitwise_or(ia, ib)"},
    {"bitwise_xor", "bitwise_xor(ia, ib)"}, {"left_shift", "left_shift(ia, 1)"},
    {"right_shift", "right_shift(ia, 1)"}, {"where", "where(bl, a, b)"},
    {"switch", "switch(a > 0, a, 0)"}, {"clip", "clip(a, 0, 1)"}, {"cast", "cast(a, int8)"},
    {"astype", "a.astype('float16')"}, {"dot", "dot(m, q)"}, {"matmul", "matmul(q, a)"},
    {"sum", "sum(m, axis=0)"}, {"prod", "prod(m)"}, {"mean", "mean(m, 1)"},
    {"max", "max(m)"}, {"amax", "amax(m, 0)"}, {"min", "min(m)"}, {"amin", "amin(m, 1)"},
    {"argmax", "argmax(m, axis=1)"}, {"argmin", "argmin(m)"}, {"all", "all(bl)"},
    {"any", "any(bl)"}, {"var", "var(m)"}, {"std", "std(m, 0, ddof=1)"},
    {"logsumexp", "logsumexp(m, axis=1)"}, {"softmax", "softmax(m)"},
    {"logsoftmax", "logsoftmax(m)"}, {"log_softmax", "log_softmax(m)"},
    {"crossentropy", "crossentropy(softmax(m), lab)"},
    {"categorical_crossentropy", "categorical_crossentropy(softmax(m), softmax(m))"},
    {"softmax_crossentropy", "softmax_crossentropy(m, lab)"},
    {"softmax_cross_entropy", "softmax_cross_entropy(m, softmax(m))"},
    {"sigmoid_crossentropy_logits", "sigmoid_crossentropy_logits(a, b)"},
    {"sigmoid_cross_entropy_with_logits", "sigmoid_cross_entropy_with_logits(a, b)"},
    {"binary_crossentropy_logits", "binary_crossentropy_logits(a, b)"},
    {"binary_crossentropy", "binary_crossentropy(sigmoid(a), b)"},
    {"conv2d", "conv2d(t[None], t[None, :, :2, :2], stride=1, pad=(1, 0))"},
    {"max_pool2d", "max_pool2d(t[None], 2, ceil_mode=True)"},
    {"avg_pool2d", "avg_pool2d(t[None], (2, 3), stride=1, pad=1)"},
    {"reshape", "reshape(m, -1)"}, {"transpose", "transpose(m)"},
    {"swapaxes", "swapaxes(t, 0, 1)"}, {"dimshuffle", "dimshuffle(a, 'x', 0)"},
    {"flatten", "flatten(t, 2)"}, {"ravel", "ravel(m)"}, {"expand_dims", "expand_dims(a, 1)"},
    {"squeeze", "squeeze(a[None])"}, {"broadcast_to", "broadcast_to(a, (4, 3))"},
    {"concatenate", "concatenate([a, b, c])"}, {"stack", "stack([a, b])"},
    {"split", "split(c, 4)[3]"}, {"take", "take(a, i)"}, {"one_hot", "one_hot(lab, 3)"},
    {"to_one_hot", "to_one_hot(lab, 3)"}, {"set_subtensor", "set_subtensor(a[0], 1)"},
    {"inc_subtensor", "inc_subtensor(m[:, 1:], q[:2, :2])"}, {"arange", "arange(2, 10, 3)"},
    {"zeros", "zeros(3)"}, {"ones", "ones((2, 2), int8)"}, {"full", "full(2, pi)"},
    {"zeros_like", "zeros_like(m)"}, {"ones_like", "ones_like(m, dtype=bool)"},
    {"full_like", "full_like(a, 2)"}, {"uniform", "uniform(size=3)"},
    {"random_uniform", "random_uniform(0, 2, (2,))"}, {"normal", "normal(1, 2, size=(2, 2))"},
    {"random_normal", "random_normal(size=a.shape)"}, {"binomial", "binomial(3, 0.5, 4)"},
    {"random_binomial", "random_binomial(1, 0.5, size=(2,), dtype=float32)"},
};
/* clang-format on */

MT_TEST(every_function_parses)
{
    env e = make_env();
    mt_graph *g = e.g;
    int32_t n = mt_parse_function_count();
    MT_CHECK(n >= 130);
    size_t nex = sizeof(examples) / sizeof(examples[0]);
    for (int32_t k = 0; k < n; k++) {
        const char *name = mt_parse_function_name(k);
        const char *sig = mt_parse_function_signature(k);
        MT_CHECK(name && sig);
        MT_CHECK(!strncmp(sig, name, strlen(name)) && sig[strlen(name)] == '(');
        size_t j = 0;
        while (j < nex && strcmp(examples[j][0], name))
            j++;
        if (j == nex) mt_test_fail(__FILE__, __LINE__, "no example for function '%s'", name);
        MT_CHECK(strstr(examples[j][1], name) != NULL);
        mt_var v = PARSE(g, examples[j][1]);
        MT_CHECK(mt_graph_valid(g, v));
    }
    MT_CHECK(mt_parse_function_name(n) == NULL && mt_parse_function_name(-1) == NULL);
    MT_CHECK(mt_parse_function_signature(n) == NULL);
    MT_CHECK_OK(mt_graph_verify(g));
    mt_graph_free(g);
}

/* Every function and alias is documented in docs/expressions.md. */
MT_TEST(every_function_documented)
{
    char *doc = NULL;
    size_t len = 0;
    MT_CHECK_OK(mt_file_read_all(MT_DOCS_DIR "/expressions.md", &doc, &len, 0));
    for (int32_t k = 0; k < mt_parse_function_count(); k++) {
        const char *name = mt_parse_function_name(k);
        size_t nl = strlen(name);
        bool found = false;
        /* a whole word in a table row */
        for (const char *p = strstr(doc, name); p && !found; p = strstr(p + 1, name)) {
            char before = p > doc ? p[-1] : ' ', after = p[nl];
            bool word = !(isalnum((unsigned char)before) || before == '_') &&
                        !(isalnum((unsigned char)after) || after == '_');
            const char *ls = p;
            while (ls > doc && ls[-1] != '\n')
                ls--;
            found = word && ls[0] == '|';
        }
        if (!found) mt_test_fail(__FILE__, __LINE__, "function '%s' is not documented", name);
    }
    mt_free(doc);
}

/* ---------------------------------------------------------------- errors */

typedef struct err_case {
    const char *text;
    mt_status status;
    int line, col;
    const char *needle;
} err_case;

/* clang-format off */
static const err_case error_cases[] = {
    /* syntax */
    {"", MT_ERR_INVALID, 1, 1, "empty expression"},
    {"   # only a comment", MT_ERR_INVALID, 1, 1, "empty expression"},
    {"a +", MT_ERR_INVALID, 1, 4, "unexpected end of expression"},
    {"a + * b", MT_ERR_INVALID, 1, 5, "unexpected '*'"},
    {"(a", MT_ERR_INVALID, 1, 1, "'(' was never closed"},
    {"[a, b", MT_ERR_INVALID, 1, 1, "'[' was never closed"},
    {"exp(a", MT_ERR_INVALID, 1, 4, "'(' was never closed"},
    {"m[0", MT_ERR_INVALID, 1, 2, "'[' was never closed"},
    {"a)", MT_ERR_INVALID, 1, 2, "unmatched ')'"},
    {"a b", MT_ERR_INVALID, 1, 3, "missing an operator"},
    {"1abc", MT_ERR_INVALID, 1, 2, "invalid decimal literal"},
    {"012", MT_ERR_INVALID, 1, 1, "leading zeros"},
    {"1e", MT_ERR_INVALID, 1, 1, "exponent has no digits"},
    {"1__0", MT_ERR_INVALID, 1, 2, "'_' must be between digits"},
    {"0x", MT_ERR_INVALID, 1, 1, "invalid hexadecimal literal"},
    {"3j", MT_ERR_INVALID, 1, 1, "complex numbers are not supported"},
    {"99999999999999999999999", MT_ERR_RANGE, 1, 1, "more than 64 bits"},
    {"9223372036854775808", MT_ERR_RANGE, 1, 1, "does not fit in int64"},
    {"'abc", MT_ERR_INVALID, 1, 1, "unterminated string literal"},
    {"cast(a, r'x')", MT_ERR_INVALID, 1, 9, "string prefixes"},
    {"'a' 'b'", MT_ERR_INVALID, 1, 5, "implicit string concatenation"},
    {"a = b", MT_ERR_INVALID, 1, 3, "did you mean '=='?"},
    {"a += 1", MT_ERR_INVALID, 1, 3, "assignment is not allowed"},
    {"(a := 1)", MT_ERR_INVALID, 1, 4, "unexpected ':='"},
    {"lambda x: x", MT_ERR_INVALID, 1, 1, "'lambda' is not supported"},
    {"a if bl", MT_ERR_INVALID, 1, 8, "expected 'else'"},
    {"a else b", MT_ERR_INVALID, 1, 3, "'else' without 'if'"},
    {"[x for x in a]", MT_ERR_INVALID, 1, 4, "comprehensions are not supported"},
    {"sum(x for x in a)", MT_ERR_INVALID, 1, 7, "comprehensions are not supported"},
    {"{1: 2}", MT_ERR_INVALID, 1, 1, "dict and set displays"},
    {"a $ b", MT_ERR_INVALID, 1, 3, "unexpected character '$'"},
    {"a ! b", MT_ERR_INVALID, 1, 3, "use 'not' or '!='"},
    {"a\x01", MT_ERR_INVALID, 1, 2, "control character"},
    {"a + \xc3\xa9", MT_ERR_INVALID, 1, 5, "non-ASCII"},
    {"exp(a=1, a)", MT_ERR_INVALID, 1, 10, "positional argument follows keyword argument"},
    {"exp(x=1, x=2)", MT_ERR_INVALID, 1, 10, "keyword argument repeated"},
    {"exp(*a)", MT_ERR_INVALID, 1, 5, "unpacking is not supported"},
    {"a is b", MT_ERR_INVALID, 1, 3, "'is' comparisons are not supported"},
    {"a in b", MT_ERR_INVALID, 1, 3, "'in' comparisons"},
    {"a[]", MT_ERR_INVALID, 1, 3, "empty subscript"},
    {"a.", MT_ERR_INVALID, 1, 3, "expected an attribute name"},
    {"a.1", MT_ERR_INVALID, 1, 2, "missing an operator"},
    {"for", MT_ERR_INVALID, 1, 1, "'for' is not supported"},
    {"a +\n  (b *", MT_ERR_INVALID, 2, 3, "'(' was never closed"},
    {"a +\n\n  *", MT_ERR_INVALID, 3, 3, "unexpected '*'"},
    /* names and arguments */
    {"x + a", MT_ERR_INVALID, 1, 1, "name 'x' is not defined (did you mean 'a'?)"},
    {"bb", MT_ERR_INVALID, 1, 1, "did you mean 'b'?"},
    {"flaot32(a)", MT_ERR_INVALID, 1, 1,
     "function 'flaot32' is not defined (did you mean 'float32'?)"},
    {"expp(a)", MT_ERR_INVALID, 1, 1, "function 'expp' is not defined (did you mean 'exp'?)"},
    {"sigmiod(a)", MT_ERR_INVALID, 1, 1, "did you mean 'sigmoid'?"},
    {"qwertyuiop(a)", MT_ERR_INVALID, 1, 1, "function 'qwertyuiop' is not defined"},
    {"sum(a, axes=0)", MT_ERR_INVALID, 1, 8,
     "unexpected keyword argument 'axes' (did you mean 'axis'?)"},
    {"sum(a, 0, None, True)", MT_ERR_INVALID, 1, 17, "takes at most 3 positional arguments"},
    {"exp(a, b)", MT_ERR_INVALID, 1, 8, "exp() takes at most 1 positional argument"},
    {"clip(a)", MT_ERR_INVALID, 1, 1, "clip() missing required argument 'a_min'"},
    {"sum(a, axis=0, axis=1)", MT_ERR_INVALID, 1, 16, "keyword argument repeated"},
    {"sum(a, 0, axis=1)", MT_ERR_INVALID, 1, 11, "multiple values for argument 'axis'"},
    {"sum(a, axis=a)", MT_ERR_INVALID, 1, 13, "'axis' must be an int"},
    {"a.reshape(b)", MT_ERR_INVALID, 1, 11, "'shape' must be an int or a tuple"},
    {"cast(a, 'flaot32')", MT_ERR_DTYPE, 1, 9, "unknown dtype 'flaot32' (did you mean 'float32'?)"},
    {"a.foo", MT_ERR_INVALID, 1, 3, "no attribute or method 'foo'"},
    {"a.sum2()", MT_ERR_INVALID, 1, 3, "did you mean 'sum'?"},
    {"np.foo(a)", MT_ERR_INVALID, 1, 4, "module 'np' has no function or constant 'foo'"},
    {"a(1)", MT_ERR_INVALID, 1, 1, "'a' is an array, not a function"},
    {"exp", MT_ERR_INVALID, 1, 1, "got the function 'exp'"},
    {"float32", MT_ERR_INVALID, 1, 1, "expected an array, got dtype"},
    {"a.dtype", MT_ERR_INVALID, 1, 3, "expected an array, got dtype"},
    {"None", MT_ERR_INVALID, 1, 1, "expected an array, got None"},
    {"(a, b)", MT_ERR_INVALID, 1, 1, "gives a tuple of 2 values"},
    {"set_subtensor(a, 1)", MT_ERR_INVALID, 1, 15, "must be an indexing expression"},
    {"set_subtensor(a[i], 1)", MT_ERR_UNSUPPORTED, 1, 16, "only supported by inc_subtensor"},
    {"split(c, [2, 1])[0]", MT_ERR_INVALID, 1, 14, "increasing"},
    {"split(c, 2)[2]", MT_ERR_RANGE, 1, 13, "out of range for a tuple of length 2"},
    {"u.shape[0]", MT_ERR_INVALID, 1, 8, "not known when the graph is built"},
    {"u.shape + 1", MT_ERR_INVALID, 1, 3, "can only be used as a shape argument"},
    {"clip(a, None, None)", MT_ERR_INVALID, 1, 1, "one of a_min and a_max"},
    /* indexing */
    {"a[1.5]", MT_ERR_INVALID, 1, 3, "indices must be integers"},
    {"a[bl]", MT_ERR_INVALID, 1, 3, "boolean mask indexing is not supported"},
    {"a[a]", MT_ERR_INVALID, 1, 3, "array indices must be integers, got float32"},
    {"m[i, i]", MT_ERR_INVALID, 1, 6, "only one integer array index"},
    {"t[0, :, i]", MT_ERR_INVALID, 1, 2, "not next to it"},
    {"a[i:]", MT_ERR_INVALID, 1, 3, "slice bounds must be integer literals"},
    {"a[True]", MT_ERR_INVALID, 1, 3, "boolean indices"},
    /* constant arithmetic */
    {"2 ** 64", MT_ERR_RANGE, 1, 3, "integer overflow"},
    {"1 // 0", MT_ERR_INVALID, 1, 3, "division or modulo by zero"},
    {"a * (5 % 0)", MT_ERR_INVALID, 1, 8, "division or modulo by zero"},
    {"[[1, 2], [3]]", MT_ERR_SHAPE, 1, 10, "ragged nested sequence"},
    {"[1, [2]]", MT_ERR_SHAPE, 1, 5, "ragged nested sequence"},
    {"[a, 'x']", MT_ERR_INVALID, 1, 5, "expected an array, got str"},
    /* types and shapes from the builders */
    {"a + c", MT_ERR_SHAPE, 1, 3, "add: shapes (3,) and (4,) do not broadcast"},
    {"exp(a) * sin(c)", MT_ERR_SHAPE, 1, 8, "mul: shapes (3,) and (4,) do not broadcast"},
    {"a + b[1:]", MT_ERR_SHAPE, 1, 3, "add: shapes (3,) and (2,) do not broadcast"},
    {"sum(a, axis=1)", MT_ERR_INVALID, 1, 1, "axis 1 is out of range"},
    {"m.reshape(4, 2)", MT_ERR_SHAPE, 1, 3, "reshape"},
    {"a[5]", MT_ERR_RANGE, 1, 2, "index 5 is out of bounds for axis 0 with size 3"},
    {"a[::0]", MT_ERR_INVALID, 1, 2, "step"},
    {"ia + ~a", MT_ERR_DTYPE, 1, 6, "bitnot"},
    {"a & b", MT_ERR_DTYPE, 1, 3, "bitand"},
    {"ia + 5000000000", MT_ERR_RANGE, 1, 4, "out of bounds for int32"},
    {"bl - bl", MT_ERR_DTYPE, 1, 4, "boolean subtract"},
    {"a @ c", MT_ERR_SHAPE, 1, 3, "matmul"},
    {"where(a, a, c)", MT_ERR_SHAPE, 1, 1, "where"},
};
/* clang-format on */

MT_TEST(error_messages_and_columns)
{
    env e = make_env();
    mt_graph *g = e.g;
    for (size_t k = 0; k < sizeof(error_cases) / sizeof(error_cases[0]); k++) {
        const err_case *c = &error_cases[k];
        mt_var v = 123;
        mt_parse_error err;
        mt_err_clear();
        mt_status st = mt_graph_parse(g, c->text, 0, NULL, NULL, &v, &err);
        if (st != c->status || err.status != c->status || v != MT_VAR_NONE)
            mt_test_fail(__FILE__, __LINE__, "'%s': status %s (v%d), expected %s: %s", c->text,
                         mt_status_name(st), (int)v, mt_status_name(c->status), err.message);
        if (err.line != c->line || err.col != c->col)
            mt_test_fail(__FILE__, __LINE__, "'%s': at %d:%d, expected %d:%d (%s)", c->text,
                         (int)err.line, (int)err.col, c->line, c->col, err.message);
        if (!strstr(err.message, c->needle))
            mt_test_fail(__FILE__, __LINE__, "'%s': message '%s' lacks '%s'", c->text, err.message,
                         c->needle);
        /* the span holds the caret and stays inside the text */
        int32_t len = (int32_t)strlen(c->text);
        MT_CHECK(err.begin >= 0 && err.begin <= err.end && err.end <= len);
        MT_CHECK(err.point >= err.begin && err.point <= len);
        MT_CHECK(err.point < err.end || err.point == err.begin);
        /* the thread-local error is "L:C: message" */
        char pre[32];
        snprintf(pre, sizeof pre, "%d:%d: ", c->line, c->col);
        MT_CHECK(!strncmp(mt_last_error(), pre, strlen(pre)));
        MT_CHECK(strstr(mt_last_error(), err.message) != NULL);
        MT_CHECK_EQ_INT(mt_last_status(), c->status);
        /* the builders' provenance suffix is not repeated after the caret */
        MT_CHECK(strstr(err.message, "(from '") == NULL);
        MT_CHECK_EQ_INT(mt_graph_status(g), MT_OK);
    }
    mt_graph_free(g);
}

static void check_format(const char *file, int line, mt_graph *g, const char *text,
                         const char *want)
{
    mt_var v;
    mt_parse_error err;
    if (mt_graph_parse(g, text, 0, NULL, NULL, &v, &err) == MT_OK)
        mt_test_fail(file, line, "'%s' parsed", text);
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    mt_parse_error_format(&err, text, &sb);
    if (strcmp(sb.data, want))
        mt_test_fail(file, line, "'%s' renders as\n%s\nexpected\n%s", text, sb.data, want);
    mt_strbuf_deinit(&sb);
}
#define CHECK_FORMAT(text, want) check_format(__FILE__, __LINE__, g, (text), (want))

MT_TEST(caret_rendering)
{
    env e = make_env();
    mt_graph *g = e.g;
    CHECK_FORMAT("a + c", "1:3: add: shapes (3,) and (4,) do not broadcast\n  a + c\n  ~~^~~");
    CHECK_FORMAT("exp(a) + sin(c)", "1:8: add: shapes (3,) and (4,) do not broadcast\n"
                                    "  exp(a) + sin(c)\n"
                                    "  ~~~~~~~^~~~~~~~");
    CHECK_FORMAT("a +", "1:4: unexpected end of expression: expected an expression\n  a +\n     ^");
    CHECK_FORMAT("sum(a, axes=0)",
                 "1:8: sum() got an unexpected keyword argument 'axes' (did you mean 'axis'?); "
                 "signature: sum(a, axis=None, dtype=None, *, keepdims=False)\n"
                 "  sum(a, axes=0)\n"
                 "         ^~~~");
    CHECK_FORMAT("a +\n  c * 2 +\n  $", "3:3: unexpected character '$'\n    $\n    ^");
    /* columns count characters: the caret stays under the right character after UTF-8 */
    CHECK_FORMAT("cast(a, '\xc3\xa9t\xc3\xa9') + c",
                 "1:9: cast(): unknown dtype '\xc3\xa9t\xc3\xa9'\n"
                 "  cast(a, '\xc3\xa9t\xc3\xa9') + c\n"
                 "          ^~~~~");
    /* tabs and other control characters display as one space each */
    CHECK_FORMAT("a\t+ c", "1:3: add: shapes (3,) and (4,) do not broadcast\n  a + c\n  ~~^~~");
    /* a long line is cut to a window around the caret */
    mt_strbuf t;
    mt_strbuf_init(&t);
    for (int k = 0; k < 300; k++)
        mt_strbuf_append(&t, "a + ");
    mt_strbuf_append(&t, "c");
    for (int k = 0; k < 300; k++)
        mt_strbuf_append(&t, " + a");
    mt_var v;
    mt_parse_error err;
    MT_CHECK_ERR(mt_graph_parse(g, t.data, 0, NULL, NULL, &v, &err), MT_ERR_SHAPE,
                 "1:1199: add: shapes (3,) and (4,) do not broadcast");
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    mt_parse_error_format(&err, t.data, &sb);
    char *l2 = strchr(sb.data, '\n') + 1, *l3 = strchr(l2, '\n') + 1;
    MT_CHECK(!strncmp(l2, "  ...", 5));
    MT_CHECK(l3 - l2 <= 2 + 3 + 100 + 3 + 1);
    MT_CHECK(strlen(l3) <= 2 + 3 + 100 + 1);
    /* the caret sits under the '+' before c */
    size_t caret = (size_t)(strchr(l3, '^') - l3);
    MT_CHECK(l2[caret] == '+' && l2[caret + 2] == 'c');
    mt_strbuf_deinit(&sb);
    mt_strbuf_deinit(&t);
    /* without the text: only the first line */
    mt_strbuf_init(&sb);
    mt_parse_error_format(&err, NULL, &sb);
    MT_CHECK(strchr(sb.data, '\n') == NULL);
    mt_strbuf_deinit(&sb);
    mt_graph_free(g);
}

/* ---------------------------------------------------------------- provenance */

static void check_span(mt_graph *g, mt_var v, const char *text, int32_t b, int32_t e,
                       const char *span)
{
    const mt_provenance *p = mt_graph_provenance(g, v);
    MT_CHECK(p && p->source >= 0);
    MT_CHECK_STR_EQ(mt_graph_source_text(g, p->source), text);
    if (p->col_begin != b || p->col_end != e)
        mt_test_fail(__FILE__, __LINE__, "v%d spans %d-%d, expected %d-%d (%s)", (int)v,
                     (int)p->col_begin, (int)p->col_end, (int)b, (int)e, span);
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    mt_graph_format_provenance(g, v, &sb);
    char want[128];
    snprintf(want, sizeof want, "from '%s' col %d-%d", span, (int)b, (int)e);
    MT_CHECK_STR_EQ(sb.data, want);
    mt_strbuf_deinit(&sb);
}

MT_TEST(provenance_spans)
{
    mt_graph *g = new_graph();
    mt_var a = ph(g, "a", MT_FLOAT32, 1, SHAPE(3));
    mt_var b = ph(g, "b", MT_FLOAT32, 1, SHAPE(3));
    const char *text = "exp(a) + (b * 2)[::-1]";
    mt_var y = PARSE(g, text);
    MT_CHECK_EQ_INT(mt_graph_op(g, y), MT_OP_ELEMWISE);
    check_span(g, y, text, 1, 22, text);
    mt_var ex = mt_graph_input(g, y, 0), sl = mt_graph_input(g, y, 1);
    check_span(g, ex, text, 1, 6, "exp(a)");
    check_span(g, sl, text, 10, 22, "(b * 2)[::-1]");
    mt_var mul = mt_graph_input(g, sl, 0);
    check_span(g, mul, text, 10, 16, "(b * 2)");
    MT_CHECK(mt_graph_input(g, mul, 0) == b && mt_graph_input(g, ex, 0) == a);
    /* multi-line text: the span is in bytes of the whole text */
    const char *t2 = "a +\n  log(b)";
    mt_var z = PARSE(g, t2);
    check_span(g, mt_graph_input(g, z, 1), t2, 7, 12, "log(b)");
    /* re-parsing the same text reuses its source and nodes: the graph does not grow */
    size_t mem = mt_graph_mem_used(g);
    int32_t nodes = mt_graph_size(g);
    for (int k = 0; k < 100; k++) MT_CHECK(PARSE(g, text) == y);
    MT_CHECK_EQ_INT(mt_graph_mem_used(g), mem);
    MT_CHECK_EQ_INT(mt_graph_size(g), nodes);
    /* the current origin is cleared after the parse */
    mt_var w = mt_graph_neg(g, a);
    const mt_provenance *p = mt_graph_provenance(g, w);
    MT_CHECK(p->source < 0 && p->file == NULL);
    /* mt_graph_print shows the provenance */
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    MT_CHECK_OK(mt_graph_print(g, 1, &y, &sb));
    MT_CHECK(strstr(sb.data, "# from 'exp(a)' col 1-6") != NULL);
    mt_strbuf_deinit(&sb);
    mt_graph_free(g);
}

MT_TEST(sticky_error_left_as_it_was)
{
    mt_graph *g = new_graph();
    mt_var a = ph(g, "a", MT_FLOAT32, 1, SHAPE(3));
    mt_var c = ph(g, "c", MT_FLOAT32, 1, SHAPE(4));
    mt_var v;
    MT_CHECK_ERR(mt_graph_parse(g, "a + c", 0, NULL, NULL, &v, NULL), MT_ERR_SHAPE, "1:3: add");
    MT_CHECK_EQ_INT(mt_graph_status(g), MT_OK);
    MT_CHECK(PARSE(g, "a * 2") == mt_graph_mul(g, a, mt_graph_literal_int(g, 2)));
    /* an error recorded before the parse stays */
    MT_CHECK(mt_graph_add(g, a, c) == MT_VAR_NONE);
    mt_status before = mt_graph_status(g);
    MT_CHECK(before == MT_ERR_SHAPE);
    MT_CHECK_ERR(mt_graph_parse(g, "a +", 0, NULL, NULL, &v, NULL), MT_ERR_INVALID, "1:4:");
    MT_CHECK_EQ_INT(mt_graph_status(g), before);
    /* invalid arguments */
    MT_CHECK_ERR(mt_graph_parse(NULL, "a", 0, NULL, NULL, &v, NULL), MT_ERR_INVALID, "graph");
    MT_CHECK_ERR(mt_graph_parse(g, NULL, 0, NULL, NULL, &v, NULL), MT_ERR_INVALID, "text");
    MT_CHECK_ERR(mt_graph_parse(g, "a", 0, NULL, NULL, NULL, NULL), MT_ERR_INVALID, "output");
    MT_CHECK_ERR(mt_graph_parse(g, "a", 1, NULL, NULL, &v, NULL), MT_ERR_INVALID, "bindings");
    mt_graph_free(g);
}

/* ---------------------------------------------------------------- names */

static mt_var lookup_w(void *user, mt_graph *g, const char *name)
{
    (void)g;
    return !strcmp(name, "w") ? *(mt_var *)user : MT_VAR_NONE;
}

MT_TEST(bindings_lookup_and_placeholders)
{
    mt_graph *g = new_graph();
    mt_var a = ph(g, "a", MT_FLOAT32, 1, SHAPE(3));
    mt_var x = ph(g, "x_input", MT_FLOAT64, 0, NULL);
    mt_var w = ph(g, "weights", MT_FLOAT32, 1, SHAPE(3));
    const char *names[] = {"x", "a", "sum"};
    mt_var vars[] = {x, w, a};
    mt_var v;
    /* bindings hide placeholders of the same name; functions win in call position */
    MT_CHECK_OK(mt_graph_parse(g, "x + a + sum(sum)", 3, names, vars, &v, NULL));
    MT_CHECK(v == mt_graph_add(g, mt_graph_add(g, x, w), mt_graph_sum(g, a, 0, NULL, false)));
    mt_parse_options o;
    mt_parse_options_init(&o);
    o.lookup = lookup_w;
    o.lookup_user = &w;
    MT_CHECK_OK(mt_graph_parse_ex(g, "w * a", &o, &v, NULL));
    MT_CHECK(v == mt_graph_mul(g, w, a));
    o.no_placeholders = true;
    mt_parse_error err;
    MT_CHECK_ERR(mt_graph_parse_ex(g, "w * a", &o, &v, &err), MT_ERR_INVALID,
                 "name 'a' is not defined");
    /* names shadow constants and module prefixes; dtype names stay dtypes in calls */
    const char *n2[] = {"e", "np", "float32"};
    mt_var v2[] = {a, w, x};
    MT_CHECK_OK(mt_graph_parse(g, "e + np", 3, n2, v2, &v, NULL));
    MT_CHECK(v == mt_graph_add(g, a, w));
    MT_CHECK_ERR(mt_graph_parse(g, "float32(e)", 3, n2, v2, &v, NULL), MT_ERR_INVALID,
                 "'float32' is an array, not a function");
    /* an invalid handle in the bindings */
    mt_var bad[] = {9999};
    MT_CHECK_ERR(mt_graph_parse(g, "x", 1, names, bad, &v, NULL), MT_ERR_INVALID,
                 "invalid variable");
    mt_graph_free(g);
}

/* ---------------------------------------------------------------- limits and garbage */

MT_TEST(limits)
{
    mt_graph *g = new_graph();
    mt_var a = ph(g, "a", MT_FLOAT32, 1, SHAPE(3));
    mt_var v;
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    /* 99 parentheses fit in the default depth of 100, 100 do not */
    for (int k = 0; k < 99; k++)
        mt_strbuf_append(&sb, "(");
    mt_strbuf_append(&sb, "a");
    for (int k = 0; k < 99; k++)
        mt_strbuf_append(&sb, ")");
    MT_CHECK_OK(mt_graph_parse(g, sb.data, 0, NULL, NULL, &v, NULL));
    MT_CHECK(v == a);
    mt_strbuf_clear(&sb);
    for (int k = 0; k < 100; k++)
        mt_strbuf_append(&sb, "(");
    mt_strbuf_append(&sb, "a");
    for (int k = 0; k < 100; k++)
        mt_strbuf_append(&sb, ")");
    MT_CHECK_ERR(mt_graph_parse(g, sb.data, 0, NULL, NULL, &v, NULL), MT_ERR_RANGE,
                 "1:101: expression is nested too deeply (more than 100 levels)");
    mt_parse_options o;
    mt_parse_options_init(&o);
    o.max_depth = 150;
    MT_CHECK_OK(mt_graph_parse_ex(g, sb.data, &o, &v, NULL));
    /* deep nesting of other kinds: unary operators, ** chains, trailers, calls, conditionals */
    const char *units[][2] = {{"-", ""},    {"a ** ", "a"}, {"", ".T"},           {"exp(", ")"},
                              {"not ", ""}, {"[", "]"},     {"a if a else ", "a"}};
    for (size_t u = 0; u < sizeof(units) / sizeof(units[0]); u++) {
        mt_strbuf_clear(&sb);
        for (int k = 0; k < 300; k++)
            mt_strbuf_append(&sb, units[u][0]);
        mt_strbuf_append(&sb, units[u][1][0] == '.' || units[u][1][0] == ')' ||
                                      units[u][1][0] == ']' || !units[u][1][0]
                                  ? "a"
                                  : "");
        for (int k = 0; k < 300; k++)
            mt_strbuf_append(&sb, units[u][1]);
        MT_CHECK_ERR(mt_graph_parse(g, sb.data, 0, NULL, NULL, &v, NULL), MT_ERR_RANGE,
                     "nested too deeply");
    }
    /* the depth option is clamped to MT_PARSE_MAX_DEPTH_LIMIT */
    mt_strbuf_clear(&sb);
    for (int k = 0; k < 5000; k++)
        mt_strbuf_append(&sb, "-");
    mt_strbuf_append(&sb, "a");
    o.max_depth = 1000000;
    MT_CHECK_ERR(mt_graph_parse_ex(g, sb.data, &o, &v, NULL), MT_ERR_RANGE,
                 "more than 1000 levels");
    /* long flat chains do not nest */
    mt_strbuf_clear(&sb);
    mt_strbuf_append(&sb, "a");
    for (int k = 0; k < 10000; k++)
        mt_strbuf_append(&sb, " + a");
    MT_CHECK_OK(mt_graph_parse(g, sb.data, 0, NULL, NULL, &v, NULL));
    mt_strbuf_clear(&sb);
    mt_strbuf_append(&sb, "a");
    for (int k = 0; k < 6000; k++)
        mt_strbuf_append(&sb, " < a");
    MT_CHECK_OK(mt_graph_parse(g, sb.data, 0, NULL, NULL, &v, NULL));
    /* length: 65536 bytes by default */
    mt_strbuf_clear(&sb);
    mt_strbuf_append(&sb, "a");
    while (sb.len < 70000)
        mt_strbuf_append(&sb, "+a");
    MT_CHECK_ERR(mt_graph_parse(g, sb.data, 0, NULL, NULL, &v, NULL), MT_ERR_RANGE,
                 "expression is longer than 65536 bytes");
    o.max_depth = 0;
    o.max_length = 80000;
    MT_CHECK_OK(mt_graph_parse_ex(g, sb.data, &o, &v, NULL));
    o.max_length = 10;
    MT_CHECK_ERR(mt_graph_parse_ex(g, "a + a + a + a", &o, &v, NULL), MT_ERR_RANGE,
                 "1:11: expression is longer than 10 bytes");
    mt_strbuf_deinit(&sb);
    mt_graph_free(g);
}

/* xorshift64*: a fixed pseudo-random sequence for the garbage generator. */
static uint64_t rnd(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

/* Random token soup and random bytes: every parse returns (success or a located error), the
 * error renders, and the graph stays consistent. */
MT_TEST(garbage_never_crashes)
{
    static const char *const toks[] = {
        "a",
        "b",
        "m",
        "i",
        "(",
        ")",
        "[",
        "]",
        ",",
        ":",
        "+",
        "-",
        "*",
        "**",
        "/",
        "//",
        "%",
        "@",
        "<",
        "==",
        "not ",
        " and ",
        " if ",
        " else ",
        "1",
        "2.5",
        "0",
        "'x'",
        "sum",
        "exp",
        "reshape",
        "split",
        "take",
        ".",
        "T",
        "shape",
        "=",
        "~",
        "&",
        "|",
        "^",
        "None",
        "...",
        "[1,2]",
        "lambda",
        "\x01",
        "\xc3\xa9",
        " ",
        "\n",
        "axis=",
        "-1",
        "1e400",
        "9223372036854775807",
        "set_subtensor",
        "x",
        "'",
        "\"",
        "#",
        "\\",
        "{",
        "}",
        "for",
        "np.",
        "float32",
        "inf",
        "nan",
        "@=",
        "True",
    };
    uint64_t s = 0x9E3779B97F4A7C15ull;
    mt_graph *g = NULL;
    int nok = 0, nerr = 0;
    for (int iter = 0; iter < 20000; iter++) {
        if (iter % 500 == 0) {
            mt_graph_free(g);
            g = new_graph();
            ph(g, "a", MT_FLOAT32, 1, SHAPE(3));
            ph(g, "b", MT_FLOAT32, 2, SHAPE(2, 3));
            ph(g, "m", MT_FLOAT64, 2, SHAPE(-1, 3));
            ph(g, "i", MT_INT64, 1, SHAPE(2));
        }
        char text[256];
        size_t len = 0;
        int n = (int)(rnd(&s) % 24);
        bool bytes = iter % 5 == 4;
        for (int k = 0; k < n && len < 200; k++) {
            if (bytes) {
                text[len++] = (char)(rnd(&s) % 255 + 1);
            } else {
                const char *t = toks[rnd(&s) % (sizeof(toks) / sizeof(toks[0]))];
                size_t l = strlen(t);
                memcpy(text + len, t, l);
                len += l;
            }
        }
        text[len] = 0;
        mt_var v = 77;
        mt_parse_error err;
        mt_status st = mt_graph_parse(g, text, 0, NULL, NULL, &v, &err);
        if (st == MT_OK) {
            MT_CHECK(mt_graph_valid(g, v));
            nok++;
        } else {
            nerr++;
            MT_CHECK(v == MT_VAR_NONE && err.status == st && err.message[0]);
            MT_CHECK(err.begin >= 0 && err.begin <= err.end && err.end <= (int32_t)len);
            MT_CHECK(err.point >= 0 && err.point <= (int32_t)len && err.line >= 1 && err.col >= 1);
            mt_strbuf sb;
            mt_strbuf_init(&sb);
            mt_parse_error_format(&err, text, &sb);
            MT_CHECK(sb.data && strlen(sb.data) > strlen(err.message));
            mt_strbuf_deinit(&sb);
        }
        MT_CHECK_EQ_INT(mt_graph_status(g), MT_OK);
    }
    MT_CHECK_OK(mt_graph_verify(g));
    mt_graph_free(g);
    MT_CHECK(nok > 100 && nerr > 1000);
}
