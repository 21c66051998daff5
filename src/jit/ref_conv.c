/* Host execution of convolution and pooling (CONV2D, CONV2D_GRAD_INPUT, CONV2D_GRAD_WEIGHT,
 * POOL2D, POOL2D_GRAD), used by every mode: the reference executor and FAST_RUN run these nodes
 * the same way (they are single steps that fused elementwise kernels read from or feed).
 *
 * Convolution is lowered to GEMM (OpenBLAS cblas_sgemm / cblas_dgemm):
 *   forward        cols = im2col(x chunk) [K, nb P];  y_chunk [O, nb P] = w [O, K] @ cols
 *   weight grad    dw [O, K] += dy_chunk [O, nb P] @ cols^T
 *   input grad     cols = w^T [K, O] @ dy_chunk;  dx = col2im(cols)
 * with K = C KH KW, P = OH OW, over chunks of nb images: one image when P is large (the GEMM
 * reads and writes the image's own [O, P] block), several when P is small so that the GEMMs
 * stay wide (then the chunk's [O, nb P] block is packed from / scattered to [nb, O, P]). 1x1
 * kernels with stride 1 and no padding skip im2col.
 *
 * Threads. The batch is split into fixed ranges of images that the workers of a thread pool
 * (the function's, created on the first op whose work pays for it; MLTRAIN_NUM_THREADS or the
 * CPU count; outside a function, one pool per op) take
 * one at a time from a shared counter, each range running im2col + GEMM (+ col2im) on its
 * worker with BLAS single-threaded. Measured on the 2-core test machine this beats threaded
 * GEMMs with a parallel im2col: OpenBLAS's threads spin after every call and slow down any
 * other thread (bench/RESULTS.md). Pooling splits the planes (N * C) the same way. Ranges and
 * the order in which the weight gradient's range sums are added do not depend on the thread
 * count, so results are bit-identical for any number of threads, run after run.
 *
 * Element types: float32 and float64 natively; float16 and bfloat16 compute in float32.
 * Devices: on a host-addressable device the loops read and write the buffers in place; on any
 * other device the op runs there through gpuarray's mt_conv2d_* / mt_pool2d_* (generated
 * im2col, col2im and pooling kernels with the device's GEMM, or the backend's vendor library),
 * which keep this file's semantics (first maximum in C order, clipped-window means); operands
 * held on another device are copied to the function's device first. */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "jit_impl.h"

/* ---------------------------------------------------------------- geometry and threads */

typedef struct conv_geom {
    int64_t n, c, h, w;   /* input */
    int64_t o, kh, kw;    /* kernel */
    int64_t oh, ow;       /* output */
    int64_t sh, sw, ph, pw;
    int64_t k;            /* C KH KW */
    int64_t nb;           /* images per chunk */
    bool identity;        /* 1x1 kernel, stride 1, no padding: cols of one image = x */
} conv_geom;

typedef struct pool_geom {
    int64_t h, w, oh, ow, kh, kw, sh, sw, ph, pw;
    bool max;
} pool_geom;

/* Per-call state: the thread pool (the function's, or one made for this op on first need). */
typedef struct conv_env {
    mt_threadpool *tp;
    mt_threadpool **owner; /* the function's pool slot (mt__jctx.pool), or NULL */
    bool tp_failed;
} conv_env;

/* Work below which an op runs on the calling thread (creating the pool's threads costs tens
 * of microseconds): about 0.2 ms on one core. Convolutions count multiply-adds, pooling counts
 * window elements. */
#define PAR_MIN_MACS 4e6
#define PAR_MIN_POOL 5e5

/* true when [0, n) should be split over the pool (then e->tp is set). */
static bool env_parallel(conv_env *e, int64_t n, int64_t grain, double work, double min_work)
{
    if (n <= grain || work < min_work || e->tp_failed) return false;
    if (!e->tp && e->owner && *e->owner) e->tp = *e->owner;
    if (!e->tp && (mt_cpu_count() < 2 || mt_threadpool_new(&e->tp, 0) != MT_OK ||
                   mt_threadpool_size(e->tp) < 2)) {
        mt_threadpool_free(e->tp);
        e->tp = NULL;
        e->tp_failed = true;
        return false;
    }
    if (e->owner && !*e->owner) *e->owner = e->tp; /* kept for the function's next calls */
    return true;
}

/* Dynamic scheduling: every worker takes chunks of `grain` items from a shared counter until
 * none is left, so a thread slowed down (a core shared with another process, or with BLAS
 * threads spinning after their last call) simply takes fewer chunks. */
typedef struct dyn_job {
    _Atomic int64_t next;
    int64_t n, grain;
    mt_parallel_fn fn;
    void *ctx;
} dyn_job;

static void dyn_worker(void *ctx, int64_t begin, int64_t end, int thread)
{
    dyn_job *d = ctx;
    for (;;) {
        int64_t s = atomic_fetch_add(&d->next, d->grain);
        if (s >= d->n) break;
        d->fn(d->ctx, s, s + d->grain < d->n ? s + d->grain : d->n, thread);
    }
}

/* fn over [0, n) in ranges of grain items, on the pool when parallel, else in order on the
 * calling thread (the same ranges either way). */
static void env_run(conv_env *e, bool parallel, int64_t n, int64_t grain, mt_parallel_fn fn,
                    void *ctx)
{
    if (grain < 1) grain = 1;
    if (!parallel) {
        for (int64_t s = 0; s < n; s += grain) fn(ctx, s, s + grain < n ? s + grain : n, 0);
        return;
    }
    dyn_job d;
    atomic_init(&d.next, 0);
    d.n = n;
    d.grain = grain;
    d.fn = fn;
    d.ctx = ctx;
    int nt = mt_threadpool_size(e->tp);
    mt_threadpool_run(e->tp, nt, 1, dyn_worker, &d);
}

static void env_init(conv_env *e, const mt__jctx *ctx)
{
    memset(e, 0, sizeof *e);
    e->owner = ctx->pool;
}

static void env_deinit(conv_env *e)
{
    if (!e->owner || *e->owner != e->tp) mt_threadpool_free(e->tp);
    memset(e, 0, sizeof *e);
}

/* OpenBLAS runs a large GEMM on its own threads, and those threads spin for a while after
 * each call, competing with every other thread for the cores. The convolutions here split the
 * batch over the pool instead, every worker calling GEMM on its share of the images, so BLAS
 * is switched to one thread for the duration of the op (also when the batch is not split, so
 * that the results do not depend on the thread count; a single image therefore runs on one
 * thread). A concurrent GEMM elsewhere in the process then runs on one thread too; the
 * previous count is restored, and a call that finds one thread already changes nothing. */
static int blas_single_begin(void)
{
    int prev = openblas_get_num_threads();
    if (prev > 1) openblas_set_num_threads(1);
    return prev;
}

static void blas_single_end(int prev)
{
    if (prev > 1) openblas_set_num_threads(prev);
}

enum { CONV_FWD = 0, CONV_BWD_X, CONV_BWD_W };

/* Images per chunk: enough columns for a wide GEMM, within a column-matrix budget. The choice
 * does not depend on the thread count, so neither do the results. */
#define CHUNK_MIN_COLS 512
#define CHUNK_MAX_BYTES ((int64_t)4 << 20)

static void choose_chunk(conv_geom *q, size_t esize)
{
    int64_t P = q->oh * q->ow, nb = P > 0 ? (CHUNK_MIN_COLS + P - 1) / P : 1;
    if (nb > q->n) nb = q->n;
    while (nb > 1 && q->k * nb * P * (int64_t)esize > CHUNK_MAX_BYTES) nb--;
    q->nb = nb < 1 ? 1 : nb;
}

/* ---------------------------------------------------------------- the typed loops */


#define T float
#define SFX(name) name##_f32
#define GEMM cblas_sgemm
#include "ref_conv_tmpl.h"
#undef T
#undef SFX
#undef GEMM
#define T double
#define SFX(name) name##_f64
#define GEMM cblas_dgemm
#include "ref_conv_tmpl.h"
#undef T
#undef SFX
#undef GEMM

/* ---------------------------------------------------------------- host views of operands */

/* The C-contiguous elements of an operand in dtype dt: a pointer into the buffer on
 * host-addressable devices when no conversion is needed, else a host copy. */
typedef struct hin {
    mt_array arr;
    const void *ptr;
    void *tmp;
} hin;

static void hin_release(hin *h)
{
    mt_array_clear(&h->arr);
    mt_free(h->tmp);
    memset(h, 0, sizeof *h);
}

/* Accelerators run convolution and pooling in their own kernels (or a vendor library); devices
 * computing on the host's cores (CPU OpenCL runtimes) go faster through the host path's
 * OpenBLAS GEMMs with a copy each way (bench/RESULTS.md, "Device convolution"). */
static bool use_device_path(const mt_device *dev)
{
    if (mt_device_is_host_addressable(dev)) return false;
    const char *force = getenv("MLTRAIN_CONV_PATH"); /* "device": the kernels on CPU devices too */
    return !mt_device_get_info(dev)->cpu || (force && !strcmp(force, "device"));
}

static mt_status hin_get(hin *h, const mt_array *a, mt_dtype dt)
{
    memset(h, 0, sizeof *h);
    mt_device *dev = mt_array_device(a);
    size_t n = (size_t)mt_array_size(a);
    mt_status st;
    if (dev && mt_device_is_host_addressable(dev)) {
        st = a->dtype == dt ? mt_array_contiguous(&h->arr, a) : mt_array_astype(&h->arr, a, dt);
        if (st == MT_OK) st = mt_device_sync(dev);
        if (st != MT_OK) {
            hin_release(h);
            return st;
        }
        h->ptr = (const char *)mt_buffer_host_ptr(h->arr.buf) + h->arr.offset;
        return MT_OK;
    }
    size_t raw = n * mt_dtype_size(a->dtype), conv = n * mt_dtype_size(dt);
    char *buf = mt_malloc(raw + (a->dtype != dt ? conv : 0) + 1);
    if (!buf) return mt_err_set(MT_ERR_NOMEM, "out of memory for a host copy (%zu bytes)", raw);
    h->tmp = buf;
    st = mt_array_to_host(buf, raw, a);
    if (st != MT_OK) {
        hin_release(h);
        return st;
    }
    h->ptr = buf;
    if (a->dtype != dt) {
        mt_dtype_convert(buf + raw, dt, (ptrdiff_t)mt_dtype_size(dt), buf, a->dtype,
                         (ptrdiff_t)mt_dtype_size(a->dtype), n);
        h->ptr = buf + raw;
    }
    return MT_OK;
}

/* A result: the device array (dtype dt) and a host pointer of compute dtype cdt to fill, the
 * buffer itself when possible; hout_finish converts / uploads and hands the array out. */
typedef struct hout {
    mt_array arr;
    void *ptr;
    void *tmp;
    mt_dtype cdt;
} hout;

static void hout_release(hout *h)
{
    mt_array_clear(&h->arr);
    mt_free(h->tmp);
    memset(h, 0, sizeof *h);
}

static mt_status hout_new(hout *h, mt_device *dev, mt_dtype dt, mt_dtype cdt, const int64_t *dims,
                          bool zero)
{
    memset(h, 0, sizeof *h);
    h->cdt = cdt;
    mt_status st = mt_array_empty(&h->arr, dev, dt, 4, dims, 'C');
    if (st != MT_OK) return st;
    size_t n = (size_t)mt_array_size(&h->arr);
    char *base = mt_buffer_host_ptr(h->arr.buf);
    if (base && dt == cdt) {
        h->ptr = base + h->arr.offset;
    } else {
        h->tmp = mt_malloc(n * mt_dtype_size(cdt) + 1);
        if (!h->tmp) {
            hout_release(h);
            return mt_err_set(MT_ERR_NOMEM, "out of memory for a host result (%zu bytes)",
                              n * mt_dtype_size(cdt));
        }
        h->ptr = h->tmp;
    }
    if (zero) memset(h->ptr, 0, n * mt_dtype_size(cdt));
    return MT_OK;
}

static mt_status hout_finish(hout *h, mt_array *out)
{
    mt_status st = MT_OK;
    if (h->tmp) {
        size_t n = (size_t)mt_array_size(&h->arr);
        mt_dtype dt = h->arr.dtype;
        char *base = mt_buffer_host_ptr(h->arr.buf);
        if (base) {
            mt_dtype_convert(base + h->arr.offset, dt, (ptrdiff_t)mt_dtype_size(dt), h->tmp,
                             h->cdt, (ptrdiff_t)mt_dtype_size(h->cdt), n);
        } else if (dt == h->cdt) {
            st = mt_buffer_write(h->arr.buf, h->arr.offset, h->tmp, n * mt_dtype_size(dt), NULL);
        } else {
            void *c = mt_malloc(n * mt_dtype_size(dt) + 1);
            if (!c) st = mt_err_set(MT_ERR_NOMEM, "out of memory converting a host result");
            if (c) {
                mt_dtype_convert(c, dt, (ptrdiff_t)mt_dtype_size(dt), h->tmp, h->cdt,
                                 (ptrdiff_t)mt_dtype_size(h->cdt), n);
                st = mt_buffer_write(h->arr.buf, h->arr.offset, c, n * mt_dtype_size(dt), NULL);
                mt_free(c);
            }
        }
    }
    if (st != MT_OK) {
        hout_release(h);
        return st;
    }
    *out = h->arr;
    memset(&h->arr, 0, sizeof h->arr);
    hout_release(h);
    return MT_OK;
}

/* ---------------------------------------------------------------- other devices */

/* ins[i] on dev: the array itself, or a copy into tmp. */
static mt_status on_device(mt_array *tmp, const mt_array *a, mt_device *dev, const mt_array **out)
{
    *out = a;
    if (mt_array_device(a) == dev) return MT_OK;
    mt_status st = mt_array_copy_to(tmp, a, dev);
    *out = tmp;
    return st;
}

/* A CONV2D* or POOL2D* node on a device that is not host-addressable: result of shape od. */
static mt_status run_on_device(const mt__jctx *ctx, mt_var v, const mt_array *const *ins,
                               const int64_t *od, mt_array *out)
{
    const mt_graph *g = ctx->g;
    mt_op op = mt_graph_op(g, v);
    const mt_window *win = &mt_graph_attrs(g, v)->win;
    int32_t nin = op == MT_OP_CONV2D_GRAD_INPUT ? 2 : mt_graph_ninputs(g, v);
    mt_array tmp[3], r;
    const mt_array *in[3] = {NULL, NULL, NULL};
    memset(tmp, 0, sizeof tmp);
    memset(&r, 0, sizeof r);
    mt_status st = mt_array_empty(&r, ctx->dev, mt_graph_type(g, v)->dtype, 4, od, 'C');
    for (int32_t i = 0; i < nin && st == MT_OK; i++) st = on_device(&tmp[i], ins[i], ctx->dev, &in[i]);
    const mt_conv2d_params cp = {{win->stride[0], win->stride[1]}, {win->pad[0], win->pad[1]}};
    const mt_pool2d_params pp = {{win->size[0], win->size[1]},
                                 {win->stride[0], win->stride[1]},
                                 {win->pad[0], win->pad[1]},
                                 win->mode == MT_POOL_MAX ? MT_POOL2D_MAX : MT_POOL2D_MEAN};
    if (st == MT_OK) {
        switch (op) {
        case MT_OP_CONV2D: st = mt_conv2d_forward(&r, in[0], in[1], &cp); break;
        case MT_OP_CONV2D_GRAD_INPUT: st = mt_conv2d_backward_data(&r, in[0], in[1], &cp); break;
        case MT_OP_CONV2D_GRAD_WEIGHT: st = mt_conv2d_backward_filter(&r, in[0], in[1], &cp); break;
        case MT_OP_POOL2D: st = mt_pool2d_forward(&r, in[0], nin > 1 ? in[1] : NULL, &pp); break;
        default: st = mt_pool2d_backward(&r, in[0], in[1], in[2], &pp); break;
        }
    }
    for (int32_t i = 0; i < 3; i++) mt_array_clear(&tmp[i]);
    if (st != MT_OK) {
        mt_array_clear(&r);
        return st;
    }
    *out = r;
    return MT_OK;
}

/* ---------------------------------------------------------------- convolution */

/* The geometry of node v from its operands' and its result's concrete shapes. */
static mt_status conv_geometry(const mt_graph *g, mt_var v, const mt_array *const *ins,
                               const int64_t *od, conv_geom *q)
{
    const mt_op_attrs *a = mt_graph_attrs(g, v);
    mt_op op = mt_graph_op(g, v);
    const int64_t *xd, *wd, *yd;
    if (op == MT_OP_CONV2D) {
        xd = ins[0]->dims, wd = ins[1]->dims, yd = od;
    } else if (op == MT_OP_CONV2D_GRAD_INPUT) {
        xd = od, wd = ins[1]->dims, yd = ins[0]->dims;
    } else {
        xd = ins[0]->dims, wd = od, yd = ins[1]->dims;
    }
    memset(q, 0, sizeof *q);
    q->n = xd[0], q->c = xd[1], q->h = xd[2], q->w = xd[3];
    q->o = wd[0], q->kh = wd[2], q->kw = wd[3];
    q->oh = yd[2], q->ow = yd[3];
    q->sh = a->win.stride[0], q->sw = a->win.stride[1];
    q->ph = a->win.pad[0], q->pw = a->win.pad[1];
    q->k = q->c * q->kh * q->kw;
    q->identity = q->kh == 1 && q->kw == 1 && q->sh == 1 && q->sw == 1 && q->ph == 0 &&
                  q->pw == 0;
    const int64_t big = INT32_MAX;
    if (q->k > big || q->o > big || q->oh * q->ow > big || q->oh * q->ow * q->n > big)
        return mt_err_set(MT_ERR_RANGE, "convolution of x (%lld, %lld, %lld, %lld) with a kernel "
                          "(%lld, %lld, %lld, %lld) exceeds the 32-bit BLAS interface",
                          (long long)q->n, (long long)q->c, (long long)q->h, (long long)q->w,
                          (long long)q->o, (long long)q->c, (long long)q->kh, (long long)q->kw);
    return MT_OK;
}

/* Runs one convolution kind over the batch in ranges of images, split over the pool when it is
 * large enough (BLAS on one thread meanwhile). The weight gradient sums each range into its
 * own slot (at most WGRAD_SLOTS, within WGRAD_BYTES) and adds the slots in order afterwards:
 * the result is the same whichever thread ran which range. */
#define WGRAD_SLOTS 16
#define WGRAD_BYTES ((size_t)32 << 20)

static mt_status conv_run(conv_env *e, conv_geom *q, int kind, bool f64, const void *a,
                          const void *b, void *out)
{
    size_t esize = f64 ? sizeof(double) : sizeof(float);
    double work = (double)q->n * (double)(q->oh * q->ow) * (double)q->k * (double)q->o;
    choose_chunk(q, esize);
    int64_t nchunks = (q->n + q->nb - 1) / q->nb, grain = q->nb, nslots = 1;
    size_t dwbytes = (size_t)(q->o * q->k) * esize;
    if (kind == CONV_BWD_W) {
        int64_t cap = (int64_t)(WGRAD_BYTES / (dwbytes ? dwbytes : 1));
        nslots = nchunks < WGRAD_SLOTS ? nchunks : WGRAD_SLOTS;
        if (nslots > cap) nslots = cap;
        if (nslots < 1) nslots = 1;
        grain = (nchunks + nslots - 1) / nslots * q->nb;
        nslots = (q->n + grain - 1) / grain;
    }
    bool par = env_parallel(e, q->n, grain, work, PAR_MIN_MACS);
    int nt = par ? mt_threadpool_size(e->tp) : 1;
    void **partial = mt_calloc((size_t)nslots, sizeof(void *));
    void **scratch = mt_calloc((size_t)nt, sizeof(void *));
    bool failed = !partial || !scratch;
    if (!failed) partial[0] = out;
    for (int64_t g = 1; !failed && g < nslots; g++)
        if (!(partial[g] = mt_malloc(dwbytes))) failed = true;
    if (!failed) {
        conv_job_f32 j32 = {q, kind, a, b, out, partial, grain, scratch, false};
        conv_job_f64 j64 = {q, kind, a, b, out, partial, grain, scratch, false};
        void *job = f64 ? (void *)&j64 : (void *)&j32;
        int prev = blas_single_begin();
        env_run(e, par, q->n, grain, f64 ? conv_part_f64 : conv_part_f32, job);
        blas_single_end(prev);
        failed = f64 ? j64.failed : j32.failed;
    }
    for (int64_t g = 1; !failed && kind == CONV_BWD_W && g < nslots; g++) {
        if (f64) add_into_f64(out, partial[g], q->o * q->k);
        else add_into_f32(out, partial[g], q->o * q->k);
    }
    for (int64_t g = 1; partial && g < nslots; g++) mt_free(partial[g]);
    for (int t = 0; scratch && t < nt; t++) mt_free(scratch[t]);
    mt_free(partial);
    mt_free(scratch);
    if (failed)
        return mt_err_set(MT_ERR_NOMEM, "convolution: out of memory for the column matrices");
    return MT_OK;
}

mt_status mt__ref_conv2d(const mt__jctx *ctx, mt_var v, const mt_array *const *ins,
                         mt_array *out)
{
    const mt_graph *g = ctx->g;
    mt_op op = mt_graph_op(g, v);
    mt_dtype dt = mt_graph_type(g, v)->dtype;
    mt_dtype cdt = dt == MT_FLOAT64 ? MT_FLOAT64 : MT_FLOAT32;
    int32_t nin = op == MT_OP_CONV2D_GRAD_INPUT ? 2 : mt_graph_ninputs(g, v);
    const int64_t *shapes[3] = {ins[0]->dims, ins[1]->dims,
                                op == MT_OP_CONV2D_GRAD_INPUT ? ins[2]->dims : NULL};
    int64_t od[MT_MAX_DIMS];
    mt_status st = mt_graph_eval_shape(g, v, shapes, od);
    conv_geom q;
    if (st == MT_OK) st = conv_geometry(g, v, ins, od, &q);
    if (st != MT_OK) return st;
    if (use_device_path(ctx->dev)) return run_on_device(ctx, v, ins, od, out);
    hin a[2];
    memset(a, 0, sizeof a);
    hout r;
    memset(&r, 0, sizeof r);
    conv_env e;
    env_init(&e, ctx);
    for (int32_t i = 0; i < nin && st == MT_OK; i++) st = hin_get(&a[i], ins[i], cdt);
    if (st == MT_OK) st = hout_new(&r, ctx->dev, dt, cdt, od, op == MT_OP_CONV2D_GRAD_INPUT);
    bool empty = mt_array_size(&r.arr) == 0;
    if (st == MT_OK && !empty && (q.k == 0 || q.o == 0 || q.n == 0)) {
        /* an empty sum: zeros */
        memset(r.ptr, 0, (size_t)mt_array_size(&r.arr) * mt_dtype_size(cdt));
        empty = true;
    }
    if (st == MT_OK && !empty) {
        int kind = op == MT_OP_CONV2D              ? CONV_FWD
                   : op == MT_OP_CONV2D_GRAD_INPUT ? CONV_BWD_X
                                                   : CONV_BWD_W;
        st = conv_run(&e, &q, kind, cdt == MT_FLOAT64, a[0].ptr, a[1].ptr, r.ptr);
    }
    env_deinit(&e);
    for (int32_t i = 0; i < 2; i++) hin_release(&a[i]);
    if (st == MT_OK) return hout_finish(&r, out);
    hout_release(&r);
    return st;
}

/* ---------------------------------------------------------------- pooling */

typedef struct pool_job {
    const pool_geom *q;
    const void *x, *v; /* v: the second operand of POOL2D, or dy of POOL2D_GRAD */
    void *out;
    bool f64, grad;
} pool_job;

static void pool_part(void *ctx, int64_t begin, int64_t end, int thread)
{
    const pool_job *j = ctx;
    if (j->grad && j->f64)
        pool_bwd_f64(j->q, j->x, j->v, j->out, begin, end);
    else if (j->grad)
        pool_bwd_f32(j->q, j->x, j->v, j->out, begin, end);
    else if (j->f64)
        pool_fwd_f64(j->q, j->x, j->v, j->out, begin, end);
    else
        pool_fwd_f32(j->q, j->x, j->v, j->out, begin, end);
}

mt_status mt__ref_pool2d(const mt__jctx *ctx, mt_var v, const mt_array *const *ins,
                         mt_array *out)
{
    const mt_graph *g = ctx->g;
    mt_op op = mt_graph_op(g, v);
    const mt_op_attrs *at = mt_graph_attrs(g, v);
    mt_dtype dt = mt_graph_type(g, v)->dtype;
    mt_dtype cdt = dt == MT_FLOAT64 ? MT_FLOAT64 : MT_FLOAT32;
    int32_t nin = mt_graph_ninputs(g, v);
    const int64_t *shapes[3] = {NULL, NULL, NULL};
    for (int32_t i = 0; i < nin; i++) shapes[i] = ins[i]->dims;
    int64_t od[MT_MAX_DIMS];
    mt_status st = mt_graph_eval_shape(g, v, shapes, od);
    if (st != MT_OK) return st;
    if (use_device_path(ctx->dev)) return run_on_device(ctx, v, ins, od, out);
    bool grad = op == MT_OP_POOL2D_GRAD;
    const int64_t *xd = ins[0]->dims, *yd = grad ? ins[1]->dims : od;
    pool_geom q = {xd[2], xd[3], yd[2], yd[3], at->win.size[0], at->win.size[1],
                   at->win.stride[0], at->win.stride[1], at->win.pad[0], at->win.pad[1],
                   at->win.mode == MT_POOL_MAX};
    if (q.h * q.w > INT32_MAX)
        return mt_err_set(MT_ERR_RANGE, "pooling: planes of %lld x %lld elements are too large "
                          "(at most 2^31 - 1)", (long long)q.h, (long long)q.w);
    hin a[3];
    memset(a, 0, sizeof a);
    hout r;
    memset(&r, 0, sizeof r);
    conv_env e;
    env_init(&e, ctx);
    /* the gradient reads x (max: the positions are recomputed) and dy; y gives the shape */
    for (int32_t i = 0; i < nin && st == MT_OK; i++)
        if (!grad || (i == 0 && q.max) || i == 2) st = hin_get(&a[i], ins[i], cdt);
    if (st == MT_OK) st = hout_new(&r, ctx->dev, dt, cdt, od, grad);
    int64_t planes = xd[0] * xd[1];
    if (st == MT_OK && mt_array_size(&r.arr) > 0) {
        pool_job j = {&q, a[0].ptr, grad ? a[2].ptr : a[1].ptr, r.ptr, cdt == MT_FLOAT64, grad};
        double work = (double)(yd[2] * yd[3] * q.kh * q.kw) * (double)planes;
        int64_t grain = (int64_t)(16384.0 / (double)(q.h * q.w + 1)) + 1;
        env_run(&e, env_parallel(&e, planes, grain, work, PAR_MIN_POOL), planes, grain,
                pool_part, &j);
    }
    env_deinit(&e);
    for (int32_t i = 0; i < 3; i++) hin_release(&a[i]);
    if (st == MT_OK) return hout_finish(&r, out);
    hout_release(&r);
    return st;
}
