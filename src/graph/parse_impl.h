/* Private interface of the expression parser (parse_lex.c: tokens and syntax tree;
 * parse.c: evaluation of the tree into graph nodes and error reporting; parse_funcs.c: the
 * function table). The tree is built completely (so every syntax error is found before any
 * node is created) and then evaluated; left-associative chains are n-ary nodes so the tree's
 * depth, and with it the recursion depth of both passes, is bounded by the nesting limit. */
#ifndef MLTRAIN_PARSE_IMPL_H
#define MLTRAIN_PARSE_IMPL_H

#include "graph_impl.h"
#include "mltrain/graph_parse.h"

/* ---------------------------------------------------------------- operators and keywords */

/* clang-format off */
typedef enum mt__pop {
    POP_NONE = 0,
    /* brackets and punctuation */
    POP_LPAR, POP_RPAR, POP_LBRACK, POP_RBRACK, POP_LBRACE, POP_RBRACE,
    POP_COMMA, POP_COLON, POP_DOT, POP_ELLIPSIS, POP_ASSIGN, POP_SEMI, POP_WALRUS, POP_ARROW,
    POP_AUGASSIGN,
    /* arithmetic and bitwise */
    POP_PLUS, POP_MINUS, POP_STAR, POP_SLASH, POP_DSLASH, POP_PERCENT, POP_DSTAR, POP_AT,
    POP_TILDE, POP_AMP, POP_PIPE, POP_CARET, POP_LSHIFT, POP_RSHIFT,
    /* comparisons */
    POP_LT, POP_LE, POP_GT, POP_GE, POP_EQ, POP_NE,
    /* keyword operators (in the tree only) */
    POP_AND, POP_OR, POP_NOT,
    POP_COUNT
} mt__pop;

typedef enum mt__kw {
    KW_NONE_ = 0, /* not a keyword */
    KW_IF, KW_ELSE, KW_AND, KW_OR, KW_NOT, KW_TRUE, KW_FALSE, KW_NONE, KW_IN, KW_IS,
    KW_LAMBDA, KW_OTHER /* any other Python keyword: reserved, never a name */
} mt__kw;
/* clang-format on */

typedef enum mt__tok_kind {
    TK_END = 0,
    TK_NAME,  /* identifier or keyword (kw) */
    TK_INT,   /* u: the value (fits uint64) */
    TK_FLOAT, /* f */
    TK_STR,   /* s (arena, NUL-terminated, escapes resolved), slen */
    TK_OP     /* op */
} mt__tok_kind;

typedef struct mt__tok {
    mt__tok_kind kind;
    int32_t begin, end; /* byte offsets [begin, end) */
    mt__pop op;
    mt__kw kw;
    uint64_t u;
    double f;
    const char *s; /* TK_NAME / TK_STR text (arena) */
    int32_t slen;
} mt__tok;

/* ---------------------------------------------------------------- syntax tree */

typedef enum mt__ast_kind {
    A_INT,   /* u (may exceed INT64_MAX: checked at evaluation) */
    A_FLOAT, /* f */
    A_STR,   /* s, slen */
    A_NAME,  /* s */
    A_TRUE,
    A_FALSE,
    A_NONE,
    A_ELLIPSIS,
    A_UNARY,     /* op (PLUS, MINUS, TILDE, NOT), kids[0] */
    A_CHAIN,     /* kids[0] op[0] kids[1] op[1] ...: left-associative binary operators
                    (or, and, |, ^, &, shifts, + -, * / // % @) */
    A_POW,       /* kids[0] ** kids[1] (right-associative through nesting) */
    A_COMPARE,   /* kids[0] op[0] kids[1] ...: chained comparison */
    A_COND,      /* kids[0] if kids[1] else kids[2] */
    A_CALL,      /* kids[0] the callee, kids[1..n) arguments; kwnames[i] for kids[i] or NULL */
    A_ATTR,      /* kids[0] . s */
    A_SUBSCRIPT, /* kids[0] [ kids[1..n) ]; `trailing_comma` when written x[a,] */
    A_SLICE,     /* kids[0]:kids[1]:kids[2], each NULL when omitted */
    A_TUPLE,     /* ( kids... ) or a bare a, b inside brackets */
    A_LIST       /* [ kids... ] */
} mt__ast_kind;

typedef struct mt__ast {
    mt__ast_kind kind;
    int32_t begin, end; /* span [begin, end) */
    int32_t point;      /* caret position for errors (operator, callee name, ...) */
    mt__pop op;         /* A_UNARY */
    uint64_t u;
    double f;
    const char *s;
    int32_t slen;
    int32_t n; /* kids */
    struct mt__ast **kids;
    mt__pop *ops;         /* A_CHAIN / A_COMPARE: n - 1 operators */
    int32_t *op_pos;      /* and their offsets */
    const char **kwnames; /* A_CALL: per kid, NULL for positional */
    int32_t *kwpos;       /* A_CALL: offset of the keyword name */
    bool trailing_comma;
} mt__ast;

/* ---------------------------------------------------------------- parser context */

typedef struct mt__pctx {
    mt_graph *g;
    const char *text;
    int32_t len;
    int32_t source; /* mt_graph_add_source id, -1 before evaluation */
    const mt_parse_options *opts;
    mt_arena arena; /* tokens, tree, values: freed when the parse returns */
    mt_parse_error *err;
    bool failed;
    int32_t depth, max_depth;
    /* tokens */
    mt__tok *toks;
    int32_t ntoks, pos;
    int32_t open_tok; /* innermost unclosed bracket (token index), -1 if none */
} mt__pctx;

/* Records an error at [begin, end) with the caret at point (first error wins); returns false. */
bool mt__perr(mt__pctx *P, mt_status code, int32_t begin, int32_t end, int32_t point,
              const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* Tokenizes and parses P->text into *root (syntax errors recorded). */
bool mt__parse_tree(mt__pctx *P, mt__ast **root);

/* Appends " (did you mean 'x'?)" to sb when a candidate is close enough to name. */
typedef struct mt__suggest {
    const char *name;
    const char *best;
    int32_t best_d;
} mt__suggest;
void mt__suggest_init(mt__suggest *s, const char *name);
void mt__suggest_offer(mt__suggest *s, const char *candidate);

/* ---------------------------------------------------------------- values */

typedef enum mt__vkind {
    V_ABSENT = 0, /* argument not given */
    V_VAR,        /* a graph variable */
    V_INT,        /* static Python int (i) */
    V_FLOAT,      /* static Python float (f) */
    V_BOOL,       /* static Python bool (b) */
    V_NONE,
    V_STR,   /* s */
    V_DTYPE, /* dt */
    V_SEQ,   /* tuple or list (is_list) of n items */
    V_SLICE, /* start:stop:step (MT_IDX_NONE when omitted) */
    V_ELLIPSIS,
    V_SHAPE,  /* the shape of var, some sizes unknown (x.shape) */
    V_MODULE, /* np, numpy, T, ... */
    V_FUNC,   /* fn, bound to var when has_self (x.sum) */
    V_INDEX   /* set/inc_subtensor target: var[items] (items in seq) */
} mt__vkind;

struct mt__fn_def;

typedef struct mt__val {
    mt__vkind kind;
    int32_t begin, end, point; /* where it was written */
    mt_var var;
    int64_t i;
    double f;
    bool b;
    mt_dtype dt;
    const char *s;
    int32_t n;
    struct mt__val *items;
    bool is_list;
    int64_t start, stop, step;
    const struct mt__fn_def *fn;
    bool has_self;
} mt__val;

/* Evaluation entry points shared with the function table. Each returns false after recording
 * an error. */
bool mt__peval(mt__pctx *P, const mt__ast *a, mt__val *out);
/* The value as a graph variable (literals become weak constants, nested lists constants). */
bool mt__pvar(mt__pctx *P, const mt__val *v, mt_var *out);
/* Sets the graph's current origin to [begin, end) of the text and clears the thread error. */
void mt__porigin(mt__pctx *P, int32_t begin, int32_t end);
/* Checks a builder result: false (error at the span, builder's message) if r is NONE. */
bool mt__pbuilt(mt__pctx *P, mt_var r, int32_t begin, int32_t end, int32_t point);
/* Basic + advanced indexing x[items] as the parser evaluates subscripts. */
bool mt__pindex(mt__pctx *P, mt_var x, int32_t n, const mt__val *items, const mt__val *site,
                mt_var *out);
const char *mt__vkind_name(mt__vkind k);

/* ---------------------------------------------------------------- functions */

/* A function of the language. Arguments are bound to the parameters of `sig` (a Python
 * signature: "name(a, axis=None, *, keepdims=False)", "*rest" collects positionals) and passed
 * to impl in parameter order (V_ABSENT for parameters not given). */
typedef struct mt__call {
    int32_t begin, end, point; /* the whole call and the callee's name */
    const char *name;
} mt__call;

typedef bool (*mt__fn_impl)(mt__pctx *P, const struct mt__fn_def *f, const mt__call *c,
                            mt__val *args, mt__val *out);

enum {
    MT__FN_METHOD = 1u << 0,   /* callable as x.f(...) with x as the first argument */
    MT__FN_PACK = 1u << 1,     /* as a method, positionals after the first pack into a tuple */
    MT__FN_SUBTENSOR = 1u << 2 /* first argument is an indexing expression x[...] (target) */
};

typedef struct mt__fn_def {
    const char *name;
    const char *sig;
    mt__fn_impl impl;
    unsigned flags;
    int code;                                  /* impl-specific (sop, reduce op, ...) */
    mt_var (*un)(mt_graph *, mt_var);          /* unary builder, or NULL */
    mt_var (*bin)(mt_graph *, mt_var, mt_var); /* binary builder, or NULL */
} mt__fn_def;

const mt__fn_def *mt__fn_find(const char *name);
/* Binds the call's arguments and runs the function. self: the receiver of a method call, or
 * NULL. args: n evaluated arguments (kwnames[i] NULL for positionals). */
bool mt__fn_call(mt__pctx *P, const mt__fn_def *f, const mt__call *c, const mt__val *self,
                 int32_t n, mt__val *args, const char *const *kwnames, const int32_t *kwpos,
                 mt__val *out);
/* Offers every function name to a suggestion. */
void mt__fn_suggest(mt__suggest *s, bool methods_only);

#endif /* MLTRAIN_PARSE_IMPL_H */
