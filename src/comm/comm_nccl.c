/* comm "nccl" backend: collectives on CUDA device memory through NCCL, next to a
 * communicator's MPI (or local) backend (mt_comm_use_device binds it; comm.c bootstraps it by
 * broadcasting rank 0's ncclUniqueId over the host backend).
 *
 * NCCL is never linked: libnccl.so.2 ($MLTRAIN_LIBNCCL first) is dlopen'ed on first use and
 * every entry point is resolved by name, each pointer typed with __typeof__ of nccl.h's
 * declaration (a wrong signature is a compile error), so the same binary runs where NCCL is
 * absent and simply stages device arrays through MPI there.
 *
 * Streams: each communicator owns a communication stream on its device. A start records an
 * event on the device's compute stream, makes the communication stream wait for it, enqueues
 * the NCCL call there and records a "done" event behind it, so the collective reads what the
 * kernels queued before the start wrote, while kernels queued afterwards (the rest of the
 * backward pass) run next to it. comm.c's wait makes the compute stream wait for "done" and
 * polls it. Events come from a small per-communicator pool (created without timing).
 *
 * Failures: the NCCL communicator is created non-blocking (ncclConfig_t.blocking = 0), so no
 * NCCL call can block the caller indefinitely: calls that answer ncclInProgress are settled by
 * polling ncclCommGetAsyncError with the communicator's deadline, and every poll of a pending
 * collective also reads the asynchronous error, so a peer that died or a network failure ends
 * the wait with NCCL's message instead of a hang. After a failure or timeout comm.c calls
 * dev_abort (ncclCommAbort). Compiled as stubs without MT_HAVE_NCCL. */
#include "mltrain/mt_config.h"

#include <stdio.h>
#include <string.h>

#include "comm_impl.h"

/* X(member, symbol) of every NCCL entry point resolved. */
#define MT__NCCL_SYMS(X)                          \
    X(GetVersion, ncclGetVersion)                 \
    X(GetUniqueId, ncclGetUniqueId)               \
    X(CommInitRankConfig, ncclCommInitRankConfig) \
    X(CommFinalize, ncclCommFinalize)             \
    X(CommDestroy, ncclCommDestroy)               \
    X(CommAbort, ncclCommAbort)                   \
    X(CommGetAsyncError, ncclCommGetAsyncError)   \
    X(GetErrorString, ncclGetErrorString)         \
    X(GetLastError, ncclGetLastError)             \
    X(AllReduce, ncclAllReduce)                   \
    X(Broadcast, ncclBroadcast)                   \
    X(AllGather, ncclAllGather)                   \
    X(ReduceScatter, ncclReduceScatter)

const char *const *mt__comm_nccl_symbols(void)
{
    static const char *const names[] = {
#define MT__NCCL_NAME(member, sym) #sym,
        MT__NCCL_SYMS(MT__NCCL_NAME)
#undef MT__NCCL_NAME
        NULL};
    return names;
}

#if MT_HAVE_NCCL
#include <dlfcn.h>
#include <nccl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "../gpuarray/cuda_interop.h"

_Static_assert(sizeof(ncclUniqueId) == MT__NCCL_ID_BYTES, "ncclUniqueId size");

/* ncclCommInitRankConfig with a non-blocking config, ncclGetLastError: NCCL 2.14 */
#define MIN_VERSION 21400

typedef struct nccl_api {
#define MT__NCCL_MEMBER(member, sym) __typeof__(&sym) member;
    MT__NCCL_SYMS(MT__NCCL_MEMBER)
#undef MT__NCCL_MEMBER
} nccl_api;

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static nccl_api g_api;
static bool g_ok;
static int g_version;
static char g_why[1024];

static void load_once(void)
{
    const char *env = getenv("MLTRAIN_LIBNCCL");
    const char *names[] = {env, "libnccl.so.2"};
    void *h = NULL;
    size_t used = 0;
    for (int i = 0; i < 2 && !h; i++) {
        if (!names[i] || !*names[i]) continue;
        h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
        if (!h && used + 8 < sizeof g_why) {
            const char *e = dlerror();
            used += (size_t)snprintf(g_why + used, sizeof g_why - used, "%s%s", used ? "; " : "",
                                     e ? e : names[i]);
        }
    }
    if (!h) return; /* g_why holds dlopen's messages */
    g_why[0] = 0;
#define MT__NCCL_RESOLVE(member, sym)                                                        \
    if (!(g_api.member = (__typeof__(g_api.member))dlsym(h, #sym))) {                         \
        snprintf(g_why, sizeof g_why, "libnccl.so.2 lacks %s (NCCL older than 2.14?)", #sym); \
        goto fail;                                                                           \
    }
    MT__NCCL_SYMS(MT__NCCL_RESOLVE)
#undef MT__NCCL_RESOLVE
    if (g_api.GetVersion(&g_version) != ncclSuccess) {
        snprintf(g_why, sizeof g_why, "ncclGetVersion failed");
        goto fail;
    }
    if (g_version < MIN_VERSION) {
        snprintf(g_why, sizeof g_why, "NCCL %d is too old (mltrain needs 2.14 or newer)",
                 g_version);
        goto fail;
    }
    g_ok = true; /* stays loaded for the life of the process */
    return;
fail:
    memset(&g_api, 0, sizeof g_api);
    dlclose(h);
}

static const nccl_api *api(void)
{
    pthread_once(&g_once, load_once);
    return g_ok ? &g_api : NULL;
}

mt_status mt__comm_nccl_version(int *version)
{
    *version = 0;
    if (!api()) return mt_err_set(MT_ERR_NOT_FOUND, "NCCL is not available: %s", g_why);
    *version = g_version;
    return MT_OK;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void nap(double s)
{
    struct timespec ts = {0, (long)(s * 1e9)};
    nanosleep(&ts, NULL);
}

/* "ncclUnhandledCudaError: unhandled cuda error (run with NCCL_DEBUG=INFO for details)" plus
 * NCCL's last message when it has one. */
static mt_status nccl_fail(mt_status code, ncclResult_t r, ncclComm_t comm, const char *fmt,
                           const char *what)
{
    const nccl_api *a = &g_api;
    const char *s = a->GetErrorString ? a->GetErrorString(r) : "unknown";
    const char *last = a->GetLastError ? a->GetLastError(comm) : NULL;
    char head[256];
    snprintf(head, sizeof head, fmt, what);
    return mt_err_set(code, "%s: NCCL error %d (%s)%s%s", head, (int)r, s ? s : "?",
                      last && *last ? ": " : "", last && *last ? last : "");
}

/* ---------------------------------------------------------------- bootstrap */

bool mt__comm_nccl_usable(mt_device *dev, mt_status *code, char *why, size_t len)
{
    if (!api()) {
        *code = MT_ERR_NOT_FOUND;
        snprintf(why, len, "NCCL cannot be loaded: %s", g_why);
        return false;
    }
    if (!mt__cuda_device_is_cuda(dev)) {
        *code = MT_ERR_UNSUPPORTED;
        snprintf(why, len, "its device %s is not a CUDA device (NCCL works on cuda:N only)",
                 dev ? mt_device_name(dev) : "(none)");
        return false;
    }
    return true;
}

mt_status mt__comm_nccl_unique_id(uint8_t id[MT__NCCL_ID_BYTES])
{
    const nccl_api *a = api();
    if (!a) return mt_err_set(MT_ERR_NOT_FOUND, "NCCL is not available: %s", g_why);
    ncclUniqueId u;
    ncclResult_t r = a->GetUniqueId(&u);
    if (r != ncclSuccess) return nccl_fail(MT_ERR_COMM, r, NULL, "%s", "ncclGetUniqueId");
    memcpy(id, &u, sizeof u);
    return MT_OK;
}

typedef struct nccl_pending {
    void *ready, *done; /* events: on the compute stream, behind the collective */
} nccl_pending;

typedef struct nccl_impl {
    const nccl_api *a;
    mt_device *dev; /* holds a reference */
    ncclComm_t comm;
    void *stream;  /* communication stream */
    void *compute; /* the device's compute stream (borrowed) */
    int rank, size;
    _Atomic double timeout_s; /* set from any thread (mt_comm_set_timeout) */
    pthread_mutex_t mu; /* NCCL calls on one communicator are not thread-safe */
    bool aborted;
    void **pool; /* free events */
    int npool, cap;
} nccl_impl;

/* Polls the communicator's state until it leaves ncclInProgress or the deadline passes. */
static ncclResult_t settle(nccl_impl *n, double deadline, bool *timed_out)
{
    ncclResult_t st = ncclInProgress;
    double wait = 1e-5;
    *timed_out = false;
    for (;;) {
        if (n->a->CommGetAsyncError(n->comm, &st) != ncclSuccess) return ncclInternalError;
        if (st != ncclInProgress) return st;
        if (now_s() > deadline) {
            *timed_out = true;
            return ncclInProgress;
        }
        nap(wait);
        if (wait < 1e-3) wait *= 2;
    }
}

static double deadline_of(double timeout_s)
{
    return timeout_s > 0 ? now_s() + timeout_s : 1e300;
}

mt_status mt__comm_nccl_prepare(void **impl, mt_device *dev, int32_t rank, int32_t size,
                                double timeout_s)
{
    *impl = NULL;
    mt_status code;
    char why[512];
    if (!mt__comm_nccl_usable(dev, &code, why, sizeof why))
        return mt_err_set(code, "comm nccl: %s", why);
    nccl_impl *n = mt_calloc(1, sizeof *n);
    if (!n) return MT_ERR_NOMEM;
    n->a = api();
    n->rank = rank;
    n->size = size;
    atomic_store(&n->timeout_s, timeout_s);
    n->aborted = true; /* no communicator yet: nothing to finalize or abort */
    pthread_mutex_init(&n->mu, NULL);
    mt_status st = mt__cuda_device_bind(dev);
    if (st == MT_OK) st = mt__cuda_aux_stream_new(dev, &n->stream);
    if (st != MT_OK) {
        pthread_mutex_destroy(&n->mu);
        mt_free(n);
        return mt_err_prefix(st, "comm nccl: ");
    }
    mt_device_retain(dev);
    n->dev = dev;
    n->compute = mt__cuda_compute_stream(dev);
    *impl = n;
    return MT_OK;
}

mt_status mt__comm_nccl_join(void *impl, const uint8_t id[MT__NCCL_ID_BYTES])
{
    nccl_impl *n = impl;
    mt_status st = mt__cuda_device_bind(n->dev);
    if (st != MT_OK) return mt_err_prefix(st, "comm nccl: ");
    ncclUniqueId u;
    memcpy(&u, id, sizeof u);
    ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
    cfg.blocking = 0;
    /* NCCL takes the device from the context current on this thread (bound above) */
    ncclComm_t comm = NULL;
    ncclResult_t r = n->a->CommInitRankConfig(&comm, (int)n->size, u, (int)n->rank, &cfg);
    n->comm = comm;
    bool timed_out = false;
    if (r == ncclInProgress || (r == ncclSuccess && n->comm))
        r = settle(n, deadline_of(atomic_load(&n->timeout_s)), &timed_out);
    if (r == ncclSuccess) {
        n->aborted = false;
        return MT_OK;
    }
    if (timed_out)
        st = mt_err_set(MT_ERR_TIMEOUT, "comm nccl: setting up the NCCL communicator on %s "
                        "(rank %d of %d) did not finish within %g s: a rank did not join "
                        "(every rank must call mt_comm_use_device) or the network between "
                        "the ranks does not work (NCCL_DEBUG=INFO tells more)",
                        mt_device_name(n->dev), (int)n->rank, (int)n->size,
                        atomic_load(&n->timeout_s));
    else
        st = nccl_fail(MT_ERR_COMM, r, n->comm, "comm nccl: %s", "ncclCommInitRankConfig");
    if (n->comm) n->a->CommAbort(n->comm);
    n->comm = NULL;
    return st;
}

mt_status mt__comm_nccl_new(void **impl, mt_device *dev, const uint8_t id[MT__NCCL_ID_BYTES],
                            int32_t rank, int32_t size, double timeout_s)
{
    mt_status st = mt__comm_nccl_prepare(impl, dev, rank, size, timeout_s);
    if (st == MT_OK) st = mt__comm_nccl_join(*impl, id);
    if (st != MT_OK && *impl) {
        mt__comm_nccl_ops.free(*impl, false);
        *impl = NULL;
    }
    return st;
}

/* ---------------------------------------------------------------- collectives */

static bool nccl_type(mt_dtype dt, ncclDataType_t *t)
{
    switch (dt) {
    case MT_BOOL: case MT_UINT8: *t = ncclUint8; return true;
    case MT_INT8: *t = ncclInt8; return true;
    case MT_INT32: *t = ncclInt32; return true;
    case MT_UINT32: *t = ncclUint32; return true;
    case MT_INT64: *t = ncclInt64; return true;
    case MT_UINT64: *t = ncclUint64; return true;
    case MT_FLOAT16: *t = ncclFloat16; return true;
    case MT_BFLOAT16: *t = ncclBfloat16; return true;
    case MT_FLOAT32: *t = ncclFloat32; return true;
    case MT_FLOAT64: *t = ncclFloat64; return true;
    default: return false; /* int16, uint16: staged */
    }
}

/* bool holds 0/1: or = max, and = min (NumPy's bool arithmetic, as the MPI backend). */
static ncclRedOp_t nccl_op(mt_dtype dt, mt_reduce_op op)
{
    if (dt == MT_BOOL)
        return (op == MT_REDUCE_SUM || op == MT_REDUCE_MAX || op == MT_REDUCE_ANY) ? ncclMax
                                                                                  : ncclMin;
    switch (op) {
    case MT_REDUCE_PROD: return ncclProd;
    case MT_REDUCE_MAX: return ncclMax;
    case MT_REDUCE_MIN: return ncclMin;
    default: return ncclSum;
    }
}

static bool nccl_accepts(void *impl, mt__comm_kind kind, mt_dtype dt, mt_reduce_op op)
{
    (void)impl, (void)op;
    ncclDataType_t t;
    if (!nccl_type(dt, &t)) return false;
    return kind == MT__COMM_ALLREDUCE || kind == MT__COMM_BROADCAST ||
           kind == MT__COMM_ALLGATHER || kind == MT__COMM_REDUCE_SCATTER;
}

static mt_status event_get(nccl_impl *n, void **ev)
{
    if (n->npool > 0) {
        *ev = n->pool[--n->npool];
        return MT_OK;
    }
    return mt__cuda_sync_event_new(n->dev, ev);
}

static void event_put(nccl_impl *n, void *ev)
{
    if (!ev) return;
    if (n->npool == n->cap) {
        int ncap = n->cap ? 2 * n->cap : 16;
        void **g = mt_realloc(n->pool, sizeof *g * (size_t)ncap);
        if (!g) {
            mt__cuda_sync_event_free(n->dev, ev);
            return;
        }
        n->pool = g;
        n->cap = ncap;
    }
    n->pool[n->npool++] = ev;
}

static mt_status array_address(const mt_array *a, void **addr)
{
    return mt__cuda_buffer_address(a->buf, a->offset, addr);
}

/* Enqueues the NCCL call of op on the communication stream (mutex held). */
static ncclResult_t enqueue(nccl_impl *n, const mt__comm_op *op, void *sp, void *rp)
{
    const nccl_api *a = n->a;
    ncclDataType_t t = ncclUint8;
    nccl_type(op->dtype, &t);
    ncclRedOp_t o = nccl_op(op->dtype, op->op);
    size_t count = (size_t)op->count;
    cudaStream_t s = (cudaStream_t)n->stream;
    switch (op->kind) {
    case MT__COMM_ALLREDUCE: return a->AllReduce(sp, rp, count, t, o, n->comm, s);
    case MT__COMM_BROADCAST: return a->Broadcast(rp, rp, count, t, op->root, n->comm, s);
    case MT__COMM_ALLGATHER: return a->AllGather(sp, rp, count, t, n->comm, s);
    case MT__COMM_REDUCE_SCATTER:
        return a->ReduceScatter(sp, rp, count / (size_t)n->size, t, o, n->comm, s);
    default: return ncclInvalidUsage;
    }
}

static mt_status nccl_start(void *impl, mt__comm_op *op, void **pending)
{
    nccl_impl *n = impl;
    *pending = NULL;
    const char *what = mt__comm_kind_name(op->kind);
    void *sp = NULL, *rp = NULL;
    mt_status st = MT_OK;
    if (op->send_arr) st = array_address(op->send_arr, &sp);
    if (st == MT_OK) st = array_address(op->recv_arr, &rp);
    if (st != MT_OK) return mt_err_prefix(st, "comm nccl: %s: ", what);
    nccl_pending *p = mt_calloc(1, sizeof *p);
    if (!p) return MT_ERR_NOMEM;
    pthread_mutex_lock(&n->mu);
    if (n->aborted) {
        pthread_mutex_unlock(&n->mu);
        mt_free(p);
        return mt_err_set(MT_ERR_COMM, "comm nccl: %s: the NCCL communicator was aborted after "
                          "an earlier failure", what);
    }
    st = mt__cuda_device_bind(n->dev);
    if (st == MT_OK) st = event_get(n, &p->ready);
    if (st == MT_OK) st = event_get(n, &p->done);
    /* the collective starts after everything queued on the compute stream so far */
    if (st == MT_OK) st = mt__cuda_sync_event_record(n->dev, p->ready, n->compute);
    if (st == MT_OK) st = mt__cuda_stream_wait_event(n->dev, n->stream, p->ready);
    if (st == MT_OK) {
        ncclResult_t r = enqueue(n, op, sp, rp);
        bool timed_out = false;
        if (r == ncclInProgress)
            r = settle(n, deadline_of(atomic_load(&n->timeout_s)), &timed_out);
        if (timed_out)
            st = mt_err_set(MT_ERR_TIMEOUT, "comm nccl: enqueueing %s on %s did not finish "
                            "within %g s (a peer does not answer)", what,
                            mt_device_name(n->dev), atomic_load(&n->timeout_s));
        else if (r != ncclSuccess)
            st = nccl_fail(MT_ERR_COMM, r, n->comm, "comm nccl: %s", what);
    }
    if (st == MT_OK) st = mt__cuda_sync_event_record(n->dev, p->done, n->stream);
    if (st != MT_OK) {
        event_put(n, p->ready);
        event_put(n, p->done);
        pthread_mutex_unlock(&n->mu);
        mt_free(p);
        return st;
    }
    pthread_mutex_unlock(&n->mu);
    *pending = p;
    return MT_OK;
}

static mt_status nccl_order(void *impl, void *pending)
{
    nccl_impl *n = impl;
    nccl_pending *p = pending;
    pthread_mutex_lock(&n->mu);
    mt_status st = mt__cuda_stream_wait_event(n->dev, n->compute, p->done);
    pthread_mutex_unlock(&n->mu);
    return st;
}

static mt_status nccl_poll(void *impl, void *pending, bool *done)
{
    nccl_impl *n = impl;
    nccl_pending *p = pending;
    *done = false;
    pthread_mutex_lock(&n->mu);
    mt_status st = MT_OK;
    if (n->aborted) {
        st = mt_err_set(MT_ERR_COMM, "the NCCL communicator was aborted");
    } else {
        st = mt__cuda_event_query(n->dev, p->done, done);
        if (st == MT_OK && !*done) {
            ncclResult_t as = ncclSuccess;
            ncclResult_t r = n->a->CommGetAsyncError(n->comm, &as);
            if (r != ncclSuccess)
                st = nccl_fail(MT_ERR_COMM, r, n->comm, "%s", "ncclCommGetAsyncError");
            else if (as != ncclSuccess && as != ncclInProgress)
                st = nccl_fail(MT_ERR_COMM, as, n->comm, "%s",
                               "NCCL reported an asynchronous error (a peer failed or the "
                               "network between the ranks broke)");
        }
    }
    pthread_mutex_unlock(&n->mu);
    return st;
}

static void nccl_release(void *impl, void *pending)
{
    nccl_impl *n = impl;
    nccl_pending *p = pending;
    if (!p) return;
    pthread_mutex_lock(&n->mu);
    event_put(n, p->ready);
    event_put(n, p->done);
    pthread_mutex_unlock(&n->mu);
    mt_free(p);
}

static void nccl_abort(void *impl)
{
    nccl_impl *n = impl;
    pthread_mutex_lock(&n->mu);
    if (!n->aborted) {
        n->aborted = true;
        if (mt__cuda_device_bind(n->dev) == MT_OK) {
            ncclResult_t r = n->a->CommAbort(n->comm);
            if (r != ncclSuccess)
                mt_log(MT_LOG_WARN, "comm nccl: ncclCommAbort on %s: %s", mt_device_name(n->dev),
                       n->a->GetErrorString(r));
        }
    }
    pthread_mutex_unlock(&n->mu);
}

static void nccl_set_timeout(void *impl, double timeout_s)
{
    nccl_impl *n = impl;
    atomic_store(&n->timeout_s, timeout_s); /* no lock: a settle() may hold it for a while */
}

static void nccl_free(void *impl, bool healthy)
{
    nccl_impl *n = impl;
    if (!n) return;
    if (!healthy) nccl_abort(n);
    pthread_mutex_lock(&n->mu);
    bool bound = mt__cuda_device_bind(n->dev) == MT_OK;
    if (!n->aborted && !bound) { /* no context: abort rather than leak the communicator */
        n->a->CommAbort(n->comm);
        n->aborted = true;
    }
    if (!n->aborted && bound) {
        /* finish queued work, then leave the communicator together with the peers */
        ncclResult_t r = n->a->CommFinalize(n->comm);
        bool timed_out = false;
        if (r == ncclInProgress || r == ncclSuccess)
            r = settle(n, deadline_of(atomic_load(&n->timeout_s)), &timed_out);
        if (r == ncclSuccess) {
            n->a->CommDestroy(n->comm);
        } else {
            mt_log(MT_LOG_WARN, "comm nccl: ncclCommFinalize on %s: %s; aborting it",
                   mt_device_name(n->dev), timed_out ? "timed out" : n->a->GetErrorString(r));
            n->a->CommAbort(n->comm);
        }
        n->aborted = true;
    }
    if (bound && healthy) {
        mt_status st = mt__cuda_aux_stream_sync(n->dev, n->stream);
        if (st != MT_OK) mt_log(MT_LOG_WARN, "comm nccl: %s", mt_last_error());
    }
    for (int i = 0; i < n->npool; i++) mt__cuda_sync_event_free(n->dev, n->pool[i]);
    mt_free(n->pool);
    mt__cuda_aux_stream_free(n->dev, n->stream);
    pthread_mutex_unlock(&n->mu);
    pthread_mutex_destroy(&n->mu);
    mt_device_release(n->dev);
    mt_free(n);
}

static mt_status nccl_run(void *impl, mt__comm_op *op)
{
    (void)impl;
    return mt_err_set(MT_ERR_INTERNAL, "comm nccl: %s has no blocking form (device backend)",
                      mt__comm_kind_name(op->kind));
}

const mt__comm_ops mt__comm_nccl_ops = {
    .abi_version = MT__COMM_ABI_VERSION,
    .name = "nccl",
    .device_buffers = true,
    .progress_thread = false,
    .run = nccl_run,
    .free = nccl_free,
    .dev_accepts = nccl_accepts,
    .dev_start = nccl_start,
    .dev_order = nccl_order,
    .dev_poll = nccl_poll,
    .dev_release = nccl_release,
    .dev_abort = nccl_abort,
    .dev_set_timeout = nccl_set_timeout,
};

#else /* !MT_HAVE_NCCL */

static const char k_not_built[] = "this mltrain was built without NCCL (reconfigure with "
                                  "-DMT_WITH_CUDA=ON -DMT_WITH_NCCL=ON where nccl.h exists)";

bool mt__comm_nccl_usable(mt_device *dev, mt_status *code, char *why, size_t len)
{
    (void)dev;
    *code = MT_ERR_NOT_BUILT;
    snprintf(why, len, "%s", k_not_built);
    return false;
}

mt_status mt__comm_nccl_unique_id(uint8_t id[MT__NCCL_ID_BYTES])
{
    (void)id;
    return mt_err_set(MT_ERR_NOT_BUILT, "%s", k_not_built);
}

mt_status mt__comm_nccl_prepare(void **impl, mt_device *dev, int32_t rank, int32_t size,
                                double timeout_s)
{
    (void)dev, (void)rank, (void)size, (void)timeout_s;
    *impl = NULL;
    return mt_err_set(MT_ERR_NOT_BUILT, "%s", k_not_built);
}

mt_status mt__comm_nccl_join(void *impl, const uint8_t id[MT__NCCL_ID_BYTES])
{
    (void)impl, (void)id;
    return mt_err_set(MT_ERR_NOT_BUILT, "%s", k_not_built);
}

mt_status mt__comm_nccl_new(void **impl, mt_device *dev, const uint8_t id[MT__NCCL_ID_BYTES],
                            int32_t rank, int32_t size, double timeout_s)
{
    (void)dev, (void)id, (void)rank, (void)size, (void)timeout_s;
    *impl = NULL;
    return mt_err_set(MT_ERR_NOT_BUILT, "%s", k_not_built);
}

mt_status mt__comm_nccl_version(int *version)
{
    *version = 0;
    return mt_err_set(MT_ERR_NOT_BUILT, "%s", k_not_built);
}

static mt_status nonccl_run(void *impl, mt__comm_op *op)
{
    (void)impl, (void)op;
    return mt_err_set(MT_ERR_NOT_BUILT, "%s", k_not_built);
}
static void nonccl_free(void *impl, bool healthy) { (void)impl, (void)healthy; }

const mt__comm_ops mt__comm_nccl_ops = {
    .abi_version = MT__COMM_ABI_VERSION,
    .name = "nccl",
    .device_buffers = true,
    .progress_thread = false,
    .run = nonccl_run,
    .free = nonccl_free,
};

#endif
