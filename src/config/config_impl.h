/* Private declarations of the config module: the document arena, small hash maps, the
 * template position map, and the entry points shared between the stage files
 * (template.c -> parse.c -> scalar.c / vars.c; registry.c, validate.c, build.c). */
#ifndef MT_CONFIG_IMPL_H
#define MT_CONFIG_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "mltrain/config.h"

/* ---------------------------------------------------------------- maps */

/* The open-addressing table (linear probing, power-of-two capacity, at most half full) behind
 * both maps below; a zeroed struct is an empty map. */
typedef struct mt__hmap {
    const void **keys;
    int64_t *vals;
    size_t cap, n;
} mt__hmap;

/* Map from pointer to int64 (memo tables, visited sets). */
typedef mt__hmap mt__ptrmap;
bool mt__ptrmap_get(const mt__ptrmap *m, const void *key, int64_t *val);
mt_status mt__ptrmap_put(mt__ptrmap *m, const void *key, int64_t val);
bool mt__ptrmap_del(mt__ptrmap *m, const void *key);
void mt__ptrmap_deinit(mt__ptrmap *m);

/* Map from a NUL-terminated string (not copied) to int64. */
typedef mt__hmap mt__strmap;
bool mt__strmap_get(const mt__strmap *m, const char *key, int64_t *val);
mt_status mt__strmap_put(mt__strmap *m, const char *key, int64_t val);
void mt__strmap_deinit(mt__strmap *m);

/* ---------------------------------------------------------------- the document */

struct mt_cfg_doc {
    mt_arena arena;
    mt_cfg_node *root;
    const char **files; /* interned file names (arena) */
    int32_t n_files, cap_files;
    const char **tnames; /* template names used, first use order (arena) */
    int32_t n_tnames, cap_tnames;
    int32_t next_anchor;
};

mt_cfg_node *mt__doc_node(mt_cfg_doc *doc, mt_cfg_kind kind, mt_cfg_loc loc);
const char *mt__doc_file(mt_cfg_doc *doc, const char *name); /* interned copy */
mt_status mt__doc_add_tname(mt_cfg_doc *doc, const char *name, size_t len);

/* ---------------------------------------------------------------- templating (stage 1) */

/* One stretch of templated output mapped back to where it was written. A non-fixed segment
 * is a verbatim copy of source text starting at (src_line, src_col); a fixed one is a
 * substituted value and every position in it maps to the template's own position. */
typedef struct mt__tseg {
    int32_t out_line, out_col; /* 1-based, columns in characters as libyaml counts them */
    const char *file;          /* interned in the doc */
    int32_t src_line, src_col;
    bool fixed;
} mt__tseg;

typedef struct mt__tmap {
    mt__tseg *segs;
    int32_t n, cap;
} mt__tmap;

void mt__tmap_deinit(mt__tmap *m);
/* Advances a 1-based (line, col) over n bytes of text as libyaml counts lines and columns. */
void mt__text_advance(const char *s, size_t n, int32_t *line, int32_t *col);
/* Where output position (line, col) (1-based) was written. */
mt_cfg_loc mt__tmap_loc(const mt__tmap *m, int32_t line, int32_t col);

/* Applies stage 1 to text (of file `file`, interned): *out is a new mt_malloc'd text, *map
 * tells where each part came from. `depth` counts @file nesting. */
mt_status mt__template_apply(mt_cfg_doc *doc, const mt_cfg_options *opts, const char *file,
                             const char *text, size_t len, int32_t depth, char **out,
                             size_t *out_len, mt__tmap *map);

/* ---------------------------------------------------------------- parsing (stages 2-5) */

typedef struct mt__loader {
    mt_cfg_doc *doc;
    const mt_cfg_options *opts;
    mt_cfg_limits lim; /* with defaults filled in */
    int64_t nodes;     /* nodes so far, aliases counted as their whole subtree */
    int64_t bytes;     /* text of every file loaded so far (includes add up) */
    int32_t include_depth;
    char *stack[16]; /* canonical paths of the files being loaded (include cycles) */
    int32_t n_stack;
} mt__loader;

/* Loads `text` (already read; `file` interned name, `dir` the directory includes are
 * relative to, `canon` its canonical path or NULL) at nesting `depth`; *root on success. */
mt_status mt__load_text(mt__loader *ld, const char *file, const char *dir, const char *text,
                        size_t len, int32_t depth, mt_cfg_node **root);
/* Reads and loads a file (limits, templating, includes); `at` is where it was included
 * from (line 0 for the top-level file). */
mt_status mt__load_path(mt__loader *ld, const char *path, mt_cfg_loc at, int32_t depth,
                        mt_cfg_node **root);

/* Stage 2-5 on templated text: libyaml events -> nodes (tags, anchors, limits, includes). */
mt_status mt__parse_yaml(mt__loader *ld, const char *file, const char *dir, const char *text,
                         size_t len, const mt__tmap *map, int32_t depth, mt_cfg_node **root);
/* The limits with defaults for fields <= 0. */
mt_cfg_limits mt__limits(const mt_cfg_options *opts);

/* Stage 4: types an untagged plain scalar into node (kind, b, i, f). ERR_FORMAT for an
 * integer out of the int64 range. */
mt_status mt__scalar_type(mt_cfg_node *node, const char *text, size_t len);
/* Parses a number for !float (ints accepted). */
bool mt__parse_float(const char *text, double *out);
bool mt__parse_int(const char *text, int64_t *out, bool *overflow);

/* Stage 5: ${VAR} substitution. *out is text itself (not copied) when there is no "${",
 * else a new arena string; *changed tells which. Errors at loc. */
mt_status mt__vars_subst(mt__loader *ld, const char *text, mt_cfg_loc loc, const char **out,
                         bool *changed);

/* ---------------------------------------------------------------- registry */

/* The closest registered name (or alias) to an unknown component name, or NULL. */
const char *mt__registry_suggest(const mt_cfg_registry *r, const char *name);

/* ---------------------------------------------------------------- helpers */

/* "a" or "an" for a word. */
const char *mt__article(const char *word);
/* Appends a short description of a node: "int '5'", "list", "obj 'MLP'", "null". */
void mt__describe_node(mt_strbuf *sb, const mt_cfg_node *n);
/* True when msg already starts with "FILE:LINE:COL: ". */
bool mt__has_position(const char *msg);

#endif /* MT_CONFIG_IMPL_H */
