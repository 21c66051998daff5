/* Training runs on small Fashion-MNIST subsets (the Debian files): the objective decreases and
 * the logs and checkpoint hold what docs/training.md says; a run stopped by SIGTERM mid-epoch
 * (raised by the run itself after k batches through MLTRAIN_TEST_SIGNAL_AFTER_BATCHES, so the
 * real handler path runs) and resumed, and a run killed with SIGKILL and resumed from its last
 * save_freq checkpoint, end with parameters byte-identical to an uninterrupted run; SIGUSR1
 * saves and changes nothing; a diverging run stops naming the epoch, the batch and the node,
 * and leaves the previous checkpoint alone; dry-run errors carry file:line:column; push_monitor
 * and MatchChannel continue a saved model. */
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mt_test.h"
#include "mt_test_ckpt.h"
#include "train_impl.h"

static void need_data(void)
{
    struct stat sb;
    if (stat("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", &sb) != 0)
        MT_SKIP("Fashion-MNIST not installed (Debian's dataset-fashion-mnist)");
}

static const char *write_job(const char *name, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static char g_paths[8][512];
static int g_npaths;

static const char *write_job(const char *name, const char *fmt, ...)
{
    char *path = g_paths[g_npaths++ % 8];
    snprintf(path, 512, "%s/%s", mt_test_tmpdir(), name);
    FILE *f = fopen(path, "w");
    MT_CHECK(f != NULL);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fclose(f);
    return path;
}

/* The job used by most cases: ReLU MLP, Dropout cost (random numbers), momentum with an
 * adjustor, exponential decay per minibatch, monitoring on train and a test subset. */
#define SMALL_JOB                                                                              \
    "!obj:pylearn2.train.Train {\n"                                                            \
    "  dataset: &train !obj:FashionMNIST { which_set: 'train', start: 0, stop: 600 },\n"       \
    "  model: !obj:pylearn2.models.mlp.MLP { nvis: 784, seed: [1, 2, 3], layers: [\n"          \
    "    !obj:pylearn2.models.mlp.RectifiedLinear { layer_name: 'h0', dim: 24, irange: 0.05,\n"\
    "        max_col_norm: 1.9 },\n"                                                           \
    "    !obj:pylearn2.models.mlp.Softmax { layer_name: 'y', n_classes: 10, irange: 0.05 } ] },\n" \
    "  algorithm: !obj:pylearn2.training_algorithms.sgd.SGD {\n"                               \
    "    batch_size: 50, learning_rate: %s,\n"                                                 \
    "    learning_rule: !obj:Momentum { init_momentum: 0.5 },\n"                               \
    "    cost: !obj:pylearn2.costs.mlp.dropout.Dropout { input_include_probs: { 'h0': 0.8 },\n"\
    "                                                   input_scales: { 'h0': 1.25 } },\n"     \
    "    monitoring_dataset: { 'train': *train,\n"                                             \
    "        'valid': !obj:FashionMNIST { which_set: 'test', stop: 300 } },\n"                 \
    "    termination_criterion: !obj:EpochCounter { max_epochs: %d },\n"                       \
    "    update_callbacks: !obj:ExponentialDecay { decay_factor: 1.002, min_lr: 0.001 } },\n"  \
    "  extensions: [ !obj:MomentumAdjustor { start: 1, saturate: 3, final_momentum: 0.9 },\n" \
    "    !obj:MonitorBasedSaveBest { channel_name: 'valid_y_misclass',\n"                      \
    "                                save_path: '%s/%s_best.ckpt' } ],\n"                      \
    "  save_path: '%s/%s.ckpt', save_freq: %d }\n"

static const char *small_job(const char *name, const char *lr, int epochs, int save_freq)
{
    const char *d = mt_test_tmpdir();
    char fname[64];
    snprintf(fname, sizeof(fname), "%s.yaml", name);
    return write_job(fname, SMALL_JOB, lr, epochs, d, name, d, name, save_freq);
}

static mt_status run_job(const char *path, mt_resume_mode resume, mt_train_result *res)
{
    mt_train_options o;
    mt_train_options_init(&o);
    o.resume = resume;
    o.no_environment = false;
    return mt_test_run_job(path, &o, res);
}

static mt_ckpt *read_ckpt(const char *fmt, const char *a)
{
    char path[600];
    snprintf(path, sizeof(path), fmt, mt_test_tmpdir(), a);
    mt_ckpt *c = NULL;
    MT_CHECK_OK(mt_ckpt_read(&c, path));
    return c;
}

/* Every params/ and optimizer/ array of a and b, byte for byte, and the learning rate. */
static void check_same_state(const mt_ckpt *a, const mt_ckpt *b)
{
    int32_t compared = mt_test_ckpt_same_arrays(a, b, "params/", "optimizer/");
    MT_CHECK(compared >= 4); /* h0_W, h0_b, y_W, y_b (+ velocities) */
    double la, lb;
    MT_CHECK_OK(mt_ckpt_get_double(a, "algorithm/learning_rate", &la));
    MT_CHECK_OK(mt_ckpt_get_double(b, "algorithm/learning_rate", &lb));
    MT_CHECK(la == lb);
}

static double last_value(const mt_ckpt *c, const char *chan, int32_t *n_records)
{
    const mt_monitor_history *h = mt_ckpt_find_monitor(c, "monitor");
    MT_CHECK(h != NULL);
    for (int32_t i = 0; i < h->n; i++)
        if (!strcmp(h->channels[i].name, chan)) {
            *n_records = h->channels[i].n;
            return h->channels[i].records[h->channels[i].n - 1].value;
        }
    mt_test_fail(__FILE__, __LINE__, "no channel %s", chan);
}

MT_TEST(objective_decreases_and_outputs)
{
    need_data();
    const char *job = small_job("dec", "0.05", 4, 2);
    mt_train_result res;
    MT_CHECK_OK(run_job(job, MT_RESUME_NO, &res));
    MT_CHECK_EQ_INT(res.epochs_seen, 4);
    MT_CHECK_EQ_INT(res.interrupted, 0);
    mt_ckpt *c = read_ckpt("%s/%s.ckpt", "dec");
    const mt_monitor_history *h = mt_ckpt_find_monitor(c, "monitor");
    MT_CHECK(h != NULL);
    const mt_chan_history *obj = mt_monitor_history_channel((mt_monitor_history *)h,
                                                            "train_objective", false);
    MT_CHECK(obj && obj->n == 5); /* epoch 0 record + 4 epochs */
    MT_CHECK(obj->records[4].value < obj->records[0].value);
    MT_CHECK_EQ_INT(obj->records[4].epoch, 4);
    MT_CHECK_EQ_INT(obj->records[4].examples, 4 * 600);
    int32_t n;
    double lr = last_value(c, "learning_rate", &n);
    MT_CHECK_CLOSE(lr, (float)(0.05 / pow(1.002, 48)), 0, 1e-5); /* 12 batches x 4 epochs */
    double mom = last_value(c, "momentum", &n);
    MT_CHECK_CLOSE(mom, 0.9, 0, 1e-6); /* saturated at the 3rd on_monitor call */
    last_value(c, "valid_y_misclass", &n);
    last_value(c, "train_h0_col_norms_max", &n);
    last_value(c, "training_seconds_this_epoch", &n);
    const char *s = NULL;
    MT_CHECK_OK(mt_ckpt_get_string(c, "first_weights", &s));
    MT_CHECK_STR_EQ(s, "params/h0_W");
    MT_CHECK_OK(mt_ckpt_get_string(c, "first_weights_layout", &s));
    MT_CHECK_STR_EQ(s, "dense");
    int64_t rows = 0;
    MT_CHECK_OK(mt_ckpt_get_int(c, "input_rows", &rows));
    MT_CHECK_EQ_INT(rows, 28);
    MT_CHECK_OK(mt_ckpt_get_string(c, "model_yaml", &s));
    MT_CHECK(strstr(s, "MLP") != NULL);
    MT_CHECK_OK(mt_ckpt_get_string(c, "job_yaml", &s));
    MT_CHECK(strstr(s, "MomentumAdjustor") != NULL);
    mt_ckpt_free(c);
    /* the best-model checkpoint and the run directory's logs */
    c = read_ckpt("%s/%s_best.ckpt", "dec");
    mt_ckpt_free(c);
    char path[600];
    snprintf(path, sizeof(path), "%s/dec.run/monitor.jsonl", mt_test_tmpdir());
    FILE *f = fopen(path, "r");
    MT_CHECK(f != NULL);
    int lines = 0;
    for (int ch; (ch = fgetc(f)) != EOF;) lines += ch == '\n';
    fclose(f);
    MT_CHECK_EQ_INT(lines, 5);
}

/* Runs job `name` (epochs, save_freq 1) with the test hook env=value set; the run must end
 * interrupted by SIGTERM. Returns the job file. */
static const char *run_signalled(const char *name, int epochs, const char *env, const char *value,
                                 mt_train_result *res)
{
    const char *job = small_job(name, "0.05", epochs, 1);
    setenv(env, value, 1);
    mt_status st = run_job(job, MT_RESUME_NO, res);
    unsetenv(env);
    MT_CHECK_OK(st);
    MT_CHECK_EQ_INT(res->interrupted, SIGTERM);
    return job;
}

/* The integer `key` of checkpoint NAME.ckpt. */
static int64_t ckpt_int(const char *name, const char *key)
{
    mt_ckpt *c = read_ckpt("%s/%s.ckpt", name);
    int64_t v = -1;
    MT_CHECK_OK(mt_ckpt_get_int(c, key, &v));
    mt_ckpt_free(c);
    return v;
}

/* The parameters and optimizer state of REF.ckpt and NAME.ckpt are the same bytes; with
 * channels, so is the last valid_objective record and the number of records. */
static void check_same_run(const char *ref, const char *name, bool channels)
{
    mt_ckpt *a = read_ckpt("%s/%s.ckpt", ref), *b = read_ckpt("%s/%s.ckpt", name);
    check_same_state(a, b);
    if (channels) {
        int32_t na, nb;
        MT_CHECK(last_value(a, "valid_objective", &na) == last_value(b, "valid_objective", &nb));
        MT_CHECK_EQ_INT(na, nb);
    }
    mt_ckpt_free(a);
    mt_ckpt_free(b);
}

MT_TEST(resume_after_sigterm_is_bit_identical)
{
    need_data();
    MT_CHECK_OK(run_job(small_job("ref", "0.05", 3, 1), MT_RESUME_NO, NULL));
    mt_train_result res;
    /* epoch 2, batch 5 of 12 */
    const char *job = run_signalled("sig", 3, "MLTRAIN_TEST_SIGNAL_AFTER_BATCHES", "17", &res);
    MT_CHECK_EQ_INT(ckpt_int("sig", "train/stage"), 0);
    MT_CHECK_EQ_INT(ckpt_int("sig", "train/epochs_seen"), 1);
    MT_CHECK_EQ_INT(ckpt_int("sig", "train/batch_in_epoch"), 5);
    MT_CHECK_OK(run_job(job, MT_RESUME_YES, &res));
    MT_CHECK(res.resumed);
    MT_CHECK_EQ_INT(res.epochs_seen, 3);
    check_same_run("ref", "sig", true);
    /* a finished run resumes to nothing */
    MT_CHECK_OK(run_job(job, MT_RESUME_AUTO, &res));
    MT_CHECK(res.resumed);
}

/* A signal during the monitoring (outside the batches): the checkpoint has stage 1 and the
 * criteria's state before that epoch's decision, so the resumed run decides once and stops
 * after the same number of epochs, bit-identical (EpochCounter counts its calls). */
MT_TEST(resume_after_sigterm_in_monitoring_is_bit_identical)
{
    need_data();
    MT_CHECK_OK(run_job(small_job("mref", "0.05", 3, 1), MT_RESUME_NO, NULL));
    mt_train_result res;
    const char *job = run_signalled("msig", 3, "MLTRAIN_TEST_SIGNAL_AT_MONITOR", "1", &res);
    MT_CHECK_EQ_INT(ckpt_int("msig", "train/stage"), 1);
    MT_CHECK_EQ_INT(ckpt_int("msig", "train/epochs_seen"), 1);
    MT_CHECK_OK(run_job(job, MT_RESUME_YES, &res));
    MT_CHECK(res.resumed);
    MT_CHECK_EQ_INT(res.epochs_seen, 3);
    check_same_run("mref", "msig", true);
}

/* A signal while the criteria decide to end the run (after the last epoch): the job stops with
 * the finished run checkpointed (stage 2) instead of losing the signal; resuming finds nothing
 * to do and the parameters equal an uninterrupted run's. */
MT_TEST(sigterm_during_the_last_decision_stops_the_job)
{
    need_data();
    MT_CHECK_OK(run_job(small_job("dref", "0.05", 2, 1), MT_RESUME_NO, NULL));
    mt_train_result res;
    const char *job = run_signalled("dsig", 2, "MLTRAIN_TEST_SIGNAL_AT_DECIDE", "2", &res);
    MT_CHECK_EQ_INT(res.epochs_seen, 2);
    MT_CHECK_EQ_INT(ckpt_int("dsig", "train/stage"), 2);
    MT_CHECK_OK(run_job(job, MT_RESUME_AUTO, &res));
    MT_CHECK(res.resumed);
    MT_CHECK_EQ_INT(res.interrupted, 0);
    check_same_run("dref", "dsig", false);
}

MT_TEST(resume_after_sigkill_is_bit_identical)
{
    need_data();
    const char *job = small_job("kill", "0.05", 3, 1);
    pid_t pid = fork();
    MT_CHECK(pid >= 0);
    if (pid == 0) {
        setenv("MLTRAIN_TEST_SIGNAL_AFTER_BATCHES", "30:KILL", 1); /* epoch 3, batch 6 */
        run_job(job, MT_RESUME_NO, NULL);
        _exit(0);
    }
    int status = 0;
    MT_CHECK(waitpid(pid, &status, 0) == pid);
    MT_CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    mt_ckpt *mid = read_ckpt("%s/%s.ckpt", "kill");
    int64_t ep = -1;
    MT_CHECK_OK(mt_ckpt_get_int(mid, "train/epochs_seen", &ep));
    MT_CHECK_EQ_INT(ep, 2); /* the save_freq checkpoint after epoch 2 */
    mt_ckpt_free(mid);
    mt_train_result res;
    MT_CHECK_OK(run_job(job, MT_RESUME_AUTO, &res));
    MT_CHECK(res.resumed);
    const char *ref = small_job("ref2", "0.05", 3, 1);
    MT_CHECK_OK(run_job(ref, MT_RESUME_NO, NULL));
    mt_ckpt *a = read_ckpt("%s/%s.ckpt", "ref2"), *b = read_ckpt("%s/%s.ckpt", "kill");
    check_same_state(a, b);
    mt_ckpt_free(a);
    mt_ckpt_free(b);
}

MT_TEST(sigusr1_saves_and_continues)
{
    need_data();
    const char *ref = small_job("u_ref", "0.05", 2, 1);
    MT_CHECK_OK(run_job(ref, MT_RESUME_NO, NULL));
    const char *job = small_job("u_sig", "0.05", 2, 1);
    setenv("MLTRAIN_TEST_SIGNAL_AFTER_BATCHES", "7:USR1", 1);
    mt_train_result res;
    mt_status st = run_job(job, MT_RESUME_NO, &res);
    unsetenv("MLTRAIN_TEST_SIGNAL_AFTER_BATCHES");
    MT_CHECK_OK(st);
    MT_CHECK_EQ_INT(res.interrupted, 0);
    MT_CHECK_EQ_INT(res.epochs_seen, 2);
    /* the extra checkpoint changed nothing */
    mt_ckpt *a = read_ckpt("%s/%s.ckpt", "u_ref"), *b = read_ckpt("%s/%s.ckpt", "u_sig");
    check_same_state(a, b);
    mt_ckpt_free(a);
    mt_ckpt_free(b);
    /* save_freq 0: the only checkpoint is the SIGUSR1 one, taken after batch 7 */
    const char *once = small_job("u_once", "0.05", 2, 0);
    setenv("MLTRAIN_TEST_SIGNAL_AFTER_BATCHES", "7:USR1", 1);
    st = run_job(once, MT_RESUME_NO, &res);
    unsetenv("MLTRAIN_TEST_SIGNAL_AFTER_BATCHES");
    MT_CHECK_OK(st);
    mt_ckpt *c = read_ckpt("%s/%s.ckpt", "u_once");
    int64_t nb = -1, stage = -1;
    MT_CHECK_OK(mt_ckpt_get_int(c, "train/batches_seen", &nb));
    MT_CHECK_OK(mt_ckpt_get_int(c, "train/stage", &stage));
    MT_CHECK_EQ_INT(nb, 7);
    MT_CHECK_EQ_INT(stage, 0);
    mt_ckpt_free(c);
}

MT_TEST(nan_stops_with_location_and_keeps_checkpoint)
{
    need_data();
    const char *good = small_job("nan", "0.05", 1, 1);
    MT_CHECK_OK(run_job(good, MT_RESUME_NO, NULL));
    mt_ckpt *before = read_ckpt("%s/%s.ckpt", "nan");
    const char *d = mt_test_tmpdir();
    const char *bad = write_job(
        "nan_bad.yaml",
        "!obj:Train {\n"
        "  dataset: !obj:FashionMNIST { which_set: 'train', start: 0, stop: 600 },\n"
        "  model: !obj:MLP { nvis: 784, layers: [\n"
        "    !obj:RectifiedLinear { layer_name: 'h0', dim: 24, irange: 10.0 },\n"
        "    !obj:Softmax { layer_name: 'y', n_classes: 10, irange: 10.0 } ] },\n"
        "  algorithm: !obj:SGD { batch_size: 50, learning_rate: 1e30,\n"
        "    termination_criterion: !obj:EpochCounter { max_epochs: 2 } },\n"
        "  save_path: '%s/nan.ckpt', save_freq: 1 }\n",
        d);
    mt_train_result res;
    mt_err_clear();
    mt_status st = run_job(bad, MT_RESUME_NO, &res);
    MT_CHECK(st == MT_ERR_RANGE);
    const char *msg = mt_last_error();
    MT_CHECK(strstr(msg, "non-finite") != NULL);
    MT_CHECK(strstr(msg, "epoch 1, batch ") != NULL);
    MT_CHECK(strstr(msg, "first non-finite value: v") != NULL);
    mt_ckpt *after = read_ckpt("%s/%s.ckpt", "nan");
    const char *h1, *h2;
    MT_CHECK_OK(mt_ckpt_get_string(before, "job_hash", &h1));
    MT_CHECK_OK(mt_ckpt_get_string(after, "job_hash", &h2));
    MT_CHECK_STR_EQ(h1, h2); /* still the good run's file */
    check_same_state(before, after);
    mt_ckpt_free(before);
    mt_ckpt_free(after);
}

static mt_status dry_run(const char *path)
{
    mt_train_options o;
    mt_train_options_init(&o);
    mt_job *job = NULL;
    mt_status st = mt_job_load(&job, path, &o);
    if (st) return st;
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    st = mt_job_dry_run(job, &sb);
    mt_strbuf_deinit(&sb);
    mt_job_free(job);
    return st;
}

MT_TEST(dry_run_errors_name_file_line_column)
{
    need_data();
    const char *p = write_job("key.yaml",
                              "!obj:Train {\n"
                              "  dataset: !obj:FashionMNIST { which_set: 'train', stop: 100 },\n"
                              "  model: !obj:MLP { nvis: 784, layers: [ !obj:Softmax {\n"
                              "      layer_name: 'y', n_classes: 10, irange: 0. } ] },\n"
                              "  algorithm: !obj:SGD { batch_size: 10, learning_rate: 0.1,\n"
                              "                       learning_rul: !obj:Momentum {\n"
                              "                           init_momentum: 0.5 } } }\n");
    MT_CHECK_ERR(dry_run(p), MT_ERR_INVALID, "key.yaml:6:24:");
    MT_CHECK(strstr(mt_last_error(), "did you mean 'learning_rule'") != NULL);
    p = write_job("chan.yaml",
                  "!obj:Train {\n"
                  "  dataset: &t !obj:FashionMNIST { which_set: 'train', stop: 100 },\n"
                  "  model: !obj:MLP { nvis: 784, layers: [ !obj:Softmax {\n"
                  "      layer_name: 'y', n_classes: 10, irange: 0. } ] },\n"
                  "  algorithm: !obj:SGD { batch_size: 10, learning_rate: 0.1,\n"
                  "    monitoring_dataset: { 'valid': *t },\n"
                  "    termination_criterion: !obj:MonitorBased {\n"
                  "        channel_name: 'valid_y_misclas' } } }\n");
    MT_CHECK_ERR(dry_run(p), MT_ERR_INVALID,
                 "chan.yaml:8:9: MonitorBased: unknown channel 'valid_y_misclas' (did you mean "
                 "'valid_y_misclass'?)");
    p = write_job("pkl.yaml",
                  "!obj:Train {\n"
                  "  dataset: !obj:FashionMNIST { which_set: 'train', stop: 100 },\n"
                  "  model: !pkl: 'no_such_model.pkl',\n"
                  "  algorithm: !obj:SGD { batch_size: 10, learning_rate: 0.1 } }\n");
    mt_status st = dry_run(p);
    MT_CHECK(st == MT_ERR_IO || st == MT_ERR_NOT_FOUND);
    MT_CHECK(strstr(mt_last_error(), "pkl.yaml:3:") != NULL);
    MT_CHECK(strstr(mt_last_error(), "no_such_model.pkl") != NULL);
}

MT_TEST(push_monitor_and_match_channel)
{
    need_data();
    const char *first = small_job("stage0", "0.05", 2, 1);
    MT_CHECK_OK(run_job(first, MT_RESUME_NO, NULL));
    const char *d = mt_test_tmpdir();
    const char *second = write_job(
        "stage1.yaml",
        "!obj:Train {\n"
        "  dataset: &train !obj:FashionMNIST { which_set: 'train', start: 0, stop: 600 },\n"
        "  model: !obj:pylearn2.monitor.push_monitor { model: !pkl: '%s/stage0.ckpt',\n"
        "                                              name: 'monitor_stage_0' },\n"
        "  algorithm: !obj:SGD { batch_size: 50,\n"
        "    learning_rate: !obj:pylearn2.monitor.read_channel { model: !pkl: '%s/stage0.ckpt',\n"
        "        monitor_name: 'monitor', channel_name: 'learning_rate' },\n"
        "    monitoring_dataset: { 'train': *train,\n"
        "        'valid': !obj:FashionMNIST { which_set: 'test', stop: 300 } },\n"
        "    termination_criterion: !obj:Or { criteria: [\n"
        "      !obj:MatchChannel { channel_name: 'valid_objective',\n"
        "          prev_channel_name: 'train_objective', prev_monitor_name: 'monitor_stage_0' },\n"
        "      !obj:EpochCounter { max_epochs: 2 } ] } },\n"
        "  save_path: '%s/stage1.ckpt', save_freq: 1 }\n",
        d, d, d);
    mt_train_result res;
    MT_CHECK_OK(run_job(second, MT_RESUME_NO, &res));
    MT_CHECK(res.epochs_seen >= 2);
    mt_ckpt *c = read_ckpt("%s/%s.ckpt", "stage1");
    MT_CHECK(mt_ckpt_find_monitor(c, "monitor_stage_0") != NULL);
    MT_CHECK(mt_ckpt_find_monitor(c, "monitor") != NULL);
    mt_ckpt_free(c);
}

/* Byte comparison of array `an` of checkpoint a with array `bn` of checkpoint b. */
static bool same_array(const mt_ckpt *a, const char *an, const mt_ckpt *b, const char *bn)
{
    mt_array x, y;
    memset(&x, 0, sizeof(x));
    memset(&y, 0, sizeof(y));
    MT_CHECK_OK(mt_ckpt_get_array(a, an, &x));
    MT_CHECK_OK(mt_ckpt_get_array(b, bn, &y));
    size_t n = mt_array_nbytes(&x);
    bool same = n == mt_array_nbytes(&y);
    if (same) {
        char *hx = malloc(n), *hy = malloc(n);
        MT_CHECK_OK(mt_array_to_host(hx, n, &x));
        MT_CHECK_OK(mt_array_to_host(hy, n, &y));
        same = memcmp(hx, hy, n) == 0;
        free(hx);
        free(hy);
    }
    mt_array_clear(&x);
    mt_array_clear(&y);
    return same;
}

/* A denoising autoencoder trained without a `cost:` key uses its default cost, which
 * reconstructs the corrupted input; an MLP on top of it with PretrainedLayer(freeze_params:
 * true) trains its softmax and leaves the pretrained weights exactly as loaded. */
MT_TEST(frozen_pretrained_layer_is_not_updated)
{
    need_data();
    const char *d = mt_test_tmpdir();
    const char *dae = write_job(
        "frz_dae.yaml",
        "!obj:Train {\n"
        "  dataset: &train !obj:FashionMNIST { which_set: 'train', start: 0, stop: 400 },\n"
        "  model: !obj:DenoisingAutoencoder { nvis: 784, nhid: 16, irange: 0.05,\n"
        "    act_enc: 'tanh', act_dec: null,\n"
        "    corruptor: !obj:BinomialCorruptor { corruption_level: 0.3 } },\n"
        "  algorithm: !obj:SGD { learning_rate: 0.01, batch_size: 50,\n"
        "    monitoring_dataset: *train,\n"
        "    termination_criterion: !obj:EpochCounter { max_epochs: 1 } },\n"
        "  save_path: '%s/frz_dae.ckpt', save_freq: 1 }\n", d);
    MT_CHECK_OK(run_job(dae, MT_RESUME_NO, NULL));
    const char *mlp = write_job(
        "frz_mlp.yaml",
        "!obj:Train {\n"
        "  dataset: !obj:FashionMNIST { which_set: 'train', start: 0, stop: 400 },\n"
        "  model: !obj:MLP { nvis: 784, layers: [\n"
        "    !obj:PretrainedLayer { layer_name: 'h1', freeze_params: true,\n"
        "                           layer_content: !pkl: '%s/frz_dae.ckpt' },\n"
        "    !obj:Softmax { layer_name: 'y', n_classes: 10, irange: 0.05 } ] },\n"
        "  algorithm: !obj:SGD { learning_rate: 0.05, batch_size: 50,\n"
        "    learning_rule: !obj:Momentum { init_momentum: 0.5 },\n"
        "    termination_criterion: !obj:EpochCounter { max_epochs: 2 } },\n"
        "  save_path: '%s/frz_mlp.ckpt', save_freq: 1 }\n", d, d);
    MT_CHECK_OK(run_job(mlp, MT_RESUME_NO, NULL));
    mt_ckpt *a = read_ckpt("%s/%s", "frz_dae.ckpt");
    mt_ckpt *b = read_ckpt("%s/%s", "frz_mlp.ckpt");
    MT_CHECK(same_array(a, "params/W", b, "params/h1_W"));
    MT_CHECK(same_array(a, "params/hb", b, "params/h1_b"));
    MT_CHECK(!mt_ckpt_has(b, "optimizer/h1_W_velocity"));
    MT_CHECK(mt_ckpt_has(b, "params/y_W"));
    mt_ckpt_free(a);
    mt_ckpt_free(b);
}
