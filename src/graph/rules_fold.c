/* Constant folding: elementwise ops whose operands are constants (or uniform broadcasts of
 * constants), and layout ops (dimshuffle, reshape, broadcast) and run-time identities of
 * constants, evaluated on the host into new constants.
 *
 * The evaluator computes exactly what gpuarray's kernel interpreter (src/gpuarray/kinterp.c)
 * computes for one node: float16, bfloat16 and float32 in float, float64 in double, integers
 * with wrapping arithmetic, Python floor division and modulo, NumPy's casts (core's
 * mt_dtype_convert), and the stable helpers (sigmoid, softplus, log1mexp, logaddexp, ...)
 * with the very formulas and thresholds of the kernels: core's internal header kscalar.h is
 * expanded here as the interpreter expands it (a header, so no link dependency). So folding a stable op never loses accuracy, and a
 * folded constant equals what the executor would have computed (tests/jit/test_rewrite_values.c
 * checks this bit for bit). Ops or dtype combinations the evaluator does not know are left
 * alone. Results larger than the folding limit are only folded when they are uniform (then
 * they become a broadcast of a scalar constant). */
#include <math.h>
#include <string.h>

#include "rewrite_impl.h"

/* ---------------------------------------------------------------- kscalar.h formulas */

/* Every helper (the branch-free float32 exp, log, tanh, sigmoid, ..., the float64 stable forms,
 * Python's floor division and modulo) comes from kscalar.h, expanded as host C by the same
 * header the kernel interpreter uses, so folding computes what the kernels compute. */
#include "../core/kscalar_host.h"

/* ---------------------------------------------------------------- values */

/* One element in its compute type: bool and unsigned in u, signed in i, float16/bfloat16/
 * float32 in f, float64 in d. */
typedef union fval {
    uint64_t u;
    int64_t i;
    float f;
    double d;
} fval;

typedef enum fcls { F_BOOL, F_SINT, F_UINT, F_F32, F_F64 } fcls;

static fcls cls_of(mt_dtype dt)
{
    switch (mt_dtype_kind(dt)) {
    case 'b': return F_BOOL;
    case 'i': return F_SINT;
    case 'u': return F_UINT;
    default: return dt == MT_FLOAT64 ? F_F64 : F_F32;
    }
}

static fval load(mt_dtype dt, const unsigned char *p)
{
    fval v;
    v.u = 0;
    switch (dt) {
    case MT_BOOL: v.u = p[0] != 0; break;
    case MT_INT8: { int8_t x; memcpy(&x, p, 1); v.i = x; break; }
    case MT_INT16: { int16_t x; memcpy(&x, p, 2); v.i = x; break; }
    case MT_INT32: { int32_t x; memcpy(&x, p, 4); v.i = x; break; }
    case MT_INT64: memcpy(&v.i, p, 8); break;
    case MT_UINT8: v.u = p[0]; break;
    case MT_UINT16: { uint16_t x; memcpy(&x, p, 2); v.u = x; break; }
    case MT_UINT32: { uint32_t x; memcpy(&x, p, 4); v.u = x; break; }
    case MT_UINT64: memcpy(&v.u, p, 8); break;
    case MT_FLOAT16: { uint16_t h; memcpy(&h, p, 2); v.f = mt_f16_to_f32(h); break; }
    case MT_BFLOAT16: { uint16_t h; memcpy(&h, p, 2); v.f = mt_bf16_to_f32(h); break; }
    case MT_FLOAT32: memcpy(&v.f, p, 4); break;
    default: memcpy(&v.d, p, 8); break;
    }
    return v;
}

/* Stores a compute value (of the class of dt) as dtype dt; integers keep their low bits. */
static void store(mt_dtype dt, fval v, unsigned char *p)
{
    switch (dt) {
    case MT_BOOL: p[0] = v.u != 0; break;
    case MT_INT8: case MT_UINT8: { uint8_t x = (uint8_t)v.u; memcpy(p, &x, 1); break; }
    case MT_INT16: case MT_UINT16: { uint16_t x = (uint16_t)v.u; memcpy(p, &x, 2); break; }
    case MT_INT32: case MT_UINT32: { uint32_t x = (uint32_t)v.u; memcpy(p, &x, 4); break; }
    case MT_INT64: case MT_UINT64: memcpy(p, &v.u, 8); break;
    case MT_FLOAT16: { uint16_t h = mt_f32_to_f16(v.f); memcpy(p, &h, 2); break; }
    case MT_BFLOAT16: { uint16_t h = mt_f32_to_bf16(v.f); memcpy(p, &h, 2); break; }
    case MT_FLOAT32: memcpy(p, &v.f, 4); break;
    default: memcpy(p, &v.d, 8); break;
    }
}

/* ---------------------------------------------------------------- scalar evaluation */

/* The functions that float32 takes from kscalar.h and double from libm. */
#define FLOAT_LIBM(F)                                          \
    case MT_SOP_EXP: return exp##F(a);                         \
    case MT_SOP_EXP2: return exp2##F(a);                       \
    case MT_SOP_EXPM1: return expm1##F(a);                     \
    case MT_SOP_LOG: return log##F(a);                         \
    case MT_SOP_LOG2: return log2##F(a);                       \
    case MT_SOP_LOG1P: return log1p##F(a);                     \
    case MT_SOP_TANH: return tanh##F(a);

/* Float ops shared by the float and double evaluators (F: libm suffix, S: helper suffix, P:
 * helper prefix: mt, kscalar.h). */
#define FLOAT_UNARY_REST(T, F, S, P)                           \
    case MT_SOP_NEG: return -a;                                \
    case MT_SOP_ABS: return fabs##F(a);                        \
    case MT_SOP_SIGN: return mt_sign_##S(a);                    \
    case MT_SOP_SQUARE: return a * a;                          \
    case MT_SOP_RELU: return (a > (T)0 || a != a) ? a : (T)0;  \
    case MT_SOP_FLOOR: return floor##F(a);                     \
    case MT_SOP_CEIL: return ceil##F(a);                       \
    case MT_SOP_ROUND: return rint##F(a);                      \
    case MT_SOP_TRUNC: return trunc##F(a);                     \
    case MT_SOP_RECIP: return (T)1 / a;                        \
    case MT_SOP_SQRT: return sqrt##F(a);                       \
    case MT_SOP_RSQRT: return (T)1 / sqrt##F(a);               \
    case MT_SOP_LOG10: return log10##F(a);                     \
    case MT_SOP_LOG1MEXP: return P##_log1mexp_##S(a);          \
    case MT_SOP_SIN: return sin##F(a);                         \
    case MT_SOP_COS: return cos##F(a);                         \
    case MT_SOP_TAN: return tan##F(a);                         \
    case MT_SOP_ASIN: return asin##F(a);                       \
    case MT_SOP_ACOS: return acos##F(a);                       \
    case MT_SOP_ATAN: return atan##F(a);                       \
    case MT_SOP_SINH: return sinh##F(a);                       \
    case MT_SOP_COSH: return cosh##F(a);                       \
    case MT_SOP_ERF: return erf##F(a);                         \
    case MT_SOP_ERFC: return erfc##F(a);                       \
    case MT_SOP_SIGMOID: return P##_sigmoid_##S(a);            \
    case MT_SOP_SOFTPLUS: return P##_softplus_##S(a);

#define FLOAT_BINARY(T, F, S, P)                               \
    case MT_SOP_ADD: return a + b;                             \
    case MT_SOP_SUB: return a - b;                             \
    case MT_SOP_MUL: return a * b;                             \
    case MT_SOP_DIV: return a / b;                             \
    case MT_SOP_FLOORDIV: return mt_floordiv_##S(a, b);         \
    case MT_SOP_MOD: return mt_mod_##S(a, b);                   \
    case MT_SOP_POW: return pow##F(a, b);                      \
    case MT_SOP_MAX: return (a > b || a != a) ? a : b;         \
    case MT_SOP_MIN: return (a < b || a != a) ? a : b;         \
    case MT_SOP_ATAN2: return atan2##F(a, b);                  \
    case MT_SOP_LOGADDEXP: return P##_logaddexp_##S(a, b);

static float f32_op(mt_sop op, float a, float b, bool *ok)
{
    switch (op) {
    case MT_SOP_EXP: return mt_exp_f32(a);
    case MT_SOP_EXP2: return mt_exp2_f32(a);
    case MT_SOP_EXPM1: return mt_expm1_f32(a);
    case MT_SOP_LOG: return mt_log_f32(a);
    case MT_SOP_LOG2: return mt_log2_f32(a);
    case MT_SOP_LOG1P: return mt_log1p_f32(a);
    case MT_SOP_TANH: return mt_tanh_f32(a);
    FLOAT_UNARY_REST(float, f, f32, mt)
    FLOAT_BINARY(float, f, f32, mt)
    default: *ok = false; return 0.0f;
    }
}

static double f64_op(mt_sop op, double a, double b, bool *ok)
{
    switch (op) {
    FLOAT_LIBM()
    FLOAT_UNARY_REST(double, , f64, mt)
    FLOAT_BINARY(double, , f64, mt)
    default: *ok = false; return 0.0;
    }
}

/* Bool-result ops of any class: comparisons, logical ops, isnan/isinf/isfinite, not. */
static bool bool_op(mt_sop op, fcls c, fval a, fval b, bool *ok)
{
#define CMPS(OPR)                                                              \
    switch (c) {                                                               \
    case F_SINT: return a.i OPR b.i;                                           \
    case F_F32: return a.f OPR b.f;                                            \
    case F_F64: return a.d OPR b.d;                                            \
    default: return a.u OPR b.u;                                               \
    }
#define TRUTH(x) (c == F_F32 ? (x).f != 0 : c == F_F64 ? (x).d != 0 : (x).u != 0)
    switch (op) {
    case MT_SOP_EQ: CMPS(==)
    case MT_SOP_NE: CMPS(!=)
    case MT_SOP_LT: CMPS(<)
    case MT_SOP_LE: CMPS(<=)
    case MT_SOP_GT: CMPS(>)
    case MT_SOP_GE: CMPS(>=)
    case MT_SOP_AND: return TRUTH(a) && TRUTH(b);
    case MT_SOP_OR: return TRUTH(a) || TRUTH(b);
    case MT_SOP_XOR: return TRUTH(a) != TRUTH(b);
    case MT_SOP_NOT: return !TRUTH(a);
    case MT_SOP_ISNAN: return c == F_F32 ? a.f != a.f : c == F_F64 ? a.d != a.d : false;
    case MT_SOP_ISINF:
        return c == F_F32 ? fabsf(a.f) == INFINITY : c == F_F64 ? fabs(a.d) == INFINITY : false;
    case MT_SOP_ISFINITE:
        return c == F_F32 ? fabsf(a.f) < INFINITY : c == F_F64 ? fabs(a.d) < INFINITY : true;
    default:
        *ok = false;
        return false;
    }
#undef CMPS
#undef TRUTH
}

static bool is_bool_result(mt_sop op)
{
    switch (op) {
    case MT_SOP_EQ: case MT_SOP_NE: case MT_SOP_LT: case MT_SOP_LE: case MT_SOP_GT: case MT_SOP_GE:
    case MT_SOP_AND: case MT_SOP_OR: case MT_SOP_XOR: case MT_SOP_NOT: case MT_SOP_ISNAN:
    case MT_SOP_ISINF: case MT_SOP_ISFINITE:
        return true;
    default:
        return false;
    }
}

/* Integer (and bool) arithmetic of width `bits`: values are sign- or zero-extended to 64 bits,
 * the result's low bits are what the kernel's narrower arithmetic gives. */
static uint64_t int_op(mt_sop op, fcls c, int bits, fval a, fval b, bool *ok)
{
    bool s = c == F_SINT;
    switch (op) {
    case MT_SOP_NEG: return (uint64_t)0 - a.u;
    case MT_SOP_ABS: return s && a.i < 0 ? (uint64_t)0 - a.u : a.u;
    case MT_SOP_SIGN: return s ? (uint64_t)(int64_t)((a.i > 0) - (a.i < 0)) : (uint64_t)(a.u > 0);
    case MT_SOP_SQUARE: return a.u * a.u;
    case MT_SOP_RELU: return s && a.i < 0 ? 0 : a.u;
    case MT_SOP_FLOOR: case MT_SOP_CEIL: case MT_SOP_ROUND: case MT_SOP_TRUNC: return a.u;
    case MT_SOP_BITNOT: return c == F_BOOL ? a.u ^ 1u : ~a.u;
    case MT_SOP_ADD: return a.u + b.u;
    case MT_SOP_SUB: return a.u - b.u;
    case MT_SOP_MUL: return a.u * b.u;
    case MT_SOP_DIV: /* the kernels divide integers with floor division */
    case MT_SOP_FLOORDIV:
        return s ? (uint64_t)mt_floordiv_i64(a.i, b.i) : (b.u == 0 ? 0 : a.u / b.u);
    case MT_SOP_MOD: return s ? (uint64_t)mt_mod_i64(a.i, b.i) : (b.u == 0 ? 0 : a.u % b.u);
    case MT_SOP_POW: return s ? (uint64_t)mt_pow_i64(a.i, b.i) : mt_pow_u64(a.u, b.u);
    case MT_SOP_MAX: return (s ? a.i > b.i : a.u > b.u) ? a.u : b.u;
    case MT_SOP_MIN: return (s ? a.i < b.i : a.u < b.u) ? a.u : b.u;
    case MT_SOP_BITAND: return a.u & b.u;
    case MT_SOP_BITOR: return a.u | b.u;
    case MT_SOP_BITXOR: return a.u ^ b.u;
    case MT_SOP_LSHIFT: return b.u < (uint64_t)bits ? a.u << b.u : 0;
    case MT_SOP_RSHIFT:
        if (s) return b.u < (uint64_t)bits ? (uint64_t)(a.i >> b.u) : (a.i < 0 ? ~(uint64_t)0 : 0);
        return b.u < (uint64_t)bits ? a.u >> b.u : 0;
    default:
        *ok = false;
        return 0;
    }
}

/* One element of `op` over operands of dtype in_dt (WHERE: the branches' dtype; the condition
 * is in a[0] as bool). Returns false for combinations the evaluator does not implement. */
static bool eval_elem(mt_sop op, mt_dtype in_dt, const fval *a, fval *r)
{
    bool ok = true;
    fcls c = cls_of(in_dt);
    if (op == MT_SOP_WHERE) {
        *r = a[0].u ? a[1] : a[2];
        return true;
    }
    fval b = mt_sop_arity(op) > 1 ? a[1] : a[0];
    r->u = 0;
    if (is_bool_result(op)) {
        r->u = bool_op(op, c, a[0], b, &ok);
        return ok;
    }
    switch (c) {
    case F_F32: r->f = f32_op(op, a[0].f, b.f, &ok); break;
    case F_F64: r->d = f64_op(op, a[0].d, b.d, &ok); break;
    default: {
        uint64_t v = int_op(op, c, (int)(8 * mt_dtype_size(in_dt)), a[0], b, &ok);
        r->u = c == F_BOOL ? (v & 1u) : v;
        break;
    }
    }
    return ok;
}

/* ---------------------------------------------------------------- operands */

/* An operand as data with a shape of the node's ndim (dims 1 broadcast). */
typedef struct operand {
    mt_dtype dt;
    const unsigned char *data;
    int64_t stride[MT_MAX_DIMS]; /* elements; 0 on broadcast dims */
    unsigned char one[16];       /* storage of a uniform value */
} operand;

/* Sets up operand i of node n: a constant's data, or a uniform value as one element. */
static bool operand_init(const mt_graph *g, mt_var x, int32_t nd, const int64_t *out_shape,
                         operand *o)
{
    const mt__node *xn = mt__graph_node(g, x);
    o->dt = xn->type.dtype;
    if (xn->op == MT_OP_CONST && xn->type.ndim == nd) {
        o->data = xn->attrs.data;
        int64_t s = 1;
        for (int32_t d = nd - 1; d >= 0; d--) {
            o->stride[d] = xn->type.shape[d] == 1 && out_shape[d] != 1 ? 0 : s;
            s *= xn->type.shape[d];
        }
        return true;
    }
    mt_scalar sc;
    if (!mt_graph_scalar_value(g, x, &sc)) return false;
    mt_scalar_store(&sc, o->dt, o->one);
    o->data = o->one;
    for (int32_t d = 0; d < nd; d++) o->stride[d] = 0;
    return true;
}

/* A new constant of v's dtype with the given shape and data (weak as v when 0-d). */
static mt_var make_const(mt__rw_ctx *cx, mt_var v, int32_t nd, const int64_t *shape,
                         const void *data, size_t nbytes)
{
    const mt_type *t = mt_graph_type(cx->g, v);
    mt_op_attrs a;
    memset(&a, 0, sizeof(a));
    a.dtype = t->dtype;
    a.nshape = nd;
    for (int32_t i = 0; i < nd; i++) a.shape[i] = shape[i];
    a.data = data;
    a.nbytes = nbytes;
    a.weak = t->weak && nd == 0;
    return mt_graph_make(cx->g, MT_OP_CONST, &a, 0, NULL);
}

/* ---------------------------------------------------------------- folding */

/* Evaluates elements [0, count) of the elementwise node over the operands into out. */
static bool eval_block(const mt__node *n, operand *ops, const int64_t *shape, int64_t count,
                       unsigned char *out)
{
    mt_sop op = n->attrs.sop;
    mt_dtype out_dt = n->type.dtype;
    int32_t nd = n->type.ndim, nin = n->nin;
    mt_dtype in_dt = ops[nin > 1 && op == MT_SOP_WHERE ? 1 : 0].dt;
    size_t osz = mt_dtype_size(out_dt);
    int64_t idx[MT_MAX_DIMS] = {0};
    for (int64_t j = 0; j < count; j++) {
        fval a[3], r;
        const unsigned char *p[3] = {NULL, NULL, NULL};
        for (int32_t i = 0; i < nin; i++) {
            int64_t off = 0;
            for (int32_t d = 0; d < nd; d++) off += idx[d] * ops[i].stride[d];
            p[i] = ops[i].data + (size_t)off * mt_dtype_size(ops[i].dt);
            a[i] = load(ops[i].dt, p[i]);
        }
        if (op == MT_SOP_CAST) /* NumPy casting, as the kernels (mt_dtype_convert) */
            mt_dtype_convert(out + (size_t)j * osz, out_dt, 0, p[0], ops[0].dt, 0, 1);
        else if (!eval_elem(op, in_dt, a, &r))
            return false;
        else
            store(out_dt, r, out + (size_t)j * osz);
        for (int32_t d = nd - 1; d >= 0; d--) {
            if (++idx[d] < shape[d]) break;
            idx[d] = 0;
        }
    }
    return true;
}

static mt_var fold_elemwise(mt__rw_ctx *cx, mt_var v)
{
    mt_graph *g = cx->g;
    const mt__node *n = mt__graph_node(g, v);
    int32_t nd = n->type.ndim;
    operand ops[3];
    if (n->nin > 3) return MT_VAR_NONE;
    bool uniform = true;
    for (int32_t i = 0; i < n->nin; i++) {
        if (!operand_init(g, n->in[i], nd, n->type.shape, &ops[i])) return MT_VAR_NONE;
        for (int32_t d = 0; d < nd; d++) uniform = uniform && ops[i].stride[d] == 0;
    }
    int64_t numel = mt_type_numel(&n->type);
    bool full = numel >= 0 && numel <= cx->fold_max;
    if (!full && !uniform) return MT_VAR_NONE;
    int64_t count = full ? numel : 1;
    int64_t ones[MT_MAX_DIMS];
    for (int32_t d = 0; d < nd; d++) ones[d] = 1;
    const int64_t *shape = full ? n->type.shape : ones;
    size_t nbytes = (size_t)count * mt_dtype_size(n->type.dtype);
    unsigned char small[64];
    unsigned char *buf = nbytes <= sizeof(small) ? small : mt_malloc(nbytes);
    if (!buf) return MT_VAR_NONE;
    mt_var r = MT_VAR_NONE;
    if (eval_block(n, ops, shape, count, buf)) {
        mt__rw_begin(cx, v);
        r = make_const(cx, v, nd, shape, buf, nbytes);
        if (r && !full) { /* a large uniform result: broadcast the scalar */
            mt_var ref = MT_VAR_NONE;
            for (int32_t i = 0; i < n->nin && numel < 0; i++)
                if (mt__rw_same_type(g, n->in[i], v)) ref = n->in[i];
            if (numel >= 0) {
                r = mt_graph_broadcast_to(g, r, nd, n->type.shape);
            } else if (ref) {
                mt_var in[2] = {r, ref};
                r = mt_graph_make(g, MT_OP_BROADCAST_LIKE, NULL, 2, in);
            } else {
                r = MT_VAR_NONE;
            }
        }
    }
    if (buf != small) mt_free(buf);
    return r;
}

/* Layout ops of a constant (dimshuffle, reshape, broadcast) within the size limit. */
static mt_var fold_layout(mt__rw_ctx *cx, mt_var v)
{
    mt_graph *g = cx->g;
    const mt__node *n = mt__graph_node(g, v);
    const mt__node *x = mt__graph_node(g, n->in[0]);
    if (x->op != MT_OP_CONST) return MT_VAR_NONE;
    int64_t numel = mt_type_numel(&n->type);
    if (numel < 0 || numel > cx->fold_max) return MT_VAR_NONE;
    int32_t nd = n->type.ndim, xd = x->type.ndim;
    size_t sz = mt_dtype_size(n->type.dtype);
    if (n->op == MT_OP_RESHAPE) {
        mt__rw_begin(cx, v);
        return make_const(cx, v, nd, n->type.shape, x->attrs.data, x->attrs.nbytes);
    }
    /* stride of each output axis into x's data (0 for new and broadcast axes) */
    int64_t xs[MT_MAX_DIMS], st[MT_MAX_DIMS];
    int64_t s = 1;
    for (int32_t d = xd - 1; d >= 0; d--) {
        xs[d] = s;
        s *= x->type.shape[d];
    }
    for (int32_t d = 0; d < nd; d++) {
        if (n->op == MT_OP_DIMSHUFFLE) {
            int32_t p = n->attrs.perm[d];
            st[d] = p < 0 ? 0 : xs[p];
        } else { /* broadcast: right-aligned */
            int32_t j = d - (nd - xd);
            st[d] = j < 0 || x->type.shape[j] == 1 ? 0 : xs[j];
        }
    }
    size_t nbytes = (size_t)numel * sz;
    unsigned char *buf = mt_malloc(nbytes ? nbytes : 1);
    if (!buf) return MT_VAR_NONE;
    int64_t idx[MT_MAX_DIMS] = {0};
    const unsigned char *src = x->attrs.data;
    for (int64_t j = 0; j < numel; j++) {
        int64_t off = 0;
        for (int32_t d = 0; d < nd; d++) off += idx[d] * st[d];
        memcpy(buf + (size_t)j * sz, src + (size_t)off * sz, sz);
        for (int32_t d = nd - 1; d >= 0; d--) {
            if (++idx[d] < n->type.shape[d]) break;
            idx[d] = 0;
        }
    }
    mt__rw_begin(cx, v);
    mt_var r = make_const(cx, v, nd, n->type.shape, buf, nbytes);
    mt_free(buf);
    return r;
}

static mt_var rule_constant_fold(mt__rw_ctx *cx, mt_var v)
{
    if (!cx->fold_enabled) return MT_VAR_NONE;
    const mt__node *n = mt__graph_node(cx->g, v);
    switch (n->op) {
    case MT_OP_ELEMWISE:
        return fold_elemwise(cx, v);
    case MT_OP_DIMSHUFFLE: case MT_OP_RESHAPE: case MT_OP_BROADCAST_TO: case MT_OP_BROADCAST_LIKE:
        return fold_layout(cx, v);
    case MT_OP_STOP_GRADIENT: case MT_OP_GRAD_CLIP: case MT_OP_SHAPE_ASSERT:
        /* run-time identities: of a constant (zero gradient, static shape) just the constant */
        if (mt_graph_op(cx->g, n->in[0]) == MT_OP_CONST && mt__rw_fits(cx->g, n->in[0], v))
            return n->in[0];
        return MT_VAR_NONE;
    default:
        return MT_VAR_NONE;
    }
}

const mt__rule mt__rules_fold[] = {
    {{"constant_fold", "op(constants) -> constant, evaluated with the kernels' formulas",
      MT__PH(CANONICALIZE) | MT__PH(STABILIZE) | MT__PH(SPECIALIZE), MT_REWRITE_EXACT},
     MT_OP_COUNT, MT_SOP_COUNT, rule_constant_fold},
};
const int32_t mt__rules_fold_count = (int32_t)(sizeof(mt__rules_fold) / sizeof(mt__rules_fold[0]));
