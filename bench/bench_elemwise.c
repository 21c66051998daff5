/* Elementwise benchmark (issue 2): contiguous float32 `a*b+c` on 16M elements through one fused
 * mt_elemwise kernel, as GB/s (3 reads + 1 write of 64 MiB counted) and as a fraction of the
 * memcpy bandwidth measured in the same process (one thread and two threads, because
 * mltrain's host pool uses every CPU). Plain C loops over the same arrays are shown as a
 * second reference. Then the long expression
 *     tanh(x)*sigmoid(x) + exp(-x*x)*0.5 - log1p(abs(x))
 * on 16M float32 (ms), against a scalar glibc C loop in the same process (peers.md lists
 * numpy/torch/Theano at ~480-740 ms on a Zen 3 VM; numpy_baseline.py measures them on the
 * machine at hand), with the maximum absolute error against float64.
 *
 * On a CUDA device ("cuda:N") the reference of a*b+c is the device's own device-to-device copy
 * bandwidth (cuMemcpyDtoDAsync between two buffers of the same size, on the same GPU, in the same
 * process; issue 6 target: mltrain >= 0.85 of it), and a sample is --inner calls (default 10)
 * followed by one synchronization, so the launch and sync latency is amortized alike on both
 * sides. The host C loops are not run there. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"

static int64_t g_n = 16777216;
static int g_long_reps = -1;
static bool g_skip_long = false;
static int g_inner = 10; /* CUDA: calls per sample */

static int extra_opt(int argc, char **argv, int i)
{
    if (!strcmp(argv[i], "--n") && i + 1 < argc) {
        g_n = atoll(argv[i + 1]);
        if (g_n < 1024) bench_fail("--n must be >= 1024");
        return 2;
    }
    if (!strcmp(argv[i], "--long-reps") && i + 1 < argc) {
        g_long_reps = atoi(argv[i + 1]);
        if (g_long_reps < 1) bench_fail("--long-reps must be >= 1");
        return 2;
    }
    if (!strcmp(argv[i], "--inner") && i + 1 < argc) {
        g_inner = atoi(argv[i + 1]);
        if (g_inner < 1) bench_fail("--inner must be >= 1");
        return 2;
    }
    if (!strcmp(argv[i], "--skip-long")) {
        g_skip_long = true;
        return 1;
    }
    return 0;
}

/* ------------------------------------------------------------ mltrain side */

typedef struct elem_ctx {
    const mt_kexpr *expr;
    int32_t nin;
    const mt_array *in[3];
    mt_array *out[1];
    mt_device *dev;
    int inner; /* calls per sample (0 counts as 1) */
} elem_ctx;

static void run_elem(void *p)
{
    elem_ctx *c = p;
    for (int k = 0; k < (c->inner > 1 ? c->inner : 1); k++)
        BENCH_CHECK(mt_elemwise(c->expr, c->nin, c->in, c->out, 0, NULL));
    BENCH_CHECK(mt_device_sync(c->dev));
}

static void check_node(int32_t node, const char *what)
{
    if (node < 0) bench_fail("building the kernel expression %s: %s", what, mt_last_error());
}

/* o0 = i0 * i1 + i2 (float32) */
static void build_fma(mt_kexpr *e)
{
    mt_kexpr_init(e);
    int32_t a = mt_kexpr_input(e, 0, MT_FLOAT32);
    int32_t b = mt_kexpr_input(e, 1, MT_FLOAT32);
    int32_t c = mt_kexpr_input(e, 2, MT_FLOAT32);
    int32_t r = mt_kexpr_binary(e, MT_SOP_ADD, mt_kexpr_binary(e, MT_SOP_MUL, a, b), c);
    check_node(r, "a*b+c");
    BENCH_CHECK(mt_kexpr_add_output(e, r));
    BENCH_CHECK(mt_kexpr_validate(e));
}

/* o0 = tanh(x)*sigmoid(x) + exp(-x*x)*0.5 - log1p(abs(x)) (float32) */
static void build_long(mt_kexpr *e)
{
    mt_kexpr_init(e);
    int32_t x = mt_kexpr_input(e, 0, MT_FLOAT32);
    int32_t ts = mt_kexpr_binary(e, MT_SOP_MUL, mt_kexpr_unary(e, MT_SOP_TANH, x),
                                 mt_kexpr_unary(e, MT_SOP_SIGMOID, x));
    int32_t g = mt_kexpr_unary(
        e, MT_SOP_EXP, mt_kexpr_unary(e, MT_SOP_NEG, mt_kexpr_binary(e, MT_SOP_MUL, x, x)));
    int32_t half = mt_kexpr_const(e, mt_scalar_f64(0.5), MT_FLOAT32);
    int32_t l = mt_kexpr_unary(e, MT_SOP_LOG1P, mt_kexpr_unary(e, MT_SOP_ABS, x));
    int32_t r = mt_kexpr_binary(
        e, MT_SOP_SUB, mt_kexpr_binary(e, MT_SOP_ADD, ts, mt_kexpr_binary(e, MT_SOP_MUL, g, half)),
        l);
    check_node(r, "long expression");
    BENCH_CHECK(mt_kexpr_add_output(e, r));
    BENCH_CHECK(mt_kexpr_validate(e));
}

/* ------------------------------------------------------------ plain C references */

typedef struct loop_ctx {
    const float *a, *b, *c;
    float *o;
    int64_t n;
} loop_ctx;

static void range_of(int64_t n, int part, int nparts, int64_t *b, int64_t *e)
{
    *b = n * part / nparts;
    *e = n * (part + 1) / nparts;
}

static void fma_part(void *p, int part, int nparts)
{
    loop_ctx *c = p;
    int64_t b, e;
    range_of(c->n, part, nparts, &b, &e);
    for (int64_t i = b; i < e; i++) c->o[i] = c->a[i] * c->b[i] + c->c[i];
}

static void ref_fma_1t(void *p)
{
    fma_part(p, 0, 1);
}

static void ref_fma_2t(void *p)
{
    bench_parallel(fma_part, p, 2);
}

static float long_scalar(float x)
{
    float sig = 1.0f / (1.0f + expf(-x));
    return tanhf(x) * sig + expf(-x * x) * 0.5f - log1pf(fabsf(x));
}

static double long_f64(double x)
{
    double sig = 1.0 / (1.0 + exp(-x));
    return tanh(x) * sig + exp(-x * x) * 0.5 - log1p(fabs(x));
}

static void ref_long_1t(void *p)
{
    loop_ctx *c = p;
    for (int64_t i = 0; i < c->n; i++) c->o[i] = long_scalar(c->a[i]);
}

/* ------------------------------------------------------------ helpers */

/* Host pointer of a C-contiguous mltrain array, or NULL when the device is not addressable. */
static float *host_f32(const mt_array *a)
{
    char *base = mt_buffer_host_ptr(a->buf);
    return base ? (float *)(base + a->offset) : NULL;
}

static void upload(mt_array *out, mt_device *dev, const float *data, int64_t n)
{
    BENCH_CHECK(mt_array_from_host(out, dev, MT_FLOAT32, 1, &n, data));
}

static void max_err_fma(const float *o, const float *a, const float *b, const float *c, int64_t n,
                        double *max_abs)
{
    double m = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)o[i] - ((double)a[i] * b[i] + c[i]));
        if (!(d <= m)) m = d; /* NaN wins */
    }
    *max_abs = m;
}

static double max_err_long(const float *o, const float *x, int64_t n)
{
    double m = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)o[i] - long_f64(x[i]));
        if (!(d <= m)) m = d;
    }
    return m;
}

/* ------------------------------------------------------------ the two benchmarks */

/* The operands of a*b+c: seeded host inputs, their device copies, the output and the kernel. */
typedef struct fma_data {
    int64_t n;
    size_t nb;
    float *ha, *hb, *hc, *ho;
    mt_array A, B, C, O;
    mt_kexpr e;
} fma_data;

static void fma_setup(fma_data *d, mt_device *dev)
{
    memset(d, 0, sizeof *d);
    d->n = g_n;
    d->nb = (size_t)d->n * sizeof(float);
    d->ha = bench_xmalloc(d->nb), d->hb = bench_xmalloc(d->nb), d->hc = bench_xmalloc(d->nb);
    d->ho = bench_xmalloc(d->nb);
    bench_fill_uniform_f32(d->ha, (size_t)d->n, 1, -1.0f, 1.0f);
    bench_fill_uniform_f32(d->hb, (size_t)d->n, 2, -1.0f, 1.0f);
    bench_fill_uniform_f32(d->hc, (size_t)d->n, 3, -1.0f, 1.0f);
    memset(d->ho, 0, d->nb);
    upload(&d->A, dev, d->ha, d->n);
    upload(&d->B, dev, d->hb, d->n);
    upload(&d->C, dev, d->hc, d->n);
    BENCH_CHECK(mt_array_zeros(&d->O, dev, MT_FLOAT32, 1, &d->n));
    build_fma(&d->e);
}

/* The output's max abs error against float64. */
static double fma_error(fma_data *d)
{
    double err;
    BENCH_CHECK(mt_array_to_host(d->ho, d->nb, &d->O));
    max_err_fma(d->ho, d->ha, d->hb, d->hc, d->n, &err);
    return err;
}

static void fma_free(fma_data *d)
{
    mt_kexpr_deinit(&d->e);
    mt_array_clear(&d->A);
    mt_array_clear(&d->B);
    mt_array_clear(&d->C);
    mt_array_clear(&d->O);
    mt_free(d->ha);
    mt_free(d->hb);
    mt_free(d->hc);
    mt_free(d->ho);
}

/* CUDA: inner device-to-device copies of nbytes on the baseline's stream, then a sync. */
typedef struct dcopy_ctx {
    bench_cuda *cu;
    uint64_t src, dst;
    size_t nbytes;
    int inner;
} dcopy_ctx;

static void run_dcopy(void *p)
{
    dcopy_ctx *c = p;
    for (int k = 0; k < c->inner; k++) bench_cuda_copy(c->cu, c->dst, c->src, c->nbytes);
    bench_cuda_sync(c->cu);
}

/* a*b+c on a CUDA device against the device's copy bandwidth. */
static void bench_fma_cuda(const bench_opts *o, mt_device *dev, bench_cuda *cu)
{
    fma_data d;
    fma_setup(&d, dev);
    const int64_t n = d.n;
    const size_t nb = d.nb;
    elem_ctx ec = {.expr = &d.e, .nin = 3, .in = {&d.A, &d.B, &d.C}, .out = {&d.O}, .dev = dev,
                   .inner = g_inner};
    dcopy_ctx dc = {.cu = cu, .nbytes = nb, .inner = g_inner};
    dc.src = bench_cuda_alloc(cu, nb);
    dc.dst = bench_cuda_alloc(cu, nb);
    bench_cuda_upload(cu, dc.src, d.ha, nb);
    bench_cuda_upload(cu, dc.dst, d.hb, nb);

    bench_case cases[] = {
        {.name = "device copy", .fn = run_dcopy, .ctx = &dc},
        {.name = "mltrain", .fn = run_elem, .ctx = &ec},
    };
    bench_run(cases, 2, o->reps, o->warmup);
    double err = fma_error(&d);

    const double cp = 2.0 * (double)nb * g_inner, traffic = 4.0 * (double)nb * g_inner;
    char r_mt[128], bname[64];
    snprintf(r_mt, sizeof r_mt, "**%.3f** of the device copy (target >= 0.85)",
             bench_paired_ratio(&cases[1], traffic, &cases[0], cp));
    printf("a*b+c: float32, n = %lld (%zu MiB per array), %d calls per sample then one sync; "
           "rate counts 4 x %zu MiB per call (3 reads + 1 write); the device copy counts 2 x %zu "
           "MiB (read + write); %s\n\n",
           (long long)n, nb / BENCH_MIB, g_inner, nb / BENCH_MIB, nb / BENCH_MIB,
           bench_cuda_versions(cu));
    bench_table_header();
    snprintf(bname, sizeof bname, "copy %zu MiB", nb / BENCH_MIB);
    bench_table_row(bname, "cuMemcpyDtoDAsync (driver), device to device", "device", &cases[0],
                    cp, "GB/s", "reference");
    bench_table_row("a*b+c f32", "mltrain mt_elemwise", "device", &cases[1], traffic, "GB/s",
                    r_mt);
    printf("\nmltrain a*b+c max abs error vs float64: %.3g\n\n", err);

    for (int i = 0; i < 2; i++) bench_case_free(&cases[i]);
    bench_cuda_free(cu, dc.src);
    bench_cuda_free(cu, dc.dst);
    fma_free(&d);
}

static void bench_fma(const bench_opts *o, mt_device *dev, bool host)
{
    fma_data d;
    fma_setup(&d, dev);
    const int64_t n = d.n;
    const size_t nb = d.nb;
    elem_ctx ec = {.expr = &d.e, .nin = 3, .in = {&d.A, &d.B, &d.C}, .out = {&d.O}, .dev = dev};

    /* On the host the C loops read the very arrays mltrain reads; elsewhere host copies. */
    loop_ctx lc = {.a = d.ha, .b = d.hb, .c = d.hc, .o = d.ho, .n = n};
    if (host) {
        lc.a = host_f32(&d.A);
        lc.b = host_f32(&d.B);
        lc.c = host_f32(&d.C);
    }
    bench_memcpy m;
    bench_memcpy_init(&m, nb);

    bench_case cases[] = {
        {.name = "memcpy 1T", .fn = bench_memcpy_1t, .ctx = &m},
        {.name = "memcpy 2T", .fn = bench_memcpy_2t, .ctx = &m},
        {.name = "mltrain", .fn = run_elem, .ctx = &ec},
        {.name = "C loop 1T", .fn = ref_fma_1t, .ctx = &lc},
        {.name = "C loop 2T", .fn = ref_fma_2t, .ctx = &lc},
    };
    const int ncases = (int)(sizeof cases / sizeof cases[0]);
    bench_run(cases, ncases, o->reps, o->warmup);
    double err = fma_error(&d);

    const double cp = 2.0 * (double)nb, traffic = 4.0 * (double)nb;
    char thr[32], r_mt[128], r_c1[96], r_c2[96];
    snprintf(thr, sizeof thr, host ? "%d (pool)" : "device", bench_mltrain_threads());
    snprintf(r_mt, sizeof r_mt, "**%.2f** of memcpy 1T, **%.2f** of memcpy 2T",
             bench_paired_ratio(&cases[2], traffic, &cases[0], cp),
             bench_paired_ratio(&cases[2], traffic, &cases[1], cp));
    snprintf(r_c1, sizeof r_c1, "%.2f of memcpy 1T",
             bench_paired_ratio(&cases[3], traffic, &cases[0], cp));
    snprintf(r_c2, sizeof r_c2, "%.2f of memcpy 2T",
             bench_paired_ratio(&cases[4], traffic, &cases[1], cp));

    printf("a*b+c: float32, n = %lld (%zu MiB per array); rate counts 4 x %zu MiB "
           "(3 reads + 1 write); memcpy counts 2 x %zu MiB (read + write); ratios are medians of "
           "per-round ratios\n\n",
           (long long)n, nb / BENCH_MIB, nb / BENCH_MIB, nb / BENCH_MIB);
    bench_table_header();
    bench_table_row("copy 64 MiB", "memcpy (glibc)", "1", &cases[0], cp, "GB/s", "reference");
    bench_table_row("copy 64 MiB", "memcpy (glibc), 2 pthreads", "2", &cases[1], cp, "GB/s",
                    "reference");
    bench_table_row("a*b+c f32", "mltrain mt_elemwise", thr, &cases[2], traffic, "GB/s", r_mt);
    bench_table_row("a*b+c f32", "plain C loop (-O3)", "1", &cases[3], traffic, "GB/s", r_c1);
    bench_table_row("a*b+c f32", "plain C loop (-O3), 2 pthreads", "2", &cases[4], traffic, "GB/s",
                    r_c2);
    printf("\nmltrain a*b+c max abs error vs float64: %.3g\n\n", err);

    for (int i = 0; i < ncases; i++) bench_case_free(&cases[i]);
    bench_memcpy_deinit(&m);
    fma_free(&d);
}

static void bench_long(const bench_opts *o, mt_device *dev, bool host)
{
    const int64_t n = g_n;
    const size_t nb = (size_t)n * sizeof(float);
    float *hx = bench_xmalloc(nb), *ho = bench_xmalloc(nb), *hr = bench_xmalloc(nb);
    bench_fill_normal_f32(hx, (size_t)n, 4);
    memset(ho, 0, nb);
    memset(hr, 0, nb);

    mt_array X = {0}, O = {0};
    upload(&X, dev, hx, n);
    BENCH_CHECK(mt_array_zeros(&O, dev, MT_FLOAT32, 1, &n));
    mt_kexpr e;
    build_long(&e);
    elem_ctx ec = {.expr = &e, .nin = 1, .in = {&X}, .out = {&O}, .dev = dev};
    loop_ctx lc = {.a = host ? host_f32(&X) : hx, .o = hr, .n = n};

    int reps = g_long_reps > 0 ? g_long_reps : (o->reps < 5 ? o->reps : 5);
    bench_case cases[] = {
        {.name = "mltrain", .fn = run_elem, .ctx = &ec},
        {.name = "C scalar 1T", .fn = ref_long_1t, .ctx = &lc},
    };
    bench_run(cases, 2, reps, o->warmup < 1 ? o->warmup : 1);

    BENCH_CHECK(mt_array_to_host(ho, nb, &O));
    double err_mt = max_err_long(ho, hx, n), err_c = max_err_long(hr, hx, n);

    char thr[32], r_mt[96];
    snprintf(thr, sizeof thr, host ? "%d (pool)" : "device", bench_mltrain_threads());
    snprintf(r_mt, sizeof r_mt, "%.2fx the speed of scalar C 1T",
             bench_paired_ratio(&cases[0], 1.0, &cases[1], 1.0));
    printf("long expression tanh(x)*sigmoid(x)+exp(-x*x)*0.5-log1p(abs(x)): float32, x ~ N(0,1), "
           "n = %lld, %d reps; rate counts 2 x %zu MiB\n\n",
           (long long)n, reps, nb / BENCH_MIB);
    bench_table_header();
    bench_table_row("long expr f32", "mltrain mt_elemwise", thr, &cases[0], 2.0 * (double)nb,
                    "GB/s", r_mt);
    bench_table_row("long expr f32", "plain C loop, scalar glibc math", "1", &cases[1],
                    2.0 * (double)nb, "GB/s", "reference");
    printf("\nmax abs error vs float64: mltrain %.3g, scalar C %.3g\n", err_mt, err_c);
    printf("peers.md (a Zen 3 VM, not necessarily this machine; numpy_baseline.py measures this "
           "one): numpy 609 ms, PyTorch 674 / 481 ms (1T / 2T), Theano 736 / 498 ms\n\n");

    for (int i = 0; i < 2; i++) bench_case_free(&cases[i]);
    mt_kexpr_deinit(&e);
    mt_array_clear(&X);
    mt_array_clear(&O);
    mt_free(hx);
    mt_free(ho);
    mt_free(hr);
}

int main(int argc, char **argv)
{
    bench_opts o;
    bench_parse_args(&o, argc, argv, 15,
                     "[--n N] [--long-reps N] [--skip-long] [--inner N (CUDA: calls per sample)]",
                     extra_opt);
    mt_device *dev = bench_open_device(&o);
    bool host = mt_device_is_host_addressable(dev) && !strcmp(mt_device_name(dev), "host");
    const mt_device_info *info = mt_device_get_info(dev);
    bench_cuda *cu = NULL;
    if (info && !strcmp(info->backend, "cuda")) {
        char why[512];
        cu = bench_cuda_open(mt_device_name(dev), false, why, sizeof why);
        if (!cu) bench_fail("the CUDA copy baseline is not available: %s", why);
    }
    bench_print_context("bench_elemwise", &o, dev);
    if (cu)
        bench_fma_cuda(&o, dev, cu);
    else
        bench_fma(&o, dev, host);
    if (!g_skip_long) bench_long(&o, dev, host);
    bench_cuda_close(cu);
    mt_device_release(dev);
    return 0;
}
