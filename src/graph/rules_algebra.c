/* Algebraic rewrites: identities (x*1, x+0, x/1, -(-x), x*-1, 0-x), powers with constant
 * exponents (x**0, x**1, x**n as a chain of multiplications with shared squares, x**0.5 ->
 * sqrt with a guard, x**-1 -> reciprocal), reciprocal forms (x*recip(y) -> x/y, x/recip(y) ->
 * x*y, recip(recip(x)) -> x, 1/x -> recip(x)) and the identities that only hold for finite
 * operands (x-x -> 0, x*0 -> 0, x/x -> 1), which fire only where the operand is known finite.
 *
 * Every rule here checks that its replacement has the node's type (an operand that the
 * constant broadcast to a larger shape does not qualify: x*ones((3,1)) is not x). Soundness
 * notes per rule are in docs/rewrites.md. */
#include <math.h>

#include "rewrite_impl.h"

/* The non-constant side of a binary node whose other operand is the uniform constant `c`:
 * returns that operand (MT_VAR_NONE if neither side is such a constant). *left tells whether
 * the constant was the left operand. */
static mt_var other_of_const(const mt_graph *g, mt_var v, double c, bool *left)
{
    mt_var a = mt__rw_in(g, v, 0), b = mt__rw_in(g, v, 1);
    if (mt__rw_const_eq(g, b, c)) {
        *left = false;
        return a;
    }
    if (mt__rw_const_eq(g, a, c)) {
        *left = true;
        return b;
    }
    return MT_VAR_NONE;
}

/* ---------------------------------------------------------------- identities */

static mt_var rule_mul_one(mt__rw_ctx *cx, mt_var v)
{
    bool left;
    mt_var x = other_of_const(cx->g, v, 1.0, &left);
    return x && mt__rw_fits(cx->g, x, v) ? x : MT_VAR_NONE;
}

static mt_var rule_add_zero(mt__rw_ctx *cx, mt_var v)
{
    bool left;
    mt_var x = other_of_const(cx->g, v, 0.0, &left);
    if (!x || (mt__rw_is(cx->g, v, MT_SOP_SUB) && left)) return MT_VAR_NONE; /* 0 - x */
    return mt__rw_fits(cx->g, x, v) ? x : MT_VAR_NONE;
}

static mt_var rule_sub_from_zero(mt__rw_ctx *cx, mt_var v)
{
    mt_var x = mt__rw_in(cx->g, v, 1);
    if (!mt__rw_const_eq(cx->g, mt__rw_in(cx->g, v, 0), 0.0) || !mt__rw_fits(cx->g, x, v))
        return MT_VAR_NONE;
    mt__rw_begin(cx, v);
    return mt__rw_ew1(cx, MT_SOP_NEG, x);
}

static mt_var rule_div_one(mt__rw_ctx *cx, mt_var v)
{
    mt_var x = mt__rw_in(cx->g, v, 0);
    if (!mt__rw_const_eq(cx->g, mt__rw_in(cx->g, v, 1), 1.0) || !mt__rw_fits(cx->g, x, v))
        return MT_VAR_NONE;
    return x;
}

static mt_var rule_neg_neg(mt__rw_ctx *cx, mt_var v)
{
    mt_var x = mt__rw_in(cx->g, v, 0);
    return mt__rw_is(cx->g, x, MT_SOP_NEG) ? mt__rw_in(cx->g, x, 0) : MT_VAR_NONE;
}

static mt_var rule_mul_neg_one(mt__rw_ctx *cx, mt_var v)
{
    bool left;
    mt_var x = other_of_const(cx->g, v, -1.0, &left);
    if (!x || !mt__rw_fits(cx->g, x, v)) return MT_VAR_NONE;
    mt__rw_begin(cx, v);
    return mt__rw_ew1(cx, MT_SOP_NEG, x);
}

/* ---------------------------------------------------------------- powers */

/* The exponent of x**c when c is a uniform constant and x has the node's type. */
static bool pow_parts(const mt_graph *g, mt_var v, mt_var *x, double *c)
{
    *x = mt__rw_in(g, v, 0);
    return mt__rw_const_value(g, mt__rw_in(g, v, 1), c) && mt__rw_fits(g, *x, v);
}

static mt_var rule_pow_zero(mt__rw_ctx *cx, mt_var v)
{
    mt_var x;
    double c;
    if (!pow_parts(cx->g, v, &x, &c) || c != 0.0) return MT_VAR_NONE;
    mt__rw_begin(cx, v);
    return mt__rw_full(cx, v, x, 1.0); /* pow(x, 0) = 1 for every x, NaN included */
}

static mt_var rule_pow_one(mt__rw_ctx *cx, mt_var v)
{
    mt_var x;
    double c;
    return pow_parts(cx->g, v, &x, &c) && c == 1.0 ? x : MT_VAR_NONE;
}

/* x**n for 2 <= n <= 16 by binary exponentiation from the top bit: x**10 = ((x*x)^2 * x)^2.
 * Hash-consing shares the squares with any other power of x in the graph. */
static mt_var rule_pow_int(mt__rw_ctx *cx, mt_var v)
{
    mt_var x;
    double c;
    if (!pow_parts(cx->g, v, &x, &c) || c != floor(c) || c < 2 || c > 16) return MT_VAR_NONE;
    int n = (int)c, top = 0;
    while ((n >> (top + 1)) != 0) top++;
    mt__rw_begin(cx, v);
    mt_var r = x;
    for (int bit = top - 1; bit >= 0 && r; bit--) {
        r = mt__rw_ew2(cx, MT_SOP_MUL, r, r);
        if (r && ((n >> bit) & 1)) r = mt__rw_ew2(cx, MT_SOP_MUL, r, x);
    }
    return r;
}

/* x**0.5 -> where(x == -inf, inf, sqrt(x)): pow(-inf, 0.5) is +inf but sqrt(-inf) is NaN.
 * (pow(-0, 0.5) = +0 and sqrt(-0) = -0 compare equal.) */
static mt_var rule_pow_half(mt__rw_ctx *cx, mt_var v)
{
    mt_var x;
    double c;
    if (!mt_dtype_is_float(mt_graph_type(cx->g, v)->dtype) || !pow_parts(cx->g, v, &x, &c) ||
        c != 0.5)
        return MT_VAR_NONE;
    mt__rw_begin(cx, v);
    mt_var is_minf = mt__rw_ew2(cx, MT_SOP_EQ, x, mt__rw_scalar_like(cx, x, -INFINITY));
    mt_var in[3] = {is_minf, mt__rw_scalar_like(cx, x, INFINITY), mt__rw_ew1(cx, MT_SOP_SQRT, x)};
    mt_op_attrs a = {0};
    a.sop = MT_SOP_WHERE;
    return mt_graph_make(cx->g, MT_OP_ELEMWISE, &a, 3, in);
}

static mt_var rule_pow_neg_one(mt__rw_ctx *cx, mt_var v)
{
    mt_var x;
    double c;
    if (!mt_dtype_is_float(mt_graph_type(cx->g, v)->dtype) || !pow_parts(cx->g, v, &x, &c) ||
        c != -1.0)
        return MT_VAR_NONE;
    mt__rw_begin(cx, v);
    return mt__rw_ew1(cx, MT_SOP_RECIP, x);
}

/* ---------------------------------------------------------------- reciprocal forms */

static mt_var rule_mul_recip(mt__rw_ctx *cx, mt_var v)
{
    mt_graph *g = cx->g;
    mt_var a = mt__rw_in(g, v, 0), b = mt__rw_in(g, v, 1);
    if (mt__rw_is(g, a, MT_SOP_RECIP) && !mt__rw_is(g, b, MT_SOP_RECIP)) {
        mt_var t = a;
        a = b;
        b = t;
    }
    if (!mt__rw_is(g, b, MT_SOP_RECIP)) return MT_VAR_NONE;
    mt__rw_begin(cx, v);
    return mt__rw_ew2(cx, MT_SOP_DIV, a, mt__rw_in(g, b, 0));
}

static mt_var rule_div_recip(mt__rw_ctx *cx, mt_var v)
{
    mt_graph *g = cx->g;
    mt_var b = mt__rw_in(g, v, 1);
    if (!mt__rw_is(g, b, MT_SOP_RECIP) || !mt_dtype_is_float(mt_graph_type(g, v)->dtype))
        return MT_VAR_NONE;
    mt__rw_begin(cx, v);
    return mt__rw_ew2(cx, MT_SOP_MUL, mt__rw_in(g, v, 0), mt__rw_in(g, b, 0));
}

static mt_var rule_recip_recip(mt__rw_ctx *cx, mt_var v)
{
    mt_var x = mt__rw_in(cx->g, v, 0);
    return mt__rw_is(cx->g, x, MT_SOP_RECIP) ? mt__rw_in(cx->g, x, 0) : MT_VAR_NONE;
}

static mt_var rule_div_to_recip(mt__rw_ctx *cx, mt_var v)
{
    mt_graph *g = cx->g;
    mt_var x = mt__rw_in(g, v, 1);
    if (!mt_dtype_is_float(mt_graph_type(g, v)->dtype) ||
        !mt__rw_const_eq(g, mt__rw_in(g, v, 0), 1.0) || !mt__rw_fits(g, x, v))
        return MT_VAR_NONE;
    mt__rw_begin(cx, v);
    return mt__rw_ew1(cx, MT_SOP_RECIP, x);
}

/* ---------------------------------------------------------------- finite-only identities */

static mt_var rule_sub_self(mt__rw_ctx *cx, mt_var v)
{
    mt_graph *g = cx->g;
    mt_var x = mt__rw_in(g, v, 0);
    if (x != mt__rw_in(g, v, 1) || !mt__rw_known_finite(g, x)) return MT_VAR_NONE;
    mt__rw_begin(cx, v);
    return mt__rw_full(cx, v, x, 0.0); /* inf - inf would be NaN */
}

static mt_var rule_mul_zero(mt__rw_ctx *cx, mt_var v)
{
    mt_graph *g = cx->g;
    bool left;
    mt_var x = other_of_const(g, v, 0.0, &left);
    if (!x || !mt__rw_known_finite(g, x)) return MT_VAR_NONE; /* inf * 0 would be NaN */
    mt__rw_begin(cx, v);
    mt_var ref = mt__rw_same_type(g, x, v) ? x : mt__rw_in(g, v, left ? 0 : 1);
    return mt__rw_full(cx, v, ref, 0.0);
}

static mt_var rule_div_self(mt__rw_ctx *cx, mt_var v)
{
    mt_graph *g = cx->g;
    mt_var x = mt__rw_in(g, v, 0);
    if (x != mt__rw_in(g, v, 1) || !mt_dtype_is_float(mt_graph_type(g, v)->dtype) ||
        !mt__rw_known_finite_nonzero(g, x))
        return MT_VAR_NONE;
    mt__rw_begin(cx, v);
    return mt__rw_full(cx, v, x, 1.0); /* 0/0 and inf/inf would be NaN */
}

/* ---------------------------------------------------------------- table */

#define ALL (MT__PH(CANONICALIZE) | MT__PH(STABILIZE) | MT__PH(SPECIALIZE))
#define CS (MT__PH(CANONICALIZE) | MT__PH(SPECIALIZE))
#define EW MT_OP_ELEMWISE

const mt__rule mt__rules_algebra[] = {
    {{"mul_one", "x * 1 -> x", ALL, MT_REWRITE_EXACT}, EW, MT_SOP_MUL, rule_mul_one},
    {{"add_zero", "x + 0, 0 + x -> x", ALL, MT_REWRITE_EXACT}, EW, MT_SOP_ADD,
     rule_add_zero},
    {{"sub_zero", "x - 0 -> x", ALL, MT_REWRITE_EXACT}, EW, MT_SOP_SUB, rule_add_zero},
    {{"sub_from_zero", "0 - x -> -x", CS, MT_REWRITE_EXACT}, EW, MT_SOP_SUB, rule_sub_from_zero},
    {{"div_one", "x / 1 -> x", ALL, MT_REWRITE_EXACT}, EW, MT_SOP_DIV, rule_div_one},
    {{"neg_neg", "-(-x) -> x", ALL, MT_REWRITE_EXACT}, EW, MT_SOP_NEG, rule_neg_neg},
    {{"mul_neg_one", "x * -1 -> -x", CS, MT_REWRITE_EXACT}, EW, MT_SOP_MUL, rule_mul_neg_one},
    {{"pow_zero", "x ** 0 -> 1 (also for NaN, as NumPy)", CS, MT_REWRITE_EXACT}, EW, MT_SOP_POW,
     rule_pow_zero},
    {{"pow_one", "x ** 1 -> x", CS, MT_REWRITE_EXACT}, EW, MT_SOP_POW, rule_pow_one},
    {{"pow_int", "x ** n (2 <= n <= 16) -> multiplications with shared squares",
      MT__PH(SPECIALIZE), MT_REWRITE_EXACT}, EW, MT_SOP_POW, rule_pow_int},
    {{"pow_half", "x ** 0.5 -> where(x == -inf, inf, sqrt(x))", MT__PH(SPECIALIZE),
      MT_REWRITE_GUARDED}, EW, MT_SOP_POW, rule_pow_half},
    {{"pow_neg_one", "x ** -1 -> reciprocal(x)", MT__PH(SPECIALIZE), MT_REWRITE_EXACT}, EW,
     MT_SOP_POW, rule_pow_neg_one},
    {{"mul_recip", "x * reciprocal(y) -> x / y", CS, MT_REWRITE_EXACT}, EW, MT_SOP_MUL,
     rule_mul_recip},
    {{"div_recip", "x / reciprocal(y) -> x * y", CS, MT_REWRITE_EXACT}, EW, MT_SOP_DIV,
     rule_div_recip},
    {{"recip_recip", "reciprocal(reciprocal(x)) -> x", CS, MT_REWRITE_EXACT}, EW, MT_SOP_RECIP,
     rule_recip_recip},
    {{"div_to_recip", "1 / x -> reciprocal(x)", MT__PH(SPECIALIZE), MT_REWRITE_EXACT}, EW,
     MT_SOP_DIV, rule_div_to_recip},
    {{"sub_self", "x - x -> 0 where x is known finite", CS, MT_REWRITE_FINITE}, EW, MT_SOP_SUB,
     rule_sub_self},
    {{"mul_zero", "x * 0 -> 0 where x is known finite", CS, MT_REWRITE_FINITE}, EW, MT_SOP_MUL,
     rule_mul_zero},
    {{"div_self", "x / x -> 1 where x is known finite and nonzero", CS, MT_REWRITE_FINITE}, EW,
     MT_SOP_DIV, rule_div_self},
};
const int32_t mt__rules_algebra_count =
    (int32_t)(sizeof(mt__rules_algebra) / sizeof(mt__rules_algebra[0]));
