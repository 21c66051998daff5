/* Neural-network ops kept first-class so their kernels and gradients can be the stable ones:
 * softmax and logsoftmax along one axis, and categorical crossentropy in four forms (with
 * target probabilities or integer labels, of probabilities or fused with the softmax of
 * logits). The stability rewrites map patterns such as log(softmax(x)) or
 * crossentropy(softmax(x), y) into these. Sigmoid crossentropy with logits is a composite of
 * elementwise nodes (softplus(x) - x*t) so that it fuses with its neighbours. */
#include <string.h>

#include "graph_impl.h"

static mt_status axis_check(const char *name, const mt_op_attrs *a, int32_t ndim)
{
    if (a->naxes != 1 || a->axes[0] < 0 || a->axes[0] >= ndim)
        return mt_err_set(MT_ERR_INVALID, "%s: axis %d is out of range for %d dimensions", name,
                          (int)(a->naxes == 1 ? a->axes[0] : -1), (int)ndim);
    return MT_OK;
}

mt_status mt__infer_softmax(mt__infer_ctx *cx)
{
    const mt_type *x = cx->in[0];
    if (!mt_dtype_is_float(x->dtype))
        return mt_err_set(MT_ERR_DTYPE, "%s: needs a float operand, got %s", cx->opname,
                          mt_dtype_name(x->dtype));
    mt_status st = axis_check(cx->opname, cx->attrs, x->ndim);
    if (st) return st;
    cx->out = mt_type_make(x->dtype, x->ndim, x->shape);
    return MT_OK;
}

mt_status mt__infer_xent(mt__infer_ctx *cx)
{
    const mt_type *p = cx->in[0], *t = cx->in[1];
    const char *name = cx->opname;
    bool labels = cx->op == MT_OP_XENT_LABELS || cx->op == MT_OP_SOFTMAX_XENT_LABELS;
    if (!mt_dtype_is_float(p->dtype))
        return mt_err_set(MT_ERR_DTYPE, "%s: needs float %s, got %s", name,
                          cx->op == MT_OP_XENT || cx->op == MT_OP_XENT_LABELS ? "probabilities"
                                                                              : "logits",
                          mt_dtype_name(p->dtype));
    mt_status st = axis_check(name, cx->attrs, p->ndim);
    if (st) return st;
    int32_t axis = cx->attrs->axes[0];
    char ps[128], ts[128];
    mt__shape_str(p->ndim, p->shape, ps, sizeof(ps));
    mt__shape_str(t->ndim, t->shape, ts, sizeof(ts));
    /* the reduced shape, merged with the targets' shape */
    mt_type out = mt_type_make(p->dtype, 0, NULL);
    for (int32_t i = 0; i < p->ndim; i++)
        if (i != axis) out.shape[out.ndim++] = p->shape[i];
    if (labels) {
        char k = mt_dtype_kind(t->dtype);
        if (k != 'i' && k != 'u')
            return mt_err_set(MT_ERR_DTYPE, "%s: labels must be integers, got %s", name,
                              mt_dtype_name(t->dtype));
        if (t->ndim != out.ndim)
            return mt_err_set(MT_ERR_SHAPE, "%s: labels of shape %s do not match %s without "
                              "axis %d", name, ts, ps, (int)axis);
        for (int32_t i = 0; i < out.ndim; i++) {
            int64_t s = t->shape[i];
            if (s == out.shape[i]) continue;
            if (s >= 0 && out.shape[i] >= 0)
                return mt_err_set(MT_ERR_SHAPE, "%s: labels of shape %s do not match %s without "
                                  "axis %d", name, ts, ps, (int)axis);
            cx->rtcheck = true;
            if (out.shape[i] < 0) out.shape[i] = s;
        }
    } else {
        if (t->dtype != p->dtype)
            return mt_err_set(MT_ERR_DTYPE, "%s: targets dtype %s differs from %s", name,
                              mt_dtype_name(t->dtype), mt_dtype_name(p->dtype));
        if (t->ndim != p->ndim)
            return mt_err_set(MT_ERR_SHAPE, "%s: shapes %s and %s differ", name, ps, ts);
        for (int32_t i = 0, k = 0; i < p->ndim; i++) {
            int64_t s = t->shape[i], q = p->shape[i];
            if (s >= 0 && q >= 0 && s != q)
                return mt_err_set(MT_ERR_SHAPE, "%s: shapes %s and %s differ", name, ps, ts);
            if (s != q) cx->rtcheck = true;
            if (i == axis) continue;
            if (out.shape[k] < 0) out.shape[k] = s;
            k++;
        }
    }
    cx->out = out;
    return MT_OK;
}

static mt_var softmax_like(mt_graph *g, mt_op op, mt_var x, int32_t axis)
{
    const char *name = mt_op_name(op);
    if (!mt__check_vars(g, name, 1, &x)) return MT_VAR_NONE;
    const mt_type *t = mt_graph_type(g, x);
    mt_op_attrs a;
    memset(&a, 0, sizeof(a));
    a.naxes = 1;
    if (!mt__norm_axis(g, name, axis, t->ndim, &a.axes[0])) return MT_VAR_NONE;
    x = mt__cast(g, x, mt__float_dtype(t->dtype));
    if (!x) return MT_VAR_NONE;
    return mt__create(g, op, &a, 1, &x);
}

mt_var mt_graph_softmax(mt_graph *g, mt_var x, int32_t axis)
{
    return softmax_like(g, MT_OP_SOFTMAX, x, axis);
}

mt_var mt_graph_logsoftmax(mt_graph *g, mt_var x, int32_t axis)
{
    return softmax_like(g, MT_OP_LOGSOFTMAX, x, axis);
}

static mt_var xent(mt_graph *g, mt_op op, mt_var p, mt_var t, int32_t axis)
{
    const char *name = mt_op_name(op);
    mt_var in[2] = {p, t};
    if (!mt__check_vars(g, name, 2, in)) return MT_VAR_NONE;
    const mt_type *pt = mt_graph_type(g, p), *tt = mt_graph_type(g, t);
    mt_op_attrs a;
    memset(&a, 0, sizeof(a));
    a.naxes = 1;
    if (!mt__norm_axis(g, name, axis, pt->ndim, &a.axes[0])) return MT_VAR_NONE;
    if (op == MT_OP_XENT_LABELS || op == MT_OP_SOFTMAX_XENT_LABELS) {
        char k = mt_dtype_kind(tt->dtype);
        if (k != 'i' && k != 'u')
            return mt__fail(g, MT_ERR_DTYPE, "%s: labels must be integers, got %s", name,
                            mt_dtype_name(tt->dtype));
        in[0] = mt__cast(g, p, mt__float_dtype(pt->dtype));
        in[1] = mt__cast(g, t, tt->dtype);
    } else {
        mt_dtype dt = mt__float_dtype(mt_dtype_promote(pt->dtype, tt->dtype));
        in[0] = mt__cast(g, p, dt);
        in[1] = mt__cast(g, t, dt);
    }
    if (!in[0] || !in[1]) return MT_VAR_NONE;
    return mt__create(g, op, &a, 2, in);
}

mt_var mt_graph_crossentropy(mt_graph *g, mt_var probs, mt_var targets, int32_t axis)
{
    return xent(g, MT_OP_XENT, probs, targets, axis);
}

mt_var mt_graph_crossentropy_labels(mt_graph *g, mt_var probs, mt_var labels, int32_t axis)
{
    return xent(g, MT_OP_XENT_LABELS, probs, labels, axis);
}

mt_var mt_graph_softmax_crossentropy(mt_graph *g, mt_var logits, mt_var targets, int32_t axis)
{
    return xent(g, MT_OP_SOFTMAX_XENT, logits, targets, axis);
}

mt_var mt_graph_softmax_crossentropy_labels(mt_graph *g, mt_var logits, mt_var labels,
                                            int32_t axis)
{
    return xent(g, MT_OP_SOFTMAX_XENT_LABELS, logits, labels, axis);
}

mt_var mt_graph_sigmoid_crossentropy_logits(mt_graph *g, mt_var logits, mt_var targets)
{
    return mt_graph_sub(g, mt_graph_softplus(g, logits), mt_graph_mul(g, logits, targets));
}
