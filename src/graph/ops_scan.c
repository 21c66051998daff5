/* Loops (SCAN nodes, graph.h "loops (scan)"): the loop body object that SCAN nodes share, its
 * reference counting and the graphs' lists of the bodies they hold, the builder mt_graph_scan,
 * the type inference of a loop's results and the read accessor executors use. A body is an
 * immutable private graph (the needed part of the user's body) plus the placeholders and
 * outputs the loop binds; a SCAN node names it by pointer in its attributes (hashed by that
 * pointer, so two loops merge only when they share a body object) and every graph with such a
 * node holds one reference, so clones, rewrites and compiled functions keep it alive. */
#include <stdio.h>
#include <string.h>

#include "graph_impl.h"

/* ---------------------------------------------------------------- bodies */

static uint64_t g_next_body_id;

void mt__scan_body_retain(struct mt_scan_body *b)
{
    if (b) __atomic_fetch_add(&b->refs, 1, __ATOMIC_ACQ_REL);
}

void mt__scan_body_release(struct mt_scan_body *b)
{
    if (!b || __atomic_fetch_sub(&b->refs, 1, __ATOMIC_ACQ_REL) != 1) return;
    mt_graph_free(b->g); /* may release nested loops' bodies */
    mt_free(b->z_seq);
    mt_free(b->in);
    mt_free(b->out);
    mt_free(b);
}

bool mt__graph_has_body(const mt_graph *g, const struct mt_scan_body *b)
{
    for (int32_t i = 0; g && i < g->nbodies; i++)
        if (g->bodies[i] == b) return true;
    return false;
}

bool mt__graph_hold_body(mt_graph *g, struct mt_scan_body *b)
{
    if (mt__graph_has_body(g, b)) return true;
    if (g->nbodies == g->bodies_cap) {
        int32_t cap = g->bodies_cap ? 2 * g->bodies_cap : 4;
        struct mt_scan_body **nb = mt_realloc(g->bodies, (size_t)cap * sizeof(*nb));
        if (!nb) {
            mt__fail(g, MT_ERR_NOMEM, "scan: out of memory");
            return false;
        }
        g->bodies = nb;
        g->bodies_cap = cap;
    }
    mt__scan_body_retain(b);
    g->bodies[g->nbodies++] = b;
    return true;
}

int64_t mt_scan_spec_nresults(const mt_scan_spec *spec)
{
    return spec ? 2 * (int64_t)spec->n_state + spec->n_extra : 0;
}

bool mt_graph_scan_info(const mt_graph *g, mt_var v, mt_scan_info *info)
{
    const mt__node *n = mt__graph_node(g, v);
    if (!n || n->op != MT_OP_SCAN || !info) return false;
    const struct mt_scan_body *b = n->attrs.body;
    info->body = b->g;
    info->inputs = b->in;
    info->outputs = b->out;
    info->spec = b->spec;
    info->output = n->attrs.output;
    info->id = b->id;
    return true;
}

/* ---------------------------------------------------------------- type inference */

/* Operand type t against placeholder type p with `lead` extra leading axes on t (1 for a
 * sequence): equal dtype and ndim, static sizes agreeing. */
static mt_status check_operand(const char *what, int32_t i, const mt_type *t, const mt_type *p,
                               int32_t lead)
{
    char a[96], b[96];
    if (t->dtype != p->dtype)
        return mt_err_set(MT_ERR_DTYPE, "scan: %s %d is %s but the body's placeholder is %s "
                          "(cast it first)", what, (int)i, mt_dtype_name(t->dtype),
                          mt_dtype_name(p->dtype));
    if (t->ndim != p->ndim + lead)
        return mt_err_set(MT_ERR_SHAPE, "scan: %s %d has shape %s but the body's placeholder "
                          "has %s%s", what, (int)i, mt__shape_str(t->ndim, t->shape, a, sizeof(a)),
                          mt__shape_str(p->ndim, p->shape, b, sizeof(b)),
                          lead ? " (a sequence adds a leading axis)" : "");
    for (int32_t d = 0; d < p->ndim; d++) {
        int64_t x = t->shape[d + lead], y = p->shape[d];
        if (x >= 0 && y >= 0 && x != y)
            return mt_err_set(MT_ERR_SHAPE, "scan: %s %d has shape %s but the body's placeholder "
                              "has %s", what, (int)i,
                              mt__shape_str(t->ndim, t->shape, a, sizeof(a)),
                              mt__shape_str(p->ndim, p->shape, b, sizeof(b)));
    }
    return MT_OK;
}

mt_status mt__infer_scan(mt__infer_ctx *cx)
{
    const struct mt_scan_body *b = cx->attrs->body;
    if (!b) return mt_err_set(MT_ERR_INVALID, "scan: no loop body");
    const mt_scan_spec *s = &b->spec;
    if (cx->nin != b->nin)
        return mt_err_set(MT_ERR_INVALID, "scan: %d operands given, the body has %d inputs",
                          (int)cx->nin, (int)b->nin);
    int64_t nres = mt_scan_spec_nresults(s);
    if (cx->attrs->output < 0 || cx->attrs->output >= nres)
        return mt_err_set(MT_ERR_INVALID, "scan: result %lld is out of range [0, %lld)",
                          (long long)cx->attrs->output, (long long)nres);
    int64_t steps = s->n_seq ? -1 : s->n_steps;
    for (int32_t i = 0; i < b->nin; i++) {
        const mt_type *p = mt_graph_type(b->g, b->in[i]);
        bool seq = i < s->n_seq, state = !seq && i < s->n_seq + s->n_state;
        int32_t k = seq ? i : state ? i - s->n_seq : i - s->n_seq - s->n_state;
        mt_status st = check_operand(seq ? "sequence" : state ? "initial state" : "non-sequence",
                                     k, cx->in[i], p, seq ? 1 : 0);
        if (st) return st;
        if (!seq) continue;
        int64_t len = cx->in[i]->shape[0];
        if (i == 0) {
            steps = len;
        } else if (steps >= 0 && len >= 0 && len != steps) {
            return mt_err_set(MT_ERR_SHAPE, "scan: sequence %d has %lld rows but sequence 0 has "
                              "%lld (every sequence needs one row per step)", (int)i,
                              (long long)len, (long long)steps);
        }
    }
    int64_t o = cx->attrs->output;
    int32_t ns = s->n_state, ne = s->n_extra;
    mt_type t;
    memset(&t, 0, sizeof(t));
    if (o < ns || o >= ns + ne) { /* a state: the initial state's type, sizes from both */
        int32_t k = (int32_t)(o < ns ? o : o - ns - ne);
        const mt_type *init = cx->in[s->n_seq + k];
        const mt_type *p = mt_graph_type(b->g, b->in[s->n_seq + k]);
        const mt_type *q = mt_graph_type(b->g, b->out[k]);
        t = *init;
        for (int32_t d = 0; d < t.ndim; d++) {
            if (t.shape[d] < 0) t.shape[d] = p->shape[d];
            if (t.shape[d] < 0) t.shape[d] = q->shape[d];
        }
    } else {
        t = *mt_graph_type(b->g, b->out[o]);
    }
    t.weak = false;
    if (o < ns + ne) { /* stacked: a leading step axis */
        if (t.ndim >= MT_MAX_DIMS)
            return mt_err_set(MT_ERR_SHAPE, "scan: result %lld would have more than %d "
                              "dimensions", (long long)o, MT_MAX_DIMS);
        memmove(t.shape + 1, t.shape, (size_t)t.ndim * sizeof(t.shape[0]));
        t.shape[0] = steps;
        t.ndim++;
    }
    cx->out = t;
    cx->rtcheck = false; /* the executor checks the rows and states itself */
    return MT_OK;
}

/* ---------------------------------------------------------------- builder */

/* The body's needed part may only read its inputs: no other placeholder, no random node (it
 * would draw the same numbers at every step), no all-reduce. */
static mt_status check_body(mt_graph *g, const mt_graph *body, int32_t nin, const mt_var *in,
                            int32_t nout, const mt_var *out)
{
    mt_var *order = NULL;
    int32_t n = 0;
    mt_status st = mt_graph_toposort(body, nout, out, &order, &n);
    if (st) return mt__fail_status(g, st, "scan: the body's outputs: %s", mt_last_error());
    for (int32_t i = 0; st == MT_OK && i < n; i++) {
        mt_op op = mt_graph_op(body, order[i]);
        const char *name = mt_graph_name(body, order[i]);
        if (op == MT_OP_INPUT) {
            bool bound = false;
            for (int32_t j = 0; j < nin && !bound; j++) bound = in[j] == order[i];
            if (!bound)
                st = mt__fail_status(g, MT_ERR_INVALID, "scan: the body reads placeholder '%s' "
                                     "(v%d), which is not one of its inputs (pass it as a "
                                     "non-sequence)", name ? name : "?", (int)order[i]);
        } else if (op == MT_OP_RANDOM) {
            st = mt__fail_status(g, MT_ERR_UNSUPPORTED, "scan: the body draws random numbers "
                                 "(node v%d): they would repeat at every step; draw them "
                                 "outside the loop and pass them as a sequence", (int)order[i]);
        } else if (op == MT_OP_ALLREDUCE) {
            st = mt__fail_status(g, MT_ERR_UNSUPPORTED, "scan: the body contains an all-reduce "
                                 "(node v%d); reduce across processes outside the loop",
                                 (int)order[i]);
        }
    }
    mt_free(order);
    return st;
}

/* Structural identity of two bodies: the same spec, the same nodes (op, attributes, operands,
 * types: node names and provenance are ignored) in the same order, the same inputs and outputs.
 * Copies of equal user bodies are built in the same order, so a model that builds the same step
 * twice (its forward pass for the cost and again for a monitoring channel) gets one body, and
 * its loops merge like every other node. */
static uint64_t body_hash(const struct mt_scan_body *b)
{
    const mt_scan_spec *s = &b->spec;
    int64_t head[6] = {s->n_seq, s->n_state, s->n_nonseq, s->n_extra, s->n_steps, s->reverse};
    uint64_t h = mt_hash64(head, sizeof(head), 0x7363616e626f6479ull);
    h = mt_hash64(b->in, sizeof(mt_var) * (size_t)b->nin, h);
    h = mt_hash64(b->out, sizeof(mt_var) * (size_t)b->nout, h);
    h = mt_hash64(b->z_seq, sizeof(int32_t) * 2 * (size_t)b->nz, h);
    for (mt_var v = 1; v <= b->g->n; v++) {
        const mt__node *n = mt__graph_node(b->g, v);
        h = mt_hash64_combine(h, mt__node_key_hash(n));
        h = mt_hash64_combine(h, (uint64_t)n->type.dtype * 64 + (uint64_t)n->type.ndim);
        h = mt_hash64(n->type.shape, sizeof(int64_t) * (size_t)n->type.ndim, h);
    }
    return h;
}

static bool body_equal(const struct mt_scan_body *a, const struct mt_scan_body *b)
{
    const mt_scan_spec *s = &a->spec, *t = &b->spec;
    if (a->hash != b->hash || s->n_seq != t->n_seq || s->n_state != t->n_state ||
        s->n_nonseq != t->n_nonseq || s->n_extra != t->n_extra || s->n_steps != t->n_steps ||
        s->reverse != t->reverse || a->g->n != b->g->n)
        return false;
    if (a->nz != b->nz || memcmp(a->in, b->in, sizeof(mt_var) * (size_t)a->nin) != 0 ||
        memcmp(a->out, b->out, sizeof(mt_var) * (size_t)a->nout) != 0 ||
        (a->nz && memcmp(a->z_seq, b->z_seq, sizeof(int32_t) * 2 * (size_t)a->nz) != 0))
        return false;
    for (mt_var v = 1; v <= a->g->n; v++) {
        const mt__node *x = mt__graph_node(a->g, v), *y = mt__graph_node(b->g, v);
        if (!mt__node_key_equal(x, y) || !mt_type_equal(&x->type, &y->type)) return false;
    }
    return true;
}

int64_t mt__scan_row_elems(const mt_type *t)
{
    int64_t e = 1;
    for (int32_t d = 0; d < t->ndim; d++) e *= t->shape[d] > 0 ? t->shape[d] : 1;
    return e;
}

#define MT__SCAN_MAX_HOIST 16

/* Products x_t @ W of a sequence's slice (a matrix: the batch's rows at step t) by a
 * non-sequence matrix do not depend on the states: they are computed for every step at once
 * before the loop, as one product [T, N, k] @ [k, j] (one GEMM over T*N rows), and the body
 * reads row t of the result instead (as cuDNN and PyTorch compute an RNN's input projection).
 * The gradient's loop gains the most: its step recomputes the forward step's h_{t-1} @ U from
 * the stored states, a sequence of the backward loop. Taken when the product's row is at most
 * 4 times the size of the slice and the states together (it is stored for every step). The
 * body is rebuilt with one placeholder per product after the sequences. */
static mt_status hoist_products(struct mt_scan_body *b)
{
    const mt_scan_spec *s = &b->spec;
    int32_t ns = s->n_seq, np0 = s->n_seq + s->n_state;
    int64_t state_elems = 0;
    for (int32_t k = 0; k < s->n_state; k++)
        state_elems += mt__scan_row_elems(mt_graph_type(b->g, b->in[ns + k]));
    mt_var mm[MT__SCAN_MAX_HOIST];
    int32_t zs[MT__SCAN_MAX_HOIST], zp[MT__SCAN_MAX_HOIST], nz = 0;
    for (mt_var v = 1; v <= b->g->n && nz < MT__SCAN_MAX_HOIST; v++) {
        const mt__node *x = mt__graph_node(b->g, v);
        if (x->op != MT_OP_MATMUL || x->type.ndim != 2 || x->type.shape[1] < 0) continue;
        int32_t i = -1, j = -1;
        for (int32_t q = 0; q < ns; q++)
            if (b->in[q] == x->in[0]) i = q;
        for (int32_t q = np0; q < b->nin; q++)
            if (b->in[q] == x->in[1]) j = q - np0;
        if (i < 0 || j < 0) continue;
        const mt_type *ta = mt_graph_type(b->g, x->in[0]);
        if (mt__scan_row_elems(&x->type) > 4 * (mt__scan_row_elems(ta) + state_elems)) continue;
        mm[nz] = v;
        zs[nz] = i;
        zp[nz++] = j;
    }
    if (nz == 0) return MT_OK;
    mt_graph *g2 = NULL;
    int32_t nin2 = b->nin + nz;
    mt_var *in2 = mt_malloc(sizeof(mt_var) * (size_t)nin2);
    mt_var *from = mt_malloc(sizeof(mt_var) * (size_t)nin2);
    mt_var *to = mt_malloc(sizeof(mt_var) * (size_t)nin2);
    mt_var *out2 = mt_malloc(sizeof(mt_var) * (size_t)b->nout);
    int32_t *zbuf = mt_malloc(sizeof(int32_t) * 2 * (size_t)nz);
    mt_status st = in2 && from && to && out2 && zbuf ? mt_graph_new(&g2) : MT_ERR_NOMEM;
    for (int32_t q = 0, k = 0; st == MT_OK && q < nin2; q++) {
        /* new order: the sequences, the products, the states and the non-sequences */
        bool z = q >= ns && q < ns + nz;
        int32_t src = q < ns ? q : z ? -1 : q - nz;
        mt_var old = z ? mm[q - ns] : b->in[src];
        const mt_type *t = mt_graph_type(b->g, old);
        char name[160];
        if (z)
            snprintf(name, sizeof(name), "%s@%s", mt_graph_name(b->g, b->in[zs[q - ns]]),
                     mt_graph_name(b->g, b->in[np0 + zp[q - ns]]));
        else
            snprintf(name, sizeof(name), "%s", mt_graph_name(b->g, old));
        if (mt_graph_find_placeholder(g2, name))
            snprintf(name + strlen(name) / 2, sizeof(name) - strlen(name) / 2, "#%d", (int)q);
        in2[q] = mt_graph_placeholder(g2, name, t->dtype, t->ndim, t->shape);
        if (!in2[q]) st = mt_graph_status(g2);
        from[k] = old;
        to[k++] = in2[q];
    }
    if (st == MT_OK)
        st = mt_graph_clone_with(g2, b->g, b->nout, b->out, nin2, from, to, out2, NULL);
    if (st == MT_OK) {
        mt_graph_free(b->g);
        mt_free(b->in);
        mt_free(b->out);
        b->g = g2;
        b->in = in2;
        b->out = out2;
        b->nin = nin2;
        b->spec.n_seq += nz;
        b->nz = nz;
        b->z_seq = zbuf;
        b->z_par = zbuf + nz;
        memcpy(b->z_seq, zs, sizeof(int32_t) * (size_t)nz);
        memcpy(b->z_par, zp, sizeof(int32_t) * (size_t)nz);
        g2 = NULL;
        in2 = out2 = NULL;
        zbuf = NULL;
    } else if (g2 && mt_graph_status(g2)) {
        st = mt_err_set(st, "scan: taking products out of the body: %s", mt_graph_last_error(g2));
    }
    mt_graph_free(g2);
    mt_free(in2);
    mt_free(from);
    mt_free(to);
    mt_free(out2);
    mt_free(zbuf);
    return st;
}

/* Checks the spec and the body's inputs and outputs; the new body copies what they need. */
static mt_status body_new(mt_graph *g, const mt_graph *body, const mt_scan_spec *s,
                          const mt_var *bin, const mt_var *bout, struct mt_scan_body **out)
{
    *out = NULL;
    if (s->n_seq < 0 || s->n_state < 0 || s->n_nonseq < 0 || s->n_extra < 0)
        return mt__fail_status(g, MT_ERR_INVALID, "scan: negative count in the spec");
    if (s->n_state + s->n_extra == 0)
        return mt__fail_status(g, MT_ERR_INVALID, "scan: the loop has no state and no output");
    if (s->n_seq > 0 && s->n_steps != -1)
        return mt__fail_status(g, MT_ERR_INVALID, "scan: n_steps is %lld but the loop has "
                               "sequences (their length is the number of steps; use -1)",
                               (long long)s->n_steps);
    if (s->n_seq == 0 && s->n_steps < 0)
        return mt__fail_status(g, MT_ERR_INVALID, "scan: a loop without sequences needs "
                               "n_steps >= 0 (got %lld)", (long long)s->n_steps);
    int64_t nin = (int64_t)s->n_seq + s->n_state + s->n_nonseq;
    int64_t nout = (int64_t)s->n_state + s->n_extra;
    if (nin > 4096 || nout > 4096)
        return mt__fail_status(g, MT_ERR_INVALID, "scan: too many inputs or outputs");
    if ((nin && !bin) || !bout)
        return mt__fail_status(g, MT_ERR_INVALID, "scan: body inputs or outputs are NULL");
    for (int32_t i = 0; i < nin; i++) {
        if (mt_graph_op(body, bin[i]) != MT_OP_INPUT)
            return mt__fail_status(g, MT_ERR_INVALID, "scan: body input %d is not a placeholder "
                                   "of the body graph", (int)i);
        for (int32_t j = 0; j < i; j++)
            if (bin[j] == bin[i])
                return mt__fail_status(g, MT_ERR_INVALID, "scan: body input %d is listed twice "
                                       "(also input %d)", (int)i, (int)j);
    }
    for (int32_t i = 0; i < nout; i++)
        if (!mt_graph_valid(body, bout[i]))
            return mt__fail_status(g, MT_ERR_INVALID, "scan: body output %d is not a variable "
                                   "of the body graph", (int)i);
    for (int32_t k = 0; k < s->n_state; k++) {
        const mt_type *p = mt_graph_type(body, bin[s->n_seq + k]);
        const mt_type *q = mt_graph_type(body, bout[k]);
        bool ok = p->dtype == q->dtype && p->ndim == q->ndim;
        for (int32_t d = 0; ok && d < p->ndim; d++)
            ok = p->shape[d] < 0 || q->shape[d] < 0 || p->shape[d] == q->shape[d];
        if (!ok) {
            char a[96], c[96];
            return mt__fail_status(g, MT_ERR_SHAPE, "scan: state %d enters the body as %s%s but "
                                   "leaves it as %s%s (a state keeps its dtype and shape)",
                                   (int)k, mt_dtype_name(p->dtype),
                                   mt__shape_str(p->ndim, p->shape, a, sizeof(a)),
                                   mt_dtype_name(q->dtype),
                                   mt__shape_str(q->ndim, q->shape, c, sizeof(c)));
        }
    }
    mt_status st = check_body(g, body, (int32_t)nin, bin, (int32_t)nout, bout);
    if (st) return st;

    struct mt_scan_body *b = mt_calloc(1, sizeof(*b));
    if (!b) return mt__fail_status(g, MT_ERR_NOMEM, "scan: out of memory");
    b->refs = 1;
    b->id = __atomic_add_fetch(&g_next_body_id, 1, __ATOMIC_RELAXED);
    b->spec = *s;
    b->nin = (int32_t)nin;
    b->nout = (int32_t)nout;
    b->in = mt_malloc(sizeof(mt_var) * (size_t)(nin ? nin : 1));
    b->out = mt_malloc(sizeof(mt_var) * (size_t)nout);
    st = b->in && b->out ? mt_graph_new(&b->g) : MT_ERR_NOMEM;
    for (int32_t i = 0; st == MT_OK && i < nin; i++) {
        const mt_type *p = mt_graph_type(body, bin[i]);
        b->in[i] = mt_graph_placeholder(b->g, mt_graph_name(body, bin[i]), p->dtype, p->ndim,
                                        p->shape);
        if (!b->in[i]) st = mt_graph_status(b->g);
    }
    if (st == MT_OK)
        st = mt_graph_clone_with(b->g, body, (int32_t)nout, bout, (int32_t)nin, bin, b->in,
                                 b->out, NULL);
    if (st) {
        const char *why = b->g ? mt_graph_last_error(b->g) : "out of memory";
        mt_status r = mt__fail_status(g, st, "scan: copying the body: %s", why);
        mt__scan_body_release(b);
        return r;
    }
    if ((st = hoist_products(b))) {
        mt_status r = mt__fail_status(g, st, "%s", mt_last_error());
        mt__scan_body_release(b);
        return r;
    }
    b->hash = body_hash(b);
    for (int32_t i = 0; i < g->nbodies; i++) /* an equal loop body of g: share it */
        if (body_equal(g->bodies[i], b)) {
            mt__scan_body_release(b);
            b = g->bodies[i];
            mt__scan_body_retain(b);
            break;
        }
    *out = b;
    return MT_OK;
}

mt_status mt_graph_scan(mt_graph *g, const mt_graph *body, const mt_scan_spec *spec,
                        const mt_var *body_inputs, const mt_var *body_outputs,
                        const mt_var *operands, mt_var *stacked, mt_var *finals)
{
    if (!g) return mt_err_set(MT_ERR_INVALID, "scan: graph is NULL");
    int64_t nres0 = spec ? (int64_t)spec->n_state + spec->n_extra : 0;
    for (int64_t i = 0; stacked && i < nres0 && i < 4096; i++) stacked[i] = MT_VAR_NONE;
    for (int32_t k = 0; finals && spec && k < spec->n_state && k < 4096; k++)
        finals[k] = MT_VAR_NONE;
    if (!body || !spec) return mt__fail_status(g, MT_ERR_INVALID, "scan: body or spec is NULL");
    if (body == g)
        return mt__fail_status(g, MT_ERR_INVALID, "scan: the body must be a graph of its own");
    if (mt_graph_status(body))
        return mt__fail_status(g, mt_graph_status(body), "scan: the body graph has an error: %s",
                               mt_graph_last_error(body));
    int32_t nin = spec->n_seq + spec->n_state + spec->n_nonseq;
    if (nin > 0 && !operands)
        return mt__fail_status(g, MT_ERR_INVALID, "scan: operands are NULL");
    if (nin > 0 && !mt__check_vars(g, "scan", nin, operands)) return mt_graph_status(g);
    struct mt_scan_body *b = NULL;
    mt_status st = body_new(g, body, spec, body_inputs, body_outputs, &b);
    if (st) return st;

    /* the operands of the loop as built: the products taken out of the body after the
     * sequences */
    int32_t nin2 = nin + b->nz;
    mt_var *ops2 = b->nz ? mt_malloc(sizeof(mt_var) * (size_t)nin2) : (mt_var *)operands;
    if (!ops2) {
        mt__scan_body_release(b);
        return mt__fail_status(g, MT_ERR_NOMEM, "scan: out of memory");
    }
    if (b->nz) {
        int32_t s0 = spec->n_seq, p0 = spec->n_seq + spec->n_state;
        for (int32_t q = 0; q < nin2; q++)
            ops2[q] = q < s0 ? operands[q] : q >= s0 + b->nz ? operands[q - b->nz]
                    : mt_graph_matmul(g, operands[b->z_seq[q - s0]],
                                      operands[p0 + b->z_par[q - s0]]);
        st = mt_graph_status(g);
    }
    mt_op_attrs a;
    memset(&a, 0, sizeof(a));
    a.body = b;
    int32_t ns = spec->n_state, ne = spec->n_extra;
    for (int32_t o = 0; st == MT_OK && o < 2 * ns + ne; o++) {
        mt_var *dst = o < ns + ne ? (stacked ? &stacked[o] : NULL)
                                  : (finals ? &finals[o - ns - ne] : NULL);
        if (!dst) continue;
        a.output = o;
        *dst = mt__create(g, MT_OP_SCAN, &a, nin2, ops2);
        if (!*dst) st = mt_graph_status(g) ? mt_graph_status(g) : MT_ERR_INTERNAL;
    }
    mt__scan_body_release(b); /* g holds it now (or nothing does) */
    if (ops2 != operands) mt_free(ops2);
    if (st) {
        for (int64_t i = 0; stacked && i < ns + ne; i++) stacked[i] = MT_VAR_NONE;
        for (int32_t k = 0; finals && k < ns; k++) finals[k] = MT_VAR_NONE;
    }
    return st;
}
