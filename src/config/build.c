/* The builder: turns validated OBJ (and PKL) nodes into objects through the registered
 * components' build functions.
 *
 * Each node is built once: a memo table maps the node to its entry, so every alias of a node
 * gets the same object (Pylearn2's proxies give the same guarantee). Entries are kept in
 * creation order, which is children before parents because a build function builds what it
 * needs before it returns; freeing the builder destroys them in reverse order, so an object
 * is destroyed before anything it references. Errors are prefixed with the node's position
 * unless a deeper build already gave one. A node that is being built and asked for again
 * (a build function asking for its own node) is an error, not a recursion. */
#include <string.h>

#include "config_impl.h"

typedef struct entry {
    void *obj;
    void (*destroy)(void *);
    const mt_component *comp;
    const mt_cfg_node *node; /* NULL for mt_cfg_builder_own */
    bool released;
} entry;

struct mt_cfg_builder {
    const mt_cfg_registry *r;
    void *ctx;
    entry *entries;
    int64_t n, cap;
    mt__ptrmap by_node; /* node -> entry index */
    mt__ptrmap by_obj;  /* obj -> entry index */
    mt__ptrmap building;
};

mt_status mt_cfg_builder_new(mt_cfg_builder **out, const mt_cfg_registry *r)
{
    *out = NULL;
    if (!r) return mt_err_set(MT_ERR_INVALID, "mt_cfg_builder_new: NULL registry");
    mt_cfg_builder *b = mt_calloc(1, sizeof *b);
    if (!b) return MT_ERR_NOMEM;
    b->r = r;
    *out = b;
    return MT_OK;
}

void mt_cfg_builder_free(mt_cfg_builder *b)
{
    if (!b) return;
    for (int64_t i = b->n - 1; i >= 0; i--) {
        entry *e = &b->entries[i];
        if (!e->released && e->obj && e->destroy) e->destroy(e->obj);
    }
    mt_free(b->entries);
    mt__ptrmap_deinit(&b->by_node);
    mt__ptrmap_deinit(&b->by_obj);
    mt__ptrmap_deinit(&b->building);
    mt_free(b);
}

void mt_cfg_builder_set_context(mt_cfg_builder *b, void *ctx)
{
    if (b) b->ctx = ctx;
}

void *mt_cfg_builder_context(const mt_cfg_builder *b)
{
    return b ? b->ctx : NULL;
}

/* Appends an entry; on failure destroys obj (it would otherwise leak) and returns NOMEM. */
static mt_status add_entry(mt_cfg_builder *b, entry e)
{
    if (b->n == b->cap) {
        int64_t cap = b->cap ? b->cap * 2 : 32;
        entry *es = mt_realloc(b->entries, sizeof *es * (size_t)cap);
        if (!es) goto fail;
        b->entries = es;
        b->cap = cap;
    }
    if (e.node && mt__ptrmap_put(&b->by_node, e.node, b->n) != MT_OK) goto fail;
    if (e.obj && mt__ptrmap_put(&b->by_obj, e.obj, b->n) != MT_OK) {
        if (e.node) mt__ptrmap_del(&b->by_node, e.node);
        goto fail;
    }
    b->entries[b->n++] = e;
    return MT_OK;
fail:
    if (e.obj && e.destroy) e.destroy(e.obj);
    return MT_ERR_NOMEM;
}

/* Prefixes the current message with "FILE:L:C: NAME: " unless it already has a position. */
static mt_status positioned(mt_status st, const mt_cfg_node *n, const char *name)
{
    if (st == MT_ERR_NOMEM || mt__has_position(mt_last_error())) return st;
    char msg[MT_ERR_MSG_MAX];
    snprintf(msg, sizeof msg, "%s", mt_last_error());
    return mt_cfg_error(st, n->loc, "%s: %s", name, msg);
}

static mt_status check_kind(const mt_cfg_node *n, const mt_component *c, const char *kind)
{
    if (!kind || n->kind == MT_CFG_PKL || mt_component_is_kind(c, kind)) return MT_OK;
    return mt_cfg_error(MT_ERR_INVALID, n->loc, "expected %s %s, got %s (%s %s)", mt__article(kind),
                        kind, c->name, mt__article(c->kind), c->kind);
}

static mt_status find_component(const mt_cfg_builder *b, const mt_cfg_node *n,
                                const mt_component **out)
{
    *out = NULL;
    if (n->kind == MT_CFG_PKL) {
        *out = mt_cfg_registry_find(b->r, "!pkl");
        if (!*out)
            return mt_cfg_error(MT_ERR_NOT_FOUND, n->loc,
                                "cannot load checkpoint '%s': no "
                                "checkpoint loader is registered (component '!pkl')",
                                n->str ? n->str : "");
        return MT_OK;
    }
    if (n->kind != MT_CFG_OBJ) {
        mt_strbuf sb;
        mt_strbuf_init(&sb);
        mt__describe_node(&sb, n);
        mt_status st = mt_cfg_error(MT_ERR_INVALID, n->loc,
                                    "expected a component (!obj:NAME "
                                    "{...}), got %s",
                                    sb.data ? sb.data : "?");
        mt_strbuf_deinit(&sb);
        return st;
    }
    *out = mt_cfg_registry_find(b->r, n->tag);
    if (*out) return MT_OK;
    const char *best = mt__registry_suggest(b->r, n->tag);
    if (best)
        return mt_cfg_error(MT_ERR_NOT_FOUND, n->loc,
                            "unknown component '%s' (did you mean "
                            "'%s'?)",
                            n->tag, best);
    return mt_cfg_error(MT_ERR_NOT_FOUND, n->loc, "unknown component '%s'", n->tag);
}

/* A checkpoint loaded by !pkl: carries its model as YAML that the loader builds again, in a new
 * builder, and that YAML may hold !pkl: itself (a pretrained layer). This per-thread count of
 * the !pkl: builds in progress bounds that nesting, so a checkpoint that loads itself is an
 * error instead of a recursion until the stack overflows. */
enum { MAX_PKL_NESTING = 8 };
static _Thread_local int g_pkl_nesting;

mt_status mt_cfg_build(mt_cfg_builder *b, const mt_cfg_node *node, const char *kind, void **out,
                       const mt_component **component)
{
    if (out) *out = NULL;
    if (component) *component = NULL;
    if (!b || !node || !out) return mt_err_set(MT_ERR_INVALID, "mt_cfg_build: NULL argument");
    int64_t idx;
    if (mt__ptrmap_get(&b->by_node, node, &idx)) {
        entry *e = &b->entries[idx];
        mt_status st = check_kind(node, e->comp, kind);
        if (st != MT_OK) return st;
        *out = e->obj;
        if (component) *component = e->comp;
        return MT_OK;
    }
    const mt_component *c;
    mt_status st = find_component(b, node, &c);
    if (st != MT_OK) return st;
    if ((st = check_kind(node, c, kind)) != MT_OK) return st;
    if (!c->build)
        return mt_cfg_error(MT_ERR_UNSUPPORTED, node->loc,
                            "component '%s' cannot be built "
                            "(no build function)",
                            c->name);
    if (mt__ptrmap_get(&b->building, node, NULL))
        return mt_cfg_error(MT_ERR_INTERNAL, node->loc,
                            "%s needs itself to be built (its build "
                            "function asked for its own node)",
                            c->name);
    int pkl = node->kind == MT_CFG_PKL;
    if (pkl && g_pkl_nesting >= MAX_PKL_NESTING)
        return mt_cfg_error(MT_ERR_RANGE, node->loc,
                            "!pkl: '%s': checkpoints load checkpoints more than %d deep (does "
                            "one load itself?)",
                            node->str ? node->str : "", MAX_PKL_NESTING);
    if (mt__ptrmap_put(&b->building, node, 1) != MT_OK) return MT_ERR_NOMEM;
    void *obj = NULL;
    g_pkl_nesting += pkl;
    st = c->build(b, node, &obj);
    g_pkl_nesting -= pkl;
    mt__ptrmap_del(&b->building, node);
    if (st != MT_OK) {
        if (obj && c->destroy) c->destroy(obj);
        return positioned(st, node, c->name);
    }
    st = add_entry(b, (entry){obj, c->destroy, c, node, false});
    if (st != MT_OK) return st;
    *out = obj;
    if (component) *component = c;
    return MT_OK;
}

const mt_component *mt_cfg_built_component(const mt_cfg_builder *b, const void *obj)
{
    int64_t idx;
    if (!b || !obj || !mt__ptrmap_get(&b->by_obj, obj, &idx)) return NULL;
    return b->entries[idx].comp;
}

mt_status mt_cfg_builder_release(mt_cfg_builder *b, void *obj)
{
    int64_t idx;
    if (!b || !obj || !mt__ptrmap_get(&b->by_obj, obj, &idx))
        return mt_err_set(MT_ERR_NOT_FOUND, "mt_cfg_builder_release: the object was not built "
                                            "by this builder (or was released already)");
    entry *e = &b->entries[idx];
    e->released = true;
    mt__ptrmap_del(&b->by_obj, obj);
    if (e->node) mt__ptrmap_del(&b->by_node, e->node); /* building the node again makes a new one */
    return MT_OK;
}

mt_status mt_cfg_builder_own(mt_cfg_builder *b, void *obj, void (*destroy)(void *))
{
    if (!b || !obj) return mt_err_set(MT_ERR_INVALID, "mt_cfg_builder_own: NULL argument");
    if (mt__ptrmap_get(&b->by_obj, obj, NULL))
        return mt_err_set(MT_ERR_INVALID, "mt_cfg_builder_own: the object is already owned by "
                                          "this builder");
    return add_entry(b, (entry){obj, destroy, NULL, NULL, false});
}
