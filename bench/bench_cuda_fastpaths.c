/* The CUDA backend's optional fast paths against direct driver / cuBLAS calls on the same GPU,
 * in the same process, interleaved round by round (built with CUDA only; "cuda:N" devices):
 *
 *   copy   host<->device bandwidth of mt_buffer_write / mt_buffer_read from pageable host
 *          memory (staged through mltrain's pinned pool unless MLTRAIN_CUDA_PINNED_MB=0)
 *          against cuMemcpyHtoDAsync / cuMemcpyDtoHAsync from a pinned buffer (what the
 *          hardware gives) and from the same pageable memory (the direct path mltrain used
 *          before staging). Each sample is one copy and one stream synchronisation.
 *   gemm   float16 / bfloat16 square C = A @ B: the backend's gemm member (cublasGemmEx,
 *          float32 accumulation), mt_array_gemm (whatever gemm.c routes these dtypes to), and a
 *          direct cublasGemmEx call (CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) on the same A and
 *          B. A sample is enough calls for ~20 GFLOP, then one synchronisation.
 *
 * The process-wide counters of the backend (bytes staged, GemmEx calls) are printed, so the
 * output shows whether the fast paths ran. Without a CUDA device: SKIP (exit 77). */
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cublas_api.h>
#include <cuda.h>

#include "bench_common.h"
#include "gpuarray_impl.h"

uint64_t mt__cuda_staged_bytes(bool to_device); /* src/gpuarray/device_cuda.c */
uint64_t mt__cuda_gemmex_calls(void);           /* src/gpuarray/cuda_gemm.c */

#define MAX_SIZES 16
static int64_t g_copy_mib[MAX_SIZES] = {4, 64, 256};
static int g_ncopy = 3;
static int64_t g_gemm_n[MAX_SIZES] = {4096, 8192};
static int g_ngemm = 2;
static bool g_do_copy = true, g_do_gemm = true;

static int extra_opt(int argc, char **argv, int i)
{
    if (i + 1 >= argc) return 0;
    if (!strcmp(argv[i], "--copy-mib")) {
        g_ncopy = bench_parse_sizes(argv[i + 1], g_copy_mib, MAX_SIZES);
        return 2;
    }
    if (!strcmp(argv[i], "--gemm-sizes")) {
        g_ngemm = bench_parse_sizes(argv[i + 1], g_gemm_n, MAX_SIZES);
        return 2;
    }
    if (!strcmp(argv[i], "--only")) {
        g_do_copy = !strcmp(argv[i + 1], "copy");
        g_do_gemm = !strcmp(argv[i + 1], "gemm");
        if (!g_do_copy && !g_do_gemm) bench_fail("--only takes copy or gemm");
        return 2;
    }
    return 0;
}

/* --------------------------------------------------------------- direct driver and cuBLAS */

typedef struct direct {
    void *lib_cuda, *lib_blas;
    __typeof__(&cuGetErrorName) GetErrorName;
    __typeof__(&cuDeviceGet) DeviceGet;
    __typeof__(&cuDevicePrimaryCtxRetain) CtxRetain;
    __typeof__(&cuDevicePrimaryCtxRelease_v2) CtxRelease;
    __typeof__(&cuCtxSetCurrent) CtxSetCurrent;
    __typeof__(&cuStreamCreate) StreamCreate;
    __typeof__(&cuStreamDestroy_v2) StreamDestroy;
    __typeof__(&cuStreamSynchronize) StreamSynchronize;
    __typeof__(&cuMemHostAlloc) MemHostAlloc;
    __typeof__(&cuMemFreeHost) MemFreeHost;
    __typeof__(&cuMemcpyHtoDAsync_v2) HtoD;
    __typeof__(&cuMemcpyDtoHAsync_v2) DtoH;
    __typeof__(&cublasCreate_v2) BlasCreate;
    __typeof__(&cublasDestroy_v2) BlasDestroy;
    __typeof__(&cublasSetStream_v2) BlasSetStream;
    __typeof__(&cublasGemmEx_64) GemmEx;
    CUdevice dev;
    CUcontext ctx;
    CUstream stream;
    cublasHandle_t blas;
} direct;

static void *sym(void *lib, const char *name)
{
    void *p = dlsym(lib, name);
    if (!p) bench_fail("direct baseline: %s lacks %s", lib ? "the library" : "?", name);
    return p;
}

static void cu_ok(const direct *d, CUresult r, const char *call)
{
    if (r == CUDA_SUCCESS) return;
    const char *name = NULL;
    if (d->GetErrorName) d->GetErrorName(r, &name);
    bench_fail("direct baseline: %s: %s", call, name ? name : "CUresult error");
}

static void *open_lib(const char *env, const char *const *names, int n)
{
    const char *e = getenv(env);
    if (e && *e) {
        void *h = dlopen(e, RTLD_NOW | RTLD_LOCAL);
        if (h) return h;
    }
    for (int i = 0; i < n; i++) {
        if (!names[i]) continue;
        void *h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
        if (h) return h;
    }
    return NULL;
}

static void direct_open(direct *d, int ordinal, bool blas)
{
    memset(d, 0, sizeof *d);
    const char *cu_names[] = {"libcuda.so.1"};
    d->lib_cuda = open_lib("MLTRAIN_LIBCUDA", cu_names, 1);
    if (!d->lib_cuda) bench_fail("direct baseline: cannot load libcuda.so.1: %s", dlerror());
    d->GetErrorName = (__typeof__(d->GetErrorName))sym(d->lib_cuda, "cuGetErrorName");
    d->DeviceGet = (__typeof__(d->DeviceGet))sym(d->lib_cuda, "cuDeviceGet");
    d->CtxRetain = (__typeof__(d->CtxRetain))sym(d->lib_cuda, "cuDevicePrimaryCtxRetain");
    d->CtxRelease = (__typeof__(d->CtxRelease))sym(d->lib_cuda, "cuDevicePrimaryCtxRelease_v2");
    d->CtxSetCurrent = (__typeof__(d->CtxSetCurrent))sym(d->lib_cuda, "cuCtxSetCurrent");
    d->StreamCreate = (__typeof__(d->StreamCreate))sym(d->lib_cuda, "cuStreamCreate");
    d->StreamDestroy = (__typeof__(d->StreamDestroy))sym(d->lib_cuda, "cuStreamDestroy_v2");
    d->StreamSynchronize =
        (__typeof__(d->StreamSynchronize))sym(d->lib_cuda, "cuStreamSynchronize");
    d->MemHostAlloc = (__typeof__(d->MemHostAlloc))sym(d->lib_cuda, "cuMemHostAlloc");
    d->MemFreeHost = (__typeof__(d->MemFreeHost))sym(d->lib_cuda, "cuMemFreeHost");
    d->HtoD = (__typeof__(d->HtoD))sym(d->lib_cuda, "cuMemcpyHtoDAsync_v2");
    d->DtoH = (__typeof__(d->DtoH))sym(d->lib_cuda, "cuMemcpyDtoHAsync_v2");
    /* mltrain has initialised the driver (the device is open): its primary context */
    cu_ok(d, d->DeviceGet(&d->dev, ordinal), "cuDeviceGet");
    cu_ok(d, d->CtxRetain(&d->ctx, d->dev), "cuDevicePrimaryCtxRetain");
    cu_ok(d, d->CtxSetCurrent(d->ctx), "cuCtxSetCurrent");
    cu_ok(d, d->StreamCreate(&d->stream, CU_STREAM_NON_BLOCKING), "cuStreamCreate");
    if (!blas) return;
    char home_lib[600] = "";
    const char *home = getenv("CUDA_HOME");
    if (home && *home) snprintf(home_lib, sizeof home_lib, "%s/lib64/libcublas.so.13", home);
    const char *blas_names[] = {"libcublas.so.13", home_lib[0] ? home_lib : NULL,
                                "/usr/local/cuda/lib64/libcublas.so.13", "libcublas.so"};
    d->lib_blas = open_lib("MLTRAIN_CUBLAS", blas_names, 4);
    if (!d->lib_blas) bench_fail("direct baseline: cannot load cuBLAS: %s", dlerror());
    d->BlasCreate = (__typeof__(d->BlasCreate))sym(d->lib_blas, "cublasCreate_v2");
    d->BlasDestroy = (__typeof__(d->BlasDestroy))sym(d->lib_blas, "cublasDestroy_v2");
    d->BlasSetStream = (__typeof__(d->BlasSetStream))sym(d->lib_blas, "cublasSetStream_v2");
    d->GemmEx = (__typeof__(d->GemmEx))sym(d->lib_blas, "cublasGemmEx_64");
    if (d->BlasCreate(&d->blas) != CUBLAS_STATUS_SUCCESS) bench_fail("cublasCreate failed");
    if (d->BlasSetStream(d->blas, d->stream) != CUBLAS_STATUS_SUCCESS)
        bench_fail("cublasSetStream failed");
}

static void direct_close(direct *d)
{
    d->CtxSetCurrent(d->ctx);
    if (d->blas) d->BlasDestroy(d->blas);
    d->StreamSynchronize(d->stream);
    d->StreamDestroy(d->stream);
    d->CtxRelease(d->dev);
    /* the libraries stay loaded: mltrain's backend shares them */
}

static void direct_sync(const direct *d)
{
    cu_ok(d, d->CtxSetCurrent(d->ctx), "cuCtxSetCurrent");
    cu_ok(d, d->StreamSynchronize(d->stream), "cuStreamSynchronize");
}

/* --------------------------------------------------------------- copy */

typedef struct copy_ctx {
    direct *d;
    mt_buffer *buf;
    CUdeviceptr dp;
    void *pageable, *pinned;
    size_t n;
} copy_ctx;

static void mt_write(void *p)
{
    copy_ctx *c = p;
    BENCH_CHECK(mt_buffer_write(c->buf, 0, c->pageable, c->n, NULL));
}

static void mt_read(void *p)
{
    copy_ctx *c = p;
    BENCH_CHECK(mt_buffer_read(c->pageable, c->buf, 0, c->n, NULL));
}

static void direct_htod(copy_ctx *c, const void *src)
{
    cu_ok(c->d, c->d->CtxSetCurrent(c->d->ctx), "cuCtxSetCurrent");
    cu_ok(c->d, c->d->HtoD(c->dp, src, c->n, c->d->stream), "cuMemcpyHtoDAsync");
    direct_sync(c->d);
}

static void direct_dtoh(copy_ctx *c, void *dst)
{
    cu_ok(c->d, c->d->CtxSetCurrent(c->d->ctx), "cuCtxSetCurrent");
    cu_ok(c->d, c->d->DtoH(dst, c->dp, c->n, c->d->stream), "cuMemcpyDtoHAsync");
    direct_sync(c->d);
}

static void pinned_write(void *p) { direct_htod(p, ((copy_ctx *)p)->pinned); }
static void pageable_write(void *p) { direct_htod(p, ((copy_ctx *)p)->pageable); }
static void pinned_read(void *p) { direct_dtoh(p, ((copy_ctx *)p)->pinned); }
static void pageable_read(void *p) { direct_dtoh(p, ((copy_ctx *)p)->pageable); }

static void copy_case(const bench_opts *o, mt_device *dev, direct *d, size_t mib)
{
    copy_ctx c = {.d = d, .n = mib << 20};
    BENCH_CHECK(mt_buffer_new(&c.buf, dev, c.n));
    c.dp = (CUdeviceptr)(uintptr_t)c.buf->handle;
    c.pageable = bench_xmalloc(c.n);
    bench_fill_uniform_f32(c.pageable, c.n / 4, 7 + mib, -1.0f, 1.0f);
    cu_ok(d, d->CtxSetCurrent(d->ctx), "cuCtxSetCurrent");
    cu_ok(d, d->MemHostAlloc(&c.pinned, c.n, 0), "cuMemHostAlloc");
    memcpy(c.pinned, c.pageable, c.n);
    for (int dir = 0; dir < 2; dir++) {
        bool up = dir == 0;
        uint64_t s0 = mt__cuda_staged_bytes(up);
        bench_case cases[3] = {
            {.name = "mltrain", .fn = up ? mt_write : mt_read, .ctx = &c},
            {.name = "pinned", .fn = up ? pinned_write : pinned_read, .ctx = &c},
            {.name = "pageable", .fn = up ? pageable_write : pageable_read, .ctx = &c},
        };
        bench_run(cases, 3, o->reps, o->warmup);
        uint64_t staged = mt__cuda_staged_bytes(up) - s0;
        int samples = o->reps + o->warmup;
        char bench[96], ratio[160];
        snprintf(bench, sizeof bench, "%s %zu MiB", up ? "host->device" : "device->host", mib);
        snprintf(ratio, sizeof ratio, "**%.3f** of pinned, **%.3f** of pageable (%s)",
                 bench_paired_ratio(&cases[0], 1, &cases[1], 1),
                 bench_paired_ratio(&cases[0], 1, &cases[2], 1),
                 staged >= (uint64_t)samples * c.n ? "staged through pinned memory"
                 : staged ? "partly staged" : "not staged: direct copies");
        bench_table_row(bench, up ? "mltrain mt_buffer_write (pageable src)"
                                  : "mltrain mt_buffer_read (pageable dst)",
                        "device", &cases[0], (double)c.n, "GB/s", ratio);
        bench_table_row(bench, "direct cuMemcpy*Async, pinned host buffer", "device", &cases[1],
                        (double)c.n, "GB/s", "reference (hardware)");
        bench_table_row(bench, "direct cuMemcpy*Async, pageable host buffer", "device",
                        &cases[2], (double)c.n, "GB/s", "reference (unstaged path)");
        for (int i = 0; i < 3; i++) bench_case_free(&cases[i]);
    }
    cu_ok(d, d->CtxSetCurrent(d->ctx), "cuCtxSetCurrent");
    d->MemFreeHost(c.pinned);
    mt_free(c.pageable);
    mt_buffer_release(c.buf);
}

/* --------------------------------------------------------------- gemm */

typedef struct gemm_ctx {
    direct *d;
    mt_device *dev;
    mt_dtype dt;
    int64_t n;
    int inner;
    mt_array A, B, C_mt, C_be, C_ref;
    mt_status be_status;
} gemm_ctx;

static void *hnd(const mt_array *a) { return a->buf->handle; }

static void run_array_gemm(void *p)
{
    gemm_ctx *g = p;
    for (int k = 0; k < g->inner; k++)
        BENCH_CHECK(mt_array_gemm(&g->C_mt, &g->A, &g->B, 1.0, 0.0, false, false));
    BENCH_CHECK(mt_device_sync(g->dev));
}

static void run_backend(void *p)
{
    gemm_ctx *g = p;
    for (int k = 0; k < g->inner; k++)
        BENCH_CHECK(g->dev->ops->gemm(g->dev, g->dt, false, false, g->n, g->n, g->n, 1.0,
                                      hnd(&g->A), g->A.offset, g->n, 0, hnd(&g->B), g->B.offset,
                                      g->n, 0, 0.0, hnd(&g->C_be), g->C_be.offset, g->n, 0, 1,
                                      NULL));
    BENCH_CHECK(mt_device_sync(g->dev));
}

static void run_direct(void *p)
{
    gemm_ctx *g = p;
    const direct *d = g->d;
    const float al = 1.0f, be = 0.0f;
    cudaDataType t = g->dt == MT_FLOAT16 ? CUDA_R_16F : CUDA_R_16BF;
    cu_ok(d, d->CtxSetCurrent(d->ctx), "cuCtxSetCurrent");
    for (int k = 0; k < g->inner; k++) {
        /* row-major C = A B is column-major C^T = B^T A^T */
        cublasStatus_t s = d->GemmEx(d->blas, CUBLAS_OP_N, CUBLAS_OP_N, g->n, g->n, g->n, &al,
                                     hnd(&g->B), t, g->n, hnd(&g->A), t, g->n, &be, hnd(&g->C_ref),
                                     t, g->n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
        if (s != CUBLAS_STATUS_SUCCESS) bench_fail("direct cublasGemmEx: status %d", (int)s);
    }
    direct_sync(d);
}

/* max |x - ref| / max |ref| */
static double rel_diff(const mt_array *x, const mt_array *ref)
{
    size_t cnt = (size_t)mt_array_size(ref);
    size_t bytes = cnt * mt_dtype_size(ref->dtype);
    void *hx = bench_xmalloc(bytes), *hr = bench_xmalloc(bytes);
    double *fx = bench_xmalloc(cnt * 8), *fr = bench_xmalloc(cnt * 8);
    BENCH_CHECK(mt_array_to_host(hx, bytes, x));
    BENCH_CHECK(mt_array_to_host(hr, bytes, ref));
    mt_dtype_convert(fx, MT_FLOAT64, 8, hx, x->dtype, (ptrdiff_t)mt_dtype_size(x->dtype), cnt);
    mt_dtype_convert(fr, MT_FLOAT64, 8, hr, ref->dtype, (ptrdiff_t)mt_dtype_size(ref->dtype), cnt);
    double md = 0, mr = 0;
    for (size_t i = 0; i < cnt; i++) {
        if (!(fabs(fx[i] - fr[i]) <= md)) md = fabs(fx[i] - fr[i]);
        if (fabs(fr[i]) > mr) mr = fabs(fr[i]);
    }
    mt_free(hx);
    mt_free(hr);
    mt_free(fx);
    mt_free(fr);
    return md / (mr > 0 ? mr : 1);
}

static void gemm_case(const bench_opts *o, mt_device *dev, direct *d, mt_dtype dt, int64_t n)
{
    gemm_ctx g = {.d = d, .dev = dev, .dt = dt, .n = n};
    double flops = 2.0 * (double)n * (double)n * (double)n;
    g.inner = flops >= 2e10 ? 1 : (int)ceil(2e10 / flops);
    size_t cnt = (size_t)(n * n);
    float *h = bench_xmalloc(cnt * 4);
    int64_t dims[2] = {n, n};
    mt_array tmp;
    bench_fill_uniform_f32(h, cnt, 31 + (uint64_t)n, -1.0f, 1.0f);
    BENCH_CHECK(mt_array_from_host(&tmp, dev, MT_FLOAT32, 2, dims, h));
    BENCH_CHECK(mt_array_astype(&g.A, &tmp, dt));
    mt_array_clear(&tmp);
    bench_fill_uniform_f32(h, cnt, 32 + (uint64_t)n, -1.0f, 1.0f);
    BENCH_CHECK(mt_array_from_host(&tmp, dev, MT_FLOAT32, 2, dims, h));
    BENCH_CHECK(mt_array_astype(&g.B, &tmp, dt));
    mt_array_clear(&tmp);
    mt_free(h);
    BENCH_CHECK(mt_array_zeros(&g.C_mt, dev, dt, 2, dims));
    BENCH_CHECK(mt_array_zeros(&g.C_be, dev, dt, 2, dims));
    BENCH_CHECK(mt_array_zeros(&g.C_ref, dev, dt, 2, dims));
    /* the backend refuses the dtype (no GemmEx): report and leave the row out */
    mt_status st = dev->ops->gemm(dev, dt, false, false, n, n, n, 1.0, hnd(&g.A), g.A.offset, n,
                                  0, hnd(&g.B), g.B.offset, n, 0, 0.0, hnd(&g.C_be),
                                  g.C_be.offset, n, 0, 1, NULL);
    bool backend = st == MT_OK;
    if (!backend) printf("backend gemm %s refused: %s\n", mt_dtype_name(dt), mt_last_error());
    uint64_t calls0 = mt__cuda_gemmex_calls();
    bench_case cases[3] = {
        {.name = "direct", .fn = run_direct, .ctx = &g},
        {.name = "array_gemm", .fn = run_array_gemm, .ctx = &g},
        {.name = "backend", .fn = run_backend, .ctx = &g},
    };
    bench_run(cases, backend ? 3 : 2, o->reps, o->warmup);
    uint64_t calls = mt__cuda_gemmex_calls() - calls0;
    double work = flops * g.inner;
    char bench[96], r1[160], r2[160];
    snprintf(bench, sizeof bench, "%s n=%lld A @ B%s", mt_dtype_name(dt), (long long)n,
             g.inner > 1 ? " (several calls/sample)" : "");
    int samples = o->reps + o->warmup;
    uint64_t per_sample_be = backend ? (uint64_t)g.inner * (uint64_t)samples : 0;
    snprintf(r1, sizeof r1, "**%.3f** of cublasGemmEx (max rel diff %.1e; %s)",
             bench_paired_ratio(&cases[1], work, &cases[0], work), rel_diff(&g.C_mt, &g.C_ref),
             calls > per_sample_be ? "through GemmEx" : "float32 temporaries");
    bench_table_row(bench, "mltrain mt_array_gemm", "device", &cases[1], work, "GFLOP/s", r1);
    if (backend) {
        snprintf(r2, sizeof r2, "**%.3f** of cublasGemmEx (max rel diff %.1e)",
                 bench_paired_ratio(&cases[2], work, &cases[0], work),
                 rel_diff(&g.C_be, &g.C_ref));
        bench_table_row(bench, "mltrain backend gemm (GemmEx, fp32 accumulation)", "device",
                        &cases[2], work, "GFLOP/s", r2);
    }
    bench_table_row(bench, "direct cublasGemmEx (COMPUTE_32F)", "device", &cases[0], work,
                    "GFLOP/s", "reference");
    for (int i = 0; i < (backend ? 3 : 2); i++) bench_case_free(&cases[i]);
    mt_array *arrs[] = {&g.A, &g.B, &g.C_mt, &g.C_be, &g.C_ref};
    for (size_t i = 0; i < 5; i++) mt_array_clear(arrs[i]);
}

int main(int argc, char **argv)
{
    bench_opts o;
    bench_parse_args(&o, argc, argv, 7,
                     "[--only copy|gemm] [--copy-mib 4,64,256] [--gemm-sizes 4096,8192]",
                     extra_opt);
    mt_device *dev = bench_open_device(&o);
    const mt_device_info *info = mt_device_get_info(dev);
    int ordinal = -1;
    if (!info || strcmp(info->backend, "cuda") != 0 ||
        sscanf(mt_device_name(dev), "cuda:%d", &ordinal) != 1) {
        printf("SKIP bench_cuda_fastpaths: %s is not a CUDA device\n", mt_device_name(dev));
        mt_device_release(dev);
        return BENCH_EXIT_SKIP;
    }
    bench_print_context("bench_cuda_fastpaths", &o, dev);
    direct d;
    direct_open(&d, ordinal, g_do_gemm);
    const char *mb = getenv("MLTRAIN_CUDA_PINNED_MB");
    printf("pinned staging: MLTRAIN_CUDA_PINNED_MB=%s, MLTRAIN_CUDA_ASYNC_WRITES=%s\n\n",
           mb ? mb : "(default)", getenv("MLTRAIN_CUDA_ASYNC_WRITES") ? "set" : "(unset)");
    bench_table_header();
    if (g_do_copy)
        for (int i = 0; i < g_ncopy; i++) copy_case(&o, dev, &d, (size_t)g_copy_mib[i]);
    if (g_do_gemm)
        for (int i = 0; i < g_ngemm; i++) {
            gemm_case(&o, dev, &d, MT_FLOAT16, g_gemm_n[i]);
            gemm_case(&o, dev, &d, MT_BFLOAT16, g_gemm_n[i]);
        }
    printf("\nbench: staged %llu bytes to the device and %llu from it through pinned memory; "
           "%llu cublasGemmEx calls by mltrain\n",
           (unsigned long long)mt__cuda_staged_bytes(true),
           (unsigned long long)mt__cuda_staged_bytes(false),
           (unsigned long long)mt__cuda_gemmex_calls());
    direct_close(&d);
    mt_device_release(dev);
    return 0;
}
