/* Resolution of a point: a copy of the sweep's Train tree in which every search tag is replaced
 * by the point's value (INT or FLOAT nodes, the chosen option subtree for categorical tags),
 * `!param NAME` and "${params.NAME}" by the shared parameter's value, and ${trial.*}-style
 * variables substituted in strings. Untouched subtrees are shared with the document (the copy
 * borrows its nodes); a node reached through several aliases resolves to one node, so
 * mt_cfg_dump writes it once with an anchor and the trial's objects stay shared. */
#include <stdio.h>
#include <string.h>

#include "hyperopt_impl.h"

struct mt_hpo_tree {
    mt_arena arena;
    const mt_cfg_node *root;
};

typedef struct memo_slot {
    const mt_cfg_node *src, *dst;
} memo_slot;

typedef struct rctx {
    const mt_hpo_space *s;
    const mt_hpo_point *p;
    mt_arena *a;
    int32_t n_vars;
    const mt_cfg_var *vars;
    memo_slot *memo;
    size_t memo_cap, memo_n;
    int32_t depth;
} rctx;

static size_t hash_ptr(const void *p, size_t cap)
{
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (size_t)x & (cap - 1);
}

static const mt_cfg_node *memo_get(const rctx *c, const mt_cfg_node *n)
{
    if (!c->memo_cap) return NULL;
    for (size_t i = hash_ptr(n, c->memo_cap);; i = (i + 1) & (c->memo_cap - 1)) {
        if (!c->memo[i].src) return NULL;
        if (c->memo[i].src == n) return c->memo[i].dst;
    }
}

static mt_status memo_put(rctx *c, const mt_cfg_node *n, const mt_cfg_node *d)
{
    if (2 * (c->memo_n + 1) > c->memo_cap) {
        size_t cap = c->memo_cap ? 2 * c->memo_cap : 256;
        memo_slot *m = mt_calloc(cap, sizeof *m);
        if (!m) return mt_err_set(MT_ERR_NOMEM, "resolve");
        for (size_t i = 0; i < c->memo_cap; i++) {
            if (!c->memo[i].src) continue;
            size_t j = hash_ptr(c->memo[i].src, cap);
            while (m[j].src)
                j = (j + 1) & (cap - 1);
            m[j] = c->memo[i];
        }
        mt_free(c->memo);
        c->memo = m;
        c->memo_cap = cap;
    }
    size_t j = hash_ptr(n, c->memo_cap);
    while (c->memo[j].src && c->memo[j].src != n)
        j = (j + 1) & (c->memo_cap - 1);
    if (!c->memo[j].src) c->memo_n++;
    c->memo[j].src = n;
    c->memo[j].dst = d;
    return MT_OK;
}

static mt_cfg_node *new_node(rctx *c, mt_cfg_kind kind, mt_cfg_loc loc)
{
    mt_cfg_node *n = mt_arena_calloc(c->a, sizeof *n);
    if (!n) return NULL;
    n->kind = kind;
    n->loc = loc;
    n->anchor = -1;
    return n;
}

static int32_t param_of(const mt_hpo_space *s, const mt_cfg_node *n)
{
    for (int32_t i = 0; i < s->n; i++)
        if (s->params[i].node == n) return i;
    return -1;
}

static mt_status resolve(rctx *c, const mt_cfg_node *n, const mt_cfg_node **out);

static mt_status param_ref(rctx *c, const char *name, mt_cfg_loc loc, const mt_cfg_node **out)
{
    const mt_cfg_node *v = c->s->params_map ? mt_cfg_get(c->s->params_map, name) : NULL;
    if (!v) return mt_cfg_error(MT_ERR_INVALID, loc, "unknown parameter 'params.%s'", name);
    return resolve(c, v, out);
}

/* Text of a resolved scalar for substitution inside a longer string. */
static mt_status scalar_text(const mt_cfg_node *v, mt_cfg_loc loc, const char *name, mt_strbuf *sb)
{
    switch (v ? v->kind : MT_CFG_NULL) {
    case MT_CFG_INT:
        mt_strbuf_appendf(sb, "%lld", (long long)v->i);
        return MT_OK;
    case MT_CFG_FLOAT:
        mt_strbuf_appendf(sb, "%.17g", v->f);
        return MT_OK;
    case MT_CFG_STRING:
        mt_strbuf_append(sb, v->str);
        return MT_OK;
    case MT_CFG_BOOL:
        mt_strbuf_append(sb, v->b ? "true" : "false");
        return MT_OK;
    default:
        return mt_cfg_error(MT_ERR_INVALID, loc,
                            "'${params.%s}' inside a longer string needs a scalar value", name);
    }
}

/* Strings: exact "${params.NAME}" -> the value node; else textual substitution. */
static mt_status resolve_string(rctx *c, const mt_cfg_node *n, const mt_cfg_node **out)
{
    const char *s = n->str;
    size_t len = strlen(s);
    if (len > 10 && strncmp(s, "${params.", 9) == 0 && s[len - 1] == '}' &&
        !memchr(s + 9, '}', len - 10)) {
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)(len - 10), s + 9);
        return param_ref(c, name, n->loc, out);
    }
    if (!strstr(s, "${")) {
        *out = n;
        return MT_OK;
    }
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    mt_status st = MT_OK;
    const char *p = s;
    while (*p && st == MT_OK) {
        const char *b = strstr(p, "${");
        const char *e = b ? strchr(b, '}') : NULL;
        if (!b || !e) {
            mt_strbuf_append(&sb, p);
            break;
        }
        mt_strbuf_appendn(&sb, p, (size_t)(b - p));
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)(e - b - 2), b + 2);
        bool done = false;
        if (strncmp(name, "params.", 7) == 0) {
            const mt_cfg_node *v = NULL;
            st = param_ref(c, name + 7, n->loc, &v);
            if (st == MT_OK) st = scalar_text(v, n->loc, name + 7, &sb);
            done = true;
        }
        for (int32_t i = 0; i < c->n_vars && !done; i++)
            if (c->vars[i].name && strcmp(c->vars[i].name, name) == 0) {
                mt_strbuf_append(&sb, c->vars[i].value ? c->vars[i].value : "");
                done = true;
            }
        if (!done) mt_strbuf_appendn(&sb, b, (size_t)(e - b + 1)); /* left for the loader */
        p = e + 1;
    }
    if (st == MT_OK) st = mt_strbuf_status(&sb);
    if (st == MT_OK) {
        mt_cfg_node *m = new_node(c, MT_CFG_STRING, n->loc);
        char *text = m ? mt_arena_strdup(c->a, sb.data ? sb.data : "") : NULL;
        if (!text) {
            st = mt_err_set(MT_ERR_NOMEM, "resolve");
        } else {
            m->str = text;
            m->quoted = n->quoted;
            *out = m;
        }
    }
    mt_strbuf_deinit(&sb);
    return st;
}

static mt_status resolve_tag(rctx *c, const mt_cfg_node *n, const mt_cfg_node **out)
{
    if (n->tag && strcmp(n->tag, "param") == 0) {
        const mt_cfg_node *v = n->n > 0 ? n->items[0] : NULL;
        if (!v || v->kind != MT_CFG_STRING)
            return mt_cfg_error(MT_ERR_INVALID, n->loc, "!param needs a parameter name");
        return param_ref(c, v->str, n->loc, out);
    }
    int32_t i = param_of(c->s, n);
    if (i < 0)
        return mt_cfg_error(MT_ERR_INVALID, n->loc,
                            "!%s is not a parameter of the space (a tree other than the one the "
                            "space came from?)",
                            n->tag);
    const mt_hpo_param *prm = &c->s->params[i];
    if (!c->p->active[i] || c->p->values[i] != c->p->values[i])
        return mt_cfg_error(MT_ERR_INVALID, n->loc, "the point has no value for '%s'", prm->label);
    double v = c->p->values[i];
    if (prm->options) return resolve(c, prm->options[(int32_t)v], out);
    bool as_int = prm->is_int || prm->dist == MT_HPO_RANDINT;
    mt_cfg_node *m = new_node(c, as_int ? MT_CFG_INT : MT_CFG_FLOAT, n->loc);
    if (!m) return mt_err_set(MT_ERR_NOMEM, "resolve");
    char buf[40];
    if (as_int) {
        m->i = (int64_t)v;
        m->f = (double)m->i;
        snprintf(buf, sizeof buf, "%lld", (long long)m->i);
    } else {
        m->f = v;
        snprintf(buf, sizeof buf, "%.17g", v);
    }
    m->str = mt_arena_strdup(c->a, buf);
    if (!m->str) return mt_err_set(MT_ERR_NOMEM, "resolve");
    *out = m;
    return MT_OK;
}

static mt_status resolve(rctx *c, const mt_cfg_node *n, const mt_cfg_node **out)
{
    *out = n;
    if (!n) return MT_OK;
    const mt_cfg_node *done = memo_get(c, n);
    if (done) {
        *out = done;
        return MT_OK;
    }
    if (++c->depth > 200) return mt_cfg_error(MT_ERR_RANGE, n->loc, "resolve: nested too deep");
    mt_status st = MT_OK;
    switch (n->kind) {
    case MT_CFG_TAGGED:
        st = resolve_tag(c, n, out);
        break;
    case MT_CFG_STRING:
        st = resolve_string(c, n, out);
        break;
    case MT_CFG_LIST:
    case MT_CFG_MAP:
    case MT_CFG_OBJ: {
        mt_cfg_node *m = new_node(c, n->kind, n->loc);
        const mt_cfg_node **items =
            n->n ? mt_arena_calloc(c->a, sizeof *items * (size_t)n->n) : NULL;
        if (!m || (n->n && !items)) {
            st = mt_err_set(MT_ERR_NOMEM, "resolve");
            break;
        }
        *m = *n;
        m->anchor = -1;
        m->items = (mt_cfg_node **)items;
        /* registered before the children, so a cycle through aliases ends here */
        if ((st = memo_put(c, n, m))) break;
        for (int32_t i = 0; i < n->n && st == MT_OK; i++)
            st = resolve(c, n->items[i], &items[i]);
        *out = m;
        break;
    }
    default:
        break;
    }
    c->depth--;
    if (st == MT_OK && !memo_get(c, n)) st = memo_put(c, n, *out);
    return st;
}

mt_status mt_hpo_resolve(mt_hpo_tree **out, const mt_hpo_space *s, const mt_hpo_point *p,
                         const mt_cfg_node *tree, int32_t n_vars, const mt_cfg_var *vars)
{
    *out = NULL;
    if (p->n != s->n)
        return mt_err_set(MT_ERR_INVALID, "resolve: point of %d values for a space of %d",
                          (int)p->n, (int)s->n);
    mt_hpo_tree *t = mt_calloc(1, sizeof *t);
    if (!t) return mt_err_set(MT_ERR_NOMEM, "resolve");
    rctx c = {.s = s, .p = p, .a = &t->arena, .n_vars = n_vars, .vars = vars};
    mt_status st = resolve(&c, tree, &t->root);
    mt_free(c.memo);
    if (st) {
        mt_hpo_tree_free(t);
        return st;
    }
    *out = t;
    return MT_OK;
}

const mt_cfg_node *mt_hpo_tree_root(const mt_hpo_tree *t)
{
    return t ? t->root : NULL;
}

void mt_hpo_tree_free(mt_hpo_tree *t)
{
    if (!t) return;
    mt_arena_free(&t->arena);
    mt_free(t);
}
