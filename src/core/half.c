/* IEEE binary16 (float16) and bfloat16 conversions done on bit patterns.
 *
 * Hardware conversion instructions are not available everywhere (and not for bfloat16), and
 * naive shortcuts (truncating bfloat16, or going double -> float -> half) round wrongly, so
 * every narrowing conversion funnels into one routine, round_small(), that rounds a binary
 * number given as (sign, exponent, 64-bit normalised significand) exactly once to
 * nearest-even in the target format. It handles subnormal results (the rounding point moves
 * left), carries into the next binade and overflow to infinity. NaNs keep their sign and the
 * top payload bits and are made quiet (as x86 hardware conversions do). */
#include <math.h>
#include <string.h>

#include "core_internal.h"

/* A small binary format: p significand bits (implicit bit included), exponent range. */
typedef struct small_fmt {
    int p;          /* 11 for float16, 8 for bfloat16 */
    int emin, emax; /* unbiased exponent range of normal numbers */
    uint16_t inf;   /* bit pattern of +inf */
} small_fmt;

static const small_fmt FMT_F16 = {11, -14, 15, 0x7C00};
static const small_fmt FMT_BF16 = {8, -126, 127, 0x7F80};

/* Rounds (-1)^sign * m * 2^(e - 63) to the format, where m has its top bit (bit 63) set
 * (every double and every 64-bit integer fits m exactly, so no sticky bit is needed).
 * Returns the bit pattern. The format's exponent bias is (1 << (15 - p)) - 1: 15 for
 * float16, 127 for bfloat16. */
static inline uint16_t round_small(small_fmt f, unsigned sign, int e, uint64_t m)
{
    uint16_t s = (uint16_t)(sign << 15);
    if (e > f.emax) return s | f.inf;
    /* Number of low bits of m to drop: 64 - p for normal results, more for subnormal ones. */
    int shift = 64 - f.p + (e < f.emin ? f.emin - e : 0);
    uint64_t q, rem, half;
    if (shift > 64) return s; /* below half the smallest subnormal */
    if (shift == 64) {
        q = 0;
        rem = m;
        half = 1ULL << 63;
    } else {
        q = m >> shift;
        rem = m & ((1ULL << shift) - 1);
        half = 1ULL << (shift - 1);
    }
    if (rem > half || (rem == half && (q & 1))) q++;
    /* Encoding trick: (biased exponent - 1) << (p - 1) plus q (which still carries the
     * implicit bit) gives the right pattern, and a rounding carry ripples into the exponent
     * field, up to the infinity pattern. Subnormals use exponent field 0 and no implicit bit. */
    uint32_t bits;
    if (e < f.emin)
        bits = (uint32_t)q;
    else
        bits = ((uint32_t)(e + ((1 << (15 - f.p)) - 1) - 1) << (f.p - 1)) + (uint32_t)q;
    if (bits >= f.inf) bits = f.inf;
    return (uint16_t)(s | bits);
}

static inline uint16_t nan_small(small_fmt f, unsigned sign, uint64_t frac52)
{
    uint16_t payload = (uint16_t)(frac52 >> (52 - (f.p - 1)));
    uint16_t quiet = (uint16_t)(1u << (f.p - 2));
    return (uint16_t)((sign << 15) | f.inf | quiet | payload);
}

static inline uint16_t f64_to_small(small_fmt f, double d)
{
    uint64_t b;
    memcpy(&b, &d, 8);
    unsigned sign = (unsigned)(b >> 63);
    int ex = (int)((b >> 52) & 0x7FF);
    uint64_t frac = b & ((1ULL << 52) - 1);
    if (ex == 0x7FF) return frac ? nan_small(f, sign, frac) : (uint16_t)((sign << 15) | f.inf);
    if (ex == 0) return (uint16_t)(sign << 15); /* |d| < 2^-1022: far below any subnormal */
    return round_small(f, sign, ex - 1023, (frac | (1ULL << 52)) << 11);
}

static inline uint16_t u64_to_small(small_fmt f, unsigned sign, uint64_t mag)
{
    if (mag == 0) return (uint16_t)(sign << 15);
    int lz = __builtin_clzll(mag);
    return round_small(f, sign, 63 - lz, mag << lz);
}

uint16_t mt_f64_to_f16(double d)
{
    return f64_to_small(FMT_F16, d);
}

uint16_t mt_f64_to_bf16(double d)
{
    return f64_to_small(FMT_BF16, d);
}

/* float -> double is exact (NaN payloads land in the top fraction bits), so the float forms
 * share the double path; NaN is handled on the float bits to keep a signalling payload. */
uint16_t mt_f32_to_f16(float x)
{
    uint32_t b;
    memcpy(&b, &x, 4);
    if ((b & 0x7F800000u) == 0x7F800000u && (b & 0x7FFFFFu))
        return nan_small(FMT_F16, b >> 31, (uint64_t)(b & 0x7FFFFFu) << 29);
    return f64_to_small(FMT_F16, (double)x);
}

uint16_t mt_f32_to_bf16(float x)
{
    uint32_t b;
    memcpy(&b, &x, 4);
    if ((b & 0x7F800000u) == 0x7F800000u && (b & 0x7FFFFFu))
        return nan_small(FMT_BF16, b >> 31, (uint64_t)(b & 0x7FFFFFu) << 29);
    /* Normal-range fast path on the bits: round the low 16 bits to nearest even. The carry
     * of a rounding-up ripples into the exponent and to inf, as it should; subnormal floats
     * are bfloat16 subnormals with the same scaling, so this is exact for all finite x. */
    uint32_t lsb = (b >> 16) & 1u;
    uint32_t r = b + 0x7FFFu + lsb;
    return (uint16_t)(r >> 16);
}

float mt_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t ex = (h >> 10) & 0x1Fu;
    uint32_t man = h & 0x3FFu;
    uint32_t b;
    if (ex == 0x1F) {
        b = sign | 0x7F800000u | (man << 13) | (man ? 0x400000u : 0);
    } else if (ex == 0) {
        if (man == 0) {
            b = sign;
        } else {
            /* Subnormal: value = man * 2^-24, exact in float. */
            float v = (float)man * 0x1p-24f;
            memcpy(&b, &v, 4);
            b |= sign;
        }
    } else {
        b = sign | ((ex + 112u) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &b, 4);
    return f;
}

float mt_bf16_to_f32(uint16_t h)
{
    uint32_t b = (uint32_t)h << 16;
    if ((b & 0x7F800000u) == 0x7F800000u && (b & 0x7FFFFFu)) b |= 0x400000u; /* quiet NaN */
    float f;
    memcpy(&f, &b, 4);
    return f;
}

uint16_t mt__i64_to_f16(int64_t v)
{
    return v < 0 ? u64_to_small(FMT_F16, 1, 0 - (uint64_t)v)
                 : u64_to_small(FMT_F16, 0, (uint64_t)v);
}

uint16_t mt__u64_to_f16(uint64_t v)
{
    return u64_to_small(FMT_F16, 0, v);
}

uint16_t mt__i64_to_bf16(int64_t v)
{
    return v < 0 ? u64_to_small(FMT_BF16, 1, 0 - (uint64_t)v)
                 : u64_to_small(FMT_BF16, 0, (uint64_t)v);
}

uint16_t mt__u64_to_bf16(uint64_t v)
{
    return u64_to_small(FMT_BF16, 0, v);
}
