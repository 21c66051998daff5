/* NumPy-style text for arrays: the same element formatting rules as numpy's array printing with
 * its defaults (precision 8, floatmode "maxprec", 75-column lines, summarised with "..." above
 * 1000 elements), so users can compare mltrain output with NumPy output by eye. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define FMT_PRECISION 8
#define FMT_LINEWIDTH 75
#define FMT_THRESHOLD 1000
#define FMT_EDGE 3

typedef struct fmt_ctx {
    mt_dtype dt;
    char kind;
    const double *f; /* float values */
    const int64_t *i;
    const uint64_t *u;
    const uint8_t *b;
    int64_t n;
    bool sci;
    int int_w, frac_w, total_w; /* float layout */
    int width;                  /* per-element width */
    bool summarise;
} fmt_ctx;

/* Shortest "%.{p}f" (or "%.{p}e") text, p <= 8, that reads back as v rounded to 8 digits. */
/* true when a and b are the same value of dtype dt (the array's own precision decides how many
 * digits NumPy prints: float32(2/3) prints as 0.6666667, not 0.66666669). */
static bool same_in_dtype(double a, double b, mt_dtype dt)
{
    switch (dt) {
    case MT_FLOAT32: return (float)a == (float)b;
    case MT_FLOAT16: return mt_f64_to_f16(a) == mt_f64_to_f16(b);
    case MT_BFLOAT16: return mt_f64_to_bf16(a) == mt_f64_to_bf16(b);
    default: return a == b;
    }
}

static int shortest_prec(double v, bool sci, mt_dtype dt, char *out, size_t len)
{
    char ref[64];
    snprintf(ref, sizeof ref, sci ? "%.*e" : "%.*f", FMT_PRECISION, v);
    double target = strtod(ref, NULL);
    for (int p = 0; p <= FMT_PRECISION; p++) {
        snprintf(out, len, sci ? "%.*e" : "%.*f", p, v);
        if (same_in_dtype(strtod(out, NULL), target, dt)) return p;
    }
    snprintf(out, len, "%s", ref);
    return FMT_PRECISION;
}

static void float_text(const fmt_ctx *c, double v, char *out, size_t len)
{
    if (isnan(v)) {
        snprintf(out, len, "%*s", c->total_w, "nan");
        return;
    }
    if (isinf(v)) {
        snprintf(out, len, "%*s", c->total_w, v < 0 ? "-inf" : "inf");
        return;
    }
    char tmp[64];
    int p = shortest_prec(v, c->sci, c->dt, tmp, sizeof tmp);
    if (c->sci) {
        /* re-render with the common mantissa precision, NumPy pads with zeros in sci mode */
        snprintf(tmp, sizeof tmp, "%.*e", c->frac_w, v);
        char *e = strchr(tmp, 'e');
        if (c->frac_w == 0 && e) { /* "1e+10" -> "1.e+10" */
            char rest[32];
            snprintf(rest, sizeof rest, "%s", e);
            *e = 0;
            snprintf(out, len, "%*s.%s", c->int_w, tmp, rest);
            return;
        }
        snprintf(out, len, "%*s", c->total_w, tmp);
        return;
    }
    char *dot = strchr(tmp, '.');
    int ip = dot ? (int)(dot - tmp) : (int)strlen(tmp);
    int fp = dot ? (int)strlen(dot + 1) : 0;
    (void)p;
    if (!dot) { /* integral value: "3." */
        snprintf(out, len, "%*s.%*s", c->int_w, tmp, c->frac_w, "");
        return;
    }
    *dot = 0;
    snprintf(out, len, "%*s.%s%*s", c->int_w, tmp, dot + 1, c->frac_w - fp, "");
    (void)ip;
}

static void elem_text(const fmt_ctx *c, int64_t k, char *out, size_t len)
{
    switch (c->kind) {
    case 'b': snprintf(out, len, "%*s", c->width, c->b[k] ? "True" : "False"); break;
    case 'i': snprintf(out, len, "%*lld", c->width, (long long)c->i[k]); break;
    case 'u': snprintf(out, len, "%*llu", c->width, (unsigned long long)c->u[k]); break;
    default: float_text(c, c->f[k], out, len); break;
    }
}

static bool shown(const fmt_ctx *c, int64_t idx, int64_t dim)
{
    return !c->summarise || dim <= 2 * FMT_EDGE || idx < FMT_EDGE || idx >= dim - FMT_EDGE;
}

static void layout_floats(fmt_ctx *c, const mt_array *a)
{
    double maxabs = 0, minabs = INFINITY;
    bool any = false;
    for (int64_t k = 0; k < c->n; k++) {
        double v = c->f[k];
        if (!isfinite(v)) continue;
        double av = fabs(v);
        if (av > maxabs) maxabs = av;
        if (av != 0 && av < minabs) minabs = av;
        any = true;
    }
    c->sci = any && (maxabs >= 1e8 || (minabs < 1e-4 && minabs > 0) ||
                     (minabs < INFINITY && maxabs / minabs > 1e3));
    int iw = 0, fw = 0, special = 0;
    for (int64_t k = 0; k < c->n; k++) {
        double v = c->f[k];
        if (!isfinite(v)) {
            int l = isnan(v) ? 3 : (v < 0 ? 4 : 3);
            if (l > special) special = l;
            continue;
        }
        char tmp[64];
        int p = shortest_prec(v, c->sci, c->dt, tmp, sizeof tmp);
        if (p > fw) fw = p;
        int l = (int)(strchr(tmp, '.') ? strchr(tmp, '.') - tmp : (long)strlen(tmp));
        if (c->sci) l = v < 0 ? 2 : 1;
        if (l > iw) iw = l;
    }
    c->int_w = iw;
    c->frac_w = fw;
    int exp_w = 0;
    if (c->sci) {
        for (int64_t k = 0; k < c->n; k++)
            if (isfinite(c->f[k])) {
                char tmp[64];
                snprintf(tmp, sizeof tmp, "%.0e", c->f[k]);
                int l = (int)strlen(strchr(tmp, 'e'));
                if (l > exp_w) exp_w = l;
            }
    }
    c->total_w = iw + 1 + fw + exp_w;
    if (special > c->total_w) {
        c->int_w += special - c->total_w;
        c->total_w = special;
    }
    c->width = c->total_w;
    (void)a;
}

static void emit(const fmt_ctx *c, const mt_array *a, int32_t axis, int64_t base, int indent,
                 mt_strbuf *sb)
{
    int64_t dim = a->dims[axis];
    int64_t stride = 1;
    for (int32_t d = axis + 1; d < a->ndim; d++) stride *= a->dims[d];
    mt_strbuf_append(sb, "[");
    if (axis == a->ndim - 1) {
        int col = indent + 1;
        bool first = true;
        for (int64_t j = 0; j < dim; j++) {
            if (!shown(c, j, dim)) {
                if (j == FMT_EDGE) {
                    mt_strbuf_append(sb, first ? "..." : " ...");
                    col += 4;
                    first = false;
                }
                continue;
            }
            char t[96];
            elem_text(c, base + j * stride, t, sizeof t);
            int l = (int)strlen(t);
            if (!first) {
                if (col + 1 + l + 1 > FMT_LINEWIDTH) {
                    mt_strbuf_appendf(sb, "\n%*s", indent + 1, "");
                    col = indent + 1;
                } else {
                    mt_strbuf_append(sb, " ");
                    col++;
                }
            }
            mt_strbuf_append(sb, t);
            col += l;
            first = false;
        }
    } else {
        bool first = true;
        for (int64_t j = 0; j < dim; j++) {
            if (!shown(c, j, dim)) {
                if (j == FMT_EDGE) {
                    mt_strbuf_appendf(sb, "\n%*s...", indent + 1, "");
                }
                continue;
            }
            if (!first) {
                mt_strbuf_append(sb, "\n");
                for (int32_t b = 0; b < a->ndim - axis - 2; b++) mt_strbuf_append(sb, "\n");
                mt_strbuf_appendf(sb, "%*s", indent + 1, "");
            }
            emit(c, a, axis + 1, base + j * stride, indent + 1, sb);
            first = false;
        }
    }
    mt_strbuf_append(sb, "]");
}

mt_status mt_cli_array_values(const mt_array *a, void **vals)
{
    *vals = NULL;
    char kind = mt_dtype_kind(a->dtype);
    mt_dtype host_dt = kind == 'f' ? MT_FLOAT64
                       : kind == 'i' ? MT_INT64
                       : kind == 'u' ? MT_UINT64
                                     : MT_BOOL;
    mt_array conv = {0};
    mt_status st = mt_array_astype(&conv, a, host_dt);
    if (st) return st;
    size_t bytes = (size_t)mt_array_size(a) * mt_dtype_size(host_dt);
    void *v = mt_malloc(bytes ? bytes : 1);
    if (!v) {
        mt_array_clear(&conv);
        return mt_err_set(MT_ERR_NOMEM, "array values: out of memory (%zu bytes)", bytes);
    }
    st = mt_array_to_host(v, bytes, &conv);
    mt_array_clear(&conv);
    if (st) {
        mt_free(v);
        return st;
    }
    *vals = v;
    return MT_OK;
}

mt_status mt_cli_format_array(const mt_array *a, mt_strbuf *sb)
{
    int64_t n = mt_array_size(a);
    fmt_ctx c = {.dt = a->dtype, .kind = mt_dtype_kind(a->dtype), .n = n};
    void *vals;
    mt_status st = mt_cli_array_values(a, &vals);
    if (st) return st;
    c.f = vals;
    c.i = vals;
    c.u = vals;
    c.b = vals;
    c.summarise = n > FMT_THRESHOLD;
    if (c.kind == 'f') {
        layout_floats(&c, a);
    } else {
        int w = c.kind == 'b' ? (n > 1 ? 5 : 4) : 1;
        for (int64_t k = 0; k < n && c.kind != 'b'; k++) {
            char t[32];
            int l = c.kind == 'i' ? snprintf(t, sizeof t, "%lld", (long long)c.i[k])
                                  : snprintf(t, sizeof t, "%llu", (unsigned long long)c.u[k]);
            if (l > w) w = l;
        }
        if (c.kind == 'b') {
            bool any_false = false;
            for (int64_t k = 0; k < n; k++) any_false |= !c.b[k];
            w = any_false ? 5 : 4;
        }
        c.width = w;
    }
    if (a->ndim == 0) {
        char t[96];
        fmt_ctx c0 = c;
        c0.width = 0;
        if (c.kind == 'f') {
            c0.int_w = 0;
            c0.total_w = 0;
        }
        elem_text(&c0, 0, t, sizeof t);
        /* trim padding of 0-d values */
        char *s = t;
        while (*s == ' ') s++;
        size_t l = strlen(s);
        while (l && s[l - 1] == ' ') s[--l] = 0;
        mt_strbuf_append(sb, s);
    } else if (n == 0) {
        mt_strbuf_append(sb, "[]");
    } else {
        emit(&c, a, 0, 0, 0, sb);
    }
    mt_free(vals);
    return mt_strbuf_status(sb);
}
