/* Loops: running the SCAN nodes of a schedule (graph.h, mt_graph_scan).
 *
 * Steps. Every result of a loop is a SCAN node of its own (stacked states, stacked extra
 * outputs, final states), and the nodes of one loop share the body and the operands. A
 * schedule computes all of a loop's nodes that it needs with one SCAN step, placed at the first
 * of them in topological order (they have the same operands, so that is valid): one run of the
 * loop, one output slot per node.
 *
 * The body. Compiled once per function and body (f->scan_fns, shared by the reference and the
 * fused schedule) when the schedule is built, so its errors surface at compile time: an
 * mt_function over the body graph with the body's placeholders as arguments and its outputs
 * (new states, then extra outputs) as results, in the outer function's mode (FAST_RUN,
 * FAST_COMPILE or CHECK; no profile), on the outer function's device.
 *
 * A run. T is the first sequence's leading size (every sequence must have T rows) or
 * spec.n_steps without sequences. Step i works on row t = i (t = T-1-i when reverse): the body
 * gets a view of row t of each sequence (no copy), the current states (the initial ones at the
 * first step) and the non-sequences, and returns new references to the new states and the extra
 * outputs. Each new state must have its initial state's shape. A stacked result is allocated
 * once, (T,) + the value's shape (an extra output's shape is known at step 0; with T = 0 the
 * body output's static shape, unknown sizes 0), and each step's value is copied into row t on
 * the device. The states of the previous step are released as soon as the new ones exist, so a
 * run holds two generations of states at most; the final states are the last ones (the initial
 * ones when T = 0). The run allocates nothing of its own per step: row views are built in
 * place, the body's argument and result arrays are the step's scratch, and the body is called
 * without a device synchronization (the outer call synchronizes once at its end). */
#include <stdio.h>
#include <string.h>

#include "jit_impl.h"

/* One compiled body, shared by every SCAN step of the function that runs it. */
typedef struct mt__scan_fn {
    const struct mt_scan_body *key;
    mt_function *fn;
} mt__scan_fn;

struct mt__scan {
    mt_scan_info info;    /* of the step's first node (borrowed arrays, owned by f->g) */
    mt_function *body;    /* borrowed from f->scan_fns */
    int32_t nin, nbody;   /* body arguments; body results (n_state + n_extra) */
    int32_t *res;         /* per output of the step: which result of the loop */
    bool *want_stacked;   /* per body result: its stacked result is an output of the step */
    const mt_array **bin; /* nin argument pointers for the body */
    mt_array *rows;       /* n_seq row views (borrowed: they hold no buffer reference) */
    mt_array *bout;       /* nbody results of the current step */
    mt_array *state;      /* n_state states of the last step (empty before the first step) */
    mt_array *stacked;    /* nbody stacked results (empty where not wanted) */
    mt_array *dst;        /* nbody row views of the stacked results (borrowed) */
};

void mt__scan_free(mt__scan *sc)
{
    if (!sc) return;
    mt_free(sc->res);
    mt_free(sc->want_stacked);
    mt_free(sc->bin);
    mt_free(sc->rows);
    if (sc->bout)
        for (int32_t j = 0; j < sc->nbody; j++) mt_array_clear(&sc->bout[j]);
    if (sc->state)
        for (int32_t k = 0; k < sc->info.spec.n_state; k++) mt_array_clear(&sc->state[k]);
    if (sc->stacked)
        for (int32_t j = 0; j < sc->nbody; j++) mt_array_clear(&sc->stacked[j]);
    mt_free(sc->bout);
    mt_free(sc->state);
    mt_free(sc->stacked);
    mt_free(sc->dst);
    mt_free(sc);
}

void mt__scan_fns_free(mt_function *f)
{
    for (int32_t i = 0; i < f->n_scan_fns; i++) mt_function_free(f->scan_fns[i].fn);
    mt_free(f->scan_fns);
    f->scan_fns = NULL;
    f->n_scan_fns = 0;
}

/* ---------------------------------------------------------------- compiling */

/* The body of the loop of node v, compiled for f (once per body). */
static mt_status body_function(mt_function *f, mt_var v, const mt_scan_info *info,
                               mt_function **out)
{
    const struct mt_scan_body *key = mt_graph_attrs(f->g, v)->body;
    for (int32_t i = 0; i < f->n_scan_fns; i++)
        if (f->scan_fns[i].key == key) {
            *out = f->scan_fns[i].fn;
            return MT_OK;
        }
    mt__scan_fn *grown = mt_realloc(f->scan_fns, ((size_t)f->n_scan_fns + 1) * sizeof *grown);
    if (!grown) return MT_ERR_NOMEM;
    f->scan_fns = grown;
    const mt_scan_spec *sp = &info->spec;
    mt_function_options o;
    mt_function_options_init(&o);
    o.mode = f->mode;
    o.check_rtol = f->check_rtol;
    o.check_atol = f->check_atol;
    o.n_disabled_rewrites = f->n_disabled;
    o.disabled_rewrites = (const char *const *)f->disabled;
    mt_function *fn = NULL;
    mt_status st = mt__function_new_ex(&fn, info->body, sp->n_seq + sp->n_state + sp->n_nonseq,
                                       info->inputs, sp->n_state + sp->n_extra, info->outputs,
                                       f->dev, &o, f->no_rewrites);
    if (st != MT_OK)
        return mt__node_error(f->g, v, mt_err_prefix(st, "compiling the loop body: "));
    f->scan_fns[f->n_scan_fns++] = (mt__scan_fn){.key = key, .fn = fn};
    *out = fn;
    return MT_OK;
}

/* Node w is a sibling of v: a SCAN node of the same body with the same operands. */
static bool sibling(const mt_graph *g, mt_var v, mt_var w)
{
    if (mt_graph_op(g, w) != MT_OP_SCAN) return false;
    if (mt_graph_attrs(g, w)->body != mt_graph_attrs(g, v)->body) return false;
    int32_t n = mt_graph_ninputs(g, v);
    if (mt_graph_ninputs(g, w) != n) return false;
    for (int32_t j = 0; j < n; j++)
        if (mt_graph_input(g, w, j) != mt_graph_input(g, v, j)) return false;
    return true;
}

static mt_status alloc_scratch(mt__scan *sc, int32_t nout)
{
    const mt_scan_spec *sp = &sc->info.spec;
    size_t nb = (size_t)sc->nbody + 1;
    sc->res = mt_calloc((size_t)nout + 1, sizeof *sc->res);
    sc->want_stacked = mt_calloc(nb, sizeof *sc->want_stacked);
    sc->bin = mt_calloc((size_t)sc->nin + 1, sizeof *sc->bin);
    sc->rows = mt_calloc((size_t)sp->n_seq + 1, sizeof *sc->rows);
    sc->bout = mt_calloc(nb, sizeof *sc->bout);
    sc->state = mt_calloc((size_t)sp->n_state + 1, sizeof *sc->state);
    sc->stacked = mt_calloc(nb, sizeof *sc->stacked);
    sc->dst = mt_calloc(nb, sizeof *sc->dst);
    return sc->res && sc->want_stacked && sc->bin && sc->rows && sc->bout && sc->state &&
                   sc->stacked && sc->dst
               ? MT_OK
               : MT_ERR_NOMEM;
}

mt_status mt__scan_step_init(mt_function *f, int32_t pos, const bool *live, bool *taken,
                             mt__jstep *s)
{
    const mt_graph *g = f->g;
    mt_var v = f->order[pos];
    memset(s, 0, sizeof *s);
    s->kind = MT__STEP_SCAN;
    s->v = v;
    mt__scan *sc = mt_calloc(1, sizeof *sc);
    if (!sc) return MT_ERR_NOMEM;
    s->scan = sc;
    if (!mt_graph_scan_info(g, v, &sc->info))
        return mt_err_set(MT_ERR_INTERNAL, "jit: v%d is not a loop node", (int)v);
    const mt_scan_spec *sp = &sc->info.spec;
    sc->nin = sp->n_seq + sp->n_state + sp->n_nonseq;
    sc->nbody = sp->n_state + sp->n_extra;
    int32_t nsib = 0;
    for (int32_t i = pos; i < f->n_order; i++)
        nsib += i == pos || (!taken[i] && (!live || live[i]) && sibling(g, v, f->order[i]));
    s->nin = mt_graph_ninputs(g, v);
    s->in = mt_calloc((size_t)s->nin + 1, sizeof *s->in);
    s->out = mt_calloc((size_t)nsib + 1, sizeof *s->out);
    s->out_vars = mt_calloc((size_t)nsib + 1, sizeof *s->out_vars);
    if (!s->in || !s->out || !s->out_vars || alloc_scratch(sc, nsib) != MT_OK)
        return MT_ERR_NOMEM;
    if (s->nin != sc->nin)
        return mt__node_error(g, v, mt_err_set(MT_ERR_INTERNAL, "the loop node has %d operands "
                                               "but its body %d placeholders", (int)s->nin,
                                               (int)sc->nin));
    for (int32_t j = 0; j < s->nin; j++) {
        s->in[j] = mt__order_pos(f, mt_graph_input(g, v, j));
        if (s->in[j] < 0)
            return mt_err_set(MT_ERR_INTERNAL, "jit: operand of v%d not scheduled", (int)v);
    }
    int64_t nres = mt_scan_spec_nresults(sp);
    for (int32_t i = pos; i < f->n_order; i++) {
        mt_var w = f->order[i];
        if (i != pos && (taken[i] || (live && !live[i]) || !sibling(g, v, w))) continue;
        if (i != pos) taken[i] = true;
        mt_scan_info wi;
        if (!mt_graph_scan_info(g, w, &wi) || wi.output < 0 || wi.output >= nres)
            return mt__node_error(g, w, mt_err_set(MT_ERR_INTERNAL, "bad loop result index"));
        sc->res[s->nout] = (int32_t)wi.output;
        if (wi.output < sc->nbody) sc->want_stacked[wi.output] = true;
        s->out_vars[s->nout] = w;
        s->out[s->nout++] = i;
    }
    return body_function(f, v, &sc->info, &sc->body);
}

/* ---------------------------------------------------------------- printing */

void mt__scan_print(const mt_function *f, int32_t k, const mt__jstep *s, mt_strbuf *sb)
{
    const mt__scan *sc = s->scan;
    const mt_scan_spec *sp = &sc->info.spec;
    mt_strbuf_appendf(sb, "  [%d] scan loop #%llu (%d sequences, %d states, %d non-sequences, "
                      "%d extra outputs%s), %d results ->", (int)k,
                      (unsigned long long)sc->info.id, (int)sp->n_seq, (int)sp->n_state,
                      (int)sp->n_nonseq, (int)sp->n_extra, sp->reverse ? ", reverse" : "",
                      (int)s->nout);
    for (int32_t j = 0; j < s->nout; j++)
        mt_strbuf_appendf(sb, "%s v%d", j ? "," : "", (int)s->out_vars[j]);
    mt_strbuf_append(sb, "\n");
    for (int32_t j = 0; j < s->nout; j++) {
        mt_strbuf_append(sb, "        | ");
        mt_graph_print_node(f->g, s->out_vars[j], sb);
        mt_strbuf_append(sb, "\n");
    }
}

/* ---------------------------------------------------------------- running */

/* *row = a[0] as a borrowed view (no buffer reference); later rows only move the offset. */
static void row_template(mt_array *row, const mt_array *a)
{
    memset(row, 0, sizeof *row);
    row->buf = a->buf;
    row->offset = a->offset;
    row->dtype = a->dtype;
    row->ndim = a->ndim - 1;
    row->flags = a->flags;
    for (int32_t d = 1; d < a->ndim; d++) {
        row->dims[d - 1] = a->dims[d];
        row->strides[d - 1] = a->strides[d];
    }
    mt_array_update_flags(row);
}

static void row_at(mt_array *row, const mt_array *a, int64_t t)
{
    row->offset = (size_t)((int64_t)a->offset + t * a->strides[0]);
}

static bool same_shape(const mt_array *a, const mt_array *b)
{
    if (a->ndim != b->ndim) return false;
    for (int32_t d = 0; d < a->ndim; d++)
        if (a->dims[d] != b->dims[d]) return false;
    return true;
}

/* The stacked result j: (T,) + shape, C-contiguous, with its row template. */
static mt_status make_stacked(mt_function *f, mt__scan *sc, int32_t j, int64_t T, int32_t nd,
                              const int64_t *shape)
{
    const mt_type *t = mt_graph_type(sc->info.body, sc->info.outputs[j]);
    int64_t dims[MT_MAX_DIMS];
    if (nd + 1 > MT_MAX_DIMS)
        return mt_err_set(MT_ERR_SHAPE, "stacked result %d would have %d dimensions (at most %d)",
                          (int)j, (int)nd + 1, MT_MAX_DIMS);
    dims[0] = T;
    for (int32_t d = 0; d < nd; d++) dims[d + 1] = shape[d] >= 0 ? shape[d] : 0;
    mt_status st = mt_array_empty(&sc->stacked[j], f->dev, t->dtype, nd + 1, dims, 'C');
    if (st == MT_OK) row_template(&sc->dst[j], &sc->stacked[j]);
    return st;
}

/* "<what> k at step i (row t) has shape A but <ref_what> B" (the row only when it differs). */
static mt_status shape_error(const char *what, int32_t k, int64_t i, int64_t t,
                             const mt_array *a, const char *ref_what, const mt_array *b)
{
    char sa[96], sb[96], row[48] = "";
    if (t != i) snprintf(row, sizeof row, " (row %lld)", (long long)t);
    return mt_err_set(MT_ERR_SHAPE, "%s %d at step %lld%s has shape %s but %s %s", what, (int)k,
                      (long long)i, row, mt_shape_str(a->ndim, a->dims, sa, sizeof sa),
                      ref_what, mt_shape_str(b->ndim, b->dims, sb, sizeof sb));
}

/* Checks the body's results of step i (row t) and copies the wanted ones into row t of their
 * stacked results; extra outputs' stacked results are made at the first step. */
static mt_status store_step(mt_function *f, mt__scan *sc, const mt_array *const *ins, int64_t T,
                            int64_t i, int64_t t)
{
    const mt_scan_spec *sp = &sc->info.spec;
    mt_status st = MT_OK;
    for (int32_t k = 0; k < sp->n_state; k++) {
        const mt_array *init = ins[sp->n_seq + k];
        if (!same_shape(&sc->bout[k], init))
            return shape_error("the new state", k, i, t, &sc->bout[k],
                               "the initial state has shape", init);
    }
    for (int32_t j = 0; j < sc->nbody && st == MT_OK; j++) {
        if (!sc->want_stacked[j]) continue;
        const mt_array *val = &sc->bout[j];
        if (j >= sp->n_state) { /* an extra output: its shape is fixed by the first step */
            if (i == 0) {
                st = make_stacked(f, sc, j, T, val->ndim, val->dims);
                if (st != MT_OK) break;
            } else if (!same_shape(val, &sc->dst[j])) {
                return shape_error("extra output", j - sp->n_state, i, t, val,
                                   "at the first step it had shape", &sc->dst[j]);
            }
        }
        row_at(&sc->dst[j], &sc->stacked[j], t);
        st = mt_array_copy(&sc->dst[j], val);
    }
    return st;
}

/* The per-step shape of extra output j when no step runs (T = 0): shape inference through the
 * body on its arguments' shapes (the sequences' rows, which keep their sizes with no rows, the
 * initial states, the non-sequences), so that the stacked result (0,) + shape has the sizes
 * a step would have given (a gradient of a sequence must have the sequence's shape). Sizes
 * that cannot be inferred are 0. */
static void zero_step_shape(const mt__scan *sc, const mt_array *const *ins, int32_t j,
                            int32_t *nd, int64_t *shape)
{
    const mt_graph *bg = sc->info.body;
    const mt_type *t = mt_graph_type(bg, sc->info.outputs[j]);
    *nd = t->ndim;
    for (int32_t d = 0; d < t->ndim; d++) shape[d] = t->shape[d] >= 0 ? t->shape[d] : 0;
    mt_var *order = NULL;
    int32_t n = 0;
    int64_t(*shp)[MT_MAX_DIMS] = mt_calloc((size_t)mt_graph_size(bg) + 1, sizeof(*shp));
    bool ok = shp && mt_graph_toposort(bg, 1, &sc->info.outputs[j], &order, &n) == MT_OK;
    for (int32_t i = 0; ok && i < n; i++) {
        mt_var v = order[i];
        const mt_type *vt = mt_graph_type(bg, v);
        int32_t arg = -1;
        for (int32_t k = 0; k < sc->nin && mt_graph_op(bg, v) == MT_OP_INPUT; k++)
            if (sc->info.inputs[k] == v) arg = k;
        if (arg >= 0) { /* a sequence's row, or the value itself */
            int32_t lead = arg < sc->info.spec.n_seq ? 1 : 0;
            for (int32_t d = 0; d < vt->ndim; d++) shp[v][d] = ins[arg]->dims[d + lead];
        } else if (mt_graph_ninputs(bg, v) == 0) {
            for (int32_t d = 0; d < vt->ndim; d++) shp[v][d] = vt->shape[d];
            ok = mt_graph_op(bg, v) == MT_OP_CONST || mt_graph_op(bg, v) == MT_OP_ARANGE;
        } else {
            const int64_t *in_shapes[16];
            int32_t nin = mt_graph_ninputs(bg, v);
            ok = nin <= 16;
            for (int32_t q = 0; ok && q < nin; q++) in_shapes[q] = shp[mt_graph_input(bg, v, q)];
            ok = ok && mt_graph_eval_shape(bg, v, in_shapes, shp[v]) == MT_OK;
        }
    }
    if (ok && n > 0)
        for (int32_t d = 0; d < t->ndim; d++) shape[d] = shp[sc->info.outputs[j]][d];
    mt_err_clear(); /* a failed inference only leaves the static sizes */
    mt_free(order);
    mt_free(shp);
}

/* The loop itself; the results stay in sc (state, stacked). */
static mt_status run_loop(mt_function *f, mt__jstep *s, const mt_array *const *ins)
{
    mt__scan *sc = s->scan;
    const mt_scan_spec *sp = &sc->info.spec;
    int32_t ns = sp->n_seq, nst = sp->n_state;
    int64_t T = ns > 0 ? ins[0]->dims[0] : sp->n_steps;
    for (int32_t q = 1; q < ns; q++)
        if (ins[q]->dims[0] != T)
            return mt_err_set(MT_ERR_SHAPE, "sequence %d has %lld rows but sequence 0 has %lld "
                              "(every sequence needs one row per step)", (int)q,
                              (long long)ins[q]->dims[0], (long long)T);
    mt_status st = MT_OK;
    for (int32_t k = 0; k < nst && st == MT_OK; k++)
        if (sc->want_stacked[k]) {
            const mt_array *init = ins[ns + k];
            st = make_stacked(f, sc, k, T, init->ndim, init->dims);
        }
    for (int32_t j = nst; j < sc->nbody && st == MT_OK && T == 0; j++)
        if (sc->want_stacked[j]) {
            int32_t nd;
            int64_t shape[MT_MAX_DIMS];
            zero_step_shape(sc, ins, j, &nd, shape);
            st = make_stacked(f, sc, j, 0, nd, shape);
        }
    if (st != MT_OK) return st;
    for (int32_t q = 0; q < ns; q++) {
        row_template(&sc->rows[q], ins[q]);
        sc->bin[q] = &sc->rows[q];
    }
    for (int32_t k = 0; k < nst; k++) sc->bin[ns + k] = ins[ns + k];
    for (int32_t m = ns + nst; m < sc->nin; m++) sc->bin[m] = ins[m];
    for (int64_t i = 0; i < T; i++) {
        int64_t t = sp->reverse ? T - 1 - i : i;
        for (int32_t q = 0; q < ns; q++) row_at(&sc->rows[q], ins[q], t);
        st = mt__function_call_nosync(sc->body, sc->nin, sc->bin, sc->nbody, sc->bout);
        if (st != MT_OK)
            return mt_err_prefix(st, "step %lld (row %lld): ", (long long)i, (long long)t);
        st = store_step(f, sc, ins, T, i, t);
        for (int32_t k = 0; k < nst; k++) { /* the new states replace the previous ones */
            mt_array_clear(&sc->state[k]);
            sc->state[k] = sc->bout[k];
            memset(&sc->bout[k], 0, sizeof sc->bout[k]);
            sc->bin[ns + k] = &sc->state[k];
        }
        for (int32_t j = nst; j < sc->nbody; j++) mt_array_clear(&sc->bout[j]);
        if (st != MT_OK) return st;
    }
    return MT_OK;
}

mt_status mt__scan_run(mt_function *f, mt__jstep *s, const mt_array *const *ins,
                       mt_array *values)
{
    mt__scan *sc = s->scan;
    const mt_scan_spec *sp = &sc->info.spec;
    mt_status st = run_loop(f, s, ins);
    for (int32_t j = 0; j < s->nout && st == MT_OK; j++) {
        int32_t r = sc->res[j];
        mt_array *o = &values[s->out[j]];
        if (r < sc->nbody) {
            mt_array_view(o, &sc->stacked[r]);
        } else {
            int32_t k = r - sc->nbody;
            mt_array_view(o, sc->state[k].buf ? &sc->state[k] : ins[sp->n_seq + k]);
        }
        st = mt__check_result_type(f->g, s->out_vars[j], o, NULL, "the loop");
    }
    for (int32_t k = 0; k < sp->n_state; k++) mt_array_clear(&sc->state[k]);
    for (int32_t j = 0; j < sc->nbody; j++) {
        mt_array_clear(&sc->stacked[j]);
        mt_array_clear(&sc->bout[j]);
    }
    if (st != MT_OK) {
        for (int32_t j = 0; j < s->nout; j++) mt_array_clear(&values[s->out[j]]);
        return mt__node_error(f->g, s->v, st);
    }
    return MT_OK;
}
