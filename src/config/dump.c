/* mt_cfg_dump: writes a node tree back as YAML that mt_cfg_load_string reads to an equal
 * tree (the sweep module writes each trial's resolved file this way; `--dry-run` prints it).
 *
 * Flow style with indentation: tags as written (!obj:NAME, !pkl:, search tags), strings
 * double-quoted with escapes (a '%' is written \x25 so the text never looks like a template),
 * floats in the shortest form that reads back exactly, and a node reached more than once
 * (an alias) gets an anchor &aN where it is first written and *aN afterwards, so sharing is
 * kept. Short lists and mappings of scalars stay on one line. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "config_impl.h"

enum { MAX_DUMP_DEPTH = 512 };

typedef struct dctx {
    mt_strbuf *sb;
    mt__ptrmap refs;  /* node -> times reached */
    mt__ptrmap names; /* node -> anchor number, once written */
    int32_t next_anchor;
} dctx;

static void count_refs(dctx *d, const mt_cfg_node *n, int32_t depth)
{
    if (!n || depth > MAX_DUMP_DEPTH) return;
    int64_t c = 0;
    bool seen = mt__ptrmap_get(&d->refs, n, &c);
    mt__ptrmap_put(&d->refs, n, c + 1); /* a failed put only loses an anchor: no harm */
    if (seen) return;
    if (n->kind == MT_CFG_LIST || n->kind == MT_CFG_MAP || n->kind == MT_CFG_OBJ ||
        n->kind == MT_CFG_TAGGED)
        for (int32_t i = 0; i < n->n; i++)
            count_refs(d, n->items ? n->items[i] : NULL, depth + 1);
}

static void put_quoted(mt_strbuf *sb, const char *s)
{
    mt_strbuf_append(sb, "\"");
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        switch (*p) {
        case '"':
            mt_strbuf_append(sb, "\\\"");
            break;
        case '\\':
            mt_strbuf_append(sb, "\\\\");
            break;
        case '\n':
            mt_strbuf_append(sb, "\\n");
            break;
        case '\t':
            mt_strbuf_append(sb, "\\t");
            break;
        case '\r':
            mt_strbuf_append(sb, "\\r");
            break;
        case '%':
            mt_strbuf_append(sb, "\\x25");
            break;
        default:
            /* YAML also breaks lines at NEL (U+0085), LS (U+2028) and PS (U+2029): escape them
             * so the scalar stays on its line (found by fuzzing) */
            if (p[0] == 0xc2 && p[1] == 0x85) {
                mt_strbuf_append(sb, "\\N");
                p++;
            } else if (p[0] == 0xe2 && p[1] == 0x80 && (p[2] == 0xa8 || p[2] == 0xa9)) {
                mt_strbuf_append(sb, p[2] == 0xa8 ? "\\L" : "\\P");
                p += 2;
            } else if (*p < 0x20 || *p == 0x7f)
                mt_strbuf_appendf(sb, "\\x%02x", *p);
            else
                mt_strbuf_appendn(sb, (const char *)p, 1);
        }
    }
    mt_strbuf_append(sb, "\"");
}

/* A key written plain when it reads back as the same string. YAML limits implicit keys to
 * 1024 characters, so a longer one is written as an explicit key ("? KEY : "). */
static void put_key(mt_strbuf *sb, const char *k)
{
    size_t start = sb->len;
    bool plain =
        k && *k && (k[0] == '_' || (k[0] >= 'A' && k[0] <= 'Z') || (k[0] >= 'a' && k[0] <= 'z'));
    for (const char *p = k; plain && *p; p++)
        plain = *p == '_' || *p == '-' || *p == '.' || (*p >= '0' && *p <= '9') ||
                (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z');
    if (plain) { /* words YAML would type (true, null, ...) are fine as keys: keys stay text */
        mt_strbuf_append(sb, k);
    } else {
        put_quoted(sb, k);
    }
    if (sb->len - start > 1000 && mt_strbuf_status(sb) == MT_OK) {
        mt_strbuf_append(sb, "  "); /* room for "? " in front of the key */
        memmove(sb->data + start + 2, sb->data + start, sb->len - start - 2);
        memcpy(sb->data + start, "? ", 2);
        sb->data[sb->len] = '\0';
    }
}

/* A tag "!PREFIX" + NAME + " ": characters a tag cannot hold as they are (flow indicators,
 * spaces, '%', bytes outside ASCII) are written %XX, which the loader decodes back (found by
 * fuzzing: a name holding ']' ended the tag early). */
static void put_tag(mt_strbuf *sb, const char *prefix, const char *name)
{
    mt_strbuf_append(sb, prefix);
    for (const unsigned char *p = (const unsigned char *)(name ? name : "?"); *p; p++) {
        bool ok = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                  (*p >= '0' && *p <= '9') || (*p && strchr("-_.~:/;?@&=+$!*'()", *p));
        if (ok)
            mt_strbuf_appendn(sb, (const char *)p, 1);
        else
            mt_strbuf_appendf(sb, "%%%02X", *p);
    }
    mt_strbuf_append(sb, " ");
}

static void put_float(mt_strbuf *sb, double f)
{
    if (isnan(f)) {
        mt_strbuf_append(sb, ".nan");
        return;
    }
    if (isinf(f)) {
        mt_strbuf_append(sb, f > 0 ? ".inf" : "-.inf");
        return;
    }
    char buf[64];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, f);
        if (strtod(buf, NULL) == f) break;
    }
    mt_strbuf_append(sb, buf);
    if (!strpbrk(buf, ".eEn")) mt_strbuf_append(sb, ".0"); /* "3" would read back as an int */
}

static bool is_scalar(const mt_cfg_node *n)
{
    return !n || n->kind < MT_CFG_LIST || n->kind == MT_CFG_PKL;
}

static void indent(mt_strbuf *sb, int32_t depth)
{
    mt_strbuf_append(sb, "\n");
    for (int32_t i = 0; i < depth; i++)
        mt_strbuf_append(sb, "  ");
}

static mt_status dump_node(dctx *d, const mt_cfg_node *n, int32_t depth);

/* The items of a LIST (keys == NULL) or MAP/OBJ, short scalar-only ones on one line. */
static mt_status dump_items(dctx *d, const mt_cfg_node *n, bool map, int32_t depth)
{
    mt_strbuf *sb = d->sb;
    bool inline_ = n->n <= 16;
    for (int32_t i = 0; i < n->n && inline_; i++) {
        const mt_cfg_node *it = n->items ? n->items[i] : NULL;
        int64_t refs = 0;
        mt__ptrmap_get(&d->refs, it, &refs);
        inline_ = is_scalar(it) && refs < 2 && (!it || !it->str || strlen(it->str) < 40);
    }
    mt_strbuf_append(sb, map ? "{" : "[");
    for (int32_t i = 0; i < n->n; i++) {
        if (inline_)
            mt_strbuf_append(sb, i ? ", " : "");
        else
            indent(sb, depth + 1);
        if (map) {
            put_key(sb, n->keys ? n->keys[i] : "?");
            mt_strbuf_append(sb, ": "); /* after an explicit key: " : ", still valid YAML */
        }
        mt_status st = dump_node(d, n->items ? n->items[i] : NULL, depth + 1);
        if (st != MT_OK) return st;
        if (!inline_ && i + 1 < n->n) mt_strbuf_append(sb, ",");
    }
    if (!inline_ && n->n > 0) indent(sb, depth);
    mt_strbuf_append(sb, map ? "}" : "]");
    return MT_OK;
}

static mt_status dump_node(dctx *d, const mt_cfg_node *n, int32_t depth)
{
    mt_strbuf *sb = d->sb;
    if (!n) {
        mt_strbuf_append(sb, "null");
        return MT_OK;
    }
    if (depth > MAX_DUMP_DEPTH)
        return mt_cfg_error(MT_ERR_RANGE, n->loc, "cannot write the tree: nested deeper than %d",
                            MAX_DUMP_DEPTH);
    int64_t refs = 0, name;
    mt__ptrmap_get(&d->refs, n, &refs);
    if (refs > 1) {
        if (mt__ptrmap_get(&d->names, n, &name)) {
            mt_strbuf_appendf(sb, "*a%lld", (long long)name);
            return MT_OK;
        }
        name = ++d->next_anchor;
        if (mt__ptrmap_put(&d->names, n, name) != MT_OK) return MT_ERR_NOMEM;
        mt_strbuf_appendf(sb, "&a%lld ", (long long)name);
    }
    switch (n->kind) {
    case MT_CFG_NULL:
        mt_strbuf_append(sb, "null");
        break;
    case MT_CFG_BOOL:
        mt_strbuf_append(sb, n->b ? "true" : "false");
        break;
    case MT_CFG_INT:
        mt_strbuf_appendf(sb, "%lld", (long long)n->i);
        break;
    case MT_CFG_FLOAT:
        put_float(sb, n->f);
        break;
    case MT_CFG_STRING:
        put_quoted(sb, n->str);
        break;
    case MT_CFG_PKL:
        mt_strbuf_append(sb, "!pkl: ");
        put_quoted(sb, n->str);
        break;
    case MT_CFG_LIST:
        return dump_items(d, n, false, depth);
    case MT_CFG_MAP:
        return dump_items(d, n, true, depth);
    case MT_CFG_OBJ:
        put_tag(sb, "!obj:", n->tag);
        return dump_items(d, n, true, depth);
    case MT_CFG_TAGGED:
        put_tag(sb, "!", n->tag);
        return dump_node(d, n->n > 0 && n->items ? n->items[0] : NULL, depth);
    default:
        return mt_cfg_error(MT_ERR_INVALID, n->loc, "cannot write a node of kind %d", (int)n->kind);
    }
    return MT_OK;
}

mt_status mt_cfg_dump(mt_strbuf *sb, const mt_cfg_node *node)
{
    if (!sb) return mt_err_set(MT_ERR_INVALID, "mt_cfg_dump: NULL string builder");
    dctx d = {.sb = sb};
    count_refs(&d, node, 0);
    mt_status st = dump_node(&d, node, 0);
    if (st == MT_OK) mt_strbuf_append(sb, "\n");
    mt__ptrmap_deinit(&d.refs);
    mt__ptrmap_deinit(&d.names);
    return st == MT_OK ? mt_strbuf_status(sb) : st;
}
