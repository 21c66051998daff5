/* Small building blocks of the config module (a document's nodes and strings live in a core
 * mt_arena, freed at once): two hash maps on one open-addressing table (pointer -> int64 for
 * memo tables and visited sets, string -> int64 for anchors and duplicate-key checks), the
 * "did you mean" suggestion (case-insensitive Levenshtein distance) and helpers that describe
 * nodes in error messages. */
#include <ctype.h>
#include <string.h>

#include "config_impl.h"

/* ---------------------------------------------------------------- the table */

typedef size_t (*key_hash_fn)(const void *key);
typedef bool (*key_eq_fn)(const void *a, const void *b);

/* The slot holding key, or the empty slot where it goes (cap > 0). */
static size_t table_slot(const mt__hmap *m, const void *key, key_hash_fn hash, key_eq_fn eq)
{
    size_t j = hash(key) & (m->cap - 1);
    while (m->keys[j] && !eq(m->keys[j], key))
        j = (j + 1) & (m->cap - 1);
    return j;
}

static mt_status table_grow(mt__hmap *m, key_hash_fn hash)
{
    size_t cap = m->cap ? m->cap * 2 : 32;
    const void **keys = mt_calloc(cap, sizeof *keys);
    int64_t *vals = mt_calloc(cap, sizeof *vals);
    if (!keys || !vals) {
        mt_free(keys);
        mt_free(vals);
        return MT_ERR_NOMEM;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->keys[i]) continue;
        size_t j = hash(m->keys[i]) & (cap - 1);
        while (keys[j])
            j = (j + 1) & (cap - 1);
        keys[j] = m->keys[i];
        vals[j] = m->vals[i];
    }
    mt_free(m->keys);
    mt_free(m->vals);
    m->keys = keys;
    m->vals = vals;
    m->cap = cap;
    return MT_OK;
}

static bool table_get(const mt__hmap *m, const void *key, int64_t *val, key_hash_fn hash,
                      key_eq_fn eq)
{
    if (!m->cap) return false;
    size_t j = table_slot(m, key, hash, eq);
    if (!m->keys[j]) return false;
    if (val) *val = m->vals[j];
    return true;
}

static mt_status table_put(mt__hmap *m, const void *key, int64_t val, key_hash_fn hash,
                           key_eq_fn eq)
{
    if ((m->n + 1) * 2 > m->cap && table_grow(m, hash) != MT_OK) return MT_ERR_NOMEM;
    size_t j = table_slot(m, key, hash, eq);
    if (!m->keys[j]) m->n++;
    m->keys[j] = key;
    m->vals[j] = val;
    return MT_OK;
}

static void table_deinit(mt__hmap *m)
{
    mt_free(m->keys);
    mt_free(m->vals);
    memset(m, 0, sizeof *m);
}

/* ---------------------------------------------------------------- pointer map */

static size_t ptr_hash(const void *p)
{
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (size_t)x;
}

static bool ptr_eq(const void *a, const void *b)
{
    return a == b;
}

bool mt__ptrmap_get(const mt__ptrmap *m, const void *key, int64_t *val)
{
    return key && table_get(m, key, val, ptr_hash, ptr_eq);
}

mt_status mt__ptrmap_put(mt__ptrmap *m, const void *key, int64_t val)
{
    if (!key) return mt_err_set(MT_ERR_INTERNAL, "config: NULL key in a pointer map");
    return table_put(m, key, val, ptr_hash, ptr_eq);
}

bool mt__ptrmap_del(mt__ptrmap *m, const void *key)
{
    if (!m->cap || !key) return false;
    size_t j = table_slot(m, key, ptr_hash, ptr_eq);
    if (!m->keys[j]) return false;
    /* Backward-shift deletion keeps probe chains intact. */
    m->keys[j] = NULL;
    m->n--;
    size_t i = j;
    for (size_t k = (j + 1) & (m->cap - 1); m->keys[k]; k = (k + 1) & (m->cap - 1)) {
        size_t home = ptr_hash(m->keys[k]) & (m->cap - 1);
        bool movable = (i <= k) ? (home <= i || home > k) : (home <= i && home > k);
        if (movable) {
            m->keys[i] = m->keys[k];
            m->vals[i] = m->vals[k];
            m->keys[k] = NULL;
            i = k;
        }
    }
    return true;
}

void mt__ptrmap_deinit(mt__ptrmap *m)
{
    table_deinit(m);
}

/* ---------------------------------------------------------------- string map */

static size_t str_hash(const void *s)
{
    return (size_t)mt_hash64(s, strlen(s), 0x5bd1e995);
}

static bool str_eq(const void *a, const void *b)
{
    return strcmp(a, b) == 0;
}

bool mt__strmap_get(const mt__strmap *m, const char *key, int64_t *val)
{
    return table_get(m, key, val, str_hash, str_eq);
}

mt_status mt__strmap_put(mt__strmap *m, const char *key, int64_t val)
{
    return table_put(m, key, val, str_hash, str_eq);
}

void mt__strmap_deinit(mt__strmap *m)
{
    table_deinit(m);
}

/* ---------------------------------------------------------------- suggestions */

const char *mt_cfg_suggest(const char *word, int32_t n, const char *const *candidates)
{
    if (!word || !candidates) return NULL;
    int32_t len = (int32_t)strlen(word);
    int32_t limit = len / 3 > 2 ? len / 3 : 2;
    const char *best = NULL;
    int32_t best_d = limit + 1;
    for (int32_t i = 0; i < n; i++) {
        const char *c = candidates[i];
        if (!c) continue;
        int32_t d = mt_edit_distance(word, c, limit, true);
        int32_t lc = (int32_t)strlen(c);
        /* Rewriting a whole short word is no suggestion ("lr" is not close to "MLP"). */
        if (d >= (len < lc ? len : lc)) continue;
        if (d < best_d) {
            best_d = d;
            best = c;
        }
    }
    return best;
}

/* ---------------------------------------------------------------- messages */

const char *mt__article(const char *word)
{
    if (!word) return "a";
    switch (tolower((unsigned char)word[0])) {
    case 'a':
    case 'e':
    case 'i':
    case 'o':
    case 'u':
        return "an";
    default:
        return "a";
    }
}

void mt__describe_node(mt_strbuf *sb, const mt_cfg_node *n)
{
    if (!n) {
        mt_strbuf_append(sb, "nothing");
        return;
    }
    switch (n->kind) {
    case MT_CFG_NULL:
        mt_strbuf_append(sb, "null");
        break;
    case MT_CFG_LIST:
        mt_strbuf_appendf(sb, "a list of %d", (int)n->n);
        break;
    case MT_CFG_MAP:
        mt_strbuf_append(sb, "a mapping");
        break;
    case MT_CFG_OBJ:
        mt_strbuf_appendf(sb, "!obj:%s", n->tag ? n->tag : "?");
        break;
    case MT_CFG_PKL:
        mt_strbuf_appendf(sb, "!pkl: '%.200s'", n->str ? n->str : "");
        break;
    case MT_CFG_TAGGED:
        mt_strbuf_appendf(sb, "!%s", n->tag ? n->tag : "?");
        break;
    default:
        mt_strbuf_appendf(sb, "%s '%.200s'", mt_cfg_kind_name(n->kind), n->str ? n->str : "");
        break;
    }
}

bool mt__has_position(const char *msg)
{
    /* FILE:LINE:COL: with a non-empty FILE and decimal LINE and COL. */
    const char *p = strstr(msg, ": ");
    for (const char *s = msg; s && *s; s = strchr(s + 1, ':')) {
        if (*s != ':' || s == msg) continue;
        const char *q = s + 1;
        if (!isdigit((unsigned char)*q)) continue;
        while (isdigit((unsigned char)*q))
            q++;
        if (*q != ':') continue;
        q++;
        if (!isdigit((unsigned char)*q)) continue;
        while (isdigit((unsigned char)*q))
            q++;
        if (q[0] == ':' && q[1] == ' ') return !p || p >= q;
    }
    return false;
}
