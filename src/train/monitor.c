/* The monitor (Pylearn2's monitor.py): one compiled function per monitoring dataset
 * computing all of that dataset's channels at once from a batch: the model's channels
 * (mt_model_channels: y_misclass, y_nll, h0_col_norms_max, ...), the cost as "objective" and
 * the cost's own channels, each named "<dataset>_<channel>" (no prefix for an unnamed
 * dataset, as Pylearn2). Batch values are combined per mt_chan_reduce: MEAN weighted by the
 * batch's examples, MAX / MIN over batches, NODATA from the first batch. After the datasets
 * come the algorithm's channels (learning_rate, momentum) and the loop's
 * training_seconds_this_epoch and total_seconds_last_epoch (only when there is a monitoring
 * dataset, as Pylearn2). Each monitor call appends one record to the run's history and log.
 * In a data-parallel run each rank computes every size-th monitoring batch and the batch values
 * are gathered and combined in batch order on every rank (run_ds). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "train_impl.h"

typedef struct mon_ds {
    const char *name;        /* borrowed from the algorithm */
    mt_dataset *data;        /* borrowed */
    mt_dataset_info info;
    mt_graph *g;
    mt_model_graph mg;
    bool mg_init;
    mt_function *fn;
    int32_t n_ch;
    char **names;            /* prefixed, owned */
    mt_chan_reduce *reduce;
    mt_var *vars;
    double *acc;
    mt_data_iter it;
    bool it_init;
    int64_t *rows;
    mt_array X, y;
} mon_ds;

struct mt__monitor {
    int32_t n;
    mon_ds *ds;
    int64_t batch_size;
    int64_t num_batches;
    mt_iter_mode mode;
};

static mt_status add_channel(mon_ds *d, const char *name, mt_var v, mt_chan_reduce r)
{
    char full[256];
    if (d->name[0])
        snprintf(full, sizeof(full), "%s_%s", d->name, name);
    else
        snprintf(full, sizeof(full), "%s", name);
    for (int32_t i = 0; i < d->n_ch; i++)
        if (!strcmp(d->names[i], full)) return MT_OK; /* first definition wins */
    int32_t n = d->n_ch + 1;
    char **names = mt_realloc(d->names, (size_t)n * sizeof(*names));
    if (names) d->names = names;
    mt_chan_reduce *red = mt_realloc(d->reduce, (size_t)n * sizeof(*red));
    if (red) d->reduce = red;
    mt_var *vars = mt_realloc(d->vars, (size_t)n * sizeof(*vars));
    if (vars) d->vars = vars;
    if (!names || !red || !vars) return mt_err_set(MT_ERR_NOMEM, "monitor channels");
    d->names[d->n_ch] = mt_strdup(full);
    if (!d->names[d->n_ch]) return mt_err_set(MT_ERR_NOMEM, "monitor channel name");
    d->reduce[d->n_ch] = r;
    d->vars[d->n_ch] = v;
    d->n_ch = n;
    return MT_OK;
}

static mt_status add_list(mon_ds *d, const mt_channel_list *l)
{
    for (int32_t i = 0; i < l->n; i++) {
        mt_status st = add_channel(d, l->items[i].name, l->items[i].value, l->items[i].reduce);
        if (st) return st;
    }
    return MT_OK;
}

static mt_status setup_ds(mt__monitor *m, mon_ds *d, mt__run *run, const mt__algo_common *c)
{
    mt_dataset_get_info(d->data, &d->info);
    mt_status st = mt_model_check_data(run->model, &d->info);
    if (st) return mt_err_prefix(st, "monitoring dataset '%s': ", d->name);
    if ((st = mt_graph_new(&d->g))) return st;
    if ((st = mt__run_model_graph(run, d->g, &d->mg, &d->info))) return st;
    d->mg_init = true;
    mt_channel_list l;
    memset(&l, 0, sizeof(l));
    st = mt_model_channels(&d->mg, &l);
    if (!st) st = add_list(d, &l);
    mt_channel_list_clear(&l);
    if (st) return mt_err_prefix(st, "monitor channels of '%s': ", d->name);
    mt_var cost;
    if ((st = mt__algo_cost_expr(c, &d->mg, &cost))) return st;
    if ((st = add_channel(d, "objective", cost, MT_CHAN_MEAN))) return st;
    if (c->cost) {
        memset(&l, 0, sizeof(l));
        st = mt_cost_channels(c->cost, &d->mg, &l);
        if (!st) st = add_list(d, &l);
        mt_channel_list_clear(&l);
        if (st) return mt_err_prefix(st, "cost channels of '%s': ", d->name);
    }
    if (mt_graph_status(d->g))
        return mt_err_set(mt_graph_status(d->g), "monitor '%s': %s", d->name,
                          mt_graph_last_error(d->g));
    d->acc = mt_calloc((size_t)d->n_ch + 1, sizeof(double));
    if (!d->acc) return mt_err_set(MT_ERR_NOMEM, "monitor");
    if (run->dry_run) return MT_OK;
    mt_var inputs[2] = {d->mg.X, d->mg.y};
    int32_t n_in = d->mg.y != MT_VAR_NONE ? 2 : 1;
    mt_function_options fo;
    mt_function_options_init(&fo);
    fo.mode = (mt_mode)run->opts->mode;
    st = mt_function_new(&d->fn, d->g, n_in, inputs, d->n_ch, d->vars, 0, NULL, run->dev, &fo);
    if (st) return mt_err_prefix(st, "compiling the monitor of '%s': ", d->name);
    if ((st = mt__run_bind_params(run, d->fn, &d->mg))) return st;
    st = mt_data_iter_init(&d->it, d->data, m->mode, m->batch_size, m->num_batches, run->seed);
    if (st) return mt_err_prefix(st, "monitoring dataset '%s': ", d->name);
    d->it_init = true;
    d->rows = mt_malloc((size_t)m->batch_size * sizeof(int64_t));
    return d->rows ? MT_OK : mt_err_set(MT_ERR_NOMEM, "monitor rows");
}

mt_status mt__monitor_new(mt__monitor **out, mt__run *run, const mt__algo_common *c)
{
    mt__monitor *m = mt_calloc(1, sizeof(*m));
    if (!m) return mt_err_set(MT_ERR_NOMEM, "monitor");
    *out = m;
    if (c->n_monitoring == 0) return MT_OK;
    m->ds = mt_calloc((size_t)c->n_monitoring, sizeof(*m->ds));
    if (!m->ds) return mt_err_set(MT_ERR_NOMEM, "monitor");
    m->mode = c->monitor_iteration_mode;
    m->batch_size = c->monitoring_batch_size;
    m->num_batches = c->monitoring_batches;
    if (!m->batch_size && !m->num_batches) {
        mt_status st = mt__algo_batch_size(c, run, &m->batch_size);
        if (st) return st;
        m->num_batches = c->batches_per_iter;
    }
    if (!m->batch_size) {
        /* Only monitoring_batches given: batches covering the dataset. */
        m->batch_size = 1;
    }
    for (int32_t i = 0; i < c->n_monitoring; i++) {
        mon_ds *d = &m->ds[i];
        d->name = c->monitoring[i].name;
        d->data = c->monitoring[i].data;
        m->n = i + 1;
        if (c->monitoring_batches && !c->monitoring_batch_size) {
            mt_dataset_info info;
            mt_dataset_get_info(d->data, &info);
            /* Pylearn2: ceil(n / num_batches) rows per batch; its even iterators take
             * int(n / num_batches) so that num_batches full batches exist. */
            int64_t bs = mt_iter_mode_is_even(m->mode)
                             ? info.n / c->monitoring_batches
                             : (info.n + c->monitoring_batches - 1) / c->monitoring_batches;
            if (bs < 1) bs = 1;
            if (bs > m->batch_size) m->batch_size = bs;
        }
        mt_status st = setup_ds(m, d, run, c);
        if (st) return st;
    }
    return MT_OK;
}

void mt__monitor_free(mt__monitor *m)
{
    if (!m) return;
    for (int32_t i = 0; i < m->n; i++) {
        mon_ds *d = &m->ds[i];
        mt_function_free(d->fn);
        if (d->mg_init) mt_model_graph_clear(&d->mg);
        mt_graph_free(d->g);
        for (int32_t k = 0; k < d->n_ch; k++) mt_free(d->names[k]);
        mt_free(d->names);
        mt_free(d->reduce);
        mt_free(d->vars);
        mt_free(d->acc);
        if (d->it_init) mt_data_iter_clear(&d->it);
        mt_free(d->rows);
        mt_array_clear(&d->X);
        mt_array_clear(&d->y);
    }
    mt_free(m->ds);
    mt_free(m);
}

static bool has_datasets(const mt__monitor *m)
{
    return m && m->n > 0;
}

mt_status mt__monitor_channel_names(const mt__monitor *m, mt__chanvals *known)
{
    mt_status st = MT_OK;
    for (int32_t i = 0; m && i < m->n && !st; i++)
        for (int32_t k = 0; k < m->ds[i].n_ch && !st; k++)
            st = mt__chanvals_set(known, m->ds[i].names[k], NAN);
    return st;
}

static mt_status read_value(const mt_array *a, double *out)
{
    if (a->dtype == MT_FLOAT64) return mt_array_to_host(out, sizeof(double), a);
    if (a->dtype == MT_FLOAT32) {
        float f;
        mt_status st = mt_array_to_host(&f, sizeof(f), a);
        *out = f;
        return st;
    }
    mt_array d;
    memset(&d, 0, sizeof(d));
    mt_status st = mt_array_astype(&d, a, MT_FLOAT64);
    if (!st) st = mt_array_to_host(out, sizeof(double), &d);
    mt_array_clear(&d);
    return st;
}

/* Folds one batch value of channel k into its accumulator (first: the first batch). */
static void fold(mt_chan_reduce r, double *acc, double v, int64_t n, bool first)
{
    switch (r) {
    case MT_CHAN_MEAN: *acc = first ? v * (double)n : *acc + v * (double)n; break;
    case MT_CHAN_MAX: *acc = first ? v : fmax(*acc, v); break;
    case MT_CHAN_MIN: *acc = first ? v : fmin(*acc, v); break;
    case MT_CHAN_NODATA: if (first) *acc = v; break;
    }
    if (isnan(v) && r != MT_CHAN_MEAN) *acc = v;
}

/* In a data-parallel run the monitoring batches are dealt round-robin to the ranks (batch b to
 * rank b mod size), whole: many channels are statistics of a batch (the largest activation of
 * a unit over the batch, ...) that shards of the batch would change. Each rank keeps its
 * batches' values, the values of every batch are gathered, and every rank folds them in batch
 * order exactly as one process does, so the channels equal the single-process values bit for
 * bit (given the same per-batch results). */
static mt_status run_ds(mon_ds *d, mt__run *run, mt__chanvals *out)
{
    bool with_y = d->mg.y != MT_VAR_NONE;
    int32_t size = mt__run_size(run), rank = mt__run_rank(run), nv = d->n_ch + 1;
    int64_t nb = mt__run_epoch_batches(run, d->it.n_batches);
    int64_t per = (nb + size - 1) / size; /* batch slots per rank */
    mt_array *outs = mt_calloc((size_t)d->n_ch + 1, sizeof(*outs));
    double *mine = mt_calloc((size_t)(per * nv) + 1, sizeof(double));
    double *all = mt_calloc((size_t)(per * nv * size) + 1, sizeof(double));
    mt_status st = MT_OK;
    if (!outs || !mine || !all) {
        st = mt_err_set(MT_ERR_NOMEM, "monitor outputs");
        goto done;
    }
    uint64_t c0 = mt_function_rng_counter(d->fn);
    for (int64_t j = 0; j < per && !st; j++) {
        int64_t b = j * size + rank, n = 0;
        if (b >= nb) {
            /* Collective (MPI-IO) reads go in lockstep: a rank without a batch in the last
             * round still takes part, with no rows. */
            if (mt_dataset_is_collective(d->data))
                st = mt_dataset_gather(d->data, d->rows, 0, &d->X, with_y ? &d->y : NULL);
            break;
        }
        if ((st = mt__run_batch(run, d->data, &d->it, 0, b, d->rows, &d->X,
                                with_y ? &d->y : NULL, &n)))
            break;
        const mt_array *in[2] = {&d->X, &d->y};
        mt_function_set_rng_counter(d->fn, c0 + (uint64_t)b);
        st = mt_function_call(d->fn, with_y ? 2 : 1, in, d->n_ch, outs);
        if (st) {
            st = mt_err_prefix(st, "monitor '%s', batch %lld: ", d->name, (long long)b + 1);
            break;
        }
        double *v = mine + j * nv;
        for (int32_t k = 0; k < d->n_ch && !st; k++) st = read_value(&outs[k], &v[k]);
        v[d->n_ch] = (double)n;
        for (int32_t k = 0; k < d->n_ch; k++) mt_array_clear(&outs[k]);
    }
    mt_function_set_rng_counter(d->fn, c0 + (uint64_t)nb);
    if (!st) st = mt__run_dp_allgather(run, (int32_t)(per * nv), mine, all);
    int64_t total = 0;
    for (int64_t b = 0; b < nb && !st; b++) {
        const double *v = all + ((b % size) * per + b / size) * nv;
        int64_t n = (int64_t)v[d->n_ch];
        for (int32_t k = 0; k < d->n_ch; k++) fold(d->reduce[k], &d->acc[k], v[k], n, b == 0);
        total += n;
    }
    for (int32_t k = 0; k < d->n_ch && !st; k++) {
        double v = d->acc[k];
        if (d->reduce[k] == MT_CHAN_MEAN) v = total > 0 ? v / (double)total : NAN;
        st = mt__chanvals_set(out, d->names[k], v);
    }
done:
    mt_free(outs);
    mt_free(mine);
    mt_free(all);
    return st;
}

mt_status mt__monitor_run(mt__monitor *m, mt__run *run)
{
    if (!has_datasets(m)) return MT_OK;
    mt__chanvals vals;
    memset(&vals, 0, sizeof(vals));
    mt_status st = MT_OK;
    for (int32_t i = 0; i < m->n && !st; i++) st = run_ds(&m->ds[i], run, &vals);
    if (!st && run->alg && run->alg->ops->channels) st = run->alg->ops->channels(run->alg, run, &vals);
    if (!st) st = mt__chanvals_set(&vals, "training_seconds_this_epoch", run->epoch_train_seconds);
    if (!st) st = mt__chanvals_set(&vals, "total_seconds_last_epoch", run->epoch_total_seconds);
    /* Every rank records rank 0's values (the times differ between ranks; the rest agree). */
    if (!st && mt__run_size(run) > 1) st = mt__run_dp_bcast(run, vals.n, vals.values);
    double secs = mt__run_seconds(run);
    for (int32_t i = 0; i < vals.n && !st; i++) {
        mt_chan_history *h = mt_monitor_history_channel(&run->history, vals.names[i], true);
        if (!h) {
            st = mt_err_set(MT_ERR_NOMEM, "monitor history");
            break;
        }
        mt_chan_record r = {vals.values[i], run->epochs_seen, run->batches_seen,
                            run->examples_seen, secs};
        st = mt_chan_history_append(h, &r);
    }
    if (!st && run->log)
        st = mt_monitor_log_write(run->log, run->epochs_seen, run->batches_seen,
                                  run->examples_seen, secs, vals.n,
                                  (const char *const *)vals.names, vals.values);
    if (st) {
        mt__chanvals_clear(&vals);
        return st;
    }
    mt__chanvals_clear(&run->last);
    run->last = vals;
    return MT_OK;
}

mt_status mt__monitor_save_state(const mt__monitor *m, mt_ckpt *c)
{
    char k[64];
    for (int32_t i = 0; m && i < m->n; i++) {
        if (!m->ds[i].fn) continue;
        snprintf(k, sizeof(k), "monitor_state/%d/rng_counter", (int)i);
        mt_status st = mt_ckpt_put_int(c, k, (int64_t)mt_function_rng_counter(m->ds[i].fn));
        if (st) return st;
    }
    return MT_OK;
}

mt_status mt__monitor_load_state(mt__monitor *m, const mt_ckpt *c)
{
    char k[64];
    for (int32_t i = 0; m && i < m->n; i++) {
        if (!m->ds[i].fn) continue;
        snprintf(k, sizeof(k), "monitor_state/%d/rng_counter", (int)i);
        int64_t v = 0;
        mt_status st = mt_ckpt_get_int(c, k, &v);
        if (st) return st;
        mt_function_set_rng_counter(m->ds[i].fn, (uint64_t)v);
    }
    return MT_OK;
}

void mt__monitor_describe(const mt__monitor *m, mt_strbuf *sb)
{
    for (int32_t i = 0; m && i < m->n; i++) {
        const mon_ds *d = &m->ds[i];
        mt_strbuf_appendf(sb, "  monitoring '%s': %s, %lld examples, %d channels\n",
                          d->name[0] ? d->name : "(unnamed)", d->info.name ? d->info.name : "?",
                          (long long)d->info.n, (int)d->n_ch);
    }
}
