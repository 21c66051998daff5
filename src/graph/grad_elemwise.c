/* Gradient rules of the elementwise scalar ops. Each rule is written with graph builders only,
 * using ops that have gradient rules themselves, so second derivatives work. Where the
 * textbook formula loses accuracy at large |x| the rule uses a stable form instead
 * (sigmoid' = sigmoid(x) * sigmoid(-x) rather than y * (1 - y), logaddexp' = sigmoid(a - b),
 * log1mexp' = -1 / expm1(-x), expm1' = exp(x)). Forward outputs are reused where that is
 * exact (exp' = exp(x) is the node itself). The contributions have the broadcast shape of the
 * node; the engine sums them to each operand's shape. */
#include <math.h>

#include "grad_impl.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif
#ifndef M_LN2
#define M_LN2 0.69314718055994530942
#endif
#ifndef M_LN10
#define M_LN10 2.30258509299404568402
#endif

bool mt__grad_sop_is_flat(mt_sop sop)
{
    switch (sop) {
    case MT_SOP_SIGN:
    case MT_SOP_FLOOR:
    case MT_SOP_CEIL:
    case MT_SOP_ROUND:
    case MT_SOP_TRUNC:
    case MT_SOP_FLOORDIV:
        return true;
    default:
        return false;
    }
}

static mt_var lit(mt_graph *g, double v)
{
    return mt_graph_literal_float(g, v);
}

/* where(cond, x, 0) */
static mt_var keep_where(mt_graph *g, mt_var cond, mt_var x)
{
    return mt_graph_where(g, cond, x, lit(g, 0.0));
}

/* where(cond, 0, x) */
static mt_var zero_where(mt_graph *g, mt_var cond, mt_var x)
{
    return mt_graph_where(g, cond, lit(g, 0.0), x);
}

/* d/dx of x ** y. With a constant exponent e the rule specialises (e = 0 -> zero, e = 1 -> gz,
 * else e * x ** (e - 1)); otherwise y * x ** (y - 1), defined as 0 where y == 0. */
static mt_var pow_dx(mt_graph *g, mt_var gz, mt_var x, mt_var y)
{
    mt_scalar s;
    if (mt_graph_scalar_value(g, y, &s)) {
        double e = mt_scalar_as_f64(&s);
        if (e == 0.0) return MT__GRAD_ZERO;
        if (e == 1.0) return gz;
        if (e == 2.0) return mt_graph_mul(g, gz, mt__grad_scale(g, x, 2.0));
        return mt_graph_mul(g, gz, mt__grad_scale(g, mt_graph_pow(g, x, lit(g, e - 1.0)), e));
    }
    mt_var t = mt_graph_mul(g, gz, mt_graph_mul(g, y, mt_graph_pow(g, x, mt_graph_sub(g, y,
                                                                                      lit(g, 1.0)))));
    return zero_where(g, mt_graph_eq(g, y, lit(g, 0.0)), t);
}

/* d/dy of x ** y = log(x) * x ** y, defined as 0 where x == 0 (Theano). */
static mt_var pow_dy(mt_graph *g, mt_var gz, mt_var x, mt_var z)
{
    mt_var t = mt_graph_mul(g, gz, mt_graph_mul(g, z, mt_graph_log(g, x)));
    return zero_where(g, mt_graph_eq(g, x, lit(g, 0.0)), t);
}

/* Unary rules: the contribution for operand a of y = op(a). */
static mt_var unary(mt_graph *g, mt_sop sop, mt_var gz, mt_var a, mt_var y, bool *known)
{
    *known = true;
    switch (sop) {
    case MT_SOP_CAST: return gz; /* float to float: the engine casts back */
    case MT_SOP_NEG: return mt_graph_neg(g, gz);
    case MT_SOP_ABS: return mt_graph_mul(g, gz, mt_graph_sign(g, a)); /* abs'(0) = 0 */
    case MT_SOP_RECIP: return mt_graph_neg(g, mt_graph_mul(g, gz, mt_graph_square(g, y)));
    case MT_SOP_SQUARE: return mt_graph_mul(g, gz, mt__grad_scale(g, a, 2.0));
    case MT_SOP_SQRT: return mt_graph_div(g, mt__grad_scale(g, gz, 0.5), y);
    case MT_SOP_RSQRT:
        return mt_graph_mul(g, mt__grad_scale(g, gz, -0.5),
                            mt_graph_mul(g, y, mt_graph_square(g, y)));
    case MT_SOP_EXP: return mt_graph_mul(g, gz, y);
    case MT_SOP_EXP2: return mt_graph_mul(g, gz, mt__grad_scale(g, y, M_LN2));
    case MT_SOP_EXPM1: return mt_graph_mul(g, gz, mt_graph_exp(g, a));
    case MT_SOP_LOG: return mt_graph_div(g, gz, a);
    case MT_SOP_LOG2: return mt_graph_div(g, gz, mt__grad_scale(g, a, M_LN2));
    case MT_SOP_LOG10: return mt_graph_div(g, gz, mt__grad_scale(g, a, M_LN10));
    case MT_SOP_LOG1P: return mt_graph_div(g, gz, mt_graph_add(g, a, lit(g, 1.0)));
    case MT_SOP_LOG1MEXP:
        return mt_graph_neg(g, mt_graph_div(g, gz, mt_graph_expm1(g, mt_graph_neg(g, a))));
    case MT_SOP_SIN: return mt_graph_mul(g, gz, mt_graph_cos(g, a));
    case MT_SOP_COS: return mt_graph_neg(g, mt_graph_mul(g, gz, mt_graph_sin(g, a)));
    case MT_SOP_TAN:
        return mt_graph_mul(g, gz, mt_graph_add(g, lit(g, 1.0), mt_graph_square(g, y)));
    case MT_SOP_ASIN:
    case MT_SOP_ACOS: {
        mt_var d = mt_graph_mul(g, gz, mt_graph_rsqrt(g, mt_graph_sub(g, lit(g, 1.0),
                                                                      mt_graph_square(g, a))));
        return sop == MT_SOP_ASIN ? d : mt_graph_neg(g, d);
    }
    case MT_SOP_ATAN:
        return mt_graph_div(g, gz, mt_graph_add(g, lit(g, 1.0), mt_graph_square(g, a)));
    case MT_SOP_SINH: return mt_graph_mul(g, gz, mt_graph_cosh(g, a));
    case MT_SOP_COSH: return mt_graph_mul(g, gz, mt_graph_sinh(g, a));
    case MT_SOP_TANH:
        return mt_graph_mul(g, gz, mt_graph_sub(g, lit(g, 1.0), mt_graph_square(g, y)));
    case MT_SOP_ERF:
    case MT_SOP_ERFC: {
        double k = (sop == MT_SOP_ERF ? 2.0 : -2.0) / sqrt(M_PI);
        return mt_graph_mul(g, gz, mt__grad_scale(g, mt_graph_exp(g, mt_graph_neg(g,
                                                  mt_graph_square(g, a))), k));
    }
    case MT_SOP_SIGMOID:
        return mt_graph_mul(g, gz, mt_graph_mul(g, y, mt_graph_sigmoid(g, mt_graph_neg(g, a))));
    case MT_SOP_SOFTPLUS: return mt_graph_mul(g, gz, mt_graph_sigmoid(g, a));
    case MT_SOP_RELU: return keep_where(g, mt_graph_gt(g, a, lit(g, 0.0)), gz); /* relu'(0)=0 */
    default:
        *known = false;
        return MT_VAR_NONE;
    }
}

/* Binary rules: contributions for a and b of y = op(a, b) (only the needed ones). */
static bool binary(mt_graph *g, mt_sop sop, mt_var gz, mt_var a, mt_var b, mt_var y,
                   const bool *need, mt_var *o)
{
    switch (sop) {
    case MT_SOP_ADD:
        if (need[0]) o[0] = gz;
        if (need[1]) o[1] = gz;
        return true;
    case MT_SOP_SUB:
        if (need[0]) o[0] = gz;
        if (need[1]) o[1] = mt_graph_neg(g, gz);
        return true;
    case MT_SOP_MUL:
        if (need[0]) o[0] = mt_graph_mul(g, gz, b);
        if (need[1]) o[1] = mt_graph_mul(g, gz, a);
        return true;
    case MT_SOP_DIV: {
        mt_var da = mt_graph_div(g, gz, b);
        if (need[0]) o[0] = da;
        if (need[1]) o[1] = mt_graph_neg(g, mt_graph_mul(g, da, y)); /* -gz * a / b^2 */
        return true;
    }
    case MT_SOP_MOD: /* a - floor(a / b) * b, Theano's convention */
        if (need[0]) o[0] = gz;
        if (need[1]) o[1] = mt_graph_neg(g, mt_graph_mul(g, gz, mt_graph_floordiv(g, a, b)));
        return true;
    case MT_SOP_POW:
        if (need[0]) o[0] = pow_dx(g, gz, a, b);
        if (need[1]) o[1] = pow_dy(g, gz, a, y);
        return true;
    case MT_SOP_MAX: /* ties go to the first operand */
        if (need[0]) o[0] = keep_where(g, mt_graph_ge(g, a, b), gz);
        if (need[1]) o[1] = keep_where(g, mt_graph_lt(g, a, b), gz);
        return true;
    case MT_SOP_MIN:
        if (need[0]) o[0] = keep_where(g, mt_graph_le(g, a, b), gz);
        if (need[1]) o[1] = keep_where(g, mt_graph_gt(g, a, b), gz);
        return true;
    case MT_SOP_ATAN2: { /* atan2(a, b): d/da = b / (a^2 + b^2), d/db = -a / (a^2 + b^2) */
        mt_var r = mt_graph_div(g, gz, mt_graph_add(g, mt_graph_square(g, a),
                                                    mt_graph_square(g, b)));
        if (need[0]) o[0] = mt_graph_mul(g, r, b);
        if (need[1]) o[1] = mt_graph_neg(g, mt_graph_mul(g, r, a));
        return true;
    }
    case MT_SOP_LOGADDEXP:
        if (need[0]) o[0] = mt_graph_mul(g, gz, mt_graph_sigmoid(g, mt_graph_sub(g, a, b)));
        if (need[1]) o[1] = mt_graph_mul(g, gz, mt_graph_sigmoid(g, mt_graph_sub(g, b, a)));
        return true;
    default:
        return false;
    }
}

mt_status mt__grad_elemwise(mt__grad_cx *cx)
{
    mt_graph *g = cx->g;
    const mt__node *n = cx->n;
    mt_sop sop = n->attrs.sop;
    mt_var gz = cx->gz, y = cx->v;
    bool known = false;
    if (n->nin == 1) {
        mt_var r = unary(g, sop, gz, n->in[0], y, &known);
        if (known) cx->out[0] = r;
    } else if (n->nin == 2) {
        known = binary(g, sop, gz, n->in[0], n->in[1], y, cx->need, cx->out);
    } else if (sop == MT_SOP_WHERE) { /* routes by the condition; the condition gets nothing */
        mt_var c = n->in[0];
        if (cx->need[1]) cx->out[1] = keep_where(g, c, gz);
        if (cx->need[2]) cx->out[2] = zero_where(g, c, gz);
        known = true;
    }
    if (!known)
        return mt_err_set(MT_ERR_UNSUPPORTED, "no gradient rule for elementwise '%s'",
                          mt__sop_text(sop));
    return MT_OK;
}
