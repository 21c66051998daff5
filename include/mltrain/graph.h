/* mltrain graph: the typed, hash-consed IR of the symbolic compiler.
 *
 * A graph (mt_graph, opaque) owns every node in arenas; nodes are freed only with
 * mt_graph_free. A variable is a handle (mt_var, a positive int32); 0 is MT_VAR_NONE. Every
 * node has exactly one output, so a node and its variable share the handle. Ops that NumPy
 * defines with several results (split) are built as several nodes.
 *
 * Nodes are immutable and created through builders. Creation is hash-consed: building
 * (op, attributes, operands) that already exists returns the existing variable, so equal
 * subexpressions are one node and no merge pass is needed. Placeholders and random nodes are
 * never merged. Operands always precede their users, so creation order is a deterministic
 * topological order.
 *
 * Errors never abort. A builder that fails returns MT_VAR_NONE and records the error; a builder
 * given an MT_VAR_NONE operand returns MT_VAR_NONE without a new message. The FIRST error is kept
 * in the graph (sticky: mt_graph_status / mt_graph_last_error) and every failure is also written
 * to the thread-local slot (mt_last_error). So callers build a whole expression and check once:
 *
 *     mt_var y = mt_graph_add(g, mt_graph_mul(g, a, b), c);
 *     if (mt_graph_status(g)) fprintf(stderr, "%s\n", mt_graph_last_error(g));
 *
 * Messages name the op, the operand types and where the node came from:
 *     "add: shapes (3, 4) and (5,) do not broadcast (at model.c:42)"
 *
 * Types. A variable's type is (dtype, ndim, per-dimension static size or -1 = unknown, weak).
 * A dimension broadcasts only when its static size is 1 (as in PyTensor): when broadcasting
 * two dimensions, static 1 yields the other; unknown and static k > 1 give k with a run-time
 * check that the unknown one is k; unknown and unknown give unknown with a run-time check that
 * they are equal. A dimension whose size is unknown is never broadcast at run time; that keeps
 * gradients (which sum over broadcast dimensions) correct. Nodes whose shape rule could not be
 * verified statically carry MT_NODE_RTCHECK; the executor verifies them with
 * mt_graph_eval_shape, whose error message names both shapes and the node's provenance.
 *
 * Dtypes follow NumPy (mt_dtype_promote), with NumPy 2 (NEP 50) "weak" Python scalars:
 * literals made with mt_graph_literal_int / mt_graph_literal_float have a weak type and take
 * the other operand's dtype when the kinds allow it (x_float32 * 2.0 -> float32,
 * x_int8 + 1 -> int8, x_int32 + 1.5 -> float64, x_bool + 1 -> int64; an int literal that does
 * not fit the array's integer dtype is an ERR_RANGE error as in NumPy 2 — also in comparisons,
 * which NumPy 2 evaluates exactly instead). Elementwise ops of
 * only weak operands give weak results (like Python arithmetic on literals). Constants made
 * with mt_graph_scalar / mt_graph_constant are strong (like np.float32(2)).
 *
 * Elementwise contract (what the JIT relies on). An ELEMWISE node's operands all have the
 * node's ndim (builders prepend broadcast axes with DIMSHUFFLE, or reshape constants), and each
 * operand dimension is either statically 1 (broadcast) or equal to the node's dimension. Operand
 * dtypes are made equal by implicit CAST nodes (or converted constants), so the node maps 1:1 to
 * a gpuarray kernel expression: comparisons and logical ops take operands of one dtype and give
 * bool; WHERE takes a bool condition and branches of the node's dtype; CAST takes any dtype.
 * Floating functions of integer operands compute in NumPy's float type (bool/int8/uint8 ->
 * float16, int16/uint16 -> float32, wider -> float64); true division of integers gives float64.
 * floor/ceil/trunc of integers give floats and round of integers is the identity (NumPy 1.24).
 *
 * Provenance. Every node records where it came from: a C call site (file:line, set with
 * MT_AT(g) or mt_graph_set_origin) or a span of a source text (the expression parser calls
 * mt_graph_set_origin_span), plus the names of the rewrites that produced it. The graph keeps a
 * "current origin" that builders copy into every node they create (composite builders give all
 * their nodes the same origin). A node found by hash-consing keeps its first provenance.
 *
 * Rewrites. Nodes are immutable; a rewrite builds replacement nodes (with mt_graph_make /
 * mt_graph_rebuild or any builder, usually after mt_graph_set_origin_from(g, old, "rule") so the
 * new nodes carry the user's expression and the rule name) and then either
 *   - records mt_graph_replace(g, old, new, rule) and finally calls
 *     mt_graph_apply_replacements(g, n, outputs), which rebuilds (hash-consed, appended) every
 *     node that depends on a replaced one and updates the outputs; or
 *   - sweeps the nodes in topological order with its own old->new map, calling
 *     mt_graph_rebuild(g, v, mapped_inputs) for each node before matching rules on it
 *     (one linear pass; the form a worklist engine uses).
 * Old nodes stay in the graph as garbage until the graph is freed; mt_graph_toposort from the
 * outputs only returns live nodes, and mt_graph_clone_with copies the live part into a fresh
 * graph when compaction is wanted.
 *
 * Thread safety: a graph is used by one thread at a time; different graphs are independent. */
#ifndef MLTRAIN_GRAPH_H
#define MLTRAIN_GRAPH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mltrain/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- handles and types */

typedef struct mt_graph mt_graph; /* opaque; owns all nodes */
typedef int32_t mt_var;           /* node/variable handle; 1..mt_graph_size(g) */
#define MT_VAR_NONE 0

#define MT_DIM_UNKNOWN (-1)

/* The static type of a variable. shape[i] is the static size or MT_DIM_UNKNOWN (-1); entries
 * at i >= ndim are 0. `weak` marks a 0-d Python-literal-like value (NEP 50, see above). */
typedef struct mt_type {
    mt_dtype dtype;
    int32_t ndim;
    int64_t shape[MT_MAX_DIMS];
    bool weak;
} mt_type;

/* A strong type (entries past ndim zeroed; shape NULL means all unknown). ndim is clamped to
 * [0, MT_MAX_DIMS]; use the builders for checked construction. */
mt_type mt_type_make(mt_dtype dt, int32_t ndim, const int64_t *shape);
bool mt_type_equal(const mt_type *a, const mt_type *b);
/* Product of the sizes, or -1 if any size is unknown (1 for 0-d). */
int64_t mt_type_numel(const mt_type *t);
/* true when every size is static. */
bool mt_type_is_static(const mt_type *t);
/* "float32[3,?]" ("float64[] weak" for weak literals). */
void mt_type_format(const mt_type *t, mt_strbuf *sb);
/* NumPy-style shape text "(3, ?)", "(5,)", "()". */
void mt_shape_format(int32_t ndim, const int64_t *shape, mt_strbuf *sb);

/* ---------------------------------------------------------------- ops */

/* How an op lowers (for the JIT):
 *   LEAF       placeholder or constant (bound or embedded, no code)
 *   ELEMWISE   one scalar expression (attrs.sop) over broadcast operands: fusable
 *   REDUCTION  a reduction (attrs.reduce over attrs.axes); may end a fused elementwise kernel
 *   LIBRARY    a library call (BLAS gemm)
 *   VIEW       a view of its first operand where strides allow (reshape may need a copy);
 *              STOP_GRADIENT / GRAD_CLIP / SHAPE_ASSERT are identities at run time
 *   OTHER      an op-specific kernel (softmax, gather, concat, random, ...)
 *   COLLECTIVE a communication step over a group of processes (ALLREDUCE): the executor starts
 *              it through mt_function_options.collectives and waits for it where its result is
 *              first read; never fused, folded or evaluated at compile time */
typedef enum mt_lowering {
    MT_LOWER_LEAF = 0,
    MT_LOWER_ELEMWISE,
    MT_LOWER_REDUCTION,
    MT_LOWER_LIBRARY,
    MT_LOWER_VIEW,
    MT_LOWER_OTHER,
    MT_LOWER_COLLECTIVE,
    MT_LOWER_COUNT
} mt_lowering;

/* X(NAME, "name", arity, lowering). arity -1: variadic (bounds in the op table). The
 * attributes each op uses are listed in mt_op_attrs. Operand order is as listed. */
#define MT_OP_MAP(X)                                                                         \
    /* leaves */                                                                             \
    X(INPUT, "input", 0, MT_LOWER_LEAF)          /* placeholder: uid, dtype, shape */        \
    X(CONST, "const", 0, MT_LOWER_LEAF)          /* data (C order), dtype, shape, weak */    \
    /* elementwise: 1..3 operands, attrs.sop (CAST: type's dtype is the target) */           \
    X(ELEMWISE, "elemwise", -1, MT_LOWER_ELEMWISE)                                           \
    /* reductions: attrs.reduce, axes (sorted, non-negative), keepdims */                    \
    X(REDUCE, "reduce", 1, MT_LOWER_REDUCTION)                                               \
    X(LOGSUMEXP, "logsumexp", 1, MT_LOWER_OTHER) /* stable; axes, keepdims */                \
    X(SIZE, "size", 1, MT_LOWER_OTHER)           /* int64 0-d: prod of sizes over axes */   \
    /* nnet (stable first-class ops): axis = attrs.axes[0] */                                \
    X(SOFTMAX, "softmax", 1, MT_LOWER_OTHER)                                                 \
    X(LOGSOFTMAX, "logsoftmax", 1, MT_LOWER_OTHER)                                           \
    X(XENT, "crossentropy", 2, MT_LOWER_OTHER)   /* (probs, target probs): -sum t*log p */   \
    X(XENT_LABELS, "crossentropy_labels", 2, MT_LOWER_OTHER) /* (probs, int labels) */       \
    X(SOFTMAX_XENT, "softmax_crossentropy", 2, MT_LOWER_OTHER) /* (logits, target probs) */  \
    X(SOFTMAX_XENT_LABELS, "softmax_crossentropy_labels", 2, MT_LOWER_OTHER)                 \
    /* (gz, logits, labels): gz * (softmax - onehot), formed by a rewrite; no gradient */    \
    X(SOFTMAX_XENT_LABELS_DX, "softmax_crossentropy_labels_dx", 3, MT_LOWER_OTHER)           \
    /* products */                                                                           \
    X(MATMUL, "matmul", 2, MT_LOWER_LIBRARY)     /* both ndim >= 2, equal ndim */            \
    X(GEMM, "gemm", 3, MT_LOWER_LIBRARY)         /* alpha*op(a)@op(b) + beta*c */            \
    /* shape and views */                                                                    \
    X(RESHAPE, "reshape", 1, MT_LOWER_VIEW)      /* attrs.shape (spec, see below) */         \
    X(DIMSHUFFLE, "dimshuffle", 1, MT_LOWER_VIEW) /* attrs.perm */                           \
    X(BROADCAST_TO, "broadcast_to", 1, MT_LOWER_VIEW) /* attrs.shape (static target) */      \
    X(BROADCAST_LIKE, "broadcast_like", 2, MT_LOWER_VIEW) /* (x, ref): x to ref's shape */   \
    X(CONCAT, "concatenate", -1, MT_LOWER_OTHER) /* axis = attrs.axes[0] */                  \
    X(SLICE, "slice", 1, MT_LOWER_VIEW)          /* attrs.idx (basic indexing) */            \
    X(SET_SUBTENSOR, "set_subtensor", 2, MT_LOWER_OTHER) /* (x, y): x[idx] = y */            \
    X(INC_SUBTENSOR, "inc_subtensor", 2, MT_LOWER_OTHER) /* (x, y): x[idx] += y */           \
    /* advanced indexing along one axis (attrs.axes[0]) */                                   \
    X(GATHER, "gather", 2, MT_LOWER_OTHER)       /* (x, idx): np.take(x, idx, axis) */       \
    X(SCATTER_ADD, "scatter_add", 3, MT_LOWER_OTHER) /* (x, idx, y): np.add.at on a copy */  \
    X(ONE_HOT, "one_hot", 1, MT_LOWER_OTHER)     /* (labels): attrs.depth, type's dtype */   \
    /* generators */                                                                         \
    X(ARANGE, "arange", 0, MT_LOWER_OTHER)       /* attrs.start/stop/step */                 \
    X(RANDOM, "random", -1, MT_LOWER_OTHER)      /* 0 operands, or 1 (shape reference) */    \
    /* gradient hooks and checks (identity at run time) */                                   \
    X(STOP_GRADIENT, "stop_gradient", 1, MT_LOWER_VIEW)                                      \
    X(GRAD_CLIP, "grad_clip", 1, MT_LOWER_VIEW)  /* gradient clipped to [p0, p1] */          \
    X(SHAPE_ASSERT, "shape_assert", 1, MT_LOWER_VIEW) /* attrs.shape, -1 = any */          \
    /* convolution and pooling over the last two axes of [N, C, H, W] (attrs.win) */          \
    X(CONV2D, "conv2d", 2, MT_LOWER_OTHER)       /* (x, w): cross-correlation */             \
    X(CONV2D_GRAD_INPUT, "conv2d_grad_input", 3, MT_LOWER_OTHER) /* (dy, w, x): x's shape */ \
    X(CONV2D_GRAD_WEIGHT, "conv2d_grad_weight", 2, MT_LOWER_OTHER) /* (x, dy): win.size */   \
    X(POOL2D, "pool2d", -1, MT_LOWER_OTHER)      /* (x), or (x, v): v at x's windows */      \
    X(POOL2D_GRAD, "pool2d_grad", 3, MT_LOWER_OTHER) /* (x, y, dy) -> dx */              \
    /* collectives (data parallelism) */                                                     \
    X(ALLREDUCE, "allreduce", 1, MT_LOWER_COLLECTIVE) /* sum over ranks; attrs.bucket */      \
    /* loops */                                                                              \
    X(SCAN, "scan", -1, MT_LOWER_OTHER) /* (sequences, initial states, non-sequences):      \
                                           attrs.body, attrs.output (mt_graph_scan) */

typedef enum mt_op {
#define MT__OP_ENUM(name, text, arity, lower) MT_OP_##name,
    MT_OP_MAP(MT__OP_ENUM)
#undef MT__OP_ENUM
    MT_OP_COUNT
} mt_op;

const char *mt_op_name(mt_op op);         /* "elemwise"; "invalid" if out of range */
int32_t mt_op_arity(mt_op op);            /* -1 for variadic ops */
mt_lowering mt_op_lowering(mt_op op);
const char *mt_lowering_name(mt_lowering k); /* "elemwise", "view", ... */

/* ---------------------------------------------------------------- op attributes */

/* One item of NumPy basic indexing (mirrors gpuarray's mt_slice, so the JIT maps it 1:1).
 * SLICE: start:stop:step with Python semantics, MT_IDX_NONE for an omitted start or stop
 * (step MT_IDX_NONE means 1; a step of 0 is an ERR_INVALID error). INT: `start` is the
 * index (negative counts from the end; removes the axis). NEWAXIS and ELLIPSIS only appear in
 * builder arguments: nodes store one SLICE or INT item per operand axis. */
#define MT_IDX_NONE INT64_MIN
typedef enum mt_idx_kind {
    MT_IDX_SLICE = 0,
    MT_IDX_INT,
    MT_IDX_NEWAXIS,
    MT_IDX_ELLIPSIS
} mt_idx_kind;
typedef struct mt_idx {
    mt_idx_kind kind;
    int64_t start, stop, step;
} mt_idx;
mt_idx mt_idx_slice(int64_t start, int64_t stop, int64_t step); /* MT_IDX_NONE allowed */
mt_idx mt_idx_all(void);                                         /* ':' */
mt_idx mt_idx_int(int64_t index);
mt_idx mt_idx_newaxis(void);
mt_idx mt_idx_ellipsis(void);

typedef enum mt_random_dist {
    MT_RANDOM_UNIFORM = 0, /* [p0, p1) */
    MT_RANDOM_NORMAL,      /* mean p0, standard deviation p1 */
    MT_RANDOM_BINOMIAL,    /* p0 trials (integer >= 0), success probability p1 */
    MT_RANDOM_DIST_COUNT
} mt_random_dist;

/* Pooling modes (POOL2D, POOL2D_GRAD: attrs.win.mode). */
typedef enum mt_pool_mode { MT_POOL_MAX = 0, MT_POOL_MEAN, MT_POOL_MODE_COUNT } mt_pool_mode;

/* Window attributes of the convolution and pooling ops (attrs.win). All int32, so the struct
 * has no padding bytes and hashes canonically; fields an op does not use are zero.
 *   size       POOL2D, POOL2D_GRAD: the pooling window; CONV2D_GRAD_WEIGHT: the kernel's
 *              spatial size (KH, KW); CONV2D, CONV2D_GRAD_INPUT: 0 (read from w)
 *   stride     >= 1 (every op)
 *   pad        >= 0, added on both sides (every op); conv: zeros; pooling: padded positions
 *              are never part of a window (as a window clipped to the input), pad < size
 *   mode       POOL2D, POOL2D_GRAD: mt_pool_mode
 *   ceil_mode  POOL2D, POOL2D_GRAD: 0 or 1 (see mt_graph_pool2d) */
typedef struct mt_window {
    int32_t size[2];
    int32_t stride[2];
    int32_t pad[2];
    int32_t mode;
    int32_t ceil_mode;
} mt_window;

/* Reshape spec entries (attrs.shape of RESHAPE): a size >= 0, -1 (MT_RESHAPE_INFER, at most one:
 * inferred from the element count) or MT_RESHAPE_KEEP (-2: the operand's size at the same axis,
 * like ONNX's 0; lets flatten keep an unknown batch dimension). */
#define MT_RESHAPE_INFER (-1)
#define MT_RESHAPE_KEEP (-2)

/* Attributes of a node. Only the fields listed for its op are meaningful; the others are zero
 * in stored nodes (builders and mt_graph_make canonicalize, so hash-consing compares them). */
typedef struct mt_op_attrs {
    mt_sop sop;             /* ELEMWISE */
    mt_reduce_op reduce;    /* REDUCE */
    mt_dtype dtype;         /* INPUT, CONST, ONE_HOT, ARANGE, RANDOM: result dtype; CAST:
                               the target (also the type's dtype) */
    int32_t naxes;          /* REDUCE, LOGSUMEXP, SIZE: axes (sorted, unique, >= 0; naxes 0 =
                               all axes); SOFTMAX, LOGSOFTMAX, XENT*, CONCAT, GATHER,
                               SCATTER_ADD: naxes = 1, axes[0] = the axis (>= 0) */
    int32_t axes[MT_MAX_DIMS];
    bool keepdims;          /* REDUCE, LOGSUMEXP */
    bool trans_a, trans_b;  /* GEMM */
    bool weak;              /* CONST: weak literal */
    int32_t nperm;          /* DIMSHUFFLE: output axis i is operand axis perm[i], or -1 for a new
                               broadcast axis; operand axes not listed must have size 1 (static,
                               or checked at run time) and are dropped */
    int32_t perm[MT_MAX_DIMS];
    int32_t nshape;         /* RESHAPE spec; BROADCAST_TO target; RANDOM static shape (when it
                               has no operand); SHAPE_ASSERT (-1 = any size); INPUT and CONST:
                               the shape (INPUT: -1 = unknown) */
    int64_t shape[MT_MAX_DIMS];
    int32_t nidx;           /* SLICE, SET_SUBTENSOR, INC_SUBTENSOR: one SLICE/INT item per axis
                               of the (first) operand */
    mt_idx idx[MT_MAX_DIMS];
    double alpha, beta;     /* GEMM */
    double start, stop, step; /* ARANGE (NumPy arange semantics; computed in attrs.dtype) */
    double p0, p1;          /* RANDOM parameters (mt_random_dist); GRAD_CLIP bounds [p0, p1] */
    mt_random_dist dist;    /* RANDOM */
    uint64_t seed;          /* RANDOM: Philox key = (seed, stream) */
    uint64_t stream;        /* RANDOM: unique per random node in the graph (never merged) */
    int64_t depth;          /* ONE_HOT: number of classes (labels outside [0, depth) -> all 0) */
    int32_t bucket;         /* ALLREDUCE: the bucket (>= 0) whose nodes are reduced together */
    uint64_t uid;           /* INPUT: unique id (placeholders are never merged) */
    mt_window win;          /* CONV2D, CONV2D_GRAD_INPUT, CONV2D_GRAD_WEIGHT, POOL2D,
                               POOL2D_GRAD (see mt_window) */
    const void *data;       /* CONST: C-contiguous elements of the type's dtype and shape,
                               owned by the graph */
    size_t nbytes;          /* CONST */
    uint64_t data_hash;     /* CONST: content hash (used for hash-consing) */
    const struct mt_scan_body *body; /* SCAN: the loop body (mt_graph_scan), shared by the
                                        graphs whose nodes use it */
    int64_t output;         /* SCAN: which result of the loop the node is (mt_scan_spec) */
} mt_op_attrs;

/* ---------------------------------------------------------------- provenance */

typedef struct mt_provenance {
    const char *file;    /* C call site, or NULL */
    int32_t line;
    int32_t source;      /* source text id (mt_graph_add_source), or -1 */
    int32_t col_begin;   /* 1-based inclusive column span in that text */
    int32_t col_end;
    int32_t nrules;      /* rewrites that produced the node, oldest first */
    const char *const *rules;
} mt_provenance;

/* ---------------------------------------------------------------- graph lifecycle, errors */

mt_status mt_graph_new(mt_graph **out);
void mt_graph_free(mt_graph *g); /* frees every node and string; NULL ok */
/* MT_OK, or the status of the first error since creation (or mt_graph_clear_error). */
mt_status mt_graph_status(const mt_graph *g);
/* Message of that first error ("" if none); valid until the graph is freed or cleared. */
const char *mt_graph_last_error(const mt_graph *g);
void mt_graph_clear_error(mt_graph *g);
/* Number of nodes; valid handles are 1..mt_graph_size(g). */
int32_t mt_graph_size(const mt_graph *g);
bool mt_graph_valid(const mt_graph *g, mt_var v);
/* Host bytes held by the graph (nodes, constants, strings, tables). */
size_t mt_graph_mem_used(const mt_graph *g);
/* Seed given to random nodes created from now on (default 0). */
void mt_graph_set_seed(mt_graph *g, uint64_t seed);
uint64_t mt_graph_seed(const mt_graph *g);

/* ---------------------------------------------------------------- origins (provenance input) */

/* Stores a copy of a source text (an expression) and returns its id (>= 0), or -1 on OOM
 * (recorded in the graph). */
int32_t mt_graph_add_source(mt_graph *g, const char *text);
const char *mt_graph_source_text(const mt_graph *g, int32_t source); /* NULL if invalid */
/* Sets the current origin: nodes created from now on record this C call site (file is copied). */
void mt_graph_set_origin(mt_graph *g, const char *file, int32_t line);
/* Same, returning g, for MT_AT: mt_graph_add(MT_AT(g), a, b) records this file:line. */
mt_graph *mt_graph_at(mt_graph *g, const char *file, int32_t line);
#define MT_AT(g) mt_graph_at((g), __FILE__, __LINE__)
/* Sets the current origin to columns [col_begin, col_end] (1-based, inclusive) of a source. */
void mt_graph_set_origin_span(mt_graph *g, int32_t source, int32_t col_begin, int32_t col_end);
/* Sets the current origin to v's provenance, plus `rule` appended to its rewrite list when not
 * NULL (rewrites call this before building a replacement for v; the string is copied). */
void mt_graph_set_origin_from(mt_graph *g, mt_var v, const char *rule);
/* No origin: nodes created from now on have empty provenance. */
void mt_graph_clear_origin(mt_graph *g);

/* ---------------------------------------------------------------- leaves */

/* A placeholder (function argument). shape entries: size >= 0 or -1 unknown (shape NULL: all
 * unknown). name NULL gives "in<k>"; a duplicate name is an ERR_INVALID error. */
mt_var mt_graph_placeholder(mt_graph *g, const char *name, mt_dtype dt, int32_t ndim,
                            const int64_t *shape);
/* The placeholder with that name, or MT_VAR_NONE (no error recorded). */
mt_var mt_graph_find_placeholder(const mt_graph *g, const char *name);
/* A constant: copies numel * size(dt) bytes of C-contiguous data (all sizes static). Hashed by
 * dtype, shape and content: equal constants are one node. */
mt_var mt_graph_constant(mt_graph *g, mt_dtype dt, int32_t ndim, const int64_t *shape,
                         const void *data);
/* 0-d strong constants: value converted to dt with NumPy casting. */
mt_var mt_graph_scalar(mt_graph *g, mt_dtype dt, double value);
mt_var mt_graph_scalar_int(mt_graph *g, mt_dtype dt, int64_t value); /* exact for int64 */
/* Weak literals (NEP 50): 0-d, int64 / float64 until combined with a strong operand. */
mt_var mt_graph_literal_int(mt_graph *g, int64_t value);
mt_var mt_graph_literal_float(mt_graph *g, double value);
/* Filled arrays with a static shape: a 0-d constant under BROADCAST_TO. */
mt_var mt_graph_full(mt_graph *g, mt_dtype dt, int32_t ndim, const int64_t *shape, double value);
mt_var mt_graph_zeros(mt_graph *g, mt_dtype dt, int32_t ndim, const int64_t *shape);
mt_var mt_graph_ones(mt_graph *g, mt_dtype dt, int32_t ndim, const int64_t *shape);
/* Same shape as x (also when unknown: BROADCAST_LIKE of a 0-d constant); dt MT_DTYPE_COUNT
 * means x's dtype. */
mt_var mt_graph_full_like(mt_graph *g, mt_var x, mt_dtype dt, double value);
mt_var mt_graph_zeros_like(mt_graph *g, mt_var x);
mt_var mt_graph_ones_like(mt_graph *g, mt_var x);
/* NumPy arange: ceil((stop - start) / step) elements of dtype dt; step 0 is ERR_INVALID. */
mt_var mt_graph_arange(mt_graph *g, mt_dtype dt, double start, double stop, double step);
/* Random draws from Philox streams. The shape is static (ndim, shape), or, when shape_ref is
 * not MT_VAR_NONE, that variable's shape (ndim/shape ignored). Each node gets the graph's seed
 * and a fresh stream id, so two calls give independent draws and are never merged; the executor
 * advances the counter on every call of a compiled function. Binomial: p0 trials, p1 prob.
 * dt must be a float dtype for uniform/normal; any dtype for binomial (counts). */
mt_var mt_graph_random(mt_graph *g, mt_random_dist dist, mt_dtype dt, int32_t ndim,
                       const int64_t *shape, mt_var shape_ref, double p0, double p1);
mt_var mt_graph_random_uniform(mt_graph *g, mt_dtype dt, int32_t ndim, const int64_t *shape,
                               double low, double high);
mt_var mt_graph_random_normal(mt_graph *g, mt_dtype dt, int32_t ndim, const int64_t *shape,
                              double mean, double stddev);
mt_var mt_graph_random_binomial(mt_graph *g, mt_dtype dt, int32_t ndim, const int64_t *shape,
                                int64_t n, double p);

/* ---------------------------------------------------------------- elementwise */

/* Generic elementwise op with NumPy broadcasting and dtype promotion (implicit casts inserted,
 * weak literals resolved). sop: any MT_SOP_* with arity 1..3 except INPUT, CONST, PARAM,
 * INDEX, RAND_*; CAST needs mt_graph_cast. Bool operands follow NumPy: add/mul of bools are
 * or/and, sub and neg of bools are errors, arithmetic that NumPy loops in int8 (floordiv, mod,
 * pow, square) casts bools to int8. */
mt_var mt_graph_elemwise(mt_graph *g, mt_sop sop, int32_t nin, const mt_var *in);
mt_var mt_graph_unary(mt_graph *g, mt_sop sop, mt_var x);
mt_var mt_graph_binary(mt_graph *g, mt_sop sop, mt_var a, mt_var b);

mt_var mt_graph_add(mt_graph *g, mt_var a, mt_var b);
mt_var mt_graph_sub(mt_graph *g, mt_var a, mt_var b);
mt_var mt_graph_mul(mt_graph *g, mt_var a, mt_var b);
mt_var mt_graph_div(mt_graph *g, mt_var a, mt_var b);      /* true division (/) */
mt_var mt_graph_floordiv(mt_graph *g, mt_var a, mt_var b); /* // (Python floor) */
mt_var mt_graph_mod(mt_graph *g, mt_var a, mt_var b);      /* % (sign of the divisor) */
mt_var mt_graph_pow(mt_graph *g, mt_var a, mt_var b);      /* ** */
mt_var mt_graph_maximum(mt_graph *g, mt_var a, mt_var b);  /* NaN-propagating */
mt_var mt_graph_minimum(mt_graph *g, mt_var a, mt_var b);
mt_var mt_graph_arctan2(mt_graph *g, mt_var a, mt_var b);
mt_var mt_graph_logaddexp(mt_graph *g, mt_var a, mt_var b); /* log(exp(a) + exp(b)), stable */
mt_var mt_graph_eq(mt_graph *g, mt_var a, mt_var b);
mt_var mt_graph_ne(mt_graph *g, mt_var a, mt_var b);
mt_var mt_graph_lt(mt_graph *g, mt_var a, mt_var b);
mt_var mt_graph_le(mt_graph *g, mt_var a, mt_var b);
mt_var mt_graph_gt(mt_graph *g, mt_var a, mt_var b);
mt_var mt_graph_ge(mt_graph *g, mt_var a, mt_var b);
mt_var mt_graph_logical_and(mt_graph *g, mt_var a, mt_var b);
mt_var mt_graph_logical_or(mt_graph *g, mt_var a, mt_var b);
mt_var mt_graph_logical_xor(mt_graph *g, mt_var a, mt_var b);
mt_var mt_graph_logical_not(mt_graph *g, mt_var x);
/* where(cond, a, b): cond is converted to bool (x != 0); a and b promoted; all broadcast. */
mt_var mt_graph_where(mt_graph *g, mt_var cond, mt_var a, mt_var b);
/* clip = minimum(maximum(x, lo), hi) (NumPy's definition); lo/hi are variables (literals ok). */
mt_var mt_graph_clip(mt_graph *g, mt_var x, mt_var lo, mt_var hi);
/* Cast to dt (NumPy casting: float->int truncates, anything->bool is x != 0). Identity (returns
 * x) when x already has dtype dt and is not weak; a constant operand gives a new constant. */
mt_var mt_graph_cast(mt_graph *g, mt_var x, mt_dtype dt);

mt_var mt_graph_neg(mt_graph *g, mt_var x);
mt_var mt_graph_abs(mt_graph *g, mt_var x);
mt_var mt_graph_sign(mt_graph *g, mt_var x);
mt_var mt_graph_square(mt_graph *g, mt_var x);
mt_var mt_graph_reciprocal(mt_graph *g, mt_var x); /* 1/x in the float dtype */
mt_var mt_graph_sqrt(mt_graph *g, mt_var x);
mt_var mt_graph_rsqrt(mt_graph *g, mt_var x);
mt_var mt_graph_exp(mt_graph *g, mt_var x);
mt_var mt_graph_exp2(mt_graph *g, mt_var x);
mt_var mt_graph_expm1(mt_graph *g, mt_var x);
mt_var mt_graph_log(mt_graph *g, mt_var x);
mt_var mt_graph_log2(mt_graph *g, mt_var x);
mt_var mt_graph_log10(mt_graph *g, mt_var x);
mt_var mt_graph_log1p(mt_graph *g, mt_var x);
mt_var mt_graph_log1mexp(mt_graph *g, mt_var x); /* log(1 - exp(x)) for x <= 0, stable */
mt_var mt_graph_sin(mt_graph *g, mt_var x);
mt_var mt_graph_cos(mt_graph *g, mt_var x);
mt_var mt_graph_tan(mt_graph *g, mt_var x);
mt_var mt_graph_arcsin(mt_graph *g, mt_var x);
mt_var mt_graph_arccos(mt_graph *g, mt_var x);
mt_var mt_graph_arctan(mt_graph *g, mt_var x);
mt_var mt_graph_sinh(mt_graph *g, mt_var x);
mt_var mt_graph_cosh(mt_graph *g, mt_var x);
mt_var mt_graph_tanh(mt_graph *g, mt_var x);
mt_var mt_graph_erf(mt_graph *g, mt_var x);
mt_var mt_graph_erfc(mt_graph *g, mt_var x);
mt_var mt_graph_sigmoid(mt_graph *g, mt_var x);
mt_var mt_graph_softplus(mt_graph *g, mt_var x); /* log(1 + exp(x)), stable */
mt_var mt_graph_relu(mt_graph *g, mt_var x);
mt_var mt_graph_floor(mt_graph *g, mt_var x);
mt_var mt_graph_ceil(mt_graph *g, mt_var x);
mt_var mt_graph_round(mt_graph *g, mt_var x);    /* half to even (np.round) */
mt_var mt_graph_trunc(mt_graph *g, mt_var x);
mt_var mt_graph_isnan(mt_graph *g, mt_var x);
mt_var mt_graph_isinf(mt_graph *g, mt_var x);
mt_var mt_graph_isfinite(mt_graph *g, mt_var x);

/* ---------------------------------------------------------------- reductions */

/* op over `axes` (negative axes count from the end; naxes 0 = all axes; duplicates and
 * out-of-range axes are ERR_INVALID errors). Result dtypes are NumPy's
 * (mt_reduce_result_dtype: sum of int32 -> int64, mean of int -> float64, argmax -> int64, all
 * -> bool). argmax/argmin over several axes index them in C order. */
mt_var mt_graph_reduce(mt_graph *g, mt_reduce_op op, mt_var x, int32_t naxes,
                       const int32_t *axes, bool keepdims);
mt_var mt_graph_sum(mt_graph *g, mt_var x, int32_t naxes, const int32_t *axes, bool keepdims);
mt_var mt_graph_mean(mt_graph *g, mt_var x, int32_t naxes, const int32_t *axes, bool keepdims);
mt_var mt_graph_prod(mt_graph *g, mt_var x, int32_t naxes, const int32_t *axes, bool keepdims);
mt_var mt_graph_max(mt_graph *g, mt_var x, int32_t naxes, const int32_t *axes, bool keepdims);
mt_var mt_graph_min(mt_graph *g, mt_var x, int32_t naxes, const int32_t *axes, bool keepdims);
mt_var mt_graph_argmax(mt_graph *g, mt_var x, int32_t naxes, const int32_t *axes, bool keepdims);
mt_var mt_graph_argmin(mt_graph *g, mt_var x, int32_t naxes, const int32_t *axes, bool keepdims);
mt_var mt_graph_all(mt_graph *g, mt_var x, int32_t naxes, const int32_t *axes, bool keepdims);
mt_var mt_graph_any(mt_graph *g, mt_var x, int32_t naxes, const int32_t *axes, bool keepdims);
/* var = sum(square(x - mean(x, keepdims))) / (N - ddof), built from other nodes (N from
 * mt_graph_size_of, a constant when sizes are static); std = sqrt(var). Float result dtype. */
mt_var mt_graph_var(mt_graph *g, mt_var x, int32_t naxes, const int32_t *axes, bool keepdims,
                    double ddof);
mt_var mt_graph_std(mt_graph *g, mt_var x, int32_t naxes, const int32_t *axes, bool keepdims,
                    double ddof);
/* log(sum(exp(x), axes)), computed stably; float result dtype. */
mt_var mt_graph_logsumexp(mt_graph *g, mt_var x, int32_t naxes, const int32_t *axes,
                          bool keepdims);
/* Number of elements of x over axes (naxes 0 = all) as an int64 0-d variable: a constant when
 * those sizes are static, else a SIZE node evaluated at run time. */
mt_var mt_graph_size_of(mt_graph *g, mt_var x, int32_t naxes, const int32_t *axes);

/* ---------------------------------------------------------------- neural-network ops */

/* axis may be negative. Float result dtype (integers promote as for float functions). */
mt_var mt_graph_softmax(mt_graph *g, mt_var x, int32_t axis);
mt_var mt_graph_logsoftmax(mt_graph *g, mt_var x, int32_t axis);
/* Categorical crossentropy along the class axis; the result drops that axis.
 *   crossentropy(probs, targets)         -sum(targets * log(probs), axis); same shapes
 *   crossentropy_labels(probs, labels)   -log(probs[..., labels, ...]); labels is an integer
 *                                        array shaped like probs without the axis
 *   softmax_crossentropy(logits, ...)    the same of softmax(logits), computed stably
 *   softmax_crossentropy_labels(logits, labels) */
mt_var mt_graph_crossentropy(mt_graph *g, mt_var probs, mt_var targets, int32_t axis);
mt_var mt_graph_crossentropy_labels(mt_graph *g, mt_var probs, mt_var labels, int32_t axis);
mt_var mt_graph_softmax_crossentropy(mt_graph *g, mt_var logits, mt_var targets, int32_t axis);
mt_var mt_graph_softmax_crossentropy_labels(mt_graph *g, mt_var logits, mt_var labels,
                                            int32_t axis);
/* The gradient of softmax_crossentropy_labels w.r.t. the logits, fused (Theano's
 * crossentropy_softmax_1hot_with_bias_dx): gz[..., None at axis] * (softmax(logits, axis) -
 * onehot(labels, logits.shape[axis], along axis)). gz has the logits' float dtype and their shape
 * without the axis (a size-1 dimension of gz broadcasts); labels are integers shaped like the
 * logits without the axis and must lie in [0, logits.shape[axis]) (ERR_RANGE at run time,
 * naming the label, its row and the range). The rewrite `xent_softmax_dx` forms it from the
 * gradient graph; it has no gradient of its own (take gradients before rewriting). */
mt_var mt_graph_softmax_crossentropy_labels_dx(mt_graph *g, mt_var gz, mt_var logits,
                                               mt_var labels, int32_t axis);
/* Elementwise softplus(x) - x * t (TF's sigmoid_cross_entropy_with_logits), built from
 * ELEMWISE nodes so it fuses. */
mt_var mt_graph_sigmoid_crossentropy_logits(mt_graph *g, mt_var logits, mt_var targets);

/* ---------------------------------------------------------------- convolution and pooling */

/* x [N, C, H, W], w [O, C, KH, KW] (same float dtype: operands are promoted to
 * mt_dtype_promote's float type and cast); cross-correlation (no kernel flip, as PyTorch);
 * stride >= 1; pad >= 0 zero padding on both sides (NULL: stride 1, pad 0). Result
 * [N, O, (H+2ph-KH)/sh+1, (W+2pw-KW)/sw+1]. ERR_SHAPE naming both shapes for a channel
 * mismatch or a kernel larger than the padded input (checked at run time when sizes are
 * unknown); ERR_INVALID for a stride < 1 or a pad < 0. */
mt_var mt_graph_conv2d(mt_graph *g, mt_var x, mt_var w, const int32_t stride[2],
                       const int32_t pad[2]);
/* x [N, C, H, W] (cast to its float type). pool >= 1; stride NULL: the pool size; pad NULL: 0,
 * else 0 <= pad < pool. Windows start at i*stride - pad and are clipped to the input: padded
 * positions are never part of a window (max ignores them, mean averages the present elements
 * only; PyTorch's max_pool2d and avg_pool2d(count_include_pad=False)). Max propagates NaN.
 * ceil_mode=false: out = (H+2ph-PH)/sh+1; ceil_mode=true (Pylearn2's max_pool semantics: every
 * input pixel is in some pool): out = ceil((H+2ph-PH)/sh)+1, minus one when that last window
 * would start past the input and its padding (as PyTorch; it would be empty). The result must
 * have at least one row and column (ERR_SHAPE naming the shapes otherwise). */
mt_var mt_graph_pool2d(mt_graph *g, mt_var x, mt_pool_mode mode, const int32_t pool[2],
                       const int32_t stride[2], const int32_t pad[2], bool ceil_mode);
/* The gradient ops (built by mt_graph_grad; public for tests and hand-written backward code).
 *   conv2d_grad_input(dy, w, x)   d conv2d(x, w) / dx applied to dy: shape and N/C/H/W of x
 *                                 (x is only a shape reference; its values are not read)
 *   conv2d_grad_weight(x, dy, k)  d conv2d(x, w) / dw applied to dy, w of spatial size k
 *   pool2d_grad(x, y, dy)         dy routed back through pool2d(x) = y: max to the first
 *                                 maximal element (C order in the window; the first NaN when
 *                                 there is one), mean spread evenly over the present elements
 * A POOL2D node may have a second operand v shaped like x (gradient rules make it with
 * mt_graph_make): it gives v's element at the position each window of x selects (max), or
 * pool2d(v) (mean). It is linear in v and is the gradient of pool2d_grad with respect to dy,
 * so second derivatives and R-ops (double reverse) of pooling stay in the graph. */
mt_var mt_graph_conv2d_grad_input(mt_graph *g, mt_var dy, mt_var w, mt_var x,
                                  const int32_t stride[2], const int32_t pad[2]);
mt_var mt_graph_conv2d_grad_weight(mt_graph *g, mt_var x, mt_var dy, const int32_t ksize[2],
                                   const int32_t stride[2], const int32_t pad[2]);
mt_var mt_graph_pool2d_grad(mt_graph *g, mt_var x, mt_var y, mt_var dy, mt_pool_mode mode,
                            const int32_t pool[2], const int32_t stride[2],
                            const int32_t pad[2], bool ceil_mode);

/* ---------------------------------------------------------------- products */

/* NumPy matmul: 1-D operands are promoted (and the added axis removed after, via DIMSHUFFLE);
 * batch dimensions broadcast; dtypes promoted. 0-d operands are errors. */
mt_var mt_graph_matmul(mt_graph *g, mt_var a, mt_var b);
/* np.dot for ndim <= 2 (0-d operands multiply elementwise); ERR_INVALID above 2-D. */
mt_var mt_graph_dot(mt_graph *g, mt_var a, mt_var b);
/* alpha * op(a) @ op(b) + beta * c, op = swap of the last two axes when trans_*. a, b, c of one
 * float dtype, a and b of equal ndim >= 2; c broadcasts to the product's shape (it may not
 * enlarge it). Rewrites create it from dot + bias + scale. */
mt_var mt_graph_gemm(mt_graph *g, mt_var a, mt_var b, mt_var c, double alpha, double beta,
                     bool trans_a, bool trans_b);

/* ---------------------------------------------------------------- shapes and views */

/* NumPy reshape: shape entries >= 0, one -1 (inferred) and MT_RESHAPE_KEEP (-2, this axis of
 * x). Sizes are checked statically where known (ERR_SHAPE naming both shapes). */
mt_var mt_graph_reshape(mt_graph *g, mt_var x, int32_t ndim, const int64_t *shape);
/* Keeps the first ndim_out - 1 axes and merges the rest (ndim_out 1: full flatten). */
mt_var mt_graph_flatten(mt_graph *g, mt_var x, int32_t ndim_out);
/* perm NULL reverses the axes; negative entries count from the end. */
mt_var mt_graph_transpose(mt_graph *g, mt_var x, const int32_t *perm);
/* Theano's dimshuffle: pattern[i] is an operand axis or -1 ('x', a new axis of size 1);
 * omitted operand axes must have size 1 and are dropped. */
mt_var mt_graph_dimshuffle(mt_graph *g, mt_var x, int32_t n, const int32_t *pattern);
mt_var mt_graph_expand_dims(mt_graph *g, mt_var x, int32_t axis); /* axis in [-ndim-1, ndim] */
/* naxes 0: every axis of static size 1. A listed axis of unknown size is checked at run time;
 * a static size other than 1 is an ERR_SHAPE error. */
mt_var mt_graph_squeeze(mt_graph *g, mt_var x, int32_t naxes, const int32_t *axes);
/* NumPy broadcast_to with a static target shape (right-aligned). */
mt_var mt_graph_broadcast_to(mt_graph *g, mt_var x, int32_t ndim, const int64_t *shape);
/* x broadcast to ref's shape (ref's values are not used; ndim(x) <= ndim(ref)). */
mt_var mt_graph_broadcast_like(mt_graph *g, mt_var x, mt_var ref);
/* Operands promoted to one dtype; all sizes equal except along axis. */
mt_var mt_graph_concatenate(mt_graph *g, int32_t n, const mt_var *xs, int32_t axis);
mt_var mt_graph_stack(mt_graph *g, int32_t n, const mt_var *xs, int32_t axis);
/* Splits x along axis into n parts (SLICE nodes) written to outs[0..n). sizes NULL: n equal
 * parts (the size must be static and divisible); else the part sizes, the last may be -1 (the
 * rest). On error every outs[i] is MT_VAR_NONE and the status is returned. */
mt_status mt_graph_split(mt_graph *g, mt_var x, int32_t axis, int32_t n, const int64_t *sizes,
                         mt_var *outs);
/* NumPy basic indexing x[items...]: slices (negative steps too), integers (axis removed; out of
 * range is ERR_RANGE when the size is static, else checked at run time), newaxis, one
 * ellipsis; missing trailing items are ':'. Builds SLICE (+ DIMSHUFFLE for newaxis). */
mt_var mt_graph_index(mt_graph *g, mt_var x, int32_t n, const mt_idx *items);
/* x[..., start:stop:step, ...] on one axis (MT_IDX_NONE for omitted bounds). */
mt_var mt_graph_slice_axis(mt_graph *g, mt_var x, int32_t axis, int64_t start, int64_t stop,
                           int64_t step);
/* Copy of x with x[items] = y / x[items] += y (Theano set_subtensor / inc_subtensor). items as
 * for mt_graph_index without newaxis; y broadcasts to the indexed shape and is cast to x's
 * dtype. */
mt_var mt_graph_set_subtensor(mt_graph *g, mt_var x, int32_t n, const mt_idx *items, mt_var y);
mt_var mt_graph_inc_subtensor(mt_graph *g, mt_var x, int32_t n, const mt_idx *items, mt_var y);
/* np.take(x, idx, axis): result shape x[:axis] + idx.shape + x[axis+1:]; idx integer
 * (negative indices count from the end; out of range is a run-time error). */
mt_var mt_graph_gather(mt_graph *g, mt_var x, mt_var idx, int32_t axis);
/* Copy of x with y added at idx along axis, duplicates accumulating (np.add.at): the gradient
 * of gather. y must have gather(x, idx, axis)'s shape (broadcast from static 1) and is cast to
 * x's dtype. */
mt_var mt_graph_scatter_add(mt_graph *g, mt_var x, mt_var idx, mt_var y, int32_t axis);
/* labels (integer) -> labels.shape + (depth,) of dtype dt with 1 at the label. */
mt_var mt_graph_one_hot(mt_graph *g, mt_var labels, int64_t depth, mt_dtype dt);

/* ---------------------------------------------------------------- collectives */

/* The sum of x over every process of a group (data-parallel gradient all-reduce): same type as
 * x. The executor (jit.h, mt_function_options.collectives) starts all ALLREDUCE nodes of one
 * bucket (>= 0) together as soon as their operands exist and waits for them only where a result
 * is first read. Nodes of different buckets are never merged; the node is never constant-folded
 * (the sum of a constant over N processes is not the constant), fused or evaluated by rewrites.
 * Gradient: the all-reduce (same bucket) of the output's gradient; R-op likewise (linear). A
 * function with ALLREDUCE nodes needs collective hooks (ERR_INVALID at compile time otherwise).
 * ERR_INVALID for bucket < 0. */
mt_var mt_graph_allreduce(mt_graph *g, mt_var x, int32_t bucket);

/* ---------------------------------------------------------------- loops (scan) */

/* A loop over the leading axis of its sequences, carrying states from step to step (Theano's
 * scan). The body is a graph of its own: its placeholders are, in order, one slice of each
 * sequence (the sequence's type without its leading axis), the states of the previous step and
 * the non-sequences (the same value at every step); its outputs are the new states (each of its
 * state's dtype and ndim) followed by n_extra per-step outputs. mt_graph_scan copies the part of
 * the body the outputs need, so the caller's body graph may be changed or freed afterwards. The
 * body may not contain random nodes, all-reduces or placeholders other than its inputs.
 *
 * Steps: T = the length of the first sequence (every sequence must have exactly T rows; checked
 * at run time where not static), or spec.n_steps when there is no sequence. Step i processes row
 * t = i (t = T-1-i when reverse) and its results are stored at row t, so a reverse loop's
 * outputs stay aligned with its inputs (a bidirectional layer adds the two directly).
 *
 * Results (each a node of op SCAN, attrs.output naming which), for state k < n_state and extra
 * output j < n_extra:
 *   output k                      the state after each step, stacked: (T,) + the state's shape
 *   output n_state + j            extra output j of each step, stacked: (T,) + its shape
 *   output n_state + n_extra + k  the state after the last step (the initial state if T = 0)
 * Operand dtypes must equal the body's placeholders' dtypes exactly (cast first); static sizes
 * must agree. A state whose shape changes between steps is a run-time error naming the node
 * and the step. Nodes of one loop (same body and operands) are computed by one run of it, and
 * loops whose bodies are structurally equal merge like other nodes. A product x_t @ W of a
 * sequence's slice (a matrix) by a non-sequence matrix is taken out of the body and computed
 * for every step before the loop, as one product (docs/loops.md): the loop as built (what
 * mt_graph_scan_info reports) then has one more sequence per such product.
 * Gradient: a reverse loop over the body's vector-Jacobian product (backpropagation through
 * time, needing the stacked states: they are computed when a gradient is taken, also where
 * only final states are used). R-op: by double reverse, as for every op. */
typedef struct mt_scan_body mt_scan_body; /* opaque, immutable, reference counted */
typedef struct mt_scan_spec {
    int32_t n_seq;    /* sequences (the body's first n_seq placeholders are their slices) */
    int32_t n_state;  /* carried states */
    int32_t n_nonseq; /* values passed unchanged to every step */
    int32_t n_extra;  /* per-step outputs after the new states */
    int64_t n_steps;  /* the number of steps when n_seq == 0 (>= 0); must be -1 otherwise */
    bool reverse;     /* iterate from the last row to the first (Theano's go_backwards) */
} mt_scan_spec;

/* Builds a loop. body_inputs: n_seq + n_state + n_nonseq placeholders of body; body_outputs:
 * n_state + n_extra variables of body; operands: the sequences, the initial states and the
 * non-sequences (variables of g, same counts and order). stacked[0 .. n_state + n_extra)
 * receives the stacked results, finals[0 .. n_state) the final states (either may be NULL). On
 * error every result is MT_VAR_NONE and the error is recorded in g as for every builder. */
mt_status mt_graph_scan(mt_graph *g, const mt_graph *body, const mt_scan_spec *spec,
                        const mt_var *body_inputs, const mt_var *body_outputs,
                        const mt_var *operands, mt_var *stacked, mt_var *finals);

/* Read access to a SCAN node's loop (for executors and tools). The arrays stay valid while g
 * (which holds the body) lives. */
typedef struct mt_scan_info {
    const mt_graph *body;  /* the loop's own copy of the body */
    const mt_var *inputs;  /* n_seq + n_state + n_nonseq placeholders of body */
    const mt_var *outputs; /* n_state + n_extra variables of body */
    mt_scan_spec spec;
    int64_t output;        /* which result v is (see above) */
    uint64_t id;           /* the body's process-unique number (printers) */
} mt_scan_info;
/* false (and *info untouched) when v is not a SCAN node of g. */
bool mt_graph_scan_info(const mt_graph *g, mt_var v, mt_scan_info *info);
/* Number of results of a loop: 2 * n_state + n_extra. */
int64_t mt_scan_spec_nresults(const mt_scan_spec *spec);

/* ---------------------------------------------------------------- gradient hooks and checks */

/* Identity whose gradient is zero (Theano consider_constant / disconnected_grad). */
mt_var mt_graph_stop_gradient(mt_graph *g, mt_var x);
/* Identity whose gradient is clipped elementwise to [lo, hi] (Theano grad_clip). */
mt_var mt_graph_grad_clip(mt_graph *g, mt_var x, double lo, double hi);
/* Identity that asserts x's shape (entries -1 = any): the result's type has these sizes; a
 * static contradiction is ERR_SHAPE now, unknown sizes are checked at run time. */
mt_var mt_graph_shape_assert(mt_graph *g, mt_var x, int32_t ndim, const int64_t *shape);

/* ---------------------------------------------------------------- generic creation, rewrites */

/* Creates (or finds) a node of any op except INPUT from raw attributes and operands, running
 * the op's type inference. Unlike the named builders it inserts no casts or broadcast axes:
 * operands must already satisfy the op's contract (e.g. ELEMWISE operands of one dtype and
 * ndim). attrs may be NULL for ops without attributes; irrelevant fields are ignored. CONST
 * copies attrs->data (dtype, nshape/shape, weak used). RANDOM uses attrs->seed and ->stream as
 * given (a stream of 0 gets a fresh one). */
mt_var mt_graph_make(mt_graph *g, mt_op op, const mt_op_attrs *attrs, int32_t nin,
                     const mt_var *in);
/* v's op and attributes applied to new operands (re-inferring the type). Returns v itself when
 * the operands are unchanged; a newly created node gets v's provenance (the current origin is
 * left as it was). */
mt_var mt_graph_rebuild(mt_graph *g, mt_var v, const mt_var *new_inputs);
/* Records that uses of `old` should use `new` (same dtype and ndim; static sizes must agree
 * where both are known). When `new` was created after `old`, `rule` (if not NULL) is appended
 * to new's rewrite list and new inherits old's origin if it has none. Returns the status (also
 * recorded in g on error). Replacements chain: a later replace of `new` applies to `old`. */
mt_status mt_graph_replace(mt_graph *g, mt_var old, mt_var new_var, const char *rule);
/* Follows recorded replacements to the final variable (v itself if none). */
mt_var mt_graph_resolve(const mt_graph *g, mt_var v);
/* Rebuilds everything the outputs depend on with the recorded replacements applied and stores
 * the new outputs in outputs[] (in place). Nodes not affected are kept as they are. */
mt_status mt_graph_apply_replacements(mt_graph *g, int32_t n_outputs, mt_var *outputs);
/* Copies the part of src needed by outputs into dst (dst may equal src: then it is a rebuild),
 * substituting subst_to[i] (a variable of dst) for every use of subst_from[i] (of src).
 * Placeholders that are not substituted map to dst's placeholder of the same name when dst has
 * one of the same type, else to a new one; constants are copied; random nodes keep their seed
 * and stream. new_outputs[i] receives the copy of outputs[i]; map (optional, size
 * mt_graph_size(src) + 1) receives the dst variable of every copied src variable (0 if not
 * needed). Provenance is copied. */
mt_status mt_graph_clone_with(mt_graph *dst, const mt_graph *src, int32_t n_outputs,
                              const mt_var *outputs, int32_t n_subst, const mt_var *subst_from,
                              const mt_var *subst_to, mt_var *new_outputs, mt_var *map);

/* ---------------------------------------------------------------- node access (read-only) */

/* Node flags. */
#define MT_NODE_RTCHECK 0x1u /* shapes could not be checked statically: verify at run time */

/* All accessors are cheap; for an invalid v they return MT_OP_COUNT / 0 / NULL. Pointers stay
 * valid until the graph is freed (nodes never move). */
mt_op mt_graph_op(const mt_graph *g, mt_var v);
int32_t mt_graph_ninputs(const mt_graph *g, mt_var v);
mt_var mt_graph_input(const mt_graph *g, mt_var v, int32_t i); /* operand i, 0 if out of range */
const mt_var *mt_graph_inputs(const mt_graph *g, mt_var v);    /* the operand array */
const mt_type *mt_graph_type(const mt_graph *g, mt_var v);
const mt_op_attrs *mt_graph_attrs(const mt_graph *g, mt_var v);
uint32_t mt_graph_flags(const mt_graph *g, mt_var v);
const mt_provenance *mt_graph_provenance(const mt_graph *g, mt_var v);
/* Display name of the node's operation: the scalar op for ELEMWISE ("add", "cast"), the
 * reduction for REDUCE ("sum"), else mt_op_name. */
const char *mt_graph_op_label(const mt_graph *g, mt_var v);
/* User-given name (placeholders: their name), or NULL. */
const char *mt_graph_name(const mt_graph *g, mt_var v);
/* Names a node for printers (copied; NULL clears). Placeholder names are fixed: ignored. */
void mt_graph_set_name(mt_graph *g, mt_var v, const char *name);
/* true when v is a constant, or a view/broadcast/cast chain over one, whose elements all equal
 * one value; *out receives it converted to v's dtype (Theano's get_scalar_constant_value). */
bool mt_graph_scalar_value(const mt_graph *g, mt_var v, mt_scalar *out);
/* "from 'a + b' col 1-5 via log1p, fuse" / "at model.c:42" / "" into sb. */
void mt_graph_format_provenance(const mt_graph *g, mt_var v, mt_strbuf *sb);

/* ---------------------------------------------------------------- analysis */

/* The nodes the outputs depend on (outputs included), in creation (= topological) order.
 * *order is allocated with mt_malloc (caller frees with mt_free). n_outputs 0 / outputs NULL:
 * every node. ERR_INVALID for an invalid output handle. */
mt_status mt_graph_toposort(const mt_graph *g, int32_t n_outputs, const mt_var *outputs,
                            mt_var **order, int32_t *n_order);
/* Number of uses of each variable in the subgraph needed by the outputs, counting each output
 * position once: (*counts)[v] for v in 1..mt_graph_size(g); the array has size+1 entries and is
 * allocated with mt_malloc. */
mt_status mt_graph_use_counts(const mt_graph *g, int32_t n_outputs, const mt_var *outputs,
                              int32_t **counts);
/* Run-time shape check and computation: re-runs v's shape inference with the concrete operand
 * shapes in_shapes[i] (each of operand i's ndim) and writes v's concrete shape (v's ndim
 * entries). ERR_SHAPE naming both shapes, the op and v's provenance when they do not fit. Does
 * not touch the graph's sticky error. */
mt_status mt_graph_eval_shape(const mt_graph *g, mt_var v, const int64_t *const *in_shapes,
                              int64_t *out_shape);
/* Checks the IR invariants of every node: operand handles valid and earlier, arity, type equal
 * to re-inference, canonical attributes, hash-consing table consistent. ERR_INTERNAL naming the
 * node on failure. */
mt_status mt_graph_verify(const mt_graph *g);

/* ---------------------------------------------------------------- printers */

/* One line per node (of the outputs' subgraph; all nodes if n_outputs is 0), e.g.
 *   v7 = add(v3, v6) : float32[3,4]   # from 'a + b' col 1-5
 * followed by "outputs: v7". */
mt_status mt_graph_print(const mt_graph *g, int32_t n_outputs, const mt_var *outputs,
                         mt_strbuf *sb);
/* The line of one node, without a newline. */
void mt_graph_print_node(const mt_graph *g, mt_var v, mt_strbuf *sb);
/* Graphviz dot: one box per node (label, type, provenance), edges operand -> user, outputs
 * drawn with a double border. */
mt_status mt_graph_print_dot(const mt_graph *g, int32_t n_outputs, const mt_var *outputs,
                             mt_strbuf *sb);

#ifdef __cplusplus
}
#endif
#endif /* MLTRAIN_GRAPH_H */
