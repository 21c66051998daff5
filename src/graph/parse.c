/* The expression language's evaluator: walks the syntax tree from parse_lex.c and builds graph
 * nodes through the public builders, with the span of each sub-expression as the graph's
 * current origin so every node's provenance points at the user's text. Python literals stay
 * static values (ints, floats, tuples, dtype names, slices) until an operation needs an array,
 * so they can serve as axes, shapes and indices; integer literal arithmetic is folded with
 * Python semantics, as Python itself would before NumPy saw the values. Builder failures are
 * turned into parse errors at the span of the sub-expression that failed. Also: the public
 * entry points and the caret renderer. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "parse_impl.h"

/* ---------------------------------------------------------------- small helpers */

const char *mt__vkind_name(mt__vkind k)
{
    switch (k) {
    case V_ABSENT:
        return "nothing";
    case V_VAR:
        return "array";
    case V_INT:
        return "int";
    case V_FLOAT:
        return "float";
    case V_BOOL:
        return "bool";
    case V_NONE:
        return "None";
    case V_STR:
        return "str";
    case V_DTYPE:
        return "dtype";
    case V_SEQ:
        return "sequence";
    case V_SLICE:
        return "slice";
    case V_ELLIPSIS:
        return "Ellipsis";
    case V_SHAPE:
        return "shape";
    case V_MODULE:
        return "module";
    case V_FUNC:
        return "function";
    case V_INDEX:
        return "indexing expression";
    }
    return "value";
}

void mt__porigin(mt__pctx *P, int32_t begin, int32_t end)
{
    if (end <= begin) end = begin + 1;
    mt_graph_set_origin_span(P->g, P->source, begin + 1, end);
    mt_err_clear();
}

bool mt__pbuilt(mt__pctx *P, mt_var r, int32_t begin, int32_t end, int32_t point)
{
    if (r != MT_VAR_NONE) return true;
    mt_status st = mt_last_status();
    const char *msg = mt_last_error();
    if (st == MT_OK || !msg[0]) {
        st = st == MT_OK ? MT_ERR_INTERNAL : st;
        msg = "the graph builder failed without a message";
    }
    /* The builder appended " (from '<this span>' col B-E)" (possibly cut short by the message
     * size limit): the caret says it already. */
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    int32_t b = begin, e = end <= begin ? begin + 1 : end;
    int32_t n = (e > P->len ? P->len : e) - b;
    mt_strbuf_append(&sb, " (from '");
    if (n > 0) mt_strbuf_appendn(&sb, P->text + b, (size_t)n);
    mt_strbuf_appendf(&sb, "' col %d-%d)", (int)(b + 1), (int)e);
    const char *cut = NULL;
    for (const char *p = strstr(msg, " (from '"); p; p = strstr(p + 1, " (from '"))
        cut = p;
    size_t keep = strlen(msg);
    if (cut && sb.data && !strncmp(cut, sb.data, strlen(cut))) keep = (size_t)(cut - msg);
    mt_strbuf_deinit(&sb);
    return mt__perr(P, st, begin, end, point, "%.*s", (int)keep, msg);
}

static bool verr(mt__pctx *P, const mt__val *v, const char *fmt, const char *a)
{
    return mt__perr(P, MT_ERR_INVALID, v->begin, v->end, v->point, fmt, a);
}

static void *palloc(mt__pctx *P, size_t n)
{
    void *p = mt_arena_alloc(&P->arena, n ? n : 1, 16);
    if (!p) mt__perr(P, MT_ERR_NOMEM, 0, 0, 0, "out of memory");
    return p;
}

static const mt_type *vtype(mt__pctx *P, mt_var v)
{
    return mt_graph_type(P->g, v);
}

/* ---------------------------------------------------------------- static sequences */

/* Layout of a nested sequence: the shape comes from the chain of first elements, then every
 * element is checked against it. kind: 0 bool, 1 int, 2 float; *dynamic when some element is
 * an array (the sequence is then stacked instead of becoming a constant). */
static bool seq_check(mt__pctx *P, const mt__val *v, int32_t d, int32_t ndim, const int64_t *shape,
                      int *kind, bool *dynamic)
{
    if (d < ndim) {
        if (v->kind == V_VAR) {
            *dynamic = true;
            return true;
        }
        if (v->kind != V_SEQ)
            return mt__perr(P, MT_ERR_SHAPE, v->begin, v->end, v->begin,
                            "ragged nested sequence: expected a sequence of %lld items here",
                            (long long)shape[d]);
        if (v->n != shape[d])
            return mt__perr(P, MT_ERR_SHAPE, v->begin, v->end, v->begin,
                            "ragged nested sequence: %d items where %lld were expected", (int)v->n,
                            (long long)shape[d]);
        for (int32_t i = 0; i < v->n && !*dynamic; i++)
            if (!seq_check(P, &v->items[i], d + 1, ndim, shape, kind, dynamic)) return false;
        return true;
    }
    switch (v->kind) {
    case V_BOOL:
        break;
    case V_INT:
        if (*kind < 1) *kind = 1;
        break;
    case V_FLOAT:
        *kind = 2;
        break;
    case V_VAR:
        *dynamic = true;
        break;
    case V_SEQ:
        return mt__perr(P, MT_ERR_SHAPE, v->begin, v->end, v->begin,
                        "ragged nested sequence: expected a number here, got a sequence");
    default:
        return mt__perr(P, MT_ERR_INVALID, v->begin, v->end, v->begin,
                        "a sequence used as an array may hold numbers and arrays, not %s",
                        mt__vkind_name(v->kind));
    }
    return true;
}

static bool seq_layout(mt__pctx *P, const mt__val *v, int32_t *ndim, int64_t *shape, int *kind,
                       bool *dynamic)
{
    *ndim = 0;
    for (const mt__val *c = v; c->kind == V_SEQ; c = &c->items[0]) {
        if (*ndim >= MT_MAX_DIMS)
            return mt__perr(P, MT_ERR_RANGE, v->begin, v->end, v->begin,
                            "nested sequence has more than %d dimensions", MT_MAX_DIMS);
        shape[(*ndim)++] = c->n;
        if (c->n == 0) break;
    }
    return seq_check(P, v, 0, *ndim, shape, kind, dynamic);
}

static void seq_fill(const mt__val *v, int kind, void *data, int64_t *k)
{
    if (v->kind == V_SEQ) {
        for (int32_t i = 0; i < v->n; i++)
            seq_fill(&v->items[i], kind, data, k);
        return;
    }
    double f = v->kind == V_FLOAT ? v->f : v->kind == V_INT ? (double)v->i : (double)v->b;
    int64_t i = v->kind == V_INT ? v->i : (int64_t)v->b;
    if (kind == 2)
        ((double *)data)[*k] = f;
    else if (kind == 1)
        ((int64_t *)data)[*k] = i;
    else
        ((uint8_t *)data)[*k] = (uint8_t)(v->b != 0);
    (*k)++;
}

static bool seq_var(mt__pctx *P, const mt__val *v, mt_var *out)
{
    int32_t ndim = 0;
    int64_t shape[MT_MAX_DIMS] = {0};
    int kind = 0;
    bool dynamic = false;
    if (!seq_layout(P, v, &ndim, shape, &kind, &dynamic)) return false;
    if (dynamic) { /* np.array([a, b]) of arrays: stack along a new first axis */
        mt_var *vs = palloc(P, (size_t)v->n * sizeof(mt_var));
        if (!vs) return false;
        for (int32_t i = 0; i < v->n; i++)
            if (!mt__pvar(P, &v->items[i], &vs[i])) return false;
        mt__porigin(P, v->begin, v->end);
        *out = mt_graph_stack(P->g, v->n, vs, 0);
        return mt__pbuilt(P, *out, v->begin, v->end, v->begin);
    }
    int64_t numel = 1;
    for (int32_t d = 0; d < ndim; d++)
        numel *= shape[d];
    if (numel == 0 && kind == 0) kind = 2; /* np.array([]) is float64 */
    mt_dtype dt = kind == 2 ? MT_FLOAT64 : kind == 1 ? MT_INT64 : MT_BOOL;
    void *data = palloc(P, (size_t)numel * mt_dtype_size(dt));
    if (!data) return false;
    int64_t k = 0;
    seq_fill(v, kind, data, &k);
    mt__porigin(P, v->begin, v->end);
    *out = mt_graph_constant(P->g, dt, ndim, shape, data);
    return mt__pbuilt(P, *out, v->begin, v->end, v->begin);
}

bool mt__pvar(mt__pctx *P, const mt__val *v, mt_var *out)
{
    *out = MT_VAR_NONE;
    switch (v->kind) {
    case V_VAR:
        *out = v->var;
        return true;
    case V_INT:
        mt__porigin(P, v->begin, v->end);
        *out = mt_graph_literal_int(P->g, v->i);
        break;
    case V_FLOAT:
        mt__porigin(P, v->begin, v->end);
        *out = mt_graph_literal_float(P->g, v->f);
        break;
    case V_BOOL:
        mt__porigin(P, v->begin, v->end);
        *out = mt_graph_scalar(P->g, MT_BOOL, v->b ? 1.0 : 0.0);
        break;
    case V_SEQ:
        return seq_var(P, v, out);
    case V_SHAPE:
        return verr(P, v,
                    "%s has sizes unknown when the graph is built; it can only be used "
                    "as a shape argument (zeros, ones, full, broadcast_to, random size=)",
                    "this shape");
    case V_FUNC:
        return mt__perr(P, MT_ERR_INVALID, v->begin, v->end, v->point,
                        "expected an array, got the function '%s' (call it with (...))",
                        v->fn ? v->fn->name : "?");
    default:
        return verr(P, v, "expected an array, got %s", mt__vkind_name(v->kind));
    }
    return mt__pbuilt(P, *out, v->begin, v->end, v->point);
}

/* ---------------------------------------------------------------- names */

static const char *const module_names[] = {"np",   "numpy",  "T",       "tt",   "pt",   "tensor",
                                           "nnet", "random", "special", "math", "scipy"};
static const char *const dtype_extra[] = {"float", "int", "bool"};

static bool is_module_name(const char *s)
{
    for (size_t i = 0; i < sizeof(module_names) / sizeof(module_names[0]); i++)
        if (!strcmp(s, module_names[i])) return true;
    return false;
}

/* Canonical dtype names and Python's float/int/bool. */
static bool dtype_by_name(const char *s, mt_dtype *dt)
{
    for (int k = 0; k < MT_DTYPE_COUNT; k++)
        if (!strcmp(s, mt_dtype_name((mt_dtype)k))) {
            *dt = (mt_dtype)k;
            return true;
        }
    if (!strcmp(s, "float"))
        *dt = MT_FLOAT64;
    else if (!strcmp(s, "int"))
        *dt = MT_INT64;
    else if (!strcmp(s, "bool"))
        *dt = MT_BOOL;
    else
        return false;
    return true;
}

/* pi, e, inf, nan, newaxis. */
static bool constant_by_name(const char *s, mt__val *out)
{
    double f;
    if (!strcmp(s, "pi"))
        f = 3.141592653589793;
    else if (!strcmp(s, "e"))
        f = 2.718281828459045;
    else if (!strcmp(s, "inf"))
        f = INFINITY;
    else if (!strcmp(s, "nan"))
        f = NAN;
    else if (!strcmp(s, "newaxis")) {
        out->kind = V_NONE;
        return true;
    } else
        return false;
    out->kind = V_FLOAT;
    out->f = f;
    return true;
}

static void suggest_names(mt__pctx *P, mt__suggest *s, bool functions)
{
    const mt_parse_options *o = P->opts;
    for (int32_t i = 0; i < o->n_bindings; i++)
        mt__suggest_offer(s, o->names[i]);
    if (!o->no_placeholders) {
        int32_t n = mt_graph_size(P->g);
        for (mt_var v = 1; v <= n; v++)
            if (mt_graph_op(P->g, v) == MT_OP_INPUT) mt__suggest_offer(s, mt_graph_name(P->g, v));
    }
    static const char *const consts[] = {"pi",      "e",    "inf",   "nan",
                                         "newaxis", "True", "False", "None"};
    for (size_t i = 0; i < sizeof(consts) / sizeof(consts[0]); i++)
        mt__suggest_offer(s, consts[i]);
    for (int k = 0; k < MT_DTYPE_COUNT; k++)
        mt__suggest_offer(s, mt_dtype_name((mt_dtype)k));
    for (size_t i = 0; i < sizeof(dtype_extra) / sizeof(dtype_extra[0]); i++)
        mt__suggest_offer(s, dtype_extra[i]);
    if (functions) mt__fn_suggest(s, false);
}

static bool unknown_name(mt__pctx *P, const mt__ast *a, bool as_function)
{
    mt__suggest s;
    mt__suggest_init(&s, a->s);
    if (as_function) { /* functions and dtypes (float32(x) casts) */
        mt__fn_suggest(&s, false);
        for (int k = 0; k < MT_DTYPE_COUNT; k++)
            mt__suggest_offer(&s, mt_dtype_name((mt_dtype)k));
    } else {
        suggest_names(P, &s, true);
    }
    char hint[128] = "";
    if (s.best) snprintf(hint, sizeof hint, " (did you mean '%s'?)", s.best);
    return mt__perr(P, MT_ERR_INVALID, a->begin, a->end, a->begin, "%s '%s' is not defined%s",
                    as_function ? "function" : "name", a->s, hint);
}

/* A name bound by the caller, the lookup callback or a placeholder. */
static mt_var lookup_var(mt__pctx *P, const char *name)
{
    const mt_parse_options *o = P->opts;
    for (int32_t i = o->n_bindings - 1; i >= 0; i--)
        if (o->names[i] && !strcmp(o->names[i], name)) return o->vars[i];
    if (o->lookup) {
        mt_var v = o->lookup(o->lookup_user, P->g, name);
        if (v != MT_VAR_NONE) return v;
    }
    if (!o->no_placeholders) return mt_graph_find_placeholder(P->g, name);
    return MT_VAR_NONE;
}

static bool eval_name(mt__pctx *P, const mt__ast *a, mt__val *out)
{
    mt_var v = lookup_var(P, a->s);
    if (v != MT_VAR_NONE) {
        if (!mt_graph_valid(P->g, v))
            return mt__perr(P, MT_ERR_INVALID, a->begin, a->end, a->begin,
                            "name '%s' is bound to an invalid variable (handle %d)", a->s, (int)v);
        out->kind = V_VAR;
        out->var = v;
        return true;
    }
    if (constant_by_name(a->s, out)) return true;
    if (is_module_name(a->s)) {
        out->kind = V_MODULE;
        out->s = a->s;
        return true;
    }
    if (dtype_by_name(a->s, &out->dt)) {
        out->kind = V_DTYPE;
        return true;
    }
    const mt__fn_def *f = mt__fn_find(a->s);
    if (f) {
        out->kind = V_FUNC;
        out->fn = f;
        return true;
    }
    return unknown_name(P, a, false);
}

/* ---------------------------------------------------------------- operators */

static bool fold_int(mt__pctx *P, mt__pop op, int64_t x, int64_t y, int64_t *r, int32_t begin,
                     int32_t end, int32_t point)
{
    bool ovf = false;
    switch (op) {
    case POP_PLUS:
        ovf = __builtin_add_overflow(x, y, r);
        break;
    case POP_MINUS:
        ovf = __builtin_sub_overflow(x, y, r);
        break;
    case POP_STAR:
        ovf = __builtin_mul_overflow(x, y, r);
        break;
    case POP_DSLASH:
    case POP_PERCENT: {
        if (y == 0)
            return mt__perr(P, MT_ERR_INVALID, begin, end, point,
                            "integer division or modulo by zero");
        if (x == INT64_MIN && y == -1) {
            if (op == POP_DSLASH)
                ovf = true;
            else
                *r = 0;
            break;
        }
        int64_t q = x / y, m = x % y;
        if (m != 0 && ((m < 0) != (y < 0))) {
            q -= 1;
            m += y;
        }
        *r = op == POP_DSLASH ? q : m;
        break;
    }
    case POP_DSTAR: {
        int64_t acc = 1, base = x;
        uint64_t e = (uint64_t)y;
        while (e && !ovf) {
            if (e & 1) ovf = __builtin_mul_overflow(acc, base, &acc);
            e >>= 1;
            if (e && !ovf) ovf = __builtin_mul_overflow(base, base, &base);
        }
        *r = acc;
        break;
    }
    default:
        return false;
    }
    if (ovf)
        return mt__perr(P, MT_ERR_RANGE, begin, end, point,
                        "integer overflow in a constant expression (results must fit in int64)");
    return true;
}

static bool is_bool_var(mt__pctx *P, mt_var v)
{
    return vtype(P, v)->dtype == MT_BOOL;
}

/* a OP b for arrays and literals; the result spans [begin, end) with the caret at point. */
static bool binop(mt__pctx *P, mt__pop op, const mt__val *a, const mt__val *b, int32_t begin,
                  int32_t end, int32_t point, mt__val *out)
{
    memset(out, 0, sizeof(*out));
    out->begin = begin;
    out->end = end;
    out->point = point;
    if (a->kind == V_INT && b->kind == V_INT &&
        (op == POP_PLUS || op == POP_MINUS || op == POP_STAR || op == POP_DSLASH ||
         op == POP_PERCENT || op == POP_DSTAR)) {
        if (op == POP_DSTAR && b->i < 0) { /* Python: 2 ** -1 == 0.5 */
            out->kind = V_FLOAT;
            out->f = pow((double)a->i, (double)b->i);
            return true;
        }
        out->kind = V_INT;
        return fold_int(P, op, a->i, b->i, &out->i, begin, end, point);
    }
    mt_var x, y, r = MT_VAR_NONE;
    if (!mt__pvar(P, a, &x) || !mt__pvar(P, b, &y)) return false;
    mt__porigin(P, begin, end);
    mt_graph *g = P->g;
    bool both_bool = is_bool_var(P, x) && is_bool_var(P, y);
    switch (op) {
    case POP_PLUS:
        r = mt_graph_add(g, x, y);
        break;
    case POP_MINUS:
        r = mt_graph_sub(g, x, y);
        break;
    case POP_STAR:
        r = mt_graph_mul(g, x, y);
        break;
    case POP_SLASH:
        r = mt_graph_div(g, x, y);
        break;
    case POP_DSLASH:
        r = mt_graph_floordiv(g, x, y);
        break;
    case POP_PERCENT:
        r = mt_graph_mod(g, x, y);
        break;
    case POP_DSTAR:
        r = mt_graph_pow(g, x, y);
        break;
    case POP_AT:
        r = mt_graph_matmul(g, x, y);
        break;
    case POP_AMP:
        r = both_bool ? mt_graph_logical_and(g, x, y) : mt_graph_binary(g, MT_SOP_BITAND, x, y);
        break;
    case POP_PIPE:
        r = both_bool ? mt_graph_logical_or(g, x, y) : mt_graph_binary(g, MT_SOP_BITOR, x, y);
        break;
    case POP_CARET:
        r = both_bool ? mt_graph_logical_xor(g, x, y) : mt_graph_binary(g, MT_SOP_BITXOR, x, y);
        break;
    case POP_LSHIFT:
        r = mt_graph_binary(g, MT_SOP_LSHIFT, x, y);
        break;
    case POP_RSHIFT:
        r = mt_graph_binary(g, MT_SOP_RSHIFT, x, y);
        break;
    case POP_LT:
        r = mt_graph_lt(g, x, y);
        break;
    case POP_LE:
        r = mt_graph_le(g, x, y);
        break;
    case POP_GT:
        r = mt_graph_gt(g, x, y);
        break;
    case POP_GE:
        r = mt_graph_ge(g, x, y);
        break;
    case POP_EQ:
        r = mt_graph_eq(g, x, y);
        break;
    case POP_NE:
        r = mt_graph_ne(g, x, y);
        break;
    case POP_AND:
        r = mt_graph_logical_and(g, x, y);
        break;
    case POP_OR:
        r = mt_graph_logical_or(g, x, y);
        break;
    default:
        return mt__perr(P, MT_ERR_INTERNAL, begin, end, point, "unknown operator %d", (int)op);
    }
    out->kind = V_VAR;
    out->var = r;
    return mt__pbuilt(P, r, begin, end, point);
}

static bool eval_unary(mt__pctx *P, const mt__ast *a, mt__val *out)
{
    const mt__ast *k = a->kids[0];
    /* -9223372036854775808 is the one literal whose magnitude exceeds int64 */
    if (a->op == POP_MINUS && k->kind == A_INT && k->u == (uint64_t)INT64_MAX + 1) {
        out->kind = V_INT;
        out->i = INT64_MIN;
        return true;
    }
    mt__val x;
    if (!mt__peval(P, k, &x)) return false;
    if (a->op == POP_MINUS || a->op == POP_PLUS) {
        if (x.kind == V_INT) {
            if (a->op == POP_MINUS && x.i == INT64_MIN)
                return mt__perr(P, MT_ERR_RANGE, a->begin, a->end, a->point,
                                "integer overflow in a constant expression");
            out->kind = V_INT;
            out->i = a->op == POP_MINUS ? -x.i : x.i;
            return true;
        }
        if (x.kind == V_FLOAT) {
            out->kind = V_FLOAT;
            out->f = a->op == POP_MINUS ? -x.f : x.f;
            return true;
        }
    }
    mt_var v, r;
    if (!mt__pvar(P, &x, &v)) return false;
    mt__porigin(P, a->begin, a->end);
    switch (a->op) {
    case POP_MINUS:
        r = mt_graph_neg(P->g, v);
        break;
    case POP_PLUS:
        r = v;
        break;
    case POP_TILDE:
        r = is_bool_var(P, v) ? mt_graph_logical_not(P->g, v)
                              : mt_graph_unary(P->g, MT_SOP_BITNOT, v);
        break;
    default:
        r = mt_graph_logical_not(P->g, v);
        break;
    }
    out->kind = V_VAR;
    out->var = r;
    return mt__pbuilt(P, r, a->begin, a->end, a->point);
}

static bool eval_chain(mt__pctx *P, const mt__ast *a, mt__val *out)
{
    mt__val acc, rhs, next;
    if (!mt__peval(P, a->kids[0], &acc)) return false;
    for (int32_t i = 1; i < a->n; i++) {
        if (!mt__peval(P, a->kids[i], &rhs)) return false;
        /* the whole chain's span includes its parentheses: (a + b) */
        bool last = i == a->n - 1;
        if (!binop(P, a->ops[i - 1], &acc, &rhs, last ? a->begin : a->kids[0]->begin,
                   last ? a->end : a->kids[i]->end, a->op_pos[i - 1], &next))
            return false;
        acc = next;
    }
    *out = acc;
    return true;
}

/* a < b < c is (a < b) & (b < c), b evaluated once. */
static bool eval_compare(mt__pctx *P, const mt__ast *a, mt__val *out)
{
    mt__val left, right, cmp, acc;
    if (!mt__peval(P, a->kids[0], &left)) return false;
    for (int32_t i = 1; i < a->n; i++) {
        if (!mt__peval(P, a->kids[i], &right)) return false;
        if (!binop(P, a->ops[i - 1], &left, &right, a->kids[i - 1]->begin, a->kids[i]->end,
                   a->op_pos[i - 1], &cmp))
            return false;
        if (i == 1) {
            acc = cmp;
        } else {
            mt__val both;
            bool last = i == a->n - 1;
            if (!binop(P, POP_AND, &acc, &cmp, last ? a->begin : a->kids[0]->begin,
                       last ? a->end : a->kids[i]->end, a->op_pos[i - 1], &both))
                return false;
            acc = both;
        }
        left = right;
    }
    *out = acc;
    out->begin = a->begin;
    out->end = a->end;
    return true;
}

static bool eval_cond(mt__pctx *P, const mt__ast *a, mt__val *out)
{
    mt__val body, test, orelse;
    mt_var vb, vt, vo;
    if (!mt__peval(P, a->kids[0], &body) || !mt__peval(P, a->kids[1], &test) ||
        !mt__peval(P, a->kids[2], &orelse) || !mt__pvar(P, &test, &vt) ||
        !mt__pvar(P, &body, &vb) || !mt__pvar(P, &orelse, &vo))
        return false;
    mt__porigin(P, a->begin, a->end);
    out->kind = V_VAR;
    out->var = mt_graph_where(P->g, vt, vb, vo);
    return mt__pbuilt(P, out->var, a->begin, a->end, a->point);
}

static bool eval_seq(mt__pctx *P, const mt__ast *a, mt__val *out)
{
    out->kind = V_SEQ;
    out->is_list = a->kind == A_LIST;
    out->n = a->n;
    out->items = palloc(P, (size_t)a->n * sizeof(mt__val));
    if (!out->items) return false;
    for (int32_t i = 0; i < a->n; i++)
        if (!mt__peval(P, a->kids[i], &out->items[i])) return false;
    return true;
}

/* ---------------------------------------------------------------- indexing */

/* A static slice bound: an int or None. */
static bool slice_bound(mt__pctx *P, const mt__ast *a, int64_t *out)
{
    *out = MT_IDX_NONE;
    if (!a) return true;
    mt__val v;
    if (!mt__peval(P, a, &v)) return false;
    if (v.kind == V_NONE) return true;
    if (v.kind == V_INT) {
        *out = v.i == MT_IDX_NONE ? MT_IDX_NONE + 1 : v.i;
        return true;
    }
    return mt__perr(P, MT_ERR_INVALID, v.begin, v.end, v.begin,
                    "slice bounds must be integer literals or None, got %s%s",
                    mt__vkind_name(v.kind),
                    v.kind == V_VAR ? " (slices with computed bounds are not supported)" : "");
}

/* The items of a subscript (kids[1..n) of a SUBSCRIPT node), a parenthesized tuple item
 * unpacked as Python does. *items is allocated in the arena. */
static bool eval_items(mt__pctx *P, const mt__ast *sub, mt__val **items, int32_t *n)
{
    const mt__ast *const *kids = (const mt__ast *const *)sub->kids + 1;
    int32_t nk = sub->n - 1;
    if (nk == 1 && kids[0]->kind == A_TUPLE && !sub->trailing_comma) {
        kids = (const mt__ast *const *)kids[0]->kids;
        nk = sub->kids[1]->n;
    }
    *items = palloc(P, (size_t)nk * sizeof(mt__val));
    if (!*items) return false;
    *n = nk;
    for (int32_t i = 0; i < nk; i++) {
        const mt__ast *k = kids[i];
        mt__val *v = &(*items)[i];
        if (k->kind != A_SLICE) {
            if (!mt__peval(P, k, v)) return false;
            continue;
        }
        memset(v, 0, sizeof(*v));
        v->kind = V_SLICE;
        v->begin = k->begin;
        v->end = k->end;
        v->point = k->point;
        if (!slice_bound(P, k->kids[0], &v->start) || !slice_bound(P, k->kids[1], &v->stop) ||
            !slice_bound(P, k->kids[2], &v->step))
            return false;
    }
    return true;
}

bool mt__pindex(mt__pctx *P, mt_var x, int32_t n, const mt__val *items, const mt__val *site,
                mt_var *out)
{
    if (n > 2 * MT_MAX_DIMS + 1)
        return mt__perr(P, MT_ERR_INVALID, site->begin, site->end, site->point,
                        "too many indices (%d)", (int)n);
    mt_idx idx[2 * MT_MAX_DIMS + 1];
    int32_t apos = -1, nconsume = 0;
    mt_var avar = MT_VAR_NONE;
    for (int32_t i = 0; i < n; i++) {
        const mt__val *v = &items[i];
        switch (v->kind) {
        case V_INT:
            idx[i] = mt_idx_int(v->i);
            nconsume++;
            break;
        case V_SLICE:
            idx[i] = mt_idx_slice(v->start, v->stop, v->step);
            nconsume++;
            break;
        case V_NONE:
            idx[i] = mt_idx_newaxis();
            break;
        case V_ELLIPSIS:
            idx[i] = mt_idx_ellipsis();
            break;
        case V_VAR:
        case V_SEQ: {
            mt_var iv;
            if (!mt__pvar(P, v, &iv)) return false;
            mt_dtype dt = vtype(P, iv)->dtype;
            if (dt == MT_BOOL)
                return mt__perr(P, MT_ERR_INVALID, v->begin, v->end, v->begin,
                                "boolean mask indexing is not supported (the result's shape "
                                "would depend on the values); use where(mask, x, 0)");
            if (!mt_dtype_is_int(dt))
                return mt__perr(P, MT_ERR_INVALID, v->begin, v->end, v->begin,
                                "array indices must be integers, got %s", mt_dtype_name(dt));
            if (apos >= 0)
                return mt__perr(P, MT_ERR_INVALID, v->begin, v->end, v->begin,
                                "only one integer array index per subscript is supported");
            apos = i;
            avar = iv;
            idx[i] = mt_idx_all();
            nconsume++;
            break;
        }
        case V_BOOL:
            return mt__perr(P, MT_ERR_INVALID, v->begin, v->end, v->begin,
                            "boolean indices are not supported");
        default:
            return mt__perr(P, MT_ERR_INVALID, v->begin, v->end, v->begin,
                            "indices must be integers, slices, None, ... or integer arrays, "
                            "got %s",
                            mt__vkind_name(v->kind));
        }
    }
    mt_graph *g = P->g;
    mt__porigin(P, site->begin, site->end);
    if (apos < 0) {
        *out = mt_graph_index(g, x, n, idx);
        return mt__pbuilt(P, *out, site->begin, site->end, site->point);
    }
    /* One integer array: NumPy puts its dimensions where it stands when the integers indexing
     * with it are adjacent to it; that equals take() on the basic-indexed rest. */
    for (int32_t i = 0; i < n; i++) {
        if (items[i].kind != V_INT) continue;
        int32_t lo = i < apos ? i : apos, hi = i < apos ? apos : i;
        for (int32_t j = lo + 1; j < hi; j++)
            if (items[j].kind != V_INT)
                return mt__perr(P, MT_ERR_INVALID, site->begin, site->end, site->point,
                                "an integer array index combined with integers that are not "
                                "next to it is not supported");
    }
    int32_t nd = vtype(P, x)->ndim, axis = 0;
    bool basic = false;
    for (int32_t i = 0; i < n; i++) {
        if (i < apos) {
            if (items[i].kind == V_SLICE || items[i].kind == V_NONE) axis++;
            if (items[i].kind == V_ELLIPSIS) axis += nd - nconsume > 0 ? nd - nconsume : 0;
        }
        if (items[i].kind == V_SLICE || items[i].kind == V_INT || items[i].kind == V_NONE)
            basic = basic || !(items[i].kind == V_SLICE && items[i].start == MT_IDX_NONE &&
                               items[i].stop == MT_IDX_NONE && items[i].step == MT_IDX_NONE);
    }
    mt_var y = x;
    if (basic) {
        y = mt_graph_index(g, x, n, idx);
        if (!mt__pbuilt(P, y, site->begin, site->end, site->point)) return false;
    }
    *out = mt_graph_gather(g, y, avar, axis);
    return mt__pbuilt(P, *out, site->begin, site->end, site->point);
}

static bool eval_subscript(mt__pctx *P, const mt__ast *a, mt__val *out)
{
    mt__val base, *items;
    int32_t n;
    if (!mt__peval(P, a->kids[0], &base)) return false;
    if (!eval_items(P, a, &items, &n)) return false;
    /* Python indexing of tuples (split(x, 2)[0]) and of x.shape */
    if ((base.kind == V_SEQ && !base.is_list) || base.kind == V_SHAPE ||
        (base.kind == V_SEQ && n == 1 && items[0].kind == V_INT && base.n > 0 &&
         base.items[0].kind == V_VAR)) {
        if (n != 1 || items[0].kind != V_INT)
            return mt__perr(P, MT_ERR_INVALID, a->begin, a->end, a->point,
                            "a %s can only be indexed with one integer",
                            base.kind == V_SHAPE ? "shape" : "tuple");
        int64_t len = base.kind == V_SHAPE ? vtype(P, base.var)->ndim : base.n;
        int64_t i = items[0].i < 0 ? items[0].i + len : items[0].i;
        if (i < 0 || i >= len)
            return mt__perr(P, MT_ERR_RANGE, items[0].begin, items[0].end, items[0].begin,
                            "index %lld is out of range for a %s of length %lld",
                            (long long)items[0].i, base.kind == V_SHAPE ? "shape" : "tuple",
                            (long long)len);
        if (base.kind == V_SHAPE) {
            int64_t s = vtype(P, base.var)->shape[i];
            if (s < 0)
                return mt__perr(P, MT_ERR_INVALID, a->begin, a->end, a->point,
                                "the size of axis %lld is not known when the graph is built",
                                (long long)i);
            out->kind = V_INT;
            out->i = s;
            return true;
        }
        int32_t b = out->begin, e = out->end, p = out->point;
        *out = base.items[i];
        if (out->kind != V_VAR) {
            out->begin = b;
            out->end = e;
            out->point = p;
        }
        return true;
    }
    mt_var x;
    if (base.kind == V_MODULE || base.kind == V_FUNC || base.kind == V_DTYPE)
        return mt__perr(P, MT_ERR_INVALID, base.begin, base.end, base.point,
                        "a %s is not subscriptable", mt__vkind_name(base.kind));
    if (!mt__pvar(P, &base, &x)) return false;
    out->kind = V_VAR;
    return mt__pindex(P, x, n, items, out, &out->var);
}

/* ---------------------------------------------------------------- attributes and calls */

static const char *const array_attrs[] = {"T", "shape", "ndim", "dtype", "size"};

static bool array_attr(mt__pctx *P, const mt__ast *a, mt_var x, mt__val *out)
{
    const mt_type *t = vtype(P, x);
    const char *s = a->s;
    if (!strcmp(s, "T")) {
        mt__porigin(P, a->begin, a->end);
        out->kind = V_VAR;
        out->var = mt_graph_transpose(P->g, x, NULL);
        return mt__pbuilt(P, out->var, a->begin, a->end, a->point);
    }
    if (!strcmp(s, "ndim")) {
        out->kind = V_INT;
        out->i = t->ndim;
        return true;
    }
    if (!strcmp(s, "dtype")) {
        out->kind = V_DTYPE;
        out->dt = t->dtype;
        return true;
    }
    if (!strcmp(s, "shape")) {
        if (!mt_type_is_static(t)) {
            out->kind = V_SHAPE;
            out->var = x;
            return true;
        }
        out->kind = V_SEQ;
        out->n = t->ndim;
        out->items = palloc(P, (size_t)t->ndim * sizeof(mt__val));
        if (!out->items) return false;
        for (int32_t d = 0; d < t->ndim; d++) {
            memset(&out->items[d], 0, sizeof(mt__val));
            out->items[d].kind = V_INT;
            out->items[d].i = t->shape[d];
            out->items[d].begin = a->begin;
            out->items[d].end = a->end;
            out->items[d].point = a->point;
        }
        return true;
    }
    if (!strcmp(s, "size")) {
        int64_t n = mt_type_numel(t);
        if (n >= 0) {
            out->kind = V_INT;
            out->i = n;
            return true;
        }
        mt__porigin(P, a->begin, a->end);
        out->kind = V_VAR;
        out->var = mt_graph_size_of(P->g, x, 0, NULL);
        return mt__pbuilt(P, out->var, a->begin, a->end, a->point);
    }
    const mt__fn_def *f = mt__fn_find(s);
    if (f && (f->flags & MT__FN_METHOD)) {
        out->kind = V_FUNC;
        out->fn = f;
        out->has_self = true;
        out->var = x;
        return true;
    }
    mt__suggest sg;
    mt__suggest_init(&sg, s);
    for (size_t i = 0; i < sizeof(array_attrs) / sizeof(array_attrs[0]); i++)
        mt__suggest_offer(&sg, array_attrs[i]);
    mt__fn_suggest(&sg, true);
    char hint[128] = "";
    if (sg.best) snprintf(hint, sizeof hint, " (did you mean '%s'?)", sg.best);
    return mt__perr(P, MT_ERR_INVALID, a->point, a->end, a->point,
                    "an array has no attribute or method '%s'%s", s, hint);
}

static bool eval_attr(mt__pctx *P, const mt__ast *a, mt__val *out)
{
    mt__val obj;
    if (!mt__peval(P, a->kids[0], &obj)) return false;
    const char *s = a->s;
    if (obj.kind == V_MODULE) {
        if (is_module_name(s)) {
            out->kind = V_MODULE;
            out->s = s;
            return true;
        }
        if (constant_by_name(s, out)) return true;
        if (dtype_by_name(s, &out->dt)) {
            out->kind = V_DTYPE;
            return true;
        }
        const mt__fn_def *f = mt__fn_find(s);
        if (f) {
            out->kind = V_FUNC;
            out->fn = f;
            return true;
        }
        mt__suggest sg;
        mt__suggest_init(&sg, s);
        mt__fn_suggest(&sg, false);
        char hint[128] = "";
        if (sg.best) snprintf(hint, sizeof hint, " (did you mean '%s'?)", sg.best);
        return mt__perr(P, MT_ERR_INVALID, a->point, a->end, a->point,
                        "module '%s' has no function or constant '%s'%s", obj.s, s, hint);
    }
    if (obj.kind == V_VAR || obj.kind == V_INT || obj.kind == V_FLOAT || obj.kind == V_BOOL ||
        obj.kind == V_SEQ) {
        mt_var x;
        if (!mt__pvar(P, &obj, &x)) return false;
        return array_attr(P, a, x, out);
    }
    return mt__perr(P, MT_ERR_INVALID, a->point, a->end, a->point, "a %s has no attribute '%s'",
                    mt__vkind_name(obj.kind), s);
}

/* The target of set_subtensor / inc_subtensor: x[items] kept unevaluated as V_INDEX. */
static bool eval_index_target(mt__pctx *P, const mt__ast *a, mt__val *out)
{
    memset(out, 0, sizeof(*out));
    out->begin = a->begin;
    out->end = a->end;
    out->point = a->point;
    mt__val base;
    if (!mt__peval(P, a->kids[0], &base) || !mt__pvar(P, &base, &out->var)) return false;
    out->kind = V_INDEX;
    return eval_items(P, a, &out->items, &out->n);
}

static bool eval_call(mt__pctx *P, const mt__ast *a, mt__val *out)
{
    const mt__ast *callee = a->kids[0];
    mt__val fv;
    memset(&fv, 0, sizeof(fv));
    if (callee->kind == A_NAME) {
        const mt__fn_def *f = mt__fn_find(callee->s);
        if (f) { /* in call position the language's functions win over bound names */
            fv.kind = V_FUNC;
            fv.fn = f;
        } else {
            mt_dtype dt;
            if (lookup_var(P, callee->s) != MT_VAR_NONE)
                return mt__perr(P, MT_ERR_INVALID, callee->begin, callee->end, callee->begin,
                                "'%s' is an array, not a function", callee->s);
            if (dtype_by_name(callee->s, &dt)) {
                fv.kind = V_DTYPE;
                fv.dt = dt;
            } else {
                return unknown_name(P, callee, true);
            }
        }
    } else if (!mt__peval(P, callee, &fv)) {
        return false;
    }
    int32_t n = a->n - 1;
    mt__val *args = palloc(P, (size_t)(n ? n : 1) * sizeof(mt__val));
    if (!args) return false;
    const char *name = fv.kind == V_FUNC ? fv.fn->name : "cast";
    for (int32_t i = 0; i < n; i++) {
        const mt__ast *k = a->kids[i + 1];
        bool target =
            fv.kind == V_FUNC && (fv.fn->flags & MT__FN_SUBTENSOR) && i == 0 && !a->kwnames[i + 1];
        if (target) {
            if (k->kind != A_SUBSCRIPT)
                return mt__perr(P, MT_ERR_INVALID, k->begin, k->end, k->begin,
                                "%s(): the first argument must be an indexing expression such "
                                "as x[1:3] or x[idx]",
                                name);
            if (!eval_index_target(P, k, &args[i])) return false;
        } else if (!mt__peval(P, k, &args[i])) {
            return false;
        }
    }
    mt__call c = {a->begin, a->end, a->point, name};
    if (fv.kind == V_DTYPE) { /* float32(x): a cast, like np.float32(x) */
        if (n != 1 || a->kwnames[1])
            return mt__perr(P, MT_ERR_INVALID, a->begin, a->end, a->point,
                            "%s() takes exactly one positional argument", mt_dtype_name(fv.dt));
        mt_var x;
        if (!mt__pvar(P, &args[0], &x)) return false;
        mt__porigin(P, a->begin, a->end);
        out->kind = V_VAR;
        out->var = mt_graph_cast(P->g, x, fv.dt);
        return mt__pbuilt(P, out->var, a->begin, a->end, a->point);
    }
    if (fv.kind != V_FUNC)
        return mt__perr(P, MT_ERR_INVALID, callee->begin, callee->end, callee->point,
                        "a %s is not callable", mt__vkind_name(fv.kind));
    mt__val self;
    if (fv.has_self) {
        memset(&self, 0, sizeof(self));
        self.kind = V_VAR;
        self.var = fv.var;
        self.begin = callee->kids[0]->begin;
        self.end = callee->kids[0]->end;
        self.point = callee->kids[0]->point;
    }
    if (!mt__fn_call(P, fv.fn, &c, fv.has_self ? &self : NULL, n, args,
                     (const char *const *)a->kwnames + 1, a->kwpos + 1, out))
        return false;
    /* the result keeps the call's span */
    int32_t b = a->begin, e = a->end, p = a->point;
    if (out->kind != V_VAR) {
        out->begin = b;
        out->end = e;
        out->point = p;
    }
    return true;
}

/* ---------------------------------------------------------------- the evaluator */

bool mt__peval(mt__pctx *P, const mt__ast *a, mt__val *out)
{
    memset(out, 0, sizeof(*out));
    out->begin = a->begin;
    out->end = a->end;
    out->point = a->point;
    switch (a->kind) {
    case A_INT:
        if (a->u > (uint64_t)INT64_MAX)
            return mt__perr(P, MT_ERR_RANGE, a->begin, a->end, a->begin,
                            "integer literal %llu does not fit in int64", (unsigned long long)a->u);
        out->kind = V_INT;
        out->i = (int64_t)a->u;
        return true;
    case A_FLOAT:
        out->kind = V_FLOAT;
        out->f = a->f;
        return true;
    case A_STR:
        out->kind = V_STR;
        out->s = a->s;
        out->n = a->slen;
        return true;
    case A_TRUE:
        out->kind = V_BOOL;
        out->b = true;
        return true;
    case A_FALSE:
        out->kind = V_BOOL;
        out->b = false;
        return true;
    case A_NONE:
        out->kind = V_NONE;
        return true;
    case A_ELLIPSIS:
        out->kind = V_ELLIPSIS;
        return true;
    case A_NAME:
        return eval_name(P, a, out);
    case A_UNARY:
        return eval_unary(P, a, out);
    case A_CHAIN:
        return eval_chain(P, a, out);
    case A_POW: {
        mt__val x, y;
        if (!mt__peval(P, a->kids[0], &x) || !mt__peval(P, a->kids[1], &y)) return false;
        return binop(P, POP_DSTAR, &x, &y, a->begin, a->end, a->point, out);
    }
    case A_COMPARE:
        return eval_compare(P, a, out);
    case A_COND:
        return eval_cond(P, a, out);
    case A_CALL:
        return eval_call(P, a, out);
    case A_ATTR:
        return eval_attr(P, a, out);
    case A_SUBSCRIPT:
        return eval_subscript(P, a, out);
    case A_TUPLE:
    case A_LIST:
        return eval_seq(P, a, out);
    case A_SLICE:
        return mt__perr(P, MT_ERR_INVALID, a->begin, a->end, a->point,
                        "a slice is only allowed inside []");
    }
    return mt__perr(P, MT_ERR_INTERNAL, a->begin, a->end, a->point, "unknown syntax node");
}

/* ---------------------------------------------------------------- public entry points */

void mt_parse_options_init(mt_parse_options *opts)
{
    if (opts) memset(opts, 0, sizeof(*opts));
}

static void locate(const char *text, int32_t len, int32_t point, int32_t *line, int32_t *col)
{
    int32_t l = 1, c = 1;
    for (int32_t i = 0; i < point && i < len; i++) {
        unsigned char ch = (unsigned char)text[i];
        if (ch == '\n') {
            l++;
            c = 1;
        } else if ((ch & 0xC0) != 0x80) {
            c++;
        }
    }
    *line = l;
    *col = c;
}

/* A recent identical source text, so re-parsing the same expression (a cost evaluated per
 * experiment step, a test loop) does not grow the graph. */
static int32_t find_source(const mt_graph *g, const char *text)
{
    for (int32_t i = g->nsources - 1; i >= 0 && i >= g->nsources - 16; i--)
        if (!strcmp(g->sources[i], text)) return i;
    return -1;
}

mt_status mt_graph_parse_ex(mt_graph *g, const char *text, const mt_parse_options *opts,
                            mt_var *out, mt_parse_error *err)
{
    mt_parse_error local;
    if (!err) err = &local;
    memset(err, 0, sizeof(*err));
    if (out) *out = MT_VAR_NONE;
    if (!g || !text || !out) {
        err->status = MT_ERR_INVALID;
        snprintf(err->message, sizeof err->message, "graph_parse: %s is NULL",
                 !g      ? "the graph"
                 : !text ? "the text"
                         : "the output");
        err->line = err->col = 1;
        return mt_err_set(MT_ERR_INVALID, "%s", err->message);
    }
    mt_parse_options defaults;
    mt_parse_options_init(&defaults);
    if (!opts) opts = &defaults;
    mt__pctx P;
    memset(&P, 0, sizeof(P));
    P.g = g;
    P.text = text;
    P.opts = opts;
    P.err = err;
    P.source = -1;
    P.max_depth = opts->max_depth > 0 ? opts->max_depth : MT_PARSE_DEFAULT_MAX_DEPTH;
    if (P.max_depth > MT_PARSE_MAX_DEPTH_LIMIT) P.max_depth = MT_PARSE_MAX_DEPTH_LIMIT;
    int32_t max_len = opts->max_length > 0 ? opts->max_length : MT_PARSE_DEFAULT_MAX_LENGTH;
    size_t len = strnlen(text, (size_t)max_len + 1);
    mt_status before = mt_graph_status(g);
    if (len > (size_t)max_len) {
        P.len = max_len;
        mt__perr(&P, MT_ERR_RANGE, max_len, max_len, max_len, "expression is longer than %d bytes",
                 (int)max_len);
    } else {
        P.len = (int32_t)len;
        if (opts->n_bindings > 0 && (!opts->names || !opts->vars))
            mt__perr(&P, MT_ERR_INVALID, 0, 0, 0, "graph_parse: bindings without names or vars");
    }
    mt__ast *root = NULL;
    if (!P.failed && mt__parse_tree(&P, &root)) {
        P.source = find_source(g, text);
        if (P.source < 0) P.source = mt_graph_add_source(g, text);
        mt__val v;
        mt_var r = MT_VAR_NONE;
        if (P.source < 0)
            mt__perr(&P, MT_ERR_NOMEM, 0, 0, 0, "out of memory storing the source text");
        else if (mt__peval(&P, root, &v)) {
            if (v.kind == V_SEQ && !v.is_list && v.n > 0 && v.items[0].kind == V_VAR)
                mt__perr(&P, MT_ERR_INVALID, v.begin, v.end, v.point,
                         "the expression gives a tuple of %d values, not one array; index it, "
                         "e.g. (...)[0]",
                         (int)v.n);
            else if (mt__pvar(&P, &v, &r))
                *out = r;
        }
        mt_graph_clear_origin(g);
    }
    mt_arena_free(&P.arena);
    mt_free(P.toks);
    if (!P.failed) return MT_OK;
    *out = MT_VAR_NONE;
    if (before == MT_OK && mt_graph_status(g) != MT_OK) mt_graph_clear_error(g);
    locate(text, P.len, err->point, &err->line, &err->col);
    return mt_err_set(err->status, "%d:%d: %s", (int)err->line, (int)err->col, err->message);
}

mt_status mt_graph_parse(mt_graph *g, const char *text, int32_t n_bindings,
                         const char *const *names, const mt_var *vars, mt_var *out,
                         mt_parse_error *err)
{
    mt_parse_options o;
    mt_parse_options_init(&o);
    o.n_bindings = n_bindings;
    o.names = names;
    o.vars = vars;
    return mt_graph_parse_ex(g, text, &o, out, err);
}

/* ---------------------------------------------------------------- caret rendering */

#define WINDOW 100

void mt_parse_error_format(const mt_parse_error *err, const char *text, mt_strbuf *sb)
{
    if (!err || !sb) return;
    mt_strbuf_appendf(sb, "%d:%d: %s", (int)err->line, (int)err->col, err->message);
    if (!text) return;
    int32_t len = (int32_t)strnlen(text, (size_t)INT32_MAX / 2);
    int32_t point = err->point < 0 ? 0 : err->point > len ? len : err->point;
    int32_t ls = point, le = point;
    while (ls > 0 && text[ls - 1] != '\n')
        ls--;
    while (le < len && text[le] != '\n')
        le++;
    int32_t ws = ls, we = le;
    if (le - ls > WINDOW) { /* a window around the caret, on character boundaries */
        ws = point - WINDOW / 2 < ls ? ls : point - WINDOW / 2;
        we = ws + WINDOW > le ? le : ws + WINDOW;
        if (we == le && le - WINDOW > ls) ws = le - WINDOW;
        while (ws > ls && ((unsigned char)text[ws] & 0xC0) == 0x80)
            ws++;
        while (we < le && ((unsigned char)text[we] & 0xC0) == 0x80)
            we++;
    }
    bool cut_left = ws > ls, cut_right = we < le;
    mt_strbuf_append(sb, "\n  ");
    if (cut_left) mt_strbuf_append(sb, "...");
    for (int32_t i = ws; i < we; i++) {
        unsigned char c = (unsigned char)text[i];
        char ch = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
        mt_strbuf_appendn(sb, &ch, 1);
    }
    if (cut_right) mt_strbuf_append(sb, "...");
    mt_strbuf_append(sb, "\n  ");
    if (cut_left) mt_strbuf_append(sb, "   ");
    int32_t sb_begin = err->begin < ws ? ws : err->begin;
    int32_t sb_end = err->end > we ? we : err->end;
    int32_t last = point > sb_end - 1 ? point : sb_end - 1;
    if (last >= we) last = we; /* caret just past the end of the line */
    for (int32_t i = ws; i <= last; i++) {
        if (i < we && ((unsigned char)text[i] & 0xC0) == 0x80) continue; /* one per character */
        char ch = i == point ? '^' : (i >= sb_begin && i < sb_end) ? '~' : ' ';
        mt_strbuf_appendn(sb, &ch, 1);
    }
}
