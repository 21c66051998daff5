/* Private interface between SGD (sgd.c), its learning rules (rules.c) and its update
 * callbacks (callbacks.c). Exact formulas: research/pylearn2_hyperopt.md §1.4-1.5 and
 * docs/training.md. */
#ifndef MT_SGD_IMPL_H
#define MT_SGD_IMPL_H

#include "train_impl.h"

/* ---------------------------------------------------------------- learning rules */

typedef enum mt__rule_kind {
    MT__RULE_SGD = 0,   /* no learning_rule: p <- p - eps g */
    MT__RULE_MOMENTUM,  /* Momentum(init_momentum, nesterov_momentum) */
    MT__RULE_ADADELTA,  /* AdaDelta(decay) */
    MT__RULE_ADAGRAD,   /* AdaGrad(max_scaling) */
    MT__RULE_RMSPROP,   /* RMSProp(decay, max_scaling) */
    MT__RULE_ADAM,      /* Adam(beta1, beta2, epsilon): not in Pylearn2's main tree */
    MT__RULE_KIND_COUNT
} mt__rule_kind;

typedef struct mt__learning_rule {
    mt__rule_kind kind;
    double init_momentum;
    bool nesterov;
    double decay;
    double max_scaling;
    double beta1, beta2, epsilon;
    mt_cfg_loc loc;
} mt__learning_rule;

/* One optimizer state array (a shared variable of the training function). */
typedef struct mt__opt_state {
    char name[160];     /* checkpoint name "optimizer/<param>/<slot>" or "optimizer/<slot>" */
    mt_var var;         /* placeholder */
    mt_var new_value;   /* its update */
    mt_array value;     /* on the run's device */
} mt__opt_state;

typedef struct mt__rule_ctx {
    mt_graph *g;
    mt_device *dev;
    mt_var lr;          /* 0-d float32 placeholder "learning_rate" */
    mt_var momentum;    /* 0-d float32 placeholder "momentum" (Momentum only) */
    mt_var step;        /* 0-d float32 placeholder "adam_t" (Adam only) */
    mt_var step_new;    /* step + 1 */
    int32_t n_state, cap_state;
    mt__opt_state *state; /* owned */
} mt__rule_ctx;

/* Builds the update of one parameter: *new_p = rule(p, g, eps) where eps = lr * lr_scale,
 * adding the rule's state arrays (zeros, shaped like the param) to ctx. */
mt_status mt__rule_param_update(const mt__learning_rule *r, mt__rule_ctx *ctx,
                                const char *pname, mt_var p, mt_var grad, double lr_scale,
                                mt_var *new_p);
/* Before the first param: shared scalars of the rule (momentum, Adam's step). */
mt_status mt__rule_begin(const mt__learning_rule *r, mt__rule_ctx *ctx);
void mt__rule_ctx_clear(mt__rule_ctx *ctx);
const char *mt__rule_name(const mt__learning_rule *r);

/* ---------------------------------------------------------------- update callbacks */

typedef enum mt__callback_kind {
    MT__CB_EXPONENTIAL_DECAY = 0, /* ExponentialDecay(decay_factor, min_lr) */
    MT__CB_LINEAR_DECAY,          /* LinearDecay(start, saturate, decay_factor) */
    MT__CB_ANNEALED,              /* AnnealedLearningRate(anneal_start) */
    MT__CB_KIND_COUNT
} mt__callback_kind;

typedef struct mt__update_callback {
    mt__callback_kind kind;
    double decay_factor, min_lr;
    double start, saturate;
    double anneal_start;
    /* state */
    int64_t count;
    double base_lr;
    double step;
    bool min_reached;
    mt_cfg_loc loc;
} mt__update_callback;

/* Called after every SGD step with the current learning rate (float32 value); returns the
 * new one (Pylearn2 casts it to floatX: the caller stores it as float32). */
double mt__callback_apply(mt__update_callback *cb, double lr);
mt_status mt__callback_save(const mt__update_callback *cb, const char *prefix, mt_ckpt *c);
mt_status mt__callback_load(mt__update_callback *cb, const char *prefix, const mt_ckpt *c);

/* ---------------------------------------------------------------- float16 loss scaling */

/* precision.c: dynamic loss scaling of a float16 run (off for the other precisions: every
 * function below is then a no-op and the graph is unchanged). */
typedef struct mt__loss_scaler {
    bool on;
    double scale;        /* current scale S */
    int64_t good;        /* finite steps since S last changed */
    int64_t skipped;     /* steps skipped in this session */
    mt_var scale_var;    /* 0-d float32 placeholder "loss_scale" */
    mt_var ok_var;       /* 0-d float32 placeholder "loss_scale_ok": 1 when the last step's
                            gradients were all finite */
    mt_array scale_arr, ok_arr; /* their shared arrays on the run's device */
} mt__loss_scaler;

mt_status mt__scaler_init(mt__loss_scaler *ls, const mt__run *run, mt_graph *g);
/* cost * S (what SGD differentiates). */
mt_var mt__scaler_scale(const mt__loss_scaler *ls, mt_graph *g, mt_var cost);
/* grads[i] / S (float32) for every grads[i] != MT_VAR_NONE. */
void mt__scaler_unscale(const mt__loss_scaler *ls, mt_graph *g, int32_t n, mt_var *grads);
/* Every update value becomes where(ok, value, var) with ok = all grads finite, and the update
 * of ok_var is appended (updates needs room for one more). */
mt_status mt__scaler_guard(const mt__loss_scaler *ls, mt_graph *g, int32_t n_grads,
                           const mt_var *grads, mt_update *updates, int32_t *n_updates);
/* Binds the scale and flag arrays to whichever of the functions use them. */
mt_status mt__scaler_bind(mt__loss_scaler *ls, mt_device *dev, mt_function *const *fns,
                          int32_t n_fns);
/* After a step: reads the flag, halves S after a skipped step (*skipped), doubles it after
 * 2000 finite steps in a row. */
mt_status mt__scaler_after_step(mt__loss_scaler *ls, bool *skipped);
mt_status mt__scaler_save(const mt__loss_scaler *ls, mt_ckpt *c);
mt_status mt__scaler_load(mt__loss_scaler *ls, const mt_ckpt *c);
void mt__scaler_clear(mt__loss_scaler *ls);

/* ---------------------------------------------------------------- SGD access for extensions */

/* True when a is an SGD (the algorithm MomentumAdjustor / LinearDecayOverEpoch need). */
bool mt__is_sgd(const mt__algorithm *a);
/* SGD's optimizer state arrays (for the start of a data-parallel run): count and item i. */
int32_t mt__sgd_n_state(const mt__algorithm *a);
mt_array *mt__sgd_state(mt__algorithm *a, int32_t i);

#endif /* MT_SGD_IMPL_H */
