/* What a sweep writes for TensorBoard's HParams dashboard and for `sweep-report`, besides the
 * journal:
 *
 *   DIR/space.json   the parameters (label, name, distribution, bounds, the axis scale a plot
 *                    uses, option texts), written when the sweep starts, so sweep-report can
 *                    draw and rank the parameters without the sweep file.
 *   DIR/events.out.tfevents.0000000000.mltrain-hparams
 *                    the HParams experiment (one hyperparameter per search parameter with its
 *                    type and domain, the metrics "sweep/objective" and, for a training
 *                    objective, the objective channel), rewritten atomically at each start.
 *   DIR/trial_NNNN/events.out.tfevents.0000000000.mltrain-hparams
 *                    the trial's session: session_start_info (the values of its active
 *                    parameters, group = the folder name) appended when it starts; when it
 *                    finishes the file is rewritten atomically with the start (start time =
 *                    end - the trial's seconds), the scalar "sweep/objective" (its final
 *                    objective value, step = epochs) and session_end_info (ok: SUCCESS,
 *                    failed: FAILURE, pruned: UNKNOWN, as TensorBoard has no pruned status).
 *                    The rewrite also restores the start of a training trial, whose run
 *                    removes the folder's old event files when it opens its monitor log. The
 *                    fixed name sorts before the training's event files, so a running
 *                    TensorBoard follows those; it shows the end status after a reload.
 *
 * These files are monitoring: a failure to write them is logged as a warning, never stops the
 * sweep. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include "hyperopt_impl.h"
#include "mltrain/io.h"
#include "sweep_impl.h"

#define HPARAMS_FILE "events.out.tfevents.0000000000.mltrain-hparams"
#define OBJECTIVE_TAG "sweep/objective"
#define MAX_CATEGORIES 30

static double wall_now(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + (double)tv.tv_usec * 1e-6;
}

/* The axis scale of a parameter in plots: "categorical" (choices, small randint ranges),
 * "log" (the log distributions) or "linear". */
static const char *param_scale(const mt_hpo_param *p)
{
    if (p->dist == MT_HPO_RANDINT) return p->n_options <= MAX_CATEGORIES ? "categorical" : "linear";
    if (mt_hpo_dist_is_categorical(p->dist)) return "categorical";
    if (p->dist == MT_HPO_LOGUNIFORM || p->dist == MT_HPO_QLOGUNIFORM ||
        p->dist == MT_HPO_LOGNORMAL || p->dist == MT_HPO_QLOGNORMAL)
        return "log";
    return "linear";
}

static bool bounded(const mt_hpo_param *p)
{
    return p->dist == MT_HPO_UNIFORM || p->dist == MT_HPO_QUNIFORM ||
           p->dist == MT_HPO_LOGUNIFORM || p->dist == MT_HPO_QLOGUNIFORM ||
           p->dist == MT_HPO_INTUNIFORM || p->dist == MT_HPO_RANDINT;
}

/* Whether every option of a categorical parameter is a number (RANDINT: always). */
static bool numeric_options(const mt_hpo_param *p)
{
    if (p->dist == MT_HPO_RANDINT) return true;
    if (!p->options) return false;
    for (int32_t k = 0; k < p->n_options; k++)
        if (p->options[k]->kind != MT_CFG_INT && p->options[k]->kind != MT_CFG_FLOAT) return false;
    return true;
}

static void option_text(const mt_hpo_param *p, int32_t k, char *buf, size_t cap)
{
    if (p->dist == MT_HPO_RANDINT || !p->options) {
        char f[40];
        snprintf(buf, cap, "%s", mt__hpo_fmt(mt__hpo_option_number(p, k), f));
    } else {
        mt__hpo_option_text(p->options[k], buf, cap);
    }
}

static mt_status space_json(const mt__sweep *sw, mt_strbuf *sb)
{
    const mt_sweep_config *c = &sw->cfg;
    mt_strbuf_append(sb, "{\"sweep\":");
    mt__sw_json_str(sb, c->name);
    mt_strbuf_append(sb, ",\"objective\":");
    mt__sw_json_str(sb, c->objective.channel ? c->objective.channel : c->objective.expression);
    mt_strbuf_appendf(sb, ",\"mode\":\"%s\",\"params\":[", c->objective.maximize ? "max" : "min");
    for (int32_t i = 0; i < mt_hpo_space_count(sw->space); i++) {
        const mt_hpo_param *p = mt_hpo_space_param(sw->space, i);
        const char *scale = param_scale(p);
        mt_strbuf_append(sb, i ? ",\n {\"label\":" : "\n {\"label\":");
        mt__sw_json_str(sb, p->label);
        mt_strbuf_append(sb, ",\"name\":");
        mt__sw_json_str(sb, p->name);
        mt_strbuf_appendf(sb, ",\"dist\":\"%s\",\"scale\":\"%s\",\"int\":%s,\"low\":",
                          mt_hpo_dist_name(p->dist), scale, p->is_int ? "true" : "false");
        mt__sw_json_num(sb, bounded(p) ? p->a : NAN);
        mt_strbuf_append(sb, ",\"high\":");
        mt__sw_json_num(sb, bounded(p) ? p->b : NAN);
        if (!strcmp(scale, "categorical")) {
            /* journal values are option indices; RANDINT's are the integers (first = low) */
            mt_strbuf_appendf(sb, ",\"first\":%lld,\"options\":[",
                              p->dist == MT_HPO_RANDINT ? (long long)p->a : 0LL);
            for (int32_t k = 0; k < p->n_options; k++) {
                char t[160];
                option_text(p, k, t, sizeof t);
                if (k) mt_strbuf_append(sb, ",");
                mt__sw_json_str(sb, t);
            }
            mt_strbuf_append(sb, "]");
        }
        mt_strbuf_append(sb, "}");
    }
    mt_strbuf_append(sb, "]}\n");
    return mt_strbuf_status(sb);
}

static void warn(mt_status st, const char *what)
{
    if (!st) return;
    mt_log(MT_LOG_WARN, "sweep: %s: %s (the sweep goes on)", what, mt_last_error());
    mt_err_clear();
}

/* The experiment file's records (file version, experiment) into sb. */
static mt_status experiment(const mt__sweep *sw, mt_strbuf *sb)
{
    int32_t n = mt_hpo_space_count(sw->space);
    mt_tb_hparam_info *hp = mt_calloc((size_t)n + 1, sizeof *hp);
    char **desc = mt_calloc((size_t)n + 1, sizeof *desc);
    char ***texts = mt_calloc((size_t)n + 1, sizeof *texts);
    double **nums = mt_calloc((size_t)n + 1, sizeof *nums);
    mt_status st = hp && desc && texts && nums ? MT_OK : mt_err_set(MT_ERR_NOMEM, "hparams");
    for (int32_t i = 0; i < n && !st; i++) {
        const mt_hpo_param *p = mt_hpo_space_param(sw->space, i);
        mt_tb_hparam_info *h = &hp[i];
        h->name = p->name;
        h->display_name = p->label;
        mt_strbuf d;
        mt_strbuf_init(&d);
        char f1[40], f2[40];
        mt_strbuf_appendf(&d, "%s %s", p->label, mt_hpo_dist_name(p->dist));
        if (!mt_hpo_dist_is_categorical(p->dist))
            mt_strbuf_appendf(&d, " [%s, %s]", mt__hpo_fmt(p->a, f1), mt__hpo_fmt(p->b, f2));
        if (p->parent >= 0)
            mt_strbuf_appendf(&d, " (when %s is option %d)",
                              mt_hpo_space_param(sw->space, p->parent)->name,
                              (int)p->parent_option);
        st = mt_strbuf_status(&d);
        desc[i] = st ? NULL : mt_strbuf_take(&d);
        mt_strbuf_deinit(&d);
        h->description = desc[i];
        if (mt_hpo_dist_is_categorical(p->dist) && p->n_options <= 1000) {
            h->n_values = p->n_options;
            if (numeric_options(p)) {
                h->type = MT_TB_HPARAM_FLOAT;
                if (!(nums[i] = mt_calloc((size_t)p->n_options, sizeof *nums[i]))) break;
                for (int32_t k = 0; k < p->n_options; k++)
                    nums[i][k] = mt__hpo_option_number(p, k);
                h->numbers = nums[i];
            } else {
                h->type = MT_TB_HPARAM_STRING;
                if (!(texts[i] = mt_calloc((size_t)p->n_options, sizeof *texts[i]))) break;
                for (int32_t k = 0; k < p->n_options; k++) {
                    char t[160];
                    option_text(p, k, t, sizeof t);
                    if (!(texts[i][k] = mt_strdup(t))) break;
                }
                h->strings = (const char *const *)texts[i];
            }
        } else {
            h->type = MT_TB_HPARAM_FLOAT;
            h->interval = bounded(p);
            h->min = p->a;
            h->max = p->dist == MT_HPO_RANDINT ? p->b - 1 : p->b;
        }
    }
    for (int32_t i = 0; i < n && !st; i++) /* an allocation above that failed */
        if ((hp[i].n_values > 0 && !hp[i].numbers && !hp[i].strings) || !desc[i])
            st = mt_err_set(MT_ERR_NOMEM, "hparams");
        else if (hp[i].strings)
            for (int32_t k = 0; k < hp[i].n_values && !st; k++)
                if (!hp[i].strings[k]) st = mt_err_set(MT_ERR_NOMEM, "hparams");
    const mt_sweep_config *c = &sw->cfg;
    char objdesc[600];
    snprintf(objdesc, sizeof objdesc, "the trial's objective: %s, %s over epochs, %s",
             c->objective.channel ? c->objective.channel : c->objective.expression,
             c->objective.reduce_last ? "last value" : "best value",
             c->objective.maximize ? "maximized" : "minimized");
    mt_tb_metric_info m[2] = {{OBJECTIVE_TAG, NULL, "objective", objdesc},
                              {c->objective.channel, NULL, c->objective.channel,
                               "the objective channel per epoch (the dashboard shows its last "
                               "value)"}};
    if (!st) mt_strbuf_clear(sb);
    if (!st) st = mt_tb_record_file_version(sb);
    if (!st)
        st = mt_tb_record_hparams_experiment(sb, c->name, NULL, wall_now(), n, hp,
                                             c->objective.channel ? 2 : 1, m);
    for (int32_t i = 0; i < n && texts; i++) {
        for (int32_t k = 0; texts[i] && k < hp[i].n_values; k++)
            mt_free(texts[i][k]);
        mt_free(texts[i]);
        if (nums) mt_free(nums[i]);
        if (desc) mt_free(desc[i]);
    }
    mt_free(hp);
    mt_free(desc);
    mt_free(texts);
    mt_free(nums);
    return st;
}

void mt__sw_write_space_info(const mt__sweep *sw)
{
    char path[1100];
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    mt_status st = mt_mkdirs(sw->dir, 0755);
    if (!st) st = space_json(sw, &sb);
    snprintf(path, sizeof path, "%s/space.json", sw->dir);
    if (!st) st = mt_file_write_atomic(path, sb.data, sb.len, 0644);
    warn(st, "space.json");
    st = experiment(sw, &sb);
    snprintf(path, sizeof path, "%s/%s", sw->dir, HPARAMS_FILE);
    if (!st) st = mt_file_write_atomic(path, sb.data, sb.len, 0644);
    warn(st, "TensorBoard hparams experiment");
    mt_strbuf_deinit(&sb);
}

static mt_status append_trial(const mt__sweep *sw, int64_t id, const mt_strbuf *sb)
{
    char dir[1024], path[1100];
    mt__sw_trial_dir(sw, id, dir, sizeof dir);
    snprintf(path, sizeof path, "%s/%s", dir, HPARAMS_FILE);
    mt_status st = mt_mkdirs(dir, 0755);
    if (!st) st = mt_tb_append_records(path, sb);
    return st;
}

/* Appends the session_start_info record of trial id at `start` to sb. */
static mt_status session_start(const mt__sweep *sw, int64_t id, const mt_hpo_point *p, double start,
                               mt_strbuf *sb)
{
    int32_t n = mt_hpo_space_count(sw->space);
    mt_tb_hparam_value *v = mt_calloc((size_t)n + 1, sizeof *v);
    char(*text)[160] = mt_calloc((size_t)n + 1, sizeof *text);
    mt_status st = v && text ? MT_OK : mt_err_set(MT_ERR_NOMEM, "hparams");
    int32_t k = 0;
    for (int32_t i = 0; i < n && !st; i++) {
        if (!p->active[i] || isnan(p->values[i])) continue;
        const mt_hpo_param *prm = mt_hpo_space_param(sw->space, i);
        v[k].name = prm->name;
        v[k].type = MT_TB_HPARAM_FLOAT;
        v[k].number = p->values[i];
        if (mt_hpo_dist_is_categorical(prm->dist) && prm->dist != MT_HPO_RANDINT) {
            int32_t o = (int32_t)p->values[i];
            if (numeric_options(prm)) {
                v[k].number = mt__hpo_option_number(prm, o);
            } else {
                option_text(prm, o, text[k], sizeof text[k]);
                v[k].type = MT_TB_HPARAM_STRING;
                v[k].string = text[k];
            }
        }
        k++;
    }
    char group[64];
    snprintf(group, sizeof group, "trial_%04lld", (long long)id);
    if (!st) st = mt_tb_record_hparams_session_start(sb, group, start, k, v);
    mt_free(v);
    mt_free(text);
    return st;
}

void mt__sw_tb_trial_start(const mt__sweep *sw, int64_t id, const mt_hpo_point *p)
{
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    mt_status st = session_start(sw, id, p, wall_now(), &sb);
    if (!st) st = append_trial(sw, id, &sb);
    warn(st, "TensorBoard hparams session");
    mt_strbuf_deinit(&sb);
}

void mt__sw_tb_trial_end(const mt__sweep *sw, int64_t id, const mt_hpo_point *p,
                         mt_hpo_status status, double value, int64_t epochs, double seconds)
{
    double now = wall_now();
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    mt_status st = mt_tb_record_file_version(&sb);
    if (!st) st = session_start(sw, id, p, isfinite(seconds) ? now - seconds : now, &sb);
    if (!st && status != MT_HPO_FAILED && isfinite(value))
        st = mt_tb_record_scalar(&sb, epochs > 0 ? epochs : 0, OBJECTIVE_TAG, value);
    mt_tb_session_status ts = status == MT_HPO_OK       ? MT_TB_STATUS_SUCCESS
                              : status == MT_HPO_FAILED ? MT_TB_STATUS_FAILURE
                                                        : MT_TB_STATUS_UNKNOWN;
    if (!st) st = mt_tb_record_hparams_session_end(&sb, ts, now);
    char dir[1024], path[1100];
    mt__sw_trial_dir(sw, id, dir, sizeof dir);
    snprintf(path, sizeof path, "%s/%s", dir, HPARAMS_FILE);
    if (!st) st = mt_mkdirs(dir, 0755);
    if (!st) st = mt_file_write_atomic(path, sb.data, sb.len, 0644);
    warn(st, "TensorBoard hparams session");
    mt_strbuf_deinit(&sb);
}
