/* The autodiff engine: reverse-mode gradients (mt_graph_grad), vector-Jacobian products
 * (mt_graph_lop) and Jacobian-vector products by double reverse (mt_graph_rop), plus the
 * per-op tables that classify each (node, operand) link and name its gradient rule. The rules
 * themselves live in one file per family (grad_elemwise.c, grad_reduce.c, grad_ops.c).
 *
 * One gradient computation is three linear passes over the topologically sorted subgraph of
 * the cost: a backward pass marking what the cost reaches (through differentiable links, any
 * links, index operands), a forward pass marking what depends on a wrt variable, and the
 * backward sweep that calls the rules only on nodes marked by both, accumulating the
 * contributions with add. Per-wrt outcomes (gradient, connected zero, disconnected,
 * undefined) are decided by the public wrappers, which format the errors. */
#include <stdio.h>
#include <string.h>

#include "grad_impl.h"

/* ---------------------------------------------------------------- per-op tables */

typedef struct grad_op {
    mt__grad_rule rule;  /* NULL: no rule (leaves, generators, integer-valued ops) */
    uint32_t undef_mask; /* operand slots holding integer indices or labels */
    const char *undef_what;
} grad_op;

static const grad_op grad_ops[MT_OP_COUNT] = {
    [MT_OP_ELEMWISE] = {mt__grad_elemwise, 0, NULL},
    [MT_OP_REDUCE] = {mt__grad_reduce, 0, NULL},
    [MT_OP_LOGSUMEXP] = {mt__grad_logsumexp, 0, NULL},
    [MT_OP_SOFTMAX] = {mt__grad_softmax, 0, NULL},
    [MT_OP_LOGSOFTMAX] = {mt__grad_softmax, 0, NULL},
    [MT_OP_XENT] = {mt__grad_xent, 0, NULL},
    [MT_OP_XENT_LABELS] = {mt__grad_xent, 1u << 1, "integer class labels"},
    [MT_OP_SOFTMAX_XENT] = {mt__grad_xent, 0, NULL},
    [MT_OP_SOFTMAX_XENT_LABELS] = {mt__grad_xent, 1u << 1, "integer class labels"},
    [MT_OP_SOFTMAX_XENT_LABELS_DX] = {mt__grad_xent, 1u << 2, "integer class labels"},
    [MT_OP_MATMUL] = {mt__grad_matmul, 0, NULL},
    [MT_OP_GEMM] = {mt__grad_matmul, 0, NULL},
    [MT_OP_RESHAPE] = {mt__grad_reshape, 0, NULL},
    [MT_OP_DIMSHUFFLE] = {mt__grad_dimshuffle, 0, NULL},
    [MT_OP_BROADCAST_TO] = {mt__grad_broadcast, 0, NULL},
    [MT_OP_BROADCAST_LIKE] = {mt__grad_broadcast, 0, NULL},
    [MT_OP_CONCAT] = {mt__grad_concat, 0, NULL},
    [MT_OP_SLICE] = {mt__grad_slice, 0, NULL},
    [MT_OP_SET_SUBTENSOR] = {mt__grad_slice, 0, NULL},
    [MT_OP_INC_SUBTENSOR] = {mt__grad_slice, 0, NULL},
    [MT_OP_GATHER] = {mt__grad_gather, 1u << 1, "integer indices"},
    [MT_OP_SCATTER_ADD] = {mt__grad_gather, 1u << 1, "integer indices"},
    [MT_OP_ONE_HOT] = {NULL, 1u << 0, "integer labels"},
    [MT_OP_GRAD_CLIP] = {mt__grad_identity, 0, NULL},
    [MT_OP_SHAPE_ASSERT] = {mt__grad_identity, 0, NULL},
    [MT_OP_CONV2D] = {mt__grad_conv, 0, NULL},
    [MT_OP_CONV2D_GRAD_INPUT] = {mt__grad_conv, 0, NULL},
    [MT_OP_CONV2D_GRAD_WEIGHT] = {mt__grad_conv, 0, NULL},
    [MT_OP_POOL2D] = {mt__grad_pool, 0, NULL},
    [MT_OP_POOL2D_GRAD] = {mt__grad_pool, 0, NULL},
    [MT_OP_ALLREDUCE] = {mt__grad_allreduce, 0, NULL},
    [MT_OP_SCAN] = {mt__grad_scan, 0, NULL},
};

static mt__glink link_kind(const mt_graph *g, const mt__node *n, int32_t i)
{
    const mt__node *x = mt__graph_node(g, n->in[i]);
    switch (n->op) {
    case MT_OP_STOP_GRADIENT:
    case MT_OP_RANDOM:
        return MT__GLINK_NONE;
    case MT_OP_BROADCAST_LIKE:
        if (i == 1) return MT__GLINK_NONE;
        break;
    case MT_OP_CONV2D_GRAD_INPUT: /* operand 2: the input's shape only */
        if (i == 2) return MT__GLINK_NONE;
        break;
    case MT_OP_POOL2D: /* (x, v): the windows' selection in x is piecewise constant */
    case MT_OP_POOL2D_GRAD: /* (x, y, dy): the same for x; y is a hint (the max) */
        if (i == 1 && n->op == MT_OP_POOL2D_GRAD) return MT__GLINK_NONE;
        if (i == 0 && n->nin > 1)
            return n->attrs.win.mode == MT_POOL_MAX ? MT__GLINK_ZERO : MT__GLINK_NONE;
        break;
    default:
        break;
    }
    if (grad_ops[n->op].undef_mask & (1u << i)) return MT__GLINK_UNDEF;
    if (!mt_dtype_is_float(n->type.dtype) || !mt_dtype_is_float(x->type.dtype))
        return MT__GLINK_ZERO;
    if (n->op == MT_OP_ELEMWISE && mt__grad_sop_is_flat(n->attrs.sop)) return MT__GLINK_ZERO;
    return MT__GLINK_GRAD;
}

/* ---------------------------------------------------------------- helpers for the rules */

mt_var mt__grad_zero(mt_graph *g)
{
    return mt_graph_literal_float(g, 0.0);
}

mt_var mt__grad_scale(mt_graph *g, mt_var x, double k)
{
    if (!x || k == 1.0) return x;
    return mt_graph_mul(g, x, mt_graph_literal_float(g, k));
}

mt_var mt__grad_fit(mt_graph *g, mt_var c, mt_var x)
{
    if (!c || !x) return MT_VAR_NONE;
    const mt_type *xt = mt_graph_type(g, x);
    if (mt_graph_type(g, c)->ndim < xt->ndim) c = mt_graph_broadcast_like(g, c, x);
    if (!c) return MT_VAR_NONE;
    const mt_type *ct = mt_graph_type(g, c);
    int32_t lead = ct->ndim - xt->ndim, naxes = 0, axes[MT_MAX_DIMS];
    for (int32_t i = 0; i < ct->ndim; i++)
        if (i < lead || (xt->shape[i - lead] == 1 && ct->shape[i] != 1)) axes[naxes++] = i;
    if (naxes > 0) {
        c = mt_graph_sum(g, c, naxes, axes, true);
        if (lead > 0) {
            int32_t perm[MT_MAX_DIMS];
            for (int32_t i = 0; i < xt->ndim; i++) perm[i] = lead + i;
            c = mt_graph_dimshuffle(g, c, xt->ndim, perm);
        }
    }
    if (!c) return MT_VAR_NONE;
    return mt_graph_cast(g, c, xt->dtype);
}

mt_var mt__grad_keepdims(mt_graph *g, mt_var gz, int32_t ndim, int32_t naxes,
                         const int32_t *axes, bool keepdims)
{
    if (!gz || keepdims) return gz;
    bool red[MT_MAX_DIMS] = {false};
    for (int32_t i = 0; i < naxes; i++) red[axes[i]] = true;
    if (naxes == 0)
        for (int32_t i = 0; i < ndim; i++) red[i] = true;
    int32_t perm[MT_MAX_DIMS], k = 0;
    for (int32_t i = 0; i < ndim; i++) perm[i] = red[i] ? -1 : k++;
    return mt_graph_dimshuffle(g, gz, ndim, perm);
}

mt_status mt__grad_done(mt__grad_cx *cx)
{
    for (int32_t i = 0; i < cx->n->nin; i++) {
        if (!cx->need[i] || cx->out[i]) continue;
        mt_status st = mt_last_status();
        if (st != MT_OK) return st;
        return mt_err_set(MT_ERR_INTERNAL, "gradient rule of %s gave no result for operand %d",
                          mt__op_label(cx->n->op, &cx->n->attrs), (int)i);
    }
    return MT_OK;
}

/* ---------------------------------------------------------------- descriptions for messages */

static void describe(const mt_graph *g, mt_var v, mt_strbuf *sb)
{
    const char *name = mt_graph_name(g, v);
    if (name)
        mt_strbuf_appendf(sb, "'%s' (v%d, ", name, (int)v);
    else
        mt_strbuf_appendf(sb, "v%d (%s, ", (int)v, mt_graph_op_label(g, v));
    mt_type_format(mt_graph_type(g, v), sb);
    mt_strbuf_append(sb, ")");
    mt_strbuf sp;
    mt_strbuf_init(&sp);
    mt_graph_format_provenance(g, v, &sp);
    if (sp.len > 0) mt_strbuf_appendf(sb, " %s", sp.data);
    mt_strbuf_deinit(&sp);
}

/* ---------------------------------------------------------------- the engine */

enum {
    F_WRT = 1u << 0,
    F_CONST = 1u << 1, /* consider_constant */
    F_FDEP = 1u << 2,  /* depends on a wrt through differentiable links */
    F_BZ = 1u << 3,    /* the cost depends on it (any non-none links) */
    F_BG = 1u << 4,    /* reached from the cost through differentiable links */
    F_BU = 1u << 5,    /* feeds integer indices/labels (undefined) */
    F_BN = 1u << 6     /* reached only through none links (stop_gradient, constants) */
};

typedef enum wrt_state { WS_GRAD = 0, WS_ZERO, WS_DISCONNECTED, WS_UNDEFINED } wrt_state;

typedef struct engine {
    mt_graph *g;
    const char *api;    /* "grad", "lop", "rop" */
    mt_var cost;        /* or MT_VAR_NONE */
    int32_t n_seed;
    const mt_var *seed_vars, *seed_grads;
    int32_t n_const;
    const mt_var *consts;
    int32_t n_wrt;
    const mt_var *wrt;
    /* results */
    mt_var *out;        /* per wrt: gradient, or MT_VAR_NONE for disconnected/undefined */
    wrt_state *state;
    mt_var *ureason_v;  /* per wrt: the node whose index operand made it undefined */
    int32_t *ureason_i;
    bool *only_none;    /* per wrt: reached only through stop_gradient/constants/shape refs */
    /* work */
    int32_t nvars;
    uint8_t *flags;
    mt_var *gsum;
    mt_var *ur_v;
    int8_t *ur_i;
    mt_var *order;
    int32_t n_order;
} engine;

static void engine_free(engine *e)
{
    mt_free(e->flags);
    mt_free(e->gsum);
    mt_free(e->ur_v);
    mt_free(e->ur_i);
    mt_free(e->order);
}

static mt_status engine_alloc(engine *e)
{
    size_t n = (size_t)e->nvars + 1;
    e->flags = mt_calloc(n, 1);
    e->gsum = mt_calloc(n, sizeof(mt_var));
    e->ur_v = mt_calloc(n, sizeof(mt_var));
    e->ur_i = mt_calloc(n, 1);
    if (!e->flags || !e->gsum || !e->ur_v || !e->ur_i)
        return mt_err_set(MT_ERR_NOMEM, "%s: out of memory for %d nodes", e->api, (int)e->nvars);
    return MT_OK;
}

/* Backward marks from the cost and the seeds. */
static void mark_backward(engine *e)
{
    const mt_graph *g = e->g;
    uint8_t *f = e->flags;
    if (e->cost) f[e->cost] |= F_BZ | F_BG;
    for (int32_t i = 0; i < e->n_seed; i++) f[e->seed_vars[i]] |= F_BZ | F_BG;
    for (int32_t k = e->n_order - 1; k >= 0; k--) {
        mt_var v = e->order[k];
        const mt__node *n = mt__graph_node(g, v);
        if (!(f[v] & (F_BZ | F_BN))) continue;
        bool blocked = (f[v] & F_CONST) || !(f[v] & F_BZ);
        for (int32_t i = 0; i < n->nin; i++) {
            mt_var x = n->in[i];
            mt__glink L = blocked ? MT__GLINK_NONE : link_kind(g, n, i);
            if (L == MT__GLINK_NONE) {
                f[x] |= F_BN;
                continue;
            }
            f[x] |= F_BZ;
            if (L == MT__GLINK_GRAD && (f[v] & F_BG)) f[x] |= F_BG;
            bool xf = mt_dtype_is_float(n->type.dtype) || mt_dtype_is_float(
                          mt__graph_node(g, x)->type.dtype);
            if (L == MT__GLINK_UNDEF && !(f[x] & F_BU)) {
                f[x] |= F_BU;
                e->ur_v[x] = v;
                e->ur_i[x] = (int8_t)i;
            } else if ((f[v] & F_BU) && !xf && !(f[x] & F_BU)) {
                f[x] |= F_BU;
                e->ur_v[x] = e->ur_v[v];
                e->ur_i[x] = e->ur_i[v];
            }
        }
    }
}

static void mark_forward(engine *e)
{
    const mt_graph *g = e->g;
    uint8_t *f = e->flags;
    for (int32_t k = 0; k < e->n_order; k++) {
        mt_var v = e->order[k];
        if (f[v] & F_WRT) {
            f[v] |= F_FDEP;
            continue;
        }
        if (f[v] & F_CONST) continue;
        const mt__node *n = mt__graph_node(g, v);
        for (int32_t i = 0; i < n->nin; i++)
            if ((f[n->in[i]] & F_FDEP) && link_kind(g, n, i) == MT__GLINK_GRAD) {
                f[v] |= F_FDEP;
                break;
            }
    }
}

static mt_status accumulate(engine *e, mt_var x, mt_var c)
{
    c = mt__grad_fit(e->g, c, x);
    if (c && e->gsum[x]) c = mt_graph_add(e->g, e->gsum[x], c);
    if (!c) return mt_last_status() ? mt_last_status() : MT_ERR_INTERNAL;
    e->gsum[x] = c;
    return MT_OK;
}

/* Calls v's rule and accumulates its contributions. nsib > 0: v is a loop's result and
 * sib/sib_gz list every result of that loop with a gradient (see sweep_loop). */
static mt_status sweep_node(engine *e, mt_var v, int32_t nsib, const mt_var *sib,
                            const mt_var *sib_gz)
{
    mt_graph *g = e->g;
    const mt__node *n = mt__graph_node(g, v);
    int32_t nin = n->nin;
    bool need_buf[16];
    mt_var outs_buf[16];
    bool *need = need_buf;
    mt_var *outs = outs_buf;
    if (nin > 16) { /* variadic concatenate with many operands */
        need = mt_malloc(sizeof(bool) * (size_t)nin);
        outs = mt_malloc(sizeof(mt_var) * (size_t)nin);
    }
    mt_status st = MT_OK;
    bool any = false;
    if (!need || !outs) {
        st = MT_ERR_NOMEM;
        goto done;
    }
    for (int32_t i = 0; i < nin; i++) {
        outs[i] = MT_VAR_NONE;
        need[i] = (e->flags[n->in[i]] & F_FDEP) && link_kind(g, n, i) == MT__GLINK_GRAD;
        any = any || need[i];
    }
    if (!any) goto done;
    mt__grad_rule rule = grad_ops[n->op].rule;
    if (!rule) {
        st = mt_err_set(MT_ERR_UNSUPPORTED, "no gradient rule for %s",
                        mt__op_label(n->op, &n->attrs));
    } else {
        mt_graph_set_origin_from(g, v, "grad");
        mt__grad_cx cx = {g, v, n, e->gsum[v], need, outs, nsib, sib, sib_gz};
        st = rule(&cx);
        if (st == MT_OK) st = mt__grad_done(&cx);
    }
    for (int32_t i = 0; st == MT_OK && i < nin; i++) {
        if (!need[i] || outs[i] == MT__GRAD_ZERO) continue;
        st = accumulate(e, n->in[i], outs[i]);
    }
    if (st != MT_OK) {
        mt_strbuf sb;
        mt_strbuf_init(&sb);
        describe(g, v, &sb);
        st = mt_err_prefix(st, "%s: building the gradient of %s: ", e->api,
                           sb.data ? sb.data : "?");
        mt_strbuf_deinit(&sb);
    }
done:
    if (need != need_buf) mt_free(need);
    if (outs != outs_buf) mt_free(outs);
    return st;
}

static void classify_wrt(engine *e, int32_t j)
{
    mt_var w = e->wrt[j];
    uint8_t f = e->flags[w];
    bool isf = mt_dtype_is_float(mt_graph_type(e->g, w)->dtype);
    e->out[j] = MT_VAR_NONE;
    e->only_none[j] = false;
    if (e->gsum[w]) {
        e->out[j] = e->gsum[w];
        e->state[j] = WS_GRAD;
    } else if (f & F_BU) {
        e->state[j] = WS_UNDEFINED;
        e->ureason_v[j] = e->ur_v[w];
        e->ureason_i[j] = e->ur_i[w];
    } else if (isf && (f & F_BZ)) {
        e->out[j] = mt_graph_zeros_like(e->g, w);
        e->state[j] = WS_ZERO;
    } else {
        e->state[j] = WS_DISCONNECTED;
        e->only_none[j] = (f & F_BN) && !(f & F_BZ);
    }
}

/* Results of one loop (same body, same operands) share one backward loop: the result first in
 * topological order is swept last, when every result's gradient is complete, and builds it for
 * all of them; the others are skipped. */
static bool same_loop(const mt__node *a, const mt__node *b)
{
    return a->attrs.body == b->attrs.body && a->nin == b->nin &&
           (a->nin == 0 || memcmp(a->in, b->in, (size_t)a->nin * sizeof(mt_var)) == 0);
}

static mt_status sweep_loop(engine *e, int32_t pos)
{
    const mt__node *n = mt__graph_node(e->g, e->order[pos]);
    int32_t nsib = 0;
    mt_var *sib = NULL, *gz = NULL;
    mt_status st = MT_OK;
    for (int32_t k = 0; k < e->n_order; k++) {
        mt_var w = e->order[k];
        uint8_t f = e->flags[w];
        const mt__node *m = mt__graph_node(e->g, w);
        if (m->op != MT_OP_SCAN || (f & F_CONST) || !(f & F_FDEP) || !same_loop(n, m)) continue;
        if (k < pos) goto done; /* not the last one swept */
        if (!e->gsum[w]) continue;
        if (!sib) { /* at most one per result of the loop */
            size_t cap = (size_t)mt_scan_spec_nresults(&n->attrs.body->spec);
            sib = mt_malloc(sizeof(mt_var) * cap);
            gz = mt_malloc(sizeof(mt_var) * cap);
            if (!sib || !gz) {
                st = MT_ERR_NOMEM;
                goto done;
            }
        }
        sib[nsib] = w;
        gz[nsib++] = e->gsum[w];
    }
    if (nsib > 0) st = sweep_node(e, sib[0], nsib, sib, gz);
done:
    mt_free(sib);
    mt_free(gz);
    return st;
}

/* Runs the passes; per-wrt results in e->out / e->state. Errors only for failures. */
static mt_status engine_run(engine *e)
{
    mt_graph *g = e->g;
    mt_status st;
    mt_var outs_buf[64];
    int32_t nout = (e->cost ? 1 : 0) + e->n_seed;
    mt_var *outs = nout <= 64 ? outs_buf : mt_malloc(sizeof(mt_var) * (size_t)nout);
    if (!outs) return MT_ERR_NOMEM;
    int32_t k = 0;
    if (e->cost) outs[k++] = e->cost;
    for (int32_t i = 0; i < e->n_seed; i++) outs[k++] = e->seed_vars[i];
    e->nvars = mt_graph_size(g);
    st = mt_graph_toposort(g, nout, outs, &e->order, &e->n_order);
    if (outs != outs_buf) mt_free(outs);
    if (st) return st;
    st = engine_alloc(e);
    if (st) return st;
    for (int32_t i = 0; i < e->n_wrt; i++) e->flags[e->wrt[i]] |= F_WRT;
    for (int32_t i = 0; i < e->n_const; i++) e->flags[e->consts[i]] |= F_CONST;
    mark_backward(e);
    mark_forward(e);
    /* seeds */
    if (e->cost) e->gsum[e->cost] = mt_graph_scalar(g, mt_graph_type(g, e->cost)->dtype, 1.0);
    for (int32_t i = 0; i < e->n_seed; i++) {
        mt_var s = e->seed_vars[i];
        mt_var c = mt_graph_cast(g, e->seed_grads[i], mt_graph_type(g, s)->dtype);
        if (c && e->gsum[s]) c = mt_graph_add(g, e->gsum[s], c);
        if (!c) return mt_last_status() ? mt_last_status() : MT_ERR_INTERNAL;
        e->gsum[s] = c;
    }
    for (int32_t i = e->n_order - 1; i >= 0; i--) {
        mt_var v = e->order[i];
        uint8_t f = e->flags[v];
        if ((f & F_CONST) || !(f & F_FDEP)) continue;
        if (mt_graph_op(g, v) == MT_OP_SCAN)
            st = sweep_loop(e, i);
        else if (e->gsum[v])
            st = sweep_node(e, v, 0, NULL, NULL);
        if (st) return st;
    }
    for (int32_t j = 0; j < e->n_wrt; j++) classify_wrt(e, j);
    return MT_OK;
}

/* ---------------------------------------------------------------- validation, policy */

void mt_grad_options_init(mt_grad_options *opts)
{
    if (opts) memset(opts, 0, sizeof(*opts));
}

static mt_status check_var(mt_graph *g, const char *api, const char *what, int32_t i, mt_var v)
{
    if (mt_graph_valid(g, v)) return MT_OK;
    return mt_err_set(MT_ERR_INVALID, "%s: %s[%d] is not a variable of this graph (handle %d)",
                      api, what, (int)i, (int)v);
}

/* Checks that d (a gradient/cotangent/tangent) fits variable v: same ndim, float, static sizes
 * agree. */
static mt_status check_fits(mt_graph *g, const char *api, const char *what, int32_t i, mt_var d,
                            mt_var v)
{
    mt_status st = check_var(g, api, what, i, d);
    if (st) return st;
    const mt_type *dt = mt_graph_type(g, d), *vt = mt_graph_type(g, v);
    bool ok = dt->ndim == vt->ndim && mt_dtype_is_float(dt->dtype);
    for (int32_t k = 0; ok && k < vt->ndim; k++)
        ok = dt->shape[k] < 0 || vt->shape[k] < 0 || dt->shape[k] == vt->shape[k];
    if (ok) return MT_OK;
    mt_strbuf a, b;
    mt_strbuf_init(&a);
    mt_strbuf_init(&b);
    mt_type_format(dt, &a);
    describe(g, v, &b);
    st = mt_err_set(MT_ERR_SHAPE, "%s: %s[%d] of type %s does not fit %s (needs a float value "
                    "of the same shape)", api, what, (int)i, a.data ? a.data : "?",
                    b.data ? b.data : "?");
    mt_strbuf_deinit(&a);
    mt_strbuf_deinit(&b);
    return st;
}

static mt_status check_options(mt_graph *g, const char *api, const mt_grad_options *o)
{
    if (!o) return MT_OK;
    if (o->n_consider_constant < 0 || (o->n_consider_constant > 0 && !o->consider_constant) ||
        o->n_known < 0 || (o->n_known > 0 && (!o->known_vars || !o->known_grads)))
        return mt_err_set(MT_ERR_INVALID, "%s: invalid option arrays", api);
    for (int32_t i = 0; i < o->n_consider_constant; i++) {
        mt_status st = check_var(g, api, "consider_constant", i, o->consider_constant[i]);
        if (st) return st;
    }
    for (int32_t i = 0; i < o->n_known; i++) {
        mt_status st = check_var(g, api, "known_vars", i, o->known_vars[i]);
        if (st) return st;
        if (!mt_dtype_is_float(mt_graph_type(g, o->known_vars[i])->dtype)) {
            mt_strbuf sb;
            mt_strbuf_init(&sb);
            describe(g, o->known_vars[i], &sb);
            st = mt_err_set(MT_ERR_DTYPE, "%s: known_vars[%d] %s is not float: only float "
                            "variables have gradients", api, (int)i, sb.data ? sb.data : "?");
            mt_strbuf_deinit(&sb);
            return st;
        }
        st = check_fits(g, api, "known_grads", i, o->known_grads[i], o->known_vars[i]);
        if (st) return st;
    }
    return MT_OK;
}

/* Applies the disconnected/undefined policies to e's results (names wrt with `what`). */
static mt_status apply_policy(engine *e, const char *what, const mt_grad_options *o)
{
    mt_graph *g = e->g;
    for (int32_t j = 0; j < e->n_wrt; j++) {
        if (e->state[j] == WS_GRAD || e->state[j] == WS_ZERO) continue;
        mt_var w = e->wrt[j];
        const mt_type *t = mt_graph_type(g, w);
        bool undef = e->state[j] == WS_UNDEFINED;
        bool zero = undef ? (o && o->undefined == MT_GRAD_UNDEFINED_ZERO)
                          : (o && o->disconnected == MT_GRAD_DISCONNECTED_ZERO);
        if (zero) {
            mt_dtype dt = mt_dtype_is_float(t->dtype) ? t->dtype : mt__float_dtype(t->dtype);
            e->out[j] = mt_graph_full_like(g, w, dt, 0.0);
            if (!e->out[j]) return mt_last_status();
            continue;
        }
        mt_strbuf sb, r;
        mt_strbuf_init(&sb);
        mt_strbuf_init(&r);
        describe(g, w, &sb);
        mt_status st;
        if (undef) {
            const mt__node *n = mt__graph_node(g, e->ureason_v[j]);
            describe(g, e->ureason_v[j], &r);
            st = mt_err_set(MT_ERR_INVALID, "%s: the gradient with respect to %s[%d] %s is "
                            "undefined: it is used as the %s (operand %d) of %s, and %s have no "
                            "gradient (set undefined = MT_GRAD_UNDEFINED_ZERO for zeros)",
                            e->api, what, (int)j, sb.data ? sb.data : "?",
                            grad_ops[n->op].undef_what ? grad_ops[n->op].undef_what : "indices",
                            (int)e->ureason_i[j], r.data ? r.data : "?",
                            grad_ops[n->op].undef_what ? grad_ops[n->op].undef_what
                                                       : "indices");
        } else if (!mt_dtype_is_float(t->dtype)) {
            st = mt_err_set(MT_ERR_INVALID, "%s: %s[%d] %s is %s-typed: only float variables "
                            "have gradients (disconnected; set disconnected = "
                            "MT_GRAD_DISCONNECTED_ZERO for zeros)", e->api, what, (int)j,
                            sb.data ? sb.data : "?",
                            mt_dtype_kind(t->dtype) == 'b' ? "bool" : "integer");
        } else {
            st = mt_err_set(MT_ERR_INVALID, "%s: the %s does not depend on %s[%d] %s%s "
                            "(disconnected; set disconnected = MT_GRAD_DISCONNECTED_ZERO for "
                            "zeros)", e->api, e->cost ? "cost" : "outputs", what, (int)j,
                            sb.data ? sb.data : "?",
                            e->only_none[j] ? ": it is reached only through "
                                              "stop_gradient, consider_constant or shape "
                                              "references" : "");
        }
        mt_strbuf_deinit(&sb);
        mt_strbuf_deinit(&r);
        return st;
    }
    return MT_OK;
}

/* Records a failure of a public entry point in the graph (sticky, like builders). */
static mt_status fail_graph(mt_graph *g, mt_status st)
{
    if (st == MT_OK) return st;
    char msg[MT_ERR_MSG_MAX];
    snprintf(msg, sizeof(msg), "%s", mt_last_error());
    return mt__fail_status(g, st, "%s", msg);
}

/* Engine with result arrays allocated for n_wrt (freed by engine_done). */
static mt_status engine_setup(engine *e, mt_graph *g, const char *api, int32_t n_wrt,
                              const mt_var *wrt)
{
    memset(e, 0, sizeof(*e));
    e->g = g;
    e->api = api;
    e->n_wrt = n_wrt;
    e->wrt = wrt;
    size_t n = (size_t)(n_wrt > 0 ? n_wrt : 1);
    e->out = mt_calloc(n, sizeof(mt_var));
    e->state = mt_calloc(n, sizeof(wrt_state));
    e->ureason_v = mt_calloc(n, sizeof(mt_var));
    e->ureason_i = mt_calloc(n, sizeof(int32_t));
    e->only_none = mt_calloc(n, sizeof(bool));
    if (!e->out || !e->state || !e->ureason_v || !e->ureason_i || !e->only_none)
        return mt_err_set(MT_ERR_NOMEM, "%s: out of memory", api);
    return MT_OK;
}

static void engine_done(engine *e)
{
    engine_free(e);
    mt_free(e->out);
    mt_free(e->state);
    mt_free(e->ureason_v);
    mt_free(e->ureason_i);
    mt_free(e->only_none);
}

/* Shared body of grad and lop: seeds = opts' seeds plus (extra_vars, extra_grads). */
static mt_status grad_common(mt_graph *g, const char *api, mt_var cost, int32_t n_extra,
                             const mt_var *extra_vars, const mt_var *extra_grads, int32_t n_wrt,
                             const mt_var *wrt, mt_var *out, const mt_grad_options *o)
{
    engine e;
    mt_status st = engine_setup(&e, g, api, n_wrt, wrt);
    int32_t n_seed = n_extra + (o ? o->n_known : 0);
    mt_var *sv = mt_malloc(sizeof(mt_var) * (size_t)(n_seed > 0 ? n_seed : 1));
    mt_var *sg = mt_malloc(sizeof(mt_var) * (size_t)(n_seed > 0 ? n_seed : 1));
    if (!st && (!sv || !sg)) st = MT_ERR_NOMEM;
    if (!st) {
        for (int32_t i = 0; i < n_extra; i++) {
            sv[i] = extra_vars[i];
            sg[i] = extra_grads[i];
        }
        for (int32_t i = n_extra; i < n_seed; i++) {
            sv[i] = o->known_vars[i - n_extra];
            sg[i] = o->known_grads[i - n_extra];
        }
        e.cost = cost;
        e.n_seed = n_seed;
        e.seed_vars = sv;
        e.seed_grads = sg;
        e.n_const = o ? o->n_consider_constant : 0;
        e.consts = o ? o->consider_constant : NULL;
        mt_provenance saved = g->origin;
        st = engine_run(&e);
        if (!st) st = apply_policy(&e, "wrt", o);
        g->origin = saved;
    }
    for (int32_t j = 0; j < n_wrt; j++) out[j] = st ? MT_VAR_NONE : e.out[j];
    mt_free(sv);
    mt_free(sg);
    engine_done(&e);
    return st;
}

static mt_status check_wrt(mt_graph *g, const char *api, int32_t n_wrt, const mt_var *wrt,
                           mt_var *out)
{
    if (!g) return mt_err_set(MT_ERR_INVALID, "%s: graph is NULL", api);
    if (n_wrt < 0 || (n_wrt > 0 && (!wrt || !out)))
        return mt_err_set(MT_ERR_INVALID, "%s: invalid wrt/output arrays (n_wrt %d)", api,
                          (int)n_wrt);
    for (int32_t i = 0; i < n_wrt; i++) {
        out[i] = MT_VAR_NONE;
        mt_status st = check_var(g, api, "wrt", i, wrt[i]);
        if (st) return st;
    }
    return MT_OK;
}

mt_status mt_graph_grad(mt_graph *g, mt_var cost, int32_t n_wrt, const mt_var *wrt,
                        mt_var *grads_out, const mt_grad_options *opts)
{
    mt_status st = check_wrt(g, "grad", n_wrt, wrt, grads_out);
    if (!st) st = check_options(g, "grad", opts);
    if (!st && cost == MT_VAR_NONE && !(opts && opts->n_known > 0))
        st = mt_err_set(MT_ERR_INVALID, "grad: no cost (MT_VAR_NONE) and no known gradients");
    if (!st && cost != MT_VAR_NONE) {
        st = check_var(g, "grad", "cost", 0, cost);
        const mt_type *t = st ? NULL : mt_graph_type(g, cost);
        if (t && (t->ndim != 0 || !mt_dtype_is_float(t->dtype))) {
            mt_strbuf sb;
            mt_strbuf_init(&sb);
            describe(g, cost, &sb);
            st = mt_err_set(MT_ERR_INVALID, "grad: the cost %s must be a 0-d float value (sum "
                            "or mean it first)", sb.data ? sb.data : "?");
            mt_strbuf_deinit(&sb);
        }
    }
    if (!st) st = grad_common(g, "grad", cost, 0, NULL, NULL, n_wrt, wrt, grads_out, opts);
    return fail_graph(g, st);
}

static mt_status check_outputs(mt_graph *g, const char *api, int32_t n_f, const mt_var *f,
                               const mt_var *ev)
{
    if (n_f < 0 || (n_f > 0 && (!f || !ev)))
        return mt_err_set(MT_ERR_INVALID, "%s: invalid output arrays (n_f %d)", api, (int)n_f);
    for (int32_t j = 0; j < n_f; j++) {
        mt_status st = check_var(g, api, "f", j, f[j]);
        if (st) return st;
        if (!mt_dtype_is_float(mt_graph_type(g, f[j])->dtype)) {
            mt_strbuf sb;
            mt_strbuf_init(&sb);
            describe(g, f[j], &sb);
            st = mt_err_set(MT_ERR_DTYPE, "%s: f[%d] %s is not float: only float outputs can be "
                            "differentiated", api, (int)j, sb.data ? sb.data : "?");
            mt_strbuf_deinit(&sb);
            return st;
        }
    }
    return MT_OK;
}

mt_status mt_graph_lop(mt_graph *g, int32_t n_f, const mt_var *f, int32_t n_wrt,
                       const mt_var *wrt, const mt_var *eval_points, mt_var *out,
                       const mt_grad_options *opts)
{
    mt_status st = check_wrt(g, "lop", n_wrt, wrt, out);
    if (!st) st = check_options(g, "lop", opts);
    if (!st) st = check_outputs(g, "lop", n_f, f, eval_points);
    for (int32_t j = 0; !st && j < n_f; j++)
        st = check_fits(g, "lop", "eval_points", j, eval_points[j], f[j]);
    if (!st && n_f == 0 && !(opts && opts->n_known > 0))
        st = mt_err_set(MT_ERR_INVALID, "lop: no outputs to differentiate");
    if (!st) st = grad_common(g, "lop", MT_VAR_NONE, n_f, f, eval_points, n_wrt, wrt, out, opts);
    return fail_graph(g, st);
}

/* ---------------------------------------------------------------- R-op by double reverse */

/* dep[j]: f[j] depends on some wrt through links other than none (forward pass). */
static mt_status depends(mt_graph *g, int32_t n_f, const mt_var *f, int32_t n_wrt,
                         const mt_var *wrt, const mt_grad_options *o, bool *dep)
{
    mt_var *order = NULL;
    int32_t n_order = 0;
    mt_status st = mt_graph_toposort(g, n_f, f, &order, &n_order);
    if (st) return st;
    uint8_t *d = mt_calloc((size_t)mt_graph_size(g) + 1, 1);
    if (!d) {
        mt_free(order);
        return MT_ERR_NOMEM;
    }
    for (int32_t i = 0; o && i < o->n_consider_constant; i++) d[o->consider_constant[i]] = 2;
    for (int32_t i = 0; i < n_wrt; i++) d[wrt[i]] = 1;
    for (int32_t k = 0; k < n_order; k++) {
        mt_var v = order[k];
        if (d[v]) continue;
        const mt__node *n = mt__graph_node(g, v);
        for (int32_t i = 0; i < n->nin && !d[v]; i++)
            if (d[n->in[i]] == 1 && link_kind(g, n, i) != MT__GLINK_NONE) d[v] = 1;
    }
    for (int32_t j = 0; j < n_f; j++) dep[j] = d[f[j]] == 1;
    mt_free(d);
    mt_free(order);
    return MT_OK;
}

/* A placeholder shaped like v with a name not used yet. */
static mt_var dummy_like(mt_graph *g, mt_var v)
{
    const mt_type *t = mt_graph_type(g, v);
    char name[64];
    for (int k = 0;; k++) {
        snprintf(name, sizeof(name), "rop.u%d", k);
        if (!mt_graph_find_placeholder(g, name)) break;
    }
    return mt_graph_placeholder(g, name, t->dtype, t->ndim, t->shape);
}

/* true if some out[j] still uses a dummy placeholder. */
static mt_status uses_dummies(mt_graph *g, int32_t n, const mt_var *outs, int32_t nu,
                              const mt_var *us, bool *uses)
{
    mt_var *order = NULL;
    int32_t n_order = 0;
    *uses = false;
    mt_status st = mt_graph_toposort(g, n, outs, &order, &n_order);
    if (st) return st;
    for (int32_t k = 0; k < n_order && !*uses; k++)
        for (int32_t j = 0; j < nu && !*uses; j++) *uses = order[k] == us[j];
    mt_free(order);
    return MT_OK;
}

static mt_status rop_body(mt_graph *g, int32_t n_f, const mt_var *f, int32_t n_wrt,
                          const mt_var *wrt, const mt_var *ev, mt_var *out,
                          const mt_grad_options *o, mt_var *us, mt_var *gs, mt_var *vs,
                          bool *dep)
{
    mt_status st = MT_OK;
    for (int32_t j = 0; j < n_f; j++) {
        us[j] = dummy_like(g, f[j]);
        if (!us[j]) return mt_last_status();
    }
    /* first reverse pass: g_i = sum_j u_j^T df_j/dwrt_i, linear in u */
    mt_grad_options o1;
    mt_grad_options_init(&o1);
    if (o) o1 = *o;
    o1.n_known = 0;
    o1.disconnected = MT_GRAD_DISCONNECTED_ZERO;
    engine e;
    st = engine_setup(&e, g, "rop", n_wrt, wrt);
    if (!st) {
        e.n_seed = n_f;
        e.seed_vars = f;
        e.seed_grads = us;
        e.n_const = o1.n_consider_constant;
        e.consts = o1.consider_constant;
        st = engine_run(&e);
    }
    if (!st) st = apply_policy(&e, "wrt", &o1);
    int32_t ns = 0;
    for (int32_t i = 0; !st && i < n_wrt; i++) {
        if (e.state[i] != WS_GRAD) continue; /* zeros contribute nothing */
        gs[ns] = e.out[i];
        vs[ns] = mt_graph_cast(g, ev[i], mt_graph_type(g, wrt[i])->dtype);
        if (!vs[ns]) st = mt_last_status();
        ns++;
    }
    engine_done(&e);
    if (st) return st;
    /* second reverse pass: d/du_j sum_i <g_i, v_i> = J_j v */
    st = engine_setup(&e, g, "rop", n_f, us);
    if (!st && ns > 0) {
        e.n_seed = ns;
        e.seed_vars = gs;
        e.seed_grads = vs;
        st = engine_run(&e);
    } else if (!st) {
        for (int32_t j = 0; j < n_f; j++) e.state[j] = WS_DISCONNECTED;
    }
    if (!st) st = depends(g, n_f, f, n_wrt, wrt, o, dep);
    for (int32_t j = 0; !st && j < n_f; j++) {
        out[j] = e.out[j];
        if (e.state[j] == WS_GRAD) continue;
        if (dep[j] || (o && o->disconnected == MT_GRAD_DISCONNECTED_ZERO)) {
            out[j] = mt_graph_zeros_like(g, f[j]);
            if (!out[j]) st = mt_last_status();
            continue;
        }
        mt_strbuf sb;
        mt_strbuf_init(&sb);
        describe(g, f[j], &sb);
        st = mt_err_set(MT_ERR_INVALID, "rop: f[%d] %s does not depend on any wrt variable "
                        "(disconnected; set disconnected = MT_GRAD_DISCONNECTED_ZERO for zeros)",
                        (int)j, sb.data ? sb.data : "?");
        mt_strbuf_deinit(&sb);
    }
    engine_done(&e);
    if (st) return st;
    bool uses;
    st = uses_dummies(g, n_f, out, n_f, us, &uses);
    if (st || !uses) return st;
    /* a rule that is not linear in its gradient (grad_clip) kept u: evaluate it at u = 0 */
    for (int32_t j = 0; j < n_f; j++) {
        gs[j] = mt_graph_zeros_like(g, f[j]);
        vs[j] = out[j];
        if (!gs[j]) return mt_last_status();
    }
    return mt_graph_clone_with(g, g, n_f, vs, n_f, us, gs, out, NULL);
}

mt_status mt_graph_rop(mt_graph *g, int32_t n_f, const mt_var *f, int32_t n_wrt,
                       const mt_var *wrt, const mt_var *eval_points, mt_var *out,
                       const mt_grad_options *opts)
{
    mt_status st = MT_OK;
    if (!g) return mt_err_set(MT_ERR_INVALID, "rop: graph is NULL");
    if (n_f < 0 || (n_f > 0 && !out)) st = mt_err_set(MT_ERR_INVALID, "rop: invalid out array");
    for (int32_t j = 0; !st && j < n_f; j++) out[j] = MT_VAR_NONE;
    if (!st && (n_wrt < 0 || (n_wrt > 0 && (!wrt || !eval_points))))
        st = mt_err_set(MT_ERR_INVALID, "rop: invalid wrt/eval_points arrays (n_wrt %d)",
                        (int)n_wrt);
    for (int32_t i = 0; !st && i < n_wrt; i++) st = check_var(g, "rop", "wrt", i, wrt[i]);
    if (!st) st = check_options(g, "rop", opts);
    if (!st && opts && opts->n_known > 0)
        st = mt_err_set(MT_ERR_INVALID, "rop: known gradients (seeds) are not allowed");
    if (!st && n_f > 0 && !f) st = mt_err_set(MT_ERR_INVALID, "rop: f is NULL");
    if (!st) st = check_outputs(g, "rop", n_f, f, f);
    for (int32_t i = 0; !st && i < n_wrt; i++)
        st = check_fits(g, "rop", "eval_points", i, eval_points[i], wrt[i]);
    if (st) return fail_graph(g, st);
    size_t nf = (size_t)(n_f > 0 ? n_f : 1), nm = (size_t)(n_f > n_wrt ? n_f : n_wrt) + 1;
    mt_var *us = mt_malloc(sizeof(mt_var) * nf);
    mt_var *gs = mt_malloc(sizeof(mt_var) * nm);
    mt_var *vs = mt_malloc(sizeof(mt_var) * nm);
    bool *dep = mt_malloc(sizeof(bool) * nf);
    if (!us || !gs || !vs || !dep) {
        st = mt_err_set(MT_ERR_NOMEM, "rop: out of memory");
    } else {
        mt_provenance saved = g->origin;
        st = rop_body(g, n_f, f, n_wrt, wrt, eval_points, out, opts, us, gs, vs, dep);
        g->origin = saved;
    }
    if (st)
        for (int32_t j = 0; j < n_f; j++) out[j] = MT_VAR_NONE;
    mt_free(us);
    mt_free(gs);
    mt_free(vs);
    mt_free(dep);
    return fail_graph(g, st);
}

/* ---------------------------------------------------------------- the graph's op table view */

/* The graph module's view of the rules (mt__op_grad_table in graph_impl.h): every operand
 * wanted, contributions fitted to the operands, zero contributions as MT_VAR_NONE. R-ops are
 * NULL: forward mode goes through mt_graph_rop (double reverse). */
static mt_status lop_adapter(mt_graph *g, mt_var v, mt_var gz, mt_var *in_grads)
{
    const mt__node *n = mt__graph_node(g, v);
    if (!n || !grad_ops[n->op].rule || n->nin > 64)
        return mt_err_set(MT_ERR_UNSUPPORTED, "lop: no gradient rule for v%d", (int)v);
    bool need[64];
    for (int32_t i = 0; i < n->nin; i++) {
        need[i] = link_kind(g, n, i) == MT__GLINK_GRAD;
        in_grads[i] = MT_VAR_NONE;
    }
    mt__grad_cx cx = {g, v, n, gz, need, in_grads, 0, NULL, NULL};
    mt_status st = grad_ops[n->op].rule(&cx);
    if (!st) st = mt__grad_done(&cx);
    for (int32_t i = 0; !st && i < n->nin; i++) {
        if (!need[i] || in_grads[i] == MT__GRAD_ZERO) {
            in_grads[i] = MT_VAR_NONE;
            continue;
        }
        in_grads[i] = mt__grad_fit(g, in_grads[i], n->in[i]);
        if (!in_grads[i]) st = mt_last_status() ? mt_last_status() : MT_ERR_INTERNAL;
    }
    return st;
}

const mt__op_grad mt__op_grad_table[MT_OP_COUNT] = {
    [MT_OP_ELEMWISE] = {lop_adapter, NULL},
    [MT_OP_REDUCE] = {lop_adapter, NULL},
    [MT_OP_LOGSUMEXP] = {lop_adapter, NULL},
    [MT_OP_SOFTMAX] = {lop_adapter, NULL},
    [MT_OP_LOGSOFTMAX] = {lop_adapter, NULL},
    [MT_OP_XENT] = {lop_adapter, NULL},
    [MT_OP_XENT_LABELS] = {lop_adapter, NULL},
    [MT_OP_SOFTMAX_XENT] = {lop_adapter, NULL},
    [MT_OP_SOFTMAX_XENT_LABELS] = {lop_adapter, NULL},
    [MT_OP_SOFTMAX_XENT_LABELS_DX] = {lop_adapter, NULL},
    [MT_OP_MATMUL] = {lop_adapter, NULL},
    [MT_OP_GEMM] = {lop_adapter, NULL},
    [MT_OP_RESHAPE] = {lop_adapter, NULL},
    [MT_OP_DIMSHUFFLE] = {lop_adapter, NULL},
    [MT_OP_BROADCAST_TO] = {lop_adapter, NULL},
    [MT_OP_BROADCAST_LIKE] = {lop_adapter, NULL},
    [MT_OP_CONCAT] = {lop_adapter, NULL},
    [MT_OP_SLICE] = {lop_adapter, NULL},
    [MT_OP_SET_SUBTENSOR] = {lop_adapter, NULL},
    [MT_OP_INC_SUBTENSOR] = {lop_adapter, NULL},
    [MT_OP_GATHER] = {lop_adapter, NULL},
    [MT_OP_SCATTER_ADD] = {lop_adapter, NULL},
    [MT_OP_GRAD_CLIP] = {lop_adapter, NULL},
    [MT_OP_SHAPE_ASSERT] = {lop_adapter, NULL},
    [MT_OP_CONV2D] = {lop_adapter, NULL},
    [MT_OP_CONV2D_GRAD_INPUT] = {lop_adapter, NULL},
    [MT_OP_CONV2D_GRAD_WEIGHT] = {lop_adapter, NULL},
    [MT_OP_POOL2D] = {lop_adapter, NULL},
    [MT_OP_POOL2D_GRAD] = {lop_adapter, NULL},
    [MT_OP_ALLREDUCE] = {lop_adapter, NULL},
    [MT_OP_SCAN] = {lop_adapter, NULL},
};
_Static_assert(sizeof(mt__op_grad_table) / sizeof(mt__op_grad_table[0]) == MT_OP_COUNT,
               "mt__op_grad_table needs one row per mt_op");
_Static_assert(sizeof(grad_ops) / sizeof(grad_ops[0]) == MT_OP_COUNT,
               "grad_ops needs one row per mt_op");
