/* comm: communicators, the backend-independent half. It validates arguments, stages arrays
 * on non-host devices through host buffers, numbers every collective, queues started
 * collectives for the communicator's progress thread (which runs them in order through the
 * backend vtable, so a started collective progresses while the caller computes), and waits
 * for them with a deadline. A collective that misses its deadline fails with MT_ERR_TIMEOUT
 * and a message naming the operation, its sequence number, its size and the ranks that never
 * started it (read through the backend's side channel); the communicator is then broken and
 * the caller is expected to stop the job (mt_comm_abort). In debug mode every collective is
 * preceded by an all-gather of a fingerprint (op, dtype, count, root, sequence number), so a
 * mismatched call fails on every rank with both calls named instead of hanging or returning
 * wrong sums.
 *
 * Device collectives: a communicator bound to a device (mt_comm_use_device) hands collectives
 * on that device's arrays to a device backend ("nccl", comm_nccl.c) instead of staging them:
 * they are numbered and given deadlines like the others, enqueued at once on the device (no
 * progress thread), and mt_comm_wait polls them, aborting the device backend and breaking the
 * communicator when one fails or misses its deadline. Binding is collective: the ranks agree,
 * through the host backend, on NCCL or staging and on the reason when it is staging.
 *
 * Hand-off cost: the progress thread spins for a short while (MLTRAIN_COMM_SPIN_US, default
 * 50 us) after each collective before sleeping on its condition variable, and mt_comm_wait
 * spins as long before sleeping, so back-to-back small collectives pay no futex wake-up. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "comm_impl.h"
#include "mltrain/comm.h"

struct mt_comm_req {
    mt_comm *comm;
    mt__comm_op op;
    uint64_t seq;
    double deadline; /* monotonic seconds; INFINITY = none */
    double timeout_s;
    _Atomic int done;
    bool abandoned; /* the waiter gave up (timeout): whoever finishes it frees it */
    mt_status status;
    char msg[MT_ERR_MSG_MAX];
    mt_comm_req *next;
    void *stage_send, *stage_recv; /* host staging buffers (owned) */
    mt_array recv_arr;             /* staged result goes back here in mt_comm_wait */
    size_t recv_bytes;
    void *dev_pending; /* a collective of the device backend (comm->dev_ops), else NULL */
};

struct mt_comm {
    const mt__comm_ops *ops;
    void *impl;
    int32_t rank, size;
    double timeout_s;
    bool check;
    bool counts_mpi; /* holds a reference on the MPI runtime */
    pthread_mutex_t mu;
    pthread_cond_t work_cv, done_cv;
    mt_comm_req *head, *tail;
    _Atomic int64_t nqueued;
    int64_t inflight; /* started, not yet completed */
    bool stop, thread_started;
    pthread_t thread;
    uint64_t seq;
    _Atomic bool broken;
    char broken_msg[256];
    /* mt_comm_use_device: the bound device (a reference) and, when its arrays go through a
     * device backend (NCCL), that backend; NULL dev_ops: staged */
    mt_device *dev;
    const mt__comm_ops *dev_ops;
    void *dev_impl;
};

/* ---------------------------------------------------------------- names and time */

const char *mt__comm_kind_name(mt__comm_kind k)
{
    static const char *const names[] = {
#define MT__COMM_KIND_STR(name, str) str,
        MT__COMM_KIND_MAP(MT__COMM_KIND_STR)
#undef MT__COMM_KIND_STR
    };
    return (unsigned)k < MT__COMM_KIND_COUNT ? names[k] : "invalid";
}

const char *mt__comm_reduce_name(mt_reduce_op op) { return mt_reduce_op_name(op); }

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* One step of a spin-wait: yield the CPU. A pause-only spin measured worse on a loaded
 * machine (the spinning thread kept the core from the peer's MPI progress: 1 MiB all-reduce
 * medians of 2-3 ms instead of 0.2 ms); sched_yield returns at once when nothing else waits. */
static void spin_pause(unsigned *k)
{
    (void)k;
    sched_yield();
}

static double spin_s(void)
{
    static _Atomic int cached = -1; /* microseconds; read once */
    int us = atomic_load_explicit(&cached, memory_order_relaxed);
    if (us < 0) {
        const char *e = getenv("MLTRAIN_COMM_SPIN_US");
        us = e && *e ? atoi(e) : 50;
        if (us < 0) us = 0;
        atomic_store_explicit(&cached, us, memory_order_relaxed);
    }
    return 1e-6 * us;
}

/* ---------------------------------------------------------------- launch info and options */

static bool env_i64(const char *name, int64_t *out)
{
    const char *s = getenv(name);
    if (!s || !*s) return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s) return false;
    *out = v;
    return true;
}

/* SLURM_TASKS_PER_NODE looks like "2(x3),1": the first count is this layout's common case. */
static bool env_first_count(const char *name, int64_t *out)
{
    const char *s = getenv(name);
    if (!s || !*s) return false;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (end == s || v <= 0) return false;
    *out = v;
    return true;
}

void mt_launch_info_get(mt_launch_info *out)
{
    int64_t r = 0, n = 1, lr = 0, ln = 1, job = -1;
    out->launcher = "none";
    if (env_i64("OMPI_COMM_WORLD_RANK", &r) && env_i64("OMPI_COMM_WORLD_SIZE", &n)) {
        out->launcher = "openmpi";
        if (!env_i64("OMPI_COMM_WORLD_LOCAL_RANK", &lr)) lr = r;
        if (!env_i64("OMPI_COMM_WORLD_LOCAL_SIZE", &ln)) ln = n;
    } else if (env_i64("PMI_RANK", &r) && env_i64("PMI_SIZE", &n)) {
        /* MPICH / Intel MPI (Hydra's mpiexec; also inside a Slurm allocation, where SLURM_PROCID
         * numbers Hydra's per-node proxies, not the ranks) */
        out->launcher = "hydra";
        int64_t sn = 0;
        if (env_i64("MPI_LOCALRANKID", &lr)) {
            if (!env_i64("MPI_LOCALNRANKS", &ln)) ln = lr + 1;
        } else if (env_i64("SLURM_NTASKS", &sn) && sn == n && env_i64("SLURM_LOCALID", &lr)) {
            /* srun started the ranks itself (--mpi=pmi2): Slurm's numbering */
            out->launcher = "slurm";
            if (!env_first_count("SLURM_NTASKS_PER_NODE", &ln) &&
                !env_first_count("SLURM_TASKS_PER_NODE", &ln))
                ln = n;
        } else {
            lr = r;
            ln = n;
        }
    } else if (env_i64("SLURM_PROCID", &r) && env_i64("SLURM_NTASKS", &n)) {
        out->launcher = "slurm";
        if (!env_i64("SLURM_LOCALID", &lr)) lr = r;
        if (!env_first_count("SLURM_NTASKS_PER_NODE", &ln) &&
            !env_first_count("SLURM_TASKS_PER_NODE", &ln))
            ln = n;
    } else if (env_i64("PMIX_RANK", &r)) {
        out->launcher = "pmix";
        if (!env_i64("PMIX_SIZE", &n) && !env_i64("PMI_SIZE", &n)) n = r + 1;
        lr = r;
        ln = n;
    } else {
        r = 0;
        n = 1;
    }
    if (!env_i64("SLURM_JOB_ID", &job)) job = -1;
    if (n < 1) n = 1;
    if (r < 0 || r >= n) r = 0;
    if (ln < 1) ln = 1;
    if (lr < 0 || lr >= ln) lr = 0;
    out->rank = (int32_t)r;
    out->size = (int32_t)n;
    out->local_rank = (int32_t)lr;
    out->local_size = (int32_t)ln;
    out->slurm_job_id = job;
}

void mt_comm_options_init(mt_comm_options *opts)
{
    opts->backend = "auto";
    opts->timeout_s = 600.0;
    const char *t = getenv("MLTRAIN_COMM_TIMEOUT");
    if (t && *t) {
        char *end;
        double v = strtod(t, &end);
        if (end != t) opts->timeout_s = v;
    }
    const char *c = getenv("MLTRAIN_COMM_CHECK");
    opts->check = c && *c && strcmp(c, "0") != 0;
}

/* A process started by a launcher that wires up MPI (mpirun, srun with an MPI plugin). */
static bool launched_for_mpi(void)
{
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK") ||
           (getenv("SLURM_STEP_ID") && getenv("SLURM_PROCID") && getenv("SLURM_NTASKS"));
}

/* ---------------------------------------------------------------- creation and progress */

static void *progress_main(void *arg);

static mt_status comm_new(mt_comm **out, const mt__comm_ops *ops, void *impl, int32_t rank,
                          int32_t size, double timeout_s, bool check, bool counts_mpi)
{
    mt_comm *c = mt_calloc(1, sizeof *c);
    if (!c) return MT_ERR_NOMEM;
    c->ops = ops;
    c->impl = impl;
    c->rank = rank;
    c->size = size;
    c->timeout_s = timeout_s;
    c->check = check;
    c->counts_mpi = counts_mpi;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->work_cv, &ca);
    pthread_cond_init(&c->done_cv, &ca);
    pthread_condattr_destroy(&ca);
    if (ops->progress_thread) {
        int rc = pthread_create(&c->thread, NULL, progress_main, c);
        if (rc != 0) {
            pthread_cond_destroy(&c->work_cv);
            pthread_cond_destroy(&c->done_cv);
            pthread_mutex_destroy(&c->mu);
            mt_free(c);
            return mt_err_set(MT_ERR_COMM, "comm: cannot start the progress thread: %s",
                              strerror(rc));
        }
        c->thread_started = true;
    }
    *out = c;
    return MT_OK;
}

mt_status mt_comm_world(mt_comm **out, const mt_comm_options *opts)
{
    mt_comm_options def;
    if (!opts) {
        mt_comm_options_init(&def);
        opts = &def;
    }
    *out = NULL;
    const char *b = opts->backend ? opts->backend : "auto";
    bool use_mpi;
    if (strcmp(b, "auto") == 0) {
        use_mpi = mt__comm_mpi_built() && (mt__comm_mpi_initialized() || launched_for_mpi());
    } else if (strcmp(b, "mpi") == 0) {
        if (!mt__comm_mpi_built())
            return mt_err_set(MT_ERR_NOT_BUILT, "comm: backend \"mpi\" asked for, but this mltrain "
                                                "was built without MPI (reconfigure with "
                                                "-DMT_WITH_MPI=ON)");
        use_mpi = true;
    } else if (strcmp(b, "local") == 0) {
        use_mpi = false;
    } else {
        return mt_err_set(MT_ERR_INVALID,
                          "comm: unknown backend \"%s\" (expected \"auto\", \"mpi\" or \"local\")",
                          b);
    }
    if (!use_mpi)
        return comm_new(out, &mt__comm_local_ops, NULL, 0, 1, opts->timeout_s, opts->check, false);
    void *impl = NULL;
    int32_t rank = 0, size = 1;
    mt_status st = mt__comm_mpi_world(&impl, &rank, &size);
    if (st != MT_OK) return st;
    st = comm_new(out, &mt__comm_mpi_ops, impl, rank, size, opts->timeout_s, opts->check, true);
    if (st != MT_OK) {
        mt__comm_mpi_ops.free(impl, true);
        mt__comm_mpi_release_runtime();
    }
    return st;
}

static void req_free(mt_comm_req *r)
{
    if (!r) return;
    mt_free(r->stage_send);
    mt_free(r->stage_recv);
    mt_array_clear(&r->recv_arr);
    mt_free(r);
}

/* "allreduce(float32 x 1000, sum)", plus " as #N" when its sequence number is not `seq`. */
static void describe_fp(const mt__comm_fp *f, uint64_t seq, char *buf, size_t len)
{
    mt__comm_kind kind = (mt__comm_kind)f->kind;
    const char *name = mt__comm_kind_name(kind), *dt = mt_dtype_name((mt_dtype)f->dtype);
    long long n = (long long)f->count;
    int k;
    switch (kind) {
    case MT__COMM_ALLREDUCE:
    case MT__COMM_REDUCE_SCATTER:
        k = snprintf(buf, len, "%s(%s x %lld, %s)", name, dt, n,
                     mt__comm_reduce_name((mt_reduce_op)f->op));
        break;
    case MT__COMM_BROADCAST:
        k = snprintf(buf, len, "%s(%s x %lld, root %d)", name, dt, n, (int)f->root);
        break;
    case MT__COMM_ALLGATHER:
        k = snprintf(buf, len, "%s(%s x %lld)", name, dt, n);
        break;
    default:
        k = snprintf(buf, len, "%s()", name);
        break;
    }
    if (f->seq != seq && k > 0 && (size_t)k < len)
        snprintf(buf + k, len - (size_t)k, " as #%llu", (unsigned long long)f->seq);
}

/* Debug mode: all-gather the fingerprints and compare them with rank 0's. */
static mt_status check_fingerprints(mt_comm *c, const mt_comm_req *r)
{
    mt__comm_fp mine = {.seq = r->seq,
                        .count = r->op.count,
                        .kind = (int32_t)r->op.kind,
                        .op = (int32_t)r->op.op,
                        .dtype = (int32_t)r->op.dtype,
                        .root = r->op.root,
                        .color = r->op.color,
                        .key = r->op.key};
    mt__comm_fp *all = mt_calloc((size_t)c->size, sizeof *all);
    if (!all) return MT_ERR_NOMEM;
    mt_status st = c->ops->exchange_fp(c->impl, &mine, all);
    if (st != MT_OK) {
        mt_free(all);
        return mt_err_prefix(st, "collective #%llu: fingerprint exchange: ",
                             (unsigned long long)r->seq);
    }
    int32_t bad = -1;
    for (int32_t i = 1; i < c->size && bad < 0; i++) {
        const mt__comm_fp *a = &all[0], *x = &all[i];
        bool same = a->seq == x->seq && a->kind == x->kind && a->count == x->count &&
                    a->dtype == x->dtype;
        if (same && (a->kind == MT__COMM_ALLREDUCE || a->kind == MT__COMM_REDUCE_SCATTER))
            same = a->op == x->op;
        if (same && a->kind == MT__COMM_BROADCAST) same = a->root == x->root;
        if (!same) bad = i;
    }
    if (bad < 0) {
        mt_free(all);
        return MT_OK;
    }
    char d[2][160];
    for (int k = 0; k < 2; k++) describe_fp(&all[k == 0 ? 0 : bad], r->seq, d[k], sizeof d[k]);
    mt_free(all);
    return mt_err_set(MT_ERR_COMM,
                      "collective #%llu mismatch: rank 0 called %s, rank %d called %s "
                      "(every rank must call the same collectives in the same order with the "
                      "same dtype and count; none of them ran this one)",
                      (unsigned long long)r->seq, d[0], (int)bad, d[1]);
}

static void run_one(mt_comm *c, mt_comm_req *r)
{
    mt_status st = MT_OK;
    mt_err_clear();
    if (atomic_load(&c->broken)) {
        st = mt_err_set(MT_ERR_COMM, "%s #%llu not run: %s", mt__comm_kind_name(r->op.kind),
                        (unsigned long long)r->seq, c->broken_msg);
    } else {
        if (c->check && c->ops->exchange_fp) st = check_fingerprints(c, r);
        if (st == MT_OK) st = c->ops->run(c->impl, &r->op);
    }
    r->status = st;
    if (st != MT_OK) snprintf(r->msg, sizeof r->msg, "%s", mt_last_error());
}

static void complete(mt_comm *c, mt_comm_req *r)
{
    pthread_mutex_lock(&c->mu);
    c->inflight--;
    bool abandoned = r->abandoned;
    atomic_store_explicit(&r->done, 1, memory_order_release);
    pthread_cond_broadcast(&c->done_cv);
    pthread_mutex_unlock(&c->mu);
    if (abandoned) req_free(r);
}

static void *progress_main(void *arg)
{
    mt_comm *c = arg;
    for (;;) {
        /* spin briefly for the next collective before sleeping */
        double until = now_s() + spin_s();
        unsigned k = 0;
        while (atomic_load_explicit(&c->nqueued, memory_order_acquire) == 0 && now_s() < until)
            spin_pause(&k);
        pthread_mutex_lock(&c->mu);
        while (!c->head && !c->stop) pthread_cond_wait(&c->work_cv, &c->mu);
        if (!c->head && c->stop) {
            pthread_mutex_unlock(&c->mu);
            break;
        }
        mt_comm_req *r = c->head;
        c->head = r->next;
        if (!c->head) c->tail = NULL;
        atomic_fetch_sub_explicit(&c->nqueued, 1, memory_order_relaxed);
        pthread_mutex_unlock(&c->mu);
        run_one(c, r);
        complete(c, r);
    }
    return NULL;
}

/* ---------------------------------------------------------------- starting collectives */

/* Refuses (and frees) r on a broken communicator. */
static mt_status refuse_if_broken(mt_comm *c, mt_comm_req *r)
{
    if (!atomic_load(&c->broken)) return MT_OK;
    mt_status st = mt_err_set(MT_ERR_COMM, "%s not started: %s", mt__comm_kind_name(r->op.kind),
                              c->broken_msg);
    req_free(r);
    return st;
}

/* Gives r the next sequence number and its deadline; c->mu held. */
static void number_req(mt_comm *c, mt_comm_req *r)
{
    r->comm = c;
    r->seq = ++c->seq;
    r->timeout_s = c->timeout_s;
    r->deadline = c->timeout_s > 0 ? now_s() + c->timeout_s : INFINITY;
    if (c->ops->mark_entered) c->ops->mark_entered(c->impl, r->seq);
}

static mt_status start(mt_comm *c, mt_comm_req *r, mt_comm_req **out)
{
    mt_status st = refuse_if_broken(c, r);
    if (st != MT_OK) return st;
    pthread_mutex_lock(&c->mu);
    number_req(c, r);
    c->inflight++;
    if (c->ops->progress_thread) {
        if (c->tail)
            c->tail->next = r;
        else
            c->head = r;
        c->tail = r;
        atomic_fetch_add_explicit(&c->nqueued, 1, memory_order_release);
        pthread_cond_signal(&c->work_cv);
        pthread_mutex_unlock(&c->mu);
    } else {
        pthread_mutex_unlock(&c->mu);
        run_one(c, r);
        complete(c, r);
    }
    *out = r;
    return MT_OK;
}

static mt_comm_req *req_new(mt_comm *c, mt__comm_kind kind)
{
    mt_comm_req *r = mt_calloc(1, sizeof *r);
    if (!r) return NULL;
    r->op.kind = kind;
    r->op.root = 0;
    r->op.color = r->op.key = 0;
    return r;
}

static mt_status check_array(const char *what, const char *name, const mt_array *a)
{
    char desc[160];
    if (!a || !a->buf)
        return mt_err_set(MT_ERR_INVALID, "%s: %s is an empty array (no buffer)", what, name);
    if (!mt_array_is_c_contiguous(a))
        return mt_err_set(MT_ERR_INVALID, "%s: %s must be C-contiguous (got %s)", what, name,
                          mt_array_describe(a, desc, sizeof desc));
    return MT_OK;
}

/* Host address of a C-contiguous array, or NULL when its device has none (then staged). */
static mt_status host_addr(const mt_array *a, void **out)
{
    char *base = mt_buffer_host_ptr(a->buf);
    *out = NULL;
    if (!base) return MT_OK;
    mt_status st = mt_device_sync(mt_array_device(a));
    if (st != MT_OK) return st;
    *out = base + a->offset;
    return MT_OK;
}

/* A host buffer of a's size in *stage (owned by the request), filled from a when copy is set
 * (what: the array, for the message). */
static mt_status stage_array(const mt_array *a, void **stage, bool copy, const char *what)
{
    size_t n = mt_array_nbytes(a);
    *stage = mt_malloc(n ? n : 1);
    if (!*stage) return MT_ERR_NOMEM;
    mt_status st = copy ? mt_array_to_host(*stage, n, a) : MT_OK;
    return st == MT_OK ? st : mt_err_prefix(st, "comm: staging the %s: ", what);
}

/* Fills r's send/recv pointers: in place on host memory, else through staging buffers. */
static mt_status attach_arrays(mt_comm *c, mt_comm_req *r, const mt_array *send, mt_array *recv)
{
    bool same = send && recv && send->buf == recv->buf && send->offset == recv->offset;
    void *sp = NULL, *rp = NULL;
    mt_status st;
    if (c->ops->device_buffers) {
        return mt_err_set(MT_ERR_UNSUPPORTED, "comm: device-buffer backends are not wired yet");
    }
    if (send) {
        st = host_addr(send, &sp);
        if (st != MT_OK) return st;
        if (!sp) {
            st = stage_array(send, &r->stage_send, true, "send array");
            if (st != MT_OK) return st;
            sp = r->stage_send;
        }
    }
    if (recv) {
        if (same) {
            rp = sp;
            if (r->stage_send) {
                r->stage_recv = r->stage_send;
                r->stage_send = NULL;
            }
        } else {
            st = host_addr(recv, &rp);
            if (st != MT_OK) return st;
            if (!rp) {
                st = stage_array(recv, &r->stage_recv, r->op.kind == MT__COMM_BROADCAST,
                                 "buffer");
                if (st != MT_OK) return st;
                rp = r->stage_recv;
            }
        }
        if (r->stage_recv) {
            mt_array_view(&r->recv_arr, recv);
            r->recv_bytes = mt_array_nbytes(recv);
        }
    }
    r->op.send = sp;
    r->op.recv = rp;
    return MT_OK;
}

static mt_status check_op(const char *what, mt_reduce_op op, mt_dtype dt)
{
    switch (op) {
    case MT_REDUCE_SUM:
    case MT_REDUCE_PROD:
    case MT_REDUCE_MAX:
    case MT_REDUCE_MIN:
        return MT_OK;
    case MT_REDUCE_ALL:
    case MT_REDUCE_ANY:
        if (dt == MT_BOOL) return MT_OK;
        return mt_err_set(MT_ERR_DTYPE, "%s: reduce op %s needs bool arrays, not %s", what,
                          mt_reduce_op_name(op), mt_dtype_name(dt));
    default:
        return mt_err_set(MT_ERR_UNSUPPORTED,
                          "%s: reduce op %s is not a collective (use sum, prod, max or min; "
                          "all/any on bool)", what, mt_reduce_op_name(op));
    }
}

static mt_status check_comm(const char *what, const mt_comm *c, mt_comm_req **req)
{
    if (req) *req = NULL;
    if (!c) return mt_err_set(MT_ERR_INVALID, "%s: the communicator is NULL", what);
    if (!req) return mt_err_set(MT_ERR_INVALID, "%s: req is NULL", what);
    return MT_OK;
}

static mt_status start_device(mt_comm *c, mt_comm_req *r, mt_comm_req **out);

/* Whether the collective goes to the device backend: arrays on the bound device, a dtype and
 * op it takes. The same answer on every rank when every rank binds its own device. */
static bool device_path(const mt_comm *c, mt__comm_kind kind, const mt_array *send,
                        const mt_array *recv, mt_dtype dt, mt_reduce_op op)
{
    if (!c->dev_ops) return false;
    if ((send && mt_array_device(send) != c->dev) || mt_array_device(recv) != c->dev)
        return false;
    return c->dev_ops->dev_accepts(c->dev_impl, kind, dt, op);
}

static mt_status start_arrays(mt_comm *c, mt__comm_kind kind, const mt_array *send,
                              mt_array *recv, mt_reduce_op op, int32_t root, mt_comm_req **req)
{
    mt_comm_req *r = req_new(c, kind);
    if (!r) return MT_ERR_NOMEM;
    r->op.op = op;
    r->op.root = root;
    r->op.dtype = (send ? send : recv)->dtype;
    r->op.count = mt_array_size(send ? send : recv);
    if (device_path(c, kind, send, recv, r->op.dtype, op)) {
        r->op.send_arr = send;
        r->op.recv_arr = recv;
        return start_device(c, r, req);
    }
    mt_status st = attach_arrays(c, r, send, recv);
    if (st != MT_OK) {
        req_free(r);
        return st;
    }
    return start(c, r, req);
}

/* The checks of the collectives with a send and a recv array of one dtype (op: the reduction,
 * NULL for none). */
static mt_status check_send_recv(const char *what, const mt_comm *comm, mt_comm_req **req,
                                 const mt_array *send, const mt_array *recv,
                                 const mt_reduce_op *op)
{
    mt_status st = check_comm(what, comm, req);
    if (st == MT_OK) st = check_array(what, "send", send);
    if (st == MT_OK) st = check_array(what, "recv", recv);
    if (st == MT_OK && op) st = check_op(what, *op, send->dtype);
    if (st != MT_OK) return st;
    if (send->dtype != recv->dtype)
        return mt_err_set(MT_ERR_DTYPE, "%s: send is %s but recv is %s", what,
                          mt_dtype_name(send->dtype), mt_dtype_name(recv->dtype));
    return MT_OK;
}

mt_status mt_comm_iallreduce(mt_comm *comm, const mt_array *send, mt_array *recv,
                             mt_reduce_op op, mt_comm_req **req)
{
    mt_status st = check_send_recv("allreduce", comm, req, send, recv, &op);
    if (st != MT_OK) return st;
    if (mt_array_size(send) != mt_array_size(recv))
        return mt_err_set(MT_ERR_SHAPE, "allreduce: send has %lld elements but recv %lld",
                          (long long)mt_array_size(send), (long long)mt_array_size(recv));
    return start_arrays(comm, MT__COMM_ALLREDUCE, send, recv, op, 0, req);
}

mt_status mt_comm_ibroadcast(mt_comm *comm, mt_array *buf, int32_t root, mt_comm_req **req)
{
    static const char what[] = "broadcast";
    mt_status st = check_comm(what, comm, req);
    if (st == MT_OK) st = check_array(what, "buf", buf);
    if (st != MT_OK) return st;
    if (root < 0 || root >= comm->size)
        return mt_err_set(MT_ERR_RANGE, "broadcast: root %d is not a rank of this communicator "
                                        "(size %d)", (int)root, (int)comm->size);
    return start_arrays(comm, MT__COMM_BROADCAST, NULL, buf, MT_REDUCE_SUM, root, req);
}

mt_status mt_comm_iallgather(mt_comm *comm, const mt_array *send, mt_array *recv,
                             mt_comm_req **req)
{
    mt_status st = check_send_recv("allgather", comm, req, send, recv, NULL);
    if (st != MT_OK) return st;
    if (mt_array_size(recv) != mt_array_size(send) * comm->size)
        return mt_err_set(MT_ERR_SHAPE,
                          "allgather: recv has %lld elements, expected size %d x %lld = %lld",
                          (long long)mt_array_size(recv), (int)comm->size,
                          (long long)mt_array_size(send),
                          (long long)(mt_array_size(send) * comm->size));
    if (send->buf == recv->buf)
        return mt_err_set(MT_ERR_INVALID, "allgather: send and recv share a buffer");
    return start_arrays(comm, MT__COMM_ALLGATHER, send, recv, MT_REDUCE_SUM, 0, req);
}

mt_status mt_comm_ireduce_scatter(mt_comm *comm, const mt_array *send, mt_array *recv,
                                  mt_reduce_op op, mt_comm_req **req)
{
    mt_status st = check_send_recv("reduce_scatter", comm, req, send, recv, &op);
    if (st != MT_OK) return st;
    int64_t n = mt_array_size(send);
    if (n % comm->size != 0 || mt_array_size(recv) != n / comm->size)
        return mt_err_set(MT_ERR_SHAPE,
                          "reduce_scatter: send has %lld elements, which must be size (%d) x recv "
                          "(%lld elements)", (long long)n, (int)comm->size,
                          (long long)mt_array_size(recv));
    if (send->buf == recv->buf)
        return mt_err_set(MT_ERR_INVALID, "reduce_scatter: send and recv share a buffer");
    return start_arrays(comm, MT__COMM_REDUCE_SCATTER, send, recv, op, 0, req);
}

/* ---------------------------------------------------------------- waiting */

static void timeout_message(mt_comm *c, mt_comm_req *r)
{
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    size_t es = mt_dtype_size(r->op.dtype);
    if (r->op.kind == MT__COMM_BARRIER || r->op.kind == MT__COMM_SPLIT)
        mt_strbuf_appendf(&sb, "%s #%llu", mt__comm_kind_name(r->op.kind),
                          (unsigned long long)r->seq);
    else
        mt_strbuf_appendf(&sb, "%s #%llu (%s x %lld, %lld bytes)", mt__comm_kind_name(r->op.kind),
                          (unsigned long long)r->seq, mt_dtype_name(r->op.dtype),
                          (long long)r->op.count, (long long)(r->op.count * (int64_t)es));
    mt_strbuf_appendf(&sb, " on rank %d of %d did not complete within %g s: ", (int)c->rank,
                      (int)c->size, r->timeout_s);
    uint64_t *ent = c->ops->read_entered ? mt_calloc((size_t)c->size, sizeof *ent) : NULL;
    if (ent && c->ops->read_entered(c->impl, ent, 2.0) == MT_OK) {
        int nmiss = 0, nunk = 0;
        for (int32_t i = 0; i < c->size; i++) {
            if (ent[i] == UINT64_MAX)
                nunk++;
            else if (ent[i] < r->seq)
                nmiss++;
        }
        if (nmiss) {
            mt_strbuf_append(&sb, nmiss == 1 ? "rank " : "ranks ");
            int k = 0;
            for (int32_t i = 0; i < c->size; i++)
                if (ent[i] != UINT64_MAX && ent[i] < r->seq)
                    mt_strbuf_appendf(&sb, "%s%d (last started #%llu)", k++ ? ", " : "", (int)i,
                                      (unsigned long long)ent[i]);
            mt_strbuf_append(&sb, nmiss == 1 ? " did not arrive" : " did not arrive");
        } else if (!nunk) {
            mt_strbuf_append(&sb, "every rank started it, but the transfer did not finish (a "
                                  "rank died or stalled inside it)");
        }
        if (nunk) {
            mt_strbuf_appendf(&sb, "%sranks not answering the arrival check: ", nmiss ? "; " : "");
            int k = 0;
            for (int32_t i = 0; i < c->size; i++)
                if (ent[i] == UINT64_MAX) mt_strbuf_appendf(&sb, "%s%d", k++ ? ", " : "", (int)i);
        }
    } else {
        mt_strbuf_append(&sb, "the ranks that did not arrive are unknown (no arrival channel)");
    }
    mt_free(ent);
    mt_err_set(MT_ERR_TIMEOUT, "%s", sb.data ? sb.data : "collective timed out");
    snprintf(c->broken_msg, sizeof c->broken_msg, "%s #%llu timed out earlier",
             mt__comm_kind_name(r->op.kind), (unsigned long long)r->seq);
    mt_strbuf_deinit(&sb);
}

static bool wait_done(mt_comm *c, mt_comm_req *r)
{
    if (atomic_load_explicit(&r->done, memory_order_acquire)) return true;
    double t0 = now_s(), until = t0 + spin_s();
    if (until > r->deadline) until = r->deadline;
    unsigned k = 0;
    while (now_s() < until) {
        if (atomic_load_explicit(&r->done, memory_order_acquire)) return true;
        spin_pause(&k);
    }
    pthread_mutex_lock(&c->mu);
    while (!atomic_load_explicit(&r->done, memory_order_acquire)) {
        if (isinf(r->deadline)) {
            pthread_cond_wait(&c->done_cv, &c->mu);
            continue;
        }
        struct timespec ts;
        double dl = r->deadline;
        ts.tv_sec = (time_t)dl;
        ts.tv_nsec = (long)((dl - (double)ts.tv_sec) * 1e9);
        if (pthread_cond_timedwait(&c->done_cv, &c->mu, &ts) == ETIMEDOUT &&
            !atomic_load_explicit(&r->done, memory_order_acquire)) {
            r->abandoned = true;
            atomic_store(&c->broken, true);
            pthread_mutex_unlock(&c->mu);
            return false;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return true;
}

/* ---------------------------------------------------------------- device collectives */

/* Debug mode next to the progress thread: the fingerprint exchange of a device collective runs
 * on the caller's thread, so it first lets the progress thread finish its queue (the side
 * communicator then has one user). */
static mt_status drain_queue(mt_comm *c, double deadline)
{
    pthread_mutex_lock(&c->mu);
    while (c->inflight > 0) {
        struct timespec ts;
        double dl = isinf(deadline) ? now_s() + 3600 : deadline;
        ts.tv_sec = (time_t)dl;
        ts.tv_nsec = (long)((dl - (double)ts.tv_sec) * 1e9);
        if (pthread_cond_timedwait(&c->done_cv, &c->mu, &ts) == ETIMEDOUT && now_s() > deadline) {
            pthread_mutex_unlock(&c->mu);
            return mt_err_set(MT_ERR_TIMEOUT, "comm: earlier collectives did not finish before "
                              "the deadline of a device collective");
        }
    }
    pthread_mutex_unlock(&c->mu);
    return MT_OK;
}

/* The device backend failed (or timed out): stop it, so that no rank waits on it again. */
static void device_break(mt_comm *c, const mt_comm_req *r, const char *why)
{
    c->dev_ops->dev_abort(c->dev_impl);
    atomic_store(&c->broken, true);
    snprintf(c->broken_msg, sizeof c->broken_msg, "%s #%llu failed earlier on %s (%s)",
             mt__comm_kind_name(r->op.kind), (unsigned long long)r->seq, c->dev_ops->name, why);
}

/* Numbers r like start() and enqueues it on the device backend; no progress thread. */
static mt_status start_device(mt_comm *c, mt_comm_req *r, mt_comm_req **out)
{
    mt_status st = refuse_if_broken(c, r);
    if (st != MT_OK) return st;
    pthread_mutex_lock(&c->mu);
    number_req(c, r);
    pthread_mutex_unlock(&c->mu);
    if (c->check && c->ops->exchange_fp) {
        st = drain_queue(c, r->deadline);
        if (st == MT_OK) st = check_fingerprints(c, r);
        if (st != MT_OK) { /* every rank saw the same fingerprints: nothing was enqueued */
            req_free(r);
            return st;
        }
    }
    st = c->dev_ops->dev_start(c->dev_impl, &r->op, &r->dev_pending);
    if (st != MT_OK) {
        mt_err_prefix(st, "%s #%llu on rank %d of %d: ", mt__comm_kind_name(r->op.kind),
                      (unsigned long long)r->seq, (int)c->rank, (int)c->size);
        device_break(c, r, "enqueueing failed");
        req_free(r);
        return st;
    }
    *out = r;
    return MT_OK;
}

/* Backs off from spinning (sched_yield for MLTRAIN_COMM_SPIN_US) to sleeps of up to 1 ms. */
static void poll_pause(double t0, double *nap)
{
    if (now_s() - t0 < spin_s()) {
        sched_yield();
        return;
    }
    struct timespec ts = {0, (long)(*nap * 1e9)};
    nanosleep(&ts, NULL);
    if (*nap < 1e-3) *nap *= 2;
}

/* Stops the device backend after r failed with st (why: "failed", "timed out"), the error
 * message saying that the communicator was aborted. */
static void device_fail(mt_comm *c, const mt_comm_req *r, mt_status st, const char *why)
{
    char msg[MT_ERR_MSG_MAX];
    snprintf(msg, sizeof msg, "%s", mt_last_error());
    device_break(c, r, why);
    mt_err_set(st, "%s; the %s communicator was aborted", msg, c->dev_ops->name);
}

/* mt_comm_wait of a device collective: orders the compute stream after it, then polls its
 * completion and the backend's asynchronous errors until the deadline. Frees r. */
static mt_status wait_device(mt_comm *c, mt_comm_req *r)
{
    const mt__comm_ops *o = c->dev_ops;
    mt_status st = o->dev_order(c->dev_impl, r->dev_pending);
    double t0 = now_s(), nap = 2e-5;
    bool done = false;
    while (st == MT_OK) {
        st = o->dev_poll(c->dev_impl, r->dev_pending, &done);
        if (st != MT_OK || done) break;
        if (now_s() > r->deadline) {
            timeout_message(c, r);
            device_fail(c, r, MT_ERR_TIMEOUT, "timed out");
            o->dev_release(c->dev_impl, r->dev_pending);
            req_free(r);
            return MT_ERR_TIMEOUT;
        }
        poll_pause(t0, &nap);
    }
    if (st != MT_OK) {
        mt_err_prefix(st, "%s #%llu (%s x %lld) on rank %d of %d failed on %s: ",
                      mt__comm_kind_name(r->op.kind), (unsigned long long)r->seq,
                      mt_dtype_name(r->op.dtype), (long long)r->op.count, (int)c->rank,
                      (int)c->size, mt_device_name(c->dev));
        device_fail(c, r, st, "failed");
    }
    o->dev_release(c->dev_impl, r->dev_pending);
    req_free(r);
    return st;
}

mt_status mt_comm_wait(mt_comm_req *req)
{
    if (!req) return mt_err_set(MT_ERR_INVALID, "comm_wait: req is NULL");
    mt_comm *c = req->comm;
    if (req->dev_pending) return wait_device(c, req);
    if (!wait_done(c, req)) {
        timeout_message(c, req); /* req now belongs to the progress thread */
        return MT_ERR_TIMEOUT;
    }
    mt_status st = req->status;
    if (st != MT_OK) {
        mt_err_set(st, "%s", req->msg);
    } else if (req->recv_arr.buf) {
        st = mt_buffer_write(req->recv_arr.buf, req->recv_arr.offset, req->stage_recv,
                             req->recv_bytes, NULL);
        if (st != MT_OK) mt_err_prefix(st, "comm: copying the result back to the device: ");
    }
    req_free(req);
    return st;
}

mt_status mt_comm_test(mt_comm_req *req, bool *done)
{
    *done = false;
    if (!req) return mt_err_set(MT_ERR_INVALID, "comm_test: req is NULL");
    if (req->dev_pending) {
        mt_status st = req->comm->dev_ops->dev_poll(req->comm->dev_impl, req->dev_pending, done);
        if (st != MT_OK) *done = false; /* mt_comm_wait reports it and aborts */
        if (st == MT_OK && !*done && now_s() > req->deadline)
            return mt_err_set(MT_ERR_TIMEOUT, "%s #%llu is past its deadline (%g s)",
                              mt__comm_kind_name(req->op.kind), (unsigned long long)req->seq,
                              req->timeout_s);
        return st;
    }
    if (atomic_load_explicit(&req->done, memory_order_acquire)) {
        *done = true;
        if (req->status != MT_OK) return mt_err_set(req->status, "%s", req->msg);
        return MT_OK;
    }
    if (now_s() > req->deadline)
        return mt_err_set(MT_ERR_TIMEOUT, "%s #%llu is past its deadline (%g s); mt_comm_wait "
                                          "reports which ranks did not arrive",
                          mt__comm_kind_name(req->op.kind), (unsigned long long)req->seq,
                          req->timeout_s);
    return MT_OK;
}

/* ---------------------------------------------------------------- blocking forms */

mt_status mt_comm_allreduce(mt_comm *comm, const mt_array *send, mt_array *recv, mt_reduce_op op)
{
    mt_comm_req *r;
    mt_status st = mt_comm_iallreduce(comm, send, recv, op, &r);
    return st == MT_OK ? mt_comm_wait(r) : st;
}

mt_status mt_comm_broadcast(mt_comm *comm, mt_array *buf, int32_t root)
{
    mt_comm_req *r;
    mt_status st = mt_comm_ibroadcast(comm, buf, root, &r);
    return st == MT_OK ? mt_comm_wait(r) : st;
}

mt_status mt_comm_allgather(mt_comm *comm, const mt_array *send, mt_array *recv)
{
    mt_comm_req *r;
    mt_status st = mt_comm_iallgather(comm, send, recv, &r);
    return st == MT_OK ? mt_comm_wait(r) : st;
}

mt_status mt_comm_reduce_scatter(mt_comm *comm, const mt_array *send, mt_array *recv,
                                 mt_reduce_op op)
{
    mt_comm_req *r;
    mt_status st = mt_comm_ireduce_scatter(comm, send, recv, op, &r);
    return st == MT_OK ? mt_comm_wait(r) : st;
}

mt_status mt_comm_barrier(mt_comm *comm)
{
    mt_comm_req *r;
    mt_status st = check_comm("barrier", comm, &r);
    if (st != MT_OK) return st;
    mt_comm_req *n = req_new(comm, MT__COMM_BARRIER);
    if (!n) return MT_ERR_NOMEM;
    n->op.dtype = MT_UINT8;
    st = start(comm, n, &r);
    return st == MT_OK ? mt_comm_wait(r) : st;
}

mt_status mt_comm_allreduce_host(mt_comm *comm, void *data, int64_t count, mt_dtype dt,
                                 mt_reduce_op op)
{
    mt_comm_req *r;
    mt_status st = check_comm("allreduce_host", comm, &r);
    if (st != MT_OK) return st;
    if (!mt_dtype_valid(dt)) return mt_err_set(MT_ERR_DTYPE, "allreduce_host: invalid dtype");
    st = check_op("allreduce_host", op, dt);
    if (st != MT_OK) return st;
    if (count < 0 || (count > 0 && !data))
        return mt_err_set(MT_ERR_INVALID, "allreduce_host: %lld elements at %p", (long long)count,
                          data);
    mt_comm_req *n = req_new(comm, MT__COMM_ALLREDUCE);
    if (!n) return MT_ERR_NOMEM;
    n->op.op = op;
    n->op.dtype = dt;
    n->op.count = count;
    n->op.send = data;
    n->op.recv = data;
    st = start(comm, n, &r);
    return st == MT_OK ? mt_comm_wait(r) : st;
}

mt_status mt_comm_broadcast_host(mt_comm *comm, void *data, size_t nbytes, int32_t root)
{
    mt_comm_req *r;
    mt_status st = check_comm("broadcast_host", comm, &r);
    if (st != MT_OK) return st;
    if (root < 0 || root >= comm->size)
        return mt_err_set(MT_ERR_RANGE, "broadcast_host: root %d is not a rank of this "
                                        "communicator (size %d)", (int)root, (int)comm->size);
    if (nbytes > 0 && !data) return mt_err_set(MT_ERR_INVALID, "broadcast_host: data is NULL");
    mt_comm_req *n = req_new(comm, MT__COMM_BROADCAST);
    if (!n) return MT_ERR_NOMEM;
    n->op.dtype = MT_UINT8;
    n->op.count = (int64_t)nbytes;
    n->op.root = root;
    n->op.send = data;
    n->op.recv = data;
    st = start(comm, n, &r);
    return st == MT_OK ? mt_comm_wait(r) : st;
}

/* ---------------------------------------------------------------- device binding */

/* What every rank learns when one rank cannot go on: the first such rank, its status and
 * reason (an all-reduce of the rank, then a broadcast from it). */
typedef struct agree_msg {
    int32_t code;
    char why[400];
} agree_msg;

/* Collective: *bad_rank = the lowest rank with ok false (-1: none); msg = that rank's. */
static mt_status agree(mt_comm *c, bool ok, mt_status code, const char *why, int32_t *bad_rank,
                       agree_msg *msg)
{
    int32_t bad = ok ? INT32_MAX : c->rank;
    mt_status st = mt_comm_allreduce_host(c, &bad, 1, MT_INT32, MT_REDUCE_MIN);
    if (st != MT_OK) return st;
    *bad_rank = bad == INT32_MAX ? -1 : bad;
    if (bad == INT32_MAX) return MT_OK;
    memset(msg, 0, sizeof *msg);
    if (c->rank == bad) {
        msg->code = (int32_t)code;
        snprintf(msg->why, sizeof msg->why, "%s", why);
    }
    return mt_comm_broadcast_host(c, msg, sizeof *msg, bad);
}

static void unbind_device(mt_comm *c, bool healthy)
{
    if (c->dev_ops) c->dev_ops->free(c->dev_impl, healthy);
    c->dev_ops = NULL;
    c->dev_impl = NULL;
    mt_device_release(c->dev);
    c->dev = NULL;
}

/* "auto": log why arrays are staged; "nccl": fail with the first failing rank's reason. */
static mt_status no_nccl(mt_comm *c, bool required, int32_t bad, const agree_msg *m)
{
    if (required)
        return mt_err_set(m->code < 0 ? (mt_status)m->code : MT_ERR_COMM,
                          "comm: NCCL cannot be used for %s (rank %d: %s)",
                          mt_device_name(c->dev), (int)bad, m->why);
    /* a warning where NCCL was the point (a CUDA device shared by several ranks), a debug
     * note where it cannot apply (host devices, a single process) */
    bool cuda = strcmp(mt_device_get_info(c->dev)->backend, "cuda") == 0;
    mt_log(cuda && c->size > 1 ? MT_LOG_WARN : MT_LOG_DEBUG, "comm: collectives on %s are staged through host "
           "memory, not NCCL (rank %d: %s)", mt_device_name(c->dev), (int)bad, m->why);
    return MT_OK;
}

mt_status mt_comm_use_device(mt_comm *comm, mt_device *dev, const char *how)
{
    if (!comm) return mt_err_set(MT_ERR_INVALID, "comm_use_device: the communicator is NULL");
    if (!how) {
        how = getenv("MLTRAIN_COMM_DEVICE");
        if (!how || !*how) how = "auto";
    }
    bool autom = strcmp(how, "auto") == 0, required = strcmp(how, "nccl") == 0;
    if (!autom && !required && strcmp(how, "host") != 0)
        return mt_err_set(MT_ERR_INVALID, "comm_use_device: unknown choice \"%s\" (expected "
                                          "\"auto\", \"nccl\" or \"host\")", how);
    if (atomic_load(&comm->broken))
        return mt_err_set(MT_ERR_COMM, "comm_use_device: %s", comm->broken_msg);
    unbind_device(comm, true);
    if (!dev) return MT_OK;
    mt_device_retain(dev);
    comm->dev = dev;
    if (!autom && !required) return MT_OK; /* "host": staged */
    agree_msg m;
    int32_t bad = -1;
    if (autom && comm->ops != &mt__comm_mpi_ops) {
        /* the same answer on every rank: no exchange needed */
        snprintf(m.why, sizeof m.why, "the communicator's backend is \"%s\", not \"mpi\"",
                 comm->ops->name);
        return no_nccl(comm, false, 0, &m);
    }
    /* 1. can every rank load NCCL, bind its CUDA device and make its communication stream? */
    mt_status code = MT_OK;
    char why[400] = "";
    void *impl = NULL;
    bool ok = mt__comm_nccl_usable(dev, &code, why, sizeof why);
    if (ok) {
        code = mt__comm_nccl_prepare(&impl, dev, comm->rank, comm->size, comm->timeout_s);
        ok = code == MT_OK;
        if (!ok) snprintf(why, sizeof why, "%s", mt_last_error());
    }
    mt_status st = agree(comm, ok, code, why, &bad, &m);
    if (st != MT_OK || bad >= 0) {
        if (impl) mt__comm_nccl_ops.free(impl, false);
        if (st != MT_OK) return mt_err_prefix(st, "comm_use_device: ");
        return no_nccl(comm, required, bad, &m);
    }
    /* 2. rank 0's unique id, broadcast with its status */
    struct {
        int32_t code;
        char why[400];
        uint8_t id[MT__NCCL_ID_BYTES];
    } boot;
    memset(&boot, 0, sizeof boot);
    if (comm->rank == 0) {
        st = mt__comm_nccl_unique_id(boot.id);
        boot.code = (int32_t)st;
        if (st != MT_OK) snprintf(boot.why, sizeof boot.why, "%s", mt_last_error());
    }
    st = mt_comm_broadcast_host(comm, &boot, sizeof boot, 0);
    if (st != MT_OK || boot.code != MT_OK) {
        mt__comm_nccl_ops.free(impl, false);
        if (st != MT_OK) return mt_err_prefix(st, "comm_use_device: ");
        m.code = boot.code;
        snprintf(m.why, sizeof m.why, "%s", boot.why);
        return no_nccl(comm, required, 0, &m);
    }
    /* 3. every rank joins the NCCL communicator; all or none keep it. A rank whose join
     * failed at once waits here for ranks still inside theirs, which give up only at the
     * join's deadline: this agreement allows twice that, so the reason reaches every rank. */
    st = mt__comm_nccl_join(impl, boot.id);
    if (st != MT_OK) snprintf(why, sizeof why, "%s", mt_last_error());
    pthread_mutex_lock(&comm->mu);
    double join_timeout = comm->timeout_s;
    if (join_timeout > 0) comm->timeout_s = 2 * join_timeout + 30;
    pthread_mutex_unlock(&comm->mu);
    mt_status ast = agree(comm, st == MT_OK, st, why, &bad, &m);
    pthread_mutex_lock(&comm->mu);
    comm->timeout_s = join_timeout;
    pthread_mutex_unlock(&comm->mu);
    if (ast != MT_OK || bad >= 0) {
        mt__comm_nccl_ops.free(impl, false);
        if (ast != MT_OK) return mt_err_prefix(ast, "comm_use_device: ");
        return no_nccl(comm, required, bad, &m);
    }
    comm->dev_ops = &mt__comm_nccl_ops;
    comm->dev_impl = impl;
    int ver = 0;
    mt__comm_nccl_version(&ver);
    mt_log(MT_LOG_INFO, "comm: collectives on %s go through NCCL %d.%d.%d (rank %d of %d)",
           mt_device_name(dev), ver / 10000, ver / 100 % 100, ver % 100, (int)comm->rank,
           (int)comm->size);
    return MT_OK;
}

const char *mt_comm_device_path(const mt_comm *comm)
{
    return comm && comm->dev_ops ? comm->dev_ops->name : "staged";
}

/* ---------------------------------------------------------------- split, free, accessors */

mt_status mt_comm_split(mt_comm **out, mt_comm *comm, int32_t color, int32_t key)
{
    mt_comm_req *r;
    mt_status st = check_comm("split", comm, &r);
    if (st != MT_OK) return st;
    *out = NULL;
    mt_comm_req *n = req_new(comm, MT__COMM_SPLIT);
    if (!n) return MT_ERR_NOMEM;
    n->op.dtype = MT_INT32;
    n->op.color = color < 0 ? -1 : color;
    n->op.key = key;
    st = start(comm, n, &r);
    if (st != MT_OK) return st;
    /* wait by hand: the new backend state must not be lost with the request */
    if (!wait_done(comm, r)) {
        timeout_message(comm, r);
        return MT_ERR_TIMEOUT;
    }
    st = r->status;
    void *impl = r->op.split_impl;
    int32_t nrank = r->op.split_rank, nsize = r->op.split_size;
    if (st != MT_OK) mt_err_set(st, "%s", r->msg);
    req_free(r);
    if (st != MT_OK || !impl) return st;
    bool counts = comm->counts_mpi;
    if (counts) mt__comm_mpi_retain_runtime(); /* the new communicator holds a reference */
    st = comm_new(out, comm->ops, impl, nrank, nsize, comm->timeout_s, comm->check, counts);
    if (st != MT_OK) {
        comm->ops->free(impl, true);
        if (counts) mt__comm_mpi_release_runtime();
    }
    return st;
}

void mt_comm_free(mt_comm *comm)
{
    if (!comm) return;
    bool healthy = !atomic_load(&comm->broken);
    if (healthy) {
        /* wait for started collectives (within the communicator's deadline) */
        double dl = comm->timeout_s > 0 ? now_s() + comm->timeout_s : INFINITY;
        pthread_mutex_lock(&comm->mu);
        while (comm->inflight > 0) {
            if (isinf(dl)) {
                pthread_cond_wait(&comm->done_cv, &comm->mu);
                continue;
            }
            struct timespec ts;
            ts.tv_sec = (time_t)dl;
            ts.tv_nsec = (long)((dl - (double)ts.tv_sec) * 1e9);
            if (pthread_cond_timedwait(&comm->done_cv, &comm->mu, &ts) == ETIMEDOUT) {
                healthy = false;
                break;
            }
        }
        pthread_mutex_unlock(&comm->mu);
    }
    if (comm->thread_started) {
        pthread_mutex_lock(&comm->mu);
        comm->stop = true;
        pthread_cond_signal(&comm->work_cv);
        pthread_mutex_unlock(&comm->mu);
        if (healthy) {
            pthread_join(comm->thread, NULL);
        } else {
            /* the thread may be blocked inside the backend forever: leave it (and comm) */
            pthread_detach(comm->thread);
            unbind_device(comm, false);
            comm->ops->free(comm->impl, false);
            return;
        }
    }
    unbind_device(comm, healthy);
    comm->ops->free(comm->impl, healthy);
    bool counts = comm->counts_mpi;
    pthread_cond_destroy(&comm->work_cv);
    pthread_cond_destroy(&comm->done_cv);
    pthread_mutex_destroy(&comm->mu);
    mt_free(comm);
    if (counts) mt__comm_mpi_release_runtime();
}

int32_t mt_comm_rank(const mt_comm *comm) { return comm ? comm->rank : 0; }
int32_t mt_comm_size(const mt_comm *comm) { return comm ? comm->size : 1; }
const char *mt_comm_backend(const mt_comm *comm) { return comm ? comm->ops->name : "local"; }

uint64_t mt_comm_seq(const mt_comm *comm)
{
    if (!comm) return 0;
    pthread_mutex_lock((pthread_mutex_t *)&comm->mu);
    uint64_t s = comm->seq;
    pthread_mutex_unlock((pthread_mutex_t *)&comm->mu);
    return s;
}

void mt_comm_set_timeout(mt_comm *comm, double timeout_s)
{
    if (!comm) return;
    pthread_mutex_lock(&comm->mu);
    comm->timeout_s = timeout_s;
    pthread_mutex_unlock(&comm->mu);
    if (comm->dev_ops && comm->dev_ops->dev_set_timeout)
        comm->dev_ops->dev_set_timeout(comm->dev_impl, timeout_s);
}

const void *mt_comm_mpi_handle(const mt_comm *comm)
{
    if (!comm || !comm->ops->native_handle || strcmp(comm->ops->name, "mpi") != 0) return NULL;
    return comm->ops->native_handle(comm->impl);
}

void mt_comm_abort(mt_comm *comm, int code, const char *message)
{
    int32_t rank = comm ? comm->rank : 0;
    if (!comm) {
        mt_launch_info li;
        mt_launch_info_get(&li);
        rank = li.rank;
    }
    fprintf(stderr, "mltrain: rank %d: %s\n", (int)rank, message ? message : "aborting");
    fflush(stderr);
    if (comm && comm->ops->abort)
        comm->ops->abort(comm->impl, code);
    else if (!comm)
        mt__comm_mpi_abort_world(code);
}

/* ---------------------------------------------------------------- point-to-point */

mt_status mt_comm_send_host(mt_comm *comm, int32_t dst, int32_t tag, const void *data,
                            size_t nbytes)
{
    if (!comm) return mt_err_set(MT_ERR_INVALID, "send_host: communicator is NULL");
    if (dst < 0 || dst >= comm->size)
        return mt_err_set(MT_ERR_RANGE, "send_host: destination %d is not a rank of this "
                                        "communicator (size %d)", (int)dst, (int)comm->size);
    if (tag < 0 || tag > 32767)
        return mt_err_set(MT_ERR_RANGE, "send_host: tag %d outside 0..32767", (int)tag);
    if (nbytes > 0 && !data) return mt_err_set(MT_ERR_INVALID, "send_host: data is NULL");
    if (nbytes > (size_t)INT32_MAX)
        return mt_err_set(MT_ERR_RANGE, "send_host: %zu bytes is more than a control message "
                                        "may hold", nbytes);
    if (!comm->ops->p2p_send)
        return mt_err_set(MT_ERR_UNSUPPORTED, "send_host: the %s backend has no point-to-point "
                                              "messages", comm->ops->name);
    pthread_mutex_lock(&comm->mu);
    double t = comm->timeout_s;
    pthread_mutex_unlock(&comm->mu);
    double deadline = t > 0 ? now_s() + t : INFINITY;
    return comm->ops->p2p_send(comm->impl, dst, tag, data, nbytes, deadline);
}

mt_status mt_comm_recv_host(mt_comm *comm, int32_t src, int32_t tag, double timeout_s,
                            void **data, size_t *nbytes, int32_t *src_out, int32_t *tag_out)
{
    *data = NULL;
    *nbytes = 0;
    if (!comm) return mt_err_set(MT_ERR_INVALID, "recv_host: communicator is NULL");
    if (src < -1 || src >= comm->size)
        return mt_err_set(MT_ERR_RANGE, "recv_host: source %d is not a rank of this "
                                        "communicator (size %d)", (int)src, (int)comm->size);
    if (tag < -1 || tag > 32767)
        return mt_err_set(MT_ERR_RANGE, "recv_host: tag %d outside 0..32767", (int)tag);
    double t0 = now_s();
    double deadline = timeout_s < 0 ? INFINITY : t0 + timeout_s;
    double nap = 20e-6;
    for (;;) {
        bool got = false;
        int32_t s = -1, g = -1;
        if (comm->ops->p2p_probe_recv) {
            mt_status st = comm->ops->p2p_probe_recv(comm->impl, src, tag, &got, data, nbytes,
                                                     &s, &g);
            if (st != MT_OK) return st;
        }
        if (got) {
            if (src_out) *src_out = s;
            if (tag_out) *tag_out = g;
            return MT_OK;
        }
        double now = now_s();
        if (now >= deadline) {
            char from[32] = "any rank";
            if (src >= 0) snprintf(from, sizeof from, "rank %d", (int)src);
            return mt_err_set(MT_ERR_TIMEOUT, "recv_host: no message (tag %d) from %s within "
                                              "%.3g s", (int)tag, from, timeout_s);
        }
        /* short sleeps that grow to 2 ms: a waiting coordinator costs little CPU, a reply
         * that comes at once is seen within tens of microseconds */
        double left = deadline - now;
        double d = nap < left ? nap : left;
        struct timespec ts = {(time_t)d, (long)((d - (double)(time_t)d) * 1e9)};
        nanosleep(&ts, NULL);
        if (nap < 2e-3) nap *= 2;
    }
}
