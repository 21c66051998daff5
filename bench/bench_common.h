/* Shared helpers of the mltrain benchmarks (bench_elemwise, bench_reduce, bench_gemm):
 * command-line options, interleaved timing with medians, the memcpy bandwidth reference
 * (one thread and two threads), reproducible test data and a common table format.
 *
 * Benchmarks are programs, not library code: on a failed mltrain call they print the
 * recorded message and exit 1 (BENCH_CHECK). They measure mltrain and its baseline in the
 * same process, interleaving the repetitions (A B A B ...) so that the noise of this shared
 * machine hits both sides alike. */
#ifndef MT_BENCH_COMMON_H
#define MT_BENCH_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mltrain/core.h"
#include "mltrain/gpuarray.h"

#define BENCH_MIB ((size_t)1 << 20)

/* Exit code for "the requested device is not present": the same SKIP code as the tests. */
#define BENCH_EXIT_SKIP 77

/* Aborts the benchmark (exit 1) with the mltrain error message when expr fails. */
#define BENCH_CHECK(expr)                                                               \
    do {                                                                                \
        mt_status bench_st_ = (expr);                                                   \
        if (bench_st_ != MT_OK) bench_fail_status(__FILE__, __LINE__, #expr, bench_st_); \
    } while (0)

_Noreturn void bench_fail_status(const char *file, int line, const char *expr, mt_status st);
_Noreturn void bench_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Options every benchmark takes. */
typedef struct bench_opts {
    const char *device; /* --device D (default "host") */
    int reps;           /* --reps N: timed repetitions per case (median over them) */
    int warmup;         /* --warmup N: untimed runs first (JIT compile, page faults) */
} bench_opts;

/* Called for each option the common parser does not know; returns the number of argv
 * entries consumed (1 or 2), or 0 if the option is unknown too (then usage + exit 2). */
typedef int (*bench_extra_opt_fn)(int argc, char **argv, int i);

void bench_parse_args(bench_opts *o, int argc, char **argv, int default_reps,
                      const char *extra_usage, bench_extra_opt_fn extra);

/* Parses a comma-separated list of sizes ("256,1024"; zeros skipped) into out (at most max);
 * returns how many. A malformed list ends the benchmark with a message. */
int bench_parse_sizes(const char *s, int64_t *out, int max);

/* Opens o->device. When it is absent (ERR_NOT_FOUND / ERR_NOT_BUILT) prints a SKIP line and
 * exits BENCH_EXIT_SKIP; other failures exit 1. */
mt_device *bench_open_device(const bench_opts *o);

/* Prints the run's context: date (UTC), CPU, CPUs available, thread settings, the device. */
void bench_print_context(const char *title, const bench_opts *o, mt_device *dev);

/* --------------------------------------------------------------- timing */

typedef void (*bench_fn)(void *ctx);

/* One measured case: fn(ctx) is one repetition (it must include any device sync). */
typedef struct bench_case {
    const char *name;
    bench_fn fn;
    void *ctx;
    double *samples; /* seconds, filled by bench_run */
    int nsamples;
    double median, min, max; /* seconds */
} bench_case;

/* Runs `warmup` untimed rounds, then `reps` timed rounds; every round calls each case once
 * in order (interleaved), so slow phases of the machine hit all cases alike. Fills the
 * samples and statistics of each case. */
void bench_run(bench_case *cases, int ncases, int reps, int warmup);
void bench_case_free(bench_case *c);
/* Speed of case a relative to case b, both measured in the same rounds: the median over rounds
 * of (b's time / a's time) * (work_a / work_b). Pairing the samples of one round cancels slow
 * drifts of the machine better than a ratio of the two medians. */
double bench_paired_ratio(const bench_case *a, double work_a, const bench_case *b, double work_b);
double bench_median(const double *x, int n);
double bench_now(void);

/* --------------------------------------------------------------- memcpy reference */

/* Two page-aligned, pre-faulted buffers of nbytes for the memcpy bandwidth reference. */
typedef struct bench_memcpy {
    void *src, *dst;
    size_t nbytes;
} bench_memcpy;
void bench_memcpy_init(bench_memcpy *m, size_t nbytes);
void bench_memcpy_deinit(bench_memcpy *m);
void bench_memcpy_1t(void *ctx); /* memcpy(dst, src, nbytes) on the calling thread */
void bench_memcpy_2t(void *ctx); /* two threads (one pthread + caller) each copy a half */

/* Runs fn(ctx, part, nparts) for part 0..nparts-1 on nparts threads (the caller takes
 * part 0); nparts <= 8. Used for two-thread references of plain C loops. */
typedef void (*bench_part_fn)(void *ctx, int part, int nparts);
void bench_parallel(bench_part_fn fn, void *ctx, int nparts);

/* --------------------------------------------------------------- data */

/* Deterministic data: uniform in [lo, hi) or standard normal * scale, from a splitmix64
 * stream (independent of mltrain's generator, so the baseline data does not depend on the
 * code under test). */
void bench_fill_uniform_f32(float *p, size_t n, uint64_t seed, float lo, float hi);
void bench_fill_uniform_f64(double *p, size_t n, uint64_t seed, double lo, double hi);
void bench_fill_normal_f32(float *p, size_t n, uint64_t seed);
/* mt_malloc or exit 1. */
void *bench_xmalloc(size_t n);

/* --------------------------------------------------------------- output */

/* Table: | benchmark | implementation | threads | median ms | min-max ms | rate | ratio | */
void bench_table_header(void);
/* rate = work / median (work in bytes -> "GB/s" with 1e9, or flops -> "GFLOP/s");
 * work <= 0 leaves the rate empty; ratio_text may be NULL. */
void bench_table_row(const char *bench, const char *impl, const char *threads,
                     const bench_case *c, double work, const char *unit,
                     const char *ratio_text);
/* work / c->median / 1e9 */
double bench_rate(const bench_case *c, double work);
/* The number of threads mltrain's host pool uses (MLTRAIN_NUM_THREADS, else CPUs). */
int bench_mltrain_threads(void);

/* --------------------------------------------------------------- CUDA baselines */

/* Direct CUDA driver and cuBLAS calls: the baselines of the benchmarks on "cuda:N" (a device-to-
 * device copy for the elementwise bandwidth, cublasSgemm/Dgemm for GEMM). Built when mltrain is
 * built with CUDA (MT_BENCH_HAVE_CUDA); libcuda and libcublas are dlopen'ed like mltrain's
 * backend does, and the calls run in the device's primary context (the one mltrain uses) on a
 * stream of their own. Device pointers are passed as uint64_t (CUdeviceptr). Failed calls exit 1
 * with the driver's or cuBLAS's error name. */
typedef struct bench_cuda bench_cuda;

/* Opens the baseline on the device of `device_name` ("cuda:N"); need_blas also loads cuBLAS.
 * Returns NULL and a reason in why when it is unavailable (not built with CUDA, not a CUDA
 * device name, library or device missing). */
bench_cuda *bench_cuda_open(const char *device_name, bool need_blas, char *why, size_t why_len);
void bench_cuda_close(bench_cuda *c); /* NULL ok */
/* "CUDA driver 13.0, cuBLAS 13.1.0" */
const char *bench_cuda_versions(const bench_cuda *c);
uint64_t bench_cuda_alloc(bench_cuda *c, size_t nbytes);
void bench_cuda_free(bench_cuda *c, uint64_t p);
void bench_cuda_upload(bench_cuda *c, uint64_t dst, const void *src, size_t nbytes);
void bench_cuda_download(bench_cuda *c, void *dst, uint64_t src, size_t nbytes);
/* Queues a device-to-device copy on the baseline's stream. */
void bench_cuda_copy(bench_cuda *c, uint64_t dst, uint64_t src, size_t nbytes);
/* Waits for the baseline's stream. */
void bench_cuda_sync(bench_cuda *c);
/* Queues C = op(A) op(B) for row-major square n x n matrices on the baseline's stream (cuBLAS,
 * default math mode: no TF32); f64 selects Dgemm. */
void bench_cuda_gemm(bench_cuda *c, bool f64, bool trans_a, bool trans_b, int n, uint64_t a,
                     uint64_t b, uint64_t cc);

#endif /* MT_BENCH_COMMON_H */
