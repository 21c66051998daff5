/* HDF5 dense design matrices (Pylearn2's HDF5Dataset): a dataset X (2-d (n, dim), 3-d
 * (n, rows, cols) or 4-d b01c) and an optional targets dataset y (1-d integers, or (n, 1)
 * integers = class labels; 1-d or 2-d floats = float targets) in one file. HDF5 converts any
 * numeric stored type to float32 / int64 while reading. Sizes are checked against the memory
 * limit before allocating, and HDF5's own error stack (not printed: the library never prints)
 * supplies the innermost cause of a failure. This is the one file of the module that depends
 * on MT_HAVE_HDF5; without HDF5 the reader answers ERR_NOT_BUILT. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

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

static herr_t walk_cb(unsigned n, const H5E_error2_t *e, void *data)
{
    char *buf = data;
    /* Walking downward the last entry is the innermost cause: keep overwriting. */
    snprintf(buf, 256, "%s (%s)", e->desc ? e->desc : "?", e->func_name ? e->func_name : "?");
    (void)n;
    return 0;
}

static mt_status h5_fail(const h5_ctx *c, mt_status code, const char *what)
{
    char cause[256] = "no HDF5 detail";
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, walk_cb, cause);
    return mt_err_set(code, "hdf5 '%s': %s: %s", c->path, what, cause);
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

mt_status mt_dataset_hdf5(mt_dataset **out, const char *path, const char *x_name,
                          const char *y_name)
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
    (void)x_name;
    (void)y_name;
    if (out) *out = NULL;
    return mt_err_set(MT_ERR_NOT_BUILT,
                      "hdf5 '%s': this mltrain was built without HDF5 "
                      "(reconfigure with -DMT_WITH_HDF5=ON; needs libhdf5-dev)",
                      path ? path : "");
}

#endif
