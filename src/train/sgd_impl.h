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

/* ---------------------------------------------------------------- SGD access for extensions */

/* True when a is an SGD (the algorithm MomentumAdjustor / LinearDecayOverEpoch need). */
bool mt__is_sgd(const mt__algorithm *a);

#endif /* MT_SGD_IMPL_H */
