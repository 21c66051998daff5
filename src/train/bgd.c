/* BGD: batch gradient descent with line searches and optional nonlinear conjugate gradient
 * (Pylearn2's training_algorithms/bgd.py BGD backed by optimization/batch_gradient_descent.py
 * BatchGradientDescent), plus the two extensions that adjust its step scale (ScaleStep,
 * StepShrinker).
 *
 * Per batch of the training iterator (shuffled_sequential by default, seeded with `seed`,
 * default [2012, 10, 16] as Pylearn2's BGD), `updates_per_batch` iterations of:
 *   1. cache the parameters;
 *   2. gradient g of the cost on the batch; with conjugate, the direction
 *        d = g + beta * d_prev   (d_prev: the previous direction, unnormalized),
 *        beta = max(0, (g.g - g.g_prev) / (1e-7 + g_prev.g_prev))   (Polak-Ribiere, PR+),
 *      where the first iteration of a batch starts from steepest descent (d = g) with
 *      reset_conjugate, and otherwise continues from the last direction and gradient of the
 *      previous batch; d = g when d is not a descent direction (d.g <= 0); the direction is
 *      normalized to unit norm;
 *   3. a line search over params = constrain(cache - alpha * lr_scale * d):
 *      default mode: try each alpha of the list (init_alpha, default .001 .005 .01 .05 .1),
 *        keep the best objective (ties: the bigger step), then adapt the list: /3 when no step
 *        or the smallest won (and alpha_0 > tol = 1e-6), x2 when the largest won, widen the
 *        list when nothing helped with tiny steps (stop the batch when alpha_last > 1: converged),
 *        otherwise pull the list towards the winner when neighbours are > 5x apart;
 *      'exhaustive': evaluate 0 and the list (default .5, 1), then repeatedly bisect next to the
 *        best point (double past the last), NaN counting as +inf, until the improvement falls
 *        below 1% of the previous one or more than 10 points were tried; the next list is
 *        [x/2, x] for the best x (the second point when 0 was best), x >= 2 min_init_alpha.
 *   With reset_alpha false the final list carries over to the next batch.
 * After the batch, scale_step != 1 mixes the old and the new parameters:
 *   p = (1 - scale_step) p_before + scale_step p_after.
 * Monitored (with a monitoring dataset): ave_step_size, ave_grad_size, ave_grad_mult (running
 * averages, weight 1 for the first value then 0.01, as Pylearn2).
 *
 * Compiled functions (all share the run's parameter arrays): the gradient step (arguments X,
 * y, the old-direction scale; outputs the norm, beta and whether the direction was reset;
 * updates the direction and previous-gradient arrays), the objective (X, y -> cost), the move
 * to a step size (alpha -> parameters from the cache and the direction, through the model's
 * norm constraints) and the step-scale mix. The cache is filled with mt_array_copy. The objective
 * at the start of an iteration is the best objective of the previous one when the cost is
 * deterministic and no parameter has a norm constraint (the parameters are then the same, so is
 * the value), which saves one forward pass per iteration.
 *
 * Deviations from Pylearn2. (1) Conjugate directions: Pylearn2's code keeps the previous
 * *direction* (times its norm) where its comments and docstring intend the previous gradient,
 * so its beta = (g.g - g.d_prev) / (1e-7 + d_prev.d_prev) and its directions are not
 * conjugate even on a quadratic with exact line searches (its docstring promises they are).
 * mltrain uses the Polak-Ribiere formula above, as documented there; across batches without
 * reset_conjugate it continues from the previous batch's last direction at its real scale
 * (Pylearn2: the normalized direction). (2) The descent check (Pylearn2 would search uphill,
 * i.e. waste the iteration). (3) A zero gradient ends the batch's iterations (Pylearn2
 * divides by the zero norm); a non-finite cost or gradient stops training with an error
 * naming the epoch, the batch and the first graph node holding a non-finite value (Pylearn2
 * asserts). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "mltrain/graph_grad.h"
#include "train_impl.h"

#define BGD_MAX_ALPHA 32     /* entries of init_alpha */
#define BGD_MAX_POINTS 64    /* points of one exhaustive line search */
#define BGD_TOL_FLOAT32 1e-6 /* Pylearn2's tol for a float32 objective */

typedef enum bgd_mode { BGD_LS_DEFAULT = 0, BGD_LS_EXHAUSTIVE } bgd_mode;

typedef struct mt__bgd {
    mt__algorithm base;
    /* settings */
    int64_t updates_per_batch;
    bool reset_alpha, conjugate, reset_conjugate, verbose;
    double min_init_alpha; /* NAN = None */
    bgd_mode mode;
    double scale_step;
    int32_t n_init_alpha;
    double init_alpha[BGD_MAX_ALPHA];
    bool scale_step_channel; /* an extension monitors scale_step */
    /* state (checkpointed) */
    int32_t n_alpha;
    double alpha[BGD_MAX_ALPHA]; /* the list the next batch starts with */
    float ave_step_size, ave_grad_size, ave_grad_mult, new_weight;
    /* per run */
    mt__algo_state r; /* graph, model graph, cost, iterator, batch arrays */
    bool reuse_obj; /* deterministic cost, no norm constraints: the objective after a line
                       search is the next iteration's start */
    int32_t n_train;    /* trainable (not frozen) parameters */
    int32_t *train;     /* their indices in the model */
    mt_var *grads;      /* gradient of the cost per trainable parameter */
    mt_var *dir_var;    /* direction placeholders */
    mt_var *gprev_var;  /* previous gradient placeholders (conjugate) */
    mt_var *before_var; /* parameter values before the batch (scale_step) */
    mt_array *dir, *gprev, *cache, *before;
    double last_norm; /* norm of the last direction (continued conjugacy) */
    mt_var old_scale, alpha_var, mix_var;
    mt_function *f_grad, *f_obj, *f_goto, *f_mix;
    mt_array old_scale_arr, alpha_arr, mix_arr;
} mt__bgd;

static const mt__algorithm_ops bgd_ops;

/* ---------------------------------------------------------------- small helpers */

static bool bgd_log_on(const mt__bgd *s)
{
    return mt_log_get_level() <= (s->verbose ? MT_LOG_INFO : MT_LOG_DEBUG);
}

static mt_log_level bgd_log_level(const mt__bgd *s)
{
    return s->verbose ? MT_LOG_INFO : MT_LOG_DEBUG;
}

static const char *pname(const mt__run *run, const mt__bgd *s, int32_t t)
{
    return mt_model_param_const(run->model, s->train[t])->name;
}

/* ---------------------------------------------------------------- setup: graphs */

static mt_var sum_all(mt_graph *g, mt_var x)
{
    return mt_graph_sum(g, x, 0, NULL, false);
}

/* A placeholder shaped like trainable parameter t, named "<what>/<param>". */
static mt_var param_like(mt__bgd *s, mt__run *run, int32_t t, const char *what)
{
    const mt_type *pt = mt_graph_type(s->r.g, s->r.mg.params[s->train[t]]);
    char nm[200];
    snprintf(nm, sizeof(nm), "%s/%s", what, pname(run, s, t));
    return mt_graph_placeholder(s->r.g, nm, MT_FLOAT32, pt ? pt->ndim : 0, pt ? pt->shape : NULL);
}

/* beta = max(0, (g.g - g.g_prev) / (1e-7 + g_prev.g_prev)) (Polak-Ribiere), 0 when there is
 * no previous direction (old scale 0) or no previous gradient. */
static mt_var pr_beta(mt__bgd *s)
{
    mt_graph *g = s->r.g;
    mt_var gg = MT_VAR_NONE, gp = MT_VAR_NONE, pp = MT_VAR_NONE;
    for (int32_t t = 0; t < s->n_train; t++) {
        mt_var a = sum_all(g, mt_graph_square(g, s->grads[t]));
        mt_var b = sum_all(g, mt_graph_mul(g, s->grads[t], s->gprev_var[t]));
        mt_var c = sum_all(g, mt_graph_square(g, s->gprev_var[t]));
        gg = t ? mt_graph_add(g, gg, a) : a;
        gp = t ? mt_graph_add(g, gp, b) : b;
        pp = t ? mt_graph_add(g, pp, c) : c;
    }
    mt_var zero = mt_graph_literal_float(g, 0.0);
    mt_var pr = mt_graph_div(g, mt_graph_sub(g, gg, gp),
                             mt_graph_add(g, mt_graph_literal_float(g, 1e-7), pp));
    mt_var have =
        mt_graph_logical_and(g, mt_graph_gt(g, pp, zero), mt_graph_gt(g, s->old_scale, zero));
    return mt_graph_where(g, have, mt_graph_maximum(g, pr, zero), zero);
}

/* The gradient step's graph: direction d = g (+ beta * previous direction, reset to g when
 * not a descent direction), normalized. new_dir / new_gprev: the updates of the direction
 * and previous-gradient arrays; out: norm, beta, reset (1 when the conjugate direction was
 * dropped for not descending). */
static mt_status build_direction(mt__bgd *s, mt__run *run, mt_var *new_dir, mt_var *new_gprev,
                                 mt_var out[3])
{
    mt_graph *g = s->r.g;
    mt_var *d = mt_calloc((size_t)s->n_train, sizeof(*d));
    if (!d) return mt_err_set(MT_ERR_NOMEM, "BGD direction");
    s->old_scale = mt_graph_placeholder(g, "bgd_old_scale", MT_FLOAT32, 0, NULL);
    for (int32_t t = 0; t < s->n_train; t++) {
        s->dir_var[t] = param_like(s, run, t, "bgd_direction");
        if (s->conjugate) s->gprev_var[t] = param_like(s, run, t, "bgd_previous_gradient");
        d[t] = s->grads[t];
        new_gprev[t] = s->grads[t];
    }
    mt_var zero = mt_graph_literal_float(g, 0.0);
    mt_var beta = mt_graph_scalar(g, MT_FLOAT32, 0.0), ok = MT_VAR_NONE;
    if (s->conjugate) {
        beta = pr_beta(s);
        mt_var dg = MT_VAR_NONE;
        for (int32_t t = 0; t < s->n_train; t++) {
            mt_var old = mt_graph_mul(g, s->dir_var[t], s->old_scale); /* unnormalized */
            d[t] = mt_graph_add(g, s->grads[t], mt_graph_mul(g, beta, old));
            mt_var x = sum_all(g, mt_graph_mul(g, d[t], s->grads[t]));
            dg = t ? mt_graph_add(g, dg, x) : x;
        }
        ok = mt_graph_gt(g, dg, zero);
        for (int32_t t = 0; t < s->n_train; t++)
            d[t] = mt_graph_where(g, ok, d[t], s->grads[t]);
    }
    mt_var nsq = MT_VAR_NONE;
    for (int32_t t = 0; t < s->n_train; t++) {
        mt_var x = sum_all(g, mt_graph_square(g, d[t]));
        nsq = t ? mt_graph_add(g, nsq, x) : x;
    }
    mt_var norm = mt_graph_sqrt(g, nsq);
    mt_var safe =
        mt_graph_where(g, mt_graph_gt(g, norm, zero), norm, mt_graph_literal_float(g, 1.0));
    for (int32_t t = 0; t < s->n_train; t++)
        new_dir[t] = mt_graph_div(g, d[t], safe);
    out[0] = norm;
    out[1] = beta;
    out[2] = s->conjugate ? mt_graph_cast(g, mt_graph_logical_not(g, ok), MT_FLOAT32)
                          : mt_graph_scalar(g, MT_FLOAT32, 0.0);
    mt_free(d);
    if (mt_graph_status(g))
        return mt_err_set(mt_graph_status(g), "BGD: %s", mt_graph_last_error(g));
    return MT_OK;
}

static mt_status compile(mt__bgd *s, mt__run *run, mt_function **f, int32_t n_in, const mt_var *in,
                         int32_t n_out, const mt_var *out, int32_t n_up, const mt_update *up,
                         const char *what)
{
    mt_function_options fo;
    mt_function_options_init(&fo);
    fo.mode = (mt_mode)run->opts->mode;
    mt_status st = mt_function_new(f, s->r.g, n_in, in, n_out, out, n_up, up, run->dev, &fo);
    if (st) return mt_err_prefix(st, "BGD: compiling the %s function: ", what);
    return mt__run_bind_params(run, *f, &s->r.mg);
}

/* The gradient step: X, y, old scale -> norm, beta, reset; updates the directions (and the
 * previous gradients). */
static mt_status setup_grad_fn(mt__bgd *s, mt__run *run)
{
    int32_t nt = s->n_train;
    mt_var *new_dir = mt_calloc((size_t)nt, sizeof(*new_dir));
    mt_var *new_gprev = mt_calloc((size_t)nt, sizeof(*new_gprev));
    mt_update *up = mt_calloc((size_t)(2 * nt), sizeof(*up));
    mt_status st =
        new_dir && new_gprev && up ? MT_OK : mt_err_set(MT_ERR_NOMEM, "BGD gradient step");
    mt_var outs[3];
    if (!st) st = build_direction(s, run, new_dir, new_gprev, outs);
    if (!st) {
        int32_t nu = 0;
        for (int32_t t = 0; t < nt; t++)
            up[nu++] = (mt_update){s->dir_var[t], new_dir[t]};
        for (int32_t t = 0; s->conjugate && t < nt; t++)
            up[nu++] = (mt_update){s->gprev_var[t], new_gprev[t]};
        mt_var in[3] = {s->r.mg.X, s->r.mg.y, s->old_scale};
        bool with_y = s->r.mg.y != MT_VAR_NONE;
        if (!with_y) in[1] = s->old_scale;
        st = compile(s, run, &s->f_grad, with_y ? 3 : 2, in, 3, outs, nu, up, "gradient");
    }
    for (int32_t t = 0; !st && t < nt; t++) {
        const mt_array *p = &run->params[s->train[t]];
        if ((st = mt_array_zeros(&s->dir[t], run->dev, MT_FLOAT32, p->ndim, p->dims)) ||
            (st = mt_array_empty(&s->cache[t], run->dev, MT_FLOAT32, p->ndim, p->dims, 'C')) ||
            (st = mt_function_set_shared(s->f_grad, s->dir_var[t], &s->dir[t])))
            break;
        if (!s->conjugate) continue;
        if ((st = mt_array_zeros(&s->gprev[t], run->dev, MT_FLOAT32, p->ndim, p->dims))) break;
        st = mt_function_set_shared(s->f_grad, s->gprev_var[t], &s->gprev[t]);
    }
    mt_free(new_dir);
    mt_free(new_gprev);
    mt_free(up);
    return st;
}

/* alpha -> params = constrain(cache - alpha * lr_scale * direction). */
static mt_status setup_goto_fn(mt__bgd *s, mt__run *run)
{
    mt_graph *g = s->r.g;
    int32_t np = s->r.mg.n_params;
    mt_var *values = mt_calloc((size_t)np, sizeof(*values));
    mt_var *cache_var = mt_calloc((size_t)s->n_train, sizeof(*cache_var));
    mt_update *up = mt_calloc((size_t)s->n_train, sizeof(*up));
    mt_status st = values && cache_var && up ? MT_OK : mt_err_set(MT_ERR_NOMEM, "BGD step");
    if (st) goto done;
    s->alpha_var = mt_graph_placeholder(g, "bgd_alpha", MT_FLOAT32, 0, NULL);
    for (int32_t t = 0; t < s->n_train; t++) {
        int32_t i = s->train[t];
        const mt_type *pt = mt_graph_type(g, s->r.mg.params[i]);
        char nm[200];
        snprintf(nm, sizeof(nm), "bgd_cache/%s", pname(run, s, t));
        cache_var[t] =
            mt_graph_placeholder(g, nm, MT_FLOAT32, pt ? pt->ndim : 0, pt ? pt->shape : NULL);
        double lrs = (double)mt_model_param_const(run->model, i)->lr_scale;
        mt_var a = s->alpha_var;
        if (lrs != 1.0) a = mt_graph_mul(g, a, mt_graph_scalar(g, MT_FLOAT32, lrs));
        values[i] = mt_graph_sub(g, cache_var[t], mt_graph_mul(g, a, s->dir_var[t]));
    }
    if ((st = mt_model_constrain(&s->r.mg, values))) goto done;
    if (mt_graph_status(g)) {
        st = mt_err_set(mt_graph_status(g), "BGD: %s", mt_graph_last_error(g));
        goto done;
    }
    for (int32_t t = 0; t < s->n_train; t++)
        up[t] = (mt_update){s->r.mg.params[s->train[t]], values[s->train[t]]};
    if ((st = compile(s, run, &s->f_goto, 1, &s->alpha_var, 0, NULL, s->n_train, up, "step")))
        goto done;
    for (int32_t t = 0; t < s->n_train && !st; t++) {
        if (mt_function_var_type(s->f_goto, s->dir_var[t]))
            st = mt_function_set_shared(s->f_goto, s->dir_var[t], &s->dir[t]);
        if (!st && mt_function_var_type(s->f_goto, cache_var[t]))
            st = mt_function_set_shared(s->f_goto, cache_var[t], &s->cache[t]);
    }
done:
    mt_free(values);
    mt_free(cache_var);
    mt_free(up);
    return st;
}

/* mix -> params = (1 - mix) before + mix params (scale_step), compiled at setup; the
 * `before` arrays are allocated at the first batch that needs them. */
static mt_status setup_mix_fn(mt__bgd *s, mt__run *run)
{
    mt_graph *g = s->r.g;
    mt_update *up = mt_calloc((size_t)s->n_train, sizeof(*up));
    if (!up) return mt_err_set(MT_ERR_NOMEM, "BGD scale_step");
    s->mix_var = mt_graph_placeholder(g, "bgd_scale_step", MT_FLOAT32, 0, NULL);
    mt_var one_minus = mt_graph_sub(g, mt_graph_literal_float(g, 1.0), s->mix_var);
    for (int32_t t = 0; t < s->n_train; t++) {
        mt_var p = s->r.mg.params[s->train[t]];
        const mt_type *pt = mt_graph_type(g, p);
        char nm[200];
        snprintf(nm, sizeof(nm), "bgd_before/%s", pname(run, s, t));
        s->before_var[t] =
            mt_graph_placeholder(g, nm, MT_FLOAT32, pt ? pt->ndim : 0, pt ? pt->shape : NULL);
        up[t] = (mt_update){p, mt_graph_add(g, mt_graph_mul(g, one_minus, s->before_var[t]),
                                            mt_graph_mul(g, s->mix_var, p))};
    }
    mt_status st = mt_graph_status(g)
                       ? mt_err_set(mt_graph_status(g), "BGD: %s", mt_graph_last_error(g))
                       : MT_OK;
    if (!st) st = compile(s, run, &s->f_mix, 1, &s->mix_var, 0, NULL, s->n_train, up, "scale_step");
    mt_free(up);
    return st;
}

static mt_status alloc_per_param(mt__bgd *s, mt__run *run)
{
    int32_t np = s->r.mg.n_params;
    s->train = mt_calloc((size_t)np + 1, sizeof(*s->train));
    if (!s->train) return mt_err_set(MT_ERR_NOMEM, "BGD");
    for (int32_t i = 0; i < np; i++)
        if (!mt_model_param_const(run->model, i)->frozen) s->train[s->n_train++] = i;
    if (s->n_train == 0)
        return mt_err_set(MT_ERR_INVALID, "BGD: the model has no trainable parameters");
    size_t n = (size_t)s->n_train;
    s->grads = mt_calloc(n, sizeof(*s->grads));
    s->dir_var = mt_calloc(n, sizeof(*s->dir_var));
    s->gprev_var = mt_calloc(n, sizeof(*s->gprev_var));
    s->gprev = mt_calloc(n, sizeof(*s->gprev));
    s->before_var = mt_calloc(n, sizeof(*s->before_var));
    s->dir = mt_calloc(n, sizeof(*s->dir));
    s->cache = mt_calloc(n, sizeof(*s->cache));
    s->before = mt_calloc(n, sizeof(*s->before));
    if (!s->grads || !s->dir_var || !s->gprev_var || !s->gprev || !s->before_var || !s->dir ||
        !s->cache || !s->before)
        return mt_err_set(MT_ERR_NOMEM, "BGD state");
    return MT_OK;
}

static mt_status bgd_setup(mt__algorithm *a, mt__run *run)
{
    mt__bgd *s = (mt__bgd *)a;
    mt_status st = mt__algo_state_begin(&s->r, a, run);
    if (st || (st = alloc_per_param(s, run))) return st;
    /* Pylearn2's norm constraints are not idempotent (W * norm / (norm + 1e-7)): moving to
     * the chosen step again may change the last bits, so the objective is then recomputed. */
    s->reuse_obj = !(a->c.cost && mt_cost_is_stochastic(a->c.cost, run->model));
    for (int32_t t = 0; t < s->n_train; t++)
        if (mt_model_param_const(run->model, s->train[t])->constraint != MT_NORM_NONE)
            s->reuse_obj = false;
    mt_var *pv = mt_calloc((size_t)s->n_train, sizeof(*pv));
    if (!pv) return mt_err_set(MT_ERR_NOMEM, "BGD");
    for (int32_t t = 0; t < s->n_train; t++)
        pv[t] = s->r.mg.params[s->train[t]];
    mt_grad_options go;
    mt_grad_options_init(&go);
    go.disconnected = MT_GRAD_DISCONNECTED_ZERO;
    st = mt_graph_grad(s->r.g, s->r.cost, s->n_train, pv, s->grads, &go);
    mt_free(pv);
    if (st) return mt_err_prefix(st, "BGD: gradient of the cost: ");
    if ((st = setup_grad_fn(s, run)) || (st = setup_goto_fn(s, run)) || (st = setup_mix_fn(s, run)))
        return st;
    mt_var in[2] = {s->r.mg.X, s->r.mg.y};
    if ((st = compile(s, run, &s->f_obj, s->r.mg.y != MT_VAR_NONE ? 2 : 1, in, 1, &s->r.cost, 0,
                      NULL, "objective")))
        return st;
    return mt__algo_state_iter(&s->r, a, run, "BGD");
}

static void clear_arrays(mt_array *a, int32_t n)
{
    for (int32_t i = 0; a && i < n; i++)
        mt_array_clear(&a[i]);
}

static void bgd_teardown(mt__algorithm *a)
{
    mt__bgd *s = (mt__bgd *)a;
    mt_function_free(s->f_grad);
    mt_function_free(s->f_obj);
    mt_function_free(s->f_goto);
    mt_function_free(s->f_mix);
    s->f_grad = s->f_obj = s->f_goto = s->f_mix = NULL;
    clear_arrays(s->dir, s->n_train);
    clear_arrays(s->gprev, s->n_train);
    clear_arrays(s->cache, s->n_train);
    clear_arrays(s->before, s->n_train);
    mt_free(s->dir);
    mt_free(s->gprev);
    mt_free(s->cache);
    mt_free(s->before);
    mt_free(s->grads);
    mt_free(s->dir_var);
    mt_free(s->gprev_var);
    mt_free(s->before_var);
    mt_free(s->train);
    s->dir = s->gprev = s->cache = s->before = NULL;
    s->grads = s->dir_var = s->gprev_var = s->before_var = NULL;
    s->train = NULL;
    s->n_train = 0;
    mt__algo_state_clear(&s->r);
    mt_array_clear(&s->old_scale_arr);
    mt_array_clear(&s->alpha_arr);
    mt_array_clear(&s->mix_arr);
}

/* ---------------------------------------------------------------- one batch */

typedef struct bgd_batch {
    mt__bgd *s;
    mt__run *run;
    const mt_array *in[3]; /* X, y (when the data has targets), old scale */
    int32_t n_xy;
    int64_t epoch, b;
} bgd_batch;

static mt_status objective(bgd_batch *bb, double *obj)
{
    mt_array out;
    memset(&out, 0, sizeof(out));
    mt_status st = mt_function_call(bb->s->f_obj, bb->n_xy, bb->in, 1, &out);
    if (!st) st = mt__scalar_array_get(&out, obj);
    mt_array_clear(&out);
    return st;
}

/* params = constrain(cache - alpha d). */
static mt_status go_to(bgd_batch *bb, double alpha)
{
    mt__bgd *s = bb->s;
    mt_status st = mt__scalar_array_set(&s->alpha_arr, bb->run->dev, alpha);
    if (st) return st;
    const mt_array *in[1] = {&s->alpha_arr};
    return mt_function_call(s->f_goto, 1, in, 0, NULL);
}

/* Objective at step alpha (NaN kept: the callers decide how it ranks). */
static mt_status probe(bgd_batch *bb, double alpha, double *obj)
{
    mt_status st = go_to(bb, alpha);
    if (!st) st = objective(bb, obj);
    if (!st && bb->s->verbose) mt_log(MT_LOG_INFO, "BGD:   alpha %.9g objective %.9g", alpha, *obj);
    return st;
}

/* Describes the first non-finite node of the cost and gradient on the current batch. */
static mt_status nonfinite_error(bgd_batch *bb, const char *what, double value)
{
    mt__bgd *s = bb->s;
    mt__run *run = bb->run;
    int32_t cap = 2 + run->n_params;
    mt_var *vars = mt_calloc((size_t)cap, sizeof(*vars));
    const mt_array **arrs = mt_calloc((size_t)cap, sizeof(*arrs));
    mt_var *roots = mt_calloc((size_t)s->n_train + 1, sizeof(*roots));
    mt_strbuf desc;
    mt_strbuf_init(&desc);
    bool found = false;
    mt_status st = vars && arrs && roots ? MT_OK : mt_err_set(MT_ERR_NOMEM, "non-finite value");
    if (!st) {
        int32_t k = 0;
        for (int32_t i = 0; i < bb->n_xy; i++)
            vars[k] = i ? s->r.mg.y : s->r.mg.X, arrs[k++] = bb->in[i];
        for (int32_t i = 0; i < run->n_params && i < s->r.mg.n_params; i++)
            vars[k] = s->r.mg.params[i], arrs[k++] = &run->params[i];
        roots[0] = s->r.cost;
        for (int32_t t = 0; t < s->n_train; t++)
            roots[t + 1] = s->grads[t];
        st = mt__first_nonfinite(s->r.g, s->n_train + 1, roots, k, vars, arrs, run->dev, &desc,
                                 &found);
    }
    char where[1200];
    if (st)
        snprintf(where, sizeof(where), " (locating it failed: %s)", mt_last_error());
    else if (found)
        snprintf(where, sizeof(where), "; first non-finite value: %s", desc.data);
    else
        snprintf(where, sizeof(where),
                 "; the node-by-node reference evaluation of that batch "
                 "stays finite");
    mt_strbuf_deinit(&desc);
    mt_free(vars);
    mt_free(arrs);
    mt_free(roots);
    return mt_err_set(MT_ERR_RANGE, "non-finite %s (%g)%s", what, value, where);
}

/* Pylearn2's default line search over the alpha list (adapted in place). *step receives the
 * chosen step (0 = none), *best its objective, *converged whether the batch is done. */
static mt_status search_default(bgd_batch *bb, double obj0, double *alpha, int32_t n, double *step,
                                double *best, bool *converged)
{
    double best_obj = obj0, best_alpha = 0.0;
    int32_t best_ind = -1;
    for (int32_t i = 0; i < n; i++) {
        double o;
        mt_status st = probe(bb, alpha[i], &o);
        if (st) return st;
        if (o <= best_obj) { /* ties: the bigger step wins */
            best_obj = o;
            best_alpha = alpha[i];
            best_ind = i;
        }
    }
    mt_status st = go_to(bb, best_alpha);
    if (st) return st;
    *step = best_alpha;
    *best = best_obj;
    *converged = false;
    if (best_ind < 1 && alpha[0] > BGD_TOL_FLOAT32) {
        for (int32_t i = 0; i < n; i++)
            alpha[i] /= 3.0;
    } else if (best_ind > n - 2) {
        for (int32_t i = 0; i < n; i++)
            alpha[i] *= 2.0;
    } else if (best_ind == -1 && alpha[0] <= BGD_TOL_FLOAT32) {
        if (alpha[n - 1] > 1.0) {
            *converged = true;
            return MT_OK;
        }
        for (int32_t i = 0; i < n; i++)
            for (int32_t j = i; j < n; j++)
                alpha[j] *= 1.5;
    } else {
        double max_gap = 0.0;
        for (int32_t i = 1; i < n; i++)
            max_gap = fmax(max_gap, alpha[i] / alpha[i - 1]);
        if (max_gap > 5.0)
            for (int32_t i = 0; i < n; i++)
                alpha[i] = pow(alpha[i], 0.99) * pow(best_alpha, 0.01);
    }
    return MT_OK;
}

typedef struct ls_points {
    int32_t n;
    double a[BGD_MAX_POINTS], o[BGD_MAX_POINTS];
} ls_points;

static int32_t argmin(const ls_points *p)
{
    int32_t k = 0;
    for (int32_t i = 1; i < p->n; i++)
        if (p->o[i] < p->o[k]) k = i;
    return k;
}

/* Inserts (x, o) in order; false when x is already there (no room cannot happen: the search
 * stops after 11 points beyond the initial list). */
static bool insert_point(ls_points *p, double x, double o)
{
    int32_t i = 0;
    while (i < p->n && p->a[i] < x)
        i++;
    if ((i < p->n && p->a[i] == x) || p->n == BGD_MAX_POINTS) return false;
    memmove(p->a + i + 1, p->a + i, (size_t)(p->n - i) * sizeof(double));
    memmove(p->o + i + 1, p->o + i, (size_t)(p->n - i) * sizeof(double));
    p->a[i] = x;
    p->o[i] = o;
    p->n++;
    return true;
}

/* Pylearn2's 'exhaustive' search: bracketing then bisection next to the best point. */
static mt_status search_exhaustive(bgd_batch *bb, double obj0, double *alpha, int32_t *n,
                                   double *step, double *best)
{
    mt__bgd *s = bb->s;
    ls_points p = {.n = 1};
    p.a[0] = 0.0;
    p.o[0] = isnan(obj0) ? INFINITY : obj0;
    for (int32_t i = 0; i < *n; i++) {
        double o;
        mt_status st = probe(bb, alpha[i], &o);
        if (st) return st;
        p.a[p.n] = alpha[i];
        p.o[p.n++] = isnan(o) ? INFINITY : o;
    }
    float prev_improvement = 0.0f;
    for (;;) {
        int32_t k = argmin(&p), len = p.n;
        double x;
        if (k == 0)
            x = (p.a[0] + p.a[1]) / 2.0;
        else if (k == p.n - 1)
            x = 2.0 * p.a[p.n - 1];
        else if (p.o[k + 1] < p.o[k - 1])
            x = (p.a[k] + p.a[k + 1]) / 2.0;
        else
            x = (p.a[k] + p.a[k - 1]) / 2.0;
        if (x < 1e-20) break;
        double o, mn = p.o[k];
        mt_status st = probe(bb, x, &o);
        if (st) return st;
        if (isnan(o)) o = INFINITY;
        if (!insert_point(&p, x, o)) break; /* the bisection cannot split further */
        float improvement = (float)(mn - o);
        if ((improvement > 0 && improvement < 0.01f * prev_improvement) || len > 10) break;
        prev_improvement = improvement;
    }
    int32_t k = argmin(&p);
    double x = p.a[k];
    mt_status st = go_to(bb, x);
    if (st) return st;
    *step = x;
    *best = p.o[k];
    if (k == 0) x = p.a[1];
    if (!isnan(s->min_init_alpha)) x = fmax(x, 2.0 * s->min_init_alpha);
    alpha[0] = x / 2.0;
    alpha[1] = x;
    *n = 2;
    return MT_OK;
}

/* Gradient step: caches the parameters, computes the (conjugate) direction; *norm, *beta,
 * *reset from the function. */
static mt_status gradient_step(bgd_batch *bb, double old_scale, double *norm, double *beta,
                               bool *reset)
{
    mt__bgd *s = bb->s;
    mt_status st = MT_OK;
    for (int32_t t = 0; t < s->n_train && !st; t++)
        st = mt_array_copy(&s->cache[t], &bb->run->params[s->train[t]]);
    if (!st) st = mt__scalar_array_set(&s->old_scale_arr, bb->run->dev, old_scale);
    if (st) return st;
    bb->in[bb->n_xy] = &s->old_scale_arr;
    mt_array out[3];
    memset(out, 0, sizeof(out));
    st = mt_function_call(s->f_grad, bb->n_xy + 1, bb->in, 3, out);
    double r = 0;
    if (!st) st = mt__scalar_array_get(&out[0], norm);
    if (!st) st = mt__scalar_array_get(&out[1], beta);
    if (!st) st = mt__scalar_array_get(&out[2], &r);
    for (int i = 0; i < 3; i++)
        mt_array_clear(&out[i]);
    *reset = r != 0;
    return st;
}

static void update_averages(mt__bgd *s, double step, double norm)
{
    float nw = s->new_weight;
    s->ave_step_size = (float)((double)nw * step + (1.0 - (double)nw) * (double)s->ave_step_size);
    s->ave_grad_mult =
        (float)((double)nw * (step / norm) + (1.0 - (double)nw) * (double)s->ave_grad_mult);
    if (nw == 1.0f) s->new_weight = 0.01f;
}

/* BatchGradientDescent.minimize on the current batch. */
static mt_status minimize(bgd_batch *bb, double *best_obj)
{
    mt__bgd *s = bb->s;
    double alpha[BGD_MAX_POINTS];
    int32_t n = s->reset_alpha ? s->n_init_alpha : s->n_alpha;
    memcpy(alpha, s->reset_alpha ? s->init_alpha : s->alpha, (size_t)n * sizeof(double));
    double norm_prev = s->reset_conjugate ? 0.0 : s->last_norm, cur = NAN;
    bool have_obj = false;
    for (int64_t iter = 0; iter < s->updates_per_batch; iter++) {
        double norm, beta, step = 0, best = NAN;
        bool reset, converged = false;
        mt_status st = gradient_step(bb, norm_prev, &norm, &beta, &reset);
        if (st) return st;
        if (!isfinite(norm)) return nonfinite_error(bb, "gradient norm", norm);
        s->last_norm = norm;
        float nw = s->new_weight;
        s->ave_grad_size = (float)((double)nw * (double)(float)norm +
                                   (1.0 - (double)nw) * (double)s->ave_grad_size);
        if (!have_obj || !s->reuse_obj) {
            if ((st = objective(bb, &cur))) return st;
            if (!isfinite(cur)) return nonfinite_error(bb, "cost", cur);
        }
        if (norm == 0.0) {
            if (bgd_log_on(s))
                mt_log(bgd_log_level(s),
                       "BGD: epoch %lld batch %lld iteration %lld: zero "
                       "gradient (objective %.9g)",
                       (long long)bb->epoch + 1, (long long)bb->b + 1, (long long)iter + 1, cur);
            *best_obj = cur;
            break;
        }
        if (s->mode == BGD_LS_DEFAULT)
            st = search_default(bb, cur, alpha, n, &step, &best, &converged);
        else
            st = search_exhaustive(bb, cur, alpha, &n, &step, &best);
        if (st) return st;
        if (bgd_log_on(s))
            mt_log(bgd_log_level(s),
                   "BGD: epoch %lld batch %lld iteration %lld: objective %.9g -> %.9g, step %.9g, "
                   "|grad| %.6g%s%s",
                   (long long)bb->epoch + 1, (long long)bb->b + 1, (long long)iter + 1, cur, best,
                   step, norm, s->conjugate ? (reset ? ", direction reset" : ", conjugate") : "",
                   converged ? ", converged" : "");
        *best_obj = best;
        cur = best;
        have_obj = true;
        if (converged) break;
        update_averages(s, step, norm);
        norm_prev = norm;
    }
    if (!s->reset_alpha) {
        memcpy(s->alpha, alpha, (size_t)n * sizeof(double));
        s->n_alpha = n;
    }
    return MT_OK;
}

/* scale_step != 1: remember the parameters before the batch / mix them after. */
static mt_status scale_before(mt__bgd *s, mt__run *run)
{
    for (int32_t t = 0; t < s->n_train; t++) {
        const mt_array *p = &run->params[s->train[t]];
        mt_status st;
        if (!s->before[t].buf) {
            if ((st = mt_array_empty(&s->before[t], run->dev, MT_FLOAT32, p->ndim, p->dims, 'C')) ||
                (st = mt_function_set_shared(s->f_mix, s->before_var[t], &s->before[t])))
                return st;
        }
        if ((st = mt_array_copy(&s->before[t], p))) return st;
    }
    return MT_OK;
}

static mt_status scale_after(mt__bgd *s, mt__run *run)
{
    mt_status st = mt__scalar_array_set(&s->mix_arr, run->dev, s->scale_step);
    if (st) return st;
    const mt_array *in[1] = {&s->mix_arr};
    return mt_function_call(s->f_mix, 1, in, 0, NULL);
}

static mt_status bgd_batch_run(mt__bgd *s, mt__run *run, int64_t epoch, int64_t b, int64_t *n)
{
    bool with_y = s->r.mg.y != MT_VAR_NONE;
    mt_status st = mt__run_batch(run, run->dataset, &s->r.it, epoch, b, s->r.rows, &s->r.X,
                                 with_y ? &s->r.y : NULL, n);
    if (st) return st;
    bgd_batch bb = {.s = s,
                    .run = run,
                    .in = {&s->r.X, &s->r.y},
                    .n_xy = with_y ? 2 : 1,
                    .epoch = epoch,
                    .b = b};
    bool scaled = s->scale_step != 1.0;
    if (scaled && (st = scale_before(s, run))) return st;
    double best = NAN;
    if ((st = minimize(&bb, &best))) return st;
    if (scaled && (st = scale_after(s, run))) return st;
    return MT_OK;
}

static mt_status bgd_train_epoch(mt__algorithm *a, mt__run *run, bool *finished)
{
    mt__bgd *s = (mt__bgd *)a;
    int64_t epoch = run->epochs_seen;
    int64_t nb = mt__run_epoch_batches(run, s->r.it.n_batches); /* honours --limit-batches */
    run->batches_this_epoch = nb;
    *finished = false;
    for (int64_t b = run->batch_in_epoch; b < nb; b++) {
        int64_t n = 0;
        mt_status st = bgd_batch_run(s, run, epoch, b, &n);
        if (st)
            return mt_err_prefix(st, "BGD: epoch %lld, batch %lld: ", (long long)epoch + 1,
                                 (long long)b + 1);
        bool stop = false;
        if ((st = mt__run_after_batch(run, n, &stop))) return st;
        if (stop) return MT_OK;
    }
    *finished = true;
    return MT_OK;
}

/* ---------------------------------------------------------------- channels, scalars, state */

static mt_status bgd_channels(const mt__algorithm *a, const mt__run *run, mt__chanvals *out)
{
    const mt__bgd *s = (const mt__bgd *)a;
    mt_status st = MT_OK;
    if (a->c.n_monitoring > 0) {
        if ((st = mt__chanvals_set(out, "ave_step_size", (double)s->ave_step_size)) ||
            (st = mt__chanvals_set(out, "ave_grad_size", (double)s->ave_grad_size)) ||
            (st = mt__chanvals_set(out, "ave_grad_mult", (double)s->ave_grad_mult)))
            return st;
    }
    if (s->scale_step_channel)
        st = mt__chanvals_set(out, "scale_step", (double)(float)s->scale_step);
    return st;
}

static mt_status bgd_get_scalar(const mt__algorithm *a, const char *name, double *out)
{
    const mt__bgd *s = (const mt__bgd *)a;
    if (!strcmp(name, "scale_step")) {
        *out = s->scale_step;
        return MT_OK;
    }
    return mt_err_set(MT_ERR_NOT_FOUND, "BGD has no '%s' (it has scale_step)", name);
}

static mt_status bgd_set_scalar(mt__algorithm *a, const char *name, double value)
{
    mt__bgd *s = (mt__bgd *)a;
    if (strcmp(name, "scale_step"))
        return mt_err_set(MT_ERR_NOT_FOUND, "BGD has no '%s' (it has scale_step)", name);
    if (!isfinite(value))
        return mt_err_set(MT_ERR_RANGE, "BGD: scale_step must be finite (got %g)", value);
    s->scale_step = value;
    return MT_OK;
}

static mt_status bgd_save_state(const mt__algorithm *a, const mt__run *run, mt_ckpt *c)
{
    const mt__bgd *s = (const mt__bgd *)a;
    mt_status st;
    char k[256];
    for (int32_t t = 0; t < s->n_train; t++) {
        snprintf(k, sizeof(k), "optimizer/%s/direction", pname(run, s, t));
        if ((st = mt_ckpt_put_array(c, k, &s->dir[t]))) return st;
        if (!s->conjugate) continue;
        snprintf(k, sizeof(k), "optimizer/%s/previous_gradient", pname(run, s, t));
        if ((st = mt_ckpt_put_array(c, k, &s->gprev[t]))) return st;
    }
    int64_t na = s->n_alpha;
    if ((st = mt_ckpt_put_array_host(c, "optimizer/bgd_alpha", MT_FLOAT64, 1, &na, s->alpha)) ||
        (st = mt_ckpt_put_double(c, "algorithm/scale_step", s->scale_step)) ||
        (st = mt_ckpt_put_double(c, "algorithm/last_norm", s->last_norm)) ||
        (st = mt_ckpt_put_double(c, "algorithm/ave_step_size", (double)s->ave_step_size)) ||
        (st = mt_ckpt_put_double(c, "algorithm/ave_grad_size", (double)s->ave_grad_size)) ||
        (st = mt_ckpt_put_double(c, "algorithm/ave_grad_mult", (double)s->ave_grad_mult)) ||
        (st = mt_ckpt_put_double(c, "algorithm/new_weight", (double)s->new_weight)) ||
        (st = mt_ckpt_put_int(c, "algorithm/rng_counter",
                              (int64_t)mt_function_rng_counter(s->f_grad))) ||
        (st = mt_ckpt_put_int(c, "algorithm/rng_counter_objective",
                              (int64_t)mt_function_rng_counter(s->f_obj))))
        return st;
    return MT_OK;
}

static mt_status load_alpha(mt__bgd *s, const mt_ckpt *c)
{
    mt_dtype dt;
    int32_t nd = 0;
    int64_t dims[MT_MAX_DIMS];
    const void *data = NULL;
    mt_status st = mt_ckpt_array_info(c, "optimizer/bgd_alpha", &dt, &nd, dims, &data);
    if (st) return st;
    if (dt != MT_FLOAT64 || nd != 1 || dims[0] < 1 || dims[0] > BGD_MAX_ALPHA)
        return mt_err_set(MT_ERR_FORMAT,
                          "checkpoint array optimizer/bgd_alpha: expected 1 to "
                          "%d float64 values",
                          BGD_MAX_ALPHA);
    memcpy(s->alpha, data, (size_t)dims[0] * sizeof(double));
    s->n_alpha = (int32_t)dims[0];
    return MT_OK;
}

static mt_status bgd_load_state(mt__algorithm *a, mt__run *run, const mt_ckpt *c)
{
    mt__bgd *s = (mt__bgd *)a;
    mt_status st;
    char k[256];
    for (int32_t t = 0; t < s->n_train; t++) {
        snprintf(k, sizeof(k), "optimizer/%s/direction", pname(run, s, t));
        if ((st = mt__ckpt_copy_into(c, k, &s->dir[t]))) return st;
        if (!s->conjugate) continue;
        snprintf(k, sizeof(k), "optimizer/%s/previous_gradient", pname(run, s, t));
        if ((st = mt__ckpt_copy_into(c, k, &s->gprev[t]))) return st;
    }
    double v[5];
    int64_t rng[2];
    if ((st = load_alpha(s, c)) ||
        (st = mt_ckpt_get_double(c, "algorithm/scale_step", &s->scale_step)) ||
        (st = mt_ckpt_get_double(c, "algorithm/last_norm", &s->last_norm)) ||
        (st = mt_ckpt_get_double(c, "algorithm/ave_step_size", &v[0])) ||
        (st = mt_ckpt_get_double(c, "algorithm/ave_grad_size", &v[1])) ||
        (st = mt_ckpt_get_double(c, "algorithm/ave_grad_mult", &v[2])) ||
        (st = mt_ckpt_get_double(c, "algorithm/new_weight", &v[3])) ||
        (st = mt_ckpt_get_int(c, "algorithm/rng_counter", &rng[0])) ||
        (st = mt_ckpt_get_int(c, "algorithm/rng_counter_objective", &rng[1])))
        return st;
    s->ave_step_size = (float)v[0];
    s->ave_grad_size = (float)v[1];
    s->ave_grad_mult = (float)v[2];
    s->new_weight = (float)v[3];
    mt_function_set_rng_counter(s->f_grad, (uint64_t)rng[0]);
    mt_function_set_rng_counter(s->f_obj, (uint64_t)rng[1]);
    return MT_OK;
}

static void append_list(mt_strbuf *sb, const double *v, int32_t n)
{
    for (int32_t i = 0; i < n; i++)
        mt_strbuf_appendf(sb, "%s%g", i ? " " : "", v[i]);
}

static void bgd_describe(const mt__algorithm *a, mt_strbuf *sb)
{
    const mt__bgd *s = (const mt__bgd *)a;
    mt_strbuf_appendf(sb,
                      "BGD: batch_size %lld, updates_per_batch %lld, line search %s "
                      "(init_alpha ",
                      (long long)a->c.batch_size, (long long)s->updates_per_batch,
                      s->mode == BGD_LS_EXHAUSTIVE ? "exhaustive" : "default");
    append_list(sb, s->init_alpha, s->n_init_alpha);
    mt_strbuf_appendf(sb, "%s)", s->reset_alpha ? "" : ", carried over between batches");
    if (s->conjugate)
        mt_strbuf_appendf(sb, ", conjugate gradient (Polak-Ribiere%s)",
                          s->reset_conjugate ? ", reset every batch" : "");
    if (s->scale_step != 1.0) mt_strbuf_appendf(sb, ", scale_step %g", s->scale_step);
    mt_strbuf_appendf(sb, ", train iteration %s", mt_iter_mode_name(a->c.train_iteration_mode));
}

static const mt__algorithm_ops bgd_ops = {
    .abi_version = MT__TRAIN_ABI_VERSION,
    .name = "BGD",
    .setup = bgd_setup,
    .train_epoch = bgd_train_epoch,
    .continue_learning = NULL,
    .channels = bgd_channels,
    .get_scalar = bgd_get_scalar,
    .set_scalar = bgd_set_scalar,
    .save_state = bgd_save_state,
    .load_state = bgd_load_state,
    .describe = bgd_describe,
    .teardown = bgd_teardown,
};

/* ---------------------------------------------------------------- the BGD component */

static void bgd_destroy(void *obj)
{
    mt__bgd *s = obj;
    if (!s) return;
    mt__algo_destroy(&s->base);
    mt_free(s);
}

/* Pylearn2's BGD seeds its iterator with [2012, 10, 16] when no seed is given (SGD: [2012,
 * 10, 5]). */
static uint64_t default_seed(void)
{
    static const int64_t v[3] = {2012, 10, 16};
    return mt__algo_seed_of(v, 3);
}

static mt_status parse_mode(const mt_cfg_node *node, mt__bgd *s)
{
    const char *m = NULL;
    mt_status st = mt_cfg_get_string(node, "line_search_mode", NULL, &m);
    if (st) return st;
    if (!m) {
        s->mode = BGD_LS_DEFAULT;
    } else if (!strcmp(m, "exhaustive")) {
        s->mode = BGD_LS_EXHAUSTIVE;
    } else {
        return mt_cfg_error(MT_ERR_INVALID, mt_cfg_key_loc(node, "line_search_mode"),
                            "BGD: line_search_mode must be null (the default search) or "
                            "'exhaustive', got '%s'",
                            m);
    }
    return MT_OK;
}

static mt_status parse_alpha(const mt_cfg_node *node, mt__bgd *s)
{
    mt_cfg_loc loc = mt_cfg_key_loc(node, "init_alpha");
    const mt_cfg_node *v = mt_cfg_get(node, "init_alpha");
    if (!v || v->kind == MT_CFG_NULL) {
        static const double dflt[5] = {.001, .005, .01, .05, .1}, exh[2] = {.5, 1.};
        s->n_init_alpha = s->mode == BGD_LS_EXHAUSTIVE ? 2 : 5;
        memcpy(s->init_alpha, s->mode == BGD_LS_EXHAUSTIVE ? exh : dflt,
               (size_t)s->n_init_alpha * sizeof(double));
        return MT_OK;
    }
    if (v->kind == MT_CFG_LIST && v->n > BGD_MAX_ALPHA)
        return mt_cfg_error(MT_ERR_RANGE, loc, "BGD: init_alpha has %d values (at most %d)",
                            (int)v->n, BGD_MAX_ALPHA);
    mt_status st =
        mt_cfg_get_floats(node, "init_alpha", BGD_MAX_ALPHA, s->init_alpha, &s->n_init_alpha);
    if (st) return st;
    if (s->n_init_alpha < 1)
        return mt_cfg_error(MT_ERR_INVALID, loc, "BGD: init_alpha needs at least one value");
    for (int32_t i = 0; i < s->n_init_alpha; i++) {
        double a = s->init_alpha[i];
        if (!(a > 0) || !isfinite(a))
            return mt_cfg_error(MT_ERR_RANGE, loc,
                                "BGD: init_alpha values must be finite and "
                                "> 0 (value %d is %g)",
                                (int)i + 1, a);
        if (i && !(a > s->init_alpha[i - 1]))
            return mt_cfg_error(MT_ERR_INVALID, loc,
                                "BGD: init_alpha must be increasing "
                                "(value %d, %g, follows %g)",
                                (int)i + 1, a, s->init_alpha[i - 1]);
    }
    return MT_OK;
}

static mt_status parse_bgd(const mt_cfg_node *node, mt__bgd *s)
{
    mt_status st;
    if ((st = mt_cfg_get_int(node, "updates_per_batch", 10, &s->updates_per_batch)) ||
        (st = mt_cfg_get_bool(node, "reset_alpha", true, &s->reset_alpha)) ||
        (st = mt_cfg_get_bool(node, "conjugate", false, &s->conjugate)) ||
        (st = mt_cfg_get_bool(node, "reset_conjugate", true, &s->reset_conjugate)) ||
        (st = mt_cfg_get_bool(node, "verbose_optimization", false, &s->verbose)) ||
        (st = mt_cfg_get_float(node, "scale_step", 1.0, &s->scale_step)) ||
        (st = mt_cfg_get_float(node, "min_init_alpha", 1e-3, &s->min_init_alpha)))
        return st;
    const mt_cfg_node *mia = mt_cfg_get(node, "min_init_alpha");
    if (mia && mia->kind == MT_CFG_NULL) s->min_init_alpha = NAN; /* None: no floor */
    if (s->updates_per_batch < 1)
        return mt_cfg_error(MT_ERR_RANGE, mt_cfg_key_loc(node, "updates_per_batch"),
                            "BGD: updates_per_batch must be >= 1 (got %lld)",
                            (long long)s->updates_per_batch);
    if (!isfinite(s->scale_step))
        return mt_cfg_error(MT_ERR_RANGE, mt_cfg_key_loc(node, "scale_step"),
                            "BGD: scale_step must be finite (got %g)", s->scale_step);
    if (mia && mia->kind != MT_CFG_NULL && !(s->min_init_alpha >= 0))
        return mt_cfg_error(MT_ERR_RANGE, mt_cfg_key_loc(node, "min_init_alpha"),
                            "BGD: min_init_alpha must be >= 0 (got %g)", s->min_init_alpha);
    if ((st = parse_mode(node, s)) || (st = parse_alpha(node, s))) return st;
    memcpy(s->alpha, s->init_alpha, sizeof(s->alpha));
    s->n_alpha = s->n_init_alpha;
    s->new_weight = 1.0f;
    return MT_OK;
}

static mt_status build_bgd(mt_cfg_builder *b, const mt_cfg_node *node, void **out)
{
    mt__bgd *s = NULL;
    mt_status st = mt__algo_new((void **)&s, sizeof(*s), &bgd_ops, b, node);
    if (st) return st;
    const mt_cfg_node *seed = mt_cfg_get(node, "seed");
    if (!seed || seed->kind == MT_CFG_NULL) s->base.c.seed = default_seed();
    if ((st = parse_bgd(node, s))) goto fail;
    *out = &s->base;
    return MT_OK;
fail:
    bgd_destroy(s);
    return st;
}

static const mt_cfg_key bgd_keys[] = {
    MT__ALGO_COMMON_KEYS,
    {"updates_per_batch", MT_CFG_T_INT, false, true, NULL, false,
     "line searches per batch (default 10)"},
    {"reset_alpha", MT_CFG_T_BOOL, false, true, NULL, false,
     "start every batch from init_alpha (default true)"},
    {"conjugate", MT_CFG_T_BOOL, false, true, NULL, false,
     "nonlinear conjugate gradient directions (Polak-Ribiere; default false)"},
    {"min_init_alpha", MT_CFG_T_FLOAT, false, true, NULL, false,
     "exhaustive mode: the next search starts at >= 2 * this (default 1e-3; null: no floor)"},
    {"reset_conjugate", MT_CFG_T_BOOL, false, true, NULL, false,
     "steepest descent at the first update of every batch (default true)"},
    {"line_search_mode", MT_CFG_T_STRING, false, true, NULL, false,
     "null (default: try the init_alpha steps) or 'exhaustive' (bracketing + bisection)"},
    {"verbose_optimization", MT_CFG_T_BOOL, false, true, NULL, false,
     "log every line-search point (info level)"},
    {"scale_step", MT_CFG_T_FLOAT, false, true, NULL, false,
     "p = (1 - s) p_before + s p_after per batch (default 1)"},
    {"init_alpha", MT_CFG_T_FLOATS, false, true, NULL, false,
     "increasing step sizes (default .001 .005 .01 .05 .1; exhaustive: .5 1)"},
    {NULL, 0, false, false, NULL, false, NULL}};

static const char *const bgd_aliases[] = {"pylearn2.training_algorithms.bgd.BGD", NULL};

static const mt_component bgd_component = {
    "BGD",       "algorithm",
    bgd_aliases, bgd_keys,
    false,       "batch gradient descent with line searches and optional conjugate gradient",
    build_bgd,   bgd_destroy,
    NULL};

/* ---------------------------------------------------------------- ScaleStep, StepShrinker */

/* ScaleStep(scale, min_value): after every monitor call, scale_step = max(scale_step * scale,
 * min_value). StepShrinker(channel, scale, giveup_after, scale_up = 1, max_scale = 1): from
 * the second monitor call on, when the channel did not improve on its previous value,
 * scale_step *= scale, and below giveup_after the run stops (Pylearn2 makes it a termination
 * criterion too; here its on_monitor stops the run, so listing it in `extensions` is enough);
 * when it improved and scale_up != 1, scale_step = min(scale_step * scale_up, max_scale). Both
 * add the channel scale_step. */
typedef struct step_ext {
    mt__extension base;
    bool shrinker;
    double scale, min_value; /* ScaleStep */
    char *channel;           /* StepShrinker */
    mt_cfg_loc channel_loc;
    double giveup_after, scale_up, max_scale;
    double prev;
    int64_t calls;
} step_ext;

static mt_status step_setup(mt__extension *e, mt__run *run)
{
    const step_ext *x = (const step_ext *)e;
    const char *who = x->shrinker ? "StepShrinker" : "ScaleStep";
    if (!run->alg || run->alg->ops != &bgd_ops)
        return mt_cfg_error(MT_ERR_INVALID, e->loc,
                            "%s adjusts BGD's scale_step: the algorithm "
                            "is %s",
                            who, run->alg ? run->alg->ops->name : "none");
    ((mt__bgd *)run->alg)->scale_step_channel = true;
    return MT_OK;
}

static mt_status step_on_monitor(mt__extension *e, mt__run *run, bool *cont)
{
    step_ext *x = (step_ext *)e;
    mt_status st = step_setup(e, run);
    if (st) return st;
    mt__bgd *s = (mt__bgd *)run->alg;
    double cur = s->scale_step;
    x->calls++;
    if (!x->shrinker) {
        s->scale_step = fmax(cur * x->scale, x->min_value);
        return MT_OK;
    }
    double latest;
    if ((st = mt__run_channel(run, x->channel, &latest)))
        return mt_cfg_error(st, x->channel_loc, "StepShrinker: %s", mt_last_error());
    if (x->calls == 1) return MT_OK; /* Pylearn2 returns before recording prev */
    if (latest >= x->prev) {
        cur *= x->scale;
        if (cur < x->giveup_after) {
            mt_log(MT_LOG_INFO,
                   "StepShrinker: %s did not improve (%g >= %g); scale_step "
                   "would be %g < giveup_after %g: stopping",
                   x->channel, latest, x->prev, cur, x->giveup_after);
            *cont = false;
            cur = x->giveup_after;
        } else {
            mt_log(MT_LOG_INFO, "StepShrinker: %s did not improve (%g >= %g); scale_step %g",
                   x->channel, latest, x->prev, cur);
        }
    } else if (x->scale_up != 1.0) {
        cur = fmin(cur * x->scale_up, x->max_scale);
    }
    s->scale_step = cur;
    x->prev = latest;
    return MT_OK;
}

static mt_status step_check(const mt__extension *e, const mt__run *run, const mt__chanvals *k)
{
    const step_ext *x = (const step_ext *)e;
    if (!x->shrinker) return MT_OK;
    return mt__chanvals_require(k, x->channel, x->channel_loc, "StepShrinker");
}

static const mt__ckpt_field step_fields[] = {MT__FIELD(step_ext, prev, MT__FIELD_F64, "prev"),
                                             MT__FIELD(step_ext, calls, MT__FIELD_I64, "calls")};

static const mt__extension_ops step_ops = {.name = "BGD step scale",
                                           .setup = step_setup,
                                           .on_monitor = step_on_monitor,
                                           .check_channels = step_check,
                                           .fields = step_fields,
                                           .n_fields = 2};

static void step_destroy(void *obj)
{
    step_ext *x = obj;
    if (!x) return;
    mt_free(x->channel);
    mt_free(x);
}

static mt_status build_step(const mt_cfg_node *node, bool shrinker, void **out)
{
    step_ext *x = mt_calloc(1, sizeof(*x));
    if (!x) return mt_err_set(MT_ERR_NOMEM, "BGD step extension");
    x->base.ops = &step_ops;
    x->base.loc = node->loc;
    x->shrinker = shrinker;
    x->prev = INFINITY;
    mt_status st;
    const char *ch = NULL;
    if (shrinker) {
        if ((st = mt_cfg_get_string(node, "channel", NULL, &ch)) ||
            (st = mt_cfg_get_float(node, "scale", NAN, &x->scale)) ||
            (st = mt_cfg_get_float(node, "giveup_after", NAN, &x->giveup_after)) ||
            (st = mt_cfg_get_float(node, "scale_up", 1.0, &x->scale_up)) ||
            (st = mt_cfg_get_float(node, "max_scale", 1.0, &x->max_scale)))
            goto fail;
        x->channel = mt_strdup(ch ? ch : "");
        x->channel_loc = mt_cfg_key_loc(node, "channel");
        if (!x->channel) {
            st = mt_err_set(MT_ERR_NOMEM, "StepShrinker");
            goto fail;
        }
    } else if ((st = mt_cfg_get_float(node, "scale", NAN, &x->scale)) ||
               (st = mt_cfg_get_float(node, "min_value", NAN, &x->min_value))) {
        goto fail;
    }
    if (!(x->scale > 0) || !isfinite(x->scale)) {
        st = mt_cfg_error(MT_ERR_RANGE, mt_cfg_key_loc(node, "scale"),
                          "%s: scale must be finite and > 0 (got %g)",
                          shrinker ? "StepShrinker" : "ScaleStep", x->scale);
        goto fail;
    }
    *out = x;
    return MT_OK;
fail:
    step_destroy(x);
    return st;
}

static mt_status build_scale_step(mt_cfg_builder *b, const mt_cfg_node *node, void **out)
{
    (void)b;
    return build_step(node, false, out);
}

static mt_status build_shrinker(mt_cfg_builder *b, const mt_cfg_node *node, void **out)
{
    (void)b;
    return build_step(node, true, out);
}

static const mt_cfg_key scale_step_keys[] = {
    {"scale", MT_CFG_T_FLOAT, true, false, NULL, false, "factor applied after every epoch"},
    {"min_value", MT_CFG_T_FLOAT, true, false, NULL, false, "floor of scale_step"},
    {NULL, 0, false, false, NULL, false, NULL}};

static const mt_cfg_key shrinker_keys[] = {
    {"channel", MT_CFG_T_STRING, true, false, NULL, false, "channel that must keep improving"},
    {"scale", MT_CFG_T_FLOAT, true, false, NULL, false, "factor when it did not improve"},
    {"giveup_after", MT_CFG_T_FLOAT, true, false, NULL, false,
     "stop when scale_step would fall below this"},
    {"scale_up", MT_CFG_T_FLOAT, false, true, NULL, false, "factor when it improved (1)"},
    {"max_scale", MT_CFG_T_FLOAT, false, true, NULL, false, "ceiling when scaling up (1)"},
    {NULL, 0, false, false, NULL, false, NULL}};

static const char *const scale_step_aliases[] = {"pylearn2.training_algorithms.bgd.ScaleStep",
                                                 NULL};
static const char *const shrinker_aliases[] = {"pylearn2.training_algorithms.bgd.StepShrinker",
                                               NULL};

static const mt_component step_components[] = {
    {"ScaleStep", "extension", scale_step_aliases, scale_step_keys, false,
     "multiplies BGD's scale_step after every epoch", build_scale_step, step_destroy, NULL},
    {"StepShrinker", "extension", shrinker_aliases, shrinker_keys, false,
     "shrinks BGD's scale_step while a channel does not improve; stops below giveup_after",
     build_shrinker, step_destroy, NULL},
};

mt_status mt__train_register_bgd(mt_cfg_registry *r)
{
    mt_status st = mt_cfg_registry_add(r, &bgd_component);
    return st ? st
              : mt__register_components(r, step_components,
                                        sizeof(step_components) / sizeof(step_components[0]));
}
