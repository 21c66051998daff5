/* Stage 4 of loading: the type of an untagged plain scalar, as YAML 1.1 (PyYAML's resolver)
 * gives it, plus Pylearn2's float rule:
 *   null:  "", ~, null, Null, NULL
 *   bool:  true/false, yes/no, on/off in lower, Capitalized or UPPER case (not y/n, as PyYAML)
 *   int:   [-+] then 0b binary, 0x hex, 0 followed by octal digits, or decimal; '_' allowed
 *          between digits (1_000)
 *   float: [-+] then 1.5, 1., .5 (with an optional exponent), 1e-3 (an integer mantissa with
 *          an exponent: Pylearn2's rule), .inf/.Inf/.INF with a sign, .nan/.NaN/.NAN
 *   anything else is a string.
 * Deviations from PyYAML, all in the direction of reading numbers as numbers: the exponent
 * sign is optional (1.5e3) and a sign is allowed before a bare fraction (-.5). Sexagesimal
 * forms (1:30) stay strings. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "config_impl.h"

static bool one_of(const char *s, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(s, *list) == 0) return true;
    return false;
}

static const char *const nulls[] = {"", "~", "null", "Null", "NULL", NULL};
static const char *const trues[] = {"true", "True", "TRUE", "yes", "Yes",
                                    "YES",  "on",   "On",   "ON",  NULL};
static const char *const falses[] = {"false", "False", "FALSE", "no",  "No",
                                     "NO",    "off",   "Off",   "OFF", NULL};

/* Copies the digits of s (without '_') into buf; false if s has a char outside `digits`,
 * no digit at all, or does not fit. */
static bool digits_only(const char *s, const char *digits, char *buf, size_t cap)
{
    size_t n = 0;
    bool any = false;
    for (; *s; s++) {
        if (*s == '_') continue;
        if (!strchr(digits, *s)) return false;
        if (n + 1 >= cap) return false;
        buf[n++] = *s;
        any = true;
    }
    buf[n] = '\0';
    return any;
}

bool mt__parse_int(const char *text, int64_t *out, bool *overflow)
{
    *overflow = false;
    const char *s = text;
    bool neg = false;
    if (*s == '-' || *s == '+') neg = *s++ == '-';
    if (!isdigit((unsigned char)*s)) return false;
    char buf[160];
    int base;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        if (!digits_only(s + 2, "0123456789abcdefABCDEF", buf, sizeof buf)) return false;
        base = 16;
    } else if (s[0] == '0' && (s[1] == 'b' || s[1] == 'B')) {
        if (!digits_only(s + 2, "01", buf, sizeof buf)) return false;
        base = 2;
    } else if (s[0] == '0' && s[1] != '\0') {
        if (!digits_only(s + 1, "01234567", buf, sizeof buf)) return false;
        base = 8;
    } else {
        if (s[0] == '_' || !digits_only(s, "0123456789", buf, sizeof buf)) return false;
        base = 10;
    }
    errno = 0;
    char *end;
    unsigned long long u = strtoull(buf, &end, base);
    if (errno == ERANGE || *end || (neg ? u > (1ULL << 63) : u > (uint64_t)INT64_MAX)) {
        *overflow = true;
        return true; /* it is an integer, just too big */
    }
    *out = neg ? (int64_t)(0 - u) : (int64_t)u;
    return true;
}

/* Pure digits and '_' with at least one digit (the first char must be a digit when
 * `lead_digit`). */
static bool digit_run(const char *s, size_t n, bool lead_digit)
{
    bool any = false;
    for (size_t i = 0; i < n; i++) {
        if (isdigit((unsigned char)s[i]))
            any = true;
        else if (s[i] != '_' || (i == 0 && lead_digit))
            return false;
    }
    return any;
}

/* The YAML float forms listed at the top; *out gets the value. */
static bool parse_yaml_float(const char *text, double *out)
{
    const char *s = text;
    bool neg = false;
    if (*s == '-' || *s == '+') neg = *s++ == '-';
    if (strcmp(s, ".inf") == 0 || strcmp(s, ".Inf") == 0 || strcmp(s, ".INF") == 0) {
        *out = neg ? -INFINITY : INFINITY;
        return true;
    }
    if (s == text && (strcmp(s, ".nan") == 0 || strcmp(s, ".NaN") == 0 || strcmp(s, ".NAN") == 0)) {
        *out = NAN;
        return true;
    }
    const char *e = strpbrk(s, "eE");
    size_t mlen = e ? (size_t)(e - s) : strlen(s);
    const char *dot = memchr(s, '.', mlen);
    if (dot) {
        size_t ilen = (size_t)(dot - s), flen = mlen - ilen - 1;
        if (ilen > 0 && !digit_run(s, ilen, true)) return false;
        for (size_t i = 0; i < flen; i++)
            if (!isdigit((unsigned char)dot[1 + i]) && dot[1 + i] != '_') return false;
        if (ilen == 0 && (flen == 0 || !isdigit((unsigned char)dot[1]))) return false;
    } else if (!e || !digit_run(s, mlen, true)) {
        return false; /* no dot: a number needs an exponent to be a float */
    }
    if (e) {
        const char *x = e + 1;
        if (*x == '-' || *x == '+') x++;
        if (!*x) return false;
        for (const char *q = x; *q; q++)
            if (!isdigit((unsigned char)*q)) return false;
    }
    char buf[256];
    size_t n = 0;
    for (const char *q = text; *q && n + 1 < sizeof buf; q++)
        if (*q != '_') buf[n++] = *q;
    buf[n] = '\0';
    *out = strtod(buf, NULL);
    return true;
}

mt_status mt__scalar_type(mt_cfg_node *node, const char *text, size_t len)
{
    if (len != strlen(text) || len > 200) { /* embedded NUL or long: a string */
        node->kind = MT_CFG_STRING;
        return MT_OK;
    }
    if (one_of(text, nulls)) {
        node->kind = MT_CFG_NULL;
        return MT_OK;
    }
    if (one_of(text, trues) || one_of(text, falses)) {
        node->kind = MT_CFG_BOOL;
        node->b = one_of(text, trues);
        return MT_OK;
    }
    int64_t iv;
    bool overflow;
    if (mt__parse_int(text, &iv, &overflow)) {
        if (overflow)
            return mt_cfg_error(MT_ERR_FORMAT, node->loc,
                                "integer '%s' is out of the 64-bit range (write it as a float, "
                                "e.g. %s.0, or quote it)",
                                text, text);
        node->kind = MT_CFG_INT;
        node->i = iv;
        node->f = (double)iv;
        return MT_OK;
    }
    double fv;
    if (parse_yaml_float(text, &fv)) {
        node->kind = MT_CFG_FLOAT;
        node->f = fv;
        return MT_OK;
    }
    node->kind = MT_CFG_STRING;
    return MT_OK;
}

bool mt__parse_float(const char *text, double *out)
{
    int64_t iv;
    bool overflow;
    if (parse_yaml_float(text, out)) return true;
    if (mt__parse_int(text, &iv, &overflow) && !overflow) {
        *out = (double)iv;
        return true;
    }
    /* Anything C reads as a whole number ("1E5", "inf", "  2.5"). */
    char *end;
    double v = strtod(text, &end);
    if (end == text) return false;
    while (isspace((unsigned char)*end))
        end++;
    if (*end) return false;
    *out = v;
    return true;
}
