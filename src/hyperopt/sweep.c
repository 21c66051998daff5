/* The `!obj:Sweep` root of a sweep file: its component schema (registered in the config
 * registry so `mltrain components` lists it and `--dry-run` validates it), the checks of its
 * sub-mappings (objective, search, pruner, distributed, storage) with file:line:column errors
 * and "did you mean" hints, the settings as mt_sweep_config, validation of the Train object
 * with "${params.NAME}" / !param references standing for their parameter, and the --dry-run
 * printout of the settings and the space. */
#include <stdio.h>
#include <string.h>

#include "hyperopt_impl.h"

/* ---------------------------------------------------------------- sub-mapping schemas */

typedef enum skind { K_INT, K_FLOAT, K_BOOL, K_STRING, K_ENUM, K_MAP, K_LIST } skind;

typedef struct skey {
    const char *name;
    skind kind;
    const char *const *values; /* K_ENUM: NULL-terminated */
    bool nullable;
} skey;

static const char *const e_mode[] = {"min", "max", NULL};
static const char *const e_reduce[] = {"best", "last", NULL};
static const char *const e_algo[] = {"tpe", "random", "grid", NULL};
static const char *const e_split[] = {"sqrt", "linear", NULL};
static const char *const e_pending[] = {"worst", "constant_liar", "ignore", NULL};
static const char *const e_pruner[] = {"none", "median", "asha", NULL};
static const char *const e_step[] = {"epoch", NULL};
static const char *const e_failure[] = {"retry", "fail", NULL};
static const char *const e_from[] = {"checkpoint", "scratch", NULL};
static const char *const e_resume[] = {"auto", "never", "force", NULL};
static const char *const e_keep[] = {"best", "last", "all", NULL};

static const skey objective_keys[] = {{"channel", K_STRING, NULL, false},
                                      {"expression", K_STRING, NULL, false},
                                      {"mode", K_ENUM, e_mode, false},
                                      {"reduce", K_ENUM, e_reduce, false},
                                      {NULL, 0, NULL, false}};
static const skey search_keys[] = {{"algorithm", K_ENUM, e_algo, false},
                                   {"max_trials", K_INT, NULL, false},
                                   {"max_concurrent", K_INT, NULL, false},
                                   {"time_budget_s", K_FLOAT, NULL, true},
                                   {"seed", K_INT, NULL, false},
                                   {"tpe", K_MAP, NULL, false},
                                   {"points_to_evaluate", K_LIST, NULL, true},
                                   {"early_stop", K_MAP, NULL, true},
                                   {NULL, 0, NULL, false}};
static const skey tpe_keys[] = {{"n_startup", K_INT, NULL, false},
                                {"n_ei_candidates", K_INT, NULL, false},
                                {"gamma", K_FLOAT, NULL, false},
                                {"split", K_ENUM, e_split, false},
                                {"prior_weight", K_FLOAT, NULL, false},
                                {"linear_forgetting", K_INT, NULL, false},
                                {"multivariate", K_BOOL, NULL, false},
                                {"pending_policy", K_ENUM, e_pending, false},
                                {NULL, 0, NULL, false}};
static const skey early_keys[] = {{"no_progress_trials", K_INT, NULL, true},
                                  {"min_delta", K_FLOAT, NULL, false},
                                  {"loss_threshold", K_FLOAT, NULL, true},
                                  {NULL, 0, NULL, false}};
static const skey pruner_keys[] = {{"type", K_ENUM, e_pruner, false},
                                   {"n_startup_trials", K_INT, NULL, false},
                                   {"n_warmup_steps", K_INT, NULL, false},
                                   {"interval_steps", K_INT, NULL, false},
                                   {"n_min_trials", K_INT, NULL, false},
                                   {"min_resource", K_INT, NULL, false},
                                   {"reduction_factor", K_INT, NULL, false},
                                   {"min_early_stopping_rate", K_INT, NULL, false},
                                   {"max_resource", K_INT, NULL, true},
                                   {"step", K_ENUM, e_step, false},
                                   {NULL, 0, NULL, false}};
static const skey dist_keys[] = {
    {"coordinator_rank", K_INT, NULL, false},    {"ranks_per_trial", K_INT, NULL, false},
    {"heartbeat_s", K_FLOAT, NULL, false},       {"lease_grace_s", K_FLOAT, NULL, false},
    {"max_retries", K_INT, NULL, false},         {"on_failure", K_ENUM, e_failure, false},
    {"resume_from", K_ENUM, e_from, false},      {"checkpoint_every_epochs", K_INT, NULL, false},
    {"trial_time_limit_s", K_FLOAT, NULL, true}, {NULL, 0, NULL, false}};
static const skey storage_keys[] = {{"dir", K_STRING, NULL, false},
                                    {"journal", K_STRING, NULL, false},
                                    {"fsync", K_BOOL, NULL, false},
                                    {"resume", K_ENUM, e_resume, false},
                                    {"keep_checkpoints", K_ENUM, e_keep, false},
                                    {NULL, 0, NULL, false}};

static const char *kind_text(const skey *k)
{
    switch (k->kind) {
    case K_INT:
        return "an integer";
    case K_FLOAT:
        return "a number";
    case K_BOOL:
        return "true or false";
    case K_STRING:
        return "a string";
    case K_MAP:
        return "a mapping";
    case K_LIST:
        return "a list";
    default:
        return "one of the names";
    }
}

static bool kind_ok(const skey *k, const mt_cfg_node *v)
{
    if (v->kind == MT_CFG_NULL) return k->nullable;
    switch (k->kind) {
    case K_INT:
        return v->kind == MT_CFG_INT || (v->kind == MT_CFG_FLOAT && v->f == (double)(int64_t)v->f);
    case K_FLOAT:
        return v->kind == MT_CFG_INT || v->kind == MT_CFG_FLOAT;
    case K_BOOL:
        return v->kind == MT_CFG_BOOL;
    case K_STRING:
        return v->kind == MT_CFG_STRING;
    case K_ENUM:
        return v->kind == MT_CFG_STRING;
    case K_MAP:
        return v->kind == MT_CFG_MAP;
    case K_LIST:
        return v->kind == MT_CFG_LIST;
    }
    return false;
}

static mt_status check_map(const mt_cfg_node *m, const char *what, const skey *keys)
{
    if (!m || m->kind == MT_CFG_NULL) return MT_OK;
    if (m->kind != MT_CFG_MAP)
        return mt_cfg_error(MT_ERR_INVALID, m->loc, "Sweep key '%s': must be a mapping, got %s",
                            what, mt_cfg_kind_name(m->kind));
    const char *names[32];
    int32_t nn = 0;
    for (const skey *k = keys; k->name && nn < 32; k++)
        names[nn++] = k->name;
    for (int32_t i = 0; i < m->n; i++) {
        const skey *k = keys;
        while (k->name && strcmp(k->name, m->keys[i]) != 0)
            k++;
        if (!k->name) {
            const char *sug = mt_cfg_suggest(m->keys[i], nn, names);
            return mt_cfg_error(MT_ERR_INVALID, m->key_locs[i], "%s has no key '%s'%s%s%s", what,
                                m->keys[i], sug ? " (did you mean '" : "", sug ? sug : "",
                                sug ? "'?)" : "");
        }
        const mt_cfg_node *v = m->items[i];
        if (!v) continue;
        if (!kind_ok(k, v))
            return mt_cfg_error(MT_ERR_INVALID, v->loc, "%s key '%s': must be %s, got %s '%s'",
                                what, k->name, kind_text(k), mt_cfg_kind_name(v->kind),
                                v->str ? v->str : "");
        if (k->kind == K_ENUM && v->kind == MT_CFG_STRING) {
            int32_t ne = 0;
            bool ok = false;
            for (; k->values[ne]; ne++)
                ok = ok || strcmp(k->values[ne], v->str) == 0;
            if (!ok) {
                mt_strbuf sb;
                mt_strbuf_init(&sb);
                for (int32_t j = 0; j < ne; j++)
                    mt_strbuf_appendf(&sb, "%s%s", j ? ", " : "", k->values[j]);
                const char *sug = mt_cfg_suggest(v->str, ne, k->values);
                mt_status st =
                    mt_cfg_error(MT_ERR_INVALID, v->loc, "%s key '%s': '%s' is not one of %s%s%s%s",
                                 what, k->name, v->str, sb.data ? sb.data : "",
                                 sug ? " (did you mean '" : "", sug ? sug : "", sug ? "'?)" : "");
                mt_strbuf_deinit(&sb);
                return st;
            }
        }
    }
    return MT_OK;
}

static int32_t enum_of(const mt_cfg_node *m, const char *key, const char *const *values,
                       int32_t dflt)
{
    const mt_cfg_node *v = m ? mt_cfg_get(m, key) : NULL;
    if (!v || v->kind != MT_CFG_STRING) return dflt;
    for (int32_t i = 0; values[i]; i++)
        if (strcmp(values[i], v->str) == 0) return i;
    return dflt;
}

static mt_status range_error(const mt_cfg_node *m, const char *what, const char *key,
                             const char *rule)
{
    return mt_cfg_error(MT_ERR_INVALID, mt_cfg_key_loc(m, key), "%s key '%s': must be %s", what,
                        key, rule);
}

/* ---------------------------------------------------------------- reading the settings */

static mt_status read_search(mt_sweep_config *c, const mt_cfg_node *root)
{
    const mt_cfg_node *s = mt_cfg_get(root, "search"), *t;
    mt_status st;
    if ((st = check_map(s, "search", search_keys))) return st;
    if (s && s->kind == MT_CFG_NULL) s = NULL;
    static const mt_hpo_algorithm algos[] = {MT_HPO_ALGO_TPE, MT_HPO_ALGO_RANDOM, MT_HPO_ALGO_GRID};
    c->sampler.algorithm = algos[enum_of(s, "algorithm", e_algo, 0)];
    int64_t seed = 0, v = 0;
    if ((st = mt_cfg_get_int(root, "seed", 0, &seed))) return st;
    if (s && (st = mt_cfg_get_int(s, "seed", seed, &seed))) return st;
    c->sampler.seed = (uint64_t)seed;
    if (s) {
        if ((st = mt_cfg_get_int(s, "max_trials", 100, &c->max_trials))) return st;
        if (c->max_trials < 1) return range_error(s, "search", "max_trials", ">= 1");
        if ((st = mt_cfg_get_int(s, "max_concurrent", 1, &v))) return st;
        if (v < 1 || v > 1 << 20) return range_error(s, "search", "max_concurrent", ">= 1");
        c->max_concurrent = (int32_t)v;
        if ((st = mt_cfg_get_float(s, "time_budget_s", 0, &c->time_budget_s))) return st;
        if (c->time_budget_s < 0) return range_error(s, "search", "time_budget_s", ">= 0");
        const mt_cfg_node *pe = mt_cfg_get(s, "points_to_evaluate");
        c->points_to_evaluate = pe && pe->kind == MT_CFG_LIST ? pe : NULL;
    }
    t = s ? mt_cfg_get(s, "tpe") : NULL;
    if ((st = check_map(t, "search.tpe", tpe_keys))) return st;
    if (t) {
        mt_hpo_tpe_options *o = &c->sampler.tpe;
        if ((st = mt_cfg_get_int(t, "n_startup", o->n_startup, &v))) return st;
        if (v < 0 || v > 1 << 30) return range_error(t, "search.tpe", "n_startup", ">= 0");
        o->n_startup = (int32_t)v;
        if ((st = mt_cfg_get_int(t, "n_ei_candidates", o->n_ei_candidates, &v))) return st;
        if (v < 1 || v > 1 << 20) return range_error(t, "search.tpe", "n_ei_candidates", ">= 1");
        o->n_ei_candidates = (int32_t)v;
        if ((st = mt_cfg_get_float(t, "gamma", o->gamma, &o->gamma))) return st;
        if (!(o->gamma > 0 && o->gamma <= 1))
            return range_error(t, "search.tpe", "gamma", "in (0, 1]");
        if ((st = mt_cfg_get_float(t, "prior_weight", o->prior_weight, &o->prior_weight)))
            return st;
        if (!(o->prior_weight > 0)) return range_error(t, "search.tpe", "prior_weight", "> 0");
        if ((st = mt_cfg_get_int(t, "linear_forgetting", o->linear_forgetting, &v))) return st;
        if (v < 1 || v > 1 << 30) return range_error(t, "search.tpe", "linear_forgetting", ">= 1");
        o->linear_forgetting = (int32_t)v;
        o->split = enum_of(t, "split", e_split, 0) == 1 ? MT_HPO_SPLIT_LINEAR : MT_HPO_SPLIT_SQRT;
        o->pending = (mt_hpo_pending)enum_of(t, "pending_policy", e_pending, 0);
        bool mv = false;
        if ((st = mt_cfg_get_bool(t, "multivariate", false, &mv))) return st;
        if (mv)
            return mt_cfg_error(MT_ERR_INVALID, mt_cfg_key_loc(t, "multivariate"),
                                "search.tpe: multivariate TPE is not implemented (hyperopt's "
                                "TPE is univariate)");
    }
    const mt_cfg_node *e = s ? mt_cfg_get(s, "early_stop") : NULL;
    if ((st = check_map(e, "search.early_stop", early_keys))) return st;
    if (e && e->kind == MT_CFG_MAP) {
        if ((st = mt_cfg_get_int(e, "no_progress_trials", 0, &c->early_stop.no_progress_trials)))
            return st;
        if (c->early_stop.no_progress_trials < 0)
            return range_error(e, "search.early_stop", "no_progress_trials", ">= 0");
        if ((st = mt_cfg_get_float(e, "min_delta", 0, &c->early_stop.min_delta))) return st;
        const mt_cfg_node *lt = mt_cfg_get(e, "loss_threshold");
        if (lt && lt->kind != MT_CFG_NULL) {
            c->early_stop.has_loss_threshold = true;
            c->early_stop.loss_threshold = lt->f;
        }
    }
    return MT_OK;
}

static mt_status read_pruner(mt_sweep_config *c, const mt_cfg_node *root)
{
    const mt_cfg_node *p = mt_cfg_get(root, "pruner");
    mt_status st = check_map(p, "pruner", pruner_keys);
    if (st || !p || p->kind != MT_CFG_MAP) return st;
    mt_hpo_pruner_options *o = &c->pruner;
    o->type = (mt_hpo_pruner_type)enum_of(p, "type", e_pruner, 0);
    int64_t v;
    if ((st = mt_cfg_get_int(p, "n_startup_trials", o->n_startup_trials, &v))) return st;
    if (v < 0 || v > 1 << 30) return range_error(p, "pruner", "n_startup_trials", ">= 0");
    o->n_startup_trials = (int32_t)v;
    if ((st = mt_cfg_get_int(p, "n_warmup_steps", o->n_warmup_steps, &o->n_warmup_steps)))
        return st;
    if (o->n_warmup_steps < 0) return range_error(p, "pruner", "n_warmup_steps", ">= 0");
    if ((st = mt_cfg_get_int(p, "interval_steps", o->interval_steps, &o->interval_steps)))
        return st;
    if (o->interval_steps < 1) return range_error(p, "pruner", "interval_steps", ">= 1");
    if ((st = mt_cfg_get_int(p, "n_min_trials", o->n_min_trials, &v))) return st;
    if (v < 1 || v > 1 << 30) return range_error(p, "pruner", "n_min_trials", ">= 1");
    o->n_min_trials = (int32_t)v;
    if ((st = mt_cfg_get_int(p, "min_resource", o->min_resource, &o->min_resource))) return st;
    if (o->min_resource < 1) return range_error(p, "pruner", "min_resource", ">= 1");
    if ((st = mt_cfg_get_int(p, "reduction_factor", o->reduction_factor, &v))) return st;
    if (v < 2 || v > 1 << 20) return range_error(p, "pruner", "reduction_factor", ">= 2");
    o->reduction_factor = (int32_t)v;
    if ((st = mt_cfg_get_int(p, "min_early_stopping_rate", 0, &v))) return st;
    if (v < 0 || v > 60) return range_error(p, "pruner", "min_early_stopping_rate", "in [0, 60]");
    o->min_early_stopping_rate = (int32_t)v;
    const mt_cfg_node *mr = mt_cfg_get(p, "max_resource");
    if (mr && mr->kind != MT_CFG_NULL) {
        if ((st = mt_cfg_get_int(p, "max_resource", 0, &o->max_resource))) return st;
        if (o->max_resource < o->min_resource)
            return range_error(p, "pruner", "max_resource", ">= min_resource");
    }
    return MT_OK;
}

static mt_status read_distributed(mt_sweep_config *c, const mt_cfg_node *root)
{
    const mt_cfg_node *d = mt_cfg_get(root, "distributed");
    mt_status st = check_map(d, "distributed", dist_keys);
    if (st || !d || d->kind != MT_CFG_MAP) return st;
    int64_t v;
    if ((st = mt_cfg_get_int(d, "coordinator_rank", 0, &v))) return st;
    if (v != 0) return range_error(d, "distributed", "coordinator_rank", "0 (rank 0 coordinates)");
    if ((st = mt_cfg_get_int(d, "ranks_per_trial", 1, &v))) return st;
    if (v < 1 || v > 1 << 20) return range_error(d, "distributed", "ranks_per_trial", ">= 1");
    c->distributed.ranks_per_trial = (int32_t)v;
    if ((st = mt_cfg_get_int(d, "max_retries", 2, &v))) return st;
    if (v < 0 || v > 1000) return range_error(d, "distributed", "max_retries", "in [0, 1000]");
    c->distributed.max_retries = (int32_t)v;
    if ((st = mt_cfg_get_float(d, "heartbeat_s", 30, &c->distributed.heartbeat_s))) return st;
    if (!(c->distributed.heartbeat_s > 0))
        return range_error(d, "distributed", "heartbeat_s", "> 0");
    if ((st = mt_cfg_get_float(d, "lease_grace_s", 120, &c->distributed.lease_grace_s))) return st;
    if (!(c->distributed.lease_grace_s > 0))
        return range_error(d, "distributed", "lease_grace_s", "> 0");
    if ((st = mt_cfg_get_float(d, "trial_time_limit_s", 0, &c->distributed.trial_time_limit_s)))
        return st;
    if (c->distributed.trial_time_limit_s < 0)
        return range_error(d, "distributed", "trial_time_limit_s", ">= 0");
    if ((st = mt_cfg_get_int(d, "checkpoint_every_epochs", 1,
                             &c->distributed.checkpoint_every_epochs)))
        return st;
    if (c->distributed.checkpoint_every_epochs < 0)
        return range_error(d, "distributed", "checkpoint_every_epochs", ">= 0");
    c->distributed.on_failure = (mt_sweep_on_failure)enum_of(d, "on_failure", e_failure, 0);
    c->distributed.resume_from = (mt_sweep_resume_from)enum_of(d, "resume_from", e_from, 0);
    return MT_OK;
}

static mt_status read_storage(mt_sweep_config *c, const mt_cfg_node *root)
{
    const mt_cfg_node *s = mt_cfg_get(root, "storage");
    mt_status st = check_map(s, "storage", storage_keys);
    if (st || !s || s->kind != MT_CFG_MAP) return st;
    if ((st = mt_cfg_get_string(s, "dir", NULL, &c->storage.dir))) return st;
    if ((st = mt_cfg_get_string(s, "journal", "journal.jsonl", &c->storage.journal))) return st;
    if ((st = mt_cfg_get_bool(s, "fsync", true, &c->storage.fsync))) return st;
    c->storage.resume = (mt_sweep_resume)enum_of(s, "resume", e_resume, 0);
    c->storage.keep_checkpoints = (mt_sweep_keep)enum_of(s, "keep_checkpoints", e_keep, 0);
    if (c->storage.journal && (!c->storage.journal[0] || strchr(c->storage.journal, '/')))
        return range_error(s, "storage", "journal", "a file name inside the sweep directory");
    return MT_OK;
}

static mt_status read_objective(mt_sweep_config *c, const mt_cfg_node *root)
{
    const mt_cfg_node *o = mt_cfg_get(root, "objective");
    if (!o || o->kind == MT_CFG_NULL)
        return mt_cfg_error(MT_ERR_INVALID, root->loc,
                            "Sweep is missing the required key "
                            "'objective' ({channel: NAME, mode: min})");
    mt_status st = check_map(o, "objective", objective_keys);
    if (st) return st;
    c->objective.loc = o->loc;
    if ((st = mt_cfg_get_string(o, "channel", NULL, &c->objective.channel))) return st;
    if ((st = mt_cfg_get_string(o, "expression", NULL, &c->objective.expression))) return st;
    if (!c->objective.channel == !c->objective.expression)
        return mt_cfg_error(MT_ERR_INVALID, o->loc,
                            "objective needs exactly one of 'channel' (a monitor channel) and "
                            "'expression' (of the parameters)");
    c->objective.maximize = enum_of(o, "mode", e_mode, 0) == 1;
    c->objective.reduce_last = enum_of(o, "reduce", e_reduce, 0) == 1;
    return MT_OK;
}

mt_status mt_sweep_config_read(mt_sweep_config *c, const mt_cfg_node *root)
{
    memset(c, 0, sizeof *c);
    if (!root || root->kind != MT_CFG_OBJ)
        return mt_cfg_error(MT_ERR_INVALID, root ? root->loc : (mt_cfg_loc){0},
                            "a sweep file's root must be !obj:Sweep {...}");
    mt_hpo_sampler_options_init(&c->sampler);
    mt_hpo_pruner_options_init(&c->pruner);
    c->max_trials = 100;
    c->max_concurrent = 1;
    c->distributed.ranks_per_trial = 1;
    c->distributed.max_retries = 2;
    c->distributed.heartbeat_s = 30;
    c->distributed.lease_grace_s = 120;
    c->distributed.checkpoint_every_epochs = 1;
    c->storage.journal = "journal.jsonl";
    c->storage.fsync = true;
    mt_status st;
    if ((st = mt_cfg_get_string(root, "name", "sweep", &c->name))) return st;
    c->params = mt_cfg_get(root, "params");
    if (c->params && c->params->kind == MT_CFG_NULL) c->params = NULL;
    if (c->params && c->params->kind != MT_CFG_MAP)
        return mt_cfg_error(MT_ERR_INVALID, c->params->loc,
                            "Sweep key 'params': must be a "
                            "mapping of names to search tags");
    c->train = mt_cfg_get(root, "train");
    if (!c->train)
        return mt_cfg_error(MT_ERR_INVALID, root->loc, "Sweep is missing the required key 'train'");
    if (c->train->kind != MT_CFG_OBJ)
        return mt_cfg_error(MT_ERR_INVALID, c->train->loc,
                            "Sweep key 'train': must be a !obj:Train {...} object, got %s",
                            mt_cfg_kind_name(c->train->kind));
    if ((st = read_objective(c, root)) || (st = read_search(c, root)) ||
        (st = read_pruner(c, root)) || (st = read_distributed(c, root)) ||
        (st = read_storage(c, root)))
        return st;
    const mt_cfg_node *s = mt_cfg_get(root, "search");
    if (!(s && s->kind == MT_CFG_MAP && mt_cfg_get(s, "max_trials")))
        c->max_trials = c->sampler.algorithm == MT_HPO_ALGO_GRID ? -1 : 100;
    return MT_OK;
}

double mt_sweep_objective_loss(const mt_sweep_config *c, double value)
{
    return c->objective.maximize ? -value : value;
}

/* ---------------------------------------------------------------- whole-file checks */

/* Space, expression, grid and points_to_evaluate: the checks that need the space. */
static mt_status check_with_space(mt_sweep_config *c, const mt_cfg_node *root)
{
    mt_hpo_space *s = NULL;
    mt_hpo_sampler *sm = NULL;
    mt_hpo_point pt = {0};
    mt_status st = mt_hpo_space_from_sweep(&s, root);
    if (st == MT_OK && c->objective.expression) {
        mt_hpo_expr *e = NULL;
        st = mt__hpo_objective_new(&e, s, c->objective.expression);
        mt_hpo_expr_free(e);
        if (st) {
            char msg[MT_ERR_MSG_MAX];
            snprintf(msg, sizeof msg, "%s", mt_last_error());
            const mt_cfg_node *o = mt_cfg_get(root, "objective");
            st = mt_cfg_error(st, mt_cfg_key_loc(o, "expression"), "objective %s", msg);
        }
    }
    if (st == MT_OK) st = mt_hpo_sampler_new(&sm, s, &c->sampler);
    if (st == MT_OK && c->points_to_evaluate) {
        st = mt_hpo_point_init(&pt, s);
        for (int32_t i = 0; st == MT_OK && i < c->points_to_evaluate->n; i++) {
            st = mt_hpo_sample_prior(s, c->sampler.seed, i, &pt);
            if (st == MT_OK)
                st = mt_hpo_point_from_cfg(s, c->points_to_evaluate->items[i], MT_HPO_KEYS_USER,
                                           &pt);
        }
    }
    mt_hpo_point_clear(&pt);
    mt_hpo_sampler_free(sm);
    mt_hpo_space_free(s);
    return st;
}

static mt_status sweep_check(const mt_cfg_node *node)
{
    mt_sweep_config c;
    mt_status st = mt_sweep_config_read(&c, node);
    return st ? st : check_with_space(&c, node);
}

static const mt_cfg_key sweep_keys[] = {
    {"name", MT_CFG_T_STRING, false, false, NULL, false, "name of the sweep"},
    {"seed", MT_CFG_T_INT, false, false, NULL, false, "seed of every draw of the search"},
    {"params", MT_CFG_T_ANY, false, true, NULL, false,
     "shared parameters {name: search tag}, used as ${params.name} or !param name"},
    {"train", MT_CFG_T_OBJ, true, false, "train", false,
     "the Train object; search tags anywhere in it"},
    {"objective", MT_CFG_T_ANY, true, false, NULL, false,
     "{channel | expression, mode: min|max, reduce: best|last}"},
    {"search", MT_CFG_T_ANY, false, true, NULL, false,
     "{algorithm: tpe|random|grid, max_trials, max_concurrent, tpe: {...}, ...}"},
    {"pruner", MT_CFG_T_ANY, false, true, NULL, false, "{type: none|median|asha, ...}"},
    {"distributed", MT_CFG_T_ANY, false, true, NULL, false,
     "{ranks_per_trial, heartbeat_s, max_retries, ...}"},
    {"storage", MT_CFG_T_ANY, false, true, NULL, false, "{dir, journal, fsync, resume, ...}"},
    {NULL, 0, false, false, NULL, false, NULL}};

static const char *const sweep_aliases[] = {"mltrain.hyperopt.Sweep", NULL};

static mt_status sweep_build(mt_cfg_builder *b, const mt_cfg_node *node, void **out)
{
    (void)b;
    (void)out;
    return mt_cfg_error(MT_ERR_UNSUPPORTED, node->loc,
                        "a Sweep is run by the sweep coordinator, not built as an object");
}

static const mt_component sweep_component = {
    "Sweep",
    "sweep",
    sweep_aliases,
    sweep_keys,
    false,
    "a hyperparameter sweep: search tags in a Train object, searched by TPE, random or grid "
    "search with optional pruning",
    sweep_build,
    NULL,
    sweep_check};

mt_status mt_sweep_register_components(mt_cfg_registry *r)
{
    if (!r) return mt_err_set(MT_ERR_INVALID, "sweep: registry is NULL");
    return mt_cfg_registry_add(r, &sweep_component);
}

/* The tree the Train schema is checked against: references to shared parameters replaced by
 * the parameter's node (a search tag is accepted wherever its values would be). */
typedef struct vctx {
    mt_arena arena;
    const mt_cfg_node *params;
    int32_t depth;
} vctx;

static mt_status view(vctx *v, const mt_cfg_node *n, const mt_cfg_node **out)
{
    *out = n;
    if (!n) return MT_OK;
    const char *name = NULL;
    char buf[256];
    if (n->kind == MT_CFG_STRING) {
        size_t len = strlen(n->str);
        if (len > 10 && strncmp(n->str, "${params.", 9) == 0 && n->str[len - 1] == '}') {
            snprintf(buf, sizeof buf, "%.*s", (int)(len - 10), n->str + 9);
            name = buf;
        }
    } else if (n->kind == MT_CFG_TAGGED && n->tag && strcmp(n->tag, "param") == 0 && n->n > 0 &&
               n->items[0] && n->items[0]->kind == MT_CFG_STRING) {
        name = n->items[0]->str;
    }
    if (name) {
        const mt_cfg_node *p = v->params ? mt_cfg_get(v->params, name) : NULL;
        if (p) *out = p;
        return MT_OK;
    }
    if (n->kind != MT_CFG_LIST && n->kind != MT_CFG_MAP && n->kind != MT_CFG_OBJ &&
        n->kind != MT_CFG_TAGGED)
        return MT_OK;
    if (++v->depth > 200) return mt_cfg_error(MT_ERR_RANGE, n->loc, "nested too deep");
    mt_cfg_node *m = mt_arena_calloc(&v->arena, sizeof *m);
    const mt_cfg_node **items = mt_arena_calloc(&v->arena, sizeof *items * (size_t)(n->n + 1));
    if (!m || !items) return mt_err_set(MT_ERR_NOMEM, "sweep: validation");
    *m = *n;
    m->anchor = -1;
    m->items = (mt_cfg_node **)items;
    mt_status st = MT_OK;
    for (int32_t i = 0; i < n->n && st == MT_OK; i++)
        st = view(v, n->items[i], &items[i]);
    v->depth--;
    *out = m;
    return st;
}

mt_status mt_sweep_validate(const mt_cfg_registry *r, const mt_cfg_node *root)
{
    if (!r || !root) return mt_err_set(MT_ERR_INVALID, "sweep: NULL registry or root");
    const mt_component *c = root->kind == MT_CFG_OBJ ? mt_cfg_registry_find(r, root->tag) : NULL;
    if (!c || strcmp(c->name, "Sweep") != 0)
        return mt_cfg_error(MT_ERR_INVALID, root->loc,
                            "a sweep file's root must be !obj:Sweep {...}%s",
                            c ? "" : " (is Sweep registered? mt_sweep_register_components)");
    vctx v;
    memset(&v, 0, sizeof v);
    const mt_cfg_node *params = mt_cfg_get(root, "params");
    v.params = params && params->kind == MT_CFG_MAP ? params : NULL;
    mt_cfg_node top = *root;
    const mt_cfg_node **items = mt_calloc((size_t)(root->n + 1), sizeof *items);
    if (!items) return mt_err_set(MT_ERR_NOMEM, "sweep: validation");
    mt_status st = MT_OK;
    for (int32_t i = 0; i < root->n && st == MT_OK; i++) {
        items[i] = root->items[i];
        if (strcmp(root->keys[i], "train") == 0) st = view(&v, root->items[i], &items[i]);
    }
    top.items = (mt_cfg_node **)items;
    /* the space first: its messages (bad tags, unknown references) are the precise ones */
    mt_hpo_space *s = NULL;
    if (st == MT_OK) st = mt_hpo_space_from_sweep(&s, root);
    mt_hpo_space_free(s);
    if (st == MT_OK) st = mt_cfg_validate(r, &top, "sweep");
    mt_free(items);
    mt_arena_free(&v.arena);
    return st;
}

/* ---------------------------------------------------------------- --dry-run */

mt_status mt_sweep_print(const mt_sweep_config *c, const mt_hpo_space *s, mt_strbuf *sb)
{
    const mt_hpo_tpe_options *t = &c->sampler.tpe;
    mt_strbuf_appendf(sb, "sweep '%s': %s search, seed %llu, ", c->name,
                      mt_hpo_algorithm_name(c->sampler.algorithm),
                      (unsigned long long)c->sampler.seed);
    mt_hpo_sampler *sm = NULL;
    int64_t grid = -1;
    if (c->sampler.algorithm == MT_HPO_ALGO_GRID &&
        mt_hpo_sampler_new(&sm, s, &c->sampler) == MT_OK)
        grid = mt_hpo_sampler_grid_size(sm);
    mt_hpo_sampler_free(sm);
    if (c->max_trials > 0)
        mt_strbuf_appendf(sb, "max_trials %lld", (long long)c->max_trials);
    else if (grid >= 0)
        mt_strbuf_appendf(sb, "max_trials %lld (the grid)", (long long)grid);
    else
        mt_strbuf_append(sb, "max_trials 100");
    mt_strbuf_appendf(sb, ", max_concurrent %d", (int)c->max_concurrent);
    if (c->time_budget_s > 0) mt_strbuf_appendf(sb, ", time budget %gs", c->time_budget_s);
    mt_strbuf_append(sb, "\n");
    if (c->sampler.algorithm == MT_HPO_ALGO_TPE)
        mt_strbuf_appendf(sb,
                          "  tpe: n_startup %d, n_ei_candidates %d, gamma %g (%s split), "
                          "prior_weight %g, linear_forgetting %d, pending %s\n",
                          (int)t->n_startup, (int)t->n_ei_candidates, t->gamma,
                          t->split == MT_HPO_SPLIT_LINEAR ? "linear" : "sqrt", t->prior_weight,
                          (int)t->linear_forgetting, e_pending[t->pending]);
    if (grid >= 0) mt_strbuf_appendf(sb, "  grid: %lld points\n", (long long)grid);
    if (c->points_to_evaluate)
        mt_strbuf_appendf(sb, "  points_to_evaluate: %d\n", (int)c->points_to_evaluate->n);
    mt_strbuf_appendf(sb, "objective: %s ", c->objective.maximize ? "maximize" : "minimize");
    if (c->objective.channel)
        mt_strbuf_appendf(sb, "channel '%s' (%s)\n", c->objective.channel,
                          c->objective.reduce_last ? "last value" : "best value over epochs");
    else
        mt_strbuf_appendf(sb, "expression '%s'\n", c->objective.expression);
    const mt_hpo_pruner_options *p = &c->pruner;
    mt_strbuf_appendf(sb, "pruner: %s", mt_hpo_pruner_name(p->type));
    if (p->type == MT_HPO_PRUNER_MEDIAN)
        mt_strbuf_appendf(sb,
                          " (n_startup_trials %d, n_warmup_steps %lld, interval_steps %lld, "
                          "n_min_trials %d)",
                          (int)p->n_startup_trials, (long long)p->n_warmup_steps,
                          (long long)p->interval_steps, (int)p->n_min_trials);
    if (p->type == MT_HPO_PRUNER_ASHA) {
        mt_hpo_pruner *pr = NULL;
        int64_t rungs[8];
        int32_t nr = 0;
        if (mt_hpo_pruner_new(&pr, p) == MT_OK) nr = mt_hpo_pruner_rungs(pr, 0, rungs, 8);
        mt_hpo_pruner_free(pr);
        mt_strbuf_appendf(sb, " (min_resource %lld, reduction_factor %d): rungs at epochs",
                          (long long)p->min_resource, (int)p->reduction_factor);
        for (int32_t i = 0; i < nr; i++)
            mt_strbuf_appendf(sb, " %lld", (long long)rungs[i]);
        if (nr == 8) mt_strbuf_append(sb, " ...");
    }
    mt_strbuf_append(sb, "\nspace:\n");
    return mt_hpo_space_print(s, sb);
}
