/* Tests of the elementwise kernel system: mt_kexpr builders and validation, the generated C
 * (compiled by the host compiler) and the interpreter, against independent references computed
 * here with plain long double / __int128 arithmetic and libm, following NumPy's documented
 * semantics; casts against core's mt_dtype_convert; compiled vs interpreted bit for bit; the
 * disk cache across processes; error paths; CUDA/OpenCL renderings. */
#include <dirent.h>
#include <dlfcn.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../src/gpuarray/gpuarray_impl.h"
#include "mltrain/gpuarray.h"
#include "mt_test.h"

#include "kernels_helpers.h"

/* ---------------------------------------------------------------- test values */

#define MAXV 96

typedef struct tvals {
    int n;
    unsigned char data[MAXV * 8]; /* raw elements of the dtype */
} tvals;

static void tv_add_f64(tvals *t, mt_dtype dt, double v)
{
    if (t->n < MAXV) mt_dtype_convert(t->data + (size_t)t->n++ * dsz(dt), dt, 0, &v, MT_FLOAT64, 0, 1);
}

static void tv_add_i64(tvals *t, mt_dtype dt, int64_t v)
{
    if (t->n < MAXV) mt_dtype_convert(t->data + (size_t)t->n++ * dsz(dt), dt, 0, &v, MT_INT64, 0, 1);
}

static void tv_add_u64(tvals *t, mt_dtype dt, uint64_t v)
{
    if (t->n < MAXV) mt_dtype_convert(t->data + (size_t)t->n++ * dsz(dt), dt, 0, &v, MT_UINT64, 0, 1);
}

static const double FLOAT_EDGES[] = {
    0.0,   -0.0,  1.0,   -1.0,  0.5,    -0.5,   1.5,   2.5,   -2.5, 3.0,   -3.0,  0.1,
    -0.75, 7.25,  -7.25, 10.0,  20.0,   -20.0,  30.0,  -30.0, 88.0, -88.0, 100.0, -100.0,
    700.0, -700.0, 1e-3, -1e-3, 0.6931, -0.6931, 1e-7, -0.9,  0.99, 5.0,   -13.0, INFINITY,
    -INFINITY, NAN};

/* Edge values of a dtype: signs, zeros, infinities, NaN, subnormals and limits. */
static void edge_values(mt_dtype dt, tvals *t)
{
    memset(t, 0, sizeof *t);
    switch (mt_dtype_kind(dt)) {
    case 'b': {
        const uint8_t b[] = {0, 1, 2}; /* 2: a non-canonical true byte */
        memcpy(t->data, b, 3);
        t->n = 3;
        return;
    }
    case 'i': {
        const int64_t v[] = {0, 1, -1, 2, -2, 3, -3, 5, -7, 7, 13, 31, 32, 33, 63, 64, 100, -100};
        for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) tv_add_i64(t, dt, v[i]);
        int w = 8 * (int)dsz(dt);
        int64_t mx = w == 64 ? INT64_MAX : (int64_t)((1ull << (w - 1)) - 1), mn = -mx - 1;
        tv_add_i64(t, dt, mx);
        tv_add_i64(t, dt, mn);
        tv_add_i64(t, dt, mx - 1);
        tv_add_i64(t, dt, mn + 1);
        return;
    }
    case 'u': {
        const uint64_t v[] = {0, 1, 2, 3, 5, 7, 13, 31, 32, 33, 63, 64, 100, 200};
        for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) tv_add_u64(t, dt, v[i]);
        uint64_t mx = mask_w(dt);
        tv_add_u64(t, dt, mx);
        tv_add_u64(t, dt, mx - 1);
        tv_add_u64(t, dt, mx / 2);
        tv_add_u64(t, dt, mx / 2 + 1);
        return;
    }
    default:
        break;
    }
    for (size_t i = 0; i < sizeof FLOAT_EDGES / sizeof FLOAT_EDGES[0]; i++)
        tv_add_f64(t, dt, FLOAT_EDGES[i]);
    switch (dt) {
    case MT_FLOAT16: {
        const double v[] = {65504.0, -65504.0, 0x1p-14, 0x1p-24, 3 * 0x1p-24, -0x1p-20, 1000.0};
        for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) tv_add_f64(t, dt, v[i]);
        break;
    }
    case MT_BFLOAT16: {
        const double v[] = {3.3895313892515355e38, -3.3895313892515355e38, 0x1p-126, 0x1p-133, 1e30};
        for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) tv_add_f64(t, dt, v[i]);
        break;
    }
    case MT_FLOAT32: {
        const double v[] = {FLT_MAX, -FLT_MAX, FLT_MIN, 0x1p-149, -1e-40, 1e30, 16777217.0};
        for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) tv_add_f64(t, dt, v[i]);
        break;
    }
    default: {
        const double v[] = {DBL_MAX, -DBL_MAX, DBL_MIN, 0x1p-1074, -1e-310, 1e300, 1e30};
        for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) tv_add_f64(t, dt, v[i]);
        break;
    }
    }
}

/* x[i], y[i] over all pairs of the edge values. */
static int pairs(const tvals *t, mt_dtype dt, unsigned char **x, unsigned char **y)
{
    int n = t->n * t->n;
    *x = malloc((size_t)n * dsz(dt));
    *y = malloc((size_t)n * dsz(dt));
    MT_CHECK(*x && *y);
    for (int i = 0; i < t->n; i++)
        for (int j = 0; j < t->n; j++) {
            memcpy(*x + (size_t)(i * t->n + j) * dsz(dt), t->data + (size_t)i * dsz(dt), dsz(dt));
            memcpy(*y + (size_t)(i * t->n + j) * dsz(dt), t->data + (size_t)j * dsz(dt), dsz(dt));
        }
    return n;
}

/* ---------------------------------------------------------------- independent references */

/* Python / NumPy floor division and modulo of floats, from the definition: the remainder is
 * a - q*b with q = floor(a / b) taken exactly, so it has the sign of b; b = 0 gives a / b and
 * NaN, infinite a gives NaN, and a finite a over an infinite b follows Python. */
static void py_divmod(long double a, long double b, long double *div, long double *mod)
{
    if (isnan(a) || isnan(b) || isinf(a)) {
        *div = b == 0 ? a / b : NAN;
        *mod = NAN;
        return;
    }
    if (b == 0) {
        *div = a / b;
        *mod = NAN;
        return;
    }
    if (isinf(b)) {
        if (a == 0) {
            *div = copysignl(0, a / b);
            *mod = copysignl(0, b);
        } else if ((a > 0) == (b > 0)) {
            *div = copysignl(0, a / b);
            *mod = a;
        } else {
            *div = -1;
            *mod = b;
        }
        return;
    }
    /* fmod is exact; the remainder then takes the sign of b, and a - mod is an exact multiple
     * of b whose quotient is the floor */
    long double m = fmodl(a, b);
    if (m != 0 && ((m < 0) != (b < 0))) m += b;
    long double q = rintl((a - m) / b);
    *div = q == 0 ? copysignl(0, a / b) : q;
    *mod = m == 0 ? copysignl(0, b) : m;
}

static long double fref(mt_sop op, long double x, long double y)
{
    long double d, m;
    switch (op) {
    case MT_SOP_NEG: return -x;
    case MT_SOP_ABS: return fabsl(x);
    case MT_SOP_SIGN: return isnan(x) ? x : x > 0 ? 1 : x < 0 ? -1 : 0;
    case MT_SOP_RECIP: return 1 / x;
    case MT_SOP_SQUARE: return x * x;
    case MT_SOP_SQRT: return sqrtl(x);
    case MT_SOP_RSQRT: return 1 / sqrtl(x);
    case MT_SOP_EXP: return expl(x);
    case MT_SOP_EXP2: return exp2l(x);
    case MT_SOP_EXPM1: return expm1l(x);
    case MT_SOP_LOG: return logl(x);
    case MT_SOP_LOG2: return log2l(x);
    case MT_SOP_LOG10: return log10l(x);
    case MT_SOP_LOG1P: return log1pl(x);
    case MT_SOP_LOG1MEXP: return x < -1 ? log1pl(-expl(x)) : logl(-expm1l(x));
    case MT_SOP_SIN: return sinl(x);
    case MT_SOP_COS: return cosl(x);
    case MT_SOP_TAN: return tanl(x);
    case MT_SOP_ASIN: return asinl(x);
    case MT_SOP_ACOS: return acosl(x);
    case MT_SOP_ATAN: return atanl(x);
    case MT_SOP_SINH: return sinhl(x);
    case MT_SOP_COSH: return coshl(x);
    case MT_SOP_TANH: return tanhl(x);
    case MT_SOP_ERF: return erfl(x);
    case MT_SOP_ERFC: return erfcl(x);
    case MT_SOP_SIGMOID: return 1 / (1 + expl(-x));
    case MT_SOP_SOFTPLUS: return x > 100 ? x + log1pl(expl(-x)) : log1pl(expl(x));
    case MT_SOP_RELU: return isnan(x) ? x : x > 0 ? x : 0;
    case MT_SOP_FLOOR: return floorl(x);
    case MT_SOP_CEIL: return ceill(x);
    case MT_SOP_ROUND: return rintl(x); /* ties to even in the default rounding mode */
    case MT_SOP_TRUNC: return truncl(x);
    case MT_SOP_ADD: return x + y;
    case MT_SOP_SUB: return x - y;
    case MT_SOP_MUL: return x * y;
    case MT_SOP_DIV: return x / y;
    case MT_SOP_FLOORDIV: py_divmod(x, y, &d, &m); return d;
    case MT_SOP_MOD: py_divmod(x, y, &d, &m); return m;
    case MT_SOP_POW: return powl(x, y);
    case MT_SOP_MAX: return isnan(x) || isnan(y) ? NAN : fmaxl(x, y);
    case MT_SOP_MIN: return isnan(x) || isnan(y) ? NAN : fminl(x, y);
    case MT_SOP_ATAN2: return atan2l(x, y);
    case MT_SOP_LOGADDEXP:
        if (isnan(x) || isnan(y)) return NAN;
        if (x == y) return x + logl(2.0L);
        return fmaxl(x, y) + log1pl(expl(-fabsl(x - y)));
    default: return NAN;
    }
}

/* Ops whose float result is a single correctly rounded operation (1 ulp allowed for double
 * rounding through long double / float); the rest are library functions or compositions. */
static bool f_exact(mt_sop op)
{
    switch (op) {
    case MT_SOP_NEG: case MT_SOP_ABS: case MT_SOP_SIGN: case MT_SOP_RECIP: case MT_SOP_SQUARE:
    case MT_SOP_SQRT: case MT_SOP_RELU: case MT_SOP_FLOOR: case MT_SOP_CEIL: case MT_SOP_ROUND:
    case MT_SOP_TRUNC: case MT_SOP_ADD: case MT_SOP_SUB: case MT_SOP_MUL: case MT_SOP_DIV:
    case MT_SOP_MAX: case MT_SOP_MIN: case MT_SOP_FLOORDIV: case MT_SOP_MOD:
        return true;
    default:
        return false;
    }
}

typedef __int128 i128;
typedef unsigned __int128 u128;

/* Expected result bits of an integer op (NumPy: wrap-around, floor division, x // 0 == 0,
 * shifts by >= the width give 0 (or -1 for negative >>)). */
static uint64_t iref(mt_sop op, mt_dtype dt, uint64_t xb, uint64_t yb)
{
    bool sg = mt_dtype_kind(dt) == 'i';
    int w = 8 * (int)dsz(dt);
    i128 a = sg ? (i128)sext(xb, dt) : (i128)xb, b = sg ? (i128)sext(yb, dt) : (i128)yb;
    i128 r = 0;
    switch (op) {
    case MT_SOP_NEG: r = -a; break;
    case MT_SOP_ABS: r = a < 0 ? -a : a; break;
    case MT_SOP_SIGN: r = (a > 0) - (a < 0); break;
    case MT_SOP_SQUARE: r = (i128)((u128)a * (u128)a); break;
    case MT_SOP_RELU: r = a > 0 ? a : 0; break;
    case MT_SOP_FLOOR: case MT_SOP_CEIL: case MT_SOP_ROUND: case MT_SOP_TRUNC: r = a; break;
    case MT_SOP_BITNOT: r = ~a; break;
    case MT_SOP_ADD: r = a + b; break;
    case MT_SOP_SUB: r = a - b; break;
    case MT_SOP_MUL: r = (i128)((u128)a * (u128)b); break;
    case MT_SOP_DIV: case MT_SOP_FLOORDIV: case MT_SOP_MOD: {
        if (b == 0) {
            r = 0;
            break;
        }
        i128 q = a / b;
        if (a % b != 0 && ((a < 0) != (b < 0))) q -= 1;
        r = op == MT_SOP_MOD ? a - q * b : q;
        break;
    }
    case MT_SOP_POW:
        if (b < 0) {
            r = a == 1 ? 1 : a == -1 ? ((b & 1) ? -1 : 1) : 0;
        } else {
            u128 acc = 1, base = (u128)a;
            for (i128 e = b; e > 0; e >>= 1) {
                if (e & 1) acc = (acc * base) & (u128)~0ull;
                base = (base * base) & (u128)~0ull;
            }
            r = (i128)acc;
        }
        break;
    case MT_SOP_MAX: r = a > b ? a : b; break;
    case MT_SOP_MIN: r = a < b ? a : b; break;
    case MT_SOP_BITAND: r = a & b; break;
    case MT_SOP_BITOR: r = a | b; break;
    case MT_SOP_BITXOR: r = a ^ b; break;
    case MT_SOP_LSHIFT: r = (b < 0 || b >= w) ? 0 : (i128)((u128)a << (int)b); break;
    case MT_SOP_RSHIFT:
        if (b < 0 || b >= w) r = a < 0 ? -1 : 0;
        else r = a >= 0 ? a / ((i128)1 << (int)b) : -((-a + ((i128)1 << (int)b) - 1) / ((i128)1 << (int)b));
        break;
    default: r = 0; break;
    }
    return (uint64_t)(u128)r & mask_w(dt);
}

/* Expected bool of a bool-result op (comparisons, logical ops, predicates). */
static int bref(mt_sop op, mt_dtype dt, const void *xd, const void *yd, size_t i)
{
    char k = mt_dtype_kind(dt);
    long double x, y;
    if (k == 'f') {
        x = as_f64(dt, xd, i);
        y = as_f64(dt, yd, i);
    } else if (k == 'b') {
        x = ((const uint8_t *)xd)[i] != 0;
        y = ((const uint8_t *)yd)[i] != 0;
    } else if (k == 'i') {
        x = (long double)sext(raw_bits(dt, xd, i), dt);
        y = (long double)sext(raw_bits(dt, yd, i), dt);
    } else {
        x = (long double)raw_bits(dt, xd, i); /* 64-bit mantissa: uint64 is exact */
        y = (long double)raw_bits(dt, yd, i);
    }
    switch (op) {
    case MT_SOP_ISNAN: return isnan(x) != 0;
    case MT_SOP_ISINF: return isinf(x) != 0; /* glibc's isinf gives -1 for -inf */
    case MT_SOP_ISFINITE: return isfinite(x) != 0;
    case MT_SOP_NOT: return !(x != 0);
    case MT_SOP_EQ: return x == y;
    case MT_SOP_NE: return x != y;
    case MT_SOP_LT: return x < y;
    case MT_SOP_LE: return x <= y;
    case MT_SOP_GT: return x > y;
    case MT_SOP_GE: return x >= y;
    case MT_SOP_AND: return (x != 0) && (y != 0);
    case MT_SOP_OR: return (x != 0) || (y != 0);
    case MT_SOP_XOR: return (x != 0) != (y != 0);
    default: return -1;
    }
}

/* The ops each kind of dtype accepts, split by result: same dtype (ops0) or bool (ops1). */
typedef struct opset {
    int n0, n1;
    mt_sop ops0[64], ops1[32];
} opset;

static void ops_for(mt_dtype dt, opset *s)
{
    static const mt_sop fl0[] = {
        MT_SOP_NEG, MT_SOP_ABS, MT_SOP_SIGN, MT_SOP_RECIP, MT_SOP_SQUARE, MT_SOP_SQRT,
        MT_SOP_RSQRT, MT_SOP_EXP, MT_SOP_EXP2, MT_SOP_EXPM1, MT_SOP_LOG, MT_SOP_LOG2,
        MT_SOP_LOG10, MT_SOP_LOG1P, MT_SOP_LOG1MEXP, MT_SOP_SIN, MT_SOP_COS, MT_SOP_TAN,
        MT_SOP_ASIN, MT_SOP_ACOS, MT_SOP_ATAN, MT_SOP_SINH, MT_SOP_COSH, MT_SOP_TANH, MT_SOP_ERF,
        MT_SOP_ERFC, MT_SOP_SIGMOID, MT_SOP_SOFTPLUS, MT_SOP_RELU, MT_SOP_FLOOR, MT_SOP_CEIL,
        MT_SOP_ROUND, MT_SOP_TRUNC, MT_SOP_ADD, MT_SOP_SUB, MT_SOP_MUL, MT_SOP_DIV,
        MT_SOP_FLOORDIV, MT_SOP_MOD, MT_SOP_POW, MT_SOP_MAX, MT_SOP_MIN, MT_SOP_ATAN2,
        MT_SOP_LOGADDEXP};
    static const mt_sop int0[] = {
        MT_SOP_NEG, MT_SOP_ABS, MT_SOP_SIGN, MT_SOP_SQUARE, MT_SOP_RELU, MT_SOP_FLOOR,
        MT_SOP_CEIL, MT_SOP_ROUND, MT_SOP_TRUNC, MT_SOP_BITNOT, MT_SOP_ADD, MT_SOP_SUB,
        MT_SOP_MUL, MT_SOP_DIV, MT_SOP_FLOORDIV, MT_SOP_MOD, MT_SOP_POW, MT_SOP_MAX, MT_SOP_MIN,
        MT_SOP_BITAND, MT_SOP_BITOR, MT_SOP_BITXOR, MT_SOP_LSHIFT, MT_SOP_RSHIFT};
    static const mt_sop bool0[] = {MT_SOP_MAX, MT_SOP_MIN, MT_SOP_BITNOT, MT_SOP_BITAND,
                                   MT_SOP_BITOR, MT_SOP_BITXOR};
    static const mt_sop all1[] = {MT_SOP_ISNAN, MT_SOP_ISINF, MT_SOP_ISFINITE, MT_SOP_NOT,
                                  MT_SOP_EQ, MT_SOP_NE, MT_SOP_LT, MT_SOP_LE, MT_SOP_GT,
                                  MT_SOP_GE, MT_SOP_AND, MT_SOP_OR, MT_SOP_XOR};
    const mt_sop *l0 = mt_dtype_is_float(dt) ? fl0 : dt == MT_BOOL ? bool0 : int0;
    s->n0 = mt_dtype_is_float(dt) ? (int)(sizeof fl0 / sizeof fl0[0])
            : dt == MT_BOOL ? (int)(sizeof bool0 / sizeof bool0[0])
                            : (int)(sizeof int0 / sizeof int0[0]);
    memcpy(s->ops0, l0, (size_t)s->n0 * sizeof l0[0]);
    s->n1 = (int)(sizeof all1 / sizeof all1[0]);
    memcpy(s->ops1, all1, sizeof all1);
}

/* out0 = ops0[sel](x, y), out1 = ops1[sel](x, y): every op of a dtype in one kernel, picked by
 * the int32 param 0 through a chain of WHERE nodes (one compile per dtype). */
static void build_ops_expr(mt_kexpr *e, mt_dtype dt, const opset *s)
{
    mt_kexpr_init(e);
    int32_t x = mt_kexpr_input(e, 0, dt), y = mt_kexpr_input(e, 1, dt);
    int32_t sel = mt_kexpr_param(e, 0, MT_INT32);
    int32_t r0 = x, r1 = mt_kexpr_const(e, mt_scalar_bool(false), MT_BOOL);
    for (int k = s->n0 - 1; k >= 0; k--) {
        mt_sop op = s->ops0[k];
        int32_t v = mt_sop_arity(op) == 1 ? mt_kexpr_unary(e, op, x) : mt_kexpr_binary(e, op, x, y);
        int32_t c = mt_kexpr_binary(e, MT_SOP_EQ, sel, mt_kexpr_const(e, mt_scalar_i64(k), MT_INT32));
        r0 = mt_kexpr_where(e, c, v, r0);
    }
    for (int k = s->n1 - 1; k >= 0; k--) {
        mt_sop op = s->ops1[k];
        int32_t v = mt_sop_arity(op) == 1 ? mt_kexpr_unary(e, op, x) : mt_kexpr_binary(e, op, x, y);
        int32_t c = mt_kexpr_binary(e, MT_SOP_EQ, sel, mt_kexpr_const(e, mt_scalar_i64(k), MT_INT32));
        r1 = mt_kexpr_where(e, c, v, r1);
    }
    MT_CHECK_OK(mt_kexpr_add_output(e, r0));
    MT_CHECK_OK(mt_kexpr_add_output(e, r1));
}

/* ---------------------------------------------------------------- every op on every dtype */

static void fail_op(mt_sop op, mt_dtype dt, const char *path, int i, double x, double y,
                    double got, double want)
{
    mt_test_fail(__FILE__, __LINE__, "%s on %s (%s path), element %d: x=%.17g y=%.17g got %.17g "
                 "want %.17g", mt_sop_name(op), mt_dtype_name(dt), path, i, x, y, got, want);
}

/* Float tolerances in ulps of the result dtype: host C / the interpreter use the C library
 * (correctly rounded arithmetic and sqrt); OpenCL allows a few ulps for float32 division, sqrt
 * and up to 16 for its built-in functions. */
static double g_ulps_exact = 1.0, g_ulps_fn = 8.0, g_ulps_small = 1.0;

/* Checks op results against the references. */
static void check_op(mt_dtype dt, mt_sop op, bool boolout, const unsigned char *x,
                     const unsigned char *y, const unsigned char *got, int n, const char *path)
{
    for (int i = 0; i < n; i++) {
        if (boolout) {
            int want = bref(op, dt, x, y, (size_t)i);
            if (got[i] != want)
                fail_op(op, dt, path, i, as_f64(dt, x, i), as_f64(dt, y, i), got[i], want);
            continue;
        }
        if (dt == MT_BOOL) {
            int a = x[i] != 0, b = y[i] != 0, want;
            switch (op) {
            case MT_SOP_MAX: case MT_SOP_BITOR: want = a | b; break;
            case MT_SOP_MIN: case MT_SOP_BITAND: want = a & b; break;
            case MT_SOP_BITNOT: want = !a; break;
            default: want = a ^ b; break;
            }
            if (got[i] != want) fail_op(op, dt, path, i, a, b, got[i], want);
            continue;
        }
        if (!mt_dtype_is_float(dt)) {
            uint64_t want = iref(op, dt, raw_bits(dt, x, i), raw_bits(dt, y, i));
            uint64_t g = raw_bits(dt, got, i);
            if (g != want) {
                bool sg = mt_dtype_kind(dt) == 'i';
                fail_op(op, dt, path, i, sg ? (double)sext(raw_bits(dt, x, i), dt) : (double)raw_bits(dt, x, i),
                        sg ? (double)sext(raw_bits(dt, y, i), dt) : (double)raw_bits(dt, y, i),
                        sg ? (double)sext(g, dt) : (double)g, sg ? (double)sext(want, dt) : (double)want);
            }
            continue;
        }
        double xv = as_f64(dt, x, i), yv = as_f64(dt, y, i);
        double want = round_to(dt, (double)fref(op, xv, yv));
        double g = as_f64(dt, got, i);
        bool wide = dt == MT_FLOAT32 || dt == MT_FLOAT64;
        double ulps = !wide ? g_ulps_small : f_exact(op) ? g_ulps_exact : g_ulps_fn;
        if (op == MT_SOP_LOGADDEXP && wide && isfinite(want) && isfinite(g)) {
            /* NumPy's max + log1p(exp(-|x - y|)) cancels when the result is near 0: its error
             * is a few ulps of the operands, not of the result */
            double sc = fmax(fmax(fabs(xv), fabs(yv)), fabs(want));
            if (fabs(g - want) > g_ulps_fn * ulp_at(dt, sc)) fail_op(op, dt, path, i, xv, yv, g, want);
        } else if (!close_ulps(dt, g, want, ulps)) {
            fail_op(op, dt, path, i, xv, yv, g, want);
        }
        /* the sign of zero is part of the contract (NumPy's floor_divide, remainder, sign) */
        if (g == 0 && want == 0 && f_exact(op) && op != MT_SOP_SQRT && signbit(g) != signbit(want) &&
            op != MT_SOP_MAX && op != MT_SOP_MIN && op != MT_SOP_RELU)
            fail_op(op, dt, path, i, xv, yv, g, want);
    }
}

static void run_ops_case(mt_dtype dt)
{
    set_interp(false);
    bool have_cc = mt__hostcc_available();
    mt_device *dev = open_host();
    tvals t;
    edge_values(dt, &t);
    unsigned char *x, *y;
    int n = pairs(&t, dt, &x, &y);
    int64_t n64 = n;
    mt_array in[2] = {mk(dev, dt, 1, &n64, x), mk(dev, dt, 1, &n64, y)};
    mt_array out[2] = {mk_empty(dev, dt, 1, &n64), mk_empty(dev, MT_BOOL, 1, &n64)};
    opset s;
    ops_for(dt, &s);
    mt_kexpr e;
    build_ops_expr(&e, dt, &s);
    int nsel = s.n0 > s.n1 ? s.n0 : s.n1;
    unsigned char *res[2][2][64];
    memset(res, 0, sizeof res);
    for (int pass = have_cc ? 0 : 1; pass < 2; pass++) {
        set_interp(pass == 1);
        const char *path = pass ? "interpreted" : "compiled";
        for (int k = 0; k < nsel; k++) {
            mt_scalar sel = mt_scalar_i64(k);
            MT_CHECK_OK(ew(&e, 2, in, 2, out, 1, &sel));
            res[pass][0][k] = to_host(&out[0]);
            res[pass][1][k] = to_host(&out[1]);
            if (k < s.n0) check_op(dt, s.ops0[k], false, x, y, res[pass][0][k], n, path);
            if (k < s.n1) check_op(dt, s.ops1[k], true, x, y, res[pass][1][k], n, path);
        }
    }
    /* the compiled kernel and the interpreter agree bit for bit, NaN payloads included */
    for (int k = 0; have_cc && k < nsel; k++) {
        for (int o = 0; o < 2; o++) {
            size_t es = o ? 1 : dsz(dt);
            if (memcmp(res[0][o][k], res[1][o][k], (size_t)n * es) == 0) continue;
            for (int i = 0; i < n; i++)
                if (memcmp(res[0][o][k] + i * es, res[1][o][k] + i * es, es) != 0)
                    mt_test_fail(__FILE__, __LINE__, "%s on %s: compiled and interpreted differ at "
                                 "%d (x=%.17g y=%.17g): %#llx vs %#llx",
                                 mt_sop_name(o ? s.ops1[k] : s.ops0[k]), mt_dtype_name(dt), i,
                                 as_f64(dt, x, i), as_f64(dt, y, i),
                                 (unsigned long long)raw_bits(o ? MT_BOOL : dt, res[0][o][k], i),
                                 (unsigned long long)raw_bits(o ? MT_BOOL : dt, res[1][o][k], i));
        }
    }
    for (int p = 0; p < 2; p++)
        for (int o = 0; o < 2; o++)
            for (int k = 0; k < nsel; k++) free(res[p][o][k]);
    set_interp(false);
    mt_kexpr_deinit(&e);
    for (int i = 0; i < 2; i++) {
        mt_array_clear(&in[i]);
        mt_array_clear(&out[i]);
    }
    free(x);
    free(y);
    mt_device_release(dev);
}

MT_TEST(ops_bool) { run_ops_case(MT_BOOL); }
MT_TEST(ops_int8) { run_ops_case(MT_INT8); }
MT_TEST(ops_int16) { run_ops_case(MT_INT16); }
MT_TEST(ops_int32) { run_ops_case(MT_INT32); }
MT_TEST(ops_int64) { run_ops_case(MT_INT64); }
MT_TEST(ops_uint8) { run_ops_case(MT_UINT8); }
MT_TEST(ops_uint16) { run_ops_case(MT_UINT16); }
MT_TEST(ops_uint32) { run_ops_case(MT_UINT32); }
MT_TEST(ops_uint64) { run_ops_case(MT_UINT64); }
MT_TEST(ops_float16) { run_ops_case(MT_FLOAT16); }
MT_TEST(ops_bfloat16) { run_ops_case(MT_BFLOAT16); }
MT_TEST(ops_float32) { run_ops_case(MT_FLOAT32); }
MT_TEST(ops_float64) { run_ops_case(MT_FLOAT64); }

/* ---------------------------------------------------------------- casts */

static const double CAST_EXTRA[] = {
    300.7,       -1.0,          5e9,          1e20,          -3e9,         2.5e19,
    3e9,         1.5e19,        2147483648.0, -2147483648.0, 2147483647.5, -2147483649.0,
    0x1p63,      -0x1p63,       0x1p64,       65535.5,       255.5,        -128.5,
    127.5,       -0.5,          65520.0,      65519.0,       0x1p-25,      0x1.8p-25,
    4294967295.0, 4294967296.0, 18446744073709549568.0, 3.4e38, 1.0 + 0x1p-11, 1.0 + 0x1p-8};

/* Edge values plus float -> int / narrowing cases, cycled to exactly n elements. */
static void cast_values(mt_dtype dt, int n, unsigned char *out)
{
    tvals t;
    edge_values(dt, &t);
    if (mt_dtype_is_float(dt))
        for (size_t i = 0; i < sizeof CAST_EXTRA / sizeof CAST_EXTRA[0]; i++)
            tv_add_f64(&t, dt, CAST_EXTRA[i]);
    for (int i = 0; i < n; i++)
        memcpy(out + (size_t)i * dsz(dt), t.data + (size_t)(i % t.n) * dsz(dt), dsz(dt));
}

/* For each destination dtype: one kernel with an input of every source dtype and a WHERE
 * chain selecting cast(input S) by param 0; compared bit for bit with core's converter. */
static void run_cast_case(const mt_dtype *dsts, int ndst)
{
    set_interp(false);
    bool have_cc = mt__hostcc_available();
    mt_device *dev = open_host();
    enum { N = 80 };
    int64_t n64 = N;
    unsigned char src[MT_DTYPE_COUNT][N * 8];
    mt_array in[MT_DTYPE_COUNT];
    for (int s = 0; s < MT_DTYPE_COUNT; s++) {
        cast_values((mt_dtype)s, N, src[s]);
        in[s] = mk(dev, (mt_dtype)s, 1, &n64, src[s]);
    }
    for (int di = 0; di < ndst; di++) {
        mt_dtype d = dsts[di];
        mt_kexpr e;
        mt_kexpr_init(&e);
        int32_t sel = mt_kexpr_param(&e, 0, MT_INT32);
        int32_t r = mt_kexpr_const(&e, mt_scalar_i64(0), d);
        for (int s = MT_DTYPE_COUNT - 1; s >= 0; s--) {
            int32_t v = mt_kexpr_cast(&e, mt_kexpr_input(&e, s, (mt_dtype)s), d);
            int32_t c = mt_kexpr_binary(&e, MT_SOP_EQ, sel, mt_kexpr_const(&e, mt_scalar_i64(s), MT_INT32));
            r = mt_kexpr_where(&e, c, v, r);
        }
        MT_CHECK_OK(mt_kexpr_add_output(&e, r));
        mt_array out = mk_empty(dev, d, 1, &n64);
        for (int pass = have_cc ? 0 : 1; pass < 2; pass++) {
            set_interp(pass == 1);
            for (int s = 0; s < MT_DTYPE_COUNT; s++) {
                mt_scalar p = mt_scalar_i64(s);
                MT_CHECK_OK(ew(&e, MT_DTYPE_COUNT, in, 1, &out, 1, &p));
                unsigned char *got = to_host(&out);
                for (int i = 0; i < N; i++) {
                    uint64_t want = 0, g = raw_bits(d, got, (size_t)i);
                    mt_dtype_convert(&want, d, 0, src[s] + (size_t)i * dsz((mt_dtype)s), (mt_dtype)s, 0, 1);
                    if (g != want)
                        mt_test_fail(__FILE__, __LINE__, "cast %s -> %s (%s), element %d (%.17g): "
                                     "got %#llx want %#llx", mt_dtype_name((mt_dtype)s),
                                     mt_dtype_name(d), pass ? "interpreted" : "compiled", i,
                                     as_f64((mt_dtype)s, src[s], (size_t)i), (unsigned long long)g,
                                     (unsigned long long)want);
                }
                free(got);
            }
        }
        mt_array_clear(&out);
        mt_kexpr_deinit(&e);
    }
    set_interp(false);
    for (int s = 0; s < MT_DTYPE_COUNT; s++) mt_array_clear(&in[s]);
    mt_device_release(dev);
}

MT_TEST(cast_to_bool_and_ints)
{
    const mt_dtype d[] = {MT_BOOL, MT_INT8, MT_INT16, MT_INT32, MT_INT64,
                          MT_UINT8, MT_UINT16, MT_UINT32, MT_UINT64};
    run_cast_case(d, 9);
}

MT_TEST(cast_to_floats)
{
    const mt_dtype d[] = {MT_FLOAT16, MT_BFLOAT16, MT_FLOAT32, MT_FLOAT64};
    run_cast_case(d, 4);
}

/* splitmix64: deterministic test data */
static uint64_t mix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Inputs of half_conversions_exhaustive: every 16-bit pattern; floats and doubles at, just
 * below and above 16-bit rounding ties (and arbitrary ones); integers of every magnitude. */
static void half_inputs(int N, uint16_t *h, float *f, double *d, int64_t *iv, uint64_t *uv)
{
    uint64_t seed = 42;
    for (int i = 0; i < N; i++) {
        h[i] = (uint16_t)i;
        uint64_t r = mix64(&seed);
        /* floats: a 16-bit pattern widened, then nudged to the tie or one ulp around it */
        uint16_t base = (uint16_t)r;
        bool bf = (r >> 16) & 1;
        float v = bf ? mt_bf16_to_f32(base) : mt_f16_to_f32(base);
        uint32_t b;
        memcpy(&b, &v, 4);
        int mode = (int)((r >> 17) % 5);
        uint32_t half = bf ? 0x8000u : (((b >> 23) & 0xFF) >= 113 ? 0x1000u : 0);
        if (mode == 0) b = (uint32_t)(r >> 32);             /* any float */
        else if (half) b += half + (uint32_t)(mode - 2);     /* tie - 1, tie, tie + 1 ulp, +2 */
        memcpy(&f[i], &b, 4);
        uint64_t db;
        double dv = (double)f[i];
        memcpy(&db, &dv, 8);
        if (mode >= 3) db += (r >> 40) & 0xFFFF; /* just above / beyond a float tie */
        memcpy(&d[i], &db, 8);
        int sh = (int)((r >> 20) % 64);
        iv[i] = (int64_t)(r >> sh) * ((r & 2) ? -1 : 1);
        uv[i] = mix64(&seed) >> (int)((r >> 26) % 64);
    }
}

/* 16-bit float loads and stores: every float16 / bfloat16 pattern, and floats, doubles and
 * 64-bit integers at and around every rounding tie, against core's conversions. */
MT_TEST(half_conversions_exhaustive)
{
    set_interp(false);
    bool have_cc = mt__hostcc_available();
    mt_device *dev = open_host();
    enum { N = 1 << 18 };
    int64_t n64 = N;
    uint16_t *h = malloc(N * 2);
    float *f = malloc(N * 4);
    double *d = malloc(N * 8);
    int64_t *iv = malloc(N * 8);
    uint64_t *uv = malloc(N * 8);
    MT_CHECK(h && f && d && iv && uv);
    half_inputs(N, h, f, d, iv, uv);
    mt_array in1[3] = {mk(dev, MT_FLOAT16, 1, &n64, h), mk(dev, MT_BFLOAT16, 1, &n64, h),
                       mk(dev, MT_FLOAT32, 1, &n64, f)};
    mt_array in2[3] = {mk(dev, MT_FLOAT64, 1, &n64, d), mk(dev, MT_INT64, 1, &n64, iv),
                       mk(dev, MT_UINT64, 1, &n64, uv)};
    mt_kexpr e1, e2;
    mt_kexpr_init(&e1);
    mt_kexpr_init(&e2);
    int32_t a = mt_kexpr_input(&e1, 0, MT_FLOAT16), bb = mt_kexpr_input(&e1, 1, MT_BFLOAT16);
    int32_t c = mt_kexpr_input(&e1, 2, MT_FLOAT32);
    MT_CHECK_OK(mt_kexpr_add_output(&e1, mt_kexpr_cast(&e1, a, MT_FLOAT32)));
    MT_CHECK_OK(mt_kexpr_add_output(&e1, mt_kexpr_cast(&e1, bb, MT_FLOAT32)));
    MT_CHECK_OK(mt_kexpr_add_output(&e1, mt_kexpr_cast(&e1, c, MT_FLOAT16)));
    MT_CHECK_OK(mt_kexpr_add_output(&e1, mt_kexpr_cast(&e1, c, MT_BFLOAT16)));
    for (int k = 0; k < 3; k++) {
        mt_dtype sd = k == 0 ? MT_FLOAT64 : k == 1 ? MT_INT64 : MT_UINT64;
        int32_t x = mt_kexpr_input(&e2, k, sd);
        MT_CHECK_OK(mt_kexpr_add_output(&e2, mt_kexpr_cast(&e2, x, MT_FLOAT16)));
        MT_CHECK_OK(mt_kexpr_add_output(&e2, mt_kexpr_cast(&e2, x, MT_BFLOAT16)));
    }
    const mt_dtype o1[4] = {MT_FLOAT32, MT_FLOAT32, MT_FLOAT16, MT_BFLOAT16};
    mt_array out1[4], out2[6];
    for (int j = 0; j < 4; j++) out1[j] = mk_empty(dev, o1[j], 1, &n64);
    for (int j = 0; j < 6; j++) out2[j] = mk_empty(dev, j % 2 ? MT_BFLOAT16 : MT_FLOAT16, 1, &n64);
    for (int pass = have_cc ? 0 : 1; pass < 2; pass++) {
        set_interp(pass == 1);
        MT_CHECK_OK(ew(&e1, 3, in1, 4, out1, 0, NULL));
        MT_CHECK_OK(ew(&e2, 3, in2, 6, out2, 0, NULL));
        uint32_t *g0 = to_host(&out1[0]), *g1 = to_host(&out1[1]);
        uint16_t *g2 = to_host(&out1[2]), *g3 = to_host(&out1[3]);
        for (int i = 0; i < N; i++) {
            float w0 = mt_f16_to_f32(h[i]), w1 = mt_bf16_to_f32(h[i]);
            MT_CHECK(memcmp(&g0[i], &w0, 4) == 0);
            MT_CHECK(memcmp(&g1[i], &w1, 4) == 0);
            if (g2[i] != mt_f32_to_f16(f[i]) || g3[i] != mt_f32_to_bf16(f[i]))
                mt_test_fail(__FILE__, __LINE__, "float %a -> %#x/%#x, want %#x/%#x", (double)f[i],
                             g2[i], g3[i], mt_f32_to_f16(f[i]), mt_f32_to_bf16(f[i]));
        }
        free(g0);
        free(g1);
        free(g2);
        free(g3);
        uint16_t *g[6];
        for (int j = 0; j < 6; j++) g[j] = to_host(&out2[j]);
        for (int i = 0; i < N; i++) {
            uint16_t w[6];
            mt_dtype_convert(&w[0], MT_FLOAT16, 0, &d[i], MT_FLOAT64, 0, 1);
            mt_dtype_convert(&w[1], MT_BFLOAT16, 0, &d[i], MT_FLOAT64, 0, 1);
            mt_dtype_convert(&w[2], MT_FLOAT16, 0, &iv[i], MT_INT64, 0, 1);
            mt_dtype_convert(&w[3], MT_BFLOAT16, 0, &iv[i], MT_INT64, 0, 1);
            mt_dtype_convert(&w[4], MT_FLOAT16, 0, &uv[i], MT_UINT64, 0, 1);
            mt_dtype_convert(&w[5], MT_BFLOAT16, 0, &uv[i], MT_UINT64, 0, 1);
            for (int j = 0; j < 6; j++)
                if (g[j][i] != w[j])
                    mt_test_fail(__FILE__, __LINE__, "%s path, output %d element %d (d=%a i=%lld "
                                 "u=%llu): %#x want %#x", pass ? "interpreted" : "compiled", j, i,
                                 d[i], (long long)iv[i], (unsigned long long)uv[i], g[j][i], w[j]);
        }
        for (int j = 0; j < 6; j++) free(g[j]);
    }
    set_interp(false);
    for (int j = 0; j < 4; j++) mt_array_clear(&out1[j]);
    for (int j = 0; j < 6; j++) mt_array_clear(&out2[j]);
    for (int j = 0; j < 3; j++) {
        mt_array_clear(&in1[j]);
        mt_array_clear(&in2[j]);
    }
    mt_kexpr_deinit(&e1);
    mt_kexpr_deinit(&e2);
    free(h);
    free(f);
    free(d);
    free(iv);
    free(uv);
    mt_device_release(dev);
}

/* ---------------------------------------------------------------- expressions */

MT_TEST(sop_names_and_arity)
{
    MT_CHECK_STR_EQ(mt_sop_name(MT_SOP_ADD), "add");
    MT_CHECK_STR_EQ(mt_sop_name(MT_SOP_LOG1MEXP), "log1mexp");
    MT_CHECK_STR_EQ(mt_sop_name(MT_SOP_RAND_NORMAL), "rand_normal");
    MT_CHECK_STR_EQ(mt_sop_name(MT_SOP_COUNT), "invalid");
    MT_CHECK_STR_EQ(mt_sop_name((mt_sop)-1), "invalid");
    MT_CHECK_EQ_INT(mt_sop_arity(MT_SOP_INPUT), 0);
    MT_CHECK_EQ_INT(mt_sop_arity(MT_SOP_SQRT), 1);
    MT_CHECK_EQ_INT(mt_sop_arity(MT_SOP_ATAN2), 2);
    MT_CHECK_EQ_INT(mt_sop_arity(MT_SOP_WHERE), 3);
    MT_CHECK_EQ_INT(mt_sop_arity(MT_SOP_COUNT), -1);
    for (int op = 0; op < MT_SOP_COUNT; op++) {
        MT_CHECK(strcmp(mt_sop_name((mt_sop)op), "invalid") != 0);
        MT_CHECK(mt_sop_arity((mt_sop)op) >= 0 && mt_sop_arity((mt_sop)op) <= 3);
    }
}

MT_TEST(kexpr_builder_errors)
{
    mt_kexpr e;
    mt_kexpr_init(&e);
    int32_t f = mt_kexpr_input(&e, 0, MT_FLOAT32), i = mt_kexpr_input(&e, 1, MT_INT32);
    int32_t b = mt_kexpr_binary(&e, MT_SOP_LT, f, f);
    MT_CHECK(f == 0 && i == 1 && b == 2);
    MT_CHECK_EQ_INT(e.nodes[b].dtype, MT_BOOL);

    mt_err_clear();
    MT_CHECK_EQ_INT(mt_kexpr_binary(&e, MT_SOP_ADD, f, i), -1);
    MT_CHECK(strstr(mt_last_error(), "operand dtypes differ") && strstr(mt_last_error(), "int32"));
    MT_CHECK_EQ_INT(mt_kexpr_unary(&e, MT_SOP_SQRT, i), -1);
    MT_CHECK(strstr(mt_last_error(), "needs a float operand"));
    MT_CHECK_EQ_INT(mt_kexpr_binary(&e, MT_SOP_BITAND, f, f), -1);
    MT_CHECK(strstr(mt_last_error(), "bool or integer"));
    MT_CHECK_EQ_INT(mt_kexpr_binary(&e, MT_SOP_LSHIFT, b, b), -1);
    MT_CHECK_EQ_INT(mt_kexpr_binary(&e, MT_SOP_ADD, b, b), -1); /* no arithmetic on bool */
    MT_CHECK_EQ_INT(mt_kexpr_where(&e, f, f, f), -1);
    MT_CHECK(strstr(mt_last_error(), "condition"));
    MT_CHECK_EQ_INT(mt_kexpr_where(&e, b, f, i), -1);
    MT_CHECK(strstr(mt_last_error(), "branch dtypes differ"));
    MT_CHECK_EQ_INT(mt_kexpr_unary(&e, MT_SOP_ADD, f), -1);
    MT_CHECK(strstr(mt_last_error(), "not a unary op"));
    MT_CHECK_EQ_INT(mt_kexpr_unary(&e, MT_SOP_CAST, f), -1);
    MT_CHECK_EQ_INT(mt_kexpr_binary(&e, MT_SOP_ADD, f, 99), -1);
    MT_CHECK(strstr(mt_last_error(), "not a node"));
    MT_CHECK_EQ_INT(mt_kexpr_rand(&e, MT_SOP_RAND_UNIFORM, 0, MT_INT32), -1);
    MT_CHECK(strstr(mt_last_error(), "float"));
    MT_CHECK_EQ_INT(mt_kexpr_input(&e, 0, MT_INT64), -1); /* input 0 is float32 already */
    MT_CHECK(strstr(mt_last_error(), "reads input 0"));
    MT_CHECK(mt_kexpr_param(&e, 0, MT_FLOAT32) >= 0);
    MT_CHECK_EQ_INT(mt_kexpr_param(&e, 0, MT_INT32), -1);
    MT_CHECK_EQ_INT(mt_kexpr_rand(&e, MT_SOP_RAND_UNIFORM, 0, MT_FLOAT32), -1); /* param 0 is f32 */
    MT_CHECK(strstr(mt_last_error(), "param"));

    /* -1 propagates without a new message: one check at the end suffices */
    mt_err_clear();
    MT_CHECK_EQ_INT(mt_kexpr_unary(&e, MT_SOP_SQRT, i), -1);
    char first[256];
    snprintf(first, sizeof first, "%s", mt_last_error());
    int32_t t = mt_kexpr_binary(&e, MT_SOP_MUL, mt_kexpr_unary(&e, MT_SOP_EXP, -1), f);
    t = mt_kexpr_where(&e, b, t, f);
    t = mt_kexpr_cast(&e, t, MT_FLOAT64);
    MT_CHECK_EQ_INT(t, -1);
    MT_CHECK_STR_EQ(mt_last_error(), first);
    MT_CHECK_ERR(mt_kexpr_add_output(&e, t), MT_ERR_INVALID, "an earlier builder failed");

    /* validation of hand-made node arrays */
    mt_kexpr h;
    mt_kexpr_init(&h);
    MT_CHECK_ERR(mt_kexpr_validate(&h), MT_ERR_INVALID, "0 outputs");
    mt_knode nodes[3];
    memset(nodes, 0, sizeof nodes);
    nodes[0] = (mt_knode){.op = MT_SOP_INPUT, .dtype = MT_FLOAT32, .a = -1, .b = -1, .c = -1, .arg = 0};
    nodes[1] = (mt_knode){.op = MT_SOP_ADD, .dtype = MT_FLOAT32, .a = 0, .b = 2, .c = -1, .arg = -1};
    nodes[2] = (mt_knode){.op = MT_SOP_NEG, .dtype = MT_FLOAT32, .a = 0, .b = -1, .c = -1, .arg = -1};
    h.nodes = nodes;
    h.n = h.cap = 3;
    h.nouts = 1;
    h.outs[0] = 1;
    MT_CHECK_ERR(mt_kexpr_validate(&h), MT_ERR_INVALID, "not an earlier node");
    nodes[1].b = 0;
    MT_CHECK_OK(mt_kexpr_validate(&h));
    nodes[2].dtype = MT_FLOAT64;
    MT_CHECK_ERR(mt_kexpr_validate(&h), MT_ERR_DTYPE, "result dtype must be float32");
    nodes[2].dtype = MT_FLOAT32;
    h.outs[0] = 7;
    MT_CHECK_ERR(mt_kexpr_validate(&h), MT_ERR_INVALID, "output 0 refers to node 7");
    h.outs[0] = 1;
    nodes[1].op = (mt_sop)999;
    MT_CHECK_ERR(mt_kexpr_validate(&h), MT_ERR_INVALID, "invalid op");

    mt_kexpr o;
    mt_kexpr_init(&o);
    int32_t x = mt_kexpr_input(&o, 0, MT_FLOAT32);
    for (int k = 0; k < MT_MAX_DIMS; k++) MT_CHECK_OK(mt_kexpr_add_output(&o, x));
    MT_CHECK_ERR(mt_kexpr_add_output(&o, x), MT_ERR_RANGE, "at most 8");
    mt_kexpr_deinit(&o);
    mt_kexpr_deinit(&e);
}

/* Builds a*b+c with a constant; `garbage` fills node padding first (hash must ignore it). */
static void build_abc(mt_kexpr *e, double cval, bool garbage)
{
    mt_kexpr_init(e);
    int32_t a = mt_kexpr_input(e, 0, MT_FLOAT32), b = mt_kexpr_input(e, 1, MT_FLOAT32);
    int32_t c = mt_kexpr_const(e, mt_scalar_f64(cval), MT_FLOAT32);
    MT_CHECK_OK(mt_kexpr_add_output(e, mt_kexpr_binary(e, MT_SOP_ADD, mt_kexpr_binary(e, MT_SOP_MUL, a, b), c)));
    if (garbage) {
        mt_knode *copy = malloc((size_t)e->n * sizeof *copy);
        MT_CHECK(copy);
        memset(copy, 0x5A, (size_t)e->n * sizeof *copy);
        for (int32_t k = 0; k < e->n; k++) {
            copy[k].op = e->nodes[k].op;
            copy[k].dtype = e->nodes[k].dtype;
            copy[k].a = e->nodes[k].a;
            copy[k].b = e->nodes[k].b;
            copy[k].c = e->nodes[k].c;
            copy[k].arg = e->nodes[k].arg;
            copy[k].value.dtype = e->nodes[k].value.dtype;
            if (e->nodes[k].op == MT_SOP_CONST) copy[k].value.v.f = e->nodes[k].value.v.f;
        }
        memcpy(e->nodes, copy, (size_t)e->n * sizeof *copy);
        free(copy);
    }
}

MT_TEST(kexpr_hash_and_print)
{
    mt_kexpr e1, e2, e3, e4;
    build_abc(&e1, 1.5, false);
    build_abc(&e2, 1.5, true);
    build_abc(&e3, 2.5, false);
    build_abc(&e4, -0.0, false);
    MT_CHECK(mt_kexpr_hash(&e1) == mt_kexpr_hash(&e2));
    MT_CHECK(mt_kexpr_hash(&e1) != mt_kexpr_hash(&e3));
    mt_kexpr_deinit(&e3);
    build_abc(&e3, 0.0, false);
    MT_CHECK(mt_kexpr_hash(&e3) != mt_kexpr_hash(&e4)); /* -0.0 and 0.0 are different kernels */
    /* the same value given as another scalar kind canonicalises to the node's dtype */
    mt_kexpr e5;
    mt_kexpr_init(&e5);
    int32_t a = mt_kexpr_input(&e5, 0, MT_FLOAT32), b = mt_kexpr_input(&e5, 1, MT_FLOAT32);
    int32_t c = mt_kexpr_const(&e5, mt_scalar_f64(1.5000000000000001), MT_FLOAT32);
    MT_CHECK_OK(mt_kexpr_add_output(&e5, mt_kexpr_binary(&e5, MT_SOP_ADD, mt_kexpr_binary(&e5, MT_SOP_MUL, a, b), c)));
    MT_CHECK(mt_kexpr_hash(&e1) == mt_kexpr_hash(&e5));
    /* a forked process computes the same hash (nothing address- or run-dependent) */
    int fds[2];
    MT_CHECK(pipe(fds) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        mt_kexpr ec;
        build_abc(&ec, 1.5, true);
        uint64_t hc = mt_kexpr_hash(&ec);
        ssize_t w = write(fds[1], &hc, 8);
        _exit(w == 8 ? 0 : 1);
    }
    uint64_t hc = 0;
    MT_CHECK(read(fds[0], &hc, 8) == 8);
    int status;
    waitpid(pid, &status, 0);
    close(fds[0]);
    close(fds[1]);
    MT_CHECK(hc == mt_kexpr_hash(&e1));

    mt_strbuf sb;
    mt_strbuf_init(&sb);
    mt_kexpr_print(&e1, &sb);
    MT_CHECK_STR_EQ(sb.data, "o0 = add(mul(i0, i1), 1.5:float32)");
    mt_strbuf_clear(&sb);
    mt_kexpr s;
    mt_kexpr_init(&s);
    int32_t x = mt_kexpr_input(&s, 0, MT_FLOAT64);
    int32_t ex = mt_kexpr_unary(&s, MT_SOP_EXP, x);
    MT_CHECK_OK(mt_kexpr_add_output(&s, mt_kexpr_binary(&s, MT_SOP_DIV, ex, mt_kexpr_binary(&s, MT_SOP_ADD, ex, mt_kexpr_param(&s, 0, MT_FLOAT64)))));
    MT_CHECK_OK(mt_kexpr_add_output(&s, mt_kexpr_cast(&s, mt_kexpr_binary(&s, MT_SOP_GT, x, x), MT_INT8)));
    mt_kexpr_print(&s, &sb);
    MT_CHECK_STR_EQ(sb.data, "t1 = exp(i0); o0 = div(t1, add(t1, p0)); o1 = cast<int8>(gt(i0, i0))");
    mt_strbuf_deinit(&sb);
    mt_kexpr_deinit(&s);
    mt_kexpr_deinit(&e1);
    mt_kexpr_deinit(&e2);
    mt_kexpr_deinit(&e3);
    mt_kexpr_deinit(&e4);
    mt_kexpr_deinit(&e5);
}

MT_TEST(collapse_dims)
{
    /* a C-contiguous (2,3,4) float32 and a broadcast row collapse to (6,4) */
    int64_t dims[3] = {2, 3, 4};
    int64_t s0[3] = {48, 16, 4}, s1[3] = {0, 0, 4}, *sets[2] = {s0, s1};
    MT_CHECK_EQ_INT(mt__collapse_dims(3, dims, 2, sets), 2);
    MT_CHECK(dims[0] == 6 && dims[1] == 4 && s0[0] == 16 && s0[1] == 4 && s1[0] == 0 && s1[1] == 4);
    /* all contiguous: one dim */
    int64_t d2[3] = {2, 3, 4}, a2[3] = {48, 16, 4}, b2[3] = {96, 32, 8}, *t2[2] = {a2, b2};
    MT_CHECK_EQ_INT(mt__collapse_dims(3, d2, 2, t2), 1);
    MT_CHECK(d2[0] == 24 && a2[0] == 4 && b2[0] == 8);
    /* length-1 dims vanish whatever their strides; a transposed set blocks merging */
    int64_t d3[4] = {1, 5, 1, 3}, a3[4] = {999, 12, 7, 4}, b3[4] = {0, 4, 0, 20}, *t3[2] = {a3, b3};
    MT_CHECK_EQ_INT(mt__collapse_dims(4, d3, 2, t3), 2);
    MT_CHECK(d3[0] == 5 && d3[1] == 3 && a3[0] == 12 && a3[1] == 4 && b3[0] == 4 && b3[1] == 20);
    /* size 1 -> 0 dims; size 0 -> one dim of 0 */
    int64_t d4[2] = {1, 1}, a4[2] = {8, 8}, *t4[1] = {a4};
    MT_CHECK_EQ_INT(mt__collapse_dims(2, d4, 1, t4), 0);
    int64_t d5[3] = {4, 0, 2}, a5[3] = {8, 8, 4}, *t5[1] = {a5};
    MT_CHECK_EQ_INT(mt__collapse_dims(3, d5, 1, t5), 1);
    MT_CHECK_EQ_INT(d5[0], 0);
    /* negative strides merge when consistent */
    int64_t d6[2] = {3, 4}, a6[2] = {-16, -4}, *t6[1] = {a6};
    MT_CHECK_EQ_INT(mt__collapse_dims(2, d6, 1, t6), 1);
    MT_CHECK(d6[0] == 12 && a6[0] == -4);
}

/* ---------------------------------------------------------------- layouts */

/* Element (i, j, k) of a host copy of a view, addressed from the view's own strides. */
static float at3(const char *base, const mt_array *v, int64_t i, int64_t j, int64_t k)
{
    float f;
    memcpy(&f, base + v->offset + i * v->strides[0] + j * v->strides[1] + k * v->strides[2], 4);
    return f;
}

static void *buffer_copy(const mt_array *a)
{
    size_t n = mt_buffer_size(a->buf);
    void *p = malloc(n);
    MT_CHECK(p);
    MT_CHECK_OK(mt_buffer_read(p, a->buf, 0, n, NULL));
    return p;
}

/* Broadcasting, negative and non-unit strides, a transposed input, a 0-d input, an F-ordered
 * output and a strided output view, on `devname`, against plain loops over indices. */
static void run_views_case(const char *devname, bool interp)
{
    mt_device *dev = NULL;
    mt_status st = mt_device_open(&dev, devname);
    if (st != MT_OK) MT_SKIP("device not available");
    set_interp(interp);
    const int64_t da[3] = {4, 5, 6}, db[2] = {5, 1}, dd[3] = {4, 5, 12}, de[3] = {6, 5, 4},
                  dob[3] = {4, 5, 12};
    float A[120], B[5], C = 1.5f, D[240], E[120];
    for (int i = 0; i < 120; i++) A[i] = (float)i * 0.25f - 3.0f;
    for (int i = 0; i < 5; i++) B[i] = (float)(i + 1) * 1.125f;
    for (int i = 0; i < 240; i++) D[i] = (float)(i % 17) - 8.5f;
    for (int i = 0; i < 120; i++) E[i] = 1.0f / (float)(i + 1);
    unsigned char O1[240];
    memset(O1, 7, sizeof O1);
    mt_array a = mk(dev, MT_FLOAT32, 3, da, A), b = mk(dev, MT_FLOAT32, 2, db, B);
    mt_array c = mk(dev, MT_FLOAT32, 0, NULL, &C), dbase = mk(dev, MT_FLOAT32, 3, dd, D);
    mt_array ebase = mk(dev, MT_FLOAT32, 3, de, E), obase = mk(dev, MT_BOOL, 3, dob, O1);
    mt_array dv, ev, o1v, o0;
    mt_slice sd[3] = {mt_slice_range(MT_SLICE_UNSET, MT_SLICE_UNSET, -1), mt_slice_all(),
                      mt_slice_range(MT_SLICE_UNSET, MT_SLICE_UNSET, 2)};
    MT_CHECK_OK(mt_array_slice(&dv, &dbase, 3, sd));
    MT_CHECK_OK(mt_array_transpose(&ev, &ebase, NULL));
    mt_slice so[3] = {mt_slice_all(), mt_slice_all(), mt_slice_range(1, MT_SLICE_UNSET, 2)};
    MT_CHECK_OK(mt_array_slice(&o1v, &obase, 3, so));
    MT_CHECK_OK(mt_array_empty(&o0, dev, MT_FLOAT32, 3, da, 'F'));
    MT_CHECK(dv.strides[0] < 0);

    mt_kexpr e;
    mt_kexpr_init(&e);
    int32_t xa = mt_kexpr_input(&e, 0, MT_FLOAT32), xb = mt_kexpr_input(&e, 1, MT_FLOAT32);
    int32_t xc = mt_kexpr_input(&e, 2, MT_FLOAT32), xd = mt_kexpr_input(&e, 3, MT_FLOAT32);
    int32_t xe = mt_kexpr_input(&e, 4, MT_FLOAT32);
    int32_t t = mt_kexpr_binary(&e, MT_SOP_ADD, mt_kexpr_binary(&e, MT_SOP_MUL, xa, xb), xc);
    t = mt_kexpr_binary(&e, MT_SOP_SUB, t, mt_kexpr_binary(&e, MT_SOP_MUL, xd, xe));
    MT_CHECK_OK(mt_kexpr_add_output(&e, t));
    MT_CHECK_OK(mt_kexpr_add_output(&e, mt_kexpr_binary(&e, MT_SOP_GT, xa, xd)));
    mt_array ins[5] = {a, b, c, dv, ev}, outs[2] = {o0, o1v};
    MT_CHECK_OK(ew(&e, 5, ins, 2, outs, 0, NULL));

    float *g0 = to_host(&o0);
    unsigned char *gb = buffer_copy(&obase);
    const char *Dh = (const char *)D, *Eh = (const char *)E;
    for (int64_t i = 0; i < 4; i++)
        for (int64_t j = 0; j < 5; j++)
            for (int64_t k = 0; k < 6; k++) {
                float av = A[(i * 5 + j) * 6 + k], bv = B[j];
                float dvv = at3(Dh, &dv, i, j, k), evv = at3(Eh, &ev, i, j, k);
                MT_CHECK(dvv == D[((3 - i) * 5 + j) * 12 + 2 * k]); /* the view itself */
                MT_CHECK(evv == E[(k * 5 + j) * 4 + i]);
                float t1 = av * bv, t2 = t1 + C, t3 = dvv * evv, want = t2 - t3;
                float got = g0[(i * 5 + j) * 6 + k];
                if (memcmp(&got, &want, 4) != 0)
                    mt_test_fail(__FILE__, __LINE__, "%s: [%lld,%lld,%lld] got %.9g want %.9g",
                                 devname, (long long)i, (long long)j, (long long)k, got, want);
                MT_CHECK_EQ_INT(gb[(i * 5 + j) * 12 + 2 * k + 1], av > dvv);
                MT_CHECK_EQ_INT(gb[(i * 5 + j) * 12 + 2 * k], 7); /* untouched */
            }
    free(g0);
    free(gb);
    set_interp(false);
    mt_kexpr_deinit(&e);
    mt_array *all[] = {&a, &b, &c, &dbase, &ebase, &obase, &dv, &ev, &o1v, &o0};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) mt_array_clear(all[i]);
    mt_device_release(dev);
}

MT_TEST(broadcast_strided_views) { run_views_case("host", false); }
MT_TEST(broadcast_strided_views_interp) { run_views_case("host", true); }
/* ---------------------------------------------------------------- OpenCL */

static mt_device *open_opencl_or_skip(void)
{
    mt_device *dev = NULL;
    mt_status st = mt_device_open(&dev, "opencl");
    if (st != MT_OK) MT_SKIP("no OpenCL device");
    return dev;
}

/* The op tables of run_ops_case on an OpenCL device, against the same references. */
static void run_ops_opencl(mt_device *dev, mt_dtype dt)
{
    tvals t;
    edge_values(dt, &t);
    unsigned char *x, *y;
    int n = pairs(&t, dt, &x, &y);
    int64_t n64 = n;
    mt_array in[2] = {mk(dev, dt, 1, &n64, x), mk(dev, dt, 1, &n64, y)};
    mt_array out[2] = {mk_empty(dev, dt, 1, &n64), mk_empty(dev, MT_BOOL, 1, &n64)};
    opset s;
    ops_for(dt, &s);
    mt_kexpr e;
    build_ops_expr(&e, dt, &s);
    g_ulps_exact = dt == MT_FLOAT32 ? 4.0 : 1.0;
    g_ulps_fn = 16.0;
    g_ulps_small = 2.0;
    int nsel = s.n0 > s.n1 ? s.n0 : s.n1;
    for (int k = 0; k < nsel; k++) {
        mt_scalar sel = mt_scalar_i64(k);
        MT_CHECK_OK(ew(&e, 2, in, 2, out, 1, &sel));
        unsigned char *r0 = to_host(&out[0]), *r1 = to_host(&out[1]);
        if (k < s.n0) check_op(dt, s.ops0[k], false, x, y, r0, n, "opencl");
        if (k < s.n1) check_op(dt, s.ops1[k], true, x, y, r1, n, "opencl");
        free(r0);
        free(r1);
    }
    g_ulps_exact = 1.0;
    g_ulps_fn = 8.0;
    g_ulps_small = 1.0;
    mt_kexpr_deinit(&e);
    for (int i = 0; i < 2; i++) {
        mt_array_clear(&in[i]);
        mt_array_clear(&out[i]);
    }
    free(x);
    free(y);
}

MT_TEST(opencl_ops_float32_int32)
{
    mt_device *dev = open_opencl_or_skip();
    run_ops_opencl(dev, MT_FLOAT32);
    run_ops_opencl(dev, MT_INT32);
    mt_device_release(dev);
}

MT_TEST(opencl_ops_float64_float16)
{
    mt_device *dev = open_opencl_or_skip();
    if (mt_device_get_info(dev)->fp64) run_ops_opencl(dev, MT_FLOAT64);
    run_ops_opencl(dev, MT_FLOAT16);
    mt_device_release(dev);
}

MT_TEST(opencl_broadcast_strided_views)
{
    mt_device *dev = open_opencl_or_skip();
    mt_device_release(dev);
    run_views_case("opencl", false);
}
