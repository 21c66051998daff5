/* Views: new dims/strides/offset over the same buffer, never a copy (except mt_array_reshape,
 * which copies when NumPy would).
 *
 * The semantics are NumPy's, case by case: basic indexing with Python's slice clipping
 * (PySlice_AdjustIndices), transpose/swapaxes, broadcast_to (read-only, stride 0), expand_dims
 * and squeeze with NumPy's axis rules, and reshape through NumPy's _attempt_nocopy_reshape so
 * exactly the reshapes NumPy does without a copy are views here.
 *
 * Every function builds the result in a local and assigns *out last, so out may alias src's
 * storage for reading (the caller still owns src's reference). */
#include <string.h>

#include "gpuarray_impl.h"

mt_slice mt_slice_range(int64_t start, int64_t stop, int64_t step)
{
    return (mt_slice){MT_SLICE_RANGE, start, stop, step};
}

mt_slice mt_slice_index(int64_t index)
{
    return (mt_slice){MT_SLICE_INDEX, index, MT_SLICE_UNSET, MT_SLICE_UNSET};
}

mt_slice mt_slice_all(void)
{
    return (mt_slice){MT_SLICE_RANGE, MT_SLICE_UNSET, MT_SLICE_UNSET, MT_SLICE_UNSET};
}

mt_slice mt_slice_newaxis(void)
{
    return (mt_slice){MT_SLICE_NEWAXIS, MT_SLICE_UNSET, MT_SLICE_UNSET, MT_SLICE_UNSET};
}

mt_slice mt_slice_ellipsis(void)
{
    return (mt_slice){MT_SLICE_ELLIPSIS, MT_SLICE_UNSET, MT_SLICE_UNSET, MT_SLICE_UNSET};
}

/* Finishes a view: retains the buffer, recomputes flags and stores it. */
static void finish_view(mt_array *out, mt_array *v)
{
    mt_array_update_flags(v);
    mt_buffer_retain(v->buf);
    *out = *v;
}

static mt_status check_src(const mt_array *src, const char *what)
{
    if (!src || !src->buf) return mt_err_set(MT_ERR_INVALID, "%s: the array is empty", what);
    return MT_OK;
}

/* Normalizes an axis in [-n, n) to [0, n); ERR_RANGE with NumPy's wording otherwise. */
static mt_status norm_axis(int32_t *axis, int32_t n, const char *what)
{
    int32_t a = *axis;
    if (a < -n || a >= n)
        return mt_err_set(MT_ERR_RANGE, "%s: axis %d is out of bounds for array of dimension %d",
                          what, (int)a, (int)n);
    *axis = a < 0 ? a + n : a;
    return MT_OK;
}

/* ---------------------------------------------------------------- basic indexing */

/* Python's PySlice_AdjustIndices: clips start/stop to the axis, returns the length. */
static int64_t adjust_slice(int64_t len, int64_t *start, int64_t *stop, int64_t step)
{
    int64_t lo = step < 0 ? -1 : 0, hi = step < 0 ? len - 1 : len;
    int64_t b = *start, e = *stop;
    if (b == MT_SLICE_UNSET)
        b = step < 0 ? hi : lo;
    else if (b < 0) {
        b = b < -len ? lo : b + len;
    } else if (b > hi)
        b = hi;
    if (e == MT_SLICE_UNSET)
        e = step < 0 ? lo : hi;
    else if (e < 0) {
        e = e < -len ? lo : e + len;
    } else if (e > hi)
        e = hi;
    *start = b;
    *stop = e;
    if (step < 0) return e < b ? (b - e - 1) / (-step) + 1 : 0;
    return b < e ? (e - b - 1) / step + 1 : 0;
}

/* Counts the axes the index consumes and checks the ellipsis count. */
static mt_status count_indexed(int32_t nslices, const mt_slice *s, int32_t ndim, int32_t *used,
                               bool *has_ellipsis)
{
    *used = 0;
    *has_ellipsis = false;
    for (int32_t i = 0; i < nslices; i++) {
        switch (s[i].kind) {
        case MT_SLICE_RANGE:
        case MT_SLICE_INDEX:
            (*used)++;
            break;
        case MT_SLICE_NEWAXIS:
            break;
        case MT_SLICE_ELLIPSIS:
            if (*has_ellipsis)
                return mt_err_set(MT_ERR_INVALID, "slice: an index can only have a single "
                                                  "ellipsis ('...')");
            *has_ellipsis = true;
            break;
        default:
            return mt_err_set(MT_ERR_INVALID, "slice: entry %d has invalid kind %d", (int)i,
                              (int)s[i].kind);
        }
    }
    if (*used > ndim)
        return mt_err_set(MT_ERR_INVALID,
                          "slice: too many indices for array: array is "
                          "%d-dimensional, but %d were indexed",
                          (int)ndim, (int)*used);
    return MT_OK;
}

/* Appends one output axis to v, checking the rank limit. */
static mt_status push_axis(mt_array *v, int64_t dim, int64_t stride)
{
    if (v->ndim >= MT_MAX_DIMS)
        return mt_err_set(MT_ERR_INVALID, "slice: the result would have more than %d dimensions",
                          MT_MAX_DIMS);
    v->dims[v->ndim] = dim;
    v->strides[v->ndim] = stride;
    v->ndim++;
    return MT_OK;
}

/* Applies one RANGE or INDEX entry to source axis `ax`. */
static mt_status apply_entry(mt_array *v, int64_t *off, const mt_array *src, int32_t ax,
                             const mt_slice *s)
{
    int64_t len = src->dims[ax], stride = src->strides[ax];
    if (s->kind == MT_SLICE_INDEX) {
        int64_t i = s->start;
        if (i < -len || i >= len)
            return mt_err_set(MT_ERR_RANGE,
                              "index %lld is out of bounds for axis %d with size %lld",
                              (long long)i, (int)ax, (long long)len);
        if (i < 0) i += len;
        *off += i * stride;
        return MT_OK;
    }
    int64_t step = s->step == MT_SLICE_UNSET ? 1 : s->step;
    if (step == 0)
        return mt_err_set(MT_ERR_INVALID, "slice step cannot be zero (axis %d)", (int)ax);
    int64_t start = s->start, stop = s->stop;
    int64_t n = adjust_slice(len, &start, &stop, step);
    /* an empty slice keeps the offset: its start may lie outside the buffer */
    if (n > 0) *off += start * stride;
    return push_axis(v, n, stride * step);
}

mt_status mt_array_slice(mt_array *out, const mt_array *src, int32_t nslices, const mt_slice *s)
{
    mt_status st = check_src(src, "slice");
    if (st != MT_OK) return st;
    if (nslices < 0 || (nslices > 0 && !s))
        return mt_err_set(MT_ERR_INVALID, "slice: %d entries but no slice array", (int)nslices);
    int32_t used;
    bool has_ellipsis;
    st = count_indexed(nslices, s, src->ndim, &used, &has_ellipsis);
    if (st != MT_OK) return st;
    mt_array v = *src;
    v.ndim = 0;
    int64_t off = (int64_t)src->offset;
    int32_t ax = 0; /* next source axis */
    for (int32_t i = 0; i < nslices && st == MT_OK; i++) {
        if (s[i].kind == MT_SLICE_NEWAXIS) {
            st = push_axis(&v, 1, 0);
        } else if (s[i].kind == MT_SLICE_ELLIPSIS) {
            for (int32_t k = 0; k < src->ndim - used && st == MT_OK; k++, ax++)
                st = push_axis(&v, src->dims[ax], src->strides[ax]);
        } else {
            st = apply_entry(&v, &off, src, ax, &s[i]);
            ax++;
        }
    }
    for (; ax < src->ndim && st == MT_OK; ax++)
        st = push_axis(&v, src->dims[ax], src->strides[ax]);
    if (st != MT_OK) return st;
    MT_ASSERT(off >= 0);
    v.offset = (size_t)off;
    finish_view(out, &v);
    return MT_OK;
}

/* ---------------------------------------------------------------- axis permutations */

mt_status mt_array_transpose(mt_array *out, const mt_array *src, const int32_t *perm)
{
    mt_status st = check_src(src, "transpose");
    if (st != MT_OK) return st;
    int32_t n = src->ndim, p[MT_MAX_DIMS];
    bool seen[MT_MAX_DIMS] = {false};
    for (int32_t i = 0; i < n; i++) {
        p[i] = perm ? perm[i] : n - 1 - i;
        st = norm_axis(&p[i], n, "transpose");
        if (st != MT_OK) return st;
        if (seen[p[i]])
            return mt_err_set(MT_ERR_INVALID,
                              "transpose: repeated axis %d in the permutation of %d axes",
                              (int)p[i], (int)n);
        seen[p[i]] = true;
    }
    mt_array v = *src;
    for (int32_t i = 0; i < n; i++) {
        v.dims[i] = src->dims[p[i]];
        v.strides[i] = src->strides[p[i]];
    }
    finish_view(out, &v);
    return MT_OK;
}

mt_status mt_array_swapaxes(mt_array *out, const mt_array *src, int32_t a, int32_t b)
{
    mt_status st = check_src(src, "swapaxes");
    if (st == MT_OK) st = norm_axis(&a, src->ndim, "swapaxes");
    if (st == MT_OK) st = norm_axis(&b, src->ndim, "swapaxes");
    if (st != MT_OK) return st;
    int32_t perm[MT_MAX_DIMS];
    for (int32_t i = 0; i < src->ndim; i++)
        perm[i] = i;
    perm[a] = b;
    perm[b] = a;
    return mt_array_transpose(out, src, perm);
}

/* ---------------------------------------------------------------- broadcasting */

mt_status mt_array_broadcast_to(mt_array *out, const mt_array *src, int32_t ndim,
                                const int64_t *dims)
{
    mt_status st = check_src(src, "broadcast_to");
    if (st != MT_OK) return st;
    char sa[256], sb[256];
    if (ndim < 0 || ndim > MT_MAX_DIMS)
        return mt_err_set(MT_ERR_INVALID, "broadcast_to: ndim %d is outside 0..%d", (int)ndim,
                          MT_MAX_DIMS);
    for (int32_t i = 0; i < ndim; i++)
        if (dims[i] < 0)
            return mt_err_set(MT_ERR_SHAPE, "broadcast_to: negative dimension in shape %s",
                              mt_shape_str(ndim, dims, sb, sizeof sb));
    if (ndim < src->ndim) goto mismatch;
    mt_array v = *src;
    v.ndim = ndim;
    for (int32_t k = 0; k < ndim; k++) {
        int32_t i = ndim - 1 - k, j = src->ndim - 1 - k;
        if (j < 0) {
            v.dims[i] = dims[i];
            v.strides[i] = 0;
        } else if (src->dims[j] == dims[i]) {
            v.dims[i] = dims[i];
            v.strides[i] = src->strides[j];
        } else if (src->dims[j] == 1) {
            v.dims[i] = dims[i];
            v.strides[i] = 0;
        } else {
            goto mismatch;
        }
    }
    /* several elements share memory: NumPy makes broadcast views read-only */
    v.flags &= ~(uint32_t)MT_ARRAY_WRITEABLE;
    finish_view(out, &v);
    return MT_OK;
mismatch:
    return mt_err_set(MT_ERR_SHAPE, "cannot broadcast array of shape %s to shape %s",
                      mt_shape_str(src->ndim, src->dims, sa, sizeof sa),
                      mt_shape_str(ndim, dims, sb, sizeof sb));
}

/* ---------------------------------------------------------------- adding and removing axes */

mt_status mt_array_expand_dims(mt_array *out, const mt_array *src, int32_t axis)
{
    mt_status st = check_src(src, "expand_dims");
    if (st != MT_OK) return st;
    int32_t n = src->ndim;
    if (n >= MT_MAX_DIMS)
        return mt_err_set(MT_ERR_INVALID,
                          "expand_dims: the array already has %d dimensions (the maximum)",
                          MT_MAX_DIMS);
    st = norm_axis(&axis, n + 1, "expand_dims");
    if (st != MT_OK) return st;
    mt_array v = *src;
    v.ndim = n + 1;
    for (int32_t i = n; i > axis; i--) {
        v.dims[i] = src->dims[i - 1];
        v.strides[i] = src->strides[i - 1];
    }
    v.dims[axis] = 1;
    /* any stride is valid for a length-1 axis; pick the C-contiguous one */
    v.strides[axis] = axis < n ? src->strides[axis] * (src->dims[axis] > 0 ? src->dims[axis] : 1)
                               : (int64_t)mt_dtype_size(src->dtype);
    finish_view(out, &v);
    return MT_OK;
}

mt_status mt_array_squeeze(mt_array *out, const mt_array *src, int32_t naxes, const int32_t *axes)
{
    mt_status st = check_src(src, "squeeze");
    if (st != MT_OK) return st;
    int32_t n = src->ndim;
    bool drop[MT_MAX_DIMS] = {false};
    if (naxes < 0 || naxes > n)
        return mt_err_set(MT_ERR_INVALID, "squeeze: %d axes given for a %d-d array", (int)naxes,
                          (int)n);
    for (int32_t i = 0; i < naxes; i++) {
        int32_t a = axes[i];
        st = norm_axis(&a, n, "squeeze");
        if (st != MT_OK) return st;
        if (drop[a]) return mt_err_set(MT_ERR_INVALID, "squeeze: repeated axis %d", (int)a);
        if (src->dims[a] != 1)
            return mt_err_set(MT_ERR_INVALID,
                              "squeeze: cannot select axis %d, which has size %lld, not 1", (int)a,
                              (long long)src->dims[a]);
        drop[a] = true;
    }
    if (naxes == 0)
        for (int32_t i = 0; i < n; i++)
            drop[i] = src->dims[i] == 1;
    mt_array v = *src;
    v.ndim = 0;
    for (int32_t i = 0; i < n; i++) {
        if (drop[i]) continue;
        v.dims[v.ndim] = src->dims[i];
        v.strides[v.ndim] = src->strides[i];
        v.ndim++;
    }
    finish_view(out, &v);
    return MT_OK;
}

/* ---------------------------------------------------------------- reshape */

/* NumPy's _fix_unknown_dimension: fills one -1 and checks the total size. */
static mt_status fix_unknown_dim(const mt_array *src, int32_t ndim, int64_t *dims)
{
    char sa[256], sb[256];
    int64_t size = mt_array_size(src), known = 1;
    int32_t unknown = -1;
    if (ndim < 0 || ndim > MT_MAX_DIMS)
        return mt_err_set(MT_ERR_INVALID, "reshape: ndim %d is outside 0..%d", (int)ndim,
                          MT_MAX_DIMS);
    for (int32_t i = 0; i < ndim; i++) {
        if (dims[i] == -1) {
            if (unknown >= 0)
                return mt_err_set(MT_ERR_SHAPE,
                                  "reshape: can only specify one unknown dimension (-1) in %s",
                                  mt_shape_str(ndim, dims, sb, sizeof sb));
            unknown = i;
        } else if (dims[i] < 0) {
            return mt_err_set(MT_ERR_SHAPE, "reshape: negative dimension %lld in %s",
                              (long long)dims[i], mt_shape_str(ndim, dims, sb, sizeof sb));
        } else if (__builtin_mul_overflow(known, dims[i], &known)) {
            goto mismatch;
        }
    }
    if (unknown >= 0) {
        if (known == 0 || size % known != 0) goto mismatch;
        dims[unknown] = size / known;
    } else if (known != size) {
        goto mismatch;
    }
    return MT_OK;
mismatch:
    return mt_err_set(MT_ERR_SHAPE, "cannot reshape array of shape %s (size %lld) into shape %s",
                      mt_shape_str(src->ndim, src->dims, sa, sizeof sa), (long long)size,
                      mt_shape_str(ndim, dims, sb, sizeof sb));
}

/* NumPy's _attempt_nocopy_reshape (C order) for an array of size > 1: new strides, or false
 * when the memory layout needs a copy. */
static bool nocopy_reshape(const mt_array *src, int32_t newnd, const int64_t *newdims,
                           int64_t *newstrides)
{
    int64_t olddims[MT_MAX_DIMS], oldstrides[MT_MAX_DIMS];
    int32_t oldnd = 0;
    for (int32_t i = 0; i < src->ndim; i++) {
        if (src->dims[i] == 1) continue; /* length-1 axes have no effect */
        olddims[oldnd] = src->dims[i];
        oldstrides[oldnd] = src->strides[i];
        oldnd++;
    }
    int32_t oi = 0, oj = 1, ni = 0, nj = 1;
    while (ni < newnd && oi < oldnd) {
        int64_t np = newdims[ni], op = olddims[oi];
        while (np != op) {
            if (np < op)
                np *= newdims[nj++]; /* trailing 1s are handled below */
            else
                op *= olddims[oj++];
        }
        for (int32_t ok = oi; ok < oj - 1; ok++)
            if (oldstrides[ok] != olddims[ok + 1] * oldstrides[ok + 1]) return false;
        newstrides[nj - 1] = oldstrides[oj - 1];
        for (int32_t nk = nj - 1; nk > ni; nk--)
            newstrides[nk - 1] = newstrides[nk] * newdims[nk];
        ni = nj++;
        oi = oj++;
    }
    int64_t last = ni >= 1 ? newstrides[ni - 1] : (int64_t)mt_dtype_size(src->dtype);
    for (int32_t nk = ni; nk < newnd; nk++)
        newstrides[nk] = last;
    return true;
}

mt_status mt_array_reshape_view(mt_array *out, const mt_array *src, int32_t ndim,
                                const int64_t *dims, bool *needs_copy)
{
    if (needs_copy) *needs_copy = false;
    mt_status st = check_src(src, "reshape");
    if (st != MT_OK) return st;
    if (ndim < 0 || ndim > MT_MAX_DIMS)
        return mt_err_set(MT_ERR_INVALID, "reshape: ndim %d is outside 0..%d", (int)ndim,
                          MT_MAX_DIMS);
    int64_t nd[MT_MAX_DIMS], ns[MT_MAX_DIMS];
    if (ndim > 0) memcpy(nd, dims, (size_t)ndim * sizeof *nd);
    st = fix_unknown_dim(src, ndim, nd);
    if (st != MT_OK) return st;
    if (mt_array_size(src) <= 1 || mt_array_is_c_contiguous(src)) {
        int64_t s = (int64_t)mt_dtype_size(src->dtype);
        for (int32_t i = ndim - 1; i >= 0; i--) {
            ns[i] = s;
            s *= nd[i] > 0 ? nd[i] : 1;
        }
    } else if (!nocopy_reshape(src, ndim, nd, ns)) {
        char sa[256], sb[256], desc[256];
        if (needs_copy) *needs_copy = true;
        return mt_err_set(MT_ERR_SHAPE,
                          "reshape: an array of shape %s cannot be viewed as "
                          "shape %s without a copy (%s)",
                          mt_shape_str(src->ndim, src->dims, sa, sizeof sa),
                          mt_shape_str(ndim, nd, sb, sizeof sb),
                          mt_array_describe(src, desc, sizeof desc));
    }
    mt_array v = *src;
    v.ndim = ndim;
    for (int32_t i = 0; i < ndim; i++) {
        v.dims[i] = nd[i];
        v.strides[i] = ns[i];
    }
    finish_view(out, &v);
    return MT_OK;
}

mt_status mt_array_reshape(mt_array *out, const mt_array *src, int32_t ndim, const int64_t *dims)
{
    bool needs_copy = false;
    mt_status st = mt_array_reshape_view(out, src, ndim, dims, &needs_copy);
    if (st == MT_OK || !needs_copy) return st;
    mt_err_clear();
    mt_array c;
    st = mt_array_contiguous(&c, src);
    if (st != MT_OK) return st;
    st = mt_array_reshape_view(out, &c, ndim, dims, NULL);
    mt_array_clear(&c);
    return st;
}

mt_status mt_array_flatten(mt_array *out, const mt_array *src)
{
    int64_t d = -1;
    return mt_array_reshape(out, src, 1, &d);
}

mt_status mt_array_view_as(mt_array *out, const mt_array *src, mt_dtype dt)
{
    mt_status st = check_src(src, "view_as");
    if (st != MT_OK) return st;
    if (!mt_dtype_valid(dt)) return mt_err_set(MT_ERR_DTYPE, "view_as: invalid dtype %d", (int)dt);
    if (mt_dtype_size(dt) != mt_dtype_size(src->dtype))
        return mt_err_set(MT_ERR_DTYPE,
                          "view_as: %s (%zu bytes) cannot view %s (%zu bytes) elements",
                          mt_dtype_name(dt), mt_dtype_size(dt), mt_dtype_name(src->dtype),
                          mt_dtype_size(src->dtype));
    mt_array v = *src;
    v.dtype = dt;
    finish_view(out, &v);
    return MT_OK;
}
