/* Shape ops and views: reshape (with -1 and KEEP), flatten, dimshuffle (transpose, expand_dims,
 * squeeze), broadcast_to / broadcast_like, concatenate / stack / split, and basic slicing
 * (SLICE, shared with set/inc_subtensor). Builders return the operand itself for identities
 * (a full slice, the same shape, the identity permutation) and canonicalize attributes where
 * sizes are static (slices in a tight normal form, reshape specs resolved), so equal views
 * hash-cons to one node. */
#include <stdio.h>
#include <string.h>

#include "graph_impl.h"

/* ---------------------------------------------------------------- reshape */

/* A reshape spec as written: "(5, -1)", "(keep, -1)". */
static const char *spec_str(int32_t n, const int64_t *spec, char *buf, size_t len)
{
    size_t k = 0;
    k += (size_t)snprintf(buf, len, "(");
    for (int32_t i = 0; i < n && k < len; i++) {
        if (spec[i] == MT_RESHAPE_KEEP)
            k += (size_t)snprintf(buf + k, len - k, "%skeep", i ? ", " : "");
        else
            k += (size_t)snprintf(buf + k, len - k, "%s%lld", i ? ", " : "", (long long)spec[i]);
    }
    if (k < len) snprintf(buf + k, len - k, n == 1 ? ",)" : ")");
    return buf;
}

mt_status mt__infer_reshape(mt__infer_ctx *cx)
{
    const mt_type *x = cx->in[0];
    const mt_op_attrs *a = cx->attrs;
    char xs[128], ss[160];
    mt__shape_str(x->ndim, x->shape, xs, sizeof(xs));
    spec_str(a->nshape, a->shape, ss, sizeof(ss));
    int32_t infer_at = -1;
    bool keep[MT_MAX_DIMS] = {false};
    mt_type t = mt_type_make(x->dtype, a->nshape, NULL);
    for (int32_t i = 0; i < a->nshape; i++) {
        int64_t s = a->shape[i];
        if (s == MT_RESHAPE_INFER) {
            if (infer_at >= 0)
                return mt_err_set(MT_ERR_INVALID, "reshape: can only specify one unknown "
                                  "dimension (-1) in %s", ss);
            infer_at = i;
        } else if (s == MT_RESHAPE_KEEP) {
            if (i >= x->ndim)
                return mt_err_set(MT_ERR_INVALID, "reshape: KEEP at axis %d but the operand %s "
                                  "has %d dimensions", (int)i, xs, (int)x->ndim);
            keep[i] = true;
            t.shape[i] = x->shape[i];
        } else if (s < 0) {
            return mt_err_set(MT_ERR_INVALID, "reshape: invalid size %lld in %s", (long long)s, ss);
        } else {
            t.shape[i] = s;
        }
    }
    /* element counts outside the kept axes (kept axes cancel, so an unknown batch axis can be
     * kept while the rest is checked statically) */
    int64_t in_rest = 1, out_rest = 1;
    bool in_known = true, out_known = true;
    for (int32_t i = 0; i < x->ndim; i++) {
        if (i < a->nshape && keep[i]) continue;
        if (x->shape[i] < 0)
            in_known = false;
        else
            in_rest *= x->shape[i];
    }
    for (int32_t i = 0; i < a->nshape; i++) {
        if (keep[i] || i == infer_at) continue;
        out_rest *= t.shape[i];
    }
    (void)out_known;
    if (infer_at >= 0) {
        if (!in_known) {
            t.shape[infer_at] = MT_DIM_UNKNOWN;
            cx->rtcheck = true;
        } else if (out_rest == 0 || in_rest % out_rest != 0) {
            return mt_err_set(MT_ERR_SHAPE, "reshape: cannot reshape %s into %s", xs, ss);
        } else {
            t.shape[infer_at] = in_rest / out_rest;
        }
    } else if (!in_known) {
        cx->rtcheck = true;
    } else if (in_rest != out_rest) {
        return mt_err_set(MT_ERR_SHAPE, "reshape: cannot reshape %s (%lld elements) into %s", xs,
                          (long long)mt_type_numel(x), ss);
    }
    cx->out = t;
    return MT_OK;
}

mt_var mt_graph_reshape(mt_graph *g, mt_var x, int32_t ndim, const int64_t *shape)
{
    if (!mt__check_vars(g, "reshape", 1, &x)) return MT_VAR_NONE;
    if (ndim < 0 || ndim > MT_MAX_DIMS || (ndim > 0 && !shape))
        return mt__fail(g, MT_ERR_INVALID, "reshape: ndim %d is out of range [0, %d]", (int)ndim,
                        MT_MAX_DIMS);
    x = mt__cast(g, x, mt_graph_type(g, x)->dtype); /* weak literals become normal values */
    const mt_type *xt = mt_graph_type(g, x);
    mt_op_attrs a;
    memset(&a, 0, sizeof(a));
    a.nshape = ndim;
    for (int32_t i = 0; i < ndim; i++) a.shape[i] = shape[i];
    /* resolve the spec statically when the result is static, so equal reshapes merge */
    mt__infer_ctx cx;
    memset(&cx, 0, sizeof(cx));
    cx.op = MT_OP_RESHAPE;
    cx.opname = "reshape";
    cx.attrs = &a;
    cx.nin = 1;
    cx.in = &xt;
    if (mt__infer_reshape(&cx) != MT_OK) return mt__fail_current(g);
    if (mt_type_is_static(&cx.out))
        for (int32_t i = 0; i < ndim; i++) a.shape[i] = cx.out.shape[i];
    bool same = cx.out.ndim == xt->ndim;
    for (int32_t i = 0; same && i < ndim; i++)
        same = (a.shape[i] == MT_RESHAPE_KEEP) || (xt->shape[i] >= 0 && a.shape[i] == xt->shape[i]);
    if (same) return x;
    return mt__create(g, MT_OP_RESHAPE, &a, 1, &x);
}

mt_var mt_graph_flatten(mt_graph *g, mt_var x, int32_t ndim_out)
{
    if (!mt__check_vars(g, "flatten", 1, &x)) return MT_VAR_NONE;
    int32_t nd = mt_graph_type(g, x)->ndim;
    if (ndim_out < 1 || ndim_out > (nd > 0 ? nd : 1))
        return mt__fail(g, MT_ERR_INVALID, "flatten: ndim %d is out of range [1, %d]",
                        (int)ndim_out, (int)(nd > 0 ? nd : 1));
    int64_t spec[MT_MAX_DIMS];
    for (int32_t i = 0; i < ndim_out - 1; i++) spec[i] = MT_RESHAPE_KEEP;
    spec[ndim_out - 1] = MT_RESHAPE_INFER;
    return mt_graph_reshape(g, x, ndim_out, spec);
}

/* ---------------------------------------------------------------- dimshuffle */

mt_status mt__infer_dimshuffle(mt__infer_ctx *cx)
{
    const mt_type *x = cx->in[0];
    const mt_op_attrs *a = cx->attrs;
    bool used[MT_MAX_DIMS] = {false};
    char xs[128];
    mt__shape_str(x->ndim, x->shape, xs, sizeof(xs));
    mt_type t = mt_type_make(x->dtype, a->nperm, NULL);
    for (int32_t i = 0; i < a->nperm; i++) {
        int32_t p = a->perm[i];
        if (p == -1) {
            t.shape[i] = 1;
            continue;
        }
        if (p < 0 || p >= x->ndim || used[p])
            return mt_err_set(MT_ERR_INVALID, "dimshuffle: entry %d (%d) is not an unused axis of "
                              "%s", (int)i, (int)p, xs);
        used[p] = true;
        t.shape[i] = x->shape[p];
    }
    for (int32_t i = 0; i < x->ndim; i++) {
        if (used[i]) continue;
        if (x->shape[i] < 0)
            cx->rtcheck = true;
        else if (x->shape[i] != 1)
            return mt_err_set(MT_ERR_SHAPE, "dimshuffle: cannot drop axis %d of size %lld in %s "
                              "(only size-1 axes can be dropped)", (int)i,
                              (long long)x->shape[i], xs);
    }
    cx->out = t;
    return MT_OK;
}

mt_var mt_graph_dimshuffle(mt_graph *g, mt_var x, int32_t n, const int32_t *pattern)
{
    if (!mt__check_vars(g, "dimshuffle", 1, &x)) return MT_VAR_NONE;
    if (n < 0 || n > MT_MAX_DIMS || (n > 0 && !pattern))
        return mt__fail(g, MT_ERR_INVALID, "dimshuffle: pattern length %d is out of range [0, %d]",
                        (int)n, MT_MAX_DIMS);
    x = mt__cast(g, x, mt_graph_type(g, x)->dtype);
    const mt_type *t = mt_graph_type(g, x);
    bool identity = n == t->ndim;
    for (int32_t i = 0; identity && i < n; i++) identity = pattern[i] == i;
    if (identity) return x;
    mt_op_attrs a;
    memset(&a, 0, sizeof(a));
    a.nperm = n;
    for (int32_t i = 0; i < n; i++) a.perm[i] = pattern[i];
    return mt__create(g, MT_OP_DIMSHUFFLE, &a, 1, &x);
}

mt_var mt_graph_transpose(mt_graph *g, mt_var x, const int32_t *perm)
{
    if (!mt__check_vars(g, "transpose", 1, &x)) return MT_VAR_NONE;
    int32_t nd = mt_graph_type(g, x)->ndim;
    int32_t p[MT_MAX_DIMS];
    bool seen[MT_MAX_DIMS] = {false};
    for (int32_t i = 0; i < nd; i++) {
        int32_t ax = perm ? perm[i] : nd - 1 - i;
        if (perm && !mt__norm_axis(g, "transpose", ax, nd, &ax)) return MT_VAR_NONE;
        if (seen[ax])
            return mt__fail(g, MT_ERR_INVALID, "transpose: axis %d repeated; axes must be a "
                            "permutation of %d dimensions", (int)ax, (int)nd);
        seen[ax] = true;
        p[i] = ax;
    }
    return mt_graph_dimshuffle(g, x, nd, p);
}

mt_var mt_graph_expand_dims(mt_graph *g, mt_var x, int32_t axis)
{
    if (!mt__check_vars(g, "expand_dims", 1, &x)) return MT_VAR_NONE;
    int32_t nd = mt_graph_type(g, x)->ndim;
    int32_t ax;
    if (!mt__norm_axis(g, "expand_dims", axis, nd + 1, &ax)) return MT_VAR_NONE;
    if (nd + 1 > MT_MAX_DIMS)
        return mt__fail(g, MT_ERR_INVALID, "expand_dims: %d dimensions exceed the maximum %d",
                        (int)nd + 1, MT_MAX_DIMS);
    int32_t p[MT_MAX_DIMS];
    for (int32_t i = 0, k = 0; i < nd + 1; i++) p[i] = i == ax ? -1 : k++;
    return mt_graph_dimshuffle(g, x, nd + 1, p);
}

mt_var mt_graph_squeeze(mt_graph *g, mt_var x, int32_t naxes, const int32_t *axes)
{
    if (!mt__check_vars(g, "squeeze", 1, &x)) return MT_VAR_NONE;
    const mt_type *t = mt_graph_type(g, x);
    bool drop[MT_MAX_DIMS] = {false};
    if (naxes <= 0 || !axes) {
        for (int32_t i = 0; i < t->ndim; i++) drop[i] = t->shape[i] == 1;
    } else {
        int32_t na, ax[MT_MAX_DIMS];
        if (!mt__norm_axes(g, "squeeze", naxes, axes, t->ndim, &na, ax)) return MT_VAR_NONE;
        for (int32_t i = 0; i < na; i++) {
            int64_t s = t->shape[ax[i]];
            if (s >= 0 && s != 1) {
                char b[128];
                return mt__fail(g, MT_ERR_SHAPE, "squeeze: cannot squeeze axis %d of size %lld in "
                                "%s", (int)ax[i], (long long)s,
                                mt__shape_str(t->ndim, t->shape, b, sizeof(b)));
            }
            drop[ax[i]] = true;
        }
    }
    int32_t p[MT_MAX_DIMS], n = 0;
    for (int32_t i = 0; i < t->ndim; i++)
        if (!drop[i]) p[n++] = i;
    return mt_graph_dimshuffle(g, x, n, p);
}

/* ---------------------------------------------------------------- broadcasting */

mt_status mt__infer_broadcast(mt__infer_ctx *cx)
{
    const mt_type *x = cx->in[0];
    bool like = cx->op == MT_OP_BROADCAST_LIKE;
    int32_t nd = like ? cx->in[1]->ndim : cx->attrs->nshape;
    const int64_t *target = like ? cx->in[1]->shape : cx->attrs->shape;
    char xs[128], ts[128];
    mt__shape_str(x->ndim, x->shape, xs, sizeof(xs));
    mt__shape_str(nd, target, ts, sizeof(ts));
    if (x->ndim > nd)
        return mt_err_set(MT_ERR_SHAPE, "%s: cannot broadcast %s to fewer dimensions %s",
                          cx->opname, xs, ts);
    mt_type t = mt_type_make(x->dtype, nd, NULL);
    for (int32_t i = 0; i < nd; i++) {
        int64_t r = target[i];
        if (!like && r < 0)
            return mt_err_set(MT_ERR_SHAPE, "broadcast_to: target %s must be static", ts);
        int32_t j = i - (nd - x->ndim);
        int64_t s = j >= 0 ? x->shape[j] : 1;
        if (s == 1 || s == r) {
            t.shape[i] = r;
        } else if (s < 0 || r < 0) {
            cx->rtcheck = true;
            t.shape[i] = r >= 0 ? r : s;
        } else {
            return mt_err_set(MT_ERR_SHAPE, "%s: cannot broadcast %s to %s", cx->opname, xs, ts);
        }
    }
    cx->out = t;
    return MT_OK;
}

mt_var mt_graph_broadcast_to(mt_graph *g, mt_var x, int32_t ndim, const int64_t *shape)
{
    if (!mt__check_vars(g, "broadcast_to", 1, &x)) return MT_VAR_NONE;
    if (ndim < 0 || ndim > MT_MAX_DIMS || (ndim > 0 && !shape))
        return mt__fail(g, MT_ERR_INVALID, "broadcast_to: ndim %d is out of range [0, %d]",
                        (int)ndim, MT_MAX_DIMS);
    x = mt__cast(g, x, mt_graph_type(g, x)->dtype);
    const mt_type *t = mt_graph_type(g, x);
    bool same = t->ndim == ndim;
    for (int32_t i = 0; same && i < ndim; i++) same = t->shape[i] == shape[i] && shape[i] >= 0;
    if (same) return x;
    mt_op_attrs a;
    memset(&a, 0, sizeof(a));
    a.nshape = ndim;
    for (int32_t i = 0; i < ndim; i++) a.shape[i] = shape[i];
    return mt__create(g, MT_OP_BROADCAST_TO, &a, 1, &x);
}

mt_var mt_graph_broadcast_like(mt_graph *g, mt_var x, mt_var ref)
{
    mt_var in[2] = {x, ref};
    if (!mt__check_vars(g, "broadcast_like", 2, in)) return MT_VAR_NONE;
    in[0] = mt__cast(g, x, mt_graph_type(g, x)->dtype);
    const mt_type *t = mt_graph_type(g, in[0]), *r = mt_graph_type(g, ref);
    bool same = t->ndim == r->ndim;
    for (int32_t i = 0; same && i < t->ndim; i++) same = t->shape[i] == r->shape[i] && r->shape[i] >= 0;
    if (same) return in[0];
    return mt__create(g, MT_OP_BROADCAST_LIKE, NULL, 2, in);
}

/* ---------------------------------------------------------------- concatenate, stack, split */

mt_status mt__infer_concat(mt__infer_ctx *cx)
{
    const mt_type *x0 = cx->in[0];
    int32_t axis = cx->attrs->axes[0];
    if (cx->attrs->naxes != 1 || axis < 0 || axis >= x0->ndim)
        return mt_err_set(MT_ERR_INVALID, "concatenate: axis %d is out of range for %d dimensions",
                          (int)axis, (int)x0->ndim);
    mt_type t = mt_type_make(x0->dtype, x0->ndim, x0->shape);
    for (int32_t k = 1; k < cx->nin; k++) {
        const mt_type *x = cx->in[k];
        char a[128], b[128];
        mt__shape_str(x0->ndim, x0->shape, a, sizeof(a));
        mt__shape_str(x->ndim, x->shape, b, sizeof(b));
        if (x->dtype != x0->dtype)
            return mt_err_set(MT_ERR_DTYPE, "concatenate: operand dtypes differ (%s and %s)",
                              mt_dtype_name(x0->dtype), mt_dtype_name(x->dtype));
        if (x->ndim != x0->ndim)
            return mt_err_set(MT_ERR_SHAPE, "concatenate: operands %s and %s have different ndim",
                              a, b);
        for (int32_t i = 0; i < t.ndim; i++) {
            int64_t s = x->shape[i];
            if (i == axis) {
                t.shape[i] = (t.shape[i] < 0 || s < 0) ? MT_DIM_UNKNOWN : t.shape[i] + s;
            } else if (t.shape[i] < 0 || s < 0) {
                if (t.shape[i] < 0) t.shape[i] = s;
                cx->rtcheck = true;
            } else if (t.shape[i] != s) {
                return mt_err_set(MT_ERR_SHAPE, "concatenate: shapes %s and %s differ outside axis "
                                  "%d", a, b, (int)axis);
            }
        }
    }
    cx->out = t;
    return MT_OK;
}

mt_var mt_graph_concatenate(mt_graph *g, int32_t n, const mt_var *xs, int32_t axis)
{
    if (!g) return MT_VAR_NONE;
    if (n < 1 || !xs) return mt__fail(g, MT_ERR_INVALID, "concatenate: needs at least one operand");
    if (!mt__check_vars(g, "concatenate", n, xs)) return MT_VAR_NONE;
    const mt_type *t0 = mt_graph_type(g, xs[0]);
    if (t0->ndim == 0)
        return mt__fail(g, MT_ERR_SHAPE, "concatenate: zero-dimensional operands cannot be "
                        "concatenated");
    mt_op_attrs a;
    memset(&a, 0, sizeof(a));
    a.naxes = 1;
    if (!mt__norm_axis(g, "concatenate", axis, t0->ndim, &a.axes[0])) return MT_VAR_NONE;
    mt_dtype dt = t0->dtype;
    for (int32_t i = 1; i < n; i++) dt = mt_dtype_promote(dt, mt_graph_type(g, xs[i])->dtype);
    if (n == 1) return mt__cast(g, xs[0], dt);
    mt_var small[8];
    mt_var *ops = n <= 8 ? small : mt_malloc((size_t)n * sizeof(mt_var));
    if (!ops) return mt__fail(g, MT_ERR_NOMEM, "concatenate: out of memory");
    mt_var r = MT_VAR_NONE;
    bool ok = true;
    for (int32_t i = 0; i < n && ok; i++) ok = (ops[i] = mt__cast(g, xs[i], dt)) != MT_VAR_NONE;
    if (ok) r = mt__create(g, MT_OP_CONCAT, &a, n, ops);
    if (ops != small) mt_free(ops);
    return r;
}

mt_var mt_graph_stack(mt_graph *g, int32_t n, const mt_var *xs, int32_t axis)
{
    if (!g) return MT_VAR_NONE;
    if (n < 1 || !xs) return mt__fail(g, MT_ERR_INVALID, "stack: needs at least one operand");
    if (!mt__check_vars(g, "stack", n, xs)) return MT_VAR_NONE;
    const mt_type *t0 = mt_graph_type(g, xs[0]);
    for (int32_t i = 1; i < n; i++) {
        const mt_type *t = mt_graph_type(g, xs[i]);
        bool same = t->ndim == t0->ndim;
        for (int32_t d = 0; same && d < t->ndim; d++)
            same = t->shape[d] < 0 || t0->shape[d] < 0 || t->shape[d] == t0->shape[d];
        if (!same) {
            char a[128], b[128];
            return mt__fail(g, MT_ERR_SHAPE, "stack: all operands must have the same shape; %s "
                            "and %s differ", mt__shape_str(t0->ndim, t0->shape, a, sizeof(a)),
                            mt__shape_str(t->ndim, t->shape, b, sizeof(b)));
        }
    }
    int32_t ax;
    if (!mt__norm_axis(g, "stack", axis, t0->ndim + 1, &ax)) return MT_VAR_NONE;
    mt_var small[8];
    mt_var *ops = n <= 8 ? small : mt_malloc((size_t)n * sizeof(mt_var));
    if (!ops) return mt__fail(g, MT_ERR_NOMEM, "stack: out of memory");
    bool ok = true;
    for (int32_t i = 0; i < n && ok; i++) ok = (ops[i] = mt_graph_expand_dims(g, xs[i], ax)) != 0;
    mt_var r = ok ? mt_graph_concatenate(g, n, ops, ax) : MT_VAR_NONE;
    if (ops != small) mt_free(ops);
    return r;
}

mt_status mt_graph_split(mt_graph *g, mt_var x, int32_t axis, int32_t n, const int64_t *sizes,
                         mt_var *outs)
{
    for (int32_t i = 0; outs && i < n; i++) outs[i] = MT_VAR_NONE;
    if (!g) return MT_ERR_INVALID;
    if (n < 1 || !outs)
        return mt__fail_status(g, MT_ERR_INVALID, "split: needs at least one part (got %d)", (int)n);
    if (!mt__check_vars(g, "split", 1, &x)) return g->status ? g->status : MT_ERR_INVALID;
    const mt_type *t = mt_graph_type(g, x);
    int32_t ax;
    if (t->ndim == 0)
        return mt__fail_status(g, MT_ERR_SHAPE, "split: cannot split a zero-dimensional value");
    if (!mt__norm_axis(g, "split", axis, t->ndim, &ax)) return g->status;
    int64_t dim = t->shape[ax];
    int64_t part[64];
    if (n > 64) return mt__fail_status(g, MT_ERR_INVALID, "split: at most 64 parts (got %d)", (int)n);
    if (!sizes) {
        if (dim < 0)
            return mt__fail_status(g, MT_ERR_SHAPE, "split: equal parts need a static size on axis "
                                   "%d", (int)ax);
        if (dim % n != 0)
            return mt__fail_status(g, MT_ERR_SHAPE, "split: axis %d of size %lld is not divisible "
                                   "into %d equal parts", (int)ax, (long long)dim, (int)n);
        for (int32_t i = 0; i < n; i++) part[i] = dim / n;
    } else {
        int64_t total = 0;
        for (int32_t i = 0; i < n; i++) {
            part[i] = sizes[i];
            if (part[i] < 0 && !(part[i] == -1 && i == n - 1))
                return mt__fail_status(g, MT_ERR_INVALID, "split: invalid part size %lld (only "
                                       "the last may be -1)", (long long)part[i]);
            if (part[i] >= 0) total += part[i];
        }
        if (dim >= 0 && (part[n - 1] == -1 ? total > dim : total != dim))
            return mt__fail_status(g, MT_ERR_SHAPE, "split: part sizes add up to %lld, axis %d "
                                   "has size %lld", (long long)total, (int)ax, (long long)dim);
    }
    int64_t start = 0;
    for (int32_t i = 0; i < n; i++) {
        int64_t stop = part[i] < 0 ? MT_IDX_NONE : start + part[i];
        outs[i] = mt_graph_slice_axis(g, x, ax, start, stop, 1);
        if (!outs[i]) {
            for (int32_t j = 0; j < n; j++) outs[j] = MT_VAR_NONE;
            return g->status ? g->status : MT_ERR_INTERNAL;
        }
        start = stop;
    }
    return MT_OK;
}

/* ---------------------------------------------------------------- basic slicing */

/* Python slice over a known size: first index and length. */
static void slice_bounds(int64_t n, const mt_idx *it, int64_t *first, int64_t *len)
{
    int64_t step = it->step, s = it->start, e = it->stop;
    if (step > 0) {
        s = s == MT_IDX_NONE ? 0 : s < 0 ? (s + n < 0 ? 0 : s + n) : (s > n ? n : s);
        e = e == MT_IDX_NONE ? n : e < 0 ? (e + n < 0 ? 0 : e + n) : (e > n ? n : e);
        *len = e > s ? (e - s + step - 1) / step : 0;
    } else {
        s = s == MT_IDX_NONE ? n - 1 : s < 0 ? (s + n < -1 ? -1 : s + n) : (s > n - 1 ? n - 1 : s);
        e = e == MT_IDX_NONE ? -1 : e < 0 ? (e + n < -1 ? -1 : e + n) : (e > n - 1 ? n - 1 : e);
        *len = s > e ? (s - e - step - 1) / (-step) : 0;
    }
    *first = s;
}

/* Slice shape of x under idx (one item per axis). */
static mt_status slice_shape(const char *name, const mt_type *x, const mt_op_attrs *a,
                             mt_type *t, bool *rtcheck)
{
    char xs[128];
    if (a->nidx != x->ndim)
        return mt_err_set(MT_ERR_INVALID, "%s: %d index items for %d dimensions", name,
                          (int)a->nidx, (int)x->ndim);
    *t = mt_type_make(x->dtype, 0, NULL);
    for (int32_t i = 0; i < x->ndim; i++) {
        const mt_idx *it = &a->idx[i];
        int64_t n = x->shape[i];
        if (it->kind == MT_IDX_INT) {
            if (n < 0) {
                *rtcheck = true;
            } else if (it->start < -n || it->start >= n) {
                return mt_err_set(MT_ERR_RANGE, "%s: index %lld is out of bounds for axis %d with "
                                  "size %lld (shape %s)", name, (long long)it->start, (int)i,
                                  (long long)n, mt__shape_str(x->ndim, x->shape, xs, sizeof(xs)));
            }
            continue;
        }
        if (it->kind != MT_IDX_SLICE)
            return mt_err_set(MT_ERR_INVALID, "%s: index item %d has kind %d (nodes hold only "
                              "slices and integers)", name, (int)i, (int)it->kind);
        if (it->step == 0 || it->step == MT_IDX_NONE)
            return mt_err_set(MT_ERR_INVALID, "%s: slice step cannot be zero", name);
        int64_t first, len = MT_DIM_UNKNOWN;
        if (n >= 0) slice_bounds(n, it, &first, &len);
        t->shape[t->ndim++] = len;
    }
    return MT_OK;
}

mt_status mt__infer_slice(mt__infer_ctx *cx)
{
    const mt_type *x = cx->in[0];
    mt_type s;
    mt_status st = slice_shape(cx->opname, x, cx->attrs, &s, &cx->rtcheck);
    if (st) return st;
    if (cx->op == MT_OP_SLICE) {
        cx->out = s;
        return MT_OK;
    }
    const mt_type *y = cx->in[1];
    char ys[128], ss[128];
    mt__shape_str(y->ndim, y->shape, ys, sizeof(ys));
    mt__shape_str(s.ndim, s.shape, ss, sizeof(ss));
    if (y->dtype != x->dtype)
        return mt_err_set(MT_ERR_DTYPE, "%s: value dtype %s differs from %s", cx->opname,
                          mt_dtype_name(y->dtype), mt_dtype_name(x->dtype));
    if (y->ndim != s.ndim)
        return mt_err_set(MT_ERR_SHAPE, "%s: value of shape %s does not fit the indexed shape %s",
                          cx->opname, ys, ss);
    for (int32_t i = 0; i < s.ndim; i++) {
        if (y->shape[i] == 1 || y->shape[i] == s.shape[i]) continue;
        if (y->shape[i] < 0 || s.shape[i] < 0) {
            cx->rtcheck = true;
            continue;
        }
        return mt_err_set(MT_ERR_SHAPE, "%s: value of shape %s does not fit the indexed shape %s",
                          cx->opname, ys, ss);
    }
    cx->out = mt_type_make(x->dtype, x->ndim, x->shape);
    return MT_OK;
}

/* Tight normal form of a slice over a known size, so equal selections hash equal. */
static void canon_slice(int64_t n, mt_idx *it)
{
    int64_t first, len;
    slice_bounds(n, it, &first, &len);
    if (len == 0) {
        it->start = 0;
        it->stop = 0;
        it->step = 1;
        return;
    }
    if (len == 1) it->step = 1;
    int64_t last = first + (len - 1) * it->step;
    it->start = first;
    it->stop = it->step > 0 ? last + 1 : (last - 1 < 0 ? MT_IDX_NONE : last - 1);
}

/* Counts the axis-consuming items (slices, integers) and newaxis items of an index list,
 * checking the kinds and that there is at most one ellipsis. */
static bool count_items(mt_graph *g, const char *name, int32_t n, const mt_idx *items,
                        bool allow_newaxis, int32_t *consume, int32_t *newaxes)
{
    bool ellipsis = false;
    *consume = *newaxes = 0;
    if (n < 0 || (n > 0 && !items)) {
        mt__fail(g, MT_ERR_INVALID, "%s: invalid index list", name);
        return false;
    }
    for (int32_t i = 0; i < n; i++) {
        switch (items[i].kind) {
        case MT_IDX_SLICE:
        case MT_IDX_INT:
            (*consume)++;
            break;
        case MT_IDX_NEWAXIS:
            if (!allow_newaxis) {
                mt__fail(g, MT_ERR_INVALID, "%s: newaxis is not allowed here", name);
                return false;
            }
            (*newaxes)++;
            break;
        case MT_IDX_ELLIPSIS:
            if (ellipsis) {
                mt__fail(g, MT_ERR_INVALID, "%s: an index can only have a single ellipsis", name);
                return false;
            }
            ellipsis = true;
            break;
        default:
            mt__fail(g, MT_ERR_INVALID, "%s: invalid index item kind %d", name, (int)items[i].kind);
            return false;
        }
    }
    return true;
}

bool mt__index_attrs(mt_graph *g, const char *name, mt_var x, int32_t n, const mt_idx *items,
                     bool allow_newaxis, mt_op_attrs *a, bool *identity, int32_t *nperm,
                     int32_t *perm)
{
    const mt_type *t = mt_graph_type(g, x);
    memset(a, 0, sizeof(*a));
    *nperm = -1;
    int32_t consume, newaxes;
    if (!count_items(g, name, n, items, allow_newaxis, &consume, &newaxes)) return false;
    if (consume > t->ndim) {
        mt__fail(g, MT_ERR_INVALID, "%s: too many indices (%d) for %d dimensions", name,
                 (int)consume, (int)t->ndim);
        return false;
    }
    int32_t out_nd = 0, axis = 0, kslice = 0;
    *identity = newaxes == 0;
    int32_t pat[2 * MT_MAX_DIMS];
    for (int32_t i = 0; i <= n; i++) {
        int32_t fill = 0;
        if (i == n)
            fill = t->ndim - axis; /* trailing ':' */
        else if (items[i].kind == MT_IDX_ELLIPSIS)
            fill = t->ndim - consume;
        for (int32_t f = 0; f < fill; f++) {
            a->idx[axis] = mt_idx_slice(MT_IDX_NONE, MT_IDX_NONE, 1);
            if (t->shape[axis] >= 0) canon_slice(t->shape[axis], &a->idx[axis]);
            pat[out_nd++] = kslice++;
            axis++;
        }
        if (i == n || items[i].kind == MT_IDX_ELLIPSIS) continue;
        mt_idx it = items[i];
        if (it.kind == MT_IDX_NEWAXIS) {
            pat[out_nd++] = -1;
            continue;
        }
        if (it.kind == MT_IDX_INT) {
            *identity = false;
            int64_t dim = t->shape[axis];
            if (dim >= 0 && (it.start < -dim || it.start >= dim)) {
                mt__fail(g, MT_ERR_RANGE, "%s: index %lld is out of bounds for axis %d with size "
                         "%lld", name, (long long)it.start, (int)axis, (long long)dim);
                return false;
            }
            if (dim >= 0 && it.start < 0) it.start += dim;
            a->idx[axis++] = mt_idx_int(it.start);
            continue;
        }
        if (it.step == 0) {
            mt__fail(g, MT_ERR_INVALID, "%s: slice step cannot be zero", name);
            return false;
        }
        if (it.step == MT_IDX_NONE) it.step = 1;
        if (t->shape[axis] >= 0) {
            canon_slice(t->shape[axis], &it);
            if (!(it.start == 0 && it.step == 1 && it.stop == t->shape[axis])) *identity = false;
        } else {
            if (it.step > 0 && it.start == 0) it.start = MT_IDX_NONE;
            if (!(it.start == MT_IDX_NONE && it.stop == MT_IDX_NONE && it.step == 1))
                *identity = false;
        }
        a->idx[axis++] = it;
        pat[out_nd++] = kslice++;
    }
    a->nidx = t->ndim;
    if (out_nd > MT_MAX_DIMS) {
        mt__fail(g, MT_ERR_INVALID, "%s: result would have %d dimensions (maximum %d)", name,
                 (int)out_nd, MT_MAX_DIMS);
        return false;
    }
    if (newaxes) {
        *nperm = out_nd;
        for (int32_t i = 0; i < out_nd; i++) perm[i] = pat[i];
    }
    return true;
}

mt_var mt_graph_index(mt_graph *g, mt_var x, int32_t n, const mt_idx *items)
{
    if (!mt__check_vars(g, "index", 1, &x)) return MT_VAR_NONE;
    x = mt__cast(g, x, mt_graph_type(g, x)->dtype);
    mt_op_attrs a;
    bool identity;
    int32_t nperm, perm[MT_MAX_DIMS];
    if (!mt__index_attrs(g, "index", x, n, items, true, &a, &identity, &nperm, perm))
        return MT_VAR_NONE;
    bool full = true;
    for (int32_t i = 0; i < a.nidx && full; i++) {
        const mt_idx *it = &a.idx[i];
        int64_t dim = mt_graph_type(g, x)->shape[i];
        full = it->kind == MT_IDX_SLICE && it->step == 1 &&
               (dim >= 0 ? (it->start == 0 && it->stop == dim)
                         : (it->start == MT_IDX_NONE && it->stop == MT_IDX_NONE));
    }
    mt_var r = full ? x : mt__create(g, MT_OP_SLICE, &a, 1, &x);
    if (r && nperm >= 0) r = mt_graph_dimshuffle(g, r, nperm, perm);
    return r;
}

mt_var mt_graph_slice_axis(mt_graph *g, mt_var x, int32_t axis, int64_t start, int64_t stop,
                           int64_t step)
{
    if (!mt__check_vars(g, "slice", 1, &x)) return MT_VAR_NONE;
    int32_t nd = mt_graph_type(g, x)->ndim, ax;
    if (!mt__norm_axis(g, "slice", axis, nd, &ax)) return MT_VAR_NONE;
    mt_idx items[MT_MAX_DIMS];
    for (int32_t i = 0; i < nd; i++) items[i] = mt_idx_all();
    items[ax] = mt_idx_slice(start, stop, step);
    return mt_graph_index(g, x, nd, items);
}
