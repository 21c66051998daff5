/* Shape, cast and reduction rewrites: useless casts and cast chains that are exact, useless
 * reshapes / dimshuffles / broadcasts and chains of them merged into one, reductions over
 * broadcast (or size-1) axes replaced by elementwise work (sum over a broadcast axis -> a
 * multiplication by its size), and argmax/argmin pushed through monotone functions.
 *
 * Chains are merged only where the merged op performs the same run-time checks as the chain
 * (reshape and broadcast chains need a static innermost operand), so a graph that would fail
 * a shape check never starts to succeed, or the other way round. */
#include <math.h>
#include <string.h>

#include "rewrite_impl.h"

/* ---------------------------------------------------------------- casts */

static mt_var rule_cast_identity(mt__rw_ctx *cx, mt_var v)
{
    mt_var x = mt__rw_in(cx->g, v, 0);
    const mt_type *t = mt_graph_type(cx->g, x);
    return t->dtype == mt_graph_type(cx->g, v)->dtype && !t->weak ? x : MT_VAR_NONE;
}

/* Every value of `from` is exactly representable in `to` (so casting through `to` loses
 * nothing, NaN and inf included). */
static bool lossless(mt_dtype from, mt_dtype to)
{
    if (from == to || from == MT_BOOL) return true;
    char fk = mt_dtype_kind(from), tk = mt_dtype_kind(to);
    size_t fs = mt_dtype_size(from), ts = mt_dtype_size(to);
    if (fk == 'f')
        return tk == 'f' && ts > fs && (to != MT_FLOAT16 && to != MT_BFLOAT16);
    if (tk == 'i') return fk == 'i' ? ts >= fs : ts > fs;
    if (tk == 'u') return fk == 'u' && ts >= fs;
    if (tk != 'f') return false;
    /* integers into floats: the magnitude must fit the significand */
    int bits = to == MT_FLOAT16 ? 11 : to == MT_BFLOAT16 ? 8 : to == MT_FLOAT32 ? 24 : 53;
    int need = (int)(8 * fs) - (fk == 'i' ? 1 : 0);
    return need <= bits;
}

static mt_var rule_cast_cast(mt__rw_ctx *cx, mt_var v)
{
    mt_graph *g = cx->g;
    mt_var in = mt__rw_in(g, v, 0);
    if (!mt__rw_is(g, in, MT_SOP_CAST)) return MT_VAR_NONE;
    mt_var x = mt__rw_in(g, in, 0);
    const mt_type *xt = mt_graph_type(g, x);
    if (!lossless(xt->dtype, mt_graph_type(g, in)->dtype)) return MT_VAR_NONE;
    mt_dtype to = mt_graph_type(g, v)->dtype;
    if (xt->dtype == to && !xt->weak) return x;
    mt__rw_begin(cx, v);
    mt_op_attrs a;
    memset(&a, 0, sizeof(a));
    a.sop = MT_SOP_CAST;
    a.dtype = to;
    return mt_graph_make(g, MT_OP_ELEMWISE, &a, 1, &x);
}

/* ---------------------------------------------------------------- reshape */

static mt_var rule_reshape_identity(mt__rw_ctx *cx, mt_var v)
{
    mt_graph *g = cx->g;
    mt_var x = mt__rw_in(g, v, 0);
    const mt_type *xt = mt_graph_type(g, x), *vt = mt_graph_type(g, v);
    const mt_op_attrs *a = mt_graph_attrs(g, v);
    if (xt->ndim != vt->ndim) return MT_VAR_NONE;
    for (int32_t i = 0; i < vt->ndim; i++) {
        bool keep = a->shape[i] == MT_RESHAPE_KEEP;
        if (!keep && !(xt->shape[i] >= 0 && vt->shape[i] == xt->shape[i])) return MT_VAR_NONE;
    }
    return x;
}

static mt_var rule_reshape_reshape(mt__rw_ctx *cx, mt_var v)
{
    mt_graph *g = cx->g;
    mt_var in = mt__rw_in(g, v, 0);
    if (mt_graph_op(g, in) != MT_OP_RESHAPE) return MT_VAR_NONE;
    mt_var x = mt__rw_in(g, in, 0);
    const mt_type *vt = mt_graph_type(g, v);
    if (!mt_type_is_static(mt_graph_type(g, x)) || !mt_type_is_static(vt)) return MT_VAR_NONE;
    mt__rw_begin(cx, v);
    return mt_graph_reshape(g, x, vt->ndim, vt->shape);
}

/* ---------------------------------------------------------------- dimshuffle */

static mt_var rule_dimshuffle_identity(mt__rw_ctx *cx, mt_var v)
{
    mt_var x = mt__rw_in(cx->g, v, 0);
    const mt_op_attrs *a = mt_graph_attrs(cx->g, v);
    if (a->nperm != mt_graph_type(cx->g, x)->ndim) return MT_VAR_NONE;
    for (int32_t i = 0; i < a->nperm; i++)
        if (a->perm[i] != i) return MT_VAR_NONE;
    return x;
}

static mt_var rule_dimshuffle_merge(mt__rw_ctx *cx, mt_var v)
{
    mt_graph *g = cx->g;
    mt_var in = mt__rw_in(g, v, 0);
    if (mt_graph_op(g, in) != MT_OP_DIMSHUFFLE) return MT_VAR_NONE;
    const mt_op_attrs *outer = mt_graph_attrs(g, v), *inner = mt_graph_attrs(g, in);
    int32_t p[MT_MAX_DIMS];
    for (int32_t i = 0; i < outer->nperm; i++)
        p[i] = outer->perm[i] < 0 ? -1 : inner->perm[outer->perm[i]];
    mt__rw_begin(cx, v);
    /* the builder returns x itself for an identity pattern */
    return mt_graph_dimshuffle(g, mt__rw_in(g, in, 0), outer->nperm, p);
}

/* ---------------------------------------------------------------- broadcast */

static mt_var rule_broadcast_identity(mt__rw_ctx *cx, mt_var v)
{
    mt_op op = mt_graph_op(cx->g, v);
    if (op != MT_OP_BROADCAST_TO && op != MT_OP_BROADCAST_LIKE) return MT_VAR_NONE;
    mt_var x = mt__rw_in(cx->g, v, 0);
    const mt_type *xt = mt_graph_type(cx->g, x);
    return mt_type_is_static(xt) && mt__rw_same_type(cx->g, x, v) ? x : MT_VAR_NONE;
}

static mt_var rule_broadcast_broadcast(mt__rw_ctx *cx, mt_var v)
{
    mt_graph *g = cx->g;
    mt_var in = mt__rw_in(g, v, 0);
    if (mt_graph_op(g, in) != MT_OP_BROADCAST_TO) return MT_VAR_NONE;
    mt_var x = mt__rw_in(g, in, 0);
    if (!mt_type_is_static(mt_graph_type(g, x))) return MT_VAR_NONE;
    const mt_type *vt = mt_graph_type(g, v);
    mt__rw_begin(cx, v);
    return mt_graph_broadcast_to(g, x, vt->ndim, vt->shape);
}

/* ---------------------------------------------------------------- reductions */

/* The view of a reduction's operand that reduce_broadcast works on: the operand of a
 * broadcast (right-aligned, `lead` new leading axes), or the operand itself. */
typedef struct bview {
    mt_var x;
    int32_t lead;
    const mt_type *b; /* the reduced array's type */
} bview;

/* z = x viewed with the reduction's output axes (size 1 where B broadcasts), and K = the
 * number of copies each output element sums (product of the reduced sizes of B). */
static bool reduce_view(mt__rw_ctx *cx, mt_var v, const bview *bv, mt_var *z, double *k)
{
    mt_graph *g = cx->g;
    const mt_op_attrs *a = mt_graph_attrs(g, v);
    const mt_type *xt = mt_graph_type(g, bv->x);
    int32_t nd = bv->b->ndim;
    bool red[MT_MAX_DIMS] = {false};
    for (int32_t i = 0; i < a->naxes; i++) red[a->axes[i]] = true;
    if (a->naxes == 0)
        for (int32_t d = 0; d < nd; d++) red[d] = true;
    double K = 1;
    int32_t perm[MT_MAX_DIMS], np = 0;
    for (int32_t d = 0; d < nd; d++) {
        int32_t j = d - bv->lead;
        if (red[d]) {
            if (j >= 0 && xt->shape[j] != 1) return false; /* a real reduction */
            if (bv->b->shape[d] < 1) return false;        /* unknown or empty: K unknown */
            K *= (double)bv->b->shape[d];
            if (a->keepdims) perm[np++] = j >= 0 ? j : -1; /* x's size-1 axis, or a new one */
        } else {
            perm[np++] = j < 0 ? -1 : j;
        }
    }
    if (K > 9.0e15) return false;
    mt__rw_begin(cx, v);
    *z = mt_graph_dimshuffle(g, bv->x, np, perm);
    *k = K;
    return *z != MT_VAR_NONE;
}

/* K as a constant of dtype dt if it is exactly representable there. */
static mt_var exact_count(mt__rw_ctx *cx, mt_var like, double k)
{
    mt_dtype dt = mt_graph_type(cx->g, like)->dtype;
    unsigned char buf[16] = {0};
    mt_scalar s = mt_scalar_f64(k);
    mt_scalar_store(&s, dt, buf);
    double rt = 0;
    mt_dtype_convert(&rt, MT_FLOAT64, 8, buf, dt, 0, 1);
    if (rt != k) return MT_VAR_NONE;
    return mt__rw_scalar_like(cx, like, k);
}

/* The elementwise equivalent of the reduction over z (whose reduced axes are size 1). */
static mt_var reduce_of_copies(mt__rw_ctx *cx, mt_var v, mt_var z, double k)
{
    mt_graph *g = cx->g;
    const mt_op_attrs *a = mt_graph_attrs(g, v);
    mt_dtype zd = mt_graph_type(g, z)->dtype, rd = mt_graph_type(g, v)->dtype;
    switch (a->reduce) {
    case MT_REDUCE_MAX: case MT_REDUCE_MIN:
        return z;
    case MT_REDUCE_ALL: case MT_REDUCE_ANY:
        return mt_graph_cast(g, z, MT_BOOL);
    case MT_REDUCE_MEAN:
        return mt_dtype_is_float(zd) && zd == rd ? z : MT_VAR_NONE;
    case MT_REDUCE_PROD:
        return k == 1 ? mt_graph_cast(g, z, rd) : MT_VAR_NONE;
    case MT_REDUCE_ARGMAX: case MT_REDUCE_ARGMIN:
        return mt__rw_full(cx, v, MT_VAR_NONE, 0.0);
    case MT_REDUCE_SUM: {
        mt_var c = mt_graph_cast(g, z, rd);
        if (!c || k == 1) return c;
        mt_var kc = exact_count(cx, c, k);
        return kc ? mt__rw_ew2(cx, MT_SOP_MUL, c, kc) : MT_VAR_NONE;
    }
    default:
        return MT_VAR_NONE;
    }
}

static mt_var rule_reduce_broadcast(mt__rw_ctx *cx, mt_var v)
{
    mt_graph *g = cx->g;
    mt_var in = mt__rw_in(g, v, 0);
    bview bv;
    bv.b = mt_graph_type(g, in);
    bv.x = in;
    bv.lead = 0;
    if (mt_graph_op(g, in) == MT_OP_BROADCAST_TO || mt_graph_op(g, in) == MT_OP_BROADCAST_LIKE) {
        bv.x = mt__rw_in(g, in, 0);
        bv.lead = bv.b->ndim - mt_graph_type(g, bv.x)->ndim;
    }
    mt_var z;
    double k;
    const mt_op_attrs *a = mt_graph_attrs(g, v);
    if (a->reduce == MT_REDUCE_ARGMAX || a->reduce == MT_REDUCE_ARGMIN) {
        if (!mt_type_is_static(mt_graph_type(g, v))) return MT_VAR_NONE;
    }
    if (!reduce_view(cx, v, &bv, &z, &k)) return MT_VAR_NONE;
    mt_var r = reduce_of_copies(cx, v, z, k);
    if (!r || mt__rw_same_type(g, r, v)) return r;
    const mt_type *vt = mt_graph_type(g, v);
    if (!mt_type_is_static(vt)) return MT_VAR_NONE;
    return mt_graph_broadcast_to(g, r, vt->ndim, vt->shape);
}

/* argmax(f(x)) -> argmax(x) for f strictly increasing on the reals, argmax(-x) -> argmin(x),
 * argmax(softmax(x, a)) -> argmax(x) over exactly the softmax axis. */
static mt_var rule_argmax_monotone(mt__rw_ctx *cx, mt_var v)
{
    mt_graph *g = cx->g;
    const mt_op_attrs *a = mt_graph_attrs(g, v);
    if (a->reduce != MT_REDUCE_ARGMAX && a->reduce != MT_REDUCE_ARGMIN) return MT_VAR_NONE;
    mt_var f = mt__rw_in(g, v, 0);
    mt_op op = mt_graph_op(g, f);
    bool flip = false;
    if (op == MT_OP_SOFTMAX || op == MT_OP_LOGSOFTMAX) {
        int32_t ax = mt_graph_attrs(g, f)->axes[0];
        bool one = (a->naxes == 1 && a->axes[0] == ax) ||
                   (a->naxes == 0 && mt_graph_type(g, f)->ndim == 1);
        if (!one) return MT_VAR_NONE;
    } else {
        switch (mt__rw_sop(g, f)) {
        case MT_SOP_EXP: case MT_SOP_EXP2: case MT_SOP_EXPM1: case MT_SOP_SIGMOID:
        case MT_SOP_TANH: case MT_SOP_SOFTPLUS: case MT_SOP_ATAN: case MT_SOP_ERF:
        case MT_SOP_SINH:
            break;
        case MT_SOP_NEG: /* exact for floats only: integer negation wraps at the minimum */
            if (!mt_dtype_is_float(mt_graph_type(g, f)->dtype)) return MT_VAR_NONE;
            flip = true;
            break;
        default:
            return MT_VAR_NONE;
        }
    }
    mt_var x = mt__rw_in(g, f, 0);
    mt_op_attrs b = *a;
    if (flip) b.reduce = a->reduce == MT_REDUCE_ARGMAX ? MT_REDUCE_ARGMIN : MT_REDUCE_ARGMAX;
    mt__rw_begin(cx, v);
    return mt_graph_make(g, MT_OP_REDUCE, &b, 1, &x);
}

/* ---------------------------------------------------------------- table */

#define CS (MT__PH(CANONICALIZE) | MT__PH(SPECIALIZE))
#define ALL (MT__PH(CANONICALIZE) | MT__PH(STABILIZE) | MT__PH(SPECIALIZE))

const mt__rule mt__rules_shape[] = {
    {{"cast_identity", "cast(x, dtype of x) -> x", ALL, MT_REWRITE_EXACT}, MT_OP_ELEMWISE,
     MT_SOP_CAST, rule_cast_identity},
    {{"cast_cast", "cast(cast(x, t1), t2) -> cast(x, t2) when t1 holds every value of x", ALL,
      MT_REWRITE_EXACT}, MT_OP_ELEMWISE, MT_SOP_CAST, rule_cast_cast},
    {{"reshape_identity", "reshape(x, shape of x) -> x", ALL, MT_REWRITE_EXACT}, MT_OP_RESHAPE,
     MT_SOP_COUNT, rule_reshape_identity},
    {{"reshape_reshape", "reshape(reshape(x, s1), s2) -> reshape(x, s2) (x static)", ALL,
      MT_REWRITE_EXACT}, MT_OP_RESHAPE, MT_SOP_COUNT, rule_reshape_reshape},
    {{"dimshuffle_identity", "dimshuffle(x, identity) -> x", ALL, MT_REWRITE_EXACT},
     MT_OP_DIMSHUFFLE, MT_SOP_COUNT, rule_dimshuffle_identity},
    {{"dimshuffle_merge", "dimshuffle(dimshuffle(x, p1), p2) -> dimshuffle(x, p1 o p2)", ALL,
      MT_REWRITE_EXACT}, MT_OP_DIMSHUFFLE, MT_SOP_COUNT, rule_dimshuffle_merge},
    {{"broadcast_identity", "broadcast(x, shape of x) -> x", ALL, MT_REWRITE_EXACT},
     MT_OP_COUNT, MT_SOP_COUNT, rule_broadcast_identity},
    {{"broadcast_broadcast", "broadcast_to(broadcast_to(x, s1), s2) -> broadcast_to(x, s2)",
      ALL, MT_REWRITE_EXACT}, MT_OP_BROADCAST_TO, MT_SOP_COUNT, rule_broadcast_broadcast},
    {{"reduce_broadcast", "reduction over broadcast or size-1 axes -> elementwise "
      "(sum -> x * size, max/min/mean -> x, all/any -> bool(x))", CS, MT_REWRITE_EXACT},
     MT_OP_REDUCE, MT_SOP_COUNT, rule_reduce_broadcast},
    {{"argmax_monotone", "argmax/argmin(f(x)) -> argmax/argmin(x) for increasing f (exp, "
      "sigmoid, tanh, softplus, softmax, ...); argmax(-x) -> argmin(x)", MT__PH(SPECIALIZE),
      MT_REWRITE_EXACT}, MT_OP_REDUCE, MT_SOP_COUNT, rule_argmax_monotone},
};
const int32_t mt__rules_shape_count =
    (int32_t)(sizeof(mt__rules_shape) / sizeof(mt__rules_shape[0]));
