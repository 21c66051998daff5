/* MT_MODE_CHECK: compares the results of the fast schedule with the reference schedule's.
 *
 * Both results are copied to the host; floats are compared in float64 with per-dtype
 * tolerances (|a - b| <= atol + rtol * |b|; NaN matches NaN, infinities must match exactly),
 * integers and bools bit for bit. The first difference is reported with the variable, its
 * provenance, the flat index and both values, so a wrong fused kernel points straight at the
 * user's expression.
 *
 * Stabilized results. A result whose optimized graph passes through a node made by a stability
 * rule (log1p, softplus, logsumexp, ...: f->stabilized) is compared leniently, because there the
 * literal reference is the inaccurate side: an element passes where the reference is not finite
 * (log(1 + exp(800)) = inf against 800; exp(800) / (1 + exp(800)) = NaN against 1) and the
 * fast path is not NaN, or where both agree within tolerances loosened to sqrt(eps) of the
 * dtype (the reference loses digits to the cancellation the rule removes). A NaN on the fast
 * path where the reference has a number still fails. Intermediate nodes created by rewrites
 * have no reference value and are not compared on their own. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "jit_impl.h"

static void default_tolerances(mt_dtype dt, double *rtol, double *atol)
{
    switch (dt) {
    case MT_FLOAT16: *rtol = 1e-2; *atol = 1e-3; break;
    case MT_BFLOAT16: *rtol = 4e-2; *atol = 1e-2; break;
    case MT_FLOAT32: *rtol = 1e-4; *atol = 1e-6; break;
    case MT_FLOAT64: *rtol = 1e-10; *atol = 1e-13; break;
    default: *rtol = 0; *atol = 0; break;
    }
}

static bool close_enough(double a, double b, double rtol, double atol)
{
    if (isnan(a) || isnan(b)) return isnan(a) && isnan(b);
    if (isinf(a) || isinf(b)) return a == b;
    return fabs(a - b) <= atol + rtol * fabs(b);
}

/* The elements of x in C order as float64 (*raw keeps the original bytes). */
static mt_status host_values(const mt_array *x, double **vals, char **raw)
{
    size_t n = (size_t)mt_array_size(x), isz = mt_dtype_size(x->dtype);
    *raw = mt_malloc(n * isz + 1);
    *vals = mt_malloc(n * sizeof **vals + 1);
    if (!*raw || !*vals) return MT_ERR_NOMEM;
    mt_status st = mt_array_to_host(*raw, n * isz, x);
    if (st == MT_OK)
        mt_dtype_convert(*vals, MT_FLOAT64, sizeof(double), *raw, x->dtype, (ptrdiff_t)isz, n);
    return st;
}

/* Lenient comparison of a stabilized result (see the top of this file). */
static bool stable_close(double a, double b, double rtol, double atol)
{
    if (!isfinite(b)) return !isnan(a) || isnan(b);
    if (isnan(a) || isinf(a)) return false;
    return fabs(a - b) <= atol + rtol * fabs(b);
}

static double dtype_eps(mt_dtype dt)
{
    switch (dt) {
    case MT_FLOAT16: return 9.77e-4;
    case MT_BFLOAT16: return 7.82e-3;
    case MT_FLOAT32: return 1.19e-7;
    default: return 2.22e-16;
    }
}

static mt_status check_value(mt_function *f, mt_var v, const char *what, const mt_array *a,
                             const mt_array *b, bool stabilized)
{
    bool same = a->dtype == b->dtype && a->ndim == b->ndim;
    for (int32_t d = 0; same && d < a->ndim; d++) same = a->dims[d] == b->dims[d];
    if (!same) {
        char da[160], db[160];
        return mt__node_error(f->g, v,
                              mt_err_set(MT_ERR_INTERNAL, "check mode: %s is %s on the fast path "
                                         "but %s on the reference path", what,
                                         mt_array_describe(a, da, sizeof da),
                                         mt_array_describe(b, db, sizeof db)));
    }
    double rtol, atol;
    default_tolerances(a->dtype, &rtol, &atol);
    if (mt_dtype_is_float(a->dtype) && f->check_rtol > 0) rtol = f->check_rtol;
    if (mt_dtype_is_float(a->dtype) && f->check_atol > 0) atol = f->check_atol;
    if (stabilized) {
        double loose = sqrt(dtype_eps(a->dtype));
        rtol = fmax(rtol, loose);
        atol = fmax(atol, loose);
    }
    double *va = NULL, *vb = NULL;
    char *ra = NULL, *rb = NULL;
    mt_status st = host_values(a, &va, &ra);
    if (st == MT_OK) st = host_values(b, &vb, &rb);
    int64_t n = mt_array_size(a), bad = -1;
    size_t isz = mt_dtype_size(a->dtype);
    bool is_float = mt_dtype_is_float(a->dtype);
    for (int64_t i = 0; st == MT_OK && i < n && bad < 0; i++) {
        bool ok = is_float ? (stabilized ? stable_close(va[i], vb[i], rtol, atol)
                                         : close_enough(va[i], vb[i], rtol, atol))
                           : memcmp(ra + (size_t)i * isz, rb + (size_t)i * isz, isz) == 0;
        if (!ok) bad = i;
    }
    if (st == MT_OK && bad >= 0)
        st = mt__node_error(f->g, v,
                            mt_err_set(MT_ERR_INTERNAL, "check mode: %s differs between the fast "
                                       "and the reference path at flat index %lld: %.17g vs "
                                       "%.17g (%s, rtol %g, atol %g%s)", what, (long long)bad,
                                       va[bad], vb[bad], mt_dtype_name(a->dtype), rtol, atol,
                                       stabilized ? ", stabilized result" : ""));
    mt_free(va);
    mt_free(vb);
    mt_free(ra);
    mt_free(rb);
    return st;
}

mt_status mt__check_value(mt_function *f, mt_var v, const char *what, const mt_array *a,
                          const mt_array *b)
{
    return check_value(f, v, what, a, b, false);
}

mt_status mt__check_results(mt_function *f, const mt_array *a, const mt_array *b)
{
    int32_t nres = f->n_outputs + f->n_updates;
    for (int32_t i = 0; i < nres; i++) {
        char what[64];
        mt_var v;
        if (i < f->n_outputs) {
            v = f->out_var[i];
            snprintf(what, sizeof what, "output %d", (int)i);
        } else {
            v = f->upd_var[i - f->n_outputs];
            snprintf(what, sizeof what, "update %d", (int)(i - f->n_outputs));
        }
        mt_status st = check_value(f, v, what, &a[i], &b[i], f->stabilized[i]);
        if (st != MT_OK) return st;
    }
    return MT_OK;
}
