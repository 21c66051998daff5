/* Stages 2-5 of loading: libyaml's event stream composed into the mt_cfg_node tree.
 *
 * A stack of frames holds the lists and mappings being read; a finished node is added to
 * its parent. Every node gets the position libyaml reports (0-based marks, plus one),
 * mapped back through the template map to where the text was written. Anchors are kept in
 * a name -> node table, and an alias adds the SAME node pointer again. Each node counts as
 * one towards mt_cfg_limits.max_nodes and an alias counts as its whole subtree, so an
 * exponential "billion laughs" document stops after max_nodes expansions, in time linear in
 * the file. Nesting depth is bounded; duplicate and non-scalar keys are errors.
 *
 * Tags are interpreted here (stage 3): !obj:NAME mappings become OBJ nodes, !pkl:/!ckpt
 * scalars PKL nodes, !include loads another file in place, !float and the YAML core tags
 * (!!str, !!int, ...) force a type, sweep search tags wrap their value in a TAGGED node.
 * Anything else, notably Pylearn2's !import, is an error: a file can only name components. */
#include <string.h>
#include <yaml.h>

#include "config_impl.h"

static const char *const search_tags[] = {"uniform", "quniform",   "loguniform", "qloguniform",
                                          "normal",  "qnormal",    "lognormal",  "qlognormal",
                                          "randint", "intuniform", "choice",     "pchoice",
                                          "grid",    "param",      NULL};

#define CORE_TAG "tag:yaml.org,2002:"

typedef struct frame {
    mt_cfg_node *node;    /* the LIST/MAP/OBJ being read */
    mt_cfg_node *wrapper; /* its TAGGED wrapper, or NULL */
    bool is_map;
    mt_cfg_node **items;
    const char **keys;
    mt_cfg_loc *key_locs;
    int32_t n, cap;
    bool have_key; /* a key was read and waits for its value */
    const char *key;
    mt_cfg_loc key_loc;
    mt__strmap keyset; /* used once the mapping is large */
    int64_t weight;
    int64_t anchor_slot; /* index into pstate.anchors, or -1 */
} frame;

typedef struct anchor_ent {
    mt_cfg_node *node; /* NULL while the anchored node is being read */
    int64_t weight;
} anchor_ent;

typedef struct pstate {
    mt__loader *ld;
    const char *file, *dir;
    const mt__tmap *map;
    int32_t base_depth;
    frame *frames;
    int32_t nf, capf;
    mt__strmap anchor_names; /* name -> index into anchors */
    anchor_ent *anchors;
    int32_t na, capa;
    mt_cfg_node *root;
    int32_t docs;
} pstate;

static mt_cfg_loc mark_loc(const pstate *ps, yaml_mark_t m)
{
    return mt__tmap_loc(ps->map, (int32_t)m.line + 1, (int32_t)m.column + 1);
}

static bool is_search_tag(const char *tag)
{
    if (!tag || tag[0] != '!') return false;
    for (const char *const *t = search_tags; *t; t++)
        if (strcmp(tag + 1, *t) == 0) return true;
    return false;
}

static bool core_tag(const char *tag, const char *name)
{
    return tag && strncmp(tag, CORE_TAG, sizeof CORE_TAG - 1) == 0 &&
           strcmp(tag + sizeof CORE_TAG - 1, name) == 0;
}

/* An error for a tag that means nothing here, with the closest known tag. */
static mt_status bad_tag(const char *tag, const char *where, mt_cfg_loc loc)
{
    if (strncmp(tag, "!import", 7) == 0)
        return mt_cfg_error(MT_ERR_FORMAT, loc,
                            "'%s' is not supported: a config file cannot import or run code; "
                            "use a registered component (!obj:NAME) or !include a file",
                            tag);
    static const char *const known[] = {"!obj:",        "!pkl:",    "!ckpt:",      "!include",
                                        "!float",       "!uniform", "!quniform",   "!loguniform",
                                        "!qloguniform", "!normal",  "!qnormal",    "!lognormal",
                                        "!qlognormal",  "!randint", "!intuniform", "!choice",
                                        "!pchoice",     "!grid",    "!param"};
    const char *best = mt_cfg_suggest(tag, (int32_t)(sizeof known / sizeof known[0]), known);
    if (best)
        return mt_cfg_error(MT_ERR_FORMAT, loc, "unknown tag '%s' on %s (did you mean '%s'?)", tag,
                            where, best);
    return mt_cfg_error(MT_ERR_FORMAT, loc, "unknown tag '%s' on %s", tag, where);
}

/* ---------------------------------------------------------------- nodes and limits */

static mt_status count_nodes(pstate *ps, int64_t k, mt_cfg_loc loc)
{
    mt__loader *ld = ps->ld;
    ld->nodes += k;
    if (ld->nodes > ld->lim.max_nodes)
        return mt_cfg_error(MT_ERR_FORMAT, loc,
                            "the document has more than %lld nodes, counting each alias as a "
                            "copy of its anchor (mt_cfg_limits.max_nodes; an alias bomb?)",
                            (long long)ld->lim.max_nodes);
    return MT_OK;
}

static mt_cfg_node *new_node(pstate *ps, mt_cfg_kind kind, mt_cfg_loc loc)
{
    return mt__doc_node(ps->ld->doc, kind, loc);
}

/* Registers `name` for the node (NULL while a container is still open). */
static mt_status anchor_define(pstate *ps, const char *name, mt_cfg_node *node, int64_t *slot)
{
    if (ps->na == ps->capa) {
        int32_t cap = ps->capa ? ps->capa * 2 : 16;
        anchor_ent *a = mt_realloc(ps->anchors, sizeof *a * (size_t)cap);
        if (!a) return MT_ERR_NOMEM;
        ps->anchors = a;
        ps->capa = cap;
    }
    char *s = mt_arena_strdup(&ps->ld->doc->arena, name);
    if (!s) return MT_ERR_NOMEM;
    ps->anchors[ps->na] = (anchor_ent){node, 1};
    *slot = ps->na++;
    return mt__strmap_put(&ps->anchor_names, s, *slot);
}

static void set_anchor_id(pstate *ps, mt_cfg_node *node)
{
    if (node->anchor < 0) node->anchor = ps->ld->doc->next_anchor++;
}

/* ---------------------------------------------------------------- frames */

static mt_status frame_append(frame *f, mt_cfg_node *node)
{
    if (f->n == f->cap) {
        int32_t cap = f->cap ? f->cap * 2 : 8;
        mt_cfg_node **items = mt_realloc(f->items, sizeof *items * (size_t)cap);
        if (!items) return MT_ERR_NOMEM;
        f->items = items;
        if (f->is_map) {
            const char **keys = mt_realloc(f->keys, sizeof *keys * (size_t)cap);
            if (!keys) return MT_ERR_NOMEM;
            f->keys = keys;
            mt_cfg_loc *locs = mt_realloc(f->key_locs, sizeof *locs * (size_t)cap);
            if (!locs) return MT_ERR_NOMEM;
            f->key_locs = locs;
        }
        f->cap = cap;
    }
    f->items[f->n] = node;
    if (f->is_map) {
        f->keys[f->n] = f->key;
        f->key_locs[f->n] = f->key_loc;
        f->have_key = false;
    }
    f->n++;
    return MT_OK;
}

static void frame_deinit(frame *f)
{
    mt_free(f->items);
    mt_free(f->keys);
    mt_free(f->key_locs);
    mt__strmap_deinit(&f->keyset);
}

/* Adds a finished node (with its expanded weight) to the open container or as the root. */
static mt_status add_value(pstate *ps, mt_cfg_node *node, int64_t weight, mt_cfg_loc loc)
{
    if (ps->nf == 0) {
        ps->root = node;
        return MT_OK;
    }
    frame *f = &ps->frames[ps->nf - 1];
    if (f->is_map && !f->have_key)
        return mt_cfg_error(MT_ERR_FORMAT, loc, "mapping keys must be plain strings");
    f->weight += weight;
    return frame_append(f, node);
}

/* Records the key of the next value, refusing duplicates. */
static mt_status set_key(pstate *ps, frame *f, const char *key, mt_cfg_loc loc)
{
    int64_t first = -1;
    if (f->n < 16) {
        for (int32_t i = 0; i < f->n; i++)
            if (strcmp(f->keys[i], key) == 0) first = i;
    } else {
        if (f->keyset.n == 0)
            for (int32_t i = 0; i < f->n; i++)
                if (mt__strmap_put(&f->keyset, f->keys[i], i) != MT_OK) return MT_ERR_NOMEM;
        if (!mt__strmap_get(&f->keyset, key, &first)) first = -1;
        if (first < 0 && mt__strmap_put(&f->keyset, key, f->n) != MT_OK) return MT_ERR_NOMEM;
    }
    if (first >= 0) {
        mt_cfg_loc at = f->key_locs[first];
        return mt_cfg_error(MT_ERR_FORMAT, loc, "duplicate key '%s' (first written at %s:%d:%d)",
                            key, at.file, (int)at.line, (int)at.col);
    }
    (void)ps;
    f->key = key;
    f->key_loc = loc;
    f->have_key = true;
    return MT_OK;
}

/* ---------------------------------------------------------------- scalars */

/* A STRING (typed when plain and untagged), with ${VAR} substitution. */
static mt_status string_node(pstate *ps, const char *val, size_t len, bool plain, bool typed,
                             mt_cfg_loc loc, mt_cfg_node **out)
{
    mt_cfg_node *n = new_node(ps, MT_CFG_STRING, loc);
    char *s = n ? mt_arena_strndup(&ps->ld->doc->arena, val, len) : NULL;
    if (!s) return MT_ERR_NOMEM;
    n->str = s;
    n->quoted = !plain;
    mt_status st = MT_OK;
    if (plain && typed) st = mt__scalar_type(n, s, len);
    if (st == MT_OK && n->kind == MT_CFG_STRING) {
        const char *sub;
        bool changed;
        st = mt__vars_subst(ps->ld, s, loc, &sub, &changed);
        if (st == MT_OK && changed) {
            n->str = sub;
            if (plain && typed) st = mt__scalar_type(n, sub, strlen(sub));
        }
    }
    *out = n;
    return st;
}

/* The path of "!pkl:PATH", "!pkl: PATH", "!include PATH", ...: the tag's suffix or the value. */
static mt_status tag_path(pstate *ps, const char *what, const char *suffix, const char *val,
                          mt_cfg_loc loc, const char **out)
{
    if (*suffix && *val)
        return mt_cfg_error(MT_ERR_FORMAT, loc,
                            "%s: write the path either in the tag or as the "
                            "value, not both ('%s' and '%s')",
                            what, suffix, val);
    const char *path = *suffix ? suffix : val;
    if (!*path) return mt_cfg_error(MT_ERR_FORMAT, loc, "%s needs a path", what);
    char *copy = mt_arena_strdup(&ps->ld->doc->arena, path);
    if (!copy) return MT_ERR_NOMEM;
    bool changed;
    return mt__vars_subst(ps->ld, copy, loc, out, &changed);
}

static mt_status include_node(pstate *ps, const char *suffix, const char *val, mt_cfg_loc loc,
                              mt_cfg_node **out, int64_t *weight)
{
    const char *path;
    mt_status st = tag_path(ps, "!include", suffix, val, loc, &path);
    if (st != MT_OK) return st;
    mt__loader *ld = ps->ld;
    if (ld->include_depth + 1 > ld->lim.max_include_depth)
        return mt_cfg_error(MT_ERR_FORMAT, loc,
                            "!include '%s': includes nested deeper than %d "
                            "(mt_cfg_limits.max_include_depth)",
                            path, (int)ld->lim.max_include_depth);
    mt_strbuf full;
    mt_strbuf_init(&full);
    if (path[0] == '/' || !ps->dir || !*ps->dir || strcmp(ps->dir, ".") == 0)
        mt_strbuf_append(&full, path);
    else
        mt_strbuf_appendf(&full, "%s/%s", ps->dir, path);
    st = mt_strbuf_status(&full);
    int64_t before = ld->nodes;
    if (st == MT_OK) {
        ld->include_depth++;
        st = mt__load_path(ld, full.data, loc, ps->base_depth + ps->nf, out);
        ld->include_depth--;
    }
    mt_strbuf_deinit(&full);
    *weight = ld->nodes - before;
    if (*weight < 1) *weight = 1;
    return st;
}

static mt_status forced_core(pstate *ps, const char *tag, const char *val, size_t len,
                             mt_cfg_loc loc, mt_cfg_node **out)
{
    mt_cfg_node *n = new_node(ps, MT_CFG_STRING, loc);
    char *s = n ? mt_arena_strndup(&ps->ld->doc->arena, val, len) : NULL;
    if (!s) return MT_ERR_NOMEM;
    n->str = s;
    *out = n;
    mt_status st = mt__scalar_type(n, s, len);
    if (st != MT_OK) return st;
    mt_cfg_kind want = core_tag(tag, "int")     ? MT_CFG_INT
                       : core_tag(tag, "float") ? MT_CFG_FLOAT
                       : core_tag(tag, "bool")  ? MT_CFG_BOOL
                                                : MT_CFG_NULL;
    if (want == MT_CFG_FLOAT && mt__parse_float(s, &n->f)) n->kind = MT_CFG_FLOAT;
    if (n->kind != want)
        return mt_cfg_error(MT_ERR_FORMAT, loc, "'%s' is not %s %s", s,
                            mt__article(mt_cfg_kind_name(want)), mt_cfg_kind_name(want));
    return MT_OK;
}

/* Builds the node of a scalar event that is a value (not a key). */
static mt_status make_scalar(pstate *ps, const yaml_event_t *ev, mt_cfg_loc loc, mt_cfg_node **out,
                             int64_t *weight)
{
    const char *tag = (const char *)ev->data.scalar.tag;
    const char *val = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    bool plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    *weight = 1;
    mt_status st;
    if (!tag || strcmp(tag, "!") == 0 || core_tag(tag, "str")) {
        st = count_nodes(ps, 1, loc);
        return st != MT_OK ? st : string_node(ps, val, len, plain, !tag, loc, out);
    }
    if (strncmp(tag, "!include", 8) == 0 && (tag[8] == '\0' || tag[8] == ':'))
        return include_node(ps, tag + 8 + (tag[8] == ':'), val, loc, out, weight);
    const char *suffix = NULL;
    if (strncmp(tag, "!pkl", 4) == 0 && (tag[4] == '\0' || tag[4] == ':'))
        suffix = tag + 4 + (tag[4] == ':');
    else if (strncmp(tag, "!ckpt", 5) == 0 && (tag[5] == '\0' || tag[5] == ':'))
        suffix = tag + 5 + (tag[5] == ':');
    if ((st = count_nodes(ps, 1, loc)) != MT_OK) return st;
    if (suffix) {
        mt_cfg_node *n = new_node(ps, MT_CFG_PKL, loc);
        if (!n) return MT_ERR_NOMEM;
        n->quoted = !plain;
        *out = n;
        return tag_path(ps, tag, suffix, val, loc, &n->str);
    }
    if (core_tag(tag, "int") || core_tag(tag, "float") || core_tag(tag, "bool") ||
        core_tag(tag, "null"))
        return forced_core(ps, tag, val, len, loc, out);
    if (strcmp(tag, "!float") == 0) {
        if ((st = string_node(ps, val, len, plain, false, loc, out)) != MT_OK) return st;
        mt_cfg_node *n = *out;
        if (!mt__parse_float(n->str, &n->f))
            return mt_cfg_error(MT_ERR_FORMAT, loc, "!float needs a number, got '%.200s'", n->str);
        n->kind = MT_CFG_FLOAT;
        return MT_OK;
    }
    if (is_search_tag(tag)) {
        mt_cfg_node *w = new_node(ps, MT_CFG_TAGGED, loc), *inner = NULL;
        mt_cfg_node **items = mt_arena_calloc(&ps->ld->doc->arena, sizeof *items);
        const char *t = w ? mt_arena_strdup(&ps->ld->doc->arena, tag + 1) : NULL;
        if (!w || !items || !t) return MT_ERR_NOMEM;
        if ((st = count_nodes(ps, 1, loc)) != MT_OK) return st;
        st = string_node(ps, val, len, plain, true, loc, &inner);
        items[0] = inner;
        w->tag = t;
        w->items = items;
        w->n = 1;
        *out = w;
        *weight = 2;
        return st;
    }
    if (strncmp(tag, "!obj:", 5) == 0)
        return mt_cfg_error(MT_ERR_FORMAT, loc,
                            "'%s' needs a mapping of arguments ('{}' for "
                            "none), not a scalar",
                            tag);
    return bad_tag(tag, "a scalar", loc);
}

/* A scalar event in key position. */
static mt_status on_key(pstate *ps, frame *f, const yaml_event_t *ev, mt_cfg_loc loc)
{
    const char *tag = (const char *)ev->data.scalar.tag;
    const char *val = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    bool plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    if (tag && strcmp(tag, "!") != 0 && !core_tag(tag, "str"))
        return mt_cfg_error(MT_ERR_FORMAT, loc,
                            "mapping keys must be plain strings, not "
                            "tagged (%s)",
                            tag);
    if (plain && len == 0) return mt_cfg_error(MT_ERR_FORMAT, loc, "empty mapping key");
    if (plain && len == 2 && memcmp(val, "<<", 2) == 0)
        return mt_cfg_error(MT_ERR_FORMAT, loc,
                            "merge keys '<<' are not supported (repeat the "
                            "keys or use an alias for the whole mapping)");
    char *key = mt_arena_strndup(&ps->ld->doc->arena, val, len);
    if (!key) return MT_ERR_NOMEM;
    const char *anchor = (const char *)ev->data.scalar.anchor;
    if (anchor) { /* an anchored key can be aliased as a string value */
        mt_cfg_node *n = new_node(ps, MT_CFG_STRING, loc);
        int64_t slot;
        if (!n) return MT_ERR_NOMEM;
        n->str = key;
        n->quoted = !plain;
        if (anchor_define(ps, anchor, n, &slot) != MT_OK) return MT_ERR_NOMEM;
        set_anchor_id(ps, n);
    }
    return set_key(ps, f, key, loc);
}

static mt_status on_scalar(pstate *ps, const yaml_event_t *ev)
{
    mt_cfg_loc loc = mark_loc(ps, ev->start_mark);
    frame *f = ps->nf ? &ps->frames[ps->nf - 1] : NULL;
    if (f && f->is_map && !f->have_key) return on_key(ps, f, ev, loc);
    mt_cfg_node *node = NULL;
    int64_t weight = 1;
    mt_status st = make_scalar(ps, ev, loc, &node, &weight);
    if (st != MT_OK) return st;
    const char *anchor = (const char *)ev->data.scalar.anchor;
    if (anchor) {
        int64_t slot;
        if (anchor_define(ps, anchor, node, &slot) != MT_OK) return MT_ERR_NOMEM;
        ps->anchors[slot].weight = weight;
        set_anchor_id(ps, node);
    }
    return add_value(ps, node, weight, loc);
}

/* ---------------------------------------------------------------- containers */

static mt_status on_start(pstate *ps, const yaml_event_t *ev, bool is_map)
{
    mt_cfg_loc loc = mark_loc(ps, ev->start_mark);
    const char *tag =
        (const char *)(is_map ? ev->data.mapping_start.tag : ev->data.sequence_start.tag);
    const char *anchor =
        (const char *)(is_map ? ev->data.mapping_start.anchor : ev->data.sequence_start.anchor);
    const char *what = is_map ? "a mapping" : "a list";
    frame *top = ps->nf ? &ps->frames[ps->nf - 1] : NULL;
    if (top && top->is_map && !top->have_key)
        return mt_cfg_error(MT_ERR_FORMAT, loc, "mapping keys must be plain strings, not %s",
                            is_map ? "mappings" : "lists");
    if (ps->base_depth + ps->nf + 1 > ps->ld->lim.max_depth)
        return mt_cfg_error(MT_ERR_FORMAT, loc,
                            "nesting deeper than %d levels "
                            "(mt_cfg_limits.max_depth)",
                            (int)ps->ld->lim.max_depth);
    mt_cfg_kind kind = is_map ? MT_CFG_MAP : MT_CFG_LIST;
    bool wrap = false;
    const char *name = NULL;
    if (!tag || strcmp(tag, "!") == 0 || core_tag(tag, is_map ? "map" : "seq")) {
        /* plain container */
    } else if (strncmp(tag, "!obj:", 5) == 0) {
        if (!is_map)
            return mt_cfg_error(MT_ERR_FORMAT, loc,
                                "'%s' needs a mapping of arguments, not a "
                                "list",
                                tag);
        if (!tag[5]) return mt_cfg_error(MT_ERR_FORMAT, loc, "'!obj:' needs a component name");
        kind = MT_CFG_OBJ;
        name = tag + 5;
    } else if (is_search_tag(tag)) {
        wrap = true;
        name = tag + 1;
    } else if (strncmp(tag, "!pkl", 4) == 0 || strncmp(tag, "!ckpt", 5) == 0 ||
               strncmp(tag, "!include", 8) == 0 || strcmp(tag, "!float") == 0) {
        return mt_cfg_error(MT_ERR_FORMAT, loc,
                            "'%s' takes a scalar (a path or a number), not "
                            "%s",
                            tag, what);
    } else {
        return bad_tag(tag, what, loc);
    }
    mt_status st = count_nodes(ps, wrap ? 2 : 1, loc);
    if (st != MT_OK) return st;
    mt_cfg_node *node = new_node(ps, kind, loc), *wrapper = NULL;
    if (!node) return MT_ERR_NOMEM;
    if (name) {
        char *t = mt_arena_strdup(&ps->ld->doc->arena, name);
        if (!t) return MT_ERR_NOMEM;
        if (wrap) {
            wrapper = new_node(ps, MT_CFG_TAGGED, loc);
            if (!wrapper) return MT_ERR_NOMEM;
            wrapper->tag = t;
        } else {
            node->tag = t;
        }
    }
    if (ps->nf == ps->capf) {
        int32_t cap = ps->capf ? ps->capf * 2 : 16;
        frame *fr = mt_realloc(ps->frames, sizeof *fr * (size_t)cap);
        if (!fr) return MT_ERR_NOMEM;
        ps->frames = fr;
        ps->capf = cap;
    }
    frame *f = &ps->frames[ps->nf++];
    memset(f, 0, sizeof *f);
    f->node = node;
    f->wrapper = wrapper;
    f->is_map = is_map;
    f->anchor_slot = -1;
    if (anchor) {
        if (anchor_define(ps, anchor, NULL, &f->anchor_slot) != MT_OK) return MT_ERR_NOMEM;
        set_anchor_id(ps, wrapper ? wrapper : node);
    }
    return MT_OK;
}

static mt_status on_end(pstate *ps)
{
    frame *f = &ps->frames[ps->nf - 1];
    mt_arena *a = &ps->ld->doc->arena;
    mt_cfg_node *node = f->node;
    node->n = f->n;
    if (f->n > 0) {
        node->items = mt_arena_calloc(a, sizeof *node->items * (size_t)f->n);
        if (!node->items) return MT_ERR_NOMEM;
        memcpy(node->items, f->items, sizeof *node->items * (size_t)f->n);
        if (f->is_map) {
            node->keys = mt_arena_calloc(a, sizeof *node->keys * (size_t)f->n);
            node->key_locs = mt_arena_calloc(a, sizeof *node->key_locs * (size_t)f->n);
            if (!node->keys || !node->key_locs) return MT_ERR_NOMEM;
            memcpy(node->keys, f->keys, sizeof *node->keys * (size_t)f->n);
            memcpy(node->key_locs, f->key_locs, sizeof *node->key_locs * (size_t)f->n);
        }
    }
    mt_cfg_node *result = node;
    int64_t weight = f->weight + 1;
    if (f->wrapper) {
        mt_cfg_node **items = mt_arena_calloc(a, sizeof *items);
        if (!items) return MT_ERR_NOMEM;
        items[0] = node;
        f->wrapper->items = items;
        f->wrapper->n = 1;
        result = f->wrapper;
        weight++;
    }
    if (f->anchor_slot >= 0) ps->anchors[f->anchor_slot] = (anchor_ent){result, weight};
    frame_deinit(f);
    ps->nf--;
    return add_value(ps, result, weight, result->loc);
}

static mt_status on_alias(pstate *ps, const yaml_event_t *ev)
{
    mt_cfg_loc loc = mark_loc(ps, ev->start_mark);
    const char *name = (const char *)ev->data.alias.anchor;
    int64_t slot;
    if (!mt__strmap_get(&ps->anchor_names, name, &slot))
        return mt_cfg_error(MT_ERR_FORMAT, loc,
                            "unknown anchor '*%s' (define it first with "
                            "'&%s' on a node)",
                            name, name);
    anchor_ent e = ps->anchors[slot];
    if (!e.node)
        return mt_cfg_error(MT_ERR_FORMAT, loc,
                            "alias '*%s' is used inside the node it names "
                            "(recursive structures are not supported)",
                            name);
    frame *f = ps->nf ? &ps->frames[ps->nf - 1] : NULL;
    if (f && f->is_map && !f->have_key) {
        mt_cfg_kind k = e.node->kind;
        if (k == MT_CFG_LIST || k == MT_CFG_MAP || k == MT_CFG_OBJ || k == MT_CFG_TAGGED ||
            k == MT_CFG_PKL || !e.node->str)
            return mt_cfg_error(MT_ERR_FORMAT, loc,
                                "mapping keys must be plain strings, not "
                                "the %s '*%s'",
                                mt_cfg_kind_name(k), name);
        return set_key(ps, f, e.node->str, loc);
    }
    mt_status st = count_nodes(ps, e.weight, loc);
    return st != MT_OK ? st : add_value(ps, e.node, e.weight, loc);
}

/* ---------------------------------------------------------------- driver */

static mt_status yaml_error(pstate *ps, const yaml_parser_t *p, const char *text, size_t len)
{
    if (p->error == YAML_MEMORY_ERROR)
        return mt_err_set(MT_ERR_NOMEM, "%s: out of memory while parsing YAML", ps->file);
    if (p->error == YAML_READER_ERROR) {
        int32_t line = 1, col = 1;
        size_t off = p->problem_offset < len ? p->problem_offset : len;
        mt__text_advance(text, off, &line, &col);
        mt_cfg_loc loc = mt__tmap_loc(ps->map, line, col);
        return mt_cfg_error(MT_ERR_FORMAT, loc, "cannot read the text: %s (byte 0x%02x)",
                            p->problem ? p->problem : "invalid input",
                            (unsigned)(p->problem_value & 0xff));
    }
    mt_cfg_loc loc = mark_loc(ps, p->problem_mark);
    if (p->context) {
        mt_cfg_loc c = mark_loc(ps, p->context_mark);
        return mt_cfg_error(MT_ERR_FORMAT, loc, "YAML syntax error: %s (%s at %s:%d:%d)",
                            p->problem ? p->problem : "?", p->context, c.file, (int)c.line,
                            (int)c.col);
    }
    return mt_cfg_error(MT_ERR_FORMAT, loc, "YAML syntax error: %s",
                        p->problem ? p->problem : "invalid YAML");
}

static mt_status dispatch(pstate *ps, const yaml_event_t *ev)
{
    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        if (++ps->docs > 1)
            return mt_cfg_error(MT_ERR_FORMAT, mark_loc(ps, ev->start_mark),
                                "a second YAML document: a config file holds exactly one");
        return MT_OK;
    case YAML_SCALAR_EVENT:
        return on_scalar(ps, ev);
    case YAML_SEQUENCE_START_EVENT:
        return on_start(ps, ev, false);
    case YAML_MAPPING_START_EVENT:
        return on_start(ps, ev, true);
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        if (ps->nf == 0) return mt_err_set(MT_ERR_INTERNAL, "%s: unbalanced YAML events", ps->file);
        return on_end(ps);
    case YAML_ALIAS_EVENT:
        return on_alias(ps, ev);
    default:
        return MT_OK;
    }
}

mt_status mt__parse_yaml(mt__loader *ld, const char *file, const char *dir, const char *text,
                         size_t len, const mt__tmap *map, int32_t depth, mt_cfg_node **root)
{
    *root = NULL;
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        return mt_err_set(MT_ERR_NOMEM, "%s: cannot initialise the YAML parser", file);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    pstate ps = {.ld = ld, .file = file, .dir = dir, .map = map, .base_depth = depth};
    mt_status st = MT_OK;
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            st = yaml_error(&ps, &parser, text, len);
            break;
        }
        st = dispatch(&ps, &ev);
        bool end = ev.type == YAML_STREAM_END_EVENT;
        yaml_event_delete(&ev);
        if (st != MT_OK || end) break;
    }
    for (int32_t i = 0; i < ps.nf; i++)
        frame_deinit(&ps.frames[i]);
    mt_free(ps.frames);
    mt_free(ps.anchors);
    mt__strmap_deinit(&ps.anchor_names);
    yaml_parser_delete(&parser);
    if (st != MT_OK) return st;
    if (!ps.root) { /* an empty file */
        mt_cfg_loc loc = mt__tmap_loc(map, 1, 1);
        ps.root = mt__doc_node(ld->doc, MT_CFG_NULL, loc);
        if (!ps.root) return MT_ERR_NOMEM;
        ps.root->str = "";
    }
    *root = ps.root;
    return MT_OK;
}
