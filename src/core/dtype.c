/* Element types: names, sizes, NumPy-compatible promotion, and strided conversion.
 *
 * mt_dtype_convert reproduces what NumPy gives on x86-64 for every one of the 13 x 13 pairs,
 * including the cases C leaves undefined (NaN, inf or out-of-range float -> int): those are
 * decided explicitly here from the value, never by a C cast of an out-of-range float.
 *   float -> int64/int32: truncate toward zero; NaN/out of range -> INT64_MIN / INT32_MIN
 *     (the "integer indefinite" value of cvttsd2si / cvttpd2dq).
 *   float -> int16/int8/uint16/uint8: via the int32 rule, then keep the low bits
 *     (NaN -> 0, -1.0 -> 255 for uint8, 3e9 -> 0).
 *   float -> uint32 / uint64 (width w): below 2^(w-1) the int-w rule; otherwise the int-w
 *     rule applied to x - 2^(w-1), then the top bit flipped (the compilers' unsigned
 *     conversion sequence). So NaN and -inf -> 2^(w-1), +inf and x >= 2^w -> 0, -1.0 -> 2^w-1.
 * These were checked against NumPy 1.24 on x86-64 (tests/core/test_core.c holds its answers).
 *   int -> narrower int wraps (two's complement); anything -> bool is x != 0 (NaN -> true).
 *   int -> float rounds once to nearest even (float16/bfloat16 included).
 * Each (src, dst) pair gets its own loop generated from inline load/store helpers, so the
 * per-element type dispatch is resolved at compile time. */
#include <math.h>
#include <string.h>
#include <strings.h>

#include "core_internal.h"

/* ---------------------------------------------------------------- names and properties */

static const char *const dt_names[MT_DTYPE_COUNT] = {
#define MT__DT_NAME(name, str, size, kind) str,
    MT_DTYPE_MAP(MT__DT_NAME)
#undef MT__DT_NAME
};
static const unsigned char dt_sizes[MT_DTYPE_COUNT] = {
#define MT__DT_SIZE(name, str, size, kind) size,
    MT_DTYPE_MAP(MT__DT_SIZE)
#undef MT__DT_SIZE
};
static const char dt_kinds[MT_DTYPE_COUNT] = {
#define MT__DT_KIND(name, str, size, kind) kind,
    MT_DTYPE_MAP(MT__DT_KIND)
#undef MT__DT_KIND
};

bool mt_dtype_valid(mt_dtype dt)
{
    return (int)dt >= 0 && dt < MT_DTYPE_COUNT;
}

const char *mt_dtype_name(mt_dtype dt)
{
    return mt_dtype_valid(dt) ? dt_names[dt] : "invalid";
}

size_t mt_dtype_size(mt_dtype dt)
{
    return mt_dtype_valid(dt) ? dt_sizes[dt] : 0;
}

char mt_dtype_kind(mt_dtype dt)
{
    return mt_dtype_valid(dt) ? dt_kinds[dt] : 0;
}

bool mt_dtype_is_float(mt_dtype dt)
{
    return mt_dtype_kind(dt) == 'f';
}

bool mt_dtype_is_int(mt_dtype dt)
{
    char k = mt_dtype_kind(dt);
    return k == 'i' || k == 'u';
}

static const struct {
    const char *alias;
    mt_dtype dt;
} dt_aliases[] = {
    {"f32", MT_FLOAT32},    {"float", MT_FLOAT32}, {"single", MT_FLOAT32}, {"f64", MT_FLOAT64},
    {"double", MT_FLOAT64}, {"f16", MT_FLOAT16},   {"half", MT_FLOAT16},   {"bf16", MT_BFLOAT16},
    {"i8", MT_INT8},        {"i16", MT_INT16},     {"i32", MT_INT32},      {"i64", MT_INT64},
    {"int", MT_INT64},      {"u8", MT_UINT8},      {"u16", MT_UINT16},     {"u32", MT_UINT32},
    {"u64", MT_UINT64},     {"bool_", MT_BOOL},    {"b1", MT_BOOL},
};

mt_status mt_dtype_from_name(mt_dtype *out, const char *name)
{
    if (!name) return mt_err_set(MT_ERR_DTYPE, "dtype name is NULL");
    for (int i = 0; i < MT_DTYPE_COUNT; i++) {
        if (strcasecmp(name, dt_names[i]) == 0) {
            *out = (mt_dtype)i;
            return MT_OK;
        }
    }
    for (size_t i = 0; i < sizeof dt_aliases / sizeof dt_aliases[0]; i++) {
        if (strcasecmp(name, dt_aliases[i].alias) == 0) {
            *out = dt_aliases[i].dt;
            return MT_OK;
        }
    }
    return mt_err_set(MT_ERR_DTYPE,
                      "unknown dtype '%s' (expected bool, int8..int64, uint8..uint64, float16, "
                      "bfloat16, float32 or float64)",
                      name);
}

/* ---------------------------------------------------------------- promotion */

/* Rank of a float type for promotion: half-width types (float16, bfloat16) < float32 <
 * float64. float16 and bfloat16 share a rank but neither holds the other. */
static int float_rank(mt_dtype dt)
{
    switch (dt) {
    case MT_FLOAT16:
    case MT_BFLOAT16:
        return 0;
    case MT_FLOAT32:
        return 1;
    default:
        return 2;
    }
}

static mt_dtype signed_of_size(size_t size)
{
    switch (size) {
    case 1:
        return MT_INT8;
    case 2:
        return MT_INT16;
    case 4:
        return MT_INT32;
    default:
        return MT_INT64;
    }
}

static mt_dtype promote_int_float(mt_dtype i, mt_dtype f)
{
    /* The smallest float that holds every value of the integer: 8-bit ints fit a half type
     * (float16, or bfloat16 as ml_dtypes treats it), 16-bit ints need float32, wider ones
     * float64 (NumPy's result_type, not C's usual arithmetic conversions). */
    size_t isz = mt_dtype_size(i);
    int need = isz == 1 ? 0 : isz == 2 ? 1 : 2;
    int have = float_rank(f);
    if (have >= need) return f;
    return need == 1 ? MT_FLOAT32 : MT_FLOAT64;
}

mt_dtype mt_dtype_promote(mt_dtype a, mt_dtype b)
{
    if (!mt_dtype_valid(a) || !mt_dtype_valid(b)) return mt_dtype_valid(a) ? a : b;
    if (a == b) return a;
    char ka = dt_kinds[a], kb = dt_kinds[b];
    if (ka == 'b') return b;
    if (kb == 'b') return a;
    if (ka == 'f' && kb == 'f') {
        int ra = float_rank(a), rb = float_rank(b);
        if (ra == rb) return MT_FLOAT32; /* float16 + bfloat16 */
        return ra > rb ? a : b;
    }
    if (ka == 'f') return promote_int_float(b, a);
    if (kb == 'f') return promote_int_float(a, b);
    size_t sa = dt_sizes[a], sb = dt_sizes[b];
    if (ka == kb) return sa >= sb ? a : b;
    /* Mixed signedness: a signed type strictly wider than the unsigned one holds both;
     * otherwise the next wider signed type, and uint64 with any signed type needs float64. */
    size_t ssz = ka == 'i' ? sa : sb, usz = ka == 'u' ? sa : sb;
    if (ssz > usz) return signed_of_size(ssz);
    if (usz == 8) return MT_FLOAT64;
    return signed_of_size(usz * 2);
}

/* ---------------------------------------------------------------- conversion */

/* An element read from memory, in the widest type of its kind. `kind` is a compile-time
 * constant after inlining, so the stores' switches fold away. */
enum { V_I, V_U, V_F };
typedef struct val {
    int kind;
    int64_t i;
    uint64_t u;
    double f;
} val;

#define ALWAYS_INLINE static inline __attribute__((always_inline))

ALWAYS_INLINE val mk_i(int64_t i)
{
    val v = {V_I, i, 0, 0.0};
    return v;
}
ALWAYS_INLINE val mk_u(uint64_t u)
{
    val v = {V_U, 0, u, 0.0};
    return v;
}
ALWAYS_INLINE val mk_f(double f)
{
    val v = {V_F, 0, 0, f};
    return v;
}

#define LOADER(NAME, CT, MK, EXPR)                                                                 \
    ALWAYS_INLINE val ld_##NAME(const char *p)                                                     \
    {                                                                                              \
        CT x;                                                                                      \
        memcpy(&x, p, sizeof x);                                                                   \
        return MK(EXPR);                                                                           \
    }
LOADER(BOOL, uint8_t, mk_i, x != 0)
LOADER(INT8, int8_t, mk_i, x)
LOADER(INT16, int16_t, mk_i, x)
LOADER(INT32, int32_t, mk_i, x)
LOADER(INT64, int64_t, mk_i, x)
LOADER(UINT8, uint8_t, mk_u, x)
LOADER(UINT16, uint16_t, mk_u, x)
LOADER(UINT32, uint32_t, mk_u, x)
LOADER(UINT64, uint64_t, mk_u, x)
LOADER(FLOAT16, uint16_t, mk_f, (double)mt_f16_to_f32(x))
LOADER(BFLOAT16, uint16_t, mk_f, (double)mt_bf16_to_f32(x))
LOADER(FLOAT32, float, mk_f, (double)x)
LOADER(FLOAT64, double, mk_f, x)
#undef LOADER

/* float -> int64 as cvttsd2si: truncation, INT64_MIN for NaN and out-of-range values. */
ALWAYS_INLINE int64_t f_to_i64(double d)
{
    if (!(d >= -0x1p63 && d < 0x1p63)) return INT64_MIN;
    return (int64_t)d;
}

/* float -> int32 as the 32-bit cvttsd2si. */
ALWAYS_INLINE int32_t f_to_i32(double d)
{
    if (!(d > -2147483649.0 && d < 2147483648.0)) return INT32_MIN;
    return (int32_t)d;
}

/* float -> uint64 / uint32 as the compilers' unsigned conversion sequence. */
ALWAYS_INLINE uint64_t f_to_u64(double d)
{
    if (d >= 0x1p63) return (uint64_t)f_to_i64(d - 0x1p63) ^ (1ULL << 63);
    return (uint64_t)f_to_i64(d); /* NaN lands here: INT64_MIN, i.e. 2^63 */
}

ALWAYS_INLINE uint32_t f_to_u32(double d)
{
    if (d >= 0x1p31) return (uint32_t)f_to_i32(d - 0x1p31) ^ 0x80000000u;
    return (uint32_t)f_to_i32(d);
}

/* Float targets use one of three rules; see the file comment. */
enum { VIA_I32, VIA_I64, VIA_U32, VIA_U64 };

/* The integer bit pattern (two's complement, 64 bits) of an element for an integer target;
 * the store keeps the low bits. */
ALWAYS_INLINE uint64_t int_bits(val v, int rule)
{
    switch (v.kind) {
    case V_I:
        return (uint64_t)v.i;
    case V_U:
        return v.u;
    default:
        switch (rule) {
        case VIA_I32:
            return (uint64_t)(int64_t)f_to_i32(v.f);
        case VIA_I64:
            return (uint64_t)f_to_i64(v.f);
        case VIA_U32:
            return f_to_u32(v.f);
        default:
            return f_to_u64(v.f);
        }
    }
}

ALWAYS_INLINE double to_double(val v)
{
    return v.kind == V_I ? (double)v.i : v.kind == V_U ? (double)v.u : v.f;
}

ALWAYS_INLINE float to_float(val v)
{
    /* Direct int -> float conversion rounds once (int -> double -> float could round twice). */
    return v.kind == V_I ? (float)v.i : v.kind == V_U ? (float)v.u : (float)v.f;
}

ALWAYS_INLINE void st_BOOL(char *p, val v)
{
    uint8_t x = v.kind == V_I ? v.i != 0 : v.kind == V_U ? v.u != 0 : v.f != 0.0;
    *p = (char)x;
}

#define INT_STORER(NAME, UT, RULE)                                                                 \
    ALWAYS_INLINE void st_##NAME(char *p, val v)                                                   \
    {                                                                                              \
        UT x = (UT)int_bits(v, RULE);                                                              \
        memcpy(p, &x, sizeof x);                                                                   \
    }
/* Stores use the unsigned type of the width: the low bits are the two's complement result. */
INT_STORER(INT8, uint8_t, VIA_I32)
INT_STORER(INT16, uint16_t, VIA_I32)
INT_STORER(INT32, uint32_t, VIA_I32)
INT_STORER(INT64, uint64_t, VIA_I64)
INT_STORER(UINT8, uint8_t, VIA_I32)
INT_STORER(UINT16, uint16_t, VIA_I32)
INT_STORER(UINT32, uint32_t, VIA_U32)
INT_STORER(UINT64, uint64_t, VIA_U64)
#undef INT_STORER

ALWAYS_INLINE void st_FLOAT16(char *p, val v)
{
    uint16_t x = v.kind == V_I   ? mt__i64_to_f16(v.i)
                 : v.kind == V_U ? mt__u64_to_f16(v.u)
                                 : mt_f64_to_f16(v.f);
    memcpy(p, &x, 2);
}

ALWAYS_INLINE void st_BFLOAT16(char *p, val v)
{
    uint16_t x = v.kind == V_I   ? mt__i64_to_bf16(v.i)
                 : v.kind == V_U ? mt__u64_to_bf16(v.u)
                                 : mt_f64_to_bf16(v.f);
    memcpy(p, &x, 2);
}

ALWAYS_INLINE void st_FLOAT32(char *p, val v)
{
    float x = to_float(v);
    memcpy(p, &x, 4);
}

ALWAYS_INLINE void st_FLOAT64(char *p, val v)
{
    double x = to_double(v);
    memcpy(p, &x, 8);
}

typedef void (*conv_fn)(char *dst, ptrdiff_t ds, const char *src, ptrdiff_t ss, size_t n);

/* The dtype list again, for nested expansion (a macro cannot expand inside itself). */
#define DT_LIST_ARG(M, S)                                                                          \
    M(S, BOOL)                                                                                     \
    M(S, INT8) M(S, INT16) M(S, INT32) M(S, INT64) M(S, UINT8) M(S, UINT16) M(S, UINT32)           \
        M(S, UINT64) M(S, FLOAT16) M(S, BFLOAT16) M(S, FLOAT32) M(S, FLOAT64)

#define CONV_DEF(S, D)                                                                             \
    static void conv_##S##_##D(char *dst, ptrdiff_t ds, const char *src, ptrdiff_t ss, size_t n)   \
    {                                                                                              \
        for (size_t k = 0; k < n; k++, dst += ds, src += ss)                                       \
            st_##D(dst, ld_##S(src));                                                              \
    }
#define CONV_ROW_DEF(name, str, size, kind) DT_LIST_ARG(CONV_DEF, name)
MT_DTYPE_MAP(CONV_ROW_DEF)

#define CONV_ENTRY(S, D) conv_##S##_##D,
#define CONV_ROW_ENTRY(name, str, size, kind) {DT_LIST_ARG(CONV_ENTRY, name)},
static const conv_fn conv_table[MT_DTYPE_COUNT][MT_DTYPE_COUNT] = {MT_DTYPE_MAP(CONV_ROW_ENTRY)};

void mt_dtype_convert(void *dst, mt_dtype dst_dt, ptrdiff_t dst_stride, const void *src,
                      mt_dtype src_dt, ptrdiff_t src_stride, size_t n)
{
    MT_ASSERT(mt_dtype_valid(dst_dt) && mt_dtype_valid(src_dt));
    if (n == 0) return;
    size_t es = dt_sizes[dst_dt];
    /* Same type, both contiguous: a plain copy (bool is normalised by the loop instead). */
    if (dst_dt == src_dt && dst_dt != MT_BOOL && dst_stride == (ptrdiff_t)es &&
        src_stride == (ptrdiff_t)es) {
        memmove(dst, src, n * es);
        return;
    }
    conv_table[src_dt][dst_dt]((char *)dst, dst_stride, (const char *)src, src_stride, n);
}

/* ---------------------------------------------------------------- scalars */

mt_scalar mt_scalar_f64(double v)
{
    mt_scalar s;
    s.dtype = MT_FLOAT64;
    s.v.f = v;
    return s;
}

mt_scalar mt_scalar_i64(int64_t v)
{
    mt_scalar s;
    s.dtype = MT_INT64;
    s.v.i = v;
    return s;
}

mt_scalar mt_scalar_u64(uint64_t v)
{
    mt_scalar s;
    s.dtype = MT_UINT64;
    s.v.u = v;
    return s;
}

mt_scalar mt_scalar_bool(bool v)
{
    mt_scalar s;
    s.dtype = MT_BOOL;
    s.v.b = v;
    return s;
}

/* The union member a scalar of this dtype uses, stored as a 64-bit element of that kind. */
static void scalar_as_wide(const mt_scalar *s, mt_dtype *dt, void *buf)
{
    switch (mt_dtype_kind(s->dtype)) {
    case 'b': {
        uint8_t b = s->v.b ? 1 : 0;
        *dt = MT_BOOL;
        memcpy(buf, &b, 1);
        break;
    }
    case 'i':
        *dt = MT_INT64;
        memcpy(buf, &s->v.i, 8);
        break;
    case 'u':
        *dt = MT_UINT64;
        memcpy(buf, &s->v.u, 8);
        break;
    default:
        *dt = MT_FLOAT64;
        memcpy(buf, &s->v.f, 8);
        break;
    }
}

void mt_scalar_store(const mt_scalar *s, mt_dtype dt, void *dst)
{
    uint64_t buf;
    mt_dtype sdt;
    scalar_as_wide(s, &sdt, &buf);
    mt_dtype_convert(dst, dt, 0, &buf, sdt, 0, 1);
}

double mt_scalar_as_f64(const mt_scalar *s)
{
    switch (mt_dtype_kind(s->dtype)) {
    case 'b':
        return s->v.b ? 1.0 : 0.0;
    case 'i':
        return (double)s->v.i;
    case 'u':
        return (double)s->v.u;
    default:
        return s->v.f;
    }
}
