/* Gradient rules of the products (matmul, gemm), the shape ops and views (reshape,
 * dimshuffle, broadcast, concatenate, slicing), the indexing ops (set/inc_subtensor, gather,
 * scatter_add) and the gradient hooks (grad_clip, shape_assert). Views route the gradient back
 * to the operand's layout: slicing pads with inc_subtensor into zeros, gather scatters with
 * scatter_add, concatenate slices the gradient. Broadcast batch dimensions of products are
 * summed by the engine (mt__grad_fit). */
#include "grad_impl.h"

/* x with its last two axes swapped. */
static mt_var swap_last(mt_graph *g, mt_var x)
{
    int32_t nd = mt_graph_type(g, x)->ndim, perm[MT_MAX_DIMS];
    for (int32_t i = 0; i < nd; i++) perm[i] = i;
    perm[nd - 2] = nd - 1;
    perm[nd - 1] = nd - 2;
    return mt_graph_dimshuffle(g, x, nd, perm);
}

/* db = a^T @ gz summed over the batch when b is one matrix broadcast to a's batch (a stack
 * [B..., n, k] @ W [1..., k, m], as x @ W with a 3-D x): one product of the stacked rows,
 * [B*n, k]^T @ [B*n, m], reshaped to b's shape, instead of a batch of products then a sum.
 * MT_VAR_NONE when the shapes do not allow it (b not static, a's k or gz's m unknown). */
static mt_var shared_weight_grad(mt_graph *g, mt_var a, mt_var b, mt_var gz)
{
    const mt_type *ta = mt_graph_type(g, a), *tb = mt_graph_type(g, b), *tz = mt_graph_type(g, gz);
    int32_t nd = tb->ndim;
    if (nd < 3 || !mt_type_is_static(tb) || ta->shape[nd - 1] < 0 || tz->shape[nd - 1] < 0)
        return MT_VAR_NONE;
    for (int32_t i = 0; i < nd - 2; i++)
        if (tb->shape[i] != 1) return MT_VAR_NONE;
    int64_t ra[2] = {MT_RESHAPE_INFER, ta->shape[nd - 1]}, rz[2] = {MT_RESHAPE_INFER,
                                                                 tz->shape[nd - 1]};
    mt_var d = mt_graph_matmul(g, swap_last(g, mt_graph_reshape(g, a, 2, ra)),
                               mt_graph_reshape(g, gz, 2, rz));
    return mt_graph_reshape(g, d, nd, tb->shape);
}

/* matmul: da = gz @ b^T, db = a^T @ gz. gemm (alpha * op(a) @ op(b) + beta * c):
 * d op(a) = alpha * gz @ op(b)^T, d op(b) = alpha * op(a)^T @ gz, dc = beta * gz, with the
 * transposes undone for operands stored transposed. */
mt_status mt__grad_matmul(mt__grad_cx *cx)
{
    mt_graph *g = cx->g;
    const mt__node *n = cx->n;
    mt_var a = n->in[0], b = n->in[1], gz = cx->gz;
    bool gemm = n->op == MT_OP_GEMM;
    bool ta = gemm && n->attrs.trans_a, tb = gemm && n->attrs.trans_b;
    double alpha = gemm ? n->attrs.alpha : 1.0, beta = gemm ? n->attrs.beta : 0.0;
    if (cx->need[0]) {
        if (alpha == 0.0) {
            cx->out[0] = MT__GRAD_ZERO;
        } else {
            mt_var opbt = tb ? b : swap_last(g, b);
            mt_var d = mt__grad_scale(g, mt_graph_matmul(g, gz, opbt), alpha);
            cx->out[0] = ta ? swap_last(g, d) : d;
        }
    }
    if (cx->need[1]) {
        if (alpha == 0.0) {
            cx->out[1] = MT__GRAD_ZERO;
        } else {
            mt_var shared = ta || tb ? MT_VAR_NONE : shared_weight_grad(g, a, b, gz);
            mt_var opat = ta ? a : swap_last(g, a);
            mt_var d = mt__grad_scale(g, shared ? shared : mt_graph_matmul(g, opat, gz), alpha);
            cx->out[1] = tb ? swap_last(g, d) : d;
        }
    }
    if (gemm && cx->need[2]) cx->out[2] = beta == 0.0 ? MT__GRAD_ZERO : mt__grad_scale(g, gz, beta);
    return MT_OK;
}

/* reshape back to the operand's shape: static sizes, KEEP where the forward spec kept the
 * axis (so the size is the gradient's own), and at most one inferred (-1) size. */
mt_status mt__grad_reshape(mt__grad_cx *cx)
{
    mt_graph *g = cx->g;
    const mt_op_attrs *a = &cx->n->attrs;
    const mt_type *xt = mt_graph_type(g, cx->n->in[0]);
    int64_t spec[MT_MAX_DIMS];
    int32_t ninfer = 0;
    for (int32_t i = 0; i < xt->ndim; i++) {
        if (xt->shape[i] >= 0) {
            spec[i] = xt->shape[i];
        } else if (i < a->nshape && a->shape[i] == MT_RESHAPE_KEEP) {
            spec[i] = MT_RESHAPE_KEEP;
        } else {
            spec[i] = MT_RESHAPE_INFER;
            ninfer++;
        }
    }
    if (ninfer > 1) {
        char b[128];
        return mt_err_set(MT_ERR_UNSUPPORTED, "the gradient of a reshape from %s cannot be "
                          "expressed: more than one unknown size that the reshape does not keep "
                          "(give static sizes or use shape_assert)",
                          mt__shape_str(xt->ndim, xt->shape, b, sizeof(b)));
    }
    cx->out[0] = mt_graph_reshape(g, cx->gz, xt->ndim, spec);
    return MT_OK;
}

/* the inverse pattern: operand axis j comes from output axis i with perm[i] == j; dropped
 * (size-1) operand axes come back as new axes; the output's new axes are dropped. */
mt_status mt__grad_dimshuffle(mt__grad_cx *cx)
{
    const mt_op_attrs *a = &cx->n->attrs;
    int32_t nd = mt_graph_type(cx->g, cx->n->in[0])->ndim, q[MT_MAX_DIMS];
    for (int32_t j = 0; j < nd; j++) q[j] = -1;
    for (int32_t i = 0; i < a->nperm; i++)
        if (a->perm[i] >= 0) q[a->perm[i]] = i;
    cx->out[0] = mt_graph_dimshuffle(cx->g, cx->gz, nd, q);
    return MT_OK;
}

/* broadcast_to / broadcast_like: the engine sums over the broadcast axes. */
mt_status mt__grad_broadcast(mt__grad_cx *cx)
{
    cx->out[0] = cx->gz;
    return MT_OK;
}

/* concatenate: operand k gets its slice of the gradient along the axis, addressed from the
 * start when the sizes before it are static and from the end when those after it are. */
mt_status mt__grad_concat(mt__grad_cx *cx)
{
    mt_graph *g = cx->g;
    const mt__node *n = cx->n;
    int32_t axis = n->attrs.axes[0];
    for (int32_t k = 0; k < n->nin; k++) {
        if (!cx->need[k]) continue;
        int64_t size = mt_graph_type(g, n->in[k])->shape[axis], before = 0, after = 0;
        bool bk = true, ak = true;
        for (int32_t j = 0; j < n->nin; j++) {
            int64_t s = mt_graph_type(g, n->in[j])->shape[axis];
            if (j == k) continue;
            if (s < 0) {
                if (j < k) bk = false; else ak = false;
            } else if (j < k) {
                before += s;
            } else {
                after += s;
            }
        }
        int64_t start, stop = after > 0 ? -after : MT_IDX_NONE;
        if (size == 0) {
            cx->out[k] = MT__GRAD_ZERO;
            continue;
        }
        if (bk && size >= 0) {
            start = before;
            stop = before + size;
        } else if (bk && ak) {
            start = before;
        } else if (ak && size > 0) {
            start = -(after + size);
        } else {
            char b[128];
            const mt_type *t = &n->type;
            return mt_err_set(MT_ERR_UNSUPPORTED, "the gradient of concatenate into %s cannot "
                              "locate operand %d: more than one operand has an unknown size "
                              "along axis %d", mt__shape_str(t->ndim, t->shape, b, sizeof(b)),
                              (int)k, (int)axis);
        }
        cx->out[k] = mt_graph_slice_axis(g, cx->gz, axis, start, stop, 1);
    }
    return MT_OK;
}

/* slice: the gradient padded with zeros (inc_subtensor into zeros); set_subtensor: the region
 * zeroed for x, the region for y; inc_subtensor: all of it for x, the region for y. */
mt_status mt__grad_slice(mt__grad_cx *cx)
{
    mt_graph *g = cx->g;
    const mt__node *n = cx->n;
    const mt_op_attrs *a = &n->attrs;
    mt_var gz = cx->gz, x = n->in[0];
    switch (n->op) {
    case MT_OP_SLICE:
        cx->out[0] = mt_graph_inc_subtensor(g, mt_graph_zeros_like(g, x), a->nidx, a->idx, gz);
        break;
    case MT_OP_SET_SUBTENSOR:
        if (cx->need[0])
            cx->out[0] = mt_graph_set_subtensor(g, gz, a->nidx, a->idx,
                                                mt_graph_literal_float(g, 0.0));
        if (cx->need[1]) cx->out[1] = mt_graph_index(g, gz, a->nidx, a->idx);
        break;
    default: /* INC_SUBTENSOR */
        if (cx->need[0]) cx->out[0] = gz;
        if (cx->need[1]) cx->out[1] = mt_graph_index(g, gz, a->nidx, a->idx);
        break;
    }
    return MT_OK;
}

/* gather: scatter_add of the gradient into zeros (duplicates accumulate); scatter_add: all of
 * it for x, the gathered values for y. The indices get nothing (undefined, see grad.c). */
mt_status mt__grad_gather(mt__grad_cx *cx)
{
    mt_graph *g = cx->g;
    const mt__node *n = cx->n;
    int32_t axis = n->attrs.axes[0];
    mt_var x = n->in[0], idx = n->in[1], gz = cx->gz;
    if (n->op == MT_OP_GATHER) {
        cx->out[0] = mt_graph_scatter_add(g, mt_graph_zeros_like(g, x), idx, gz, axis);
        return MT_OK;
    }
    if (cx->need[0]) cx->out[0] = gz;
    if (cx->need[2]) cx->out[2] = mt_graph_gather(g, gz, idx, axis);
    return MT_OK;
}

/* grad_clip: the gradient clipped to [p0, p1]; shape_assert: identity. */
mt_status mt__grad_identity(mt__grad_cx *cx)
{
    mt_graph *g = cx->g;
    const mt__node *n = cx->n;
    if (n->op == MT_OP_GRAD_CLIP)
        cx->out[0] = mt_graph_clip(g, cx->gz, mt_graph_literal_float(g, n->attrs.p0),
                                   mt_graph_literal_float(g, n->attrs.p1));
    else
        cx->out[0] = cx->gz;
    return MT_OK;
}
