/* Module-private declarations of the data module: the dataset object, checked size
 * arithmetic, the IDX stream reader shared by the MNIST and IDX readers, and the helpers the
 * readers, preprocessors and YAML components share. */
#ifndef MT_DATA_IMPL_H
#define MT_DATA_IMPL_H

#include "mltrain/data.h"

/* A file the lazy path reads rows of (lazy.c; HDF5's in hdf5.c). Shared by the datasets that
 * view it (slices), reference-counted. Rows are numbered as in the file. */
typedef struct mt__lazy_src mt__lazy_src;
typedef struct mt__lazy_ops {
    /* Reads the file rows u[0..k) (sorted, distinct, in [0, n_file)) as float32 into out
     * [k, dim]. Called exactly once per gather, also with k == 0, so a collective backend's
     * ranks stay in lockstep. Adds the bytes it read to s->bytes_read. */
    mt_status (*read)(mt__lazy_src *s, const int64_t *u, int64_t k, float *out);
    void (*close)(mt__lazy_src *s);
    /* Switches between collective and independent transfers (NULL: no MPI-IO). */
    mt_status (*set_collective)(mt__lazy_src *s, bool on);
} mt__lazy_ops;

struct mt__lazy_src {
    const mt__lazy_ops *ops;
    int32_t refs;
    char *path;
    const char *format; /* "idx", "npy", "hdf5": for messages */
    int64_t n_file;     /* rows in the file */
    int64_t dim;        /* floats per row */
    bool collective;    /* reads are MPI collectives (parallel HDF5) */
    bool mpio;          /* opened through MPI-IO (collective reads possible) */
    uint64_t bytes_read;
    /* raw files (IDX, .npy): row r is row_bytes bytes at data_off + r * row_bytes */
    int fd;
    uint64_t data_off;
    size_t row_bytes;
    mt_dtype dtype;
    bool swap;     /* byte order differs from the host's */
    bool binarize; /* MNIST's binarize, after scaling */
    float divisor; /* as mt__idx_request */
    double scale;
    void *impl; /* backend state (HDF5 handles) */
};

struct mt_dataset {
    char *name;
    int64_t n;
    int64_t dim;
    int32_t topo_ndim;
    int64_t topo[3];
    float *X;        /* n*dim; never NULL (at least one float allocated) */
    int64_t *labels; /* n, or NULL */
    int64_t n_classes;
    float *Y; /* n*y_dim, or NULL */
    int64_t y_dim;
    /* Lazy datasets: X is NULL and row i is file row lazy_map[i] (when set) or lazy_first + i
     * of lazy; labels and targets are in memory. */
    mt__lazy_src *lazy;
    int64_t lazy_first;
    int64_t *lazy_map;
    /* CompositeDataset: X holds n_sources sources side by side (source_dims, owned); 0 when
     * the dataset has one source. Dropped when a preprocessor changes dim. */
    int32_t n_sources;
    int64_t *source_dims;
};

/* a*b*c as bytes without overflow; ERR_RANGE naming `what` when it would not fit in size_t
 * or exceeds max_bytes (> 0). */
mt_status mt__data_bytes(size_t *out, int64_t count, size_t elsize, size_t max_bytes,
                         const char *what);

/* A dataset with uninitialised X [n, dim] and, when labels/y_dim say so, uninitialised
 * targets. name is copied. */
mt_status mt__dataset_new(mt_dataset **out, const char *name, int64_t n, int64_t dim, bool labels,
                          int64_t y_dim);
/* Replaces X by a new [n, dim] matrix (taking ownership of X, allocated with mt_malloc);
 * topo is dropped when dim changes. */
void mt__dataset_replace_X(mt_dataset *d, float *X, int64_t dim);
/* Records the sources of a CompositeDataset (dims copied; their sum must be d->dim). */
mt_status mt__dataset_set_sources(mt_dataset *d, int32_t n, const int64_t *dims);
/* Sets topo (rows, cols, channels) after checking rows*cols*channels == dim. */
mt_status mt__dataset_set_topo(mt_dataset *d, const int64_t topo[3]);
/* Replaces the name (copied). */
mt_status mt__dataset_set_name(mt_dataset *d, const char *name);
/* Keeps rows [start, stop) in place (no reallocation). */
void mt__dataset_keep_rows(mt_dataset *d, int64_t start, int64_t stop);
/* Permutes the rows of d in place with the Philox Fisher-Yates order of (seed, stream). */
mt_status mt__dataset_shuffle(mt_dataset *d, uint64_t seed, uint32_t stream);
/* Checks labels in [0, n_classes) (n_classes <= 0: computes max + 1 into d->n_classes). */
mt_status mt__dataset_check_labels(mt_dataset *d, int64_t n_classes, const char *what);

/* Fisher-Yates permutation of [0, n) drawn from Philox keyed by seed, with counters
 * (block, hi, epoch, tag): the same (seed, epoch, tag) always gives the same order. */
void mt__data_permutation(int64_t *perm, int64_t n, uint64_t seed, uint64_t epoch, uint32_t tag);

/* ---------------------------------------------------------------- lazy row sources (lazy.c) */

/* Whether a reader asked for `mode` loads `path` lazily: LAZY yes, MEMORY no, AUTO follows
 * mt_data_set_default_load (AUTO there: lazy when the file is over MT_DATA_LAZY_AUTO_BYTES). */
bool mt__data_want_lazy(mt_data_load mode, const char *path);
/* The MPI communicator given to mt_data_set_mpi_comm (a const MPI_Comm *), or NULL. */
const void *mt__data_mpi_comm(void);
/* A source with refs 1, path copied, fd -1; the caller fills the rest. */
mt_status mt__lazy_src_new(mt__lazy_src **out, const char *path, const char *format);
/* Opens s->path for the raw backend (pread at data_off + row * row_bytes); checks that the
 * file holds n_file rows. */
mt_status mt__lazy_src_open_raw(mt__lazy_src *s);
void mt__lazy_src_release(mt__lazy_src *s); /* NULL ok */
/* A lazy dataset over all rows of src (takes the caller's reference, also on failure), X NULL,
 * no targets yet. */
mt_status mt__dataset_new_lazy(mt_dataset **out, const char *name, mt__lazy_src *src);
/* Fills dst [n_rows, dim] with rows of the lazy dataset d (rows already checked). */
mt_status mt__lazy_gather(const mt_dataset *d, const int64_t *rows, int64_t n_rows, float *dst);
/* Row i of d as a file row. */
static inline int64_t mt__lazy_file_row(const mt_dataset *d, int64_t i)
{
    return d->lazy_map ? d->lazy_map[i] : d->lazy_first + i;
}

/* Element conversions shared by the IDX reader and the lazy path (so both give the same
 * bits): byte swapping of esz-byte elements, and float32 scaling as mt__idx_request says. */
bool mt__host_little_endian(void);
void mt__data_swap_bytes(unsigned char *p, size_t n, size_t esz);
void mt__data_scale_floats(float *x, size_t n, float divisor, double scale);

/* IDX files. dims[0] is the example count. */
typedef struct mt__idx_header {
    mt_dtype dtype;
    int32_t ndim;
    int64_t dims[4];
    int64_t count; /* product of dims */
    bool gzip;
} mt__idx_header;

/* How the elements are delivered: converted to dst_dtype (FLOAT32 or INT64 or the file's own
 * dtype when dst_dtype is MT_DTYPE_COUNT); float32 results are then divided by `divisor`
 * (when > 0, as NumPy's x / float32(d)) or multiplied by `scale` (when != 1). */
typedef struct mt__idx_request {
    mt_dtype dst_dtype;
    float divisor;
    double scale;
    size_t max_bytes; /* of the delivered elements; 0 = mt_data_max_bytes() */
    int32_t min_ndim, max_ndim;
    const char *role; /* "images", "labels": for messages */
} mt__idx_request;

/* Reads the whole file into *data (mt_malloc'd, caller frees). */
mt_status mt__idx_read(const char *path, const mt__idx_request *req, mt__idx_header *h,
                       void **data);
/* Reads and checks the header only (a raw file must be exactly header + payload long);
 * *data_off is where the payload starts. h->gzip tells a compressed file. */
mt_status mt__idx_read_header(const char *path, const mt__idx_request *req, mt__idx_header *h,
                              uint64_t *data_off);

/* HDF5 design matrix X (and targets y, read whole) as a lazy dataset (hdf5.c); collective
 * reads through MPI-IO when the library is parallel and mt_data_set_mpi_comm gave a
 * communicator. */
mt_status mt__hdf5_open_lazy(mt_dataset **out, const char *path, const char *x_name,
                             const char *y_name);

/* A pipeline that does not own its items (the YAML builder owns them: an anchored item may
 * appear in several places). */
mt_status mt__preproc_pipeline_borrowed(mt_preprocessor **out, int32_t n, mt_preprocessor **items);

/* 64-bit unbiased-enough bounded draw: floor(r * m / 2^64). */
static inline uint64_t mt__mulhi64(uint64_t r, uint64_t m)
{
    uint64_t rl = (uint32_t)r, rh = r >> 32, ml = (uint32_t)m, mh = m >> 32;
    uint64_t ll = rl * ml, lh = rl * mh, hl = rh * ml, hh = rh * mh;
    uint64_t mid = (ll >> 32) + (uint32_t)lh + (uint32_t)hl;
    return hh + (lh >> 32) + (hl >> 32) + (mid >> 32);
}

#endif
