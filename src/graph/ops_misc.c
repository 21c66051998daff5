/* Products (matmul with NumPy's batching and 1-D rules, dot, gemm), generators (filled arrays,
 * arange, Philox random draws) and the identity ops that carry gradient behaviour or shape
 * facts (stop_gradient, grad_clip, shape_assert). MATMUL nodes always have operands of equal
 * ndim >= 2; the builder adds and removes the axes NumPy adds for 1-D operands with
 * DIMSHUFFLE nodes, so the JIT and the gradients see one shape rule. */
#include <math.h>
#include <string.h>

#include "graph_impl.h"

/* ---------------------------------------------------------------- matmul and gemm */

mt_status mt__infer_matmul(mt__infer_ctx *cx)
{
    const mt_type *a = cx->in[0], *b = cx->in[1];
    const char *name = cx->opname;
    bool gemm = cx->op == MT_OP_GEMM;
    /* shapes as text for the messages, formatted only on an error: this runs on every call of a
     * compiled function whose shapes are checked at run time */
    char as[128], bs[128];
#define MM_SHAPES()                                                                                \
    (mt__shape_str(a->ndim, a->shape, as, sizeof(as)),                                             \
     mt__shape_str(b->ndim, b->shape, bs, sizeof(bs)))
    if (a->ndim < 2 || a->ndim != b->ndim)
        return MM_SHAPES(), mt_err_set(MT_ERR_SHAPE,
                                       "%s: operands must have equal ndim >= 2, got %s and %s "
                                       "(the matmul builder handles NumPy's 1-D and batch rules)",
                                       name, as, bs);
    if (a->dtype != b->dtype || (gemm && cx->in[2]->dtype != a->dtype))
        return mt_err_set(MT_ERR_DTYPE, "%s: operand dtypes differ (%s and %s)", name,
                          mt_dtype_name(a->dtype),
                          mt_dtype_name(a->dtype != b->dtype ? b->dtype : cx->in[2]->dtype));
    if (gemm && !mt_dtype_is_float(a->dtype))
        return mt_err_set(MT_ERR_DTYPE, "gemm: needs float operands, got %s",
                          mt_dtype_name(a->dtype));
    int32_t nd = a->ndim;
    bool ta = gemm && cx->attrs->trans_a, tb = gemm && cx->attrs->trans_b;
    int64_t m = a->shape[nd - (ta ? 1 : 2)], ka = a->shape[nd - (ta ? 2 : 1)];
    int64_t kb = b->shape[nd - (tb ? 1 : 2)], n = b->shape[nd - (tb ? 2 : 1)];
    if (ka >= 0 && kb >= 0 && ka != kb)
        return MM_SHAPES(),
               mt_err_set(MT_ERR_SHAPE, "%s: inner dimensions differ: %s @ %s (%lld vs %lld)", name,
                          as, bs, (long long)ka, (long long)kb);
    if (ka < 0 || kb < 0) cx->rtcheck = true;
    mt_type t = mt_type_make(a->dtype, nd, NULL);
    for (int32_t i = 0; i < nd - 2; i++) {
        int64_t r = mt__broadcast_dim(a->shape[i], b->shape[i], &cx->rtcheck);
        if (r == -2)
            return MM_SHAPES(), mt_err_set(MT_ERR_SHAPE,
                                           "%s: batch dimensions of %s and %s do "
                                           "not broadcast",
                                           name, as, bs);
        t.shape[i] = r;
    }
    t.shape[nd - 2] = m;
    t.shape[nd - 1] = n;
    if (gemm) {
        const mt_type *c = cx->in[2];
        char cs[128], os[128];
#define GEMM_SHAPES()                                                                              \
    (mt__shape_str(c->ndim, c->shape, cs, sizeof(cs)), mt__shape_str(nd, t.shape, os, sizeof(os)))
        if (c->ndim != nd)
            return GEMM_SHAPES(),
                   mt_err_set(MT_ERR_SHAPE, "gemm: c of shape %s must have the product's ndim %d",
                              cs, (int)nd);
        for (int32_t i = 0; i < nd; i++) {
            int64_t s = c->shape[i];
            if (s == 1 || s == t.shape[i]) continue;
            if (s >= 0 && t.shape[i] >= 0)
                return GEMM_SHAPES(), mt_err_set(MT_ERR_SHAPE,
                                                 "gemm: c of shape %s does not "
                                                 "broadcast to the product's shape %s",
                                                 cs, os);
            cx->rtcheck = true;
            if (t.shape[i] < 0) t.shape[i] = s;
        }
    }
    cx->out = t;
    return MT_OK;
#undef MM_SHAPES
#undef GEMM_SHAPES
}

/* NumPy matmul: 1-D promotion, dtype promotion, batch broadcasting; the MATMUL node itself
 * sees operands of equal ndim >= 2. */
mt_var mt_graph_matmul(mt_graph *g, mt_var a, mt_var b)
{
    mt_var in[2] = {a, b};
    if (!mt__check_vars(g, "matmul", 2, in)) return MT_VAR_NONE;
    const mt_type *at = mt_graph_type(g, a), *bt = mt_graph_type(g, b);
    char as[128], bs[128];
    mt__shape_str(at->ndim, at->shape, as, sizeof(as));
    mt__shape_str(bt->ndim, bt->shape, bs, sizeof(bs));
    if (at->ndim == 0 || bt->ndim == 0)
        return mt__fail(g, MT_ERR_SHAPE, "matmul: operands must be at least 1-D, got %s @ %s", as,
                        bs);
    bool a1 = at->ndim == 1, b1 = bt->ndim == 1;
    int64_t ka = at->shape[at->ndim - 1], kb = bt->shape[b1 ? 0 : bt->ndim - 2];
    if (ka >= 0 && kb >= 0 && ka != kb)
        return mt__fail(g, MT_ERR_SHAPE, "matmul: inner dimensions differ: %s @ %s (%lld vs %lld)",
                        as, bs, (long long)ka, (long long)kb);
    mt_dtype dt = mt_dtype_promote(at->dtype, bt->dtype);
    mt_var x = mt__cast(g, a, dt), y = mt__cast(g, b, dt);
    if (a1) x = mt_graph_expand_dims(g, x, 0);
    if (b1) y = mt_graph_expand_dims(g, y, -1);
    if (!x || !y) return MT_VAR_NONE;
    int32_t nd = mt_graph_type(g, x)->ndim > mt_graph_type(g, y)->ndim ? mt_graph_type(g, x)->ndim
                                                                       : mt_graph_type(g, y)->ndim;
    in[0] = mt__expand_ndim(g, x, nd);
    in[1] = mt__expand_ndim(g, y, nd);
    if (!in[0] || !in[1]) return MT_VAR_NONE;
    const mt_type *xt = mt_graph_type(g, in[0]), *yt = mt_graph_type(g, in[1]);
    for (int32_t i = 0; i < nd - 2; i++) {
        bool rt = false;
        if (mt__broadcast_dim(xt->shape[i], yt->shape[i], &rt) == -2)
            return mt__fail(g, MT_ERR_SHAPE, "matmul: batch dimensions of %s and %s do not "
                            "broadcast", as, bs);
    }
    mt_var r = mt__create(g, MT_OP_MATMUL, NULL, 2, in);
    if (!r || (!a1 && !b1)) return r;
    int32_t p[MT_MAX_DIMS], k = 0;
    for (int32_t i = 0; i < nd; i++) {
        if ((a1 && i == nd - 2) || (b1 && i == nd - 1)) continue;
        p[k++] = i;
    }
    return mt_graph_dimshuffle(g, r, k, p);
}

mt_var mt_graph_dot(mt_graph *g, mt_var a, mt_var b)
{
    mt_var in[2] = {a, b};
    if (!mt__check_vars(g, "dot", 2, in)) return MT_VAR_NONE;
    int32_t na = mt_graph_type(g, a)->ndim, nb = mt_graph_type(g, b)->ndim;
    if (na > 2 || nb > 2)
        return mt__fail(g, MT_ERR_INVALID, "dot: operands above 2-D (%d-D and %d-D) are not "
                        "supported; use matmul", (int)na, (int)nb);
    if (na == 0 || nb == 0) return mt_graph_mul(g, a, b);
    return mt_graph_matmul(g, a, b);
}

mt_var mt_graph_gemm(mt_graph *g, mt_var a, mt_var b, mt_var c, double alpha, double beta,
                     bool trans_a, bool trans_b)
{
    mt_var in[3] = {a, b, c};
    if (!mt__check_vars(g, "gemm", 3, in)) return MT_VAR_NONE;
    const mt_type *at = mt_graph_type(g, a), *bt = mt_graph_type(g, b), *ct = mt_graph_type(g, c);
    if (at->ndim < 2 || bt->ndim < 2) {
        char as[128], bs[128];
        return mt__fail(g, MT_ERR_SHAPE, "gemm: a and b must be at least 2-D, got %s and %s",
                        mt__shape_str(at->ndim, at->shape, as, sizeof(as)),
                        mt__shape_str(bt->ndim, bt->shape, bs, sizeof(bs)));
    }
    mt_dtype dt = mt_dtype_promote(mt_dtype_promote(at->dtype, bt->dtype),
                                   ct->weak ? at->dtype : ct->dtype);
    if (!mt_dtype_is_float(dt))
        return mt__fail(g, MT_ERR_DTYPE, "gemm: needs float operands, got %s",
                        mt_dtype_name(dt));
    int32_t nd = at->ndim > bt->ndim ? at->ndim : bt->ndim;
    for (int32_t i = 0; i < 3; i++) in[i] = mt__expand_ndim(g, mt__cast(g, in[i], dt), nd);
    if (!in[0] || !in[1] || !in[2]) return MT_VAR_NONE;
    mt_op_attrs at_;
    memset(&at_, 0, sizeof(at_));
    at_.alpha = alpha;
    at_.beta = beta;
    at_.trans_a = trans_a;
    at_.trans_b = trans_b;
    return mt__create(g, MT_OP_GEMM, &at_, 3, in);
}

/* ---------------------------------------------------------------- filled arrays */

mt_var mt_graph_full(mt_graph *g, mt_dtype dt, int32_t ndim, const int64_t *shape, double value)
{
    if (!g) return MT_VAR_NONE;
    if (ndim < 0 || ndim > MT_MAX_DIMS || (ndim > 0 && !shape))
        return mt__fail(g, MT_ERR_INVALID, "full: ndim %d is out of range [0, %d]", (int)ndim,
                        MT_MAX_DIMS);
    for (int32_t i = 0; i < ndim; i++)
        if (shape[i] < 0) {
            char b[128];
            return mt__fail(g, MT_ERR_SHAPE, "full: shape %s must be static (use full_like for "
                            "unknown sizes)", mt__shape_str(ndim, shape, b, sizeof(b)));
        }
    return mt_graph_broadcast_to(g, mt_graph_scalar(g, dt, value), ndim, shape);
}

mt_var mt_graph_zeros(mt_graph *g, mt_dtype dt, int32_t ndim, const int64_t *shape)
{
    return mt_graph_full(g, dt, ndim, shape, 0.0);
}

mt_var mt_graph_ones(mt_graph *g, mt_dtype dt, int32_t ndim, const int64_t *shape)
{
    return mt_graph_full(g, dt, ndim, shape, 1.0);
}

mt_var mt_graph_full_like(mt_graph *g, mt_var x, mt_dtype dt, double value)
{
    if (!mt__check_vars(g, "full_like", 1, &x)) return MT_VAR_NONE;
    const mt_type *t = mt_graph_type(g, x);
    if (dt == MT_DTYPE_COUNT) dt = t->dtype;
    mt_var c = mt_graph_scalar(g, dt, value);
    if (mt_type_is_static(t)) return mt_graph_broadcast_to(g, c, t->ndim, t->shape);
    return mt_graph_broadcast_like(g, c, x);
}

mt_var mt_graph_zeros_like(mt_graph *g, mt_var x)
{
    return mt_graph_full_like(g, x, MT_DTYPE_COUNT, 0.0);
}

mt_var mt_graph_ones_like(mt_graph *g, mt_var x)
{
    return mt_graph_full_like(g, x, MT_DTYPE_COUNT, 1.0);
}

/* ---------------------------------------------------------------- arange and random */

static int64_t arange_count(double start, double stop, double step)
{
    double n = ceil((stop - start) / step);
    return n > 0 ? (int64_t)n : 0;
}

mt_status mt__infer_generator(mt__infer_ctx *cx)
{
    const mt_op_attrs *a = cx->attrs;
    if (!mt_dtype_valid(a->dtype))
        return mt_err_set(MT_ERR_DTYPE, "%s: invalid dtype %d", cx->opname, (int)a->dtype);
    if (cx->op == MT_OP_ARANGE) {
        if (a->step == 0 || !isfinite(a->start) || !isfinite(a->stop) || !isfinite(a->step))
            return mt_err_set(MT_ERR_INVALID, "arange: invalid range start %g stop %g step %g%s",
                              a->start, a->stop, a->step, a->step == 0 ? " (step is zero)" : "");
        int64_t n = arange_count(a->start, a->stop, a->step);
        cx->out = mt_type_make(a->dtype, 1, &n);
        return MT_OK;
    }
    switch (a->dist) {
    case MT_RANDOM_UNIFORM:
    case MT_RANDOM_NORMAL:
        if (!mt_dtype_is_float(a->dtype))
            return mt_err_set(MT_ERR_DTYPE, "random: %s draws need a float dtype, got %s",
                              a->dist == MT_RANDOM_UNIFORM ? "uniform" : "normal",
                              mt_dtype_name(a->dtype));
        if (!isfinite(a->p0) || !isfinite(a->p1) || (a->dist == MT_RANDOM_NORMAL && a->p1 < 0))
            return mt_err_set(MT_ERR_INVALID, "random: invalid %s parameters (%g, %g)",
                              a->dist == MT_RANDOM_UNIFORM ? "uniform" : "normal", a->p0, a->p1);
        break;
    case MT_RANDOM_BINOMIAL:
        if (!(a->p0 >= 0) || a->p0 != floor(a->p0) || !(a->p1 >= 0 && a->p1 <= 1))
            return mt_err_set(MT_ERR_INVALID, "random: binomial needs an integer n >= 0 and p in "
                              "[0, 1], got n=%g p=%g", a->p0, a->p1);
        break;
    default:
        return mt_err_set(MT_ERR_INVALID, "random: invalid distribution %d", (int)a->dist);
    }
    if (cx->nin == 1) {
        cx->out = mt_type_make(a->dtype, cx->in[0]->ndim, cx->in[0]->shape);
        return MT_OK;
    }
    for (int32_t i = 0; i < a->nshape; i++)
        if (a->shape[i] < 0) {
            char b[128];
            return mt_err_set(MT_ERR_SHAPE, "random: shape %s must be static (pass a shape "
                              "reference for unknown sizes)",
                              mt__shape_str(a->nshape, a->shape, b, sizeof(b)));
        }
    cx->out = mt_type_make(a->dtype, a->nshape, a->shape);
    return MT_OK;
}

mt_var mt_graph_arange(mt_graph *g, mt_dtype dt, double start, double stop, double step)
{
    if (!g) return MT_VAR_NONE;
    mt_op_attrs a;
    memset(&a, 0, sizeof(a));
    a.dtype = dt;
    a.start = start;
    a.stop = stop;
    a.step = step;
    return mt__create(g, MT_OP_ARANGE, &a, 0, NULL);
}

mt_var mt_graph_random(mt_graph *g, mt_random_dist dist, mt_dtype dt, int32_t ndim,
                       const int64_t *shape, mt_var shape_ref, double p0, double p1)
{
    if (!g) return MT_VAR_NONE;
    mt_op_attrs a;
    memset(&a, 0, sizeof(a));
    a.dist = dist;
    a.dtype = dt;
    a.p0 = p0;
    a.p1 = p1;
    a.seed = g->seed;
    a.stream = ++g->next_stream;
    if (shape_ref != MT_VAR_NONE) return mt__create(g, MT_OP_RANDOM, &a, 1, &shape_ref);
    if (ndim < 0 || ndim > MT_MAX_DIMS || (ndim > 0 && !shape))
        return mt__fail(g, MT_ERR_INVALID, "random: ndim %d is out of range [0, %d]", (int)ndim,
                        MT_MAX_DIMS);
    a.nshape = ndim;
    for (int32_t i = 0; i < ndim; i++) a.shape[i] = shape[i];
    return mt__create(g, MT_OP_RANDOM, &a, 0, NULL);
}

mt_var mt_graph_random_uniform(mt_graph *g, mt_dtype dt, int32_t ndim, const int64_t *shape,
                               double low, double high)
{
    return mt_graph_random(g, MT_RANDOM_UNIFORM, dt, ndim, shape, MT_VAR_NONE, low, high);
}

mt_var mt_graph_random_normal(mt_graph *g, mt_dtype dt, int32_t ndim, const int64_t *shape,
                              double mean, double stddev)
{
    return mt_graph_random(g, MT_RANDOM_NORMAL, dt, ndim, shape, MT_VAR_NONE, mean, stddev);
}

mt_var mt_graph_random_binomial(mt_graph *g, mt_dtype dt, int32_t ndim, const int64_t *shape,
                                int64_t n, double p)
{
    return mt_graph_random(g, MT_RANDOM_BINOMIAL, dt, ndim, shape, MT_VAR_NONE, (double)n, p);
}

/* ---------------------------------------------------------------- identities */

mt_status mt__infer_identity(mt__infer_ctx *cx)
{
    const mt_type *x = cx->in[0];
    const mt_op_attrs *a = cx->attrs;
    mt_type t = mt_type_make(x->dtype, x->ndim, x->shape);
    if (cx->op == MT_OP_GRAD_CLIP && !(a->p0 <= a->p1))
        return mt_err_set(MT_ERR_INVALID, "grad_clip: bounds [%g, %g] are empty", a->p0, a->p1);
    if (cx->op == MT_OP_SHAPE_ASSERT) {
        char xs[128], ss[128];
        mt__shape_str(x->ndim, x->shape, xs, sizeof(xs));
        mt__shape_str(a->nshape, a->shape, ss, sizeof(ss));
        if (a->nshape != x->ndim)
            return mt_err_set(MT_ERR_SHAPE, "shape_assert: shape %s does not match the asserted "
                              "%s", xs, ss);
        for (int32_t i = 0; i < x->ndim; i++) {
            int64_t s = a->shape[i];
            if (s < -1)
                return mt_err_set(MT_ERR_INVALID, "shape_assert: invalid size %lld in %s",
                                  (long long)s, ss);
            if (s == -1 || s == x->shape[i]) continue;
            if (x->shape[i] >= 0)
                return mt_err_set(MT_ERR_SHAPE, "shape_assert: shape %s does not match the "
                                  "asserted %s", xs, ss);
            t.shape[i] = s;
            cx->rtcheck = true;
        }
    }
    cx->out = t;
    return MT_OK;
}

mt_var mt_graph_stop_gradient(mt_graph *g, mt_var x)
{
    if (!mt__check_vars(g, "stop_gradient", 1, &x)) return MT_VAR_NONE;
    return mt__create(g, MT_OP_STOP_GRADIENT, NULL, 1, &x);
}

mt_var mt_graph_grad_clip(mt_graph *g, mt_var x, double lo, double hi)
{
    if (!mt__check_vars(g, "grad_clip", 1, &x)) return MT_VAR_NONE;
    mt_op_attrs a;
    memset(&a, 0, sizeof(a));
    a.p0 = lo;
    a.p1 = hi;
    return mt__create(g, MT_OP_GRAD_CLIP, &a, 1, &x);
}

mt_var mt_graph_shape_assert(mt_graph *g, mt_var x, int32_t ndim, const int64_t *shape)
{
    if (!mt__check_vars(g, "shape_assert", 1, &x)) return MT_VAR_NONE;
    if (ndim < 0 || ndim > MT_MAX_DIMS || (ndim > 0 && !shape))
        return mt__fail(g, MT_ERR_INVALID, "shape_assert: ndim %d is out of range [0, %d]",
                        (int)ndim, MT_MAX_DIMS);
    const mt_type *t = mt_graph_type(g, x);
    mt_op_attrs a;
    memset(&a, 0, sizeof(a));
    a.nshape = ndim;
    bool refines = false;
    for (int32_t i = 0; i < ndim; i++) {
        a.shape[i] = shape[i];
        if (i < t->ndim && shape[i] >= 0 && t->shape[i] < 0) refines = true;
    }
    /* static contradictions are errors even when nothing is left to check at run time */
    mt_type out;
    bool rt;
    if (mt__infer_node(MT_OP_SHAPE_ASSERT, &a, 1, &t, &out, &rt)) return mt__fail_current(g);
    if (!refines) return x; /* nothing to assert beyond what the type already says */
    return mt__create(g, MT_OP_SHAPE_ASSERT, &a, 1, &x);
}
