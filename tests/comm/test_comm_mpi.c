/* comm tests that run under mpiexec with 1, 2 and 4 ranks (CTest label mpi): every collective
 * for every dtype and several sizes against a float64 reference computed from the same
 * per-rank inputs, non-blocking overlap, groups, broadcast from a non-zero root, the debug
 * mode's mismatch report, argument errors, and staging through an OpenCL device when one is
 * present. Each case is written for any number of ranks. */
#include <string.h>
#include <unistd.h>

#include "mltrain/comm.h"
#include "mltrain/gpuarray.h"
#include "mt_test.h"

static mt_comm *open_world(bool check)
{
    mt_comm_options o;
    mt_comm_options_init(&o);
    o.backend = "mpi";
    o.timeout_s = 120;
    o.check = check;
    mt_comm *c = NULL;
    MT_CHECK_OK(mt_comm_world(&c, &o));
    MT_CHECK_STR_EQ(mt_comm_backend(c), "mpi");
    return c;
}

static mt_device *host(void)
{
    static mt_device *dev;
    if (!dev) MT_CHECK_OK(mt_device_open(&dev, "host"));
    return dev;
}

/* Input element i of rank r for (dt, op): small integers, so every dtype holds every sum,
 * product, max and min exactly. */
static double gen(int32_t r, int64_t i, mt_dtype dt, mt_reduce_op op)
{
    if (dt == MT_BOOL) return (i + r) % 3 == 0 ? 1 : 0;
    if (op == MT_REDUCE_PROD) return 1 + (double)((i + r) % 2);
    double v = (double)((i * 7 + r * 3) % 11);
    return mt_dtype_kind(dt) == 'u' ? v : v - 5;
}

static double combine(double a, double b, mt_dtype dt, mt_reduce_op op)
{
    if (dt == MT_BOOL) {
        bool orr = op == MT_REDUCE_SUM || op == MT_REDUCE_MAX || op == MT_REDUCE_ANY;
        return orr ? (double)(a != 0 || b != 0) : (double)(a != 0 && b != 0);
    }
    switch (op) {
    case MT_REDUCE_SUM: return a + b;
    case MT_REDUCE_PROD: return a * b;
    case MT_REDUCE_MAX: return a > b ? a : b;
    default: return a < b ? a : b;
    }
}

/* New host array of n elements holding gen(rank, i) converted to dt. */
static void make_input(mt_array *out, int32_t rank, int64_t n, mt_dtype dt, mt_reduce_op op,
                       mt_device *dev)
{
    double *v = malloc(sizeof(double) * (size_t)(n ? n : 1));
    void *raw = malloc(mt_dtype_size(dt) * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++) v[i] = gen(rank, i, dt, op);
    mt_dtype_convert(raw, dt, (ptrdiff_t)mt_dtype_size(dt), v, MT_FLOAT64, sizeof(double),
                     (size_t)n);
    MT_CHECK_OK(mt_array_from_host(out, dev, dt, 1, &n, raw));
    free(v);
    free(raw);
}

static double *read_back(const mt_array *a)
{
    int64_t n = mt_array_size(a);
    size_t es = mt_dtype_size(a->dtype);
    void *raw = malloc(es * (size_t)(n ? n : 1));
    double *v = malloc(sizeof(double) * (size_t)(n ? n : 1));
    MT_CHECK_OK(mt_array_to_host(raw, es * (size_t)n, a));
    mt_dtype_convert(v, MT_FLOAT64, sizeof(double), raw, a->dtype, (ptrdiff_t)es, (size_t)n);
    free(raw);
    return v;
}

static void check_allreduce(mt_comm *c, mt_dtype dt, mt_reduce_op op, int64_t n, bool in_place,
                            mt_device *dev)
{
    int32_t rank = mt_comm_rank(c), size = mt_comm_size(c);
    mt_array send = {0}, recv = {0};
    make_input(&send, rank, n, dt, op, dev);
    if (in_place) {
        mt_array_view(&recv, &send);
    } else {
        MT_CHECK_OK(mt_array_empty(&recv, dev, dt, 1, &n, 'C'));
    }
    MT_CHECK_OK(mt_comm_allreduce(c, &send, &recv, op));
    double *got = read_back(&recv);
    for (int64_t i = 0; i < n; i++) {
        double ref = gen(0, i, dt, op);
        for (int32_t r = 1; r < size; r++) ref = combine(ref, gen(r, i, dt, op), dt, op);
        if (got[i] != ref)
            mt_test_fail(__FILE__, __LINE__,
                         "allreduce %s %s n=%lld%s on %d ranks: element %lld is %g, expected %g",
                         mt_dtype_name(dt), mt_reduce_op_name(op), (long long)n,
                         in_place ? " in place" : "", (int)size, (long long)i, got[i], ref);
    }
    free(got);
    mt_array_clear(&send);
    mt_array_clear(&recv);
}

MT_TEST(allreduce_all_dtypes_ops_sizes)
{
    mt_comm *c = open_world(false);
    static const int64_t sizes[] = {0, 1, 7, 1003};
    static const mt_reduce_op ops[] = {MT_REDUCE_SUM, MT_REDUCE_PROD, MT_REDUCE_MAX,
                                       MT_REDUCE_MIN};
    for (int d = 0; d < MT_DTYPE_COUNT; d++)
        for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++)
            for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
                check_allreduce(c, (mt_dtype)d, ops[o], sizes[s], s == 2, host());
    check_allreduce(c, MT_BOOL, MT_REDUCE_ALL, 100, false, host());
    check_allreduce(c, MT_BOOL, MT_REDUCE_ANY, 100, true, host());
    uint64_t expect = MT_DTYPE_COUNT * 4 * 4 + 2;
    MT_CHECK_EQ_INT(mt_comm_seq(c), expect);
    mt_comm_free(c);
}

MT_TEST(allreduce_large)
{
    mt_comm *c = open_world(false);
    check_allreduce(c, MT_FLOAT32, MT_REDUCE_SUM, (1 << 20) + 3, false, host());
    check_allreduce(c, MT_FLOAT64, MT_REDUCE_MAX, (1 << 18) + 1, true, host());
    check_allreduce(c, MT_FLOAT16, MT_REDUCE_SUM, 65537, false, host());
    check_allreduce(c, MT_BFLOAT16, MT_REDUCE_MIN, 65537, false, host());
    check_allreduce(c, MT_INT64, MT_REDUCE_SUM, 100003, true, host());
    mt_comm_free(c);
}

MT_TEST(float16_sum_rounds_like_float16)
{
    /* 1 + 2^-11 (not a float16) per rank: the float16 result must be the rounded sum */
    mt_comm *c = open_world(false);
    int32_t size = mt_comm_size(c);
    uint16_t h[2] = {mt_f32_to_f16(0.5f), mt_f32_to_bf16(0.25f)};
    MT_CHECK_OK(mt_comm_allreduce_host(c, &h[0], 1, MT_FLOAT16, MT_REDUCE_SUM));
    MT_CHECK_OK(mt_comm_allreduce_host(c, &h[1], 1, MT_BFLOAT16, MT_REDUCE_SUM));
    MT_CHECK_CLOSE(mt_f16_to_f32(h[0]), 0.5 * size, 0, 0);
    MT_CHECK_CLOSE(mt_bf16_to_f32(h[1]), 0.25 * size, 0, 0);
    mt_comm_free(c);
}

MT_TEST(broadcast_from_nonzero_root)
{
    mt_comm *c = open_world(false);
    int32_t rank = mt_comm_rank(c), size = mt_comm_size(c);
    int32_t roots[2] = {size - 1, size / 2};
    for (int k = 0; k < 2; k++) {
        for (int d = 0; d < MT_DTYPE_COUNT; d++) {
            mt_dtype dt = (mt_dtype)d;
            int64_t n = 33;
            mt_array a = {0};
            make_input(&a, rank, n, dt, MT_REDUCE_SUM, host());
            MT_CHECK_OK(mt_comm_broadcast(c, &a, roots[k]));
            double *got = read_back(&a);
            for (int64_t i = 0; i < n; i++) {
                double ref = gen(roots[k], i, dt, MT_REDUCE_SUM);
                if (got[i] != ref)
                    mt_test_fail(__FILE__, __LINE__, "broadcast %s root %d: [%lld] = %g, not %g",
                                 mt_dtype_name(dt), (int)roots[k], (long long)i, got[i], ref);
            }
            free(got);
            mt_array_clear(&a);
        }
    }
    char msg[32] = {0};
    if (rank == size - 1) snprintf(msg, sizeof msg, "hello from %d", (int)rank);
    MT_CHECK_OK(mt_comm_broadcast_host(c, msg, sizeof msg, size - 1));
    char want[32];
    snprintf(want, sizeof want, "hello from %d", (int)(size - 1));
    MT_CHECK_STR_EQ(msg, want);
    mt_comm_free(c);
}

MT_TEST(allgather_and_reduce_scatter)
{
    mt_comm *c = open_world(false);
    int32_t rank = mt_comm_rank(c), size = mt_comm_size(c);
    static const mt_dtype dts[] = {MT_FLOAT32, MT_FLOAT64, MT_INT32, MT_UINT8, MT_FLOAT16,
                                   MT_BFLOAT16, MT_BOOL, MT_INT64};
    for (size_t d = 0; d < sizeof dts / sizeof dts[0]; d++) {
        mt_dtype dt = dts[d];
        int64_t n = 5, total = n * size;
        mt_array send = {0}, recv = {0};
        make_input(&send, rank, n, dt, MT_REDUCE_SUM, host());
        MT_CHECK_OK(mt_array_zeros(&recv, host(), dt, 1, &total));
        MT_CHECK_OK(mt_comm_allgather(c, &send, &recv));
        double *got = read_back(&recv);
        for (int32_t r = 0; r < size; r++)
            for (int64_t i = 0; i < n; i++)
                MT_CHECK_CLOSE(got[r * n + i], gen(r, i, dt, MT_REDUCE_SUM), 0, 0);
        free(got);
        mt_array_clear(&send);
        mt_array_clear(&recv);

        /* reduce_scatter: rank r gets block r of the sum of every rank's input */
        make_input(&send, rank, total, dt, MT_REDUCE_SUM, host());
        MT_CHECK_OK(mt_array_zeros(&recv, host(), dt, 1, &n));
        MT_CHECK_OK(mt_comm_reduce_scatter(c, &send, &recv, MT_REDUCE_SUM));
        got = read_back(&recv);
        for (int64_t i = 0; i < n; i++) {
            int64_t gi = rank * n + i;
            double ref = gen(0, gi, dt, MT_REDUCE_SUM);
            for (int32_t r = 1; r < size; r++)
                ref = combine(ref, gen(r, gi, dt, MT_REDUCE_SUM), dt, MT_REDUCE_SUM);
            MT_CHECK_CLOSE(got[i], ref, 0, 0);
        }
        free(got);
        mt_array_clear(&send);
        mt_array_clear(&recv);
    }
    mt_comm_free(c);
}

MT_TEST(barrier_and_sequence_numbers)
{
    mt_comm *c = open_world(false);
    MT_CHECK_EQ_INT(mt_comm_seq(c), 0);
    for (int i = 0; i < 5; i++) MT_CHECK_OK(mt_comm_barrier(c));
    int64_t x = 1;
    MT_CHECK_OK(mt_comm_allreduce_host(c, &x, 1, MT_INT64, MT_REDUCE_SUM));
    MT_CHECK_EQ_INT(x, mt_comm_size(c));
    MT_CHECK_EQ_INT(mt_comm_seq(c), 6);
    mt_comm_free(c);
}

MT_TEST(nonblocking_overlap)
{
    /* start two collectives, compute while they run, then wait in order */
    mt_comm *c = open_world(false);
    int32_t rank = mt_comm_rank(c), size = mt_comm_size(c);
    int64_t n1 = 300000, n2 = 1001;
    mt_array a = {0}, b = {0}, ra = {0};
    make_input(&a, rank, n1, MT_FLOAT32, MT_REDUCE_SUM, host());
    make_input(&b, rank, n2, MT_INT32, MT_REDUCE_MAX, host());
    MT_CHECK_OK(mt_array_zeros(&ra, host(), MT_FLOAT32, 1, &n1));
    mt_comm_req *q1 = NULL, *q2 = NULL;
    MT_CHECK_OK(mt_comm_iallreduce(c, &a, &ra, MT_REDUCE_SUM, &q1));
    MT_CHECK_OK(mt_comm_iallreduce(c, &b, &b, MT_REDUCE_MAX, &q2));
    volatile double acc = 0;
    for (int i = 0; i < 2000000; i++) acc += (double)i * 1e-9;
    bool done = false;
    for (int k = 0; k < 100000 && !done; k++) {
        MT_CHECK_OK(mt_comm_test(q2, &done));
        if (!done) usleep(100);
    }
    MT_CHECK(done); /* the progress thread finished both while this thread computed */
    MT_CHECK_OK(mt_comm_wait(q1));
    MT_CHECK_OK(mt_comm_wait(q2));
    double *g1 = read_back(&ra), *g2 = read_back(&b);
    for (int64_t i = 0; i < n1; i++) {
        double ref = 0;
        for (int32_t r = 0; r < size; r++) ref += gen(r, i, MT_FLOAT32, MT_REDUCE_SUM);
        if (g1[i] != ref) MT_CHECK_CLOSE(g1[i], ref, 0, 0);
    }
    for (int64_t i = 0; i < n2; i++) {
        double ref = gen(0, i, MT_INT32, MT_REDUCE_MAX);
        for (int32_t r = 1; r < size; r++) ref = combine(ref, gen(r, i, MT_INT32, MT_REDUCE_MAX),
                                                          MT_INT32, MT_REDUCE_MAX);
        if (g2[i] != ref) MT_CHECK_CLOSE(g2[i], ref, 0, 0);
    }
    free(g1);
    free(g2);
    mt_array_clear(&a);
    mt_array_clear(&b);
    mt_array_clear(&ra);
    MT_CHECK_EQ_INT(mt_comm_seq(c), 2);
    mt_comm_free(c);
}

MT_TEST(split_into_groups)
{
    mt_comm *c = open_world(false);
    int32_t rank = mt_comm_rank(c), size = mt_comm_size(c);
    /* two groups by parity, ordered by descending world rank (key = -rank) */
    mt_comm *g = NULL;
    MT_CHECK_OK(mt_comm_split(&g, c, rank % 2, -rank));
    MT_CHECK(g != NULL);
    int32_t gsize = (size - rank % 2 + 1) / 2;
    MT_CHECK_EQ_INT(mt_comm_size(g), gsize);
    int32_t above = 0; /* group members with a larger world rank come first */
    for (int32_t r = rank + 2; r < size; r += 2) above++;
    MT_CHECK_EQ_INT(mt_comm_rank(g), above);
    int64_t v = rank;
    MT_CHECK_OK(mt_comm_allreduce_host(g, &v, 1, MT_INT64, MT_REDUCE_SUM));
    int64_t ref = 0;
    for (int32_t r = rank % 2; r < size; r += 2) ref += r;
    MT_CHECK_EQ_INT(v, ref);
    /* the group's broadcast root is a group rank */
    int32_t w = rank;
    MT_CHECK_OK(mt_comm_broadcast_host(g, &w, sizeof w, mt_comm_size(g) - 1));
    MT_CHECK_EQ_INT(w, rank % 2);
    MT_CHECK(mt_comm_mpi_handle(g) != NULL);
    /* color < 0: not in any group */
    mt_comm *h = NULL;
    MT_CHECK_OK(mt_comm_split(&h, c, rank == 0 ? -1 : 7, 0));
    MT_CHECK((rank == 0) == (h == NULL));
    if (h) {
        MT_CHECK_EQ_INT(mt_comm_size(h), size - 1);
        MT_CHECK_EQ_INT(mt_comm_rank(h), rank - 1);
        MT_CHECK_OK(mt_comm_barrier(h));
    }
    mt_comm_free(h);
    mt_comm_free(c); /* the groups outlive the communicator they came from */
    MT_CHECK_OK(mt_comm_barrier(g));
    mt_comm_free(g);
}

MT_TEST(check_mode_reports_mismatch_on_every_rank)
{
    mt_comm *c = open_world(true);
    int32_t rank = mt_comm_rank(c), size = mt_comm_size(c);
    int64_t n = rank == 1 ? 999 : 1000;
    mt_array a = {0};
    make_input(&a, rank, n, MT_FLOAT32, MT_REDUCE_SUM, host());
    if (size > 1) {
        MT_CHECK_ERR(mt_comm_allreduce(c, &a, &a, MT_REDUCE_SUM), MT_ERR_COMM,
                     "collective #1 mismatch: rank 0 called allreduce(float32 x 1000, sum), "
                     "rank 1 called allreduce(float32 x 999, sum)");
        /* a different collective altogether */
        int32_t x = 0;
        mt_status st = rank == 1 ? mt_comm_barrier(c)
                                 : mt_comm_broadcast_host(c, &x, sizeof x, 0);
        MT_CHECK_EQ_INT(st, MT_ERR_COMM);
        MT_CHECK(strstr(mt_last_error(), "collective #2 mismatch: rank 0 called "
                                         "broadcast(uint8 x 4, root 0), rank 1 called barrier()"));
    } else {
        MT_CHECK_OK(mt_comm_allreduce(c, &a, &a, MT_REDUCE_SUM));
        MT_CHECK_OK(mt_comm_barrier(c));
    }
    /* the communicator is still usable: no rank ran the mismatched collectives */
    int64_t v = 1;
    MT_CHECK_OK(mt_comm_allreduce_host(c, &v, 1, MT_INT64, MT_REDUCE_SUM));
    MT_CHECK_EQ_INT(v, size);
    mt_array_clear(&a);
    mt_comm_free(c);
}

MT_TEST(argument_errors)
{
    mt_comm *c = open_world(false);
    int32_t size = mt_comm_size(c);
    int64_t dims[2] = {4, 6}, n24 = 24, n5 = 5;
    mt_array m = {0}, t = {0}, f = {0}, d = {0};
    MT_CHECK_OK(mt_array_zeros(&m, host(), MT_FLOAT32, 2, dims));
    MT_CHECK_OK(mt_array_transpose(&t, &m, NULL));
    MT_CHECK_OK(mt_array_zeros(&f, host(), MT_FLOAT32, 1, &n24));
    MT_CHECK_OK(mt_array_zeros(&d, host(), MT_FLOAT64, 1, &n24));
    MT_CHECK_ERR(mt_comm_allreduce(c, &t, &f, MT_REDUCE_SUM), MT_ERR_INVALID, "C-contiguous");
    MT_CHECK_ERR(mt_comm_allreduce(c, &m, &d, MT_REDUCE_SUM), MT_ERR_DTYPE, "float64");
    MT_CHECK_ERR(mt_comm_allreduce(c, &m, &m, MT_REDUCE_MEAN), MT_ERR_UNSUPPORTED, "mean");
    MT_CHECK_ERR(mt_comm_broadcast(c, &m, size), MT_ERR_RANGE, "root");
    mt_array small = {0};
    MT_CHECK_OK(mt_array_zeros(&small, host(), MT_FLOAT32, 1, &n5));
    MT_CHECK_ERR(mt_comm_allreduce(c, &m, &small, MT_REDUCE_SUM), MT_ERR_SHAPE, "elements");
    MT_CHECK_ERR(mt_comm_allgather(c, &m, &small), MT_ERR_SHAPE, "allgather");
    MT_CHECK_EQ_INT(mt_comm_seq(c), 0); /* nothing was started */
    mt_array_clear(&small);
    mt_array_clear(&m);
    mt_array_clear(&t);
    mt_array_clear(&f);
    mt_array_clear(&d);
    mt_comm_free(c);
}

MT_TEST(launch_info_matches_world)
{
    mt_comm *c = open_world(false);
    mt_launch_info li;
    mt_launch_info_get(&li);
    MT_CHECK_STR_EQ(li.launcher, "openmpi");
    MT_CHECK_EQ_INT(li.rank, mt_comm_rank(c));
    MT_CHECK_EQ_INT(li.size, mt_comm_size(c));
    MT_CHECK(li.local_rank >= 0 && li.local_rank < li.local_size);
    MT_CHECK(mt_comm_mpi_handle(c) != NULL);
    mt_comm_free(c);
    /* "auto" picks MPI under mpiexec */
    mt_comm *a = NULL;
    MT_CHECK_OK(mt_comm_world(&a, NULL));
    MT_CHECK_STR_EQ(mt_comm_backend(a), "mpi");
    MT_CHECK_EQ_INT(mt_comm_size(a), li.size);
    mt_comm_free(a);
}

MT_TEST(device_arrays_are_staged)
{
    mt_device *dev = NULL;
    mt_status st = mt_device_open(&dev, "opencl");
    if (st == MT_ERR_NOT_BUILT || st == MT_ERR_NOT_FOUND) MT_SKIP("no OpenCL device");
    MT_CHECK_OK(st);
    if (mt_device_is_host_addressable(dev)) {
        mt_device_release(dev);
        MT_SKIP("the OpenCL device is host-addressable: nothing to stage");
    }
    mt_comm *c = open_world(false);
    check_allreduce(c, MT_FLOAT32, MT_REDUCE_SUM, 1003, false, dev);
    check_allreduce(c, MT_INT64, MT_REDUCE_MAX, 17, true, dev);
    check_allreduce(c, MT_FLOAT16, MT_REDUCE_SUM, 65, false, dev);
    int32_t rank = mt_comm_rank(c), size = mt_comm_size(c);
    mt_array a = {0};
    make_input(&a, rank, 9, MT_FLOAT64, MT_REDUCE_SUM, dev);
    MT_CHECK_OK(mt_comm_broadcast(c, &a, size - 1));
    double *got = read_back(&a);
    for (int i = 0; i < 9; i++) MT_CHECK_CLOSE(got[i], gen(size - 1, i, MT_FLOAT64, MT_REDUCE_SUM), 0, 0);
    free(got);
    mt_array_clear(&a);
    mt_comm_free(c);
    mt_device_release(dev);
}
