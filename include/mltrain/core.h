/* mltrain core: status codes and error messages, logging, allocator hooks, string builder,
 * hashing, dtypes (with exact 16-bit float conversions), the Philox counter-based generator,
 * a small thread pool and atomic file writes.
 * Nothing here knows about devices or machine learning. */
#ifndef MLTRAIN_CORE_H
#define MLTRAIN_CORE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- status codes and errors */

/* X(NAME, value, description). The enum and mt_status_str() are both generated from it. */
#define MT_STATUS_MAP(X)                                                        \
    X(OK, 0, "success")                                                         \
    X(ERR_NOMEM, -1, "out of memory")                                           \
    X(ERR_INVALID, -2, "invalid argument")                                      \
    X(ERR_SHAPE, -3, "shape mismatch")                                          \
    X(ERR_DTYPE, -4, "unsupported or mismatched dtype")                         \
    X(ERR_UNSUPPORTED, -5, "operation not supported by this backend")           \
    X(ERR_DEVICE, -6, "device runtime error")                                   \
    X(ERR_COMPILE, -7, "kernel compilation failed")                             \
    X(ERR_COMM, -8, "communication error")                                      \
    X(ERR_IO, -9, "input/output error")                                         \
    X(ERR_FORMAT, -10, "malformed or corrupt data")                             \
    X(ERR_NOT_BUILT, -11, "feature not built into this mltrain")                \
    X(ERR_NOT_FOUND, -12, "not found")                                          \
    X(ERR_TIMEOUT, -13, "timed out")                                            \
    X(ERR_RANGE, -14, "value out of range")                                     \
    X(ERR_INTERNAL, -15, "internal error")

typedef enum mt_status {
#define MT__STATUS_ENUM(name, val, desc) MT_##name = (val),
    MT_STATUS_MAP(MT__STATUS_ENUM)
#undef MT__STATUS_ENUM
    MT_STATUS_COUNT = 16
} mt_status;

/* Short name of a status ("ERR_SHAPE"); never NULL. */
const char *mt_status_name(mt_status st);
/* One-line description of a status ("shape mismatch"); never NULL. */
const char *mt_status_str(mt_status st);

/* Error messages live in one thread-local slot per thread: every fallible call that fails
 * records its status and a message naming what failed and why, and returns that status.
 * The slot is overwritten by the next failure on the same thread; successes leave it alone. */
#define MT_ERR_MSG_MAX 1024

/* Records (code, message) in the calling thread's slot and returns code. */
mt_status mt_err_set(mt_status code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
mt_status mt_err_setv(mt_status code, const char *fmt, va_list ap);
/* Prepends context to the current message ("npy 'x.npy': " + msg) and returns code. */
mt_status mt_err_prefix(mt_status code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Records an errno failure: "<what>: <strerror(errnum)>" with MT_ERR_IO (or NOMEM). */
mt_status mt_err_errno(int errnum, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The last message recorded on this thread ("" if none). Valid until the next failure. */
const char *mt_last_error(void);
mt_status mt_last_status(void);
void mt_err_clear(void);

/* Internal-invariant assertion: always on; prints file:line and the condition, then aborts.
 * Never use it on user input, files, shapes from user graphs, OOM or device failures. */
#define MT_ASSERT(cond)                                                          \
    do {                                                                         \
        if (!(cond)) mt__assert_fail(__FILE__, __LINE__, #cond);                 \
    } while (0)
_Noreturn void mt__assert_fail(const char *file, int line, const char *cond);

/* ---------------------------------------------------------------- logging */

typedef enum mt_log_level {
    MT_LOG_DEBUG = 0,
    MT_LOG_INFO,
    MT_LOG_WARN,
    MT_LOG_ERROR,
    MT_LOG_LEVEL_COUNT
} mt_log_level;

typedef void (*mt_log_fn)(mt_log_level level, const char *msg, void *user);

/* The library never prints to stdout; it logs through this callback (default: stderr for
 * WARN and above, or for the level set by MLTRAIN_LOG=debug|info|warn|error). */
void mt_log_set_callback(mt_log_fn fn, void *user);
void mt_log_set_level(mt_log_level level);
mt_log_level mt_log_get_level(void);
void mt_log(mt_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---------------------------------------------------------------- allocation */

/* All host allocations of the library go through these. mt_malloc etc. return NULL on
 * failure (and record ERR_NOMEM); they never abort. */
void *mt_malloc(size_t n);
void *mt_calloc(size_t count, size_t size);
void *mt_realloc(void *p, size_t n);
void mt_free(void *p);
char *mt_strdup(const char *s);
void *mt_aligned_alloc(size_t align, size_t n); /* free with mt_aligned_free */
void mt_aligned_free(void *p);

/* Bump allocator (graph nodes, parsed documents): allocations live until mt_arena_free and
 * never move. Chunks come from mt_malloc; a request larger than a quarter chunk gets its own
 * chunk, placed after the current one so that small requests keep filling it. A zeroed
 * mt_arena is empty. An allocation failure returns NULL (mt_malloc has recorded ERR_NOMEM). */
typedef struct mt_arena_chunk mt_arena_chunk;
typedef struct mt_arena {
    mt_arena_chunk *head;
    size_t used;     /* bytes handed out */
    size_t reserved; /* bytes obtained from mt_malloc */
} mt_arena;
void *mt_arena_alloc(mt_arena *a, size_t n, size_t align); /* align: a power of two; not zeroed */
void *mt_arena_calloc(mt_arena *a, size_t n);              /* zeroed, 16-byte aligned */
char *mt_arena_strdup(mt_arena *a, const char *s);         /* NULL s -> NULL */
char *mt_arena_strndup(mt_arena *a, const char *s, size_t n); /* n bytes + '\0' */
void mt_arena_free(mt_arena *a); /* frees every chunk; the arena is empty again */

typedef struct mt_allocator {
    void *(*malloc_fn)(size_t);
    void *(*realloc_fn)(void *, size_t);
    void *(*calloc_fn)(size_t, size_t);
    void (*free_fn)(void *);
} mt_allocator;
/* Replaces the host allocator (NULL restores the default). Call before any other call. */
void mt_set_allocator(const mt_allocator *a);
/* Fault injection for tests: the n-th allocation from now fails (0 disables). */
void mt_alloc_fail_after(int64_t n);

/* ---------------------------------------------------------------- string builder */

typedef struct mt_strbuf {
    char *data; /* always NUL-terminated once anything was appended */
    size_t len;
    size_t cap;
    bool failed; /* an allocation failed; contents are truncated */
} mt_strbuf;

void mt_strbuf_init(mt_strbuf *sb);
void mt_strbuf_deinit(mt_strbuf *sb);
void mt_strbuf_clear(mt_strbuf *sb); /* length 0, keeps capacity */
void mt_strbuf_append(mt_strbuf *sb, const char *s);
void mt_strbuf_appendn(mt_strbuf *sb, const char *s, size_t n);
void mt_strbuf_appendf(mt_strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mt_strbuf_appendv(mt_strbuf *sb, const char *fmt, va_list ap);
/* Appends every line of text (the last one may lack its newline) with indent before it and a
 * newline after it (generated kernel sources). */
void mt_strbuf_append_indented(mt_strbuf *sb, const char *text, const char *indent);
/* MT_OK, or MT_ERR_NOMEM (recorded) if any append failed. */
mt_status mt_strbuf_status(const mt_strbuf *sb);
/* Moves the buffer out (caller frees with mt_free); sb is left empty. */
char *mt_strbuf_take(mt_strbuf *sb);

/* Edit distance for "did you mean" hints: optimal string alignment (insertions, deletions,
 * substitutions and adjacent transpositions cost one each), comparing ASCII letters without
 * case when fold_case. Words compare by their first 64 bytes. Returns cap + 1 as soon as the
 * distance must exceed cap. */
int32_t mt_edit_distance(const char *a, const char *b, int32_t cap, bool fold_case);

/* ---------------------------------------------------------------- hashing */

uint64_t mt_hash64(const void *data, size_t n, uint64_t seed); /* fast, non-cryptographic */
uint64_t mt_hash64_combine(uint64_t h, uint64_t v);

typedef struct mt_sha256 {
    uint32_t state[8];
    uint64_t nbytes;
    uint8_t block[64];
    size_t fill;
} mt_sha256;
void mt_sha256_init(mt_sha256 *s);
void mt_sha256_update(mt_sha256 *s, const void *data, size_t n);
void mt_sha256_final(mt_sha256 *s, uint8_t out[32]);
/* SHA-256 of a buffer as 64 lowercase hex digits plus NUL. */
void mt_sha256_hex(const void *data, size_t n, char out[65]);

/* ---------------------------------------------------------------- dtypes */

/* X(NAME, name, size, kind) where kind is 'b' bool, 'i' signed, 'u' unsigned, 'f' float. */
#define MT_DTYPE_MAP(X)            \
    X(BOOL, "bool", 1, 'b')        \
    X(INT8, "int8", 1, 'i')        \
    X(INT16, "int16", 2, 'i')      \
    X(INT32, "int32", 4, 'i')      \
    X(INT64, "int64", 8, 'i')      \
    X(UINT8, "uint8", 1, 'u')      \
    X(UINT16, "uint16", 2, 'u')    \
    X(UINT32, "uint32", 4, 'u')    \
    X(UINT64, "uint64", 8, 'u')    \
    X(FLOAT16, "float16", 2, 'f')  \
    X(BFLOAT16, "bfloat16", 2, 'f') \
    X(FLOAT32, "float32", 4, 'f')  \
    X(FLOAT64, "float64", 8, 'f')

typedef enum mt_dtype {
#define MT__DTYPE_ENUM(name, str, size, kind) MT_##name,
    MT_DTYPE_MAP(MT__DTYPE_ENUM)
#undef MT__DTYPE_ENUM
    MT_DTYPE_COUNT
} mt_dtype;

const char *mt_dtype_name(mt_dtype dt);          /* "float32"; "invalid" if out of range */
size_t mt_dtype_size(mt_dtype dt);               /* bytes per element; 0 if invalid */
char mt_dtype_kind(mt_dtype dt);                 /* 'b', 'i', 'u', 'f'; 0 if invalid */
bool mt_dtype_valid(mt_dtype dt);
bool mt_dtype_is_float(mt_dtype dt);
bool mt_dtype_is_int(mt_dtype dt);               /* signed or unsigned integer, not bool */
/* Parses "float32", "f32", "float", "double", "int", "half", "bf16", ...; ERR_DTYPE if unknown. */
mt_status mt_dtype_from_name(mt_dtype *out, const char *name);
/* NumPy's result_type for two array dtypes (e.g. int8+uint8 -> int16, int64+uint64 -> float64,
 * float16+bfloat16 -> float32). */
mt_dtype mt_dtype_promote(mt_dtype a, mt_dtype b);

/* IEEE binary16 and bfloat16 conversions, round to nearest even, NaN kept quiet, overflow to
 * +-inf, subnormals exact. The 64-bit forms round once (no double rounding through float). */
uint16_t mt_f32_to_f16(float f);
uint16_t mt_f64_to_f16(double d);
float mt_f16_to_f32(uint16_t h);
uint16_t mt_f32_to_bf16(float f);
uint16_t mt_f64_to_bf16(double d);
float mt_bf16_to_f32(uint16_t h);

/* Converts n elements between dtypes (host memory, element strides in bytes), giving what
 * NumPy gives on x86-64 for all 13 x 13 pairs: float->int truncates toward zero; NaN, inf and
 * out-of-range float->int64/int32 give INT64_MIN/INT32_MIN, narrower ints go through the int32
 * rule and keep the low bits, uint32/uint64 follow the compilers' unsigned sequence (the full
 * rules are at the top of src/core/dtype.c and in docs/gpuarray.md); int->narrower int wraps;
 * int->float rounds once to nearest even; anything->bool is (x != 0), NaN -> true. */
void mt_dtype_convert(void *dst, mt_dtype dst_dt, ptrdiff_t dst_stride, const void *src,
                      mt_dtype src_dt, ptrdiff_t src_stride, size_t n);

/* A scalar value of some dtype (for fills, constants, kernel parameters). */
typedef struct mt_scalar {
    mt_dtype dtype;
    union {
        bool b;
        int64_t i;
        uint64_t u;
        double f;
    } v;
} mt_scalar;
mt_scalar mt_scalar_f64(double v);
mt_scalar mt_scalar_i64(int64_t v);
mt_scalar mt_scalar_u64(uint64_t v);
mt_scalar mt_scalar_bool(bool v);
/* Stores the scalar converted to dtype dt at dst (mt_dtype_size(dt) bytes). */
void mt_scalar_store(const mt_scalar *s, mt_dtype dt, void *dst);
double mt_scalar_as_f64(const mt_scalar *s);

/* ---------------------------------------------------------------- Philox4x32-10 */

/* The counter-based generator used on every backend (same numbers for the same key and counter).
 * out = Philox4x32-10(counter, key). */
void mt_philox4x32(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]);
/* uint32 -> float32 in [0, 1): (x >> 8) * 2^-24. */
float mt_u32_to_unit_f32(uint32_t x);
/* two uint32 -> float64 in [0, 1) with 53 random bits. */
double mt_u64_to_unit_f64(uint32_t hi, uint32_t lo);

/* ---------------------------------------------------------------- thread pool */

typedef struct mt_threadpool mt_threadpool;
typedef void (*mt_parallel_fn)(void *ctx, int64_t begin, int64_t end, int thread);

/* nthreads <= 0: MLTRAIN_NUM_THREADS, else the CPUs available to this process. */
mt_status mt_threadpool_new(mt_threadpool **out, int nthreads);
void mt_threadpool_free(mt_threadpool *tp);
int mt_threadpool_size(const mt_threadpool *tp);
/* Splits [0, n) into at most size() contiguous chunks of at least min_chunk items and runs fn on
 * them, the calling thread taking one. Returns when all are done. Not reentrant from fn. */
void mt_threadpool_run(mt_threadpool *tp, int64_t n, int64_t min_chunk, mt_parallel_fn fn,
                       void *ctx);
/* The number of CPUs this process may run on (sched_getaffinity). */
int mt_cpu_count(void);

/* ---------------------------------------------------------------- time */

double mt_now_seconds(void); /* monotonic clock */

/* ---------------------------------------------------------------- files */

/* Reads a whole file (caller frees *out with mt_free; a NUL byte is appended, not counted).
 * max_bytes > 0 refuses larger files with ERR_RANGE naming the file and its size. */
mt_status mt_file_read_all(const char *path, char **out, size_t *len, size_t max_bytes);
/* Writes atomically: temporary file in the same directory, fsync, rename. Never leaves a
 * partial file at path; a failure (full disk) keeps the previous content. mode e.g. 0644. */
mt_status mt_file_write_atomic(const char *path, const void *data, size_t len, unsigned mode);
/* mkdir -p with the given mode for created directories. */
mt_status mt_mkdirs(const char *path, unsigned mode);

/* ---------------------------------------------------------------- shared vocabularies */

/* The most dimensions an array or graph variable can have. */
#define MT_MAX_DIMS 8

/* Scalar operations: the vocabulary shared by the graph's elementwise ops and the kernel
 * generator (gpuarray's mt_kexpr). */
/* X(NAME, arity, text) */
#define MT_SOP_MAP(X)            \
    X(INPUT, 0, "in")           \
    X(CONST, 0, "const")        \
    X(PARAM, 0, "param")        \
    X(INDEX, 0, "index")        \
    X(CAST, 1, "cast")          \
    X(NEG, 1, "neg")            \
    X(ABS, 1, "abs")            \
    X(SIGN, 1, "sign")          \
    X(RECIP, 1, "recip")        \
    X(SQUARE, 1, "sqr")         \
    X(SQRT, 1, "sqrt")          \
    X(RSQRT, 1, "rsqrt")        \
    X(EXP, 1, "exp")            \
    X(EXP2, 1, "exp2")          \
    X(EXPM1, 1, "expm1")        \
    X(LOG, 1, "log")            \
    X(LOG2, 1, "log2")          \
    X(LOG10, 1, "log10")        \
    X(LOG1P, 1, "log1p")        \
    X(LOG1MEXP, 1, "log1mexp")  \
    X(SIN, 1, "sin")            \
    X(COS, 1, "cos")            \
    X(TAN, 1, "tan")            \
    X(ASIN, 1, "asin")          \
    X(ACOS, 1, "acos")          \
    X(ATAN, 1, "atan")          \
    X(SINH, 1, "sinh")          \
    X(COSH, 1, "cosh")          \
    X(TANH, 1, "tanh")          \
    X(ERF, 1, "erf")            \
    X(ERFC, 1, "erfc")          \
    X(SIGMOID, 1, "sigmoid")    \
    X(SOFTPLUS, 1, "softplus")  \
    X(RELU, 1, "relu")          \
    X(FLOOR, 1, "floor")        \
    X(CEIL, 1, "ceil")          \
    X(ROUND, 1, "round")        \
    X(TRUNC, 1, "trunc")        \
    X(ISNAN, 1, "isnan")        \
    X(ISINF, 1, "isinf")        \
    X(ISFINITE, 1, "isfinite")  \
    X(NOT, 1, "not")            \
    X(BITNOT, 1, "bitnot")      \
    X(ADD, 2, "add")            \
    X(SUB, 2, "sub")            \
    X(MUL, 2, "mul")            \
    X(DIV, 2, "div")            \
    X(FLOORDIV, 2, "floordiv")  \
    X(MOD, 2, "mod")            \
    X(POW, 2, "pow")            \
    X(MAX, 2, "max")            \
    X(MIN, 2, "min")            \
    X(ATAN2, 2, "atan2")        \
    X(LOGADDEXP, 2, "logaddexp") \
    X(EQ, 2, "eq")              \
    X(NE, 2, "ne")              \
    X(LT, 2, "lt")              \
    X(LE, 2, "le")              \
    X(GT, 2, "gt")              \
    X(GE, 2, "ge")              \
    X(AND, 2, "and")            \
    X(OR, 2, "or")              \
    X(XOR, 2, "xor")            \
    X(BITAND, 2, "bitand")      \
    X(BITOR, 2, "bitor")        \
    X(BITXOR, 2, "bitxor")      \
    X(LSHIFT, 2, "lshift")      \
    X(RSHIFT, 2, "rshift")      \
    X(WHERE, 3, "where")        \
    X(RAND_UNIFORM, 0, "rand_uniform") \
    X(RAND_NORMAL, 0, "rand_normal")

typedef enum mt_sop {
#define MT__SOP_ENUM(name, arity, text) MT_SOP_##name,
    MT_SOP_MAP(MT__SOP_ENUM)
#undef MT__SOP_ENUM
    MT_SOP_COUNT
} mt_sop;

const char *mt_sop_name(mt_sop op);
int mt_sop_arity(mt_sop op);

/* Reductions, shared by graph reduce ops and gpuarray's reduction kernels. */
typedef enum mt_reduce_op {
    MT_REDUCE_SUM = 0,
    MT_REDUCE_PROD,
    MT_REDUCE_MAX,
    MT_REDUCE_MIN,
    MT_REDUCE_ARGMAX, /* int64 index into the reduced axes (C order over them) */
    MT_REDUCE_ARGMIN,
    MT_REDUCE_MEAN,
    MT_REDUCE_ALL,    /* bool */
    MT_REDUCE_ANY,    /* bool */
    MT_REDUCE_OP_COUNT
} mt_reduce_op;
const char *mt_reduce_op_name(mt_reduce_op op);
/* NumPy's result dtype of a reduction (sum of int32 -> int64, mean of int -> float64, ...). */
mt_dtype mt_reduce_result_dtype(mt_reduce_op op, mt_dtype in);

#ifdef __cplusplus
}
#endif
#endif /* MLTRAIN_CORE_H */
