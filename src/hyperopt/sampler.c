/* Samplers: random search (prior draws keyed by (seed, trial id)), grid search (trial i is grid
 * point i of the Cartesian product of the finite parameters, conditional sub-grids included:
 * a categorical parameter contributes the sum over its options of the product of that option's
 * sub-grid), and TPE (tpe.c) with hyperopt's startup phase. */
#include <string.h>

#include "hyperopt_impl.h"

static const char *const algo_names[] = {"random", "grid", "tpe"};
_Static_assert(sizeof algo_names / sizeof algo_names[0] == MT_HPO_ALGO_COUNT, "algorithms");

const char *mt_hpo_algorithm_name(mt_hpo_algorithm a)
{
    return (unsigned)a < MT_HPO_ALGO_COUNT ? algo_names[a] : "invalid";
}

void mt_hpo_tpe_options_init(mt_hpo_tpe_options *o)
{
    o->n_startup = 20;
    o->n_ei_candidates = 24;
    o->gamma = 0.25;
    o->split = MT_HPO_SPLIT_SQRT;
    o->prior_weight = 1.0;
    o->linear_forgetting = 25;
    o->pending = MT_HPO_PENDING_WORST;
}

void mt_hpo_tpe_options_init_optuna(mt_hpo_tpe_options *o)
{
    mt_hpo_tpe_options_init(o);
    o->n_startup = 10;
    o->gamma = 0.1;
    o->split = MT_HPO_SPLIT_LINEAR;
}

void mt_hpo_sampler_options_init(mt_hpo_sampler_options *o)
{
    memset(o, 0, sizeof *o);
    o->algorithm = MT_HPO_ALGO_TPE;
    mt_hpo_tpe_options_init(&o->tpe);
}

struct mt_hpo_sampler {
    const mt_hpo_space *space;
    mt_hpo_sampler_options opts;
    /* grid: per parameter the number of sub-grid points; children lists */
    int64_t *count;     /* grid points of the subtree rooted at parameter i */
    int32_t *kids;      /* for each (parameter, option): indices of direct children */
    int32_t *kid_start; /* per parameter: offset of its option lists in kid_off */
    int32_t *kid_off;   /* per (parameter, option) + 1: offsets into kids */
    int32_t *roots, n_roots;
    int64_t grid_size;
};

#define GRID_MAX ((int64_t)1 << 62)

static int64_t mul_cap(int64_t a, int64_t b)
{
    if (a == 0 || b == 0) return 0;
    return a > GRID_MAX / b ? GRID_MAX + 1 : a * b;
}

/* Product of the counts of a list of parameters. */
static int64_t list_count(const mt_hpo_sampler *sm, const int32_t *list, int32_t n)
{
    int64_t c = 1;
    for (int32_t i = 0; i < n; i++)
        c = mul_cap(c, sm->count[list[i]]);
    return c;
}

static mt_status grid_build(mt_hpo_sampler *sm)
{
    const mt_hpo_space *s = sm->space;
    int32_t n = s->n, n_slots = 0;
    for (int32_t i = 0; i < n; i++) {
        const mt_hpo_param *p = &s->params[i];
        if (mt__hpo_grid_count(p) == 0)
            return mt_cfg_error(MT_ERR_INVALID, p->loc,
                                "grid search needs finite values, but '%s' is !%s: write !grid "
                                "[...] or !choice [...]",
                                p->label, mt_hpo_dist_name(p->dist));
        n_slots += p->options ? p->n_options : 0;
    }
    sm->count = mt_calloc((size_t)(n ? n : 1), sizeof *sm->count);
    sm->kids = mt_calloc((size_t)(n ? n : 1), sizeof *sm->kids);
    sm->kid_start = mt_calloc((size_t)(n ? n : 1), sizeof *sm->kid_start);
    sm->kid_off = mt_calloc((size_t)n_slots + 1, sizeof *sm->kid_off);
    sm->roots = mt_calloc((size_t)(n ? n : 1), sizeof *sm->roots);
    if (!sm->count || !sm->kids || !sm->kid_start || !sm->kid_off || !sm->roots)
        return mt_err_set(MT_ERR_NOMEM, "grid");
    /* children grouped by (parent, option), in space order (parents precede children) */
    int32_t slot = 0, nk = 0;
    for (int32_t i = 0; i < n; i++) {
        const mt_hpo_param *p = &s->params[i];
        sm->kid_start[i] = slot;
        if (p->parent < 0) sm->roots[sm->n_roots++] = i;
        for (int32_t k = 0; p->options && k < p->n_options; k++) {
            sm->kid_off[slot++] = nk;
            for (int32_t j = i + 1; j < n; j++)
                if (s->params[j].parent == i && s->params[j].parent_option == k) sm->kids[nk++] = j;
        }
    }
    sm->kid_off[slot] = nk;
    for (int32_t i = n - 1; i >= 0; i--) { /* children have larger indices */
        const mt_hpo_param *p = &s->params[i];
        if (!p->options) {
            sm->count[i] = mt__hpo_grid_count(p);
            continue;
        }
        int64_t c = 0;
        for (int32_t k = 0; k < p->n_options; k++) {
            int32_t sl = sm->kid_start[i] + k;
            c += list_count(sm, sm->kids + sm->kid_off[sl], sm->kid_off[sl + 1] - sm->kid_off[sl]);
            if (c > GRID_MAX) c = GRID_MAX + 1;
        }
        sm->count[i] = c;
    }
    sm->grid_size = list_count(sm, sm->roots, sm->n_roots);
    if (sm->grid_size > GRID_MAX)
        return mt_err_set(MT_ERR_INVALID, "grid search: more than 2^62 grid points");
    return MT_OK;
}

/* Decodes `idx` over a list of sibling parameters (first slowest). */
static void grid_decode(const mt_hpo_sampler *sm, const int32_t *list, int32_t n, int64_t idx,
                        mt_hpo_point *out)
{
    const mt_hpo_space *s = sm->space;
    for (int32_t j = n - 1; j >= 0; j--) {
        int32_t i = list[j];
        int64_t c = sm->count[i], d = idx % c;
        idx /= c;
        const mt_hpo_param *p = &s->params[i];
        out->active[i] = true;
        if (!p->options) {
            out->values[i] = p->a + (double)d;
            continue;
        }
        for (int32_t k = 0; k < p->n_options; k++) {
            int32_t sl = sm->kid_start[i] + k;
            const int32_t *kl = sm->kids + sm->kid_off[sl];
            int32_t nkl = sm->kid_off[sl + 1] - sm->kid_off[sl];
            int64_t ck = list_count(sm, kl, nkl);
            if (d < ck) {
                out->values[i] = k;
                grid_decode(sm, kl, nkl, d, out);
                break;
            }
            d -= ck;
        }
    }
}

mt_status mt_hpo_sampler_new(mt_hpo_sampler **out, const mt_hpo_space *s,
                             const mt_hpo_sampler_options *o)
{
    *out = NULL;
    mt_hpo_sampler_options def;
    if (!o) {
        mt_hpo_sampler_options_init(&def);
        o = &def;
    }
    if ((unsigned)o->algorithm >= MT_HPO_ALGO_COUNT)
        return mt_err_set(MT_ERR_INVALID, "hyperopt: unknown algorithm %d", (int)o->algorithm);
    const mt_hpo_tpe_options *t = &o->tpe;
    if (o->algorithm == MT_HPO_ALGO_TPE &&
        (t->n_startup < 0 || t->n_ei_candidates < 1 || !(t->gamma > 0 && t->gamma <= 1) ||
         !(t->prior_weight > 0) || t->linear_forgetting < 1 ||
         (unsigned)t->split > MT_HPO_SPLIT_LINEAR || (unsigned)t->pending > MT_HPO_PENDING_IGNORE))
        return mt_err_set(MT_ERR_INVALID,
                          "tpe: options out of range (n_startup >= 0, n_ei_candidates >= 1, "
                          "0 < gamma <= 1, prior_weight > 0, linear_forgetting >= 1)");
    mt_hpo_sampler *sm = mt_calloc(1, sizeof *sm);
    if (!sm) return mt_err_set(MT_ERR_NOMEM, "hyperopt: sampler");
    sm->space = s;
    sm->opts = *o;
    sm->grid_size = -1;
    if (o->algorithm == MT_HPO_ALGO_GRID) {
        mt_status st = grid_build(sm);
        if (st) {
            mt_hpo_sampler_free(sm);
            return st;
        }
    }
    *out = sm;
    return MT_OK;
}

void mt_hpo_sampler_free(mt_hpo_sampler *sm)
{
    if (!sm) return;
    mt_free(sm->count);
    mt_free(sm->kids);
    mt_free(sm->kid_start);
    mt_free(sm->kid_off);
    mt_free(sm->roots);
    mt_free(sm);
}

int64_t mt_hpo_sampler_grid_size(const mt_hpo_sampler *sm)
{
    return sm && sm->opts.algorithm == MT_HPO_ALGO_GRID ? sm->grid_size : -1;
}

static mt_status tpe_suggest(mt_hpo_sampler *sm, const mt_hpo_history *h, int64_t trial_id,
                             mt_hpo_point *out)
{
    const mt_hpo_space *s = sm->space;
    const mt_hpo_tpe_options *o = &sm->opts.tpe;
    int32_t nt = mt_hpo_history_count(h), n_cons = 0;
    int8_t *flag = mt_malloc((size_t)(nt ? nt : 1));
    double *below = mt_malloc(sizeof *below * (size_t)(nt ? nt : 1));
    double *above = mt_malloc(sizeof *above * (size_t)(nt ? nt : 1));
    mt_status st = flag && below && above ? MT_OK : mt_err_set(MT_ERR_NOMEM, "tpe: suggest");
    if (st == MT_OK) st = mt__hpo_tpe_split(h, o, flag, &n_cons);
    if (st == MT_OK && n_cons < o->n_startup) {
        st = mt_hpo_sample_prior(s, sm->opts.seed, trial_id, out);
    } else if (st == MT_OK) {
        mt__hpo_rng r;
        mt__hpo_rng_init(&r, sm->opts.seed, trial_id, MT__HPO_RNG_TPE);
        for (int32_t i = 0; i < s->n && st == MT_OK; i++) {
            out->active[i] = mt__hpo_param_active(s, out, i);
            out->values[i] = NAN;
            if (!out->active[i]) continue;
            int32_t nb = 0, na = 0;
            for (int32_t j = 0; j < nt; j++) {
                const mt_hpo_trial *t = mt_hpo_history_at(h, j);
                if (flag[j] < 0 || t->point.n != s->n || !t->point.active[i]) continue;
                if (flag[j] == 1)
                    below[nb++] = t->point.values[i];
                else
                    above[na++] = t->point.values[i];
            }
            st = mt__hpo_tpe_param(&s->params[i], o, below, nb, above, na, &r, o->n_ei_candidates,
                                   NULL, NULL, &out->values[i]);
        }
    }
    mt_free(flag);
    mt_free(below);
    mt_free(above);
    return st;
}

mt_status mt_hpo_sampler_suggest(mt_hpo_sampler *sm, const mt_hpo_history *h, int64_t trial_id,
                                 mt_hpo_point *out)
{
    const mt_hpo_space *s = sm->space;
    if (out->n != s->n)
        return mt_err_set(MT_ERR_INVALID, "hyperopt: point of %d values for a space of %d",
                          (int)out->n, (int)s->n);
    if (trial_id < 0) return mt_err_set(MT_ERR_INVALID, "hyperopt: negative trial id");
    switch (sm->opts.algorithm) {
    case MT_HPO_ALGO_RANDOM:
        return mt_hpo_sample_prior(s, sm->opts.seed, trial_id, out);
    case MT_HPO_ALGO_GRID:
        if (trial_id >= sm->grid_size)
            return mt_err_set(MT_ERR_RANGE, "grid search: trial %lld is past the %lld grid points",
                              (long long)trial_id, (long long)sm->grid_size);
        for (int32_t i = 0; i < s->n; i++)
            out->active[i] = false, out->values[i] = NAN;
        grid_decode(sm, sm->roots, sm->n_roots, trial_id, out);
        return MT_OK;
    case MT_HPO_ALGO_TPE:
        if (!h) return mt_err_set(MT_ERR_INVALID, "tpe: suggest needs the history");
        return tpe_suggest(sm, h, trial_id, out);
    default:
        return mt_err_set(MT_ERR_INVALID, "hyperopt: unknown algorithm");
    }
}
