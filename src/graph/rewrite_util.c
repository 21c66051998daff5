/* Helpers shared by the rewrite rules: matching (scalar ops, uniform constants, type checks,
 * the known-finite analysis that gates the FINITE-class rules) and building (raw elementwise
 * nodes, broadcastable scalar constants, filled arrays). Kept apart from the engine so every
 * rule family reads the same small vocabulary. */
#include <math.h>
#include <string.h>

#include "rewrite_impl.h"

void mt__rw_begin(mt__rw_ctx *cx, mt_var v)
{
    if (cx->began) return;
    cx->began = true;
    mt_graph_set_origin_from(cx->g, v, cx->rule_name);
}

/* ---------------------------------------------------------------- matching */

mt_sop mt__rw_sop(const mt_graph *g, mt_var v)
{
    const mt__node *n = mt__graph_node(g, v);
    return n && n->op == MT_OP_ELEMWISE ? n->attrs.sop : MT_SOP_COUNT;
}

bool mt__rw_is(const mt_graph *g, mt_var v, mt_sop sop)
{
    return mt__rw_sop(g, v) == sop;
}

mt_var mt__rw_in(const mt_graph *g, mt_var v, int32_t i)
{
    return mt_graph_input(g, v, i);
}

bool mt__rw_const_value(const mt_graph *g, mt_var v, double *out)
{
    mt_scalar s;
    if (!v || !mt_graph_scalar_value(g, v, &s)) return false;
    switch (mt_dtype_kind(s.dtype)) {
    case 'b': *out = s.v.b ? 1.0 : 0.0; break;
    case 'i': *out = (double)s.v.i; break;
    case 'u': *out = (double)s.v.u; break;
    default: *out = s.v.f; break;
    }
    return true;
}

bool mt__rw_const_eq(const mt_graph *g, mt_var v, double value)
{
    mt_scalar s;
    if (!v || !mt_graph_scalar_value(g, v, &s)) return false;
    switch (mt_dtype_kind(s.dtype)) {
    case 'b': return (s.v.b ? 1.0 : 0.0) == value;
    case 'i': return value == floor(value) && fabs(value) < 9.0e15 && s.v.i == (int64_t)value;
    case 'u': return value == floor(value) && value >= 0 && value < 9.0e15 &&
                     s.v.u == (uint64_t)value;
    default: return s.v.f == value;
    }
}

bool mt__rw_fits(const mt_graph *g, mt_var repl, mt_var v)
{
    const mt_type *a = mt_graph_type(g, repl), *b = mt_graph_type(g, v);
    if (!a || !b || a->dtype != b->dtype || a->ndim != b->ndim) return false;
    for (int32_t d = 0; d < a->ndim; d++)
        if (b->shape[d] >= 0 && a->shape[d] != b->shape[d]) return false;
    return true;
}

bool mt__rw_same_type(const mt_graph *g, mt_var a, mt_var b)
{
    const mt_type *x = mt_graph_type(g, a), *y = mt_graph_type(g, b);
    if (!x || !y || x->dtype != y->dtype || x->ndim != y->ndim) return false;
    for (int32_t d = 0; d < x->ndim; d++)
        if (x->shape[d] != y->shape[d]) return false;
    return true;
}

/* Every element of a constant node finite (and nonzero when asked). */
static bool const_all(const mt__node *n, bool nonzero)
{
    int64_t numel = mt_type_numel(&n->type);
    char k = mt_dtype_kind(n->type.dtype);
    for (int64_t i = 0; i < numel; i++) {
        mt_scalar s = mt__const_elem(n, i);
        if (k == 'f' && !isfinite(s.v.f)) return false;
        if (nonzero) {
            bool z = k == 'f' ? s.v.f == 0 : k == 'b' ? !s.v.b : k == 'i' ? s.v.i == 0 : s.v.u == 0;
            if (z) return false;
        }
    }
    return true;
}

/* A cast whose results are finite for finite inputs (no overflow to inf possible). */
static bool cast_keeps_finite(mt_dtype from, mt_dtype to)
{
    if (!mt_dtype_is_float(to)) return true;
    size_t fs = mt_dtype_size(from);
    switch (to) {
    case MT_FLOAT64: return true;
    case MT_FLOAT32: return from != MT_FLOAT64;
    case MT_BFLOAT16: return from != MT_FLOAT64 && from != MT_FLOAT32;
    case MT_FLOAT16: return from == MT_FLOAT16 || from == MT_BOOL || fs == 1;
    default: return false;
    }
}

static bool known_finite_depth(const mt_graph *g, mt_var v, int depth)
{
    const mt__node *n = mt__graph_node(g, v);
    if (!n || depth > 32) return false;
    if (!mt_dtype_is_float(n->type.dtype)) return true;
    switch (n->op) {
    case MT_OP_CONST:
        return const_all(n, false);
    case MT_OP_DIMSHUFFLE: case MT_OP_RESHAPE: case MT_OP_BROADCAST_TO: case MT_OP_BROADCAST_LIKE:
    case MT_OP_SLICE: case MT_OP_STOP_GRADIENT: case MT_OP_GRAD_CLIP: case MT_OP_SHAPE_ASSERT:
        return known_finite_depth(g, n->in[0], depth + 1);
    case MT_OP_ELEMWISE:
        break;
    default:
        return false;
    }
    switch (n->attrs.sop) {
    case MT_SOP_CAST: {
        const mt_type *src = mt_graph_type(g, n->in[0]);
        return cast_keeps_finite(src->dtype, n->type.dtype) &&
               known_finite_depth(g, n->in[0], depth + 1);
    }
    /* bounded, or finite for finite operands */
    case MT_SOP_NEG: case MT_SOP_ABS: case MT_SOP_SIGN: case MT_SOP_SIGMOID: case MT_SOP_TANH:
    case MT_SOP_SIN: case MT_SOP_COS: case MT_SOP_ATAN: case MT_SOP_ERF: case MT_SOP_ERFC:
    case MT_SOP_FLOOR: case MT_SOP_CEIL: case MT_SOP_ROUND: case MT_SOP_TRUNC: case MT_SOP_RELU:
    case MT_SOP_MAX: case MT_SOP_MIN:
        for (int32_t i = 0; i < n->nin; i++)
            if (!known_finite_depth(g, n->in[i], depth + 1)) return false;
        return true;
    case MT_SOP_WHERE:
        return known_finite_depth(g, n->in[1], depth + 1) &&
               known_finite_depth(g, n->in[2], depth + 1);
    default:
        return false;
    }
}

bool mt__rw_known_finite(const mt_graph *g, mt_var v)
{
    return known_finite_depth(g, v, 0);
}

bool mt__rw_known_finite_nonzero(const mt_graph *g, mt_var v)
{
    const mt__node *n = mt__graph_node(g, v);
    for (int depth = 0; n && depth < 32; depth++) {
        switch (n->op) {
        case MT_OP_CONST:
            return const_all(n, true);
        case MT_OP_DIMSHUFFLE: case MT_OP_RESHAPE: case MT_OP_BROADCAST_TO:
        case MT_OP_BROADCAST_LIKE:
            n = mt__graph_node(g, n->in[0]);
            break;
        default:
            return false;
        }
    }
    return false;
}

/* ---------------------------------------------------------------- building */

mt_var mt__rw_ew1(mt__rw_ctx *cx, mt_sop sop, mt_var a)
{
    mt_op_attrs at;
    memset(&at, 0, sizeof(at));
    at.sop = sop;
    return mt_graph_make(cx->g, MT_OP_ELEMWISE, &at, 1, &a);
}

mt_var mt__rw_ew2(mt__rw_ctx *cx, mt_sop sop, mt_var a, mt_var b)
{
    mt_op_attrs at;
    memset(&at, 0, sizeof(at));
    at.sop = sop;
    mt_var in[2] = {a, b};
    return mt_graph_make(cx->g, MT_OP_ELEMWISE, &at, 2, in);
}

mt_var mt__rw_scalar_like(mt__rw_ctx *cx, mt_var like, double value)
{
    const mt_type *t = mt_graph_type(cx->g, like);
    if (!t) return MT_VAR_NONE;
    unsigned char buf[16] = {0};
    mt_scalar s = mt_scalar_f64(value);
    mt_scalar_store(&s, t->dtype, buf);
    mt_op_attrs a;
    memset(&a, 0, sizeof(a));
    a.dtype = t->dtype;
    a.nshape = t->ndim;
    for (int32_t i = 0; i < t->ndim; i++) a.shape[i] = 1;
    a.data = buf;
    a.nbytes = mt_dtype_size(t->dtype);
    return mt_graph_make(cx->g, MT_OP_CONST, &a, 0, NULL);
}

mt_var mt__rw_full(mt__rw_ctx *cx, mt_var v, mt_var ref, double value)
{
    mt_graph *g = cx->g;
    const mt_type *t = mt_graph_type(g, v);
    int64_t numel = mt_type_numel(t);
    if (numel == 1) return mt__rw_scalar_like(cx, v, value); /* all sizes 1 (or 0-d) */
    mt_var c = mt_graph_scalar(g, t->dtype, value);
    if (!c) return MT_VAR_NONE;
    if (numel >= 0) return mt_graph_broadcast_to(g, c, t->ndim, t->shape);
    const mt_type *r = ref ? mt_graph_type(g, ref) : NULL;
    if (!r || r->ndim != t->ndim) return MT_VAR_NONE;
    for (int32_t d = 0; d < t->ndim; d++)
        if (r->shape[d] != t->shape[d]) return MT_VAR_NONE;
    mt_var in[2] = {c, ref};
    return mt_graph_make(g, MT_OP_BROADCAST_LIKE, NULL, 2, in);
}
