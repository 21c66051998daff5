/* A stand-in for the CUDA driver (libcuda.so.1) for tests on machines without a GPU: it exports
 * every entry point src/gpuarray/cuda_api.c resolves, under the versioned names the toolkit's
 * cuda.h macros give (cuMemAlloc_v2, ...; the optional ones too), with cuda.h's prototypes, so
 * a wrong signature here is a compile error. MLTRAIN_LIBCUDA=<this library> makes the CUDA
 * backend open it instead of the real driver.
 *
 * One device, "mltrain CUDA stand-in", compute capability 9.0, 132 SMs, 80 GiB. Device memory
 * is host memory (a CUdeviceptr is the pointer) between guard bytes that are checked when it is
 * freed (and by mt_standin_check_guards): a write past either end is reported. Every copy is
 * checked against the live allocations (a range outside one, or overlapping device ranges, is
 * reported and refused). Copies are synchronous memcpy, except those that touch page-locked
 * memory from cuMemHostAlloc: they are queued on their stream and done only when something
 * waits for them (cuStreamSynchronize, cuEventSynchronize or cuStreamWaitEvent of an event
 * recorded after them, cuCtxSynchronize, or a later synchronous operation on the same stream,
 * which runs in stream order). So a missing wait in a caller's pinned staging shows up as wrong
 * data, and freeing memory that a queued copy still uses is reported. Streams and events are
 * host objects; an event's time is a virtual clock. Module loading and kernel launches answer
 * CUDA_ERROR_NOT_SUPPORTED: kernels cannot run here.
 *
 * Misuse found (a call without a current context, a release without a retain, freeing an
 * unknown pointer, a primary context released while memory, streams or events remain, ...) is
 * printed on stderr and counted: mt_standin_errors(). The other exported mt_standin_* functions
 * (standin.h) report live objects and inject faults. One global lock guards the state, so
 * several threads may call in. Test-only code: never installed. */
#include <cuda.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "standin.h"

/* ---------------------------------------------------------------- state */

typedef struct alloc {
    struct alloc *next;
    char *base; /* the user's first byte (MT_STANDIN_GUARD bytes after the malloc'ed block) */
    size_t n;
    bool pinned; /* cuMemHostAlloc: host memory, copies to and from it are queued */
} alloc;

enum { OP_COPY = 0, OP_MARK };
typedef struct op {
    struct op *next;
    int kind;
    char *dst;
    const char *src;
    size_t n;               /* OP_COPY (0: dropped) */
    struct CUevent_st *ev;  /* OP_MARK (NULL: the event was destroyed) */
    uint64_t mark;
} op;

struct CUstream_st {
    struct CUstream_st *next;
    unsigned flags;
    op *head, *tail;
};

struct CUevent_st {
    struct CUevent_st *next;
    unsigned flags;
    bool recorded, pending, queried;
    struct CUstream_st *stream; /* where the pending mark is queued */
    uint64_t mark;
    double time_ms;
};

struct CUctx_st {
    int device;
};

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool g_inited;
static _Atomic int64_t g_errors;
static mt_standin_cu_stats g_st;
static alloc *g_allocs;
static struct CUstream_st g_legacy; /* the NULL stream */
static struct CUstream_st *g_streams;
static struct CUevent_st *g_events;
static struct CUctx_st g_ctx;
static uint64_t g_mark_seq;
static double g_clock_ms;
static _Thread_local CUcontext t_current;

static void misuse(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void misuse(const char *fmt, ...)
{
    atomic_fetch_add(&g_errors, 1);
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "mltrain CUDA stand-in: error: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* ---------------------------------------------------------------- fault injection */

typedef struct fault {
    const char *name;
    int64_t skip, count;
    CUresult result;
} fault;

static fault g_faults[] = {
    {"cuInit", 0, 0, 0}, {"cuDevicePrimaryCtxRetain", 0, 0, 0}, {"cuStreamCreate", 0, 0, 0},
    {"cuStreamSynchronize", 0, 0, 0}, {"cuStreamWaitEvent", 0, 0, 0}, {"cuEventCreate", 0, 0, 0},
    {"cuEventRecord", 0, 0, 0}, {"cuEventSynchronize", 0, 0, 0}, {"cuEventQuery", 0, 0, 0},
    {"cuMemAlloc_v2", 0, 0, 0}, {"cuMemHostAlloc", 0, 0, 0}, {"cuMemcpyHtoDAsync_v2", 0, 0, 0},
    {"cuMemcpyDtoHAsync_v2", 0, 0, 0}, {"cuMemcpyDtoDAsync_v2", 0, 0, 0},
    {"cuCtxSynchronize", 0, 0, 0},
};
#define NFAULTS (sizeof g_faults / sizeof g_faults[0])

int mt_standin_cu_fail(const char *entry, int64_t skip, int64_t count, int result)
{
    int rc = -1;
    pthread_mutex_lock(&g_lock);
    for (size_t i = 0; i < NFAULTS; i++)
        if (strcmp(g_faults[i].name, entry) == 0) {
            g_faults[i].skip = skip;
            g_faults[i].count = count;
            g_faults[i].result = (CUresult)result;
            rc = 0;
        }
    pthread_mutex_unlock(&g_lock);
    return rc;
}

/* true: this call of `name` fails with *r (nothing else is done). */
static bool injected(const char *name, CUresult *r)
{
    bool hit = false;
    pthread_mutex_lock(&g_lock);
    for (size_t i = 0; i < NFAULTS; i++) {
        fault *f = &g_faults[i];
        if (strcmp(f->name, name) != 0 || f->count <= 0) continue;
        if (f->skip > 0) {
            f->skip--;
        } else {
            f->count--;
            *r = f->result;
            hit = true;
        }
    }
    pthread_mutex_unlock(&g_lock);
    return hit;
}

#define INJECT()                                                                                 \
    do {                                                                                         \
        CUresult inj_;                                                                           \
        if (injected(__func__, &inj_)) return inj_;                                              \
    } while (0)

/* ---------------------------------------------------------------- checks */

static CUresult need_init(void)
{
    return atomic_load(&g_inited) ? CUDA_SUCCESS : CUDA_ERROR_NOT_INITIALIZED;
}

/* The calling thread must have the (retained) primary context current. */
static CUresult need_ctx(const char *call)
{
    if (!atomic_load(&g_inited)) return CUDA_ERROR_NOT_INITIALIZED;
    if (!t_current) {
        misuse("%s called with no current context on this thread", call);
        return CUDA_ERROR_INVALID_CONTEXT;
    }
    pthread_mutex_lock(&g_lock);
    bool active = g_st.ctx_retains > 0;
    pthread_mutex_unlock(&g_lock);
    if (!active) {
        misuse("%s called after the primary context was released", call);
        return CUDA_ERROR_CONTEXT_IS_DESTROYED;
    }
    return CUDA_SUCCESS;
}

#define NEED_CTX()                                                                               \
    do {                                                                                         \
        CUresult ctx_ = need_ctx(__func__);                                                      \
        if (ctx_ != CUDA_SUCCESS) return ctx_;                                                   \
    } while (0)

static uint8_t guard_byte(size_t i)
{
    return (uint8_t)(0xA5u ^ (unsigned)(i * 37u));
}

/* Guard errors of one allocation (lock held). */
static int64_t check_guard_locked(const alloc *a, const char *when)
{
    const unsigned char *lo = (const unsigned char *)a->base - MT_STANDIN_GUARD;
    const unsigned char *hi = (const unsigned char *)a->base + a->n;
    int64_t bad = 0;
    for (size_t i = 0; i < MT_STANDIN_GUARD; i++) {
        if (lo[i] != guard_byte(i)) {
            misuse("%s: a write before the start of %s allocation %p (%zu bytes): guard byte "
                   "-%zu changed", when, a->pinned ? "pinned host" : "device", (void *)a->base,
                   a->n, MT_STANDIN_GUARD - i);
            bad++;
            break;
        }
    }
    for (size_t i = 0; i < MT_STANDIN_GUARD; i++) {
        if (hi[i] != guard_byte(i + 7)) {
            misuse("%s: a write past the end of %s allocation %p (%zu bytes): byte %zu after it "
                   "changed", when, a->pinned ? "pinned host" : "device", (void *)a->base, a->n,
                   i);
            bad++;
            break;
        }
    }
    return bad;
}

int64_t mt_standin_check_guards(void)
{
    int64_t bad = 0;
    pthread_mutex_lock(&g_lock);
    for (const alloc *a = g_allocs; a; a = a->next) bad += check_guard_locked(a, "guard check");
    pthread_mutex_unlock(&g_lock);
    return bad;
}

/* The allocation of the given kind holding [p, p + n), or NULL (lock held). */
static alloc *find_range_locked(const void *p, size_t n, bool pinned)
{
    const char *c = p;
    for (alloc *a = g_allocs; a; a = a->next)
        if (a->pinned == pinned && c >= a->base && c <= a->base + a->n &&
            n <= (size_t)(a->base + a->n - c))
            return a;
    return NULL;
}

/* The allocation of the given kind that holds address p at all, or NULL (lock held). */
static alloc *find_addr_locked(const void *p, bool pinned)
{
    const char *c = p;
    for (alloc *a = g_allocs; a; a = a->next)
        if (a->pinned == pinned && c >= a->base && c < a->base + a->n) return a;
    return NULL;
}

static bool stream_live_locked(const struct CUstream_st *s)
{
    if (!s) return true; /* the legacy stream */
    for (const struct CUstream_st *x = g_streams; x; x = x->next)
        if (x == s) return true;
    return false;
}

static bool event_live_locked(const struct CUevent_st *e)
{
    for (const struct CUevent_st *x = g_events; x; x = x->next)
        if (x == e) return true;
    return false;
}

static struct CUstream_st *qof(CUstream s)
{
    return s ? s : &g_legacy;
}

int mt_standin_cu_range_ok(const void *p, size_t n)
{
    pthread_mutex_lock(&g_lock);
    bool ok = p && find_range_locked(p, n, false) != NULL;
    pthread_mutex_unlock(&g_lock);
    return ok;
}

int mt_standin_cu_stream_ok(const void *stream)
{
    pthread_mutex_lock(&g_lock);
    bool ok = stream_live_locked(stream);
    pthread_mutex_unlock(&g_lock);
    return ok;
}

int mt_standin_cu_ctx_current(void)
{
    pthread_mutex_lock(&g_lock);
    bool ok = t_current != NULL && g_st.ctx_retains > 0;
    pthread_mutex_unlock(&g_lock);
    return ok;
}

int64_t mt_standin_errors(void)
{
    return atomic_load(&g_errors);
}

void mt_standin_cu_stats_get(mt_standin_cu_stats *out)
{
    pthread_mutex_lock(&g_lock);
    *out = g_st;
    pthread_mutex_unlock(&g_lock);
}

/* ---------------------------------------------------------------- stream queues */

static void enqueue_locked(struct CUstream_st *q, op *o)
{
    o->next = NULL;
    if (q->tail)
        q->tail->next = o;
    else
        q->head = o;
    q->tail = o;
    g_st.pending_ops++;
}

/* Runs queue q in order, up to and including the mark `upto` (0: everything). */
static void drain_locked(struct CUstream_st *q, uint64_t upto)
{
    while (q->head) {
        op *o = q->head;
        q->head = o->next;
        if (!q->head) q->tail = NULL;
        g_st.pending_ops--;
        bool stop = false;
        if (o->kind == OP_COPY && o->n > 0) {
            /* both ends are still live (freeing drops the copies that touch freed memory) */
            memcpy(o->dst, o->src, o->n);
        } else if (o->kind == OP_MARK) {
            g_clock_ms += 0.001;
            if (o->ev && o->ev->mark == o->mark) {
                o->ev->pending = false;
                o->ev->time_ms = g_clock_ms;
            }
            stop = upto && o->mark == upto;
        }
        free(o);
        if (stop) return;
    }
}

/* Every queue in turn: the legacy stream's, then the created streams' (lock held). */
static struct CUstream_st *next_queue(struct CUstream_st *q)
{
    return q == &g_legacy ? g_streams : q->next;
}

static void drain_all_locked(void)
{
    for (struct CUstream_st *q = &g_legacy; q; q = next_queue(q)) drain_locked(q, 0);
}

void mt_standin_cu_stream_drain(void *stream)
{
    pthread_mutex_lock(&g_lock);
    if (stream_live_locked(stream))
        drain_locked(qof(stream), 0);
    else
        misuse("work queued on a destroyed or unknown stream %p", stream);
    pthread_mutex_unlock(&g_lock);
}

/* Drops (and reports) the queued copies that touch [base, base + n) (lock held). */
static void drop_queued_uses_locked(const char *base, size_t n, const char *what)
{
    for (struct CUstream_st *q = &g_legacy; q; q = next_queue(q)) {
        for (op *o = q->head; o; o = o->next) {
            if (o->kind != OP_COPY || o->n == 0) continue;
            bool hit = (o->dst < base + n && base < o->dst + o->n) ||
                       (o->src < base + n && base < o->src + o->n);
            if (hit) {
                misuse("%s %p while a queued copy of %zu bytes still uses it (nothing waited "
                       "for the copy)", what, (const void *)base, o->n);
                o->n = 0;
            }
        }
    }
}

/* ---------------------------------------------------------------- init, device, context */

CUresult CUDAAPI cuInit(unsigned int Flags)
{
    INJECT();
    if (Flags != 0) return CUDA_ERROR_INVALID_VALUE;
    atomic_store(&g_inited, true);
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDriverGetVersion(int *driverVersion)
{
    if (!driverVersion) return CUDA_ERROR_INVALID_VALUE;
    *driverVersion = MT_STANDIN_CU_DRIVER;
    return CUDA_SUCCESS;
}

static const struct {
    CUresult r;
    const char *name, *text;
} k_errs[] = {
    {CUDA_SUCCESS, "CUDA_SUCCESS", "no error"},
    {CUDA_ERROR_INVALID_VALUE, "CUDA_ERROR_INVALID_VALUE", "invalid argument"},
    {CUDA_ERROR_OUT_OF_MEMORY, "CUDA_ERROR_OUT_OF_MEMORY", "out of memory"},
    {CUDA_ERROR_NOT_INITIALIZED, "CUDA_ERROR_NOT_INITIALIZED", "initialization error"},
    {CUDA_ERROR_NO_DEVICE, "CUDA_ERROR_NO_DEVICE", "no CUDA-capable device is detected"},
    {CUDA_ERROR_INVALID_DEVICE, "CUDA_ERROR_INVALID_DEVICE", "invalid device ordinal"},
    {CUDA_ERROR_INVALID_IMAGE, "CUDA_ERROR_INVALID_IMAGE", "device kernel image is invalid"},
    {CUDA_ERROR_INVALID_CONTEXT, "CUDA_ERROR_INVALID_CONTEXT", "invalid device context"},
    {CUDA_ERROR_CONTEXT_IS_DESTROYED, "CUDA_ERROR_CONTEXT_IS_DESTROYED",
     "context is destroyed"},
    {CUDA_ERROR_INVALID_HANDLE, "CUDA_ERROR_INVALID_HANDLE", "invalid resource handle"},
    {CUDA_ERROR_NOT_FOUND, "CUDA_ERROR_NOT_FOUND", "named symbol not found"},
    {CUDA_ERROR_NOT_READY, "CUDA_ERROR_NOT_READY", "device not ready"},
    {CUDA_ERROR_LAUNCH_FAILED, "CUDA_ERROR_LAUNCH_FAILED", "unspecified launch failure"},
    {CUDA_ERROR_ILLEGAL_ADDRESS, "CUDA_ERROR_ILLEGAL_ADDRESS",
     "an illegal memory access was encountered"},
    {CUDA_ERROR_NOT_SUPPORTED, "CUDA_ERROR_NOT_SUPPORTED", "operation not supported"},
    {CUDA_ERROR_UNKNOWN, "CUDA_ERROR_UNKNOWN", "unknown error"},
};

CUresult CUDAAPI cuGetErrorName(CUresult error, const char **pStr)
{
    if (!pStr) return CUDA_ERROR_INVALID_VALUE;
    for (size_t i = 0; i < sizeof k_errs / sizeof k_errs[0]; i++)
        if (k_errs[i].r == error) {
            *pStr = k_errs[i].name;
            return CUDA_SUCCESS;
        }
    *pStr = NULL;
    return CUDA_ERROR_INVALID_VALUE;
}

CUresult CUDAAPI cuGetErrorString(CUresult error, const char **pStr)
{
    if (!pStr) return CUDA_ERROR_INVALID_VALUE;
    for (size_t i = 0; i < sizeof k_errs / sizeof k_errs[0]; i++)
        if (k_errs[i].r == error) {
            *pStr = k_errs[i].text;
            return CUDA_SUCCESS;
        }
    *pStr = NULL;
    return CUDA_ERROR_INVALID_VALUE;
}

CUresult CUDAAPI cuDeviceGetCount(int *count)
{
    CUresult r = need_init();
    if (r != CUDA_SUCCESS) return r;
    if (!count) return CUDA_ERROR_INVALID_VALUE;
    *count = 1;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDeviceGet(CUdevice *device, int ordinal)
{
    CUresult r = need_init();
    if (r != CUDA_SUCCESS) return r;
    if (!device) return CUDA_ERROR_INVALID_VALUE;
    if (ordinal != 0) return CUDA_ERROR_INVALID_DEVICE;
    *device = 0;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDeviceGetName(char *name, int len, CUdevice dev)
{
    CUresult r = need_init();
    if (r != CUDA_SUCCESS) return r;
    if (!name || len <= 0) return CUDA_ERROR_INVALID_VALUE;
    if (dev != 0) return CUDA_ERROR_INVALID_DEVICE;
    snprintf(name, (size_t)len, "%s", MT_STANDIN_CU_NAME);
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDeviceTotalMem_v2(size_t *bytes, CUdevice dev)
{
    CUresult r = need_init();
    if (r != CUDA_SUCCESS) return r;
    if (!bytes) return CUDA_ERROR_INVALID_VALUE;
    if (dev != 0) return CUDA_ERROR_INVALID_DEVICE;
    *bytes = MT_STANDIN_CU_TOTAL_MEM;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDeviceGetAttribute(int *pi, CUdevice_attribute attrib, CUdevice dev)
{
    CUresult r = need_init();
    if (r != CUDA_SUCCESS) return r;
    if (!pi || (int)attrib < 1 || attrib >= CU_DEVICE_ATTRIBUTE_MAX)
        return CUDA_ERROR_INVALID_VALUE;
    if (dev != 0) return CUDA_ERROR_INVALID_DEVICE;
    int v = 0;
    switch (attrib) { /* an H100-like device */
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR: v = 9; break;
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR: v = 0; break;
    case CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT: v = MT_STANDIN_CU_SMS; break;
    case CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK: v = 1024; break;
    case CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X: v = 1024; break;
    case CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Y: v = 1024; break;
    case CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Z: v = 64; break;
    case CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X: v = 2147483647; break;
    case CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Y: v = 65535; break;
    case CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Z: v = 65535; break;
    case CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK: v = 49152; break;
    case CU_DEVICE_ATTRIBUTE_TOTAL_CONSTANT_MEMORY: v = 65536; break;
    case CU_DEVICE_ATTRIBUTE_WARP_SIZE: v = 32; break;
    case CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_BLOCK: v = 65536; break;
    case CU_DEVICE_ATTRIBUTE_CLOCK_RATE: v = 1980000; break;
    case CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE: v = 2619000; break;
    case CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH: v = 5120; break;
    case CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE: v = 50 << 20; break;
    case CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR: v = 2048; break;
    case CU_DEVICE_ATTRIBUTE_ASYNC_ENGINE_COUNT: v = 3; break;
    case CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING: v = 1; break;
    case CU_DEVICE_ATTRIBUTE_CONCURRENT_KERNELS: v = 1; break;
    case CU_DEVICE_ATTRIBUTE_CAN_MAP_HOST_MEMORY: v = 1; break;
    case CU_DEVICE_ATTRIBUTE_ECC_ENABLED: v = 1; break;
    default: v = 0; break;
    }
    *pi = v;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDevicePrimaryCtxRetain(CUcontext *pctx, CUdevice dev)
{
    INJECT();
    CUresult r = need_init();
    if (r != CUDA_SUCCESS) return r;
    if (!pctx) return CUDA_ERROR_INVALID_VALUE;
    if (dev != 0) return CUDA_ERROR_INVALID_DEVICE;
    pthread_mutex_lock(&g_lock);
    g_st.ctx_retains++;
    pthread_mutex_unlock(&g_lock);
    *pctx = &g_ctx;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDevicePrimaryCtxRelease_v2(CUdevice dev)
{
    CUresult r = need_init();
    if (r != CUDA_SUCCESS) return r;
    if (dev != 0) return CUDA_ERROR_INVALID_DEVICE;
    pthread_mutex_lock(&g_lock);
    if (g_st.ctx_retains <= 0) {
        pthread_mutex_unlock(&g_lock);
        misuse("cuDevicePrimaryCtxRelease without a matching retain");
        return CUDA_ERROR_INVALID_CONTEXT;
    }
    if (--g_st.ctx_retains == 0) {
        /* the context goes away with everything in it: whatever is left was never freed */
        if (g_st.live_allocs || g_st.live_host_allocs || g_st.live_streams || g_st.live_events)
            misuse("primary context released with %lld device allocations, %lld pinned host "
                   "allocations, %lld streams and %lld events still live",
                   (long long)g_st.live_allocs, (long long)g_st.live_host_allocs,
                   (long long)g_st.live_streams, (long long)g_st.live_events);
        drain_locked(&g_legacy, 0);
    }
    pthread_mutex_unlock(&g_lock);
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuCtxSetCurrent(CUcontext ctx)
{
    CUresult r = need_init();
    if (r != CUDA_SUCCESS) return r;
    if (ctx && ctx != &g_ctx) {
        misuse("cuCtxSetCurrent with an unknown context %p", (void *)ctx);
        return CUDA_ERROR_INVALID_CONTEXT;
    }
    if (ctx) {
        pthread_mutex_lock(&g_lock);
        bool active = g_st.ctx_retains > 0;
        pthread_mutex_unlock(&g_lock);
        if (!active) {
            misuse("cuCtxSetCurrent with the primary context released");
            return CUDA_ERROR_CONTEXT_IS_DESTROYED;
        }
    }
    t_current = ctx;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuCtxSynchronize(void)
{
    INJECT();
    NEED_CTX();
    pthread_mutex_lock(&g_lock);
    g_st.syncs++;
    drain_all_locked();
    pthread_mutex_unlock(&g_lock);
    return CUDA_SUCCESS;
}

/* ---------------------------------------------------------------- streams and events */

CUresult CUDAAPI cuStreamCreate(CUstream *phStream, unsigned int Flags)
{
    INJECT();
    NEED_CTX();
    if (!phStream || (Flags & ~(unsigned)CU_STREAM_NON_BLOCKING)) return CUDA_ERROR_INVALID_VALUE;
    struct CUstream_st *s = calloc(1, sizeof *s);
    if (!s) return CUDA_ERROR_OUT_OF_MEMORY;
    s->flags = Flags;
    pthread_mutex_lock(&g_lock);
    s->next = g_streams;
    g_streams = s;
    g_st.live_streams++;
    pthread_mutex_unlock(&g_lock);
    *phStream = s;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuStreamDestroy_v2(CUstream hStream)
{
    NEED_CTX();
    pthread_mutex_lock(&g_lock);
    struct CUstream_st **pp = &g_streams;
    while (*pp && *pp != hStream) pp = &(*pp)->next;
    if (!hStream || !*pp) {
        pthread_mutex_unlock(&g_lock);
        misuse("cuStreamDestroy of an unknown stream %p", (void *)hStream);
        return CUDA_ERROR_INVALID_HANDLE;
    }
    drain_locked(hStream, 0); /* its work still completes */
    *pp = hStream->next;
    g_st.live_streams--;
    for (struct CUevent_st *e = g_events; e; e = e->next)
        if (e->stream == hStream) e->stream = NULL;
    pthread_mutex_unlock(&g_lock);
    free(hStream);
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuStreamSynchronize(CUstream hStream)
{
    INJECT();
    NEED_CTX();
    pthread_mutex_lock(&g_lock);
    if (!stream_live_locked(hStream)) {
        pthread_mutex_unlock(&g_lock);
        misuse("cuStreamSynchronize of an unknown stream %p", (void *)hStream);
        return CUDA_ERROR_INVALID_HANDLE;
    }
    g_st.syncs++;
    drain_locked(qof(hStream), 0);
    pthread_mutex_unlock(&g_lock);
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuEventCreate(CUevent *phEvent, unsigned int Flags)
{
    INJECT();
    NEED_CTX();
    unsigned known = CU_EVENT_BLOCKING_SYNC | CU_EVENT_DISABLE_TIMING | CU_EVENT_INTERPROCESS;
    if (!phEvent || (Flags & ~known)) return CUDA_ERROR_INVALID_VALUE;
    struct CUevent_st *e = calloc(1, sizeof *e);
    if (!e) return CUDA_ERROR_OUT_OF_MEMORY;
    e->flags = Flags;
    pthread_mutex_lock(&g_lock);
    e->next = g_events;
    g_events = e;
    g_st.live_events++;
    pthread_mutex_unlock(&g_lock);
    *phEvent = e;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuEventDestroy_v2(CUevent hEvent)
{
    NEED_CTX();
    pthread_mutex_lock(&g_lock);
    struct CUevent_st **pp = &g_events;
    while (*pp && *pp != hEvent) pp = &(*pp)->next;
    if (!hEvent || !*pp) {
        pthread_mutex_unlock(&g_lock);
        misuse("cuEventDestroy of an unknown event %p", (void *)hEvent);
        return CUDA_ERROR_INVALID_HANDLE;
    }
    *pp = hEvent->next;
    g_st.live_events--;
    /* a pending record stays queued (allowed by CUDA) but no longer names the event */
    for (struct CUstream_st *q = &g_legacy; q; q = next_queue(q))
        for (op *o = q->head; o; o = o->next)
            if (o->kind == OP_MARK && o->ev == hEvent) o->ev = NULL;
    pthread_mutex_unlock(&g_lock);
    free(hEvent);
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuEventRecord(CUevent hEvent, CUstream hStream)
{
    INJECT();
    NEED_CTX();
    pthread_mutex_lock(&g_lock);
    CUresult r = CUDA_SUCCESS;
    if (!event_live_locked(hEvent) || !stream_live_locked(hStream)) {
        r = CUDA_ERROR_INVALID_HANDLE;
        misuse("cuEventRecord of event %p on stream %p: unknown handle", (void *)hEvent,
               (void *)hStream);
    } else {
        struct CUstream_st *q = qof(hStream);
        hEvent->recorded = true;
        hEvent->queried = false;
        hEvent->stream = q;
        hEvent->mark = ++g_mark_seq;
        if (!q->head) { /* nothing queued before it: complete now */
            g_clock_ms += 0.001;
            hEvent->pending = false;
            hEvent->time_ms = g_clock_ms;
        } else {
            op *o = calloc(1, sizeof *o);
            if (!o) {
                r = CUDA_ERROR_OUT_OF_MEMORY;
            } else {
                o->kind = OP_MARK;
                o->ev = hEvent;
                o->mark = hEvent->mark;
                hEvent->pending = true;
                enqueue_locked(q, o);
            }
        }
    }
    pthread_mutex_unlock(&g_lock);
    return r;
}

/* Completes a pending event by running its stream up to the record (lock held). */
static void complete_event_locked(struct CUevent_st *e)
{
    if (e->pending && e->stream) drain_locked(e->stream, e->mark);
    e->pending = false;
}

CUresult CUDAAPI cuEventSynchronize(CUevent hEvent)
{
    INJECT();
    NEED_CTX();
    pthread_mutex_lock(&g_lock);
    if (!event_live_locked(hEvent)) {
        pthread_mutex_unlock(&g_lock);
        misuse("cuEventSynchronize of an unknown event %p", (void *)hEvent);
        return CUDA_ERROR_INVALID_HANDLE;
    }
    g_st.syncs++;
    complete_event_locked(hEvent);
    pthread_mutex_unlock(&g_lock);
    return CUDA_SUCCESS;
}

/* A pending event answers NOT_READY to its first query and is complete at the next one. */
CUresult CUDAAPI cuEventQuery(CUevent hEvent)
{
    INJECT();
    NEED_CTX();
    pthread_mutex_lock(&g_lock);
    CUresult r = CUDA_SUCCESS;
    if (!event_live_locked(hEvent)) {
        r = CUDA_ERROR_INVALID_HANDLE;
        misuse("cuEventQuery of an unknown event %p", (void *)hEvent);
    } else if (hEvent->pending && !hEvent->queried) {
        hEvent->queried = true;
        r = CUDA_ERROR_NOT_READY;
    } else {
        complete_event_locked(hEvent);
    }
    pthread_mutex_unlock(&g_lock);
    return r;
}

CUresult CUDAAPI cuStreamWaitEvent(CUstream hStream, CUevent hEvent, unsigned int Flags)
{
    INJECT();
    NEED_CTX();
    pthread_mutex_lock(&g_lock);
    CUresult r = CUDA_SUCCESS;
    if (!event_live_locked(hEvent) || !stream_live_locked(hStream)) {
        r = CUDA_ERROR_INVALID_HANDLE;
        misuse("cuStreamWaitEvent(stream %p, event %p): unknown handle", (void *)hStream,
               (void *)hEvent);
    } else if (Flags != 0 && Flags != CU_EVENT_WAIT_DEFAULT) {
        r = CUDA_ERROR_INVALID_VALUE;
    } else {
        /* what the event covers is done before anything queued on hStream after this call */
        complete_event_locked(hEvent);
    }
    pthread_mutex_unlock(&g_lock);
    return r;
}

CUresult CUDAAPI cuEventElapsedTime_v2(float *pMilliseconds, CUevent hStart, CUevent hEnd)
{
    NEED_CTX();
    if (!pMilliseconds) return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&g_lock);
    CUresult r = CUDA_SUCCESS;
    if (!event_live_locked(hStart) || !event_live_locked(hEnd)) {
        r = CUDA_ERROR_INVALID_HANDLE;
        misuse("cuEventElapsedTime of an unknown event");
    } else if ((hStart->flags | hEnd->flags) & CU_EVENT_DISABLE_TIMING) {
        r = CUDA_ERROR_INVALID_HANDLE; /* as the driver answers */
    } else if (!hStart->recorded || !hEnd->recorded) {
        r = CUDA_ERROR_INVALID_HANDLE;
    } else if (hStart->pending || hEnd->pending) {
        r = CUDA_ERROR_NOT_READY;
    } else {
        *pMilliseconds = (float)(hEnd->time_ms - hStart->time_ms);
    }
    pthread_mutex_unlock(&g_lock);
    return r;
}

/* ---------------------------------------------------------------- memory */

static CUresult new_alloc(void **out, size_t n, bool pinned)
{
    char *blk = malloc(n + 2 * (size_t)MT_STANDIN_GUARD);
    if (!blk) return CUDA_ERROR_OUT_OF_MEMORY;
    alloc *a = malloc(sizeof *a);
    if (!a) {
        free(blk);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    a->base = blk + MT_STANDIN_GUARD;
    a->n = n;
    a->pinned = pinned;
    for (size_t i = 0; i < MT_STANDIN_GUARD; i++) {
        blk[i] = (char)guard_byte(i);
        a->base[n + i] = (char)guard_byte(i + 7);
    }
    memset(a->base, 0xCB, n); /* fresh memory holds garbage, not zeros */
    pthread_mutex_lock(&g_lock);
    a->next = g_allocs;
    g_allocs = a;
    if (pinned) {
        g_st.live_host_allocs++;
    } else {
        g_st.live_allocs++;
        g_st.live_bytes += (int64_t)n;
        g_st.alloc_calls++;
    }
    pthread_mutex_unlock(&g_lock);
    *out = a->base;
    return CUDA_SUCCESS;
}

static CUresult free_alloc(void *p, bool pinned, const char *call)
{
    pthread_mutex_lock(&g_lock);
    alloc **pp = &g_allocs;
    while (*pp && !((*pp)->base == p && (*pp)->pinned == pinned)) pp = &(*pp)->next;
    if (!*pp) {
        pthread_mutex_unlock(&g_lock);
        misuse("%s(%p): not a live %s allocation", call, p,
               pinned ? "cuMemHostAlloc" : "cuMemAlloc");
        return CUDA_ERROR_INVALID_VALUE;
    }
    alloc *a = *pp;
    check_guard_locked(a, call);
    drop_queued_uses_locked(a->base, a->n, pinned ? "cuMemFreeHost of" : "cuMemFree of");
    *pp = a->next;
    if (pinned) {
        g_st.live_host_allocs--;
    } else {
        g_st.live_allocs--;
        g_st.live_bytes -= (int64_t)a->n;
    }
    pthread_mutex_unlock(&g_lock);
    free(a->base - MT_STANDIN_GUARD);
    free(a);
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuMemAlloc_v2(CUdeviceptr *dptr, size_t bytesize)
{
    INJECT();
    NEED_CTX();
    if (!dptr || bytesize == 0) return CUDA_ERROR_INVALID_VALUE;
    void *p = NULL;
    CUresult r = new_alloc(&p, bytesize, false);
    if (r == CUDA_SUCCESS) *dptr = (CUdeviceptr)(uintptr_t)p;
    return r;
}

CUresult CUDAAPI cuMemFree_v2(CUdeviceptr dptr)
{
    NEED_CTX();
    if (!dptr) return CUDA_SUCCESS;
    return free_alloc((void *)(uintptr_t)dptr, false, "cuMemFree");
}

CUresult CUDAAPI cuMemGetInfo_v2(size_t *free_bytes, size_t *total)
{
    NEED_CTX();
    if (!free_bytes || !total) return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&g_lock);
    *total = MT_STANDIN_CU_TOTAL_MEM;
    *free_bytes = MT_STANDIN_CU_TOTAL_MEM - (size_t)g_st.live_bytes;
    pthread_mutex_unlock(&g_lock);
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuMemHostAlloc(void **pp, size_t bytesize, unsigned int Flags)
{
    pthread_mutex_lock(&g_lock);
    g_st.host_alloc_calls++;
    pthread_mutex_unlock(&g_lock);
    INJECT();
    NEED_CTX();
    if (!pp || bytesize == 0) return CUDA_ERROR_INVALID_VALUE;
    (void)Flags;
    return new_alloc(pp, bytesize, true);
}

CUresult CUDAAPI cuMemFreeHost(void *p)
{
    NEED_CTX();
    return free_alloc(p, true, "cuMemFreeHost");
}

/* One host<->device copy: device side checked, host side queued when pinned (lock taken). */
static CUresult host_copy(const char *call, char *dst, const char *src, size_t n, CUstream s,
                          bool to_device)
{
    NEED_CTX();
    if (n == 0) return CUDA_SUCCESS;
    const char *dev = to_device ? dst : src, *host = to_device ? src : dst;
    pthread_mutex_lock(&g_lock);
    CUresult r = CUDA_SUCCESS;
    if (!stream_live_locked(s)) {
        misuse("%s on an unknown stream %p", call, (void *)s);
        r = CUDA_ERROR_INVALID_HANDLE;
    } else if (!dev || !find_range_locked(dev, n, false)) {
        misuse("%s of %zu bytes: device range at %p is not inside one live allocation", call, n,
               (const void *)dev);
        r = CUDA_ERROR_INVALID_VALUE;
    } else if (!host || find_addr_locked(host, false)) {
        misuse("%s of %zu bytes: host pointer %p is device memory", call, n, (const void *)host);
        r = CUDA_ERROR_INVALID_VALUE;
    } else if (find_addr_locked(host, true)) {
        if (!find_range_locked(host, n, true)) {
            misuse("%s of %zu bytes: host range at %p runs past its pinned allocation", call, n,
                   (const void *)host);
            r = CUDA_ERROR_INVALID_VALUE;
        } else {
            op *o = calloc(1, sizeof *o);
            if (!o) {
                r = CUDA_ERROR_OUT_OF_MEMORY;
            } else {
                o->kind = OP_COPY;
                o->dst = dst;
                o->src = src;
                o->n = n;
                enqueue_locked(qof(s), o);
                g_st.queued_copies++;
            }
        }
    } else { /* pageable: synchronous, after what is queued on the stream */
        drain_locked(qof(s), 0);
        memcpy(dst, src, n);
    }
    pthread_mutex_unlock(&g_lock);
    return r;
}

CUresult CUDAAPI cuMemcpyHtoDAsync_v2(CUdeviceptr dstDevice, const void *srcHost,
                                      size_t ByteCount, CUstream hStream)
{
    INJECT();
    return host_copy(__func__, (char *)(uintptr_t)dstDevice, srcHost, ByteCount, hStream, true);
}

CUresult CUDAAPI cuMemcpyDtoHAsync_v2(void *dstHost, CUdeviceptr srcDevice, size_t ByteCount,
                                      CUstream hStream)
{
    INJECT();
    return host_copy(__func__, dstHost, (const char *)(uintptr_t)srcDevice, ByteCount, hStream,
                     false);
}

CUresult CUDAAPI cuMemcpyDtoDAsync_v2(CUdeviceptr dstDevice, CUdeviceptr srcDevice,
                                      size_t ByteCount, CUstream hStream)
{
    INJECT();
    NEED_CTX();
    if (ByteCount == 0) return CUDA_SUCCESS;
    char *dst = (char *)(uintptr_t)dstDevice;
    const char *src = (const char *)(uintptr_t)srcDevice;
    pthread_mutex_lock(&g_lock);
    CUresult r = CUDA_SUCCESS;
    if (!stream_live_locked(hStream)) {
        misuse("cuMemcpyDtoDAsync on an unknown stream %p", (void *)hStream);
        r = CUDA_ERROR_INVALID_HANDLE;
    } else if (!find_range_locked(dst, ByteCount, false) ||
               !find_range_locked(src, ByteCount, false)) {
        misuse("cuMemcpyDtoDAsync of %zu bytes from %p to %p: a range is not inside one live "
               "device allocation", ByteCount, (const void *)src, (void *)dst);
        r = CUDA_ERROR_INVALID_VALUE;
    } else if (dst < src + ByteCount && src < dst + ByteCount) {
        misuse("cuMemcpyDtoDAsync of %zu bytes from %p to %p: overlapping ranges (undefined)",
               ByteCount, (const void *)src, (void *)dst);
        r = CUDA_ERROR_INVALID_VALUE;
    } else {
        drain_locked(qof(hStream), 0);
        memcpy(dst, src, ByteCount);
    }
    pthread_mutex_unlock(&g_lock);
    return r;
}

/* ---------------------------------------------------------------- modules and kernels */

CUresult CUDAAPI cuModuleLoadData(CUmodule *module, const void *image)
{
    NEED_CTX();
    pthread_mutex_lock(&g_lock);
    g_st.module_loads++;
    pthread_mutex_unlock(&g_lock);
    if (module) *module = NULL;
    (void)image;
    return CUDA_ERROR_NOT_SUPPORTED; /* kernels cannot run here */
}

CUresult CUDAAPI cuModuleUnload(CUmodule hmod)
{
    misuse("cuModuleUnload(%p): no module was ever loaded", (void *)hmod);
    return CUDA_ERROR_INVALID_HANDLE;
}

CUresult CUDAAPI cuModuleGetFunction(CUfunction *hfunc, CUmodule hmod, const char *name)
{
    misuse("cuModuleGetFunction(%p, %s): no module was ever loaded", (void *)hmod,
           name ? name : "(null)");
    if (hfunc) *hfunc = NULL;
    return CUDA_ERROR_INVALID_HANDLE;
}

CUresult CUDAAPI cuFuncGetAttribute(int *pi, CUfunction_attribute attrib, CUfunction hfunc)
{
    misuse("cuFuncGetAttribute(%d) of function %p: no function exists", (int)attrib,
           (void *)hfunc);
    if (pi) *pi = 0;
    return CUDA_ERROR_INVALID_HANDLE;
}

CUresult CUDAAPI cuFuncGetParamInfo(CUfunction func, size_t paramIndex, size_t *paramOffset,
                                    size_t *paramSize)
{
    misuse("cuFuncGetParamInfo(%zu) of function %p: no function exists", paramIndex,
           (void *)func);
    (void)paramOffset, (void)paramSize;
    return CUDA_ERROR_INVALID_HANDLE;
}

CUresult CUDAAPI cuLaunchKernel(CUfunction f, unsigned int gridDimX, unsigned int gridDimY,
                                unsigned int gridDimZ, unsigned int blockDimX,
                                unsigned int blockDimY, unsigned int blockDimZ,
                                unsigned int sharedMemBytes, CUstream hStream,
                                void **kernelParams, void **extra)
{
    pthread_mutex_lock(&g_lock);
    g_st.launches++;
    pthread_mutex_unlock(&g_lock);
    (void)f, (void)gridDimX, (void)gridDimY, (void)gridDimZ, (void)blockDimX, (void)blockDimY;
    (void)blockDimZ, (void)sharedMemBytes, (void)hStream, (void)kernelParams, (void)extra;
    return CUDA_ERROR_NOT_SUPPORTED;
}

_Static_assert(MT_STANDIN_CUDA_ERROR_OUT_OF_MEMORY == CUDA_ERROR_OUT_OF_MEMORY, "cuda.h value");
_Static_assert(MT_STANDIN_CUDA_ERROR_LAUNCH_FAILED == CUDA_ERROR_LAUNCH_FAILED, "cuda.h value");
