/* HDF5 dense design matrices (Pylearn2's HDF5Dataset): a dataset X (2-d (n, dim), 3-d
 * (n, rows, cols) or 4-d b01c) and an optional targets dataset y (1-d integers, or (n, 1)
 * integers = class labels; 1-d or 2-d floats = float targets) in one file. HDF5 converts any
 * numeric stored type to float32 / int64 while reading. Sizes are checked against the memory
 * limit before allocating, and HDF5's own error stack (not printed: the library never prints)
 * supplies the innermost cause of a failure. This is the one file of the module that depends
 * on MT_HAVE_HDF5; without HDF5 the reader answers ERR_NOT_BUILT.
 *
 * Lazily (lazy.c drives it) the file and X stay open and each gather reads its distinct rows
 * with one H5Dread of a hyperslab selection (a union of runs of consecutive rows; HDF5 delivers
 * them in file order, which is the sorted order lazy.c asks in). When the library is parallel
 * (H5_HAVE_PARALLEL) and mt_data_set_mpi_comm gave a communicator, the file is opened through
 * MPI-IO (H5Pset_fapl_mpio) and rows are read with H5FD_MPIO_COLLECTIVE transfers: opening,
 * every gather and closing are then collective, so all ranks call them in the same order, and
 * a rank without rows reads an empty selection. Targets are read whole (independently).
 *
 * Before any of that, a forked child probes the file (see "isolation probe" below), so that a
 * file on which libhdf5 crashes or hangs while reading its metadata is an error naming it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/isolate.h"
#include "data_impl.h"
#include "mltrain/mt_config.h"

#if MT_HAVE_HDF5
#include <hdf5.h>

typedef struct h5_ctx {
    const char *path;
    H5E_auto2_t old_fn;
    void *old_data;
    hid_t file;
} h5_ctx;

typedef struct h5_cause {
    char text[256];
    bool alloc; /* an entry says an allocation failed */
} h5_cause;

static herr_t walk_cb(unsigned n, const H5E_error2_t *e, void *data)
{
    h5_cause *c = data;
    /* Walking downward the last entry is the innermost cause: keep overwriting. */
    snprintf(c->text, sizeof c->text, "%s (%s)", e->desc ? e->desc : "?",
             e->func_name ? e->func_name : "?");
    if (e->min_num == H5E_CANTALLOC || e->min_num == H5E_NOSPACE) c->alloc = true;
    (void)n;
    return 0;
}

/* The error for a failed HDF5 call, with HDF5's innermost cause. ERR_NOMEM instead of code when
 * the call failed because an allocation failed (an entry of HDF5's stack says so, and errno,
 * read first, is ENOMEM): in the probe's child, the memory limit, which core's
 * mt__isolate_child_result then names. */
static mt_status h5_fail(const h5_ctx *c, mt_status code, const char *what)
{
    int e = errno;
    h5_cause cause = {.text = "no HDF5 detail"};
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, walk_cb, &cause);
    if (cause.alloc && e == ENOMEM) code = MT_ERR_NOMEM;
    return mt_err_set(code, "hdf5 '%s': %s: %s", c->path, what, cause.text);
}

static herr_t list_cb(hid_t g, const char *name, const H5L_info_t *info, void *data)
{
    mt_strbuf *sb = data;
    (void)g;
    (void)info;
    if (sb->len > 200) return 1;
    mt_strbuf_appendf(sb, "%s'%s'", sb->len ? ", " : "", name);
    return 0;
}

static mt_status h5_open_dataset(h5_ctx *c, const char *name, hid_t *ds)
{
    if (H5Lexists(c->file, name, H5P_DEFAULT) <= 0) {
        mt_strbuf sb;
        mt_strbuf_init(&sb);
        hsize_t idx = 0;
        H5Literate(c->file, H5_INDEX_NAME, H5_ITER_INC, &idx, list_cb, &sb);
        mt_status st = mt_err_set(MT_ERR_NOT_FOUND,
                                  "hdf5 '%s': no dataset '%s' (the file has: "
                                  "%s)",
                                  c->path, name, sb.data ? sb.data : "nothing");
        mt_strbuf_deinit(&sb);
        return st;
    }
    *ds = H5Dopen2(c->file, name, H5P_DEFAULT);
    if (*ds < 0) {
        char what[300];
        snprintf(what, sizeof what, "H5Dopen2 '%s'", name);
        return h5_fail(c, MT_ERR_FORMAT, what);
    }
    return MT_OK;
}

/* Shape and type class of a dataset. */
static mt_status h5_shape(h5_ctx *c, hid_t ds, const char *name, int32_t *ndim, int64_t *dims,
                          bool *is_int)
{
    hid_t sp = H5Dget_space(ds), ty = H5Dget_type(ds);
    mt_status st = MT_OK;
    if (sp < 0 || ty < 0) {
        st = h5_fail(c, MT_ERR_FORMAT, "reading the dataspace");
        goto out;
    }
    H5T_class_t cls = H5Tget_class(ty);
    if (cls != H5T_INTEGER && cls != H5T_FLOAT) {
        st = mt_err_set(MT_ERR_FORMAT,
                        "hdf5 '%s': dataset '%s' is not numeric (HDF5 type class "
                        "%d)",
                        c->path, name, (int)cls);
        goto out;
    }
    *is_int = cls == H5T_INTEGER;
    int nd = H5Sget_simple_extent_ndims(sp);
    if (nd < 1 || nd > 4) {
        st = mt_err_set(MT_ERR_FORMAT,
                        "hdf5 '%s': dataset '%s' has %d dimensions (1..4 "
                        "supported)",
                        c->path, name, nd);
        goto out;
    }
    hsize_t hd[4];
    H5Sget_simple_extent_dims(sp, hd, NULL);
    *ndim = nd;
    for (int i = 0; i < nd; i++) {
        if (hd[i] > (hsize_t)INT32_MAX * 64) {
            st = mt_err_set(MT_ERR_FORMAT, "hdf5 '%s': dataset '%s' dimension %d is %llu", c->path,
                            name, i, (unsigned long long)hd[i]);
            goto out;
        }
        dims[i] = (int64_t)hd[i];
    }
out:
    if (sp >= 0) H5Sclose(sp);
    if (ty >= 0) H5Tclose(ty);
    return st;
}

static mt_status h5_read(h5_ctx *c, hid_t ds, const char *name, hid_t mem_type, void *buf)
{
    if (H5Dread(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
        char what[300];
        snprintf(what, sizeof what, "reading dataset '%s'", name);
        return h5_fail(c, MT_ERR_FORMAT, what);
    }
    return MT_OK;
}

static mt_status h5_targets(h5_ctx *c, mt_dataset *d, const char *y_name)
{
    hid_t ds;
    mt_status st = h5_open_dataset(c, y_name, &ds);
    if (st != MT_OK) return st;
    int32_t nd;
    int64_t dims[4];
    bool is_int;
    if ((st = h5_shape(c, ds, y_name, &nd, dims, &is_int)) != MT_OK) goto out;
    if (nd > 2 || dims[0] != d->n) {
        st = mt_err_set(MT_ERR_SHAPE,
                        "hdf5 '%s': targets '%s' have %d dims and %lld rows; want "
                        "(n,) labels or (n, k) targets with n = %lld",
                        c->path, y_name, nd, (long long)dims[0], (long long)d->n);
        goto out;
    }
    int64_t cols = nd == 2 ? dims[1] : 1;
    size_t bytes;
    if ((st = mt__data_bytes(&bytes, d->n * cols, 8, mt_data_max_bytes(), y_name)) != MT_OK)
        goto out;
    if (is_int && cols == 1) {
        if (!(d->labels = mt_malloc(bytes + 1))) goto nomem;
        if ((st = h5_read(c, ds, y_name, H5T_NATIVE_INT64, d->labels)) != MT_OK) goto out;
        st = mt__dataset_check_labels(d, 0, c->path);
    } else {
        if (!(d->Y = mt_malloc(bytes / 2 + 1))) goto nomem;
        d->y_dim = cols;
        st = h5_read(c, ds, y_name, H5T_NATIVE_FLOAT, d->Y);
    }
    goto out;
nomem:
    st = mt_err_set(MT_ERR_NOMEM, "hdf5 '%s': out of memory for '%s'", c->path, y_name);
out:
    H5Dclose(ds);
    return st;
}

static mt_status h5_load(h5_ctx *c, mt_dataset **out, const char *x_name, const char *y_name)
{
    hid_t ds;
    mt_status st = h5_open_dataset(c, x_name, &ds);
    if (st != MT_OK) return st;
    mt_dataset *d = NULL;
    int32_t nd;
    int64_t dims[4];
    bool is_int;
    if ((st = h5_shape(c, ds, x_name, &nd, dims, &is_int)) != MT_OK) goto out;
    if (nd < 2) {
        st = mt_err_set(MT_ERR_SHAPE,
                        "hdf5 '%s': X '%s' is 1-d; want 2-d (n, dim), 3-d or 4-d "
                        "b01c",
                        c->path, x_name);
        goto out;
    }
    int64_t dim = 1;
    for (int32_t i = 1; i < nd; i++)
        dim *= dims[i];
    const char *base = strrchr(c->path, '/');
    char name[300];
    snprintf(name, sizeof name, "HDF5(%s:%s)", base ? base + 1 : c->path, x_name);
    size_t bytes;
    if ((st = mt__data_bytes(&bytes, dims[0] * dim, sizeof(float), mt_data_max_bytes(), name)) !=
        MT_OK)
        goto out;
    if ((st = mt__dataset_new(&d, name, dims[0], dim, false, 0)) != MT_OK) goto out;
    if ((st = h5_read(c, ds, x_name, H5T_NATIVE_FLOAT, d->X)) != MT_OK) goto out;
    if (nd >= 3) {
        int64_t topo[3] = {dims[1], dims[2], nd == 4 ? dims[3] : 1};
        if ((st = mt__dataset_set_topo(d, topo)) != MT_OK) goto out;
    }
    if (y_name && (st = h5_targets(c, d, y_name)) != MT_OK) goto out;
    *out = d;
    d = NULL;
out:
    mt_dataset_free(d);
    H5Dclose(ds);
    return st;
}

/* ---------------------------------------------------------------- lazy */

typedef struct h5_lazy {
    hid_t file, ds, dxpl;
    int32_t ndim;
    hsize_t dims[4];
    size_t esize; /* bytes of one stored element */
    char *x_name;
} h5_lazy;

static mt_status h5_lazy_read(mt__lazy_src *s, const int64_t *u, int64_t k, float *out)
{
    h5_lazy *h = s->impl;
    h5_ctx c = {.path = s->path};
    H5Eget_auto2(H5E_DEFAULT, &c.old_fn, &c.old_data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    mt_status st = MT_OK;
    float dummy = 0;
    hid_t msp = -1, fsp = H5Dget_space(h->ds);
    if (fsp < 0) {
        st = h5_fail(&c, MT_ERR_FORMAT, "reading the dataspace");
        goto out;
    }
    if (k == 0) {
        hsize_t one = 1;
        msp = H5Screate_simple(1, &one, NULL);
        if (msp < 0 || H5Sselect_none(fsp) < 0 || H5Sselect_none(msp) < 0) {
            st = h5_fail(&c, MT_ERR_FORMAT, "building an empty selection");
            goto out;
        }
    } else {
        hsize_t start[4] = {0}, count[4];
        memcpy(count, h->dims, sizeof count);
        bool first = true;
        for (int64_t i = 0; i < k;) {
            int64_t j = i + 1;
            while (j < k && u[j] == u[j - 1] + 1)
                j++;
            start[0] = (hsize_t)u[i];
            count[0] = (hsize_t)(j - i);
            if (H5Sselect_hyperslab(fsp, first ? H5S_SELECT_SET : H5S_SELECT_OR, start, NULL,
                                    count, NULL) < 0) {
                char what[200];
                snprintf(what, sizeof what, "selecting rows %lld..%lld of '%s'", (long long)u[i],
                         (long long)u[j - 1], h->x_name);
                st = h5_fail(&c, MT_ERR_FORMAT, what);
                goto out;
            }
            first = false;
            i = j;
        }
        hsize_t m = (hsize_t)k * (hsize_t)s->dim;
        if ((msp = H5Screate_simple(1, &m, NULL)) < 0) {
            st = h5_fail(&c, MT_ERR_NOMEM, "creating the memory dataspace");
            goto out;
        }
    }
    if (H5Dread(h->ds, H5T_NATIVE_FLOAT, msp, fsp, h->dxpl, out ? (void *)out : &dummy) < 0) {
        char what[300];
        if (k)
            snprintf(what, sizeof what, "reading %lld rows (%lld..%lld) of '%s'", (long long)k,
                     (long long)u[0], (long long)u[k - 1], h->x_name);
        else
            snprintf(what, sizeof what, "reading no rows of '%s' (collective)", h->x_name);
        st = h5_fail(&c, MT_ERR_FORMAT, what);
        goto out;
    }
    s->bytes_read += (uint64_t)k * (uint64_t)s->dim * h->esize;
out:
    if (msp >= 0) H5Sclose(msp);
    if (fsp >= 0) H5Sclose(fsp);
    H5Eset_auto2(H5E_DEFAULT, c.old_fn, c.old_data);
    return st;
}

static void h5_lazy_close(mt__lazy_src *s)
{
    h5_lazy *h = s->impl;
    if (!h) return;
    H5E_auto2_t fn;
    void *data;
    H5Eget_auto2(H5E_DEFAULT, &fn, &data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    if (h->dxpl >= 0) H5Pclose(h->dxpl);
    if (h->ds >= 0) H5Dclose(h->ds);
    if (h->file >= 0) H5Fclose(h->file);
    H5Eset_auto2(H5E_DEFAULT, fn, data);
    mt_free(h->x_name);
    mt_free(h);
    s->impl = NULL;
}

static mt_status h5_lazy_set_collective(mt__lazy_src *s, bool on)
{
#ifdef H5_HAVE_PARALLEL
    h5_lazy *h = s->impl;
    if (H5Pset_dxpl_mpio(h->dxpl, on ? H5FD_MPIO_COLLECTIVE : H5FD_MPIO_INDEPENDENT) < 0) {
        h5_ctx c = {.path = s->path};
        return h5_fail(&c, MT_ERR_INVALID, "H5Pset_dxpl_mpio");
    }
    return MT_OK;
#else
    (void)on;
    return mt_err_set(MT_ERR_NOT_BUILT, "hdf5 '%s': this HDF5 is not parallel", s->path);
#endif
}

static const mt__lazy_ops g_h5_lazy_ops = {
    .read = h5_lazy_read, .close = h5_lazy_close, .set_collective = h5_lazy_set_collective};

/* The file access list: MPI-IO over the data module's communicator when there is one. */
static hid_t h5_fapl(bool *collective)
{
    *collective = false;
#ifdef H5_HAVE_PARALLEL
    const MPI_Comm *comm = mt__data_mpi_comm();
    int inited = 0;
    if (comm && MPI_Initialized(&inited) == MPI_SUCCESS && inited) {
        hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
        if (fapl < 0) return -1;
        if (H5Pset_fapl_mpio(fapl, *comm, MPI_INFO_NULL) < 0) {
            H5Pclose(fapl);
            return -1;
        }
        *collective = true;
        return fapl;
    }
#endif
    return H5P_DEFAULT;
}

/* Opens X of c->file (already open) as the lazy source of a new dataset. *taken: the source
 * owns h (and closes it with the dataset) from then on, also when a later step fails. */
static mt_status h5_lazy_dataset(h5_ctx *c, h5_lazy *h, bool collective, const char *x_name,
                                 const char *y_name, mt_dataset **out, bool *taken)
{
    *taken = false;
    mt_status st = h5_open_dataset(c, x_name, &h->ds);
    if (st != MT_OK) return st;
    int64_t dims[4];
    bool is_int;
    if ((st = h5_shape(c, h->ds, x_name, &h->ndim, dims, &is_int)) != MT_OK) return st;
    if (h->ndim < 2)
        return mt_err_set(MT_ERR_SHAPE, "hdf5 '%s': X '%s' is 1-d; want 2-d (n, dim), 3-d or 4-d "
                          "b01c", c->path, x_name);
    hid_t ty = H5Dget_type(h->ds);
    h->esize = ty >= 0 ? H5Tget_size(ty) : 0;
    if (ty >= 0) H5Tclose(ty);
    if ((h->dxpl = H5Pcreate(H5P_DATASET_XFER)) < 0)
        return h5_fail(c, MT_ERR_NOMEM, "creating a transfer property list");
#ifdef H5_HAVE_PARALLEL
    if (collective && H5Pset_dxpl_mpio(h->dxpl, H5FD_MPIO_COLLECTIVE) < 0)
        return h5_fail(c, MT_ERR_FORMAT, "H5Pset_dxpl_mpio");
#endif
    if (!(h->x_name = mt_strdup(x_name))) return MT_ERR_NOMEM;
    int64_t dim = 1;
    for (int32_t i = 0; i < h->ndim; i++) {
        h->dims[i] = (hsize_t)dims[i];
        if (i) dim *= dims[i];
    }
    mt__lazy_src *s;
    if ((st = mt__lazy_src_new(&s, c->path, "hdf5")) != MT_OK) return st;
    s->ops = &g_h5_lazy_ops;
    s->n_file = dims[0];
    s->dim = dim;
    s->collective = collective;
    s->mpio = collective;
    s->impl = h; /* the source owns the handles from here */
    *taken = true;
    const char *base = strrchr(c->path, '/');
    char name[300];
    snprintf(name, sizeof name, "HDF5(%s:%s)", base ? base + 1 : c->path, x_name);
    mt_dataset *d;
    if ((st = mt__dataset_new_lazy(&d, name, s)) != MT_OK) return st;
    if (h->ndim >= 3) {
        int64_t topo[3] = {dims[1], dims[2], h->ndim == 4 ? dims[3] : 1};
        if ((st = mt__dataset_set_topo(d, topo)) != MT_OK) goto fail;
    }
    if (y_name && (st = h5_targets(c, d, y_name)) != MT_OK) goto fail;
    *out = d;
    return MT_OK;
fail:
    mt_dataset_free(d);
    return st;
}

mt_status mt__hdf5_open_lazy(mt_dataset **out, const char *path, const char *x_name,
                             const char *y_name)
{
    *out = NULL;
    h5_ctx c = {.path = path};
    H5Eget_auto2(H5E_DEFAULT, &c.old_fn, &c.old_data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    mt_status st;
    h5_lazy *h = mt_calloc(1, sizeof *h);
    bool collective = false;
    hid_t fapl = -1;
    if (!h) {
        st = MT_ERR_NOMEM;
        goto out;
    }
    h->file = h->ds = h->dxpl = -1;
    if ((fapl = h5_fapl(&collective)) < 0) {
        st = h5_fail(&c, MT_ERR_INVALID, "setting up MPI-IO file access (H5Pset_fapl_mpio)");
        goto out;
    }
    c.file = h->file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    if (h->file < 0) {
        st = h5_fail(&c, MT_ERR_FORMAT, collective ? "H5Fopen (MPI-IO)" : "H5Fopen");
        goto out;
    }
    bool taken;
    st = h5_lazy_dataset(&c, h, collective, x_name, y_name, out, &taken);
    if (taken) h = NULL;
out:
    if (h) {
        mt__lazy_src tmp = {.impl = h};
        h5_lazy_close(&tmp);
    }
    if (fapl >= 0 && fapl != H5P_DEFAULT) H5Pclose(fapl);
    H5Eset_auto2(H5E_DEFAULT, c.old_fn, c.old_data);
    return st;
}

/* ---------------------------------------------------------------- isolation probe */

/* Before this process gives a file to libhdf5 (whose parser crashes or hangs on some crafted
 * files, docs/security.md "HDF5 datasets"), a forked child opens it and does what the reader
 * will do with its metadata: open the file (plain POSIX driver, never MPI-IO: the child does
 * not touch MPI), look the datasets up (listing the root group when one is missing, as the
 * error message does), read their types, shapes and creation properties (layout, chunk
 * shape, filters), look the chunk at the origin up in the chunk index (one lookup, not a walk
 * of the index, whose cost would grow with the number of chunks), and read the first row of
 * each. A crash, an abnormal exit, an allocation beyond the child's memory limit
 * (max(1 GiB, 8 x the file), or MLTRAIN_ISOLATE_MAX_MB) or no answer within
 * MLTRAIN_HDF5_PROBE_TIMEOUT seconds (default 60 plus 1 per 32 MiB of file, as for
 * checkpoints) is an error naming the file; an error the child finds comes back as it is;
 * MLTRAIN_HDF5_PROBE=0 skips the probe. The child and the deadline are core's isolated-child
 * runner's (src/core/isolate.c), which also protects checkpoints (src/io/ckpt_isolate.c). The
 * result is the child's status, the length of its message and the message. */

#define PROBE_ROW_MAX ((uint64_t)64 << 20) /* bytes: larger first rows are not read */

static mt_status h5_probe_dataset(h5_ctx *c, const char *name)
{
    hid_t ds, dcpl = -1, fsp = -1, msp = -1;
    mt_status st = h5_open_dataset(c, name, &ds);
    if (st != MT_OK) return st;
    int32_t nd;
    int64_t dims[4];
    bool is_int;
    void *row = NULL;
    if ((st = h5_shape(c, ds, name, &nd, dims, &is_int)) != MT_OK) goto out;
    if ((dcpl = H5Dget_create_plist(ds)) < 0) {
        st = h5_fail(c, MT_ERR_FORMAT, "reading the creation properties");
        goto out;
    }
    if (H5Pget_layout(dcpl) == H5D_CHUNKED) {
        hsize_t chunk[H5S_MAX_RANK];
        int nf = H5Pget_nfilters(dcpl);
        bool bad = H5Pget_chunk(dcpl, H5S_MAX_RANK, chunk) < 0 || nf < 0;
        for (int f = 0; !bad && f < nf; f++) {
            unsigned flags, conf;
            size_t ncd = 0;
            char fname[64];
            bad = H5Pget_filter2(dcpl, (unsigned)f, &flags, &ncd, NULL, sizeof fname, fname,
                                 &conf) < 0;
        }
#if H5_VERSION_GE(1, 10, 5)
        /* one lookup in the chunk index, of the chunk at the origin (which holds the first
         * row), not a walk of the whole index: its cost does not grow with the dataset */
        bool empty = false;
        for (int32_t i = 0; i < nd; i++)
            empty = empty || dims[i] == 0;
        hsize_t origin[H5S_MAX_RANK] = {0}, csize = 0;
        haddr_t caddr = 0;
        unsigned cmask = 0;
        bad = bad || (!empty && H5Dget_chunk_info_by_coord(ds, origin, &cmask, &caddr, &csize) < 0);
#endif
        if (bad) {
            st = h5_fail(c, MT_ERR_FORMAT, "reading the chunk layout and index");
            goto out;
        }
    }
    uint64_t n = 1;
    bool big = false;
    for (int32_t i = 1; i < nd; i++) /* saturating: a row over PROBE_ROW_MAX is not read */
        big = big || __builtin_mul_overflow(n, (uint64_t)dims[i], &n);
    if (big || dims[0] == 0 || n > PROBE_ROW_MAX / sizeof(float)) goto out;
    hsize_t start[4] = {0}, count[4], m = n;
    for (int32_t i = 0; i < nd; i++)
        count[i] = i ? (hsize_t)dims[i] : 1;
    if ((fsp = H5Dget_space(ds)) < 0 ||
        H5Sselect_hyperslab(fsp, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
        (msp = H5Screate_simple(1, &m, NULL)) < 0 || !(row = mt_malloc(n * sizeof(float))) ||
        H5Dread(ds, H5T_NATIVE_FLOAT, msp, fsp, H5P_DEFAULT, row) < 0) {
        char what[300];
        snprintf(what, sizeof what, "reading the first row of '%s'", name);
        st = h5_fail(c, row ? MT_ERR_FORMAT : MT_ERR_NOMEM, what);
    }
out:
    mt_free(row);
    if (msp >= 0) H5Sclose(msp);
    if (fsp >= 0) H5Sclose(fsp);
    if (dcpl >= 0) H5Pclose(dcpl);
    H5Dclose(ds);
    return st;
}

/* The child's work: open the file as the reader will, probe X and y. */
static mt_status h5_probe_file(const char *path, const char *x_name, const char *y_name)
{
    h5_ctx c = {.path = path};
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    /* Not the default sec2 driver: libhdf5 shares an open file among opens of the same file
     * by the same driver, and a lazy dataset of this process (inherited by the child) may hold
     * this file open through a descriptor the child has closed. The log driver with nothing to
     * log is sec2's POSIX I/O under another driver class, and, unlike the stdio driver (built
     * on the public API, whose every call clears the error stack), it keeps libhdf5's error
     * stack whole: the innermost cause reaches the message, and an allocation that failed is
     * told apart (ERR_NOMEM, h5_fail). */
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0 || H5Pset_fapl_log(fapl, NULL, 0, 0) < 0) {
        mt_status st = h5_fail(&c, MT_ERR_FORMAT, "H5Pset_fapl_log");
        if (fapl >= 0) H5Pclose(fapl);
        return st;
    }
    c.file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    /* HDF5's error stack before the next call clears it */
    mt_status st = c.file < 0 ? h5_fail(&c, MT_ERR_FORMAT, "H5Fopen") : MT_OK;
    H5Pclose(fapl);
    if (st != MT_OK) return st;
    st = h5_probe_dataset(&c, x_name);
    if (st == MT_OK && y_name) st = h5_probe_dataset(&c, y_name);
    H5Fclose(c.file);
    return st;
}

typedef struct probe_job {
    const char *path, *x_name, *y_name;
    int32_t code; /* the child's status */
    char *msg;    /* its message (mt_free) */
} probe_job;

/* In the child: probe, send the status, the message's length and the message. */
static int probe_child(int fd, void *ctx)
{
    const probe_job *j = ctx;
    mt_status st = mt__isolate_child_result(h5_probe_file(j->path, j->x_name, j->y_name));
    const char *msg = st == MT_OK ? "" : mt_last_error();
    int32_t head[2] = {(int32_t)st, (int32_t)strnlen(msg, MT_ERR_MSG_MAX)};
    bool ok =
        mt__isolate_write(fd, head, sizeof head) && mt__isolate_write(fd, msg, (size_t)head[1]);
    return ok ? 0 : 1;
}

/* In this process: the child's status and message. */
static mt_status probe_parent(mt__isolate_rx *rx, void *ctx)
{
    probe_job *j = ctx;
    int32_t head[2];
    if (!mt__isolate_read(rx, head, sizeof head)) return MT_ERR_FORMAT;
    if (head[0] > 0 || head[0] <= -MT_STATUS_COUNT)
        return mt__isolate_malformed(rx, "an unknown status");
    if (head[1] < 0 || head[1] > MT_ERR_MSG_MAX)
        return mt__isolate_malformed(rx, "a message longer than the limit");
    if (!(j->msg = mt_malloc((size_t)head[1] + 1)))
        return mt_err_prefix(MT_ERR_NOMEM, "hdf5 '%s': ", j->path);
    if (!mt__isolate_read(rx, j->msg, (size_t)head[1])) return MT_ERR_FORMAT;
    j->msg[head[1]] = '\0';
    j->code = head[0];
    return MT_OK;
}

/* Runs h5_probe_file in a child (see above); the child's status and message, or an error of
 * its abnormal end. */
static mt_status h5_probe(const char *path, uint64_t file_bytes, const char *x_name,
                          const char *y_name)
{
    const char *sw = getenv("MLTRAIN_HDF5_PROBE");
    if (sw && !strcmp(sw, "0")) return MT_OK;
    /* the default deadline grows with the file like the checkpoint reader's (a minute plus a
     * second per 32 MiB): what the probe reads does not grow much with the file, but a large
     * file's metadata may still be slow to reach on a loaded or remote file system */
    const double dflt = 60.0 + (double)(file_bytes >> 25);
    const char *tv = getenv("MLTRAIN_HDF5_PROBE_TIMEOUT");
    char *end = NULL;
    double limit = tv && *tv ? strtod(tv, &end) : dflt;
    if (end && (*end || !(limit > 0) || limit > 1e7)) limit = dflt;
    char subject[1100];
    snprintf(subject, sizeof subject, "hdf5 '%.1000s'", path);
    probe_job job = {.path = path, .x_name = x_name, .y_name = y_name};
    const mt__isolate_spec spec = {
        .subject = subject,
        .worker = "the HDF5 library",
        .task = "probing it",
        .hint = "the file is corrupt or not an HDF5 dataset file",
        .timeout_var = "MLTRAIN_HDF5_PROBE_TIMEOUT",
        .start_fix = "; MLTRAIN_HDF5_PROBE=0 skips the probe",
        .timeout_s = limit,
        .file_bytes = file_bytes,
        .child = probe_child,
        .parent = probe_parent,
        .ctx = &job,
    };
    mt_status st = mt__isolate_run(&spec);
    if (st == MT_OK && job.code != MT_OK) st = mt_err_set((mt_status)job.code, "%s", job.msg);
    mt_free(job.msg);
    return st;
}

/* With MPI-IO every rank must take the same branch: the probe's outcome is agreed on (any
 * failure fails every rank) before the collective open. */
static mt_status h5_probe_agree(const char *path, mt_status st)
{
#ifdef H5_HAVE_PARALLEL
    const MPI_Comm *comm = mt__data_mpi_comm();
    int inited = 0, bad = st != MT_OK, any = 0;
    if (!comm || MPI_Initialized(&inited) != MPI_SUCCESS || !inited) return st;
    if (MPI_Allreduce(&bad, &any, 1, MPI_INT, MPI_MAX, *comm) != MPI_SUCCESS)
        return mt_err_set(MT_ERR_COMM, "hdf5 '%s': agreeing on the probe's outcome failed", path);
    if (any && !bad)
        return mt_err_set(MT_ERR_FORMAT,
                          "hdf5 '%s': probing the file with the HDF5 library failed on another "
                          "rank (its error names the cause)",
                          path);
#else
    (void)path;
#endif
    return st;
}

mt_status mt_dataset_hdf5(mt_dataset **out, const char *path, const char *x_name,
                          const char *y_name)
{
    return mt_dataset_hdf5_mode(out, path, x_name, y_name, MT_DATA_LOAD_AUTO);
}

mt_status mt_dataset_hdf5_mode(mt_dataset **out, const char *path, const char *x_name,
                               const char *y_name, mt_data_load load)
{
    if (!out || !path || !x_name)
        return mt_err_set(MT_ERR_INVALID, "dataset_hdf5: out, path or x_name is NULL");
    *out = NULL;
    struct stat sb;
    if (stat(path, &sb) != 0) return mt_err_errno(errno, "hdf5 '%s': cannot open", path);
    h5_ctx c = {.path = path};
    H5Eget_auto2(H5E_DEFAULT, &c.old_fn, &c.old_data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    mt_status st;
    htri_t is = H5Fis_hdf5(path);
    if (is <= 0) {
        st = mt_err_set(MT_ERR_FORMAT,
                        "hdf5 '%s': not an HDF5 file (no HDF5 signature; "
                        "truncated or another format)",
                        path);
        goto out;
    }
    bool lazy = mt__data_want_lazy(load, path);
    st = h5_probe(path, (uint64_t)sb.st_size, x_name, y_name);
    if (lazy) st = h5_probe_agree(path, st);
    if (st != MT_OK) goto out;
    if (lazy) {
        H5Eset_auto2(H5E_DEFAULT, c.old_fn, c.old_data);
        return mt__hdf5_open_lazy(out, path, x_name, y_name);
    }
    c.file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (c.file < 0) {
        st = h5_fail(&c, MT_ERR_FORMAT, "H5Fopen");
        goto out;
    }
    st = h5_load(&c, out, x_name, y_name);
    H5Fclose(c.file);
out:
    H5Eset_auto2(H5E_DEFAULT, c.old_fn, c.old_data);
    return st;
}

#else

mt_status mt_dataset_hdf5(mt_dataset **out, const char *path, const char *x_name,
                          const char *y_name)
{
    return mt_dataset_hdf5_mode(out, path, x_name, y_name, MT_DATA_LOAD_AUTO);
}

mt_status mt_dataset_hdf5_mode(mt_dataset **out, const char *path, const char *x_name,
                               const char *y_name, mt_data_load load)
{
    (void)x_name;
    (void)y_name;
    (void)load;
    if (out) *out = NULL;
    return mt_err_set(MT_ERR_NOT_BUILT,
                      "hdf5 '%s': this mltrain was built without HDF5 "
                      "(reconfigure with -DMT_WITH_HDF5=ON; needs libhdf5-dev)",
                      path ? path : "");
}

#endif
