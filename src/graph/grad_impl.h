/* Private interface of the autodiff code (src/graph/grad*.c): the per-op gradient rule type,
 * the rule families (one file each) and the shared helpers that the rules build gradients
 * with (summing over broadcast axes, re-inserting reduced axes, scalar factors). */
#ifndef MLTRAIN_GRAD_IMPL_H
#define MLTRAIN_GRAD_IMPL_H

#include "graph_impl.h"
#include "mltrain/graph_grad.h"

/* One call of a gradient rule: node v (its node struct n), the gradient gz of its output (v's
 * dtype and ndim), and need[i] telling which operands want a gradient. The rule writes the
 * contribution for each needed operand into out[i], or MT__GRAD_ZERO for a zero contribution.
 * A contribution may have the shape of the output where the operand was broadcast: the engine
 * sums it to the operand's shape and casts it to the operand's dtype. Builders propagate
 * MT_VAR_NONE, so a rule only needs to look at its final results: the engine turns a needed
 * MT_VAR_NONE into the builder's error (mt__grad_done). Rules return MT_OK or their own
 * error (unsupported cases). */
#define MT__GRAD_ZERO ((mt_var)-1)
typedef struct mt__grad_cx {
    mt_graph *g;
    mt_var v;
    const mt__node *n;
    mt_var gz;
    const bool *need;
    mt_var *out;
    /* SCAN only: the loop's results that receive a gradient (v among them) and their
     * gradients, so one backward loop serves them all; nsib 0: v alone */
    int32_t nsib;
    const mt_var *sib;
    const mt_var *sib_gz;
} mt__grad_cx;
typedef mt_status (*mt__grad_rule)(mt__grad_cx *cx);

/* Link kinds of (node, operand) pairs (see graph_grad.h). */
typedef enum mt__glink {
    MT__GLINK_NONE = 0, /* output independent of the operand's values */
    MT__GLINK_ZERO,     /* dependent, zero gradient */
    MT__GLINK_GRAD,     /* the gradient flows */
    MT__GLINK_UNDEF     /* integer index or labels: undefined */
} mt__glink;

/* Rule families. */
mt_status mt__grad_elemwise(mt__grad_cx *cx); /* grad_elemwise.c */
/* true for float scalar ops whose gradient is zero (floor, sign, floordiv, ...). */
bool mt__grad_sop_is_flat(mt_sop sop);
mt_status mt__grad_reduce(mt__grad_cx *cx);   /* REDUCE (grad_reduce.c) */
mt_status mt__grad_logsumexp(mt__grad_cx *cx);
mt_status mt__grad_softmax(mt__grad_cx *cx);  /* SOFTMAX, LOGSOFTMAX */
mt_status mt__grad_xent(mt__grad_cx *cx);     /* XENT* */
mt_status mt__grad_matmul(mt__grad_cx *cx);   /* MATMUL, GEMM (grad_ops.c) */
mt_status mt__grad_reshape(mt__grad_cx *cx);
mt_status mt__grad_dimshuffle(mt__grad_cx *cx);
mt_status mt__grad_broadcast(mt__grad_cx *cx); /* BROADCAST_TO, BROADCAST_LIKE */
mt_status mt__grad_concat(mt__grad_cx *cx);
mt_status mt__grad_slice(mt__grad_cx *cx);     /* SLICE, SET_SUBTENSOR, INC_SUBTENSOR */
mt_status mt__grad_gather(mt__grad_cx *cx);    /* GATHER, SCATTER_ADD */
mt_status mt__grad_identity(mt__grad_cx *cx);  /* GRAD_CLIP, SHAPE_ASSERT */
mt_status mt__grad_conv(mt__grad_cx *cx);      /* CONV2D* (grad_conv.c) */
mt_status mt__grad_pool(mt__grad_cx *cx);      /* POOL2D, POOL2D_GRAD */
mt_status mt__grad_allreduce(mt__grad_cx *cx); /* ALLREDUCE (ops_comm.c) */
mt_status mt__grad_scan(mt__grad_cx *cx);      /* SCAN: through time (grad_scan.c) */

/* ---------------------------------------------------------------- helpers (grad.c) */

/* c summed to the shape of variable x: leading axes c has beyond x's ndim are summed away,
 * axes where x has static size 1 and c does not are summed with keepdims. A c with fewer
 * dimensions than x is broadcast to x's shape. Then cast to x's dtype. */
mt_var mt__grad_fit(mt_graph *g, mt_var c, mt_var x);
/* gz of a reduction over (naxes, axes) of an operand with ndim dimensions, with the reduced
 * axes re-inserted as size 1 when the reduction dropped them (keepdims false). */
mt_var mt__grad_keepdims(mt_graph *g, mt_var gz, int32_t ndim, int32_t naxes,
                         const int32_t *axes, bool keepdims);
/* x * k with k a weak literal (so x's dtype is kept); x itself when k == 1. */
mt_var mt__grad_scale(mt_graph *g, mt_var x, double k);
/* 0 (weak literal) */
mt_var mt__grad_zero(mt_graph *g);
/* MT_OK when every needed out[i] is set; else the status of the builder failure (from the
 * thread-local slot), or ERR_INTERNAL naming the op if there is none. */
mt_status mt__grad_done(mt__grad_cx *cx);

#endif /* MLTRAIN_GRAD_IMPL_H */
