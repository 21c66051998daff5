/* comm tests of the NCCL backend on a GPU (label cuda; SKIP without a CUDA device or without
 * NCCL): a one-rank NCCL communicator on cuda:0 runs all-reduce, broadcast, all-gather and
 * reduce-scatter on device arrays and gives what the same collectives give on host arrays
 * through the host backend; inputs written by kernels queued just before the start are seen
 * (the communication stream waits for the compute stream), results are read back on the
 * compute stream after the wait, dtypes NCCL lacks (int16) are staged, and a started
 * collective overlaps kernels queued after it. A communicator of two ranks that only one rank
 * joins ends with a timeout near its deadline (no hang), and after an abort a collective is
 * refused. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../src/comm/comm_impl.h"
#include "mltrain/comm.h"
#include "mltrain/gpuarray.h"
#include "mltrain/mt_config.h"
#include "mt_test.h"

/* A one-rank communicator bound to cuda:0 through NCCL, or a skip. */
static bool open_nccl(mt_comm **c, mt_device **dev)
{
    *c = NULL;
    *dev = NULL;
#if !MT_HAVE_NCCL
    MT_SKIP("built without NCCL (-DMT_WITH_NCCL=ON)");
    return false;
#else
    int version = 0;
    if (mt__comm_nccl_version(&version) != MT_OK) {
        MT_SKIP("libnccl.so.2 does not load");
        return false;
    }
    if (mt_device_open(dev, "cuda:0") != MT_OK) {
        MT_SKIP("no CUDA device");
        return false;
    }
    mt_comm_options o;
    mt_comm_options_init(&o);
    o.backend = MT_HAVE_MPI ? "mpi" : "local"; /* an MPI singleton where MPI is built */
    o.timeout_s = 60;
    MT_CHECK_OK(mt_comm_world(c, &o));
    MT_CHECK_OK(mt_comm_use_device(*c, *dev, MT_HAVE_MPI ? "auto" : "nccl"));
    MT_CHECK_STR_EQ(mt_comm_device_path(*c), "nccl");
    return true;
#endif
}

static void fill_pattern(float *x, int64_t n, float base)
{
    for (int64_t i = 0; i < n; i++) x[i] = base + 0.25f * (float)(i % 97) - 3.0f;
}

/* Runs kind on host arrays (the host backend) and on device arrays (NCCL) from the same
 * input and checks that the results are identical. */
static void compare(mt_comm *c, mt_device *cuda, mt_device *host, const char *kind, int64_t n,
                    mt_reduce_op op)
{
    int64_t nout = n;
    if (!strcmp(kind, "allgather")) nout = n * mt_comm_size(c);
    if (!strcmp(kind, "reduce_scatter")) nout = n / mt_comm_size(c);
    float *x = mt_malloc(sizeof *x * (size_t)n);
    float *yh = mt_calloc((size_t)nout, sizeof *yh), *yd = mt_calloc((size_t)nout, sizeof *yd);
    MT_CHECK(x && yh && yd);
    fill_pattern(x, n, 1.5f);
    mt_device *devs[2] = {host, cuda};
    float *outs[2] = {yh, yd};
    for (int k = 0; k < 2; k++) {
        mt_array s = {0}, r = {0};
        MT_CHECK_OK(mt_array_from_host(&s, devs[k], MT_FLOAT32, 1, &n, x));
        MT_CHECK_OK(mt_array_zeros(&r, devs[k], MT_FLOAT32, 1, &nout));
        if (!strcmp(kind, "allreduce")) MT_CHECK_OK(mt_comm_allreduce(c, &s, &r, op));
        if (!strcmp(kind, "allgather")) MT_CHECK_OK(mt_comm_allgather(c, &s, &r));
        if (!strcmp(kind, "reduce_scatter")) MT_CHECK_OK(mt_comm_reduce_scatter(c, &s, &r, op));
        if (!strcmp(kind, "broadcast")) {
            MT_CHECK_OK(mt_comm_broadcast(c, &s, 0));
            MT_CHECK_OK(mt_array_to_host(outs[k], sizeof(float) * (size_t)nout, &s));
        } else {
            MT_CHECK_OK(mt_array_to_host(outs[k], sizeof(float) * (size_t)nout, &r));
        }
        mt_array_clear(&s);
        mt_array_clear(&r);
    }
    if (memcmp(yh, yd, sizeof *yh * (size_t)nout) != 0)
        mt_test_fail(__FILE__, __LINE__, "%s of %lld floats: NCCL and host results differ", kind,
                     (long long)n);
    mt_free(x);
    mt_free(yh);
    mt_free(yd);
}

MT_TEST(nccl_one_rank_collectives_match_host)
{
    mt_comm *c;
    mt_device *dev, *host = NULL;
    if (!open_nccl(&c, &dev)) return;
    MT_CHECK_OK(mt_device_open(&host, "host"));
    const int64_t sizes[] = {1, 1000, 1 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        compare(c, dev, host, "allreduce", sizes[i], MT_REDUCE_SUM);
        compare(c, dev, host, "allreduce", sizes[i], MT_REDUCE_MAX);
        compare(c, dev, host, "broadcast", sizes[i], MT_REDUCE_SUM);
        compare(c, dev, host, "allgather", sizes[i], MT_REDUCE_SUM);
        compare(c, dev, host, "reduce_scatter", sizes[i], MT_REDUCE_SUM);
    }
    MT_CHECK_STR_EQ(mt_comm_device_path(c), "nccl");
    mt_device_release(host);
    mt_device_release(dev);
    mt_comm_free(c);
}

MT_TEST(nccl_orders_after_compute_stream_and_overlaps)
{
    mt_comm *c;
    mt_device *dev;
    if (!open_nccl(&c, &dev)) return;
    int64_t n = 1 << 22;
    mt_array a = {0}, b = {0}, other = {0};
    MT_CHECK_OK(mt_array_zeros(&a, dev, MT_FLOAT32, 1, &n));
    MT_CHECK_OK(mt_array_empty(&b, dev, MT_FLOAT32, 1, &n, 'C'));
    MT_CHECK_OK(mt_array_empty(&other, dev, MT_FLOAT32, 1, &n, 'C'));
    for (int step = 1; step <= 3; step++) {
        /* a kernel writes the input; no host synchronisation before the start */
        MT_CHECK_OK(mt_array_fill(&a, mt_scalar_f64(step)));
        mt_comm_req *r = NULL;
        MT_CHECK_OK(mt_comm_iallreduce(c, &a, &b, MT_REDUCE_SUM, &r));
        /* work queued after the start runs next to the collective */
        MT_CHECK_OK(mt_array_fill(&other, mt_scalar_f64(-step)));
        MT_CHECK_OK(mt_comm_wait(r));
        float y[3];
        mt_array tail = {0};
        MT_CHECK_OK(mt_array_to_host(y, sizeof(float), &b));
        MT_CHECK_CLOSE(y[0], step, 0, 0);
        mt_slice sl = mt_slice_range(n - 1, n, 1);
        MT_CHECK_OK(mt_array_slice(&tail, &b, 1, &sl));
        MT_CHECK_OK(mt_array_to_host(&y[1], sizeof(float), &tail));
        MT_CHECK_CLOSE(y[1], step, 0, 0);
        mt_array_clear(&tail);
        MT_CHECK_OK(mt_array_to_host(&y[2], sizeof(float), &other));
        MT_CHECK_CLOSE(y[2], -step, 0, 0);
    }
    /* in place, polled with mt_comm_test */
    mt_comm_req *r = NULL;
    MT_CHECK_OK(mt_comm_iallreduce(c, &a, &a, MT_REDUCE_SUM, &r));
    bool done = false;
    for (int k = 0; k < 100000 && !done; k++) MT_CHECK_OK(mt_comm_test(r, &done));
    MT_CHECK_OK(mt_comm_wait(r));
    mt_array_clear(&a);
    mt_array_clear(&b);
    mt_array_clear(&other);
    mt_device_release(dev);
    mt_comm_free(c);
}

MT_TEST(nccl_dtypes_and_staged_fallback)
{
    mt_comm *c;
    mt_device *dev;
    if (!open_nccl(&c, &dev)) return;
    int64_t n = 5;
    const mt_dtype dts[] = {MT_FLOAT16, MT_BFLOAT16, MT_FLOAT64, MT_INT32, MT_UINT8, MT_BOOL,
                            MT_INT16 /* NCCL has no int16: staged through host memory */};
    const double vals[5] = {0, 1, 2, 0, 1};
    for (size_t i = 0; i < sizeof dts / sizeof dts[0]; i++) {
        mt_array a = {0}, b = {0};
        MT_CHECK_OK(mt_array_zeros(&a, dev, dts[i], 1, &n));
        MT_CHECK_OK(mt_array_zeros(&b, dev, dts[i], 1, &n));
        double src[5];
        memcpy(src, vals, sizeof src);
        mt_array h = {0};
        MT_CHECK_OK(mt_array_from_host(&h, dev, MT_FLOAT64, 1, &n, src));
        MT_CHECK_OK(mt_array_copy(&a, &h)); /* converts */
        MT_CHECK_OK(mt_comm_allreduce(c, &a, &b, dts[i] == MT_BOOL ? MT_REDUCE_ANY
                                                                   : MT_REDUCE_SUM));
        mt_array back = {0};
        MT_CHECK_OK(mt_array_zeros(&back, dev, MT_FLOAT64, 1, &n));
        MT_CHECK_OK(mt_array_copy(&back, &b));
        double got[5];
        MT_CHECK_OK(mt_array_to_host(got, sizeof got, &back));
        for (int k = 0; k < 5; k++) MT_CHECK_CLOSE(got[k], vals[k], 0, 0);
        mt_array_clear(&a);
        mt_array_clear(&b);
        mt_array_clear(&h);
        mt_array_clear(&back);
    }
    mt_device_release(dev);
    mt_comm_free(c);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

MT_TEST(nccl_join_alone_times_out_and_abort_refuses)
{
#if !MT_HAVE_NCCL
    MT_SKIP("built without NCCL (-DMT_WITH_NCCL=ON)");
#else
    int version = 0;
    if (mt__comm_nccl_version(&version) != MT_OK) MT_SKIP("libnccl.so.2 does not load");
    mt_device *dev = NULL;
    if (mt_device_open(&dev, "cuda:0") != MT_OK) MT_SKIP("no CUDA device");
    uint8_t id[MT__NCCL_ID_BYTES];
    MT_CHECK_OK(mt__comm_nccl_unique_id(id));
    /* rank 0 of 2, and rank 1 never comes: a timeout after about 3 s */
    void *impl = NULL;
    MT_CHECK_OK(mt__comm_nccl_prepare(&impl, dev, 0, 2, 3.0));
    double t0 = now_s();
    MT_CHECK_ERR(mt__comm_nccl_join(impl, id), MT_ERR_TIMEOUT, "did not finish within");
    double waited = now_s() - t0;
    MT_CHECK(waited >= 2.5 && waited < 30.0);
    mt__comm_nccl_ops.free(impl, false);
    /* one rank: an all-reduce completes; after an abort the next start is refused */
    MT_CHECK_OK(mt__comm_nccl_unique_id(id));
    MT_CHECK_OK(mt__comm_nccl_new(&impl, dev, id, 0, 1, 30.0));
    int64_t n = 1 << 16;
    mt_array a = {0};
    MT_CHECK_OK(mt_array_zeros(&a, dev, MT_FLOAT32, 1, &n));
    mt__comm_op op;
    memset(&op, 0, sizeof op);
    op.kind = MT__COMM_ALLREDUCE;
    op.op = MT_REDUCE_SUM;
    op.dtype = MT_FLOAT32;
    op.count = n;
    op.send_arr = &a;
    op.recv_arr = &a;
    void *p = NULL;
    MT_CHECK_OK(mt__comm_nccl_ops.dev_start(impl, &op, &p));
    bool done = false;
    t0 = now_s();
    while (!done && now_s() - t0 < 30.0) MT_CHECK_OK(mt__comm_nccl_ops.dev_poll(impl, p, &done));
    MT_CHECK(done);
    mt__comm_nccl_ops.dev_release(impl, p);
    mt__comm_nccl_ops.dev_abort(impl);
    MT_CHECK_ERR(mt__comm_nccl_ops.dev_start(impl, &op, &p), MT_ERR_COMM, "aborted");
    mt__comm_nccl_ops.free(impl, false);
    mt_array_clear(&a);
    mt_device_release(dev);
#endif
}
