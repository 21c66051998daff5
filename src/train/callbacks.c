/* SGD update callbacks (Pylearn2's training_algorithms/sgd.py), run after every minibatch
 * step on the learning rate (a float32 shared value):
 *   ExponentialDecay(decay_factor, min_lr): first call keeps base = lr; call t sets
 *       lr = base / decay_factor^t until that is <= min_lr, then min_lr for good.
 *   LinearDecay(start, saturate, decay_factor): base and step = (base - base*decay_factor) /
 *       (saturate - start + 1) at the first call; call t: t < start -> base; start <= t <
 *       saturate -> base - step (t - start + 1); t >= saturate -> base * decay_factor.
 *   AnnealedLearningRate(anneal_start): lr = base * min(1, anneal_start / t), base taken at
 *       the first call. (Pylearn2's code re-reads base on every call because it never sets
 *       its _initialized flag, compounding the decay; we implement the documented 1/t
 *       schedule, see docs/training.md.)
 * Their counters are checkpointed so a resumed run continues the schedule exactly. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "sgd_impl.h"

double mt__callback_apply(mt__update_callback *cb, double lr)
{
    double new_lr = lr;
    switch (cb->kind) {
    case MT__CB_EXPONENTIAL_DECAY:
        if (cb->count == 0) cb->base_lr = lr;
        cb->count++;
        if (!cb->min_reached) {
            new_lr = cb->base_lr / pow(cb->decay_factor, (double)cb->count);
            if (new_lr <= cb->min_lr) {
                cb->min_reached = true;
                new_lr = cb->min_lr;
            }
        } else {
            new_lr = cb->min_lr;
        }
        break;
    case MT__CB_LINEAR_DECAY:
        if (cb->count == 0) {
            cb->base_lr = lr;
            cb->step = (cb->base_lr - cb->base_lr * cb->decay_factor) /
                       (cb->saturate - cb->start + 1.0);
        }
        cb->count++;
        if ((double)cb->count >= cb->start) {
            if ((double)cb->count < cb->saturate)
                new_lr = cb->base_lr - cb->step * ((double)cb->count - cb->start + 1.0);
            else
                new_lr = cb->base_lr * cb->decay_factor;
        } else {
            new_lr = cb->base_lr;
        }
        break;
    case MT__CB_ANNEALED:
        if (cb->count == 0) cb->base_lr = lr;
        cb->count++;
        new_lr = cb->base_lr * fmin(1.0, cb->anneal_start / (double)cb->count);
        break;
    default:
        break;
    }
    return new_lr;
}

mt_status mt__callback_save(const mt__update_callback *cb, const char *prefix, mt_ckpt *c)
{
    char k[256];
    mt_status st;
    if ((st = mt_ckpt_put_int(c, mt__path_join(k, sizeof(k), prefix, "count"), cb->count)) ||
        (st = mt_ckpt_put_double(c, mt__path_join(k, sizeof(k), prefix, "base_lr"),
                                 cb->base_lr)) ||
        (st = mt_ckpt_put_double(c, mt__path_join(k, sizeof(k), prefix, "step"), cb->step)) ||
        (st = mt_ckpt_put_int(c, mt__path_join(k, sizeof(k), prefix, "min_reached"),
                              cb->min_reached)))
        return st;
    return MT_OK;
}

mt_status mt__callback_load(mt__update_callback *cb, const char *prefix, const mt_ckpt *c)
{
    char k[256];
    int64_t mr = 0;
    mt_status st;
    if ((st = mt_ckpt_get_int(c, mt__path_join(k, sizeof(k), prefix, "count"), &cb->count)) ||
        (st = mt_ckpt_get_double(c, mt__path_join(k, sizeof(k), prefix, "base_lr"),
                                 &cb->base_lr)) ||
        (st = mt_ckpt_get_double(c, mt__path_join(k, sizeof(k), prefix, "step"), &cb->step)) ||
        (st = mt_ckpt_get_int(c, mt__path_join(k, sizeof(k), prefix, "min_reached"), &mr)))
        return st;
    cb->min_reached = mr != 0;
    return MT_OK;
}

/* ---------------------------------------------------------------- components */

static void cb_destroy(void *obj)
{
    mt_free(obj);
}

static mt_status cb_alloc(const mt_cfg_node *node, mt__callback_kind kind,
                          mt__update_callback **out)
{
    mt__update_callback *cb = mt_calloc(1, sizeof(*cb));
    if (!cb) return mt_err_set(MT_ERR_NOMEM, "update callback");
    cb->kind = kind;
    cb->loc = node->loc;
    *out = cb;
    return MT_OK;
}

static mt_status build_expdecay(mt_cfg_builder *b, const mt_cfg_node *node, void **out)
{
    mt__update_callback *cb = NULL;
    mt_status st = cb_alloc(node, MT__CB_EXPONENTIAL_DECAY, &cb);
    if (st) return st;
    if ((st = mt_cfg_get_float(node, "decay_factor", NAN, &cb->decay_factor)) ||
        (st = mt_cfg_get_float(node, "min_lr", NAN, &cb->min_lr)))
        goto fail;
    if (!(cb->decay_factor > 0.0)) {
        st = mt_cfg_error(MT_ERR_RANGE, mt_cfg_key_loc(node, "decay_factor"),
                          "ExponentialDecay: decay_factor must be > 0 (got %g)",
                          cb->decay_factor);
        goto fail;
    }
    *out = cb;
    return MT_OK;
fail:
    mt_free(cb);
    return st;
}

static mt_status build_lindecay(mt_cfg_builder *b, const mt_cfg_node *node, void **out)
{
    mt__update_callback *cb = NULL;
    mt_status st = cb_alloc(node, MT__CB_LINEAR_DECAY, &cb);
    if (st) return st;
    if ((st = mt_cfg_get_float(node, "start", NAN, &cb->start)) ||
        (st = mt_cfg_get_float(node, "saturate", NAN, &cb->saturate)) ||
        (st = mt_cfg_get_float(node, "decay_factor", NAN, &cb->decay_factor)))
        goto fail;
    if (!(cb->start > 0.0) || !(cb->saturate > cb->start)) {
        st = mt_cfg_error(MT_ERR_RANGE, node->loc,
                          "LinearDecay: needs 0 < start < saturate (got start %g, saturate %g)",
                          cb->start, cb->saturate);
        goto fail;
    }
    *out = cb;
    return MT_OK;
fail:
    mt_free(cb);
    return st;
}

static mt_status build_annealed(mt_cfg_builder *b, const mt_cfg_node *node, void **out)
{
    mt__update_callback *cb = NULL;
    mt_status st = cb_alloc(node, MT__CB_ANNEALED, &cb);
    if (st) return st;
    if ((st = mt_cfg_get_float(node, "anneal_start", NAN, &cb->anneal_start))) goto fail;
    if (!(cb->anneal_start > 0.0)) {
        st = mt_cfg_error(MT_ERR_RANGE, mt_cfg_key_loc(node, "anneal_start"),
                          "AnnealedLearningRate: anneal_start must be > 0 (got %g)",
                          cb->anneal_start);
        goto fail;
    }
    *out = cb;
    return MT_OK;
fail:
    mt_free(cb);
    return st;
}

#define SGD_PREFIX "pylearn2.training_algorithms.sgd."

static const mt_cfg_key expdecay_keys[] = {
    {"decay_factor", MT_CFG_T_FLOAT, true, false, NULL, false,
     "lr_t = lr_0 / decay_factor^t (t = SGD steps)"},
    {"min_lr", MT_CFG_T_FLOAT, true, false, NULL, false, "floor of the learning rate"},
    {NULL, 0, false, false, NULL, false, NULL}};
static const mt_cfg_key lindecay_keys[] = {
    {"start", MT_CFG_T_FLOAT, true, false, NULL, false, "step at which the decay starts"},
    {"saturate", MT_CFG_T_FLOAT, true, false, NULL, false, "step at which it ends"},
    {"decay_factor", MT_CFG_T_FLOAT, true, false, NULL, false,
     "final learning rate = decay_factor * initial"},
    {NULL, 0, false, false, NULL, false, NULL}};
static const mt_cfg_key annealed_keys[] = {
    {"anneal_start", MT_CFG_T_FLOAT, true, false, NULL, false,
     "lr = lr_0 * min(1, anneal_start / t)"},
    {NULL, 0, false, false, NULL, false, NULL}};

static const char *const expdecay_aliases[] = {SGD_PREFIX "ExponentialDecay", NULL};
static const char *const lindecay_aliases[] = {SGD_PREFIX "LinearDecay", NULL};
static const char *const annealed_aliases[] = {SGD_PREFIX "AnnealedLearningRate", NULL};

static const mt_component cb_components[] = {
    {"ExponentialDecay", "update_callback", expdecay_aliases, expdecay_keys, false,
     "divides the learning rate by decay_factor after every step, down to min_lr",
     build_expdecay, cb_destroy, NULL},
    {"LinearDecay", "update_callback", lindecay_aliases, lindecay_keys, false,
     "linear learning-rate decay over SGD steps", build_lindecay, cb_destroy, NULL},
    {"AnnealedLearningRate", "update_callback", annealed_aliases, annealed_keys, false,
     "1/t learning-rate annealing over SGD steps", build_annealed, cb_destroy, NULL},
};

mt_status mt__train_register_callbacks(mt_cfg_registry *r)
{
    for (size_t i = 0; i < sizeof(cb_components) / sizeof(cb_components[0]); i++) {
        mt_status st = mt_cfg_registry_add(r, &cb_components[i]);
        if (st) return st;
    }
    return MT_OK;
}
