/* Tests of devices, the caching allocator, buffers, arrays, views and copies (gpuarray).
 *
 * Views are checked against independent references: index tables produced by Python/NumPy
 * 1.24 (slicing, contiguity flags; the generator is described above each table) and plain loops
 * that map every element's index to the source index it must come from. Sources hold their own
 * flat index as value (filled from host data, not by the code under test), so a view element's
 * value names the source element it reads. Runs on MLTRAIN_TEST_DEVICE (default host); the
 * cases that inspect raw memory or need host pointers check that themselves. */
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

/* ---------------------------------------------------------------- devices */

MT_TEST(device_list_and_open)
{
    mt_device_info *infos = NULL;
    int32_t n = 0;
    MT_CHECK_OK(mt_device_list(&infos, &n));
    MT_CHECK(n >= 1);
    MT_CHECK_STR_EQ(infos[0].name, "host");
    MT_CHECK(infos[0].global_mem > 0);
    MT_CHECK(infos[0].compute_units >= 1);
    MT_CHECK(infos[0].fp64);
    for (int32_t i = 1; i < n; i++)
        MT_CHECK(strncmp(infos[i].name, "host", 4) != 0);
    mt_free(infos);

    mt_device *a = NULL, *b = NULL;
    MT_CHECK_OK(mt_device_open(&a, "host"));
    MT_CHECK_OK(mt_device_open(&b, "host"));
    MT_CHECK(a == b); /* shared object */
    MT_CHECK_STR_EQ(mt_device_name(a), "host");
    MT_CHECK_STR_EQ(mt_device_get_info(a)->backend, "host");
    MT_CHECK(mt_device_is_host_addressable(a));
    MT_CHECK_OK(mt_device_sync(a));
    mt_device_release(b);
    mt_device_release(a);
    mt_device_release(NULL);
}

MT_TEST(device_open_errors)
{
    mt_device *d = NULL;
    MT_CHECK_ERR(mt_device_open(&d, "nope"), MT_ERR_INVALID,
                 "unknown device 'nope': expected host, opencl:P:D or cuda:N");
    MT_CHECK(d == NULL);
    MT_CHECK_ERR(mt_device_open(&d, "opencl:x"), MT_ERR_INVALID, "'opencl:x'");
    MT_CHECK_ERR(mt_device_open(&d, "opencl:0"), MT_ERR_INVALID, "'opencl:0'");
    MT_CHECK_ERR(mt_device_open(&d, "host:0"), MT_ERR_INVALID, "'host:0'");
    MT_CHECK_ERR(mt_device_open(&d, ""), MT_ERR_INVALID, "unknown device");
#if MT_HAVE_CUDA
    /* built with CUDA: absent unless a GPU and its driver are present (test_cuda.c) */
    mt_status cst = mt_device_open(&d, "cuda:999");
    MT_CHECK(cst == MT_ERR_NOT_FOUND);
    MT_CHECK(strstr(mt_last_error(), "cuda:999") != NULL);
#else
    MT_CHECK_ERR(mt_device_open(&d, "cuda:0"), MT_ERR_NOT_BUILT, "CUDA");
#endif
    MT_CHECK_ERR(mt_device_open(&d, "cuda:"), MT_ERR_INVALID, "'cuda:'");
#if MT_HAVE_OPENCL
    MT_CHECK_ERR(mt_device_open(&d, "opencl:9:9"), MT_ERR_NOT_FOUND, "no device 'opencl:9:9'");
    MT_CHECK_ERR(mt_device_open(&d, "opencl:0:99"), MT_ERR_NOT_FOUND, "devices present");
#else
    MT_CHECK_ERR(mt_device_open(&d, "opencl:9:9"), MT_ERR_NOT_BUILT, "-DMT_WITH_OPENCL=ON");
#endif
    MT_CHECK(d == NULL);
}

/* A device lives as long as a buffer references it, then goes away; reopening starts fresh. */
MT_TEST(device_lifetime)
{
    mt_device *dev = NULL;
    MT_CHECK_OK(mt_device_open(&dev, "host"));
    mt_buffer *b = NULL;
    MT_CHECK_OK(mt_buffer_new(&b, dev, 100));
    MT_CHECK(mt_buffer_device(b) == dev);
    mt_device_release(dev);
    /* still alive through the buffer */
    const char msg[] = "still here";
    MT_CHECK_OK(mt_buffer_write(b, 0, msg, sizeof msg, NULL));
    char back[sizeof msg];
    MT_CHECK_OK(mt_buffer_read(back, b, 0, sizeof msg, NULL));
    MT_CHECK_STR_EQ(back, msg);
    mt_buffer_release(b);
    MT_CHECK_OK(mt_device_open(&dev, "host"));
    mt_mem_stats s;
    mt_device_mem_stats(dev, &s);
    MT_CHECK_EQ_INT(s.allocs, 0);
    MT_CHECK_EQ_INT(s.in_use, 0);
    mt_device_release(dev);
}

static void *open_release_thread(void *arg)
{
    for (int i = 0; i < 200; i++) {
        mt_device *d = NULL;
        if (mt_device_open(&d, "host") != MT_OK) return (void *)1;
        mt_buffer *b = NULL;
        if (mt_buffer_new(&b, d, 64) != MT_OK) return (void *)1;
        mt_device_release(d);
        mt_buffer_release(b);
    }
    return NULL;
}

MT_TEST(device_open_threads)
{
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        MT_CHECK(pthread_create(&th[i], NULL, open_release_thread, NULL) == 0);
    for (int i = 0; i < 4; i++) {
        void *r = NULL;
        pthread_join(th[i], &r);
        MT_CHECK(r == NULL);
    }
}

MT_TEST(streams_and_events)
{
    mt_device *dev = open_dev();
    mt_stream *s = NULL;
    mt_event *e0 = NULL, *e1 = NULL;
    MT_CHECK_OK(mt_stream_new(&s, dev));
    MT_CHECK_OK(mt_event_new(&e0, dev));
    MT_CHECK_OK(mt_event_new(&e1, dev));
    float ms = -1;
    MT_CHECK_ERR(mt_event_elapsed_ms(&ms, e0, e1), MT_ERR_INVALID, "never recorded");
    MT_CHECK_ERR(mt_event_sync(e0), MT_ERR_INVALID, "never recorded");
    MT_CHECK_OK(mt_event_record(e0, s));
    mt_buffer *b = NULL;
    MT_CHECK_OK(mt_buffer_new(&b, dev, 4096));
    char host[4096] = {1};
    MT_CHECK_OK(mt_buffer_write(b, 0, host, sizeof host, s));
    MT_CHECK_OK(mt_event_record(e1, s));
    MT_CHECK_OK(mt_stream_wait_event(NULL, e1));
    MT_CHECK_OK(mt_event_sync(e1));
    MT_CHECK_OK(mt_stream_sync(s));
    MT_CHECK_OK(mt_event_elapsed_ms(&ms, e0, e1));
    MT_CHECK(ms >= 0 && ms < 10000);
    mt_buffer_release(b);
    mt_event_free(e0);
    mt_event_free(e1);
    mt_stream_free(s);
    mt_stream_free(NULL);
    mt_device_release(dev);
}

/* ---------------------------------------------------------------- allocator and buffers */

MT_TEST(allocator_reuse)
{
    mt_device *dev = open_dev();
    mt_device_empty_cache(dev);
    mt_mem_stats s0, s;
    mt_device_mem_stats(dev, &s0);
    MT_CHECK_EQ_INT(s0.cached, 0);

    mt_buffer *a = NULL, *b = NULL, *c = NULL;
    MT_CHECK_OK(mt_buffer_new(&a, dev, 1000));
    MT_CHECK_EQ_INT(mt_buffer_size(a), 1000);
    mt_device_mem_stats(dev, &s);
    MT_CHECK_EQ_INT(s.allocs - s0.allocs, 1);
    MT_CHECK_EQ_INT(s.backend_allocs - s0.backend_allocs, 1);
    MT_CHECK(s.in_use - s0.in_use >= 1000);
    uint64_t block = s.in_use - s0.in_use;
    mt_buffer_release(a);
    mt_device_mem_stats(dev, &s);
    MT_CHECK_EQ_INT(s.in_use, s0.in_use);
    MT_CHECK_EQ_INT(s.cached, block);

    /* a slightly smaller request reuses the cached block */
    MT_CHECK_OK(mt_buffer_new(&b, dev, 900));
    mt_device_mem_stats(dev, &s);
    MT_CHECK_EQ_INT(s.allocs - s0.allocs, 2);
    MT_CHECK_EQ_INT(s.cache_hits - s0.cache_hits, 1);
    MT_CHECK_EQ_INT(s.backend_allocs - s0.backend_allocs, 1);
    MT_CHECK_EQ_INT(s.cached, 0);
    mt_buffer_release(b);

    /* a request far smaller than the cached block must not take it (no 4x waste) */
    MT_CHECK_OK(mt_buffer_new(&c, dev, 100));
    mt_device_mem_stats(dev, &s);
    MT_CHECK_EQ_INT(s.backend_allocs - s0.backend_allocs, 2);
    MT_CHECK_EQ_INT(s.cache_hits - s0.cache_hits, 1);
    MT_CHECK_EQ_INT(s.cached, block);
    /* a larger one cannot use it either */
    MT_CHECK_OK(mt_buffer_new(&a, dev, 5000));
    mt_device_mem_stats(dev, &s);
    MT_CHECK_EQ_INT(s.backend_allocs - s0.backend_allocs, 3);
    mt_buffer_release(a);
    mt_buffer_release(c);

    mt_device_empty_cache(dev);
    mt_device_mem_stats(dev, &s);
    MT_CHECK_EQ_INT(s.cached, 0);
    MT_CHECK_EQ_INT(s.in_use, s0.in_use);
    mt_device_release(dev);
}

MT_TEST(allocator_peak)
{
    mt_device *dev = open_dev();
    mt_device_mem_reset_peak(dev);
    uint64_t base = in_use(dev);
    mt_buffer *b[3] = {NULL, NULL, NULL};
    MT_CHECK_OK(mt_buffer_new(&b[0], dev, 1 << 20));
    MT_CHECK_OK(mt_buffer_new(&b[1], dev, 2 << 20));
    MT_CHECK_OK(mt_buffer_new(&b[2], dev, 1 << 10));
    mt_mem_stats s;
    mt_device_mem_stats(dev, &s);
    uint64_t high = s.in_use;
    MT_CHECK(high - base >= (3u << 20) + 1024);
    MT_CHECK_EQ_INT(s.peak, high);
    mt_buffer_release(b[1]);
    mt_device_mem_stats(dev, &s);
    MT_CHECK_EQ_INT(s.peak, high);
    MT_CHECK(s.in_use < high);
    mt_device_mem_reset_peak(dev);
    mt_device_mem_stats(dev, &s);
    MT_CHECK_EQ_INT(s.peak, s.in_use);
    mt_buffer_release(b[0]);
    mt_buffer_release(b[2]);
    MT_CHECK_EQ_INT(in_use(dev), base);
    mt_device_release(dev);
}

MT_TEST(allocator_nomem_message)
{
    mt_device *dev = open_dev();
    mt_buffer *b = NULL;
    MT_CHECK_ERR(mt_buffer_new(&b, dev, (size_t)1 << 62), MT_ERR_NOMEM, "cannot allocate");
    MT_CHECK(strstr(mt_last_error(), mt_device_name(dev)) != NULL);
    MT_CHECK(strstr(mt_last_error(), "4.0 EiB") != NULL);
    MT_CHECK(b == NULL);
    mt_device_release(dev);
}

MT_TEST(buffer_io_and_bounds)
{
    mt_device *dev = open_dev();
    mt_buffer *a = NULL, *z = NULL;
    MT_CHECK_OK(mt_buffer_new(&a, dev, 64));
    MT_CHECK_OK(mt_buffer_new(&z, dev, 0)); /* empty buffers are valid */
    MT_CHECK_EQ_INT(mt_buffer_size(z), 0);
    MT_CHECK_OK(mt_buffer_write(z, 0, "", 0, NULL));
    unsigned char src[64], back[64];
    for (int i = 0; i < 64; i++)
        src[i] = (unsigned char)(i * 3);
    MT_CHECK_OK(mt_buffer_write(a, 0, src, 64, NULL));
    /* overlapping copy inside one buffer behaves like memmove */
    MT_CHECK_OK(mt_buffer_copy(a, 8, a, 0, 32, NULL));
    MT_CHECK_OK(mt_buffer_read(back, a, 0, 64, NULL));
    for (int i = 0; i < 64; i++) {
        unsigned char want = i >= 8 && i < 40 ? src[i - 8] : src[i];
        MT_CHECK_EQ_INT(back[i], want);
    }
    MT_CHECK_ERR(mt_buffer_write(a, 60, src, 8, NULL), MT_ERR_RANGE, "outside the 64-byte buffer");
    MT_CHECK_ERR(mt_buffer_read(back, a, 65, 0, NULL), MT_ERR_RANGE, "outside");
    MT_CHECK_ERR(mt_buffer_read(back, a, 1, SIZE_MAX, NULL), MT_ERR_RANGE, "outside");
    MT_CHECK_ERR(mt_buffer_copy(a, 0, z, 0, 1, NULL), MT_ERR_RANGE, "source");
    MT_CHECK_ERR(mt_buffer_copy(z, 0, a, 0, 1, NULL), MT_ERR_RANGE, "destination");
    mt_buffer_retain(a);
    mt_buffer_release(a);
    MT_CHECK_OK(mt_buffer_read(back, a, 0, 1, NULL)); /* still alive: one reference left */
    mt_buffer_release(a);
    mt_buffer_release(z);
    mt_buffer_release(NULL);
    mt_device_release(dev);
}

/* ---------------------------------------------------------------- creation and shapes */

MT_TEST(create_and_bad_shapes)
{
    mt_device *dev = open_dev();
    mt_array a = {0};
    int64_t d23[2] = {2, 3};
    MT_CHECK_OK(mt_array_empty(&a, dev, MT_FLOAT32, 2, d23, 'C'));
    MT_CHECK_EQ_INT(a.strides[0], 12);
    MT_CHECK_EQ_INT(a.strides[1], 4);
    MT_CHECK_EQ_INT(mt_array_size(&a), 6);
    MT_CHECK_EQ_INT(mt_array_nbytes(&a), 24);
    MT_CHECK_EQ_INT(mt_array_itemsize(&a), 4);
    MT_CHECK(mt_array_device(&a) == dev);
    MT_CHECK(a.flags & MT_ARRAY_WRITEABLE);
    MT_CHECK(a.flags & MT_ARRAY_ALIGNED);
    MT_CHECK(a.flags & MT_ARRAY_C_CONTIGUOUS);
    MT_CHECK(!(a.flags & MT_ARRAY_F_CONTIGUOUS));
    char d[128];
    char want[128];
    snprintf(want, sizeof want, "float32[2,3] strides(12,4) %s", mt_device_name(dev));
    MT_CHECK_STR_EQ(mt_array_describe(&a, d, sizeof d), want);
    mt_array_clear(&a);
    MT_CHECK_OK(mt_array_empty(&a, dev, MT_INT16, 2, d23, 'F'));
    MT_CHECK_EQ_INT(a.strides[0], 2);
    MT_CHECK_EQ_INT(a.strides[1], 4);
    MT_CHECK(mt_array_is_f_contiguous(&a) && !mt_array_is_c_contiguous(&a));
    mt_array_clear(&a);
    mt_array_clear(&a); /* clearing twice is fine */
    mt_array_clear(NULL);

    /* 0-d and size-0 arrays */
    MT_CHECK_OK(mt_array_zeros(&a, dev, MT_FLOAT64, 0, NULL));
    MT_CHECK_EQ_INT(mt_array_size(&a), 1);
    double v = 7;
    MT_CHECK_OK(mt_array_to_host(&v, sizeof v, &a));
    MT_CHECK(v == 0);
    mt_array_clear(&a);
    int64_t d0[3] = {4, 0, 5};
    MT_CHECK_OK(mt_array_empty(&a, dev, MT_UINT8, 3, d0, 'C'));
    MT_CHECK_EQ_INT(mt_array_size(&a), 0);
    MT_CHECK(mt_array_is_c_contiguous(&a) && mt_array_is_f_contiguous(&a));
    MT_CHECK_OK(mt_array_to_host(NULL, 0, &a));
    mt_array_clear(&a);

    int64_t neg[2] = {2, -1};
    MT_CHECK_ERR(mt_array_empty(&a, dev, MT_FLOAT32, 2, neg, 'C'), MT_ERR_SHAPE,
                 "negative dimension -1 in shape (2, -1)");
    int64_t nine[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    MT_CHECK_ERR(mt_array_empty(&a, dev, MT_FLOAT32, 9, nine, 'C'), MT_ERR_INVALID, "ndim 9");
    MT_CHECK_ERR(mt_array_empty(&a, dev, MT_FLOAT32, -1, nine, 'C'), MT_ERR_INVALID, "ndim -1");
    int64_t huge[3] = {1 << 30, 1 << 30, 4}; /* 2^62 elements, 2^64 bytes */
    MT_CHECK_ERR(mt_array_empty(&a, dev, MT_FLOAT32, 3, huge, 'C'), MT_ERR_RANGE, "2^63 bytes");
    int64_t huge2[3] = {INT64_MAX / 2, 4, 1};
    MT_CHECK_ERR(mt_array_empty(&a, dev, MT_FLOAT32, 3, huge2, 'C'), MT_ERR_RANGE,
                 "too many elements");
    MT_CHECK_ERR(mt_array_empty(&a, dev, MT_DTYPE_COUNT, 2, d23, 'C'), MT_ERR_DTYPE, "dtype");
    MT_CHECK_ERR(mt_array_empty(&a, dev, MT_FLOAT32, 2, d23, 'X'), MT_ERR_INVALID, "order");
    MT_CHECK(a.buf == NULL);
    mt_device_release(dev);
}

MT_TEST(from_to_host)
{
    mt_device *dev = open_dev();
    int32_t h[6] = {1, -2, 3, -4, 5, -6}, back[6] = {0};
    int64_t d23[2] = {2, 3};
    mt_array a;
    MT_CHECK_OK(mt_array_from_host(&a, dev, MT_INT32, 2, d23, h));
    MT_CHECK_OK(mt_array_to_host(back, sizeof back, &a));
    MT_CHECK(memcmp(h, back, sizeof h) == 0);
    MT_CHECK_ERR(mt_array_to_host(back, sizeof back - 4, &a), MT_ERR_INVALID,
                 "destination holds 20 bytes");
    MT_CHECK_ERR(mt_array_to_host(back, sizeof back + 4, &a), MT_ERR_INVALID, "needs 24");
    mt_array e = {0};
    MT_CHECK_ERR(mt_array_to_host(back, 4, &e), MT_ERR_INVALID, "empty");
    /* strided source: to_host gathers in C order */
    mt_array t;
    MT_CHECK_OK(mt_array_transpose(&t, &a, NULL));
    MT_CHECK_OK(mt_array_to_host(back, sizeof back, &t));
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 2; j++)
            MT_CHECK_EQ_INT(back[i * 2 + j], h[j * 3 + i]);
    mt_array_clear(&t);
    mt_array_clear(&a);
    mt_device_release(dev);
}

MT_TEST(shape_strings_and_broadcast_shapes)
{
    char b[64];
    int64_t d[3] = {2, 3, 4};
    MT_CHECK_STR_EQ(mt_shape_str(2, d, b, sizeof b), "(2, 3)");
    MT_CHECK_STR_EQ(mt_shape_str(1, d, b, sizeof b), "(2,)");
    MT_CHECK_STR_EQ(mt_shape_str(0, d, b, sizeof b), "()");
    char small[5];
    mt_shape_str(3, d, small, sizeof small); /* truncates without overflowing */
    MT_CHECK(strlen(small) == 4);

    int32_t nd;
    int64_t out[MT_MAX_DIMS];
    int64_t a1[3] = {8, 1, 6}, b1[2] = {7, 1};
    MT_CHECK_OK(mt_broadcast_shapes(&nd, out, 3, a1, 2, b1));
    MT_CHECK_EQ_INT(nd, 3);
    MT_CHECK(out[0] == 8 && out[1] == 7 && out[2] == 6);
    int64_t a2[2] = {0, 1}, b2[1] = {5};
    MT_CHECK_OK(mt_broadcast_shapes(&nd, out, 2, a2, 1, b2));
    MT_CHECK(nd == 2 && out[0] == 0 && out[1] == 5);
    MT_CHECK_OK(mt_broadcast_shapes(&nd, out, 0, NULL, 1, b2));
    MT_CHECK(nd == 1 && out[0] == 5);
    int64_t a3[2] = {2, 3}, b3[1] = {4};
    MT_CHECK_ERR(mt_broadcast_shapes(&nd, out, 2, a3, 1, b3), MT_ERR_SHAPE,
                 "shapes (2, 3) and (4,) cannot be broadcast together");
}

/* Contiguity flags against NumPy 1.24 (flags of np.lib.stride_tricks.as_strided views of
 * float64 data with these dims and byte strides). */
typedef struct flags_case {
    int32_t nd;
    int64_t dims[3], strides[3];
    int c, f;
} flags_case;
/* clang-format off */
static const flags_case k_flags[] = {
    {2, {2, 3}, {24, 8}, 1, 0},
    {2, {3, 2}, {8, 24}, 0, 1},
    {2, {1, 5}, {999, 8}, 1, 1},
    {2, {5, 1}, {8, 999}, 1, 1},
    {2, {0, 3}, {7, 5}, 1, 1},
    {1, {5}, {8}, 1, 1},
    {1, {5}, {16}, 0, 0},
    {0, {0}, {0}, 1, 1},
    {3, {2, 1, 3}, {24, 0, 8}, 1, 0},
    {2, {2, 3}, {8, 16}, 0, 1},
    {2, {1, 1}, {3, 5}, 1, 1},
    {3, {3, 0, 2}, {1, 2, 3}, 1, 1},
    {2, {2, 2}, {0, 8}, 0, 0},
    {1, {4}, {-8}, 0, 0},
    {3, {2, 3, 4}, {96, 32, 8}, 1, 0},
    {3, {2, 3, 4}, {8, 16, 48}, 0, 1},
};
/* clang-format on */

MT_TEST(contiguity_flags)
{
    mt_device *dev = open_dev();
    int64_t n = 1000;
    mt_array base;
    make_iota(&base, dev, 1, &n);
    for (size_t k = 0; k < sizeof k_flags / sizeof k_flags[0]; k++) {
        const flags_case *fc = &k_flags[k];
        mt_array v = base; /* borrowed view with hand-made strides (no reference taken) */
        v.offset = 500 * 8;
        v.ndim = fc->nd;
        for (int32_t i = 0; i < fc->nd; i++) {
            v.dims[i] = fc->dims[i];
            v.strides[i] = fc->strides[i];
        }
        mt_array_update_flags(&v);
        if (mt_array_is_c_contiguous(&v) != (fc->c != 0) ||
            mt_array_is_f_contiguous(&v) != (fc->f != 0) ||
            !!(v.flags & MT_ARRAY_C_CONTIGUOUS) != (fc->c != 0) ||
            !!(v.flags & MT_ARRAY_F_CONTIGUOUS) != (fc->f != 0))
            mt_test_fail(__FILE__, __LINE__, "case %zu: C %d F %d, NumPy says C %d F %d", k,
                         mt_array_is_c_contiguous(&v), mt_array_is_f_contiguous(&v), fc->c, fc->f);
        MT_CHECK(v.flags & MT_ARRAY_WRITEABLE); /* kept by update_flags */
    }
    /* misaligned offset clears ALIGNED */
    mt_array v = base;
    v.offset = 3;
    mt_array_update_flags(&v);
    MT_CHECK(!(v.flags & MT_ARRAY_ALIGNED));
    mt_array_clear(&base);
    mt_device_release(dev);
}

/* ---------------------------------------------------------------- copies */

static const mt_dtype k_all_dtypes[MT_DTYPE_COUNT] = {
    MT_BOOL,   MT_INT8,   MT_INT16,   MT_INT32,    MT_INT64,   MT_UINT8,  MT_UINT16,
    MT_UINT32, MT_UINT64, MT_FLOAT16, MT_BFLOAT16, MT_FLOAT32, MT_FLOAT64};

MT_TEST(copy_broadcast_convert_all_dtypes)
{
    /* src (3, 1) of values 0..2 broadcast into dst (2, 3, 4): dst[i, j, k] = j, for every
     * (src, dst) dtype pair; small integers are exact in every dtype (bool: j != 0) */
    mt_device *dev = open_dev();
    int64_t sd[2] = {3, 1}, dd[3] = {2, 3, 4};
    for (int si = 0; si < MT_DTYPE_COUNT; si++) {
        mt_array f, src;
        make_iota(&f, dev, 2, sd);
        MT_CHECK_OK(mt_array_astype(&src, &f, k_all_dtypes[si]));
        mt_array_clear(&f);
        for (int di = 0; di < MT_DTYPE_COUNT; di++) {
            mt_array dst;
            MT_CHECK_OK(mt_array_empty(&dst, dev, k_all_dtypes[di], 3, dd, di % 2 ? 'F' : 'C'));
            MT_CHECK_OK(mt_array_copy(&dst, &src));
            double *got = read_f64(&dst);
            int64_t idx[3] = {0, 0, 0};
            for (int k = 0; k < 24; k++) {
                double want = (double)idx[1];
                if (k_all_dtypes[si] == MT_BOOL || k_all_dtypes[di] == MT_BOOL) want = want != 0;
                if (got[k] != want)
                    mt_test_fail(__FILE__, __LINE__, "%s -> %s: element %d is %g, expected %g",
                                 mt_dtype_name(k_all_dtypes[si]), mt_dtype_name(k_all_dtypes[di]),
                                 k, got[k], want);
                next_index(idx, 3, dd);
            }
            free(got);
            mt_array_clear(&dst);
        }
        mt_array_clear(&src);
    }
    mt_device_release(dev);
}

MT_TEST(copy_conversion_values)
{
    /* float -> int truncates toward zero; int -> narrower int wraps; -> bool is x != 0 */
    mt_device *dev = open_dev();
    const double fv[6] = {-2.75, 2.75, -0.5, 300.0, 65537.0, 0.0};
    int64_t d6 = 6;
    mt_array f, i8, i32, u8, b;
    MT_CHECK_OK(mt_array_from_host(&f, dev, MT_FLOAT64, 1, &d6, fv));
    MT_CHECK_OK(mt_array_astype(&i32, &f, MT_INT32));
    int32_t gi[6];
    MT_CHECK_OK(mt_array_to_host(gi, sizeof gi, &i32));
    const int32_t wi[6] = {-2, 2, 0, 300, 65537, 0};
    for (int k = 0; k < 6; k++)
        MT_CHECK_EQ_INT(gi[k], wi[k]);
    MT_CHECK_OK(mt_array_astype(&i8, &i32, MT_INT8));
    int8_t g8[6];
    MT_CHECK_OK(mt_array_to_host(g8, sizeof g8, &i8));
    for (int k = 0; k < 6; k++)
        MT_CHECK_EQ_INT(g8[k], (int8_t)(uint8_t)(wi[k] & 0xff));
    MT_CHECK_OK(mt_array_astype(&u8, &i32, MT_UINT8));
    uint8_t gu[6];
    MT_CHECK_OK(mt_array_to_host(gu, sizeof gu, &u8));
    for (int k = 0; k < 6; k++)
        MT_CHECK_EQ_INT(gu[k], (uint8_t)(wi[k] & 0xff));
    MT_CHECK_OK(mt_array_astype(&b, &f, MT_BOOL));
    uint8_t gb[6];
    MT_CHECK_OK(mt_array_to_host(gb, sizeof gb, &b));
    for (int k = 0; k < 6; k++)
        MT_CHECK_EQ_INT(gb[k], fv[k] != 0.0);
    /* astype always copies, even to the same dtype */
    mt_array c;
    MT_CHECK_OK(mt_array_astype(&c, &f, MT_FLOAT64));
    MT_CHECK(c.buf != f.buf);
    mt_array_clear(&c);
    mt_array_clear(&f);
    mt_array_clear(&i8);
    mt_array_clear(&i32);
    mt_array_clear(&u8);
    mt_array_clear(&b);
    mt_device_release(dev);
}

MT_TEST(copy_errors_and_contiguous)
{
    mt_device *dev = open_dev();
    int64_t d23[2] = {2, 3}, d32[2] = {3, 2};
    mt_array a, b, c, e = {0};
    make_iota(&a, dev, 2, d23);
    MT_CHECK_OK(mt_array_empty(&b, dev, MT_FLOAT32, 2, d32, 'C'));
    MT_CHECK_ERR(mt_array_copy(&b, &a), MT_ERR_SHAPE,
                 "source of shape (2, 3) cannot be broadcast to the destination shape (3, 2)");
    MT_CHECK_ERR(mt_array_copy(&b, &e), MT_ERR_INVALID, "source array is empty");
    MT_CHECK_ERR(mt_array_copy(&e, &a), MT_ERR_INVALID, "destination array is empty");
    /* contiguous: a view when already C-contiguous, else a C-contiguous copy */
    MT_CHECK_OK(mt_array_contiguous(&c, &a));
    MT_CHECK(c.buf == a.buf);
    mt_array_clear(&c);
    mt_array t;
    MT_CHECK_OK(mt_array_transpose(&t, &a, NULL));
    MT_CHECK_OK(mt_array_contiguous(&c, &t));
    MT_CHECK(c.buf != a.buf && mt_array_is_c_contiguous(&c));
    perm_ctx p = {{1, 0}, 2, d23};
    check_map(&c, map_perm, &p);
    mt_array_clear(&c);
    MT_CHECK_OK(mt_array_copy_to(&c, &t, NULL));
    MT_CHECK(c.buf != a.buf);
    check_map(&c, map_perm, &p);
    mt_array_clear(&c);
    mt_array_clear(&t);
    mt_array_clear(&a);
    mt_array_clear(&b);
    mt_device_release(dev);
}

MT_TEST(copy_large_strided)
{
    /* big enough for the threaded path: a transposed (512, 1024) float32 gathered in C order */
    mt_device *dev = open_dev();
    int64_t d[2] = {512, 1024};
    mt_array a, f, t, c;
    make_iota(&f, dev, 2, d);
    MT_CHECK_OK(mt_array_astype(&a, &f, MT_FLOAT32));
    mt_array_clear(&f);
    MT_CHECK_OK(mt_array_transpose(&t, &a, NULL));
    MT_CHECK_OK(mt_array_contiguous(&c, &t));
    float *h = malloc(512 * 1024 * sizeof *h);
    MT_CHECK_OK(mt_array_to_host(h, 512 * 1024 * sizeof *h, &c));
    for (int64_t i = 0; i < 1024; i++)
        for (int64_t j = 0; j < 512; j++)
            if (h[i * 512 + j] != (float)(j * 1024 + i))
                mt_test_fail(__FILE__, __LINE__, "element (%lld, %lld) is %g", (long long)i,
                             (long long)j, h[i * 512 + j]);
    free(h);
    mt_array_clear(&c);
    mt_array_clear(&t);
    mt_array_clear(&a);

    /* tiled transposes with ragged edges, an outer axis, a negative stride and a conversion:
     * (3, 70, 45) int16 -> [:, ::-1, :] -> transpose (0, 2, 1) -> float64 (3, 45, 70) */
    int64_t d3[3] = {3, 70, 45};
    make_iota(&f, dev, 3, d3);
    MT_CHECK_OK(mt_array_astype(&a, &f, MT_INT16));
    mt_array_clear(&f);
    mt_slice s[2] = {mt_slice_all(), mt_slice_range(U, U, -1)};
    mt_array r;
    MT_CHECK_OK(mt_array_slice(&r, &a, 2, s));
    const int32_t perm[3] = {0, 2, 1};
    MT_CHECK_OK(mt_array_transpose(&t, &r, perm));
    MT_CHECK_OK(mt_array_astype(&c, &t, MT_FLOAT64));
    double *g = read_f64(&c);
    for (int64_t i = 0; i < 3; i++)
        for (int64_t j = 0; j < 45; j++)
            for (int64_t k = 0; k < 70; k++) {
                double want = (double)(int16_t)(i * 70 * 45 + (69 - k) * 45 + j);
                if (g[(i * 45 + j) * 70 + k] != want)
                    mt_test_fail(__FILE__, __LINE__, "element (%lld, %lld, %lld) is %g, not %g",
                                 (long long)i, (long long)j, (long long)k, g[(i * 45 + j) * 70 + k],
                                 want);
            }
    free(g);
    mt_array_clear(&c);
    mt_array_clear(&t);
    mt_array_clear(&r);
    mt_array_clear(&a);
    mt_device_release(dev);
}

/* Copies between overlapping views of one buffer give NumPy's result (source read first). */
MT_TEST(copy_overlapping_views)
{
    mt_device *dev = open_dev();
    int64_t n = 10;
    mt_array a, dst, src;
    double got[10];

    /* a[1:] = a[:-1] */
    make_iota(&a, dev, 1, &n);
    mt_slice sd = mt_slice_range(1, U, U), ss = mt_slice_range(U, -1, U);
    MT_CHECK_OK(mt_array_slice(&dst, &a, 1, &sd));
    MT_CHECK_OK(mt_array_slice(&src, &a, 1, &ss));
    MT_CHECK_OK(mt_array_copy(&dst, &src));
    MT_CHECK_OK(mt_array_to_host(got, sizeof got, &a));
    for (int i = 0; i < 10; i++)
        MT_CHECK(got[i] == (i == 0 ? 0.0 : (double)(i - 1)));
    mt_array_clear(&dst);
    mt_array_clear(&src);
    mt_array_clear(&a);

    /* a[:-1] = a[1:] */
    make_iota(&a, dev, 1, &n);
    MT_CHECK_OK(mt_array_slice(&dst, &a, 1, &ss));
    MT_CHECK_OK(mt_array_slice(&src, &a, 1, &sd));
    MT_CHECK_OK(mt_array_copy(&dst, &src));
    MT_CHECK_OK(mt_array_to_host(got, sizeof got, &a));
    for (int i = 0; i < 10; i++)
        MT_CHECK(got[i] == (i == 9 ? 9.0 : (double)(i + 1)));
    mt_array_clear(&dst);
    mt_array_clear(&src);
    mt_array_clear(&a);

    /* a[:] = a[::-1] */
    make_iota(&a, dev, 1, &n);
    mt_slice rev = mt_slice_range(U, U, -1);
    MT_CHECK_OK(mt_array_slice(&src, &a, 1, &rev));
    MT_CHECK_OK(mt_array_copy(&a, &src));
    MT_CHECK_OK(mt_array_to_host(got, sizeof got, &a));
    for (int i = 0; i < 10; i++)
        MT_CHECK(got[i] == (double)(9 - i));
    mt_array_clear(&src);
    mt_array_clear(&a);

    /* m[...] = m.T for a square matrix */
    int64_t d44[2] = {4, 4};
    make_iota(&a, dev, 2, d44);
    MT_CHECK_OK(mt_array_transpose(&src, &a, NULL));
    MT_CHECK_OK(mt_array_copy(&a, &src));
    double m[16];
    MT_CHECK_OK(mt_array_to_host(m, sizeof m, &a));
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++)
            MT_CHECK(m[i * 4 + j] == (double)(j * 4 + i));
    mt_array_clear(&src);

    /* a[0, :] = a[:, 0] broadcast from a column (element [0, 0] is shared) */
    mt_slice row[2] = {mt_slice_index(0), mt_slice_all()};
    mt_slice col[2] = {mt_slice_all(), mt_slice_index(0)};
    MT_CHECK_OK(mt_array_slice(&dst, &a, 2, row));
    MT_CHECK_OK(mt_array_slice(&src, &a, 2, col));
    double before[16];
    memcpy(before, m, sizeof m);
    MT_CHECK_OK(mt_array_copy(&dst, &src));
    MT_CHECK_OK(mt_array_to_host(m, sizeof m, &a));
    for (int j = 0; j < 4; j++)
        MT_CHECK(m[j] == before[j * 4]);
    for (int k = 4; k < 16; k++)
        MT_CHECK(m[k] == before[k]);
    mt_array_clear(&dst);
    mt_array_clear(&src);
    mt_array_clear(&a);
    mt_device_release(dev);
}

/* ---------------------------------------------------------------- fill */

MT_TEST(fill_every_dtype)
{
    mt_device *dev = open_dev();
    int64_t d[2] = {3, 8};
    for (int di = 0; di < MT_DTYPE_COUNT; di++) {
        mt_dtype dt = k_all_dtypes[di];
        mt_array a, v;
        MT_CHECK_OK(mt_array_zeros(&a, dev, dt, 2, d));
        double *g = read_f64(&a);
        for (int k = 0; k < 24; k++)
            MT_CHECK(g[k] == 0.0);
        free(g);
        /* every other column of rows 0 and 2 (a strided view) */
        mt_slice s[2] = {mt_slice_range(U, U, 2), mt_slice_range(1, U, 2)};
        MT_CHECK_OK(mt_array_slice(&v, &a, 2, s));
        MT_CHECK_OK(mt_array_fill(&v, mt_scalar_i64(3)));
        double want3 = dt == MT_BOOL ? 1.0 : 3.0;
        g = read_f64(&a);
        for (int r = 0; r < 3; r++)
            for (int c = 0; c < 8; c++) {
                double want = (r % 2 == 0 && c % 2 == 1) ? want3 : 0.0;
                if (g[r * 8 + c] != want)
                    mt_test_fail(__FILE__, __LINE__, "%s: [%d, %d] is %g, expected %g",
                                 mt_dtype_name(dt), r, c, g[r * 8 + c], want);
            }
        free(g);
        mt_array_clear(&v);
        /* whole array, from a float scalar (converted to the dtype) */
        MT_CHECK_OK(mt_array_fill(&a, mt_scalar_f64(mt_dtype_is_float(dt) ? 0.5 : 7.9)));
        double want = mt_dtype_is_float(dt) ? 0.5 : dt == MT_BOOL ? 1.0 : 7.0;
        g = read_f64(&a);
        for (int k = 0; k < 24; k++)
            MT_CHECK(g[k] == want);
        free(g);
        mt_array_clear(&a);
    }
    /* -0.0 keeps its sign bit (not the zero fast path) */
    int64_t d4 = 4;
    mt_array a;
    MT_CHECK_OK(mt_array_empty(&a, dev, MT_FLOAT32, 1, &d4, 'C'));
    MT_CHECK_OK(mt_array_fill(&a, mt_scalar_f64(-0.0)));
    float f[4];
    MT_CHECK_OK(mt_array_to_host(f, sizeof f, &a));
    for (int k = 0; k < 4; k++)
        MT_CHECK(f[k] == 0.0f && signbit(f[k]));
    mt_array_clear(&a);
    mt_device_release(dev);
}

/* ---------------------------------------------------------------- arange */

/* NumPy's arange, written out: length ceil((stop - start) / step); for float64 element i >= 2
 * is start + i * ((start + step) - start) (NumPy's fill uses the difference of the first two
 * stored values). */
static void check_arange_f64(mt_device *dev, double start, double stop, double step)
{
    mt_array a;
    MT_CHECK_OK(mt_array_arange(&a, dev, MT_FLOAT64, start, stop, step));
    double lenf = ceil((stop - start) / step);
    int64_t n = lenf > 0 ? (int64_t)lenf : 0;
    MT_CHECK(a.ndim == 1 && a.dims[0] == n);
    double *g = read_f64(&a);
    double delta = (start + step) - start;
    for (int64_t i = 0; i < n; i++) {
        double want = i == 0 ? start : i == 1 ? start + step : start + (double)i * delta;
        if (g[i] != want)
            mt_test_fail(__FILE__, __LINE__, "arange(%g, %g, %g)[%lld] = %.17g, expected %.17g",
                         start, stop, step, (long long)i, g[i], want);
    }
    free(g);
    mt_array_clear(&a);
}

MT_TEST(arange_numpy)
{
    mt_device *dev = open_dev();
    check_arange_f64(dev, 0, 10, 1);
    check_arange_f64(dev, 0.1, 1, 0.3);
    check_arange_f64(dev, 5, -5, -3);
    check_arange_f64(dev, 1, 1, 1);
    check_arange_f64(dev, 5, 1, 1); /* empty */
    check_arange_f64(dev, -1.5, 2.25, 0.125);

    /* integers: exact int64 formula start + i * step */
    mt_array a;
    MT_CHECK_OK(mt_array_arange(&a, dev, MT_INT64, 3e15, 3e15 + 70, 7));
    int64_t gi[10];
    MT_CHECK(a.dims[0] == 10);
    MT_CHECK_OK(mt_array_to_host(gi, sizeof gi, &a));
    for (int i = 0; i < 10; i++)
        MT_CHECK(gi[i] == (int64_t)3e15 + 7 * i);
    mt_array_clear(&a);
    MT_CHECK_OK(mt_array_arange(&a, dev, MT_INT32, 10, -10, -4)); /* 10, 6, 2, -2, -6 */
    int32_t g32[5];
    MT_CHECK(a.dims[0] == 5);
    MT_CHECK_OK(mt_array_to_host(g32, sizeof g32, &a));
    for (int i = 0; i < 5; i++)
        MT_CHECK_EQ_INT(g32[i], 10 - 4 * i);
    mt_array_clear(&a);
    MT_CHECK_OK(mt_array_arange(&a, dev, MT_UINT8, 250, 260, 1)); /* wraps like NumPy's fill */
    uint8_t g8[10];
    MT_CHECK_OK(mt_array_to_host(g8, sizeof g8, &a));
    for (int i = 0; i < 10; i++)
        MT_CHECK_EQ_INT(g8[i], (uint8_t)(250 + i));
    mt_array_clear(&a);

    /* values NumPy 1.24 prints for these (np.arange(...)) */
    MT_CHECK_OK(mt_array_arange(&a, dev, MT_INT64, 0.5, 5, 1.5));
    MT_CHECK_OK(mt_array_to_host(gi, 3 * sizeof gi[0], &a));
    MT_CHECK(gi[0] == 0 && gi[1] == 2 && gi[2] == 4);
    mt_array_clear(&a);
    MT_CHECK_OK(mt_array_arange(&a, dev, MT_INT32, -0.5, 5, 1.7));
    MT_CHECK_OK(mt_array_to_host(g32, 4 * sizeof g32[0], &a));
    for (int i = 0; i < 4; i++)
        MT_CHECK_EQ_INT(g32[i], i);
    mt_array_clear(&a);
    MT_CHECK_OK(mt_array_arange(&a, dev, MT_FLOAT32, 0.1, 1, 0.3));
    float gf[3];
    MT_CHECK_OK(mt_array_to_host(gf, sizeof gf, &a));
    MT_CHECK(gf[0] == 0.1f && gf[1] == 0.4f && gf[2] == 0.70000005f);
    mt_array_clear(&a);
    MT_CHECK_OK(mt_array_arange(&a, dev, MT_FLOAT16, 1, 0.2, -0.3));
    MT_CHECK(a.dims[0] == 3);
    double *g = read_f64(&a);
    MT_CHECK(g[0] == 1.0 && g[1] == 0.7001953125 && g[2] == 0.400390625);
    free(g);
    mt_array_clear(&a);
    MT_CHECK_OK(mt_array_arange(&a, dev, MT_BOOL, 0, 2, 1));
    uint8_t gb[2];
    MT_CHECK_OK(mt_array_to_host(gb, sizeof gb, &a));
    MT_CHECK(gb[0] == 0 && gb[1] == 1);
    mt_array_clear(&a);

    MT_CHECK_ERR(mt_array_arange(&a, dev, MT_FLOAT32, 0, 1, 0), MT_ERR_INVALID, "step");
    MT_CHECK_ERR(mt_array_arange(&a, dev, MT_FLOAT32, 0, INFINITY, 1), MT_ERR_INVALID, "finite");
    MT_CHECK_ERR(mt_array_arange(&a, dev, MT_BOOL, 0, 3, 1), MT_ERR_DTYPE, "bool");
    MT_CHECK_ERR(mt_array_arange(&a, dev, MT_FLOAT32, 0, 1e300, 1), MT_ERR_RANGE, "too many");
    mt_device_release(dev);
}

/* ---------------------------------------------------------------- devices together */

/* host <-> OpenCL copies (contiguous and strided, with conversion) staged through the host. */
MT_TEST(copy_between_devices)
{
    mt_device *host = NULL, *cl = NULL;
    MT_CHECK_OK(mt_device_open(&host, "host"));
    mt_status st = mt_device_open(&cl, "opencl");
    if (st != MT_OK) {
        mt_device_release(host);
        MT_SKIP("no OpenCL device");
    }
    int64_t d[2] = {3, 4};
    mt_array a, b, c, t;
    make_iota(&a, host, 2, d);
    MT_CHECK_OK(mt_array_copy_to(&b, &a, cl)); /* contiguous upload */
    MT_CHECK(mt_array_device(&b) == cl);
    MT_CHECK(!mt_device_is_host_addressable(cl) || mt_buffer_host_ptr(b.buf));
    check_map(&b, map_identity_flat, &b);
    /* a strided OpenCL view read back (its byte span is read and gathered on the host) */
    mt_array bt;
    MT_CHECK_OK(mt_array_transpose(&bt, &b, NULL));
    perm_ctx pt = {{1, 0}, 2, d};
    check_map(&bt, map_perm, &pt);
    mt_array_clear(&bt);
    /* OpenCL contiguous -> host strided destination with conversion */
    MT_CHECK_OK(mt_array_empty(&c, host, MT_INT32, 2, d, 'F'));
    MT_CHECK_OK(mt_array_copy(&c, &b));
    check_map(&c, map_identity_flat, &c);
    mt_array_clear(&c);
    /* host strided source -> OpenCL contiguous destination with conversion */
    MT_CHECK_OK(mt_array_transpose(&t, &a, NULL));
    int64_t dt[2] = {4, 3};
    MT_CHECK_OK(mt_array_empty(&c, cl, MT_FLOAT32, 2, dt, 'C'));
    MT_CHECK_OK(mt_array_copy(&c, &t));
    perm_ctx p = {{1, 0}, 2, d};
    check_map(&c, map_perm, &p);
    mt_array_clear(&c);
    mt_array_clear(&t);
    /* raw buffer copy between devices */
    mt_buffer *hb = NULL;
    MT_CHECK_OK(mt_buffer_new(&hb, host, 96));
    MT_CHECK_OK(mt_buffer_copy(hb, 0, b.buf, 0, 96, NULL));
    MT_CHECK(memcmp(mt_buffer_host_ptr(hb), mt_buffer_host_ptr(a.buf), 96) == 0);
    mt_buffer_release(hb);
    mt_array_clear(&a);
    mt_array_clear(&b);
    mt_device_release(cl);
    mt_device_release(host);
}

/* ---------------------------------------------------------------- leaks */

MT_TEST(no_leaks_after_many_views)
{
    mt_device *dev = open_dev();
    uint64_t base = in_use(dev);
    mt_mem_stats s0;
    mt_device_mem_stats(dev, &s0);
    for (int round = 0; round < 50; round++) {
        int64_t d[3] = {4, 5, 6};
        mt_array a, v[8];
        make_iota(&a, dev, 3, d);
        mt_slice s[2] = {mt_slice_range(U, U, -1), mt_slice_index(2)};
        MT_CHECK_OK(mt_array_slice(&v[0], &a, 2, s));
        MT_CHECK_OK(mt_array_transpose(&v[1], &a, NULL));
        int64_t flat = -1;
        MT_CHECK_OK(mt_array_reshape(&v[2], &v[1], 1, &flat)); /* a copy */
        int64_t bd[4] = {2, 4, 5, 6};
        MT_CHECK_OK(mt_array_broadcast_to(&v[3], &a, 4, bd));
        MT_CHECK_OK(mt_array_astype(&v[4], &v[3], MT_FLOAT16));
        MT_CHECK_OK(mt_array_expand_dims(&v[5], &v[0], 1));
        mt_array_view(&v[6], &v[5]);
        MT_CHECK_OK(mt_array_arange(&v[7], dev, MT_INT16, 0, 100, 3));
        mt_array_clear(&a); /* views keep the buffer alive */
        double x[4 * 6];
        MT_CHECK_OK(mt_array_to_host(x, sizeof x, &v[6]));
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 6; j++)
                MT_CHECK(x[i * 6 + j] == (double)((3 - i) * 30 + 12 + j));
        for (int i = 0; i < 8; i++)
            mt_array_clear(&v[i]);
        MT_CHECK_EQ_INT(in_use(dev), base);
    }
    mt_mem_stats s;
    mt_device_mem_stats(dev, &s);
    MT_CHECK_EQ_INT(s.in_use, base);
    /* steady state: after the first round everything comes from the cache */
    MT_CHECK(s.backend_allocs - s0.backend_allocs <= 8);
    MT_CHECK(s.cache_hits - s0.cache_hits >= 49 * 4);
    mt_device_release(dev);
}

/* ---------------------------------------------------------------- kernel cache, host launch */

static int g_gen_calls;

/* x[i] = x[i] * f + i over the work range: args[0] buffer of float64, args[1] scalar f */
static mt_status gen_scale(void *ctx, mt_strbuf *src, char *entry, size_t entry_len)
{
    __atomic_fetch_add(&g_gen_calls, 1, __ATOMIC_RELAXED);
    mt_strbuf_append(src, "#include <stdint.h>\n"
                          "void test_scale(void **args, int64_t begin, int64_t end)\n"
                          "{\n"
                          "    double *x = (double *)args[0];\n"
                          "    double f = *(const double *)args[1];\n"
                          "    for (int64_t i = begin; i < end; i++) x[i] = x[i] * f + (double)i;\n"
                          "}\n");
    snprintf(entry, entry_len, "test_scale");
    return MT_OK;
}

static mt_status gen_fail(void *ctx, mt_strbuf *src, char *entry, size_t entry_len)
{
    return mt_err_set(MT_ERR_COMPILE, "generator says no");
}

typedef struct kc_thread {
    mt_device *dev;
    void *kernel;
    mt_status st;
} kc_thread;

static void *kernel_get_thread(void *arg)
{
    kc_thread *t = arg;
    t->st = mt__kernel_get(t->dev, "test-scale-v1", gen_scale, NULL, &t->kernel);
    return NULL;
}

MT_TEST(host_kernel_cache_and_launch)
{
    mt_device *dev = NULL;
    MT_CHECK_OK(mt_device_open(&dev, "host"));
    if (!mt__hostcc_available()) {
        mt_device_release(dev);
        MT_SKIP("no C compiler for host kernels");
    }
    /* several threads asking for one key get one kernel */
    kc_thread t[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        t[i] = (kc_thread){dev, NULL, MT_OK};
        MT_CHECK(pthread_create(&th[i], NULL, kernel_get_thread, &t[i]) == 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 4; i++) {
        if (t[i].st != MT_OK) mt_test_fail(__FILE__, __LINE__, "thread %d: %s", i, mt_last_error());
        MT_CHECK(t[i].kernel != NULL && t[i].kernel == t[0].kernel);
    }
    int calls = g_gen_calls;
    void *k = NULL;
    MT_CHECK_OK(mt__kernel_get(dev, "test-scale-v1", gen_scale, NULL, &k));
    MT_CHECK(k == t[0].kernel);
    MT_CHECK_EQ_INT(g_gen_calls, calls); /* a hit does not regenerate */
    MT_CHECK_ERR(mt__kernel_get(dev, "test-fail", gen_fail, NULL, &k), MT_ERR_COMPILE,
                 "generator says no");

    /* launch over a buffer at an offset, split over the pool in chunks of >= 1000 */
    int64_t n = 100000;
    mt_array x;
    make_iota(&x, dev, 1, &n);
    double f = 0.5;
    mt_karg args[2] = {{MT_KARG_BUFFER, x.buf, 8, NULL, 0}, {MT_KARG_SCALAR, NULL, 0, &f, 8}};
    MT_CHECK_OK(dev->ops->kernel_launch(dev, t[0].kernel, 2, args, n - 1, 1000, NULL));
    MT_CHECK_OK(dev->ops->kernel_launch(dev, t[0].kernel, 2, args, 0, 1000, NULL)); /* no work */
    double *g = read_f64(&x);
    MT_CHECK(g[0] == 0.0);
    for (int64_t i = 1; i < n; i++)
        if (g[i] != (double)i * 0.5 + (double)(i - 1))
            mt_test_fail(__FILE__, __LINE__, "x[%lld] = %g", (long long)i, g[i]);
    free(g);
    mt_array_clear(&x);
    mt_device_release(dev);
}
