/* The document and its nodes as seen by consumers: kind names, map lookup, positioned
 * errors ("FILE:LINE:COL: ..."), the typed getters with defaults that component build
 * functions use (with Pylearn2's leniencies: an integral float is an int, 0/1 is a bool),
 * numeric lists, "~/" expansion, and the document's bookkeeping (node allocation, interned
 * file names, the template names it used). */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "config_impl.h"

static const char *const kind_names[] = {"null", "bool", "int", "float", "string",
                                         "list", "map",  "obj", "pkl",   "tagged"};
_Static_assert(sizeof kind_names / sizeof kind_names[0] == MT_CFG_KIND_COUNT,
               "kind_names must cover mt_cfg_kind");

const char *mt_cfg_kind_name(mt_cfg_kind k)
{
    if ((int)k < 0 || k >= MT_CFG_KIND_COUNT) return "invalid";
    return kind_names[k];
}

/* ---------------------------------------------------------------- document */

void mt_cfg_options_init(mt_cfg_options *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->limits.max_file_bytes = 16 << 20;
    opts->limits.max_depth = 64;
    opts->limits.max_nodes = 1000000;
    opts->limits.max_include_depth = 8;
}

void mt_cfg_doc_free(mt_cfg_doc *doc)
{
    if (!doc) return;
    mt_arena a = doc->arena; /* the doc itself lives in its arena */
    mt_arena_free(&a);
}

const mt_cfg_node *mt_cfg_doc_root(const mt_cfg_doc *doc)
{
    return doc ? doc->root : NULL;
}

int32_t mt_cfg_doc_n_template_names(const mt_cfg_doc *doc)
{
    return doc ? doc->n_tnames : 0;
}

const char *mt_cfg_doc_template_name(const mt_cfg_doc *doc, int32_t i)
{
    if (!doc || i < 0 || i >= doc->n_tnames) return NULL;
    return doc->tnames[i];
}

mt_cfg_node *mt__doc_node(mt_cfg_doc *doc, mt_cfg_kind kind, mt_cfg_loc loc)
{
    mt_cfg_node *n = mt_arena_calloc(&doc->arena, sizeof *n);
    if (!n) return NULL;
    n->kind = kind;
    n->loc = loc;
    n->anchor = -1;
    return n;
}

/* Grows an arena-held array of pointers (old contents copied, old block left in the arena). */
static bool grow_ptrs(mt_arena *a, const char ***arr, int32_t n, int32_t *cap)
{
    if (n < *cap) return true;
    int32_t nc = *cap ? *cap * 2 : 8;
    const char **na = mt_arena_calloc(a, sizeof *na * (size_t)nc);
    if (!na) return false;
    if (n) memcpy(na, *arr, sizeof *na * (size_t)n);
    *arr = na;
    *cap = nc;
    return true;
}

const char *mt__doc_file(mt_cfg_doc *doc, const char *name)
{
    for (int32_t i = 0; i < doc->n_files; i++)
        if (strcmp(doc->files[i], name) == 0) return doc->files[i];
    if (!grow_ptrs(&doc->arena, &doc->files, doc->n_files, &doc->cap_files)) return NULL;
    char *s = mt_arena_strdup(&doc->arena, name);
    if (!s) return NULL;
    doc->files[doc->n_files++] = s;
    return s;
}

mt_status mt__doc_add_tname(mt_cfg_doc *doc, const char *name, size_t len)
{
    for (int32_t i = 0; i < doc->n_tnames; i++)
        if (strlen(doc->tnames[i]) == len && memcmp(doc->tnames[i], name, len) == 0) return MT_OK;
    if (!grow_ptrs(&doc->arena, &doc->tnames, doc->n_tnames, &doc->cap_tnames)) return MT_ERR_NOMEM;
    char *s = mt_arena_strndup(&doc->arena, name, len);
    if (!s) return MT_ERR_NOMEM;
    doc->tnames[doc->n_tnames++] = s;
    return MT_OK;
}

/* ---------------------------------------------------------------- lookup and errors */

static bool is_mapping(const mt_cfg_node *n)
{
    return n && (n->kind == MT_CFG_MAP || n->kind == MT_CFG_OBJ);
}

const mt_cfg_node *mt_cfg_get(const mt_cfg_node *map, const char *key)
{
    if (!is_mapping(map) || !key || !map->keys) return NULL;
    for (int32_t i = 0; i < map->n; i++)
        if (map->keys[i] && strcmp(map->keys[i], key) == 0) return map->items[i];
    return NULL;
}

mt_cfg_loc mt_cfg_key_loc(const mt_cfg_node *map, const char *key)
{
    mt_cfg_loc none = {"<config>", 0, 0};
    if (!map) return none;
    if (is_mapping(map) && key && map->keys && map->key_locs)
        for (int32_t i = 0; i < map->n; i++)
            if (map->keys[i] && strcmp(map->keys[i], key) == 0) return map->key_locs[i];
    return map->loc;
}

mt_status mt_cfg_error(mt_status code, mt_cfg_loc loc, const char *fmt, ...)
{
    char msg[MT_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return mt_err_set(code, "%s:%d:%d: %s", loc.file ? loc.file : "<config>", (int)loc.line,
                      (int)loc.col, msg);
}

/* ---------------------------------------------------------------- typed getters */

static mt_status wrong_type(const mt_cfg_node *map, const char *key, const mt_cfg_node *v,
                            const char *want)
{
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    mt__describe_node(&sb, v);
    (void)map;
    mt_status st = mt_cfg_error(MT_ERR_INVALID, v->loc, "'%s' must be %s, got %s", key, want,
                                sb.data ? sb.data : "?");
    mt_strbuf_deinit(&sb);
    return st;
}

static const mt_cfg_node *present(const mt_cfg_node *map, const char *key)
{
    const mt_cfg_node *v = mt_cfg_get(map, key);
    return v && v->kind != MT_CFG_NULL ? v : NULL;
}

static bool as_int(const mt_cfg_node *v, int64_t *out)
{
    if (v->kind == MT_CFG_INT) {
        *out = v->i;
        return true;
    }
    if (v->kind == MT_CFG_FLOAT && isfinite(v->f) && v->f == floor(v->f) && v->f >= -0x1p63 &&
        v->f < 0x1p63) {
        *out = (int64_t)v->f;
        return true;
    }
    return false;
}

static bool as_float(const mt_cfg_node *v, double *out)
{
    if (v->kind == MT_CFG_FLOAT || v->kind == MT_CFG_INT) {
        *out = v->kind == MT_CFG_INT ? (double)v->i : v->f;
        return true;
    }
    return false;
}

mt_status mt_cfg_get_int(const mt_cfg_node *map, const char *key, int64_t dflt, int64_t *out)
{
    const mt_cfg_node *v = present(map, key);
    *out = dflt;
    if (!v) return MT_OK;
    if (!as_int(v, out)) return wrong_type(map, key, v, "an integer");
    return MT_OK;
}

mt_status mt_cfg_get_float(const mt_cfg_node *map, const char *key, double dflt, double *out)
{
    const mt_cfg_node *v = present(map, key);
    *out = dflt;
    if (!v) return MT_OK;
    if (!as_float(v, out)) return wrong_type(map, key, v, "a number");
    return MT_OK;
}

mt_status mt_cfg_get_bool(const mt_cfg_node *map, const char *key, bool dflt, bool *out)
{
    const mt_cfg_node *v = present(map, key);
    *out = dflt;
    if (!v) return MT_OK;
    if (v->kind == MT_CFG_BOOL) {
        *out = v->b;
        return MT_OK;
    }
    if (v->kind == MT_CFG_INT && (v->i == 0 || v->i == 1)) {
        *out = v->i == 1;
        return MT_OK;
    }
    return wrong_type(map, key, v, "a boolean (true/false or 0/1)");
}

mt_status mt_cfg_get_string(const mt_cfg_node *map, const char *key, const char *dflt,
                            const char **out)
{
    const mt_cfg_node *v = present(map, key);
    *out = dflt;
    if (!v) return MT_OK;
    if (v->kind != MT_CFG_STRING) return wrong_type(map, key, v, "a string");
    *out = v->str;
    return MT_OK;
}

/* Shared body of get_floats / get_ints: a list or a single value, at most cap items. */
static mt_status get_numbers(const mt_cfg_node *map, const char *key, int32_t cap, double *fout,
                             int64_t *iout, int32_t *n)
{
    const mt_cfg_node *v = present(map, key);
    *n = 0;
    if (!v) return MT_OK;
    const char *want = fout ? "a number or a list of numbers" : "an integer or a list of integers";
    const mt_cfg_node *const *items = (const mt_cfg_node *const *)&v;
    int32_t count = 1;
    if (v->kind == MT_CFG_LIST) {
        items = (const mt_cfg_node *const *)v->items;
        count = v->n;
    }
    if (count > cap)
        return mt_cfg_error(MT_ERR_INVALID, v->loc, "'%s' has %d values, at most %d allowed", key,
                            (int)count, (int)cap);
    for (int32_t i = 0; i < count; i++) {
        const mt_cfg_node *it = items[i];
        bool ok = it && (fout ? as_float(it, &fout[i]) : as_int(it, &iout[i]));
        if (!ok) return wrong_type(map, key, it ? it : v, want);
    }
    *n = count;
    return MT_OK;
}

mt_status mt_cfg_get_floats(const mt_cfg_node *map, const char *key, int32_t cap, double *out,
                            int32_t *n)
{
    return get_numbers(map, key, cap, out, NULL, n);
}

mt_status mt_cfg_get_ints(const mt_cfg_node *map, const char *key, int32_t cap, int64_t *out,
                          int32_t *n)
{
    return get_numbers(map, key, cap, NULL, out, n);
}

mt_status mt_cfg_expand_user(char **out, const char *path)
{
    *out = NULL;
    if (!path) return mt_err_set(MT_ERR_INVALID, "expand_user: NULL path");
    if (path[0] == '~' && (path[1] == '/' || path[1] == '\0')) {
        const char *home = getenv("HOME");
        if (!home || !*home)
            return mt_err_set(MT_ERR_INVALID, "cannot expand '~' in '%s': HOME is not set", path);
        mt_strbuf sb;
        mt_strbuf_init(&sb);
        mt_strbuf_append(&sb, home);
        mt_strbuf_append(&sb, path + 1);
        if (mt_strbuf_status(&sb) != MT_OK) {
            mt_strbuf_deinit(&sb);
            return MT_ERR_NOMEM;
        }
        *out = mt_strbuf_take(&sb);
        return MT_OK;
    }
    *out = mt_strdup(path);
    return *out ? MT_OK : MT_ERR_NOMEM;
}
