/* comm "local" backend: a communicator of one rank, for builds without MPI and for a process
 * that no launcher started. Every collective is a copy (or nothing) and runs inline when it
 * is started, so there is no progress thread and no deadline can expire. */
#include <string.h>

#include "comm_impl.h"

static mt_status local_run(void *impl, mt__comm_op *op)
{
    size_t es = mt_dtype_size(op->dtype);
    switch (op->kind) {
    case MT__COMM_ALLREDUCE:
    case MT__COMM_ALLGATHER:
    case MT__COMM_REDUCE_SCATTER: /* size 1: the rank's block is everything */
        if (op->send != op->recv && op->count > 0)
            memmove(op->recv, op->send, (size_t)op->count * es);
        return MT_OK;
    case MT__COMM_BROADCAST:
    case MT__COMM_BARRIER:
        return MT_OK;
    case MT__COMM_SPLIT:
        /* any non-NULL state marks "this rank is in a group"; the local backend keeps none */
        op->split_impl = op->color < 0 ? NULL : (void *)&mt__comm_local_ops;
        op->split_rank = 0;
        op->split_size = 1;
        return MT_OK;
    default:
        return mt_err_set(MT_ERR_INTERNAL, "comm local: unknown collective kind %d",
                          (int)op->kind);
    }
}

static void local_free(void *impl, bool healthy) { (void)impl, (void)healthy; }

/* One rank has no peer: nothing to send to, nothing ever arrives. */
static mt_status local_send(void *impl, int32_t dst, int32_t tag, const void *data, size_t n,
                            double deadline)
{
    (void)impl, (void)dst, (void)tag, (void)data, (void)n, (void)deadline;
    return mt_err_set(MT_ERR_UNSUPPORTED, "send_host: a communicator of one rank has no peer "
                                          "to send to");
}

static mt_status local_probe(void *impl, int32_t src, int32_t tag, bool *got, void **data,
                             size_t *nbytes, int32_t *src_out, int32_t *tag_out)
{
    (void)impl, (void)src, (void)tag, (void)data, (void)nbytes, (void)src_out, (void)tag_out;
    *got = false;
    return MT_OK;
}

const mt__comm_ops mt__comm_local_ops = {
    .abi_version = MT__COMM_ABI_VERSION,
    .name = "local",
    .device_buffers = false,
    .progress_thread = false,
    .run = local_run,
    .free = local_free,
    .p2p_send = local_send,
    .p2p_probe_recv = local_probe,
};
