/* Shared helpers of the mltrain benchmarks: option parsing, interleaved timing (median of N
 * repetitions after warm-up), the memcpy bandwidth reference measured in the same process,
 * deterministic data, the common output table, and the direct CUDA driver / cuBLAS calls that
 * are the baselines on CUDA devices. See bench_common.h. */
#include "bench_common.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void bench_fail_status(const char *file, int line, const char *expr, mt_status st)
{
    fprintf(stderr, "bench: %s:%d: %s failed: %s: %s\n", file, line, expr, mt_status_name(st),
            mt_last_error());
    exit(1);
}

void bench_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

void *bench_xmalloc(size_t n)
{
    void *p = mt_malloc(n ? n : 1);
    if (!p) bench_fail("out of memory allocating %zu bytes", n);
    return p;
}

/* --------------------------------------------------------------- options */

static _Noreturn void usage(const char *prog, const char *extra, int code)
{
    fprintf(code ? stderr : stdout,
            "usage: %s [--device D] [--reps N] [--warmup N]%s%s\n"
            "  --device D   host (default), opencl:P:D, ...\n"
            "  --reps N     timed repetitions per case (the median is reported)\n"
            "  --warmup N   untimed repetitions first (JIT compile, page faults)\n",
            prog, extra ? " " : "", extra ? extra : "");
    exit(code);
}

static int parse_int(const char *prog, const char *opt, const char *val, int lo)
{
    char *end = NULL;
    errno = 0;
    long v = val ? strtol(val, &end, 10) : 0;
    if (!val || errno || *end || v < lo || v > 1000000) {
        fprintf(stderr, "%s: %s needs an integer >= %d (got '%s')\n", prog, opt, lo,
                val ? val : "");
        exit(2);
    }
    return (int)v;
}

void bench_parse_args(bench_opts *o, int argc, char **argv, int default_reps,
                      const char *extra_usage, bench_extra_opt_fn extra)
{
    o->device = "host";
    o->reps = default_reps;
    o->warmup = 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) usage(argv[0], extra_usage, 0);
        if (!strcmp(a, "--device") && v) {
            o->device = v;
            i++;
        } else if (!strcmp(a, "--reps")) {
            o->reps = parse_int(argv[0], a, v, 1);
            i++;
        } else if (!strcmp(a, "--warmup")) {
            o->warmup = parse_int(argv[0], a, v, 0);
            i++;
        } else {
            int used = extra ? extra(argc, argv, i) : 0;
            if (used <= 0) {
                fprintf(stderr, "%s: unknown or incomplete option '%s'\n", argv[0], a);
                usage(argv[0], extra_usage, 2);
            }
            i += used - 1;
        }
    }
}

mt_device *bench_open_device(const bench_opts *o)
{
    mt_device *dev = NULL;
    mt_status st = mt_device_open(&dev, o->device);
    if (st == MT_ERR_NOT_FOUND || st == MT_ERR_NOT_BUILT) {
        printf("SKIP: device '%s' is not available: %s\n", o->device, mt_last_error());
        exit(BENCH_EXIT_SKIP);
    }
    if (st != MT_OK) bench_fail_status(__FILE__, __LINE__, "mt_device_open", st);
    return dev;
}

int bench_mltrain_threads(void)
{
    const char *e = getenv("MLTRAIN_NUM_THREADS");
    if (e && atoi(e) > 0) return atoi(e);
    return mt_cpu_count();
}

static void cpu_model(char *out, size_t len)
{
    snprintf(out, len, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "model name", 10)) {
            char *c = strchr(line, ':');
            if (c) {
                c++;
                while (*c == ' ') c++;
                c[strcspn(c, "\n")] = 0;
                snprintf(out, len, "%s", c);
            }
            break;
        }
    }
    fclose(f);
}

void bench_print_context(const char *title, const bench_opts *o, mt_device *dev)
{
    char date[64], cpu[256];
    time_t t = time(NULL);
    struct tm tmv;
    gmtime_r(&t, &tmv);
    strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S UTC", &tmv);
    cpu_model(cpu, sizeof cpu);
    const mt_device_info *info = mt_device_get_info(dev);
    const char *blas_thr = getenv("OPENBLAS_NUM_THREADS");
    printf("## %s\n", title);
    printf("date: %s | cpu: %s | CPUs available: %d (online %ld)\n", date, cpu, mt_cpu_count(),
           sysconf(_SC_NPROCESSORS_ONLN));
    printf("device: %s (%s, %d compute units) | mltrain host threads: %d%s | "
           "OPENBLAS_NUM_THREADS=%s\n",
           mt_device_name(dev), info ? info->description : "?", info ? info->compute_units : 0,
           bench_mltrain_threads(), getenv("MLTRAIN_NUM_THREADS") ? " (MLTRAIN_NUM_THREADS)" : "",
           blas_thr ? blas_thr : "(unset)");
    printf("reps: %d (median reported, rounds interleaved) | warm-up: %d\n\n", o->reps,
           o->warmup);
    fflush(stdout);
}

/* --------------------------------------------------------------- timing */

double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_median(const double *x, int n)
{
    if (n <= 0) return 0.0;
    double *s = bench_xmalloc((size_t)n * sizeof *s);
    memcpy(s, x, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    double m = (n % 2) ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
    mt_free(s);
    return m;
}

void bench_run(bench_case *cases, int ncases, int reps, int warmup)
{
    for (int w = 0; w < warmup; w++)
        for (int c = 0; c < ncases; c++) cases[c].fn(cases[c].ctx);
    for (int c = 0; c < ncases; c++) {
        mt_free(cases[c].samples);
        cases[c].samples = bench_xmalloc((size_t)reps * sizeof(double));
        cases[c].nsamples = 0;
    }
    for (int r = 0; r < reps; r++) {
        for (int c = 0; c < ncases; c++) {
            double t0 = bench_now();
            cases[c].fn(cases[c].ctx);
            cases[c].samples[cases[c].nsamples++] = bench_now() - t0;
        }
    }
    for (int c = 0; c < ncases; c++) {
        bench_case *k = &cases[c];
        k->median = bench_median(k->samples, k->nsamples);
        k->min = k->max = k->samples[0];
        for (int i = 1; i < k->nsamples; i++) {
            if (k->samples[i] < k->min) k->min = k->samples[i];
            if (k->samples[i] > k->max) k->max = k->samples[i];
        }
    }
}

double bench_paired_ratio(const bench_case *a, double work_a, const bench_case *b, double work_b)
{
    int n = a->nsamples < b->nsamples ? a->nsamples : b->nsamples;
    if (n <= 0) return 0.0;
    double *r = bench_xmalloc((size_t)n * sizeof *r);
    for (int i = 0; i < n; i++) r[i] = (b->samples[i] / a->samples[i]) * (work_a / work_b);
    double m = bench_median(r, n);
    mt_free(r);
    return m;
}

void bench_case_free(bench_case *c)
{
    mt_free(c->samples);
    c->samples = NULL;
    c->nsamples = 0;
}

/* --------------------------------------------------------------- threads and memcpy */

typedef struct part_arg {
    bench_part_fn fn;
    void *ctx;
    int part, nparts;
} part_arg;

static void *part_main(void *p)
{
    part_arg *a = p;
    a->fn(a->ctx, a->part, a->nparts);
    return NULL;
}

void bench_parallel(bench_part_fn fn, void *ctx, int nparts)
{
    pthread_t th[8];
    part_arg args[8];
    if (nparts < 1) nparts = 1;
    if (nparts > 8) nparts = 8;
    for (int p = 1; p < nparts; p++) {
        args[p] = (part_arg){fn, ctx, p, nparts};
        if (pthread_create(&th[p], NULL, part_main, &args[p]) != 0)
            bench_fail("pthread_create failed");
    }
    fn(ctx, 0, nparts);
    for (int p = 1; p < nparts; p++) pthread_join(th[p], NULL);
}

void bench_memcpy_init(bench_memcpy *m, size_t nbytes)
{
    m->nbytes = nbytes;
    m->src = mt_aligned_alloc(4096, nbytes);
    m->dst = mt_aligned_alloc(4096, nbytes);
    if (!m->src || !m->dst) bench_fail("out of memory for the memcpy buffers (%zu bytes)", nbytes);
    /* Touch every page so the timed copies measure bandwidth, not page faults. */
    memset(m->src, 1, nbytes);
    memset(m->dst, 0, nbytes);
}

void bench_memcpy_deinit(bench_memcpy *m)
{
    mt_aligned_free(m->src);
    mt_aligned_free(m->dst);
    m->src = m->dst = NULL;
}

void bench_memcpy_1t(void *ctx)
{
    bench_memcpy *m = ctx;
    memcpy(m->dst, m->src, m->nbytes);
}

static void memcpy_part(void *ctx, int part, int nparts)
{
    bench_memcpy *m = ctx;
    /* Split on 4 KiB boundaries so each thread copies whole pages. */
    size_t pages = m->nbytes / 4096;
    size_t b = pages * (size_t)part / (size_t)nparts * 4096;
    size_t e = part == nparts - 1 ? m->nbytes : pages * (size_t)(part + 1) / (size_t)nparts * 4096;
    memcpy((char *)m->dst + b, (const char *)m->src + b, e - b);
}

void bench_memcpy_2t(void *ctx)
{
    bench_parallel(memcpy_part, ctx, 2);
}

/* --------------------------------------------------------------- data */

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double unit_f64(uint64_t *s)
{
    return (double)(splitmix64(s) >> 11) * 0x1.0p-53;
}

void bench_fill_uniform_f32(float *p, size_t n, uint64_t seed, float lo, float hi)
{
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) p[i] = lo + (hi - lo) * (float)unit_f64(&s);
}

void bench_fill_uniform_f64(double *p, size_t n, uint64_t seed, double lo, double hi)
{
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) p[i] = lo + (hi - lo) * unit_f64(&s);
}

void bench_fill_normal_f32(float *p, size_t n, uint64_t seed)
{
    uint64_t s = seed;
    const double two_pi = 6.283185307179586;
    for (size_t i = 0; i < n; i += 2) {
        double u1 = 1.0 - unit_f64(&s); /* (0, 1]: log is finite */
        double u2 = unit_f64(&s);
        double r = sqrt(-2.0 * log(u1));
        p[i] = (float)(r * cos(two_pi * u2));
        if (i + 1 < n) p[i + 1] = (float)(r * sin(two_pi * u2));
    }
}

/* --------------------------------------------------------------- output */

void bench_table_header(void)
{
    printf("| benchmark | implementation | threads | median ms | min-max ms | rate | ratio |\n");
    printf("|---|---|---|---:|---:|---:|---|\n");
}

double bench_rate(const bench_case *c, double work)
{
    return c->median > 0 ? work / c->median / 1e9 : 0.0;
}

void bench_table_row(const char *bench, const char *impl, const char *threads,
                     const bench_case *c, double work, const char *unit,
                     const char *ratio_text)
{
    char rate[64] = "";
    if (work > 0) snprintf(rate, sizeof rate, "%.2f %s", bench_rate(c, work), unit);
    printf("| %s | %s | %s | %.3f | %.3f-%.3f | %s | %s |\n", bench, impl, threads,
           c->median * 1e3, c->min * 1e3, c->max * 1e3, rate, ratio_text ? ratio_text : "");
    fflush(stdout);
}

/* --------------------------------------------------------------- CUDA baselines */

#if MT_BENCH_HAVE_CUDA
#include <cublas_api.h>
#include <cuda.h>
#include <dlfcn.h>

/* The driver and cuBLAS entry points the baselines call (the versioned symbol names that
 * cuda.h's macros map the plain names to). */
typedef struct bench_cu_api {
    __typeof__(&cuInit) Init;
    __typeof__(&cuDriverGetVersion) DriverGetVersion;
    __typeof__(&cuGetErrorName) GetErrorName;
    __typeof__(&cuDeviceGet) DeviceGet;
    __typeof__(&cuDevicePrimaryCtxRetain) PrimaryCtxRetain;
    __typeof__(&cuDevicePrimaryCtxRelease_v2) PrimaryCtxRelease;
    __typeof__(&cuCtxSetCurrent) CtxSetCurrent;
    __typeof__(&cuStreamCreate) StreamCreate;
    __typeof__(&cuStreamDestroy_v2) StreamDestroy;
    __typeof__(&cuStreamSynchronize) StreamSynchronize;
    __typeof__(&cuMemAlloc_v2) MemAlloc;
    __typeof__(&cuMemFree_v2) MemFree;
    __typeof__(&cuMemcpyHtoD_v2) MemcpyHtoD;
    __typeof__(&cuMemcpyDtoH_v2) MemcpyDtoH;
    __typeof__(&cuMemcpyDtoDAsync_v2) MemcpyDtoDAsync;
    __typeof__(&cublasCreate_v2) BlasCreate;
    __typeof__(&cublasDestroy_v2) BlasDestroy;
    __typeof__(&cublasSetStream_v2) BlasSetStream;
    __typeof__(&cublasGetVersion_v2) BlasGetVersion;
    __typeof__(&cublasSgemm_v2) Sgemm;
    __typeof__(&cublasDgemm_v2) Dgemm;
} bench_cu_api;

struct bench_cuda {
    bench_cu_api f;
    void *lib_cuda, *lib_blas;
    CUdevice dev;
    CUcontext ctx;
    CUstream stream;
    cublasHandle_t blas;
    char versions[128];
};

static void cu_check(const bench_cuda *c, CUresult r, const char *what)
{
    if (r == CUDA_SUCCESS) return;
    const char *name = NULL;
    if (c->f.GetErrorName) c->f.GetErrorName(r, &name);
    bench_fail("CUDA baseline: %s failed: %s (%d)", what, name ? name : "?", (int)r);
}

static void blas_check(cublasStatus_t r, const char *what)
{
    if (r != CUBLAS_STATUS_SUCCESS)
        bench_fail("CUDA baseline: %s failed: cuBLAS status %d", what, (int)r);
}

static void *bench_dlopen_first(const char *const *names, int n, char *why, size_t why_len)
{
    for (int i = 0; i < n; i++) {
        if (!names[i]) continue;
        void *h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
        if (h) return h;
    }
    const char *e = dlerror();
    snprintf(why, why_len, "cannot load %s: %s", names[0], e ? e : "not found");
    return NULL;
}

#define BENCH_SYM(c, lib, field, sym)                                               \
    do {                                                                             \
        *(void **)&(c)->f.field = dlsym((lib), sym);                                 \
        if (!(c)->f.field) {                                                         \
            snprintf(why, why_len, "symbol %s missing", sym);                        \
            bench_cuda_close(c);                                                     \
            return NULL;                                                             \
        }                                                                            \
    } while (0)

bench_cuda *bench_cuda_open(const char *device_name, bool need_blas, char *why, size_t why_len)
{
    int ordinal = -1;
    char rest = 0;
    if (!device_name || sscanf(device_name, "cuda:%d%c", &ordinal, &rest) != 1 || ordinal < 0) {
        snprintf(why, why_len, "'%s' is not a CUDA device name", device_name ? device_name : "");
        return NULL;
    }
    bench_cuda *c = bench_xmalloc(sizeof *c);
    memset(c, 0, sizeof *c);
    const char *cuda_names[] = {"libcuda.so.1", "libcuda.so"};
    c->lib_cuda = bench_dlopen_first(cuda_names, 2, why, why_len);
    if (!c->lib_cuda) {
        bench_cuda_close(c);
        return NULL;
    }
    BENCH_SYM(c, c->lib_cuda, Init, "cuInit");
    BENCH_SYM(c, c->lib_cuda, DriverGetVersion, "cuDriverGetVersion");
    BENCH_SYM(c, c->lib_cuda, GetErrorName, "cuGetErrorName");
    BENCH_SYM(c, c->lib_cuda, DeviceGet, "cuDeviceGet");
    BENCH_SYM(c, c->lib_cuda, PrimaryCtxRetain, "cuDevicePrimaryCtxRetain");
    BENCH_SYM(c, c->lib_cuda, PrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2");
    BENCH_SYM(c, c->lib_cuda, CtxSetCurrent, "cuCtxSetCurrent");
    BENCH_SYM(c, c->lib_cuda, StreamCreate, "cuStreamCreate");
    BENCH_SYM(c, c->lib_cuda, StreamDestroy, "cuStreamDestroy_v2");
    BENCH_SYM(c, c->lib_cuda, StreamSynchronize, "cuStreamSynchronize");
    BENCH_SYM(c, c->lib_cuda, MemAlloc, "cuMemAlloc_v2");
    BENCH_SYM(c, c->lib_cuda, MemFree, "cuMemFree_v2");
    BENCH_SYM(c, c->lib_cuda, MemcpyHtoD, "cuMemcpyHtoD_v2");
    BENCH_SYM(c, c->lib_cuda, MemcpyDtoH, "cuMemcpyDtoH_v2");
    BENCH_SYM(c, c->lib_cuda, MemcpyDtoDAsync, "cuMemcpyDtoDAsync_v2");
    CUresult r = c->f.Init(0);
    if (r == CUDA_SUCCESS) r = c->f.DeviceGet(&c->dev, ordinal);
    if (r != CUDA_SUCCESS) {
        const char *name = NULL;
        c->f.GetErrorName(r, &name);
        snprintf(why, why_len, "no CUDA device %d: %s", ordinal, name ? name : "?");
        c->f.GetErrorName = NULL;
        bench_cuda_close(c);
        return NULL;
    }
    cu_check(c, c->f.PrimaryCtxRetain(&c->ctx, c->dev), "cuDevicePrimaryCtxRetain");
    cu_check(c, c->f.CtxSetCurrent(c->ctx), "cuCtxSetCurrent");
    cu_check(c, c->f.StreamCreate(&c->stream, CU_STREAM_NON_BLOCKING), "cuStreamCreate");
    int drv = 0;
    c->f.DriverGetVersion(&drv);
    int len = snprintf(c->versions, sizeof c->versions, "CUDA driver %d.%d", drv / 1000,
                       (drv % 1000) / 10);
    if (need_blas) {
        char dir_lib[512] = "";
        const char *home = getenv("CUDA_HOME");
        if (home && *home) snprintf(dir_lib, sizeof dir_lib, "%s/lib64/libcublas.so.13", home);
        const char *blas_names[] = {"libcublas.so.13", "libcublas.so", dir_lib[0] ? dir_lib : NULL,
                                    "/usr/local/cuda/lib64/libcublas.so.13"};
        c->lib_blas = bench_dlopen_first(blas_names, 4, why, why_len);
        if (!c->lib_blas) {
            bench_cuda_close(c);
            return NULL;
        }
        BENCH_SYM(c, c->lib_blas, BlasCreate, "cublasCreate_v2");
        BENCH_SYM(c, c->lib_blas, BlasDestroy, "cublasDestroy_v2");
        BENCH_SYM(c, c->lib_blas, BlasSetStream, "cublasSetStream_v2");
        BENCH_SYM(c, c->lib_blas, BlasGetVersion, "cublasGetVersion_v2");
        BENCH_SYM(c, c->lib_blas, Sgemm, "cublasSgemm_v2");
        BENCH_SYM(c, c->lib_blas, Dgemm, "cublasDgemm_v2");
        blas_check(c->f.BlasCreate(&c->blas), "cublasCreate");
        blas_check(c->f.BlasSetStream(c->blas, (cudaStream_t)c->stream), "cublasSetStream");
        int v = 0;
        c->f.BlasGetVersion(c->blas, &v);
        snprintf(c->versions + len, sizeof c->versions - (size_t)len, ", cuBLAS %d.%d.%d",
                 v / 10000, (v / 100) % 100, v % 100);
    }
    return c;
}

void bench_cuda_close(bench_cuda *c)
{
    if (!c) return;
    if (c->ctx && c->f.CtxSetCurrent) c->f.CtxSetCurrent(c->ctx);
    if (c->blas && c->f.BlasDestroy) c->f.BlasDestroy(c->blas);
    if (c->stream && c->f.StreamDestroy) c->f.StreamDestroy(c->stream);
    if (c->ctx && c->f.PrimaryCtxRelease) c->f.PrimaryCtxRelease(c->dev);
    /* The libraries stay loaded: mltrain's backend may hold the same handles. */
    mt_free(c);
}

const char *bench_cuda_versions(const bench_cuda *c)
{
    return c->versions;
}

/* Every call binds the primary context first: mltrain's backend may have left another one
 * current on this thread. */
static void cu_bind(bench_cuda *c)
{
    cu_check(c, c->f.CtxSetCurrent(c->ctx), "cuCtxSetCurrent");
}

uint64_t bench_cuda_alloc(bench_cuda *c, size_t nbytes)
{
    CUdeviceptr p = 0;
    cu_bind(c);
    cu_check(c, c->f.MemAlloc(&p, nbytes ? nbytes : 1), "cuMemAlloc");
    return (uint64_t)p;
}

void bench_cuda_free(bench_cuda *c, uint64_t p)
{
    cu_bind(c);
    if (p) cu_check(c, c->f.MemFree((CUdeviceptr)p), "cuMemFree");
}

void bench_cuda_upload(bench_cuda *c, uint64_t dst, const void *src, size_t nbytes)
{
    cu_bind(c);
    cu_check(c, c->f.MemcpyHtoD((CUdeviceptr)dst, src, nbytes), "cuMemcpyHtoD");
}

void bench_cuda_download(bench_cuda *c, void *dst, uint64_t src, size_t nbytes)
{
    cu_bind(c);
    bench_cuda_sync(c);
    cu_check(c, c->f.MemcpyDtoH(dst, (CUdeviceptr)src, nbytes), "cuMemcpyDtoH");
}

void bench_cuda_copy(bench_cuda *c, uint64_t dst, uint64_t src, size_t nbytes)
{
    cu_bind(c);
    cu_check(c, c->f.MemcpyDtoDAsync((CUdeviceptr)dst, (CUdeviceptr)src, nbytes, c->stream),
             "cuMemcpyDtoDAsync");
}

void bench_cuda_sync(bench_cuda *c)
{
    cu_check(c, c->f.StreamSynchronize(c->stream), "cuStreamSynchronize");
}

void bench_cuda_gemm(bench_cuda *c, bool f64, bool trans_a, bool trans_b, int n, uint64_t a,
                     uint64_t b, uint64_t cc)
{
    if (!c->blas) bench_fail("CUDA baseline: opened without cuBLAS");
    cu_bind(c);
    /* Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap the operands, keep
     * the transpose flags (a row-major matrix read column-major is its transpose). */
    cublasOperation_t ta = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t tb = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    if (f64) {
        const double one = 1.0, zero = 0.0;
        blas_check(c->f.Dgemm(c->blas, tb, ta, n, n, n, &one, (const double *)(uintptr_t)b, n,
                              (const double *)(uintptr_t)a, n, &zero, (double *)(uintptr_t)cc, n),
                   "cublasDgemm");
    } else {
        const float one = 1.0f, zero = 0.0f;
        blas_check(c->f.Sgemm(c->blas, tb, ta, n, n, n, &one, (const float *)(uintptr_t)b, n,
                              (const float *)(uintptr_t)a, n, &zero, (float *)(uintptr_t)cc, n),
                   "cublasSgemm");
    }
}

#else /* !MT_BENCH_HAVE_CUDA */

bench_cuda *bench_cuda_open(const char *device_name, bool need_blas, char *why, size_t why_len)
{
    (void)device_name, (void)need_blas;
    snprintf(why, why_len, "mltrain was built without CUDA");
    return NULL;
}

void bench_cuda_close(bench_cuda *c)
{
    (void)c;
}

const char *bench_cuda_versions(const bench_cuda *c)
{
    (void)c;
    return "";
}

static _Noreturn void no_cuda(void)
{
    bench_fail("CUDA baseline: built without CUDA");
}

uint64_t bench_cuda_alloc(bench_cuda *c, size_t nbytes)
{
    (void)c, (void)nbytes;
    no_cuda();
}

void bench_cuda_free(bench_cuda *c, uint64_t p)
{
    (void)c, (void)p;
}

void bench_cuda_upload(bench_cuda *c, uint64_t dst, const void *src, size_t nbytes)
{
    (void)c, (void)dst, (void)src, (void)nbytes;
    no_cuda();
}

void bench_cuda_download(bench_cuda *c, void *dst, uint64_t src, size_t nbytes)
{
    (void)c, (void)dst, (void)src, (void)nbytes;
    no_cuda();
}

void bench_cuda_copy(bench_cuda *c, uint64_t dst, uint64_t src, size_t nbytes)
{
    (void)c, (void)dst, (void)src, (void)nbytes;
    no_cuda();
}

void bench_cuda_sync(bench_cuda *c)
{
    (void)c;
}

void bench_cuda_gemm(bench_cuda *c, bool f64, bool trans_a, bool trans_b, int n, uint64_t a,
                     uint64_t b, uint64_t cc)
{
    (void)c, (void)f64, (void)trans_a, (void)trans_b, (void)n, (void)a, (void)b, (void)cc;
    no_cuda();
}

#endif /* MT_BENCH_HAVE_CUDA */

int bench_parse_sizes(const char *s, int64_t *out, int max)
{
    int k = 0;
    const char *p = s;
    while (*p && k < max) {
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p || v < 0) bench_fail("bad size list '%s'", s);
        if (v > 0) out[k++] = v;
        if (*end && *end != ',') bench_fail("bad size list '%s'", s);
        p = *end == ',' ? end + 1 : end;
    }
    return k;
}
