/* A stand-in for cuDNN 9 (libcudnn.so.9) for tests on machines without a GPU: it exports the
 * entry points src/gpuarray/cuda_dnn.c resolves, with cudnn.h's prototypes, and computes
 * convolutions and pooling naively on the host from what the descriptors recorded. Used with
 * the stand-in CUDA driver (cuda_standin.c): MLTRAIN_LIBCUDNN=<this library>.
 *
 * Descriptors and handles are heap structs that record their settings (dims, data type,
 * layout, padding, stride, dilation, mode, math type, NaN propagation). The heuristic queries
 * (cudnnGet*Algorithm_v7) return a ranked list whose first entries are ones mltrain must skip
 * (Winograd / FFT, non-deterministic, tensor-op math with conversion to float16, a failed
 * status, a workspace over mltrain's limit), each alone failing one of its conditions, then a
 * GEMM-like deterministic entry with CUDNN_TENSOR_OP_MATH (acceptable only when TF32 is
 * allowed: a float32 convolution whose descriptor asks for tensor-op math), then the
 * acceptable GEMM-like FMA entry mltrain takes otherwise, then another acceptable one with a
 * larger workspace; they are counted. The timed searches (cudnnFind*AlgorithmEx, left out when
 * built with MT_STANDIN_NO_FIND) check what an execution checks, and that the workspace covers
 * the largest acceptable entry of the heuristic's ranking; they compute the output and return
 * a list sorted by time whose first entries are ones mltrain must skip and whose fastest
 * acceptable FMA entry is that other algorithm (entries needing more workspace than given
 * fail, as in cuDNN); they are counted and their choice is recorded. The executions check the
 * contract mltrain relies on: alpha = 1 and beta = 0, the algorithm is the heuristic's choice
 * for that shape and math type or the recorded choice of a search of that convolution, the
 * workspace pointer and size cover what that entry needs (the whole workspace is written),
 * every data pointer lies inside one live device allocation of the CUDA stand-in, the
 * handle's stream is live and a context is current; work already queued on the stream runs
 * first (stream order). Each records its algorithm, math type and workspace. A float
 * convolution whose descriptor does not ask for CUDNN_FMA_MATH rounds its inputs to TF32, as
 * tensor cores would, so a lost math setting shows up in the results. Breaches are printed on
 * stderr and counted.
 *
 * The CUDA stand-in is reached with dlopen($MLTRAIN_LIBCUDA, RTLD_NOLOAD): the instance the
 * backend loaded. Knobs (standin.h): no acceptable algorithm for one batch size, failing the
 * next N executions or searches, failing cudnnCreate; counters of live handles and
 * descriptors. Test-only code. */
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
static mt_standin_dnn_stats g_st = {.last_algo = {-1, -1, -1}};
static const void *g_searched[3][3]; /* x, w, y of the last search of each kind */
_Static_assert(MT_STANDIN_DNN_TENSOR_OP_MATH == CUDNN_TENSOR_OP_MATH &&
                   MT_STANDIN_DNN_FMA_MATH == CUDNN_FMA_MATH,
               "standin.h's math type values");
static int g_refuse_batch = -1;
static int g_offer_tf32 = 1;
static int g_fail_execs, g_fail_searches;

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

void mt_standin_dnn_offer_tf32(int on)
{
    pthread_mutex_lock(&g_lock);
    g_offer_tf32 = on;
    pthread_mutex_unlock(&g_lock);
}

void mt_standin_dnn_fail_execs(int n)
{
    pthread_mutex_lock(&g_lock);
    g_fail_execs = n;
    pthread_mutex_unlock(&g_lock);
}

void mt_standin_dnn_fail_searches(int n)
{
    pthread_mutex_lock(&g_lock);
    g_fail_searches = n;
    pthread_mutex_unlock(&g_lock);
}

static const int k_good[3], k_tf32[3], k_found[3];

int mt_standin_dnn_good_algo(int kind)
{
    return kind >= 0 && kind < 3 ? k_good[kind] : -1;
}

int mt_standin_dnn_tf32_algo(int kind)
{
    return kind >= 0 && kind < 3 ? k_tf32[kind] : -1;
}

int mt_standin_dnn_found_algo(int kind)
{
    return kind >= 0 && kind < 3 ? k_found[kind] : -1;
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

/* ---------------------------------------------------------------- heuristics and searches */

/* What mltrain must do with an entry of a ranked list: skip it; take it (FMA math); take it
 * only when TF32 is allowed (a float32 convolution whose descriptor asks CUDNN_TENSOR_OP_MATH). */
enum { R_SKIP = 0, R_FMA, R_TC };

typedef struct entry {
    int algo;
    cudnnStatus_t status;
    size_t memory;
    cudnnDeterminism_t det;
    cudnnMathType_t math;
    int role;
} entry;

#define NENT 12
#define HUGE_WS ((size_t)1 << 30) /* over mltrain's 512 MiB workspace limit */

/* The acceptable algorithms of each kind (forward, backward data, backward filter): the
 * heuristic's first FMA one, its TF32 one (ranked before), and the search's fastest FMA one. */
static const int k_good[3] = {CUDNN_CONVOLUTION_FWD_ALGO_GEMM, CUDNN_CONVOLUTION_BWD_DATA_ALGO_1,
                              CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1};
static const int k_tf32[3] = {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM,
                              CUDNN_CONVOLUTION_BWD_DATA_ALGO_0,
                              CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3};
static const int k_found[3] = {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM,
                               CUDNN_CONVOLUTION_BWD_DATA_ALGO_0,
                               CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0};

/* Workspaces: the TF32 entry needs less than the good one, the search's choice more (so a
 * search given only the heuristic's choice's workspace cannot run it). */
static size_t ws_tf32(const cgeo *g)
{
    return ws_bytes(g) / 2;
}

static size_t ws_found(const cgeo *g)
{
    return 2 * ws_bytes(g) + 4096;
}

/* Whether mltrain may take R_TC entries for this convolution. */
static bool tf32_allowed(const cgeo *g)
{
    return g->x.dt == CUDNN_DATA_FLOAT && g->cv->math == CUDNN_TENSOR_OP_MATH;
}

static bool acceptable(const entry *e, bool tf32)
{
    return e->status == CUDNN_STATUS_SUCCESS && (e->role == R_FMA || (tf32 && e->role == R_TC));
}

/* Drops the acceptable entries when the batch size is the refused one. */
static int refuse_filter(const cgeo *g, entry *out, int n)
{
    pthread_mutex_lock(&g_lock);
    bool refuse = g_refuse_batch >= 0 && g->x.n == g_refuse_batch;
    pthread_mutex_unlock(&g_lock);
    if (!refuse) return n;
    int k = 0;
    for (int i = 0; i < n; i++)
        if (out[i].role == R_SKIP) out[k++] = out[i];
    return k;
}

/* The heuristic's ranked list for a convolution kind: entries mltrain must skip (not GEMM-like,
 * non-deterministic, tensor-op math with conversion to float16, a failed status, a workspace
 * over the limit; each alone failing one condition), then the TF32 entry, the good one and the
 * search's choice (acceptable too, ranked after the good one, with the largest workspace). */
static int ranking(int kind, const cgeo *g, entry *out)
{
    size_t ws = ws_bytes(g), wt = ws_tf32(g), wf = ws_found(g);
    const cudnnStatus_t ok = CUDNN_STATUS_SUCCESS, ns = CUDNN_STATUS_NOT_SUPPORTED;
    const cudnnStatus_t tcs = g_offer_tf32 ? ok : ns; /* the TF32-only entry's status */
    const cudnnDeterminism_t det = CUDNN_DETERMINISTIC, nondet = CUDNN_NON_DETERMINISTIC;
    const cudnnMathType_t fma = CUDNN_FMA_MATH, tc = CUDNN_TENSOR_OP_MATH,
                          conv = CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
    int n = 0;
    if (kind == 0) {
        out[n++] = (entry){CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED, ok, 4096, det, fma,
                           R_SKIP};
        out[n++] = (entry){CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, ok, 0, nondet, fma, R_SKIP};
        out[n++] = (entry){k_good[0], ok, 0, det, conv, R_SKIP};
        out[n++] = (entry){CUDNN_CONVOLUTION_FWD_ALGO_DIRECT, ns, 0, det, fma, R_SKIP};
        out[n++] = (entry){CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, ok, HUGE_WS, det, fma,
                           R_SKIP};
        out[n++] = (entry){k_tf32[0], tcs, wt, det, tc, R_TC};
        out[n++] = (entry){k_good[0], ok, ws, det, fma, R_FMA};
        out[n++] = (entry){k_found[0], ok, wf, det, fma, R_FMA};
        out[n++] = (entry){CUDNN_CONVOLUTION_FWD_ALGO_FFT, ok, 8192, det, fma, R_SKIP};
    } else if (kind == 1) {
        out[n++] = (entry){CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD, ok, 4096, det, fma, R_SKIP};
        out[n++] = (entry){CUDNN_CONVOLUTION_BWD_DATA_ALGO_0, ok, 0, nondet, fma, R_SKIP};
        out[n++] = (entry){CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT_TILING, ok, 8192, det, fma, R_SKIP};
        out[n++] = (entry){k_good[1], ok, 0, det, conv, R_SKIP};
        out[n++] = (entry){CUDNN_CONVOLUTION_BWD_DATA_ALGO_1, ns, 0, det, fma, R_SKIP};
        out[n++] = (entry){CUDNN_CONVOLUTION_BWD_DATA_ALGO_0, ok, HUGE_WS, det, fma, R_SKIP};
        out[n++] = (entry){k_tf32[1], tcs, wt, det, tc, R_TC};
        out[n++] = (entry){k_good[1], ok, ws, det, fma, R_FMA};
        out[n++] = (entry){k_found[1], ok, wf, det, fma, R_FMA};
    } else {
        out[n++] = (entry){CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT, ok, 8192, det, fma, R_SKIP};
        out[n++] = (entry){CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0, ok, 0, nondet, fma, R_SKIP};
        out[n++] = (entry){CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3, ns, 0, det, fma, R_SKIP};
        out[n++] = (entry){k_good[2], ok, 0, det, conv, R_SKIP};
        out[n++] = (entry){CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1, ok, HUGE_WS, det, fma, R_SKIP};
        out[n++] = (entry){k_tf32[2], tcs, wt, det, tc, R_TC};
        out[n++] = (entry){k_good[2], ok, ws, det, fma, R_FMA};
        out[n++] = (entry){k_found[2], ok, wf, det, fma, R_FMA};
        out[n++] = (entry){CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD_NONFUSED, ok, 4096, det, fma,
                           R_SKIP};
    }
    return refuse_filter(g, out, n);
}

/* The heuristic's choice for this convolution (NULL: none acceptable). */
static const entry *heuristic_pick(const entry *ents, int n, const cgeo *g)
{
    for (int i = 0; i < n; i++)
        if (acceptable(&ents[i], tf32_allowed(g))) return &ents[i];
    return NULL;
}

/* What a search chose for one convolution (kind, descriptors): an execution may run it. */
typedef struct skey {
    int kind;
    tdesc x, w, y;
    int pad[2], stride[2], dil[2], mode, ct, math;
} skey;

#define FOUND_SLOTS 128
static struct {
    bool used;
    skey key;
    entry pick;
} g_found[FOUND_SLOTS];

static skey skey_of(int kind, const cgeo *g)
{
    skey k;
    memset(&k, 0, sizeof k);
    k.kind = kind;
    k.x = g->x, k.w = g->w, k.y = g->y;
    for (int i = 0; i < 2; i++) {
        k.pad[i] = g->cv->pad[i];
        k.stride[i] = g->cv->stride[i];
        k.dil[i] = g->cv->dil[i];
    }
    k.mode = (int)g->cv->mode, k.ct = (int)g->cv->ct, k.math = (int)g->cv->math;
    return k;
}

/* The entry the last search of this convolution chose (false: none was searched, or the search
 * found nothing acceptable). */
static bool found_get(int kind, const cgeo *g, entry *out)
{
    skey k = skey_of(kind, g);
    bool hit = false;
    pthread_mutex_lock(&g_lock);
    for (int i = 0; i < FOUND_SLOTS && !hit; i++)
        if (g_found[i].used && memcmp(&g_found[i].key, &k, sizeof k) == 0) {
            *out = g_found[i].pick;
            hit = true;
        }
    pthread_mutex_unlock(&g_lock);
    return hit;
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

/* The body of the three heuristic queries: descriptors x, w, y in conv_geometry's order, the
 * ranking of kind, counted. */
#define HEURISTIC_QUERY(kind, name, x, w, y)                                                     \
    do {                                                                                         \
        static const char call_[] = name;                                                        \
        cudnnStatus_t s_ = query_begin(call_, handle, requestedAlgoCount, returnedAlgoCount,     \
                                       perfResults);                                             \
        cgeo g_;                                                                                 \
        if (s_ == CUDNN_STATUS_SUCCESS) s_ = conv_geometry(call_, &g_, x, w, convDesc, y);       \
        if (s_ != CUDNN_STATUS_SUCCESS) return s_;                                               \
        entry ents_[NENT];                                                                       \
        int n_ = ranking(kind, &g_, ents_);                                                      \
        FILL_PERF(perfResults, requestedAlgoCount, returnedAlgoCount, ents_, n_);                \
        count_query(kind);                                                                       \
        return CUDNN_STATUS_SUCCESS;                                                             \
    } while (0)

cudnnStatus_t CUDNNWINAPI cudnnGetConvolutionForwardAlgorithm_v7(
    cudnnHandle_t handle, const cudnnTensorDescriptor_t srcDesc,
    const cudnnFilterDescriptor_t filterDesc, const cudnnConvolutionDescriptor_t convDesc,
    const cudnnTensorDescriptor_t destDesc, const int requestedAlgoCount, int *returnedAlgoCount,
    cudnnConvolutionFwdAlgoPerf_t *perfResults)
{
    HEURISTIC_QUERY(0, "cudnnGetConvolutionForwardAlgorithm_v7", srcDesc, filterDesc, destDesc);
}

cudnnStatus_t CUDNNWINAPI cudnnGetConvolutionBackwardDataAlgorithm_v7(
    cudnnHandle_t handle, const cudnnFilterDescriptor_t filterDesc,
    const cudnnTensorDescriptor_t diffDesc, const cudnnConvolutionDescriptor_t convDesc,
    const cudnnTensorDescriptor_t gradDesc, const int requestedAlgoCount, int *returnedAlgoCount,
    cudnnConvolutionBwdDataAlgoPerf_t *perfResults)
{
    HEURISTIC_QUERY(1, "cudnnGetConvolutionBackwardDataAlgorithm_v7", gradDesc, filterDesc,
                    diffDesc);
}

cudnnStatus_t CUDNNWINAPI cudnnGetConvolutionBackwardFilterAlgorithm_v7(
    cudnnHandle_t handle, const cudnnTensorDescriptor_t srcDesc,
    const cudnnTensorDescriptor_t diffDesc, const cudnnConvolutionDescriptor_t convDesc,
    const cudnnFilterDescriptor_t gradDesc, const int requestedAlgoCount, int *returnedAlgoCount,
    cudnnConvolutionBwdFilterAlgoPerf_t *perfResults)
{
    HEURISTIC_QUERY(2, "cudnnGetConvolutionBackwardFilterAlgorithm_v7", srcDesc, gradDesc,
                    diffDesc);
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
    /* the heuristic's choice, or what a search of this convolution chose */
    entry ents[NENT], found;
    int n = ranking(kind, g, ents);
    const entry *pick = heuristic_pick(ents, n, g);
    const entry *cand[2] = {pick, found_get(kind, g, &found) ? &found : NULL};
    const entry *use = NULL;
    bool known = false;
    size_t need = 0;
    for (int i = 0; i < 2 && !use; i++) {
        if (!cand[i] || cand[i]->algo != algo) continue;
        known = true;
        need = cand[i]->memory;
        if (ws_size >= need && (need == 0 || ws)) use = cand[i];
    }
    if (!known) {
        violation("%s: algorithm %d is neither the heuristic's choice for this shape (%d) nor a "
                  "search's (%d)", call, algo, pick ? pick->algo : -1,
                  cand[1] ? cand[1]->algo : -1);
        return CUDNN_STATUS_BAD_PARAM;
    }
    if (!use) {
        violation("%s: workspace %p of %zu bytes for algorithm %d, %zu promised", call, ws,
                  ws_size, algo, need);
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

static void count_pool(int backward)
{
    pthread_mutex_lock(&g_lock);
    g_st.pool_execs[backward]++;
    pthread_mutex_unlock(&g_lock);
}

/* Counts a successful convolution execution of kind k (operands x, w, y) and records what it
 * ran. */
static void count_exec(int k, int algo, const cgeo *g, size_t ws_size, const void *x,
                       const void *w, const void *y)
{
    pthread_mutex_lock(&g_lock);
    g_st.execs[k]++;
    g_st.last_algo[k] = algo;
    g_st.last_math[k] = (int64_t)g->cv->math;
    g_st.last_ws[k] = (int64_t)ws_size;
    g_st.last_exec_as_searched[k] =
        g_searched[k][0] == x && g_searched[k][1] == w && g_searched[k][2] == y;
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
    if (s == CUDNN_STATUS_SUCCESS) count_exec(0, (int)algo, &g, workSpaceSizeInBytes, x, w, y);
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
    if (s == CUDNN_STATUS_SUCCESS)
        count_exec(1, (int)algo, &g, workSpaceSizeInBytes, dx, w, dy);
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
    if (s == CUDNN_STATUS_SUCCESS)
        count_exec(2, (int)algo, &g, workSpaceSizeInBytes, x, dw, dy);
    return s;
}

/* ---------------------------------------------------------------- algorithm searches */

#ifndef MT_STANDIN_NO_FIND

/* The search's list, fastest first: entries mltrain must skip (not GEMM-like, non-deterministic,
 * tensor-op math with conversion to float16), the TF32 entry, the search's choice, the
 * heuristic's good entry, the rest. An entry needing more workspace than given could not run:
 * it gets CUDNN_STATUS_NOT_SUPPORTED and goes to the end with the other failures (no time), as
 * cuDNN reports them. */
static int search_list(int kind, const cgeo *g, size_t ws_size, entry *out)
{
    size_t ws = ws_bytes(g), wt = ws_tf32(g), wf = ws_found(g);
    const cudnnStatus_t ok = CUDNN_STATUS_SUCCESS, ns = CUDNN_STATUS_NOT_SUPPORTED;
    const cudnnStatus_t tcs = g_offer_tf32 ? ok : ns; /* the TF32-only entry's status */
    const cudnnDeterminism_t det = CUDNN_DETERMINISTIC, nondet = CUDNN_NON_DETERMINISTIC;
    const cudnnMathType_t fma = CUDNN_FMA_MATH, tc = CUDNN_TENSOR_OP_MATH,
                          conv = CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
    int n = 0;
    if (kind == 0) {
        out[n++] = (entry){CUDNN_CONVOLUTION_FWD_ALGO_FFT, ok, 8192, det, fma, R_SKIP};
        out[n++] = (entry){CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, ok, 0, nondet, fma, R_SKIP};
        out[n++] = (entry){k_good[0], ok, 0, det, conv, R_SKIP};
        out[n++] = (entry){k_tf32[0], tcs, wt, det, tc, R_TC};
        out[n++] = (entry){k_found[0], ok, wf, det, fma, R_FMA};
        out[n++] = (entry){k_good[0], ok, ws, det, fma, R_FMA};
        out[n++] = (entry){CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED, ok, 4096, det, fma,
                           R_SKIP};
        out[n++] = (entry){CUDNN_CONVOLUTION_FWD_ALGO_DIRECT, ns, 0, det, fma, R_SKIP};
    } else if (kind == 1) {
        out[n++] = (entry){CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT_TILING, ok, 8192, det, fma, R_SKIP};
        out[n++] = (entry){CUDNN_CONVOLUTION_BWD_DATA_ALGO_0, ok, 0, nondet, fma, R_SKIP};
        out[n++] = (entry){k_good[1], ok, 0, det, conv, R_SKIP};
        out[n++] = (entry){k_tf32[1], tcs, wt, det, tc, R_TC};
        out[n++] = (entry){k_found[1], ok, wf, det, fma, R_FMA};
        out[n++] = (entry){k_good[1], ok, ws, det, fma, R_FMA};
        out[n++] = (entry){CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD, ok, 4096, det, fma, R_SKIP};
    } else {
        out[n++] = (entry){CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT, ok, 8192, det, fma, R_SKIP};
        out[n++] = (entry){CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0, ok, 0, nondet, fma, R_SKIP};
        out[n++] = (entry){k_good[2], ok, 0, det, conv, R_SKIP};
        out[n++] = (entry){k_tf32[2], tcs, wt, det, tc, R_TC};
        out[n++] = (entry){k_found[2], ok, wf, det, fma, R_FMA};
        out[n++] = (entry){k_good[2], ok, ws, det, fma, R_FMA};
        out[n++] = (entry){CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3, ns, 0, det, fma, R_SKIP};
    }
    n = refuse_filter(g, out, n);
    entry sorted[NENT];
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (out[i].status == ok && out[i].memory > ws_size) out[i].status = ns;
        if (out[i].status == ok) sorted[k++] = out[i];
    }
    for (int i = 0; i < n; i++)
        if (out[i].status != ok) sorted[k++] = out[i];
    memcpy(out, sorted, (size_t)n * sizeof *out);
    return n;
}

/* The largest workspace among the heuristic's acceptable entries. */
static size_t heuristic_most(const entry *ents, int n, const cgeo *g)
{
    size_t most = 0;
    for (int i = 0; i < n; i++)
        if (acceptable(&ents[i], tf32_allowed(g)) && ents[i].memory > most) most = ents[i].memory;
    return most;
}

static int g_found_next;

/* Records the search's choice for this convolution (none: forgets an earlier one). */
static void found_put(int kind, const cgeo *g, const entry *pick)
{
    skey k = skey_of(kind, g);
    pthread_mutex_lock(&g_lock);
    int slot = -1;
    for (int i = 0; i < FOUND_SLOTS && slot < 0; i++)
        if (g_found[i].used && memcmp(&g_found[i].key, &k, sizeof k) == 0) slot = i;
    if (slot < 0 && pick) slot = g_found_next++ % FOUND_SLOTS;
    if (slot >= 0) {
        g_found[slot].used = pick != NULL;
        g_found[slot].key = k;
        if (pick) g_found[slot].pick = *pick;
    }
    pthread_mutex_unlock(&g_lock);
}

/* true: this search fails on purpose. */
static bool fail_search_now(void)
{
    pthread_mutex_lock(&g_lock);
    bool fail = g_fail_searches > 0;
    if (fail) {
        g_fail_searches--;
        g_st.failed_searches++;
    }
    pthread_mutex_unlock(&g_lock);
    return fail;
}

/* A search of kind k (x, w, y and their descriptors; out is the one of them written): the
 * checks of an execution (handle, stream, descriptors, every pointer inside a live allocation,
 * the workspace, which must cover the largest workspace of the heuristic's acceptable entries
 * unless it is empty), the output computed as the execution would, the time-sorted list in
 * ents, and its choice recorded for the executions that follow. */
static cudnnStatus_t search(const char *call, int kind, cudnnHandle_t h, cudnnTensorDescriptor_t xd,
                            const void *x, cudnnFilterDescriptor_t wd, const void *w,
                            cudnnConvolutionDescriptor_t cd, cudnnTensorDescriptor_t yd,
                            const void *y, void *out, int req, int *ret, const void *perf,
                            void *ws, size_t ws_size, entry *ents, int *n)
{
    pthread_mutex_lock(&g_lock);
    g_st.searches[kind]++;
    pthread_mutex_unlock(&g_lock);
    cudnnStatus_t s = query_begin(call, h, req, ret, perf);
    cgeo g;
    if (s == CUDNN_STATUS_SUCCESS) s = conv_geometry(call, &g, xd, wd, cd, yd);
    if (s != CUDNN_STATUS_SUCCESS) return s;
    if (!handle_ready(call, h) || !data_ok(call, "x", x, &g.x) || !data_ok(call, "w", w, &g.w) ||
        !data_ok(call, "y", y, &g.y))
        return CUDNN_STATUS_BAD_PARAM;
    if (ws_size > 0 && (!ws || (linked() && !g_cu.range_ok(ws, ws_size)))) {
        violation("%s: workspace %p of %zu bytes is not inside one live device allocation", call,
                  ws, ws_size);
        return CUDNN_STATUS_BAD_PARAM;
    }
    entry heur[NENT];
    size_t need = heuristic_most(heur, ranking(kind, &g, heur), &g);
    pthread_mutex_lock(&g_lock);
    g_st.last_search_ws[kind] = (int64_t)ws_size;
    g_st.last_search_need[kind] = (int64_t)need;
    g_searched[kind][0] = x, g_searched[kind][1] = w, g_searched[kind][2] = y;
    pthread_mutex_unlock(&g_lock);
    if (ws_size > 0 && ws_size < need)
        violation("%s: a workspace of %zu bytes, less than the %zu the heuristic's acceptable "
                  "entries need", call, ws_size, need);
    const tdesc *ot = kind == 0 ? &g.y : kind == 1 ? &g.x : &g.w;
    if (fail_search_now()) { /* and the output was half written */
        memset(out, 0xFF, elems(ot) * esize(ot->dt));
        return CUDNN_STATUS_INTERNAL_ERROR;
    }
    if (ws_size > 0) memset(ws, 0x5A, ws_size); /* the timed runs use all of it */
    s = conv_compute(kind, &g, x, w, y, out);
    if (s != CUDNN_STATUS_SUCCESS) return s;
    *n = search_list(kind, &g, ws_size, ents);
    const entry *pick = NULL;
    for (int i = 0; i < *n && !pick; i++)
        if (acceptable(&ents[i], tf32_allowed(&g))) pick = &ents[i];
    found_put(kind, &g, pick);
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t CUDNNWINAPI cudnnFindConvolutionForwardAlgorithmEx(
    cudnnHandle_t handle, const cudnnTensorDescriptor_t xDesc, const void *x,
    const cudnnFilterDescriptor_t wDesc, const void *w, const cudnnConvolutionDescriptor_t convDesc,
    const cudnnTensorDescriptor_t yDesc, void *y, const int requestedAlgoCount,
    int *returnedAlgoCount, cudnnConvolutionFwdAlgoPerf_t *perfResults, void *workSpace,
    size_t workSpaceSizeInBytes)
{
    entry ents[NENT];
    int n = 0;
    cudnnStatus_t s = search("cudnnFindConvolutionForwardAlgorithmEx", 0, handle, xDesc, x, wDesc,
                             w, convDesc, yDesc, y, y, requestedAlgoCount, returnedAlgoCount,
                             perfResults, workSpace, workSpaceSizeInBytes, ents, &n);
    if (s == CUDNN_STATUS_SUCCESS)
        FILL_PERF(perfResults, requestedAlgoCount, returnedAlgoCount, ents, n);
    return s;
}

cudnnStatus_t CUDNNWINAPI cudnnFindConvolutionBackwardDataAlgorithmEx(
    cudnnHandle_t handle, const cudnnFilterDescriptor_t wDesc, const void *w,
    const cudnnTensorDescriptor_t dyDesc, const void *dy,
    const cudnnConvolutionDescriptor_t convDesc, const cudnnTensorDescriptor_t dxDesc, void *dx,
    const int requestedAlgoCount, int *returnedAlgoCount,
    cudnnConvolutionBwdDataAlgoPerf_t *perfResults, void *workSpace, size_t workSpaceSizeInBytes)
{
    entry ents[NENT];
    int n = 0;
    cudnnStatus_t s = search("cudnnFindConvolutionBackwardDataAlgorithmEx", 1, handle, dxDesc, dx,
                             wDesc, w, convDesc, dyDesc, dy, dx, requestedAlgoCount,
                             returnedAlgoCount, perfResults, workSpace, workSpaceSizeInBytes,
                             ents, &n);
    if (s == CUDNN_STATUS_SUCCESS)
        FILL_PERF(perfResults, requestedAlgoCount, returnedAlgoCount, ents, n);
    return s;
}

cudnnStatus_t CUDNNWINAPI cudnnFindConvolutionBackwardFilterAlgorithmEx(
    cudnnHandle_t handle, const cudnnTensorDescriptor_t xDesc, const void *x,
    const cudnnTensorDescriptor_t dyDesc, const void *y,
    const cudnnConvolutionDescriptor_t convDesc, const cudnnFilterDescriptor_t dwDesc, void *dw,
    const int requestedAlgoCount, int *returnedAlgoCount,
    cudnnConvolutionBwdFilterAlgoPerf_t *perfResults, void *workSpace, size_t workSpaceSizeInBytes)
{
    entry ents[NENT];
    int n = 0;
    cudnnStatus_t s = search("cudnnFindConvolutionBackwardFilterAlgorithmEx", 2, handle, xDesc, x,
                             dwDesc, dw, convDesc, dyDesc, y, dw, requestedAlgoCount,
                             returnedAlgoCount, perfResults, workSpace, workSpaceSizeInBytes,
                             ents, &n);
    if (s == CUDNN_STATUS_SUCCESS)
        FILL_PERF(perfResults, requestedAlgoCount, returnedAlgoCount, ents, n);
    return s;
}

#endif /* MT_STANDIN_NO_FIND */

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
    count_pool(0);
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
    count_pool(1);
    return CUDNN_STATUS_SUCCESS;
}
