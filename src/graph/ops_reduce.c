/* Reductions: REDUCE (sum, prod, max, min, argmax, argmin, mean, all, any over an axis list,
 * keepdims), the stable LOGSUMEXP, and SIZE (the element count over axes, the one shape
 * computation of the IR: builders fold it to a constant whenever the sizes are static, so
 * shape arithmetic disappears from graphs with known shapes). var and std are composites of
 * these. Builders store the normalized axis list (sorted, non-negative, all axes spelled out),
 * so sum(x) and sum(x, axis=(0, 1)) are one node. */
#include <math.h>
#include <string.h>

#include "graph_impl.h"

mt_status mt__infer_reduce(mt__infer_ctx *cx)
{
    const mt_op_attrs *a = cx->attrs;
    const mt_type *x = cx->in[0];
    const char *name = cx->opname;
    bool reduced[MT_MAX_DIMS] = {false};
    if (a->naxes > x->ndim)
        return mt_err_set(MT_ERR_INVALID, "%s: %d axes for %d dimensions", name, (int)a->naxes,
                          (int)x->ndim);
    for (int32_t i = 0; i < a->naxes; i++) {
        int32_t ax = a->axes[i];
        if (ax < 0 || ax >= x->ndim || (i > 0 && ax <= a->axes[i - 1]))
            return mt_err_set(MT_ERR_INVALID, "%s: axes must be sorted, unique and in [0, %d); "
                              "axis %d is not", name, (int)x->ndim, (int)ax);
        reduced[ax] = true;
    }
    if (a->naxes == 0)
        for (int32_t i = 0; i < x->ndim; i++) reduced[i] = true;
    mt_dtype dt;
    if (cx->op == MT_OP_SIZE) {
        cx->out = mt_type_make(MT_INT64, 0, NULL);
        return MT_OK;
    }
    if (cx->op == MT_OP_LOGSUMEXP) {
        if (!mt_dtype_is_float(x->dtype))
            return mt_err_set(MT_ERR_DTYPE, "logsumexp: needs a float operand, got %s",
                              mt_dtype_name(x->dtype));
        dt = x->dtype;
    } else {
        if ((unsigned)a->reduce >= MT_REDUCE_OP_COUNT)
            return mt_err_set(MT_ERR_INVALID, "reduce: invalid reduction %d", (int)a->reduce);
        dt = mt__reduce_dtype(a->reduce, x->dtype);
        if (a->reduce == MT_REDUCE_MAX || a->reduce == MT_REDUCE_MIN ||
            a->reduce == MT_REDUCE_ARGMAX || a->reduce == MT_REDUCE_ARGMIN) {
            for (int32_t i = 0; i < x->ndim; i++)
                if (reduced[i] && x->shape[i] == 0) {
                    char b[128];
                    return mt_err_set(MT_ERR_SHAPE, "%s: zero-size reduction over axis %d of %s "
                                      "has no identity", name, (int)i,
                                      mt__shape_str(x->ndim, x->shape, b, sizeof(b)));
                }
        }
    }
    mt_type t = mt_type_make(dt, 0, NULL);
    for (int32_t i = 0; i < x->ndim; i++) {
        if (!reduced[i])
            t.shape[t.ndim++] = x->shape[i];
        else if (a->keepdims)
            t.shape[t.ndim++] = 1;
    }
    cx->out = t;
    return MT_OK;
}

/* Normalized attributes for a reduction-like node over x. */
static bool axes_attrs(mt_graph *g, const char *name, mt_var x, int32_t naxes, const int32_t *axes,
                       mt_op_attrs *a)
{
    memset(a, 0, sizeof(*a));
    const mt_type *t = mt_graph_type(g, x);
    return mt__norm_axes(g, name, naxes, axes, t->ndim, &a->naxes, a->axes);
}

mt_var mt_graph_reduce(mt_graph *g, mt_reduce_op op, mt_var x, int32_t naxes,
                       const int32_t *axes, bool keepdims)
{
    const char *name = mt__reduce_text(op);
    if (!mt__check_vars(g, name, 1, &x)) return MT_VAR_NONE;
    if ((unsigned)op >= MT_REDUCE_OP_COUNT)
        return mt__fail(g, MT_ERR_INVALID, "reduce: invalid reduction %d", (int)op);
    mt_op_attrs a;
    if (!axes_attrs(g, name, x, naxes, axes, &a)) return MT_VAR_NONE;
    a.reduce = op;
    a.keepdims = keepdims;
    /* a weak literal reduces as its dtype; drop weakness so the result is a normal value */
    x = mt__cast(g, x, mt_graph_type(g, x)->dtype);
    return mt__create(g, MT_OP_REDUCE, &a, 1, &x);
}

#define REDUCER(fn, OP)                                                                   \
    mt_var fn(mt_graph *g, mt_var x, int32_t naxes, const int32_t *axes, bool keepdims)   \
    {                                                                                     \
        return mt_graph_reduce(g, MT_REDUCE_##OP, x, naxes, axes, keepdims);              \
    }
REDUCER(mt_graph_sum, SUM)
REDUCER(mt_graph_mean, MEAN)
REDUCER(mt_graph_prod, PROD)
REDUCER(mt_graph_max, MAX)
REDUCER(mt_graph_min, MIN)
REDUCER(mt_graph_argmax, ARGMAX)
REDUCER(mt_graph_argmin, ARGMIN)
REDUCER(mt_graph_all, ALL)
REDUCER(mt_graph_any, ANY)

mt_var mt_graph_logsumexp(mt_graph *g, mt_var x, int32_t naxes, const int32_t *axes,
                          bool keepdims)
{
    if (!mt__check_vars(g, "logsumexp", 1, &x)) return MT_VAR_NONE;
    mt_op_attrs a;
    if (!axes_attrs(g, "logsumexp", x, naxes, axes, &a)) return MT_VAR_NONE;
    a.keepdims = keepdims;
    x = mt__cast(g, x, mt__float_dtype(mt_graph_type(g, x)->dtype));
    return mt__create(g, MT_OP_LOGSUMEXP, &a, 1, &x);
}

mt_var mt_graph_size_of(mt_graph *g, mt_var x, int32_t naxes, const int32_t *axes)
{
    if (!mt__check_vars(g, "size", 1, &x)) return MT_VAR_NONE;
    mt_op_attrs a;
    if (!axes_attrs(g, "size", x, naxes, axes, &a)) return MT_VAR_NONE;
    const mt_type *t = mt_graph_type(g, x);
    int64_t n = 1;
    bool known = true;
    for (int32_t i = 0; i < a.naxes; i++) {
        if (t->shape[a.axes[i]] < 0)
            known = false;
        else
            n *= t->shape[a.axes[i]];
    }
    if (known) return mt_graph_scalar_int(g, MT_INT64, n);
    return mt__create(g, MT_OP_SIZE, &a, 1, &x);
}

/* var = sum(square(x - mean(x, keepdims)), axes) / (N - ddof). */
mt_var mt_graph_var(mt_graph *g, mt_var x, int32_t naxes, const int32_t *axes, bool keepdims,
                    double ddof)
{
    if (!mt__check_vars(g, "var", 1, &x)) return MT_VAR_NONE;
    mt_op_attrs a;
    if (!axes_attrs(g, "var", x, naxes, axes, &a)) return MT_VAR_NONE;
    mt_dtype dt = mt__reduce_dtype(MT_REDUCE_MEAN, mt_graph_type(g, x)->dtype);
    mt_var xf = mt__cast(g, x, dt);
    mt_var m = mt_graph_mean(g, xf, a.naxes, a.axes, true);
    mt_var s = mt_graph_sum(g, mt_graph_square(g, mt_graph_sub(g, xf, m)), a.naxes, a.axes,
                            keepdims);
    if (!s) return MT_VAR_NONE;
    const mt_type *t = mt_graph_type(g, x);
    int64_t n = 1;
    bool known = true;
    for (int32_t i = 0; i < a.naxes; i++) {
        if (t->shape[a.axes[i]] < 0)
            known = false;
        else
            n *= t->shape[a.axes[i]];
    }
    mt_var denom;
    if (known) {
        denom = mt_graph_scalar(g, dt, (double)n - ddof);
    } else {
        mt_var nv = mt__cast(g, mt_graph_size_of(g, x, a.naxes, a.axes), dt);
        denom = ddof != 0 ? mt_graph_sub(g, nv, mt_graph_literal_float(g, ddof)) : nv;
    }
    return mt_graph_div(g, s, denom);
}

mt_var mt_graph_std(mt_graph *g, mt_var x, int32_t naxes, const int32_t *axes, bool keepdims,
                    double ddof)
{
    return mt_graph_sqrt(g, mt_graph_var(g, x, naxes, axes, keepdims, ddof));
}
