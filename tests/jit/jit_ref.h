/* Helpers of the jit tests: making arrays from double values, reading them back, evaluating
 * graphs through the reference executor and comparing with per-dtype tolerances. */
#ifndef JIT_REF_H
#define JIT_REF_H

#include "mltrain/graph.h"
#include "mltrain/gpuarray.h"
#include "mltrain/jit.h"
#include "mt_test.h"

/* The device under test (MLTRAIN_TEST_DEVICE or host), opened once per process. */
mt_device *jt_dev(void);
/* New array of dtype dt on the test device holding vals (converted with NumPy casting). */
void jt_arr(mt_array *out, mt_dtype dt, int32_t nd, const int64_t *dims, const double *vals);
/* The elements of a in C order as doubles (n must equal the size). */
void jt_read(const mt_array *a, double *out, size_t n);
/* Per-dtype comparison tolerances. */
void jt_tol(mt_dtype dt, double *atol, double *rtol);
/* Deterministic values in [lo, hi). */
void jt_fill(double *v, size_t n, double lo, double hi, uint64_t seed);
/* Evaluates outputs through mt_graph_eval on the test device (checks the status). */
void jt_eval_at(const char *file, int line, mt_graph *g, int32_t nout, const mt_var *outs,
                int32_t nin, const mt_var *vars, const mt_array *const *arrs, mt_array *res);
#define jt_eval(g, nout, outs, nin, vars, arrs, res) \
    jt_eval_at(__FILE__, __LINE__, g, nout, outs, nin, vars, arrs, res)
/* Checks a's dtype, shape and values (NaN equals NaN) against the expectation. */
void jt_expect_at(const char *file, int line, const mt_array *a, mt_dtype dt, int32_t nd,
                  const int64_t *dims, const double *expect);
#define jt_expect(a, dt, nd, dims, expect) jt_expect_at(__FILE__, __LINE__, a, dt, nd, dims, expect)
/* Same with explicit tolerances. */
void jt_expect_tol_at(const char *file, int line, const mt_array *a, mt_dtype dt, int32_t nd,
                      const int64_t *dims, const double *expect, double atol, double rtol);
#define jt_expect_tol(a, dt, nd, dims, expect, atol, rtol) \
    jt_expect_tol_at(__FILE__, __LINE__, a, dt, nd, dims, expect, atol, rtol)

#endif
