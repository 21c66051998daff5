/* mltrain data: datasets held on the host as dense design matrices, their readers, seeded
 * iteration and preprocessors (Pylearn2 semantics: research/pylearn2_hyperopt.md §1.11-1.12).
 *
 * A dataset (mt_dataset, opaque) is n examples:
 *   X  float32 [n, dim], C-contiguous, on the host. When the examples are images, `topo`
 *      gives (rows, cols, channels) and each row of X is the image in (row, col, channel)
 *      order (Pylearn2's 'b01c' axes), dim = rows*cols*channels.
 *   y  optional targets: int64 class labels [n] in [0, n_classes) (Pylearn2's IndexSpace;
 *      the model converts to one-hot where needed), or float32 targets [n, y_dim].
 * Readers check every size field against the file size and a memory limit before allocating
 * (errors name the file and the field), and report truncated or corrupt files as ERR_FORMAT
 * naming the file and the byte offset. Nothing is downloaded. The limit is mt_data_max_bytes():
 * what one array may take once decoded (ERR_RANGE beyond it).
 *
 * Iteration: an iterator gives batch b of an epoch as a list of row indices; the order of an
 * epoch depends only on (mode, seed, epoch), never on earlier calls, so a run resumed at
 * (epoch, batch) sees exactly the batches it would have seen (and a rank of a data-parallel job
 * can take its shard of every global batch). Gathering rows into batch arrays is
 * mt_dataset_gather. */
#ifndef MLTRAIN_DATA_H
#define MLTRAIN_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mltrain/core.h"
#include "mltrain/gpuarray.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mt_dataset mt_dataset; /* opaque */

typedef struct mt_dataset_info {
    int64_t n;          /* examples */
    int64_t dim;        /* features per example */
    int32_t topo_ndim;  /* 0 (plain vectors) or 3 */
    int64_t topo[3];    /* rows, cols, channels */
    bool has_y;
    bool y_is_labels;   /* int64 labels [n] (else float32 [n, y_dim]) */
    int64_t n_classes;  /* labels: number of classes (max label + 1, or the format's count) */
    int64_t y_dim;      /* float targets: columns */
    const char *name;   /* e.g. "MNIST(train, 0:50000)", for messages */
    /* Several sources (CompositeDataset): X is their features side by side, source i taking
     * source_dims[i] columns (a model's CompositeSpace input splits them the same way);
     * n_sources 0 for a single source. */
    int32_t n_sources;
    const int64_t *source_dims; /* n_sources entries, owned by the dataset */
} mt_dataset_info;

void mt_dataset_get_info(const mt_dataset *d, mt_dataset_info *out);
/* n*dim, row-major; NULL for a lazy dataset (mt_dataset_materialize loads it). */
const float *mt_dataset_X(const mt_dataset *d);
float *mt_dataset_X_mut(mt_dataset *d);               /* for preprocessors; NULL when lazy */
const int64_t *mt_dataset_labels(const mt_dataset *d); /* NULL unless labels */
const float *mt_dataset_Y(const mt_dataset *d);       /* NULL unless float targets */
void mt_dataset_free(mt_dataset *d);                  /* NULL ok */

/* Largest decoded array a reader allocates: $MLTRAIN_DATA_MAX_BYTES (bytes, optional K/M/G/T
 * suffix, binary units) or 16 GiB. Read at every call. */
size_t mt_data_max_bytes(void);

/* Replaces the examples of an in-memory dataset by images of another size: X holds n images
 * of topo (rows, cols, channels) in b01c order, allocated with mt_malloc; the dataset takes X
 * (freed also on failure). For extensions that crop images (WindowAndFlip). ERR_INVALID for a
 * lazy dataset (mt_dataset_materialize it first), ERR_SHAPE for sizes < 1 or overflowing. */
mt_status mt_dataset_take_images(mt_dataset *d, const int64_t topo[3], float *X);

/* A dataset from host data (copied). y_labels or y (n*y_dim) may be NULL. topo NULL = none. */
mt_status mt_dataset_from_memory(mt_dataset **out, const char *name, int64_t n, int64_t dim,
                                 const float *X, const int64_t *topo, const int64_t *y_labels,
                                 int64_t n_classes, const float *y, int64_t y_dim);
/* Rows [start, stop) of d as a new dataset (copied); ERR_RANGE outside [0, n). */
mt_status mt_dataset_slice(mt_dataset **out, const mt_dataset *d, int64_t start, int64_t stop);

/* ---------------------------------------------------------------- load modes */

/* How a reader holds X. MEMORY: the whole matrix decoded in memory. LAZY: the file stays open
 * and mt_dataset_gather reads only the requested rows (raw IDX and .npy by byte offset with
 * pread, runs of consecutive rows coalesced; HDF5 through a hyperslab selection, collective
 * MPI-IO when the library is parallel and a communicator was given); the values are
 * bit-identical to the MEMORY path's. Labels and targets are always read whole (they are
 * small, and n_classes needs all of them). AUTO: the process default (below).
 * Where a file cannot be read by row (gzip IDX, Fortran-ordered .npy) or a step needs the
 * whole matrix (MNIST's center, a preprocessor), LAZY falls back to MEMORY with an info log
 * line. */
typedef enum mt_data_load {
    MT_DATA_LOAD_AUTO = 0,
    MT_DATA_LOAD_MEMORY,
    MT_DATA_LOAD_LAZY,
    MT_DATA_LOAD_COUNT
} mt_data_load;
/* "auto", "memory", "lazy" (the YAML key `load`). */
const char *mt_data_load_name(mt_data_load m);
mt_status mt_data_load_from_name(mt_data_load *out, const char *name);
/* A file over this size is read lazily by AUTO when the process default is AUTO. */
#define MT_DATA_LAZY_AUTO_BYTES ((uint64_t)2 << 30)
/* What AUTO means in this process (default AUTO: lazy only for files over
 * MT_DATA_LAZY_AUTO_BYTES). The training loop sets LAZY when it runs on several ranks, before
 * the datasets are built. Not thread-safe: set it before loading. */
void mt_data_set_default_load(mt_data_load mode);
mt_data_load mt_data_default_load(void);
/* The MPI communicator lazy HDF5 datasets opened afterwards use for collective reads: a
 * pointer to an MPI_Comm (e.g. from the comm module's handle), or NULL (the default: files are
 * opened by each process on its own). Only the pointer is kept; it is read when a file is
 * opened (HDF5 duplicates the communicator). Ignored without a parallel HDF5.
 * Collective datasets impose lockstep: every rank of the communicator must open, gather from
 * (once per batch, a rank without rows passes n_rows 0), materialize and free them in the same
 * order, or the job hangs. */
void mt_data_set_mpi_comm(const void *mpi_comm);

/* True when d reads its rows from a file at gather time. */
bool mt_dataset_is_lazy(const mt_dataset *d);
/* True when d's gathers are MPI collectives (lazy HDF5 over MPI-IO): every rank must gather
 * from it once per batch, in the same order. */
bool mt_dataset_is_collective(const mt_dataset *d);
/* Switches the reads of a dataset opened over MPI-IO between collective (the default) and
 * independent transfers: independent gathers need no lockstep (for example a monitoring set
 * whose ranks read different numbers of batches); opening and freeing stay collective. The
 * setting belongs to the file, so it applies to every slice of it. ERR_INVALID for turning
 * collective reads on for a dataset not opened over MPI-IO; turning them off is a no-op then. */
mt_status mt_dataset_set_collective(mt_dataset *d, bool collective);
/* Bytes a lazy dataset has read from its file so far (shared by the slices of one file; the
 * HDF5 count is the selected elements times their stored size); 0 for in-memory datasets. */
uint64_t mt_dataset_bytes_read(const mt_dataset *d);
/* Loads every row of a lazy dataset into memory and closes its file (no-op otherwise);
 * ERR_RANGE beyond mt_data_max_bytes(). */
mt_status mt_dataset_materialize(mt_dataset *d);

/* ---------------------------------------------------------------- readers */

/* Pylearn2's MNIST: files DIR/{train,t10k}-{images-idx3,labels-idx1}-ubyte, each raw or with
 * ".gz" (the raw file is preferred when both exist). Pixels scaled to [0, 1] as NumPy's
 * x / float32(255) (bit-identical to Pylearn2); binarize: x > 0.5 -> 1 else 0 (before center);
 * center subtracts the per-pixel mean of the whole which_set split (before start/stop, as
 * Pylearn2); start/stop select rows ([0, n) default; ERR_RANGE outside); shuffle permutes the
 * selected rows (so train 0:50000 and valid 50000:60000 stay disjoint whatever the flag) with a
 * Philox Fisher-Yates order keyed by `seed` (default 1; Pylearn2's NumPy order is not
 * reproduced). topo = (28, 28, 1), labels with 10 classes (a label >= 10 is ERR_FORMAT).
 * Errors: ERR_NOT_FOUND naming both candidate paths when a file is missing. */
typedef struct mt_mnist_options {
    const char *dir;       /* directory holding the files */
    const char *which_set; /* "train" or "test" */
    int64_t start, stop;   /* stop -1 = all */
    bool center, binarize, shuffle;
    uint64_t seed;
    mt_data_load load; /* AUTO; gzip files and center load in memory */
} mt_mnist_options;
void mt_mnist_options_init(mt_mnist_options *o);
mt_status mt_dataset_mnist(mt_dataset **out, const mt_mnist_options *o);
/* The directory of Debian's dataset-fashion-mnist package. */
#define MT_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"

/* Generic IDX pair (images file with 2..4 dims of uint8/int8/int16/int32/float32/float64, and
 * an optional 1-d labels file). Values scaled by `scale` (MNIST: 1/255; when 1/scale is an
 * integer the values are divided by it in float32, as NumPy). 3-d files give topo (d1, d2, 1),
 * 4-d (d1, d2, d3); labels must be >= 0, n_classes = max + 1. */
mt_status mt_dataset_idx(mt_dataset **out, const char *images_path, const char *labels_path,
                         double scale);
/* The same with a load mode (mt_dataset_idx is MT_DATA_LOAD_AUTO). */
mt_status mt_dataset_idx_mode(mt_dataset **out, const char *images_path,
                              const char *labels_path, double scale, mt_data_load load);
/* One IDX file (raw or gzip, told apart by content) as a new host array of the file's own dtype
 * and shape, after the same checks (max_bytes > 0: limit on the array, else
 * mt_data_max_bytes()). */
mt_status mt_idx_load(mt_array *out, const char *path, size_t max_bytes);

/* CIFAR-10 binary batches (DIR/data_batch_1..5.bin for "train", DIR/test_batch.bin for
 * "test"; each record: 1 label byte + 3072 pixel bytes in channel-major order; files may hold
 * any whole number of records). X as b01c (32, 32, 3) in [0, 255] (Pylearn2's raw scale);
 * center subtracts 127.5 and rescale then divides by 127.5, as Pylearn2's CIFAR10 (rescale
 * alone gives [0, 2], both give [-1, 1]); start/stop. */
typedef struct mt_cifar10_options {
    const char *dir;
    const char *which_set;
    int64_t start, stop;
    bool rescale, center;
} mt_cifar10_options;
void mt_cifar10_options_init(mt_cifar10_options *o);
mt_status mt_dataset_cifar10(mt_dataset **out, const mt_cifar10_options *o);

/* .npy files: X (2-d, 3-d (n, rows, cols) or 4-d b01c images) of any real dtype, C or Fortran
 * order, converted to float32; y may be NULL: integer (or bool) y of shape (n,) or (n, 1) are
 * class labels (>= 0, n_classes = max + 1), float y of shape (n,) or (n, k) are float targets. */
mt_status mt_dataset_npy(mt_dataset **out, const char *x_path, const char *y_path);
/* The same with a load mode (Fortran-ordered X loads in memory). */
mt_status mt_dataset_npy_mode(mt_dataset **out, const char *x_path, const char *y_path,
                              mt_data_load load);

/* HDF5 dense design matrix: datasets x_name (2-d, 3-d or 4-d b01c, any numeric type) and
 * optional y_name (integers of shape (n,) or (n, 1): labels; floats: targets) in file.
 * ERR_NOT_FOUND naming the datasets the file has when one is missing; ERR_NOT_BUILT without
 * MT_WITH_HDF5. */
mt_status mt_dataset_hdf5(mt_dataset **out, const char *path, const char *x_name,
                          const char *y_name);
/* The same with a load mode; LAZY reads X's rows with a hyperslab selection per gather. */
mt_status mt_dataset_hdf5_mode(mt_dataset **out, const char *path, const char *x_name,
                               const char *y_name, mt_data_load load);

/* ---------------------------------------------------------------- iteration */

typedef enum mt_iter_mode {
    MT_ITER_SEQUENTIAL = 0,     /* rows in order; last batch may be short */
    MT_ITER_SHUFFLED_SEQUENTIAL, /* a fresh permutation per epoch; last batch may be short */
    MT_ITER_RANDOM_SLICE,       /* each batch a random contiguous slice */
    MT_ITER_RANDOM_UNIFORM,     /* each batch rows drawn uniformly with replacement */
    MT_ITER_BATCHWISE_SHUFFLED_SEQUENTIAL, /* sequential's batches in a fresh order per epoch */
    MT_ITER_EVEN_SEQUENTIAL,    /* sequential without the short batch: n mod bs rows dropped */
    MT_ITER_EVEN_SHUFFLED_SEQUENTIAL, /* shuffled_sequential without the short batch */
    MT_ITER_EVEN_BATCHWISE_SHUFFLED_SEQUENTIAL, /* batchwise_shuffled_sequential, no short one */
    MT_ITER_MODE_COUNT
} mt_iter_mode;
/* Pylearn2 names: "sequential", "shuffled_sequential", "random_slice", "random_uniform",
 * "batchwise_shuffled_sequential", "even_sequential", "even_shuffled_sequential",
 * "even_batchwise_shuffled_sequential". An unknown name is ERR_INVALID listing them all. */
const char *mt_iter_mode_name(mt_iter_mode m);
mt_status mt_iter_mode_from_name(mt_iter_mode *out, const char *name);
/* The even_* modes: only full batches (floor(n / batch_size) per epoch). */
bool mt_iter_mode_is_even(mt_iter_mode m);

typedef struct mt_data_iter {
    mt_iter_mode mode;
    int64_t n;           /* examples of the dataset */
    int64_t batch_size;
    int64_t n_batches;   /* batches in one epoch */
    uint64_t seed;
    int64_t epoch;       /* the epoch whose order `perm` holds */
    int64_t *perm;       /* the shuffled modes: the permutation of rows or batches (owned) */
} mt_data_iter;

/* num_batches 0 = ceil(n / batch_size) (all examples; floor(n / batch_size) for the even_*
 * modes, as Pylearn2 counts them); otherwise that many batches (the examples they cover wrap
 * around: sequential and shuffled_sequential batch b is batch b mod ceil(n / batch_size) of the
 * epoch's order, so every pass ends with a short batch when batch_size does not divide n; the
 * even_* modes wrap over floor(n / batch_size) full batches; random_* batches always have
 * batch_size rows). ERR_INVALID for batch_size < 1, an empty dataset, or random_slice or an
 * even_* mode with batch_size > n. Only d's size is used; the iterator does not keep d. */
mt_status mt_data_iter_init(mt_data_iter *it, const mt_dataset *d, mt_iter_mode mode,
                            int64_t batch_size, int64_t num_batches, uint64_t seed);
void mt_data_iter_clear(mt_data_iter *it);
/* Rows of batch b (0 <= b < n_batches) of `epoch` (>= 0): writes *n_rows (<= batch_size)
 * indices into rows (room for batch_size). Deterministic in (mode, seed, epoch, b), whatever
 * was asked before; the shuffled modes keep the permutation of the last epoch asked (so
 * asking batches epoch by epoch costs one permutation per epoch). ERR_RANGE for b or epoch
 * outside. The exact draws are documented at the top of src/data/iter.c. */
mt_status mt_data_iter_rows(mt_data_iter *it, int64_t epoch, int64_t b, int64_t *rows,
                            int64_t *n_rows);

/* Gathers rows into host arrays: X float32 [n_rows, dim]; y int64 [n_rows] or float32
 * [n_rows, y_dim] (skipped when y is NULL or the dataset has no targets). The arrays are
 * (re)allocated on the host device when their shape, dtype or contiguity differs (the old
 * reference released), else overwritten in place: an array of the right shape on another
 * device (e.g. an OpenCL batch buffer) is filled with one upload. ERR_RANGE for a row outside
 * [0, n) (naming the file for a lazy dataset). Lazy datasets read the rows from their file
 * here (rows may repeat and come in any order; each distinct row is read once); a file that
 * shrank since it was opened is ERR_FORMAT naming the file, the row and the byte offset. */
mt_status mt_dataset_gather(const mt_dataset *d, const int64_t *rows, int64_t n_rows,
                            mt_array *X, mt_array *y);

/* ---------------------------------------------------------------- preprocessors */

typedef struct mt_preprocessor mt_preprocessor; /* opaque */

/* Preprocessors follow Pylearn2's formulas (src/data/preproc.c lists them); statistics are
 * computed in float64. */
/* Standardize(global_mean, global_std, std_eps): (x - mean) / (std_eps + std) per feature
 * (or over all features with global_*); std is the population std (ddof 0). */
mt_status mt_preproc_standardize(mt_preprocessor **out, bool global_mean, bool global_std,
                                 double std_eps);
/* GlobalContrastNormalization(subtract_mean, scale, sqrt_bias, use_std, min_divisor), per
 * example, nothing to fit; Pylearn2's defaults are (true, 1, 0, false, 1e-8). ERR_INVALID
 * unless scale >= min_divisor. */
mt_status mt_preproc_gcn(mt_preprocessor **out, bool subtract_mean, double scale,
                         double sqrt_bias, bool use_std, double min_divisor);
/* ZCA(n_components (0 = all), n_drop_components, filter_bias). Eigendecomposition with
 * LAPACK (OpenBLAS's dsyevd). n_components keeps the largest eigenvalues, n_drop_components
 * drops the smallest (as Pylearn2; not both). X keeps its shape. */
mt_status mt_preproc_zca(mt_preprocessor **out, int64_t n_components,
                         int64_t n_drop_components, double filter_bias);
/* PCA(num_components (0 = all), whiten): projects onto the leading components of the
 * covariance (ddof 1) (X becomes [n, k], topology dropped); eigenvector signs are fixed so the
 * largest-magnitude entry of each is positive. */
mt_status mt_preproc_pca(mt_preprocessor **out, int64_t num_components, bool whiten);
/* Pipeline of preprocessors (takes ownership of items, also when it fails). */
mt_status mt_preproc_pipeline(mt_preprocessor **out, int32_t n, mt_preprocessor **items);
/* Applies p to d; can_fit: estimate the statistics from d first (train split); otherwise use
 * the statistics fitted before (ERR_INVALID if never fitted, ERR_SHAPE if fitted on another
 * number of features). */
mt_status mt_preproc_apply(mt_preprocessor *p, mt_dataset *d, bool can_fit);
void mt_preproc_free(mt_preprocessor *p);

/* ---------------------------------------------------------------- YAML components */

struct mt_cfg_registry;
/* Registers MNIST (alias pylearn2.datasets.mnist.MNIST), FashionMNIST (MNIST whose dir
 * defaults to MT_FASHION_MNIST_DIR), IDXDataset, CIFAR10, NpyDataset, HDF5Dataset /
 * DenseDesignMatrix, CompositeDataset (several sources side by side, n_sources), and the
 * preprocessors (Standardize, GlobalContrastNormalization, ZCA, PCA, Pipeline), with their Pylearn2 aliases. Built objects: mt_dataset* (kind "dataset"),
 * mt_preprocessor* (kind "preprocessor"). MNIST's dir: key `path`, else
 * $MLTRAIN_DATA_PATH/mnist, else $PYLEARN2_DATA_PATH/mnist, else an error saying what to set.
 * The file datasets (MNIST, FashionMNIST, IDXDataset, NpyDataset, HDF5Dataset) take
 * `load: auto|memory|lazy`; a preprocessor makes them load in memory.
 * Every key of every component is listed in docs/datasets.md. */
mt_status mt_data_register_components(struct mt_cfg_registry *r);

#ifdef __cplusplus
}
#endif
#endif /* MLTRAIN_DATA_H */
