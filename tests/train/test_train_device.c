/* Training on another device (MLTRAIN_TEST_DEVICE, e.g. opencl:0:0; registered with the
 * opencl label): the parameters live on the device during training and are copied back for
 * checkpoints; the result matches the same job on the host to float32 rounding. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "mt_test.h"
#include "train_impl.h"

static const char *job_text =
    "!obj:Train {\n"
    "  dataset: &train !obj:FashionMNIST { which_set: 'train', start: 0, stop: 400 },\n"
    "  model: !obj:MLP { nvis: 784, layers: [\n"
    "    !obj:RectifiedLinear { layer_name: 'h0', dim: 16, irange: 0.05, max_col_norm: 1.9 },\n"
    "    !obj:Softmax { layer_name: 'y', n_classes: 10, irange: 0.05 } ] },\n"
    "  algorithm: !obj:SGD { batch_size: 50, learning_rate: 0.05,\n"
    "    learning_rule: !obj:Momentum { init_momentum: 0.5 },\n"
    "    monitoring_dataset: { 'train': *train },\n"
    "    termination_criterion: !obj:EpochCounter { max_epochs: 2 } },\n"
    "  save_path: '%s/%s.ckpt', save_freq: 1 }\n";

static void run_on(const char *name, const char *device)
{
    char path[512], text[2048];
    snprintf(path, sizeof(path), "%s/%s.yaml", mt_test_tmpdir(), name);
    snprintf(text, sizeof(text), job_text, mt_test_tmpdir(), name);
    FILE *f = fopen(path, "w");
    MT_CHECK(f != NULL);
    fputs(text, f);
    fclose(f);
    mt_train_options o;
    mt_train_options_init(&o);
    o.device = device;
    mt_job *job = NULL;
    MT_CHECK_OK(mt_job_load(&job, path, &o));
    mt_train_result r;
    MT_CHECK_OK(mt_job_run(job, &r));
    MT_CHECK_EQ_INT(r.epochs_seen, 2);
    mt_job_free(job);
}

MT_TEST(device_run_matches_host)
{
    struct stat sb;
    if (stat("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", &sb) != 0)
        MT_SKIP("Fashion-MNIST not installed");
    const char *dev = mt_test_device_name();
    mt_device *d = NULL;
    if (mt_device_open(&d, dev)) MT_SKIP("the test device cannot be opened");
    mt_device_release(d);
    run_on("host", "host");
    run_on("dev", dev);
    char p[600];
    snprintf(p, sizeof(p), "%s/host.ckpt", mt_test_tmpdir());
    mt_ckpt *a = NULL, *b = NULL;
    MT_CHECK_OK(mt_ckpt_read(&a, p));
    snprintf(p, sizeof(p), "%s/dev.ckpt", mt_test_tmpdir());
    MT_CHECK_OK(mt_ckpt_read(&b, p));
    const char *names[] = {"params/h0_W", "params/h0_b", "params/y_W", "params/y_b",
                           "optimizer/vel_h0_W"};
    for (int k = 0; k < 5; k++) {
        mt_array x, y;
        memset(&x, 0, sizeof(x));
        memset(&y, 0, sizeof(y));
        MT_CHECK_OK(mt_ckpt_get_array(a, names[k], &x));
        MT_CHECK_OK(mt_ckpt_get_array(b, names[k], &y));
        int64_t n = mt_array_size(&x);
        MT_CHECK_EQ_INT(n, mt_array_size(&y));
        float *hx = malloc((size_t)n * 4), *hy = malloc((size_t)n * 4);
        MT_CHECK_OK(mt_array_to_host(hx, (size_t)n * 4, &x));
        MT_CHECK_OK(mt_array_to_host(hy, (size_t)n * 4, &y));
        for (int64_t i = 0; i < n; i++)
            if (!mt_test_close(hx[i], hy[i], 1e-4, 1e-3))
                mt_test_fail(__FILE__, __LINE__, "%s[%lld]: host %g, %s %g", names[k],
                             (long long)i, hx[i], dev, hy[i]);
        free(hx);
        free(hy);
        mt_array_clear(&x);
        mt_array_clear(&y);
    }
    mt_ckpt_free(a);
    mt_ckpt_free(b);
}
