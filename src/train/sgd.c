/* SGD: minibatch stochastic gradient descent (Pylearn2's training_algorithms/sgd.py SGD).
 *
 * setup compiles ONE training function: arguments X (and y when the data has targets),
 * output the cost, updates for every parameter (learning rule, lr_scale, then the model's norm
 * constraints) and every optimizer state array. The learning rate and the momentum are 0-d
 * float32 shared variables ("learning_rate", "momentum"), so update callbacks and extensions
 * change them between calls without recompiling. The parameters are the run's arrays (shared
 * with the monitor's functions).
 *
 * An epoch draws the batches of the training iterator (default shuffled_sequential, seeded
 * with `seed`; the order depends only on (seed, epoch, batch)), calls the function, checks the
 * cost, runs the update callbacks (per minibatch, after the step, as Pylearn2) and reports the
 * batch to the run (counters, progress, signals). A non-finite cost or parameter stops
 * training with an error naming the epoch, the batch and the first graph node whose value is
 * not finite: the state at the start of the epoch is restored from the run's snapshot and the
 * epoch replayed up to that batch, then the graph is evaluated node by node (nan_locate.c).
 *
 * Data-parallel runs (parallel_run.c, docs/parallel.md): each process computes its shard(s)
 * of every global batch. Fast mode compiles the same one function with all-reduce nodes
 * inserted after the gradients (parallel.h), so the reduction overlaps the backward pass.
 * Deterministic mode compiles two functions instead: the gradient function (X, y -> the
 * shard's cost and its gradients weighted by shard rows / global rows) and the update
 * function (the reduced gradients -> the same updates), with the ordered sum of the shards'
 * gradients between them, so N ranks and one process running N shards agree bit for bit.
 * Random nodes draw call number (batches seen) * shards + shard, the same wherever a shard
 * runs. The global batch's cost (each shard's mean weighted by its rows) and the signals are
 * agreed at every step boundary (mt__run_dp_step_end). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "sgd_impl.h"

typedef struct mt__sgd {
    mt__algorithm base;
    double lr0;
    float lr;                    /* current learning rate (float32, as Pylearn2's sharedX) */
    mt__learning_rule *rule;     /* borrowed; NULL = plain SGD */
    float momentum;
    int32_t n_cb;
    mt__update_callback **cb;    /* owned array, borrowed items */
    /* per run */
    mt__algo_state r;            /* graph, model graph, cost, iterator, batch arrays */
    mt__rule_ctx rc;
    mt_function *fn;
    mt_update *updates;
    int32_t n_updates;
    mt_array lr_arr, mom_arr;
    /* data parallelism */
    bool ordered;                /* deterministic mode: gfn per shard, ordered sum, fn */
    mt_function *gfn;            /* X, y -> cost, weight * gradient of each trained param */
    mt_var weight;               /* 0-d float32 shared of gfn: shard rows / global rows */
    mt_array w_arr;
    float w_cur;
    int32_t n_train;             /* trained (not frozen) parameters */
    int32_t *train_idx;          /* their indices */
    mt_var *red_vars;            /* fn's arguments in deterministic mode: reduced gradients */
    mt_array *red;               /* the ordered sums (n_train) */
    mt_array *gout;              /* gfn's outputs (1 + n_train) */
    double comm_seen, wait_seen; /* collective seconds reported at the last epoch's end */
    mt__loss_scaler ls;          /* float16: dynamic loss scaling (precision.c) */
} mt__sgd;

static const mt__algorithm_ops sgd_ops;

bool mt__is_sgd(const mt__algorithm *a)
{
    return a && a->ops == &sgd_ops;
}

int32_t mt__sgd_n_state(const mt__algorithm *a)
{
    return mt__is_sgd(a) ? ((const mt__sgd *)a)->rc.n_state : 0;
}

mt_array *mt__sgd_state(mt__algorithm *a, int32_t i)
{
    mt__sgd *s = (mt__sgd *)a;
    return mt__is_sgd(a) && i >= 0 && i < s->rc.n_state ? &s->rc.state[i].value : NULL;
}

/* ---------------------------------------------------------------- setup */

static mt_status build_updates(mt__sgd *s, mt__run *run, const mt_var *grads)
{
    mt_graph *g = s->r.g;
    int32_t np = s->r.mg.n_params;
    mt_var *values = mt_calloc((size_t)np + 1, sizeof(*values));
    if (!values) return mt_err_set(MT_ERR_NOMEM, "SGD updates");
    mt_status st = mt__rule_begin(s->rule, &s->rc);
    for (int32_t i = 0; i < np && !st; i++) {
        const mt_model_param *p = mt_model_param_const(run->model, i);
        if (p->frozen) continue; /* PretrainedLayer(freeze_params): no update, no rule state */
        st = mt__rule_param_update(s->rule, &s->rc, p->name, s->r.mg.params[i], grads[i],
                                   (double)p->lr_scale, &values[i]);
    }
    if (!st) st = mt_model_constrain(&s->r.mg, values);
    if (!st && mt_graph_status(g))
        st = mt_err_set(mt_graph_status(g), "SGD: %s", mt_graph_last_error(g));
    if (!st) {
        s->updates = mt_calloc((size_t)(np + s->rc.n_state) + 2, sizeof(*s->updates));
        if (!s->updates) st = mt_err_set(MT_ERR_NOMEM, "SGD updates");
    }
    if (!st) {
        for (int32_t i = 0; i < np; i++)
            if (values[i] != MT_VAR_NONE)
                s->updates[s->n_updates++] = (mt_update){s->r.mg.params[i], values[i]};
        for (int32_t i = 0; i < s->rc.n_state; i++)
            s->updates[s->n_updates++] = (mt_update){s->rc.state[i].var, s->rc.state[i].new_value};
        /* the finite check reads the trained parameters' gradients (frozen ones are not
         * computed: in deterministic mode they are not even in the update function) */
        for (int32_t i = 0; i < np; i++)
            values[i] = mt_model_param_const(run->model, i)->frozen ? MT_VAR_NONE : grads[i];
        st = mt__scaler_guard(&s->ls, g, np, values, s->updates, &s->n_updates);
    }
    mt_free(values);
    return st;
}

static mt_status bind_all(mt__sgd *s, mt__run *run)
{
    mt_status st = mt__run_bind_params(run, s->fn, &s->r.mg);
    if (!st && s->gfn) st = mt__run_bind_params(run, s->gfn, &s->r.mg);
    if (st) return st;
    if (s->gfn) {
        s->w_cur = 1.0f;
        if ((st = mt__scalar_array_set(&s->w_arr, run->dev, s->w_cur)) ||
            (st = mt_function_set_shared(s->gfn, s->weight, &s->w_arr)))
            return mt_err_prefix(st, "SGD: shard weight: ");
    }
    mt_function *fns[2] = {s->fn, s->gfn};
    if ((st = mt__scaler_bind(&s->ls, run->dev, fns, 2))) return st;
    if ((st = mt__scalar_array_set(&s->lr_arr, run->dev, s->lr)) ||
        (st = mt_function_set_shared(s->fn, s->rc.lr, &s->lr_arr)))
        return mt_err_prefix(st, "SGD: learning_rate: ");
    if (s->rc.momentum) {
        if ((st = mt__scalar_array_set(&s->mom_arr, run->dev, s->momentum)) ||
            (st = mt_function_set_shared(s->fn, s->rc.momentum, &s->mom_arr)))
            return mt_err_prefix(st, "SGD: momentum: ");
    }
    for (int32_t i = 0; i < s->rc.n_state; i++) {
        if (!mt_function_var_type(s->fn, s->rc.state[i].var)) continue;
        st = mt_function_set_shared(s->fn, s->rc.state[i].var, &s->rc.state[i].value);
        if (st) return mt_err_prefix(st, "SGD: %s: ", s->rc.state[i].name);
    }
    return MT_OK;
}

/* Data parallelism: replaces grads[i] of each trained parameter by what the updates read.
 * Fast mode (and one process): the all-reduced gradient (the same gradient without a dp).
 * Deterministic mode: a placeholder for the ordered sum (fn's argument), and *wgrads receives
 * the weighted gradients gfn returns. */
static mt_status parallel_grads(mt__sgd *s, mt__run *run, mt_var *grads, mt_var **wgrads)
{
    int32_t np = s->r.mg.n_params;
    s->train_idx = mt_calloc((size_t)np + 1, sizeof(*s->train_idx));
    mt_var *p = mt_calloc((size_t)np + 1, sizeof(*p));
    mt_var *g = mt_calloc((size_t)np + 1, sizeof(*g));
    mt_var *r = mt_calloc((size_t)np + 1, sizeof(*r));
    mt_status st = MT_OK;
    if (!s->train_idx || !p || !g || !r) {
        st = mt_err_set(MT_ERR_NOMEM, "SGD gradients");
        goto done;
    }
    s->n_train = 0;
    for (int32_t i = 0; i < np; i++) {
        if (mt_model_param_const(run->model, i)->frozen) continue;
        p[s->n_train] = s->r.mg.params[i];
        g[s->n_train] = grads[i];
        s->train_idx[s->n_train++] = i;
    }
    s->ordered = mt__run_deterministic(run);
    if (!s->ordered) {
        st = mt__run_dp_insert_allreduce(run, s->r.g, s->n_train, p, g, r);
    } else {
        s->weight = mt_graph_placeholder(s->r.g, "dp_shard_weight", MT_FLOAT32, 0, NULL);
        *wgrads = mt_calloc((size_t)s->n_train + 2, sizeof(**wgrads));
        s->red_vars = mt_calloc((size_t)s->n_train + 1, sizeof(*s->red_vars));
        s->red = mt_calloc((size_t)s->n_train + 1, sizeof(*s->red));
        s->gout = mt_calloc((size_t)s->n_train + 2, sizeof(*s->gout));
        if (!*wgrads || !s->red_vars || !s->red || !s->gout) {
            st = mt_err_set(MT_ERR_NOMEM, "SGD gradients");
            goto done;
        }
        (*wgrads)[0] = s->r.cost;
        for (int32_t k = 0; k < s->n_train; k++) {
            mt_type t = *mt_graph_type(s->r.g, p[k]);
            const char *pname = mt_model_param_const(run->model, s->train_idx[k])->name;
            char name[256];
            int len = snprintf(name, sizeof(name), "dp_grad_%s", pname);
            if (len < 0 || (size_t)len >= sizeof(name)) {
                st = mt_err_set(MT_ERR_RANGE, "SGD: the name of the reduced gradient of "
                                "parameter '%s' would be %d bytes long, over the limit of %zu",
                                pname, len, sizeof(name) - 1);
                goto done;
            }
            (*wgrads)[k + 1] = mt_graph_mul(s->r.g, g[k], s->weight);
            r[k] = mt_graph_placeholder(s->r.g, name, t.dtype, t.ndim, t.shape);
            s->red_vars[k] = r[k];
        }
    }
    if (!st && mt_graph_status(s->r.g))
        st = mt_err_set(mt_graph_status(s->r.g), "SGD: %s", mt_graph_last_error(s->r.g));
    for (int32_t k = 0; k < s->n_train && !st; k++) grads[s->train_idx[k]] = r[k];
done:
    mt_free(p);
    mt_free(g);
    mt_free(r);
    return st;
}

/* The training function (fast mode, one process: X, y -> cost with the updates) or, in
 * deterministic mode, the shard's gradient function gfn and the update function fn. */
static mt_status compile(mt__sgd *s, mt__run *run, const mt_var *wgrads)
{
    mt_var inputs[2] = {s->r.mg.X, s->r.mg.y};
    int32_t n_in = s->r.mg.y != MT_VAR_NONE ? 2 : 1;
    mt_function_options fo;
    mt_function_options_init(&fo);
    fo.mode = (mt_mode)run->opts->mode;
    mt_status st;
    if (!s->ordered) {
        mt__run_dp_function_options(run, &fo);
        st = mt_function_new(&s->fn, s->r.g, n_in, inputs, 1, &s->r.cost, s->n_updates,
                             s->updates, run->dev, &fo);
        return st ? mt_err_prefix(st, "SGD: compiling the training function: ") : MT_OK;
    }
    st = mt_function_new(&s->gfn, s->r.g, n_in, inputs, 1 + s->n_train, wgrads, 0, NULL, run->dev,
                         &fo);
    if (st) return mt_err_prefix(st, "SGD: compiling the gradient function: ");
    st = mt_function_new(&s->fn, s->r.g, s->n_train, s->red_vars, 0, NULL, s->n_updates,
                         s->updates, run->dev, &fo);
    return st ? mt_err_prefix(st, "SGD: compiling the update function: ") : MT_OK;
}

static mt_status sgd_setup(mt__algorithm *a, mt__run *run)
{
    mt__sgd *s = (mt__sgd *)a;
    mt_status st = mt__algo_state_begin(&s->r, a, run);
    if (st) return st;
    int32_t np = s->r.mg.n_params;
    if (np == 0) return mt_err_set(MT_ERR_INVALID, "SGD: the model has no parameters");
    mt_var *grads = mt_calloc((size_t)np, sizeof(*grads));
    if (!grads) return mt_err_set(MT_ERR_NOMEM, "SGD gradients");
    mt_grad_options go;
    mt_grad_options_init(&go);
    go.disconnected = MT_GRAD_DISCONNECTED_ZERO;
    /* float16: d(cost * S)/dp / S (no-ops otherwise) */
    st = mt__scaler_init(&s->ls, run, s->r.g);
    if (!st) st = mt_graph_grad(s->r.g, mt__scaler_scale(&s->ls, s->r.g, s->r.cost), np,
                                s->r.mg.params, grads, &go);
    if (st) st = mt_err_prefix(st, "SGD: gradient of the cost: ");
    if (!st) mt__scaler_unscale(&s->ls, s->r.g, np, grads);
    s->rc.g = s->r.g;
    s->rc.dev = run->dev;
    mt_var *wgrads = NULL;
    if (!st) st = parallel_grads(s, run, grads, &wgrads);
    if (!st) {
        s->rc.lr = mt_graph_placeholder(s->r.g, "learning_rate", MT_FLOAT32, 0, NULL);
        st = build_updates(s, run, grads);
    }
    mt_free(grads);
    if (!st) st = compile(s, run, wgrads);
    mt_free(wgrads);
    if (st) return st;
    if (mt__run_compute_dtype(run) != MT_FLOAT32 && mt_log_get_level() <= MT_LOG_DEBUG) {
        /* mixed precision: the schedule shows which steps compute in 16 bits */
        mt_strbuf sb;
        mt_strbuf_init(&sb);
        if (!mt_function_print(s->gfn ? s->gfn : s->fn, &sb) && sb.data) {
            /* one message per line: a log message has a bounded length */
            for (char *line = sb.data, *e; line && *line; line = e ? e + 1 : NULL) {
                if ((e = strchr(line, '\n'))) *e = 0;
                mt_log(MT_LOG_DEBUG, "SGD: %s training function: %s",
                       mt_dtype_name(mt__run_compute_dtype(run)), line);
            }
        }
        mt_strbuf_deinit(&sb);
    }
    if ((st = bind_all(s, run))) return st;
    return mt__algo_state_iter(&s->r, a, run, "SGD");
}

static void sgd_teardown(mt__algorithm *a)
{
    mt__sgd *s = (mt__sgd *)a;
    mt_function_free(s->fn);
    s->fn = NULL;
    mt_function_free(s->gfn);
    s->gfn = NULL;
    for (int32_t k = 0; s->red && k < s->n_train; k++) mt_array_clear(&s->red[k]);
    mt_free(s->red);
    s->red = NULL;
    mt_free(s->gout);
    s->gout = NULL;
    mt_free(s->red_vars);
    s->red_vars = NULL;
    mt_free(s->train_idx);
    s->train_idx = NULL;
    s->n_train = 0;
    mt_array_clear(&s->w_arr);
    mt__scaler_clear(&s->ls);
    mt__rule_ctx_clear(&s->rc);
    mt__algo_state_clear(&s->r);
    mt_free(s->updates);
    s->updates = NULL;
    s->n_updates = 0;
    mt_array_clear(&s->lr_arr);
    mt_array_clear(&s->mom_arr);
}

/* ---------------------------------------------------------------- training */

/* One shard of a data-parallel step: the shard's share of the global cost into *cost. */
static mt_status shard_step(mt__sgd *s, mt__run *run, int64_t epoch, int64_t b, int32_t shard,
                            double *cost, int64_t *n)
{
    bool with_y = s->r.mg.y != MT_VAR_NONE;
    int64_t nl = 0;
    mt_status st = mt__run_shard_batch(run, run->dataset, &s->r.it, epoch, b, shard, s->r.rows,
                                       &s->r.X, with_y ? &s->r.y : NULL, &nl, n);
    if (st) return st;
    const mt_array *in[2] = {&s->r.X, &s->r.y};
    uint64_t call = (uint64_t)run->batches_seen * (uint64_t)mt__run_n_shards(run) + (uint64_t)shard;
    double c = 0;
    if (s->ordered) {
        float w = (float)((double)nl / (double)*n);
        if (w != s->w_cur && (st = mt_array_fill(&s->w_arr, mt_scalar_f64((double)w)))) return st;
        s->w_cur = w;
        mt_function_set_rng_counter(s->gfn, call);
        st = mt_function_call(s->gfn, with_y ? 2 : 1, in, 1 + s->n_train, s->gout);
        if (st) return st;
        st = mt__scalar_array_get(&s->gout[0], &c);
        const mt_array **g = mt_calloc((size_t)s->n_train + 1, sizeof(*g));
        if (!g && !st) st = mt_err_set(MT_ERR_NOMEM, "SGD gradients");
        for (int32_t k = 0; g && k < s->n_train; k++) g[k] = &s->gout[k + 1];
        if (!st) st = mt__run_dp_ordered_add(run, shard, s->n_train, g);
        mt_free(g);
        for (int32_t k = 0; k <= s->n_train; k++) mt_array_clear(&s->gout[k]);
        if (st) return st;
    } else {
        if ((st = mt__run_dp_set_step(run, s->fn, nl, *n))) return st;
        mt_function_set_rng_counter(s->fn, call);
        mt_array out;
        memset(&out, 0, sizeof(out));
        if ((st = mt_function_call(s->fn, with_y ? 2 : 1, in, 1, &out))) return st;
        st = mt__scalar_array_get(&out, &c);
        mt_array_clear(&out);
        if (st) return st;
    }
    *cost += c * (double)nl / (double)*n;
    return MT_OK;
}

/* A data-parallel step: this process's shards, the reduction, the updates, then the agreement
 * on the global cost and on signals, and the periodic parameter checksum. */
static mt_status dp_step(mt__sgd *s, mt__run *run, int64_t epoch, int64_t b, double *cost,
                         int64_t *n)
{
    int32_t first, count;
    mt__run_local_shards(run, &first, &count);
    *cost = 0;
    mt_status st = s->ordered ? mt__run_dp_ordered_begin(run, s->n_train) : MT_OK;
    for (int32_t k = 0; k < count && !st; k++) st = shard_step(s, run, epoch, b, first + k, cost, n);
    if (!st && s->ordered) {
        st = mt__run_dp_ordered_finish(run, s->n_train, s->red);
        const mt_array **in = mt_calloc((size_t)s->n_train + 1, sizeof(*in));
        if (!in && !st) st = mt_err_set(MT_ERR_NOMEM, "SGD gradients");
        for (int32_t k = 0; in && k < s->n_train; k++) in[k] = &s->red[k];
        if (!st) st = mt_function_call(s->fn, s->n_train, in, 0, NULL);
        mt_free(in);
    }
    if (!st && mt__run_size(run) > 1) st = mt__run_dp_step_end(run, cost);
    if (!st) st = mt__run_dp_check(run, run->batches_seen + 1);
    if (st) return mt_err_prefix(st, "epoch %lld, batch %lld: ", (long long)epoch + 1,
                                 (long long)b + 1);
    return MT_OK;
}

/* One step on batch b of `epoch`: *cost receives the objective before the step. */
static mt_status sgd_step(mt__sgd *s, mt__run *run, int64_t epoch, int64_t b, double *cost,
                          int64_t *n)
{
    if (run->dp) return dp_step(s, run, epoch, b, cost, n);
    bool with_y = s->r.mg.y != MT_VAR_NONE;
    mt_status st = mt__run_batch(run, run->dataset, &s->r.it, epoch, b, s->r.rows, &s->r.X,
                                 with_y ? &s->r.y : NULL, n);
    if (st) return st;
    const mt_array *in[2] = {&s->r.X, &s->r.y};
    mt_array out;
    memset(&out, 0, sizeof(out));
    st = mt_function_call(s->fn, with_y ? 2 : 1, in, 1, &out);
    if (st) return mt_err_prefix(st, "epoch %lld, batch %lld: ", (long long)epoch + 1,
                                 (long long)b + 1);
    st = mt__scalar_array_get(&out, cost);
    mt_array_clear(&out);
    return st;
}

static mt_status after_step_callbacks(mt__sgd *s)
{
    bool skipped;
    mt_status st = mt__scaler_after_step(&s->ls, &skipped);
    if (st || s->n_cb == 0) return st;
    double lr = s->lr;
    for (int32_t i = 0; i < s->n_cb; i++) lr = mt__callback_apply(s->cb[i], (double)(float)lr);
    s->lr = (float)lr;
    return mt_array_fill(&s->lr_arr, mt_scalar_f64((double)s->lr));
}

/* Index of the first parameter or state array with a non-finite element, or -1. */
static mt_status first_bad_array(mt__sgd *s, mt__run *run, int32_t *idx, const char **name)
{
    *idx = -1;
    for (int32_t i = 0; i < run->n_params + s->rc.n_state; i++) {
        const mt_array *a = i < run->n_params ? &run->params[i]
                                              : &s->rc.state[i - run->n_params].value;
        bool ok = true;
        mt_status st = mt__array_all_finite(a, &ok);
        if (st) return st;
        if (!ok) {
            *idx = i;
            *name = i < run->n_params ? mt_model_param_const(run->model, i)->name
                                      : s->rc.state[i - run->n_params].name;
            return MT_OK;
        }
    }
    return MT_OK;
}

/* Evaluates the training graph on batch b from the current state, describing the first
 * non-finite node into desc. */
static mt_status describe_batch(mt__sgd *s, mt__run *run, int64_t epoch, int64_t b,
                                mt_strbuf *desc, bool *found)
{
    bool with_y = s->r.mg.y != MT_VAR_NONE;
    int64_t n;
    mt_status st = mt__run_batch(run, run->dataset, &s->r.it, epoch, b, s->r.rows, &s->r.X,
                                 with_y ? &s->r.y : NULL, &n);
    if (st) return st;
    int32_t cap = 5 + run->n_params + s->rc.n_state;
    mt_var *vars = mt_calloc((size_t)cap, sizeof(*vars));
    const mt_array **arrs = mt_calloc((size_t)cap, sizeof(*arrs));
    mt_var *roots = mt_calloc((size_t)s->n_updates + 1, sizeof(*roots));
    int32_t k = 0;
    if (!vars || !arrs || !roots) {
        st = mt_err_set(MT_ERR_NOMEM, "locating a non-finite value");
        goto done;
    }
    vars[k] = s->r.mg.X, arrs[k++] = &s->r.X;
    if (with_y) vars[k] = s->r.mg.y, arrs[k++] = &s->r.y;
    vars[k] = s->rc.lr, arrs[k++] = &s->lr_arr;
    if (s->rc.momentum) vars[k] = s->rc.momentum, arrs[k++] = &s->mom_arr;
    if (s->ls.on) vars[k] = s->ls.scale_var, arrs[k++] = &s->ls.scale_arr;
    for (int32_t i = 0; i < run->n_params; i++)
        vars[k] = s->r.mg.params[i], arrs[k++] = &run->params[i];
    for (int32_t i = 0; i < s->rc.n_state; i++)
        vars[k] = s->rc.state[i].var, arrs[k++] = &s->rc.state[i].value;
    roots[0] = s->r.cost;
    for (int32_t i = 0; i < s->n_updates; i++) roots[i + 1] = s->updates[i].value;
    st = mt__first_nonfinite(s->r.g, s->n_updates + 1, roots, k, vars, arrs, run->dev, desc,
                             found);
done:
    mt_free(vars);
    mt_free(arrs);
    mt_free(roots);
    return st;
}

/* Restores the epoch's starting state and replays batches [first, upto). Stops early when a
 * step leaves a non-finite parameter or state: *broken = that batch. */
static mt_status replay(mt__sgd *s, mt__run *run, int64_t epoch, int64_t first, int64_t upto,
                        int64_t *broken)
{
    *broken = -1;
    mt_status st = mt__run_load_algorithm(run, run->epoch_snapshot);
    if (st) return st;
    for (int64_t b = first; b < upto; b++) {
        double cost;
        int64_t n;
        if ((st = sgd_step(s, run, epoch, b, &cost, &n)) || (st = after_step_callbacks(s)))
            return st;
        int32_t idx;
        const char *name;
        if ((st = first_bad_array(s, run, &idx, &name))) return st;
        if (idx >= 0) {
            *broken = b;
            return MT_OK;
        }
    }
    return MT_OK;
}

/* Builds the error for a non-finite value met at batch b (cost_bad: the cost of b was not
 * finite; else a parameter was found non-finite after batch b). */
static mt_status nonfinite_error(mt__sgd *s, mt__run *run, int64_t epoch, int64_t first,
                                 int64_t b, bool cost_bad, double cost)
{
    mt_strbuf desc;
    mt_strbuf_init(&desc);
    bool found = false;
    int64_t at = b;
    mt_status st = MT_OK;
    if (run->epoch_snapshot && !run->dp) {
        int64_t broken = -1;
        st = replay(s, run, epoch, first, cost_bad ? b : b + 1, &broken);
        if (!st && broken >= 0) {
            at = broken;
            st = replay(s, run, epoch, first, broken, &broken);
        }
        if (!st) st = describe_batch(s, run, epoch, at, &desc, &found);
    }
    char where[1200];
    if (run->dp)
        snprintf(where, sizeof(where), " (a data-parallel run does not locate the node: run the "
                                       "job on one process to locate it)");
    else if (st)
        snprintf(where, sizeof(where), " (locating it failed: %s)", mt_last_error());
    else if (found)
        snprintf(where, sizeof(where), "; first non-finite value: %s", desc.data);
    else
        snprintf(where, sizeof(where), "; the node-by-node reference evaluation of that batch "
                                       "stays finite");
    mt_strbuf_deinit(&desc);
    if (cost_bad && at == b)
        return mt_err_set(MT_ERR_RANGE, "non-finite cost (%s) at epoch %lld, batch %lld%s",
                          isnan(cost) ? "nan" : cost > 0 ? "inf" : "-inf", (long long)epoch + 1,
                          (long long)at + 1, where);
    return mt_err_set(MT_ERR_RANGE, "a parameter update became non-finite at epoch %lld, batch "
                                    "%lld%s",
                      (long long)epoch + 1, (long long)at + 1, where);
}

/* Fast data-parallel mode: how much of the epoch's gradient all-reduce time the backward pass
 * hid (the jit's collective statistics of the training function), logged by rank 0. */
static void report_overlap(mt__sgd *s, mt__run *run, int64_t epoch)
{
    if (!run->dp || s->ordered || mt__run_size(run) < 2 || !mt__run_is_main(run)) return;
    mt_function_stats fs;
    mt_function_get_stats(s->fn, &fs);
    double total = fs.collective_seconds - s->comm_seen;
    double wait = fs.collective_wait_seconds - s->wait_seen;
    s->comm_seen = fs.collective_seconds;
    s->wait_seen = fs.collective_wait_seconds;
    if (total <= 0) return;
    mt_log(MT_LOG_INFO, "epoch %lld: gradient all-reduce %.3f s in flight (%d bucket%s per "
                        "step), %.3f s waited: %.0f%% hidden behind the backward pass",
           (long long)epoch + 1, total, (int)fs.n_buckets, fs.n_buckets == 1 ? "" : "s", wait,
           100.0 * (1.0 - wait / total));
}

static mt_status sgd_train_epoch(mt__algorithm *a, mt__run *run, bool *finished)
{
    mt__sgd *s = (mt__sgd *)a;
    int64_t epoch = run->epochs_seen;
    int64_t first = run->batch_in_epoch;
    int64_t nb = mt__run_epoch_batches(run, s->r.it.n_batches);
    run->batches_this_epoch = nb;
    *finished = false;
    for (int64_t b = first; b < nb; b++) {
        double cost = 0;
        int64_t n = 0;
        mt_status st = sgd_step(s, run, epoch, b, &cost, &n);
        if (st) return st;
        if (!isfinite(cost)) return nonfinite_error(s, run, epoch, first, b, true, cost);
        if ((st = after_step_callbacks(s))) return st;
        bool stop = false;
        if ((st = mt__run_after_batch(run, n, &stop))) return st;
        if (stop) return MT_OK;
    }
    int32_t idx;
    const char *name;
    mt_status st = first_bad_array(s, run, &idx, &name);
    if (st) return st;
    if (idx >= 0)
        return nonfinite_error(s, run, epoch, first, nb - 1, false, 0.0);
    report_overlap(s, run, epoch);
    if (s->ls.on && mt__run_is_main(run))
        mt_log(MT_LOG_INFO, "epoch %lld: float16 loss scale %g, %lld step%s skipped so far",
               (long long)epoch + 1, s->ls.scale, (long long)s->ls.skipped,
               s->ls.skipped == 1 ? "" : "s");
    *finished = true;
    return MT_OK;
}

/* ---------------------------------------------------------------- channels, scalars, state */

static mt_status sgd_channels(const mt__algorithm *a, const mt__run *run, mt__chanvals *out)
{
    const mt__sgd *s = (const mt__sgd *)a;
    mt_status st = mt__chanvals_set(out, "learning_rate", (double)s->lr);
    if (!st && s->rule && s->rule->kind == MT__RULE_MOMENTUM)
        st = mt__chanvals_set(out, "momentum", (double)s->momentum);
    return st;
}

static mt_status sgd_get_scalar(const mt__algorithm *a, const char *name, double *out)
{
    const mt__sgd *s = (const mt__sgd *)a;
    if (!strcmp(name, "learning_rate")) {
        *out = s->lr;
        return MT_OK;
    }
    if (!strcmp(name, "momentum") && s->rule && s->rule->kind == MT__RULE_MOMENTUM) {
        *out = s->momentum;
        return MT_OK;
    }
    return mt_err_set(MT_ERR_NOT_FOUND, "SGD (learning rule %s) has no '%s'",
                      mt__rule_name(s->rule), name);
}

static mt_status sgd_set_scalar(mt__algorithm *a, const char *name, double value)
{
    mt__sgd *s = (mt__sgd *)a;
    double dummy;
    mt_status st = sgd_get_scalar(a, name, &dummy);
    if (st) return st;
    bool lr = !strcmp(name, "learning_rate");
    float v = (float)value;
    if (lr)
        s->lr = v;
    else
        s->momentum = v;
    mt_array *arr = lr ? &s->lr_arr : &s->mom_arr;
    if (!arr->buf) return MT_OK; /* not set up yet: bound with this value at setup */
    return mt_array_fill(arr, mt_scalar_f64((double)v));
}

static mt_status sgd_save_state(const mt__algorithm *a, const mt__run *run, mt_ckpt *c)
{
    const mt__sgd *s = (const mt__sgd *)a;
    mt_status st;
    for (int32_t i = 0; i < s->rc.n_state; i++)
        if ((st = mt_ckpt_put_array(c, s->rc.state[i].name, &s->rc.state[i].value))) return st;
    if ((st = mt_ckpt_put_double(c, "algorithm/learning_rate", (double)s->lr)) ||
        (st = mt_ckpt_put_double(c, "algorithm/momentum", (double)s->momentum)) ||
        (st = mt_ckpt_put_int(c, "algorithm/rng_counter",
                              (int64_t)mt_function_rng_counter(s->fn))) ||
        (st = mt__scaler_save(&s->ls, c)))
        return st;
    char k[64];
    for (int32_t i = 0; i < s->n_cb; i++) {
        snprintf(k, sizeof(k), "algorithm/callback/%d", (int)i);
        if ((st = mt__callback_save(s->cb[i], k, c))) return st;
    }
    return MT_OK;
}

static mt_status sgd_load_state(mt__algorithm *a, mt__run *run, const mt_ckpt *c)
{
    mt__sgd *s = (mt__sgd *)a;
    mt_status st;
    for (int32_t i = 0; i < s->rc.n_state; i++)
        if ((st = mt__ckpt_copy_into(c, s->rc.state[i].name, &s->rc.state[i].value))) return st;
    double lr, mom;
    int64_t rng;
    if ((st = mt_ckpt_get_double(c, "algorithm/learning_rate", &lr)) ||
        (st = mt_ckpt_get_double(c, "algorithm/momentum", &mom)) ||
        (st = mt_ckpt_get_int(c, "algorithm/rng_counter", &rng)))
        return st;
    s->lr = (float)lr;
    s->momentum = (float)mom;
    if ((st = mt_array_fill(&s->lr_arr, mt_scalar_f64((double)s->lr)))) return st;
    if (s->mom_arr.buf && (st = mt_array_fill(&s->mom_arr, mt_scalar_f64((double)s->momentum))))
        return st;
    mt_function_set_rng_counter(s->fn, (uint64_t)rng);
    if ((st = mt__scaler_load(&s->ls, c))) return st;
    char k[64];
    for (int32_t i = 0; i < s->n_cb; i++) {
        snprintf(k, sizeof(k), "algorithm/callback/%d", (int)i);
        if ((st = mt__callback_load(s->cb[i], k, c))) return st;
    }
    return MT_OK;
}

static void sgd_describe(const mt__algorithm *a, mt_strbuf *sb)
{
    const mt__sgd *s = (const mt__sgd *)a;
    mt_strbuf_appendf(sb, "SGD: learning_rate %g, batch_size %lld, learning rule %s", s->lr0,
                      (long long)a->c.batch_size, mt__rule_name(s->rule));
    if (s->rule && s->rule->kind == MT__RULE_MOMENTUM)
        mt_strbuf_appendf(sb, " (init_momentum %g%s)", s->rule->init_momentum,
                          s->rule->nesterov ? ", nesterov" : "");
    mt_strbuf_appendf(sb, ", train iteration %s", mt_iter_mode_name(a->c.train_iteration_mode));
    static const char *const cbn[MT__CB_KIND_COUNT] = {"ExponentialDecay", "LinearDecay",
                                                       "AnnealedLearningRate"};
    for (int32_t i = 0; i < s->n_cb; i++)
        mt_strbuf_appendf(sb, "%s%s", i ? ", " : "; update callbacks: ", cbn[s->cb[i]->kind]);
}

static const mt__algorithm_ops sgd_ops = {
    .abi_version = MT__TRAIN_ABI_VERSION,
    .name = "SGD",
    .setup = sgd_setup,
    .train_epoch = sgd_train_epoch,
    .continue_learning = NULL,
    .channels = sgd_channels,
    .get_scalar = sgd_get_scalar,
    .set_scalar = sgd_set_scalar,
    .save_state = sgd_save_state,
    .load_state = sgd_load_state,
    .describe = sgd_describe,
    .teardown = sgd_teardown,
};

/* ---------------------------------------------------------------- component */

static void sgd_destroy(void *obj)
{
    mt__sgd *s = obj;
    if (!s) return;
    mt__algo_destroy(&s->base);
    mt_free(s->cb);
    mt_free(s);
}

static mt_status build_callbacks(mt_cfg_builder *b, const mt_cfg_node *node, mt__sgd *s)
{
    const mt_cfg_node *v = mt_cfg_get(node, "update_callbacks");
    if (!v || v->kind == MT_CFG_NULL) return MT_OK;
    int32_t n = v->kind == MT_CFG_LIST ? v->n : 1;
    s->cb = mt_calloc((size_t)(n > 0 ? n : 1), sizeof(*s->cb));
    if (!s->cb) return mt_err_set(MT_ERR_NOMEM, "update callbacks");
    for (int32_t i = 0; i < n; i++) {
        void *obj = NULL;
        mt_status st = mt_cfg_build(b, v->kind == MT_CFG_LIST ? v->items[i] : v,
                                    "update_callback", &obj, NULL);
        if (st) return st;
        s->cb[s->n_cb++] = obj;
    }
    return MT_OK;
}

static mt_status build_sgd(mt_cfg_builder *b, const mt_cfg_node *node, void **out)
{
    mt__sgd *s = NULL;
    mt_status st = mt__algo_new((void **)&s, sizeof(*s), &sgd_ops, b, node);
    if (st) return st;
    if ((st = mt__get_value(b, node, "learning_rate", NAN, &s->lr0))) goto fail;
    if (!(s->lr0 >= 0.0) || !isfinite(s->lr0)) {
        st = mt_cfg_error(MT_ERR_RANGE, mt_cfg_key_loc(node, "learning_rate"),
                          "SGD: learning_rate must be a finite number >= 0 (got %g)", s->lr0);
        goto fail;
    }
    s->lr = (float)s->lr0;
    void *rule = NULL;
    if ((st = mt__build_opt(b, node, "learning_rule", "learning_rule", &rule))) goto fail;
    s->rule = rule;
    const mt_cfg_node *im = mt_cfg_get(node, "init_momentum");
    if (im && im->kind != MT_CFG_NULL) {
        if (s->rule) {
            st = mt_cfg_error(MT_ERR_INVALID, mt_cfg_key_loc(node, "init_momentum"),
                              "SGD: init_momentum (deprecated) and learning_rule both given");
            goto fail;
        }
        mt_log(MT_LOG_WARN, "%s:%d: SGD init_momentum is deprecated: use learning_rule: "
                            "!obj:Momentum {init_momentum: ...}",
               node->loc.file, (int)node->loc.line);
        mt__learning_rule *r = mt_calloc(1, sizeof(*r));
        if (!r || (st = mt_cfg_builder_own(b, r, mt_free))) {
            mt_free(r);
            st = st ? st : mt_err_set(MT_ERR_NOMEM, "SGD momentum rule");
            goto fail;
        }
        r->kind = MT__RULE_MOMENTUM;
        r->loc = im->loc;
        if ((st = mt__get_value(b, node, "init_momentum", 0.0, &r->init_momentum))) goto fail;
        s->rule = r;
    }
    if (s->rule && s->rule->kind == MT__RULE_MOMENTUM) s->momentum = (float)s->rule->init_momentum;
    if ((st = build_callbacks(b, node, s))) goto fail;
    *out = &s->base;
    return MT_OK;
fail:
    sgd_destroy(s);
    return st;
}

static const mt_cfg_key sgd_keys[] = {
    MT__ALGO_COMMON_KEYS,
    {"learning_rate", MT_CFG_T_ANY, true, false, NULL, false,
     "step size (a number or a read_channel object)"},
    {"learning_rule", MT_CFG_T_OBJ, false, true, "learning_rule", false,
     "Momentum, AdaDelta, AdaGrad, RMSProp, Adam (default: plain SGD)"},
    {"update_callbacks", MT_CFG_T_OBJ_OR_LIST, false, true, "update_callback", false,
     "called after every minibatch (ExponentialDecay, LinearDecay, AnnealedLearningRate)"},
    {"init_momentum", MT_CFG_T_ANY, false, true, NULL, false,
     "deprecated: use learning_rule: !obj:Momentum"},
    {"monitoring_costs", MT_CFG_T_ANY, false, true, NULL, false, "accepted, ignored"},
    {NULL, 0, false, false, NULL, false, NULL}};

static const char *const sgd_aliases[] = {"pylearn2.training_algorithms.sgd.SGD", NULL};

static const mt_component sgd_component = {
    "SGD", "algorithm", sgd_aliases, sgd_keys, false,
    "minibatch stochastic gradient descent with learning rules and callbacks", build_sgd,
    sgd_destroy, NULL};

mt_status mt__train_register_algorithms(mt_cfg_registry *r)
{
    mt_status st = mt_cfg_registry_add(r, &sgd_component);
    if (st) return st;
#ifdef MT__TRAIN_HAVE_BGD
    st = mt__train_register_bgd(r);
#endif
    return st;
}
