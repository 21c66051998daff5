/* `mltrain sweep-report DIR`: what a sweep directory says, without the sweep file. Reads
 * DIR/space.json (the parameters: names, axis scales, option texts; written by the sweep),
 * DIR/journal.jsonl (the trials, their points, reports and results) and the result.json of
 * trial folders the journal does not know (job-array tasks), prints the counts, the best
 * trials with their parameters and a rough parameter importance table, and draws three PNG
 * plots with the io module's cairo plotter: the objective of every finished trial against its
 * id with the best value so far, the values each trial reported per epoch (the curves a pruner
 * saw; at most the 20 best trials), and parallel coordinates (one axis per parameter and one
 * for the objective, a line per trial coloured by its objective, the best highlighted, pruned
 * and failed trials faint).
 *
 * Importance, a rough measure: for a numeric parameter the Spearman rank correlation of its
 * value with the objective over the ok trials where it is active (ties get mean ranks); for a
 * categorical one the spread (max - min) of the mean objective per option. Neither accounts
 * for interactions or for the sampler's bias (TPE samples good regions more often).
 *
 * Without space.json (a directory of an older mltrain) the parameters come from the points:
 * named by their label's last key, numeric, on a log axis when all values are positive and
 * span two decades. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mltrain/io.h"
#include "sweep_impl.h"

typedef struct rep_trial {
    int64_t id;
    int32_t n_pv;
    double *pv; /* per rep parameter: the point's value (NaN: inactive or unknown) */
    bool finished;
    char status[16];
    double value, loss, seconds;
    int64_t epochs, best_epoch;
    char *params; /* "name=value ..." */
    char *message;
    int32_t n, cap;
    int64_t *steps;
    double *values;
} rep_trial;

enum { SC_LINEAR = 0, SC_LOG, SC_CATEGORICAL };

typedef struct rep_param {
    char *label, *name;
    int32_t scale;    /* SC_* */
    double low, high; /* NaN: unbounded */
    double first;     /* categorical: value of option 0 (RANDINT's low, else 0) */
    int32_t n_options;
    char **options;
} rep_param;

typedef struct rep {
    char name[128], objective[256], mode[8], algorithm[16];
    int32_t n_params, cap_params;
    rep_param *params;
    bool have_space; /* space.json was read */
    int64_t n, cap;
    rep_trial *t;
    int64_t restarts;
    bool finished;
} rep;

static rep_trial *trial_at(rep *r, int64_t id)
{
    if (id < 0 || id > 100000000) return NULL;
    if (id >= r->cap) {
        int64_t cap = r->cap ? r->cap : 64;
        while (cap <= id)
            cap *= 2;
        rep_trial *t = mt_realloc(r->t, (size_t)cap * sizeof *t);
        if (!t) return NULL;
        memset(t + r->cap, 0, (size_t)(cap - r->cap) * sizeof *t);
        r->t = t;
        r->cap = cap;
    }
    if (id >= r->n) {
        for (int64_t i = r->n; i <= id; i++) {
            r->t[i].id = -1;
            r->t[i].value = r->t[i].loss = r->t[i].seconds = NAN;
        }
        r->n = id + 1;
    }
    r->t[id].id = id;
    return &r->t[id];
}

static double num(const mt_cfg_node *m, const char *k)
{
    const mt_cfg_node *v = mt_cfg_get(m, k);
    return v && (v->kind == MT_CFG_INT || v->kind == MT_CFG_FLOAT) ? v->f : NAN;
}

/* An integer field (trial, step, epochs): dflt when absent, NaN or beyond +-2^53 (a damaged
 * line; converting such a double to int64_t is undefined). */
static int64_t int_field(const mt_cfg_node *m, const char *k, int64_t dflt)
{
    double v = num(m, k);
    return v >= -9007199254740992.0 && v <= 9007199254740992.0 ? (int64_t)v : dflt;
}

static const char *str(const mt_cfg_node *m, const char *k)
{
    const mt_cfg_node *v = mt_cfg_get(m, k);
    return v && v->kind == MT_CFG_STRING ? v->str : NULL;
}

/* ---------------------------------------------------------------- parameters */

static int32_t find_param(const rep *r, const char *label)
{
    for (int32_t i = 0; i < r->n_params; i++)
        if (!strcmp(r->params[i].label, label)) return i;
    return -1;
}

static rep_param *add_param(rep *r, const char *label, const char *name)
{
    if (r->n_params == r->cap_params) {
        int32_t cap = r->cap_params ? 2 * r->cap_params : 16;
        rep_param *p = mt_realloc(r->params, (size_t)cap * sizeof *p);
        if (!p) return NULL;
        r->params = p;
        r->cap_params = cap;
    }
    rep_param *p = &r->params[r->n_params];
    memset(p, 0, sizeof *p);
    p->low = p->high = NAN;
    p->label = mt_strdup(label);
    p->name = mt_strdup(name);
    if (!p->label || !p->name) {
        mt_free(p->label);
        mt_free(p->name);
        return NULL;
    }
    r->n_params++;
    return p;
}

/* DIR/space.json (written by the sweep); absent: the parameters come from the points. */
static void read_space(rep *r, const char *dir)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/space.json", dir);
    mt_cfg_options co;
    mt_cfg_options_init(&co);
    co.no_environment = true;
    co.keep_unknown_vars = true;
    mt_cfg_doc *doc = NULL;
    if (mt_cfg_load_file(&doc, path, &co) != MT_OK) {
        mt_err_clear();
        return;
    }
    const mt_cfg_node *m = mt_cfg_doc_root(doc);
    const mt_cfg_node *ps = m && m->kind == MT_CFG_MAP ? mt_cfg_get(m, "params") : NULL;
    for (int32_t i = 0; ps && ps->kind == MT_CFG_LIST && i < ps->n; i++) {
        const mt_cfg_node *e = ps->items[i];
        const char *label = e->kind == MT_CFG_MAP ? str(e, "label") : NULL;
        const char *name = label ? str(e, "name") : NULL;
        const char *scale = label ? str(e, "scale") : NULL;
        rep_param *p = label && name && scale ? add_param(r, label, name) : NULL;
        if (!p) continue;
        p->scale = !strcmp(scale, "log")           ? SC_LOG
                   : !strcmp(scale, "categorical") ? SC_CATEGORICAL
                                                   : SC_LINEAR;
        p->low = num(e, "low");
        p->high = num(e, "high");
        p->first = isnan(num(e, "first")) ? 0 : num(e, "first");
        const mt_cfg_node *o = mt_cfg_get(e, "options");
        if (p->scale == SC_CATEGORICAL && o && o->kind == MT_CFG_LIST && o->n > 0 &&
            (p->options = mt_calloc((size_t)o->n, sizeof *p->options))) {
            p->n_options = o->n;
            for (int32_t k = 0; k < o->n; k++)
                p->options[k] = mt_strdup(o->items[k]->str ? o->items[k]->str : "?");
        }
        if (p->scale == SC_CATEGORICAL && !p->options) p->scale = SC_LINEAR;
    }
    r->have_space = r->n_params > 0;
    mt_cfg_doc_free(doc);
}

/* The point's values into t->pv (parameters not in space.json are added when there is none). */
static void set_point(rep *r, rep_trial *t, const mt_cfg_node *pt)
{
    for (int32_t i = 0; pt && pt->kind == MT_CFG_MAP && i < pt->n; i++) {
        const char *k = pt->keys[i];
        int32_t j = find_param(r, k);
        if (j < 0 && !r->have_space) {
            const char *dot = strrchr(k, '.');
            if (add_param(r, k, dot ? dot + 1 : k)) j = r->n_params - 1;
        }
        if (j < 0) continue;
        if (j >= t->n_pv) {
            int32_t n = r->cap_params > j ? r->cap_params : j + 1;
            double *pv = mt_realloc(t->pv, (size_t)n * sizeof *pv);
            if (!pv) continue;
            for (int32_t q = t->n_pv; q < n; q++)
                pv[q] = NAN;
            t->pv = pv;
            t->n_pv = n;
        }
        const mt_cfg_node *v = pt->items[i];
        t->pv[j] = v->kind == MT_CFG_INT || v->kind == MT_CFG_FLOAT ? v->f : NAN;
    }
}

static double pval(const rep_trial *t, int32_t j)
{
    return j < t->n_pv ? t->pv[j] : NAN;
}

/* Without space.json: a log axis for positive values spanning two decades. */
static void guess_scales(rep *r)
{
    if (r->have_space) return;
    for (int32_t j = 0; j < r->n_params; j++) {
        double lo = INFINITY, hi = -INFINITY;
        for (int64_t i = 0; i < r->n; i++)
            if (r->t[i].id >= 0 && isfinite(pval(&r->t[i], j)))
                lo = fmin(lo, pval(&r->t[i], j)), hi = fmax(hi, pval(&r->t[i], j));
        if (lo > 0 && hi / lo >= 100) r->params[j].scale = SC_LOG;
    }
}

static char *point_text(const mt_cfg_node *p)
{
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    for (int32_t i = 0; p && p->kind == MT_CFG_MAP && i < p->n; i++) {
        const char *k = p->keys[i];
        const char *dot = strrchr(k, '.');
        mt_strbuf_appendf(&sb, "%s%s=%s", i ? " " : "", dot ? dot + 1 : k,
                          p->items[i]->str ? p->items[i]->str : "?");
    }
    if (!sb.data) mt_strbuf_append(&sb, "");
    return mt_strbuf_take(&sb);
}

static void add_report(rep_trial *t, int64_t step, double v)
{
    mt__sw_series_add(&t->steps, &t->values, &t->n, &t->cap, step, v);
}

static void set_finished(rep_trial *t, const mt_cfg_node *m)
{
    t->finished = true;
    const char *s = str(m, "status");
    snprintf(t->status, sizeof t->status, "%s", s ? s : "?");
    t->value = num(m, "value");
    t->loss = num(m, "loss");
    t->seconds = num(m, "seconds");
    t->epochs = int_field(m, "epochs", 0);
    t->best_epoch = int_field(m, "best_epoch", 0);
    const char *msg = str(m, "message");
    mt_free(t->message);
    t->message = msg && *msg ? mt_strdup(msg) : NULL;
}

static mt_status read_journal(rep *r, const char *path, const char *text, size_t len)
{
    mt_cfg_options co;
    mt_cfg_options_init(&co);
    co.no_environment = true;
    co.keep_unknown_vars = true;
    size_t pos = 0;
    int64_t line = 0;
    while (pos < len) {
        line++;
        const char *nl = memchr(text + pos, '\n', len - pos);
        if (!nl) {
            mt_log(MT_LOG_WARN, "%s:%lld: incomplete last record ignored", path, (long long)line);
            break;
        }
        size_t n = (size_t)(nl - text - pos);
        const char *s = text + pos;
        pos += n + 1;
        if (n == 0) continue;
        mt_cfg_doc *d = NULL;
        mt_status st = mt_cfg_load_string(&d, s, n, path, &co);
        const mt_cfg_node *m = st ? NULL : mt_cfg_doc_root(d);
        const char *ev = m && m->kind == MT_CFG_MAP ? str(m, "event") : NULL;
        if (!ev) {
            mt_cfg_doc_free(d);
            return mt_err_set(MT_ERR_FORMAT, "%s:%lld: not a journal record: %.60s", path,
                              (long long)line, s);
        }
        /* trials are created in order, one record each, after the header: a trial id is
         * below the line number (a larger one would make trial_at allocate for it) */
        int64_t id = int_field(m, "trial", -1);
        rep_trial *t = id >= 0 && id < line ? trial_at(r, id) : NULL;
        if (!strcmp(ev, "sweep")) {
            snprintf(r->name, sizeof r->name, "%s", str(m, "name") ? str(m, "name") : "?");
            snprintf(r->objective, sizeof r->objective, "%s",
                     str(m, "objective") ? str(m, "objective") : "objective");
            snprintf(r->mode, sizeof r->mode, "%s", str(m, "mode") ? str(m, "mode") : "min");
            snprintf(r->algorithm, sizeof r->algorithm, "%s",
                     str(m, "algorithm") ? str(m, "algorithm") : "?");
        } else if (!strcmp(ev, "restart")) {
            r->restarts++;
        } else if (!strcmp(ev, "sweep_finished")) {
            r->finished = true;
        } else if (t && !strcmp(ev, "trial_created")) {
            mt_free(t->params);
            t->params = point_text(mt_cfg_get(m, "point"));
            set_point(r, t, mt_cfg_get(m, "point"));
            snprintf(t->status, sizeof t->status, "unfinished");
        } else if (t && !strcmp(ev, "report") && !t->finished) {
            add_report(t, int_field(m, "step", 0), num(m, "value"));
        } else if (t && !strcmp(ev, "trial_finished") && !t->finished) {
            set_finished(t, m);
        }
        mt_cfg_doc_free(d);
    }
    return MT_OK;
}

/* result.json of trial folders the journal does not list (job-array tasks). */
static void read_results(rep *r, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    mt_cfg_options co;
    mt_cfg_options_init(&co);
    co.no_environment = true;
    co.keep_unknown_vars = true;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "trial_", 6)) continue;
        int64_t id = strtoll(e->d_name + 6, NULL, 10);
        if (id < r->n && r->t[id].id >= 0 && r->t[id].finished) continue;
        char path[1400];
        snprintf(path, sizeof path, "%s/%s/result.json", dir, e->d_name);
        mt_cfg_doc *doc = NULL;
        if (mt_cfg_load_file(&doc, path, &co) != MT_OK) {
            mt_err_clear();
            continue;
        }
        const mt_cfg_node *m = mt_cfg_doc_root(doc);
        rep_trial *t = m && m->kind == MT_CFG_MAP ? trial_at(r, id) : NULL;
        if (t) {
            set_finished(t, m);
            mt_free(t->params);
            t->params = point_text(mt_cfg_get(m, "point"));
            set_point(r, t, mt_cfg_get(m, "point"));
            const mt_cfg_node *rs = mt_cfg_get(m, "reports");
            for (int32_t i = 0; rs && rs->kind == MT_CFG_LIST && i < rs->n; i++) {
                const mt_cfg_node *p = rs->items[i];
                if (p->kind == MT_CFG_LIST && p->n == 2)
                    add_report(t, p->items[0]->i,
                               p->items[1]->kind == MT_CFG_NULL ? NAN : p->items[1]->f);
            }
            if (!r->name[0]) {
                const char *nm = str(m, "sweep");
                snprintf(r->name, sizeof r->name, "%s", nm ? nm : "?");
            }
        }
        mt_cfg_doc_free(doc);
    }
    closedir(d);
}

static int cmp_loss(const void *a, const void *b)
{
    const rep_trial *x = *(const rep_trial *const *)a, *y = *(const rep_trial *const *)b;
    double lx = isnan(x->loss) ? INFINITY : x->loss, ly = isnan(y->loss) ? INFINITY : y->loss;
    if (lx != ly) return lx < ly ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* ---------------------------------------------------------------- importance */

typedef struct rank_item {
    double v;
    int32_t i;
} rank_item;

static int cmp_rank_item(const void *a, const void *b)
{
    double x = ((const rank_item *)a)->v, y = ((const rank_item *)b)->v;
    return x < y ? -1 : x > y;
}

/* Ranks of v[0..n-1] (1-based; ties get their mean rank) into rk. */
static void ranks(const double *v, int32_t n, rank_item *tmp, double *rk)
{
    for (int32_t i = 0; i < n; i++)
        tmp[i].v = v[i], tmp[i].i = i;
    qsort(tmp, (size_t)n, sizeof *tmp, cmp_rank_item);
    for (int32_t a = 0; a < n;) {
        int32_t b = a;
        while (b + 1 < n && tmp[b + 1].v == tmp[a].v)
            b++;
        for (int32_t k = a; k <= b; k++)
            rk[tmp[k].i] = (a + b) / 2.0 + 1;
        a = b + 1;
    }
}

/* Spearman's rho: the Pearson correlation of the ranks (NaN when a side is constant). */
static double spearman(const double *x, const double *y, int32_t n)
{
    if (n < 2) return NAN;
    double *rx = mt_calloc((size_t)n * 2, sizeof *rx);
    rank_item *tmp = mt_calloc((size_t)n, sizeof *tmp);
    double rho = NAN;
    if (rx && tmp) {
        double *ry = rx + n;
        ranks(x, n, tmp, rx);
        ranks(y, n, tmp, ry);
        double m = (n + 1) / 2.0, sxy = 0, sxx = 0, syy = 0;
        for (int32_t i = 0; i < n; i++) {
            sxy += (rx[i] - m) * (ry[i] - m);
            sxx += (rx[i] - m) * (rx[i] - m);
            syy += (ry[i] - m) * (ry[i] - m);
        }
        if (sxx > 0 && syy > 0) rho = sxy / sqrt(sxx * syy);
    }
    mt_free(rx);
    mt_free(tmp);
    return rho;
}

static bool is_ok(const rep_trial *t)
{
    return t->id >= 0 && t->finished && !strcmp(t->status, "ok") && isfinite(t->value);
}

static void importance(const rep *r, mt_strbuf *out)
{
    if (r->n_params == 0) return;
    int64_t n_ok = 0;
    for (int64_t i = 0; i < r->n; i++)
        n_ok += is_ok(&r->t[i]);
    mt_strbuf_appendf(out,
                      "\nparameter importance over %lld ok trials (a rough measure: numeric: "
                      "Spearman rank correlation\nof the value with the objective; categorical: "
                      "spread of the mean objective across options;\nno interactions, and the "
                      "sampler's preferences bias both)\n",
                      (long long)n_ok);
    mt_strbuf_appendf(out, "  %-24s %-12s %6s  %s\n", "parameter", "kind", "trials", "measure");
    double *x = mt_calloc((size_t)n_ok + 1, sizeof *x), *y = mt_calloc((size_t)n_ok + 1, sizeof *y);
    if (!x || !y) {
        mt_free(x);
        mt_free(y);
        out->failed = true;
        return;
    }
    bool maximize = !strcmp(r->mode, "max");
    for (int32_t j = 0; j < r->n_params; j++) {
        const rep_param *p = &r->params[j];
        int32_t n = 0;
        for (int64_t i = 0; i < r->n; i++) {
            const rep_trial *t = &r->t[i];
            if (!is_ok(t) || !isfinite(pval(t, j))) continue;
            x[n] = pval(t, j);
            y[n++] = t->value;
        }
        const char *kind = p->scale == SC_CATEGORICAL ? "categorical"
                           : p->scale == SC_LOG       ? "numeric/log"
                                                      : "numeric";
        mt_strbuf_appendf(out, "  %-24s %-12s %6d  ", p->name, kind, (int)n);
        if (n < 3) {
            mt_strbuf_append(out, "too few trials\n");
            continue;
        }
        if (p->scale != SC_CATEGORICAL) {
            double rho = spearman(x, y, n);
            if (isnan(rho))
                mt_strbuf_append(out, "rank correlation undefined (a constant side)\n");
            else
                mt_strbuf_appendf(out, "rank correlation %+.3f (higher values, %s objective)\n",
                                  rho, rho >= 0 ? "higher" : "lower");
            continue;
        }
        double lo = INFINITY, hi = -INFINITY;
        int32_t best = -1, seen = 0;
        double best_mean = NAN;
        for (int32_t k = 0; k < p->n_options; k++) {
            double sum = 0;
            int32_t c = 0;
            for (int32_t i = 0; i < n; i++)
                if (round(x[i] - p->first) == k) sum += y[i], c++;
            if (c == 0) continue;
            double mean = sum / c;
            seen++;
            lo = fmin(lo, mean), hi = fmax(hi, mean);
            if (best < 0 || (maximize ? mean > best_mean : mean < best_mean))
                best = k, best_mean = mean;
        }
        if (seen < 2)
            mt_strbuf_appendf(out, "one option tried (%s)\n", best >= 0 ? p->options[best] : "?");
        else
            mt_strbuf_appendf(out,
                              "spread of mean objective %.4g over %d options (best: %s, mean "
                              "%.4g)\n",
                              hi - lo, (int)seen, p->options[best] ? p->options[best] : "?",
                              best_mean);
    }
    mt_free(x);
    mt_free(y);
}

/* ---------------------------------------------------------------- parallel coordinates */

static mt_status parallel_plot(const rep *r, rep_trial **sorted, int64_t n_sorted, const char *path)
{
    int32_t na = r->n_params + 1;
    int64_t nl = n_sorted;
    mt_plot_axis *axes = mt_calloc((size_t)na, sizeof *axes);
    double *vals = mt_calloc((size_t)(nl * na) + 1, sizeof *vals);
    double *color = mt_calloc((size_t)nl + 1, sizeof *color);
    uint8_t *style = mt_calloc((size_t)nl + 1, 1);
    mt_status st =
        axes && vals && color && style ? MT_OK : mt_err_set(MT_ERR_NOMEM, "sweep-report");
    for (int32_t j = 0; j < r->n_params && !st; j++) {
        const rep_param *p = &r->params[j];
        axes[j].name = p->name;
        axes[j].scale = p->scale == SC_LOG           ? MT_PLOT_LOG
                        : p->scale == SC_CATEGORICAL ? MT_PLOT_CATEGORICAL
                                                     : MT_PLOT_LINEAR;
        axes[j].lo = p->low;
        axes[j].hi = p->high;
        axes[j].n_labels = p->n_options;
        axes[j].labels = (const char *const *)p->options;
    }
    if (!st) {
        /* an expression objective is too long for an axis title */
        axes[na - 1].name =
            r->objective[0] && strlen(r->objective) <= 24 ? r->objective : "objective";
        axes[na - 1].scale = MT_PLOT_LINEAR;
        axes[na - 1].lo = axes[na - 1].hi = NAN;
    }
    /* sorted is best first: the first 3 ok trials are highlighted */
    int32_t highlighted = 0;
    for (int64_t i = 0; i < nl && !st; i++) {
        const rep_trial *t = sorted[i];
        for (int32_t j = 0; j < r->n_params; j++) {
            double v = pval(t, j);
            if (r->params[j].scale == SC_CATEGORICAL) v -= r->params[j].first;
            vals[i * na + j] = v;
        }
        vals[i * na + na - 1] = t->value;
        bool ok = is_ok(t);
        color[i] = ok ? t->value : NAN;
        style[i] = !ok                 ? MT_PLOT_LINE_FAINT
                   : highlighted++ < 3 ? MT_PLOT_LINE_BEST
                                       : MT_PLOT_LINE_NORMAL;
    }
    if (!st) {
        mt_parallel_plot pp = {
            na, axes, (int32_t)nl, vals, color, style, strcmp(r->mode, "max") != 0, "objective"};
        int32_t width = 260 + 130 * na;
        st = mt_plot_parallel(path, &pp, width > 2400 ? 2400 : width, 560);
    }
    mt_free(axes);
    mt_free(vals);
    mt_free(color);
    mt_free(style);
    return st;
}

/* Draws the plots that have data; appends " PATH" to written for each. */
static mt_status plots(rep *r, rep_trial **sorted, int64_t n_sorted, const char *prefix,
                       mt_strbuf *written)
{
    mt_monitor_history h;
    mt_monitor_history_init(&h, "sweep");
    bool maximize = !strcmp(r->mode, "max");
    char obj[300], best[300];
    snprintf(obj, sizeof obj, "%s", r->objective[0] ? r->objective : "objective");
    snprintf(best, sizeof best, "best so far");
    mt_chan_history *co = mt_monitor_history_channel(&h, obj, true);
    mt_chan_history *cb = co ? mt_monitor_history_channel(&h, best, true) : NULL;
    co = cb ? mt_monitor_history_channel(&h, obj, false) : NULL;
    mt_status st = co && cb ? MT_OK : mt_err_set(MT_ERR_NOMEM, "sweep-report");
    double b = NAN;
    for (int64_t i = 0; i < r->n && !st; i++) {
        rep_trial *t = &r->t[i];
        if (t->id < 0 || !t->finished || strcmp(t->status, "ok") || !isfinite(t->value)) continue;
        if (isnan(b) || (maximize ? t->value > b : t->value < b)) b = t->value;
        mt_chan_record rec = {t->value, i, 0, 0, 0};
        st = mt_chan_history_append(co, &rec);
        rec.value = b;
        if (!st) st = mt_chan_history_append(cb, &rec);
    }
    char path[1200];
    const char *chs[2] = {obj, best};
    if (!st && co->n > 0) {
        snprintf(path, sizeof path, "%s_history.png", prefix);
        st = mt_plot_channels_xlabel(path, &h, 2, chs, "trial", 900, 540);
        if (!st) mt_strbuf_appendf(written, " %s", path);
    }
    mt_monitor_history_clear(&h);
    if (st) return st;
    /* intermediate values: the best 20 trials that reported anything */
    mt_monitor_history_init(&h, "sweep");
    const char *names[20];
    char namebuf[20][48];
    int32_t k = 0;
    for (int64_t i = 0; i < n_sorted && k < 20 && !st; i++) {
        rep_trial *t = sorted[i];
        if (t->n == 0) continue;
        snprintf(namebuf[k], sizeof namebuf[k], "trial %lld (%s)", (long long)t->id, t->status);
        mt_chan_history *c = mt_monitor_history_channel(&h, namebuf[k], true);
        if (!c) st = mt_err_set(MT_ERR_NOMEM, "sweep-report");
        for (int32_t j = 0; j < t->n && !st; j++) {
            mt_chan_record rec = {t->values[j], t->steps[j], 0, 0, 0};
            st = mt_chan_history_append(c, &rec);
        }
        names[k] = namebuf[k];
        k++;
    }
    if (!st && k > 0) {
        snprintf(path, sizeof path, "%s_intermediate.png", prefix);
        st = mt_plot_channels(path, &h, k, names, 900, 540);
        if (!st) mt_strbuf_appendf(written, " %s", path);
    }
    mt_monitor_history_clear(&h);
    if (!st && n_sorted > 0) {
        snprintf(path, sizeof path, "%s_parallel.png", prefix);
        st = parallel_plot(r, sorted, n_sorted, path);
        if (!st) mt_strbuf_appendf(written, " %s", path);
    }
    return st;
}

mt_status mt_sweep_report(const char *dir, int32_t top, const char *png_prefix, mt_strbuf *out)
{
    rep r;
    memset(&r, 0, sizeof r);
    snprintf(r.mode, sizeof r.mode, "min");
    char path[1100];
    snprintf(path, sizeof path, "%s/journal.jsonl", dir);
    char *text = NULL;
    size_t len = 0;
    read_space(&r, dir);
    mt_status st = mt_file_read_all(path, &text, &len, (size_t)1 << 31);
    bool have_journal = st == MT_OK;
    if (st) mt_err_clear();
    st = have_journal ? read_journal(&r, path, text, len) : MT_OK;
    mt_free(text);
    if (!st) read_results(&r, dir);
    guess_scales(&r);
    if (!st && r.n == 0)
        st = mt_err_set(MT_ERR_NOT_FOUND,
                        "%s: no journal.jsonl and no trial_NNNN/result.json: not a "
                        "sweep directory (or no trial finished yet)",
                        dir);
    rep_trial **sorted = NULL;
    int64_t ns = 0, ok = 0, failed = 0, pruned = 0, unfinished = 0;
    if (!st) {
        sorted = mt_calloc((size_t)r.n + 1, sizeof *sorted);
        if (!sorted) st = mt_err_set(MT_ERR_NOMEM, "sweep-report");
    }
    for (int64_t i = 0; !st && i < r.n; i++) {
        rep_trial *t = &r.t[i];
        if (t->id < 0) continue;
        if (!t->finished) {
            unfinished++;
            continue;
        }
        ok += !strcmp(t->status, "ok");
        failed += !strcmp(t->status, "failed");
        pruned += !strcmp(t->status, "pruned");
        sorted[ns++] = t;
    }
    if (!st) {
        qsort(sorted, (size_t)ns, sizeof *sorted, cmp_loss);
        mt_strbuf_appendf(out, "sweep '%s' (%s search) in %s%s\n", r.name,
                          r.algorithm[0] ? r.algorithm : "?", dir,
                          have_journal ? "" : " (job-array results, no journal)");
        mt_strbuf_appendf(out, "objective: %s %s\n",
                          !strcmp(r.mode, "max") ? "maximize" : "minimize",
                          r.objective[0] ? r.objective : "?");
        mt_strbuf_appendf(out,
                          "trials: %lld finished (%lld ok, %lld pruned, %lld failed), %lld "
                          "unfinished%s%s\n",
                          (long long)ns, (long long)ok, (long long)pruned, (long long)failed,
                          (long long)unfinished, r.restarts ? ", resumed " : "",
                          r.restarts ? (r.restarts == 1 ? "once" : "several times") : "");
        mt_strbuf_appendf(out, "\n%4s %6s  %-8s %12s %6s %9s  %s\n", "rank", "trial", "status",
                          "value", "epochs", "seconds", "parameters");
        int32_t shown = 0;
        for (int64_t i = 0; i < ns && shown < top; i++) {
            rep_trial *t = sorted[i];
            if (strcmp(t->status, "ok") && strcmp(t->status, "pruned")) continue;
            mt_strbuf_appendf(out, "%4d %6lld  %-8s %12.6g %6lld %9.2f  %s\n", (int)++shown,
                              (long long)t->id, t->status, t->value, (long long)t->epochs,
                              t->seconds, t->params ? t->params : "");
        }
        for (int64_t i = 0; i < ns; i++)
            if (!strcmp(sorted[i]->status, "failed"))
                mt_strbuf_appendf(out, "failed trial %lld: %s\n", (long long)sorted[i]->id,
                                  sorted[i]->message ? sorted[i]->message : "(no message)");
        importance(&r, out);
        if (png_prefix) {
            mt_strbuf written;
            mt_strbuf_init(&written);
            st = plots(&r, sorted, ns, png_prefix, &written);
            if (!st && written.len) mt_strbuf_appendf(out, "plots:%s\n", written.data);
            mt_strbuf_deinit(&written);
        }
        if (!st) st = mt_strbuf_status(out);
    }
    mt_free(sorted);
    for (int64_t i = 0; i < r.n; i++) {
        mt_free(r.t[i].params);
        mt_free(r.t[i].message);
        mt_free(r.t[i].steps);
        mt_free(r.t[i].values);
        mt_free(r.t[i].pv);
    }
    mt_free(r.t);
    for (int32_t j = 0; j < r.n_params; j++) {
        for (int32_t k = 0; k < r.params[j].n_options; k++)
            mt_free(r.params[j].options[k]);
        mt_free(r.params[j].options);
        mt_free(r.params[j].label);
        mt_free(r.params[j].name);
    }
    mt_free(r.params);
    return st;
}
