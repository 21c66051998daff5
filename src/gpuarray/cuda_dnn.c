/* Convolution and pooling on CUDA devices through cuDNN: the optional conv2d / pool2d members
 * of the CUDA backend's vtable (conv.c calls them first and runs its generic kernels whenever
 * they fail).
 *
 * cuDNN 9 (libcudnn.so.9, $MLTRAIN_LIBCUDNN first) is dlopen'ed once per process, like the
 * driver and cuBLAS: nothing links against it, the headers give the prototypes (each pointer is
 * __typeof__ of the header's declaration), and a machine without cuDNN, or a build without its
 * headers, simply takes the generic path. The legacy descriptor API is used (still present in
 * cuDNN 9): 4-d NCHW tensor and filter descriptors, a cross-correlation descriptor with the
 * data type as compute type and CUDNN_FMA_MATH (no TF32 unless asked, below, so float32 rounds
 * like cuBLAS and the generic kernels), the algorithm from cudnnGet*Algorithm_v7 (the first
 * deterministic GEMM-like one that succeeds within WS_LIMIT bytes of workspace; below, a timed
 * search may replace it), the workspace from the device's caching
 * allocator, and the device's compute stream. One cuDNN handle per device, created on first use
 * with the device's primary context current and guarded by the backend's BLAS mutex.
 *
 * Convolution plans are cached per device: the descriptors and the chosen algorithm (or the
 * verdict that none is acceptable) of each (direction, dtype, shapes, padding, stride), up to
 * PLAN_SLOTS of them, least recently used evicted. The heuristic query costs about a
 * millisecond of CPU time per call in cuDNN 9, more than the convolutions of a small network
 * take on the GPU, so a training step asks it once per shape, as PyTorch's algorithm cache does.
 *
 * Two opt-ins, read at device open, as PyTorch's cudnn.allow_tf32 and cudnn.benchmark:
 * MLTRAIN_CUDA_TF32=1 lets float32 convolutions use TF32 tensor cores (CUDNN_TENSOR_OP_MATH
 * and tensor-op algorithms; operands rounded to 10-bit mantissas, about 1e-3 relative, so
 * results no longer match the host's float32); MLTRAIN_CUDNN_BENCHMARK=1 times the acceptable
 * algorithms of each new plan on its operands (cudnnFind*AlgorithmEx) and keeps the fastest.
 *
 * Only cases that give the generic path's results are taken: convolutions (float32/float64,
 * sizes within cuDNN's int dimensions), max pooling forward and mean pooling forward and
 * gradient when the output has the floor size (no ceil-mode window past the padded input;
 * CUDNN_POOLING_AVERAGE_COUNT_EXCLUDE_PADDING then divides by the clipped count, and
 * CUDNN_PROPAGATE_NAN keeps NaNs). The max-pooling gradient always runs the generic kernel:
 * cuDNN does not document which of several equal maxima receives the gradient, and mltrain's
 * rule is the first in C order. Any cuDNN error answers an error (logged once per process at
 * debug level), and the caller computes the result generically; errors that would repeat are
 * not paid again: a device whose cudnnCreate failed, and a convolution plan whose execution
 * failed (a warning names it), go to the generic kernels from then on. */
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

static _Atomic uint64_t g_calls, g_queries, g_finds;

uint64_t mt__cuda_dnn_calls(void)
{
    return atomic_load(&g_calls);
}

uint64_t mt__cuda_dnn_algo_queries(void)
{
    return atomic_load(&g_queries);
}

uint64_t mt__cuda_dnn_algo_searches(void)
{
    return atomic_load(&g_finds);
}

#if MT_CUDNN_HEADERS
#include <cudnn.h>

#define WS_LIMIT ((size_t)512 << 20)
#define PLAN_SLOTS 64

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
    /* optional (MLTRAIN_CUDNN_BENCHMARK): NULL = the heuristic's choice only */
    __typeof__(&cudnnFindConvolutionForwardAlgorithmEx) FindFwd;
    __typeof__(&cudnnFindConvolutionBackwardDataAlgorithmEx) FindBwdData;
    __typeof__(&cudnnFindConvolutionBackwardFilterAlgorithmEx) FindBwdFilter;
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
    g_api.FindFwd = (__typeof__(g_api.FindFwd))dlsym(h, "cudnnFindConvolutionForwardAlgorithmEx");
    g_api.FindBwdData =
        (__typeof__(g_api.FindBwdData))dlsym(h, "cudnnFindConvolutionBackwardDataAlgorithmEx");
    g_api.FindBwdFilter = (__typeof__(g_api.FindBwdFilter))dlsym(
        h, "cudnnFindConvolutionBackwardFilterAlgorithmEx");
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

/* Descriptors of one call or of one cached plan, destroyed together. */
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
    memset(d, 0, sizeof *d);
}

/* What identifies a convolution plan: every field is set (memset first), so keys compare with
 * memcmp. */
typedef struct conv_key {
    int32_t kind, f64;
    int32_t x[4], w[4], y[4];
    int32_t pad[2], stride[2];
} conv_key;

typedef struct conv_plan {
    conv_key key;
    uint64_t used;  /* the device clock at the last use; 0 = empty slot */
    bool runnable;  /* false: no acceptable algorithm, or its execution failed (generic) */
    bool failed;    /* the execution failed */
    int algo;
    int math;       /* the chosen entry's cudnnMathType_t, set on the descriptor */
    size_t mem;     /* workspace bytes */
    descs ds;       /* t[0] x, t[1] y, f, c (runnable plans only) */
} conv_plan;

/* The device's cuDNN state (mt_cuda_dev.dnn), under blas_lock. */
typedef struct dnn_state {
    cudnnHandle_t h; /* NULL: cudnnCreate failed, cuDNN is not used on this device */
    uint64_t clock;
    conv_plan plans[PLAN_SLOTS];
} dnn_state;

/* The device's state and handle (blas_lock held, context current). */
static mt_status state_of(mt_device *dev, const dnn_api *a, dnn_state **out)
{
    mt_cuda_dev *d = dev->impl;
    if (!d->dnn) {
        dnn_state *st = mt_calloc(1, sizeof *st);
        if (!st) return mt_err_set(MT_ERR_NOMEM, "cuDNN on %s: no memory for its state",
                                   dev->info.name);
        d->dnn = st;
        cudnnStatus_t s = a->Create(&st->h);
        if (s != CUDNN_STATUS_SUCCESS) {
            st->h = NULL; /* not asked again: every later call takes the generic kernels */
            return fallback(dev, MT_ERR_DEVICE, "cudnnCreate: %s", dnn_err(a, s));
        }
    }
    dnn_state *st = d->dnn;
    if (!st->h)
        return mt_err_set(MT_ERR_UNSUPPORTED, "cuDNN on %s: cudnnCreate failed earlier",
                          dev->info.name);
    cudnnStatus_t s = a->SetStream(st->h, (cudaStream_t)mt__cuda_stream(dev, NULL));
    if (s != CUDNN_STATUS_SUCCESS)
        return fallback(dev, MT_ERR_DEVICE, "cudnnSetStream: %s", dnn_err(a, s));
    *out = st;
    return MT_OK;
}

void mt__cuda_dnn_close(mt_device *dev)
{
    mt_cuda_dev *d = dev->impl;
    if (!d || !d->dnn) return;
    dnn_state *st = d->dnn;
    if (g_ok) {
        for (int i = 0; i < PLAN_SLOTS; i++) descs_free(&g_api, &st->plans[i].ds);
        if (st->h) g_api.Destroy(st->h);
    }
    mt_free(st);
    d->dnn = NULL;
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

/* The start of a cuDNN call on dev: loads the API, binds dev, takes the device's BLAS lock and
 * its cuDNN state. On MT_OK the lock is held; dnn_end frees the call's descriptors (if any) and
 * releases it. */
static mt_status dnn_begin(mt_device *dev, const dnn_api **a, dnn_state **st)
{
    *a = api();
    if (!*a) return fallback(dev, MT_ERR_UNSUPPORTED, "%s", g_why);
    mt_status s = mt__cuda_bind(dev);
    if (s != MT_OK) return s;
    mt_cuda_dev *d = dev->impl;
    pthread_mutex_lock(&d->blas_lock);
    s = state_of(dev, *a, st);
    if (s != MT_OK) pthread_mutex_unlock(&d->blas_lock);
    return s;
}

static void dnn_end(mt_device *dev, const dnn_api *a, descs *ds)
{
    mt_cuda_dev *d = dev->impl;
    if (ds) descs_free(a, ds);
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

/* Whether a ranked entry is acceptable: succeeded, deterministic, GEMM-like, within the
 * workspace limit `ws`, and FMA math (or tensor-op math on float32 when TF32 is allowed; never
 * the conversion of float32 operands to float16). */
#define ACCEPTABLE(e, kind, tc, ws)                                                              \
    ((e).status == CUDNN_STATUS_SUCCESS && exact_algo(kind, (int)(e).algo) &&                    \
     (e).determinism == CUDNN_DETERMINISTIC && (e).memory <= (ws) &&                             \
     (e).mathType != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION &&                                    \
     ((tc) || (e).mathType != CUDNN_TENSOR_OP_MATH))

/* The first acceptable entry of a ranking (the heuristic's, or the search's by time); the
 * largest workspace among the acceptable ones in *most. */
#define PICK(perf, n, kind, tc, ws, plan, most)                                                  \
    for (int i_ = 0; i_ < (n); i_++) {                                                           \
        if (!ACCEPTABLE((perf)[i_], kind, tc, ws)) continue;                                     \
        if ((perf)[i_].memory > *(most)) *(most) = (perf)[i_].memory;                            \
        if ((plan)->runnable) continue;                                                          \
        (plan)->algo = (int)(perf)[i_].algo;                                                     \
        (plan)->math = (int)(perf)[i_].mathType;                                                 \
        (plan)->mem = (perf)[i_].memory;                                                         \
        (plan)->runnable = true;                                                                 \
    }

static void key_dims(int32_t *dst, const int64_t *d)
{
    for (int i = 0; i < 4; i++) dst[i] = (int32_t)d[i];
}

/* The cached plan of key, or NULL. */
static conv_plan *plan_find(dnn_state *st, const conv_key *key)
{
    for (int i = 0; i < PLAN_SLOTS; i++)
        if (st->plans[i].used && memcmp(&st->plans[i].key, key, sizeof *key) == 0)
            return &st->plans[i];
    return NULL;
}

/* Empties a slot (its descriptors destroyed). */
static void plan_drop(const dnn_api *a, conv_plan *plan)
{
    descs_free(a, &plan->ds);
    memset(plan, 0, sizeof *plan);
}

/* An empty slot, or the least recently used one emptied. */
static conv_plan *plan_slot(const dnn_api *a, dnn_state *st)
{
    conv_plan *victim = &st->plans[0];
    for (int i = 0; i < PLAN_SLOTS && victim->used; i++)
        if (st->plans[i].used < victim->used) victim = &st->plans[i];
    plan_drop(a, victim);
    return victim;
}

/* MLTRAIN_CUDNN_BENCHMARK: cuDNN times the algorithms on the call's own operands (the output is
 * overwritten, as the call that follows does anyway), with a workspace as large as the largest
 * acceptable one of the heuristic's ranking, and the fastest acceptable one replaces the
 * heuristic's choice (true). A failure keeps the heuristic's choice (false). */
static bool plan_search(mt_device *dev, const dnn_api *a, dnn_state *st, conv_plan *plan,
                        bool tc, size_t most, const mt_array *x, const mt_array *w,
                        const mt_array *y)
{
    if (!a->FindFwd || !a->FindBwdData || !a->FindBwdFilter) {
        static atomic_flag logged = ATOMIC_FLAG_INIT;
        if (!atomic_flag_test_and_set(&logged))
            mt_log(MT_LOG_WARN, "cuDNN on %s: this libcudnn has no cudnnFind*AlgorithmEx: "
                   "MLTRAIN_CUDNN_BENCHMARK has no effect", dev->info.name);
        return false;
    }
    mt_buffer *ws = NULL;
    if (most > 0 && mt_buffer_new(&ws, dev, most) != MT_OK) {
        mt_err_clear(); /* search among the algorithms that need no workspace */
        most = 0;
    }
    void *wsp = ws ? ws->handle : NULL;
    enum { NALGO = 16 };
    int n = 0;
    struct {
        bool runnable;
        int algo, math;
        size_t mem;
    } best = {false, 0, 0, 0};
    size_t unused = 0;
    const descs *ds = &plan->ds;
    int32_t kind = plan->key.kind;
    cudnnStatus_t s;
    atomic_fetch_add(&g_finds, 1);
    if (kind == MT__CONV_FWD) {
        cudnnConvolutionFwdAlgoPerf_t perf[NALGO];
        s = a->FindFwd(st->h, ds->t[0], dptr(x), ds->f, dptr(w), ds->c, ds->t[1], dptr(y), NALGO,
                       &n, perf, wsp, most);
        if (s == CUDNN_STATUS_SUCCESS) PICK(perf, n, kind, tc, most, &best, &unused)
    } else if (kind == MT__CONV_BWD_DATA) {
        cudnnConvolutionBwdDataAlgoPerf_t perf[NALGO];
        s = a->FindBwdData(st->h, ds->f, dptr(w), ds->t[1], dptr(y), ds->c, ds->t[0], dptr(x),
                           NALGO, &n, perf, wsp, most);
        if (s == CUDNN_STATUS_SUCCESS) PICK(perf, n, kind, tc, most, &best, &unused)
    } else {
        cudnnConvolutionBwdFilterAlgoPerf_t perf[NALGO];
        s = a->FindBwdFilter(st->h, ds->t[0], dptr(x), ds->t[1], dptr(y), ds->c, ds->f, dptr(w),
                             NALGO, &n, perf, wsp, most);
        if (s == CUDNN_STATUS_SUCCESS) PICK(perf, n, kind, tc, most, &best, &unused)
    }
    mt_buffer_release(ws);
    if (s != CUDNN_STATUS_SUCCESS || !best.runnable) {
        mt_log(MT_LOG_DEBUG, "cuDNN on %s: the algorithm search of kind %d %s; keeping "
               "algorithm %d", dev->info.name, (int)kind, s != CUDNN_STATUS_SUCCESS ?
               dnn_err(a, s) : "found no acceptable algorithm", plan->algo);
        return false;
    }
    plan->algo = best.algo;
    plan->math = best.math;
    plan->mem = best.mem;
    return true;
}

/* Makes a plan for key in a slot: descriptors, then the heuristic's ranking (and, with
 * MLTRAIN_CUDNN_BENCHMARK, a timed search on the operands x, w, y). A plan without an
 * acceptable algorithm is kept too (runnable false), so the query is not repeated for it; a
 * cuDNN error keeps nothing. */
static mt_status plan_make(mt_device *dev, const dnn_api *a, dnn_state *st,
                           const conv_key *key, const mt_conv2d_params *p, const mt_array *xa,
                           const mt_array *wa, const mt_array *ya, conv_plan **out)
{
    mt_cuda_dev *d = dev->impl;
    bool tc = d->tf32 && !key->f64; /* TF32 tensor cores for float32, when allowed */
    conv_plan *plan = plan_slot(a, st);
    descs *ds = &plan->ds;
    cudnnDataType_t dt = key->f64 ? CUDNN_DATA_DOUBLE : CUDNN_DATA_FLOAT;
    const int32_t *x = key->x, *w = key->w, *y = key->y;
    const int64_t xd[4] = {x[0], x[1], x[2], x[3]}, yd[4] = {y[0], y[1], y[2], y[3]};
    const char *call = "descriptors";
    cudnnStatus_t s = tensor(a, &ds->t[0], dt, xd);
    if (s == CUDNN_STATUS_SUCCESS) s = tensor(a, &ds->t[1], dt, yd);
    if (s == CUDNN_STATUS_SUCCESS) s = a->CreateFilter(&ds->f);
    if (s == CUDNN_STATUS_SUCCESS)
        s = a->SetFilter4d(ds->f, dt, CUDNN_TENSOR_NCHW, w[0], w[1], w[2], w[3]);
    if (s == CUDNN_STATUS_SUCCESS) s = a->CreateConv(&ds->c);
    if (s == CUDNN_STATUS_SUCCESS)
        s = a->SetConv2d(ds->c, p->pad[0], p->pad[1], p->stride[0], p->stride[1], 1, 1,
                         CUDNN_CROSS_CORRELATION, dt);
    if (s == CUDNN_STATUS_SUCCESS)
        s = a->SetConvMath(ds->c, tc ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH);
    enum { NALGO = 16 };
    int n = 0;
    size_t most = 0; /* the largest workspace of an acceptable algorithm */
    if (s == CUDNN_STATUS_SUCCESS) {
        call = "cudnnGetConvolution*Algorithm_v7";
        atomic_fetch_add(&g_queries, 1);
        if (key->kind == MT__CONV_FWD) {
            cudnnConvolutionFwdAlgoPerf_t perf[NALGO];
            s = a->FwdAlgo(st->h, ds->t[0], ds->f, ds->c, ds->t[1], NALGO, &n, perf);
            if (s == CUDNN_STATUS_SUCCESS) PICK(perf, n, key->kind, tc, WS_LIMIT, plan, &most)
        } else if (key->kind == MT__CONV_BWD_DATA) {
            cudnnConvolutionBwdDataAlgoPerf_t perf[NALGO];
            s = a->BwdDataAlgo(st->h, ds->f, ds->t[1], ds->c, ds->t[0], NALGO, &n, perf);
            if (s == CUDNN_STATUS_SUCCESS) PICK(perf, n, key->kind, tc, WS_LIMIT, plan, &most)
        } else {
            cudnnConvolutionBwdFilterAlgoPerf_t perf[NALGO];
            s = a->BwdFilterAlgo(st->h, ds->t[0], ds->t[1], ds->c, ds->f, NALGO, &n, perf);
            if (s == CUDNN_STATUS_SUCCESS) PICK(perf, n, key->kind, tc, WS_LIMIT, plan, &most)
        }
    }
    if (s != CUDNN_STATUS_SUCCESS) {
        plan_drop(a, plan);
        return fallback(dev, MT_ERR_DEVICE, "%s: %s", call, dnn_err(a, s));
    }
    plan->key = *key;
    plan->used = ++st->clock;
    bool searched = plan->runnable && d->dnn_benchmark &&
                    plan_search(dev, a, st, plan, tc, most, xa, wa, ya);
    /* With TF32 allowed, the descriptor runs the entry as ranked, with its math type (FMA or
     * tensor-op), not the one it was asked with. Without, it stays CUDNN_FMA_MATH whatever the
     * entry says (CUDNN_DEFAULT_MATH would let float32 take TF32 on Ampere and later). */
    if (tc && plan->runnable && plan->math != (int)CUDNN_TENSOR_OP_MATH) {
        s = a->SetConvMath(ds->c, (cudnnMathType_t)plan->math);
        if (s != CUDNN_STATUS_SUCCESS) {
            plan_drop(a, plan);
            return fallback(dev, MT_ERR_DEVICE, "cudnnSetConvolutionMathType: %s", dnn_err(a, s));
        }
    }
    if (!plan->runnable) descs_free(a, ds);
    mt_log(MT_LOG_DEBUG, "cuDNN conv plan kind %d x %dx%dx%dx%d w %dx%dx%dx%d: %s %d, "
           "workspace %zu%s", (int)key->kind, x[0], x[1], x[2], x[3], w[0], w[1], w[2], w[3],
           plan->runnable ? "algorithm" : "no acceptable algorithm among", plan->runnable ?
           plan->algo : n, plan->mem, searched ? " (timed search)" : "");
    *out = plan;
    return MT_OK;
}

static mt_status run_plan(mt_device *dev, const dnn_api *a, dnn_state *st, conv_plan *plan,
                          const mt_array *x, const mt_array *w, const mt_array *y)
{
    mt_buffer *ws = NULL;
    if (plan->mem > 0) {
        mt_status r = mt_buffer_new(&ws, dev, plan->mem);
        if (r != MT_OK) return r;
    }
    void *wsp = ws ? ws->handle : NULL;
    bool f64 = plan->key.f64;
    const float one_f = 1.0f, zero_f = 0.0f;
    const double one_d = 1.0, zero_d = 0.0;
    const void *one = f64 ? (const void *)&one_d : (const void *)&one_f;
    const void *zero = f64 ? (const void *)&zero_d : (const void *)&zero_f;
    const descs *ds = &plan->ds;
    const char *call;
    cudnnStatus_t s;
    if (plan->key.kind == MT__CONV_FWD) {
        call = "cudnnConvolutionForward";
        s = a->ConvFwd(st->h, one, ds->t[0], dptr(x), ds->f, dptr(w), ds->c,
                       (cudnnConvolutionFwdAlgo_t)plan->algo, wsp, plan->mem, zero, ds->t[1],
                       dptr(y));
    } else if (plan->key.kind == MT__CONV_BWD_DATA) {
        call = "cudnnConvolutionBackwardData";
        s = a->ConvBwdData(st->h, one, ds->f, dptr(w), ds->t[1], dptr(y), ds->c,
                           (cudnnConvolutionBwdDataAlgo_t)plan->algo, wsp, plan->mem, zero,
                           ds->t[0], dptr(x));
    } else {
        call = "cudnnConvolutionBackwardFilter";
        s = a->ConvBwdFilter(st->h, one, ds->t[0], dptr(x), ds->t[1], dptr(y), ds->c,
                             (cudnnConvolutionBwdFilterAlgo_t)plan->algo, wsp, plan->mem, zero,
                             ds->f, dptr(w));
    }
    mt_buffer_release(ws);
    if (s != CUDNN_STATUS_SUCCESS) {
        /* not tried again for this shape: the generic kernels compute it from now on */
        const int32_t *kx = plan->key.x, *kw = plan->key.w;
        mt_log(MT_LOG_WARN, "cuDNN on %s: %s (algorithm %d) failed for x %dx%dx%dx%d w "
               "%dx%dx%dx%d: %s; this convolution runs on the generic kernels from now on",
               dev->info.name, call, plan->algo, kx[0], kx[1], kx[2], kx[3], kw[0], kw[1], kw[2],
               kw[3], dnn_err(a, s));
        descs_free(a, &plan->ds);
        plan->runnable = false;
        plan->failed = true;
        return mt_err_set(MT_ERR_DEVICE, "cuDNN on %s: %s (algorithm %d): %s", dev->info.name,
                          call, plan->algo, dnn_err(a, s));
    }
    atomic_fetch_add(&g_calls, 1);
    return MT_OK;
}

mt_status mt__cuda_dnn_conv2d(mt_device *dev, int32_t kind, mt_array *out, const mt_array *a_in,
                              const mt_array *b_in, const mt_conv2d_params *p)
{
    /* x, w, y of the convolution, whichever is the output */
    const mt_array *x = kind == MT__CONV_BWD_DATA ? out : a_in;
    const mt_array *w = kind == MT__CONV_BWD_FILTER ? out : b_in;
    const mt_array *y = kind == MT__CONV_FWD ? out : kind == MT__CONV_BWD_DATA ? a_in : b_in;
    bool f64 = out->dtype == MT_FLOAT64;
    if ((out->dtype != MT_FLOAT32 && !f64) || !fits_int(x->dims, 4) || !fits_int(w->dims, 4) ||
        !fits_int(y->dims, 4))
        return mt_err_set(MT_ERR_UNSUPPORTED, "cuDNN: unsupported convolution operands");
    conv_key key;
    memset(&key, 0, sizeof key);
    key.kind = kind;
    key.f64 = f64;
    key_dims(key.x, x->dims);
    key_dims(key.w, w->dims);
    key_dims(key.y, y->dims);
    for (int i = 0; i < 2; i++) {
        key.pad[i] = p->pad[i];
        key.stride[i] = p->stride[i];
    }
    const dnn_api *a = NULL;
    dnn_state *st = NULL;
    mt_status r = dnn_begin(dev, &a, &st);
    if (r != MT_OK) return r;
    conv_plan *plan = plan_find(st, &key);
    if (plan)
        plan->used = ++st->clock;
    else
        r = plan_make(dev, a, st, &key, p, x, w, y, &plan);
    if (r == MT_OK && !plan->runnable)
        r = mt_err_set(MT_ERR_UNSUPPORTED, "cuDNN on %s: %s", dev->info.name,
                       plan->failed ? "this convolution failed in cuDNN before"
                                    : "no acceptable algorithm (deterministic, GEMM-like) for "
                                      "this convolution");
    if (r == MT_OK) r = run_plan(dev, a, st, plan, x, w, y);
    dnn_end(dev, a, NULL);
    return r;
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
    dnn_state *state = NULL;
    mt_status st = dnn_begin(dev, &a, &state);
    if (st != MT_OK) return st;
    cudnnHandle_t h = state->h;
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
        if (s != CUDNN_STATUS_SUCCESS)
            st = fallback(dev, MT_ERR_DEVICE, "%s: %s", call, dnn_err(a, s));
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
