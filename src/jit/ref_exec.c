/* The reference executor's per-node dispatch: runs one graph node on concrete operand arrays
 * through gpuarray's generic operations (mt_elemwise with a one-node expression, reductions,
 * GEMM/matmul, views), with no code generation of its own. It is the semantics the fused path
 * is checked against, so it favours clarity over speed: every node allocates its result, views
 * never copy, and no operand is ever written (results that must start from an operand's
 * contents, like set_subtensor, copy it first).
 *
 * Around every node it verifies what the graph promised: MT_NODE_RTCHECK nodes re-run shape
 * inference on the concrete shapes (mt_graph_eval_shape) before running, and every result is
 * checked against the node's static type (dtype, ndim, known sizes), so a disagreement between
 * graph inference and gpuarray shows up as an ERR_INTERNAL naming the node instead of a wrong
 * value downstream. The softmax family lives in ref_nnet.c, indexing ops in ref_index.c. */
#include <string.h>

#include "jit_impl.h"

/* ---------------------------------------------------------------- errors */

mt_status mt__node_error(const mt_graph *g, mt_var v, mt_status st)
{
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    mt_graph_format_provenance(g, v, &sb);
    const char *prov = sb.len > 0 && !sb.failed ? sb.data : NULL;
    const char *label = mt_graph_op_label(g, v);
    if (!label) label = "node";
    if (prov && !strstr(mt_last_error(), prov))
        st = mt_err_prefix(st, "%s (node v%d, %s): ", label, (int)v, prov);
    else
        st = mt_err_prefix(st, "%s (node v%d): ", label, (int)v);
    mt_strbuf_deinit(&sb);
    return st;
}

uint64_t mt__random_key(uint64_t seed, uint64_t stream)
{
    return mt_hash64_combine(seed, stream);
}

static const char *shape_text(int32_t nd, const int64_t *dims, char *buf, size_t len)
{
    return mt_shape_str(nd, dims, buf, len);
}

/* ---------------------------------------------------------------- elementwise */

static bool sop_bool_result(mt_sop op)
{
    switch (op) {
    case MT_SOP_ISNAN: case MT_SOP_ISINF: case MT_SOP_ISFINITE: case MT_SOP_NOT:
    case MT_SOP_EQ: case MT_SOP_NE: case MT_SOP_LT: case MT_SOP_LE: case MT_SOP_GT:
    case MT_SOP_GE: case MT_SOP_AND: case MT_SOP_OR: case MT_SOP_XOR:
        return true;
    default:
        return false;
    }
}

int32_t mt__kexpr_emit_node(const mt_graph *g, mt_var v, mt_kexpr *e, const int32_t *ops)
{
    const mt_op_attrs *at = mt_graph_attrs(g, v);
    const mt_type *t = mt_graph_type(g, v);
    int32_t nin = mt_graph_ninputs(g, v);
    mt_sop sop = at->sop;
    mt_dtype dt = t->dtype;
    if (sop == MT_SOP_CAST) return mt_kexpr_cast(e, ops[0], dt);
    int32_t a[3] = {-1, -1, -1};
    for (int32_t i = 0; i < nin && i < 3; i++) a[i] = ops[i];
    /* NumPy computes a float function of an integer operand in the float dtype (the node's
     * dtype): cast the operands unless the op gives bool or is a where's condition. */
    if (!sop_bool_result(sop)) {
        for (int32_t i = (sop == MT_SOP_WHERE ? 1 : 0); i < nin && i < 3; i++)
            if (a[i] >= 0 && e->nodes[a[i]].dtype != dt) a[i] = mt_kexpr_cast(e, a[i], dt);
    }
    int32_t r;
    if (sop == MT_SOP_WHERE) {
        if (a[0] >= 0 && e->nodes[a[0]].dtype != MT_BOOL) a[0] = mt_kexpr_cast(e, a[0], MT_BOOL);
        r = mt_kexpr_where(e, a[0], a[1], a[2]);
    } else if (nin == 1) {
        r = mt_kexpr_unary(e, sop, a[0]);
    } else if (nin == 2) {
        r = mt_kexpr_binary(e, sop, a[0], a[1]);
    } else {
        mt_err_set(MT_ERR_INTERNAL, "elemwise %s with %d operands", mt_sop_name(sop), (int)nin);
        return -1;
    }
    if (r >= 0 && e->nodes[r].dtype != dt) r = mt_kexpr_cast(e, r, dt);
    return r;
}

mt_status mt__ref_elemwise_kexpr(const mt_graph *g, mt_var v, mt_kexpr *e)
{
    mt_kexpr_init(e);
    int32_t nin = mt_graph_ninputs(g, v);
    int32_t ops[3] = {-1, -1, -1};
    if (nin < 1 || nin > 3)
        return mt_err_set(MT_ERR_INTERNAL, "elemwise node v%d has %d operands", (int)v, (int)nin);
    for (int32_t i = 0; i < nin; i++)
        ops[i] = mt_kexpr_input(e, i, mt_graph_type(g, mt_graph_input(g, v, i))->dtype);
    int32_t r = mt__kexpr_emit_node(g, v, e, ops);
    mt_status st = mt_kexpr_add_output(e, r);
    if (st == MT_OK) st = mt_kexpr_validate(e);
    if (st != MT_OK) mt_kexpr_deinit(e);
    return st;
}

/* The elementwise result shape: per axis the operand size that is not 1 (operands have the
 * node's ndim, each size 1 or the node's). */
static mt_status elemwise_shape(int32_t nin, const mt_array *const *ins, int32_t nd,
                                int64_t *dims)
{
    for (int32_t d = 0; d < nd; d++) dims[d] = 1;
    for (int32_t i = 0; i < nin; i++) {
        if (ins[i]->ndim != nd) {
            char b[96];
            return mt_err_set(MT_ERR_SHAPE, "operand %d has shape %s but the node has %d axes",
                              (int)i, shape_text(ins[i]->ndim, ins[i]->dims, b, sizeof b),
                              (int)nd);
        }
        for (int32_t d = 0; d < nd; d++) {
            int64_t s = ins[i]->dims[d];
            if (s == 1) continue;
            if (dims[d] != 1 && dims[d] != s) {
                char b1[96], b2[96];
                return mt_err_set(MT_ERR_SHAPE, "operand shapes %s and %s do not broadcast "
                                  "(axis %d: %lld vs %lld)",
                                  shape_text(ins[0]->ndim, ins[0]->dims, b1, sizeof b1),
                                  shape_text(ins[i]->ndim, ins[i]->dims, b2, sizeof b2), (int)d,
                                  (long long)dims[d], (long long)s);
            }
            dims[d] = s;
        }
    }
    return MT_OK;
}

static mt_status run_elemwise(const mt__jctx *ctx, mt_var v, const mt_kexpr *kx,
                              const mt_array *const *ins, mt_array *out)
{
    const mt_type *t = mt_graph_type(ctx->g, v);
    int32_t nin = mt_graph_ninputs(ctx->g, v);
    int64_t dims[MT_MAX_DIMS];
    mt_status st = elemwise_shape(nin, ins, t->ndim, dims);
    if (st != MT_OK) return st;
    mt_kexpr local;
    bool own = false;
    if (!kx) {
        if ((st = mt__ref_elemwise_kexpr(ctx->g, v, &local)) != MT_OK) return st;
        kx = &local;
        own = true;
    }
    mt_array o = {0};
    st = mt_array_empty(&o, ctx->dev, t->dtype, t->ndim, dims, 'C');
    if (st == MT_OK && mt_array_size(&o) > 0) {
        mt_array *outs[1] = {&o};
        st = mt_elemwise(kx, nin, ins, outs, 0, NULL);
    }
    if (own) mt_kexpr_deinit(&local);
    if (st != MT_OK) {
        mt_array_clear(&o);
        return st;
    }
    *out = o;
    return MT_OK;
}

/* ---------------------------------------------------------------- products */

/* a view of x for the batch index tuple idx[0..nb) (a size-1 axis stays at 0). */
static mt_status batch_view(mt_array *out, const mt_array *x, int32_t nb, const int64_t *idx)
{
    mt_slice s[MT_MAX_DIMS];
    for (int32_t d = 0; d < nb; d++) s[d] = mt_slice_index(x->dims[d] == 1 ? 0 : idx[d]);
    return mt_array_slice(out, x, nb, s);
}

static mt_status run_gemm(const mt__jctx *ctx, mt_var v, const mt_array *const *ins,
                          mt_array *out)
{
    const mt_op_attrs *at = mt_graph_attrs(ctx->g, v);
    const mt_type *t = mt_graph_type(ctx->g, v);
    const mt_array *a = ins[0], *b = ins[1], *c = ins[2];
    int32_t nd = a->ndim;
    if (nd < 2 || b->ndim != nd)
        return mt_err_set(MT_ERR_SHAPE, "operands need equal ndim >= 2 (got %d and %d)",
                          (int)a->ndim, (int)b->ndim);
    int32_t nbd;
    int64_t dims[MT_MAX_DIMS];
    mt_status st = mt_broadcast_shapes(&nbd, dims, nd - 2, a->dims, nd - 2, b->dims);
    if (st != MT_OK) return st;
    dims[nd - 2] = at->trans_a ? a->dims[nd - 1] : a->dims[nd - 2];
    dims[nd - 1] = at->trans_b ? b->dims[nd - 2] : b->dims[nd - 1];
    mt_array o = {0};
    st = mt_array_empty(&o, ctx->dev, t->dtype, nd, dims, 'C');
    if (st == MT_OK) st = mt_array_copy(&o, c); /* c broadcast to the product's shape */
    if (st == MT_OK && nd <= 3) {
        st = mt_array_gemm(&o, a, b, at->alpha, at->beta, at->trans_a, at->trans_b);
    } else if (st == MT_OK) {
        /* More than one batch axis: loop over all but the last one, 3-D GEMM each. */
        int32_t nb = nd - 3;
        int64_t outer = 1, idx[MT_MAX_DIMS] = {0};
        for (int32_t d = 0; d < nb; d++) outer *= dims[d];
        for (int64_t k = 0; k < outer && st == MT_OK; k++) {
            int64_t r = k;
            for (int32_t d = nb - 1; d >= 0; d--) {
                idx[d] = r % dims[d];
                r /= dims[d];
            }
            mt_array va = {0}, vb = {0}, vo = {0};
            st = batch_view(&va, a, nb, idx);
            if (st == MT_OK) st = batch_view(&vb, b, nb, idx);
            if (st == MT_OK) st = batch_view(&vo, &o, nb, idx);
            if (st == MT_OK)
                st = mt_array_gemm(&vo, &va, &vb, at->alpha, at->beta, at->trans_a, at->trans_b);
            mt_array_clear(&va);
            mt_array_clear(&vb);
            mt_array_clear(&vo);
        }
    }
    if (st != MT_OK) {
        mt_array_clear(&o);
        return st;
    }
    *out = o;
    return MT_OK;
}

/* ---------------------------------------------------------------- shapes and views */

static mt_status run_reshape(const mt_op_attrs *at, const mt_array *x, mt_array *out)
{
    int64_t dims[MT_MAX_DIMS], known = 1, numel = mt_array_size(x);
    int32_t nd = at->nshape, infer = -1;
    char b1[96], b2[96];
    for (int32_t i = 0; i < nd; i++) {
        int64_t s = at->shape[i];
        if (s == MT_RESHAPE_KEEP) {
            if (i >= x->ndim)
                return mt_err_set(MT_ERR_SHAPE, "reshape: keep-size entry %d but the operand %s "
                                  "has %d axes", (int)i, shape_text(x->ndim, x->dims, b1,
                                  sizeof b1), (int)x->ndim);
            s = x->dims[i];
        }
        if (s == MT_RESHAPE_INFER) {
            infer = i;
            dims[i] = -1;
            continue;
        }
        dims[i] = s;
        known *= s;
    }
    if (infer >= 0) dims[infer] = known > 0 ? numel / known : 0;
    int64_t total = 1;
    for (int32_t i = 0; i < nd; i++) total *= dims[i];
    if (total != numel)
        return mt_err_set(MT_ERR_SHAPE, "reshape: cannot reshape an array of shape %s (%lld "
                          "elements) into shape %s", shape_text(x->ndim, x->dims, b1, sizeof b1),
                          (long long)numel, shape_text(nd, dims, b2, sizeof b2));
    return mt_array_reshape(out, x, nd, dims);
}

static mt_status run_dimshuffle(const mt_op_attrs *at, const mt_array *x, mt_array *out)
{
    bool used[MT_MAX_DIMS] = {false};
    for (int32_t i = 0; i < at->nperm; i++)
        if (at->perm[i] >= 0 && at->perm[i] < x->ndim) used[at->perm[i]] = true;
    for (int32_t d = 0; d < x->ndim; d++) {
        if (!used[d] && x->dims[d] != 1) {
            char b[96];
            return mt_err_set(MT_ERR_SHAPE, "dimshuffle drops axis %d of shape %s, which has "
                              "size %lld instead of 1", (int)d,
                              shape_text(x->ndim, x->dims, b, sizeof b), (long long)x->dims[d]);
        }
    }
    mt_array o;
    mt_array_view(&o, x);
    for (int32_t i = 0; i < at->nperm; i++) {
        int32_t p = at->perm[i];
        if (p >= x->ndim) {
            mt_array_clear(&o);
            return mt_err_set(MT_ERR_INTERNAL, "dimshuffle axis %d out of range", (int)p);
        }
        o.dims[i] = p >= 0 ? x->dims[p] : 1;
        o.strides[i] = p >= 0 ? x->strides[p] : 0;
    }
    for (int32_t i = at->nperm; i < MT_MAX_DIMS; i++) o.dims[i] = o.strides[i] = 0;
    o.ndim = at->nperm;
    mt_array_update_flags(&o);
    *out = o;
    return MT_OK;
}

static mt_status run_slice(const mt_op_attrs *at, const mt_array *x, mt_array *out)
{
    mt_slice s[MT_MAX_DIMS];
    for (int32_t i = 0; i < at->nidx; i++) {
        const mt_idx *it = &at->idx[i];
        if (it->kind == MT_IDX_INT)
            s[i] = mt_slice_index(it->start);
        else
            s[i] = mt_slice_range(it->start, it->stop, it->step == MT_IDX_NONE ? 1 : it->step);
    }
    return mt_array_slice(out, x, at->nidx, s);
}

static mt_status run_shape_assert(const mt_op_attrs *at, const mt_array *x, mt_array *out)
{
    bool ok = x->ndim == at->nshape;
    for (int32_t d = 0; ok && d < x->ndim; d++)
        if (at->shape[d] >= 0 && at->shape[d] != x->dims[d]) ok = false;
    if (!ok) {
        mt_strbuf sb;
        mt_strbuf_init(&sb);
        mt_shape_format(at->nshape, at->shape, &sb);
        char b[96];
        mt_status st = mt_err_set(MT_ERR_SHAPE, "expected shape %s but got %s",
                                  sb.data ? sb.data : "?",
                                  shape_text(x->ndim, x->dims, b, sizeof b));
        mt_strbuf_deinit(&sb);
        return st;
    }
    mt_array_view(out, x);
    return MT_OK;
}

static mt_status run_size(const mt__jctx *ctx, const mt_op_attrs *at, const mt_array *x,
                          mt_array *out)
{
    int64_t n = 1;
    if (at->naxes == 0)
        n = mt_array_size(x);
    for (int32_t i = 0; i < at->naxes; i++) {
        if (at->axes[i] < 0 || at->axes[i] >= x->ndim)
            return mt_err_set(MT_ERR_INTERNAL, "size: axis %d out of range", (int)at->axes[i]);
        n *= x->dims[at->axes[i]];
    }
    return mt_array_from_host(out, ctx->dev, MT_INT64, 0, NULL, &n);
}

/* ---------------------------------------------------------------- dispatch */

static mt_status run_op(const mt__jctx *ctx, mt_var v, const mt_kexpr *kx,
                        const mt_array *const *ins, mt_array *out)
{
    const mt_graph *g = ctx->g;
    const mt_op_attrs *at = mt_graph_attrs(g, v);
    const mt_type *t = mt_graph_type(g, v);
    mt_op op = mt_graph_op(g, v);
    switch (op) {
    case MT_OP_ELEMWISE:
        return run_elemwise(ctx, v, kx, ins, out);
    case MT_OP_REDUCE:
        /* in a schedule, through the step's memo: no planning when the layout repeats */
        if (ctx->step)
            return mt_array_reduce_memo(&ctx->step->red_memo, out, ins[0], at->reduce, at->naxes,
                                        at->axes, at->keepdims);
        return mt_array_reduce(out, ins[0], at->reduce, at->naxes, at->axes, at->keepdims);
    case MT_OP_LOGSUMEXP:
        return mt__ref_logsumexp(ctx, v, ins[0], out);
    case MT_OP_SIZE:
        return run_size(ctx, at, ins[0], out);
    case MT_OP_SOFTMAX:
    case MT_OP_LOGSOFTMAX:
        return mt__ref_softmax(ctx, v, ins[0], op == MT_OP_LOGSOFTMAX, out);
    case MT_OP_XENT:
    case MT_OP_XENT_LABELS:
    case MT_OP_SOFTMAX_XENT:
    case MT_OP_SOFTMAX_XENT_LABELS:
    case MT_OP_SOFTMAX_XENT_LABELS_DX:
        return mt__ref_xent(ctx, v, ins, out);
    case MT_OP_MATMUL:
        return mt_array_matmul(out, ins[0], ins[1]);
    case MT_OP_GEMM:
        return run_gemm(ctx, v, ins, out);
    case MT_OP_RESHAPE:
        return run_reshape(at, ins[0], out);
    case MT_OP_DIMSHUFFLE:
        return run_dimshuffle(at, ins[0], out);
    case MT_OP_BROADCAST_TO:
        return mt_array_broadcast_to(out, ins[0], at->nshape, at->shape);
    case MT_OP_BROADCAST_LIKE:
        return mt_array_broadcast_to(out, ins[0], ins[1]->ndim, ins[1]->dims);
    case MT_OP_CONCAT:
        return mt__ref_concat(ctx, v, ins, out);
    case MT_OP_SLICE:
        return run_slice(at, ins[0], out);
    case MT_OP_SET_SUBTENSOR:
    case MT_OP_INC_SUBTENSOR:
        return mt__ref_subtensor(ctx, v, ins[0], ins[1], op == MT_OP_INC_SUBTENSOR, out);
    case MT_OP_GATHER:
        return mt__ref_gather(ctx, v, ins[0], ins[1], at->axes[0], out);
    case MT_OP_SCATTER_ADD:
        return mt__ref_scatter_add(ctx, v, ins[0], ins[1], ins[2], at->axes[0], out);
    case MT_OP_ONE_HOT:
        return mt__ref_one_hot(ctx, v, ins[0], out);
    case MT_OP_ARANGE:
        return mt_array_arange(out, ctx->dev, t->dtype, at->start, at->stop, at->step);
    case MT_OP_RANDOM:
        return mt__ref_random(ctx, v, mt_graph_ninputs(g, v) > 0 ? ins[0] : NULL, out);
    case MT_OP_STOP_GRADIENT:
    case MT_OP_GRAD_CLIP:
        mt_array_view(out, ins[0]);
        return MT_OK;
    case MT_OP_SHAPE_ASSERT:
        return run_shape_assert(at, ins[0], out);
    case MT_OP_CONV2D:
    case MT_OP_CONV2D_GRAD_INPUT:
    case MT_OP_CONV2D_GRAD_WEIGHT:
        return mt__ref_conv2d(ctx, v, ins, out);
    case MT_OP_POOL2D:
    case MT_OP_POOL2D_GRAD:
        return mt__ref_pool2d(ctx, v, ins, out);
    case MT_OP_INPUT:
    case MT_OP_CONST:
    default:
        return mt_err_set(MT_ERR_INTERNAL, "the reference executor cannot run op '%s' as a step",
                          mt_op_name(op));
    }
}

mt_status mt__check_result_type(const mt_graph *g, mt_var v, const mt_array *o,
                                const int64_t *inferred, const char *what)
{
    const mt_type *t = mt_graph_type(g, v);
    bool ok = o->dtype == t->dtype && o->ndim == t->ndim;
    for (int32_t d = 0; ok && d < t->ndim; d++) {
        if (t->shape[d] >= 0 && t->shape[d] != o->dims[d]) ok = false;
        if (inferred && inferred[d] != o->dims[d]) ok = false;
    }
    if (ok) return MT_OK;
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    mt_type_format(t, &sb);
    char b[160];
    mt_status st = mt_err_set(MT_ERR_INTERNAL, "the result %s does not match the node's type %s"
                              " (graph inference and %s disagree)",
                              mt_array_describe(o, b, sizeof b), sb.data ? sb.data : "?", what);
    mt_strbuf_deinit(&sb);
    return st;
}

static bool same_layout(const mt_array *a, const mt_array *b)
{
    if (a->buf != b->buf || a->offset != b->offset || a->ndim != b->ndim || a->dtype != b->dtype)
        return false;
    for (int32_t d = 0; d < a->ndim; d++)
        if (a->dims[d] != b->dims[d] || a->strides[d] != b->strides[d]) return false;
    return true;
}

mt_status mt__ref_gemm_into(const mt__jctx *ctx, mt_var v, const mt_array *const *ins,
                            const mt_array *into, mt_array *out)
{
    const mt_graph *g = ctx->g;
    const mt_op_attrs *at = mt_graph_attrs(g, v);
    const mt_array *a = ins[0], *b = ins[1], *c = ins[2];
    int32_t nd = a->ndim;
    bool fits = mt_graph_op(g, v) == MT_OP_GEMM && into && same_layout(c, into) &&
                (into->flags & MT_ARRAY_WRITEABLE) && nd == 2 && b->ndim == 2 && c->ndim == 2 &&
                c->dtype == mt_graph_type(g, v)->dtype &&
                c->dims[0] == (at->trans_a ? a->dims[1] : a->dims[0]) &&
                c->dims[1] == (at->trans_b ? b->dims[0] : b->dims[1]);
    if (!fits) return mt__ref_node(ctx, v, NULL, ins, out);
    if (mt_graph_flags(g, v) & MT_NODE_RTCHECK) {
        const int64_t *shapes[3] = {a->dims, b->dims, c->dims};
        int64_t inferred[MT_MAX_DIMS];
        mt_status st = mt_graph_eval_shape(g, v, shapes, inferred);
        if (st != MT_OK) return mt__node_error(g, v, st);
    }
    mt_array o;
    mt_array_view(&o, into);
    mt_status st = mt_array_gemm(&o, a, b, at->alpha, at->beta, at->trans_a, at->trans_b);
    if (st != MT_OK) {
        mt_array_clear(&o);
        return mt__node_error(g, v, st);
    }
    *out = o;
    return MT_OK;
}

mt_status mt__ref_node(const mt__jctx *ctx, mt_var v, const mt_kexpr *kx,
                       const mt_array *const *ins, mt_array *out)
{
    const mt_graph *g = ctx->g;
    int32_t nin = mt_graph_ninputs(g, v);
    int64_t inferred[MT_MAX_DIMS];
    bool checked = false;
    mt_status st;
    if (mt_graph_flags(g, v) & MT_NODE_RTCHECK) {
        const int64_t *shapes[64];
        if (nin > 64) return mt_err_set(MT_ERR_INTERNAL, "node v%d: too many operands", (int)v);
        for (int32_t i = 0; i < nin; i++) shapes[i] = ins[i]->dims;
        st = mt_graph_eval_shape(g, v, shapes, inferred);
        if (st != MT_OK) return mt__node_error(g, v, st);
        checked = true;
    }
    mt_array o = {0};
    st = run_op(ctx, v, kx, ins, &o);
    if (st == MT_OK) st = mt__check_result_type(g, v, &o, checked ? inferred : NULL, "gpuarray");
    if (st != MT_OK) {
        mt_array_clear(&o);
        return mt__node_error(g, v, st);
    }
    *out = o;
    return MT_OK;
}
