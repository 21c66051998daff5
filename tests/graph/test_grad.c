/* Structural tests of the autodiff engine (no evaluation; values are checked numerically in
 * tests/jit/test_grad_numeric.c): gradient types and dtypes, hash-consed results, the
 * disconnected / integer / undefined errors naming the variable, the op and why, the zero
 * options, stop_gradient and consider_constant, connected zero gradients, seeds, Lop/Rop
 * argument checks and the double-reverse R-op leaving no dummy placeholder behind, provenance
 * of gradient nodes, unsupported cases, and a graph with every op of MT_OP_MAP. */
#include <string.h>

#include "mltrain/graph_grad.h"
#include "mt_test.h"

static mt_graph *new_graph(void)
{
    mt_graph *g = NULL;
    MT_CHECK_OK(mt_graph_new(&g));
    return g;
}

static void expect_type(const char *file, int line, mt_graph *g, mt_var v, const char *want)
{
    if (!v) mt_test_fail(file, line, "no variable (error: %s)", mt_graph_last_error(g));
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    mt_type_format(mt_graph_type(g, v), &sb);
    if (strcmp(sb.data, want) != 0) mt_test_fail(file, line, "type %s, expected %s", sb.data, want);
    mt_strbuf_deinit(&sb);
}
#define EXPECT_TYPE(g, v, want) expect_type(__FILE__, __LINE__, g, v, want)

static double scalar_of(mt_graph *g, mt_var v)
{
    mt_scalar s;
    MT_CHECK(mt_graph_scalar_value(g, v, &s));
    return mt_scalar_as_f64(&s);
}

static mt_var sum_all(mt_graph *g, mt_var x)
{
    return mt_graph_sum(g, x, 0, NULL, false);
}

/* true if v's subgraph contains a node with this op (and, for ELEMWISE, this label). */
static bool uses_op(mt_graph *g, mt_var v, mt_op op, const char *label)
{
    mt_var *order = NULL;
    int32_t n = 0;
    MT_CHECK_OK(mt_graph_toposort(g, 1, &v, &order, &n));
    bool found = false;
    for (int32_t i = 0; i < n && !found; i++)
        found = mt_graph_op(g, order[i]) == op &&
                (!label || strcmp(mt_graph_op_label(g, order[i]), label) == 0);
    mt_free(order);
    return found;
}

static bool depends_on(mt_graph *g, mt_var v, mt_var x)
{
    mt_var *order = NULL;
    int32_t n = 0;
    MT_CHECK_OK(mt_graph_toposort(g, 1, &v, &order, &n));
    bool found = false;
    for (int32_t i = 0; i < n && !found; i++) found = order[i] == x;
    mt_free(order);
    return found;
}

/* ---------------------------------------------------------------- types */

MT_TEST(grad_types_follow_wrt)
{
    mt_graph *g = new_graph();
    int64_t s34[2] = {3, 4}, s4[1] = {4}, s14[2] = {1, 4}, su[2] = {-1, 4};
    mt_var x = mt_graph_placeholder(g, "x", MT_FLOAT32, 2, s34);
    mt_var b = mt_graph_placeholder(g, "b", MT_FLOAT32, 1, s4);
    mt_var c = mt_graph_placeholder(g, "c", MT_FLOAT32, 2, s14);
    mt_var u = mt_graph_placeholder(g, "u", MT_FLOAT32, 2, su);
    mt_var h = mt_graph_placeholder(g, "h", MT_FLOAT16, 1, s4);
    mt_var e = mt_graph_mul(g, mt_graph_add(g, mt_graph_add(g, x, b), c),
                            mt_graph_literal_float(g, 2.0));
    mt_var cost = mt_graph_add(g, sum_all(g, e), sum_all(g, mt_graph_mul(g, u, b)));
    cost = mt_graph_add(g, cost, mt_graph_cast(g, sum_all(g, mt_graph_exp(g, h)), MT_FLOAT32));
    EXPECT_TYPE(g, cost, "float32[]");
    mt_var w[5] = {x, b, c, u, h}, gr[5];
    MT_CHECK_OK(mt_graph_grad(g, cost, 5, w, gr, NULL));
    EXPECT_TYPE(g, gr[0], "float32[3,4]");
    EXPECT_TYPE(g, gr[1], "float32[4]"); /* summed over the broadcast axis */
    EXPECT_TYPE(g, gr[2], "float32[1,4]");
    EXPECT_TYPE(g, gr[3], "float32[?,4]");
    EXPECT_TYPE(g, gr[4], "float16[4]"); /* cast back to the variable's dtype */
    MT_CHECK_OK(mt_graph_verify(g));
    /* the gradient of the cost itself is 1 */
    mt_var one = MT_VAR_NONE;
    MT_CHECK_OK(mt_graph_grad(g, cost, 1, &cost, &one, NULL));
    MT_CHECK(scalar_of(g, one) == 1.0);
    mt_graph_free(g);
}

MT_TEST(grad_is_hash_consed)
{
    mt_graph *g = new_graph();
    int64_t s[2] = {2, 3};
    mt_var x = mt_graph_placeholder(g, "x", MT_FLOAT64, 2, s);
    mt_var y = mt_graph_placeholder(g, "y", MT_FLOAT64, 2, s);
    mt_var cost = sum_all(g, mt_graph_tanh(g, mt_graph_mul(g, x, mt_graph_sigmoid(g, y))));
    mt_var w[2] = {x, y}, g1[2], g2[2];
    MT_CHECK_OK(mt_graph_grad(g, cost, 2, w, g1, NULL));
    int32_t size = mt_graph_size(g);
    MT_CHECK_OK(mt_graph_grad(g, cost, 2, w, g2, NULL));
    MT_CHECK_EQ_INT(g1[0], g2[0]);
    MT_CHECK_EQ_INT(g1[1], g2[1]);
    MT_CHECK_EQ_INT(mt_graph_size(g), size); /* no new node the second time */
    /* the gradient reuses the forward nodes: tanh's rule uses the tanh output */
    MT_CHECK(depends_on(g, g1[0], mt_graph_tanh(g, mt_graph_mul(g, x, mt_graph_sigmoid(g, y)))));
    mt_graph_free(g);
}

MT_TEST(grad_provenance)
{
    mt_graph *g = new_graph();
    int64_t s[1] = {3};
    mt_var x = mt_graph_placeholder(g, "x", MT_FLOAT64, 1, s);
    mt_var e = mt_graph_exp(MT_AT(g), x);
    int line = __LINE__ - 1;
    mt_graph_clear_origin(g);
    mt_var gx = MT_VAR_NONE;
    MT_CHECK_OK(mt_graph_grad(g, sum_all(g, mt_graph_sin(g, e)), 1, &x, &gx, NULL));
    /* the exp rule's product carries the exp's call site and the rule name */
    MT_CHECK_EQ_INT(mt_graph_op(g, gx), MT_OP_ELEMWISE);
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    mt_graph_format_provenance(g, gx, &sb);
    char want[64];
    snprintf(want, sizeof(want), "test_grad.c:%d", line);
    MT_CHECK(strstr(sb.data, want) != NULL);
    MT_CHECK(strstr(sb.data, "via grad") != NULL);
    mt_strbuf_deinit(&sb);
    mt_graph_free(g);
}

/* ---------------------------------------------------------------- errors and options */

MT_TEST(disconnected_error_names_variable)
{
    mt_graph *g = new_graph();
    int64_t s[1] = {3};
    mt_var x = mt_graph_placeholder(g, "x", MT_FLOAT32, 1, s);
    mt_var y = mt_graph_placeholder(g, "y", MT_FLOAT32, 1, s);
    mt_var cost = sum_all(g, mt_graph_exp(g, x));
    mt_var w[2] = {x, y}, gr[2];
    MT_CHECK_ERR(mt_graph_grad(g, cost, 2, w, gr, NULL), MT_ERR_INVALID, "'y'");
    MT_CHECK(strstr(mt_last_error(), "does not depend on wrt[1]") != NULL);
    MT_CHECK(strstr(mt_last_error(), "disconnected") != NULL);
    MT_CHECK(gr[0] == MT_VAR_NONE && gr[1] == MT_VAR_NONE);
    MT_CHECK_EQ_INT(mt_graph_status(g), MT_ERR_INVALID); /* sticky like builder errors */
    mt_graph_clear_error(g);
    mt_grad_options o;
    mt_grad_options_init(&o);
    o.disconnected = MT_GRAD_DISCONNECTED_ZERO;
    MT_CHECK_OK(mt_graph_grad(g, cost, 2, w, gr, &o));
    EXPECT_TYPE(g, gr[1], "float32[3]");
    MT_CHECK(scalar_of(g, gr[1]) == 0.0);
    MT_CHECK(!depends_on(g, gr[0], y));
    mt_graph_free(g);
}

MT_TEST(integer_variables_have_no_gradient)
{
    mt_graph *g = new_graph();
    int64_t s[1] = {3};
    mt_var x = mt_graph_placeholder(g, "x", MT_FLOAT64, 1, s);
    mt_var n = mt_graph_placeholder(g, "n", MT_INT32, 1, s);
    mt_var cost = sum_all(g, mt_graph_mul(g, x, mt_graph_cast(g, n, MT_FLOAT64)));
    mt_var gn = MT_VAR_NONE;
    MT_CHECK_ERR(mt_graph_grad(g, cost, 1, &n, &gn, NULL), MT_ERR_INVALID, "integer-typed");
    MT_CHECK(strstr(mt_last_error(), "'n'") != NULL);
    mt_graph_clear_error(g);
    mt_grad_options o;
    mt_grad_options_init(&o);
    o.disconnected = MT_GRAD_DISCONNECTED_ZERO;
    MT_CHECK_OK(mt_graph_grad(g, cost, 1, &n, &gn, &o));
    EXPECT_TYPE(g, gn, "float64[3]"); /* NumPy's float type for int32 */
    /* x's gradient does not flow into n's cast */
    mt_var gx = MT_VAR_NONE;
    MT_CHECK_OK(mt_graph_grad(g, cost, 1, &x, &gx, NULL));
    EXPECT_TYPE(g, gx, "float64[3]");
    mt_graph_free(g);
}

MT_TEST(undefined_gradient_names_op_and_operand)
{
    mt_graph *g = new_graph();
    int64_t s4[2] = {4, 3}, s5[1] = {5};
    mt_var x = mt_graph_placeholder(g, "x", MT_FLOAT64, 2, s4);
    mt_var idx = mt_graph_placeholder(g, "idx", MT_INT64, 1, s5);
    mt_var raw = mt_graph_placeholder(g, "raw", MT_INT64, 1, s5);
    mt_var cost = sum_all(g, mt_graph_gather(g, x, idx, 0));
    mt_var gi = MT_VAR_NONE;
    MT_CHECK_ERR(mt_graph_grad(g, cost, 1, &idx, &gi, NULL), MT_ERR_INVALID, "undefined");
    MT_CHECK(strstr(mt_last_error(), "'idx'") != NULL);
    MT_CHECK(strstr(mt_last_error(), "gather") != NULL);
    MT_CHECK(strstr(mt_last_error(), "operand 1") != NULL);
    MT_CHECK(strstr(mt_last_error(), "integer indices") != NULL);
    mt_graph_clear_error(g);
    /* through integer arithmetic: raw + 1 are the indices */
    mt_var c2 = sum_all(g, mt_graph_gather(g, x, mt_graph_add(g, raw, mt_graph_literal_int(g, 1)),
                                           0));
    MT_CHECK_ERR(mt_graph_grad(g, c2, 1, &raw, &gi, NULL), MT_ERR_INVALID, "'raw'");
    MT_CHECK(strstr(mt_last_error(), "undefined") != NULL);
    mt_graph_clear_error(g);
    /* labels of a crossentropy and of one_hot */
    int64_t s43[2] = {4, 3}, s4l[1] = {4};
    mt_var p = mt_graph_placeholder(g, "p", MT_FLOAT32, 2, s43);
    mt_var lab = mt_graph_placeholder(g, "lab", MT_INT32, 1, s4l);
    mt_var c3 = sum_all(g, mt_graph_softmax_crossentropy_labels(g, p, lab, 1));
    MT_CHECK_ERR(mt_graph_grad(g, c3, 1, &lab, &gi, NULL), MT_ERR_INVALID,
                 "softmax_crossentropy_labels");
    MT_CHECK(strstr(mt_last_error(), "class labels") != NULL);
    mt_graph_clear_error(g);
    mt_var c4 = sum_all(g, mt_graph_mul(g, p, mt_graph_one_hot(g, lab, 3, MT_FLOAT32)));
    MT_CHECK_ERR(mt_graph_grad(g, c4, 1, &lab, &gi, NULL), MT_ERR_INVALID, "one_hot");
    mt_graph_clear_error(g);
    /* zeros when asked; the float operand is unaffected */
    mt_grad_options o;
    mt_grad_options_init(&o);
    o.undefined = MT_GRAD_UNDEFINED_ZERO;
    mt_var w[2] = {idx, x}, gr[2];
    MT_CHECK_OK(mt_graph_grad(g, cost, 2, w, gr, &o));
    EXPECT_TYPE(g, gr[0], "float64[5]");
    MT_CHECK(scalar_of(g, gr[0]) == 0.0);
    EXPECT_TYPE(g, gr[1], "float64[4,3]");
    MT_CHECK(uses_op(g, gr[1], MT_OP_SCATTER_ADD, NULL));
    mt_graph_free(g);
}

MT_TEST(stop_gradient_and_consider_constant)
{
    mt_graph *g = new_graph();
    int64_t s[1] = {3};
    mt_var x = mt_graph_placeholder(g, "x", MT_FLOAT64, 1, s);
    mt_var y = mt_graph_placeholder(g, "y", MT_FLOAT64, 1, s);
    mt_var cost = sum_all(g, mt_graph_mul(g, mt_graph_stop_gradient(g, x), y));
    mt_var gx = MT_VAR_NONE, gy = MT_VAR_NONE;
    MT_CHECK_ERR(mt_graph_grad(g, cost, 1, &x, &gx, NULL), MT_ERR_INVALID, "stop_gradient");
    MT_CHECK(strstr(mt_last_error(), "'x'") != NULL);
    mt_graph_clear_error(g);
    MT_CHECK_OK(mt_graph_grad(g, cost, 1, &y, &gy, NULL));
    MT_CHECK(depends_on(g, gy, x)); /* d/dy = stop_gradient(x) */
    /* consider_constant: h = 2x is a constant; its own gradient is still available */
    mt_var h = mt_graph_mul(g, x, mt_graph_literal_float(g, 2.0));
    mt_var c2 = sum_all(g, mt_graph_mul(g, h, y));
    mt_grad_options o;
    mt_grad_options_init(&o);
    o.n_consider_constant = 1;
    o.consider_constant = &h;
    MT_CHECK_ERR(mt_graph_grad(g, c2, 1, &x, &gx, &o), MT_ERR_INVALID, "consider_constant");
    mt_graph_clear_error(g);
    mt_var gh = MT_VAR_NONE;
    MT_CHECK_OK(mt_graph_grad(g, c2, 1, &h, &gh, &o));
    MT_CHECK(depends_on(g, gh, y));
    o.disconnected = MT_GRAD_DISCONNECTED_ZERO;
    MT_CHECK_OK(mt_graph_grad(g, c2, 1, &x, &gx, &o));
    MT_CHECK(scalar_of(g, gx) == 0.0);
    mt_graph_free(g);
}

/* floor, comparisons, argmax: connected, zero gradient (no error). */
MT_TEST(piecewise_constant_ops_give_zeros)
{
    mt_graph *g = new_graph();
    int64_t s[2] = {2, 3};
    mt_var x = mt_graph_placeholder(g, "x", MT_FLOAT32, 2, s);
    mt_var c1 = sum_all(g, mt_graph_floor(g, x));
    mt_var c2 = sum_all(g, mt_graph_cast(g, mt_graph_gt(g, x, mt_graph_literal_float(g, 0)),
                                         MT_FLOAT32));
    mt_var c3 = mt_graph_cast(g, sum_all(g, mt_graph_argmax(g, x, 0, NULL, false)), MT_FLOAT32);
    mt_var c4 = mt_graph_cast(g, sum_all(g, mt_graph_cast(g, x, MT_INT32)), MT_FLOAT32);
    mt_var cs[4] = {c1, c2, c3, c4};
    for (int i = 0; i < 4; i++) {
        mt_var gx = MT_VAR_NONE;
        MT_CHECK_OK(mt_graph_grad(g, cs[i], 1, &x, &gx, NULL));
        EXPECT_TYPE(g, gx, "float32[2,3]");
        MT_CHECK(scalar_of(g, gx) == 0.0);
    }
    mt_graph_free(g);
}

MT_TEST(argument_checks)
{
    mt_graph *g = new_graph();
    int64_t s[1] = {3};
    mt_var x = mt_graph_placeholder(g, "x", MT_FLOAT64, 1, s);
    mt_var n = mt_graph_placeholder(g, "n", MT_INT64, 1, s);
    mt_var e = mt_graph_exp(g, x);
    mt_var gx = MT_VAR_NONE;
    MT_CHECK_ERR(mt_graph_grad(g, e, 1, &x, &gx, NULL), MT_ERR_INVALID, "0-d float");
    mt_graph_clear_error(g);
    MT_CHECK_ERR(mt_graph_grad(g, sum_all(g, n), 1, &x, &gx, NULL), MT_ERR_INVALID, "0-d float");
    mt_graph_clear_error(g);
    mt_var bad = 9999;
    MT_CHECK_ERR(mt_graph_grad(g, sum_all(g, e), 1, &bad, &gx, NULL), MT_ERR_INVALID,
                 "not a variable");
    mt_graph_clear_error(g);
    MT_CHECK_ERR(mt_graph_grad(g, MT_VAR_NONE, 1, &x, &gx, NULL), MT_ERR_INVALID,
                 "no known gradients");
    mt_graph_clear_error(g);
    /* seeds must fit their variables */
    mt_grad_options o;
    mt_grad_options_init(&o);
    int64_t s2[1] = {2};
    mt_var wrong = mt_graph_placeholder(g, "wrong", MT_FLOAT64, 1, s2);
    o.n_known = 1;
    o.known_vars = &e;
    o.known_grads = &wrong;
    MT_CHECK_ERR(mt_graph_grad(g, MT_VAR_NONE, 1, &x, &gx, &o), MT_ERR_SHAPE, "known_grads[0]");
    mt_graph_clear_error(g);
    o.known_vars = &n;
    o.known_grads = &x;
    MT_CHECK_ERR(mt_graph_grad(g, MT_VAR_NONE, 1, &x, &gx, &o), MT_ERR_DTYPE, "not float");
    mt_graph_clear_error(g);
    /* lop: eval points must fit f; f must be float */
    MT_CHECK_ERR(mt_graph_lop(g, 1, &e, 1, &x, &wrong, &gx, NULL), MT_ERR_SHAPE,
                 "eval_points[0]");
    mt_graph_clear_error(g);
    MT_CHECK_ERR(mt_graph_lop(g, 1, &n, 1, &x, &n, &gx, NULL), MT_ERR_DTYPE, "f[0]");
    mt_graph_clear_error(g);
    MT_CHECK_ERR(mt_graph_rop(g, 1, &e, 1, &x, &wrong, &gx, NULL), MT_ERR_SHAPE,
                 "eval_points[0]");
    mt_graph_clear_error(g);
    mt_graph_free(g);
}

MT_TEST(unsupported_shapes_are_reported)
{
    mt_graph *g = new_graph();
    int64_t su[2] = {3, -1}, su2[3] = {-1, -1, 2};
    mt_var a = mt_graph_placeholder(g, "a", MT_FLOAT64, 2, su);
    mt_var b = mt_graph_placeholder(g, "b", MT_FLOAT64, 2, su);
    mt_var c = mt_graph_placeholder(g, "c", MT_FLOAT64, 2, su);
    mt_var parts[3] = {a, b, c};
    mt_var cost = sum_all(g, mt_graph_concatenate(g, 3, parts, 1));
    mt_var gb = MT_VAR_NONE;
    MT_CHECK_ERR(mt_graph_grad(g, cost, 1, &b, &gb, NULL), MT_ERR_UNSUPPORTED, "concatenate");
    MT_CHECK(strstr(mt_last_error(), "unknown size") != NULL);
    mt_graph_clear_error(g);
    /* with one unknown size the operand is located from both ends */
    mt_var ga = MT_VAR_NONE;
    mt_var d = mt_graph_placeholder(g, "d", MT_FLOAT64, 2, (int64_t[2]){3, 2});
    mt_var two[2] = {a, d};
    MT_CHECK_OK(mt_graph_grad(g, sum_all(g, mt_graph_concatenate(g, 2, two, 1)), 1, &a, &ga,
                              NULL));
    EXPECT_TYPE(g, ga, "float64[3,?]");
    /* reshape from two unknown sizes that are not kept */
    mt_var y = mt_graph_placeholder(g, "y", MT_FLOAT64, 3, su2);
    int64_t flat[1] = {-1};
    MT_CHECK_ERR(mt_graph_grad(g, sum_all(g, mt_graph_reshape(g, y, 1, flat)), 1, &y, &gb, NULL),
                 MT_ERR_UNSUPPORTED, "reshape");
    mt_graph_clear_error(g);
    /* flatten keeps the leading axis: fine */
    MT_CHECK_OK(mt_graph_grad(g, sum_all(g, mt_graph_flatten(g, y, 2)), 1, &y, &gb, NULL));
    EXPECT_TYPE(g, gb, "float64[?,?,2]");
    mt_graph_free(g);
}

/* ---------------------------------------------------------------- L-op, R-op, seeds */

MT_TEST(lop_rop_structure)
{
    mt_graph *g = new_graph();
    int64_t s3[1] = {3}, s23[2] = {2, 3};
    mt_var x = mt_graph_placeholder(g, "x", MT_FLOAT32, 1, s3);
    mt_var W = mt_graph_placeholder(g, "W", MT_FLOAT32, 2, s23);
    mt_var v = mt_graph_placeholder(g, "v", MT_FLOAT32, 1, s3);
    mt_var f = mt_graph_tanh(g, mt_graph_matmul(g, W, x)); /* float32[2] */
    mt_var ct = mt_graph_placeholder(g, "ct", MT_FLOAT64, 1, (int64_t[1]){2});
    mt_var l = MT_VAR_NONE, r = MT_VAR_NONE;
    MT_CHECK_OK(mt_graph_lop(g, 1, &f, 1, &x, &ct, &l, NULL));
    EXPECT_TYPE(g, l, "float32[3]"); /* the float64 cotangent is cast to f's dtype */
    MT_CHECK_OK(mt_graph_rop(g, 1, &f, 1, &x, &v, &r, NULL));
    EXPECT_TYPE(g, r, "float32[2]");
    MT_CHECK(depends_on(g, r, v));
    /* no dummy cotangent placeholder is left in the result */
    mt_var u0 = mt_graph_find_placeholder(g, "rop.u0");
    MT_CHECK(u0 != MT_VAR_NONE && !depends_on(g, r, u0));
    /* grad_clip's rule is not linear in the cotangent: the dummy is substituted by zeros */
    mt_var fc = mt_graph_grad_clip(g, f, -0.5, 0.5), rc = MT_VAR_NONE;
    MT_CHECK_OK(mt_graph_rop(g, 1, &fc, 1, &x, &v, &rc, NULL));
    mt_var *order = NULL;
    int32_t n = 0;
    MT_CHECK_OK(mt_graph_toposort(g, 1, &rc, &order, &n));
    for (int32_t i = 0; i < n; i++) {
        const char *nm = mt_graph_name(g, order[i]);
        MT_CHECK(!(mt_graph_op(g, order[i]) == MT_OP_INPUT && nm && strncmp(nm, "rop.u", 5) == 0));
    }
    mt_free(order);
    /* disconnected outputs */
    mt_var y = mt_graph_placeholder(g, "y", MT_FLOAT32, 1, s3);
    mt_var fy = mt_graph_exp(g, y);
    MT_CHECK_ERR(mt_graph_rop(g, 1, &fy, 1, &x, &v, &r, NULL), MT_ERR_INVALID, "f[0]");
    MT_CHECK(strstr(mt_last_error(), "does not depend") != NULL);
    mt_graph_clear_error(g);
    mt_grad_options o;
    mt_grad_options_init(&o);
    o.disconnected = MT_GRAD_DISCONNECTED_ZERO;
    MT_CHECK_OK(mt_graph_rop(g, 1, &fy, 1, &x, &v, &r, &o));
    MT_CHECK(scalar_of(g, r) == 0.0);
    /* an output that depends on x only through floor: zeros without an error */
    mt_var ff = mt_graph_floor(g, x);
    MT_CHECK_OK(mt_graph_rop(g, 1, &ff, 1, &x, &v, &r, NULL));
    MT_CHECK(scalar_of(g, r) == 0.0);
    MT_CHECK_OK(mt_graph_verify(g));
    mt_graph_free(g);
}

MT_TEST(known_grads_seed_the_sweep)
{
    mt_graph *g = new_graph();
    int64_t s[1] = {3};
    mt_var x = mt_graph_placeholder(g, "x", MT_FLOAT32, 1, s);
    mt_var gh = mt_graph_placeholder(g, "gh", MT_FLOAT64, 1, s);
    mt_var h = mt_graph_exp(g, x);
    mt_grad_options o;
    mt_grad_options_init(&o);
    o.n_known = 1;
    o.known_vars = &h;
    o.known_grads = &gh;
    mt_var gx = MT_VAR_NONE, gx2 = MT_VAR_NONE;
    /* no cost: the seed alone (truncated backprop) */
    MT_CHECK_OK(mt_graph_grad(g, MT_VAR_NONE, 1, &x, &gx, &o));
    EXPECT_TYPE(g, gx, "float32[3]");
    MT_CHECK(depends_on(g, gx, gh) && depends_on(g, gx, h));
    /* with a cost through h as well: the seed is added, so the result differs */
    mt_var cost = sum_all(g, mt_graph_sin(g, h));
    MT_CHECK_OK(mt_graph_grad(g, cost, 1, &x, &gx2, &o));
    MT_CHECK(gx2 != gx && depends_on(g, gx2, gh));
    /* the known variable's own gradient is the seed (cast to its dtype) plus the cost's */
    mt_var ghh = MT_VAR_NONE;
    MT_CHECK_OK(mt_graph_grad(g, MT_VAR_NONE, 1, &h, &ghh, &o));
    EXPECT_TYPE(g, ghh, "float32[3]");
    MT_CHECK_EQ_INT(mt_graph_op(g, ghh), MT_OP_ELEMWISE);
    MT_CHECK_STR_EQ(mt_graph_op_label(g, ghh), "cast");
    mt_graph_free(g);
}

MT_TEST(second_derivatives_build)
{
    mt_graph *g = new_graph();
    int64_t s[2] = {3, 4}, s45[2] = {4, 5};
    mt_var X = mt_graph_placeholder(g, "X", MT_FLOAT32, 2, s);
    mt_var W = mt_graph_placeholder(g, "W", MT_FLOAT32, 2, s45);
    mt_var lab = mt_graph_placeholder(g, "lab", MT_INT64, 1, (int64_t[1]){3});
    int32_t ax = 1;
    mt_var h = mt_graph_relu(g, mt_graph_matmul(g, X, W));
    mt_var cost = mt_graph_add(g, mt_graph_mean(g, mt_graph_softmax_crossentropy_labels(g, h, lab,
                                                                                       1),
                                                0, NULL, false),
                               sum_all(g, mt_graph_max(g, mt_graph_logsoftmax(g, h, 1), 1, &ax,
                                                       false)));
    mt_var gw = MT_VAR_NONE, hw = MT_VAR_NONE;
    MT_CHECK_OK(mt_graph_grad(g, cost, 1, &W, &gw, NULL));
    MT_CHECK_OK(mt_graph_grad(g, sum_all(g, mt_graph_mul(g, gw, gw)), 1, &W, &hw, NULL));
    EXPECT_TYPE(g, hw, "float32[4,5]");
    MT_CHECK_OK(mt_graph_verify(g));
    mt_graph_free(g);
}

/* ---------------------------------------------------------------- every op */

/* One graph using every op of MT_OP_MAP; the gradient of a cost over all of them builds. */
MT_TEST(every_op_has_a_gradient_path)
{
    mt_graph *g = new_graph();
    int64_t s34[2] = {3, 4}, s4[1] = {4}, s3[1] = {3}, su[2] = {-1, 4};
    mt_var x = mt_graph_placeholder(g, "x", MT_FLOAT64, 2, s34);
    mt_var xu = mt_graph_placeholder(g, "xu", MT_FLOAT64, 2, su);
    mt_var v = mt_graph_placeholder(g, "v", MT_FLOAT64, 1, s4);
    mt_var lab = mt_graph_placeholder(g, "lab", MT_INT64, 1, s3);
    mt_var idx = mt_graph_placeholder(g, "idx", MT_INT64, 1, s3);
    int32_t ax0 = 0, ax1 = 1;
    int64_t s26[2] = {2, 6}, s234[3] = {2, 3, 4};
    mt_idx it[2] = {mt_idx_slice(0, 2, 1), mt_idx_all()};
    mt_var p = mt_graph_softmax(g, x, 1);
    mt_var loop; /* SCAN: running product of x's rows, starting at v */
    {
        mt_graph *body = new_graph();
        mt_var bin[2] = {mt_graph_placeholder(body, "row", MT_FLOAT64, 1, s4),
                         mt_graph_placeholder(body, "acc", MT_FLOAT64, 1, s4)};
        mt_var bout = mt_graph_mul(body, bin[0], bin[1]);
        mt_scan_spec sp = {1, 1, 0, 0, -1, false};
        mt_var ops[2] = {x, v};
        MT_CHECK_OK(mt_graph_scan(g, body, &sp, bin, &bout, ops, &loop, NULL));
        mt_graph_free(body);
    }
    mt_var terms[] = {
        mt_graph_exp(g, x),                                          /* ELEMWISE */
        mt_graph_sum(g, x, 1, &ax0, false),                          /* REDUCE */
        mt_graph_logsumexp(g, x, 1, &ax1, false),                    /* LOGSUMEXP */
        mt_graph_var(g, xu, 1, &ax0, false, 0.0),                    /* SIZE */
        p,                                                           /* SOFTMAX */
        mt_graph_logsoftmax(g, x, 1),                                /* LOGSOFTMAX */
        mt_graph_crossentropy(g, p, p, 1),                           /* XENT */
        mt_graph_crossentropy_labels(g, p, lab, 1),                  /* XENT_LABELS */
        mt_graph_softmax_crossentropy(g, x, p, 1),                   /* SOFTMAX_XENT */
        mt_graph_softmax_crossentropy_labels(g, x, lab, 1),          /* ..._LABELS */
        /* ..._LABELS_DX: formed by rewrites after autodiff, so it has no gradient; reached
         * here only through stop_gradient (no_gradient_through_fused_xent_dx tests the error) */
        mt_graph_softmax_crossentropy_labels_dx(g, mt_graph_ones(g, MT_FLOAT64, 1, s3),
                                                mt_graph_stop_gradient(g, x), lab, 1),
        mt_graph_matmul(g, x, v),                                    /* MATMUL */
        mt_graph_gemm(g, x, mt_graph_transpose(g, x, NULL), mt_graph_ones(g, MT_FLOAT64, 2,
                                                                          (int64_t[2]){3, 3}),
                      1.0, 1.0, false, false),                       /* GEMM, DIMSHUFFLE */
        mt_graph_reshape(g, x, 2, s26),                              /* RESHAPE */
        mt_graph_broadcast_to(g, v, 3, s234),                        /* BROADCAST_TO */
        mt_graph_broadcast_like(g, v, xu),                           /* BROADCAST_LIKE */
        mt_graph_concatenate(g, 2, (mt_var[2]){x, x}, 0),            /* CONCAT */
        mt_graph_index(g, x, 2, it),                                 /* SLICE */
        mt_graph_set_subtensor(g, x, 2, it, v),                      /* SET_SUBTENSOR */
        mt_graph_inc_subtensor(g, x, 2, it, v),                      /* INC_SUBTENSOR */
        mt_graph_gather(g, x, idx, 0),                               /* GATHER */
        mt_graph_scatter_add(g, x, idx, mt_graph_gather(g, x, idx, 0), 0), /* SCATTER_ADD */
        mt_graph_mul(g, x, mt_graph_one_hot(g, idx, 4, MT_FLOAT64)), /* ONE_HOT */
        mt_graph_mul(g, v, mt_graph_arange(g, MT_FLOAT64, 0, 4, 1)), /* ARANGE */
        mt_graph_mul(g, x, mt_graph_random_uniform(g, MT_FLOAT64, 2, s34, 0, 1)), /* RANDOM */
        mt_graph_mul(g, x, mt_graph_stop_gradient(g, x)),            /* STOP_GRADIENT */
        mt_graph_grad_clip(g, x, -1, 1),                             /* GRAD_CLIP */
        mt_graph_shape_assert(g, xu, 2, (int64_t[2]){3, 4}),         /* SHAPE_ASSERT */
        mt_graph_allreduce(g, x, 0),                                 /* ALLREDUCE */
        loop,                                                        /* SCAN */
        /* CONV2D, CONV2D_GRAD_INPUT, CONV2D_GRAD_WEIGHT, POOL2D, POOL2D_GRAD (and their
         * gradients, which use the same ops) */
        mt_graph_conv2d_grad_input(
            g, mt_graph_conv2d(g, mt_graph_reshape(g, x, 4, (int64_t[4]){1, 1, 3, 4}),
                               mt_graph_reshape(g, x, 4, (int64_t[4]){1, 1, 3, 4}), NULL, NULL),
            mt_graph_reshape(g, x, 4, (int64_t[4]){1, 1, 3, 4}),
            mt_graph_reshape(g, x, 4, (int64_t[4]){1, 1, 3, 4}), NULL, NULL),
        mt_graph_conv2d_grad_weight(g, mt_graph_reshape(g, x, 4, (int64_t[4]){1, 1, 3, 4}),
                                    mt_graph_reshape(g, v, 4, (int64_t[4]){1, 1, 2, 2}),
                                    (int32_t[2]){2, 3}, NULL, NULL),
        mt_graph_pool2d_grad(g, mt_graph_reshape(g, x, 4, (int64_t[4]){1, 1, 3, 4}),
                             mt_graph_pool2d(g, mt_graph_reshape(g, x, 4, (int64_t[4]){1, 1, 3, 4}),
                                             MT_POOL_MAX, (int32_t[2]){2, 2}, NULL, NULL, true),
                             mt_graph_reshape(g, v, 4, (int64_t[4]){1, 1, 2, 2}), MT_POOL_MAX,
                             (int32_t[2]){2, 2}, NULL, NULL, true),
    };
    int32_t nt = (int32_t)(sizeof(terms) / sizeof(terms[0]));
    mt_var cost = mt_graph_scalar(g, MT_FLOAT64, 0.0);
    for (int32_t i = 0; i < nt; i++) cost = mt_graph_add(g, cost, sum_all(g, terms[i]));
    MT_CHECK(cost != MT_VAR_NONE);
    /* every op appears (a new op without a case here fails this test) */
    mt_var *order = NULL;
    int32_t n = 0;
    bool seen[MT_OP_COUNT] = {false};
    MT_CHECK_OK(mt_graph_toposort(g, 1, &cost, &order, &n));
    for (int32_t i = 0; i < n; i++) seen[mt_graph_op(g, order[i])] = true;
    mt_free(order);
    for (int op = 0; op < MT_OP_COUNT; op++)
        if (!seen[op]) mt_test_fail(__FILE__, __LINE__, "op %s is not covered", mt_op_name(op));
    mt_var w[3] = {x, xu, v}, gr[3];
    MT_CHECK_OK(mt_graph_grad(g, cost, 3, w, gr, NULL));
    EXPECT_TYPE(g, gr[0], "float64[3,4]");
    /* the shape_assert term makes xu's gradient statically (3, 4): same ndim, known sizes */
    EXPECT_TYPE(g, gr[1], "float64[3,4]");
    EXPECT_TYPE(g, gr[2], "float64[4]");
    /* and second derivatives of all of it */
    mt_var hx = MT_VAR_NONE;
    MT_CHECK_OK(mt_graph_grad(g, sum_all(g, mt_graph_mul(g, gr[0], gr[0])), 1, &x, &hx, NULL));
    EXPECT_TYPE(g, hx, "float64[3,4]");
    MT_CHECK_OK(mt_graph_verify(g));
    mt_graph_free(g);
}

/* The fused labels gradient is built by a rewrite from a gradient graph: differentiating it
 * (reverse, L-op or R-op) is an error naming the op and what to do, never a crash. */
MT_TEST(no_gradient_through_fused_xent_dx)
{
    mt_graph *g = new_graph();
    int64_t s34[2] = {3, 4}, s3[1] = {3};
    mt_var x = mt_graph_placeholder(g, "x", MT_FLOAT64, 2, s34);
    mt_var gz = mt_graph_placeholder(g, "gz", MT_FLOAT64, 1, s3);
    mt_var lab = mt_graph_placeholder(g, "lab", MT_INT64, 1, s3);
    mt_var d = mt_graph_softmax_crossentropy_labels_dx(g, gz, x, lab, 1);
    mt_var cost = sum_all(g, d);
    mt_var wrt[2] = {x, gz}, out[2] = {MT_VAR_NONE, MT_VAR_NONE};
    MT_CHECK_ERR(mt_graph_grad(g, cost, 2, wrt, out, NULL), MT_ERR_UNSUPPORTED,
                 "softmax_crossentropy_labels_dx has no gradient: it is formed by a rewrite");
    MT_CHECK(strstr(mt_last_error(), "take gradients of the graph before rewriting it") != NULL);
    MT_CHECK(out[0] == MT_VAR_NONE && out[1] == MT_VAR_NONE);
    mt_graph_clear_error(g);
    mt_var ev = mt_graph_ones(g, MT_FLOAT64, 2, s34), r = MT_VAR_NONE;
    MT_CHECK_ERR(mt_graph_rop(g, 1, &d, 1, &x, &ev, &r, NULL), MT_ERR_UNSUPPORTED,
                 "softmax_crossentropy_labels_dx has no gradient");
    mt_graph_clear_error(g);
    mt_var ones = mt_graph_ones(g, MT_FLOAT64, 2, s34), lo = MT_VAR_NONE;
    MT_CHECK_ERR(mt_graph_lop(g, 1, &d, 1, &gz, &ones, &lo, NULL), MT_ERR_UNSUPPORTED,
                 "softmax_crossentropy_labels_dx has no gradient");
    mt_graph_free(g);
}
