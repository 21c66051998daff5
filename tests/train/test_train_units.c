/* train unit tests without data files: each learning rule's update (two steps, compiled
 * through the jit) against a float64 hand computation; the update callbacks' schedules; the
 * termination criteria on scripted channel values (And/Or short-circuit, state round trips
 * through a checkpoint); MomentumAdjustor / LinearDecayOverEpoch on a stand-in algorithm;
 * optimizer state names of long parameter names (whole, or an error, never cut short). */
#include <math.h>
#include <string.h>

#include "mt_test.h"
#include "sgd_impl.h"
#include "test_train_built.h"

/* ---------------------------------------------------------------- learning rules */

#define NP 4

typedef struct rule_case {
    mt__learning_rule r;
    double lr, lr_scale, momentum;
} rule_case;

static const double p_init[NP] = {0.5, -1.25, 2.0, 0.0};
static const double g_steps[2][NP] = {{0.1, -0.3, 2.5, 0.0}, {-0.2, 0.05, 1.5, 0.4}};

/* Runs two steps of the rule through a compiled function; p_out receives the parameter. */
static void run_rule(const rule_case *rc, double *p_out)
{
    mt_graph *g = NULL;
    MT_CHECK_OK(mt_graph_new(&g));
    mt_device *dev = NULL;
    MT_CHECK_OK(mt_device_open(&dev, mt_test_device_name()));
    int64_t shape[1] = {NP};
    mt_var p = mt_graph_placeholder(g, "w", MT_FLOAT32, 1, shape);
    mt_var grad = mt_graph_placeholder(g, "g", MT_FLOAT32, 1, shape);
    mt__rule_ctx ctx;
    memset(&ctx, 0, sizeof(ctx));
    ctx.g = g;
    ctx.dev = dev;
    ctx.lr = mt_graph_placeholder(g, "learning_rate", MT_FLOAT32, 0, NULL);
    MT_CHECK_OK(mt__rule_begin(&rc->r, &ctx));
    mt_var newp = MT_VAR_NONE;
    MT_CHECK_OK(mt__rule_param_update(&rc->r, &ctx, "w", p, grad, rc->lr_scale, &newp));
    mt_update ups[8];
    int32_t nu = 0;
    ups[nu++] = (mt_update){p, newp};
    for (int32_t i = 0; i < ctx.n_state; i++) ups[nu++] = (mt_update){ctx.state[i].var, ctx.state[i].new_value};
    mt_function *f = NULL;
    MT_CHECK_OK(mt_function_new(&f, g, 1, &grad, 0, NULL, nu, ups, dev, NULL));
    float pv[NP], lr = (float)rc->lr, mom = (float)rc->momentum;
    for (int i = 0; i < NP; i++) pv[i] = (float)p_init[i];
    mt_array pa, la, ma;
    memset(&ma, 0, sizeof(ma));
    MT_CHECK_OK(mt_array_from_host(&pa, dev, MT_FLOAT32, 1, shape, pv));
    MT_CHECK_OK(mt_array_from_host(&la, dev, MT_FLOAT32, 0, NULL, &lr));
    MT_CHECK_OK(mt_function_set_shared(f, p, &pa));
    MT_CHECK_OK(mt_function_set_shared(f, ctx.lr, &la));
    if (ctx.momentum) {
        MT_CHECK_OK(mt_array_from_host(&ma, dev, MT_FLOAT32, 0, NULL, &mom));
        MT_CHECK_OK(mt_function_set_shared(f, ctx.momentum, &ma));
    }
    for (int32_t i = 0; i < ctx.n_state; i++)
        MT_CHECK_OK(mt_function_set_shared(f, ctx.state[i].var, &ctx.state[i].value));
    for (int s = 0; s < 2; s++) {
        float gv[NP];
        for (int i = 0; i < NP; i++) gv[i] = (float)g_steps[s][i];
        mt_array ga;
        MT_CHECK_OK(mt_array_from_host(&ga, dev, MT_FLOAT32, 1, shape, gv));
        const mt_array *in[1] = {&ga};
        MT_CHECK_OK(mt_function_call(f, 1, in, 0, NULL));
        mt_array_clear(&ga);
    }
    mt_array got;
    memset(&got, 0, sizeof(got));
    MT_CHECK_OK(mt_function_get_shared(f, p, &got));
    MT_CHECK_OK(mt_array_to_host(pv, sizeof(pv), &got));
    for (int i = 0; i < NP; i++) p_out[i] = pv[i];
    mt_array_clear(&got);
    mt_array_clear(&pa);
    mt_array_clear(&la);
    mt_array_clear(&ma);
    mt_function_free(f);
    mt__rule_ctx_clear(&ctx);
    mt_graph_free(g);
    mt_device_release(dev);
}

/* float64 references, written from the formulas of research/pylearn2_hyperopt.md §1.4. */
static void reference(const rule_case *rc, double *p)
{
    double s1[NP] = {0}, s2[NP] = {0};
    double eps = rc->lr * rc->lr_scale, mu = rc->momentum;
    const mt__learning_rule *r = &rc->r;
    for (int i = 0; i < NP; i++) p[i] = p_init[i];
    for (int t = 1; t <= 2; t++) {
        for (int i = 0; i < NP; i++) {
            double g = g_steps[t - 1][i];
            switch (r->kind) {
            case MT__RULE_SGD: p[i] -= eps * g; break;
            case MT__RULE_MOMENTUM: {
                s1[i] = mu * s1[i] - eps * g;
                p[i] += r->nesterov ? mu * s1[i] - eps * g : s1[i];
                break;
            }
            case MT__RULE_ADADELTA: {
                s1[i] = r->decay * s1[i] + (1 - r->decay) * g * g;
                double dx = -sqrt(s2[i] + eps) / sqrt(s1[i] + eps) * g;
                s2[i] = r->decay * s2[i] + (1 - r->decay) * dx * dx;
                p[i] += dx;
                break;
            }
            case MT__RULE_ADAGRAD:
                s1[i] += g * g;
                p[i] -= eps * g / fmax(1.0 / r->max_scaling, sqrt(s1[i]));
                break;
            case MT__RULE_RMSPROP:
                s1[i] = r->decay * s1[i] + (1 - r->decay) * g * g;
                p[i] -= eps * g / fmax(sqrt(s1[i]), 1.0 / r->max_scaling);
                break;
            case MT__RULE_ADAM: {
                s1[i] = r->beta1 * s1[i] + (1 - r->beta1) * g;
                s2[i] = r->beta2 * s2[i] + (1 - r->beta2) * g * g;
                double mh = s1[i] / (1 - pow(r->beta1, t)), vh = s2[i] / (1 - pow(r->beta2, t));
                p[i] -= eps * mh / (sqrt(vh) + r->epsilon);
                break;
            }
            default: break;
            }
        }
    }
}

static void check_rule(const rule_case *rc)
{
    double got[NP], want[NP];
    run_rule(rc, got);
    reference(rc, want);
    for (int i = 0; i < NP; i++) {
        if (!mt_test_close(got[i], want[i], 1e-6, 1e-5))
            mt_test_fail(__FILE__, __LINE__, "%s element %d: got %.9g, want %.9g",
                         mt__rule_name(&rc->r), i, got[i], want[i]);
        /* The update moved the parameter (the test would not notice a no-op otherwise). */
        if (g_steps[0][i] != 0 || g_steps[1][i] != 0) MT_CHECK(got[i] != p_init[i]);
    }
}

MT_TEST(rule_plain_sgd)
{
    rule_case rc = {.r = {.kind = MT__RULE_SGD}, .lr = 0.1, .lr_scale = 1.0};
    check_rule(&rc);
    rc.lr_scale = 0.5; /* W_lr_scale */
    check_rule(&rc);
}

MT_TEST(rule_momentum)
{
    rule_case rc = {.r = {.kind = MT__RULE_MOMENTUM, .init_momentum = 0.9}, .lr = 0.05,
                    .lr_scale = 1.0, .momentum = 0.9};
    check_rule(&rc);
    rc.lr_scale = 2.0;
    check_rule(&rc);
}

MT_TEST(rule_nesterov)
{
    rule_case rc = {.r = {.kind = MT__RULE_MOMENTUM, .init_momentum = 0.5, .nesterov = true},
                    .lr = 0.05, .lr_scale = 1.0, .momentum = 0.5};
    check_rule(&rc);
}

MT_TEST(rule_adadelta)
{
    rule_case rc = {.r = {.kind = MT__RULE_ADADELTA, .decay = 0.95}, .lr = 1e-6, .lr_scale = 1.0};
    check_rule(&rc);
}

MT_TEST(rule_adagrad)
{
    rule_case rc = {.r = {.kind = MT__RULE_ADAGRAD, .max_scaling = 1e5}, .lr = 0.1, .lr_scale = 1.0};
    check_rule(&rc);
}

MT_TEST(rule_rmsprop)
{
    rule_case rc = {.r = {.kind = MT__RULE_RMSPROP, .decay = 0.9, .max_scaling = 1e5}, .lr = 0.01,
                    .lr_scale = 1.0};
    check_rule(&rc);
}

MT_TEST(rule_adam)
{
    rule_case rc = {.r = {.kind = MT__RULE_ADAM, .beta1 = 0.9, .beta2 = 0.999, .epsilon = 1e-8},
                    .lr = 0.01, .lr_scale = 1.0};
    check_rule(&rc);
}

/* Optimizer state names ("optimizer/mean_square_grad_<param>", checkpoint keys in 159 bytes)
 * stay whole for parameters that differ in their last byte at the longest length that fits; one
 * byte more is an error naming the parameter, never a key cut short and shared. */
MT_TEST(rule_state_names_of_long_parameter_names)
{
    enum { FIT = 159 - 27 }; /* strlen("optimizer/mean_square_grad_") */
    mt_graph *g = NULL;
    MT_CHECK_OK(mt_graph_new(&g));
    mt_device *dev = NULL;
    MT_CHECK_OK(mt_device_open(&dev, "host"));
    mt__learning_rule r = {.kind = MT__RULE_RMSPROP, .decay = 0.9, .max_scaling = 1e5};
    mt__rule_ctx ctx;
    memset(&ctx, 0, sizeof(ctx));
    ctx.g = g;
    ctx.dev = dev;
    ctx.lr = mt_graph_placeholder(g, "learning_rate", MT_FLOAT32, 0, NULL);
    MT_CHECK_OK(mt__rule_begin(&r, &ctx));
    int64_t shape[1] = {NP};
    char names[3][FIT + 2];
    for (int i = 0; i < 3; i++) {
        size_t len = i < 2 ? FIT : FIT + 1;
        memset(names[i], 'w', len - 1);
        names[i][len - 1] = (char)('0' + i);
        names[i][len] = 0;
        mt_var p = mt_graph_placeholder(g, names[i], MT_FLOAT32, 1, shape), newp = MT_VAR_NONE;
        mt_var grad = mt_graph_mul(g, p, p);
        if (i < 2) {
            MT_CHECK_OK(mt__rule_param_update(&r, &ctx, names[i], p, grad, 1.0, &newp));
        } else {
            MT_CHECK_ERR(mt__rule_param_update(&r, &ctx, names[i], p, grad, 1.0, &newp),
                         MT_ERR_RANGE, "over the limit of 159");
            MT_CHECK(strstr(mt_last_error(), names[i]) != NULL);
        }
    }
    MT_CHECK_EQ_INT(ctx.n_state, 2);
    for (int i = 0; i < 2; i++) {
        char want[512];
        snprintf(want, sizeof(want), "optimizer/mean_square_grad_%s", names[i]);
        MT_CHECK_EQ_INT(strlen(want), 159);
        MT_CHECK_STR_EQ(ctx.state[i].name, want);
    }
    mt__rule_ctx_clear(&ctx);
    mt_graph_free(g);
    mt_device_release(dev);
}

/* ---------------------------------------------------------------- update callbacks */

MT_TEST(callback_exponential_decay)
{
    mt__update_callback cb = {.kind = MT__CB_EXPONENTIAL_DECAY, .decay_factor = 1.5, .min_lr = 0.02};
    double lr0 = 0.1, lr = lr0;
    bool floor_seen = false;
    for (int t = 1; t <= 8; t++) {
        lr = (float)mt__callback_apply(&cb, (float)lr);
        double want = lr0 / pow(1.5, t);
        if (want <= 0.02 || floor_seen) {
            want = 0.02;
            floor_seen = true;
        }
        MT_CHECK_CLOSE(lr, (float)want, 0, 1e-6);
    }
    MT_CHECK(cb.min_reached);
    MT_CHECK_EQ_INT(cb.count, 8);
}

MT_TEST(callback_linear_decay)
{
    mt__update_callback cb = {.kind = MT__CB_LINEAR_DECAY, .start = 2, .saturate = 5, .decay_factor = 0.1};
    double lr0 = 1.0, lr = lr0;
    double step = (lr0 - lr0 * 0.1) / (5 - 2 + 1);
    for (int t = 1; t <= 7; t++) {
        lr = mt__callback_apply(&cb, lr);
        double want = t < 2 ? lr0 : t < 5 ? lr0 - step * (t - 2 + 1) : lr0 * 0.1;
        MT_CHECK_CLOSE(lr, want, 1e-12, 0);
    }
}

MT_TEST(callback_annealed)
{
    mt__update_callback cb = {.kind = MT__CB_ANNEALED, .anneal_start = 3};
    double lr = 0.6;
    for (int t = 1; t <= 6; t++) {
        lr = mt__callback_apply(&cb, lr);
        MT_CHECK_CLOSE(lr, 0.6 * fmin(1.0, 3.0 / t), 1e-12, 0);
    }
}

MT_TEST(callback_state_round_trip)
{
    mt__update_callback a = {.kind = MT__CB_EXPONENTIAL_DECAY, .decay_factor = 1.01, .min_lr = 1e-6};
    double lr = 0.1;
    for (int t = 0; t < 5; t++) lr = mt__callback_apply(&a, lr);
    mt_ckpt *c = NULL;
    MT_CHECK_OK(mt_ckpt_new(&c));
    MT_CHECK_OK(mt__callback_save(&a, "cb", c));
    mt__update_callback b = {.kind = MT__CB_EXPONENTIAL_DECAY, .decay_factor = 1.01, .min_lr = 1e-6};
    MT_CHECK_OK(mt__callback_load(&b, "cb", c));
    double la = lr, lb = lr;
    for (int t = 0; t < 5; t++) {
        la = mt__callback_apply(&a, la);
        lb = mt__callback_apply(&b, lb);
        MT_CHECK(la == lb);
    }
    mt_ckpt_free(c);
}

/* ---------------------------------------------------------------- components from YAML */

static bool step(mt__termination *t, mt__run *run, const char *chan, double v)
{
    if (chan) MT_CHECK_OK(mt__chanvals_set(&run->last, chan, v));
    bool cont = false;
    MT_CHECK_OK(t->ops->continue_learning(t, run, &cont));
    run->epochs_seen++;
    return cont;
}

MT_TEST(termination_epoch_counter)
{
    built bt;
    build_yaml(&bt, "!obj:pylearn2.termination_criteria.EpochCounter { max_epochs: 3 }",
               "termination");
    mt__run run;
    memset(&run, 0, sizeof(run));
    run.epochs_seen = 1; /* asked after epoch 1, 2, 3: trains exactly 3 epochs */
    MT_CHECK(step(bt.obj, &run, NULL, 0));
    MT_CHECK(step(bt.obj, &run, NULL, 0));
    MT_CHECK(!step(bt.obj, &run, NULL, 0));
    built_free(&bt);

    build_yaml(&bt, "!obj:EpochCounter { max_epochs: 7, new_epochs: false }", "termination");
    run.epochs_seen = 5; /* counts from epochs_seen - 1 = 4 */
    MT_CHECK(step(bt.obj, &run, NULL, 0));  /* 5 */
    MT_CHECK(step(bt.obj, &run, NULL, 0));  /* 6 */
    MT_CHECK(!step(bt.obj, &run, NULL, 0)); /* 7 */
    built_free(&bt);
}

/* Independent restatement of MonitorBased for the scripted check. */
static void monitor_based_ref(const double *v, int n, double prop, int N, bool *cont)
{
    double best = INFINITY;
    int countdown = N;
    for (int i = 0; i < n; i++) {
        bool improved = v[i] < (1 - prop) * best;
        countdown = improved ? N : countdown - 1;
        best = fmin(best, v[i]);
        cont[i] = countdown > 0;
    }
}

MT_TEST(termination_monitor_based)
{
    const double v[] = {1.0, 0.95, 0.85, 0.84, 0.83, 0.70, 0.69, 0.68, 0.68};
    const int n = (int)(sizeof(v) / sizeof(v[0]));
    bool want[16];
    monitor_based_ref(v, n, 0.1, 2, want);
    built bt;
    build_yaml(&bt,
               "!obj:MonitorBased { channel_name: 'valid_y_misclass', prop_decrease: 0.1, N: 2 }",
               "termination");
    mt__run run;
    memset(&run, 0, sizeof(run));
    int stops = 0;
    for (int i = 0; i < n; i++) {
        bool got = step(bt.obj, &run, "valid_y_misclass", v[i]);
        MT_CHECK(got == want[i]);
        stops += !got;
    }
    MT_CHECK(stops > 0 && stops < n); /* the script exercises both outcomes */
    /* v[1] = 0.95 is not a 10% improvement over 1.0: countdown 1; v[2] = 0.85 < 0.9 resets */
    MT_CHECK(want[1] && want[2]);
    mt__chanvals_clear(&run.last);
    built_free(&bt);

    /* default channel: objective; a missing channel is an error naming it */
    build_yaml(&bt, "!obj:MonitorBased {}", "termination");
    memset(&run, 0, sizeof(run));
    MT_CHECK_OK(mt__chanvals_set(&run.last, "train_objective", 1.0));
    bool cont;
    mt__termination *t = bt.obj;
    MT_CHECK_ERR(t->ops->continue_learning(t, &run, &cont), MT_ERR_NOT_FOUND, "'objective'");
    mt__chanvals_clear(&run.last);
    built_free(&bt);
}

MT_TEST(termination_and_or_short_circuit)
{
    built bt;
    build_yaml(&bt,
               "!obj:And { criteria: [ !obj:MonitorBased { channel_name: c, N: 1 },\n"
               "                       !obj:EpochCounter { max_epochs: 100 } ] }",
               "termination");
    mt__run run;
    memset(&run, 0, sizeof(run));
    MT_CHECK(step(bt.obj, &run, "c", 1.0));  /* improves: both asked */
    MT_CHECK(!step(bt.obj, &run, "c", 1.0)); /* no improvement: stops, EpochCounter skipped */
    mt_ckpt *c = NULL;
    MT_CHECK_OK(mt_ckpt_new(&c));
    mt__termination *t = bt.obj;
    MT_CHECK_OK(mt__termination_save(t, "termination", c));
    int64_t done = -1;
    MT_CHECK_OK(mt_ckpt_get_int(c, "termination/1/epochs_done", &done));
    MT_CHECK_EQ_INT(done, 1); /* asked once only, as Python's all() */
    mt_ckpt_free(c);
    built_free(&bt);

    build_yaml(&bt,
               "!obj:Or { criteria: [ !obj:EpochCounter { max_epochs: 2 },\n"
               "                      !obj:ChannelTarget { channel_name: c, target: 0.5 } ] }",
               "termination");
    MT_CHECK(step(bt.obj, &run, "c", 0.1));  /* epoch counter continues: target not asked */
    MT_CHECK(step(bt.obj, &run, "c", 0.9));  /* counter says stop, target continues */
    MT_CHECK(!step(bt.obj, &run, "c", 0.4)); /* both stop */
    mt__chanvals_clear(&run.last);
    built_free(&bt);
}

MT_TEST(termination_match_channel_and_state)
{
    built bt;
    build_yaml(&bt,
               "!obj:MatchChannel { channel_name: valid_objective, prev_channel_name: "
               "train_objective, prev_monitor_name: monitor_stage_0 }",
               "termination");
    mt__run run;
    memset(&run, 0, sizeof(run));
    mt_monitor_history old;
    mt_monitor_history_init(&old, "monitor_stage_0");
    mt_chan_history *h = mt_monitor_history_channel(&old, "train_objective", true);
    mt_chan_record r1 = {0.9, 0, 0, 0, 0}, r2 = {0.3, 1, 10, 100, 1.0};
    MT_CHECK_OK(mt_chan_history_append(h, &r1));
    MT_CHECK_OK(mt_chan_history_append(h, &r2));
    run.old_monitors = &old;
    run.n_old_monitors = 1;
    MT_CHECK(step(bt.obj, &run, "valid_objective", 0.5));
    MT_CHECK(!step(bt.obj, &run, "valid_objective", 0.3)); /* reached the old final value */
    mt__chanvals_clear(&run.last);
    mt_monitor_history_clear(&old);
    built_free(&bt);

    /* MonitorBased state survives a checkpoint: a restored copy answers like the original */
    built a, b;
    const char *yaml = "!obj:MonitorBased { channel_name: c, prop_decrease: 0.0, N: 3 }";
    build_yaml(&a, yaml, "termination");
    build_yaml(&b, yaml, "termination");
    memset(&run, 0, sizeof(run));
    const double v[] = {1.0, 0.8, 0.9, 0.9, 0.7, 0.75, 0.8, 0.9};
    for (int i = 0; i < 3; i++) step(a.obj, &run, "c", v[i]);
    mt_ckpt *c = NULL;
    MT_CHECK_OK(mt_ckpt_new(&c));
    mt__termination *ta = a.obj, *tb = b.obj;
    MT_CHECK_OK(mt__termination_save(ta, "t", c));
    MT_CHECK_OK(mt__termination_load(tb, "t", c));
    for (int i = 3; i < 8; i++) MT_CHECK(step(ta, &run, "c", v[i]) == step(tb, &run, "c", v[i]));
    mt_ckpt_free(c);
    mt__chanvals_clear(&run.last);
    built_free(&a);
    built_free(&b);
}

MT_TEST(channel_name_suggestion)
{
    mt__chanvals k;
    memset(&k, 0, sizeof(k));
    MT_CHECK_OK(mt__chanvals_set(&k, "valid_y_misclass", 0));
    MT_CHECK_OK(mt__chanvals_set(&k, "valid_objective", 0));
    mt_cfg_loc loc = {"job.yaml", 12, 30};
    MT_CHECK_ERR(mt__chanvals_require(&k, "valid_y_misclas", loc, "MonitorBased"), MT_ERR_INVALID,
                 "job.yaml:12:30: MonitorBased: unknown channel 'valid_y_misclas' (did you mean "
                 "'valid_y_misclass'?)");
    MT_CHECK_OK(mt__chanvals_require(&k, "valid_objective", loc, "x"));
    mt__chanvals_clear(&k);
}

/* ---------------------------------------------------------------- epoch schedules */

typedef struct fake_alg {
    mt__algorithm base;
    double lr, momentum;
} fake_alg;

static mt_status fake_get(const mt__algorithm *a, const char *name, double *out)
{
    const fake_alg *f = (const fake_alg *)a;
    if (!strcmp(name, "learning_rate")) *out = f->lr;
    else if (!strcmp(name, "momentum")) *out = f->momentum;
    else return mt_err_set(MT_ERR_NOT_FOUND, "no %s", name);
    return MT_OK;
}

static mt_status fake_set(mt__algorithm *a, const char *name, double v)
{
    fake_alg *f = (fake_alg *)a;
    if (!strcmp(name, "learning_rate")) f->lr = (float)v;
    else if (!strcmp(name, "momentum")) f->momentum = (float)v;
    else return mt_err_set(MT_ERR_NOT_FOUND, "no %s", name);
    return MT_OK;
}

static const mt__algorithm_ops fake_ops = {.name = "fake", .get_scalar = fake_get, .set_scalar = fake_set};

MT_TEST(momentum_adjustor)
{
    built bt;
    build_yaml(&bt, "!obj:MomentumAdjustor { start: 1, saturate: 4, final_momentum: 0.99 }",
               "extension");
    fake_alg fa = {.base = {.ops = &fake_ops}, .lr = 0.1, .momentum = 0.5};
    mt__run run;
    memset(&run, 0, sizeof(run));
    run.alg = &fa.base;
    mt__extension *e = bt.obj;
    for (int c = 1; c <= 6; c++) { /* c-th on_monitor call (the initial monitor is c = 1) */
        bool cont = true;
        MT_CHECK_OK(e->ops->on_monitor(e, &run, &cont));
        double a = fmin(1.0, fmax(0.0, (c - 1.0) / 3.0));
        MT_CHECK_CLOSE(fa.momentum, (float)(0.5 * (1 - a) + a * 0.99), 0, 1e-6);
        MT_CHECK(cont);
    }
    built_free(&bt);
}

MT_TEST(linear_decay_over_epoch)
{
    built bt;
    build_yaml(&bt, "!obj:LinearDecayOverEpoch { start: 1, saturate: 5, decay_factor: 0.1 }",
               "extension");
    fake_alg fa = {.base = {.ops = &fake_ops}, .lr = 0.5, .momentum = 0};
    mt__run run;
    memset(&run, 0, sizeof(run));
    run.alg = &fa.base;
    mt__extension *e = bt.obj;
    double lr0 = (float)0.5, step_ = (lr0 - lr0 * 0.1) / (5 - 1 + 1);
    for (int c = 1; c <= 7; c++) {
        bool cont = true;
        MT_CHECK_OK(e->ops->on_monitor(e, &run, &cont));
        double want = c < 1 ? lr0 : c < 5 ? lr0 - step_ * (c - 1 + 1) : lr0 * 0.1;
        MT_CHECK_CLOSE(fa.lr, (float)want, 0, 1e-6);
    }
    built_free(&bt);
}

MT_TEST(schedule_without_momentum_is_an_error)
{
    built bt;
    build_yaml(&bt, "!obj:MomentumAdjustor { start: 1, saturate: 4, final_momentum: 0.9 }",
               "extension");
    fake_alg fa = {.base = {.ops = &fake_ops}};
    const mt__algorithm_ops no_mom = {.name = "plain", .get_scalar = NULL};
    fa.base.ops = &no_mom;
    mt__run run;
    memset(&run, 0, sizeof(run));
    run.alg = &fa.base;
    mt__extension *e = bt.obj;
    bool cont;
    MT_CHECK_ERR(e->ops->on_monitor(e, &run, &cont), MT_ERR_INVALID, "t.yaml:1:1: MomentumAdjustor");
    built_free(&bt);
}

MT_TEST(rule_component_ranges)
{
    mt_cfg_registry *reg = NULL;
    MT_CHECK_OK(mt_train_registry_new(&reg));
    const char *text = "!obj:Momentum { init_momentum: 1.5 }";
    mt_cfg_options o;
    mt_cfg_options_init(&o);
    mt_cfg_doc *doc = NULL;
    MT_CHECK_OK(mt_cfg_load_string(&doc, text, strlen(text), "r.yaml", &o));
    mt_cfg_builder *b = NULL;
    MT_CHECK_OK(mt_cfg_builder_new(&b, reg));
    void *obj;
    MT_CHECK_ERR(mt_cfg_build(b, mt_cfg_doc_root(doc), "learning_rule", &obj, NULL), MT_ERR_RANGE,
                 "'init_momentum' must be in [0, 1)");
    mt_cfg_builder_free(b);
    mt_cfg_doc_free(doc);
    mt_cfg_registry_free(reg);
}
