/* The kernel interpreter: evaluates any mt_kexpr over strided host memory without a compiler.
 *
 * Used on the host when no C compiler is available (or MLTRAIN_NO_CC=1), and by tests as the
 * reference the compiled kernels must match bit for bit. It evaluates a block of up to 256
 * elements one node at a time (each node's values in a typed array), so the per-node dispatch is
 * paid once per block and the inner loops are plain typed loops. Every operation is written with
 * the same formula and in the same precision as the C that kgen.c emits, and the helper
 * functions are the very same code (kscalar.h expanded here, stringized there): float32 and the
 * 16-bit floats compute in float, integer arithmetic wraps through unsigned types. */
#include <math.h>
#include <string.h>

#include "gpuarray_impl.h"

/* ---------------------------------------------------------------- the shared helpers */

#include "../core/kscalar_host.h"

#define BLK 256

/* Compute classes: the C type a node's values have. */
typedef enum kcls { K_B, K_I8, K_I16, K_I32, K_I64, K_U8, K_U16, K_U32, K_U64, K_F32, K_F64 } kcls;

static kcls cls_of(mt_dtype dt)
{
    switch (dt) {
    case MT_BOOL: return K_B;
    case MT_INT8: return K_I8;
    case MT_INT16: return K_I16;
    case MT_INT32: return K_I32;
    case MT_INT64: return K_I64;
    case MT_UINT8: return K_U8;
    case MT_UINT16: return K_U16;
    case MT_UINT32: return K_U32;
    case MT_UINT64: return K_U64;
    case MT_FLOAT64: return K_F64;
    default: return K_F32;
    }
}

/* ---------------------------------------------------------------- loop macros */

/* r[i] = EXPR with `a` (and `b`) the operands' values at i. */
#define MAP1(T, R, EXPR)                                                  \
    do {                                                                  \
        R *r_ = (R *)r;                                                   \
        const T *x_ = (const T *)x;                                       \
        for (int i = 0; i < nb; i++) {                                    \
            const T a = x_[i];                                            \
            r_[i] = (R)(EXPR);                                            \
        }                                                                 \
    } while (0)
#define MAP2(T, R, EXPR)                                                  \
    do {                                                                  \
        R *r_ = (R *)r;                                                   \
        const T *x_ = (const T *)x, *y_ = (const T *)y;                   \
        for (int i = 0; i < nb; i++) {                                    \
            const T a = x_[i], b = y_[i];                                 \
            r_[i] = (R)(EXPR);                                            \
        }                                                                 \
    } while (0)

/* Integer dispatch: M(T, U, C, S) with T the type, U the unsigned arithmetic type, C the helper
 * argument type and S the helper suffix (as kgen.c's uxt() and hsuf()). */
#define SINT_CASES(M)                                                     \
    case K_I8: M(int8_t, uint32_t, int32_t, i32); break;                 \
    case K_I16: M(int16_t, uint32_t, int32_t, i32); break;               \
    case K_I32: M(int32_t, uint32_t, int32_t, i32); break;               \
    case K_I64: M(int64_t, uint64_t, int64_t, i64); break;
#define UINT_CASES(M)                                                     \
    case K_U8: M(uint8_t, uint32_t, uint32_t, u32); break;               \
    case K_U16: M(uint16_t, uint32_t, uint32_t, u32); break;             \
    case K_U32: M(uint32_t, uint32_t, uint32_t, u32); break;             \
    case K_U64: M(uint64_t, uint64_t, uint64_t, u64); break;
#define INT_CASES(M) SINT_CASES(M) UINT_CASES(M)
#define BOOL_CASE(M) case K_B: M(uint8_t, uint32_t, uint32_t, u32); break;
#define FLOAT_CASES(M)                                                    \
    case K_F32: M(float, f, f32, MT_INFF, 0.0f, 1.0f); break;            \
    case K_F64: M(double, , f64, MT_INF, 0.0, 1.0); break;


/* ---------------------------------------------------------------- unary ops */

/* Float math: FN(F) names the function for float (suffix f) or double (no suffix). */
#define FMATH1(name) \
    case K_F32: MAP1(float, float, name##f(a)); break; \
    case K_F64: MAP1(double, double, name(a)); break;

/* kscalar.h's float versions of exp, log, tanh, ... (as kgen.c emits them), libm for double. */
#define VMATH1(name) \
    case K_F32: MAP1(float, float, mt_##name##_f32(a)); break; \
    case K_F64: MAP1(double, double, name(a)); break;

/* The library math functions (float and double only). */
static void eval_fmath(mt_sop op, kcls c, void *r, const void *x, int nb)
{
    switch (op) {
    case MT_SOP_RECIP:
#define F_(T, F, S, INF, Z, O) MAP1(T, T, O / a)
        switch (c) { FLOAT_CASES(F_) default: break; }
#undef F_
        return;
    case MT_SOP_RSQRT:
#define F_(T, F, S, INF, Z, O) MAP1(T, T, O / sqrt##F(a))
        switch (c) { FLOAT_CASES(F_) default: break; }
#undef F_
        return;
    case MT_SOP_SIGMOID:
#define F_(T, F, S, INF, Z, O) MAP1(T, T, mt_sigmoid_##S(a))
        switch (c) { FLOAT_CASES(F_) default: break; }
#undef F_
        return;
    case MT_SOP_SOFTPLUS:
#define F_(T, F, S, INF, Z, O) MAP1(T, T, mt_softplus_##S(a))
        switch (c) { FLOAT_CASES(F_) default: break; }
#undef F_
        return;
    case MT_SOP_LOG1MEXP:
#define F_(T, F, S, INF, Z, O) MAP1(T, T, mt_log1mexp_##S(a))
        switch (c) { FLOAT_CASES(F_) default: break; }
#undef F_
        return;
    case MT_SOP_SQRT: switch (c) { FMATH1(sqrt) default: break; } return;
    case MT_SOP_EXP: switch (c) { VMATH1(exp) default: break; } return;
    case MT_SOP_EXP2: switch (c) { VMATH1(exp2) default: break; } return;
    case MT_SOP_EXPM1: switch (c) { VMATH1(expm1) default: break; } return;
    case MT_SOP_LOG: switch (c) { VMATH1(log) default: break; } return;
    case MT_SOP_LOG2: switch (c) { VMATH1(log2) default: break; } return;
    case MT_SOP_LOG10: switch (c) { FMATH1(log10) default: break; } return;
    case MT_SOP_LOG1P: switch (c) { VMATH1(log1p) default: break; } return;
    case MT_SOP_SIN: switch (c) { FMATH1(sin) default: break; } return;
    case MT_SOP_COS: switch (c) { FMATH1(cos) default: break; } return;
    case MT_SOP_TAN: switch (c) { FMATH1(tan) default: break; } return;
    case MT_SOP_ASIN: switch (c) { FMATH1(asin) default: break; } return;
    case MT_SOP_ACOS: switch (c) { FMATH1(acos) default: break; } return;
    case MT_SOP_ATAN: switch (c) { FMATH1(atan) default: break; } return;
    case MT_SOP_SINH: switch (c) { FMATH1(sinh) default: break; } return;
    case MT_SOP_COSH: switch (c) { FMATH1(cosh) default: break; } return;
    case MT_SOP_TANH: switch (c) { VMATH1(tanh) default: break; } return;
    case MT_SOP_ERF: switch (c) { FMATH1(erf) default: break; } return;
    case MT_SOP_ERFC: switch (c) { FMATH1(erfc) default: break; } return;
    default: return;
    }
}

static void eval_unary(mt_sop op, kcls c, void *r, const void *x, int nb)
{
    switch (op) {
    case MT_SOP_NEG:
#define M_(T, U, C, S) MAP1(T, T, (T)((U)0 - (U)a))
#define F_(T, F, S, INF, Z, O) MAP1(T, T, -a)
        switch (c) { INT_CASES(M_) FLOAT_CASES(F_) default: break; }
#undef M_
#undef F_
        return;
    case MT_SOP_ABS:
#define MS_(T, U, C, S) MAP1(T, T, a < 0 ? (T)((U)0 - (U)a) : a)
#define MU_(T, U, C, S) MAP1(T, T, a)
#define F_(T, F, S, INF, Z, O) MAP1(T, T, fabs##F(a))
        switch (c) { SINT_CASES(MS_) UINT_CASES(MU_) FLOAT_CASES(F_) default: break; }
        return;
    case MT_SOP_SIGN:
#undef MS_
#undef F_
#define MS_(T, U, C, S) MAP1(T, T, (T)((a > 0) - (a < 0)))
#define MU2_(T, U, C, S) MAP1(T, T, (T)(a > 0))
#define F_(T, F, S, INF, Z, O) MAP1(T, T, mt_sign_##S(a))
        switch (c) { SINT_CASES(MS_) UINT_CASES(MU2_) FLOAT_CASES(F_) default: break; }
#undef MS_
#undef MU2_
#undef F_
        return;
    case MT_SOP_SQUARE:
#define M_(T, U, C, S) MAP1(T, T, (T)((U)a * (U)a))
#define F_(T, F, S, INF, Z, O) MAP1(T, T, a * a)
        switch (c) { INT_CASES(M_) FLOAT_CASES(F_) default: break; }
#undef M_
#undef F_
        return;
    case MT_SOP_RELU:
#define MS_(T, U, C, S) MAP1(T, T, a > 0 ? a : (T)0)
#define F_(T, F, S, INF, Z, O) MAP1(T, T, (a > Z || a != a) ? a : Z)
        switch (c) { SINT_CASES(MS_) UINT_CASES(MU_) FLOAT_CASES(F_) default: break; }
#undef MS_
#undef F_
        return;
    case MT_SOP_FLOOR:
        switch (c) { FMATH1(floor) default: memcpy(r, x, (size_t)nb * 8); break; }
        return;
    case MT_SOP_CEIL:
        switch (c) { FMATH1(ceil) default: memcpy(r, x, (size_t)nb * 8); break; }
        return;
    case MT_SOP_ROUND:
        switch (c) { FMATH1(rint) default: memcpy(r, x, (size_t)nb * 8); break; }
        return;
    case MT_SOP_TRUNC:
        switch (c) { FMATH1(trunc) default: memcpy(r, x, (size_t)nb * 8); break; }
        return;
    case MT_SOP_ISNAN:
#define F_(T, F, S, INF, Z, O) MAP1(T, uint8_t, a != a)
        switch (c) { FLOAT_CASES(F_) default: memset(r, 0, (size_t)nb); break; }
#undef F_
        return;
    case MT_SOP_ISINF:
#define F_(T, F, S, INF, Z, O) MAP1(T, uint8_t, fabs##F(a) == INF)
        switch (c) { FLOAT_CASES(F_) default: memset(r, 0, (size_t)nb); break; }
#undef F_
        return;
    case MT_SOP_ISFINITE:
#define F_(T, F, S, INF, Z, O) MAP1(T, uint8_t, fabs##F(a) < INF)
        switch (c) { FLOAT_CASES(F_) default: memset(r, 1, (size_t)nb); break; }
#undef F_
        return;
    case MT_SOP_NOT:
#define M_(T, U, C, S) MAP1(T, uint8_t, a == 0)
#define F_(T, F, S, INF, Z, O) MAP1(T, uint8_t, a == 0)
        switch (c) { BOOL_CASE(M_) INT_CASES(M_) FLOAT_CASES(F_) default: break; }
#undef M_
#undef F_
        return;
    case MT_SOP_BITNOT:
#define M_(T, U, C, S) MAP1(T, T, (T)~a)
        switch (c) { INT_CASES(M_) case K_B: MAP1(uint8_t, uint8_t, a ^ 1); break; default: break; }
#undef M_
        return;
    default:
        eval_fmath(op, c, r, x, nb);
        return;
    }
}
#undef MU_

/* ---------------------------------------------------------------- binary ops */

/* Comparisons and logical ops: any operand class, bool result. */
static void eval_cmp(mt_sop op, kcls c, void *r, const void *x, const void *y, int nb)
{
    switch (op) {
#define CMP(SOP, OPR)                                                         \
    case SOP:                                                                 \
        switch (c) {                                                          \
        case K_B: MAP2(uint8_t, uint8_t, a OPR b); break;                    \
        case K_I8: MAP2(int8_t, uint8_t, a OPR b); break;                    \
        case K_I16: MAP2(int16_t, uint8_t, a OPR b); break;                  \
        case K_I32: MAP2(int32_t, uint8_t, a OPR b); break;                  \
        case K_I64: MAP2(int64_t, uint8_t, a OPR b); break;                  \
        case K_U8: MAP2(uint8_t, uint8_t, a OPR b); break;                   \
        case K_U16: MAP2(uint16_t, uint8_t, a OPR b); break;                 \
        case K_U32: MAP2(uint32_t, uint8_t, a OPR b); break;                 \
        case K_U64: MAP2(uint64_t, uint8_t, a OPR b); break;                 \
        case K_F32: MAP2(float, uint8_t, a OPR b); break;                    \
        case K_F64: MAP2(double, uint8_t, a OPR b); break;                   \
        }                                                                     \
        return;
    CMP(MT_SOP_EQ, ==)
    CMP(MT_SOP_NE, !=)
    CMP(MT_SOP_LT, <)
    CMP(MT_SOP_LE, <=)
    CMP(MT_SOP_GT, >)
    CMP(MT_SOP_GE, >=)
#undef CMP
#define LOGIC(SOP, EXPR)                                                      \
    case SOP:                                                                 \
        switch (c) {                                                          \
        case K_B: MAP2(uint8_t, uint8_t, EXPR); break;                       \
        case K_I8: MAP2(int8_t, uint8_t, EXPR); break;                       \
        case K_I16: MAP2(int16_t, uint8_t, EXPR); break;                     \
        case K_I32: MAP2(int32_t, uint8_t, EXPR); break;                     \
        case K_I64: MAP2(int64_t, uint8_t, EXPR); break;                     \
        case K_U8: MAP2(uint8_t, uint8_t, EXPR); break;                      \
        case K_U16: MAP2(uint16_t, uint8_t, EXPR); break;                    \
        case K_U32: MAP2(uint32_t, uint8_t, EXPR); break;                    \
        case K_U64: MAP2(uint64_t, uint8_t, EXPR); break;                    \
        case K_F32: MAP2(float, uint8_t, EXPR); break;                       \
        case K_F64: MAP2(double, uint8_t, EXPR); break;                      \
        }                                                                     \
        return;
    LOGIC(MT_SOP_AND, (a != 0) && (b != 0))
    LOGIC(MT_SOP_OR, (a != 0) || (b != 0))
    LOGIC(MT_SOP_XOR, (a != 0) != (b != 0))
#undef LOGIC
    default: return;
    }
}

/* Powers and the two-argument float functions. */
static void eval_binary_fn(mt_sop op, kcls c, void *r, const void *x, const void *y, int nb)
{
    switch (op) {
    case MT_SOP_POW:
#define MS_(T, U, C, S) MAP2(T, T, (T)mt_pow_i64((int64_t)a, (int64_t)b))
#define MU_(T, U, C, S) MAP2(T, T, (T)mt_pow_u64((uint64_t)a, (uint64_t)b))
#define F_(T, F, S, INF, Z, O) MAP2(T, T, pow##F(a, b))
        switch (c) { SINT_CASES(MS_) UINT_CASES(MU_) FLOAT_CASES(F_) default: break; }
#undef MS_
#undef MU_
#undef F_
        return;
    case MT_SOP_ATAN2:
#define F_(T, F, S, INF, Z, O) MAP2(T, T, atan2##F(a, b))
        switch (c) { FLOAT_CASES(F_) default: break; }
#undef F_
        return;
    case MT_SOP_LOGADDEXP:
#define F_(T, F, S, INF, Z, O) MAP2(T, T, mt_logaddexp_##S(a, b))
        switch (c) { FLOAT_CASES(F_) default: break; }
#undef F_
        return;
    default: return;
    }
}

static void eval_binary(mt_sop op, kcls c, void *r, const void *x, const void *y, int nb)
{
    switch (op) {
    case MT_SOP_ADD:
#define M_(T, U, C, S) MAP2(T, T, (T)((U)a + (U)b))
#define F_(T, F, S, INF, Z, O) MAP2(T, T, a + b)
        switch (c) { INT_CASES(M_) FLOAT_CASES(F_) default: break; }
#undef M_
#undef F_
        return;
    case MT_SOP_SUB:
#define M_(T, U, C, S) MAP2(T, T, (T)((U)a - (U)b))
#define F_(T, F, S, INF, Z, O) MAP2(T, T, a - b)
        switch (c) { INT_CASES(M_) FLOAT_CASES(F_) default: break; }
#undef M_
#undef F_
        return;
    case MT_SOP_MUL:
#define M_(T, U, C, S) MAP2(T, T, (T)((U)a * (U)b))
#define F_(T, F, S, INF, Z, O) MAP2(T, T, a * b)
        switch (c) { INT_CASES(M_) FLOAT_CASES(F_) default: break; }
#undef M_
#undef F_
        return;
    case MT_SOP_DIV:
    case MT_SOP_FLOORDIV:
#define M_(T, U, C, S) MAP2(T, T, (T)mt_floordiv_##S((C)a, (C)b))
#define F_(T, F, S, INF, Z, O) MAP2(T, T, mt_floordiv_##S(a, b))
#define FD_(T, F, S, INF, Z, O) MAP2(T, T, a / b)
        if (op == MT_SOP_DIV) {
            switch (c) { INT_CASES(M_) FLOAT_CASES(FD_) default: break; }
        } else {
            switch (c) { INT_CASES(M_) FLOAT_CASES(F_) default: break; }
        }
#undef M_
#undef F_
#undef FD_
        return;
    case MT_SOP_MOD:
#define M_(T, U, C, S) MAP2(T, T, (T)mt_mod_##S((C)a, (C)b))
#define F_(T, F, S, INF, Z, O) MAP2(T, T, mt_mod_##S(a, b))
        switch (c) { INT_CASES(M_) FLOAT_CASES(F_) default: break; }
#undef M_
#undef F_
        return;
    case MT_SOP_MAX:
#define M_(T, U, C, S) MAP2(T, T, a > b ? a : b)
#define F_(T, F, S, INF, Z, O) MAP2(T, T, (a > b || a != a) ? a : b)
        switch (c) { BOOL_CASE(M_) INT_CASES(M_) FLOAT_CASES(F_) default: break; }
#undef M_
#undef F_
        return;
    case MT_SOP_MIN:
#define M_(T, U, C, S) MAP2(T, T, a < b ? a : b)
#define F_(T, F, S, INF, Z, O) MAP2(T, T, (a < b || a != a) ? a : b)
        switch (c) { BOOL_CASE(M_) INT_CASES(M_) FLOAT_CASES(F_) default: break; }
#undef M_
#undef F_
        return;
    case MT_SOP_EQ: case MT_SOP_NE: case MT_SOP_LT: case MT_SOP_LE: case MT_SOP_GT:
    case MT_SOP_GE: case MT_SOP_AND: case MT_SOP_OR: case MT_SOP_XOR:
        eval_cmp(op, c, r, x, y, nb);
        return;
    case MT_SOP_POW: case MT_SOP_ATAN2: case MT_SOP_LOGADDEXP:
        eval_binary_fn(op, c, r, x, y, nb);
        return;
    case MT_SOP_BITAND:
#define M_(T, U, C, S) MAP2(T, T, (T)(a & b))
        switch (c) { BOOL_CASE(M_) INT_CASES(M_) default: break; }
#undef M_
        return;
    case MT_SOP_BITOR:
#define M_(T, U, C, S) MAP2(T, T, (T)(a | b))
        switch (c) { BOOL_CASE(M_) INT_CASES(M_) default: break; }
#undef M_
        return;
    case MT_SOP_BITXOR:
#define M_(T, U, C, S) MAP2(T, T, (T)(a ^ b))
        switch (c) { BOOL_CASE(M_) INT_CASES(M_) default: break; }
#undef M_
        return;
    case MT_SOP_LSHIFT:
#define M_(T, U, C, S) \
    MAP2(T, T, (T)(((uint64_t)b < sizeof(T) * 8u) ? ((U)a << b) : (U)0))
        switch (c) { INT_CASES(M_) default: break; }
#undef M_
        return;
    case MT_SOP_RSHIFT:
#define MS_(T, U, C, S) \
    MAP2(T, T, ((uint64_t)b < sizeof(T) * 8u) ? (T)(a >> b) : (T)(a < 0 ? -1 : 0))
#define MU_(T, U, C, S) MAP2(T, T, ((uint64_t)b < sizeof(T) * 8u) ? (T)(a >> b) : (T)0)
        switch (c) { SINT_CASES(MS_) UINT_CASES(MU_) default: break; }
#undef MS_
#undef MU_
        return;
    default: return;
    }
}

/* ---------------------------------------------------------------- casts */

/* Bytes of one value in the compute type (16-bit floats compute in float). */
static size_t csize(mt_dtype dt)
{
    return dt == MT_FLOAT16 || dt == MT_BFLOAT16 ? 4 : mt_dtype_size(dt);
}

/* One source value widened without loss of what the conversion needs. */
typedef struct wide {
    kcls c;
    int64_t i;
    uint64_t u;
    float f;
    double d;
} wide;

static inline wide wide_at(kcls c, const void *x, int i)
{
    wide w;
    w.c = c;
    w.i = 0;
    w.u = 0;
    w.f = 0;
    w.d = 0;
    switch (c) {
    case K_B: case K_U8: w.u = ((const uint8_t *)x)[i]; break;
    case K_U16: w.u = ((const uint16_t *)x)[i]; break;
    case K_U32: w.u = ((const uint32_t *)x)[i]; break;
    case K_U64: w.u = ((const uint64_t *)x)[i]; break;
    case K_I8: w.i = ((const int8_t *)x)[i]; break;
    case K_I16: w.i = ((const int16_t *)x)[i]; break;
    case K_I32: w.i = ((const int32_t *)x)[i]; break;
    case K_I64: w.i = ((const int64_t *)x)[i]; break;
    case K_F32: w.f = ((const float *)x)[i]; break;
    case K_F64: w.d = ((const double *)x)[i]; break;
    }
    return w;
}

static inline bool w_signed(const wide *w)
{
    return w->c >= K_I8 && w->c <= K_I64;
}

/* Integer bit pattern for an integer destination, following kgen.c's cast_expr. */
static inline uint64_t w_intbits(const wide *w, mt_dtype d)
{
    if (w->c == K_F32 || w->c == K_F64) {
        bool f32 = w->c == K_F32;
        switch (d) {
        case MT_INT64: return (uint64_t)(f32 ? mt_f2i64_f32(w->f) : mt_f2i64_f64(w->d));
        case MT_UINT32: return f32 ? mt_f2u32_f32(w->f) : mt_f2u32_f64(w->d);
        case MT_UINT64: return f32 ? mt_f2u64_f32(w->f) : mt_f2u64_f64(w->d);
        default: return (uint64_t)(int64_t)(f32 ? mt_f2i32_f32(w->f) : mt_f2i32_f64(w->d));
        }
    }
    return w_signed(w) ? (uint64_t)w->i : w->u;
}

static inline float w_float(const wide *w)
{
    switch (w->c) {
    case K_F32: return w->f;
    case K_F64: return (float)w->d;
    default: return w_signed(w) ? (float)w->i : (float)w->u;
    }
}

static inline double w_double(const wide *w)
{
    switch (w->c) {
    case K_F32: return (double)w->f;
    case K_F64: return w->d;
    default: return w_signed(w) ? (double)w->i : (double)w->u;
    }
}

/* To float16 (h = true) or bfloat16: one rounding from the source, value kept in float. */
static inline float w_small(const wide *w, bool h)
{
    switch (w->c) {
    case K_B: return (float)w->u;
    case K_F32: return h ? mt_h2f(mt_f2h(w->f)) : mt_bf2f(mt_f2bf(w->f));
    case K_F64: return h ? mt_h2f(mt_d2h(w->d)) : mt_bf2f(mt_d2bf(w->d));
    default:
        if (w_signed(w)) return h ? mt_h2f(mt_i2h(w->i)) : mt_bf2f(mt_i2bf(w->i));
        return h ? mt_h2f(mt_u2h(w->u)) : mt_bf2f(mt_u2bf(w->u));
    }
}

static void eval_cast(mt_dtype s, mt_dtype d, void *r, const void *x, int nb)
{
    kcls sc = cls_of(s);
    /* identity, and float16/bfloat16 -> float32 (the value is already a float) */
    if (s == d || (d == MT_FLOAT32 && sc == K_F32)) {
        memcpy(r, x, (size_t)nb * csize(d));
        return;
    }
    for (int i = 0; i < nb; i++) {
        wide w = wide_at(sc, x, i);
        switch (d) {
        case MT_BOOL: {
            bool nz = sc == K_F32 ? w.f != 0 : sc == K_F64 ? w.d != 0 : (w.u != 0 || w.i != 0);
            ((uint8_t *)r)[i] = nz;
            break;
        }
        case MT_INT8: ((int8_t *)r)[i] = (int8_t)w_intbits(&w, d); break;
        case MT_INT16: ((int16_t *)r)[i] = (int16_t)w_intbits(&w, d); break;
        case MT_INT32: ((int32_t *)r)[i] = (int32_t)w_intbits(&w, d); break;
        case MT_INT64: ((int64_t *)r)[i] = (int64_t)w_intbits(&w, d); break;
        case MT_UINT8: ((uint8_t *)r)[i] = (uint8_t)w_intbits(&w, d); break;
        case MT_UINT16: ((uint16_t *)r)[i] = (uint16_t)w_intbits(&w, d); break;
        case MT_UINT32: ((uint32_t *)r)[i] = (uint32_t)w_intbits(&w, d); break;
        case MT_UINT64: ((uint64_t *)r)[i] = w_intbits(&w, d); break;
        case MT_FLOAT16: ((float *)r)[i] = w_small(&w, true); break;
        case MT_BFLOAT16: ((float *)r)[i] = w_small(&w, false); break;
        case MT_FLOAT32: ((float *)r)[i] = w_float(&w); break;
        case MT_FLOAT64: ((double *)r)[i] = w_double(&w); break;
        default: break;
        }
    }
}

/* ---------------------------------------------------------------- leaves */

/* The value a PARAM node computes with: packed as the kernel parameter, then converted to the
 * compute type exactly like kgen's "(CT)prm<k>". */
static void param_value(const mt_knode *n, const mt_scalar *params, void *dst)
{
    unsigned char buf[8] = {0};
    mt__kgen_param_pack(n->dtype, &params[n->arg], buf);
    switch (n->dtype) {
    case MT_BOOL: { int32_t v; memcpy(&v, buf, 4); uint8_t b = v != 0; memcpy(dst, &b, 1); break; }
    case MT_INT8: { int32_t v; memcpy(&v, buf, 4); int8_t b = (int8_t)v; memcpy(dst, &b, 1); break; }
    case MT_INT16: { int32_t v; memcpy(&v, buf, 4); int16_t b = (int16_t)v; memcpy(dst, &b, 2); break; }
    case MT_UINT8: { uint32_t v; memcpy(&v, buf, 4); uint8_t b = (uint8_t)v; memcpy(dst, &b, 1); break; }
    case MT_UINT16: { uint32_t v; memcpy(&v, buf, 4); uint16_t b = (uint16_t)v; memcpy(dst, &b, 2); break; }
    default: memcpy(dst, buf, mt_dtype_size(n->dtype) == 2 ? 4 : mt_dtype_size(n->dtype)); break;
    }
}

/* The value a CONST node computes with (kgen writes NaNs as the canonical quiet NaN). */
static void const_value(const mt_knode *n, void *dst)
{
    mt_scalar c = mt__kexpr_const_value(n);
    switch (n->dtype) {
    case MT_BOOL: { uint8_t v = c.v.b; memcpy(dst, &v, 1); break; }
    case MT_INT8: { int8_t v = (int8_t)c.v.i; memcpy(dst, &v, 1); break; }
    case MT_INT16: { int16_t v = (int16_t)c.v.i; memcpy(dst, &v, 2); break; }
    case MT_INT32: { int32_t v = (int32_t)c.v.i; memcpy(dst, &v, 4); break; }
    case MT_INT64: memcpy(dst, &c.v.i, 8); break;
    case MT_UINT8: { uint8_t v = (uint8_t)c.v.u; memcpy(dst, &v, 1); break; }
    case MT_UINT16: { uint16_t v = (uint16_t)c.v.u; memcpy(dst, &v, 2); break; }
    case MT_UINT32: { uint32_t v = (uint32_t)c.v.u; memcpy(dst, &v, 4); break; }
    case MT_UINT64: memcpy(dst, &c.v.u, 8); break;
    case MT_FLOAT64: {
        double v = c.v.f;
        if (isnan(v)) v = signbit(v) ? -(double)NAN : (double)NAN;
        memcpy(dst, &v, 8);
        break;
    }
    default: {
        float v = (float)c.v.f;
        if (isnan(v)) v = signbit(v) ? -NAN : NAN;
        memcpy(dst, &v, 4);
        break;
    }
    }
}

/* Broadcasts one value of `size` bytes over nb slots. */
static void splat(void *r, const void *v, size_t size, int nb)
{
    switch (size) {
    case 1: memset(r, *(const unsigned char *)v, (size_t)nb); break;
    case 2: { uint16_t x; memcpy(&x, v, 2); for (int i = 0; i < nb; i++) ((uint16_t *)r)[i] = x; break; }
    case 4: { uint32_t x; memcpy(&x, v, 4); for (int i = 0; i < nb; i++) ((uint32_t *)r)[i] = x; break; }
    default: { uint64_t x; memcpy(&x, v, 8); for (int i = 0; i < nb; i++) ((uint64_t *)r)[i] = x; break; }
    }
}

/* r[i] = *(T *)(p + off[i]) and back, with the size known at compile time in each loop
 * (memcpy: host arrays may be unaligned views). */
#define GATHER(T) \
    for (int i = 0; i < nb; i++) memcpy((T *)r + i, p + off[i], sizeof(T))
#define SCATTER(T) \
    for (int i = 0; i < nb; i++) memcpy(p + off[i], (const T *)v + i, sizeof(T))

static void gather(void *r, const char *p, const int64_t *off, size_t size, int nb)
{
    switch (size) {
    case 1: GATHER(uint8_t); break;
    case 2: GATHER(uint16_t); break;
    case 4: GATHER(uint32_t); break;
    default: GATHER(uint64_t); break;
    }
}

static void scatter(char *p, const int64_t *off, const void *v, size_t size, int nb)
{
    switch (size) {
    case 1: SCATTER(uint8_t); break;
    case 2: SCATTER(uint16_t); break;
    case 4: SCATTER(uint32_t); break;
    default: SCATTER(uint64_t); break;
    }
}

/* ---------------------------------------------------------------- the block loop */

typedef struct run_state {
    const mt_kexpr *e;
    int32_t nargs, nin, ndim;
    char *const *ptrs;
    const int64_t *const *strides;
    const int64_t *dims;
    uint8_t *live;
    char *vals;        /* e->n * BLK * 8 bytes: node k's values at vals + k * BLK * 8 */
    int64_t *offs;     /* nargs * BLK byte offsets of the block's elements */
    int64_t idx[BLK];  /* flat indices of the block's elements */
    unsigned char *leaf; /* e->n * 8: PARAM / CONST values, RAND seeds */
} run_state;

#define VAL(st, k) ((st)->vals + (size_t)(k) * BLK * 8)

static void load_input(run_state *st, const mt_knode *n, void *r, int nb)
{
    const char *p = st->ptrs[n->arg];
    const int64_t *off = st->offs + (size_t)n->arg * BLK;
    switch (n->dtype) {
    case MT_BOOL:
        for (int i = 0; i < nb; i++) ((uint8_t *)r)[i] = p[off[i]] != 0;
        break;
    case MT_FLOAT16:
    case MT_BFLOAT16:
        for (int i = 0; i < nb; i++) {
            uint16_t h;
            memcpy(&h, p + off[i], 2);
            ((float *)r)[i] = n->dtype == MT_FLOAT16 ? mt_h2f(h) : mt_bf2f(h);
        }
        break;
    default: gather(r, p, off, mt_dtype_size(n->dtype), nb); break;
    }
}

static void store_output(run_state *st, int32_t j, int nb)
{
    int32_t a = st->nin + j;
    const mt_knode *n = &st->e->nodes[st->e->outs[j]];
    const char *v = VAL(st, st->e->outs[j]);
    char *p = st->ptrs[a];
    const int64_t *off = st->offs + (size_t)a * BLK;
    if (n->dtype == MT_FLOAT16 || n->dtype == MT_BFLOAT16) {
        for (int i = 0; i < nb; i++) {
            float f;
            memcpy(&f, v + (size_t)i * 4, 4);
            uint16_t h = n->dtype == MT_FLOAT16 ? mt_f2h(f) : mt_f2bf(f);
            memcpy(p + off[i], &h, 2);
        }
        return;
    }
    scatter(p, off, v, mt_dtype_size(n->dtype), nb);
}

static void eval_rand(run_state *st, const mt_knode *n, int32_t k, void *r, int nb)
{
    uint64_t seed, ctr0;
    memcpy(&seed, st->leaf + (size_t)k * 16, 8);
    memcpy(&ctr0, st->leaf + (size_t)k * 16 + 8, 8);
    bool uni = n->op == MT_SOP_RAND_UNIFORM;
    for (int i = 0; i < nb; i++) {
        uint64_t ctr = (uint64_t)st->idx[i] + ctr0;
        switch (n->dtype) {
        case MT_FLOAT64:
            ((double *)r)[i] = uni ? mt_rand_uniform_f64(seed, ctr) : mt_rand_normal_f64(seed, ctr);
            break;
        case MT_FLOAT16:
            ((float *)r)[i] = uni ? mt_rand_uniform_f16(seed, ctr) : mt_rand_normal_f32(seed, ctr);
            break;
        case MT_BFLOAT16:
            ((float *)r)[i] = uni ? mt_rand_uniform_bf16(seed, ctr) : mt_rand_normal_f32(seed, ctr);
            break;
        default:
            ((float *)r)[i] = uni ? mt_rand_uniform_f32(seed, ctr) : mt_rand_normal_f32(seed, ctr);
            break;
        }
    }
}

static void eval_block(run_state *st, int nb)
{
    const mt_kexpr *e = st->e;
    for (int32_t k = 0; k < e->n; k++) {
        if (!st->live[k]) continue;
        const mt_knode *n = &e->nodes[k];
        void *r = VAL(st, k);
        switch (n->op) {
        case MT_SOP_INPUT: load_input(st, n, r, nb); break;
        case MT_SOP_PARAM:
        case MT_SOP_CONST: splat(r, st->leaf + (size_t)k * 16, csize(n->dtype), nb); break;
        case MT_SOP_INDEX: memcpy(r, st->idx, (size_t)nb * 8); break;
        case MT_SOP_RAND_UNIFORM:
        case MT_SOP_RAND_NORMAL: eval_rand(st, n, k, r, nb); break;
        case MT_SOP_CAST: eval_cast(e->nodes[n->a].dtype, n->dtype, r, VAL(st, n->a), nb); break;
        case MT_SOP_WHERE: {
            const uint8_t *cnd = (const uint8_t *)VAL(st, n->a);
            const void *x = VAL(st, n->b), *y = VAL(st, n->c);
#define SEL(T) for (int i = 0; i < nb; i++) ((T *)r)[i] = cnd[i] ? ((const T *)x)[i] : ((const T *)y)[i]
            switch (csize(n->dtype)) {
            case 1: SEL(uint8_t); break;
            case 2: SEL(uint16_t); break;
            case 4: SEL(uint32_t); break;
            default: SEL(uint64_t); break;
            }
#undef SEL
            break;
        }
        default:
            if (mt_sop_arity(n->op) == 1)
                eval_unary(n->op, cls_of(e->nodes[n->a].dtype), r, VAL(st, n->a), nb);
            else
                eval_binary(n->op, cls_of(e->nodes[n->a].dtype), r, VAL(st, n->a),
                            VAL(st, n->b), nb);
            break;
        }
    }
    for (int32_t j = 0; j < e->nouts; j++) store_output(st, j, nb);
}

/* Precomputes PARAM / CONST values and RAND seeds into st->leaf (16 bytes per node). */
static void prepare_leaves(run_state *st, const mt_scalar *params)
{
    const mt_kexpr *e = st->e;
    for (int32_t k = 0; k < e->n; k++) {
        const mt_knode *n = &e->nodes[k];
        unsigned char *dst = st->leaf + (size_t)k * 16;
        if (!st->live[k]) continue;
        if (n->op == MT_SOP_PARAM) {
            param_value(n, params, dst);
        } else if (n->op == MT_SOP_CONST) {
            const_value(n, dst);
        } else if (n->op == MT_SOP_RAND_UNIFORM || n->op == MT_SOP_RAND_NORMAL) {
            uint64_t seed = 0, off = 0;
            mt_scalar_store(&params[n->arg], MT_UINT64, &seed);
            mt_scalar_store(&params[n->arg + 1], MT_UINT64, &off);
            memcpy(dst, &seed, 8);
            memcpy(dst + 8, &off, 8);
        }
    }
}

mt_status mt__kinterp_run(const mt_kexpr *e, int32_t nargs, char *const *ptrs,
                          const int64_t *const *strides, int32_t ndim, const int64_t *dims,
                          const mt_scalar *params, int64_t begin, int64_t end)
{
    mt_status status = mt_kexpr_validate(e);
    if (status != MT_OK) return status;
    if (nargs < e->nouts || ndim < 0 || ndim > MT_MAX_DIMS)
        return mt_err_set(MT_ERR_INVALID, "kinterp: %d args for %d outputs, ndim %d", nargs,
                          e->nouts, ndim);
    if (begin >= end) return MT_OK;
    run_state *st = mt_calloc(1, sizeof *st);
    size_t n = (size_t)e->n;
    char *mem = mt_malloc(n * BLK * 8 + (size_t)nargs * BLK * 8 + n * 16 + n + 64);
    if (!st || !mem) {
        mt_free(st);
        mt_free(mem);
        return mt_err_prefix(MT_ERR_NOMEM, "kernel interpreter: ");
    }
    st->e = e;
    st->nargs = nargs;
    st->nin = nargs - e->nouts;
    st->ndim = ndim;
    st->ptrs = ptrs;
    st->strides = strides;
    st->dims = dims;
    st->vals = mem;
    st->offs = (int64_t *)(mem + n * BLK * 8);
    st->leaf = (unsigned char *)(mem + n * BLK * 8 + (size_t)nargs * BLK * 8);
    st->live = st->leaf + n * 16;
    mt__kexpr_live(e, st->live);
    prepare_leaves(st, params);

    /* N-d index of `begin` and each arg's byte offset there */
    int64_t ix[MT_MAX_DIMS] = {0};
    int64_t rem = begin;
    for (int32_t d = ndim - 1; d >= 0; d--) {
        ix[d] = dims[d] > 0 ? rem % dims[d] : 0;
        rem = dims[d] > 0 ? rem / dims[d] : 0;
    }
    int64_t *cur = mt_calloc((size_t)nargs + 1, sizeof *cur);
    if (!cur) {
        mt_free(mem);
        mt_free(st);
        return mt_err_prefix(MT_ERR_NOMEM, "kernel interpreter: ");
    }
    for (int32_t a = 0; a < nargs; a++)
        for (int32_t d = 0; d < ndim; d++) cur[a] += ix[d] * strides[a][d];

    for (int64_t pos = begin; pos < end;) {
        int nb = end - pos < BLK ? (int)(end - pos) : BLK;
        if (ndim <= 1) { /* one run: offsets are an arithmetic sequence */
            for (int i = 0; i < nb; i++) st->idx[i] = pos + i;
            for (int32_t a = 0; a < nargs; a++) {
                int64_t s = ndim ? strides[a][0] : 0, *o = st->offs + (size_t)a * BLK;
                for (int i = 0; i < nb; i++) o[i] = cur[a] + i * s;
                cur[a] += nb * s;
            }
            eval_block(st, nb);
            pos += nb;
            continue;
        }
        for (int i = 0; i < nb; i++) {
            st->idx[i] = pos + i;
            for (int32_t a = 0; a < nargs; a++) st->offs[(size_t)a * BLK + i] = cur[a];
            /* advance the N-d index by one element (innermost first, with carries) */
            for (int32_t d = ndim - 1; d >= 0; d--) {
                for (int32_t a = 0; a < nargs; a++) cur[a] += strides[a][d];
                if (++ix[d] < dims[d]) break;
                for (int32_t a = 0; a < nargs; a++) cur[a] -= ix[d] * strides[a][d];
                ix[d] = 0;
            }
        }
        eval_block(st, nb);
        pos += nb;
    }
    mt_free(cur);
    mt_free(mem);
    mt_free(st);
    return MT_OK;
}
