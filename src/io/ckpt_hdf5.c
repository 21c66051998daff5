/* Checkpoint files in HDF5 (layout in docs/checkpoints.md).
 *
 * Writing builds the whole file in memory with HDF5's core driver (no backing store), takes
 * its image (H5Fget_file_image) and publishes it with mt_file_write_atomic (temporary file in
 * the same directory, fsync, rename, directory sync): a failed write, e.g. on a full disk,
 * leaves the previous checkpoint intact and no temporary behind, no reader ever sees a
 * half-written file, and HDF5 itself never meets a disk error (after a failed H5Fclose,
 * HDF5 1.10 keeps the file half-open and crashes at exit). The price is holding the file
 * image in memory once more while it is written.
 *
 * Every group and dataset tracks creation order, which gives all of them version-2 object
 * headers and new-style groups, whose metadata HDF5 checksums; the superblock stays version 0
 * (HDF5 1.10.8's file image of a version-2 superblock carries a stale checksum), and the
 * reader checks its end-of-file address against the file size itself. Datasets with
 * elements are chunked with the Fletcher-32 filter, so a corrupt payload is detected on reading
 * instead of being loaded as numbers. Groups track link creation order, so a file lists its
 * arrays and channels in the order they were put.
 *
 * Integrity header: the file starts with a 512-byte HDF5 user block (which HDF5 and h5py skip)
 * holding the magic "MLTRAIN-CKPT", the header version, the file's length and the SHA-256 of
 * every byte after the user block, filled into the image before it is published. Reading checks
 * length and hash before HDF5 sees the file, so a truncated or corrupted mltrain checkpoint is
 * reported by mltrain and never parsed by libhdf5 (whose parser does not survive every corrupt
 * file). Files without the header (h5py, older mltrain) are read unverified unless
 * MLTRAIN_CKPT_REQUIRE_VERIFIED=1. A crafted file with a recomputed hash still reaches libhdf5:
 * the hash is against accidents, not attackers (docs/security.md).
 *
 * Isolation: the file is read into memory once (a copy, not a mapping: see load_file; a read
 * peaks at about twice the checkpoint's size); the checks above and HDF5 (core driver, a file
 * image opened in place) see those bytes, never the file again. Unless MLTRAIN_CKPT_ISOLATE=0,
 * the parse below runs in a forked child (ckpt_isolate.c) that streams the checkpoint back, so
 * libhdf5 never parses the file inside this process: a crash of libhdf5 in the child (SIGSEGV,
 * a wild free, an abort) or a parse that does not end within MLTRAIN_CKPT_ISOLATE_TIMEOUT
 * seconds becomes ERR_FORMAT / ERR_TIMEOUT naming the file.
 *
 * Reading validates before it trusts: a missing file (ERR_IO), an empty file, a file without the
 * HDF5 signature, a file shorter than its superblock's end-of-file address (truncated), a
 * corrupt file (HDF5's own reason is quoted), an HDF5 file that is not a checkpoint (no
 * "format" attribute), a newer version and malformed entries are ERR_FORMAT naming the file.
 * HDF5's automatic error printing is switched off; its innermost error description is copied
 * into our message instead. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io_impl.h"
#include "mltrain/mt_config.h"

#if MT_HAVE_HDF5
#include <hdf5.h>

#if H5_VERSION_GE(1, 12, 0)
typedef H5L_info2_t mt_h5_linfo;
#else
typedef H5L_info_t mt_h5_linfo;
#endif

/* Largest chunk we let HDF5 build (its hard limit is 4 GiB). */
#define MAX_CHUNK_BYTES ((uint64_t)1 << 30)

/* The integrity header in the HDF5 user block (HDF5 data starts at UB_SIZE):
 *   0  "MLTRAIN-CKPT"   12 bytes
 *  12  header version   uint32 LE (UB_VERSION)
 *  16  file length      uint64 LE, the user block included
 *  24  SHA-256          32 bytes, of bytes [UB_SIZE, length)
 *  56  zeros up to UB_SIZE */
#define UB_SIZE 512
#define UB_MAGIC "MLTRAIN-CKPT"
#define UB_MAGIC_LEN 12
#define UB_VERSION 1
#define UB_HEADER_LEN 56

static void h5_quiet(void)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

typedef struct h5err {
    bool have;
    bool alloc; /* an entry says an allocation failed ("Can't allocate space", "No space ...") */
    char desc[480];
    char func[64];
} h5err;

static herr_t h5_walk_cb(unsigned n, const H5E_error2_t *e, void *ud)
{
    h5err *x = ud;
    if (e->min_num == H5E_CANTALLOC || e->min_num == H5E_NOSPACE) x->alloc = true;
    if (!x->have) { /* walking upward: the first entry is the most specific */
        snprintf(x->desc, sizeof x->desc, "%s", e->desc ? e->desc : "");
        snprintf(x->func, sizeof x->func, "%s", e->func_name ? e->func_name : "");
        x->have = true;
    }
    return 0;
}

/* Records "<our message> (HDF5: <innermost reason> in <function>)" and clears HDF5's stack.
 * The code becomes ERR_NOMEM when libhdf5 failed because an allocation failed: its error stack
 * says so (a "Can't allocate space" or "No space available for allocation" entry) and errno,
 * read first, is ENOMEM (in the isolated child, the memory limit: core's
 * mt__isolate_child_result then names the limit). */
__attribute__((format(printf, 2, 3))) static mt_status h5_fail(mt_status code, const char *fmt, ...)
{
    int e = errno;
    char msg[700];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    h5err x = {0};
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, h5_walk_cb, &x);
    H5Eclear2(H5E_DEFAULT);
    if (x.alloc && e == ENOMEM) code = MT_ERR_NOMEM;
    /* I/O errors of the sec2 driver carry a long "file write failed: time = ..., errno = 27,
     * error message = 'File too large', buf = ..." description: keep the gist */
    const char *em = strstr(x.desc, "error message = '");
    const char *colon = strchr(x.desc, ':');
    if (x.have && em && colon && colon < em) {
        em += strlen("error message = '");
        const char *end = strchr(em, '\'');
        return mt_err_set(code, "%s (HDF5: %.*s: %.*s, in %s)", msg, (int)(colon - x.desc), x.desc,
                          (int)(end ? end - em : (long)strlen(em)), em, x.func);
    }
    if (x.have) return mt_err_set(code, "%s (HDF5: %s, in %s)", msg, x.desc, x.func);
    return mt_err_set(code, "%s", msg);
}

static void close_id(hid_t id)
{
    if (id < 0) return;
    switch (H5Iget_type(id)) {
    case H5I_FILE:
        H5Fclose(id);
        break;
    case H5I_GROUP:
        H5Gclose(id);
        break;
    case H5I_DATASET:
        H5Dclose(id);
        break;
    case H5I_ATTR:
        H5Aclose(id);
        break;
    case H5I_DATASPACE:
        H5Sclose(id);
        break;
    case H5I_DATATYPE:
        H5Tclose(id);
        break;
    case H5I_GENPROP_LST:
        H5Pclose(id);
        break;
    default:
        H5Oclose(id);
        break;
    }
}

/* File and in-memory HDF5 types of a checkpoint dtype (-1 for unsupported). */
static hid_t file_type(mt_dtype dt)
{
    switch (dt) {
    case MT_FLOAT32:
        return H5T_IEEE_F32LE;
    case MT_FLOAT64:
        return H5T_IEEE_F64LE;
    case MT_INT8:
        return H5T_STD_I8LE;
    case MT_INT16:
        return H5T_STD_I16LE;
    case MT_INT32:
        return H5T_STD_I32LE;
    case MT_INT64:
        return H5T_STD_I64LE;
    case MT_UINT8:
        return H5T_STD_U8LE;
    case MT_UINT16:
        return H5T_STD_U16LE;
    case MT_UINT32:
        return H5T_STD_U32LE;
    case MT_UINT64:
        return H5T_STD_U64LE;
    default:
        return -1;
    }
}

static hid_t mem_type(mt_dtype dt)
{
    switch (dt) {
    case MT_FLOAT32:
        return H5T_NATIVE_FLOAT;
    case MT_FLOAT64:
        return H5T_NATIVE_DOUBLE;
    case MT_INT8:
        return H5T_NATIVE_INT8;
    case MT_INT16:
        return H5T_NATIVE_INT16;
    case MT_INT32:
        return H5T_NATIVE_INT32;
    case MT_INT64:
        return H5T_NATIVE_INT64;
    case MT_UINT8:
        return H5T_NATIVE_UINT8;
    case MT_UINT16:
        return H5T_NATIVE_UINT16;
    case MT_UINT32:
        return H5T_NATIVE_UINT32;
    case MT_UINT64:
        return H5T_NATIVE_UINT64;
    default:
        return -1;
    }
}

/* ================================================================ writing */

typedef struct wr {
    const char *path;
    hid_t file, gcpl;
} wr;

/* Creates the groups on the way to `name` ("a/b/c" -> "a", "a/b"), tracking creation order. */
static mt_status make_parents(wr *w, const char *name)
{
    char buf[1024];
    if (strlen(name) >= sizeof buf)
        return mt_err_set(MT_ERR_INVALID, "checkpoint '%s': name '%s' is too long", w->path, name);
    strcpy(buf, name);
    for (char *p = strchr(buf, '/'); p; p = strchr(p + 1, '/')) {
        *p = '\0';
        htri_t ex = H5Lexists(w->file, buf, H5P_DEFAULT);
        if (ex < 0) return h5_fail(MT_ERR_IO, "checkpoint '%s': group '%s'", w->path, buf);
        if (!ex) {
            hid_t g = H5Gcreate2(w->file, buf, H5P_DEFAULT, w->gcpl, H5P_DEFAULT);
            if (g < 0)
                return h5_fail(MT_ERR_IO, "checkpoint '%s': cannot create group '%s'", w->path,
                               buf);
            H5Gclose(g);
        }
        *p = '/';
    }
    return MT_OK;
}

/* Dataset creation properties: one chunk per array (halved along the leading axes while above
 * MAX_CHUNK_BYTES) with Fletcher-32; scalars and empty arrays stay contiguous. Attribute
 * creation order is tracked for the checksummed version-2 object header it implies. */
static hid_t dataset_dcpl(int32_t ndim, const int64_t *dims, size_t itemsize)
{
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (dcpl >= 0 && H5Pset_attr_creation_order(dcpl, H5P_CRT_ORDER_TRACKED) < 0) {
        H5Pclose(dcpl);
        return -1;
    }
    if (dcpl < 0 || ndim == 0) return dcpl;
    hsize_t chunk[MT_MAX_DIMS];
    uint64_t bytes = itemsize;
    for (int32_t d = 0; d < ndim; d++) {
        if (dims[d] == 0) return dcpl;
        chunk[d] = (hsize_t)dims[d];
        bytes *= (uint64_t)dims[d];
    }
    for (int32_t d = 0; d < ndim && bytes > MAX_CHUNK_BYTES;) {
        if (chunk[d] <= 1) {
            d++;
            continue;
        }
        bytes = bytes / chunk[d] * ((chunk[d] + 1) / 2);
        chunk[d] = (chunk[d] + 1) / 2;
    }
    if (H5Pset_chunk(dcpl, ndim, chunk) < 0 || H5Pset_fletcher32(dcpl) < 0) {
        H5Pclose(dcpl);
        return -1;
    }
    return dcpl;
}

static mt_status write_dataset(wr *w, hid_t loc, const char *name, const char *full, mt_dtype dt,
                               int32_t ndim, const int64_t *dims, const void *data)
{
    hsize_t hd[MT_MAX_DIMS];
    for (int32_t d = 0; d < ndim; d++)
        hd[d] = (hsize_t)dims[d];
    hid_t space = ndim == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(ndim, hd, NULL);
    hid_t dcpl = dataset_dcpl(ndim, dims, mt_dtype_size(dt));
    hid_t ds = -1;
    mt_status st = MT_OK;
    if (space >= 0 && dcpl >= 0)
        ds = H5Dcreate2(loc, name, file_type(dt), space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (ds < 0) {
        st = h5_fail(MT_ERR_IO, "checkpoint '%s': cannot create dataset '%s'", w->path, full);
    } else if (data && H5Dwrite(ds, mem_type(dt), H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
        st = h5_fail(MT_ERR_IO, "checkpoint '%s': cannot write dataset '%s'", w->path, full);
    }
    close_id(ds);
    close_id(dcpl);
    close_id(space);
    return st;
}

static mt_status write_attr(wr *w, const mt__ckpt_attr *a)
{
    hid_t space = H5Screate(H5S_SCALAR), ftype = -1, mtype = -1, at = -1;
    const void *buf = NULL;
    if (a->kind == MT_CKPT_ATTR_INT) {
        ftype = H5Tcopy(H5T_STD_I64LE);
        mtype = H5Tcopy(H5T_NATIVE_INT64);
        buf = &a->i;
    } else if (a->kind == MT_CKPT_ATTR_DOUBLE) {
        ftype = H5Tcopy(H5T_IEEE_F64LE);
        mtype = H5Tcopy(H5T_NATIVE_DOUBLE);
        buf = &a->d;
    } else {
        ftype = H5Tcopy(H5T_C_S1);
        if (ftype >= 0 &&
            (H5Tset_size(ftype, H5T_VARIABLE) < 0 || H5Tset_cset(ftype, H5T_CSET_UTF8) < 0)) {
            H5Tclose(ftype);
            ftype = -1;
        }
        mtype = ftype >= 0 ? H5Tcopy(ftype) : -1;
        buf = &a->s;
    }
    mt_status st = MT_OK;
    if (space >= 0 && ftype >= 0 && mtype >= 0)
        at = H5Acreate2(w->file, a->name, ftype, space, H5P_DEFAULT, H5P_DEFAULT);
    if (at < 0 || H5Awrite(at, mtype, buf) < 0)
        st = h5_fail(MT_ERR_IO, "checkpoint '%s': cannot write attribute '%s'", w->path, a->name);
    close_id(at);
    close_id(mtype);
    close_id(ftype);
    close_id(space);
    return st;
}

static mt_status write_monitor(wr *w, hid_t mons, const mt_monitor_history *h)
{
    hid_t mg = H5Gcreate2(mons, h->name, H5P_DEFAULT, w->gcpl, H5P_DEFAULT);
    if (mg < 0)
        return h5_fail(MT_ERR_IO, "checkpoint '%s': cannot create group 'monitors/%s'", w->path,
                       h->name);
    mt_status st = MT_OK;
    for (int32_t i = 0; st == MT_OK && i < h->n; i++) {
        const mt_chan_history *c = &h->channels[i];
        char full[700];
        snprintf(full, sizeof full, "monitors/%s/%s", h->name, c->name);
        hid_t cg = H5Gcreate2(mg, c->name, H5P_DEFAULT, w->gcpl, H5P_DEFAULT);
        if (cg < 0) {
            st = h5_fail(MT_ERR_IO, "checkpoint '%s': cannot create group '%s'", w->path, full);
            break;
        }
        size_t n = (size_t)c->n;
        double *dv = mt_malloc((n ? n : 1) * 2 * sizeof(double));
        int64_t *iv = mt_malloc((n ? n : 1) * 3 * sizeof(int64_t));
        if (!dv || !iv) st = mt_err_prefix(MT_ERR_NOMEM, "checkpoint '%s': ", w->path);
        for (size_t k = 0; st == MT_OK && k < n; k++) {
            dv[k] = c->records[k].value;
            dv[n + k] = c->records[k].seconds;
            iv[k] = c->records[k].epoch;
            iv[n + k] = c->records[k].batches;
            iv[2 * n + k] = c->records[k].examples;
        }
        int64_t len = (int64_t)n;
        static const char *const fields[5] = {"value", "epoch", "batches", "examples", "seconds"};
        for (int f = 0; st == MT_OK && f < 5; f++) {
            const void *src = f == 0   ? (const void *)dv
                              : f == 4 ? (const void *)(dv + n)
                                       : (const void *)(iv + (f - 1) * n);
            char fullf[760];
            snprintf(fullf, sizeof fullf, "%s/%s", full, fields[f]);
            st = write_dataset(w, cg, fields[f], fullf, f == 0 || f == 4 ? MT_FLOAT64 : MT_INT64, 1,
                               &len, n ? src : NULL);
        }
        mt_free(dv);
        mt_free(iv);
        H5Gclose(cg);
    }
    H5Gclose(mg);
    return st;
}

/* File access properties. Writing: the core driver, in memory only. Reading: no file locking
 * (checkpoints are immutable once renamed into place; NFS has no locks). */
static hid_t make_fapl(bool for_write)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0) return fapl;
    if (for_write && H5Pset_fapl_core(fapl, 1 << 20, 0) < 0) {
        H5Pclose(fapl);
        return -1;
    }
#if H5_VERSION_GE(1, 10, 7)
    if (!for_write) H5Pset_file_locking(fapl, false, true);
#endif
    return fapl;
}

static mt_status write_contents(wr *w, const mt_ckpt *c)
{
    mt__ckpt_attr fmt = {.name = "format", .kind = MT_CKPT_ATTR_STRING, .s = MT__CKPT_FORMAT};
    mt__ckpt_attr ver = {.name = "version", .kind = MT_CKPT_ATTR_INT, .i = MT__CKPT_VERSION};
    mt_status st = write_attr(w, &fmt);
    if (st == MT_OK) st = write_attr(w, &ver);
    for (int32_t i = 0; st == MT_OK && i < c->n_attrs; i++)
        st = write_attr(w, &c->attrs[i]);
    for (int32_t i = 0; st == MT_OK && i < c->n_arrays; i++) {
        const mt__ckpt_array *a = &c->arrays[i];
        st = make_parents(w, a->name);
        if (st == MT_OK)
            st = write_dataset(w, w->file, a->name, a->name, a->dtype, a->ndim, a->dims,
                               a->nbytes ? a->data : NULL);
    }
    if (st == MT_OK && c->n_monitors > 0) {
        hid_t mons = H5Gcreate2(w->file, MT__CKPT_MONITORS, H5P_DEFAULT, w->gcpl, H5P_DEFAULT);
        if (mons < 0) st = h5_fail(MT_ERR_IO, "checkpoint '%s': cannot create 'monitors'", w->path);
        for (int32_t i = 0; st == MT_OK && i < c->n_monitors; i++)
            st = write_monitor(w, mons, &c->monitors[i]);
        close_id(mons);
    }
    return st;
}

static const unsigned char hdf5_sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};

/* The file's bytes (mt_free): the user block (zeros, UB_SIZE bytes), then the file image of the
 * open in-memory file. HDF5 1.10's image starts at the superblock, without the user block;
 * an image that holds the user block itself is taken as it is. */
static mt_status take_image(wr *w, void **image, size_t *len)
{
    if (H5Fflush(w->file, H5F_SCOPE_GLOBAL) < 0)
        return h5_fail(MT_ERR_IO, "checkpoint '%s': cannot flush the in-memory file", w->path);
    ssize_t n = H5Fget_file_image(w->file, NULL, 0);
    if (n <= 0) return h5_fail(MT_ERR_IO, "checkpoint '%s': cannot take the file image", w->path);
    unsigned char *buf = mt_calloc(UB_SIZE + (size_t)n, 1);
    if (!buf) return mt_err_prefix(MT_ERR_NOMEM, "checkpoint '%s' (%zd bytes): ", w->path, n);
    if (H5Fget_file_image(w->file, buf + UB_SIZE, (size_t)n) != n) {
        mt_status st = h5_fail(MT_ERR_IO, "checkpoint '%s': cannot copy the file image", w->path);
        mt_free(buf);
        return st;
    }
    *len = UB_SIZE + (size_t)n;
    if (memcmp(buf + UB_SIZE, hdf5_sig, 8) != 0 && n > 2 * UB_SIZE &&
        memcmp(buf + 2 * UB_SIZE, hdf5_sig, 8) == 0) {
        memmove(buf, buf + UB_SIZE, (size_t)n);
        *len = (size_t)n;
    }
    *image = buf;
    return MT_OK;
}

/* Builds the checkpoint in memory; on success *image holds the file's bytes (mt_free). */
static mt_status build_image(const mt_ckpt *c, const char *path, void **image, size_t *len)
{
    wr w = {path, -1, -1};
    hid_t fapl = make_fapl(true), fcpl = H5Pcreate(H5P_FILE_CREATE);
    w.gcpl = H5Pcreate(H5P_GROUP_CREATE);
    unsigned order = H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED;
    mt_status st = MT_OK;
    if (fapl < 0 || fcpl < 0 || w.gcpl < 0 || H5Pset_link_creation_order(fcpl, order) < 0 ||
        H5Pset_attr_creation_order(fcpl, order) < 0 ||
        H5Pset_link_creation_order(w.gcpl, order) < 0 ||
        H5Pset_attr_creation_order(w.gcpl, H5P_CRT_ORDER_TRACKED) < 0 ||
        H5Pset_userblock(fcpl, UB_SIZE) < 0)
        st = h5_fail(MT_ERR_INTERNAL, "checkpoint '%s': cannot set up HDF5 properties", path);
    if (st == MT_OK) {
        w.file = H5Fcreate(path, H5F_ACC_TRUNC, fcpl, fapl);
        if (w.file < 0)
            st = h5_fail(MT_ERR_IO, "checkpoint '%s': cannot create the in-memory file", path);
    }
    if (st == MT_OK) st = write_contents(&w, c);
    if (st == MT_OK) st = take_image(&w, image, len);
    close_id(w.file);
    close_id(w.gcpl);
    close_id(fcpl);
    close_id(fapl);
    H5Eclear2(H5E_DEFAULT);
    return st;
}

static void put_le(unsigned char *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++, v >>= 8)
        p[i] = (unsigned char)(v & 0xff);
}

/* Fills the integrity header into the user block of a file image (len > UB_SIZE). */
static void seal(unsigned char *image, size_t len)
{
    memset(image, 0, UB_SIZE);
    memcpy(image, UB_MAGIC, UB_MAGIC_LEN);
    put_le(image + 12, UB_VERSION, 4);
    put_le(image + 16, (uint64_t)len, 8);
    mt_sha256 h;
    mt_sha256_init(&h);
    mt_sha256_update(&h, image + UB_SIZE, len - UB_SIZE);
    mt_sha256_final(&h, image + 24);
}

mt_status mt_ckpt_write(const mt_ckpt *c, const char *path)
{
    h5_quiet();
    void *image = NULL;
    size_t len = 0;
    mt_status st = build_image(c, path, &image, &len);
    if (st != MT_OK) return st;
    if (len <= UB_SIZE) {
        mt_free(image);
        return mt_err_set(MT_ERR_INTERNAL, "checkpoint '%s': HDF5 gave a %zu-byte image", path,
                          len);
    }
    seal(image, len);
    st = mt_file_write_atomic(path, image, len, 0644);
    mt_free(image);
    if (st != MT_OK) return mt_err_prefix(st, "checkpoint: ");
    return MT_OK;
}

/* ================================================================ reading */

typedef struct rd {
    const char *path;
    int64_t file_size;
    mt_ckpt *c;
    mt__ckpt_array_fn on_array; /* NULL, or called with each array read */
    void *user;
} rd;

/* Names of the hard links of a group, in creation order when the group tracks it. */
typedef struct names {
    int32_t n, cap;
    char **v;
    bool nomem;
} names;

static herr_t names_cb(hid_t g, const char *name, const mt_h5_linfo *info, void *ud)
{
    names *ns = ud;
    if (info->type != H5L_TYPE_HARD) return 0; /* soft and external links are not ours */
    if (ns->n == ns->cap) {
        int32_t cap = ns->cap ? ns->cap * 2 : 16;
        char **nv = mt_realloc(ns->v, (size_t)cap * sizeof *nv);
        if (!nv) {
            ns->nomem = true;
            return -1;
        }
        ns->v = nv;
        ns->cap = cap;
    }
    ns->v[ns->n] = mt_strdup(name);
    if (!ns->v[ns->n]) {
        ns->nomem = true;
        return -1;
    }
    ns->n++;
    return 0;
}

static void names_free(names *ns)
{
    for (int32_t i = 0; i < ns->n; i++)
        mt_free(ns->v[i]);
    mt_free(ns->v);
    memset(ns, 0, sizeof *ns);
}

static mt_status list_links(rd *r, hid_t g, const char *what, names *out)
{
    memset(out, 0, sizeof *out);
    H5_index_t idx = H5_INDEX_NAME;
    hid_t gcpl = H5Gget_create_plist(g);
    unsigned flags = 0;
    if (gcpl >= 0 && H5Pget_link_creation_order(gcpl, &flags) >= 0 &&
        (flags & H5P_CRT_ORDER_TRACKED) && (flags & H5P_CRT_ORDER_INDEXED))
        idx = H5_INDEX_CRT_ORDER;
    close_id(gcpl);
    hsize_t pos = 0;
    if (H5Literate(g, idx, H5_ITER_INC, &pos, names_cb, out) < 0) {
        bool nomem = out->nomem;
        names_free(out);
        if (nomem) return mt_err_prefix(MT_ERR_NOMEM, "checkpoint '%s': ", r->path);
        return h5_fail(MT_ERR_FORMAT, "checkpoint '%s' is corrupt: cannot list group '%s'", r->path,
                       what);
    }
    return MT_OK;
}

/* The checkpoint dtype of an HDF5 type (ERR_FORMAT naming the entry when there is none). */
static mt_status dtype_of(rd *r, hid_t t, const char *full, mt_dtype *out)
{
    H5T_class_t cls = H5Tget_class(t);
    size_t size = H5Tget_size(t);
    if (cls == H5T_FLOAT && size == 4)
        *out = MT_FLOAT32;
    else if (cls == H5T_FLOAT && size == 8)
        *out = MT_FLOAT64;
    else if (cls == H5T_INTEGER) {
        bool sgn = H5Tget_sign(t) == H5T_SGN_2;
        static const mt_dtype s[4] = {MT_INT8, MT_INT16, MT_INT32, MT_INT64};
        static const mt_dtype u[4] = {MT_UINT8, MT_UINT16, MT_UINT32, MT_UINT64};
        int k = size == 1 ? 0 : size == 2 ? 1 : size == 4 ? 2 : size == 8 ? 3 : -1;
        if (k < 0) goto bad;
        *out = sgn ? s[k] : u[k];
    } else {
        goto bad;
    }
    return MT_OK;
bad:;
    static const char *const cls_names[] = {"integer",  "float",  "time",     "string",
                                            "bitfield", "opaque", "compound", "reference",
                                            "enum",     "vlen",   "array"};
    const char *cn = cls >= 0 && cls < 11 ? cls_names[cls] : "unknown";
    return mt_err_set(MT_ERR_FORMAT,
                      "checkpoint '%s': dataset '%s' has type %s of %zu bytes; checkpoints hold "
                      "float32, float64 and integer arrays",
                      r->path, full, cn, size);
}

/* Reads a dataset's shape (ERR_FORMAT beyond MT_MAX_DIMS or for a null dataspace). */
static mt_status shape_of(rd *r, hid_t ds, const char *full, int32_t *ndim, int64_t *dims)
{
    hid_t sp = H5Dget_space(ds);
    int nd = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    H5S_class_t cls = sp >= 0 ? H5Sget_simple_extent_type(sp) : H5S_NO_CLASS;
    hsize_t hd[H5S_MAX_RANK];
    mt_status st = MT_OK;
    if (nd < 0 || cls == H5S_NO_CLASS)
        st = h5_fail(MT_ERR_FORMAT, "checkpoint '%s' is corrupt: dataset '%s' has no shape",
                     r->path, full);
    else if (cls == H5S_NULL)
        st = mt_err_set(MT_ERR_FORMAT, "checkpoint '%s': dataset '%s' is empty (null dataspace)",
                        r->path, full);
    else if (nd > MT_MAX_DIMS)
        st = mt_err_set(MT_ERR_FORMAT, "checkpoint '%s': dataset '%s' has %d dims (at most %d)",
                        r->path, full, nd, MT_MAX_DIMS);
    else if (H5Sget_simple_extent_dims(sp, hd, NULL) < 0)
        st = h5_fail(MT_ERR_FORMAT, "checkpoint '%s': dataset '%s'", r->path, full);
    if (st == MT_OK) {
        *ndim = nd;
        for (int d = 0; d < nd; d++)
            dims[d] = (int64_t)hd[d];
    }
    close_id(sp);
    return st;
}

/* Reads a whole dataset converted to dtype dt into a new buffer (NULL when empty). */
static mt_status read_data(rd *r, hid_t ds, const char *full, mt_dtype dt, int32_t ndim,
                           const int64_t *dims, void **out, size_t *nbytes)
{
    *out = NULL;
    uint64_t n = mt_dtype_size(dt);
    for (int32_t d = 0; d < ndim; d++) {
        if (dims[d] != 0 && n > (UINT64_MAX >> 2) / (uint64_t)dims[d])
            return mt_err_set(MT_ERR_FORMAT, "checkpoint '%s': dataset '%s' is impossibly large",
                              r->path, full);
        n *= (uint64_t)dims[d];
    }
    *nbytes = (size_t)n;
    if (n == 0) return MT_OK;
    void *buf = mt_malloc((size_t)n);
    if (!buf)
        return mt_err_prefix(MT_ERR_NOMEM, "checkpoint '%s': dataset '%s' (%llu bytes): ", r->path,
                             full, (unsigned long long)n);
    if (H5Dread(ds, mem_type(dt), H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
        mt_free(buf);
        return h5_fail(MT_ERR_FORMAT, "checkpoint '%s' is corrupt: cannot read dataset '%s'",
                       r->path, full);
    }
    *out = buf;
    return MT_OK;
}

static mt_status read_array(rd *r, hid_t ds, const char *full)
{
    hid_t t = H5Dget_type(ds);
    if (t < 0) return h5_fail(MT_ERR_FORMAT, "checkpoint '%s': dataset '%s'", r->path, full);
    mt_dtype dt = MT_FLOAT32;
    mt_status st = dtype_of(r, t, full, &dt);
    close_id(t);
    int32_t ndim = 0;
    int64_t dims[MT_MAX_DIMS];
    if (st == MT_OK) st = shape_of(r, ds, full, &ndim, dims);
    void *data = NULL;
    size_t nbytes = 0;
    if (st == MT_OK) st = read_data(r, ds, full, dt, ndim, dims, &data, &nbytes);
    if (st == MT_OK) st = mt__ckpt_put_array_owned(r->c, full, dt, ndim, dims, data, nbytes);
    for (int32_t i = r->c->n_arrays - 1; st == MT_OK && r->on_array && i >= 0; i--)
        if (!strcmp(r->c->arrays[i].name, full)) {
            r->on_array(r->user, r->c, &r->c->arrays[i]);
            break;
        }
    return st;
}

/* Every dataset under group g (path prefix `prefix`, "" at the root) except /monitors. */
static mt_status read_arrays(rd *r, hid_t g, const char *prefix, int depth)
{
    if (depth > 32)
        return mt_err_set(MT_ERR_FORMAT, "checkpoint '%s': groups nested too deep at '%s'", r->path,
                          prefix);
    names ns;
    mt_status st = list_links(r, g, *prefix ? prefix : "/", &ns);
    for (int32_t i = 0; st == MT_OK && i < ns.n; i++) {
        if (!*prefix && !strcmp(ns.v[i], MT__CKPT_MONITORS)) continue;
        mt_strbuf full;
        mt_strbuf_init(&full);
        mt_strbuf_appendf(&full, "%s%s%s", prefix, *prefix ? "/" : "", ns.v[i]);
        st = mt_strbuf_status(&full);
        hid_t o = st == MT_OK ? H5Oopen(g, ns.v[i], H5P_DEFAULT) : -1;
        if (st == MT_OK && o < 0)
            st = h5_fail(MT_ERR_FORMAT, "checkpoint '%s' is corrupt: cannot open '%s'", r->path,
                         full.data);
        if (st == MT_OK) {
            H5I_type_t ty = H5Iget_type(o);
            if (ty == H5I_GROUP)
                st = read_arrays(r, o, full.data, depth + 1);
            else if (ty == H5I_DATASET)
                st = read_array(r, o, full.data);
        }
        close_id(o);
        mt_strbuf_deinit(&full);
    }
    names_free(&ns);
    return st;
}

/* One 1-d field of a channel ("value", "epoch", ...) converted to dt; *n its length. */
static mt_status read_field(rd *r, hid_t cg, const char *full, const char *field, mt_dtype dt,
                            void **out, int64_t *n)
{
    char fullf[1000];
    snprintf(fullf, sizeof fullf, "%s/%s", full, field);
    htri_t ex = H5Lexists(cg, field, H5P_DEFAULT);
    if (ex <= 0) {
        H5Eclear2(H5E_DEFAULT);
        return mt_err_set(MT_ERR_FORMAT,
                          "checkpoint '%s': monitor channel '%s' has no dataset '%s' (a channel "
                          "holds value, epoch, batches, examples and seconds)",
                          r->path, full, field);
    }
    hid_t ds = H5Dopen2(cg, field, H5P_DEFAULT);
    if (ds < 0) return h5_fail(MT_ERR_FORMAT, "checkpoint '%s': cannot open '%s'", r->path, fullf);
    int32_t ndim = 0;
    int64_t dims[MT_MAX_DIMS];
    size_t nbytes;
    mt_status st = shape_of(r, ds, fullf, &ndim, dims);
    if (st == MT_OK && ndim != 1)
        st = mt_err_set(MT_ERR_FORMAT, "checkpoint '%s': '%s' has %d dims; expected 1", r->path,
                        fullf, (int)ndim);
    if (st == MT_OK) st = read_data(r, ds, fullf, dt, 1, dims, out, &nbytes);
    if (st == MT_OK) *n = dims[0];
    close_id(ds);
    return st;
}

static mt_status read_channel(rd *r, hid_t cg, const char *full, mt_chan_history *c)
{
    static const char *const fields[5] = {"value", "epoch", "batches", "examples", "seconds"};
    void *buf[5] = {NULL, NULL, NULL, NULL, NULL};
    int64_t len[5] = {0, 0, 0, 0, 0};
    mt_status st = MT_OK;
    for (int f = 0; st == MT_OK && f < 5; f++) {
        st = read_field(r, cg, full, fields[f], f == 0 || f == 4 ? MT_FLOAT64 : MT_INT64, &buf[f],
                        &len[f]);
        if (st == MT_OK && len[f] != len[0])
            st = mt_err_set(MT_ERR_FORMAT,
                            "checkpoint '%s': monitor channel '%s' has %lld values but %lld "
                            "entries in '%s'",
                            r->path, full, (long long)len[0], (long long)len[f], fields[f]);
    }
    for (int64_t k = 0; st == MT_OK && k < len[0]; k++) {
        mt_chan_record rec = {
            .value = ((double *)buf[0])[k],
            .epoch = ((int64_t *)buf[1])[k],
            .batches = ((int64_t *)buf[2])[k],
            .examples = ((int64_t *)buf[3])[k],
            .seconds = ((double *)buf[4])[k],
        };
        st = mt_chan_history_append(c, &rec);
    }
    for (int f = 0; f < 5; f++)
        mt_free(buf[f]);
    return st;
}

static mt_status read_monitor(rd *r, hid_t mg, const char *mname)
{
    mt_monitor_history h;
    mt_monitor_history_init(&h, mname);
    if (!h.name) return mt_err_prefix(MT_ERR_NOMEM, "checkpoint '%s': ", r->path);
    char what[600];
    snprintf(what, sizeof what, "monitors/%s", mname);
    names ns;
    mt_status st = list_links(r, mg, what, &ns);
    for (int32_t i = 0; st == MT_OK && i < ns.n; i++) {
        char full[900];
        snprintf(full, sizeof full, "%s/%s", what, ns.v[i]);
        hid_t cg = H5Gopen2(mg, ns.v[i], H5P_DEFAULT);
        if (cg < 0) {
            st = h5_fail(MT_ERR_FORMAT, "checkpoint '%s': '%s' is not a channel group", r->path,
                         full);
            break;
        }
        mt_chan_history *c = mt_monitor_history_channel(&h, ns.v[i], true);
        st = c ? read_channel(r, cg, full, c) : mt_err_prefix(MT_ERR_NOMEM, "checkpoint: ");
        close_id(cg);
    }
    names_free(&ns);
    if (st != MT_OK) {
        mt_monitor_history_clear(&h);
        return st;
    }
    return mt__ckpt_put_monitor_move(r->c, &h);
}

static mt_status read_monitors(rd *r, hid_t f)
{
    htri_t ex = H5Lexists(f, MT__CKPT_MONITORS, H5P_DEFAULT);
    if (ex < 0) return h5_fail(MT_ERR_FORMAT, "checkpoint '%s' is corrupt", r->path);
    if (!ex) return MT_OK;
    hid_t mons = H5Gopen2(f, MT__CKPT_MONITORS, H5P_DEFAULT);
    if (mons < 0)
        return h5_fail(MT_ERR_FORMAT, "checkpoint '%s': '/monitors' is not a group", r->path);
    names ns;
    mt_status st = list_links(r, mons, "monitors", &ns);
    for (int32_t i = 0; st == MT_OK && i < ns.n; i++) {
        hid_t mg = H5Gopen2(mons, ns.v[i], H5P_DEFAULT);
        if (mg < 0) {
            st = h5_fail(MT_ERR_FORMAT, "checkpoint '%s': 'monitors/%s' is not a group", r->path,
                         ns.v[i]);
            break;
        }
        st = read_monitor(r, mg, ns.v[i]);
        close_id(mg);
    }
    names_free(&ns);
    close_id(mons);
    return st;
}

/* A string attribute (variable- or fixed-length) as a new string. */
static mt_status read_string_attr(rd *r, hid_t a, hid_t t, const char *name, char **out)
{
    hid_t mt = H5Tcopy(t);
    mt_status st = MT_OK;
    *out = NULL;
    if (mt < 0) return h5_fail(MT_ERR_FORMAT, "checkpoint '%s': attribute '%s'", r->path, name);
    if (H5Tis_variable_str(t) > 0) {
        char *p = NULL;
        if (H5Aread(a, mt, &p) < 0)
            st = h5_fail(MT_ERR_FORMAT, "checkpoint '%s': cannot read attribute '%s'", r->path,
                         name);
        else if (!(*out = mt_strdup(p ? p : "")))
            st = mt_err_prefix(MT_ERR_NOMEM, "checkpoint '%s': ", r->path);
        if (p) H5free_memory(p);
    } else {
        size_t n = H5Tget_size(t);
        char *buf = mt_malloc(n + 1);
        if (!buf)
            st = mt_err_prefix(MT_ERR_NOMEM, "checkpoint '%s': ", r->path);
        else if (H5Aread(a, mt, buf) < 0)
            st = h5_fail(MT_ERR_FORMAT, "checkpoint '%s': cannot read attribute '%s'", r->path,
                         name);
        if (st == MT_OK) {
            buf[n] = '\0';
            size_t k = strlen(buf);
            if (H5Tget_strpad(t) == H5T_STR_SPACEPAD)
                while (k > 0 && buf[k - 1] == ' ')
                    buf[--k] = '\0';
            *out = buf;
        } else {
            mt_free(buf);
        }
    }
    H5Tclose(mt);
    return st;
}

/* Kind and value of one root attribute; a scalar (or 1-element) integer, float or string. */
static mt_status read_attr(rd *r, hid_t f, const char *name, mt__ckpt_attr *out)
{
    memset(out, 0, sizeof *out);
    hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    if (a < 0) return h5_fail(MT_ERR_FORMAT, "checkpoint '%s': attribute '%s'", r->path, name);
    hid_t t = H5Aget_type(a), sp = H5Aget_space(a);
    hssize_t npts = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    H5T_class_t cls = t >= 0 ? H5Tget_class(t) : H5T_NO_CLASS;
    mt_status st = MT_OK;
    if (t < 0 || sp < 0)
        st = h5_fail(MT_ERR_FORMAT, "checkpoint '%s' is corrupt: attribute '%s'", r->path, name);
    else if (npts != 1)
        st = mt_err_set(MT_ERR_FORMAT,
                        "checkpoint '%s': attribute '%s' has %lld elements; checkpoint attributes "
                        "are single values",
                        r->path, name, (long long)npts);
    else if (cls == H5T_INTEGER) {
        out->kind = MT_CKPT_ATTR_INT;
        if (H5Aread(a, H5T_NATIVE_INT64, &out->i) < 0)
            st = h5_fail(MT_ERR_FORMAT, "checkpoint '%s': attribute '%s'", r->path, name);
    } else if (cls == H5T_FLOAT) {
        out->kind = MT_CKPT_ATTR_DOUBLE;
        if (H5Aread(a, H5T_NATIVE_DOUBLE, &out->d) < 0)
            st = h5_fail(MT_ERR_FORMAT, "checkpoint '%s': attribute '%s'", r->path, name);
    } else if (cls == H5T_STRING) {
        out->kind = MT_CKPT_ATTR_STRING;
        st = read_string_attr(r, a, t, name, &out->s);
    } else {
        st = mt_err_set(MT_ERR_FORMAT,
                        "checkpoint '%s': attribute '%s' is neither an integer, a float nor a "
                        "string (HDF5 type class %d)",
                        r->path, name, (int)cls);
    }
    close_id(sp);
    close_id(t);
    close_id(a);
    return st;
}

static herr_t attr_names_cb(hid_t loc, const char *name, const H5A_info_t *info, void *ud)
{
    mt_h5_linfo li = {.type = H5L_TYPE_HARD};
    return names_cb(loc, name, &li, ud);
}

/* Checks "format" and "version", then stores every other root attribute. */
static mt_status read_attrs(rd *r, hid_t f)
{
    mt__ckpt_attr fmt, ver;
    htri_t ex = H5Aexists(f, "format");
    if (ex < 0)
        return h5_fail(MT_ERR_FORMAT, "checkpoint '%s' is corrupt: cannot read its root group",
                       r->path);
    if (ex == 0) {
        H5Eclear2(H5E_DEFAULT);
        return mt_err_set(MT_ERR_FORMAT,
                          "'%s' is an HDF5 file but not an mltrain checkpoint (no root attribute "
                          "\"format\" = \"" MT__CKPT_FORMAT "\")",
                          r->path);
    }
    mt_status st = read_attr(r, f, "format", &fmt);
    if (st != MT_OK) return st;
    bool ok = fmt.kind == MT_CKPT_ATTR_STRING && !strcmp(fmt.s, MT__CKPT_FORMAT);
    if (!ok)
        st = mt_err_set(MT_ERR_FORMAT,
                        "'%s' is not an mltrain checkpoint: its \"format\" attribute is %s%s%s, "
                        "not \"" MT__CKPT_FORMAT "\"",
                        r->path, fmt.kind == MT_CKPT_ATTR_STRING ? "\"" : "",
                        fmt.kind == MT_CKPT_ATTR_STRING ? fmt.s : "not a string",
                        fmt.kind == MT_CKPT_ATTR_STRING ? "\"" : "");
    mt_free(fmt.s);
    if (st != MT_OK) return st;
    ex = H5Aexists(f, "version");
    if (ex < 0)
        return h5_fail(MT_ERR_FORMAT, "checkpoint '%s' is corrupt: cannot read its root group",
                       r->path);
    if (ex == 0) {
        H5Eclear2(H5E_DEFAULT);
        return mt_err_set(MT_ERR_FORMAT, "checkpoint '%s' has no \"version\" attribute", r->path);
    }
    if ((st = read_attr(r, f, "version", &ver)) != MT_OK) return st;
    if (ver.kind != MT_CKPT_ATTR_INT) {
        mt_free(ver.s);
        return mt_err_set(MT_ERR_FORMAT, "checkpoint '%s': \"version\" is not an integer", r->path);
    }
    if (ver.i < 1 || ver.i > MT__CKPT_VERSION)
        return mt_err_set(MT_ERR_FORMAT,
                          "checkpoint '%s' has format version %lld; this mltrain reads version "
                          "%d%s",
                          r->path, (long long)ver.i, MT__CKPT_VERSION,
                          ver.i > MT__CKPT_VERSION ? " (written by a newer mltrain?)" : "");
    names ns = {0};
    H5_index_t idx = H5_INDEX_NAME;
    hid_t fcpl = H5Fget_create_plist(f);
    unsigned flags = 0;
    if (fcpl >= 0 && H5Pget_attr_creation_order(fcpl, &flags) >= 0 &&
        (flags & H5P_CRT_ORDER_TRACKED) && (flags & H5P_CRT_ORDER_INDEXED))
        idx = H5_INDEX_CRT_ORDER;
    close_id(fcpl);
    hsize_t pos = 0;
    if (H5Aiterate2(f, idx, H5_ITER_INC, &pos, attr_names_cb, &ns) < 0) {
        bool nomem = ns.nomem;
        names_free(&ns);
        if (nomem) return mt_err_prefix(MT_ERR_NOMEM, "checkpoint '%s': ", r->path);
        return h5_fail(MT_ERR_FORMAT, "checkpoint '%s' is corrupt: cannot list its attributes",
                       r->path);
    }
    for (int32_t i = 0; st == MT_OK && i < ns.n; i++) {
        if (!strcmp(ns.v[i], "format") || !strcmp(ns.v[i], "version")) continue;
        mt__ckpt_attr a;
        st = read_attr(r, f, ns.v[i], &a);
        if (st != MT_OK) break;
        if (a.kind == MT_CKPT_ATTR_INT)
            st = mt_ckpt_put_int(r->c, ns.v[i], a.i);
        else if (a.kind == MT_CKPT_ATTR_DOUBLE)
            st = mt_ckpt_put_double(r->c, ns.v[i], a.d);
        else
            st = mt_ckpt_put_string(r->c, ns.v[i], a.s);
        mt_free(a.s);
    }
    names_free(&ns);
    return st;
}

static uint64_t get_le(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* Where the HDF5 signature is in the image (0, 512, 1024, 2048, ...: after a user block), or
 * -1. */
static int64_t find_signature(const unsigned char *img, uint64_t size)
{
    for (uint64_t at = 0; at + 8 <= size; at = at ? at * 2 : 512)
        if (memcmp(img + at, hdf5_sig, 8) == 0) return (int64_t)at;
    return -1;
}

/* The file size the HDF5 superblock at `at` promises (its end-of-file address), or 0 when it
 * cannot be read. Layouts (HDF5 file format spec, "Superblock"): versions 0 and 1 keep the
 * addresses after 24 or 28 bytes of version fields; versions 2 and 3 after 12 bytes. */
static uint64_t superblock_eof(const unsigned char *img, uint64_t size, uint64_t at)
{
    const unsigned char *b = img + at;
    uint64_t n = size - at < 64 ? size - at : 64;
    if (n < 14) return at + 14; /* cut inside the superblock */
    int ver = b[8];
    int off_size = ver <= 1 ? b[13] : b[9];
    uint64_t addr_at = ver == 0 ? 24 : ver == 1 ? 28 : 12;
    if (off_size != 4 && off_size != 8) return 0;
    if (n < addr_at + 3 * (uint64_t)off_size) return at + addr_at + 3 * (uint64_t)off_size;
    /* the end-of-file address is absolute: it counts a user block (the base address) */
    return get_le(b + addr_at + 2 * (uint64_t)off_size, off_size);
}

static bool require_verified(void)
{
    const char *v = getenv("MLTRAIN_CKPT_REQUIRE_VERIFIED");
    return v && *v && strcmp(v, "0") != 0;
}

/* The integrity check (see the top of this file) on the file's bytes. *verified: the file
 * carries the header and it matched. A file with the magic but a wrong length or hash, or a
 * header version this mltrain does not know, is ERR_FORMAT and never reaches HDF5. */
static mt_status verify_image(const char *path, const unsigned char *img, uint64_t size,
                              bool *verified)
{
    const unsigned char *ub = img;
    uint64_t n = size < UB_HEADER_LEN ? size : UB_HEADER_LEN;
    *verified = false;
    if (n < UB_MAGIC_LEN || memcmp(ub, UB_MAGIC, UB_MAGIC_LEN) != 0) {
        /* a damaged magic in front of an intact length field: ours, corrupted */
        if (n == UB_HEADER_LEN && size > UB_SIZE && get_le(ub + 16, 8) == size &&
            get_le(ub + 12, 4) == UB_VERSION)
            return mt_err_set(MT_ERR_FORMAT,
                              "checkpoint '%s' is corrupted: its mltrain integrity header is "
                              "damaged (no magic \"" UB_MAGIC "\", but its version and length "
                              "fields are intact); it is not handed to HDF5",
                              path);
        if (!require_verified()) return MT_OK;
        return mt_err_set(MT_ERR_FORMAT,
                          "checkpoint '%s' has no mltrain integrity header (it was written by "
                          "h5py, another HDF5 program or an mltrain older than the header), and "
                          "MLTRAIN_CKPT_REQUIRE_VERIFIED is set: only checkpoints written by "
                          "mltrain are read; unset it to read this file unverified",
                          path);
    }
    if (n < UB_HEADER_LEN || size < UB_SIZE)
        return mt_err_set(MT_ERR_FORMAT,
                          "checkpoint '%s' is truncated: it has %llu bytes, less than its "
                          "%d-byte mltrain header (an interrupted copy or a full disk?)",
                          path, (unsigned long long)size, UB_SIZE);
    uint64_t ver = get_le(ub + 12, 4), want = get_le(ub + 16, 8);
    if (ver != UB_VERSION)
        return mt_err_set(MT_ERR_FORMAT,
                          "checkpoint '%s' has an integrity header of version %llu; this mltrain "
                          "reads version %d (written by a newer mltrain, or corrupted)",
                          path, (unsigned long long)ver, UB_VERSION);
    if (want != size)
        return mt_err_set(MT_ERR_FORMAT,
                          "checkpoint '%s' is %s: it has %llu bytes, its mltrain header says "
                          "%llu (%s)",
                          path, size < want ? "truncated" : "corrupted", (unsigned long long)size,
                          (unsigned long long)want,
                          size < want ? "an interrupted copy or a full disk?"
                                      : "bytes were appended, or the header is damaged");
    mt_sha256 h;
    mt_sha256_init(&h);
    mt_sha256_update(&h, img + UB_SIZE, (size_t)(size - UB_SIZE));
    unsigned char sum[32];
    mt_sha256_final(&h, sum);
    if (memcmp(sum, ub + 24, 32) != 0)
        return mt_err_set(MT_ERR_FORMAT,
                          "checkpoint '%s' is corrupted: the SHA-256 of its %llu bytes does not "
                          "match the one mltrain recorded when writing it (changed after it was "
                          "written: a disk, transfer or copy error?); it is not handed to HDF5",
                          path, (unsigned long long)size);
    *verified = true;
    return MT_OK;
}

/* Reads the whole file into memory, once: every later check and the parse (in the isolated
 * child or in this process) see these bytes, whatever happens to the file meanwhile.
 *
 * Memory: a read costs about twice the checkpoint at its peak, the file image plus the arrays
 * decoded from it (isolated, the child holds the image while this process rebuilds the
 * arrays; in-process, both are here until the parse ends). The copy is deliberate. A read-only
 * MAP_PRIVATE mapping would leave the image in the page cache, but it cannot keep "the bytes
 * checked are the bytes parsed": on Linux a private file mapping shows later writes to the
 * file in every page not yet copied on write, and a file truncated under it turns reads of the
 * lost pages into SIGBUS, so a file changed between the hash and the parse would be parsed
 * unchecked (docs/security.md, "Checkpoints"). */
static mt_status load_file(const char *path, unsigned char **img, uint64_t *size)
{
    *img = NULL;
    *size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return mt_err_set(MT_ERR_IO, "cannot read checkpoint '%s': %s", path, strerror(errno));
    struct stat sb;
    mt_status st = MT_OK;
    if (fstat(fd, &sb) != 0)
        st = mt_err_set(MT_ERR_IO, "cannot read checkpoint '%s': %s", path, strerror(errno));
    else if (S_ISDIR(sb.st_mode))
        st = mt_err_set(MT_ERR_IO, "cannot read checkpoint '%s': it is a directory", path);
    else if (sb.st_size == 0)
        st = mt_err_set(MT_ERR_FORMAT, "checkpoint '%s' is an empty file (0 bytes)", path);
    else if ((uint64_t)sb.st_size > SIZE_MAX / 2)
        st = mt_err_set(MT_ERR_NOMEM, "checkpoint '%s' has %lld bytes: too large to read", path,
                        (long long)sb.st_size);
    unsigned char *buf = NULL;
    uint64_t n = (uint64_t)sb.st_size;
    if (st == MT_OK && !(buf = mt_malloc((size_t)n)))
        st = mt_err_prefix(MT_ERR_NOMEM, "checkpoint '%s' (%llu bytes): ", path,
                           (unsigned long long)n);
    for (uint64_t at = 0; st == MT_OK && at < n;) {
        size_t take = n - at < ((size_t)1 << 30) ? (size_t)(n - at) : (size_t)1 << 30;
        ssize_t got = pread(fd, buf + at, take, (off_t)at);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0)
            st = mt_err_set(MT_ERR_IO, "cannot read checkpoint '%s': %s", path, strerror(errno));
        else if (got == 0)
            st = mt_err_set(MT_ERR_FORMAT,
                            "checkpoint '%s' is truncated: it shrank to %llu bytes while being "
                            "read",
                            path, (unsigned long long)at);
        else
            at += (uint64_t)got;
    }
    close(fd);
    if (st != MT_OK) {
        mt_free(buf);
        return st;
    }
    *img = buf;
    *size = n;
    return MT_OK;
}

/* Checks the bytes before HDF5 sees them: integrity header, HDF5 signature, and for an
 * unverified file the superblock's end-of-file address against the size. */
static mt_status check_image(const char *path, const unsigned char *img, uint64_t size)
{
    bool verified = false;
    mt_status st = verify_image(path, img, size, &verified);
    if (st != MT_OK) return st;
    int64_t at = find_signature(img, size);
    if (at < 0)
        return mt_err_set(MT_ERR_FORMAT,
                          "'%s' is not an HDF5 file (no HDF5 signature in its %llu bytes); not a "
                          "checkpoint",
                          path, (unsigned long long)size);
    /* the header's length already covers a verified file */
    uint64_t need = verified ? 0 : superblock_eof(img, size, (uint64_t)at);
    if (need > size)
        return mt_err_set(MT_ERR_FORMAT,
                          "checkpoint '%s' is truncated: it has %llu bytes, its HDF5 superblock "
                          "says %llu (an interrupted copy or a full disk?)",
                          path, (unsigned long long)size, (unsigned long long)need);
    return MT_OK;
}

/* HDF5 opens the bytes in place (core driver, file image callbacks that hand out the caller's
 * buffer instead of copying it: the file is opened read-only, so nothing writes into it). */
typedef struct img_ud {
    void *buf;
    size_t size;
} img_ud;

static void *img_malloc(size_t size, H5FD_file_image_op_t op, void *ud)
{
    img_ud *u = ud;
    (void)op;
    return size <= u->size ? u->buf : NULL;
}

static void *img_memcpy(void *dest, const void *src, size_t size, H5FD_file_image_op_t op, void *ud)
{
    (void)size, (void)op, (void)ud;
    return dest == src ? dest : NULL; /* NULL fails the call: no copy is ever needed */
}

static void *img_realloc(void *p, size_t size, H5FD_file_image_op_t op, void *ud)
{
    (void)p, (void)size, (void)op, (void)ud;
    return NULL;
}

static herr_t img_free(void *p, H5FD_file_image_op_t op, void *ud)
{
    (void)p, (void)op, (void)ud;
    return 0;
}

static void *img_udata_copy(void *ud)
{
    return ud;
}

static herr_t img_udata_free(void *ud)
{
    (void)ud;
    return 0;
}

static hid_t image_fapl(img_ud *ud)
{
    H5FD_file_image_callbacks_t cb = {img_malloc,     img_memcpy,     img_realloc, img_free,
                                      img_udata_copy, img_udata_free, ud};
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0) return -1;
    /* strong close: H5Fclose closes every object of the file, so none outlives the image */
    if (H5Pset_fapl_core(fapl, 1 << 16, 0) < 0 || H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0 ||
        H5Pset_file_image_callbacks(fapl, &cb) < 0 ||
        H5Pset_file_image(fapl, ud->buf, ud->size) < 0) {
        H5Pclose(fapl);
        return -1;
    }
    return fapl;
}

mt_status mt__ckpt_parse_image(const char *path, unsigned char *img, uint64_t size, mt_ckpt **out)
{
    return mt__ckpt_parse_image_each(path, img, size, out, NULL, NULL);
}

mt_status mt__ckpt_parse_image_each(const char *path, unsigned char *img, uint64_t size,
                                    mt_ckpt **out, mt__ckpt_array_fn on_array, void *user)
{
    *out = NULL;
    rd r = {path, (int64_t)size, NULL, on_array, user};
    img_ud ud = {img, (size_t)size};
    hid_t fapl = image_fapl(&ud);
    if (fapl < 0)
        return h5_fail(MT_ERR_INTERNAL, "checkpoint '%s': cannot set up an HDF5 file image", path);
    /* The core driver refuses a name that exists as a file, and takes two open images of one
     * name for the same file: a name that can never exist, unique per open. */
    static _Atomic unsigned long serial;
    char name[96];
    snprintf(name, sizeof name, "/dev/null/mltrain-checkpoint-image-%ld-%lu", (long)getpid(),
             ++serial);
    hid_t f = H5Fopen(name, H5F_ACC_RDONLY, fapl);
    if (f < 0) { /* before any other HDF5 call: each one clears the error stack */
        mt_status st = h5_fail(MT_ERR_FORMAT, "checkpoint '%s' (%lld bytes) is corrupt", path,
                               (long long)r.file_size);
        close_id(fapl);
        return st;
    }
    close_id(fapl);
    mt_status st = mt_ckpt_new(&r.c);
    if (st == MT_OK && !(r.c->path = mt_strdup(path)))
        st = mt_err_prefix(MT_ERR_NOMEM, "checkpoint '%s': ", path);
    if (st == MT_OK) st = read_attrs(&r, f);
    hid_t root = st == MT_OK ? H5Gopen2(f, "/", H5P_DEFAULT) : -1;
    if (st == MT_OK && root < 0)
        st = h5_fail(MT_ERR_FORMAT, "checkpoint '%s' is corrupt: no root group", path);
    if (st == MT_OK) st = read_arrays(&r, root, "", 0);
    close_id(root);
    if (st == MT_OK) st = read_monitors(&r, f);
    if (H5Fclose(f) < 0 && st == MT_OK)
        st = h5_fail(MT_ERR_FORMAT, "checkpoint '%s': closing failed", path);
    H5Eclear2(H5E_DEFAULT);
    if (st != MT_OK) {
        mt_ckpt_free(r.c);
        return st;
    }
    *out = r.c;
    return MT_OK;
}

/* The deadline of the isolated read: MLTRAIN_CKPT_ISOLATE_TIMEOUT seconds, by default a minute
 * plus a second per 32 MiB (HDF5 reads a checkpoint from memory at hundreds of MB/s; the margin
 * is for loaded machines). */
static double isolate_timeout(uint64_t size)
{
    const char *v = getenv("MLTRAIN_CKPT_ISOLATE_TIMEOUT");
    char *end;
    double s = v && *v ? strtod(v, &end) : 0;
    if (v && *v && *end == '\0' && s > 0 && s <= 1e7) return s;
    return 60.0 + (double)(size >> 25);
}

mt_status mt_ckpt_read(mt_ckpt **out, const char *path)
{
    *out = NULL;
    h5_quiet(); /* also initialises HDF5 here, before a child copies this process */
    unsigned char *img = NULL;
    uint64_t size = 0;
    mt_status st = load_file(path, &img, &size);
    if (st == MT_OK) st = check_image(path, img, size);
    if (st != MT_OK) {
        mt_free(img);
        return st;
    }
    const char *iso = getenv("MLTRAIN_CKPT_ISOLATE");
    if (!iso || strcmp(iso, "0") != 0)
        return mt__ckpt_read_isolated(out, path, img, size, isolate_timeout(size));
    st = mt__ckpt_parse_image(path, img, size, out);
    mt_free(img);
    return st;
}

#else /* !MT_HAVE_HDF5 */

mt_status mt_ckpt_write(const mt_ckpt *c, const char *path)
{
    return mt_err_set(MT_ERR_NOT_BUILT,
                      "cannot write checkpoint '%s': HDF5 is not built into this mltrain "
                      "(reconfigure with -DMT_WITH_HDF5=ON)",
                      path);
}

mt_status mt_ckpt_read(mt_ckpt **out, const char *path)
{
    *out = NULL;
    return mt_err_set(MT_ERR_NOT_BUILT,
                      "cannot read checkpoint '%s': HDF5 is not built into this mltrain "
                      "(reconfigure with -DMT_WITH_HDF5=ON)",
                      path);
}

#endif
