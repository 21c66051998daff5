/* Scalar kernel expressions (mt_kexpr): builders, validation, hashing and printing.
 *
 * An expression is an SSA list of typed nodes; every operand refers to an earlier node. The
 * builders check operand indices and dtypes as each node is added, so an invalid expression is
 * caught where it is built (with the node and dtypes named), and a failed builder returns -1,
 * which every later builder passes on without a new message: one check at the end suffices.
 * mt_kexpr_validate repeats all checks for node arrays assembled by hand. The dtype rules live
 * in one table (op_rules) shared by both paths. CONST values are kept canonical (converted to
 * the node's dtype), so equal constants hash, print and generate equally. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "gpuarray_impl.h"

/* ---------------------------------------------------------------- op names and dtype rules */

/* Operand kinds an op accepts, and its result rule. */
enum { KB = 1, KI = 2, KU = 4, KF = 8, KNUM = KI | KU | KF, KALL = KB | KI | KU | KF };
enum { R_SAME = 0, R_BOOL, R_SPECIAL };
typedef struct op_rule {
    unsigned char kinds;
    unsigned char result;
} op_rule;

static op_rule op_rules(mt_sop op)
{
    switch (op) {
    case MT_SOP_INPUT: case MT_SOP_CONST: case MT_SOP_PARAM: case MT_SOP_INDEX:
    case MT_SOP_CAST: case MT_SOP_WHERE: case MT_SOP_RAND_UNIFORM: case MT_SOP_RAND_NORMAL:
        return (op_rule){KALL, R_SPECIAL};
    case MT_SOP_NEG: case MT_SOP_ABS: case MT_SOP_SIGN: case MT_SOP_SQUARE: case MT_SOP_RELU:
    case MT_SOP_FLOOR: case MT_SOP_CEIL: case MT_SOP_ROUND: case MT_SOP_TRUNC:
    case MT_SOP_ADD: case MT_SOP_SUB: case MT_SOP_MUL: case MT_SOP_DIV: case MT_SOP_FLOORDIV:
    case MT_SOP_MOD: case MT_SOP_POW:
        return (op_rule){KNUM, R_SAME};
    case MT_SOP_ISNAN: case MT_SOP_ISINF: case MT_SOP_ISFINITE: case MT_SOP_NOT:
    case MT_SOP_EQ: case MT_SOP_NE: case MT_SOP_LT: case MT_SOP_LE: case MT_SOP_GT:
    case MT_SOP_GE: case MT_SOP_AND: case MT_SOP_OR: case MT_SOP_XOR:
        return (op_rule){KALL, R_BOOL};
    case MT_SOP_BITNOT: case MT_SOP_BITAND: case MT_SOP_BITOR: case MT_SOP_BITXOR:
        return (op_rule){KB | KI | KU, R_SAME};
    case MT_SOP_LSHIFT: case MT_SOP_RSHIFT:
        return (op_rule){KI | KU, R_SAME};
    case MT_SOP_MAX: case MT_SOP_MIN:
        return (op_rule){KALL, R_SAME};
    default: /* RECIP, SQRT ... SOFTPLUS, ATAN2, LOGADDEXP: float functions */
        return (op_rule){KF, R_SAME};
    }
}

static unsigned kind_bit(mt_dtype dt)
{
    switch (mt_dtype_kind(dt)) {
    case 'b': return KB;
    case 'i': return KI;
    case 'u': return KU;
    case 'f': return KF;
    default: return 0;
    }
}

static const char *kinds_text(unsigned k)
{
    switch (k) {
    case KF: return "a float";
    case KNUM: return "a numeric (int, uint or float)";
    case KB | KI | KU: return "a bool or integer";
    case KI | KU: return "an integer";
    default: return "a valid";
    }
}

/* ---------------------------------------------------------------- canonical constants */

/* The CONST value converted to the node's dtype (what the kernel computes with). */
mt_scalar mt__kexpr_const_value(const mt_knode *n)
{
    unsigned char buf[8] = {0};
    mt_scalar src = n->value;
    mt_scalar out;
    memset(&out, 0, sizeof out);
    out.dtype = n->dtype;
    if (!mt_dtype_valid(src.dtype)) src = mt_scalar_f64(0.0);
    mt_scalar_store(&src, n->dtype, buf);
    switch (n->dtype) {
    case MT_BOOL: out.v.b = buf[0] != 0; break;
    case MT_INT8: { int8_t v; memcpy(&v, buf, 1); out.v.i = v; break; }
    case MT_INT16: { int16_t v; memcpy(&v, buf, 2); out.v.i = v; break; }
    case MT_INT32: { int32_t v; memcpy(&v, buf, 4); out.v.i = v; break; }
    case MT_INT64: memcpy(&out.v.i, buf, 8); break;
    case MT_UINT8: out.v.u = buf[0]; break;
    case MT_UINT16: { uint16_t v; memcpy(&v, buf, 2); out.v.u = v; break; }
    case MT_UINT32: { uint32_t v; memcpy(&v, buf, 4); out.v.u = v; break; }
    case MT_UINT64: memcpy(&out.v.u, buf, 8); break;
    case MT_FLOAT16: { uint16_t v; memcpy(&v, buf, 2); out.v.f = mt_f16_to_f32(v); break; }
    case MT_BFLOAT16: { uint16_t v; memcpy(&v, buf, 2); out.v.f = mt_bf16_to_f32(v); break; }
    case MT_FLOAT32: { float v; memcpy(&v, buf, 4); out.v.f = v; break; }
    case MT_FLOAT64: memcpy(&out.v.f, buf, 8); break;
    default: break;
    }
    return out;
}

/* 64 bits that identify a canonical constant exactly (-0.0 and 0.0 differ, NaNs by payload). */
static uint64_t const_bits(const mt_knode *n)
{
    mt_scalar c = mt__kexpr_const_value(n);
    uint64_t b = 0;
    switch (mt_dtype_kind(n->dtype)) {
    case 'b': b = c.v.b; break;
    case 'i': b = (uint64_t)c.v.i; break;
    case 'u': b = c.v.u; break;
    default: memcpy(&b, &c.v.f, 8); break;
    }
    return b;
}

/* ---------------------------------------------------------------- node checks */

static bool op_valid(mt_sop op)
{
    return (unsigned)op < MT_SOP_COUNT;
}

/* Checks node n as node number k of e (operands must be earlier nodes). */
static mt_status node_check(const mt_kexpr *e, const mt_knode *n, int32_t k)
{
    if (!op_valid(n->op)) return mt_err_set(MT_ERR_INVALID, "kexpr node %d: invalid op %d", k, (int)n->op);
    const char *name = mt_sop_name(n->op);
    int ar = mt_sop_arity(n->op);
    const int32_t opnd[3] = {n->a, n->b, n->c};
    for (int i = 0; i < 3; i++) {
        if (i < ar) {
            if (opnd[i] < 0 || opnd[i] >= k)
                return mt_err_set(MT_ERR_INVALID,
                                  "kexpr node %d (%s): operand %d refers to node %d, not an "
                                  "earlier node (0..%d)", k, name, i, opnd[i], k - 1);
        }
    }
    if (!mt_dtype_valid(n->dtype))
        return mt_err_set(MT_ERR_INVALID, "kexpr node %d (%s): invalid dtype %d", k, name,
                          (int)n->dtype);
    mt_dtype da = ar >= 1 ? e->nodes[n->a].dtype : MT_DTYPE_COUNT;
    mt_dtype db = ar >= 2 ? e->nodes[n->b].dtype : MT_DTYPE_COUNT;
    mt_dtype dc = ar >= 3 ? e->nodes[n->c].dtype : MT_DTYPE_COUNT;
    switch (n->op) {
    case MT_SOP_INPUT:
    case MT_SOP_PARAM:
        if (n->arg < 0)
            return mt_err_set(MT_ERR_INVALID, "kexpr node %d (%s): negative index %d", k, name, n->arg);
        return MT_OK;
    case MT_SOP_CONST:
    case MT_SOP_CAST:
        return MT_OK;
    case MT_SOP_INDEX:
        if (n->dtype != MT_INT64)
            return mt_err_set(MT_ERR_INVALID, "kexpr node %d (index): dtype must be int64, not %s",
                              k, mt_dtype_name(n->dtype));
        return MT_OK;
    case MT_SOP_RAND_UNIFORM:
    case MT_SOP_RAND_NORMAL:
        if (!mt_dtype_is_float(n->dtype))
            return mt_err_set(MT_ERR_DTYPE, "kexpr node %d (%s): needs a float dtype, not %s", k,
                              name, mt_dtype_name(n->dtype));
        if (n->arg < 0)
            return mt_err_set(MT_ERR_INVALID, "kexpr node %d (%s): negative seed param %d", k,
                              name, n->arg);
        return MT_OK;
    case MT_SOP_WHERE:
        if (da != MT_BOOL)
            return mt_err_set(MT_ERR_DTYPE, "kexpr node %d (where): condition (node %d) must be "
                              "bool, not %s", k, n->a, mt_dtype_name(da));
        if (db != dc)
            return mt_err_set(MT_ERR_DTYPE, "kexpr node %d (where): branch dtypes differ (node "
                              "%d is %s, node %d is %s)", k, n->b, mt_dtype_name(db), n->c,
                              mt_dtype_name(dc));
        if (n->dtype != db)
            return mt_err_set(MT_ERR_DTYPE, "kexpr node %d (where): dtype %s differs from its "
                              "branches' %s", k, mt_dtype_name(n->dtype), mt_dtype_name(db));
        return MT_OK;
    default:
        break;
    }
    op_rule r = op_rules(n->op);
    if (ar == 2 && da != db)
        return mt_err_set(MT_ERR_DTYPE, "kexpr node %d (%s): operand dtypes differ (node %d is "
                          "%s, node %d is %s); insert a cast", k, name, n->a, mt_dtype_name(da),
                          n->b, mt_dtype_name(db));
    if (!(kind_bit(da) & r.kinds))
        return mt_err_set(MT_ERR_DTYPE, "kexpr node %d (%s): needs %s operand, node %d is %s", k,
                          name, kinds_text(r.kinds), n->a, mt_dtype_name(da));
    mt_dtype want = r.result == R_BOOL ? MT_BOOL : da;
    if (n->dtype != want)
        return mt_err_set(MT_ERR_DTYPE, "kexpr node %d (%s): result dtype must be %s, not %s", k,
                          name, mt_dtype_name(want), mt_dtype_name(n->dtype));
    return MT_OK;
}

/* An INPUT or PARAM index read with another dtype elsewhere, or a RAND param used as PARAM of
 * another dtype: returns the conflicting node or -1. */
static int32_t conflict_with(const mt_kexpr *e, int32_t upto, const mt_knode *n)
{
    for (int32_t j = 0; j < upto; j++) {
        const mt_knode *m = &e->nodes[j];
        if (n->op == MT_SOP_INPUT) {
            if (m->op == MT_SOP_INPUT && m->arg == n->arg && m->dtype != n->dtype) return j;
            continue;
        }
        /* params: PARAM k has the node's dtype; RAND claims arg and arg+1 as uint64 */
        int32_t na0 = n->arg, na1 = n->op == MT_SOP_PARAM ? n->arg : n->arg + 1;
        mt_dtype nd = n->op == MT_SOP_PARAM ? n->dtype : MT_UINT64;
        if (m->op == MT_SOP_PARAM) {
            if ((m->arg == na0 || m->arg == na1) && m->dtype != nd) return j;
        } else if (m->op == MT_SOP_RAND_UNIFORM || m->op == MT_SOP_RAND_NORMAL) {
            if ((na0 == m->arg || na0 == m->arg + 1 || na1 == m->arg || na1 == m->arg + 1) &&
                nd != MT_UINT64)
                return j;
        }
    }
    return -1;
}

static bool reads_param(mt_sop op)
{
    return op == MT_SOP_PARAM || op == MT_SOP_RAND_UNIFORM || op == MT_SOP_RAND_NORMAL;
}

static mt_status usage_check(const mt_kexpr *e, const mt_knode *n, int32_t k)
{
    if (n->op != MT_SOP_INPUT && !reads_param(n->op)) return MT_OK;
    int32_t j = conflict_with(e, k, n);
    if (j < 0) return MT_OK;
    const mt_knode *m = &e->nodes[j];
    if (n->op == MT_SOP_INPUT)
        return mt_err_set(MT_ERR_DTYPE, "kexpr node %d reads input %d as %s but node %d reads it "
                          "as %s", k, n->arg, mt_dtype_name(n->dtype), j, mt_dtype_name(m->dtype));
    return mt_err_set(MT_ERR_DTYPE, "kexpr node %d (%s) and node %d (%s) read param %d with "
                      "different dtypes (RAND seeds and offsets are uint64)", k,
                      mt_sop_name(n->op), j, mt_sop_name(m->op), reads_param(n->op) ? n->arg : 0);
}

/* ---------------------------------------------------------------- builders */

void mt_kexpr_init(mt_kexpr *e)
{
    memset(e, 0, sizeof *e);
}

void mt_kexpr_deinit(mt_kexpr *e)
{
    if (!e) return;
    mt_free(e->nodes);
    memset(e, 0, sizeof *e);
}

static int32_t push(mt_kexpr *e, mt_knode n)
{
    if (!e) {
        mt_err_set(MT_ERR_INVALID, "kexpr: NULL expression");
        return -1;
    }
    if (node_check(e, &n, e->n) != MT_OK) return -1;
    if (usage_check(e, &n, e->n) != MT_OK) return -1;
    if (e->n == e->cap) {
        int32_t cap = e->cap ? e->cap * 2 : 16;
        mt_knode *p = mt_realloc(e->nodes, (size_t)cap * sizeof *p);
        if (!p) {
            mt_err_set(MT_ERR_NOMEM, "kexpr: out of memory growing to %d nodes", cap);
            return -1;
        }
        e->nodes = p;
        e->cap = cap;
    }
    if (n.op == MT_SOP_CONST) n.value = mt__kexpr_const_value(&n);
    e->nodes[e->n] = n;
    return e->n++;
}

static mt_knode node_new(mt_sop op, mt_dtype dt)
{
    mt_knode n;
    memset(&n, 0, sizeof n);
    n.op = op;
    n.dtype = dt;
    n.a = n.b = n.c = -1;
    n.arg = -1;
    return n;
}

int32_t mt_kexpr_input(mt_kexpr *e, int32_t arg, mt_dtype dt)
{
    mt_knode n = node_new(MT_SOP_INPUT, dt);
    n.arg = arg;
    return push(e, n);
}

int32_t mt_kexpr_param(mt_kexpr *e, int32_t param, mt_dtype dt)
{
    mt_knode n = node_new(MT_SOP_PARAM, dt);
    n.arg = param;
    return push(e, n);
}

int32_t mt_kexpr_const(mt_kexpr *e, mt_scalar value, mt_dtype dt)
{
    mt_knode n = node_new(MT_SOP_CONST, dt);
    n.value = value;
    return push(e, n);
}

int32_t mt_kexpr_index(mt_kexpr *e)
{
    return push(e, node_new(MT_SOP_INDEX, MT_INT64));
}

static bool operand_ok(const mt_kexpr *e, int32_t a, const char *what)
{
    if (a == -1) return false; /* an earlier builder failed; its message stands */
    if (!e || a < 0 || a >= e->n) {
        mt_err_set(MT_ERR_INVALID, "kexpr %s: operand %d is not a node (expression has %d)",
                   what, a, e ? e->n : 0);
        return false;
    }
    return true;
}

int32_t mt_kexpr_cast(mt_kexpr *e, int32_t a, mt_dtype dt)
{
    if (!operand_ok(e, a, "cast")) return -1;
    if (e->nodes[a].dtype == dt) return a; /* no-op cast */
    mt_knode n = node_new(MT_SOP_CAST, dt);
    n.a = a;
    return push(e, n);
}

int32_t mt_kexpr_unary(mt_kexpr *e, mt_sop op, int32_t a)
{
    if (!op_valid(op) || mt_sop_arity(op) != 1 || op == MT_SOP_CAST) {
        if (a != -1)
            mt_err_set(MT_ERR_INVALID, "kexpr_unary: %s is not a unary op%s", mt_sop_name(op),
                       op == MT_SOP_CAST ? " (use mt_kexpr_cast)" : "");
        return -1;
    }
    if (!operand_ok(e, a, mt_sop_name(op))) return -1;
    op_rule r = op_rules(op);
    mt_knode n = node_new(op, r.result == R_BOOL ? MT_BOOL : e->nodes[a].dtype);
    n.a = a;
    return push(e, n);
}

int32_t mt_kexpr_binary(mt_kexpr *e, mt_sop op, int32_t a, int32_t b)
{
    if (!op_valid(op) || mt_sop_arity(op) != 2) {
        if (a != -1 && b != -1)
            mt_err_set(MT_ERR_INVALID, "kexpr_binary: %s is not a binary op", mt_sop_name(op));
        return -1;
    }
    if (!operand_ok(e, a, mt_sop_name(op)) || !operand_ok(e, b, mt_sop_name(op))) return -1;
    op_rule r = op_rules(op);
    mt_knode n = node_new(op, r.result == R_BOOL ? MT_BOOL : e->nodes[a].dtype);
    n.a = a;
    n.b = b;
    return push(e, n);
}

int32_t mt_kexpr_where(mt_kexpr *e, int32_t cond, int32_t a, int32_t b)
{
    if (!operand_ok(e, cond, "where") || !operand_ok(e, a, "where") ||
        !operand_ok(e, b, "where"))
        return -1;
    mt_knode n = node_new(MT_SOP_WHERE, e->nodes[a].dtype);
    n.a = cond;
    n.b = a;
    n.c = b;
    return push(e, n);
}

int32_t mt_kexpr_rand(mt_kexpr *e, mt_sop op, int32_t seed_param, mt_dtype dt)
{
    if (op != MT_SOP_RAND_UNIFORM && op != MT_SOP_RAND_NORMAL) {
        mt_err_set(MT_ERR_INVALID, "kexpr_rand: %s is not rand_uniform or rand_normal",
                   mt_sop_name(op));
        return -1;
    }
    mt_knode n = node_new(op, dt);
    n.arg = seed_param;
    return push(e, n);
}

mt_status mt_kexpr_add_output(mt_kexpr *e, int32_t node)
{
    if (!e) return mt_err_set(MT_ERR_INVALID, "kexpr_add_output: NULL expression");
    if (node == -1)
        return mt_err_prefix(mt_last_status() != MT_OK ? mt_last_status() : MT_ERR_INVALID,
                             "kexpr output %d: an earlier builder failed: ", e->nouts);
    if (node < 0 || node >= e->n)
        return mt_err_set(MT_ERR_INVALID, "kexpr_add_output: node %d does not exist (%d nodes)",
                          node, e->n);
    if (e->nouts >= MT_MAX_DIMS)
        return mt_err_set(MT_ERR_RANGE, "kexpr_add_output: at most %d outputs", MT_MAX_DIMS);
    e->outs[e->nouts++] = node;
    return MT_OK;
}

mt_status mt_kexpr_validate(const mt_kexpr *e)
{
    if (!e) return mt_err_set(MT_ERR_INVALID, "kexpr: NULL expression");
    if (e->n < 0 || (e->n > 0 && !e->nodes))
        return mt_err_set(MT_ERR_INVALID, "kexpr: bad node array (%d nodes)", e->n);
    for (int32_t k = 0; k < e->n; k++) {
        mt_status st = node_check(e, &e->nodes[k], k);
        if (st == MT_OK) st = usage_check(e, &e->nodes[k], k);
        if (st != MT_OK) return st;
    }
    if (e->nouts < 1 || e->nouts > MT_MAX_DIMS)
        return mt_err_set(MT_ERR_INVALID, "kexpr: %d outputs (need 1..%d)", e->nouts, MT_MAX_DIMS);
    for (int32_t j = 0; j < e->nouts; j++)
        if (e->outs[j] < 0 || e->outs[j] >= e->n)
            return mt_err_set(MT_ERR_INVALID, "kexpr: output %d refers to node %d (%d nodes)", j,
                              e->outs[j], e->n);
    return MT_OK;
}

/* ---------------------------------------------------------------- analysis helpers */

void mt__kexpr_live(const mt_kexpr *e, uint8_t *live)
{
    memset(live, 0, (size_t)e->n);
    for (int32_t j = 0; j < e->nouts; j++)
        if (e->outs[j] >= 0 && e->outs[j] < e->n) live[e->outs[j]] = 1;
    for (int32_t k = e->n - 1; k >= 0; k--) {
        if (!live[k]) continue;
        const mt_knode *n = &e->nodes[k];
        int ar = mt_sop_arity(n->op);
        if (ar >= 1 && n->a >= 0 && n->a < k) live[n->a] = 1;
        if (ar >= 2 && n->b >= 0 && n->b < k) live[n->b] = 1;
        if (ar >= 3 && n->c >= 0 && n->c < k) live[n->c] = 1;
    }
}

/* Calls fn on every live node; used by the small queries below. */
static bool any_live(const mt_kexpr *e, bool (*pred)(const mt_kexpr *, const mt_knode *))
{
    uint8_t stackbuf[256];
    uint8_t *live = e->n <= 256 ? stackbuf : mt_malloc((size_t)e->n);
    bool found = false;
    if (!live) { /* out of memory: answer conservatively over all nodes */
        for (int32_t k = 0; k < e->n && !found; k++) found = pred(e, &e->nodes[k]);
        return found;
    }
    mt__kexpr_live(e, live);
    for (int32_t k = 0; k < e->n && !found; k++) found = live[k] && pred(e, &e->nodes[k]);
    if (live != stackbuf) mt_free(live);
    return found;
}

static bool pred_f64(const mt_kexpr *e, const mt_knode *n)
{
    if (n->dtype == MT_FLOAT64) return true;
    /* a cast from float64 reads a double operand */
    return n->op == MT_SOP_CAST && e->nodes[n->a].dtype == MT_FLOAT64;
}

static bool pred_index(const mt_kexpr *e, const mt_knode *n)
{
    (void)e;
    return n->op == MT_SOP_INDEX || n->op == MT_SOP_RAND_UNIFORM || n->op == MT_SOP_RAND_NORMAL;
}

bool mt__kexpr_uses_f64(const mt_kexpr *e)
{
    return any_live(e, pred_f64);
}

bool mt__kexpr_uses_index(const mt_kexpr *e)
{
    return any_live(e, pred_index);
}

mt_status mt__kexpr_param_types(const mt_kexpr *e, int32_t nparams, mt_dtype *dts)
{
    for (int32_t k = 0; k < nparams; k++) dts[k] = MT_DTYPE_COUNT;
    for (int32_t k = 0; k < e->n; k++) {
        const mt_knode *n = &e->nodes[k];
        if (!reads_param(n->op)) continue;
        int32_t hi = n->op == MT_SOP_PARAM ? n->arg : n->arg + 1;
        mt_dtype dt = n->op == MT_SOP_PARAM ? n->dtype : MT_UINT64;
        if (n->arg < 0 || hi >= nparams)
            return mt_err_set(MT_ERR_INVALID, "kexpr node %d (%s) reads param %d but %d params "
                              "were given", k, mt_sop_name(n->op), hi, nparams);
        for (int32_t p = n->arg; p <= hi; p++) {
            if (dts[p] != MT_DTYPE_COUNT && dts[p] != dt)
                return mt_err_set(MT_ERR_DTYPE, "kexpr node %d (%s) reads param %d as %s, another "
                                  "node as %s", k, mt_sop_name(n->op), p, mt_dtype_name(dt),
                                  mt_dtype_name(dts[p]));
            dts[p] = dt;
        }
    }
    return MT_OK;
}

mt_status mt__kexpr_input_types(const mt_kexpr *e, int32_t nin, mt_dtype *dts)
{
    for (int32_t i = 0; i < nin; i++) dts[i] = MT_DTYPE_COUNT;
    for (int32_t k = 0; k < e->n; k++) {
        const mt_knode *n = &e->nodes[k];
        if (n->op != MT_SOP_INPUT) continue;
        if (n->arg < 0 || n->arg >= nin)
            return mt_err_set(MT_ERR_INVALID, "kexpr node %d reads input %d but %d inputs were "
                              "given", k, n->arg, nin);
        if (dts[n->arg] != MT_DTYPE_COUNT && dts[n->arg] != n->dtype)
            return mt_err_set(MT_ERR_DTYPE, "kexpr node %d reads input %d as %s, another node as "
                              "%s", k, n->arg, mt_dtype_name(n->dtype),
                              mt_dtype_name(dts[n->arg]));
        dts[n->arg] = n->dtype;
    }
    return MT_OK;
}

/* ---------------------------------------------------------------- hashing and printing */

uint64_t mt_kexpr_hash(const mt_kexpr *e)
{
    /* Each field is hashed as a 64-bit value, never the struct bytes (padding and the unused
     * parts of the value union would make the hash differ between processes). */
    uint64_t h = mt_hash64("mt_kexpr/1", 10, 0x6b65787072ull);
    if (!e) return h;
    h = mt_hash64_combine(h, (uint64_t)(uint32_t)e->n);
    for (int32_t k = 0; k < e->n; k++) {
        const mt_knode *n = &e->nodes[k];
        h = mt_hash64_combine(h, (uint64_t)(uint32_t)n->op);
        h = mt_hash64_combine(h, (uint64_t)(uint32_t)n->dtype);
        h = mt_hash64_combine(h, (uint64_t)(uint32_t)n->a);
        h = mt_hash64_combine(h, (uint64_t)(uint32_t)n->b);
        h = mt_hash64_combine(h, (uint64_t)(uint32_t)n->c);
        h = mt_hash64_combine(h, (uint64_t)(uint32_t)n->arg);
        h = mt_hash64_combine(h, n->op == MT_SOP_CONST && mt_dtype_valid(n->dtype) ? const_bits(n) : 0);
    }
    h = mt_hash64_combine(h, (uint64_t)(uint32_t)e->nouts);
    for (int32_t j = 0; j < e->nouts && j < MT_MAX_DIMS; j++)
        h = mt_hash64_combine(h, (uint64_t)(uint32_t)e->outs[j]);
    return h;
}

void mt__kgen_key(mt_strbuf *sb, const mt_kexpr *e)
{
    for (int32_t k = 0; k < e->n; k++) {
        const mt_knode *n = &e->nodes[k];
        mt_strbuf_appendf(sb, "%d:%d:%d,%d,%d:%d", (int)n->op, (int)n->dtype, n->a, n->b, n->c,
                          n->arg);
        if (n->op == MT_SOP_CONST) mt_strbuf_appendf(sb, "=%" PRIx64, const_bits(n));
        mt_strbuf_append(sb, ";");
    }
    mt_strbuf_append(sb, "o");
    for (int32_t j = 0; j < e->nouts; j++) mt_strbuf_appendf(sb, ":%d", e->outs[j]);
}

static void print_const(mt_strbuf *sb, const mt_knode *n)
{
    mt_scalar c = mt__kexpr_const_value(n);
    switch (mt_dtype_kind(n->dtype)) {
    case 'b': mt_strbuf_append(sb, c.v.b ? "true" : "false"); return;
    case 'i': mt_strbuf_appendf(sb, "%" PRId64, c.v.i); break;
    case 'u': mt_strbuf_appendf(sb, "%" PRIu64, c.v.u); break;
    default: mt_strbuf_appendf(sb, "%.17g", c.v.f); break;
    }
    mt_strbuf_appendf(sb, ":%s", mt_dtype_name(n->dtype));
}

/* Prints node k inline, or by its name when it was given one (shared subexpressions). */
static void print_node(mt_strbuf *sb, const mt_kexpr *e, int32_t k, const int32_t *uses,
                       bool top)
{
    const mt_knode *n = &e->nodes[k];
    if (!top && uses[k] > 1 && mt_sop_arity(n->op) > 0) {
        mt_strbuf_appendf(sb, "t%d", k);
        return;
    }
    switch (n->op) {
    case MT_SOP_INPUT: mt_strbuf_appendf(sb, "i%d", n->arg); return;
    case MT_SOP_PARAM: mt_strbuf_appendf(sb, "p%d", n->arg); return;
    case MT_SOP_INDEX: mt_strbuf_append(sb, "index"); return;
    case MT_SOP_CONST: print_const(sb, n); return;
    case MT_SOP_RAND_UNIFORM:
    case MT_SOP_RAND_NORMAL:
        mt_strbuf_appendf(sb, "%s<%s>(p%d)", mt_sop_name(n->op), mt_dtype_name(n->dtype), n->arg);
        return;
    case MT_SOP_CAST: mt_strbuf_appendf(sb, "cast<%s>(", mt_dtype_name(n->dtype)); break;
    default: mt_strbuf_appendf(sb, "%s(", mt_sop_name(n->op)); break;
    }
    int ar = mt_sop_arity(n->op);
    const int32_t opnd[3] = {n->a, n->b, n->c};
    for (int i = 0; i < ar; i++) {
        if (i) mt_strbuf_append(sb, ", ");
        if (opnd[i] >= 0 && opnd[i] < k)
            print_node(sb, e, opnd[i], uses, false);
        else
            mt_strbuf_appendf(sb, "<bad %d>", opnd[i]);
    }
    mt_strbuf_append(sb, ")");
}

void mt_kexpr_print(const mt_kexpr *e, mt_strbuf *sb)
{
    if (!e || e->n <= 0 || !e->nodes) {
        mt_strbuf_append(sb, "(empty expression)");
        return;
    }
    int32_t *uses = mt_calloc((size_t)e->n, sizeof *uses);
    if (!uses) {
        mt_strbuf_append(sb, "(out of memory)");
        return;
    }
    for (int32_t k = 0; k < e->n; k++) {
        const mt_knode *n = &e->nodes[k];
        int ar = mt_sop_arity(n->op);
        const int32_t opnd[3] = {n->a, n->b, n->c};
        for (int i = 0; i < ar; i++)
            if (opnd[i] >= 0 && opnd[i] < k) uses[opnd[i]]++;
    }
    for (int32_t j = 0; j < e->nouts; j++)
        if (e->outs[j] >= 0 && e->outs[j] < e->n) uses[e->outs[j]]++;
    /* shared subexpressions first, as "tK = ...", then the outputs */
    bool first = true;
    for (int32_t k = 0; k < e->n; k++) {
        if (uses[k] > 1 && mt_sop_arity(e->nodes[k].op) > 0) {
            if (!first) mt_strbuf_append(sb, "; ");
            mt_strbuf_appendf(sb, "t%d = ", k);
            print_node(sb, e, k, uses, true);
            first = false;
        }
    }
    for (int32_t j = 0; j < e->nouts; j++) {
        if (!first) mt_strbuf_append(sb, "; ");
        mt_strbuf_appendf(sb, "o%d = ", j);
        if (e->outs[j] >= 0 && e->outs[j] < e->n)
            print_node(sb, e, e->outs[j], uses, false);
        else
            mt_strbuf_appendf(sb, "<bad %d>", e->outs[j]);
        first = false;
    }
    mt_free(uses);
}
