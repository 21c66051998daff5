/* Helpers of the model tests: a registry with the model components (and a test "!pkl" that
 * makes autoencoders), models from YAML text, compiled functions bound to a model's
 * parameters, host arrays and reference math in double. */
#ifndef MODEL_TEST_UTIL_H
#define MODEL_TEST_UTIL_H

#include <math.h>
#include <stdint.h>

#include "model_impl.h"
#include "mltrain/config.h"
#include "mltrain/jit.h"
#include "mltrain/jit_verify.h"
#include "mltrain/model.h"
#include "mt_test.h"

/* The host device (opened once per process). */
mt_device *mtt_host(void);
/* The registry (created once per process). */
mt_cfg_registry *mtt_registry(void);
/* A model from a YAML component text (checked: fails the test on error). */
mt_model *mtt_model(const char *yaml);
/* The status of building a model from text (no test failure); *out NULL on error. */
mt_status mtt_try_model(mt_model **out, const char *yaml);
/* Checks that building the model fails with code and a message containing needle. */
#define mtt_expect_error(yaml, code, needle) \
    mtt_expect_error_at(__FILE__, __LINE__, yaml, code, needle)
void mtt_expect_error_at(const char *file, int line, const char *yaml, mt_status code,
                         const char *needle);
/* The status of validating a model component text as a dry run does (mt_cfg_validate). */
mt_status mtt_validate_only(const char *text);
/* Sum of squares of parameter `name`'s host values. */
double mtt_param_sumsq(mt_model *m, const char *name);

/* Host float data of parameter `name` (fails the test when absent). */
float *mtt_param(mt_model *m, const char *name);
const mt_array *mtt_param_array(mt_model *m, const char *name);

/* A model in a fresh graph. labels: y is int64 labels (n_classes), else float targets of
 * y_dim columns (0: no targets). */
typedef struct mtt_ctx {
    mt_graph *g;
    mt_model *m;
    mt_model_graph mg;
    mt_dataset_info info;
} mtt_ctx;
void mtt_ctx_init(mtt_ctx *c, mt_model *m, bool labels, int64_t n_classes, int64_t y_dim,
                  uint64_t seed);
void mtt_ctx_clear(mtt_ctx *c); /* frees the graph (not the model) */

/* Compiles outputs with X (and y when with_y) as arguments in `mode`, binding every parameter
 * the function uses to the model's arrays. */
mt_function *mtt_compile(mtt_ctx *c, int32_t n_out, const mt_var *outs, bool with_y,
                         mt_mode mode);
/* Calls f on host X [n, dim] (and labels / targets); fills outs (caller clears). */
void mtt_call(mt_function *f, const float *X, int64_t n, int64_t dim, const int64_t *labels,
              const float *Y, int64_t y_dim, int32_t n_out, mt_array *outs);
/* Reads a float32 array into doubles (mt_malloc'd). */
double *mtt_to_double(const mt_array *a);
/* Evaluates a 0-d output. */
double mtt_scalar(const mt_array *a);

/* Deterministic pseudo-random test data in [-1, 1). */
void mtt_fill(float *x, int64_t n, uint64_t seed);

#endif
