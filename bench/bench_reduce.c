/* Reduction benchmark (issue 2): float32 sums through mt_array_reduce — the full sum of 16M
 * contiguous elements, and the sums over axis 1 (rows) and axis 0 (columns) of a 4096x4096
 * matrix — as GB/s of input read (64 MiB each), compared with the memcpy bandwidth measured in
 * the same process (one thread and two threads; target >= 0.7). A plain C loop that only reads
 * (two threads, vectorized blocks) shows what the memory system gives a read-only pass.
 * Results are checked against float64 sums. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"

static int64_t g_n = 16777216; /* full reduction */
static int64_t g_m = 4096;     /* matrix side */

static int extra_opt(int argc, char **argv, int i)
{
    if (!strcmp(argv[i], "--n") && i + 1 < argc) {
        g_n = atoll(argv[i + 1]);
        if (g_n < 1024) bench_fail("--n must be >= 1024");
        return 2;
    }
    if (!strcmp(argv[i], "--m") && i + 1 < argc) {
        g_m = atoll(argv[i + 1]);
        if (g_m < 32) bench_fail("--m must be >= 32");
        return 2;
    }
    return 0;
}

typedef struct red_ctx {
    const mt_array *src;
    int32_t naxes;
    int32_t axis;
    mt_device *dev;
    mt_array last; /* the result of the latest run, kept for the check */
} red_ctx;

static void run_reduce(void *p)
{
    red_ctx *c = p;
    mt_array_clear(&c->last);
    BENCH_CHECK(mt_array_reduce(&c->last, c->src, MT_REDUCE_SUM, c->naxes, &c->axis, false));
    BENCH_CHECK(mt_device_sync(c->dev));
}

/* Read-only reference: each thread sums its half in blocks of 4096 floats with 16 float32
 * lanes (a loop the compiler vectorizes without reassociation), block totals in float64. */
typedef struct sum_ctx {
    const float *x;
    int64_t n;
    double part[8];
} sum_ctx;

static void sum_part(void *p, int part, int nparts)
{
    sum_ctx *c = p;
    int64_t b = c->n * part / nparts, e = c->n * (part + 1) / nparts;
    double total = 0;
    for (int64_t i = b; i < e; i += 4096) {
        int64_t end = i + 4096 < e ? i + 4096 : e;
        float acc[16] = {0};
        int64_t j = i;
        for (; j + 16 <= end; j += 16)
            for (int k = 0; k < 16; k++) acc[k] += c->x[j + k];
        for (; j < end; j++) acc[0] += c->x[j];
        double blk = 0;
        for (int k = 0; k < 16; k++) blk += acc[k];
        total += blk;
    }
    c->part[part] = total;
}

static void ref_sum_2t(void *p)
{
    bench_parallel(sum_part, p, 2);
}

/* Max relative error of the result (float32 values) against float64 sums. */
static double check_full(const red_ctx *c, const float *x, int64_t n)
{
    float got;
    BENCH_CHECK(mt_array_to_host(&got, sizeof got, &c->last));
    double ref = 0;
    for (int64_t i = 0; i < n; i++) ref += x[i];
    return fabs((double)got - ref) / (fabs(ref) > 1 ? fabs(ref) : 1);
}

static double check_axis(const red_ctx *c, const float *x, int64_t m, int axis)
{
    float *got = bench_xmalloc((size_t)m * sizeof(float));
    double *ref = bench_xmalloc((size_t)m * sizeof(double));
    BENCH_CHECK(mt_array_to_host(got, (size_t)m * sizeof(float), &c->last));
    memset(ref, 0, (size_t)m * sizeof(double));
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < m; j++) ref[axis == 1 ? i : j] += x[i * m + j];
    double worst = 0;
    for (int64_t k = 0; k < m; k++) {
        double e = fabs((double)got[k] - ref[k]) / (fabs(ref[k]) > 1 ? fabs(ref[k]) : 1);
        if (!(e <= worst)) worst = e;
    }
    mt_free(got);
    mt_free(ref);
    return worst;
}

/* Paired ratios of case c (work bytes) against memcpy 1T and 2T (cp bytes each). */
static void ratio_text(char *buf, size_t len, const bench_case *c, double work,
                       const bench_case *cases, double cp)
{
    snprintf(buf, len, "**%.2f** of memcpy 1T, **%.2f** of memcpy 2T",
             bench_paired_ratio(c, work, &cases[0], cp), bench_paired_ratio(c, work, &cases[1], cp));
}

int main(int argc, char **argv)
{
    bench_opts o;
    bench_parse_args(&o, argc, argv, 15, "[--n N] [--m SIDE]", extra_opt);
    mt_device *dev = bench_open_device(&o);
    bool host = !strcmp(mt_device_name(dev), "host");
    bench_print_context("bench_reduce", &o, dev);

    const int64_t n = g_n, m = g_m;
    const size_t nb = (size_t)n * sizeof(float), mb = (size_t)(m * m) * sizeof(float);
    float *hx = bench_xmalloc(nb), *hm = bench_xmalloc(mb);
    bench_fill_uniform_f32(hx, (size_t)n, 11, 0.0f, 1.0f);
    bench_fill_uniform_f32(hm, (size_t)(m * m), 12, -1.0f, 1.0f);
    mt_array X = {0}, M = {0};
    int64_t mdims[2] = {m, m};
    BENCH_CHECK(mt_array_from_host(&X, dev, MT_FLOAT32, 1, &n, hx));
    BENCH_CHECK(mt_array_from_host(&M, dev, MT_FLOAT32, 2, mdims, hm));

    red_ctx full = {.src = &X, .naxes = 0, .axis = 0, .dev = dev};
    red_ctx ax1 = {.src = &M, .naxes = 1, .axis = 1, .dev = dev};
    red_ctx ax0 = {.src = &M, .naxes = 1, .axis = 0, .dev = dev};
    sum_ctx ref = {.x = hx, .n = n};
    if (host) ref.x = (const float *)((char *)mt_buffer_host_ptr(X.buf) + X.offset);
    bench_memcpy cp;
    bench_memcpy_init(&cp, nb);

    bench_case cases[] = {
        {.name = "memcpy 1T", .fn = bench_memcpy_1t, .ctx = &cp},
        {.name = "memcpy 2T", .fn = bench_memcpy_2t, .ctx = &cp},
        {.name = "sum full", .fn = run_reduce, .ctx = &full},
        {.name = "sum axis 1", .fn = run_reduce, .ctx = &ax1},
        {.name = "sum axis 0", .fn = run_reduce, .ctx = &ax0},
        {.name = "C read-only sum 2T", .fn = ref_sum_2t, .ctx = &ref},
    };
    const int ncases = (int)(sizeof cases / sizeof cases[0]);
    bench_run(cases, ncases, o.reps, o.warmup);

    double e_full = check_full(&full, hx, n);
    double e_ax1 = check_axis(&ax1, hm, m, 1), e_ax0 = check_axis(&ax0, hm, m, 0);

    const double cpw = 2.0 * (double)nb;
    char thr[32], r[4][128], name_full[64], name_ax1[64], name_ax0[64];
    snprintf(thr, sizeof thr, host ? "%d (pool)" : "device", bench_mltrain_threads());
    ratio_text(r[0], sizeof r[0], &cases[2], (double)nb, cases, cpw);
    ratio_text(r[1], sizeof r[1], &cases[3], (double)mb, cases, cpw);
    ratio_text(r[2], sizeof r[2], &cases[4], (double)mb, cases, cpw);
    ratio_text(r[3], sizeof r[3], &cases[5], (double)nb, cases, cpw);
    snprintf(name_full, sizeof name_full, "sum f32 [%lld] -> scalar", (long long)n);
    snprintf(name_ax1, sizeof name_ax1, "sum f32 [%lld,%lld] axis 1", (long long)m, (long long)m);
    snprintf(name_ax0, sizeof name_ax0, "sum f32 [%lld,%lld] axis 0", (long long)m, (long long)m);

    printf("float32 sums; rate counts the input read once (%zu MiB); memcpy counts 2 x %zu MiB "
           "(read + write); ratios are medians of per-round ratios\n\n",
           nb / BENCH_MIB, nb / BENCH_MIB);
    bench_table_header();
    bench_table_row("copy 64 MiB", "memcpy (glibc)", "1", &cases[0], cpw, "GB/s", "reference");
    bench_table_row("copy 64 MiB", "memcpy (glibc), 2 pthreads", "2", &cases[1], cpw, "GB/s",
                    "reference");
    bench_table_row(name_full, "mltrain mt_array_reduce", thr, &cases[2], (double)nb, "GB/s", r[0]);
    bench_table_row(name_ax1, "mltrain mt_array_reduce", thr, &cases[3], (double)mb, "GB/s", r[1]);
    bench_table_row(name_ax0, "mltrain mt_array_reduce", thr, &cases[4], (double)mb, "GB/s", r[2]);
    bench_table_row(name_full, "plain C read-only loop (16 lanes), 2 pthreads", "2", &cases[5], (double)nb,
                    "GB/s", r[3]);
    printf("\nmax relative error vs float64 sums: full %.3g, axis 1 %.3g, axis 0 %.3g\n\n", e_full,
           e_ax1, e_ax0);

    for (int i = 0; i < ncases; i++) bench_case_free(&cases[i]);
    mt_array_clear(&full.last);
    mt_array_clear(&ax1.last);
    mt_array_clear(&ax0.last);
    bench_memcpy_deinit(&cp);
    mt_array_clear(&X);
    mt_array_clear(&M);
    mt_free(hx);
    mt_free(hm);
    mt_device_release(dev);
    return 0;
}
