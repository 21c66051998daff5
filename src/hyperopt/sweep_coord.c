/* Running a sweep: every rank loads the sweep file; rank 0 of the world coordinates and the
 * other ranks form worker groups (docs/hyperopt.md "Running sweeps").
 *
 * Why point-to-point messages rather than collectives over the groups: the groups finish their
 * trials at different times and the coordinator must answer whichever group reports first; a
 * collective would make every group wait for the slowest at each step (and a data-parallel
 * group is inside its own collectives while it trains). So the control plane is a small
 * request/answer protocol on the world communicator (mt_comm_send_host / mt_comm_recv_host,
 * tag MT__SW_TAG), and collectives are used only inside a group: the leader (group rank 0)
 * broadcasts each assignment to its members, and the training itself.
 *
 *   leader -> coordinator   READY (first), DONE (a trial ended: status, value, message; also
 *                           means "ready for the next"), REPORT (epoch, value; waits for the
 *                           VERDICT), BEAT (heartbeat while training)
 *   coordinator -> leader   TRIAL (id, attempt, point as JSON), VERDICT (continue / prune),
 *                           STOP (no more work)
 *
 * The coordinator hands out trials while fewer than max_concurrent run; a group that asks
 * while none can be given waits for a later answer. A group whose running trial sends nothing
 * for lease_grace_s is declared lost: its trial is requeued (on_failure: retry, at most
 * max_retries times) or recorded as failed, and the group gets no more work. With MPI a rank
 * that dies usually ends the whole job instead; restarting the command then continues from
 * the journal. With one process the coordinator runs the trials itself. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hyperopt_impl.h"
#include "mltrain/train.h"
#include "sweep_impl.h"

#define MT__SW_TAG 4242

enum { M_READY = 1, M_TRIAL, M_REPORT, M_VERDICT, M_BEAT, M_DONE, M_STOP };
enum { F_INTERRUPTED = 1, F_TIME_LIMIT = 2 };

typedef struct sw_msg {
    int32_t kind, group;
    int64_t trial, attempt, step, best_epoch, epochs;
    double value, seconds;
    int32_t status, flags;
} sw_msg;

void mt_sweep_options_init(mt_sweep_options *o)
{
    memset(o, 0, sizeof *o);
    o->device = "host";
    o->max_epochs = -1;
    o->max_trials = -1;
    o->array_task = -1;
    o->handle_signals = true;
}

/* ---------------------------------------------------------------- loading */

void mt__sw_trial_dir(const mt__sweep *sw, int64_t id, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/trial_%04lld", sw->dir, (long long)id);
}

static void space_hash(mt__sweep *sw)
{
    mt_sha256 h;
    mt_sha256_init(&h);
    for (int32_t i = 0; i < mt_hpo_space_count(sw->space); i++) {
        const mt_hpo_param *p = mt_hpo_space_param(sw->space, i);
        char buf[512];
        int n = snprintf(buf, sizeof buf, "%s|%s|%.17g|%.17g|%.17g|%d|%d|%d;", p->label,
                         mt_hpo_dist_name(p->dist), p->a, p->b, p->q, (int)p->n_options,
                         (int)p->parent, (int)p->parent_option);
        mt_sha256_update(&h, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
    }
    uint8_t d[32];
    mt_sha256_final(&h, d);
    for (int i = 0; i < 32; i++) snprintf(sw->space_hash + 2 * i, 3, "%02x", d[i]);
}

static char *default_dir(const char *path)
{
    size_t n = strlen(path);
    if (n > 5 && !strcmp(path + n - 5, ".yaml"))
        n -= 5;
    else if (n > 4 && !strcmp(path + n - 4, ".yml"))
        n -= 4;
    char *d = mt_malloc(n + 7);
    if (d) snprintf(d, n + 7, "%.*s.sweep", (int)n, path);
    return d;
}

mt_status mt__sw_open(mt__sweep *sw, const char *path, const mt_sweep_options *o)
{
    memset(sw, 0, sizeof *sw);
    sw->jfd = -1;
    sw->best_id = -1;
    if (o)
        sw->o = *o;
    else
        mt_sweep_options_init(&sw->o);
    sw->path = mt_strdup(path);
    if (!sw->path) return mt_err_set(MT_ERR_NOMEM, "sweep");
    mt_status st = mt_train_registry_new(&sw->reg);
    if (!st) st = mt_sweep_register_components(sw->reg);
    if (st) return st;
    mt_cfg_var vars[16];
    char *store = NULL;
    int32_t nv = mt_cfg_job_vars(vars, 16, path, 0, &store);
    mt_cfg_options co;
    mt_cfg_options_init(&co);
    co.n_params = sw->o.n_params;
    co.params = sw->o.params;
    co.n_vars = nv;
    co.vars = vars;
    co.keep_unknown_vars = true;
    st = mt_cfg_load_file(&sw->doc, path, &co);
    mt_cfg_vars_free(store);
    if (st) return st;
    sw->root = mt_cfg_doc_root(sw->doc);
    /* An expression objective never builds the Train object: it only places the parameters,
     * so it is not held to the Train schema (a dummy `!obj:Train {}` is fine). */
    const mt_cfg_node *obj = sw->root && sw->root->kind == MT_CFG_OBJ
                                 ? mt_cfg_get(sw->root, "objective")
                                 : NULL;
    bool expr = obj && obj->kind == MT_CFG_MAP && mt_cfg_get(obj, "expression");
    if (!expr && (st = mt_sweep_validate(sw->reg, sw->root))) return st;
    if ((st = mt_sweep_config_read(&sw->cfg, sw->root))) return st;
    if ((st = mt_hpo_space_from_sweep(&sw->space, sw->root))) return st;
    if ((st = mt_hpo_sampler_new(&sw->sampler, sw->space, &sw->cfg.sampler))) return st;
    if ((st = mt_hpo_pruner_new(&sw->pruner, &sw->cfg.pruner))) return st;
    if ((st = mt_hpo_history_new(&sw->hist, sw->space))) return st;
    if (sw->cfg.objective.expression &&
        (st = mt__hpo_objective_new(&sw->expr, sw->space, sw->cfg.objective.expression))) {
        char msg[MT_ERR_MSG_MAX];
        snprintf(msg, sizeof msg, "%s", mt_last_error());
        return mt_cfg_error(st, mt_cfg_key_loc(obj, "expression"), "objective %s", msg);
    }
    sw->dir = sw->o.dir ? mt_strdup(sw->o.dir)
              : sw->cfg.storage.dir ? mt_strdup(sw->cfg.storage.dir)
                                    : default_dir(path);
    if (!sw->dir) return mt_err_set(MT_ERR_NOMEM, "sweep");
    size_t n = strlen(sw->dir) + strlen(sw->cfg.storage.journal) + 2;
    sw->journal_path = mt_malloc(n);
    if (!sw->journal_path) return mt_err_set(MT_ERR_NOMEM, "sweep");
    snprintf(sw->journal_path, n, "%s/%s", sw->dir, sw->cfg.storage.journal);
    sw->max_trials = sw->o.max_trials >= 0 ? sw->o.max_trials : sw->cfg.max_trials;
    int64_t grid = mt_hpo_sampler_grid_size(sw->sampler);
    if (grid >= 0 && (sw->max_trials < 0 || sw->max_trials > grid)) sw->max_trials = grid;
    if (sw->max_trials < 0) sw->max_trials = 100;
    space_hash(sw);
    sw->t0 = mt_now_seconds();
    return MT_OK;
}

void mt__sw_close(mt__sweep *sw)
{
    mt__sw_journal_close(sw);
    for (int64_t i = 0; i < sw->n_trials; i++) mt_free(sw->trials[i].message);
    mt_free(sw->trials);
    mt_hpo_expr_free(sw->expr);
    mt_hpo_history_free(sw->hist);
    mt_hpo_pruner_free(sw->pruner);
    mt_hpo_sampler_free(sw->sampler);
    mt_hpo_space_free(sw->space);
    mt_cfg_doc_free(sw->doc);
    mt_cfg_registry_free(sw->reg);
    mt_free(sw->dir);
    mt_free(sw->journal_path);
    mt_free(sw->path);
    memset(sw, 0, sizeof *sw);
    sw->jfd = -1;
}

mt_status mt__sw_suggest(mt__sweep *sw, int64_t id, mt_hpo_point *p)
{
    const mt_cfg_node *pts = sw->cfg.points_to_evaluate;
    if (pts && id < pts->n) {
        mt_status st = mt_hpo_sample_prior(sw->space, sw->cfg.sampler.seed, id, p);
        if (!st) st = mt_hpo_point_from_cfg(sw->space, pts->items[id], MT_HPO_KEYS_USER, p);
        return st;
    }
    return mt_hpo_sampler_suggest(sw->sampler, sw->hist, id, p);
}

/* ---------------------------------------------------------------- signals */

static volatile sig_atomic_t g_sweep_signal;

static void on_signal(int sig) { g_sweep_signal = sig; }

typedef struct saved_sigs {
    bool on;
    struct sigaction term, intr;
} saved_sigs;

static void sigs_install(saved_sigs *s, bool on)
{
    g_sweep_signal = 0;
    s->on = on;
    if (!on) return;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, &s->term);
    sigaction(SIGINT, &sa, &s->intr);
}

static void sigs_restore(saved_sigs *s)
{
    if (!s->on) return;
    sigaction(SIGTERM, &s->term, NULL);
    sigaction(SIGINT, &s->intr, NULL);
}

/* ---------------------------------------------------------------- the live table */

static void table_row(mt__sweep *sw, int64_t id, const char *status, int64_t epoch, double value,
                      const char *extra)
{
    if (!sw->o.table) return;
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    char v[40] = "", b[40] = "", e[24] = "";
    if (isfinite(value)) snprintf(v, sizeof v, "%.6g", value);
    if (sw->best_id >= 0) snprintf(b, sizeof b, "%.6g (#%lld)", sw->trials[sw->best_id].value,
                                   (long long)sw->best_id);
    if (epoch > 0) snprintf(e, sizeof e, "%lld", (long long)epoch);
    mt_strbuf_appendf(&sb, "%6lld  %-8s %5s  %12s  %-20s ", (long long)id, status, e, v, b);
    if (extra) {
        mt_strbuf_append(&sb, extra);
    } else {
        const mt_hpo_trial *t = mt_hpo_history_find(sw->hist, id);
        if (t) mt_hpo_point_describe(sw->space, &t->point, &sb);
    }
    if (!mt_strbuf_status(&sb)) sw->o.table(sb.data, false, sw->o.table_user);
    mt_strbuf_deinit(&sb);
}

static void table_header(mt__sweep *sw)
{
    if (!sw->o.table) return;
    char line[160];
    snprintf(line, sizeof line, "%6s  %-8s %5s  %12s  %-20s %s", "trial", "status", "epoch",
             sw->cfg.objective.channel ? sw->cfg.objective.channel : "objective", "best",
             "parameters / message");
    sw->o.table(line, true, sw->o.table_user);
}

/* ---------------------------------------------------------------- coordinator state */

typedef struct group_state {
    int32_t leader, size;
    int32_t state; /* 0 busy or not yet heard from, 1 waiting for work, 2 stopped, 3 lost */
    int64_t trial; /* running trial, -1 */
} group_state;

typedef struct coord {
    mt__sweep *sw;
    int32_t n_running;
    int64_t queue_cursor; /* lowest id that may be QUEUED */
    bool stopping;        /* a budget or early stop ended the creation of trials */
} coord;

static bool budget_left(coord *c)
{
    mt__sweep *sw = c->sw;
    if (sw->n_trials >= sw->max_trials) return false;
    double el = sw->prior_seconds + (mt_now_seconds() - sw->t0);
    if (sw->cfg.time_budget_s > 0 && el >= sw->cfg.time_budget_s) {
        if (!c->stopping) mt_log(MT_LOG_INFO, "sweep: time budget of %g s spent", sw->cfg.time_budget_s);
        c->stopping = true;
        return false;
    }
    if (sw->cfg.early_stop.no_progress_trials > 0 &&
        sw->since_improvement >= sw->cfg.early_stop.no_progress_trials && sw->best_id >= 0) {
        if (!c->stopping)
            mt_log(MT_LOG_INFO, "sweep: no improvement in %lld trials: early stop",
                   (long long)sw->since_improvement);
        c->stopping = true;
        return false;
    }
    if (sw->cfg.early_stop.has_loss_threshold && sw->best_id >= 0 &&
        sw->trials[sw->best_id].loss <= sw->cfg.early_stop.loss_threshold) {
        if (!c->stopping) mt_log(MT_LOG_INFO, "sweep: loss threshold reached: early stop");
        c->stopping = true;
        return false;
    }
    return true;
}

static mt_status journal_point(mt__sweep *sw, int64_t id, const mt_hpo_point *p)
{
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    mt_strbuf_appendf(&sb, "{\"event\":\"trial_created\",\"trial\":%lld,\"point\":", (long long)id);
    mt_status st = mt_hpo_point_to_json(sw->space, p, &sb);
    mt_strbuf_append(&sb, "}");
    if (!st) st = mt_strbuf_status(&sb);
    if (!st) st = mt__sw_journal_append(sw, sb.data);
    mt_strbuf_deinit(&sb);
    return st;
}

static mt_status create_trial(coord *c, int64_t *out)
{
    mt__sweep *sw = c->sw;
    int64_t id = sw->n_trials;
    if (id >= sw->cap_trials) {
        int64_t cap = sw->cap_trials ? 2 * sw->cap_trials : 64;
        mt__sw_trial *t = mt_realloc(sw->trials, (size_t)cap * sizeof *t);
        if (!t) return mt_err_set(MT_ERR_NOMEM, "sweep: trials");
        memset(t + sw->cap_trials, 0, (size_t)(cap - sw->cap_trials) * sizeof *t);
        sw->trials = t;
        sw->cap_trials = cap;
    }
    mt_hpo_point p = {0};
    mt_status st = mt_hpo_point_init(&p, sw->space);
    if (!st) st = mt__sw_suggest(sw, id, &p);
    if (!st) st = mt_hpo_history_add(sw->hist, id, &p);
    if (!st) st = journal_point(sw, id, &p);
    if (!st && !sw->expr) st = mt__sw_write_resolved(sw, id, &p);
    mt_hpo_point_clear(&p);
    if (st) return mt_err_prefix(st, "sweep: trial %lld: ", (long long)id);
    mt__sw_trial *t = &sw->trials[id];
    memset(t, 0, sizeof *t);
    t->state = MT__SW_QUEUED;
    t->value = t->loss = NAN;
    t->group = -1;
    sw->n_trials = id + 1;
    *out = id;
    return MT_OK;
}

/* The next trial to run: >= 0 an id, -1 none now (wait), -2 none will come (stop). */
static mt_status pick_next(coord *c, int64_t *out)
{
    mt__sweep *sw = c->sw;
    if (g_sweep_signal) {
        *out = -2;
        return MT_OK;
    }
    if (c->n_running >= sw->cfg.max_concurrent) {
        *out = -1;
        return MT_OK;
    }
    for (int64_t i = c->queue_cursor; i < sw->n_trials; i++) {
        if (sw->trials[i].state == MT__SW_QUEUED) {
            *out = i;
            return MT_OK;
        }
        if (i == c->queue_cursor && sw->trials[i].state == MT__SW_DONE) c->queue_cursor = i + 1;
    }
    if (budget_left(c)) return create_trial(c, out);
    *out = c->n_running > 0 ? -1 : -2;
    return MT_OK;
}

static mt_status start_trial(coord *c, int64_t id, int32_t group)
{
    mt__sweep *sw = c->sw;
    mt__sw_trial *t = &sw->trials[id];
    t->attempts++;
    t->state = MT__SW_RUNNING;
    t->group = group;
    t->last_seen = mt_now_seconds();
    c->n_running++;
    char rec[160];
    snprintf(rec, sizeof rec,
             "{\"event\":\"trial_started\",\"trial\":%lld,\"attempt\":%d,\"group\":%d}",
             (long long)id, (int)t->attempts, (int)group);
    table_row(sw, id, t->attempts > 1 ? "rerun" : "start", 0, NAN, NULL);
    const mt_hpo_trial *ht = mt_hpo_history_find(sw->hist, id);
    if (ht) mt__sw_tb_trial_start(sw, id, &ht->point);
    return mt__sw_journal_append(sw, rec);
}

/* A report of a running trial: journal, history, the pruner's verdict. */
static void coord_report(coord *c, int64_t id, int64_t step, double value, bool *prune)
{
    mt__sweep *sw = c->sw;
    *prune = false;
    if (id < 0 || id >= sw->n_trials || sw->trials[id].state != MT__SW_RUNNING) return;
    mt__sw_trial *t = &sw->trials[id];
    t->last_seen = mt_now_seconds();
    if (step < 1) return;
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    mt_strbuf_appendf(&sb, "{\"event\":\"report\",\"trial\":%lld,\"step\":%lld,\"value\":",
                      (long long)id, (long long)step);
    mt__sw_json_num(&sb, value);
    mt_strbuf_append(&sb, "}");
    mt_status st = mt_strbuf_status(&sb);
    if (!st) st = mt__sw_journal_append(sw, sb.data);
    mt_strbuf_deinit(&sb);
    if (step >= t->last_step) {
        double loss = isnan(value) ? NAN : mt_sweep_objective_loss(&sw->cfg, value);
        if (!st) st = mt_hpo_history_report(sw->hist, id, step, loss);
        t->last_step = step;
        t->last_value = value;
        if (!st) st = mt_hpo_pruner_decide(sw->pruner, sw->hist, id, prune);
    }
    if (st) {
        mt_log(MT_LOG_WARN, "sweep: trial %lld, epoch %lld: %s", (long long)id, (long long)step,
               mt_last_error());
        mt_err_clear();
    }
    table_row(sw, id, *prune ? "prune" : "running", step, value, "");
}

static mt_status write_trial_result(mt__sweep *sw, int64_t id)
{
    const mt_hpo_trial *ht = mt_hpo_history_find(sw->hist, id);
    const mt__sw_trial *t = &sw->trials[id];
    if (!ht) return MT_OK;
    double *vals = mt_calloc((size_t)ht->n_reports + 1, sizeof *vals);
    if (!vals) return mt_err_set(MT_ERR_NOMEM, "sweep: result");
    for (int32_t i = 0; i < ht->n_reports; i++)
        vals[i] = sw->cfg.objective.maximize ? -ht->values[i] : ht->values[i];
    mt_status st = mt__sw_write_result(sw, id, &ht->point, mt_hpo_status_name(t->status), t->value,
                                       t->loss, t->best_epoch, t->epochs, t->seconds, t->message,
                                       ht->n_reports, ht->steps, vals);
    mt_free(vals);
    return st;
}

/* A trial ended (DONE, or run here). Interrupted trials stay unfinished (rerun next time). */
static mt_status coord_finish(coord *c, int64_t id, mt_hpo_status status, bool interrupted,
                              double value, int64_t best_epoch, int64_t epochs, double seconds,
                              const char *message)
{
    mt__sweep *sw = c->sw;
    if (id < 0 || id >= sw->n_trials || sw->trials[id].state != MT__SW_RUNNING) return MT_OK;
    mt__sw_trial *t = &sw->trials[id];
    c->n_running--;
    t->group = -1;
    if (interrupted) {
        t->state = MT__SW_QUEUED;
        table_row(sw, id, "stopped", epochs, NAN, "interrupted: runs again when the sweep resumes");
        return MT_OK;
    }
    mt_status st = mt__sw_record_finish(sw, id, status, value, best_epoch, epochs, seconds, message);
    if (st) return st;
    const mt_hpo_trial *ht = mt_hpo_history_find(sw->hist, id);
    if (ht) mt__sw_tb_trial_end(sw, id, &ht->point, t->status, t->value, epochs, seconds);
    sw->run_here++;
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    mt_strbuf_appendf(&sb, "{\"event\":\"trial_finished\",\"trial\":%lld,\"status\":\"%s\",\"value\":",
                      (long long)id, mt_hpo_status_name(t->status));
    mt__sw_json_num(&sb, t->value);
    mt_strbuf_append(&sb, ",\"loss\":");
    mt__sw_json_num(&sb, t->loss);
    mt_strbuf_appendf(&sb, ",\"best_epoch\":%lld,\"epochs\":%lld,\"seconds\":", (long long)best_epoch,
                      (long long)epochs);
    mt__sw_json_num(&sb, seconds);
    mt_strbuf_append(&sb, ",\"message\":");
    mt__sw_json_str(&sb, t->message ? t->message : "");
    mt_strbuf_append(&sb, "}");
    st = mt_strbuf_status(&sb);
    if (!st) st = mt__sw_journal_append(sw, sb.data);
    mt_strbuf_deinit(&sb);
    /* summary.csv is rebuilt from the whole state: at most once a second while trials
     * finish (and always at the end), so its cost does not grow with every trial */
    double now = mt_now_seconds();
    if (!st && now - sw->summary_time >= 1.0) {
        st = mt__sw_write_summary(sw);
        sw->summary_time = now;
    }
    if (!st && !sw->expr) st = write_trial_result(sw, id);
    table_row(sw, id, mt_hpo_status_name(t->status), epochs, t->value,
              t->message && t->status == MT_HPO_FAILED ? t->message : NULL);
    return st;
}

/* ---------------------------------------------------------------- one process */

static void local_report(void *user, int64_t trial, int64_t epoch, double value, bool *prune)
{
    coord_report(user, trial, epoch, value, prune);
}

static mt_status run_alone(coord *c)
{
    mt__sweep *sw = c->sw;
    mt__sw_reporter rep = {local_report, NULL, c};
    for (;;) {
        int64_t id;
        double t_busy = mt_now_seconds();
        mt_status st = pick_next(c, &id);
        if (st) return st;
        if (id < 0) break;
        if ((st = start_trial(c, id, 0))) return st;
        const mt_hpo_trial *ht = mt_hpo_history_find(sw->hist, id);
        mt_hpo_point p = {0};
        st = mt_hpo_point_init(&p, sw->space);
        if (!st) st = mt_hpo_point_copy(&p, &ht->point);
        mt__sw_outcome oc;
        memset(&oc, 0, sizeof oc);
        sw->busy_s += mt_now_seconds() - t_busy;
        if (!st) st = mt__sw_run_trial(sw, id, sw->trials[id].attempts, &p, NULL, &rep, &oc);
        t_busy = mt_now_seconds();
        if (!st)
            st = coord_finish(c, id, oc.status, oc.interrupted, oc.value, oc.best_epoch, oc.epochs,
                              oc.seconds, oc.message);
        sw->busy_s += mt_now_seconds() - t_busy;
        mt__sw_outcome_clear(&oc);
        mt_hpo_point_clear(&p);
        if (st) return st;
    }
    return MT_OK;
}

/* ---------------------------------------------------------------- messages */

static mt_status send_msg(mt_comm *comm, int32_t dst, const sw_msg *m, const char *text)
{
    size_t tl = text ? strlen(text) : 0;
    char *buf = mt_malloc(sizeof *m + tl);
    if (!buf) return mt_err_set(MT_ERR_NOMEM, "sweep: message");
    memcpy(buf, m, sizeof *m);
    if (tl) memcpy(buf + sizeof *m, text, tl);
    mt_status st = mt_comm_send_host(comm, dst, MT__SW_TAG, buf, sizeof *m + tl);
    mt_free(buf);
    return st;
}

/* *m and *text (NULL when none; freed by the caller with mt_free(*raw)). */
static mt_status recv_msg(mt_comm *comm, int32_t src, double timeout, sw_msg *m, int32_t *from,
                          void **raw, const char **text)
{
    size_t n = 0;
    *raw = NULL;
    *text = NULL;
    mt_status st = mt_comm_recv_host(comm, src, MT__SW_TAG, timeout, raw, &n, from, NULL);
    if (st) return st;
    if (n < sizeof *m) {
        mt_free(*raw);
        *raw = NULL;
        return mt_err_set(MT_ERR_COMM, "sweep: a %zu-byte message is not a sweep message", n);
    }
    memcpy(m, *raw, sizeof *m);
    *text = n > sizeof *m ? (const char *)*raw + sizeof *m : NULL;
    return MT_OK;
}

/* ---------------------------------------------------------------- the coordinator of groups */

static mt_status assign(coord *c, mt_comm *world, group_state *g, int32_t gi)
{
    mt__sweep *sw = c->sw;
    int64_t id;
    mt_status st = pick_next(c, &id);
    if (st) return st;
    sw_msg m;
    memset(&m, 0, sizeof m);
    if (id == -1) {
        g->state = 1; /* waits */
        return MT_OK;
    }
    if (id == -2) {
        m.kind = M_STOP;
        g->state = 2;
        return send_msg(world, g->leader, &m, NULL);
    }
    if ((st = start_trial(c, id, gi))) return st;
    g->state = 0;
    g->trial = id;
    m.kind = M_TRIAL;
    m.group = gi;
    m.trial = id;
    m.attempt = sw->trials[id].attempts;
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    st = mt_hpo_point_to_json(sw->space, &mt_hpo_history_find(sw->hist, id)->point, &sb);
    if (!st) st = mt_strbuf_status(&sb);
    if (!st) st = send_msg(world, g->leader, &m, sb.data);
    mt_strbuf_deinit(&sb);
    return st;
}

static mt_status check_leases(coord *c, group_state *gs, int32_t ng, int32_t *lost)
{
    mt__sweep *sw = c->sw;
    double now = mt_now_seconds(), grace = sw->cfg.distributed.lease_grace_s;
    for (int32_t g = 0; g < ng; g++) {
        if (gs[g].state != 0 || gs[g].trial < 0) continue;
        mt__sw_trial *t = &sw->trials[gs[g].trial];
        if (t->state != MT__SW_RUNNING || now - t->last_seen <= grace) continue;
        int64_t id = gs[g].trial;
        char why[256];
        snprintf(why, sizeof why,
                 "worker group %d (ranks %d-%d) sent nothing for %.0f s (lease_grace_s %g): lost",
                 (int)g, (int)gs[g].leader, (int)(gs[g].leader + gs[g].size - 1),
                 now - t->last_seen, grace);
        mt_log(MT_LOG_WARN, "sweep: trial %lld: %s", (long long)id, why);
        gs[g].state = 3;
        gs[g].trial = -1;
        (*lost)++;
        bool retry = sw->cfg.distributed.on_failure == MT_SWEEP_RETRY &&
                     t->attempts <= sw->cfg.distributed.max_retries;
        mt_status st;
        if (retry) {
            c->n_running--;
            t->state = MT__SW_QUEUED;
            t->group = -1;
            if (id < c->queue_cursor) c->queue_cursor = id;
            mt_strbuf sb;
            mt_strbuf_init(&sb);
            mt_strbuf_appendf(&sb, "{\"event\":\"trial_requeued\",\"trial\":%lld,\"reason\":",
                              (long long)id);
            mt__sw_json_str(&sb, why);
            mt_strbuf_append(&sb, "}");
            st = mt_strbuf_status(&sb);
            if (!st) st = mt__sw_journal_append(sw, sb.data);
            mt_strbuf_deinit(&sb);
            table_row(sw, id, "requeued", 0, NAN, why);
        } else {
            st = coord_finish(c, id, MT_HPO_FAILED, false, NAN, 0, t->last_step,
                              now - t->last_seen, why);
        }
        if (st) return st;
    }
    return MT_OK;
}

static mt_status run_coordinator(coord *c, mt_comm *world, int32_t rpt, int32_t *lost_out)
{
    mt__sweep *sw = c->sw;
    int32_t workers = mt_comm_size(world) - 1;
    int32_t ng = (workers + rpt - 1) / rpt;
    group_state *gs = mt_calloc((size_t)ng, sizeof *gs);
    if (!gs) return mt_err_set(MT_ERR_NOMEM, "sweep: groups");
    for (int32_t g = 0; g < ng; g++) {
        gs[g].leader = 1 + g * rpt;
        gs[g].size = g == ng - 1 ? workers - g * rpt : rpt;
        gs[g].trial = -1;
    }
    int32_t done = 0, lost = 0;
    mt_status st = MT_OK;
    while (!st && done + lost < ng) {
        sw_msg m;
        int32_t from = -1;
        void *raw = NULL;
        const char *text = NULL;
        st = recv_msg(world, -1, 0.25, &m, &from, &raw, &text);
        double t_busy = mt_now_seconds();
        if (st == MT_ERR_TIMEOUT) {
            mt_err_clear();
            st = MT_OK;
        } else if (!st) {
            int32_t g = m.group;
            if (g < 0 || g >= ng || gs[g].leader != from) {
                st = mt_err_set(MT_ERR_COMM, "sweep: a message from rank %d claims group %d",
                                (int)from, (int)g);
            } else if (gs[g].state == 3) {
                /* a lost group came back: its trial was handled already; give it nothing */
                if (m.kind == M_REPORT) {
                    sw_msg v = {.kind = M_VERDICT, .group = g, .trial = m.trial, .status = 1};
                    st = send_msg(world, from, &v, NULL);
                }
            } else if (m.kind == M_REPORT) {
                bool prune = false;
                coord_report(c, m.trial, m.step, m.value, &prune);
                sw_msg v = {.kind = M_VERDICT, .group = g, .trial = m.trial, .status = prune};
                st = send_msg(world, from, &v, NULL);
            } else if (m.kind == M_BEAT) {
                if (m.trial >= 0 && m.trial < sw->n_trials)
                    sw->trials[m.trial].last_seen = mt_now_seconds();
            } else if (m.kind == M_READY || m.kind == M_DONE) {
                if (m.kind == M_DONE)
                    st = coord_finish(c, m.trial, (mt_hpo_status)m.status,
                                      (m.flags & F_INTERRUPTED) != 0, m.value, m.best_epoch,
                                      m.epochs, m.seconds, text);
                gs[g].trial = -1;
                gs[g].state = 1;
            }
        }
        mt_free(raw);
        if (!st) st = check_leases(c, gs, ng, &lost);
        /* hand out work to every waiting group (a finished trial may free a slot) */
        for (int32_t g = 0; g < ng && !st; g++)
            if (gs[g].state == 1) {
                st = assign(c, world, &gs[g], g);
                if (!st && gs[g].state == 2) done++;
            }
        sw->busy_s += mt_now_seconds() - t_busy;
    }
    mt_free(gs);
    *lost_out = lost;
    return st;
}

/* ---------------------------------------------------------------- workers */

typedef struct remote {
    mt_comm *world;
    int32_t group;
    double answer_timeout;
} remote;

static void remote_report(void *user, int64_t trial, int64_t epoch, double value, bool *prune)
{
    remote *r = user;
    *prune = false;
    sw_msg m = {.kind = M_REPORT, .group = r->group, .trial = trial, .step = epoch, .value = value};
    mt_status st = send_msg(r->world, 0, &m, NULL);
    void *raw = NULL;
    const char *text = NULL;
    sw_msg v;
    if (!st) st = recv_msg(r->world, 0, r->answer_timeout, &v, NULL, &raw, &text);
    mt_free(raw);
    if (st) {
        mt_log(MT_LOG_WARN, "sweep: trial %lld: no verdict from the coordinator (%s); going on",
               (long long)trial, mt_last_error());
        mt_err_clear();
        return;
    }
    *prune = v.kind == M_VERDICT && v.status != 0;
}

static void remote_beat(void *user, int64_t trial)
{
    remote *r = user;
    sw_msg m = {.kind = M_BEAT, .group = r->group, .trial = trial};
    if (send_msg(r->world, 0, &m, NULL)) mt_err_clear();
}

/* The leader's assignment, shared with the group: header then the point text. */
static mt_status group_share(mt_comm *group, sw_msg *m, char **text)
{
    if (mt_comm_size(group) < 2) return MT_OK;
    mt_status st = mt_comm_broadcast_host(group, m, sizeof *m, 0);
    int64_t len = *text ? (int64_t)strlen(*text) : 0;
    if (!st) st = mt_comm_broadcast_host(group, &len, sizeof len, 0);
    if (st) return st;
    if (mt_comm_rank(group) != 0) {
        mt_free(*text);
        *text = mt_calloc((size_t)len + 1, 1);
        if (!*text) return mt_err_set(MT_ERR_NOMEM, "sweep: assignment");
    }
    return len ? mt_comm_broadcast_host(group, *text, (size_t)len, 0) : MT_OK;
}

static mt_status parse_point(mt__sweep *sw, const char *text, mt_hpo_point *p)
{
    mt_cfg_options co;
    mt_cfg_options_init(&co);
    co.no_environment = true;
    co.keep_unknown_vars = true;
    mt_cfg_doc *d = NULL;
    mt_status st = mt_cfg_load_string(&d, text ? text : "{}", text ? strlen(text) : 2, "point", &co);
    if (!st) st = mt_hpo_point_from_cfg(sw->space, mt_cfg_doc_root(d), MT_HPO_KEYS_JOURNAL, p);
    mt_cfg_doc_free(d);
    return st;
}

static mt_status run_worker(mt__sweep *sw, mt_comm *world, mt_comm *group, int32_t gi)
{
    bool leader = mt_comm_rank(group) == 0;
    mt_comm_options co;
    mt_comm_options_init(&co); /* the group's deadline while it trains (MLTRAIN_COMM_TIMEOUT) */
    double tmo = co.timeout_s;
    double grace = sw->cfg.distributed.lease_grace_s;
    remote r = {world, gi, grace > 60 ? 2 * grace : 120};
    mt__sw_reporter rep = {remote_report, remote_beat, &r};
    sw_msg m = {.kind = M_READY, .group = gi, .trial = -1};
    char *done_text = NULL;
    mt_status st = MT_OK;
    for (;;) {
        char *text = NULL;
        if (leader) {
            st = send_msg(world, 0, &m, done_text);
            mt_free(done_text);
            done_text = NULL;
            void *raw = NULL;
            const char *t = NULL;
            if (!st) st = recv_msg(world, 0, -1, &m, NULL, &raw, &t);
            if (!st && t) text = mt_strdup(t);
            mt_free(raw);
        }
        if (st) break;
        /* the members wait here for as long as the coordinator has no work for the group */
        if (mt_comm_size(group) > 1) {
            mt_comm_set_timeout(group, 0);
            st = group_share(group, &m, &text);
            mt_comm_set_timeout(group, tmo);
        }
        if (st || m.kind != M_TRIAL) {
            mt_free(text);
            break;
        }
        int64_t id = m.trial;
        mt_hpo_point p = {0};
        mt__sw_outcome oc;
        memset(&oc, 0, sizeof oc);
        st = mt_hpo_point_init(&p, sw->space);
        if (!st) st = parse_point(sw, text, &p);
        mt_free(text);
        if (!st) st = mt__sw_run_trial(sw, id, (int32_t)m.attempt, &p, group, &rep, &oc);
        mt_hpo_point_clear(&p);
        if (st) {
            mt__sw_outcome_clear(&oc);
            break;
        }
        memset(&m, 0, sizeof m);
        m.kind = M_DONE;
        m.group = gi;
        m.trial = id;
        m.status = oc.status;
        m.flags = (oc.interrupted ? F_INTERRUPTED : 0) | (oc.time_limited ? F_TIME_LIMIT : 0);
        m.value = oc.value;
        m.best_epoch = oc.best_epoch;
        m.epochs = oc.epochs;
        m.seconds = oc.seconds;
        if (leader && oc.message[0]) done_text = mt_strdup(oc.message);
        mt__sw_outcome_clear(&oc);
    }
    mt_free(done_text);
    return st;
}

/* ---------------------------------------------------------------- job arrays */

static mt_status run_array_task(mt__sweep *sw, mt_comm *world, mt_sweep_result *res)
{
    int64_t id = sw->o.array_task;
    if (sw->cfg.sampler.algorithm == MT_HPO_ALGO_TPE)
        return mt_err_set(MT_ERR_INVALID, "--array-task: TPE needs the history of earlier trials; "
                                          "job arrays work with random and grid search (run TPE "
                                          "as one mpirun allocation)");
    if (id >= sw->max_trials)
        return mt_err_set(MT_ERR_RANGE, "--array-task %lld: the sweep has %lld trials (0..%lld)",
                          (long long)id, (long long)sw->max_trials, (long long)sw->max_trials - 1);
    bool main = mt_comm_rank(world) == 0;
    mt_hpo_point p = {0};
    mt__sw_outcome oc;
    memset(&oc, 0, sizeof oc);
    mt_status st = mt_hpo_point_init(&p, sw->space);
    if (!st) st = mt__sw_suggest(sw, id, &p);
    if (!st && main && !sw->expr) st = mt__sw_write_resolved(sw, id, &p);
    if (!st && main) {
        mt__sw_write_space_info(sw);
        mt__sw_tb_trial_start(sw, id, &p);
    }
    if (!st && world && mt_comm_size(world) > 1) st = mt_comm_barrier(world);
    if (!st) st = mt__sw_run_trial(sw, id, 1, &p, world, NULL, &oc);
    if (!st && main && !oc.interrupted) {
        double loss = isfinite(oc.value) ? mt_sweep_objective_loss(&sw->cfg, oc.value) : NAN;
        st = mt__sw_write_result(sw, id, &p, mt_hpo_status_name(oc.status), oc.value, loss,
                                 oc.best_epoch, oc.epochs, oc.seconds, oc.message, oc.n_reports,
                                 oc.steps, oc.values);
        mt__sw_tb_trial_end(sw, id, &p, oc.status, oc.value, oc.epochs, oc.seconds);
        res->trials = res->run_here = 1;
        res->ok = oc.status == MT_HPO_OK;
        res->failed = oc.status == MT_HPO_FAILED;
        res->best_id = oc.status == MT_HPO_OK ? id : -1;
        res->best_value = oc.value;
        table_row(sw, id, mt_hpo_status_name(oc.status), oc.epochs, oc.value,
                  oc.message[0] ? oc.message : NULL);
    }
    res->interrupted = oc.interrupted ? (g_sweep_signal ? g_sweep_signal : SIGTERM) : 0;
    mt__sw_outcome_clear(&oc);
    mt_hpo_point_clear(&p);
    return st;
}

/* ---------------------------------------------------------------- entry points */

static void fill_result(const mt__sweep *sw, mt_sweep_result *res)
{
    res->trials = sw->n_finished;
    for (int64_t i = 0; i < sw->n_trials; i++) {
        const mt__sw_trial *t = &sw->trials[i];
        if (t->state != MT__SW_DONE) continue;
        res->ok += t->status == MT_HPO_OK;
        res->failed += t->status == MT_HPO_FAILED;
        res->pruned += t->status == MT_HPO_PRUNED;
    }
    res->run_here = sw->run_here;
    res->resumed_trials = sw->resumed_trials;
    res->best_id = sw->best_id;
    res->best_value = sw->best_id >= 0 ? sw->trials[sw->best_id].value : NAN;
    res->coordinator_busy_s = sw->busy_s;
}

static mt_status coordinate(mt__sweep *sw, mt_comm *world, int32_t rpt, mt_sweep_result *res)
{
    mt_status st = mt_mkdirs(sw->dir, 0755);
    if (!st) st = mt__sw_journal_open(sw);
    if (st) return st;
    mt__sw_write_space_info(sw);
    for (int64_t i = 0; i < sw->n_trials; i++)
        if (sw->trials[i].state != MT__SW_DONE) sw->resumed_trials++;
    if (sw->n_trials > 0)
        mt_log(MT_LOG_INFO, "sweep: continuing %s: %lld trials finished, %lld to run again",
               sw->journal_path, (long long)sw->n_finished, (long long)sw->resumed_trials);
    table_header(sw);
    coord c = {sw, 0, 0, false};
    int32_t lost = 0;
    if (!world || mt_comm_size(world) < 2)
        st = run_alone(&c);
    else
        st = run_coordinator(&c, world, rpt, &lost);
    res->lost_groups = lost;
    if (!st && !g_sweep_signal && c.n_running == 0) {
        char rec[96];
        snprintf(rec, sizeof rec, "{\"event\":\"sweep_finished\",\"trials\":%lld}",
                 (long long)sw->n_finished);
        st = mt__sw_journal_append(sw, rec);
    }
    if (!st) st = mt__sw_write_summary(sw);
    fill_result(sw, res);
    return st;
}

mt_status mt_sweep_run(const char *path, const mt_sweep_options *o, mt_sweep_result *res)
{
    mt_sweep_result r;
    memset(&r, 0, sizeof r);
    r.best_id = -1;
    r.best_value = NAN;
    mt__sweep *sw = mt_calloc(1, sizeof *sw);
    if (!sw) return mt_err_set(MT_ERR_NOMEM, "sweep");
    double t0 = mt_now_seconds();
    mt_status st = mt__sw_open(sw, path, o);
    saved_sigs ss;
    sigs_install(&ss, sw->o.handle_signals);
    sw->signal_flag = &g_sweep_signal;
    mt_comm *world = sw->o.comm, *group = NULL;
    int32_t size = mt_comm_size(world), rank = mt_comm_rank(world);
    int32_t rpt = sw->cfg.distributed.ranks_per_trial;
    if (!st) snprintf(r.dir, sizeof r.dir, "%s", sw->dir);
    if (!st && sw->o.array_task >= 0) {
        r.is_coordinator = rank == 0;
        st = run_array_task(sw, world, &r);
    } else if (!st && size > 1) {
        if (rpt < 1) rpt = 1;
        if (rpt > size - 1) {
            if (rank == 0)
                mt_log(MT_LOG_WARN, "sweep: ranks_per_trial %d but only %d worker ranks: one "
                                    "group of %d", (int)rpt, (int)(size - 1), (int)(size - 1));
            rpt = size - 1;
        }
        int32_t ng = (size - 1 + rpt - 1) / rpt;
        if (rank == 0) {
            if ((size - 1) % rpt)
                mt_log(MT_LOG_INFO, "sweep: %d worker ranks in groups of %d: the last group has "
                                    "%d", (int)(size - 1), (int)rpt, (int)((size - 1) % rpt));
            if (sw->cfg.max_concurrent < ng)
                mt_log(MT_LOG_INFO, "sweep: max_concurrent %d: %d of the %d worker groups stay "
                                    "idle", (int)sw->cfg.max_concurrent,
                       (int)(ng - sw->cfg.max_concurrent), (int)ng);
        }
        int32_t gi = rank == 0 ? -1 : (rank - 1) / rpt;
        st = mt_comm_split(&group, world, gi, rank);
        if (!st && rank == 0) {
            r.is_coordinator = true;
            st = coordinate(sw, world, rpt, &r);
            if (st) {
                /* the workers wait for a STOP that would never come */
                char msg[MT_ERR_MSG_MAX];
                snprintf(msg, sizeof msg, "%s", mt_last_error());
                mt_log(MT_LOG_ERROR, "sweep coordinator: %s", msg);
            }
        } else if (!st) {
            st = run_worker(sw, world, group, gi);
        }
        mt_comm_free(group);
    } else if (!st) {
        r.is_coordinator = true;
        st = coordinate(sw, NULL, 1, &r);
    }
    if (!r.interrupted) r.interrupted = g_sweep_signal;
    sigs_restore(&ss);
    r.seconds = mt_now_seconds() - t0;
    mt__sw_close(sw);
    mt_free(sw);
    if (res) *res = r;
    return st;
}

mt_status mt_sweep_dry_run(const char *path, const mt_sweep_options *o, mt_strbuf *out)
{
    mt__sweep *sw = mt_calloc(1, sizeof *sw);
    if (!sw) return mt_err_set(MT_ERR_NOMEM, "sweep");
    mt_status st = mt__sw_open(sw, path, o);
    if (!st) st = mt_sweep_print(&sw->cfg, sw->space, out);
    if (!st) {
        struct stat sb;
        bool j = stat(sw->journal_path, &sb) == 0;
        mt_strbuf_appendf(out, "sweep directory: %s (%s)\n", sw->dir,
                          j ? "has a journal: running it continues the sweep" : "new");
        if (sw->expr)
            mt_strbuf_appendf(out, "objective expression%s: no training\n",
                              mt__hpo_expr_uses_extra(sw->expr, 0) ? " of the parameters and epoch"
                                                                   : "");
    }
    mt__sw_close(sw);
    mt_free(sw);
    return st;
}

mt_status mt_sweep_sbatch(const char *path, const mt_sweep_options *o, const char *mltrain_cmd,
                          mt_strbuf *out)
{
    mt__sweep *sw = mt_calloc(1, sizeof *sw);
    if (!sw) return mt_err_set(MT_ERR_NOMEM, "sweep");
    mt_status st = mt__sw_open(sw, path, o);
    if (!st && sw->cfg.sampler.algorithm == MT_HPO_ALGO_TPE)
        st = mt_err_set(MT_ERR_INVALID, "%s: TPE needs the history of earlier trials, so it "
                                        "cannot run as a job array: use algorithm random or grid, "
                                        "or jobs/sweep_preemptible.sbatch (one allocation)", path);
    if (!st) {
        const char *cmd = mltrain_cmd ? mltrain_cmd : "mltrain";
        int32_t conc = sw->cfg.max_concurrent > 0 ? sw->cfg.max_concurrent : 1;
        int32_t rpt = sw->cfg.distributed.ranks_per_trial;
        mt_strbuf_appendf(
            out,
            "#!/bin/bash\n"
            "# Job-array sweep '%s' (%s search): array task i runs trial i of %s\n"
            "# deterministically, without a coordinator or journal; each trial folder gets its\n"
            "# result.json, and `mltrain sweep-report %s` collects them.\n"
            "# 120 s before the time limit SIGUSR1 reaches this script, which asks the trial to\n"
            "# checkpoint (SIGTERM, mltrain exits with code 3) and requeues the task; the\n"
            "# requeued task resumes the trial from its checkpoint.\n"
            "#SBATCH --job-name=%s\n"
            "#SBATCH --array=0-%lld%%%d\n"
            "#SBATCH --ntasks=%d\n"
            "#SBATCH --cpus-per-task=4\n"
            "#SBATCH --time=01:00:00\n"
            "#SBATCH --output=%s/slurm_%%A_%%a.out\n"
            "#SBATCH --open-mode=append\n"
            "#SBATCH --signal=B:USR1@120\n"
            "#SBATCH --requeue\n"
            "set -uo pipefail\n"
            "mkdir -p %s\n"
            "export MLTRAIN_NUM_THREADS=${SLURM_CPUS_PER_TASK:-4}\n"
            "trap 'scancel --signal=TERM \"$SLURM_JOB_ID\"' USR1\n"
            "srun %s %s --array-task \"$SLURM_ARRAY_TASK_ID\" &\n"
            "step=$!\n"
            "while :; do wait $step; rc=$?; [ $rc -gt 128 ] && kill -0 $step 2>/dev/null "
            "&& continue; break; done\n"
            "if [ $rc -eq 3 ]; then scontrol requeue \"$SLURM_JOB_ID\"; exit 0; fi\n"
            "exit $rc\n",
            sw->cfg.name, mt_hpo_algorithm_name(sw->cfg.sampler.algorithm), path, sw->dir,
            sw->cfg.name, (long long)(sw->max_trials - 1), (int)conc, (int)(rpt > 0 ? rpt : 1),
            sw->dir, sw->dir, cmd, path);
        st = mt_strbuf_status(out);
    }
    mt__sw_close(sw);
    mt_free(sw);
    return st;
}
