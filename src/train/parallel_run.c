/* The run's side of data-parallel training (docs/parallel.md "Training on N ranks"): the
 * parallel object of a run (mt_dp over the options' communicator), which shards of each global
 * batch this process computes, and the few collectives the loop needs besides the gradient
 * reduction: the start-of-run broadcast of parameters and optimizer state, the step-boundary
 * agreement on the cost and on signals, the monitor's gather of per-shard sums, and barriers.
 *
 * A run is parallel when its communicator has more than one rank, or the options ask for
 * shards > 1 (the single-process reference of deterministic mode) or for deterministic mode.
 * Otherwise run->dp is NULL and every helper behaves as for one process computing the whole
 * batch, so the plain path stays what it was. Built without the comm and parallel modules,
 * a run is never parallel (asking for it is ERR_NOT_BUILT). */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "sgd_impl.h"

#ifdef MT__TRAIN_HAVE_PARALLEL

static bool wants_dp(const mt_train_options *o)
{
    return (o->comm && mt_comm_size(o->comm) > 1) || o->dp.shards > 1 || o->dp.deterministic;
}

mt_status mt__run_open_device(mt__run *run, const char *requested)
{
    char name[64];
    mt_status st = mt_launch_pick_device(name, sizeof(name), requested ? requested : "host");
    if (st) return st;
    if ((st = mt_device_open(&run->dev, name))) return st;
    if (run->opts->comm && (st = mt_comm_use_device(run->opts->comm, run->dev, NULL)))
        return mt_err_prefix(st, "device %s for the ranks' collectives: ", name);
    return MT_OK;
}

mt_status mt__run_dp_init(mt__run *run)
{
    const mt_train_options *o = run->opts;
    if (!wants_dp(o)) return MT_OK;
    int size = o->comm ? (int)mt_comm_size(o->comm) : 1;
    int shards = o->dp.shards > 0 ? (int)o->dp.shards : size;
    if (!mt__is_sgd(run->alg))
        return mt_cfg_error(MT_ERR_UNSUPPORTED, run->alg->c.loc,
                            "%s: data-parallel training (here: %d rank%s, %d shard%s per "
                            "batch) supports SGD only; run this job on one process",
                            run->alg->ops->name, size, size == 1 ? "" : "s", shards,
                            shards == 1 ? "" : "s");
    mt_status st = mt_dp_new(&run->dp, o->comm, &o->dp);
    if (st) return mt_err_prefix(st, "data-parallel training: ");
    if ((st = mt_device_open(&run->host, "host"))) return st;
    return MT_OK;
}

void mt__run_dp_clear(mt__run *run)
{
    mt_dp_free(run->dp);
    run->dp = NULL;
    mt_device_release(run->host);
    run->host = NULL;
}

int32_t mt__run_rank(const mt__run *run)
{
    return run->dp ? mt_dp_rank(run->dp) : 0;
}

int32_t mt__run_size(const mt__run *run)
{
    return run->dp ? mt_dp_size(run->dp) : 1;
}

int32_t mt__run_n_shards(const mt__run *run)
{
    return run->dp ? mt_dp_n_shards(run->dp) : 1;
}

bool mt__run_deterministic(const mt__run *run)
{
    return run->dp && mt_dp_deterministic(run->dp);
}

void mt__run_shard_rows(const mt__run *run, int64_t n, int32_t shard, int64_t *b, int64_t *e)
{
    if (!run->dp) {
        *b = 0;
        *e = n;
        return;
    }
    mt_dp_shard_rows(run->dp, n, shard, b, e);
}

static mt_comm *comm_of(const mt__run *run)
{
    return run->dp && mt_dp_size(run->dp) > 1 ? mt_dp_comm(run->dp) : NULL;
}

mt_status mt__run_dp_insert_allreduce(mt__run *run, mt_graph *g, int32_t n, const mt_var *params,
                                      const mt_var *grads, mt_var *reduced)
{
    if (!run->dp) {
        memcpy(reduced, grads, (size_t)n * sizeof(*reduced));
        return MT_OK;
    }
    mt_status st = mt_dp_insert_allreduce(run->dp, g, n, params, grads, reduced);
    return st ? mt_err_prefix(st, "SGD: gradient all-reduce: ") : MT_OK;
}

void mt__run_dp_function_options(mt__run *run, mt_function_options *fo)
{
    if (run->dp) mt_dp_function_options(run->dp, fo);
}

mt_status mt__run_dp_set_step(mt__run *run, mt_function *f, int64_t n_local, int64_t n_global)
{
    return run->dp ? mt_dp_set_step(run->dp, f, n_local, n_global) : MT_OK;
}

mt_status mt__run_dp_ordered_begin(mt__run *run, int32_t n)
{
    return mt_dp_ordered_begin(run->dp, n);
}

mt_status mt__run_dp_ordered_add(mt__run *run, int32_t shard, int32_t n,
                                 const mt_array *const *grads)
{
    return mt_dp_ordered_add(run->dp, shard, n, grads);
}

mt_status mt__run_dp_ordered_finish(mt__run *run, int32_t n, mt_array *out)
{
    return mt_dp_ordered_finish(run->dp, n, out);
}

mt_status mt__run_dp_sync_state(mt__run *run)
{
    if (!comm_of(run)) return MT_OK;
    int32_t ns = mt__sgd_n_state(run->alg);
    int32_t n = run->n_params + ns;
    mt_array **arrs = mt_calloc((size_t)n + 1, sizeof(*arrs));
    if (!arrs) return mt_err_set(MT_ERR_NOMEM, "parameter broadcast");
    for (int32_t i = 0; i < run->n_params; i++) arrs[i] = &run->params[i];
    for (int32_t i = 0; i < ns; i++) arrs[run->n_params + i] = mt__sgd_state(run->alg, i);
    mt_status st = mt_dp_broadcast(run->dp, n, arrs);
    mt_free(arrs);
    return st ? mt_err_prefix(st, "broadcasting the parameters from rank 0: ") : MT_OK;
}

mt_status mt__run_dp_check(mt__run *run, int64_t step)
{
    if (!comm_of(run)) return MT_OK;
    const mt_array **arrs = mt_calloc((size_t)run->n_params + 1, sizeof(*arrs));
    if (!arrs) return mt_err_set(MT_ERR_NOMEM, "parameter checksum");
    for (int32_t i = 0; i < run->n_params; i++) arrs[i] = &run->params[i];
    mt_status st = mt_dp_check_consistent(run->dp, step, run->n_params, arrs);
    mt_free(arrs);
    return st;
}

mt_status mt__run_dp_allgather(mt__run *run, int32_t n, const double *local, double *all)
{
    mt_comm *comm = comm_of(run);
    if (!comm) {
        memcpy(all, local, (size_t)n * sizeof(double));
        return MT_OK;
    }
    int64_t dn = n, dall = (int64_t)n * mt_comm_size(comm);
    mt_array s, r;
    memset(&s, 0, sizeof(s));
    memset(&r, 0, sizeof(r));
    mt_status st = mt_array_from_host(&s, run->host, MT_FLOAT64, 1, &dn, local);
    if (!st) st = mt_array_empty(&r, run->host, MT_FLOAT64, 1, &dall, 'C');
    if (!st) st = mt_comm_allgather(comm, &s, &r);
    if (!st) st = mt_array_to_host(all, (size_t)dall * sizeof(double), &r);
    mt_array_clear(&s);
    mt_array_clear(&r);
    return st;
}

mt_status mt__run_dp_bcast(mt__run *run, int32_t n, double *vals)
{
    mt_comm *comm = comm_of(run);
    if (!comm || n == 0) return MT_OK;
    return mt_comm_broadcast_host(comm, vals, (size_t)n * sizeof(double), 0);
}

mt_status mt__run_dp_sum(mt__run *run, int32_t n, double *v)
{
    mt_comm *comm = comm_of(run);
    if (!comm || n == 0) return MT_OK;
    return mt_comm_allreduce_host(comm, v, n, MT_FLOAT64, MT_REDUCE_SUM);
}

mt_status mt__run_dp_barrier(mt__run *run)
{
    mt_comm *comm = comm_of(run);
    return comm ? mt_comm_barrier(comm) : MT_OK;
}

#else /* built without comm / parallel: one process */

mt_status mt__run_open_device(mt__run *run, const char *requested)
{
    return mt_device_open(&run->dev, requested ? requested : "host");
}

mt_status mt__run_dp_init(mt__run *run)
{
    const mt_train_options *o = run->opts;
    if (o->dp.shards > 1 || o->dp.deterministic)
        return mt_err_set(MT_ERR_NOT_BUILT, "data-parallel training needs the comm and parallel "
                                            "modules, which this mltrain was built without");
    return MT_OK;
}

void mt__run_dp_clear(mt__run *run)
{
    (void)run;
}

int32_t mt__run_rank(const mt__run *run)
{
    (void)run;
    return 0;
}

int32_t mt__run_size(const mt__run *run)
{
    (void)run;
    return 1;
}

int32_t mt__run_n_shards(const mt__run *run)
{
    (void)run;
    return 1;
}

bool mt__run_deterministic(const mt__run *run)
{
    (void)run;
    return false;
}

void mt__run_shard_rows(const mt__run *run, int64_t n, int32_t shard, int64_t *b, int64_t *e)
{
    (void)run;
    (void)shard;
    *b = 0;
    *e = n;
}

mt_status mt__run_dp_insert_allreduce(mt__run *run, mt_graph *g, int32_t n, const mt_var *params,
                                      const mt_var *grads, mt_var *reduced)
{
    (void)run;
    (void)g;
    (void)params;
    memcpy(reduced, grads, (size_t)n * sizeof(*reduced));
    return MT_OK;
}

void mt__run_dp_function_options(mt__run *run, mt_function_options *fo)
{
    (void)run;
    (void)fo;
}

mt_status mt__run_dp_set_step(mt__run *run, mt_function *f, int64_t n_local, int64_t n_global)
{
    (void)run;
    (void)f;
    (void)n_local;
    (void)n_global;
    return MT_OK;
}

static mt_status not_built(void)
{
    return mt_err_set(MT_ERR_NOT_BUILT, "deterministic data-parallel mode is not built");
}

mt_status mt__run_dp_ordered_begin(mt__run *run, int32_t n)
{
    (void)run;
    (void)n;
    return not_built();
}

mt_status mt__run_dp_ordered_add(mt__run *run, int32_t shard, int32_t n,
                                 const mt_array *const *grads)
{
    (void)run;
    (void)shard;
    (void)n;
    (void)grads;
    return not_built();
}

mt_status mt__run_dp_ordered_finish(mt__run *run, int32_t n, mt_array *out)
{
    (void)run;
    (void)n;
    (void)out;
    return not_built();
}

mt_status mt__run_dp_sync_state(mt__run *run)
{
    (void)run;
    return MT_OK;
}

mt_status mt__run_dp_check(mt__run *run, int64_t step)
{
    (void)run;
    (void)step;
    return MT_OK;
}

mt_status mt__run_dp_allgather(mt__run *run, int32_t n, const double *local, double *all)
{
    (void)run;
    memcpy(all, local, (size_t)n * sizeof(double));
    return MT_OK;
}

mt_status mt__run_dp_bcast(mt__run *run, int32_t n, double *vals)
{
    (void)run;
    (void)n;
    (void)vals;
    return MT_OK;
}

mt_status mt__run_dp_sum(mt__run *run, int32_t n, double *v)
{
    (void)run;
    (void)n;
    (void)v;
    return MT_OK;
}

mt_status mt__run_dp_barrier(mt__run *run)
{
    (void)run;
    return MT_OK;
}

#endif

/* ---------------------------------------------------------------- shared by both builds */

bool mt__run_is_main(const mt__run *run)
{
    return mt__run_rank(run) == 0;
}

void mt__run_local_shards(const mt__run *run, int32_t *first, int32_t *count)
{
    int32_t size = mt__run_size(run), shards = mt__run_n_shards(run);
    if (size == 1) {
        *first = 0;
        *count = shards;
    } else {
        *first = mt__run_rank(run);
        *count = 1;
    }
}

mt_status mt__run_shard_batch(mt__run *run, const mt_dataset *d, mt_data_iter *it,
                              int64_t epoch, int64_t b, int32_t shard, int64_t *rows,
                              mt_array *X, mt_array *y, int64_t *n_local, int64_t *n_global)
{
    mt_status st = mt_data_iter_rows(it, epoch, b, rows, n_global);
    if (st) return st;
    int32_t shards = mt__run_n_shards(run);
    if (*n_global < shards)
        return mt_err_set(MT_ERR_RANGE,
                          "epoch %lld, batch %lld has %lld examples, fewer than the %d shards "
                          "of a global batch (batch_size is the global batch: make it at "
                          "least the number of ranks, and the short batch of an epoch too, "
                          "or use an even_* iteration mode, which drops it)",
                          (long long)epoch + 1, (long long)b + 1, (long long)*n_global,
                          (int)shards);
    int64_t r0, r1;
    mt__run_shard_rows(run, *n_global, shard, &r0, &r1);
    *n_local = r1 - r0;
    return mt_dataset_gather(d, rows + r0, r1 - r0, X, y);
}

mt_status mt__run_dp_step_end(mt__run *run, double *cost)
{
    int local = run->sig ? run->sig->pending : 0;
    if (run->sig) run->sig->pending = 0;
    if (mt__run_size(run) == 1) {
        run->agreed_signal = local;
        run->signal_agreed = true;
        return MT_OK;
    }
    /* One all-reduce: the cost share and a count per signal kind. */
    double v[4] = {cost ? *cost : 0.0, local == SIGTERM, local == SIGINT, local == SIGUSR1};
    mt_status st = mt__run_dp_sum(run, 4, v);
    if (st) {
        if (run->sig && local) run->sig->pending = local;
        return st;
    }
    if (cost) *cost = v[0];
    int agreed = v[1] > 0 ? SIGTERM : v[2] > 0 ? SIGINT : v[3] > 0 ? SIGUSR1 : 0;
    run->agreed_signal = agreed;
    run->signal_agreed = true;
    return MT_OK;
}
