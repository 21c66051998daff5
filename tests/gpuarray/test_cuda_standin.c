/* The CUDA backend's host logic without a GPU: cuda:0 on the stand-in CUDA driver and cuDNN
 * (tests/gpuarray/standin; CTest points MLTRAIN_LIBCUDA and MLTRAIN_LIBCUDNN at them).
 *
 * Device open and listing; buffers round-tripped through direct copies and through the pinned
 * staging pool (sizes around the 64 KiB threshold and the chunk size, odd offsets, a second
 * stream, staging off, asynchronous staged writes, pinning that fails, a staged copy that fails
 * midway); an allocation failure that empties the cache and retries; convolutions through
 * cuDNN in the three directions against the host device (float32 and float64, padding and
 * strides); the per-device plan cache (reuse, LRU eviction past its 64 slots, refresh on use),
 * its negative verdicts (no acceptable algorithm, a failed execution, a failed cudnnCreate);
 * the opt-ins MLTRAIN_CUDA_TF32 (float32 on the tensor-op entry with TF32 results, float64
 * untouched) and MLTRAIN_CUDNN_BENCHMARK (one timed search per new plan on the call's own
 * operands, its choice run; a failed search and a cuDNN without the search functions keep the
 * heuristic's choice); pooling; everything freed at device close. The stand-in driver queues
 * copies to and from pinned memory until something waits for them, so a missing wait gives
 * wrong data; it checks guard bytes around every allocation and counts misuse; the stand-in
 * cuDNN checks the contract of every call (algorithm, workspace, pointers, alpha/beta, stream)
 * and records what each convolution ran (algorithm, math type). Every case ends by
 * closing the device and requiring that nothing is left live and nothing was misused.
 *
 * Kernels cannot run on the stand-in (module loading is refused), so the cases keep to paths
 * that launch none: contiguous copies and fills, and convolutions and pooling that cuDNN takes;
 * the failures that would make conv.c fall back to its generic kernels are checked through the
 * backend's conv2d / pool2d members directly. Each case runs in its own process. */
#include <dlfcn.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/gpuarray/gpuarray_impl.h"
#include "mltrain/gpuarray.h"
#include "mt_test.h"
#include "mt_test_device.h"
#include "standin/standin.h"

uint64_t mt__cuda_staged_bytes(bool to_device); /* device_cuda.c */
uint64_t mt__cuda_dnn_calls(void);              /* cuda_dnn.c */
uint64_t mt__cuda_dnn_algo_queries(void);       /* cuda_dnn.c */
uint64_t mt__cuda_dnn_algo_searches(void);      /* cuda_dnn.c */

#define KIB ((size_t)1 << 10)
#define MIB ((size_t)1 << 20)
#define PLAN_SLOTS 64 /* cuda_dnn.c */

/* ---------------------------------------------------------------- the stand-ins */

static struct {
    __typeof__(&mt_standin_errors) errors;
    __typeof__(&mt_standin_cu_stats_get) stats;
    __typeof__(&mt_standin_check_guards) check_guards;
    __typeof__(&mt_standin_cu_fail) fail;
} g_cu;

static struct {
    bool linked;
    __typeof__(&mt_standin_dnn_stats_get) stats;
    __typeof__(&mt_standin_dnn_refuse_batch) refuse_batch;
    __typeof__(&mt_standin_dnn_fail_execs) fail_execs;
    __typeof__(&mt_standin_dnn_offer_tf32) offer_tf32;
    __typeof__(&mt_standin_dnn_good_algo) good_algo;
    __typeof__(&mt_standin_dnn_tf32_algo) tf32_algo;
    __typeof__(&mt_standin_dnn_found_algo) found_algo;
    __typeof__(&mt_standin_dnn_fail_searches) fail_searches;
} g_dnn;

static void *sym(void *h, const char *name)
{
    void *p = dlsym(h, name);
    if (!p) mt_test_fail(__FILE__, __LINE__, "the stand-in library lacks %s", name);
    return p;
}

/* Opens cuda:0, which must be the stand-in driver the backend loaded from $MLTRAIN_LIBCUDA. */
static mt_device *open_standin(void)
{
    const char *path = getenv("MLTRAIN_LIBCUDA");
    if (!path || !*path) MT_SKIP("MLTRAIN_LIBCUDA is not set (CTest points it at the stand-in)");
    mt_device *dev = NULL;
    MT_CHECK_OK(mt_device_open(&dev, "cuda:0"));
    void *h = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
    if (!h) mt_test_fail(__FILE__, __LINE__, "cuda:0 opened but %s is not loaded", path);
    g_cu.errors = (__typeof__(g_cu.errors))sym(h, "mt_standin_errors");
    g_cu.stats = (__typeof__(g_cu.stats))sym(h, "mt_standin_cu_stats_get");
    g_cu.check_guards = (__typeof__(g_cu.check_guards))sym(h, "mt_standin_check_guards");
    g_cu.fail = (__typeof__(g_cu.fail))sym(h, "mt_standin_cu_fail");
    dlclose(h); /* the backend's reference keeps it loaded */
    if (!strstr(mt_device_get_info(dev)->description, MT_STANDIN_CU_NAME))
        mt_test_fail(__FILE__, __LINE__, "cuda:0 is '%s', not the stand-in",
                     mt_device_get_info(dev)->description);
    return dev;
}

static mt_standin_cu_stats cu_stats(void)
{
    mt_standin_cu_stats s;
    g_cu.stats(&s);
    return s;
}

/* Skips (after closing dev) unless the backend has cuDNN support built in and the stand-in
 * cuDNN is configured. A float16 operand is refused before cuDNN is loaded. */
static void need_dnn(mt_device *dev)
{
    const char *path = getenv("MLTRAIN_LIBCUDNN");
    const char *why = NULL;
    if (!dev->ops->conv2d) {
        why = "the CUDA backend has no conv2d member";
    } else {
        int64_t d[4] = {1, 1, 1, 1};
        mt_array a = {0};
        MT_CHECK_OK(mt_array_empty(&a, dev, MT_FLOAT16, 4, d, 'C'));
        mt_conv2d_params p = {{1, 1}, {0, 0}};
        mt_status st = dev->ops->conv2d(dev, MT__CONV_FWD, &a, &a, &a, &p);
        mt_array_clear(&a);
        if (st == MT_ERR_NOT_BUILT) why = "mltrain was built without cudnn.h";
        else if (!path || !*path) why = "MLTRAIN_LIBCUDNN is not set (the stand-in was not built)";
    }
    if (why) {
        mt_device_release(dev);
        MT_SKIP(why);
    }
}

/* Links the stand-in cuDNN once the backend has loaded it (after its first cuDNN call). */
static void dnn_link(void)
{
    if (g_dnn.linked) return;
    const char *path = getenv("MLTRAIN_LIBCUDNN");
    void *h = path ? dlopen(path, RTLD_NOW | RTLD_NOLOAD) : NULL;
    if (!h) mt_test_fail(__FILE__, __LINE__, "the backend did not load the cuDNN stand-in %s",
                         path ? path : "(unset)");
    g_dnn.stats = (__typeof__(g_dnn.stats))sym(h, "mt_standin_dnn_stats_get");
    g_dnn.refuse_batch = (__typeof__(g_dnn.refuse_batch))sym(h, "mt_standin_dnn_refuse_batch");
    g_dnn.fail_execs = (__typeof__(g_dnn.fail_execs))sym(h, "mt_standin_dnn_fail_execs");
    g_dnn.offer_tf32 = (__typeof__(g_dnn.offer_tf32))sym(h, "mt_standin_dnn_offer_tf32");
    g_dnn.good_algo = (__typeof__(g_dnn.good_algo))sym(h, "mt_standin_dnn_good_algo");
    g_dnn.tf32_algo = (__typeof__(g_dnn.tf32_algo))sym(h, "mt_standin_dnn_tf32_algo");
    g_dnn.found_algo = (__typeof__(g_dnn.found_algo))sym(h, "mt_standin_dnn_found_algo");
    g_dnn.fail_searches = (__typeof__(g_dnn.fail_searches))sym(h, "mt_standin_dnn_fail_searches");
    dlclose(h);
    g_dnn.linked = true;
    mt_standin_dnn_stats s;
    g_dnn.stats(&s);
    if (!s.linked)
        mt_test_fail(__FILE__, __LINE__, "the cuDNN stand-in did not find the CUDA stand-in "
                     "(pointers and streams would go unchecked)");
}

static mt_standin_dnn_stats dnn_stats(void)
{
    mt_standin_dnn_stats s;
    dnn_link();
    g_dnn.stats(&s);
    return s;
}

static int64_t dnn_queries(void)
{
    mt_standin_dnn_stats s = dnn_stats();
    return s.queries[0] + s.queries[1] + s.queries[2];
}

/* Closes the device and requires that everything the backend created is gone and that neither
 * stand-in saw misuse. */
static void finish(mt_device *dev)
{
    mt_device_release(dev);
    mt_standin_cu_stats s = cu_stats();
    if (s.live_allocs || s.live_host_allocs || s.live_streams || s.live_events ||
        s.ctx_retains || s.pending_ops)
        mt_test_fail(__FILE__, __LINE__, "after closing cuda:0 the stand-in driver still holds "
                     "%lld allocations, %lld pinned buffers, %lld streams, %lld events, %lld "
                     "context retains, %lld queued operations", (long long)s.live_allocs,
                     (long long)s.live_host_allocs, (long long)s.live_streams,
                     (long long)s.live_events, (long long)s.ctx_retains,
                     (long long)s.pending_ops);
    MT_CHECK_EQ_INT(g_cu.check_guards(), 0);
    MT_CHECK_EQ_INT(g_cu.errors(), 0);
    if (g_dnn.linked) {
        mt_standin_dnn_stats d = dnn_stats();
        if (d.live_handles || d.live_descs)
            mt_test_fail(__FILE__, __LINE__, "after closing cuda:0 the stand-in cuDNN still "
                         "holds %lld handles and %lld descriptors", (long long)d.live_handles,
                         (long long)d.live_descs);
        MT_CHECK_EQ_INT(d.violations, 0);
    }
}

/* ---------------------------------------------------------------- data */

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;

static double *random_values(size_t n)
{
    double *v = malloc(n * sizeof *v + 8);
    MT_CHECK(v != NULL);
    for (size_t i = 0; i < n; i++) {
        g_rng ^= g_rng << 13;
        g_rng ^= g_rng >> 7;
        g_rng ^= g_rng << 17;
        v[i] = (double)(g_rng >> 11) * 0x1p-52 - 1.0;
    }
    return v;
}

static size_t count4(const int64_t *d)
{
    return (size_t)(d[0] * d[1] * d[2] * d[3]);
}

/* ---------------------------------------------------------------- device and copies */

/* cuda:0 opens on the stand-in and is listed with its name and properties; there is no cuda:1;
 * nothing is allocated before the first buffer. */
MT_TEST(standin_device_opens_and_is_listed)
{
    mt_device *dev = open_standin();
    const mt_device_info *info = mt_device_get_info(dev);
    MT_CHECK_STR_EQ(info->name, "cuda:0");
    MT_CHECK_STR_EQ(info->backend, "cuda");
    MT_CHECK(strstr(info->description, "sm_90") != NULL);
    MT_CHECK(strstr(info->description, "CUDA driver 13.0") != NULL);
    MT_CHECK_EQ_INT(info->compute_units, MT_STANDIN_CU_SMS);
    MT_CHECK_EQ_INT(info->global_mem, MT_STANDIN_CU_TOTAL_MEM);
    MT_CHECK(info->fp64 && info->fp16 && !info->cpu);
    mt_device_info *infos = NULL;
    int32_t n = 0;
    MT_CHECK_OK(mt_device_list(&infos, &n));
    int found = 0;
    for (int32_t i = 0; i < n; i++)
        if (strcmp(infos[i].backend, "cuda") == 0) {
            found++;
            MT_CHECK_STR_EQ(infos[i].name, "cuda:0");
            MT_CHECK(strstr(infos[i].description, MT_STANDIN_CU_NAME) != NULL);
        }
    mt_free(infos);
    MT_CHECK_EQ_INT(found, 1);
    mt_device *other = NULL;
    MT_CHECK_ERR(mt_device_open(&other, "cuda:1"), MT_ERR_NOT_FOUND, "cuda:0..cuda:0");
    mt_standin_cu_stats s = cu_stats();
    MT_CHECK_EQ_INT(s.ctx_retains, 1);
    MT_CHECK_EQ_INT(s.live_streams, 1); /* the compute stream */
    MT_CHECK_EQ_INT(s.live_allocs, 0);
    MT_CHECK_EQ_INT(s.host_alloc_calls, 0); /* the pinned pool waits for the first large copy */
    finish(dev);
}

/* Sizes below, at and above the staging threshold (64 KiB) and across several chunks of the
 * default pool (4 x 8 MiB, so the largest copies reuse buffers), at odd offsets, on the compute
 * stream and on a stream of its own: every byte comes back, the staged-bytes counters grow by
 * exactly the large sizes, and the large copies went through the stand-in's queues. Then
 * device-to-device copies, between buffers and between overlapping ranges of one. */
MT_TEST(standin_copies_roundtrip_around_staging_sizes)
{
    mt_device *dev = open_standin();
    const size_t sizes[] = {1, 4095, 64 * KIB - 1, 64 * KIB, 1 * MIB + 3, 8 * MIB - 1, 8 * MIB,
                            8 * MIB + 1, 37 * MIB + 12345};
    uint64_t up0 = mt__cuda_staged_bytes(true), down0 = mt__cuda_staged_bytes(false);
    uint64_t expect = 0;
    mt_stream *side = NULL;
    MT_CHECK_OK(mt_stream_new(&side, dev));
    unsigned seed = 1;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        for (size_t j = 0; j < 2; j++) {
            mt_test_roundtrip(dev, sizes[i], j ? 3 : 0, j ? side : NULL, seed++);
            if (sizes[i] >= 64 * KIB) expect += sizes[i];
        }
    MT_CHECK_EQ_INT(mt__cuda_staged_bytes(true) - up0, expect);
    MT_CHECK_EQ_INT(mt__cuda_staged_bytes(false) - down0, expect);
    mt_standin_cu_stats s = cu_stats();
    MT_CHECK_EQ_INT(s.live_host_allocs, 4);
    MT_CHECK(s.queued_copies > 0);
    /* device-to-device copies, also at odd offsets */
    mt_buffer *a = NULL, *b = NULL;
    const size_t n = 3 * MIB + 5;
    MT_CHECK_OK(mt_buffer_new(&a, dev, n + 16));
    MT_CHECK_OK(mt_buffer_new(&b, dev, n + 16));
    uint8_t *h = malloc(n);
    MT_CHECK(h != NULL);
    mt_test_fill_pattern(h, n, 77);
    MT_CHECK_OK(mt_buffer_write(a, 7, h, n, NULL));
    MT_CHECK_OK(mt_buffer_copy(b, 1, a, 7, n, side));
    memset(h, 0, n);
    MT_CHECK_OK(mt_buffer_read(h, b, 1, n, side));
    mt_test_check_pattern(h, n, 77, "device-to-device copy");
    /* overlapping ranges of one buffer: memmove semantics (the stand-in refuses an overlapping
     * cuMemcpyDtoD, as it is undefined in CUDA) */
    const size_t m = 2 * MIB, shift = 1 * MIB + 3;
    MT_CHECK_OK(mt_buffer_copy(b, 1 + shift, b, 1, m, NULL));
    MT_CHECK_OK(mt_buffer_read(h, b, 1 + shift, m, NULL));
    mt_test_check_pattern(h, m, 77, "overlapping device-to-device copy");
    free(h);
    mt_buffer_release(a);
    mt_buffer_release(b);
    mt_stream_free(side);
    finish(dev);
}

/* MLTRAIN_CUDA_PINNED_MB=0: direct copies only, nothing pinned, nothing staged. */
MT_TEST(standin_staging_off_copies_direct)
{
    setenv("MLTRAIN_CUDA_PINNED_MB", "0", 1);
    mt_device *dev = open_standin();
    uint64_t up0 = mt__cuda_staged_bytes(true), down0 = mt__cuda_staged_bytes(false);
    mt_test_roundtrip(dev, 9 * MIB + 7, 5, NULL, 11);
    MT_CHECK_EQ_INT(mt__cuda_staged_bytes(true), up0);
    MT_CHECK_EQ_INT(mt__cuda_staged_bytes(false), down0);
    mt_standin_cu_stats s = cu_stats();
    MT_CHECK_EQ_INT(s.host_alloc_calls, 0);
    MT_CHECK_EQ_INT(s.queued_copies, 0);
    finish(dev);
}

/* MLTRAIN_CUDA_ASYNC_WRITES=1 with a 1 MiB pool (4 chunks of 256 KiB): each round writes new
 * data into x (staged, returns once queued), reuses the host memory at once and copies x into
 * its slot of `all`; every slot holds its round's data. Then what the asynchronous mode asks
 * of other streams: a small direct read on a second stream right after a queued write still
 * sees the old bytes (the stand-in makes the race visible), and sees the new ones once that
 * stream waits for an event recorded after the write. Last, a buffer released right after an
 * asynchronous write is returned to the driver only after the upload. */
MT_TEST(standin_async_staged_writes_are_ordered)
{
    setenv("MLTRAIN_CUDA_ASYNC_WRITES", "1", 1);
    setenv("MLTRAIN_CUDA_PINNED_MB", "1", 1);
    mt_device *dev = open_standin();
    const size_t n = 3 * MIB + 100;
    const int rounds = 6;
    mt_buffer *x = NULL, *all = NULL;
    MT_CHECK_OK(mt_buffer_new(&x, dev, n));
    MT_CHECK_OK(mt_buffer_new(&all, dev, n * (size_t)rounds));
    uint8_t *h = malloc(n), *back = malloc(n * (size_t)rounds);
    MT_CHECK(h && back);
    for (int r = 0; r < rounds; r++) {
        mt_test_fill_pattern(h, n, 100u + (unsigned)r);
        uint64_t up0 = mt__cuda_staged_bytes(true);
        MT_CHECK_OK(mt_buffer_write(x, 0, h, n, NULL));
        MT_CHECK_EQ_INT(mt__cuda_staged_bytes(true) - up0, n);
        memset(h, 0xEE, n); /* at once: the staged write must not read it any more */
        MT_CHECK_OK(mt_buffer_copy(all, (size_t)r * n, x, 0, n, NULL));
    }
    MT_CHECK_OK(mt_buffer_read(back, all, 0, n * (size_t)rounds, NULL));
    for (int r = 0; r < rounds; r++) {
        char what[64];
        snprintf(what, sizeof what, "round %d", r);
        mt_test_check_pattern(back + (size_t)r * n, n, 100u + (unsigned)r, what);
    }

    const size_t m = 300 * KIB, peek = 100;
    mt_stream *side = NULL;
    mt_event *ev = NULL;
    MT_CHECK_OK(mt_stream_new(&side, dev));
    MT_CHECK_OK(mt_event_new(&ev, dev));
    mt_test_fill_pattern(h, m, 1);
    MT_CHECK_OK(mt_buffer_write(x, 0, h, m, NULL));
    MT_CHECK_OK(mt_device_sync(dev));
    mt_test_fill_pattern(h, m, 2);
    MT_CHECK_OK(mt_buffer_write(x, 0, h, m, NULL)); /* queued, nothing waited for yet */
    memset(h, 0, m);
    uint8_t small[100];
    MT_CHECK_OK(mt_buffer_read(small, x, 0, peek, side));
    mt_test_check_pattern(small, peek, 1, "a read on another stream without waiting (old data)");
    MT_CHECK_OK(mt_event_record(ev, NULL));
    MT_CHECK_OK(mt_stream_wait_event(side, ev));
    MT_CHECK_OK(mt_buffer_read(small, x, 0, peek, side));
    mt_test_check_pattern(small, peek, 2, "a read on another stream after waiting for the write");
    /* memory written asynchronously and released at once goes back to the driver only after
     * the queued upload (freeing synchronises; the stand-in reports a free under a copy) */
    mt_buffer *tmp = NULL;
    MT_CHECK_OK(mt_buffer_new(&tmp, dev, m));
    mt_test_fill_pattern(h, m, 3);
    MT_CHECK_OK(mt_buffer_write(tmp, 0, h, m, NULL));
    MT_CHECK(cu_stats().pending_ops > 0);
    mt_buffer_release(tmp);
    mt_device_empty_cache(dev);
    MT_CHECK_EQ_INT(g_cu.errors(), 0);
    mt_event_free(ev);
    mt_stream_free(side);
    free(h);
    free(back);
    mt_buffer_release(x);
    mt_buffer_release(all);
    finish(dev);
}

/* The third page-locked buffer cannot be allocated: the two allocated are freed, staging is off
 * for the device and the copies go direct and stay correct. */
MT_TEST(standin_pinning_failure_copies_direct)
{
    mt_device *dev = open_standin();
    MT_CHECK_EQ_INT(g_cu.fail("cuMemHostAlloc", 2, 1, MT_STANDIN_CUDA_ERROR_OUT_OF_MEMORY), 0);
    uint64_t up0 = mt__cuda_staged_bytes(true), down0 = mt__cuda_staged_bytes(false);
    mt_test_roundtrip(dev, 2 * MIB + 1, 1, NULL, 21);
    mt_test_roundtrip(dev, 5 * MIB, 0, NULL, 22);
    MT_CHECK_EQ_INT(mt__cuda_staged_bytes(true), up0);
    MT_CHECK_EQ_INT(mt__cuda_staged_bytes(false), down0);
    mt_standin_cu_stats s = cu_stats();
    MT_CHECK_EQ_INT(s.host_alloc_calls, 3); /* tried once, not at every copy */
    MT_CHECK_EQ_INT(s.live_host_allocs, 0);
    finish(dev);
}

/* A staged write whose second chunk fails: the queued chunk is waited for before the pool is
 * freed, staging turns off, the write is redone directly and is correct; later reads go direct. */
MT_TEST(standin_staged_write_failure_goes_direct)
{
    mt_device *dev = open_standin();
    const size_t n = 20 * MIB + 3;
    MT_CHECK_EQ_INT(g_cu.fail("cuMemcpyHtoDAsync_v2", 1, 1, MT_STANDIN_CUDA_ERROR_LAUNCH_FAILED),
                    0);
    uint64_t up0 = mt__cuda_staged_bytes(true), down0 = mt__cuda_staged_bytes(false);
    mt_buffer *buf = NULL;
    MT_CHECK_OK(mt_buffer_new(&buf, dev, n));
    uint8_t *h = malloc(n);
    MT_CHECK(h != NULL);
    mt_test_fill_pattern(h, n, 31);
    MT_CHECK_OK(mt_buffer_write(buf, 0, h, n, NULL));
    MT_CHECK_EQ_INT(mt__cuda_staged_bytes(true), up0);
    MT_CHECK_EQ_INT(cu_stats().live_host_allocs, 0);
    memset(h, 0, n);
    MT_CHECK_OK(mt_buffer_read(h, buf, 0, n, NULL));
    mt_test_check_pattern(h, n, 31, "write redone after a failed staged chunk");
    MT_CHECK_EQ_INT(mt__cuda_staged_bytes(false), down0);
    free(h);
    mt_buffer_release(buf);
    finish(dev);
}

/* The same for a staged read whose third chunk fails. */
MT_TEST(standin_staged_read_failure_goes_direct)
{
    mt_device *dev = open_standin();
    const size_t n = 30 * MIB + 9;
    mt_buffer *buf = NULL;
    MT_CHECK_OK(mt_buffer_new(&buf, dev, n));
    uint8_t *h = malloc(n);
    MT_CHECK(h != NULL);
    mt_test_fill_pattern(h, n, 41);
    uint64_t up0 = mt__cuda_staged_bytes(true), down0 = mt__cuda_staged_bytes(false);
    MT_CHECK_OK(mt_buffer_write(buf, 0, h, n, NULL));
    MT_CHECK_EQ_INT(mt__cuda_staged_bytes(true) - up0, n);
    MT_CHECK_EQ_INT(g_cu.fail("cuMemcpyDtoHAsync_v2", 2, 1, MT_STANDIN_CUDA_ERROR_LAUNCH_FAILED),
                    0);
    memset(h, 0, n);
    MT_CHECK_OK(mt_buffer_read(h, buf, 0, n, NULL));
    mt_test_check_pattern(h, n, 41, "read redone after a failed staged chunk");
    MT_CHECK_EQ_INT(mt__cuda_staged_bytes(false), down0);
    MT_CHECK_EQ_INT(cu_stats().live_host_allocs, 0);
    free(h);
    mt_buffer_release(buf);
    finish(dev);
}

/* cuMemAlloc fails once: the caching allocator returns its cached blocks to the driver and
 * retries; failing on the retry too is ERR_NOMEM naming the driver's error. */
MT_TEST(standin_alloc_failure_empties_cache_and_retries)
{
    mt_device *dev = open_standin();
    mt_buffer *a = NULL, *b = NULL;
    MT_CHECK_OK(mt_buffer_new(&a, dev, 1 * MIB));
    mt_buffer_release(a); /* cached */
    MT_CHECK_EQ_INT(cu_stats().live_allocs, 1);
    MT_CHECK_EQ_INT(g_cu.fail("cuMemAlloc_v2", 0, 1, MT_STANDIN_CUDA_ERROR_OUT_OF_MEMORY), 0);
    MT_CHECK_OK(mt_buffer_new(&b, dev, 3 * MIB));
    MT_CHECK_EQ_INT(cu_stats().live_allocs, 1); /* the cached block went back to the driver */
    mt_buffer_release(b); /* cached */
    MT_CHECK_EQ_INT(g_cu.fail("cuMemAlloc_v2", 0, 2, MT_STANDIN_CUDA_ERROR_OUT_OF_MEMORY), 0);
    MT_CHECK_ERR(mt_buffer_new(&a, dev, 5 * MIB), MT_ERR_NOMEM, "CUDA_ERROR_OUT_OF_MEMORY");
    MT_CHECK_EQ_INT(cu_stats().live_allocs, 0);
    MT_CHECK_EQ_INT(cu_stats().alloc_calls, 2);
    finish(dev);
}

/* A kernel (a converting copy) cannot load on the stand-in: a clean error, no crash, and the
 * device keeps working. Compiles one kernel with NVRTC where it is installed. */
MT_TEST(standin_nvrtc_kernel_refused_cleanly)
{
    mt_device *dev = open_standin();
    int64_t d[1] = {1000};
    double v[1000];
    for (int i = 0; i < 1000; i++) v[i] = i;
    mt_array a = {0}, b = {0};
    mt_test_from_f64(&a, dev, MT_FLOAT32, 1, d, v);
    mt_err_clear();
    mt_status st = mt_array_astype(&b, &a, MT_FLOAT64);
    MT_CHECK(st != MT_OK);
    printf("converting copy on the stand-in: %s\n", mt_last_error());
    MT_CHECK(strstr(mt_last_error(), "CUDA_ERROR_NOT_SUPPORTED") != NULL ||
             strstr(mt_last_error(), "compiler is not available") != NULL);
    mt_standin_cu_stats s = cu_stats();
    MT_CHECK_EQ_INT(s.launches, 0);
    double *back = mt_test_to_f64(&a);
    MT_CHECK_ALLCLOSE(back, v, 1000, 0, 0);
    free(back);
    mt_array_clear(&a);
    finish(dev);
}

/* The stand-in's own checks can fire: a write past the end of device memory is found by the
 * guard bytes, and a copy outside an allocation is refused and counted. */
MT_TEST(standin_detects_overruns)
{
    mt_device *dev = open_standin();
    mt_buffer *buf = NULL;
    MT_CHECK_OK(mt_buffer_new(&buf, dev, 1000));
    MT_CHECK_EQ_INT(g_cu.check_guards(), 0);
    /* device memory is host memory here: write one byte past the allocation */
    size_t cap = buf->capacity;
    ((volatile char *)buf->handle)[cap] ^= 1;
    int64_t e0 = g_cu.errors();
    MT_CHECK_EQ_INT(g_cu.check_guards(), 1);
    MT_CHECK_EQ_INT(g_cu.errors() - e0, 1);
    ((volatile char *)buf->handle)[cap] ^= 1; /* repaired */
    MT_CHECK_EQ_INT(g_cu.check_guards(), 0);
    /* the backend's own copy entry with a range past the allocation */
    char h[64] = {0};
    mt_status st = dev->ops->write(dev, buf->handle, cap - 8, h, sizeof h, NULL);
    MT_CHECK(st != MT_OK);
    MT_CHECK(strstr(mt_last_error(), "CUDA_ERROR_INVALID_VALUE") != NULL);
    MT_CHECK_EQ_INT(g_cu.errors() - e0, 2);
    mt_buffer_release(buf);
    mt_device_release(dev);
}

/* ---------------------------------------------------------------- convolutions */

typedef struct cshape {
    int64_t n, c, h, w, o, kh, kw;
    int32_t ph, pw, sh, sw;
} cshape;

static const cshape k_shapes[] = {
    {2, 3, 7, 6, 4, 3, 3, 1, 1, 1, 1},
    {3, 2, 9, 8, 5, 3, 2, 0, 1, 2, 1},
    {1, 4, 6, 7, 3, 5, 5, 2, 1, 2, 3},
    {2, 3, 5, 5, 2, 1, 1, 0, 0, 1, 1},
};
#define NSHAPES ((int)(sizeof k_shapes / sizeof k_shapes[0]))

static void shape_dims(const cshape *s, int64_t *xd, int64_t *wd, int64_t *yd)
{
    int64_t oh = (s->h + 2 * s->ph - s->kh) / s->sh + 1;
    int64_t ow = (s->w + 2 * s->pw - s->kw) / s->sw + 1;
    const int64_t x[4] = {s->n, s->c, s->h, s->w}, w[4] = {s->o, s->c, s->kh, s->kw};
    const int64_t y[4] = {s->n, s->o, oh, ow};
    memcpy(xd, x, sizeof x);
    memcpy(wd, w, sizeof w);
    memcpy(yd, y, sizeof y);
}

static const char *const k_dir_names[3] = {"forward", "backward data", "backward filter"};

/* Operand and result shapes of direction dir: a, b inputs, r the result. */
static void dir_dims(int dir, const cshape *s, int64_t *ad, int64_t *bd, int64_t *rd)
{
    int64_t xd[4], wd[4], yd[4];
    shape_dims(s, xd, wd, yd);
    const int64_t *a = dir == 1 ? yd : xd, *b = dir == 2 ? yd : wd;
    const int64_t *r = dir == 0 ? yd : dir == 1 ? xd : wd;
    memcpy(ad, a, 4 * sizeof *a);
    memcpy(bd, b, 4 * sizeof *b);
    memcpy(rd, r, 4 * sizeof *r);
}

static mt_status conv_api(int dir, mt_array *r, const mt_array *a, const mt_array *b,
                          const mt_conv2d_params *p)
{
    if (dir == 0) return mt_conv2d_forward(r, a, b, p);
    if (dir == 1) return mt_conv2d_backward_data(r, a, b, p);
    return mt_conv2d_backward_filter(r, a, b, p);
}

/* Operands and results as views that start one block into a larger buffer (whose first
 * block holds NaNs), instead of arrays of their own. */
static bool g_at_offset;

/* An array of dims d on dev holding v (NULL: uninitialised), a view at an offset when
 * g_at_offset. */
static mt_array operand(mt_device *dev, mt_dtype dt, const int64_t *d, const double *v)
{
    mt_array a = {0};
    if (!g_at_offset) {
        if (v)
            mt_test_from_f64(&a, dev, dt, 4, d, v);
        else
            MT_CHECK_OK(mt_array_empty(&a, dev, dt, 4, d, 'C'));
        return a;
    }
    const int64_t big[4] = {d[0] + 1, d[1], d[2], d[3]};
    size_t per = (size_t)(d[1] * d[2] * d[3]), n = count4(d);
    mt_array whole = {0};
    if (v) {
        double *vals = malloc((n + per) * sizeof *vals);
        MT_CHECK(vals != NULL);
        for (size_t i = 0; i < per; i++) vals[i] = NAN;
        memcpy(vals + per, v, n * sizeof *vals);
        mt_test_from_f64(&whole, dev, dt, 4, big, vals);
        free(vals);
    } else {
        MT_CHECK_OK(mt_array_empty(&whole, dev, dt, 4, big, 'C'));
    }
    mt_slice sl = mt_slice_range(1, big[0], 1);
    MT_CHECK_OK(mt_array_slice(&a, &whole, 1, &sl));
    mt_array_clear(&whole);
    MT_CHECK(a.offset > 0 && mt_array_is_c_contiguous(&a));
    return a;
}

/* Runs direction dir of shape s on dev with inputs av, bv (through mt_conv2d_* when member is
 * false, else the backend's conv2d member); *st gets the status, the result comes back as
 * doubles (NULL on failure). */
static double *run_conv(mt_device *dev, bool member, int dir, mt_dtype dt, const cshape *s,
                        const double *av, const double *bv, mt_status *st)
{
    int64_t ad[4], bd[4], rd[4];
    dir_dims(dir, s, ad, bd, rd);
    mt_array a = operand(dev, dt, ad, av), b = operand(dev, dt, bd, bv);
    mt_array r = operand(dev, dt, rd, NULL);
    mt_conv2d_params p = {{s->sh, s->sw}, {s->ph, s->pw}};
    mt_err_clear();
    *st = member ? dev->ops->conv2d(dev, dir, &r, &a, &b, &p) : conv_api(dir, &r, &a, &b, &p);
    double *out = *st == MT_OK ? mt_test_to_f64(&r) : NULL;
    mt_array_clear(&a);
    mt_array_clear(&b);
    mt_array_clear(&r);
    return out;
}

/* Which of the stand-in's acceptable algorithms (standin.h): the heuristic's FMA choice, its
 * TF32 entry, a search's choice. */
enum { ALGO_GOOD, ALGO_TF32, ALGO_FOUND };

/* The last execution of direction dir on the stand-in ran algorithm `which` with a
 * convolution descriptor of math type `math`. */
static void check_ran(const char *file, int line, int dir, int which, int math)
{
    mt_standin_dnn_stats d = dnn_stats();
    int want = which == ALGO_GOOD   ? g_dnn.good_algo(dir)
               : which == ALGO_TF32 ? g_dnn.tf32_algo(dir)
                                    : g_dnn.found_algo(dir);
    static const char *const names[3] = {"the heuristic's FMA choice", "the TF32 entry",
                                         "the search's choice"};
    if (d.last_algo[dir] != want || d.last_math[dir] != math)
        mt_test_fail(file, line, "%s ran algorithm %lld with math type %lld; expected %s (%d) "
                     "with math type %d", k_dir_names[dir], (long long)d.last_algo[dir],
                     (long long)d.last_math[dir], names[which], want, math);
}
#define CHECK_RAN(dir, which, math) check_ran(__FILE__, __LINE__, (dir), (which), (math))

/* Direction dir of shape s on cuda:0 (through mt_conv2d_*) equals the host device's result
 * (float32 within rounding, float64 tight) and ran algorithm `which` with math type `math`. */
static void conv_check(mt_device *dev, mt_device *host, int dir, mt_dtype dt, const cshape *s,
                       int which, int math)
{
    int64_t ad[4], bd[4], rd[4];
    dir_dims(dir, s, ad, bd, rd);
    double *av = random_values(count4(ad)), *bv = random_values(count4(bd));
    mt_status st;
    double *got = run_conv(dev, false, dir, dt, s, av, bv, &st);
    if (st != MT_OK)
        mt_test_fail(__FILE__, __LINE__, "%s %s on cuda:0: %s", k_dir_names[dir],
                     mt_dtype_name(dt), mt_last_error());
    CHECK_RAN(dir, which, math);
    double *want = run_conv(host, false, dir, dt, s, av, bv, &st);
    MT_CHECK_OK(st);
    char what[160];
    snprintf(what, sizeof what, "%s %s x %lldx%lldx%lldx%lld w %lldx%lld pad %d,%d stride %d,%d",
             k_dir_names[dir], mt_dtype_name(dt), (long long)s->n, (long long)s->c,
             (long long)s->h, (long long)s->w, (long long)s->kh, (long long)s->kw, s->ph, s->pw,
             s->sh, s->sw);
    /* float32: the host sums in float32, the stand-in in double (TF32 would differ by ~1e-3) */
    double tol = dt == MT_FLOAT64 ? 1e-12 : 3e-5;
    mt_test_allclose(__FILE__, __LINE__, what, got, want, count4(rd), tol, tol);
    free(av);
    free(bv);
    free(got);
    free(want);
}

/* The same with the default settings (no TF32, no search): the heuristic's FMA choice runs and
 * the tensor-op entry ranked before it is skipped. */
static void conv_vs_host(mt_device *dev, mt_device *host, int dir, mt_dtype dt, const cshape *s)
{
    conv_check(dev, host, dir, dt, s, ALGO_GOOD, MT_STANDIN_DNN_FMA_MATH);
}

/* mt_conv2d_forward / backward_data / backward_filter on cuda:0 run through cuDNN and equal the
 * host device (float32 within rounding, float64 tight) for shapes with padding, strides and a
 * 1x1 kernel; one cuDNN operation and one heuristic query per call (every call a new plan), with
 * the acceptable FMA algorithm each time (TF32 is off by default: the tensor-op entry ranked
 * before it is skipped, and the descriptor asks for CUDNN_FMA_MATH); no algorithm search. */
MT_TEST(standin_conv_through_cudnn_equals_host)
{
    mt_device *dev = open_standin();
    need_dnn(dev);
    mt_device *host = mt_test_open_or_skip("host");
    static const mt_dtype dts[] = {MT_FLOAT32, MT_FLOAT64};
    uint64_t calls0 = mt__cuda_dnn_calls(), q0 = mt__cuda_dnn_algo_queries();
    int ncalls = 0;
    for (int i = 0; i < NSHAPES; i++)
        for (int di = 0; di < 2; di++)
            for (int dir = 0; dir < 3; dir++) {
                conv_vs_host(dev, host, dir, dts[di], &k_shapes[i]);
                ncalls++;
            }
    MT_CHECK_EQ_INT(mt__cuda_dnn_calls() - calls0, ncalls);
    MT_CHECK_EQ_INT(mt__cuda_dnn_algo_queries() - q0, ncalls);
    mt_standin_dnn_stats d = dnn_stats();
    for (int k = 0; k < 3; k++) {
        MT_CHECK_EQ_INT(d.queries[k], ncalls / 3);
        MT_CHECK_EQ_INT(d.execs[k], ncalls / 3);
    }
    MT_CHECK_EQ_INT(d.live_handles, 1);
    MT_CHECK_EQ_INT(d.live_descs, 4 * ncalls); /* x, y, filter, convolution per cached plan */
    MT_CHECK_EQ_INT(cu_stats().module_loads, 0);
    MT_CHECK_EQ_INT(mt__cuda_dnn_algo_searches(), 0);
    MT_CHECK_EQ_INT(d.searches[0] + d.searches[1] + d.searches[2], 0);
    mt_device_release(host);
    finish(dev);
}

/* The same through operands and results that are views at an offset into larger buffers:
 * every pointer handed to cuDNN carries the view's offset (the stand-in checks each range
 * against the live allocations; the buffers' first blocks hold NaNs). */
MT_TEST(standin_conv_operands_at_offsets)
{
    mt_device *dev = open_standin();
    need_dnn(dev);
    mt_device *host = mt_test_open_or_skip("host");
    g_at_offset = true;
    uint64_t calls0 = mt__cuda_dnn_calls();
    for (int i = 0; i < NSHAPES; i++)
        for (int dir = 0; dir < 3; dir++) conv_vs_host(dev, host, dir, MT_FLOAT32, &k_shapes[i]);
    MT_CHECK_EQ_INT(mt__cuda_dnn_calls() - calls0, 3 * NSHAPES);
    mt_device_release(host);
    finish(dev);
}

/* Uploads made with asynchronous staged writes, then a convolution: cuDNN runs on the compute
 * stream after the queued uploads (the stand-in runs what the handle's stream queued first, so
 * cuDNN on another stream would read stale data: in the filter gradient both inputs are large,
 * and the last upload is still queued when cuDNN starts), and the staged read of the result is
 * correct. */
MT_TEST(standin_conv_after_async_staged_upload)
{
    setenv("MLTRAIN_CUDA_ASYNC_WRITES", "1", 1);
    setenv("MLTRAIN_CUDA_PINNED_MB", "1", 1);
    mt_device *dev = open_standin();
    need_dnn(dev);
    mt_device *host = mt_test_open_or_skip("host");
    const cshape s = {4, 8, 32, 32, 16, 3, 3, 1, 1, 1, 1}; /* x 128 KiB, y 256 KiB */
    uint64_t up0 = mt__cuda_staged_bytes(true), down0 = mt__cuda_staged_bytes(false);
    conv_vs_host(dev, host, 0, MT_FLOAT32, &s);
    conv_vs_host(dev, host, 2, MT_FLOAT32, &s);
    MT_CHECK(mt__cuda_staged_bytes(true) - up0 >= 128 * KIB);
    MT_CHECK(mt__cuda_staged_bytes(false) - down0 >= 256 * KIB);
    mt_device_release(host);
    finish(dev);
}

/* The same shapes again make no new heuristic query, and the descriptors stay cached; a new
 * direction, dtype, padding or stride is a new plan. */
MT_TEST(standin_conv_plans_reused)
{
    mt_device *dev = open_standin();
    need_dnn(dev);
    const cshape *s = &k_shapes[0];
    double *av = random_values(1000), *bv = random_values(1000);
    uint64_t q0 = mt__cuda_dnn_algo_queries(), calls0 = mt__cuda_dnn_calls();
    mt_status st;
    for (int rep = 0; rep < 3; rep++)
        for (int dir = 0; dir < 3; dir++) {
            free(run_conv(dev, false, dir, MT_FLOAT32, s, av, bv, &st));
            MT_CHECK_OK(st);
        }
    MT_CHECK_EQ_INT(mt__cuda_dnn_algo_queries() - q0, 3);
    MT_CHECK_EQ_INT(dnn_queries(), 3);
    MT_CHECK_EQ_INT(mt__cuda_dnn_calls() - calls0, 9);
    MT_CHECK_EQ_INT(dnn_stats().live_descs, 12);
    free(run_conv(dev, false, 0, MT_FLOAT64, s, av, bv, &st)); /* another dtype */
    MT_CHECK_OK(st);
    cshape padded = *s;
    padded.ph = 0; /* another padding (and output height) */
    free(run_conv(dev, false, 0, MT_FLOAT32, &padded, av, bv, &st));
    MT_CHECK_OK(st);
    cshape strided = *s;
    strided.sw = 2;
    free(run_conv(dev, false, 0, MT_FLOAT32, &strided, av, bv, &st));
    MT_CHECK_OK(st);
    MT_CHECK_EQ_INT(dnn_queries(), 6);
    for (int dir = 0; dir < 3; dir++) { /* and the first ones are still cached */
        free(run_conv(dev, false, dir, MT_FLOAT32, s, av, bv, &st));
        MT_CHECK_OK(st);
    }
    MT_CHECK_EQ_INT(dnn_queries(), 6);
    MT_CHECK_EQ_INT(mt__cuda_dnn_algo_queries() - q0, 6);
    free(av);
    free(bv);
    finish(dev);
}

/* 70 distinct shapes (more than the 64 plan slots) fill the cache; the most recent ones are
 * still cached, the 6 oldest were evicted and cost one query each; a plan used again moves to
 * the back of the eviction order. */
MT_TEST(standin_conv_plans_evict_least_recently_used)
{
    mt_device *dev = open_standin();
    need_dnn(dev);
    const int nshape = 70, evicted = nshape - PLAN_SLOTS;
    double *av = random_values(1000), *bv = random_values(100);
    mt_status st;
#define SHAPE_I(i) ((cshape){1, 1, 3 + (i), 5, 1, 3, 3, 0, 0, 1, 1})
    for (int i = 0; i < nshape; i++) {
        cshape s = SHAPE_I(i);
        free(run_conv(dev, false, 0, MT_FLOAT32, &s, av, bv, &st));
        MT_CHECK_OK(st);
    }
    MT_CHECK_EQ_INT(dnn_queries(), nshape);
    MT_CHECK_EQ_INT(dnn_stats().live_descs, 4 * PLAN_SLOTS);
    const int recent[] = {nshape - 1, nshape - 2, 40, evicted}; /* evicted: the oldest kept */
    for (size_t k = 0; k < sizeof recent / sizeof recent[0]; k++) {
        cshape s = SHAPE_I(recent[k]);
        free(run_conv(dev, false, 0, MT_FLOAT32, &s, av, bv, &st));
        MT_CHECK_OK(st);
        MT_CHECK_EQ_INT(dnn_queries(), nshape);
    }
    for (int i = 0; i < evicted; i++) {
        cshape s = SHAPE_I(i);
        free(run_conv(dev, false, 0, MT_FLOAT32, &s, av, bv, &st));
        MT_CHECK_OK(st);
        MT_CHECK_EQ_INT(dnn_queries(), nshape + 1 + i);
    }
    /* shape `evicted` was used just before the re-queries, so it survived them; the plans made
     * after it (evicted + 1 ... 2 evicted) were the least recently used and went instead */
    cshape keep = SHAPE_I(evicted);
    free(run_conv(dev, false, 0, MT_FLOAT32, &keep, av, bv, &st));
    MT_CHECK_OK(st);
    MT_CHECK_EQ_INT(dnn_queries(), nshape + evicted);
    cshape gone = SHAPE_I(evicted + 1);
    free(run_conv(dev, false, 0, MT_FLOAT32, &gone, av, bv, &st));
    MT_CHECK_OK(st);
    MT_CHECK_EQ_INT(dnn_queries(), nshape + evicted + 1);
    MT_CHECK_EQ_INT(dnn_stats().live_descs, 4 * PLAN_SLOTS);
#undef SHAPE_I
    free(av);
    free(bv);
    finish(dev);
}

/* No acceptable algorithm for a shape: the backend member answers ERR_UNSUPPORTED (so conv.c
 * runs its generic kernels) twice with a single query, keeps no descriptors for the verdict and
 * runs nothing; another batch size still goes through cuDNN. */
MT_TEST(standin_conv_negative_verdict_cached)
{
    mt_device *dev = open_standin();
    need_dnn(dev);
    const cshape refused = {3, 2, 6, 6, 2, 3, 3, 1, 1, 1, 1}, fine = {2, 2, 6, 6, 2, 3, 3, 1, 1,
                                                                     1, 1};
    double *av = random_values(1000), *bv = random_values(1000);
    mt_status st;
    free(run_conv(dev, true, 0, MT_FLOAT32, &fine, av, bv, &st)); /* loads the stand-in */
    MT_CHECK_OK(st);
    dnn_link();
    g_dnn.refuse_batch(3);
    uint64_t q0 = mt__cuda_dnn_algo_queries(), calls0 = mt__cuda_dnn_calls();
    mt_standin_dnn_stats d0 = dnn_stats();
    for (int rep = 0; rep < 2; rep++) {
        double *r = run_conv(dev, true, 0, MT_FLOAT32, &refused, av, bv, &st);
        MT_CHECK(r == NULL);
        MT_CHECK_EQ_INT(st, MT_ERR_UNSUPPORTED);
        MT_CHECK(strstr(mt_last_error(), "no acceptable algorithm") != NULL);
    }
    mt_standin_dnn_stats d = dnn_stats();
    MT_CHECK_EQ_INT(mt__cuda_dnn_algo_queries() - q0, 1);
    MT_CHECK_EQ_INT(d.queries[0] - d0.queries[0], 1);
    MT_CHECK_EQ_INT(d.execs[0], d0.execs[0]);
    MT_CHECK_EQ_INT(mt__cuda_dnn_calls(), calls0);
    MT_CHECK_EQ_INT(d.live_descs, 4); /* the runnable plan's only */
    free(run_conv(dev, true, 0, MT_FLOAT32, &fine, av, bv, &st));
    MT_CHECK_OK(st);
    MT_CHECK_EQ_INT(mt__cuda_dnn_algo_queries() - q0, 1);
    free(av);
    free(bv);
    finish(dev);
}

/* An execution that fails answers an error naming the call and destroys the plan's
 * descriptors; the shape keeps the verdict: later calls answer ERR_UNSUPPORTED (conv.c's
 * generic kernels take it) without a new query or execution. The other shapes still run
 * through cuDNN, and what ran before the failure equals the host. */
MT_TEST(standin_conv_failed_execution_goes_generic)
{
    mt_device *dev = open_standin();
    need_dnn(dev);
    mt_device *host = mt_test_open_or_skip("host");
    const cshape *s = &k_shapes[1];
    static const char *const calls[3] = {"cudnnConvolutionForward",
                                         "cudnnConvolutionBackwardData",
                                         "cudnnConvolutionBackwardFilter"};
    for (int dir = 0; dir < 3; dir++) {
        int64_t ad[4], bd[4], rd[4];
        dir_dims(dir, s, ad, bd, rd);
        double *av = random_values(count4(ad)), *bv = random_values(count4(bd));
        mt_status st;
        double *got = run_conv(dev, true, dir, MT_FLOAT64, s, av, bv, &st); /* the plan */
        MT_CHECK_OK(st);
        double *want = run_conv(host, false, dir, MT_FLOAT64, s, av, bv, &st);
        MT_CHECK_OK(st);
        mt_test_allclose(__FILE__, __LINE__, k_dir_names[dir], got, want, count4(rd), 1e-12,
                         1e-12);
        free(got);
        free(want);
        dnn_link();
        int64_t q0 = dnn_queries(), descs0 = dnn_stats().live_descs;
        uint64_t calls0 = mt__cuda_dnn_calls();
        g_dnn.fail_execs(1);
        double *r = run_conv(dev, true, dir, MT_FLOAT64, s, av, bv, &st);
        MT_CHECK(r == NULL);
        MT_CHECK_EQ_INT(st, MT_ERR_DEVICE);
        MT_CHECK(strstr(mt_last_error(), "CUDNN_STATUS_EXECUTION_FAILED") != NULL);
        MT_CHECK(strstr(mt_last_error(), calls[dir]) != NULL);
        MT_CHECK_EQ_INT(dnn_stats().live_descs, descs0 - 4);
        MT_CHECK_EQ_INT(dnn_stats().failed_execs, dir + 1);
        mt_standin_dnn_stats d0 = dnn_stats();
        for (int rep = 0; rep < 2; rep++) {
            r = run_conv(dev, true, dir, MT_FLOAT64, s, av, bv, &st);
            MT_CHECK(r == NULL);
            MT_CHECK_EQ_INT(st, MT_ERR_UNSUPPORTED);
            MT_CHECK(strstr(mt_last_error(), "failed in cuDNN before") != NULL);
        }
        mt_standin_dnn_stats d = dnn_stats();
        MT_CHECK_EQ_INT(dnn_queries(), q0);
        MT_CHECK_EQ_INT(d.execs[dir], d0.execs[dir]);
        MT_CHECK_EQ_INT(d.live_descs, descs0 - 4);
        MT_CHECK_EQ_INT(mt__cuda_dnn_calls(), calls0);
        /* the same direction in float32 is another plan and still runs */
        free(run_conv(dev, true, dir, MT_FLOAT32, s, av, bv, &st));
        MT_CHECK_OK(st);
        MT_CHECK_EQ_INT(dnn_queries(), q0 + 1);
        free(av);
        free(bv);
    }
    mt_device_release(host);
    finish(dev);
}

/* cudnnCreate fails: that call answers an error naming it, and from then on the device answers
 * ERR_UNSUPPORTED for convolution and pooling without asking cuDNN again (conv.c's generic
 * kernels take them); closing the device frees the state. */
MT_TEST(standin_cudnn_create_failure_goes_generic)
{
    setenv(MT_STANDIN_DNN_FAIL_CREATE_ENV, "1", 1);
    mt_device *dev = open_standin();
    need_dnn(dev);
    const cshape *s = &k_shapes[0];
    double *av = random_values(1000), *bv = random_values(1000);
    mt_status st;
    double *r = run_conv(dev, true, 0, MT_FLOAT32, s, av, bv, &st);
    MT_CHECK(r == NULL);
    MT_CHECK_EQ_INT(st, MT_ERR_DEVICE);
    MT_CHECK(strstr(mt_last_error(), "cudnnCreate") != NULL);
    for (int dir = 0; dir < 3; dir++) {
        r = run_conv(dev, true, dir, MT_FLOAT32, s, av, bv, &st);
        MT_CHECK(r == NULL);
        MT_CHECK_EQ_INT(st, MT_ERR_UNSUPPORTED);
    }
    int64_t xd[4] = {1, 1, 4, 4}, yd[4] = {1, 1, 2, 2};
    mt_array x = {0}, y = {0};
    MT_CHECK_OK(mt_array_zeros(&x, dev, MT_FLOAT32, 4, xd));
    MT_CHECK_OK(mt_array_empty(&y, dev, MT_FLOAT32, 4, yd, 'C'));
    mt_pool2d_params p = {{2, 2}, {2, 2}, {0, 0}, MT_POOL2D_MEAN};
    MT_CHECK_EQ_INT(dev->ops->pool2d(dev, false, &y, &x, NULL, NULL, &p), MT_ERR_UNSUPPORTED);
    mt_array_clear(&x);
    mt_array_clear(&y);
    mt_standin_dnn_stats d = dnn_stats();
    MT_CHECK_EQ_INT(d.create_calls, 1);
    MT_CHECK_EQ_INT(d.live_handles, 0);
    MT_CHECK_EQ_INT(d.queries[0] + d.queries[1] + d.queries[2], 0);
    MT_CHECK_EQ_INT(mt__cuda_dnn_calls(), 0);
    free(av);
    free(bv);
    finish(dev);
}

/* Closing the device destroys every cached plan's descriptors and the cuDNN handle (checked by
 * finish), runnable plans of three directions and two dtypes and a negative verdict included. */
MT_TEST(standin_close_frees_plans_and_handle)
{
    mt_device *dev = open_standin();
    need_dnn(dev);
    double *av = random_values(2000), *bv = random_values(2000);
    mt_status st;
    int runnable = 0;
    for (int i = 0; i < 3; i++)
        for (int dir = 0; dir < 3; dir++) {
            free(run_conv(dev, true, dir, i == 2 ? MT_FLOAT64 : MT_FLOAT32, &k_shapes[i], av, bv,
                          &st));
            MT_CHECK_OK(st);
            runnable++;
        }
    dnn_link();
    g_dnn.refuse_batch(1);
    free(run_conv(dev, true, 0, MT_FLOAT32, &k_shapes[2], av, bv, &st)); /* batch 1 */
    MT_CHECK_EQ_INT(st, MT_ERR_UNSUPPORTED);
    mt_standin_dnn_stats d = dnn_stats();
    MT_CHECK_EQ_INT(d.live_handles, 1);
    MT_CHECK_EQ_INT(d.live_descs, 4 * runnable);
    MT_CHECK_EQ_INT(d.live_tensors, 2 * runnable);
    MT_CHECK_EQ_INT(d.live_filters, runnable);
    MT_CHECK_EQ_INT(d.live_convs, runnable);
    free(av);
    free(bv);
    finish(dev);
}

/* ---------------------------------------------------------------- TF32 and algorithm search */

/* The number of products summed into one element of direction dir's result (an upper bound for
 * the backward data direction, where strides and edges leave some out). */
static int64_t conv_terms(int dir, const cshape *s)
{
    int64_t xd[4], wd[4], yd[4];
    shape_dims(s, xd, wd, yd);
    if (dir == 0) return s->c * s->kh * s->kw;
    if (dir == 1) return s->o * s->kh * s->kw;
    return s->n * yd[2] * yd[3];
}

/* n random values in [-1, 1) that float32 holds exactly (so the float64 host result is the
 * exact result of the float32 operands, to 1e-16). */
static double *random_f32_values(size_t n)
{
    double *v = random_values(n);
    for (size_t i = 0; i < n; i++) v[i] = (double)(float)v[i];
    return v;
}

/* Direction dir of shape s in float32 on cuda:0 with MLTRAIN_CUDA_TF32=1: the TF32 entry ran
 * with CUDNN_TENSOR_OP_MATH, and the result is a TF32 one. With S the sum of |products| of an
 * element (the same convolution of |a| and |b|) and K the number of products: TF32 keeps 10 of
 * float32's 23 mantissa bits of each operand (each rounded within 2^-11 relative), so a product
 * is off by at most 2^-10 + 2^-22 relative, the element by (2^-10 + 2^-22) S, plus the float32
 * evaluation, at most (K + 2) 2^-24 S (accumulation and the final rounding) on each side. The
 * host's float32 result is within that float32 bound of the exact one, so an element further
 * than twice it from the host's float32 result is beyond float32 rounding: some element must
 * be (with these operands the largest deviation is 1e-4 to 6e-4 S, over seven times twice the
 * float32 bound in every direction and shape used). */
static void tf32_check(mt_device *dev, mt_device *host, int dir, const cshape *s)
{
    int64_t ad[4], bd[4], rd[4];
    dir_dims(dir, s, ad, bd, rd);
    size_t na = count4(ad), nb = count4(bd), nr = count4(rd);
    double *av = random_f32_values(na), *bv = random_f32_values(nb);
    double *aabs = malloc(na * sizeof *aabs), *babs = malloc(nb * sizeof *babs);
    MT_CHECK(aabs && babs);
    for (size_t i = 0; i < na; i++) aabs[i] = fabs(av[i]);
    for (size_t i = 0; i < nb; i++) babs[i] = fabs(bv[i]);
    mt_status st;
    double *got = run_conv(dev, false, dir, MT_FLOAT32, s, av, bv, &st);
    if (st != MT_OK)
        mt_test_fail(__FILE__, __LINE__, "%s float32 on cuda:0 with TF32: %s", k_dir_names[dir],
                     mt_last_error());
    CHECK_RAN(dir, ALGO_TF32, MT_STANDIN_DNN_TENSOR_OP_MATH);
    double *exact = run_conv(host, false, dir, MT_FLOAT64, s, av, bv, &st);
    MT_CHECK_OK(st);
    double *f32 = run_conv(host, false, dir, MT_FLOAT32, s, av, bv, &st);
    MT_CHECK_OK(st);
    double *mag = run_conv(host, false, dir, MT_FLOAT64, s, aabs, babs, &st);
    MT_CHECK_OK(st);
    const double k = (double)conv_terms(dir, s);
    const double f32_bound = (k + 2) * 0x1p-24, tf32_bound = 0x1p-10 + 0x1p-22 + f32_bound;
    double worst_exact = 0, worst_f32 = 0;
    for (size_t i = 0; i < nr; i++) {
        double e = fabs(got[i] - exact[i]), d = fabs(got[i] - f32[i]);
        if (!(e <= tf32_bound * mag[i]))
            mt_test_fail(__FILE__, __LINE__, "%s with TF32, element %zu: %.9g, exact %.9g, off "
                         "by %.3g > %.3g (the TF32 bound for sum |products| %.6g)",
                         k_dir_names[dir], i, got[i], exact[i], e, tf32_bound * mag[i], mag[i]);
        if (mag[i] > 0) {
            worst_exact = fmax(worst_exact, e / mag[i]);
            worst_f32 = fmax(worst_f32, d / mag[i]);
        }
    }
    printf("%s with TF32: largest error %.3g of sum |products| (TF32 bound %.3g, float32 bound "
           "%.3g); largest difference from the host's float32 result %.3g\n", k_dir_names[dir],
           worst_exact, tf32_bound, f32_bound, worst_f32);
    if (!(worst_f32 > 2 * f32_bound))
        mt_test_fail(__FILE__, __LINE__, "%s with TF32 is within float32 rounding of the host "
                     "(largest difference %.3g of sum |products|, float32 bound %.3g): the "
                     "operands were not rounded to TF32", k_dir_names[dir], worst_f32, f32_bound);
    free(av), free(bv), free(aabs), free(babs);
    free(got), free(exact), free(f32), free(mag);
}

/* MLTRAIN_CUDA_TF32=1: float32 convolutions in the three directions take the heuristic's
 * tensor-op entry (ranked before the FMA one; the tensor-op entry with conversion to float16
 * ranked before both is still skipped) and run with CUDNN_TENSOR_OP_MATH, giving TF32 results
 * (beyond float32 rounding of the host, within the TF32 bound); float64 keeps the FMA entry and
 * CUDNN_FMA_MATH and equals the host tightly. */
MT_TEST(standin_conv_tf32_uses_tensor_ops)
{
    setenv("MLTRAIN_CUDA_TF32", "1", 1);
    mt_device *dev = open_standin();
    need_dnn(dev);
    mt_device *host = mt_test_open_or_skip("host");
    for (int i = 0; i < 2; i++)
        for (int dir = 0; dir < 3; dir++) tf32_check(dev, host, dir, &k_shapes[i]);
    for (int dir = 0; dir < 3; dir++)
        conv_check(dev, host, dir, MT_FLOAT64, &k_shapes[0], ALGO_GOOD, MT_STANDIN_DNN_FMA_MATH);
    MT_CHECK_EQ_INT(mt__cuda_dnn_algo_searches(), 0);
    mt_device_release(host);
    finish(dev);
}

/* TF32 allowed, but the heuristic offers no tensor-op entry this time: its FMA choice runs
 * with the descriptor switched to CUDNN_FMA_MATH (the entry's math type, not the one asked
 * for), so float32 results are float32's, within rounding of the host's. */
MT_TEST(standin_conv_tf32_runs_an_fma_entry_as_fma)
{
    setenv("MLTRAIN_CUDA_TF32", "1", 1);
    mt_device *dev = open_standin();
    need_dnn(dev);
    mt_device *host = mt_test_open_or_skip("host");
    float one = 1.0f;
    mt_array probe;
    const int64_t pd[4] = {1, 1, 1, 1};
    MT_CHECK_OK(mt_array_from_host(&probe, dev, MT_FLOAT32, 4, pd, &one));
    const mt_conv2d_params cp = {{1, 1}, {0, 0}};
    mt_array out;
    MT_CHECK_OK(mt_array_empty(&out, dev, MT_FLOAT32, 4, pd, 'C'));
    MT_CHECK_OK(mt_conv2d_forward(&out, &probe, &probe, &cp)); /* loads the stand-in cuDNN */
    mt_array_clear(&probe), mt_array_clear(&out);
    dnn_link();
    g_dnn.offer_tf32(0);
    for (int dir = 0; dir < 3; dir++)
        conv_check(dev, host, dir, MT_FLOAT32, &k_shapes[1], ALGO_GOOD, MT_STANDIN_DNN_FMA_MATH);
    g_dnn.offer_tf32(1);
    mt_device_release(host);
    finish(dev);
}

/* MLTRAIN_CUDA_TF32=0 is off, as unset is: the tensor-op entry is skipped, CUDNN_FMA_MATH. */
MT_TEST(standin_conv_tf32_zero_is_off)
{
    setenv("MLTRAIN_CUDA_TF32", "0", 1);
    mt_device *dev = open_standin();
    need_dnn(dev);
    mt_device *host = mt_test_open_or_skip("host");
    for (int dir = 0; dir < 3; dir++) conv_vs_host(dev, host, dir, MT_FLOAT32, &k_shapes[1]);
    mt_device_release(host);
    finish(dev);
}

/* The search of the last new plan of direction dir: on the call's own operands, with a
 * workspace covering the largest acceptable entry of the heuristic's ranking. */
static void check_searched(const char *file, int line, int dir)
{
    mt_standin_dnn_stats d = dnn_stats();
    if (d.last_search_need[dir] <= 0 || d.last_search_ws[dir] < d.last_search_need[dir])
        mt_test_fail(file, line, "the %s search got a workspace of %lld bytes; the heuristic's "
                     "acceptable entries need up to %lld", k_dir_names[dir],
                     (long long)d.last_search_ws[dir], (long long)d.last_search_need[dir]);
    if (d.last_exec_as_searched[dir] != 1)
        mt_test_fail(file, line, "the %s execution ran on other pointers than its search",
                     k_dir_names[dir]);
}
#define CHECK_SEARCHED(dir) check_searched(__FILE__, __LINE__, (dir))

static int64_t dnn_searches(void)
{
    mt_standin_dnn_stats s = dnn_stats();
    return s.searches[0] + s.searches[1] + s.searches[2];
}

/* MLTRAIN_CUDNN_BENCHMARK=1: each new plan (three directions, float32 and float64, two shapes)
 * makes one heuristic query and one timed search on the call's own operands, with a workspace as
 * large as the largest acceptable heuristic entry's (larger than the heuristic's choice needs);
 * the search's fastest acceptable entry (after entries mltrain must skip, the tensor-op one
 * among them) runs instead of the heuristic's choice, and the results equal the host. The same
 * shapes again reuse their plans: no query, no search, the search's choice still runs. */
MT_TEST(standin_conv_benchmark_takes_search_choice)
{
    setenv("MLTRAIN_CUDNN_BENCHMARK", "1", 1);
    mt_device *dev = open_standin();
    need_dnn(dev);
    mt_device *host = mt_test_open_or_skip("host");
    static const mt_dtype dts[] = {MT_FLOAT32, MT_FLOAT64};
    uint64_t q0 = mt__cuda_dnn_algo_queries();
    int plans = 0;
    for (int rep = 0; rep < 2; rep++)
        for (int i = 1; i < 3; i++)
            for (int di = 0; di < 2; di++)
                for (int dir = 0; dir < 3; dir++) {
                    conv_check(dev, host, dir, dts[di], &k_shapes[i], ALGO_FOUND,
                               MT_STANDIN_DNN_FMA_MATH);
                    if (rep == 0) {
                        plans++;
                        CHECK_SEARCHED(dir);
                    }
                    MT_CHECK_EQ_INT(mt__cuda_dnn_algo_searches(), plans);
                    MT_CHECK_EQ_INT(dnn_searches(), plans);
                    MT_CHECK_EQ_INT(mt__cuda_dnn_algo_queries() - q0, plans);
                }
    MT_CHECK_EQ_INT(plans, 12);
    MT_CHECK_EQ_INT(dnn_stats().failed_searches, 0);
    mt_device_release(host);
    finish(dev);
}

/* A search that fails (after writing NaNs into the output) keeps the heuristic's choice: it
 * runs, the result equals the host, and the plan is reused without another search. */
MT_TEST(standin_conv_benchmark_failed_search_keeps_heuristic)
{
    setenv("MLTRAIN_CUDNN_BENCHMARK", "1", 1);
    mt_device *dev = open_standin();
    need_dnn(dev);
    mt_device *host = mt_test_open_or_skip("host");
    /* a first convolution loads the stand-in (its search succeeds) */
    conv_check(dev, host, 0, MT_FLOAT32, &k_shapes[3], ALGO_FOUND, MT_STANDIN_DNN_FMA_MATH);
    MT_CHECK_EQ_INT(dnn_searches(), 1);
    g_dnn.fail_searches(3);
    for (int rep = 0; rep < 2; rep++)
        for (int dir = 0; dir < 3; dir++) {
            conv_check(dev, host, dir, MT_FLOAT32, &k_shapes[0], ALGO_GOOD,
                       MT_STANDIN_DNN_FMA_MATH);
            MT_CHECK_EQ_INT(dnn_searches(), rep == 0 ? 2 + dir : 4);
        }
    MT_CHECK_EQ_INT(mt__cuda_dnn_algo_searches(), 4);
    MT_CHECK_EQ_INT(dnn_stats().failed_searches, 3);
    mt_device_release(host);
    finish(dev);
}

static int g_find_warnings;

static void find_warnings_sink(mt_log_level level, const char *msg, void *user)
{
    (void)user;
    if (level >= MT_LOG_WARN) fprintf(stderr, "mltrain: %s\n", msg);
    if (level == MT_LOG_WARN && strstr(msg, "cudnnFind") && strstr(msg, "MLTRAIN_CUDNN_BENCHMARK"))
        g_find_warnings++;
}

/* MLTRAIN_CUDNN_BENCHMARK=1 with a cuDNN that lacks cudnnFind*AlgorithmEx (the stand-in built
 * without them): one warning, no search, the heuristic's choice runs in the three directions,
 * the results equal the host, and nothing fails. */
MT_TEST(standin_conv_benchmark_without_find_keeps_heuristic)
{
    const char *nofind = getenv(MT_STANDIN_DNN_NOFIND_ENV);
    if (!nofind || !*nofind)
        MT_SKIP(MT_STANDIN_DNN_NOFIND_ENV " is not set (CTest points it at the stand-in cuDNN "
                "built without cudnnFind*AlgorithmEx)");
    setenv("MLTRAIN_LIBCUDNN", nofind, 1);
    setenv("MLTRAIN_CUDNN_BENCHMARK", "1", 1);
    mt_log_set_callback(find_warnings_sink, NULL);
    mt_device *dev = open_standin();
    need_dnn(dev);
    mt_device *host = mt_test_open_or_skip("host");
    for (int rep = 0; rep < 2; rep++)
        for (int dir = 0; dir < 3; dir++) conv_vs_host(dev, host, dir, MT_FLOAT32, &k_shapes[1]);
    void *h = dlopen(nofind, RTLD_NOW | RTLD_NOLOAD);
    MT_CHECK(h != NULL);
    MT_CHECK(dlsym(h, "cudnnFindConvolutionForwardAlgorithmEx") == NULL);
    MT_CHECK(dlsym(h, "cudnnFindConvolutionBackwardDataAlgorithmEx") == NULL);
    MT_CHECK(dlsym(h, "cudnnFindConvolutionBackwardFilterAlgorithmEx") == NULL);
    dlclose(h);
    MT_CHECK_EQ_INT(mt__cuda_dnn_algo_searches(), 0);
    MT_CHECK_EQ_INT(dnn_searches(), 0);
    MT_CHECK_EQ_INT(dnn_queries(), 3);
    MT_CHECK_EQ_INT(g_find_warnings, 1);
    mt_device_release(host);
    finish(dev);
    mt_log_set_callback(NULL, NULL);
}

/* Both opt-ins: the search of a float32 plan may take the tensor-op entry, which it times as the
 * fastest acceptable one, so it runs with CUDNN_TENSOR_OP_MATH and TF32 results; float64 plans
 * take the search's FMA choice. */
MT_TEST(standin_conv_tf32_with_benchmark)
{
    setenv("MLTRAIN_CUDA_TF32", "1", 1);
    setenv("MLTRAIN_CUDNN_BENCHMARK", "1", 1);
    mt_device *dev = open_standin();
    need_dnn(dev);
    mt_device *host = mt_test_open_or_skip("host");
    for (int dir = 0; dir < 3; dir++) {
        tf32_check(dev, host, dir, &k_shapes[2]);
        CHECK_SEARCHED(dir);
        conv_check(dev, host, dir, MT_FLOAT64, &k_shapes[2], ALGO_FOUND, MT_STANDIN_DNN_FMA_MATH);
        CHECK_SEARCHED(dir);
    }
    MT_CHECK_EQ_INT(mt__cuda_dnn_algo_searches(), 6);
    mt_device_release(host);
    finish(dev);
}

/* ---------------------------------------------------------------- pooling */

typedef struct pshape {
    int64_t n, c, h, w;
    mt_pool2d_params p;
} pshape;

/* Pooling of x (values xv) on dev: forward (y, through mt_pool2d_forward) or backward (dx from
 * dy values gv, through mt_pool2d_backward). */
static double *run_pool(mt_device *dev, bool backward, mt_dtype dt, const pshape *s,
                        const double *xv, const double *gv, mt_status *st)
{
    int64_t xd[4] = {s->n, s->c, s->h, s->w}, yd[4] = {s->n, s->c, 0, 0};
    for (int i = 0; i < 2; i++)
        yd[2 + i] = (xd[2 + i] + 2 * s->p.pad[i] - s->p.size[i]) / s->p.stride[i] + 1;
    mt_array x = {0}, g = {0}, r = {0};
    mt_test_from_f64(&x, dev, dt, 4, xd, xv);
    if (backward) mt_test_from_f64(&g, dev, dt, 4, yd, gv);
    MT_CHECK_OK(mt_array_empty(&r, dev, dt, 4, backward ? xd : yd, 'C'));
    mt_err_clear();
    *st = backward ? mt_pool2d_backward(&r, &x, NULL, &g, &s->p)
                   : mt_pool2d_forward(&r, &x, NULL, &s->p);
    double *out = *st == MT_OK ? mt_test_to_f64(&r) : NULL;
    mt_array_clear(&x);
    mt_array_clear(&g);
    mt_array_clear(&r);
    return out;
}

/* Max pooling forward (with NaNs in some windows) and mean pooling forward and gradient, with
 * padding and strides, float32 and float64, through cuDNN on cuda:0: equal to the host device.
 * A failed pooling execution answers an error through the member and leaks no descriptor. */
MT_TEST(standin_pooling_through_cudnn_equals_host)
{
    mt_device *dev = open_standin();
    need_dnn(dev);
    mt_device *host = mt_test_open_or_skip("host");
    const pshape shapes[] = {
        {2, 3, 7, 8, {{3, 3}, {2, 2}, {1, 1}, MT_POOL2D_MEAN}},
        {1, 2, 9, 6, {{3, 2}, {1, 2}, {1, 0}, MT_POOL2D_MEAN}},
        {2, 3, 6, 7, {{2, 2}, {2, 2}, {0, 0}, MT_POOL2D_MAX}},
        {2, 2, 8, 9, {{3, 3}, {1, 2}, {1, 1}, MT_POOL2D_MAX}},
    };
    static const mt_dtype dts[] = {MT_FLOAT32, MT_FLOAT64};
    uint64_t calls0 = mt__cuda_dnn_calls();
    int expect = 0, fwd = 0, bwd = 0;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        for (int di = 0; di < 2; di++)
            for (int back = 0; back < 2; back++) {
                const pshape *s = &shapes[i];
                bool mean = s->p.kind == MT_POOL2D_MEAN;
                if (back && !mean) continue; /* the max gradient stays generic */
                size_t nx = (size_t)(s->n * s->c * s->h * s->w);
                double *xv = random_values(nx), *gv = random_values(nx);
                if (!mean)
                    for (size_t k = 5; k < nx; k += 23) xv[k] = NAN;
                mt_status st;
                double *got = run_pool(dev, back, dts[di], s, xv, gv, &st);
                if (st != MT_OK)
                    mt_test_fail(__FILE__, __LINE__, "pooling %zu on cuda:0: %s", i,
                                 mt_last_error());
                double *want = run_pool(host, back, dts[di], s, xv, gv, &st);
                MT_CHECK_OK(st);
                int64_t on = back ? (int64_t)nx : s->n * s->c *
                                                      ((s->h + 2 * s->p.pad[0] - s->p.size[0]) /
                                                           s->p.stride[0] + 1) *
                                                      ((s->w + 2 * s->p.pad[1] - s->p.size[1]) /
                                                           s->p.stride[1] + 1);
                char what[96];
                snprintf(what, sizeof what, "%s pooling %s %zu (%s)", mean ? "mean" : "max",
                         back ? "gradient" : "forward", i, mt_dtype_name(dts[di]));
                double tol = dts[di] == MT_FLOAT64 ? 1e-13 : 1e-6;
                mt_test_allclose(__FILE__, __LINE__, what, got, want, (size_t)on, tol, tol);
                expect++;
                if (back)
                    bwd++;
                else
                    fwd++;
                free(got);
                free(want);
                free(xv);
                free(gv);
            }
    MT_CHECK_EQ_INT(mt__cuda_dnn_calls() - calls0, expect);
    mt_standin_dnn_stats d = dnn_stats();
    MT_CHECK_EQ_INT(d.pool_execs[0], fwd);
    MT_CHECK_EQ_INT(d.pool_execs[1], bwd);
    MT_CHECK_EQ_INT(d.live_pools, 0);
    int64_t descs0 = d.live_descs;
    /* a failed execution through the member */
    g_dnn.fail_execs(1);
    int64_t xd[4] = {1, 1, 4, 4}, yd[4] = {1, 1, 2, 2};
    mt_array x = {0}, y = {0};
    MT_CHECK_OK(mt_array_zeros(&x, dev, MT_FLOAT32, 4, xd));
    MT_CHECK_OK(mt_array_empty(&y, dev, MT_FLOAT32, 4, yd, 'C'));
    mt_pool2d_params p = {{2, 2}, {2, 2}, {0, 0}, MT_POOL2D_MAX};
    mt_err_clear();
    MT_CHECK_EQ_INT(dev->ops->pool2d(dev, false, &y, &x, NULL, NULL, &p), MT_ERR_DEVICE);
    MT_CHECK(strstr(mt_last_error(), "cudnnPoolingForward") != NULL);
    MT_CHECK_EQ_INT(dnn_stats().live_descs, descs0);
    MT_CHECK_OK(dev->ops->pool2d(dev, false, &y, &x, NULL, NULL, &p));
    mt_array_clear(&x);
    mt_array_clear(&y);
    mt_device_release(host);
    finish(dev);
}

/* Closing a device on an error path (its context synchronisation fails too) leaves the
 * caller's error in place: what mt_last_error() reports is the failure the caller saw. */
MT_TEST(standin_close_keeps_the_callers_error)
{
    mt_device *dev = open_standin();
    MT_CHECK_EQ_INT(g_cu.fail("cuCtxSynchronize", 0, 1, MT_STANDIN_CUDA_ERROR_LAUNCH_FAILED), 0);
    mt_err_set(MT_ERR_DEVICE, "the caller's own failure");
    mt_device_release(dev);
    MT_CHECK_EQ_INT(mt_last_status(), MT_ERR_DEVICE);
    MT_CHECK_STR_EQ(mt_last_error(), "the caller's own failure");
}
