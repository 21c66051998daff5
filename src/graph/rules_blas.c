/* BLAS rewrites: dot + bias + scale into one GEMM (alpha * op(a) @ op(b) + beta * c), with
 * transposes of a and b absorbed into GEMM's trans flags (Theano's gemm_optimizer and
 * dot22scalar, without its general sum-of-products search).
 *
 *   matmul(a, b) + c, c + matmul(a, b)   -> gemm(a, b, c, 1, 1)      (c - matmul: alpha -1)
 *   matmul(a, b) + s * c                 -> gemm(a, b, c, 1, s)      (s a scalar constant)
 *   s * matmul(a, b)                     -> gemm(a, b, 0, s, 0)
 *   s * gemm(a, b, c, alpha, beta)       -> gemm(a, b, c, s*alpha, s*beta)
 *   gemm(a, b, 0, alpha, 0) + c          -> gemm(a, b, c, alpha, 1)
 *   gemm(transpose(a), b, ...)           -> gemm(a, b, ..., trans_a)  (also b)
 * c must broadcast to the product's shape without enlarging it (the sum's type is the
 * product's type). The scalings multiply in double as the GEMM kernels do. A scale of 0 is
 * left alone: BLAS does not read an operand whose coefficient is 0, so its inf/NaN would be
 * lost. */
#include <string.h>

#include "rewrite_impl.h"

/* A product usable as the gemm term: a matmul, or a gemm with beta 0 (a scaled product). */
static bool product_term(const mt_graph *g, mt_var m, mt_op_attrs *ga, mt_var in[2])
{
    mt_op op = mt_graph_op(g, m);
    if (op != MT_OP_MATMUL && !(op == MT_OP_GEMM && mt_graph_attrs(g, m)->beta == 0.0))
        return false;
    if (!mt_dtype_is_float(mt_graph_type(g, m)->dtype)) return false;
    memset(ga, 0, sizeof(*ga));
    ga->alpha = 1.0;
    if (op == MT_OP_GEMM) *ga = *mt_graph_attrs(g, m);
    in[0] = mt__rw_in(g, m, 0);
    in[1] = mt__rw_in(g, m, 1);
    return true;
}

static mt_var make_gemm(mt__rw_ctx *cx, const mt_op_attrs *a, mt_var x, mt_var y, mt_var c)
{
    mt_var in[3] = {x, y, c};
    return mt_graph_make(cx->g, MT_OP_GEMM, a, 3, in);
}

static mt_var rule_gemm_bias(mt__rw_ctx *cx, mt_var v)
{
    mt_graph *g = cx->g;
    bool sub = mt__rw_is(g, v, MT_SOP_SUB);
    if (!sub && !mt__rw_is(g, v, MT_SOP_ADD)) return MT_VAR_NONE;
    mt_var l = mt__rw_in(g, v, 0), r = mt__rw_in(g, v, 1), m, c;
    mt_op_attrs ga;
    mt_var ab[2];
    double sm = 1.0, sc = 1.0;
    if (product_term(g, l, &ga, ab)) {
        m = l;
        c = r;
        sc = sub ? -1.0 : 1.0;
    } else if (product_term(g, r, &ga, ab)) {
        m = r;
        c = l;
        sm = sub ? -1.0 : 1.0;
    } else {
        return MT_VAR_NONE;
    }
    if (!mt__rw_same_type(g, m, v)) return MT_VAR_NONE; /* c would enlarge the product */
    double s;
    mt_var cs = c;
    if (mt__rw_is(g, c, MT_SOP_MUL)) { /* beta * c with a scalar constant beta */
        mt_var p = mt__rw_in(g, c, 0), q = mt__rw_in(g, c, 1);
        if (mt__rw_const_value(g, p, &s) && mt_type_numel(mt_graph_type(g, p)) == 1) {
            cs = q;
            sc *= s;
        } else if (mt__rw_const_value(g, q, &s) && mt_type_numel(mt_graph_type(g, q)) == 1) {
            cs = p;
            sc *= s;
        }
    }
    if (sc == 0.0) return MT_VAR_NONE; /* beta 0: BLAS would not read c (its inf/NaN) */
    ga.alpha *= sm;
    ga.beta = sc;
    mt__rw_begin(cx, v);
    return make_gemm(cx, &ga, ab[0], ab[1], cs);
}

static mt_var rule_gemm_scale(mt__rw_ctx *cx, mt_var v)
{
    mt_graph *g = cx->g;
    mt_var m = mt__rw_in(g, v, 0), k = mt__rw_in(g, v, 1);
    mt_op mo = mt_graph_op(g, m);
    if (mo != MT_OP_MATMUL && mo != MT_OP_GEMM) {
        mt_var t = m;
        m = k;
        k = t;
        mo = mt_graph_op(g, m);
    }
    double s;
    if ((mo != MT_OP_MATMUL && mo != MT_OP_GEMM) ||
        !mt_dtype_is_float(mt_graph_type(g, m)->dtype) || !mt__rw_const_value(g, k, &s) ||
        mt_type_numel(mt_graph_type(g, k)) != 1 || !mt__rw_same_type(g, m, v) ||
        s == 0.0) /* alpha 0: BLAS would not read a, b */
        return MT_VAR_NONE;
    mt__rw_begin(cx, v);
    if (mo == MT_OP_MATMUL) {
        mt_op_attrs a;
        memset(&a, 0, sizeof(a));
        a.alpha = s;
        a.beta = 0.0;
        return make_gemm(cx, &a, mt__rw_in(g, m, 0), mt__rw_in(g, m, 1),
                         mt__rw_scalar_like(cx, m, 0.0));
    }
    mt_op_attrs a = *mt_graph_attrs(g, m);
    a.alpha *= s;
    a.beta *= s;
    return make_gemm(cx, &a, mt__rw_in(g, m, 0), mt__rw_in(g, m, 1), mt__rw_in(g, m, 2));
}

/* x = dimshuffle(y) swapping the last two axes and keeping the others: *y receives y. */
static bool is_transpose(const mt_graph *g, mt_var x, mt_var *y)
{
    if (mt_graph_op(g, x) != MT_OP_DIMSHUFFLE) return false;
    const mt_op_attrs *a = mt_graph_attrs(g, x);
    *y = mt__rw_in(g, x, 0);
    int32_t nd = a->nperm;
    if (nd < 2 || mt_graph_type(g, *y)->ndim != nd) return false;
    for (int32_t i = 0; i < nd - 2; i++)
        if (a->perm[i] != i) return false;
    return a->perm[nd - 2] == nd - 1 && a->perm[nd - 1] == nd - 2;
}

static mt_var rule_gemm_transpose(mt__rw_ctx *cx, mt_var v)
{
    mt_graph *g = cx->g;
    mt_op_attrs a = *mt_graph_attrs(g, v);
    mt_var in[3] = {mt__rw_in(g, v, 0), mt__rw_in(g, v, 1), mt__rw_in(g, v, 2)}, y;
    bool changed = false;
    if (is_transpose(g, in[0], &y)) {
        in[0] = y;
        a.trans_a = !a.trans_a;
        changed = true;
    }
    if (is_transpose(g, in[1], &y)) {
        in[1] = y;
        a.trans_b = !a.trans_b;
        changed = true;
    }
    if (!changed) return MT_VAR_NONE;
    mt__rw_begin(cx, v);
    return mt_graph_make(g, MT_OP_GEMM, &a, 3, in);
}

#define SP MT__PH(SPECIALIZE)

const mt__rule mt__rules_blas[] = {
    {{"gemm_bias", "matmul(a, b) +- [beta *] c -> gemm(a, b, c, +-1, +-beta)", SP,
      MT_REWRITE_EXACT}, MT_OP_ELEMWISE, MT_SOP_COUNT, rule_gemm_bias},
    {{"gemm_scale", "s * matmul(a, b) -> gemm(a, b, 0, s, 0); s * gemm(..., alpha, beta) -> "
      "gemm(..., s*alpha, s*beta)", SP, MT_REWRITE_EXACT}, MT_OP_ELEMWISE, MT_SOP_MUL,
     rule_gemm_scale},
    {{"gemm_transpose", "gemm(transpose(a), transpose(b), ...) -> gemm with trans flags", SP,
      MT_REWRITE_EXACT}, MT_OP_GEMM, MT_SOP_COUNT, rule_gemm_transpose},
};
const int32_t mt__rules_blas_count = (int32_t)(sizeof(mt__rules_blas) / sizeof(mt__rules_blas[0]));
