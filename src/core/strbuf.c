/* A growable NUL-terminated string builder.
 *
 * Used for code generation and messages. Appends never fail loudly: on allocation failure
 * the builder sets `failed`, keeps what it had and ignores later appends, so a long chain of
 * appends needs a single mt_strbuf_status() check at the end. */
#include <stdio.h>
#include <string.h>

#include "mltrain/core.h"

void mt_strbuf_init(mt_strbuf *sb)
{
    sb->data = NULL;
    sb->len = 0;
    sb->cap = 0;
    sb->failed = false;
}

void mt_strbuf_deinit(mt_strbuf *sb)
{
    mt_free(sb->data);
    mt_strbuf_init(sb);
}

void mt_strbuf_clear(mt_strbuf *sb)
{
    sb->len = 0;
    if (sb->data) sb->data[0] = '\0';
}

/* Ensures room for `extra` more bytes plus the NUL; false (and failed set) if impossible. */
static bool reserve(mt_strbuf *sb, size_t extra)
{
    if (sb->failed) return false;
    size_t need;
    if (__builtin_add_overflow(sb->len, extra, &need) || need == SIZE_MAX) {
        sb->failed = true;
        mt_err_set(MT_ERR_NOMEM, "string builder: length overflow");
        return false;
    }
    need += 1;
    if (need <= sb->cap) return true;
    size_t cap = sb->cap ? sb->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *p = mt_realloc(sb->data, cap);
    if (!p) {
        sb->failed = true;
        return false;
    }
    sb->data = p;
    sb->cap = cap;
    return true;
}

void mt_strbuf_appendn(mt_strbuf *sb, const char *s, size_t n)
{
    if (!reserve(sb, n)) return;
    if (n) memcpy(sb->data + sb->len, s, n);
    sb->len += n;
    sb->data[sb->len] = '\0';
}

void mt_strbuf_append(mt_strbuf *sb, const char *s)
{
    mt_strbuf_appendn(sb, s, strlen(s));
}

void mt_strbuf_append_indented(mt_strbuf *sb, const char *text, const char *indent)
{
    const char *s = text;
    while (*s) {
        const char *e = strchr(s, '\n');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        mt_strbuf_append(sb, indent);
        mt_strbuf_appendn(sb, s, n);
        mt_strbuf_append(sb, "\n");
        s += n + (e ? 1 : 0);
    }
}

void mt_strbuf_appendv(mt_strbuf *sb, const char *fmt, va_list ap)
{
    if (sb->failed) return;
    va_list ap2;
    va_copy(ap2, ap);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap2);
    va_end(ap2);
    if (n < 0) {
        sb->failed = true;
        mt_err_set(MT_ERR_INVALID, "string builder: bad format '%s'", fmt);
        return;
    }
    if ((size_t)n < sizeof small) {
        mt_strbuf_appendn(sb, small, (size_t)n);
        return;
    }
    if (!reserve(sb, (size_t)n)) return;
    vsnprintf(sb->data + sb->len, (size_t)n + 1, fmt, ap);
    sb->len += (size_t)n;
}

void mt_strbuf_appendf(mt_strbuf *sb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    mt_strbuf_appendv(sb, fmt, ap);
    va_end(ap);
}

mt_status mt_strbuf_status(const mt_strbuf *sb)
{
    if (sb->failed)
        return mt_err_set(MT_ERR_NOMEM, "out of memory building a string (%zu bytes kept)",
                          sb->len);
    return MT_OK;
}

char *mt_strbuf_take(mt_strbuf *sb)
{
    char *p = sb->data;
    if (!p) p = mt_strdup("");
    mt_strbuf_init(sb);
    return p;
}

static int fold(int c, bool fold_case)
{
    return fold_case && c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

int32_t mt_edit_distance(const char *a, const char *b, int32_t cap, bool fold_case)
{
    int32_t la = (int32_t)strlen(a), lb = (int32_t)strlen(b);
    if (la > 64) la = 64;
    if (lb > 64) lb = 64;
    if (la - lb > cap || lb - la > cap) return cap + 1;
    int32_t d[65][65];
    for (int32_t i = 0; i <= la; i++) d[i][0] = i;
    for (int32_t j = 0; j <= lb; j++) d[0][j] = j;
    for (int32_t i = 1; i <= la; i++) {
        int32_t row_min = d[i][0];
        int ca = fold((unsigned char)a[i - 1], fold_case);
        for (int32_t j = 1; j <= lb; j++) {
            int cb = fold((unsigned char)b[j - 1], fold_case);
            int32_t v = d[i - 1][j - 1] + (ca != cb);
            if (d[i - 1][j] + 1 < v) v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v) v = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && ca == fold((unsigned char)b[j - 2], fold_case) &&
                fold((unsigned char)a[i - 2], fold_case) == cb && d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
            if (v < row_min) row_min = v;
        }
        /* a transposition reads two rows back: stop only when both rows exceed cap */
        if (row_min > cap && i > 1) {
            int32_t prev_min = d[i - 1][0];
            for (int32_t j = 1; j <= lb; j++)
                if (d[i - 1][j] < prev_min) prev_min = d[i - 1][j];
            if (prev_min > cap) return cap + 1;
        }
    }
    return d[la][lb] > cap ? cap + 1 : d[la][lb];
}
