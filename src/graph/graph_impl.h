/* Private interface of the graph module (src/graph): the node and graph structs, the op
 * descriptor table, and the internal entry points shared by the op families, autodiff, the
 * expression parser and the rewrite engine. Nothing outside src/graph includes this file. */
#ifndef MLTRAIN_GRAPH_IMPL_H
#define MLTRAIN_GRAPH_IMPL_H

#include <stdarg.h>

#include "mltrain/graph.h"

/* ---------------------------------------------------------------- nodes and graphs */

typedef struct mt__node {
    mt_op op;
    int32_t nin;
    const mt_var *in;  /* nin operands (arena) */
    uint32_t flags;    /* MT_NODE_* */
    mt_type type;
    mt_op_attrs attrs; /* canonical: fields unused by op are zero */
    mt_provenance prov;
    const char *name;  /* arena, or NULL */
    uint64_t hash;     /* hash-consing key hash */
    mt_var replaced_by; /* mt_graph_replace forwarding, or 0 */
    /* Reserved so later ops can hold inner graphs (scan, ifelse) and tuple outputs without
     * changing this layout's users: inner is op-specific, nout is 1 for every op today. */
    void *inner;
    int32_t nout;
} mt__node;

#define MT__PAGE_BITS 8
#define MT__PAGE_SIZE (1 << MT__PAGE_BITS)

struct mt_graph {
    mt__node **pages;    /* node v is pages[v >> 8][v & 255]; pages never move */
    int32_t npages;
    int32_t n;           /* nodes created; handles 1..n */
    int32_t *table;      /* hash-consing: open addressing over handles (0 = empty) */
    int32_t table_cap;   /* power of two */
    int32_t table_count;
    mt_arena arena;     /* operand arrays, constants, strings, rule lists */
    mt_status status;    /* first error (sticky) */
    char *error;         /* its message (mt_malloc) */
    mt_provenance origin; /* current origin copied into new nodes */
    char **sources;      /* source texts (arena) */
    int32_t nsources, sources_cap;
    uint64_t seed;       /* for new random nodes */
    uint64_t next_stream;
    uint64_t next_uid;   /* placeholders */
    int32_t nreplaced;   /* number of recorded replacements */
    struct mt_scan_body **bodies; /* loop bodies used by SCAN nodes: one reference each */
    int32_t nbodies, bodies_cap;
};

/* ---------------------------------------------------------------- loop bodies (ops_scan.c) */

/* A loop body: immutable after creation, shared by every graph holding a SCAN node that uses it
 * (each holds one reference, taken by mt__create and dropped by mt_graph_free). */
struct mt_scan_body {
    int64_t refs;        /* atomic */
    uint64_t id;         /* process-unique, for printers */
    uint64_t hash;       /* of the structure (spec, nodes, inputs, outputs): see body_equal */
    mt_graph *g;         /* owned: the needed part of the user's body graph */
    mt_scan_spec spec;
    int32_t nin, nout;   /* n_seq + n_state + n_nonseq; n_state + n_extra */
    mt_var *in, *out;    /* placeholders and outputs of g (mt_malloc) */
    /* products x_t @ W of a sequence's slice by a non-sequence, computed before the loop for
     * every step (ops_scan.c, hoist_products): the loop's sequences are the caller's n_seq
     * then one per product, z_seq[i] @ z_par[i] (the caller's sequence and non-sequence
     * indices); spec counts them */
    int32_t nz;
    int32_t *z_seq, *z_par;
};
void mt__scan_body_retain(struct mt_scan_body *b);
void mt__scan_body_release(struct mt_scan_body *b);
/* Records that g holds a reference on b (taking one) unless it already does. false: out of
 * memory (recorded). */
bool mt__graph_hold_body(mt_graph *g, struct mt_scan_body *b);
/* Static elements of a per-step value (unknown sizes, the batch's, count 1): the size rules of
 * what a loop stores for every step. */
int64_t mt__scan_row_elems(const mt_type *t);
/* true when g holds b (pointer comparison only: b is not dereferenced). */
bool mt__graph_has_body(const mt_graph *g, const struct mt_scan_body *b);

static inline mt__node *mt__graph_node(const mt_graph *g, mt_var v)
{
    if (!g || v <= 0 || v > g->n) return NULL;
    return &g->pages[v >> MT__PAGE_BITS][v & (MT__PAGE_SIZE - 1)];
}

/* ---------------------------------------------------------------- op descriptors */

/* Attribute groups an op uses (canonicalization keeps only these; printers show them). */
enum {
    MT__A_SOP = 1u << 0,      /* sop */
    MT__A_REDUCE = 1u << 1,   /* reduce */
    MT__A_DTYPE = 1u << 2,    /* dtype */
    MT__A_AXES = 1u << 3,     /* naxes, axes */
    MT__A_KEEPDIMS = 1u << 4, /* keepdims */
    MT__A_PERM = 1u << 5,     /* nperm, perm */
    MT__A_SHAPE = 1u << 6,    /* nshape, shape */
    MT__A_IDX = 1u << 7,      /* nidx, idx */
    MT__A_GEMM = 1u << 8,     /* alpha, beta, trans_a, trans_b */
    MT__A_RANGE = 1u << 9,    /* start, stop, step */
    MT__A_PARAMS = 1u << 10,  /* p0, p1 */
    MT__A_RANDOM = 1u << 11,  /* dist, seed, stream */
    MT__A_DEPTH = 1u << 12,   /* depth */
    MT__A_UID = 1u << 13,     /* uid */
    MT__A_CONST = 1u << 14,   /* data, nbytes, data_hash, weak */
    MT__A_WINDOW = 1u << 15,  /* win (fields the op does not use zeroed, see mt_window) */
    MT__A_BUCKET = 1u << 16,  /* bucket */
    MT__A_BODY = 1u << 17     /* body, output */
};

/* Type and shape inference. Inputs: the op's attributes and the operand types (which may
 * have unknown sizes at build time, or be fully concrete at run time through
 * mt_graph_eval_shape). Output: the result type, and rtcheck = true when some shape rule could
 * only be checked at run time. On a violation: return mt_err_set(code, "<opname>: ...") naming
 * the operand shapes/dtypes; the caller appends provenance and records the error. Pure: no
 * graph access. */
typedef struct mt__infer_ctx {
    const char *opname; /* display name for messages ("add", "sum", "reshape") */
    mt_op op;
    const mt_op_attrs *attrs;
    int32_t nin;
    const mt_type *const *in;
    mt_type out;
    bool rtcheck;
} mt__infer_ctx;
typedef mt_status (*mt__infer_fn)(mt__infer_ctx *cx);

typedef struct mt_op_info {
    const char *name;
    int32_t arity;          /* -1: variadic in [min_in, max_in] */
    int32_t min_in, max_in; /* max_in -1: unbounded */
    mt_lowering lowering;
    uint32_t attr_fields;   /* MT__A_* */
    bool never_merge;       /* INPUT, RANDOM: not hash-consed */
    mt__infer_fn infer;
} mt_op_info;

/* Indexed by mt_op; defined in ops_table.c (guarded by _Static_assert). */
extern const mt_op_info mt__op_table[MT_OP_COUNT];

/* Consistency of mt__op_table with MT_OP_MAP (names, arities, lowering); mt_graph_verify runs
 * it. ERR_INTERNAL naming the row on a mismatch. */
mt_status mt__op_table_check(void);

/* Gradients live in a parallel table owned by the autodiff code (so the files of different
 * authors stay separate), indexed by the same enum and guarded the same way:
 *   lop: given node v and the gradient gz of its output (v's type), sets in_grads[i] for each
 *        operand (MT_VAR_NONE: disconnected / zero / integer operand). Builds nodes in g.
 *   rop: given eval points ev[i] for the operands (MT_VAR_NONE = zero), returns the directional
 *        derivative of v (or MT_VAR_NONE with an error recorded).
 * A NULL lop/rop means "not differentiable / not implemented" (the caller reports it). */
typedef mt_status (*mt__lop_fn)(mt_graph *g, mt_var v, mt_var gz, mt_var *in_grads);
typedef mt_var (*mt__rop_fn)(mt_graph *g, mt_var v, const mt_var *ev);
typedef struct mt__op_grad {
    mt__lop_fn lop;
    mt__rop_fn rop;
} mt__op_grad;
extern const mt__op_grad mt__op_grad_table[MT_OP_COUNT]; /* defined by the autodiff files */

/* Infer functions, one family per file. */
mt_status mt__infer_leaf(mt__infer_ctx *cx);       /* INPUT, CONST (graph.c) */
mt_status mt__infer_elemwise(mt__infer_ctx *cx);   /* ops_elemwise.c */
mt_status mt__infer_reduce(mt__infer_ctx *cx);     /* REDUCE, LOGSUMEXP, SIZE (ops_reduce.c) */
mt_status mt__infer_softmax(mt__infer_ctx *cx);    /* SOFTMAX, LOGSOFTMAX (ops_nnet.c) */
mt_status mt__infer_xent(mt__infer_ctx *cx);       /* XENT* (ops_nnet.c) */
mt_status mt__infer_matmul(mt__infer_ctx *cx);     /* MATMUL, GEMM (ops_misc.c) */
mt_status mt__infer_reshape(mt__infer_ctx *cx);    /* ops_shape.c ... */
mt_status mt__infer_dimshuffle(mt__infer_ctx *cx);
mt_status mt__infer_broadcast(mt__infer_ctx *cx);  /* BROADCAST_TO, BROADCAST_LIKE */
mt_status mt__infer_concat(mt__infer_ctx *cx);
mt_status mt__infer_slice(mt__infer_ctx *cx);      /* SLICE, SET/INC_SUBTENSOR */
mt_status mt__infer_gather(mt__infer_ctx *cx);     /* GATHER, SCATTER_ADD, ONE_HOT (ops_index.c) */
mt_status mt__infer_generator(mt__infer_ctx *cx);  /* ARANGE, RANDOM (ops_misc.c) */
mt_status mt__infer_identity(mt__infer_ctx *cx);   /* STOP_GRADIENT, GRAD_CLIP, SHAPE_ASSERT */
mt_status mt__infer_conv(mt__infer_ctx *cx);       /* CONV2D* (ops_conv.c) */
mt_status mt__infer_pool(mt__infer_ctx *cx);       /* POOL2D, POOL2D_GRAD (ops_conv.c) */
mt_status mt__infer_collective(mt__infer_ctx *cx); /* ALLREDUCE (ops_comm.c) */
mt_status mt__infer_scan(mt__infer_ctx *cx);       /* SCAN (ops_scan.c) */

/* ---------------------------------------------------------------- internal entry points */

/* Records an error of a builder: message + " (at <current origin>)", sticky in g (first only)
 * and in the thread-local slot. Returns MT_VAR_NONE / the code. */
mt_var mt__fail(mt_graph *g, mt_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
mt_status mt__fail_status(mt_graph *g, mt_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Records the thread-local error already set (e.g. by an infer function) into g, adding the
 * current origin; returns MT_VAR_NONE. */
mt_var mt__fail_current(mt_graph *g);
/* true if every v is a valid handle; records an error for an out-of-range handle (MT_VAR_NONE
 * operands return false silently: an earlier error is already recorded). */
bool mt__check_vars(mt_graph *g, const char *opname, int32_t n, const mt_var *vs);

/* Canonicalizes attrs for op (zero struct, copy the op's groups) into out. */
void mt__attrs_canon(mt_op op, const mt_op_attrs *in, mt_op_attrs *out);
/* Core node creation: canonical attrs, inference, hash-consing, provenance from the current
 * origin. CONST attrs->data is copied into the arena when the node is new. */
mt_var mt__create(mt_graph *g, mt_op op, const mt_op_attrs *attrs, int32_t nin,
                  const mt_var *in);
/* Display name of an (op, attrs) pair (sop name for ELEMWISE etc.). */
const char *mt__op_label(mt_op op, const mt_op_attrs *attrs);
/* The shared vocabularies' names and result types live in core (src/core/vocab.c). */
#define mt__sop_text mt_sop_name
#define mt__sop_arity mt_sop_arity
#define mt__reduce_text mt_reduce_op_name
#define mt__reduce_dtype mt_reduce_result_dtype

/* dtype helpers */
mt_dtype mt__float_dtype(mt_dtype dt); /* float for float functions: int8 -> float16 ... */

/* Conversions used by builders: x as dtype dt (CAST node, or a converted constant; weakness
 * dropped), and x with leading broadcast axes up to ndim (DIMSHUFFLE, or a reshaped constant). */
mt_var mt__cast(mt_graph *g, mt_var x, mt_dtype dt);
mt_var mt__expand_ndim(mt_graph *g, mt_var x, int32_t ndim);

/* Broadcasting of one dimension pair: returns the result size, sets *rtcheck when a run-time
 * check is needed, returns -2 when incompatible. */
int64_t mt__broadcast_dim(int64_t a, int64_t b, bool *rtcheck);
/* Normalizes axis against ndim (negative counts from the end) or records
 * "<opname>: axis A is out of range for N dimensions" and returns false. */
bool mt__norm_axis(mt_graph *g, const char *opname, int32_t axis, int32_t ndim, int32_t *out);
/* Normalizes an axis list: sorted, unique, non-negative; naxes 0 -> all axes. */
bool mt__norm_axes(mt_graph *g, const char *opname, int32_t naxes, const int32_t *axes,
                   int32_t ndim, int32_t *nout, int32_t *out);

/* Basic-indexing attributes of x[items] for SLICE / SET_SUBTENSOR / INC_SUBTENSOR (one
 * canonical item per axis). With allow_newaxis, *nperm >= 0 and perm receive the DIMSHUFFLE
 * pattern to apply after the slice for newaxis items (else *nperm = -1). *identity: nothing is
 * selected away and no axis added. */
bool mt__index_attrs(mt_graph *g, const char *name, mt_var x, int32_t n, const mt_idx *items,
                     bool allow_newaxis, mt_op_attrs *a, bool *identity, int32_t *nperm,
                     int32_t *perm);
/* Element i (C order) of a CONST node as a scalar of its dtype (bool / i64 / u64 / f64). */
mt_scalar mt__const_elem(const mt__node *n, int64_t i);
/* Runs op's inference on operand types (no graph access): thread-local error on failure. */
mt_status mt__infer_node(mt_op op, const mt_op_attrs *a, int32_t nin,
                         const mt_type *const *types, mt_type *out, bool *rtcheck);
/* The hash-consing key hash of n's (op, attrs, operands) as mt__create computes it. */
uint64_t mt__node_key_hash(const mt__node *n);
/* true when a and b have the same (op, attrs, operands) key (CONST data compared by value). */
bool mt__node_key_equal(const mt__node *a, const mt__node *b);
/* The node with n's key in the hash-consing table (for verify), or MT_VAR_NONE. */
mt_var mt__table_lookup(const mt_graph *g, const mt__node *n);

/* Shape text "(3, ?)" into a caller buffer (for messages). */
const char *mt__shape_str(int32_t ndim, const int64_t *shape, char *buf, size_t len);

#endif /* MLTRAIN_GRAPH_IMPL_H */
