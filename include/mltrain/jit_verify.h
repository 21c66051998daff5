/* mltrain jit: numeric gradient checking (Theano's verify_grad, with central differences).
 *
 * mt_verify_grad compares the symbolic gradient (mt_graph_grad) of a graph expression with
 * finite differences computed by running the expression through the jit (by default the
 * reference executor, MT_MODE_FAST_COMPILE, which needs no C compiler):
 *   1. Random projection: cost = sum(u * float64(out)) with u uniform in [0.5, 1.5) (fresh for
 *      each of n_tests projections), so every output element matters and none with a tiny
 *      weight. The cost is accumulated in float64 whatever out's dtype.
 *   2. Numeric gradient of the cost with respect to every element of every float input, by
 *      central differences (c(x + h e_i) - c(x - h e_i)) / (x_+ - x_-), where x_+ and x_- are
 *      the perturbed values as actually stored in the input's dtype, and
 *      h = eps * max(1, |x_i|) with eps = cbrt(machine epsilon of the input's dtype) by default
 *      (float64 6.1e-6, float32 4.9e-3, float16 9.9e-2, bfloat16 2.0e-1): the step that
 *      balances truncation error (~h^2) against rounding error (~epsilon / h).
 *   3. Comparison per element: abs_err = |s - n|, rel_err = abs_err / max(|s| + |n|, 1e-8);
 *      an element fails only when BOTH abs_err > abs_tol and rel_err > rel_tol (Theano's rule,
 *      applied per element). Default tolerances, the loosest over the float inputs' dtypes:
 *      float64 1e-6, float32 1e-2, float16 5e-2, bfloat16 1e-1 (both abs and rel). Central
 *      differences are accurate to ~epsilon^(2/3), far below these.
 * Integer and bool inputs are passed through unchanged and not differentiated (labels,
 * indices); so are inputs that out does not use at all. Every placeholder that out depends on
 * must be among the inputs. By default the gradient is taken with disconnected inputs giving
 * zeros (an input used only for its shape is checked against numeric zeros); grad_opts
 * replaces those options. The caller's graph is not modified: the check works on a private
 * copy.
 *
 * Returns MT_OK when every element passes. A mismatch is MT_ERR_INTERNAL (a wrong gradient
 * rule) with a message naming the output's op and provenance, the input, the worst element's
 * index, the symbolic and numeric values and both errors against their tolerances. A symbolic
 * value that is not finite where the numeric one is is a mismatch; a numeric value that is not
 * finite (the function is not finite or not smooth near the point) is MT_ERR_INVALID. Other
 * failures (compilation, invalid arguments, disconnected or undefined gradients under the
 * given gradient options) return their own status. */
#ifndef MLTRAIN_JIT_VERIFY_H
#define MLTRAIN_JIT_VERIFY_H

#include "mltrain/graph_grad.h"
#include "mltrain/jit.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mt_verify_grad_options {
    int32_t n_tests;  /* random projections (default 2) */
    uint64_t seed;    /* seed of the projections (default 1234) */
    double eps;       /* step base: h = eps * max(1, |x|); 0 = per-dtype default (above) */
    double abs_tol;   /* 0 = per-dtype default */
    double rel_tol;   /* 0 = per-dtype default */
    mt_mode mode;     /* executor (default MT_MODE_FAST_COMPILE) */
    mt_device *dev;   /* NULL = host */
    const mt_grad_options *grad_opts; /* given to mt_graph_grad (NULL: defaults except
                                         disconnected = MT_GRAD_DISCONNECTED_ZERO) */
} mt_verify_grad_options;

void mt_verify_grad_options_init(mt_verify_grad_options *opts);

typedef struct mt_verify_grad_report {
    bool passed;
    double max_abs_err;  /* over all elements, inputs and projections */
    double max_rel_err;
    double abs_tol;      /* the tolerances used */
    double rel_tol;
    /* the worst element (largest min(abs_err / abs_tol, rel_err / rel_tol)) */
    int32_t worst_input; /* index into inputs[] (-1 if no float input) */
    int64_t worst_index; /* flat C-order element index */
    double symbolic;     /* its symbolic and numeric gradients */
    double numeric;
    int64_t n_evals;     /* function evaluations used */
} mt_verify_grad_report;

/* Checks d sum(u * out) / d inputs as described above. values[i] is the point at which input
 * i (a placeholder) is evaluated (its dtype and shape; on any device). rep may be NULL. */
mt_status mt_verify_grad(const mt_graph *g, mt_var out, int32_t n_in, const mt_var *inputs,
                         const mt_array *const *values, const mt_verify_grad_options *opts,
                         mt_verify_grad_report *rep);

#ifdef __cplusplus
}
#endif
#endif /* MLTRAIN_JIT_VERIFY_H */
