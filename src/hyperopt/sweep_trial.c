/* One trial of a sweep. A training trial is the Train object with the trial's point
 * substituted, written by the coordinator to trial_NNNN/resolved.yaml and run from that file as
 * any job (mt_job_load + mt_job_run) on the trial's group communicator, with the trial folder
 * as run directory (monitor.jsonl/csv, TensorBoard events) and --resume=auto, so a trial that
 * was stopped continues from its checkpoint. After every monitor call the group's rank 0 hands
 * the objective channel to the reporter (the coordinator), which may stop the run (pruned);
 * while training it sends heartbeats. The final objective value (best or last, over epochs
 * >= 1) is read back from the trial's monitor.jsonl, which holds every record of the run
 * including those of earlier sessions. Errors, non-finite objectives and the time limit make
 * the trial FAILED with a message; a signal leaves it unfinished.
 *
 * An expression objective is evaluated instead of training. When the expression names `epoch`
 * (and no parameter has that name) it is evaluated at epochs 1..E, each value reported like a
 * monitor call, E = --max-epochs or the max_epochs of an EpochCounter in the trial's Train
 * object: so pruners can be exercised and benchmarked without training. Test hook:
 * MLTRAIN_TEST_SWEEP_EPOCH_SLEEP=seconds sleeps after each such epoch (or once for an
 * expression without `epoch`); MLTRAIN_TEST_SWEEP_STALL_TRIAL=id makes the rank that runs the
 * first attempt of that trial stop answering (a hung worker). */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hyperopt_impl.h"
#include "mltrain/io.h"
#include "mltrain/jit.h"
#include "mltrain/train.h"
#include "sweep_impl.h"

/* ---------------------------------------------------------------- resolved trials */

typedef struct trial_vars {
    char id[32], dir[1024], seed[32], sweep_dir[1024];
    mt_cfg_var v[5];
} trial_vars;

static void make_vars(const mt__sweep *sw, int64_t id, trial_vars *tv)
{
    snprintf(tv->id, sizeof tv->id, "%lld", (long long)id);
    mt__sw_trial_dir(sw, id, tv->dir, sizeof tv->dir);
    snprintf(tv->seed, sizeof tv->seed, "%llu",
             (unsigned long long)(sw->cfg.sampler.seed + (uint64_t)id));
    snprintf(tv->sweep_dir, sizeof tv->sweep_dir, "%s", sw->dir);
    tv->v[0] = (mt_cfg_var){"trial.id", tv->id};
    tv->v[1] = (mt_cfg_var){"trial.dir", tv->dir};
    tv->v[2] = (mt_cfg_var){"trial.seed", tv->seed};
    tv->v[3] = (mt_cfg_var){"sweep.name", sw->cfg.name};
    tv->v[4] = (mt_cfg_var){"sweep.dir", tv->sweep_dir};
}

mt_status mt__sw_write_resolved(mt__sweep *sw, int64_t id, const mt_hpo_point *p)
{
    trial_vars tv;
    make_vars(sw, id, &tv);
    mt_hpo_tree *tree = NULL;
    mt_status st = mt_hpo_resolve(&tree, sw->space, p, sw->cfg.train, 5, tv.v);
    if (st) return st;
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    mt_strbuf_appendf(&sb, "# sweep '%s', trial %lld: ", sw->cfg.name, (long long)id);
    st = mt_hpo_point_describe(sw->space, p, &sb);
    mt_strbuf_append(&sb, "\n");
    if (!st) st = mt_cfg_dump(&sb, mt_hpo_tree_root(tree));
    if (!st) st = mt_strbuf_status(&sb);
    if (!st) st = mt_mkdirs(tv.dir, 0755);
    if (!st) {
        char path[1100];
        snprintf(path, sizeof path, "%s/resolved.yaml", tv.dir);
        st = mt_file_write_atomic(path, sb.data, sb.len, 0644);
    }
    mt_strbuf_deinit(&sb);
    mt_hpo_tree_free(tree);
    return st;
}

/* max_epochs of an EpochCounter anywhere in the tree, or -1. */
static int64_t find_max_epochs(const mt_cfg_node *n, int depth)
{
    if (!n || depth > 64) return -1;
    if (n->kind == MT_CFG_OBJ && n->tag && strstr(n->tag, "EpochCounter")) {
        const mt_cfg_node *m = mt_cfg_get(n, "max_epochs");
        if (m && m->kind == MT_CFG_INT) return m->i;
    }
    if (n->kind == MT_CFG_LIST || n->kind == MT_CFG_MAP || n->kind == MT_CFG_OBJ)
        for (int32_t i = 0; i < n->n; i++) {
            int64_t v = find_max_epochs(n->items[i], depth + 1);
            if (v >= 0) return v;
        }
    return -1;
}

/* ---------------------------------------------------------------- outcomes */

void mt__sw_outcome_clear(mt__sw_outcome *oc)
{
    mt_free(oc->steps);
    mt_free(oc->values);
    memset(oc, 0, sizeof *oc);
}

void mt__sw_series_add(int64_t **steps, double **values, int32_t *n, int32_t *cap, int64_t step,
                       double v)
{
    /* a resumed run repeats or rewinds: keep the steps increasing */
    while (*n > 0 && (*steps)[*n - 1] >= step) (*n)--;
    if (*n == *cap) {
        int32_t c = *cap ? *cap * 2 : 16;
        int64_t *s = mt_realloc(*steps, (size_t)c * sizeof *s);
        if (s) *steps = s;
        double *d = mt_realloc(*values, (size_t)c * sizeof *d);
        if (d) *values = d;
        if (!s || !d) return;
        *cap = c;
    }
    (*steps)[*n] = step;
    (*values)[(*n)++] = v;
}

static void outcome_add(mt__sw_outcome *oc, int64_t step, double v)
{
    mt__sw_series_add(&oc->steps, &oc->values, &oc->n_reports, &oc->cap_reports, step, v);
}

static bool better(const mt__sweep *sw, double a, double b)
{
    if (isnan(b)) return !isnan(a);
    if (isnan(a)) return false;
    return sw->cfg.objective.maximize ? a > b : a < b;
}

/* The objective value from the reports (epochs >= 1; reduce best or last). */
static void reduce_reports(const mt__sweep *sw, mt__sw_outcome *oc)
{
    oc->value = NAN;
    oc->best_epoch = 0;
    for (int32_t i = 0; i < oc->n_reports; i++) {
        double v = oc->values[i];
        if (sw->cfg.objective.reduce_last || i == 0 || better(sw, v, oc->value)) {
            oc->value = v;
            oc->best_epoch = oc->steps[i];
        }
    }
}

static double mono(void)
{
    return mt_now_seconds();
}

static void sleep_s(double s)
{
    if (s <= 0) return;
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

static void maybe_stall(int64_t id, int32_t attempt)
{
    const char *e = getenv("MLTRAIN_TEST_SWEEP_STALL_TRIAL");
    if (e && *e && strtoll(e, NULL, 10) == id && attempt == 1) {
        mt_log(MT_LOG_WARN, "test hook: the worker of trial %lld stops answering", (long long)id);
        for (;;) sleep(1);
    }
}

static double test_sleep(void)
{
    const char *e = getenv("MLTRAIN_TEST_SWEEP_EPOCH_SLEEP");
    return e && *e ? atof(e) : 0;
}

static mt_status run_expression(mt__sweep *sw, int64_t id, int32_t attempt,
                                const mt_hpo_point *p, const mt__sw_reporter *rep,
                                mt__sw_outcome *oc)
{
    double t0 = mono();
    double limit = sw->cfg.distributed.trial_time_limit_s;
    maybe_stall(id, attempt);
    mt_hpo_expr *e = sw->expr;
    if (!mt__hpo_expr_uses_extra(e, 0)) { /* no `epoch` */
        mt_status st = mt__hpo_expr_eval_ex(e, p, (const double[]){0}, &oc->value);
        if (st) {
            oc->status = MT_HPO_FAILED;
            snprintf(oc->message, sizeof oc->message, "%s", mt_last_error());
            mt_err_clear();
            return MT_OK;
        }
        sleep_s(test_sleep());
        oc->status = isfinite(oc->value) ? MT_HPO_OK : MT_HPO_FAILED;
        if (!isfinite(oc->value))
            snprintf(oc->message, sizeof oc->message, "the objective expression gave %s",
                     isnan(oc->value) ? "NaN" : oc->value > 0 ? "inf" : "-inf");
        oc->seconds = mono() - t0;
        return MT_OK;
    }
    int64_t E = sw->o.max_epochs;
    if (E < 0) {
        trial_vars tv;
        make_vars(sw, id, &tv);
        mt_hpo_tree *tree = NULL;
        mt_status st = mt_hpo_resolve(&tree, sw->space, p, sw->cfg.train, 5, tv.v);
        if (st) return st;
        E = find_max_epochs(mt_hpo_tree_root(tree), 0);
        mt_hpo_tree_free(tree);
    }
    if (E < 1) {
        oc->status = MT_HPO_FAILED;
        snprintf(oc->message, sizeof oc->message,
                 "the objective expression uses 'epoch' but the trial has no number of epochs: "
                 "give the Train object an EpochCounter or pass --max-epochs");
        return MT_OK;
    }
    double nap = test_sleep();
    oc->status = MT_HPO_OK;
    for (int64_t ep = 1; ep <= E; ep++) {
        double v;
        mt_status st = mt__hpo_expr_eval_ex(e, p, (const double[]){(double)ep}, &v);
        if (st) {
            oc->status = MT_HPO_FAILED;
            snprintf(oc->message, sizeof oc->message, "%s", mt_last_error());
            mt_err_clear();
            break;
        }
        sleep_s(nap);
        oc->epochs = ep;
        outcome_add(oc, ep, v);
        bool prune = false;
        if (rep && rep->report) rep->report(rep->user, id, ep, v, &prune);
        if (prune) {
            oc->status = MT_HPO_PRUNED;
            break;
        }
        if (sw->signal_flag && *sw->signal_flag) {
            oc->interrupted = true;
            break;
        }
        if (limit > 0 && mono() - t0 > limit) {
            oc->status = MT_HPO_FAILED;
            oc->time_limited = true;
            snprintf(oc->message, sizeof oc->message,
                     "time limit of %g s reached after epoch %lld", limit, (long long)ep);
            break;
        }
    }
    reduce_reports(sw, oc);
    if (oc->status == MT_HPO_OK && !isfinite(oc->value)) {
        oc->status = MT_HPO_FAILED;
        snprintf(oc->message, sizeof oc->message, "the objective expression gave %s",
                 isnan(oc->value) ? "NaN" : oc->value > 0 ? "inf" : "-inf");
    }
    oc->seconds = mono() - t0;
    return MT_OK;
}

/* ---------------------------------------------------------------- training trials */

typedef struct train_ctx {
    mt__sweep *sw;
    int64_t id;
    const mt__sw_reporter *rep;
    mt__sw_outcome *oc;
    double last_beat;
    bool missing;
} train_ctx;

static mt_status on_monitor(const mt_train_monitor_report *r, void *user, bool *stop)
{
    train_ctx *c = user;
    const char *ch = c->sw->cfg.objective.channel;
    int32_t k = -1;
    for (int32_t i = 0; i < r->n_channels; i++)
        if (strcmp(r->channel_names[i], ch) == 0) k = i;
    if (k < 0) {
        mt_strbuf sb;
        mt_strbuf_init(&sb);
        for (int32_t i = 0; i < r->n_channels && i < 40; i++)
            mt_strbuf_appendf(&sb, "%s%s", i ? ", " : "", r->channel_names[i]);
        const char *hint = mt_cfg_suggest(ch, r->n_channels, r->channel_names);
        snprintf(c->oc->message, sizeof c->oc->message,
                 "objective channel '%s' is not a monitor channel of the trial%s%s%s "
                 "(channels: %s)",
                 ch, hint ? " (did you mean '" : "", hint ? hint : "", hint ? "'?)" : "",
                 sb.data ? sb.data : "none");
        mt_strbuf_deinit(&sb);
        c->missing = true;
        *stop = true;
        return MT_OK;
    }
    c->last_beat = mono();
    if (r->epoch < 1) return MT_OK;
    double v = r->channel_values[k];
    c->oc->epochs = r->epoch;
    outcome_add(c->oc, r->epoch, v);
    bool prune = false;
    if (c->rep && c->rep->report) c->rep->report(c->rep->user, c->id, r->epoch, v, &prune);
    if (prune) *stop = true;
    return MT_OK;
}

static void on_progress(const mt_train_progress *p, void *user)
{
    (void)p;
    train_ctx *c = user;
    double now = mono();
    if (now - c->last_beat < c->sw->cfg.distributed.heartbeat_s) return;
    c->last_beat = now;
    if (c->rep && c->rep->beat) c->rep->beat(c->rep->user, c->id);
}

/* Reads the objective's values per epoch back from the trial's monitor.jsonl. */
static void reports_from_log(const mt__sweep *sw, const char *dir, mt__sw_outcome *oc)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/monitor.jsonl", dir);
    mt_monitor_history h;
    if (mt_monitor_history_read_jsonl(&h, path) != MT_OK) {
        mt_err_clear();
        return;
    }
    mt_chan_history *c = mt_monitor_history_channel(&h, sw->cfg.objective.channel, false);
    if (c && c->n > 0) {
        oc->n_reports = 0;
        for (int32_t i = 0; i < c->n; i++)
            if (c->records[i].epoch >= 1) outcome_add(oc, c->records[i].epoch, c->records[i].value);
    }
    mt_monitor_history_clear(&h);
}

/* keep_checkpoints: best -> only best.ckpt (when there is one), last -> no best.ckpt. */
static void prune_checkpoints(const mt__sweep *sw, const char *dir)
{
    mt_sweep_keep keep = sw->cfg.storage.keep_checkpoints;
    if (keep == MT_SWEEP_KEEP_ALL) return;
    char path[1400];
    snprintf(path, sizeof path, "%s/best.ckpt", dir);
    struct stat stt;
    bool have_best = stat(path, &stt) == 0;
    if (keep == MT_SWEEP_KEEP_LAST) {
        if (have_best) unlink(path);
        return;
    }
    if (!have_best) return;
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n > 5 && !strcmp(e->d_name + n - 5, ".ckpt") && strcmp(e->d_name, "best.ckpt")) {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
    }
    closedir(d);
}

static mt_status run_training(mt__sweep *sw, int64_t id, mt_comm *group,
                              const mt__sw_reporter *rep, mt__sw_outcome *oc)
{
    char dir[1024], path[1100];
    mt__sw_trial_dir(sw, id, dir, sizeof dir);
    snprintf(path, sizeof path, "%s/resolved.yaml", dir);
    train_ctx c = {sw, id, rep, oc, mono(), false};
    mt_train_options o;
    mt_train_options_init(&o);
    o.device = sw->o.device ? sw->o.device : "host";
    o.max_epochs = sw->o.max_epochs;
    o.limit_batches = sw->o.limit_batches;
    o.resume = sw->cfg.distributed.resume_from == MT_SWEEP_FROM_SCRATCH ? MT_RESUME_NO
                                                                       : MT_RESUME_AUTO;
    o.run_dir = dir;
    o.comm = group;
    o.on_monitor = on_monitor;
    o.on_monitor_user = &c;
    o.progress = on_progress;
    o.progress_user = &c;
    o.time_limit_s = sw->cfg.distributed.trial_time_limit_s;
    o.handle_signals = sw->o.handle_signals;
    bool leader = mt_comm_rank(group) == 0;
    mt_job *job = NULL;
    mt_train_result res;
    memset(&res, 0, sizeof res);
    double t0 = mono();
    mt_status st = mt_job_load(&job, path, &o);
    if (!st) st = mt_job_run(job, &res);
    mt_job_free(job);
    oc->seconds = res.seconds > 0 ? res.seconds : mono() - t0;
    if (st) {
        oc->status = MT_HPO_FAILED;
        snprintf(oc->message, sizeof oc->message, "%s: %s", mt_status_name(st), mt_last_error());
        mt_err_clear();
        return MT_OK;
    }
    if (leader) reports_from_log(sw, dir, oc);
    reduce_reports(sw, oc);
    if (oc->n_reports > 0) oc->epochs = oc->steps[oc->n_reports - 1];
    if (c.missing) {
        oc->status = MT_HPO_FAILED;
    } else if (res.interrupted && res.time_limited) {
        oc->status = MT_HPO_FAILED;
        oc->time_limited = true;
        snprintf(oc->message, sizeof oc->message, "time limit of %g s reached at epoch %lld",
                 o.time_limit_s, (long long)res.epochs_seen + 1);
    } else if (res.interrupted) {
        oc->interrupted = true;
        if (sw->signal_flag && !*sw->signal_flag) *sw->signal_flag = res.interrupted;
        return MT_OK;
    } else if (res.stopped) {
        oc->status = MT_HPO_PRUNED;
    } else if (!isfinite(oc->value)) {
        oc->status = MT_HPO_FAILED;
        snprintf(oc->message, sizeof oc->message, "the objective channel '%s' is %s",
                 sw->cfg.objective.channel, oc->n_reports ? "not finite" : "never reported");
    } else {
        oc->status = MT_HPO_OK;
    }
    if (leader) prune_checkpoints(sw, dir);
    return MT_OK;
}

mt_status mt__sw_run_trial(mt__sweep *sw, int64_t id, int32_t attempt, const mt_hpo_point *p,
                           mt_comm *group, const mt__sw_reporter *rep, mt__sw_outcome *out)
{
    out->status = MT_HPO_FAILED;
    out->value = NAN;
    out->message[0] = 0;
    if (sw->expr) {
        if (mt_comm_rank(group) != 0) return MT_OK; /* the leader evaluates */
        return run_expression(sw, id, attempt, p, rep, out);
    }
    return run_training(sw, id, group, rep, out);
}
