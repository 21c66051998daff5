/* Search spaces: extraction of the parameters of a sweep from a config tree. The walk visits
 * `params:` then `train:` in file order, turning each search tag (kept by the config module as
 * MT_CFG_TAGGED nodes) into an mt_hpo_param labelled by its YAML path; the options of a
 * categorical tag are walked with that parameter as parent, so parameters inside an option are
 * conditional on it (tree-structured spaces). References to shared parameters (`!param NAME`,
 * "${params.NAME}") are checked against `params:`. Also the printer used by --dry-run. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "hyperopt_impl.h"

static const char *const dist_names[] = {
#define MT__HPO_DIST_NAME(name, text) text,
    MT_HPO_DIST_MAP(MT__HPO_DIST_NAME)
#undef MT__HPO_DIST_NAME
};
_Static_assert(sizeof dist_names / sizeof dist_names[0] == MT_HPO_DIST_COUNT, "dist names");

const char *mt_hpo_dist_name(mt_hpo_dist d)
{
    return (unsigned)d < MT_HPO_DIST_COUNT ? dist_names[d] : "invalid";
}

bool mt_hpo_dist_is_categorical(mt_hpo_dist d)
{
    return d == MT_HPO_RANDINT || d == MT_HPO_CHOICE || d == MT_HPO_PCHOICE || d == MT_HPO_GRID;
}

static bool dist_from_tag(const char *tag, mt_hpo_dist *out)
{
    for (int32_t d = 0; d < MT_HPO_DIST_COUNT; d++)
        if (tag && strcmp(tag, dist_names[d]) == 0) {
            *out = (mt_hpo_dist)d;
            return true;
        }
    return false;
}

/* ---------------------------------------------------------------- the walk */

typedef struct walk {
    mt_hpo_space *s;
    char path[1024];
    size_t len;
    const mt_cfg_node **seen; /* containers and tags already walked (YAML aliases) */
    int32_t n_seen, cap_seen;
} walk;

static bool seen_before(walk *w, const mt_cfg_node *n, mt_status *st)
{
    for (int32_t i = 0; i < w->n_seen; i++)
        if (w->seen[i] == n) return true;
    if (w->n_seen == w->cap_seen) {
        int32_t cap = w->cap_seen ? 2 * w->cap_seen : 64;
        const mt_cfg_node **p = mt_realloc(w->seen, sizeof *p * (size_t)cap);
        if (!p) {
            *st = mt_err_set(MT_ERR_NOMEM, "hyperopt: space walk");
            return true;
        }
        w->seen = p;
        w->cap_seen = cap;
    }
    w->seen[w->n_seen++] = n;
    return false;
}

static size_t path_fix(walk *w, size_t old, int k)
{
    if (k > 0) w->len += (size_t)k;
    if (w->len >= sizeof w->path) w->len = sizeof w->path - 1;
    return old;
}

/* Appends "<pre><key>" (pre: "" or "."; no "." at the start). */
static size_t path_key(walk *w, const char *pre, const char *key)
{
    size_t old = w->len;
    if (old == 0 && strcmp(pre, ".") == 0) pre = "";
    return path_fix(w, old, snprintf(w->path + old, sizeof w->path - old, "%s%s", pre, key));
}

static size_t path_index(walk *w, int64_t i)
{
    size_t old = w->len;
    return path_fix(w, old, snprintf(w->path + old, sizeof w->path - old, "[%lld]", (long long)i));
}

static void path_pop(walk *w, size_t old)
{
    w->len = old;
    w->path[old] = '\0';
}

static bool num_of(const mt_cfg_node *n, double *v, bool *is_int)
{
    if (!n || (n->kind != MT_CFG_INT && n->kind != MT_CFG_FLOAT)) return false;
    *v = n->f;
    if (is_int) *is_int = n->kind == MT_CFG_INT;
    return true;
}

static mt_status grow(mt_hpo_space *s)
{
    if (s->n < s->cap) return MT_OK;
    int32_t cap = s->cap ? 2 * s->cap : 16;
    mt_hpo_param *p = mt_realloc(s->params, sizeof *p * (size_t)cap);
    if (!p) return mt_err_set(MT_ERR_NOMEM, "hyperopt: space");
    s->params = p;
    int32_t *d = mt_realloc(s->depth, sizeof *d * (size_t)cap);
    if (!d) return mt_err_set(MT_ERR_NOMEM, "hyperopt: space");
    s->depth = d;
    s->cap = cap;
    return MT_OK;
}

/* Identifier for expressions: label without "params.", other characters as '_'. */
static const char *make_name(mt_hpo_space *s, const char *label)
{
    if (strncmp(label, "params.", 7) == 0) label += 7;
    size_t n = strlen(label);
    char *out = mt_arena_alloc(&s->arena, n + 2, 1);
    if (!out) return NULL;
    size_t j = 0;
    if (isdigit((unsigned char)label[0])) out[j++] = '_';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)label[i];
        out[j++] = (char)(isalnum(c) || c == '_' ? c : '_');
    }
    out[j] = '\0';
    return out;
}

static const char *const long_keys[] = {"low", "high", "q", "mu", "sigma", "name", "options"};

/* Positional or long-form arguments of a numeric tag: want = number of arguments (2 or 3). */
static mt_status numeric_args(const mt_cfg_node *tag, const mt_cfg_node *arg, int32_t want,
                              bool bounds, double v[3], bool isint[3])
{
    const char *t = tag->tag;
    const char *what = want == 3 ? (bounds ? "[low, high, q]" : "[mu, sigma, q]")
                                 : (bounds ? "[low, high]" : "[mu, sigma]");
    if (arg && arg->kind == MT_CFG_MAP) {
        const char *names[3] = {bounds ? "low" : "mu", bounds ? "high" : "sigma", "q"};
        for (int32_t i = 0; i < want; i++) {
            const mt_cfg_node *x = mt_cfg_get(arg, names[i]);
            if (!x)
                return mt_cfg_error(MT_ERR_INVALID, tag->loc, "!%s is missing '%s'", t, names[i]);
            if (!num_of(x, &v[i], &isint[i]))
                return mt_cfg_error(MT_ERR_INVALID, x->loc, "!%s: '%s' must be a number, got %s", t,
                                    names[i], mt_cfg_kind_name(x->kind));
        }
        return MT_OK;
    }
    if (!arg || arg->kind != MT_CFG_LIST || arg->n != want)
        return mt_cfg_error(MT_ERR_INVALID, tag->loc, "!%s needs %s%s", t, what,
                            arg && arg->kind == MT_CFG_LIST ? ", got a list of another length"
                                                            : "");
    for (int32_t i = 0; i < want; i++)
        if (!num_of(arg->items[i], &v[i], &isint[i]))
            return mt_cfg_error(MT_ERR_INVALID, arg->items[i] ? arg->items[i]->loc : arg->loc,
                                "!%s needs numbers %s, got %s", t, what,
                                arg->items[i] ? mt_cfg_kind_name(arg->items[i]->kind) : "null");
    return MT_OK;
}

static mt_status option_args(mt_hpo_space *s, const mt_cfg_node *tag, const mt_cfg_node *arg,
                             mt_hpo_param *p)
{
    const char *t = tag->tag;
    const mt_cfg_node *list = arg;
    if (arg && arg->kind == MT_CFG_MAP) {
        list = mt_cfg_get(arg, "options");
        if (!list) return mt_cfg_error(MT_ERR_INVALID, tag->loc, "!%s is missing 'options'", t);
    }
    if (!list || list->kind != MT_CFG_LIST || list->n < 1)
        return mt_cfg_error(MT_ERR_INVALID, list ? list->loc : tag->loc,
                            "!%s needs a non-empty list of options%s", t,
                            p->dist == MT_HPO_PCHOICE ? " [[p, option], ...]" : "");
    p->n_options = list->n;
    const mt_cfg_node **opts = mt_arena_calloc(&s->arena, sizeof *opts * (size_t)list->n);
    if (!opts) return MT_ERR_NOMEM;
    if (p->dist == MT_HPO_PCHOICE) {
        double *probs = mt_arena_calloc(&s->arena, sizeof *probs * (size_t)list->n), sum = 0;
        if (!probs) return MT_ERR_NOMEM;
        for (int32_t k = 0; k < list->n; k++) {
            const mt_cfg_node *pair = list->items[k];
            if (!pair || pair->kind != MT_CFG_LIST || pair->n != 2 ||
                !num_of(pair->items[0], &probs[k], NULL))
                return mt_cfg_error(MT_ERR_INVALID, pair ? pair->loc : list->loc,
                                    "!pchoice option %d must be [probability, option]", (int)k);
            if (!(probs[k] > 0))
                return mt_cfg_error(MT_ERR_INVALID, pair->items[0]->loc,
                                    "!pchoice probability must be > 0, got %g", probs[k]);
            sum += probs[k];
            opts[k] = pair->items[1];
        }
        if (fabs(sum - 1.0) > 1e-6)
            return mt_cfg_error(MT_ERR_INVALID, list->loc,
                                "!pchoice probabilities must sum to 1, got %.17g", sum);
        for (int32_t k = 0; k < list->n; k++)
            probs[k] /= sum;
        p->probs = probs;
    } else {
        for (int32_t k = 0; k < list->n; k++)
            opts[k] = list->items[k];
    }
    p->options = opts;
    return MT_OK;
}

/* Fills p from the tagged node (dist already set). */
static mt_status parse_tag(mt_hpo_space *s, const mt_cfg_node *tag, mt_hpo_param *p,
                           const char **name)
{
    const mt_cfg_node *arg = tag->n > 0 ? tag->items[0] : NULL;
    const char *t = tag->tag;
    *name = NULL;
    if (arg && arg->kind == MT_CFG_MAP) {
        for (int32_t i = 0; i < arg->n; i++) {
            bool ok = false;
            for (size_t k = 0; k < sizeof long_keys / sizeof long_keys[0]; k++)
                ok = ok || strcmp(arg->keys[i], long_keys[k]) == 0;
            if (!ok) {
                const char *sug = mt_cfg_suggest(arg->keys[i], 7, long_keys);
                return mt_cfg_error(MT_ERR_INVALID, arg->key_locs[i], "!%s has no key '%s'%s%s%s",
                                    t, arg->keys[i], sug ? " (did you mean '" : "", sug ? sug : "",
                                    sug ? "'?)" : "");
            }
        }
        const mt_cfg_node *nm = mt_cfg_get(arg, "name");
        if (nm) {
            if (nm->kind != MT_CFG_STRING || !nm->str[0])
                return mt_cfg_error(MT_ERR_INVALID, nm->loc, "!%s: 'name' must be a string", t);
            *name = nm->str;
        }
    }
    double v[3] = {0, 0, 0};
    bool isint[3] = {false, false, false};
    mt_status st = MT_OK;
    switch (p->dist) {
    case MT_HPO_UNIFORM:
    case MT_HPO_LOGUNIFORM:
    case MT_HPO_QUNIFORM:
    case MT_HPO_QLOGUNIFORM:
    case MT_HPO_NORMAL:
    case MT_HPO_LOGNORMAL:
    case MT_HPO_QNORMAL:
    case MT_HPO_QLOGNORMAL: {
        bool normal = p->dist == MT_HPO_NORMAL || p->dist == MT_HPO_LOGNORMAL ||
                      p->dist == MT_HPO_QNORMAL || p->dist == MT_HPO_QLOGNORMAL;
        bool q = p->dist == MT_HPO_QUNIFORM || p->dist == MT_HPO_QLOGUNIFORM ||
                 p->dist == MT_HPO_QNORMAL || p->dist == MT_HPO_QLOGNORMAL;
        if ((st = numeric_args(tag, arg, q ? 3 : 2, !normal, v, isint))) return st;
        p->a = v[0];
        p->b = v[1];
        p->q = q ? v[2] : 0;
        if (normal && !(v[1] > 0))
            return mt_cfg_error(MT_ERR_INVALID, tag->loc, "!%s needs sigma > 0, got %g", t, v[1]);
        if (!normal && !(v[0] < v[1]))
            return mt_cfg_error(MT_ERR_INVALID, tag->loc, "!%s needs low < high, got [%g, %g]", t,
                                v[0], v[1]);
        if ((p->dist == MT_HPO_LOGUNIFORM || p->dist == MT_HPO_QLOGUNIFORM) && !(v[0] > 0))
            return mt_cfg_error(MT_ERR_INVALID, tag->loc,
                                "!%s bounds are in natural units and must be > 0, got low %g", t,
                                v[0]);
        if (q && !(v[2] > 0))
            return mt_cfg_error(MT_ERR_INVALID, tag->loc, "!%s needs q > 0, got %g", t, v[2]);
        /* integer values: an integer q, and for quniform integer bounds too */
        p->is_int =
            q && isint[2] && (normal || p->dist == MT_HPO_QLOGUNIFORM || (isint[0] && isint[1]));
        return MT_OK;
    }
    case MT_HPO_RANDINT:
    case MT_HPO_INTUNIFORM: {
        bool one = p->dist == MT_HPO_RANDINT && arg && arg->kind == MT_CFG_LIST && arg->n == 1;
        if (one) {
            if (!num_of(arg->items[0], &v[1], &isint[1]))
                return mt_cfg_error(MT_ERR_INVALID, arg->loc, "!randint needs integers");
            isint[0] = true;
        } else if ((st = numeric_args(tag, arg, 2, true, v, isint))) {
            return st;
        }
        if (!isint[0] || !isint[1])
            return mt_cfg_error(MT_ERR_INVALID, tag->loc, "!%s needs integer bounds", t);
        if (!(v[0] < v[1]))
            return mt_cfg_error(MT_ERR_INVALID, tag->loc, "!%s needs low < high, got [%g, %g]", t,
                                v[0], v[1]);
        if (v[1] - v[0] > 1e15)
            return mt_cfg_error(MT_ERR_INVALID, tag->loc, "!%s range is too large", t);
        p->a = v[0];
        p->b = v[1];
        p->q = p->dist == MT_HPO_INTUNIFORM ? 1 : 0;
        p->is_int = true;
        if (p->dist == MT_HPO_RANDINT) {
            if (v[1] - v[0] > 100000000)
                return mt_cfg_error(MT_ERR_INVALID, tag->loc,
                                    "!randint of more than 1e8 values: use !intuniform");
            p->n_options = (int32_t)(v[1] - v[0]);
        }
        return MT_OK;
    }
    case MT_HPO_CHOICE:
    case MT_HPO_PCHOICE:
    case MT_HPO_GRID:
        return option_args(s, tag, arg, p);
    default:
        return mt_cfg_error(MT_ERR_INTERNAL, tag->loc, "!%s: unhandled", t);
    }
}

static bool params_has(const mt_hpo_space *s, const char *name)
{
    return s->params_map && mt_cfg_get(s->params_map, name) != NULL;
}

static mt_status unknown_ref(const mt_hpo_space *s, mt_cfg_loc loc, const char *name)
{
    const mt_cfg_node *m = s->params_map;
    const char *sug = m ? mt_cfg_suggest(name, m->n, m->keys) : NULL;
    return mt_cfg_error(MT_ERR_INVALID, loc, "unknown parameter 'params.%s'%s%s%s%s", name,
                        m ? "" : " (the sweep has no params:)", sug ? " (did you mean '" : "",
                        sug ? sug : "", sug ? "'?)" : "");
}

/* Checks every ${params.NAME} in a string. */
static mt_status check_refs(const mt_hpo_space *s, const mt_cfg_node *n)
{
    const char *p = n->str;
    while (p && (p = strstr(p, "${params.")) != NULL) {
        const char *b = p + 9, *e = strchr(b, '}');
        if (!e) break;
        char name[256];
        size_t len = (size_t)(e - b) < sizeof name - 1 ? (size_t)(e - b) : sizeof name - 1;
        memcpy(name, b, len);
        name[len] = '\0';
        if (!params_has(s, name)) return unknown_ref(s, n->loc, name);
        p = e + 1;
    }
    return MT_OK;
}

static mt_status walk_node(walk *w, const mt_cfg_node *n, int32_t parent, int32_t option,
                           int32_t depth);

static mt_status add_param(walk *w, const mt_cfg_node *n, mt_hpo_dist dist, int32_t parent,
                           int32_t option, int32_t depth)
{
    mt_hpo_space *s = w->s;
    mt_status st = grow(s);
    if (st) return st;
    mt_hpo_param p;
    memset(&p, 0, sizeof p);
    p.dist = dist;
    p.parent = parent;
    p.parent_option = option;
    p.node = n;
    p.loc = n->loc;
    const char *name = NULL;
    if ((st = parse_tag(s, n, &p, &name))) return st;
    p.label = mt_arena_strdup(&s->arena, name ? name : w->path);
    p.name = name ? mt_arena_strdup(&s->arena, name) : make_name(s, w->path);
    if (!p.label || !p.name) return MT_ERR_NOMEM;
    for (int32_t i = 0; i < s->n; i++)
        if (strcmp(s->params[i].label, p.label) == 0)
            return mt_cfg_error(MT_ERR_INVALID, n->loc,
                                "parameter label '%s' is used twice (also at %s:%d:%d)", p.label,
                                s->params[i].loc.file, (int)s->params[i].loc.line,
                                (int)s->params[i].loc.col);
    int32_t idx = s->n++;
    s->params[idx] = p;
    s->depth[idx] = depth;
    if (p.options) {
        for (int32_t k = 0; k < p.n_options && st == MT_OK; k++) {
            size_t old = path_index(w, k);
            st = walk_node(w, p.options[k], idx, k, depth + 1);
            path_pop(w, old);
        }
    }
    return st;
}

static mt_status walk_node(walk *w, const mt_cfg_node *n, int32_t parent, int32_t option,
                           int32_t depth)
{
    if (!n) return MT_OK;
    mt_status st = MT_OK;
    switch (n->kind) {
    case MT_CFG_STRING:
        return check_refs(w->s, n);
    case MT_CFG_TAGGED: {
        if (n->tag && strcmp(n->tag, "param") == 0) {
            const mt_cfg_node *v = n->n > 0 ? n->items[0] : NULL;
            if (!v || v->kind != MT_CFG_STRING)
                return mt_cfg_error(MT_ERR_INVALID, n->loc, "!param needs a parameter name");
            return params_has(w->s, v->str) ? MT_OK : unknown_ref(w->s, n->loc, v->str);
        }
        mt_hpo_dist d;
        if (!dist_from_tag(n->tag, &d))
            return mt_cfg_error(MT_ERR_INVALID, n->loc, "unknown search tag '!%s'", n->tag);
        if (seen_before(w, n, &st)) return st;
        return add_param(w, n, d, parent, option, depth);
    }
    case MT_CFG_LIST:
    case MT_CFG_MAP:
    case MT_CFG_OBJ:
        if (seen_before(w, n, &st)) return st;
        for (int32_t i = 0; i < n->n && st == MT_OK; i++) {
            size_t old = n->kind == MT_CFG_LIST ? path_index(w, i) : path_key(w, ".", n->keys[i]);
            st = walk_node(w, n->items[i], parent, option, depth);
            path_pop(w, old);
        }
        return st;
    default:
        return MT_OK;
    }
}

/* Expression names: the last key of the label when no other parameter ends with the same key
 * (and no explicit name), else the whole label made an identifier. */
static const char *last_key(const char *label)
{
    const char *d = strrchr(label, '.');
    return d ? d + 1 : label;
}

static bool is_ident(const char *s)
{
    if (!*s || isdigit((unsigned char)*s)) return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_') return false;
    return true;
}

static mt_status short_names(mt_hpo_space *s)
{
    for (int32_t i = 0; i < s->n; i++) {
        mt_hpo_param *p = &s->params[i];
        if (strcmp(p->name, p->label) == 0 && is_ident(p->name)) continue; /* explicit */
        const char *k = last_key(p->label);
        if (!is_ident(k)) continue;
        bool unique = true;
        for (int32_t j = 0; j < s->n && unique; j++)
            if (j != i &&
                (strcmp(last_key(s->params[j].label), k) == 0 || strcmp(s->params[j].name, k) == 0))
                unique = false;
        if (unique) p->name = k;
    }
    return MT_OK;
}

mt_status mt_hpo_space_extract(mt_hpo_space **out, const mt_cfg_node *params,
                               const mt_cfg_node *tree, const char *tree_label)
{
    *out = NULL;
    if (params && params->kind == MT_CFG_NULL) params = NULL;
    if (params && params->kind != MT_CFG_MAP)
        return mt_cfg_error(MT_ERR_INVALID, params->loc,
                            "params must be a mapping of names to search tags or values");
    mt_hpo_space *s = mt_calloc(1, sizeof *s);
    if (!s) return mt_err_set(MT_ERR_NOMEM, "hyperopt: space");
    s->params_map = params;
    walk w;
    memset(&w, 0, sizeof w);
    w.s = s;
    mt_status st = MT_OK;
    for (int32_t i = 0; params && i < params->n && st == MT_OK; i++) {
        w.len = 0;
        path_key(&w, "params.", params->keys[i]);
        st = walk_node(&w, params->items[i], -1, -1, 0);
    }
    if (st == MT_OK && tree) {
        w.len = 0;
        w.path[0] = '\0';
        if (tree_label) path_key(&w, "", tree_label);
        st = walk_node(&w, tree, -1, -1, 0);
    }
    mt_free(w.seen);
    if (st == MT_OK) st = short_names(s);
    if (st) {
        mt_hpo_space_free(s);
        return st;
    }
    *out = s;
    return MT_OK;
}

mt_status mt_hpo_space_from_sweep(mt_hpo_space **out, const mt_cfg_node *root)
{
    *out = NULL;
    if (!root || root->kind != MT_CFG_OBJ)
        return mt_err_set(MT_ERR_INVALID, "hyperopt: a sweep root must be !obj:Sweep");
    return mt_hpo_space_extract(out, mt_cfg_get(root, "params"), mt_cfg_get(root, "train"),
                                "train");
}

void mt_hpo_space_free(mt_hpo_space *s)
{
    if (!s) return;
    mt_arena_free(&s->arena);
    mt_free(s->params);
    mt_free(s->depth);
    mt_free(s);
}

int32_t mt_hpo_space_count(const mt_hpo_space *s)
{
    return s ? s->n : 0;
}

const mt_hpo_param *mt_hpo_space_param(const mt_hpo_space *s, int32_t i)
{
    return s && i >= 0 && i < s->n ? &s->params[i] : NULL;
}

int32_t mt_hpo_space_find(const mt_hpo_space *s, const char *key)
{
    if (!s || !key) return -1;
    for (int32_t i = 0; i < s->n; i++)
        if (strcmp(s->params[i].label, key) == 0) return i;
    for (int32_t i = 0; i < s->n; i++)
        if (strcmp(s->params[i].name, key) == 0) return i;
    return -1;
}

/* ---------------------------------------------------------------- printing */

void mt__hpo_option_text(const mt_cfg_node *o, char *buf, size_t len)
{
    if (!o) {
        snprintf(buf, len, "null");
        return;
    }
    switch (o->kind) {
    case MT_CFG_OBJ:
        snprintf(buf, len, "%s", o->tag);
        break;
    case MT_CFG_MAP:
        snprintf(buf, len, "{...}");
        break;
    case MT_CFG_LIST:
        snprintf(buf, len, "[...]");
        break;
    case MT_CFG_TAGGED:
        snprintf(buf, len, "!%s", o->tag);
        break;
    case MT_CFG_STRING:
        snprintf(buf, len, "%s", o->str);
        break;
    case MT_CFG_INT:
        snprintf(buf, len, "%lld", (long long)o->i);
        break;
    case MT_CFG_FLOAT:
        snprintf(buf, len, "%.17g", o->f);
        break;
    default:
        snprintf(buf, len, "%s", o->str ? o->str : mt_cfg_kind_name(o->kind));
        break;
    }
}

mt_status mt_hpo_space_print(const mt_hpo_space *s, mt_strbuf *sb)
{
    int32_t n_cond = 0;
    for (int32_t i = 0; i < s->n; i++) {
        const mt_hpo_param *p = &s->params[i];
        char b1[40], b2[40];
        if (p->parent >= 0) n_cond++;
        mt_strbuf_appendf(sb, "%*s", 2 * (int)s->depth[i], "");
        if (p->parent >= 0) mt_strbuf_appendf(sb, "[%d] ", (int)p->parent_option);
        mt_strbuf_appendf(sb, "%-40s %s", p->label, mt_hpo_dist_name(p->dist));
        switch (p->dist) {
        case MT_HPO_CHOICE:
        case MT_HPO_PCHOICE:
        case MT_HPO_GRID:
            mt_strbuf_appendf(sb, " of %d:", (int)p->n_options);
            for (int32_t k = 0; k < p->n_options; k++) {
                char buf[96];
                mt__hpo_option_text(p->options[k], buf, sizeof buf);
                mt_strbuf_appendf(sb, "%s %s", k ? " |" : "", buf);
                if (p->probs) mt_strbuf_appendf(sb, " (p=%g)", p->probs[k]);
            }
            break;
        case MT_HPO_RANDINT:
            mt_strbuf_appendf(sb, " [%s, %s) int", mt__hpo_fmt(p->a, b1), mt__hpo_fmt(p->b, b2));
            break;
        case MT_HPO_INTUNIFORM:
            mt_strbuf_appendf(sb, " [%s, %s] int", mt__hpo_fmt(p->a, b1), mt__hpo_fmt(p->b, b2));
            break;
        default:
            mt_strbuf_appendf(sb, " [%s, %s", mt__hpo_fmt(p->a, b1), mt__hpo_fmt(p->b, b2));
            if (p->q > 0) mt_strbuf_appendf(sb, ", q=%s", mt__hpo_fmt(p->q, b1));
            mt_strbuf_appendf(sb, "]%s", p->is_int ? " int" : "");
            break;
        }
        mt_strbuf_appendf(sb, "  (%s:%d:%d)\n", p->loc.file ? p->loc.file : "?", (int)p->loc.line,
                          (int)p->loc.col);
    }
    mt_strbuf_appendf(sb, "%d parameters (%d conditional)\n", (int)s->n, (int)n_cond);
    return mt_strbuf_status(sb);
}

/* ---------------------------------------------------------------- per-parameter helpers */

double mt__hpo_quantize(double x, double q)
{
    return nearbyint(x / q) * q;
}

double mt__hpo_option_number(const mt_hpo_param *p, int32_t k)
{
    if (p->dist == MT_HPO_RANDINT) return p->a + k;
    const mt_cfg_node *o = p->options && k >= 0 && k < p->n_options ? p->options[k] : NULL;
    if (o && (o->kind == MT_CFG_INT || o->kind == MT_CFG_FLOAT)) return o->f;
    return (double)k;
}

int64_t mt__hpo_grid_count(const mt_hpo_param *p)
{
    switch (p->dist) {
    case MT_HPO_CHOICE:
    case MT_HPO_PCHOICE:
    case MT_HPO_GRID:
    case MT_HPO_RANDINT:
        return p->n_options;
    case MT_HPO_INTUNIFORM:
        return (int64_t)(p->b - p->a) + 1;
    default:
        return 0;
    }
}
