/* The dataset object: a dense float32 design matrix X [n, dim] on the host with optional
 * image geometry (b01c) and optional targets (int64 class labels or float32 rows), built from
 * memory or by the readers; slicing, in-place seeded shuffling, and gathering rows into batch
 * arrays (memcpy of whole rows, straight into host arrays or through one upload for device
 * arrays). Also the size checks every reader uses before allocating. A lazy dataset (lazy.c)
 * has no X: slicing and shuffling rewrite its view of the file's rows, and gathering reads the
 * rows from the file into the same batch arrays. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data_impl.h"

#define MT_DATA_DEFAULT_MAX_BYTES ((size_t)16 << 30)

size_t mt_data_max_bytes(void)
{
    const char *s = getenv("MLTRAIN_DATA_MAX_BYTES");
    if (!s || !*s) return MT_DATA_DEFAULT_MAX_BYTES;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s) return MT_DATA_DEFAULT_MAX_BYTES;
    unsigned shift = 0;
    switch (*end) {
    case 'k':
    case 'K':
        shift = 10;
        break;
    case 'm':
    case 'M':
        shift = 20;
        break;
    case 'g':
    case 'G':
        shift = 30;
        break;
    case 't':
    case 'T':
        shift = 40;
        break;
    default:
        break;
    }
    if (shift && v > (SIZE_MAX >> shift)) return SIZE_MAX;
    return (size_t)(v << shift);
}

mt_status mt__data_bytes(size_t *out, int64_t count, size_t elsize, size_t max_bytes,
                         const char *what)
{
    uint64_t bytes;
    if (count < 0 || __builtin_mul_overflow((uint64_t)count, (uint64_t)elsize, &bytes) ||
        bytes > (uint64_t)SIZE_MAX)
        return mt_err_set(MT_ERR_RANGE, "%s: %lld elements of %zu bytes do not fit in memory", what,
                          (long long)count, elsize);
    if (max_bytes > 0 && bytes > max_bytes)
        return mt_err_set(MT_ERR_RANGE,
                          "%s: %llu bytes (%lld elements) are over the limit of "
                          "%zu bytes (MLTRAIN_DATA_MAX_BYTES)",
                          what, (unsigned long long)bytes, (long long)count, max_bytes);
    *out = (size_t)bytes;
    return MT_OK;
}

static void *alloc_bytes(size_t n)
{
    return mt_malloc(n ? n : 1);
}

mt_status mt__dataset_new(mt_dataset **out, const char *name, int64_t n, int64_t dim, bool labels,
                          int64_t y_dim)
{
    *out = NULL;
    if (n < 0 || dim < 0 || y_dim < 0)
        return mt_err_set(MT_ERR_INVALID, "dataset '%s': negative size (n %lld, dim %lld)", name,
                          (long long)n, (long long)dim);
    size_t xb, yb = 0;
    int64_t count;
    if (__builtin_mul_overflow(n, dim, &count))
        return mt_err_set(MT_ERR_RANGE, "dataset '%s': %lld x %lld overflows", name, (long long)n,
                          (long long)dim);
    mt_status st = mt__data_bytes(&xb, count, sizeof(float), 0, name);
    if (st != MT_OK) return st;
    mt_dataset *d = mt_calloc(1, sizeof *d);
    if (!d) return MT_ERR_NOMEM;
    d->name = mt_strdup(name ? name : "dataset");
    d->n = n;
    d->dim = dim;
    d->X = alloc_bytes(xb);
    if (!d->name || !d->X) goto nomem;
    if (labels) {
        if ((st = mt__data_bytes(&yb, n, sizeof(int64_t), 0, name)) != MT_OK) goto fail;
        if (!(d->labels = alloc_bytes(yb))) goto nomem;
    } else if (y_dim > 0) {
        if (__builtin_mul_overflow(n, y_dim, &count)) {
            st = mt_err_set(MT_ERR_RANGE, "dataset '%s': targets overflow", name);
            goto fail;
        }
        if ((st = mt__data_bytes(&yb, count, sizeof(float), 0, name)) != MT_OK) goto fail;
        if (!(d->Y = alloc_bytes(yb))) goto nomem;
        d->y_dim = y_dim;
    }
    *out = d;
    return MT_OK;
nomem:
    st = mt_err_set(MT_ERR_NOMEM, "dataset '%s': out of memory for %lld x %lld", name, (long long)n,
                    (long long)dim);
fail:
    mt_dataset_free(d);
    return st;
}

void mt_dataset_free(mt_dataset *d)
{
    if (!d) return;
    mt_free(d->name);
    mt_free(d->X);
    mt_free(d->labels);
    mt_free(d->Y);
    mt_free(d->lazy_map);
    mt_free(d->source_dims);
    mt__lazy_src_release(d->lazy);
    mt_free(d);
}

void mt__dataset_replace_X(mt_dataset *d, float *X, int64_t dim)
{
    mt_free(d->X);
    d->X = X;
    if (dim != d->dim) {
        d->topo_ndim = 0;
        mt_free(d->source_dims);
        d->source_dims = NULL;
        d->n_sources = 0;
    }
    d->dim = dim;
}

mt_status mt__dataset_set_sources(mt_dataset *d, int32_t n, const int64_t *dims)
{
    int64_t total = 0;
    for (int32_t i = 0; i < n; i++) total += dims[i];
    if (n < 1 || total != d->dim)
        return mt_err_set(MT_ERR_INVALID, "dataset '%s': %d sources of %lld features in all, "
                          "but the dataset has %lld", d->name, (int)n, (long long)total,
                          (long long)d->dim);
    int64_t *c = mt_malloc((size_t)n * sizeof(int64_t));
    if (!c) return mt_err_set(MT_ERR_NOMEM, "dataset '%s': out of memory", d->name);
    memcpy(c, dims, (size_t)n * sizeof(int64_t));
    mt_free(d->source_dims);
    d->source_dims = c;
    d->n_sources = n;
    return MT_OK;
}

mt_status mt_dataset_take_images(mt_dataset *d, const int64_t topo[3], float *X)
{
    int64_t p;
    if (d->lazy || !d->X) {
        mt_free(X);
        return mt_err_set(MT_ERR_INVALID, "dataset '%s' reads its rows from a file: load it in "
                          "memory (mt_dataset_materialize) before replacing its images", d->name);
    }
    if (topo[0] < 1 || topo[1] < 1 || topo[2] < 1 || __builtin_mul_overflow(topo[0], topo[1], &p) ||
        __builtin_mul_overflow(p, topo[2], &p) || __builtin_mul_overflow(p, d->n, &p)) {
        mt_free(X);
        return mt_err_set(MT_ERR_SHAPE, "dataset '%s': bad image size %lldx%lldx%lld", d->name,
                          (long long)topo[0], (long long)topo[1], (long long)topo[2]);
    }
    mt__dataset_replace_X(d, X, topo[0] * topo[1] * topo[2]);
    return mt__dataset_set_topo(d, topo);
}

mt_status mt__dataset_set_topo(mt_dataset *d, const int64_t topo[3])
{
    int64_t p;
    if (topo[0] < 1 || topo[1] < 1 || topo[2] < 1 || __builtin_mul_overflow(topo[0], topo[1], &p) ||
        __builtin_mul_overflow(p, topo[2], &p) || p != d->dim)
        return mt_err_set(MT_ERR_SHAPE,
                          "dataset '%s': topology %lldx%lldx%lld does not match "
                          "dim %lld",
                          d->name, (long long)topo[0], (long long)topo[1], (long long)topo[2],
                          (long long)d->dim);
    d->topo_ndim = 3;
    memcpy(d->topo, topo, sizeof d->topo);
    return MT_OK;
}

mt_status mt__dataset_set_name(mt_dataset *d, const char *name)
{
    char *s = mt_strdup(name);
    if (!s) return MT_ERR_NOMEM;
    mt_free(d->name);
    d->name = s;
    return MT_OK;
}

mt_status mt__dataset_check_labels(mt_dataset *d, int64_t n_classes, const char *what)
{
    int64_t mx = -1;
    for (int64_t i = 0; i < d->n; i++) {
        int64_t l = d->labels[i];
        if (l < 0 || (n_classes > 0 && l >= n_classes))
            return mt_err_set(MT_ERR_FORMAT, "%s: label %lld of example %lld is outside [0, %lld)",
                              what, (long long)l, (long long)i,
                              (long long)(n_classes > 0 ? n_classes : INT64_MAX));
        if (l > mx) mx = l;
    }
    d->n_classes = n_classes > 0 ? n_classes : mx + 1;
    return MT_OK;
}

void mt_dataset_get_info(const mt_dataset *d, mt_dataset_info *out)
{
    memset(out, 0, sizeof *out);
    out->n = d->n;
    out->dim = d->dim;
    out->topo_ndim = d->topo_ndim;
    memcpy(out->topo, d->topo, sizeof out->topo);
    out->has_y = d->labels || d->Y;
    out->y_is_labels = d->labels != NULL;
    out->n_classes = d->labels ? d->n_classes : 0;
    out->y_dim = d->Y ? d->y_dim : 0;
    out->name = d->name;
    out->n_sources = d->n_sources;
    out->source_dims = d->source_dims;
}

const float *mt_dataset_X(const mt_dataset *d)
{
    return d->X;
}

float *mt_dataset_X_mut(mt_dataset *d)
{
    return d->X;
}

const int64_t *mt_dataset_labels(const mt_dataset *d)
{
    return d->labels;
}

const float *mt_dataset_Y(const mt_dataset *d)
{
    return d->Y;
}

mt_status mt_dataset_from_memory(mt_dataset **out, const char *name, int64_t n, int64_t dim,
                                 const float *X, const int64_t *topo, const int64_t *y_labels,
                                 int64_t n_classes, const float *y, int64_t y_dim)
{
    if (!out) return mt_err_set(MT_ERR_INVALID, "dataset_from_memory: out is NULL");
    *out = NULL;
    if (!name) name = "memory";
    if ((n > 0 && dim > 0 && !X) || (y && y_dim < 1) || (y && y_labels))
        return mt_err_set(MT_ERR_INVALID,
                          "dataset_from_memory '%s': X is NULL, or y without "
                          "y_dim >= 1, or both labels and float targets",
                          name);
    mt_dataset *d;
    mt_status st = mt__dataset_new(&d, name, n, dim, y_labels != NULL, y ? y_dim : 0);
    if (st != MT_OK) return st;
    if (n > 0 && dim > 0) memcpy(d->X, X, (size_t)(n * dim) * sizeof(float));
    if (topo && (st = mt__dataset_set_topo(d, topo)) != MT_OK) goto fail;
    if (y_labels) {
        if (n) memcpy(d->labels, y_labels, (size_t)n * sizeof(int64_t));
        if ((st = mt__dataset_check_labels(d, n_classes, name)) != MT_OK) {
            st = mt_err_set(MT_ERR_INVALID, "dataset_from_memory %s", mt_last_error());
            goto fail;
        }
    }
    if (y && n) memcpy(d->Y, y, (size_t)(n * y_dim) * sizeof(float));
    *out = d;
    return MT_OK;
fail:
    mt_dataset_free(d);
    return st;
}

mt_status mt_dataset_slice(mt_dataset **out, const mt_dataset *d, int64_t start, int64_t stop)
{
    if (!out || !d) return mt_err_set(MT_ERR_INVALID, "dataset_slice: NULL argument");
    *out = NULL;
    if (start < 0 || stop < start || stop > d->n)
        return mt_err_set(MT_ERR_RANGE,
                          "dataset '%s': slice [%lld, %lld) is outside its %lld "
                          "examples",
                          d->name, (long long)start, (long long)stop, (long long)d->n);
    char name[256];
    snprintf(name, sizeof name, "%s[%lld:%lld]", d->name, (long long)start, (long long)stop);
    int64_t n = stop - start;
    mt_dataset *s;
    /* A lazy slice: no X (one float allocated and dropped), a view of the same file. */
    mt_status st = mt__dataset_new(&s, name, d->lazy ? 0 : n, d->dim, d->labels != NULL,
                                   d->Y ? d->y_dim : 0);
    if (st != MT_OK) return st;
    if (d->lazy) {
        mt_free(s->X);
        s->X = NULL;
        mt_free(s->labels);
        mt_free(s->Y);
        s->labels = NULL;
        s->Y = NULL;
        s->n = n;
        size_t lb = (size_t)(n ? n : 1) * sizeof(int64_t);
        size_t yb = (size_t)(n * d->y_dim) * sizeof(float) + 1;
        if ((d->lazy_map && !(s->lazy_map = mt_malloc(lb))) ||
            (d->labels && !(s->labels = mt_malloc(lb))) || (d->Y && !(s->Y = mt_malloc(yb)))) {
            mt_dataset_free(s);
            return mt_err_set(MT_ERR_NOMEM, "dataset '%s': out of memory", name);
        }
        s->lazy = d->lazy;
        s->lazy->refs++;
        s->lazy_first = d->lazy_first + start;
        if (d->lazy_map) memcpy(s->lazy_map, d->lazy_map + start, (size_t)n * sizeof(int64_t));
    } else {
        memcpy(s->X, d->X + start * d->dim, (size_t)(n * d->dim) * sizeof(float));
    }
    if (d->labels) memcpy(s->labels, d->labels + start, (size_t)n * sizeof(int64_t));
    if (d->Y) memcpy(s->Y, d->Y + start * d->y_dim, (size_t)(n * d->y_dim) * sizeof(float));
    s->n_classes = d->n_classes;
    s->topo_ndim = d->topo_ndim;
    memcpy(s->topo, d->topo, sizeof s->topo);
    if (d->n_sources > 0 && (st = mt__dataset_set_sources(s, d->n_sources, d->source_dims))) {
        mt_dataset_free(s);
        return st;
    }
    *out = s;
    return MT_OK;
}

void mt__dataset_keep_rows(mt_dataset *d, int64_t start, int64_t stop)
{
    int64_t n = stop - start;
    if (start > 0 && d->lazy) {
        if (d->lazy_map)
            memmove(d->lazy_map, d->lazy_map + start, (size_t)n * sizeof(int64_t));
        else
            d->lazy_first += start;
    }
    if (start > 0) {
        if (d->X) memmove(d->X, d->X + start * d->dim, (size_t)(n * d->dim) * sizeof(float));
        if (d->labels) memmove(d->labels, d->labels + start, (size_t)n * sizeof(int64_t));
        if (d->Y) memmove(d->Y, d->Y + start * d->y_dim, (size_t)(n * d->y_dim) * sizeof(float));
    }
    d->n = n;
}

/* ---------------------------------------------------------------- permutations */

void mt__data_permutation(int64_t *perm, int64_t n, uint64_t seed, uint64_t epoch, uint32_t tag)
{
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    for (int64_t i = 0; i < n; i++)
        perm[i] = i;
    uint32_t r[4];
    uint64_t have_block = UINT64_MAX;
    /* Draw i (for position i, i = n-1 .. 1) is the 64-bit word i % 2 of Philox block i / 2. */
    for (int64_t i = n - 1; i > 0; i--) {
        uint64_t block = (uint64_t)i >> 1;
        if (block != have_block) {
            const uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), (uint32_t)epoch,
                                     tag ^ (uint32_t)(epoch >> 32) * 0x9E3779B9u};
            mt_philox4x32(ctr, key, r);
            have_block = block;
        }
        int w = (int)(i & 1) * 2;
        uint64_t x = ((uint64_t)r[w] << 32) | r[w + 1];
        int64_t j = (int64_t)mt__mulhi64(x, (uint64_t)i + 1);
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

mt_status mt__dataset_shuffle(mt_dataset *d, uint64_t seed, uint32_t stream)
{
    if (d->n < 2) return MT_OK;
    size_t pb, xb, yb = 0;
    mt_status st = mt__data_bytes(&pb, d->n, sizeof(int64_t), 0, d->name);
    if (st != MT_OK) return st;
    if ((st = mt__data_bytes(&xb, d->lazy ? 0 : d->n * d->dim, sizeof(float), 0, d->name)) !=
        MT_OK)
        return st;
    if (d->Y) yb = (size_t)(d->n * d->y_dim) * sizeof(float);
    int64_t *perm = mt_malloc(pb);
    /* Lazy: X is the row map (file rows), which the permutation replaces. */
    float *X = d->lazy ? NULL : alloc_bytes(xb);
    int64_t *map = d->lazy ? mt_malloc(pb) : NULL;
    int64_t *labels = d->labels ? mt_malloc(pb) : NULL;
    float *Y = d->Y ? alloc_bytes(yb) : NULL;
    if (!perm || (!d->lazy && !X) || (d->lazy && !map) || (d->labels && !labels) ||
        (d->Y && !Y)) {
        mt_free(perm);
        mt_free(X);
        mt_free(map);
        mt_free(labels);
        mt_free(Y);
        return mt_err_set(MT_ERR_NOMEM, "shuffling '%s': out of memory", d->name);
    }
    mt__data_permutation(perm, d->n, seed, 0, stream);
    size_t row = (size_t)d->dim * sizeof(float), yrow = (size_t)d->y_dim * sizeof(float);
    for (int64_t i = 0; i < d->n; i++) {
        if (map)
            map[i] = mt__lazy_file_row(d, perm[i]);
        else
            memcpy(X + i * d->dim, d->X + perm[i] * d->dim, row);
        if (labels) labels[i] = d->labels[perm[i]];
        if (Y) memcpy(Y + i * d->y_dim, d->Y + perm[i] * d->y_dim, yrow);
    }
    if (map) {
        mt_free(d->lazy_map);
        d->lazy_map = map;
    } else {
        mt_free(d->X);
        d->X = X;
    }
    if (labels) {
        mt_free(d->labels);
        d->labels = labels;
    }
    if (Y) {
        mt_free(d->Y);
        d->Y = Y;
    }
    mt_free(perm);
    return MT_OK;
}

/* ---------------------------------------------------------------- gather */

/* Makes *a a C-contiguous array of (dt, dims) to write n bytes into: *dst is where to write;
 * *upload is true when *dst is scratch memory to be copied into a's (device) buffer. */
static mt_status batch_target(mt_array *a, mt_dtype dt, int32_t ndim, const int64_t *dims,
                              void **dst, bool *upload, void **scratch, size_t nbytes)
{
    bool same = a->buf && a->dtype == dt && a->ndim == ndim && mt_array_is_c_contiguous(a) &&
                (a->flags & MT_ARRAY_WRITEABLE);
    for (int32_t i = 0; same && i < ndim; i++)
        same = a->dims[i] == dims[i];
    *upload = false;
    if (same) {
        char *p = mt_buffer_host_ptr(a->buf);
        if (p) {
            *dst = p + a->offset;
            return MT_OK;
        }
        if (!(*scratch = alloc_bytes(nbytes))) return MT_ERR_NOMEM;
        *dst = *scratch;
        *upload = true;
        return MT_OK;
    }
    mt_array_clear(a);
    mt_device *host;
    mt_status st = mt_device_open(&host, "host");
    if (st != MT_OK) return st;
    st = mt_array_empty(a, host, dt, ndim, dims, 'C');
    mt_device_release(host);
    if (st != MT_OK) return st;
    *dst = (char *)mt_buffer_host_ptr(a->buf) + a->offset;
    return MT_OK;
}

/* Rows of src (or, with src NULL, of the lazy dataset `lazy`) into a. */
static mt_status gather_rows(mt_array *a, mt_dtype dt, int32_t ndim, const int64_t *dims,
                             const void *src, size_t row_bytes, const int64_t *rows, int64_t n_rows,
                             const mt_dataset *lazy)
{
    void *dst, *scratch = NULL;
    bool upload;
    size_t nbytes = (size_t)n_rows * row_bytes;
    mt_status st = batch_target(a, dt, ndim, dims, &dst, &upload, &scratch, nbytes);
    if (st != MT_OK) {
        /* Collective readers: the other ranks are waiting in this batch's read. */
        if (lazy && lazy->lazy->collective) (void)lazy->lazy->ops->read(lazy->lazy, NULL, 0, NULL);
        return st;
    }
    if (lazy) {
        st = mt__lazy_gather(lazy, rows, n_rows, dst);
        if (st == MT_OK && upload) st = mt_buffer_write(a->buf, a->offset, scratch, nbytes, NULL);
        mt_free(scratch);
        return st;
    }
    const char *s = src;
    char *o = dst;
    for (int64_t i = 0; i < n_rows; i++)
        memcpy(o + (size_t)i * row_bytes, s + (size_t)rows[i] * row_bytes, row_bytes);
    if (upload) st = mt_buffer_write(a->buf, a->offset, scratch, nbytes, NULL);
    mt_free(scratch);
    return st;
}

mt_status mt_dataset_gather(const mt_dataset *d, const int64_t *rows, int64_t n_rows, mt_array *X,
                            mt_array *y)
{
    if (!d || !X || (n_rows > 0 && !rows) || n_rows < 0)
        return mt_err_set(MT_ERR_INVALID, "dataset_gather: NULL argument or negative n_rows");
    for (int64_t i = 0; i < n_rows; i++)
        if (rows[i] < 0 || rows[i] >= d->n) {
            /* Collective readers: the other ranks are waiting in this batch's read. */
            if (d->lazy && d->lazy->collective) (void)d->lazy->ops->read(d->lazy, NULL, 0, NULL);
            if (d->lazy)
                return mt_err_set(MT_ERR_RANGE,
                                  "dataset_gather '%s' (file '%s'): row %lld (position %lld) is "
                                  "outside [0, %lld)",
                                  d->name, d->lazy->path, (long long)rows[i], (long long)i,
                                  (long long)d->n);
            return mt_err_set(MT_ERR_RANGE,
                              "dataset_gather '%s': row %lld (position %lld) is "
                              "outside [0, %lld)",
                              d->name, (long long)rows[i], (long long)i, (long long)d->n);
        }
    int64_t dims[2] = {n_rows, d->dim};
    mt_status st = gather_rows(X, MT_FLOAT32, 2, dims, d->X, (size_t)d->dim * sizeof(float), rows,
                               n_rows, d->lazy ? d : NULL);
    if (st != MT_OK) return mt_err_prefix(st, "dataset_gather '%s' X: ", d->name);
    if (!y) return MT_OK;
    if (d->labels) {
        st = gather_rows(y, MT_INT64, 1, dims, d->labels, sizeof(int64_t), rows, n_rows, NULL);
    } else if (d->Y) {
        dims[1] = d->y_dim;
        st = gather_rows(y, MT_FLOAT32, 2, dims, d->Y, (size_t)d->y_dim * sizeof(float), rows,
                         n_rows, NULL);
    }
    if (st != MT_OK) return mt_err_prefix(st, "dataset_gather '%s' y: ", d->name);
    return MT_OK;
}
