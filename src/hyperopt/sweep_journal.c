/* The sweep journal and the files made from it. journal.jsonl is append-only JSON lines written
 * only by the coordinator, each record one write(2) followed by fsync (storage.fsync):
 *   {"event":"sweep", "name", "seed", "algorithm", "space": hash, "params": n, "time"}
 *   {"event":"restart", "time", "ranks"}           a later session continues
 *   {"event":"trial_created", "trial", "point": {label: value}, "time"}
 *   {"event":"trial_started", "trial", "attempt", "group", "time"}
 *   {"event":"report", "trial", "step", "value", "time"}
 *   {"event":"trial_requeued", "trial", "reason", "time"}   a lost worker group
 *   {"event":"trial_finished", "trial", "status", "value", "loss", "best_epoch", "epochs",
 *    "seconds", "message", "time"}                  at most once per trial
 *   {"event":"sweep_finished", "trials", "time"}
 * Replaying it rebuilds the history the sampler and the pruner see and the list of unfinished
 * trials. Lines are read with the config loader (a JSON line is a YAML flow mapping); '$' and
 * '%' inside strings are written as \u escapes so its template and variable stages leave
 * messages alone. A last line without its newline is the trace of a kill during a write: it is
 * dropped with a warning and cut off before appending; any other bad line is an error naming
 * FILE:LINE. summary.csv (one row per finished trial) is rewritten atomically after every
 * finished trial, and each trial folder gets a result.json. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hyperopt_impl.h"
#include "sweep_impl.h"

/* ---------------------------------------------------------------- JSON pieces */

void mt__sw_json_str(mt_strbuf *sb, const char *s)
{
    mt_strbuf_append(sb, "\"");
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        switch (*p) {
        case '"': mt_strbuf_append(sb, "\\\""); break;
        case '\\': mt_strbuf_append(sb, "\\\\"); break;
        case '\n': mt_strbuf_append(sb, "\\n"); break;
        case '\t': mt_strbuf_append(sb, "\\t"); break;
        case '\r': mt_strbuf_append(sb, "\\r"); break;
        case '$': mt_strbuf_append(sb, "\\u0024"); break;
        case '%': mt_strbuf_append(sb, "\\u0025"); break;
        default:
            if (*p < 0x20)
                mt_strbuf_appendf(sb, "\\u%04x", *p);
            else
                mt_strbuf_appendn(sb, (const char *)p, 1);
        }
    }
    mt_strbuf_append(sb, "\"");
}

void mt__sw_json_num(mt_strbuf *sb, double v)
{
    if (!isfinite(v)) {
        mt_strbuf_append(sb, "null");
        return;
    }
    char buf[40];
    mt_strbuf_append(sb, mt__hpo_fmt(v, buf));
}

static double wall_time(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---------------------------------------------------------------- appending */

mt_status mt__sw_journal_append(mt__sweep *sw, const char *record)
{
    if (sw->jfd < 0) return mt_err_set(MT_ERR_INTERNAL, "journal: not open");
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    size_t n = strlen(record);
    /* every record ends with the wall time */
    if (n > 0 && record[n - 1] == '}') {
        mt_strbuf_appendn(&sb, record, n - 1);
        mt_strbuf_appendf(&sb, ",\"time\":%.3f}\n", wall_time());
    } else {
        mt_strbuf_appendf(&sb, "%s\n", record);
    }
    mt_status st = mt_strbuf_status(&sb);
    if (st) {
        mt_strbuf_deinit(&sb);
        return st;
    }
    const char *p = sb.data;
    size_t left = sb.len;
    while (left > 0) {
        ssize_t w = write(sw->jfd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) {
            st = mt_err_errno(errno, "journal: writing %s", sw->journal_path);
            break;
        }
        p += w;
        left -= (size_t)w;
    }
    if (!st && sw->cfg.storage.fsync && fsync(sw->jfd) != 0 && errno != EINVAL)
        st = mt_err_errno(errno, "journal: fsync of %s", sw->journal_path);
    mt_strbuf_deinit(&sb);
    return st;
}

void mt__sw_journal_close(mt__sweep *sw)
{
    if (sw->jfd >= 0) close(sw->jfd);
    sw->jfd = -1;
}

/* ---------------------------------------------------------------- replay */

typedef struct replay {
    mt__sweep *sw;
    const char *file;
    int64_t line;
    double session_t0, last_t;
    bool have_header;
} replay;

static mt_status bad(const replay *r, const char *fmt, const char *what)
{
    return mt_err_set(MT_ERR_FORMAT, "%s:%lld: %s%s", r->file, (long long)r->line, fmt, what);
}

static mt_status grow_trials(mt__sweep *sw, int64_t n)
{
    if (n <= sw->cap_trials) return MT_OK;
    int64_t cap = sw->cap_trials ? sw->cap_trials * 2 : 64;
    while (cap < n) cap *= 2;
    mt__sw_trial *t = mt_realloc(sw->trials, (size_t)cap * sizeof *t);
    if (!t) return mt_err_set(MT_ERR_NOMEM, "sweep: trials");
    memset(t + sw->cap_trials, 0, (size_t)(cap - sw->cap_trials) * sizeof *t);
    sw->trials = t;
    sw->cap_trials = cap;
    return MT_OK;
}

static double num_or_nan(const mt_cfg_node *m, const char *key)
{
    const mt_cfg_node *v = mt_cfg_get(m, key);
    if (!v || (v->kind != MT_CFG_INT && v->kind != MT_CFG_FLOAT)) return NAN;
    return v->f;
}

static int64_t int_or(const mt_cfg_node *m, const char *key, int64_t dflt)
{
    const mt_cfg_node *v = mt_cfg_get(m, key);
    return v && v->kind == MT_CFG_INT ? v->i : dflt;
}

static mt_status status_of(const char *s, mt_hpo_status *out)
{
    for (int k = MT_HPO_OK; k < MT_HPO_STATUS_COUNT; k++)
        if (!strcmp(s, mt_hpo_status_name((mt_hpo_status)k))) {
            *out = (mt_hpo_status)k;
            return MT_OK;
        }
    return MT_ERR_INVALID;
}

/* Records a finished trial in the coordinator state (replay and live). */
static void note_best(mt__sweep *sw, int64_t id)
{
    const mt_hpo_trial *b = mt_hpo_history_best(sw->hist);
    int64_t old = sw->best_id;
    double old_loss = old >= 0 ? sw->trials[old].loss : INFINITY;
    sw->best_id = b ? b->id : -1;
    if (b && b->id == id && b->loss < old_loss - sw->cfg.early_stop.min_delta)
        sw->since_improvement = 0;
    else
        sw->since_improvement++;
}

mt_status mt__sw_record_finish(mt__sweep *sw, int64_t id, mt_hpo_status status, double value,
                               int64_t best_epoch, int64_t epochs, double seconds,
                               const char *message)
{
    mt__sw_trial *t = &sw->trials[id];
    double loss = isfinite(value) ? mt_sweep_objective_loss(&sw->cfg, value) : NAN;
    if (status == MT_HPO_OK && !isfinite(loss)) status = MT_HPO_FAILED;
    mt_status st = mt_hpo_history_finish(sw->hist, id, status, loss);
    if (st) return st;
    t->state = MT__SW_DONE;
    t->status = status;
    t->value = value;
    t->loss = loss;
    t->best_epoch = best_epoch;
    t->epochs = epochs;
    t->seconds = seconds;
    mt_free(t->message);
    t->message = message && *message ? mt_strdup(message) : NULL;
    sw->n_finished++;
    note_best(sw, id);
    return MT_OK;
}

static mt_status apply(replay *r, const mt_cfg_node *m)
{
    mt__sweep *sw = r->sw;
    const mt_cfg_node *ev = mt_cfg_get(m, "event");
    if (!ev || ev->kind != MT_CFG_STRING) return bad(r, "a record without \"event\"", "");
    const char *e = ev->str;
    double t = num_or_nan(m, "time");
    if (r->have_header && !strcmp(e, "restart")) {
        /* the previous session ran until its last record */
        if (isfinite(r->session_t0) && isfinite(r->last_t) && r->last_t > r->session_t0)
            sw->prior_seconds += r->last_t - r->session_t0;
        r->session_t0 = t;
        r->last_t = t;
        return MT_OK;
    }
    if (isfinite(t)) r->last_t = t;
    if (!r->have_header) {
        if (strcmp(e, "sweep")) return bad(r, "the first record must be the sweep header, got ", e);
        r->have_header = true;
        r->session_t0 = t;
        const mt_cfg_node *h = mt_cfg_get(m, "space");
        if (!h || h->kind != MT_CFG_STRING) return bad(r, "the header has no space hash", "");
        if (strcmp(h->str, sw->space_hash) != 0) {
            if (sw->cfg.storage.resume != MT_SWEEP_RESUME_FORCE)
                return mt_err_set(MT_ERR_FORMAT,
                                  "%s:%lld: this journal was written for another search space "
                                  "(the parameters or their ranges changed): continue anyway "
                                  "with storage: {resume: force}, or use another storage.dir",
                                  r->file, (long long)r->line);
            mt_log(MT_LOG_WARN, "%s: the search space changed; continuing (resume: force)",
                   r->file);
        }
        return MT_OK;
    }
    if (!strcmp(e, "sweep")) return bad(r, "a second sweep header", "");
    if (!strcmp(e, "sweep_finished")) return MT_OK;
    int64_t id = int_or(m, "trial", -1);
    if (id < 0) return bad(r, "a trial record without a trial id: ", e);
    if (!strcmp(e, "trial_created")) {
        if (id != sw->n_trials) {
            char what[64];
            snprintf(what, sizeof what, "%lld (expected %lld)", (long long)id,
                     (long long)sw->n_trials);
            return bad(r, "trial created out of order: ", what);
        }
        const mt_cfg_node *pt = mt_cfg_get(m, "point");
        if (!pt || pt->kind != MT_CFG_MAP) return bad(r, "trial_created without a point", "");
        mt_status st = grow_trials(sw, id + 1);
        if (st) return st;
        mt_hpo_point p = {0};
        st = mt_hpo_point_init(&p, sw->space);
        if (!st) st = mt_hpo_point_from_cfg(sw->space, pt, MT_HPO_KEYS_JOURNAL, &p);
        if (!st) st = mt_hpo_history_add(sw->hist, id, &p);
        mt_hpo_point_clear(&p);
        if (st) return mt_err_prefix(st, "%s:%lld: ", r->file, (long long)r->line);
        sw->trials[id].state = MT__SW_QUEUED;
        sw->trials[id].value = sw->trials[id].loss = NAN;
        sw->trials[id].group = -1;
        sw->n_trials = id + 1;
        return MT_OK;
    }
    if (id >= sw->n_trials) return bad(r, "a record for a trial that was never created: ", e);
    mt__sw_trial *tr = &sw->trials[id];
    if (!strcmp(e, "trial_started")) {
        tr->attempts++;
        return MT_OK;
    }
    if (!strcmp(e, "trial_requeued")) return MT_OK;
    if (!strcmp(e, "report")) {
        int64_t step = int_or(m, "step", -1);
        double v = num_or_nan(m, "value");
        if (step < 1) return bad(r, "a report without a step >= 1", "");
        if (step >= tr->last_step && tr->state != MT__SW_DONE) {
            double loss = isnan(v) ? NAN : mt_sweep_objective_loss(&sw->cfg, v);
            mt_status st = mt_hpo_history_report(sw->hist, id, step, loss);
            if (st) return mt_err_prefix(st, "%s:%lld: ", r->file, (long long)r->line);
            tr->last_step = step;
            tr->last_value = v;
        }
        return MT_OK;
    }
    if (!strcmp(e, "trial_finished")) {
        if (tr->state == MT__SW_DONE) {
            mt_log(MT_LOG_WARN, "%s:%lld: trial %lld finished twice; the first record counts",
                   r->file, (long long)r->line, (long long)id);
            return MT_OK;
        }
        const mt_cfg_node *s = mt_cfg_get(m, "status");
        mt_hpo_status hs;
        if (!s || s->kind != MT_CFG_STRING || status_of(s->str, &hs) != MT_OK)
            return bad(r, "trial_finished without a valid status", "");
        const mt_cfg_node *msg = mt_cfg_get(m, "message");
        mt_status st = mt__sw_record_finish(
            sw, id, hs, num_or_nan(m, "value"), int_or(m, "best_epoch", 0), int_or(m, "epochs", 0),
            num_or_nan(m, "seconds"), msg && msg->kind == MT_CFG_STRING ? msg->str : NULL);
        if (st) return mt_err_prefix(st, "%s:%lld: ", r->file, (long long)r->line);
        return MT_OK;
    }
    return bad(r, "unknown event ", e);
}

/* Replays text[0..len): *good_end = bytes of complete, valid records. */
static mt_status replay_text(replay *r, const char *text, size_t len, size_t *good_end)
{
    size_t pos = 0;
    *good_end = 0;
    mt_cfg_options co;
    mt_cfg_options_init(&co);
    co.no_environment = true;
    co.keep_unknown_vars = true;
    while (pos < len) {
        r->line++;
        const char *nl = memchr(text + pos, '\n', len - pos);
        if (!nl) {
            mt_log(MT_LOG_WARN, "%s:%lld: incomplete last record (%zu bytes, no newline) "
                                "dropped: the sweep was stopped while writing it",
                   r->file, (long long)r->line, len - pos);
            return MT_OK;
        }
        size_t n = (size_t)(nl - (text + pos));
        const char *s = text + pos;
        pos += n + 1;
        bool blank = true;
        for (size_t i = 0; i < n; i++) blank &= s[i] == ' ' || s[i] == '\t' || s[i] == '\r';
        if (blank) {
            *good_end = pos;
            continue;
        }
        mt_cfg_doc *d = NULL;
        mt_status st = mt_cfg_load_string(&d, s, n, r->file, &co);
        const mt_cfg_node *m = st ? NULL : mt_cfg_doc_root(d);
        if (!st && (!m || m->kind != MT_CFG_MAP || s[0] != '{')) st = MT_ERR_FORMAT;
        if (st) {
            char msg[MT_ERR_MSG_MAX];
            snprintf(msg, sizeof msg, "%s", st == MT_ERR_FORMAT && m ? "not a JSON object"
                                                                    : mt_last_error());
            mt_cfg_doc_free(d);
            return mt_err_set(MT_ERR_FORMAT, "%s:%lld: not a journal record (%s): %.60s%s", r->file,
                              (long long)r->line, msg, s, n > 60 ? "..." : "");
        }
        st = apply(r, m);
        mt_cfg_doc_free(d);
        if (st) return st;
        *good_end = pos;
    }
    return MT_OK;
}

static mt_status header_record(mt__sweep *sw)
{
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    mt_strbuf_append(&sb, "{\"event\":\"sweep\",\"name\":");
    mt__sw_json_str(&sb, sw->cfg.name);
    mt_strbuf_appendf(&sb, ",\"seed\":%llu,\"algorithm\":\"%s\",\"params\":%d,\"space\":\"%s\"",
                      (unsigned long long)sw->cfg.sampler.seed,
                      mt_hpo_algorithm_name(sw->cfg.sampler.algorithm),
                      (int)mt_hpo_space_count(sw->space), sw->space_hash);
    mt_strbuf_append(&sb, ",\"objective\":");
    mt__sw_json_str(&sb, sw->cfg.objective.channel ? sw->cfg.objective.channel
                                                   : sw->cfg.objective.expression);
    mt_strbuf_appendf(&sb, ",\"mode\":\"%s\",\"reduce\":\"%s\"}",
                      sw->cfg.objective.maximize ? "max" : "min",
                      sw->cfg.objective.reduce_last ? "last" : "best");
    mt_status st = mt_strbuf_status(&sb);
    if (!st) st = mt__sw_journal_append(sw, sb.data);
    mt_strbuf_deinit(&sb);
    return st;
}

mt_status mt__sw_journal_open(mt__sweep *sw)
{
    struct stat stt;
    bool exists = stat(sw->journal_path, &stt) == 0 && stt.st_size > 0;
    if (exists && sw->cfg.storage.resume == MT_SWEEP_RESUME_NEVER)
        return mt_err_set(MT_ERR_INVALID,
                          "%s exists and storage.resume is 'never': remove the sweep directory "
                          "%s or choose another storage.dir",
                          sw->journal_path, sw->dir);
    size_t good = 0, len = 0;
    mt_status st = MT_OK;
    if (exists) {
        char *text = NULL;
        if ((st = mt_file_read_all(sw->journal_path, &text, &len, (size_t)1 << 31))) return st;
        replay r = {sw, sw->journal_path, 0, NAN, NAN, false};
        st = replay_text(&r, text, len, &good);
        mt_free(text);
        if (st) return st;
        if (isfinite(r.session_t0) && isfinite(r.last_t) && r.last_t > r.session_t0)
            sw->prior_seconds += r.last_t - r.session_t0;
        if (!r.have_header) exists = false;
    }
    sw->jfd = open(sw->journal_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (sw->jfd < 0) return mt_err_errno(errno, "journal: opening %s", sw->journal_path);
    if (good < len && ftruncate(sw->jfd, (off_t)good) != 0)
        return mt_err_errno(errno, "journal: cutting the incomplete record off %s",
                            sw->journal_path);
    if (!exists) return header_record(sw);
    char rec[128];
    snprintf(rec, sizeof rec, "{\"event\":\"restart\",\"ranks\":%d,\"finished\":%lld}",
             (int)mt_comm_size(sw->o.comm), (long long)sw->n_finished);
    return mt__sw_journal_append(sw, rec);
}

/* ---------------------------------------------------------------- summary and results */

static void csv_field(mt_strbuf *sb, const char *s)
{
    if (!strpbrk(s, ",\"\n\r")) {
        mt_strbuf_append(sb, s);
        return;
    }
    mt_strbuf_append(sb, "\"");
    for (; *s; s++) {
        if (*s == '"') mt_strbuf_append(sb, "\"");
        mt_strbuf_appendn(sb, s, 1);
    }
    mt_strbuf_append(sb, "\"");
}

/* A parameter's value as text: the option for categorical ones, the number otherwise. */
static void param_text(const mt_hpo_param *prm, double v, char *buf, size_t cap)
{
    if (isnan(v)) {
        buf[0] = 0;
        return;
    }
    if (prm->options) {
        int32_t k = (int32_t)v;
        if (k >= 0 && k < prm->n_options) {
            mt__hpo_option_text(prm->options[k], buf, cap);
            return;
        }
    }
    char f[40];
    snprintf(buf, cap, "%s", mt__hpo_fmt(v, f));
}

mt_status mt__sw_write_summary(mt__sweep *sw)
{
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    int32_t np = mt_hpo_space_count(sw->space);
    mt_strbuf_append(&sb, "trial,status,value,loss,best_epoch,epochs,seconds,attempts");
    for (int32_t i = 0; i < np; i++) {
        mt_strbuf_append(&sb, ",");
        csv_field(&sb, mt_hpo_space_param(sw->space, i)->label);
    }
    mt_strbuf_append(&sb, ",message\n");
    for (int64_t id = 0; id < sw->n_trials; id++) {
        const mt__sw_trial *t = &sw->trials[id];
        if (t->state != MT__SW_DONE) continue;
        char a[40], b[40], c[40];
        mt_strbuf_appendf(&sb, "%lld,%s,%s,%s,%lld,%lld,%s,%d", (long long)id,
                          mt_hpo_status_name(t->status), isnan(t->value) ? "" : mt__hpo_fmt(t->value, a),
                          isnan(t->loss) ? "" : mt__hpo_fmt(t->loss, b), (long long)t->best_epoch,
                          (long long)t->epochs, isnan(t->seconds) ? "" : mt__hpo_fmt(t->seconds, c),
                          (int)t->attempts);
        const mt_hpo_trial *ht = mt_hpo_history_find(sw->hist, id);
        for (int32_t i = 0; i < np; i++) {
            char v[160];
            param_text(mt_hpo_space_param(sw->space, i),
                       ht && ht->point.active[i] ? ht->point.values[i] : NAN, v, sizeof v);
            mt_strbuf_append(&sb, ",");
            csv_field(&sb, v);
        }
        mt_strbuf_append(&sb, ",");
        csv_field(&sb, t->message ? t->message : "");
        mt_strbuf_append(&sb, "\n");
    }
    mt_status st = mt_strbuf_status(&sb);
    if (!st) {
        char path[1100];
        snprintf(path, sizeof path, "%s/summary.csv", sw->dir);
        st = mt_file_write_atomic(path, sb.data, sb.len, 0644);
    }
    mt_strbuf_deinit(&sb);
    return st;
}

mt_status mt__sw_write_result(const mt__sweep *sw, int64_t id, const mt_hpo_point *p,
                              const char *status, double value, double loss, int64_t best_epoch,
                              int64_t epochs, double seconds, const char *message,
                              int32_t n_reports, const int64_t *steps, const double *values)
{
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    mt_strbuf_appendf(&sb, "{\"trial\":%lld,\"sweep\":", (long long)id);
    mt__sw_json_str(&sb, sw->cfg.name);
    mt_strbuf_appendf(&sb, ",\"status\":\"%s\",\"value\":", status);
    mt__sw_json_num(&sb, value);
    mt_strbuf_append(&sb, ",\"loss\":");
    mt__sw_json_num(&sb, loss);
    mt_strbuf_appendf(&sb, ",\"best_epoch\":%lld,\"epochs\":%lld,\"seconds\":", (long long)best_epoch,
                      (long long)epochs);
    mt__sw_json_num(&sb, seconds);
    mt_strbuf_append(&sb, ",\"message\":");
    mt__sw_json_str(&sb, message ? message : "");
    mt_strbuf_append(&sb, ",\"point\":");
    mt_status st = mt_hpo_point_to_json(sw->space, p, &sb);
    mt_strbuf_append(&sb, ",\"reports\":[");
    for (int32_t i = 0; i < n_reports; i++) {
        mt_strbuf_appendf(&sb, "%s[%lld,", i ? "," : "", (long long)steps[i]);
        mt__sw_json_num(&sb, values[i]);
        mt_strbuf_append(&sb, "]");
    }
    mt_strbuf_append(&sb, "]}\n");
    if (!st) st = mt_strbuf_status(&sb);
    if (!st) {
        char dir[1024], path[1100];
        mt__sw_trial_dir(sw, id, dir, sizeof dir);
        snprintf(path, sizeof path, "%s/result.json", dir);
        st = mt_mkdirs(dir, 0755);
        if (!st) st = mt_file_write_atomic(path, sb.data, sb.len, 0644);
    }
    mt_strbuf_deinit(&sb);
    return st;
}
