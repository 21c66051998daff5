/* bfloat16 training on a device against the host (docs/training.md "Mixed precision"): the
 * MLP of tests/train/mpi_mlp.yaml, 3 SGD steps in bfloat16 on the CUDA emulation device
 * cudaemu:0 (kernels compiled by NVRTC and run as C++; MLTRAIN_TEST_DEVICE=cuda:0 for a real
 * GPU, the `cuda` label's registration) and on the host. Stated tolerance: both devices
 * compute the bfloat16 products in float32 and round once, but sum in different orders, so an
 * activation occasionally rounds to the neighbouring bfloat16 (2^-8 relative); after 3 steps
 * with lr 0.05 the float32 masters differ by far less than 1e-3 in relative L2 norm (measured on
 * cudaemu:0: bit-equal; the difference is printed). SKIP when the device is absent or
 * Fashion-MNIST is not installed. */
#include <stdio.h>
#include <stdlib.h>

#include "mltrain/mt_config.h"
#include "mt_test.h"
#include "test_train_mixed.h"

MT_TEST(bfloat16_device_matches_host)
{
    if (!MT_HAVE_HDF5) MT_SKIP("compares checkpoints: this build has no HDF5");
    const char *dev = getenv("MLTRAIN_TEST_DEVICE");
    if (!dev || !*dev) dev = "cudaemu:0";
    mt_device *d = NULL;
    mt_status st = mt_device_open(&d, dev);
    if (st == MT_ERR_NOT_FOUND || st == MT_ERR_NOT_BUILT || st == MT_ERR_UNSUPPORTED)
        MT_SKIP(mt_last_error());
    MT_CHECK_OK(st);
    mt_device_release(d);
    mt_mixed_run h, e;
    mt_mixed_train(&h, "dev_host", "bfloat16", 0, "host", 3, 1);
    mt_mixed_train(&e, "dev_dev", "bfloat16", 0, dev, 3, 1);
    bool same = false;
    double worst = mt_mixed_compare(h.ckpt, e.ckpt, 1e-3, &same);
    printf("bfloat16, 3 steps, %s vs host: %s, parameters within %.3g relative L2 "
           "(tolerance 1e-3)\n", dev, same ? "bit-equal" : "not bit-equal", worst);
}
