/* Helpers of the tests that run on devices: opening one (SKIP where it is absent), and moving
 * values between float64 host arrays and arrays of any dtype on a device. The test links
 * mt_gpuarray. */
#ifndef MT_TEST_DEVICE_H
#define MT_TEST_DEVICE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mltrain/gpuarray.h"
#include "mt_test.h"

/* Opens device name; SKIPs with the library's reason where it is absent or not built. */
static inline mt_device *mt_test_open_or_skip(const char *name)
{
    mt_device *dev = NULL;
    mt_status st = mt_device_open(&dev, name);
    if (st == MT_ERR_NOT_FOUND || st == MT_ERR_NOT_BUILT) MT_SKIP(mt_last_error());
    MT_CHECK_OK(st);
    return dev;
}

/* An array of dtype dt on dev holding vals (converted like NumPy casts). */
static inline void mt_test_from_f64(mt_array *out, mt_device *dev, mt_dtype dt, int32_t nd,
                                    const int64_t *dims, const double *vals)
{
    size_t n = 1;
    for (int32_t d = 0; d < nd; d++) n *= (size_t)dims[d];
    void *buf = malloc(n * mt_dtype_size(dt) + 8);
    MT_CHECK(buf != NULL);
    mt_dtype_convert(buf, dt, (ptrdiff_t)mt_dtype_size(dt), vals, MT_FLOAT64, sizeof(double), n);
    MT_CHECK_OK(mt_array_from_host(out, dev, dt, nd, dims, buf));
    free(buf);
}

/* The elements of a in C order as doubles (caller frees). */
static inline double *mt_test_to_f64(const mt_array *a)
{
    size_t n = (size_t)mt_array_size(a), isz = mt_dtype_size(a->dtype);
    void *buf = malloc(n * isz + 8);
    double *out = malloc(n * sizeof *out + 8);
    MT_CHECK(buf != NULL && out != NULL);
    MT_CHECK_OK(mt_array_to_host(buf, n * isz, a));
    mt_dtype_convert(out, MT_FLOAT64, sizeof(double), buf, a->dtype, (ptrdiff_t)isz, n);
    free(buf);
    return out;
}

/* Bytes without a period, for copy tests (a chunk reused too early shows up as wrong data). */
static inline uint8_t mt_test_pattern(size_t i, unsigned seed)
{
    uint64_t x = (uint64_t)i * 0x9e3779b97f4a7c15ull + seed;
    x ^= x >> 31;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 29;
    return (uint8_t)(x >> 56);
}

static inline void mt_test_fill_pattern(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) p[i] = mt_test_pattern(i, seed);
}

/* Fails naming the first byte of p[0..n) that is not mt_test_pattern(seed) (and the caller's
 * line). */
#define mt_test_check_pattern(p, n, seed, what)                                                  \
    mt_test_check_pattern_at(__FILE__, __LINE__, p, n, seed, what)
static inline void mt_test_check_pattern_at(const char *file, int line, const uint8_t *p,
                                            size_t n, unsigned seed, const char *what)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != mt_test_pattern(i, seed))
            mt_test_fail(file, line, "%s: byte %zu of %zu is %u, want %u", what, i, n, p[i],
                         mt_test_pattern(i, seed));
}

/* Writes n pattern bytes at offset off of a fresh buffer on dev and reads them back (on stream
 * s); the caller's source is overwritten right after the write returns. */
static inline void mt_test_roundtrip(mt_device *dev, size_t n, size_t off, mt_stream *s,
                                     unsigned seed)
{
    mt_buffer *buf = NULL;
    MT_CHECK_OK(mt_buffer_new(&buf, dev, n + off + 64));
    uint8_t *src = malloc(n), *dst = malloc(n);
    MT_CHECK(src && dst);
    mt_test_fill_pattern(src, n, seed);
    memset(dst, 0xA5, n);
    MT_CHECK_OK(mt_buffer_write(buf, off, src, n, s));
    memset(src, 0, n); /* the write is complete (or staged): src is the caller's again */
    MT_CHECK_OK(mt_buffer_read(dst, buf, off, n, s));
    char what[96];
    snprintf(what, sizeof what, "round trip of %zu bytes at offset %zu", n, off);
    mt_test_check_pattern(dst, n, seed, what);
    free(src);
    free(dst);
    mt_buffer_release(buf);
}

#endif
