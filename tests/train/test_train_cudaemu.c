/* The repository's training jobs (jobs/fashion_mnist_mlp.yaml and jobs/fashion_mnist_conv.yaml,
 * unchanged) on the CUDA emulation device cudaemu:0 against the host: one epoch limited to 3
 * SGD steps (and 3 batches per monitoring set), then every array of the two checkpoints
 * (parameters, momentum velocities) and the last monitor record must agree to float32 rounding
 * (built without HDF5, the monitor record alone: the job copies then save no checkpoints). The training function,
 * the monitor's functions and the updates are compiled through the CUDA code path, so every
 * kernel of these jobs is compiled by NVRTC for sm_80 and sm_90 and executed; the case prints
 * the count. Needs Debian's Fashion-MNIST (SKIP otherwise). With MLTRAIN_TEST_DEVICE=cuda:0
 * (the `cuda` label's registration) the same comparison runs on a real GPU (SKIP without). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "mltrain/mt_config.h"
#include "mt_test.h"
#include "mt_test_cudaemu.h"
#include "train_impl.h"

#define FASHION "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"

static const char *test_device(void)
{
    const char *d = getenv("MLTRAIN_TEST_DEVICE");
    return d && *d ? d : "cudaemu:0";
}

static void report(void)
{
    if (strncmp(test_device(), "cudaemu", 7) != 0) return;
    mt_test_cudaemu_report();
}

/* Copies the job file into the test directory as <stem>.yaml (so its checkpoints land there)
 * and runs it on device for one epoch of 3 batches. */
/* The last monitor record of a run (without HDF5 the runs are compared by their channels). */
typedef struct channels {
    int32_t n;
    char names[64][96];
    double values[64];
} channels;

static mt_status on_monitor(const mt_train_monitor_report *r, void *user, bool *stop)
{
    channels *c = user;
    c->n = r->n_channels < 64 ? r->n_channels : 64;
    for (int32_t i = 0; i < c->n; i++) {
        snprintf(c->names[i], sizeof c->names[i], "%s", r->channel_names[i]);
        c->values[i] = r->channel_values[i];
    }
    *stop = false;
    return MT_OK;
}

/* Copies the job file into the test directory as <stem>.yaml (so its checkpoints land there)
 * and runs it on device for one epoch of 3 batches. Built without HDF5 (no checkpoints), the
 * copy leaves out save_path, save_freq and the MonitorBasedSaveBest extension. */
static void run_job(const char *job, const char *stem, const char *device, channels *ch)
{
    char src[1024], dst[1024];
    snprintf(src, sizeof src, "%s/jobs/%s", MT_SOURCE_DIR, job);
    snprintf(dst, sizeof dst, "%s/%s.yaml", mt_test_tmpdir(), stem);
    FILE *in = fopen(src, "r"), *out = fopen(dst, "w");
    MT_CHECK(in != NULL && out != NULL);
    char line[4096];
    bool skipping = false;
    while (fgets(line, sizeof line, in)) {
        if (!MT_HAVE_HDF5) {
            if (strstr(line, "MonitorBasedSaveBest")) skipping = true;
            if (skipping) {
                if (strcmp(line, "        },\n") == 0) skipping = false;
                continue;
            }
            if (strstr(line, "save_path:") || strstr(line, "save_freq:")) continue;
        }
        MT_CHECK(fputs(line, out) >= 0);
    }
    fclose(in);
    fclose(out);
    mt_train_options o;
    mt_train_options_init(&o);
    o.device = device;
    o.max_epochs = 1;
    o.limit_batches = 3;
    o.handle_signals = false;
    o.monitor_log = false;
    o.on_monitor = on_monitor;
    o.on_monitor_user = ch;
    mt_job *j = NULL;
    MT_CHECK_OK(mt_job_load(&j, dst, &o));
    mt_train_result r;
    double t0 = mt_now_seconds();
    mt_status st = mt_job_run(j, &r);
    if (st != MT_OK)
        mt_test_fail(__FILE__, __LINE__, "%s on %s: %s", job, device, mt_last_error());
    printf("%s on %s: %lld epoch(s) in %.2f s\n", job, device, (long long)r.epochs_seen,
           mt_now_seconds() - t0);
    MT_CHECK_EQ_INT(r.epochs_seen, 1);
    mt_job_free(j);
}

static void compare_channels(const channels *a, const channels *b)
{
    MT_CHECK(a->n > 0);
    MT_CHECK_EQ_INT(a->n, b->n);
    for (int32_t i = 0; i < a->n; i++) {
        MT_CHECK_STR_EQ(a->names[i], b->names[i]);
        if (!mt_test_close(b->values[i], a->values[i], 1e-4, 1e-4))
            mt_test_fail(__FILE__, __LINE__, "channel %s: host %.9g, %s %.9g", a->names[i],
                         a->values[i], test_device(), b->values[i]);
    }
    printf("%d monitor channels agree\n", (int)a->n);
}

static void compare_checkpoints(const char *a_stem, const char *b_stem)
{
    char p[1200];
    mt_ckpt *a = NULL, *b = NULL;
    snprintf(p, sizeof p, "%s/%s.ckpt", mt_test_tmpdir(), a_stem);
    MT_CHECK_OK(mt_ckpt_read(&a, p));
    snprintf(p, sizeof p, "%s/%s.ckpt", mt_test_tmpdir(), b_stem);
    MT_CHECK_OK(mt_ckpt_read(&b, p));
    int32_t n = mt_ckpt_n_arrays(a), nparams = 0;
    MT_CHECK_EQ_INT(n, mt_ckpt_n_arrays(b));
    double worst = 0;
    for (int32_t k = 0; k < n; k++) {
        const char *name = mt_ckpt_array_name(a, k);
        mt_array x = {0}, y = {0}, xd = {0}, yd = {0};
        MT_CHECK_OK(mt_ckpt_get_array(a, name, &x));
        MT_CHECK_OK(mt_ckpt_get_array(b, name, &y));
        int64_t m = mt_array_size(&x);
        MT_CHECK_EQ_INT(m, mt_array_size(&y));
        MT_CHECK_OK(mt_array_astype(&xd, &x, MT_FLOAT64));
        MT_CHECK_OK(mt_array_astype(&yd, &y, MT_FLOAT64));
        double *hx = malloc((size_t)m * 8 + 8), *hy = malloc((size_t)m * 8 + 8);
        MT_CHECK_OK(mt_array_to_host(hx, (size_t)m * 8, &xd));
        MT_CHECK_OK(mt_array_to_host(hy, (size_t)m * 8, &yd));
        for (int64_t i = 0; i < m; i++) {
            if (!mt_test_close(hy[i], hx[i], 1e-5, 1e-4))
                mt_test_fail(__FILE__, __LINE__, "%s[%lld]: host %.9g, %s %.9g", name,
                             (long long)i, hx[i], test_device(), hy[i]);
            double dlt = hx[i] - hy[i];
            if (dlt < 0) dlt = -dlt;
            if (dlt > worst) worst = dlt;
        }
        if (strncmp(name, "params/", 7) == 0) nparams++;
        free(hx);
        free(hy);
        mt_array *all[] = {&x, &y, &xd, &yd};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) mt_array_clear(all[i]);
    }
    printf("%d checkpoint arrays (%d parameters) agree; largest difference %.3g\n", (int)n,
           (int)nparams, worst);
    MT_CHECK(nparams >= 6);
    mt_ckpt_free(a);
    mt_ckpt_free(b);
}

static void job_case(const char *job)
{
    struct stat sb;
    if (stat(FASHION, &sb) != 0) MT_SKIP("Fashion-MNIST not installed");
    mt_device *d = NULL;
    const char *dev = test_device();
    mt_status st = mt_device_open(&d, dev);
    if (st == MT_ERR_NOT_FOUND) MT_SKIP(mt_last_error());
    MT_CHECK_OK(st);
    channels *ch = calloc(2, sizeof *ch);
    MT_CHECK(ch != NULL);
    run_job(job, "host", "host", &ch[0]);
    run_job(job, "emu", dev, &ch[1]);
    compare_channels(&ch[0], &ch[1]);
    free(ch);
    if (MT_HAVE_HDF5) compare_checkpoints("host", "emu");
    mt_device_release(d);
    report();
}

MT_TEST(fashion_mnist_mlp_matches_host) { job_case("fashion_mnist_mlp.yaml"); }
MT_TEST(fashion_mnist_conv_matches_host) { job_case("fashion_mnist_conv.yaml"); }
