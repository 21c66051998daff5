/* Reference implementations of the stable neural-network ops: softmax, logsoftmax, logsumexp
 * and the four categorical crossentropy forms, composed from gpuarray reductions and small
 * elementwise expressions.
 *
 * Stability comes from the usual max shift: with m = max(x) over the axis (replaced by 0 where
 * it is not finite, so rows of -inf or +inf give the IEEE limits instead of inf - inf = NaN),
 *   logsumexp(x) = log(sum(exp(x - m))) + m
 *   softmax(x)   = exp(x - m) / sum(exp(x - m))
 *   logsoftmax   = (x - m) - log(sum(exp(x - m)))
 * so softmax([1000, 1000]) = [0.5, 0.5] and logsoftmax([0, 1000, -1000]) = [-1000, 0, -2000].
 * The sums run through mt_reduce_fused, so exp(x - m) is never stored; float sums accumulate
 * in float64 inside gpuarray. Crossentropies with integer labels pick the labelled entry with a
 * take-along-axis (ref_index.c: host loops on the host, indexing kernels on other devices).
 *
 * softmax_crossentropy_labels_dx(gz, x, y) = gz * (softmax(x) - onehot(y)) along the axis: on
 * the host one pass per row (the softmax row pass, then the row minus the one at the label,
 * times gz), elsewhere the softmax above and one elementwise kernel that compares the class
 * index with the label. Both compute exactly the unfused sequence's operations in the same
 * order, so on the host the values are bit-identical to softmax -> sub(one_hot) -> mul. As in
 * one_hot, a label outside [0, n) matches no class (its row is gz * softmax), so the rewrite
 * that forms the op changes no value; the forward crossentropy is what reports such labels. */
#include <math.h>
#include <string.h>

#include "jit_impl.h"

/* A new C-contiguous array (dt, nd, dims) = expression e over ins. */
static mt_status ew_new(const mt__jctx *ctx, const mt_kexpr *e, int32_t nin,
                        const mt_array *const *ins, mt_dtype dt, int32_t nd,
                        const int64_t *dims, mt_array *out)
{
    mt_array o = {0};
    mt_status st = mt_array_empty(&o, ctx->dev, dt, nd, dims, 'C');
    if (st == MT_OK && mt_array_size(&o) > 0) {
        mt_array *outs[1] = {&o};
        st = mt_elemwise(e, nin, ins, outs, 0, NULL);
    }
    if (st != MT_OK) {
        mt_array_clear(&o);
        return st;
    }
    *out = o;
    return MT_OK;
}

/* in0 - in1 for in0 of dtype dt and in1 of dtype dt. */
static int32_t k_shift(mt_kexpr *e, mt_dtype dt)
{
    int32_t x = mt_kexpr_input(e, 0, dt), m = mt_kexpr_input(e, 1, dt);
    return mt_kexpr_binary(e, MT_SOP_SUB, x, m);
}

/* input `arg` (of dtype have) as dtype dt. */
static int32_t k_in_as(mt_kexpr *e, int32_t arg, mt_dtype have, mt_dtype dt)
{
    int32_t a = mt_kexpr_input(e, arg, have);
    return have == dt ? a : mt_kexpr_cast(e, a, dt);
}

/* x converted to dt (a view when it already has it). */
static mt_status as_dtype(mt_array *out, const mt_array *x, mt_dtype dt)
{
    if (x->dtype == dt) {
        mt_array_view(out, x);
        return MT_OK;
    }
    return mt_array_astype(out, x, dt);
}

/* The finite max shift over axes (keepdims): m = max(x); ms = isfinite(m) ? m : 0. */
static mt_status max_shift(const mt__jctx *ctx, const mt_array *x, int32_t naxes,
                           const int32_t *axes, mt_array *ms)
{
    mt_array m = {0};
    mt_status st = mt_array_reduce(&m, x, MT_REDUCE_MAX, naxes, axes, true);
    if (st != MT_OK) return st;
    mt_kexpr e;
    mt_kexpr_init(&e);
    int32_t a = mt_kexpr_input(&e, 0, x->dtype);
    int32_t fin = mt_kexpr_unary(&e, MT_SOP_ISFINITE, a);
    int32_t zero = mt_kexpr_const(&e, mt_scalar_f64(0.0), x->dtype);
    st = mt_kexpr_add_output(&e, mt_kexpr_where(&e, fin, a, zero));
    const mt_array *ins[1] = {&m};
    if (st == MT_OK) st = ew_new(ctx, &e, 1, ins, x->dtype, m.ndim, m.dims, ms);
    mt_kexpr_deinit(&e);
    mt_array_clear(&m);
    return st;
}

/* s = sum(exp(x - ms)) over axes, keepdims shape (ms's), dtype of the sum of x's dtype. */
static mt_status sum_exp(const mt__jctx *ctx, const mt_array *x, const mt_array *ms,
                         int32_t naxes, const int32_t *axes, mt_array *s)
{
    mt_kexpr e;
    mt_kexpr_init(&e);
    int32_t ex = mt_kexpr_unary(&e, MT_SOP_EXP, k_shift(&e, x->dtype));
    mt_status st = mt_kexpr_add_output(&e, ex);
    mt_dtype rd = mt_reduce_result_dtype(MT_REDUCE_SUM, x->dtype);
    mt_array o = {0};
    if (st == MT_OK) st = mt_array_empty(&o, ctx->dev, rd, ms->ndim, ms->dims, 'C');
    const mt_array *ins[2] = {x, ms};
    if (st == MT_OK) st = mt_reduce_fused(&e, 2, ins, MT_REDUCE_SUM, naxes, axes, &o, 0, NULL);
    mt_kexpr_deinit(&e);
    if (st != MT_OK) {
        mt_array_clear(&o);
        return st;
    }
    *s = o;
    return MT_OK;
}

static mt_status softmax_core(const mt__jctx *ctx, const mt_array *x, int32_t axis,
                              bool log_form, mt_array *out)
{
    mt_dtype dt = x->dtype;
    if (mt_array_size(x) == 0) return mt_array_empty(out, ctx->dev, dt, x->ndim, x->dims, 'C');
    mt_array ms = {0}, s = {0};
    mt_status st = max_shift(ctx, x, 1, &axis, &ms);
    if (st == MT_OK) st = sum_exp(ctx, x, &ms, 1, &axis, &s);
    mt_kexpr e;
    mt_kexpr_init(&e);
    if (st == MT_OK) {
        int32_t sh = k_shift(&e, dt);
        int32_t sum = k_in_as(&e, 2, s.dtype, dt);
        int32_t r = log_form
                        ? mt_kexpr_binary(&e, MT_SOP_SUB, sh, mt_kexpr_unary(&e, MT_SOP_LOG, sum))
                        : mt_kexpr_binary(&e, MT_SOP_DIV, mt_kexpr_unary(&e, MT_SOP_EXP, sh), sum);
        st = mt_kexpr_add_output(&e, r);
    }
    const mt_array *ins[3] = {x, &ms, &s};
    if (st == MT_OK) st = ew_new(ctx, &e, 3, ins, dt, x->ndim, x->dims, out);
    mt_kexpr_deinit(&e);
    mt_array_clear(&ms);
    mt_array_clear(&s);
    return st;
}

/* ---------------------------------------------------------------- host row fast path */

/* Softmax, logsoftmax and the label crossentropy along the last axis of a C-contiguous
 * float32/float64 array on a host-addressable device run as one pass per row over the
 * buffers, instead of the four generic operations (max, shifted exp-sum, map, take) with their
 * temporaries and launches: on a [32, 10] batch the generic path costs 17-23 us, mostly
 * overhead. Same formulas as the generic path: m = max over the row (NaN if any element is
 * NaN), the shift ms = isfinite(m) ? m : 0 (max_shift), s = sum of exp(x - ms) computed in the
 * array's dtype and accumulated in float64, rounded to the dtype, then exp(x - ms) / s,
 * (x - ms) - log(s) or ms + log(s) - x[label]. */
static bool host_rows(const mt__jctx *ctx, const mt_array *x, int32_t axis)
{
    return ctx->dev && mt_device_is_host_addressable(ctx->dev) && x->ndim >= 1 &&
           axis == x->ndim - 1 && (x->dtype == MT_FLOAT32 || x->dtype == MT_FLOAT64) &&
           mt_array_is_c_contiguous(x) && mt_array_size(x) > 0 && x->dims[axis] > 0;
}

#define MT__ROW_PASS(T, EXP, LOG)                                                              \
    /* e (if not NULL) receives exp(r - m), so a caller needing it does not compute it twice */ \
    static void row_stats_##T(const T *r, int64_t n, T *m_out, double *s_out, T *e)          \
    {                                                                                          \
        /* branch-free (vectorizable) max and NaN test: with a NaN anywhere the shift is 0 */  \
        T m = r[0];                                                                            \
        bool nan = false;                                                                      \
        for (int64_t j = 0; j < n; j++) {                                                      \
            nan |= r[j] != r[j];                                                               \
            m = r[j] > m ? r[j] : m;                                                           \
        }                                                                                      \
        if (nan || !isfinite(m)) m = 0; /* the finite shift */                                 \
        double s = 0;                                                                          \
        if (e)                                                                                 \
            for (int64_t j = 0; j < n; j++) s += (double)(e[j] = (T)EXP(r[j] - m));            \
        else                                                                                   \
            for (int64_t j = 0; j < n; j++) s += (double)EXP(r[j] - m);                        \
        *m_out = m;                                                                            \
        *s_out = s;                                                                            \
    }                                                                                          \
    static void softmax_rows_##T(const T *x, T *y, int64_t rows, int64_t n, bool log_form)     \
    {                                                                                          \
        for (int64_t i = 0; i < rows; i++) {                                                   \
            const T *r = x + i * n;                                                            \
            T *o = y + i * n, m;                                                               \
            double s;                                                                          \
            row_stats_##T(r, n, &m, &s, log_form ? NULL : o); /* o: exp(r - m) */             \
            T sv = (T)s, ls = log_form ? (T)LOG(sv) : 0;                                       \
            for (int64_t j = 0; j < n; j++)                                                    \
                o[j] = log_form ? (T)(r[j] - m) - ls : o[j] / sv;                              \
        }                                                                                      \
    }
MT__ROW_PASS(float, expf, logf)
MT__ROW_PASS(double, exp, log)
#undef MT__ROW_PASS

static mt_status host_softmax(const mt__jctx *ctx, const mt_array *x, bool log_form,
                              mt_array *out)
{
    mt_array o = {0};
    mt_status st = mt_array_empty(&o, ctx->dev, x->dtype, x->ndim, x->dims, 'C');
    if (st != MT_OK) return st;
    int64_t n = x->dims[x->ndim - 1], rows = mt_array_size(x) / n;
    const char *xp = (const char *)mt_buffer_host_ptr(x->buf) + x->offset;
    char *op = (char *)mt_buffer_host_ptr(o.buf) + o.offset;
    if (x->dtype == MT_FLOAT32)
        softmax_rows_float((const float *)xp, (float *)op, rows, n, log_form);
    else
        softmax_rows_double((const double *)xp, (double *)op, rows, n, log_form);
    *out = o;
    return MT_OK;
}

/* logsumexp(row) - row[label] for int32/int64 labels of shape x.shape[:-1]. Returns
 * MT_ERR_UNSUPPORTED (without a message: the caller falls back to the generic path, which
 * reports out-of-range labels) when a label is outside the row or the labels do not fit. */
static mt_status host_xent_labels(const mt__jctx *ctx, const mt_array *x, const mt_array *lab,
                                  mt_array *out)
{
    if ((lab->dtype != MT_INT64 && lab->dtype != MT_INT32) || !mt_array_is_c_contiguous(lab) ||
        lab->ndim != x->ndim - 1 || mt_array_size(lab) * x->dims[x->ndim - 1] != mt_array_size(x))
        return MT_ERR_UNSUPPORTED;
    for (int32_t d = 0; d < lab->ndim; d++)
        if (lab->dims[d] != x->dims[d]) return MT_ERR_UNSUPPORTED;
    int64_t n = x->dims[x->ndim - 1], rows = mt_array_size(lab);
    const char *lp = (const char *)mt_buffer_host_ptr(lab->buf) + lab->offset;
    for (int64_t i = 0; i < rows; i++) {
        int64_t l = lab->dtype == MT_INT64 ? ((const int64_t *)lp)[i] : ((const int32_t *)lp)[i];
        if (l < 0 || l >= n) return MT_ERR_UNSUPPORTED;
    }
    mt_array o = {0};
    mt_status st = mt_array_empty(&o, ctx->dev, x->dtype, lab->ndim, lab->dims, 'C');
    if (st != MT_OK) return st;
    const char *xp = (const char *)mt_buffer_host_ptr(x->buf) + x->offset;
    char *op = (char *)mt_buffer_host_ptr(o.buf) + o.offset;
    for (int64_t i = 0; i < rows; i++) {
        int64_t l = lab->dtype == MT_INT64 ? ((const int64_t *)lp)[i] : ((const int32_t *)lp)[i];
        double s;
        if (x->dtype == MT_FLOAT32) {
            const float *r = (const float *)xp + i * n;
            float m;
            row_stats_float(r, n, &m, &s, NULL);
            ((float *)op)[i] = (m + logf((float)s)) - r[l]; /* m: the shift */
        } else {
            const double *r = (const double *)xp + i * n;
            double m;
            row_stats_double(r, n, &m, &s, NULL);
            ((double *)op)[i] = (m + log(s)) - r[l];
        }
    }
    *out = o;
    return MT_OK;
}

/* ---------------------------------------------------------------- fused labels gradient */

/* Byte offset of row i (C order over the dims) of an array with those byte strides. */
static int64_t row_offset(int64_t i, int32_t nd, const int64_t *dims, const int64_t *strides)
{
    int64_t off = 0;
    for (int32_t d = nd - 1; d >= 0; d--) {
        off += (i % dims[d]) * strides[d];
        i /= dims[d];
    }
    return off;
}

/* gz's byte strides over x's dims without the axis (0 where gz broadcasts a size 1), after
 * checking that gz's shape is that (each size equal or 1). */
static mt_status gz_strides(const mt_array *gz, const mt_array *x, int32_t axis, int64_t *st)
{
    bool ok = gz->ndim == x->ndim - 1;
    for (int32_t i = 0, d = 0; ok && i < gz->ndim; i++, d++) {
        if (d == axis) d++;
        ok = gz->dims[i] == x->dims[d] || gz->dims[i] == 1;
        st[i] = gz->dims[i] == 1 ? 0 : gz->strides[i];
    }
    if (ok) return MT_OK;
    char b1[96], b2[96];
    return mt_err_set(MT_ERR_SHAPE, "output gradient of shape %s does not match %s without axis "
                      "%d", mt_shape_str(gz->ndim, gz->dims, b1, sizeof b1),
                      mt_shape_str(x->ndim, x->dims, b2, sizeof b2), (int)axis);
}

/* o = g * (softmax(r) - onehot(l)) with softmax_rows' operations: exp(r - m) (kept in o by
 * row_stats, so it is computed once) / (T)s, minus 0 or 1, times g. */
#define MT__DX_ROW(T)                                                                          \
    static void dx_row_##T(const T *r, T *o, int64_t n, T g, int64_t l)                      \
    {                                                                                          \
        T m;                                                                                   \
        double s;                                                                              \
        row_stats_##T(r, n, &m, &s, o);                                                        \
        T sv = (T)s;                                                                           \
        for (int64_t j = 0; j < n; j++) o[j] = g * (o[j] / sv - (T)(j == l));                  \
    }
MT__DX_ROW(float)
MT__DX_ROW(double)
#undef MT__DX_ROW

/* The host pass: x C-contiguous float32/float64 with the axis last (host_rows), gz of x's
 * dtype and labels int32/int64 readable through host pointers, any strides. Allocates only the
 * result. MT_ERR_UNSUPPORTED without a message when the operands do not qualify. */
static mt_status host_xent_dx(const mt__jctx *ctx, const mt_array *gz, const mt_array *x,
                              const mt_array *lab, mt_array *out)
{
    int32_t axis = x->ndim - 1, nr = x->ndim - 1;
    const char *gp = mt_buffer_host_ptr(gz->buf), *lp = mt_buffer_host_ptr(lab->buf);
    if (gz->dtype != x->dtype || (lab->dtype != MT_INT64 && lab->dtype != MT_INT32) || !gp ||
        !lp || lab->ndim != nr)
        return MT_ERR_UNSUPPORTED;
    for (int32_t d = 0; d < nr; d++)
        if (lab->dims[d] != x->dims[d]) return MT_ERR_UNSUPPORTED; /* the generic path says */
    int64_t gst[MT_MAX_DIMS];
    mt_status st = gz_strides(gz, x, axis, gst);
    if (st != MT_OK) return st;
    mt_array o = {0};
    st = mt_array_empty(&o, ctx->dev, x->dtype, x->ndim, x->dims, 'C');
    if (st != MT_OK) return st;
    int64_t n = x->dims[axis], rows = mt_array_size(x) / n;
    const char *xp = (const char *)mt_buffer_host_ptr(x->buf) + x->offset;
    char *op = (char *)mt_buffer_host_ptr(o.buf) + o.offset;
    gp += gz->offset;
    lp += lab->offset;
    bool i64 = lab->dtype == MT_INT64;
    for (int64_t i = 0; i < rows; i++) {
        int64_t lo = nr == 1 ? i * lab->strides[0] : row_offset(i, nr, lab->dims, lab->strides);
        int64_t go = nr == 1 ? i * gst[0] : row_offset(i, nr, lab->dims, gst);
        int64_t l = i64 ? *(const int64_t *)(lp + lo) : *(const int32_t *)(lp + lo);
        if (x->dtype == MT_FLOAT32)
            dx_row_float((const float *)xp + i * n, (float *)op + i * n, n,
                         *(const float *)(gp + go), l);
        else
            dx_row_double((const double *)xp + i * n, (double *)op + i * n, n,
                          *(const double *)(gp + go), l);
    }
    *out = o;
    return MT_OK;
}

/* labels shaped like x without the axis. */
static mt_status labels_check(const mt_array *lab, const mt_array *x, int32_t axis)
{
    bool ok = lab->ndim == x->ndim - 1;
    for (int32_t i = 0, d = 0; ok && i < lab->ndim; i++, d++) {
        if (d == axis) d++;
        ok = lab->dims[i] == x->dims[d];
    }
    if (ok) return MT_OK;
    char b1[96], b2[96];
    return mt_err_set(MT_ERR_SHAPE, "labels of shape %s do not match %s without axis %d",
                      mt_shape_str(lab->ndim, lab->dims, b1, sizeof b1),
                      mt_shape_str(x->ndim, x->dims, b2, sizeof b2), (int)axis);
}

/* Any device, dtype, layout and axis: softmax (the host row pass or softmax_core), then one
 * kernel out = gz' * (sm - cast((index / inner) % n == y', dt)) with gz' and y' expanded at the
 * axis (broadcast along it) and `inner` the product of the sizes after the axis. */
static mt_status generic_xent_dx(const mt__jctx *ctx, const mt_array *gz, const mt_array *x,
                                 const mt_array *lab, int32_t axis, mt_array *out)
{
    mt_dtype dt = x->dtype;
    int64_t n = x->dims[axis], inner = 1, gst[MT_MAX_DIMS];
    for (int32_t d = axis + 1; d < x->ndim; d++) inner *= x->dims[d];
    mt_status st = gz_strides(gz, x, axis, gst);
    if (st == MT_OK) st = labels_check(lab, x, axis);
    if (st != MT_OK) return st;
    mt_array sm = {0}, ge = {0}, le = {0};
    st = host_rows(ctx, x, axis) ? host_softmax(ctx, x, false, &sm)
                                 : softmax_core(ctx, x, axis, false, &sm);
    if (st == MT_OK) st = mt_array_expand_dims(&ge, gz, axis);
    if (st == MT_OK) st = mt_array_expand_dims(&le, lab, axis);
    mt_kexpr e;
    mt_kexpr_init(&e);
    if (st == MT_OK) {
        int32_t g = k_in_as(&e, 0, gz->dtype, dt), p = mt_kexpr_input(&e, 1, dt);
        int32_t y = k_in_as(&e, 2, lab->dtype, MT_INT64);
        int32_t k = mt_kexpr_binary(&e, MT_SOP_FLOORDIV, mt_kexpr_index(&e),
                                    mt_kexpr_const(&e, mt_scalar_i64(inner), MT_INT64));
        k = mt_kexpr_binary(&e, MT_SOP_MOD, k, mt_kexpr_const(&e, mt_scalar_i64(n), MT_INT64));
        int32_t hot = mt_kexpr_cast(&e, mt_kexpr_binary(&e, MT_SOP_EQ, k, y), dt);
        st = mt_kexpr_add_output(
            &e, mt_kexpr_binary(&e, MT_SOP_MUL, g, mt_kexpr_binary(&e, MT_SOP_SUB, p, hot)));
    }
    const mt_array *ins[3] = {&ge, &sm, &le};
    if (st == MT_OK) st = ew_new(ctx, &e, 3, ins, dt, x->ndim, x->dims, out);
    mt_kexpr_deinit(&e);
    mt_array_clear(&sm);
    mt_array_clear(&ge);
    mt_array_clear(&le);
    return st;
}

/* softmax_crossentropy_labels_dx(gz, x, labels): ins = {gz, x, labels}. */
static mt_status xent_dx(const mt__jctx *ctx, mt_var v, const mt_array *const *ins,
                         mt_array *out)
{
    const mt_graph *g = ctx->g;
    int32_t axis = mt_graph_attrs(g, v)->axes[0];
    mt_dtype dt = mt_graph_type(g, v)->dtype;
    const mt_array *gz = ins[0], *x = ins[1], *lab = ins[2];
    if (x->dtype == dt && gz->dtype == dt && host_rows(ctx, x, axis)) {
        mt_status st = host_xent_dx(ctx, gz, x, lab, out);
        if (st != MT_ERR_UNSUPPORTED) return st;
    }
    mt_array xf = {0}, gf = {0};
    mt_status st = as_dtype(&xf, x, dt);
    if (st == MT_OK) st = as_dtype(&gf, gz, dt);
    if (st == MT_OK) st = generic_xent_dx(ctx, &gf, &xf, lab, axis, out);
    mt_array_clear(&xf);
    mt_array_clear(&gf);
    return st;
}

mt_status mt__ref_softmax(const mt__jctx *ctx, mt_var v, const mt_array *x, bool log_form,
                          mt_array *out)
{
    const mt_type *t = mt_graph_type(ctx->g, v);
    int32_t axis = mt_graph_attrs(ctx->g, v)->axes[0];
    mt_array xf = {0};
    mt_status st = as_dtype(&xf, x, t->dtype);
    if (st == MT_OK)
        st = host_rows(ctx, &xf, axis) ? host_softmax(ctx, &xf, log_form, out)
                                       : softmax_core(ctx, &xf, axis, log_form, out);
    mt_array_clear(&xf);
    return st;
}

/* Shape of x reduced over axes (naxes 0 = all), keepdims or not. Returns the number of
 * elements reduced into each result. */
static int64_t reduced_shape(const mt_array *x, int32_t naxes, const int32_t *axes,
                             bool keepdims, int32_t *nd, int64_t *dims)
{
    bool red[MT_MAX_DIMS] = {false};
    for (int32_t i = 0; i < naxes; i++)
        if (axes[i] >= 0 && axes[i] < x->ndim) red[axes[i]] = true;
    int64_t count = 1;
    *nd = 0;
    for (int32_t d = 0; d < x->ndim; d++) {
        bool r = naxes == 0 || red[d];
        if (r) count *= x->dims[d];
        if (!r) dims[(*nd)++] = x->dims[d];
        else if (keepdims) dims[(*nd)++] = 1;
    }
    return count;
}

static mt_status logsumexp_core(const mt__jctx *ctx, const mt_array *x, int32_t naxes,
                                const int32_t *axes, bool keepdims, mt_array *out)
{
    int32_t nd, knd;
    int64_t dims[MT_MAX_DIMS], kdims[MT_MAX_DIMS];
    int64_t count = reduced_shape(x, naxes, axes, keepdims, &nd, dims);
    reduced_shape(x, naxes, axes, true, &knd, kdims);
    mt_dtype dt = x->dtype;
    if (count == 0) { /* log(0) = -inf, as scipy.special.logsumexp */
        mt_status st = mt_array_empty(out, ctx->dev, dt, nd, dims, 'C');
        if (st == MT_OK) st = mt_array_fill(out, mt_scalar_f64(-INFINITY));
        if (st != MT_OK) mt_array_clear(out);
        return st;
    }
    mt_array ms = {0}, s = {0}, r = {0};
    mt_status st = max_shift(ctx, x, naxes, axes, &ms);
    if (st == MT_OK) st = sum_exp(ctx, x, &ms, naxes, axes, &s);
    mt_kexpr e;
    mt_kexpr_init(&e);
    if (st == MT_OK) {
        int32_t m = mt_kexpr_input(&e, 0, dt);
        int32_t lg = mt_kexpr_unary(&e, MT_SOP_LOG, k_in_as(&e, 1, s.dtype, dt));
        st = mt_kexpr_add_output(&e, mt_kexpr_binary(&e, MT_SOP_ADD, lg, m));
    }
    const mt_array *ins[2] = {&ms, &s};
    if (st == MT_OK) st = ew_new(ctx, &e, 2, ins, dt, knd, kdims, &r);
    mt_kexpr_deinit(&e);
    if (st == MT_OK) st = mt_array_reshape(out, &r, nd, dims);
    mt_array_clear(&ms);
    mt_array_clear(&s);
    mt_array_clear(&r);
    return st;
}

mt_status mt__ref_logsumexp(const mt__jctx *ctx, mt_var v, const mt_array *x, mt_array *out)
{
    const mt_op_attrs *at = mt_graph_attrs(ctx->g, v);
    mt_array xf = {0};
    mt_status st = as_dtype(&xf, x, mt_graph_type(ctx->g, v)->dtype);
    if (st == MT_OK) st = logsumexp_core(ctx, &xf, at->naxes, at->axes, at->keepdims, out);
    mt_array_clear(&xf);
    return st;
}

/* out = -sum(a * b) over axis, where expression inputs are (p-side, t-side): -sum(t * f(p)),
 * f = log for the probability form, identity for logsoftmax values. */
static mt_status neg_sum_product(const mt__jctx *ctx, const mt_array *p, const mt_array *t,
                                 int32_t axis, bool take_log, mt_dtype dt, mt_array *out)
{
    mt_kexpr e;
    mt_kexpr_init(&e);
    int32_t a = k_in_as(&e, 0, p->dtype, dt);
    if (take_log) a = mt_kexpr_unary(&e, MT_SOP_LOG, a);
    int32_t b = k_in_as(&e, 1, t->dtype, dt);
    int32_t r = mt_kexpr_unary(&e, MT_SOP_NEG, mt_kexpr_binary(&e, MT_SOP_MUL, b, a));
    mt_status st = mt_kexpr_add_output(&e, r);
    int32_t nb, nd = 0;
    int64_t bdims[MT_MAX_DIMS], dims[MT_MAX_DIMS];
    if (st == MT_OK) st = mt_broadcast_shapes(&nb, bdims, p->ndim, p->dims, t->ndim, t->dims);
    for (int32_t d = 0; st == MT_OK && d < nb; d++)
        if (d != axis) dims[nd++] = bdims[d];
    mt_array o = {0};
    if (st == MT_OK)
        st = mt_array_empty(&o, ctx->dev, mt_reduce_result_dtype(MT_REDUCE_SUM, dt), nd, dims,
                            'C');
    const mt_array *ins[2] = {p, t};
    if (st == MT_OK) st = mt_reduce_fused(&e, 2, ins, MT_REDUCE_SUM, 1, &axis, &o, 0, NULL);
    mt_kexpr_deinit(&e);
    if (st != MT_OK) {
        mt_array_clear(&o);
        return st;
    }
    *out = o;
    return MT_OK;
}

/* out = op(in0 [, in1]) elementwise for the label forms: -log(p) or lse - x. */
static mt_status label_finish(const mt__jctx *ctx, const mt_array *picked, const mt_array *lse,
                              mt_dtype dt, mt_array *out)
{
    mt_kexpr e;
    mt_kexpr_init(&e);
    int32_t a = k_in_as(&e, 0, picked->dtype, dt), r;
    if (lse)
        r = mt_kexpr_binary(&e, MT_SOP_SUB, k_in_as(&e, 1, lse->dtype, dt), a);
    else
        r = mt_kexpr_unary(&e, MT_SOP_NEG, mt_kexpr_unary(&e, MT_SOP_LOG, a));
    mt_status st = mt_kexpr_add_output(&e, r);
    const mt_array *ins[2] = {picked, lse};
    if (st == MT_OK)
        st = ew_new(ctx, &e, lse ? 2 : 1, ins, dt, picked->ndim, picked->dims, out);
    mt_kexpr_deinit(&e);
    return st;
}

mt_status mt__ref_xent(const mt__jctx *ctx, mt_var v, const mt_array *const *ins,
                       mt_array *out)
{
    const mt_graph *g = ctx->g;
    mt_op op = mt_graph_op(g, v);
    if (op == MT_OP_SOFTMAX_XENT_LABELS_DX) return xent_dx(ctx, v, ins, out);
    int32_t axis = mt_graph_attrs(g, v)->axes[0];
    mt_dtype dt = mt_graph_type(g, v)->dtype;
    mt_array x = {0}, tmp = {0}, tmp2 = {0};
    mt_status st = as_dtype(&x, ins[0], dt);
    if (st != MT_OK) return st;
    switch (op) {
    case MT_OP_XENT: /* -sum(t * log(p)) */
        st = neg_sum_product(ctx, &x, ins[1], axis, true, dt, out);
        break;
    case MT_OP_SOFTMAX_XENT: /* -sum(t * logsoftmax(x)) */
        st = softmax_core(ctx, &x, axis, true, &tmp);
        if (st == MT_OK) st = neg_sum_product(ctx, &tmp, ins[1], axis, false, dt, out);
        break;
    case MT_OP_XENT_LABELS: /* -log(p[label]) */
        st = mt__ref_take_along(ctx, &x, ins[1], axis, &tmp);
        if (st == MT_OK) st = label_finish(ctx, &tmp, NULL, dt, out);
        break;
    case MT_OP_SOFTMAX_XENT_LABELS: /* logsumexp(x) - x[label] */
        if (host_rows(ctx, &x, axis)) {
            st = host_xent_labels(ctx, &x, ins[1], out);
            if (st != MT_ERR_UNSUPPORTED) break;
        }
        st = mt__ref_take_along(ctx, &x, ins[1], axis, &tmp);
        if (st == MT_OK) st = logsumexp_core(ctx, &x, 1, &axis, false, &tmp2);
        if (st == MT_OK) st = label_finish(ctx, &tmp, &tmp2, dt, out);
        break;
    default:
        st = mt_err_set(MT_ERR_INTERNAL, "not a crossentropy op: %s", mt_op_name(op));
    }
    mt_array_clear(&x);
    mt_array_clear(&tmp);
    mt_array_clear(&tmp2);
    return st;
}
