/* Train extensions (Pylearn2's train_extensions and the epoch-level schedules living next to
 * the algorithms), called after every monitor call (the initial one included):
 *   MonitorBasedSaveBest(channel_name, save_path, store_best_model, start_epoch,
 *       higher_is_better, tag_key): when the channel's last value beats the best so far
 *       (lower, or higher with higher_is_better) and epochs_seen >= start_epoch, writes a
 *       checkpoint of the run to save_path.
 *   MomentumAdjustor(final_momentum, start, saturate): counts its calls c (1 at the initial
 *       monitor); mu = (1 - a) mu0 + a final, a = clip((c - start) / (saturate - start), 0, 1)
 *       (saturate == start: final once c >= start); mu0 = the momentum at the first call.
 *   LinearDecayOverEpoch(start, saturate, decay_factor): lr0 and step = (lr0 - lr0 *
 *       decay_factor) / (saturate - start + 1) at the first call; call c: c < start -> lr0;
 *       start <= c < saturate -> lr0 - step (c - start + 1); else lr0 * decay_factor.
 *   OneOverEpoch(start, half_life = start + 1, min_lr = 1e-6): lr = max(min_lr, lr0 *
 *       (c < start ? 1 : half_life / (c - start + half_life))).
 *   MonitorBasedLRAdjuster(high_trigger = 1, shrink_amt = .99, low_trigger = .99, grow_amt =
 *       1.01, min_lr = 1e-7, max_lr = 1, dataset_name, channel_name): v = the channel's
 *       records (channel_name, else dataset_name + "_objective", else the one channel whose
 *       name ends in "objective"); from the second record on: lr *= shrink_amt when v[-1] >
 *       high_trigger v[-2], else lr *= grow_amt when v[-1] > low_trigger v[-2]; then lr is
 *       clipped to [min_lr, max_lr]. lr is float32 as in Pylearn2 (the product of two float32
 *       values rounded once). It reads the monitor history, which checkpoints keep.
 * Their counters are checkpointed under "extension/<i>/". PolyakAveraging (polyak.c) and
 * WindowAndFlip (window_flip.c) are registered here too. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "train_impl.h"

typedef struct save_best {
    mt__extension base;
    char *channel;
    mt_cfg_loc channel_loc;
    char *save_path;
    int64_t start_epoch;
    double coeff;
    double best;
} save_best;

typedef enum sched_kind { SCHED_MOMENTUM, SCHED_LINEAR_EPOCH, SCHED_ONE_OVER_EPOCH } sched_kind;

typedef struct schedule {
    mt__extension base;
    sched_kind kind;
    double final_value, start, saturate, decay_factor, half_life, min_lr;
    bool initialized;
    double init_value, step;
    int64_t count;
} schedule;

/* ---------------------------------------------------------------- MonitorBasedSaveBest */

static mt_status sb_on_monitor(mt__extension *e, mt__run *run, bool *cont)
{
    save_best *s = (save_best *)e;
    double v;
    mt_status st = mt__run_channel(run, s->channel, &v);
    if (st) return mt_cfg_error(st, s->channel_loc, "MonitorBasedSaveBest: %s", mt_last_error());
    if (s->coeff * v < s->coeff * s->best && run->epochs_seen >= s->start_epoch) {
        s->best = v;
        if (s->save_path) {
            mt_log(MT_LOG_INFO, "new best %s = %g at epoch %lld: saving %s", s->channel, v,
                   (long long)run->epochs_seen, s->save_path);
            st = mt__run_save(run, s->save_path);
            if (st) return mt_err_prefix(st, "MonitorBasedSaveBest: ");
        }
    }
    return MT_OK;
}

static mt_status sb_check(const mt__extension *e, const mt__run *run, const mt__chanvals *k)
{
    const save_best *s = (const save_best *)e;
    return mt__chanvals_require(k, s->channel, s->channel_loc, "MonitorBasedSaveBest");
}

static const mt__ckpt_field sb_fields[] = {
    MT__FIELD(save_best, best, MT__FIELD_F64, "best_cost")};

static const mt__extension_ops sb_ops = {.name = "MonitorBasedSaveBest",
                                         .on_monitor = sb_on_monitor,
                                         .check_channels = sb_check,
                                         .fields = sb_fields,
                                         .n_fields = 1};

/* ---------------------------------------------------------------- schedules */

static double schedule_value(const schedule *s)
{
    double c = (double)s->count;
    switch (s->kind) {
    case SCHED_MOMENTUM: {
        double w = s->saturate - s->start;
        if (w == 0) return c >= s->start ? s->final_value : s->init_value;
        double a = (c - s->start) / w;
        a = a < 0 ? 0 : a > 1 ? 1 : a;
        return s->init_value * (1 - a) + a * s->final_value;
    }
    case SCHED_LINEAR_EPOCH:
        if (c >= s->start) {
            if (c < s->saturate) return s->init_value - s->step * (c - s->start + 1);
            return s->init_value * s->decay_factor;
        }
        return s->init_value;
    case SCHED_ONE_OVER_EPOCH: {
        double scale = c < s->start ? 1.0 : s->half_life / (c - s->start + s->half_life);
        return fmax(s->min_lr, s->init_value * scale);
    }
    }
    return s->init_value;
}

static mt_status sched_on_monitor(mt__extension *e, mt__run *run, bool *cont)
{
    schedule *s = (schedule *)e;
    const char *what = s->kind == SCHED_MOMENTUM ? "momentum" : "learning_rate";
    const char *who = s->kind == SCHED_MOMENTUM ? "MomentumAdjustor"
                      : s->kind == SCHED_LINEAR_EPOCH ? "LinearDecayOverEpoch"
                                                      : "OneOverEpoch";
    mt__algorithm *a = run->alg;
    double cur;
    mt_status st = a && a->ops->get_scalar ? a->ops->get_scalar(a, what, &cur)
                                           : mt_err_set(MT_ERR_NOT_FOUND, "no algorithm");
    if (st)
        return mt_cfg_error(MT_ERR_INVALID, e->loc, "%s needs an algorithm with a %s (%s)", who,
                            what, mt_last_error());
    if (!s->initialized) {
        s->init_value = (double)(float)cur;
        if (s->kind == SCHED_LINEAR_EPOCH)
            s->step = (s->init_value - s->init_value * s->decay_factor) /
                      (s->saturate - s->start + 1);
        if (s->kind == SCHED_ONE_OVER_EPOCH && s->init_value < s->min_lr)
            return mt_cfg_error(MT_ERR_RANGE, e->loc,
                                "OneOverEpoch: the initial learning rate %g is below min_lr %g",
                                s->init_value, s->min_lr);
        s->initialized = true;
    }
    s->count++;
    return a->ops->set_scalar(a, what, schedule_value(s));
}

static const mt__ckpt_field sched_fields[] = {
    MT__FIELD(schedule, initialized, MT__FIELD_BOOL, "initialized"),
    MT__FIELD(schedule, init_value, MT__FIELD_F64, "init_value"),
    MT__FIELD(schedule, step, MT__FIELD_F64, "step"),
    MT__FIELD(schedule, count, MT__FIELD_I64, "count")};

static const mt__extension_ops sched_ops = {.name = "schedule",
                                            .on_monitor = sched_on_monitor,
                                            .fields = sched_fields,
                                            .n_fields = 4};

/* ---------------------------------------------------------------- MonitorBasedLRAdjuster */

typedef struct lr_adjuster {
    mt__extension base;
    double high_trigger, shrink_amt, low_trigger, grow_amt, min_lr, max_lr;
    char *channel; /* NULL: the one channel whose name ends in "objective" */
    mt_cfg_loc channel_loc;
} lr_adjuster;

static bool ends_with_objective(const char *name)
{
    size_t n = strlen(name);
    return n >= 9 && !strcmp(name + n - 9, "objective");
}

/* The channel the adjuster follows, among the names of cv. */
static mt_status lra_channel(const lr_adjuster *l, const mt__chanvals *cv, const char **out)
{
    if (l->channel) {
        *out = l->channel;
        return mt__chanvals_require(cv, l->channel, l->channel_loc, "MonitorBasedLRAdjuster");
    }
    int32_t found = 0;
    for (int32_t i = 0; i < cv->n; i++)
        if (ends_with_objective(cv->names[i])) *out = cv->names[i], found++;
    if (found == 1) return MT_OK;
    return mt_cfg_error(MT_ERR_INVALID, l->base.loc,
                        "MonitorBasedLRAdjuster: %s channels end with 'objective': give "
                        "channel_name or dataset_name",
                        found ? "several" : "no");
}

static mt_status lra_setup(mt__extension *e, mt__run *run)
{
    mt__algorithm *a = run->alg;
    double lr;
    mt_status st = a && a->ops->get_scalar ? a->ops->get_scalar(a, "learning_rate", &lr)
                                           : mt_err_set(MT_ERR_NOT_FOUND, "no algorithm");
    if (st)
        return mt_cfg_error(MT_ERR_INVALID, e->loc,
                            "MonitorBasedLRAdjuster needs an algorithm with a learning_rate "
                            "(%s)",
                            mt_last_error());
    return MT_OK;
}

static mt_status lra_on_monitor(mt__extension *e, mt__run *run, bool *cont)
{
    const lr_adjuster *l = (const lr_adjuster *)e;
    const char *name = NULL;
    mt_status st = lra_channel(l, &run->last, &name);
    if (st) return st;
    const mt_chan_history *h = mt_monitor_history_channel(&run->history, name, false);
    if (!h || h->n < 2) return MT_OK; /* only the initial record: nothing learned yet */
    double cur, v1 = h->records[h->n - 1].value, v0 = h->records[h->n - 2].value;
    mt__algorithm *a = run->alg;
    if ((st = a->ops->get_scalar(a, "learning_rate", &cur))) return st;
    double lr = (float)cur;
    if (v1 > l->high_trigger * v0)
        lr = (float)(lr * (double)(float)l->shrink_amt);
    else if (v1 > l->low_trigger * v0)
        lr = (float)(lr * (double)(float)l->grow_amt);
    lr = fmin(l->max_lr, fmax(l->min_lr, lr));
    if ((float)lr != (float)cur)
        mt_log(MT_LOG_INFO, "MonitorBasedLRAdjuster: %s went from %g to %g: learning rate %g",
               name, v0, v1, (double)(float)lr);
    return a->ops->set_scalar(a, "learning_rate", (double)(float)lr);
}

static mt_status lra_check(const mt__extension *e, const mt__run *run, const mt__chanvals *k)
{
    const char *name;
    return lra_channel((const lr_adjuster *)e, k, &name);
}

static const mt__extension_ops lra_ops = {.name = "MonitorBasedLRAdjuster",
                                          .setup = lra_setup,
                                          .on_monitor = lra_on_monitor,
                                          .check_channels = lra_check};

/* ---------------------------------------------------------------- components */

static void ext_destroy(void *obj)
{
    mt__extension *e = obj;
    if (!e) return;
    if (e->ops == &sb_ops) {
        mt_free(((save_best *)e)->channel);
        mt_free(((save_best *)e)->save_path);
    }
    if (e->ops == &lra_ops) mt_free(((lr_adjuster *)e)->channel);
    mt_free(e);
}

static mt_status build_sb(mt_cfg_builder *b, const mt_cfg_node *node, void **out)
{
    save_best *s = mt_calloc(1, sizeof(*s));
    if (!s) return mt_err_set(MT_ERR_NOMEM, "MonitorBasedSaveBest");
    s->base.ops = &sb_ops;
    s->base.loc = node->loc;
    const char *ch = NULL, *path = NULL;
    bool hib = false, store = false;
    mt_status st;
    if ((st = mt_cfg_get_string(node, "channel_name", NULL, &ch)) ||
        (st = mt_cfg_get_string(node, "save_path", NULL, &path)) ||
        (st = mt_cfg_get_int(node, "start_epoch", 0, &s->start_epoch)) ||
        (st = mt_cfg_get_bool(node, "higher_is_better", false, &hib)) ||
        (st = mt_cfg_get_bool(node, "store_best_model", false, &store)))
        goto fail;
    if (!path && !store) {
        st = mt_cfg_error(MT_ERR_INVALID, node->loc,
                          "MonitorBasedSaveBest: give save_path (or store_best_model: true)");
        goto fail;
    }
    s->channel = mt_strdup(ch ? ch : "");
    s->save_path = path ? mt_strdup(path) : NULL;
    if (!s->channel || (path && !s->save_path)) {
        st = mt_err_set(MT_ERR_NOMEM, "MonitorBasedSaveBest");
        goto fail;
    }
    s->channel_loc = mt_cfg_key_loc(node, "channel_name");
    s->coeff = hib ? -1.0 : 1.0;
    s->best = s->coeff * INFINITY;
    *out = s;
    return MT_OK;
fail:
    ext_destroy(s);
    return st;
}

static mt_status sched_alloc(const mt_cfg_node *node, sched_kind kind, schedule **out)
{
    schedule *s = mt_calloc(1, sizeof(*s));
    if (!s) return mt_err_set(MT_ERR_NOMEM, "extension");
    s->base.ops = &sched_ops;
    s->base.loc = node->loc;
    s->kind = kind;
    *out = s;
    return MT_OK;
}

static mt_status build_momadj(mt_cfg_builder *b, const mt_cfg_node *node, void **out)
{
    schedule *s = NULL;
    mt_status st = sched_alloc(node, SCHED_MOMENTUM, &s);
    if (st) return st;
    if ((st = mt__get_value(b, node, "final_momentum", NAN, &s->final_value)) ||
        (st = mt_cfg_get_float(node, "start", NAN, &s->start)) ||
        (st = mt_cfg_get_float(node, "saturate", NAN, &s->saturate)))
        goto fail;
    if (s->saturate < s->start) {
        st = mt_cfg_error(MT_ERR_RANGE, node->loc,
                          "MomentumAdjustor: momentum can't saturate (%g) before it starts "
                          "increasing (%g)",
                          s->saturate, s->start);
        goto fail;
    }
    *out = s;
    return MT_OK;
fail:
    mt_free(s);
    return st;
}

static mt_status build_lindecay_epoch(mt_cfg_builder *b, const mt_cfg_node *node, void **out)
{
    schedule *s = NULL;
    mt_status st = sched_alloc(node, SCHED_LINEAR_EPOCH, &s);
    if (st) return st;
    if ((st = mt_cfg_get_float(node, "start", NAN, &s->start)) ||
        (st = mt_cfg_get_float(node, "saturate", NAN, &s->saturate)) ||
        (st = mt_cfg_get_float(node, "decay_factor", NAN, &s->decay_factor)))
        goto fail;
    if (!(s->start >= 0) || !(s->saturate > s->start)) {
        st = mt_cfg_error(MT_ERR_RANGE, node->loc,
                          "LinearDecayOverEpoch: needs 0 <= start < saturate (got start %g, "
                          "saturate %g)",
                          s->start, s->saturate);
        goto fail;
    }
    *out = s;
    return MT_OK;
fail:
    mt_free(s);
    return st;
}

static mt_status build_one_over(mt_cfg_builder *b, const mt_cfg_node *node, void **out)
{
    schedule *s = NULL;
    mt_status st = sched_alloc(node, SCHED_ONE_OVER_EPOCH, &s);
    if (st) return st;
    if ((st = mt_cfg_get_float(node, "start", NAN, &s->start)) ||
        (st = mt_cfg_get_float(node, "half_life", NAN, &s->half_life)) ||
        (st = mt_cfg_get_float(node, "min_lr", 1e-6, &s->min_lr)))
        goto fail;
    if (isnan(s->half_life)) s->half_life = s->start + 1;
    if (!(s->start >= 0) || !(s->half_life > 0)) {
        st = mt_cfg_error(MT_ERR_RANGE, node->loc,
                          "OneOverEpoch: needs start >= 0 and half_life > 0");
        goto fail;
    }
    *out = s;
    return MT_OK;
fail:
    mt_free(s);
    return st;
}

static mt_status build_lra(mt_cfg_builder *b, const mt_cfg_node *node, void **out)
{
    lr_adjuster *l = mt_calloc(1, sizeof(*l));
    if (!l) return mt_err_set(MT_ERR_NOMEM, "MonitorBasedLRAdjuster");
    l->base.ops = &lra_ops;
    l->base.loc = node->loc;
    const char *ch = NULL, *ds = NULL;
    mt_status st;
    if ((st = mt_cfg_get_float(node, "high_trigger", 1.0, &l->high_trigger)) ||
        (st = mt_cfg_get_float(node, "shrink_amt", 0.99, &l->shrink_amt)) ||
        (st = mt_cfg_get_float(node, "low_trigger", 0.99, &l->low_trigger)) ||
        (st = mt_cfg_get_float(node, "grow_amt", 1.01, &l->grow_amt)) ||
        (st = mt_cfg_get_float(node, "min_lr", 1e-7, &l->min_lr)) ||
        (st = mt_cfg_get_float(node, "max_lr", 1.0, &l->max_lr)) ||
        (st = mt_cfg_get_string(node, "channel_name", NULL, &ch)) ||
        (st = mt_cfg_get_string(node, "dataset_name", NULL, &ds)))
        goto fail;
    if (ch && ds) {
        st = mt_cfg_error(MT_ERR_INVALID, mt_cfg_key_loc(node, "dataset_name"),
                          "MonitorBasedLRAdjuster: channel_name and dataset_name both given "
                          "(dataset_name means channel '%s_objective')",
                          ds);
        goto fail;
    }
    if (!(l->min_lr <= l->max_lr) || !(l->shrink_amt > 0) || !(l->grow_amt > 0)) {
        st = mt_cfg_error(MT_ERR_RANGE, node->loc,
                          "MonitorBasedLRAdjuster: needs min_lr <= max_lr (got %g, %g) and "
                          "shrink_amt, grow_amt > 0",
                          l->min_lr, l->max_lr);
        goto fail;
    }
    if (ch || ds) {
        size_t n = strlen(ch ? ch : ds) + 11;
        l->channel = mt_malloc(n);
        if (!l->channel) {
            st = mt_err_set(MT_ERR_NOMEM, "MonitorBasedLRAdjuster");
            goto fail;
        }
        snprintf(l->channel, n, ch ? "%s" : "%s_objective", ch ? ch : ds);
        l->channel_loc = mt_cfg_key_loc(node, ch ? "channel_name" : "dataset_name");
    }
    *out = l;
    return MT_OK;
fail:
    ext_destroy(l);
    return st;
}

#define KEND {NULL, 0, false, false, NULL, false, NULL}

static const mt_cfg_key sb_keys[] = {
    {"channel_name", MT_CFG_T_STRING, true, false, NULL, false, "channel to minimize"},
    {"save_path", MT_CFG_T_STRING, false, true, NULL, false, "checkpoint of the best model"},
    {"store_best_model", MT_CFG_T_BOOL, false, false, NULL, false, "accepted (no effect)"},
    {"start_epoch", MT_CFG_T_INT, false, false, NULL, false, "save only from this epoch on"},
    {"higher_is_better", MT_CFG_T_BOOL, false, false, NULL, false, "maximize instead"},
    {"tag_key", MT_CFG_T_STRING, false, true, NULL, false, "accepted (no effect)"},
    KEND};
static const mt_cfg_key momadj_keys[] = {
    {"final_momentum", MT_CFG_T_ANY, true, false, NULL, false, "momentum at saturate"},
    {"start", MT_CFG_T_FLOAT, true, false, NULL, false, "epoch the increase starts"},
    {"saturate", MT_CFG_T_FLOAT, true, false, NULL, false, "epoch it reaches final_momentum"},
    KEND};
static const mt_cfg_key lde_keys[] = {
    {"start", MT_CFG_T_FLOAT, true, false, NULL, false, "epoch the decay starts"},
    {"saturate", MT_CFG_T_FLOAT, true, false, NULL, false, "epoch it ends"},
    {"decay_factor", MT_CFG_T_FLOAT, true, false, NULL, false, "final lr = lr0 * decay_factor"},
    KEND};
static const mt_cfg_key ooe_keys[] = {
    {"start", MT_CFG_T_FLOAT, true, false, NULL, false, "epoch the decay starts"},
    {"half_life", MT_CFG_T_FLOAT, false, true, NULL, false, "default start + 1"},
    {"min_lr", MT_CFG_T_FLOAT, false, false, NULL, false, "default 1e-6"},
    KEND};

static const mt_cfg_key lra_keys[] = {
    {"high_trigger", MT_CFG_T_FLOAT, false, false, NULL, false,
     "shrink when the channel > high_trigger x its previous value (1)"},
    {"shrink_amt", MT_CFG_T_FLOAT, false, false, NULL, false, "factor when shrinking (.99)"},
    {"low_trigger", MT_CFG_T_FLOAT, false, false, NULL, false,
     "else grow when the channel > low_trigger x its previous value (.99)"},
    {"grow_amt", MT_CFG_T_FLOAT, false, false, NULL, false, "factor when growing (1.01)"},
    {"min_lr", MT_CFG_T_FLOAT, false, false, NULL, false, "floor of the learning rate (1e-7)"},
    {"max_lr", MT_CFG_T_FLOAT, false, false, NULL, false, "ceiling of the learning rate (1)"},
    {"dataset_name", MT_CFG_T_STRING, false, true, NULL, false,
     "follow the channel '<dataset_name>_objective'"},
    {"channel_name", MT_CFG_T_STRING, false, true, NULL, false,
     "channel to follow (default: the one ending in 'objective')"},
    KEND};

static const char *const lra_aliases[] = {
    "pylearn2.training_algorithms.sgd.MonitorBasedLRAdjuster", NULL};
static const char *const sb_aliases[] = {"pylearn2.train_extensions.best_params.MonitorBasedSaveBest",
                                         NULL};
static const char *const momadj_aliases[] = {
    "pylearn2.training_algorithms.learning_rule.MomentumAdjustor",
    "pylearn2.training_algorithms.sgd.MomentumAdjustor", NULL};
static const char *const lde_aliases[] = {"pylearn2.training_algorithms.sgd.LinearDecayOverEpoch",
                                          NULL};
static const char *const ooe_aliases[] = {"pylearn2.training_algorithms.sgd.OneOverEpoch", NULL};

static const mt_component ext_components[] = {
    {"MonitorBasedSaveBest", "extension", sb_aliases, sb_keys, false,
     "saves a checkpoint whenever a channel reaches a new best", build_sb, ext_destroy, NULL},
    {"MomentumAdjustor", "extension", momadj_aliases, momadj_keys, false,
     "linear momentum schedule over epochs", build_momadj, ext_destroy, NULL},
    {"LinearDecayOverEpoch", "extension", lde_aliases, lde_keys, false,
     "linear learning-rate decay over epochs", build_lindecay_epoch, ext_destroy, NULL},
    {"OneOverEpoch", "extension", ooe_aliases, ooe_keys, false, "1/epoch learning-rate decay",
     build_one_over, ext_destroy, NULL},
    {"MonitorBasedLRAdjuster", "extension", lra_aliases, lra_keys, false,
     "shrinks the learning rate when a channel went up, grows it when it fell slowly",
     build_lra, ext_destroy, NULL},
};

mt_status mt__train_register_extensions(mt_cfg_registry *r)
{
    mt_status st = mt__register_components(r, ext_components,
                                           sizeof(ext_components) / sizeof(ext_components[0]));
    if (!st) st = mt__train_register_polyak(r);
    if (!st) st = mt__train_register_window_flip(r);
    return st;
}
