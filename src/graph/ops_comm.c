/* Collective ops of the graph: ALLREDUCE, the sum of a variable over every process of a group,
 * inserted by data parallelism after each gradient (src/parallel). The graph only knows the
 * op's type (that of its operand), its bucket attribute and its derivative; how the sum is
 * carried out is the executor's business (jit.h, mt_function_options.collectives), so the IR
 * stays free of any communicator. The op has its own lowering kind (MT_LOWER_COLLECTIVE):
 * fusion only takes ELEMWISE nodes, constant folding and the scalar-value analysis only look
 * through the ops they list, and hash-consing keys on the bucket, so an all-reduce is never
 * folded, fused or merged with one of another bucket. */
#include <string.h>

#include "grad_impl.h"
#include "graph_impl.h"

mt_status mt__infer_collective(mt__infer_ctx *cx)
{
    const mt_type *x = cx->in[0];
    if (cx->attrs->bucket < 0)
        return mt_err_set(MT_ERR_INVALID, "%s: bucket %d is negative", cx->opname,
                          (int)cx->attrs->bucket);
    cx->out = mt_type_make(x->dtype, x->ndim, x->shape);
    return MT_OK;
}

mt_var mt_graph_allreduce(mt_graph *g, mt_var x, int32_t bucket)
{
    if (!mt__check_vars(g, "allreduce", 1, &x)) return MT_VAR_NONE;
    if (bucket < 0)
        return mt__fail(g, MT_ERR_INVALID, "allreduce: bucket %d is negative", (int)bucket);
    mt_op_attrs a;
    memset(&a, 0, sizeof(a));
    a.bucket = bucket;
    return mt__create(g, MT_OP_ALLREDUCE, &a, 1, &x);
}

/* y_r = sum_s x_s on every rank r, and the total cost is the sum of the ranks' costs, so
 * d/dx_s = sum_r gz_r: the all-reduce of the output gradient, in the same bucket. */
mt_status mt__grad_allreduce(mt__grad_cx *cx)
{
    mt_var gz = mt__grad_fit(cx->g, cx->gz, cx->v);
    cx->out[0] = gz ? mt_graph_allreduce(cx->g, gz, cx->n->attrs.bucket) : MT_VAR_NONE;
    return MT_OK; /* a missing result is reported by the engine (mt__grad_done) */
}
