/* Private interface of the gpuarray module: the backend vtable every device fills, the device
 * and buffer structs, the caching allocator, and the kernel generator's entry points.
 * Only files under src/gpuarray/ include this. */
#ifndef MT_GPUARRAY_IMPL_H
#define MT_GPUARRAY_IMPL_H

#include <pthread.h>

#include "mltrain/core.h"
#include "mltrain/gpuarray.h"
#include "mltrain/mt_config.h"

#define MT_DEVICE_OPS_ABI 1u

/* Source language of generated kernels. */
typedef enum mt_klang {
    MT_KLANG_C = 0,  /* host: void entry(void **args, int64_t begin, int64_t end) */
    MT_KLANG_OPENCL, /* __kernel, buffers as (global char *, ulong offset) pairs */
    MT_KLANG_CUDA,   /* extern "C" __global__, buffers as char * with offset folded in */
    MT_KLANG_COUNT
} mt_klang;

/* One kernel argument at launch. */
typedef enum mt_karg_kind { MT_KARG_BUFFER = 0, MT_KARG_SCALAR } mt_karg_kind;
typedef struct mt_karg {
    mt_karg_kind kind;
    const mt_buffer *buf; /* BUFFER */
    size_t offset;        /* BUFFER: byte offset into buf */
    const void *scalar;   /* SCALAR: pointer to the value */
    size_t size;          /* SCALAR: bytes (4 or 8) */
} mt_karg;

/* Backend vtable. Filled with designated initializers; a NULL member means unsupported. */
typedef struct mt_device_ops {
    uint32_t abi_version;
    const char *backend; /* "host", "opencl", "cuda" */
    mt_klang klang;
    /* enumerate devices of this backend into infos (append); never fails hard */
    void (*enumerate)(mt_device_info **infos, int32_t *count, int32_t *cap);
    /* open device #idx of platform #platform; fills dev->info and dev->impl */
    mt_status (*open)(mt_device *dev, int32_t platform, int32_t idx);
    void (*close)(mt_device *dev);
    /* raw allocations; handle is opaque (host: the pointer; OpenCL: cl_mem) */
    mt_status (*alloc)(mt_device *dev, size_t nbytes, void **handle);
    void (*free)(mt_device *dev, void *handle);
    void *(*host_ptr)(mt_device *dev, void *handle); /* NULL when not host-addressable */
    mt_status (*write)(mt_device *dev, void *dst, size_t off, const void *src, size_t n,
                       mt_stream *s);
    mt_status (*read)(mt_device *dev, void *dst, void *src, size_t off, size_t n, mt_stream *s);
    mt_status (*copy)(mt_device *dev, void *dst, size_t doff, void *src, size_t soff, size_t n,
                      mt_stream *s);
    /* kernels: build from source (entry name), free, launch over nwork work items.
     * Host (MT_KLANG_C): the entry is `void entry(void **args, int64_t begin, int64_t end)`;
     *   args[i] is the buffer's host pointer + offset (a char *) for BUFFER args and a pointer
     *   to the value for SCALAR args; the backend splits [0, nwork) over its threads in chunks
     *   of at least `grain` items and calls entry once per chunk.
     * OpenCL (MT_KLANG_OPENCL): each BUFFER arg is two kernel parameters
     *   `__global char *pI, ulong oI` (byte offset), each SCALAR arg one parameter of its size
     *   (4 or 8 bytes); the backend picks the global size G <= nwork (grain is a hint) and the
     *   local size; the generated kernel receives nwork itself as a scalar arg and loops
     *   `for (long w = get_global_id(0); w < nwork; w += get_global_size(0))`. No barriers.
     * CUDA: as OpenCL with `char *` parameters that already include the offset. */
    mt_status (*kernel_build)(mt_device *dev, const char *source, const char *entry,
                              void **kernel);
    void (*kernel_free)(mt_device *dev, void *kernel);
    mt_status (*kernel_launch)(mt_device *dev, void *kernel, int32_t nargs, const mt_karg *args,
                               int64_t nwork, int64_t grain, mt_stream *s);
    mt_status (*sync)(mt_device *dev);
    /* streams/events; NULL means the backend runs everything in order on one queue */
    mt_status (*stream_new)(mt_device *dev, void **stream);
    void (*stream_free)(mt_device *dev, void *stream);
    mt_status (*stream_sync)(mt_device *dev, void *stream);
    mt_status (*event_new)(mt_device *dev, void **event);
    void (*event_free)(mt_device *dev, void *event);
    mt_status (*event_record)(mt_device *dev, void *event, void *stream);
    mt_status (*event_wait)(mt_device *dev, void *stream, void *event);
    mt_status (*event_sync)(mt_device *dev, void *event);
    mt_status (*event_elapsed)(mt_device *dev, float *ms, void *start, void *end);
    /* GEMM on raw handles, row-major, float32 or float64 (dt), with leading dims in elements.
     * Batched with element strides between matrices (0 = broadcast). A backend may also take
     * float16/bfloat16 (CUDA: cublasGemmEx with float32 accumulation); one that cannot answers
     * MT_ERR_DTYPE before touching any data (gemm.c then uses float32 temporaries). */
    mt_status (*gemm)(mt_device *dev, mt_dtype dt, bool trans_a, bool trans_b, int64_t m,
                      int64_t n, int64_t k, double alpha, void *a, size_t a_off, int64_t lda,
                      int64_t stride_a, void *b, size_t b_off, int64_t ldb, int64_t stride_b,
                      double beta, void *c, size_t c_off, int64_t ldc, int64_t stride_c,
                      int64_t batch, mt_stream *s);
    /* Optional vendor convolution and pooling (NULL: the generic kernels of conv.c). Operands
     * are checked, C-contiguous float32/float64 arrays on dev. conv2d: kind MT__CONV_FWD (out y;
     * a x, b w), MT__CONV_BWD_DATA (dx; dy, w), MT__CONV_BWD_FILTER (dw; x, dy). pool2d: forward
     * (out y; x; y and dy NULL) or backward (out dx; x, y (may be NULL), dy). Any error makes
     * the caller run the generic kernels, so a backend answers MT_ERR_UNSUPPORTED for the cases
     * its library would compute differently. */
    mt_status (*conv2d)(mt_device *dev, int32_t kind, mt_array *out, const mt_array *a,
                        const mt_array *b, const mt_conv2d_params *p);
    mt_status (*pool2d)(mt_device *dev, bool backward, mt_array *out, const mt_array *x,
                        const mt_array *y, const mt_array *dy, const mt_pool2d_params *p);
} mt_device_ops;

enum { MT__CONV_FWD = 0, MT__CONV_BWD_DATA, MT__CONV_BWD_FILTER };

extern const mt_device_ops mt__host_ops;
#if MT_HAVE_OPENCL
extern const mt_device_ops mt__opencl_ops;
#endif

/* Caching allocator: size-class free lists per device (sizes rounded up to 256 bytes below
 * 1 MiB, to 64 KiB above); blocks return to the list on release and go back to the backend on
 * mt_device_empty_cache, device close, or when an allocation fails (then retried once). */
typedef struct mt_cached_block {
    struct mt_cached_block *next;
    void *handle;
    size_t size; /* rounded size */
} mt_cached_block;

typedef struct mt_allocator_state {
    pthread_mutex_t lock;
    mt_cached_block *free_list; /* sorted by size, best fit */
    mt_mem_stats stats;
} mt_allocator_state;

/* An in-memory kernel cache entry (key -> compiled kernel). */
typedef struct mt_kcache_entry {
    struct mt_kcache_entry *next;
    uint64_t hash;
    char *key; /* full key text, compared on hit */
    void *kernel;
} mt_kcache_entry;

struct mt_device {
    const mt_device_ops *ops;
    mt_device_info info;
    int refcount; /* atomic */
    void *impl;   /* backend state */
    mt_allocator_state alloc;
    pthread_mutex_t kcache_lock;
    mt_kcache_entry *kcache[256];
    mt_threadpool *pool; /* host backend's workers (NULL elsewhere) */
};

struct mt_buffer {
    mt_device *dev; /* holds a reference */
    void *handle;
    size_t size;     /* requested bytes */
    size_t capacity; /* rounded bytes from the allocator */
    int refcount;    /* atomic */
    /* imported memory (DLPack): not from the allocator; deleter called at release */
    void (*deleter)(void *ctx);
    void *deleter_ctx;
};

/* allocator.c */
mt_status mt__alloc_get(mt_device *dev, size_t nbytes, void **handle, size_t *capacity);
void mt__alloc_put(mt_device *dev, void *handle, size_t capacity);
void mt__alloc_deinit(mt_device *dev);

/* buffer.c: wraps foreign memory (DLPack import); takes ownership via deleter */
mt_status mt__buffer_wrap(mt_buffer **out, mt_device *dev, void *handle, size_t size,
                          void (*deleter)(void *), void *ctx);

/* hostcc.c: splits a compiler command on blanks (words point into buf; at most max), and runs
 * argv (no shell) with stdin from /dev/null and stdout+stderr into out_fd; *exit_code gets the
 * exit status (128+signal when killed). ERR_NOT_FOUND when the program cannot be started.
 * Shared by the host compiler driver and the cudaemu device's C++ compiles. */
int mt__split_words(char *buf, char **words, int max);
mt_status mt__run_program(char *const *argv, int out_fd, int *exit_code);

/* device.c: whether a device computes on the host's CPU cores (sets mt_device_info.cpu). */
bool mt__device_info_is_cpu(const mt_device_ops *ops, const mt_device_info *info);

/* device.c: the backend handle of a stream (NULL for the default stream or when the backend
 * has no stream ops). */
void *mt__stream_impl(const mt_stream *s);

/* copy.c: elementwise copy with dtype conversion between two host-memory areas of one shape
 * (byte strides; src strides may be 0 for broadcasting). The areas must not overlap unless
 * identical. pool (may be NULL) splits large copies over threads. */
void mt__host_copy_strided(char *dst, mt_dtype dst_dt, const int64_t *dst_strides,
                           const char *src, mt_dtype src_dt, const int64_t *src_strides,
                           int32_t ndim, const int64_t *dims, mt_threadpool *pool);

/* kernel cache (device.c): look up or build a kernel whose source is produced on a miss. */
typedef mt_status (*mt_ksource_fn)(void *ctx, mt_strbuf *src, char *entry, size_t entry_len);
mt_status mt__kernel_get(mt_device *dev, const char *key, mt_ksource_fn gen, void *ctx,
                         void **kernel);

/* kgen.c: renders an expression as statements of the given language. Input i is read from
 * variable "in<i>" of its storage type and outputs are written to "out<j>"; emitted code
 * declares its temporaries "t<k>".
 * The surrounding kernel (the "skeleton") must also declare, where the expression uses them:
 *   prm<k>  PARAM k, of type mt__kgen_param_type(dtype of the PARAM nodes) (4 or 8 bytes; the
 *           launch passes the value packed by mt__kgen_param_pack); RAND nodes read their seed
 *           from prm<arg> and counter offset from prm<arg+1>, both uint64_t
 *           (mt__kexpr_param_types reports every param's dtype);
 *   idx     the flat C-order element index, int64_t (INDEX and RAND nodes).
 * Only nodes reachable from the outputs are emitted. Type names are the same in all three
 * languages (the prelude typedefs int8_t ... uint64_t for OpenCL and CUDA). */
mt_status mt__kgen_expr(mt_strbuf *sb, const mt_kexpr *e, mt_klang lang, const char *indent);
/* The prelude of helper functions (sigmoid, softplus, log1mexp, half conversions, philox)
 * and, for OpenCL and CUDA, the integer typedefs. OpenCL: the prelude enables cl_khr_fp64 and
 * emits the double helpers when the device has fp64, unless the source defines MT_NO_FP64
 * before it (do that when the kernel uses no double: mt__kexpr_uses_f64). */
void mt__kgen_prelude(mt_strbuf *sb, mt_klang lang);
/* Opens the work loop of a generated kernel over work items w_ (int64_t): [begin, end) in C,
 * grid-stride up to nwork_ in OpenCL C and CUDA C (the kernel's parameters must be named so);
 * the caller closes it. */
void mt__kgen_work_loop(mt_strbuf *sb, mt_klang lang);
/* C type name used to store / compute a dtype in a language ("float", "uint16_t", ...). */
const char *mt__kgen_storage_type(mt_dtype dt, mt_klang lang);
const char *mt__kgen_compute_type(mt_dtype dt, mt_klang lang);
/* Kernel parameter passing: type of prm<k> for a PARAM dtype (bool/int8/int16 -> int32_t,
 * uint8/uint16 -> uint32_t, float16/bfloat16 -> float holding the rounded value, else the
 * dtype's own type), and the packing of a scalar into it (writes 4 or 8 bytes to dst, returns
 * the size). */
const char *mt__kgen_param_type(mt_dtype dt, mt_klang lang);
size_t mt__kgen_param_pack(mt_dtype dt, const mt_scalar *s, void *dst);
/* Appends a complete, exact text form of the expression (for in-memory kernel cache keys). */
void mt__kgen_key(mt_strbuf *sb, const mt_kexpr *e);

/* kexpr.c helpers. The value a CONST node computes with (its value converted to its dtype). */
mt_scalar mt__kexpr_const_value(const mt_knode *n);
/* live[k] = node k is reachable from an output. */
void mt__kexpr_live(const mt_kexpr *e, uint8_t *live);
bool mt__kexpr_uses_f64(const mt_kexpr *e); /* any live node or operand computes in double */
bool mt__kexpr_uses_index(const mt_kexpr *e); /* INDEX or RAND_* nodes are live */
/* dts[k] = dtype of param k for k < nparams (MT_DTYPE_COUNT when unused; RAND seeds and
 * offsets are MT_UINT64). ERR_INVALID naming the node when a param index is >= nparams or one
 * param is read with two dtypes. */
mt_status mt__kexpr_param_types(const mt_kexpr *e, int32_t nparams, mt_dtype *dts);
/* dts[i] = dtype of input i for i < nin (MT_DTYPE_COUNT when unread); ERR_INVALID when an
 * INPUT node reads arg >= nin. */
mt_status mt__kexpr_input_types(const mt_kexpr *e, int32_t nin, mt_dtype *dts);

/* elemwise.c: the source mt_elemwise would generate for these arguments in language lang
 * (tests and tools use it to compile CUDA / OpenCL renderings offline). params may be NULL. */
mt_status mt__elemwise_source(mt_strbuf *src, char *entry, size_t entry_len, mt_klang lang,
                              const mt_kexpr *expr, int32_t nin, const mt_array *const *inputs,
                              mt_array *const *outputs, int32_t nparams,
                              const mt_scalar *params);

/* kinterp.c: the interpreter fallback on host memory. ptrs/strides per arg (inputs then
 * outputs; nargs - e->nouts inputs) over a collapsed shape; runs the elements [begin, end) of
 * the flat C-order index (which is also INDEX). params as the PARAM / RAND nodes index them (the
 * caller checked them with mt__kexpr_param_types). Same results as the generated code. */
mt_status mt__kinterp_run(const mt_kexpr *e, int32_t nargs, char *const *ptrs,
                          const int64_t *const *strides, int32_t ndim, const int64_t *dims,
                          const mt_scalar *params, int64_t begin, int64_t end);

/* Collapses contiguous dimensions over several stride sets in place; returns new ndim.
 * Drops length-1 dimensions and merges dim k into k+1 when, for every set s,
 * strides[s][k] == strides[s][k+1] * dims[k+1]. Dims keep their order (C order is preserved,
 * so a flat index over the result is the flat C index over the input shape). A shape with a
 * zero-length dim collapses to ndim 1, dims[0] = 0; a shape of size 1 to ndim 0. (elemwise.c) */
int32_t mt__collapse_dims(int32_t ndim, int64_t *dims, int32_t nsets, int64_t **strides);

/* hostcc.c: compiles C source with the system compiler into a shared object (disk cache under
 * MLTRAIN_CACHE_DIR), dlopens it and returns the entry symbol. ERR_NOT_BUILT when no compiler
 * (MLTRAIN_NO_CC=1, or the compiler cannot be run); ERR_COMPILE with the compiler's first lines
 * of output and the kept source path when the source does not compile. Thread-safe. */
mt_status mt__hostcc_build(const char *source, const char *entry, void **fn, void **dl_handle);
bool mt__hostcc_available(void);
/* hostcc.c: appended after one kernel's own part (body) in a group's source: an #undef of every
 * macro the part #defines, so none reaches the kernels after it (each kernel compiles exactly
 * as it does alone), and, for a macro of the prelude that the part redefined, the prelude's
 * definition again, continuation lines included. */
void mt__hostcc_undef_macros(mt_strbuf *src, const char *body, const char *prelude);
/* hostcc.c: whether a kernel batch (mt_kernel_batch_begin) is open on this thread, and pausing
 * its recording (nested pairs): while paused, kernels missing from the caches are reported as
 * MT_ERR_NOT_BUILT without being recorded (for the helper kernels of an interpreted fallback,
 * which the real run never needs). */
bool mt__hostcc_batch_open(void);
void mt__hostcc_batch_pause(bool pause);

/* hostcc.c: the kernel disk cache, shared by every backend that stores compiled code.
 * mt__kcache_open resolves MLTRAIN_CACHE_DIR (else $XDG_CACHE_HOME/mltrain, else
 * ~/.cache/mltrain; created 0700) and checks it: a directory not owned by the user or writable
 * by group/others is refused with a warning (logged once per directory, naming owner, mode and
 * the fix) and a private temporary directory is used instead (kc->temp; mt__kcache_close
 * removes it). MLTRAIN_CACHE_READONLY=DIR adds a shared cache that is read first and never
 * written (any owner, but not writable by others). Entries are published 0600 with a trailer
 * holding their length and checksum (mt_hash64); reads verify it (and the file's owner and mode), and an
 * entry that fails is logged, removed from the user's own directory, and reported as a miss,
 * so the caller rebuilds it. Names are plain file names (no '/'). */
typedef struct mt_kcache {
    char dir[3072];    /* entries are read and written here */
    char ro_dir[3072]; /* shared read-only cache, "" if none */
    bool temp;         /* dir is a private temporary directory */
} mt_kcache;
typedef enum mt_kcache_where {
    MT_KCACHE_ANY, /* the shared read-only cache first, then dir */
    MT_KCACHE_OWN  /* dir only (e.g. right after publishing there) */
} mt_kcache_where;
mt_status mt__kcache_open(mt_kcache *kc);
void mt__kcache_close(mt_kcache *kc);
/* MT_OK, or MT_ERR_IO with the refusal message (owner, mode, the fix). */
mt_status mt__kcache_check_dir(const char *dir, bool shared_readonly);
/* A verified entry's payload (NUL-terminated beyond *len; mt_free it) and its path; false on a
 * miss or a bad entry. */
bool mt__kcache_read(const mt_kcache *kc, const char *name, mt_kcache_where where, char **data,
                     size_t *len, char *path, size_t plen);
/* dlopen of a verified entry. MT_ERR_NOT_FOUND: no valid entry; MT_ERR_NOT_BUILT: dlopen failed. */
mt_status mt__kcache_dlopen(const mt_kcache *kc, const char *name, mt_kcache_where where,
                            void **dl, char *path, size_t plen);
/* A file's checksum is computed once per process: later opens of the same file (another hard
 * link, or a reload) with the same device, inode, size, mtime and ctime skip the hashing (owner
 * and mode are checked every time). This forgets every file (benchmarks: a fresh process). */
void mt__kcache_forget_verified(void);
/* How many entry payloads this process has hashed so far (a verification the memo above did
 * not spare; for tests). */
int64_t mt__kcache_checksum_count(void);
/* Publishes data as kc->dir/name (temporary, trailer, 0600, rename). */
mt_status mt__kcache_write(const mt_kcache *kc, const char *name, const void *data, size_t len);
/* Publishes the file tmp_path (a temporary in kc->dir, consumed) as kc->dir/name. */
mt_status mt__kcache_publish_file(const mt_kcache *kc, const char *tmp_path, const char *name);

/* hostcc.c: a compiler that builds shared objects into the kernel cache (the host C compiler,
 * the cudaemu device's host C++ compiler). */
#define MT_CC_MAX_FLAGS 16
typedef struct mt_cc_spec {
    const char *cmd;          /* the command, split on blanks ("ccache gcc") */
    const char *const *flags; /* before "-o OUT SOURCE -lm"; at most MT_CC_MAX_FLAGS */
    size_t nflags;
    const char *ext;     /* the source's extension: ".c", ".cpp" */
    const char *who;     /* the compiler in messages: "host compiler" */
    const char *log_tag; /* the debug log's prefix: "hostcc" */
    int64_t *runs;       /* counts compiler runs (atomic adds), or NULL */
    int64_t *compiled;   /* counts entries compiled (atomic adds), or NULL */
} mt_cc_spec;
/* Compiles source into the kernel cache as kc->dir/name: temporaries (source, object, log) in
 * kc->dir named after stem, stale ones of killed processes removed first; the object published
 * with mt__kcache_publish_file. ERR_NOT_BUILT when the compiler cannot be started; ERR_COMPILE
 * with the compiler's first lines of output, the source kept as <stem>-failed<ext>.
 * MLTRAIN_KEEP_KERNEL_SOURCE=1 keeps the source of a published entry as <stem><ext>. entry
 * names the kernel in messages. */
mt_status mt__kcache_compile_publish(const mt_kcache *kc, const mt_cc_spec *cc, const char *stem,
                                     const char *source, const char *entry, const char *name);

#endif /* MT_GPUARRAY_IMPL_H */
