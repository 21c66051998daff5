/* BGD (src/train/bgd.c) through whole jobs (mt_job_load / mt_job_run): linear least squares
 * (a convex quadratic whose optimum the test computes in float64 by the normal equations)
 * reached by conjugate gradient with the exhaustive line search; conjugate directions beating
 * steepest descent on an ill-conditioned quadratic after the same number of updates; softmax
 * regression on Fashion-MNIST rows whose objective never increases across a line search, in
 * both modes (read from BGD's debug log lines); a run stopped by SIGTERM and resumed ending
 * bit-identical to an uninterrupted one (state carried between batches); ScaleStep mixing the
 * parameters; errors: bad keys, a non-finite gradient naming epoch, batch and node. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mltrain/io.h"
#include "mltrain/jit.h"
#include "mltrain/train.h"
#include "mt_test.h"

#define FASHION_DIR "/usr/share/datasets/fashion-mnist"

/* ---------------------------------------------------------------- helpers */

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    MT_CHECK(f != NULL);
    fputs(text, f);
    fclose(f);
}

static void save_npy(const char *path, int32_t ndim, const int64_t *dims, const float *data)
{
    mt_device *host = NULL;
    MT_CHECK_OK(mt_device_open(&host, "host"));
    mt_array a;
    MT_CHECK_OK(mt_array_from_host(&a, host, MT_FLOAT32, ndim, dims, data));
    MT_CHECK_OK(mt_npy_save(path, &a));
    mt_array_clear(&a);
    mt_device_release(host);
}

static int32_t g_mode = MT_MODE_FAST_RUN; /* mode of the compiled functions */

static void run_job_opts(const char *path, mt_resume_mode resume, mt_train_result *res)
{
    mt_train_options o;
    mt_train_options_init(&o);
    o.mode = g_mode;
    o.monitor_log = false;
    o.resume = resume;
    o.device = mt_test_device_name();
    mt_job *job = NULL;
    MT_CHECK_OK(mt_job_load(&job, path, &o));
    mt_train_result r;
    memset(&r, 0, sizeof(r));
    mt_status st = mt_job_run(job, &r);
    mt_job_free(job);
    if (st) mt_test_fail(__FILE__, __LINE__, "mt_job_run(%s): %s", path, mt_last_error());
    if (res) *res = r;
}

static void run_job(const char *path)
{
    run_job_opts(path, MT_RESUME_NO, NULL);
}

/* n float32 values of a checkpoint array into out (float64). */
static void ckpt_values(const char *ckpt, const char *name, double *out, int64_t n)
{
    mt_ckpt *c = NULL;
    MT_CHECK_OK(mt_ckpt_read(&c, ckpt));
    mt_array a;
    memset(&a, 0, sizeof(a));
    MT_CHECK_OK(mt_ckpt_get_array(c, name, &a));
    MT_CHECK_EQ_INT(mt_array_size(&a), n);
    float *f = malloc((size_t)n * sizeof(float));
    MT_CHECK(f != NULL);
    MT_CHECK_OK(mt_array_to_host(f, (size_t)n * sizeof(float), &a));
    for (int64_t i = 0; i < n; i++)
        out[i] = f[i];
    free(f);
    mt_array_clear(&a);
    mt_ckpt_free(c);
}

/* The records of a channel of the checkpoint's "monitor" history; returns the count. */
static int32_t ckpt_channel(const char *ckpt, const char *name, double *out, int32_t cap)
{
    mt_ckpt *c = NULL;
    MT_CHECK_OK(mt_ckpt_read(&c, ckpt));
    const mt_monitor_history *h = mt_ckpt_find_monitor(c, "monitor");
    MT_CHECK(h != NULL);
    int32_t n = -1;
    for (int32_t i = 0; i < h->n; i++) {
        if (strcmp(h->channels[i].name, name)) continue;
        n = h->channels[i].n;
        for (int32_t k = 0; k < n && k < cap; k++)
            out[k] = h->channels[i].records[k].value;
    }
    mt_ckpt_free(c);
    if (n < 0) mt_test_fail(__FILE__, __LINE__, "no channel %s in %s", name, ckpt);
    return n;
}

/* ---------------------------------------------------------------- least squares */

#define LS_N 256
#define LS_D 8

/* X [n, d] with column j scaled by scale^j (ill-conditioning), y = X w + b + noise. */
static void make_regression(float *X, float *y, double scale, uint64_t seed)
{
    uint64_t s = seed;
    for (int i = 0; i < LS_N; i++) {
        double acc = 0.3;
        for (int j = 0; j < LS_D; j++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            double u = (double)(s >> 11) / 9007199254740992.0 - 0.5;
            double x = u * pow(scale, j);
            X[i * LS_D + j] = (float)x;
            acc += x * (double)(j % 3 - 1) * 0.7;
        }
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        y[i] = (float)(acc + 0.05 * ((double)(s >> 11) / 9007199254740992.0 - 0.5));
    }
}

/* Mean squared error of (w, b) on the float32 data, in float64. */
static double ls_cost(const float *X, const float *y, const double *w, double b)
{
    double c = 0;
    for (int i = 0; i < LS_N; i++) {
        double r = b - (double)y[i];
        for (int j = 0; j < LS_D; j++)
            r += (double)X[i * LS_D + j] * w[j];
        c += r * r;
    }
    return c / LS_N;
}

/* Normal equations of [X 1] in float64 (Gaussian elimination with partial pivoting). */
static void ls_solve(const float *X, const float *y, double *w, double *b)
{
    enum { K = LS_D + 1 };
    double A[K][K + 1];
    memset(A, 0, sizeof(A));
    for (int i = 0; i < LS_N; i++) {
        double row[K];
        for (int j = 0; j < LS_D; j++)
            row[j] = X[i * LS_D + j];
        row[LS_D] = 1.0;
        for (int r = 0; r < K; r++) {
            for (int c = 0; c < K; c++)
                A[r][c] += row[r] * row[c];
            A[r][K] += row[r] * (double)y[i];
        }
    }
    for (int c = 0; c < K; c++) {
        int p = c;
        for (int r = c + 1; r < K; r++)
            if (fabs(A[r][c]) > fabs(A[p][c])) p = r;
        for (int k = 0; k <= K; k++) {
            double t = A[c][k];
            A[c][k] = A[p][k];
            A[p][k] = t;
        }
        for (int r = 0; r < K; r++) {
            if (r == c) continue;
            double f = A[r][c] / A[c][c];
            for (int k = c; k <= K; k++)
                A[r][k] -= f * A[c][k];
        }
    }
    for (int j = 0; j < LS_D; j++)
        w[j] = A[j][K] / A[j][j];
    *b = A[LS_D][K] / A[LS_D][LS_D];
}

/* Writes the data and a job training a Linear output layer with BGD; returns the final
 * cost of the checkpointed parameters (float64) and fills w, b. */
static double ls_train(const char *tag, double scale, const char *bgd_keys, int epochs, double *w,
                       double *b, const float **Xo, const float **yo)
{
    static float X[LS_N * LS_D], y[LS_N];
    make_regression(X, y, scale, 42);
    *Xo = X;
    *yo = y;
    const char *dir = mt_test_tmpdir();
    char xp[600], yp[600], job[600], ck[600], text[4096];
    snprintf(xp, sizeof(xp), "%s/%s_X.npy", dir, tag);
    snprintf(yp, sizeof(yp), "%s/%s_y.npy", dir, tag);
    snprintf(job, sizeof(job), "%s/%s.yaml", dir, tag);
    snprintf(ck, sizeof(ck), "%s/%s.ckpt", dir, tag);
    int64_t dx[2] = {LS_N, LS_D}, dy[2] = {LS_N, 1};
    save_npy(xp, 2, dx, X);
    save_npy(yp, 2, dy, y);
    snprintf(text, sizeof(text),
             "!obj:pylearn2.train.Train {\n"
             "  dataset: !obj:NpyDataset { file: '%s', y_file: '%s' },\n"
             "  model: !obj:pylearn2.models.mlp.MLP {\n"
             "    nvis: %d,\n"
             "    layers: [ !obj:pylearn2.models.mlp.Linear { layer_name: 'y', dim: 1, "
             "irange: 0. } ],\n"
             "  },\n"
             "  algorithm: !obj:pylearn2.training_algorithms.bgd.BGD {\n"
             "    batch_size: %d,\n"
             "    %s\n"
             "    termination_criterion: !obj:pylearn2.termination_criteria.EpochCounter {\n"
             "      max_epochs: %d },\n"
             "  },\n"
             "  save_path: '%s',\n"
             "  save_freq: 1,\n"
             "}\n",
             xp, yp, LS_D, LS_N, bgd_keys, epochs, ck);
    write_file(job, text);
    run_job(job);
    ckpt_values(ck, "params/y_W", w, LS_D);
    ckpt_values(ck, "params/y_b", b, 1);
    return ls_cost(X, y, w, *b);
}

MT_TEST(quadratic_conjugate_exhaustive_reaches_optimum)
{
    double w[LS_D], b, ws[LS_D], bs;
    const float *X, *y;
    double cost =
        ls_train("cg", 1.5, "line_search_mode: 'exhaustive', conjugate: 1, updates_per_batch: 20,",
                 3, w, &b, &X, &y);
    ls_solve(X, y, ws, &bs);
    double opt = ls_cost(X, y, ws, bs), start = ls_cost(X, y, (double[LS_D]){0}, 0.0);
    printf("least squares: start %.9g, BGD %.9g, optimum %.9g\n", start, cost, opt);
    MT_CHECK(cost >= opt * (1 - 1e-9));
    MT_CHECK((cost - opt) <= 1e-4 * (start - opt));
    for (int j = 0; j < LS_D; j++)
        MT_CHECK_CLOSE(w[j], ws[j], 2e-3, 2e-3);
    MT_CHECK_CLOSE(b, bs, 2e-3, 2e-3);
}

/* The same in MT_MODE_CHECK: every fused kernel of BGD's functions (the direction with its
 * where/maximum, the constrained step) is compared with the reference executor. */
MT_TEST(conjugate_functions_pass_check_mode)
{
    double w[LS_D], b, ws[LS_D], bs;
    const float *X, *y;
    g_mode = MT_MODE_CHECK;
    double cost = ls_train("check", 1.5,
                           "line_search_mode: 'exhaustive', conjugate: 1, updates_per_batch: 6,", 1,
                           w, &b, &X, &y);
    g_mode = MT_MODE_FAST_RUN;
    ls_solve(X, y, ws, &bs);
    double opt = ls_cost(X, y, ws, bs), start = ls_cost(X, y, (double[LS_D]){0}, 0.0);
    MT_CHECK(cost - opt < 0.01 * (start - opt));
}

MT_TEST(quadratic_default_search_converges)
{
    double w[LS_D], b, ws[LS_D], bs;
    const float *X, *y;
    double cost = ls_train("sd", 1.0, "updates_per_batch: 30,", 4, w, &b, &X, &y);
    ls_solve(X, y, ws, &bs);
    double opt = ls_cost(X, y, ws, bs), start = ls_cost(X, y, (double[LS_D]){0}, 0.0);
    printf("least squares (default search): start %.9g, BGD %.9g, optimum %.9g\n", start, cost,
           opt);
    MT_CHECK((cost - opt) <= 1e-3 * (start - opt));
}

/* Pylearn2's default line search (BatchGradientDescent.minimize, line_search_mode None),
 * written out in float64 on the least-squares cost: one batch, `iters` updates. */
static void reference_default_search(const float *X, const float *y, int iters, double *w,
                                     double *b)
{
    double alpha[5] = {.001, .005, .01, .05, .1};
    memset(w, 0, LS_D * sizeof(double));
    *b = 0;
    for (int it = 0; it < iters; it++) {
        double g[LS_D + 1] = {0}, norm = 0;
        for (int i = 0; i < LS_N; i++) {
            double r = *b - (double)y[i];
            for (int j = 0; j < LS_D; j++)
                r += (double)X[i * LS_D + j] * w[j];
            for (int j = 0; j < LS_D; j++)
                g[j] += 2.0 * r * (double)X[i * LS_D + j] / LS_N;
            g[LS_D] += 2.0 * r / LS_N;
        }
        for (int j = 0; j <= LS_D; j++)
            norm += g[j] * g[j];
        norm = sqrt(norm);
        double best = ls_cost(X, y, w, *b), best_alpha = 0, wt[LS_D];
        int best_ind = -1;
        for (int k = 0; k < 5; k++) {
            for (int j = 0; j < LS_D; j++)
                wt[j] = w[j] - alpha[k] * g[j] / norm;
            double o = ls_cost(X, y, wt, *b - alpha[k] * g[LS_D] / norm);
            if (o <= best) best = o, best_alpha = alpha[k], best_ind = k;
        }
        for (int j = 0; j < LS_D; j++)
            w[j] -= best_alpha * g[j] / norm;
        *b -= best_alpha * g[LS_D] / norm;
        if (best_ind < 1 && alpha[0] > 1e-6) {
            for (int k = 0; k < 5; k++)
                alpha[k] /= 3;
        } else if (best_ind > 3) {
            for (int k = 0; k < 5; k++)
                alpha[k] *= 2;
        } else if (best_ind == -1) {
            MT_CHECK(alpha[4] <= 1); /* not reached by this problem */
            for (int i = 0; i < 5; i++)
                for (int k = i; k < 5; k++)
                    alpha[k] *= 1.5;
        } else {
            double gap = 0;
            for (int k = 1; k < 5; k++)
                gap = fmax(gap, alpha[k] / alpha[k - 1]);
            if (gap > 5)
                for (int k = 0; k < 5; k++)
                    alpha[k] = pow(alpha[k], .99) * pow(best_alpha, .01);
        }
    }
}

MT_TEST(default_search_matches_float64_reference)
{
    double w[LS_D], b, wr[LS_D], br;
    const float *X, *y;
    ls_train("ref", 1.0, "updates_per_batch: 12, train_iteration_mode: 'sequential',", 1, w, &b, &X,
             &y);
    reference_default_search(X, y, 12, wr, &br);
    printf("after 12 updates: b %.9g (reference %.9g), w0 %.9g (%.9g)\n", b, br, w[0], wr[0]);
    for (int j = 0; j < LS_D; j++)
        MT_CHECK_CLOSE(w[j], wr[j], 1e-5, 1e-4);
    MT_CHECK_CLOSE(b, br, 1e-5, 1e-4);
}

MT_TEST(conjugate_beats_steepest_descent)
{
    double w[LS_D], b, ws[LS_D], bs;
    const float *X, *y;
    const char *common = "line_search_mode: 'exhaustive', updates_per_batch: 9,";
    char keys[256];
    snprintf(keys, sizeof(keys), "%s conjugate: 1,", common);
    double cg = ls_train("cmp_cg", 2.2, keys, 1, w, &b, &X, &y);
    double sd = ls_train("cmp_sd", 2.2, common, 1, w, &b, &X, &y);
    ls_solve(X, y, ws, &bs);
    double opt = ls_cost(X, y, ws, bs);
    printf("after 9 updates: conjugate gap %.3g, steepest descent gap %.3g\n", cg - opt, sd - opt);
    MT_CHECK(cg - opt < 0.1 * (sd - opt));
}

/* ---------------------------------------------------------------- line searches never go up */

typedef struct log_capture {
    int32_t n, bad, batches;
    double first, last;
    char worst[256];
} log_capture;

static void capture_log(mt_log_level level, const char *msg, void *user)
{
    log_capture *c = user;
    double a, b;
    long long ep, ba, it;
    if (sscanf(msg, "BGD: epoch %lld batch %lld iteration %lld: objective %lf -> %lf", &ep, &ba,
               &it, &a, &b) != 5)
        return;
    if (c->n == 0) c->first = a;
    c->last = b;
    if (it == 1) c->batches++;
    if (!(b <= a)) {
        c->bad++;
        snprintf(c->worst, sizeof(c->worst), "%s", msg);
    }
    c->n++;
}

static void softmax_job(const char *tag, const char *keys, char *ck, size_t ckcap)
{
    const char *dir = mt_test_tmpdir();
    char job[600], text[4096];
    snprintf(job, sizeof(job), "%s/%s.yaml", dir, tag);
    snprintf(ck, ckcap, "%s/%s.ckpt", dir, tag);
    snprintf(text, sizeof(text),
             "!obj:pylearn2.train.Train {\n"
             "  dataset: &train !obj:FashionMNIST { which_set: 'train', start: 0, stop: 2000,\n"
             "                                       path: '" FASHION_DIR "' },\n"
             "  model: !obj:pylearn2.models.softmax_regression.SoftmaxRegression {\n"
             "    n_classes: 10, irange: 0., nvis: 784 },\n"
             "  algorithm: !obj:pylearn2.training_algorithms.bgd.BGD {\n"
             "    batch_size: 1000,\n"
             "    %s\n"
             "    monitoring_dataset: { 'train': *train },\n"
             "    termination_criterion: !obj:pylearn2.termination_criteria.EpochCounter {\n"
             "      max_epochs: 2 },\n"
             "  },\n"
             "  save_path: '%s',\n"
             "  save_freq: 1,\n"
             "}\n",
             keys, ck);
    write_file(job, text);
    log_capture cap;
    memset(&cap, 0, sizeof(cap));
    mt_log_level old = mt_log_get_level();
    mt_log_set_callback(capture_log, &cap);
    mt_log_set_level(MT_LOG_DEBUG);
    run_job(job);
    mt_log_set_callback(NULL, NULL);
    mt_log_set_level(old);
    printf("%s: %d line searches over %d batches, objective %.6g -> %.6g\n", tag, (int)cap.n,
           (int)cap.batches, cap.first, cap.last);
    if (cap.bad)
        mt_test_fail(__FILE__, __LINE__, "%d line searches went up: %s", cap.bad, cap.worst);
    MT_CHECK_EQ_INT(cap.batches, 4); /* 2 epochs of 2 batches */
    MT_CHECK(cap.n >= 8);
    MT_CHECK(cap.last < 0.8 * cap.first);
}

static void need_fashion(void)
{
    FILE *f = fopen(FASHION_DIR "/train-images-idx3-ubyte.gz", "rb");
    if (!f) MT_SKIP("Fashion-MNIST not installed (" FASHION_DIR ")");
    fclose(f);
}

MT_TEST(softmax_default_search_never_increases)
{
    need_fashion();
    char ck[600];
    softmax_job("sr_default", "updates_per_batch: 4,", ck, sizeof(ck));
    double obj[8], step[8];
    int32_t n = ckpt_channel(ck, "train_objective", obj, 8);
    MT_CHECK_EQ_INT(n, 3);
    MT_CHECK(obj[1] < obj[0] && obj[2] < obj[1]);
    MT_CHECK_CLOSE(obj[0], log(10.0), 1e-5, 0); /* zero weights: uniform predictions */
    MT_CHECK_EQ_INT(ckpt_channel(ck, "ave_step_size", step, 8), 3);
    MT_CHECK(step[0] == 0 && step[2] > 0);
}

MT_TEST(softmax_exhaustive_conjugate_never_increases)
{
    need_fashion();
    char ck[600];
    softmax_job("sr_exhaustive",
                "updates_per_batch: 4, line_search_mode: 'exhaustive', conjugate: 1,", ck,
                sizeof(ck));
    double obj[8];
    MT_CHECK_EQ_INT(ckpt_channel(ck, "train_objective", obj, 8), 3);
    MT_CHECK(obj[2] < obj[1] && obj[1] < obj[0]);
}

/* ---------------------------------------------------------------- resume */

static void resume_job(const char *tag, char *ck, size_t ckcap, char *job, size_t jobcap)
{
    const char *dir = mt_test_tmpdir();
    char text[4096];
    snprintf(job, jobcap, "%s/%s.yaml", dir, tag);
    snprintf(ck, ckcap, "%s/%s.ckpt", dir, tag);
    snprintf(text, sizeof(text),
             "!obj:pylearn2.train.Train {\n"
             "  dataset: !obj:FashionMNIST { which_set: 'train', start: 0, stop: 900,\n"
             "                               path: '" FASHION_DIR "' },\n"
             "  model: !obj:pylearn2.models.mlp.MLP {\n"
             "    nvis: 784, seed: [1, 2, 3],\n"
             "    layers: [ !obj:pylearn2.models.mlp.Tanh { layer_name: 'h0', dim: 16, "
             "irange: 0.05 },\n"
             "              !obj:pylearn2.models.mlp.Softmax { layer_name: 'y', n_classes: 10, "
             "irange: 0.05 } ] },\n"
             "  algorithm: !obj:pylearn2.training_algorithms.bgd.BGD {\n"
             "    batch_size: 300, updates_per_batch: 3, conjugate: 1,\n"
             "    reset_alpha: 0, reset_conjugate: 0,\n"
             "    termination_criterion: !obj:pylearn2.termination_criteria.EpochCounter {\n"
             "      max_epochs: 2 },\n"
             "  },\n"
             "  save_path: '%s',\n"
             "  save_freq: 1,\n"
             "}\n",
             ck);
    write_file(job, text);
}

MT_TEST(resume_after_sigterm_is_bit_identical)
{
    need_fashion();
    char ck1[600], ck2[600], job1[600], job2[600];
    resume_job("straight", ck1, sizeof(ck1), job1, sizeof(job1));
    resume_job("stopped", ck2, sizeof(ck2), job2, sizeof(job2));
    run_job(job1);
    setenv("MLTRAIN_TEST_SIGNAL_AFTER_BATCHES", "4", 1); /* mid-epoch 2 */
    mt_train_result r;
    run_job_opts(job2, MT_RESUME_NO, &r);
    unsetenv("MLTRAIN_TEST_SIGNAL_AFTER_BATCHES");
    MT_CHECK(r.interrupted != 0);
    run_job_opts(job2, MT_RESUME_YES, &r);
    MT_CHECK(r.resumed);
    static const char *const names[] = {"params/h0_W", "params/h0_b", "params/y_W", "params/y_b"};
    static const int64_t sizes[] = {784 * 16, 16, 160, 10};
    for (int i = 0; i < 4; i++) {
        double *a = malloc((size_t)sizes[i] * sizeof(double));
        double *b = malloc((size_t)sizes[i] * sizeof(double));
        MT_CHECK(a && b);
        ckpt_values(ck1, names[i], a, sizes[i]);
        ckpt_values(ck2, names[i], b, sizes[i]);
        for (int64_t k = 0; k < sizes[i]; k++)
            if (a[k] != b[k])
                mt_test_fail(__FILE__, __LINE__, "%s[%lld]: %.9g uninterrupted vs %.9g resumed",
                             names[i], (long long)k, a[k], b[k]);
        free(a);
        free(b);
    }
}

/* ---------------------------------------------------------------- ScaleStep */

MT_TEST(scale_step_extension_mixes_parameters)
{
    need_fashion();
    const char *dir = mt_test_tmpdir();
    char job[600], ck[600], text[4096];
    snprintf(job, sizeof(job), "%s/scale.yaml", dir);
    snprintf(ck, sizeof(ck), "%s/scale.ckpt", dir);
    /* ScaleStep runs at the first monitor call (before training): scale_step becomes
     * max(1 * 1e-30, 0) = 1e-30, so every batch leaves the parameters at their old value
     * (up to 1e-30 of the step). */
    snprintf(text, sizeof(text),
             "!obj:pylearn2.train.Train {\n"
             "  dataset: &train !obj:FashionMNIST { which_set: 'train', start: 0, stop: 500,\n"
             "                                       path: '" FASHION_DIR "' },\n"
             "  model: !obj:pylearn2.models.softmax_regression.SoftmaxRegression {\n"
             "    n_classes: 10, irange: 0., nvis: 784 },\n"
             "  algorithm: !obj:pylearn2.training_algorithms.bgd.BGD {\n"
             "    batch_size: 250, updates_per_batch: 2,\n"
             "    monitoring_dataset: { 'train': *train },\n"
             "    termination_criterion: !obj:pylearn2.termination_criteria.EpochCounter {\n"
             "      max_epochs: 2 },\n"
             "  },\n"
             "  extensions: [ !obj:pylearn2.training_algorithms.bgd.ScaleStep {\n"
             "                  scale: 1e-30, min_value: 0. } ],\n"
             "  save_path: '%s',\n"
             "  save_freq: 1,\n"
             "}\n",
             ck);
    write_file(job, text);
    run_job(job);
    double *w = malloc(7840 * sizeof(double)), sc[8], obj[8];
    MT_CHECK(w != NULL);
    ckpt_values(ck, "params/y_W", w, 7840);
    double mx = 0;
    for (int i = 0; i < 7840; i++)
        mx = fmax(mx, fabs(w[i]));
    free(w);
    MT_CHECK(mx < 1e-20);
    MT_CHECK_EQ_INT(ckpt_channel(ck, "scale_step", sc, 8), 3);
    MT_CHECK(sc[0] == 1.0);
    MT_CHECK_CLOSE(sc[1], 1e-30, 0, 1e-6);
    MT_CHECK_EQ_INT(ckpt_channel(ck, "train_objective", obj, 8), 3);
    MT_CHECK_CLOSE(obj[2], log(10.0), 1e-5, 0);
}

/* ---------------------------------------------------------------- errors */

static char g_summary[4096];

static mt_status dry_run_text(const char *tag, const char *algo)
{
    const char *dir = mt_test_tmpdir();
    char job[600], text[4096];
    snprintf(job, sizeof(job), "%s/%s.yaml", dir, tag);
    snprintf(text, sizeof(text),
             "!obj:pylearn2.train.Train {\n"
             "  dataset: !obj:DenseDesignMatrix { X: [[1., 2.], [3., 4.]], y: [0, 1] },\n"
             "  model: !obj:SoftmaxRegression { n_classes: 2, irange: 0., nvis: 2 },\n"
             "  algorithm: !obj:BGD {\n"
             "    batch_size: 2,\n"
             "    %s\n"
             "  },\n"
             "}\n",
             algo);
    write_file(job, text);
    mt_train_options o;
    mt_train_options_init(&o);
    o.monitor_log = false;
    mt_job *j = NULL;
    mt_status st = mt_job_load(&j, job, &o);
    if (!st) {
        mt_strbuf sb;
        mt_strbuf_init(&sb);
        st = mt_job_dry_run(j, &sb);
        snprintf(g_summary, sizeof(g_summary), "%s", sb.data ? sb.data : "");
        mt_strbuf_deinit(&sb);
    }
    mt_job_free(j);
    return st;
}

MT_TEST(bad_settings_are_errors)
{
    MT_CHECK_OK(dry_run_text("ok", "line_search_mode: 'exhaustive', init_alpha: [0.1, 0.5],"));
    if (!strstr(g_summary, "BGD: batch_size 2, updates_per_batch 10, line search exhaustive "
                           "(init_alpha 0.1 0.5)"))
        mt_test_fail(__FILE__, __LINE__, "dry-run summary lacks the BGD line:\n%s", g_summary);
    MT_CHECK_ERR(dry_run_text("mode", "line_search_mode: 'golden',"), MT_ERR_INVALID,
                 "line_search_mode must be null");
    MT_CHECK_ERR(dry_run_text("mode", "line_search_mode: 'golden',"), MT_ERR_INVALID,
                 "mode.yaml:6:");
    MT_CHECK_ERR(dry_run_text("alpha", "init_alpha: [0.1, 0.05],"), MT_ERR_INVALID,
                 "init_alpha must be increasing");
    MT_CHECK_ERR(dry_run_text("alpha0", "init_alpha: [0., 0.05],"), MT_ERR_RANGE, "> 0");
    MT_CHECK_ERR(dry_run_text("upb", "updates_per_batch: 0,"), MT_ERR_RANGE,
                 "updates_per_batch must be >= 1");
    MT_CHECK_ERR(dry_run_text("key", "conjugat: 1,"), MT_ERR_INVALID, "conjugate");
}

MT_TEST(nonfinite_gradient_names_epoch_batch_and_node)
{
    static float X[LS_N * LS_D], y[LS_N];
    make_regression(X, y, 1.0, 7);
    X[5 * LS_D + 3] = NAN; /* one bad feature in the first batch */
    const char *dir = mt_test_tmpdir();
    char xp[600], yp[600], job[600], text[4096];
    snprintf(xp, sizeof(xp), "%s/nan_X.npy", dir);
    snprintf(yp, sizeof(yp), "%s/nan_y.npy", dir);
    snprintf(job, sizeof(job), "%s/nan.yaml", dir);
    int64_t dx[2] = {LS_N, LS_D}, dy[2] = {LS_N, 1};
    save_npy(xp, 2, dx, X);
    save_npy(yp, 2, dy, y);
    snprintf(text, sizeof(text),
             "!obj:Train {\n"
             "  dataset: !obj:NpyDataset { file: '%s', y_file: '%s' },\n"
             "  model: !obj:MLP { nvis: %d, layers: [ !obj:Linear { layer_name: 'y', dim: 1, "
             "irange: 0. } ] },\n"
             "  algorithm: !obj:BGD { batch_size: %d, train_iteration_mode: 'sequential',\n"
             "    termination_criterion: !obj:EpochCounter { max_epochs: 1 } },\n"
             "}\n",
             xp, yp, LS_D, LS_N);
    write_file(job, text);
    mt_train_options o;
    mt_train_options_init(&o);
    o.monitor_log = false;
    o.handle_signals = false;
    mt_job *j = NULL;
    MT_CHECK_OK(mt_job_load(&j, job, &o));
    mt_train_result r;
    mt_status st = mt_job_run(j, &r);
    mt_job_free(j);
    MT_CHECK(st == MT_ERR_RANGE);
    const char *msg = mt_last_error();
    printf("%s\n", msg);
    MT_CHECK(strstr(msg, "epoch 1, batch 1") != NULL);
    MT_CHECK(strstr(msg, "non-finite") != NULL);
    MT_CHECK(strstr(msg, "first non-finite value") != NULL);
}
