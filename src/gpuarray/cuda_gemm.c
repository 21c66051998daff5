/* GEMM on CUDA devices through cuBLAS (loaded at run time by cuda_api.c).
 *
 * The vtable's GEMM is row-major; cuBLAS is column-major. A row-major matrix with leading
 * dimension ld is, read column-major, its transpose with the same ld, so the product is
 * computed as C^T = op(B)^T op(A)^T: cuBLAS gets (op_b, op_a, n, m, k, B, ldb, A, lda, C, ldc)
 * and writes C^T column-major, which is C row-major. Batches use the strided-batched calls
 * (a zero stride of A or B broadcasts one matrix to every batch); negative strides (reversed
 * batch views) run one call per matrix. All calls use 64-bit sizes (the _64 API) and the
 * stream of the mt_stream (default: the device's compute stream).
 *
 * float32 and float64 use cublasSgemm / cublasDgemm in cuBLAS's default math mode (no TF32, so
 * results equal the host's within float32 rounding; MLTRAIN_CUDA_TF32=1 sets
 * CUBLAS_TF32_TENSOR_OP_MATH instead), and every handle disallows reduced-precision split-K
 * reductions. float16 and bfloat16 use cublasGemmEx /
 * cublasGemmStridedBatchedEx with A, B and C in that type and CUBLAS_COMPUTE_32F (float32
 * accumulation, float alpha and beta, one rounding to the type at the end: what float32
 * temporaries give), CUBLAS_GEMM_DEFAULT, which lets cuBLAS pick tensor-core kernels for these
 * types. When this cuBLAS has no GemmEx, or refuses the type on this GPU at the first call,
 * the answer is ERR_DTYPE: the caller then multiplies in float32 temporaries as before.
 * mt__cuda_gemmex_calls counts the GemmEx calls that succeeded. Other dtypes are ERR_DTYPE.
 * The cuBLAS handle is created on the first GEMM with the device's primary context
 * current, so cuBLAS and the backend share one context, and a mutex serialises the handle
 * (cublasSetStream + call) between threads. */
#include <stdio.h>
#include <string.h>

#include "cuda_api.h"

static uint64_t g_gemmex_calls; /* atomic */

uint64_t mt__cuda_gemmex_calls(void)
{
    return __atomic_load_n(&g_gemmex_calls, __ATOMIC_RELAXED);
}

static const char *status_name(const mt_cublas_api *cb, cublasStatus_t s)
{
    static __thread char buf[40];
    const char *n = cb && cb->GetStatusName ? cb->GetStatusName(s) : NULL;
    if (n) return n;
    snprintf(buf, sizeof buf, "cublasStatus %d", (int)s);
    return buf;
}

static mt_status blas_status(cublasStatus_t s)
{
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return MT_OK;
    case CUBLAS_STATUS_ALLOC_FAILED: return MT_ERR_NOMEM;
    case CUBLAS_STATUS_INVALID_VALUE: return MT_ERR_INVALID;
    case CUBLAS_STATUS_NOT_SUPPORTED:
    case CUBLAS_STATUS_ARCH_MISMATCH: return MT_ERR_UNSUPPORTED;
    default: return MT_ERR_DEVICE;
    }
}

/* Creates the handle on first use (blas_lock held, context current). */
static mt_status ensure_handle(mt_device *dev, mt_cuda_dev *d)
{
    if (d->blas) return MT_OK;
    char why[1500];
    const mt_cublas_api *cb = mt__cublas_api(why, sizeof why);
    if (!cb)
        return mt_err_set(MT_ERR_NOT_FOUND, "gemm on %s needs cuBLAS: %s", dev->info.name, why);
    cublasHandle_t h = NULL;
    cublasStatus_t s = cb->Create(&h);
    if (s != CUBLAS_STATUS_SUCCESS)
        return mt_err_set(blas_status(s), "cublasCreate on %s: %s", dev->info.name,
                          status_name(cb, s));
    /* float16/bfloat16 products accumulate in float32 to the end: no split-K reductions in
     * 16 bits (cuBLAS's default allows them for 16-bit outputs); float32 products in TF32 only
     * when asked (MLTRAIN_CUDA_TF32=1) */
    if (cb->SetMathMode) {
        unsigned mode = (d->tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH) |
                        CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION;
        s = cb->SetMathMode(h, (cublasMath_t)mode);
        if (s != CUBLAS_STATUS_SUCCESS)
            mt_log(MT_LOG_WARN, "cublasSetMathMode on %s: %s; float16/bfloat16 products may "
                   "reduce partial sums in 16 bits%s", dev->info.name, status_name(cb, s),
                   d->tf32 ? ", and float32 products do not use TF32" : "");
    } else if (d->tf32) {
        mt_log(MT_LOG_WARN, "cuda: this cuBLAS has no cublasSetMathMode: MLTRAIN_CUDA_TF32 has "
               "no effect on %s's products", dev->info.name);
    }
    d->cb = cb;
    d->blas = h;
    return MT_OK;
}

void mt__cuda_gemm_close(mt_device *dev)
{
    mt_cuda_dev *d = dev->impl;
    pthread_mutex_lock(&d->blas_lock);
    if (d->blas) {
        cublasStatus_t s = d->cb->Destroy(d->blas);
        if (s != CUBLAS_STATUS_SUCCESS)
            mt_log(MT_LOG_WARN, "cublasDestroy on %s: %s", dev->info.name, status_name(d->cb, s));
        d->blas = NULL;
    }
    pthread_mutex_unlock(&d->blas_lock);
}

/* A leading dimension only matters when its row-major matrix has more than one row; cuBLAS
 * still checks it, so an unused one is raised to the column count (and to at least 1). */
static int64_t fix_ld(int64_t ld, int64_t rows, int64_t cols)
{
    if (rows <= 1 && ld < cols) ld = cols;
    return ld < 1 ? 1 : ld;
}

typedef struct gemm_args {
    mt_dtype dt;
    cublasOperation_t opa, opb;
    int64_t m, n, k, lda, ldb, ldc, sa, sb, sc, batch;
    double alpha, beta;
    CUdeviceptr a, b, c; /* with the offsets applied */
} gemm_args;

/* One GemmEx call for float16/bfloat16 (batch 1 or strided batched), float32 accumulation. */
static cublasStatus_t run_ex(const mt_cublas_api *cb, cublasHandle_t h, const gemm_args *g,
                             const char **call)
{
    const float al = (float)g->alpha, be = (float)g->beta;
    const cudaDataType t = g->dt == MT_FLOAT16 ? CUDA_R_16F : CUDA_R_16BF;
    const void *A = (const void *)(uintptr_t)g->a, *B = (const void *)(uintptr_t)g->b;
    void *C = (void *)(uintptr_t)g->c;
    cublasStatus_t s;
    if (g->batch == 1) {
        *call = "cublasGemmEx_64";
        s = cb->GemmEx(h, g->opb, g->opa, g->n, g->m, g->k, &al, B, t, g->ldb, A, t, g->lda, &be,
                       C, t, g->ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    } else {
        *call = "cublasGemmStridedBatchedEx_64";
        s = cb->GemmStridedBatchedEx(h, g->opb, g->opa, g->n, g->m, g->k, &al, B, t, g->ldb,
                                     (long long)g->sb, A, t, g->lda, (long long)g->sa, &be, C, t,
                                     g->ldc, (long long)g->sc, g->batch, CUBLAS_COMPUTE_32F,
                                     CUBLAS_GEMM_DEFAULT);
    }
    if (s == CUBLAS_STATUS_SUCCESS) __atomic_fetch_add(&g_gemmex_calls, 1, __ATOMIC_RELAXED);
    return s;
}

/* One cuBLAS call (batch 1 or strided batched). */
static cublasStatus_t run(const mt_cublas_api *cb, cublasHandle_t h, const gemm_args *g,
                          const char **call)
{
    if (g->dt == MT_FLOAT16 || g->dt == MT_BFLOAT16) return run_ex(cb, h, g, call);
    if (g->dt == MT_FLOAT64) {
        const double al = g->alpha, be = g->beta;
        const double *A = (const double *)(uintptr_t)g->a, *B = (const double *)(uintptr_t)g->b;
        double *C = (double *)(uintptr_t)g->c;
        if (g->batch == 1) {
            *call = "cublasDgemm_v2_64";
            return cb->Dgemm(h, g->opb, g->opa, g->n, g->m, g->k, &al, B, g->ldb, A, g->lda, &be,
                             C, g->ldc);
        }
        *call = "cublasDgemmStridedBatched_64";
        return cb->DgemmStridedBatched(h, g->opb, g->opa, g->n, g->m, g->k, &al, B, g->ldb, g->sb,
                                       A, g->lda, g->sa, &be, C, g->ldc, g->sc, g->batch);
    }
    const float al = (float)g->alpha, be = (float)g->beta;
    const float *A = (const float *)(uintptr_t)g->a, *B = (const float *)(uintptr_t)g->b;
    float *C = (float *)(uintptr_t)g->c;
    if (g->batch == 1) {
        *call = "cublasSgemm_v2_64";
        return cb->Sgemm(h, g->opb, g->opa, g->n, g->m, g->k, &al, B, g->ldb, A, g->lda, &be, C,
                         g->ldc);
    }
    *call = "cublasSgemmStridedBatched_64";
    return cb->SgemmStridedBatched(h, g->opb, g->opa, g->n, g->m, g->k, &al, B, g->ldb, g->sb, A,
                                   g->lda, g->sa, &be, C, g->ldc, g->sc, g->batch);
}

static mt_status offset_check(mt_device *dev, size_t off, size_t es, char which)
{
    if (off % es != 0)
        return mt_err_set(MT_ERR_INVALID, "gemm on %s: byte offset %zu of %c is not a multiple "
                          "of the element size %zu", dev->info.name, off, which, es);
    return MT_OK;
}

mt_status mt__cuda_gemm(mt_device *dev, mt_dtype dt, bool trans_a, bool trans_b, int64_t m,
                        int64_t n, int64_t k, double alpha, void *a, size_t a_off, int64_t lda,
                        int64_t stride_a, void *b, size_t b_off, int64_t ldb, int64_t stride_b,
                        double beta, void *c, size_t c_off, int64_t ldc, int64_t stride_c,
                        int64_t batch, mt_stream *s)
{
    bool half = dt == MT_FLOAT16 || dt == MT_BFLOAT16;
    if (dt != MT_FLOAT32 && dt != MT_FLOAT64 && !half)
        return mt_err_set(MT_ERR_DTYPE, "gemm on %s: the cuBLAS path takes float32, float64, "
                          "float16 or bfloat16, not %s", dev->info.name, mt_dtype_name(dt));
    if (m < 0 || n < 0 || k < 0 || batch < 0)
        return mt_err_set(MT_ERR_INVALID, "gemm on %s: negative size (m=%lld n=%lld k=%lld "
                          "batch=%lld)", dev->info.name, (long long)m, (long long)n, (long long)k,
                          (long long)batch);
    if (m == 0 || n == 0 || batch == 0) return MT_OK;
    if (batch > 1 && stride_c == 0)
        return mt_err_set(MT_ERR_INVALID, "gemm on %s: batched C needs a non-zero stride",
                          dev->info.name);
    size_t es = mt_dtype_size(dt);
    mt_status st = offset_check(dev, a_off, es, 'A');
    if (st == MT_OK) st = offset_check(dev, b_off, es, 'B');
    if (st == MT_OK) st = offset_check(dev, c_off, es, 'C');
    if (st != MT_OK) return st;
    gemm_args g = {
        .dt = dt,
        .opa = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
        .opb = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
        .m = m, .n = n, .k = k,
        /* row-major: op(A) is m x k, stored k x m when transposed; likewise B */
        .lda = trans_a ? fix_ld(lda, k, m) : fix_ld(lda, m, k),
        .ldb = trans_b ? fix_ld(ldb, n, k) : fix_ld(ldb, k, n),
        .ldc = fix_ld(ldc, m, n),
        .sa = stride_a, .sb = stride_b, .sc = stride_c, .batch = batch,
        .alpha = alpha, .beta = beta,
        .a = (CUdeviceptr)(uintptr_t)a + a_off,
        .b = (CUdeviceptr)(uintptr_t)b + b_off,
        .c = (CUdeviceptr)(uintptr_t)c + c_off,
    };
    st = mt__cuda_bind(dev);
    if (st != MT_OK) return st;
    mt_cuda_dev *d = dev->impl;
    pthread_mutex_lock(&d->blas_lock);
    st = ensure_handle(dev, d);
    if (st != MT_OK) goto done;
    if (half && !d->cb->GemmEx) {
        st = mt_err_set(MT_ERR_DTYPE, "gemm on %s: this cuBLAS has no cublasGemmEx_64 for %s",
                        dev->info.name, mt_dtype_name(dt));
        goto done;
    }
    if (half && d->half_refused[dt == MT_BFLOAT16]) { /* refused before: not asked again */
        st = mt_err_set(MT_ERR_DTYPE, "gemm on %s: cuBLAS refused %s GemmEx before",
                        dev->info.name, mt_dtype_name(dt));
        goto done;
    }
    cublasStatus_t cs = d->cb->SetStream(d->blas, mt__cuda_stream(dev, mt__stream_impl(s)));
    if (cs != CUBLAS_STATUS_SUCCESS) {
        st = mt_err_set(blas_status(cs), "cublasSetStream on %s: %s", dev->info.name,
                        status_name(d->cb, cs));
        goto done;
    }
    const char *call = "";
    bool first_call = true; /* a refusal at the first call has written nothing */
    if (batch == 1 || (stride_a >= 0 && stride_b >= 0 && stride_c > 0)) {
        cs = run(d->cb, d->blas, &g, &call);
    } else {
        /* negative strides: one call per matrix, offsets computed here */
        gemm_args one = g;
        one.batch = 1;
        cs = CUBLAS_STATUS_SUCCESS;
        for (int64_t i = 0; i < batch && cs == CUBLAS_STATUS_SUCCESS; i++) {
            one.a = g.a + (CUdeviceptr)(i * stride_a * (int64_t)es);
            one.b = g.b + (CUdeviceptr)(i * stride_b * (int64_t)es);
            one.c = g.c + (CUdeviceptr)(i * stride_c * (int64_t)es);
            first_call = i == 0;
            cs = run(d->cb, d->blas, &one, &call);
        }
    }
    if (cs != CUBLAS_STATUS_SUCCESS && half && first_call &&
        (cs == CUBLAS_STATUS_NOT_SUPPORTED || cs == CUBLAS_STATUS_ARCH_MISMATCH)) {
        /* this GPU / cuBLAS cannot do the type: the caller's float32 temporaries can */
        d->half_refused[dt == MT_BFLOAT16] = true;
        st = mt_err_set(MT_ERR_DTYPE, "%s(%s, m=%lld, n=%lld, k=%lld) on %s (sm_%d): %s", call,
                        mt_dtype_name(dt), (long long)m, (long long)n, (long long)k,
                        dev->info.name, d->arch, status_name(d->cb, cs));
    } else if (cs != CUBLAS_STATUS_SUCCESS)
        st = mt_err_set(blas_status(cs), "%s(m=%lld, n=%lld, k=%lld, batch=%lld, lda=%lld, "
                        "ldb=%lld, ldc=%lld) on %s: %s", call, (long long)m, (long long)n,
                        (long long)k, (long long)batch, (long long)g.lda, (long long)g.ldb,
                        (long long)g.ldc, dev->info.name, status_name(d->cb, cs));
done:
    pthread_mutex_unlock(&d->blas_lock);
    return st;
}
