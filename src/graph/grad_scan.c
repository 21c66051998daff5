/* Gradient of a loop (SCAN): backpropagation through time as another loop. For a forward body
 * (x_t, h_{t-1}, p) -> (h_t, y_t) and the incoming gradient of one of its results, the
 * backward loop runs in the opposite direction over
 *   sequences     the incoming gradient's rows (a stacked result) and the forward loop's
 *                 sequences and previous states (h_{t-1}: the initial state then the stacked
 *                 states, shifted by one step),
 *   states        the gradient reaching h_t from later steps (starting at zero, or at the
 *                 incoming gradient of a final state) and a running sum per float
 *                 non-sequence whose gradient is wanted (terms transpose(A_t) @ B_t of it
 *                 are summed after the loop as one product instead),
 *   non-sequences the forward loop's non-sequences,
 * and its body is the vector-Jacobian product of the forward body (mt_graph_lop) at the
 * cotangents (gradient of h_t from the row + from later steps, gradient of y_t). Its results
 * give the sequences' gradients (stacked per-step outputs, aligned with the rows), the initial
 * states' gradients and the non-sequences' gradients (the final states). Being an ordinary
 * loop, the backward loop can itself be differentiated. */
#include <stdio.h>
#include <string.h>

#include "grad_impl.h"

/* What the backward body is built from; indices into the forward body's inputs. */
typedef struct bptt {
    const struct mt_scan_body *fb;
    int32_t ns, nx, np, ne;   /* forward counts: states, sequences, non-sequences, extras */
    bool *row;                /* per stacked result (ns + ne): a gradient arrives per row */
    mt_var *fin_gz;           /* the arriving gradients (g) of the final states */
    int32_t nrow;
    bool *dx, *dh, *dp;       /* which forward inputs get a gradient (float; sequences and
                                 non-sequences also wanted) */
    int32_t ndh, ndp;         /* float states, float non-sequences */
    /* filled by build_body: terms of the non-sequences' gradients computed after the loop as
     * one product (see hoistable), and which running sums remain in the loop */
    int32_t nhoist, hoist_cap;
    int32_t *h_q;             /* the float non-sequence (its index among them) */
    int32_t *h_aseq;          /* A: that backward sequence (>= 0), else the extra h_aout */
    int32_t *h_aout, *h_bout; /* extra outputs of the backward loop (index among its extras) */
    bool *acc;                /* per float non-sequence: a running sum remains */
    int32_t nacc;
    int32_t *gx_out;          /* per sequence: its gradient's extra output, or -1 (zero) */
} bptt;

static bool is_float(const mt_graph *g, mt_var v)
{
    return mt_dtype_is_float(mt_graph_type(g, v)->dtype);
}

/* v is a float constant 0 (a disconnected gradient). */
static bool is_zero(const mt_graph *g, mt_var v)
{
    mt_scalar c;
    return mt_graph_scalar_value(g, v, &c) && mt_dtype_is_float(c.dtype) && c.v.f == 0.0;
}

/* The additive terms of v (a tree of same-shape adds), at most cap; 0 when there are more. */
static int32_t add_terms(const mt_graph *g, mt_var v, mt_var *terms, int32_t n, int32_t cap)
{
    const mt__node *x = mt__graph_node(g, v);
    if (x->op == MT_OP_ELEMWISE && x->attrs.sop == MT_SOP_ADD && x->nin == 2 &&
        mt_type_equal(mt_graph_type(g, x->in[0]), &x->type) &&
        mt_type_equal(mt_graph_type(g, x->in[1]), &x->type)) {
        n = add_terms(g, x->in[0], terms, n, cap);
        return n ? add_terms(g, x->in[1], terms, n, cap) : 0;
    }
    if (n >= cap) return 0;
    terms[n] = v;
    return n + 1;
}

/* A term transpose(A) @ B of a non-sequence's gradient (the gradient of a weight W used as
 * A @ W in the body: A [n, k], B [n, m] per step) sums over the steps to one product of the
 * stacked values, [T*n, k]^T @ [T*n, m], computed after the loop: one large product instead of
 * one small product and one addition per step. Taken when B per step is at most 4 times the
 * size of the forward states (B is stored for every step; A is stored too unless it is one of
 * the backward loop's sequences). */
static bool hoistable(const mt_graph *gb, mt_var term, int64_t state_elems, mt_var *A, mt_var *B)
{
    const mt__node *mm = mt__graph_node(gb, term);
    if (mm->op != MT_OP_MATMUL || mm->type.ndim != 2) return false;
    const mt__node *tr = mt__graph_node(gb, mm->in[0]);
    if (tr->op != MT_OP_DIMSHUFFLE || tr->attrs.nperm != 2 || tr->attrs.perm[0] != 1 ||
        tr->attrs.perm[1] != 0)
        return false;
    const mt_type *ta = mt_graph_type(gb, tr->in[0]), *tb = mt_graph_type(gb, mm->in[1]);
    if (ta->ndim != 2 || tb->ndim != 2 || ta->dtype != mm->type.dtype ||
        tb->dtype != mm->type.dtype || ta->shape[1] < 0 || tb->shape[1] < 0 ||
        mt__scan_row_elems(tb) > 4 * state_elems)
        return false;
    *A = tr->in[0];
    *B = mm->in[1];
    return true;
}

/* The backward body: placeholders (gy[rows]..., x..., hprev..., gh[float states]...,
 * gp[float non-sequences]..., p...), outputs (gh'..., gp'..., gx[float sequences]...). Fills
 * b_in/b_out (sized by the caller) and the backward spec. */
static mt_status build_body(bptt *s, mt_graph *gb, mt_var *b_in, mt_var *b_out,
                            mt_scan_spec *spec)
{
    const struct mt_scan_body *fb = s->fb;
    const mt_graph *f = fb->g;
    int32_t nin = 0;
    char name[48];
    mt_var *gy = b_in; /* one row of each stacked result's gradient */
    for (int32_t o = 0; o < s->ns + s->ne; o++) {
        if (!s->row[o]) continue;
        const mt_type *t = mt_graph_type(f, o < s->ns ? fb->in[s->nx + o] : fb->out[o]);
        snprintf(name, sizeof(name), "bptt.gy%d", (int)o);
        b_in[nin++] = mt_graph_placeholder(gb, name, t->dtype, t->ndim, t->shape);
    }
    mt_var *fin = b_in + nin; /* forward inputs: x..., hprev..., then p... at the end */
    for (int32_t i = 0; i < s->nx + s->ns; i++) {
        const mt_type *t = mt_graph_type(f, fb->in[i]);
        snprintf(name, sizeof(name), "bptt.%s%d", i < s->nx ? "x" : "h", (int)(i < s->nx ? i
                                                                            : i - s->nx));
        b_in[nin++] = mt_graph_placeholder(gb, name, t->dtype, t->ndim, t->shape);
    }
    mt_var *gh = b_in + nin;
    for (int32_t k = 0; k < s->ns; k++) {
        if (!s->dh[k]) continue;
        const mt_type *t = mt_graph_type(f, fb->in[s->nx + k]);
        snprintf(name, sizeof(name), "bptt.gh%d", (int)k);
        b_in[nin++] = mt_graph_placeholder(gb, name, t->dtype, t->ndim, t->shape);
    }
    mt_var *gp = b_in + nin;
    for (int32_t m = 0; m < s->np; m++) {
        if (!s->dp[m]) continue;
        const mt_type *t = mt_graph_type(f, fb->in[s->nx + s->ns + m]);
        snprintf(name, sizeof(name), "bptt.gp%d", (int)m);
        b_in[nin++] = mt_graph_placeholder(gb, name, t->dtype, t->ndim, t->shape);
    }
    for (int32_t m = 0; m < s->np; m++) {
        const mt_type *t = mt_graph_type(f, fb->in[s->nx + s->ns + m]);
        snprintf(name, sizeof(name), "bptt.p%d", (int)m);
        b_in[nin++] = mt_graph_placeholder(gb, name, t->dtype, t->ndim, t->shape);
    }
    mt_var *pv = b_in + nin - s->np;
    if (mt_graph_status(gb)) return mt_graph_status(gb);

    /* the forward body on these placeholders */
    int32_t fnin = fb->nin, fnout = fb->nout;
    mt_var *to = mt_malloc(sizeof(mt_var) * (size_t)(fnin + 2 * fnout + fnin + 1));
    if (!to) return mt_err_set(MT_ERR_NOMEM, "scan gradient: out of memory");
    mt_var *fo = to + fnin, *ct = fo + fnout, *wrt = ct + fnout;
    for (int32_t i = 0; i < s->nx + s->ns; i++) to[i] = fin[i];
    for (int32_t m = 0; m < s->np; m++) to[s->nx + s->ns + m] = pv[m];
    mt_status st = mt_graph_clone_with(gb, f, fnout, fb->out, fnin, fb->in, to, fo, NULL);

    /* cotangents of the body's float outputs, and the inputs they are taken against */
    int32_t nf = 0, nw = 0;
    mt_var *fsel = mt_malloc(sizeof(mt_var) * (size_t)(2 * fnout + 2 * fnin + 1));
    mt_var *wres = fsel ? fsel + fnout + 1 : NULL, *csel = wres ? wres + fnin : NULL;
    if (!fsel && st == MT_OK) st = mt_err_set(MT_ERR_NOMEM, "scan gradient: out of memory");
    int32_t r = 0; /* gy index of result o: rows before it */
    for (int32_t o = 0, q = 0; st == MT_OK && o < s->ns + s->ne; o++) {
        if (o < s->ns && !s->dh[o]) { /* an integer state: no gradient */
            r += s->row[o];
            continue;
        }
        mt_var c = o < s->ns ? gh[q++] : MT_VAR_NONE;
        if (s->row[o]) c = c ? mt_graph_add(gb, c, gy[r]) : gy[r];
        r += s->row[o];
        if (!c) continue;
        fsel[nf] = fo[o];
        csel[nf++] = c;
    }
    for (int32_t i = 0; i < s->nx; i++)
        if (s->dx[i]) wrt[nw++] = fin[i];
    for (int32_t k = 0; k < s->ns; k++)
        if (s->dh[k]) wrt[nw++] = fin[s->nx + k];
    for (int32_t m = 0; m < s->np; m++)
        if (s->dp[m]) wrt[nw++] = pv[m];
    if (st == MT_OK && nf > 0 && nw > 0) {
        mt_grad_options opts;
        mt_grad_options_init(&opts);
        opts.disconnected = MT_GRAD_DISCONNECTED_ZERO;
        opts.undefined = MT_GRAD_UNDEFINED_ZERO;
        st = mt_graph_lop(gb, nf, fsel, nw, wrt, csel, wres, &opts);
    } else if (st == MT_OK) {
        for (int32_t w = 0; w < nw; w++) wres[w] = mt_graph_zeros_like(gb, wrt[w]);
    }

    /* outputs: the gradient carried to the previous step, the running sums that remain, the
     * rows, the per-step factors of the hoisted terms */
    int32_t nout = 0, ndx = 0, nseq = s->nrow + s->nx + s->ns, nextra = 0;
    for (int32_t i = 0; i < s->nx; i++) ndx += s->dx[i];
    mt_var *gx_res = wres, *gh_res = wres + ndx, *gp_res = gh_res + s->ndh;
    int64_t state_elems = 0;
    for (int32_t k = 0; k < s->ns; k++)
        state_elems += mt__scan_row_elems(mt_graph_type(f, fb->in[s->nx + k]));
    mt_var *hA = NULL, *hB = NULL;
    if (st == MT_OK && s->hoist_cap > 0) {
        hA = mt_malloc(sizeof(mt_var) * 2 * (size_t)s->hoist_cap);
        hB = hA ? hA + s->hoist_cap : NULL;
        if (!hA) st = mt_err_set(MT_ERR_NOMEM, "scan gradient: out of memory");
    }
    s->nhoist = s->nacc = 0;
    for (int32_t q = 0; st == MT_OK && q < s->ndp; q++) {
        mt_var terms[8], rest = MT_VAR_NONE;
        int32_t nt = add_terms(gb, gp_res[q], terms, 0, 8);
        if (nt == 0) terms[nt++] = gp_res[q];
        for (int32_t t = 0; t < nt; t++) {
            mt_var A, B;
            if (is_zero(gb, terms[t])) continue; /* not used by the body */
            if (s->nhoist < s->hoist_cap && hoistable(gb, terms[t], state_elems, &A, &B)) {
                s->h_q[s->nhoist] = q;
                hA[s->nhoist] = A;
                hB[s->nhoist++] = B;
            } else {
                rest = rest ? mt_graph_add(gb, rest, terms[t]) : terms[t];
            }
        }
        s->acc[q] = rest != MT_VAR_NONE;
        gp_res[q] = rest;
        s->nacc += s->acc[q];
    }
    if (st == MT_OK) {
        for (int32_t q = 0; q < s->ndh; q++) b_out[nout++] = gh_res[q];
        for (int32_t q = 0; q < s->ndp; q++)
            if (s->acc[q]) b_out[nout++] = mt_graph_add(gb, gp[q], gp_res[q]);
        for (int32_t i = 0, e = 0; i < s->nx; i++) { /* zero rows (a sequence the body no
                                                       longer reads) are not stored */
            s->gx_out[i] = -1;
            if (!s->dx[i] || is_zero(gb, gx_res[e++])) continue;
            s->gx_out[i] = nextra;
            b_out[nout + nextra++] = gx_res[e - 1];
        }
        for (int32_t h = 0; h < s->nhoist; h++) {
            s->h_aseq[h] = -1;
            for (int32_t j = 0; j < nseq; j++)
                if (b_in[j] == hA[h]) s->h_aseq[h] = j;
            if (s->h_aseq[h] < 0) {
                s->h_aout[h] = nextra;
                b_out[nout + nextra++] = hA[h];
            }
            s->h_bout[h] = nextra;
            b_out[nout + nextra++] = hB[h];
        }
        /* the running sums' placeholders that are no longer states leave the inputs */
        int32_t keep = (int32_t)(gp - b_in);
        for (int32_t q = 0; q < s->ndp; q++)
            if (s->acc[q]) b_in[keep++] = gp[q];
        for (int32_t m = 0; m < s->np; m++) b_in[keep++] = pv[m];
        if (mt_graph_status(gb)) st = mt_graph_status(gb);
    }
    mt_free(hA);
    mt_free(fsel);
    mt_free(to);
    memset(spec, 0, sizeof(*spec));
    spec->n_seq = nseq;
    spec->n_state = s->ndh + s->nacc;
    spec->n_nonseq = s->np;
    spec->n_extra = nextra;
    spec->n_steps = -1;
    spec->reverse = !fb->spec.reverse;
    return st;
}

/* h_{t-1} for every row t of a loop: the initial state and the stacked states shifted by one
 * step (in the loop's direction), exactly T rows. */
static mt_var previous_states(mt_graph *g, mt_var h0, mt_var stacked, bool reverse)
{
    mt_var first = mt_graph_expand_dims(g, h0, 0);
    mt_var parts[2] = {reverse ? stacked : first, reverse ? first : stacked};
    mt_var all = mt_graph_concatenate(g, 2, parts, 0);
    return reverse ? mt_graph_slice_axis(g, all, 0, 1, MT_IDX_NONE, 1)
                   : mt_graph_slice_axis(g, all, 0, MT_IDX_NONE, -1, 1);
}

mt_status mt__grad_scan(mt__grad_cx *cx)
{
    mt_graph *g = cx->g;
    const mt__node *n = cx->n;
    const struct mt_scan_body *fb = n->attrs.body;
    bptt s;
    memset(&s, 0, sizeof(s));
    s.fb = fb;
    s.nx = fb->spec.n_seq;
    s.ns = fb->spec.n_state;
    s.np = fb->spec.n_nonseq;
    s.ne = fb->spec.n_extra;
    int32_t nres = (int32_t)mt_scan_spec_nresults(&fb->spec);
    bool *flags = mt_calloc((size_t)(fb->nin + nres) + 1, sizeof(bool));
    mt_var *gzs = mt_calloc((size_t)nres + 1, sizeof(mt_var));
    if (!flags || !gzs) {
        mt_free(flags);
        mt_free(gzs);
        return mt_err_set(MT_ERR_NOMEM, "scan gradient: out of memory");
    }
    s.dx = flags;
    s.dh = flags + s.nx;
    s.dp = flags + s.nx + s.ns;
    s.row = flags + fb->nin;
    s.fin_gz = gzs + s.ns + s.ne;
    /* sequences and non-sequences whose gradient is not wanted get none (the states carry the
     * chain, so every float state takes part) */
    for (int32_t i = 0; i < fb->nin; i++)
        flags[i] = is_float(fb->g, fb->in[i]) && (cx->need[i] || (i >= s.nx && i < s.nx + s.ns));
    for (int32_t k = 0; k < s.ns; k++) s.ndh += s.dh[k];
    for (int32_t m = 0; m < s.np; m++) s.ndp += s.dp[m];
    /* the arriving gradients, fitted to their results */
    int32_t nsib = cx->nsib ? cx->nsib : 1;
    for (int32_t j = 0; j < nsib; j++) {
        mt_var v = cx->nsib ? cx->sib[j] : cx->v, gz = cx->nsib ? cx->sib_gz[j] : cx->gz;
        int64_t o = mt__graph_node(g, v)->attrs.output;
        gzs[o] = mt_graph_cast(g, mt_graph_broadcast_like(g, gz, v),
                               mt_graph_type(g, v)->dtype);
        if (o < s.ns + s.ne) s.row[o] = true;
    }
    for (int32_t o = 0; o < s.ns + s.ne; o++) s.nrow += s.row[o];

    /* the backward body (room for 8 hoisted terms per float non-sequence) */
    mt_graph *gb = NULL;
    s.hoist_cap = 8 * s.ndp;
    int32_t bnin = s.nrow + s.nx + s.ns + s.ndh + s.ndp + s.np;
    int32_t bnout = s.ndh + s.ndp + s.nx + 2 * s.hoist_cap;
    mt_var *b_in = mt_malloc(sizeof(mt_var) * (size_t)(bnin + bnout + 1));
    mt_var *b_out = b_in ? b_in + bnin : NULL;
    int32_t *hbuf = mt_malloc(sizeof(int32_t) * (size_t)(4 * s.hoist_cap + 1));
    bool *acc = mt_calloc((size_t)s.ndp + 1, sizeof(bool));
    int32_t *gx_out = mt_calloc((size_t)s.nx + 1, sizeof(int32_t));
    s.gx_out = gx_out;
    s.h_q = hbuf;
    s.h_aseq = hbuf ? hbuf + s.hoist_cap : NULL;
    s.h_aout = hbuf ? hbuf + 2 * s.hoist_cap : NULL;
    s.h_bout = hbuf ? hbuf + 3 * s.hoist_cap : NULL;
    s.acc = acc;
    mt_scan_spec spec;
    mt_status st = b_in && hbuf && acc && gx_out ? mt_graph_new(&gb) : MT_ERR_NOMEM;
    if (st == MT_OK) st = build_body(&s, gb, b_in, b_out, &spec);
    if (st && gb && mt_graph_status(gb))
        st = mt_err_set(st, "scan gradient: building the backward body: %s",
                        mt_graph_last_error(gb));

    /* its operands in g */
    const mt_var *in = n->in;
    int32_t nops = spec.n_seq + spec.n_state + spec.n_nonseq;
    mt_var *ops = st == MT_OK ? mt_malloc(sizeof(mt_var) * (size_t)(nops + 2 * bnout + 1)) : NULL;
    mt_var *stacked = ops ? ops + nops : NULL, *finals = stacked ? stacked + bnout : NULL;
    if (st == MT_OK && !ops) st = mt_err_set(MT_ERR_NOMEM, "scan gradient: out of memory");
    if (st == MT_OK) {
        int32_t q = 0;
        for (int32_t o = 0; o < s.ns + s.ne; o++)
            if (s.row[o]) ops[q++] = gzs[o];
        for (int32_t i = 0; i < s.nx; i++) ops[q++] = in[i];
        mt_op_attrs a = n->attrs;
        for (int32_t k = 0; k < s.ns; k++) {
            a.output = k; /* the stacked states of the same loop */
            mt_var hk = mt_graph_make(g, MT_OP_SCAN, &a, n->nin, n->in);
            ops[q++] = previous_states(g, in[s.nx + k], hk, fb->spec.reverse);
        }
        for (int32_t k = 0; k < s.ns; k++) {
            if (!s.dh[k]) continue;
            mt_var h0 = in[s.nx + k];
            ops[q++] = s.fin_gz[k] ? mt_graph_cast(g, mt_graph_broadcast_like(g, s.fin_gz[k], h0),
                                                   mt_graph_type(g, h0)->dtype)
                                   : mt_graph_zeros_like(g, h0);
        }
        for (int32_t m = 0, qp = 0; m < s.np; m++)
            if (s.dp[m] && s.acc[qp++]) ops[q++] = mt_graph_zeros_like(g, in[s.nx + s.ns + m]);
        for (int32_t m = 0; m < s.np; m++) ops[q++] = in[s.nx + s.ns + m];
        if (mt_graph_status(g)) st = mt_graph_status(g);
    }
    bool empty = st == MT_OK && spec.n_state + spec.n_extra == 0; /* nothing flows back */
    if (st == MT_OK && !empty) st = mt_graph_scan(g, gb, &spec, b_in, b_out, ops, stacked, finals);
    if (st == MT_OK && !empty) {
        int32_t q = 0;
        for (int32_t k = 0; k < s.ns; k++) /* the states' gradients: the carried gradients */
            if (s.dh[k]) {
                int32_t i = s.nx + k;
                cx->out[i] = cx->need[i] ? finals[q] : MT_VAR_NONE;
                q++;
            }
        for (int32_t m = 0, qp = 0; m < s.np; m++) { /* running sums + hoisted products */
            if (!s.dp[m]) continue;
            int32_t i = s.nx + s.ns + m;
            mt_var gp = s.acc[qp] ? finals[q++] : MT_VAR_NONE;
            for (int32_t h = 0; h < s.nhoist && cx->need[i]; h++) {
                if (s.h_q[h] != qp) continue;
                mt_var *ex = stacked + spec.n_state; /* the backward loop's extras */
                mt_var A = s.h_aseq[h] >= 0 ? ops[s.h_aseq[h]] : ex[s.h_aout[h]];
                mt_var B = ex[s.h_bout[h]];
                int64_t ra[2] = {MT_RESHAPE_INFER, mt_graph_type(g, A)->shape[2]};
                int64_t rb[2] = {MT_RESHAPE_INFER, mt_graph_type(g, B)->shape[2]};
                mt_var At = mt_graph_transpose(g, mt_graph_reshape(g, A, 2, ra), NULL);
                mt_var prod = mt_graph_matmul(g, At, mt_graph_reshape(g, B, 2, rb));
                gp = gp ? mt_graph_add(g, gp, prod) : prod;
            }
            cx->out[i] = cx->need[i] ? gp : MT_VAR_NONE;
            qp++;
        }
        if (mt_graph_status(g)) st = mt_graph_status(g);
        for (int32_t i = 0; i < s.nx; i++)
            if (s.dx[i] && s.gx_out[i] >= 0) cx->out[i] = stacked[spec.n_state + s.gx_out[i]];
    }
    if (st == MT_OK) {
        for (int32_t i = 0; i < n->nin; i++)
            if (cx->need[i] && !cx->out[i]) cx->out[i] = MT__GRAD_ZERO;
    }
    mt_free(ops);
    mt_free(b_in);
    mt_free(hbuf);
    mt_free(acc);
    mt_free(gx_out);
    mt_graph_free(gb);
    mt_free(flags);
    mt_free(gzs);
    return st;
}
