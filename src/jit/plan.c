/* Schedules: building the reference schedule, liveness, printing, and running a schedule.
 *
 * A schedule (mt__jplan) is a flat array of steps built once at compile time; a call binds the
 * leaf slots (arguments, shared values, constants) as views, runs the steps in order, and moves
 * the output and update values out. Each value lives in a slot; a step's free list clears the
 * slots whose last reader it is, so temporaries go back to the device's caching allocator as
 * soon as they are dead and the memory high-water mark follows the liveness of the graph, not
 * its size. The same runner executes the reference schedule (one step per node) and the fused
 * schedule built by fuse.c (FUSED steps run one mt_elemwise kernel with several outputs,
 * through a per-step mt_elemwise_memo: a call whose operands have the layouts of the previous
 * call launches the same kernel without planning it again; REDUCE steps likewise through a
 * per-step mt_reduce_memo, and reduction nodes through mt_array_reduce_memo in ref_exec.c).
 * The SCAN nodes of one loop (same body, same operands) form one SCAN step with one output per
 * node, placed at the first of them (scan.c runs it). */
#include <string.h>

#include "jit_impl.h"

void mt__plan_forget_launches(mt__jplan *p)
{
    for (int32_t k = 0; p && k < p->nsteps; k++) {
        mt__jstep *s = &p->steps[k];
        mt_elemwise_memo_free(s->ew_memo);
        mt_reduce_memo_free(s->red_memo);
        mt_elemwise_memo_free(s->node_memo);
        s->ew_memo = NULL;
        s->red_memo = NULL;
        s->node_memo = NULL;
    }
}

void mt__step_free(mt__jstep *s)
{
    mt_free(s->in);
    mt_free(s->out);
    mt_free(s->out_vars);
    mt_free(s->members);
    mt_free(s->msrc);
    mt_free(s->mdims);
    mt_free(s->inplace);
    mt_free(s->free);
    if (s->has_kx) mt_kexpr_deinit(&s->kx);
    mt_elemwise_memo_free(s->ew_memo);
    mt_reduce_memo_free(s->red_memo);
    if (s->node_kx) mt_kexpr_deinit(s->node_kx);
    mt_free(s->node_kx);
    mt_elemwise_memo_free(s->node_memo);
    mt__scan_free(s->scan);
    memset(s, 0, sizeof *s);
}

void mt__plan_free(mt__jplan *p)
{
    if (!p) return;
    for (int32_t k = 0; k < p->nsteps; k++) mt__step_free(&p->steps[k]);
    if (p->values)
        for (int32_t i = 0; i < p->nslots; i++) mt_array_clear(&p->values[i]);
    mt_free(p->values);
    mt_free(p->steps);
    mt_free(p->leaves);
    mt_free(p->out_slot);
    mt_free(p->upd_slot);
    mt_free(p->ins);
    mt_free(p->slot_bytes);
    mt_free(p->coll_bucket);
    mt_free(p->coll_req);
    mt_free(p->coll_t0);
    mt_free(p->coll_arrays);
    mt_free(p->broken);
    memset(p, 0, sizeof *p);
}

/* Index of v in f->order (binary search: the order is increasing), or -1. */
int32_t mt__order_pos(const mt_function *f, mt_var v)
{
    int32_t lo = 0, hi = f->n_order - 1;
    while (lo <= hi) {
        int32_t mid = (lo + hi) / 2;
        if (f->order[mid] == v) return mid;
        if (f->order[mid] < v) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

static int32_t find_var(const mt_var *vars, int32_t n, mt_var v)
{
    for (int32_t i = 0; i < n; i++)
        if (vars[i] == v) return i;
    return -1;
}

/* Leaf bindings of the order's placeholders and constants into slot = order position. */
mt_status mt__plan_leaves(mt_function *f, mt__jplan *p)
{
    p->leaves = mt_calloc((size_t)f->n_order + 1, sizeof *p->leaves);
    if (!p->leaves) return MT_ERR_NOMEM;
    for (int32_t i = 0; i < f->n_order; i++) {
        mt_var v = f->order[i];
        mt_op op = mt_graph_op(f->g, v);
        mt__jleaf lf = {.slot = i};
        if (op == MT_OP_INPUT) {
            int32_t k = find_var(f->in_var, f->n_inputs, v);
            lf.kind = k >= 0 ? MT__LEAF_INPUT : MT__LEAF_SHARED;
            if (k < 0)
                for (int32_t j = 0; j < f->n_shared; j++)
                    if (f->shared[j].var == v) k = j;
            lf.index = k;
        } else if (op == MT_OP_CONST) {
            lf.kind = MT__LEAF_CONST;
            lf.index = find_var(f->const_var, f->n_consts, v);
        } else {
            continue;
        }
        if (lf.index < 0)
            return mt_err_set(MT_ERR_INTERNAL, "jit: leaf v%d has no binding", (int)v);
        p->leaves[p->nleaves++] = lf;
    }
    return MT_OK;
}

mt_status mt__plan_reference(mt_function *f, mt__jplan *p)
{
    memset(p, 0, sizeof *p);
    p->name = "reference";
    p->nslots = f->n_order;
    p->values = mt_calloc((size_t)p->nslots + 1, sizeof *p->values);
    p->steps = mt_calloc((size_t)f->n_order + 1, sizeof *p->steps);
    p->out_slot = mt_calloc((size_t)f->n_outputs + 1, sizeof *p->out_slot);
    p->upd_slot = mt_calloc((size_t)f->n_updates + 1, sizeof *p->upd_slot);
    if (!p->values || !p->steps || !p->out_slot || !p->upd_slot) return MT_ERR_NOMEM;
    mt_status st = mt__plan_leaves(f, p);
    if (st != MT_OK) return st;
    bool *taken = NULL; /* SCAN nodes computed by an earlier sibling's step */
    for (int32_t i = 0; i < f->n_order; i++) {
        mt_var v = f->order[i];
        mt_op op = mt_graph_op(f->g, v);
        if (op == MT_OP_INPUT || op == MT_OP_CONST || (taken && taken[i])) continue;
        if (op == MT_OP_SCAN) {
            if (!taken && !(taken = mt_calloc((size_t)f->n_order + 1, sizeof *taken)))
                return MT_ERR_NOMEM;
            st = mt__scan_step_init(f, i, NULL, taken, &p->steps[p->nsteps++]);
            if (st != MT_OK) {
                mt_free(taken);
                return st;
            }
            continue;
        }
        mt__jstep *s = &p->steps[p->nsteps++];
        s->kind = MT__STEP_NODE;
        s->v = v;
        s->nin = mt_graph_ninputs(f->g, v);
        s->nout = 1;
        s->in = mt_calloc((size_t)s->nin + 1, sizeof *s->in);
        s->out = mt_calloc(1, sizeof *s->out);
        if (!s->in || !s->out) st = MT_ERR_NOMEM;
        if (st == MT_OK) s->out[0] = i;
        for (int32_t j = 0; st == MT_OK && j < s->nin; j++) {
            s->in[j] = mt__order_pos(f, mt_graph_input(f->g, v, j));
            if (s->in[j] < 0)
                st = mt_err_set(MT_ERR_INTERNAL, "jit: operand of v%d not scheduled", (int)v);
        }
        if (st == MT_OK && op == MT_OP_ELEMWISE) {
            if ((st = mt__ref_elemwise_kexpr(f->g, v, &s->kx)) != MT_OK)
                st = mt__node_error(f->g, v, st);
            else
                s->has_kx = true;
        }
        if (st != MT_OK) {
            mt_free(taken);
            return st;
        }
    }
    mt_free(taken);
    for (int32_t i = 0; i < f->n_outputs; i++) p->out_slot[i] = mt__order_pos(f, f->out_var[i]);
    for (int32_t i = 0; i < f->n_updates; i++) p->upd_slot[i] = mt__order_pos(f, f->upd_var[i]);
    if ((st = mt__plan_collectives(f, p, true)) != MT_OK) {
        if (st != MT_ERR_INVALID || f->mode != MT_MODE_FAST_RUN) return st;
        if (!(p->broken = mt_strdup(mt_last_error()))) return MT_ERR_NOMEM;
    }
    return mt__plan_liveness(f, p);
}

/* The node whose value output j of step s is. */
static mt_var step_out_var(const mt__jstep *s, int32_t j)
{
    bool several = s->kind == MT__STEP_FUSED || s->kind == MT__STEP_COLL_WAIT ||
                   s->kind == MT__STEP_SCAN;
    return several ? s->out_vars[j] : s->v;
}

/* Bytes result j of a step allocates when its size is static; -1 when unknown. Views and
 * identities allocate nothing (a reshape that must copy is counted as a view). */
static int64_t out_alloc_bytes(const mt_function *f, const mt__jstep *s, int32_t j)
{
    if (s->kind == MT__STEP_NODE && mt_op_lowering(mt_graph_op(f->g, s->v)) == MT_LOWER_VIEW)
        return 0;
    const mt_type *t = mt_graph_type(f->g, step_out_var(s, j));
    int64_t n = mt_type_numel(t);
    return n < 0 ? -1 : n * (int64_t)mt_dtype_size(t->dtype);
}

mt_status mt__plan_liveness(mt_function *f, mt__jplan *p)
{
    int32_t *last = mt_malloc(((size_t)p->nslots + 1) * sizeof *last);
    int32_t *count = mt_calloc((size_t)p->nsteps + 1, sizeof *count);
    if (!last || !count) {
        mt_free(last);
        mt_free(count);
        return MT_ERR_NOMEM;
    }
    for (int32_t i = 0; i < p->nslots; i++) last[i] = -1;
    p->max_nin = 0;
    for (int32_t k = 0; k < p->nsteps; k++)
        if (p->steps[k].nin > p->max_nin) p->max_nin = p->steps[k].nin;
    for (int32_t k = 0; k < p->nsteps; k++)
        for (int32_t j = 0; j < p->steps[k].nin; j++) last[p->steps[k].in[j]] = k;
    /* Results are kept to the end of the call. */
    for (int32_t i = 0; i < f->n_outputs; i++) last[p->out_slot[i]] = p->nsteps;
    for (int32_t i = 0; i < f->n_updates; i++) last[p->upd_slot[i]] = p->nsteps;
    /* A result nobody reads is freed right after the step that made it. */
    for (int32_t k = 0; k < p->nsteps; k++)
        for (int32_t j = 0; j < p->steps[k].nout; j++)
            if (last[p->steps[k].out[j]] < 0) last[p->steps[k].out[j]] = k;
    for (int32_t i = 0; i < p->nslots; i++)
        if (last[i] >= 0 && last[i] < p->nsteps) count[last[i]]++;
    mt_status st = MT_OK;
    for (int32_t k = 0; k < p->nsteps && st == MT_OK; k++) {
        mt__jstep *s = &p->steps[k];
        mt_free(s->free);
        s->nfree = 0;
        s->free = mt_malloc(((size_t)count[k] + 1) * sizeof *s->free);
        if (!s->free) st = MT_ERR_NOMEM;
    }
    for (int32_t i = 0; i < p->nslots && st == MT_OK; i++)
        if (last[i] >= 0 && last[i] < p->nsteps) {
            mt__jstep *s = &p->steps[last[i]];
            s->free[s->nfree++] = i;
        }
    /* Peak of temporaries, simulated over the schedule (leaves are not counted). */
    int64_t *bytes = mt_calloc((size_t)p->nslots + 1, sizeof *bytes);
    int64_t live = 0, peak = 0;
    if (!bytes && st == MT_OK) st = MT_ERR_NOMEM;
    for (int32_t k = 0; k < p->nsteps && st == MT_OK && peak >= 0; k++) {
        const mt__jstep *s = &p->steps[k];
        for (int32_t j = 0; j < s->nout && peak >= 0; j++) {
            int64_t b = out_alloc_bytes(f, s, j);
            if (b < 0) peak = -1;
            bytes[s->out[j]] = b;
            live += b;
        }
        if (peak < 0) break;
        if (live > peak) peak = live;
        for (int32_t j = 0; j < s->nfree; j++) {
            live -= bytes[s->free[j]];
            bytes[s->free[j]] = 0;
        }
    }
    p->peak_bytes = peak;
    mt_free(bytes);
    for (int32_t k = 0; k < p->nsteps; k++) {
        const mt__jstep *s = &p->steps[k];
        p->steps[k].allocates =
            s->kind != MT__STEP_NODE || mt_op_lowering(mt_graph_op(f->g, s->v)) != MT_LOWER_VIEW;
    }
    mt_free(p->slot_bytes);
    p->slot_bytes = mt_calloc((size_t)p->nslots + 1, sizeof *p->slot_bytes);
    if (!p->slot_bytes && st == MT_OK) st = MT_ERR_NOMEM;
    if (st == MT_OK && p->max_nin > 0) {
        mt_free(p->ins);
        p->ins = mt_calloc((size_t)p->max_nin, sizeof *p->ins);
        if (!p->ins) st = MT_ERR_NOMEM;
    }
    mt_free(last);
    mt_free(count);
    return st;
}

/* ---------------------------------------------------------------- printing */

static void print_fused(const mt_function *f, int32_t k, const mt__jstep *s, mt_strbuf *sb)
{
    if (s->kind == MT__STEP_REDUCE) {
        mt_strbuf_appendf(sb, "  [%d] fused elementwise kernel of %d nodes, %d inputs, reduced "
                          "in the same pass -> ", (int)k, (int)s->nmembers, (int)s->nin);
        mt_graph_print_node(f->g, s->v, sb);
        mt_strbuf_append(sb, "\n        map: ");
        mt_kexpr_print(&s->kx, sb);
        mt_strbuf_append(sb, "\n");
        for (int32_t m = 0; m < s->nmembers; m++) {
            mt_strbuf_append(sb, "        | ");
            mt_graph_print_node(f->g, s->members[m], sb);
            mt_strbuf_append(sb, "\n");
        }
        return;
    }
    mt_strbuf_appendf(sb, "  [%d] fused elementwise kernel of %d nodes, %d inputs -> ", (int)k,
                      (int)s->nmembers, (int)s->nin);
    for (int32_t j = 0; j < s->nout; j++) {
        mt_strbuf_appendf(sb, "%sv%d", j ? ", " : "", (int)s->out_vars[j]);
        if (s->inplace && s->inplace[j] >= 0)
            mt_strbuf_appendf(sb, " (in place into shared v%d)",
                              (int)f->shared[s->inplace[j]].var);
    }
    mt_strbuf_append(sb, "\n        ");
    mt_kexpr_print(&s->kx, sb);
    mt_strbuf_append(sb, "\n");
    for (int32_t m = 0; m < s->nmembers; m++) {
        mt_strbuf_append(sb, "        | ");
        mt_graph_print_node(f->g, s->members[m], sb);
        mt_strbuf_append(sb, "\n");
    }
}

void mt__plan_print(const mt_function *f, const mt__jplan *p, mt_strbuf *sb)
{
    mt_strbuf_appendf(sb, "schedule (%s, %d steps", p->name, (int)p->nsteps);
    if (p->peak_bytes >= 0)
        mt_strbuf_appendf(sb, ", peak temporaries %lld bytes", (long long)p->peak_bytes);
    mt_strbuf_append(sb, "):\n");
    for (int32_t k = 0; k < p->nsteps; k++) {
        const mt__jstep *s = &p->steps[k];
        if (s->kind == MT__STEP_COLL_START || s->kind == MT__STEP_COLL_WAIT) {
            bool start = s->kind == MT__STEP_COLL_START;
            int32_t nv = start ? s->ncoll_vars : s->nout;
            mt_strbuf_appendf(sb, "  [%d] %s all-reduce of bucket %d (%d arrays):", (int)k,
                              start ? "start" : "wait for", (int)p->coll_bucket[s->coll],
                              (int)nv);
            for (int32_t j = 0; j < nv; j++)
                mt_strbuf_appendf(sb, " v%d", (int)s->out_vars[j]);
            mt_strbuf_append(sb, "\n");
            continue;
        }
        if (s->kind == MT__STEP_SCAN) {
            mt__scan_print(f, k, s, sb);
            continue;
        }
        if (s->kind != MT__STEP_NODE) {
            print_fused(f, k, s, sb);
            continue;
        }
        mt_strbuf_appendf(sb, "  [%d] ", (int)k);
        mt_graph_print_node(f->g, s->v, sb);
        if (s->inplace && s->inplace[0] >= 0)
            mt_strbuf_appendf(sb, "   (in place into shared v%d)",
                              (int)f->shared[s->inplace[0]].var);
        mt_strbuf_append(sb, "\n");
    }
}

/* ---------------------------------------------------------------- running */

/* The run-time shape of every member of a fused kernel, in member order: a member whose shape
 * rule was verified statically takes, per axis, the size of an operand that is not 1; an
 * MT_NODE_RTCHECK member is checked by the graph (mt_graph_eval_shape: both shapes and the
 * node's provenance in the error). The kernel's shape is that of its first output. */
static mt_status member_shapes(mt_function *f, mt__jstep *s, const mt_array *const *ins,
                               int32_t *nd, int64_t *dims)
{
    static const int64_t ones[MT_MAX_DIMS] = {1, 1, 1, 1, 1, 1, 1, 1};
    int32_t out_member = 0;
    for (int32_t k = 0; k < s->nmembers; k++) {
        mt_var v = s->members[k];
        const mt_type *t = mt_graph_type(f->g, v);
        int64_t *md = s->mdims + (size_t)k * MT_MAX_DIMS;
        const int64_t *shapes[3] = {ones, ones, ones};
        int32_t nin = mt_graph_ninputs(f->g, v);
        for (int32_t j = 0; j < nin && j < 3; j++) {
            int32_t src = s->msrc[3 * k + j];
            shapes[j] = src >= 0 ? ins[src]->dims
                        : src == MT__SRC_ONES ? ones
                                              : s->mdims + (size_t)(-2 - src) * MT_MAX_DIMS;
        }
        if (mt_graph_flags(f->g, v) & MT_NODE_RTCHECK) {
            mt_status st = mt_graph_eval_shape(f->g, v, shapes, md);
            if (st != MT_OK) return mt__node_error(f->g, v, st);
        } else {
            for (int32_t d = 0; d < t->ndim; d++) {
                md[d] = 1;
                for (int32_t j = 0; j < nin && j < 3; j++)
                    if (shapes[j][d] != 1) md[d] = shapes[j][d];
            }
        }
        if (v == s->out_vars[0]) out_member = k;
    }
    const mt_type *t = mt_graph_type(f->g, s->out_vars[0]);
    *nd = t->ndim;
    memcpy(dims, s->mdims + (size_t)out_member * MT_MAX_DIMS, (size_t)t->ndim * sizeof *dims);
    return MT_OK;
}

/* An update computed in place writes straight into the shared variable's held array: only
 * when it has the result's dtype and shape, is writeable and no other shared variable holds
 * the same memory (then the ordering argument of fuse.c would not cover it). */
static bool inplace_ok(const mt_function *f, int32_t k, mt_dtype dt, int32_t nd,
                       const int64_t *dims)
{
    const mt_array *a = &f->shared[k].value;
    if (a->dtype != dt || a->ndim != nd || !(a->flags & MT_ARRAY_WRITEABLE)) return false;
    for (int32_t d = 0; d < nd; d++)
        if (a->dims[d] != dims[d]) return false;
    for (int32_t i = 0; i < f->n_shared; i++)
        if (i != k && f->shared[i].value.buf == a->buf) return false;
    return true;
}

static mt_status run_fused(mt_function *f, mt__jstep *s, const mt_array *const *ins,
                           mt_array *values)
{
    int32_t nd = 0;
    int64_t dims[MT_MAX_DIMS];
    mt_status st = member_shapes(f, s, ins, &nd, dims);
    if (st != MT_OK) return st;
    mt_array *outs[MT_MAX_DIMS];
    for (int32_t j = 0; j < s->nout && st == MT_OK; j++) {
        const mt_type *t = mt_graph_type(f->g, s->out_vars[j]);
        outs[j] = &values[s->out[j]];
        if (s->inplace && s->inplace[j] >= 0 && inplace_ok(f, s->inplace[j], t->dtype, nd, dims))
            mt_array_view(outs[j], &f->shared[s->inplace[j]].value);
        else
            st = mt_array_empty(outs[j], f->dev, t->dtype, nd, dims, 'C');
    }
    if (st == MT_OK && mt_array_size(outs[0]) > 0)
        st = mt_elemwise_memo_run(&s->ew_memo, &s->kx, s->nin, ins, outs, 0, NULL);
    if (st != MT_OK) {
        for (int32_t j = 0; j < s->nout; j++) mt_array_clear(&values[s->out[j]]);
        return mt__node_error(f->g, s->out_vars[0], st);
    }
    return MT_OK;
}

/* A group's expression reduced in one pass: the map's shape from the members' shapes, the
 * result's shape from the REDUCE node's axes, then one mt_reduce_fused call (through the
 * step's mt_reduce_memo: no planning when the layouts repeat). */
static mt_status run_reduce(mt_function *f, mt__jstep *s, const mt_array *const *ins,
                            mt_array *values)
{
    int32_t nd = 0, ond = 0;
    int64_t dims[MT_MAX_DIMS], odims[MT_MAX_DIMS];
    mt_status st = member_shapes(f, s, ins, &nd, dims);
    if (st != MT_OK) return st;
    const mt_op_attrs *at = mt_graph_attrs(f->g, s->v);
    for (int32_t d = 0; d < nd; d++) {
        bool red = at->naxes == 0;
        for (int32_t i = 0; i < at->naxes; i++) red |= at->axes[i] == d;
        if (!red) odims[ond++] = dims[d];
        else if (at->keepdims) odims[ond++] = 1;
    }
    mt_array *out = &values[s->out[0]];
    st = mt_array_empty(out, f->dev, mt_graph_type(f->g, s->v)->dtype, ond, odims, 'C');
    if (st == MT_OK)
        st = mt_reduce_memo_run(&s->red_memo, &s->kx, s->nin, ins, at->reduce, at->naxes,
                                at->axes, out, 0, NULL);
    if (st != MT_OK) {
        mt_array_clear(out);
        return mt__node_error(f->g, s->v, st);
    }
    return MT_OK;
}

static void bind_leaves(mt_function *f, mt__jplan *p, const mt_array *const *inputs)
{
    for (int32_t i = 0; i < p->nleaves; i++) {
        const mt__jleaf *lf = &p->leaves[i];
        const mt_array *src = lf->kind == MT__LEAF_INPUT    ? inputs[lf->index]
                              : lf->kind == MT__LEAF_SHARED ? &f->shared[lf->index].value
                                                            : &f->consts[lf->index];
        mt_array_view(&p->values[lf->slot], src);
    }
}

/* Slots without a buffer were cleared already (freed after their last use): skipping them
 * saves rewriting ~160 zero bytes per slot on every call. */
void mt__plan_clear(mt__jplan *p)
{
    for (int32_t i = 0; i < p->nslots; i++)
        if (p->values[i].buf) mt_array_clear(&p->values[i]);
}

/* MT_MODE_CHECK: the step's results against the reference run's values of the same nodes. */
static mt_status check_step(mt_function *f, const mt__jstep *s, const mt_array *values,
                            const mt_array *check)
{
    for (int32_t j = 0; j < s->nout; j++) {
        mt_var v = step_out_var(s, j);
        if (!check[s->out[j]].buf) continue;
        mt_status st = mt__check_value(f, v, s->kind == MT__STEP_FUSED || s->kind == MT__STEP_REDUCE
                                                 ? "fused kernel result"
                                                                      : "node result",
                                       &values[s->out[j]], &check[s->out[j]]);
        if (st != MT_OK) return st;
    }
    return MT_OK;
}

mt_status mt__plan_run(mt_function *f, mt__jplan *p, const mt_array *const *inputs,
                       mt_array *results, bool keep, const mt_array *check)
{
    if (p->broken) return mt_err_set(MT_ERR_INVALID, "%s", p->broken);
    mt_array *values = p->values;
    bind_leaves(f, p, inputs);
    mt__jctx ctx = {.g = f->g, .dev = f->dev, .rng_call = f->rng_calls, .pool = &f->conv_pool};
    mt_status st = MT_OK;
    int64_t live = 0, peak = 0;
    for (int32_t k = 0; k < p->nsteps && st == MT_OK; k++) {
        mt__jstep *s = &p->steps[k];
        ctx.step = s;
        double t0 = f->profile ? mt_now_seconds() : 0.0;
        for (int32_t j = 0; j < s->nin; j++) p->ins[j] = &values[s->in[j]];
        if (s->kind == MT__STEP_FUSED)
            st = run_fused(f, s, p->ins, values);
        else if (s->kind == MT__STEP_COLL_START)
            st = mt__coll_start(f, p, s, p->ins, values);
        else if (s->kind == MT__STEP_COLL_WAIT)
            st = mt__coll_wait(f, p, s);
        else if (s->kind == MT__STEP_REDUCE)
            st = run_reduce(f, s, p->ins, values);
        else if (s->kind == MT__STEP_SCAN)
            st = mt__scan_run(f, s, p->ins, values);
        else if (s->inplace && s->inplace[0] >= 0)
            st = mt__ref_gemm_into(&ctx, s->v, p->ins, &f->shared[s->inplace[0]].value,
                                   &values[s->out[0]]);
        else
            st = mt__ref_node(&ctx, s->v, s->has_kx ? &s->kx : NULL, p->ins,
                              &values[s->out[0]]);
        if (st == MT_OK && f->profile) {
            st = mt_device_sync(f->dev);
            s->seconds += mt_now_seconds() - t0;
            s->calls++;
            for (int32_t j = 0; j < s->nin; j++) s->bytes_in += mt_array_nbytes(p->ins[j]);
            for (int32_t j = 0; j < s->nout; j++) s->bytes_out += mt_array_nbytes(&values[s->out[j]]);
        }
        if (st == MT_OK && check) st = check_step(f, s, values, check);
        if (st == MT_OK && s->allocates)
            for (int32_t j = 0; j < s->nout; j++) {
                p->slot_bytes[s->out[j]] = (int64_t)mt_array_nbytes(&values[s->out[j]]);
                live += p->slot_bytes[s->out[j]];
            }
        if (live > peak) peak = live;
        if (!keep)
            for (int32_t j = 0; j < s->nfree; j++) {
                mt_array_clear(&values[s->free[j]]);
                live -= p->slot_bytes[s->free[j]];
                p->slot_bytes[s->free[j]] = 0;
            }
    }
    if (p->ncoll > 0) st = mt__coll_drain(f, p, st); /* buckets left in flight by an error */
    if (st == MT_OK) p->run_peak_bytes = peak;
    for (int32_t i = 0; i < p->nslots; i++) p->slot_bytes[i] = 0;
    int32_t nres = f->n_outputs + f->n_updates;
    for (int32_t i = 0; i < nres && st == MT_OK; i++) {
        int32_t slot = i < f->n_outputs ? p->out_slot[i] : p->upd_slot[i - f->n_outputs];
        mt_array_view(&results[i], &values[slot]);
    }
    if (!keep || st != MT_OK) mt__plan_clear(p);
    return st;
}
