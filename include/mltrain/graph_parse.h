/* mltrain graph: the expression language (docs/expressions.md).
 *
 * A NumPy-like subset of Python expression syntax, parsed straight into graph nodes:
 *
 *     mt_var a = mt_graph_placeholder(g, "a", MT_FLOAT64, 1, (int64_t[]){3});
 *     mt_var y;
 *     mt_parse_error err;
 *     if (mt_graph_parse(g, "a + a**10", 0, NULL, NULL, &y, &err) != MT_OK) {
 *         mt_strbuf sb; mt_strbuf_init(&sb);
 *         mt_parse_error_format(&err, "a + a**10", &sb);   // "1:3: add: ...\n  a + ...\n  ~~^~~"
 *         ...
 *     }
 *
 * Names resolve, in this order, to: the bindings given by the caller, the caller's lookup
 * callback, the graph's placeholders of that name (unless no_placeholders), the constants
 * pi, e, inf, nan, newaxis, and the dtype names (float32, int64, ...). In call position
 * (f(...)) a name is a function of the language. The result of a parse is an ordinary graph
 * variable, hash-consed with every other node: parsing "exp(a) + 1" gives the same variable as
 * mt_graph_add(g, mt_graph_exp(g, a), mt_graph_literal_int(g, 1)).
 *
 * Provenance: every node the parse builds records the text span of the sub-expression it came
 * from (mt_graph_set_origin_span over a copy of the text added with mt_graph_add_source), so
 * later errors (run-time shape checks, rewrites, --print-graph) point at the user's text. The
 * graph's current origin is cleared when the parse returns.
 *
 * Errors never abort and never read outside the text, whatever the input. A failed parse
 * returns the status (ERR_INVALID for syntax, names and arguments; the builder's code —
 * ERR_SHAPE, ERR_DTYPE, ERR_RANGE, ... — for type errors found while building), fills *err
 * with the message and the span to underline, and records "L:C: message" in the thread-local
 * slot. The whole text is checked for syntax before any node is built. The graph's sticky
 * error (mt_graph_status) is left as it was before the call, so a caller may report the error
 * and keep using the graph; nodes built before the failure stay in the graph as garbage.
 *
 * Limits (clear ERR_RANGE errors): the text length (default 65536 bytes) and the nesting depth
 * of the expression (default 100 levels; each parenthesized, bracketed or argument
 * sub-expression, each unary operator, each `**` and each trailer — call, subscript or
 * attribute — on one operand adds a level). Thread safety: as for the graph (one thread per graph
 * at a time). */
#ifndef MLTRAIN_GRAPH_PARSE_H
#define MLTRAIN_GRAPH_PARSE_H

#include "mltrain/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MT_PARSE_DEFAULT_MAX_LENGTH 65536
#define MT_PARSE_DEFAULT_MAX_DEPTH 100
#define MT_PARSE_MAX_DEPTH_LIMIT 1000 /* larger max_depth values are clamped (stack use) */

/* Looks a name up for the parser: returns the variable, or MT_VAR_NONE when the callback does
 * not know the name (the parser then tries the next source; no error is recorded). */
typedef mt_var (*mt_parse_lookup_fn)(void *user, mt_graph *g, const char *name);

typedef struct mt_parse_options {
    int32_t n_bindings; /* name -> variable pairs (names are identifiers) */
    const char *const *names;
    const mt_var *vars;
    mt_parse_lookup_fn lookup; /* optional, consulted after the bindings */
    void *lookup_user;
    bool no_placeholders; /* do not resolve names to the graph's placeholders */
    int32_t max_length;   /* bytes; 0 = MT_PARSE_DEFAULT_MAX_LENGTH */
    int32_t max_depth;    /* 0 = MT_PARSE_DEFAULT_MAX_DEPTH; at most
                             MT_PARSE_MAX_DEPTH_LIMIT */
} mt_parse_options;

void mt_parse_options_init(mt_parse_options *opts); /* all zero: the defaults above */

/* Where and why a parse failed. Offsets are 0-based byte offsets into the text; line and col
 * (1-based; col counts characters, a UTF-8 sequence being one) locate `point`, the caret. */
typedef struct mt_parse_error {
    mt_status status;   /* MT_OK when the parse succeeded */
    int32_t begin, end; /* span to underline: [begin, end) */
    int32_t point;      /* offset of the caret, begin <= point < max(end, begin + 1) */
    int32_t line, col;
    char message[MT_ERR_MSG_MAX]; /* without the position, e.g. "name 'b' is not defined" */
} mt_parse_error;

/* Parses text into *out. n_bindings names[i] -> vars[i] (may be 0 / NULL). err may be NULL.
 * On failure *out is MT_VAR_NONE. */
mt_status mt_graph_parse(mt_graph *g, const char *text, int32_t n_bindings,
                         const char *const *names, const mt_var *vars, mt_var *out,
                         mt_parse_error *err);
/* The same with options (NULL: defaults). */
mt_status mt_graph_parse_ex(mt_graph *g, const char *text, const mt_parse_options *opts,
                            mt_var *out, mt_parse_error *err);

/* Appends the error as three lines (no trailing newline) in the style of compilers:
 *     1:3: add: shapes (3,) and (4,) do not broadcast
 *       a + b[1:]
 *       ~~^~~~~~~
 * The source line is the one holding the caret (long lines are cut to a window around it,
 * control characters shown as spaces); the underline covers the span on that line. text is
 * the text given to the parse (NULL: only the first line is written). */
void mt_parse_error_format(const mt_parse_error *err, const char *text, mt_strbuf *sb);

/* The functions of the language (for documentation, completion and tests): name and
 * signature, e.g. "sum" and "sum(a, axis=None, dtype=None, *, keepdims=False)". Aliases are
 * separate entries. i in [0, mt_parse_function_count()); NULL when out of range. */
int32_t mt_parse_function_count(void);
const char *mt_parse_function_name(int32_t i);
const char *mt_parse_function_signature(int32_t i);

#ifdef __cplusplus
}
#endif
#endif /* MLTRAIN_GRAPH_PARSE_H */
