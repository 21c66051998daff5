/* Helpers of the jit tests (see jit_ref.h). */
#include "jit_ref.h"

#include <stdlib.h>

static mt_device *g_dev;

/* Releasing the device before exit lets the OpenCL runtime finish its work (PoCL aborts when
 * the process exits with a device still open). */
static void release_dev(void)
{
    mt_device_release(g_dev);
    g_dev = NULL;
}

mt_device *jt_dev(void)
{
    if (!g_dev) {
        mt_status st = mt_device_open(&g_dev, mt_test_device_name());
        if (st == MT_ERR_NOT_BUILT || st == MT_ERR_NOT_FOUND) MT_SKIP("device not available");
        MT_CHECK_OK(st);
        atexit(release_dev);
    }
    return g_dev;
}

void jt_arr(mt_array *out, mt_dtype dt, int32_t nd, const int64_t *dims, const double *vals)
{
    size_t n = 1;
    for (int32_t d = 0; d < nd; d++) n *= (size_t)dims[d];
    void *buf = malloc(n * mt_dtype_size(dt) + 1);
    MT_CHECK(buf != NULL);
    mt_dtype_convert(buf, dt, (ptrdiff_t)mt_dtype_size(dt), vals, MT_FLOAT64, sizeof(double), n);
    MT_CHECK_OK(mt_array_from_host(out, jt_dev(), dt, nd, dims, buf));
    free(buf);
}

void jt_read(const mt_array *a, double *out, size_t n)
{
    MT_CHECK_EQ_INT(mt_array_size(a), n);
    size_t isz = mt_dtype_size(a->dtype);
    void *buf = malloc(n * isz + 1);
    MT_CHECK(buf != NULL);
    MT_CHECK_OK(mt_array_to_host(buf, n * isz, a));
    mt_dtype_convert(out, MT_FLOAT64, sizeof(double), buf, a->dtype, (ptrdiff_t)isz, n);
    free(buf);
}

void jt_tol(mt_dtype dt, double *atol, double *rtol)
{
    switch (dt) {
    case MT_FLOAT16: *atol = 2e-3; *rtol = 2e-3; break;
    case MT_BFLOAT16: *atol = 1e-2; *rtol = 1.6e-2; break;
    case MT_FLOAT32: *atol = 1e-6; *rtol = 2e-6; break;
    case MT_FLOAT64: *atol = 1e-13; *rtol = 1e-12; break;
    default: *atol = 0; *rtol = 0; break;
    }
}

void jt_fill(double *v, size_t n, double lo, double hi, uint64_t seed)
{
    uint64_t s = seed * 6364136223846793005ull + 1442695040888963407ull;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        v[i] = lo + (hi - lo) * (double)(s >> 11) / 9007199254740992.0;
    }
}

void jt_eval_at(const char *file, int line, mt_graph *g, int32_t nout, const mt_var *outs,
                int32_t nin, const mt_var *vars, const mt_array *const *arrs, mt_array *res)
{
    if (mt_graph_status(g) != MT_OK)
        mt_test_fail(file, line, "graph error: %s", mt_graph_last_error(g));
    mt_status st = mt_graph_eval(g, nout, outs, nin, vars, arrs, jt_dev(), res);
    if (st != MT_OK)
        mt_test_fail(file, line, "mt_graph_eval: %s: %s", mt_status_name(st), mt_last_error());
    /* The same graph through MT_MODE_CHECK: the fused schedule must agree with the reference
     * schedule on every output (the check itself fails the call otherwise). */
    mt_function_options o;
    mt_function_options_init(&o);
    o.mode = MT_MODE_CHECK;
    mt_function *f = NULL;
    mt_array *tmp = calloc((size_t)nout + 1, sizeof *tmp);
    MT_CHECK(tmp != NULL);
    st = mt_function_new(&f, g, nin, vars, nout, outs, 0, NULL, jt_dev(), &o);
    if (st == MT_OK) st = mt_function_call(f, nin, arrs, nout, tmp);
    if (st != MT_OK)
        mt_test_fail(file, line, "check mode: %s: %s", mt_status_name(st), mt_last_error());
    for (int32_t i = 0; i < nout; i++) mt_array_clear(&tmp[i]);
    free(tmp);
    mt_function_free(f);
}

void jt_expect_tol_at(const char *file, int line, const mt_array *a, mt_dtype dt, int32_t nd,
                      const int64_t *dims, const double *expect, double atol, double rtol)
{
    if (a->dtype != dt)
        mt_test_fail(file, line, "dtype %s, expected %s", mt_dtype_name(a->dtype),
                     mt_dtype_name(dt));
    char s1[128], s2[128];
    bool same = a->ndim == nd;
    for (int32_t d = 0; same && d < nd; d++) same = a->dims[d] == dims[d];
    if (!same)
        mt_test_fail(file, line, "shape %s, expected %s", mt_shape_str(a->ndim, a->dims, s1, sizeof s1),
                     mt_shape_str(nd, dims, s2, sizeof s2));
    size_t n = (size_t)mt_array_size(a);
    double *got = malloc(n * sizeof *got + 1);
    MT_CHECK(got != NULL);
    jt_read(a, got, n);
    mt_test_allclose(file, line, "values", got, expect, n, atol, rtol);
    free(got);
}

void jt_expect_at(const char *file, int line, const mt_array *a, mt_dtype dt, int32_t nd,
                  const int64_t *dims, const double *expect)
{
    double atol, rtol;
    jt_tol(dt, &atol, &rtol);
    jt_expect_tol_at(file, line, a, dt, nd, dims, expect, atol, rtol);
}
