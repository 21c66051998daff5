/* Tests of gpuarray views (slicing, transpose, broadcast, expand/squeeze, reshape, view_as)
 * against independent references: NumPy/Python index tables and plain index-mapping loops
 * (see array_helpers.h). Runs on MLTRAIN_TEST_DEVICE (default host). */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "mltrain/gpuarray.h"
#include "mltrain/mt_config.h"
#include "mt_test.h"

/* the kernel cache and the host backend's launch are internal: tested through the private
 * header */
#include "../../src/gpuarray/gpuarray_impl.h"

#include "array_helpers.h"

/* ---------------------------------------------------------------- slicing */

typedef struct slice1d_case {
    int64_t len, start, stop, step;
    const char *idx; /* one digit per selected index */
} slice1d_case;

typedef struct slicend_case {
    int32_t ns;
    mt_slice s[6];
    int32_t nd;
    int64_t dims[6];
    int64_t size;
    int64_t vals[120];
} slicend_case;

/* Generated with Python 3: {len, start, stop, step, idx} where idx lists the digits of
 * list(range(len))[start:stop:step], for len in (0, 5), start and stop in
 * (None, -7, -2, 0, 3, 7) and step in (None, 1, 2, -1, -3). */
/* clang-format off */
static const slice1d_case k_slice1d[] = {
    {0, U, U, U, ""}, {0, U, U, 1, ""}, {0, U, U, 2, ""}, {0, U, U, -1, ""}, {0, U, U, -3, ""},
    {0, U, -7, U, ""}, {0, U, -7, 1, ""}, {0, U, -7, 2, ""}, {0, U, -7, -1, ""}, {0, U, -7, -3, ""},
    {0, U, -2, U, ""}, {0, U, -2, 1, ""}, {0, U, -2, 2, ""}, {0, U, -2, -1, ""}, {0, U, -2, -3, ""},
    {0, U, 0, U, ""}, {0, U, 0, 1, ""}, {0, U, 0, 2, ""}, {0, U, 0, -1, ""}, {0, U, 0, -3, ""},
    {0, U, 3, U, ""}, {0, U, 3, 1, ""}, {0, U, 3, 2, ""}, {0, U, 3, -1, ""}, {0, U, 3, -3, ""},
    {0, U, 7, U, ""}, {0, U, 7, 1, ""}, {0, U, 7, 2, ""}, {0, U, 7, -1, ""}, {0, U, 7, -3, ""},
    {0, -7, U, U, ""}, {0, -7, U, 1, ""}, {0, -7, U, 2, ""}, {0, -7, U, -1, ""}, {0, -7, U, -3, ""},
    {0, -7, -7, U, ""}, {0, -7, -7, 1, ""}, {0, -7, -7, 2, ""}, {0, -7, -7, -1, ""},
    {0, -7, -7, -3, ""}, {0, -7, -2, U, ""}, {0, -7, -2, 1, ""}, {0, -7, -2, 2, ""},
    {0, -7, -2, -1, ""}, {0, -7, -2, -3, ""}, {0, -7, 0, U, ""}, {0, -7, 0, 1, ""},
    {0, -7, 0, 2, ""}, {0, -7, 0, -1, ""}, {0, -7, 0, -3, ""}, {0, -7, 3, U, ""}, {0, -7, 3, 1, ""},
    {0, -7, 3, 2, ""}, {0, -7, 3, -1, ""}, {0, -7, 3, -3, ""}, {0, -7, 7, U, ""}, {0, -7, 7, 1, ""},
    {0, -7, 7, 2, ""}, {0, -7, 7, -1, ""}, {0, -7, 7, -3, ""}, {0, -2, U, U, ""}, {0, -2, U, 1, ""},
    {0, -2, U, 2, ""}, {0, -2, U, -1, ""}, {0, -2, U, -3, ""}, {0, -2, -7, U, ""},
    {0, -2, -7, 1, ""}, {0, -2, -7, 2, ""}, {0, -2, -7, -1, ""}, {0, -2, -7, -3, ""},
    {0, -2, -2, U, ""}, {0, -2, -2, 1, ""}, {0, -2, -2, 2, ""}, {0, -2, -2, -1, ""},
    {0, -2, -2, -3, ""}, {0, -2, 0, U, ""}, {0, -2, 0, 1, ""}, {0, -2, 0, 2, ""},
    {0, -2, 0, -1, ""}, {0, -2, 0, -3, ""}, {0, -2, 3, U, ""}, {0, -2, 3, 1, ""}, {0, -2, 3, 2, ""},
    {0, -2, 3, -1, ""}, {0, -2, 3, -3, ""}, {0, -2, 7, U, ""}, {0, -2, 7, 1, ""}, {0, -2, 7, 2, ""},
    {0, -2, 7, -1, ""}, {0, -2, 7, -3, ""}, {0, 0, U, U, ""}, {0, 0, U, 1, ""}, {0, 0, U, 2, ""},
    {0, 0, U, -1, ""}, {0, 0, U, -3, ""}, {0, 0, -7, U, ""}, {0, 0, -7, 1, ""}, {0, 0, -7, 2, ""},
    {0, 0, -7, -1, ""}, {0, 0, -7, -3, ""}, {0, 0, -2, U, ""}, {0, 0, -2, 1, ""}, {0, 0, -2, 2, ""},
    {0, 0, -2, -1, ""}, {0, 0, -2, -3, ""}, {0, 0, 0, U, ""}, {0, 0, 0, 1, ""}, {0, 0, 0, 2, ""},
    {0, 0, 0, -1, ""}, {0, 0, 0, -3, ""}, {0, 0, 3, U, ""}, {0, 0, 3, 1, ""}, {0, 0, 3, 2, ""},
    {0, 0, 3, -1, ""}, {0, 0, 3, -3, ""}, {0, 0, 7, U, ""}, {0, 0, 7, 1, ""}, {0, 0, 7, 2, ""},
    {0, 0, 7, -1, ""}, {0, 0, 7, -3, ""}, {0, 3, U, U, ""}, {0, 3, U, 1, ""}, {0, 3, U, 2, ""},
    {0, 3, U, -1, ""}, {0, 3, U, -3, ""}, {0, 3, -7, U, ""}, {0, 3, -7, 1, ""}, {0, 3, -7, 2, ""},
    {0, 3, -7, -1, ""}, {0, 3, -7, -3, ""}, {0, 3, -2, U, ""}, {0, 3, -2, 1, ""}, {0, 3, -2, 2, ""},
    {0, 3, -2, -1, ""}, {0, 3, -2, -3, ""}, {0, 3, 0, U, ""}, {0, 3, 0, 1, ""}, {0, 3, 0, 2, ""},
    {0, 3, 0, -1, ""}, {0, 3, 0, -3, ""}, {0, 3, 3, U, ""}, {0, 3, 3, 1, ""}, {0, 3, 3, 2, ""},
    {0, 3, 3, -1, ""}, {0, 3, 3, -3, ""}, {0, 3, 7, U, ""}, {0, 3, 7, 1, ""}, {0, 3, 7, 2, ""},
    {0, 3, 7, -1, ""}, {0, 3, 7, -3, ""}, {0, 7, U, U, ""}, {0, 7, U, 1, ""}, {0, 7, U, 2, ""},
    {0, 7, U, -1, ""}, {0, 7, U, -3, ""}, {0, 7, -7, U, ""}, {0, 7, -7, 1, ""}, {0, 7, -7, 2, ""},
    {0, 7, -7, -1, ""}, {0, 7, -7, -3, ""}, {0, 7, -2, U, ""}, {0, 7, -2, 1, ""}, {0, 7, -2, 2, ""},
    {0, 7, -2, -1, ""}, {0, 7, -2, -3, ""}, {0, 7, 0, U, ""}, {0, 7, 0, 1, ""}, {0, 7, 0, 2, ""},
    {0, 7, 0, -1, ""}, {0, 7, 0, -3, ""}, {0, 7, 3, U, ""}, {0, 7, 3, 1, ""}, {0, 7, 3, 2, ""},
    {0, 7, 3, -1, ""}, {0, 7, 3, -3, ""}, {0, 7, 7, U, ""}, {0, 7, 7, 1, ""}, {0, 7, 7, 2, ""},
    {0, 7, 7, -1, ""}, {0, 7, 7, -3, ""}, {5, U, U, U, "01234"}, {5, U, U, 1, "01234"},
    {5, U, U, 2, "024"}, {5, U, U, -1, "43210"}, {5, U, U, -3, "41"}, {5, U, -7, U, ""},
    {5, U, -7, 1, ""}, {5, U, -7, 2, ""}, {5, U, -7, -1, "43210"}, {5, U, -7, -3, "41"},
    {5, U, -2, U, "012"}, {5, U, -2, 1, "012"}, {5, U, -2, 2, "02"}, {5, U, -2, -1, "4"},
    {5, U, -2, -3, "4"}, {5, U, 0, U, ""}, {5, U, 0, 1, ""}, {5, U, 0, 2, ""},
    {5, U, 0, -1, "4321"}, {5, U, 0, -3, "41"}, {5, U, 3, U, "012"}, {5, U, 3, 1, "012"},
    {5, U, 3, 2, "02"}, {5, U, 3, -1, "4"}, {5, U, 3, -3, "4"}, {5, U, 7, U, "01234"},
    {5, U, 7, 1, "01234"}, {5, U, 7, 2, "024"}, {5, U, 7, -1, ""}, {5, U, 7, -3, ""},
    {5, -7, U, U, "01234"}, {5, -7, U, 1, "01234"}, {5, -7, U, 2, "024"}, {5, -7, U, -1, ""},
    {5, -7, U, -3, ""}, {5, -7, -7, U, ""}, {5, -7, -7, 1, ""}, {5, -7, -7, 2, ""},
    {5, -7, -7, -1, ""}, {5, -7, -7, -3, ""}, {5, -7, -2, U, "012"}, {5, -7, -2, 1, "012"},
    {5, -7, -2, 2, "02"}, {5, -7, -2, -1, ""}, {5, -7, -2, -3, ""}, {5, -7, 0, U, ""},
    {5, -7, 0, 1, ""}, {5, -7, 0, 2, ""}, {5, -7, 0, -1, ""}, {5, -7, 0, -3, ""},
    {5, -7, 3, U, "012"}, {5, -7, 3, 1, "012"}, {5, -7, 3, 2, "02"}, {5, -7, 3, -1, ""},
    {5, -7, 3, -3, ""}, {5, -7, 7, U, "01234"}, {5, -7, 7, 1, "01234"}, {5, -7, 7, 2, "024"},
    {5, -7, 7, -1, ""}, {5, -7, 7, -3, ""}, {5, -2, U, U, "34"}, {5, -2, U, 1, "34"},
    {5, -2, U, 2, "3"}, {5, -2, U, -1, "3210"}, {5, -2, U, -3, "30"}, {5, -2, -7, U, ""},
    {5, -2, -7, 1, ""}, {5, -2, -7, 2, ""}, {5, -2, -7, -1, "3210"}, {5, -2, -7, -3, "30"},
    {5, -2, -2, U, ""}, {5, -2, -2, 1, ""}, {5, -2, -2, 2, ""}, {5, -2, -2, -1, ""},
    {5, -2, -2, -3, ""}, {5, -2, 0, U, ""}, {5, -2, 0, 1, ""}, {5, -2, 0, 2, ""},
    {5, -2, 0, -1, "321"}, {5, -2, 0, -3, "3"}, {5, -2, 3, U, ""}, {5, -2, 3, 1, ""},
    {5, -2, 3, 2, ""}, {5, -2, 3, -1, ""}, {5, -2, 3, -3, ""}, {5, -2, 7, U, "34"},
    {5, -2, 7, 1, "34"}, {5, -2, 7, 2, "3"}, {5, -2, 7, -1, ""}, {5, -2, 7, -3, ""},
    {5, 0, U, U, "01234"}, {5, 0, U, 1, "01234"}, {5, 0, U, 2, "024"}, {5, 0, U, -1, "0"},
    {5, 0, U, -3, "0"}, {5, 0, -7, U, ""}, {5, 0, -7, 1, ""}, {5, 0, -7, 2, ""},
    {5, 0, -7, -1, "0"}, {5, 0, -7, -3, "0"}, {5, 0, -2, U, "012"}, {5, 0, -2, 1, "012"},
    {5, 0, -2, 2, "02"}, {5, 0, -2, -1, ""}, {5, 0, -2, -3, ""}, {5, 0, 0, U, ""}, {5, 0, 0, 1, ""},
    {5, 0, 0, 2, ""}, {5, 0, 0, -1, ""}, {5, 0, 0, -3, ""}, {5, 0, 3, U, "012"},
    {5, 0, 3, 1, "012"}, {5, 0, 3, 2, "02"}, {5, 0, 3, -1, ""}, {5, 0, 3, -3, ""},
    {5, 0, 7, U, "01234"}, {5, 0, 7, 1, "01234"}, {5, 0, 7, 2, "024"}, {5, 0, 7, -1, ""},
    {5, 0, 7, -3, ""}, {5, 3, U, U, "34"}, {5, 3, U, 1, "34"}, {5, 3, U, 2, "3"},
    {5, 3, U, -1, "3210"}, {5, 3, U, -3, "30"}, {5, 3, -7, U, ""}, {5, 3, -7, 1, ""},
    {5, 3, -7, 2, ""}, {5, 3, -7, -1, "3210"}, {5, 3, -7, -3, "30"}, {5, 3, -2, U, ""},
    {5, 3, -2, 1, ""}, {5, 3, -2, 2, ""}, {5, 3, -2, -1, ""}, {5, 3, -2, -3, ""}, {5, 3, 0, U, ""},
    {5, 3, 0, 1, ""}, {5, 3, 0, 2, ""}, {5, 3, 0, -1, "321"}, {5, 3, 0, -3, "3"}, {5, 3, 3, U, ""},
    {5, 3, 3, 1, ""}, {5, 3, 3, 2, ""}, {5, 3, 3, -1, ""}, {5, 3, 3, -3, ""}, {5, 3, 7, U, "34"},
    {5, 3, 7, 1, "34"}, {5, 3, 7, 2, "3"}, {5, 3, 7, -1, ""}, {5, 3, 7, -3, ""}, {5, 7, U, U, ""},
    {5, 7, U, 1, ""}, {5, 7, U, 2, ""}, {5, 7, U, -1, "43210"}, {5, 7, U, -3, "41"},
    {5, 7, -7, U, ""}, {5, 7, -7, 1, ""}, {5, 7, -7, 2, ""}, {5, 7, -7, -1, "43210"},
    {5, 7, -7, -3, "41"}, {5, 7, -2, U, ""}, {5, 7, -2, 1, ""}, {5, 7, -2, 2, ""},
    {5, 7, -2, -1, "4"}, {5, 7, -2, -3, "4"}, {5, 7, 0, U, ""}, {5, 7, 0, 1, ""}, {5, 7, 0, 2, ""},
    {5, 7, 0, -1, "4321"}, {5, 7, 0, -3, "41"}, {5, 7, 3, U, ""}, {5, 7, 3, 1, ""},
    {5, 7, 3, 2, ""}, {5, 7, 3, -1, "4"}, {5, 7, 3, -3, "4"}, {5, 7, 7, U, ""}, {5, 7, 7, 1, ""},
    {5, 7, 7, 2, ""}, {5, 7, 7, -1, ""}, {5, 7, 7, -3, ""},
};
/* clang-format on */

/* ---- generated with NumPy 1.24: a = np.arange(120).reshape(4, 5, 6); a[index] flattened */
/* clang-format off */
static const slicend_case k_slicend[] = {
    {3, {RNG(1, 3, U), RNG(U, U, 2), IDX(-1)}, 2, {2, 3}, 6, {35, 47, 59, 65, 77, 89}},
    {3, {RNG(U, U, -1), IDX(1), RNG(2, 5, 2)}, 2, {4, 2}, 8, {98, 100, 68, 70, 38, 40, 8, 10}},
    {1, {RNG(10, -10, -2)}, 3, {2, 5, 6}, 60, {90, 91, 92, 93, 94, 95, 96, 97, 98, 99, 100, 101,
        102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 112, 113, 114, 115, 116, 117, 118, 119,
        30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52,
        53, 54, 55, 56, 57, 58, 59}},
    {1, {RNG(3, 1, U)}, 3, {0, 5, 6}, 0, {0}},
    {2, {ELLIP, IDX(2)}, 2, {4, 5}, 20, {2, 8, 14, 20, 26, 32, 38, 44, 50, 56, 62, 68, 74, 80, 86,
        92, 98, 104, 110, 116}},
    {2, {IDX(0), ELLIP}, 2, {5, 6}, 30, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
        17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29}},
    {6, {NEWAX, RNG(1, 2, U), NEWAX, ELLIP, RNG(U, U, -3), NEWAX}, 6, {1, 1, 1, 5, 2, 1}, 10, {35,
        32, 41, 38, 47, 44, 53, 50, 59, 56}},
    {3, {IDX(-4), IDX(4), IDX(5)}, 0, {0}, 1, {29}},
    {3, {RNG(-100, 100, U), RNG(-2, U, U), RNG(U, -100, -1)}, 3, {4, 2, 6}, 48, {23, 22, 21, 20, 19,
        18, 29, 28, 27, 26, 25, 24, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55, 54, 83, 82, 81, 80,
        79, 78, 89, 88, 87, 86, 85, 84, 113, 112, 111, 110, 109, 108, 119, 118, 117, 116, 115,
        114}},
    {1, {ELLIP}, 3, {4, 5, 6}, 120, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17,
        18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
        41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63,
        64, 65, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 83, 84, 85, 86,
        87, 88, 89, 90, 91, 92, 93, 94, 95, 96, 97, 98, 99, 100, 101, 102, 103, 104, 105, 106, 107,
        108, 109, 110, 111, 112, 113, 114, 115, 116, 117, 118, 119}},
    {0, {{0}}, 3, {4, 5, 6}, 120, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18,
        19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41,
        42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64,
        65, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 83, 84, 85, 86, 87,
        88, 89, 90, 91, 92, 93, 94, 95, 96, 97, 98, 99, 100, 101, 102, 103, 104, 105, 106, 107, 108,
        109, 110, 111, 112, 113, 114, 115, 116, 117, 118, 119}},
    {3, {RNG(U, U, -2), ELLIP, NEWAX}, 4, {2, 5, 6, 1}, 60, {90, 91, 92, 93, 94, 95, 96, 97, 98, 99,
        100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 112, 113, 114, 115, 116, 117,
        118, 119, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49,
        50, 51, 52, 53, 54, 55, 56, 57, 58, 59}},
    {3, {RNG(1, U, 3), RNG(4, 0, -2), RNG(5, -7, -1)}, 3, {1, 2, 6}, 12, {59, 58, 57, 56, 55, 54,
        47, 46, 45, 44, 43, 42}},
};
/* clang-format on */

static int64_t map_table(const int64_t *idx, const void *ctx)
{
    const slice1d_case *c = ctx;
    return c->idx[idx[0]] - '0';
}

MT_TEST(slice_1d_python_table)
{
    mt_device *dev = open_dev();
    for (size_t k = 0; k < sizeof k_slice1d / sizeof k_slice1d[0]; k++) {
        const slice1d_case *c = &k_slice1d[k];
        mt_array a, v;
        make_iota(&a, dev, 1, &c->len);
        mt_slice s = mt_slice_range(c->start, c->stop, c->step);
        mt_status st = mt_array_slice(&v, &a, 1, &s);
        if (st != MT_OK) mt_test_fail(__FILE__, __LINE__, "case %zu: %s", k, mt_last_error());
        if (v.ndim != 1 || v.dims[0] != (int64_t)strlen(c->idx))
            mt_test_fail(__FILE__, __LINE__,
                         "case %zu (len %lld, %lld:%lld:%lld): length %lld, Python gives %zu", k,
                         (long long)c->len, (long long)c->start, (long long)c->stop,
                         (long long)c->step, (long long)v.dims[0], strlen(c->idx));
        MT_CHECK(v.buf == a.buf);
        check_map(&v, map_table, c);
        mt_array_clear(&v);
        mt_array_clear(&a);
    }
    mt_device_release(dev);
}

static int64_t map_vals(const int64_t *idx, const void *ctx)
{
    const slicend_case *c = ctx;
    int64_t flat = 0;
    for (int32_t i = 0; i < c->nd; i++)
        flat = flat * c->dims[i] + idx[i];
    return c->vals[flat];
}

MT_TEST(slice_nd_numpy_table)
{
    mt_device *dev = open_dev();
    int64_t dims[3] = {4, 5, 6};
    mt_array a;
    make_iota(&a, dev, 3, dims);
    for (size_t k = 0; k < sizeof k_slicend / sizeof k_slicend[0]; k++) {
        const slicend_case *c = &k_slicend[k];
        mt_array v;
        mt_status st = mt_array_slice(&v, &a, c->ns, c->s);
        if (st != MT_OK) mt_test_fail(__FILE__, __LINE__, "case %zu: %s", k, mt_last_error());
        char d[256];
        if (v.ndim != c->nd || memcmp(v.dims, c->dims, (size_t)c->nd * sizeof v.dims[0]) != 0)
            mt_test_fail(__FILE__, __LINE__, "case %zu: got %s", k,
                         mt_array_describe(&v, d, sizeof d));
        MT_CHECK(v.buf == a.buf);
        check_map(&v, map_vals, c);
        mt_array_clear(&v);
    }
    mt_array_clear(&a);
    mt_device_release(dev);
}

MT_TEST(slice_of_slice_and_writes)
{
    /* a view of a view with negative steps; writing through it lands in the source */
    mt_device *dev = open_dev();
    int64_t dims[2] = {6, 8};
    mt_array a, v, w;
    make_iota(&a, dev, 2, dims);
    mt_slice s1[2] = {mt_slice_range(U, U, -1),
                      mt_slice_range(1, 7, 2)}; /* rows 5..0, cols 1,3,5 */
    mt_slice s2[2] = {mt_slice_range(1, 5, 2), mt_slice_range(U, U, -1)}; /* rows 1,3 -> 4,2 */
    MT_CHECK_OK(mt_array_slice(&v, &a, 2, s1));
    MT_CHECK_OK(mt_array_slice(&w, &v, 2, s2));
    int64_t want_dims[2] = {2, 3};
    check_shape(&w, 2, want_dims);
    double got[6];
    MT_CHECK_OK(mt_array_to_host(got, sizeof got, &w));
    const int64_t rows[2] = {4, 2}, cols[3] = {5, 3, 1};
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++)
            MT_CHECK(got[i * 3 + j] == (double)(rows[i] * 8 + cols[j]));
    MT_CHECK_OK(mt_array_fill(&w, mt_scalar_f64(-1)));
    double all[48];
    MT_CHECK_OK(mt_array_to_host(all, sizeof all, &a));
    for (int r = 0; r < 6; r++)
        for (int c = 0; c < 8; c++) {
            bool hit = (r == 4 || r == 2) && (c == 5 || c == 3 || c == 1);
            MT_CHECK(all[r * 8 + c] == (hit ? -1.0 : (double)(r * 8 + c)));
        }
    mt_array_clear(&w);
    mt_array_clear(&v);
    mt_array_clear(&a);
    mt_device_release(dev);
}

MT_TEST(slice_errors_0d_and_empty)
{
    mt_device *dev = open_dev();
    int64_t d3 = 3;
    mt_array a, v;
    make_iota(&a, dev, 1, &d3);
    mt_slice s = mt_slice_index(5);
    MT_CHECK_ERR(mt_array_slice(&v, &a, 1, &s), MT_ERR_RANGE,
                 "index 5 is out of bounds for axis 0 with size 3");
    s = mt_slice_index(-4);
    MT_CHECK_ERR(mt_array_slice(&v, &a, 1, &s), MT_ERR_RANGE, "index -4 is out of bounds");
    s = mt_slice_range(0, 3, 0);
    MT_CHECK_ERR(mt_array_slice(&v, &a, 1, &s), MT_ERR_INVALID, "step cannot be zero");
    mt_slice two[2] = {mt_slice_index(0), mt_slice_index(0)};
    MT_CHECK_ERR(mt_array_slice(&v, &a, 2, two), MT_ERR_INVALID,
                 "too many indices for array: array is 1-dimensional, but 2 were indexed");
    mt_slice ell[2] = {mt_slice_ellipsis(), mt_slice_ellipsis()};
    MT_CHECK_ERR(mt_array_slice(&v, &a, 2, ell), MT_ERR_INVALID, "single ellipsis");
    mt_slice many[9];
    for (int i = 0; i < 9; i++)
        many[i] = mt_slice_newaxis();
    MT_CHECK_ERR(mt_array_slice(&v, &a, 9, many), MT_ERR_INVALID, "more than 8 dimensions");
    mt_slice bad = {MT_SLICE_KIND_COUNT, 0, 0, 0};
    MT_CHECK_ERR(mt_array_slice(&v, &a, 1, &bad), MT_ERR_INVALID, "invalid kind");
    /* index 2 then a[-1] */
    s = mt_slice_index(-1);
    MT_CHECK_OK(mt_array_slice(&v, &a, 1, &s));
    MT_CHECK_EQ_INT(v.ndim, 0);
    double x = 0;
    MT_CHECK_OK(mt_array_to_host(&x, sizeof x, &v));
    MT_CHECK(x == 2.0);
    /* 0-d arrays: a[()] and a[...] are the same 0-d view, a[None] has shape (1,) */
    mt_array w;
    MT_CHECK_OK(mt_array_slice(&w, &v, 0, NULL));
    MT_CHECK_EQ_INT(w.ndim, 0);
    mt_array_clear(&w);
    mt_slice e1 = mt_slice_ellipsis();
    MT_CHECK_OK(mt_array_slice(&w, &v, 1, &e1));
    MT_CHECK_EQ_INT(w.ndim, 0);
    mt_array_clear(&w);
    mt_slice n1 = mt_slice_newaxis();
    MT_CHECK_OK(mt_array_slice(&w, &v, 1, &n1));
    MT_CHECK(w.ndim == 1 && w.dims[0] == 1);
    MT_CHECK_OK(mt_array_to_host(&x, sizeof x, &w));
    MT_CHECK(x == 2.0);
    mt_array_clear(&w);
    s = mt_slice_index(0);
    MT_CHECK_ERR(mt_array_slice(&w, &v, 1, &s), MT_ERR_INVALID, "0-dimensional");
    mt_array_clear(&v);
    mt_array_clear(&a);

    /* size-0 dims: slicing and indexing the other axes still works */
    int64_t d03[2] = {0, 3};
    make_iota(&a, dev, 2, d03);
    mt_slice s2[2] = {mt_slice_all(), mt_slice_index(1)};
    MT_CHECK_OK(mt_array_slice(&v, &a, 2, s2));
    MT_CHECK(v.ndim == 1 && v.dims[0] == 0);
    mt_array_clear(&v);
    s = mt_slice_index(0);
    MT_CHECK_ERR(mt_array_slice(&v, &a, 1, &s), MT_ERR_RANGE, "axis 0 with size 0");
    mt_slice s3[2] = {mt_slice_range(U, U, -1), mt_slice_range(5, -5, -1)};
    MT_CHECK_OK(mt_array_slice(&v, &a, 2, s3));
    MT_CHECK(v.ndim == 2 && v.dims[0] == 0 && v.dims[1] == 3);
    MT_CHECK(mt_array_is_c_contiguous(&v) && mt_array_is_f_contiguous(&v));
    mt_array_clear(&v);
    mt_array_clear(&a);
    mt_device_release(dev);
}

/* ---------------------------------------------------------------- transpose, broadcast, axes */



MT_TEST(transpose_and_swapaxes)
{
    mt_device *dev = open_dev();
    int64_t dims[4] = {2, 3, 4, 5};
    mt_array a, t;
    make_iota(&a, dev, 4, dims);
    const int32_t perms[4][4] = {{3, 2, 1, 0}, {1, 2, 0, 3}, {-1, 0, -3, 2}, {0, 1, 2, 3}};
    for (int k = 0; k < 4; k++) {
        MT_CHECK_OK(mt_array_transpose(&t, &a, k == 0 ? NULL : perms[k]));
        perm_ctx p = {{0}, 4, dims};
        for (int i = 0; i < 4; i++)
            p.perm[i] = (perms[k][i] + 4) % 4;
        for (int i = 0; i < 4; i++)
            MT_CHECK_EQ_INT(t.dims[i], dims[p.perm[i]]);
        MT_CHECK(t.buf == a.buf);
        check_map(&t, map_perm, &p);
        MT_CHECK(mt_array_is_c_contiguous(&t) == (k == 3));
        mt_array_clear(&t);
    }
    MT_CHECK_OK(mt_array_transpose(&t, &a, NULL));
    MT_CHECK(mt_array_is_f_contiguous(&t)); /* a.T of a C array is F-contiguous */
    mt_array_clear(&t);
    MT_CHECK_OK(mt_array_swapaxes(&t, &a, 1, -1));
    perm_ctx p = {{0, 3, 2, 1}, 4, dims};
    check_map(&t, map_perm, &p);
    mt_array_clear(&t);
    const int32_t dup[4] = {0, 1, 1, 2}, oob[4] = {0, 1, 2, 4};
    MT_CHECK_ERR(mt_array_transpose(&t, &a, dup), MT_ERR_INVALID, "repeated axis 1");
    MT_CHECK_ERR(mt_array_transpose(&t, &a, oob), MT_ERR_RANGE,
                 "axis 4 is out of bounds for array of dimension 4");
    MT_CHECK_ERR(mt_array_swapaxes(&t, &a, 0, -5), MT_ERR_RANGE, "axis -5");
    mt_array_clear(&a);
    mt_device_release(dev);
}

typedef struct bcast_ctx {
    int32_t src_nd, nd;
    const int64_t *src_dims;
} bcast_ctx;

static int64_t map_bcast(const int64_t *idx, const void *ctx)
{
    const bcast_ctx *b = ctx;
    int64_t flat = 0;
    for (int32_t j = 0; j < b->src_nd; j++) {
        int64_t i = idx[b->nd - b->src_nd + j];
        flat = flat * b->src_dims[j] + (b->src_dims[j] == 1 ? 0 : i);
    }
    return flat;
}

MT_TEST(broadcast_to_read_only)
{
    mt_device *dev = open_dev();
    int64_t sd[2] = {3, 1}, td[3] = {2, 3, 4};
    mt_array a, b;
    make_iota(&a, dev, 2, sd);
    MT_CHECK_OK(mt_array_broadcast_to(&b, &a, 3, td));
    check_shape(&b, 3, td);
    MT_CHECK(b.strides[0] == 0 && b.strides[2] == 0 && b.strides[1] == 8);
    MT_CHECK(!(b.flags & MT_ARRAY_WRITEABLE));
    MT_CHECK(a.flags & MT_ARRAY_WRITEABLE);
    bcast_ctx c = {2, 3, sd};
    check_map(&b, map_bcast, &c);
    MT_CHECK_ERR(mt_array_fill(&b, mt_scalar_f64(1)), MT_ERR_INVALID, "read-only");
    MT_CHECK_ERR(mt_array_copy(&b, &a), MT_ERR_INVALID, "read-only");
    mt_array_clear(&b);
    int64_t bad[2] = {4, 4};
    MT_CHECK_ERR(mt_array_broadcast_to(&b, &a, 2, bad), MT_ERR_SHAPE,
                 "cannot broadcast array of shape (3, 1) to shape (4, 4)");
    int64_t fewer[1] = {3};
    MT_CHECK_ERR(mt_array_broadcast_to(&b, &a, 1, fewer), MT_ERR_SHAPE, "(3,)");
    int64_t zero[3] = {5, 3, 0};
    MT_CHECK_OK(mt_array_broadcast_to(&b, &a, 3, zero));
    MT_CHECK_EQ_INT(mt_array_size(&b), 0);
    mt_array_clear(&b);
    mt_array_clear(&a);
    mt_device_release(dev);
}


MT_TEST(expand_dims_and_squeeze)
{
    mt_device *dev = open_dev();
    int64_t dims[3] = {2, 1, 3};
    mt_array a, v, w;
    make_iota(&a, dev, 3, dims);
    const int32_t axes[6] = {0, 1, 3, -1, -2, -4};
    const int64_t want[6][4] = {{1, 2, 1, 3}, {2, 1, 1, 3}, {2, 1, 3, 1},
                                {2, 1, 3, 1}, {2, 1, 1, 3}, {1, 2, 1, 3}};
    for (int k = 0; k < 6; k++) {
        MT_CHECK_OK(mt_array_expand_dims(&v, &a, axes[k]));
        check_shape(&v, 4, want[k]);
        MT_CHECK(mt_array_is_c_contiguous(&v));
        check_map(&v, map_identity_flat, &v); /* same C order as the source */
        mt_array_clear(&v);
    }
    MT_CHECK_ERR(mt_array_expand_dims(&v, &a, 4), MT_ERR_RANGE, "axis 4");
    MT_CHECK_ERR(mt_array_expand_dims(&v, &a, -5), MT_ERR_RANGE, "axis -5");

    MT_CHECK_OK(mt_array_squeeze(&v, &a, 0, NULL));
    int64_t sq[2] = {2, 3};
    check_shape(&v, 2, sq);
    check_map(&v, map_identity_flat, &v);
    mt_array_clear(&v);
    const int32_t ax1[1] = {-2};
    MT_CHECK_OK(mt_array_squeeze(&v, &a, 1, ax1));
    check_shape(&v, 2, sq);
    mt_array_clear(&v);
    const int32_t ax0[1] = {0};
    MT_CHECK_ERR(mt_array_squeeze(&v, &a, 1, ax0), MT_ERR_INVALID, "axis 0, which has size 2");
    const int32_t axd[2] = {1, -2};
    MT_CHECK_ERR(mt_array_squeeze(&v, &a, 2, axd), MT_ERR_INVALID, "repeated axis 1");

    /* a transposed (non-contiguous) source keeps its mapping through expand and squeeze */
    MT_CHECK_OK(mt_array_transpose(&v, &a, NULL)); /* (3, 1, 2) */
    MT_CHECK_OK(mt_array_expand_dims(&w, &v, 1));  /* (3, 1, 1, 2) */
    mt_array_clear(&v);
    MT_CHECK_OK(mt_array_squeeze(&v, &w, 0, NULL)); /* (3, 2) = a[:, 0, :].T */
    int64_t td[2] = {3, 2};
    check_shape(&v, 2, td);
    perm_ctx p = {{1, 0}, 2, sq};
    check_map(&v, map_perm, &p);
    mt_array_clear(&v);
    mt_array_clear(&w);

    /* 0-d <-> 1-element arrays */
    mt_slice s3[3] = {mt_slice_index(1), mt_slice_index(0), mt_slice_index(2)};
    MT_CHECK_OK(mt_array_slice(&v, &a, 3, s3));
    MT_CHECK_OK(mt_array_expand_dims(&w, &v, 0));
    MT_CHECK(w.ndim == 1 && w.dims[0] == 1);
    double x = 0;
    MT_CHECK_OK(mt_array_to_host(&x, sizeof x, &w));
    MT_CHECK(x == 5.0);
    mt_array_clear(&v);
    MT_CHECK_OK(mt_array_squeeze(&v, &w, 0, NULL));
    MT_CHECK_EQ_INT(v.ndim, 0);
    mt_array_clear(&v);
    mt_array_clear(&w);
    mt_array_clear(&a);
    mt_device_release(dev);
}

/* ---------------------------------------------------------------- reshape */

/* Reshape of a C-order sequence: the element with C-order rank k of the result must hold the
 * source element of C-order rank k (the reference: gather the source in C order by index). */
static int64_t map_seq(const int64_t *idx, const void *ctx)
{
    const int64_t *seq = ((const int64_t *const *)ctx)[0];
    const mt_array *v = ((const mt_array *const *)ctx)[1];
    int64_t flat = 0;
    for (int32_t i = 0; i < v->ndim; i++)
        flat = flat * v->dims[i] + idx[i];
    return seq[flat];
}

/* C-order sequence of source flat indices held by view v of an iota source (via raw reads of
 * the reference mapping: for a transposed source, element order of the transpose). */
static int64_t *seq_of(const mt_array *v)
{
    int64_t n = mt_array_size(v);
    int64_t *seq = malloc((size_t)(n ? n : 1) * sizeof *seq);
    double *vals = read_f64(v);
    for (int64_t k = 0; k < n; k++)
        seq[k] = (int64_t)vals[k];
    free(vals);
    return seq;
}

MT_TEST(reshape_view_and_copy)
{
    mt_device *dev = open_dev();
    int64_t d46[2] = {4, 6};
    mt_array a, v, r;
    bool needs_copy = true;
    make_iota(&a, dev, 2, d46);

    /* contiguous: always a view, -1 inferred */
    int64_t d3m1[3] = {3, -1, 2};
    MT_CHECK_OK(mt_array_reshape_view(&r, &a, 3, d3m1, &needs_copy));
    MT_CHECK(!needs_copy);
    int64_t d342[3] = {3, 4, 2};
    check_shape(&r, 3, d342);
    MT_CHECK(r.buf == a.buf);
    check_map(&r, map_identity_flat, &r);
    mt_array_clear(&r);

    /* NumPy 1.24: a[:, :3] (4, 3) strides (48, 8) -> (2, 2, 3) is a view with strides
     * (96, 48, 8), -> (4, 3, 1) a view with strides (48, 8, 8), -> (3, 4) a copy */
    mt_slice s[2] = {mt_slice_all(), mt_slice_range(U, 3, U)};
    MT_CHECK_OK(mt_array_slice(&v, &a, 2, s));
    int64_t d223[3] = {2, 2, 3};
    MT_CHECK_OK(mt_array_reshape_view(&r, &v, 3, d223, &needs_copy));
    MT_CHECK(r.buf == a.buf);
    MT_CHECK(r.strides[0] == 96 && r.strides[1] == 48 && r.strides[2] == 8);
    int64_t *seq = seq_of(&v);
    const void *ctx[2] = {seq, &r};
    check_map(&r, map_seq, ctx);
    mt_array_clear(&r);
    int64_t d431[3] = {4, 3, 1};
    MT_CHECK_OK(mt_array_reshape_view(&r, &v, 3, d431, &needs_copy));
    MT_CHECK(r.strides[0] == 48 && r.strides[1] == 8 && r.strides[2] == 8);
    check_map(&r, map_seq, ctx);
    mt_array_clear(&r);
    /* a[:, ::2] is uniformly strided (stride 16 throughout): any reshape is a view */
    mt_array u;
    mt_slice s2[2] = {mt_slice_all(), mt_slice_range(U, U, 2)};
    MT_CHECK_OK(mt_array_slice(&u, &a, 2, s2));
    int64_t d12[1] = {12};
    MT_CHECK_OK(mt_array_reshape_view(&r, &u, 1, d12, NULL));
    MT_CHECK(r.buf == a.buf && r.strides[0] == 16);
    mt_array_clear(&r);
    mt_array_clear(&u);
    /* ... but (3, 4) mixes the strided axis: NumPy copies */
    int64_t d34[2] = {3, 4};
    MT_CHECK_ERR(mt_array_reshape_view(&r, &v, 2, d34, &needs_copy), MT_ERR_SHAPE,
                 "shape (4, 3) cannot be viewed as shape (3, 4) without a copy");
    MT_CHECK(needs_copy);
    MT_CHECK_OK(mt_array_reshape(&r, &v, 2, d34));
    MT_CHECK(r.buf != a.buf);
    MT_CHECK(mt_array_is_c_contiguous(&r));
    ctx[1] = &r;
    check_map(&r, map_seq, ctx);
    mt_array_clear(&r);
    free(seq);
    mt_array_clear(&v);

    /* transposed: (6, 4) -> (24,) needs a copy; (3, 2, 4) splits an axis: a view */
    MT_CHECK_OK(mt_array_transpose(&v, &a, NULL));
    seq = seq_of(&v);
    int64_t d24 = 24;
    MT_CHECK_ERR(mt_array_reshape_view(&r, &v, 1, &d24, &needs_copy), MT_ERR_SHAPE,
                 "without a copy");
    MT_CHECK(needs_copy);
    MT_CHECK_OK(mt_array_flatten(&r, &v));
    MT_CHECK(r.buf != a.buf && r.ndim == 1 && r.dims[0] == 24);
    ctx[0] = seq;
    ctx[1] = &r;
    check_map(&r, map_seq, ctx);
    mt_array_clear(&r);
    int64_t d324[3] = {3, 2, 4};
    MT_CHECK_OK(mt_array_reshape(&r, &v, 3, d324));
    MT_CHECK(r.buf == a.buf);
    check_map(&r, map_seq, ctx);
    mt_array_clear(&r);
    free(seq);
    mt_array_clear(&v);

    /* NumPy: arange(24).reshape(2,3,4).transpose(1,0,2) -> (3,2,2,2) view strides (32,96,16,8) */
    int64_t d234[3] = {2, 3, 4};
    mt_array b;
    make_iota(&b, dev, 3, d234);
    const int32_t perm[3] = {1, 0, 2};
    MT_CHECK_OK(mt_array_transpose(&v, &b, perm));
    int64_t d3222[4] = {3, 2, 2, 2};
    MT_CHECK_OK(mt_array_reshape_view(&r, &v, 4, d3222, NULL));
    MT_CHECK(r.strides[0] == 32 && r.strides[1] == 96 && r.strides[2] == 16 && r.strides[3] == 8);
    mt_array_clear(&r);
    int64_t d38[2] = {3, 8};
    MT_CHECK_ERR(mt_array_reshape_view(&r, &v, 2, d38, NULL), MT_ERR_SHAPE, "without a copy");
    mt_array_clear(&v);
    mt_array_clear(&b);

    /* errors and edge cases */
    int64_t d5[1] = {5};
    MT_CHECK_ERR(mt_array_reshape(&r, &a, 1, d5), MT_ERR_SHAPE,
                 "cannot reshape array of shape (4, 6) (size 24) into shape (5,)");
    MT_CHECK_ERR(mt_array_reshape_view(&r, &a, 1, d5, &needs_copy), MT_ERR_SHAPE, "(5,)");
    MT_CHECK(!needs_copy);
    int64_t two_unknown[2] = {-1, -1};
    MT_CHECK_ERR(mt_array_reshape(&r, &a, 2, two_unknown), MT_ERR_SHAPE, "one unknown");
    int64_t dm7[2] = {-7, 4};
    MT_CHECK_ERR(mt_array_reshape(&r, &a, 2, dm7), MT_ERR_SHAPE, "negative dimension -7");
    int64_t d7m1[2] = {7, -1};
    MT_CHECK_ERR(mt_array_reshape(&r, &a, 2, d7m1), MT_ERR_SHAPE, "(7, -1)");
    int64_t nine[9] = {24, 1, 1, 1, 1, 1, 1, 1, 1};
    MT_CHECK_ERR(mt_array_reshape(&r, &a, 9, nine), MT_ERR_INVALID, "ndim 9");
    /* size 0: any -1-free shape of size 0, and -1 with known product 0 fails as NumPy does */
    int64_t d03[2] = {0, 3};
    mt_array z;
    make_iota(&z, dev, 2, d03);
    int64_t d30[3] = {3, 0, 7};
    MT_CHECK_OK(mt_array_reshape_view(&r, &z, 3, d30, NULL));
    mt_array_clear(&r);
    int64_t d0m1[2] = {0, -1};
    MT_CHECK_ERR(mt_array_reshape(&r, &z, 2, d0m1), MT_ERR_SHAPE, "cannot reshape");
    mt_array_clear(&z);
    /* to and from 0-d */
    int64_t one = 1;
    make_iota(&z, dev, 1, &one);
    MT_CHECK_OK(mt_array_reshape(&r, &z, 0, NULL));
    MT_CHECK_EQ_INT(r.ndim, 0);
    mt_array_clear(&z);
    int64_t d111[3] = {1, -1, 1};
    MT_CHECK_OK(mt_array_reshape(&z, &r, 3, d111));
    MT_CHECK(z.ndim == 3 && z.dims[1] == 1);
    mt_array_clear(&z);
    mt_array_clear(&r);
    mt_array_clear(&a);
    mt_device_release(dev);
}

MT_TEST(view_as_reinterprets)
{
    mt_device *dev = open_dev();
    float f[4] = {1.0f, -2.5f, 0.0f, 3e38f};
    int64_t d4 = 4;
    mt_array a, v;
    MT_CHECK_OK(mt_array_from_host(&a, dev, MT_FLOAT32, 1, &d4, f));
    MT_CHECK_OK(mt_array_view_as(&v, &a, MT_UINT32));
    MT_CHECK(v.buf == a.buf && v.dtype == MT_UINT32);
    uint32_t bits[4];
    MT_CHECK_OK(mt_array_to_host(bits, sizeof bits, &v));
    for (int i = 0; i < 4; i++) {
        uint32_t want;
        memcpy(&want, &f[i], 4);
        MT_CHECK_EQ_INT(bits[i], want);
    }
    mt_array_clear(&v);
    MT_CHECK_ERR(mt_array_view_as(&v, &a, MT_FLOAT64), MT_ERR_DTYPE, "float64 (8 bytes)");
    MT_CHECK_ERR(mt_array_view_as(&v, &a, MT_DTYPE_COUNT), MT_ERR_DTYPE, "invalid dtype");
    mt_array_clear(&a);
    mt_device_release(dev);
}

