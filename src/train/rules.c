/* Learning rules of SGD (Pylearn2's training_algorithms/learning_rule.py): the YAML components
 * Momentum, AdaDelta, AdaGrad, RMSProp and Adam, and the graph of each rule's update of one
 * parameter. With eps = learning_rate * lr_scale and g the gradient (all float32):
 *   none       p <- p - eps g
 *   Momentum   v <- mu v - eps g; p <- p + v            (nesterov: p <- p + mu v_new - eps g)
 *   AdaDelta   E[g2] <- rho E[g2] + (1-rho) g^2; dx = -sqrt(E[dx2] + eps) / sqrt(E[g2] + eps) g;
 *              E[dx2] <- rho E[dx2] + (1-rho) dx^2; p <- p + dx   (eps IS the learning rate)
 *   AdaGrad    G <- G + g^2; p <- p - eps g / max(1/max_scaling, sqrt(G))
 *   RMSProp    E[g2] <- rho E[g2] + (1-rho) g^2; p <- p - eps g / max(sqrt(E[g2]), 1/max_scaling)
 *   Adam       t <- t + 1; m <- b1 m + (1-b1) g; v <- b2 v + (1-b2) g^2;
 *              p <- p - eps (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + epsilon)
 * The state arrays start at zero and are named as Pylearn2 names its shared variables
 * (vel_<p>, mean_square_grad_<p>, mean_square_dx_<p>, sum_square_grad_<p>), stored in
 * checkpoints as "optimizer/<name>". */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "sgd_impl.h"

/* ---------------------------------------------------------------- update graphs */

static mt_var lit(mt_graph *g, double v)
{
    return mt_graph_literal_float(g, v);
}

static mt_status add_state(mt__rule_ctx *ctx, const char *name, int32_t ndim,
                           const int64_t *shape, mt_var *out)
{
    if (ctx->n_state == ctx->cap_state) {
        int32_t cap = ctx->cap_state ? ctx->cap_state * 2 : 16;
        mt__opt_state *s = mt_realloc(ctx->state, (size_t)cap * sizeof(*s));
        if (!s) return mt_err_set(MT_ERR_NOMEM, "SGD: optimizer state table");
        ctx->state = s;
        ctx->cap_state = cap;
    }
    mt__opt_state *st = &ctx->state[ctx->n_state];
    memset(st, 0, sizeof(*st));
    int len = snprintf(st->name, sizeof(st->name), "optimizer/%s", name);
    if (len < 0 || (size_t)len >= sizeof(st->name))
        return mt_err_set(MT_ERR_RANGE, "SGD: the checkpoint key of optimizer state %s would be "
                          "%d bytes long, over the limit of %zu", name, len,
                          sizeof(st->name) - 1);
    for (int32_t i = 0; i < ndim; i++)
        if (shape[i] < 0)
            return mt_err_set(MT_ERR_SHAPE, "SGD: parameter of %s has an unknown size", name);
    st->var = mt_graph_placeholder(ctx->g, name, MT_FLOAT32, ndim, shape);
    if (st->var == MT_VAR_NONE)
        return mt_err_set(mt_graph_status(ctx->g), "SGD: state %s: %s", name,
                          mt_graph_last_error(ctx->g));
    mt_status st_ = mt_array_zeros(&st->value, ctx->dev, MT_FLOAT32, ndim, shape);
    if (st_) return mt_err_prefix(st_, "SGD: state %s: ", name);
    ctx->n_state++;
    *out = st->var;
    return MT_OK;
}

static void set_state_update(mt__rule_ctx *ctx, mt_var var, mt_var value)
{
    for (int32_t i = 0; i < ctx->n_state; i++)
        if (ctx->state[i].var == var) ctx->state[i].new_value = value;
}

mt_status mt__rule_begin(const mt__learning_rule *r, mt__rule_ctx *ctx)
{
    mt_graph *g = ctx->g;
    if (r && r->kind == MT__RULE_MOMENTUM) {
        ctx->momentum = mt_graph_placeholder(g, "momentum", MT_FLOAT32, 0, NULL);
        if (!ctx->momentum) return mt_err_set(MT_ERR_INVALID, "%s", mt_graph_last_error(g));
    }
    if (r && r->kind == MT__RULE_ADAM) {
        mt_var t = MT_VAR_NONE;
        mt_status st = add_state(ctx, "adam_t", 0, NULL, &t);
        if (st) return st;
        ctx->step = t;
        ctx->step_new = mt_graph_add(g, t, lit(g, 1.0));
        set_state_update(ctx, t, ctx->step_new);
    }
    return MT_OK;
}

/* The name "<slot>_<param>" of a state of parameter pname ("vel_h0_W"): ERR_RANGE naming the
 * parameter when it does not fit, so two states never share a name cut short. */
static mt_status state_name(char *buf, size_t cap, const char *slot, const char *pname)
{
    int len = snprintf(buf, cap, "%s_%s", slot, pname);
    if (len < 0 || (size_t)len >= cap)
        return mt_err_set(MT_ERR_RANGE, "SGD: the name of optimizer state %s of parameter '%s' "
                          "would be %d bytes long, over the limit of %zu", slot, pname, len,
                          cap - 1);
    return MT_OK;
}

static mt_status check_graph(mt_graph *g, const char *pname)
{
    if (mt_graph_status(g))
        return mt_err_set(mt_graph_status(g), "SGD: update of %s: %s", pname,
                          mt_graph_last_error(g));
    return MT_OK;
}

mt_status mt__rule_param_update(const mt__learning_rule *r, mt__rule_ctx *ctx,
                                const char *pname, mt_var p, mt_var grad, double lr_scale,
                                mt_var *new_p)
{
    mt_graph *g = ctx->g;
    const mt_type *t = mt_graph_type(g, p);
    if (!t) return mt_err_set(MT_ERR_INVALID, "SGD: parameter %s has no type", pname);
    mt_var eps = lr_scale == 1.0 ? ctx->lr : mt_graph_mul(g, ctx->lr, lit(g, lr_scale));
    mt__rule_kind kind = r ? r->kind : MT__RULE_SGD;
    char name[256];
    mt_var s1 = MT_VAR_NONE, s2 = MT_VAR_NONE;
    mt_status st = MT_OK;
    switch (kind) {
    case MT__RULE_SGD:
        *new_p = mt_graph_sub(g, p, mt_graph_mul(g, eps, grad));
        break;
    case MT__RULE_MOMENTUM: {
        if ((st = state_name(name, sizeof(name), "vel", pname)) ||
            (st = add_state(ctx, name, t->ndim, t->shape, &s1)))
            return st;
        mt_var step = mt_graph_mul(g, eps, grad);
        mt_var v_new = mt_graph_sub(g, mt_graph_mul(g, ctx->momentum, s1), step);
        set_state_update(ctx, s1, v_new);
        mt_var inc = r->nesterov ? mt_graph_sub(g, mt_graph_mul(g, ctx->momentum, v_new), step)
                                 : v_new;
        *new_p = mt_graph_add(g, p, inc);
        break;
    }
    case MT__RULE_ADADELTA: {
        if ((st = state_name(name, sizeof(name), "mean_square_grad", pname)) ||
            (st = add_state(ctx, name, t->ndim, t->shape, &s1)))
            return st;
        if ((st = state_name(name, sizeof(name), "mean_square_dx", pname)) ||
            (st = add_state(ctx, name, t->ndim, t->shape, &s2)))
            return st;
        mt_var rho = lit(g, r->decay), one_m = lit(g, 1.0 - r->decay);
        mt_var msg = mt_graph_add(g, mt_graph_mul(g, rho, s1),
                                  mt_graph_mul(g, one_m, mt_graph_square(g, grad)));
        mt_var rms_dx = mt_graph_sqrt(g, mt_graph_add(g, s2, eps));
        mt_var rms_g = mt_graph_sqrt(g, mt_graph_add(g, msg, eps));
        mt_var dx = mt_graph_mul(g, mt_graph_neg(g, mt_graph_div(g, rms_dx, rms_g)), grad);
        mt_var msdx = mt_graph_add(g, mt_graph_mul(g, rho, s2),
                                   mt_graph_mul(g, one_m, mt_graph_square(g, dx)));
        set_state_update(ctx, s1, msg);
        set_state_update(ctx, s2, msdx);
        *new_p = mt_graph_add(g, p, dx);
        break;
    }
    case MT__RULE_ADAGRAD: {
        if ((st = state_name(name, sizeof(name), "sum_square_grad", pname)) ||
            (st = add_state(ctx, name, t->ndim, t->shape, &s1)))
            return st;
        mt_var ssg = mt_graph_add(g, s1, mt_graph_square(g, grad));
        mt_var scale = mt_graph_maximum(g, lit(g, 1.0 / r->max_scaling), mt_graph_sqrt(g, ssg));
        mt_var dx = mt_graph_mul(g, mt_graph_div(g, mt_graph_neg(g, eps), scale), grad);
        set_state_update(ctx, s1, ssg);
        *new_p = mt_graph_add(g, p, dx);
        break;
    }
    case MT__RULE_RMSPROP: {
        if ((st = state_name(name, sizeof(name), "mean_square_grad", pname)) ||
            (st = add_state(ctx, name, t->ndim, t->shape, &s1)))
            return st;
        mt_var msg = mt_graph_add(g, mt_graph_mul(g, lit(g, r->decay), s1),
                                  mt_graph_mul(g, lit(g, 1.0 - r->decay), mt_graph_square(g, grad)));
        mt_var rms = mt_graph_maximum(g, mt_graph_sqrt(g, msg), lit(g, 1.0 / r->max_scaling));
        mt_var dx = mt_graph_div(g, mt_graph_neg(g, mt_graph_mul(g, eps, grad)), rms);
        set_state_update(ctx, s1, msg);
        *new_p = mt_graph_add(g, p, dx);
        break;
    }
    case MT__RULE_ADAM: {
        if ((st = state_name(name, sizeof(name), "adam_m", pname)) ||
            (st = add_state(ctx, name, t->ndim, t->shape, &s1)))
            return st;
        if ((st = state_name(name, sizeof(name), "adam_v", pname)) ||
            (st = add_state(ctx, name, t->ndim, t->shape, &s2)))
            return st;
        mt_var m = mt_graph_add(g, mt_graph_mul(g, lit(g, r->beta1), s1),
                                mt_graph_mul(g, lit(g, 1.0 - r->beta1), grad));
        mt_var v = mt_graph_add(g, mt_graph_mul(g, lit(g, r->beta2), s2),
                                mt_graph_mul(g, lit(g, 1.0 - r->beta2), mt_graph_square(g, grad)));
        mt_var c1 = mt_graph_sub(g, lit(g, 1.0), mt_graph_pow(g, lit(g, r->beta1), ctx->step_new));
        mt_var c2 = mt_graph_sub(g, lit(g, 1.0), mt_graph_pow(g, lit(g, r->beta2), ctx->step_new));
        mt_var mhat = mt_graph_div(g, m, c1);
        mt_var vhat = mt_graph_div(g, v, c2);
        mt_var den = mt_graph_add(g, mt_graph_sqrt(g, vhat), lit(g, r->epsilon));
        set_state_update(ctx, s1, m);
        set_state_update(ctx, s2, v);
        *new_p = mt_graph_sub(g, p, mt_graph_mul(g, eps, mt_graph_div(g, mhat, den)));
        break;
    }
    default:
        return mt_err_set(MT_ERR_INTERNAL, "SGD: unknown learning rule %d", (int)kind);
    }
    return check_graph(g, pname);
}

void mt__rule_ctx_clear(mt__rule_ctx *ctx)
{
    for (int32_t i = 0; i < ctx->n_state; i++) mt_array_clear(&ctx->state[i].value);
    mt_free(ctx->state);
    memset(ctx, 0, sizeof(*ctx));
}

const char *mt__rule_name(const mt__learning_rule *r)
{
    static const char *const names[MT__RULE_KIND_COUNT] = {"none (plain SGD)", "Momentum",
                                                           "AdaDelta", "AdaGrad", "RMSProp",
                                                           "Adam"};
    return names[r ? r->kind : MT__RULE_SGD];
}

/* ---------------------------------------------------------------- components */

static void rule_destroy(void *obj)
{
    mt_free(obj);
}

static mt_status rule_alloc(const mt_cfg_node *node, mt__rule_kind kind, mt__learning_rule **out)
{
    mt__learning_rule *r = mt_calloc(1, sizeof(*r));
    if (!r) return mt_err_set(MT_ERR_NOMEM, "learning rule");
    r->kind = kind;
    r->loc = node->loc;
    *out = r;
    return MT_OK;
}

static mt_status range_err(const mt_cfg_node *node, const char *key, const char *what, double v)
{
    return mt_cfg_error(MT_ERR_RANGE, mt_cfg_key_loc(node, key), "%s: '%s' must be %s (got %g)",
                        node->tag ? node->tag : "learning rule", key, what, v);
}

static mt_status build_momentum(mt_cfg_builder *b, const mt_cfg_node *node, void **out)
{
    mt__learning_rule *r = NULL;
    mt_status st = rule_alloc(node, MT__RULE_MOMENTUM, &r);
    if (st) return st;
    if ((st = mt__get_value(b, node, "init_momentum", NAN, &r->init_momentum)) ||
        (st = mt_cfg_get_bool(node, "nesterov_momentum", false, &r->nesterov)))
        goto fail;
    if (!(r->init_momentum >= 0.0 && r->init_momentum < 1.0)) {
        st = range_err(node, "init_momentum", "in [0, 1)", r->init_momentum);
        goto fail;
    }
    *out = r;
    return MT_OK;
fail:
    mt_free(r);
    return st;
}

/* A float key with a default that must lie in [0, 1) (unit) or be > 0 (!unit). */
static mt_status get_ranged(const mt_cfg_node *node, const char *key, double dflt, bool unit,
                            double *out)
{
    mt_status st = mt_cfg_get_float(node, key, dflt, out);
    if (st) return st;
    if (unit ? !(*out >= 0.0 && *out < 1.0) : !(*out > 0.0))
        return range_err(node, key, unit ? "in [0, 1)" : "> 0", *out);
    return MT_OK;
}

static mt_status build_adadelta(mt_cfg_builder *b, const mt_cfg_node *node, void **out)
{
    mt__learning_rule *r = NULL;
    mt_status st = rule_alloc(node, MT__RULE_ADADELTA, &r);
    if (!st) st = get_ranged(node, "decay", 0.95, true, &r->decay);
    if (st) mt_free(r);
    else *out = r;
    return st;
}

static mt_status build_adagrad(mt_cfg_builder *b, const mt_cfg_node *node, void **out)
{
    mt__learning_rule *r = NULL;
    mt_status st = rule_alloc(node, MT__RULE_ADAGRAD, &r);
    if (!st) st = get_ranged(node, "max_scaling", 1e5, false, &r->max_scaling);
    if (st) mt_free(r);
    else *out = r;
    return st;
}

static mt_status build_rmsprop(mt_cfg_builder *b, const mt_cfg_node *node, void **out)
{
    mt__learning_rule *r = NULL;
    mt_status st = rule_alloc(node, MT__RULE_RMSPROP, &r);
    if (!st) st = get_ranged(node, "decay", 0.9, true, &r->decay);
    if (!st) st = get_ranged(node, "max_scaling", 1e5, false, &r->max_scaling);
    if (st) mt_free(r);
    else *out = r;
    return st;
}

static mt_status build_adam(mt_cfg_builder *b, const mt_cfg_node *node, void **out)
{
    mt__learning_rule *r = NULL;
    mt_status st = rule_alloc(node, MT__RULE_ADAM, &r);
    if (!st) st = get_ranged(node, "beta1", 0.9, true, &r->beta1);
    if (!st) st = get_ranged(node, "beta2", 0.999, true, &r->beta2);
    if (!st) st = get_ranged(node, "epsilon", 1e-8, false, &r->epsilon);
    if (st) mt_free(r);
    else *out = r;
    return st;
}

#define LR_PREFIX "pylearn2.training_algorithms.learning_rule."

static const mt_cfg_key momentum_keys[] = {
    {"init_momentum", MT_CFG_T_ANY, true, false, NULL, false,
     "initial momentum coefficient in [0, 1) (a number or a read_channel object)"},
    {"nesterov_momentum", MT_CFG_T_BOOL, false, false, NULL, false, "Nesterov's variant"},
    {NULL, 0, false, false, NULL, false, NULL}};
static const mt_cfg_key adadelta_keys[] = {
    {"decay", MT_CFG_T_FLOAT, false, false, NULL, false, "rho, default 0.95"},
    {NULL, 0, false, false, NULL, false, NULL}};
static const mt_cfg_key adagrad_keys[] = {
    {"max_scaling", MT_CFG_T_FLOAT, false, false, NULL, false, "default 1e5"},
    {NULL, 0, false, false, NULL, false, NULL}};
static const mt_cfg_key rmsprop_keys[] = {
    {"decay", MT_CFG_T_FLOAT, false, false, NULL, false, "rho, default 0.9"},
    {"max_scaling", MT_CFG_T_FLOAT, false, false, NULL, false, "default 1e5"},
    {NULL, 0, false, false, NULL, false, NULL}};
static const mt_cfg_key adam_keys[] = {
    {"beta1", MT_CFG_T_FLOAT, false, false, NULL, false, "default 0.9"},
    {"beta2", MT_CFG_T_FLOAT, false, false, NULL, false, "default 0.999"},
    {"epsilon", MT_CFG_T_FLOAT, false, false, NULL, false, "default 1e-8"},
    {NULL, 0, false, false, NULL, false, NULL}};

static const char *const momentum_aliases[] = {LR_PREFIX "Momentum", NULL};
static const char *const adadelta_aliases[] = {LR_PREFIX "AdaDelta", NULL};
static const char *const adagrad_aliases[] = {LR_PREFIX "AdaGrad", NULL};
static const char *const rmsprop_aliases[] = {LR_PREFIX "RMSProp", NULL};
static const char *const adam_aliases[] = {LR_PREFIX "Adam", NULL};

static const mt_component rule_components[] = {
    {"Momentum", "learning_rule", momentum_aliases, momentum_keys, false,
     "v <- mu v - lr g; p <- p + v (Hinton's guide, section 9)", build_momentum, rule_destroy,
     NULL},
    {"AdaDelta", "learning_rule", adadelta_aliases, adadelta_keys, false,
     "Zeiler's AdaDelta; the learning rate is its epsilon", build_adadelta, rule_destroy, NULL},
    {"AdaGrad", "learning_rule", adagrad_aliases, adagrad_keys, false, "Duchi et al.'s AdaGrad",
     build_adagrad, rule_destroy, NULL},
    {"RMSProp", "learning_rule", rmsprop_aliases, rmsprop_keys, false, "Hinton's RMSProp",
     build_rmsprop, rule_destroy, NULL},
    {"Adam", "learning_rule", adam_aliases, adam_keys, false,
     "Kingma & Ba's Adam (not in Pylearn2's main tree)", build_adam, rule_destroy, NULL},
};

mt_status mt__train_register_rules(mt_cfg_registry *r)
{
    for (size_t i = 0; i < sizeof(rule_components) / sizeof(rule_components[0]); i++) {
        mt_status st = mt_cfg_registry_add(r, &rule_components[i]);
        if (st) return st;
    }
    return MT_OK;
}
