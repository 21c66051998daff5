/* Type and shape inference of every graph op: NumPy dtype tables (generated from NumPy),
 * NEP 50 weak literals, broadcasting with unknown sizes, reductions, products, views, slicing
 * (against Python's slice semantics), indexing, generators and identities, each with its
 * error messages for invalid constructions. Expected values come from NumPy/Python or are
 * written by hand, never from the code under test. */
#include "graph_test_util.h"
#include "numpy_dtypes.h"

static mt_dtype dt_of(const char *name)
{
    mt_dtype d;
    MT_CHECK_OK(mt_dtype_from_name(&d, name));
    return d;
}

/* ---------------------------------------------------------------- dtype tables */

MT_TEST(dtype_table_binary)
{
    mt_graph *g = new_graph();
    int checked = 0;
    for (size_t r = 0; r < sizeof(np_binary_table) / sizeof(np_binary_table[0]); r++) {
        mt_sop op = np_binary_table[r].op;
        for (int a = 0; a < 12; a++) {
            for (int b = 0; b < 12; b++) {
                char want = np_binary_table[r].res[12 * a + b];
                mt_var x = ph(g, NULL, dt_of(np_dtype_names[a]), 1, SHAPE(2));
                mt_var y = ph(g, NULL, dt_of(np_dtype_names[b]), 1, SHAPE(2));
                mt_err_clear();
                mt_var z = mt_graph_binary(g, op, x, y);
                if (want == 'x') {
                    if (z != MT_VAR_NONE || mt_last_status() != MT_ERR_DTYPE)
                        mt_test_fail(__FILE__, __LINE__, "%s(%s, %s) should fail with ERR_DTYPE "
                                     "(got v%d, %s)", mt_op_name(MT_OP_ELEMWISE),
                                     np_dtype_names[a], np_dtype_names[b], (int)z,
                                     mt_last_error());
                    mt_graph_clear_error(g);
                    continue;
                }
                const char *wn = np_dtype_names[want >= 'a' ? want - 'a' + 10 : want - '0'];
                if (!z)
                    mt_test_fail(__FILE__, __LINE__, "sop %d (%s, %s): error %s, NumPy gives %s",
                                 (int)op, np_dtype_names[a], np_dtype_names[b],
                                 mt_last_error(), wn);
                if (strcmp(mt_dtype_name(mt_graph_type(g, z)->dtype), wn) != 0)
                    mt_test_fail(__FILE__, __LINE__, "sop %d (%s, %s) -> %s, NumPy gives %s",
                                 (int)op, np_dtype_names[a], np_dtype_names[b],
                                 mt_dtype_name(mt_graph_type(g, z)->dtype), wn);
                checked++;
            }
        }
    }
    MT_CHECK(checked > 1500);
    MT_CHECK_OK(mt_graph_verify(g));
    mt_graph_free(g);
}

MT_TEST(dtype_table_unary)
{
    mt_graph *g = new_graph();
    for (size_t r = 0; r < sizeof(np_unary_table) / sizeof(np_unary_table[0]); r++) {
        mt_sop op = np_unary_table[r].op;
        for (int a = 0; a < 12; a++) {
            char want = np_unary_table[r].res[a];
            mt_var x = ph(g, NULL, dt_of(np_dtype_names[a]), 2, SHAPE(2, 3));
            mt_err_clear();
            mt_var z = mt_graph_unary(g, op, x);
            if (want == 'x') {
                if (z != MT_VAR_NONE || mt_last_status() != MT_ERR_DTYPE)
                    mt_test_fail(__FILE__, __LINE__, "unary sop %d (%s) should fail (got v%d)",
                                 (int)op, np_dtype_names[a], (int)z);
                mt_graph_clear_error(g);
                continue;
            }
            const char *wn = np_dtype_names[want >= 'a' ? want - 'a' + 10 : want - '0'];
            if (!z)
                mt_test_fail(__FILE__, __LINE__, "unary sop %d (%s): error %s, NumPy gives %s",
                             (int)op, np_dtype_names[a], mt_last_error(), wn);
            if (strcmp(mt_dtype_name(mt_graph_type(g, z)->dtype), wn) != 0)
                mt_test_fail(__FILE__, __LINE__, "unary sop %d (%s) -> %s, NumPy gives %s", (int)op,
                             np_dtype_names[a], mt_dtype_name(mt_graph_type(g, z)->dtype), wn);
            char want_type[64];
            snprintf(want_type, sizeof(want_type), "%s[2,3]", wn);
            CHECK_TYPE(g, z, want_type);
        }
    }
    mt_graph_free(g);
}

/* ---------------------------------------------------------------- weak literals (NEP 50) */

MT_TEST(weak_literals)
{
    mt_graph *g = new_graph();
    mt_var f32 = ph(g, "f32", MT_FLOAT32, 1, SHAPE(3));
    mt_var f16 = ph(g, "f16", MT_FLOAT16, 1, SHAPE(3));
    mt_var i32 = ph(g, "i32", MT_INT32, 1, SHAPE(3));
    mt_var i8 = ph(g, "i8", MT_INT8, 1, SHAPE(3));
    mt_var u8 = ph(g, "u8", MT_UINT8, 1, SHAPE(3));
    mt_var b = ph(g, "b", MT_BOOL, 1, SHAPE(3));
    mt_var two = mt_graph_literal_float(g, 2.0), one = mt_graph_literal_int(g, 1);
    CHECK_TYPE(g, two, "float64[] weak");
    CHECK_TYPE(g, one, "int64[] weak");
    CHECK_TYPE(g, mt_graph_mul(g, f32, two), "float32[3]");
    CHECK_TYPE(g, mt_graph_mul(g, two, f16), "float16[3]");
    CHECK_TYPE(g, mt_graph_add(g, i32, mt_graph_literal_float(g, 1.5)), "float64[3]");
    CHECK_TYPE(g, mt_graph_add(g, i8, one), "int8[3]");
    CHECK_TYPE(g, mt_graph_add(g, u8, mt_graph_literal_int(g, 255)), "uint8[3]");
    CHECK_TYPE(g, mt_graph_add(g, b, one), "int64[3]");
    CHECK_TYPE(g, mt_graph_add(g, b, two), "float64[3]");
    CHECK_TYPE(g, mt_graph_div(g, i8, one), "float64[3]");
    CHECK_TYPE(g, mt_graph_lt(g, f16, two), "bool[3]");
    CHECK_TYPE(g, mt_graph_pow(g, f32, mt_graph_literal_int(g, 10)), "float32[3]");
    /* only literals: stays weak, like Python arithmetic */
    CHECK_TYPE(g, mt_graph_add(g, one, one), "int64[] weak");
    CHECK_TYPE(g, mt_graph_add(g, one, two), "float64[] weak");
    CHECK_TYPE(g, mt_graph_div(g, one, one), "float64[] weak");
    CHECK_TYPE(g, mt_graph_mul(g, f32, mt_graph_neg(g, two)), "float32[3]");
    /* a strong scalar constant promotes like an array */
    CHECK_TYPE(g, mt_graph_mul(g, f32, mt_graph_scalar(g, MT_FLOAT64, 2)), "float64[3]");
    /* the literal is converted into a plain constant of the array's dtype */
    mt_var y = mt_graph_mul(g, f32, two);
    mt_var c = mt_graph_input(g, y, 1);
    MT_CHECK_EQ_INT(mt_graph_op(g, c), MT_OP_CONST);
    CHECK_TYPE(g, c, "float32[1]");
    mt_scalar s;
    MT_CHECK(mt_graph_scalar_value(g, c, &s));
    MT_CHECK_CLOSE(s.v.f, 2.0, 0, 0);
    /* NumPy 2: an integer literal that does not fit the array's dtype is an error */
    CHECK_FAIL(g, mt_graph_add(g, u8, mt_graph_literal_int(g, 256)), MT_ERR_RANGE,
               "Python integer 256 is out of bounds for uint8");
    CHECK_FAIL(g, mt_graph_add(g, u8, mt_graph_literal_int(g, -1)), MT_ERR_RANGE, "uint8");
    CHECK_FAIL(g, mt_graph_mul(g, i8, mt_graph_literal_int(g, 128)), MT_ERR_RANGE, "int8");
    MT_CHECK(mt_graph_mul(g, i8, mt_graph_literal_int(g, -128)) != MT_VAR_NONE);
    /* reductions and casts drop weakness */
    CHECK_TYPE(g, mt_graph_sum(g, two, 0, NULL, false), "float64[]");
    CHECK_TYPE(g, mt_graph_cast(g, one, MT_INT64), "int64[]");
    MT_CHECK_OK(mt_graph_verify(g));
    mt_graph_free(g);
}

/* ---------------------------------------------------------------- broadcasting */

MT_TEST(broadcast_unknown_dims)
{
    mt_graph *g = new_graph();
    mt_var a = ph(g, "a", MT_FLOAT32, 2, SHAPE(-1, 4));
    mt_var b = ph(g, "b", MT_FLOAT32, 2, SHAPE(3, 1));
    mt_var c = ph(g, "c", MT_FLOAT32, 2, SHAPE(-1, 4));
    mt_var d = ph(g, "d", MT_FLOAT32, 2, SHAPE(1, 4));
    mt_var e = ph(g, "e", MT_FLOAT32, 2, SHAPE(-1, 1));
    mt_var v = ph(g, "v", MT_FLOAT32, 1, SHAPE(4));
    mt_var ab = mt_graph_add(g, a, b);
    CHECK_TYPE(g, ab, "float32[3,4]");
    MT_CHECK(mt_graph_flags(g, ab) & MT_NODE_RTCHECK); /* ? must equal 3 */
    mt_var ac = mt_graph_add(g, a, c);
    CHECK_TYPE(g, ac, "float32[?,4]");
    MT_CHECK(mt_graph_flags(g, ac) & MT_NODE_RTCHECK); /* ? and ? must agree */
    mt_var de = mt_graph_add(g, d, e);
    CHECK_TYPE(g, de, "float32[?,4]");
    MT_CHECK(!(mt_graph_flags(g, de) & MT_NODE_RTCHECK)); /* static 1 broadcasts */
    mt_var bv = mt_graph_mul(g, b, v);
    CHECK_TYPE(g, bv, "float32[3,4]");
    MT_CHECK(!(mt_graph_flags(g, bv) & MT_NODE_RTCHECK));
    /* the elementwise contract: operands of the node's ndim and dtype */
    const mt_type *t1 = mt_graph_type(g, mt_graph_input(g, bv, 1));
    MT_CHECK_EQ_INT(t1->ndim, 2);
    MT_CHECK_EQ_INT(t1->shape[0], 1);
    MT_CHECK_EQ_INT(mt_graph_op(g, mt_graph_input(g, bv, 1)), MT_OP_DIMSHUFFLE);
    CHECK_TYPE(g, mt_graph_add(g, mt_graph_scalar(g, MT_FLOAT32, 1), v), "float32[4]");
    mt_var x34 = ph(g, "x34", MT_FLOAT32, 2, SHAPE(3, 4));
    mt_var x5 = ph(g, "x5", MT_FLOAT32, 1, SHAPE(5));
    CHECK_FAIL(g, mt_graph_add(g, x34, x5), MT_ERR_SHAPE,
               "add: shapes (3, 4) and (5,) do not broadcast");
    mt_var x2 = ph(g, "x2", MT_BOOL, 1, SHAPE(2));
    CHECK_FAIL(g, mt_graph_where(g, x2, x34, v), MT_ERR_SHAPE,
               "where: shapes (2,), (3, 4) and (4,) do not broadcast");
    mt_var u = ph(g, "u", MT_FLOAT32, 1, SHAPE(-1));
    CHECK_TYPE(g, mt_graph_add(g, x34, u), "float32[3,4]");
    MT_CHECK_OK(mt_graph_verify(g));
    mt_graph_free(g);
}

MT_TEST(elemwise_contract_and_numpy_cases)
{
    mt_graph *g = new_graph();
    mt_var f = ph(g, "f", MT_FLOAT32, 2, SHAPE(2, 3));
    mt_var i = ph(g, "i", MT_INT32, 1, SHAPE(3));
    mt_var bo = ph(g, "bo", MT_BOOL, 1, SHAPE(3));
    mt_var z = mt_graph_add(g, f, i);
    CHECK_TYPE(g, z, "float64[2,3]");
    for (int k = 0; k < 2; k++) {
        const mt_type *t = mt_graph_type(g, mt_graph_input(g, z, k));
        MT_CHECK_EQ_INT(t->dtype, MT_FLOAT64);
        MT_CHECK_EQ_INT(t->ndim, 2);
    }
    MT_CHECK_STR_EQ(mt_graph_op_label(g, mt_graph_input(g, z, 0)), "cast");
    MT_CHECK_STR_EQ(mt_graph_op_label(g, z), "add");
    /* NumPy bool arithmetic: + is or, * is and, abs is the identity */
    MT_CHECK_STR_EQ(mt_graph_op_label(g, mt_graph_add(g, bo, bo)), "or");
    MT_CHECK_STR_EQ(mt_graph_op_label(g, mt_graph_mul(g, bo, bo)), "and");
    MT_CHECK_EQ_INT(mt_graph_abs(g, bo), bo);
    MT_CHECK_EQ_INT(mt_graph_round(g, i), i);
    CHECK_FAIL(g, mt_graph_sub(g, bo, bo), MT_ERR_DTYPE, "boolean subtract");
    CHECK_FAIL(g, mt_graph_neg(g, bo), MT_ERR_DTYPE, "boolean negative");
    CHECK_FAIL(g, mt_graph_sign(g, bo), MT_ERR_DTYPE, "sign");
    CHECK_FAIL(g, mt_graph_binary(g, MT_SOP_LSHIFT, f, f), MT_ERR_DTYPE, "lshift");
    CHECK_FAIL(g, mt_graph_unary(g, MT_SOP_INPUT, f), MT_ERR_INVALID, "not an elementwise");
    CHECK_FAIL(g, mt_graph_unary(g, MT_SOP_CAST, f), MT_ERR_INVALID, "mt_graph_cast");
    CHECK_FAIL(g, mt_graph_binary(g, MT_SOP_EXP, f, f), MT_ERR_INVALID, "exp: expects 1 operands");
    CHECK_FAIL(g, mt_graph_add(g, f, 12345), MT_ERR_INVALID, "not a variable of this graph");
    /* every named unary and binary builder gives the NumPy-style float result */
    mt_var (*un[])(mt_graph *, mt_var) = {
        mt_graph_neg, mt_graph_abs, mt_graph_sign, mt_graph_square, mt_graph_reciprocal,
        mt_graph_sqrt, mt_graph_rsqrt, mt_graph_exp, mt_graph_exp2, mt_graph_expm1, mt_graph_log,
        mt_graph_log2, mt_graph_log10, mt_graph_log1p, mt_graph_log1mexp, mt_graph_sin,
        mt_graph_cos, mt_graph_tan, mt_graph_arcsin, mt_graph_arccos, mt_graph_arctan,
        mt_graph_sinh, mt_graph_cosh, mt_graph_tanh, mt_graph_erf, mt_graph_erfc,
        mt_graph_sigmoid, mt_graph_softplus, mt_graph_relu, mt_graph_floor, mt_graph_ceil,
        mt_graph_round, mt_graph_trunc};
    for (size_t k = 0; k < sizeof(un) / sizeof(un[0]); k++) CHECK_TYPE(g, un[k](g, f), "float32[2,3]");
    mt_var (*unb[])(mt_graph *, mt_var) = {mt_graph_isnan, mt_graph_isinf, mt_graph_isfinite,
                                           mt_graph_logical_not};
    for (size_t k = 0; k < sizeof(unb) / sizeof(unb[0]); k++) CHECK_TYPE(g, unb[k](g, f), "bool[2,3]");
    mt_var (*bin[])(mt_graph *, mt_var, mt_var) = {
        mt_graph_add, mt_graph_sub, mt_graph_mul, mt_graph_div, mt_graph_floordiv, mt_graph_mod,
        mt_graph_pow, mt_graph_maximum, mt_graph_minimum, mt_graph_arctan2, mt_graph_logaddexp};
    for (size_t k = 0; k < sizeof(bin) / sizeof(bin[0]); k++)
        CHECK_TYPE(g, bin[k](g, f, f), "float32[2,3]");
    mt_var (*cmp[])(mt_graph *, mt_var, mt_var) = {
        mt_graph_eq, mt_graph_ne, mt_graph_lt, mt_graph_le, mt_graph_gt, mt_graph_ge,
        mt_graph_logical_and, mt_graph_logical_or, mt_graph_logical_xor};
    for (size_t k = 0; k < sizeof(cmp) / sizeof(cmp[0]); k++)
        CHECK_TYPE(g, cmp[k](g, f, i), "bool[2,3]");
    MT_CHECK_OK(mt_graph_verify(g));
    mt_graph_free(g);
}

MT_TEST(where_clip_cast)
{
    mt_graph *g = new_graph();
    mt_var c = ph(g, "c", MT_INT32, 1, SHAPE(3));
    mt_var a = ph(g, "a", MT_FLOAT32, 2, SHAPE(2, 3));
    mt_var b = ph(g, "b", MT_FLOAT16, 1, SHAPE(1));
    mt_var w = mt_graph_where(g, c, a, b);
    CHECK_TYPE(g, w, "float32[2,3]");
    CHECK_TYPE(g, mt_graph_input(g, w, 0), "bool[1,3]"); /* cond cast to bool, then expanded */
    CHECK_TYPE(g, mt_graph_where(g, c, mt_graph_literal_int(g, 1), mt_graph_literal_float(g, 0.5)),
               "float64[3]");
    mt_var cl = mt_graph_clip(g, a, mt_graph_literal_float(g, -1), mt_graph_literal_float(g, 1));
    CHECK_TYPE(g, cl, "float32[2,3]");
    MT_CHECK_STR_EQ(mt_graph_op_label(g, cl), "min");
    MT_CHECK_STR_EQ(mt_graph_op_label(g, mt_graph_input(g, cl, 0)), "max");
    mt_var k = mt_graph_cast(g, a, MT_INT8);
    CHECK_TYPE(g, k, "int8[2,3]");
    MT_CHECK_STR_EQ(mt_graph_op_label(g, k), "cast");
    MT_CHECK_EQ_INT(mt_graph_attrs(g, k)->dtype, MT_INT8);
    MT_CHECK_EQ_INT(mt_graph_cast(g, a, MT_FLOAT32), a);
    MT_CHECK_EQ_INT(mt_graph_cast(g, a, MT_INT8), k); /* hash-consed */
    /* a cast constant is a constant */
    mt_var k2 = mt_graph_cast(g, mt_graph_scalar(g, MT_FLOAT64, 2.75), MT_INT32);
    MT_CHECK_EQ_INT(mt_graph_op(g, k2), MT_OP_CONST);
    mt_scalar s;
    MT_CHECK(mt_graph_scalar_value(g, k2, &s));
    MT_CHECK_EQ_INT(s.v.i, 2);
    CHECK_FAIL(g, mt_graph_cast(g, a, (mt_dtype)99), MT_ERR_DTYPE, "invalid dtype");
    MT_CHECK_OK(mt_graph_verify(g));
    mt_graph_free(g);
}

/* ---------------------------------------------------------------- reductions */

MT_TEST(reductions)
{
    mt_graph *g = new_graph();
    mt_var x = ph(g, "x", MT_INT32, 3, SHAPE(2, -1, 4));
    mt_var f = ph(g, "f", MT_FLOAT16, 2, SHAPE(3, 5));
    mt_var bo = ph(g, "bo", MT_BOOL, 1, SHAPE(7));
    CHECK_TYPE(g, mt_graph_sum(g, x, 0, NULL, false), "int64[]");
    CHECK_TYPE(g, mt_graph_sum(g, x, 1, AXES(1), false), "int64[2,4]");
    CHECK_TYPE(g, mt_graph_sum(g, x, 2, AXES(-1, 0), true), "int64[1,?,1]");
    CHECK_TYPE(g, mt_graph_mean(g, x, 1, AXES(2), false), "float64[2,?]");
    CHECK_TYPE(g, mt_graph_mean(g, f, 1, AXES(0), false), "float16[5]");
    CHECK_TYPE(g, mt_graph_prod(g, f, 0, NULL, true), "float16[1,1]");
    CHECK_TYPE(g, mt_graph_max(g, x, 1, AXES(1), false), "int32[2,4]");
    CHECK_TYPE(g, mt_graph_min(g, f, 1, AXES(1), false), "float16[3]");
    CHECK_TYPE(g, mt_graph_argmax(g, f, 1, AXES(1), false), "int64[3]");
    CHECK_TYPE(g, mt_graph_argmin(g, f, 0, NULL, false), "int64[]");
    CHECK_TYPE(g, mt_graph_all(g, x, 1, AXES(0), false), "bool[?,4]");
    CHECK_TYPE(g, mt_graph_any(g, bo, 0, NULL, false), "bool[]");
    CHECK_TYPE(g, mt_graph_sum(g, bo, 0, NULL, false), "int64[]");
    mt_var u = ph(g, "u", MT_UINT8, 1, SHAPE(3));
    CHECK_TYPE(g, mt_graph_sum(g, u, 0, NULL, false), "uint64[]");
    /* normalized axes: every spelling of "all axes" is one node */
    mt_var s1 = mt_graph_sum(g, x, 0, NULL, false);
    MT_CHECK_EQ_INT(mt_graph_sum(g, x, 3, AXES(2, 0, 1), false), s1);
    MT_CHECK_EQ_INT(mt_graph_sum(g, x, 3, AXES(-1, -3, 1), false), s1);
    MT_CHECK_EQ_INT(mt_graph_attrs(g, s1)->naxes, 3);
    MT_CHECK_EQ_INT(mt_graph_attrs(g, mt_graph_sum(g, x, 1, AXES(-1), false))->axes[0], 2);
    MT_CHECK_STR_EQ(mt_graph_op_label(g, s1), "sum");
    CHECK_TYPE(g, mt_graph_logsumexp(g, f, 1, AXES(1), true), "float16[3,1]");
    CHECK_TYPE(g, mt_graph_logsumexp(g, x, 0, NULL, false), "float64[]");
    /* errors */
    CHECK_FAIL(g, mt_graph_sum(g, x, 1, AXES(3), false), MT_ERR_INVALID,
               "sum: axis 3 is out of range for 3 dimensions");
    CHECK_FAIL(g, mt_graph_mean(g, x, 2, AXES(1, -2), false), MT_ERR_INVALID,
               "mean: axis -2 is repeated");
    CHECK_FAIL(g, mt_graph_reduce(g, (mt_reduce_op)42, x, 0, NULL, false), MT_ERR_INVALID,
               "invalid reduction");
    mt_var empty = ph(g, "empty", MT_FLOAT32, 2, SHAPE(0, 3));
    CHECK_FAIL(g, mt_graph_max(g, empty, 1, AXES(0), false), MT_ERR_SHAPE,
               "zero-size reduction over axis 0 of (0, 3)");
    CHECK_TYPE(g, mt_graph_sum(g, empty, 1, AXES(0), false), "float32[3]");
    MT_CHECK_OK(mt_graph_verify(g));
    mt_graph_free(g);
}

MT_TEST(var_std_size)
{
    mt_graph *g = new_graph();
    mt_var x = ph(g, "x", MT_FLOAT32, 2, SHAPE(4, 6));
    mt_var y = ph(g, "y", MT_INT32, 2, SHAPE(-1, 6));
    mt_var v = mt_graph_var(g, x, 1, AXES(1), false, 1);
    CHECK_TYPE(g, v, "float32[4]");
    /* static N: the divisor is the constant N - ddof = 5 */
    MT_CHECK_STR_EQ(mt_graph_op_label(g, v), "div");
    mt_scalar s;
    MT_CHECK(mt_graph_scalar_value(g, mt_graph_input(g, v, 1), &s));
    MT_CHECK_CLOSE(s.v.f, 5.0, 0, 0);
    CHECK_TYPE(g, mt_graph_std(g, x, 0, NULL, true, 0), "float32[1,1]");
    mt_var vy = mt_graph_var(g, y, 1, AXES(0), false, 1);
    CHECK_TYPE(g, vy, "float64[6]");
    /* unknown N: a SIZE node computes it at run time */
    mt_var order_n = 0;
    mt_var *order;
    int32_t n;
    MT_CHECK_OK(mt_graph_toposort(g, 1, &vy, &order, &n));
    for (int32_t i = 0; i < n; i++)
        if (mt_graph_op(g, order[i]) == MT_OP_SIZE) order_n++;
    mt_free(order);
    MT_CHECK_EQ_INT(order_n, 1);
    mt_var sz = mt_graph_size_of(g, x, 0, NULL);
    MT_CHECK_EQ_INT(mt_graph_op(g, sz), MT_OP_CONST);
    MT_CHECK(mt_graph_scalar_value(g, sz, &s));
    MT_CHECK_EQ_INT(s.v.i, 24);
    mt_var sy = mt_graph_size_of(g, y, 1, AXES(1));
    MT_CHECK_EQ_INT(mt_graph_op(g, sy), MT_OP_CONST);
    mt_var sy0 = mt_graph_size_of(g, y, 0, NULL);
    MT_CHECK_EQ_INT(mt_graph_op(g, sy0), MT_OP_SIZE);
    CHECK_TYPE(g, sy0, "int64[]");
    int64_t in_shape[2] = {5, 6}, out[1];
    const int64_t *ins[1] = {in_shape};
    MT_CHECK_OK(mt_graph_eval_shape(g, sy0, ins, out));
    MT_CHECK_OK(mt_graph_verify(g));
    mt_graph_free(g);
}

/* ---------------------------------------------------------------- nnet */

MT_TEST(nnet_ops)
{
    mt_graph *g = new_graph();
    mt_var x = ph(g, "x", MT_FLOAT32, 2, SHAPE(-1, 10));
    mt_var t = ph(g, "t", MT_FLOAT32, 2, SHAPE(8, 10));
    mt_var y = ph(g, "y", MT_INT32, 1, SHAPE(-1));
    mt_var xi = ph(g, "xi", MT_INT16, 2, SHAPE(3, 4));
    CHECK_TYPE(g, mt_graph_softmax(g, x, -1), "float32[?,10]");
    CHECK_TYPE(g, mt_graph_logsoftmax(g, xi, 0), "float32[3,4]");
    MT_CHECK_EQ_INT(mt_graph_attrs(g, mt_graph_softmax(g, x, -1))->axes[0], 1);
    MT_CHECK_EQ_INT(mt_graph_softmax(g, x, -1), mt_graph_softmax(g, x, 1));
    mt_var ce = mt_graph_crossentropy(g, mt_graph_softmax(g, x, 1), t, 1);
    CHECK_TYPE(g, ce, "float32[8]");
    MT_CHECK(mt_graph_flags(g, ce) & MT_NODE_RTCHECK);
    CHECK_TYPE(g, mt_graph_crossentropy_labels(g, x, y, -1), "float32[?]");
    CHECK_TYPE(g, mt_graph_softmax_crossentropy(g, x, t, 1), "float32[8]");
    CHECK_TYPE(g, mt_graph_softmax_crossentropy_labels(g, t, y, 1), "float32[8]");
    CHECK_TYPE(g, mt_graph_sigmoid_crossentropy_logits(g, x, t), "float32[8,10]");
    CHECK_FAIL(g, mt_graph_softmax(g, x, 2), MT_ERR_INVALID,
               "softmax: axis 2 is out of range for 2 dimensions");
    CHECK_FAIL(g, mt_graph_crossentropy_labels(g, x, t, 1), MT_ERR_DTYPE,
               "labels must be integers, got float32");
    mt_var y3 = ph(g, "y3", MT_INT64, 1, SHAPE(3));
    CHECK_FAIL(g, mt_graph_softmax_crossentropy_labels(g, t, y3, 1), MT_ERR_SHAPE,
               "labels of shape (3,) do not match (8, 10) without axis 1");
    mt_var t2 = ph(g, "t2", MT_FLOAT32, 2, SHAPE(8, 11));
    CHECK_FAIL(g, mt_graph_crossentropy(g, t, t2, 1), MT_ERR_SHAPE,
               "crossentropy: shapes (8, 10) and (8, 11) differ");
    MT_CHECK_OK(mt_graph_verify(g));
    mt_graph_free(g);
}

/* softmax_crossentropy_labels_dx(gz, x, y): x's type; gz of x's shape without the axis (a
 * size 1 broadcasts), labels integers of that shape; unknown sizes are checked at run time. */
MT_TEST(xent_dx_types_and_errors)
{
    mt_graph *g = new_graph();
    mt_var x = ph(g, "x", MT_FLOAT32, 2, SHAPE(-1, 10));
    mt_var gz = ph(g, "gz", MT_FLOAT32, 1, SHAPE(8));
    mt_var g1 = ph(g, "g1", MT_FLOAT32, 1, SHAPE(1));
    mt_var gd = ph(g, "gd", MT_FLOAT64, 1, SHAPE(8));
    mt_var y = ph(g, "y", MT_INT32, 1, SHAPE(-1));
    mt_var y8 = ph(g, "y8", MT_UINT8, 1, SHAPE(8));
    mt_var xt = ph(g, "xt", MT_FLOAT64, 2, SHAPE(10, 8));
    mt_var d = mt_graph_softmax_crossentropy_labels_dx(g, gz, x, y, -1);
    CHECK_TYPE(g, d, "float32[8,10]"); /* gz's static size fills x's unknown one */
    MT_CHECK(mt_graph_flags(g, d) & MT_NODE_RTCHECK);
    MT_CHECK_EQ_INT(mt_graph_attrs(g, d)->axes[0], 1);
    MT_CHECK_STR_EQ(mt_graph_op_label(g, d), "softmax_crossentropy_labels_dx");
    mt_var d1 = mt_graph_softmax_crossentropy_labels_dx(g, g1, x, y, 1);
    CHECK_TYPE(g, d1, "float32[?,10]"); /* a size-1 gz broadcasts */
    /* the class axis first; gz's float64 is cast to the logits' dtype by the builder */
    mt_var d0 = mt_graph_softmax_crossentropy_labels_dx(g, gd, xt, y8, 0);
    CHECK_TYPE(g, d0, "float64[10,8]");
    MT_CHECK(!(mt_graph_flags(g, d0) & MT_NODE_RTCHECK));
    CHECK_FAIL(g, mt_graph_softmax_crossentropy_labels_dx(g, gz, x, gz, 1), MT_ERR_DTYPE,
               "softmax_crossentropy_labels_dx: labels must be integers, got float32");
    mt_var y3 = ph(g, "y3", MT_INT64, 1, SHAPE(3));
    CHECK_FAIL(g, mt_graph_softmax_crossentropy_labels_dx(g, gd, xt, y3, 0), MT_ERR_SHAPE,
               "labels of shape (3,) do not match (10, 8) without axis 0");
    mt_var g3 = ph(g, "g3", MT_FLOAT64, 2, SHAPE(8, 1));
    CHECK_FAIL(g, mt_graph_softmax_crossentropy_labels_dx(g, g3, xt, y8, 0), MT_ERR_SHAPE,
               "output gradient of shape (8, 1) do not match (10, 8) without axis 0");
    CHECK_FAIL(g, mt_graph_softmax_crossentropy_labels_dx(g, gz, x, y, 2), MT_ERR_INVALID,
               "axis 2 is out of range");
    /* mt_graph_make does not cast: a gz of another dtype is refused */
    mt_op_attrs a;
    memset(&a, 0, sizeof(a));
    a.naxes = 1;
    a.axes[0] = 1;
    CHECK_FAIL(g, mt_graph_make(g, MT_OP_SOFTMAX_XENT_LABELS_DX, &a, 3, (mt_var[]){gd, x, y}),
               MT_ERR_DTYPE, "the output gradient's dtype float64 differs from the logits' "
               "float32");
    /* concrete shapes at run time: x's batch must match gz's */
    const int64_t s_gz[1] = {8}, s_x[2] = {7, 10}, s_y[1] = {7};
    const int64_t *shapes[3] = {s_gz, s_x, s_y};
    int64_t out[MT_MAX_DIMS];
    MT_CHECK_ERR(mt_graph_eval_shape(g, d, shapes, out), MT_ERR_SHAPE,
                 "output gradient of shape (8,) do not match (7, 10) without axis 1");
    MT_CHECK_OK(mt_graph_verify(g));
    mt_graph_free(g);
}

/* ---------------------------------------------------------------- products */

MT_TEST(matmul_shapes)
{
    mt_graph *g = new_graph();
    mt_var a23 = ph(g, "a23", MT_FLOAT32, 2, SHAPE(2, 3));
    mt_var b34 = ph(g, "b34", MT_FLOAT32, 2, SHAPE(3, 4));
    mt_var v3 = ph(g, "v3", MT_FLOAT32, 1, SHAPE(3));
    mt_var b523 = ph(g, "b523", MT_FLOAT64, 3, SHAPE(5, 2, 3));
    mt_var c5123 = ph(g, "c5123", MT_FLOAT32, 4, SHAPE(5, 1, 2, 3));
    mt_var c734 = ph(g, "c734", MT_FLOAT32, 3, SHAPE(7, 3, 4));
    mt_var u = ph(g, "u", MT_FLOAT32, 2, SHAPE(-1, -1));
    mt_var i45 = ph(g, "i45", MT_INT32, 2, SHAPE(4, 5));
    CHECK_TYPE(g, mt_graph_matmul(g, a23, b34), "float32[2,4]");
    CHECK_TYPE(g, mt_graph_matmul(g, v3, b34), "float32[4]");
    CHECK_TYPE(g, mt_graph_matmul(g, a23, v3), "float32[2]");
    CHECK_TYPE(g, mt_graph_matmul(g, v3, v3), "float32[]");
    CHECK_TYPE(g, mt_graph_matmul(g, b523, b34), "float64[5,2,4]");
    CHECK_TYPE(g, mt_graph_matmul(g, c5123, c734), "float32[5,7,2,4]");
    CHECK_TYPE(g, mt_graph_matmul(g, b34, i45), "float64[3,5]");
    mt_var au = mt_graph_matmul(g, a23, u);
    CHECK_TYPE(g, au, "float32[2,?]");
    MT_CHECK(mt_graph_flags(g, au) & MT_NODE_RTCHECK);
    /* the MATMUL node itself sees equal ndim >= 2 */
    mt_var m = mt_graph_matmul(g, v3, b34);
    MT_CHECK_EQ_INT(mt_graph_op(g, m), MT_OP_DIMSHUFFLE);
    mt_var mm = mt_graph_input(g, m, 0);
    MT_CHECK_EQ_INT(mt_graph_op(g, mm), MT_OP_MATMUL);
    CHECK_TYPE(g, mt_graph_input(g, mm, 0), "float32[1,3]");
    CHECK_TYPE(g, mt_graph_dot(g, a23, b34), "float32[2,4]");
    CHECK_TYPE(g, mt_graph_dot(g, mt_graph_scalar(g, MT_FLOAT32, 2), b34), "float32[3,4]");
    CHECK_FAIL(g, mt_graph_matmul(g, a23, a23), MT_ERR_SHAPE,
               "matmul: inner dimensions differ: (2, 3) @ (2, 3) (3 vs 2)");
    CHECK_FAIL(g, mt_graph_matmul(g, b34, v3), MT_ERR_SHAPE, "(3, 4) @ (3,) (4 vs 3)");
    CHECK_FAIL(g, mt_graph_matmul(g, mt_graph_scalar(g, MT_FLOAT32, 1), a23), MT_ERR_SHAPE,
               "at least 1-D");
    mt_var c634 = ph(g, "c634", MT_FLOAT32, 3, SHAPE(6, 3, 4));
    CHECK_FAIL(g, mt_graph_matmul(g, b523, c634), MT_ERR_SHAPE, "batch dimensions");
    CHECK_FAIL(g, mt_graph_dot(g, b523, b34), MT_ERR_INVALID, "use matmul");
    MT_CHECK_OK(mt_graph_verify(g));
    mt_graph_free(g);
}

MT_TEST(gemm_shapes)
{
    mt_graph *g = new_graph();
    mt_var a = ph(g, "a", MT_FLOAT32, 2, SHAPE(3, 2));
    mt_var b = ph(g, "b", MT_FLOAT32, 2, SHAPE(4, 3));
    mt_var c = ph(g, "c", MT_FLOAT32, 1, SHAPE(4));
    mt_var r = mt_graph_gemm(g, a, b, c, 2.0, 1.0, true, true);
    CHECK_TYPE(g, r, "float32[2,4]");
    MT_CHECK_EQ_INT(mt_graph_op(g, r), MT_OP_GEMM);
    CHECK_TYPE(g, mt_graph_input(g, r, 2), "float32[1,4]");
    MT_CHECK_CLOSE(mt_graph_attrs(g, r)->alpha, 2.0, 0, 0);
    MT_CHECK(mt_graph_attrs(g, r)->trans_a && mt_graph_attrs(g, r)->trans_b);
    CHECK_FAIL(g, mt_graph_gemm(g, a, b, c, 1, 1, false, false), MT_ERR_SHAPE,
               "inner dimensions differ");
    mt_var c5 = ph(g, "c5", MT_FLOAT32, 1, SHAPE(5));
    CHECK_FAIL(g, mt_graph_gemm(g, a, b, c5, 1, 1, true, true), MT_ERR_SHAPE,
               "c of shape (1, 5) does not broadcast to the product's shape (2, 4)");
    mt_var ia = ph(g, "ia", MT_INT32, 2, SHAPE(2, 2));
    CHECK_FAIL(g, mt_graph_gemm(g, ia, ia, ia, 1, 0, false, false), MT_ERR_DTYPE,
               "gemm: needs float operands, got int32");
    MT_CHECK_OK(mt_graph_verify(g));
    mt_graph_free(g);
}

/* ---------------------------------------------------------------- shapes */

MT_TEST(reshape_flatten)
{
    mt_graph *g = new_graph();
    mt_var x = ph(g, "x", MT_FLOAT32, 2, SHAPE(3, 4));
    mt_var u = ph(g, "u", MT_FLOAT32, 2, SHAPE(-1, 4));
    mt_var im = ph(g, "im", MT_UINT8, 3, SHAPE(-1, 28, 28));
    mt_var r = mt_graph_reshape(g, x, 2, SHAPE(2, -1));
    CHECK_TYPE(g, r, "float32[2,6]");
    MT_CHECK_EQ_INT(mt_graph_attrs(g, r)->shape[1], 6); /* spec resolved */
    MT_CHECK_EQ_INT(mt_graph_reshape(g, x, 2, SHAPE(2, 6)), r);
    MT_CHECK_EQ_INT(mt_graph_reshape(g, x, 2, SHAPE(3, 4)), x);
    CHECK_TYPE(g, mt_graph_reshape(g, x, 0 + 3, SHAPE(-1, 1, 2)), "float32[6,1,2]");
    mt_var ru = mt_graph_reshape(g, u, 2, SHAPE(-1, 2));
    CHECK_TYPE(g, ru, "float32[?,2]");
    MT_CHECK(mt_graph_flags(g, ru) & MT_NODE_RTCHECK);
    mt_var fl = mt_graph_flatten(g, im, 2);
    CHECK_TYPE(g, fl, "uint8[?,784]");
    MT_CHECK(!(mt_graph_flags(g, fl) & MT_NODE_RTCHECK)); /* kept batch axis cancels */
    CHECK_TYPE(g, mt_graph_flatten(g, x, 1), "float32[12]");
    CHECK_TYPE(g, mt_graph_flatten(g, im, 1), "uint8[?]");
    CHECK_TYPE(g, mt_graph_reshape(g, mt_graph_scalar(g, MT_FLOAT32, 1), 2, SHAPE(1, 1)),
               "float32[1,1]");
    CHECK_FAIL(g, mt_graph_reshape(g, x, 2, SHAPE(5, -1)), MT_ERR_SHAPE,
               "reshape: cannot reshape (3, 4) into (5, -1)");
    CHECK_FAIL(g, mt_graph_reshape(g, x, 2, SHAPE(5, 2)), MT_ERR_SHAPE,
               "cannot reshape (3, 4) (12 elements) into (5, 2)");
    CHECK_FAIL(g, mt_graph_reshape(g, x, 2, SHAPE(-1, -1)), MT_ERR_INVALID,
               "reshape: can only specify one unknown dimension (-1) in (-1, -1)");
    CHECK_FAIL(g, mt_graph_reshape(g, x, 2, SHAPE(-3, 4)), MT_ERR_INVALID, "invalid size -3");
    CHECK_FAIL(g, mt_graph_flatten(g, x, 3), MT_ERR_INVALID, "flatten: ndim 3 is out of range");
    /* run-time evaluation of the unknown size */
    int64_t s_in[2] = {5, 4}, out[2];
    const int64_t *ins[1] = {s_in};
    MT_CHECK_OK(mt_graph_eval_shape(g, ru, ins, out));
    MT_CHECK_EQ_INT(out[0], 10);
    MT_CHECK_EQ_INT(out[1], 2);
    MT_CHECK_OK(mt_graph_verify(g));
    mt_graph_free(g);
}

MT_TEST(dimshuffle_family)
{
    mt_graph *g = new_graph();
    mt_var x = ph(g, "x", MT_FLOAT32, 3, SHAPE(2, 3, 4));
    mt_var y = ph(g, "y", MT_FLOAT32, 3, SHAPE(1, 3, -1));
    CHECK_TYPE(g, mt_graph_transpose(g, x, NULL), "float32[4,3,2]");
    CHECK_TYPE(g, mt_graph_transpose(g, x, AXES(0, -1, 1)), "float32[2,4,3]");
    MT_CHECK_EQ_INT(mt_graph_transpose(g, x, AXES(0, 1, 2)), x);
    CHECK_TYPE(g, mt_graph_dimshuffle(g, x, 4, AXES(2, -1, 0, 1)), "float32[4,1,2,3]");
    CHECK_TYPE(g, mt_graph_expand_dims(g, x, -1), "float32[2,3,4,1]");
    CHECK_TYPE(g, mt_graph_expand_dims(g, x, 0), "float32[1,2,3,4]");
    CHECK_TYPE(g, mt_graph_squeeze(g, y, 0, NULL), "float32[3,?]");
    mt_var sq = mt_graph_squeeze(g, y, 1, AXES(2));
    CHECK_TYPE(g, sq, "float32[1,3]");
    MT_CHECK(mt_graph_flags(g, sq) & MT_NODE_RTCHECK);
    MT_CHECK_EQ_INT(mt_graph_squeeze(g, x, 0, NULL), x);
    CHECK_FAIL(g, mt_graph_squeeze(g, x, 1, AXES(1)), MT_ERR_SHAPE,
               "squeeze: cannot squeeze axis 1 of size 3 in (2, 3, 4)");
    CHECK_FAIL(g, mt_graph_transpose(g, x, AXES(0, 0, 1)), MT_ERR_INVALID, "permutation");
    CHECK_FAIL(g, mt_graph_dimshuffle(g, x, 2, AXES(0, 2)), MT_ERR_SHAPE,
               "dimshuffle: cannot drop axis 1 of size 3 in (2, 3, 4)");
    CHECK_FAIL(g, mt_graph_dimshuffle(g, x, 3, AXES(0, 0, 1)), MT_ERR_INVALID, "not an unused axis");
    CHECK_FAIL(g, mt_graph_expand_dims(g, x, 5), MT_ERR_INVALID, "axis 5 is out of range");
    MT_CHECK_OK(mt_graph_verify(g));
    mt_graph_free(g);
}

MT_TEST(broadcast_to_like)
{
    mt_graph *g = new_graph();
    mt_var x = ph(g, "x", MT_FLOAT32, 2, SHAPE(3, 1));
    mt_var u = ph(g, "u", MT_FLOAT32, 2, SHAPE(-1, 4));
    mt_var r = ph(g, "r", MT_INT8, 3, SHAPE(2, -1, 4));
    CHECK_TYPE(g, mt_graph_broadcast_to(g, x, 3, SHAPE(2, 3, 4)), "float32[2,3,4]");
    MT_CHECK_EQ_INT(mt_graph_broadcast_to(g, x, 2, SHAPE(3, 1)), x);
    mt_var bu = mt_graph_broadcast_to(g, u, 2, SHAPE(5, 4));
    CHECK_TYPE(g, bu, "float32[5,4]");
    MT_CHECK(mt_graph_flags(g, bu) & MT_NODE_RTCHECK);
    CHECK_TYPE(g, mt_graph_broadcast_like(g, x, r), "float32[2,3,4]");
    CHECK_TYPE(g, mt_graph_broadcast_like(g, mt_graph_scalar(g, MT_FLOAT32, 0), r), "float32[2,?,4]");
    CHECK_FAIL(g, mt_graph_broadcast_to(g, x, 2, SHAPE(5, 4)), MT_ERR_SHAPE,
               "broadcast_to: cannot broadcast (3, 1) to (5, 4)");
    CHECK_FAIL(g, mt_graph_broadcast_to(g, x, 1, SHAPE(3)), MT_ERR_SHAPE, "fewer dimensions");
    CHECK_FAIL(g, mt_graph_broadcast_to(g, x, 2, SHAPE(3, -1)), MT_ERR_SHAPE, "must be static");
    mt_var r2 = ph(g, "r2", MT_INT8, 2, SHAPE(4, 4));
    CHECK_FAIL(g, mt_graph_broadcast_like(g, x, r2), MT_ERR_SHAPE,
               "broadcast_like: cannot broadcast (3, 1) to (4, 4)");
    MT_CHECK_OK(mt_graph_verify(g));
    mt_graph_free(g);
}

MT_TEST(concat_stack_split)
{
    mt_graph *g = new_graph();
    mt_var a = ph(g, "a", MT_FLOAT32, 2, SHAPE(2, 3));
    mt_var b = ph(g, "b", MT_FLOAT64, 2, SHAPE(4, 3));
    mt_var u = ph(g, "u", MT_FLOAT32, 2, SHAPE(-1, 3));
    mt_var c = ph(g, "c", MT_FLOAT32, 2, SHAPE(2, 5));
    mt_var ab[2] = {a, b}, au[2] = {a, u}, ac[2] = {a, c}, aa[3] = {a, a, a};
    CHECK_TYPE(g, mt_graph_concatenate(g, 2, ab, 0), "float64[6,3]");
    CHECK_TYPE(g, mt_graph_concatenate(g, 2, au, 0), "float32[?,3]");
    CHECK_TYPE(g, mt_graph_concatenate(g, 2, ac, -1), "float32[2,8]");
    CHECK_TYPE(g, mt_graph_stack(g, 3, aa, 0), "float32[3,2,3]");
    CHECK_TYPE(g, mt_graph_stack(g, 3, aa, -1), "float32[2,3,3]");
    MT_CHECK_EQ_INT(mt_graph_concatenate(g, 1, &a, 0), a);
    CHECK_FAIL(g, mt_graph_concatenate(g, 2, ac, 0), MT_ERR_SHAPE,
               "concatenate: shapes (2, 3) and (2, 5) differ outside axis 0");
    CHECK_FAIL(g, mt_graph_concatenate(g, 2, ab, 2), MT_ERR_INVALID, "axis 2 is out of range");
    CHECK_FAIL(g, mt_graph_concatenate(g, 0, ab, 0), MT_ERR_INVALID, "at least one");
    CHECK_FAIL(g, mt_graph_stack(g, 2, ab, 0), MT_ERR_SHAPE, "(2, 3) and (4, 3) differ");
    mt_var parts[4];
    mt_var x = ph(g, "x", MT_FLOAT32, 2, SHAPE(6, 4));
    MT_CHECK_OK(mt_graph_split(g, x, 0, 3, NULL, parts));
    for (int i = 0; i < 3; i++) CHECK_TYPE(g, parts[i], "float32[2,4]");
    MT_CHECK(parts[0] != parts[1] && parts[1] != parts[2]);
    MT_CHECK_OK(mt_graph_split(g, x, -1, 2, (const int64_t[]){1, -1}, parts));
    CHECK_TYPE(g, parts[0], "float32[6,1]");
    CHECK_TYPE(g, parts[1], "float32[6,3]");
    MT_CHECK_OK(mt_graph_split(g, u, 0, 2, (const int64_t[]){2, -1}, parts));
    CHECK_TYPE(g, parts[0], "float32[?,3]");
    mt_graph_clear_error(g);
    MT_CHECK_EQ_INT(mt_graph_split(g, x, 0, 4, NULL, parts), MT_ERR_SHAPE);
    MT_CHECK(strstr(mt_graph_last_error(g), "axis 0 of size 6 is not divisible into 4") != NULL);
    MT_CHECK_EQ_INT(parts[0], MT_VAR_NONE);
    mt_graph_clear_error(g);
    MT_CHECK_EQ_INT(mt_graph_split(g, x, 0, 2, (const int64_t[]){2, 3}, parts), MT_ERR_SHAPE);
    MT_CHECK(strstr(mt_graph_last_error(g), "add up to 5") != NULL);
    mt_graph_clear_error(g);
    MT_CHECK_OK(mt_graph_verify(g));
    mt_graph_free(g);
}

/* ---------------------------------------------------------------- slicing */

#define N MT_IDX_NONE
/* n, start, stop, step, len(range(n)[start:stop:step]), first element (Python) */
static const struct { int64_t n, start, stop, step, len, first; } py_slices[] = {
    {5, 1, 2, 2, 1, 1},
    {1, 9, N, -2, 1, 0},
    {5, 6, -3, -4, 1, 4},
    {6, 4, 0, -1, 4, 4},
    {1, -3, 1, 2, 1, 0},
    {1, -1, -3, -4, 1, 0},
    {6, -1, 1, -4, 1, 5},
    {1, 0, -7, -1, 1, 0},
    {5, 4, N, -4, 2, 4},
    {6, 1, N, -4, 1, 1},
    {1, -3, 6, 3, 1, 0},
    {6, -3, 2, -1, 1, 3},
    {5, -7, 4, 1, 4, 0},
    {1, -7, 4, 3, 1, 0},
    {1, -1, 9, 2, 1, 0},
    {6, N, -3, -1, 2, 5},
    {5, 9, 1, -4, 1, 4},
    {1, -1, -7, -4, 1, 0},
    {5, -3, 4, 1, 2, 2},
    {1, 0, N, 3, 1, 0},
    {6, 0, N, -1, 1, 0},
    {6, N, N, 3, 2, 0},
    {1, -3, 9, 1, 1, 0},
    {6, 0, 2, 1, 2, 0},
    {1, 2, N, -1, 1, 0},
    {5, -3, N, 1, 3, 2},
    {6, 2, 6, 1, 4, 2},
    {6, 2, 4, 1, 2, 2},
    {1, -1, N, 1, 1, 0},
    {6, 0, 9, 3, 2, 0},
    {6, 1, -7, -4, 1, 1},
    {5, 6, 0, -2, 2, 4},
    {1, -3, 1, 3, 1, 0},
    {5, -7, 9, 2, 3, 0},
    {1, -3, N, 3, 1, 0},
    {6, 0, -3, 1, 3, 0},
    {1, 4, N, -2, 1, 0},
    {5, 0, -1, 3, 2, 0},
    {5, 9, 2, -1, 2, 4},
    {1, 6, -7, -1, 1, 0},
    {6, -1, 4, -2, 1, 5},
    {1, 1, -7, -1, 1, 0},
    {6, 0, 4, 3, 2, 0},
    {5, 1, N, -1, 2, 1},
    {6, 0, -1, 1, 5, 0},
    {6, 6, 2, -4, 1, 5},
    {5, N, 1, 3, 1, 0},
    {1, 0, 2, 1, 1, 0},
    {6, 1, N, -2, 1, 1},
    {6, 4, N, -1, 5, 4},
    {5, N, 2, -1, 2, 4},
    {5, 4, 0, -1, 4, 4},
    {1, 0, -3, -1, 1, 0},
    {6, -1, 9, 3, 1, 5},
    {1, -1, N, 2, 1, 0},
    {6, 0, 1, 2, 1, 0},
    {1, -3, 9, 2, 1, 0},
    {6, 2, -1, 1, 3, 2},
    {5, -7, -1, 1, 4, 0},
    {6, -3, -7, -2, 2, 3},
    {6, 6, 2, -1, 3, 5},
    {6, -1, 0, -2, 3, 5},
    {6, N, N, -4, 2, 5},
    {5, 1, -3, 1, 1, 1},
    {6, N, 9, 3, 2, 0},
    {6, N, 2, -4, 1, 5},
    {5, 4, N, 2, 1, 4},
    {5, 0, 6, 1, 5, 0},
    {5, -3, 9, 3, 1, 2},
    {5, N, 1, 2, 1, 0},
    {5, -3, -3, -2, 0, -1},
    {1, 0, 0, -4, 0, -1},
    {5, 1, 6, -4, 0, -1},
    {6, 9, 9, -2, 0, -1},
    {6, 6, -1, -4, 0, -1},
    {5, 6, 1, 2, 0, -1},
    {6, 1, 0, 2, 0, -1},
    {5, 1, -7, 2, 0, -1},
    {1, -1, 9, -4, 0, -1},
    {1, 2, -3, 2, 0, -1},
    {6, 9, -1, 2, 0, -1},
    {6, -1, -1, 2, 0, -1},
    {1, 6, N, 2, 0, -1},
    {5, 6, 0, 2, 0, -1},
    {1, 4, 1, -4, 0, -1},
    {6, 6, N, 3, 0, -1},
    {6, -1, 0, 3, 0, -1},
    {1, -3, -7, 3, 0, -1},
    {1, 0, -1, 3, 0, -1},
    {5, 2, 4, -1, 0, -1},
};
#undef N

MT_TEST(slicing_python_semantics)
{
    mt_graph *g = new_graph();
    for (size_t k = 0; k < sizeof(py_slices) / sizeof(py_slices[0]); k++) {
        int64_t n = py_slices[k].n;
        mt_var x = ph(g, NULL, MT_FLOAT32, 2, (const int64_t[]){n, 2});
        mt_var xu = ph(g, NULL, MT_FLOAT32, 2, SHAPE(-1, 2));
        mt_idx it = mt_idx_slice(py_slices[k].start, py_slices[k].stop, py_slices[k].step);
        mt_var s = mt_graph_index(g, x, 1, &it);
        MT_CHECK(s != MT_VAR_NONE);
        const mt_type *t = mt_graph_type(g, s);
        if (t->shape[0] != py_slices[k].len)
            mt_test_fail(__FILE__, __LINE__, "n=%lld [%lld:%lld:%lld]: length %lld, Python %lld",
                         (long long)n, (long long)it.start, (long long)it.stop, (long long)it.step,
                         (long long)t->shape[0], (long long)py_slices[k].len);
        if (py_slices[k].len > 0 && s != x) /* canonical start is the first element */
            MT_CHECK_EQ_INT(mt_graph_attrs(g, s)->idx[0].start, py_slices[k].first);
        /* the same slice on an unknown size evaluates to the same length at run time */
        mt_var su = mt_graph_index(g, xu, 1, &it);
        MT_CHECK_EQ_INT(mt_graph_type(g, su)->shape[0], -1);
        int64_t sh[2] = {n, 2}, out[2];
        const int64_t *ins[1] = {sh};
        if (su != xu) {
            MT_CHECK_OK(mt_graph_eval_shape(g, su, ins, out));
            MT_CHECK_EQ_INT(out[0], py_slices[k].len);
        }
    }
    MT_CHECK_OK(mt_graph_verify(g));
    mt_graph_free(g);
}

MT_TEST(slicing_forms_and_errors)
{
    mt_graph *g = new_graph();
    mt_var x = ph(g, "x", MT_FLOAT32, 2, SHAPE(5, 6));
    mt_var u = ph(g, "u", MT_FLOAT32, 2, SHAPE(-1, 6));
    mt_idx a13[1] = {mt_idx_slice(1, 3, MT_IDX_NONE)};
    CHECK_TYPE(g, mt_graph_index(g, x, 1, a13), "float32[2,6]");
    MT_CHECK_EQ_INT(mt_graph_index(g, x, 1, a13),
                    mt_graph_index(g, x, 2, (mt_idx[]){mt_idx_slice(1, 3, 1), mt_idx_all()}));
    mt_idx rev[2] = {mt_idx_all(), mt_idx_slice(MT_IDX_NONE, MT_IDX_NONE, -1)};
    CHECK_TYPE(g, mt_graph_index(g, x, 2, rev), "float32[5,6]");
    MT_CHECK(mt_graph_index(g, x, 2, rev) != x);
    CHECK_TYPE(g, mt_graph_index(g, x, 1, (mt_idx[]){mt_idx_int(-1)}), "float32[6]");
    MT_CHECK_EQ_INT(mt_graph_attrs(g, mt_graph_index(g, x, 1, (mt_idx[]){mt_idx_int(-1)}))->idx[0].start, 4);
    CHECK_TYPE(g, mt_graph_index(g, x, 2, (mt_idx[]){mt_idx_slice(MT_IDX_NONE, MT_IDX_NONE, 2), mt_idx_int(1)}),
               "float32[3]");
    mt_var na = mt_graph_index(g, x, 3, (mt_idx[]){mt_idx_newaxis(), mt_idx_ellipsis(), mt_idx_int(0)});
    CHECK_TYPE(g, na, "float32[1,5]");
    MT_CHECK_EQ_INT(mt_graph_op(g, na), MT_OP_DIMSHUFFLE);
    CHECK_TYPE(g, mt_graph_index(g, x, 2, (mt_idx[]){mt_idx_ellipsis(), mt_idx_newaxis()}),
               "float32[5,6,1]");
    MT_CHECK_EQ_INT(mt_graph_index(g, x, 1, (mt_idx[]){mt_idx_slice(0, 5, 1)}), x);
    MT_CHECK_EQ_INT(mt_graph_index(g, x, 1, (mt_idx[]){mt_idx_ellipsis()}), x);
    /* x[0:6:2] and x[0:5:2] select the same rows of 5: one node */
    MT_CHECK_EQ_INT(mt_graph_slice_axis(g, x, 0, 0, 6, 2), mt_graph_slice_axis(g, x, 0, 0, 5, 2));
    mt_var ui = mt_graph_index(g, u, 1, (mt_idx[]){mt_idx_int(2)});
    CHECK_TYPE(g, ui, "float32[6]");
    MT_CHECK(mt_graph_flags(g, ui) & MT_NODE_RTCHECK);
    int64_t sh[2] = {2, 6}, out[1];
    const int64_t *ins[1] = {sh};
    MT_CHECK_EQ_INT(mt_graph_eval_shape(g, ui, ins, out), MT_ERR_RANGE);
    MT_CHECK(strstr(mt_last_error(), "index 2 is out of bounds for axis 0 with size 2") != NULL);
    sh[0] = 3;
    MT_CHECK_OK(mt_graph_eval_shape(g, ui, ins, out));
    CHECK_FAIL(g, mt_graph_index(g, x, 1, (mt_idx[]){mt_idx_int(5)}), MT_ERR_RANGE,
               "index 5 is out of bounds for axis 0 with size 5");
    CHECK_FAIL(g, mt_graph_index(g, x, 2, (mt_idx[]){mt_idx_all(), mt_idx_int(-7)}), MT_ERR_RANGE,
               "index -7 is out of bounds for axis 1 with size 6");
    CHECK_FAIL(g, mt_graph_slice_axis(g, x, 0, 0, 3, 0), MT_ERR_INVALID, "slice step cannot be zero");
    CHECK_FAIL(g, mt_graph_index(g, x, 3, (mt_idx[]){mt_idx_int(0), mt_idx_int(0), mt_idx_int(0)}),
               MT_ERR_INVALID, "too many indices (3) for 2 dimensions");
    CHECK_FAIL(g, mt_graph_index(g, x, 2, (mt_idx[]){mt_idx_ellipsis(), mt_idx_ellipsis()}),
               MT_ERR_INVALID, "single ellipsis");
    CHECK_FAIL(g, mt_graph_slice_axis(g, x, 2, 0, 1, 1), MT_ERR_INVALID, "axis 2 is out of range");
    MT_CHECK_OK(mt_graph_verify(g));
    mt_graph_free(g);
}

MT_TEST(subtensor)
{
    mt_graph *g = new_graph();
    mt_var x = ph(g, "x", MT_FLOAT32, 2, SHAPE(5, 6));
    mt_var y = ph(g, "y", MT_FLOAT64, 1, SHAPE(6));
    mt_var r = ph(g, "r", MT_FLOAT32, 2, SHAPE(2, 1));
    mt_idx rows[1] = {mt_idx_slice(1, 3, 1)};
    mt_var s = mt_graph_set_subtensor(g, x, 1, rows, y);
    CHECK_TYPE(g, s, "float32[5,6]");
    CHECK_TYPE(g, mt_graph_input(g, s, 1), "float32[1,6]"); /* cast, broadcast axis added */
    CHECK_TYPE(g, mt_graph_inc_subtensor(g, x, 1, rows, r), "float32[5,6]");
    CHECK_TYPE(g, mt_graph_inc_subtensor(g, x, 2, (mt_idx[]){mt_idx_int(0), mt_idx_int(1)},
                                         mt_graph_literal_float(g, 1)), "float32[5,6]");
    CHECK_FAIL(g, mt_graph_set_subtensor(g, x, 1, rows, ph(g, "y3", MT_FLOAT32, 1, SHAPE(3))),
               MT_ERR_SHAPE, "set_subtensor: value of shape (1, 3) does not fit the indexed shape (2, 6)");
    CHECK_FAIL(g, mt_graph_set_subtensor(g, x, 1, (mt_idx[]){mt_idx_newaxis()}, y), MT_ERR_INVALID,
               "newaxis is not allowed");
    CHECK_FAIL(g, mt_graph_inc_subtensor(g, x, 1, (mt_idx[]){mt_idx_int(9)}, y), MT_ERR_RANGE,
               "out of bounds");
    MT_CHECK_OK(mt_graph_verify(g));
    mt_graph_free(g);
}

MT_TEST(gather_scatter_onehot)
{
    mt_graph *g = new_graph();
    mt_var x = ph(g, "x", MT_FLOAT32, 2, SHAPE(5, 6));
    mt_var idx = ph(g, "idx", MT_INT64, 2, SHAPE(2, 3));
    mt_var lab = ph(g, "lab", MT_UINT8, 1, SHAPE(-1));
    mt_var fi = ph(g, "fi", MT_FLOAT32, 1, SHAPE(2));
    CHECK_TYPE(g, mt_graph_gather(g, x, idx, 1), "float32[5,2,3]");
    CHECK_TYPE(g, mt_graph_gather(g, x, idx, 0), "float32[2,3,6]");
    CHECK_TYPE(g, mt_graph_gather(g, x, mt_graph_literal_int(g, 3), 0), "float32[6]");
    mt_var upd = ph(g, "upd", MT_FLOAT64, 3, SHAPE(5, 2, 3));
    mt_var sa = mt_graph_scatter_add(g, x, idx, upd, 1);
    CHECK_TYPE(g, sa, "float32[5,6]");
    CHECK_TYPE(g, mt_graph_input(g, sa, 2), "float32[5,2,3]");
    CHECK_TYPE(g, mt_graph_scatter_add(g, x, idx, mt_graph_literal_float(g, 1), 1), "float32[5,6]");
    CHECK_TYPE(g, mt_graph_one_hot(g, lab, 10, MT_FLOAT32), "float32[?,10]");
    CHECK_FAIL(g, mt_graph_gather(g, x, fi, 0), MT_ERR_DTYPE, "indices must be integers, got float32");
    CHECK_FAIL(g, mt_graph_gather(g, x, idx, 2), MT_ERR_INVALID, "axis 2 is out of range");
    CHECK_FAIL(g, mt_graph_scatter_add(g, x, idx, upd, 0), MT_ERR_SHAPE,
               "scatter_add: values of shape (5, 2, 3) do not fit the indexed shape (2, 3, 6)");
    CHECK_FAIL(g, mt_graph_one_hot(g, fi, 3, MT_FLOAT32), MT_ERR_DTYPE, "one_hot: indices must be integers");
    CHECK_FAIL(g, mt_graph_one_hot(g, lab, -1, MT_FLOAT32), MT_ERR_INVALID, "depth -1 is negative");
    MT_CHECK_OK(mt_graph_verify(g));
    mt_graph_free(g);
}

/* ---------------------------------------------------------------- generators, identities */

MT_TEST(generators)
{
    mt_graph *g = new_graph();
    CHECK_TYPE(g, mt_graph_arange(g, MT_INT64, 0, 10, 3), "int64[4]");
    CHECK_TYPE(g, mt_graph_arange(g, MT_FLOAT32, 5, 0, -1), "float32[5]");
    CHECK_TYPE(g, mt_graph_arange(g, MT_FLOAT64, 0, 1, 0.1), "float64[10]");
    CHECK_TYPE(g, mt_graph_arange(g, MT_INT32, 3, 1, 1), "int32[0]");
    CHECK_FAIL(g, mt_graph_arange(g, MT_INT32, 0, 3, 0), MT_ERR_INVALID, "step is zero");
    mt_var z = mt_graph_zeros(g, MT_FLOAT32, 2, SHAPE(2, 3));
    CHECK_TYPE(g, z, "float32[2,3]");
    MT_CHECK_EQ_INT(mt_graph_op(g, z), MT_OP_BROADCAST_TO);
    mt_scalar s;
    MT_CHECK(mt_graph_scalar_value(g, z, &s));
    MT_CHECK_CLOSE(s.v.f, 0.0, 0, 0);
    MT_CHECK(mt_graph_scalar_value(g, mt_graph_ones(g, MT_INT8, 1, SHAPE(4)), &s));
    MT_CHECK_EQ_INT(s.v.i, 1);
    MT_CHECK(mt_graph_scalar_value(g, mt_graph_full(g, MT_FLOAT64, 0, NULL, 2.5), &s));
    MT_CHECK_CLOSE(s.v.f, 2.5, 0, 0);
    mt_var u = ph(g, "u", MT_FLOAT32, 2, SHAPE(-1, 3));
    mt_var zl = mt_graph_zeros_like(g, u);
    CHECK_TYPE(g, zl, "float32[?,3]");
    MT_CHECK_EQ_INT(mt_graph_op(g, zl), MT_OP_BROADCAST_LIKE);
    CHECK_TYPE(g, mt_graph_full_like(g, u, MT_INT32, 7), "int32[?,3]");
    MT_CHECK_EQ_INT(mt_graph_ones_like(g, z), mt_graph_ones(g, MT_FLOAT32, 2, SHAPE(2, 3)));
    CHECK_FAIL(g, mt_graph_full(g, MT_FLOAT32, 1, SHAPE(-1), 0), MT_ERR_SHAPE, "must be static");
    mt_var r1 = mt_graph_random_uniform(g, MT_FLOAT32, 1, SHAPE(4), 0, 1);
    mt_var r2 = mt_graph_random_uniform(g, MT_FLOAT32, 1, SHAPE(4), 0, 1);
    CHECK_TYPE(g, r1, "float32[4]");
    MT_CHECK(r1 != r2);
    MT_CHECK(mt_graph_attrs(g, r1)->stream != mt_graph_attrs(g, r2)->stream);
    CHECK_TYPE(g, mt_graph_random_normal(g, MT_FLOAT64, 2, SHAPE(2, 2), 0, 1), "float64[2,2]");
    CHECK_TYPE(g, mt_graph_random_binomial(g, MT_UINT8, 1, SHAPE(3), 1, 0.5), "uint8[3]");
    mt_var rl = mt_graph_random(g, MT_RANDOM_BINOMIAL, MT_FLOAT32, 0, NULL, u, 1, 0.9);
    CHECK_TYPE(g, rl, "float32[?,3]");
    CHECK_FAIL(g, mt_graph_random_uniform(g, MT_INT32, 1, SHAPE(4), 0, 1), MT_ERR_DTYPE,
               "uniform draws need a float dtype, got int32");
    CHECK_FAIL(g, mt_graph_random_binomial(g, MT_FLOAT32, 1, SHAPE(4), 1, 1.5), MT_ERR_INVALID,
               "p in [0, 1]");
    CHECK_FAIL(g, mt_graph_random_normal(g, MT_FLOAT32, 1, SHAPE(4), 0, -1), MT_ERR_INVALID,
               "invalid normal parameters");
    CHECK_FAIL(g, mt_graph_random_normal(g, MT_FLOAT32, 1, SHAPE(-1), 0, 1), MT_ERR_SHAPE,
               "shape reference");
    MT_CHECK_OK(mt_graph_verify(g));
    mt_graph_free(g);
}

MT_TEST(identities_and_shape_assert)
{
    mt_graph *g = new_graph();
    mt_var x = ph(g, "x", MT_FLOAT32, 2, SHAPE(-1, 4));
    mt_var sg = mt_graph_stop_gradient(g, x);
    CHECK_TYPE(g, sg, "float32[?,4]");
    MT_CHECK_EQ_INT(mt_graph_op(g, sg), MT_OP_STOP_GRADIENT);
    mt_var gc = mt_graph_grad_clip(g, x, -1, 1);
    CHECK_TYPE(g, gc, "float32[?,4]");
    MT_CHECK_CLOSE(mt_graph_attrs(g, gc)->p1, 1.0, 0, 0);
    CHECK_FAIL(g, mt_graph_grad_clip(g, x, 1, -1), MT_ERR_INVALID, "bounds [1, -1] are empty");
    mt_var sa = mt_graph_shape_assert(g, x, 2, SHAPE(3, -1));
    CHECK_TYPE(g, sa, "float32[3,4]");
    MT_CHECK(mt_graph_flags(g, sa) & MT_NODE_RTCHECK);
    MT_CHECK_EQ_INT(mt_graph_shape_assert(g, x, 2, SHAPE(-1, 4)), x);
    CHECK_FAIL(g, mt_graph_shape_assert(g, x, 2, SHAPE(3, 5)), MT_ERR_SHAPE,
               "shape_assert: shape (?, 4) does not match the asserted (3, 5)");
    CHECK_FAIL(g, mt_graph_shape_assert(g, x, 1, SHAPE(3)), MT_ERR_SHAPE, "does not match");
    int64_t sh[2] = {2, 4}, out[2];
    const int64_t *ins[1] = {sh};
    MT_CHECK_EQ_INT(mt_graph_eval_shape(g, sa, ins, out), MT_ERR_SHAPE);
    MT_CHECK(strstr(mt_last_error(), "shape (2, 4) does not match the asserted (3, ?)") != NULL);
    MT_CHECK(strstr(mt_last_error(), "shape_assert{3,?}(v1)") != NULL);
    MT_CHECK_OK(mt_graph_verify(g));
    mt_graph_free(g);
}
