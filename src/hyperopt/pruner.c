/* Pruners: decide whether a running trial continues after its latest intermediate loss.
 * Median stopping follows Optuna's MedianPruner (the trial's best value so far against the
 * median of OK trials at the same step). ASHA is asynchronous successive halving in its
 * stopping form: rungs at min_resource * eta^(k + rate) epochs; at a rung the trial continues
 * when it is in the top floor(n / eta) of the n values recorded at that rung so far (itself
 * included), or, while floor(n / eta) is 0, when it is the best so far (Optuna's
 * SuccessiveHalvingPruner rule; docs/hyperopt.md says why). Both are functions of the history
 * alone, so a coordinator restarted from its journal decides the same way. */
#include <stdlib.h>
#include <string.h>

#include "hyperopt_impl.h"

static const char *const pruner_names[] = {"none", "median", "asha"};
_Static_assert(sizeof pruner_names / sizeof pruner_names[0] == MT_HPO_PRUNER_COUNT, "pruners");

const char *mt_hpo_pruner_name(mt_hpo_pruner_type t)
{
    return (unsigned)t < MT_HPO_PRUNER_COUNT ? pruner_names[t] : "invalid";
}

void mt_hpo_pruner_options_init(mt_hpo_pruner_options *o)
{
    memset(o, 0, sizeof *o);
    o->type = MT_HPO_PRUNER_NONE;
    o->n_startup_trials = 5;
    o->n_warmup_steps = 0;
    o->interval_steps = 1;
    o->n_min_trials = 1;
    o->min_resource = 1;
    o->reduction_factor = 3;
    o->min_early_stopping_rate = 0;
    o->max_resource = 0;
}

struct mt_hpo_pruner {
    mt_hpo_pruner_options o;
};

mt_status mt_hpo_pruner_new(mt_hpo_pruner **out, const mt_hpo_pruner_options *o)
{
    *out = NULL;
    mt_hpo_pruner_options def;
    if (!o) {
        mt_hpo_pruner_options_init(&def);
        o = &def;
    }
    if ((unsigned)o->type >= MT_HPO_PRUNER_COUNT)
        return mt_err_set(MT_ERR_INVALID, "pruner: unknown type %d", (int)o->type);
    if (o->type == MT_HPO_PRUNER_MEDIAN && (o->n_startup_trials < 0 || o->n_warmup_steps < 0 ||
                                            o->interval_steps < 1 || o->n_min_trials < 1))
        return mt_err_set(MT_ERR_INVALID, "median pruner: n_startup_trials >= 0, n_warmup_steps "
                                          ">= 0, interval_steps >= 1, n_min_trials >= 1");
    if (o->type == MT_HPO_PRUNER_ASHA && (o->min_resource < 1 || o->reduction_factor < 2 ||
                                          o->min_early_stopping_rate < 0 || o->max_resource < 0))
        return mt_err_set(MT_ERR_INVALID, "asha pruner: min_resource >= 1, reduction_factor >= 2, "
                                          "min_early_stopping_rate >= 0, max_resource >= 0");
    mt_hpo_pruner *p = mt_calloc(1, sizeof *p);
    if (!p) return mt_err_set(MT_ERR_NOMEM, "pruner");
    p->o = *o;
    *out = p;
    return MT_OK;
}

void mt_hpo_pruner_free(mt_hpo_pruner *p)
{
    mt_free(p);
}

/* Rung k's step, or -1 past max_resource / overflow. */
static int64_t rung_step(const mt_hpo_pruner_options *o, int32_t k)
{
    int64_t r = o->min_resource;
    for (int32_t i = 0; i < k + o->min_early_stopping_rate; i++) {
        if (r > INT64_MAX / o->reduction_factor) return -1;
        r *= o->reduction_factor;
    }
    if (o->max_resource > 0 && r > o->max_resource) return -1;
    return r;
}

int32_t mt_hpo_pruner_rungs(const mt_hpo_pruner *p, int64_t limit, int64_t *out, int32_t cap)
{
    if (!p || p->o.type != MT_HPO_PRUNER_ASHA) return 0;
    int32_t n = 0;
    for (int32_t k = 0; n < cap; k++) {
        int64_t r = rung_step(&p->o, k);
        if (r < 0 || (limit > 0 && r > limit)) break;
        out[n++] = r;
    }
    return n;
}

/* The trial's value at rung step r: its loss at its first report with step >= r (NaN: none);
 * *at receives that report's index. */
static double rung_value(const mt_hpo_trial *t, int64_t r, int32_t *at)
{
    for (int32_t j = 0; j < t->n_reports; j++)
        if (t->steps[j] >= r) {
            *at = j;
            return t->values[j];
        }
    *at = -1;
    return NAN;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static mt_status asha_decide(const mt_hpo_pruner_options *o, const mt_hpo_history *h,
                             const mt_hpo_trial *t, bool *prune)
{
    int32_t last = t->n_reports - 1, nt = mt_hpo_history_count(h);
    double *vals = mt_malloc(sizeof *vals * (size_t)(nt ? nt : 1));
    if (!vals) return mt_err_set(MT_ERR_NOMEM, "asha");
    for (int32_t k = 0;; k++) {
        int64_t r = rung_step(o, k);
        if (r < 0 || r > t->steps[last]) break;
        int32_t at;
        double v = rung_value(t, r, &at);
        if (at != last) continue; /* this report is not the trial's entry into rung k */
        if (v != v) {
            *prune = true;
            break;
        }
        int32_t n = 0;
        for (int32_t j = 0; j < nt; j++) {
            const mt_hpo_trial *u = mt_hpo_history_at(h, j);
            int32_t a2;
            double x = rung_value(u, r, &a2);
            if (u == t)
                vals[n++] = v;
            else if (x == x)
                vals[n++] = x;
        }
        qsort(vals, (size_t)n, sizeof *vals, cmp_double);
        int32_t top = n / o->reduction_factor;
        bool ok = top == 0 ? v <= vals[0] : v <= vals[top - 1];
        if (!ok) {
            *prune = true;
            break;
        }
    }
    mt_free(vals);
    return MT_OK;
}

static mt_status median_decide(const mt_hpo_pruner_options *o, const mt_hpo_history *h,
                               const mt_hpo_trial *t, bool *prune)
{
    int32_t nt = mt_hpo_history_count(h), n_ok = 0;
    for (int32_t j = 0; j < nt; j++)
        n_ok += mt_hpo_history_at(h, j)->status == MT_HPO_OK;
    if (n_ok == 0 || n_ok < o->n_startup_trials) return MT_OK;
    int64_t step = t->steps[t->n_reports - 1];
    if (step < o->n_warmup_steps) return MT_OK;
    /* Optuna's _is_first_in_interval_step: the first report at or after the interval mark */
    if (o->interval_steps > 1) {
        int64_t mark = step - (step - o->n_warmup_steps) % o->interval_steps;
        for (int32_t j = 0; j < t->n_reports - 1; j++)
            if (t->steps[j] >= mark) return MT_OK;
    }
    double best = INFINITY;
    bool nan = false;
    for (int32_t j = 0; j < t->n_reports; j++) {
        double v = t->values[j];
        if (v != v)
            nan = true;
        else if (v < best)
            best = v;
    }
    if (nan && best == INFINITY) {
        *prune = true;
        return MT_OK;
    }
    double *vals = mt_malloc(sizeof *vals * (size_t)(nt ? nt : 1));
    if (!vals) return mt_err_set(MT_ERR_NOMEM, "median pruner");
    int32_t n = 0;
    for (int32_t j = 0; j < nt; j++) {
        const mt_hpo_trial *u = mt_hpo_history_at(h, j);
        if (u->status != MT_HPO_OK) continue;
        for (int32_t r = 0; r < u->n_reports; r++)
            if (u->steps[r] == step && u->values[r] == u->values[r]) vals[n++] = u->values[r];
    }
    if (n >= o->n_min_trials && n > 0) {
        qsort(vals, (size_t)n, sizeof *vals, cmp_double);
        double med = n % 2 ? vals[n / 2] : 0.5 * (vals[n / 2 - 1] + vals[n / 2]);
        *prune = best > med;
    }
    mt_free(vals);
    return MT_OK;
}

mt_status mt_hpo_pruner_decide(mt_hpo_pruner *p, const mt_hpo_history *h, int64_t id, bool *prune)
{
    *prune = false;
    const mt_hpo_trial *t = mt_hpo_history_find(h, id);
    if (!t) return mt_err_set(MT_ERR_NOT_FOUND, "pruner: no trial %lld", (long long)id);
    if (t->n_reports == 0) return MT_OK;
    switch (p->o.type) {
    case MT_HPO_PRUNER_MEDIAN:
        return median_decide(&p->o, h, t, prune);
    case MT_HPO_PRUNER_ASHA:
        return asha_decide(&p->o, h, t, prune);
    default:
        return MT_OK;
    }
}
