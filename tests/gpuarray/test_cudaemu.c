/* The CUDA emulation device (cudaemu:0) against the host: the same elementwise kernels for every
 * dtype (every scalar op, casts between all dtypes, scalar parameters, strided and broadcast
 * layouts), reductions (one- and two-pass plans), random fills, copies and GEMM run on both, and
 * the results must agree: bit for bit for integers, bools, casts, random uniform numbers and
 * max/min/arg reductions, within per-dtype tolerances for float math (NaN positions must agree).
 * Every kernel built on cudaemu was compiled by NVRTC for sm_80 and sm_90 on the way (the CI
 * check of generated CUDA code); each case prints the count. Without libnvrtc the kernels still
 * run and nvrtc_compiles_every_kernel SKIPs. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <utime.h>

#include "gpuarray_impl.h"
#include "mltrain/gpuarray.h"
#include "mt_test.h"
#include "mt_test_cudaemu.h"
#include "nvrtc.h"

#define NELEM(a) ((int32_t)(sizeof(a) / sizeof((a)[0])))
#define N 64

static mt_device *g_host, *g_emu;

static void open_devices(void) { mt_test_cudaemu_open(&g_host, &g_emu); }

/* ---------------------------------------------------------------- comparing */

static double elem(const unsigned char *p, mt_dtype dt)
{
    switch (dt) {
    case MT_BOOL: return *p != 0;
    case MT_INT8: return *(const int8_t *)p;
    case MT_INT16: { int16_t v; memcpy(&v, p, 2); return v; }
    case MT_INT32: { int32_t v; memcpy(&v, p, 4); return v; }
    case MT_INT64: { int64_t v; memcpy(&v, p, 8); return (double)v; }
    case MT_UINT8: return *p;
    case MT_UINT16: { uint16_t v; memcpy(&v, p, 2); return v; }
    case MT_UINT32: { uint32_t v; memcpy(&v, p, 4); return v; }
    case MT_UINT64: { uint64_t v; memcpy(&v, p, 8); return (double)v; }
    case MT_FLOAT16: { uint16_t v; memcpy(&v, p, 2); return mt_f16_to_f32(v); }
    case MT_BFLOAT16: { uint16_t v; memcpy(&v, p, 2); return mt_bf16_to_f32(v); }
    case MT_FLOAT32: { float v; memcpy(&v, p, 4); return v; }
    default: { double v; memcpy(&v, p, 8); return v; }
    }
}

static void float_tol(mt_dtype dt, double *atol, double *rtol)
{
    switch (dt) {
    case MT_FLOAT16: *atol = 1e-3, *rtol = 2e-3; break;
    case MT_BFLOAT16: *atol = 1e-2, *rtol = 1.6e-2; break;
    case MT_FLOAT32: *atol = 1e-6, *rtol = 1e-5; break;
    default: *atol = 1e-13, *rtol = 1e-12; break;
    }
}

static int64_t g_exact, g_close;

/* host result h vs emulated e (any device): same dtype and shape; bit-equal when exact, else
 * within the dtype's tolerance with NaNs at the same places. */
static void compare(const char *what, const mt_array *h, const mt_array *e, bool exact)
{
    MT_CHECK_EQ_INT(h->dtype, e->dtype);
    int64_t n = mt_array_size(h);
    MT_CHECK_EQ_INT(n, mt_array_size(e));
    size_t isz = mt_dtype_size(h->dtype), nb = (size_t)n * isz;
    unsigned char *a = malloc(nb + 1), *b = malloc(nb + 1);
    MT_CHECK_OK(mt_array_to_host(a, nb, h));
    MT_CHECK_OK(mt_array_to_host(b, nb, e));
    bool fl = mt_dtype_is_float(h->dtype);
    double atol = 0, rtol = 0;
    if (fl) float_tol(h->dtype, &atol, &rtol);
    for (int64_t i = 0; i < n; i++) {
        const unsigned char *pa = a + (size_t)i * isz, *pb = b + (size_t)i * isz;
        if (memcmp(pa, pb, isz) == 0) {
            g_exact++;
            continue;
        }
        double va = elem(pa, h->dtype), vb = elem(pb, h->dtype);
        bool ok = !exact && fl && (isnan(va) ? isnan(vb) : mt_test_close(vb, va, atol, rtol));
        if (!ok)
            mt_test_fail(__FILE__, __LINE__, "%s (%s) [%lld]: host %.17g, cudaemu %.17g%s", what,
                         mt_dtype_name(h->dtype), (long long)i, va, vb,
                         exact ? " (must be bit-equal)" : "");
        g_close++;
    }
    free(a);
    free(b);
}

/* ---------------------------------------------------------------- inputs */

static const double k_float_vals[] = {
    0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.5, -2.5, 3.0, -3.0, 0.1, -0.7, 1e-3, 7.25, -7.75, 10.0,
    -12.5, 100.0, 1e-30, -1e-20, 0.999, 1.0001, 30.0, -30.0, 88.0, -90.0, 1e6, -1e6, 65504.0,
    1e300, INFINITY, -INFINITY, NAN, 0.25, -0.25, 4.0, 0.75, -5.5, 1.5, 2.0};
static const int64_t k_int_vals[] = {
    0, 1, -1, 2, -2, 3, -3, 5, 7, -7, 8, 15, 31, 32, 33, 63, 64, 100, -100, 127, -128, 128, 255,
    256, 1000, -1000, 32767, -32768, 65535, 65536, 2147483647, -2147483647 - 1, 4294967295LL,
    INT64_MAX, INT64_MIN, 123456789, -987654321, 12, -12, 4};

/* Host array of n elements of dt holding the value list rotated by rot (cast with NumPy rules). */
static void host_input(mt_array *out, mt_dtype dt, int64_t n, int32_t rot)
{
    mt_array src = {0};
    if (mt_dtype_is_float(dt)) {
        double *v = malloc((size_t)n * 8);
        for (int64_t i = 0; i < n; i++) v[i] = k_float_vals[(i + rot) % NELEM(k_float_vals)];
        MT_CHECK_OK(mt_array_from_host(&src, g_host, MT_FLOAT64, 1, &n, v));
        free(v);
    } else {
        int64_t *v = malloc((size_t)n * 8);
        for (int64_t i = 0; i < n; i++) v[i] = k_int_vals[(i + rot) % NELEM(k_int_vals)];
        MT_CHECK_OK(mt_array_from_host(&src, g_host, MT_INT64, 1, &n, v));
        free(v);
    }
    MT_CHECK_OK(mt_array_astype(out, &src, dt));
    mt_array_clear(&src);
}

/* ---------------------------------------------------------------- elementwise */

/* Runs expr on host and cudaemu over 1-D inputs (host arrays, copied to cudaemu) and compares
 * every output. exact: outputs must be bit-equal. */
static void run_both(const char *what, const mt_kexpr *e, int32_t nin, const mt_array *hin,
                     int32_t nparams, const mt_scalar *params, bool exact)
{
    mt_array din[8] = {{0}}, hout[8] = {{0}}, dout[8] = {{0}};
    const mt_array *hi[8], *di[8];
    mt_array *ho[8], *dop[8];
    for (int32_t i = 0; i < nin; i++) {
        MT_CHECK_OK(mt_array_copy_to(&din[i], &hin[i], g_emu));
        hi[i] = &hin[i];
        di[i] = &din[i];
    }
    int64_t n = hin[0].ndim ? hin[0].dims[0] : 1;
    for (int32_t j = 0; j < e->nouts; j++) {
        mt_dtype dt = e->nodes[e->outs[j]].dtype;
        MT_CHECK_OK(mt_array_zeros(&hout[j], g_host, dt, 1, &n));
        MT_CHECK_OK(mt_array_zeros(&dout[j], g_emu, dt, 1, &n));
        ho[j] = &hout[j];
        dop[j] = &dout[j];
    }
    MT_CHECK_OK(mt_elemwise(e, nin, hi, ho, nparams, params));
    MT_CHECK_OK(mt_elemwise(e, nin, di, dop, nparams, params));
    for (int32_t j = 0; j < e->nouts; j++) {
        char lbl[160];
        const mt_knode *nd = &e->nodes[e->outs[j]];
        snprintf(lbl, sizeof lbl, "%s: output %d (%s)", what, (int)j, mt_sop_name(nd->op));
        compare(lbl, &hout[j], &dout[j], exact || !mt_dtype_is_float(nd->dtype));
        mt_array_clear(&hout[j]);
        mt_array_clear(&dout[j]);
    }
    for (int32_t i = 0; i < nin; i++) mt_array_clear(&din[i]);
}

/* Builds kernels of up to 8 outputs, one op each, over inputs x (0) and y (1) of dtype dt. */
static void run_ops(mt_dtype dt, const mt_sop *ops, int32_t nops, bool exact)
{
    mt_array in[2] = {{0}};
    host_input(&in[0], dt, N, 0);
    host_input(&in[1], dt, N, 7);
    for (int32_t k0 = 0; k0 < nops; k0 += 8) {
        mt_kexpr e;
        mt_kexpr_init(&e);
        int32_t x = mt_kexpr_input(&e, 0, dt), y = mt_kexpr_input(&e, 1, dt);
        for (int32_t k = k0; k < nops && k < k0 + 8; k++) {
            int32_t r = mt_sop_arity(ops[k]) == 1 ? mt_kexpr_unary(&e, ops[k], x)
                                                  : mt_kexpr_binary(&e, ops[k], x, y);
            MT_CHECK(r >= 0);
            MT_CHECK_OK(mt_kexpr_add_output(&e, r));
        }
        char what[64];
        snprintf(what, sizeof what, "%s ops %d..", mt_dtype_name(dt), (int)k0);
        run_both(what, &e, 2, in, 0, NULL, exact);
        mt_kexpr_deinit(&e);
    }
    mt_array_clear(&in[0]);
    mt_array_clear(&in[1]);
}

static const mt_sop k_float_ops[] = {
    MT_SOP_NEG, MT_SOP_ABS, MT_SOP_SIGN, MT_SOP_RECIP, MT_SOP_SQUARE, MT_SOP_SQRT, MT_SOP_RSQRT,
    MT_SOP_EXP, MT_SOP_EXP2, MT_SOP_EXPM1, MT_SOP_LOG, MT_SOP_LOG2, MT_SOP_LOG10, MT_SOP_LOG1P,
    MT_SOP_LOG1MEXP, MT_SOP_SIN, MT_SOP_COS, MT_SOP_TAN, MT_SOP_ASIN, MT_SOP_ACOS, MT_SOP_ATAN,
    MT_SOP_SINH, MT_SOP_COSH, MT_SOP_TANH, MT_SOP_ERF, MT_SOP_ERFC, MT_SOP_SIGMOID,
    MT_SOP_SOFTPLUS, MT_SOP_RELU, MT_SOP_FLOOR, MT_SOP_CEIL, MT_SOP_ROUND, MT_SOP_TRUNC,
    MT_SOP_ISNAN, MT_SOP_ISINF, MT_SOP_ISFINITE, MT_SOP_NOT, MT_SOP_ADD, MT_SOP_SUB, MT_SOP_MUL,
    MT_SOP_DIV, MT_SOP_FLOORDIV, MT_SOP_MOD, MT_SOP_POW, MT_SOP_MAX, MT_SOP_MIN, MT_SOP_ATAN2,
    MT_SOP_LOGADDEXP, MT_SOP_EQ, MT_SOP_NE, MT_SOP_LT, MT_SOP_LE, MT_SOP_GT, MT_SOP_GE,
    MT_SOP_AND, MT_SOP_OR, MT_SOP_XOR};

static const mt_sop k_int_ops[] = {
    MT_SOP_NEG, MT_SOP_ABS, MT_SOP_SIGN, MT_SOP_SQUARE, MT_SOP_RELU, MT_SOP_NOT, MT_SOP_BITNOT,
    MT_SOP_ISNAN, MT_SOP_ADD, MT_SOP_SUB, MT_SOP_MUL, MT_SOP_DIV, MT_SOP_FLOORDIV, MT_SOP_MOD,
    MT_SOP_POW, MT_SOP_MAX, MT_SOP_MIN, MT_SOP_EQ, MT_SOP_LT, MT_SOP_GE, MT_SOP_AND, MT_SOP_BITAND,
    MT_SOP_BITOR, MT_SOP_BITXOR, MT_SOP_LSHIFT, MT_SOP_RSHIFT};

static const mt_sop k_bool_ops[] = {MT_SOP_NOT, MT_SOP_BITNOT, MT_SOP_AND, MT_SOP_OR, MT_SOP_XOR,
                                    MT_SOP_EQ, MT_SOP_MAX, MT_SOP_MIN};

static void float_case(mt_dtype dt)
{
    open_devices();
    g_exact = g_close = 0;
    run_ops(dt, k_float_ops, NELEM(k_float_ops), false);
    printf("%s: %lld elements bit-equal, %lld within tolerance\n", mt_dtype_name(dt),
           (long long)g_exact, (long long)g_close);
    mt_test_cudaemu_report();
}

MT_TEST(elemwise_float32) { float_case(MT_FLOAT32); }
MT_TEST(elemwise_float64) { float_case(MT_FLOAT64); }
MT_TEST(elemwise_float16) { float_case(MT_FLOAT16); }
MT_TEST(elemwise_bfloat16) { float_case(MT_BFLOAT16); }

MT_TEST(elemwise_integers_and_bool)
{
    open_devices();
    static const mt_dtype ints[] = {MT_INT8, MT_INT16, MT_INT32, MT_INT64,
                                    MT_UINT8, MT_UINT16, MT_UINT32, MT_UINT64};
    for (int32_t d = 0; d < NELEM(ints); d++) run_ops(ints[d], k_int_ops, NELEM(k_int_ops), true);
    run_ops(MT_BOOL, k_bool_ops, NELEM(k_bool_ops), true);
    mt_test_cudaemu_report();
}

/* Every dtype to every other: float -> int casts, rounding to 16-bit floats, wrap-around. */
MT_TEST(casts_between_all_dtypes)
{
    open_devices();
    for (int32_t s = 0; s < MT_DTYPE_COUNT; s++) {
        mt_array in = {0};
        host_input(&in, (mt_dtype)s, N, 3);
        for (int32_t d0 = 0; d0 < MT_DTYPE_COUNT; d0 += 7) {
            mt_kexpr e;
            mt_kexpr_init(&e);
            int32_t x = mt_kexpr_input(&e, 0, (mt_dtype)s);
            for (int32_t d = d0; d < MT_DTYPE_COUNT && d < d0 + 7; d++)
                MT_CHECK_OK(mt_kexpr_add_output(&e, mt_kexpr_cast(&e, x, (mt_dtype)d)));
            char what[64];
            snprintf(what, sizeof what, "cast from %s", mt_dtype_name((mt_dtype)s));
            run_both(what, &e, 1, &in, 0, NULL, true);
            mt_kexpr_deinit(&e);
        }
        mt_array_clear(&in);
    }
    mt_test_cudaemu_report();
}

/* Scalar parameters of every width (packed by the launcher), INDEX, WHERE and constants. */
MT_TEST(params_index_where)
{
    open_devices();
    static const mt_dtype dts[] = {MT_BOOL, MT_INT8, MT_UINT16, MT_INT32, MT_INT64, MT_UINT64,
                                   MT_FLOAT16, MT_BFLOAT16, MT_FLOAT32, MT_FLOAT64};
    for (int32_t d = 0; d < NELEM(dts); d++) {
        mt_dtype dt = dts[d];
        mt_array in = {0};
        host_input(&in, dt, N, 5);
        mt_kexpr e;
        mt_kexpr_init(&e);
        int32_t x = mt_kexpr_input(&e, 0, dt), p = mt_kexpr_param(&e, 0, dt);
        int32_t idx = mt_kexpr_cast(&e, mt_kexpr_index(&e), dt);
        mt_sop op = dt == MT_BOOL ? MT_SOP_XOR : MT_SOP_ADD;
        int32_t c = mt_kexpr_const(&e, mt_scalar_f64(3.0), dt);
        MT_CHECK_OK(mt_kexpr_add_output(&e, mt_kexpr_binary(&e, op, x, p)));
        MT_CHECK_OK(mt_kexpr_add_output(&e, mt_kexpr_binary(&e, op, idx, x)));
        MT_CHECK_OK(mt_kexpr_add_output(&e, mt_kexpr_where(&e, mt_kexpr_binary(&e, MT_SOP_LT, x, c), p, x)));
        mt_scalar prm = mt_scalar_f64(dt == MT_BOOL ? 1.0 : -2.5);
        if (!mt_dtype_is_float(dt)) prm = mt_scalar_i64(dt == MT_BOOL ? 1 : 11);
        run_both(mt_dtype_name(dt), &e, 1, &in, 1, &prm, true);
        mt_kexpr_deinit(&e);
        mt_array_clear(&in);
    }
    mt_test_cudaemu_report();
}

/* Non-contiguous kernels: a transposed input, a broadcast row and a strided output. */
MT_TEST(strided_and_broadcast)
{
    open_devices();
    static const mt_dtype dts[] = {MT_FLOAT32, MT_FLOAT16, MT_INT64};
    for (int32_t d = 0; d < NELEM(dts); d++) {
        mt_dtype dt = dts[d];
        int64_t sq[2] = {8, 8}, row[2] = {1, 8};
        mt_array flat = {0}, hx = {0}, hxt = {0}, hb = {0}, hbb = {0}, dx = {0}, db = {0};
        host_input(&flat, dt, 64, 1);
        MT_CHECK_OK(mt_array_reshape(&hx, &flat, 2, sq));
        int32_t perm[2] = {1, 0};
        MT_CHECK_OK(mt_array_transpose(&hxt, &hx, perm));
        mt_array_clear(&flat);
        host_input(&flat, dt, 8, 9);
        MT_CHECK_OK(mt_array_reshape(&hb, &flat, 2, row));
        MT_CHECK_OK(mt_array_broadcast_to(&hbb, &hb, 2, sq));
        /* the same views on cudaemu */
        mt_array dxc = {0}, dbc = {0};
        MT_CHECK_OK(mt_array_copy_to(&dxc, &hx, g_emu));
        MT_CHECK_OK(mt_array_transpose(&dx, &dxc, perm));
        MT_CHECK_OK(mt_array_copy_to(&dbc, &hb, g_emu));
        MT_CHECK_OK(mt_array_broadcast_to(&db, &dbc, 2, sq));
        mt_kexpr e;
        mt_kexpr_init(&e);
        int32_t a = mt_kexpr_input(&e, 0, dt), b = mt_kexpr_input(&e, 1, dt);
        MT_CHECK_OK(mt_kexpr_add_output(&e, mt_kexpr_binary(&e, MT_SOP_SUB, a, b)));
        MT_CHECK_OK(mt_kexpr_add_output(&e, mt_kexpr_binary(&e, MT_SOP_MAX, b, a)));
        /* outputs: a strided view (every other column of 8x16) on both devices */
        int64_t wide[2] = {8, 16};
        mt_array hw[2] = {{0}}, dw[2] = {{0}}, hv[2] = {{0}}, dv[2] = {{0}};
        mt_slice sl[2] = {mt_slice_all(), mt_slice_range(0, 16, 2)};
        const mt_array *hi[2] = {&hxt, &hbb}, *di[2] = {&dx, &db};
        mt_array *ho[2], *dop[2];
        for (int j = 0; j < 2; j++) {
            MT_CHECK_OK(mt_array_zeros(&hw[j], g_host, dt, 2, wide));
            MT_CHECK_OK(mt_array_zeros(&dw[j], g_emu, dt, 2, wide));
            MT_CHECK_OK(mt_array_slice(&hv[j], &hw[j], 2, sl));
            MT_CHECK_OK(mt_array_slice(&dv[j], &dw[j], 2, sl));
            ho[j] = &hv[j];
            dop[j] = &dv[j];
        }
        MT_CHECK_OK(mt_elemwise(&e, 2, hi, ho, 0, NULL));
        MT_CHECK_OK(mt_elemwise(&e, 2, di, dop, 0, NULL));
        for (int j = 0; j < 2; j++) {
            compare("strided elementwise (whole output incl. untouched columns)", &hw[j], &dw[j],
                    true);
            mt_array_clear(&hw[j]);
            mt_array_clear(&dw[j]);
            mt_array_clear(&hv[j]);
            mt_array_clear(&dv[j]);
        }
        mt_kexpr_deinit(&e);
        mt_array *all[] = {&flat, &hx, &hxt, &hb, &hbb, &dx, &db, &dxc, &dbc};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) mt_array_clear(all[i]);
    }
    mt_test_cudaemu_report();
}

/* ---------------------------------------------------------------- reductions */

static void reduce_both(const mt_array *h, mt_reduce_op op, int32_t naxes, const int32_t *axes)
{
    mt_array d = {0}, hr = {0}, dr = {0};
    MT_CHECK_OK(mt_array_copy_to(&d, h, g_emu));
    MT_CHECK_OK(mt_array_reduce(&hr, h, op, naxes, axes, false));
    MT_CHECK_OK(mt_array_reduce(&dr, &d, op, naxes, axes, false));
    char what[128];
    snprintf(what, sizeof what, "reduce %s of %s over %d axes (first %d)",
             mt_reduce_op_name(op), mt_dtype_name(h->dtype), (int)naxes,
             naxes ? (int)axes[0] : -1);
    bool exact = op != MT_REDUCE_SUM && op != MT_REDUCE_MEAN && op != MT_REDUCE_PROD;
    compare(what, &hr, &dr, exact || !mt_dtype_is_float(hr.dtype));
    mt_array_clear(&d);
    mt_array_clear(&hr);
    mt_array_clear(&dr);
}

/* Each (op, dtype, layout) is its own kernel: the plan covers every op on float32 and the
 * accumulator classes of the other dtypes, on three layouts (contiguous inner axis, strided
 * axis, all axes) plus a long row for the two-pass plan (partials, then a second kernel). */
MT_TEST(reductions)
{
    open_devices();
    static const struct {
        mt_dtype dt;
        mt_reduce_op op;
        bool all_layouts;
    } plan[] = {
        {MT_FLOAT32, MT_REDUCE_SUM, true},     {MT_FLOAT32, MT_REDUCE_MAX, true},
        {MT_FLOAT32, MT_REDUCE_ARGMAX, true},  {MT_FLOAT32, MT_REDUCE_MEAN, false},
        {MT_FLOAT32, MT_REDUCE_PROD, false},   {MT_FLOAT32, MT_REDUCE_MIN, false},
        {MT_FLOAT32, MT_REDUCE_ARGMIN, false}, {MT_FLOAT64, MT_REDUCE_SUM, false},
        {MT_FLOAT64, MT_REDUCE_MIN, false},    {MT_FLOAT16, MT_REDUCE_SUM, false},
        {MT_BFLOAT16, MT_REDUCE_MAX, false},   {MT_INT32, MT_REDUCE_SUM, false},
        {MT_INT32, MT_REDUCE_PROD, false},     {MT_INT32, MT_REDUCE_ARGMIN, false},
        {MT_UINT8, MT_REDUCE_MAX, false},      {MT_INT32, MT_REDUCE_ANY, false},
        {MT_BOOL, MT_REDUCE_ALL, false},
    };
    /* finite values (sums of inf and nan agree trivially): 37 x 129, and 3 x 6000, long
     * enough for the two-pass plan */
    int64_t s1[2] = {37, 129}, s2[2] = {3, 6000};
    int64_t n1 = s1[0] * s1[1], n2 = s2[0] * s2[1];
    mt_array u1 = {0}, u2 = {0}, t = {0};
    MT_CHECK_OK(mt_array_empty(&t, g_host, MT_FLOAT32, 1, &n1, 'C'));
    MT_CHECK_OK(mt_array_random_uniform(&t, 7, 0, -2.0, 2.0));
    MT_CHECK_OK(mt_array_reshape(&u1, &t, 2, s1));
    mt_array_clear(&t);
    MT_CHECK_OK(mt_array_empty(&t, g_host, MT_FLOAT32, 1, &n2, 'C'));
    MT_CHECK_OK(mt_array_random_uniform(&t, 8, 0, 0.9, 1.1));
    MT_CHECK_OK(mt_array_reshape(&u2, &t, 2, s2));
    mt_array_clear(&t);
    for (int32_t k = 0; k < NELEM(plan); k++) {
        mt_array a1 = {0}, a2 = {0};
        MT_CHECK_OK(mt_array_astype(&a1, &u1, plan[k].dt));
        MT_CHECK_OK(mt_array_astype(&a2, &u2, plan[k].dt));
        int32_t ax0 = 0, ax1 = 1;
        reduce_both(&a1, plan[k].op, 1, &ax1);
        if (plan[k].all_layouts) {
            reduce_both(&a1, plan[k].op, 1, &ax0);
            reduce_both(&a1, plan[k].op, 0, NULL);
            reduce_both(&a2, plan[k].op, 1, &ax1);
        }
        mt_array_clear(&a1);
        mt_array_clear(&a2);
    }
    mt_array_clear(&u1);
    mt_array_clear(&u2);
    mt_test_cudaemu_report();
}

/* Fused map-reduce with a parameter: sum(x * p + y) over the last axis. */
MT_TEST(fused_reduction_with_param)
{
    open_devices();
    int64_t s[2] = {5, 300}, n = 1500, so[1] = {5};
    mt_array t = {0}, hx = {0}, hy = {0}, dx = {0}, dy = {0}, hr = {0}, dr = {0};
    MT_CHECK_OK(mt_array_empty(&t, g_host, MT_FLOAT32, 1, &n, 'C'));
    MT_CHECK_OK(mt_array_random_normal(&t, 3, 0, 0.0, 1.0));
    MT_CHECK_OK(mt_array_reshape(&hx, &t, 2, s));
    mt_array_clear(&t);
    MT_CHECK_OK(mt_array_empty(&t, g_host, MT_FLOAT32, 1, &n, 'C'));
    MT_CHECK_OK(mt_array_random_normal(&t, 4, 0, 1.0, 0.5));
    MT_CHECK_OK(mt_array_reshape(&hy, &t, 2, s));
    mt_array_clear(&t);
    MT_CHECK_OK(mt_array_copy_to(&dx, &hx, g_emu));
    MT_CHECK_OK(mt_array_copy_to(&dy, &hy, g_emu));
    mt_kexpr e;
    mt_kexpr_init(&e);
    int32_t x = mt_kexpr_input(&e, 0, MT_FLOAT32), y = mt_kexpr_input(&e, 1, MT_FLOAT32);
    int32_t p = mt_kexpr_param(&e, 0, MT_FLOAT32);
    MT_CHECK_OK(mt_kexpr_add_output(&e, mt_kexpr_binary(&e, MT_SOP_ADD,
                                                        mt_kexpr_binary(&e, MT_SOP_MUL, x, p), y)));
    mt_dtype rdt = mt_reduce_result_dtype(MT_REDUCE_SUM, MT_FLOAT32);
    MT_CHECK_OK(mt_array_zeros(&hr, g_host, rdt, 1, so));
    MT_CHECK_OK(mt_array_zeros(&dr, g_emu, rdt, 1, so));
    mt_scalar prm = mt_scalar_f64(0.75);
    int32_t axis = 1;
    const mt_array *hi[2] = {&hx, &hy}, *di[2] = {&dx, &dy};
    MT_CHECK_OK(mt_reduce_fused(&e, 2, hi, MT_REDUCE_SUM, 1, &axis, &hr, 1, &prm));
    MT_CHECK_OK(mt_reduce_fused(&e, 2, di, MT_REDUCE_SUM, 1, &axis, &dr, 1, &prm));
    compare("fused sum(x * p + y)", &hr, &dr, false);
    mt_kexpr_deinit(&e);
    mt_array *all[] = {&hx, &hy, &dx, &dy, &hr, &dr};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) mt_array_clear(all[i]);
    mt_test_cudaemu_report();
}

/* ---------------------------------------------------------------- random, copies, gemm */

MT_TEST(random_fills)
{
    open_devices();
    static const mt_dtype dts[] = {MT_FLOAT32, MT_FLOAT64, MT_FLOAT16, MT_BFLOAT16};
    int64_t n = 1000;
    for (int32_t d = 0; d < NELEM(dts); d++) {
        for (int kind = 0; kind < 3; kind++) {
            if (kind == 2 && dts[d] != MT_FLOAT32) continue;
            mt_array h = {0}, e = {0};
            MT_CHECK_OK(mt_array_empty(&h, g_host, dts[d], 1, &n, 'C'));
            MT_CHECK_OK(mt_array_empty(&e, g_emu, dts[d], 1, &n, 'C'));
            for (int k = 0; k < 2; k++) {
                mt_array *a = k ? &e : &h;
                if (kind == 0) MT_CHECK_OK(mt_array_random_uniform(a, 42, 17, -1.0, 3.0));
                else if (kind == 1) MT_CHECK_OK(mt_array_random_normal(a, 42, 17, 0.5, 2.0));
                else MT_CHECK_OK(mt_array_random_bernoulli(a, 42, 17, 0.3));
            }
            compare(kind == 0 ? "uniform" : kind == 1 ? "normal" : "bernoulli", &h, &e,
                    kind != 1);
            mt_array_clear(&h);
            mt_array_clear(&e);
        }
    }
    mt_test_cudaemu_report();
}

MT_TEST(copies_fills_arange)
{
    open_devices();
    int64_t s[3] = {4, 6, 5}, n = 120;
    mt_array flat = {0}, h = {0}, d = {0};
    host_input(&flat, MT_FLOAT32, n, 2);
    MT_CHECK_OK(mt_array_reshape(&h, &flat, 3, s));
    MT_CHECK_OK(mt_array_copy_to(&d, &h, g_emu));
    MT_CHECK(!mt_device_is_host_addressable(g_emu));
    MT_CHECK(mt_buffer_host_ptr(d.buf) == NULL);
    /* transposed and stepped views made contiguous, with and without dtype conversion */
    int32_t perm[3] = {2, 0, 1};
    mt_slice sl[3] = {mt_slice_range(3, 0, -1), mt_slice_all(), mt_slice_range(0, 5, 2)};
    static const mt_dtype dts[] = {MT_FLOAT32, MT_FLOAT16, MT_INT16, MT_UINT8, MT_FLOAT64,
                                   MT_BOOL};
    for (int32_t v = 0; v < 2; v++) {
        mt_array hv = {0}, dv = {0};
        if (v == 0) {
            MT_CHECK_OK(mt_array_transpose(&hv, &h, perm));
            MT_CHECK_OK(mt_array_transpose(&dv, &d, perm));
        } else {
            MT_CHECK_OK(mt_array_slice(&hv, &h, 3, sl));
            MT_CHECK_OK(mt_array_slice(&dv, &d, 3, sl));
        }
        for (int32_t k = 0; k < NELEM(dts); k++) {
            mt_array hc = {0}, dc = {0};
            MT_CHECK_OK(mt_array_astype(&hc, &hv, dts[k]));
            MT_CHECK_OK(mt_array_astype(&dc, &dv, dts[k]));
            compare(v ? "astype of a stepped view" : "astype of a transpose", &hc, &dc, true);
            mt_array_clear(&hc);
            mt_array_clear(&dc);
        }
        /* strided copy into a strided destination on the device */
        mt_array dz = {0}, hz = {0};
        MT_CHECK_OK(mt_array_zeros(&dz, g_emu, MT_FLOAT64, hv.ndim, hv.dims));
        MT_CHECK_OK(mt_array_zeros(&hz, g_host, MT_FLOAT64, hv.ndim, hv.dims));
        MT_CHECK_OK(mt_array_copy(&dz, &dv));
        MT_CHECK_OK(mt_array_copy(&hz, &hv));
        compare("copy into a float64 array", &hz, &dz, true);
        mt_array_clear(&dz);
        mt_array_clear(&hz);
        mt_array_clear(&hv);
        mt_array_clear(&dv);
    }
    /* fills of views and arange */
    mt_array hv = {0}, dv = {0};
    MT_CHECK_OK(mt_array_slice(&hv, &h, 3, sl));
    MT_CHECK_OK(mt_array_slice(&dv, &d, 3, sl));
    MT_CHECK_OK(mt_array_fill(&hv, mt_scalar_f64(-1.5)));
    MT_CHECK_OK(mt_array_fill(&dv, mt_scalar_f64(-1.5)));
    compare("fill of a stepped view", &h, &d, true);
    static const mt_dtype adts[] = {MT_FLOAT32, MT_FLOAT16, MT_INT32, MT_UINT8};
    for (int32_t k = 0; k < NELEM(adts); k++) {
        mt_array ha = {0}, da = {0};
        MT_CHECK_OK(mt_array_arange(&ha, g_host, adts[k], 0.1, 60.0, 0.7));
        MT_CHECK_OK(mt_array_arange(&da, g_emu, adts[k], 0.1, 60.0, 0.7));
        compare("arange", &ha, &da, true);
        mt_array_clear(&ha);
        mt_array_clear(&da);
    }
    mt_array *all[] = {&flat, &h, &d, &hv, &dv};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) mt_array_clear(all[i]);
    mt_test_cudaemu_report();
}

MT_TEST(gemm_and_matmul)
{
    open_devices();
    static const mt_dtype dts[] = {MT_FLOAT32, MT_FLOAT64, MT_FLOAT16, MT_INT32};
    for (int32_t k = 0; k < NELEM(dts); k++) {
        int64_t sa[3] = {2, 7, 9}, sb[2] = {9, 5}, na = 126, nb = 45;
        mt_array ta = {0}, tb = {0}, ha = {0}, hb = {0}, da = {0}, db = {0}, hr = {0}, dr = {0};
        host_input(&ta, dts[k], na, 4);
        host_input(&tb, dts[k], nb, 11);
        /* finite values only: inf * 0 in a dot product is fine but makes the check blind */
        mt_array fa = {0}, fb = {0};
        MT_CHECK_OK(mt_array_reshape(&ha, &ta, 3, sa));
        MT_CHECK_OK(mt_array_reshape(&hb, &tb, 2, sb));
        if (mt_dtype_is_float(dts[k])) {
            mt_array_clear(&ha);
            mt_array_clear(&hb);
            MT_CHECK_OK(mt_array_empty(&fa, g_host, dts[k], 3, sa, 'C'));
            MT_CHECK_OK(mt_array_empty(&fb, g_host, dts[k], 2, sb, 'C'));
            MT_CHECK_OK(mt_array_random_uniform(&fa, 5, 0, -1, 1));
            MT_CHECK_OK(mt_array_random_uniform(&fb, 6, 0, -1, 1));
            mt_array_view(&ha, &fa);
            mt_array_view(&hb, &fb);
        }
        MT_CHECK_OK(mt_array_copy_to(&da, &ha, g_emu));
        MT_CHECK_OK(mt_array_copy_to(&db, &hb, g_emu));
        MT_CHECK_OK(mt_array_matmul(&hr, &ha, &hb));
        MT_CHECK_OK(mt_array_matmul(&dr, &da, &db));
        compare("matmul", &hr, &dr, !mt_dtype_is_float(dts[k]));
        mt_array *all[] = {&ta, &tb, &ha, &hb, &da, &db, &hr, &dr, &fa, &fb};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) mt_array_clear(all[i]);
    }
    mt_test_cudaemu_report();
}

/* ---------------------------------------------------------------- the device itself */

MT_TEST(device_listing_and_errors)
{
    open_devices();
    const mt_device_info *info = mt_device_get_info(g_emu);
    MT_CHECK_STR_EQ(info->name, "cudaemu:0");
    MT_CHECK_STR_EQ(info->backend, "cudaemu");
    MT_CHECK(!mt_device_is_host_addressable(g_emu));
    mt_device *other = NULL;
    MT_CHECK_ERR(mt_device_open(&other, "cudaemu:1"), MT_ERR_NOT_FOUND, "cudaemu:0");
    for (int listed = 0; listed < 2; listed++) {
        setenv("MLTRAIN_CUDAEMU", listed ? "1" : "0", 1);
        mt_device_info *infos = NULL;
        int32_t n = 0;
        MT_CHECK_OK(mt_device_list(&infos, &n));
        bool found = false;
        for (int32_t i = 0; i < n; i++) found = found || strcmp(infos[i].name, "cudaemu:0") == 0;
        mt_free(infos);
        MT_CHECK_EQ_INT(found, listed);
    }
    /* reads and writes past a buffer's end are errors, as on a GPU */
    mt_buffer *b = NULL;
    MT_CHECK_OK(mt_buffer_new(&b, g_emu, 100));
    char tmp[300] = {0};
    MT_CHECK(mt_buffer_write(b, 50, tmp, 251, NULL) != MT_OK);
    MT_CHECK(mt_buffer_read(tmp, b, 0, 300, NULL) != MT_OK);
    mt_buffer_release(b);
    mt_test_cudaemu_report();
}

/* Kernels that are wrong for a GPU or for the emulator are build errors with a clear message. */
MT_TEST(bad_kernels_are_compile_errors)
{
    open_devices();
    const mt_device_ops *ops = g_emu->ops;
    void *k = NULL;
    static const char no_extern_c[] =
        "__global__ void mt_bad_a(float *p, long long nwork) { p[0] = 1.0f; }\n";
    MT_CHECK_ERR(ops->kernel_build(g_emu, no_extern_c, "mt_bad_a", &k), MT_ERR_COMPILE,
                 "extern \"C\"");
    static const char shared_mem[] =
        "extern \"C\" __global__ void mt_bad_b(float *p, long long nwork)\n"
        "{ __shared__ float s[32]; s[threadIdx.x] = p[threadIdx.x]; __syncthreads();"
        " p[threadIdx.x] = s[31 - threadIdx.x]; }\n";
    MT_CHECK_ERR(ops->kernel_build(g_emu, shared_mem, "mt_bad_b", &k), MT_ERR_COMPILE,
                 "host C++ compiler");
    if (!mt__nvrtc_available(NULL, 0)) {
        mt_test_cudaemu_report();
        MT_SKIP("libnvrtc not found: the NVRTC half of this case is not run");
    }
    /* C++ that the host compiler accepts but the GPU compiler rejects: a host-only function */
    static const char host_only[] =
        "#include <stdlib.h>\n"
        "extern \"C\" __global__ void mt_bad_c(float *p, long long nwork)\n"
        "{ p[0] = (float)atof(\"1.5\"); }\n";
    MT_CHECK_ERR(ops->kernel_build(g_emu, host_only, "mt_bad_c", &k), MT_ERR_COMPILE, "sm_80");
    MT_CHECK(strstr(mt_last_error(), "nvrtcCompileProgram") != NULL);
    mt_test_cudaemu_report();
}

static int count_prefixed(const char *dir, const char *prefix, const char *suffix)
{
    DIR *dp = opendir(dir);
    MT_CHECK(dp != NULL);
    struct dirent *de;
    int n = 0;
    while ((de = readdir(dp)) != NULL) {
        size_t l = strlen(de->d_name), ls = strlen(suffix);
        if (strncmp(de->d_name, prefix, strlen(prefix)) == 0 && l >= ls &&
            strcmp(de->d_name + l - ls, suffix) == 0)
            n++;
    }
    closedir(dp);
    return n;
}

/* The emulator publishes through the kernel cache's compile-and-publish path: temporaries a
 * killed process left more than a day ago are swept, fresh ones are left to their owner, and
 * MLTRAIN_KEEP_KERNEL_SOURCE=1 keeps the C++ source beside the entry. */
MT_TEST(cache_sweeps_stale_temporaries_and_keeps_sources)
{
    open_devices();
    char dir[1024], stale[1100], fresh[1100];
    snprintf(dir, sizeof dir, "%s/emu-cache", mt_test_tmpdir());
    MT_CHECK(mkdir(dir, 0700) == 0);
    snprintf(stale, sizeof stale, "%s/.tmp-stale-killed", dir);
    snprintf(fresh, sizeof fresh, "%s/.tmp-fresh-other", dir);
    FILE *f = fopen(stale, "w");
    MT_CHECK(f != NULL);
    fclose(f);
    f = fopen(fresh, "w");
    MT_CHECK(f != NULL);
    fclose(f);
    struct utimbuf old = {.actime = time(NULL) - 3 * 86400, .modtime = time(NULL) - 3 * 86400};
    MT_CHECK(utime(stale, &old) == 0);
    const char *prev = getenv("MLTRAIN_CACHE_DIR");
    char *saved = prev ? strdup(prev) : NULL;
    setenv("MLTRAIN_CACHE_DIR", dir, 1);
    setenv("MLTRAIN_KEEP_KERNEL_SOURCE", "1", 1);
    char src[256];
    snprintf(src, sizeof src,
             "extern \"C\" __global__ void mt_keep_src(float *p, long long nwork)\n"
             "{ if (nwork > 0) p[0] = %d.0f; }\n", (int)(getpid() % 1000));
    void *k = NULL;
    mt_status st = g_emu->ops->kernel_build(g_emu, src, "mt_keep_src", &k);
    unsetenv("MLTRAIN_KEEP_KERNEL_SOURCE");
    if (saved) setenv("MLTRAIN_CACHE_DIR", saved, 1);
    else unsetenv("MLTRAIN_CACHE_DIR");
    free(saved);
    MT_CHECK_OK(st);
    struct stat sb;
    MT_CHECK(stat(stale, &sb) != 0); /* swept */
    MT_CHECK(stat(fresh, &sb) == 0); /* not ours, not old */
    MT_CHECK(count_prefixed(dir, "cudaemu-", ".cpp") >= 1);
    mt_test_cudaemu_report();
}

MT_TEST(nvrtc_compiles_every_kernel)
{
    open_devices();
    char why[600];
    if (!mt__nvrtc_available(why, sizeof why)) {
        printf("SKIP: %s\n", why);
        MT_SKIP("libnvrtc not found: the NVRTC check of CUDA kernels is not run here");
    }
    /* one kernel compiled by NVRTC in this process, whatever the kernel cache holds */
    setenv("MLTRAIN_CUDAEMU_RECHECK", "1", 1);
    mt_cudaemu_stats before, after;
    mt__cudaemu_get_stats(&before);
    mt_array h = {0}, d = {0};
    host_input(&h, MT_FLOAT32, N, 1);
    mt_kexpr e;
    mt_kexpr_init(&e);
    int32_t x = mt_kexpr_input(&e, 0, MT_FLOAT32);
    MT_CHECK_OK(mt_kexpr_add_output(&e, mt_kexpr_unary(&e, MT_SOP_SOFTPLUS,
                                                       mt_kexpr_unary(&e, MT_SOP_COS, x))));
    run_both("softplus(cos(x))", &e, 1, &h, 0, NULL, false);
    mt_kexpr_deinit(&e);
    mt__cudaemu_get_stats(&after);
    MT_CHECK(after.kernels >= before.kernels + 1);
    MT_CHECK_EQ_INT(after.nvrtc_checked - before.nvrtc_checked, after.kernels - before.kernels);
    MT_CHECK_EQ_INT(after.nvrtc_cached, before.nvrtc_cached);
    mt_array_clear(&h);
    mt_array_clear(&d);
    mt_test_cudaemu_report();
}
