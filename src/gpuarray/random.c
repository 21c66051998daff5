/* Counter-based random fills: uniform, normal and Bernoulli, the same numbers on every backend.
 *
 * Element i (the flat C-order index over the array's shape, whatever its strides) draws the
 * Philox4x32-10 block with key (seed low word, seed high word) and counter
 * (i + counter_offset) as (low word, high word, 0, 0). There is no generator state: a caller
 * that wants a fresh stream advances counter_offset by the number of elements it consumed, and
 * element i with offset k equals element i + k with offset 0.
 *
 * Per element (w0..w3 are the block's words):
 *   uniform float32/float16/bfloat16: u = mt_u32_to_unit_f32(w0), v = u * scale + low in float32
 *     arithmetic (scale = (float)(high - low), low = (float)low, two roundings, no FMA), then one
 *     rounding to 16 bits;
 *   uniform float64: u = mt_u64_to_unit_f64(w0, w1), v = u * (high - low) + low;
 *   uniform integers: floor(u * (high - low) + low) with the float64 u above, capped at
 *     ceil(high) - 1 against rounding up to high; [low, high) must be a non-empty range inside the
 *     dtype. With integral low/high each integer is equally likely up to a 2^-53 bias.
 *   normal: Box-Muller on the block, z = sqrt(-2 log(1 - u1)) * cos(2 pi u2) with u1, u2 from
 *     (w0, w1) in float32 or ((w0, w1), (w2, w3)) in float64; v = z * stddev + mean;
 *   bernoulli: (mt_u32_to_unit_f32(w0) < (float)p) ? 1 : 0, so p has 2^-24 granularity.
 * On host-addressable devices this file computes the values directly (split over the device's
 * thread pool); on other devices it runs an elementwise kernel whose RAND_UNIFORM/RAND_NORMAL
 * nodes implement the same contract in generated code, and uniform results are bit-identical. */
#include <math.h>
#include <string.h>

#include "gpuarray_impl.h"

typedef enum rand_kind { RAND_UNIFORM = 0, RAND_NORMAL, RAND_BERNOULLI } rand_kind;

static const char *const rand_names[] = {"random_uniform", "random_normal", "random_bernoulli"};

typedef struct rand_job {
    char *base;
    mt_dtype dt;
    int32_t nd;
    int64_t dims[MT_MAX_DIMS], strides[MT_MAX_DIMS];
    rand_kind kind;
    uint32_t key[2];
    uint64_t offset;
    /* uniform: scale, low (+ cap for integers); normal: stddev, mean; bernoulli: p */
    float fs, ft;
    double ds, dt_shift, cap;
} rand_job;

static void rand_block(const rand_job *j, int64_t i, uint32_t w[4])
{
    uint64_t c = (uint64_t)i + j->offset;
    const uint32_t ctr[4] = {(uint32_t)c, (uint32_t)(c >> 32), 0, 0};
    mt_philox4x32(ctr, j->key, w);
}

static float normal_f32(const uint32_t w[4])
{
    float u1 = mt_u32_to_unit_f32(w[0]), u2 = mt_u32_to_unit_f32(w[1]);
    float r = sqrtf(-2.0f * logf(1.0f - u1));
    float t = 6.28318530717958647692f * u2;
    return r * cosf(t);
}

static double normal_f64(const uint32_t w[4])
{
    double u1 = mt_u64_to_unit_f64(w[0], w[1]), u2 = mt_u64_to_unit_f64(w[2], w[3]);
    double r = sqrt(-2.0 * log(1.0 - u1));
    double t = 6.28318530717958647692 * u2;
    return r * cos(t);
}

/* Stores a float32 result into a float32/float16/bfloat16 element. */
static void store_f32(char *p, mt_dtype dt, float v)
{
    if (dt == MT_FLOAT32) {
        memcpy(p, &v, 4);
        return;
    }
    uint16_t h = dt == MT_FLOAT16 ? mt_f32_to_f16(v) : mt_f32_to_bf16(v);
    memcpy(p, &h, 2);
}

static bool is_f32_like(mt_dtype dt)
{
    return dt == MT_FLOAT32 || dt == MT_FLOAT16 || dt == MT_BFLOAT16;
}

static void rand_one(const rand_job *j, int64_t i, char *p)
{
    uint32_t w[4];
    rand_block(j, i, w);
    if (j->kind == RAND_BERNOULLI) {
        uint8_t b = mt_u32_to_unit_f32(w[0]) < j->fs;
        if (j->dt == MT_BOOL) *p = (char)b;
        else mt_dtype_convert(p, j->dt, 0, &b, MT_BOOL, 0, 1);
        return;
    }
    if (is_f32_like(j->dt)) {
        float z = j->kind == RAND_NORMAL ? normal_f32(w) : mt_u32_to_unit_f32(w[0]);
        float t = z * j->fs; /* separate statements: no contraction into an FMA */
        float v = t + j->ft;
        store_f32(p, j->dt, v);
        return;
    }
    double z = j->kind == RAND_NORMAL ? normal_f64(w) : mt_u64_to_unit_f64(w[0], w[1]);
    double t = z * j->ds;
    double v = t + j->dt_shift;
    if (j->dt == MT_FLOAT64) {
        memcpy(p, &v, 8);
        return;
    }
    v = floor(v);
    if (v > j->cap) v = j->cap;
    mt_dtype_convert(p, j->dt, 0, &v, MT_FLOAT64, 0, 1);
}

static void rand_chunk(void *ctx, int64_t begin, int64_t end, int thread)
{
    const rand_job *j = ctx;
    int64_t idx[MT_MAX_DIMS];
    int64_t rem = begin;
    char *p = j->base;
    for (int32_t d = j->nd - 1; d >= 0; d--) {
        idx[d] = rem % j->dims[d];
        rem /= j->dims[d];
        p += idx[d] * j->strides[d];
    }
    for (int64_t i = begin; i < end; i++) {
        rand_one(j, i, p);
        for (int32_t d = j->nd - 1; d >= 0; d--) {
            p += j->strides[d];
            if (++idx[d] < j->dims[d]) break;
            p -= j->strides[d] * j->dims[d];
            idx[d] = 0;
        }
    }
}

/* ---------------------------------------------------------------- device path */

/* The same contract as a kernel: params 0, 1 = seed, counter offset; 2 = scale; 3 = shift;
 * 4 = integer cap. */
static mt_status rand_device(mt_array *a, const rand_job *j)
{
    mt_kexpr e;
    mt_kexpr_init(&e);
    mt_dtype dt = a->dtype;
    int32_t v;
    if (j->kind == RAND_BERNOULLI) {
        int32_t r = mt_kexpr_rand(&e, MT_SOP_RAND_UNIFORM, 0, MT_FLOAT32);
        v = mt_kexpr_binary(&e, MT_SOP_LT, r, mt_kexpr_param(&e, 2, MT_FLOAT32));
        if (dt != MT_BOOL) v = mt_kexpr_cast(&e, v, dt);
    } else {
        mt_dtype ct = is_f32_like(dt) ? MT_FLOAT32 : MT_FLOAT64;
        mt_sop op = j->kind == RAND_NORMAL ? MT_SOP_RAND_NORMAL : MT_SOP_RAND_UNIFORM;
        int32_t r = mt_kexpr_rand(&e, op, 0, ct);
        v = mt_kexpr_binary(&e, MT_SOP_MUL, r, mt_kexpr_param(&e, 2, ct));
        v = mt_kexpr_binary(&e, MT_SOP_ADD, v, mt_kexpr_param(&e, 3, ct));
        if (!mt_dtype_is_float(dt)) {
            v = mt_kexpr_unary(&e, MT_SOP_FLOOR, v);
            v = mt_kexpr_binary(&e, MT_SOP_MIN, v, mt_kexpr_param(&e, 4, MT_FLOAT64));
        }
        if (dt != ct) v = mt_kexpr_cast(&e, v, dt);
    }
    mt_status st = v < 0 ? mt_last_status() : mt_kexpr_add_output(&e, v);
    if (st == MT_OK) {
        bool f32 = is_f32_like(dt) || j->kind == RAND_BERNOULLI;
        mt_scalar params[5] = {
            mt_scalar_u64((uint64_t)j->key[0] | (uint64_t)j->key[1] << 32),
            mt_scalar_u64(j->offset),
            mt_scalar_f64(f32 ? (double)j->fs : j->ds),
            mt_scalar_f64(f32 ? (double)j->ft : j->dt_shift),
            mt_scalar_f64(j->cap),
        };
        mt_array *outs[1] = {a};
        st = mt_elemwise(&e, 0, NULL, outs, 5, params);
    }
    mt_kexpr_deinit(&e);
    return st;
}

/* ---------------------------------------------------------------- entry points */

static mt_status rand_run(mt_array *a, rand_job *j)
{
    const char *name = rand_names[j->kind];
    if (!a || !a->buf) return mt_err_set(MT_ERR_INVALID, "%s: the array is NULL or empty", name);
    char desc[256];
    if (!(a->flags & MT_ARRAY_WRITEABLE))
        return mt_err_set(MT_ERR_INVALID, "%s: %s is not writeable", name,
                          mt_array_describe(a, desc, sizeof desc));
    if (!mt_dtype_valid(a->dtype))
        return mt_err_set(MT_ERR_DTYPE, "%s: invalid dtype %d", name, (int)a->dtype);
    int64_t n = mt_array_size(a);
    if (n == 0) return MT_OK;
    j->dt = a->dtype;
    j->nd = a->ndim;
    memcpy(j->dims, a->dims, sizeof j->dims);
    memcpy(j->strides, a->strides, sizeof j->strides);
    mt_device *dev = mt_array_device(a);
    char *base = mt_buffer_host_ptr(a->buf);
    mt_status st;
    if (!base) {
        st = rand_device(a, j);
    } else {
        st = mt_device_sync(dev);
        if (st != MT_OK) return st;
        j->base = base + a->offset;
        if (dev->pool && n > 8192)
            mt_threadpool_run(dev->pool, n, 4096, rand_chunk, j);
        else
            rand_chunk(j, 0, n, 0);
    }
    if (st != MT_OK)
        return mt_err_prefix(st, "%s of %s: ", name, mt_array_describe(a, desc, sizeof desc));
    return MT_OK;
}

static void rand_init(rand_job *j, rand_kind kind, uint64_t seed, uint64_t counter_offset)
{
    memset(j, 0, sizeof *j);
    j->kind = kind;
    j->key[0] = (uint32_t)seed;
    j->key[1] = (uint32_t)(seed >> 32);
    j->offset = counter_offset;
}

/* Largest and smallest values of an integer dtype as doubles. */
static void int_range(mt_dtype dt, double *lo, double *hi)
{
    int bits = (int)(8 * mt_dtype_size(dt));
    if (mt_dtype_kind(dt) == 'u') {
        *lo = 0;
        *hi = ldexp(1.0, bits) - 1;
    } else {
        *lo = -ldexp(1.0, bits - 1);
        *hi = ldexp(1.0, bits - 1) - 1;
    }
}

mt_status mt_array_random_uniform(mt_array *a, uint64_t seed, uint64_t counter_offset,
                                  double low, double high)
{
    rand_job j;
    rand_init(&j, RAND_UNIFORM, seed, counter_offset);
    if (!isfinite(low) || !isfinite(high))
        return mt_err_set(MT_ERR_INVALID, "random_uniform: low %g and high %g must be finite", low,
                          high);
    if (a && a->buf && !mt_dtype_is_float(a->dtype)) {
        if (a->dtype == MT_BOOL)
            return mt_err_set(MT_ERR_DTYPE, "random_uniform: bool arrays need "
                              "random_bernoulli");
        double lo, hi;
        int_range(a->dtype, &lo, &hi);
        if (!(high > low))
            return mt_err_set(MT_ERR_INVALID, "random_uniform: the integer range [%g, %g) is "
                              "empty", low, high);
        if (floor(low) < lo || ceil(high) - 1 > hi)
            return mt_err_set(MT_ERR_RANGE, "random_uniform: [%g, %g) does not fit in %s", low,
                              high, mt_dtype_name(a->dtype));
        j.cap = ceil(high) - 1;
    }
    j.ds = high - low;
    j.dt_shift = low;
    j.fs = (float)(high - low);
    j.ft = (float)low;
    return rand_run(a, &j);
}

mt_status mt_array_random_normal(mt_array *a, uint64_t seed, uint64_t counter_offset,
                                 double mean, double stddev)
{
    rand_job j;
    rand_init(&j, RAND_NORMAL, seed, counter_offset);
    if (a && a->buf && !mt_dtype_is_float(a->dtype))
        return mt_err_set(MT_ERR_DTYPE, "random_normal: %s is not a float dtype",
                          mt_dtype_name(a->dtype));
    if (!isfinite(mean) || !isfinite(stddev) || stddev < 0)
        return mt_err_set(MT_ERR_INVALID, "random_normal: mean %g must be finite and stddev %g "
                          "finite and >= 0", mean, stddev);
    j.ds = stddev;
    j.dt_shift = mean;
    j.fs = (float)stddev;
    j.ft = (float)mean;
    return rand_run(a, &j);
}

mt_status mt_array_random_bernoulli(mt_array *a, uint64_t seed, uint64_t counter_offset,
                                    double p)
{
    rand_job j;
    rand_init(&j, RAND_BERNOULLI, seed, counter_offset);
    if (!(p >= 0 && p <= 1))
        return mt_err_set(MT_ERR_INVALID, "random_bernoulli: p = %g is outside [0, 1]", p);
    j.fs = (float)p;
    return rand_run(a, &j);
}
