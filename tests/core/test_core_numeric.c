/* Unit tests of the numeric parts of the core module: 16-bit float conversions (against
 * gcc's _Float16 and an independent midpoint reference built from the format definitions),
 * dtype names and promotion (against NumPy's answers, recorded once by hand) and strided
 * dtype conversion of every pair (against NumPy's x86-64 answers and an exact reference). */
#include "mt_test.h"

/* A small deterministic generator for test inputs (splitmix64), independent of the code
 * under test. */
static uint64_t rng_state = 0x0123456789ABCDEFULL;
static uint64_t rnd64(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static float bits_f32(uint32_t b)
{
    float f;
    memcpy(&f, &b, 4);
    return f;
}
static uint32_t f32_bits(float f)
{
    uint32_t b;
    memcpy(&b, &f, 4);
    return b;
}
static double bits_f64(uint64_t b)
{
    double d;
    memcpy(&d, &b, 8);
    return d;
}

/* ================================================================ 16-bit floats */

/* Exact value of a positive float16 / bfloat16 pattern from the format definition
 * (independent of the code under test). Patterns at +inf give the next power of two, so
 * the last finite value has an upper neighbour for midpoint rounding. */
static double f16_formula(uint16_t h)
{
    int ex = (h >> 10) & 0x1F, man = h & 0x3FF;
    double v = ex == 0 ? ldexp(man, -24) : ldexp(1024 + man, ex - 25);
    return (h & 0x8000) ? -v : v;
}
static double bf16_formula(uint16_t h)
{
    int ex = (h >> 7) & 0xFF, man = h & 0x7F;
    double v = ex == 0 ? ldexp(man, -133) : ldexp(128 + man, ex - 134);
    return (h & 0x8000) ? -v : v;
}

/* Round-to-nearest-even reference by neighbours and midpoints: find the patterns lo, lo+1
 * whose values bracket |x| (binary search over the monotonic positive patterns), compare
 * |x| with their midpoint (exact in long double), break ties to the even pattern. */
static uint16_t ref_round(long double x, bool bf16)
{
    double (*val)(uint16_t) = bf16 ? bf16_formula : f16_formula;
    uint16_t inf = bf16 ? 0x7F80 : 0x7C00;
    uint16_t sign = signbit(x) ? 0x8000 : 0;
    long double a = fabsl(x);
    if (isnan(x)) return (uint16_t)(sign | inf | 1); /* NaN class; tests compare NaN-ness */
    if (a >= (long double)val(inf)) return sign | inf;
    uint16_t lo = 0, hi = inf; /* val(lo) <= a < val(hi) */
    while (hi - lo > 1) {
        uint16_t mid = (uint16_t)((lo + hi) / 2);
        if ((long double)val(mid) <= a)
            lo = mid;
        else
            hi = mid;
    }
    long double m = ((long double)val(lo) + (long double)val(hi)) / 2;
    uint16_t r = a < m ? lo : a > m ? hi : (lo & 1) ? hi : lo;
    return sign | r;
}

static bool f16_is_nan(uint16_t h)
{
    return (h & 0x7C00) == 0x7C00 && (h & 0x3FF);
}
static bool bf16_is_nan(uint16_t h)
{
    return (h & 0x7F80) == 0x7F80 && (h & 0x7F);
}

/* Checks a 16-bit result against the reference, treating all NaNs of one sign alike; NaN
 * results must be quiet. */
#define CHECK_HALF(got, want, isnan_fn, quiet, x)                                                  \
    do {                                                                                           \
        uint16_t g_ = (got), w_ = (want);                                                          \
        bool ok_ = isnan_fn(w_) ? (isnan_fn(g_) && (g_ & (quiet)) && ((g_ ^ w_) & 0x8000) == 0)    \
                                : g_ == w_;                                                        \
        if (!ok_)                                                                                  \
            mt_test_fail(__FILE__, __LINE__, "%s(%.17Lg = %a): got 0x%04x, want 0x%04x", #got,     \
                         (long double)(x), (double)(x), g_, w_);                                   \
    } while (0)

MT_TEST(half_f16_roundtrip_all_patterns)
{
    for (uint32_t h = 0; h < 65536; h++) {
        float f = mt_f16_to_f32((uint16_t)h);
        if (f16_is_nan((uint16_t)h)) {
            MT_CHECK(isnan(f));
            MT_CHECK(!!signbit(f) == !!(h & 0x8000));
            uint16_t back = mt_f32_to_f16(f);
            /* NaN stays NaN, keeps its sign and payload, and comes back quiet */
            MT_CHECK(f16_is_nan(back));
            MT_CHECK_EQ_INT(back, h | 0x200);
        } else {
            MT_CHECK((double)f == f16_formula((uint16_t)h) || ((h & 0x7FFF) == 0x7C00 && isinf(f)));
            MT_CHECK_EQ_INT(mt_f32_to_f16(f), h); /* exact round trip, -0 included */
            MT_CHECK_EQ_INT(mt_f64_to_f16((double)f), h);
        }
    }
}

MT_TEST(half_bf16_roundtrip_all_patterns)
{
    for (uint32_t h = 0; h < 65536; h++) {
        float f = mt_bf16_to_f32((uint16_t)h);
        if (bf16_is_nan((uint16_t)h)) {
            MT_CHECK(isnan(f) && !!signbit(f) == !!(h & 0x8000));
            uint16_t back = mt_f32_to_bf16(f);
            MT_CHECK_EQ_INT(back, h | 0x40);
            MT_CHECK_EQ_INT(mt_f64_to_bf16((double)f), h | 0x40);
        } else {
            MT_CHECK((double)f == bf16_formula((uint16_t)h) ||
                     ((h & 0x7FFF) == 0x7F80 && isinf(f)));
            MT_CHECK_EQ_INT(mt_f32_to_bf16(f), h);
            MT_CHECK_EQ_INT(mt_f64_to_bf16((double)f), h);
        }
    }
}

#if defined(__FLT16_MAX__)
static uint16_t gcc_f32_to_f16(float f)
{
    _Float16 h = (_Float16)f;
    uint16_t b;
    memcpy(&b, &h, 2);
    return b;
}
static uint16_t gcc_f64_to_f16(double d)
{
    _Float16 h = (_Float16)d;
    uint16_t b;
    memcpy(&b, &h, 2);
    return b;
}
static float gcc_f16_to_f32(uint16_t b)
{
    _Float16 h;
    memcpy(&h, &b, 2);
    return (float)h;
}
#endif

/* Edge floats for the 16-bit conversions: zeros, subnormal boundaries, the largest finite
 * values, the overflow threshold, halfway cases, NaN and infinities. */
static const float f16_edges[] = {
    0.0f,
    -0.0f,
    0x1p-24f,
    0x1p-25f,
    0x1.000002p-25f,
    0x1.8p-24f,
    0x1.8p-23f,
    0x1p-14f,
    0x1.ffcp-15f,
    0x1.ff8p-15f,
    0x1.ffep-15f,
    65504.0f,
    65519.99f,
    65520.0f,
    65536.0f,
    1e10f,
    -65520.0f,
    1.0f,
    1.00048828125f /* 1 + 2^-11: tie, to even */,
    1.00146484375f /* 1+3*2^-11 */,
    0.1f,
    -2.5f,
    3.14159265f,
    0x1p-149f,
    0x1p-126f,
    3.4028235e38f,
    -3.4028235e38f,
};

MT_TEST(half_f32_to_f16_vs_gcc)
{
#if !defined(__FLT16_MAX__)
    MT_SKIP("compiler has no _Float16");
#else
    for (size_t i = 0; i < sizeof f16_edges / sizeof f16_edges[0]; i++) {
        float x = f16_edges[i];
        MT_CHECK_EQ_INT(mt_f32_to_f16(x), gcc_f32_to_f16(x));
        CHECK_HALF(mt_f32_to_f16(x), ref_round(x, false), f16_is_nan, 0x200, x);
        CHECK_HALF(mt_f32_to_f16(-x), ref_round(-x, false), f16_is_nan, 0x200, -x);
    }
    float specials[] = {
        INFINITY, -INFINITY, NAN, -NAN, bits_f32(0x7F800001u), bits_f32(0xFFA00000u)};
    for (size_t i = 0; i < sizeof specials / sizeof specials[0]; i++)
        MT_CHECK_EQ_INT(mt_f32_to_f16(specials[i]), gcc_f32_to_f16(specials[i]));
    /* A sweep over all float bit patterns (every 251st) and the whole f16 range densely. */
    for (uint64_t b = 0; b < (1ULL << 32); b += 251) {
        float x = bits_f32((uint32_t)b);
        uint16_t g = gcc_f32_to_f16(x), m = mt_f32_to_f16(x);
        if (g != m)
            mt_test_fail(__FILE__, __LINE__, "f32 %a (0x%08x): gcc 0x%04x, mt 0x%04x", (double)x,
                         (uint32_t)b, g, m);
    }
    for (uint32_t b = 0x33000000u; b < 0x47800000u; b += 37) {
        float x = bits_f32(b);
        uint16_t g = gcc_f32_to_f16(x), m = mt_f32_to_f16(x);
        if (g != m)
            mt_test_fail(__FILE__, __LINE__, "f32 %a: gcc 0x%04x, mt 0x%04x", (double)x, g, m);
    }
    for (uint32_t h = 0; h < 65536; h++) {
        float a = mt_f16_to_f32((uint16_t)h), b = gcc_f16_to_f32((uint16_t)h);
        MT_CHECK(f32_bits(a) == f32_bits(b));
    }
#endif
}

MT_TEST(half_f64_to_f16_single_rounding)
{
    /* 1 + 2^-11 + 2^-40 is just above the midpoint between 1 and 1 + 2^-10; rounding to
     * float first lands exactly on the midpoint, which then ties down to 1. */
    double d = 1.0 + 0x1p-11 + 0x1p-40;
    MT_CHECK_EQ_INT(mt_f32_to_f16((float)d), 0x3C00); /* the double-rounding answer */
    MT_CHECK_EQ_INT(mt_f64_to_f16(d), 0x3C01);        /* the correct one */
    MT_CHECK_EQ_INT(mt_f64_to_f16(-d), 0xBC01);
    /* Same in the subnormal range: 2^-25 + 2^-60 must round up to the smallest subnormal. */
    MT_CHECK_EQ_INT(mt_f64_to_f16(0x1p-25 + 0x1p-60), 0x0001);
    MT_CHECK_EQ_INT(mt_f64_to_f16(0x1p-25), 0x0000);
    MT_CHECK_EQ_INT(mt_f64_to_f16(65519.999999999), 0x7BFF);
    MT_CHECK_EQ_INT(mt_f64_to_f16(65520.0), 0x7C00);
    MT_CHECK_EQ_INT(mt_f64_to_f16(1e300), 0x7C00);
    MT_CHECK_EQ_INT(mt_f64_to_f16(-1e300), 0xFC00);
    MT_CHECK_EQ_INT(mt_f64_to_f16(1e-300), 0x0000);
    MT_CHECK_EQ_INT(mt_f64_to_f16(-1e-300), 0x8000);
    MT_CHECK_EQ_INT(mt_f64_to_f16(bits_f64(1)), 0x0000); /* smallest double subnormal */
    MT_CHECK(f16_is_nan(mt_f64_to_f16(NAN)) && (mt_f64_to_f16(NAN) & 0x200));
    MT_CHECK_EQ_INT(mt_f64_to_f16(-NAN) & 0x8000, 0x8000);
    MT_CHECK(f16_is_nan(mt_f64_to_f16(bits_f64(0x7FF0000000000001ULL)))); /* low payload only */

    /* Every midpoint between adjacent float16 values, and its two double neighbours. */
    for (uint32_t h = 0; h < 0x7C00; h++) {
        long double m =
            ((long double)f16_formula((uint16_t)h) + f16_formula((uint16_t)(h + 1))) / 2;
        double xs[3] = {(double)m, nextafter((double)m, 0), nextafter((double)m, INFINITY)};
        for (int k = 0; k < 3; k++) {
            CHECK_HALF(mt_f64_to_f16(xs[k]), ref_round(xs[k], false), f16_is_nan, 0x200, xs[k]);
            CHECK_HALF(mt_f64_to_f16(-xs[k]), ref_round(-xs[k], false), f16_is_nan, 0x200, -xs[k]);
        }
    }
    /* Random doubles spread over the float16 range and beyond. */
    for (int i = 0; i < 200000; i++) {
        uint64_t r = rnd64();
        int e = (int)(r % 50) - 30; /* 2^-30 .. 2^19 */
        double x = ldexp(1.0 + (double)(rnd64() >> 11) * 0x1p-53, e);
        if (r & (1ULL << 60)) x = -x;
        CHECK_HALF(mt_f64_to_f16(x), ref_round(x, false), f16_is_nan, 0x200, x);
#if defined(__FLT16_MAX__)
        MT_CHECK_EQ_INT(mt_f64_to_f16(x), gcc_f64_to_f16(x));
#endif
    }
}

MT_TEST(half_bf16_rounding)
{
    /* Double-rounding counterexample: 1 + 2^-8 + 2^-30 rounds to 1 + 2^-8 in float, a tie
     * that goes to 1.0; correct single rounding gives 1 + 2^-7. */
    double d = 1.0 + 0x1p-8 + 0x1p-30;
    MT_CHECK_EQ_INT(mt_f32_to_bf16((float)d), 0x3F80);
    MT_CHECK_EQ_INT(mt_f64_to_bf16(d), 0x3F81);
    /* NaN must never round into inf: a float NaN with only low payload bits. */
    uint16_t n = mt_f32_to_bf16(bits_f32(0x7F800001u));
    MT_CHECK(bf16_is_nan(n) && (n & 0x40));
    n = mt_f32_to_bf16(bits_f32(0xFF80FFFFu));
    MT_CHECK(bf16_is_nan(n) && (n & 0x8000));
    MT_CHECK(bf16_is_nan(mt_f64_to_bf16(bits_f64(0x7FF0000000000001ULL))));
    MT_CHECK_EQ_INT(mt_f32_to_bf16(INFINITY), 0x7F80);
    MT_CHECK_EQ_INT(mt_f32_to_bf16(-INFINITY), 0xFF80);
    MT_CHECK_EQ_INT(mt_f32_to_bf16(3.4028235e38f), 0x7F80); /* rounds up past the max */
    MT_CHECK_EQ_INT(mt_f64_to_bf16(1e300), 0x7F80);
    MT_CHECK_EQ_INT(mt_f32_to_bf16(-0.0f), 0x8000);
    MT_CHECK_EQ_INT(mt_f32_to_bf16(0x1p-133f), 0x0001); /* smallest bf16 subnormal */
    MT_CHECK_EQ_INT(mt_f64_to_bf16(0x1p-134), 0x0000);  /* tie to even (zero) */
    MT_CHECK_EQ_INT(mt_f64_to_bf16(0x1p-134 + 0x1p-160), 0x0001);

    /* Float bit patterns (every 4093rd) against the midpoint reference. */
    for (uint64_t b = 0; b < (1ULL << 32); b += 4093) {
        float x = bits_f32((uint32_t)b);
        CHECK_HALF(mt_f32_to_bf16(x), ref_round(x, true), bf16_is_nan, 0x40, x);
    }
    /* All midpoints between adjacent bfloat16 values and their double neighbours. */
    for (uint32_t h = 0; h < 0x7F80; h++) {
        long double m =
            ((long double)bf16_formula((uint16_t)h) + bf16_formula((uint16_t)(h + 1))) / 2;
        double xs[3] = {(double)m, nextafter((double)m, 0), nextafter((double)m, INFINITY)};
        for (int k = 0; k < 3; k++) {
            CHECK_HALF(mt_f64_to_bf16(xs[k]), ref_round(xs[k], true), bf16_is_nan, 0x40, xs[k]);
            CHECK_HALF(mt_f64_to_bf16(-xs[k]), ref_round(-xs[k], true), bf16_is_nan, 0x40, -xs[k]);
            if ((double)(float)xs[k] == xs[k])
                CHECK_HALF(mt_f32_to_bf16((float)xs[k]), ref_round(xs[k], true), bf16_is_nan, 0x40,
                           xs[k]);
        }
    }
}

/* ================================================================ dtypes */

MT_TEST(dtype_names_and_properties)
{
    static const struct {
        const char *name;
        mt_dtype dt;
    } cases[] = {
        {"float32", MT_FLOAT32}, {"f32", MT_FLOAT32},       {"float", MT_FLOAT32},
        {"single", MT_FLOAT32},  {"float64", MT_FLOAT64},   {"f64", MT_FLOAT64},
        {"double", MT_FLOAT64},  {"float16", MT_FLOAT16},   {"f16", MT_FLOAT16},
        {"half", MT_FLOAT16},    {"bfloat16", MT_BFLOAT16}, {"bf16", MT_BFLOAT16},
        {"int8", MT_INT8},       {"i8", MT_INT8},           {"i16", MT_INT16},
        {"i32", MT_INT32},       {"i64", MT_INT64},         {"int", MT_INT64},
        {"u8", MT_UINT8},        {"uint16", MT_UINT16},     {"u32", MT_UINT32},
        {"u64", MT_UINT64},      {"bool", MT_BOOL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mt_dtype dt = MT_DTYPE_COUNT;
        MT_CHECK_OK(mt_dtype_from_name(&dt, cases[i].name));
        MT_CHECK_EQ_INT(dt, cases[i].dt);
    }
    for (int d = 0; d < MT_DTYPE_COUNT; d++) {
        mt_dtype back;
        MT_CHECK_OK(mt_dtype_from_name(&back, mt_dtype_name((mt_dtype)d)));
        MT_CHECK_EQ_INT(back, d);
    }
    mt_dtype dt;
    MT_CHECK_ERR(mt_dtype_from_name(&dt, "float128"), MT_ERR_DTYPE, "'float128'");
    MT_CHECK_ERR(mt_dtype_from_name(&dt, ""), MT_ERR_DTYPE, "unknown dtype");
    MT_CHECK_STR_EQ(mt_dtype_name(MT_BFLOAT16), "bfloat16");
    MT_CHECK_STR_EQ(mt_dtype_name(MT_DTYPE_COUNT), "invalid");
    MT_CHECK_STR_EQ(mt_dtype_name((mt_dtype)-1), "invalid");
    MT_CHECK_EQ_INT(mt_dtype_size(MT_BOOL), 1);
    MT_CHECK_EQ_INT(mt_dtype_size(MT_BFLOAT16), 2);
    MT_CHECK_EQ_INT(mt_dtype_size(MT_UINT32), 4);
    MT_CHECK_EQ_INT(mt_dtype_size(MT_FLOAT64), 8);
    MT_CHECK_EQ_INT(mt_dtype_size(MT_DTYPE_COUNT), 0);
    MT_CHECK_EQ_INT(mt_dtype_kind(MT_BOOL), 'b');
    MT_CHECK_EQ_INT(mt_dtype_kind(MT_INT16), 'i');
    MT_CHECK_EQ_INT(mt_dtype_kind(MT_UINT64), 'u');
    MT_CHECK_EQ_INT(mt_dtype_kind(MT_FLOAT16), 'f');
    MT_CHECK_EQ_INT(mt_dtype_kind(MT_DTYPE_COUNT), 0);
    MT_CHECK(mt_dtype_is_float(MT_BFLOAT16) && !mt_dtype_is_float(MT_INT8));
    MT_CHECK(mt_dtype_is_int(MT_UINT8) && mt_dtype_is_int(MT_INT64));
    MT_CHECK(!mt_dtype_is_int(MT_BOOL) && !mt_dtype_is_int(MT_FLOAT32));
    MT_CHECK(mt_dtype_valid(MT_FLOAT64) && !mt_dtype_valid(MT_DTYPE_COUNT));
}

#define NP_NCAST 26
#define I64MIN ((uint64_t)INT64_MIN)
/* The float inputs of the NumPy cast table below, in order. */
static const double np_cast_src[NP_NCAST] = {
    NAN,    INFINITY, -INFINITY, -0.0,    1e300,   -1e300,  -1.0,        255.0,  256.0,
    300.7,  -300.7,   3e9 + 1,   -3e9,    0x1p31,  -0x1p31, -0x1p31 - 1, 0x1p63, -0x1p63,
    0x1p64, 1.8e19,   9.3e18,    65504.0, 65520.0, 2.5,     -2.5,        0.5};
/* NumPy 1.24.2 np.result_type(a, b) for every pair of NumPy dtypes (run once by hand). */
static const mt_dtype np_promote[12][12] = {
    {MT_BOOL, MT_INT8, MT_INT16, MT_INT32, MT_INT64, MT_UINT8, MT_UINT16, MT_UINT32, MT_UINT64,
     MT_FLOAT16, MT_FLOAT32, MT_FLOAT64}, /* bool */
    {MT_INT8, MT_INT8, MT_INT16, MT_INT32, MT_INT64, MT_INT16, MT_INT32, MT_INT64, MT_FLOAT64,
     MT_FLOAT16, MT_FLOAT32, MT_FLOAT64}, /* int8 */
    {MT_INT16, MT_INT16, MT_INT16, MT_INT32, MT_INT64, MT_INT16, MT_INT32, MT_INT64, MT_FLOAT64,
     MT_FLOAT32, MT_FLOAT32, MT_FLOAT64}, /* int16 */
    {MT_INT32, MT_INT32, MT_INT32, MT_INT32, MT_INT64, MT_INT32, MT_INT32, MT_INT64, MT_FLOAT64,
     MT_FLOAT64, MT_FLOAT64, MT_FLOAT64}, /* int32 */
    {MT_INT64, MT_INT64, MT_INT64, MT_INT64, MT_INT64, MT_INT64, MT_INT64, MT_INT64, MT_FLOAT64,
     MT_FLOAT64, MT_FLOAT64, MT_FLOAT64}, /* int64 */
    {MT_UINT8, MT_INT16, MT_INT16, MT_INT32, MT_INT64, MT_UINT8, MT_UINT16, MT_UINT32, MT_UINT64,
     MT_FLOAT16, MT_FLOAT32, MT_FLOAT64}, /* uint8 */
    {MT_UINT16, MT_INT32, MT_INT32, MT_INT32, MT_INT64, MT_UINT16, MT_UINT16, MT_UINT32, MT_UINT64,
     MT_FLOAT32, MT_FLOAT32, MT_FLOAT64}, /* uint16 */
    {MT_UINT32, MT_INT64, MT_INT64, MT_INT64, MT_INT64, MT_UINT32, MT_UINT32, MT_UINT32, MT_UINT64,
     MT_FLOAT64, MT_FLOAT64, MT_FLOAT64}, /* uint32 */
    {MT_UINT64, MT_FLOAT64, MT_FLOAT64, MT_FLOAT64, MT_FLOAT64, MT_UINT64, MT_UINT64, MT_UINT64,
     MT_UINT64, MT_FLOAT64, MT_FLOAT64, MT_FLOAT64}, /* uint64 */
    {MT_FLOAT16, MT_FLOAT16, MT_FLOAT32, MT_FLOAT64, MT_FLOAT64, MT_FLOAT16, MT_FLOAT32, MT_FLOAT64,
     MT_FLOAT64, MT_FLOAT16, MT_FLOAT32, MT_FLOAT64}, /* float16 */
    {MT_FLOAT32, MT_FLOAT32, MT_FLOAT32, MT_FLOAT64, MT_FLOAT64, MT_FLOAT32, MT_FLOAT32, MT_FLOAT64,
     MT_FLOAT64, MT_FLOAT32, MT_FLOAT32, MT_FLOAT64}, /* float32 */
    {MT_FLOAT64, MT_FLOAT64, MT_FLOAT64, MT_FLOAT64, MT_FLOAT64, MT_FLOAT64, MT_FLOAT64, MT_FLOAT64,
     MT_FLOAT64, MT_FLOAT64, MT_FLOAT64, MT_FLOAT64}, /* float64 */
};
/* NumPy 1.24.2 on x86-64: np.array(np_cast_src, dtype=SRC).astype(T), as sign-extended
 * 64-bit patterns (run once by hand). */
// clang-format off
static const uint64_t np_cast_float64_int8[NP_NCAST] = {
    0, 0, 0, 0, 0, 0, -1, -1, 0, 44, -44, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, -32, -16, 2, -2, 0,
};
static const uint64_t np_cast_float64_int16[NP_NCAST] = {
    0, 0, 0, 0, 0, 0, -1, 255, 256, 300, -300, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, -32, -16, 2, -2, 0,
};
static const uint64_t np_cast_float64_int32[NP_NCAST] = {
    -2147483648, -2147483648, -2147483648, 0, -2147483648, -2147483648, -1, 255, 256, 300, -300,
    -2147483648, -2147483648, -2147483648, -2147483648, -2147483648, -2147483648, -2147483648,
    -2147483648, -2147483648, -2147483648, 65504, 65520, 2, -2, 0,
};
static const uint64_t np_cast_float64_int64[NP_NCAST] = {
    I64MIN, I64MIN, I64MIN, 0, I64MIN, I64MIN, -1, 255, 256, 300, -300, 3000000001, -3000000000,
    2147483648, -2147483648, -2147483649, I64MIN, I64MIN, I64MIN, I64MIN, I64MIN, 65504, 65520, 2,
    -2, 0,
};
static const uint64_t np_cast_float64_uint8[NP_NCAST] = {
    0, 0, 0, 0, 0, 0, 255, 255, 0, 44, 212, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 224, 240, 2, 254, 0,
};
static const uint64_t np_cast_float64_uint16[NP_NCAST] = {
    0, 0, 0, 0, 0, 0, 65535, 255, 256, 300, 65236, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 65504, 65520, 2,
    65534, 0,
};
static const uint64_t np_cast_float64_uint32[NP_NCAST] = {
    2147483648, 0, 2147483648, 0, 0, 2147483648, 4294967295, 255, 256, 300, 4294966996,
    3000000001, 2147483648, 2147483648, 2147483648, 2147483648, 0, 2147483648, 0, 0, 0, 65504,
    65520, 2, 4294967294, 0,
};
static const uint64_t np_cast_float64_uint64[NP_NCAST] = {
    9223372036854775808ULL, 0, 9223372036854775808ULL, 0, 0, 9223372036854775808ULL,
    18446744073709551615ULL, 255, 256, 300, 18446744073709551316ULL, 3000000001,
    18446744070709551616ULL, 2147483648, 18446744071562067968ULL, 18446744071562067967ULL,
    9223372036854775808ULL, 9223372036854775808ULL, 0, 18000000000000000000ULL,
    9300000000000000000ULL, 65504, 65520, 2, 18446744073709551614ULL, 0,
};
static const uint64_t np_cast_float64_bool[NP_NCAST] = {
    1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
};
static const uint64_t np_cast_float32_int8[NP_NCAST] = {
    0, 0, 0, 0, 0, 0, -1, -1, 0, 44, -44, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, -32, -16, 2, -2, 0,
};
static const uint64_t np_cast_float32_int16[NP_NCAST] = {
    0, 0, 0, 0, 0, 0, -1, 255, 256, 300, -300, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, -32, -16, 2, -2, 0,
};
static const uint64_t np_cast_float32_int32[NP_NCAST] = {
    -2147483648, -2147483648, -2147483648, 0, -2147483648, -2147483648, -1, 255, 256, 300, -300,
    -2147483648, -2147483648, -2147483648, -2147483648, -2147483648, -2147483648, -2147483648,
    -2147483648, -2147483648, -2147483648, 65504, 65520, 2, -2, 0,
};
static const uint64_t np_cast_float32_int64[NP_NCAST] = {
    I64MIN, I64MIN, I64MIN, 0, I64MIN, I64MIN, -1, 255, 256, 300, -300, 3000000000, -3000000000,
    2147483648, -2147483648, -2147483648, I64MIN, I64MIN, I64MIN, I64MIN, I64MIN, 65504, 65520, 2,
    -2, 0,
};
static const uint64_t np_cast_float32_uint8[NP_NCAST] = {
    0, 0, 0, 0, 0, 0, 255, 255, 0, 44, 212, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 224, 240, 2, 254, 0,
};
static const uint64_t np_cast_float32_uint16[NP_NCAST] = {
    0, 0, 0, 0, 0, 0, 65535, 255, 256, 300, 65236, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 65504, 65520, 2,
    65534, 0,
};
static const uint64_t np_cast_float32_uint32[NP_NCAST] = {
    2147483648, 0, 2147483648, 0, 0, 2147483648, 4294967295, 255, 256, 300, 4294966996,
    3000000000, 2147483648, 2147483648, 2147483648, 2147483648, 0, 2147483648, 0, 0, 0, 65504,
    65520, 2, 4294967294, 0,
};
static const uint64_t np_cast_float32_uint64[NP_NCAST] = {
    9223372036854775808ULL, 0, 9223372036854775808ULL, 0, 0, 9223372036854775808ULL,
    18446744073709551615ULL, 255, 256, 300, 18446744073709551316ULL, 3000000000,
    18446744070709551616ULL, 2147483648, 18446744071562067968ULL, 18446744071562067968ULL,
    9223372036854775808ULL, 9223372036854775808ULL, 0, 18000000404716257280ULL,
    9300000300729368576ULL, 65504, 65520, 2, 18446744073709551614ULL, 0,
};
static const uint64_t np_cast_float32_bool[NP_NCAST] = {
    1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
};
// clang-format on

/* The 12 NumPy dtypes in the order of the tables above. */
static const mt_dtype np_order[12] = {MT_BOOL,   MT_INT8,    MT_INT16,   MT_INT32,
                                      MT_INT64,  MT_UINT8,   MT_UINT16,  MT_UINT32,
                                      MT_UINT64, MT_FLOAT16, MT_FLOAT32, MT_FLOAT64};

MT_TEST(dtype_promote_matches_numpy)
{
    for (int i = 0; i < 12; i++)
        for (int j = 0; j < 12; j++) {
            mt_dtype got = mt_dtype_promote(np_order[i], np_order[j]);
            if (got != np_promote[i][j])
                mt_test_fail(__FILE__, __LINE__, "promote(%s, %s) = %s, NumPy says %s",
                             mt_dtype_name(np_order[i]), mt_dtype_name(np_order[j]),
                             mt_dtype_name(got), mt_dtype_name(np_promote[i][j]));
        }
    /* bfloat16 (ml_dtypes semantics): like float16 with integers and bool, with float16 it
     * needs float32. */
    static const struct {
        mt_dtype other, want;
    } bf[] = {{MT_BOOL, MT_BFLOAT16},   {MT_INT8, MT_BFLOAT16},     {MT_UINT8, MT_BFLOAT16},
              {MT_INT16, MT_FLOAT32},   {MT_UINT16, MT_FLOAT32},    {MT_INT32, MT_FLOAT64},
              {MT_UINT32, MT_FLOAT64},  {MT_INT64, MT_FLOAT64},     {MT_UINT64, MT_FLOAT64},
              {MT_FLOAT16, MT_FLOAT32}, {MT_BFLOAT16, MT_BFLOAT16}, {MT_FLOAT32, MT_FLOAT32},
              {MT_FLOAT64, MT_FLOAT64}};
    for (size_t i = 0; i < sizeof bf / sizeof bf[0]; i++) {
        MT_CHECK_EQ_INT(mt_dtype_promote(MT_BFLOAT16, bf[i].other), bf[i].want);
        MT_CHECK_EQ_INT(mt_dtype_promote(bf[i].other, MT_BFLOAT16), bf[i].want);
    }
}

/* Reads element i of an integer or bool array as a sign- or zero-extended 64-bit pattern. */
static uint64_t read_int_bits(const void *p, mt_dtype dt)
{
    switch (dt) {
    case MT_BOOL:
        return *(const uint8_t *)p;
    case MT_INT8:
        return (uint64_t)(int64_t) * (const int8_t *)p;
    case MT_INT16:
        return (uint64_t)(int64_t) * (const int16_t *)p;
    case MT_INT32:
        return (uint64_t)(int64_t) * (const int32_t *)p;
    case MT_INT64:
        return (uint64_t) * (const int64_t *)p;
    case MT_UINT8:
        return *(const uint8_t *)p;
    case MT_UINT16:
        return *(const uint16_t *)p;
    case MT_UINT32:
        return *(const uint32_t *)p;
    default:
        return *(const uint64_t *)p;
    }
}

MT_TEST(dtype_convert_float_to_int_matches_numpy)
{
    static const mt_dtype targets[9] = {MT_INT8,   MT_INT16,  MT_INT32,  MT_INT64, MT_UINT8,
                                        MT_UINT16, MT_UINT32, MT_UINT64, MT_BOOL};
    const uint64_t *f64_tab[9] = {
        np_cast_float64_int8,   np_cast_float64_int16,  np_cast_float64_int32,
        np_cast_float64_int64,  np_cast_float64_uint8,  np_cast_float64_uint16,
        np_cast_float64_uint32, np_cast_float64_uint64, np_cast_float64_bool};
    const uint64_t *f32_tab[9] = {
        np_cast_float32_int8,   np_cast_float32_int16,  np_cast_float32_int32,
        np_cast_float32_int64,  np_cast_float32_uint8,  np_cast_float32_uint16,
        np_cast_float32_uint32, np_cast_float32_uint64, np_cast_float32_bool};
    float src32[NP_NCAST];
    for (int i = 0; i < NP_NCAST; i++)
        src32[i] = (float)np_cast_src[i];
    for (int t = 0; t < 9; t++) {
        size_t es = mt_dtype_size(targets[t]);
        unsigned char out[NP_NCAST * 8];
        for (int pass = 0; pass < 2; pass++) {
            if (pass == 0)
                mt_dtype_convert(out, targets[t], (ptrdiff_t)es, np_cast_src, MT_FLOAT64, 8,
                                 NP_NCAST);
            else
                mt_dtype_convert(out, targets[t], (ptrdiff_t)es, src32, MT_FLOAT32, 4, NP_NCAST);
            const uint64_t *want = pass == 0 ? f64_tab[t] : f32_tab[t];
            for (int i = 0; i < NP_NCAST; i++) {
                uint64_t got = read_int_bits(out + (size_t)i * es, targets[t]);
                if (got != want[i])
                    mt_test_fail(__FILE__, __LINE__, "%s %.17g -> %s: got %lld, NumPy %lld",
                                 pass ? "float32" : "float64", np_cast_src[i],
                                 mt_dtype_name(targets[t]), (long long)got, (long long)want[i]);
            }
        }
    }
}

/* ---- an independent reference for every (src, dst) pair */

typedef struct ref_val {
    bool is_float;
    __int128 i;    /* exact integer value */
    long double f; /* exact float value (every dtype fits a long double exactly) */
} ref_val;

static ref_val ref_decode(const void *p, mt_dtype dt)
{
    ref_val v = {false, 0, 0};
    switch (dt) {
    case MT_FLOAT16:
        v.is_float = true;
        {
            uint16_t h = *(const uint16_t *)p;
            v.f = f16_is_nan(h)            ? (h & 0x8000 ? -NAN : NAN)
                  : (h & 0x7FFF) == 0x7C00 ? (h & 0x8000 ? -INFINITY : INFINITY)
                                           : f16_formula(h);
        }
        break;
    case MT_BFLOAT16:
        v.is_float = true;
        {
            uint16_t h = *(const uint16_t *)p;
            v.f = bf16_is_nan(h)           ? (h & 0x8000 ? -NAN : NAN)
                  : (h & 0x7FFF) == 0x7F80 ? (h & 0x8000 ? -INFINITY : INFINITY)
                                           : bf16_formula(h);
        }
        break;
    case MT_FLOAT32:
        v.is_float = true;
        v.f = *(const float *)p;
        break;
    case MT_FLOAT64:
        v.is_float = true;
        v.f = *(const double *)p;
        break;
    case MT_BOOL:
        v.i = *(const uint8_t *)p != 0;
        break;
    case MT_UINT64:
        v.i = *(const uint64_t *)p;
        break;
    default:
        v.i = (__int128)(int64_t)read_int_bits(p, dt);
        break;
    }
    return v;
}

/* x86 truncating conversion to a w-bit signed integer: NaN or out of range gives -2^(w-1). */
static __int128 ref_cvtt(long double x, int w)
{
    long double lim = ldexpl(1.0L, w - 1);
    if (isnan(x)) return -((__int128)1 << (w - 1));
    long double t = truncl(x);
    if (t < -lim || t > lim - 1) return -((__int128)1 << (w - 1));
    return (__int128)t;
}

/* The NumPy x86-64 float -> integer rules (see dtype.c), restated on exact values. */
static __int128 ref_float_to_int(long double x, mt_dtype dt)
{
    switch (dt) {
    case MT_INT64:
        return ref_cvtt(x, 64);
    case MT_UINT32:
        return x >= 0x1p31L ? ref_cvtt(x - 0x1p31L, 32) + ((__int128)1 << 31) : ref_cvtt(x, 32);
    case MT_UINT64:
        return x >= 0x1p63L ? ref_cvtt(x - 0x1p63L, 64) + ((__int128)1 << 63) : ref_cvtt(x, 64);
    default:
        return ref_cvtt(x, 32); /* int8/16/32, uint8/16: via int32 */
    }
}

/* Expected bytes of converting v to dt; *is_nan set when the result must be a NaN. */
static void ref_encode(ref_val v, mt_dtype dt, unsigned char *out, bool *is_nan)
{
    *is_nan = false;
    long double x = v.is_float ? v.f : (long double)v.i; /* exact: |i| < 2^64 */
    if (dt == MT_BOOL) {
        out[0] = v.is_float ? (isnan(x) || x != 0) : v.i != 0;
        return;
    }
    if (mt_dtype_is_int(dt)) {
        __int128 r = v.is_float ? ref_float_to_int(x, dt) : v.i;
        unsigned __int128 u = (unsigned __int128)r; /* low bytes, little-endian */
        for (size_t k = 0; k < mt_dtype_size(dt); k++)
            out[k] = (unsigned char)(u >> (8 * k));
        return;
    }
    *is_nan = isnan(x);
    switch (dt) {
    case MT_FLOAT16: {
        uint16_t h = ref_round(x, false);
        memcpy(out, &h, 2);
        break;
    }
    case MT_BFLOAT16: {
        uint16_t h = ref_round(x, true);
        memcpy(out, &h, 2);
        break;
    }
    case MT_FLOAT32: {
        float f = (float)x; /* one rounding from the exact value */
        memcpy(out, &f, 4);
        break;
    }
    default: {
        double d = (double)x;
        memcpy(out, &d, 8);
        break;
    }
    }
}

static bool bytes_are_nan(const unsigned char *p, mt_dtype dt)
{
    switch (dt) {
    case MT_FLOAT16:
        return f16_is_nan(*(const uint16_t *)p);
    case MT_BFLOAT16:
        return bf16_is_nan(*(const uint16_t *)p);
    case MT_FLOAT32:
        return isnan(*(const float *)p);
    case MT_FLOAT64:
        return isnan(*(const double *)p);
    default:
        return false;
    }
}

/* Edge values of every dtype, written into `buf` as elements of dt; returns the count. */
static size_t make_edges(mt_dtype dt, unsigned char *buf)
{
    static const double fl[] = {NAN,        -NAN,
                                INFINITY,   -INFINITY,
                                0.0,        -0.0,
                                1e300,      -1e300,
                                -1.0,       1.0,
                                255.0,      256.0,
                                -128.0,     127.5,
                                0.5,        -0.5,
                                1.5,        2.5,
                                -2.5,       65504.0,
                                65520.0,    3e9,
                                -3e9,       0x1p31,
                                0x1p32,     0x1p63,
                                -0x1p63,    0x1p64,
                                1.8e19,     9.3e18,
                                -9.3e18,    1e-8,
                                6e-8,       1.0 + 0x1p-11 + 0x1p-40,
                                16777217.0, 3.4028235e38,
                                3.5e38,     1e-45,
                                0.1};
    static const int64_t in[] = {0,
                                 1,
                                 -1,
                                 2,
                                 127,
                                 128,
                                 -128,
                                 -129,
                                 255,
                                 256,
                                 32767,
                                 32768,
                                 -32769,
                                 65535,
                                 65536,
                                 2147483647,
                                 -2147483648LL,
                                 4294967295LL,
                                 4294967296LL,
                                 16777217,
                                 9007199254740993LL,
                                 INT64_MAX,
                                 INT64_MIN,
                                 INT64_MIN + 1,
                                 0x0FFFFF8000000001LL};
    static const uint64_t un[] = {UINT64_MAX, 0x8000000000000000ULL, 0x8000000000000401ULL,
                                  0xFFFFFF7FFFFFFFFFULL};
    size_t n = 0, es = mt_dtype_size(dt);
    if (mt_dtype_is_float(dt)) {
        for (size_t i = 0; i < sizeof fl / sizeof fl[0]; i++) {
            switch (dt) {
            case MT_FLOAT16: {
                uint16_t h = ref_round(fl[i], false);
                if (isnan(fl[i])) h = signbit(fl[i]) ? 0xFE00 : 0x7E00;
                memcpy(buf + n * es, &h, 2);
                break;
            }
            case MT_BFLOAT16: {
                uint16_t h = ref_round(fl[i], true);
                if (isnan(fl[i])) h = signbit(fl[i]) ? 0xFFC0 : 0x7FC0;
                memcpy(buf + n * es, &h, 2);
                break;
            }
            case MT_FLOAT32: {
                float f = (float)fl[i];
                memcpy(buf + n * es, &f, 4);
                break;
            }
            default:
                memcpy(buf + n * es, &fl[i], 8);
                break;
            }
            n++;
        }
        return n;
    }
    if (dt == MT_BOOL) {
        buf[0] = 0;
        buf[1] = 1;
        return 2;
    }
    /* Integers: the edge values wrapped to the width (every bit pattern is a valid value). */
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++, n++)
        memcpy(buf + n * es, &in[i], es); /* little-endian: low bytes */
    for (size_t i = 0; i < sizeof un / sizeof un[0]; i++, n++)
        memcpy(buf + n * es, &un[i], es);
    return n;
}

MT_TEST(dtype_convert_all_pairs_edges)
{
    unsigned char src[64 * 8], dst[64 * 3 * 8], want[8];
    for (int s = 0; s < MT_DTYPE_COUNT; s++) {
        size_t n = make_edges((mt_dtype)s, src);
        size_t ss = mt_dtype_size((mt_dtype)s);
        for (int d = 0; d < MT_DTYPE_COUNT; d++) {
            size_t ds = mt_dtype_size((mt_dtype)d);
            /* Destination stride of 3 elements, to exercise strided loops. */
            memset(dst, 0xEE, sizeof dst);
            mt_dtype_convert(dst, (mt_dtype)d, (ptrdiff_t)(3 * ds), src, (mt_dtype)s, (ptrdiff_t)ss,
                             n);
            for (size_t i = 0; i < n; i++) {
                bool is_nan;
                ref_val v = ref_decode(src + i * ss, (mt_dtype)s);
                ref_encode(v, (mt_dtype)d, want, &is_nan);
                const unsigned char *got = dst + i * 3 * ds;
                bool ok = is_nan ? bytes_are_nan(got, (mt_dtype)d) : memcmp(got, want, ds) == 0;
                if (!ok) {
                    uint64_t g = 0, w = 0;
                    memcpy(&g, got, ds);
                    memcpy(&w, want, ds);
                    mt_test_fail(__FILE__, __LINE__,
                                 "%s -> %s, element %zu (%.17Lg): got 0x%llx, want 0x%llx",
                                 mt_dtype_name((mt_dtype)s), mt_dtype_name((mt_dtype)d), i,
                                 v.is_float ? v.f : (long double)v.i, (unsigned long long)g,
                                 (unsigned long long)w);
                }
                /* the gaps between strided elements are untouched */
                if (i + 1 < n) MT_CHECK(got[ds] == 0xEE);
            }
        }
    }
}

MT_TEST(dtype_convert_strides)
{
    /* Negative source stride (reversal), zero stride (broadcast), in-place same-type copy. */
    int32_t a[5] = {1, -2, 3, -4, 5};
    double out[5];
    mt_dtype_convert(out, MT_FLOAT64, 8, &a[4], MT_INT32, -4, 5);
    for (int i = 0; i < 5; i++)
        MT_CHECK(out[i] == (double)a[4 - i]);
    int16_t b[4];
    float c = 7.9f;
    mt_dtype_convert(b, MT_INT16, 2, &c, MT_FLOAT32, 0, 4);
    for (int i = 0; i < 4; i++)
        MT_CHECK_EQ_INT(b[i], 7);
    int64_t big[6] = {10, 11, 12, 13, 14, 15}, copy[3];
    mt_dtype_convert(copy, MT_INT64, 8, big, MT_INT64, 16, 3);
    MT_CHECK(copy[0] == 10 && copy[1] == 12 && copy[2] == 14);
    mt_dtype_convert(copy, MT_INT64, 8, big + 3, MT_INT64, 8, 3);
    MT_CHECK(copy[0] == 13 && copy[1] == 14 && copy[2] == 15);
    /* bool sources with bytes other than 0/1 still mean true */
    uint8_t bools[3] = {0, 1, 7};
    float fb[3];
    mt_dtype_convert(fb, MT_FLOAT32, 4, bools, MT_BOOL, 1, 3);
    MT_CHECK(fb[0] == 0.0f && fb[1] == 1.0f && fb[2] == 1.0f);
    uint8_t bb[3];
    mt_dtype_convert(bb, MT_BOOL, 1, bools, MT_BOOL, 1, 3);
    MT_CHECK(bb[0] == 0 && bb[1] == 1 && bb[2] == 1);
    mt_dtype_convert(bb, MT_BOOL, 1, bools, MT_BOOL, 1, 0); /* n = 0 is a no-op */
}

MT_TEST(dtype_int_to_half_single_rounding)
{
    /* 2^60 + 2^52 + 1 is just above the bfloat16 midpoint between 2^60 and 2^60 + 2^53;
     * via double it becomes the midpoint exactly and would tie down. */
    int64_t v = (1LL << 60) + (1LL << 52) + 1;
    uint16_t h;
    mt_dtype_convert(&h, MT_BFLOAT16, 2, &v, MT_INT64, 8, 1);
    MT_CHECK_EQ_INT(h, ref_round((long double)v, true));
    MT_CHECK_EQ_INT(h, mt_f64_to_bf16(0x1p60 + 0x1p53));
    uint64_t u = UINT64_MAX;
    mt_dtype_convert(&h, MT_BFLOAT16, 2, &u, MT_UINT64, 8, 1);
    MT_CHECK_EQ_INT(h, 0x5F80); /* 2^64 */
    mt_dtype_convert(&h, MT_FLOAT16, 2, &u, MT_UINT64, 8, 1);
    MT_CHECK_EQ_INT(h, 0x7C00);
    int64_t m = -65519;
    mt_dtype_convert(&h, MT_FLOAT16, 2, &m, MT_INT64, 8, 1);
    MT_CHECK_EQ_INT(h, 0xFBFF);
}

MT_TEST(scalar_store_and_read)
{
    mt_scalar s = mt_scalar_f64(3.7);
    int32_t i32;
    mt_scalar_store(&s, MT_INT32, &i32);
    MT_CHECK_EQ_INT(i32, 3);
    s = mt_scalar_f64(-3.7);
    mt_scalar_store(&s, MT_INT32, &i32);
    MT_CHECK_EQ_INT(i32, -3);
    s = mt_scalar_i64(-1);
    uint8_t u8;
    mt_scalar_store(&s, MT_UINT8, &u8);
    MT_CHECK_EQ_INT(u8, 255);
    MT_CHECK(mt_scalar_as_f64(&s) == -1.0);
    s = mt_scalar_u64(UINT64_MAX);
    double d;
    mt_scalar_store(&s, MT_FLOAT64, &d);
    MT_CHECK(d == 0x1p64);
    MT_CHECK(mt_scalar_as_f64(&s) == 0x1p64);
    s = mt_scalar_bool(true);
    float f;
    mt_scalar_store(&s, MT_FLOAT32, &f);
    MT_CHECK(f == 1.0f);
    MT_CHECK(mt_scalar_as_f64(&s) == 1.0);
    s = mt_scalar_f64(NAN);
    uint8_t b;
    mt_scalar_store(&s, MT_BOOL, &b);
    MT_CHECK_EQ_INT(b, 1);
    s = mt_scalar_f64(0.1);
    uint16_t h;
    mt_scalar_store(&s, MT_FLOAT16, &h);
    MT_CHECK_EQ_INT(h, ref_round(0.1, false));
    mt_scalar_store(&s, MT_BFLOAT16, &h);
    MT_CHECK_EQ_INT(h, ref_round(0.1, true));
    /* A scalar of a narrower dtype uses the union member of its kind. */
    mt_scalar w = {.dtype = MT_UINT16, .v.u = 40000};
    int16_t i16;
    mt_scalar_store(&w, MT_INT16, &i16);
    MT_CHECK_EQ_INT(i16, 40000 - 65536);
    MT_CHECK(mt_scalar_as_f64(&w) == 40000.0);
    w = (mt_scalar){.dtype = MT_FLOAT32, .v.f = 2.5};
    mt_scalar_store(&w, MT_INT64, &d); /* 8 bytes are enough for any dtype */
    int64_t i64;
    memcpy(&i64, &d, 8);
    MT_CHECK_EQ_INT(i64, 2);
}
