/* Private interface of the rewrite system (src/graph/rewrite_engine.c and the rule families
 * rules_*.c): the rule descriptor, the context a rule runs in, and the small matching and
 * building helpers the rules share. See include/mltrain/graph_rewrite.h for the design.
 *
 * A rule is a function (cx, v) -> replacement or MT_VAR_NONE. It looks at v (already rebuilt on
 * its final operands for this sweep) and its operands, and when its pattern matches it calls
 * mt__rw_begin(cx, v) once and then builds the replacement with the graph's builders or
 * mt_graph_make. The replacement must have v's dtype and ndim and agree with v's static sizes.
 * A rule never edits nodes, never records graph errors on a mismatch (it just returns
 * MT_VAR_NONE), and does not worry about cost: the engine measures the change of the graph's
 * cost and refuses replacements that do not decrease it. */
#ifndef MLTRAIN_REWRITE_IMPL_H
#define MLTRAIN_REWRITE_IMPL_H

#include "graph_impl.h"
#include "mltrain/graph_rewrite.h"

typedef struct mt__rw_ctx {
    mt_graph *g;
    int64_t fold_max;       /* constant folding limit (elements) */
    bool fold_enabled;      /* false in the early stabilize sweeps */
    const char *rule_name;  /* the rule being tried (for provenance) */
    bool began;             /* mt__rw_begin was called for this attempt */
} mt__rw_ctx;

typedef mt_var (*mt__rule_fn)(mt__rw_ctx *cx, mt_var v);

/* A rule: the public description, the root it matches (op, and sop for ELEMWISE roots;
 * MT_OP_COUNT / MT_SOP_COUNT = any) and the function. */
typedef struct mt__rule {
    mt_rewrite_info info;
    mt_op root_op;
    mt_sop root_sop;
    mt__rule_fn fn;
} mt__rule;

#define MT__PH(p) (1u << MT_REWRITE_##p)

/* Rule families, one table per file, in the order they are tried. */
extern const mt__rule mt__rules_fold[];
extern const int32_t mt__rules_fold_count;
extern const mt__rule mt__rules_algebra[];
extern const int32_t mt__rules_algebra_count;
extern const mt__rule mt__rules_shape[];
extern const int32_t mt__rules_shape_count;
extern const mt__rule mt__rules_stability[];
extern const int32_t mt__rules_stability_count;
extern const mt__rule mt__rules_blas[];
extern const int32_t mt__rules_blas_count;

/* Called by a rule once its pattern matched, before it builds anything: new nodes get v's
 * provenance plus the rule's name (the engine restores the previous origin afterwards). */
void mt__rw_begin(mt__rw_ctx *cx, mt_var v);

/* ---------------------------------------------------------------- matching helpers */

/* v's scalar op if v is ELEMWISE, else MT_SOP_COUNT. */
mt_sop mt__rw_sop(const mt_graph *g, mt_var v);
/* true if v is ELEMWISE with that scalar op. */
bool mt__rw_is(const mt_graph *g, mt_var v, mt_sop sop);
/* Operand i of v. */
mt_var mt__rw_in(const mt_graph *g, mt_var v, int32_t i);
/* true if v is a constant (or a view/broadcast/cast of one) whose elements all equal `value`
 * (compared in double; integers exactly; -0.0 equals 0.0). */
bool mt__rw_const_eq(const mt_graph *g, mt_var v, double value);
/* true and *out = the uniform value of v as double (see mt_graph_scalar_value). */
bool mt__rw_const_value(const mt_graph *g, mt_var v, double *out);
/* true if repl may replace v: same dtype and ndim, and repl's size equals v's wherever v's is
 * static (an unknown size of v may be static in repl). */
bool mt__rw_fits(const mt_graph *g, mt_var repl, mt_var v);
/* true if a and b have equal dtype, ndim and static shape entries (unknown == unknown). */
bool mt__rw_same_type(const mt_graph *g, mt_var a, mt_var b);
/* true if every element of v is known finite (integer/bool dtype, constants without inf/NaN,
 * views of those, and bounded or finite-preserving elementwise functions of those). */
bool mt__rw_known_finite(const mt_graph *g, mt_var v);
/* true if every element of v is known finite and nonzero (constants only). */
bool mt__rw_known_finite_nonzero(const mt_graph *g, mt_var v);

/* ---------------------------------------------------------------- building helpers */

/* ELEMWISE node with exactly these operands (which already satisfy the contract). */
mt_var mt__rw_ew1(mt__rw_ctx *cx, mt_sop sop, mt_var a);
mt_var mt__rw_ew2(mt__rw_ctx *cx, mt_sop sop, mt_var a, mt_var b);
/* A constant of like's dtype and ndim with every size 1 (so it broadcasts in elementwise ops)
 * holding value (converted with NumPy casting). */
mt_var mt__rw_scalar_like(mt__rw_ctx *cx, mt_var like, double value);
/* An array of v's type filled with value: a constant when v's shape is static and small,
 * else a broadcast of a scalar constant (to v's static shape, or like ref's shape when ref has
 * v's shape). MT_VAR_NONE if neither is possible. */
mt_var mt__rw_full(mt__rw_ctx *cx, mt_var v, mt_var ref, double value);

/* ---------------------------------------------------------------- cost (rewrite_engine.c) */

/* Penalty and weight of one node (constants: 0, 0). */
void mt__rw_node_pw(const mt_graph *g, mt_var v, int64_t *penalty, int64_t *weight);

#endif /* MLTRAIN_REWRITE_IMPL_H */
