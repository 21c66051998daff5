/* Module-private declarations of the data module: the dataset object, checked size
 * arithmetic, the IDX stream reader shared by the MNIST and IDX readers, and the helpers the
 * readers, preprocessors and YAML components share. */
#ifndef MT_DATA_IMPL_H
#define MT_DATA_IMPL_H

#include "mltrain/data.h"

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
