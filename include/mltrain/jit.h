/* mltrain jit: turns a graph into a callable function on one device and runs it.
 *
 * A function (mt_function, opaque) is compiled from a graph, a list of INPUT placeholders that
 * become its arguments, the variables it returns, and updates (pairs: a placeholder and the
 * expression giving its new value). The function takes a private copy of the part of the graph
 * it needs (mt_graph_clone_with), so the caller's graph may be changed or freed afterwards; all
 * handles passed to the mt_function_* calls are the CALLER's handles (of the graph given to
 * mt_function_new).
 *
 * Shared variables (Theano's `shared`, used for parameters and optimizer state). Every
 * placeholder the outputs or updates need that is not an argument, and every update target, is
 * a shared variable of the function: its value is a device array held by the function
 * (mt_function_set_shared) and kept between calls. A call computes all outputs and all update
 * values from the OLD values, then writes the updates back, in place into the held arrays.
 * Because set_shared retains the caller's array when it can (instead of copying), two functions
 * given the same array (a training function and a monitoring function) share the parameter:
 * the updates of one are seen by the other.
 *
 * Modes:
 *   MT_MODE_FAST_RUN      the optimized path: the graph rewrites (mt_graph_optimize, minus
 *                         opts.disabled_rewrites) run on the function's copy of the graph;
 *                         maximal groups of elementwise nodes become single (multi-output)
 *                         kernels with scalar constants inlined; a reduction whose operand is
 *                         a kernel's only result (read by nothing else) runs in the same pass
 *                         (mt_reduce_fused: no temporary); the schedule is built once;
 *                         temporaries are freed at their last use; an update computed by a
 *                         kernel or GEMM that is the last reader of its variable is written in
 *                         place. Every other node runs as in the reference executor.
 *   MT_MODE_FAST_COMPILE  the reference executor: every node runs through gpuarray's generic
 *                         operations (no code generation of its own; the fallback where no C
 *                         compiler exists). The canonicalize and stabilize rewrite phases still
 *                         run (minus opts.disabled_rewrites), as in PyTensor, so a mode never
 *                         gives inf where another gives the accurate value (log(1 + exp(800)));
 *                         mt_graph_eval alone runs the literal, unrewritten graph;
 *   MT_MODE_CHECK         runs the reference schedule (keeping every node's value), then the
 *                         fast schedule, comparing each step's results with the reference
 *                         values of the same nodes as it goes, then every output and update
 *                         value, with per-dtype tolerances (opts.check_rtol/atol override
 *                         them); a difference is ERR_INTERNAL naming the node, its provenance
 *                         and the first differing element. The fast path's results are the
 *                         ones returned and written back. Nodes created by rewrites have no
 *                         reference value and are checked only through the outputs. An output
 *                         computed through a stability rewrite is compared leniently, as the
 *                         literal reference is then the inaccurate side: elements where the
 *                         reference is inf or NaN pass unless the fast path gives NaN, and
 *                         tolerances are at least sqrt(eps) of the dtype (src/jit/check.c).
 *                         For finding miscompiled kernels; slow.
 *
 * Random nodes: in call number c (0-based, mt_function_rng_counter), element i of a RANDOM node
 * with attrs (seed, stream) draws Philox4x32-10 with key mt_hash64_combine(seed, stream) and
 * counter (c << 32) + i (binomial trial t uses i + t * numel), so successive calls differ and
 * a function restarted with mt_function_set_rng_counter continues the same sequence.
 *
 * Errors: every fallible call returns mt_status and records a message (core.h). Run-time
 * errors of a node name the node, its operation and its provenance (the user's expression or
 * C call site), and run-time shape checks name both shapes.
 *
 * Thread safety: a function is called by one thread at a time (it owns its scratch storage);
 * different functions are independent. Device work is complete when mt_function_call returns. */
#ifndef MLTRAIN_JIT_H
#define MLTRAIN_JIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mltrain/core.h"
#include "mltrain/gpuarray.h"
#include "mltrain/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mt_function mt_function; /* opaque */

typedef enum mt_mode {
    MT_MODE_FAST_RUN = 0,
    MT_MODE_FAST_COMPILE,
    MT_MODE_CHECK,
    MT_MODE_COUNT
} mt_mode;

/* "fast_run", "fast_compile", "check"; "invalid" if out of range. */
const char *mt_mode_name(mt_mode mode);
/* Parses the names above (also with '-' for '_'); ERR_INVALID listing the valid names. */
mt_status mt_mode_from_name(mt_mode *out, const char *name);

/* Collective hooks: how a function carries out its graph's ALLREDUCE nodes (graph.h), filled by
 * the data-parallel module (parallel.h, mt_dp_function_options) or by tests. The jit knows no
 * communicator: it only calls these.
 *   start  begins the in-place sum over the group of the n arrays of one bucket (all ALLREDUCE
 *          nodes of that bucket the schedule computes, in a fixed order that is the same in
 *          every process compiling the same graph). The arrays are C-contiguous, writeable and
 *          owned by the executor, which leaves them untouched until `wait`; they are
 *          consecutive views of one buffer when they share a dtype (one flat all-reduce
 *          suffices). *req receives the hook's handle of the started operation.
 *   wait   completes it; called exactly once per successful start, also when the call fails
 *          in between (then its error is dropped).
 * FAST_RUN starts every bucket as soon as all its operands exist and waits for it just before
 * the first step that reads one of its results, so communication overlaps the rest of the
 * schedule (the backward pass). FAST_COMPILE and the reference run of CHECK wait right after
 * each start (CHECK runs both schedules, so every bucket is reduced twice per call). */
typedef struct mt_collective_hooks {
    void *ctx;
    mt_status (*start)(void *ctx, int32_t bucket, int32_t n, mt_array *const *arrays,
                       void **req);
    mt_status (*wait)(void *ctx, void *req);
} mt_collective_hooks;

typedef struct mt_function_options {
    mt_mode mode;            /* default MT_MODE_FAST_RUN */
    bool profile;            /* collect per-step time, bytes and calls (syncs after each step) */
    int32_t n_disabled_rewrites;
    const char *const *disabled_rewrites; /* rewrite names to switch off (copied) */
    double check_rtol;       /* MT_MODE_CHECK tolerances; 0 = per-dtype defaults */
    double check_atol;
    const mt_collective_hooks *collectives; /* NULL (default): none, and a graph with ALLREDUCE
                                               nodes is ERR_INVALID; copied (ctx borrowed) */
} mt_function_options;

/* Fills the defaults (FAST_RUN, no profiling, nothing disabled, per-dtype tolerances). */
void mt_function_options_init(mt_function_options *opts);

/* An update: after each call, the shared placeholder `var` takes the value of `value` (computed
 * from the values before the call). `value` must have var's dtype and ndim; static sizes must
 * agree where both are known. */
typedef struct mt_update {
    mt_var var;
    mt_var value;
} mt_update;

/* Compiles a function. g: the graph (not modified; only read during this call). inputs: the
 * placeholders that become the call's arguments, in order (distinct; may be unused). outputs:
 * the returned variables (repeats allowed). updates: see mt_update (targets distinct, not
 * arguments). dev: the device (retained; NULL = the host device). opts NULL = defaults.
 * Errors: ERR_INVALID for an invalid handle (MT_VAR_NONE from a failed builder, with the
 * graph's first error appended), an argument that is not a placeholder, duplicates, or a graph
 * whose sticky error is set; ERR_DTYPE / ERR_SHAPE for an update whose value does not fit its
 * variable (both types named); ERR_NOMEM. Constants are uploaded to the device here. */
mt_status mt_function_new(mt_function **out, const mt_graph *g, int32_t n_inputs,
                          const mt_var *inputs, int32_t n_outputs, const mt_var *outputs,
                          int32_t n_updates, const mt_update *updates, mt_device *dev,
                          const mt_function_options *opts);
void mt_function_free(mt_function *f); /* releases held arrays and the device; NULL ok */

/* Introspection (for bindings and tools). Handles are the caller's. */
int32_t mt_function_n_inputs(const mt_function *f);
int32_t mt_function_n_outputs(const mt_function *f);
int32_t mt_function_n_shared(const mt_function *f);
int32_t mt_function_n_updates(const mt_function *f);
mt_var mt_function_input(const mt_function *f, int32_t i);  /* MT_VAR_NONE if out of range */
mt_var mt_function_output(const mt_function *f, int32_t i);
mt_var mt_function_shared(const mt_function *f, int32_t i); /* in creation order */
/* Static type of an argument / output / shared variable (NULL if out of range or not shared). */
const mt_type *mt_function_input_type(const mt_function *f, int32_t i);
const mt_type *mt_function_output_type(const mt_function *f, int32_t i);
const mt_type *mt_function_var_type(const mt_function *f, mt_var var);
mt_device *mt_function_device(const mt_function *f); /* borrowed */
mt_mode mt_function_mode(const mt_function *f);

/* Binds a shared variable's value. When `value` is on the function's device, has the
 * variable's dtype and is writeable, the function retains a view of it (no copy: updates are
 * written into that memory, visible to the caller and to other functions holding it);
 * otherwise (another device, a broadcast view) the function keeps a C-contiguous copy on its
 * device. ERR_INVALID if var is not a shared variable of f; ERR_DTYPE / ERR_SHAPE (naming the
 * variable, its type and the given array) if the dtype differs or a static size disagrees. */
mt_status mt_function_set_shared(mt_function *f, mt_var var, const mt_array *value);
/* A new view (one reference) of the held value into *out; the caller clears it. ERR_INVALID if
 * var is not shared or has no value yet. */
mt_status mt_function_get_shared(const mt_function *f, mt_var var, mt_array *out);
bool mt_function_has_shared_value(const mt_function *f, mt_var var);

/* Calls the function. inputs[i] is the value of argument i: its dtype must equal the
 * placeholder's, its ndim too, and its sizes the static ones (ERR_DTYPE / ERR_SHAPE naming the
 * argument, the expected type and the given array); an array on another device is copied to the
 * function's device. outputs: n_out arrays the call fills (overwritten without being released;
 * the caller clears them); an output may be a view of an argument (like NumPy), never of
 * function-owned memory (constants, shared values), and is writeable. On error no output is
 * set and no update is applied, except: a device failure while writing updates back, and in
 * FAST_RUN an in-place update whose kernel ran before the failing step. Also ERR_INVALID for
 * wrong counts and shared variables without a value. Not reentrant. */
mt_status mt_function_call(mt_function *f, int32_t n_in, const mt_array *const *inputs,
                           int32_t n_out, mt_array *outputs);

/* Number of completed calls that advanced the random counter (see above). */
uint64_t mt_function_rng_counter(const mt_function *f);
void mt_function_set_rng_counter(mt_function *f, uint64_t calls);

/* Compile-time facts about the schedule. */
typedef struct mt_function_stats {
    int32_t n_nodes;        /* graph nodes the function computes (leaves included) */
    int32_t n_steps;        /* steps of the schedule that a call runs */
    int32_t n_fused;        /* steps that are fused elementwise kernels (FAST_RUN), those
                               ending in a reduction included */
    int32_t n_fused_nodes;  /* graph nodes inside those fused kernels */
    int64_t peak_bytes;     /* planned peak of temporary device memory (-1: unknown sizes) */
    int64_t run_peak_bytes; /* the same, measured during the last call (0 before any call) */
    double compile_seconds; /* time spent in mt_function_new */
    /* Collectives (ALLREDUCE buckets), accumulated over calls since creation or the last
     * mt_function_reset_profile. collective_seconds sums, per started bucket, the time from
     * its start to the end of its wait (the time it was in flight); collective_wait_seconds the
     * part of it the call spent blocked in the hooks (start and wait). The fraction of
     * communication hidden behind computation is 1 - wait / total (0 when nothing
     * overlapped, 1 when every wait returned at once). */
    int32_t n_buckets;               /* buckets one call starts */
    uint64_t collective_calls;       /* buckets completed */
    double collective_seconds;
    double collective_wait_seconds;
} mt_function_stats;
void mt_function_get_stats(const mt_function *f, mt_function_stats *out);

/* Appends the schedule: arguments, shared variables, one line per step with its node(s), type
 * and provenance, outputs and updates. ERR_NOMEM only. */
mt_status mt_function_print(const mt_function *f, mt_strbuf *sb);

/* Profiling (opts.profile): per step the number of calls, the total time (the device is
 * synchronized after each step so time is attributed correctly) and the bytes read and written.
 * The printer lists steps by decreasing time with their share of the total, then totals.
 * Without profiling it appends a line saying so. */
mt_status mt_function_print_profile(const mt_function *f, mt_strbuf *sb);
void mt_function_reset_profile(mt_function *f);

/* Convenience for tests and tools: compiles a MT_MODE_FAST_COMPILE function with input_vars as
 * arguments (every placeholder needed must be among them), calls it once with input_arrays and
 * frees it. out_arrays (n_out) are filled as by mt_function_call. dev NULL = host. */
mt_status mt_graph_eval(const mt_graph *g, int32_t n_out, const mt_var *outputs, int32_t n_in,
                        const mt_var *input_vars, const mt_array *const *input_arrays,
                        mt_device *dev, mt_array *out_arrays);

#ifdef __cplusplus
}
#endif
#endif /* MLTRAIN_JIT_H */
