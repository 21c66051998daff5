/* A stand-in for cuDNN 9 (libcudnn.so.9) for tests on machines without a GPU: it exports the
 * entry points src/gpuarray/cuda_dnn.c resolves, with cudnn.h's prototypes, and computes
 * convolutions and pooling naively on the host from what the descriptors recorded. Used with
 * the stand-in CUDA driver (cuda_standin.c): MLTRAIN_LIBCUDNN=<this library>.
 *
 * Descriptors and handles are heap structs that record their settings (dims, data type,
 * layout, padding, stride, dilation, mode, math type, NaN propagation). The heuristic queries
 * (cudnnGet*Algorithm_v7) return a ranked list whose first entries are ones mltrain must skip
 * (Winograd / FFT, non-deterministic, tensor-op math, a failed status, a workspace over
 * mltrain's limit), each alone failing one of its conditions, followed by one acceptable
 * GEMM-like deterministic algorithm with a non-zero workspace; they are counted. The
 * executions check the contract mltrain relies on: alpha = 1 and beta = 0, the algorithm is
 * the acceptable one offered for that shape, the workspace pointer and size cover what was
 * promised (the whole workspace is written), every data pointer lies inside one live device
 * allocation of the CUDA stand-in, the handle's stream is live and a context is current; work
 * already queued on the stream runs first (stream order). A float convolution whose
 * descriptor does not ask for CUDNN_FMA_MATH rounds its inputs to TF32, as tensor cores would,
 * so a lost math setting shows up in the results. Breaches are printed on stderr and counted.
 *
 * The CUDA stand-in is reached with dlopen($MLTRAIN_LIBCUDA, RTLD_NOLOAD): the instance the
 * backend loaded. Knobs (standin.h): no acceptable algorithm for one batch size, failing the
 * next N executions, failing cudnnCreate; counters of live handles and descriptors. Test-only
 * code. */
#include <cudnn.h>
#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "standin.h"

/* ---------------------------------------------------------------- objects */

enum { K_HANDLE = 0, K_TENSOR, K_FILTER, K_CONV, K_POOL };

typedef struct obj {
    struct obj *next;
    int kind;
    bool set;
} obj;

struct cudnnContext {
    obj o;
    cudaStream_t stream;
};

struct cudnnTensorStruct {
    obj o;
    cudnnDataType_t dt;
    cudnnTensorFormat_t fmt;
    int n, c, h, w;
};

struct cudnnFilterStruct {
    obj o;
    cudnnDataType_t dt;
    cudnnTensorFormat_t fmt;
    int k, c, h, w;
};

struct cudnnConvolutionStruct {
    obj o;
    int pad[2], stride[2], dil[2];
    cudnnConvolutionMode_t mode;
    cudnnDataType_t ct;
    cudnnMathType_t math;
};

struct cudnnPoolingStruct {
    obj o;
    cudnnPoolingMode_t mode;
    cudnnNanPropagation_t nan;
    int win[2], pad[2], stride[2];
};

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static obj *g_objs;
static mt_standin_dnn_stats g_st;
static int g_refuse_batch = -1;
static int g_fail_execs;

static void violation(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void violation(const char *fmt, ...)
{
    pthread_mutex_lock(&g_lock);
    g_st.violations++;
    pthread_mutex_unlock(&g_lock);
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "mltrain cuDNN stand-in: contract violation: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static int64_t *live_counter(int kind)
{
    switch (kind) {
    case K_HANDLE: return &g_st.live_handles;
    case K_TENSOR: return &g_st.live_tensors;
    case K_FILTER: return &g_st.live_filters;
    case K_CONV: return &g_st.live_convs;
    default: return &g_st.live_pools;
    }
}

static cudnnStatus_t obj_new(void **out, size_t size, int kind)
{
    if (!out) return CUDNN_STATUS_BAD_PARAM;
    obj *o = calloc(1, size);
    if (!o) return CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED;
    o->kind = kind;
    pthread_mutex_lock(&g_lock);
    o->next = g_objs;
    g_objs = o;
    (*live_counter(kind))++;
    if (kind != K_HANDLE) g_st.live_descs++;
    pthread_mutex_unlock(&g_lock);
    *out = o;
    return CUDNN_STATUS_SUCCESS;
}

static bool obj_live(const void *p, int kind)
{
    pthread_mutex_lock(&g_lock);
    bool found = false;
    for (const obj *o = g_objs; o && !found; o = o->next) found = o == p && o->kind == kind;
    pthread_mutex_unlock(&g_lock);
    return found;
}

static cudnnStatus_t obj_free(void *p, int kind, const char *call)
{
    pthread_mutex_lock(&g_lock);
    obj **pp = &g_objs;
    while (*pp && !(*pp == p && (*pp)->kind == kind)) pp = &(*pp)->next;
    obj *o = *pp;
    if (o) {
        *pp = o->next;
        (*live_counter(kind))--;
        if (kind != K_HANDLE) g_st.live_descs--;
    }
    pthread_mutex_unlock(&g_lock);
    if (!o) {
        violation("%s(%p): not a live object of that kind", call, p);
        return CUDNN_STATUS_BAD_PARAM;
    }
    free(o);
    return CUDNN_STATUS_SUCCESS;
}

/* ---------------------------------------------------------------- the CUDA stand-in */

static struct {
    __typeof__(&mt_standin_cu_range_ok) range_ok;
    __typeof__(&mt_standin_cu_stream_ok) stream_ok;
    __typeof__(&mt_standin_cu_stream_drain) drain;
    __typeof__(&mt_standin_cu_ctx_current) ctx_current;
} g_cu;
static pthread_once_t g_cu_once = PTHREAD_ONCE_INIT;

static void cu_link(void)
{
    const char *path = getenv("MLTRAIN_LIBCUDA");
    void *h = path && *path ? dlopen(path, RTLD_NOW | RTLD_NOLOAD) : NULL;
    if (!h) return; /* the real driver, or none: nothing is checked against memory */
    g_cu.range_ok = (__typeof__(g_cu.range_ok))dlsym(h, "mt_standin_cu_range_ok");
    g_cu.stream_ok = (__typeof__(g_cu.stream_ok))dlsym(h, "mt_standin_cu_stream_ok");
    g_cu.drain = (__typeof__(g_cu.drain))dlsym(h, "mt_standin_cu_stream_drain");
    g_cu.ctx_current = (__typeof__(g_cu.ctx_current))dlsym(h, "mt_standin_cu_ctx_current");
    if (!g_cu.range_ok || !g_cu.stream_ok || !g_cu.drain || !g_cu.ctx_current)
        memset(&g_cu, 0, sizeof g_cu);
    pthread_mutex_lock(&g_lock);
    g_st.linked = g_cu.range_ok != NULL;
    pthread_mutex_unlock(&g_lock);
}

static bool linked(void)
{
    pthread_once(&g_cu_once, cu_link);
    return g_cu.range_ok != NULL;
}

/* ---------------------------------------------------------------- control */

void mt_standin_dnn_stats_get(mt_standin_dnn_stats *out)
{
    linked();
    pthread_mutex_lock(&g_lock);
    *out = g_st;
    pthread_mutex_unlock(&g_lock);
}

void mt_standin_dnn_refuse_batch(int n)
{
    pthread_mutex_lock(&g_lock);
    g_refuse_batch = n;
    pthread_mutex_unlock(&g_lock);
}

void mt_standin_dnn_fail_execs(int n)
{
    pthread_mutex_lock(&g_lock);
    g_fail_execs = n;
    pthread_mutex_unlock(&g_lock);
}

int mt_standin_dnn_good_algo(int kind)
{
    if (kind == 0) return CUDNN_CONVOLUTION_FWD_ALGO_GEMM;
    if (kind == 1) return CUDNN_CONVOLUTION_BWD_DATA_ALGO_1;
    return CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1;
}

/* ---------------------------------------------------------------- library, handle */

size_t CUDNNWINAPI cudnnGetVersion(void)
{
    return MT_STANDIN_DNN_VERSION;
}

const char *CUDNNWINAPI cudnnGetErrorString(cudnnStatus_t status)
{
    switch (status) {
    case CUDNN_STATUS_SUCCESS: return "CUDNN_STATUS_SUCCESS";
    case CUDNN_STATUS_NOT_INITIALIZED: return "CUDNN_STATUS_NOT_INITIALIZED";
    case CUDNN_STATUS_BAD_PARAM: return "CUDNN_STATUS_BAD_PARAM";
    case CUDNN_STATUS_NOT_SUPPORTED: return "CUDNN_STATUS_NOT_SUPPORTED";
    case CUDNN_STATUS_INTERNAL_ERROR: return "CUDNN_STATUS_INTERNAL_ERROR";
    case CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED:
        return "CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED";
    case CUDNN_STATUS_EXECUTION_FAILED: return "CUDNN_STATUS_EXECUTION_FAILED";
    default: return "CUDNN_STATUS_UNKNOWN";
    }
}

cudnnStatus_t CUDNNWINAPI cudnnCreate(cudnnHandle_t *handle)
{
    pthread_mutex_lock(&g_lock);
    g_st.create_calls++;
    pthread_mutex_unlock(&g_lock);
    const char *fail = getenv(MT_STANDIN_DNN_FAIL_CREATE_ENV);
    if (fail && *fail && strcmp(fail, "0") != 0) return CUDNN_STATUS_NOT_INITIALIZED;
    if (linked() && !g_cu.ctx_current()) {
        violation("cudnnCreate with no current CUDA context");
        return CUDNN_STATUS_NOT_INITIALIZED;
    }
    return obj_new((void **)handle, sizeof **handle, K_HANDLE);
}

cudnnStatus_t CUDNNWINAPI cudnnDestroy(cudnnHandle_t handle)
{
    return obj_free(handle, K_HANDLE, "cudnnDestroy");
}

cudnnStatus_t CUDNNWINAPI cudnnSetStream(cudnnHandle_t handle, cudaStream_t streamId)
{
    if (!obj_live(handle, K_HANDLE)) {
        violation("cudnnSetStream on an unknown handle %p", (void *)handle);
        return CUDNN_STATUS_BAD_PARAM;
    }
    if (linked() && !g_cu.stream_ok(streamId)) {
        violation("cudnnSetStream with an unknown stream %p", (void *)streamId);
        return CUDNN_STATUS_BAD_PARAM;
    }
    handle->stream = streamId;
    handle->o.set = true;
    return CUDNN_STATUS_SUCCESS;
}

/* ---------------------------------------------------------------- descriptors */

cudnnStatus_t CUDNNWINAPI cudnnCreateTensorDescriptor(cudnnTensorDescriptor_t *tensorDesc)
{
    return obj_new((void **)tensorDesc, sizeof **tensorDesc, K_TENSOR);
}

cudnnStatus_t CUDNNWINAPI cudnnSetTensor4dDescriptor(cudnnTensorDescriptor_t tensorDesc,
                                                     cudnnTensorFormat_t format,
                                                     cudnnDataType_t dataType, int n, int c,
                                                     int h, int w)
{
    if (!obj_live(tensorDesc, K_TENSOR)) return CUDNN_STATUS_BAD_PARAM;
    if (n < 1 || c < 1 || h < 1 || w < 1 ||
        (format != CUDNN_TENSOR_NCHW && format != CUDNN_TENSOR_NHWC))
        return CUDNN_STATUS_BAD_PARAM;
    tensorDesc->dt = dataType;
    tensorDesc->fmt = format;
    tensorDesc->n = n, tensorDesc->c = c, tensorDesc->h = h, tensorDesc->w = w;
    tensorDesc->o.set = true;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t CUDNNWINAPI cudnnDestroyTensorDescriptor(cudnnTensorDescriptor_t tensorDesc)
{
    return obj_free(tensorDesc, K_TENSOR, "cudnnDestroyTensorDescriptor");
}

cudnnStatus_t CUDNNWINAPI cudnnCreateFilterDescriptor(cudnnFilterDescriptor_t *filterDesc)
{
    return obj_new((void **)filterDesc, sizeof **filterDesc, K_FILTER);
}

cudnnStatus_t CUDNNWINAPI cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t filterDesc,
                                                     cudnnDataType_t dataType,
                                                     cudnnTensorFormat_t format, int k, int c,
                                                     int h, int w)
{
    if (!obj_live(filterDesc, K_FILTER)) return CUDNN_STATUS_BAD_PARAM;
    if (k < 1 || c < 1 || h < 1 || w < 1 ||
        (format != CUDNN_TENSOR_NCHW && format != CUDNN_TENSOR_NHWC))
        return CUDNN_STATUS_BAD_PARAM;
    filterDesc->dt = dataType;
    filterDesc->fmt = format;
    filterDesc->k = k, filterDesc->c = c, filterDesc->h = h, filterDesc->w = w;
    filterDesc->o.set = true;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t CUDNNWINAPI cudnnDestroyFilterDescriptor(cudnnFilterDescriptor_t filterDesc)
{
    return obj_free(filterDesc, K_FILTER, "cudnnDestroyFilterDescriptor");
}

cudnnStatus_t CUDNNWINAPI cudnnCreateConvolutionDescriptor(cudnnConvolutionDescriptor_t *convDesc)
{
    cudnnStatus_t s = obj_new((void **)convDesc, sizeof **convDesc, K_CONV);
    if (s == CUDNN_STATUS_SUCCESS) (*convDesc)->math = CUDNN_DEFAULT_MATH;
    return s;
}

cudnnStatus_t CUDNNWINAPI cudnnSetConvolution2dDescriptor(cudnnConvolutionDescriptor_t convDesc,
                                                          int pad_h, int pad_w, int u, int v,
                                                          int dilation_h, int dilation_w,
                                                          cudnnConvolutionMode_t mode,
                                                          cudnnDataType_t computeType)
{
    if (!obj_live(convDesc, K_CONV)) return CUDNN_STATUS_BAD_PARAM;
    if (pad_h < 0 || pad_w < 0 || u < 1 || v < 1 || dilation_h < 1 || dilation_w < 1 ||
        (mode != CUDNN_CONVOLUTION && mode != CUDNN_CROSS_CORRELATION))
        return CUDNN_STATUS_BAD_PARAM;
    convDesc->pad[0] = pad_h, convDesc->pad[1] = pad_w;
    convDesc->stride[0] = u, convDesc->stride[1] = v;
    convDesc->dil[0] = dilation_h, convDesc->dil[1] = dilation_w;
    convDesc->mode = mode;
    convDesc->ct = computeType;
    convDesc->o.set = true;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t CUDNNWINAPI cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t convDesc,
                                                      cudnnMathType_t mathType)
{
    if (!obj_live(convDesc, K_CONV)) return CUDNN_STATUS_BAD_PARAM;
    if (mathType != CUDNN_DEFAULT_MATH && mathType != CUDNN_TENSOR_OP_MATH &&
        mathType != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION && mathType != CUDNN_FMA_MATH)
        return CUDNN_STATUS_BAD_PARAM;
    convDesc->math = mathType;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t CUDNNWINAPI cudnnDestroyConvolutionDescriptor(cudnnConvolutionDescriptor_t convDesc)
{
    return obj_free(convDesc, K_CONV, "cudnnDestroyConvolutionDescriptor");
}

cudnnStatus_t CUDNNWINAPI cudnnCreatePoolingDescriptor(cudnnPoolingDescriptor_t *poolingDesc)
{
    return obj_new((void **)poolingDesc, sizeof **poolingDesc, K_POOL);
}

cudnnStatus_t CUDNNWINAPI cudnnSetPooling2dDescriptor(cudnnPoolingDescriptor_t poolingDesc,
                                                      cudnnPoolingMode_t mode,
                                                      cudnnNanPropagation_t maxpoolingNanOpt,
                                                      int windowHeight, int windowWidth,
                                                      int verticalPadding, int horizontalPadding,
                                                      int verticalStride, int horizontalStride)
{
    if (!obj_live(poolingDesc, K_POOL)) return CUDNN_STATUS_BAD_PARAM;
    if (windowHeight < 1 || windowWidth < 1 || verticalPadding < 0 || horizontalPadding < 0 ||
        verticalStride < 1 || horizontalStride < 1 || (int)mode < 0 || (int)mode > 3)
        return CUDNN_STATUS_BAD_PARAM;
    poolingDesc->mode = mode;
    poolingDesc->nan = maxpoolingNanOpt;
    poolingDesc->win[0] = windowHeight, poolingDesc->win[1] = windowWidth;
    poolingDesc->pad[0] = verticalPadding, poolingDesc->pad[1] = horizontalPadding;
    poolingDesc->stride[0] = verticalStride, poolingDesc->stride[1] = horizontalStride;
    poolingDesc->o.set = true;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t CUDNNWINAPI cudnnDestroyPoolingDescriptor(cudnnPoolingDescriptor_t poolingDesc)
{
    return obj_free(poolingDesc, K_POOL, "cudnnDestroyPoolingDescriptor");
}

/* ---------------------------------------------------------------- convolution geometry */

typedef struct tdesc {
    cudnnDataType_t dt;
    cudnnTensorFormat_t fmt;
    int n, c, h, w;
} tdesc;

/* The three operands of one convolution, checked against each other. */
typedef struct cgeo {
    tdesc x, w, y;
    const struct cudnnConvolutionStruct *cv;
} cgeo;

static bool is_set(const void *p, int kind)
{
    return obj_live(p, kind) && ((const obj *)p)->set;
}

static tdesc tdesc_of_tensor(const struct cudnnTensorStruct *t)
{
    return (tdesc){t->dt, t->fmt, t->n, t->c, t->h, t->w};
}

/* CUDNN_STATUS_SUCCESS when x, w, y and the convolution fit together (cuDNN's forward output
 * dims), with g filled. */
static cudnnStatus_t conv_geometry(const char *call, cgeo *g, cudnnTensorDescriptor_t x,
                                   cudnnFilterDescriptor_t w, cudnnConvolutionDescriptor_t c,
                                   cudnnTensorDescriptor_t y)
{
    if (!is_set(x, K_TENSOR) || !is_set(y, K_TENSOR) || !is_set(w, K_FILTER) ||
        !is_set(c, K_CONV)) {
        violation("%s: a descriptor is unknown, destroyed or never set", call);
        return CUDNN_STATUS_BAD_PARAM;
    }
    g->x = tdesc_of_tensor(x);
    g->y = tdesc_of_tensor(y);
    g->w = (tdesc){w->dt, w->fmt, w->k, w->c, w->h, w->w};
    g->cv = c;
    if (g->x.dt != g->y.dt || g->x.dt != g->w.dt || g->x.dt != c->ct ||
        (g->x.dt != CUDNN_DATA_FLOAT && g->x.dt != CUDNN_DATA_DOUBLE)) {
        violation("%s: data types x %d, w %d, y %d, compute %d", call, (int)g->x.dt,
                  (int)g->w.dt, (int)g->y.dt, (int)c->ct);
        return CUDNN_STATUS_NOT_SUPPORTED;
    }
    int oh = 1 + (g->x.h + 2 * c->pad[0] - ((g->w.h - 1) * c->dil[0] + 1)) / c->stride[0];
    int ow = 1 + (g->x.w + 2 * c->pad[1] - ((g->w.w - 1) * c->dil[1] + 1)) / c->stride[1];
    if (g->w.c != g->x.c || g->y.n != g->x.n || g->y.c != g->w.n || g->y.h != oh ||
        g->y.w != ow || oh < 1 || ow < 1) {
        violation("%s: shapes do not fit: x %dx%dx%dx%d, w %dx%dx%dx%d, y %dx%dx%dx%d, pad %d %d, "
                  "stride %d %d (y should be %dx%dx%dx%d)", call, g->x.n, g->x.c, g->x.h, g->x.w,
                  g->w.n, g->w.c, g->w.h, g->w.w, g->y.n, g->y.c, g->y.h, g->y.w, c->pad[0],
                  c->pad[1], c->stride[0], c->stride[1], g->x.n, g->w.n, oh, ow);
        return CUDNN_STATUS_BAD_PARAM;
    }
    return CUDNN_STATUS_SUCCESS;
}

/* The workspace the acceptable algorithm needs: an im2col of one image in doubles. */
static size_t ws_bytes(const cgeo *g)
{
    return 1024 + 8 * (size_t)g->w.c * (size_t)g->w.h * (size_t)g->w.w * (size_t)g->y.h *
                      (size_t)g->y.w;
}

/* ---------------------------------------------------------------- heuristics */

typedef struct entry {
    int algo;
    cudnnStatus_t status;
    size_t memory;
    cudnnDeterminism_t det;
    cudnnMathType_t math;
    bool good;
} entry;

#define HUGE_WS ((size_t)1 << 30) /* over mltrain's 512 MiB workspace limit */

/* The ranked list for a convolution kind; the acceptable entry is last but one (fwd) or last. */
static int ranking(int kind, const cgeo *g, entry *out)
{
    size_t ws = ws_bytes(g);
    cudnnMathType_t m = g->cv->math;
    const cudnnStatus_t ok = CUDNN_STATUS_SUCCESS, ns = CUDNN_STATUS_NOT_SUPPORTED;
    const cudnnDeterminism_t det = CUDNN_DETERMINISTIC, nondet = CUDNN_NON_DETERMINISTIC;
    int n = 0;
    if (kind == 0) {
        out[n++] = (entry){CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED, ok, 4096, det, m, false};
        out[n++] = (entry){CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, ok, 0, nondet, m, false};
        out[n++] = (entry){CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, ok, ws, det,
                           CUDNN_TENSOR_OP_MATH, false};
        out[n++] = (entry){CUDNN_CONVOLUTION_FWD_ALGO_DIRECT, ns, 0, det, m, false};
        out[n++] = (entry){CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, ok, HUGE_WS, det, m,
                           false};
        out[n++] = (entry){CUDNN_CONVOLUTION_FWD_ALGO_GEMM, ok, ws, det, m, true};
        out[n++] = (entry){CUDNN_CONVOLUTION_FWD_ALGO_FFT, ok, 8192, det, m, false};
    } else if (kind == 1) {
        out[n++] = (entry){CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD, ok, 4096, det, m, false};
        out[n++] = (entry){CUDNN_CONVOLUTION_BWD_DATA_ALGO_0, ok, 0, nondet, m, false};
        out[n++] = (entry){CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT_TILING, ok, 8192, det, m, false};
        out[n++] = (entry){CUDNN_CONVOLUTION_BWD_DATA_ALGO_1, ok, 0, det,
                           CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION, false};
        out[n++] = (entry){CUDNN_CONVOLUTION_BWD_DATA_ALGO_1, ok, ws, det, m, true};
    } else {
        out[n++] = (entry){CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT, ok, 8192, det, m, false};
        out[n++] = (entry){CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0, ok, 0, nondet, m, false};
        out[n++] = (entry){CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3, ns, 0, det, m, false};
        out[n++] = (entry){CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1, ok, 0, det, CUDNN_TENSOR_OP_MATH,
                           false};
        out[n++] = (entry){CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1, ok, ws, det, m, true};
    }
    pthread_mutex_lock(&g_lock);
    bool refuse = g_refuse_batch >= 0 && g->x.n == g_refuse_batch;
    pthread_mutex_unlock(&g_lock);
    if (refuse) { /* drop the acceptable entry */
        int k = 0;
        for (int i = 0; i < n; i++)
            if (!out[i].good) out[k++] = out[i];
        n = k;
    }
    return n;
}

/* Fills perf (any of the three perf struct types: same leading fields) from the ranking. */
#define FILL_PERF(perf, req, ret, ents, n)                                                       \
    do {                                                                                         \
        int m_ = (n) < (req) ? (n) : (req);                                                      \
        for (int i_ = 0; i_ < m_; i_++) {                                                        \
            memset(&(perf)[i_], 0, sizeof (perf)[i_]);                                           \
            (perf)[i_].algo = (__typeof__((perf)[i_].algo))(ents)[i_].algo;                     \
            (perf)[i_].status = (ents)[i_].status;                                               \
            (perf)[i_].time = (ents)[i_].status == CUDNN_STATUS_SUCCESS ? 0.01f * (float)(i_ + 1) \
                                                                        : -1.0f;                 \
            (perf)[i_].memory = (ents)[i_].memory;                                               \
            (perf)[i_].determinism = (ents)[i_].det;                                             \
            (perf)[i_].mathType = (ents)[i_].math;                                               \
        }                                                                                        \
        *(ret) = m_;                                                                             \
    } while (0)

static cudnnStatus_t query_begin(const char *call, cudnnHandle_t h, int req, int *ret,
                                 const void *perf)
{
    if (!obj_live(h, K_HANDLE)) {
        violation("%s on an unknown handle %p", call, (void *)h);
        return CUDNN_STATUS_BAD_PARAM;
    }
    if (req < 1 || !ret || !perf) return CUDNN_STATUS_BAD_PARAM;
    return CUDNN_STATUS_SUCCESS;
}

static void count_query(int kind)
{
    pthread_mutex_lock(&g_lock);
    g_st.queries[kind]++;
    pthread_mutex_unlock(&g_lock);
}

cudnnStatus_t CUDNNWINAPI cudnnGetConvolutionForwardAlgorithm_v7(
    cudnnHandle_t handle, const cudnnTensorDescriptor_t srcDesc,
    const cudnnFilterDescriptor_t filterDesc, const cudnnConvolutionDescriptor_t convDesc,
    const cudnnTensorDescriptor_t destDesc, const int requestedAlgoCount, int *returnedAlgoCount,
    cudnnConvolutionFwdAlgoPerf_t *perfResults)
{
    static const char call[] = "cudnnGetConvolutionForwardAlgorithm_v7";
    cudnnStatus_t s = query_begin(call, handle, requestedAlgoCount, returnedAlgoCount, perfResults);
    cgeo g;
    if (s == CUDNN_STATUS_SUCCESS)
        s = conv_geometry(call, &g, srcDesc, filterDesc, convDesc, destDesc);
    if (s != CUDNN_STATUS_SUCCESS) return s;
    entry ents[8];
    int n = ranking(0, &g, ents);
    FILL_PERF(perfResults, requestedAlgoCount, returnedAlgoCount, ents, n);
    count_query(0);
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t CUDNNWINAPI cudnnGetConvolutionBackwardDataAlgorithm_v7(
    cudnnHandle_t handle, const cudnnFilterDescriptor_t filterDesc,
    const cudnnTensorDescriptor_t diffDesc, const cudnnConvolutionDescriptor_t convDesc,
    const cudnnTensorDescriptor_t gradDesc, const int requestedAlgoCount, int *returnedAlgoCount,
    cudnnConvolutionBwdDataAlgoPerf_t *perfResults)
{
    static const char call[] = "cudnnGetConvolutionBackwardDataAlgorithm_v7";
    cudnnStatus_t s = query_begin(call, handle, requestedAlgoCount, returnedAlgoCount, perfResults);
    cgeo g;
    if (s == CUDNN_STATUS_SUCCESS)
        s = conv_geometry(call, &g, gradDesc, filterDesc, convDesc, diffDesc);
    if (s != CUDNN_STATUS_SUCCESS) return s;
    entry ents[8];
    int n = ranking(1, &g, ents);
    FILL_PERF(perfResults, requestedAlgoCount, returnedAlgoCount, ents, n);
    count_query(1);
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t CUDNNWINAPI cudnnGetConvolutionBackwardFilterAlgorithm_v7(
    cudnnHandle_t handle, const cudnnTensorDescriptor_t srcDesc,
    const cudnnTensorDescriptor_t diffDesc, const cudnnConvolutionDescriptor_t convDesc,
    const cudnnFilterDescriptor_t gradDesc, const int requestedAlgoCount, int *returnedAlgoCount,
    cudnnConvolutionBwdFilterAlgoPerf_t *perfResults)
{
    static const char call[] = "cudnnGetConvolutionBackwardFilterAlgorithm_v7";
    cudnnStatus_t s = query_begin(call, handle, requestedAlgoCount, returnedAlgoCount, perfResults);
    cgeo g;
    if (s == CUDNN_STATUS_SUCCESS)
        s = conv_geometry(call, &g, srcDesc, gradDesc, convDesc, diffDesc);
    if (s != CUDNN_STATUS_SUCCESS) return s;
    entry ents[8];
    int n = ranking(2, &g, ents);
    FILL_PERF(perfResults, requestedAlgoCount, returnedAlgoCount, ents, n);
    count_query(2);
    return CUDNN_STATUS_SUCCESS;
}

/* ---------------------------------------------------------------- execution checks */

static size_t elems(const tdesc *t)
{
    return (size_t)t->n * (size_t)t->c * (size_t)t->h * (size_t)t->w;
}

static size_t esize(cudnnDataType_t dt)
{
    return dt == CUDNN_DATA_DOUBLE ? 8 : 4;
}

static bool data_ok(const char *call, const char *name, const void *p, const tdesc *t)
{
    size_t n = elems(t) * esize(t->dt);
    if (!p || (linked() && !g_cu.range_ok(p, n))) {
        violation("%s: %s at %p (%zu bytes) is not inside one live device allocation", call, name,
                  p, n);
        return false;
    }
    return true;
}

static bool scale_ok(const char *call, cudnnDataType_t dt, const void *alpha, const void *beta)
{
    if (!alpha || !beta) {
        violation("%s: alpha or beta is NULL", call);
        return false;
    }
    double a = dt == CUDNN_DATA_DOUBLE ? *(const double *)alpha : *(const float *)alpha;
    double b = dt == CUDNN_DATA_DOUBLE ? *(const double *)beta : *(const float *)beta;
    if (a != 1.0 || b != 0.0) {
        violation("%s: alpha %g and beta %g (mltrain passes 1 and 0)", call, a, b);
        return false;
    }
    return true;
}

/* The handle is live, its stream too, a context is current; runs what the stream queued. */
static bool handle_ready(const char *call, cudnnHandle_t h)
{
    if (!obj_live(h, K_HANDLE)) {
        violation("%s on an unknown handle %p", call, (void *)h);
        return false;
    }
    if (linked()) {
        if (!g_cu.ctx_current()) {
            violation("%s with no current CUDA context", call);
            return false;
        }
        if (!g_cu.stream_ok(h->stream)) {
            violation("%s: the handle's stream %p was destroyed", call, (void *)h->stream);
            return false;
        }
        g_cu.drain(h->stream);
    }
    return true;
}

/* true: this execution fails on purpose. */
static bool fail_now(void)
{
    pthread_mutex_lock(&g_lock);
    bool fail = g_fail_execs > 0;
    if (fail) {
        g_fail_execs--;
        g_st.failed_execs++;
    }
    pthread_mutex_unlock(&g_lock);
    return fail;
}

static cudnnStatus_t conv_exec_checks(const char *call, int kind, cudnnHandle_t h, const cgeo *g,
                                      int algo, void *ws, size_t ws_size, const void *alpha,
                                      const void *beta)
{
    if (!handle_ready(call, h) || !scale_ok(call, g->x.dt, alpha, beta))
        return CUDNN_STATUS_BAD_PARAM;
    entry ents[8];
    int n = ranking(kind, g, ents);
    const entry *good = NULL;
    for (int i = 0; i < n; i++)
        if (ents[i].good) good = &ents[i];
    if (!good || algo != good->algo) {
        violation("%s: algorithm %d is not the acceptable one offered for this shape (%d)", call,
                  algo, good ? good->algo : -1);
        return CUDNN_STATUS_BAD_PARAM;
    }
    if (ws_size < good->memory || (good->memory > 0 && !ws)) {
        violation("%s: workspace %p of %zu bytes, %zu promised", call, ws, ws_size,
                  good->memory);
        return CUDNN_STATUS_BAD_PARAM;
    }
    if (ws_size > 0 && linked() && !g_cu.range_ok(ws, ws_size)) {
        violation("%s: workspace %p of %zu bytes is not inside one live device allocation", call,
                  ws, ws_size);
        return CUDNN_STATUS_BAD_PARAM;
    }
    if (ws_size > 0) memset(ws, 0x5A, ws_size); /* the algorithm uses all of it */
    return CUDNN_STATUS_SUCCESS;
}

/* ---------------------------------------------------------------- host arithmetic */

static size_t tidx(const tdesc *t, int n, int c, int h, int w)
{
    if (t->fmt == CUDNN_TENSOR_NHWC)
        return (((size_t)n * (size_t)t->h + (size_t)h) * (size_t)t->w + (size_t)w) * (size_t)t->c +
               (size_t)c;
    return (((size_t)n * (size_t)t->c + (size_t)c) * (size_t)t->h + (size_t)h) * (size_t)t->w +
           (size_t)w;
}

static double round_tf32(double v)
{
    float f = (float)v;
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & ~0x1fffu;
    memcpy(&f, &u, 4);
    return f;
}

/* The operand as doubles (TF32-rounded when tf32). */
static double *load(const void *p, const tdesc *t, bool tf32)
{
    size_t n = elems(t);
    double *d = malloc(n * sizeof *d + 8);
    if (!d) return NULL;
    for (size_t i = 0; i < n; i++) {
        double v = t->dt == CUDNN_DATA_DOUBLE ? ((const double *)p)[i] : ((const float *)p)[i];
        d[i] = tf32 ? round_tf32(v) : v;
    }
    return d;
}

static void store(void *p, const tdesc *t, const double *d)
{
    size_t n = elems(t);
    for (size_t i = 0; i < n; i++) {
        if (t->dt == CUDNN_DATA_DOUBLE)
            ((double *)p)[i] = d[i];
        else
            ((float *)p)[i] = (float)d[i];
    }
}

/* Visits every (x element, w element, y element) triple of the convolution. */
#define CONV_LOOP(g, BODY)                                                                       \
    do {                                                                                         \
        const struct cudnnConvolutionStruct *cv_ = (g)->cv;                                      \
        bool flip_ = cv_->mode == CUDNN_CONVOLUTION;                                             \
        for (int n_ = 0; n_ < (g)->y.n; n_++)                                                    \
            for (int k_ = 0; k_ < (g)->y.c; k_++)                                                \
                for (int oh_ = 0; oh_ < (g)->y.h; oh_++)                                         \
                    for (int ow_ = 0; ow_ < (g)->y.w; ow_++)                                     \
                        for (int c_ = 0; c_ < (g)->x.c; c_++)                                    \
                            for (int r_ = 0; r_ < (g)->w.h; r_++)                                \
                                for (int s_ = 0; s_ < (g)->w.w; s_++) {                          \
                                    int ih_ = oh_ * cv_->stride[0] - cv_->pad[0] +               \
                                              r_ * cv_->dil[0];                                  \
                                    int iw_ = ow_ * cv_->stride[1] - cv_->pad[1] +               \
                                              s_ * cv_->dil[1];                                  \
                                    if (ih_ < 0 || ih_ >= (g)->x.h || iw_ < 0 ||                 \
                                        iw_ >= (g)->x.w)                                         \
                                        continue;                                                \
                                    int rr_ = flip_ ? (g)->w.h - 1 - r_ : r_;                    \
                                    int ss_ = flip_ ? (g)->w.w - 1 - s_ : s_;                    \
                                    size_t xi = tidx(&(g)->x, n_, c_, ih_, iw_);                 \
                                    size_t wi = tidx(&(g)->w, k_, c_, rr_, ss_);                 \
                                    size_t yi = tidx(&(g)->y, n_, k_, oh_, ow_);                 \
                                    BODY;                                                        \
                                }                                                                \
    } while (0)

/* kind 0: y = conv(x, w); 1: x = conv^T(y, w); 2: w = grad(x, y). */
static cudnnStatus_t conv_compute(int kind, const cgeo *g, const void *xp, const void *wp,
                                  const void *yp, void *outp)
{
    bool tf32 = g->x.dt == CUDNN_DATA_FLOAT && g->cv->math != CUDNN_FMA_MATH;
    const tdesc *ot = kind == 0 ? &g->y : kind == 1 ? &g->x : &g->w;
    double *a = load(kind == 0 || kind == 2 ? xp : yp, kind == 0 || kind == 2 ? &g->x : &g->y,
                     tf32);
    double *b = load(kind == 2 ? yp : wp, kind == 2 ? &g->y : &g->w, tf32);
    double *acc = calloc(elems(ot) + 1, sizeof *acc);
    if (!a || !b || !acc) {
        free(a), free(b), free(acc);
        return CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED;
    }
    if (kind == 0)
        CONV_LOOP(g, acc[yi] += a[xi] * b[wi]);
    else if (kind == 1)
        CONV_LOOP(g, acc[xi] += a[yi] * b[wi]);
    else
        CONV_LOOP(g, acc[wi] += a[xi] * b[yi]);
    store(outp, ot, acc);
    free(a), free(b), free(acc);
    return CUDNN_STATUS_SUCCESS;
}

static void count_exec(int64_t *counter)
{
    pthread_mutex_lock(&g_lock);
    (*counter)++;
    pthread_mutex_unlock(&g_lock);
}

/* ---------------------------------------------------------------- convolutions */

cudnnStatus_t CUDNNWINAPI cudnnConvolutionForward(
    cudnnHandle_t handle, const void *alpha, const cudnnTensorDescriptor_t xDesc, const void *x,
    const cudnnFilterDescriptor_t wDesc, const void *w, const cudnnConvolutionDescriptor_t convDesc,
    cudnnConvolutionFwdAlgo_t algo, void *workSpace, size_t workSpaceSizeInBytes,
    const void *beta, const cudnnTensorDescriptor_t yDesc, void *y)
{
    static const char call[] = "cudnnConvolutionForward";
    cgeo g;
    cudnnStatus_t s = conv_geometry(call, &g, xDesc, wDesc, convDesc, yDesc);
    if (s == CUDNN_STATUS_SUCCESS)
        s = conv_exec_checks(call, 0, handle, &g, (int)algo, workSpace, workSpaceSizeInBytes,
                             alpha, beta);
    if (s == CUDNN_STATUS_SUCCESS && !(data_ok(call, "x", x, &g.x) && data_ok(call, "w", w, &g.w) &&
                                       data_ok(call, "y", y, &g.y)))
        s = CUDNN_STATUS_BAD_PARAM;
    if (s != CUDNN_STATUS_SUCCESS) return s;
    if (fail_now()) return CUDNN_STATUS_EXECUTION_FAILED;
    s = conv_compute(0, &g, x, w, NULL, y);
    if (s == CUDNN_STATUS_SUCCESS) count_exec(&g_st.execs[0]);
    return s;
}

cudnnStatus_t CUDNNWINAPI cudnnConvolutionBackwardData(
    cudnnHandle_t handle, const void *alpha, const cudnnFilterDescriptor_t wDesc, const void *w,
    const cudnnTensorDescriptor_t dyDesc, const void *dy,
    const cudnnConvolutionDescriptor_t convDesc, cudnnConvolutionBwdDataAlgo_t algo,
    void *workSpace, size_t workSpaceSizeInBytes, const void *beta,
    const cudnnTensorDescriptor_t dxDesc, void *dx)
{
    static const char call[] = "cudnnConvolutionBackwardData";
    cgeo g;
    cudnnStatus_t s = conv_geometry(call, &g, dxDesc, wDesc, convDesc, dyDesc);
    if (s == CUDNN_STATUS_SUCCESS)
        s = conv_exec_checks(call, 1, handle, &g, (int)algo, workSpace, workSpaceSizeInBytes,
                             alpha, beta);
    if (s == CUDNN_STATUS_SUCCESS &&
        !(data_ok(call, "dx", dx, &g.x) && data_ok(call, "w", w, &g.w) &&
          data_ok(call, "dy", dy, &g.y)))
        s = CUDNN_STATUS_BAD_PARAM;
    if (s != CUDNN_STATUS_SUCCESS) return s;
    if (fail_now()) return CUDNN_STATUS_EXECUTION_FAILED;
    s = conv_compute(1, &g, NULL, w, dy, dx);
    if (s == CUDNN_STATUS_SUCCESS) count_exec(&g_st.execs[1]);
    return s;
}

cudnnStatus_t CUDNNWINAPI cudnnConvolutionBackwardFilter(
    cudnnHandle_t handle, const void *alpha, const cudnnTensorDescriptor_t xDesc, const void *x,
    const cudnnTensorDescriptor_t dyDesc, const void *dy,
    const cudnnConvolutionDescriptor_t convDesc, cudnnConvolutionBwdFilterAlgo_t algo,
    void *workSpace, size_t workSpaceSizeInBytes, const void *beta,
    const cudnnFilterDescriptor_t dwDesc, void *dw)
{
    static const char call[] = "cudnnConvolutionBackwardFilter";
    cgeo g;
    cudnnStatus_t s = conv_geometry(call, &g, xDesc, dwDesc, convDesc, dyDesc);
    if (s == CUDNN_STATUS_SUCCESS)
        s = conv_exec_checks(call, 2, handle, &g, (int)algo, workSpace, workSpaceSizeInBytes,
                             alpha, beta);
    if (s == CUDNN_STATUS_SUCCESS &&
        !(data_ok(call, "x", x, &g.x) && data_ok(call, "dw", dw, &g.w) &&
          data_ok(call, "dy", dy, &g.y)))
        s = CUDNN_STATUS_BAD_PARAM;
    if (s != CUDNN_STATUS_SUCCESS) return s;
    if (fail_now()) return CUDNN_STATUS_EXECUTION_FAILED;
    s = conv_compute(2, &g, x, NULL, dy, dw);
    if (s == CUDNN_STATUS_SUCCESS) count_exec(&g_st.execs[2]);
    return s;
}

/* ---------------------------------------------------------------- pooling */

/* x and y fit the pooling descriptor (cuDNN's forward output dims). */
static cudnnStatus_t pool_geometry(const char *call, cudnnPoolingDescriptor_t p,
                                   cudnnTensorDescriptor_t x, cudnnTensorDescriptor_t y,
                                   tdesc *xt, tdesc *yt)
{
    if (!is_set(p, K_POOL) || !is_set(x, K_TENSOR) || !is_set(y, K_TENSOR)) {
        violation("%s: a descriptor is unknown, destroyed or never set", call);
        return CUDNN_STATUS_BAD_PARAM;
    }
    *xt = tdesc_of_tensor(x);
    *yt = tdesc_of_tensor(y);
    if (xt->dt != yt->dt || (xt->dt != CUDNN_DATA_FLOAT && xt->dt != CUDNN_DATA_DOUBLE)) {
        violation("%s: data types x %d, y %d", call, (int)xt->dt, (int)yt->dt);
        return CUDNN_STATUS_NOT_SUPPORTED;
    }
    int oh = 1 + (xt->h + 2 * p->pad[0] - p->win[0]) / p->stride[0];
    int ow = 1 + (xt->w + 2 * p->pad[1] - p->win[1]) / p->stride[1];
    if (yt->n != xt->n || yt->c != xt->c || yt->h != oh || yt->w != ow) {
        violation("%s: y %dx%dx%dx%d does not pool x %dx%dx%dx%d with window %dx%d, pad %d %d, "
                  "stride %d %d (y should be ...x%dx%d)", call, yt->n, yt->c, yt->h, yt->w, xt->n,
                  xt->c, xt->h, xt->w, p->win[0], p->win[1], p->pad[0], p->pad[1], p->stride[0],
                  p->stride[1], oh, ow);
        return CUDNN_STATUS_BAD_PARAM;
    }
    return CUDNN_STATUS_SUCCESS;
}

/* The window of output (oh, ow) clipped to the input: rows [h0, h1), columns [w0, w1). */
static void pool_window(const struct cudnnPoolingStruct *p, const tdesc *x, int oh, int ow,
                        int *h0, int *h1, int *w0, int *w1)
{
    int a = oh * p->stride[0] - p->pad[0], b = ow * p->stride[1] - p->pad[1];
    *h0 = a < 0 ? 0 : a;
    *h1 = a + p->win[0] > x->h ? x->h : a + p->win[0];
    *w0 = b < 0 ? 0 : b;
    *w1 = b + p->win[1] > x->w ? x->w : b + p->win[1];
}

static bool is_max(cudnnPoolingMode_t m)
{
    return m == CUDNN_POOLING_MAX || m == CUDNN_POOLING_MAX_DETERMINISTIC;
}

/* Max of the window (the first maximal position in *at); NaN rules as the descriptor says. */
static double window_max(const struct cudnnPoolingStruct *p, const double *xv, const tdesc *x,
                         int n, int c, int h0, int h1, int w0, int w1, size_t *at)
{
    double m = -INFINITY;
    *at = tidx(x, n, c, h0, w0);
    bool first = true;
    for (int i = h0; i < h1; i++)
        for (int j = w0; j < w1; j++) {
            size_t k = tidx(x, n, c, i, j);
            double v = xv[k];
            if (isnan(v)) {
                if (p->nan == CUDNN_PROPAGATE_NAN) {
                    *at = k;
                    return v;
                }
                continue;
            }
            if (first || v > m) {
                m = v;
                *at = k;
                first = false;
            }
        }
    return m;
}

static double window_count(const struct cudnnPoolingStruct *p, int h0, int h1, int w0, int w1)
{
    if (p->mode == CUDNN_POOLING_AVERAGE_COUNT_INCLUDE_PADDING)
        return (double)p->win[0] * (double)p->win[1];
    return (double)(h1 - h0) * (double)(w1 - w0);
}

cudnnStatus_t CUDNNWINAPI cudnnPoolingForward(cudnnHandle_t handle,
                                              const cudnnPoolingDescriptor_t poolingDesc,
                                              const void *alpha,
                                              const cudnnTensorDescriptor_t xDesc, const void *x,
                                              const void *beta,
                                              const cudnnTensorDescriptor_t yDesc, void *y)
{
    static const char call[] = "cudnnPoolingForward";
    tdesc xt, yt;
    cudnnStatus_t s = pool_geometry(call, poolingDesc, xDesc, yDesc, &xt, &yt);
    if (s == CUDNN_STATUS_SUCCESS &&
        (!handle_ready(call, handle) || !scale_ok(call, xt.dt, alpha, beta) ||
         !data_ok(call, "x", x, &xt) || !data_ok(call, "y", y, &yt)))
        s = CUDNN_STATUS_BAD_PARAM;
    if (s != CUDNN_STATUS_SUCCESS) return s;
    if (fail_now()) return CUDNN_STATUS_EXECUTION_FAILED;
    double *xv = load(x, &xt, false), *yv = calloc(elems(&yt) + 1, sizeof *yv);
    if (!xv || !yv) {
        free(xv), free(yv);
        return CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED;
    }
    const struct cudnnPoolingStruct *p = poolingDesc;
    for (int n = 0; n < yt.n; n++)
        for (int c = 0; c < yt.c; c++)
            for (int oh = 0; oh < yt.h; oh++)
                for (int ow = 0; ow < yt.w; ow++) {
                    int h0, h1, w0, w1;
                    pool_window(p, &xt, oh, ow, &h0, &h1, &w0, &w1);
                    double v = 0;
                    if (is_max(p->mode)) {
                        size_t at;
                        v = window_max(p, xv, &xt, n, c, h0, h1, w0, w1, &at);
                    } else {
                        for (int i = h0; i < h1; i++)
                            for (int j = w0; j < w1; j++) v += xv[tidx(&xt, n, c, i, j)];
                        v /= window_count(p, h0, h1, w0, w1);
                    }
                    yv[tidx(&yt, n, c, oh, ow)] = v;
                }
    store(y, &yt, yv);
    free(xv), free(yv);
    count_exec(&g_st.pool_execs[0]);
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t CUDNNWINAPI cudnnPoolingBackward(cudnnHandle_t handle,
                                               const cudnnPoolingDescriptor_t poolingDesc,
                                               const void *alpha,
                                               const cudnnTensorDescriptor_t yDesc, const void *y,
                                               const cudnnTensorDescriptor_t dyDesc,
                                               const void *dy,
                                               const cudnnTensorDescriptor_t xDesc, const void *x,
                                               const void *beta,
                                               const cudnnTensorDescriptor_t dxDesc, void *dx)
{
    static const char call[] = "cudnnPoolingBackward";
    tdesc xt, yt, dyt, dxt;
    cudnnStatus_t s = pool_geometry(call, poolingDesc, xDesc, yDesc, &xt, &yt);
    if (s == CUDNN_STATUS_SUCCESS) s = pool_geometry(call, poolingDesc, dxDesc, dyDesc, &dxt, &dyt);
    if (s == CUDNN_STATUS_SUCCESS &&
        (memcmp(&xt, &dxt, sizeof xt) || memcmp(&yt, &dyt, sizeof yt))) {
        violation("%s: x and dx (or y and dy) descriptors differ", call);
        s = CUDNN_STATUS_BAD_PARAM;
    }
    if (s == CUDNN_STATUS_SUCCESS &&
        (!handle_ready(call, handle) || !scale_ok(call, xt.dt, alpha, beta) ||
         !data_ok(call, "y", y, &yt) || !data_ok(call, "dy", dy, &dyt) ||
         !data_ok(call, "x", x, &xt) || !data_ok(call, "dx", dx, &dxt)))
        s = CUDNN_STATUS_BAD_PARAM;
    if (s != CUDNN_STATUS_SUCCESS) return s;
    if (fail_now()) return CUDNN_STATUS_EXECUTION_FAILED;
    double *xv = load(x, &xt, false), *gv = load(dy, &dyt, false);
    double *dv = calloc(elems(&dxt) + 1, sizeof *dv);
    if (!xv || !gv || !dv) {
        free(xv), free(gv), free(dv);
        return CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED;
    }
    const struct cudnnPoolingStruct *p = poolingDesc;
    for (int n = 0; n < yt.n; n++)
        for (int c = 0; c < yt.c; c++)
            for (int oh = 0; oh < yt.h; oh++)
                for (int ow = 0; ow < yt.w; ow++) {
                    int h0, h1, w0, w1;
                    pool_window(p, &xt, oh, ow, &h0, &h1, &w0, &w1);
                    double g = gv[tidx(&dyt, n, c, oh, ow)];
                    if (is_max(p->mode)) {
                        size_t at;
                        window_max(p, xv, &xt, n, c, h0, h1, w0, w1, &at);
                        dv[at] += g;
                    } else {
                        double share = g / window_count(p, h0, h1, w0, w1);
                        for (int i = h0; i < h1; i++)
                            for (int j = w0; j < w1; j++) dv[tidx(&dxt, n, c, i, j)] += share;
                    }
                }
    store(dx, &dxt, dv);
    free(xv), free(gv), free(dv);
    count_exec(&g_st.pool_execs[1]);
    return CUDNN_STATUS_SUCCESS;
}
