/* The training extensions and criteria added for Pylearn2 users: MonitorBasedLRAdjuster,
 * PolyakAveraging, WindowAndFlip, ChannelInf, PatienceBasedTermCrit.
 *   - schedules on scripted channel values against independent restatements of Pylearn2's
 *     rules (the learning rate shrinks by shrink_amt when the channel rose above high_trigger
 *     times its previous value, ...), and their state through a checkpoint;
 *   - PolyakAveraging's average through its compiled function against the float64 mean of
 *     the parameters after each batch, continued bit-identically from a checkpoint;
 *   - WindowAndFlip on .npy image datasets with distinct pixel values: every window is found
 *     at some offset (mirrored or not) of its zero-padded original, central crops are exact,
 *     randomize_once stays, a checkpoint's draw count rebuilds the same windows;
 *   - YAML jobs on Fashion-MNIST (SKIP without it) training a few epochs with all of them, the
 *     learning_rate channel following the adjuster's rule, the averaged parameters saved
 *     apart, and a run stopped by SIGTERM mid-epoch and resumed ending bit-identical (the
 *     averages included);
 *   - validation errors for bad keys and values;
 *   - checkpoint keys made from parameter names: whole for names differing only past where
 *     keys used to be cut, an error naming the parameter when too long, and a job whose layer
 *     paths have the longest length accepted saving every key and resuming bit-identical. */
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "mt_test.h"
#include "mt_test_ckpt.h"
#include "test_train_built.h"
#include "train_impl.h"

/* ---------------------------------------------------------------- helpers */

/* The object built for node `key` (item `i` of a list) of the root: the same object the
 * component received (a node is built once). */
static void *built_item(built *bt, const char *key, int32_t i)
{
    const mt_cfg_node *v = mt_cfg_get(mt_cfg_doc_root(bt->doc), key);
    MT_CHECK(v != NULL);
    if (v->kind == MT_CFG_LIST) v = v->items[i];
    void *obj = NULL;
    MT_CHECK_OK(mt_cfg_build(bt->b, v, "dataset", &obj, NULL));
    return obj;
}

static void add_record(mt__run *run, const char *chan, double v)
{
    MT_CHECK_OK(mt__chanvals_set(&run->last, chan, v));
    mt_chan_history *h = mt_monitor_history_channel(&run->history, chan, true);
    MT_CHECK(h != NULL);
    mt_chan_record r = {v, run->epochs_seen, 0, 0, 0};
    MT_CHECK_OK(mt_chan_history_append(h, &r));
}

static void run_init_fake(mt__run *run)
{
    memset(run, 0, sizeof(*run));
    mt_monitor_history_init(&run->history, "monitor");
}

static void run_clear_fake(mt__run *run)
{
    mt__chanvals_clear(&run->last);
    mt_monitor_history_clear(&run->history);
}

/* An algorithm with a float32 learning rate, as SGD's. */
typedef struct fake_alg {
    mt__algorithm base;
    float lr;
} fake_alg;

static mt_status fake_get(const mt__algorithm *a, const char *name, double *out)
{
    if (strcmp(name, "learning_rate")) return mt_err_set(MT_ERR_NOT_FOUND, "no %s", name);
    *out = ((const fake_alg *)a)->lr;
    return MT_OK;
}

static mt_status fake_set(mt__algorithm *a, const char *name, double v)
{
    if (strcmp(name, "learning_rate")) return mt_err_set(MT_ERR_NOT_FOUND, "no %s", name);
    ((fake_alg *)a)->lr = (float)v;
    return MT_OK;
}

static const mt__algorithm_ops fake_ops = {.name = "fake", .get_scalar = fake_get,
                                           .set_scalar = fake_set};

/* ---------------------------------------------------------------- MonitorBasedLRAdjuster */

/* Pylearn2's rule, restated: float32 lr times the float32 factor, clipped. */
static float lr_rule(float lr, double v_prev, double v, double hi, double shrink, double lo,
                     double grow, double min_lr, double max_lr)
{
    double r = lr;
    if (v > hi * v_prev)
        r = (float)(r * (float)shrink);
    else if (v > lo * v_prev)
        r = (float)(r * (float)grow);
    if (r < min_lr) r = min_lr;
    if (r > max_lr) r = max_lr;
    return (float)r;
}

MT_TEST(lr_adjuster_schedule)
{
    built bt;
    build_yaml(&bt,
               "!obj:pylearn2.training_algorithms.sgd.MonitorBasedLRAdjuster { dataset_name: "
               "valid, shrink_amt: 0.5, grow_amt: 1.5, min_lr: 0.01, max_lr: 0.12 }",
               "extension");
    mt__extension *e = bt.obj;
    fake_alg fa = {.base = {.ops = &fake_ops}, .lr = 0.1f};
    mt__run run;
    run_init_fake(&run);
    run.alg = &fa.base;
    MT_CHECK_OK(e->ops->setup(e, &run));
    /* rose (shrink), slightly lower (grow), much lower (keep), rose (shrink) x3 to the floor,
     * slightly lower (grow) up to the ceiling */
    const double v[] = {1.0,   1.2,   1.19,  0.5,   0.6,   0.7,   0.8,  0.9,
                        0.899, 0.898, 0.897, 0.896, 0.895, 0.894, 0.893};
    const int n = (int)(sizeof(v) / sizeof(v[0]));
    float want = 0.1f;
    int shrinks = 0, grows = 0, keeps = 0;
    for (int i = 0; i < n; i++) {
        add_record(&run, "train_objective", 2.0); /* another objective channel: ignored */
        add_record(&run, "valid_objective", v[i]);
        bool cont = true;
        MT_CHECK_OK(e->ops->on_monitor(e, &run, &cont));
        MT_CHECK(cont);
        if (i > 0) {
            float before = want;
            want = lr_rule(want, v[i - 1], v[i], 1.0, 0.5, 0.99, 1.5, 0.01, 0.12);
            shrinks += v[i] > v[i - 1];
            grows += v[i] <= v[i - 1] && v[i] > 0.99 * v[i - 1];
            keeps += want == before;
        }
        if (fa.lr != want)
            mt_test_fail(__FILE__, __LINE__, "call %d: lr %.9g, want %.9g", i + 1, fa.lr, want);
        run.epochs_seen++;
    }
    MT_CHECK(shrinks >= 3 && grows >= 3 && keeps >= 2); /* every branch and both clips ran */
    MT_CHECK_EQ_INT(fa.lr == 0.12f, 1);                 /* ended at the ceiling */
    run_clear_fake(&run);
    built_free(&bt);

    /* the first call (only the epoch-0 record) changes nothing; v rose: lr *= .99 (defaults) */
    build_yaml(&bt, "!obj:MonitorBasedLRAdjuster {}", "extension");
    e = bt.obj;
    run_init_fake(&run);
    run.alg = &fa.base;
    fa.lr = 0.05f;
    bool cont;
    add_record(&run, "objective", 3.0);
    MT_CHECK_OK(e->ops->on_monitor(e, &run, &cont));
    MT_CHECK(fa.lr == 0.05f);
    add_record(&run, "objective", 3.5);
    MT_CHECK_OK(e->ops->on_monitor(e, &run, &cont));
    MT_CHECK(fa.lr == (float)(0.05f * (double)0.99f));
    /* two channels ending in 'objective' and no channel_name: an error */
    add_record(&run, "valid_objective", 1.0);
    MT_CHECK_ERR(e->ops->on_monitor(e, &run, &cont), MT_ERR_INVALID,
                 "t.yaml:1:1: MonitorBasedLRAdjuster: several channels end with 'objective'");
    MT_CHECK_ERR(e->ops->check_channels(e, &run, &run.last), MT_ERR_INVALID, "channel_name");
    run_clear_fake(&run);
    /* no learning rate: an error at setup */
    const mt__algorithm_ops none = {.name = "plain"};
    fake_alg nolr = {.base = {.ops = &none}};
    run_init_fake(&run);
    run.alg = &nolr.base;
    MT_CHECK_ERR(e->ops->setup(e, &run), MT_ERR_INVALID, "needs an algorithm with a learning_rate");
    run_clear_fake(&run);
    built_free(&bt);
}

MT_TEST(lr_adjuster_channel_check_and_bad_keys)
{
    built bt;
    build_yaml(&bt, "!obj:MonitorBasedLRAdjuster { channel_name: valid_y_misclas }",
               "extension");
    mt__extension *e = bt.obj;
    mt__chanvals k;
    memset(&k, 0, sizeof(k));
    MT_CHECK_OK(mt__chanvals_set(&k, "valid_y_misclass", 0));
    MT_CHECK_ERR(e->ops->check_channels(e, NULL, &k), MT_ERR_INVALID,
                 "did you mean 'valid_y_misclass'?");
    mt__chanvals_clear(&k);
    built_free(&bt);

    MT_CHECK_ERR(try_build(&bt, "!obj:MonitorBasedLRAdjuster { channel_name: a, dataset_name: b }",
                           "extension"),
                 MT_ERR_INVALID, "channel_name and dataset_name both given");
    built_free(&bt);
    MT_CHECK_ERR(try_build(&bt, "!obj:MonitorBasedLRAdjuster { min_lr: 0.5, max_lr: 0.1 }",
                           "extension"),
                 MT_ERR_RANGE, "min_lr <= max_lr");
    built_free(&bt);
    MT_CHECK_ERR(try_build(&bt, "!obj:MonitorBasedLRAdjuster { shrink: 0.5 }", "extension"),
                 MT_ERR_INVALID, "shrink");
    built_free(&bt);
    MT_CHECK_ERR(try_build(&bt, "!obj:PolyakAveraging { start: -1 }", "extension"),
                 MT_ERR_RANGE, "start must be >= 0");
    built_free(&bt);
    MT_CHECK_ERR(try_build(&bt, "!obj:PolyakAveraging { start: 1, save_freq: 0 }", "extension"),
                 MT_ERR_RANGE, "save_freq must be >= 1");
    built_free(&bt);
    MT_CHECK_ERR(try_build(&bt, "!obj:PolyakAveraging { save_path: x }", "extension"),
                 MT_ERR_INVALID, "start");
    built_free(&bt);
    MT_CHECK_ERR(try_build(&bt, "!obj:WindowAndFlip { window_shape: [3] }", "extension"),
                 MT_ERR_INVALID, "window_shape must be [rows, cols]");
    built_free(&bt);
    MT_CHECK_ERR(try_build(&bt, "!obj:WindowAndFlip { window_shape: [3, 3], pad_randomized: -1 }",
                           "extension"),
                 MT_ERR_RANGE, "pad_randomized must be >= 0");
    built_free(&bt);
    MT_CHECK_ERR(try_build(&bt, "!obj:WindowAndFlip { window_shape: [3, 3], "
                                "pad_randomized: 2147483648 }",
                           "extension"),
                 MT_ERR_RANGE, "pad_randomized must be >= 0 and <= 65536");
    built_free(&bt);
    MT_CHECK_ERR(try_build(&bt, "!obj:WindowAndFlip { window_shape: [3, 70000] }", "extension"),
                 MT_ERR_INVALID, "both in [1, 65536]");
    built_free(&bt);
    MT_CHECK_ERR(try_build(&bt, "!obj:ChannelInf {}", "termination"), MT_ERR_INVALID,
                 "channel_name");
    built_free(&bt);
    MT_CHECK_ERR(try_build(&bt, "!obj:PatienceBasedTermCrit { prop_decrease: 1.5, "
                                "initial_patience: 3 }",
                           "termination"),
                 MT_ERR_RANGE, "prop_decrease must be in [0, 1)");
    built_free(&bt);
}

/* ---------------------------------------------------------------- criteria */

static bool ask(mt__termination *t, mt__run *run, const char *chan, double v)
{
    add_record(run, chan, v);
    bool cont = false;
    MT_CHECK_OK(t->ops->continue_learning(t, run, &cont));
    run->epochs_seen++;
    return cont;
}

MT_TEST(termination_channel_inf)
{
    built bt;
    build_yaml(&bt, "!obj:pylearn2.termination_criteria.ChannelInf { channel_name: c }",
               "termination");
    mt__run run;
    run_init_fake(&run);
    MT_CHECK(ask(bt.obj, &run, "c", 1.0));
    MT_CHECK(ask(bt.obj, &run, "c", -1e308));
    MT_CHECK(ask(bt.obj, &run, "c", NAN)); /* not infinite */
    MT_CHECK(!ask(bt.obj, &run, "c", INFINITY));
    MT_CHECK(!ask(bt.obj, &run, "c", -INFINITY));
    mt__termination *t = bt.obj;
    MT_CHECK_OK(t->ops->check_channels(t, NULL, &run.last));
    run_clear_fake(&run);
    run_init_fake(&run);
    bool cont;
    MT_CHECK_ERR(t->ops->continue_learning(t, &run, &cont), MT_ERR_NOT_FOUND, "ChannelInf");
    run_clear_fake(&run);
    built_free(&bt);
}

/* Independent restatement of PatienceBasedTermCrit: records[0] is the epoch-0 record. */
static void patience_ref(const double *v, int n, double prop, double patience0, double inc,
                         bool *cont)
{
    double patience = patience0, best = INFINITY;
    for (int i = 1; i < n; i++) {
        double len = i + 1;
        if (v[i] < best * (1 - prop)) {
            patience = fmax(patience, len * inc);
            best = v[i];
        }
        cont[i] = len < patience;
    }
}

MT_TEST(termination_patience_based)
{
    const double v[] = {2.0, 1.0, 0.95, 0.7, 0.69, 0.69, 0.68, 0.5, 0.6, 0.6, 0.6, 0.6, 0.6,
                        0.6, 0.6, 0.6, 0.6, 0.6};
    const int n = (int)(sizeof(v) / sizeof(v[0]));
    bool want[32];
    patience_ref(v, n, 0.1, 3, 2.0, want);
    const char *yaml = "!obj:pylearn2.training_algorithms.sgd.PatienceBasedTermCrit {\n"
                       "  prop_decrease: 0.1, initial_patience: 3, patience_increase: 2,\n"
                       "  channel_name: valid_y_misclass }";
    built a, b;
    build_yaml(&a, yaml, "termination");
    build_yaml(&b, yaml, "termination");
    mt__run run;
    run_init_fake(&run);
    add_record(&run, "valid_y_misclass", v[0]); /* the epoch-0 record: not asked */
    run.epochs_seen = 1;
    int stops = 0, first_stop = -1;
    mt_ckpt *c = NULL;
    for (int i = 1; i < n; i++) {
        bool got = ask(a.obj, &run, "valid_y_misclass", v[i]);
        if (got != want[i]) mt_test_fail(__FILE__, __LINE__, "record %d: got %d", i, got);
        if (!got && first_stop < 0) first_stop = i;
        stops += !got;
        if (i == 5) { /* state round trip: b continues from a's checkpoint */
            mt__termination *ta = a.obj, *tb = b.obj;
            MT_CHECK_OK(mt_ckpt_new(&c));
            MT_CHECK_OK(mt__termination_save(ta, "t", c));
            MT_CHECK_OK(mt__termination_load(tb, "t", c));
        }
        if (i > 5) {
            bool cb = false;
            mt__termination *tb = b.obj;
            MT_CHECK_OK(tb->ops->continue_learning(tb, &run, &cb));
            MT_CHECK(cb == got);
        }
    }
    MT_CHECK(stops > 0 && first_stop > 7); /* the improvement at record 7 extended it */
    mt_ckpt_free(c);
    run_clear_fake(&run);
    built_free(&a);
    built_free(&b);

    /* no channel_name: the monitor's only channel, or an error */
    build_yaml(&a,
               "!obj:PatienceBasedTermCrit { prop_decrease: 0., initial_patience: 2, "
               "patience_increase: 0.5 }",
               "termination");
    run_init_fake(&run);
    add_record(&run, "training_seconds_this_epoch", 0.5); /* timing channels do not count */
    add_record(&run, "total_seconds_last_epoch", 0.7);
    add_record(&run, "objective", 1.0);
    MT_CHECK(!ask(a.obj, &run, "objective", 1.0)); /* 2 records, patience max(2, 1) */
    add_record(&run, "other", 1.0);
    bool cont;
    mt__termination *t = a.obj;
    MT_CHECK_ERR(t->ops->continue_learning(t, &run, &cont), MT_ERR_INVALID,
                 "exactly one channel");
    run_clear_fake(&run);
    built_free(&a);
}

/* ---------------------------------------------------------------- PolyakAveraging */

#define MLP_YAML                                                                           \
    "!obj:pylearn2.models.mlp.MLP { nvis: 3, seed: [4, 5, 6], layers: [\n"                 \
    "  !obj:pylearn2.models.mlp.Softmax { layer_name: y, n_classes: 2, irange: 0.5 } ] }"

typedef struct fake_params {
    built model;
    mt_device *host;
    mt_array params[4];
} fake_params;

static void fake_run_params(mt__run *run, fake_params *fp)
{
    build_yaml(&fp->model, MLP_YAML, "model");
    MT_CHECK_OK(mt_device_open(&fp->host, "host"));
    run->model = fp->model.obj;
    run->dev = fp->host;
    run->n_params = mt_model_n_params(run->model);
    MT_CHECK_EQ_INT(run->n_params, 2); /* y_W, y_b */
    for (int32_t i = 0; i < run->n_params; i++)
        mt_array_view(&fp->params[i], &mt_model_param_at(run->model, i)->value);
    run->params = fp->params;
}

static void fake_params_free(fake_params *fp)
{
    for (int i = 0; i < 4; i++) mt_array_clear(&fp->params[i]);
    mt_device_release(fp->host);
    built_free(&fp->model);
}

/* Step k's parameter values: element j of parameter i. */
static float step_value(int k, int32_t i, int64_t j)
{
    return (float)(sin(0.7 * k + 1.3 * i + 0.11 * (double)j) * (1.0 + 0.25 * k));
}

static void set_params(mt__run *run, int k)
{
    for (int32_t i = 0; i < run->n_params; i++) {
        int64_t n = mt_array_size(&run->params[i]);
        float *h = malloc((size_t)n * sizeof(float));
        MT_CHECK(h != NULL);
        for (int64_t j = 0; j < n; j++) h[j] = step_value(k, i, j);
        mt_array tmp;
        MT_CHECK_OK(mt_array_from_host(&tmp, run->dev, MT_FLOAT32, run->params[i].ndim,
                                       run->params[i].dims, h));
        MT_CHECK_OK(mt_array_copy(&run->params[i], &tmp));
        mt_array_clear(&tmp);
        free(h);
    }
}

/* The extension's averages (through its checkpoint state) as float32 bits. */
static void read_means(mt__extension *e, mt__run *run, float *out, int64_t cap, int64_t *n)
{
    mt_ckpt *c = NULL;
    MT_CHECK_OK(mt_ckpt_new(&c));
    MT_CHECK_OK(mt__extension_save(e, "x", c));
    *n = 0;
    for (int32_t i = 0; i < run->n_params; i++) {
        char k[256];
        snprintf(k, sizeof(k), "x/mean/%s", mt_model_param_const(run->model, i)->name);
        mt_array a;
        memset(&a, 0, sizeof(a));
        MT_CHECK_OK(mt_ckpt_get_array(c, k, &a));
        int64_t m = mt_array_size(&a);
        MT_CHECK(*n + m <= cap);
        MT_CHECK_OK(mt_array_to_host(out + *n, (size_t)m * sizeof(float), &a));
        *n += m;
        mt_array_clear(&a);
    }
    mt_ckpt_free(c);
}

MT_TEST(polyak_average_and_state)
{
    built bt, bt2;
    build_yaml(&bt, "!obj:pylearn2.training_algorithms.sgd.PolyakAveraging { start: 1 }",
               "extension");
    build_yaml(&bt2, "!obj:PolyakAveraging { start: 1 }", "extension");
    mt__extension *e = bt.obj, *e2 = bt2.obj;
    mt__run run;
    run_init_fake(&run);
    fake_params fp;
    memset(&fp, 0, sizeof(fp));
    fake_run_params(&run, &fp);
    MT_CHECK_OK(e->ops->setup(e, &run));
    bool cont = true;
    set_params(&run, 0);
    MT_CHECK_OK(e->ops->on_monitor(e, &run, &cont)); /* call 0 < start: nothing yet */
    MT_CHECK_OK(e->ops->after_batch(e, &run));
    mt_ckpt *c = NULL;
    MT_CHECK_OK(mt_ckpt_new(&c));
    MT_CHECK_OK(mt__extension_save(e, "x", c));
    int64_t active = -1;
    MT_CHECK_OK(mt_ckpt_get_int(c, "x/active", &active));
    MT_CHECK_EQ_INT(active, 0);
    mt_ckpt_free(c);
    MT_CHECK_OK(e->ops->on_monitor(e, &run, &cont)); /* call 1 == start: starts */
    /* after batch k the average is the mean of the parameters after batches 1..k */
    float got[64];
    int64_t n = 0;
    for (int k = 1; k <= 5; k++) {
        set_params(&run, k);
        MT_CHECK_OK(e->ops->after_batch(e, &run));
        read_means(e, &run, got, 64, &n);
        MT_CHECK_EQ_INT(n, 3 * 2 + 2);
        int64_t off = 0;
        for (int32_t i = 0; i < run.n_params; i++) {
            int64_t m = mt_array_size(&run.params[i]);
            for (int64_t j = 0; j < m; j++) {
                double want = 0;
                for (int q = 1; q <= k; q++) want += step_value(q, i, j);
                want /= k;
                if (!mt_test_close(got[off + j], want, 1e-6, 1e-5))
                    mt_test_fail(__FILE__, __LINE__, "batch %d param %d[%lld]: %.9g vs %.9g", k,
                                 (int)i, (long long)j, got[off + j], want);
            }
            off += m;
        }
    }
    /* the parameters themselves are untouched by the average */
    float p0[2];
    MT_CHECK_OK(mt_array_to_host(p0, sizeof(p0), &run.params[1]));
    MT_CHECK(p0[0] == step_value(5, 1, 0) && p0[1] == step_value(5, 1, 1));
    /* a second extension loaded from the state continues bit for bit */
    MT_CHECK_OK(mt_ckpt_new(&c));
    MT_CHECK_OK(mt__extension_save(e, "x", c));
    MT_CHECK_OK(e2->ops->setup(e2, &run));
    MT_CHECK_OK(mt__extension_load(e2, "x", c));
    mt_ckpt_free(c);
    float a[64], b[64];
    int64_t na, nb;
    for (int k = 6; k <= 8; k++) {
        set_params(&run, k);
        MT_CHECK_OK(e->ops->after_batch(e, &run));
        MT_CHECK_OK(e2->ops->after_batch(e2, &run));
    }
    read_means(e, &run, a, 64, &na);
    read_means(e2, &run, b, 64, &nb);
    MT_CHECK_EQ_INT(na, nb);
    MT_CHECK(memcmp(a, b, (size_t)na * sizeof(float)) == 0);
    e->ops->teardown(e);
    e2->ops->teardown(e2);
    fake_params_free(&fp);
    run_clear_fake(&run);
    built_free(&bt);
    built_free(&bt2);
}

/* ---------------------------------------------------------------- WindowAndFlip */

#define IMG_N 6
#define IMG_R 6
#define IMG_C 7
#define IMG_CH 2

/* Pixel values unique over the images of one file (and different between files). */
static float pixel(int file, int64_t i, int64_t r, int64_t c, int64_t ch)
{
    return (float)(file * 100000 + i * 1000 + r * 100 + c * 10 + ch + 1);
}

static void write_images(const char *path, int file, bool images)
{
    static float buf[IMG_N * IMG_R * IMG_C * IMG_CH];
    for (int64_t i = 0; i < IMG_N; i++)
        for (int64_t r = 0; r < IMG_R; r++)
            for (int64_t c = 0; c < IMG_C; c++)
                for (int64_t ch = 0; ch < IMG_CH; ch++)
                    buf[((i * IMG_R + r) * IMG_C + c) * IMG_CH + ch] = pixel(file, i, r, c, ch);
    mt_device *host = NULL;
    MT_CHECK_OK(mt_device_open(&host, "host"));
    int64_t dims4[4] = {IMG_N, IMG_R, IMG_C, IMG_CH}, dims2[2] = {IMG_N, IMG_R * IMG_C * IMG_CH};
    mt_array a;
    MT_CHECK_OK(mt_array_from_host(&a, host, MT_FLOAT32, images ? 4 : 2, images ? dims4 : dims2,
                                   buf));
    MT_CHECK_OK(mt_npy_save(path, &a));
    mt_array_clear(&a);
    mt_device_release(host);
}

/* The padded original's pixel (0 outside the image). */
static float padded(int file, int64_t i, int64_t r, int64_t c, int64_t ch, int64_t pad)
{
    r -= pad;
    c -= pad;
    if (r < 0 || c < 0 || r >= IMG_R || c >= IMG_C) return 0.0f;
    return pixel(file, i, r, c, ch);
}

/* Finds the offset and mirroring that produce window `w` (wr x wc x ch) of image i; returns
 * the code (r0 * 64 + c0) * 2 + mirrored, or -1. */
static int find_window(const float *w, int file, int64_t i, int64_t wr, int64_t wc,
                       int64_t pad)
{
    int64_t R = IMG_R + 2 * pad, C = IMG_C + 2 * pad;
    for (int64_t r0 = 0; r0 + wr <= R; r0++)
        for (int64_t c0 = 0; c0 + wc <= C; c0++)
            for (int m = 0; m < 2; m++) {
                bool same = true;
                for (int64_t r = 0; r < wr && same; r++)
                    for (int64_t c = 0; c < wc && same; c++)
                        for (int64_t ch = 0; ch < IMG_CH && same; ch++) {
                            int64_t sc = c0 + (m ? wc - 1 - c : c);
                            same = w[(r * wc + c) * IMG_CH + ch] ==
                                   padded(file, i, r0 + r, sc, ch, pad);
                        }
                if (same) return (int)((r0 * 64 + c0) * 2 + m);
            }
    return -1;
}

static const char *wf_job(char *buf, size_t cap, const char *extra)
{
    const char *d = mt_test_tmpdir();
    snprintf(buf, cap,
             "!obj:pylearn2.train_extensions.window_flip.WindowAndFlip {\n"
             "  window_shape: [4, 5], pad_randomized: 1, rng: [7, 8],\n"
             "  randomize: [ !obj:NpyDataset { file: '%s/wf_a.npy' } ],\n"
             "  randomize_once: [ !obj:NpyDataset { file: '%s/wf_b.npy' } ],\n"
             "  center: [ !obj:NpyDataset { file: '%s/wf_c.npy' } ] %s}",
             d, d, d, extra);
    return buf;
}

static void images_of(mt_dataset *d, float *out, int64_t n)
{
    mt_dataset_info info;
    mt_dataset_get_info(d, &info);
    MT_CHECK_EQ_INT(info.topo_ndim, 3);
    MT_CHECK_EQ_INT(info.topo[0], 4);
    MT_CHECK_EQ_INT(info.topo[1], 5);
    MT_CHECK_EQ_INT(info.topo[2], IMG_CH);
    MT_CHECK_EQ_INT(info.n * info.dim, n);
    memcpy(out, mt_dataset_X(d), (size_t)n * sizeof(float));
}

MT_TEST(window_flip_windows_and_state)
{
    char path[600], text[2048];
    const char *names[3] = {"wf_a", "wf_b", "wf_c"};
    for (int f = 0; f < 3; f++) {
        snprintf(path, sizeof(path), "%s/%s.npy", mt_test_tmpdir(), names[f]);
        write_images(path, f, true);
    }
    built bt;
    build_yaml(&bt, wf_job(text, sizeof(text), ""), "extension");
    mt__extension *e = bt.obj;
    mt_dataset *A = built_item(&bt, "randomize", 0), *B = built_item(&bt, "randomize_once", 0),
               *Cd = built_item(&bt, "center", 0);
    mt__run run;
    run_init_fake(&run);
    MT_CHECK_OK(e->ops->setup(e, &run));
    const int64_t per = 4 * 5 * IMG_CH, n = IMG_N * per;
    static float a0[IMG_N * 40], a[IMG_N * 40], b0[IMG_N * 40], cimg[IMG_N * 40];
    images_of(A, a0, n);
    images_of(B, b0, n);
    images_of(Cd, cimg, n);
    /* central window: rows 1..4, cols 1..5 */
    for (int64_t i = 0; i < IMG_N; i++)
        for (int64_t r = 0; r < 4; r++)
            for (int64_t c = 0; c < 5; c++)
                for (int64_t ch = 0; ch < IMG_CH; ch++)
                    MT_CHECK(cimg[i * per + (r * 5 + c) * IMG_CH + ch] ==
                             pixel(2, i, r + 1, c + 1, ch));
    /* every window is some window of its padded image; over the draws both mirror states and
     * several offsets occur */
    int mirrored = 0, plain = 0, distinct_codes = 0, seen[4096] = {0};
    for (int64_t i = 0; i < IMG_N; i++) {
        MT_CHECK(find_window(b0 + i * per, 1, i, 4, 5, 1) >= 0);
        MT_CHECK(find_window(a0 + i * per, 0, i, 4, 5, 1) >= 0);
    }
    bool cont = true;
    int changed = 0;
    for (int k = 1; k <= 12; k++) {
        MT_CHECK_OK(e->ops->on_monitor(e, &run, &cont));
        images_of(A, a, n);
        for (int64_t i = 0; i < IMG_N; i++) {
            int code = find_window(a + i * per, 0, i, 4, 5, 1);
            if (code < 0) mt_test_fail(__FILE__, __LINE__, "draw %d image %lld: no window", k,
                                       (long long)i);
            if (code & 1) mirrored++;
            else plain++;
            if (!seen[code]++) distinct_codes++;
        }
        changed += memcmp(a, a0, (size_t)n * sizeof(float)) != 0;
        images_of(B, a, n);
        MT_CHECK(memcmp(a, b0, (size_t)n * sizeof(float)) == 0); /* randomize_once stays */
    }
    MT_CHECK_EQ_INT(changed, 12);
    MT_CHECK(mirrored > 10 && plain > 10 && distinct_codes > 20);
    /* a fresh extension and datasets, given the checkpointed draw count, hold the same images */
    mt_ckpt *c = NULL;
    MT_CHECK_OK(mt_ckpt_new(&c));
    MT_CHECK_OK(mt__extension_save(e, "w", c));
    images_of(A, a0, n);
    built bt2;
    build_yaml(&bt2, wf_job(text, sizeof(text), ""), "extension");
    mt__extension *e2 = bt2.obj;
    MT_CHECK_OK(e2->ops->setup(e2, &run));
    MT_CHECK_OK(mt__extension_load(e2, "w", c));
    mt_ckpt_free(c);
    images_of(built_item(&bt2, "randomize", 0), a, n);
    MT_CHECK(memcmp(a, a0, (size_t)n * sizeof(float)) == 0);
    /* flip: false never mirrors (an asymmetric image would show it) */
    built bt3;
    build_yaml(&bt3, wf_job(text, sizeof(text), ", flip: false"), "extension");
    mt__extension *e3 = bt3.obj;
    MT_CHECK_OK(e3->ops->setup(e3, &run));
    for (int k = 0; k < 4; k++) {
        images_of(built_item(&bt3, "randomize", 0), a, n);
        for (int64_t i = 0; i < IMG_N; i++)
            MT_CHECK((find_window(a + i * per, 0, i, 4, 5, 1) & 1) == 0);
        MT_CHECK_OK(e3->ops->on_monitor(e3, &run, &cont));
    }
    run_clear_fake(&run);
    built_free(&bt);
    built_free(&bt2);
    built_free(&bt3);
}

MT_TEST(window_flip_errors)
{
    char path[600], text[2048];
    snprintf(path, sizeof(path), "%s/wf_flat.npy", mt_test_tmpdir());
    write_images(path, 0, false);
    snprintf(path, sizeof(path), "%s/wf_a.npy", mt_test_tmpdir());
    write_images(path, 0, true);
    mt__run run;
    run_init_fake(&run);
    built bt;
    /* no image shape */
    snprintf(text, sizeof(text),
             "!obj:WindowAndFlip { window_shape: [2, 2], randomize: !obj:NpyDataset { file: "
             "'%s/wf_flat.npy' } }",
             mt_test_tmpdir());
    build_yaml(&bt, text, "extension");
    mt__extension *e = bt.obj;
    MT_CHECK_ERR(e->ops->setup(e, &run), MT_ERR_INVALID, "has no image shape");
    built_free(&bt);
    /* a window larger than the images */
    snprintf(text, sizeof(text),
             "!obj:WindowAndFlip { window_shape: [7, 7], center: [ !obj:NpyDataset { file: "
             "'%s/wf_a.npy' } ] }",
             mt_test_tmpdir());
    build_yaml(&bt, text, "extension");
    e = bt.obj;
    MT_CHECK_ERR(e->ops->setup(e, &run), MT_ERR_SHAPE, "window 7x7 is larger than the 6x7 images");
    built_free(&bt);
    /* one dataset in two lists */
    snprintf(text, sizeof(text),
             "!obj:WindowAndFlip { window_shape: [2, 2], randomize: [ &d !obj:NpyDataset { "
             "file: '%s/wf_a.npy' } ], center: [ *d ] }",
             mt_test_tmpdir());
    MT_CHECK_ERR(try_build(&bt, text, "extension"), MT_ERR_INVALID, "a dataset is listed twice");
    built_free(&bt);
    run_clear_fake(&run);
}

/* ---------------------------------------------------------------- jobs */

static void need_data(void)
{
    struct stat sb;
    if (stat("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", &sb) != 0)
        MT_SKIP("Fashion-MNIST not installed (Debian's dataset-fashion-mnist)");
}

/* A ReLU MLP on 24x24 windows of 28x28 Fashion-MNIST images, every new component on. */
static const char *ext_job(const char *name, int epochs, int save_freq, char *buf, size_t cap)
{
    const char *d = mt_test_tmpdir();
    char text[4096];
    snprintf(buf, cap, "%s/%s.yaml", d, name);
    snprintf(text, sizeof(text),
             "!obj:pylearn2.train.Train {\n"
             "  dataset: &train !obj:FashionMNIST { which_set: 'train', start: 0, stop: 400 },\n"
             "  model: !obj:pylearn2.models.mlp.MLP { nvis: 576, seed: [1, 2, 3], layers: [\n"
             "    !obj:pylearn2.models.mlp.RectifiedLinear { layer_name: 'h0', dim: 16,\n"
             "        irange: 0.05 },\n"
             "    !obj:pylearn2.models.mlp.Softmax { layer_name: 'y', n_classes: 10,\n"
             "        irange: 0.05 } ] },\n"
             "  algorithm: !obj:pylearn2.training_algorithms.sgd.SGD {\n"
             "    batch_size: 50, learning_rate: 0.2,\n"
             "    learning_rule: !obj:Momentum { init_momentum: 0.5 },\n"
             "    monitoring_dataset: { 'train': *train,\n"
             "        'valid': &valid !obj:FashionMNIST { which_set: 'test', stop: 200 } },\n"
             "    termination_criterion: !obj:And { criteria: [\n"
             "      !obj:EpochCounter { max_epochs: %d },\n"
             "      !obj:pylearn2.termination_criteria.ChannelInf { channel_name: "
             "'train_objective' },\n"
             "      !obj:PatienceBasedTermCrit { prop_decrease: 0., initial_patience: 50,\n"
             "          channel_name: 'valid_y_misclass' } ] } },\n"
             "  extensions: [\n"
             "    !obj:pylearn2.train_extensions.window_flip.WindowAndFlip {\n"
             "        window_shape: [24, 24], randomize: [ *train ], center: [ *valid ] },\n"
             "    !obj:pylearn2.training_algorithms.sgd.MonitorBasedLRAdjuster {\n"
             "        dataset_name: 'valid', high_trigger: 0.95, shrink_amt: 0.5,\n"
             "        low_trigger: 0.5, grow_amt: 1.25 },\n"
             "    !obj:pylearn2.training_algorithms.sgd.PolyakAveraging {\n"
             "        start: 1, save_path: '%s/%s_avg.ckpt' } ],\n"
             "  save_path: '%s/%s.ckpt', save_freq: %d }\n",
             epochs, d, name, d, name, save_freq);
    FILE *f = fopen(buf, "w");
    MT_CHECK(f != NULL);
    fputs(text, f);
    fclose(f);
    return buf;
}

static mt_status run_job(const char *path, mt_resume_mode resume, mt_train_result *res)
{
    mt_train_options o;
    mt_train_options_init(&o);
    o.resume = resume;
    o.monitor_log = false;
    return mt_test_run_job(path, &o, res);
}

static mt_ckpt *read_ckpt(const char *name, const char *suffix)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/%s%s.ckpt", mt_test_tmpdir(), name, suffix);
    mt_ckpt *c = NULL;
    MT_CHECK_OK(mt_ckpt_read(&c, path));
    return c;
}

static int32_t channel(const mt_ckpt *c, const char *name, double *out, int32_t cap)
{
    const mt_monitor_history *h = mt_ckpt_find_monitor(c, "monitor");
    MT_CHECK(h != NULL);
    for (int32_t i = 0; i < h->n; i++) {
        if (strcmp(h->channels[i].name, name)) continue;
        for (int32_t k = 0; k < h->channels[i].n && k < cap; k++)
            out[k] = h->channels[i].records[k].value;
        return h->channels[i].n;
    }
    mt_test_fail(__FILE__, __LINE__, "no channel %s", name);
}

MT_TEST(job_trains_with_every_new_component)
{
    need_data();
    char job[600];
    mt_train_result res;
    MT_CHECK_OK(run_job(ext_job("allext", 4, 1, job, sizeof(job)), MT_RESUME_NO, &res));
    MT_CHECK_EQ_INT(res.epochs_seen, 4);
    mt_ckpt *c = read_ckpt("allext", ""), *avg = read_ckpt("allext", "_avg");
    /* the learning rate follows the adjuster's rule on valid_objective: record k is the rate
     * of epoch k, set by the on_monitor call after epoch k - 1 */
    double lr[8], v[8], obj[8];
    MT_CHECK_EQ_INT(channel(c, "learning_rate", lr, 8), 5);
    MT_CHECK_EQ_INT(channel(c, "valid_objective", v, 8), 5);
    MT_CHECK_EQ_INT(channel(c, "train_objective", obj, 8), 5);
    MT_CHECK(lr[0] == (float)0.2 && lr[1] == lr[0]);
    int moved = 0;
    for (int k = 2; k <= 4; k++) {
        float want = lr_rule((float)lr[k - 1], v[k - 2], v[k - 1], 0.95, 0.5, 0.5, 1.25, 1e-7, 1);
        if ((float)lr[k] != want)
            mt_test_fail(__FILE__, __LINE__, "epoch %d: learning_rate %.9g, want %.9g", k,
                         lr[k], want);
        moved += lr[k] != lr[k - 1];
    }
    MT_CHECK(moved > 0);
    MT_CHECK(obj[4] < obj[0]); /* it trains */
    /* the averaged parameters went to PolyakAveraging's file, Train's file has the trained
     * ones; the average is the one of Train's checkpoint state (saved at the same call) */
    int64_t draws = -1, count = -1;
    MT_CHECK_OK(mt_ckpt_get_int(c, "extension/0/draws", &draws));
    MT_CHECK_EQ_INT(draws, 5); /* setup, then one per monitor call */
    MT_CHECK_OK(mt_ckpt_get_int(c, "extension/2/count", &count));
    MT_CHECK_EQ_INT(count, 5);
    mt_array live, mean, saved;
    memset(&live, 0, sizeof(live));
    memset(&mean, 0, sizeof(mean));
    memset(&saved, 0, sizeof(saved));
    MT_CHECK_OK(mt_ckpt_get_array(c, "params/h0_W", &live));
    MT_CHECK_OK(mt_ckpt_get_array(c, "extension/2/mean/h0_W", &mean));
    MT_CHECK_OK(mt_ckpt_get_array(avg, "params/h0_W", &saved));
    size_t nb = mt_array_nbytes(&live);
    MT_CHECK_EQ_INT(nb, 576 * 16 * 4);
    float *hl = malloc(nb), *hm = malloc(nb), *hs = malloc(nb);
    MT_CHECK(hl && hm && hs);
    MT_CHECK_OK(mt_array_to_host(hl, nb, &live));
    MT_CHECK_OK(mt_array_to_host(hm, nb, &mean));
    MT_CHECK_OK(mt_array_to_host(hs, nb, &saved));
    MT_CHECK(memcmp(hm, hs, nb) == 0);
    MT_CHECK(memcmp(hl, hm, nb) != 0);
    free(hl);
    free(hm);
    free(hs);
    mt_array_clear(&live);
    mt_array_clear(&mean);
    mt_array_clear(&saved);
    mt_ckpt_free(c);
    mt_ckpt_free(avg);
}

MT_TEST(resume_with_polyak_and_windows_is_bit_identical)
{
    need_data();
    char ref[600], job[600];
    MT_CHECK_OK(run_job(ext_job("extref", 3, 1, ref, sizeof(ref)), MT_RESUME_NO, NULL));
    ext_job("extsig", 3, 1, job, sizeof(job));
    setenv("MLTRAIN_TEST_SIGNAL_AFTER_BATCHES", "13", 1); /* epoch 2, batch 5 of 8 */
    mt_train_result res;
    mt_status st = run_job(job, MT_RESUME_NO, &res);
    unsetenv("MLTRAIN_TEST_SIGNAL_AFTER_BATCHES");
    MT_CHECK_OK(st);
    MT_CHECK_EQ_INT(res.interrupted, SIGTERM);
    mt_ckpt *mid = read_ckpt("extsig", "");
    int64_t stage = -1, bie = -1, active = -1;
    MT_CHECK_OK(mt_ckpt_get_int(mid, "train/stage", &stage));
    MT_CHECK_OK(mt_ckpt_get_int(mid, "train/batch_in_epoch", &bie));
    MT_CHECK_OK(mt_ckpt_get_int(mid, "extension/2/active", &active));
    MT_CHECK_EQ_INT(stage, 0);
    MT_CHECK_EQ_INT(bie, 5);
    MT_CHECK_EQ_INT(active, 1);
    mt_ckpt_free(mid);
    MT_CHECK_OK(run_job(job, MT_RESUME_YES, &res));
    MT_CHECK(res.resumed);
    MT_CHECK_EQ_INT(res.epochs_seen, 3);
    mt_ckpt *a = read_ckpt("extref", ""), *b = read_ckpt("extsig", "");
    MT_CHECK(mt_test_ckpt_same_arrays(a, b, "params/", "optimizer/") >= 6);
    MT_CHECK_EQ_INT(mt_test_ckpt_same_arrays(a, b, "extension/2/mean/", NULL), 4);
    double la[8], lb[8], va[8], vb[8];
    int32_t n = channel(a, "learning_rate", la, 8);
    MT_CHECK_EQ_INT(channel(b, "learning_rate", lb, 8), n);
    MT_CHECK_EQ_INT(channel(a, "valid_objective", va, 8), n);
    MT_CHECK_EQ_INT(channel(b, "valid_objective", vb, 8), n);
    for (int32_t k = 0; k < n; k++) MT_CHECK(la[k] == lb[k] && va[k] == vb[k]);
    mt_ckpt_free(a);
    mt_ckpt_free(b);
    a = read_ckpt("extref", "_avg");
    b = read_ckpt("extsig", "_avg");
    MT_CHECK_EQ_INT(mt_test_ckpt_same_arrays(a, b, "params/", NULL), 4);
    mt_ckpt_free(a);
    mt_ckpt_free(b);
}

MT_TEST(job_dry_run_errors)
{
    need_data();
    const char *d = mt_test_tmpdir();
    char path[600], text[2048];
    snprintf(path, sizeof(path), "%s/dry.yaml", d);
    static const struct {
        const char *ext;
        mt_status code;
        const char *needle;
    } cases[] = {
        {"!obj:MonitorBasedLRAdjuster { channel_name: 'valid_objectiv' }", MT_ERR_INVALID,
         "did you mean 'valid_objective'?"},
        {"!obj:WindowAndFlip { window_shape: [30, 30], randomize: [ *train ] }", MT_ERR_SHAPE,
         "window 30x30 is larger than the 28x28 images"},
        {"!obj:WindowAndFlip { window_shape: [20, 20], center: [ *train ] }", MT_ERR_SHAPE,
         "the dataset does not fit the model"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(text, sizeof(text),
                 "!obj:pylearn2.train.Train {\n"
                 "  dataset: &train !obj:FashionMNIST { which_set: 'train', stop: 100 },\n"
                 "  model: !obj:pylearn2.models.mlp.MLP { nvis: 784, layers: [\n"
                 "    !obj:pylearn2.models.mlp.Softmax { layer_name: 'y', n_classes: 10,\n"
                 "        irange: 0.05 } ] },\n"
                 "  algorithm: !obj:SGD { batch_size: 50, learning_rate: 0.1,\n"
                 "    monitoring_dataset: { 'valid': *train },\n"
                 "    termination_criterion: !obj:EpochCounter { max_epochs: 1 } },\n"
                 "  extensions: [ %s ] }\n",
                 cases[i].ext);
        FILE *f = fopen(path, "w");
        MT_CHECK(f != NULL);
        fputs(text, f);
        fclose(f);
        mt_train_options o;
        mt_train_options_init(&o);
        mt_job *job = NULL;
        MT_CHECK_OK(mt_job_load(&job, path, &o));
        mt_strbuf sb;
        mt_strbuf_init(&sb);
        MT_CHECK_ERR(mt_job_dry_run(job, &sb), cases[i].code, cases[i].needle);
        mt_strbuf_deinit(&sb);
        mt_job_free(job);
    }
}

/* ---------------------------------------------------------------- long names */

/* Renames the fake run's parameters to `len` bytes: 'p' repeated, then the index, so they differ
 * in their last byte only. */
static void long_param_names(mt__run *run, size_t len)
{
    for (int32_t i = 0; i < run->n_params; i++) {
        mt_model_param *p = mt_model_param_at(run->model, i);
        char *nm = mt_malloc(len + 1);
        MT_CHECK(nm != NULL);
        memset(nm, 'p', len - 1);
        nm[len - 1] = (char)('0' + i);
        nm[len] = 0;
        mt_free((char *)p->name);
        p->name = nm;
    }
}

/* Array `key` of c holds the same float32 values as a. */
static void check_same_as(const mt_ckpt *c, const char *key, const mt_array *a)
{
    mt_array x;
    memset(&x, 0, sizeof(x));
    MT_CHECK_OK(mt_ckpt_get_array(c, key, &x));
    int64_t n = mt_array_size(a);
    MT_CHECK_EQ_INT(mt_array_size(&x), n);
    MT_CHECK_EQ_INT(x.ndim, a->ndim);
    float *hx = malloc((size_t)n * sizeof(float)), *ha = malloc((size_t)n * sizeof(float));
    MT_CHECK(hx && ha);
    MT_CHECK_OK(mt_array_to_host(hx, (size_t)n * sizeof(float), &x));
    MT_CHECK_OK(mt_array_to_host(ha, (size_t)n * sizeof(float), a));
    MT_CHECK(memcmp(hx, ha, (size_t)n * sizeof(float)) == 0);
    free(hx);
    free(ha);
    mt_array_clear(&x);
}

/* The checkpoint keys made from parameter names ("params/<name>", PolyakAveraging's
 * "<prefix>/mean/<name>") are whole for names that differ only past where they used to be cut
 * (256 and 200 bytes), and a name too long for a key is an error naming the parameter. */
MT_TEST(checkpoint_keys_of_long_parameter_names)
{
    mt__run run;
    run_init_fake(&run);
    fake_params fp;
    memset(&fp, 0, sizeof(fp));
    fake_run_params(&run, &fp);
    set_params(&run, 1);
    bool cont = true;
    const size_t lens[3] = {300, 500, 540};
    for (int li = 0; li < 3; li++) {
        long_param_names(&run, lens[li]);
        const char *n0 = mt_model_param_const(run.model, 0)->name;
        built bt;
        build_yaml(&bt, "!obj:PolyakAveraging { start: 0 }", "extension");
        mt__extension *e = bt.obj;
        MT_CHECK_OK(e->ops->setup(e, &run));
        mt_ckpt *c = NULL;
        MT_CHECK_OK(mt_ckpt_new(&c));
        if (lens[li] == 540) {
            /* "params/<name>" is 547 bytes; the average's graph name "polyak_<name>" too */
            MT_CHECK_ERR(mt__run_save_algorithm(&run, c), MT_ERR_RANGE,
                         "the key of parameter 'pppp");
            MT_CHECK(strstr(mt_last_error(), n0) && strstr(mt_last_error(), "over the limit"));
            MT_CHECK_ERR(mt__run_load_algorithm(&run, c), MT_ERR_RANGE, "over the limit of 511");
            MT_CHECK_ERR(e->ops->on_monitor(e, &run, &cont), MT_ERR_RANGE,
                         "the name of the average of parameter 'pppp");
            MT_CHECK(strstr(mt_last_error(), n0) != NULL);
        } else {
            MT_CHECK_OK(mt__run_save_algorithm(&run, c));
            MT_CHECK_OK(e->ops->on_monitor(e, &run, &cont)); /* call 0 == start: mean = params */
            if (lens[li] == 500) {
                /* "extension/0/mean/<name>" is 517 bytes */
                MT_CHECK_ERR(mt__extension_save(e, "extension/0", c), MT_ERR_RANGE,
                             "the checkpoint key of the average of parameter 'pppp");
                MT_CHECK(strstr(mt_last_error(), n0) && strstr(mt_last_error(), "517 bytes"));
            } else {
                MT_CHECK_OK(mt__extension_save(e, "extension/0", c));
                MT_CHECK_EQ_INT(mt_ckpt_n_arrays(c), 2 * run.n_params);
                for (int32_t i = 0; i < run.n_params; i++) {
                    char k[400];
                    const char *nm = mt_model_param_const(run.model, i)->name;
                    snprintf(k, sizeof(k), "params/%s", nm);
                    check_same_as(c, k, &run.params[i]);
                    snprintf(k, sizeof(k), "extension/0/mean/%s", nm);
                    check_same_as(c, k, &run.params[i]);
                }
                /* and they load back, each into its own parameter */
                MT_CHECK_OK(mt__run_load_algorithm(&run, c));
                MT_CHECK_OK(mt__extension_load(e, "extension/0", c));
            }
        }
        mt_ckpt_free(c);
        e->ops->teardown(e);
        built_free(&bt);
    }
    fake_params_free(&fp);
    run_clear_fake(&run);
}

/* The job of long_path_job: an MLP used as a layer holding a CompositeLayer of two Tanh layers
 * whose paths "<a>/<b>/<c>0" and "<a>/<b>/<c>1" have `len` bytes (they differ in the last byte
 * only), RMSProp (the longest optimizer keys) and PolyakAveraging, on a small .npy dataset. */
static const char *long_path_job(const char *name, int len, char *path0, size_t pcap,
                                 char *buf, size_t cap)
{
    const char *d = mt_test_tmpdir();
    char text[4096];
    mt_test_long_names n;
    mt_test_long_names_init(&n, len, path0, pcap);
    snprintf(buf, cap, "%s/%s.yaml", d, name);
    snprintf(text, sizeof(text),
             "!obj:pylearn2.train.Train {\n"
             "  dataset: &train !obj:NpyDataset { file: '%s/lp_x.npy', y_file: '%s/lp_y.npy' },\n"
             "  model: !obj:pylearn2.models.mlp.MLP { nvis: 4, seed: [3, 1, 4], layers: [\n"
             "    !obj:pylearn2.models.mlp.MLP { layer_name: '%s', layers: [\n"
             "      !obj:pylearn2.models.mlp.CompositeLayer { layer_name: '%s', layers: [\n"
             "        !obj:pylearn2.models.mlp.Tanh { layer_name: '%s0', dim: 3, irange: 0.5 },\n"
             "        !obj:pylearn2.models.mlp.Tanh { layer_name: '%s1', dim: 2, irange: 0.5 }\n"
             "      ] } ] },\n"
             "    !obj:pylearn2.models.mlp.Softmax { layer_name: 'y', n_classes: 2,\n"
             "        irange: 0.5 } ] },\n"
             "  algorithm: !obj:pylearn2.training_algorithms.sgd.SGD {\n"
             "    batch_size: 10, learning_rate: 0.01,\n"
             "    learning_rule: !obj:pylearn2.training_algorithms.learning_rule.RMSProp {\n"
             "        decay: 0.9 },\n"
             "    monitoring_dataset: { 'train': *train },\n"
             "    termination_criterion: !obj:EpochCounter { max_epochs: 3 } },\n"
             "  extensions: [ !obj:PolyakAveraging { start: 1 } ],\n"
             "  save_path: '%s/%s.ckpt', save_freq: 1 }\n",
             d, d, n.a, n.b, n.c, n.c, d, name);
    FILE *f = fopen(buf, "w");
    MT_CHECK(f != NULL);
    fputs(text, f);
    fclose(f);
    return buf;
}

/* 60 examples of 4 features, labels from the sign of a linear function. */
static void write_long_path_data(void)
{
    float x[60 * 4];
    int64_t y[60];
    for (int i = 0; i < 60; i++) {
        for (int j = 0; j < 4; j++) x[i * 4 + j] = (float)sin(0.37 * i + 1.1 * j);
        y[i] = x[i * 4] - 0.5f * x[i * 4 + 2] > 0;
    }
    mt_device *host = NULL;
    MT_CHECK_OK(mt_device_open(&host, "host"));
    int64_t dx[2] = {60, 4}, dy[1] = {60};
    mt_array a, l;
    MT_CHECK_OK(mt_array_from_host(&a, host, MT_FLOAT32, 2, dx, x));
    MT_CHECK_OK(mt_array_from_host(&l, host, MT_INT64, 1, dy, y));
    char p[600];
    snprintf(p, sizeof(p), "%s/lp_x.npy", mt_test_tmpdir());
    MT_CHECK_OK(mt_npy_save(p, &a));
    snprintf(p, sizeof(p), "%s/lp_y.npy", mt_test_tmpdir());
    MT_CHECK_OK(mt_npy_save(p, &l));
    mt_array_clear(&a);
    mt_array_clear(&l);
    mt_device_release(host);
}

/* A model whose deepest layer paths have the longest length accepted saves every key whole
 * (the two sibling layers, differing in their last byte, keep their own parameters, optimizer
 * state and averages) and, stopped by SIGTERM mid-epoch, resumes bit-identical. */
MT_TEST(longest_layer_paths_save_and_resume)
{
    const int len = 77; /* MT__PATH_LEN_MAX (src/model/model_impl.h) */
    write_long_path_data();
    char ref[600], job[600], path0[128], path1[128], k[256];
    MT_CHECK_OK(run_job(long_path_job("lpref", len, path0, sizeof(path0), ref, sizeof(ref)),
                        MT_RESUME_NO, NULL));
    MT_CHECK_EQ_INT(strlen(path0), len);
    snprintf(path1, sizeof(path1), "%s", path0);
    path1[len - 1] = '1';
    mt_ckpt *a = read_ckpt("lpref", "");
    static const char *const fmt[] = {"params/%s_W", "params/%s_b",
                                      "optimizer/mean_square_grad_%s_W",
                                      "optimizer/mean_square_grad_%s_b",
                                      "extension/0/mean/%s_W", "extension/0/mean/%s_b"};
    for (int i = 0; i < 6; i++) {
        mt_dtype dt;
        int32_t nd = 0;
        int64_t d0[MT_MAX_DIMS], d1[MT_MAX_DIMS];
        const void *data = NULL;
        snprintf(k, sizeof(k), fmt[i], path0);
        MT_CHECK_OK(mt_ckpt_array_info(a, k, &dt, &nd, d0, &data));
        snprintf(k, sizeof(k), fmt[i], path1);
        MT_CHECK_OK(mt_ckpt_array_info(a, k, &dt, &nd, d1, &data));
        MT_CHECK_EQ_INT(d0[nd - 1], 3); /* Tanh dim 3 */
        MT_CHECK_EQ_INT(d1[nd - 1], 2); /* Tanh dim 2 */
    }
    double v[8];
    snprintf(k, sizeof(k), "train_%s_range_x_mean_u", path0);
    for (char *q = k; *q; q++)
        if (*q == '/') *q = '_';
    MT_CHECK_EQ_INT(channel(a, k, v, 8), 4);
    mt_ckpt_free(a);
    long_path_job("lpsig", len, path0, sizeof(path0), job, sizeof(job));
    setenv("MLTRAIN_TEST_SIGNAL_AFTER_BATCHES", "8", 1); /* epoch 2, batch 2 of 6 */
    mt_train_result res;
    mt_status st = run_job(job, MT_RESUME_NO, &res);
    unsetenv("MLTRAIN_TEST_SIGNAL_AFTER_BATCHES");
    MT_CHECK_OK(st);
    MT_CHECK_EQ_INT(res.interrupted, SIGTERM);
    MT_CHECK_OK(run_job(job, MT_RESUME_YES, &res));
    MT_CHECK(res.resumed);
    MT_CHECK_EQ_INT(res.epochs_seen, 3);
    a = read_ckpt("lpref", "");
    mt_ckpt *b = read_ckpt("lpsig", "");
    MT_CHECK_EQ_INT(mt_test_ckpt_same_arrays(a, b, "params/", "optimizer/"), 6 + 6);
    MT_CHECK_EQ_INT(mt_test_ckpt_same_arrays(a, b, "extension/0/mean/", NULL), 6);
    double va[8], vb[8];
    int32_t n = channel(a, k, va, 8);
    MT_CHECK_EQ_INT(channel(b, k, vb, 8), n);
    for (int32_t i = 0; i < n; i++) MT_CHECK(va[i] == vb[i]);
    mt_ckpt_free(a);
    mt_ckpt_free(b);
}
