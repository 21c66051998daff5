/* Array creation, host transfers, flags and formatting.
 *
 * An mt_array is a value: one buffer reference plus dtype, dims, byte strides and offset, so
 * creating a view is a struct copy and a retain. Contiguity flags follow NumPy's (relaxed
 * strides) rules: dimensions of length 1 never break contiguity and an array with a zero-length
 * dimension is both C and F contiguous. */
#include <stdio.h>
#include <string.h>

#include "gpuarray_impl.h"

/* ---------------------------------------------------------------- shape helpers */

const char *mt_shape_str(int32_t ndim, const int64_t *dims, char *buf, size_t len)
{
    if (!buf || len == 0) return "";
    size_t pos = 0;
    int n = snprintf(buf, len, "(");
    pos = n > 0 ? (size_t)n : 0;
    for (int32_t i = 0; i < ndim && pos < len; i++) {
        n = snprintf(buf + pos, len - pos, "%s%lld", i ? ", " : "", (long long)dims[i]);
        if (n < 0) break;
        pos += (size_t)n;
    }
    /* a 1-d shape prints as Python prints a 1-tuple: "(4,)" */
    if (pos < len) snprintf(buf + pos, len - pos, ndim == 1 ? ",)" : ")");
    return buf;
}

/* Element count of a shape, ERR_RANGE (recorded) if it or its byte size overflows. */
static mt_status shape_size(int64_t *size, size_t *nbytes, int32_t ndim, const int64_t *dims,
                            size_t itemsize, const char *what)
{
    char sh[256];
    int64_t n = 1;
    bool zero = false;
    /* As NumPy, the product of the nonzero dims must fit even when a dim is 0, so that the
     * strides of an empty array (e.g. a file's (0, 2^32-1, 2^32-1)) cannot overflow. */
    for (int32_t i = 0; i < ndim; i++) {
        if (dims[i] == 0) {
            zero = true;
            continue;
        }
        if (__builtin_mul_overflow(n, dims[i], &n))
            return mt_err_set(MT_ERR_RANGE, "%s: shape %s has too many elements", what,
                              mt_shape_str(ndim, dims, sh, sizeof sh));
    }
    size_t bytes;
    if (__builtin_mul_overflow((size_t)n, itemsize, &bytes) || bytes > (size_t)INT64_MAX)
        return mt_err_set(MT_ERR_RANGE, "%s: shape %s needs more than 2^63 bytes", what,
                          mt_shape_str(ndim, dims, sh, sizeof sh));
    if (zero) {
        n = 0;
        bytes = 0;
    }
    *size = n;
    if (nbytes) *nbytes = bytes;
    return MT_OK;
}

/* Validates dtype, rank and dims of a new array. */
static mt_status check_shape(mt_dtype dt, int32_t ndim, const int64_t *dims, const char *what)
{
    if (!mt_dtype_valid(dt)) return mt_err_set(MT_ERR_DTYPE, "%s: invalid dtype %d", what, (int)dt);
    if (ndim < 0 || ndim > MT_MAX_DIMS)
        return mt_err_set(MT_ERR_INVALID, "%s: ndim %d is outside 0..%d", what, (int)ndim,
                          MT_MAX_DIMS);
    if (ndim > 0 && !dims) return mt_err_set(MT_ERR_INVALID, "%s: dims is NULL", what);
    for (int32_t i = 0; i < ndim; i++) {
        if (dims[i] < 0) {
            char sh[256];
            return mt_err_set(MT_ERR_SHAPE, "%s: negative dimension %lld in shape %s", what,
                              (long long)dims[i], mt_shape_str(ndim, dims, sh, sizeof sh));
        }
    }
    return MT_OK;
}

/* ---------------------------------------------------------------- flags */

static bool is_contig(const mt_array *a, bool c_order)
{
    int64_t expect = (int64_t)mt_dtype_size(a->dtype);
    for (int32_t i = 0; i < a->ndim; i++)
        if (a->dims[i] == 0) return true;
    for (int32_t k = 0; k < a->ndim; k++) {
        int32_t i = c_order ? a->ndim - 1 - k : k;
        if (a->dims[i] == 1) continue;
        if (a->strides[i] != expect) return false;
        expect *= a->dims[i];
    }
    return true;
}

void mt_array_update_flags(mt_array *a)
{
    uint32_t f = a->flags & MT_ARRAY_WRITEABLE;
    if (is_contig(a, true)) f |= MT_ARRAY_C_CONTIGUOUS;
    if (is_contig(a, false)) f |= MT_ARRAY_F_CONTIGUOUS;
    int64_t isz = (int64_t)mt_dtype_size(a->dtype);
    bool aligned = isz > 0 && a->offset % (size_t)isz == 0;
    for (int32_t i = 0; i < a->ndim && aligned; i++)
        if (a->dims[i] > 1 && a->strides[i] % isz != 0) aligned = false;
    if (aligned) f |= MT_ARRAY_ALIGNED;
    a->flags = f;
}

bool mt_array_is_c_contiguous(const mt_array *a)
{
    return is_contig(a, true);
}

bool mt_array_is_f_contiguous(const mt_array *a)
{
    return is_contig(a, false);
}

/* ---------------------------------------------------------------- creation */

mt_status mt_array_empty(mt_array *out, mt_device *dev, mt_dtype dt, int32_t ndim,
                         const int64_t *dims, char order)
{
    static const char what[] = "array_empty";
    mt_status st = check_shape(dt, ndim, dims, what);
    if (st != MT_OK) return st;
    if (order != 'C' && order != 'F')
        return mt_err_set(MT_ERR_INVALID, "%s: order must be 'C' or 'F', not '%c'", what, order);
    if (!dev) return mt_err_set(MT_ERR_INVALID, "%s: device is NULL", what);
    int64_t size;
    size_t nbytes = 0;
    st = shape_size(&size, &nbytes, ndim, dims, mt_dtype_size(dt), what);
    if (st != MT_OK) return st;
    mt_array a;
    memset(&a, 0, sizeof a);
    a.dtype = dt;
    a.ndim = ndim;
    int64_t stride = (int64_t)mt_dtype_size(dt);
    for (int32_t k = 0; k < ndim; k++) {
        int32_t i = order == 'C' ? ndim - 1 - k : k;
        a.dims[i] = dims[i];
        a.strides[i] = stride;
        stride *= dims[i] > 0 ? dims[i] : 1;
    }
    st = mt_buffer_new(&a.buf, dev, nbytes);
    if (st != MT_OK) return st;
    a.flags = MT_ARRAY_WRITEABLE;
    mt_array_update_flags(&a);
    *out = a;
    return MT_OK;
}

mt_status mt_array_zeros(mt_array *out, mt_device *dev, mt_dtype dt, int32_t ndim,
                         const int64_t *dims)
{
    mt_array a;
    mt_status st = mt_array_empty(&a, dev, dt, ndim, dims, 'C');
    if (st != MT_OK) return st;
    st = mt_array_fill(&a, mt_scalar_i64(0));
    if (st != MT_OK) {
        mt_array_clear(&a);
        return st;
    }
    *out = a;
    return MT_OK;
}

mt_status mt_array_from_host(mt_array *out, mt_device *dev, mt_dtype dt, int32_t ndim,
                             const int64_t *dims, const void *data)
{
    mt_array a;
    mt_status st = mt_array_empty(&a, dev, dt, ndim, dims, 'C');
    if (st != MT_OK) return st;
    size_t n = mt_array_nbytes(&a);
    if (n > 0 && !data) {
        mt_array_clear(&a);
        return mt_err_set(MT_ERR_INVALID, "array_from_host: data is NULL");
    }
    st = mt_buffer_write(a.buf, 0, data, n, NULL);
    if (st != MT_OK) {
        mt_array_clear(&a);
        return st;
    }
    *out = a;
    return MT_OK;
}

/* Reads the bytes [lo, hi) a strided view spans on a device without host pointers and
 * gathers its elements on the host: no kernel to compile, one transfer. */
static mt_status gather_span(void *dst, const mt_array *a, const int64_t *cstr, int64_t lo,
                             int64_t hi)
{
    char *tmp = mt_malloc((size_t)(hi - lo));
    if (!tmp) return mt_err_prefix(MT_ERR_NOMEM, "array_to_host: ");
    mt_status st = mt_buffer_read(tmp, a->buf, (size_t)lo, (size_t)(hi - lo), NULL);
    if (st == MT_OK)
        mt__host_copy_strided(dst, a->dtype, cstr, tmp + ((int64_t)a->offset - lo), a->dtype,
                              a->strides, a->ndim, a->dims, NULL);
    mt_free(tmp);
    return st;
}

#define SPAN_SMALL ((int64_t)1 << 20)

mt_status mt_array_to_host(void *dst, size_t nbytes, const mt_array *a)
{
    char desc[256];
    if (!a->buf) return mt_err_set(MT_ERR_INVALID, "array_to_host: the array is empty (no buffer)");
    size_t need = mt_array_nbytes(a);
    if (nbytes != need)
        return mt_err_set(MT_ERR_INVALID,
                          "array_to_host: destination holds %zu bytes but %s needs %zu", nbytes,
                          mt_array_describe(a, desc, sizeof desc), need);
    if (need == 0) return MT_OK;
    if (mt_array_is_c_contiguous(a)) return mt_buffer_read(dst, a->buf, a->offset, need, NULL);
    int64_t cstr[MT_MAX_DIMS];
    int64_t s = (int64_t)mt_dtype_size(a->dtype);
    for (int32_t i = a->ndim - 1; i >= 0; i--) {
        cstr[i] = s;
        s *= a->dims[i];
    }
    char *base = mt_buffer_host_ptr(a->buf);
    if (base) {
        mt_device *dev = a->buf->dev;
        mt_status st = mt_device_sync(dev);
        if (st != MT_OK) return st;
        mt__host_copy_strided(dst, a->dtype, cstr, base + a->offset, a->dtype, a->strides, a->ndim,
                              a->dims, dev->pool);
        return MT_OK;
    }
    /* no host pointer: when the view's bytes lie close together read them all, else gather
     * on the device first so only the elements cross the bus */
    int64_t lo = (int64_t)a->offset, hi = lo + (int64_t)mt_dtype_size(a->dtype);
    for (int32_t i = 0; i < a->ndim; i++) {
        int64_t ext = (a->dims[i] - 1) * a->strides[i];
        if (ext < 0)
            lo += ext;
        else
            hi += ext;
    }
    if (hi - lo <= SPAN_SMALL || hi - lo <= 4 * (int64_t)need)
        return gather_span(dst, a, cstr, lo, hi);
    mt_array c;
    mt_status st = mt_array_contiguous(&c, a);
    if (st != MT_OK) return st;
    st = mt_buffer_read(dst, c.buf, c.offset, need, NULL);
    mt_array_clear(&c);
    return st;
}

void mt_array_view(mt_array *out, const mt_array *src)
{
    mt_array a = *src;
    mt_buffer_retain(a.buf);
    *out = a;
}

void mt_array_clear(mt_array *a)
{
    if (!a) return;
    mt_buffer_release(a->buf);
    memset(a, 0, sizeof *a);
}

/* ---------------------------------------------------------------- queries */

int64_t mt_array_size(const mt_array *a)
{
    int64_t n = 1;
    for (int32_t i = 0; i < a->ndim; i++)
        n *= a->dims[i];
    return n;
}

size_t mt_array_nbytes(const mt_array *a)
{
    return (size_t)mt_array_size(a) * mt_dtype_size(a->dtype);
}

size_t mt_array_itemsize(const mt_array *a)
{
    return mt_dtype_size(a->dtype);
}

mt_device *mt_array_device(const mt_array *a)
{
    return mt_buffer_device(a->buf);
}

const char *mt_array_describe(const mt_array *a, char *buf, size_t len)
{
    if (!buf || len == 0) return "";
    if (!a || !a->buf) {
        snprintf(buf, len, "(empty array)");
        return buf;
    }
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    mt_strbuf_appendf(&sb, "%s[", mt_dtype_name(a->dtype));
    for (int32_t i = 0; i < a->ndim; i++)
        mt_strbuf_appendf(&sb, "%s%lld", i ? "," : "", (long long)a->dims[i]);
    mt_strbuf_append(&sb, "] strides(");
    for (int32_t i = 0; i < a->ndim; i++)
        mt_strbuf_appendf(&sb, "%s%lld", i ? "," : "", (long long)a->strides[i]);
    mt_strbuf_append(&sb, ")");
    if (a->offset) mt_strbuf_appendf(&sb, " offset %zu", a->offset);
    mt_strbuf_appendf(&sb, " %s", mt_device_name(mt_array_device(a)));
    snprintf(buf, len, "%s", sb.data ? sb.data : "(out of memory)");
    mt_strbuf_deinit(&sb);
    return buf;
}

mt_status mt_broadcast_shapes(int32_t *ndim_out, int64_t *dims_out, int32_t nd_a, const int64_t *a,
                              int32_t nd_b, const int64_t *b)
{
    if (nd_a < 0 || nd_a > MT_MAX_DIMS || nd_b < 0 || nd_b > MT_MAX_DIMS)
        return mt_err_set(MT_ERR_INVALID, "broadcast_shapes: ndim %d or %d is outside 0..%d",
                          (int)nd_a, (int)nd_b, MT_MAX_DIMS);
    int32_t nd = nd_a > nd_b ? nd_a : nd_b;
    int64_t res[MT_MAX_DIMS];
    for (int32_t k = 0; k < nd; k++) {
        int64_t da = k < nd_a ? a[nd_a - 1 - k] : 1;
        int64_t db = k < nd_b ? b[nd_b - 1 - k] : 1;
        int64_t r;
        if (da == db || db == 1)
            r = da;
        else if (da == 1)
            r = db;
        else {
            char sa[256], sb[256];
            return mt_err_set(MT_ERR_SHAPE, "shapes %s and %s cannot be broadcast together",
                              mt_shape_str(nd_a, a, sa, sizeof sa),
                              mt_shape_str(nd_b, b, sb, sizeof sb));
        }
        res[nd - 1 - k] = r;
    }
    memcpy(dims_out, res, (size_t)nd * sizeof *res);
    *ndim_out = nd;
    return MT_OK;
}
