/* Training jobs that name the Pylearn2 iteration modes batchwise_shuffled_sequential and
 * even_* in YAML (train_iteration_mode, monitor_iteration_mode): the number of batches an
 * epoch trains (floor(n / batch_size) for the even modes), a run stopped by SIGTERM mid-epoch
 * and resumed ending byte-identical to an uninterrupted one, an unknown mode rejected with the
 * file position and the list of modes, and a global batch split into 3 shards, which the even
 * modes keep full where sequential's short last batch cannot be split. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mltrain/io.h"
#include "mltrain/train.h"
#include "mt_test.h"
#include "mt_test_ckpt.h"

/* 10 examples (batch_size 4: Pylearn2's even modes train 2 batches an epoch, the others 3). */
#define JOB                                                                                        \
    "!obj:pylearn2.train.Train {\n"                                                                \
    "  dataset: &train !obj:DenseDesignMatrix {\n"                                                 \
    "    X: [[0.1, 1.0], [0.9, -0.2], [0.3, 0.8], [1.1, 0.1], [0.2, 1.2],\n"                       \
    "        [1.0, -0.1], [0.0, 0.9], [0.8, 0.3], [0.4, 1.1], [1.2, 0.2]],\n"                      \
    "    y: [0, 1, 0, 1, 0, 1, 0, 1, 0, 1] },\n"                                                   \
    "  model: !obj:pylearn2.models.mlp.MLP { nvis: 2, seed: [4, 5, 6], layers: [\n"                \
    "    !obj:pylearn2.models.mlp.Softmax { layer_name: 'y', n_classes: 2, irange: 0.3 } ] },\n"   \
    "  algorithm: !obj:pylearn2.training_algorithms.sgd.SGD {\n"                                   \
    "    batch_size: 4, learning_rate: 0.2, seed: 11,\n"                                           \
    "    learning_rule: !obj:Momentum { init_momentum: 0.5 },\n"                                   \
    "    train_iteration_mode: '%s',\n"                                                            \
    "    monitoring_dataset: { 'train': *train },\n"                                               \
    "    monitor_iteration_mode: '%s',\n"                                                          \
    "    termination_criterion: !obj:EpochCounter { max_epochs: 3 } },\n"                          \
    "  save_path: '%s/%s.ckpt', save_freq: 1 }\n"

static const char *write_job(const char *name, const char *train_mode, const char *mon_mode)
{
    static char paths[4][600];
    static int k;
    char *path = paths[k++ % 4];
    snprintf(path, 600, "%s/%s.yaml", mt_test_tmpdir(), name);
    FILE *f = fopen(path, "w");
    MT_CHECK(f != NULL);
    fprintf(f, JOB, train_mode, mon_mode, mt_test_tmpdir(), name);
    fclose(f);
    return path;
}

static mt_status run_job(const char *path, mt_resume_mode resume, int32_t shards,
                         mt_train_result *res)
{
    mt_train_options o;
    mt_train_options_init(&o);
    o.resume = resume;
    o.monitor_log = false;
    if (shards > 1) {
        o.dp.shards = shards;
        o.dp.deterministic = true;
    }
    return mt_test_run_job(path, &o, res);
}

static mt_ckpt *read_ckpt(const char *name)
{
    char path[700];
    snprintf(path, sizeof path, "%s/%s.ckpt", mt_test_tmpdir(), name);
    mt_ckpt *c = NULL;
    MT_CHECK_OK(mt_ckpt_read(&c, path));
    return c;
}

/* Every params/ and optimizer/ array of the two checkpoints, byte for byte; how many. */
static int32_t same_state(const char *name_a, const char *name_b)
{
    mt_ckpt *a = read_ckpt(name_a), *b = read_ckpt(name_b);
    int32_t compared = mt_test_ckpt_same_arrays(a, b, "params/", "optimizer/");
    mt_ckpt_free(a);
    mt_ckpt_free(b);
    return compared;
}

MT_TEST(yaml_even_batchwise_counts_and_resumes)
{
    const char *mode = "even_batchwise_shuffled_sequential";
    mt_train_result res;
    /* 3 epochs of floor(10 / 4) = 2 batches; batchwise_shuffled_sequential trains 3 */
    MT_CHECK_OK(run_job(write_job("ebs_ref", mode, "even_sequential"), MT_RESUME_NO, 0, &res));
    MT_CHECK_EQ_INT(res.epochs_seen, 3);
    MT_CHECK_EQ_INT(res.batches_seen, 6);
    MT_CHECK_OK(run_job(write_job("bs", "batchwise_shuffled_sequential", "sequential"),
                        MT_RESUME_NO, 0, &res));
    MT_CHECK_EQ_INT(res.batches_seen, 9);
    /* the same job again: the same parameters */
    MT_CHECK_OK(run_job(write_job("ebs_again", mode, "even_sequential"), MT_RESUME_NO, 0, &res));
    MT_CHECK(same_state("ebs_ref", "ebs_again") >= 4); /* W, b and their velocities */
    /* stopped after 3 batches (epoch 2, batch 2 of 2 not yet trained), then resumed */
    const char *job = write_job("ebs_sig", mode, "even_sequential");
    setenv("MLTRAIN_TEST_SIGNAL_AFTER_BATCHES", "3", 1);
    mt_status st = run_job(job, MT_RESUME_NO, 0, &res);
    unsetenv("MLTRAIN_TEST_SIGNAL_AFTER_BATCHES");
    MT_CHECK_OK(st);
    MT_CHECK_EQ_INT(res.interrupted, SIGTERM);
    mt_ckpt *mid = read_ckpt("ebs_sig");
    int64_t ep = -1, bie = -1;
    MT_CHECK_OK(mt_ckpt_get_int(mid, "train/epochs_seen", &ep));
    MT_CHECK_OK(mt_ckpt_get_int(mid, "train/batch_in_epoch", &bie));
    mt_ckpt_free(mid);
    MT_CHECK_EQ_INT(ep, 1);
    MT_CHECK_EQ_INT(bie, 1);
    MT_CHECK_OK(run_job(job, MT_RESUME_YES, 0, &res));
    MT_CHECK(res.resumed);
    MT_CHECK_EQ_INT(res.epochs_seen, 3);
    MT_CHECK(same_state("ebs_ref", "ebs_sig") >= 4);
}

MT_TEST(yaml_unknown_mode_lists_all)
{
    const char *job = write_job("badmode", "even", "sequential");
    mt_train_options o;
    mt_train_options_init(&o);
    mt_job *j = NULL;
    mt_status st = mt_job_load(&j, job, &o);
    if (!st) {
        mt_strbuf sb;
        mt_strbuf_init(&sb);
        st = mt_job_dry_run(j, &sb);
        mt_strbuf_deinit(&sb);
    }
    mt_job_free(j);
    MT_CHECK(st == MT_ERR_INVALID);
    const char *msg = mt_last_error();
    printf("%s\n", msg);
    MT_CHECK(strstr(msg, "badmode.yaml:11:") != NULL); /* the train_iteration_mode line */
    MT_CHECK(strstr(msg, "unknown iteration mode 'even'") != NULL);
    const char *names[] = {"sequential",
                           "shuffled_sequential",
                           "random_slice",
                           "random_uniform",
                           "batchwise_shuffled_sequential",
                           "even_sequential",
                           "even_shuffled_sequential",
                           "even_batchwise_shuffled_sequential"};
    for (int i = 0; i < 8; i++)
        MT_CHECK(strstr(msg, names[i]) != NULL);
}

MT_TEST(yaml_even_modes_fill_every_shard)
{
    /* 3 shards of a global batch of 4: sequential's last batch (2 rows) cannot be split */
    mt_train_result res;
    mt_status st =
        run_job(write_job("shard_seq", "sequential", "sequential"), MT_RESUME_NO, 3, &res);
    if (st == MT_OK) MT_SKIP("this build trains without data-parallel shards");
    MT_CHECK(st == MT_ERR_RANGE);
    MT_CHECK(strstr(mt_last_error(), "fewer than the 3 shards") != NULL);
    const char *modes[] = {"even_sequential", "even_shuffled_sequential",
                           "even_batchwise_shuffled_sequential"};
    for (int i = 0; i < 3; i++) {
        char name[64];
        snprintf(name, sizeof name, "shard_even%d", i);
        MT_CHECK_OK(run_job(write_job(name, modes[i], modes[i]), MT_RESUME_NO, 3, &res));
        MT_CHECK_EQ_INT(res.batches_seen, 6);
    }
}

/* monitoring_batches alone: Pylearn2 gives the even modes int(n / num_batches) rows per batch
 * (3 full batches of 3 over 10 examples: rows 0-8), the others ceil(n / num_batches). The
 * channel must equal a monitor over exactly those 9 rows in batches of 3. */
#define MON_JOB                                                                                    \
    "!obj:pylearn2.train.Train {\n"                                                                \
    "  dataset: &train !obj:DenseDesignMatrix {\n"                                                 \
    "    X: [[0.1, 1.0], [0.9, -0.2], [0.3, 0.8], [1.1, 0.1], [0.2, 1.2],\n"                       \
    "        [1.0, -0.1], [0.0, 0.9], [0.8, 0.3], [0.4, 1.1], [1.2, 0.2]],\n"                      \
    "    y: [0, 1, 0, 1, 0, 1, 0, 1, 0, 1] },\n"                                                   \
    "  model: !obj:pylearn2.models.mlp.MLP { nvis: 2, seed: [4, 5, 6], layers: [\n"                \
    "    !obj:pylearn2.models.mlp.Softmax { layer_name: 'y', n_classes: 2, irange: 0.3 } ] },\n"   \
    "  algorithm: !obj:pylearn2.training_algorithms.sgd.SGD {\n"                                   \
    "    batch_size: 4, learning_rate: 0.2, seed: 11,\n"                                           \
    "    monitoring_dataset: { 'm': %s },\n"                                                       \
    "    %s,\n"                                                                                    \
    "    monitor_iteration_mode: '%s',\n"                                                          \
    "    termination_criterion: !obj:EpochCounter { max_epochs: 2 } },\n"                          \
    "  save_path: '%s/%s.ckpt', save_freq: 1 }\n"

static const char *write_mon_job(const char *name, const char *data, const char *batches,
                                 const char *mode)
{
    static char path[600];
    snprintf(path, sizeof path, "%s/%s.yaml", mt_test_tmpdir(), name);
    FILE *f = fopen(path, "w");
    MT_CHECK(f != NULL);
    fprintf(f, MON_JOB, data, batches, mode, mt_test_tmpdir(), name);
    fclose(f);
    return path;
}

static double last_channel(const char *name, const char *channel)
{
    mt_ckpt *c = read_ckpt(name);
    const mt_monitor_history *h = mt_ckpt_find_monitor(c, "monitor");
    MT_CHECK(h != NULL);
    double v = 0;
    bool found = false;
    for (int32_t i = 0; i < h->n; i++)
        if (strcmp(h->channels[i].name, channel) == 0 && h->channels[i].n > 0) {
            v = h->channels[i].records[h->channels[i].n - 1].value;
            found = true;
        }
    MT_CHECK(found);
    mt_ckpt_free(c);
    return v;
}

MT_TEST(yaml_even_monitor_batches_are_full)
{
    const char *nine = "!obj:DenseDesignMatrix { X: [[0.1, 1.0], [0.9, -0.2], [0.3, 0.8], "
                       "[1.1, 0.1], [0.2, 1.2], [1.0, -0.1], [0.0, 0.9], [0.8, 0.3], "
                       "[0.4, 1.1]], y: [0, 1, 0, 1, 0, 1, 0, 1, 0] }";
    MT_CHECK_OK(run_job(write_mon_job("mon_even", "*train", "monitoring_batches: 3",
                                      "even_sequential"),
                        MT_RESUME_NO, 0, NULL));
    MT_CHECK_OK(run_job(write_mon_job("mon_nine", nine, "monitoring_batch_size: 3",
                                      "sequential"),
                        MT_RESUME_NO, 0, NULL));
    MT_CHECK_OK(run_job(write_mon_job("mon_seq", "*train", "monitoring_batches: 3",
                                      "sequential"),
                        MT_RESUME_NO, 0, NULL));
    double even = last_channel("mon_even", "m_objective");
    double nine_rows = last_channel("mon_nine", "m_objective");
    double all_rows = last_channel("mon_seq", "m_objective");
    MT_CHECK(even == nine_rows);
    MT_CHECK(even != all_rows); /* sequential covers all 10 rows (batches of 4, 4, 2) */
}
