/* Termination criteria (Pylearn2's termination_criteria/__init__.py). The loop asks
 * continue_learning after every epoch's monitoring and extensions (not after the initial
 * monitor call, as Pylearn2's Train.main_loop):
 *   EpochCounter(max_epochs, new_epochs=True): counts calls; continue while the count <
 *       max_epochs (new_epochs false: the count starts at epochs_seen - 1).
 *   MonitorBased(prop_decrease=0.01, N=5, channel_name='objective'): v = the channel's last
 *       value; v < (1 - prop_decrease) * best -> countdown = N, else countdown -= 1; best =
 *       min(best, v); continue while countdown > 0.
 *   ChannelTarget(channel_name, target): continue while the channel > target.
 *   MatchChannel(channel_name, prev_channel_name, prev_monitor_name): target = the last value
 *       of prev_channel_name in the pushed monitor prev_monitor_name (read at the first call);
 *       continue while the channel > target.
 *   ChannelInf(channel_name): continue while the channel's last value is not +-inf. (Pylearn2's
 *       docstring says so; its code returns isinf(v), i.e. continues only while the value IS
 *       infinite, which stops every run after its first epoch: mltrain does what it documents.)
 *   PatienceBasedTermCrit(prop_decrease, initial_patience, patience_increase = 2,
 *       channel_name) (Pylearn2's training_algorithms/sgd.py): n = the channel's number of
 *       records (the epoch-0 record included); v < best (1 - prop_decrease) -> patience =
 *       max(patience, n patience_increase), best = v; continue while n < patience. Without
 *       channel_name the monitor must have exactly one channel.
 *   And(criteria): all continue (evaluated in order, stopping at the first that says stop, as
 *       Python's all()); Or(criteria): any continues (stopping at the first that continues).
 * Their state (counters, best values) is checkpointed under "termination/...". */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "train_impl.h"

typedef struct epoch_counter {
    mt__termination base;
    int64_t max_epochs;
    bool new_epochs;
    bool initialized;
    int64_t epochs_done;
} epoch_counter;

typedef struct monitor_based {
    mt__termination base;
    double prop_decrease;
    int64_t N;
    char *channel;
    mt_cfg_loc channel_loc;
    int64_t countdown;
    double best;
} monitor_based;

typedef struct channel_target {
    mt__termination base;
    char *channel;
    mt_cfg_loc channel_loc;
    double target;
} channel_target;

typedef struct match_channel {
    mt__termination base;
    char *channel, *prev_channel, *prev_monitor;
    mt_cfg_loc channel_loc;
    bool has_target;
    double target;
} match_channel;

typedef struct channel_inf {
    mt__termination base;
    char *channel;
    mt_cfg_loc channel_loc;
} channel_inf;

typedef struct patience {
    mt__termination base;
    double prop_decrease, patience_increase;
    char *channel; /* "" = the monitor's only channel */
    mt_cfg_loc channel_loc;
    double patience, best;
} patience;

typedef struct combo {
    mt__termination base;
    bool is_or;
    int32_t n;
    mt__termination **items;
} combo;

static mt_status channel_value(const mt__run *run, const char *name, mt_cfg_loc loc,
                               const char *who, double *v)
{
    mt_status st = mt__run_channel(run, name, v);
    if (st) return mt_cfg_error(st, loc, "%s: %s", who, mt_last_error());
    return MT_OK;
}

/* ---------------------------------------------------------------- EpochCounter */

static mt_status ec_continue(mt__termination *t, mt__run *run, bool *cont)
{
    epoch_counter *e = (epoch_counter *)t;
    if (!e->initialized) {
        e->epochs_done = e->new_epochs ? 0 : run->epochs_seen - 1;
        e->initialized = true;
    }
    e->epochs_done++;
    *cont = e->epochs_done < e->max_epochs;
    return MT_OK;
}

static const mt__ckpt_field ec_fields[] = {
    MT__FIELD(epoch_counter, initialized, MT__FIELD_BOOL, "initialized"),
    MT__FIELD(epoch_counter, epochs_done, MT__FIELD_I64, "epochs_done")};

static const mt__termination_ops ec_ops = {.name = "EpochCounter",
                                           .continue_learning = ec_continue,
                                           .fields = ec_fields,
                                           .n_fields = 2};

/* ---------------------------------------------------------------- MonitorBased */

static mt_status mb_continue(mt__termination *t, mt__run *run, bool *cont)
{
    monitor_based *m = (monitor_based *)t;
    double v;
    mt_status st = channel_value(run, m->channel, m->channel_loc, "MonitorBased", &v);
    if (st) return st;
    if (v < (1.0 - m->prop_decrease) * m->best)
        m->countdown = m->N;
    else
        m->countdown -= 1;
    if (v < m->best) m->best = v;
    *cont = m->countdown > 0;
    return MT_OK;
}

static mt_status mb_check(const mt__termination *t, const mt__run *run, const mt__chanvals *k)
{
    const monitor_based *m = (const monitor_based *)t;
    return mt__chanvals_require(k, m->channel, m->channel_loc, "MonitorBased");
}

static const mt__ckpt_field mb_fields[] = {
    MT__FIELD(monitor_based, countdown, MT__FIELD_I64, "countdown"),
    MT__FIELD(monitor_based, best, MT__FIELD_F64, "best_value")};

static const mt__termination_ops mb_ops = {.name = "MonitorBased",
                                           .continue_learning = mb_continue,
                                           .check_channels = mb_check,
                                           .fields = mb_fields,
                                           .n_fields = 2};

/* ---------------------------------------------------------------- ChannelTarget */

static mt_status ct_continue(mt__termination *t, mt__run *run, bool *cont)
{
    channel_target *c = (channel_target *)t;
    double v;
    mt_status st = channel_value(run, c->channel, c->channel_loc, "ChannelTarget", &v);
    *cont = v > c->target;
    return st;
}

static mt_status ct_check(const mt__termination *t, const mt__run *run, const mt__chanvals *k)
{
    const channel_target *c = (const channel_target *)t;
    return mt__chanvals_require(k, c->channel, c->channel_loc, "ChannelTarget");
}

static const mt__termination_ops ct_ops = {.name = "ChannelTarget",
                                           .continue_learning = ct_continue,
                                           .check_channels = ct_check};

/* ---------------------------------------------------------------- MatchChannel */

static mt_status mc_continue(mt__termination *t, mt__run *run, bool *cont)
{
    match_channel *m = (match_channel *)t;
    mt_status st;
    if (!m->has_target) {
        st = mt__run_old_channel(run, m->prev_monitor, m->prev_channel, &m->target);
        if (st) return mt_cfg_error(st, m->base.loc, "MatchChannel: %s", mt_last_error());
        m->has_target = true;
    }
    double v;
    if ((st = channel_value(run, m->channel, m->channel_loc, "MatchChannel", &v))) return st;
    *cont = v > m->target;
    return MT_OK;
}

static mt_status mc_check(const mt__termination *t, const mt__run *run, const mt__chanvals *k)
{
    const match_channel *m = (const match_channel *)t;
    mt_status st = mt__chanvals_require(k, m->channel, m->channel_loc, "MatchChannel");
    if (st || !run) return st;
    for (int32_t i = 0; i < run->n_old_monitors; i++) {
        if (strcmp(run->old_monitors[i].name, m->prev_monitor)) continue;
        if (mt_monitor_history_channel(&run->old_monitors[i], m->prev_channel, false))
            return MT_OK;
        return mt_cfg_error(MT_ERR_INVALID, m->base.loc,
                            "MatchChannel: monitor '%s' has no channel '%s'", m->prev_monitor,
                            m->prev_channel);
    }
    return mt_cfg_error(MT_ERR_INVALID, m->base.loc,
                        "MatchChannel: no monitor named '%s' (the model must come from "
                        "push_monitor {name: '%s'})",
                        m->prev_monitor, m->prev_monitor);
}

static const mt__ckpt_field mc_fields[] = {
    MT__FIELD(match_channel, has_target, MT__FIELD_BOOL, "has_target"),
    MT__FIELD(match_channel, target, MT__FIELD_F64, "target")};

static const mt__termination_ops mc_ops = {.name = "MatchChannel",
                                           .continue_learning = mc_continue,
                                           .check_channels = mc_check,
                                           .fields = mc_fields,
                                           .n_fields = 2};

/* ---------------------------------------------------------------- ChannelInf */

static mt_status ci_continue(mt__termination *t, mt__run *run, bool *cont)
{
    channel_inf *c = (channel_inf *)t;
    double v = 0;
    mt_status st = channel_value(run, c->channel, c->channel_loc, "ChannelInf", &v);
    *cont = st != MT_OK || !isinf(v);
    return st;
}

static mt_status ci_check(const mt__termination *t, const mt__run *run, const mt__chanvals *k)
{
    const channel_inf *c = (const channel_inf *)t;
    return mt__chanvals_require(k, c->channel, c->channel_loc, "ChannelInf");
}

static const mt__termination_ops ci_ops = {.name = "ChannelInf",
                                           .continue_learning = ci_continue,
                                           .check_channels = ci_check};

/* ---------------------------------------------------------------- PatienceBasedTermCrit */

static mt_status pb_name(const patience *p, const mt__chanvals *cv, const char **out)
{
    if (*p->channel) {
        *out = p->channel;
        return mt__chanvals_require(cv, p->channel, p->channel_loc, "PatienceBasedTermCrit");
    }
    /* the monitor's only channel, not counting the two timing channels every run records */
    int32_t found = -1, n = 0;
    for (int32_t i = 0; i < cv->n; i++) {
        if (strcmp(cv->names[i], "training_seconds_this_epoch") == 0 ||
            strcmp(cv->names[i], "total_seconds_last_epoch") == 0)
            continue;
        found = i;
        n++;
    }
    if (n != 1)
        return mt_cfg_error(MT_ERR_INVALID, p->base.loc,
                            "PatienceBasedTermCrit: without channel_name the monitor must have "
                            "exactly one channel besides the timing ones (it has %d)",
                            (int)n);
    *out = cv->names[found];
    return MT_OK;
}

static mt_status pb_continue(mt__termination *t, mt__run *run, bool *cont)
{
    patience *p = (patience *)t;
    const char *name = NULL;
    mt_status st = pb_name(p, &run->last, &name);
    if (st) return st;
    const mt_chan_history *h = mt_monitor_history_channel(&run->history, name, false);
    if (!h || h->n < 1)
        return mt_cfg_error(MT_ERR_NOT_FOUND, p->channel_loc,
                            "PatienceBasedTermCrit: channel '%s' has no record", name);
    double n = (double)h->n, v = h->records[h->n - 1].value;
    if (v < p->best * (1.0 - p->prop_decrease)) {
        p->patience = fmax(p->patience, n * p->patience_increase);
        p->best = v;
    }
    *cont = n < p->patience;
    return MT_OK;
}

static mt_status pb_check(const mt__termination *t, const mt__run *run, const mt__chanvals *k)
{
    const char *name;
    return pb_name((const patience *)t, k, &name);
}

static const mt__ckpt_field pb_fields[] = {
    MT__FIELD(patience, patience, MT__FIELD_F64, "patience"),
    MT__FIELD(patience, best, MT__FIELD_F64, "best_value")};

static const mt__termination_ops pb_ops = {.name = "PatienceBasedTermCrit",
                                           .continue_learning = pb_continue,
                                           .check_channels = pb_check,
                                           .fields = pb_fields,
                                           .n_fields = 2};

/* ---------------------------------------------------------------- And / Or */

static mt_status combo_continue(mt__termination *t, mt__run *run, bool *cont)
{
    combo *c = (combo *)t;
    *cont = !c->is_or;
    for (int32_t i = 0; i < c->n; i++) {
        bool ci = true;
        mt_status st = c->items[i]->ops->continue_learning(c->items[i], run, &ci);
        if (st) return st;
        if (c->is_or && ci) {
            *cont = true;
            return MT_OK;
        }
        if (!c->is_or && !ci) {
            *cont = false;
            return MT_OK;
        }
    }
    return MT_OK;
}

static mt_status combo_save(const mt__termination *t, const char *prefix, mt_ckpt *c)
{
    const combo *k = (const combo *)t;
    char p[256], idx[16];
    mt_status st = MT_OK;
    for (int32_t i = 0; i < k->n && !st; i++) {
        snprintf(idx, sizeof(idx), "%d", (int)i);
        st = mt__termination_save(k->items[i], mt__path_join(p, sizeof(p), prefix, idx), c);
    }
    return st;
}

static mt_status combo_load(mt__termination *t, const char *prefix, const mt_ckpt *c)
{
    combo *k = (combo *)t;
    char p[256], idx[16];
    mt_status st = MT_OK;
    for (int32_t i = 0; i < k->n && !st; i++) {
        snprintf(idx, sizeof(idx), "%d", (int)i);
        st = mt__termination_load(k->items[i], mt__path_join(p, sizeof(p), prefix, idx), c);
    }
    return st;
}

static mt_status combo_check(const mt__termination *t, const mt__run *run,
                             const mt__chanvals *known)
{
    const combo *k = (const combo *)t;
    for (int32_t i = 0; i < k->n; i++) {
        if (!k->items[i]->ops->check_channels) continue;
        mt_status st = k->items[i]->ops->check_channels(k->items[i], run, known);
        if (st) return st;
    }
    return MT_OK;
}

static const mt__termination_ops and_ops = {.name = "And",
                                            .continue_learning = combo_continue,
                                            .save_state = combo_save,
                                            .load_state = combo_load,
                                            .check_channels = combo_check};
static const mt__termination_ops or_ops = {.name = "Or",
                                           .continue_learning = combo_continue,
                                           .save_state = combo_save,
                                           .load_state = combo_load,
                                           .check_channels = combo_check};

int64_t mt__termination_max_epochs(const mt__termination *t)
{
    if (!t) return -1;
    if (t->ops == &ec_ops) return ((const epoch_counter *)t)->max_epochs;
    if (t->ops == &and_ops || t->ops == &or_ops) {
        const combo *c = (const combo *)t;
        int64_t best = -1;
        for (int32_t i = 0; i < c->n; i++) {
            int64_t m = mt__termination_max_epochs(c->items[i]);
            if (t->ops == &and_ops) {
                if (m >= 0 && (best < 0 || m < best)) best = m;
            } else {
                if (m < 0) return -1;
                if (m > best) best = m;
            }
        }
        return best;
    }
    return -1;
}

/* ---------------------------------------------------------------- components */

static void term_destroy(void *obj)
{
    mt__termination *t = obj;
    if (!t) return;
    if (t->ops == &mb_ops) mt_free(((monitor_based *)t)->channel);
    if (t->ops == &ct_ops) mt_free(((channel_target *)t)->channel);
    if (t->ops == &ci_ops) mt_free(((channel_inf *)t)->channel);
    if (t->ops == &pb_ops) mt_free(((patience *)t)->channel);
    if (t->ops == &mc_ops) {
        match_channel *m = (match_channel *)t;
        mt_free(m->channel);
        mt_free(m->prev_channel);
        mt_free(m->prev_monitor);
    }
    if (t->ops == &and_ops || t->ops == &or_ops) mt_free(((combo *)t)->items);
    mt_free(t);
}

static mt_status dup_key(const mt_cfg_node *node, const char *key, const char *dflt, char **out)
{
    const char *s = NULL;
    mt_status st = mt_cfg_get_string(node, key, dflt, &s);
    if (st) return st;
    *out = mt_strdup(s ? s : "");
    return *out ? MT_OK : mt_err_set(MT_ERR_NOMEM, "%s", key);
}

static mt_status build_ec(mt_cfg_builder *b, const mt_cfg_node *node, void **out)
{
    epoch_counter *e = mt_calloc(1, sizeof(*e));
    if (!e) return mt_err_set(MT_ERR_NOMEM, "EpochCounter");
    e->base.ops = &ec_ops;
    e->base.loc = node->loc;
    mt_status st = mt_cfg_get_int(node, "max_epochs", 0, &e->max_epochs);
    if (!st) st = mt_cfg_get_bool(node, "new_epochs", true, &e->new_epochs);
    if (!st && e->max_epochs < 0)
        st = mt_cfg_error(MT_ERR_RANGE, mt_cfg_key_loc(node, "max_epochs"),
                          "EpochCounter: max_epochs must be >= 0 (got %lld)",
                          (long long)e->max_epochs);
    if (st) {
        term_destroy(e);
        return st;
    }
    *out = e;
    return MT_OK;
}

static mt_status build_mb(mt_cfg_builder *b, const mt_cfg_node *node, void **out)
{
    monitor_based *m = mt_calloc(1, sizeof(*m));
    if (!m) return mt_err_set(MT_ERR_NOMEM, "MonitorBased");
    m->base.ops = &mb_ops;
    m->base.loc = node->loc;
    m->best = INFINITY;
    mt_status st = mt_cfg_get_float(node, "prop_decrease", 0.01, &m->prop_decrease);
    if (!st) st = mt_cfg_get_int(node, "N", 5, &m->N);
    if (!st) st = dup_key(node, "channel_name", "objective", &m->channel);
    m->channel_loc = mt_cfg_get(node, "channel_name") ? mt_cfg_key_loc(node, "channel_name")
                                                       : node->loc;
    m->countdown = m->N;
    if (st) {
        term_destroy(m);
        return st;
    }
    *out = m;
    return MT_OK;
}

static mt_status build_ct(mt_cfg_builder *b, const mt_cfg_node *node, void **out)
{
    channel_target *c = mt_calloc(1, sizeof(*c));
    if (!c) return mt_err_set(MT_ERR_NOMEM, "ChannelTarget");
    c->base.ops = &ct_ops;
    c->base.loc = node->loc;
    mt_status st = dup_key(node, "channel_name", NULL, &c->channel);
    if (!st) st = mt__get_value(b, node, "target", NAN, &c->target);
    c->channel_loc = mt_cfg_key_loc(node, "channel_name");
    if (st) {
        term_destroy(c);
        return st;
    }
    *out = c;
    return MT_OK;
}

static mt_status build_mc(mt_cfg_builder *b, const mt_cfg_node *node, void **out)
{
    match_channel *m = mt_calloc(1, sizeof(*m));
    if (!m) return mt_err_set(MT_ERR_NOMEM, "MatchChannel");
    m->base.ops = &mc_ops;
    m->base.loc = node->loc;
    mt_status st = dup_key(node, "channel_name", NULL, &m->channel);
    if (!st) st = dup_key(node, "prev_channel_name", NULL, &m->prev_channel);
    if (!st) st = dup_key(node, "prev_monitor_name", NULL, &m->prev_monitor);
    m->channel_loc = mt_cfg_key_loc(node, "channel_name");
    if (st) {
        term_destroy(m);
        return st;
    }
    *out = m;
    return MT_OK;
}

static mt_status build_ci(mt_cfg_builder *b, const mt_cfg_node *node, void **out)
{
    channel_inf *c = mt_calloc(1, sizeof(*c));
    if (!c) return mt_err_set(MT_ERR_NOMEM, "ChannelInf");
    c->base.ops = &ci_ops;
    c->base.loc = node->loc;
    c->channel_loc = mt_cfg_key_loc(node, "channel_name");
    mt_status st = dup_key(node, "channel_name", NULL, &c->channel);
    if (st) {
        term_destroy(c);
        return st;
    }
    *out = c;
    return MT_OK;
}

static mt_status build_pb(mt_cfg_builder *b, const mt_cfg_node *node, void **out)
{
    patience *p = mt_calloc(1, sizeof(*p));
    if (!p) return mt_err_set(MT_ERR_NOMEM, "PatienceBasedTermCrit");
    p->base.ops = &pb_ops;
    p->base.loc = node->loc;
    p->best = INFINITY;
    p->channel_loc = mt_cfg_get(node, "channel_name") ? mt_cfg_key_loc(node, "channel_name")
                                                       : node->loc;
    mt_status st = mt_cfg_get_float(node, "prop_decrease", NAN, &p->prop_decrease);
    if (!st) st = mt_cfg_get_float(node, "initial_patience", NAN, &p->patience);
    if (!st) st = mt_cfg_get_float(node, "patience_increase", 2.0, &p->patience_increase);
    if (!st) st = dup_key(node, "channel_name", "", &p->channel);
    if (!st && !(p->prop_decrease >= 0 && p->prop_decrease < 1))
        st = mt_cfg_error(MT_ERR_RANGE, mt_cfg_key_loc(node, "prop_decrease"),
                          "PatienceBasedTermCrit: prop_decrease must be in [0, 1) (got %g)",
                          p->prop_decrease);
    if (!st && !(p->patience_increase > 0 && isfinite(p->patience)))
        st = mt_cfg_error(MT_ERR_RANGE, node->loc,
                          "PatienceBasedTermCrit: needs a finite initial_patience and "
                          "patience_increase > 0");
    if (st) {
        term_destroy(p);
        return st;
    }
    *out = p;
    return MT_OK;
}

static mt_status build_combo(mt_cfg_builder *b, const mt_cfg_node *node, void **out, bool is_or)
{
    combo *c = mt_calloc(1, sizeof(*c));
    if (!c) return mt_err_set(MT_ERR_NOMEM, "And/Or");
    c->base.ops = is_or ? &or_ops : &and_ops;
    c->base.loc = node->loc;
    c->is_or = is_or;
    const mt_cfg_node *list = mt_cfg_get(node, "criteria");
    int32_t n = list && list->kind == MT_CFG_LIST ? list->n : 0;
    c->items = mt_calloc((size_t)(n > 0 ? n : 1), sizeof(*c->items));
    mt_status st = c->items ? MT_OK : mt_err_set(MT_ERR_NOMEM, "And/Or");
    for (int32_t i = 0; i < n && !st; i++) {
        void *obj = NULL;
        st = mt_cfg_build(b, list->items[i], "termination", &obj, NULL);
        if (!st) c->items[c->n++] = obj;
    }
    if (st) {
        term_destroy(c);
        return st;
    }
    *out = c;
    return MT_OK;
}

static mt_status build_and(mt_cfg_builder *b, const mt_cfg_node *node, void **out)
{
    return build_combo(b, node, out, false);
}

static mt_status build_or(mt_cfg_builder *b, const mt_cfg_node *node, void **out)
{
    return build_combo(b, node, out, true);
}

#define TC "pylearn2.termination_criteria."
#define KEND {NULL, 0, false, false, NULL, false, NULL}

static const mt_cfg_key ec_keys[] = {
    {"max_epochs", MT_CFG_T_INT, true, false, NULL, false, "number of epochs to train"},
    {"new_epochs", MT_CFG_T_BOOL, false, false, NULL, false,
     "count from 0 (true, default) or from the epochs already seen"},
    KEND};
static const mt_cfg_key mb_keys[] = {
    {"prop_decrease", MT_CFG_T_FLOAT, false, false, NULL, false,
     "relative improvement that resets the countdown (default 0.01)"},
    {"N", MT_CFG_T_INT, false, false, NULL, false, "monitor calls without improvement (5)"},
    {"channel_name", MT_CFG_T_STRING, false, true, NULL, false, "default 'objective'"},
    KEND};
static const mt_cfg_key ct_keys[] = {
    {"channel_name", MT_CFG_T_STRING, true, false, NULL, false, "channel to watch"},
    {"target", MT_CFG_T_ANY, true, false, NULL, false, "stop once the channel <= target"},
    KEND};
static const mt_cfg_key mc_keys[] = {
    {"channel_name", MT_CFG_T_STRING, true, false, NULL, false, "channel of this run"},
    {"prev_channel_name", MT_CFG_T_STRING, true, false, NULL, false,
     "channel of the pushed monitor"},
    {"prev_monitor_name", MT_CFG_T_STRING, true, false, NULL, false,
     "name given to push_monitor"},
    KEND};
static const mt_cfg_key ci_keys[] = {
    {"channel_name", MT_CFG_T_STRING, true, false, NULL, false, "stop once it is +-inf"},
    KEND};
static const mt_cfg_key pb_keys[] = {
    {"prop_decrease", MT_CFG_T_FLOAT, true, false, NULL, false,
     "relative improvement over the best value that extends the patience"},
    {"initial_patience", MT_CFG_T_FLOAT, true, false, NULL, false,
     "train while the channel has fewer records than this"},
    {"patience_increase", MT_CFG_T_FLOAT, false, false, NULL, false,
     "patience = max(patience, records x this) on an improvement (2)"},
    {"channel_name", MT_CFG_T_STRING, false, true, NULL, false,
     "default: the monitor's only channel"},
    KEND};
static const mt_cfg_key combo_keys[] = {
    {"criteria", MT_CFG_T_OBJ_LIST, true, false, "termination", false, "criteria to combine"},
    KEND};

static const char *const ec_aliases[] = {TC "EpochCounter", NULL};
static const char *const mb_aliases[] = {TC "MonitorBased", NULL};
static const char *const ct_aliases[] = {TC "ChannelTarget", NULL};
static const char *const mc_aliases[] = {TC "MatchChannel", NULL};
static const char *const ci_aliases[] = {TC "ChannelInf", NULL};
static const char *const pb_aliases[] = {"pylearn2.training_algorithms.sgd.PatienceBasedTermCrit",
                                         NULL};
static const char *const and_aliases[] = {TC "And", NULL};
static const char *const or_aliases[] = {TC "Or", NULL};

static const mt_component term_components[] = {
    {"EpochCounter", "termination", ec_aliases, ec_keys, false, "stop after max_epochs epochs",
     build_ec, term_destroy, NULL},
    {"MonitorBased", "termination", mb_aliases, mb_keys, false,
     "stop after N monitor calls without a relative improvement of prop_decrease", build_mb,
     term_destroy, NULL},
    {"ChannelTarget", "termination", ct_aliases, ct_keys, false,
     "stop when a channel reaches a target", build_ct, term_destroy, NULL},
    {"MatchChannel", "termination", mc_aliases, mc_keys, false,
     "stop when a channel reaches the final value of a channel of a pushed monitor", build_mc,
     term_destroy, NULL},
    {"ChannelInf", "termination", ci_aliases, ci_keys, false,
     "stop when a channel becomes infinite", build_ci, term_destroy, NULL},
    {"PatienceBasedTermCrit", "termination", pb_aliases, pb_keys, false,
     "geometric-patience early stopping on a channel", build_pb, term_destroy, NULL},
    {"And", "termination", and_aliases, combo_keys, false, "continue while all continue",
     build_and, term_destroy, NULL},
    {"Or", "termination", or_aliases, combo_keys, false, "continue while any continues",
     build_or, term_destroy, NULL},
};

mt_status mt__train_register_termination(mt_cfg_registry *r)
{
    return mt__register_components(r, term_components,
                                   sizeof(term_components) / sizeof(term_components[0]));
}
