/* The expression language's tokenizer and recursive-descent parser (Python expression grammar
 * and precedence; docs/expressions.md). It only builds the syntax tree: every syntax error is
 * reported, with the span of the offending token, before evaluation creates any graph node.
 * Nesting (every bracketed or conditional sub-expression, unary operators, `**` chains and
 * trailers such as calls, subscripts and attributes) is counted against max_depth so
 * garbage input can neither overflow the stack here nor in the evaluator, which recurses along
 * the same tree. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parse_impl.h"

/* ---------------------------------------------------------------- errors and suggestions */

bool mt__perr(mt__pctx *P, mt_status code, int32_t begin, int32_t end, int32_t point,
              const char *fmt, ...)
{
    if (P->failed) return false;
    P->failed = true;
    mt_parse_error *e = P->err;
    e->status = code;
    if (begin < 0) begin = 0;
    if (begin > P->len) begin = P->len;
    if (end < begin) end = begin;
    if (end > P->len) end = P->len;
    if (point < begin) point = begin;
    if (point > P->len) point = P->len;
    e->begin = begin;
    e->end = end;
    e->point = point;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
    return false;
}

void mt__suggest_init(mt__suggest *s, const char *name)
{
    s->name = name;
    s->best = NULL;
    s->best_d = 0;
}

void mt__suggest_offer(mt__suggest *s, const char *candidate)
{
    if (!candidate || !s->name || !strcmp(candidate, s->name)) return;
    size_t len = strlen(s->name);
    int32_t cap = len <= 3 ? 1 : len <= 6 ? 2 : 3;
    int32_t d = mt_edit_distance(s->name, candidate, cap, false);
    if (d > cap) return;
    if (!s->best || d < s->best_d) {
        s->best = candidate;
        s->best_d = d;
    }
}

/* ---------------------------------------------------------------- tokenizer */

/* clang-format off */
static const struct {
    const char *text;
    mt__pop op;
} op_table[] = {
    /* longest first */
    {"**=", POP_AUGASSIGN}, {"//=", POP_AUGASSIGN}, {">>=", POP_AUGASSIGN},
    {"<<=", POP_AUGASSIGN}, {"...", POP_ELLIPSIS},
    {"**", POP_DSTAR}, {"//", POP_DSLASH}, {"<<", POP_LSHIFT}, {">>", POP_RSHIFT},
    {"<=", POP_LE}, {">=", POP_GE}, {"==", POP_EQ}, {"!=", POP_NE}, {":=", POP_WALRUS},
    {"->", POP_ARROW}, {"+=", POP_AUGASSIGN}, {"-=", POP_AUGASSIGN}, {"*=", POP_AUGASSIGN},
    {"/=", POP_AUGASSIGN}, {"%=", POP_AUGASSIGN}, {"@=", POP_AUGASSIGN}, {"&=", POP_AUGASSIGN},
    {"|=", POP_AUGASSIGN}, {"^=", POP_AUGASSIGN},
    {"(", POP_LPAR}, {")", POP_RPAR}, {"[", POP_LBRACK}, {"]", POP_RBRACK}, {"{", POP_LBRACE},
    {"}", POP_RBRACE}, {",", POP_COMMA}, {":", POP_COLON}, {".", POP_DOT}, {";", POP_SEMI},
    {"=", POP_ASSIGN}, {"+", POP_PLUS}, {"-", POP_MINUS}, {"*", POP_STAR}, {"/", POP_SLASH},
    {"%", POP_PERCENT}, {"@", POP_AT}, {"~", POP_TILDE}, {"&", POP_AMP}, {"|", POP_PIPE},
    {"^", POP_CARET}, {"<", POP_LT}, {">", POP_GT},
};

static const struct {
    const char *word;
    mt__kw kw;
} kw_table[] = {
    {"if", KW_IF}, {"else", KW_ELSE}, {"and", KW_AND}, {"or", KW_OR}, {"not", KW_NOT},
    {"True", KW_TRUE}, {"False", KW_FALSE}, {"None", KW_NONE}, {"in", KW_IN}, {"is", KW_IS},
    {"lambda", KW_LAMBDA}, {"as", KW_OTHER}, {"assert", KW_OTHER}, {"async", KW_OTHER},
    {"await", KW_OTHER}, {"break", KW_OTHER}, {"class", KW_OTHER}, {"continue", KW_OTHER},
    {"def", KW_OTHER}, {"del", KW_OTHER}, {"elif", KW_OTHER}, {"except", KW_OTHER},
    {"finally", KW_OTHER}, {"for", KW_OTHER}, {"from", KW_OTHER}, {"global", KW_OTHER},
    {"import", KW_OTHER}, {"nonlocal", KW_OTHER}, {"pass", KW_OTHER}, {"raise", KW_OTHER},
    {"return", KW_OTHER}, {"try", KW_OTHER}, {"while", KW_OTHER}, {"with", KW_OTHER},
    {"yield", KW_OTHER},
};
/* clang-format on */

static bool is_ident_start(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_ident_char(int c)
{
    return is_ident_start(c) || (c >= '0' && c <= '9');
}

static mt__tok *new_tok(mt__pctx *P, mt__tok_kind kind, int32_t begin, int32_t end)
{
    if (P->ntoks % 256 == 0) {
        mt__tok *t = mt_realloc(P->toks, (size_t)(P->ntoks + 256) * sizeof(mt__tok));
        if (!t) {
            mt__perr(P, MT_ERR_NOMEM, begin, end, begin, "out of memory while tokenizing");
            return NULL;
        }
        P->toks = t;
    }
    mt__tok *t = &P->toks[P->ntoks++];
    memset(t, 0, sizeof(*t));
    t->kind = kind;
    t->begin = begin;
    t->end = end;
    return t;
}

/* Digits of `base` with single underscores between them, starting at *i. Returns the number
 * of digits (0 if none); false after an error. */
static bool scan_digits(mt__pctx *P, int32_t start, int32_t *i, int base, int32_t *ndigits)
{
    const char *s = P->text;
    int32_t n = 0;
    while (*i < P->len) {
        int c = (unsigned char)s[*i];
        bool digit = base == 16 ? isxdigit(c) : (c >= '0' && c < '0' + (base < 10 ? base : 10));
        if (digit) {
            n++;
            (*i)++;
        } else if (c == '_') {
            int next = *i + 1 < P->len ? (unsigned char)s[*i + 1] : 0;
            bool nd =
                base == 16 ? isxdigit(next) : (next >= '0' && next < '0' + (base < 10 ? base : 10));
            if (!nd)
                return mt__perr(P, MT_ERR_INVALID, start, *i + 1, *i,
                                "invalid number: '_' must be between digits");
            (*i)++;
        } else {
            break;
        }
    }
    *ndigits = n;
    return true;
}

static bool lex_number(mt__pctx *P, int32_t *pi)
{
    const char *s = P->text;
    int32_t start = *pi, i = *pi, nd = 0;
    bool is_float = false;
    int base = 10;
    if (s[i] == '0' && i + 1 < P->len && strchr("xXoObB", s[i + 1])) {
        char c = (char)tolower((unsigned char)s[i + 1]);
        base = c == 'x' ? 16 : c == 'o' ? 8 : 2;
        i += 2;
        if (i < P->len && s[i] == '_') i++; /* 0x_ff is valid Python */
        if (!scan_digits(P, start, &i, base, &nd)) return false;
        if (nd == 0)
            return mt__perr(P, MT_ERR_INVALID, start, i, start, "invalid %s literal",
                            base == 16  ? "hexadecimal"
                            : base == 8 ? "octal"
                                        : "binary");
    } else {
        if (s[i] != '.' && !scan_digits(P, start, &i, 10, &nd)) return false;
        if (i < P->len && s[i] == '.') {
            is_float = true;
            i++;
            int32_t fd = 0;
            if (i < P->len && s[i] >= '0' && s[i] <= '9' && !scan_digits(P, start, &i, 10, &fd))
                return false;
        }
        if (i < P->len && (s[i] == 'e' || s[i] == 'E')) {
            int32_t e = i + 1;
            if (e < P->len && (s[e] == '+' || s[e] == '-')) e++;
            int32_t ed = 0;
            if (e < P->len && s[e] >= '0' && s[e] <= '9') {
                if (!scan_digits(P, start, &e, 10, &ed)) return false;
            }
            if (ed == 0)
                return mt__perr(P, MT_ERR_INVALID, start, e, start,
                                "invalid number: exponent has no digits");
            is_float = true;
            i = e;
        }
    }
    if (i < P->len && (s[i] == 'j' || s[i] == 'J'))
        return mt__perr(P, MT_ERR_INVALID, start, i + 1, start,
                        "complex numbers are not supported");
    if (i < P->len && is_ident_char((unsigned char)s[i])) {
        int32_t e = i;
        while (e < P->len && is_ident_char((unsigned char)s[e]))
            e++;
        return mt__perr(P, MT_ERR_INVALID, start, e, i, "invalid %s literal",
                        base == 16  ? "hexadecimal"
                        : base == 8 ? "octal"
                        : base == 2 ? "binary"
                                    : "decimal");
    }
    /* the literal without underscores */
    char buf[512];
    int32_t n = 0;
    for (int32_t k = start; k < i; k++) {
        if (s[k] == '_') continue;
        if (n >= (int32_t)sizeof(buf) - 1)
            return mt__perr(P, MT_ERR_RANGE, start, i, start, "numeric literal is too long");
        buf[n++] = s[k];
    }
    buf[n] = 0;
    mt__tok *t = new_tok(P, is_float ? TK_FLOAT : TK_INT, start, i);
    if (!t) return false;
    if (is_float) {
        t->f = strtod(buf, NULL); /* overflow gives inf, as in Python */
    } else {
        if (base == 10 && n > 1 && buf[0] == '0') {
            for (int32_t k = 1; k < n; k++)
                if (buf[k] != '0')
                    return mt__perr(P, MT_ERR_INVALID, start, i, start,
                                    "leading zeros in decimal integer literals are not "
                                    "permitted; use an 0o prefix for octal integers");
        }
        errno = 0;
        unsigned long long v = strtoull(base == 10 ? buf : buf + 2, NULL, base);
        if (errno == ERANGE)
            return mt__perr(P, MT_ERR_RANGE, start, i, start,
                            "integer literal is too large (more than 64 bits)");
        t->u = v;
    }
    *pi = i;
    return true;
}

static bool lex_string(mt__pctx *P, int32_t *pi)
{
    const char *s = P->text;
    int32_t start = *pi;
    char q = s[start];
    if (start + 2 < P->len && s[start + 1] == q && s[start + 2] == q)
        return mt__perr(P, MT_ERR_INVALID, start, start + 3, start,
                        "triple-quoted strings are not supported");
    char *buf = mt_arena_alloc(&P->arena, (size_t)(P->len - start) + 1, 1);
    if (!buf) return mt__perr(P, MT_ERR_NOMEM, start, start + 1, start, "out of memory");
    int32_t n = 0, i = start + 1;
    for (;;) {
        if (i >= P->len || s[i] == '\n')
            return mt__perr(P, MT_ERR_INVALID, start, i, start, "unterminated string literal");
        char c = s[i];
        if (c == q) break;
        if (c == '\\') {
            if (i + 1 >= P->len)
                return mt__perr(P, MT_ERR_INVALID, start, i + 1, start,
                                "unterminated string literal");
            char e = s[i + 1];
            switch (e) {
            case 'n':
                c = '\n';
                break;
            case 't':
                c = '\t';
                break;
            case '\\':
            case '\'':
            case '"':
                c = e;
                break;
            default:
                return mt__perr(P, MT_ERR_INVALID, i, i + 2, i,
                                "unsupported escape sequence in string literal");
            }
            i++;
        }
        buf[n++] = c;
        i++;
    }
    buf[n] = 0;
    mt__tok *t = new_tok(P, TK_STR, start, i + 1);
    if (!t) return false;
    t->s = buf;
    t->slen = n;
    *pi = i + 1;
    return true;
}

static bool lex_name(mt__pctx *P, int32_t *pi)
{
    const char *s = P->text;
    int32_t start = *pi, i = start;
    while (i < P->len && is_ident_char((unsigned char)s[i]))
        i++;
    int32_t n = i - start;
    if (i < P->len && (s[i] == '\'' || s[i] == '"') && n <= 2) {
        bool prefix = true;
        for (int32_t k = start; k < i; k++)
            prefix = prefix && strchr("rRbBfFuU", s[k]);
        if (prefix)
            return mt__perr(P, MT_ERR_INVALID, start, i + 1, start,
                            "string prefixes (r, b, f, u) are not supported");
    }
    char *name = mt_arena_alloc(&P->arena, (size_t)n + 1, 1);
    if (!name) return mt__perr(P, MT_ERR_NOMEM, start, i, start, "out of memory");
    memcpy(name, s + start, (size_t)n);
    name[n] = 0;
    mt__tok *t = new_tok(P, TK_NAME, start, i);
    if (!t) return false;
    t->s = name;
    t->slen = n;
    for (size_t k = 0; k < sizeof(kw_table) / sizeof(kw_table[0]); k++)
        if (!strcmp(name, kw_table[k].word)) t->kw = kw_table[k].kw;
    *pi = i;
    return true;
}

static bool lex_all(mt__pctx *P)
{
    const char *s = P->text;
    int32_t i = 0;
    while (i < P->len) {
        unsigned char c = (unsigned char)s[i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
            i++;
            continue;
        }
        if (c == '#') { /* comment to the end of the line */
            while (i < P->len && s[i] != '\n')
                i++;
            continue;
        }
        if (c == '\\' && i + 1 < P->len && (s[i + 1] == '\n' || s[i + 1] == '\r')) {
            i += 2;
            continue;
        }
        bool ok;
        if (is_ident_start(c)) {
            ok = lex_name(P, &i);
        } else if ((c >= '0' && c <= '9') ||
                   (c == '.' && i + 1 < P->len && s[i + 1] >= '0' && s[i + 1] <= '9')) {
            ok = lex_number(P, &i);
        } else if (c == '\'' || c == '"') {
            ok = lex_string(P, &i);
        } else {
            size_t k = 0, nops = sizeof(op_table) / sizeof(op_table[0]);
            for (; k < nops; k++) {
                size_t l = strlen(op_table[k].text);
                if ((int32_t)l <= P->len - i && !memcmp(s + i, op_table[k].text, l)) break;
            }
            if (k == nops) {
                if (c == '!')
                    return mt__perr(P, MT_ERR_INVALID, i, i + 1, i,
                                    "unexpected '!' (use 'not' or '!=')");
                if (c >= 0x80)
                    return mt__perr(P, MT_ERR_INVALID, i, i + 1, i,
                                    "unexpected non-ASCII character (byte 0x%02x); names are "
                                    "ASCII identifiers",
                                    c);
                if (c < 0x20 || c == 0x7f)
                    return mt__perr(P, MT_ERR_INVALID, i, i + 1, i,
                                    "unexpected control character (byte 0x%02x)", c);
                return mt__perr(P, MT_ERR_INVALID, i, i + 1, i, "unexpected character '%c'", c);
            }
            int32_t l = (int32_t)strlen(op_table[k].text);
            mt__tok *t = new_tok(P, TK_OP, i, i + l);
            ok = t != NULL;
            if (t) t->op = op_table[k].op;
            i += l;
        }
        if (!ok) return false;
    }
    return new_tok(P, TK_END, P->len, P->len) != NULL;
}

/* ---------------------------------------------------------------- parser helpers */

static mt__tok *peek(mt__pctx *P)
{
    return &P->toks[P->pos];
}

static mt__tok *advance(mt__pctx *P)
{
    mt__tok *t = &P->toks[P->pos];
    if (t->kind != TK_END) P->pos++;
    return t;
}

static bool is_op(const mt__tok *t, mt__pop op)
{
    return t->kind == TK_OP && t->op == op;
}

static bool is_kw(const mt__tok *t, mt__kw kw)
{
    return t->kind == TK_NAME && t->kw == kw;
}

/* Short display text of a token for messages. */
static void tok_text(mt__pctx *P, const mt__tok *t, char *buf, size_t len)
{
    if (t->kind == TK_END) {
        snprintf(buf, len, "end of expression");
        return;
    }
    int32_t n = t->end - t->begin;
    if (n > 24) n = 24;
    char tmp[32];
    int32_t k = 0;
    for (int32_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)P->text[t->begin + i];
        tmp[k++] = (c < 0x20 || c >= 0x7f) ? '?' : (char)c;
    }
    tmp[k] = 0;
    snprintf(buf, len, "'%s%s'", tmp, t->end - t->begin > 24 ? "..." : "");
}

static bool err_tok(mt__pctx *P, const mt__tok *t, const char *what)
{
    char tt[48];
    tok_text(P, t, tt, sizeof tt);
    if (t->kind == TK_END && P->open_tok >= 0) { /* the real mistake is the open bracket */
        const mt__tok *o = &P->toks[P->open_tok];
        return mt__perr(P, MT_ERR_INVALID, o->begin, o->end, o->begin, "'%c' was never closed",
                        P->text[o->begin]);
    }
    if (t->kind == TK_END)
        return mt__perr(P, MT_ERR_INVALID, t->begin, t->end, t->begin,
                        "unexpected end of expression%s%s", what ? ": " : "", what ? what : "");
    if (t->kind == TK_NAME && t->kw == KW_OTHER)
        return mt__perr(P, MT_ERR_INVALID, t->begin, t->end, t->begin,
                        "'%s' is not supported in expressions", t->s);
    return mt__perr(P, MT_ERR_INVALID, t->begin, t->end, t->begin, "unexpected %s%s%s", tt,
                    what ? ": " : "", what ? what : "");
}

static mt__ast *new_ast(mt__pctx *P, mt__ast_kind kind, int32_t begin, int32_t end, int32_t point)
{
    mt__ast *a = mt_arena_alloc(&P->arena, sizeof(mt__ast), _Alignof(mt__ast));
    if (!a) {
        mt__perr(P, MT_ERR_NOMEM, begin, end, point, "out of memory while parsing");
        return NULL;
    }
    memset(a, 0, sizeof(*a));
    a->kind = kind;
    a->begin = begin;
    a->end = end;
    a->point = point;
    return a;
}

/* A growable list of children collected while parsing, copied into the arena at the end. */
typedef struct kidvec {
    mt__ast **kids;
    mt__pop *ops;
    int32_t *pos;
    const char **kw;
    int32_t *kwpos;
    int32_t n, cap;
} kidvec;

static bool kv_push(mt__pctx *P, kidvec *v, mt__ast *kid, mt__pop op, int32_t pos, const char *kw,
                    int32_t kwpos)
{
    if (v->n == v->cap) {
        int32_t cap = v->cap ? v->cap * 2 : 8;
        mt__ast **k = mt_realloc(v->kids, (size_t)cap * sizeof(*k));
        if (k) v->kids = k;
        mt__pop *o = k ? mt_realloc(v->ops, (size_t)cap * sizeof(*o)) : NULL;
        if (o) v->ops = o;
        int32_t *p = o ? mt_realloc(v->pos, (size_t)cap * sizeof(*p)) : NULL;
        if (p) v->pos = p;
        const char **w = p ? mt_realloc(v->kw, (size_t)cap * sizeof(*w)) : NULL;
        if (w) v->kw = w;
        int32_t *wp = w ? mt_realloc(v->kwpos, (size_t)cap * sizeof(*wp)) : NULL;
        if (wp) v->kwpos = wp;
        if (!wp) return mt__perr(P, MT_ERR_NOMEM, 0, 0, 0, "out of memory while parsing");
        v->cap = cap;
    }
    v->kids[v->n] = kid;
    v->ops[v->n] = op;
    v->pos[v->n] = pos;
    v->kw[v->n] = kw;
    v->kwpos[v->n] = kwpos;
    v->n++;
    return true;
}

static void kv_free(kidvec *v)
{
    mt_free(v->kids);
    mt_free(v->ops);
    mt_free(v->pos);
    mt_free(v->kw);
    mt_free(v->kwpos);
}

/* Moves the collected children into node a (ops: v->ops[1..n) are the operators between). */
static bool kv_store(mt__pctx *P, kidvec *v, mt__ast *a, bool with_ops, bool with_kw)
{
    a->n = v->n;
    a->kids = mt_arena_alloc(&P->arena, (size_t)(v->n ? v->n : 1) * sizeof(mt__ast *),
                              _Alignof(mt__ast *));
    if (!a->kids) return mt__perr(P, MT_ERR_NOMEM, a->begin, a->end, a->point, "out of memory");
    if (v->n) memcpy(a->kids, v->kids, (size_t)v->n * sizeof(mt__ast *));
    if (with_ops && v->n > 1) {
        a->ops =
            mt_arena_alloc(&P->arena, (size_t)(v->n - 1) * sizeof(mt__pop), _Alignof(mt__pop));
        a->op_pos = mt_arena_alloc(&P->arena, (size_t)(v->n - 1) * sizeof(int32_t), 4);
        if (!a->ops || !a->op_pos)
            return mt__perr(P, MT_ERR_NOMEM, a->begin, a->end, a->point, "out of memory");
        for (int32_t i = 1; i < v->n; i++) {
            a->ops[i - 1] = v->ops[i];
            a->op_pos[i - 1] = v->pos[i];
        }
    }
    if (with_kw && v->n) {
        a->kwnames = mt_arena_alloc(&P->arena, (size_t)v->n * sizeof(char *), _Alignof(char *));
        a->kwpos = mt_arena_alloc(&P->arena, (size_t)v->n * sizeof(int32_t), 4);
        if (!a->kwnames || !a->kwpos)
            return mt__perr(P, MT_ERR_NOMEM, a->begin, a->end, a->point, "out of memory");
        memcpy(a->kwnames, v->kw, (size_t)v->n * sizeof(char *));
        memcpy(a->kwpos, v->kwpos, (size_t)v->n * sizeof(int32_t));
    }
    return true;
}

static bool enter(mt__pctx *P, const mt__tok *t)
{
    if (++P->depth > P->max_depth)
        return mt__perr(P, MT_ERR_RANGE, t->begin, t->end, t->begin,
                        "expression is nested too deeply (more than %d levels)", (int)P->max_depth);
    return true;
}

static mt__ast *parse_expr(mt__pctx *P);
static mt__ast *parse_factor(mt__pctx *P);

/* ---------------------------------------------------------------- atoms and trailers */

/* Items of a (...) or [...] display up to `close`; *trailing: ended with a comma. */
static bool parse_items(mt__pctx *P, kidvec *v, mt__pop close, bool *trailing)
{
    *trailing = false;
    while (!is_op(peek(P), close) && peek(P)->kind != TK_END) {
        if (is_op(peek(P), POP_STAR)) return err_tok(P, peek(P), "unpacking is not supported");
        mt__ast *e = parse_expr(P);
        if (!e || !kv_push(P, v, e, POP_NONE, 0, NULL, 0)) return false;
        if (is_kw(peek(P), KW_OTHER) && !strcmp(peek(P)->s, "for"))
            return mt__perr(P, MT_ERR_INVALID, peek(P)->begin, peek(P)->end, peek(P)->begin,
                            "comprehensions are not supported");
        if (!is_op(peek(P), POP_COMMA)) break;
        advance(P);
        *trailing = true;
        if (is_op(peek(P), close)) break;
        *trailing = false;
    }
    return true;
}

static mt__ast *parse_display(mt__pctx *P, const mt__tok *open)
{
    bool paren = open->op == POP_LPAR;
    mt__pop close = paren ? POP_RPAR : POP_RBRACK;
    kidvec v = {0};
    bool trailing;
    mt__ast *a = NULL;
    int32_t saved_open = P->open_tok;
    P->open_tok = (int32_t)(open - P->toks);
    if (!parse_items(P, &v, close, &trailing)) goto done;
    mt__tok *t = peek(P);
    if (!is_op(t, close)) {
        if (t->kind == TK_END)
            mt__perr(P, MT_ERR_INVALID, open->begin, open->end, open->begin,
                     "'%s' was never closed", paren ? "(" : "[");
        else
            err_tok(P, t, paren ? "expected ',' or ')'" : "expected ',' or ']'");
        goto done;
    }
    advance(P);
    if (paren && v.n == 1 && !trailing) { /* (expr): the span includes the parentheses */
        a = v.kids[0];
        a->begin = open->begin;
        a->end = t->end;
        goto done;
    }
    a = new_ast(P, paren ? A_TUPLE : A_LIST, open->begin, t->end, open->begin);
    if (a && !kv_store(P, &v, a, false, false)) a = NULL;
done:
    P->open_tok = saved_open;
    kv_free(&v);
    return P->failed ? NULL : a;
}

static mt__ast *parse_atom(mt__pctx *P)
{
    mt__tok *t = peek(P);
    switch (t->kind) {
    case TK_INT:
    case TK_FLOAT: {
        advance(P);
        mt__ast *a = new_ast(P, t->kind == TK_INT ? A_INT : A_FLOAT, t->begin, t->end, t->begin);
        if (a) {
            a->u = t->u;
            a->f = t->f;
        }
        return a;
    }
    case TK_STR: {
        advance(P);
        if (peek(P)->kind == TK_STR) {
            err_tok(P, peek(P), "implicit string concatenation is not supported");
            return NULL;
        }
        mt__ast *a = new_ast(P, A_STR, t->begin, t->end, t->begin);
        if (a) {
            a->s = t->s;
            a->slen = t->slen;
        }
        return a;
    }
    case TK_NAME: {
        mt__ast_kind k;
        switch (t->kw) {
        case KW_NONE_:
            k = A_NAME;
            break;
        case KW_TRUE:
            k = A_TRUE;
            break;
        case KW_FALSE:
            k = A_FALSE;
            break;
        case KW_NONE:
            k = A_NONE;
            break;
        case KW_LAMBDA:
            mt__perr(P, MT_ERR_INVALID, t->begin, t->end, t->begin,
                     "'lambda' is not supported in expressions");
            return NULL;
        default:
            err_tok(P, t, "expected an expression");
            return NULL;
        }
        advance(P);
        mt__ast *a = new_ast(P, k, t->begin, t->end, t->begin);
        if (a) a->s = t->s;
        return a;
    }
    case TK_OP:
        if (t->op == POP_LPAR || t->op == POP_LBRACK) {
            advance(P);
            return parse_display(P, t);
        }
        if (t->op == POP_ELLIPSIS) {
            advance(P);
            return new_ast(P, A_ELLIPSIS, t->begin, t->end, t->begin);
        }
        if (t->op == POP_LBRACE) {
            mt__perr(P, MT_ERR_INVALID, t->begin, t->end, t->begin,
                     "dict and set displays are not supported");
            return NULL;
        }
        err_tok(P, t, "expected an expression");
        return NULL;
    default:
        err_tok(P, t, "expected an expression");
        return NULL;
    }
}

static mt__ast *parse_call(mt__pctx *P, mt__ast *callee, const mt__tok *open)
{
    kidvec v = {0};
    mt__ast *a = NULL;
    bool seen_kw = false;
    int32_t saved_open = P->open_tok;
    P->open_tok = (int32_t)(open - P->toks);
    if (!kv_push(P, &v, callee, POP_NONE, 0, NULL, 0)) goto done;
    while (!is_op(peek(P), POP_RPAR)) {
        mt__tok *t = peek(P);
        if (is_op(t, POP_STAR) || is_op(t, POP_DSTAR)) {
            err_tok(P, t, "argument unpacking is not supported");
            goto done;
        }
        const char *kw = NULL;
        int32_t kwpos = 0;
        if (t->kind == TK_NAME && t->kw == KW_NONE_ && is_op(&P->toks[P->pos + 1], POP_ASSIGN)) {
            kw = t->s;
            kwpos = t->begin;
            advance(P);
            advance(P);
            for (int32_t i = 1; i < v.n; i++)
                if (v.kw[i] && !strcmp(v.kw[i], kw)) {
                    mt__perr(P, MT_ERR_INVALID, t->begin, t->end, t->begin,
                             "keyword argument repeated: '%s'", kw);
                    goto done;
                }
            seen_kw = true;
        } else if (seen_kw) {
            mt__ast *e = parse_expr(P);
            if (e)
                mt__perr(P, MT_ERR_INVALID, e->begin, e->end, e->begin,
                         "positional argument follows keyword argument");
            goto done;
        }
        mt__ast *e = parse_expr(P);
        if (!e || !kv_push(P, &v, e, POP_NONE, 0, kw, kwpos)) goto done;
        if (is_kw(peek(P), KW_OTHER) && !strcmp(peek(P)->s, "for")) {
            mt__perr(P, MT_ERR_INVALID, peek(P)->begin, peek(P)->end, peek(P)->begin,
                     "comprehensions are not supported");
            goto done;
        }
        if (!is_op(peek(P), POP_COMMA)) break;
        advance(P);
    }
    mt__tok *t = peek(P);
    if (!is_op(t, POP_RPAR)) {
        if (t->kind == TK_END)
            mt__perr(P, MT_ERR_INVALID, open->begin, open->end, open->begin,
                     "'(' was never closed");
        else if (is_op(t, POP_ASSIGN))
            err_tok(P, t, "a keyword argument name must be an identifier");
        else
            err_tok(P, t, "expected ',' or ')' in the argument list");
        goto done;
    }
    advance(P);
    a = new_ast(P, A_CALL, callee->begin, t->end,
                callee->kind == A_ATTR ? callee->point : callee->begin);
    if (a && !kv_store(P, &v, a, false, true)) a = NULL;
done:
    P->open_tok = saved_open;
    kv_free(&v);
    return P->failed ? NULL : a;
}

/* One subscript item: an expression or a slice lo:hi:step. */
static mt__ast *parse_subscript_item(mt__pctx *P)
{
    mt__tok *t = peek(P);
    mt__ast *lo = NULL, *hi = NULL, *st = NULL;
    if (!is_op(t, POP_COLON)) {
        lo = parse_expr(P);
        if (!lo) return NULL;
        if (!is_op(peek(P), POP_COLON)) return lo;
    }
    int32_t begin = lo ? lo->begin : t->begin;
    int32_t end = peek(P)->end;
    advance(P); /* ':' */
    mt__tok *n = peek(P);
    if (!is_op(n, POP_COLON) && !is_op(n, POP_COMMA) && !is_op(n, POP_RBRACK)) {
        hi = parse_expr(P);
        if (!hi) return NULL;
        end = hi->end;
    }
    if (is_op(peek(P), POP_COLON)) {
        end = peek(P)->end;
        advance(P);
        n = peek(P);
        if (!is_op(n, POP_COMMA) && !is_op(n, POP_RBRACK)) {
            st = parse_expr(P);
            if (!st) return NULL;
            end = st->end;
        }
    }
    mt__ast *a = new_ast(P, A_SLICE, begin, end, begin);
    if (!a) return NULL;
    a->n = 3;
    a->kids = mt_arena_alloc(&P->arena, 3 * sizeof(mt__ast *), _Alignof(mt__ast *));
    if (!a->kids) {
        mt__perr(P, MT_ERR_NOMEM, begin, end, begin, "out of memory");
        return NULL;
    }
    a->kids[0] = lo;
    a->kids[1] = hi;
    a->kids[2] = st;
    return a;
}

static mt__ast *parse_subscript(mt__pctx *P, mt__ast *base, const mt__tok *open)
{
    kidvec v = {0};
    mt__ast *a = NULL;
    bool trailing = false;
    int32_t saved_open = P->open_tok;
    P->open_tok = (int32_t)(open - P->toks);
    if (!kv_push(P, &v, base, POP_NONE, 0, NULL, 0)) goto done;
    if (is_op(peek(P), POP_RBRACK)) {
        err_tok(P, peek(P), "empty subscript");
        goto done;
    }
    for (;;) {
        mt__ast *e = parse_subscript_item(P);
        if (!e || !kv_push(P, &v, e, POP_NONE, 0, NULL, 0)) goto done;
        trailing = false;
        if (!is_op(peek(P), POP_COMMA)) break;
        advance(P);
        trailing = true;
        if (is_op(peek(P), POP_RBRACK)) break;
    }
    mt__tok *t = peek(P);
    if (!is_op(t, POP_RBRACK)) {
        if (t->kind == TK_END)
            mt__perr(P, MT_ERR_INVALID, open->begin, open->end, open->begin,
                     "'[' was never closed");
        else
            err_tok(P, t, "expected ',' or ']' in the subscript");
        goto done;
    }
    advance(P);
    a = new_ast(P, A_SUBSCRIPT, base->begin, t->end, open->begin);
    if (a && !kv_store(P, &v, a, false, false)) a = NULL;
    if (a) a->trailing_comma = trailing;
done:
    P->open_tok = saved_open;
    kv_free(&v);
    return P->failed ? NULL : a;
}

/* atom followed by calls, subscripts and attributes. Each trailer deepens the tree, so it
 * counts against the nesting limit. */
static mt__ast *parse_postfix(mt__pctx *P)
{
    mt__ast *a = parse_atom(P);
    int32_t extra = 0;
    while (a) {
        mt__tok *t = peek(P);
        if (!is_op(t, POP_LPAR) && !is_op(t, POP_LBRACK) && !is_op(t, POP_DOT)) break;
        extra++;
        if (!enter(P, t)) {
            a = NULL;
            break;
        }
        advance(P);
        if (t->op == POP_LPAR) {
            a = parse_call(P, a, t);
        } else if (t->op == POP_LBRACK) {
            a = parse_subscript(P, a, t);
        } else {
            mt__tok *n = peek(P);
            if (n->kind != TK_NAME || n->kw != KW_NONE_) {
                err_tok(P, n, "expected an attribute name after '.'");
                a = NULL;
                break;
            }
            advance(P);
            mt__ast *at = new_ast(P, A_ATTR, a->begin, n->end, n->begin);
            if (at) {
                at->s = n->s;
                at->n = 1;
                at->kids = mt_arena_alloc(&P->arena, sizeof(mt__ast *), _Alignof(mt__ast *));
                if (!at->kids) {
                    mt__perr(P, MT_ERR_NOMEM, a->begin, n->end, n->begin, "out of memory");
                    at = NULL;
                } else {
                    at->kids[0] = a;
                }
            }
            a = at;
        }
    }
    P->depth -= extra;
    return P->failed ? NULL : a;
}

static mt__ast *parse_power(mt__pctx *P)
{
    mt__ast *base = parse_postfix(P);
    if (!base || !is_op(peek(P), POP_DSTAR)) return base;
    mt__tok *op = advance(P);
    if (!enter(P, op)) return NULL;
    mt__ast *exp = parse_factor(P); /* right-associative; binds -x on its right: 2**-1 */
    P->depth--;
    if (!exp) return NULL;
    mt__ast *a = new_ast(P, A_POW, base->begin, exp->end, op->begin);
    if (!a) return NULL;
    a->n = 2;
    a->kids = mt_arena_alloc(&P->arena, 2 * sizeof(mt__ast *), _Alignof(mt__ast *));
    if (!a->kids) {
        mt__perr(P, MT_ERR_NOMEM, a->begin, a->end, a->point, "out of memory");
        return NULL;
    }
    a->kids[0] = base;
    a->kids[1] = exp;
    return a;
}

static mt__ast *make_unary(mt__pctx *P, const mt__tok *op, mt__pop which, mt__ast *x)
{
    if (!x) return NULL;
    mt__ast *a = new_ast(P, A_UNARY, op->begin, x->end, op->begin);
    if (!a) return NULL;
    a->op = which;
    a->n = 1;
    a->kids = mt_arena_alloc(&P->arena, sizeof(mt__ast *), _Alignof(mt__ast *));
    if (!a->kids) {
        mt__perr(P, MT_ERR_NOMEM, a->begin, a->end, a->point, "out of memory");
        return NULL;
    }
    a->kids[0] = x;
    return a;
}

static mt__ast *parse_factor(mt__pctx *P)
{
    mt__tok *t = peek(P);
    if (is_op(t, POP_MINUS) || is_op(t, POP_PLUS) || is_op(t, POP_TILDE)) {
        advance(P);
        if (!enter(P, t)) return NULL;
        mt__ast *x = parse_factor(P);
        P->depth--;
        return make_unary(P, t, t->op, x);
    }
    return parse_power(P);
}

/* Binary levels from loosest to tightest (Python precedence), below comparisons. */
/* clang-format off */
static const mt__pop level_ops[][5] = {
    {POP_PIPE},
    {POP_CARET},
    {POP_AMP},
    {POP_LSHIFT, POP_RSHIFT},
    {POP_PLUS, POP_MINUS},
    {POP_STAR, POP_SLASH, POP_DSLASH, POP_PERCENT, POP_AT},
};
/* clang-format on */
#define NLEVELS ((int)(sizeof(level_ops) / sizeof(level_ops[0])))

static bool level_has(int level, const mt__tok *t)
{
    if (t->kind != TK_OP) return false;
    for (int k = 0; k < 5 && level_ops[level][k] != POP_NONE; k++)
        if (level_ops[level][k] == t->op) return true;
    return false;
}

static mt__ast *finish_chain(mt__pctx *P, kidvec *v, mt__ast_kind kind)
{
    mt__ast *first = v->kids[0], *last = v->kids[v->n - 1];
    mt__ast *a = new_ast(P, kind, first->begin, last->end, v->pos[1]);
    if (a && !kv_store(P, v, a, true, false)) a = NULL;
    return a;
}

static mt__ast *parse_level(mt__pctx *P, int level)
{
    mt__ast *first = level + 1 < NLEVELS ? parse_level(P, level + 1) : parse_factor(P);
    if (!first || !level_has(level, peek(P))) return first;
    kidvec v = {0};
    mt__ast *a = NULL;
    if (!kv_push(P, &v, first, POP_NONE, 0, NULL, 0)) goto done;
    while (level_has(level, peek(P))) {
        mt__tok *op = advance(P);
        mt__ast *x = level + 1 < NLEVELS ? parse_level(P, level + 1) : parse_factor(P);
        if (!x || !kv_push(P, &v, x, op->op, op->begin, NULL, 0)) goto done;
    }
    a = finish_chain(P, &v, A_CHAIN);
done:
    kv_free(&v);
    return P->failed ? NULL : a;
}

static bool cmp_op(mt__pctx *P, mt__pop *op)
{
    mt__tok *t = peek(P);
    if (t->kind == TK_OP && t->op >= POP_LT && t->op <= POP_NE) {
        *op = t->op;
        return true;
    }
    if (is_kw(t, KW_IN) || is_kw(t, KW_IS) ||
        (is_kw(t, KW_NOT) && is_kw(&P->toks[P->pos + 1], KW_IN))) {
        mt__perr(P, MT_ERR_INVALID, t->begin, t->end, t->begin,
                 "'%s' comparisons are not supported (use ==, !=, <, <=, >, >=)", t->s);
        return false;
    }
    return false;
}

static mt__ast *parse_comparison(mt__pctx *P)
{
    mt__ast *first = parse_level(P, 0);
    mt__pop op;
    if (!first || !cmp_op(P, &op)) return P->failed ? NULL : first;
    kidvec v = {0};
    mt__ast *a = NULL;
    if (!kv_push(P, &v, first, POP_NONE, 0, NULL, 0)) goto done;
    while (cmp_op(P, &op)) {
        mt__tok *t = advance(P);
        mt__ast *x = parse_level(P, 0);
        if (!x || !kv_push(P, &v, x, op, t->begin, NULL, 0)) goto done;
    }
    if (!P->failed) a = finish_chain(P, &v, A_COMPARE);
done:
    kv_free(&v);
    return P->failed ? NULL : a;
}

static mt__ast *parse_not(mt__pctx *P)
{
    mt__tok *t = peek(P);
    if (!is_kw(t, KW_NOT)) return parse_comparison(P);
    advance(P);
    if (!enter(P, t)) return NULL;
    mt__ast *x = parse_not(P);
    P->depth--;
    return make_unary(P, t, POP_NOT, x);
}

static mt__ast *parse_bool(mt__pctx *P, mt__kw kw)
{
    mt__ast *first = kw == KW_OR ? parse_bool(P, KW_AND) : parse_not(P);
    if (!first || !is_kw(peek(P), kw)) return first;
    kidvec v = {0};
    mt__ast *a = NULL;
    if (!kv_push(P, &v, first, POP_NONE, 0, NULL, 0)) goto done;
    while (is_kw(peek(P), kw)) {
        mt__tok *t = advance(P);
        mt__ast *x = kw == KW_OR ? parse_bool(P, KW_AND) : parse_not(P);
        if (!x || !kv_push(P, &v, x, kw == KW_OR ? POP_OR : POP_AND, t->begin, NULL, 0)) goto done;
    }
    a = finish_chain(P, &v, A_CHAIN);
done:
    kv_free(&v);
    return P->failed ? NULL : a;
}

/* expr: or_test ['if' or_test 'else' expr] */
static mt__ast *parse_expr(mt__pctx *P)
{
    mt__tok *t = peek(P);
    if (!enter(P, t)) return NULL;
    mt__ast *a = NULL;
    mt__ast *body = parse_bool(P, KW_OR);
    if (body && is_kw(peek(P), KW_IF)) {
        mt__tok *kif = advance(P);
        mt__ast *test = parse_bool(P, KW_OR);
        if (test && !is_kw(peek(P), KW_ELSE)) {
            err_tok(P, peek(P), "expected 'else' after the condition of 'if'");
        } else if (test) {
            advance(P);
            mt__ast *orelse = parse_expr(P);
            if (orelse) {
                a = new_ast(P, A_COND, body->begin, orelse->end, kif->begin);
                if (a) {
                    a->n = 3;
                    a->kids =
                        mt_arena_alloc(&P->arena, 3 * sizeof(mt__ast *), _Alignof(mt__ast *));
                    if (!a->kids) {
                        mt__perr(P, MT_ERR_NOMEM, a->begin, a->end, a->point, "out of memory");
                        a = NULL;
                    } else {
                        a->kids[0] = body;
                        a->kids[1] = test;
                        a->kids[2] = orelse;
                    }
                }
            }
        }
    } else {
        a = body;
    }
    P->depth--;
    return P->failed ? NULL : a;
}

bool mt__parse_tree(mt__pctx *P, mt__ast **root)
{
    *root = NULL;
    P->open_tok = -1;
    if (!lex_all(P)) return false;
    P->pos = 0;
    if (peek(P)->kind == TK_END) return mt__perr(P, MT_ERR_INVALID, 0, 0, 0, "empty expression");
    mt__ast *a = parse_expr(P);
    if (a && is_op(peek(P), POP_COMMA)) { /* a bare tuple: valid syntax, rejected later */
        kidvec v = {0};
        bool trailing;
        bool ok = kv_push(P, &v, a, POP_NONE, 0, NULL, 0);
        advance(P);
        ok = ok && parse_items(P, &v, POP_NONE, &trailing);
        mt__ast *tu =
            ok ? new_ast(P, A_TUPLE, a->begin, P->toks[P->pos ? P->pos - 1 : 0].end, a->begin)
               : NULL;
        if (tu && !kv_store(P, &v, tu, false, false)) tu = NULL;
        kv_free(&v);
        a = tu;
    }
    if (!a) return false;
    mt__tok *t = peek(P);
    if (t->kind != TK_END) {
        if (is_op(t, POP_ASSIGN) || is_op(t, POP_AUGASSIGN) || is_op(t, POP_WALRUS))
            return mt__perr(P, MT_ERR_INVALID, t->begin, t->end, t->begin,
                            "assignment is not allowed in an expression%s",
                            is_op(t, POP_ASSIGN) ? " (did you mean '=='?)" : "");
        if (is_op(t, POP_RPAR) || is_op(t, POP_RBRACK) || is_op(t, POP_RBRACE)) {
            char tt[48];
            tok_text(P, t, tt, sizeof tt);
            return mt__perr(P, MT_ERR_INVALID, t->begin, t->end, t->begin, "unmatched %s", tt);
        }
        if (t->kind == TK_NAME || t->kind == TK_INT || t->kind == TK_FLOAT || t->kind == TK_STR ||
            is_op(t, POP_LPAR) || is_op(t, POP_LBRACK)) {
            if (t->kind == TK_NAME && t->kw == KW_ELSE)
                return mt__perr(P, MT_ERR_INVALID, t->begin, t->end, t->begin,
                                "'else' without 'if'");
            if (t->kind == TK_NAME && t->kw == KW_OTHER) return err_tok(P, t, NULL);
            return err_tok(P, t, "missing an operator or a comma before it?");
        }
        return err_tok(P, t, NULL);
    }
    *root = a;
    return true;
}
