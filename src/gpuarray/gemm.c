/* Matrix products: mt_array_gemm (2-D and 3-D batched BLAS-style GEMM) and mt_array_matmul
 * (NumPy's matmul on top of it).
 *
 * Every operand is first described as a logical 3-D view (batch, rows, cols) of op(x), in byte
 * strides, with the user's transpose already applied. A logical matrix goes to the backend's
 * GEMM (dev->ops->gemm: OpenBLAS on the host, CLBlast on OpenCL) without a copy when one of its
 * two matrix dims has unit element stride: unit column stride is a row-major operand with
 * ld = row stride, unit row stride is a transposed operand with ld = column stride, so slices
 * and transposed views cost nothing. A C with unit row stride (Fortran order) is handled by
 * computing C^T = op(B)^T op(A)^T. A batch dim of 1 or stride 0 broadcasts (batch stride 0).
 * Anything else (negative or non-unit inner strides, misaligned offsets, an input overlapping C)
 * is copied once to a contiguous temporary.
 *
 * float16/bfloat16 are converted to float32 temporaries, multiplied, and converted back (one
 * rounding). Integer and bool dtypes, k = 0, and devices without a GEMM use a plain loop on the
 * host (operands of a device without host pointers are copied to the host and the result copied
 * back, which is slow and meant for correctness, not speed): products accumulate in 64-bit
 * integers with wrap-around, which equals NumPy's wrapping arithmetic in the element type;
 * integral alpha/beta stay in integer arithmetic, other values go through float64 and are cast
 * like NumPy casts (truncation toward zero). Floats in that loop accumulate in float64. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "gpuarray_impl.h"

/* ---------------------------------------------------------------- logical views */

/* Borrowed view: a struct copy that shares the buffer without a reference. Never cleared. */
static mt_array borrowed3(const mt_array *x, bool trans)
{
    mt_array v = *x;
    int32_t nd = x->ndim;
    int64_t d0 = 1, s0 = 0;
    if (nd == 3) {
        d0 = x->dims[0];
        s0 = x->strides[0];
    }
    int64_t r = x->dims[nd - 2], c = x->dims[nd - 1];
    int64_t rs = x->strides[nd - 2], cs = x->strides[nd - 1];
    v.ndim = 3;
    v.dims[0] = d0;
    v.strides[0] = d0 == 1 ? 0 : s0;
    v.dims[1] = trans ? c : r;
    v.dims[2] = trans ? r : c;
    v.strides[1] = trans ? cs : rs;
    v.strides[2] = trans ? rs : cs;
    return v;
}

/* The transposed logical matrix of a 3-D view. */
static mt_array swap_mat(const mt_array *x)
{
    mt_array v = *x;
    v.dims[1] = x->dims[2];
    v.dims[2] = x->dims[1];
    v.strides[1] = x->strides[2];
    v.strides[2] = x->strides[1];
    return v;
}

/* [lo, hi) bytes a view touches, relative to its buffer. */
static void byte_extent(const mt_array *x, int64_t *lo, int64_t *hi)
{
    int64_t l = (int64_t)x->offset, h = l + (int64_t)mt_dtype_size(x->dtype);
    for (int32_t i = 0; i < x->ndim; i++) {
        if (x->dims[i] == 0) {
            *lo = *hi = l;
            return;
        }
        int64_t span = (x->dims[i] - 1) * x->strides[i];
        if (span > 0) h += span;
        else l += span;
    }
    *lo = l;
    *hi = h;
}

static bool views_overlap(const mt_array *x, const mt_array *y)
{
    if (x->buf != y->buf) return false;
    int64_t xl, xh, yl, yh;
    byte_extent(x, &xl, &xh);
    byte_extent(y, &yl, &yh);
    return xl < yh && yl < xh;
}

/* BLAS description of a logical (batch, rows, cols) view, or false if it needs a copy. */
typedef struct blas_op {
    bool trans;
    int64_t ld, bstride; /* elements */
} blas_op;

static bool blas_layout(const mt_array *x, blas_op *op)
{
    int64_t isz = (int64_t)mt_dtype_size(x->dtype);
    int64_t r = x->dims[1], c = x->dims[2], rs = x->strides[1], cs = x->strides[2];
    int64_t bs = x->dims[0] > 1 ? x->strides[0] : 0;
    if (x->offset % (size_t)isz != 0 || bs % isz != 0) return false;
    op->bstride = bs / isz;
    int64_t maxc = c > 1 ? c : 1, maxr = r > 1 ? r : 1;
    /* row-major: unit column stride, ld = row stride >= cols */
    if (c == 1 || cs == isz) {
        int64_t ld = r == 1 ? maxc : (rs > 0 && rs % isz == 0 ? rs / isz : 0);
        if (ld >= maxc) {
            op->trans = false;
            op->ld = ld;
            return true;
        }
    }
    /* column-major = transposed row-major: unit row stride, ld = column stride >= rows */
    if (r == 1 || rs == isz) {
        int64_t ld = c == 1 ? maxr : (cs > 0 && cs % isz == 0 ? cs / isz : 0);
        if (ld >= maxr) {
            op->trans = true;
            op->ld = ld;
            return true;
        }
    }
    return false;
}

/* A C-contiguous copy of a logical operand (only one matrix if its batch broadcasts). */
static mt_status copy_operand(mt_array *tmp, mt_array *x)
{
    if (x->strides[0] == 0) x->dims[0] = 1;
    mt_array_update_flags(x);
    mt_status st = mt_array_copy_to(tmp, x, NULL);
    if (st != MT_OK) return mt_err_prefix(st, "gemm: copying an operand to contiguous: ");
    *x = *tmp;
    if (x->dims[0] == 1) x->strides[0] = 0;
    return MT_OK;
}

/* ---------------------------------------------------------------- BLAS path */

/* c = alpha a @ b + beta c on logical 3-D views (float32/float64, k > 0, ops->gemm present). */
static mt_status gemm_blas(mt_array *c, const mt_array *a_in, const mt_array *b_in, double alpha,
                           double beta)
{
    mt_device *dev = mt_array_device(c);
    blas_op oc;
    bool c_ok = blas_layout(c, &oc) && (c->dims[0] == 1 || oc.bstride != 0);
    if (c_ok && oc.trans) {
        /* Fortran-order C: C^T = op(B)^T op(A)^T. C^T has a unit column stride (or one
         * column), so blas_layout takes it as row-major and this recursion is one level. */
        mt_array ct = swap_mat(c), at = swap_mat(b_in), bt = swap_mat(a_in);
        return gemm_blas(&ct, &at, &bt, alpha, beta);
    }
    if (!c_ok || oc.trans) {
        /* no BLAS layout for C: compute into a contiguous temporary, then copy back */
        mt_array tmp;
        mt_status st = beta != 0 ? mt_array_copy_to(&tmp, c, NULL)
                                 : mt_array_empty(&tmp, dev, c->dtype, 3, c->dims, 'C');
        if (st != MT_OK) return st;
        st = gemm_blas(&tmp, a_in, b_in, alpha, beta);
        if (st == MT_OK) st = mt_array_copy(c, &tmp);
        mt_array_clear(&tmp);
        return st;
    }
    mt_array a = *a_in, b = *b_in, ta = {0}, tb = {0};
    blas_op oa, ob;
    mt_status st = MT_OK;
    if (views_overlap(&a, c) || !blas_layout(&a, &oa)) {
        st = copy_operand(&ta, &a);
        if (st == MT_OK) blas_layout(&a, &oa);
    }
    if (st == MT_OK && (views_overlap(&b, c) || !blas_layout(&b, &ob))) {
        st = copy_operand(&tb, &b);
        if (st == MT_OK) blas_layout(&b, &ob);
    }
    if (st == MT_OK)
        st = dev->ops->gemm(dev, c->dtype, oa.trans, ob.trans, c->dims[1], c->dims[2], a.dims[2],
                            alpha, a.buf->handle, a.offset, oa.ld, oa.bstride, b.buf->handle,
                            b.offset, ob.ld, ob.bstride, beta, c->buf->handle, c->offset, oc.ld,
                            oc.bstride, c->dims[0], NULL);
    mt_array_clear(&ta);
    mt_array_clear(&tb);
    return st;
}

/* float16/bfloat16: float32 temporaries, one rounding back. */
static mt_status gemm_half(mt_array *c, mt_array *a, mt_array *b, double alpha, double beta)
{
    mt_array a32 = {0}, b32 = {0}, c32 = {0};
    if (a->strides[0] == 0) a->dims[0] = 1;
    if (b->strides[0] == 0) b->dims[0] = 1;
    mt_array_update_flags(a);
    mt_array_update_flags(b);
    mt_status st = mt_array_astype(&a32, a, MT_FLOAT32);
    if (st == MT_OK) st = mt_array_astype(&b32, b, MT_FLOAT32);
    if (st == MT_OK)
        st = beta != 0 ? mt_array_astype(&c32, c, MT_FLOAT32)
                       : mt_array_empty(&c32, mt_array_device(c), MT_FLOAT32, 3, c->dims, 'C');
    if (st == MT_OK) {
        if (a32.dims[0] == 1) a32.strides[0] = 0;
        if (b32.dims[0] == 1) b32.strides[0] = 0;
        st = gemm_blas(&c32, &a32, &b32, alpha, beta);
    }
    if (st == MT_OK) st = mt_array_copy(c, &c32);
    mt_array_clear(&a32);
    mt_array_clear(&b32);
    mt_array_clear(&c32);
    return st;
}

/* ---------------------------------------------------------------- host loop path */

typedef struct loop_mode {
    bool is_float;    /* accumulate in double */
    bool int_scalars; /* alpha and beta are integers: stay in integer arithmetic */
    bool is_unsigned;
    int64_t ai, bi;
} loop_mode;

/* One matrix product on host memory (3-D logical views with host pointers). */
static mt_status loop_host(mt_array *c, const mt_array *a, const mt_array *b, double alpha,
                           double beta)
{
    mt_dtype dt = c->dtype;
    int64_t m = c->dims[1], n = c->dims[2], k = a->dims[2];
    loop_mode md = {mt_dtype_is_float(dt), false, mt_dtype_kind(dt) == 'u', 0, 0};
    if (!md.is_float && fabs(alpha) < 9.2e18 && fabs(beta) < 9.2e18 && alpha == floor(alpha) &&
        beta == floor(beta)) {
        md.int_scalars = true;
        md.ai = (int64_t)alpha;
        md.bi = (int64_t)beta;
    }
    mt_dtype wdt = md.is_float ? MT_FLOAT64 : MT_INT64;
    size_t kk = (size_t)(k > 0 ? k : 1);
    int64_t *ta = mt_malloc((size_t)m * kk * 8), *tb = mt_malloc((size_t)n * kk * 8);
    int64_t *tc = mt_malloc((size_t)(n > 0 ? n : 1) * 8), *res = mt_malloc((size_t)n * 8 + 8);
    mt_status st = MT_OK;
    if (!ta || !tb || !tc || !res) {
        st = mt_err_prefix(MT_ERR_NOMEM, "gemm (%s loop): ", mt_dtype_name(dt));
        goto out;
    }
    const char *pa0 = (const char *)mt_buffer_host_ptr(a->buf) + a->offset;
    const char *pb0 = (const char *)mt_buffer_host_ptr(b->buf) + b->offset;
    char *pc0 = (char *)mt_buffer_host_ptr(c->buf) + c->offset;
    for (int64_t bt = 0; bt < c->dims[0]; bt++) {
        const char *pa = pa0 + (a->dims[0] > 1 ? bt * a->strides[0] : 0);
        const char *pb = pb0 + (b->dims[0] > 1 ? bt * b->strides[0] : 0);
        char *pc = pc0 + bt * c->strides[0];
        /* rows of A and columns of B as contiguous int64/double vectors */
        for (int64_t i = 0; i < m; i++)
            mt_dtype_convert(ta + i * k, wdt, 8, pa + i * a->strides[1], dt, a->strides[2],
                             (size_t)k);
        for (int64_t j = 0; j < n; j++)
            mt_dtype_convert(tb + j * k, wdt, 8, pb + j * b->strides[2], dt, b->strides[1],
                             (size_t)k);
        for (int64_t i = 0; i < m; i++) {
            char *crow = pc + i * c->strides[1];
            if (beta != 0) mt_dtype_convert(tc, wdt, 8, crow, dt, c->strides[2], (size_t)n);
            for (int64_t j = 0; j < n; j++) {
                const int64_t *x = ta + i * k, *y = tb + j * k;
                if (md.is_float) {
                    const double *xd = (const double *)x, *yd = (const double *)y;
                    double acc = 0;
                    for (int64_t p = 0; p < k; p++) acc += xd[p] * yd[p];
                    double r = alpha * acc + (beta != 0 ? beta * ((double *)tc)[j] : 0);
                    memcpy(&res[j], &r, 8);
                    continue;
                }
                uint64_t acc = 0; /* wrap-around, as the element type wraps */
                for (int64_t p = 0; p < k; p++) acc += (uint64_t)x[p] * (uint64_t)y[p];
                uint64_t cv = beta != 0 ? (uint64_t)tc[j] : 0;
                if (md.int_scalars) {
                    res[j] = (int64_t)((uint64_t)md.ai * acc + (uint64_t)md.bi * cv);
                } else {
                    double av = md.is_unsigned ? (double)acc : (double)(int64_t)acc;
                    double cd = md.is_unsigned ? (double)cv : (double)(int64_t)cv;
                    double r = alpha * av + (beta != 0 ? beta * cd : 0);
                    memcpy(&res[j], &r, 8);
                }
            }
            bool res_float = md.is_float || !md.int_scalars;
            mt_dtype_convert(crow, dt, c->strides[2], res, res_float ? MT_FLOAT64 : MT_INT64, 8,
                             (size_t)n);
        }
    }
out:
    mt_free(ta);
    mt_free(tb);
    mt_free(tc);
    mt_free(res);
    return st;
}

/* The loop on any device: operands without host pointers are staged through the host. */
static mt_status gemm_loop(mt_array *c, mt_array *a, mt_array *b, double alpha, double beta)
{
    mt_device *dev = mt_array_device(c);
    mt_status st = mt_device_sync(dev);
    if (st != MT_OK) return st;
    if (mt_device_is_host_addressable(dev) && !views_overlap(a, c) && !views_overlap(b, c))
        return loop_host(c, a, b, alpha, beta);
    mt_device *host = NULL;
    if (mt_device_is_host_addressable(dev)) {
        host = dev;
        mt_device_retain(host);
    } else if ((st = mt_device_open(&host, "host")) != MT_OK) {
        return st;
    }
    mt_array ha = {0}, hb = {0}, hc = {0};
    if (a->strides[0] == 0) a->dims[0] = 1;
    if (b->strides[0] == 0) b->dims[0] = 1;
    mt_array_update_flags(a);
    mt_array_update_flags(b);
    st = mt_array_copy_to(&ha, a, host);
    if (st == MT_OK) st = mt_array_copy_to(&hb, b, host);
    if (st == MT_OK)
        st = beta != 0 ? mt_array_copy_to(&hc, c, host)
                       : mt_array_empty(&hc, host, c->dtype, 3, c->dims, 'C');
    if (st == MT_OK) {
        if (ha.dims[0] == 1) ha.strides[0] = 0;
        if (hb.dims[0] == 1) hb.strides[0] = 0;
        st = loop_host(&hc, &ha, &hb, alpha, beta);
    }
    if (st == MT_OK) st = mt_array_copy(c, &hc);
    mt_array_clear(&ha);
    mt_array_clear(&hb);
    mt_array_clear(&hc);
    mt_device_release(host);
    return st;
}

/* ---------------------------------------------------------------- gemm */

/* The three shapes as text, for messages only (not on the fast path). */
typedef struct gemm_names {
    char a[128], b[128], c[128];
} gemm_names;

static const gemm_names *gemm_shapes(gemm_names *nm, const mt_array *c, const mt_array *a,
                                     const mt_array *b)
{
    mt_shape_str(a->ndim, a->dims, nm->a, sizeof nm->a);
    mt_shape_str(b->ndim, b->dims, nm->b, sizeof nm->b);
    mt_shape_str(c->ndim, c->dims, nm->c, sizeof nm->c);
    return nm;
}

static mt_status gemm_check(const mt_array *c, const mt_array *a, const mt_array *b)
{
    if (!a || !b || !c || !a->buf || !b->buf || !c->buf)
        return mt_err_set(MT_ERR_INVALID, "gemm: an operand is NULL or empty");
    bool bad_nd = a->ndim < 2 || a->ndim > 3 || b->ndim < 2 || b->ndim > 3 || c->ndim < 2 ||
                  c->ndim > 3;
    bool bad_batch = c->ndim == 2 && (a->ndim == 3 || b->ndim == 3);
    bool ro = !(c->flags & MT_ARRAY_WRITEABLE);
    if (a->dtype == c->dtype && b->dtype == c->dtype && mt_array_device(a) == mt_array_device(c) &&
        mt_array_device(b) == mt_array_device(c) && !bad_nd && !bad_batch && !ro)
        return MT_OK;
    gemm_names nm;
    gemm_shapes(&nm, c, a, b);
    const char *sa = nm.a, *sb = nm.b, *sc = nm.c;
    if (a->dtype != c->dtype || b->dtype != c->dtype)
        return mt_err_set(MT_ERR_DTYPE, "gemm: dtypes differ (a %s, b %s, c %s); convert first",
                          mt_dtype_name(a->dtype), mt_dtype_name(b->dtype),
                          mt_dtype_name(c->dtype));
    mt_device *dev = mt_array_device(c);
    if (mt_array_device(a) != dev || mt_array_device(b) != dev)
        return mt_err_set(MT_ERR_INVALID, "gemm: operands are on different devices (a %s, b %s, "
                          "c %s)", mt_device_name(mt_array_device(a)),
                          mt_device_name(mt_array_device(b)), mt_device_name(dev));
    if (a->ndim < 2 || a->ndim > 3 || b->ndim < 2 || b->ndim > 3 || c->ndim < 2 || c->ndim > 3)
        return mt_err_set(MT_ERR_SHAPE, "gemm: operands must be 2-D or 3-D (a %s, b %s, c %s)",
                          sa, sb, sc);
    if (c->ndim == 2 && (a->ndim == 3 || b->ndim == 3))
        return mt_err_set(MT_ERR_SHAPE, "gemm: batched a %s or b %s needs a 3-D c, not %s", sa,
                          sb, sc);
    if (!(c->flags & MT_ARRAY_WRITEABLE))
        return mt_err_set(MT_ERR_INVALID, "gemm: c %s is not writeable", sc);
    return MT_OK;
}

mt_status mt_array_gemm(mt_array *c, const mt_array *a, const mt_array *b, double alpha,
                        double beta, bool trans_a, bool trans_b)
{
    mt_status st = gemm_check(c, a, b);
    if (st != MT_OK) return st;
    mt_array la = borrowed3(a, trans_a), lb = borrowed3(b, trans_b), lc = borrowed3(c, false);
    int64_t bat = lc.dims[0], m = lc.dims[1], n = lc.dims[2], k = la.dims[2];
    bool ok = lb.dims[1] == k && la.dims[1] == m && lb.dims[2] == n &&
              (la.dims[0] == 1 || la.dims[0] == bat) && (lb.dims[0] == 1 || lb.dims[0] == bat) &&
              !(bat > 1 && lc.strides[0] == 0);
    gemm_names nm;
    const char *sa = "", *sb = "", *sc = "";
    if (!ok) {
        gemm_shapes(&nm, c, a, b);
        sa = nm.a;
        sb = nm.b;
        sc = nm.c;
    }
    if (lb.dims[1] != k)
        return mt_err_set(MT_ERR_SHAPE, "gemm: inner dims differ: op(a) of a %s has %lld columns, "
                          "op(b) of b %s has %lld rows (trans_a=%d, trans_b=%d)", sa,
                          (long long)k, sb, (long long)lb.dims[1], trans_a, trans_b);
    if (la.dims[1] != m || lb.dims[2] != n)
        return mt_err_set(MT_ERR_SHAPE, "gemm: c %s should have %lld x %lld matrices for a %s @ "
                          "b %s (trans_a=%d, trans_b=%d)", sc, (long long)la.dims[1],
                          (long long)lb.dims[2], sa, sb, trans_a, trans_b);
    if ((la.dims[0] != 1 && la.dims[0] != bat) || (lb.dims[0] != 1 && lb.dims[0] != bat))
        return mt_err_set(MT_ERR_SHAPE, "gemm: batch sizes of a %s and b %s must be 1 or c's %lld "
                          "(c %s)", sa, sb, (long long)bat, sc);
    if (bat > 1 && lc.strides[0] == 0)
        return mt_err_set(MT_ERR_INVALID, "gemm: c %s has a broadcast (stride 0) batch dim", sc);
    if (bat == 0 || m == 0 || n == 0) return MT_OK;
    mt_array_update_flags(&la);
    mt_array_update_flags(&lb);
    mt_array_update_flags(&lc);
    mt_device *dev = mt_array_device(c);
    mt_dtype dt = c->dtype;
    bool blas = dev->ops->gemm && k > 0;
    if (blas && (dt == MT_FLOAT32 || dt == MT_FLOAT64))
        st = gemm_blas(&lc, &la, &lb, alpha, beta);
    else if (blas && (dt == MT_FLOAT16 || dt == MT_BFLOAT16)) {
        /* A backend with a native half GEMM (CUDA: cublasGemmEx, float32 accumulation) takes
         * it as it is; the others answer ERR_DTYPE before touching data, and the product goes
         * through float32 temporaries. cblas has none: the host skips the attempt. */
        st = dev->ops == &mt__host_ops ? MT_ERR_DTYPE : gemm_blas(&lc, &la, &lb, alpha, beta);
        if (st == MT_ERR_DTYPE) {
            mt_err_clear(); /* the backend's refusal is not this call's error */
            st = gemm_half(&lc, &la, &lb, alpha, beta);
        }
    }
    else
        st = gemm_loop(&lc, &la, &lb, alpha, beta);
    if (st != MT_OK) {
        gemm_shapes(&nm, c, a, b);
        return mt_err_prefix(st, "gemm %s @ %s -> %s (%s): ", nm.a, nm.b, nm.c, mt_dtype_name(dt));
    }
    return MT_OK;
}

/* ---------------------------------------------------------------- matmul */

/* A single stride s with offset(idx) = flat(idx) * s over these dims, if one exists. */
static bool flat_stride(int32_t nd, const int64_t *dims, const int64_t *strides, int64_t *s)
{
    int64_t stride = 0, block = 0;
    for (int32_t i = nd - 1; i >= 0; i--) {
        if (dims[i] == 1) continue;
        if (block == 0) {
            stride = strides[i];
            block = dims[i];
            continue;
        }
        if (strides[i] != stride * block) return false;
        block *= dims[i];
    }
    *s = stride;
    return true;
}

/* A 2-D core of a matmul operand as (dims, strides), 1-D operands promoted. */
typedef struct mm_operand {
    int32_t nbatch;
    int64_t bdims[MT_MAX_DIMS], bstrides[MT_MAX_DIMS]; /* broadcast to the full batch shape */
    int64_t r, c, rs, cs;
} mm_operand;

static void mm_core(mm_operand *o, const mt_array *x, bool is_b)
{
    if (x->ndim == 1) {
        o->r = is_b ? x->dims[0] : 1;
        o->c = is_b ? 1 : x->dims[0];
        o->rs = is_b ? x->strides[0] : 0;
        o->cs = is_b ? 0 : x->strides[0];
        o->nbatch = 0;
        return;
    }
    int32_t nd = x->ndim;
    o->r = x->dims[nd - 2];
    o->c = x->dims[nd - 1];
    o->rs = x->strides[nd - 2];
    o->cs = x->strides[nd - 1];
    o->nbatch = nd - 2;
    memcpy(o->bdims, x->dims, (size_t)o->nbatch * sizeof(int64_t));
    memcpy(o->bstrides, x->strides, (size_t)o->nbatch * sizeof(int64_t));
}

/* Strides of o's batch dims broadcast (right-aligned) to the batch shape (nb, bdims). */
static void mm_broadcast(const mm_operand *o, int32_t nb, const int64_t *bdims, int64_t *out)
{
    for (int32_t i = 0; i < nb; i++) {
        int32_t j = i - (nb - o->nbatch);
        out[i] = (j >= 0 && o->bdims[j] == bdims[i]) ? o->bstrides[j] : 0;
    }
}

static mt_array mm_view(const mt_array *base, size_t off, int64_t bat, int64_t bs, int64_t r,
                        int64_t c, int64_t rs, int64_t cs)
{
    mt_array v = *base;
    v.offset = off;
    v.ndim = 3;
    v.dims[0] = bat;
    v.dims[1] = r;
    v.dims[2] = c;
    v.strides[0] = bat > 1 ? bs : 0;
    v.strides[1] = rs;
    v.strides[2] = cs;
    mt_array_update_flags(&v);
    return v;
}

/* out (C-contiguous, batch + (m, n)) = a @ b with a, b already of out's dtype. */
static mt_status mm_run(mt_array *out, const mt_array *a, const mt_array *b, int32_t nb,
                        const int64_t *bdims)
{
    mm_operand oa, ob;
    mm_core(&oa, a, false);
    mm_core(&ob, b, true);
    int64_t sa[MT_MAX_DIMS], sb[MT_MAX_DIMS], sc[MT_MAX_DIMS];
    mm_broadcast(&oa, nb, bdims, sa);
    mm_broadcast(&ob, nb, bdims, sb);
    int64_t m = oa.r, n = ob.c, isz = (int64_t)mt_dtype_size(out->dtype);
    int64_t total = 1, s = m * n * isz;
    for (int32_t i = nb - 1; i >= 0; i--) {
        sc[i] = s;
        s *= bdims[i];
        total *= bdims[i];
    }
    int64_t fa, fb;
    if (flat_stride(nb, bdims, sa, &fa) && flat_stride(nb, bdims, sb, &fb)) {
        /* b shared by every batch and a's batches stacked like rows: one big 2-D product */
        if ((fb == 0 || total == 1) && (total == 1 || m == 1 || fa == m * oa.rs)) {
            int64_t rows = total * m;
            int64_t rs = m == 1 ? (total == 1 ? oa.rs : fa) : oa.rs;
            mt_array va = mm_view(a, a->offset, 1, 0, rows, oa.c, rs, oa.cs);
            mt_array vb = mm_view(b, b->offset, 1, 0, ob.r, n, ob.rs, ob.cs);
            mt_array vc = mm_view(out, out->offset, 1, 0, rows, n, n * isz, isz);
            return mt_array_gemm(&vc, &va, &vb, 1.0, 0.0, false, false);
        }
        mt_array va = mm_view(a, a->offset, total, fa, m, oa.c, oa.rs, oa.cs);
        mt_array vb = mm_view(b, b->offset, total, fb, ob.r, n, ob.rs, ob.cs);
        mt_array vc = mm_view(out, out->offset, total, m * n * isz, m, n, n * isz, isz);
        if (fa == 0 && total > 1) va.dims[0] = 1;
        if (fb == 0 && total > 1) vb.dims[0] = 1;
        return mt_array_gemm(&vc, &va, &vb, 1.0, 0.0, false, false);
    }
    /* batch strides that do not flatten (broadcast mixed with real dims): one call per matrix */
    int64_t idx[MT_MAX_DIMS] = {0};
    for (int64_t t = 0; t < total; t++) {
        int64_t offa = (int64_t)a->offset, offb = (int64_t)b->offset, offc = (int64_t)out->offset;
        for (int32_t i = 0; i < nb; i++) {
            offa += idx[i] * sa[i];
            offb += idx[i] * sb[i];
            offc += idx[i] * sc[i];
        }
        mt_array va = mm_view(a, (size_t)offa, 1, 0, m, oa.c, oa.rs, oa.cs);
        mt_array vb = mm_view(b, (size_t)offb, 1, 0, ob.r, n, ob.rs, ob.cs);
        mt_array vc = mm_view(out, (size_t)offc, 1, 0, m, n, n * isz, isz);
        mt_status st = mt_array_gemm(&vc, &va, &vb, 1.0, 0.0, false, false);
        if (st != MT_OK) return st;
        for (int32_t i = nb - 1; i >= 0; i--) {
            if (++idx[i] < bdims[i]) break;
            idx[i] = 0;
        }
    }
    return MT_OK;
}

/* "matmul: a SHAPE @ b SHAPE: " + what, formatted only for errors. */
static mt_status mm_error(mt_status code, const mt_array *a, const mt_array *b, const char *what)
{
    char sa[128], sb[128];
    mt_shape_str(a->ndim, a->dims, sa, sizeof sa);
    mt_shape_str(b->ndim, b->dims, sb, sizeof sb);
    return mt_err_set(code, "matmul: a %s @ b %s: %s", sa, sb, what);
}

mt_status mt_array_matmul(mt_array *out, const mt_array *a, const mt_array *b)
{
    if (!out || !a || !b || !a->buf || !b->buf)
        return mt_err_set(MT_ERR_INVALID, "matmul: an operand is NULL or empty");
    if (a->ndim == 0 || b->ndim == 0)
        return mm_error(MT_ERR_SHAPE, a, b,
                        "operands must have at least 1 dimension (use multiply for scalars)");
    mt_device *dev = mt_array_device(a);
    if (mt_array_device(b) != dev)
        return mt_err_set(MT_ERR_INVALID, "matmul: a is on %s but b is on %s",
                          mt_device_name(dev), mt_device_name(mt_array_device(b)));
    int64_t ka = a->dims[a->ndim - 1];
    int64_t kb = b->ndim == 1 ? b->dims[0] : b->dims[b->ndim - 2];
    if (ka != kb) {
        char why[96];
        snprintf(why, sizeof why, "inner dims differ (%lld vs %lld)", (long long)ka,
                 (long long)kb);
        return mm_error(MT_ERR_SHAPE, a, b, why);
    }
    int32_t nba = a->ndim > 2 ? a->ndim - 2 : 0, nbb = b->ndim > 2 ? b->ndim - 2 : 0, nb;
    int64_t bdims[MT_MAX_DIMS];
    mt_status st = mt_broadcast_shapes(&nb, bdims, nba, a->dims, nbb, b->dims);
    if (st != MT_OK) return mm_error(MT_ERR_SHAPE, a, b, "batch dims do not broadcast");
    int64_t odims[MT_MAX_DIMS];
    int32_t ond = nb;
    memcpy(odims, bdims, (size_t)nb * sizeof *odims);
    if (a->ndim > 1) odims[ond++] = a->dims[a->ndim - 2];
    if (b->ndim > 1) odims[ond++] = b->dims[b->ndim - 1];
    mt_dtype dt = mt_dtype_promote(a->dtype, b->dtype);
    mt_array ca = {0}, cb = {0}, o = {0};
    const mt_array *pa = a, *pb = b;
    if (a->dtype != dt) {
        if ((st = mt_array_astype(&ca, a, dt)) != MT_OK) goto fail;
        pa = &ca;
    }
    if (b->dtype != dt) {
        if ((st = mt_array_astype(&cb, b, dt)) != MT_OK) goto fail;
        pb = &cb;
    }
    if ((st = mt_array_empty(&o, dev, dt, ond, odims, 'C')) != MT_OK) goto fail;
    if (mt_array_size(&o) > 0 && (st = mm_run(&o, pa, pb, nb, bdims)) != MT_OK) goto fail;
    mt_array_clear(&ca);
    mt_array_clear(&cb);
    *out = o;
    return MT_OK;
fail:
    mt_array_clear(&ca);
    mt_array_clear(&cb);
    mt_array_clear(&o);
    char sa[128], sb[128];
    return mt_err_prefix(st, "matmul %s @ %s: ", mt_shape_str(a->ndim, a->dims, sa, sizeof sa),
                         mt_shape_str(b->ndim, b->dims, sb, sizeof sb));
}
