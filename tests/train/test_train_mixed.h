/* Shared helpers of the mixed-precision tests (test_train_mixed.c, test_train_mixed_device.c):
 * one run of tests/train/mpi_mlp.yaml and the comparison of two checkpoints' parameters. */
#ifndef MT_TEST_TRAIN_MIXED_H
#define MT_TEST_TRAIN_MIXED_H

#include <stdbool.h>
#include <stdint.h>

#include "mltrain/io.h"
#include "mltrain/train.h"

#define MT_MIXED_FASHION "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"

/* valid_objective / valid_y_misclass of each monitor record (epoch 0 first). */
typedef struct mt_mixed_run {
    int32_t n;
    double obj[8], mis[8];
    double seconds;
    char ckpt[1100]; /* the final checkpoint */
} mt_mixed_run;

/* Trains mpi_mlp.yaml (6400 examples, batch 64) for `epochs` epochs on device in precision
 * (NULL: float32), checkpoints under the test directory's folder `stem`; limit_batches 0 =
 * every batch. SKIPs without Fashion-MNIST. */
void mt_mixed_train(mt_mixed_run *ro, const char *stem, const char *precision, double loss_scale,
                    const char *device, int64_t limit_batches, int64_t epochs);
/* Fails unless every parameter (float32) of b is within tol_rel of a's in relative L2 norm
 * (||a - b|| / ||a||); returns the largest such ratio; *bit_equal: every parameter identical. */
double mt_mixed_compare(const char *a_path, const char *b_path, double tol_rel, bool *bit_equal);

#endif
