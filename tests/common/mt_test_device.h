/* Helpers of the tests that run on devices: opening one (SKIP where it is absent), and moving
 * values between float64 host arrays and arrays of any dtype on a device. The test links
 * mt_gpuarray. */
#ifndef MT_TEST_DEVICE_H
#define MT_TEST_DEVICE_H

#include <stdlib.h>

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

#endif
