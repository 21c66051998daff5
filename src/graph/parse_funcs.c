/* The functions of the expression language: one table entry per name (NumPy / Theano names and
 * their aliases) with a Python signature string that is both the documentation and the spec
 * the arguments are bound against (positional, keyword, keyword-only after '*', '*rest'), and
 * the implementation that converts the bound values and calls the graph builders. Static
 * arguments (axes, shapes, dtypes, ddof, bounds of random draws) must be literals. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parse_impl.h"

/* ---------------------------------------------------------------- signatures and binding */

#define MAX_PARAMS 8

typedef struct fparam {
    char name[24];
    bool opt, kwonly, var;
} fparam;

static int32_t sig_params(const char *sig, fparam *ps)
{
    const char *p = strchr(sig, '(');
    int32_t n = 0;
    bool kwonly = false;
    if (!p) return 0;
    p++;
    while (*p && *p != ')' && n < MAX_PARAMS) {
        while (*p == ' ')
            p++;
        const char *s = p;
        while (*p && *p != ',' && *p != ')')
            p++;
        size_t len = (size_t)(p - s);
        if (*p == ',') p++;
        if (len == 1 && s[0] == '*') {
            kwonly = true;
            continue;
        }
        fparam *q = &ps[n++];
        memset(q, 0, sizeof(*q));
        q->var = s[0] == '*';
        if (q->var) {
            s++;
            len--;
        }
        size_t nl = 0;
        while (nl < len && s[nl] != '=')
            nl++;
        q->opt = nl < len;
        q->kwonly = kwonly;
        if (nl >= sizeof(q->name)) nl = sizeof(q->name) - 1;
        memcpy(q->name, s, nl);
        q->name[nl] = 0;
    }
    return n;
}

static const mt__val absent_val; /* all zero: V_ABSENT */

/* The bound argument of parameter `name` (V_ABSENT if not given or no such parameter). */
static const mt__val *arg(const mt__fn_def *f, const mt__val *args, const char *name)
{
    fparam ps[MAX_PARAMS];
    int32_t n = sig_params(f->sig, ps);
    for (int32_t i = 0; i < n; i++)
        if (!strcmp(ps[i].name, name)) return &args[i];
    return &absent_val;
}

static bool given(const mt__val *v)
{
    return v->kind != V_ABSENT && v->kind != V_NONE;
}

bool mt__fn_call(mt__pctx *P, const mt__fn_def *f, const mt__call *c, const mt__val *self,
                 int32_t n, mt__val *args, const char *const *kwnames, const int32_t *kwpos,
                 mt__val *out)
{
    fparam ps[MAX_PARAMS];
    int32_t np = sig_params(f->sig, ps);
    mt__val *bound = mt_arena_alloc(&P->arena, sizeof(mt__val) * MAX_PARAMS, 16);
    mt__val *pos = mt_arena_alloc(&P->arena, sizeof(mt__val) * (size_t)(n + 1), 16);
    if (!bound || !pos)
        return mt__perr(P, MT_ERR_NOMEM, c->begin, c->end, c->point, "out of memory");
    memset(bound, 0, sizeof(mt__val) * MAX_PARAMS);
    int32_t npos = 0, nargpos = 0;
    if (self) pos[npos++] = *self;
    for (int32_t i = 0; i < n; i++)
        if (!kwnames[i]) nargpos++;
    if (self && (f->flags & MT__FN_PACK) && nargpos > 1) { /* x.reshape(2, 3) */
        mt__val *items = mt_arena_alloc(&P->arena, sizeof(mt__val) * (size_t)nargpos, 16);
        if (!items) return mt__perr(P, MT_ERR_NOMEM, c->begin, c->end, c->point, "out of memory");
        int32_t k = 0;
        for (int32_t i = 0; i < n; i++)
            if (!kwnames[i]) items[k++] = args[i];
        mt__val *t = &pos[npos++];
        memset(t, 0, sizeof(*t));
        t->kind = V_SEQ;
        t->n = nargpos;
        t->items = items;
        t->begin = items[0].begin;
        t->end = items[nargpos - 1].end;
        t->point = t->begin;
    } else {
        for (int32_t i = 0; i < n; i++)
            if (!kwnames[i]) pos[npos++] = args[i];
    }
    int32_t pi = 0;
    for (int32_t i = 0; i < npos; i++) {
        while (pi < np && ps[pi].kwonly)
            pi++;
        if (pi < np && ps[pi].var) { /* *rest */
            mt__val *t = &bound[pi];
            t->kind = V_SEQ;
            t->n = npos - i;
            t->items = &pos[i];
            t->begin = pos[i].begin;
            t->end = pos[npos - 1].end;
            t->point = t->begin;
            pi++;
            break;
        }
        if (pi >= np || ps[pi].kwonly) {
            int32_t maxpos = 0;
            for (int32_t k = 0; k < np; k++)
                maxpos += !ps[k].kwonly;
            return mt__perr(P, MT_ERR_INVALID, pos[i].begin, pos[i].end, pos[i].begin,
                            "%s() takes at most %d positional argument%s (%d given)", c->name,
                            (int)maxpos, maxpos == 1 ? "" : "s", (int)npos);
        }
        bound[pi++] = pos[i];
    }
    for (int32_t i = 0; i < n; i++) {
        if (!kwnames[i]) continue;
        int32_t k = 0;
        while (k < np && (ps[k].var || strcmp(ps[k].name, kwnames[i])))
            k++;
        int32_t kb = kwpos[i], ke = kb + (int32_t)strlen(kwnames[i]);
        if (k == np) {
            mt__suggest s;
            mt__suggest_init(&s, kwnames[i]);
            for (int32_t j = 0; j < np; j++)
                if (!ps[j].var) mt__suggest_offer(&s, ps[j].name);
            char hint[96] = "";
            if (s.best) snprintf(hint, sizeof hint, " (did you mean '%s'?)", s.best);
            return mt__perr(P, MT_ERR_INVALID, kb, ke, kb,
                            "%s() got an unexpected keyword argument '%s'%s; signature: %s",
                            c->name, kwnames[i], hint, f->sig);
        }
        if (bound[k].kind != V_ABSENT)
            return mt__perr(P, MT_ERR_INVALID, kb, ke, kb,
                            "%s() got multiple values for argument '%s'", c->name, kwnames[i]);
        bound[k] = args[i];
    }
    for (int32_t k = 0; k < np; k++) {
        if (ps[k].var && bound[k].kind == V_ABSENT) {
            bound[k].kind = V_SEQ;
            bound[k].begin = c->begin;
            bound[k].end = c->end;
        }
        if (!ps[k].opt && !ps[k].var && bound[k].kind == V_ABSENT)
            return mt__perr(P, MT_ERR_INVALID, c->begin, c->end, c->point,
                            "%s() missing required argument '%s'; signature: %s", c->name,
                            ps[k].name, f->sig);
    }
    memset(out, 0, sizeof(*out));
    out->begin = c->begin;
    out->end = c->end;
    out->point = c->point;
    return f->impl(P, f, c, bound, out);
}

/* ---------------------------------------------------------------- argument conversion */

static bool bad_arg(mt__pctx *P, const mt__call *c, const mt__val *v, const char *pname,
                    const char *need)
{
    int32_t b = v->kind == V_ABSENT ? c->begin : v->begin;
    int32_t e = v->kind == V_ABSENT ? c->end : v->end;
    int32_t p = v->kind == V_ABSENT ? c->point : v->begin;
    return mt__perr(P, MT_ERR_INVALID, b, e, p, "%s(): '%s' must be %s, got %s", c->name, pname,
                    need, mt__vkind_name(v->kind));
}

static bool a_var(mt__pctx *P, const mt__val *v, mt_var *out)
{
    return mt__pvar(P, v, out);
}

static bool a_int(mt__pctx *P, const mt__call *c, const mt__val *v, const char *pname, int64_t *out)
{
    if (v->kind != V_INT) return bad_arg(P, c, v, pname, "an integer literal");
    *out = v->i;
    return true;
}

static bool a_float(mt__pctx *P, const mt__call *c, const mt__val *v, const char *pname,
                    double *out)
{
    if (v->kind == V_FLOAT)
        *out = v->f;
    else if (v->kind == V_INT)
        *out = (double)v->i;
    else if (v->kind == V_BOOL)
        *out = v->b;
    else
        return bad_arg(P, c, v, pname, "a number literal");
    return true;
}

static bool a_bool(mt__pctx *P, const mt__call *c, const mt__val *v, const char *pname, bool def,
                   bool *out)
{
    *out = def;
    if (v->kind == V_ABSENT) return true;
    if (v->kind == V_BOOL)
        *out = v->b;
    else if (v->kind == V_INT && (v->i == 0 || v->i == 1))
        *out = v->i != 0;
    else
        return bad_arg(P, c, v, pname, "True or False");
    return true;
}

/* dtype from a dtype name, a string or None/absent (def; MT_DTYPE_COUNT = none). */
static bool a_dtype(mt__pctx *P, const mt__call *c, const mt__val *v, const char *pname,
                    mt_dtype def, mt_dtype *out)
{
    *out = def;
    if (v->kind == V_ABSENT || v->kind == V_NONE) return true;
    if (v->kind == V_DTYPE) {
        *out = v->dt;
        return true;
    }
    if (v->kind == V_STR) {
        if (mt_dtype_from_name(out, v->s) == MT_OK) return true;
        mt__suggest s;
        mt__suggest_init(&s, v->s);
        for (int k = 0; k < MT_DTYPE_COUNT; k++)
            mt__suggest_offer(&s, mt_dtype_name((mt_dtype)k));
        char hint[96] = "";
        if (s.best) snprintf(hint, sizeof hint, " (did you mean '%s'?)", s.best);
        return mt__perr(P, MT_ERR_DTYPE, v->begin, v->end, v->begin, "%s(): unknown dtype '%s'%s",
                        c->name, v->s, hint);
    }
    return bad_arg(P, c, v, pname, "a dtype (float32, 'int64', ...)");
}

/* axis: None/absent (all: *naxes 0), an int, or a tuple of ints (*empty for ()). */
static bool a_axes(mt__pctx *P, const mt__call *c, const mt__val *v, const char *pname,
                   int32_t *naxes, int32_t *axes, bool *empty)
{
    *naxes = 0;
    *empty = false;
    if (v->kind == V_ABSENT || v->kind == V_NONE) return true;
    if (v->kind == V_INT) {
        if (v->i < -MT_MAX_DIMS - 1 || v->i > MT_MAX_DIMS)
            return mt__perr(P, MT_ERR_INVALID, v->begin, v->end, v->begin,
                            "%s(): axis %lld is out of range", c->name, (long long)v->i);
        axes[0] = (int32_t)v->i;
        *naxes = 1;
        return true;
    }
    if (v->kind != V_SEQ || v->n > MT_MAX_DIMS)
        return bad_arg(P, c, v, pname, "an int, a tuple of ints or None");
    for (int32_t i = 0; i < v->n; i++) {
        const mt__val *it = &v->items[i];
        if (it->kind != V_INT || it->i < -MT_MAX_DIMS - 1 || it->i > MT_MAX_DIMS)
            return bad_arg(P, c, it, pname, "a tuple of small integers");
        axes[i] = (int32_t)it->i;
    }
    *naxes = v->n;
    *empty = v->n == 0;
    return true;
}

static bool a_axis(mt__pctx *P, const mt__call *c, const mt__val *v, const char *pname, int32_t def,
                   int32_t *out)
{
    *out = def;
    if (v->kind == V_ABSENT) return true;
    int64_t i = 0;
    if (!a_int(P, c, v, pname, &i)) return false;
    if (i < -MT_MAX_DIMS - 1 || i > MT_MAX_DIMS)
        return mt__perr(P, MT_ERR_INVALID, v->begin, v->end, v->begin,
                        "%s(): axis %lld is out of range", c->name, (long long)i);
    *out = (int32_t)i;
    return true;
}

/* A shape: an int, a tuple of ints, or (when ref is not NULL) x.shape with unknown sizes. */
static bool a_shape(mt__pctx *P, const mt__call *c, const mt__val *v, const char *pname,
                    int32_t *ndim, int64_t *shape, mt_var *ref)
{
    *ndim = 0;
    if (ref) *ref = MT_VAR_NONE;
    if (v->kind == V_SHAPE && ref) {
        *ref = v->var;
        return true;
    }
    if (v->kind == V_INT) {
        shape[0] = v->i;
        *ndim = 1;
        return true;
    }
    if (v->kind != V_SEQ) return bad_arg(P, c, v, pname, "an int or a tuple of ints");
    if (v->n > MT_MAX_DIMS)
        return mt__perr(P, MT_ERR_INVALID, v->begin, v->end, v->begin,
                        "%s(): a shape has at most %d dimensions", c->name, MT_MAX_DIMS);
    for (int32_t i = 0; i < v->n; i++) {
        if (v->items[i].kind != V_INT)
            return bad_arg(P, c, &v->items[i], pname, "a tuple of integer literals");
        shape[i] = v->items[i].i;
    }
    *ndim = v->n;
    return true;
}

/* A sequence of arrays (concatenate, stack). */
static bool a_vars(mt__pctx *P, const mt__call *c, const mt__val *v, const char *pname, int32_t *n,
                   mt_var **vs)
{
    if (v->kind != V_SEQ) return bad_arg(P, c, v, pname, "a list or tuple of arrays");
    *n = v->n;
    *vs = mt_arena_alloc(&P->arena, sizeof(mt_var) * (size_t)(v->n ? v->n : 1), 16);
    if (!*vs) return mt__perr(P, MT_ERR_NOMEM, v->begin, v->end, v->begin, "out of memory");
    for (int32_t i = 0; i < v->n; i++)
        if (!a_var(P, &v->items[i], &(*vs)[i])) return false;
    return true;
}

/* Stores a builder's result (checked) as the call's value. */
static bool ret(mt__pctx *P, const mt__call *c, mt_var r, mt__val *out)
{
    out->kind = V_VAR;
    out->var = r;
    return mt__pbuilt(P, r, c->begin, c->end, c->point);
}

#define ORIGIN() mt__porigin(P, c->begin, c->end)
#define IMPL(fn)                                                                                   \
    static bool fn(mt__pctx *P, const mt__fn_def *f, const mt__call *c, mt__val *args, mt__val *out)

/* ---------------------------------------------------------------- elementwise */

IMPL(impl_unary)
{
    mt_var x;
    if (!a_var(P, &args[0], &x)) return false;
    ORIGIN();
    return ret(P, c, f->un(P->g, x), out);
}

IMPL(impl_positive)
{
    (void)f;
    mt_var x;
    if (!a_var(P, &args[0], &x)) return false;
    return ret(P, c, x, out);
}

IMPL(impl_invert)
{
    (void)f;
    mt_var x;
    if (!a_var(P, &args[0], &x)) return false;
    ORIGIN();
    mt_var r = mt_graph_type(P->g, x)->dtype == MT_BOOL ? mt_graph_logical_not(P->g, x)
                                                        : mt_graph_unary(P->g, MT_SOP_BITNOT, x);
    return ret(P, c, r, out);
}

IMPL(impl_binary)
{
    mt_var a, b;
    if (!a_var(P, &args[0], &a) || !a_var(P, &args[1], &b)) return false;
    ORIGIN();
    return ret(P, c, f->bin(P->g, a, b), out);
}

IMPL(impl_binary_sop)
{
    mt_var a, b;
    if (!a_var(P, &args[0], &a) || !a_var(P, &args[1], &b)) return false;
    ORIGIN();
    return ret(P, c, mt_graph_binary(P->g, (mt_sop)f->code, a, b), out);
}

IMPL(impl_where)
{
    (void)f;
    mt_var cnd, a, b;
    if (!a_var(P, &args[0], &cnd) || !a_var(P, &args[1], &a) || !a_var(P, &args[2], &b))
        return false;
    ORIGIN();
    return ret(P, c, mt_graph_where(P->g, cnd, a, b), out);
}

IMPL(impl_clip)
{
    (void)f;
    mt_var x, lo = MT_VAR_NONE, hi = MT_VAR_NONE;
    if (!a_var(P, &args[0], &x)) return false;
    bool has_lo = given(&args[1]), has_hi = given(&args[2]);
    if (!has_lo && !has_hi)
        return mt__perr(P, MT_ERR_INVALID, c->begin, c->end, c->point,
                        "%s(): one of a_min and a_max must be given", c->name);
    if ((has_lo && !a_var(P, &args[1], &lo)) || (has_hi && !a_var(P, &args[2], &hi))) return false;
    ORIGIN();
    mt_var r = has_lo && has_hi ? mt_graph_clip(P->g, x, lo, hi)
               : has_lo         ? mt_graph_maximum(P->g, x, lo)
                                : mt_graph_minimum(P->g, x, hi);
    return ret(P, c, r, out);
}

IMPL(impl_cast)
{
    (void)f;
    mt_var x;
    mt_dtype dt;
    if (!a_var(P, &args[0], &x) || !a_dtype(P, c, &args[1], "dtype", MT_DTYPE_COUNT, &dt))
        return false;
    if (dt == MT_DTYPE_COUNT) return bad_arg(P, c, &args[1], "dtype", "a dtype");
    ORIGIN();
    return ret(P, c, mt_graph_cast(P->g, x, dt), out);
}

/* np.round: x * 10**d rounded half to even, divided back (NumPy's own method). */
IMPL(impl_round)
{
    mt_var x;
    int64_t d = 0;
    if (!a_var(P, &args[0], &x)) return false;
    if (arg(f, args, "decimals")->kind != V_ABSENT &&
        !a_int(P, c, arg(f, args, "decimals"), "decimals", &d))
        return false;
    ORIGIN();
    mt_graph *g = P->g;
    if (d == 0) return ret(P, c, mt_graph_round(g, x), out);
    mt_dtype dt = mt_graph_type(g, x)->dtype;
    if (!mt_dtype_is_float(dt)) {
        if (d > 0) return ret(P, c, x, out);
        return mt__perr(P, MT_ERR_UNSUPPORTED, c->begin, c->end, c->point,
                        "%s(): negative decimals of integer arrays are not supported", c->name);
    }
    if (d > 308 || d < -308)
        return mt__perr(P, MT_ERR_RANGE, c->begin, c->end, c->point,
                        "%s(): decimals %lld is out of range", c->name, (long long)d);
    mt_var k = mt_graph_literal_float(g, pow(10.0, (double)(d > 0 ? d : -d)));
    mt_var r = d > 0 ? mt_graph_div(g, mt_graph_round(g, mt_graph_mul(g, x, k)), k)
                     : mt_graph_mul(g, mt_graph_round(g, mt_graph_div(g, x, k)), k);
    return ret(P, c, r, out);
}

/* ---------------------------------------------------------------- reductions */

IMPL(impl_reduce)
{
    mt_var x;
    int32_t naxes, axes[MT_MAX_DIMS];
    bool empty, keep;
    mt_dtype dt;
    if (!a_var(P, &args[0], &x) ||
        !a_axes(P, c, arg(f, args, "axis"), "axis", &naxes, axes, &empty) ||
        !a_bool(P, c, arg(f, args, "keepdims"), "keepdims", false, &keep) ||
        !a_dtype(P, c, arg(f, args, "dtype"), "dtype", MT_DTYPE_COUNT, &dt))
        return false;
    mt_reduce_op op = (mt_reduce_op)f->code;
    mt_graph *g = P->g;
    ORIGIN();
    if (dt != MT_DTYPE_COUNT) x = mt_graph_cast(g, x, dt);
    mt_var r;
    if (empty) /* axis=(): nothing reduced, only NumPy's result dtype */
        r = mt_graph_cast(g, x,
                          mt_reduce_result_dtype(
                              op, mt_graph_type(g, x) ? mt_graph_type(g, x)->dtype : MT_FLOAT64));
    else
        r = mt_graph_reduce(g, op, x, naxes, axes, keep);
    if (dt != MT_DTYPE_COUNT && r && mt_graph_type(g, r)->dtype != dt && op != MT_REDUCE_ARGMAX &&
        op != MT_REDUCE_ARGMIN)
        r = mt_graph_cast(g, r, dt);
    return ret(P, c, r, out);
}

IMPL(impl_var)
{
    mt_var x;
    int32_t naxes, axes[MT_MAX_DIMS];
    bool empty, keep;
    mt_dtype dt;
    double ddof = 0;
    const mt__val *vd = arg(f, args, "ddof");
    if (!a_var(P, &args[0], &x) ||
        !a_axes(P, c, arg(f, args, "axis"), "axis", &naxes, axes, &empty) ||
        !a_bool(P, c, arg(f, args, "keepdims"), "keepdims", false, &keep) ||
        !a_dtype(P, c, arg(f, args, "dtype"), "dtype", MT_DTYPE_COUNT, &dt) ||
        (vd->kind != V_ABSENT && !a_float(P, c, vd, "ddof", &ddof)))
        return false;
    if (empty)
        return mt__perr(P, MT_ERR_UNSUPPORTED, c->begin, c->end, c->point,
                        "%s(): axis=() is not supported", c->name);
    ORIGIN();
    if (dt != MT_DTYPE_COUNT) x = mt_graph_cast(P->g, x, dt);
    mt_var r = f->code ? mt_graph_std(P->g, x, naxes, axes, keep, ddof)
                       : mt_graph_var(P->g, x, naxes, axes, keep, ddof);
    return ret(P, c, r, out);
}

IMPL(impl_logsumexp)
{
    mt_var x;
    int32_t naxes, axes[MT_MAX_DIMS];
    bool empty, keep;
    if (!a_var(P, &args[0], &x) ||
        !a_axes(P, c, arg(f, args, "axis"), "axis", &naxes, axes, &empty) ||
        !a_bool(P, c, arg(f, args, "keepdims"), "keepdims", false, &keep))
        return false;
    if (empty)
        return mt__perr(P, MT_ERR_UNSUPPORTED, c->begin, c->end, c->point,
                        "%s(): axis=() is not supported", c->name);
    ORIGIN();
    return ret(P, c, mt_graph_logsumexp(P->g, x, naxes, axes, keep), out);
}

/* ---------------------------------------------------------------- neural-network ops */

IMPL(impl_softmax)
{
    mt_var x;
    int32_t axis;
    if (!a_var(P, &args[0], &x) || !a_axis(P, c, arg(f, args, "axis"), "axis", -1, &axis))
        return false;
    ORIGIN();
    return ret(P, c, f->code ? mt_graph_logsoftmax(P->g, x, axis) : mt_graph_softmax(P->g, x, axis),
               out);
}

/* Categorical crossentropy: integer targets are class labels, others probabilities. */
IMPL(impl_xent)
{
    mt_var p, t;
    int32_t axis;
    if (!a_var(P, &args[0], &p) || !a_var(P, &args[1], &t) ||
        !a_axis(P, c, arg(f, args, "axis"), "axis", -1, &axis))
        return false;
    bool labels = mt_dtype_is_int(mt_graph_type(P->g, t)->dtype);
    ORIGIN();
    mt_graph *g = P->g;
    mt_var r = f->code ? (labels ? mt_graph_softmax_crossentropy_labels(g, p, t, axis)
                                 : mt_graph_softmax_crossentropy(g, p, t, axis))
                       : (labels ? mt_graph_crossentropy_labels(g, p, t, axis)
                                 : mt_graph_crossentropy(g, p, t, axis));
    return ret(P, c, r, out);
}

IMPL(impl_sigxent)
{
    (void)f;
    mt_var x, t;
    if (!a_var(P, &args[0], &x) || !a_var(P, &args[1], &t)) return false;
    ORIGIN();
    return ret(P, c, mt_graph_sigmoid_crossentropy_logits(P->g, x, t), out);
}

/* Theano's binary_crossentropy(output, target) = -(t log p + (1 - t) log(1 - p)). */
IMPL(impl_bxent)
{
    (void)f;
    mt_var p, t;
    if (!a_var(P, &args[0], &p) || !a_var(P, &args[1], &t)) return false;
    ORIGIN();
    mt_graph *g = P->g;
    mt_var one = mt_graph_literal_int(g, 1);
    mt_var r = mt_graph_neg(g, mt_graph_add(g, mt_graph_mul(g, t, mt_graph_log(g, p)),
                                            mt_graph_mul(g, mt_graph_sub(g, one, t),
                                                         mt_graph_log1p(g, mt_graph_neg(g, p)))));
    return ret(P, c, r, out);
}

/* ---------------------------------------------------------------- shapes */

IMPL(impl_reshape)
{
    (void)f;
    mt_var x;
    int32_t nd;
    int64_t shape[MT_MAX_DIMS];
    if (!a_var(P, &args[0], &x) || !a_shape(P, c, &args[1], "shape", &nd, shape, NULL))
        return false;
    for (int32_t i = 0; i < nd; i++)
        if (shape[i] < -1)
            return mt__perr(P, MT_ERR_INVALID, args[1].begin, args[1].end, args[1].begin,
                            "%s(): shape entries must be sizes or -1, got %lld", c->name,
                            (long long)shape[i]);
    ORIGIN();
    return ret(P, c, mt_graph_reshape(P->g, x, nd, shape), out);
}

static bool perm_of(mt__pctx *P, const mt__call *c, const mt__val *v, const char *pname, int32_t *n,
                    int32_t *perm)
{
    int32_t naxes;
    bool empty;
    if (!a_axes(P, c, v, pname, &naxes, perm, &empty)) return false;
    *n = naxes;
    return true;
}

IMPL(impl_transpose)
{
    (void)f;
    mt_var x;
    int32_t n = 0, perm[MT_MAX_DIMS];
    if (!a_var(P, &args[0], &x)) return false;
    bool has = given(&args[1]);
    if (has && !perm_of(P, c, &args[1], "axes", &n, perm)) return false;
    if (has && n != mt_graph_type(P->g, x)->ndim)
        return mt__perr(P, MT_ERR_INVALID, args[1].begin, args[1].end, args[1].begin,
                        "%s(): axes has %d entries for an array of %d dimensions", c->name, (int)n,
                        (int)mt_graph_type(P->g, x)->ndim);
    ORIGIN();
    return ret(P, c, mt_graph_transpose(P->g, x, has ? perm : NULL), out);
}

IMPL(impl_swapaxes)
{
    (void)f;
    mt_var x;
    int32_t a1, a2;
    if (!a_var(P, &args[0], &x) || !a_axis(P, c, &args[1], "axis1", 0, &a1) ||
        !a_axis(P, c, &args[2], "axis2", 0, &a2))
        return false;
    int32_t nd = mt_graph_type(P->g, x)->ndim, perm[MT_MAX_DIMS];
    int32_t n1 = a1 < 0 ? a1 + nd : a1, n2 = a2 < 0 ? a2 + nd : a2;
    if (n1 < 0 || n1 >= nd || n2 < 0 || n2 >= nd)
        return mt__perr(P, MT_ERR_INVALID, c->begin, c->end, c->point,
                        "%s(): axes %d and %d are out of range for %d dimensions", c->name, (int)a1,
                        (int)a2, (int)nd);
    for (int32_t i = 0; i < nd; i++)
        perm[i] = i;
    perm[n1] = n2;
    perm[n2] = n1;
    ORIGIN();
    return ret(P, c, mt_graph_transpose(P->g, x, perm), out);
}

/* Theano: x.dimshuffle(1, 'x', 0) or x.dimshuffle((1, 'x', 0)). */
IMPL(impl_dimshuffle)
{
    (void)f;
    mt_var x;
    if (!a_var(P, &args[0], &x)) return false;
    const mt__val *pat = &args[1];
    if (pat->n == 1 && pat->items[0].kind == V_SEQ) pat = &pat->items[0];
    if (pat->n > MT_MAX_DIMS)
        return mt__perr(P, MT_ERR_INVALID, pat->begin, pat->end, pat->begin,
                        "%s(): at most %d pattern entries", c->name, MT_MAX_DIMS);
    int32_t p[MT_MAX_DIMS];
    for (int32_t i = 0; i < pat->n; i++) {
        const mt__val *it = &pat->items[i];
        if (it->kind == V_STR && !strcmp(it->s, "x")) {
            p[i] = -1;
        } else if (it->kind == V_INT && it->i >= 0 && it->i < MT_MAX_DIMS) {
            p[i] = (int32_t)it->i;
        } else {
            return bad_arg(P, c, it, "pattern", "axis numbers (>= 0) or 'x'");
        }
    }
    ORIGIN();
    return ret(P, c, mt_graph_dimshuffle(P->g, x, pat->n, p), out);
}

IMPL(impl_flatten)
{
    mt_var x;
    int64_t nd = 1;
    if (!a_var(P, &args[0], &x)) return false;
    if (f->code == 0 && args[1].kind != V_ABSENT && !a_int(P, c, &args[1], "ndim", &nd))
        return false;
    if (nd < 1 || nd > MT_MAX_DIMS)
        return mt__perr(P, MT_ERR_INVALID, args[1].begin, args[1].end, args[1].begin,
                        "%s(): ndim must be in [1, %d]", c->name, MT_MAX_DIMS);
    ORIGIN();
    return ret(P, c, mt_graph_flatten(P->g, x, (int32_t)nd), out);
}

IMPL(impl_expand_dims)
{
    (void)f;
    mt_var x;
    int32_t naxes, axes[MT_MAX_DIMS];
    bool empty;
    if (!a_var(P, &args[0], &x)) return false;
    if (args[1].kind == V_NONE || !a_axes(P, c, &args[1], "axis", &naxes, axes, &empty))
        return args[1].kind == V_NONE ? bad_arg(P, c, &args[1], "axis", "an int or a tuple of ints")
                                      : false;
    int32_t nd = mt_graph_type(P->g, x)->ndim + naxes;
    for (int32_t i = 0; i < naxes; i++) {
        if (axes[i] < -nd || axes[i] >= nd)
            return mt__perr(P, MT_ERR_INVALID, args[1].begin, args[1].end, args[1].begin,
                            "%s(): axis %d is out of range for %d dimensions", c->name,
                            (int)axes[i], (int)nd);
        if (axes[i] < 0) axes[i] += nd;
    }
    /* insert in increasing order: each lands at its final position */
    for (int32_t i = 1; i < naxes; i++)
        for (int32_t j = i; j > 0 && axes[j - 1] > axes[j]; j--) {
            int32_t t = axes[j];
            axes[j] = axes[j - 1];
            axes[j - 1] = t;
        }
    ORIGIN();
    for (int32_t i = 0; i < naxes && x; i++) {
        if (i > 0 && axes[i] == axes[i - 1])
            return mt__perr(P, MT_ERR_INVALID, args[1].begin, args[1].end, args[1].begin,
                            "%s(): repeated axis", c->name);
        x = mt_graph_expand_dims(P->g, x, axes[i]);
    }
    return ret(P, c, x, out);
}

IMPL(impl_squeeze)
{
    (void)f;
    mt_var x;
    int32_t naxes, axes[MT_MAX_DIMS];
    bool empty;
    if (!a_var(P, &args[0], &x) || !a_axes(P, c, &args[1], "axis", &naxes, axes, &empty))
        return false;
    if (empty) return ret(P, c, x, out);
    ORIGIN();
    return ret(P, c, mt_graph_squeeze(P->g, x, naxes, axes), out);
}

IMPL(impl_broadcast_to)
{
    (void)f;
    mt_var x, ref;
    int32_t nd;
    int64_t shape[MT_MAX_DIMS];
    if (!a_var(P, &args[0], &x) || !a_shape(P, c, &args[1], "shape", &nd, shape, &ref))
        return false;
    ORIGIN();
    return ret(P, c,
               ref ? mt_graph_broadcast_like(P->g, x, ref)
                   : mt_graph_broadcast_to(P->g, x, nd, shape),
               out);
}

IMPL(impl_concat)
{
    int32_t n = 0, axis = 0;
    mt_var *vs;
    if (!a_vars(P, c, &args[0], "arrays", &n, &vs)) return false;
    bool flat = f->code == 0 && args[1].kind == V_NONE;
    if (!flat && !a_axis(P, c, &args[1], "axis", 0, &axis)) return false;
    if (n == 0)
        return mt__perr(P, MT_ERR_INVALID, args[0].begin, args[0].end, args[0].begin,
                        "%s(): need at least one array", c->name);
    ORIGIN();
    if (flat)
        for (int32_t i = 0; i < n; i++)
            vs[i] = mt_graph_flatten(P->g, vs[i], 1);
    mt_var r =
        f->code ? mt_graph_stack(P->g, n, vs, axis) : mt_graph_concatenate(P->g, n, vs, axis);
    return ret(P, c, r, out);
}

/* np.split: a number of equal sections, or the indices where parts start. Gives a tuple. */
IMPL(impl_split)
{
    (void)f;
    mt_var x;
    int32_t axis;
    const mt__val *s = &args[1];
    if (!a_var(P, &args[0], &x) || !a_axis(P, c, &args[2], "axis", 0, &axis)) return false;
    int32_t n = 0;
    int64_t *sizes = NULL;
    if (s->kind == V_INT) {
        if (s->i < 1 || s->i > 65536)
            return mt__perr(P, MT_ERR_INVALID, s->begin, s->end, s->begin,
                            "%s(): the number of sections must be in [1, 65536]", c->name);
        n = (int32_t)s->i;
    } else if (s->kind == V_SEQ) {
        n = s->n + 1;
        sizes = mt_arena_alloc(&P->arena, sizeof(int64_t) * (size_t)n, 16);
        if (!sizes) return mt__perr(P, MT_ERR_NOMEM, c->begin, c->end, c->point, "out of memory");
        int64_t prev = 0;
        for (int32_t i = 0; i < s->n; i++) {
            const mt__val *it = &s->items[i];
            if (it->kind != V_INT || it->i < prev)
                return bad_arg(P, c, it, "indices_or_sections",
                               "increasing non-negative integer literals");
            sizes[i] = it->i - prev;
            prev = it->i;
        }
        sizes[n - 1] = -1;
    } else {
        return bad_arg(P, c, s, "indices_or_sections", "an int or a list of ints");
    }
    mt__val *items = mt_arena_alloc(&P->arena, sizeof(mt__val) * (size_t)n, 16);
    mt_var *outs = mt_arena_alloc(&P->arena, sizeof(mt_var) * (size_t)n, 16);
    if (!items || !outs)
        return mt__perr(P, MT_ERR_NOMEM, c->begin, c->end, c->point, "out of memory");
    ORIGIN();
    if (mt_graph_split(P->g, x, axis, n, sizes, outs) != MT_OK)
        return mt__pbuilt(P, MT_VAR_NONE, c->begin, c->end, c->point);
    for (int32_t i = 0; i < n; i++) {
        memset(&items[i], 0, sizeof(mt__val));
        items[i].kind = V_VAR;
        items[i].var = outs[i];
        items[i].begin = c->begin;
        items[i].end = c->end;
        items[i].point = c->point;
    }
    out->kind = V_SEQ;
    out->n = n;
    out->items = items;
    return true;
}

/* ---------------------------------------------------------------- indexing */

IMPL(impl_take)
{
    (void)f;
    mt_var x, idx;
    int32_t axis = 0;
    bool flat = !given(&args[2]);
    if (!a_var(P, &args[0], &x) || !a_var(P, &args[1], &idx) ||
        (!flat && !a_axis(P, c, &args[2], "axis", 0, &axis)))
        return false;
    ORIGIN();
    if (flat) x = mt_graph_flatten(P->g, x, 1);
    return ret(P, c, mt_graph_gather(P->g, x, idx, axis), out);
}

IMPL(impl_one_hot)
{
    (void)f;
    mt_var y;
    int64_t depth = 0;
    mt_dtype dt;
    if (!a_var(P, &args[0], &y) || !a_int(P, c, &args[1], "depth", &depth) ||
        !a_dtype(P, c, &args[2], "dtype", MT_FLOAT64, &dt))
        return false;
    ORIGIN();
    return ret(P, c, mt_graph_one_hot(P->g, y, depth, dt), out);
}

/* set_subtensor(x[idx], y) / inc_subtensor(x[idx], y); an integer array index with only full
 * slices around it increments with scatter_add (np.add.at). */
IMPL(impl_subtensor)
{
    const mt__val *t = &args[0];
    mt_var y;
    if (t->kind != V_INDEX) return bad_arg(P, c, t, "x", "an indexing expression such as x[1:3]");
    if (!a_var(P, &args[1], &y)) return false;
    if (t->n > MT_MAX_DIMS + 1)
        return mt__perr(P, MT_ERR_INVALID, t->begin, t->end, t->point, "too many indices");
    mt_idx idx[MT_MAX_DIMS + 1];
    int32_t apos = -1, axis = 0;
    mt_var avar = MT_VAR_NONE;
    bool only_full = true;
    for (int32_t i = 0; i < t->n; i++) {
        const mt__val *v = &t->items[i];
        switch (v->kind) {
        case V_INT:
            idx[i] = mt_idx_int(v->i);
            only_full = false;
            break;
        case V_SLICE:
            idx[i] = mt_idx_slice(v->start, v->stop, v->step);
            if (v->start != MT_IDX_NONE || v->stop != MT_IDX_NONE || v->step != MT_IDX_NONE)
                only_full = false;
            if (apos < 0) axis++;
            break;
        case V_ELLIPSIS:
            idx[i] = mt_idx_ellipsis();
            if (apos < 0 && i + 1 < t->n) only_full = false; /* axis would need counting */
            break;
        case V_VAR:
        case V_SEQ:
            if (apos >= 0 || !a_var(P, v, &avar))
                return apos >= 0 ? mt__perr(P, MT_ERR_INVALID, v->begin, v->end, v->begin,
                                            "only one integer array index is supported")
                                 : false;
            if (!mt_dtype_is_int(mt_graph_type(P->g, avar)->dtype))
                return mt__perr(P, MT_ERR_INVALID, v->begin, v->end, v->begin,
                                "%s(): array indices must be integers", c->name);
            apos = i;
            idx[i] = mt_idx_all();
            break;
        default:
            return mt__perr(P, MT_ERR_INVALID, v->begin, v->end, v->begin,
                            "%s(): indices must be integers, slices, ... or one integer array, "
                            "got %s",
                            c->name, mt__vkind_name(v->kind));
        }
    }
    ORIGIN();
    if (apos >= 0) {
        if (f->code == 0 || !only_full)
            return mt__perr(P, MT_ERR_UNSUPPORTED, t->begin, t->end, t->point,
                            "%s(): an integer array index is only supported by inc_subtensor "
                            "with full slices ':' around it",
                            c->name);
        return ret(P, c, mt_graph_scatter_add(P->g, t->var, avar, y, axis), out);
    }
    mt_var r = f->code ? mt_graph_inc_subtensor(P->g, t->var, t->n, idx, y)
                       : mt_graph_set_subtensor(P->g, t->var, t->n, idx, y);
    return ret(P, c, r, out);
}

/* ---------------------------------------------------------------- generators */

IMPL(impl_arange)
{
    (void)f;
    double v[3] = {0, 0, 1};
    bool all_int = true;
    const mt__val *in[3] = {&args[0], &args[1], &args[2]};
    mt_dtype dt;
    for (int i = 0; i < 3; i++) {
        if (!given(in[i])) continue;
        if (!a_float(P, c, in[i], i == 0 ? "start" : i == 1 ? "stop" : "step", &v[i])) return false;
        all_int = all_int && in[i]->kind != V_FLOAT;
    }
    if (!given(in[1])) { /* arange(stop) */
        v[1] = v[0];
        v[0] = 0;
    }
    if (!a_dtype(P, c, &args[3], "dtype", all_int ? MT_INT64 : MT_FLOAT64, &dt)) return false;
    ORIGIN();
    return ret(P, c, mt_graph_arange(P->g, dt, v[0], v[1], v[2]), out);
}

/* zeros / ones / full (code 0, 1, 2) and the _like forms (code 3, 4, 5). */
IMPL(impl_fill)
{
    mt_graph *g = P->g;
    double value = f->code % 3 == 1 ? 1.0 : 0.0;
    mt_dtype def = MT_FLOAT64;
    if (f->code % 3 == 2) {
        const mt__val *fv = arg(f, args, "fill_value");
        if (!a_float(P, c, fv, "fill_value", &value)) return false;
        def = fv->kind == V_BOOL ? MT_BOOL : fv->kind == V_INT ? MT_INT64 : MT_FLOAT64;
    }
    mt_dtype dt;
    if (f->code >= 3) {
        mt_var x;
        if (!a_var(P, &args[0], &x) ||
            !a_dtype(P, c, arg(f, args, "dtype"), "dtype", MT_DTYPE_COUNT, &dt))
            return false;
        ORIGIN();
        return ret(P, c, mt_graph_full_like(g, x, dt, value), out);
    }
    int32_t nd;
    int64_t shape[MT_MAX_DIMS];
    mt_var ref;
    if (!a_shape(P, c, &args[0], "shape", &nd, shape, &ref) ||
        !a_dtype(P, c, arg(f, args, "dtype"), "dtype", def, &dt))
        return false;
    ORIGIN();
    return ret(P, c,
               ref ? mt_graph_full_like(g, ref, dt, value) : mt_graph_full(g, dt, nd, shape, value),
               out);
}

IMPL(impl_random)
{
    mt_random_dist dist = (mt_random_dist)f->code;
    double p[2];
    const mt__val *a0 = &args[0], *a1 = &args[1];
    fparam ps[MAX_PARAMS];
    sig_params(f->sig, ps);
    p[0] = 0.0;
    p[1] = 1.0;
    if ((a0->kind != V_ABSENT && !a_float(P, c, a0, ps[0].name, &p[0])) ||
        (a1->kind != V_ABSENT && !a_float(P, c, a1, ps[1].name, &p[1])))
        return false;
    int32_t nd = 0;
    int64_t shape[MT_MAX_DIMS];
    mt_var ref = MT_VAR_NONE;
    mt_dtype dt;
    if (given(&args[2]) && !a_shape(P, c, &args[2], "size", &nd, shape, &ref)) return false;
    if (!a_dtype(P, c, &args[3], "dtype", dist == MT_RANDOM_BINOMIAL ? MT_INT64 : MT_FLOAT64, &dt))
        return false;
    ORIGIN();
    return ret(P, c, mt_graph_random(P->g, dist, dt, nd, shape, ref, p[0], p[1]), out);
}

IMPL(impl_grad_clip)
{
    (void)f;
    mt_var x;
    double lo = 0, hi = 0;
    if (!a_var(P, &args[0], &x) || !a_float(P, c, &args[1], "lower_bound", &lo) ||
        !a_float(P, c, &args[2], "upper_bound", &hi))
        return false;
    ORIGIN();
    return ret(P, c, mt_graph_grad_clip(P->g, x, lo, hi), out);
}

/* ---------------------------------------------------------------- convolution and pooling */

/* An int or a pair of ints (stride, pad, pool sizes); None/absent gives def (NULL: *given
 * false). */
static bool a_pair(mt__pctx *P, const mt__call *c, const mt__val *v, const char *pname,
                   const int32_t *def, int32_t *out, bool *is_given)
{
    *is_given = given(v);
    if (!*is_given) {
        if (def) out[0] = def[0], out[1] = def[1];
        return true;
    }
    const mt__val *it[2] = {v, v};
    if (v->kind == V_SEQ) {
        if (v->n != 2) return bad_arg(P, c, v, pname, "an int or a pair of ints");
        it[0] = &v->items[0];
        it[1] = &v->items[1];
    }
    for (int32_t d = 0; d < 2; d++) {
        if (it[d]->kind != V_INT)
            return bad_arg(P, c, it[d], pname, "an int or a pair of integer literals");
        if (it[d]->i < INT32_MIN || it[d]->i > INT32_MAX)
            return mt__perr(P, MT_ERR_RANGE, it[d]->begin, it[d]->end, it[d]->begin,
                            "%s(): '%s' %lld is out of range", c->name, pname,
                            (long long)it[d]->i);
        out[d] = (int32_t)it[d]->i;
    }
    return true;
}

IMPL(impl_conv2d)
{
    (void)f;
    mt_var x, w;
    static const int32_t one[2] = {1, 1}, zero[2] = {0, 0};
    int32_t stride[2], pad[2];
    bool gs, gp;
    if (!a_var(P, &args[0], &x) || !a_var(P, &args[1], &w) ||
        !a_pair(P, c, &args[2], "stride", one, stride, &gs) ||
        !a_pair(P, c, &args[3], "pad", zero, pad, &gp))
        return false;
    ORIGIN();
    return ret(P, c, mt_graph_conv2d(P->g, x, w, stride, pad), out);
}

/* max_pool2d (code MT_POOL_MAX) and avg_pool2d (MT_POOL_MEAN). */
IMPL(impl_pool2d)
{
    mt_var x;
    static const int32_t zero[2] = {0, 0};
    int32_t pool[2], stride[2], pad[2];
    bool gpool, gs, gp, ceil_mode;
    if (!a_var(P, &args[0], &x) || !a_pair(P, c, &args[1], "pool", NULL, pool, &gpool) ||
        !a_pair(P, c, &args[2], "stride", NULL, stride, &gs) ||
        !a_pair(P, c, &args[3], "pad", zero, pad, &gp) ||
        !a_bool(P, c, &args[4], "ceil_mode", false, &ceil_mode))
        return false;
    if (!gpool) return bad_arg(P, c, &args[1], "pool", "an int or a pair of ints");
    ORIGIN();
    return ret(P, c,
               mt_graph_pool2d(P->g, x, (mt_pool_mode)f->code, pool, gs ? stride : NULL, pad,
                               ceil_mode),
               out);
}

/* ---------------------------------------------------------------- the table */

/* clang-format off */
#define M MT__FN_METHOD
#define UN(n, b) {n, n "(x)", impl_unary, M, 0, b, NULL}
#define BIN(n, p, b) {n, n p, impl_binary, M, 0, NULL, b}
#define BSOP(n, sop) {n, n "(x1, x2)", impl_binary_sop, M, sop, NULL, NULL}
#define RED(n, op) {n, n "(a, axis=None, *, keepdims=False)", impl_reduce, M, op, NULL, NULL}
#define REDT(n, op) \
    {n, n "(a, axis=None, dtype=None, *, keepdims=False)", impl_reduce, M, op, NULL, NULL}
#define FN(n, p, impl, flags, code) {n, n p, impl, flags, code, NULL, NULL}

static const mt__fn_def fn_table[] = {
    /* elementwise, one operand */
    UN("abs", mt_graph_abs), UN("absolute", mt_graph_abs), UN("sign", mt_graph_sign),
    UN("negative", mt_graph_neg), FN("positive", "(x)", impl_positive, M, 0),
    UN("exp", mt_graph_exp), UN("exp2", mt_graph_exp2), UN("expm1", mt_graph_expm1),
    UN("log", mt_graph_log), UN("log2", mt_graph_log2), UN("log10", mt_graph_log10),
    UN("log1p", mt_graph_log1p), UN("log1mexp", mt_graph_log1mexp), UN("sqrt", mt_graph_sqrt),
    UN("rsqrt", mt_graph_rsqrt), UN("square", mt_graph_square),
    UN("reciprocal", mt_graph_reciprocal), UN("sin", mt_graph_sin), UN("cos", mt_graph_cos),
    UN("tan", mt_graph_tan), UN("arcsin", mt_graph_arcsin), UN("asin", mt_graph_arcsin),
    UN("arccos", mt_graph_arccos), UN("acos", mt_graph_arccos), UN("arctan", mt_graph_arctan),
    UN("atan", mt_graph_arctan), UN("sinh", mt_graph_sinh), UN("cosh", mt_graph_cosh),
    UN("tanh", mt_graph_tanh), UN("erf", mt_graph_erf), UN("erfc", mt_graph_erfc),
    UN("sigmoid", mt_graph_sigmoid), UN("expit", mt_graph_sigmoid),
    UN("softplus", mt_graph_softplus), UN("relu", mt_graph_relu), UN("floor", mt_graph_floor),
    UN("ceil", mt_graph_ceil), UN("trunc", mt_graph_trunc), UN("isnan", mt_graph_isnan),
    UN("isinf", mt_graph_isinf), UN("isfinite", mt_graph_isfinite),
    UN("logical_not", mt_graph_logical_not), FN("invert", "(x)", impl_invert, M, 0),
    FN("bitwise_not", "(x)", impl_invert, M, 0),
    FN("round", "(a, decimals=0)", impl_round, M, 0),
    FN("around", "(a, decimals=0)", impl_round, M, 0),
    UN("stop_gradient", mt_graph_stop_gradient), UN("disconnected_grad", mt_graph_stop_gradient),
    UN("consider_constant", mt_graph_stop_gradient),
    FN("grad_clip", "(x, lower_bound, upper_bound)", impl_grad_clip, M, 0),
    /* elementwise, two or three operands */
    BIN("add", "(x1, x2)", mt_graph_add), BIN("subtract", "(x1, x2)", mt_graph_sub),
    BIN("multiply", "(x1, x2)", mt_graph_mul), BIN("divide", "(x1, x2)", mt_graph_div),
    BIN("true_divide", "(x1, x2)", mt_graph_div),
    BIN("floor_divide", "(x1, x2)", mt_graph_floordiv),
    BIN("mod", "(x1, x2)", mt_graph_mod), BIN("remainder", "(x1, x2)", mt_graph_mod),
    BIN("power", "(x1, x2)", mt_graph_pow), BIN("pow", "(x1, x2)", mt_graph_pow),
    BIN("maximum", "(x1, x2)", mt_graph_maximum), BIN("minimum", "(x1, x2)", mt_graph_minimum),
    BIN("arctan2", "(x1, x2)", mt_graph_arctan2), BIN("atan2", "(x1, x2)", mt_graph_arctan2),
    BIN("logaddexp", "(x1, x2)", mt_graph_logaddexp), BIN("equal", "(x1, x2)", mt_graph_eq),
    BIN("not_equal", "(x1, x2)", mt_graph_ne), BIN("less", "(x1, x2)", mt_graph_lt),
    BIN("less_equal", "(x1, x2)", mt_graph_le), BIN("greater", "(x1, x2)", mt_graph_gt),
    BIN("greater_equal", "(x1, x2)", mt_graph_ge),
    BIN("logical_and", "(x1, x2)", mt_graph_logical_and),
    BIN("logical_or", "(x1, x2)", mt_graph_logical_or),
    BIN("logical_xor", "(x1, x2)", mt_graph_logical_xor),
    BSOP("bitwise_and", MT_SOP_BITAND), BSOP("bitwise_or", MT_SOP_BITOR),
    BSOP("bitwise_xor", MT_SOP_BITXOR), BSOP("left_shift", MT_SOP_LSHIFT),
    BSOP("right_shift", MT_SOP_RSHIFT),
    FN("where", "(condition, x, y)", impl_where, 0, 0),
    FN("switch", "(cond, ift, iff)", impl_where, 0, 0),
    FN("clip", "(a, a_min, a_max)", impl_clip, M, 0),
    FN("cast", "(x, dtype)", impl_cast, M, 0), FN("astype", "(x, dtype)", impl_cast, M, 0),
    /* products */
    BIN("dot", "(a, b)", mt_graph_dot), BIN("matmul", "(x1, x2)", mt_graph_matmul),
    /* reductions */
    REDT("sum", MT_REDUCE_SUM), REDT("prod", MT_REDUCE_PROD), REDT("mean", MT_REDUCE_MEAN),
    RED("max", MT_REDUCE_MAX), RED("amax", MT_REDUCE_MAX), RED("min", MT_REDUCE_MIN),
    RED("amin", MT_REDUCE_MIN), RED("argmax", MT_REDUCE_ARGMAX), RED("argmin", MT_REDUCE_ARGMIN),
    RED("all", MT_REDUCE_ALL), RED("any", MT_REDUCE_ANY),
    FN("var", "(a, axis=None, dtype=None, *, ddof=0, keepdims=False)", impl_var, M, 0),
    FN("std", "(a, axis=None, dtype=None, *, ddof=0, keepdims=False)", impl_var, M, 1),
    FN("logsumexp", "(a, axis=None, *, keepdims=False)", impl_logsumexp, M, 0),
    /* neural networks */
    FN("softmax", "(x, axis=-1)", impl_softmax, M, 0),
    FN("logsoftmax", "(x, axis=-1)", impl_softmax, M, 1),
    FN("log_softmax", "(x, axis=-1)", impl_softmax, M, 1),
    FN("crossentropy", "(probs, targets, axis=-1)", impl_xent, 0, 0),
    FN("categorical_crossentropy", "(probs, targets, axis=-1)", impl_xent, 0, 0),
    FN("softmax_crossentropy", "(logits, targets, axis=-1)", impl_xent, 0, 1),
    FN("softmax_cross_entropy", "(logits, targets, axis=-1)", impl_xent, 0, 1),
    FN("sigmoid_crossentropy_logits", "(logits, targets)", impl_sigxent, 0, 0),
    FN("sigmoid_cross_entropy_with_logits", "(logits, targets)", impl_sigxent, 0, 0),
    FN("binary_crossentropy_logits", "(logits, targets)", impl_sigxent, 0, 0),
    FN("binary_crossentropy", "(output, target)", impl_bxent, 0, 0),
    FN("conv2d", "(x, w, stride=1, pad=0)", impl_conv2d, M, 0),
    FN("max_pool2d", "(x, pool, stride=None, pad=0, ceil_mode=False)", impl_pool2d, M,
       MT_POOL_MAX),
    FN("avg_pool2d", "(x, pool, stride=None, pad=0, ceil_mode=False)", impl_pool2d, M,
       MT_POOL_MEAN),
    /* shapes */
    FN("reshape", "(a, shape)", impl_reshape, M | MT__FN_PACK, 0),
    FN("transpose", "(a, axes=None)", impl_transpose, M | MT__FN_PACK, 0),
    FN("swapaxes", "(a, axis1, axis2)", impl_swapaxes, M, 0),
    FN("dimshuffle", "(x, *pattern)", impl_dimshuffle, M, 0),
    FN("flatten", "(x, ndim=1)", impl_flatten, M, 0),
    FN("ravel", "(a)", impl_flatten, M, 1),
    FN("expand_dims", "(a, axis)", impl_expand_dims, M, 0),
    FN("squeeze", "(a, axis=None)", impl_squeeze, M, 0),
    FN("broadcast_to", "(array, shape)", impl_broadcast_to, M, 0),
    FN("concatenate", "(arrays, axis=0)", impl_concat, 0, 0),
    FN("stack", "(arrays, axis=0)", impl_concat, 0, 1),
    FN("split", "(ary, indices_or_sections, axis=0)", impl_split, M, 0),
    /* indexing */
    FN("take", "(a, indices, axis=None)", impl_take, M, 0),
    FN("one_hot", "(labels, depth, dtype=float64)", impl_one_hot, 0, 0),
    FN("to_one_hot", "(y, nb_class, dtype=float64)", impl_one_hot, 0, 0),
    FN("set_subtensor", "(x, y)", impl_subtensor, MT__FN_SUBTENSOR, 0),
    FN("inc_subtensor", "(x, y)", impl_subtensor, MT__FN_SUBTENSOR, 1),
    /* generators */
    FN("arange", "(start, stop=None, step=None, dtype=None)", impl_arange, 0, 0),
    FN("zeros", "(shape, dtype=float64)", impl_fill, 0, 0),
    FN("ones", "(shape, dtype=float64)", impl_fill, 0, 1),
    FN("full", "(shape, fill_value, dtype=None)", impl_fill, 0, 2),
    FN("zeros_like", "(a, dtype=None)", impl_fill, M, 3),
    FN("ones_like", "(a, dtype=None)", impl_fill, M, 4),
    FN("full_like", "(a, fill_value, dtype=None)", impl_fill, M, 5),
    FN("uniform", "(low=0.0, high=1.0, size=None, dtype=float64)", impl_random, 0,
       MT_RANDOM_UNIFORM),
    FN("random_uniform", "(low=0.0, high=1.0, size=None, dtype=float64)", impl_random, 0,
       MT_RANDOM_UNIFORM),
    FN("normal", "(loc=0.0, scale=1.0, size=None, dtype=float64)", impl_random, 0,
       MT_RANDOM_NORMAL),
    FN("random_normal", "(loc=0.0, scale=1.0, size=None, dtype=float64)", impl_random, 0,
       MT_RANDOM_NORMAL),
    FN("binomial", "(n, p, size=None, dtype=int64)", impl_random, 0, MT_RANDOM_BINOMIAL),
    FN("random_binomial", "(n, p, size=None, dtype=int64)", impl_random, 0, MT_RANDOM_BINOMIAL),
};
/* clang-format on */

#define NFUNCS ((int32_t)(sizeof(fn_table) / sizeof(fn_table[0])))

const mt__fn_def *mt__fn_find(const char *name)
{
    for (int32_t i = 0; i < NFUNCS; i++)
        if (!strcmp(fn_table[i].name, name)) return &fn_table[i];
    return NULL;
}

void mt__fn_suggest(mt__suggest *s, bool methods_only)
{
    for (int32_t i = 0; i < NFUNCS; i++)
        if (!methods_only || (fn_table[i].flags & MT__FN_METHOD))
            mt__suggest_offer(s, fn_table[i].name);
}

int32_t mt_parse_function_count(void)
{
    return NFUNCS;
}

const char *mt_parse_function_name(int32_t i)
{
    return i >= 0 && i < NFUNCS ? fn_table[i].name : NULL;
}

const char *mt_parse_function_signature(int32_t i)
{
    return i >= 0 && i < NFUNCS ? fn_table[i].sig : NULL;
}
