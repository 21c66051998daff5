/* Points and trials: the Philox stream all draws come from, points of a space (prior sampling,
 * activity of conditional parameters, checks, JSON for the journal and reading points back
 * from config nodes) and the history of trials that samplers and pruners read. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hyperopt_impl.h"

/* ---------------------------------------------------------------- random stream */

void mt__hpo_rng_init(mt__hpo_rng *r, uint64_t seed, int64_t trial_id, uint32_t purpose)
{
    uint64_t k = mt_hash64_combine(mt_hash64_combine(seed, (uint64_t)trial_id), purpose);
    r->key[0] = (uint32_t)k;
    r->key[1] = (uint32_t)(k >> 32);
    r->counter = 0;
    r->used = 4;
}

static uint32_t next_u32(mt__hpo_rng *r)
{
    if (r->used == 4) {
        uint32_t c[4] = {(uint32_t)r->counter, (uint32_t)(r->counter >> 32), 0x68707421u, 0};
        mt_philox4x32(c, r->key, r->buf);
        r->counter++;
        r->used = 0;
    }
    return r->buf[r->used++];
}

double mt__hpo_rng_uniform(mt__hpo_rng *r)
{
    uint32_t hi = next_u32(r), lo = next_u32(r);
    return mt_u64_to_unit_f64(hi, lo);
}

double mt__hpo_rng_normal(mt__hpo_rng *r)
{
    double u1 = mt__hpo_rng_uniform(r), u2 = mt__hpo_rng_uniform(r);
    return sqrt(-2.0 * log1p(-u1)) * cos(2.0 * M_PI * u2);
}

int32_t mt__hpo_rng_categorical(mt__hpo_rng *r, const double *p, int32_t n)
{
    double sum = 0;
    for (int32_t k = 0; k < n; k++)
        sum += p[k];
    double u = mt__hpo_rng_uniform(r) * sum, c = 0;
    for (int32_t k = 0; k < n; k++) {
        c += p[k];
        if (u < c && p[k] > 0) return k;
    }
    for (int32_t k = n - 1; k >= 0; k--)
        if (p[k] > 0) return k;
    return 0;
}

/* ---------------------------------------------------------------- points */

mt_status mt_hpo_point_init(mt_hpo_point *p, const mt_hpo_space *s)
{
    memset(p, 0, sizeof *p);
    int32_t n = mt_hpo_space_count(s);
    p->values = mt_malloc(sizeof *p->values * (size_t)(n ? n : 1));
    p->active = mt_calloc((size_t)(n ? n : 1), sizeof *p->active);
    if (!p->values || !p->active) {
        mt_hpo_point_clear(p);
        return mt_err_set(MT_ERR_NOMEM, "hyperopt: point");
    }
    p->n = n;
    for (int32_t i = 0; i < n; i++)
        p->values[i] = NAN;
    return MT_OK;
}

void mt_hpo_point_clear(mt_hpo_point *p)
{
    if (!p) return;
    mt_free(p->values);
    mt_free(p->active);
    memset(p, 0, sizeof *p);
}

mt_status mt_hpo_point_copy(mt_hpo_point *dst, const mt_hpo_point *src)
{
    if (dst->n != src->n)
        return mt_err_set(MT_ERR_INVALID, "hyperopt: copying a point of %d values into one of %d",
                          (int)src->n, (int)dst->n);
    if (src->n) {
        memcpy(dst->values, src->values, sizeof *dst->values * (size_t)src->n);
        memcpy(dst->active, src->active, sizeof *dst->active * (size_t)src->n);
    }
    return MT_OK;
}

bool mt_hpo_point_equal(const mt_hpo_point *a, const mt_hpo_point *b)
{
    if (a->n != b->n) return false;
    for (int32_t i = 0; i < a->n; i++) {
        if (a->active[i] != b->active[i]) return false;
        if (a->active[i] && a->values[i] != b->values[i]) return false;
    }
    return true;
}

bool mt__hpo_param_active(const mt_hpo_space *s, const mt_hpo_point *p, int32_t i)
{
    int32_t par = s->params[i].parent;
    if (par < 0) return true;
    if (!p->active[par]) return false;
    double v = p->values[par];
    return v == v && (int32_t)v == s->params[i].parent_option;
}

void mt_hpo_point_update_active(const mt_hpo_space *s, mt_hpo_point *p)
{
    for (int32_t i = 0; i < s->n && i < p->n; i++) {
        p->active[i] = mt__hpo_param_active(s, p, i);
        if (!p->active[i]) p->values[i] = NAN;
    }
}

double mt__hpo_sample_param(const mt_hpo_param *p, mt__hpo_rng *r)
{
    double u, x;
    switch (p->dist) {
    case MT_HPO_UNIFORM:
        return p->a + (p->b - p->a) * mt__hpo_rng_uniform(r);
    case MT_HPO_QUNIFORM:
    case MT_HPO_INTUNIFORM:
        return mt__hpo_quantize(p->a + (p->b - p->a) * mt__hpo_rng_uniform(r), p->q);
    case MT_HPO_LOGUNIFORM:
    case MT_HPO_QLOGUNIFORM:
        u = mt__hpo_rng_uniform(r);
        x = exp(log(p->a) + (log(p->b) - log(p->a)) * u);
        return p->dist == MT_HPO_QLOGUNIFORM ? mt__hpo_quantize(x, p->q) : x;
    case MT_HPO_NORMAL:
    case MT_HPO_QNORMAL:
        x = p->a + p->b * mt__hpo_rng_normal(r);
        return p->dist == MT_HPO_QNORMAL ? mt__hpo_quantize(x, p->q) : x;
    case MT_HPO_LOGNORMAL:
    case MT_HPO_QLOGNORMAL:
        x = exp(p->a + p->b * mt__hpo_rng_normal(r));
        return p->dist == MT_HPO_QLOGNORMAL ? mt__hpo_quantize(x, p->q) : x;
    case MT_HPO_RANDINT: {
        int64_t k = (int64_t)(mt__hpo_rng_uniform(r) * p->n_options);
        if (k >= p->n_options) k = p->n_options - 1;
        return p->a + (double)k;
    }
    case MT_HPO_CHOICE:
    case MT_HPO_GRID: {
        int32_t k = (int32_t)(mt__hpo_rng_uniform(r) * p->n_options);
        return k >= p->n_options ? p->n_options - 1 : k;
    }
    case MT_HPO_PCHOICE:
        return mt__hpo_rng_categorical(r, p->probs, p->n_options);
    default:
        return NAN;
    }
}

mt_status mt_hpo_sample_prior(const mt_hpo_space *s, uint64_t seed, int64_t trial_id,
                              mt_hpo_point *out)
{
    if (out->n != s->n)
        return mt_err_set(MT_ERR_INVALID, "hyperopt: point of %d values for a space of %d",
                          (int)out->n, (int)s->n);
    mt__hpo_rng r;
    mt__hpo_rng_init(&r, seed, trial_id, MT__HPO_RNG_PRIOR);
    for (int32_t i = 0; i < s->n; i++) {
        out->active[i] = mt__hpo_param_active(s, out, i);
        out->values[i] = out->active[i] ? mt__hpo_sample_param(&s->params[i], &r) : NAN;
    }
    return MT_OK;
}

static bool integral(double v)
{
    return v == nearbyint(v);
}

static bool value_ok(const mt_hpo_param *p, double v)
{
    bool ok = isfinite(v);
    if (ok && p->is_int) ok = integral(v);
    if (ok) {
        switch (p->dist) {
        case MT_HPO_UNIFORM:
        case MT_HPO_LOGUNIFORM:
        case MT_HPO_INTUNIFORM:
            ok = v >= p->a && v <= p->b;
            break;
        case MT_HPO_QUNIFORM:
        case MT_HPO_QLOGUNIFORM:
            ok =
                v >= p->a - p->q && v <= p->b + p->q && fabs(v / p->q - nearbyint(v / p->q)) < 1e-9;
            break;
        case MT_HPO_QNORMAL:
        case MT_HPO_QLOGNORMAL:
            ok = fabs(v / p->q - nearbyint(v / p->q)) < 1e-9 &&
                 (p->dist == MT_HPO_QNORMAL || v >= 0);
            break;
        case MT_HPO_LOGNORMAL:
            ok = v > 0;
            break;
        case MT_HPO_RANDINT:
            ok = integral(v) && v >= p->a && v < p->b;
            break;
        case MT_HPO_CHOICE:
        case MT_HPO_PCHOICE:
        case MT_HPO_GRID:
            ok = integral(v) && v >= 0 && v < p->n_options;
            break;
        default:
            break;
        }
    }
    return ok;
}

static mt_status check_value(const mt_hpo_param *p, double v)
{
    if (value_ok(p, v)) return MT_OK;
    return mt_err_set(MT_ERR_INVALID, "hyperopt: %.17g is not a value of '%s' (%s)", v, p->label,
                      mt_hpo_dist_name(p->dist));
}

mt_status mt_hpo_point_check(const mt_hpo_space *s, const mt_hpo_point *p)
{
    if (p->n != s->n)
        return mt_err_set(MT_ERR_INVALID, "hyperopt: point of %d values for a space of %d",
                          (int)p->n, (int)s->n);
    for (int32_t i = 0; i < s->n; i++) {
        bool act = mt__hpo_param_active(s, p, i);
        if (act != p->active[i])
            return mt_err_set(MT_ERR_INVALID, "hyperopt: '%s' is %s but its choice says %s",
                              s->params[i].label, p->active[i] ? "active" : "inactive",
                              act ? "active" : "inactive");
        if (act) {
            mt_status st = check_value(&s->params[i], p->values[i]);
            if (st) return st;
        }
    }
    return MT_OK;
}

const char *mt__hpo_fmt(double v, char buf[40])
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, 40, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    return buf;
}

static void append_number(mt_strbuf *sb, double v, bool is_int)
{
    if (is_int && fabs(v) < 9.2e18) {
        mt_strbuf_appendf(sb, "%lld", (long long)v);
        return;
    }
    if (!isfinite(v)) {
        mt_strbuf_append(sb, v != v ? "NaN" : v > 0 ? "Infinity" : "-Infinity");
        return;
    }
    char buf[44];
    mt__hpo_fmt(v, buf);
    /* keep it a float when read back */
    if (!strpbrk(buf, ".eEn")) strcat(buf, ".0");
    mt_strbuf_append(sb, buf);
}

static void append_json_string(mt_strbuf *sb, const char *s)
{
    mt_strbuf_append(sb, "\"");
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            mt_strbuf_appendf(sb, "\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            mt_strbuf_appendf(sb, "\\u%04x", (unsigned)*s);
        else
            mt_strbuf_appendn(sb, s, 1);
    }
    mt_strbuf_append(sb, "\"");
}

mt_status mt_hpo_point_to_json(const mt_hpo_space *s, const mt_hpo_point *p, mt_strbuf *sb)
{
    mt_strbuf_append(sb, "{");
    bool first = true;
    for (int32_t i = 0; i < s->n && i < p->n; i++) {
        if (!p->active[i]) continue;
        const mt_hpo_param *prm = &s->params[i];
        if (!first) mt_strbuf_append(sb, ", ");
        first = false;
        append_json_string(sb, prm->label);
        mt_strbuf_append(sb, ": ");
        append_number(sb, p->values[i], prm->is_int || mt_hpo_dist_is_categorical(prm->dist));
    }
    mt_strbuf_append(sb, "}");
    return mt_strbuf_status(sb);
}

mt_status mt_hpo_point_describe(const mt_hpo_space *s, const mt_hpo_point *p, mt_strbuf *sb)
{
    bool first = true;
    for (int32_t i = 0; i < s->n && i < p->n; i++) {
        if (!p->active[i]) continue;
        const mt_hpo_param *prm = &s->params[i];
        mt_strbuf_appendf(sb, "%s%s=", first ? "" : " ", prm->name);
        first = false;
        if (prm->options) {
            char buf[96];
            int32_t k = (int32_t)p->values[i];
            mt__hpo_option_text(k >= 0 && k < prm->n_options ? prm->options[k] : NULL, buf,
                                sizeof buf);
            mt_strbuf_append(sb, buf);
        } else if (prm->is_int || prm->dist == MT_HPO_RANDINT) {
            mt_strbuf_appendf(sb, "%lld", (long long)p->values[i]);
        } else {
            mt_strbuf_appendf(sb, "%.6g", p->values[i]);
        }
    }
    return mt_strbuf_status(sb);
}

/* Option index whose node equals the given scalar (component name for !obj options). */
static int32_t match_option(const mt_hpo_param *prm, const mt_cfg_node *v)
{
    for (int32_t k = 0; k < prm->n_options; k++) {
        const mt_cfg_node *o = prm->options[k];
        if (!o) {
            if (v->kind == MT_CFG_NULL) return k;
            continue;
        }
        bool num_o = o->kind == MT_CFG_INT || o->kind == MT_CFG_FLOAT;
        bool num_v = v->kind == MT_CFG_INT || v->kind == MT_CFG_FLOAT;
        if (num_o && num_v && o->f == v->f) return k;
        if (o->kind == MT_CFG_STRING && v->kind == MT_CFG_STRING && strcmp(o->str, v->str) == 0)
            return k;
        if (o->kind == MT_CFG_BOOL && v->kind == MT_CFG_BOOL && o->b == v->b) return k;
        if (o->kind == MT_CFG_NULL && v->kind == MT_CFG_NULL) return k;
        if (o->kind == MT_CFG_OBJ && v->kind == MT_CFG_STRING && strcmp(o->tag, v->str) == 0)
            return k;
    }
    /* no option equals it: an option index, when no option is itself a number */
    for (int32_t k = 0; k < prm->n_options; k++) {
        const mt_cfg_node *o = prm->options[k];
        if (o && (o->kind == MT_CFG_INT || o->kind == MT_CFG_FLOAT)) return -1;
    }
    if (v->kind == MT_CFG_INT && v->i >= 0 && v->i < prm->n_options) return (int32_t)v->i;
    return -1;
}

mt_status mt_hpo_point_from_cfg(const mt_hpo_space *s, const mt_cfg_node *map,
                                mt_hpo_point_keys keys, mt_hpo_point *inout)
{
    if (!map || map->kind != MT_CFG_MAP)
        return mt_cfg_error(MT_ERR_INVALID, map ? map->loc : (mt_cfg_loc){0},
                            "a point must be a mapping {label: value}");
    if (inout->n != s->n)
        return mt_err_set(MT_ERR_INVALID, "hyperopt: point of %d values for a space of %d",
                          (int)inout->n, (int)s->n);
    mt_status st = MT_OK;
    for (int32_t j = 0; j < map->n && st == MT_OK; j++) {
        const char *key = map->keys[j];
        const mt_cfg_node *v = map->items[j];
        int32_t i = -1;
        for (int32_t t = 0; t < s->n && i < 0; t++)
            if (strcmp(s->params[t].label, key) == 0) i = t;
        if (i < 0 && keys == MT_HPO_KEYS_USER) i = mt_hpo_space_find(s, key);
        if (i < 0) {
            st = mt_cfg_error(MT_ERR_INVALID, map->key_locs[j],
                              "'%s' is not a parameter of the "
                              "space (mltrain --dry-run lists them)",
                              key);
            break;
        }
        const mt_hpo_param *prm = &s->params[i];
        double x = NAN;
        bool categorical = prm->options != NULL;
        if (categorical && keys == MT_HPO_KEYS_USER) {
            int32_t k = v ? match_option(prm, v) : -1;
            if (k < 0) {
                st = mt_cfg_error(MT_ERR_INVALID, v ? v->loc : map->key_locs[j],
                                  "'%s': the value matches none of the %d options", key,
                                  (int)prm->n_options);
                break;
            }
            x = k;
        } else if (!v || (v->kind != MT_CFG_INT && v->kind != MT_CFG_FLOAT)) {
            st = mt_cfg_error(MT_ERR_INVALID, v ? v->loc : map->key_locs[j], "'%s' needs a number",
                              key);
            break;
        } else {
            x = v->f;
        }
        if (!value_ok(prm, x)) {
            st = mt_cfg_error(MT_ERR_INVALID, v ? v->loc : map->key_locs[j],
                              "%.17g is not a value of '%s' (%s)", x, prm->label,
                              mt_hpo_dist_name(prm->dist));
            break;
        }
        inout->values[i] = x;
    }
    if (st == MT_OK) {
        for (int32_t i = 0; i < s->n; i++) {
            bool act = mt__hpo_param_active(s, inout, i);
            inout->active[i] = act;
            if (!act) {
                inout->values[i] = NAN;
            } else if (inout->values[i] != inout->values[i]) {
                st = mt_cfg_error(MT_ERR_INVALID, map->loc,
                                  "no value for '%s' (active under the given choices)",
                                  s->params[i].label);
                break;
            }
        }
    }
    return st;
}

/* ---------------------------------------------------------------- history */

struct mt_hpo_history {
    const mt_hpo_space *space;
    int32_t n, cap;
    mt_hpo_trial *trials; /* sorted by id */
};

static const char *const status_names[] = {"running", "ok", "failed", "pruned"};
_Static_assert(sizeof status_names / sizeof status_names[0] == MT_HPO_STATUS_COUNT, "status");

const char *mt_hpo_status_name(mt_hpo_status st)
{
    return (unsigned)st < MT_HPO_STATUS_COUNT ? status_names[st] : "invalid";
}

mt_status mt_hpo_history_new(mt_hpo_history **out, const mt_hpo_space *s)
{
    *out = mt_calloc(1, sizeof **out);
    if (!*out) return mt_err_set(MT_ERR_NOMEM, "hyperopt: history");
    (*out)->space = s;
    return MT_OK;
}

void mt_hpo_history_free(mt_hpo_history *h)
{
    if (!h) return;
    for (int32_t i = 0; i < h->n; i++) {
        mt_hpo_point_clear(&h->trials[i].point);
        mt_free(h->trials[i].steps);
        mt_free(h->trials[i].values);
    }
    mt_free(h->trials);
    mt_free(h);
}

static int32_t find_index(const mt_hpo_history *h, int64_t id)
{
    int32_t lo = 0, hi = h->n;
    while (lo < hi) {
        int32_t mid = lo + (hi - lo) / 2;
        if (h->trials[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

mt_status mt_hpo_history_add(mt_hpo_history *h, int64_t id, const mt_hpo_point *p)
{
    int32_t at = find_index(h, id);
    if (at < h->n && h->trials[at].id == id)
        return mt_err_set(MT_ERR_INVALID, "hyperopt: trial %lld is already in the history",
                          (long long)id);
    if (h->n == h->cap) {
        int32_t cap = h->cap ? 2 * h->cap : 64;
        mt_hpo_trial *t = mt_realloc(h->trials, sizeof *t * (size_t)cap);
        if (!t) return mt_err_set(MT_ERR_NOMEM, "hyperopt: history");
        h->trials = t;
        h->cap = cap;
    }
    mt_hpo_trial tr;
    memset(&tr, 0, sizeof tr);
    tr.id = id;
    tr.status = MT_HPO_RUNNING;
    tr.loss = NAN;
    mt_status st = mt_hpo_point_init(&tr.point, h->space);
    if (st == MT_OK) st = mt_hpo_point_copy(&tr.point, p);
    if (st) {
        mt_hpo_point_clear(&tr.point);
        return st;
    }
    memmove(&h->trials[at + 1], &h->trials[at], sizeof tr * (size_t)(h->n - at));
    h->trials[at] = tr;
    h->n++;
    return MT_OK;
}

static mt_hpo_trial *find_trial(mt_hpo_history *h, int64_t id)
{
    int32_t at = find_index(h, id);
    return at < h->n && h->trials[at].id == id ? &h->trials[at] : NULL;
}

mt_status mt_hpo_history_report(mt_hpo_history *h, int64_t id, int64_t step, double value)
{
    mt_hpo_trial *t = find_trial(h, id);
    if (!t) return mt_err_set(MT_ERR_NOT_FOUND, "hyperopt: no trial %lld", (long long)id);
    if (t->n_reports > 0 && step <= t->steps[t->n_reports - 1]) {
        if (step == t->steps[t->n_reports - 1]) {
            t->values[t->n_reports - 1] = value;
            return MT_OK;
        }
        return mt_err_set(MT_ERR_INVALID, "hyperopt: trial %lld reported step %lld after %lld",
                          (long long)id, (long long)step, (long long)t->steps[t->n_reports - 1]);
    }
    int64_t *s = mt_realloc(t->steps, sizeof *s * (size_t)(t->n_reports + 1));
    if (!s) return mt_err_set(MT_ERR_NOMEM, "hyperopt: report");
    t->steps = s;
    double *v = mt_realloc(t->values, sizeof *v * (size_t)(t->n_reports + 1));
    if (!v) return mt_err_set(MT_ERR_NOMEM, "hyperopt: report");
    t->values = v;
    t->steps[t->n_reports] = step;
    t->values[t->n_reports] = value;
    t->n_reports++;
    return MT_OK;
}

mt_status mt_hpo_history_finish(mt_hpo_history *h, int64_t id, mt_hpo_status st, double loss)
{
    mt_hpo_trial *t = find_trial(h, id);
    if (!t) return mt_err_set(MT_ERR_NOT_FOUND, "hyperopt: no trial %lld", (long long)id);
    if ((unsigned)st >= MT_HPO_STATUS_COUNT)
        return mt_err_set(MT_ERR_INVALID, "hyperopt: invalid trial status %d", (int)st);
    if (st == MT_HPO_OK && !isfinite(loss)) st = MT_HPO_FAILED;
    t->status = st;
    t->loss = st == MT_HPO_OK ? loss : NAN;
    return MT_OK;
}

int32_t mt_hpo_history_count(const mt_hpo_history *h)
{
    return h ? h->n : 0;
}

const mt_hpo_trial *mt_hpo_history_at(const mt_hpo_history *h, int32_t i)
{
    return h && i >= 0 && i < h->n ? &h->trials[i] : NULL;
}

const mt_hpo_trial *mt_hpo_history_find(const mt_hpo_history *h, int64_t id)
{
    return h ? find_trial((mt_hpo_history *)h, id) : NULL;
}

const mt_hpo_trial *mt_hpo_history_best(const mt_hpo_history *h)
{
    const mt_hpo_trial *best = NULL;
    for (int32_t i = 0; h && i < h->n; i++) {
        const mt_hpo_trial *t = &h->trials[i];
        if (t->status == MT_HPO_OK && (!best || t->loss < best->loss)) best = t;
    }
    return best;
}
