/* mltrain config: experiment files (YAML) as a typed tree, validated against registered
 * component schemas, then built into objects.
 *
 * Loading (mt_cfg_load_file) runs these stages in order:
 *   1. text templating (Pylearn2 tutorials' Python %-templates): every `%(name)s`, `%(name)i`,
 *      `%(name)d`, `%(name)f` and `%(name)r` in the raw text is replaced by the value of `name`
 *      from the template parameters (`--param name=value`; a value `@path` is replaced by that
 *      file's text, path relative to the current directory, itself templated; its nodes keep
 *      that file's name and positions); `%%` is a literal '%'. `i`/`d` require an integer
 *      value, `f` a number (written as Python's %f), `r` quotes a non-number. A template name
 *      without a value is an error naming file:line:column, every missing name and the
 *      parameters given. A file with no "%(" is unchanged (even a "%%" in it).
 *   2. YAML 1.1 parsing with libyaml: anchors and aliases (an alias is the SAME node, so it
 *      builds to the same object), duplicate mapping keys are errors, non-scalar keys are
 *      errors; nesting depth, file size and alias expansion are bounded (mt_cfg_limits).
 *   3. tags: `!obj:NAME` on a mapping = a component (NAME as written; resolved against the
 *      registry at validation time); `!pkl: "path"` or `!pkl "path"` (and `!ckpt`) on a scalar =
 *      a checkpoint reference (MT_CFG_PKL); `!include "path"` (or `!include:path`) = the root
 *      node of that YAML file (path relative to the including file; include cycles and depth are
 *      errors); `!float` = the scalar as a float; the YAML core tags (!!str, !!int, !!float,
 *      !!bool, !!null, !!seq, !!map) force those types. Search tags of sweeps (`!uniform`,
 *      `!quniform`, `!loguniform`, `!qloguniform`, `!normal`, `!qnormal`, `!lognormal`,
 *      `!qlognormal`, `!randint`, `!intuniform`, `!choice`, `!pchoice`, `!grid`, `!param`) are
 *      kept as MT_CFG_TAGGED for the sweep module. Other tags (Pylearn2's `!import` included)
 *      are errors naming the tag.
 *   4. untagged plain scalars are typed as YAML 1.1 does, plus Pylearn2's rule that `1e-3`
 *      (no dot) is a float: null/~/empty -> NULL; true/false/yes/no/on/off -> BOOL; integers
 *      (decimal, 0x hex, 0b binary, 0-prefixed octal, '_' separators, leading sign; beyond
 *      int64 an error) -> INT; `.5`, `-.5`, `0.`, `1e-3`, `1.5e3`, `1.5E+2`, `.inf`, `.nan` ->
 *      FLOAT; anything else -> STRING. Quoted scalars are always STRING. docs/config.md has the
 *      table.
 *   5. `${VAR}` substitution in every STRING and PKL path: from the variables table first
 *      (mt_cfg_options.vars: MLTRAIN_TRAIN_FILE_FULL_STEM and friends, each also under its
 *      PYLEARN2_ name), then the environment (MLTRAIN_DATA_PATH and PYLEARN2_DATA_PATH stand in
 *      for each other). An unknown variable is an error with a suggestion. `~` at the start of a
 *      string that names a path is expanded by the consumer (mt_cfg_expand_user), not here.
 *      After substitution a STRING that was written as a plain scalar is re-typed (so
 *      `lr: ${LR}` can become a number); quoted scalars stay strings. In flow style (`{...}`)
 *      a `${...}` must be quoted (YAML reads `{` there as syntax), so such a value stays a
 *      string: sweeps should use `!param NAME` or write resolved values (mt_cfg_dump).
 *
 * Positions: every node and every mapping key carries file:line:column (1-based) of where it
 * was written; included files keep their own names. Error messages from this module start with
 * "FILE:LINE:COL: ".
 *
 * Components: a registry maps names (and aliases, e.g. Pylearn2's dotted class names) to a
 * component: its kind ("dataset", "model", "layer", "cost", ...), a schema (keys with types,
 * required or not) and a build function. mt_cfg_validate checks a whole tree before anything is
 * built: unknown component names, unknown keys, wrong types, missing required keys, objects of
 * the wrong kind, each with file:line:column and a suggestion ("did you mean 'learning_rate'?").
 * Building (mt_cfg_build_*) then creates objects; a node is built once and every alias of it
 * gets the same object. The builder owns everything it built and destroys it in reverse
 * creation order when freed.
 *
 * Safety: a YAML file can only instantiate registered components; nothing in a file can run
 * code or load a shared object. */
#ifndef MLTRAIN_CONFIG_H
#define MLTRAIN_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mltrain/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- the tree */

typedef enum mt_cfg_kind {
    MT_CFG_NULL = 0,
    MT_CFG_BOOL,
    MT_CFG_INT,
    MT_CFG_FLOAT,
    MT_CFG_STRING,
    MT_CFG_LIST,
    MT_CFG_MAP,
    MT_CFG_OBJ,    /* !obj:NAME mapping: tag = NAME, keys/items as for MAP */
    MT_CFG_PKL,    /* !pkl: / !ckpt path: str = the path (after ${} substitution) */
    MT_CFG_TAGGED, /* any other registered-later tag (sweep search tags): tag = the tag without
                      '!', and the node's value is in items[0] (a LIST, MAP or scalar node) */
    MT_CFG_KIND_COUNT
} mt_cfg_kind;

const char *mt_cfg_kind_name(mt_cfg_kind k); /* "null", "bool", "int", "float", "string", ... */

typedef struct mt_cfg_loc {
    const char *file; /* owned by the document */
    int32_t line;     /* 1-based; 0 = unknown (nodes made by code) */
    int32_t col;      /* 1-based */
} mt_cfg_loc;

typedef struct mt_cfg_node mt_cfg_node;
struct mt_cfg_node {
    mt_cfg_kind kind;
    mt_cfg_loc loc;
    const char *tag;      /* OBJ: component name as written; TAGGED: the tag; else NULL */
    const char *str;      /* STRING, PKL: value; other scalars: the text as written */
    bool b;               /* BOOL */
    int64_t i;            /* INT */
    double f;             /* FLOAT; also set (converted) for INT */
    bool quoted;          /* scalar was quoted in the file */
    int32_t n;            /* LIST, MAP, OBJ, TAGGED: number of items */
    mt_cfg_node **items;  /* LIST, MAP, OBJ values (aliases: the same pointer) */
    const char **keys;    /* MAP, OBJ: keys, in file order */
    mt_cfg_loc *key_locs; /* MAP, OBJ: where each key was written */
    int32_t anchor;       /* -1, or a document-unique id when the node has an anchor */
};

typedef struct mt_cfg_doc mt_cfg_doc; /* opaque: owns the nodes, strings and file names */

/* Limits for untrusted files (defaults in brackets). */
typedef struct mt_cfg_limits {
    int64_t max_file_bytes; /* [16 MiB] each file, after templating; the files of one
                               document (includes) together at most 4x this */
    int32_t max_depth;      /* [64] nesting of lists/maps */
    int64_t max_nodes;      /* [1,000,000] nodes counting every alias use as its whole subtree
                               (so a "billion laughs" file fails fast) */
    int32_t max_include_depth; /* [8] nested !include files and @file parameters (<= 15) */
} mt_cfg_limits;

typedef struct mt_cfg_var {
    const char *name;
    const char *value;
} mt_cfg_var;

typedef struct mt_cfg_options {
    int32_t n_params;            /* template parameters for %(name)s (name=value, see 1.) */
    const mt_cfg_var *params;
    int32_t n_vars;              /* ${VAR} variables consulted before the environment */
    const mt_cfg_var *vars;
    bool no_environment;         /* do not consult getenv (tests) */
    mt_cfg_limits limits;        /* fields <= 0 take the default */
    bool keep_unknown_vars;      /* leave an unknown ${VAR} as written instead of failing (for
                                    files whose variables are filled later, e.g. a sweep's
                                    ${params.x} and ${trial.dir}) */
} mt_cfg_options;

void mt_cfg_options_init(mt_cfg_options *opts); /* no params/vars, default limits */

/* Loads and parses a file (stages 1-5 above). ERR_IO (file named, strerror) when unreadable;
 * ERR_FORMAT for YAML syntax errors, bad tags, duplicate keys, template and variable errors,
 * limits (each "FILE:LINE:COL: what"). */
mt_status mt_cfg_load_file(mt_cfg_doc **out, const char *path, const mt_cfg_options *opts);
/* The same from text in memory; `name` stands for the file name in positions. */
mt_status mt_cfg_load_string(mt_cfg_doc **out, const char *text, size_t len, const char *name,
                             const mt_cfg_options *opts);
void mt_cfg_doc_free(mt_cfg_doc *doc);
const mt_cfg_node *mt_cfg_doc_root(const mt_cfg_doc *doc);
/* The template names the text used (stage 1), for `--dry-run` and error hints. */
int32_t mt_cfg_doc_n_template_names(const mt_cfg_doc *doc);
const char *mt_cfg_doc_template_name(const mt_cfg_doc *doc, int32_t i);

/* Standard variables for a job file (stage 5): for path "dir/foo.yaml" and phase p (0 = none):
 * MLTRAIN_TRAIN_FILE_FULL_STEM "dir/foo", MLTRAIN_TRAIN_DIR "dir", MLTRAIN_TRAIN_BASE_NAME
 * "foo.yaml", MLTRAIN_TRAIN_FILE_STEM "foo", MLTRAIN_TRAIN_PHASE "phaseP" (only when p > 0),
 * each also as PYLEARN2_* (MLTRAIN_ first, then PYLEARN2_, in that order). Only a ".yaml" or
 * ".yml" suffix is stripped; the directory of a bare "foo.yaml" is ".", of "/foo.yaml" "/"
 * (Pylearn2 gives "" and sometimes a trailing '/'). Writes up to `cap` entries into vars
 * (strings owned by *store, freed with mt_cfg_vars_free) and returns the count. */
int32_t mt_cfg_job_vars(mt_cfg_var *vars, int32_t cap, const char *path, int32_t phase,
                        char **store);
void mt_cfg_vars_free(char *store);

/* ---------------------------------------------------------------- node helpers */

/* Map/obj lookup: the value of `key`, or NULL. */
const mt_cfg_node *mt_cfg_get(const mt_cfg_node *map, const char *key);
/* The location of `key` in map (or the map's own location if absent). */
mt_cfg_loc mt_cfg_key_loc(const mt_cfg_node *map, const char *key);
/* Records (mt_err_set) and returns `code` with message "FILE:LINE:COL: <formatted>". */
mt_status mt_cfg_error(mt_status code, mt_cfg_loc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Typed getters with defaults: absent or NULL node -> *out = dflt, MT_OK. A present node of
 * the wrong kind -> ERR_INVALID "FILE:LINE:COL: 'key' must be <type>, got <kind> 'text'".
 * get_float accepts INT. get_int accepts a FLOAT with an integral value. get_bool accepts
 * INT 0/1 (Pylearn2 files write `conjugate: 1`). Strings returned are owned by the doc. */
mt_status mt_cfg_get_int(const mt_cfg_node *map, const char *key, int64_t dflt, int64_t *out);
mt_status mt_cfg_get_float(const mt_cfg_node *map, const char *key, double dflt, double *out);
mt_status mt_cfg_get_bool(const mt_cfg_node *map, const char *key, bool dflt, bool *out);
mt_status mt_cfg_get_string(const mt_cfg_node *map, const char *key, const char *dflt,
                            const char **out);
/* Numeric list (or a single number, read as a list of one): at most cap values. */
mt_status mt_cfg_get_floats(const mt_cfg_node *map, const char *key, int32_t cap, double *out,
                            int32_t *n);
mt_status mt_cfg_get_ints(const mt_cfg_node *map, const char *key, int32_t cap, int64_t *out,
                          int32_t *n);

/* The closest candidate to `word` by edit distance (case-insensitive), or NULL when none is
 * close enough (distance <= max(2, len/3), and smaller than both lengths so that a short word
 * is not "close" to any other short word). Ties go to the earlier candidate. */
const char *mt_cfg_suggest(const char *word, int32_t n, const char *const *candidates);
/* Expands a leading "~/" with $HOME into *out (a new mt_malloc'd string). */
mt_status mt_cfg_expand_user(char **out, const char *path);

/* Appends `node` as YAML text that mt_cfg_load_string reads back to an equal tree: flow style
 * with indentation, tags as written, strings double-quoted (a '%' as \x25, so the text is never
 * templated again; a "${...}" left by keep_unknown_vars IS substituted when it is loaded),
 * floats in the shortest exact form, and a node reached several times (an alias) written once
 * with an anchor &aN and then as *aN. For resolved sweep trials and `--dry-run`. */
mt_status mt_cfg_dump(mt_strbuf *sb, const mt_cfg_node *node);

/* ---------------------------------------------------------------- schemas and registry */

typedef enum mt_cfg_type {
    MT_CFG_T_ANY = 0,
    MT_CFG_T_BOOL,        /* also INT 0/1 */
    MT_CFG_T_INT,
    MT_CFG_T_FLOAT,       /* also INT */
    MT_CFG_T_STRING,
    MT_CFG_T_INTS,        /* a list of ints, or one int */
    MT_CFG_T_FLOATS,      /* a list of numbers, or one number */
    MT_CFG_T_STRINGS,     /* a list of strings, or one string */
    MT_CFG_T_FLOAT_MAP,   /* {name: number} */
    MT_CFG_T_FLOATS_OR_MAP, /* a list of numbers, one number, or {name: number} (coeffs) */
    MT_CFG_T_OBJ,         /* one component of `obj_kind` (or a PKL node if accepts_pkl) */
    MT_CFG_T_OBJ_LIST,    /* a list of components of obj_kind */
    MT_CFG_T_OBJ_OR_LIST, /* one component or a list of them */
    MT_CFG_T_OBJ_MAP,     /* {name: component} or one component (monitoring_dataset) */
    MT_CFG_T_COUNT
} mt_cfg_type;

typedef struct mt_cfg_key {
    const char *name;
    mt_cfg_type type;
    bool required;
    bool nullable;        /* null is accepted (means "default") */
    const char *obj_kind; /* OBJ* types: the required component kind ("dataset", ...); NULL =
                             any kind */
    bool accepts_pkl;     /* OBJ: a !pkl: node is accepted in place of a component */
    const char *doc;      /* one line for `mltrain components` */
} mt_cfg_key;

typedef struct mt_cfg_builder mt_cfg_builder; /* opaque */

typedef struct mt_component {
    const char *name;               /* canonical name: "MLP", "SGD", "MNIST", ... */
    const char *kind;               /* "train", "dataset", "preprocessor", "space", "model",
                                       "layer", "corruptor", "cost", "algorithm",
                                       "learning_rule", "update_callback", "termination",
                                       "extension", ... (one component may be usable as two
                                       kinds: list them with '|', e.g. "extension|update_callback") */
    const char *const *aliases;     /* NULL-terminated: Pylearn2 dotted names, old names */
    const mt_cfg_key *keys;         /* terminated by a key with name NULL */
    bool open_keys;                 /* accepts keys not in the schema (validated by build) */
    const char *doc;
    /* Builds the object from a validated node. *out receives the object (owned by the builder
     * from then on: destroy is called when the builder is freed). */
    mt_status (*build)(mt_cfg_builder *b, const mt_cfg_node *node, void **out);
    void (*destroy)(void *obj);
    /* Optional extra validation after the schema check (cross-key rules). */
    mt_status (*check)(const mt_cfg_node *node);
} mt_component;

typedef struct mt_cfg_registry mt_cfg_registry; /* opaque */

mt_status mt_cfg_registry_new(mt_cfg_registry **out);
void mt_cfg_registry_free(mt_cfg_registry *r);
/* Adds a component (the struct and its strings must outlive the registry: use static tables).
 * ERR_INVALID when the name or an alias is already taken. */
mt_status mt_cfg_registry_add(mt_cfg_registry *r, const mt_component *c);
/* By name or alias; also accepts the last dotted part of an unknown dotted name when it is a
 * registered canonical name ("pylearn2.models.mlp.MLP" -> "MLP"). NULL if unknown. */
const mt_component *mt_cfg_registry_find(const mt_cfg_registry *r, const char *name);
int32_t mt_cfg_registry_count(const mt_cfg_registry *r);
const mt_component *mt_cfg_registry_at(const mt_cfg_registry *r, int32_t i);
/* True when component c can stand where `kind` is required ('|'-separated kinds). */
bool mt_component_is_kind(const mt_component *c, const char *kind);

/* Validates the tree under `root` against the registry; `kind` is what root must be (NULL =
 * any). Every OBJ node must name a registered component; keys are checked against its schema.
 * ERR_INVALID with "FILE:LINE:COL: ..." for the FIRST problem found in file order (with "did
 * you mean ...?" where a close name exists: components, keys). Messages:
 *   unknown component 'MLPP' (did you mean 'MLP'?)
 *   MLP has no key 'nvs' (did you mean 'nvis'?)                       (at the key)
 *   MLP key 'nvis': must be an integer, got string 'abc'              (at the value)
 *   MLP is missing the required key 'layers'                          (at the component)
 *   Train key 'dataset': expected a dataset, got SGD (an algorithm)   (at the value)
 * then the component's `check` (its message is given the component's position if it has
 * none). A node reached through aliases is checked once (its kind at every use). Sweep search
 * tags may stand for values: each option of !choice/!grid/!pchoice is checked against the key,
 * numeric tags are accepted where numbers are, !param anywhere. */
mt_status mt_cfg_validate(const mt_cfg_registry *r, const mt_cfg_node *root, const char *kind);

/* ---------------------------------------------------------------- building */

mt_status mt_cfg_builder_new(mt_cfg_builder **out, const mt_cfg_registry *r);
/* Destroys every built object in reverse creation order. */
void mt_cfg_builder_free(mt_cfg_builder *b);
/* Opaque context pointer for build functions (e.g. the device, the RNG seed, the job). */
void mt_cfg_builder_set_context(mt_cfg_builder *b, void *ctx);
void *mt_cfg_builder_context(const mt_cfg_builder *b);
/* Builds (or returns the already built object of) an OBJ node whose component is of `kind`
 * (NULL = any). *component (may be NULL) receives the component used. A PKL node is built by
 * the component registered under the name "!pkl" (of the kind "pkl"; it returns a pointer to
 * whatever it loads), whatever `kind` asks for: validation checked that the key accepts a
 * checkpoint (accepts_pkl), and the caller tells the loaded object by *component. ERR_NOT_FOUND
 * when no "!pkl" component is registered or the component is unknown. Errors are prefixed with
 * the node's position ("FILE:L:C: NAME: ...") unless a deeper build gave one. A build function
 * that asks for its own node gets ERR_INTERNAL. */
mt_status mt_cfg_build(mt_cfg_builder *b, const mt_cfg_node *node, const char *kind,
                       void **out, const mt_component **component);
/* Which component built obj (NULL if obj was not built by b). */
const mt_component *mt_cfg_built_component(const mt_cfg_builder *b, const void *obj);
/* Gives up ownership of a built object (it will not be destroyed with the builder; the caller
 * destroys it). The object must not reference other objects of the builder. */
mt_status mt_cfg_builder_release(mt_cfg_builder *b, void *obj);
/* Registers an object created outside mt_cfg_build to be destroyed with the builder. */
mt_status mt_cfg_builder_own(mt_cfg_builder *b, void *obj, void (*destroy)(void *));

#ifdef __cplusplus
}
#endif
#endif /* MLTRAIN_CONFIG_H */
