/* Scalar helper functions of generated kernels, written once for every target.
 *
 * The helpers (16-bit float conversions, NumPy's floor division and modulo, stable sigmoid,
 * softplus, log1mexp and logaddexp, NumPy's float -> int casts, Philox4x32-10) are needed both
 * as source text in every generated kernel (C, OpenCL C, CUDA C) and as compiled code in the
 * interpreter. To make the two provably the same, each block below is an argument of
 * MT_KS_BLOCK(name, code...): kgen.c defines MT_KS_BLOCK to turn the code into a string
 * (#__VA_ARGS__) and kinterp.c defines it to expand the code itself. The code therefore has to be
 * valid C99, OpenCL C 1.2 and CUDA C++ at once: it uses only fixed-width integer typedefs,
 * C-style math function names (expf, log1p, ...; the OpenCL prelude maps them to the built-ins),
 * decimal float literals, and these per-target primitives defined before the blocks:
 *   MT_KFN                 function qualifiers (static inline / __device__ ...)
 *   mt_f2u, mt_u2f         float <-> uint32_t bit casts
 *   mt_d2u, mt_u2d         double <-> uint64_t bit casts (the F64 block only)
 *   mt_clz64(x)            count of leading zero bits of a nonzero uint64_t
 *   MT_INFF, MT_INF        +inf as float / double
 * No preprocessor directives can appear inside a block (they would not survive stringizing).
 *
 * Semantics (the contract of mt_kexpr, see gpuarray.h):
 *   - float16/bfloat16 conversions round to nearest even, NaNs keep the top payload bits and
 *     become quiet, exactly as core's mt_f32_to_f16 / mt_f64_to_f16 / ... (half.c).
 *   - float -> int casts follow core's mt_dtype_convert (x86 NumPy): int64/int32 truncate with
 *     INT_MIN for NaN or out of range; int16/int8/uint16/uint8 go through the int32 rule and
 *     keep the low bits; uint32/uint64 (width w) use the int-w rule below 2^(w-1) and the int-w
 *     rule on x - 2^(w-1) with the top bit flipped above (the compilers' unsigned sequence; the
 *     subtraction is exact in float too, so float and double sources agree).
 *   - The 16-bit conversions use integer arithmetic only (no dependence on denormal support).
 *   - integer floor division / modulo are Python's; division by zero gives 0; MIN / -1 wraps.
 *   - float floor division / modulo are NumPy's npy_divmod (sign of zero included).
 *   - Philox4x32-10 (Random123 constants); counter = (lo32(c), hi32(c), 0, 0), key = (lo32(seed),
 *     hi32(seed)). Uniform float32 = (x0 >> 8) * 2^-24, float16 = (x0 >> 21) * 2^-11, bfloat16 =
 *     (x0 >> 24) * 2^-8 (exact in their formats, so never rounded up to 1), float64 = the top 53
 *     bits of (x0:x1) * 2^-53. Normal (Box-Muller, cosine branch): float32 u1 from x0, u2 from
 *     x1; float64 u1 from (x0:x1), u2 from (x2:x3); z = sqrt(-2 log(1 - u1)) cos(2 pi u2). */
#ifndef MT_KSCALAR_H
#define MT_KSCALAR_H

/* ---------------------------------------------------------------- block BASE (no double) */
MT_KS_BLOCK(base,
typedef struct mt_u32x4 mt_u32x4;
struct mt_u32x4 { uint32_t x[4]; };

MT_KFN float mt_h2f(uint16_t h)
{
    uint32_t sign = ((uint32_t)h & 0x8000u) << 16;
    uint32_t ex = ((uint32_t)h >> 10) & 0x1Fu;
    uint32_t man = (uint32_t)h & 0x3FFu;
    if (ex == 0x1Fu) return mt_u2f(sign | 0x7F800000u | (man << 13) | (man ? 0x400000u : 0u));
    if (ex == 0u) {
        if (man == 0u) return mt_u2f(sign);
        int k = 63 - mt_clz64((uint64_t)man);
        return mt_u2f(sign | ((uint32_t)(k + 103) << 23) | ((man << (23 - k)) & 0x7FFFFFu));
    }
    return mt_u2f(sign | ((ex + 112u) << 23) | (man << 13));
}

MT_KFN uint16_t mt_f2h(float f)
{
    uint32_t b = mt_f2u(f);
    uint32_t sign = (b >> 16) & 0x8000u;
    uint32_t a = b & 0x7FFFFFFFu;
    if (a > 0x7F800000u) return (uint16_t)(sign | 0x7E00u | ((a & 0x7FFFFFu) >> 13));
    if (a >= 0x477FF000u) return (uint16_t)(sign | 0x7C00u);
    if (a >= 0x38800000u) {
        uint32_t r = a + 0xFFFu + ((a >> 13) & 1u);
        return (uint16_t)(sign | ((r - 0x38000000u) >> 13));
    }
    uint32_t e = a >> 23;
    if (e < 102u) return (uint16_t)sign;
    uint32_t m = (a & 0x7FFFFFu) | 0x800000u;
    uint32_t shift = 126u - e;
    uint32_t q = m >> shift;
    uint32_t rem = m & ((1u << shift) - 1u);
    uint32_t hlf = 1u << (shift - 1u);
    if (rem > hlf || (rem == hlf && (q & 1u))) q += 1u;
    return (uint16_t)(sign | q);
}

MT_KFN float mt_bf2f(uint16_t h)
{
    uint32_t b = (uint32_t)h << 16;
    if ((b & 0x7F800000u) == 0x7F800000u && (b & 0x7FFFFFu)) b |= 0x400000u;
    return mt_u2f(b);
}

MT_KFN uint16_t mt_f2bf(float f)
{
    uint32_t b = mt_f2u(f);
    if ((b & 0x7F800000u) == 0x7F800000u && (b & 0x7FFFFFu))
        return (uint16_t)(((b >> 16) & 0x8000u) | 0x7FC0u | ((b & 0x7FFFFFu) >> 16));
    return (uint16_t)((b + 0x7FFFu + ((b >> 16) & 1u)) >> 16);
}

MT_KFN uint16_t mt_round_small(uint32_t sign, int e, uint64_t m, int p, int emin, int emax,
                               uint32_t inf)
{
    uint32_t s = sign << 15;
    if (e > emax) return (uint16_t)(s | inf);
    int shift = 64 - p + (e < emin ? emin - e : 0);
    uint64_t q, rem, hlf;
    if (shift > 64) return (uint16_t)s;
    if (shift == 64) {
        q = 0;
        rem = m;
        hlf = 0x8000000000000000UL;
    } else {
        q = m >> shift;
        rem = m & ((((uint64_t)1) << shift) - 1);
        hlf = ((uint64_t)1) << (shift - 1);
    }
    if (rem > hlf || (rem == hlf && (q & 1))) q += 1;
    uint32_t bits;
    if (e < emin)
        bits = (uint32_t)q;
    else
        bits = ((uint32_t)(e + (1 << (15 - p)) - 2) << (p - 1)) + (uint32_t)q;
    if (bits >= inf) bits = inf;
    return (uint16_t)(s | bits);
}

MT_KFN uint16_t mt_u2small(uint32_t sign, uint64_t mag, int p, int emin, int emax, uint32_t inf)
{
    if (mag == 0) return (uint16_t)(sign << 15);
    int lz = mt_clz64(mag);
    return mt_round_small(sign, 63 - lz, mag << lz, p, emin, emax, inf);
}

MT_KFN uint16_t mt_i2h(int64_t v)
{
    return v < 0 ? mt_u2small(1u, (uint64_t)0 - (uint64_t)v, 11, -14, 15, 0x7C00u)
                 : mt_u2small(0u, (uint64_t)v, 11, -14, 15, 0x7C00u);
}

MT_KFN uint16_t mt_u2h(uint64_t v)
{
    return mt_u2small(0u, v, 11, -14, 15, 0x7C00u);
}

MT_KFN uint16_t mt_i2bf(int64_t v)
{
    return v < 0 ? mt_u2small(1u, (uint64_t)0 - (uint64_t)v, 8, -126, 127, 0x7F80u)
                 : mt_u2small(0u, (uint64_t)v, 8, -126, 127, 0x7F80u);
}

MT_KFN uint16_t mt_u2bf(uint64_t v)
{
    return mt_u2small(0u, v, 8, -126, 127, 0x7F80u);
}

MT_KFN int32_t mt_f2i32_f32(float x)
{
    if (!(x >= -2147483648.0f && x < 2147483648.0f)) return (int32_t)(-2147483647 - 1);
    return (int32_t)x;
}

MT_KFN int64_t mt_f2i64_f32(float x)
{
    if (!(x >= -9223372036854775808.0f && x < 9223372036854775808.0f))
        return (int64_t)(-9223372036854775807L - 1);
    return (int64_t)x;
}

MT_KFN uint32_t mt_f2u32_f32(float x)
{
    if (x >= 2147483648.0f) return (uint32_t)mt_f2i32_f32(x - 2147483648.0f) ^ 0x80000000u;
    return (uint32_t)mt_f2i32_f32(x);
}

MT_KFN uint64_t mt_f2u64_f32(float x)
{
    if (x >= 9223372036854775808.0f)
        return (uint64_t)mt_f2i64_f32(x - 9223372036854775808.0f) ^ 0x8000000000000000UL;
    return (uint64_t)mt_f2i64_f32(x);
}

MT_KFN int32_t mt_floordiv_i32(int32_t a, int32_t b)
{
    if (b == 0) return 0;
    if (b == -1) return (int32_t)(0u - (uint32_t)a);
    int32_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) q -= 1;
    return q;
}

MT_KFN int32_t mt_mod_i32(int32_t a, int32_t b)
{
    if (b == 0 || b == -1) return 0;
    int32_t r = a % b;
    if (r != 0 && ((r < 0) != (b < 0))) r += b;
    return r;
}

MT_KFN int64_t mt_floordiv_i64(int64_t a, int64_t b)
{
    if (b == 0) return 0;
    if (b == -1) return (int64_t)((uint64_t)0 - (uint64_t)a);
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) q -= 1;
    return q;
}

MT_KFN int64_t mt_mod_i64(int64_t a, int64_t b)
{
    if (b == 0 || b == -1) return 0;
    int64_t r = a % b;
    if (r != 0 && ((r < 0) != (b < 0))) r += b;
    return r;
}

MT_KFN uint32_t mt_floordiv_u32(uint32_t a, uint32_t b)
{
    return b == 0u ? 0u : a / b;
}

MT_KFN uint32_t mt_mod_u32(uint32_t a, uint32_t b)
{
    return b == 0u ? 0u : a % b;
}

MT_KFN uint64_t mt_floordiv_u64(uint64_t a, uint64_t b)
{
    return b == 0 ? (uint64_t)0 : a / b;
}

MT_KFN uint64_t mt_mod_u64(uint64_t a, uint64_t b)
{
    return b == 0 ? (uint64_t)0 : a % b;
}

MT_KFN uint64_t mt_pow_u64(uint64_t a, uint64_t b)
{
    uint64_t r = 1;
    while (b) {
        if (b & 1) r *= a;
        a *= a;
        b >>= 1;
    }
    return r;
}

MT_KFN int64_t mt_pow_i64(int64_t a, int64_t b)
{
    if (b < 0) {
        if (a == 1) return 1;
        if (a == -1) return (b & 1) ? -1 : 1;
        return 0;
    }
    return (int64_t)mt_pow_u64((uint64_t)a, (uint64_t)b);
}

MT_KFN float mt_sigmoid_f32(float x)
{
    if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
    float e = expf(x);
    return e / (1.0f + e);
}

MT_KFN float mt_softplus_f32(float x)
{
    if (x > 20.0f) return x;
    if (x < -20.0f) return expf(x);
    return log1pf(expf(x));
}

MT_KFN float mt_log1mexp_f32(float x)
{
    return x > -0.693147180559945309f ? logf(-expm1f(x)) : log1pf(-expf(x));
}

MT_KFN float mt_logaddexp_f32(float x, float y)
{
    if (x == y) return x + 0.693147180559945309f;
    float d = x - y;
    if (d > 0.0f) return x + log1pf(expf(-d));
    if (d <= 0.0f) return y + log1pf(expf(d));
    return d;
}

MT_KFN float mt_mod_f32(float a, float b)
{
    float m = fmodf(a, b);
    if (b == 0.0f) return m;
    if (m != 0.0f) {
        if ((b < 0.0f) != (m < 0.0f)) m += b;
    } else {
        m = copysignf(0.0f, b);
    }
    return m;
}

MT_KFN float mt_floordiv_f32(float a, float b)
{
    if (b == 0.0f) return a / b;
    float m = fmodf(a, b);
    float d = (a - m) / b;
    if (m != 0.0f && ((b < 0.0f) != (m < 0.0f))) d -= 1.0f;
    if (d == 0.0f) return copysignf(0.0f, a / b);
    float f = floorf(d);
    if (d - f > 0.5f) f += 1.0f;
    return f;
}

MT_KFN float mt_sign_f32(float x)
{
    return x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : (x == 0.0f ? 0.0f : x));
}

MT_KFN mt_u32x4 mt_philox(uint64_t ctr, uint64_t key)
{
    uint32_t c0 = (uint32_t)ctr, c1 = (uint32_t)(ctr >> 32), c2 = 0u, c3 = 0u;
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c0;
        uint64_t p1 = (uint64_t)0xCD9E8D57u * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c1 = (uint32_t)p1;
        c3 = (uint32_t)p0;
        c0 = n0;
        c2 = n2;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    mt_u32x4 o;
    o.x[0] = c0;
    o.x[1] = c1;
    o.x[2] = c2;
    o.x[3] = c3;
    return o;
}

MT_KFN float mt_rand_uniform_f32(uint64_t seed, uint64_t ctr)
{
    mt_u32x4 r = mt_philox(ctr, seed);
    return (float)(r.x[0] >> 8) * 5.9604644775390625e-8f;
}

MT_KFN float mt_rand_uniform_f16(uint64_t seed, uint64_t ctr)
{
    mt_u32x4 r = mt_philox(ctr, seed);
    return (float)(r.x[0] >> 21) * 0.00048828125f;
}

MT_KFN float mt_rand_uniform_bf16(uint64_t seed, uint64_t ctr)
{
    mt_u32x4 r = mt_philox(ctr, seed);
    return (float)(r.x[0] >> 24) * 0.00390625f;
}

MT_KFN float mt_rand_normal_f32(uint64_t seed, uint64_t ctr)
{
    mt_u32x4 r = mt_philox(ctr, seed);
    float u1 = (float)(r.x[0] >> 8) * 5.9604644775390625e-8f;
    float u2 = (float)(r.x[1] >> 8) * 5.9604644775390625e-8f;
    return sqrtf(-2.0f * logf(1.0f - u1)) * cosf(6.28318530717958647692f * u2);
}
)

/* ---------------------------------------------------------------- block F64 (uses double) */
MT_KS_BLOCK(f64,
MT_KFN uint16_t mt_d2h(double d)
{
    uint64_t b = mt_d2u(d);
    uint32_t sign = (uint32_t)(b >> 63);
    int ex = (int)((b >> 52) & 0x7FF);
    uint64_t frac = b & 0xFFFFFFFFFFFFFUL;
    if (ex == 0x7FF)
        return frac ? (uint16_t)((sign << 15) | 0x7E00u | (uint32_t)(frac >> 42))
                    : (uint16_t)((sign << 15) | 0x7C00u);
    if (ex == 0) return (uint16_t)(sign << 15);
    return mt_round_small(sign, ex - 1023, (frac | 0x10000000000000UL) << 11, 11, -14, 15,
                          0x7C00u);
}

MT_KFN uint16_t mt_d2bf(double d)
{
    uint64_t b = mt_d2u(d);
    uint32_t sign = (uint32_t)(b >> 63);
    int ex = (int)((b >> 52) & 0x7FF);
    uint64_t frac = b & 0xFFFFFFFFFFFFFUL;
    if (ex == 0x7FF)
        return frac ? (uint16_t)((sign << 15) | 0x7FC0u | (uint32_t)(frac >> 45))
                    : (uint16_t)((sign << 15) | 0x7F80u);
    if (ex == 0) return (uint16_t)(sign << 15);
    return mt_round_small(sign, ex - 1023, (frac | 0x10000000000000UL) << 11, 8, -126, 127,
                          0x7F80u);
}

MT_KFN int32_t mt_f2i32_f64(double x)
{
    if (!(x > -2147483649.0 && x < 2147483648.0)) return (int32_t)(-2147483647 - 1);
    return (int32_t)x;
}

MT_KFN int64_t mt_f2i64_f64(double x)
{
    if (!(x >= -9223372036854775808.0 && x < 9223372036854775808.0))
        return (int64_t)(-9223372036854775807L - 1);
    return (int64_t)x;
}

MT_KFN uint32_t mt_f2u32_f64(double x)
{
    if (x >= 2147483648.0) return (uint32_t)mt_f2i32_f64(x - 2147483648.0) ^ 0x80000000u;
    return (uint32_t)mt_f2i32_f64(x);
}

MT_KFN uint64_t mt_f2u64_f64(double x)
{
    if (x >= 9223372036854775808.0)
        return (uint64_t)mt_f2i64_f64(x - 9223372036854775808.0) ^ 0x8000000000000000UL;
    return (uint64_t)mt_f2i64_f64(x);
}

MT_KFN double mt_sigmoid_f64(double x)
{
    if (x >= 0.0) return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}

MT_KFN double mt_softplus_f64(double x)
{
    if (x > 37.0) return x;
    if (x < -37.0) return exp(x);
    return log1p(exp(x));
}

MT_KFN double mt_log1mexp_f64(double x)
{
    return x > -0.693147180559945309417 ? log(-expm1(x)) : log1p(-exp(x));
}

MT_KFN double mt_logaddexp_f64(double x, double y)
{
    if (x == y) return x + 0.693147180559945309417;
    double d = x - y;
    if (d > 0.0) return x + log1p(exp(-d));
    if (d <= 0.0) return y + log1p(exp(d));
    return d;
}

MT_KFN double mt_mod_f64(double a, double b)
{
    double m = fmod(a, b);
    if (b == 0.0) return m;
    if (m != 0.0) {
        if ((b < 0.0) != (m < 0.0)) m += b;
    } else {
        m = copysign(0.0, b);
    }
    return m;
}

MT_KFN double mt_floordiv_f64(double a, double b)
{
    if (b == 0.0) return a / b;
    double m = fmod(a, b);
    double d = (a - m) / b;
    if (m != 0.0 && ((b < 0.0) != (m < 0.0))) d -= 1.0;
    if (d == 0.0) return copysign(0.0, a / b);
    double f = floor(d);
    if (d - f > 0.5) f += 1.0;
    return f;
}

MT_KFN double mt_sign_f64(double x)
{
    return x > 0.0 ? 1.0 : (x < 0.0 ? -1.0 : (x == 0.0 ? 0.0 : x));
}

MT_KFN double mt_rand_uniform_f64(uint64_t seed, uint64_t ctr)
{
    mt_u32x4 r = mt_philox(ctr, seed);
    uint64_t v = ((uint64_t)r.x[0] << 32) | (uint64_t)r.x[1];
    return (double)(v >> 11) * 1.1102230246251565404236316680908203125e-16;
}

MT_KFN double mt_rand_normal_f64(uint64_t seed, uint64_t ctr)
{
    mt_u32x4 r = mt_philox(ctr, seed);
    uint64_t v1 = ((uint64_t)r.x[0] << 32) | (uint64_t)r.x[1];
    uint64_t v2 = ((uint64_t)r.x[2] << 32) | (uint64_t)r.x[3];
    double u1 = (double)(v1 >> 11) * 1.1102230246251565404236316680908203125e-16;
    double u2 = (double)(v2 >> 11) * 1.1102230246251565404236316680908203125e-16;
    return sqrt(-2.0 * log(1.0 - u1)) * cos(6.283185307179586476925286766559 * u2);
}
)

#endif /* MT_KSCALAR_H */
