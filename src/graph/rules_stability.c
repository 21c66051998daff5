/* Stability rewrites: numerically unstable subgraphs replaced by the stable first-class ops
 * (Theano's stabilize phase, docs/rewrites.md lists each with its soundness argument).
 *
 *   log(1 + x), log(1 - x)                    -> log1p(x), log1p(-x)
 *   exp(x) - 1                                -> expm1(x)
 *   log(1 - exp(x)), log1p(-exp(x)), log(-expm1(x)) -> log1mexp(x)
 *   log(1 + exp(x)), log1p(exp(x))            -> softplus(x)
 *   log(sigmoid(x))                           -> -softplus(-x)
 *   log(1 - sigmoid(x)), log1p(-sigmoid(x))   -> -softplus(x)
 *   log(softmax(x))                           -> logsoftmax(x)
 *   exp(x) / sum(exp(x), a, keepdims)         -> softmax(x, a)
 *   log(sum(exp(x), axes))                    -> logsumexp(x, axes)
 *   log(exp(a) + exp(b))                      -> logaddexp(a, b)
 *   exp(x) / (1 + exp(x)), 1 / (1 + exp(-x))  -> sigmoid(x);  1 / (1 + exp(x)) -> sigmoid(-x)
 *   crossentropy(softmax(x), t), crossentropy_labels(softmax(x), y) -> the fused softmax forms
 *   -sum(t * logsoftmax(x), a)                -> softmax_crossentropy(x, t, a)
 *   -log(sum(softmax(x) * one_hot(y), a))     -> softmax_crossentropy_labels(x, y), guarded
 *   the crossentropy gradients through a softmax -> gk * (softmax(x) - onehot(y)) (or the
 *                                                targets form), without the division
 *   gk * (softmax(x, a) - onehot(y) along a)  -> softmax_crossentropy_labels_dx(gz, x, y, a)
 *                                                (specialize: one pass instead of three steps)
 *
 * Constants are matched by value (mt_graph_scalar_value sees through casts and broadcasts), and
 * a replacement is only built when it has the replaced node's type. */
#include <math.h>
#include <string.h>

#include "rewrite_impl.h"

/* ---------------------------------------------------------------- pattern pieces */

/* v = c + x, x + c, or x - (-c): *x receives x. */
static bool plus_const(const mt_graph *g, mt_var v, double c, mt_var *x)
{
    mt_var a = mt__rw_in(g, v, 0), b = mt__rw_in(g, v, 1);
    if (mt__rw_is(g, v, MT_SOP_ADD)) {
        if (mt__rw_const_eq(g, a, c)) {
            *x = b;
            return true;
        }
        if (mt__rw_const_eq(g, b, c)) {
            *x = a;
            return true;
        }
    } else if (mt__rw_is(g, v, MT_SOP_SUB) && mt__rw_const_eq(g, b, -c)) {
        *x = a;
        return true;
    }
    return false;
}

/* v = 1 - x, 1 + (-x) or (-x) + 1: *x receives x. */
static bool one_minus(const mt_graph *g, mt_var v, mt_var *x)
{
    if (mt__rw_is(g, v, MT_SOP_SUB) && mt__rw_const_eq(g, mt__rw_in(g, v, 0), 1.0)) {
        *x = mt__rw_in(g, v, 1);
        return true;
    }
    mt_var y;
    if (plus_const(g, v, 1.0, &y) && mt__rw_is(g, y, MT_SOP_NEG)) {
        *x = mt__rw_in(g, y, 0);
        return true;
    }
    return false;
}

/* v = f(x) for the scalar op f: *x receives x. */
static bool unary_of(const mt_graph *g, mt_var v, mt_sop f, mt_var *x)
{
    if (!mt__rw_is(g, v, f)) return false;
    *x = mt__rw_in(g, v, 0);
    return true;
}

static mt_var neg(mt__rw_ctx *cx, mt_var x)
{
    return mt__rw_ew1(cx, MT_SOP_NEG, x);
}

/* ---------------------------------------------------------------- log / exp forms */

static mt_var rule_log1p(mt__rw_ctx *cx, mt_var v)
{
    mt_graph *g = cx->g;
    mt_var arg = mt__rw_in(g, v, 0), x;
    if (plus_const(g, arg, 1.0, &x) && mt__rw_fits(g, x, v)) {
        mt__rw_begin(cx, v);
        return mt__rw_ew1(cx, MT_SOP_LOG1P, x);
    }
    if (one_minus(g, arg, &x) && mt__rw_fits(g, x, v)) {
        mt__rw_begin(cx, v);
        return mt__rw_ew1(cx, MT_SOP_LOG1P, neg(cx, x));
    }
    return MT_VAR_NONE;
}

static mt_var rule_expm1(mt__rw_ctx *cx, mt_var v)
{
    mt_graph *g = cx->g;
    mt_var e, x;
    if (!plus_const(g, v, -1.0, &e) || !unary_of(g, e, MT_SOP_EXP, &x) || !mt__rw_fits(g, e, v))
        return MT_VAR_NONE;
    mt__rw_begin(cx, v);
    return mt__rw_ew1(cx, MT_SOP_EXPM1, x);
}

static mt_var rule_log1mexp(mt__rw_ctx *cx, mt_var v)
{
    mt_graph *g = cx->g;
    mt_var arg = mt__rw_in(g, v, 0), y, x = MT_VAR_NONE;
    mt_sop root = mt__rw_sop(g, v);
    if (root != MT_SOP_LOG && root != MT_SOP_LOG1P) return MT_VAR_NONE;
    if (root == MT_SOP_LOG) {
        if (one_minus(g, arg, &y) && unary_of(g, y, MT_SOP_EXP, &x)) {
            /* log(1 - exp(x)) */
        } else if (unary_of(g, arg, MT_SOP_NEG, &y) && unary_of(g, y, MT_SOP_EXPM1, &x)) {
            /* log(-expm1(x)) */
        } else {
            x = MT_VAR_NONE;
        }
    } else if (unary_of(g, arg, MT_SOP_NEG, &y) && unary_of(g, y, MT_SOP_EXP, &x)) {
        /* log1p(-exp(x)) */
    } else {
        x = MT_VAR_NONE;
    }
    if (!x || !mt__rw_fits(g, x, v)) return MT_VAR_NONE;
    mt__rw_begin(cx, v);
    return mt__rw_ew1(cx, MT_SOP_LOG1MEXP, x);
}

static mt_var rule_softplus(mt__rw_ctx *cx, mt_var v)
{
    mt_graph *g = cx->g;
    mt_var arg = mt__rw_in(g, v, 0), e = arg, x;
    mt_sop root = mt__rw_sop(g, v);
    if (root != MT_SOP_LOG && root != MT_SOP_LOG1P) return MT_VAR_NONE;
    if (root == MT_SOP_LOG && !plus_const(g, arg, 1.0, &e)) return MT_VAR_NONE;
    if (!unary_of(g, e, MT_SOP_EXP, &x) || !mt__rw_fits(g, x, v)) return MT_VAR_NONE;
    mt__rw_begin(cx, v);
    return mt__rw_ew1(cx, MT_SOP_SOFTPLUS, x);
}

static mt_var rule_log_sigmoid(mt__rw_ctx *cx, mt_var v)
{
    mt_var x;
    if (!unary_of(cx->g, mt__rw_in(cx->g, v, 0), MT_SOP_SIGMOID, &x)) return MT_VAR_NONE;
    mt__rw_begin(cx, v);
    return neg(cx, mt__rw_ew1(cx, MT_SOP_SOFTPLUS, neg(cx, x)));
}

static mt_var rule_log1m_sigmoid(mt__rw_ctx *cx, mt_var v)
{
    mt_graph *g = cx->g;
    mt_var arg = mt__rw_in(g, v, 0), s, x;
    mt_sop root = mt__rw_sop(g, v);
    if (root != MT_SOP_LOG && root != MT_SOP_LOG1P) return MT_VAR_NONE;
    bool ok = root == MT_SOP_LOG ? one_minus(g, arg, &s) : unary_of(g, arg, MT_SOP_NEG, &s);
    if (!ok || !unary_of(g, s, MT_SOP_SIGMOID, &x) || !mt__rw_fits(g, x, v)) return MT_VAR_NONE;
    mt__rw_begin(cx, v);
    return neg(cx, mt__rw_ew1(cx, MT_SOP_SOFTPLUS, x));
}

/* ---------------------------------------------------------------- softmax family */

static mt_var rule_logsoftmax(mt__rw_ctx *cx, mt_var v)
{
    mt_graph *g = cx->g;
    mt_var s = mt__rw_in(g, v, 0);
    if (mt_graph_op(g, s) != MT_OP_SOFTMAX) return MT_VAR_NONE;
    mt_var x = mt__rw_in(g, s, 0);
    mt__rw_begin(cx, v);
    return mt_graph_make(g, MT_OP_LOGSOFTMAX, mt_graph_attrs(g, s), 1, &x);
}

/* d = sum(e, axis a, keepdims) or the same without keepdims re-expanded at a by a dimshuffle.
 * Returns a, or -1. */
static int32_t sum_keep_axis(const mt_graph *g, mt_var d, mt_var e)
{
    mt_var r = d;
    bool expanded = false;
    if (mt_graph_op(g, d) == MT_OP_DIMSHUFFLE) {
        r = mt__rw_in(g, d, 0);
        expanded = true;
    }
    if (mt_graph_op(g, r) != MT_OP_REDUCE || mt__rw_in(g, r, 0) != e) return -1;
    const mt_op_attrs *a = mt_graph_attrs(g, r);
    if (a->reduce != MT_REDUCE_SUM || a->naxes != 1 || a->keepdims == expanded) return -1;
    int32_t ax = a->axes[0];
    if (expanded) { /* the pattern must put a new axis exactly at ax and keep the rest in order */
        const mt_op_attrs *p = mt_graph_attrs(g, d);
        if (p->nperm != mt_graph_type(g, e)->ndim) return -1;
        for (int32_t i = 0, k = 0; i < p->nperm; i++) {
            int32_t want = i == ax ? -1 : k++;
            if (p->perm[i] != want) return -1;
        }
    }
    return ax;
}

static mt_var rule_softmax(mt__rw_ctx *cx, mt_var v)
{
    mt_graph *g = cx->g;
    mt_var e = mt__rw_in(g, v, 0), x;
    if (!unary_of(g, e, MT_SOP_EXP, &x) || !mt__rw_fits(g, e, v)) return MT_VAR_NONE;
    int32_t ax = sum_keep_axis(g, mt__rw_in(g, v, 1), e);
    if (ax < 0) return MT_VAR_NONE;
    mt__rw_begin(cx, v);
    mt_op_attrs a;
    memset(&a, 0, sizeof(a));
    a.naxes = 1;
    a.axes[0] = ax;
    return mt_graph_make(g, MT_OP_SOFTMAX, &a, 1, &x);
}

static mt_var rule_logsumexp(mt__rw_ctx *cx, mt_var v)
{
    mt_graph *g = cx->g;
    mt_var s = mt__rw_in(g, v, 0), x;
    if (mt_graph_op(g, s) != MT_OP_REDUCE || mt_graph_attrs(g, s)->reduce != MT_REDUCE_SUM ||
        !unary_of(g, mt__rw_in(g, s, 0), MT_SOP_EXP, &x))
        return MT_VAR_NONE;
    const mt_op_attrs *r = mt_graph_attrs(g, s);
    mt_op_attrs a;
    memset(&a, 0, sizeof(a));
    a.naxes = r->naxes;
    memcpy(a.axes, r->axes, sizeof(a.axes));
    a.keepdims = r->keepdims;
    mt__rw_begin(cx, v);
    return mt_graph_make(g, MT_OP_LOGSUMEXP, &a, 1, &x);
}

static mt_var rule_logaddexp(mt__rw_ctx *cx, mt_var v)
{
    mt_graph *g = cx->g;
    mt_var s = mt__rw_in(g, v, 0), a, b;
    if (!mt__rw_is(g, s, MT_SOP_ADD) || !unary_of(g, mt__rw_in(g, s, 0), MT_SOP_EXP, &a) ||
        !unary_of(g, mt__rw_in(g, s, 1), MT_SOP_EXP, &b))
        return MT_VAR_NONE;
    mt__rw_begin(cx, v);
    return mt__rw_ew2(cx, MT_SOP_LOGADDEXP, a, b);
}

static mt_var rule_sigmoid(mt__rw_ctx *cx, mt_var v)
{
    mt_graph *g = cx->g;
    bool recip = mt__rw_is(g, v, MT_SOP_RECIP);
    if (!recip && !mt__rw_is(g, v, MT_SOP_DIV)) return MT_VAR_NONE;
    mt_var num = recip ? MT_VAR_NONE : mt__rw_in(g, v, 0), den = mt__rw_in(g, v, recip ? 0 : 1);
    mt_var e, x, y;
    if (!plus_const(g, den, 1.0, &e) || !unary_of(g, e, MT_SOP_EXP, &x) ||
        !mt__rw_fits(g, e, v))
        return MT_VAR_NONE;
    if (num && num == e) { /* exp(x) / (1 + exp(x)) */
        mt__rw_begin(cx, v);
        return mt__rw_ew1(cx, MT_SOP_SIGMOID, x);
    }
    if (!recip && !mt__rw_const_eq(g, num, 1.0)) return MT_VAR_NONE;
    mt__rw_begin(cx, v);
    if (unary_of(g, x, MT_SOP_NEG, &y)) return mt__rw_ew1(cx, MT_SOP_SIGMOID, y); /* 1/(1+e^-y) */
    return mt__rw_ew1(cx, MT_SOP_SIGMOID, neg(cx, x));                            /* 1/(1+e^x) */
}

/* ---------------------------------------------------------------- crossentropy */

static mt_var rule_xent_softmax(mt__rw_ctx *cx, mt_var v)
{
    mt_graph *g = cx->g;
    mt_op op = mt_graph_op(g, v);
    if (op != MT_OP_XENT && op != MT_OP_XENT_LABELS) return MT_VAR_NONE;
    mt_var s = mt__rw_in(g, v, 0);
    if (mt_graph_op(g, s) != MT_OP_SOFTMAX ||
        mt_graph_attrs(g, s)->axes[0] != mt_graph_attrs(g, v)->axes[0])
        return MT_VAR_NONE;
    mt_var in[2] = {mt__rw_in(g, s, 0), mt__rw_in(g, v, 1)};
    mt__rw_begin(cx, v);
    return mt_graph_make(g, op == MT_OP_XENT ? MT_OP_SOFTMAX_XENT : MT_OP_SOFTMAX_XENT_LABELS,
                         mt_graph_attrs(g, v), 2, in);
}

/* v = sum(a * b, axis, keepdims false) with one factor of op `want`: returns the factors. */
static bool sum_of_product(const mt_graph *g, mt_var s, int32_t *axis, mt_var *t, mt_var *f,
                           mt_op want)
{
    if (mt_graph_op(g, s) != MT_OP_REDUCE) return false;
    const mt_op_attrs *a = mt_graph_attrs(g, s);
    if (a->reduce != MT_REDUCE_SUM || a->naxes != 1 || a->keepdims) return false;
    mt_var m = mt__rw_in(g, s, 0);
    if (!mt__rw_is(g, m, MT_SOP_MUL)) return false;
    mt_var p = mt__rw_in(g, m, 0), q = mt__rw_in(g, m, 1);
    if (mt_graph_op(g, p) != want) {
        mt_var tmp = p;
        p = q;
        q = tmp;
    }
    if (mt_graph_op(g, p) != want) return false;
    *axis = a->axes[0];
    *f = p;
    *t = q;
    return true;
}

/* -sum(t * logsoftmax(x, a), a) -> softmax_crossentropy(x, t, a): the fused kernel computes
 * this very sum. */
static mt_var rule_xent_sum(mt__rw_ctx *cx, mt_var v)
{
    mt_graph *g = cx->g;
    int32_t ax;
    mt_var t, ls;
    if (!sum_of_product(g, mt__rw_in(g, v, 0), &ax, &t, &ls, MT_OP_LOGSOFTMAX) ||
        mt_graph_attrs(g, ls)->axes[0] != ax || !mt__rw_same_type(g, t, ls))
        return MT_VAR_NONE;
    mt_var in[2] = {mt__rw_in(g, ls, 0), t};
    mt__rw_begin(cx, v);
    return mt_graph_make(g, MT_OP_SOFTMAX_XENT, mt_graph_attrs(g, ls), 2, in);
}

/* -log(sum(softmax(x, a) * one_hot(y, k), a)) with a the last axis (the gather form of
 * -log(softmax(x)[arange(n), y])) -> the fused labels form, with guards that keep the original's
 * values where the fused kernel would differ:
 *   labels outside [0, k): one_hot is all zeros, so the original is -log(0) = +inf;
 *   a row with a +inf logit: the original is NaN (inf/inf in softmax), so NaN is added through
 *   max(x) - max(x) (which is 0 for every other row, and NaN for NaN rows, as the original). */
static mt_var rule_xent_onehot(mt__rw_ctx *cx, mt_var v)
{
    mt_graph *g = cx->g;
    mt_var lg = mt__rw_in(g, v, 0), sm, oh;
    int32_t ax;
    if (!mt__rw_is(g, lg, MT_SOP_LOG) ||
        !sum_of_product(g, mt__rw_in(g, lg, 0), &ax, &oh, &sm, MT_OP_SOFTMAX) ||
        mt_graph_attrs(g, sm)->axes[0] != ax)
        return MT_VAR_NONE;
    if (mt__rw_is(g, oh, MT_SOP_CAST)) oh = mt__rw_in(g, oh, 0);
    if (mt_graph_op(g, oh) != MT_OP_ONE_HOT) return MT_VAR_NONE;
    const mt_type *ot = mt_graph_type(g, oh), *st = mt_graph_type(g, sm);
    if (ot->ndim != st->ndim || memcmp(ot->shape, st->shape, sizeof(ot->shape)) != 0)
        return MT_VAR_NONE; /* a one_hot broadcast against the rows does not pick per row */
    mt_var x = mt__rw_in(g, sm, 0), y = mt__rw_in(g, oh, 0);
    const mt_type *xt = mt_graph_type(g, x);
    int64_t k = mt_graph_attrs(g, oh)->depth;
    if (ax != xt->ndim - 1 || xt->shape[ax] != k || k < 1 ||
        !mt__rw_same_type(g, mt__rw_in(g, mt__rw_in(g, lg, 0), 0) /* the product */, sm))
        return MT_VAR_NONE;
    mt__rw_begin(cx, v);
    mt_var lo = mt_graph_literal_int(g, 0), hi = mt_graph_literal_int(g, k - 1);
    mt_var valid = mt_graph_logical_and(g, mt_graph_ge(g, y, lo), mt_graph_le(g, y, hi));
    mt_var yc = mt_graph_clip(g, y, lo, hi);
    mt_op_attrs a;
    memset(&a, 0, sizeof(a));
    a.naxes = 1;
    a.axes[0] = ax;
    mt_var in[2] = {x, yc};
    mt_var fused = mt_graph_make(g, MT_OP_SOFTMAX_XENT_LABELS, &a, 2, in);
    mt_var inf = mt_graph_scalar(g, xt->dtype, INFINITY);
    mt_var m = mt_graph_max(g, x, 1, &ax, false);
    return mt_graph_add(g, mt_graph_where(g, valid, fused, inf), mt_graph_sub(g, m, m));
}

/* ---------------------------------------------------------------- crossentropy gradients */

/* v = sm * (q - sum(q * sm, a, keepdims)) with sm = softmax(x, a): the gradient autodiff builds
 * through a softmax for an upstream gradient q. Returns sm and q. */
static bool softmax_lop(const mt_graph *g, mt_var v, mt_var *sm, mt_var *q)
{
    mt_var a = mt__rw_in(g, v, 0), b = mt__rw_in(g, v, 1);
    if (mt_graph_op(g, a) != MT_OP_SOFTMAX) {
        mt_var t = a;
        a = b;
        b = t;
    }
    if (mt_graph_op(g, a) != MT_OP_SOFTMAX || !mt__rw_is(g, b, MT_SOP_SUB)) return false;
    mt_var s = mt__rw_in(g, b, 1);
    *q = mt__rw_in(g, b, 0);
    if (mt_graph_op(g, s) != MT_OP_REDUCE) return false;
    const mt_op_attrs *ra = mt_graph_attrs(g, s);
    int32_t ax = mt_graph_attrs(g, a)->axes[0];
    if (ra->reduce != MT_REDUCE_SUM || ra->naxes != 1 || ra->axes[0] != ax || !ra->keepdims)
        return false;
    mt_var m = mt__rw_in(g, s, 0);
    if (!mt__rw_is(g, m, MT_SOP_MUL)) return false;
    mt_var m0 = mt__rw_in(g, m, 0), m1 = mt__rw_in(g, m, 1);
    if (!((m0 == *q && m1 == a) || (m1 == *q && m0 == a))) return false;
    *sm = a;
    return true;
}

/* The backward graph of crossentropy[_labels](softmax(x)) (Theano's
 * local_softmax_grad_to_crossentropy_with_softmax_grad): through the softmax, the gradient of
 * -log(p[y]) is gk * (softmax(x) - onehot(y)) and that of -sum(t * log(p)) is
 * gk * (softmax(x) * sum(t) - t), without the division by a probability that underflows. */
static mt_var rule_xent_softmax_grad(mt__rw_ctx *cx, mt_var v)
{
    mt_graph *g = cx->g;
    mt_var sm, q, hot, nd, ps, gk, dv, t;
    if (!softmax_lop(g, v, &sm, &q)) return MT_VAR_NONE;
    int32_t ax = mt_graph_attrs(g, sm)->axes[0];
    mt_dtype dt = mt_graph_type(g, sm)->dtype;
    if (mt__rw_is(g, q, MT_SOP_WHERE)) { /* labels: where(hot, -(gk / where(hot, sm, 1)), 0) */
        hot = mt__rw_in(g, q, 0);
        nd = mt__rw_in(g, q, 1);
        if (!mt__rw_const_eq(g, mt__rw_in(g, q, 2), 0.0) || !mt__rw_is(g, nd, MT_SOP_NEG))
            return MT_VAR_NONE;
        dv = mt__rw_in(g, nd, 0);
        if (mt__rw_is(g, dv, MT_SOP_DIV)) {
            gk = mt__rw_in(g, dv, 0);
            ps = mt__rw_in(g, dv, 1);
        } else if (mt__rw_is(g, dv, MT_SOP_RECIP)) { /* gk = 1, simplified */
            gk = MT_VAR_NONE;
            ps = mt__rw_in(g, dv, 0);
        } else {
            return MT_VAR_NONE;
        }
        if (!mt__rw_is(g, ps, MT_SOP_WHERE) || mt__rw_in(g, ps, 0) != hot ||
            mt__rw_in(g, ps, 1) != sm || !mt__rw_const_eq(g, mt__rw_in(g, ps, 2), 1.0))
            return MT_VAR_NONE;
        mt__rw_begin(cx, v);
        mt_var d = mt_graph_sub(g, sm, mt_graph_cast(g, hot, dt));
        return gk ? mt_graph_mul(g, gk, d) : d;
    }
    /* probabilities: -(gk * (t / sm)), or -(t / sm) once gk = 1 was simplified away */
    if (!unary_of(g, q, MT_SOP_NEG, &nd)) return MT_VAR_NONE;
    gk = MT_VAR_NONE;
    dv = nd;
    if (mt__rw_is(g, nd, MT_SOP_MUL)) {
        gk = mt__rw_in(g, nd, 0);
        dv = mt__rw_in(g, nd, 1);
        if (!mt__rw_is(g, dv, MT_SOP_DIV)) {
            mt_var tmp = gk;
            gk = dv;
            dv = tmp;
        }
    }
    if (!mt__rw_is(g, dv, MT_SOP_DIV) || mt__rw_in(g, dv, 1) != sm) return MT_VAR_NONE;
    t = mt__rw_in(g, dv, 0);
    mt__rw_begin(cx, v);
    mt_var ts = mt_graph_sum(g, t, 1, &ax, true);
    mt_var d = mt_graph_sub(g, mt_graph_mul(g, sm, ts), t);
    return gk ? mt_graph_mul(g, gk, d) : d;
}

/* ---------------------------------------------------------------- fused labels gradient */

/* hot = one_hot(y, depth) of dtype dt with the class axis moved to `axis` exactly as the
 * gradient of softmax_crossentropy_labels builds it (onehot_at in grad_reduce.c: no dimshuffle
 * when the axis is the last, else the one that moves the appended axis there). Returns y. */
static mt_var onehot_along(const mt_graph *g, mt_var hot, int32_t axis, int32_t nd, mt_dtype dt,
                           int64_t depth)
{
    if (axis != nd - 1) {
        if (mt_graph_op(g, hot) != MT_OP_DIMSHUFFLE) return MT_VAR_NONE;
        const mt_op_attrs *p = mt_graph_attrs(g, hot);
        if (p->nperm != nd) return MT_VAR_NONE;
        for (int32_t i = 0; i < nd; i++) {
            int32_t want = i < axis ? i : i == axis ? nd - 1 : i - 1;
            if (p->perm[i] != want) return MT_VAR_NONE;
        }
        hot = mt__rw_in(g, hot, 0);
    }
    /* the one_hot itself has nd axes (a dimshuffle may drop size-1 or unknown axes) */
    if (mt_graph_op(g, hot) != MT_OP_ONE_HOT || mt_graph_attrs(g, hot)->depth != depth ||
        mt_graph_type(g, hot)->dtype != dt || mt_graph_type(g, hot)->ndim != nd)
        return MT_VAR_NONE;
    mt_var y = mt__rw_in(g, hot, 0);
    const mt_type *yt = mt_graph_type(g, y);
    char k = mt_dtype_kind(yt->dtype);
    return (k == 'i' || k == 'u') && yt->ndim == nd - 1 ? y : MT_VAR_NONE;
}

/* s = softmax(x, a) - onehot(y) along a, with one dtype throughout, the one_hot's depth equal
 * to x's static size on a and the one_hot of x's shape (one label per row, nothing broadcast).
 * Returns x, y and a. */
static bool softmax_minus_onehot(const mt_graph *g, mt_var s, mt_var *x, mt_var *y,
                                 int32_t *axis)
{
    if (!mt__rw_is(g, s, MT_SOP_SUB)) return false;
    mt_var sm = mt__rw_in(g, s, 0), hot = mt__rw_in(g, s, 1);
    if (mt_graph_op(g, sm) != MT_OP_SOFTMAX) return false;
    *x = mt__rw_in(g, sm, 0);
    *axis = mt_graph_attrs(g, sm)->axes[0];
    const mt_type *xt = mt_graph_type(g, *x);
    int64_t depth = xt->shape[*axis];
    if (depth < 1 || !mt__rw_same_type(g, hot, *x) || !mt__rw_same_type(g, s, *x)) return false;
    *y = onehot_along(g, hot, *axis, xt->ndim, xt->dtype, depth);
    return *y != MT_VAR_NONE;
}

/* gk = dimshuffle(gz) inserting exactly the axis (mt_graph_expand_dims): gz, else NONE. */
static mt_var expanded_operand(const mt_graph *g, mt_var gk, int32_t axis)
{
    if (mt_graph_op(g, gk) != MT_OP_DIMSHUFFLE) return MT_VAR_NONE;
    const mt_op_attrs *p = mt_graph_attrs(g, gk);
    if (p->nperm != mt_graph_type(g, gk)->ndim) return MT_VAR_NONE;
    for (int32_t i = 0, k = 0; i < p->nperm; i++)
        if (p->perm[i] != (i == axis ? -1 : k++)) return MT_VAR_NONE;
    /* only an insertion: the input has one axis fewer (a dimshuffle may also drop axes) */
    mt_var gz = mt__rw_in(g, gk, 0);
    return mt_graph_type(g, gz)->ndim == p->nperm - 1 ? gz : MT_VAR_NONE;
}

/* A constant 1 of dtype dt with nd axes of size 1 (broadcasts as a unit upstream gradient). */
static mt_var unit_gradient(mt__rw_ctx *cx, mt_dtype dt, int32_t nd)
{
    unsigned char buf[16] = {0};
    mt_scalar one = mt_scalar_f64(1.0);
    mt_scalar_store(&one, dt, buf);
    mt_op_attrs a;
    memset(&a, 0, sizeof(a));
    a.dtype = dt;
    a.nshape = nd;
    for (int32_t i = 0; i < nd; i++) a.shape[i] = 1;
    a.data = buf;
    a.nbytes = mt_dtype_size(dt);
    return mt_graph_make(cx->g, MT_OP_CONST, &a, 0, NULL);
}

/* gk * (softmax(x, a) - onehot(y) along a) (the gradient of softmax_crossentropy_labels as
 * autodiff builds it, mul in either order, gk the upstream gradient expanded at a or any
 * operand whose size on a is 1, e.g. a folded constant) -> softmax_crossentropy_labels_dx(gz,
 * x, y, a) with gz = gk without the axis; softmax(x) - onehot(y) alone (a unit upstream gradient
 * that mul_one removed) -> the op with gz = 1. A sweep meets the sub before the mul, so the mul
 * form also accepts gk * dx(1, x, y) and folds gk in. */
static mt_var rule_xent_softmax_dx(mt__rw_ctx *cx, mt_var v)
{
    mt_graph *g = cx->g;
    mt_var x = MT_VAR_NONE, y = MT_VAR_NONE, gk = MT_VAR_NONE, gz = MT_VAR_NONE;
    int32_t axis = -1;
    if (mt__rw_is(g, v, MT_SOP_SUB)) {
        if (!softmax_minus_onehot(g, v, &x, &y, &axis)) return MT_VAR_NONE;
    } else if (mt__rw_is(g, v, MT_SOP_MUL)) {
        bool found = false;
        for (int32_t i = 0; i < 2 && !found; i++) {
            mt_var d = mt__rw_in(g, v, i);
            gk = mt__rw_in(g, v, 1 - i);
            if (softmax_minus_onehot(g, d, &x, &y, &axis)) {
                found = true;
            } else if (mt_graph_op(g, d) == MT_OP_SOFTMAX_XENT_LABELS_DX &&
                       mt__rw_const_eq(g, mt__rw_in(g, d, 0), 1.0)) {
                x = mt__rw_in(g, d, 1);
                y = mt__rw_in(g, d, 2);
                axis = mt_graph_attrs(g, d)->axes[0];
                found = true;
            }
        }
        if (!found) return MT_VAR_NONE;
        const mt_type *kt = mt_graph_type(g, gk), *xt = mt_graph_type(g, x);
        if (kt->dtype != xt->dtype || kt->ndim != xt->ndim || kt->shape[axis] != 1)
            return MT_VAR_NONE;
        gz = expanded_operand(g, gk, axis);
    } else {
        return MT_VAR_NONE;
    }
    if (!mt__rw_same_type(g, v, x)) return MT_VAR_NONE; /* gk must not enlarge the result */
    mt__rw_begin(cx, v);
    const mt_type *xt = mt_graph_type(g, x);
    int32_t nd = xt->ndim;
    if (!gz && gk) { /* drop gk's size-1 axis */
        int32_t perm[MT_MAX_DIMS];
        for (int32_t i = 0, k = 0; i < nd; i++)
            if (i != axis) perm[k++] = i;
        gz = mt_graph_dimshuffle(g, gk, nd - 1, perm);
    } else if (!gz) {
        gz = unit_gradient(cx, xt->dtype, nd - 1);
    }
    mt_op_attrs a;
    memset(&a, 0, sizeof(a));
    a.naxes = 1;
    a.axes[0] = axis;
    mt_var in[3] = {gz, x, y};
    return mt_graph_make(g, MT_OP_SOFTMAX_XENT_LABELS_DX, &a, 3, in);
}

/* ---------------------------------------------------------------- table */

#define ST MT__PH(STABILIZE)
#define EW MT_OP_ELEMWISE

const mt__rule mt__rules_stability[] = {
    {{"logsoftmax", "log(softmax(x)) -> logsoftmax(x)", ST, MT_REWRITE_EXACT},
     EW,
     MT_SOP_LOG,
     rule_logsoftmax},
    {{"logsumexp", "log(sum(exp(x), axes)) -> logsumexp(x, axes)", ST, MT_REWRITE_EXACT},
     EW,
     MT_SOP_LOG,
     rule_logsumexp},
    {{"logaddexp", "log(exp(a) + exp(b)) -> logaddexp(a, b)", ST, MT_REWRITE_EXACT},
     EW,
     MT_SOP_LOG,
     rule_logaddexp},
    {{"log_sigmoid", "log(sigmoid(x)) -> -softplus(-x)", ST, MT_REWRITE_EXACT},
     EW,
     MT_SOP_LOG,
     rule_log_sigmoid},
    {{"log1m_sigmoid", "log(1 - sigmoid(x)), log1p(-sigmoid(x)) -> -softplus(x)", ST,
      MT_REWRITE_EXACT},
     EW,
     MT_SOP_COUNT,
     rule_log1m_sigmoid},
    {{"softplus", "log(1 + exp(x)), log1p(exp(x)) -> softplus(x)", ST, MT_REWRITE_EXACT},
     EW,
     MT_SOP_COUNT,
     rule_softplus},
    {{"log1mexp", "log(1 - exp(x)), log1p(-exp(x)), log(-expm1(x)) -> log1mexp(x)", ST,
      MT_REWRITE_EXACT},
     EW,
     MT_SOP_COUNT,
     rule_log1mexp},
    {{"log1p", "log(1 + x) -> log1p(x); log(1 - x) -> log1p(-x)", ST, MT_REWRITE_EXACT},
     EW,
     MT_SOP_LOG,
     rule_log1p},
    {{"expm1", "exp(x) - 1 -> expm1(x)", ST, MT_REWRITE_EXACT}, EW, MT_SOP_COUNT, rule_expm1},
    {{"softmax", "exp(x) / sum(exp(x), a, keepdims) -> softmax(x, a)", ST, MT_REWRITE_EXACT},
     EW,
     MT_SOP_DIV,
     rule_softmax},
    {{"sigmoid",
      "exp(x) / (1 + exp(x)), 1 / (1 + exp(-x)) -> sigmoid(x); 1 / (1 + exp(x)) -> "
      "sigmoid(-x) (also with reciprocal(...))",
      MT__PH(STABILIZE) | MT__PH(SPECIALIZE), MT_REWRITE_EXACT},
     EW,
     MT_SOP_COUNT,
     rule_sigmoid},
    {{"xent_softmax",
      "crossentropy[_labels](softmax(x), t) -> softmax_crossentropy[_labels](x, "
      "t)",
      ST, MT_REWRITE_EXACT},
     MT_OP_COUNT,
     MT_SOP_COUNT,
     rule_xent_softmax},
    {{"xent_sum", "-sum(t * logsoftmax(x, a), a) -> softmax_crossentropy(x, t, a)", ST,
      MT_REWRITE_EXACT},
     EW,
     MT_SOP_NEG,
     rule_xent_sum},
    {{"xent_softmax_grad",
      "softmax(x) * (q - sum(q * softmax(x))) for q the gradient of "
      "crossentropy[_labels] -> gk * (softmax(x) - onehot(y)) (resp. gk * (softmax(x) * sum(t) - "
      "t))",
      ST, MT_REWRITE_EXACT},
     EW,
     MT_SOP_MUL,
     rule_xent_softmax_grad},
    {{"xent_softmax_dx",
      "gk * (softmax(x, a) - onehot(y) along a) (the gradient of softmax_crossentropy_labels; "
      "also without gk) -> softmax_crossentropy_labels_dx(gz, x, y, a)",
      MT__PH(SPECIALIZE), MT_REWRITE_EXACT},
     EW,
     MT_SOP_COUNT,
     rule_xent_softmax_dx},
    {{"xent_onehot",
      "-log(sum(softmax(x) * one_hot(y), -1)) -> softmax_crossentropy_labels(x, "
      "y) with label and inf guards",
      ST, MT_REWRITE_GUARDED},
     EW,
     MT_SOP_NEG,
     rule_xent_onehot},
};
const int32_t mt__rules_stability_count =
    (int32_t)(sizeof(mt__rules_stability) / sizeof(mt__rules_stability[0]));
