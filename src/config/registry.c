/* The component registry: canonical names and aliases (Pylearn2's dotted class names, old
 * names) mapped to mt_component descriptions held in the callers' static tables. Lookup
 * also resolves an unknown dotted name by its last part when that is a canonical name, so
 * "pylearn2.models.mlp.MLP" finds "MLP" even without an alias. Kinds are '|'-separated
 * lists ("extension|update_callback"); mt_component_is_kind matches any of them. */
#include <string.h>

#include "config_impl.h"

struct mt_cfg_registry {
    const mt_component **comps;
    int32_t n, cap;
    mt__strmap names;     /* name or alias -> index */
    mt__strmap canonical; /* canonical name -> index */
};

mt_status mt_cfg_registry_new(mt_cfg_registry **out)
{
    *out = mt_calloc(1, sizeof **out);
    return *out ? MT_OK : MT_ERR_NOMEM;
}

void mt_cfg_registry_free(mt_cfg_registry *r)
{
    if (!r) return;
    mt_free(r->comps);
    mt__strmap_deinit(&r->names);
    mt__strmap_deinit(&r->canonical);
    mt_free(r);
}

static const char *owner_name(const mt_cfg_registry *r, const char *name)
{
    int64_t i;
    return mt__strmap_get(&r->names, name, &i) ? r->comps[i]->name : NULL;
}

mt_status mt_cfg_registry_add(mt_cfg_registry *r, const mt_component *c)
{
    if (!r || !c || !c->name || !*c->name || !c->kind || !*c->kind)
        return mt_err_set(MT_ERR_INVALID,
                          "component registry: a component needs a name and a "
                          "kind (%s)",
                          c && c->name ? c->name : "unnamed");
    const char *taken = owner_name(r, c->name);
    if (taken)
        return mt_err_set(MT_ERR_INVALID,
                          "component registry: name '%s' is already taken by "
                          "component '%s'",
                          c->name, taken);
    for (const char *const *a = c->aliases; a && *a; a++) {
        taken = owner_name(r, *a);
        if (!taken)
            for (const char *const *b = c->aliases; b < a; b++)
                if (strcmp(*a, *b) == 0 || strcmp(*a, c->name) == 0) taken = c->name;
        if (!taken && strcmp(*a, c->name) == 0) taken = c->name;
        if (taken)
            return mt_err_set(MT_ERR_INVALID,
                              "component registry: alias '%s' of '%s' is "
                              "already taken by component '%s'",
                              *a, c->name, taken);
    }
    if (r->n == r->cap) {
        int32_t cap = r->cap ? r->cap * 2 : 32;
        const mt_component **cs = mt_realloc(r->comps, sizeof *cs * (size_t)cap);
        if (!cs) return MT_ERR_NOMEM;
        r->comps = cs;
        r->cap = cap;
    }
    int32_t idx = r->n;
    if (mt__strmap_put(&r->names, c->name, idx) != MT_OK ||
        mt__strmap_put(&r->canonical, c->name, idx) != MT_OK)
        return MT_ERR_NOMEM;
    for (const char *const *a = c->aliases; a && *a; a++)
        if (mt__strmap_put(&r->names, *a, idx) != MT_OK) return MT_ERR_NOMEM;
    r->comps[r->n++] = c;
    return MT_OK;
}

const mt_component *mt_cfg_registry_find(const mt_cfg_registry *r, const char *name)
{
    if (!r || !name) return NULL;
    int64_t i;
    if (mt__strmap_get(&r->names, name, &i)) return r->comps[i];
    const char *dot = strrchr(name, '.');
    if (dot && dot[1] && mt__strmap_get(&r->canonical, dot + 1, &i)) return r->comps[i];
    return NULL;
}

int32_t mt_cfg_registry_count(const mt_cfg_registry *r)
{
    return r ? r->n : 0;
}

const mt_component *mt_cfg_registry_at(const mt_cfg_registry *r, int32_t i)
{
    if (!r || i < 0 || i >= r->n) return NULL;
    return r->comps[i];
}

/* True when the '|'-separated lists a and b share a kind. */
static bool kinds_overlap(const char *a, const char *b)
{
    for (const char *p = a; *p;) {
        size_t n = strcspn(p, "|");
        for (const char *q = b; *q;) {
            size_t m = strcspn(q, "|");
            if (m == n && strncmp(p, q, n) == 0) return true;
            q += m;
            if (*q) q++;
        }
        p += n;
        if (*p) p++;
    }
    return false;
}

bool mt_component_is_kind(const mt_component *c, const char *kind)
{
    if (!c) return false;
    if (!kind || !*kind) return true;
    return c->kind && kinds_overlap(c->kind, kind);
}

static const char *last_part(const char *s)
{
    const char *dot = strrchr(s, '.');
    return dot && dot[1] ? dot + 1 : s;
}

/* The closest registered name to an unknown one, comparing last dotted parts (so a
 * misspelt Pylearn2 class name is matched by its class, not by its shared module path);
 * ties go to the earliest registered, canonical names before aliases. */
const char *mt__registry_suggest(const mt_cfg_registry *r, const char *name)
{
    if (!r || r->names.n == 0 || !name) return NULL;
    const char **full = mt_malloc(sizeof *full * r->names.n);
    const char **tail = mt_malloc(sizeof *tail * r->names.n);
    const char *best = NULL;
    if (full && tail) {
        int32_t k = 0;
        for (int32_t i = 0; i < r->n && (size_t)k < r->names.n; i++) {
            full[k] = r->comps[i]->name;
            tail[k] = last_part(full[k]);
            k++;
            for (const char *const *a = r->comps[i]->aliases; a && *a && (size_t)k < r->names.n;
                 a++) {
                full[k] = *a;
                tail[k] = last_part(*a);
                k++;
            }
        }
        const char *t = mt_cfg_suggest(last_part(name), k, tail);
        for (int32_t i = 0; t && i < k; i++)
            if (tail[i] == t) {
                best = full[i];
                break;
            }
    }
    mt_free(full);
    mt_free(tail);
    return best;
}
