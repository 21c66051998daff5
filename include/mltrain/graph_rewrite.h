/* mltrain graph rewrites: the rule database and the engine that optimizes a graph for speed
 * and numerical stability before the JIT lowers it.
 *
 * Rules are named local rewrites ("log1p": log(1 + x) -> log1p(x)). Each rule is tagged with
 * the phases it runs in and with a soundness class (below); the full table with every rule's
 * soundness argument is docs/rewrites.md. Any rule can be switched off by name
 * (mt_rewrite_options.disabled, `mltrain eval --no-rewrite NAME`).
 *
 * Phases (mt_rewrite_phase), in order:
 *   CANONICALIZE  algebraic normal forms and removal of useless work: x*1, x+0, -(-x), useless
 *                 casts/reshapes/dimshuffles/broadcasts and their chains, reductions of
 *                 broadcasts, reciprocal forms, identities that are exact only for finite
 *                 operands (applied where the operand is known finite).
 *   STABILIZE     numerically unstable subgraphs -> the stable first-class ops (log1p, expm1,
 *                 log1mexp, softplus, sigmoid, logsumexp, logaddexp, softmax, logsoftmax, the
 *                 fused crossentropies).
 *   SPECIALIZE    faster special cases: powers with small constant exponents, 1/x ->
 *                 reciprocal, dot + bias + scale -> GEMM with transposes absorbed, argmax of
 *                 monotone functions.
 *   FUSE          elementwise fusion: done by the JIT when it builds its schedule (no graph
 *                 rules here; the phase exists so the pipeline is named in one place).
 *   MEMORY        in-place updates and buffer reuse: done by the JIT's liveness-based memory
 *                 planner (no graph rules here either).
 * mt_graph_optimize runs CANONICALIZE, STABILIZE and SPECIALIZE (up to options.last_phase).
 * STABILIZE's rules also run once before CANONICALIZE with constant folding off, so an unstable
 * constant subexpression (log(1 + 1e-30)) is turned into its stable form before it is folded.
 * Constant folding itself is a rule ("constant_fold") of every phase; it evaluates elementwise
 * ops and layout ops over small constants on the host with the same formulas as the kernels
 * (gpuarray's kernel interpreter), stable functions included, so folding never loses what
 * stabilization gained.
 *
 * Termination. The engine sweeps the live graph in topological order and applies at most a few
 * rules per node per sweep; sweeps repeat until none applies. Every application must strictly
 * decrease the cost of the live graph, a tuple compared lexicographically
 *     (P, N, W, D)
 *   P  sum of op penalties: the forms rules exist to remove (log 4, log1p 2, pow 2, reduce 1)
 *   N  number of non-constant nodes
 *   W  sum of op weights (a rank from generic to specialized ops: add 12 > div 11 > neg 4 > gemm)
 *   D  sum of node heights (longest operand path to a leaf), a tie-breaker for chain merges
 * over the non-constant nodes reachable from the outputs (constants cost nothing). The engine
 * keeps exact use counts while it sweeps, computes the change of (P, N, W, D) that each
 * proposed replacement causes (nodes made live minus nodes made dead) and refuses any that do
 * not decrease it (counted in stats.rejected). The cost is a tuple of natural numbers, so
 * termination holds by construction, whatever rules are added. With options.verify (on by
 * default in builds without NDEBUG and with MLTRAIN_REWRITE_VERIFY=1), the engine also
 * recomputes the cost of the whole live graph after every sweep and checks that it decreased,
 * and runs mt_graph_verify at the end (ERR_INTERNAL otherwise).
 *
 * Soundness (mt_rewrite_soundness):
 *   EXACT     the same function of the inputs in real arithmetic, extended to +-inf by limits
 *             and NaN for NaN. Results may differ by rounding (and in the sign of a zero:
 *             x + 0 -> x keeps -0), and where the original overflows, underflows or cancels in
 *             an intermediate (log(1 + 1e-30) = 0, exp(800) / (1 + exp(800)) = NaN) the
 *             rewritten graph gives the accurate value. Everything else, inf and NaN results
 *             included, is unchanged.
 *   GUARDED   an identity on a domain; the replacement contains an explicit guard (a where)
 *             that reproduces the original's value outside it (x**0.5 -> sqrt(x) keeps
 *             (-inf)**0.5 = inf).
 *   FINITE    changes results for inf or NaN operands (x - x -> 0); applied only where the
 *             operand is known finite: integer/bool dtypes, constants without inf/NaN and
 *             bounded functions of those. Never for a float placeholder.
 * Rules that are unsound on part of the domain (arccosh(cosh(x)) -> x) are not in the database.
 *
 * Provenance: every node a rule creates carries the provenance of the node it replaces, with the
 * rule's name appended to its rewrite list (mt_graph_format_provenance shows "via log1p").
 *
 * Thread safety: the rule database is constant; mt_graph_optimize uses one graph at a time (as
 * every graph function does). */
#ifndef MLTRAIN_GRAPH_REWRITE_H
#define MLTRAIN_GRAPH_REWRITE_H

#include <stdbool.h>
#include <stdint.h>

#include "mltrain/core.h"
#include "mltrain/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum mt_rewrite_phase {
    MT_REWRITE_CANONICALIZE = 0,
    MT_REWRITE_STABILIZE,
    MT_REWRITE_SPECIALIZE,
    MT_REWRITE_FUSE,   /* run by the JIT (no graph rules) */
    MT_REWRITE_MEMORY, /* run by the JIT (no graph rules) */
    MT_REWRITE_PHASE_COUNT
} mt_rewrite_phase;

typedef enum mt_rewrite_soundness {
    MT_REWRITE_EXACT = 0,
    MT_REWRITE_GUARDED,
    MT_REWRITE_FINITE,
    MT_REWRITE_SOUNDNESS_COUNT
} mt_rewrite_soundness;

/* "canonicalize", "stabilize", "specialize", "fuse", "memory"; "invalid" if out of range. */
const char *mt_rewrite_phase_name(mt_rewrite_phase phase);
/* "exact", "guarded", "finite"; "invalid" if out of range. */
const char *mt_rewrite_soundness_name(mt_rewrite_soundness s);

/* One rule of the database. */
typedef struct mt_rewrite_info {
    const char *name;    /* unique, [a-z0-9_] */
    const char *summary; /* "log(1 + x) -> log1p(x); log(1 - x) -> log1p(-x)" */
    uint32_t phases;     /* bit (1u << phase) for each phase the rule runs in */
    mt_rewrite_soundness soundness;
} mt_rewrite_info;

/* The most rules the database can hold (the size of mt_rewrite_stats.applied). */
#define MT_REWRITE_MAX_RULES 96

/* Number of rules; rules are numbered 0..count-1 in a fixed order (the order they are tried). */
int32_t mt_rewrite_count(void);
/* Rule i, or NULL if out of range. */
const mt_rewrite_info *mt_rewrite_get(int32_t i);
/* The index of the rule with that name, or -1. */
int32_t mt_rewrite_find(const char *name);
/* MT_OK if every name is a rule; otherwise ERR_INVALID "unknown rewrite 'foo'; known rewrites:
 * constant_fold, mul_one, ..." (for command lines, before any graph is built). */
mt_status mt_rewrite_check_names(int32_t n, const char *const *names);

typedef struct mt_rewrite_options {
    int32_t n_disabled;
    const char *const *disabled;  /* rule names switched off (not copied; read during the call) */
    mt_rewrite_phase last_phase;  /* last phase to run (default SPECIALIZE; FUSE and MEMORY
                                     add nothing here) */
    int64_t fold_max_elements;    /* constant folding produces at most this many elements
                                     (default 4096; larger uniform results become a broadcast
                                     of a scalar constant) */
    int32_t max_rewrites_per_node; /* per node and sweep (default 8) */
    bool verify;                  /* whole-graph cost check per sweep + mt_graph_verify at the
                                     end (default: see the top of this file) */
} mt_rewrite_options;

/* Defaults: nothing disabled, up to SPECIALIZE, 4096 elements, 8, verify as described above. */
void mt_rewrite_options_init(mt_rewrite_options *opts);

/* The cost of a graph (see the top of this file). */
typedef struct mt_rewrite_cost {
    int64_t penalty; /* P */
    int64_t nodes;   /* N */
    int64_t weight;  /* W */
    int64_t height;  /* D */
} mt_rewrite_cost;

/* Cost of the nodes reachable from the outputs. ERR_INVALID for an invalid output handle. */
mt_status mt_rewrite_graph_cost(const mt_graph *g, int32_t n_outputs, const mt_var *outputs,
                                mt_rewrite_cost *out);
/* < 0, 0, > 0 as a is lexicographically smaller, equal, larger than b. */
int mt_rewrite_cost_compare(const mt_rewrite_cost *a, const mt_rewrite_cost *b);

typedef struct mt_rewrite_stats {
    int32_t n_rules;                        /* mt_rewrite_count() */
    int64_t applied[MT_REWRITE_MAX_RULES];  /* applications per rule index */
    int64_t total;                          /* sum of applied[] */
    int64_t rejected;                       /* replacements refused by the cost check */
    int32_t sweeps[MT_REWRITE_PHASE_COUNT]; /* sweeps per phase (the early stabilize sweeps
                                               count under STABILIZE) */
    int32_t nodes_before, nodes_after;      /* live nodes (constants included) */
    mt_rewrite_cost cost_before, cost_after;
    double seconds;
} mt_rewrite_stats;

/* Applications of the rule with that name (0 if unknown). */
int64_t mt_rewrite_stats_count(const mt_rewrite_stats *stats, const char *name);
/* "rewrites: 12 applied (log1p 1, mul_one 3, ...), 0 rejected, 3+2+2 sweeps, 40 -> 31 nodes,
 * 0.12 ms" on one line (no newline). ERR_NOMEM only. */
mt_status mt_rewrite_stats_format(const mt_rewrite_stats *stats, mt_strbuf *sb);

/* Optimizes the part of g that the outputs need. outputs[i] is replaced (in place) by the
 * variable that computes the same value in the rewritten graph; new nodes are appended to g
 * (nodes are immutable; the old ones stay as garbage until g is freed or cloned with
 * mt_graph_clone_with). opts NULL: defaults. stats NULL: not collected.
 * Errors: ERR_INVALID for an invalid output handle, a graph whose sticky error is set, an
 * unknown rule name in opts->disabled (the message lists the known ones) or a bad option;
 * ERR_NOMEM; ERR_INTERNAL if options.verify finds a broken invariant (a bug in a rule). On error
 * outputs[] are unchanged. */
mt_status mt_graph_optimize(mt_graph *g, int32_t n_outputs, mt_var *outputs,
                            const mt_rewrite_options *opts, mt_rewrite_stats *stats);

#ifdef __cplusplus
}
#endif
#endif /* MLTRAIN_GRAPH_REWRITE_H */
