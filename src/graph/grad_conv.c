/* Gradient rules of convolution and pooling. Every rule is built from the same five ops, so
 * gradients of gradients (and R-ops through the double-reverse trick) stay in the graph:
 *
 *   y = conv2d(x, w)                  dx = conv2d_grad_input(gz, w, x)
 *                                     dw = conv2d_grad_weight(x, gz, (KH, KW))
 *   dx = conv2d_grad_input(dy, w, x)  (linear in dy and w; gz shaped like x)
 *                                     d dy = conv2d(gz, w),  d w = conv2d_grad_weight(gz, dy)
 *   dw = conv2d_grad_weight(x, dy)    (linear in x and dy; gz shaped like w)
 *                                     d x = conv2d_grad_input(dy, gz, x),  d dy = conv2d(x, gz)
 *   y = pool2d(x)                     dx = pool2d_grad(x, y, gz)
 *   y = pool2d(x, v)                  dv = pool2d_grad(x, pool2d(x), gz); x: zero (max, the
 *                                     selection is piecewise constant) or none (mean)
 *   dx = pool2d_grad(x, y, dy)        d dy = pool2d(x, gz) (max) or pool2d(gz) (mean); x: zero
 *                                     (max) or none (mean); y: none (a hint, see grad.c)
 *
 * The weight gradient needs the kernel's spatial size as an attribute: w must have static KH
 * and KW (ERR_UNSUPPORTED naming w's shape otherwise). */
#include "grad_impl.h"

static const int32_t *stride_of(const mt__node *n)
{
    return n->attrs.win.stride;
}

static const int32_t *pad_of(const mt__node *n)
{
    return n->attrs.win.pad;
}

/* The spatial size of kernel w as int32, or ERR_UNSUPPORTED when it is not static. */
static mt_status kernel_size(mt_graph *g, mt_var w, int32_t *k)
{
    const mt_type *t = mt_graph_type(g, w);
    for (int32_t d = 0; d < 2; d++) {
        if (t->shape[2 + d] < 0 || t->shape[2 + d] > INT32_MAX) {
            char b[128];
            return mt_err_set(MT_ERR_UNSUPPORTED, "the gradient of conv2d with respect to the "
                              "kernel needs its spatial size statically; w has shape %s "
                              "(give static sizes or use shape_assert)",
                              mt__shape_str(t->ndim, t->shape, b, sizeof b));
        }
        k[d] = (int32_t)t->shape[2 + d];
    }
    return MT_OK;
}

mt_status mt__grad_conv(mt__grad_cx *cx)
{
    mt_graph *g = cx->g;
    const mt__node *n = cx->n;
    const int32_t *s = stride_of(n), *p = pad_of(n);
    mt_var gz = cx->gz;
    int32_t k[2];
    mt_status st;
    switch (n->op) {
    case MT_OP_CONV2D: {
        mt_var x = n->in[0], w = n->in[1];
        if (cx->need[0]) cx->out[0] = mt_graph_conv2d_grad_input(g, gz, w, x, s, p);
        if (cx->need[1]) {
            if ((st = kernel_size(g, w, k))) return st;
            cx->out[1] = mt_graph_conv2d_grad_weight(g, x, gz, k, s, p);
        }
        return MT_OK;
    }
    case MT_OP_CONV2D_GRAD_INPUT: {
        mt_var dy = n->in[0], w = n->in[1];
        if (cx->need[0]) cx->out[0] = mt_graph_conv2d(g, gz, w, s, p);
        if (cx->need[1]) {
            if ((st = kernel_size(g, w, k))) return st;
            cx->out[1] = mt_graph_conv2d_grad_weight(g, gz, dy, k, s, p);
        }
        return MT_OK;
    }
    default: { /* CONV2D_GRAD_WEIGHT */
        mt_var x = n->in[0], dy = n->in[1];
        if (cx->need[0]) cx->out[0] = mt_graph_conv2d_grad_input(g, dy, gz, x, s, p);
        if (cx->need[1]) cx->out[1] = mt_graph_conv2d(g, x, gz, s, p);
        return MT_OK;
    }
    }
}

/* pool2d(x) of node n's window (the one-operand form, hash-consed with the forward node). */
static mt_var pool_of(mt_graph *g, const mt__node *n, mt_var x)
{
    const mt_window *w = &n->attrs.win;
    return mt_graph_pool2d(g, x, (mt_pool_mode)w->mode, w->size, w->stride, w->pad,
                           w->ceil_mode != 0);
}

static mt_var pool_grad_of(mt_graph *g, const mt__node *n, mt_var x, mt_var y, mt_var dy)
{
    const mt_window *w = &n->attrs.win;
    return mt_graph_pool2d_grad(g, x, y, dy, (mt_pool_mode)w->mode, w->size, w->stride, w->pad,
                                w->ceil_mode != 0);
}

mt_status mt__grad_pool(mt__grad_cx *cx)
{
    mt_graph *g = cx->g;
    const mt__node *n = cx->n;
    mt_var x = n->in[0], gz = cx->gz;
    bool max = n->attrs.win.mode == MT_POOL_MAX;
    if (n->op == MT_OP_POOL2D) {
        if (n->nin == 1) {
            if (cx->need[0]) cx->out[0] = pool_grad_of(g, n, x, cx->v, gz);
            return MT_OK;
        }
        if (cx->need[0]) cx->out[0] = MT__GRAD_ZERO;
        if (cx->need[1]) cx->out[1] = pool_grad_of(g, n, x, pool_of(g, n, x), gz);
        return MT_OK;
    }
    /* POOL2D_GRAD (x, y, dy) */
    if (cx->need[0]) cx->out[0] = MT__GRAD_ZERO;
    if (cx->need[1]) cx->out[1] = MT__GRAD_ZERO;
    if (cx->need[2]) {
        if (max) {
            mt_op_attrs a = n->attrs;
            mt_var in[2] = {x, gz};
            cx->out[2] = mt_graph_make(g, MT_OP_POOL2D, &a, 2, in);
        } else {
            cx->out[2] = pool_of(g, n, gz);
        }
    }
    return MT_OK;
}
