/* Monitor histories: channels with one record per monitor call, kept in insertion order, plus
 * the reader of RUN_DIR/monitor.jsonl (the format monitor_log.c writes) that turns a run's
 * log back into a history, so tools can plot a run that has no checkpoint yet.
 *
 * The JSON reader is deliberately small: it accepts exactly what JSON allows (objects, arrays,
 * strings with escapes, numbers, true/false/null) but only interprets the keys of a monitor
 * record; other keys are skipped, so later writers may add fields. Errors name FILE:LINE:COL. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io_impl.h"

void mt_monitor_history_init(mt_monitor_history *h, const char *name)
{
    memset(h, 0, sizeof *h);
    h->name = mt_strdup(name ? name : "monitor");
}

void mt_monitor_history_clear(mt_monitor_history *h)
{
    if (!h) return;
    for (int32_t i = 0; i < h->n; i++) {
        mt_free(h->channels[i].name);
        mt_free(h->channels[i].records);
    }
    mt_free(h->channels);
    mt_free(h->name);
    memset(h, 0, sizeof *h);
}

mt_chan_history *mt_monitor_history_channel(mt_monitor_history *h, const char *name, bool create)
{
    for (int32_t i = 0; i < h->n; i++)
        if (strcmp(h->channels[i].name, name) == 0) return &h->channels[i];
    if (!create) return NULL;
    if (h->n == h->cap) {
        int32_t cap = h->cap ? h->cap * 2 : 8;
        mt_chan_history *nc = mt_realloc(h->channels, (size_t)cap * sizeof *nc);
        if (!nc) return NULL;
        h->channels = nc;
        h->cap = cap;
    }
    mt_chan_history *c = &h->channels[h->n];
    memset(c, 0, sizeof *c);
    c->name = mt_strdup(name);
    if (!c->name) return NULL;
    h->n++;
    return c;
}

mt_status mt_chan_history_append(mt_chan_history *c, const mt_chan_record *r)
{
    if (c->n == c->cap) {
        int32_t cap = c->cap ? c->cap * 2 : 16;
        mt_chan_record *nr = mt_realloc(c->records, (size_t)cap * sizeof *nr);
        if (!nr)
            return mt_err_prefix(MT_ERR_NOMEM, "monitor channel '%s': ", c->name ? c->name : "");
        c->records = nr;
        c->cap = cap;
    }
    c->records[c->n++] = *r;
    return MT_OK;
}

mt_status mt_monitor_history_copy(mt_monitor_history *dst, const mt_monitor_history *src)
{
    memset(dst, 0, sizeof *dst);
    dst->name = mt_strdup(src->name ? src->name : "monitor");
    if (!dst->name) goto fail;
    if (src->n > 0) {
        dst->channels = mt_calloc((size_t)src->n, sizeof *dst->channels);
        if (!dst->channels) goto fail;
        dst->cap = src->n;
    }
    for (int32_t i = 0; i < src->n; i++) {
        const mt_chan_history *s = &src->channels[i];
        mt_chan_history *d = &dst->channels[i];
        d->name = mt_strdup(s->name);
        dst->n = i + 1;
        if (!d->name) goto fail;
        if (s->n > 0) {
            d->records = mt_malloc((size_t)s->n * sizeof *d->records);
            if (!d->records) goto fail;
            memcpy(d->records, s->records, (size_t)s->n * sizeof *d->records);
        }
        d->n = d->cap = s->n;
    }
    return MT_OK;
fail:
    mt_monitor_history_clear(dst);
    return mt_err_prefix(MT_ERR_NOMEM,
                         "copying monitor history '%s': ", src->name ? src->name : "");
}

/* ---------------------------------------------------------------- monitor.jsonl reader */

typedef struct jrd {
    const char *p, *line_start;
    const char *path;
    int64_t line;
} jrd;

__attribute__((format(printf, 2, 3))) static mt_status jfail(const jrd *r, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return mt_err_set(MT_ERR_FORMAT, "%s:%lld:%lld: %s", r->path, (long long)r->line,
                      (long long)(r->p - r->line_start + 1), msg);
}

static void jws(jrd *r)
{
    while (*r->p == ' ' || *r->p == '\t' || *r->p == '\r')
        r->p++;
}

static bool jeat(jrd *r, char ch)
{
    jws(r);
    if (*r->p != ch) return false;
    r->p++;
    return true;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

static void put_utf8(mt_strbuf *sb, uint32_t cp)
{
    char b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xC0 | (cp >> 6));
        b[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (char)(0xE0 | (cp >> 12));
        b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        b[0] = (char)(0xF0 | (cp >> 18));
        b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    mt_strbuf_appendn(sb, b, n);
}

/* Parses a string literal into sb (cleared first). */
static mt_status jstring(jrd *r, mt_strbuf *sb)
{
    mt_strbuf_clear(sb);
    mt_strbuf_appendn(sb, "", 0);
    if (!jeat(r, '"')) return jfail(r, "expected a string");
    for (;;) {
        char ch = *r->p;
        if (ch == '\0' || ch == '\n') return jfail(r, "unterminated string");
        r->p++;
        if (ch == '"') break;
        if (ch != '\\') {
            mt_strbuf_appendn(sb, &ch, 1);
            continue;
        }
        char e = *r->p++;
        const char *simple = strchr("\"\\/bfnrt", e);
        if (e && simple) {
            static const char out[] = "\"\\/\b\f\n\r\t";
            mt_strbuf_appendn(sb, &out[simple - "\"\\/bfnrt"], 1);
        } else if (e == 'u') {
            uint32_t cp = 0;
            for (int k = 0; k < 4; k++) {
                int v = hexval(r->p[k]);
                if (v < 0) return jfail(r, "bad \\u escape");
                cp = cp * 16 + (uint32_t)v;
            }
            r->p += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && r->p[0] == '\\' && r->p[1] == 'u') {
                uint32_t lo = 0;
                for (int k = 0; k < 4; k++) {
                    int v = hexval(r->p[2 + k]);
                    if (v < 0) return jfail(r, "bad \\u escape");
                    lo = lo * 16 + (uint32_t)v;
                }
                if (lo >= 0xDC00 && lo < 0xE000) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    r->p += 6;
                }
            }
            put_utf8(sb, cp);
        } else {
            r->p--;
            return jfail(r, "bad escape '\\%c'", e ? e : '0');
        }
    }
    return mt_strbuf_status(sb);
}

/* A number, or null (NaN: monitor_log writes non-finite values as null). */
static mt_status jnumber(jrd *r, double *out)
{
    jws(r);
    if (strncmp(r->p, "null", 4) == 0) {
        r->p += 4;
        *out = NAN;
        return MT_OK;
    }
    char *end;
    errno = 0;
    double v = strtod(r->p, &end);
    if (end == r->p || !(*r->p == '-' || (*r->p >= '0' && *r->p <= '9')))
        return jfail(r, "expected a number or null");
    r->p = end;
    *out = v;
    return MT_OK;
}

static mt_status jskip(jrd *r, int depth)
{
    if (depth > 64) return jfail(r, "nesting too deep");
    jws(r);
    char ch = *r->p;
    if (ch == '"') {
        mt_strbuf sb;
        mt_strbuf_init(&sb);
        mt_status st = jstring(r, &sb);
        mt_strbuf_deinit(&sb);
        return st;
    }
    if (ch == '{' || ch == '[') {
        char close = ch == '{' ? '}' : ']';
        r->p++;
        if (jeat(r, close)) return MT_OK;
        do {
            mt_status st;
            if (close == '}') {
                if ((st = jskip(r, depth + 1)) != MT_OK) return st;
                if (!jeat(r, ':')) return jfail(r, "expected ':'");
            }
            if ((st = jskip(r, depth + 1)) != MT_OK) return st;
        } while (jeat(r, ','));
        if (!jeat(r, close)) return jfail(r, "expected ',' or '%c'", close);
        return MT_OK;
    }
    if (!strncmp(r->p, "true", 4) || !strncmp(r->p, "null", 4)) {
        r->p += 4;
        return MT_OK;
    }
    if (!strncmp(r->p, "false", 5)) {
        r->p += 5;
        return MT_OK;
    }
    double v;
    return jnumber(r, &v);
}

/* {"name": value, ...} -> appended records. */
static mt_status jchannels(jrd *r, mt_monitor_history *h, mt_chan_record rec, mt_strbuf *key)
{
    if (!jeat(r, '{')) return jfail(r, "\"channels\" must be an object");
    if (jeat(r, '}')) return MT_OK;
    do {
        mt_status st = jstring(r, key);
        if (st != MT_OK) return st;
        if (!jeat(r, ':')) return jfail(r, "expected ':'");
        if ((st = jnumber(r, &rec.value)) != MT_OK) return st;
        mt_chan_history *c = mt_monitor_history_channel(h, key->data, true);
        if (!c) return mt_err_prefix(MT_ERR_NOMEM, "%s: ", r->path);
        if ((st = mt_chan_history_append(c, &rec)) != MT_OK) return st;
    } while (jeat(r, ','));
    if (!jeat(r, '}')) return jfail(r, "expected ',' or '}'");
    return MT_OK;
}

/* One line: the counters may come before or after "channels", so channels are parsed after
 * the counters are known (a second pass over the same object). */
static mt_status jrecord(jrd *r, mt_monitor_history *h, mt_strbuf *key)
{
    mt_chan_record rec = {0};
    const char *chan_at = NULL;
    bool have[4] = {false, false, false, false};
    if (!jeat(r, '{')) return jfail(r, "expected '{' (one JSON object per line)");
    if (!jeat(r, '}')) {
        do {
            mt_status st = jstring(r, key);
            if (st != MT_OK) return st;
            if (!jeat(r, ':')) return jfail(r, "expected ':'");
            static const char *const names[4] = {"epoch", "batches", "examples", "seconds"};
            int which = -1;
            for (int k = 0; k < 4; k++)
                if (!strcmp(key->data, names[k])) which = k;
            double v;
            if (which >= 0) {
                if ((st = jnumber(r, &v)) != MT_OK) return st;
                have[which] = true;
                if (which == 0) rec.epoch = (int64_t)v;
                if (which == 1) rec.batches = (int64_t)v;
                if (which == 2) rec.examples = (int64_t)v;
                if (which == 3) rec.seconds = v;
            } else {
                jws(r);
                if (!strcmp(key->data, "channels")) chan_at = r->p;
                if ((st = jskip(r, 1)) != MT_OK) return st;
            }
        } while (jeat(r, ','));
        if (!jeat(r, '}')) return jfail(r, "expected ',' or '}'");
    }
    jws(r);
    if (*r->p != '\n' && *r->p != '\0') return jfail(r, "unexpected text after the record");
    static const char *const req[3] = {"epoch", "batches", "examples"};
    for (int k = 0; k < 3; k++)
        if (!have[k]) return jfail(r, "record lacks \"%s\"", req[k]);
    if (!chan_at) return jfail(r, "record lacks \"channels\"");
    const char *end = r->p;
    r->p = chan_at;
    mt_status st = jchannels(r, h, rec, key);
    r->p = end;
    return st;
}

/* Appends every record of src to the same-named channel of dst. */
static mt_status merge(mt_monitor_history *dst, const mt_monitor_history *src)
{
    for (int32_t i = 0; i < src->n; i++) {
        mt_chan_history *c = mt_monitor_history_channel(dst, src->channels[i].name, true);
        if (!c) return mt_err_prefix(MT_ERR_NOMEM, "monitor history: ");
        for (int32_t k = 0; k < src->channels[i].n; k++) {
            mt_status st = mt_chan_history_append(c, &src->channels[i].records[k]);
            if (st != MT_OK) return st;
        }
    }
    return MT_OK;
}

mt_status mt_monitor_history_read_jsonl(mt_monitor_history *out, const char *path)
{
    mt_monitor_history_init(out, "monitor");
    if (!out->name) return mt_err_prefix(MT_ERR_NOMEM, "%s: ", path);
    char *text;
    size_t len;
    mt_status st = mt_file_read_all(path, &text, &len, 0);
    if (st != MT_OK) {
        mt_monitor_history_clear(out);
        return st;
    }
    if (strlen(text) != len) {
        mt_free(text);
        mt_monitor_history_clear(out);
        return mt_err_set(MT_ERR_FORMAT, "%s: contains a NUL byte; not a JSON lines file", path);
    }
    mt_strbuf key;
    mt_strbuf_init(&key);
    jrd r = {text, text, path, 1};
    while (st == MT_OK && *r.p) {
        r.line_start = r.p;
        bool last_unterminated = strchr(r.p, '\n') == NULL;
        mt_monitor_history line;
        mt_monitor_history_init(&line, "line");
        jws(&r);
        if (!line.name)
            st = mt_err_prefix(MT_ERR_NOMEM, "%s: ", path);
        else if (*r.p != '\n' && *r.p != '\0')
            st = jrecord(&r, &line, &key);
        if (st != MT_OK && last_unterminated && st != MT_ERR_NOMEM) {
            /* a writer that died mid-line leaves a partial last record: drop it */
            mt_log(MT_LOG_WARN, "%s:%lld: ignoring an incomplete last line (%s)", path,
                   (long long)r.line, mt_last_error());
            mt_monitor_history_clear(&line);
            st = MT_OK;
            break;
        }
        if (st == MT_OK) st = merge(out, &line);
        mt_monitor_history_clear(&line);
        if (st != MT_OK) break;
        if (*r.p == '\n') r.p++;
        r.line++;
    }
    mt_strbuf_deinit(&key);
    mt_free(text);
    if (st != MT_OK) mt_monitor_history_clear(out);
    return st;
}
