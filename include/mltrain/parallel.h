/* mltrain parallel: data-parallel training over a communicator.
 *
 * Every rank builds the same training graph. Each rank computes the gradient of the mean cost
 * over its shard of the global batch (`batch_size` in a YAML file is the global batch; shard s
 * of a global batch of n rows is mt_dp_shard_rows), and the gradients are combined into the
 * gradient of the global batch's mean cost: sum over shards of (n_s / n) * grad_s.
 *
 * Two ways to combine them:
 *  - fast (default): all-reduce nodes are inserted into the training graph after each
 *    gradient, grouped into buckets (a small first bucket, then bucket_bytes each) in reverse
 *    order of the parameters (the backward pass produces the last layer's gradients first).
 *    The compiled function starts a bucket's all-reduce as soon as all its gradients exist and
 *    waits for it only where an update reads it, so communication overlaps the rest of the
 *    backward pass. The sum's order is MPI's: results agree across runs to rounding only.
 *  - deterministic: each shard's weighted gradients are gathered and summed in shard order
 *    0, 1, ..., N-1 with the same kernels whatever the number of processes, so N ranks give
 *    bit-identical parameters to one process running the same global batch as N shards
 *    (options.shards = N on a communicator of size 1).
 *
 * Errors: every fallible call returns mt_status and records a message (see core.h). */
#ifndef MLTRAIN_PARALLEL_H
#define MLTRAIN_PARALLEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mltrain/comm.h"
#include "mltrain/core.h"
#include "mltrain/gpuarray.h"
#include "mltrain/graph.h"
#include "mltrain/jit.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mt_dp mt_dp; /* opaque */

typedef struct mt_dp_options {
    int64_t bucket_bytes;       /* default 25 MiB (MLTRAIN_BUCKET_MB overrides) */
    int64_t first_bucket_bytes; /* default 1 MiB */
    bool deterministic;         /* fixed reduction order (see above); default false */
    int64_t checksum_every;     /* steps between cross-rank parameter checksums; default 100;
                                   0 = never */
    int32_t shards;             /* shards per global batch; 0 = the communicator's size. A value
                                   other than the size is only valid on a communicator of size 1
                                   with deterministic = true (the single-process reference) */
} mt_dp_options;
void mt_dp_options_init(mt_dp_options *opts);

/* comm: borrowed, must outlive dp; NULL = a single process (size 1). */
mt_status mt_dp_new(mt_dp **out, mt_comm *comm, const mt_dp_options *opts);
void mt_dp_free(mt_dp *dp); /* NULL ok */

int32_t mt_dp_rank(const mt_dp *dp);       /* this process's rank in the communicator */
int32_t mt_dp_size(const mt_dp *dp);       /* processes */
int32_t mt_dp_n_shards(const mt_dp *dp);   /* shards per global batch (>= size) */
bool mt_dp_deterministic(const mt_dp *dp);
mt_comm *mt_dp_comm(const mt_dp *dp);      /* borrowed; NULL for a single process */

/* Rows [*begin, *end) of a global batch of n rows that belong to shard s (as even as possible:
 * the first n % N shards get one row more). */
void mt_dp_shard_rows(const mt_dp *dp, int64_t n, int32_t shard, int64_t *begin, int64_t *end);

/* Parameters (and any other state that must start equal) take rank 0's values. Collective. */
mt_status mt_dp_broadcast(mt_dp *dp, int32_t n, mt_array *const *arrays);

/* ---------------------------------------------------------------- fast mode */

/* Rewrites gradients for data parallelism: reduced[i] = all-reduce-sum(weight * grads[i]),
 * where weight is a 0-d float32 shared variable of g that mt_dp_set_step binds (n_local /
 * n_global). params[i] give sizes and order for bucketing (in creation order; buckets are
 * formed from the last). On a single process with one shard, reduced[i] = grads[i]. */
mt_status mt_dp_insert_allreduce(mt_dp *dp, mt_graph *g, int32_t n, const mt_var *params,
                                 const mt_var *grads, mt_var *reduced);
/* Sets the function options that route the graph's all-reduce nodes to dp's communicator.
 * Call before mt_function_new of the training function; dp must outlive the function. */
void mt_dp_function_options(mt_dp *dp, mt_function_options *opts);
/* Before each call of the training function f: binds the shard weight n_local / n_global
 * (a no-op when unchanged). */
mt_status mt_dp_set_step(mt_dp *dp, mt_function *f, int64_t n_local, int64_t n_global);

/* ---------------------------------------------------------------- deterministic mode */

/* One step: begin, then add each local shard's weighted gradients (one call per shard this
 * process computes: all N shards on a single process, its own on each of N ranks), then
 * finish, which leaves in out[i] (C-contiguous arrays shaped like the gradients, allocated by
 * the caller or empty: then allocated on the gradients' device) the sum over shards in shard
 * order. grads[i] of shard s must already be weighted by n_s / n. */
mt_status mt_dp_ordered_begin(mt_dp *dp, int32_t n);
mt_status mt_dp_ordered_add(mt_dp *dp, int32_t shard, int32_t n, const mt_array *const *grads);
mt_status mt_dp_ordered_finish(mt_dp *dp, int32_t n, mt_array *out);

/* ---------------------------------------------------------------- consistency */

/* Every checksum_every-th call (step counts calls), a hash of the arrays' bytes is compared
 * across ranks; on a mismatch: ERR_COMM naming the step and the ranks whose parameters differ
 * from rank 0's. Collective when it checks. */
mt_status mt_dp_check_consistent(mt_dp *dp, int64_t step, int32_t n,
                                 const mt_array *const *arrays);

/* Compute threads this rank should use: the CPUs in its affinity mask divided by the ranks on
 * its node (at least 1); MLTRAIN_NUM_THREADS or OMP_NUM_THREADS override. */
int32_t mt_dp_default_threads(void);

#ifdef __cplusplus
}
#endif
#endif
