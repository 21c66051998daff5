/* A small persistent thread pool for data-parallel host loops.
 *
 * mt_threadpool_run splits [0, n) into at most size() contiguous chunks; the caller runs
 * chunk 0 and worker w runs chunk w. Dispatch is one atomic store of a "ticket" word that
 * packs a generation number with the chunk count, so a worker reads a consistent pair in one
 * load and workers without a chunk never touch the job fields (which the next run may
 * already be rewriting). Only workers with a chunk report completion.
 *
 * Latency vs. idle cost: after a job a worker spins briefly (a few tens of microseconds)
 * waiting for the next ticket, since host kernels are often launched back to back; then it
 * sleeps on a condition variable, so an idle pool burns no CPU (tests and MPI ranks share
 * few cores). The caller waits for the workers the same way: spin briefly, then sleep. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "mltrain/core.h"

#define MT_POOL_MAX_THREADS 256
#define SPIN_SECONDS 50e-6
#define TICKET_CHUNK_BITS 16 /* low bits: chunk count; high bits: generation */
#define TICKET_STOP 0xFFFFu  /* chunk-count value that tells workers to exit */

typedef struct worker {
    mt_threadpool *tp;
    int index; /* 1..size-1; the caller is thread 0 */
    pthread_t thread;
} worker;

struct mt_threadpool {
    int size; /* threads including the caller */
    worker *workers;
    pthread_mutex_t run_lock; /* serialises concurrent callers of run() */

    _Atomic uint64_t ticket;
    _Atomic int done; /* workers finished with the current job */
    pthread_mutex_t mutex;
    pthread_cond_t wake_cv; /* workers sleep here waiting for a ticket */
    pthread_cond_t done_cv; /* the caller sleeps here waiting for `done` */
    int sleepers;           /* workers in wake_cv (under mutex) */
    bool caller_sleeping;   /* under mutex */

    /* The current job: written before the ticket is published, read by workers with a chunk. */
    mt_parallel_fn fn;
    void *ctx;
    int64_t n;
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* One step of a bounded busy wait: a few hundred pause instructions first (the common
 * back-to-back case), then sched_yield so that a thread we are waiting for can run when
 * there are more threads than cores; true once SPIN_SECONDS have passed (time to sleep). */
static bool spin_pause(unsigned spin, double *t0)
{
    if (spin < 256) {
        cpu_relax();
        return false;
    }
    sched_yield();
    if ((spin & 15) != 0) return false;
    double now = mt_now_seconds();
    if (*t0 == 0) {
        *t0 = now;
        return false;
    }
    return now - *t0 > SPIN_SECONDS;
}

int mt_cpu_count(void)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int c = CPU_COUNT(&set);
        if (c > 0) return c;
    }
    long c = sysconf(_SC_NPROCESSORS_ONLN);
    return c > 0 ? (int)c : 1;
}

/* Chunk c of [0, n) split into k near-equal parts. */
static inline void chunk_bounds(int64_t n, int k, int c, int64_t *b, int64_t *e)
{
    int64_t base = n / k, rem = n % k;
    *b = (int64_t)c * base + (c < rem ? c : rem);
    *e = *b + base + (c < rem ? 1 : 0);
}

/* Waits until the ticket differs from `seen`; returns the new ticket. */
static uint64_t wait_ticket(mt_threadpool *tp, uint64_t seen)
{
    double t0 = 0;
    for (unsigned spin = 0;; spin++) {
        uint64_t t = atomic_load_explicit(&tp->ticket, memory_order_acquire);
        if (t != seen) return t;
        if (spin_pause(spin, &t0)) break;
    }
    pthread_mutex_lock(&tp->mutex);
    uint64_t t;
    tp->sleepers++;
    while ((t = atomic_load_explicit(&tp->ticket, memory_order_acquire)) == seen)
        pthread_cond_wait(&tp->wake_cv, &tp->mutex);
    tp->sleepers--;
    pthread_mutex_unlock(&tp->mutex);
    return t;
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    mt_threadpool *tp = w->tp;
    uint64_t seen = 0;
    for (;;) {
        seen = wait_ticket(tp, seen);
        unsigned nchunks = (unsigned)(seen & ((1u << TICKET_CHUNK_BITS) - 1));
        if (nchunks == TICKET_STOP) return NULL;
        if ((unsigned)w->index >= nchunks) continue;
        int64_t b, e;
        chunk_bounds(tp->n, (int)nchunks, w->index, &b, &e);
        tp->fn(tp->ctx, b, e, w->index);
        int finished = atomic_fetch_add_explicit(&tp->done, 1, memory_order_acq_rel) + 1;
        if (finished == (int)nchunks - 1) {
            pthread_mutex_lock(&tp->mutex);
            if (tp->caller_sleeping) pthread_cond_signal(&tp->done_cv);
            pthread_mutex_unlock(&tp->mutex);
        }
    }
}

static int env_threads(void)
{
    const char *e = getenv("MLTRAIN_NUM_THREADS");
    if (!e || !*e) return 0;
    char *end;
    long v = strtol(e, &end, 10);
    if (*end != '\0' || v <= 0) {
        mt_log(MT_LOG_WARN, "ignoring MLTRAIN_NUM_THREADS='%s' (not a positive integer)", e);
        return 0;
    }
    return v > MT_POOL_MAX_THREADS ? MT_POOL_MAX_THREADS : (int)v;
}

/* Publishes a new ticket with the given chunk count and wakes sleeping workers. */
static void publish(mt_threadpool *tp, unsigned nchunks)
{
    uint64_t t = atomic_load_explicit(&tp->ticket, memory_order_relaxed);
    uint64_t next = ((t >> TICKET_CHUNK_BITS) + 1) << TICKET_CHUNK_BITS | nchunks;
    atomic_store_explicit(&tp->ticket, next, memory_order_release);
    /* Taking the mutex orders this against a worker that checked the ticket under the mutex
     * and is about to wait: it either saw the new ticket or is already waiting. */
    pthread_mutex_lock(&tp->mutex);
    if (tp->sleepers > 0) pthread_cond_broadcast(&tp->wake_cv);
    pthread_mutex_unlock(&tp->mutex);
}

mt_status mt_threadpool_new(mt_threadpool **out, int nthreads)
{
    *out = NULL;
    if (nthreads <= 0) nthreads = env_threads();
    if (nthreads <= 0) nthreads = mt_cpu_count();
    if (nthreads > MT_POOL_MAX_THREADS) nthreads = MT_POOL_MAX_THREADS;
    mt_threadpool *tp = mt_calloc(1, sizeof *tp);
    if (!tp) return mt_err_prefix(MT_ERR_NOMEM, "thread pool: ");
    tp->size = nthreads;
    pthread_mutex_init(&tp->run_lock, NULL);
    pthread_mutex_init(&tp->mutex, NULL);
    pthread_cond_init(&tp->wake_cv, NULL);
    pthread_cond_init(&tp->done_cv, NULL);
    atomic_init(&tp->ticket, 0);
    atomic_init(&tp->done, 0);
    if (nthreads > 1) {
        tp->workers = mt_calloc((size_t)nthreads - 1, sizeof(worker));
        if (!tp->workers) {
            mt_threadpool_free(tp);
            return mt_err_prefix(MT_ERR_NOMEM, "thread pool: ");
        }
        for (int i = 1; i < nthreads; i++) {
            worker *w = &tp->workers[i - 1];
            w->tp = tp;
            w->index = i;
            int rc = pthread_create(&w->thread, NULL, worker_main, w);
            if (rc != 0) {
                tp->size = i; /* only workers 1..i-1 exist; free joins those */
                mt_threadpool_free(tp);
                return mt_err_errno(rc, "thread pool: cannot start thread %d of %d", i, nthreads);
            }
        }
    }
    *out = tp;
    return MT_OK;
}

void mt_threadpool_free(mt_threadpool *tp)
{
    if (!tp) return;
    if (tp->workers) {
        if (tp->size > 1) publish(tp, TICKET_STOP);
        for (int i = 1; i < tp->size; i++)
            pthread_join(tp->workers[i - 1].thread, NULL);
        mt_free(tp->workers);
    }
    pthread_mutex_destroy(&tp->run_lock);
    pthread_mutex_destroy(&tp->mutex);
    pthread_cond_destroy(&tp->wake_cv);
    pthread_cond_destroy(&tp->done_cv);
    mt_free(tp);
}

int mt_threadpool_size(const mt_threadpool *tp)
{
    return tp ? tp->size : 1;
}

/* Waits until `want` workers have finished the current job. */
static void wait_done(mt_threadpool *tp, int want)
{
    double t0 = 0;
    for (unsigned spin = 0;; spin++) {
        if (atomic_load_explicit(&tp->done, memory_order_acquire) >= want) return;
        if (spin_pause(spin, &t0)) break;
    }
    pthread_mutex_lock(&tp->mutex);
    tp->caller_sleeping = true;
    while (atomic_load_explicit(&tp->done, memory_order_acquire) < want)
        pthread_cond_wait(&tp->done_cv, &tp->mutex);
    tp->caller_sleeping = false;
    pthread_mutex_unlock(&tp->mutex);
}

void mt_threadpool_run(mt_threadpool *tp, int64_t n, int64_t min_chunk, mt_parallel_fn fn,
                       void *ctx)
{
    if (n <= 0) return;
    if (min_chunk < 1) min_chunk = 1;
    int64_t k = n / min_chunk;
    int size = tp ? tp->size : 1;
    if (k > size) k = size;
    if (k <= 1) {
        fn(ctx, 0, n, 0);
        return;
    }
    pthread_mutex_lock(&tp->run_lock);
    tp->fn = fn;
    tp->ctx = ctx;
    tp->n = n;
    atomic_store_explicit(&tp->done, 0, memory_order_relaxed);
    publish(tp, (unsigned)k);
    int64_t b, e;
    chunk_bounds(n, (int)k, 0, &b, &e);
    fn(ctx, b, e, 0);
    wait_done(tp, (int)k - 1);
    pthread_mutex_unlock(&tp->run_lock);
}
