/* Scalar helper functions of generated kernels, written once for every target.
 *
 * It lives in core (as an internal header, not public API) because three modules need the very
 * same formulas: gpuarray's kernel generator (as source text) and interpreter, and the graph's
 * constant folder, which must fold exactly as the kernels compute.
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
 *   - float32 exp, exp2, expm1, log, log2, log1p, tanh, sigmoid and softplus (used by float32,
 *     float16 and bfloat16 nodes on every target; float64 stays on the C library) are our own
 *     branch-free, call-free code: Cody-Waite range reduction (exp: n = rint(x log2 e) by the
 *     1.5*2^23 trick, ln 2 split into 0.693359375 + -2.12194440e-4; log: m in [sqrt(1/2),
 *     sqrt(2)) by integer arithmetic on the bits, denormals prescaled by 2^23) and the Cephes
 *     single-precision polynomials, with selects for the special cases (NaN propagates; exp(-inf)
 *     = 0, exp(inf) = inf, log(0) = -inf, log(x < 0) = NaN, log1p(-1) = -inf, tanh(+-inf) = +-1,
 *     +-0 and denormals as IEEE; the result is scaled by 2^n in two exact steps so overflow and
 *     gradual underflow round once). Being plain arithmetic they vectorize (the C library's expf
 *     etc. do not without -ffast-math), and, being the same text everywhere, the host kernels, the
 *     interpreter and OpenCL (FP_CONTRACT OFF, correctly rounded division) agree bit for bit; nvcc
 *     may contract them into FMAs, so CUDA results can differ in the last bit. Max error over all
 *     2^32 float32 inputs against the double C library result (in ulp of the correctly rounded
 *     result; the integer bound is the distance in representable floats from it): exp 0.99 (1),
 *     exp2 1.23 (1), expm1 1.57 (2), log 0.83 (1), log2 1.47 (1), log1p 0.90 (1), tanh 1.33
 *     (1), sigmoid 1.97 (2), softplus 1.71 (2); every special value (NaN, +-inf, +-0, results
 *     that overflow or underflow, denormals) as the rounded reference, sign of zero included.
 *     Selects on a computed result go through mt_sel_f32 (bit masks) where gcc would otherwise
 *     sink the polynomial into a branch and give up vectorizing (-ftrapping-math).
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

/* c ? a : b for c in {0, 1}, as bit masks (see above: keeps the loop vectorizable) */
MT_KFN float mt_sel_f32(uint32_t c, float a, float b)
{
    uint32_t m = 0u - c;
    return mt_u2f((mt_f2u(a) & m) | (mt_f2u(b) & ~m));
}

/* 2^n for n in [-126, 127] */
MT_KFN float mt_pow2i_f32(int32_t n)
{
    return mt_u2f((uint32_t)(n + 127) << 23);
}

MT_KFN float mt_exp_f32(float x)
{
    /* beyond the clamps the result is 0 or inf anyway; n stays in [-150, 128] */
    float xc = x < -104.0f ? -104.0f : (x > 89.0f ? 89.0f : x);
    xc = xc == xc ? xc : 0.0f;
    float k = xc * 1.44269504088896341f + 12582912.0f;
    int32_t n = (int32_t)(mt_f2u(k) - 0x4B400000u);
    float fn = k - 12582912.0f;
    float r = xc - fn * 0.693359375f;
    r = r - fn * -2.12194440e-4f;
    float z = r * r;
    float p = 1.9875691500e-4f * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * z + r;
    p = p + 1.0f;
    /* two factors, each a normal float: the first product is exact, the second rounds once */
    int32_t n1 = n >> 1;
    float res = p * mt_pow2i_f32(n1) * mt_pow2i_f32(n - n1);
    return x != x ? x + x : res;
}

MT_KFN float mt_exp2_f32(float x)
{
    float xc = x < -151.0f ? -151.0f : (x > 129.0f ? 129.0f : x);
    xc = xc == xc ? xc : 0.0f;
    float k = xc + 12582912.0f;
    int32_t n = (int32_t)(mt_f2u(k) - 0x4B400000u);
    float r = xc - (k - 12582912.0f);
    float p = 1.535336188319500e-4f * r + 1.339887440266574e-3f;
    p = p * r + 9.618437357674640e-3f;
    p = p * r + 5.550332471162809e-2f;
    p = p * r + 2.402264791363012e-1f;
    p = p * r + 6.931472028550421e-1f;
    p = p * r;
    p = p + 1.0f;
    int32_t n1 = n >> 1;
    float res = p * mt_pow2i_f32(n1) * mt_pow2i_f32(n - n1);
    return x != x ? x + x : res;
}

MT_KFN float mt_expm1_f32(float x)
{
    float xc = x < -18.0f ? -18.0f : (x > 89.0f ? 89.0f : x);
    xc = xc == xc ? xc : 0.0f;
    float k = xc * 1.44269504088896341f + 12582912.0f;
    int32_t n = (int32_t)(mt_f2u(k) - 0x4B400000u);
    float fn = k - 12582912.0f;
    float r = xc - fn * 0.693359375f;
    r = r - fn * -2.12194440e-4f;
    float z = r * r;
    float p = 1.9875691500e-4f * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * z + r;
    /* 2^n (p + 1) - 1 = 2 (2^(n-1) p + (2^(n-1) - 0.5)): one rounding, no overflow of 2^n */
    float t = mt_pow2i_f32(n - 1);
    float res = (t * p + (t - 0.5f)) * 2.0f;
    float ax = mt_u2f(mt_f2u(x) & 0x7FFFFFFFu);
    return ax < 2.98023224e-8f ? x : (x != x ? x + x : res);
}

/* log(1 + f) + c + fk ln 2 for f in [sqrt(1/2) - 1, sqrt(2) - 1] (Cephes logf) */
MT_KFN float mt_logpoly_f32(float f, float fk, float c)
{
    float z = f * f;
    float y = 7.0376836292e-2f * f - 1.1514610310e-1f;
    y = y * f + 1.1676998740e-1f;
    y = y * f - 1.2420140846e-1f;
    y = y * f + 1.4249322787e-1f;
    y = y * f - 1.6668057665e-1f;
    y = y * f + 2.0000714765e-1f;
    y = y * f - 2.4999993993e-1f;
    y = y * f + 3.3333331174e-1f;
    y = y * f * z;
    y = y + fk * -2.12194440e-4f;
    y = y - 0.5f * z;
    y = y + c;
    float r = f + y;
    return r + fk * 0.693359375f;
}

MT_KFN float mt_log_f32(float x)
{
    int32_t sub = mt_f2u(x) < 0x00800000u;
    float xs = x * (sub ? 8388608.0f : 1.0f);
    uint32_t ix = mt_f2u(xs) + (0x3F800000u - 0x3F3504F3u);
    int32_t k = (int32_t)(ix >> 23) - (sub ? 150 : 127);
    float f = mt_u2f((ix & 0x007FFFFFu) + 0x3F3504F3u) - 1.0f;
    float res = mt_logpoly_f32(f, (float)k, 0.0f);
    uint32_t ax = mt_f2u(x) & 0x7FFFFFFFu;
    float sp = ax > 0x7F800000u ? x + x
             : (ax == 0u ? -MT_INFF : (mt_f2u(x) == 0x7F800000u ? x : mt_u2f(0x7FC00000u)));
    return mt_sel_f32((uint32_t)(mt_f2u(x) - 1u >= 0x7F7FFFFFu), sp, res);
}

MT_KFN float mt_log1p_f32(float x)
{
    /* log(u) of the rounded u = 1 + x, plus c / u with c = (1 + x) - u exactly */
    float u = 1.0f + x;
    uint32_t iu = mt_f2u(u) + (0x3F800000u - 0x3F3504F3u);
    int32_t k = (int32_t)(iu >> 23) - 127;
    float c = (k >= 2 ? 1.0f : x) - (u - (k >= 2 ? x : 1.0f));
    c = c / u;
    float f = mt_u2f((iu & 0x007FFFFFu) + 0x3F3504F3u) - 1.0f;
    float res = mt_logpoly_f32(f, (float)k, c);
    uint32_t ix = mt_f2u(x);
    float sp = (ix & 0x7FFFFFFFu) > 0x7F800000u ? x + x
             : (ix == 0xBF800000u ? -MT_INFF : (ix > 0xBF800000u ? mt_u2f(0x7FC00000u) : x));
    uint32_t ok = (uint32_t)(ix - 1u < 0x7F7FFFFFu) | (uint32_t)(ix - 0x80000001u < 0x3F7FFFFFu);
    return mt_sel_f32(ok ^ 1u, sp, res);
}

MT_KFN float mt_log2_f32(float x)
{
    int32_t sub = mt_f2u(x) < 0x00800000u;
    float xs = x * (sub ? 8388608.0f : 1.0f);
    uint32_t ix = mt_f2u(xs) + (0x3F800000u - 0x3F3504F3u);
    int32_t k = (int32_t)(ix >> 23) - (sub ? 150 : 127);
    float f = mt_u2f((ix & 0x007FFFFFu) + 0x3F3504F3u) - 1.0f;
    float z = f * f;
    float y = 7.0376836292e-2f * f - 1.1514610310e-1f;
    y = y * f + 1.1676998740e-1f;
    y = y * f - 1.2420140846e-1f;
    y = y * f + 1.4249322787e-1f;
    y = y * f - 1.6668057665e-1f;
    y = y * f + 2.0000714765e-1f;
    y = y * f - 2.4999993993e-1f;
    y = y * f + 3.3333331174e-1f;
    y = y * f * z;
    y = y - 0.5f * z;
    float r = y * 0.44269504088896340736f;
    r = r + f * 0.44269504088896340736f;
    r = r + y;
    r = r + f;
    float res = r + (float)k;
    uint32_t ax = mt_f2u(x) & 0x7FFFFFFFu;
    float sp = ax > 0x7F800000u ? x + x
             : (ax == 0u ? -MT_INFF : (mt_f2u(x) == 0x7F800000u ? x : mt_u2f(0x7FC00000u)));
    return mt_sel_f32((uint32_t)(mt_f2u(x) - 1u >= 0x7F7FFFFFu), sp, res);
}

MT_KFN float mt_tanh_f32(float x)
{
    uint32_t sgn = mt_f2u(x) & 0x80000000u;
    float ax = mt_u2f(mt_f2u(x) ^ sgn);
    float z = x * x;
    float p = -5.70498872745e-3f * z + 2.06390887954e-2f;
    p = p * z - 5.37397155531e-2f;
    p = p * z + 1.33314422036e-1f;
    p = p * z - 3.33332819422e-1f;
    /* Cephes tanhf: odd polynomial below 0.625, 1 - 2 / (exp(2|x|) + 1) above */
    float small = x + x * (z * p);
    float e = mt_exp_f32(ax + ax);
    float big = mt_u2f(mt_f2u(1.0f - 2.0f / (e + 1.0f)) | sgn);
    float res = ax < 0.625f ? small : big;
    return x == 0.0f ? x : res;
}

MT_KFN float mt_sigmoid_f32(float x)
{
    float e = mt_exp_f32(-mt_u2f(mt_f2u(x) & 0x7FFFFFFFu));
    /* e = exp(-|x|) in (0, 1]; dl is the rounding error of d = 1 + e, corrected for */
    float d = 1.0f + e;
    float dl = e - (d - 1.0f);
    float q = (x >= 0.0f ? 1.0f : e) / d;
    return q - (q * dl) / d;
}

MT_KFN float mt_softplus_f32(float x)
{
    float l = mt_log1p_f32(mt_exp_f32(-mt_u2f(mt_f2u(x) & 0x7FFFFFFFu)));
    return (x > 0.0f ? x : 0.0f) + l;
}

MT_KFN float mt_log1mexp_f32(float x)
{
    return x > -0.693147180559945309f ? mt_log_f32(-mt_expm1_f32(x)) : mt_log1p_f32(-mt_exp_f32(x));
}

MT_KFN float mt_logaddexp_f32(float x, float y)
{
    if (x == y) return x + 0.693147180559945309f;
    float d = x - y;
    if (d > 0.0f) return x + mt_log1p_f32(mt_exp_f32(-d));
    if (d <= 0.0f) return y + mt_log1p_f32(mt_exp_f32(d));
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
