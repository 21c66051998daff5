/* Neural-network ops kept first-class so their kernels and gradients can be the stable ones:
 * softmax and logsoftmax along one axis, and categorical crossentropy in four forms (with
 * target probabilities or integer labels, of probabilities or fused with the softmax of
 * logits). The stability rewrites map patterns such as log(softmax(x)) or
 * crossentropy(softmax(x), y) into these. Sigmoid crossentropy with logits is a composite of
 * elementwise nodes (softplus(x) - x*t) so that it fuses with its neighbours. The gradient of
 * the labels form w.r.t. the logits, gz * (softmax(x) - onehot(y)), has a fused op of its own
 * (softmax_crossentropy_labels_dx, formed by the rewrite xent_softmax_dx) so that it runs as one
 * pass over the rows instead of a one_hot, a softmax and an elementwise kernel. */
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

/* softmax_crossentropy_labels_dx(gz, x, labels): x's type. gz: x's float dtype and x's shape
 * without the axis, where a static size 1 broadcasts (as in elementwise ops, an unknown size
 * never does); labels: integers of x's shape without the axis. Sizes only known at run time
 * are checked then (rtcheck). */
static mt_status infer_xent_dx(mt__infer_ctx *cx)
{
    const mt_type *gz = cx->in[0], *x = cx->in[1], *lb = cx->in[2];
    const char *name = cx->opname;
    if (!mt_dtype_is_float(x->dtype))
        return mt_err_set(MT_ERR_DTYPE, "%s: needs float logits, got %s", name,
                          mt_dtype_name(x->dtype));
    if (gz->dtype != x->dtype)
        return mt_err_set(MT_ERR_DTYPE, "%s: the output gradient's dtype %s differs from the "
                          "logits' %s", name, mt_dtype_name(gz->dtype), mt_dtype_name(x->dtype));
    char k = mt_dtype_kind(lb->dtype);
    if (k != 'i' && k != 'u')
        return mt_err_set(MT_ERR_DTYPE, "%s: labels must be integers, got %s", name,
                          mt_dtype_name(lb->dtype));
    mt_status st = axis_check(name, cx->attrs, x->ndim);
    if (st) return st;
    int32_t axis = cx->attrs->axes[0];
    /* shapes as text only for an error: this runs on every call when the batch size is known
     * only at run time */
    char xs[128], os[128];
#define DX_SHAPES(t)                                                                               \
    (mt__shape_str(x->ndim, x->shape, xs, sizeof(xs)),                                             \
     mt__shape_str((t)->ndim, (t)->shape, os, sizeof(os)))
    mt_type out = mt_type_make(x->dtype, x->ndim, x->shape);
    const mt_type *ops[2] = {gz, lb};
    for (int32_t o = 0; o < 2; o++) {
        const mt_type *t = ops[o];
        const char *what = o == 0 ? "output gradient" : "labels";
        if (t->ndim != x->ndim - 1)
            return DX_SHAPES(t), mt_err_set(MT_ERR_SHAPE,
                                            "%s: %s of shape %s do not match %s "
                                            "without axis %d",
                                            name, what, os, xs, (int)axis);
        for (int32_t i = 0, d = 0; i < t->ndim; i++, d++) {
            if (d == axis) d++;
            int64_t s = t->shape[i], q = out.shape[d];
            if (o == 0 && s < 0) cx->rtcheck = true; /* no late broadcast of gz (rewrite.c) */
            if (s == q || (o == 0 && s == 1)) continue; /* a size-1 gz dimension broadcasts */
            if (s >= 0 && q >= 0)
                return DX_SHAPES(t), mt_err_set(MT_ERR_SHAPE,
                                                "%s: %s of shape %s do not match "
                                                "%s without axis %d",
                                                name, what, os, xs, (int)axis);
            cx->rtcheck = true;
            if (q < 0 && s >= 0 && (o == 1 || s != 1)) out.shape[d] = s;
        }
    }
    cx->out = out;
    return MT_OK;
#undef DX_SHAPES
}

mt_status mt__infer_xent(mt__infer_ctx *cx)
{
    if (cx->op == MT_OP_SOFTMAX_XENT_LABELS_DX) return infer_xent_dx(cx);
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
    char ps[128], ts[128]; /* shapes as text, formatted only for an error (per call otherwise) */
#define XENT_SHAPES()                                                                              \
    (mt__shape_str(p->ndim, p->shape, ps, sizeof(ps)),                                             \
     mt__shape_str(t->ndim, t->shape, ts, sizeof(ts)))
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
            return XENT_SHAPES(), mt_err_set(MT_ERR_SHAPE,
                                             "%s: labels of shape %s do not match %s "
                                             "without axis %d",
                                             name, ts, ps, (int)axis);
        for (int32_t i = 0; i < out.ndim; i++) {
            int64_t s = t->shape[i];
            if (s == out.shape[i]) continue;
            if (s >= 0 && out.shape[i] >= 0)
                return XENT_SHAPES(), mt_err_set(MT_ERR_SHAPE,
                                                 "%s: labels of shape %s do not match "
                                                 "%s without axis %d",
                                                 name, ts, ps, (int)axis);
            cx->rtcheck = true;
            if (out.shape[i] < 0) out.shape[i] = s;
        }
    } else {
        if (t->dtype != p->dtype)
            return mt_err_set(MT_ERR_DTYPE, "%s: targets dtype %s differs from %s", name,
                              mt_dtype_name(t->dtype), mt_dtype_name(p->dtype));
        if (t->ndim != p->ndim)
            return XENT_SHAPES(),
                   mt_err_set(MT_ERR_SHAPE, "%s: shapes %s and %s differ", name, ps, ts);
        for (int32_t i = 0, k = 0; i < p->ndim; i++) {
            int64_t s = t->shape[i], q = p->shape[i];
            if (s >= 0 && q >= 0 && s != q)
                return XENT_SHAPES(),
                       mt_err_set(MT_ERR_SHAPE, "%s: shapes %s and %s differ", name, ps, ts);
            if (s != q) cx->rtcheck = true;
            if (i == axis) continue;
            if (out.shape[k] < 0) out.shape[k] = s;
            k++;
        }
    }
    cx->out = out;
    return MT_OK;
#undef XENT_SHAPES
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

mt_var mt_graph_softmax_crossentropy_labels_dx(mt_graph *g, mt_var gz, mt_var logits,
                                               mt_var labels, int32_t axis)
{
    const char *name = mt_op_name(MT_OP_SOFTMAX_XENT_LABELS_DX);
    mt_var in[3] = {gz, logits, labels};
    if (!mt__check_vars(g, name, 3, in)) return MT_VAR_NONE;
    const mt_type *xt = mt_graph_type(g, logits), *lt = mt_graph_type(g, labels);
    mt_op_attrs a;
    memset(&a, 0, sizeof(a));
    a.naxes = 1;
    if (!mt__norm_axis(g, name, axis, xt->ndim, &a.axes[0])) return MT_VAR_NONE;
    char k = mt_dtype_kind(lt->dtype);
    if (k != 'i' && k != 'u')
        return mt__fail(g, MT_ERR_DTYPE, "%s: labels must be integers, got %s", name,
                        mt_dtype_name(lt->dtype));
    mt_dtype dt = mt__float_dtype(xt->dtype);
    in[0] = mt__cast(g, gz, dt);
    in[1] = mt__cast(g, logits, dt);
    if (!in[0] || !in[1]) return MT_VAR_NONE;
    return mt__create(g, MT_OP_SOFTMAX_XENT_LABELS_DX, &a, 3, in);
}

mt_var mt_graph_sigmoid_crossentropy_logits(mt_graph *g, mt_var logits, mt_var targets)
{
    return mt_graph_sub(g, mt_graph_softplus(g, logits), mt_graph_mul(g, logits, targets));
}
