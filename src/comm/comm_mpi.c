/* comm "mpi" backend: collectives over MPI on host buffers, run (blocking) by the
 * communicator's progress thread, so the caller's thread stays free to compute and to time
 * the collective out.
 *
 * Runtime: MPI is initialised with MPI_Init_thread asking for MPI_THREAD_MULTIPLE (the
 * progress threads and the caller's thread may all call MPI). When the library only grants
 * MPI_THREAD_SERIALIZED, collectives still work (only progress threads call MPI while
 * collectives are in flight), but the arrival check of a timed-out collective is skipped
 * (it would call MPI next to a blocked progress thread) and communicators must be created
 * and freed while no collective is in flight. Below SERIALIZED the backend refuses to start.
 * MPI stays initialised until the process exits (MPI cannot start twice in one process, so a
 * later mt_comm_world must still work); an atexit handler finalises it if mltrain initialised
 * it and every communicator was freed.
 *
 * Every communicator is a duplicate with MPI_ERRORS_RETURN; MPI errors become MT_ERR_COMM with
 * MPI_Error_string. Next to it live a side communicator (fingerprints of the debug mode) and
 * an arrival window: one uint64 per rank, allocated with MPI_Win_allocate and held in a
 * passive-target lock_all epoch, where each rank stores the number of the last collective it
 * started (a plain store: the unified memory model). A rank whose collective times out reads
 * every rank's word with MPI_Rget (osc/sm on one node reads the peer's memory directly, even
 * when that peer is stopped or dead), so the message names the ranks that never arrived.
 *
 * Dtypes: bool reduces as logical or (sum, max) and logical and (prod, min), as NumPy's bool
 * arithmetic does; integers and float32/64 use MPI's predefined types and ops; float16 and
 * bfloat16 use user-defined MPI ops that compute in float32 and round to nearest even after
 * every pairwise step (max/min propagate NaN). Counts above 2^30 elements are split into
 * several calls for allreduce and broadcast; allgather and reduce_scatter answer ERR_RANGE
 * above INT_MAX elements per rank. */
#include "mltrain/mt_config.h"

#include "comm_impl.h"

#if MT_HAVE_MPI
#include <limits.h>
#include <math.h>
#include <mpi.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct mpi_impl {
    MPI_Comm comm; /* collectives */
    MPI_Comm side; /* debug-mode fingerprints */
    MPI_Win win;   /* arrival words */
    bool have_win;
    uint64_t *entered;  /* this rank's word in the window */
    uint64_t *readbuf;  /* MPI_Rget targets (never freed while a read may be pending) */
    MPI_Request *reads;
    int rank, size;
} mpi_impl;

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static int g_refs;           /* communicators alive */
static bool g_we_init;       /* mltrain called MPI_Init_thread */
static bool g_leaked;        /* a communicator was abandoned after a timeout */
static int g_level;          /* thread level provided */
static bool g_types;         /* the 16-bit float types and ops exist */
static MPI_Datatype g_f16, g_bf16;
static MPI_Op g_hops[MT_REDUCE_OP_COUNT]; /* sum, prod, max, min */

static mt_status mpi_err(int rc, const char *fmt, const char *what)
{
    char s[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, s, &len) != MPI_SUCCESS) snprintf(s, sizeof s, "MPI error %d", rc);
    return mt_err_set(MT_ERR_COMM, fmt, what, s);
}
#define MPI_CHECK(call, what)                                                        \
    do {                                                                             \
        int rc_ = (call);                                                            \
        if (rc_ != MPI_SUCCESS) return mpi_err(rc_, "comm mpi: %s failed: %s", what); \
    } while (0)

/* ---------------------------------------------------------------- 16-bit float ops */

static float h2f(uint16_t v, bool bf) { return bf ? mt_bf16_to_f32(v) : mt_f16_to_f32(v); }
static uint16_t f2h(float v, bool bf) { return bf ? mt_f32_to_bf16(v) : mt_f32_to_f16(v); }

static void half_apply(const void *in, void *inout, int n, MPI_Datatype dt, mt_reduce_op op)
{
    bool bf = dt == g_bf16;
    const uint16_t *a = in;
    uint16_t *b = inout;
    for (int i = 0; i < n; i++) {
        float x = h2f(a[i], bf), y = h2f(b[i], bf), r;
        switch (op) {
        case MT_REDUCE_SUM: r = x + y; break;
        case MT_REDUCE_PROD: r = x * y; break;
        case MT_REDUCE_MAX: r = (isnan(x) || x > y) ? x : y; break;
        default: r = (isnan(x) || x < y) ? x : y; break;
        }
        b[i] = f2h(r, bf);
    }
}
static void half_sum(void *in, void *io, int *n, MPI_Datatype *dt)
{
    half_apply(in, io, *n, *dt, MT_REDUCE_SUM);
}
static void half_max(void *in, void *io, int *n, MPI_Datatype *dt)
{
    half_apply(in, io, *n, *dt, MT_REDUCE_MAX);
}
static void half_min(void *in, void *io, int *n, MPI_Datatype *dt)
{
    half_apply(in, io, *n, *dt, MT_REDUCE_MIN);
}
static void half_prod(void *in, void *io, int *n, MPI_Datatype *dt)
{
    half_apply(in, io, *n, *dt, MT_REDUCE_PROD);
}

static mt_status make_types(void)
{
    if (g_types) return MT_OK;
    MPI_CHECK(MPI_Type_contiguous(2, MPI_BYTE, &g_f16), "MPI_Type_contiguous");
    MPI_CHECK(MPI_Type_commit(&g_f16), "MPI_Type_commit");
    MPI_CHECK(MPI_Type_contiguous(2, MPI_BYTE, &g_bf16), "MPI_Type_contiguous");
    MPI_CHECK(MPI_Type_commit(&g_bf16), "MPI_Type_commit");
    MPI_CHECK(MPI_Op_create(half_sum, 1, &g_hops[MT_REDUCE_SUM]), "MPI_Op_create");
    MPI_CHECK(MPI_Op_create(half_prod, 1, &g_hops[MT_REDUCE_PROD]), "MPI_Op_create");
    MPI_CHECK(MPI_Op_create(half_max, 1, &g_hops[MT_REDUCE_MAX]), "MPI_Op_create");
    MPI_CHECK(MPI_Op_create(half_min, 1, &g_hops[MT_REDUCE_MIN]), "MPI_Op_create");
    g_types = true;
    return MT_OK;
}

static void free_types(void)
{
    if (!g_types) return;
    MPI_Op_free(&g_hops[MT_REDUCE_SUM]);
    MPI_Op_free(&g_hops[MT_REDUCE_PROD]);
    MPI_Op_free(&g_hops[MT_REDUCE_MAX]);
    MPI_Op_free(&g_hops[MT_REDUCE_MIN]);
    MPI_Type_free(&g_f16);
    MPI_Type_free(&g_bf16);
    g_types = false;
}

/* The MPI type that moves elements of dt (no arithmetic). */
static MPI_Datatype move_type(mt_dtype dt)
{
    switch (dt) {
    case MT_BOOL: case MT_UINT8: return MPI_UINT8_T;
    case MT_INT8: return MPI_INT8_T;
    case MT_INT16: return MPI_INT16_T;
    case MT_INT32: return MPI_INT32_T;
    case MT_INT64: return MPI_INT64_T;
    case MT_UINT16: return MPI_UINT16_T;
    case MT_UINT32: return MPI_UINT32_T;
    case MT_UINT64: return MPI_UINT64_T;
    case MT_FLOAT16: return g_f16;
    case MT_BFLOAT16: return g_bf16;
    case MT_FLOAT32: return MPI_FLOAT;
    case MT_FLOAT64: return MPI_DOUBLE;
    default: return MPI_DATATYPE_NULL;
    }
}

/* comm.c admits sum, prod, max, min (any dtype) and all, any (bool only). */
static MPI_Op reduce_op(mt_dtype dt, mt_reduce_op op)
{
    if (dt == MT_BOOL)
        return (op == MT_REDUCE_SUM || op == MT_REDUCE_MAX || op == MT_REDUCE_ANY) ? MPI_LOR
                                                                                  : MPI_LAND;
    if (dt == MT_FLOAT16 || dt == MT_BFLOAT16) return g_hops[op];
    switch (op) {
    case MT_REDUCE_SUM: return MPI_SUM;
    case MT_REDUCE_MAX: return MPI_MAX;
    case MT_REDUCE_MIN: return MPI_MIN;
    default: return MPI_PROD;
    }
}

/* ---------------------------------------------------------------- runtime */

bool mt__comm_mpi_built(void) { return true; }

bool mt__comm_mpi_initialized(void)
{
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    return init && !fin;
}

static void finalize_at_exit(void);

static mt_status runtime_up(void)
{
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (fin)
        return mt_err_set(MT_ERR_COMM, "comm mpi: MPI was finalised already (by the program); "
                                       "it cannot start twice in one process");
    if (!init) {
        int provided = 0;
        int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_MULTIPLE, &provided);
        if (rc != MPI_SUCCESS)
            return mt_err_set(MT_ERR_COMM, "comm mpi: MPI_Init_thread failed (error %d)", rc);
        g_we_init = true;
        atexit(finalize_at_exit);
        MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
        g_level = provided;
    } else {
        MPI_Query_thread(&g_level);
    }
    if (g_level < MPI_THREAD_SERIALIZED)
        return mt_err_set(MT_ERR_COMM, "comm mpi: MPI was initialised with thread level %d; "
                                       "mltrain needs MPI_THREAD_SERIALIZED or "
                                       "MPI_THREAD_MULTIPLE (its progress thread calls MPI)",
                          g_level);
    if (g_level < MPI_THREAD_MULTIPLE)
        mt_log(MT_LOG_WARN, "comm mpi: MPI grants MPI_THREAD_SERIALIZED only: timed-out "
                            "collectives will not name the ranks that did not arrive");
    return make_types();
}

static void impl_free_now(mpi_impl *m)
{
    if (m->have_win) {
        MPI_Win_unlock_all(m->win);
        MPI_Win_free(&m->win);
    }
    if (m->side != MPI_COMM_NULL) MPI_Comm_free(&m->side);
    if (m->comm != MPI_COMM_NULL) MPI_Comm_free(&m->comm);
    mt_free(m->readbuf);
    mt_free(m->reads);
    mt_free(m);
}

/* Wraps comm (owned from now on; already a private communicator) into backend state. */
static mt_status impl_new(mpi_impl **out, MPI_Comm comm)
{
    mpi_impl *m = mt_calloc(1, sizeof *m);
    if (!m) {
        MPI_Comm_free(&comm);
        return MT_ERR_NOMEM;
    }
    m->comm = comm;
    m->side = MPI_COMM_NULL;
    mt_status st = MT_OK;
    int rc = MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_rank(comm, &m->rank);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_size(comm, &m->size);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_dup(comm, &m->side);
    if (rc != MPI_SUCCESS) {
        st = mpi_err(rc, "comm mpi: %s failed: %s", "creating the communicator");
        goto fail;
    }
    m->readbuf = mt_calloc((size_t)m->size, sizeof *m->readbuf);
    m->reads = mt_calloc((size_t)m->size, sizeof *m->reads);
    if (!m->readbuf || !m->reads) {
        st = MT_ERR_NOMEM;
        goto fail;
    }
    /* the arrival window; without one, timeouts cannot name the missing ranks */
    void *base = NULL;
    rc = MPI_Win_allocate((MPI_Aint)sizeof(uint64_t), (int)sizeof(uint64_t), MPI_INFO_NULL,
                          m->side, &base, &m->win);
    if (rc == MPI_SUCCESS) {
        MPI_Win_set_errhandler(m->win, MPI_ERRORS_RETURN);
        m->entered = base;
        __atomic_store_n(m->entered, 0, __ATOMIC_RELEASE);
        rc = MPI_Win_lock_all(MPI_MODE_NOCHECK, m->win);
        if (rc == MPI_SUCCESS) {
            m->have_win = true;
        } else {
            MPI_Win_free(&m->win);
        }
    }
    if (!m->have_win)
        mt_log(MT_LOG_WARN, "comm mpi: no arrival window (one-sided MPI unavailable): timeouts "
                            "will not name the ranks that did not arrive");
    /* every rank must agree on having the window (it is collective to use and to free) */
    int mine = m->have_win, all = 0;
    rc = MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_MIN, m->side);
    if (rc != MPI_SUCCESS) {
        st = mpi_err(rc, "comm mpi: %s failed: %s", "MPI_Allreduce (window check)");
        goto fail;
    }
    if (m->have_win && !all) {
        MPI_Win_unlock_all(m->win);
        MPI_Win_free(&m->win);
        m->have_win = false;
    }
    *out = m;
    return MT_OK;
fail:
    impl_free_now(m);
    return st;
}

mt_status mt__comm_mpi_world(void **impl, int32_t *rank, int32_t *size)
{
    pthread_mutex_lock(&g_mu);
    mt_status st = runtime_up();
    MPI_Comm dup = MPI_COMM_NULL;
    if (st == MT_OK) {
        int rc = MPI_Comm_dup(MPI_COMM_WORLD, &dup);
        if (rc != MPI_SUCCESS) st = mpi_err(rc, "comm mpi: %s failed: %s", "MPI_Comm_dup");
    }
    mpi_impl *m = NULL;
    if (st == MT_OK) st = impl_new(&m, dup);
    if (st == MT_OK) g_refs++;
    pthread_mutex_unlock(&g_mu);
    if (st != MT_OK) return st;
    *impl = m;
    *rank = m->rank;
    *size = m->size;
    return MT_OK;
}

void mt__comm_mpi_retain_runtime(void)
{
    pthread_mutex_lock(&g_mu);
    g_refs++;
    pthread_mutex_unlock(&g_mu);
}

void mt__comm_mpi_release_runtime(void)
{
    pthread_mutex_lock(&g_mu);
    g_refs--;
    pthread_mutex_unlock(&g_mu);
}

/* At exit: finalise MPI when mltrain initialised it and every communicator was freed. With
 * communicators alive (a failed process leaving early) MPI_Finalize could wait for peers
 * that wait for this rank, so it is skipped and the launcher ends the job instead. */
static void finalize_at_exit(void)
{
    pthread_mutex_lock(&g_mu);
    if (g_refs == 0 && g_we_init && !g_leaked && mt__comm_mpi_initialized()) {
        free_types();
        MPI_Finalize();
    }
    pthread_mutex_unlock(&g_mu);
}

void mt__comm_mpi_abort_world(int code)
{
    if (mt__comm_mpi_initialized()) MPI_Abort(MPI_COMM_WORLD, code);
}

/* ---------------------------------------------------------------- the vtable */

static mt_status too_large(const char *what, int64_t n)
{
    return mt_err_set(MT_ERR_RANGE, "comm mpi: %s of %lld elements per rank exceeds MPI's int "
                                    "count (split it)", what, (long long)n);
}

static mt_status run_split(mpi_impl *m, mt__comm_op *op)
{
    MPI_Comm nc = MPI_COMM_NULL;
    MPI_CHECK(MPI_Comm_split(m->comm, op->color < 0 ? MPI_UNDEFINED : op->color, op->key, &nc),
              "MPI_Comm_split");
    op->split_impl = NULL;
    if (nc == MPI_COMM_NULL) return MT_OK;
    mpi_impl *n = NULL;
    mt_status st = impl_new(&n, nc);
    if (st != MT_OK) return st;
    op->split_impl = n;
    op->split_rank = n->rank;
    op->split_size = n->size;
    return MT_OK;
}

static mt_status mpi_run(void *impl, mt__comm_op *op)
{
    mpi_impl *m = impl;
    const int64_t chunk = (int64_t)1 << 30;
    MPI_Datatype t = move_type(op->dtype);
    size_t es = mt_dtype_size(op->dtype);
    switch (op->kind) {
    case MT__COMM_ALLREDUCE: {
        MPI_Op o = reduce_op(op->dtype, op->op);
        bool in_place = op->send == op->recv;
        int64_t off = 0;
        do { /* one call even for 0 elements: every rank takes part */
            int n = (int)(op->count - off < chunk ? op->count - off : chunk);
            const char *s = (const char *)op->send + (size_t)off * es;
            char *r = (char *)op->recv + (size_t)off * es;
            MPI_CHECK(MPI_Allreduce(in_place ? MPI_IN_PLACE : s, r, n, t, o, m->comm),
                      "MPI_Allreduce");
            off += chunk;
        } while (off < op->count);
        return MT_OK;
    }
    case MT__COMM_BROADCAST:
        for (int64_t off = 0; off < op->count; off += chunk) {
            int n = (int)(op->count - off < chunk ? op->count - off : chunk);
            MPI_CHECK(MPI_Bcast((char *)op->recv + (size_t)off * es, n, t, op->root, m->comm),
                      "MPI_Bcast");
        }
        return MT_OK;
    case MT__COMM_ALLGATHER:
        if (op->count > INT_MAX) return too_large("allgather", op->count);
        MPI_CHECK(MPI_Allgather(op->send, (int)op->count, t, op->recv, (int)op->count, t,
                                m->comm),
                  "MPI_Allgather");
        return MT_OK;
    case MT__COMM_REDUCE_SCATTER: {
        int64_t n = op->count / m->size;
        if (n > INT_MAX) return too_large("reduce_scatter", n);
        MPI_CHECK(MPI_Reduce_scatter_block(op->send, op->recv, (int)n, t,
                                           reduce_op(op->dtype, op->op), m->comm),
                  "MPI_Reduce_scatter_block");
        return MT_OK;
    }
    case MT__COMM_BARRIER:
        MPI_CHECK(MPI_Barrier(m->comm), "MPI_Barrier");
        return MT_OK;
    case MT__COMM_SPLIT:
        return run_split(m, op);
    default:
        return mt_err_set(MT_ERR_INTERNAL, "comm mpi: unknown collective kind %d", (int)op->kind);
    }
}

static mt_status mpi_exchange_fp(void *impl, const mt__comm_fp *mine, mt__comm_fp *all)
{
    mpi_impl *m = impl;
    MPI_CHECK(MPI_Allgather(mine, (int)sizeof *mine, MPI_BYTE, all, (int)sizeof *mine, MPI_BYTE,
                            m->side),
              "MPI_Allgather (fingerprints)");
    return MT_OK;
}

static void mpi_mark_entered(void *impl, uint64_t seq)
{
    mpi_impl *m = impl;
    if (m->have_win) __atomic_store_n(m->entered, seq, __ATOMIC_RELEASE);
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static mt_status mpi_read_entered(void *impl, uint64_t *entered, double budget_s)
{
    mpi_impl *m = impl;
    if (!m->have_win || g_level < MPI_THREAD_MULTIPLE)
        return mt_err_set(MT_ERR_UNSUPPORTED, "comm mpi: no arrival window");
    for (int r = 0; r < m->size; r++) {
        entered[r] = UINT64_MAX;
        m->reads[r] = MPI_REQUEST_NULL;
        if (r == m->rank) {
            entered[r] = __atomic_load_n(m->entered, __ATOMIC_ACQUIRE);
            continue;
        }
        if (MPI_Rget(&m->readbuf[r], 1, MPI_UINT64_T, r, 0, 1, MPI_UINT64_T, m->win,
                     &m->reads[r]) != MPI_SUCCESS)
            m->reads[r] = MPI_REQUEST_NULL;
    }
    double until = mono_s() + budget_s;
    int pending;
    do {
        pending = 0;
        for (int r = 0; r < m->size; r++) {
            if (m->reads[r] == MPI_REQUEST_NULL) continue;
            int done = 0;
            if (MPI_Test(&m->reads[r], &done, MPI_STATUS_IGNORE) != MPI_SUCCESS) {
                m->reads[r] = MPI_REQUEST_NULL; /* unknown */
                continue;
            }
            if (done)
                entered[r] = m->readbuf[r];
            else
                pending++;
        }
    } while (pending && mono_s() < until);
    return MT_OK;
}

static const void *mpi_native_handle(const void *impl) { return &((const mpi_impl *)impl)->comm; }

static void mpi_abort(void *impl, int code)
{
    (void)impl;
    MPI_Abort(MPI_COMM_WORLD, code);
}

static void mpi_free(void *impl, bool healthy)
{
    if (!impl) return;
    if (healthy) {
        impl_free_now(impl);
        return;
    }
    pthread_mutex_lock(&g_mu);
    g_leaked = true; /* a progress thread may sit inside MPI: never finalise */
    pthread_mutex_unlock(&g_mu);
}

/* Point-to-point control messages on the collectives' communicator (MPI keeps collective
 * and point-to-point traffic apart). The send is an MPI_Isend tested until it
 * completes or the deadline passes; the receive probes with MPI_Improbe and takes the matched
 * message with MPI_Mrecv, so a message is either consumed whole or left in place. */
static mt_status mpi_p2p_send(void *impl, int32_t dst, int32_t tag, const void *data,
                              size_t nbytes, double deadline)
{
    mpi_impl *m = impl;
    MPI_Request rq;
    MPI_CHECK(MPI_Isend(data, (int)nbytes, MPI_BYTE, dst, tag, m->comm, &rq), "MPI_Isend");
    double nap = 20e-6;
    for (;;) {
        int done = 0;
        MPI_CHECK(MPI_Test(&rq, &done, MPI_STATUS_IGNORE), "MPI_Test (send)");
        if (done) return MT_OK;
        if (mono_s() >= deadline) {
            MPI_Cancel(&rq);
            MPI_Request_free(&rq);
            return mt_err_set(MT_ERR_TIMEOUT, "comm mpi: a %zu-byte message (tag %d) to rank %d "
                                              "was not taken within the deadline",
                              nbytes, (int)tag, (int)dst);
        }
        struct timespec ts = {0, (long)(nap * 1e9)};
        nanosleep(&ts, NULL);
        if (nap < 2e-3) nap *= 2;
    }
}

static mt_status mpi_p2p_probe_recv(void *impl, int32_t src, int32_t tag, bool *got, void **data,
                                    size_t *nbytes, int32_t *src_out, int32_t *tag_out)
{
    mpi_impl *m = impl;
    *got = false;
    int flag = 0;
    MPI_Message msg;
    MPI_Status status;
    MPI_CHECK(MPI_Improbe(src < 0 ? MPI_ANY_SOURCE : src, tag < 0 ? MPI_ANY_TAG : tag, m->comm,
                          &flag, &msg, &status),
              "MPI_Improbe");
    if (!flag) return MT_OK;
    int count = 0;
    MPI_CHECK(MPI_Get_count(&status, MPI_BYTE, &count), "MPI_Get_count");
    char *buf = mt_malloc((size_t)count + 1);
    if (!buf) {
        char dummy;
        MPI_Mrecv(&dummy, 0, MPI_BYTE, &msg, MPI_STATUS_IGNORE); /* truncated: dropped */
        return mt_err_set(MT_ERR_NOMEM, "comm mpi: receiving a %d-byte message", count);
    }
    int rc = MPI_Mrecv(buf, count, MPI_BYTE, &msg, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) {
        mt_free(buf);
        return mpi_err(rc, "comm mpi: %s failed: %s", "MPI_Mrecv");
    }
    buf[count] = 0;
    *got = true;
    *data = buf;
    *nbytes = (size_t)count;
    *src_out = status.MPI_SOURCE;
    *tag_out = status.MPI_TAG;
    return MT_OK;
}

const mt__comm_ops mt__comm_mpi_ops = {
    .abi_version = MT__COMM_ABI_VERSION,
    .name = "mpi",
    .device_buffers = false,
    .progress_thread = true,
    .p2p_send = mpi_p2p_send,
    .p2p_probe_recv = mpi_p2p_probe_recv,
    .run = mpi_run,
    .exchange_fp = mpi_exchange_fp,
    .mark_entered = mpi_mark_entered,
    .read_entered = mpi_read_entered,
    .native_handle = mpi_native_handle,
    .abort = mpi_abort,
    .free = mpi_free,
};

#else /* !MT_HAVE_MPI */

bool mt__comm_mpi_built(void) { return false; }
bool mt__comm_mpi_initialized(void) { return false; }
mt_status mt__comm_mpi_world(void **impl, int32_t *rank, int32_t *size)
{
    (void)impl, (void)rank, (void)size;
    return mt_err_set(MT_ERR_NOT_BUILT, "comm: this mltrain was built without MPI (reconfigure "
                                        "with -DMT_WITH_MPI=ON)");
}
void mt__comm_mpi_retain_runtime(void) {}
void mt__comm_mpi_release_runtime(void) {}
void mt__comm_mpi_abort_world(int code) { (void)code; }

static mt_status nompi_run(void *impl, mt__comm_op *op)
{
    (void)impl, (void)op;
    return mt_err_set(MT_ERR_NOT_BUILT, "comm: built without MPI");
}
static void nompi_free(void *impl, bool healthy) { (void)impl, (void)healthy; }

const mt__comm_ops mt__comm_mpi_ops = {
    .abi_version = MT__COMM_ABI_VERSION,
    .name = "mpi",
    .progress_thread = false,
    .run = nompi_run,
    .free = nompi_free,
};

#endif
