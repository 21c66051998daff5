/* Gradient rules of the reductions (sum, mean, prod, max, min, logsumexp) and of the
 * neural-network ops (softmax, logsoftmax, the four crossentropy forms; the fused labels
 * gradient softmax_crossentropy_labels_dx has none and says so). The output gradient
 * is first given back the reduced axes (size 1), then broadcast against the operand by the
 * elementwise builders. Choices documented in graph_grad.h: max/min split the gradient evenly
 * between ties; prod is exact when the reduced slice holds zeros (ProdWithoutZeros); the fused
 * softmax crossentropy rules use softmax(x) - targets, which stays finite for any logits. */
#include "grad_impl.h"

static mt_var lit(mt_graph *g, double v)
{
    return mt_graph_literal_float(g, v);
}

/* prod over the axes: gz * d prod / dx, exact with zeros. With z = (x == 0), xs = where(z, 1,
 * x), p = prod(xs) and k = number of zeros in the slice:
 *   k == 0: p / xs   (= prod / x)
 *   k == 1: p where x is the zero, 0 elsewhere
 *   k >= 2: 0 */
static mt_var prod_grad(mt_graph *g, mt_var gk, mt_var x, const mt_op_attrs *a)
{
    mt_dtype dt = mt_graph_type(g, x)->dtype;
    mt_var z = mt_graph_eq(g, x, lit(g, 0.0));
    mt_var xs = mt_graph_where(g, z, lit(g, 1.0), x);
    mt_var p = mt_graph_prod(g, xs, a->naxes, a->axes, true);
    mt_var k = mt_graph_sum(g, mt_graph_cast(g, z, dt), a->naxes, a->axes, true);
    mt_var g0 = mt_graph_div(g, p, xs);
    mt_var g1 = mt_graph_where(g, z, p, lit(g, 0.0));
    mt_var d = mt_graph_where(g, mt_graph_eq(g, k, lit(g, 0.0)), g0,
                              mt_graph_where(g, mt_graph_eq(g, k, lit(g, 1.0)), g1, lit(g, 0.0)));
    return mt_graph_mul(g, gk, d);
}

/* max/min: the gradient split evenly between the elements equal to the result. */
static mt_var extremum_grad(mt_graph *g, mt_var gk, mt_var x, mt_var y, const mt_op_attrs *a)
{
    const mt_type *xt = mt_graph_type(g, x);
    mt_var yk = mt__grad_keepdims(g, y, xt->ndim, a->naxes, a->axes, a->keepdims);
    mt_var mask = mt_graph_cast(g, mt_graph_eq(g, x, yk), xt->dtype);
    mt_var cnt = mt_graph_sum(g, mask, a->naxes, a->axes, true);
    return mt_graph_mul(g, gk, mt_graph_div(g, mask, cnt));
}

mt_status mt__grad_reduce(mt__grad_cx *cx)
{
    mt_graph *g = cx->g;
    const mt__node *n = cx->n;
    const mt_op_attrs *a = &n->attrs;
    mt_var x = n->in[0];
    const mt_type *xt = mt_graph_type(g, x);
    mt_var gk = mt__grad_keepdims(g, cx->gz, xt->ndim, a->naxes, a->axes, a->keepdims);
    switch (a->reduce) {
    case MT_REDUCE_SUM:
        cx->out[0] = mt_graph_broadcast_like(g, gk, x);
        break;
    case MT_REDUCE_MEAN: {
        mt_var cnt = mt_graph_cast(g, mt_graph_size_of(g, x, a->naxes, a->axes), n->type.dtype);
        cx->out[0] = mt_graph_broadcast_like(g, mt_graph_div(g, gk, cnt), x);
        break;
    }
    case MT_REDUCE_PROD:
        cx->out[0] = prod_grad(g, gk, x, a);
        break;
    case MT_REDUCE_MAX:
    case MT_REDUCE_MIN:
        cx->out[0] = extremum_grad(g, gk, x, cx->v, a);
        break;
    default:
        return mt_err_set(MT_ERR_UNSUPPORTED, "no gradient rule for reduction '%s'",
                          mt__reduce_text(a->reduce));
    }
    return MT_OK;
}

/* logsumexp: gz * exp(x - logsumexp(x)), an exact softmax over the axes (x - lse <= 0). */
mt_status mt__grad_logsumexp(mt__grad_cx *cx)
{
    mt_graph *g = cx->g;
    const mt_op_attrs *a = &cx->n->attrs;
    mt_var x = cx->n->in[0];
    int32_t nd = mt_graph_type(g, x)->ndim;
    mt_var gk = mt__grad_keepdims(g, cx->gz, nd, a->naxes, a->axes, a->keepdims);
    mt_var lk = mt__grad_keepdims(g, cx->v, nd, a->naxes, a->axes, a->keepdims);
    cx->out[0] = mt_graph_mul(g, gk, mt_graph_exp(g, mt_graph_sub(g, x, lk)));
    return MT_OK;
}

/* softmax: y * (gz - sum(gz * y)); logsoftmax: gz - exp(y) * sum(gz), along the axis. */
mt_status mt__grad_softmax(mt__grad_cx *cx)
{
    mt_graph *g = cx->g;
    int32_t axis = cx->n->attrs.axes[0];
    mt_var y = cx->v, gz = cx->gz;
    if (cx->n->op == MT_OP_SOFTMAX) {
        mt_var s = mt_graph_sum(g, mt_graph_mul(g, gz, y), 1, &axis, true);
        cx->out[0] = mt_graph_mul(g, y, mt_graph_sub(g, gz, s));
    } else {
        mt_var s = mt_graph_sum(g, gz, 1, &axis, true);
        cx->out[0] = mt_graph_sub(g, gz, mt_graph_mul(g, mt_graph_exp(g, y), s));
    }
    return MT_OK;
}

/* one_hot(labels) with the class axis moved to `axis` (labels have the other axes of p). */
static mt_var onehot_at(mt_graph *g, mt_var labels, mt_var p, int32_t axis, mt_dtype dt,
                        mt_status *st)
{
    const mt_type *pt = mt_graph_type(g, p);
    int64_t depth = pt->shape[axis];
    if (depth < 0) {
        char b[128];
        *st = mt_err_set(MT_ERR_UNSUPPORTED, "the gradient of a crossentropy with labels needs a "
                         "static number of classes (axis %d of %s)", (int)axis,
                         mt__shape_str(pt->ndim, pt->shape, b, sizeof(b)));
        return MT_VAR_NONE;
    }
    int32_t nd = pt->ndim, perm[MT_MAX_DIMS];
    for (int32_t i = 0; i < nd; i++) perm[i] = i < axis ? i : i == axis ? nd - 1 : i - 1;
    return mt_graph_dimshuffle(g, mt_graph_one_hot(g, labels, depth, dt), nd, perm);
}

mt_status mt__grad_xent(mt__grad_cx *cx)
{
    mt_graph *g = cx->g;
    const mt__node *n = cx->n;
    if (n->op == MT_OP_SOFTMAX_XENT_LABELS_DX) /* only rewrites build it, after autodiff ran */
        return mt_err_set(MT_ERR_UNSUPPORTED, "%s has no gradient: it is formed by a rewrite "
                          "(xent_softmax_dx) from a gradient graph; take gradients of the graph "
                          "before rewriting it", mt_op_name(n->op));
    int32_t axis = n->attrs.axes[0];
    mt_var p = n->in[0], t = n->in[1];
    mt_dtype dt = mt_graph_type(g, p)->dtype;
    mt_var gk = mt_graph_expand_dims(g, cx->gz, axis);
    mt_status st = MT_OK;
    switch (n->op) {
    case MT_OP_XENT: /* -sum(t * log p) */
        if (cx->need[0]) cx->out[0] = mt_graph_neg(g, mt_graph_mul(g, gk, mt_graph_div(g, t, p)));
        if (cx->need[1]) cx->out[1] = mt_graph_neg(g, mt_graph_mul(g, gk, mt_graph_log(g, p)));
        break;
    case MT_OP_XENT_LABELS: { /* -log p[label]: -gz / p at the label, 0 elsewhere */
        mt_var hot = onehot_at(g, t, p, axis, MT_BOOL, &st);
        if (st) return st;
        /* p replaced by 1 off the labels, so a zero probability there gives no 0/0 (also
         * in the second derivative) */
        mt_var ps = mt_graph_where(g, hot, p, lit(g, 1.0));
        cx->out[0] = mt_graph_where(g, hot, mt_graph_neg(g, mt_graph_div(g, gk, ps)),
                                    lit(g, 0.0));
        break;
    }
    case MT_OP_SOFTMAX_XENT: { /* -sum(t * logsoftmax(x)) */
        if (cx->need[0]) {
            mt_var sm = mt_graph_softmax(g, p, axis);
            mt_var ts = mt_graph_sum(g, t, 1, &axis, true);
            cx->out[0] = mt_graph_mul(g, gk, mt_graph_sub(g, mt_graph_mul(g, sm, ts), t));
        }
        if (cx->need[1])
            cx->out[1] = mt_graph_neg(g, mt_graph_mul(g, gk, mt_graph_logsoftmax(g, p, axis)));
        break;
    }
    case MT_OP_SOFTMAX_XENT_LABELS: { /* softmax(x) - onehot(labels) */
        mt_var hot = onehot_at(g, t, p, axis, dt, &st);
        if (st) return st;
        cx->out[0] = mt_graph_mul(g, gk, mt_graph_sub(g, mt_graph_softmax(g, p, axis), hot));
        break;
    }
    default:
        return mt_err_set(MT_ERR_INTERNAL, "crossentropy gradient called for %s",
                          mt_op_name(n->op));
    }
    return MT_OK;
}
