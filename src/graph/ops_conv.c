/* Two-dimensional convolution and pooling over the last two axes of [N, C, H, W] arrays: type
 * and shape inference for CONV2D, its two gradient ops (with respect to the input and to the
 * weights), POOL2D (max or mean, floor or ceil output sizes) and its gradient, and the
 * builders. The window attributes (size, stride, pad, mode, ceil_mode) live in attrs.win.
 *
 * Shapes. conv2d: out = (H + 2p - K) / s + 1 per spatial axis, which needs H + 2p >= K.
 * pool2d: out = floor((H + 2p - P + (ceil ? s - 1 : 0)) / s) + 1 (floor division), one less in
 * ceil mode when the last window would start at or past H + p (PyTorch's rule; such a window
 * would hold no input element), and at least 1. Sizes that are unknown at build time make the
 * node MT_NODE_RTCHECK: the executor re-runs this inference on the concrete shapes, so a
 * mismatch found at run time reads exactly like one found while building. Every message names
 * the op and the operand shapes. */
#include <stdio.h>
#include <string.h>

#include "graph_impl.h"

/* ---------------------------------------------------------------- shared checks */

static mt_status need_4d(const char *op, const char *what, const mt_type *t)
{
    if (t->ndim == 4) return MT_OK;
    char b[128];
    return mt_err_set(MT_ERR_SHAPE, "%s: %s must be 4-d, got shape %s", op, what,
                      mt__shape_str(t->ndim, t->shape, b, sizeof b));
}

static mt_status need_float(const char *op, const char *what, const mt_type *t)
{
    if (mt_dtype_is_float(t->dtype)) return MT_OK;
    return mt_err_set(MT_ERR_DTYPE, "%s: %s must be a float array, got %s", op, what,
                      mt_dtype_name(t->dtype));
}

static mt_status same_dtype(const char *op, const char *wa, const mt_type *a, const char *wb,
                            const mt_type *b)
{
    if (a->dtype == b->dtype) return MT_OK;
    return mt_err_set(MT_ERR_DTYPE, "%s: %s (%s) and %s (%s) must have one dtype", op, wa,
                      mt_dtype_name(a->dtype), wb, mt_dtype_name(b->dtype));
}

static mt_status check_window(const char *op, const mt_window *w, bool pool, bool with_size)
{
    for (int32_t d = 0; d < 2; d++) {
        if (w->stride[d] < 1)
            return mt_err_set(MT_ERR_INVALID, "%s: stride (%d, %d) must be >= 1", op,
                              (int)w->stride[0], (int)w->stride[1]);
        if (w->pad[d] < 0)
            return mt_err_set(MT_ERR_INVALID, "%s: pad (%d, %d) must be >= 0", op,
                              (int)w->pad[0], (int)w->pad[1]);
        if (with_size && w->size[d] < 1)
            return mt_err_set(MT_ERR_INVALID, "%s: %s (%d, %d) must be >= 1", op,
                              pool ? "pool size" : "kernel size", (int)w->size[0],
                              (int)w->size[1]);
        if (pool && w->pad[d] >= w->size[d])
            return mt_err_set(MT_ERR_INVALID, "%s: pad (%d, %d) must be smaller than the pool "
                              "size (%d, %d)", op, (int)w->pad[0], (int)w->pad[1],
                              (int)w->size[0], (int)w->size[1]);
    }
    if (pool && (w->mode < 0 || w->mode >= MT_POOL_MODE_COUNT))
        return mt_err_set(MT_ERR_INVALID, "%s: invalid pooling mode %d", op, (int)w->mode);
    return MT_OK;
}

/* Merges size b into *a (unknown = -1); false when both are known and differ. */
static bool merge_dim(int64_t *a, int64_t b, bool *rtcheck)
{
    if (*a >= 0 && b >= 0) return *a == b;
    if (*a != b) *rtcheck = true;
    if (*a < 0) *a = b;
    return true;
}

/* conv output size along one axis: -1 when unknown, -2 when the kernel does not fit. */
static int64_t conv_out(int64_t h, int64_t k, int32_t s, int32_t p)
{
    if (h < 0 || k < 0) return -1;
    if (h + 2 * (int64_t)p < k) return -2;
    return (h + 2 * (int64_t)p - k) / s + 1;
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* pool output size along one axis: -1 when unknown, <= 0 when no window fits. */
static int64_t pool_out(int64_t h, int32_t k, int32_t s, int32_t p, bool ceil_mode)
{
    if (h < 0) return -1;
    int64_t span = h + 2 * (int64_t)p - k;
    int64_t o = floor_div(span + (ceil_mode ? s - 1 : 0), s) + 1;
    if (ceil_mode && o > 0 && (o - 1) * s >= h + p) o--;
    return o;
}

/* ---------------------------------------------------------------- convolution */

static mt_status conv_mismatch(const char *op, const char *why, const char *wa, const mt_type *a,
                               const char *wb, const mt_type *b)
{
    char ba[128], bb[128];
    return mt_err_set(MT_ERR_SHAPE, "%s: %s (%s %s, %s %s)", op, why, wa,
                      mt__shape_str(a->ndim, a->shape, ba, sizeof ba), wb,
                      mt__shape_str(b->ndim, b->shape, bb, sizeof bb));
}

/* The spatial sizes of the output [.., OH, OW] of x [.., H, W] under kernel sizes k[2], with
 * the "kernel larger than the padded input" check. */
static mt_status conv_spatial(const char *op, const mt_window *w, const mt_type *x,
                              const int64_t *k, const char *wk, const mt_type *kt,
                              int64_t *out, bool *rtcheck)
{
    for (int32_t d = 0; d < 2; d++) {
        out[d] = conv_out(x->shape[2 + d], k[d], w->stride[d], w->pad[d]);
        if (out[d] == -2) {
            char why[160];
            snprintf(why, sizeof why, "the kernel (%lld, %lld) is larger than the padded input "
                     "(%lld, %lld) with pad (%d, %d)", (long long)k[0], (long long)k[1],
                     (long long)(x->shape[2] + 2 * w->pad[0]),
                     (long long)(x->shape[3] + 2 * w->pad[1]), (int)w->pad[0], (int)w->pad[1]);
            return conv_mismatch(op, why, "x", x, wk, kt);
        }
        if (out[d] < 0) *rtcheck = true;
    }
    return MT_OK;
}

/* CONV2D (x, w) -> [N, O, OH, OW]. */
static mt_status infer_conv2d(mt__infer_ctx *cx)
{
    const char *op = cx->opname;
    const mt_type *x = cx->in[0], *w = cx->in[1];
    const mt_window *win = &cx->attrs->win;
    mt_status st;
    if ((st = need_4d(op, "x [N, C, H, W]", x)) || (st = need_4d(op, "w [O, C, KH, KW]", w)) ||
        (st = need_float(op, "x", x)) || (st = same_dtype(op, "x", x, "w", w)) ||
        (st = check_window(op, win, false, false)))
        return st;
    int64_t c = x->shape[1];
    if (!merge_dim(&c, w->shape[1], &cx->rtcheck))
        return conv_mismatch(op, "input channels differ", "x", x, "w", w);
    int64_t o[2];
    if ((st = conv_spatial(op, win, x, w->shape + 2, "w", w, o, &cx->rtcheck))) return st;
    const int64_t shape[4] = {x->shape[0], w->shape[0], o[0], o[1]};
    cx->out = mt_type_make(x->dtype, 4, shape);
    return MT_OK;
}

/* CONV2D_GRAD_INPUT (dy, w, x) -> x's shape, dy's dtype. */
static mt_status infer_conv2d_grad_input(mt__infer_ctx *cx)
{
    const char *op = cx->opname;
    const mt_type *dy = cx->in[0], *w = cx->in[1], *x = cx->in[2];
    const mt_window *win = &cx->attrs->win;
    mt_status st;
    if ((st = need_4d(op, "dy [N, O, OH, OW]", dy)) || (st = need_4d(op, "w [O, C, KH, KW]", w)) ||
        (st = need_4d(op, "the input reference [N, C, H, W]", x)) ||
        (st = need_float(op, "dy", dy)) || (st = same_dtype(op, "dy", dy, "w", w)) ||
        (st = check_window(op, win, false, false)))
        return st;
    int64_t out[4] = {x->shape[0], x->shape[1], x->shape[2], x->shape[3]};
    int64_t oc = dy->shape[1];
    if (!merge_dim(&out[0], dy->shape[0], &cx->rtcheck))
        return conv_mismatch(op, "batch sizes differ", "dy", dy, "x", x);
    if (!merge_dim(&oc, w->shape[0], &cx->rtcheck))
        return conv_mismatch(op, "output channels differ", "dy", dy, "w", w);
    if (!merge_dim(&out[1], w->shape[1], &cx->rtcheck))
        return conv_mismatch(op, "input channels differ", "x", x, "w", w);
    int64_t o[2];
    if ((st = conv_spatial(op, win, x, w->shape + 2, "w", w, o, &cx->rtcheck))) return st;
    for (int32_t d = 0; d < 2; d++) {
        int64_t s = o[d];
        if (!merge_dim(&s, dy->shape[2 + d], &cx->rtcheck))
            return conv_mismatch(op, "dy does not have the convolution's output size", "dy", dy,
                                 "x", x);
    }
    cx->out = mt_type_make(dy->dtype, 4, out);
    return MT_OK;
}

/* CONV2D_GRAD_WEIGHT (x, dy) -> [O, C, KH, KW] with (KH, KW) = win.size. */
static mt_status infer_conv2d_grad_weight(mt__infer_ctx *cx)
{
    const char *op = cx->opname;
    const mt_type *x = cx->in[0], *dy = cx->in[1];
    const mt_window *win = &cx->attrs->win;
    mt_status st;
    if ((st = need_4d(op, "x [N, C, H, W]", x)) || (st = need_4d(op, "dy [N, O, OH, OW]", dy)) ||
        (st = need_float(op, "x", x)) || (st = same_dtype(op, "x", x, "dy", dy)) ||
        (st = check_window(op, win, false, true)))
        return st;
    int64_t n = x->shape[0];
    if (!merge_dim(&n, dy->shape[0], &cx->rtcheck))
        return conv_mismatch(op, "batch sizes differ", "x", x, "dy", dy);
    const int64_t k[2] = {win->size[0], win->size[1]};
    const int64_t kshape[4] = {dy->shape[1], x->shape[1], k[0], k[1]};
    const mt_type kt = mt_type_make(x->dtype, 4, kshape);
    int64_t o[2];
    if ((st = conv_spatial(op, win, x, k, "kernel", &kt, o, &cx->rtcheck))) return st;
    for (int32_t d = 0; d < 2; d++) {
        int64_t s = o[d];
        if (!merge_dim(&s, dy->shape[2 + d], &cx->rtcheck))
            return conv_mismatch(op, "dy does not have the convolution's output size", "dy", dy,
                                 "x", x);
    }
    cx->out = kt;
    return MT_OK;
}

mt_status mt__infer_conv(mt__infer_ctx *cx)
{
    switch (cx->op) {
    case MT_OP_CONV2D: return infer_conv2d(cx);
    case MT_OP_CONV2D_GRAD_INPUT: return infer_conv2d_grad_input(cx);
    default: return infer_conv2d_grad_weight(cx);
    }
}

/* ---------------------------------------------------------------- pooling */

/* The pooled type of x, or ERR_SHAPE when no window fits. */
static mt_status pool_type(const char *op, const mt_window *win, const mt_type *x, mt_type *out,
                           bool *rtcheck)
{
    int64_t shape[4] = {x->shape[0], x->shape[1], 0, 0};
    for (int32_t d = 0; d < 2; d++) {
        shape[2 + d] = pool_out(x->shape[2 + d], win->size[d], win->stride[d], win->pad[d],
                                win->ceil_mode != 0);
        if (shape[2 + d] == -1) {
            *rtcheck = true;
        } else if (shape[2 + d] < 1) {
            char b[128];
            return mt_err_set(MT_ERR_SHAPE, "%s: the pool window (%d, %d) is larger than the "
                              "padded input: x %s with pad (%d, %d)%s", op, (int)win->size[0],
                              (int)win->size[1], mt__shape_str(x->ndim, x->shape, b, sizeof b),
                              (int)win->pad[0], (int)win->pad[1],
                              win->ceil_mode ? "" : " (ceil_mode=False)");
        }
    }
    *out = mt_type_make(x->dtype, 4, shape);
    return MT_OK;
}

/* a has b's shape (merging unknown sizes). */
static mt_status same_shape(const char *op, const char *wa, const mt_type *a, const char *wb,
                            const mt_type *b, bool *rtcheck)
{
    bool ok = a->ndim == b->ndim;
    for (int32_t d = 0; ok && d < a->ndim; d++) {
        int64_t s = a->shape[d];
        ok = merge_dim(&s, b->shape[d], rtcheck);
    }
    if (ok) return MT_OK;
    char ba[128], bb[128];
    return mt_err_set(MT_ERR_SHAPE, "%s: %s %s must have the shape %s of %s", op, wa,
                      mt__shape_str(a->ndim, a->shape, ba, sizeof ba),
                      mt__shape_str(b->ndim, b->shape, bb, sizeof bb), wb);
}

/* POOL2D (x[, v]) -> pooled x; POOL2D_GRAD (x, y, dy) -> x's type. */
mt_status mt__infer_pool(mt__infer_ctx *cx)
{
    const char *op = cx->opname;
    const mt_type *x = cx->in[0];
    const mt_window *win = &cx->attrs->win;
    mt_status st;
    if ((st = need_4d(op, "x [N, C, H, W]", x)) || (st = need_float(op, "x", x)) ||
        (st = check_window(op, win, true, true)))
        return st;
    mt_type y;
    if ((st = pool_type(op, win, x, &y, &cx->rtcheck))) return st;
    if (cx->op == MT_OP_POOL2D) {
        if (cx->nin == 2 && ((st = same_dtype(op, "x", x, "v", cx->in[1])) ||
                             (st = same_shape(op, "v", cx->in[1], "x", x, &cx->rtcheck))))
            return st;
        cx->out = y;
        return MT_OK;
    }
    const mt_type *yt = cx->in[1], *dy = cx->in[2];
    if ((st = same_dtype(op, "x", x, "y", yt)) || (st = same_dtype(op, "x", x, "dy", dy)) ||
        (st = same_shape(op, "y", yt, "the pooled x", &y, &cx->rtcheck)) ||
        (st = same_shape(op, "dy", dy, "the pooled x", &y, &cx->rtcheck)))
        return st;
    cx->out = mt_type_make(x->dtype, 4, x->shape);
    return MT_OK;
}

/* ---------------------------------------------------------------- builders */

/* attrs with the window (NULL stride: def_stride, NULL pad: 0). */
static void win_attrs(mt_op_attrs *a, const int32_t *size, const int32_t *stride,
                      const int32_t *pad, const int32_t *def_stride)
{
    memset(a, 0, sizeof *a);
    for (int32_t d = 0; d < 2; d++) {
        a->win.size[d] = size ? size[d] : 0;
        a->win.stride[d] = stride ? stride[d] : def_stride ? def_stride[d] : 1;
        a->win.pad[d] = pad ? pad[d] : 0;
    }
}

/* Casts every operand to the float type of their promoted dtype. */
static bool cast_float(mt_graph *g, const char *op, int32_t n, mt_var *v)
{
    if (!mt__check_vars(g, op, n, v)) return false;
    mt_dtype dt = mt_graph_type(g, v[0])->dtype;
    for (int32_t i = 1; i < n; i++) dt = mt_dtype_promote(dt, mt_graph_type(g, v[i])->dtype);
    dt = mt__float_dtype(dt);
    for (int32_t i = 0; i < n; i++) {
        v[i] = mt__cast(g, v[i], dt);
        if (!v[i]) return false;
    }
    return true;
}

mt_var mt_graph_conv2d(mt_graph *g, mt_var x, mt_var w, const int32_t stride[2],
                       const int32_t pad[2])
{
    mt_var in[2] = {x, w};
    if (!cast_float(g, "conv2d", 2, in)) return MT_VAR_NONE;
    mt_op_attrs a;
    win_attrs(&a, NULL, stride, pad, NULL);
    return mt__create(g, MT_OP_CONV2D, &a, 2, in);
}

mt_var mt_graph_conv2d_grad_input(mt_graph *g, mt_var dy, mt_var w, mt_var x,
                                  const int32_t stride[2], const int32_t pad[2])
{
    mt_var in[3] = {dy, w, x};
    if (!mt__check_vars(g, "conv2d_grad_input", 3, in) ||
        !cast_float(g, "conv2d_grad_input", 2, in))
        return MT_VAR_NONE;
    mt_op_attrs a;
    win_attrs(&a, NULL, stride, pad, NULL);
    return mt__create(g, MT_OP_CONV2D_GRAD_INPUT, &a, 3, in);
}

mt_var mt_graph_conv2d_grad_weight(mt_graph *g, mt_var x, mt_var dy, const int32_t ksize[2],
                                   const int32_t stride[2], const int32_t pad[2])
{
    mt_var in[2] = {x, dy};
    if (!cast_float(g, "conv2d_grad_weight", 2, in)) return MT_VAR_NONE;
    if (!ksize) return mt__fail(g, MT_ERR_INVALID, "conv2d_grad_weight: kernel size is NULL");
    mt_op_attrs a;
    win_attrs(&a, ksize, stride, pad, NULL);
    return mt__create(g, MT_OP_CONV2D_GRAD_WEIGHT, &a, 2, in);
}

mt_var mt_graph_pool2d(mt_graph *g, mt_var x, mt_pool_mode mode, const int32_t pool[2],
                       const int32_t stride[2], const int32_t pad[2], bool ceil_mode)
{
    if (!cast_float(g, "pool2d", 1, &x)) return MT_VAR_NONE;
    if (!pool) return mt__fail(g, MT_ERR_INVALID, "pool2d: pool size is NULL");
    mt_op_attrs a;
    win_attrs(&a, pool, stride, pad, pool);
    a.win.mode = (int32_t)mode;
    a.win.ceil_mode = ceil_mode;
    return mt__create(g, MT_OP_POOL2D, &a, 1, &x);
}

mt_var mt_graph_pool2d_grad(mt_graph *g, mt_var x, mt_var y, mt_var dy, mt_pool_mode mode,
                            const int32_t pool[2], const int32_t stride[2],
                            const int32_t pad[2], bool ceil_mode)
{
    mt_var in[3] = {x, y, dy};
    if (!cast_float(g, "pool2d_grad", 3, in)) return MT_VAR_NONE;
    if (!pool) return mt__fail(g, MT_ERR_INVALID, "pool2d_grad: pool size is NULL");
    mt_op_attrs a;
    win_attrs(&a, pool, stride, pad, pool);
    a.win.mode = (int32_t)mode;
    a.win.ceil_mode = ceil_mode;
    return mt__create(g, MT_OP_POOL2D_GRAD, &a, 3, in);
}
