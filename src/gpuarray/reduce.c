/* Reductions (sum, prod, max, min, argmax, argmin, mean, all, any) over any set of axes, plain
 * (mt_array_reduce) or fused with an elementwise map (mt_reduce_fused), with NumPy's semantics.
 *
 * This file checks arguments, plans the loop nest and dispatches; reduce_gen.c writes the kernel.
 * Planning (see reduce_impl.h): the inputs are broadcast to the full shape, size-1 axes dropped,
 * kept axes and reduced axes separated (reduced last), negative strides flipped where the
 * traversal order is free, reduced axes ordered by decreasing stride (not for argmax/argmin,
 * whose index is defined in C order over the reduced axes) and contiguous axes collapsed. The
 * result is J outputs x K reduced elements; when J is small next to the device's parallelism,
 * K is cut into P chunks whose partial results a second launch combines in a fixed order.
 *
 * Where the host has no C compiler (or MLTRAIN_NO_CC=1) a generic loop here runs the reduction
 * instead, after materialising a fused map with mt_elemwise (which interprets it). Maps that
 * read the element index or draw random numbers are materialised the same way on every device,
 * so the generated kernel never needs the full-shape flat index. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reduce_impl.h"

/* ---------------------------------------------------------------- names and dtypes */

static bool op_valid(mt_reduce_op op)
{
    return (int)op >= 0 && op < MT_REDUCE_OP_COUNT;
}

static bool op_is_arg(mt_reduce_op op)
{
    return op == MT_REDUCE_ARGMAX || op == MT_REDUCE_ARGMIN;
}

char mt__reduce_acc_kind(mt_reduce_op op, mt_dtype dt)
{
    char kind = mt_dtype_kind(dt);
    if (op == MT_REDUCE_ALL || op == MT_REDUCE_ANY) return 'i';
    if (kind == 'f' || op == MT_REDUCE_MEAN) return 'd';
    return kind == 'u' || kind == 'b' ? 'u' : 'i';
}

/* ---------------------------------------------------------------- axes */

/* Marks the reduced axes of an ndim-dimensional shape in mask (naxes 0: all). */
static mt_status norm_axes(bool *mask, int32_t ndim, int32_t naxes, const int32_t *axes,
                           mt_reduce_op op)
{
    const char *name = mt_reduce_op_name(op);
    if (naxes < 0 || naxes > MT_MAX_DIMS)
        return mt_err_set(MT_ERR_INVALID, "reduce %s: invalid number of axes %d", name, (int)naxes);
    if (naxes > 0 && !axes)
        return mt_err_set(MT_ERR_INVALID, "reduce %s: %d axes given but the axes list is NULL",
                          name, (int)naxes);
    for (int32_t i = 0; i < MT_MAX_DIMS; i++)
        mask[i] = naxes == 0 && i < ndim;
    for (int32_t i = 0; i < naxes; i++) {
        int32_t a = axes[i];
        if (a < -ndim || a >= ndim)
            return mt_err_set(MT_ERR_RANGE,
                              "reduce %s: axis %d is out of bounds for array of dimension %d", name,
                              (int)a, (int)ndim);
        if (a < 0) a += ndim;
        if (mask[a])
            return mt_err_set(MT_ERR_INVALID, "reduce %s: duplicate value in 'axis' (%d)", name,
                              (int)axes[i]);
        mask[a] = true;
    }
    return MT_OK;
}

/* ---------------------------------------------------------------- planning */

/* Stride sets: inputs 0..nin-1, then the output (set nin). */
typedef struct rplan {
    int32_t nin;
    int32_t ndj, ndk;
    int64_t dj[MT_MAX_DIMS], dk[MT_MAX_DIMS];
    int64_t sj[MT__RED_MAX_IN + 1][MT_MAX_DIMS];
    int64_t sk[MT__RED_MAX_IN + 1][MT_MAX_DIMS];
    int64_t off[MT__RED_MAX_IN + 1]; /* byte offsets into each buffer */
    int64_t J, K;
} rplan;

/* Everything one reduction call needs, with the inputs' strides broadcast to the full shape. */
typedef struct rjob {
    mt_reduce_op op;
    const mt_kexpr *map;
    int32_t nin;
    const mt_array *in[MT__RED_MAX_IN];
    int64_t in_strides[MT__RED_MAX_IN][MT_MAX_DIMS];
    int32_t ndim;
    int64_t dims[MT_MAX_DIMS];
    bool mask[MT_MAX_DIMS];
    mt_array *out;
    int64_t out_strides[MT_MAX_DIMS]; /* per full-shape axis; 0 on reduced axes */
    mt_dtype map_dt;
    int32_t nparams;
    const mt_scalar *params;
} rjob;

/* Merges neighbouring dims (outer o, inner i) where every set has s[o] == s[i] * d[i]. */
static int32_t collapse(int32_t nd, int64_t *d, int32_t nsets, int64_t (*s)[MT_MAX_DIMS])
{
    if (nd <= 1) return nd;
    int32_t o = 0;
    for (int32_t i = 1; i < nd; i++) {
        bool ok = true;
        for (int32_t k = 0; k < nsets; k++)
            if (s[k][o] != s[k][i] * d[i]) ok = false;
        if (ok) {
            d[o] *= d[i];
            for (int32_t k = 0; k < nsets; k++)
                s[k][o] = s[k][i];
        } else {
            o++;
            d[o] = d[i];
            for (int32_t k = 0; k < nsets; k++)
                s[k][o] = s[k][i];
        }
    }
    return o + 1;
}

/* Flips dim a (length d) in every set when set 0's stride (*s0) is negative, moving each
 * set's offset to the element that becomes first. */
static void flip_negative(int64_t d, int64_t *s0, int32_t nsets, int64_t (*s)[MT_MAX_DIMS],
                          int32_t a, int64_t *off)
{
    if (*s0 >= 0 || d <= 1) return;
    for (int32_t k = 0; k < nsets; k++) {
        off[k] += (d - 1) * s[k][a];
        s[k][a] = -s[k][a];
    }
}

static void build_plan(rplan *pl, const rjob *job)
{
    memset(pl, 0, sizeof *pl);
    int32_t nin = job->nin, ns = nin + 1;
    pl->nin = nin;
    for (int32_t i = 0; i < nin; i++)
        pl->off[i] = (int64_t)job->in[i]->offset;
    pl->off[nin] = (int64_t)job->out->offset;
    pl->J = 1;
    pl->K = 1;
    for (int32_t a = 0; a < job->ndim; a++) {
        int64_t d = job->dims[a];
        if (job->mask[a])
            pl->K *= d;
        else
            pl->J *= d;
        if (d == 1) continue;
        if (job->mask[a]) {
            int32_t t = pl->ndk++;
            pl->dk[t] = d;
            for (int32_t i = 0; i < nin; i++)
                pl->sk[i][t] = job->in_strides[i][a];
        } else {
            int32_t t = pl->ndj++;
            pl->dj[t] = d;
            for (int32_t i = 0; i < nin; i++)
                pl->sj[i][t] = job->in_strides[i][a];
            pl->sj[nin][t] = job->out_strides[a];
        }
    }
    /* kept dims: walking them backwards changes nothing but where each output lands */
    for (int32_t t = 0; t < pl->ndj; t++)
        flip_negative(pl->dj[t], &pl->sj[0][t], ns, pl->sj, t, pl->off);
    bool free_order = !op_is_arg(job->op);
    if (free_order) {
        for (int32_t t = 0; t < pl->ndk; t++)
            flip_negative(pl->dk[t], &pl->sk[0][t], nin, pl->sk, t, pl->off);
        /* stable insertion sort by decreasing |stride| of input 0, so the innermost is the
         * smallest; broadcast (stride 0) dims go outermost */
        for (int32_t t = 1; t < pl->ndk; t++) {
            for (int32_t u = t; u > 0; u--) {
                int64_t a = pl->sk[0][u - 1] ? llabs(pl->sk[0][u - 1]) : INT64_MAX;
                int64_t b = pl->sk[0][u] ? llabs(pl->sk[0][u]) : INT64_MAX;
                if (a >= b) break;
                int64_t tmp = pl->dk[u];
                pl->dk[u] = pl->dk[u - 1];
                pl->dk[u - 1] = tmp;
                for (int32_t i = 0; i < nin; i++) {
                    tmp = pl->sk[i][u];
                    pl->sk[i][u] = pl->sk[i][u - 1];
                    pl->sk[i][u - 1] = tmp;
                }
            }
        }
    }
    pl->ndj = collapse(pl->ndj, pl->dj, ns, pl->sj);
    pl->ndk = collapse(pl->ndk, pl->dk, nin, pl->sk);
    if (pl->ndk == 0) { /* K == 1: one reduced element per output */
        pl->ndk = 1;
        pl->dk[0] = 1;
        for (int32_t i = 0; i < nin; i++)
            pl->sk[i][0] = 0;
    }
}

/* ---------------------------------------------------------------- the generic host loop */

/* Running state of one output's reduction in the generic loop. */
typedef struct gacc {
    double d;
    int64_t i;
    uint64_t u;
    int64_t idx; /* argmax/argmin: best index so far, -1 before the first element */
    bool nan;
    double stk[64]; /* pairwise summation: sums of 2^level blocks */
    int top;
    int64_t nb; /* full blocks pushed */
    double bs;  /* current block's sum */
    int64_t bc; /* elements in the current block */
} gacc;

static void gacc_init(gacc *a, mt_reduce_op op, char kind)
{
    memset(a, 0, sizeof *a);
    a->idx = -1;
    if (op == MT_REDUCE_PROD || op == MT_REDUCE_ALL) {
        a->d = 1.0;
        a->i = 1;
        a->u = 1;
    } else if (op == MT_REDUCE_MAX) {
        a->d = -INFINITY;
        a->i = INT64_MIN;
        a->u = 0;
    } else if (op == MT_REDUCE_MIN) {
        a->d = INFINITY;
        a->i = INT64_MAX;
        a->u = UINT64_MAX;
    }
}

static void gacc_push(gacc *a, double v)
{
    for (int64_t c = a->nb; c & 1; c >>= 1)
        v = a->stk[--a->top] + v;
    a->stk[a->top++] = v;
    a->nb++;
}

static double gacc_sum(const gacc *a)
{
    double s = a->bs;
    for (int t = a->top; t > 0; t--)
        s = a->stk[t - 1] + s;
    return s;
}

/* Whether v (at index k) replaces the best (b at index bi) of argmax (sign 1) / argmin (-1):
 * strictly better, or the first NaN. Elements arrive in increasing index order here. */
#define ARG_BETTER(v, b, bi, gt)                                                                   \
    ((bi) < 0 || ((v) != (v) && (b) == (b)) || ((gt) ? (v) > (b) : (v) < (b)))

/* A block of values converted into the accumulator's domain (the member of the kind). */
typedef union gvals {
    double d[MT__RED_BLOCK];
    int64_t i[MT__RED_BLOCK];
    uint64_t u[MT__RED_BLOCK];
} gvals;

/* Feeds n converted values (double, int64, uint64 or 0/1 int64 per the kind) with reduced
 * indices k0, k0 + 1, ...; float sums take at most the rest of the current block. */
static void gacc_feed(gacc *a, mt_reduce_op op, char kind, const gvals *vals, int64_t n, int64_t k0)
{
    const double *vd = vals->d;
    const int64_t *vi = vals->i;
    const uint64_t *vu = vals->u;
    switch (op) {
    case MT_REDUCE_SUM:
    case MT_REDUCE_MEAN:
        if (kind == 'd') { /* one piece of a block, summed as the generated C code does */
            double l[8] = {0};
            int64_t t = 0;
            for (; t + 8 <= n; t += 8)
                for (int q = 0; q < 8; q++)
                    l[q] += vd[t + q];
            for (; t < n; t++)
                l[0] += vd[t];
            for (int w = 1; w < 8; w *= 2)
                for (int q = 0; q + w < 8; q += 2 * w)
                    l[q] += l[q + w];
            a->bs += l[0];
            a->bc += n;
            if (a->bc == MT__RED_BLOCK) {
                gacc_push(a, a->bs);
                a->bs = 0;
                a->bc = 0;
            }
        } else if (kind == 'i') {
            for (int64_t t = 0; t < n; t++)
                a->i = (int64_t)((uint64_t)a->i + (uint64_t)vi[t]);
        } else {
            for (int64_t t = 0; t < n; t++)
                a->u += vu[t];
        }
        break;
    case MT_REDUCE_PROD:
        for (int64_t t = 0; t < n; t++) {
            if (kind == 'd')
                a->d *= vd[t];
            else if (kind == 'i')
                a->i = (int64_t)((uint64_t)a->i * (uint64_t)vi[t]);
            else
                a->u *= vu[t];
        }
        break;
    case MT_REDUCE_MAX:
    case MT_REDUCE_MIN: {
        bool gt = op == MT_REDUCE_MAX;
        for (int64_t t = 0; t < n; t++) {
            if (kind == 'd') {
                if (vd[t] != vd[t]) a->nan = true;
                if (gt ? vd[t] > a->d : vd[t] < a->d) a->d = vd[t];
            } else if (kind == 'i') {
                if (gt ? vi[t] > a->i : vi[t] < a->i) a->i = vi[t];
            } else if (gt ? vu[t] > a->u : vu[t] < a->u) {
                a->u = vu[t];
            }
        }
        break;
    }
    case MT_REDUCE_ARGMAX:
    case MT_REDUCE_ARGMIN: {
        bool gt = op == MT_REDUCE_ARGMAX;
        for (int64_t t = 0; t < n; t++) {
            bool take;
            if (kind == 'd')
                take = ARG_BETTER(vd[t], a->d, a->idx, gt);
            else if (kind == 'i')
                take = a->idx < 0 || (gt ? vi[t] > a->i : vi[t] < a->i);
            else
                take = a->idx < 0 || (gt ? vu[t] > a->u : vu[t] < a->u);
            if (!take) continue;
            if (kind == 'd')
                a->d = vd[t];
            else if (kind == 'i')
                a->i = vi[t];
            else
                a->u = vu[t];
            a->idx = k0 + t;
        }
        break;
    }
    case MT_REDUCE_ALL:
        for (int64_t t = 0; t < n; t++)
            a->i &= vi[t] != 0;
        break;
    case MT_REDUCE_ANY:
        for (int64_t t = 0; t < n; t++)
            a->i |= vi[t] != 0;
        break;
    default:
        break;
    }
}

/* Converts n values of dtype dt (byte stride s) at p into the accumulator domain. */
static void gload(gvals *dst, char kind, mt_reduce_op op, const char *p, mt_dtype dt, int64_t s,
                  int64_t n)
{
    if (op == MT_REDUCE_ALL || op == MT_REDUCE_ANY) {
        uint8_t b[MT__RED_BLOCK];
        mt_dtype_convert(b, MT_BOOL, 1, p, dt, (ptrdiff_t)s, (size_t)n);
        for (int64_t t = 0; t < n; t++)
            dst->i[t] = b[t] != 0;
    } else if (kind == 'd') {
        mt_dtype_convert(dst->d, MT_FLOAT64, 8, p, dt, (ptrdiff_t)s, (size_t)n);
    } else if (kind == 'i') {
        mt_dtype_convert(dst->i, MT_INT64, 8, p, dt, (ptrdiff_t)s, (size_t)n);
    } else {
        mt_dtype_convert(dst->u, MT_UINT64, 8, p, dt, (ptrdiff_t)s, (size_t)n);
    }
}

/* Stores the final value of a into out (dtype dt). */
static void gstore(char *p, mt_dtype dt, const gacc *a, mt_reduce_op op, char kind, int64_t K)
{
    double d = a->d;
    int64_t i = a->i;
    uint64_t u = a->u;
    if (op == MT_REDUCE_SUM || op == MT_REDUCE_MEAN) d = gacc_sum(a);
    if (op == MT_REDUCE_MEAN) d /= (double)K;
    if ((op == MT_REDUCE_MAX || op == MT_REDUCE_MIN) && a->nan) d = NAN;
    if (op_is_arg(op)) {
        mt_dtype_convert(p, dt, 0, &a->idx, MT_INT64, 0, 1);
    } else if (kind == 'd') {
        mt_dtype_convert(p, dt, 0, &d, MT_FLOAT64, 0, 1);
    } else if (kind == 'i') {
        mt_dtype_convert(p, dt, 0, &i, MT_INT64, 0, 1);
    } else {
        mt_dtype_convert(p, dt, 0, &u, MT_UINT64, 0, 1);
    }
}

typedef struct gctx {
    const rplan *pl;
    mt_reduce_op op;
    char kind;
    mt_dtype in_dt, out_dt;
    const char *in; /* input 0's buffer + offset */
    char *out;
} gctx;

static void generic_one(const gctx *g, int64_t j)
{
    const rplan *pl = g->pl;
    int64_t oin = 0, oout = 0;
    for (int32_t t = pl->ndj - 1; t >= 0; t--) {
        int64_t q = j % pl->dj[t];
        j /= pl->dj[t];
        oin += q * pl->sj[0][t];
        oout += q * pl->sj[1][t];
    }
    gacc a;
    gacc_init(&a, g->op, g->kind);
    bool pairwise = g->kind == 'd' && (g->op == MT_REDUCE_SUM || g->op == MT_REDUCE_MEAN);
    int64_t idx[MT_MAX_DIMS] = {0}, pos = 0, nd = pl->ndk, inner = pl->dk[nd - 1];
    int64_t s = pl->sk[0][nd - 1];
    gvals vals;
    for (int64_t k = 0; k < pl->K; k += inner) {
        for (int64_t t = 0, n; t < inner; t += n) {
            n = inner - t < MT__RED_BLOCK ? inner - t : MT__RED_BLOCK;
            if (pairwise && n > MT__RED_BLOCK - a.bc) n = MT__RED_BLOCK - a.bc;
            gload(&vals, g->kind, g->op, g->in + oin + pos + t * s, g->in_dt, s, n);
            gacc_feed(&a, g->op, g->kind, &vals, n, k + t);
        }
        for (int64_t t = nd - 2; t >= 0; t--) { /* carry into the outer reduced dims */
            pos += pl->sk[0][t];
            if (++idx[t] < pl->dk[t]) break;
            pos -= idx[t] * pl->sk[0][t];
            idx[t] = 0;
        }
    }
    gstore(g->out + oout, g->out_dt, &a, g->op, g->kind, pl->K);
}

static void generic_chunk(void *ctx, int64_t begin, int64_t end, int thread)
{
    for (int64_t j = begin; j < end; j++)
        generic_one(ctx, j);
}

/* Reduces input `arg` of the job directly (the map is the identity on it), on the host. */
static mt_status run_generic(const rjob *job, int32_t arg)
{
    rjob one = *job;
    one.nin = 1;
    one.in[0] = job->in[arg];
    memcpy(one.in_strides[0], job->in_strides[arg], sizeof one.in_strides[0]);
    rplan pl; /* sets: input 0, then the output */
    build_plan(&pl, &one);
    gctx g = {
        .pl = &pl,
        .op = job->op,
        .kind = mt__reduce_acc_kind(job->op, one.in[0]->dtype),
        .in_dt = one.in[0]->dtype,
        .out_dt = job->out->dtype,
        .in = (const char *)mt_buffer_host_ptr(one.in[0]->buf) + pl.off[0],
        .out = (char *)mt_buffer_host_ptr(job->out->buf) + pl.off[1],
    };
    mt_device *dev = mt_buffer_device(job->out->buf);
    int64_t grain = pl.K >= 65536 ? 1 : 65536 / (pl.K ? pl.K : 1);
    if (dev->pool && pl.J > grain)
        mt_threadpool_run(dev->pool, pl.J, grain, generic_chunk, &g);
    else
        generic_chunk(&g, 0, pl.J, 0);
    return MT_OK;
}

/* ---------------------------------------------------------------- the generated kernel */

static bool device_is_cpu(const mt_device *dev)
{
    return dev->info.cpu;
}

/* How many chunks P to cut each of `units` work units (outputs, or tiles of `width` outputs)
 * into, and the chunk length C (in reduced indices). */
static void choose_split(const mt_device *dev, int64_t units, int64_t width, int64_t K,
                         bool interleave, int64_t *P, int64_t *C)
{
    int64_t par, minchunk;
    if (dev->ops->klang == MT_KLANG_C) {
        int nthreads = dev->pool ? mt_threadpool_size(dev->pool) : 1;
        par = 4 * (int64_t)nthreads; /* a few chunks per thread evens out the load */
        minchunk = 16384;
    } else {
        int64_t cu = dev->info.compute_units > 0 ? dev->info.compute_units : 1;
        par = 256 * cu;
        minchunk = 2048;
    }
    minchunk = (minchunk + width - 1) / width; /* a tile reads `width` elements per index */
    int64_t p = 1;
    if (units < par && K >= 2 * minchunk) {
        p = (par + units - 1) / units;
        if (p > K / minchunk) p = K / minchunk;
        if (p > 4096) p = 4096;
    }
    if (p <= 1) {
        *P = 1;
        *C = K;
        return;
    }
    int64_t c = (K + p - 1) / p;
    if (!interleave) { /* chunk edges on pairwise block edges; no empty chunk */
        c = (c + MT__RED_BLOCK - 1) / MT__RED_BLOCK * MT__RED_BLOCK;
        p = (K + c - 1) / c;
    }
    *P = p;
    *C = c;
}

/* Tiled float sums: at most MT__RED_TILE_BLOCKS blocks of rows per chunk, since a work item
 * adds its blocks in sequence and only stage 2 adds pairwise (see reduce_impl.h). */
static void cap_tiled_chunks(int64_t K, int64_t *P, int64_t *C)
{
    const int64_t cmax = (int64_t)MT__RED_BLOCK * MT__RED_TILE_BLOCKS;
    if (*C <= cmax) return;
    *C = cmax;
    *P = (K + cmax - 1) / cmax;
}

static mt_status gen_source(void *ctx, mt_strbuf *src, char *entry, size_t entry_len)
{
    const mt__rsig *sig = ctx;
    mt_strbuf key;
    mt_strbuf_init(&key);
    mt__reduce_key(&key, sig);
    mt_status st = mt_strbuf_status(&key);
    if (st == MT_OK) {
        uint64_t h = mt_hash64(key.data, key.len, 0x7265647563650aull);
        snprintf(entry, entry_len, "mt_reduce_%s_%016llx", mt_reduce_op_name(sig->op),
                 (unsigned long long)h);
        st = mt__reduce_source(src, sig, entry);
    }
    mt_strbuf_deinit(&key);
    return st;
}

static void fill_sig(mt__rsig *sig, const rjob *job, const rplan *pl, mt_klang lang)
{
    memset(sig, 0, sizeof *sig);
    sig->lang = lang;
    sig->op = job->op;
    sig->map = job->map;
    sig->nin = job->nin;
    for (int32_t i = 0; i < job->nin; i++)
        sig->in_dt[i] = job->in[i]->dtype;
    sig->map_dt = job->map_dt;
    sig->out_dt = job->out->dtype;
    sig->acc = mt__reduce_acc_kind(job->op, job->map_dt);
    sig->ndj = pl->ndj;
    sig->ndk = pl->ndk;
    /* 8 accumulators: vectorisation on the host; everywhere, float sums then add only 16
     * elements in sequence before the pairwise tree takes over */
    bool fsum = sig->acc == 'd' && (job->op == MT_REDUCE_SUM || job->op == MT_REDUCE_MEAN);
    sig->lanes = lang == MT_KLANG_C || fsum ? 8 : 1;
    sig->nparams = job->nparams;
}

/* Launch arguments: buffers, then the scalars of reduce_impl.h (values in sc, which the
 * caller may change between launches: mode and nwork are sc[1] and sc[0]). */
typedef struct rargs {
    mt_karg *args;
    int64_t *sc;
    int32_t nargs;
} rargs;

static mt_status build_args(rargs *ra, const rjob *job, const rplan *pl, const mt_buffer *tmp,
                            int64_t P, int64_t C)
{
    int32_t nin = job->nin;
    int32_t nsc = 6 + pl->ndj + pl->ndk + nin * (pl->ndj + pl->ndk) + pl->ndj + job->nparams;
    ra->nargs = nin + 2 + nsc;
    ra->args = mt_calloc((size_t)ra->nargs, sizeof *ra->args);
    ra->sc = mt_calloc((size_t)nsc, sizeof *ra->sc);
    if (!ra->args || !ra->sc) return mt_err_prefix(MT_ERR_NOMEM, "reduce: ");
    mt_karg *a = ra->args;
    for (int32_t i = 0; i < nin; i++)
        *a++ =
            (mt_karg){.kind = MT_KARG_BUFFER, .buf = job->in[i]->buf, .offset = (size_t)pl->off[i]};
    *a++ = (mt_karg){.kind = MT_KARG_BUFFER, .buf = job->out->buf, .offset = (size_t)pl->off[nin]};
    *a++ = (mt_karg){.kind = MT_KARG_BUFFER, .buf = tmp ? tmp : job->out->buf, .offset = 0};
    int64_t *s = ra->sc;
    *s++ = 0; /* nwork, set per launch */
    *s++ = 0; /* mode, set per launch */
    *s++ = P;
    *s++ = C;
    *s++ = pl->K;
    *s++ = pl->J * P;
    for (int32_t t = 0; t < pl->ndj; t++)
        *s++ = pl->dj[t];
    for (int32_t t = 0; t < pl->ndk; t++)
        *s++ = pl->dk[t];
    for (int32_t i = 0; i < nin; i++) {
        for (int32_t t = 0; t < pl->ndj; t++)
            *s++ = pl->sj[i][t];
        for (int32_t t = 0; t < pl->ndk; t++)
            *s++ = pl->sk[i][t];
    }
    for (int32_t t = 0; t < pl->ndj; t++)
        *s++ = pl->sj[nin][t];
    int64_t *first_param = s;
    for (int32_t t = 0; t < 6 + pl->ndj + pl->ndk + nin * (pl->ndj + pl->ndk) + pl->ndj; t++)
        *a++ = (mt_karg){.kind = MT_KARG_SCALAR, .scalar = &ra->sc[t], .size = 8};
    if (job->nparams > 0) {
        mt_dtype pdt[64];
        if (job->nparams > 64)
            return mt_err_set(MT_ERR_INVALID, "reduce: %d parameters (at most 64)",
                              (int)job->nparams);
        mt_status st = mt__kexpr_param_types(job->map, job->nparams, pdt);
        if (st != MT_OK) return st;
        for (int32_t k = 0; k < job->nparams; k++) {
            /* unused parameters are still passed (as 8 bytes) to keep the order simple */
            mt_dtype dt = pdt[k] == MT_DTYPE_COUNT ? MT_INT64 : pdt[k];
            size_t sz = mt__kgen_param_pack(dt, &job->params[k], &first_param[k]);
            *a++ = (mt_karg){.kind = MT_KARG_SCALAR, .scalar = &first_param[k], .size = sz};
        }
    }
    return MT_OK;
}

static mt_status launch_mode(mt_device *dev, void *kernel, rargs *ra, int64_t mode, int64_t nwork,
                             int64_t grain)
{
    ra->sc[0] = nwork;
    ra->sc[1] = mode;
    return dev->ops->kernel_launch(dev, kernel, ra->nargs, ra->args, nwork, grain, NULL);
}

/* A planned compiled reduction: the loop nest, the kernel and its launch shape. */
typedef struct rexec {
    rplan pl;
    void *kernel;
    int64_t P, C, units;
    bool tiled;
} rexec;

static mt_status plan_compiled(const rjob *job, mt_device *dev, rexec *ex)
{
    mt_klang lang = dev->ops->klang;
    if (lang != MT_KLANG_C && !dev->info.fp64 && mt__reduce_acc_kind(job->op, job->map_dt) == 'd')
        return mt_err_set(MT_ERR_UNSUPPORTED,
                          "reduce %s of %s on %s: the device has no double "
                          "precision, which float reductions accumulate in",
                          mt_reduce_op_name(job->op), mt_dtype_name(job->map_dt), dev->info.name);
    rplan *pl = &ex->pl;
    build_plan(pl, job);
    mt__rsig sig;
    fill_sig(&sig, job, pl, lang);
    /* Tiles when the innermost kept dim is contiguous but the reduced elements are not (a sum
     * over axis 0): each work item then reads rows of a tile of outputs. */
    int32_t lj = pl->ndj - 1, lk = pl->ndk - 1;
    int64_t isz0 = (int64_t)mt_dtype_size(sig.in_dt[0]);
    sig.tiled = device_is_cpu(dev) && lang != MT_KLANG_CUDA && pl->ndj >= 1 && pl->dj[lj] >= 8 &&
                pl->sj[0][lj] == isz0 && llabs(pl->sk[0][lk]) > isz0;
    int64_t units = pl->J, width = 1;
    if (sig.tiled) {
        sig.tile = lang == MT_KLANG_C ? MT__RED_TILE_HOST : MT__RED_TILE_DEV;
        width = pl->dj[lj] < sig.tile ? pl->dj[lj] : sig.tile;
        units = pl->J / pl->dj[lj] * ((pl->dj[lj] + sig.tile - 1) / sig.tile);
    }
    int64_t P, C;
    bool interleave = !device_is_cpu(dev) && pl->ndk == 1;
    choose_split(dev, units, width, pl->K, interleave, &P, &C);
    if (sig.tiled && sig.acc == 'd' && (job->op == MT_REDUCE_SUM || job->op == MT_REDUCE_MEAN))
        cap_tiled_chunks(pl->K, &P, &C);
    sig.interleave = interleave && P > 1;
    for (int32_t i = 0; i < job->nin; i++) {
        int64_t s = sig.tiled ? pl->sj[i][lj] : pl->sk[i][lk];
        bool unit = !sig.interleave && s == (int64_t)mt_dtype_size(sig.in_dt[i]);
        sig.inner[i] = s == 0 ? 'z' : unit ? 'c' : 'g';
    }
    mt_strbuf key;
    mt_strbuf_init(&key);
    mt__reduce_key(&key, &sig);
    mt_status st = mt_strbuf_status(&key);
    ex->kernel = NULL;
    if (st == MT_OK) st = mt__kernel_get(dev, key.data, gen_source, &sig, &ex->kernel);
    mt_strbuf_deinit(&key);
    ex->P = P;
    ex->C = C;
    ex->units = units;
    ex->tiled = sig.tiled;
    return st;
}

/* Launches a planned reduction (ex->pl's offsets are those of job's arrays). */
static mt_status launch_compiled(const rjob *job, mt_device *dev, const rexec *ex)
{
    const rplan *pl = &ex->pl;
    mt_buffer *tmp = NULL;
    int64_t P = ex->P, npart = pl->J * P;
    mt_status st = MT_OK;
    if (P > 1) {
        size_t bytes = (size_t)npart * 8 * (op_is_arg(job->op) ? 2 : 1);
        st = mt_buffer_new(&tmp, dev, bytes);
        if (st != MT_OK)
            return mt_err_prefix(st, "reduce %s: partial results: ", mt_reduce_op_name(job->op));
    }
    rargs ra = {0};
    st = build_args(&ra, job, pl, tmp, P, ex->C);
    if (st == MT_OK) {
        if (P == 1) {
            int64_t grain = ex->tiled || pl->K >= 65536 ? 1 : 65536 / pl->K;
            st = launch_mode(dev, ex->kernel, &ra, MT__RMODE_DIRECT, ex->units, grain);
        } else {
            st = launch_mode(dev, ex->kernel, &ra, MT__RMODE_PARTIAL, ex->units * P, 1);
            if (st == MT_OK) {
                int64_t grain = P >= 4096 ? 1 : 4096 / P;
                st = launch_mode(dev, ex->kernel, &ra, MT__RMODE_COMBINE, pl->J, grain);
            }
        }
    }
    mt_free(ra.args);
    mt_free(ra.sc);
    mt_buffer_release(tmp); /* later work on the device's queue is ordered after ours */
    return st;
}

/* Plans and launches job; when rec is not NULL and both succeed, *rec keeps the plan. */
static mt_status run_compiled(const rjob *job, rexec *rec)
{
    mt_device *dev = mt_buffer_device(job->out->buf);
    rexec local;
    rexec *ex = rec ? rec : &local;
    mt_status st = plan_compiled(job, dev, ex);
    if (st == MT_OK) st = launch_compiled(job, dev, ex);
    return st;
}

/* ---------------------------------------------------------------- dispatch */

/* The input a map reads unchanged (output node = INPUT node of that input's dtype), or -1. */
static int32_t identity_arg(const rjob *job)
{
    const mt_knode *o = &job->map->nodes[job->map->outs[0]];
    if (o->op != MT_SOP_INPUT || o->arg < 0 || o->arg >= job->nin) return -1;
    return o->dtype == job->in[o->arg]->dtype ? o->arg : -1;
}

static bool host_compiler_usable(void)
{
    const char *e = getenv("MLTRAIN_NO_CC");
    if (e && *e && strcmp(e, "0") != 0) return false;
    return mt__hostcc_available();
}

/* Evaluates the job's map over the full shape into tmp (new C-contiguous array). */
static mt_status materialize(mt_array *tmp, const rjob *job)
{
    mt_device *dev = mt_buffer_device(job->out->buf);
    mt_status st = mt_array_empty(tmp, dev, job->map_dt, job->ndim, job->dims, 'C');
    if (st != MT_OK) return st;
    mt_array *outs[1] = {tmp};
    st = mt_elemwise(job->map, job->nin, job->in, outs, job->nparams, job->params);
    if (st != MT_OK) mt_array_clear(tmp);
    return st;
}

/* The job reduced over tmp (the materialised map) with the identity map mine. */
static void job_over(rjob *j2, const rjob *job, const mt_array *tmp, const mt_kexpr *ident)
{
    *j2 = *job;
    j2->map = ident;
    j2->nin = 1;
    j2->in[0] = tmp;
    j2->nparams = 0;
    j2->params = NULL;
    for (int32_t a = 0; a < tmp->ndim; a++)
        j2->in_strides[0][a] = tmp->strides[a];
}

static mt_status run_materialized(const rjob *job, bool generic)
{
    mt_array tmp = {0};
    mt_kexpr ident;
    mt_kexpr_init(&ident);
    int32_t n = mt_kexpr_input(&ident, 0, job->map_dt);
    mt_status st = n < 0 ? mt_last_status() : mt_kexpr_add_output(&ident, n);
    if (st == MT_OK) st = materialize(&tmp, job);
    if (st == MT_OK) {
        rjob j2;
        job_over(&j2, job, &tmp, &ident);
        st = generic ? run_generic(&j2, 0) : run_compiled(&j2, NULL);
    }
    mt_array_clear(&tmp);
    mt_kexpr_deinit(&ident);
    return st;
}

static mt_status run_host_generic(const rjob *job)
{
    int32_t arg = identity_arg(job);
    if (arg >= 0) return run_generic(job, arg);
    return run_materialized(job, true);
}

/* rec (may be NULL) is filled only when the compiled kernel ran on the job itself; the caller
 * tells that apart by the returned flag in *recorded. */
static mt_status reduce_dispatch(const rjob *job, rexec *rec, bool *recorded)
{
    mt_device *dev = mt_buffer_device(job->out->buf);
    bool host = dev->ops->klang == MT_KLANG_C && mt_device_is_host_addressable(dev);
    if (host && !host_compiler_usable()) return run_host_generic(job);
    if (mt__kexpr_uses_index(job->map)) return run_materialized(job, false);
    mt_status st = run_compiled(job, rec);
    if (st == MT_OK && recorded) *recorded = true;
    if (st == MT_ERR_NOT_BUILT && host) { /* the compiler vanished: interpret instead */
        mt_log(MT_LOG_DEBUG, "reduce: kernel not built (%s); using the generic loop",
               mt_last_error());
        mt_err_clear();
        /* or the kernel is left to an open batch: then the helper kernel of a materialised
         * map is not one the real run needs, so it is not recorded */
        mt__hostcc_batch_pause(true);
        st = run_host_generic(job);
        mt__hostcc_batch_pause(false);
    }
    return st;
}

/* Runs job (shapes and dtypes checked): empty cases, then the kernel (rec, recorded: see
 * reduce_dispatch). */
static mt_status reduce_run(const rjob *job, rexec *rec, bool *recorded)
{
    int64_t J = 1, K = 1;
    for (int32_t a = 0; a < job->ndim; a++) {
        if (job->mask[a])
            K *= job->dims[a];
        else
            J *= job->dims[a];
    }
    if (J == 0) return MT_OK;
    if (K == 0) {
        mt_scalar v;
        switch (job->op) {
        case MT_REDUCE_PROD:
            v = mt_scalar_i64(1);
            break;
        case MT_REDUCE_ALL:
            v = mt_scalar_bool(true);
            break;
        case MT_REDUCE_ANY:
            v = mt_scalar_bool(false);
            break;
        case MT_REDUCE_MEAN:
            v = mt_scalar_f64(NAN);
            break;
        case MT_REDUCE_SUM:
            v = mt_scalar_i64(0);
            break;
        default:
            return mt_err_set(MT_ERR_INVALID,
                              "zero-size array to reduction operation %s which has no identity",
                              mt_reduce_op_name(job->op));
        }
        return mt_array_fill(job->out, v);
    }
    return reduce_dispatch(job, rec, recorded);
}

/* ---------------------------------------------------------------- public entry points */

/* Byte strides of a broadcast to the full shape (NumPy rules, checked by the caller). */
static void broadcast_strides(int64_t *st, const mt_array *a, int32_t ndim, const int64_t *dims)
{
    for (int32_t ax = 0; ax < ndim; ax++) {
        int32_t b = ax - (ndim - a->ndim);
        st[ax] = b < 0 || (a->dims[b] == 1 && dims[ax] != 1) ? 0 : a->strides[b];
    }
}

/* Output strides per full-shape axis for an output of the reduced shape (keepdims or not). */
static mt_status output_strides(rjob *job, const char *name)
{
    const mt_array *o = job->out;
    int32_t nred = 0;
    for (int32_t a = 0; a < job->ndim; a++)
        nred += job->mask[a];
    bool keep = nred > 0 && o->ndim == job->ndim;
    bool ok = keep || o->ndim == job->ndim - nred;
    for (int32_t a = 0, b = 0; ok && a < job->ndim; a++) {
        if (job->mask[a] && !keep) {
            job->out_strides[a] = 0;
            continue;
        }
        int64_t want = job->mask[a] ? 1 : job->dims[a];
        if (o->dims[b] != want) ok = false;
        job->out_strides[a] = job->mask[a] ? 0 : o->strides[b];
        b++;
    }
    if (!ok) {
        char s1[160], s2[160];
        return mt_err_set(MT_ERR_SHAPE,
                          "reduce %s: output shape %s does not match the reduced "
                          "shape of %s over the given axes",
                          name, mt_shape_str(o->ndim, o->dims, s1, sizeof s1),
                          mt_shape_str(job->ndim, job->dims, s2, sizeof s2));
    }
    return MT_OK;
}

static mt_status array_reduce(mt_array *out, const mt_array *src, mt_reduce_op op, int32_t naxes,
                              const int32_t *axes, bool keepdims, mt_reduce_memo **memo);

mt_status mt_array_reduce(mt_array *out, const mt_array *src, mt_reduce_op op, int32_t naxes,
                          const int32_t *axes, bool keepdims)
{
    return array_reduce(out, src, op, naxes, axes, keepdims, NULL);
}

mt_status mt_array_reduce_memo(mt_reduce_memo **memo, mt_array *out, const mt_array *src,
                               mt_reduce_op op, int32_t naxes, const int32_t *axes,
                               bool keepdims)
{
    if (!memo) return mt_err_set(MT_ERR_INVALID, "reduce: NULL memo");
    return array_reduce(out, src, op, naxes, axes, keepdims, memo);
}

/* The identity map over src's dtype that memo keeps for mt_array_reduce_memo. */
static mt_status memo_identity(mt_reduce_memo **memo, mt_dtype dt, const mt_kexpr **map);

/* mt_array_reduce, through *memo when memo is not NULL. */
static mt_status array_reduce(mt_array *out, const mt_array *src, mt_reduce_op op, int32_t naxes,
                              const int32_t *axes, bool keepdims, mt_reduce_memo **memo)
{
    if (!out || !src) return mt_err_set(MT_ERR_INVALID, "reduce: NULL array argument");
    if (!op_valid(op)) return mt_err_set(MT_ERR_INVALID, "reduce: invalid op %d", (int)op);
    const char *name = mt_reduce_op_name(op);
    if (!src->buf || !mt_dtype_valid(src->dtype) || src->ndim < 0 || src->ndim > MT_MAX_DIMS)
        return mt_err_set(MT_ERR_INVALID, "reduce %s: source is not a valid array", name);
    rjob job;
    memset(&job, 0, sizeof job);
    mt_status st = norm_axes(job.mask, src->ndim, naxes, axes, op);
    if (st != MT_OK) return st;
    job.op = op;
    job.nin = 1;
    job.in[0] = src;
    job.ndim = src->ndim;
    memcpy(job.dims, src->dims, sizeof job.dims);
    memcpy(job.in_strides[0], src->strides, sizeof job.in_strides[0]);
    job.map_dt = src->dtype;
    int64_t odims[MT_MAX_DIMS];
    int32_t ond = 0;
    for (int32_t a = 0; a < src->ndim; a++) {
        if (!job.mask[a])
            odims[ond++] = src->dims[a];
        else if (keepdims)
            odims[ond++] = 1;
    }
    mt_array res = {0};
    st = mt_array_empty(&res, mt_buffer_device(src->buf), mt_reduce_result_dtype(op, src->dtype),
                        ond, odims, 'C');
    if (src->ndim < 1 || mt_array_size(src) == 0) memo = NULL; /* no kernel: the plain path */
    if (memo) {
        const mt_kexpr *map = NULL;
        if (st == MT_OK) st = memo_identity(memo, src->dtype, &map);
        if (st == MT_OK)
            st = mt_reduce_memo_run(memo, map, 1, &src, op, naxes, axes, &res, 0, NULL);
        if (st != MT_OK) {
            mt_array_clear(&res);
            return st;
        }
        *out = res;
        return MT_OK;
    }
    mt_kexpr ident;
    mt_kexpr_init(&ident);
    if (st == MT_OK) {
        int32_t n = mt_kexpr_input(&ident, 0, src->dtype);
        st = n < 0 ? mt_last_status() : mt_kexpr_add_output(&ident, n);
    }
    if (st == MT_OK) {
        job.map = &ident;
        job.out = &res;
        st = output_strides(&job, name);
    }
    if (st == MT_OK) st = reduce_run(&job, NULL, NULL);
    mt_kexpr_deinit(&ident);
    if (st != MT_OK) {
        mt_array_clear(&res);
        return st;
    }
    *out = res;
    return MT_OK;
}

/* Checks the fused call's inputs and output and fills job's shapes. */
static mt_status fused_check(rjob *job, const mt_kexpr *map, int32_t nin,
                             const mt_array *const *inputs, mt_array *out, const char *name)
{
    if (!map || !out || (nin > 0 && !inputs))
        return mt_err_set(MT_ERR_INVALID, "reduce %s: NULL argument", name);
    mt_status st = mt_kexpr_validate(map);
    if (st != MT_OK) return mt_err_prefix(st, "reduce %s: ", name);
    if (map->nouts != 1)
        return mt_err_set(MT_ERR_INVALID,
                          "reduce %s: the map must have exactly one output, "
                          "not %d",
                          name, (int)map->nouts);
    if (nin < 1 || nin > MT__RED_MAX_IN)
        return mt_err_set(MT_ERR_INVALID, "reduce %s: %d inputs (1 to %d supported)", name,
                          (int)nin, MT__RED_MAX_IN);
    if (!out->buf || !mt_dtype_valid(out->dtype))
        return mt_err_set(MT_ERR_INVALID, "reduce %s: output is not a valid array", name);
    if (!(out->flags & MT_ARRAY_WRITEABLE))
        return mt_err_set(MT_ERR_INVALID, "reduce %s: output is read-only (a broadcast view?)",
                          name);
    mt_device *dev = mt_buffer_device(out->buf);
    mt_dtype want[MT__RED_MAX_IN];
    st = mt__kexpr_input_types(map, nin, want);
    if (st != MT_OK) return mt_err_prefix(st, "reduce %s: ", name);
    job->ndim = 0;
    for (int32_t i = 0; i < nin; i++) {
        const mt_array *a = inputs[i];
        if (!a || !a->buf)
            return mt_err_set(MT_ERR_INVALID, "reduce %s: input %d is NULL or empty", name, (int)i);
        if (mt_buffer_device(a->buf) != dev)
            return mt_err_set(MT_ERR_INVALID,
                              "reduce %s: input %d is on %s but the output is "
                              "on %s",
                              name, (int)i, mt_device_name(mt_buffer_device(a->buf)),
                              mt_device_name(dev));
        if (want[i] != MT_DTYPE_COUNT && want[i] != a->dtype)
            return mt_err_set(MT_ERR_DTYPE, "reduce %s: input %d is %s but the map reads it as %s",
                              name, (int)i, mt_dtype_name(a->dtype), mt_dtype_name(want[i]));
        st = mt_broadcast_shapes(&job->ndim, job->dims, job->ndim, job->dims, a->ndim, a->dims);
        if (st != MT_OK) return mt_err_prefix(st, "reduce %s: input %d: ", name, (int)i);
        job->in[i] = a;
    }
    job->nin = nin;
    job->map = map;
    job->map_dt = map->nodes[map->outs[0]].dtype;
    for (int32_t i = 0; i < nin; i++)
        broadcast_strides(job->in_strides[i], inputs[i], job->ndim, job->dims);
    return MT_OK;
}

static mt_status reduce_fused_full(const mt_kexpr *map, int32_t nin, const mt_array *const *inputs,
                                   mt_reduce_op op, int32_t naxes, const int32_t *axes,
                                   mt_array *out, int32_t nparams, const mt_scalar *params,
                                   rexec *rec, bool *recorded)
{
    if (!op_valid(op)) return mt_err_set(MT_ERR_INVALID, "reduce: invalid op %d", (int)op);
    const char *name = mt_reduce_op_name(op);
    rjob job;
    memset(&job, 0, sizeof job);
    job.op = op;
    mt_status st = fused_check(&job, map, nin, inputs, out, name);
    if (st != MT_OK) return st;
    if (nparams < 0 || (nparams > 0 && !params))
        return mt_err_set(MT_ERR_INVALID, "reduce %s: %d parameters but no values", name,
                          (int)nparams);
    mt_dtype pdt[64];
    if (nparams > 64)
        return mt_err_set(MT_ERR_INVALID, "reduce %s: %d parameters (at most 64)", name,
                          (int)nparams);
    st = mt__kexpr_param_types(map, nparams, pdt);
    if (st != MT_OK) return mt_err_prefix(st, "reduce %s: ", name);
    job.nparams = nparams;
    job.params = params;
    st = norm_axes(job.mask, job.ndim, naxes, axes, op);
    if (st != MT_OK) return st;
    mt_dtype rd = mt_reduce_result_dtype(op, job.map_dt);
    if (out->dtype != rd)
        return mt_err_set(MT_ERR_DTYPE, "reduce %s: output is %s but %s of %s gives %s", name,
                          mt_dtype_name(out->dtype), name, mt_dtype_name(job.map_dt),
                          mt_dtype_name(rd));
    job.out = out;
    st = output_strides(&job, name);
    if (st != MT_OK) return st;
    return reduce_run(&job, rec, recorded);
}

mt_status mt_reduce_fused(const mt_kexpr *map, int32_t nin, const mt_array *const *inputs,
                          mt_reduce_op op, int32_t naxes, const int32_t *axes, mt_array *out,
                          int32_t nparams, const mt_scalar *params)
{
    return reduce_fused_full(map, nin, inputs, op, naxes, axes, out, nparams, params, NULL, NULL);
}

/* ---------------------------------------------------------------- the launch memo */

/* One array's layout as a memo recorded it. */
typedef struct rmemo_arg {
    mt_dtype dt;
    int32_t ndim;
    int64_t dims[MT_MAX_DIMS];
    int64_t strides[MT_MAX_DIMS];
} rmemo_arg;

struct mt_reduce_memo {
    bool valid;
    mt_device *dev;
    const mt_kexpr *map;
    mt_reduce_op op;
    int32_t nin, nparams, naxes;
    int32_t axes[MT_MAX_DIMS];
    int64_t hits;
    rexec ex;                           /* ex.pl.off: relative to the arrays' offsets */
    rmemo_arg args[MT__RED_MAX_IN + 1]; /* inputs, then the output */
    bool has_ident;                     /* mt_array_reduce_memo: its identity map */
    mt_kexpr ident;
};

static void rmemo_record(rmemo_arg *m, const mt_array *a)
{
    m->dt = a->dtype;
    m->ndim = a->ndim;
    memcpy(m->dims, a->dims, (size_t)a->ndim * sizeof a->dims[0]);
    memcpy(m->strides, a->strides, (size_t)a->ndim * sizeof a->strides[0]);
}

static bool rmemo_same(const rmemo_arg *m, const mt_array *a, mt_device *dev)
{
    return a && a->buf && a->dtype == m->dt && a->ndim == m->ndim &&
           memcmp(a->dims, m->dims, (size_t)a->ndim * sizeof a->dims[0]) == 0 &&
           memcmp(a->strides, m->strides, (size_t)a->ndim * sizeof a->strides[0]) == 0 &&
           mt_buffer_device(a->buf) == dev;
}

static bool rmemo_applies(const mt_reduce_memo *m, const mt_kexpr *map, int32_t nin,
                          const mt_array *const *inputs, mt_reduce_op op, int32_t naxes,
                          const int32_t *axes, const mt_array *out, int32_t nparams,
                          const mt_scalar *params)
{
    if (!m->valid || m->map != map || m->op != op || m->nin != nin || m->nparams != nparams ||
        m->naxes != naxes || !inputs || !out || (nparams > 0 && !params) || (naxes > 0 && !axes))
        return false;
    for (int32_t i = 0; i < naxes; i++)
        if (axes[i] != m->axes[i]) return false;
    if (!rmemo_same(&m->args[nin], out, m->dev) || !(out->flags & MT_ARRAY_WRITEABLE)) return false;
    for (int32_t i = 0; i < nin; i++)
        if (!rmemo_same(&m->args[i], inputs[i], m->dev)) return false;
    return true; /* the kernel is loaded: as for the elementwise memo, a compiler that became
                  * unusable since (or MLTRAIN_NO_CC set later) does not matter to it */
}

mt_status mt_reduce_memo_run(mt_reduce_memo **memo, const mt_kexpr *map, int32_t nin,
                             const mt_array *const *inputs, mt_reduce_op op, int32_t naxes,
                             const int32_t *axes, mt_array *out, int32_t nparams,
                             const mt_scalar *params)
{
    if (!memo) return mt_err_set(MT_ERR_INVALID, "reduce: NULL memo");
    mt_reduce_memo *m = *memo;
    if (m && rmemo_applies(m, map, nin, inputs, op, naxes, axes, out, nparams, params)) {
        rjob job;
        job.op = op;
        job.map = map;
        job.nin = nin;
        for (int32_t i = 0; i < nin; i++)
            job.in[i] = inputs[i];
        job.out = out;
        job.map_dt = map->nodes[map->outs[0]].dtype;
        job.nparams = nparams;
        job.params = params;
        rexec ex = m->ex;
        for (int32_t i = 0; i < nin; i++)
            ex.pl.off[i] += (int64_t)inputs[i]->offset;
        ex.pl.off[nin] += (int64_t)out->offset;
        mt_status st = launch_compiled(&job, m->dev, &ex);
        if (st == MT_OK) m->hits++;
        return st;
    }
    if (!m) {
        if (!(m = mt_calloc(1, sizeof *m))) return mt_err_prefix(MT_ERR_NOMEM, "reduce: ");
        *memo = m;
    }
    m->valid = false;
    bool recorded = false;
    mt_status st = reduce_fused_full(map, nin, inputs, op, naxes, axes, out, nparams, params,
                                     &m->ex, &recorded);
    if (st != MT_OK || !recorded || naxes > MT_MAX_DIMS) return st;
    m->dev = mt_buffer_device(out->buf);
    m->map = map;
    m->op = op;
    m->nin = nin;
    m->nparams = nparams;
    m->naxes = naxes;
    for (int32_t i = 0; i < naxes; i++)
        m->axes[i] = axes[i];
    for (int32_t i = 0; i < nin; i++) {
        rmemo_record(&m->args[i], inputs[i]);
        m->ex.pl.off[i] -= (int64_t)inputs[i]->offset;
    }
    rmemo_record(&m->args[nin], out);
    m->ex.pl.off[nin] -= (int64_t)out->offset;
    m->valid = true;
    return st;
}

int64_t mt_reduce_memo_hits(const mt_reduce_memo *memo)
{
    return memo ? memo->hits : 0;
}

void mt_reduce_memo_free(mt_reduce_memo *memo)
{
    if (memo && memo->has_ident) mt_kexpr_deinit(&memo->ident);
    mt_free(memo);
}

static mt_status memo_identity(mt_reduce_memo **memo, mt_dtype dt, const mt_kexpr **map)
{
    mt_reduce_memo *m = *memo;
    if (!m) {
        if (!(m = mt_calloc(1, sizeof *m))) return mt_err_prefix(MT_ERR_NOMEM, "reduce: ");
        *memo = m;
    }
    if (m->has_ident && m->ident.nodes[m->ident.outs[0]].dtype != dt) {
        mt_kexpr_deinit(&m->ident);
        m->has_ident = false;
        m->valid = false; /* it recorded the former map */
    }
    if (!m->has_ident) {
        mt_kexpr_init(&m->ident);
        int32_t n = mt_kexpr_input(&m->ident, 0, dt);
        mt_status st = n < 0 ? mt_last_status() : mt_kexpr_add_output(&m->ident, n);
        if (st != MT_OK) {
            mt_kexpr_deinit(&m->ident);
            return st;
        }
        m->has_ident = true;
    }
    *map = &m->ident;
    return MT_OK;
}
