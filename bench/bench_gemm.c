/* GEMM benchmark (issue 2): C = A @ B through mt_array_gemm against a direct cblas_sgemm /
 * cblas_dgemm call on the same matrices, in the same process, the two measurements
 * interleaved (A B A B ...) so the noise of the shared second core hits both alike.
 * Square sizes 256..2048 (float32) and 512/1024 (float64), plus operands that are transposed
 * views (mltrain must pass them to BLAS as a transpose flag, without a copy). Small sizes run
 * several calls per sample so one sample lasts ~10 ms. Target: mltrain >= 0.95 of cblas.
 * On a CUDA device ("cuda:N") the baseline is a direct cublasSgemm / cublasDgemm call on buffers
 * of its own holding the same matrices, on the same GPU in the same process (issue 6 target:
 * mltrain >= 0.95 of it); a sample there is enough calls for ~20 GFLOP, then one sync. On other
 * non-host devices the baseline is still OpenBLAS on the host (a cross-device ratio). */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"

#define MAX_SIZES 16
static int64_t g_sizes32[MAX_SIZES] = {256, 512, 1024, 2048};
static int g_nsizes32 = 4;
static int64_t g_sizes64[MAX_SIZES] = {512, 1024};
static int g_nsizes64 = 2;
static int64_t g_trans_n = 1024; /* 0: no transposed-view cases */

static int extra_opt(int argc, char **argv, int i)
{
    if (i + 1 >= argc) return 0;
    if (!strcmp(argv[i], "--sizes")) {
        g_nsizes32 = bench_parse_sizes(argv[i + 1], g_sizes32, MAX_SIZES);
        return 2;
    }
    if (!strcmp(argv[i], "--sizes64")) {
        g_nsizes64 = bench_parse_sizes(argv[i + 1], g_sizes64, MAX_SIZES);
        return 2;
    }
    if (!strcmp(argv[i], "--trans-n")) {
        g_trans_n = atoll(argv[i + 1]);
        return 2;
    }
    return 0;
}

typedef enum variant { V_NN = 0, V_AT_VIEW, V_BT_VIEW } variant;
static const char *const variant_name[] = {"A @ B", "A.T @ B (A.T a view)", "A @ B.T (B.T a view)"};

typedef struct gemm_ctx {
    mt_dtype dt;
    int64_t n;
    int inner; /* calls per sample */
    variant v;
    /* mltrain side */
    mt_array A, B, C, Aop, Bop;
    mt_device *dev;
    /* cblas side (host memory; on the host device A and B are mltrain's own buffers) */
    const void *pa, *pb;
    void *pc;
    /* CUDA: the cuBLAS baseline and its device copies of A, B and C */
    bench_cuda *cu;
    uint64_t da, db, dc;
} gemm_ctx;

static void run_mt(void *p)
{
    gemm_ctx *g = p;
    for (int k = 0; k < g->inner; k++)
        BENCH_CHECK(mt_array_gemm(&g->C, &g->Aop, &g->Bop, 1.0, 0.0, false, false));
    BENCH_CHECK(mt_device_sync(g->dev));
}

static void run_cublas(void *p)
{
    gemm_ctx *g = p;
    for (int k = 0; k < g->inner; k++)
        bench_cuda_gemm(g->cu, g->dt == MT_FLOAT64, g->v == V_AT_VIEW, g->v == V_BT_VIEW, (int)g->n,
                        g->da, g->db, g->dc);
    bench_cuda_sync(g->cu);
}

static void run_cblas(void *p)
{
    gemm_ctx *g = p;
    const int n = (int)g->n;
    enum CBLAS_TRANSPOSE ta = g->v == V_AT_VIEW ? CblasTrans : CblasNoTrans;
    enum CBLAS_TRANSPOSE tb = g->v == V_BT_VIEW ? CblasTrans : CblasNoTrans;
    for (int k = 0; k < g->inner; k++) {
        if (g->dt == MT_FLOAT32)
            cblas_sgemm(CblasRowMajor, ta, tb, n, n, n, 1.0f, g->pa, n, g->pb, n, 0.0f, g->pc, n);
        else
            cblas_dgemm(CblasRowMajor, ta, tb, n, n, n, 1.0, g->pa, n, g->pb, n, 0.0, g->pc, n);
    }
}

/* max |C_mt - C_ref| / max |C_ref| (C_ref: cblas, or cuBLAS on CUDA) */
static double compare(const gemm_ctx *g)
{
    size_t cnt = (size_t)(g->n * g->n), sz = mt_dtype_size(g->dt);
    if (g->cu) bench_cuda_download(g->cu, g->pc, g->dc, cnt * sz);
    void *got = bench_xmalloc(cnt * sz);
    BENCH_CHECK(mt_array_to_host(got, cnt * sz, &g->C));
    double md = 0, mr = 0;
    for (size_t i = 0; i < cnt; i++) {
        double x = g->dt == MT_FLOAT32 ? ((float *)got)[i] : ((double *)got)[i];
        double r = g->dt == MT_FLOAT32 ? ((float *)g->pc)[i] : ((double *)g->pc)[i];
        if (!(fabs(x - r) <= md)) md = fabs(x - r);
        if (fabs(r) > mr) mr = fabs(r);
    }
    mt_free(got);
    return md / (mr > 0 ? mr : 1);
}

static void setup(gemm_ctx *g, mt_device *dev, bool host, bench_cuda *cu, mt_dtype dt, int64_t n,
                  variant v)
{
    memset(g, 0, sizeof *g);
    g->dt = dt;
    g->n = n;
    g->v = v;
    g->dev = dev;
    g->cu = cu;
    double flops = 2.0 * (double)n * (double)n * (double)n, per_sample = cu ? 2e10 : 1e9;
    g->inner = flops >= per_sample ? 1 : (int)ceil(per_sample / flops);
    size_t cnt = (size_t)(n * n), sz = mt_dtype_size(dt);
    void *ha = bench_xmalloc(cnt * sz), *hb = bench_xmalloc(cnt * sz);
    if (dt == MT_FLOAT32) {
        bench_fill_uniform_f32(ha, cnt, 21 + (uint64_t)n, -1.0f, 1.0f);
        bench_fill_uniform_f32(hb, cnt, 22 + (uint64_t)n, -1.0f, 1.0f);
    } else {
        bench_fill_uniform_f64(ha, cnt, 21 + (uint64_t)n, -1.0, 1.0);
        bench_fill_uniform_f64(hb, cnt, 22 + (uint64_t)n, -1.0, 1.0);
    }
    int64_t dims[2] = {n, n};
    BENCH_CHECK(mt_array_from_host(&g->A, dev, dt, 2, dims, ha));
    BENCH_CHECK(mt_array_from_host(&g->B, dev, dt, 2, dims, hb));
    BENCH_CHECK(mt_array_zeros(&g->C, dev, dt, 2, dims));
    if (v == V_AT_VIEW)
        BENCH_CHECK(mt_array_transpose(&g->Aop, &g->A, NULL));
    else
        mt_array_view(&g->Aop, &g->A);
    if (v == V_BT_VIEW)
        BENCH_CHECK(mt_array_transpose(&g->Bop, &g->B, NULL));
    else
        mt_array_view(&g->Bop, &g->B);
    g->pc = bench_xmalloc(cnt * sz);
    memset(g->pc, 0, cnt * sz);
    if (cu) {
        g->da = bench_cuda_alloc(cu, cnt * sz);
        g->db = bench_cuda_alloc(cu, cnt * sz);
        g->dc = bench_cuda_alloc(cu, cnt * sz);
        bench_cuda_upload(cu, g->da, ha, cnt * sz);
        bench_cuda_upload(cu, g->db, hb, cnt * sz);
        bench_cuda_upload(cu, g->dc, g->pc, cnt * sz);
    }
    if (host) {
        g->pa = (char *)mt_buffer_host_ptr(g->A.buf) + g->A.offset;
        g->pb = (char *)mt_buffer_host_ptr(g->B.buf) + g->B.offset;
        mt_free(ha);
        mt_free(hb);
    } else {
        g->pa = ha;
        g->pb = hb;
    }
}

static void teardown(gemm_ctx *g, bool host)
{
    mt_array_clear(&g->Aop);
    mt_array_clear(&g->Bop);
    mt_array_clear(&g->A);
    mt_array_clear(&g->B);
    mt_array_clear(&g->C);
    if (!host) {
        mt_free((void *)g->pa);
        mt_free((void *)g->pb);
    }
    mt_free(g->pc);
    if (g->cu) {
        bench_cuda_free(g->cu, g->da);
        bench_cuda_free(g->cu, g->db);
        bench_cuda_free(g->cu, g->dc);
    }
}

static void one_case(const bench_opts *o, mt_device *dev, bool host, bench_cuda *cu, mt_dtype dt,
                     int64_t n, variant v)
{
    gemm_ctx g;
    setup(&g, dev, host, cu, dt, n, v);
    bench_case cases[2] = {
        {.name = "mltrain", .fn = run_mt, .ctx = &g},
        {.name = cu ? "cublas" : "cblas", .fn = cu ? run_cublas : run_cblas, .ctx = &g},
    };
    bench_run(cases, 2, o->reps, o->warmup);
    double err = compare(&g);
    double flops = 2.0 * (double)n * (double)n * (double)n * g.inner;
    char bench[96], thr[32], ratio[96], ref_note[96];
    snprintf(bench, sizeof bench, "%s n=%lld %s", dt == MT_FLOAT32 ? "sgemm" : "dgemm",
             (long long)n, variant_name[v]);
    if (g.inner > 1) {
        size_t l = strlen(bench);
        snprintf(bench + l, sizeof bench - l, " (x%d/sample)", g.inner);
    }
    snprintf(thr, sizeof thr, host ? "OpenBLAS" : "device");
    snprintf(ratio, sizeof ratio, "**%.3f** of %s (max rel diff %.1e)",
             bench_paired_ratio(&cases[0], flops, &cases[1], flops),
             cu ? "cuBLAS" : host ? "cblas" : "cblas on host", err);
    snprintf(ref_note, sizeof ref_note, "reference");
    bench_table_row(bench, "mltrain mt_array_gemm", thr, &cases[0], flops, "GFLOP/s", ratio);
    if (cu)
        bench_table_row(bench, "direct cuBLAS call", "device", &cases[1], flops, "GFLOP/s",
                        ref_note);
    else
        bench_table_row(bench, host ? "direct cblas call" : "direct cblas call (host)",
                        "OpenBLAS", &cases[1], flops, "GFLOP/s", ref_note);
    bench_case_free(&cases[0]);
    bench_case_free(&cases[1]);
    teardown(&g, host);
}

int main(int argc, char **argv)
{
    bench_opts o;
    bench_parse_args(&o, argc, argv, 9,
                     "[--sizes 256,512,...] [--sizes64 512,...] [--trans-n N (0: none)]",
                     extra_opt);
    mt_device *dev = bench_open_device(&o);
    bool host = !strcmp(mt_device_name(dev), "host");
    const mt_device_info *info = mt_device_get_info(dev);
    bench_cuda *cu = NULL;
    if (info && !strcmp(info->backend, "cuda")) {
        char why[512];
        cu = bench_cuda_open(mt_device_name(dev), true, why, sizeof why);
        if (!cu) bench_fail("the cuBLAS baseline is not available: %s", why);
    }
    bench_print_context("bench_gemm", &o, dev);
    if (cu) printf("baseline: %s, default math mode (no TF32)\n\n", bench_cuda_versions(cu));
#ifdef OPENBLAS_VERSION
    printf("BLAS: %s | core %s | OpenBLAS threads %d\n\n", openblas_get_config(),
           openblas_get_corename(), openblas_get_num_threads());
#endif
    printf("C = A @ B, square n x n row-major, alpha 1, beta 0; rate = 2 n^3 / time; samples "
           "interleaved mltrain / %s; ratio = median of per-round ratios\n\n",
           cu ? "cuBLAS" : "cblas");
    bench_table_header();
    for (int i = 0; i < g_nsizes32; i++)
        one_case(&o, dev, host, cu, MT_FLOAT32, g_sizes32[i], V_NN);
    for (int i = 0; i < g_nsizes64; i++)
        one_case(&o, dev, host, cu, MT_FLOAT64, g_sizes64[i], V_NN);
    if (g_trans_n > 0) {
        one_case(&o, dev, host, cu, MT_FLOAT32, g_trans_n, V_AT_VIEW);
        one_case(&o, dev, host, cu, MT_FLOAT32, g_trans_n, V_BT_VIEW);
    }
    printf("\n");
    bench_cuda_close(cu);
    mt_device_release(dev);
    return 0;
}
