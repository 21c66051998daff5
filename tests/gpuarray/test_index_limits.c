/* Index kernels (src/gpuarray/index_kernels.c) at the limits of the result's size: a take
 * whose result would have more than 2^63 elements, from an array that exists (it is empty, but
 * its nonzero dimensions are large), is refused by the result's allocation with ERR_RANGE, and
 * no size is computed from the refused shape before that (in the sanitizer build, which
 * aborts on signed overflow, such a computation would end the test). Runs on
 * MLTRAIN_TEST_DEVICE (default host). */
#include <string.h>

#include "mltrain/gpuarray.h"
#include "mt_test.h"

#include "array_helpers.h"

MT_TEST(index_take_result_too_large)
{
    mt_device *dev = open_dev();
    /* x: (2^30, 0, 2^30) float32 holds nothing; taking 16 indices along axis 1 asks for
     * (2^30, 16, 2^30): 2^64 elements */
    const int64_t xd[3] = {(int64_t)1 << 30, 0, (int64_t)1 << 30}, id[1] = {16};
    mt_array x = {0}, idx = {0}, out = {0};
    MT_CHECK_OK(mt_array_empty(&x, dev, MT_FLOAT32, 3, xd, 'C'));
    MT_CHECK_OK(mt_array_zeros(&idx, dev, MT_INT64, 1, id));
    MT_CHECK_ERR(mt_array_take(&out, &x, &idx, 1), MT_ERR_RANGE, "too many elements");
    /* along the last axis the result, (2^30, 0, 16), exists and is empty (the indices are
     * still checked: 0 is in range) */
    MT_CHECK_OK(mt_array_take(&out, &x, &idx, 2));
    MT_CHECK_EQ_INT(mt_array_size(&out), 0);
    mt_array_clear(&out);
    mt_array_clear(&idx);
    mt_array_clear(&x);
    mt_device_release(dev);
}
