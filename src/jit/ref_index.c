/* Reference implementations of the indexing and assembling ops: gather (np.take), scatter-add
 * (np.add.at on a copy), take-along-axis for integer-label crossentropies, one_hot, concatenate,
 * set/inc_subtensor, and the random generators.
 *
 * Basic indexing (subtensors, concatenation) needs no loops of its own: a slice view of the
 * result plus mt_array_copy / mt_elemwise works on every device; so does one_hot (an
 * elementwise kernel). Advanced indexing with a run-time index array (gather, scatter-add,
 * take-along-axis) runs as host loops directly on the buffers of host-addressable devices, and
 * on other devices (OpenCL, CUDA) in gpuarray's generated indexing kernels (mt_array_take,
 * mt_array_scatter_add, mt_array_take_labels), so the operands stay on the device. Both paths
 * give the same values (scatter-add adds repeated indices in the same order, bit for bit) and
 * the same errors: an index out of range is an ERR_RANGE error naming the index, the axis, its
 * size and the position, and nothing is returned. MLTRAIN_INDEX_PATH=host makes non-host
 * devices use the host loops through copies of the operands (for comparisons and benchmarks). */
#include <stdlib.h>
#include <string.h>

#include "jit_impl.h"

/* ---------------------------------------------------------------- host views */

/* C-contiguous host elements of an array: a pointer into the device buffer when the device is
 * host-addressable, else a host copy. */
typedef struct hostarr {
    mt_array arr; /* device array holding the elements (inputs: possibly a converted copy) */
    char *ptr;
    void *tmp;
    size_t nbytes;
} hostarr;

static void host_release(hostarr *h)
{
    mt_array_clear(&h->arr);
    mt_free(h->tmp);
    memset(h, 0, sizeof *h);
}

/* h->ptr = the elements of a in C order, converted to dt. */
static mt_status host_in(hostarr *h, const mt_array *a, mt_dtype dt)
{
    memset(h, 0, sizeof *h);
    mt_status st;
    if (mt_array_device(a) && mt_device_is_host_addressable(mt_array_device(a))) {
        st = a->dtype == dt ? mt_array_contiguous(&h->arr, a) : mt_array_astype(&h->arr, a, dt);
        if (st == MT_OK) st = mt_device_sync(mt_array_device(a));
        if (st != MT_OK) {
            host_release(h);
            return st;
        }
        h->nbytes = mt_array_nbytes(&h->arr);
        h->ptr = (char *)mt_buffer_host_ptr(h->arr.buf) + h->arr.offset;
        return MT_OK;
    }
    size_t n = (size_t)mt_array_size(a);
    size_t raw = n * mt_dtype_size(a->dtype), conv = n * mt_dtype_size(dt);
    char *buf = mt_malloc((raw > conv ? raw : conv) + conv + 1);
    if (!buf) return MT_ERR_NOMEM;
    h->tmp = buf;
    st = mt_array_to_host(buf, raw, a);
    if (st != MT_OK) {
        host_release(h);
        return st;
    }
    h->ptr = buf;
    if (a->dtype != dt) {
        char *c = buf + (raw > conv ? raw : conv);
        mt_dtype_convert(c, dt, (ptrdiff_t)mt_dtype_size(dt), buf, a->dtype,
                         (ptrdiff_t)mt_dtype_size(a->dtype), n);
        h->ptr = c;
    }
    h->nbytes = conv;
    return MT_OK;
}

/* A new device array to be filled through h->ptr; host_out_finish moves it into *out. */
static mt_status host_out(hostarr *h, mt_device *dev, mt_dtype dt, int32_t nd,
                          const int64_t *dims)
{
    memset(h, 0, sizeof *h);
    mt_status st = mt_array_empty(&h->arr, dev, dt, nd, dims, 'C');
    if (st != MT_OK) return st;
    h->nbytes = mt_array_nbytes(&h->arr);
    char *base = mt_buffer_host_ptr(h->arr.buf);
    if (base) {
        h->ptr = base + h->arr.offset;
        return MT_OK;
    }
    h->tmp = mt_malloc(h->nbytes + 1);
    if (!h->tmp) {
        host_release(h);
        return MT_ERR_NOMEM;
    }
    h->ptr = h->tmp;
    return MT_OK;
}

static mt_status host_out_finish(hostarr *h, mt_array *out)
{
    mt_status st = MT_OK;
    if (h->tmp && h->nbytes > 0)
        st = mt_buffer_write(h->arr.buf, h->arr.offset, h->tmp, h->nbytes, NULL);
    if (st != MT_OK) {
        host_release(h);
        return st;
    }
    *out = h->arr;
    memset(&h->arr, 0, sizeof h->arr);
    host_release(h);
    return MT_OK;
}

static int64_t prod(const int64_t *dims, int32_t from, int32_t to)
{
    int64_t p = 1;
    for (int32_t d = from; d < to; d++) p *= dims[d];
    return p;
}

/* Normalizes indices in place (negative ones count from the end) and checks them. */
static mt_status check_indices(int64_t *idx, int64_t m, int64_t n, int32_t axis, bool wrap,
                               const char *what)
{
    for (int64_t j = 0; j < m; j++) {
        int64_t k = idx[j];
        if (wrap && k < 0) k += n;
        if (k < 0 || k >= n)
            return mt_err_set(MT_ERR_RANGE, "%s %lld is out of range for axis %d of size %lld "
                              "(at flat position %lld)", what, (long long)idx[j], (int)axis,
                              (long long)n, (long long)j);
        idx[j] = k;
    }
    return MT_OK;
}

/* Whether the op runs in gpuarray's indexing kernels: x lives on the node's device and the
 * host cannot address it, unless MLTRAIN_INDEX_PATH=host. */
static bool use_device_path(const mt__jctx *ctx, const mt_array *x)
{
    if (!ctx->dev || mt_array_device(x) != ctx->dev || mt_device_is_host_addressable(ctx->dev))
        return false;
    const char *force = getenv("MLTRAIN_INDEX_PATH");
    return !(force && strcmp(force, "host") == 0);
}

/* ---------------------------------------------------------------- gather / scatter_add */

mt_status mt__ref_gather(const mt__jctx *ctx, mt_var v, const mt_array *x,
                         const mt_array *idx, int32_t axis, mt_array *out)
{
    if (axis < 0 || axis >= x->ndim || x->ndim - 1 + idx->ndim > MT_MAX_DIMS)
        return mt_err_set(MT_ERR_INTERNAL, "gather: axis %d of a %d-d array with %d-d indices",
                          (int)axis, (int)x->ndim, (int)idx->ndim);
    if (use_device_path(ctx, x)) {
        mt_status dst = mt_array_take(out, x, idx, axis);
        if (dst != MT_ERR_UNSUPPORTED) return dst; /* else: a device without kernels */
    }
    int64_t n = x->dims[axis], outer = prod(x->dims, 0, axis);
    int64_t inner = prod(x->dims, axis + 1, x->ndim), m = mt_array_size(idx);
    int64_t dims[MT_MAX_DIMS];
    int32_t nd = 0;
    for (int32_t d = 0; d < axis; d++) dims[nd++] = x->dims[d];
    for (int32_t d = 0; d < idx->ndim; d++) dims[nd++] = idx->dims[d];
    for (int32_t d = axis + 1; d < x->ndim; d++) dims[nd++] = x->dims[d];
    hostarr hx, hi, ho;
    mt_status st = host_in(&hi, idx, MT_INT64);
    if (st != MT_OK) return st;
    st = check_indices((int64_t *)hi.ptr, m, n, axis, true, "index");
    if (st == MT_OK) st = host_in(&hx, x, x->dtype);
    else memset(&hx, 0, sizeof hx);
    if (st == MT_OK) st = host_out(&ho, ctx->dev, x->dtype, nd, dims);
    else memset(&ho, 0, sizeof ho);
    if (st == MT_OK) {
        size_t row = (size_t)inner * mt_dtype_size(x->dtype);
        const int64_t *ix = (const int64_t *)hi.ptr;
        for (int64_t o = 0; o < outer; o++)
            for (int64_t j = 0; j < m; j++)
                memcpy(ho.ptr + (size_t)(o * m + j) * row, hx.ptr + (size_t)(o * n + ix[j]) * row,
                       row);
        st = host_out_finish(&ho, out);
    }
    host_release(&hi);
    host_release(&hx);
    host_release(&ho);
    (void)v;
    return st;
}

#define ADD_LOOP(T)                                                   \
    do {                                                              \
        T *d_ = (T *)dst;                                             \
        const T *s_ = (const T *)src;                                 \
        for (int64_t i_ = 0; i_ < n; i_++) d_[i_] = (T)(d_[i_] + s_[i_]); \
    } while (0)

/* dst[i] += src[i] for n elements of dtype dt (NumPy's wrapping / rounding semantics). */
static void add_block(mt_dtype dt, void *dst, const void *src, int64_t n)
{
    switch (dt) {
    case MT_BOOL: {
        bool *d = dst;
        const bool *s = src;
        for (int64_t i = 0; i < n; i++) d[i] = d[i] || s[i];
        break;
    }
    case MT_INT8: ADD_LOOP(uint8_t); break; /* unsigned arithmetic wraps like NumPy */
    case MT_UINT8: ADD_LOOP(uint8_t); break;
    case MT_INT16: ADD_LOOP(uint16_t); break;
    case MT_UINT16: ADD_LOOP(uint16_t); break;
    case MT_INT32: ADD_LOOP(uint32_t); break;
    case MT_UINT32: ADD_LOOP(uint32_t); break;
    case MT_INT64: ADD_LOOP(uint64_t); break;
    case MT_UINT64: ADD_LOOP(uint64_t); break;
    case MT_FLOAT32: ADD_LOOP(float); break;
    case MT_FLOAT64: ADD_LOOP(double); break;
    case MT_FLOAT16: {
        uint16_t *d = dst;
        const uint16_t *s = src;
        for (int64_t i = 0; i < n; i++) d[i] = mt_f32_to_f16(mt_f16_to_f32(d[i]) + mt_f16_to_f32(s[i]));
        break;
    }
    case MT_BFLOAT16: {
        uint16_t *d = dst;
        const uint16_t *s = src;
        for (int64_t i = 0; i < n; i++)
            d[i] = mt_f32_to_bf16(mt_bf16_to_f32(d[i]) + mt_bf16_to_f32(s[i]));
        break;
    }
    default:
        break;
    }
}

mt_status mt__ref_scatter_add(const mt__jctx *ctx, mt_var v, const mt_array *x,
                              const mt_array *idx, const mt_array *y, int32_t axis,
                              mt_array *out)
{
    if (axis < 0 || axis >= x->ndim || x->ndim - 1 + idx->ndim > MT_MAX_DIMS)
        return mt_err_set(MT_ERR_INTERNAL, "scatter_add: axis %d of a %d-d array", (int)axis,
                          (int)x->ndim);
    if (use_device_path(ctx, x)) {
        mt_status dst = mt_array_scatter_add(out, x, idx, y, axis);
        if (dst != MT_ERR_UNSUPPORTED) return dst;
    }
    int64_t n = x->dims[axis], outer = prod(x->dims, 0, axis);
    int64_t inner = prod(x->dims, axis + 1, x->ndim), m = mt_array_size(idx);
    int64_t gdims[MT_MAX_DIMS];
    int32_t gnd = 0;
    for (int32_t d = 0; d < axis; d++) gdims[gnd++] = x->dims[d];
    for (int32_t d = 0; d < idx->ndim; d++) gdims[gnd++] = idx->dims[d];
    for (int32_t d = axis + 1; d < x->ndim; d++) gdims[gnd++] = x->dims[d];
    hostarr hx, hi, hy, ho;
    memset(&hx, 0, sizeof hx);
    memset(&hy, 0, sizeof hy);
    memset(&ho, 0, sizeof ho);
    mt_array yb = {0};
    mt_status st = host_in(&hi, idx, MT_INT64);
    if (st != MT_OK) return st;
    st = check_indices((int64_t *)hi.ptr, m, n, axis, true, "index");
    if (st == MT_OK) st = mt_array_broadcast_to(&yb, y, gnd, gdims);
    if (st == MT_OK) st = host_in(&hy, &yb, x->dtype);
    if (st == MT_OK) st = host_in(&hx, x, x->dtype);
    if (st == MT_OK) st = host_out(&ho, ctx->dev, x->dtype, x->ndim, x->dims);
    if (st == MT_OK) {
        size_t isz = mt_dtype_size(x->dtype), row = (size_t)inner * isz;
        if (ho.nbytes > 0) memcpy(ho.ptr, hx.ptr, ho.nbytes);
        const int64_t *ix = (const int64_t *)hi.ptr;
        for (int64_t o = 0; o < outer; o++)
            for (int64_t j = 0; j < m; j++)
                add_block(x->dtype, ho.ptr + (size_t)(o * n + ix[j]) * row,
                          hy.ptr + (size_t)(o * m + j) * row, inner);
        st = host_out_finish(&ho, out);
    }
    mt_array_clear(&yb);
    host_release(&hi);
    host_release(&hx);
    host_release(&hy);
    host_release(&ho);
    (void)v;
    return st;
}

mt_status mt__ref_take_along(const mt__jctx *ctx, const mt_array *x, const mt_array *labels,
                             int32_t axis, mt_array *out)
{
    if (axis < 0 || axis >= x->ndim)
        return mt_err_set(MT_ERR_INTERNAL, "take_along: axis %d of a %d-d array", (int)axis,
                          (int)x->ndim);
    bool ok = labels->ndim == x->ndim - 1;
    for (int32_t d = 0, k = 0; ok && d < x->ndim; d++)
        if (d != axis && labels->dims[k++] != x->dims[d]) ok = false;
    if (!ok) {
        char b1[96], b2[96];
        return mt_err_set(MT_ERR_SHAPE, "labels of shape %s do not match values of shape %s "
                          "without axis %d", mt_shape_str(labels->ndim, labels->dims, b1,
                          sizeof b1), mt_shape_str(x->ndim, x->dims, b2, sizeof b2),
                          (int)axis);
    }
    if (use_device_path(ctx, x)) {
        mt_status dst = mt_array_take_labels(out, x, labels, axis);
        if (dst != MT_ERR_UNSUPPORTED) return dst;
    }
    int64_t n = x->dims[axis], outer = prod(x->dims, 0, axis);
    int64_t inner = prod(x->dims, axis + 1, x->ndim);
    hostarr hx, hl, ho;
    memset(&hx, 0, sizeof hx);
    memset(&ho, 0, sizeof ho);
    mt_status st = host_in(&hl, labels, MT_INT64);
    if (st != MT_OK) return st;
    st = check_indices((int64_t *)hl.ptr, outer * inner, n, axis, false, "label");
    if (st == MT_OK) st = host_in(&hx, x, x->dtype);
    if (st == MT_OK) st = host_out(&ho, ctx->dev, x->dtype, labels->ndim, labels->dims);
    if (st == MT_OK) {
        size_t isz = mt_dtype_size(x->dtype);
        const int64_t *lb = (const int64_t *)hl.ptr;
        for (int64_t o = 0; o < outer; o++)
            for (int64_t i = 0; i < inner; i++)
                memcpy(ho.ptr + (size_t)(o * inner + i) * isz,
                       hx.ptr + (size_t)((o * n + lb[o * inner + i]) * inner + i) * isz, isz);
        st = host_out_finish(&ho, out);
    }
    host_release(&hl);
    host_release(&hx);
    host_release(&ho);
    return st;
}

/* ---------------------------------------------------------------- one_hot, concat, subtensor */

/* e (initialised here) = the one_hot expression: cast(index % depth == labels, odt). */
static mt_status one_hot_expr(mt_kexpr *e, mt_dtype ldt, int64_t depth, mt_dtype odt)
{
    mt_kexpr_init(e);
    int32_t lab = mt_kexpr_cast(e, mt_kexpr_input(e, 0, ldt), MT_INT64);
    int32_t pos = mt_kexpr_binary(e, MT_SOP_MOD, mt_kexpr_index(e),
                                  mt_kexpr_const(e, mt_scalar_i64(depth), MT_INT64));
    int32_t hit = mt_kexpr_binary(e, MT_SOP_EQ, pos, lab);
    return mt_kexpr_add_output(e, mt_kexpr_cast(e, hit, odt));
}

/* out[..., k] = (k == labels[...]): an elementwise kernel over the output whose flat index
 * modulo depth is k; labels outside [0, depth) match nothing. Runs on every device. Within a
 * schedule step the expression is built once and launched through the step's
 * mt_elemwise_memo (no planning when the batch repeats). */
mt_status mt__ref_one_hot(const mt__jctx *ctx, mt_var v, const mt_array *labels,
                          mt_array *out)
{
    const mt_type *t = mt_graph_type(ctx->g, v);
    int64_t depth = mt_graph_attrs(ctx->g, v)->depth;
    int64_t dims[MT_MAX_DIMS];
    if (labels->ndim + 1 > MT_MAX_DIMS)
        return mt_err_set(MT_ERR_INTERNAL, "one_hot: %d-d labels", (int)labels->ndim);
    memcpy(dims, labels->dims, (size_t)labels->ndim * sizeof *dims);
    dims[labels->ndim] = depth;
    mt_array o = {0}, lx = {0};
    mt_status st = mt_array_empty(&o, ctx->dev, t->dtype, labels->ndim + 1, dims, 'C');
    if (st != MT_OK || mt_array_size(&o) == 0) goto done;
    if ((st = mt_array_expand_dims(&lx, labels, labels->ndim)) != MT_OK) goto done;
    const mt_array *ins[1] = {&lx};
    mt_array *outs[1] = {&o};
    mt__jstep *s = ctx->step;
    if (s && (!s->node_kx || s->node_kx_dt != labels->dtype)) {
        if (s->node_kx) mt_kexpr_deinit(s->node_kx);
        else if (!(s->node_kx = mt_calloc(1, sizeof *s->node_kx))) {
            st = mt_err_prefix(MT_ERR_NOMEM, "one_hot: ");
            goto done;
        }
        st = one_hot_expr(s->node_kx, labels->dtype, depth, t->dtype);
        if (st != MT_OK) {
            mt_kexpr_deinit(s->node_kx);
            mt_free(s->node_kx);
            s->node_kx = NULL;
            goto done;
        }
        s->node_kx_dt = labels->dtype;
    }
    if (s) {
        st = mt_elemwise_memo_run(&s->node_memo, s->node_kx, 1, ins, outs, 0, NULL);
    } else {
        mt_kexpr e;
        st = one_hot_expr(&e, labels->dtype, depth, t->dtype);
        if (st == MT_OK) st = mt_elemwise(&e, 1, ins, outs, 0, NULL);
        mt_kexpr_deinit(&e);
    }
done:
    mt_array_clear(&lx);
    if (st != MT_OK) {
        mt_array_clear(&o);
        return st;
    }
    *out = o;
    return MT_OK;
}

mt_status mt__ref_concat(const mt__jctx *ctx, mt_var v, const mt_array *const *ins,
                         mt_array *out)
{
    const mt_graph *g = ctx->g;
    const mt_type *t = mt_graph_type(g, v);
    int32_t n = mt_graph_ninputs(g, v), axis = mt_graph_attrs(g, v)->axes[0];
    int64_t dims[MT_MAX_DIMS];
    memcpy(dims, ins[0]->dims, sizeof dims);
    dims[axis] = 0;
    for (int32_t i = 0; i < n; i++) {
        bool ok = ins[i]->ndim == t->ndim;
        for (int32_t d = 0; ok && d < t->ndim; d++)
            if (d != axis && ins[i]->dims[d] != ins[0]->dims[d]) ok = false;
        if (!ok) {
            char b1[96], b2[96];
            return mt_err_set(MT_ERR_SHAPE, "operand 0 of shape %s and operand %d of shape %s "
                              "differ outside axis %d",
                              mt_shape_str(ins[0]->ndim, ins[0]->dims, b1, sizeof b1), (int)i,
                              mt_shape_str(ins[i]->ndim, ins[i]->dims, b2, sizeof b2),
                              (int)axis);
        }
        dims[axis] += ins[i]->dims[axis];
    }
    mt_array o = {0};
    mt_status st = mt_array_empty(&o, ctx->dev, t->dtype, t->ndim, dims, 'C');
    int64_t off = 0;
    for (int32_t i = 0; i < n && st == MT_OK; i++) {
        mt_slice s[MT_MAX_DIMS];
        for (int32_t d = 0; d < t->ndim; d++) s[d] = mt_slice_all();
        s[axis] = mt_slice_range(off, off + ins[i]->dims[axis], 1);
        off += ins[i]->dims[axis];
        mt_array part = {0};
        st = mt_array_slice(&part, &o, t->ndim, s);
        if (st == MT_OK && mt_array_size(&part) > 0) st = mt_array_copy(&part, ins[i]);
        mt_array_clear(&part);
    }
    if (st != MT_OK) {
        mt_array_clear(&o);
        return st;
    }
    *out = o;
    return MT_OK;
}

/* out = copy of x with out[idx] = y (set) or out[idx] += y (inc); y broadcasts. */
mt_status mt__ref_subtensor(const mt__jctx *ctx, mt_var v, const mt_array *x,
                            const mt_array *y, bool inc, mt_array *out)
{
    const mt_op_attrs *at = mt_graph_attrs(ctx->g, v);
    mt_slice s[MT_MAX_DIMS];
    for (int32_t i = 0; i < at->nidx; i++) {
        const mt_idx *it = &at->idx[i];
        s[i] = it->kind == MT_IDX_INT
                   ? mt_slice_index(it->start)
                   : mt_slice_range(it->start, it->stop, it->step == MT_IDX_NONE ? 1 : it->step);
    }
    mt_array o = {0}, part = {0};
    mt_status st = mt_array_empty(&o, ctx->dev, x->dtype, x->ndim, x->dims, 'C');
    if (st == MT_OK && mt_array_size(&o) > 0) st = mt_array_copy(&o, x);
    if (st == MT_OK) st = mt_array_slice(&part, &o, at->nidx, s);
    if (st == MT_OK && mt_array_size(&part) > 0) {
        if (!inc) {
            st = mt_array_copy(&part, y);
        } else {
            mt_kexpr e;
            mt_kexpr_init(&e);
            int32_t a = mt_kexpr_input(&e, 0, x->dtype);
            int32_t b = mt_kexpr_input(&e, 1, y->dtype);
            if (y->dtype != x->dtype) b = mt_kexpr_cast(&e, b, x->dtype);
            int32_t r = mt_kexpr_binary(&e, x->dtype == MT_BOOL ? MT_SOP_OR : MT_SOP_ADD, a, b);
            st = mt_kexpr_add_output(&e, r);
            if (st == MT_OK) { /* in place: an exact alias of input 0 is allowed */
                const mt_array *ins[2] = {&part, y};
                mt_array *outs[1] = {&part};
                st = mt_elemwise(&e, 2, ins, outs, 0, NULL);
            }
            mt_kexpr_deinit(&e);
        }
    }
    mt_array_clear(&part);
    if (st != MT_OK) {
        mt_array_clear(&o);
        return st;
    }
    *out = o;
    return MT_OK;
}

/* ---------------------------------------------------------------- random */

/* Binomial(n, p) counts as the sum of n Bernoulli draws (trial t at counter offset t * numel),
 * accumulated in int64 and converted to the node's dtype. */
static mt_status binomial(const mt__jctx *ctx, mt_array *o, uint64_t key, uint64_t base,
                          int64_t trials, double p)
{
    if (trials == 1) return mt_array_random_bernoulli(o, key, base, p);
    if (trials == 0) return mt_array_fill(o, mt_scalar_i64(0));
    uint64_t numel = (uint64_t)mt_array_size(o);
    mt_array acc = {0}, draw = {0};
    mt_status st = mt_array_zeros(&acc, ctx->dev, MT_INT64, o->ndim, o->dims);
    if (st == MT_OK) st = mt_array_empty(&draw, ctx->dev, MT_INT64, o->ndim, o->dims, 'C');
    mt_kexpr e;
    mt_kexpr_init(&e);
    int32_t r = mt_kexpr_binary(&e, MT_SOP_ADD, mt_kexpr_input(&e, 0, MT_INT64),
                                mt_kexpr_input(&e, 1, MT_INT64));
    if (st == MT_OK) st = mt_kexpr_add_output(&e, r);
    for (int64_t t = 0; t < trials && st == MT_OK; t++) {
        st = mt_array_random_bernoulli(&draw, key, base + (uint64_t)t * numel, p);
        const mt_array *ins[2] = {&acc, &draw};
        mt_array *outs[1] = {&acc};
        if (st == MT_OK) st = mt_elemwise(&e, 2, ins, outs, 0, NULL);
    }
    mt_kexpr_deinit(&e);
    if (st == MT_OK) st = mt_array_copy(o, &acc);
    mt_array_clear(&acc);
    mt_array_clear(&draw);
    return st;
}

mt_status mt__ref_random(const mt__jctx *ctx, mt_var v, const mt_array *shape_ref,
                         mt_array *out)
{
    const mt_op_attrs *at = mt_graph_attrs(ctx->g, v);
    const mt_type *t = mt_graph_type(ctx->g, v);
    int32_t nd = shape_ref ? shape_ref->ndim : at->nshape;
    const int64_t *dims = shape_ref ? shape_ref->dims : at->shape;
    mt_array o = {0};
    mt_status st = mt_array_empty(&o, ctx->dev, t->dtype, nd, dims, 'C');
    if (st != MT_OK) return st;
    uint64_t key = mt__random_key(at->seed, at->stream);
    uint64_t base = ctx->rng_call << 32;
    int64_t trials = at->dist == MT_RANDOM_BINOMIAL ? (int64_t)at->p0 : 1;
    uint64_t draws = (uint64_t)mt_array_size(&o) * (uint64_t)(trials > 0 ? trials : 1);
    if (draws > ((uint64_t)1 << 32)) {
        mt_array_clear(&o);
        return mt_err_set(MT_ERR_RANGE, "random: %llu draws in one call (at most 2^32 per node)",
                          (unsigned long long)draws);
    }
    if (mt_array_size(&o) > 0) {
        switch (at->dist) {
        case MT_RANDOM_UNIFORM:
            st = mt_array_random_uniform(&o, key, base, at->p0, at->p1);
            break;
        case MT_RANDOM_NORMAL:
            st = mt_array_random_normal(&o, key, base, at->p0, at->p1);
            break;
        case MT_RANDOM_BINOMIAL:
            st = trials < 0 ? mt_err_set(MT_ERR_INVALID, "binomial with %lld trials",
                                         (long long)trials)
                            : binomial(ctx, &o, key, base, trials, at->p1);
            break;
        default:
            st = mt_err_set(MT_ERR_INTERNAL, "random: unknown distribution %d", (int)at->dist);
        }
    }
    if (st != MT_OK) {
        mt_array_clear(&o);
        return st;
    }
    *out = o;
    return MT_OK;
}
