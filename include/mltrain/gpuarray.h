/* mltrain gpuarray: one n-dimensional array over host CPU and accelerator devices.
 *
 * Devices ("host", "opencl:P:D", later "cuda:N") sit behind one backend vtable; nothing in this
 * header names a backend. Buffers are refcounted device allocations; mt_array is a small value
 * struct (buffer reference + dtype + dims + byte strides + offset) so views never copy.
 * Elementwise and reduction kernels are generated from one scalar-expression description
 * (mt_kexpr) as C, OpenCL C or CUDA C, or interpreted where no compiler exists.
 *
 * Errors: every fallible call returns mt_status and records a message (see core.h). */
#ifndef MLTRAIN_GPUARRAY_H
#define MLTRAIN_GPUARRAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mltrain/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mt_device mt_device; /* opaque, refcounted */
typedef struct mt_buffer mt_buffer; /* opaque, refcounted */
typedef struct mt_stream mt_stream; /* opaque; NULL means the device's default stream */
typedef struct mt_event mt_event;   /* opaque */

/* ---------------------------------------------------------------- devices */

typedef struct mt_device_info {
    char name[64];         /* "host", "opencl:0:0" */
    char backend[16];      /* "host", "opencl", "cuda" (informational only) */
    char description[192]; /* vendor / model / driver */
    uint64_t global_mem;   /* bytes */
    uint64_t max_alloc;    /* largest single allocation, bytes */
    int32_t compute_units;
    bool fp64;             /* double precision supported */
    bool fp16;             /* native half arithmetic (storage of 16-bit floats always works) */
    bool cpu;              /* computes on the host's CPU cores (host, CPU OpenCL runtimes):
                              host-side library paths (BLAS, im2col) beat device kernels there */
} mt_device_info;

/* Lists every device present on this machine across the built backends. *out (caller frees with
 * mt_free) gets *count entries; the host device is always first. Backends that fail to enumerate
 * (no driver) contribute nothing and are not an error. */
mt_status mt_device_list(mt_device_info **out, int32_t *count);
/* Opens "host", "opencl:P:D" (platform, device), "opencl" (= opencl:0:0), "cuda:N".
 * ERR_NOT_BUILT if the backend is compiled out, ERR_NOT_FOUND if there is no such device.
 * Opening the same name twice gives two references to one shared device object. */
mt_status mt_device_open(mt_device **out, const char *name);
void mt_device_retain(mt_device *dev);
void mt_device_release(mt_device *dev); /* NULL ok */
const mt_device_info *mt_device_get_info(const mt_device *dev);
const char *mt_device_name(const mt_device *dev);
bool mt_device_is_host_addressable(const mt_device *dev); /* buffers have host pointers */
/* Waits for all work queued on the device. */
mt_status mt_device_sync(mt_device *dev);

/* Caching allocator statistics (bytes). in_use: handed out; cached: held for reuse;
 * peak: highest in_use since open or the last reset. */
typedef struct mt_mem_stats {
    uint64_t in_use;
    uint64_t cached;
    uint64_t peak;
    uint64_t allocs;      /* calls to mt_buffer_new */
    uint64_t cache_hits;  /* of which served from the cache */
    uint64_t backend_allocs; /* allocations that reached the backend */
} mt_mem_stats;
void mt_device_mem_stats(const mt_device *dev, mt_mem_stats *out);
void mt_device_mem_reset_peak(mt_device *dev);
/* Returns cached blocks to the backend. */
void mt_device_empty_cache(mt_device *dev);

/* Streams and events (the host and OpenCL in-order queue are synchronous or in order; CUDA
 * streams overlap). Work on one stream runs in order. */
mt_status mt_stream_new(mt_stream **out, mt_device *dev);
void mt_stream_free(mt_stream *s); /* NULL ok; waits for its work */
mt_status mt_stream_sync(mt_stream *s);
mt_status mt_event_new(mt_event **out, mt_device *dev);
void mt_event_free(mt_event *e);
mt_status mt_event_record(mt_event *e, mt_stream *s);
mt_status mt_stream_wait_event(mt_stream *s, mt_event *e); /* s waits for e, host does not */
mt_status mt_event_sync(mt_event *e);
mt_status mt_event_elapsed_ms(float *ms, mt_event *start, mt_event *end);

/* ---------------------------------------------------------------- buffers */

/* nbytes may be 0 (a valid empty buffer). Served by the device's caching allocator. */
mt_status mt_buffer_new(mt_buffer **out, mt_device *dev, size_t nbytes);
void mt_buffer_retain(mt_buffer *buf);
void mt_buffer_release(mt_buffer *buf); /* NULL ok; returns memory to the cache at zero */
size_t mt_buffer_size(const mt_buffer *buf);
mt_device *mt_buffer_device(const mt_buffer *buf); /* borrowed */
/* Host pointer of the buffer's first byte, or NULL when the device is not host-addressable. */
void *mt_buffer_host_ptr(const mt_buffer *buf);
/* Raw copies (bytes). Same-device or host<->device; offsets in bytes; NULL stream = default. */
mt_status mt_buffer_write(mt_buffer *dst, size_t off, const void *src, size_t n, mt_stream *s);
mt_status mt_buffer_read(void *dst, const mt_buffer *src, size_t off, size_t n, mt_stream *s);
mt_status mt_buffer_copy(mt_buffer *dst, size_t doff, const mt_buffer *src, size_t soff,
                         size_t n, mt_stream *s); /* any two devices */

/* ---------------------------------------------------------------- arrays (value views) */

enum {
    MT_ARRAY_C_CONTIGUOUS = 1u << 0,
    MT_ARRAY_F_CONTIGUOUS = 1u << 1,
    MT_ARRAY_WRITEABLE = 1u << 2, /* cleared by broadcast_to (stride-0 views) */
    MT_ARRAY_ALIGNED = 1u << 3,
};

/* An array holds one reference on buf. A zero-initialised mt_array is "empty" (buf NULL) and may
 * be passed to mt_array_clear. Functions that produce an array into *out overwrite *out without
 * releasing it: clear it first if it held a reference. */
typedef struct mt_array {
    mt_buffer *buf;
    size_t offset; /* bytes from the buffer's start to element [0,...,0] */
    mt_dtype dtype;
    int32_t ndim;
    uint32_t flags;
    int64_t dims[MT_MAX_DIMS];
    int64_t strides[MT_MAX_DIMS]; /* bytes; may be negative or 0 */
} mt_array;

/* New C-contiguous (order 'C') or Fortran-contiguous (order 'F') array; contents undefined. */
mt_status mt_array_empty(mt_array *out, mt_device *dev, mt_dtype dt, int32_t ndim,
                         const int64_t *dims, char order);
mt_status mt_array_zeros(mt_array *out, mt_device *dev, mt_dtype dt, int32_t ndim,
                         const int64_t *dims);
/* New C-contiguous array on dev holding a copy of C-contiguous host data of dtype dt. */
mt_status mt_array_from_host(mt_array *out, mt_device *dev, mt_dtype dt, int32_t ndim,
                             const int64_t *dims, const void *data);
/* Copies the array's elements in C order into host memory (nbytes must equal size*itemsize). */
mt_status mt_array_to_host(void *dst, size_t nbytes, const mt_array *a);
/* New reference to the same view. */
void mt_array_view(mt_array *out, const mt_array *src);
void mt_array_clear(mt_array *a); /* releases the buffer reference and zeroes a; NULL ok */

int64_t mt_array_size(const mt_array *a);     /* number of elements */
size_t mt_array_nbytes(const mt_array *a);    /* size * itemsize */
size_t mt_array_itemsize(const mt_array *a);
mt_device *mt_array_device(const mt_array *a); /* borrowed */
bool mt_array_is_c_contiguous(const mt_array *a);
bool mt_array_is_f_contiguous(const mt_array *a);
/* Recomputes flags from dims/strides (keeps WRITEABLE as it was). */
void mt_array_update_flags(mt_array *a);
/* Formats "float32[2,3] strides(12,4) host" into buf. */
const char *mt_array_describe(const mt_array *a, char *buf, size_t len);
/* Shape as text "(2, 3)" into buf. */
const char *mt_shape_str(int32_t ndim, const int64_t *dims, char *buf, size_t len);

/* ---------------------------------------------------------------- views (never copy) */

#define MT_SLICE_UNSET INT64_MIN
typedef enum mt_slice_kind {
    MT_SLICE_RANGE = 0, /* start:stop:step, each may be MT_SLICE_UNSET */
    MT_SLICE_INDEX,     /* a single index (removes the dimension; negative counts from end) */
    MT_SLICE_NEWAXIS,   /* inserts a length-1 dimension */
    MT_SLICE_ELLIPSIS,  /* as many full ranges as needed (at most one) */
    MT_SLICE_KIND_COUNT
} mt_slice_kind;
typedef struct mt_slice {
    mt_slice_kind kind;
    int64_t start, stop, step;
} mt_slice;
mt_slice mt_slice_range(int64_t start, int64_t stop, int64_t step);
mt_slice mt_slice_index(int64_t index);
mt_slice mt_slice_all(void);
mt_slice mt_slice_newaxis(void);
mt_slice mt_slice_ellipsis(void);

/* NumPy basic indexing: a[s0, s1, ...]; missing trailing entries are full ranges. ERR_RANGE for an
 * index out of bounds, ERR_INVALID for step 0 or too many indices. */
mt_status mt_array_slice(mt_array *out, const mt_array *src, int32_t nslices, const mt_slice *s);
/* perm NULL reverses the axes (a.T); perm must be a permutation of 0..ndim-1 (negatives allowed). */
mt_status mt_array_transpose(mt_array *out, const mt_array *src, const int32_t *perm);
mt_status mt_array_swapaxes(mt_array *out, const mt_array *src, int32_t a, int32_t b);
/* NumPy broadcasting rules; the result is read-only (stride 0 on broadcast dims). */
mt_status mt_array_broadcast_to(mt_array *out, const mt_array *src, int32_t ndim,
                                const int64_t *dims);
/* Broadcast shape of two shapes (NumPy rules); ERR_SHAPE naming both shapes if incompatible. */
mt_status mt_broadcast_shapes(int32_t *ndim_out, int64_t *dims_out, int32_t nd_a,
                              const int64_t *a, int32_t nd_b, const int64_t *b);
mt_status mt_array_expand_dims(mt_array *out, const mt_array *src, int32_t axis);
/* naxes 0: remove every length-1 dim; else the listed ones (each must have length 1). */
mt_status mt_array_squeeze(mt_array *out, const mt_array *src, int32_t naxes,
                           const int32_t *axes);
/* View with new dims if the strides allow it (one dim may be -1); ERR_SHAPE otherwise, with
 * *needs_copy (if non-NULL) set when only the memory layout prevented it. */
mt_status mt_array_reshape_view(mt_array *out, const mt_array *src, int32_t ndim,
                                const int64_t *dims, bool *needs_copy);
/* NumPy reshape (C order): a view when possible, else a C-contiguous copy. */
mt_status mt_array_reshape(mt_array *out, const mt_array *src, int32_t ndim, const int64_t *dims);
mt_status mt_array_flatten(mt_array *out, const mt_array *src); /* reshape to (-1) */
/* Reinterprets the bytes under a contiguous last axis as another dtype of the same size. */
mt_status mt_array_view_as(mt_array *out, const mt_array *src, mt_dtype dt);

/* ---------------------------------------------------------------- copies and fills */

/* dst[...] = src (src broadcast to dst's shape, converted to dst's dtype); any two devices. */
mt_status mt_array_copy(mt_array *dst, const mt_array *src);
/* New C-contiguous copy on dev (NULL: src's device). */
mt_status mt_array_copy_to(mt_array *out, const mt_array *src, mt_device *dev);
/* View of src if it is C-contiguous already, else a C-contiguous copy. */
mt_status mt_array_contiguous(mt_array *out, const mt_array *src);
/* New C-contiguous array of dtype dt (a copy even when dt equals src's dtype). */
mt_status mt_array_astype(mt_array *out, const mt_array *src, mt_dtype dt);
/* Every element = value converted to a's dtype (a may be any strided, writeable view). */
mt_status mt_array_fill(mt_array *a, mt_scalar value);
/* NumPy arange: ceil((stop - start) / step) elements computed as NumPy does: the first value
 * is start, the second start + step, and the rest step by their difference in the target dtype
 * (float32 for float16/bfloat16), so arange(0.1, 1, 0.3, float32)[2] is 0.70000005 as in NumPy;
 * integer dtypes truncate. ERR_INVALID for step 0; ERR_DTYPE for a bool range longer than 2. */
mt_status mt_array_arange(mt_array *out, mt_device *dev, mt_dtype dt, double start, double stop,
                          double step);
/* Counter-based random fills (Philox4x32-10). Element i (C order) draws from counter
 * (i + counter_offset) with key seed; the same seed gives the same numbers on every backend
 * (uniform: bit-identical; normal: within 2 ulp where libm differs). */
mt_status mt_array_random_uniform(mt_array *a, uint64_t seed, uint64_t counter_offset,
                                  double low, double high);
mt_status mt_array_random_normal(mt_array *a, uint64_t seed, uint64_t counter_offset,
                                 double mean, double stddev);
/* a[i] = (uniform < p) ? 1 : 0 (dropout masks). */
mt_status mt_array_random_bernoulli(mt_array *a, uint64_t seed, uint64_t counter_offset,
                                    double p);

/* ---------------------------------------------------------------- scalar kernel expressions */


/* One SSA node of a scalar expression. Operands refer to earlier nodes by index.
 * Semantics follow NumPy for the node's dtype: integer ops wrap, integer division and modulo
 * floor (Python), division by zero of integers gives 0 (NumPy's result, with no warning);
 * comparisons and logical ops produce bool; float16/bfloat16 nodes compute in float32 and
 * round only when stored. INPUT: arg index in `arg`; PARAM: kernel parameter index in `arg`
 * (read as the node's dtype); INDEX: the flat C-order element index (int64);
 * RAND_*: Philox with key = param[arg] (uint64 seed) and counter = index + param[arg+1].
 * Details (kscalar.h has the formulas): DIV of integers floors like FLOORDIV; arithmetic on
 * bool is rejected (use the logical ops, MAX/MIN, or a CAST); integer POW with a negative
 * exponent gives 0 (except bases 1 and -1); shifts by a count < 0 or >= the width give 0 (-1
 * for >> of a negative value); MAX/MIN/RELU/SIGN propagate NaN; ROUND is half to even; float
 * FLOORDIV/MOD follow NumPy (sign of zero included); CAST to float16/bfloat16 rounds once from
 * the source value and float -> int casts give what mt_dtype_convert gives. Uniform floats are
 * in [0, 1) for every float dtype (float16/bfloat16 draw 11/8 bits). */
typedef struct mt_knode {
    mt_sop op;
    mt_dtype dtype;   /* result dtype */
    int32_t a, b, c;  /* operand node indices (-1 unused) */
    int32_t arg;      /* INPUT / PARAM / RAND_* */
    mt_scalar value;  /* CONST */
} mt_knode;

/* A scalar expression with one or more outputs: output j of the kernel stores node outs[j]. */
typedef struct mt_kexpr {
    mt_knode *nodes;
    int32_t n, cap;
    int32_t nouts;
    int32_t outs[MT_MAX_DIMS]; /* up to 8 outputs */
} mt_kexpr;

void mt_kexpr_init(mt_kexpr *e);
void mt_kexpr_deinit(mt_kexpr *e);
/* Builders return the new node's index, or -1 (with the error recorded) on failure; a -1 operand
 * propagates -1, so one check at the end suffices. Binary ops require equal operand dtypes
 * except comparisons/logical (bool result) — insert CASTs for promotion. */
int32_t mt_kexpr_input(mt_kexpr *e, int32_t arg, mt_dtype dt);
int32_t mt_kexpr_param(mt_kexpr *e, int32_t param, mt_dtype dt);
int32_t mt_kexpr_const(mt_kexpr *e, mt_scalar value, mt_dtype dt);
int32_t mt_kexpr_index(mt_kexpr *e);
int32_t mt_kexpr_cast(mt_kexpr *e, int32_t a, mt_dtype dt); /* returns a if already dt */
int32_t mt_kexpr_unary(mt_kexpr *e, mt_sop op, int32_t a);
int32_t mt_kexpr_binary(mt_kexpr *e, mt_sop op, int32_t a, int32_t b);
int32_t mt_kexpr_where(mt_kexpr *e, int32_t cond, int32_t a, int32_t b);
int32_t mt_kexpr_rand(mt_kexpr *e, mt_sop op, int32_t seed_param, mt_dtype dt);
mt_status mt_kexpr_add_output(mt_kexpr *e, int32_t node);
/* Checks operand indices, arities and dtypes; ERR_INVALID naming the node. */
mt_status mt_kexpr_validate(const mt_kexpr *e);
/* Stable 64-bit hash of the expression (for kernel caches). */
uint64_t mt_kexpr_hash(const mt_kexpr *e);
/* Human-readable form: "o0 = add(mul(i0, i1), i2)". */
void mt_kexpr_print(const mt_kexpr *e, mt_strbuf *sb);

/* ---------------------------------------------------------------- elementwise and reductions */

/* Runs a fused elementwise kernel. args[0..nin) are inputs (broadcast to the output shape),
 * args[nin..nin+nouts) outputs (same shape, writeable, dtypes equal to the output nodes' dtypes).
 * Input i has dtype equal to its INPUT nodes' dtype. Contiguous dimensions are collapsed;
 * the kernel for (expr, dtypes, collapsed rank, contiguity) is generated and compiled once per
 * device and cached; on the host, without a C compiler (or MLTRAIN_NO_CC=1), it is interpreted. */
mt_status mt_elemwise(const mt_kexpr *expr, int32_t nin, const mt_array *const *inputs,
                      mt_array *const *outputs, int32_t nparams, const mt_scalar *params);
/* mt_elemwise for a caller that launches the same expression over and over (a compiled
 * function's fused step): *memo (NULL at first; the caller owns it and frees it with
 * mt_elemwise_memo_free) records the plan and the compiled kernel of the previous call. When
 * this call has the same expr pointer, nin and nparams, and every input and output has the
 * recorded dtype, shape, strides and device (outputs writeable, no input partially
 * overlapping an output), the recorded kernel is launched on the new buffers and params
 * without planning or a kernel-cache lookup; otherwise the call takes mt_elemwise's full path
 * (same checks and errors) and records it. Results are the same bits as mt_elemwise's. The
 * expression must not change while a memo refers to it, and a memo is used with one device,
 * which must outlive it; not safe to use one memo from several threads at once. */
typedef struct mt_elemwise_memo mt_elemwise_memo;
mt_status mt_elemwise_memo_run(mt_elemwise_memo **memo, const mt_kexpr *expr, int32_t nin,
                               const mt_array *const *inputs, mt_array *const *outputs,
                               int32_t nparams, const mt_scalar *params);
void mt_elemwise_memo_free(mt_elemwise_memo *memo); /* NULL is fine */
/* Calls of mt_elemwise_memo_run that launched the recorded kernel (0 for NULL). */
int64_t mt_elemwise_memo_hits(const mt_elemwise_memo *memo);
/* Compiles, ahead of time, the kernel mt_elemwise(expr, nin, ..., nparams, ...) would use on dev
 * for C-contiguous inputs of dtypes in_dtypes[i] and shapes in_dims[i][0..in_ndim[i]) and
 * C-contiguous outputs of shape out_dims[0..out_ndim) (dtypes of the output nodes), putting it in
 * the device's kernel cache (and the disk cache on the host). A size < 0 means unknown and is
 * taken as > 1. Nothing runs and nothing is allocated beyond tiny stand-in arrays. A pure
 * optimisation: a later call whose layout differs just builds its own kernel. Safe to call from
 * several threads at once. ERR_INVALID / ERR_RANGE for bad arguments, otherwise the errors of
 * mt_elemwise's checks or of the kernel build; MT_OK without building when kernels are
 * interpreted or the shape is empty. */
mt_status mt_elemwise_prebuild(mt_device *dev, const mt_kexpr *expr, int32_t nin,
                               const mt_dtype *in_dtypes, const int32_t *in_ndim,
                               const int64_t (*in_dims)[MT_MAX_DIMS], int32_t out_ndim,
                               const int64_t *out_dims, int32_t nparams);
/* Batched ahead-of-time builds of host kernels (mt_function_new predicts a function's kernels
 * and compiles them this way). mt_kernel_batch_begin opens a batch on the calling thread: until
 * mt_kernel_batch_end, a host kernel requested on this thread that is in neither the device's
 * nor the disk cache is not compiled; its source is recorded and the request fails with
 * MT_ERR_NOT_BUILT (mt_elemwise and the reductions then interpret it, mt_elemwise_prebuild
 * returns the error). Cached kernels load as usual; other devices build as usual.
 * mt_kernel_batch_end closes the batch and compiles the recorded kernels into the disk cache,
 * several per compiler run (one shared object holding a group, published under each kernel's
 * own cache entry), with up to nworkers runs at once (<= 0: one per CPU); the next request of
 * each kernel loads it from there. *nbuilt (may be NULL) gets the number of kernels compiled.
 * A kernel that does not compile is not reported here; its request reports the error.
 * ERR_INVALID when a batch is already open (begin) or none is (end). */
mt_status mt_kernel_batch_begin(void);
mt_status mt_kernel_batch_end(int32_t nworkers, int32_t *nbuilt);
/* Host kernels compiled by the C compiler in this process so far, and the compiler runs that
 * compiled them (a batch compiles several kernels per run). Either pointer may be NULL. */
void mt_host_kernel_counts(int64_t *compiled, int64_t *runs);


/* out = op over `axes` of src (naxes 0: all axes). New array on src's device. Float sums are
 * pairwise and accumulate float16/bfloat16/float32 in float64. MAX/MIN propagate NaN (NumPy);
 * ARGMAX/ARGMIN return the first NaN's index if any. A reduction over zero elements gives the
 * identity (sum 0, prod 1, all true, any false) and ERR_INVALID for max/min/argmax/argmin;
 * mean of zero elements gives NaN. */
mt_status mt_array_reduce(mt_array *out, const mt_array *src, mt_reduce_op op, int32_t naxes,
                          const int32_t *axes, bool keepdims);
/* Fused form: reduces the single output of `map` (evaluated elementwise over the broadcast
 * inputs) over `axes`; out must already have the reduced shape (keepdims or not) and dtype
 * mt_reduce_result_dtype(op, map output dtype). */
mt_status mt_reduce_fused(const mt_kexpr *map, int32_t nin, const mt_array *const *inputs,
                          mt_reduce_op op, int32_t naxes, const int32_t *axes, mt_array *out,
                          int32_t nparams, const mt_scalar *params);
/* mt_reduce_fused for a caller that runs the same reduction over and over (a compiled
 * function's fused reduction step): *memo (NULL at first; the caller owns it and frees it with
 * mt_reduce_memo_free) records the loop plan and the compiled kernel of the previous call.
 * When this call has the same map pointer, op, axes, nin and nparams, and every input and the
 * output have the recorded dtype, shape, strides and device (output writeable), the recorded
 * kernel is launched on the new buffers without planning or a kernel-cache lookup; otherwise
 * the call takes mt_reduce_fused's full path (same checks and errors) and records it when that
 * ran a compiled kernel on the arguments themselves. Results are the same bits as
 * mt_reduce_fused's. The map must not change while a memo refers to it, and a memo is used
 * with one device, which must outlive it; not safe to use one memo from several threads. */
typedef struct mt_reduce_memo mt_reduce_memo;
mt_status mt_reduce_memo_run(mt_reduce_memo **memo, const mt_kexpr *map, int32_t nin,
                             const mt_array *const *inputs, mt_reduce_op op, int32_t naxes,
                             const int32_t *axes, mt_array *out, int32_t nparams,
                             const mt_scalar *params);
/* mt_array_reduce through a memo (the same one a caller would pass to mt_reduce_memo_run; the
 * memo keeps the identity map it reduces): a new result array, the same bits as
 * mt_array_reduce's, without planning when the source's layout repeats. */
mt_status mt_array_reduce_memo(mt_reduce_memo **memo, mt_array *out, const mt_array *src,
                               mt_reduce_op op, int32_t naxes, const int32_t *axes,
                               bool keepdims);
void mt_reduce_memo_free(mt_reduce_memo *memo); /* NULL is fine */
/* Calls of mt_reduce_memo_run that launched the recorded kernel (0 for NULL). */
int64_t mt_reduce_memo_hits(const mt_reduce_memo *memo);

/* ---------------------------------------------------------------- products */

/* c = alpha * op(a) @ op(b) + beta * c with op = transpose when trans_*. 2-D, or 3-D batched
 * (a batch dim of 1 or stride 0 broadcasts). float32/float64 go to BLAS (OpenBLAS on the host,
 * CLBlast on OpenCL) without copies when each operand has one unit-stride dim; other layouts are
 * copied once; float16/bfloat16 compute in float32; integer dtypes use a generated kernel. */
mt_status mt_array_gemm(mt_array *c, const mt_array *a, const mt_array *b, double alpha,
                        double beta, bool trans_a, bool trans_b);
/* NumPy matmul: 1-D operands promoted and demoted, batch dims broadcast. New array. */
mt_status mt_array_matmul(mt_array *out, const mt_array *a, const mt_array *b);

/* ---------------------------------------------------------------- convolution and pooling */

/* Two-dimensional convolution (cross-correlation, as in Theano and PyTorch) and pooling over the
 * last two axes of [N, C, H, W] arrays, on any device: the generic implementation builds im2col
 * / col2im and pooling kernels for the device and multiplies with the device's GEMM; a backend
 * may run a vendor library instead (cuDNN on CUDA) where it gives the same results. All
 * operands are on one device and have one float dtype (float16/bfloat16 compute in float32);
 * inputs may be any strided views; the caller allocates the outputs with the shapes below
 * (any writeable layout), and they are overwritten, not accumulated into. */
typedef struct mt_conv2d_params {
    int32_t stride[2]; /* >= 1, along H and W */
    int32_t pad[2];    /* >= 0: zeros around the input */
} mt_conv2d_params;

/* y [N, O, OH, OW] = conv(x [N, C, H, W], w [O, C, KH, KW]) with OH = (H + 2 pad - KH) / stride
 * + 1 (likewise OW); ERR_SHAPE / ERR_DTYPE / ERR_INVALID naming the operands otherwise. */
mt_status mt_conv2d_forward(mt_array *y, const mt_array *x, const mt_array *w,
                            const mt_conv2d_params *p);
/* dx [N, C, H, W] = the gradient of conv(x, w) with respect to x given dy [N, O, OH, OW]; dx's
 * shape gives H and W. */
mt_status mt_conv2d_backward_data(mt_array *dx, const mt_array *dy, const mt_array *w,
                                  const mt_conv2d_params *p);
/* dw [O, C, KH, KW] = the gradient with respect to w given x and dy; dw's shape gives KH, KW. */
mt_status mt_conv2d_backward_filter(mt_array *dw, const mt_array *x, const mt_array *dy,
                                    const mt_conv2d_params *p);

typedef enum mt_pool2d_kind {
    MT_POOL2D_MAX = 0, /* the first maximal element of the window in C order (a NaN wins) */
    MT_POOL2D_MEAN,    /* the mean over the window's elements inside the input */
    MT_POOL2D_KIND_COUNT
} mt_pool2d_kind;

typedef struct mt_pool2d_params {
    int32_t size[2];   /* window, >= 1 */
    int32_t stride[2]; /* >= 1 */
    int32_t pad[2];    /* 0 <= pad < size */
    mt_pool2d_kind kind;
} mt_pool2d_params;

/* y [N, C, OH, OW] = pool(x [N, C, H, W]). Window (oh, ow) covers rows [oh s - p, oh s - p + k)
 * clipped to the input (likewise columns), so y's shape may be the floor or the ceil
 * (Pylearn2) size: OH is taken from y and every window must start inside the padded input,
 * (OH - 1) s - p < H. With v (x's shape, or NULL): max gives v at the position of x's maximum,
 * mean averages v. */
mt_status mt_pool2d_forward(mt_array *y, const mt_array *x, const mt_array *v,
                            const mt_pool2d_params *p);
/* dx = the gradient of pool(x) given dy (y's shape): max adds dy to the element that the
 * forward pass took (ties: the first in C order, recomputed from x), mean spreads dy over the
 * window's elements inside the input. y, the forward result, may be NULL (it is a hint for
 * vendor libraries). */
mt_status mt_pool2d_backward(mt_array *dx, const mt_array *x, const mt_array *y,
                             const mt_array *dy, const mt_pool2d_params *p);

/* ---------------------------------------------------------------- advanced indexing */

/* Integer-array indexing along one axis on any device, with generated kernels (no host copy of
 * the operands). New C-contiguous results on x's device; indices may have any integer dtype,
 * any strides, and live on another device (they are copied over). axis may be negative. An
 * index out of range is ERR_RANGE "index I is out of range for axis A of size N (at flat
 * position P)", naming the first bad entry in C order; no result is produced then. */

/* out = np.take(x, idx, axis): shape x.shape[:axis] + idx.shape + x.shape[axis+1:], negative
 * indices counting from the end; elements are copied bit for bit (every dtype). */
mt_status mt_array_take(mt_array *out, const mt_array *x, const mt_array *idx, int32_t axis);
/* out = a copy of x with np.add.at(out, (:, ..., idx), y) along axis: y broadcasts to the
 * shape of take(x, idx, axis) and is converted to x's dtype; repeated indices add in the order
 * of their flat positions, without atomics, so results are the same on every run and equal to
 * a sequential loop's (integers wrap, bool ORs, float16 / bfloat16 round after each sum). */
mt_status mt_array_scatter_add(mt_array *out, const mt_array *x, const mt_array *idx,
                               const mt_array *y, int32_t axis);
/* out[pre..., post...] = x[pre..., labels[pre..., post...], post...]: np.take_along_axis with
 * the axis removed, for integer class labels (labels has x's shape without axis, ERR_SHAPE
 * otherwise). Labels must be in [0, n): a negative one is an error too ("label L is out of
 * range ..."). */
mt_status mt_array_take_labels(mt_array *out, const mt_array *x, const mt_array *labels,
                               int32_t axis);

/* ---------------------------------------------------------------- files and exchange */

/* .npy (format 1.0/2.0/3.0): every dtype above, C or Fortran order. Loads onto dev.
 * max_bytes > 0 refuses larger payloads. bfloat16 is written with descr '<V2' and read back as
 * bfloat16 (NumPy itself has no bfloat16). */
mt_status mt_npy_load(mt_array *out, mt_device *dev, const char *path, size_t max_bytes);
mt_status mt_npy_load_mem(mt_array *out, mt_device *dev, const void *data, size_t len,
                          const char *what);
mt_status mt_npy_save(const char *path, const mt_array *a); /* atomic */
/* What an .npy file's header says, with mt_npy_load's checks (the payload must be present),
 * without reading the payload: for readers that fetch parts of it by offset. Elements are
 * stored byte-swapped when byteswap is set; a bool payload may hold any nonzero byte for True. */
typedef struct mt_npy_info {
    mt_dtype dtype;
    int32_t ndim;
    int64_t dims[MT_MAX_DIMS];
    bool fortran_order;
    bool byteswap;
    uint64_t data_offset; /* bytes from the start of the file to the payload */
    uint64_t nbytes;      /* payload bytes */
} mt_npy_info;
mt_status mt_npy_read_info(mt_npy_info *out, const char *path, size_t max_bytes);

/* DLPack (zero-copy): export gives a DLManagedTensor that holds a reference on the buffer;
 * import wraps the tensor's memory (host or OpenCL) without copying and calls its deleter when
 * the last view is released. Byte strides must be multiples of the item size to export. */
struct DLManagedTensor;
mt_status mt_array_to_dlpack(struct DLManagedTensor **out, const mt_array *a);
mt_status mt_array_from_dlpack(mt_array *out, struct DLManagedTensor *t);

#ifdef __cplusplus
}
#endif
#endif /* MLTRAIN_GPUARRAY_H */
