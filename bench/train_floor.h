/* train_floor: a hand-written C training step for bench_train's MLP cases (the floor).
 *
 * The same SGD + Momentum step as the mltrain graph, written directly in C with the fewest
 * passes over memory this BLAS allows: gather the batch rows (memcpy), forward GEMMs with the
 * bias preloaded (beta = 1), ReLU in place, softmax + label crossentropy + its gradient in one
 * loop over the logits, backward GEMMs, the ReLU mask applied in place, bias gradients, and one
 * loop per parameter for v = mu v - lr g, p = p + v. No framework, no graph, no allocation per
 * step: the time any implementation on top of this cblas needs at least, so that ratios to
 * PyTorch can be read against what is possible on the machine. */
#ifndef MT_BENCH_TRAIN_FLOOR_H
#define MT_BENCH_TRAIN_FLOOR_H

#include <stdint.h>

typedef struct train_floor train_floor;

/* sizes[0..n_layers]: input first; ReLU hidden layers, softmax output. n_rows rows of random
 * data (uniform [0, 1)) and labels row % n_classes, visited in a shuffled order. */
train_floor *train_floor_new(const int64_t *sizes, int n_layers, int64_t batch, int64_t n_rows);
/* One step; returns the batch's mean cost. */
float train_floor_step(train_floor *t);
void train_floor_free(train_floor *t);

#endif
