/* Stage 1 of loading: Pylearn2 tutorials' Python %-templates on the raw text.
 *
 * `%(name)s` (and i, d, f, r) is replaced by the value of template parameter `name`; `%%`
 * is a '%'. A text without any "%(" is left exactly as it is (so a lone '%' or "%%" in an
 * untemplated file is kept). A value "@path" stands for the text of that file (relative to
 * the current directory), itself templated with the same parameters, which is how the
 * softmax-regression tutorial composes sr_train.yaml from sr_dataset/sr_model/sr_algorithm.
 *
 * Because the templated text is what libyaml sees, a position map (mt__tmap) records, for
 * every stretch of output, where it was written: verbatim source keeps its own line and
 * column, a substituted value maps to its template, and the text of an @file keeps that
 * file's name and positions. Columns are counted in characters with libyaml's line breaks
 * (LF, CR, CRLF, NEL, LS, PS) so that libyaml's marks can be mapped back exactly. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "config_impl.h"

/* ---------------------------------------------------------------- position map */

void mt__tmap_deinit(mt__tmap *m)
{
    mt_free(m->segs);
    memset(m, 0, sizeof *m);
}

static mt_status tmap_push(mt__tmap *m, mt__tseg seg)
{
    if (m->n > 0) {
        mt__tseg *last = &m->segs[m->n - 1];
        if (last->out_line == seg.out_line && last->out_col == seg.out_col) {
            *last = seg; /* an empty stretch: the new one replaces it */
            return MT_OK;
        }
    }
    if (m->n == m->cap) {
        int32_t cap = m->cap ? m->cap * 2 : 16;
        mt__tseg *s = mt_realloc(m->segs, sizeof *s * (size_t)cap);
        if (!s) return MT_ERR_NOMEM;
        m->segs = s;
        m->cap = cap;
    }
    m->segs[m->n++] = seg;
    return MT_OK;
}

mt_cfg_loc mt__tmap_loc(const mt__tmap *m, int32_t line, int32_t col)
{
    mt_cfg_loc loc = {"<config>", line, col};
    if (!m || m->n == 0) return loc;
    int32_t lo = 0, hi = m->n - 1;
    while (lo < hi) { /* the last segment starting at or before (line, col) */
        int32_t mid = (lo + hi + 1) / 2;
        const mt__tseg *s = &m->segs[mid];
        if (s->out_line < line || (s->out_line == line && s->out_col <= col))
            lo = mid;
        else
            hi = mid - 1;
    }
    const mt__tseg *s = &m->segs[lo];
    loc.file = s->file;
    if (s->fixed) {
        loc.line = s->src_line;
        loc.col = s->src_col;
    } else if (line == s->out_line) {
        loc.line = s->src_line;
        loc.col = s->src_col + (col - s->out_col);
    } else {
        loc.line = s->src_line + (line - s->out_line);
        loc.col = col;
    }
    if (loc.col < 1) loc.col = 1;
    return loc;
}

/* Advances a 1-based (line, col) over n bytes as libyaml counts them. */
void mt__text_advance(const char *s, size_t n, int32_t *line, int32_t *col)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = p[i];
        bool brk = false;
        if (c == '\n') {
            brk = true;
        } else if (c == '\r') {
            if (i + 1 < n && p[i + 1] == '\n') continue; /* CRLF: the LF breaks */
            brk = true;
        } else if (c == 0xC2 && i + 1 < n && p[i + 1] == 0x85) { /* NEL */
            brk = true;
            i += 1;
        } else if (c == 0xE2 && i + 2 < n && p[i + 1] == 0x80 &&
                   (p[i + 2] == 0xA8 || p[i + 2] == 0xA9)) { /* LS, PS */
            brk = true;
            i += 2;
        } else if ((c & 0xC0) == 0x80) {
            continue; /* UTF-8 continuation byte */
        }
        if (brk) {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

/* ---------------------------------------------------------------- output builder */

typedef struct tout {
    mt_strbuf sb;
    mt__tmap *map;
    int32_t line, col; /* output position of the next byte */
    size_t max_bytes;  /* the output may not grow beyond this */
    const char *file;
} tout;

/* Stops a text that templating would blow up (a big @file used many times) early. */
static mt_status check_room(const tout *t, size_t n)
{
    if (t->sb.len + n <= t->max_bytes) return MT_OK;
    return mt_err_set(MT_ERR_FORMAT, "%s:1:1: '%s' grows to more than the limit of %zu bytes "
                      "when templated (mt_cfg_limits.max_file_bytes)", t->file, t->file,
                      t->max_bytes);
}

static mt_status emit(tout *t, const char *s, size_t n, mt__tseg seg)
{
    seg.out_line = t->line;
    seg.out_col = t->col;
    if (n == 0) return MT_OK;
    if (check_room(t, n) != MT_OK) return MT_ERR_FORMAT;
    if (tmap_push(t->map, seg) != MT_OK) return MT_ERR_NOMEM;
    mt_strbuf_appendn(&t->sb, s, n);
    mt__text_advance(s, n, &t->line, &t->col);
    return mt_strbuf_status(&t->sb);
}

/* Splices an already templated text with its own map at the current output position. */
static mt_status emit_mapped(tout *t, const char *s, size_t n, const mt__tmap *sub)
{
    if (check_room(t, n) != MT_OK) return MT_ERR_FORMAT;
    for (int32_t i = 0; i < sub->n; i++) {
        mt__tseg seg = sub->segs[i];
        if (seg.out_line == 1) {
            seg.out_col = t->col + seg.out_col - 1;
            seg.out_line = t->line;
        } else {
            seg.out_line = t->line + seg.out_line - 1;
        }
        if (tmap_push(t->map, seg) != MT_OK) return MT_ERR_NOMEM;
    }
    mt_strbuf_appendn(&t->sb, s, n);
    mt__text_advance(s, n, &t->line, &t->col);
    return mt_strbuf_status(&t->sb);
}

/* ---------------------------------------------------------------- parameters */

typedef struct tctx {
    mt_cfg_doc *doc;
    const mt_cfg_options *opts;
    const char *file;
    int32_t depth;
    /* missing names (first occurrence), reported together at the end */
    mt_strbuf missing;
    int32_t n_missing;
    mt_cfg_loc first_missing;
    char first_name[128];
} tctx;

static const mt_cfg_var *find_param(const mt_cfg_options *opts, const char *name, size_t len)
{
    const mt_cfg_var *found = NULL; /* the last one given wins */
    for (int32_t i = 0; i < opts->n_params; i++) {
        const char *pn = opts->params[i].name;
        if (pn && strlen(pn) == len && memcmp(pn, name, len) == 0) found = &opts->params[i];
    }
    return found;
}

static void list_params(mt_strbuf *sb, const mt_cfg_options *opts)
{
    if (opts->n_params == 0) {
        mt_strbuf_append(sb, "none");
        return;
    }
    for (int32_t i = 0; i < opts->n_params; i++)
        mt_strbuf_appendf(sb, "%s%s", i ? ", " : "",
                          opts->params[i].name ? opts->params[i].name : "?");
}

static bool parse_int_text(const char *v, long long *out)
{
    while (*v == ' ' || *v == '\t')
        v++;
    if (!*v) return false;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v) return false;
    while (*end == ' ' || *end == '\t' || *end == '\n')
        end++;
    if (*end) return false;
    *out = x;
    return true;
}

static bool parse_num_text(const char *v, double *out)
{
    while (*v == ' ' || *v == '\t')
        v++;
    if (!*v) return false;
    char *end;
    double x = strtod(v, &end);
    if (end == v) return false;
    while (*end == ' ' || *end == '\t' || *end == '\n')
        end++;
    if (*end) return false;
    *out = x;
    return true;
}

/* Formats `value` for conversion `conv` into sb (not for 's' of an @file, spliced instead). */
static mt_status convert(tctx *c, mt_cfg_loc at, const char *name, char conv, const char *value,
                         mt_strbuf *sb)
{
    long long iv;
    double fv;
    switch (conv) {
    case 's':
        mt_strbuf_append(sb, value);
        break;
    case 'i':
    case 'd':
        if (!parse_int_text(value, &iv))
            return mt_cfg_error(MT_ERR_FORMAT, at,
                                "template '%%(%s)%c' needs an integer, got '%.100s'", name, conv,
                                value);
        mt_strbuf_appendf(sb, "%lld", iv);
        break;
    case 'f':
        if (!parse_num_text(value, &fv))
            return mt_cfg_error(MT_ERR_FORMAT, at,
                                "template '%%(%s)f' needs a number, got '%.100s'", name, value);
        mt_strbuf_appendf(sb, "%f", fv);
        break;
    default: /* 'r': numbers as they are, anything else as a single-quoted YAML string */
        if (parse_num_text(value, &fv)) {
            mt_strbuf_append(sb, value);
        } else {
            mt_strbuf_append(sb, "'");
            for (const char *p = value; *p; p++) {
                if (*p == '\'')
                    mt_strbuf_append(sb, "''");
                else
                    mt_strbuf_appendn(sb, p, 1);
            }
            mt_strbuf_append(sb, "'");
        }
        break;
    }
    (void)c;
    return mt_strbuf_status(sb);
}

/* The text of an @file value, templated with the same parameters (one level deeper). */
static mt_status at_file(tctx *c, mt_cfg_loc at, const char *name, const char *path, char **text,
                         size_t *len, mt__tmap *sub)
{
    const mt_cfg_limits *lim = &c->opts->limits;
    int32_t max_depth = lim->max_include_depth > 0 ? lim->max_include_depth : 8;
    if (c->depth + 1 > max_depth)
        return mt_cfg_error(MT_ERR_FORMAT, at,
                            "template parameter '%s': '@' files nested deeper than %d (does "
                            "'%s' use itself?)",
                            name, (int)max_depth, path);
    int64_t max_bytes = lim->max_file_bytes > 0 ? lim->max_file_bytes : 16 << 20;
    char *raw = NULL;
    size_t raw_len = 0;
    mt_status st = mt_file_read_all(path, &raw, &raw_len, (size_t)max_bytes);
    if (st == MT_ERR_NOMEM) return st;
    if (st != MT_OK) {
        char msg[MT_ERR_MSG_MAX];
        snprintf(msg, sizeof msg, "%s", mt_last_error());
        return mt_cfg_error(st == MT_ERR_RANGE ? MT_ERR_FORMAT : MT_ERR_IO, at,
                            "template parameter '%s' = '@%s': %s", name, path, msg);
    }
    const char *fname = mt__doc_file(c->doc, path);
    if (!fname) {
        mt_free(raw);
        return MT_ERR_NOMEM;
    }
    st = mt__template_apply(c->doc, c->opts, fname, raw, raw_len, c->depth + 1, text, len, sub);
    mt_free(raw);
    return st;
}

/* Handles one "%(name)X" whose name is text[0..nlen) and conversion conv, written at `at`. */
static mt_status substitute(tctx *c, tout *t, const char *name, size_t nlen, char conv,
                            mt_cfg_loc at)
{
    char nm[128];
    snprintf(nm, sizeof nm, "%.*s", (int)(nlen < 120 ? nlen : 120), name);
    if (mt__doc_add_tname(c->doc, name, nlen) != MT_OK) return MT_ERR_NOMEM;
    const mt_cfg_var *p = find_param(c->opts, name, nlen);
    if (!p || !p->value) {
        if (c->n_missing == 0) {
            c->first_missing = at;
            snprintf(c->first_name, sizeof c->first_name, "%s", nm);
        }
        /* list each missing name once */
        char probe[140];
        snprintf(probe, sizeof probe, "'%s'", nm);
        if (!c->missing.data || !strstr(c->missing.data, probe)) {
            mt_strbuf_appendf(&c->missing, "%s%s", c->n_missing ? ", " : "", probe);
            c->n_missing++;
        }
        return mt_strbuf_status(&c->missing);
    }
    mt__tseg fixed = {0, 0, at.file, at.line, at.col, true};
    mt_status st;
    if (p->value[0] == '@') {
        char *text = NULL;
        size_t len = 0;
        mt__tmap sub = {0};
        st = at_file(c, at, nm, p->value + 1, &text, &len, &sub);
        if (st == MT_OK && conv == 's') {
            st = emit_mapped(t, text, len, &sub);
        } else if (st == MT_OK) {
            mt_strbuf v;
            mt_strbuf_init(&v);
            st = convert(c, at, nm, conv, text, &v);
            if (st == MT_OK) st = emit(t, v.data ? v.data : "", v.len, fixed);
            mt_strbuf_deinit(&v);
        }
        mt_free(text);
        mt__tmap_deinit(&sub);
        return st;
    }
    mt_strbuf v;
    mt_strbuf_init(&v);
    st = convert(c, at, nm, conv, p->value, &v);
    if (st == MT_OK) st = emit(t, v.data ? v.data : "", v.len, fixed);
    mt_strbuf_deinit(&v);
    return st;
}

/* Scans text, emitting verbatim stretches and substitutions. */
static mt_status scan(tctx *c, tout *t, const char *text, size_t len)
{
    size_t start = 0, i = 0;
    int32_t sline = 1, scol = 1; /* source position of text[start] */
    while (i < len) {
        if (text[i] != '%' || i + 1 >= len || (text[i + 1] != '%' && text[i + 1] != '(')) {
            i++;
            continue;
        }
        mt__tseg verb = {0, 0, c->file, sline, scol, false};
        size_t upto = text[i + 1] == '%' ? i + 1 : i; /* "%%" keeps one '%' */
        mt_status st = emit(t, text + start, upto - start, verb);
        if (st != MT_OK) return st;
        int32_t tl = sline, tc = scol;
        mt__text_advance(text + start, i - start, &tl, &tc); /* position of this '%' */
        size_t next;
        if (text[i + 1] == '%') {
            next = i + 2;
        } else {
            size_t j = i + 2;
            while (j < len && text[j] != ')' && text[j] != '\n' && text[j] != '\r')
                j++;
            mt_cfg_loc at = {c->file, tl, tc};
            if (j >= len || text[j] != ')')
                return mt_cfg_error(MT_ERR_FORMAT, at,
                                    "unterminated template '%%(' (no ')' on "
                                    "the same line)");
            if (j == i + 2) return mt_cfg_error(MT_ERR_FORMAT, at, "empty template name '%%()'");
            char conv = j + 1 < len ? text[j + 1] : '\0';
            if (!strchr("sidfr", conv) || conv == '\0')
                return mt_cfg_error(MT_ERR_FORMAT, at,
                                    "template '%%(%.*s)' needs a conversion s, i, d, f or r "
                                    "right after ')'",
                                    (int)(j - i - 2 < 100 ? j - i - 2 : 100), text + i + 2);
            st = substitute(c, t, text + i + 2, j - i - 2, conv, at);
            if (st != MT_OK) return st;
            next = j + 2;
        }
        mt__text_advance(text + start, next - start, &sline, &scol);
        start = i = next;
    }
    mt__tseg verb = {0, 0, c->file, sline, scol, false};
    return emit(t, text + start, len - start, verb);
}

mt_status mt__template_apply(mt_cfg_doc *doc, const mt_cfg_options *opts, const char *file,
                             const char *text, size_t len, int32_t depth, char **out,
                             size_t *out_len, mt__tmap *map)
{
    *out = NULL;
    *out_len = 0;
    bool templated = false;
    for (size_t i = 0; i + 1 < len && !templated; i++)
        templated = text[i] == '%' && text[i + 1] == '(';
    int64_t max_bytes = opts->limits.max_file_bytes > 0 ? opts->limits.max_file_bytes : 16 << 20;
    tout t = {.map = map, .line = 1, .col = 1, .max_bytes = (size_t)max_bytes, .file = file};
    mt_strbuf_init(&t.sb);
    mt__tseg all = {1, 1, file, 1, 1, false};
    mt_status st;
    if (!templated) {
        st = tmap_push(map, all);
        mt_strbuf_appendn(&t.sb, text, len);
        if (st == MT_OK) st = mt_strbuf_status(&t.sb);
    } else {
        tctx c = {.doc = doc, .opts = opts, .file = file, .depth = depth};
        mt_strbuf_init(&c.missing);
        st = tmap_push(map, all); /* so an empty output still maps somewhere */
        if (st == MT_OK) st = scan(&c, &t, text, len);
        if (st == MT_OK && c.n_missing > 0) {
            mt_strbuf given;
            mt_strbuf_init(&given);
            list_params(&given, opts);
            st = mt_cfg_error(MT_ERR_FORMAT, c.first_missing,
                              "template parameter '%s' has no value (missing: %s; given: %s); "
                              "pass each as --param NAME=VALUE",
                              c.first_name, c.missing.data ? c.missing.data : "",
                              given.data ? given.data : "none");
            mt_strbuf_deinit(&given);
        }
        mt_strbuf_deinit(&c.missing);
    }
    if (st != MT_OK) {
        mt_strbuf_deinit(&t.sb);
        return st;
    }
    mt_strbuf_appendn(&t.sb, "", 0); /* allocates for an empty text */
    if (mt_strbuf_status(&t.sb) != MT_OK) {
        mt_strbuf_deinit(&t.sb);
        return MT_ERR_NOMEM;
    }
    *out_len = t.sb.len;
    *out = mt_strbuf_take(&t.sb);
    return MT_OK;
}
