/* Shared helpers of the mltrain benchmarks: option parsing, interleaved timing (median of N
 * repetitions after warm-up), the memcpy bandwidth reference measured in the same process,
 * deterministic data and the common output table. See bench_common.h. */
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
