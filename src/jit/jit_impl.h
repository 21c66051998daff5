/* Private interface of the jit module (src/jit): the function and schedule structs shared by
 * the compiler (function.c, plan building), the reference executor (ref_*.c) and the fusion
 * pass (fuse.c). Nothing outside src/jit includes this file. */
#ifndef MT_JIT_IMPL_H
#define MT_JIT_IMPL_H

#include "mltrain/core.h"
#include "mltrain/gpuarray.h"
#include "mltrain/graph.h"
#include "mltrain/graph_rewrite.h"
#include "mltrain/jit.h"

/* What a call needs to run one node: the function's private graph, its device and the random
 * counter of the current call. */
typedef struct mt__jctx {
    const mt_graph *g;
    mt_device *dev;
    uint64_t rng_call;
    mt_threadpool **pool; /* the function's host pool for convolution and pooling (ref_conv.c
                             creates it on first need), or NULL: one pool per op */
    struct mt__jstep *step; /* the schedule step running the node (its per-step caches), or
                               NULL */
} mt__jctx;

/* Runs node v of ctx->g on its operand values (ins[i] is operand i) through gpuarray's generic
 * operations, producing a new value into *out (overwritten, not released). kx, when not NULL,
 * is the node's one-node elementwise expression prepared at compile time (ELEMWISE nodes);
 * without it one is built on the fly. Verifies MT_NODE_RTCHECK shapes first and the result's
 * dtype and static sizes after. Errors are prefixed with the node, its op and provenance.
 * (ref_exec.c) */
mt_status mt__ref_node(const mt__jctx *ctx, mt_var v, const mt_kexpr *kx,
                       const mt_array *const *ins, mt_array *out);
/* The same for a GEMM node whose result may go straight into `into` (a shared variable's held
 * array, for an in-place update): used when c (operand 2) is exactly that array and it has the
 * product's shape; *out is then a view of it. Otherwise as mt__ref_node. */
mt_status mt__ref_gemm_into(const mt__jctx *ctx, mt_var v, const mt_array *const *ins,
                            const mt_array *into, mt_array *out);

/* Builds the one-node kernel expression of ELEMWISE node v (inputs 0..nin-1 = operands, one
 * output of the node's dtype); casts operands where NumPy computes in another dtype. */
mt_status mt__ref_elemwise_kexpr(const mt_graph *g, mt_var v, mt_kexpr *e);
/* Appends node v's scalar operation to e over operand nodes ops[] (the node's operand dtypes),
 * returning the kexpr node holding the result in v's dtype (-1 on error, recorded). */
int32_t mt__kexpr_emit_node(const mt_graph *g, mt_var v, mt_kexpr *e, const int32_t *ops);

/* ERR_INTERNAL unless o has node v's dtype, ndim and static sizes (and the run-time inferred
 * shape, when not NULL): "the result ... does not match the node's type ... (graph inference
 * and <what> disagree)". (ref_exec.c) */
mt_status mt__check_result_type(const mt_graph *g, mt_var v, const mt_array *o,
                                const int64_t *inferred, const char *what);
/* Prefixes the current error with "<op> (node v<N>, <provenance>): " and returns st. */
mt_status mt__node_error(const mt_graph *g, mt_var v, mt_status st);

/* Philox key of a RANDOM node (see jit.h). */
uint64_t mt__random_key(uint64_t seed, uint64_t stream);

/* ref_nnet.c: stable softmax family and crossentropies. */
mt_status mt__ref_softmax(const mt__jctx *ctx, mt_var v, const mt_array *x, bool log_form,
                          mt_array *out);
mt_status mt__ref_logsumexp(const mt__jctx *ctx, mt_var v, const mt_array *x, mt_array *out);
mt_status mt__ref_xent(const mt__jctx *ctx, mt_var v, const mt_array *const *ins,
                       mt_array *out);

/* ref_index.c: indexing, scattering and assembling ops. */
mt_status mt__ref_gather(const mt__jctx *ctx, mt_var v, const mt_array *x,
                         const mt_array *idx, int32_t axis, mt_array *out);
mt_status mt__ref_scatter_add(const mt__jctx *ctx, mt_var v, const mt_array *x,
                              const mt_array *idx, const mt_array *y, int32_t axis,
                              mt_array *out);
/* out[pre..., post...] = x[pre..., labels[pre..., post...], post...] (labels in [0, n)). */
mt_status mt__ref_take_along(const mt__jctx *ctx, const mt_array *x, const mt_array *labels,
                             int32_t axis, mt_array *out);
mt_status mt__ref_one_hot(const mt__jctx *ctx, mt_var v, const mt_array *labels,
                          mt_array *out);
mt_status mt__ref_concat(const mt__jctx *ctx, mt_var v, const mt_array *const *ins,
                         mt_array *out);
mt_status mt__ref_subtensor(const mt__jctx *ctx, mt_var v, const mt_array *x,
                            const mt_array *y, bool inc, mt_array *out);
mt_status mt__ref_random(const mt__jctx *ctx, mt_var v, const mt_array *shape_ref,
                         mt_array *out);

/* ref_conv.c: CONV2D, CONV2D_GRAD_INPUT, CONV2D_GRAD_WEIGHT (mt__ref_conv2d) and POOL2D,
 * POOL2D_GRAD (mt__ref_pool2d) on the host (im2col + BLAS GEMM, pooling loops); operands on
 * other devices are copied to the host and the result back. */
mt_status mt__ref_conv2d(const mt__jctx *ctx, mt_var v, const mt_array *const *ins,
                         mt_array *out);
mt_status mt__ref_pool2d(const mt__jctx *ctx, mt_var v, const mt_array *const *ins,
                         mt_array *out);

/* ---------------------------------------------------------------- schedules */

/* Where a leaf slot's value comes from at the start of a call. */
typedef enum mt__leaf_kind { MT__LEAF_INPUT = 0, MT__LEAF_SHARED, MT__LEAF_CONST } mt__leaf_kind;
typedef struct mt__jleaf {
    int32_t slot;
    mt__leaf_kind kind;
    int32_t index; /* argument, shared or constant index */
} mt__jleaf;

typedef enum mt__step_kind {
    MT__STEP_NODE = 0, /* one graph node through mt__ref_node */
    MT__STEP_FUSED,    /* a fused elementwise kernel (mt_elemwise) with one or more outputs */
    MT__STEP_REDUCE,   /* a fused elementwise group reduced in the same pass (mt_reduce_fused):
                          kx is the map (one output, member out_vars[0]); v is the REDUCE
                          node and out[0] its slot */
    MT__STEP_COLL_START, /* starts the all-reduce of one bucket (collective.c): in = the
                            ALLREDUCE nodes' operand slots, out_vars = the nodes (nout 0:
                            their values are written here but belong to the WAIT step) */
    MT__STEP_COLL_WAIT,  /* completes it: out = the nodes' slots, out_vars = the nodes */
    MT__STEP_SCAN        /* one run of a loop (scan.c): in = the SCAN nodes' common operand
                            slots, out / out_vars = the loop's live SCAN nodes (siblings), v =
                            the first of them, scan = the loop's run-time state */
} mt__step_kind;

typedef struct mt__scan mt__scan; /* scan.c */

#define MT__SRC_ONES (-1)              /* an inlined scalar constant: every size 1 */
#define MT__SRC_MEMBER(i) (-2 - (i))   /* member i of the kernel */

typedef struct mt__jstep {
    mt__step_kind kind;
    mt_var v;          /* NODE: the node; FUSED: its first output node */
    int32_t nin;
    int32_t *in;       /* operand slots */
    int32_t nout;
    int32_t *out;      /* result slots (NODE: 1) */
    mt_var *out_vars;  /* FUSED: the node of each output */
    int32_t *inplace;  /* FUSED, or NODE of a GEMM (may be NULL): per output, the shared
                          variable whose held array the output is written into (its update,
                          done in place), or -1 */
    int32_t nmembers;  /* FUSED: every node computed inside the kernel */
    mt_var *members;
    int32_t nchecks;   /* FUSED: members with MT_NODE_RTCHECK (verified before the kernel) */
    int32_t *msrc;     /* FUSED: 3 per member: kernel input index of each operand or MT__SRC_* */
    int64_t *mdims;    /* FUSED: scratch, MT_MAX_DIMS per member: run-time shapes */
    mt_kexpr kx;       /* ELEMWISE node or FUSED kernel */
    bool has_kx;
    mt_elemwise_memo *ew_memo; /* FUSED: the kernel launch of the previous call (plan.c) */
    mt_reduce_memo *red_memo;  /* REDUCE group (plan.c), or NODE of a reduction (ref_exec.c):
                                  the kernel launch of the previous call */
    mt_kexpr *node_kx;         /* NODE of one_hot: its expression, built on first use for
                                  labels of dtype node_kx_dt (ref_index.c) */
    mt_dtype node_kx_dt;
    mt_elemwise_memo *node_memo; /* NODE of one_hot: the launch of node_kx's previous call */
    mt__scan *scan;    /* SCAN: the compiled body and the loop's scratch (scan.c) */
    bool allocates;    /* its results are new allocations (not views) */
    int32_t coll;      /* COLL_*: index of its bucket in the plan (mt__jplan.coll_*) */
    int32_t ncoll_vars; /* COLL_START: number of nodes in out_vars */
    int32_t nfree;
    int32_t *free;     /* slots whose last use is this step: cleared after it */
    /* profile */
    uint64_t calls;
    double seconds;
    uint64_t bytes_in, bytes_out;
} mt__jstep;

typedef struct mt__jplan {
    const char *name;  /* "reference" or "fused" */
    int32_t nslots;
    mt_array *values;  /* nslots scratch values, empty between calls */
    int32_t nleaves;
    mt__jleaf *leaves;
    int32_t nsteps;
    mt__jstep *steps;
    int32_t *out_slot; /* per output */
    int32_t *upd_slot; /* per update */
    int64_t peak_bytes;
    int64_t run_peak_bytes; /* measured in the last run */
    int64_t *slot_bytes;    /* per slot: bytes its value allocated (run-time accounting) */
    int32_t max_nin;   /* largest operand count of a step */
    const mt_array **ins; /* max_nin scratch operand pointers */
    /* all-reduce buckets (collective.c): per bucket its id, the hook's request while in
     * flight (NULL otherwise) and when it was started */
    int32_t ncoll;
    int32_t *coll_bucket;
    void **coll_req;
    double *coll_t0;
    mt_array **coll_arrays; /* scratch: max_nin array pointers for the start hook */
    char *broken; /* FAST_RUN's reference schedule when its all-reduces cannot be ordered (the
                     literal graph; the rewritten one may be fine): the error, raised if run */
} mt__jplan;

typedef struct mt__jshared {
    mt_var user_var; /* caller's handle */
    mt_var var;      /* in the private graph */
    mt_array value;  /* held value (empty until set) */
    int32_t update;  /* index of its update, or -1 */
} mt__jshared;

struct mt_function {
    mt_graph *g;     /* private copy of the needed part of the caller's graph */
    mt_device *dev;  /* retained */
    mt_mode mode;
    bool profile;
    double check_rtol, check_atol;
    int32_t n_disabled;
    char **disabled; /* rewrite names (for the rewrite phase) */

    int32_t n_inputs;
    mt_var *in_user, *in_var;
    int32_t n_outputs;
    mt_var *out_user, *out_var;
    int32_t n_shared;
    mt__jshared *shared;
    int32_t n_updates;
    int32_t *upd_shared; /* shared index of each update's target */
    mt_var *upd_var;     /* each update's value (private graph) */
    /* The outputs and update values after mt_graph_optimize (FAST_RUN, CHECK): the fused
     * schedule computes these; equal to out_var / upd_var when not optimized. */
    mt_var *out_fast, *upd_fast;
    bool optimized;
    bool no_rewrites;    /* mt_graph_eval: the unrewritten reference, even in FAST_COMPILE */
    bool *stabilized;    /* per output then update: its optimized value passes through a node
                            made by a stability rule (CHECK compares it leniently, check.c) */
    mt_rewrite_stats rewrite_stats;
    int32_t n_consts;
    mt_array *consts;
    mt_var *const_var;

    mt_var *order;       /* live nodes in topological order */
    int32_t n_order;
    mt__jplan ref;       /* reference schedule (always built) */
    mt__jplan fast;      /* fused schedule (FAST_RUN and CHECK), nsteps 0 when not built */
    bool has_fast;

    /* call scratch (a function is called by one thread at a time) */
    mt_array *moved;      /* n_inputs: arguments copied to the device */
    mt_array *res;        /* 2 * (n_outputs + n_updates) results */
    const mt_array **ins; /* n_inputs argument pointers */

    mt_threadpool *conv_pool; /* see mt__jctx.pool */
    mt_collective_hooks coll; /* ALLREDUCE hooks (has_coll) */
    bool has_coll;
    uint64_t coll_calls;      /* statistics (mt_function_stats) */
    double coll_seconds, coll_wait_seconds;
    uint64_t rng_calls;
    uint64_t ncalls;
    double call_seconds;
    double compile_seconds;

    int32_t n_scan_fns;
    struct mt__scan_fn *scan_fns; /* scan.c: the compiled loop bodies, one per body, shared
                                     by the SCAN steps of both schedules */
};

/* plan.c: the position of v in f->order (its slot in every schedule), or -1. */
int32_t mt__order_pos(const mt_function *f, mt_var v);
/* Binds every placeholder and constant of f->order to its slot (p->leaves). */
mt_status mt__plan_leaves(mt_function *f, mt__jplan *p);
/* plan.c: builds the reference schedule (one step per non-leaf node) and frees schedules. */
mt_status mt__plan_reference(mt_function *f, mt__jplan *p);
void mt__plan_free(mt__jplan *p);
void mt__step_free(mt__jstep *s); /* frees what the step owns and zeroes it */
/* Drops every step's record of its previous launch (ew_memo, red_memo, node_memo): after a run
 * that was not a real call (the kernel-prediction dry run of mt_function_new), so the memos
 * describe only the caller's calls. */
void mt__plan_forget_launches(mt__jplan *p);
/* Liveness: fills each step's free list from the slots' last uses (outputs and update values
 * are kept) and computes peak_bytes when every size is static (-1 otherwise). */
mt_status mt__plan_liveness(mt_function *f, mt__jplan *p);
/* Appends the plan's steps, one per line. */
void mt__plan_print(const mt_function *f, const mt__jplan *p, mt_strbuf *sb);

/* collective.c: replaces the plan's ALLREDUCE node steps by one COLL_START and one COLL_WAIT
 * step per bucket and reorders the steps: a START as soon as all its operands exist, a WAIT
 * just before the first step that needs one of its results (sync: right after its START).
 * ERR_INVALID when a bucket's operand depends on a result of the same bucket. A no-op for
 * plans without ALLREDUCE nodes. Run before the liveness pass. */
mt_status mt__plan_collectives(mt_function *f, mt__jplan *p, bool sync);
/* Runs a COLL_START / COLL_WAIT step (ins: the START's operand values). */
mt_status mt__coll_start(mt_function *f, mt__jplan *p, const mt__jstep *s,
                         const mt_array *const *ins, mt_array *values);
mt_status mt__coll_wait(mt_function *f, mt__jplan *p, const mt__jstep *s);
/* Waits for every bucket still in flight (after an error), returning st or the first error. */
mt_status mt__coll_drain(mt_function *f, mt__jplan *p, mt_status st);

/* fuse.c: builds the fused schedule for FAST_RUN. */
mt_status mt__plan_fused(mt_function *f, mt__jplan *p);
/* fuse.c: a binary min-heap of *n keys in h (room for every key pushed), for the orderings of
 * the fusion and collective passes. */
void mt__jheap_push(int64_t *h, int32_t *n, int64_t x);
int64_t mt__jheap_pop(int64_t *h, int32_t *n);

/* Runs plan p: binds the leaves, runs every step, and moves each output's and update's value
 * (new references) into results[0..n_outputs+n_updates) (empty on entry; left empty on error).
 * keep: every slot keeps its value after the run (MT_MODE_CHECK's reference run; release them
 * with mt__plan_clear). check (not NULL): after each step, its results are compared with
 * check[slot] (values of the reference run), naming the first node that differs. */
mt_status mt__plan_run(mt_function *f, mt__jplan *p, const mt_array *const *inputs,
                       mt_array *results, bool keep, const mt_array *check);
void mt__plan_clear(mt__jplan *p);

/* check.c: MT_MODE_CHECK's comparison of the fast results a[] with the reference results b[]
 * (n_outputs then n_updates values): same dtype and shape, values within the per-dtype
 * tolerances (NaN matches NaN, infinities match exactly). ERR_INTERNAL naming the variable,
 * its provenance and the first differing element otherwise. */
mt_status mt__check_results(mt_function *f, const mt_array *a, const mt_array *b);
/* Compares one value of node v (what: "output 0", "node") the same way. */
mt_status mt__check_value(mt_function *f, mt_var v, const char *what, const mt_array *a,
                          const mt_array *b);

/* function.c: mt_function_new with the literal graph kept (no_rewrites, as for mt_graph_eval)
 * when asked: how a loop's body is compiled for a function that has no rewrites. */
mt_status mt__function_new_ex(mt_function **out, const mt_graph *g, int32_t n_inputs,
                              const mt_var *inputs, int32_t n_outputs, const mt_var *outputs,
                              mt_device *dev, const mt_function_options *opts, bool no_rewrites);
/* function.c: mt_function_call without the final device synchronization (each step of a loop:
 * its function's own call synchronizes at the end). */
mt_status mt__function_call_nosync(mt_function *f, int32_t n_in, const mt_array *const *inputs,
                                   int32_t n_out, mt_array *outputs);

/* scan.c: makes *s (zeroed) the SCAN step of the loop of node f->order[pos]: it computes that
 * node and its siblings (SCAN nodes of the same body and the same operands) at later positions
 * where live is true (live NULL: every position) and taken is false, marking those in taken.
 * The body is compiled here (once per function and body: f->scan_fns), so its errors surface
 * at compile time. */
mt_status mt__scan_step_init(mt_function *f, int32_t pos, const bool *live, bool *taken,
                             mt__jstep *s);
/* Runs a SCAN step (ins: the loop's operand values), writing each live node's value. */
mt_status mt__scan_run(mt_function *f, mt__jstep *s, const mt_array *const *ins,
                       mt_array *values);
void mt__scan_free(mt__scan *sc); /* NULL ok */
/* Frees the compiled bodies (f->scan_fns); the steps only borrow them. */
void mt__scan_fns_free(mt_function *f);
/* Appends the step's description (one line and one line per node, as for fused kernels). */
void mt__scan_print(const mt_function *f, int32_t k, const mt__jstep *s, mt_strbuf *sb);

#endif /* MT_JIT_IMPL_H */
