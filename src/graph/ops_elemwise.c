/* Elementwise ops: one op kind (ELEMWISE) parameterised by a scalar op (mt_sop), as Theano's
 * Elemwise(scalar_op). The builders do NumPy's work — broadcasting checks on the user's shapes,
 * dtype promotion with NEP 50 weak literals, NumPy's special cases for bools and integers —
 * and then emit nodes that satisfy a strict contract (operands of one dtype and equal ndim),
 * which the type inference below checks and the JIT maps 1:1 onto gpuarray kernel
 * expressions. Implicit conversions are explicit CAST nodes, or new constants when the operand
 * is a constant, so rewrites see plain constants. */
#include <stdio.h>
#include <string.h>

#include "graph_impl.h"

/* ---------------------------------------------------------------- scalar op classes */

typedef enum sop_class {
    C_BAD = 0,
    C_NUM,    /* numeric operands (no bool), result of the operand dtype */
    C_FLOAT,  /* float operands, float result */
    C_CMP,    /* operands of one dtype, bool result (comparisons, logical and/or/xor) */
    C_BOOLFN, /* unary, any operand, bool result */
    C_BIT,    /* bool or integer operands */
    C_SHIFT,  /* integer operands */
    C_ANY,    /* any operands (max, min) */
    C_CAST,
    C_WHERE
} sop_class;

static sop_class classify(mt_sop op)
{
    switch (op) {
    case MT_SOP_NEG: case MT_SOP_ABS: case MT_SOP_SIGN: case MT_SOP_SQUARE: case MT_SOP_RELU:
    case MT_SOP_FLOOR: case MT_SOP_CEIL: case MT_SOP_ROUND: case MT_SOP_TRUNC:
    case MT_SOP_ADD: case MT_SOP_SUB: case MT_SOP_MUL: case MT_SOP_DIV: case MT_SOP_FLOORDIV:
    case MT_SOP_MOD: case MT_SOP_POW:
        return C_NUM;
    case MT_SOP_RECIP: case MT_SOP_SQRT: case MT_SOP_RSQRT: case MT_SOP_EXP: case MT_SOP_EXP2:
    case MT_SOP_EXPM1: case MT_SOP_LOG: case MT_SOP_LOG2: case MT_SOP_LOG10: case MT_SOP_LOG1P:
    case MT_SOP_LOG1MEXP: case MT_SOP_SIN: case MT_SOP_COS: case MT_SOP_TAN: case MT_SOP_ASIN:
    case MT_SOP_ACOS: case MT_SOP_ATAN: case MT_SOP_SINH: case MT_SOP_COSH: case MT_SOP_TANH:
    case MT_SOP_ERF: case MT_SOP_ERFC: case MT_SOP_SIGMOID: case MT_SOP_SOFTPLUS:
    case MT_SOP_ATAN2: case MT_SOP_LOGADDEXP:
        return C_FLOAT;
    case MT_SOP_EQ: case MT_SOP_NE: case MT_SOP_LT: case MT_SOP_LE: case MT_SOP_GT: case MT_SOP_GE:
    case MT_SOP_AND: case MT_SOP_OR: case MT_SOP_XOR:
        return C_CMP;
    case MT_SOP_ISNAN: case MT_SOP_ISINF: case MT_SOP_ISFINITE: case MT_SOP_NOT:
        return C_BOOLFN;
    case MT_SOP_BITNOT: case MT_SOP_BITAND: case MT_SOP_BITOR: case MT_SOP_BITXOR:
        return C_BIT;
    case MT_SOP_LSHIFT: case MT_SOP_RSHIFT:
        return C_SHIFT;
    case MT_SOP_MAX: case MT_SOP_MIN:
        return C_ANY;
    case MT_SOP_CAST:
        return C_CAST;
    case MT_SOP_WHERE:
        return C_WHERE;
    default: /* INPUT, CONST, PARAM, INDEX, RAND_*: kernel-internal */
        return C_BAD;
    }
}

/* ---------------------------------------------------------------- type inference (contract) */

static mt_status dtype_err(const char *name, const char *need, mt_dtype got)
{
    return mt_err_set(MT_ERR_DTYPE, "%s: needs %s operands, got %s", name, need,
                      mt_dtype_name(got));
}

mt_status mt__infer_elemwise(mt__infer_ctx *cx)
{
    mt_sop sop = cx->attrs->sop;
    const char *name = cx->opname;
    sop_class cls = classify(sop);
    if ((unsigned)sop >= MT_SOP_COUNT || cls == C_BAD)
        return mt_err_set(MT_ERR_INVALID, "elemwise: '%s' is not an elementwise operation", name);
    if (cx->nin != mt__sop_arity(sop))
        return mt_err_set(MT_ERR_INVALID, "%s: expects %d operands, got %d", name,
                          (int)mt__sop_arity(sop), (int)cx->nin);
    const mt_type *const *in = cx->in;
    int32_t nd = in[0]->ndim;
    bool weak = true;
    for (int32_t i = 0; i < cx->nin; i++) {
        if (in[i]->ndim != nd)
            return mt_err_set(MT_ERR_SHAPE, "%s: operands must have equal ndim (%d and %d); the "
                              "named builders insert broadcast axes", name, (int)nd,
                              (int)in[i]->ndim);
        weak = weak && in[i]->weak;
    }
    /* the operand dtype that must be shared (all operands; WHERE: the branches) */
    int32_t first = cls == C_WHERE ? 1 : 0;
    mt_dtype dt = in[first]->dtype;
    for (int32_t i = first + 1; i < cx->nin && cls != C_CAST; i++)
        if (in[i]->dtype != dt)
            return mt_err_set(MT_ERR_DTYPE, "%s: operand dtypes differ (%s and %s); the named "
                              "builders insert casts", name, mt_dtype_name(dt),
                              mt_dtype_name(in[i]->dtype));
    char kind = mt_dtype_kind(dt);
    mt_dtype out = dt;
    switch (cls) {
    case C_NUM:
        if (kind == 'b') return dtype_err(name, "numeric", dt);
        break;
    case C_FLOAT:
        if (kind != 'f') return dtype_err(name, "float", dt);
        break;
    case C_CMP:
    case C_BOOLFN:
        out = MT_BOOL;
        break;
    case C_BIT:
        if (kind == 'f') return dtype_err(name, "bool or integer", dt);
        break;
    case C_SHIFT:
        if (kind != 'i' && kind != 'u') return dtype_err(name, "integer", dt);
        break;
    case C_CAST:
        if (!mt_dtype_valid(cx->attrs->dtype))
            return mt_err_set(MT_ERR_DTYPE, "cast: invalid target dtype %d", (int)cx->attrs->dtype);
        out = cx->attrs->dtype;
        weak = false;
        break;
    case C_WHERE:
        if (in[0]->dtype != MT_BOOL)
            return mt_err_set(MT_ERR_DTYPE, "where: condition must be bool, got %s",
                              mt_dtype_name(in[0]->dtype));
        break;
    default:
        break;
    }
    mt_type t = mt_type_make(out, nd, NULL);
    for (int32_t d = 0; d < nd; d++) {
        int64_t s = 1;
        for (int32_t i = 0; i < cx->nin; i++) {
            int64_t r = mt__broadcast_dim(s, in[i]->shape[d], &cx->rtcheck);
            if (r == -2) {
                char a[128], b[128];
                return mt_err_set(MT_ERR_SHAPE, "%s: shapes %s and %s do not broadcast", name,
                                  mt__shape_str(nd, in[0]->shape, a, sizeof(a)),
                                  mt__shape_str(nd, in[i]->shape, b, sizeof(b)));
            }
            s = r;
        }
        t.shape[d] = s;
    }
    t.weak = weak && nd == 0;
    cx->out = t;
    return MT_OK;
}

/* ---------------------------------------------------------------- conversions */

/* A constant with the data of constant node n converted to dt and the given shape (same
 * element count) and weakness. */
static mt_var const_converted(mt_graph *g, const mt__node *n, mt_dtype dt, int32_t ndim,
                              const int64_t *shape, bool weak)
{
    int64_t numel = mt_type_numel(&n->type);
    size_t sz = mt_dtype_size(dt);
    unsigned char small[64];
    void *buf = small;
    if ((size_t)numel * sz > sizeof(small)) {
        buf = mt_malloc((size_t)numel * sz);
        if (!buf) return mt__fail(g, MT_ERR_NOMEM, "cast: out of memory");
    }
    if (numel > 0)
        mt_dtype_convert(buf, dt, (ptrdiff_t)sz, n->attrs.data, n->type.dtype,
                         (ptrdiff_t)mt_dtype_size(n->type.dtype), (size_t)numel);
    mt_op_attrs a;
    memset(&a, 0, sizeof(a));
    a.dtype = dt;
    a.nshape = ndim;
    for (int32_t i = 0; i < ndim; i++) a.shape[i] = shape[i];
    a.data = buf;
    a.nbytes = (size_t)numel * sz;
    a.weak = weak && ndim == 0;
    mt_var v = mt__create(g, MT_OP_CONST, &a, 0, NULL);
    if (buf != small) mt_free(buf);
    return v;
}

static mt_var cast_node(mt_graph *g, mt_var x, mt_dtype dt)
{
    mt_op_attrs a;
    memset(&a, 0, sizeof(a));
    a.sop = MT_SOP_CAST;
    a.dtype = dt;
    return mt__create(g, MT_OP_ELEMWISE, &a, 1, &x);
}

/* Operand conversion inside elementwise builders: constants are re-made (weak only when the
 * whole expression stays weak); other variables get a CAST only when the dtype differs. */
static mt_var convert_operand(mt_graph *g, mt_var x, mt_dtype dt, bool keep_weak)
{
    const mt__node *n = mt__graph_node(g, x);
    if (n->op == MT_OP_CONST) {
        bool weak = keep_weak && n->type.weak;
        if (n->type.dtype == dt && n->type.weak == weak) return x;
        return const_converted(g, n, dt, n->type.ndim, n->type.shape, weak);
    }
    if (n->type.dtype == dt) return x;
    return cast_node(g, x, dt);
}

mt_var mt__cast(mt_graph *g, mt_var x, mt_dtype dt)
{
    if (!mt__check_vars(g, "cast", 1, &x)) return MT_VAR_NONE;
    if (!mt_dtype_valid(dt)) return mt__fail(g, MT_ERR_DTYPE, "cast: invalid dtype %d", (int)dt);
    const mt__node *n = mt__graph_node(g, x);
    if (n->type.dtype == dt && !n->type.weak) return x;
    if (n->op == MT_OP_CONST) return const_converted(g, n, dt, n->type.ndim, n->type.shape, false);
    return cast_node(g, x, dt);
}

mt_var mt_graph_cast(mt_graph *g, mt_var x, mt_dtype dt)
{
    return mt__cast(g, x, dt);
}

mt_var mt__expand_ndim(mt_graph *g, mt_var x, int32_t ndim)
{
    if (!mt__check_vars(g, "expand", 1, &x)) return MT_VAR_NONE;
    const mt__node *n = mt__graph_node(g, x);
    int32_t k = ndim - n->type.ndim;
    if (k <= 0) return x;
    if (ndim > MT_MAX_DIMS)
        return mt__fail(g, MT_ERR_INVALID, "expand: %d dimensions exceed the maximum %d",
                        (int)ndim, MT_MAX_DIMS);
    int64_t shape[MT_MAX_DIMS];
    for (int32_t i = 0; i < k; i++) shape[i] = 1;
    for (int32_t i = 0; i < n->type.ndim; i++) shape[k + i] = n->type.shape[i];
    if (n->op == MT_OP_CONST) return const_converted(g, n, n->type.dtype, ndim, shape, false);
    mt_op_attrs a;
    memset(&a, 0, sizeof(a));
    a.nperm = ndim;
    for (int32_t i = 0; i < k; i++) a.perm[i] = -1;
    for (int32_t i = 0; i < n->type.ndim; i++) a.perm[k + i] = i;
    return mt__create(g, MT_OP_DIMSHUFFLE, &a, 1, &x);
}

/* ---------------------------------------------------------------- promotion */

/* NumPy broadcasting of the operands' shapes (right-aligned), checked on the user's shapes so
 * the message shows them. */
static bool check_broadcast(mt_graph *g, const char *name, int32_t nin, const mt_var *in,
                            int32_t *ndim_out)
{
    int32_t nd = 0;
    for (int32_t i = 0; i < nin; i++) {
        int32_t k = mt__graph_node(g, in[i])->type.ndim;
        if (k > nd) nd = k;
    }
    for (int32_t d = 0; d < nd; d++) {
        int64_t s = 1;
        bool rt = false;
        for (int32_t i = 0; i < nin; i++) {
            const mt_type *t = &mt__graph_node(g, in[i])->type;
            int32_t j = d - (nd - t->ndim);
            if (j < 0) continue;
            int64_t r = mt__broadcast_dim(s, t->shape[j], &rt);
            if (r == -2) {
                char txt[512];
                size_t k = 0;
                txt[0] = 0;
                for (int32_t m = 0; m < nin; m++) {
                    const mt_type *tm = &mt__graph_node(g, in[m])->type;
                    char sb[128];
                    k += (size_t)snprintf(txt + k, sizeof(txt) - k, "%s%s",
                                          m == 0 ? "" : (m == nin - 1 ? " and " : ", "),
                                          mt__shape_str(tm->ndim, tm->shape, sb, sizeof(sb)));
                    if (k >= sizeof(txt)) break;
                }
                mt__fail(g, MT_ERR_SHAPE, "%s: shapes %s do not broadcast", name, txt);
                return false;
            }
            s = r;
        }
    }
    *ndim_out = nd;
    return true;
}

/* Checks that a weak integer constant fits integer dtype dt (NumPy 2 raises OverflowError). */
static bool weak_fits(mt_graph *g, const char *name, const mt__node *n, mt_dtype dt)
{
    if (n->op != MT_OP_CONST || !n->type.weak || mt_dtype_kind(n->type.dtype) != 'i') return true;
    char k = mt_dtype_kind(dt);
    if (k != 'i' && k != 'u') return true;
    int64_t v = mt__const_elem(n, 0).v.i;
    size_t bits = 8 * mt_dtype_size(dt);
    bool ok;
    if (k == 'u')
        ok = v >= 0 && (bits == 64 || (uint64_t)v < (1ull << bits));
    else
        ok = bits == 64 || (v >= -(1ll << (bits - 1)) && v < (1ll << (bits - 1)));
    if (!ok)
        mt__fail(g, MT_ERR_RANGE, "%s: Python integer %lld is out of bounds for %s", name,
                 (long long)v, mt_dtype_name(dt));
    return ok;
}

/* NEP 50 result dtype of the value operands; *all_weak when every operand is weak. */
static mt_dtype promote_values(mt_graph *g, int32_t n, const mt_var *vs, bool *all_weak)
{
    bool have_strong = false, weak_int = false, weak_float = false;
    mt_dtype base = MT_BOOL;
    for (int32_t i = 0; i < n; i++) {
        const mt_type *t = &mt__graph_node(g, vs[i])->type;
        if (t->weak) {
            if (mt_dtype_kind(t->dtype) == 'f')
                weak_float = true;
            else
                weak_int = true;
        } else {
            base = have_strong ? mt_dtype_promote(base, t->dtype) : t->dtype;
            have_strong = true;
        }
    }
    *all_weak = !have_strong;
    if (!have_strong) return weak_float ? MT_FLOAT64 : MT_INT64;
    char k = mt_dtype_kind(base);
    if (weak_float && k != 'f') base = MT_FLOAT64;
    if (weak_int && k == 'b') base = weak_float ? MT_FLOAT64 : MT_INT64;
    return base;
}

/* ---------------------------------------------------------------- the generic builder */

/* NumPy's special cases: may change the scalar op, the compute dtype, or make the op an
 * identity (*identity = true). Returns false after recording an error. */
static bool numpy_rules(mt_graph *g, mt_sop *sop, mt_dtype *dt, bool *identity)
{
    const char *name = mt__sop_text(*sop);
    char k = mt_dtype_kind(*dt);
    sop_class cls = classify(*sop);
    *identity = false;
    if (cls == C_FLOAT) {
        *dt = mt__float_dtype(*dt);
        return true;
    }
    if (cls == C_BIT && k == 'f') {
        mt__fail(g, MT_ERR_DTYPE, "%s: not supported for %s operands", name, mt_dtype_name(*dt));
        return false;
    }
    if (cls == C_SHIFT && k != 'i' && k != 'u') {
        mt__fail(g, MT_ERR_DTYPE, "%s: not supported for %s operands", name, mt_dtype_name(*dt));
        return false;
    }
    if (cls != C_NUM) return true;
    switch (*sop) {
    case MT_SOP_DIV:
        if (k != 'f') *dt = MT_FLOAT64;
        return true;
    case MT_SOP_FLOOR: case MT_SOP_CEIL: case MT_SOP_TRUNC:
        if (k != 'f') *dt = mt__float_dtype(*dt);
        return true;
    case MT_SOP_ROUND:
        if (k == 'b') *dt = MT_FLOAT16;
        if (k == 'i' || k == 'u') *identity = true;
        return true;
    default:
        break;
    }
    if (k != 'b') return true;
    switch (*sop) {
    case MT_SOP_ADD: *sop = MT_SOP_OR; return true;
    case MT_SOP_MUL: *sop = MT_SOP_AND; return true;
    case MT_SOP_ABS: case MT_SOP_RELU: *identity = true; return true;
    case MT_SOP_FLOORDIV: case MT_SOP_MOD: case MT_SOP_POW: case MT_SOP_SQUARE:
        *dt = MT_INT8;
        return true;
    case MT_SOP_SUB:
        mt__fail(g, MT_ERR_DTYPE, "sub: boolean subtract is not supported (NumPy); use "
                 "logical_xor");
        return false;
    case MT_SOP_NEG:
        mt__fail(g, MT_ERR_DTYPE, "neg: boolean negative is not supported (NumPy); use "
                 "logical_not");
        return false;
    default:
        mt__fail(g, MT_ERR_DTYPE, "%s: not supported for bool operands", name);
        return false;
    }
}

mt_var mt_graph_elemwise(mt_graph *g, mt_sop sop, int32_t nin, const mt_var *in)
{
    const char *name = mt__sop_text(sop);
    if (!g) return MT_VAR_NONE;
    sop_class cls = (unsigned)sop < MT_SOP_COUNT ? classify(sop) : C_BAD;
    if (cls == C_BAD || cls == C_CAST)
        return mt__fail(g, MT_ERR_INVALID, "elemwise: '%s' is not an elementwise operation%s",
                        name, cls == C_CAST ? " (use mt_graph_cast)" : "");
    if (nin != mt__sop_arity(sop) || !in)
        return mt__fail(g, MT_ERR_INVALID, "%s: expects %d operands, got %d", name,
                        (int)mt__sop_arity(sop), (int)nin);
    if (!mt__check_vars(g, name, nin, in)) return MT_VAR_NONE;
    int32_t nd;
    if (!check_broadcast(g, name, nin, in, &nd)) return MT_VAR_NONE;

    int32_t first = cls == C_WHERE ? 1 : 0;
    bool all_weak;
    mt_dtype base = promote_values(g, nin - first, in + first, &all_weak);
    mt_dtype dt = base;
    if (cls == C_FLOAT && !all_weak) {
        /* NumPy picks the first float loop every operand casts to safely: arctan2(int8, uint8)
         * is float16 although int8 + uint8 is int16 */
        bool have = false;
        for (int32_t i = 0; i < nin; i++) {
            const mt_type *t = &mt__graph_node(g, in[i])->type;
            if (t->weak) continue;
            mt_dtype f = mt__float_dtype(t->dtype);
            dt = have ? mt_dtype_promote(dt, f) : f;
            have = true;
        }
    }
    bool identity;
    if (!numpy_rules(g, &sop, &dt, &identity)) return MT_VAR_NONE;
    if (identity) return in[0];

    mt_var ops[3];
    for (int32_t i = 0; i < nin; i++) {
        const mt__node *n = mt__graph_node(g, in[i]);
        mt_dtype want = (i < first) ? MT_BOOL : dt;
        if (i >= first && !weak_fits(g, name, n, base)) return MT_VAR_NONE;
        if (n->op == MT_OP_CONST && n->type.ndim < nd) {
            /* one new constant of the final dtype and ndim, not a chain of them */
            int64_t shape[MT_MAX_DIMS];
            int32_t k = nd - n->type.ndim;
            for (int32_t d = 0; d < nd; d++) shape[d] = d < k ? 1 : n->type.shape[d - k];
            ops[i] = const_converted(g, n, want, nd, shape, false);
        } else {
            ops[i] = i < first ? mt__cast(g, in[i], want)
                               : convert_operand(g, in[i], want, all_weak);
            ops[i] = mt__expand_ndim(g, ops[i], nd);
        }
        if (!ops[i]) return MT_VAR_NONE;
    }
    mt_op_attrs a;
    memset(&a, 0, sizeof(a));
    a.sop = sop;
    return mt__create(g, MT_OP_ELEMWISE, &a, nin, ops);
}

mt_var mt_graph_unary(mt_graph *g, mt_sop sop, mt_var x)
{
    return mt_graph_elemwise(g, sop, 1, &x);
}

mt_var mt_graph_binary(mt_graph *g, mt_sop sop, mt_var a, mt_var b)
{
    mt_var in[2] = {a, b};
    return mt_graph_elemwise(g, sop, 2, in);
}

mt_var mt_graph_where(mt_graph *g, mt_var cond, mt_var a, mt_var b)
{
    mt_var in[3] = {cond, a, b};
    return mt_graph_elemwise(g, MT_SOP_WHERE, 3, in);
}

mt_var mt_graph_clip(mt_graph *g, mt_var x, mt_var lo, mt_var hi)
{
    return mt_graph_minimum(g, mt_graph_maximum(g, x, lo), hi);
}

/* ---------------------------------------------------------------- named wrappers */

#define BINARY(fn, SOP)                                  \
    mt_var fn(mt_graph *g, mt_var a, mt_var b)           \
    {                                                    \
        return mt_graph_binary(g, MT_SOP_##SOP, a, b);   \
    }
#define UNARY(fn, SOP)                                   \
    mt_var fn(mt_graph *g, mt_var x)                     \
    {                                                    \
        return mt_graph_unary(g, MT_SOP_##SOP, x);       \
    }

BINARY(mt_graph_add, ADD)
BINARY(mt_graph_sub, SUB)
BINARY(mt_graph_mul, MUL)
BINARY(mt_graph_div, DIV)
BINARY(mt_graph_floordiv, FLOORDIV)
BINARY(mt_graph_mod, MOD)
BINARY(mt_graph_pow, POW)
BINARY(mt_graph_maximum, MAX)
BINARY(mt_graph_minimum, MIN)
BINARY(mt_graph_arctan2, ATAN2)
BINARY(mt_graph_logaddexp, LOGADDEXP)
BINARY(mt_graph_eq, EQ)
BINARY(mt_graph_ne, NE)
BINARY(mt_graph_lt, LT)
BINARY(mt_graph_le, LE)
BINARY(mt_graph_gt, GT)
BINARY(mt_graph_ge, GE)
BINARY(mt_graph_logical_and, AND)
BINARY(mt_graph_logical_or, OR)
BINARY(mt_graph_logical_xor, XOR)
UNARY(mt_graph_logical_not, NOT)
UNARY(mt_graph_neg, NEG)
UNARY(mt_graph_abs, ABS)
UNARY(mt_graph_sign, SIGN)
UNARY(mt_graph_square, SQUARE)
UNARY(mt_graph_reciprocal, RECIP)
UNARY(mt_graph_sqrt, SQRT)
UNARY(mt_graph_rsqrt, RSQRT)
UNARY(mt_graph_exp, EXP)
UNARY(mt_graph_exp2, EXP2)
UNARY(mt_graph_expm1, EXPM1)
UNARY(mt_graph_log, LOG)
UNARY(mt_graph_log2, LOG2)
UNARY(mt_graph_log10, LOG10)
UNARY(mt_graph_log1p, LOG1P)
UNARY(mt_graph_log1mexp, LOG1MEXP)
UNARY(mt_graph_sin, SIN)
UNARY(mt_graph_cos, COS)
UNARY(mt_graph_tan, TAN)
UNARY(mt_graph_arcsin, ASIN)
UNARY(mt_graph_arccos, ACOS)
UNARY(mt_graph_arctan, ATAN)
UNARY(mt_graph_sinh, SINH)
UNARY(mt_graph_cosh, COSH)
UNARY(mt_graph_tanh, TANH)
UNARY(mt_graph_erf, ERF)
UNARY(mt_graph_erfc, ERFC)
UNARY(mt_graph_sigmoid, SIGMOID)
UNARY(mt_graph_softplus, SOFTPLUS)
UNARY(mt_graph_relu, RELU)
UNARY(mt_graph_floor, FLOOR)
UNARY(mt_graph_ceil, CEIL)
UNARY(mt_graph_round, ROUND)
UNARY(mt_graph_trunc, TRUNC)
UNARY(mt_graph_isnan, ISNAN)
UNARY(mt_graph_isinf, ISINF)
UNARY(mt_graph_isfinite, ISFINITE)
