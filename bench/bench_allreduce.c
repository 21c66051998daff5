/* All-reduce benchmark (issue 5): mltrain's mt_comm_allreduce (host arrays, the progress
 * thread, the deadline machinery) against raw MPI_Allreduce on the same buffers, float32 sum,
 * in place, from 8 bytes (latency) and 4 KiB to 256 MiB. Run it under mpirun with 2 ranks:
 *   mpirun -np 2 --bind-to none build/bench/bench_allreduce [--max-mib N] [--reps N]
 * For each size the two sides alternate (raw, mltrain, raw, mltrain, ...; every repetition is
 * a barrier, then one timed call); a repetition's time is the slowest rank's. The table gives
 * medians, the bus bandwidth busbw = bytes / t * 2 (n - 1) / n (nccl-tests' definition) and the
 * ratio mltrain / raw of the paired per-round busbw (median over rounds). */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"
#include "mltrain/comm.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *x, int n)
{
    qsort(x, (size_t)n, sizeof *x, cmp_double);
    return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

int main(int argc, char **argv)
{
    int max_mib = 256, reps_override = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--max-mib") == 0 && i + 1 < argc)
            max_mib = atoi(argv[++i]);
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
            reps_override = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: mpirun -np 2 bench_allreduce [--max-mib N] [--reps N]\n");
            return 2;
        }
    }
    mt_comm_options o;
    mt_comm_options_init(&o);
    o.backend = "mpi";
    mt_comm *comm = NULL;
    BENCH_CHECK(mt_comm_world(&comm, &o));
    int rank = mt_comm_rank(comm), size = mt_comm_size(comm);
    int provided = 0;
    MPI_Query_thread(&provided);
    mt_device *dev = NULL;
    BENCH_CHECK(mt_device_open(&dev, "host"));
    int64_t max_n = (int64_t)max_mib * (1 << 20) / 4;
    mt_array buf = {0};
    BENCH_CHECK(mt_array_zeros(&buf, dev, MT_FLOAT32, 1, &max_n));
    float *p = mt_buffer_host_ptr(buf.buf);
    if (rank == 0) {
        bench_opts bo = {.device = "host", .reps = 0, .warmup = 0};
        bench_print_context("all-reduce: mt_comm_allreduce vs MPI_Allreduce (float32 sum, in place)",
                            &bo, dev);
        printf("ranks %d, MPI thread level %s, progress-thread spin %s us\n", size,
               provided == MPI_THREAD_MULTIPLE ? "MULTIPLE" : "below MULTIPLE",
               getenv("MLTRAIN_COMM_SPIN_US") ? getenv("MLTRAIN_COMM_SPIN_US") : "50 (default)");
        printf("%10s %6s %12s %12s %10s %10s %8s\n", "bytes", "reps", "raw_us", "mltrain_us",
               "raw_busbw", "mt_busbw", "ratio");
    }
    double factor = size > 1 ? 2.0 * (size - 1) / size : 1.0;
    int64_t sizes[32];
    int nsizes = 0;
    sizes[nsizes++] = 2; /* 8 bytes: latency */
    for (int64_t n = 1024; n <= max_n; n *= 4) sizes[nsizes++] = n;
    for (int s = 0; s < nsizes; s++) {
        int64_t n = sizes[s];
        size_t bytes = (size_t)n * 4;
        int reps = bytes <= (1u << 20) ? 200 : bytes <= (16u << 20) ? 30 : 9;
        if (reps_override) reps = reps_override;
        mt_array view = {0};
        mt_slice sl = mt_slice_range(0, n, 1);
        BENCH_CHECK(mt_array_slice(&view, &buf, 1, &sl));
        double *t_raw = malloc(sizeof(double) * (size_t)reps);
        double *t_mt = malloc(sizeof(double) * (size_t)reps);
        double *ratio = malloc(sizeof(double) * (size_t)reps);
        for (int r = -3; r < reps; r++) { /* 3 untimed rounds first */
            for (int side = 0; side < 2; side++) {
                for (int64_t i = 0; i < (n < 16 ? n : 16); i++) p[i] = 1.0f;
                MPI_Barrier(MPI_COMM_WORLD);
                double t0 = MPI_Wtime();
                if (side == 0) {
                    MPI_Allreduce(MPI_IN_PLACE, p, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
                } else {
                    BENCH_CHECK(mt_comm_allreduce(comm, &view, &view, MT_REDUCE_SUM));
                }
                double dt = MPI_Wtime() - t0, worst = 0;
                MPI_Allreduce(&dt, &worst, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
                if (p[0] != (float)size) bench_fail("wrong sum %g (expected %d)", p[0], size);
                if (r >= 0) (side == 0 ? t_raw : t_mt)[r] = worst;
            }
            if (r >= 0) ratio[r] = t_raw[r] / t_mt[r];
        }
        double mr = median(t_raw, reps), mm = median(t_mt, reps), rat = median(ratio, reps);
        if (rank == 0)
            printf("%10zu %6d %12.1f %12.1f %10.3f %10.3f %8.3f\n", bytes, reps, mr * 1e6,
                   mm * 1e6, bytes / mr * factor / 1e9, bytes / mm * factor / 1e9, rat);
        fflush(stdout);
        free(t_raw);
        free(t_mt);
        free(ratio);
        mt_array_clear(&view);
    }
    mt_array_clear(&buf);
    mt_device_release(dev);
    mt_comm_free(comm);
    return 0;
}
