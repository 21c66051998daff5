/* mt_cfg_validate: checks a whole tree against the registry before anything is built, and
 * reports the FIRST problem in file order as "FILE:LINE:COL: ...": unknown components (with
 * the closest registered name), objects of the wrong kind ("expected a dataset, got SGD (an
 * algorithm)"), missing required keys, unknown keys (with the closest key of the schema),
 * values of the wrong type, then the component's own cross-key check.
 *
 * Order: a component's name, kind and required keys are checked at its own position (which
 * precedes its keys), then its keys in file order, each value recursively. A node reached
 * through several aliases has its contents checked once, its kind at every use.
 *
 * Sweep search tags (MT_CFG_TAGGED) may stand for values: !choice/!grid (and !pchoice)
 * options are each checked against the key's type; numeric tags (!uniform, ...) are accepted
 * where numbers are; !param (a reference) is accepted anywhere. */
#include <string.h>

#include "config_impl.h"

enum { MAX_VALIDATE_DEPTH = 512 };

typedef struct vctx {
    const mt_cfg_registry *r;
    mt__ptrmap visited;
    int32_t depth;
} vctx;

static mt_status validate_any(vctx *v, const mt_cfg_node *n);
static mt_status validate_obj(vctx *v, const mt_cfg_node *n, const char *kind, const char *where);

/* "a dataset", "an extension or an update_callback" */
static void append_kinds(mt_strbuf *sb, const char *kinds)
{
    bool first = true;
    for (const char *p = kinds; *p;) {
        size_t n = strcspn(p, "|");
        char one[64];
        snprintf(one, sizeof one, "%.*s", (int)(n < 63 ? n : 63), p);
        mt_strbuf_appendf(sb, "%s%s %s", first ? "" : " or ", mt__article(one), one);
        first = false;
        p += n;
        if (*p) p++;
    }
}

/* What a node is, for "got ..." (components named with their kind). */
static void append_got(vctx *v, mt_strbuf *sb, const mt_cfg_node *n)
{
    const mt_component *c = n && n->kind == MT_CFG_OBJ ? mt_cfg_registry_find(v->r, n->tag) : NULL;
    if (c) {
        mt_strbuf_appendf(sb, "%s (", c->name);
        append_kinds(sb, c->kind);
        mt_strbuf_append(sb, ")");
    } else {
        mt__describe_node(sb, n);
    }
}

/* Positioned error; `where` (may be NULL) names the component and key: "Train key 'model'". */
static mt_status fail(const mt_cfg_node *at, const char *where, const char *msg)
{
    if (where) return mt_cfg_error(MT_ERR_INVALID, at->loc, "%s: %s", where, msg);
    return mt_cfg_error(MT_ERR_INVALID, at->loc, "%s", msg);
}

static mt_status wrong_kind(vctx *v, const mt_cfg_node *n, const char *kind, const char *where,
                            const char *extra)
{
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    mt_strbuf_append(&sb, "expected ");
    append_kinds(&sb, kind);
    mt_strbuf_append(&sb, ", got ");
    append_got(v, &sb, n);
    if (extra) mt_strbuf_append(&sb, extra);
    mt_status st = mt_strbuf_status(&sb);
    if (st == MT_OK) st = fail(n, where, sb.data);
    mt_strbuf_deinit(&sb);
    return st;
}

static mt_status wrong_type(vctx *v, const mt_cfg_node *n, const char *where, const char *want)
{
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    mt_strbuf_appendf(&sb, "must be %s, got ", want);
    append_got(v, &sb, n);
    mt_status st = mt_strbuf_status(&sb);
    if (st == MT_OK) st = fail(n, where, sb.data);
    mt_strbuf_deinit(&sb);
    return st;
}

/* ---------------------------------------------------------------- typed values */

static bool is_num(const mt_cfg_node *n)
{
    return n->kind == MT_CFG_INT || n->kind == MT_CFG_FLOAT;
}

static bool is_int(const mt_cfg_node *n)
{
    return n->kind == MT_CFG_INT || (n->kind == MT_CFG_FLOAT && n->f > -0x1p63 && n->f < 0x1p63 &&
                                     n->f == (double)(int64_t)n->f);
}

static bool numeric_tag(const mt_cfg_node *n)
{
    return n->kind == MT_CFG_TAGGED && n->tag && strcmp(n->tag, "choice") != 0 &&
           strcmp(n->tag, "pchoice") != 0 && strcmp(n->tag, "grid") != 0 &&
           strcmp(n->tag, "param") != 0;
}

static bool is_param(const mt_cfg_node *n)
{
    return n->kind == MT_CFG_TAGGED && n->tag && strcmp(n->tag, "param") == 0;
}

static const char *type_text(mt_cfg_type t)
{
    switch (t) {
    case MT_CFG_T_BOOL:
        return "a boolean (true/false or 0/1)";
    case MT_CFG_T_INT:
        return "an integer";
    case MT_CFG_T_FLOAT:
        return "a number";
    case MT_CFG_T_STRING:
        return "a string";
    case MT_CFG_T_INTS:
        return "an integer or a list of integers";
    case MT_CFG_T_FLOATS:
        return "a number or a list of numbers";
    case MT_CFG_T_STRINGS:
        return "a string or a list of strings";
    case MT_CFG_T_FLOAT_MAP:
        return "a mapping of names to numbers";
    case MT_CFG_T_FLOATS_OR_MAP:
        return "a number, a list of numbers or a mapping of names to numbers";
    default:
        return "a value";
    }
}

/* One scalar against a scalar type (TAGGED numeric/param accepted where numbers are). */
static bool scalar_ok(const mt_cfg_node *n, mt_cfg_type t)
{
    if (is_param(n)) return true;
    if (n->kind == MT_CFG_TAGGED && !numeric_tag(n)) return true; /* !choice in a list */
    switch (t) {
    case MT_CFG_T_BOOL:
        return n->kind == MT_CFG_BOOL || (n->kind == MT_CFG_INT && (n->i == 0 || n->i == 1));
    case MT_CFG_T_INT:
        return is_int(n) || numeric_tag(n);
    case MT_CFG_T_FLOAT:
        return is_num(n) || numeric_tag(n);
    case MT_CFG_T_STRING:
        return n->kind == MT_CFG_STRING;
    default:
        return true;
    }
}

static bool list_of(const mt_cfg_node *n, mt_cfg_type elem)
{
    if (n->kind != MT_CFG_LIST) return false;
    for (int32_t i = 0; i < n->n; i++)
        if (!n->items[i] || !scalar_ok(n->items[i], elem)) return false;
    return true;
}

static bool float_map(const mt_cfg_node *n)
{
    if (n->kind != MT_CFG_MAP) return false;
    for (int32_t i = 0; i < n->n; i++)
        if (!n->items[i] || !scalar_ok(n->items[i], MT_CFG_T_FLOAT)) return false;
    return true;
}

/* A component (or checkpoint) where `key` wants one. */
static mt_status one_obj(vctx *v, const mt_cfg_node *n, const mt_cfg_key *key, const char *where)
{
    if (n->kind == MT_CFG_OBJ) return validate_obj(v, n, key->obj_kind, where);
    if (n->kind == MT_CFG_PKL) {
        if (key->accepts_pkl) return MT_OK;
        return wrong_kind(v, n, key->obj_kind ? key->obj_kind : "component", where,
                          " (this key does not take a checkpoint)");
    }
    if (is_param(n)) return MT_OK;
    return wrong_kind(v, n, key->obj_kind ? key->obj_kind : "component", where, NULL);
}

static mt_status check_value(vctx *v, const mt_cfg_node *n, const mt_cfg_key *key,
                             const char *where);

/* A search tag standing for a value: check every option of !choice/!grid/!pchoice. */
static mt_status check_tagged(vctx *v, const mt_cfg_node *n, const mt_cfg_key *key,
                              const char *where)
{
    const mt_cfg_node *val = n->n > 0 ? n->items[0] : NULL;
    if (is_param(n)) return MT_OK;
    bool options = strcmp(n->tag, "choice") == 0 || strcmp(n->tag, "grid") == 0;
    bool weighted = strcmp(n->tag, "pchoice") == 0;
    if ((options || weighted) && val && val->kind == MT_CFG_LIST) {
        for (int32_t i = 0; i < val->n; i++) {
            const mt_cfg_node *opt = val->items[i];
            if (weighted) {
                if (!opt || opt->kind != MT_CFG_LIST || opt->n != 2) continue;
                opt = opt->items[1];
            }
            mt_status st = check_value(v, opt, key, where);
            if (st != MT_OK) return st;
        }
        return MT_OK;
    }
    if (options || weighted) return validate_any(v, n);
    switch (key->type) {
    case MT_CFG_T_ANY:
    case MT_CFG_T_INT:
    case MT_CFG_T_FLOAT:
    case MT_CFG_T_INTS:
    case MT_CFG_T_FLOATS:
    case MT_CFG_T_FLOATS_OR_MAP:
        return MT_OK;
    default:
        return wrong_type(v, n, where,
                          key->type >= MT_CFG_T_OBJ ? "a component" : type_text(key->type));
    }
}

static mt_status check_value(vctx *v, const mt_cfg_node *n, const mt_cfg_key *key,
                             const char *where)
{
    if (!n) return MT_OK;
    if (n->kind == MT_CFG_NULL) {
        if (key->nullable || key->type == MT_CFG_T_ANY) return MT_OK;
        if (key->type >= MT_CFG_T_OBJ)
            return wrong_kind(v, n, key->obj_kind ? key->obj_kind : "component", where, NULL);
        return wrong_type(v, n, where, type_text(key->type));
    }
    if (n->kind == MT_CFG_TAGGED) return check_tagged(v, n, key, where);
    bool ok = true;
    switch (key->type) {
    case MT_CFG_T_ANY:
        return validate_any(v, n);
    case MT_CFG_T_BOOL:
    case MT_CFG_T_INT:
    case MT_CFG_T_FLOAT:
    case MT_CFG_T_STRING:
        ok = scalar_ok(n, key->type);
        break;
    case MT_CFG_T_INTS:
        ok = scalar_ok(n, MT_CFG_T_INT) || list_of(n, MT_CFG_T_INT);
        break;
    case MT_CFG_T_FLOATS:
        ok = scalar_ok(n, MT_CFG_T_FLOAT) || list_of(n, MT_CFG_T_FLOAT);
        break;
    case MT_CFG_T_STRINGS:
        ok = scalar_ok(n, MT_CFG_T_STRING) || list_of(n, MT_CFG_T_STRING);
        break;
    case MT_CFG_T_FLOAT_MAP:
        ok = float_map(n);
        break;
    case MT_CFG_T_FLOATS_OR_MAP:
        ok = scalar_ok(n, MT_CFG_T_FLOAT) || list_of(n, MT_CFG_T_FLOAT) || float_map(n);
        break;
    case MT_CFG_T_OBJ:
        return one_obj(v, n, key, where);
    case MT_CFG_T_OBJ_LIST:
    case MT_CFG_T_OBJ_OR_LIST:
    case MT_CFG_T_OBJ_MAP:
        if ((n->kind == MT_CFG_LIST && key->type != MT_CFG_T_OBJ_MAP) ||
            (n->kind == MT_CFG_MAP && key->type == MT_CFG_T_OBJ_MAP)) {
            for (int32_t i = 0; i < n->n; i++) {
                const mt_cfg_node *it = n->items[i];
                mt_cfg_key elem = *key; /* an item stands for one component */
                elem.type = MT_CFG_T_OBJ;
                mt_status st = !it                         ? MT_OK
                               : it->kind == MT_CFG_TAGGED ? check_tagged(v, it, &elem, where)
                                                           : one_obj(v, it, key, where);
                if (st != MT_OK) return st;
            }
            return MT_OK;
        }
        if (key->type == MT_CFG_T_OBJ_LIST && n->kind != MT_CFG_LIST) {
            mt_strbuf sb;
            mt_strbuf_init(&sb);
            mt_strbuf_append(&sb, "a list of components (");
            append_kinds(&sb, key->obj_kind ? key->obj_kind : "component");
            mt_strbuf_append(&sb, ")");
            mt_status st = mt_strbuf_status(&sb);
            if (st == MT_OK) st = wrong_type(v, n, where, sb.data);
            mt_strbuf_deinit(&sb);
            return st;
        }
        return one_obj(v, n, key, where);
    default:
        return MT_OK;
    }
    return ok ? MT_OK : wrong_type(v, n, where, type_text(key->type));
}

/* ---------------------------------------------------------------- components */

static const mt_cfg_key *schema_key(const mt_component *c, const char *name)
{
    for (const mt_cfg_key *k = c->keys; k && k->name; k++)
        if (strcmp(k->name, name) == 0) return k;
    return NULL;
}

static mt_status unknown_key(const mt_component *c, const mt_cfg_node *obj, int32_t i)
{
    int32_t nk = 0;
    for (const mt_cfg_key *k = c->keys; k && k->name; k++)
        nk++;
    const char **names = mt_malloc(sizeof *names * (size_t)(nk ? nk : 1));
    if (!names) return MT_ERR_NOMEM;
    for (int32_t j = 0; j < nk; j++)
        names[j] = c->keys[j].name;
    const char *best = mt_cfg_suggest(obj->keys[i], nk, names);
    mt_cfg_loc loc = obj->key_locs ? obj->key_locs[i] : obj->loc;
    mt_status st;
    if (best)
        st = mt_cfg_error(MT_ERR_INVALID, loc, "%s has no key '%s' (did you mean '%s'?)", c->name,
                          obj->keys[i], best);
    else
        st = mt_cfg_error(MT_ERR_INVALID, loc, "%s has no key '%s'", c->name, obj->keys[i]);
    mt_free(names);
    return st;
}

static mt_status check_keys(vctx *v, const mt_component *c, const mt_cfg_node *n)
{
    for (const mt_cfg_key *k = c->keys; k && k->name; k++) {
        if (!k->required || mt_cfg_get(n, k->name)) continue;
        return mt_cfg_error(MT_ERR_INVALID, n->loc, "%s is missing the required key '%s'%s%s%s",
                            c->name, k->name, k->doc ? " (" : "", k->doc ? k->doc : "",
                            k->doc ? ")" : "");
    }
    for (int32_t i = 0; i < n->n; i++) {
        const mt_cfg_key *k = schema_key(c, n->keys[i]);
        mt_status st;
        if (!k) {
            if (!c->open_keys) return unknown_key(c, n, i);
            st = validate_any(v, n->items[i]);
        } else {
            char where[256];
            snprintf(where, sizeof where, "%s key '%s'", c->name, k->name);
            st = check_value(v, n->items[i], k, where);
        }
        if (st != MT_OK) return st;
    }
    return MT_OK;
}

static mt_status validate_obj(vctx *v, const mt_cfg_node *n, const char *kind, const char *where)
{
    const mt_component *c = mt_cfg_registry_find(v->r, n->tag);
    if (!c) {
        const char *best = mt__registry_suggest(v->r, n->tag);
        if (best)
            return mt_cfg_error(MT_ERR_INVALID, n->loc,
                                "unknown component '%s' (did you mean "
                                "'%s'?)",
                                n->tag, best);
        return mt_cfg_error(MT_ERR_INVALID, n->loc,
                            "unknown component '%s' (no registered "
                            "component has this name)",
                            n->tag);
    }
    if (kind && !mt_component_is_kind(c, kind)) return wrong_kind(v, n, kind, where, NULL);
    if (mt__ptrmap_get(&v->visited, n, NULL)) return MT_OK;
    if (mt__ptrmap_put(&v->visited, n, 1) != MT_OK) return MT_ERR_NOMEM;
    if (++v->depth > MAX_VALIDATE_DEPTH)
        return mt_cfg_error(MT_ERR_INVALID, n->loc, "components nested deeper than %d",
                            MAX_VALIDATE_DEPTH);
    mt_status st = check_keys(v, c, n);
    if (st == MT_OK && c->check) {
        st = c->check(n);
        if (st != MT_OK && st != MT_ERR_NOMEM && !mt__has_position(mt_last_error())) {
            char msg[MT_ERR_MSG_MAX];
            snprintf(msg, sizeof msg, "%s", mt_last_error());
            st = mt_cfg_error(st, n->loc, "%s: %s", c->name, msg);
        }
    }
    v->depth--;
    return st;
}

static mt_status validate_any(vctx *v, const mt_cfg_node *n)
{
    if (!n) return MT_OK;
    switch (n->kind) {
    case MT_CFG_OBJ:
        return validate_obj(v, n, NULL, NULL);
    case MT_CFG_LIST:
    case MT_CFG_MAP:
    case MT_CFG_TAGGED:
        break;
    default:
        return MT_OK;
    }
    if (mt__ptrmap_get(&v->visited, n, NULL)) return MT_OK;
    if (mt__ptrmap_put(&v->visited, n, 1) != MT_OK) return MT_ERR_NOMEM;
    if (++v->depth > MAX_VALIDATE_DEPTH)
        return mt_cfg_error(MT_ERR_INVALID, n->loc, "values nested deeper than %d",
                            MAX_VALIDATE_DEPTH);
    mt_status st = MT_OK;
    for (int32_t i = 0; i < n->n && st == MT_OK; i++)
        st = validate_any(v, n->items[i]);
    v->depth--;
    return st;
}

mt_status mt_cfg_validate(const mt_cfg_registry *r, const mt_cfg_node *root, const char *kind)
{
    if (!r || !root) return mt_err_set(MT_ERR_INVALID, "mt_cfg_validate: NULL registry or root");
    vctx v = {.r = r};
    mt_status st;
    if (kind && *kind) {
        if (root->kind == MT_CFG_OBJ)
            st = validate_obj(&v, root, kind, NULL);
        else
            st = wrong_kind(&v, root, kind, NULL, NULL);
    } else {
        st = validate_any(&v, root);
    }
    mt__ptrmap_deinit(&v.visited);
    return st;
}
