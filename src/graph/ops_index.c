/* Indexing ops: set_subtensor / inc_subtensor on basic slices (copies of x with a region
 * replaced or incremented, Theano's IncSubtensor), advanced integer indexing along one axis
 * (GATHER = np.take) and its gradient SCATTER_ADD (np.add.at on a copy, duplicates
 * accumulate), and ONE_HOT. Index values are only known at run time, so out-of-range indices
 * are run-time errors of the kernels (ONE_HOT gives a zero row instead, as TensorFlow). */
#include <string.h>

#include "graph_impl.h"

/* Gathered shape x[:axis] + idx.shape + x[axis+1:]. */
static mt_status gather_shape(const char *name, const mt_type *x, const mt_type *idx, int32_t axis,
                              mt_type *t)
{
    if (axis < 0 || axis >= x->ndim)
        return mt_err_set(MT_ERR_INVALID, "%s: axis %d is out of range for %d dimensions", name,
                          (int)axis, (int)x->ndim);
    char k = mt_dtype_kind(idx->dtype);
    if (k != 'i' && k != 'u')
        return mt_err_set(MT_ERR_DTYPE, "%s: indices must be integers, got %s", name,
                          mt_dtype_name(idx->dtype));
    if (x->ndim - 1 + idx->ndim > MT_MAX_DIMS)
        return mt_err_set(MT_ERR_INVALID, "%s: result would have %d dimensions (maximum %d)", name,
                          (int)(x->ndim - 1 + idx->ndim), MT_MAX_DIMS);
    *t = mt_type_make(x->dtype, 0, NULL);
    for (int32_t i = 0; i < axis; i++) t->shape[t->ndim++] = x->shape[i];
    for (int32_t i = 0; i < idx->ndim; i++) t->shape[t->ndim++] = idx->shape[i];
    for (int32_t i = axis + 1; i < x->ndim; i++) t->shape[t->ndim++] = x->shape[i];
    return MT_OK;
}

mt_status mt__infer_gather(mt__infer_ctx *cx)
{
    const mt_type *x = cx->in[0];
    if (cx->op == MT_OP_ONE_HOT) {
        char k = mt_dtype_kind(x->dtype);
        if (k != 'i' && k != 'u')
            return mt_err_set(MT_ERR_DTYPE, "one_hot: labels must be integers, got %s",
                              mt_dtype_name(x->dtype));
        if (cx->attrs->depth < 0)
            return mt_err_set(MT_ERR_INVALID, "one_hot: depth %lld is negative",
                              (long long)cx->attrs->depth);
        if (!mt_dtype_valid(cx->attrs->dtype))
            return mt_err_set(MT_ERR_DTYPE, "one_hot: invalid dtype %d", (int)cx->attrs->dtype);
        if (x->ndim + 1 > MT_MAX_DIMS)
            return mt_err_set(MT_ERR_INVALID, "one_hot: result would have %d dimensions (maximum "
                              "%d)", (int)x->ndim + 1, MT_MAX_DIMS);
        cx->out = mt_type_make(cx->attrs->dtype, x->ndim, x->shape);
        cx->out.shape[cx->out.ndim++] = cx->attrs->depth;
        return MT_OK;
    }
    if (cx->attrs->naxes != 1)
        return mt_err_set(MT_ERR_INVALID, "%s: needs exactly one axis", cx->opname);
    mt_type t;
    mt_status st = gather_shape(cx->opname, x, cx->in[1], cx->attrs->axes[0], &t);
    if (st) return st;
    if (cx->op == MT_OP_GATHER) {
        cx->out = t;
        return MT_OK;
    }
    const mt_type *y = cx->in[2];
    char ys[128], ts[128]; /* formatted only for an error: this can run on every call */
#define SA_SHAPES()                                                                                \
    (mt__shape_str(y->ndim, y->shape, ys, sizeof(ys)),                                             \
     mt__shape_str(t.ndim, t.shape, ts, sizeof(ts)))
    if (y->dtype != x->dtype)
        return mt_err_set(MT_ERR_DTYPE, "scatter_add: value dtype %s differs from %s",
                          mt_dtype_name(y->dtype), mt_dtype_name(x->dtype));
    if (y->ndim != t.ndim)
        return SA_SHAPES(), mt_err_set(MT_ERR_SHAPE,
                                       "scatter_add: values of shape %s do not fit the indexed "
                                       "shape %s",
                                       ys, ts);
    for (int32_t i = 0; i < t.ndim; i++) {
        if (y->shape[i] == 1 || y->shape[i] == t.shape[i]) continue;
        if (y->shape[i] < 0 || t.shape[i] < 0) {
            cx->rtcheck = true;
            continue;
        }
        return SA_SHAPES(), mt_err_set(MT_ERR_SHAPE,
                                       "scatter_add: values of shape %s do not fit the indexed "
                                       "shape %s",
                                       ys, ts);
    }
    cx->out = mt_type_make(x->dtype, x->ndim, x->shape);
    return MT_OK;
#undef SA_SHAPES
}

/* idx as a strong integer variable (weak literals become int64). */
static mt_var int_index(mt_graph *g, const char *name, mt_var idx)
{
    const mt_type *t = mt_graph_type(g, idx);
    char k = mt_dtype_kind(t->dtype);
    if (k != 'i' && k != 'u')
        return mt__fail(g, MT_ERR_DTYPE, "%s: indices must be integers, got %s", name,
                        mt_dtype_name(t->dtype));
    return mt__cast(g, idx, t->dtype);
}

mt_var mt_graph_gather(mt_graph *g, mt_var x, mt_var idx, int32_t axis)
{
    mt_var in[2] = {x, idx};
    if (!mt__check_vars(g, "gather", 2, in)) return MT_VAR_NONE;
    int32_t nd = mt_graph_type(g, x)->ndim;
    if (nd == 0)
        return mt__fail(g, MT_ERR_SHAPE, "gather: cannot index a zero-dimensional value");
    mt_op_attrs a;
    memset(&a, 0, sizeof(a));
    a.naxes = 1;
    if (!mt__norm_axis(g, "gather", axis, nd, &a.axes[0])) return MT_VAR_NONE;
    in[0] = mt__cast(g, x, mt_graph_type(g, x)->dtype);
    in[1] = int_index(g, "gather", idx);
    if (!in[0] || !in[1]) return MT_VAR_NONE;
    return mt__create(g, MT_OP_GATHER, &a, 2, in);
}

mt_var mt_graph_scatter_add(mt_graph *g, mt_var x, mt_var idx, mt_var y, int32_t axis)
{
    mt_var in[3] = {x, idx, y};
    if (!mt__check_vars(g, "scatter_add", 3, in)) return MT_VAR_NONE;
    const mt_type *xt = mt_graph_type(g, x);
    if (xt->ndim == 0)
        return mt__fail(g, MT_ERR_SHAPE, "scatter_add: cannot index a zero-dimensional value");
    mt_op_attrs a;
    memset(&a, 0, sizeof(a));
    a.naxes = 1;
    if (!mt__norm_axis(g, "scatter_add", axis, xt->ndim, &a.axes[0])) return MT_VAR_NONE;
    in[0] = mt__cast(g, x, xt->dtype);
    in[1] = int_index(g, "scatter_add", idx);
    if (!in[0] || !in[1]) return MT_VAR_NONE;
    int32_t gnd = xt->ndim - 1 + mt_graph_type(g, in[1])->ndim;
    if (mt_graph_type(g, y)->ndim > gnd) {
        char b[128];
        const mt_type *yt = mt_graph_type(g, y);
        return mt__fail(g, MT_ERR_SHAPE, "scatter_add: values of shape %s have more than the %d "
                        "dimensions of the indexed shape", mt__shape_str(yt->ndim, yt->shape, b,
                        sizeof(b)), (int)gnd);
    }
    in[2] = mt__expand_ndim(g, mt__cast(g, y, xt->dtype), gnd);
    if (!in[2]) return MT_VAR_NONE;
    return mt__create(g, MT_OP_SCATTER_ADD, &a, 3, in);
}

mt_var mt_graph_one_hot(mt_graph *g, mt_var labels, int64_t depth, mt_dtype dt)
{
    if (!mt__check_vars(g, "one_hot", 1, &labels)) return MT_VAR_NONE;
    if (depth < 0)
        return mt__fail(g, MT_ERR_INVALID, "one_hot: depth %lld is negative", (long long)depth);
    mt_op_attrs a;
    memset(&a, 0, sizeof(a));
    a.depth = depth;
    a.dtype = dt;
    labels = int_index(g, "one_hot", labels);
    if (!labels) return MT_VAR_NONE;
    return mt__create(g, MT_OP_ONE_HOT, &a, 1, &labels);
}

static mt_var subtensor(mt_graph *g, mt_op op, mt_var x, int32_t n, const mt_idx *items, mt_var y)
{
    const char *name = mt_op_name(op);
    mt_var in[2] = {x, y};
    if (!mt__check_vars(g, name, 2, in)) return MT_VAR_NONE;
    x = mt__cast(g, x, mt_graph_type(g, x)->dtype);
    mt_op_attrs a;
    bool identity;
    int32_t nperm, perm[MT_MAX_DIMS];
    if (!mt__index_attrs(g, name, x, n, items, false, &a, &identity, &nperm, perm))
        return MT_VAR_NONE;
    int32_t snd = 0;
    for (int32_t i = 0; i < a.nidx; i++) snd += a.idx[i].kind == MT_IDX_SLICE;
    const mt_type *yt = mt_graph_type(g, y);
    if (yt->ndim > snd) {
        char b[128];
        return mt__fail(g, MT_ERR_SHAPE, "%s: value of shape %s has more than the %d dimensions "
                        "of the indexed region", name,
                        mt__shape_str(yt->ndim, yt->shape, b, sizeof(b)), (int)snd);
    }
    in[0] = x;
    in[1] = mt__expand_ndim(g, mt__cast(g, y, mt_graph_type(g, x)->dtype), snd);
    if (!in[1]) return MT_VAR_NONE;
    return mt__create(g, op, &a, 2, in);
}

mt_var mt_graph_set_subtensor(mt_graph *g, mt_var x, int32_t n, const mt_idx *items, mt_var y)
{
    return subtensor(g, MT_OP_SET_SUBTENSOR, x, n, items, y);
}

mt_var mt_graph_inc_subtensor(mt_graph *g, mt_var x, int32_t n, const mt_idx *items, mt_var y)
{
    return subtensor(g, MT_OP_INC_SUBTENSOR, x, n, items, y);
}
