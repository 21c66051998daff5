/* Convolution and pooling on CUDA devices through cuDNN: the optional conv2d / pool2d members
 * of the CUDA backend's vtable (conv.c calls them first and runs its generic kernels whenever
 * they fail).
 *
 * cuDNN 9 (libcudnn.so.9, $MLTRAIN_LIBCUDNN first) is dlopen'ed once per process, like the
 * driver and cuBLAS: nothing links against it, the headers give the prototypes (each pointer is
 * __typeof__ of the header's declaration), and a machine without cuDNN, or a build without its
 * headers, simply takes the generic path. The legacy descriptor API is used (still present in
 * cuDNN 9): 4-d NCHW tensor and filter descriptors, a cross-correlation descriptor with the
 * data type as compute type and CUDNN_FMA_MATH (no TF32, so float32 rounds like cuBLAS and the
 * generic kernels), the algorithm from cudnnGet*Algorithm_v7 (the first deterministic one that
 * succeeds within WS_LIMIT bytes of workspace), the workspace from the device's caching
 * allocator, and the device's compute stream. One cuDNN handle per device, created on first use
 * with the device's primary context current and guarded by the backend's BLAS mutex.
 *
 * Only cases that give the generic path's results are taken: convolutions (float32/float64,
 * sizes within cuDNN's int dimensions), max pooling forward and mean pooling forward and
 * gradient when the output has the floor size (no ceil-mode window past the padded input;
 * CUDNN_POOLING_AVERAGE_COUNT_EXCLUDE_PADDING then divides by the clipped count, and
 * CUDNN_PROPAGATE_NAN keeps NaNs). The max-pooling gradient always runs the generic kernel:
 * cuDNN does not document which of several equal maxima receives the gradient, and mltrain's
 * rule is the first in C order. Any cuDNN error answers an error (logged once per process at
 * debug level), and the caller computes the result generically. */
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_api.h"

#if defined(__has_include)
#if __has_include(<cudnn.h>)
#define MT_CUDNN_HEADERS 1
#endif
#endif
#ifndef MT_CUDNN_HEADERS
#define MT_CUDNN_HEADERS 0
#endif

static _Atomic uint64_t g_calls;

uint64_t mt__cuda_dnn_calls(void)
{
    return atomic_load(&g_calls);
}

#if MT_CUDNN_HEADERS
#include <cudnn.h>

#define WS_LIMIT ((size_t)512 << 20)

typedef struct dnn_api {
    __typeof__(&cudnnGetVersion) GetVersion;
    __typeof__(&cudnnGetErrorString) GetErrorString;
    __typeof__(&cudnnCreate) Create;
    __typeof__(&cudnnDestroy) Destroy;
    __typeof__(&cudnnSetStream) SetStream;
    __typeof__(&cudnnCreateTensorDescriptor) CreateTensor;
    __typeof__(&cudnnSetTensor4dDescriptor) SetTensor4d;
    __typeof__(&cudnnDestroyTensorDescriptor) DestroyTensor;
    __typeof__(&cudnnCreateFilterDescriptor) CreateFilter;
    __typeof__(&cudnnSetFilter4dDescriptor) SetFilter4d;
    __typeof__(&cudnnDestroyFilterDescriptor) DestroyFilter;
    __typeof__(&cudnnCreateConvolutionDescriptor) CreateConv;
    __typeof__(&cudnnSetConvolution2dDescriptor) SetConv2d;
    __typeof__(&cudnnSetConvolutionMathType) SetConvMath;
    __typeof__(&cudnnDestroyConvolutionDescriptor) DestroyConv;
    __typeof__(&cudnnGetConvolutionForwardAlgorithm_v7) FwdAlgo;
    __typeof__(&cudnnGetConvolutionBackwardDataAlgorithm_v7) BwdDataAlgo;
    __typeof__(&cudnnGetConvolutionBackwardFilterAlgorithm_v7) BwdFilterAlgo;
    __typeof__(&cudnnConvolutionForward) ConvFwd;
    __typeof__(&cudnnConvolutionBackwardData) ConvBwdData;
    __typeof__(&cudnnConvolutionBackwardFilter) ConvBwdFilter;
    __typeof__(&cudnnCreatePoolingDescriptor) CreatePool;
    __typeof__(&cudnnSetPooling2dDescriptor) SetPool2d;
    __typeof__(&cudnnDestroyPoolingDescriptor) DestroyPool;
    __typeof__(&cudnnPoolingForward) PoolFwd;
    __typeof__(&cudnnPoolingBackward) PoolBwd;
} dnn_api;

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static dnn_api g_api;
static bool g_ok;
static char g_why[512];

static void load_once(void)
{
    const char *env = getenv("MLTRAIN_LIBCUDNN");
    const char *home = getenv("CUDA_HOME");
    char p1[600] = "";
    if (home && *home) snprintf(p1, sizeof p1, "%s/lib64/libcudnn.so.9", home);
    const char *names[] = {env, "libcudnn.so.9", p1, "/usr/local/cuda/lib64/libcudnn.so.9"};
    void *h = NULL;
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !h; i++)
        if (names[i] && *names[i]) h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        snprintf(g_why, sizeof g_why, "libcudnn.so.9 not found (%s)", e ? e : "dlopen failed");
        return;
    }
    struct {
        void **slot;
        const char *name;
    } syms[] = {
#define S(field, sym) {(void **)&g_api.field, #sym}
        S(GetVersion, cudnnGetVersion), S(GetErrorString, cudnnGetErrorString),
        S(Create, cudnnCreate), S(Destroy, cudnnDestroy), S(SetStream, cudnnSetStream),
        S(CreateTensor, cudnnCreateTensorDescriptor), S(SetTensor4d, cudnnSetTensor4dDescriptor),
        S(DestroyTensor, cudnnDestroyTensorDescriptor),
        S(CreateFilter, cudnnCreateFilterDescriptor), S(SetFilter4d, cudnnSetFilter4dDescriptor),
        S(DestroyFilter, cudnnDestroyFilterDescriptor),
        S(CreateConv, cudnnCreateConvolutionDescriptor),
        S(SetConv2d, cudnnSetConvolution2dDescriptor),
        S(SetConvMath, cudnnSetConvolutionMathType),
        S(DestroyConv, cudnnDestroyConvolutionDescriptor),
        S(FwdAlgo, cudnnGetConvolutionForwardAlgorithm_v7),
        S(BwdDataAlgo, cudnnGetConvolutionBackwardDataAlgorithm_v7),
        S(BwdFilterAlgo, cudnnGetConvolutionBackwardFilterAlgorithm_v7),
        S(ConvFwd, cudnnConvolutionForward), S(ConvBwdData, cudnnConvolutionBackwardData),
        S(ConvBwdFilter, cudnnConvolutionBackwardFilter),
        S(CreatePool, cudnnCreatePoolingDescriptor), S(SetPool2d, cudnnSetPooling2dDescriptor),
        S(DestroyPool, cudnnDestroyPoolingDescriptor), S(PoolFwd, cudnnPoolingForward),
        S(PoolBwd, cudnnPoolingBackward),
#undef S
    };
    for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++) {
        *syms[i].slot = dlsym(h, syms[i].name);
        if (!*syms[i].slot) {
            snprintf(g_why, sizeof g_why, "libcudnn.so.9 lacks %s", syms[i].name);
            return; /* the library stays loaded: harmless, and unloading is not worth a race */
        }
    }
    if (g_api.GetVersion() < 90000) {
        snprintf(g_why, sizeof g_why, "cuDNN %zu is older than 9", g_api.GetVersion());
        return;
    }
    g_ok = true;
}

static const dnn_api *api(void)
{
    pthread_once(&g_once, load_once);
    return g_ok ? &g_api : NULL;
}

/* Logs the first failure of the process (debug level) and answers it as `st`. */
static mt_status fallback(mt_device *dev, mt_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static mt_status fallback(mt_device *dev, mt_status st, const char *fmt, ...)
{
    static atomic_flag logged = ATOMIC_FLAG_INIT;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!atomic_flag_test_and_set(&logged))
        mt_log(MT_LOG_DEBUG, "cuDNN on %s: %s; convolution and pooling use the generic kernels "
               "where cuDNN fails (logged once)", dev->info.name, msg);
    return mt_err_set(st, "cuDNN on %s: %s", dev->info.name, msg);
}

static const char *dnn_err(const dnn_api *a, cudnnStatus_t s)
{
    const char *n = a->GetErrorString(s);
    return n ? n : "unknown cuDNN status";
}

/* The handle (blas_lock held, context current). */
static mt_status handle_of(mt_device *dev, const dnn_api *a, cudnnHandle_t *out)
{
    mt_cuda_dev *d = dev->impl;
    if (!d->dnn) {
        cudnnHandle_t h = NULL;
        cudnnStatus_t s = a->Create(&h);
        if (s != CUDNN_STATUS_SUCCESS)
            return fallback(dev, MT_ERR_DEVICE, "cudnnCreate: %s", dnn_err(a, s));
        d->dnn = h;
    }
    *out = (cudnnHandle_t)d->dnn;
    cudnnStatus_t s = a->SetStream(*out, (cudaStream_t)mt__cuda_stream(dev, NULL));
    if (s != CUDNN_STATUS_SUCCESS)
        return fallback(dev, MT_ERR_DEVICE, "cudnnSetStream: %s", dnn_err(a, s));
    return MT_OK;
}

void mt__cuda_dnn_close(mt_device *dev)
{
    mt_cuda_dev *d = dev->impl;
    if (d && d->dnn && g_ok) g_api.Destroy((cudnnHandle_t)d->dnn);
    if (d) d->dnn = NULL;
}

static void *dptr(const mt_array *a)
{
    return (void *)((uintptr_t)a->buf->handle + a->offset);
}

static bool fits_int(const int64_t *d, int32_t n)
{
    int64_t total = 1;
    for (int32_t i = 0; i < n; i++) {
        if (d[i] < 1 || d[i] > INT32_MAX) return false;
        total *= d[i];
        if (total > INT32_MAX) return false;
    }
    return true;
}

/* Descriptors of one call, destroyed together. */
typedef struct descs {
    cudnnTensorDescriptor_t t[3];
    cudnnFilterDescriptor_t f;
    cudnnConvolutionDescriptor_t c;
    cudnnPoolingDescriptor_t p;
} descs;

static void descs_free(const dnn_api *a, descs *d)
{
    for (int i = 0; i < 3; i++)
        if (d->t[i]) a->DestroyTensor(d->t[i]);
    if (d->f) a->DestroyFilter(d->f);
    if (d->c) a->DestroyConv(d->c);
    if (d->p) a->DestroyPool(d->p);
}

/* The start of a cuDNN call on dev: loads the API, binds dev, takes the device's BLAS lock and
 * its cuDNN handle. On MT_OK the lock is held; dnn_end frees the descriptors and releases it. */
static mt_status dnn_begin(mt_device *dev, const dnn_api **a, cudnnHandle_t *h)
{
    *a = api();
    if (!*a) return fallback(dev, MT_ERR_UNSUPPORTED, "%s", g_why);
    mt_status st = mt__cuda_bind(dev);
    if (st != MT_OK) return st;
    mt_cuda_dev *d = dev->impl;
    pthread_mutex_lock(&d->blas_lock);
    st = handle_of(dev, *a, h);
    if (st != MT_OK) pthread_mutex_unlock(&d->blas_lock);
    return st;
}

static void dnn_end(mt_device *dev, const dnn_api *a, descs *ds)
{
    mt_cuda_dev *d = dev->impl;
    descs_free(a, ds);
    pthread_mutex_unlock(&d->blas_lock);
}

static cudnnStatus_t tensor(const dnn_api *a, cudnnTensorDescriptor_t *t, cudnnDataType_t dt,
                            const int64_t *d)
{
    cudnnStatus_t s = a->CreateTensor(t);
    if (s == CUDNN_STATUS_SUCCESS)
        s = a->SetTensor4d(*t, CUDNN_TENSOR_NCHW, dt, (int)d[0], (int)d[1], (int)d[2], (int)d[3]);
    return s;
}

/* GEMM-like algorithms only: the FFT and Winograd ones round differently (float32 errors of
 * 1e-3 relative were seen on an H200 for a 5x5 filter gradient). */
static bool exact_algo(int32_t kind, int algo)
{
    if (kind == MT__CONV_FWD)
        return algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM ||
               algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM ||
               algo == CUDNN_CONVOLUTION_FWD_ALGO_GEMM || algo == CUDNN_CONVOLUTION_FWD_ALGO_DIRECT;
    if (kind == MT__CONV_BWD_DATA)
        return algo == CUDNN_CONVOLUTION_BWD_DATA_ALGO_0 ||
               algo == CUDNN_CONVOLUTION_BWD_DATA_ALGO_1;
    return algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0 ||
           algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1 ||
           algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3;
}

/* The first deterministic GEMM-like algorithm that succeeded within the workspace limit. */
#define PICK(perf, n, out_algo, out_mem, found)                                                  \
    for (int i_ = 0; i_ < (n) && !(found); i_++) {                                               \
        if ((perf)[i_].status == CUDNN_STATUS_SUCCESS && exact_algo(kind, (int)(perf)[i_].algo) && \
            (perf)[i_].determinism == CUDNN_DETERMINISTIC && (perf)[i_].memory <= WS_LIMIT &&     \
            (perf)[i_].mathType != CUDNN_TENSOR_OP_MATH &&                                       \
            (perf)[i_].mathType != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION) {                      \
            (out_algo) = (perf)[i_].algo;                                                        \
            (out_mem) = (perf)[i_].memory;                                                       \
            (found) = true;                                                                      \
        }                                                                                        \
    }

static mt_status run_conv(mt_device *dev, const dnn_api *a, cudnnHandle_t h, int32_t kind,
                          descs *ds, const mt_array *x, const mt_array *w, const mt_array *y,
                          bool f64)
{
    enum { NALGO = 16 };
    int n = 0;
    bool found = false;
    size_t mem = 0;
    cudnnStatus_t s;
    const char *call = "cudnnGetConvolution*Algorithm_v7";
    int algo = 0;
    if (kind == MT__CONV_FWD) {
        cudnnConvolutionFwdAlgoPerf_t perf[NALGO];
        s = a->FwdAlgo(h, ds->t[0], ds->f, ds->c, ds->t[1], NALGO, &n, perf);
        if (s == CUDNN_STATUS_SUCCESS) PICK(perf, n, algo, mem, found)
    } else if (kind == MT__CONV_BWD_DATA) {
        cudnnConvolutionBwdDataAlgoPerf_t perf[NALGO];
        s = a->BwdDataAlgo(h, ds->f, ds->t[1], ds->c, ds->t[0], NALGO, &n, perf);
        if (s == CUDNN_STATUS_SUCCESS) PICK(perf, n, algo, mem, found)
    } else {
        cudnnConvolutionBwdFilterAlgoPerf_t perf[NALGO];
        s = a->BwdFilterAlgo(h, ds->t[0], ds->t[1], ds->c, ds->f, NALGO, &n, perf);
        if (s == CUDNN_STATUS_SUCCESS) PICK(perf, n, algo, mem, found)
    }
    if (s != CUDNN_STATUS_SUCCESS) return fallback(dev, MT_ERR_DEVICE, "%s: %s", call, dnn_err(a, s));
    if (!found)
        return fallback(dev, MT_ERR_UNSUPPORTED, "no deterministic FMA algorithm among %d", n);
    mt_buffer *ws = NULL;
    if (mem > 0) {
        mt_status st = mt_buffer_new(&ws, dev, mem);
        if (st != MT_OK) return st;
    }
    void *wsp = ws ? ws->handle : NULL;
    const float one_f = 1.0f, zero_f = 0.0f;
    const double one_d = 1.0, zero_d = 0.0;
    const void *one = f64 ? (const void *)&one_d : (const void *)&one_f;
    const void *zero = f64 ? (const void *)&zero_d : (const void *)&zero_f;
    if (kind == MT__CONV_FWD) {
        call = "cudnnConvolutionForward";
        s = a->ConvFwd(h, one, ds->t[0], dptr(x), ds->f, dptr(w), ds->c,
                       (cudnnConvolutionFwdAlgo_t)algo, wsp, mem, zero, ds->t[1], dptr(y));
    } else if (kind == MT__CONV_BWD_DATA) {
        call = "cudnnConvolutionBackwardData";
        s = a->ConvBwdData(h, one, ds->f, dptr(w), ds->t[1], dptr(y), ds->c,
                           (cudnnConvolutionBwdDataAlgo_t)algo, wsp, mem, zero, ds->t[0],
                           dptr(x));
    } else {
        call = "cudnnConvolutionBackwardFilter";
        s = a->ConvBwdFilter(h, one, ds->t[0], dptr(x), ds->t[1], dptr(y), ds->c,
                             (cudnnConvolutionBwdFilterAlgo_t)algo, wsp, mem, zero, ds->f,
                             dptr(w));
    }
    mt_buffer_release(ws);
    mt_log(MT_LOG_DEBUG, "cuDNN conv kind %d algorithm %d workspace %zu: %s", (int)kind, algo,
           mem, s == CUDNN_STATUS_SUCCESS ? "ok" : dnn_err(a, s));
    if (s != CUDNN_STATUS_SUCCESS)
        return fallback(dev, MT_ERR_DEVICE, "%s (algorithm %d): %s", call, algo, dnn_err(a, s));
    atomic_fetch_add(&g_calls, 1);
    return MT_OK;
}

mt_status mt__cuda_dnn_conv2d(mt_device *dev, int32_t kind, mt_array *out, const mt_array *a_in,
                              const mt_array *b_in, const mt_conv2d_params *p)
{
    /* x, w, y of the convolution, whichever is the output */
    const mt_array *x = kind == MT__CONV_BWD_DATA ? out : a_in;
    const mt_array *w = kind == MT__CONV_BWD_FILTER ? out : kind == MT__CONV_FWD ? b_in : b_in;
    const mt_array *y = kind == MT__CONV_FWD ? out : kind == MT__CONV_BWD_DATA ? a_in : b_in;
    bool f64 = out->dtype == MT_FLOAT64;
    if ((out->dtype != MT_FLOAT32 && !f64) || !fits_int(x->dims, 4) || !fits_int(w->dims, 4) ||
        !fits_int(y->dims, 4))
        return mt_err_set(MT_ERR_UNSUPPORTED, "cuDNN: unsupported convolution operands");
    const dnn_api *a = NULL;
    cudnnHandle_t h = NULL;
    mt_status st = dnn_begin(dev, &a, &h);
    if (st != MT_OK) return st;
    cudnnDataType_t dt = f64 ? CUDNN_DATA_DOUBLE : CUDNN_DATA_FLOAT;
    descs ds;
    memset(&ds, 0, sizeof ds);
    cudnnStatus_t s = CUDNN_STATUS_SUCCESS;
    if (st == MT_OK) {
        s = tensor(a, &ds.t[0], dt, x->dims);
        if (s == CUDNN_STATUS_SUCCESS) s = tensor(a, &ds.t[1], dt, y->dims);
        if (s == CUDNN_STATUS_SUCCESS) s = a->CreateFilter(&ds.f);
        if (s == CUDNN_STATUS_SUCCESS)
            s = a->SetFilter4d(ds.f, dt, CUDNN_TENSOR_NCHW, (int)w->dims[0], (int)w->dims[1],
                               (int)w->dims[2], (int)w->dims[3]);
        if (s == CUDNN_STATUS_SUCCESS) s = a->CreateConv(&ds.c);
        if (s == CUDNN_STATUS_SUCCESS)
            s = a->SetConv2d(ds.c, p->pad[0], p->pad[1], p->stride[0], p->stride[1], 1, 1,
                             CUDNN_CROSS_CORRELATION, dt);
        if (s == CUDNN_STATUS_SUCCESS) s = a->SetConvMath(ds.c, CUDNN_FMA_MATH);
        if (s != CUDNN_STATUS_SUCCESS)
            st = fallback(dev, MT_ERR_DEVICE, "descriptors: %s", dnn_err(a, s));
    }
    if (st == MT_OK) st = run_conv(dev, a, h, kind, &ds, x, w, y, f64);
    dnn_end(dev, a, &ds);
    return st;
}

mt_status mt__cuda_dnn_pool2d(mt_device *dev, bool backward, mt_array *out, const mt_array *x,
                              const mt_array *y, const mt_array *dy, const mt_pool2d_params *p)
{
    bool f64 = out->dtype == MT_FLOAT64, mean = p->kind == MT_POOL2D_MEAN;
    const int64_t *xd = x->dims, *yd = backward ? dy->dims : out->dims;
    bool floor_size = true;
    for (int i = 0; i < 2; i++)
        floor_size = floor_size && xd[2 + i] + 2 * (int64_t)p->pad[i] >= p->size[i] &&
                     yd[2 + i] == (xd[2 + i] + 2 * p->pad[i] - p->size[i]) / p->stride[i] + 1;
    if ((out->dtype != MT_FLOAT32 && !f64) || (backward && !mean) || !floor_size ||
        !fits_int(xd, 4) || !fits_int(yd, 4))
        return mt_err_set(MT_ERR_UNSUPPORTED, "cuDNN: pooling case left to the generic kernels");
    const dnn_api *a = NULL;
    cudnnHandle_t h = NULL;
    mt_status st = dnn_begin(dev, &a, &h);
    if (st != MT_OK) return st;
    cudnnDataType_t dt = f64 ? CUDNN_DATA_DOUBLE : CUDNN_DATA_FLOAT;
    descs ds;
    memset(&ds, 0, sizeof ds);
    cudnnStatus_t s = CUDNN_STATUS_SUCCESS;
    const char *call = "pooling descriptors";
    if (st == MT_OK) {
        s = tensor(a, &ds.t[0], dt, xd);
        if (s == CUDNN_STATUS_SUCCESS) s = tensor(a, &ds.t[1], dt, yd);
        if (s == CUDNN_STATUS_SUCCESS) s = a->CreatePool(&ds.p);
        if (s == CUDNN_STATUS_SUCCESS)
            s = a->SetPool2d(ds.p, mean ? CUDNN_POOLING_AVERAGE_COUNT_EXCLUDE_PADDING
                                        : CUDNN_POOLING_MAX_DETERMINISTIC,
                             CUDNN_PROPAGATE_NAN, p->size[0], p->size[1], p->pad[0], p->pad[1],
                             p->stride[0], p->stride[1]);
        const float one_f = 1.0f, zero_f = 0.0f;
        const double one_d = 1.0, zero_d = 0.0;
        const void *one = f64 ? (const void *)&one_d : (const void *)&one_f;
        const void *zero = f64 ? (const void *)&zero_d : (const void *)&zero_f;
        if (s == CUDNN_STATUS_SUCCESS && !backward) {
            call = "cudnnPoolingForward";
            s = a->PoolFwd(h, ds.p, one, ds.t[0], dptr(x), zero, ds.t[1], dptr(out));
        } else if (s == CUDNN_STATUS_SUCCESS) {
            /* mean: y and x only describe shapes; dy stands in for a missing y */
            call = "cudnnPoolingBackward";
            s = a->PoolBwd(h, ds.p, one, ds.t[1], dptr(y ? y : dy), ds.t[1], dptr(dy), ds.t[0],
                           dptr(x), zero, ds.t[0], dptr(out));
        }
        if (s != CUDNN_STATUS_SUCCESS) st = fallback(dev, MT_ERR_DEVICE, "%s: %s", call, dnn_err(a, s));
    }
    if (st == MT_OK) atomic_fetch_add(&g_calls, 1);
    dnn_end(dev, a, &ds);
    return st;
}

#else /* no cuDNN headers at build time: every case runs the generic kernels */

void mt__cuda_dnn_close(mt_device *dev)
{
    (void)dev;
}

mt_status mt__cuda_dnn_conv2d(mt_device *dev, int32_t kind, mt_array *out, const mt_array *a,
                              const mt_array *b, const mt_conv2d_params *p)
{
    (void)dev, (void)kind, (void)out, (void)a, (void)b, (void)p;
    return mt_err_set(MT_ERR_NOT_BUILT, "cuDNN: built without cudnn.h");
}

mt_status mt__cuda_dnn_pool2d(mt_device *dev, bool backward, mt_array *out, const mt_array *x,
                              const mt_array *y, const mt_array *dy, const mt_pool2d_params *p)
{
    (void)dev, (void)backward, (void)out, (void)x, (void)y, (void)dy, (void)p;
    return mt_err_set(MT_ERR_NOT_BUILT, "cuDNN: built without cudnn.h");
}

#endif
