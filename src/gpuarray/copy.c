/* Copies, casts, fills and arange.
 *
 * On host-addressable devices everything is done here with strided loops over collapsed
 * dimensions and mt_dtype_convert, so copies never need a C compiler. On other devices
 * (OpenCL) a same-device copy is one raw buffer copy when both sides are contiguous with the
 * same dtype and shape, and otherwise a one-node elementwise kernel (INPUT, CAST); fills of
 * contiguous arrays upload a repeated pattern and others run a one-PARAM kernel (a parameter,
 * not a constant, so one compiled kernel serves every fill value). Copies between devices stage
 * through host memory in contiguous form.
 *
 * Overlap: when source and destination share bytes of one buffer the source is first copied to
 * a temporary, which gives NumPy's result (a[1:] = a[:-1] shifts). */
#include <math.h>
#include <string.h>

#include "gpuarray_impl.h"

/* ---------------------------------------------------------------- host strided engine */

typedef struct copy_plan {
    char *dst;
    const char *src;
    mt_dtype ddt, sdt;
    int32_t nd;
    int64_t dims[MT_MAX_DIMS], ds[MT_MAX_DIMS], ss[MT_MAX_DIMS];
} copy_plan;

/* Drops length-1 dims and merges neighbours that are contiguous in both stride sets. */
static void plan_collapse(copy_plan *p, int32_t ndim, const int64_t *dims, const int64_t *ds,
                          const int64_t *ss)
{
    int32_t n = 0;
    for (int32_t i = 0; i < ndim; i++) {
        if (dims[i] == 1) continue;
        if (n > 0 && p->ds[n - 1] == ds[i] * dims[i] && p->ss[n - 1] == ss[i] * dims[i]) {
            p->dims[n - 1] *= dims[i];
            p->ds[n - 1] = ds[i];
            p->ss[n - 1] = ss[i];
            continue;
        }
        p->dims[n] = dims[i];
        p->ds[n] = ds[i];
        p->ss[n] = ss[i];
        n++;
    }
    if (n == 0) { /* a single element */
        p->dims[0] = 1;
        p->ds[0] = p->ss[0] = 0;
        n = 1;
    }
    p->nd = n;
}

/* Copies n elements of one dtype; memcpy per element keeps unaligned views safe. */
#define COPY_RUN(T)                                                                                \
    for (int64_t i = 0; i < n; i++) {                                                              \
        T v;                                                                                       \
        memcpy(&v, s + i * ss, sizeof v);                                                          \
        memcpy(d + i * ds, &v, sizeof v);                                                          \
    }

static void copy_run(char *d, int64_t ds, mt_dtype ddt, const char *s, int64_t ss, mt_dtype sdt,
                     int64_t n)
{
    if (ddt != sdt) {
        mt_dtype_convert(d, ddt, (ptrdiff_t)ds, s, sdt, (ptrdiff_t)ss, (size_t)n);
        return;
    }
    int64_t isz = (int64_t)mt_dtype_size(ddt);
    if (ds == isz && ss == isz) {
        memcpy(d, s, (size_t)(n * isz));
        return;
    }
    switch (isz) {
    case 1:
        COPY_RUN(uint8_t);
        break;
    case 2:
        COPY_RUN(uint16_t);
        break;
    case 4:
        COPY_RUN(uint32_t);
        break;
    default:
        COPY_RUN(uint64_t);
        break;
    }
}

/* Runs flat elements [begin, end) of the collapsed iteration space. */
static void plan_run(const copy_plan *p, int64_t begin, int64_t end)
{
    int32_t nd = p->nd, last = nd - 1;
    int64_t idx[MT_MAX_DIMS];
    int64_t rem = begin;
    for (int32_t i = last; i >= 0; i--) {
        idx[i] = rem % p->dims[i];
        rem /= p->dims[i];
    }
    while (begin < end) {
        int64_t doff = 0, soff = 0;
        for (int32_t i = 0; i < nd; i++) {
            doff += idx[i] * p->ds[i];
            soff += idx[i] * p->ss[i];
        }
        int64_t n = p->dims[last] - idx[last];
        if (n > end - begin) n = end - begin;
        copy_run(p->dst + doff, p->ds[last], p->ddt, p->src + soff, p->ss[last], p->sdt, n);
        begin += n;
        idx[last] += n;
        for (int32_t i = last; i > 0 && idx[i] == p->dims[i]; i--) {
            idx[i] = 0;
            idx[i - 1]++;
        }
    }
}

static void plan_chunk(void *ctx, int64_t begin, int64_t end, int thread)
{
    plan_run(ctx, begin, end);
}

/* Transpose-like copies (the source is contiguous along the second-last axis, the destination
 * along the last) go tile by tile so both sides stay in cache: one strided pass over the source
 * runs an order of magnitude below memory bandwidth. */
#define TILE 32

static int64_t abs64(int64_t v)
{
    return v < 0 ? -v : v;
}

static bool plan_tiled(const copy_plan *p)
{
    int32_t l = p->nd - 1;
    if (p->nd < 2 || p->dims[l] < TILE || p->dims[l - 1] < TILE) return false;
    return p->ss[l - 1] != 0 && abs64(p->ss[l - 1]) < abs64(p->ss[l]) &&
           abs64(p->ds[l]) < abs64(p->ds[l - 1]);
}

/* Units of work: (outer index, block of TILE rows) pairs, rows being axis nd-2. */
static void plan_run_tiles(const copy_plan *p, int64_t ubegin, int64_t uend)
{
    int32_t l = p->nd - 1;
    int64_t rows = p->dims[l - 1], cols = p->dims[l];
    int64_t nrb = (rows + TILE - 1) / TILE;
    int64_t isz = (int64_t)mt_dtype_size(p->ddt);
    _Alignas(64) char tile[TILE * TILE * 8];
    for (int64_t u = ubegin; u < uend; u++) {
        int64_t o = u / nrb, r0 = (u % nrb) * TILE;
        int64_t r1 = r0 + TILE < rows ? r0 + TILE : rows;
        int64_t doff = 0, soff = 0;
        for (int32_t i = l - 2; i >= 0; i--) {
            int64_t k = o % p->dims[i];
            o /= p->dims[i];
            doff += k * p->ds[i];
            soff += k * p->ss[i];
        }
        for (int64_t c0 = 0; c0 < cols; c0 += TILE) {
            int64_t nc = cols - c0 < TILE ? cols - c0 : TILE;
            /* read source columns along their contiguous axis into the tile (converting),
             * then write destination rows along theirs: power-of-two strides on both sides
             * would otherwise map a tile's lines to one cache set */
            for (int64_t c = 0; c < nc; c++)
                copy_run(tile + c * isz, TILE * isz, p->ddt,
                         p->src + soff + r0 * p->ss[l - 1] + (c0 + c) * p->ss[l], p->ss[l - 1],
                         p->sdt, r1 - r0);
            for (int64_t r = r0; r < r1; r++)
                copy_run(p->dst + doff + r * p->ds[l - 1] + c0 * p->ds[l], p->ds[l], p->ddt,
                         tile + (r - r0) * TILE * isz, isz, p->ddt, nc);
        }
    }
}

static void plan_tile_chunk(void *ctx, int64_t begin, int64_t end, int thread)
{
    plan_run_tiles(ctx, begin, end);
}

#define PARALLEL_MIN ((int64_t)1 << 18)
#define PARALLEL_CHUNK ((int64_t)1 << 16)

void mt__host_copy_strided(char *dst, mt_dtype dst_dt, const int64_t *dst_strides, const char *src,
                           mt_dtype src_dt, const int64_t *src_strides, int32_t ndim,
                           const int64_t *dims, mt_threadpool *pool)
{
    int64_t total = 1;
    for (int32_t i = 0; i < ndim; i++)
        total *= dims[i];
    if (total == 0) return;
    copy_plan p;
    p.dst = dst;
    p.src = src;
    p.ddt = dst_dt;
    p.sdt = src_dt;
    plan_collapse(&p, ndim, dims, dst_strides, src_strides);
    bool threads = pool && total >= PARALLEL_MIN && mt_threadpool_size(pool) > 1;
    if (plan_tiled(&p)) {
        int32_t l = p.nd - 1;
        int64_t units = total / (p.dims[l - 1] * p.dims[l]) * ((p.dims[l - 1] + TILE - 1) / TILE);
        int64_t per_unit = TILE * p.dims[l];
        if (threads)
            mt_threadpool_run(pool, units, (PARALLEL_CHUNK + per_unit - 1) / per_unit,
                              plan_tile_chunk, &p);
        else
            plan_run_tiles(&p, 0, units);
        return;
    }
    if (threads)
        mt_threadpool_run(pool, total, PARALLEL_CHUNK, plan_chunk, &p);
    else
        plan_run(&p, 0, total);
}

/* ---------------------------------------------------------------- helpers */

static mt_threadpool *pool_of(const mt_array *a)
{
    return mt_array_device(a)->pool;
}

static void c_strides(int32_t ndim, const int64_t *dims, mt_dtype dt, int64_t *strides)
{
    int64_t s = (int64_t)mt_dtype_size(dt);
    for (int32_t i = ndim - 1; i >= 0; i--) {
        strides[i] = s;
        s *= dims[i] > 0 ? dims[i] : 1;
    }
}

/* Strides of src broadcast to (ndim, dims): 0 on broadcast axes. ERR_SHAPE naming both. */
static mt_status broadcast_strides(const mt_array *src, int32_t ndim, const int64_t *dims,
                                   const int64_t *src_strides, int64_t *out, const char *what)
{
    for (int32_t k = 0; k < ndim; k++) {
        int32_t i = ndim - 1 - k, j = src->ndim - 1 - k;
        if (j < 0)
            out[i] = 0;
        else if (src->dims[j] == dims[i])
            out[i] = src_strides[j];
        else if (src->dims[j] == 1)
            out[i] = 0;
        else
            goto mismatch;
    }
    if (src->ndim <= ndim) return MT_OK;
mismatch:;
    char sa[256], sb[256];
    return mt_err_set(MT_ERR_SHAPE,
                      "%s: source of shape %s cannot be broadcast to the destination shape %s",
                      what, mt_shape_str(src->ndim, src->dims, sa, sizeof sa),
                      mt_shape_str(ndim, dims, sb, sizeof sb));
}

/* Byte range [lo, hi) an array touches in its buffer (size > 0). */
static void byte_range(const mt_array *a, int64_t *lo, int64_t *hi)
{
    int64_t l = (int64_t)a->offset, h = (int64_t)a->offset;
    for (int32_t i = 0; i < a->ndim; i++) {
        int64_t ext = (a->dims[i] - 1) * a->strides[i];
        if (ext < 0)
            l += ext;
        else
            h += ext;
    }
    *lo = l;
    *hi = h + (int64_t)mt_dtype_size(a->dtype);
}

static bool overlaps(const mt_array *a, const mt_array *b)
{
    if (a->buf != b->buf) return false;
    int64_t alo, ahi, blo, bhi;
    byte_range(a, &alo, &ahi);
    byte_range(b, &blo, &bhi);
    return alo < bhi && blo < ahi;
}

static mt_status check_writeable(const mt_array *a, const char *what)
{
    if (!a || !a->buf)
        return mt_err_set(MT_ERR_INVALID, "%s: the destination array is empty", what);
    if (!(a->flags & MT_ARRAY_WRITEABLE)) {
        char desc[256];
        return mt_err_set(MT_ERR_INVALID, "%s: the destination %s is read-only (a broadcast view?)",
                          what, mt_array_describe(a, desc, sizeof desc));
    }
    return MT_OK;
}

/* ---------------------------------------------------------------- device paths */

/* Same-device copy on a device without host pointers (no overlap). */
static mt_status device_copy(mt_array *dst, const mt_array *src)
{
    if (src->dtype == dst->dtype && src->ndim == dst->ndim &&
        memcmp(src->dims, dst->dims, (size_t)dst->ndim * sizeof dst->dims[0]) == 0 &&
        mt_array_is_c_contiguous(src) && mt_array_is_c_contiguous(dst))
        return mt_buffer_copy(dst->buf, dst->offset, src->buf, src->offset, mt_array_nbytes(dst),
                              NULL);
    mt_kexpr e;
    mt_kexpr_init(&e);
    int32_t n = mt_kexpr_input(&e, 0, src->dtype);
    if (src->dtype != dst->dtype) n = mt_kexpr_cast(&e, n, dst->dtype);
    mt_status st = n < 0 ? mt_last_status() : mt_kexpr_add_output(&e, n);
    if (st == MT_OK) {
        const mt_array *ins[1] = {src};
        mt_array *outs[1] = {dst};
        st = mt_elemwise(&e, 1, ins, outs, 0, NULL);
    }
    mt_kexpr_deinit(&e);
    return st;
}

/* Source elements in host memory: src's own memory, or a C-order copy read from the device. */
typedef struct host_view {
    const char *ptr;
    int64_t strides[MT_MAX_DIMS];
    void *owned; /* mt_free */
} host_view;

static mt_status host_view_of(host_view *hv, const mt_array *src)
{
    memset(hv, 0, sizeof *hv);
    const char *base = mt_buffer_host_ptr(src->buf);
    if (base) {
        mt_status st = mt_device_sync(mt_array_device(src));
        if (st != MT_OK) return st;
        hv->ptr = base + src->offset;
        memcpy(hv->strides, src->strides, sizeof hv->strides);
        return MT_OK;
    }
    size_t n = mt_array_nbytes(src);
    hv->owned = mt_malloc(n ? n : 1);
    if (!hv->owned) return mt_err_prefix(MT_ERR_NOMEM, "staging a copy through host memory: ");
    mt_status st = mt_array_to_host(hv->owned, n, src);
    if (st != MT_OK) {
        mt_free(hv->owned);
        hv->owned = NULL;
        return st;
    }
    hv->ptr = hv->owned;
    c_strides(src->ndim, src->dims, src->dtype, hv->strides);
    return MT_OK;
}

static mt_status copy_from_host_view(mt_array *dst, const mt_array *src, const host_view *hv);

/* Copy between two devices (at least one without host pointers), staged through the host. */
static mt_status cross_copy(mt_array *dst, const mt_array *src)
{
    host_view hv;
    mt_status st = host_view_of(&hv, src);
    if (st != MT_OK) return st;
    st = copy_from_host_view(dst, src, &hv);
    mt_free(hv.owned);
    return st;
}

static mt_status copy_from_host_view(mt_array *dst, const mt_array *src, const host_view *hv)
{
    int64_t bstr[MT_MAX_DIMS];
    mt_status st = broadcast_strides(src, dst->ndim, dst->dims, hv->strides, bstr, "copy");
    if (st != MT_OK) return st;
    char *dbase = mt_buffer_host_ptr(dst->buf);
    if (dbase) {
        st = mt_device_sync(mt_array_device(dst));
        if (st != MT_OK) return st;
        mt__host_copy_strided(dbase + dst->offset, dst->dtype, dst->strides, hv->ptr, src->dtype,
                              bstr, dst->ndim, dst->dims, pool_of(dst));
        return MT_OK;
    }
    /* convert and broadcast on the host into C order, upload, then scatter if needed */
    size_t n = mt_array_nbytes(dst);
    char *tmp = mt_malloc(n);
    if (!tmp) return mt_err_prefix(MT_ERR_NOMEM, "staging a copy through host memory: ");
    int64_t cstr[MT_MAX_DIMS];
    c_strides(dst->ndim, dst->dims, dst->dtype, cstr);
    mt__host_copy_strided(tmp, dst->dtype, cstr, hv->ptr, src->dtype, bstr, dst->ndim, dst->dims,
                          NULL);
    if (mt_array_is_c_contiguous(dst)) {
        st = mt_buffer_write(dst->buf, dst->offset, tmp, n, NULL);
    } else {
        mt_array t;
        st = mt_array_from_host(&t, mt_array_device(dst), dst->dtype, dst->ndim, dst->dims, tmp);
        if (st == MT_OK) {
            st = device_copy(dst, &t);
            mt_array_clear(&t);
        }
    }
    mt_free(tmp);
    return st;
}

/* ---------------------------------------------------------------- public copies */

mt_status mt_array_copy(mt_array *dst, const mt_array *src)
{
    mt_status st = check_writeable(dst, "copy");
    if (st != MT_OK) return st;
    if (!src || !src->buf) return mt_err_set(MT_ERR_INVALID, "copy: the source array is empty");
    int64_t bstr[MT_MAX_DIMS];
    st = broadcast_strides(src, dst->ndim, dst->dims, src->strides, bstr, "copy");
    if (st != MT_OK || mt_array_size(dst) == 0) return st;
    if (overlaps(dst, src)) {
        /* NumPy semantics: the whole source is read before anything is written */
        mt_array tmp;
        st = mt_array_copy_to(&tmp, src, NULL);
        if (st != MT_OK) return st;
        st = mt_array_copy(dst, &tmp);
        mt_array_clear(&tmp);
        return st;
    }
    char *dbase = mt_buffer_host_ptr(dst->buf);
    const char *sbase = mt_buffer_host_ptr(src->buf);
    if (dbase && sbase) {
        mt_device *dd = mt_array_device(dst), *sd = mt_array_device(src);
        st = mt_device_sync(sd);
        if (st == MT_OK && dd != sd) st = mt_device_sync(dd);
        if (st != MT_OK) return st;
        mt__host_copy_strided(dbase + dst->offset, dst->dtype, dst->strides, sbase + src->offset,
                              src->dtype, bstr, dst->ndim, dst->dims, pool_of(dst));
        return MT_OK;
    }
    if (mt_array_device(dst) == mt_array_device(src)) return device_copy(dst, src);
    return cross_copy(dst, src);
}

mt_status mt_array_copy_to(mt_array *out, const mt_array *src, mt_device *dev)
{
    if (!src || !src->buf) return mt_err_set(MT_ERR_INVALID, "copy_to: the source array is empty");
    mt_array a;
    mt_status st =
        mt_array_empty(&a, dev ? dev : mt_array_device(src), src->dtype, src->ndim, src->dims, 'C');
    if (st != MT_OK) return st;
    st = mt_array_copy(&a, src);
    if (st != MT_OK) {
        mt_array_clear(&a);
        return st;
    }
    *out = a;
    return MT_OK;
}

mt_status mt_array_contiguous(mt_array *out, const mt_array *src)
{
    if (!src || !src->buf)
        return mt_err_set(MT_ERR_INVALID, "contiguous: the source array is empty");
    if (mt_array_is_c_contiguous(src)) {
        mt_array_view(out, src);
        return MT_OK;
    }
    return mt_array_copy_to(out, src, NULL);
}

mt_status mt_array_astype(mt_array *out, const mt_array *src, mt_dtype dt)
{
    if (!src || !src->buf) return mt_err_set(MT_ERR_INVALID, "astype: the source array is empty");
    mt_array a;
    mt_status st = mt_array_empty(&a, mt_array_device(src), dt, src->ndim, src->dims, 'C');
    if (st != MT_OK) return st;
    st = mt_array_copy(&a, src);
    if (st != MT_OK) {
        mt_array_clear(&a);
        return st;
    }
    *out = a;
    return MT_OK;
}

/* ---------------------------------------------------------------- fill */

#define FILL_CHUNK ((size_t)1 << 20)

/* Writes a repeated pattern over a contiguous byte block of a device buffer. */
static mt_status fill_block_upload(mt_array *a, const unsigned char *pat, size_t isz)
{
    size_t n = mt_array_nbytes(a);
    size_t chunk = n < FILL_CHUNK ? n : FILL_CHUNK / isz * isz;
    unsigned char *tmp = mt_malloc(chunk);
    if (!tmp) return mt_err_prefix(MT_ERR_NOMEM, "fill: ");
    for (size_t i = 0; i < chunk; i += isz)
        memcpy(tmp + i, pat, isz);
    mt_status st = MT_OK;
    for (size_t done = 0; done < n && st == MT_OK; done += chunk) {
        size_t m = n - done < chunk ? n - done : chunk;
        st = mt_buffer_write(a->buf, a->offset + done, tmp, m, NULL);
    }
    mt_free(tmp);
    return st;
}

static mt_status fill_kernel(mt_array *a, mt_scalar value)
{
    mt_kexpr e;
    mt_kexpr_init(&e);
    int32_t n = mt_kexpr_param(&e, 0, a->dtype);
    mt_status st = n < 0 ? mt_last_status() : mt_kexpr_add_output(&e, n);
    if (st == MT_OK) {
        mt_array *outs[1] = {a};
        st = mt_elemwise(&e, 0, NULL, outs, 1, &value);
    }
    mt_kexpr_deinit(&e);
    return st;
}

mt_status mt_array_fill(mt_array *a, mt_scalar value)
{
    mt_status st = check_writeable(a, "fill");
    if (st != MT_OK || mt_array_size(a) == 0) return st;
    unsigned char pat[8] = {0};
    size_t isz = mt_dtype_size(a->dtype);
    mt_scalar_store(&value, a->dtype, pat);
    bool contig = mt_array_is_c_contiguous(a) || mt_array_is_f_contiguous(a);
    char *base = mt_buffer_host_ptr(a->buf);
    if (base) {
        st = mt_device_sync(mt_array_device(a));
        if (st != MT_OK) return st;
        static const unsigned char zero[8] = {0};
        if (contig && memcmp(pat, zero, isz) == 0) {
            memset(base + a->offset, 0, mt_array_nbytes(a));
            return MT_OK;
        }
        int64_t zs[MT_MAX_DIMS] = {0};
        mt__host_copy_strided(base + a->offset, a->dtype, a->strides, (const char *)pat, a->dtype,
                              zs, a->ndim, a->dims, pool_of(a));
        return MT_OK;
    }
    if (contig) return fill_block_upload(a, pat, isz);
    return fill_kernel(a, value);
}

/* ---------------------------------------------------------------- arange */

/* NumPy's length: ceil((stop - start) / step), with its special case for an underflowing
 * quotient; ERR_RANGE when it does not fit. */
static mt_status arange_length(int64_t *n, double start, double stop, double step)
{
    if (step == 0) return mt_err_set(MT_ERR_INVALID, "arange: step must not be zero");
    if (!isfinite(start) || !isfinite(stop) || !isfinite(step))
        return mt_err_set(MT_ERR_INVALID, "arange: start %g, stop %g and step %g must be finite",
                          start, stop, step);
    double delta = stop - start, q = delta / step;
    double len;
    if (q == 0.0 && delta != 0.0)
        len = signbit(q) ? 0.0 : 1.0;
    else
        len = ceil(q);
    if (!(len > 0)) len = 0;
    if (len > (double)((int64_t)1 << 53))
        return mt_err_set(MT_ERR_RANGE, "arange: %g elements are too many", len);
    *n = (int64_t)len;
    return MT_OK;
}

/* NumPy's fill for float dtypes: v0 = start, v1 = start + step, then start + i * delta with
 * delta = v1 - v0, computed in the dtype (float32 for float16/bfloat16). */
static void arange_float(void *out, mt_dtype dt, int64_t n, double start, double step)
{
    if (dt == MT_FLOAT64) {
        double *o = out;
        double v0 = start, v1 = start + step, d = v1 - v0;
        for (int64_t i = 0; i < n; i++)
            o[i] = i == 0 ? v0 : i == 1 ? v1 : v0 + (double)i * d;
        return;
    }
    /* float32 storage, or the float32 compute type of the 16-bit floats */
    float v0, v1;
    if (dt == MT_FLOAT32) {
        v0 = (float)start;
        v1 = (float)(start + step);
    } else {
        uint16_t h0 = dt == MT_FLOAT16 ? mt_f64_to_f16(start) : mt_f64_to_bf16(start);
        uint16_t h1 = dt == MT_FLOAT16 ? mt_f64_to_f16(start + step) : mt_f64_to_bf16(start + step);
        v0 = dt == MT_FLOAT16 ? mt_f16_to_f32(h0) : mt_bf16_to_f32(h0);
        v1 = dt == MT_FLOAT16 ? mt_f16_to_f32(h1) : mt_bf16_to_f32(h1);
    }
    float d = v1 - v0;
    for (int64_t i = 0; i < n; i++) {
        float v = i == 0 ? v0 : i == 1 ? v1 : v0 + (float)i * d;
        if (dt == MT_FLOAT32)
            ((float *)out)[i] = v;
        else
            ((uint16_t *)out)[i] = dt == MT_FLOAT16 ? mt_f32_to_f16(v) : mt_f32_to_bf16(v);
    }
}

/* NumPy's fill for integer dtypes: v0 = (T)start, v1 = (T)(start + step), then v0 + i * (v1 - v0)
 * in the dtype's (wrapping) arithmetic. */
static mt_status arange_int(void *out, mt_dtype dt, int64_t n, double start, double step)
{
    double ends[2] = {start, start + step};
    int64_t v[2];
    unsigned char tmp[16];
    mt_dtype_convert(tmp, dt, (ptrdiff_t)mt_dtype_size(dt), ends, MT_FLOAT64, 8, 2);
    mt_dtype_convert(v, MT_INT64, 8, tmp, dt, (ptrdiff_t)mt_dtype_size(dt), 2);
    if (dt == MT_BOOL && n > 2)
        return mt_err_set(MT_ERR_DTYPE,
                          "arange: a bool array holds at most 2 values "
                          "(NumPy has no fill function for bool), %lld requested",
                          (long long)n);
    uint64_t d = (uint64_t)v[1] - (uint64_t)v[0];
    int64_t *vals = mt_malloc((size_t)(n ? n : 1) * sizeof *vals);
    if (!vals) return mt_err_prefix(MT_ERR_NOMEM, "arange: ");
    for (int64_t i = 0; i < n; i++)
        vals[i] = (int64_t)((uint64_t)v[0] + (uint64_t)i * d);
    if (n > 0)
        mt_dtype_convert(out, dt, (ptrdiff_t)mt_dtype_size(dt), vals, MT_INT64, 8, (size_t)n);
    mt_free(vals);
    return MT_OK;
}

mt_status mt_array_arange(mt_array *out, mt_device *dev, mt_dtype dt, double start, double stop,
                          double step)
{
    if (!mt_dtype_valid(dt)) return mt_err_set(MT_ERR_DTYPE, "arange: invalid dtype %d", (int)dt);
    int64_t n;
    mt_status st = arange_length(&n, start, stop, step);
    if (st != MT_OK) return st;
    size_t isz = mt_dtype_size(dt);
    void *host = mt_malloc(n ? (size_t)n * isz : 1);
    if (!host) return mt_err_prefix(MT_ERR_NOMEM, "arange of %lld elements: ", (long long)n);
    if (mt_dtype_is_float(dt))
        arange_float(host, dt, n, start, step);
    else
        st = arange_int(host, dt, n, start, step);
    if (st == MT_OK) st = mt_array_from_host(out, dev, dt, 1, &n, host);
    mt_free(host);
    return st;
}
