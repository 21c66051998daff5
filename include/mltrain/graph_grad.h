/* mltrain graph: symbolic differentiation (reverse mode, L-op, R-op) of the graph IR.
 *
 * Part of the graph module (to be merged into graph.h). Gradients are ordinary graph nodes
 * built in the same graph as the expression, hash-consed like every other node, so asking for
 * the same gradient twice returns the same variables, and gradients of gradients work: every
 * gradient rule is built only from ops that have gradient rules themselves.
 *
 * Reverse mode (mt_graph_grad). The engine walks the subgraph between the cost (and the
 * known_grads variables) and the wrt variables in reverse topological order, pruning nodes that
 * do not depend on any wrt, and for every node calls the op's L-op rule with the gradient of
 * its output. Contributions to a variable are summed with add; each is first summed over the
 * dimensions the operand was broadcast along (static size 1 where the use is larger, and
 * leading axes it lacks) and cast to the operand's dtype, so a float32 graph gets float32
 * gradients. Only float variables carry gradients.
 *
 * Connection. A variable is "connected" to the cost when some path of uses leads from it to the
 * cost. Along a path, each (node, operand) link is one of:
 *   - differentiable: the gradient flows (most float operands);
 *   - zero: the output depends on the operand but is piecewise constant in it, so the gradient
 *     is zero and not "disconnected": floor, ceil, round, trunc, sign, floordiv, comparisons,
 *     isnan/isinf/isfinite, argmax/argmin, all/any, size, casts to integer or bool types, and
 *     every use of an integer or bool operand (e.g. where's condition);
 *   - none: the output does not depend on the operand's values: stop_gradient, the shape
 *     reference of broadcast_like and of random draws, and every variable listed in
 *     consider_constant (its operands are not followed);
 *   - undefined: the operand is a set of integer indices or labels (gather and scatter_add
 *     indices, one_hot labels, crossentropy labels): a gradient with respect to it has no
 *     meaning. The mark follows integer-valued operands backwards (labels = raw + 1 marks raw)
 *     and stops at a cast from float.
 * For each wrt: a float variable reached through differentiable links gets its gradient; one
 * reached only through zero links gets zeros of its type; an integer or bool variable never
 * has a gradient (it is "disconnected", or "undefined" when it reaches an index operand). A
 * disconnected wrt is an error naming the variable (MT_ERR_INVALID) unless the options ask for
 * zeros; an undefined one is an error naming the op, the operand and why (MT_ERR_INVALID)
 * unless the options ask for zeros. Zeros are of the variable's dtype for float variables and of
 * NumPy's float type for integer variables (int32 -> float64, int16 -> float32, ...).
 *
 * Errors are returned, written to the thread-local slot (mt_last_error) and, like builder
 * errors, recorded in the graph's sticky status; grads_out[] entries are MT_VAR_NONE then.
 *
 * Per-op conventions (where NumPy and Theano leave a choice):
 *   abs'(0) = 0, sign' = 0, relu'(0) = 0 (subgradient 0, as Theano/NumPy code does);
 *   maximum/minimum of equal operands: the gradient goes to the first operand;
 *   max/min reductions: the gradient is split evenly between tied maximal elements (a valid
 *   subgradient whose sum over the reduced axes equals the output gradient);
 *   prod: exact with zeros: no zero -> prod/x, one zero -> the product of the others at the
 *   zero's position and 0 elsewhere, two or more zeros -> 0 (Theano's ProdWithoutZeros idea);
 *   pow(x, y): d/dx = y*x**(y-1) (0 when y == 0, so d/dx x**0 is 0 also at x = 0; at x = 0
 *   with y > 0 it is the limit: y = 1 -> 1, y > 1 -> 0, 0 < y < 1 -> inf), d/dy = log(x)*x**y,
 *   defined as 0 at x = 0 (Theano);
 *   mod: d/dx = 1, d/dy = -floor(x/y) (Theano); floordiv: zero;
 *   sigmoid' = sigmoid(x) * sigmoid(-x), softplus' = sigmoid, logaddexp' = sigmoid(a - b),
 *   logsumexp' = exp(x - logsumexp(x)), log1mexp' = -1/expm1(-x): accurate and finite at large
 *   |x| (no 1 - sigmoid cancellation);
 *   softmax_crossentropy_labels: softmax(x) - onehot(labels) (needs a static class count);
 *   concatenate: slices of the gradient (at most one operand may have an unknown size along
 *   the axis); reshape from a shape with several unknown sizes is supported when those axes
 *   are kept (MT_RESHAPE_KEEP) — otherwise MT_ERR_UNSUPPORTED;
 *   grad_clip: the incoming gradient is clipped elementwise to [lo, hi]; shape_assert:
 *   identity; random draws, arange and one_hot have no gradient;
 *   conv2d: conv2d_grad_input / conv2d_grad_weight (the weight gradient needs w's spatial
 *   size statically, else MT_ERR_UNSUPPORTED); max pool2d: the gradient goes to the first
 *   maximal element of each window (C order; the first NaN if there is one), not split between
 *   ties as for the max reduction (Theano's and PyTorch's max pooling); mean pool2d: spread
 *   evenly over the elements of the window inside the input. The gradient ops have rules too
 *   (second derivatives, R-ops); the input reference of conv2d_grad_input and the forward
 *   result y of pool2d_grad are "none" links, x of pool2d_grad (max) a "zero" link.
 *
 * Forward mode (mt_graph_rop) uses the double-reverse trick (J. Towns 2017, PyTensor's
 * pushforward_through_pullback): with a fresh placeholder u_j shaped like each f_j, g = Lop(f,
 * wrt, u) is linear in u; then Lop(g, u, v) = J v. No per-op R-op is needed (one may be added
 * to the op table later for speed). The placeholders normally vanish from the result; when a
 * gradient rule is not linear in its incoming gradient (grad_clip) they are replaced by zeros,
 * which gives the forward derivative of the identity there. The placeholders ("rop.u<k>") stay
 * in the graph as unused nodes, and since placeholders are never merged, each R-op call builds
 * new nodes (grad and L-op results are hash-consed: the same call twice gives the same
 * variables). */
#ifndef MLTRAIN_GRAPH_GRAD_H
#define MLTRAIN_GRAPH_GRAD_H

#include "mltrain/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What to do with a wrt variable that the cost does not depend on. */
typedef enum mt_grad_disconnected {
    MT_GRAD_DISCONNECTED_ERROR = 0, /* MT_ERR_INVALID naming the variable (default) */
    MT_GRAD_DISCONNECTED_ZERO       /* return zeros */
} mt_grad_disconnected;

/* What to do with a gradient that is mathematically undefined (integer indices or labels). */
typedef enum mt_grad_undefined {
    MT_GRAD_UNDEFINED_ERROR = 0, /* MT_ERR_INVALID naming the op, the operand and why */
    MT_GRAD_UNDEFINED_ZERO       /* drop the undefined contributions (zeros if nothing else) */
} mt_grad_undefined;

typedef struct mt_grad_options {
    /* Variables treated as constants: their gradient may be asked for, but nothing flows
     * through them to their operands (Theano's consider_constant). */
    int32_t n_consider_constant;
    const mt_var *consider_constant;
    mt_grad_disconnected disconnected;
    mt_grad_undefined undefined;
    /* Seeds: known_grads[i] is added to the gradient of known_vars[i] (a float variable; the
     * gradient has its ndim, is cast to its dtype, and static sizes must agree). Unlike
     * Theano, where a known gradient replaces the cost's contribution, seeds add to it, so a
     * seed on a variable the cost also depends on is the total derivative. With seeds the
     * cost may be MT_VAR_NONE (subgraph gradients, Lop). */
    int32_t n_known;
    const mt_var *known_vars;
    const mt_var *known_grads;
} mt_grad_options;

/* All defaults: nothing constant, errors for disconnected and undefined gradients, no seeds. */
void mt_grad_options_init(mt_grad_options *opts);

/* d cost / d wrt[i] into grads_out[i] (same dtype and ndim as wrt[i]). cost: a 0-d float
 * variable (or MT_VAR_NONE when opts has seeds). opts NULL: defaults. */
mt_status mt_graph_grad(mt_graph *g, mt_var cost, int32_t n_wrt, const mt_var *wrt,
                        mt_var *grads_out, const mt_grad_options *opts);

/* Vector-Jacobian product: out[i] = sum_j eval_points[j]^T d f[j] / d wrt[i], eval_points[j]
 * being a cotangent with f[j]'s ndim (cast to its dtype). f[j] must be float. opts as for
 * mt_graph_grad (its seeds are added to these; NULL: defaults). */
mt_status mt_graph_lop(mt_graph *g, int32_t n_f, const mt_var *f, int32_t n_wrt,
                       const mt_var *wrt, const mt_var *eval_points, mt_var *out,
                       const mt_grad_options *opts);

/* Jacobian-vector product: out[j] = sum_i d f[j] / d wrt[i] . eval_points[i], eval_points[i]
 * being a tangent with wrt[i]'s ndim (cast to its dtype), computed by double reverse (see
 * above). opts->disconnected applies to each f[j] that depends on no wrt (error naming f[j], or
 * zeros); opts->undefined to undefined gradients met on the way; seeds are not allowed. */
mt_status mt_graph_rop(mt_graph *g, int32_t n_f, const mt_var *f, int32_t n_wrt,
                       const mt_var *wrt, const mt_var *eval_points, mt_var *out,
                       const mt_grad_options *opts);

#ifdef __cplusplus
}
#endif
#endif /* MLTRAIN_GRAPH_GRAD_H */
