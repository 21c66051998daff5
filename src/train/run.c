/* Helpers around a run (mt__run) shared by the loop, the algorithms, the monitor, criteria and
 * extensions: channel-value sets, the model's graph on the run's data, parameter binding,
 * batches, per-batch bookkeeping (counters, progress reports, signals), channel lookups. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "train_impl.h"

/* ---------------------------------------------------------------- channel values */

int32_t mt__chanvals_find(const mt__chanvals *cv, const char *name)
{
    for (int32_t i = 0; i < cv->n; i++)
        if (!strcmp(cv->names[i], name)) return i;
    return -1;
}

mt_status mt__chanvals_set(mt__chanvals *cv, const char *name, double value)
{
    int32_t i = mt__chanvals_find(cv, name);
    if (i >= 0) {
        cv->values[i] = value;
        return MT_OK;
    }
    if (cv->n == cv->cap) {
        int32_t cap = cv->cap ? cv->cap * 2 : 32;
        char **names = mt_realloc(cv->names, (size_t)cap * sizeof(*names));
        if (!names) return mt_err_set(MT_ERR_NOMEM, "channel table");
        cv->names = names;
        double *values = mt_realloc(cv->values, (size_t)cap * sizeof(*values));
        if (!values) return mt_err_set(MT_ERR_NOMEM, "channel table");
        cv->values = values;
        cv->cap = cap;
    }
    cv->names[cv->n] = mt_strdup(name);
    if (!cv->names[cv->n]) return mt_err_set(MT_ERR_NOMEM, "channel name");
    cv->values[cv->n++] = value;
    return MT_OK;
}

void mt__chanvals_clear(mt__chanvals *cv)
{
    for (int32_t i = 0; i < cv->n; i++) mt_free(cv->names[i]);
    mt_free(cv->names);
    mt_free(cv->values);
    memset(cv, 0, sizeof(*cv));
}

mt_status mt__chanvals_require(const mt__chanvals *cv, const char *name, mt_cfg_loc loc,
                               const char *what)
{
    if (mt__chanvals_find(cv, name) >= 0) return MT_OK;
    const char *hint = mt_cfg_suggest(name, cv->n, (const char *const *)cv->names);
    if (hint)
        return mt_cfg_error(MT_ERR_INVALID, loc, "%s: unknown channel '%s' (did you mean '%s'?)",
                            what, name, hint);
    char list[512];
    size_t used = 0;
    list[0] = 0;
    for (int32_t i = 0; i < cv->n && used + 40 < sizeof(list); i++)
        used += (size_t)snprintf(list + used, sizeof(list) - used, "%s'%s'", i ? ", " : "",
                                 cv->names[i]);
    if (cv->n == 0)
        return mt_cfg_error(MT_ERR_INVALID, loc,
                            "%s: unknown channel '%s' (the monitor has no channels: is a "
                            "monitoring_dataset given?)",
                            what, name);
    return mt_cfg_error(MT_ERR_INVALID, loc, "%s: unknown channel '%s' (channels: %s%s)", what,
                        name, list, used + 40 >= sizeof(list) ? ", ..." : "");
}

const char *mt__path_join(char *buf, size_t cap, const char *prefix, const char *name)
{
    if (!prefix || !*prefix)
        snprintf(buf, cap, "%s", name);
    else
        snprintf(buf, cap, "%s/%s", prefix, name);
    return buf;
}

/* ---------------------------------------------------------------- build context */

void mt__build_ctx_clear(mt__build_ctx *ctx)
{
    for (int32_t i = 0; i < ctx->n_loaded; i++) {
        mt_ckpt_free(ctx->loaded[i].ckpt);
        mt_free(ctx->loaded[i].path);
        mt_free(ctx->loaded[i].pushed_name);
    }
    mt_free(ctx->loaded);
    ctx->loaded = NULL;
    ctx->n_loaded = ctx->cap_loaded = 0;
}

mt__loaded_ckpt *mt__build_ctx_find(mt__build_ctx *ctx, const mt_model *m)
{
    if (!ctx) return NULL;
    for (int32_t i = 0; i < ctx->n_loaded; i++)
        if (ctx->loaded[i].model == m) return &ctx->loaded[i];
    return NULL;
}

/* ---------------------------------------------------------------- graphs and data */

mt_status mt__run_model_graph(mt__run *run, mt_graph *g, mt_model_graph *mg,
                              const mt_dataset_info *data)
{
    mt_graph_set_seed(g, run->seed);
    mt_status st = mt_model_graph_init(mg, run->model, g, data, -1, run->seed);
    if (st) return mt_err_prefix(st, "model graph: ");
    mt_dtype dt = mt__run_compute_dtype(run);
    if (dt == MT_FLOAT32) return MT_OK;
    if (run->alg && run->alg->ops && strcmp(run->alg->ops->name, "SGD") != 0)
        st = mt_err_set(MT_ERR_UNSUPPORTED, "precision %s: only SGD trains in mixed precision "
                        "(the algorithm is %s)", mt_dtype_name(dt), run->alg->ops->name);
    if (!st) st = mt_model_graph_set_compute(mg, dt);
    if (st) mt_model_graph_clear(mg);
    return st;
}

mt_status mt__run_bind_params(mt__run *run, mt_function *f, const mt_model_graph *mg)
{
    for (int32_t i = 0; i < mg->n_params && i < run->n_params; i++) {
        if (!mt_function_var_type(f, mg->params[i])) continue; /* not used by f */
        mt_status st = mt_function_set_shared(f, mg->params[i], &run->params[i]);
        if (st)
            return mt_err_prefix(st, "binding parameter %s: ",
                                 mt_model_param_const(run->model, i)->name);
    }
    return MT_OK;
}

mt_status mt__run_batch(mt__run *run, const mt_dataset *d, mt_data_iter *it, int64_t epoch,
                        int64_t b, int64_t *rows, mt_array *X, mt_array *y, int64_t *n_rows)
{
    mt_status st = mt_data_iter_rows(it, epoch, b, rows, n_rows);
    if (st) return st;
    return mt_dataset_gather(d, rows, *n_rows, X, y);
}

double mt__run_seconds(const mt__run *run)
{
    return run->seconds_offset + (mt_now_seconds() - run->session_start);
}

static void report_progress(mt__run *run, bool force)
{
    if (!run->progress) return;
    double now = mt_now_seconds();
    if (!force && now - run->last_progress_time < 0.25) return;
    double dt = now - run->rate_time;
    if (dt > 0.5) {
        double rate = (double)(run->examples_seen - run->rate_examples) / dt;
        run->progress_rate = run->progress_rate > 0 ? 0.5 * run->progress_rate + 0.5 * rate
                                                    : rate;
        run->rate_time = now;
        run->rate_examples = run->examples_seen;
    }
    run->last_progress_time = now;
    mt_train_progress p;
    memset(&p, 0, sizeof(p));
    p.phase = run->phase;
    p.n_phases = run->job ? run->job->n_phases : 1;
    p.epoch = run->epochs_seen + 1;
    p.max_epochs = run->max_epochs;
    p.batch = run->batch_in_epoch;
    p.n_batches = run->batches_this_epoch;
    p.samples_per_s = run->progress_rate;
    int64_t left = run->batches_this_epoch - run->batch_in_epoch;
    p.eta_s = run->progress_rate > 0 ? (double)(left * run->batch_size) / run->progress_rate
                                     : -1.0;
    p.n_channels = run->last.n;
    p.channel_names = (const char *const *)run->last.names;
    p.channel_values = run->last.values;
    run->progress(&p, run->progress_user);
}

mt_status mt__run_after_batch(mt__run *run, int64_t n_examples, bool *stop)
{
    *stop = false;
    for (int32_t i = 0; run->train && i < run->train->n_ext; i++) {
        mt__extension *e = run->train->ext[i];
        mt_status st = e->ops->after_batch ? e->ops->after_batch(e, run) : MT_OK;
        if (st) return st;
    }
    run->batches_seen++;
    run->examples_seen += n_examples;
    run->batch_in_epoch++;
    report_progress(run, run->batch_in_epoch == run->batches_this_epoch);
    mt__signal_state *sig = run->sig;
    if (!sig) return MT_OK;
    int32_t rank = mt__run_rank(run);
    if (sig->test_after_batches >= 0 && run->batches_seen >= sig->test_after_batches &&
        (sig->test_rank < 0 || sig->test_rank == rank)) {
        sig->test_after_batches = -1;
        raise(sig->test_signal);
    }
    if (sig->stall_rank == rank && run->batches_seen >= sig->stall_after_batches) {
        mt_log(MT_LOG_WARN, "test hook: rank %d stalls after %lld batches", (int)rank,
               (long long)run->batches_seen);
        for (;;) sleep(1);
    }
    if (run->opts && run->opts->time_limit_s > 0 && !run->time_limited &&
        mt__run_seconds(run) > run->opts->time_limit_s) {
        /* the time limit stops the run as SIGTERM would (every rank agrees on it) */
        run->time_limited = true;
        if (!sig->pending) sig->pending = SIGTERM;
        if (mt__run_is_main(run))
            mt_log(MT_LOG_WARN, "time limit of %g s reached: stopping at epoch %lld, batch %lld",
                   run->opts->time_limit_s, (long long)run->epochs_seen + 1,
                   (long long)run->batch_in_epoch);
    }
    int pending;
    if (mt__run_size(run) > 1) {
        /* Act only on what every rank agreed on at this step boundary. */
        if (!run->signal_agreed) {
            mt_status st = mt__run_dp_step_end(run, NULL);
            if (st) return st;
        }
        pending = run->agreed_signal;
        run->signal_agreed = false;
        run->agreed_signal = 0;
    } else {
        pending = sig->pending;
        sig->pending = 0;
    }
    if (!pending) return MT_OK;
    if (pending == SIGUSR1) {
        if (mt__run_is_main(run))
            mt_log(MT_LOG_INFO, "SIGUSR1: writing checkpoint %s (epoch %lld, batch %lld)",
                   run->ckpt_path, (long long)run->epochs_seen + 1,
                   (long long)run->batch_in_epoch);
        run->stage = 0;
        return mt__run_save(run, run->ckpt_path);
    }
    run->stop_requested = true;
    run->stop_signal = pending;
    *stop = true;
    return MT_OK;
}

int64_t mt__run_epoch_batches(const mt__run *run, int64_t n)
{
    int64_t lim = run && run->opts ? run->opts->limit_batches : 0;
    return lim > 0 && lim < n ? lim : n;
}

mt_status mt__run_sync_params(mt__run *run)
{
    for (int32_t i = 0; i < run->n_params; i++) {
        mt_model_param *p = mt_model_param_at(run->model, i);
        if (p->value.buf == run->params[i].buf) continue; /* a view of the model's array */
        mt_status st = mt_array_copy(&p->value, &run->params[i]);
        if (st) return mt_err_prefix(st, "copying parameter %s to the host: ", p->name);
    }
    return MT_OK;
}

mt_status mt__run_channel(const mt__run *run, const char *name, double *out)
{
    int32_t i = mt__chanvals_find(&run->last, name);
    if (i < 0) return mt_err_set(MT_ERR_NOT_FOUND, "no monitor channel '%s'", name);
    *out = run->last.values[i];
    return MT_OK;
}

mt_status mt__run_old_channel(const mt__run *run, const char *monitor, const char *name,
                              double *out)
{
    for (int32_t i = 0; i < run->n_old_monitors; i++) {
        mt_monitor_history *h = &run->old_monitors[i];
        if (strcmp(h->name, monitor)) continue;
        mt_chan_history *c = mt_monitor_history_channel(h, name, false);
        if (!c || c->n == 0)
            return mt_err_set(MT_ERR_NOT_FOUND, "monitor '%s' has no channel '%s'", monitor,
                              name);
        *out = c->records[c->n - 1].value;
        return MT_OK;
    }
    return mt_err_set(MT_ERR_NOT_FOUND,
                      "no monitor named '%s' (push_monitor with that name is needed)", monitor);
}
