/* `mltrain eval`: the command-line face of the graph compiler. It turns NAME=VALUE arguments
 * into arrays (numbers, nested lists, .npy files), builds placeholders with their exact static
 * types, parses EXPR with the expression language (docs/expressions.md), optionally
 * differentiates sum(EXPR), compiles the graph with the JIT on the chosen device, runs it once
 * and prints the result as NumPy does (or as exact JSON, or into a .npy file). Errors in the
 * expression, also run-time errors whose message names a span of EXPR, are shown with a caret
 * under that span. Exit codes: 0 success, 1 expression or evaluation error, 2 usage error. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "mltrain/graph.h"
#include "mltrain/graph_grad.h"
#include "mltrain/graph_parse.h"
#include "mltrain/graph_rewrite.h"
#include "mltrain/jit.h"

#define EXIT_EVAL 1
#define EXIT_USAGE 2
#define MAX_LIST_DEPTH MT_MAX_DIMS

static void eval_usage(FILE *f)
{
    fprintf(
        f,
        "usage: mltrain eval [options] EXPR [NAME=VALUE ...]\n"
        "\n"
        "Evaluates a NumPy-like expression (docs/expressions.md) and prints the result.\n"
        "  VALUE              a number, a nested list like [[1,2],[3,4]], or @path.npy\n"
        "  --dtype T          dtype of literal inputs (default float64)\n"
        "  --device D         host (default), opencl:P:D\n"
        "  --grad NAME        print d(sum(EXPR))/d(NAME) instead of EXPR (repeatable)\n"
        "  --format F         text (NumPy-like, default) or json:\n"
        "                     {\"dtype\":..,\"shape\":[..],\"data\":[..]} (flat, C order; floats\n"
        "                     read back exactly; NaN and infinities as \"nan\", \"inf\", "
        "\"-inf\")\n"
        "  --out PATH         write the result as .npy\n"
        "  --print-graph      print the graph (each node with its provenance) and the schedule\n"
        "  --dot PATH         write the graph as Graphviz dot\n"
        "  --no-optimize      no graph rewrites\n"
        "  --no-rewrite NAME  switch one rewrite off (repeatable)\n"
        "  --mode M           fast_run (default), fast_compile or check\n"
        "  --profile          print per-step times to stderr\n"
        "exit status: 0 ok, 1 error in the expression or its evaluation, 2 usage error\n");
}

typedef struct eval_opts {
    const char *expr;
    int32_t nvals, ngrads, nnorw;
    const char **vals, **grads, **norw;
    mt_dtype dtype;
    const char *device, *out_path, *dot_path;
    bool json, print_graph, no_optimize, profile;
    mt_mode mode;
} eval_opts;

static int usage_err(const char *fmt, const char *a, const char *b)
{
    fprintf(stderr, "mltrain: error: ");
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, "\n(see 'mltrain eval --help')\n");
    return EXIT_USAGE;
}

/* Returns 0 to go on, or an exit code (help: -1 meaning exit 0). */
static int parse_args(int argc, char **argv, eval_opts *o)
{
    bool only_positional = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (only_positional || a[0] != '-' || a[1] != '-' || !strcmp(a, "--")) {
            if (!only_positional && !strcmp(a, "--")) {
                only_positional = true;
                continue;
            }
            if (!o->expr && strcmp(a, "-h") != 0)
                o->expr = a;
            else if (!strcmp(a, "-h"))
                return -1;
            else
                o->vals[o->nvals++] = a;
            continue;
        }
        bool has_value = !strcmp(a, "--dtype") || !strcmp(a, "--device") || !strcmp(a, "--grad") ||
                         !strcmp(a, "--format") || !strcmp(a, "--out") || !strcmp(a, "--dot") ||
                         !strcmp(a, "--no-rewrite") || !strcmp(a, "--mode");
        const char *v = NULL;
        if (has_value) {
            if (i + 1 >= argc) return usage_err("option %s needs a value%s", a, "");
            v = argv[++i];
        }
        if (!strcmp(a, "--help"))
            return -1;
        else if (!strcmp(a, "--dtype")) {
            if (mt_dtype_from_name(&o->dtype, v) != MT_OK)
                return usage_err("--dtype: unknown dtype '%s'%s", v, "");
        } else if (!strcmp(a, "--device"))
            o->device = v;
        else if (!strcmp(a, "--grad"))
            o->grads[o->ngrads++] = v;
        else if (!strcmp(a, "--format")) {
            if (strcmp(v, "text") && strcmp(v, "json"))
                return usage_err("--format: expected text or json, got '%s'%s", v, "");
            o->json = !strcmp(v, "json");
        } else if (!strcmp(a, "--out"))
            o->out_path = v;
        else if (!strcmp(a, "--dot"))
            o->dot_path = v;
        else if (!strcmp(a, "--no-rewrite"))
            o->norw[o->nnorw++] = v;
        else if (!strcmp(a, "--mode")) {
            if (mt_mode_from_name(&o->mode, v) != MT_OK)
                return usage_err("--mode: %s%s", mt_last_error(), "");
        } else if (!strcmp(a, "--print-graph"))
            o->print_graph = true;
        else if (!strcmp(a, "--no-optimize"))
            o->no_optimize = true;
        else if (!strcmp(a, "--profile"))
            o->profile = true;
        else
            return usage_err("unknown option '%s'%s", a, "");
    }
    if (!o->expr) return usage_err("missing EXPR%s%s", "", "");
    if (o->nnorw > 0 && mt_rewrite_check_names(o->nnorw, o->norw) != MT_OK)
        return usage_err("--no-rewrite: %s%s", mt_last_error(), "");
    if (o->out_path && o->ngrads > 1)
        return usage_err("--out writes one array; it cannot be used with %s --grad options%s",
                         "several", "");
    return 0;
}

/* ---------------------------------------------------------------- NAME=VALUE */

typedef struct input {
    const char *name; /* points into argv */
    size_t name_len;
    char cname[64];
    mt_array arr;
    mt_var var;
} input;

typedef struct lit {
    const char *s;
    size_t pos;
    int32_t leaf_depth, max_list_depth;
    int64_t shape[MAX_LIST_DEPTH];
    bool seen[MAX_LIST_DEPTH];
    size_t *leaf_at, *leaf_len;
    int64_t nleaves, cap;
    const char *err;
} lit;

static void lit_skip(lit *L)
{
    while (L->s[L->pos] == ' ' || L->s[L->pos] == '\t' || L->s[L->pos] == '\n')
        L->pos++;
}

static bool lit_leaf(lit *L, int32_t depth)
{
    size_t b = L->pos;
    char c;
    while ((c = L->s[L->pos]) != 0 && (isalnum((unsigned char)c) || strchr("+-._", c)))
        L->pos++;
    if (L->pos == b) {
        L->err = "expected a number";
        return false;
    }
    if (L->max_list_depth >= depth || (L->leaf_depth >= 0 && L->leaf_depth != depth)) {
        L->err = "ragged nested list (numbers and lists at the same depth)";
        return false;
    }
    L->leaf_depth = depth;
    if (L->nleaves == L->cap) {
        int64_t cap = L->cap ? 2 * L->cap : 64;
        size_t *a = realloc(L->leaf_at, (size_t)cap * sizeof(size_t));
        if (a) L->leaf_at = a;
        size_t *l = a ? realloc(L->leaf_len, (size_t)cap * sizeof(size_t)) : NULL;
        if (!l) {
            L->err = "out of memory";
            return false;
        }
        L->leaf_len = l;
        L->cap = cap;
    }
    L->leaf_at[L->nleaves] = b;
    L->leaf_len[L->nleaves++] = L->pos - b;
    return true;
}

static bool lit_value(lit *L, int32_t depth)
{
    lit_skip(L);
    if (L->s[L->pos] != '[') return lit_leaf(L, depth);
    if (depth >= MAX_LIST_DEPTH) {
        L->err = "nested list has too many dimensions";
        return false;
    }
    if (L->leaf_depth >= 0 && depth >= L->leaf_depth) {
        L->err = "ragged nested list (numbers and lists at the same depth)";
        return false;
    }
    if (depth > L->max_list_depth) L->max_list_depth = depth;
    L->pos++;
    int64_t k = 0;
    lit_skip(L);
    while (L->s[L->pos] != ']') {
        if (!lit_value(L, depth + 1)) return false;
        k++;
        lit_skip(L);
        if (L->s[L->pos] == ',') {
            L->pos++;
            lit_skip(L);
        } else if (L->s[L->pos] != ']') {
            L->err = L->s[L->pos] ? "expected ',' or ']'" : "unclosed '['";
            return false;
        }
    }
    L->pos++;
    if (!L->seen[depth]) {
        L->seen[depth] = true;
        L->shape[depth] = k;
    } else if (L->shape[depth] != k) {
        L->err = "ragged nested list (inner lists of different lengths)";
        return false;
    }
    return true;
}

/* One number into dst as dtype dt; false with a reason in *why. */
static bool lit_number(const char *tok, mt_dtype dt, void *dst, const char **why)
{
    char *end;
    char k = mt_dtype_kind(dt);
    errno = 0;
    if (k == 'b') {
        bool v;
        if (!strcmp(tok, "true") || !strcmp(tok, "True") || !strcmp(tok, "1"))
            v = true;
        else if (!strcmp(tok, "false") || !strcmp(tok, "False") || !strcmp(tok, "0"))
            v = false;
        else {
            *why = "is not a bool (true, false, 1, 0)";
            return false;
        }
        *(uint8_t *)dst = v;
        return true;
    }
    if (k == 'f') {
        if (dt == MT_FLOAT32) {
            float f = strtof(tok, &end);
            if (*end || end == tok) goto bad_float;
            memcpy(dst, &f, sizeof f);
            return true;
        }
        double d = strtod(tok, &end);
        if (*end || end == tok) goto bad_float;
        mt_scalar s = mt_scalar_f64(d);
        mt_scalar_store(&s, dt, dst);
        return true;
    bad_float:
        *why = "is not a number";
        return false;
    }
    /* integers: exact when written as an integer, else an integral float */
    mt_scalar s;
    if (k == 'u' && tok[0] != '-') {
        unsigned long long u = strtoull(tok, &end, 10);
        s = mt_scalar_u64(u);
    } else {
        long long v = strtoll(tok, &end, 10);
        s = mt_scalar_i64(v);
    }
    if (*end || end == tok) {
        double d = strtod(tok, &end);
        if (*end || end == tok || d != floor(d) || !isfinite(d)) {
            *why = "is not an integer";
            return false;
        }
        if (d >= 9223372036854775808.0 || d < -9223372036854775808.0) errno = ERANGE;
        s = mt_scalar_i64((int64_t)d);
    }
    if (errno == ERANGE) {
        *why = "is out of range";
        return false;
    }
    /* range of the target width */
    size_t bits = mt_dtype_size(dt) * 8;
    bool neg = s.dtype == MT_INT64 && s.v.i < 0;
    if (k == 'u' && neg) {
        *why = "is negative for an unsigned dtype";
        return false;
    }
    if (bits < 64) {
        int64_t v = s.dtype == MT_INT64 ? s.v.i : (int64_t)s.v.u;
        int64_t lo = k == 'u' ? 0 : -((int64_t)1 << (bits - 1));
        int64_t hi = k == 'u' ? ((int64_t)1 << bits) - 1 : ((int64_t)1 << (bits - 1)) - 1;
        if ((s.dtype == MT_UINT64 && s.v.u > (uint64_t)INT64_MAX) || v < lo || v > hi) {
            *why = "is out of range";
            return false;
        }
    } else if (k == 'i' && s.dtype == MT_UINT64 && s.v.u > (uint64_t)INT64_MAX) {
        *why = "is out of range";
        return false;
    }
    mt_scalar_store(&s, dt, dst);
    return true;
}

/* NAME=VALUE with VALUE a number or a nested list. Returns 0 or an exit code. */
static int parse_literal(input *in, const char *arg, const char *text, mt_dtype dt, mt_device *dev)
{
    lit L = {.s = text, .leaf_depth = -1, .max_list_depth = -1};
    int rc = 0;
    void *data = NULL;
    bool ok = lit_value(&L, 0);
    lit_skip(&L);
    if (ok && L.s[L.pos]) {
        ok = false;
        L.err = "unexpected text after the value";
    }
    if (!ok) {
        fprintf(stderr, "mltrain: error: %s: %s (at offset %zu of the value)\n", arg, L.err, L.pos);
        rc = EXIT_USAGE;
        goto done;
    }
    int32_t ndim = L.leaf_depth >= 0 ? L.leaf_depth : L.max_list_depth + 1;
    int64_t numel = 1;
    for (int32_t d = 0; d < ndim; d++)
        numel *= L.shape[d];
    size_t isz = mt_dtype_size(dt);
    data = malloc((size_t)(numel ? numel : 1) * isz);
    if (!data) {
        fprintf(stderr, "mltrain: error: %s: out of memory\n", arg);
        rc = EXIT_EVAL;
        goto done;
    }
    for (int64_t i = 0; i < L.nleaves; i++) {
        char tok[128];
        const char *why = NULL;
        size_t n = L.leaf_len[i] < sizeof tok - 1 ? L.leaf_len[i] : sizeof tok - 1;
        memcpy(tok, text + L.leaf_at[i], n);
        tok[n] = 0;
        if (!lit_number(tok, dt, (char *)data + (size_t)i * isz, &why)) {
            fprintf(stderr, "mltrain: error: %s: '%s' %s (--dtype %s)\n", arg, tok, why,
                    mt_dtype_name(dt));
            rc = EXIT_USAGE;
            goto done;
        }
    }
    if (mt_array_from_host(&in->arr, dev, dt, ndim, L.shape, data) != MT_OK) rc = mt_cli_fail(arg);
done:
    free(data);
    free(L.leaf_at);
    free(L.leaf_len);
    return rc;
}

static bool is_identifier(const char *s, size_t n)
{
    static const char *const kw[] = {"True",   "False", "None", "and",   "or",
                                     "not",    "if",    "else", "in",    "is",
                                     "lambda", "for",   "def",  "class", "return"};
    if (n == 0 || n >= 64 || !(isalpha((unsigned char)s[0]) || s[0] == '_')) return false;
    for (size_t i = 1; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_')) return false;
    for (size_t i = 0; i < sizeof(kw) / sizeof(kw[0]); i++)
        if (strlen(kw[i]) == n && !strncmp(kw[i], s, n)) return false;
    return true;
}

static int load_inputs(const eval_opts *o, input *ins, mt_device *dev)
{
    for (int32_t i = 0; i < o->nvals; i++) {
        const char *a = o->vals[i];
        const char *eq = strchr(a, '=');
        input *in = &ins[i];
        if (!eq || !is_identifier(a, (size_t)(eq - a)))
            return usage_err("'%s': expected NAME=VALUE with NAME an identifier%s", a, "");
        in->name = a;
        in->name_len = (size_t)(eq - a);
        memcpy(in->cname, a, in->name_len);
        in->cname[in->name_len] = 0;
        for (int32_t j = 0; j < i; j++)
            if (!strcmp(ins[j].cname, in->cname))
                return usage_err("'%s' is given twice%s", in->cname, "");
        const char *v = eq + 1;
        if (v[0] == '@') {
            if (mt_npy_load(&in->arr, dev, v + 1, 0) != MT_OK) {
                fprintf(stderr, "mltrain: error: %s: %s\n", in->cname, mt_last_error());
                return EXIT_USAGE;
            }
        } else {
            int rc = parse_literal(in, in->cname, v, o->dtype, dev);
            if (rc) return rc;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- errors with carets */

static void print_parse_error(const mt_parse_error *e, const char *expr)
{
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    mt_parse_error_format(e, expr, &sb);
    fprintf(stderr, "mltrain: error: %s\n", sb.data ? sb.data : e->message);
    mt_strbuf_deinit(&sb);
}

/* Finds "from '<text>' col B-E" in msg where <text> is EXPR's columns B..E. Returns the start
 * of "from" (NULL if none) and sets *after to the character after "B-E". */
static const char *find_span(const char *msg, const char *expr, int *b, int *e, const char **after)
{
    const char *found = NULL;
    size_t elen = strlen(expr);
    for (const char *p = strstr(msg, "from '"); p; p = strstr(p + 1, "from '")) {
        const char *q = p + 6;
        for (const char *c = strstr(q, "' col "); c; c = strstr(c + 1, "' col ")) {
            int bb, ee, n = 0;
            if (sscanf(c, "' col %d-%d%n", &bb, &ee, &n) != 2 || bb < 1 || ee < bb ||
                (size_t)ee > elen || (size_t)(c - q) != (size_t)(ee - bb + 1) ||
                strncmp(q, expr + bb - 1, (size_t)(ee - bb + 1)))
                continue;
            found = p;
            *b = bb;
            *e = ee;
            *after = c + n;
            break;
        }
    }
    return found;
}

/* A compile or run-time error: when its message names the provenance of a span of EXPR
 * ("gather (node v3, from 'x[i]' col 1-4): ..."), show it with a caret there instead. */
static int report_error(const char *what, const char *expr)
{
    const char *msg = mt_last_error(), *after = NULL;
    int b = 0, e = 0;
    const char *from = find_span(msg, expr, &b, &e, &after);
    if (!from) return mt_cli_fail(what);
    mt_parse_error pe;
    memset(&pe, 0, sizeof pe);
    pe.status = mt_last_status();
    pe.begin = b - 1;
    pe.end = e;
    pe.point = b - 1;
    pe.line = 1;
    pe.col = 1;
    for (int i = 0; i < b - 1; i++) {
        if (expr[i] == '\n') {
            pe.line++;
            pe.col = 1;
        } else if (((unsigned char)expr[i] & 0xC0) != 0x80) {
            pe.col++;
        }
    }
    /* the message without the provenance (and its now empty separators) */
    size_t head = (size_t)(from - msg);
    if (head >= 2 && !strncmp(from - 2, ", ", 2))
        head -= 2;
    else if (head >= 2 && !strncmp(from - 2, " (", 2) && after[0] == ')')
        head -= 2, after++;
    else if (head >= 1 && from[-1] == '(' && after[0] == ')')
        head -= 1, after++;
    snprintf(pe.message, sizeof pe.message, "%.*s%s", (int)head, msg, after);
    print_parse_error(&pe, expr);
    return EXIT_EVAL;
}

/* ---------------------------------------------------------------- output */

/* Shortest text that reads back to the same value of dtype dt (at most 17 / 9 digits). */
/* Number of significant digits (1..17) of the shortest text that reads back to v in dt. */
static int shortest_digits(double v, mt_dtype dt)
{
    char buf[40];
    int maxp = dt == MT_FLOAT64 ? 17 : 9, p = 1;
    for (; p < maxp; p++) {
        snprintf(buf, sizeof buf, "%.*e", p - 1, v);
        double back = strtod(buf, NULL);
        bool same;
        if (dt == MT_FLOAT64)
            same = back == v;
        else if (dt == MT_FLOAT32)
            same = (float)back == (float)v;
        else if (dt == MT_FLOAT16)
            same = mt_f64_to_f16(back) == mt_f64_to_f16(v);
        else
            same = mt_f64_to_bf16(back) == mt_f64_to_bf16(v);
        if (same) break;
    }
    return p;
}

/* A 0-d float as NumPy prints it (the scalar's repr: shortest digits, positional for
 * 1e-4 <= |v| < 1e16 compared in the value's dtype, else scientific with 2+ exponent digits). */
static void format_float0d(double v, mt_dtype dt, mt_strbuf *sb)
{
    if (isnan(v) || isinf(v)) {
        mt_strbuf_append(sb, isnan(v) ? "nan" : v < 0 ? "-inf" : "inf");
        return;
    }
    char buf[48], digits[24];
    int p = shortest_digits(v, dt);
    snprintf(buf, sizeof buf, "%.*e", p - 1, fabs(v));
    int nd = 0;
    char *e = strchr(buf, 'e');
    for (char *q = buf; q < e; q++)
        if (*q != '.') digits[nd++] = *q;
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    digits[nd] = 0;
    int ex = atoi(e + 1);
    double a = fabs(v);
    bool positional = dt == MT_FLOAT32 ? (a == 0 || ((float)a < 1e16 && (float)a >= 1e-4))
                                       : (a == 0 || (a < 1e16 && a >= 1e-4));
    if (signbit(v)) mt_strbuf_append(sb, "-");
    if (!positional) {
        mt_strbuf_appendf(sb, "%c%s%se%c%02d", digits[0], nd > 1 ? "." : "", digits + 1,
                          ex < 0 ? '-' : '+', ex < 0 ? -ex : ex);
        return;
    }
    if (ex < 0) {
        mt_strbuf_append(sb, "0.");
        for (int i = 0; i < -ex - 1; i++)
            mt_strbuf_append(sb, "0");
        mt_strbuf_append(sb, digits);
        return;
    }
    for (int i = 0; i <= ex; i++)
        mt_strbuf_appendf(sb, "%c", i < nd ? digits[i] : '0');
    mt_strbuf_appendf(sb, ".%s", nd > ex + 1 ? digits + ex + 1 : "0");
}

/* Shortest text that reads back to the same value of dtype dt (at most 17 / 9 digits). */
static void json_float(double v, mt_dtype dt, mt_strbuf *sb)
{
    if (isnan(v)) {
        mt_strbuf_append(sb, "\"nan\"");
        return;
    }
    if (isinf(v)) {
        mt_strbuf_append(sb, v < 0 ? "\"-inf\"" : "\"inf\"");
        return;
    }
    char buf[40];
    snprintf(buf, sizeof buf, "%.*g", shortest_digits(v, dt), v);
    if (!strpbrk(buf, ".en")) strcat(buf, ".0"); /* a float for JSON readers too (-0.0) */
    mt_strbuf_append(sb, buf);
}

static mt_status format_json(const mt_array *a, mt_strbuf *sb)
{
    int64_t n = mt_array_size(a);
    char k = mt_dtype_kind(a->dtype);
    void *vals;
    mt_status st = mt_cli_array_values(a, &vals);
    if (st == MT_OK) {
        mt_strbuf_appendf(sb, "{\"dtype\":\"%s\",\"shape\":[", mt_dtype_name(a->dtype));
        for (int32_t d = 0; d < a->ndim; d++)
            mt_strbuf_appendf(sb, "%s%lld", d ? "," : "", (long long)a->dims[d]);
        mt_strbuf_append(sb, "],\"data\":[");
        for (int64_t i = 0; i < n; i++) {
            if (i) mt_strbuf_append(sb, ",");
            if (k == 'f')
                json_float(((double *)vals)[i], a->dtype, sb);
            else if (k == 'i')
                mt_strbuf_appendf(sb, "%lld", (long long)((int64_t *)vals)[i]);
            else if (k == 'u')
                mt_strbuf_appendf(sb, "%llu", (unsigned long long)((uint64_t *)vals)[i]);
            else
                mt_strbuf_append(sb, ((uint8_t *)vals)[i] ? "true" : "false");
        }
        mt_strbuf_append(sb, "]}");
        st = mt_strbuf_status(sb);
    }
    mt_free(vals);
    return st;
}

static int print_result(const eval_opts *o, const mt_array *a, const char *label)
{
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    mt_status st;
    if (o->json) {
        st = format_json(a, &sb);
    } else if (a->ndim == 0 && mt_dtype_is_float(a->dtype)) {
        double v = 0;
        mt_array c = {0};
        st = mt_array_astype(&c, a, MT_FLOAT64);
        if (st == MT_OK) st = mt_array_to_host(&v, sizeof v, &c);
        mt_array_clear(&c);
        if (st == MT_OK) format_float0d(v, a->dtype, &sb);
    } else {
        st = mt_cli_format_array(a, &sb);
    }
    if (st == MT_OK) {
        if (label && !o->json) printf("%s:\n", label);
        printf("%s\n", sb.data ? sb.data : "");
    }
    mt_strbuf_deinit(&sb);
    return st == MT_OK ? 0 : mt_cli_fail("formatting the result");
}

static int print_graph(const eval_opts *o, const mt_graph *g, int32_t nout, const mt_var *outs,
                       const mt_function *f)
{
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    mt_status st = MT_OK;
    if (o->print_graph) {
        mt_strbuf_append(&sb, "graph:\n");
        st = mt_graph_print(g, nout, outs, &sb);
        if (st == MT_OK) {
            mt_strbuf_append(&sb, "schedule:\n");
            st = mt_function_print(f, &sb);
        }
        if (st == MT_OK) fputs(sb.data, stdout);
    }
    if (st == MT_OK && o->dot_path) {
        mt_strbuf_clear(&sb);
        st = mt_graph_print_dot(g, nout, outs, &sb);
        if (st == MT_OK) st = mt_file_write_atomic(o->dot_path, sb.data, sb.len, 0644);
    }
    mt_strbuf_deinit(&sb);
    return st == MT_OK ? 0 : mt_cli_fail(o->print_graph ? "printing the graph" : o->dot_path);
}

/* ---------------------------------------------------------------- the command */

typedef struct eval_state {
    mt_device *dev;
    mt_graph *g;
    mt_function *f;
    input *ins;
    const char **names;
    mt_var *vars, *outs, *shown;
    mt_array *results;
    int32_t nout;
} eval_state;

/* Builds placeholders, parses EXPR, adds gradients. Returns 0 or an exit code. */
static int build(const eval_opts *o, eval_state *S)
{
    if (mt_graph_new(&S->g) != MT_OK) return mt_cli_fail("creating the graph");
    for (int32_t i = 0; i < o->nvals; i++) {
        input *in = &S->ins[i];
        in->var = mt_graph_placeholder(S->g, in->cname, in->arr.dtype, in->arr.ndim, in->arr.dims);
        if (!in->var) return mt_cli_fail(in->cname);
        S->names[i] = in->cname;
        S->vars[i] = in->var;
    }
    mt_parse_error pe;
    mt_var y;
    if (mt_graph_parse(S->g, o->expr, o->nvals, S->names, S->vars, &y, &pe) != MT_OK) {
        print_parse_error(&pe, o->expr);
        return EXIT_EVAL;
    }
    if (o->ngrads == 0) {
        S->outs[0] = y;
        S->nout = 1;
        return 0;
    }
    mt_var *wrt = S->vars + o->nvals;
    for (int32_t k = 0; k < o->ngrads; k++) {
        int32_t i = 0;
        while (i < o->nvals && strcmp(S->ins[i].cname, o->grads[k]))
            i++;
        if (i == o->nvals)
            return usage_err("--grad %s: no input named '%s' (give it as NAME=VALUE)", o->grads[k],
                             o->grads[k]);
        if (!mt_dtype_is_float(S->ins[i].arr.dtype)) {
            fprintf(stderr,
                    "mltrain: error: --grad %s: %s is %s; only float inputs have "
                    "gradients (use --dtype float64 or a float .npy)\n",
                    o->grads[k], o->grads[k], mt_dtype_name(S->ins[i].arr.dtype));
            return EXIT_EVAL;
        }
        wrt[k] = S->ins[i].var;
    }
    /* Stabilize the expression before differentiating it, as a user writing log(1 + exp(x))
     * expects: the gradient of the stable form (softplus -> sigmoid) is finite where the
     * literal form's (exp(x) / (1 + exp(x))) is inf / inf. --no-optimize keeps the literal form. */
    if (!o->no_optimize) {
        mt_rewrite_options ro;
        mt_rewrite_options_init(&ro);
        ro.n_disabled = o->nnorw;
        ro.disabled = o->norw;
        ro.last_phase = MT_REWRITE_STABILIZE;
        if (mt_graph_optimize(S->g, 1, &y, &ro, NULL) != MT_OK)
            return report_error("stabilizing the expression", o->expr);
    }
    if (!mt_dtype_is_float(mt_graph_type(S->g, y)->dtype)) y = mt_graph_cast(S->g, y, MT_FLOAT64);
    mt_var cost = mt_graph_sum(S->g, y, 0, NULL, false);
    mt_grad_options go;
    mt_grad_options_init(&go);
    go.disconnected = MT_GRAD_DISCONNECTED_ZERO; /* d sum(EXPR) / d unused input = 0 */
    if (!cost || mt_graph_grad(S->g, cost, o->ngrads, wrt, S->outs, &go) != MT_OK)
        return report_error("gradient", o->expr);
    S->nout = o->ngrads;
    return 0;
}

/* The rewrite names the JIT must skip: --no-rewrite's, or every rule for --no-optimize. */
static const char **disabled_rewrites(const eval_opts *o, int32_t *n)
{
    if (!o->no_optimize) {
        *n = o->nnorw;
        return o->norw;
    }
    int32_t k = mt_rewrite_count();
    const char **names = calloc((size_t)k + 1, sizeof(char *));
    if (!names) return NULL;
    for (int32_t i = 0; i < k; i++)
        names[i] = mt_rewrite_get(i)->name;
    *n = k;
    return names;
}

/* The optimized graph for --print-graph / --dot: the JIT rewrites its private copy of the
 * graph, so the same rewrites run here on the outputs' copies in S->shown (the function is
 * compiled from the unoptimized outputs, as its reference schedule needs them). */
static int optimize_for_display(const eval_opts *o, eval_state *S, int32_t ndis,
                                const char *const *dis)
{
    memcpy(S->shown, S->outs, (size_t)S->nout * sizeof(mt_var));
    if (o->no_optimize || (!o->print_graph && !o->dot_path)) return 0;
    mt_rewrite_options ro;
    mt_rewrite_options_init(&ro);
    ro.n_disabled = ndis;
    ro.disabled = dis;
    /* the same phases the JIT runs: fast_compile stops after stabilize */
    if (o->mode == MT_MODE_FAST_COMPILE) ro.last_phase = MT_REWRITE_STABILIZE;
    if (mt_graph_optimize(S->g, S->nout, S->shown, &ro, NULL) != MT_OK)
        return report_error("optimizing", o->expr);
    return 0;
}

static int compile_and_run(const eval_opts *o, eval_state *S)
{
    mt_function_options fo;
    mt_function_options_init(&fo);
    fo.mode = o->mode;
    fo.profile = o->profile;
    const char **dis = disabled_rewrites(o, &fo.n_disabled_rewrites);
    if (!dis && fo.n_disabled_rewrites) return mt_cli_fail("out of memory");
    fo.disabled_rewrites = dis;
    int rc = 0;
    if (mt_function_new(&S->f, S->g, o->nvals, S->vars, S->nout, S->outs, 0, NULL, S->dev, &fo) !=
        MT_OK)
        rc = report_error("compiling", o->expr);
    if (!rc) rc = optimize_for_display(o, S, fo.n_disabled_rewrites, dis);
    if (dis != o->norw) free(dis);
    if (!rc && (o->print_graph || o->dot_path)) rc = print_graph(o, S->g, S->nout, S->shown, S->f);
    if (rc) return rc;
    const mt_array **args = calloc((size_t)o->nvals + 1, sizeof(*args));
    if (!args) return mt_cli_fail("out of memory");
    for (int32_t i = 0; i < o->nvals; i++)
        args[i] = &S->ins[i].arr;
    mt_status st =
        mt_function_call(S->f, o->nvals, (const mt_array *const *)args, S->nout, S->results);
    free(args);
    if (st != MT_OK) return report_error("evaluating", o->expr);
    if (o->profile) {
        mt_strbuf sb;
        mt_strbuf_init(&sb);
        if (mt_function_print_profile(S->f, &sb) == MT_OK) fputs(sb.data, stderr);
        mt_strbuf_deinit(&sb);
    }
    return 0;
}

static int emit(const eval_opts *o, eval_state *S)
{
    for (int32_t k = 0; k < S->nout; k++) {
        char label[96];
        snprintf(label, sizeof label, "grad %s", S->nout > 1 ? o->grads[k] : "");
        int rc = print_result(o, &S->results[k], S->nout > 1 ? label : NULL);
        if (rc) return rc;
    }
    if (o->out_path && mt_npy_save(o->out_path, &S->results[0]) != MT_OK)
        return mt_cli_fail(o->out_path);
    return 0;
}

int mt_cli_eval(int argc, char **argv)
{
    eval_opts o;
    memset(&o, 0, sizeof o);
    o.dtype = MT_FLOAT64;
    o.device = "host";
    o.mode = MT_MODE_FAST_RUN;
    eval_state S;
    memset(&S, 0, sizeof S);
    size_t n = (size_t)argc + 1;
    o.vals = calloc(n, sizeof(char *));
    o.grads = calloc(n, sizeof(char *));
    o.norw = calloc(n, sizeof(char *));
    S.ins = calloc(n, sizeof(input));
    S.names = calloc(n, sizeof(char *));
    S.vars = calloc(2 * n, sizeof(mt_var)); /* inputs, then the --grad targets */
    S.outs = calloc(n, sizeof(mt_var));
    S.shown = calloc(n, sizeof(mt_var));
    S.results = calloc(n, sizeof(mt_array));
    int rc;
    if (!o.vals || !o.grads || !o.norw || !S.ins || !S.names || !S.vars || !S.outs || !S.shown ||
        !S.results) {
        fprintf(stderr, "mltrain: error: out of memory\n");
        rc = EXIT_EVAL;
        goto done;
    }
    rc = parse_args(argc, argv, &o);
    if (rc == -1) {
        eval_usage(stdout);
        rc = 0;
        goto done;
    }
    if (rc) goto done;
    if (mt_device_open(&S.dev, o.device) != MT_OK) {
        fprintf(stderr, "mltrain: error: --device %s: %s\n", o.device, mt_last_error());
        rc = EXIT_USAGE;
        goto done;
    }
    rc = load_inputs(&o, S.ins, S.dev);
    if (!rc) rc = build(&o, &S);
    if (!rc) rc = compile_and_run(&o, &S);
    if (!rc) rc = emit(&o, &S);
done:
    for (size_t i = 0; S.results && i < n; i++)
        mt_array_clear(&S.results[i]);
    for (size_t i = 0; S.ins && i < n; i++)
        mt_array_clear(&S.ins[i].arr);
    mt_function_free(S.f);
    mt_graph_free(S.g);
    mt_device_release(S.dev);
    free(o.vals);
    free(o.grads);
    free(o.norw);
    free(S.ins);
    free(S.names);
    free(S.vars);
    free(S.outs);
    free(S.shown);
    free(S.results);
    return rc;
}
