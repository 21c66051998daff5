/* Mixed-precision training (docs/training.md "Mixed precision") on the host: the small MLP of
 * tests/train/mpi_mlp.yaml (6400 Fashion-MNIST examples, batch 64, momentum SGD, max_col_norm,
 * monitored on 1000 validation examples) trained for 200 steps in float32 and in bfloat16
 * (and float16 with its dynamic loss scaling).
 *
 * Stated tolerances, bfloat16 against float32: bfloat16 keeps 8 significant bits, so every
 * activation, product and per-example cost carries a relative rounding error up to 2^-9
 * (0.2%), and the gradients about as much; the float32 masters keep the updates exact. The
 * two runs start from the same weights and the same batches and follow slightly different
 * trajectories:
 *   - after epoch 1 (100 steps, momentum 0.5): validation objective within 1%,
 *     misclassification within 0.01, every parameter within 0.01 in relative L2 norm
 *     ||b - a|| / ||a|| (measured: 0.1%, 0.001, and at most 0.0043), NOT bit-equal (the
 *     precision took effect);
 *   - after epoch 2 (200 steps; MomentumAdjustor ramps momentum to 0.9) this job amplifies
 *     any rounding difference: float16 (11 bits, 8x finer than bfloat16) moves the epoch-2
 *     objective by 8% and the parameters by up to 0.077 relative L2, bfloat16 by 6% and
 *     0.127, and float32 itself swings by 13% between its epochs 3 and 4. So: objective
 *     within 10%, misclassification within 0.03 (30 of the 1000 examples), parameters within
 *     0.25 relative L2 (the measured values are printed);
 *   - the validation objective decreases by at least 30% from epoch 0 in both runs;
 *   - the checkpoint holds float32 parameters and optimizer state (the masters);
 *   - the training function's schedule (logged at debug level) computes every matrix product
 *     in bfloat16.
 * float16 trains one epoch (100 steps) with the epoch-1 tolerances (measured: parameters
 * within 0.0018 relative L2). With an initial loss scale of 2^30 the first backward passes
 * overflow float16: those steps are skipped and halve the scale, so
 * the final scale is below 2^30 and training still converges. The device comparison (the same
 * bfloat16 run on cudaemu:0 or cuda:0) is in test_train_mixed_device.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "mt_test.h"
#include "test_train_mixed.h"

/* ---------------------------------------------------------------- shared helpers */

static mt_status on_monitor(const mt_train_monitor_report *r, void *user, bool *stop)
{
    mt_mixed_run *ro = user;
    (void)stop;
    if (ro->n >= 8) return MT_OK;
    ro->obj[ro->n] = NAN;
    ro->mis[ro->n] = NAN;
    for (int32_t i = 0; i < r->n_channels; i++) {
        if (!strcmp(r->channel_names[i], "valid_objective")) ro->obj[ro->n] = r->channel_values[i];
        if (!strcmp(r->channel_names[i], "valid_y_misclass")) ro->mis[ro->n] = r->channel_values[i];
    }
    ro->n++;
    return MT_OK;
}

void mt_mixed_train(mt_mixed_run *ro, const char *stem, const char *precision, double loss_scale,
                    const char *device, int64_t limit_batches, int64_t epochs)
{
    memset(ro, 0, sizeof(*ro));
    struct stat sb;
    if (stat(MT_MIXED_FASHION, &sb) != 0) MT_SKIP("Fashion-MNIST not installed");
    char job[1024], dir[1024], rdir[1100], ep[32];
    snprintf(job, sizeof job, "%s/tests/train/mpi_mlp.yaml", MT_SOURCE_DIR);
    snprintf(dir, sizeof dir, "%s/%s", mt_test_tmpdir(), stem);
    snprintf(rdir, sizeof rdir, "%s.run", dir);
    snprintf(ep, sizeof ep, "%lld", (long long)epochs);
    mkdir(dir, 0777);
    mt_cfg_var vars[4] = {{"train_stop", "6400"}, {"batch_size", "64"}, {"max_epochs", ep},
                          {"save_path", dir}};
    mt_train_options o;
    mt_train_options_init(&o);
    o.n_params = 4;
    o.params = vars;
    o.device = device;
    o.limit_batches = limit_batches;
    o.handle_signals = false;
    o.monitor_log = false;
    o.run_dir = rdir;
    o.precision = precision;
    o.loss_scale = loss_scale;
    o.on_monitor = on_monitor;
    o.on_monitor_user = ro;
    mt_job *j = NULL;
    MT_CHECK_OK(mt_job_load(&j, job, &o));
    mt_train_result r;
    double t0 = mt_now_seconds();
    mt_status st = mt_job_run(j, &r);
    if (st != MT_OK)
        mt_test_fail(__FILE__, __LINE__, "%s (%s on %s): %s", stem,
                     precision ? precision : "float32", device, mt_last_error());
    ro->seconds = mt_now_seconds() - t0;
    MT_CHECK_EQ_INT(r.epochs_seen, epochs);
    mt_job_free(j);
    snprintf(ro->ckpt, sizeof ro->ckpt, "%s/final.ckpt", dir);
    printf("%-12s %-8s on %-10s %.2f s; valid objective", stem, precision ? precision : "float32",
           device, ro->seconds);
    for (int32_t i = 0; i < ro->n; i++) printf(" %.4f", ro->obj[i]);
    printf(", misclass");
    for (int32_t i = 0; i < ro->n; i++) printf(" %.3f", ro->mis[i]);
    printf("\n");
}

double mt_mixed_compare(const char *a_path, const char *b_path, double tol_rel, bool *bit_equal)
{
    mt_ckpt *a = NULL, *b = NULL;
    MT_CHECK_OK(mt_ckpt_read(&a, a_path));
    MT_CHECK_OK(mt_ckpt_read(&b, b_path));
    int32_t n = mt_ckpt_n_arrays(a), nparams = 0;
    MT_CHECK_EQ_INT(n, mt_ckpt_n_arrays(b));
    double worst = 0;
    *bit_equal = true;
    for (int32_t k = 0; k < n; k++) {
        const char *name = mt_ckpt_array_name(a, k);
        if (strncmp(name, "params/", 7) != 0) continue;
        nparams++;
        mt_array x = {0}, y = {0};
        MT_CHECK_OK(mt_ckpt_get_array(a, name, &x));
        MT_CHECK_OK(mt_ckpt_get_array(b, name, &y));
        MT_CHECK(x.dtype == MT_FLOAT32 && y.dtype == MT_FLOAT32);
        int64_t m = mt_array_size(&x);
        MT_CHECK_EQ_INT(m, mt_array_size(&y));
        float *hx = malloc((size_t)m * 4 + 4), *hy = malloc((size_t)m * 4 + 4);
        MT_CHECK(hx && hy);
        MT_CHECK_OK(mt_array_to_host(hx, (size_t)m * 4, &x));
        MT_CHECK_OK(mt_array_to_host(hy, (size_t)m * 4, &y));
        double nx = 0, nd = 0, dmax = 0;
        for (int64_t i = 0; i < m; i++) {
            double dl = (double)hx[i] - (double)hy[i];
            nx += (double)hx[i] * (double)hx[i];
            nd += dl * dl;
            dmax = fmax(dmax, fabs(dl));
            if (hx[i] != hy[i]) *bit_equal = false;
        }
        double rel = nx > 0 ? sqrt(nd / nx) : sqrt(nd);
        printf("  %-14s ||a - b|| / ||a|| = %.4g (largest element difference %.4g)\n", name, rel,
               dmax);
        if (rel > worst) worst = rel;
        if (!(rel <= tol_rel))
            mt_test_fail(__FILE__, __LINE__, "%s: ||a - b|| / ||a|| = %.4g (tolerance %.3g)",
                         name, rel, tol_rel);
        free(hx);
        free(hy);
        mt_array_clear(&x);
        mt_array_clear(&y);
    }
    MT_CHECK(nparams >= 4);
    mt_ckpt_free(a);
    mt_ckpt_free(b);
    return worst;
}

/* ---------------------------------------------------------------- host cases */

static void check_converges(const mt_mixed_run *ro)
{
    MT_CHECK(ro->n >= 2);
    MT_CHECK(isfinite(ro->obj[ro->n - 1]));
    if (!(ro->obj[ro->n - 1] < 0.7 * ro->obj[0]))
        mt_test_fail(__FILE__, __LINE__, "valid objective %.4f -> %.4f: not 30%% lower",
                     ro->obj[0], ro->obj[ro->n - 1]);
}

/* Monitor record e (epoch e) of lo against ref's: objective within obj_rel (relative),
 * misclassification within mis_abs. */
static void check_close_to(const mt_mixed_run *lo, const mt_mixed_run *ref, int32_t e,
                           double obj_rel, double mis_abs)
{
    MT_CHECK_EQ_INT(lo->n, ref->n);
    MT_CHECK(e < ref->n);
    if (!(fabs(lo->mis[e] - ref->mis[e]) <= mis_abs))
        mt_test_fail(__FILE__, __LINE__, "epoch %d: valid misclass %.4f vs float32 %.4f "
                     "(tolerance %g)", (int)e, lo->mis[e], ref->mis[e], mis_abs);
    if (!(fabs(lo->obj[e] - ref->obj[e]) <= obj_rel * ref->obj[e]))
        mt_test_fail(__FILE__, __LINE__, "epoch %d: valid objective %.4f vs float32 %.4f "
                     "(tolerance %g%%)", (int)e, lo->obj[e], ref->obj[e], 100 * obj_rel);
}

/* Every array of the checkpoint (parameters, optimizer state) is float32. */
static void check_float32_masters(const char *path)
{
    mt_ckpt *c = NULL;
    MT_CHECK_OK(mt_ckpt_read(&c, path));
    int32_t n = mt_ckpt_n_arrays(c), n16 = 0;
    for (int32_t k = 0; k < n; k++) {
        mt_dtype dt;
        const char *name = mt_ckpt_array_name(c, k);
        MT_CHECK_OK(mt_ckpt_array_info(c, name, &dt, NULL, NULL, NULL));
        bool master = !strncmp(name, "params/", 7) || !strncmp(name, "optimizer/", 10);
        if (dt != MT_FLOAT32 && master) {
            printf("checkpoint array %s is %s\n", name, mt_dtype_name(dt));
            n16++;
        }
    }
    MT_CHECK_EQ_INT(n16, 0);
    mt_ckpt_free(c);
}

/* The debug log of SGD's setup: the schedule of the training function, one message per
 * line ("SGD: bfloat16 training function: LINE"). */
typedef struct log_capture {
    char *text;
    size_t len;
} log_capture;

static void capture(mt_log_level level, const char *msg, void *user)
{
    log_capture *lc = user;
    const char *p = strstr(msg, "training function: ");
    if (level != MT_LOG_DEBUG || !p) return;
    p += strlen("training function: ");
    size_t n = strlen(p);
    char *t = realloc(lc->text, lc->len + n + 2);
    if (!t) return;
    memcpy(t + lc->len, p, n);
    t[lc->len + n] = '\n';
    t[lc->len + n + 1] = 0;
    lc->text = t;
    lc->len += n + 1;
}

/* Lines of the schedule that run a matrix product, and those of them in dtype. */
static void count_products(const char *text, const char *dtype, int *n_all, int *n_dt)
{
    *n_all = *n_dt = 0;
    const char *p = text;
    while (p && *p) {
        const char *e = strchr(p, '\n');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        char line[1024];
        if (len >= sizeof line) len = sizeof line - 1;
        memcpy(line, p, len);
        line[len] = 0;
        /* schedule steps: "  [14] v127 = gemm{...}(v2, v4, v8) : bfloat16[?,64]  # ..." */
        bool step = strncmp(line, "  [", 3) == 0;
        if (step && (strstr(line, " = gemm") || strstr(line, " = matmul") ||
                     strstr(line, " = dot") || strstr(line, " = batched_matmul"))) {
            (*n_all)++;
                const char *ty = strstr(line, ") : ");
            if (ty && !strncmp(ty + 4, dtype, strlen(dtype))) (*n_dt)++;
        }
        p = e ? e + 1 : NULL;
    }
}

MT_TEST(bfloat16_mlp_close_to_float32)
{
    mt_mixed_run f32_1, b16_1, f32, b16;
    bool same = false;
    /* 100 steps (momentum 0.5): close */
    mt_mixed_train(&f32_1, "f32_1ep", NULL, 0, "host", 0, 1);
    mt_mixed_train(&b16_1, "bf16_1ep", "bfloat16", 0, "host", 0, 1);
    check_close_to(&b16_1, &f32_1, 1, 0.01, 0.01);
    double w1 = mt_mixed_compare(f32_1.ckpt, b16_1.ckpt, 0.01, &same);
    MT_CHECK(!same);
    /* 200 steps (momentum ramped to 0.9), with the training function's schedule logged */
    mt_mixed_train(&f32, "f32", NULL, 0, "host", 0, 2);
    log_capture lc = {NULL, 0};
    mt_log_level lvl = mt_log_get_level();
    mt_log_set_callback(capture, &lc);
    mt_log_set_level(MT_LOG_DEBUG);
    mt_mixed_train(&b16, "bf16", "bfloat16", 0, "host", 0, 2);
    mt_log_set_callback(NULL, NULL);
    mt_log_set_level(lvl);
    check_converges(&f32);
    check_converges(&b16);
    check_close_to(&b16, &f32, 2, 0.10, 0.03);
    double w2 = mt_mixed_compare(f32.ckpt, b16.ckpt, 0.25, &same);
    printf("bfloat16 vs float32: parameters within %.4f (100 steps, tolerance 0.01) and %.4f "
           "(200 steps, tolerance 0.25) relative L2\n", w1, w2);
    MT_CHECK(!same);
    check_float32_masters(b16.ckpt);
    MT_CHECK(lc.text != NULL);
    int n_all = 0, n_bf = 0;
    count_products(lc.text, "bfloat16", &n_all, &n_bf);
    printf("training function: %d matrix product steps, %d in bfloat16\n", n_all, n_bf);
    if (n_bf < 3 || n_bf < n_all) printf("%s\n", lc.text);
    /* the forward products of h0 and y and their backward products are all bfloat16 */
    MT_CHECK(n_bf >= 3);
    MT_CHECK_EQ_INT(n_bf, n_all);
    free(lc.text);
}

MT_TEST(float16_mlp_loss_scaling)
{
    mt_mixed_run f32, h16, big;
    mt_mixed_train(&f32, "f32_1ep", NULL, 0, "host", 0, 1);
    mt_mixed_train(&h16, "f16", "float16", 0, "host", 0, 1);
    check_converges(&f32);
    check_converges(&h16);
    check_close_to(&h16, &f32, 1, 0.01, 0.01);
    bool same = false;
    double worst = mt_mixed_compare(f32.ckpt, h16.ckpt, 0.01, &same);
    printf("float16 vs float32 after 100 steps: parameters within %.4f relative L2 "
           "(tolerance 0.01)\n", worst);
    MT_CHECK(!same);
    check_float32_masters(h16.ckpt);
    mt_ckpt *c = NULL;
    double s = 0;
    MT_CHECK_OK(mt_ckpt_read(&c, h16.ckpt));
    MT_CHECK_OK(mt_ckpt_get_double(c, "algorithm/loss_scale", &s));
    MT_CHECK_CLOSE(s, 1024.0, 0, 0); /* 100 finite steps: no overflow, no growth yet */
    mt_ckpt_free(c);

    /* 2^30: the first backward passes overflow float16 and are skipped */
    mt_mixed_train(&big, "f16_big", "float16", 1073741824.0, "host", 0, 1);
    MT_CHECK_OK(mt_ckpt_read(&c, big.ckpt));
    MT_CHECK_OK(mt_ckpt_get_double(c, "algorithm/loss_scale", &s));
    mt_ckpt_free(c);
    printf("float16 from loss scale 2^30: final scale %g\n", s);
    MT_CHECK(s < 1073741824.0 && s >= 1.0);
    check_converges(&big);
    /* a few skipped steps of 100: still within 0.05 of float32 */
    MT_CHECK(fabs(big.mis[big.n - 1] - f32.mis[f32.n - 1]) <= 0.05);
}

MT_TEST(precision_option_errors)
{
    mt_train_options o;
    mt_train_options_init(&o);
    char job[1024];
    snprintf(job, sizeof job, "%s/tests/train/mpi_mlp.yaml", MT_SOURCE_DIR);
    mt_job *j = NULL;
    o.precision = "float8";
    MT_CHECK_ERR(mt_job_load(&j, job, &o), MT_ERR_INVALID, "expected float32, bfloat16 or float16");
    o.precision = "bfloat16";
    o.loss_scale = 256;
    MT_CHECK_ERR(mt_job_load(&j, job, &o), MT_ERR_INVALID, "float16 only");
    o.precision = "float16";
    o.loss_scale = 0.5;
    MT_CHECK_ERR(mt_job_load(&j, job, &o), MT_ERR_RANGE, "loss scale 0.5");
    MT_CHECK(j == NULL);
}
