/* CIFAR-10 binary batches and NumPy .npy datasets.
 *
 * CIFAR-10 (the "binary version"): each record is one label byte (0..9) and 3072 pixel bytes,
 * the 32x32 red plane, then green, then blue. Files must hold whole records (a size that is
 * not a multiple of 3073 is a truncated or foreign file, reported with the offset of the
 * broken record); labels above 9 are reported with their file offset. Pixels are stored as
 * b01c rows (row, col, channel) in Pylearn2's raw [0, 255] scale; center subtracts 127.5 and
 * rescale divides by 127.5, in that order, as Pylearn2's CIFAR10 does.
 *
 * .npy: mt_npy_load reads the file (any real dtype, C or Fortran order, sizes checked against
 * the file); the elements are converted to float32 in C order, strided where the file is
 * Fortran-ordered. X is 2-d (n, dim), 3-d (n, rows, cols) or 4-d b01c (n, rows, cols,
 * channels); y is integer labels (1-d, or 2-d with one column), or float targets (1-d read as
 * one column, or 2-d). Lazily (lazy.c) X stays in the file: mt_npy_read_info gives the
 * payload's offset and each gather reads its rows (C order only; a Fortran-ordered file is
 * loaded whole). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "data_impl.h"

#define CIFAR_REC 3073
#define CIFAR_PIX 3072
#define CIFAR_CHUNK_RECS 1024

void mt_cifar10_options_init(mt_cifar10_options *o)
{
    memset(o, 0, sizeof *o);
    o->which_set = "train";
    o->stop = -1;
}

static mt_status cifar_file_records(const char *path, int64_t *n)
{
    struct stat sb;
    if (stat(path, &sb) != 0) {
        int e = errno;
        return mt_err_set(e == ENOENT ? MT_ERR_NOT_FOUND : MT_ERR_IO,
                          "CIFAR10 '%s': %s (the binary version, cifar-10-batches-bin/)", path,
                          strerror(e));
    }
    if (!S_ISREG(sb.st_mode))
        return mt_err_set(MT_ERR_IO, "CIFAR10 '%s': not a regular file", path);
    if (sb.st_size == 0) return mt_err_set(MT_ERR_FORMAT, "CIFAR10 '%s': empty file", path);
    if (sb.st_size % CIFAR_REC != 0)
        return mt_err_set(MT_ERR_FORMAT,
                          "CIFAR10 '%s': size %lld is not a whole number of "
                          "%d-byte records (truncated record %lld at offset %lld)",
                          path, (long long)sb.st_size, CIFAR_REC,
                          (long long)(sb.st_size / CIFAR_REC),
                          (long long)(sb.st_size / CIFAR_REC * CIFAR_REC));
    *n = sb.st_size / CIFAR_REC;
    return MT_OK;
}

static mt_status cifar_read_file(const char *path, int64_t nrec, float *X, int64_t *labels)
{
    FILE *f = fopen(path, "rb");
    if (!f) return mt_err_errno(errno, "CIFAR10 '%s': cannot open", path);
    unsigned char *buf = mt_malloc((size_t)CIFAR_CHUNK_RECS * CIFAR_REC);
    mt_status st = MT_OK;
    if (!buf) {
        st = MT_ERR_NOMEM;
        goto out;
    }
    for (int64_t r0 = 0; r0 < nrec; r0 += CIFAR_CHUNK_RECS) {
        int64_t k = nrec - r0 < CIFAR_CHUNK_RECS ? nrec - r0 : CIFAR_CHUNK_RECS;
        size_t got = fread(buf, CIFAR_REC, (size_t)k, f);
        if (got != (size_t)k) {
            st = mt_err_set(MT_ERR_FORMAT,
                            "CIFAR10 '%s': truncated at byte offset %lld "
                            "(file changed while reading)",
                            path, (long long)((r0 + (int64_t)got) * CIFAR_REC));
            goto out;
        }
        for (int64_t i = 0; i < k; i++) {
            const unsigned char *rec = buf + i * CIFAR_REC;
            if (rec[0] > 9) {
                st = mt_err_set(MT_ERR_FORMAT,
                                "CIFAR10 '%s': label %d of record %lld (byte "
                                "offset %lld) is not in 0..9",
                                path, rec[0], (long long)(r0 + i),
                                (long long)((r0 + i) * CIFAR_REC));
                goto out;
            }
            labels[r0 + i] = rec[0];
            float *x = X + (r0 + i) * CIFAR_PIX;
            const unsigned char *p = rec + 1;
            for (int pix = 0; pix < 1024; pix++) {
                x[pix * 3 + 0] = p[pix];
                x[pix * 3 + 1] = p[1024 + pix];
                x[pix * 3 + 2] = p[2048 + pix];
            }
        }
    }
out:
    mt_free(buf);
    fclose(f);
    return st;
}

mt_status mt_dataset_cifar10(mt_dataset **out, const mt_cifar10_options *o)
{
    if (!out || !o || !o->dir || !o->which_set)
        return mt_err_set(MT_ERR_INVALID, "dataset_cifar10: out, options, dir or which_set is "
                                          "NULL");
    *out = NULL;
    int nfiles;
    bool train = strcmp(o->which_set, "train") == 0;
    if (train)
        nfiles = 5;
    else if (strcmp(o->which_set, "test") == 0)
        nfiles = 1;
    else
        return mt_err_set(MT_ERR_INVALID,
                          "CIFAR10: which_set '%s' is not one of 'train', "
                          "'test'",
                          o->which_set);
    char paths[5][4096];
    int64_t counts[5], n = 0;
    mt_status st;
    for (int i = 0; i < nfiles; i++) {
        if (train)
            snprintf(paths[i], sizeof paths[i], "%s/data_batch_%d.bin", o->dir, i + 1);
        else
            snprintf(paths[i], sizeof paths[i], "%s/test_batch.bin", o->dir);
        if ((st = cifar_file_records(paths[i], &counts[i])) != MT_OK) return st;
        n += counts[i];
    }
    int64_t stop = o->stop < 0 ? n : o->stop;
    if (o->start < 0 || o->start > stop || stop > n)
        return mt_err_set(MT_ERR_RANGE,
                          "CIFAR10(%s): start %lld / stop %lld outside its %lld "
                          "examples",
                          o->which_set, (long long)o->start, (long long)o->stop, (long long)n);
    size_t bytes;
    char what[128];
    snprintf(what, sizeof what, "CIFAR10(%s)", o->which_set);
    if ((st = mt__data_bytes(&bytes, n * CIFAR_PIX, sizeof(float), mt_data_max_bytes(), what)) !=
        MT_OK)
        return st;
    mt_dataset *d;
    if ((st = mt__dataset_new(&d, what, n, CIFAR_PIX, true, 0)) != MT_OK) return st;
    int64_t at = 0;
    for (int i = 0; i < nfiles; i++) {
        st = cifar_read_file(paths[i], counts[i], d->X + at * CIFAR_PIX, d->labels + at);
        if (st != MT_OK) goto fail;
        at += counts[i];
    }
    d->n_classes = 10;
    const int64_t topo[3] = {32, 32, 3};
    if ((st = mt__dataset_set_topo(d, topo)) != MT_OK) goto fail;
    if (o->center || o->rescale) {
        for (int64_t i = 0; i < n * CIFAR_PIX; i++) {
            float v = d->X[i];
            if (o->center) v -= 127.5f;
            if (o->rescale) v /= 127.5f;
            d->X[i] = v;
        }
    }
    mt__dataset_keep_rows(d, o->start, stop);
    char name[128];
    snprintf(name, sizeof name, "CIFAR10(%s, %lld:%lld)", o->which_set, (long long)o->start,
             (long long)stop);
    if ((st = mt__dataset_set_name(d, name)) != MT_OK) goto fail;
    *out = d;
    return MT_OK;
fail:
    mt_dataset_free(d);
    return st;
}

/* ---------------------------------------------------------------- npy */

/* Copies a host array's elements in C order into dst, converting to dt. */
static void array_convert(void *dst, mt_dtype dt, const mt_array *a)
{
    const char *base = (const char *)mt_buffer_host_ptr(a->buf) + a->offset;
    size_t dsz = mt_dtype_size(dt);
    int32_t nd = a->ndim;
    if (nd == 0) {
        mt_dtype_convert(dst, dt, (ptrdiff_t)dsz, base, a->dtype, 0, 1);
        return;
    }
    int64_t inner = a->dims[nd - 1], outer = 1;
    for (int32_t i = 0; i < nd - 1; i++)
        outer *= a->dims[i];
    if (inner == 0) return;
    int64_t idx[MT_MAX_DIMS] = {0};
    char *o = dst;
    for (int64_t r = 0; r < outer; r++) {
        ptrdiff_t off = 0;
        for (int32_t i = 0; i < nd - 1; i++)
            off += (ptrdiff_t)(idx[i] * a->strides[i]);
        mt_dtype_convert(o, dt, (ptrdiff_t)dsz, base + off, a->dtype, (ptrdiff_t)a->strides[nd - 1],
                         (size_t)inner);
        o += (size_t)inner * dsz;
        for (int32_t i = nd - 2; i >= 0; i--) {
            if (++idx[i] < a->dims[i]) break;
            idx[i] = 0;
        }
    }
}

static mt_status npy_load_host(mt_array *a, const char *path)
{
    mt_device *host;
    mt_status st = mt_device_open(&host, "host");
    if (st != MT_OK) return st;
    st = mt_npy_load(a, host, path, mt_data_max_bytes());
    mt_device_release(host);
    return st;
}

static mt_status npy_targets(mt_dataset *d, const char *y_path, const char *x_path)
{
    mt_array y = {0};
    mt_status st = npy_load_host(&y, y_path);
    if (st != MT_OK) return st;
    char k = mt_dtype_kind(y.dtype);
    bool is_int = k == 'i' || k == 'u' || k == 'b';
    if (y.ndim < 1 || y.ndim > 2 || y.dims[0] != d->n) {
        char b[128];
        st = mt_err_set(MT_ERR_SHAPE,
                        "npy '%s': targets %s do not match the %lld examples of "
                        "'%s' (want (n,) labels or (n, k) targets)",
                        y_path, mt_array_describe(&y, b, sizeof b), (long long)d->n, x_path);
        goto out;
    }
    int64_t cols = y.ndim == 2 ? y.dims[1] : 1;
    if (is_int && cols == 1) {
        if (!(d->labels = mt_malloc((size_t)d->n * sizeof(int64_t) + 1))) goto nomem;
        array_convert(d->labels, MT_INT64, &y);
        st = mt__dataset_check_labels(d, 0, y_path);
    } else {
        if (!(d->Y = mt_malloc((size_t)(d->n * cols) * sizeof(float) + 1))) goto nomem;
        d->y_dim = cols;
        array_convert(d->Y, MT_FLOAT32, &y);
    }
    goto out;
nomem:
    st = mt_err_set(MT_ERR_NOMEM, "npy '%s': out of memory for the targets", y_path);
out:
    mt_array_clear(&y);
    return st;
}

/* X as a lazy dataset, or *out NULL when the file is Fortran-ordered (logged). */
static mt_status npy_lazy(mt_dataset **out, const char *x_path, const char *name)
{
    *out = NULL;
    mt_npy_info info;
    mt_status st = mt_npy_read_info(&info, x_path, 0);
    if (st != MT_OK) return st;
    if (info.ndim < 2 || info.ndim > 4)
        return mt_err_set(MT_ERR_SHAPE,
                          "npy '%s': X has %d dimensions; want 2-d (n, dim), 3-d (n, rows, "
                          "cols) or 4-d b01c (n, rows, cols, channels)",
                          x_path, (int)info.ndim);
    if (info.fortran_order) {
        mt_log(MT_LOG_INFO,
               "npy '%s': Fortran-ordered, so its rows are not contiguous: loading it whole in "
               "memory",
               x_path);
        return MT_OK;
    }
    mt__lazy_src *s;
    if ((st = mt__lazy_src_new(&s, x_path, "npy")) != MT_OK) return st;
    s->n_file = info.dims[0];
    s->dim = 1;
    for (int32_t i = 1; i < info.ndim; i++)
        s->dim *= info.dims[i];
    s->dtype = info.dtype;
    s->row_bytes = (size_t)s->dim * mt_dtype_size(info.dtype);
    s->data_off = info.data_offset;
    s->swap = info.byteswap;
    if ((st = mt__lazy_src_open_raw(s)) != MT_OK) {
        mt__lazy_src_release(s);
        return st;
    }
    mt_dataset *d;
    if ((st = mt__dataset_new_lazy(&d, name, s)) != MT_OK) return st;
    if (info.ndim >= 3) {
        int64_t topo[3] = {info.dims[1], info.dims[2], info.ndim == 4 ? info.dims[3] : 1};
        if ((st = mt__dataset_set_topo(d, topo)) != MT_OK) {
            mt_dataset_free(d);
            return st;
        }
    }
    *out = d;
    return MT_OK;
}

mt_status mt_dataset_npy(mt_dataset **out, const char *x_path, const char *y_path)
{
    return mt_dataset_npy_mode(out, x_path, y_path, MT_DATA_LOAD_AUTO);
}

mt_status mt_dataset_npy_mode(mt_dataset **out, const char *x_path, const char *y_path,
                              mt_data_load load)
{
    if (!out || !x_path) return mt_err_set(MT_ERR_INVALID, "dataset_npy: out or x_path is NULL");
    *out = NULL;
    const char *base = strrchr(x_path, '/');
    char name[256];
    snprintf(name, sizeof name, "Npy(%s)", base ? base + 1 : x_path);
    mt_status st;
    if (mt__data_want_lazy(load, x_path)) {
        mt_dataset *ld;
        if ((st = npy_lazy(&ld, x_path, name)) != MT_OK) return st;
        if (ld) {
            if (y_path && (st = npy_targets(ld, y_path, x_path)) != MT_OK) {
                mt_dataset_free(ld);
                return st;
            }
            *out = ld;
            return MT_OK;
        }
    }
    mt_array x = {0};
    st = npy_load_host(&x, x_path);
    if (st != MT_OK) return st;
    mt_dataset *d = NULL;
    char b[128];
    if (x.ndim < 2 || x.ndim > 4) {
        st = mt_err_set(MT_ERR_SHAPE,
                        "npy '%s': X is %s; want 2-d (n, dim), 3-d (n, rows, cols) "
                        "or 4-d b01c (n, rows, cols, channels)",
                        x_path, mt_array_describe(&x, b, sizeof b));
        goto out;
    }
    int64_t dim = 1;
    for (int32_t i = 1; i < x.ndim; i++)
        dim *= x.dims[i];
    size_t bytes;
    if ((st = mt__data_bytes(&bytes, x.dims[0] * dim, sizeof(float), mt_data_max_bytes(), name)) !=
        MT_OK)
        goto out;
    if ((st = mt__dataset_new(&d, name, x.dims[0], dim, false, 0)) != MT_OK) goto out;
    array_convert(d->X, MT_FLOAT32, &x);
    if (x.ndim >= 3) {
        int64_t topo[3] = {x.dims[1], x.dims[2], x.ndim == 4 ? x.dims[3] : 1};
        if ((st = mt__dataset_set_topo(d, topo)) != MT_OK) goto out;
    }
    if (y_path && (st = npy_targets(d, y_path, x_path)) != MT_OK) goto out;
    *out = d;
    d = NULL;
out:
    mt_dataset_free(d);
    mt_array_clear(&x);
    return st;
}
