/* Lazy datasets: X stays in its file and mt_dataset_gather reads only the rows it is asked for,
 * so each rank of a data-parallel job reads its own shard of every batch and no process holds
 * the whole matrix. Also the load modes (memory / lazy / auto), the process default that AUTO
 * follows, and the MPI communicator handed to the parallel HDF5 backend.
 *
 * A source (mt__lazy_src) is one open file with n_file rows of `dim` values. Datasets view it
 * through a first row and an optional row map (start/stop and shuffling only rewrite the view),
 * and share it by reference count. A gather maps the requested rows to file rows, sorts them,
 * drops repeats, reads the k distinct rows in one backend call (always one call, also for
 * k == 0, because the parallel HDF5 backend is a collective), and copies each read row to every
 * position that asked for it.
 *
 * The raw backend (uncompressed IDX and C-ordered .npy) reads runs of consecutive rows with one
 * pread each (a run is cut at 4 MiB) and converts them with the same steps as the in-memory
 * readers (byte swap, bool normalisation, mt_dtype_convert to float32, IDX's scaling, MNIST's
 * binarize), so a lazy batch is bit-identical to the same rows of the in-memory dataset. A file
 * that shrinks after it was opened is reported with the row and byte offset that are missing.
 * HDF5's backend lives in hdf5.c. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data_impl.h"

#define RAW_RUN_BYTES ((size_t)4 << 20)
#define MATERIALIZE_ROWS ((int64_t)1 << 16)

static mt_data_load g_default_load = MT_DATA_LOAD_AUTO;
static const void *g_mpi_comm;

static const char *const g_load_names[MT_DATA_LOAD_COUNT] = {
    [MT_DATA_LOAD_AUTO] = "auto", [MT_DATA_LOAD_MEMORY] = "memory", [MT_DATA_LOAD_LAZY] = "lazy"};

const char *mt_data_load_name(mt_data_load m)
{
    return (unsigned)m < MT_DATA_LOAD_COUNT ? g_load_names[m] : "invalid";
}

mt_status mt_data_load_from_name(mt_data_load *out, const char *name)
{
    if (!out || !name) return mt_err_set(MT_ERR_INVALID, "data_load_from_name: NULL argument");
    for (int i = 0; i < MT_DATA_LOAD_COUNT; i++)
        if (strcmp(name, g_load_names[i]) == 0) {
            *out = (mt_data_load)i;
            return MT_OK;
        }
    return mt_err_set(MT_ERR_INVALID, "load mode '%s' is not one of 'auto', 'memory', 'lazy'",
                      name);
}

void mt_data_set_default_load(mt_data_load mode)
{
    g_default_load = (unsigned)mode < MT_DATA_LOAD_COUNT ? mode : MT_DATA_LOAD_AUTO;
}

mt_data_load mt_data_default_load(void)
{
    return g_default_load;
}

void mt_data_set_mpi_comm(const void *mpi_comm)
{
    g_mpi_comm = mpi_comm;
}

const void *mt__data_mpi_comm(void)
{
    return g_mpi_comm;
}

bool mt__data_want_lazy(mt_data_load mode, const char *path)
{
    if (mode == MT_DATA_LOAD_AUTO) mode = g_default_load;
    if (mode != MT_DATA_LOAD_AUTO) return mode == MT_DATA_LOAD_LAZY;
    struct stat sb;
    return path && stat(path, &sb) == 0 && (uint64_t)sb.st_size > MT_DATA_LAZY_AUTO_BYTES;
}

/* ---------------------------------------------------------------- sources */

mt_status mt__lazy_src_new(mt__lazy_src **out, const char *path, const char *format)
{
    mt__lazy_src *s = mt_calloc(1, sizeof *s);
    if (!s || !(s->path = mt_strdup(path))) {
        mt_free(s);
        return mt_err_set(MT_ERR_NOMEM, "%s '%s': out of memory", format, path);
    }
    s->refs = 1;
    s->fd = -1;
    s->format = format;
    s->scale = 1.0;
    *out = s;
    return MT_OK;
}

void mt__lazy_src_release(mt__lazy_src *s)
{
    if (!s || --s->refs > 0) return;
    if (s->ops && s->ops->close) s->ops->close(s);
    if (s->fd >= 0) close(s->fd);
    mt_free(s->path);
    mt_free(s);
}

/* Reads n bytes at off; a short read means the file shrank after it was opened. */
static mt_status raw_pread(mt__lazy_src *s, unsigned char *buf, size_t n, uint64_t off,
                           int64_t row0)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(s->fd, buf + got, n - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR) continue;
        int64_t row = row0 + (int64_t)(got / s->row_bytes);
        if (r < 0)
            return mt_err_errno(errno, "%s '%s': reading row %lld at byte offset %llu", s->format,
                                s->path, (long long)row, (unsigned long long)(off + got));
        if (r == 0) {
            struct stat sb;
            long long size = fstat(s->fd, &sb) == 0 ? (long long)sb.st_size : -1;
            return mt_err_set(MT_ERR_FORMAT,
                              "%s '%s': truncated: row %lld (byte offset %llu) is past the end "
                              "of the file (%lld bytes; it held %lld rows when it was opened)",
                              s->format, s->path, (long long)row,
                              (unsigned long long)(s->data_off + (uint64_t)row * s->row_bytes),
                              size, (long long)s->n_file);
        }
        got += (size_t)r;
    }
    s->bytes_read += n;
    return MT_OK;
}

/* The in-memory readers' conversion, element for element. */
static void raw_convert(const mt__lazy_src *s, unsigned char *raw, float *out, size_t n_el)
{
    size_t esz = mt_dtype_size(s->dtype);
    if (s->swap) mt__data_swap_bytes(raw, n_el * esz, esz);
    if (s->dtype == MT_BOOL)
        for (size_t i = 0; i < n_el; i++)
            raw[i] = raw[i] != 0;
    mt_dtype_convert(out, MT_FLOAT32, (ptrdiff_t)sizeof(float), raw, s->dtype, (ptrdiff_t)esz,
                     n_el);
    mt__data_scale_floats(out, n_el, s->divisor, s->scale);
    if (s->binarize)
        for (size_t i = 0; i < n_el; i++)
            out[i] = out[i] > 0.5f ? 1.0f : 0.0f;
}

static mt_status raw_read(mt__lazy_src *s, const int64_t *u, int64_t k, float *out)
{
    if (k == 0) return MT_OK;
    size_t rb = s->row_bytes ? s->row_bytes : 1;
    int64_t run_max = (int64_t)(RAW_RUN_BYTES / rb);
    if (run_max < 1) run_max = 1;
    if (run_max > k) run_max = k;
    unsigned char *buf = mt_malloc((size_t)run_max * rb);
    if (!buf)
        return mt_err_set(MT_ERR_NOMEM, "%s '%s': out of memory for %lld rows", s->format, s->path,
                          (long long)run_max);
    mt_status st = MT_OK;
    for (int64_t i = 0; i < k && st == MT_OK;) {
        int64_t j = i + 1;
        while (j < k && u[j] == u[j - 1] + 1 && j - i < run_max)
            j++;
        size_t nb = (size_t)(j - i) * s->row_bytes;
        st = raw_pread(s, buf, nb, s->data_off + (uint64_t)u[i] * s->row_bytes, u[i]);
        if (st == MT_OK) raw_convert(s, buf, out + i * s->dim, (size_t)((j - i) * s->dim));
        i = j;
    }
    mt_free(buf);
    return st;
}

static const mt__lazy_ops g_raw_ops = {.read = raw_read, .close = NULL, .set_collective = NULL};

mt_status mt__lazy_src_open_raw(mt__lazy_src *s)
{
    s->fd = open(s->path, O_RDONLY | O_CLOEXEC);
    if (s->fd < 0) return mt_err_errno(errno, "%s '%s': cannot open", s->format, s->path);
    s->ops = &g_raw_ops;
    struct stat sb;
    if (fstat(s->fd, &sb) != 0) return mt_err_errno(errno, "%s '%s': stat", s->format, s->path);
    uint64_t need;
    if (__builtin_mul_overflow((uint64_t)s->n_file, (uint64_t)s->row_bytes, &need) ||
        __builtin_add_overflow(need, s->data_off, &need) || need > (uint64_t)sb.st_size)
        return mt_err_set(MT_ERR_FORMAT,
                          "%s '%s': %lld rows of %zu bytes from byte offset %llu run past the "
                          "end of the file (%lld bytes): truncated",
                          s->format, s->path, (long long)s->n_file, s->row_bytes,
                          (unsigned long long)s->data_off, (long long)sb.st_size);
    return MT_OK;
}

/* ---------------------------------------------------------------- datasets */

mt_status mt__dataset_new_lazy(mt_dataset **out, const char *name, mt__lazy_src *src)
{
    *out = NULL;
    mt_dataset *d = mt_calloc(1, sizeof *d);
    if (!d || !(d->name = mt_strdup(name))) {
        mt_free(d);
        mt__lazy_src_release(src);
        return mt_err_set(MT_ERR_NOMEM, "dataset '%s': out of memory", name);
    }
    d->n = src->n_file;
    d->dim = src->dim;
    d->lazy = src;
    *out = d;
    return MT_OK;
}

bool mt_dataset_is_lazy(const mt_dataset *d)
{
    return d && d->lazy;
}

bool mt_dataset_is_collective(const mt_dataset *d)
{
    return d && d->lazy && d->lazy->collective;
}

mt_status mt_dataset_set_collective(mt_dataset *d, bool collective)
{
    if (!d) return mt_err_set(MT_ERR_INVALID, "dataset_set_collective: dataset is NULL");
    mt__lazy_src *s = d->lazy;
    if (!s || !s->mpio || !s->ops->set_collective) {
        if (!collective) return MT_OK;
        return mt_err_set(MT_ERR_INVALID,
                          "dataset '%s': collective reads need a lazy HDF5 dataset opened over "
                          "MPI-IO (a parallel HDF5 and mt_data_set_mpi_comm before loading)",
                          d->name);
    }
    if (s->collective == collective) return MT_OK;
    mt_status st = s->ops->set_collective(s, collective);
    if (st == MT_OK) s->collective = collective;
    return st;
}

uint64_t mt_dataset_bytes_read(const mt_dataset *d)
{
    return d && d->lazy ? d->lazy->bytes_read : 0;
}

typedef struct row_pos {
    int64_t row, pos;
} row_pos;

static int cmp_row_pos(const void *a, const void *b)
{
    const row_pos *x = a, *y = b;
    if (x->row != y->row) return x->row < y->row ? -1 : 1;
    return (x->pos > y->pos) - (x->pos < y->pos);
}

mt_status mt__lazy_gather(const mt_dataset *d, const int64_t *rows, int64_t n_rows, float *dst)
{
    mt__lazy_src *s = d->lazy;
    size_t n = (size_t)(n_rows > 0 ? n_rows : 1);
    row_pos *p = mt_malloc(n * sizeof *p);
    int64_t *u = mt_malloc(n * sizeof *u);
    float *tmp = NULL;
    mt_status st = MT_OK;
    int64_t k = 0;
    if (!p || !u) goto nomem;
    for (int64_t i = 0; i < n_rows; i++) {
        p[i].row = mt__lazy_file_row(d, rows[i]);
        p[i].pos = i;
    }
    qsort(p, (size_t)n_rows, sizeof *p, cmp_row_pos);
    for (int64_t i = 0; i < n_rows; i++)
        if (k == 0 || u[k - 1] != p[i].row) u[k++] = p[i].row;
    if (!(tmp = mt_malloc((size_t)(k ? k : 1) * (size_t)(d->dim ? d->dim : 1) * sizeof(float))))
        goto nomem;
    if ((st = s->ops->read(s, u, k, tmp)) != MT_OK) goto out;
    size_t rowb = (size_t)d->dim * sizeof(float);
    for (int64_t i = 0, j = -1; i < n_rows; i++) {
        if (i == 0 || p[i].row != p[i - 1].row) j++;
        memcpy(dst + p[i].pos * d->dim, tmp + j * d->dim, rowb);
    }
    goto out;
nomem:
    st = mt_err_set(MT_ERR_NOMEM, "dataset '%s': out of memory gathering %lld rows from '%s'",
                    d->name, (long long)n_rows, s->path);
    /* A collective backend's other ranks are waiting in the read: take part with no rows. */
    if (s->collective) (void)s->ops->read(s, NULL, 0, NULL);
out:
    mt_free(tmp);
    mt_free(u);
    mt_free(p);
    return st;
}

mt_status mt_dataset_materialize(mt_dataset *d)
{
    if (!d) return mt_err_set(MT_ERR_INVALID, "dataset_materialize: dataset is NULL");
    if (!d->lazy) return MT_OK;
    size_t xb;
    mt_status st = mt__data_bytes(&xb, d->n * d->dim, sizeof(float), mt_data_max_bytes(), d->name);
    if (st != MT_OK) return st;
    float *X = mt_malloc(xb ? xb : 1);
    int64_t chunk = d->n < MATERIALIZE_ROWS ? d->n : MATERIALIZE_ROWS;
    int64_t *rows = mt_malloc((size_t)(chunk ? chunk : 1) * sizeof(int64_t));
    if (!X || !rows) {
        st = mt_err_set(MT_ERR_NOMEM, "dataset '%s': out of memory for %zu bytes", d->name, xb);
        if (d->lazy->collective) (void)d->lazy->ops->read(d->lazy, NULL, 0, NULL);
        goto out;
    }
    /* Every rank holds the same n, so collective sources see the same number of reads. */
    for (int64_t r0 = 0; r0 < d->n && st == MT_OK; r0 += chunk) {
        int64_t m = d->n - r0 < chunk ? d->n - r0 : chunk;
        for (int64_t i = 0; i < m; i++)
            rows[i] = r0 + i;
        st = mt__lazy_gather(d, rows, m, X + r0 * d->dim);
    }
    if (st != MT_OK) goto out;
    mt__lazy_src_release(d->lazy);
    d->lazy = NULL;
    mt_free(d->lazy_map);
    d->lazy_map = NULL;
    d->lazy_first = 0;
    d->X = X;
    X = NULL;
out:
    mt_free(X);
    mt_free(rows);
    return st;
}
