/* The FAST_RUN schedule: elementwise fusion, dead-step removal and step ordering.
 *
 * Grouping. Nodes are visited in topological order. Every ELEMWISE node is fusable; it joins
 * the group of one of its operands when that operand is fusable, has the same static shape and
 * joining keeps the condensed graph acyclic: no other operand of the node may depend, through
 * any path of nodes or groups, on the group it joins. Otherwise it starts a group of its own;
 * then the groups of its other operands are merged into its group under the same conditions,
 * so diamonds and independent chains meeting at a node become one kernel.
 *
 * Run-time shape checks. Members whose shapes the graph could not verify statically
 * (MT_NODE_RTCHECK, e.g. two operands with an unknown batch size) are fused too: before the
 * kernel runs, each is checked with mt_graph_eval_shape on the concrete shapes of its operands
 * (kernel inputs: their arrays; other members: the kernel's shape; inlined constants: all 1),
 * so a mismatch is the same error, naming both shapes and the node's provenance, as in the
 * reference executor. Members that pass have the kernel's shape, as every member has the same
 * static shape.
 *
 * Kernels. A group becomes one FUSED step: one mt_kexpr over the group's external operands
 * with one output per member that is used outside the group (or returned / written back by the
 * function), at most MT_MAX_DIMS outputs (a group that would need more is split back into
 * single nodes). Operands that are scalar constants (possibly behind views and casts,
 * mt_graph_scalar_value) are inlined into the expression as literals, so `x * 0.5` reads one
 * array. Nodes only needed by inlined constants disappear with the dead-step pass.
 *
 * Loops. The SCAN nodes of one loop that the schedule needs become one SCAN step (scan.c),
 * never fused, like any other opaque node.
 *
 * Order. Steps are sorted topologically over their slot dependencies (Kahn's algorithm, ties
 * broken by the original node order), then the liveness pass (plan.c) fills the free lists and
 * the peak-memory estimate. The slot of a value is its node's position in f->order, as in the
 * reference schedule, so both schedules bind leaves and results the same way. */
#include <string.h>

#include "jit_impl.h"

#define FUSE_MAX_INPUTS 48
#define FUSE_MAX_MEMBERS 256

typedef struct fuse_state {
    mt_function *f;
    int32_t n;         /* f->n_order */
    int32_t *group;    /* per position: group id or -1 */
    int32_t *next;     /* per position: next member of the same group, -1 at the end */
    int32_t *head;     /* per group: first member position (increasing order) */
    int32_t *tail;
    int32_t *size;
    int32_t ngroups;
    int32_t *stamp;    /* visit marks per position (ungrouped nodes, kernel inputs) */
    int32_t *gstamp;   /* visit marks per group */
    int32_t *tstamp, *tgstamp; /* search targets per position / per group */
    int32_t cur_stamp;
    int32_t *stack;    /* search stack: group g as g, ungrouped node x as -1 - x */
    int32_t *ustart, *users; /* users of each position (CSR) */
    int32_t limit;     /* positions processed so far (searches ignore the rest) */
    bool *keep;        /* per position: the value is a function output or update value */
    bool *reach;       /* per position: needed by the fast schedule's outputs or updates (the
                          order also holds the reference schedule's nodes, which must neither
                          join kernels nor count as readers) */
    bool *ext_use;     /* per position: used by a node outside its group */
    bool *inlined;     /* per position: a scalar constant (inlined into kernels) */
    int32_t *red_pos;  /* per group: position of the REDUCE node it feeds, or -1 */
    bool *absorbed;    /* per position: a REDUCE node run as the end of its operand's kernel,
                          or a SCAN node computed by the step of an earlier sibling */
} fuse_state;

static void fuse_free(fuse_state *s)
{
    mt_free(s->group);
    mt_free(s->next);
    mt_free(s->head);
    mt_free(s->tail);
    mt_free(s->size);
    mt_free(s->stamp);
    mt_free(s->gstamp);
    mt_free(s->tstamp);
    mt_free(s->tgstamp);
    mt_free(s->stack);
    mt_free(s->ustart);
    mt_free(s->users);
    mt_free(s->keep);
    mt_free(s->reach);
    mt_free(s->ext_use);
    mt_free(s->inlined);
    mt_free(s->red_pos);
    mt_free(s->absorbed);
}

/* The users of every position, as a CSR table (ustart[i]..ustart[i+1] in users). */
static mt_status build_users(fuse_state *s)
{
    const mt_graph *g = s->f->g;
    int32_t total = 0;
    for (int32_t i = 0; i < s->n; i++) {
        mt_var v = s->f->order[i];
        if (!s->reach[i]) continue;
        for (int32_t j = 0; j < mt_graph_ninputs(g, v); j++) {
            int32_t u = mt__order_pos(s->f, mt_graph_input(g, v, j));
            if (u >= 0) s->ustart[u + 1]++;
            total++;
        }
    }
    for (int32_t i = 0; i < s->n; i++) s->ustart[i + 1] += s->ustart[i];
    s->users = mt_malloc(((size_t)total + 1) * sizeof *s->users);
    int32_t *fill = mt_calloc((size_t)s->n + 1, sizeof *fill);
    if (!s->users || !fill) {
        mt_free(fill);
        return MT_ERR_NOMEM;
    }
    for (int32_t i = 0; i < s->n; i++) {
        mt_var v = s->f->order[i];
        if (!s->reach[i]) continue;
        for (int32_t j = 0; j < mt_graph_ninputs(g, v); j++) {
            int32_t u = mt__order_pos(s->f, mt_graph_input(g, v, j));
            if (u >= 0) s->users[s->ustart[u] + fill[u]++] = i;
        }
    }
    mt_free(fill);
    return MT_OK;
}

static mt_status fuse_init(fuse_state *s, mt_function *f)
{
    memset(s, 0, sizeof *s);
    s->f = f;
    s->n = f->n_order;
    size_t n1 = (size_t)s->n + 1;
    s->group = mt_malloc(n1 * sizeof *s->group);
    s->next = mt_malloc(n1 * sizeof *s->next);
    s->head = mt_malloc(n1 * sizeof *s->head);
    s->tail = mt_malloc(n1 * sizeof *s->tail);
    s->size = mt_calloc(n1, sizeof *s->size);
    s->stamp = mt_calloc(n1, sizeof *s->stamp);
    s->gstamp = mt_calloc(n1, sizeof *s->gstamp);
    s->tstamp = mt_calloc(n1, sizeof *s->tstamp);
    s->tgstamp = mt_calloc(n1, sizeof *s->tgstamp);
    s->stack = mt_malloc(2 * n1 * sizeof *s->stack);
    s->ustart = mt_calloc(n1 + 1, sizeof *s->ustart);
    s->keep = mt_calloc(n1, sizeof *s->keep);
    s->reach = mt_calloc(n1, sizeof *s->reach);
    s->ext_use = mt_calloc(n1, sizeof *s->ext_use);
    s->inlined = mt_calloc(n1, sizeof *s->inlined);
    s->red_pos = mt_malloc(2 * n1 * sizeof *s->red_pos);
    s->absorbed = mt_calloc(n1, sizeof *s->absorbed);
    if (!s->red_pos || !s->absorbed) return MT_ERR_NOMEM;
    if (!s->group || !s->next || !s->head || !s->tail || !s->size || !s->stamp || !s->stack ||
        !s->keep || !s->ext_use || !s->inlined || !s->gstamp || !s->tstamp || !s->tgstamp ||
        !s->ustart || !s->reach)
        return MT_ERR_NOMEM;
    for (int32_t i = 0; i < s->n; i++) s->group[i] = s->next[i] = -1;
    for (int32_t i = 0; i < f->n_outputs; i++) s->keep[mt__order_pos(f, f->out_fast[i])] = true;
    for (int32_t i = 0; i < f->n_updates; i++) s->keep[mt__order_pos(f, f->upd_fast[i])] = true;
    /* Reachability from the fast roots: the order is topological, so one backward sweep. */
    for (int32_t i = s->n - 1; i >= 0; i--) {
        if (s->keep[i]) s->reach[i] = true;
        if (!s->reach[i]) continue;
        mt_var v = f->order[i];
        for (int32_t j = 0; j < mt_graph_ninputs(f->g, v); j++) {
            int32_t u = mt__order_pos(f, mt_graph_input(f->g, v, j));
            if (u >= 0) s->reach[u] = true;
        }
    }
    return build_users(s);
}

static bool fusable(const mt_graph *g, mt_var v)
{
    return mt_graph_op(g, v) == MT_OP_ELEMWISE;
}

static bool same_shape(const mt_type *a, const mt_type *b)
{
    if (a->ndim != b->ndim) return false;
    for (int32_t d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d]) return false;
    return true;
}

/* A scalar constant that kernels read as a literal: every size statically 1. */
static bool scalar_constant(const mt_graph *g, mt_var v)
{
    mt_scalar val;
    return mt_type_numel(mt_graph_type(g, v)) == 1 && mt_graph_scalar_value(g, v, &val);
}

/* Forward search over kernels (a group, or a node outside any group): kernel K' follows K
 * when a node of K' reads a value K produces. Only positions already processed (< s->limit)
 * take part: later nodes are not grouped yet and cannot feed earlier ones.
 *   to >= 0: true when group `to` is reached from a kernel other than `from` (merging the two
 *            groups would then create a cycle between kernels);
 *   to < 0:  true when a kernel marked as a target (tstamp / tgstamp) is reached.
 * Also true when the search exceeds its budget: refusing a fusion is always safe, and the
 * budget keeps compilation linear on deep graphs (joins are almost always local). */
#define FUSE_SEARCH_BUDGET 4096

static bool reaches(fuse_state *s, int32_t from, int32_t to, int32_t target_stamp)
{
    int32_t sp = 0, budget = FUSE_SEARCH_BUDGET;
    s->cur_stamp++;
    s->gstamp[from] = s->cur_stamp;
    s->stack[sp++] = from;
    while (sp > 0) {
        int32_t k = s->stack[--sp];
        int32_t m = k >= 0 ? s->head[k] : -1 - k;
        for (; m >= 0; m = k >= 0 ? s->next[m] : -1) {
            for (int32_t e = s->ustart[m]; e < s->ustart[m + 1]; e++) {
                int32_t u = s->users[e];
                if (u >= s->limit) continue;
                if (--budget < 0) return true;
                int32_t gu = s->group[u];
                if (gu == from) continue;
                if (to >= 0 && gu == to) {
                    if (k != from) return true;
                    continue; /* a direct edge: internal after the merge */
                }
                if (to < 0 && (gu >= 0 ? s->tgstamp[gu] : s->tstamp[u]) == target_stamp)
                    return true;
                if (gu >= 0) {
                    if (s->gstamp[gu] == s->cur_stamp) continue;
                    s->gstamp[gu] = s->cur_stamp;
                    s->stack[sp++] = gu;
                } else {
                    if (s->stamp[u] == s->cur_stamp) continue;
                    s->stamp[u] = s->cur_stamp;
                    s->stack[sp++] = -1 - u;
                }
            }
        }
    }
    return false;
}

static void group_add(fuse_state *s, int32_t gid, int32_t pos)
{
    s->group[pos] = gid;
    s->next[pos] = -1;
    if (s->size[gid] == 0) s->head[gid] = pos;
    else s->next[s->tail[gid]] = pos;
    s->tail[gid] = pos;
    s->size[gid]++;
}

/* Counts the distinct operands, outside groups ga and gb and not inlined, of the members of ga,
 * of gb (if >= 0) and of the node at position extra (if >= 0). */
static void count_operands(fuse_state *s, int32_t ga, int32_t gb, int32_t pos, int32_t *count)
{
    const mt_graph *g = s->f->g;
    mt_var v = s->f->order[pos];
    for (int32_t j = 0; j < mt_graph_ninputs(g, v); j++) {
        int32_t u = mt__order_pos(s->f, mt_graph_input(g, v, j));
        if (u < 0 || s->group[u] == ga || (gb >= 0 && s->group[u] == gb) || s->inlined[u] ||
            s->stamp[u] == s->cur_stamp)
            continue;
        s->stamp[u] = s->cur_stamp;
        (*count)++;
    }
}

static int32_t external_inputs(fuse_state *s, int32_t ga, int32_t gb, int32_t extra)
{
    int32_t count = 0;
    s->cur_stamp++;
    for (int32_t m = s->head[ga]; m >= 0; m = s->next[m]) count_operands(s, ga, gb, m, &count);
    if (gb >= 0)
        for (int32_t m = s->head[gb]; m >= 0; m = s->next[m]) count_operands(s, ga, gb, m, &count);
    if (extra >= 0) count_operands(s, ga, gb, extra, &count);
    return count;
}

static bool can_join(fuse_state *s, int32_t vpos, int32_t gid)
{
    const mt_graph *g = s->f->g;
    mt_var v = s->f->order[vpos];
    if (s->size[gid] >= FUSE_MAX_MEMBERS) return false;
    if (external_inputs(s, gid, -1, vpos) > FUSE_MAX_INPUTS) return false;
    /* The kernels of v's other operands must not depend on gid. */
    int32_t target = ++s->cur_stamp, ntargets = 0;
    for (int32_t j = 0; j < mt_graph_ninputs(g, v); j++) {
        int32_t w = mt__order_pos(s->f, mt_graph_input(g, v, j));
        if (w < 0 || s->group[w] == gid || s->inlined[w]) continue;
        mt_op op = mt_graph_op(g, s->f->order[w]);
        if (op == MT_OP_INPUT || op == MT_OP_CONST) continue; /* leaves depend on nothing */
        if (s->group[w] >= 0) s->tgstamp[s->group[w]] = target;
        else s->tstamp[w] = target;
        ntargets++;
    }
    return ntargets == 0 || !reaches(s, gid, -1, target);
}

/* Merges group b into group a (member lists stay in increasing position order) when the
 * shapes match and no path between them leaves both (which would make a cycle of kernels). */
static void try_merge(fuse_state *s, int32_t a, int32_t b)
{
    const mt_graph *g = s->f->g;
    if (a == b || s->size[a] + s->size[b] > FUSE_MAX_MEMBERS) return;
    if (!same_shape(mt_graph_type(g, s->f->order[s->head[a]]),
                    mt_graph_type(g, s->f->order[s->head[b]])))
        return;
    if (external_inputs(s, a, b, -1) > FUSE_MAX_INPUTS) return;
    if (reaches(s, a, b, 0) || reaches(s, b, a, 0)) return;
    int32_t ia = s->head[a], ib = s->head[b], h = -1, t = -1;
    while (ia >= 0 || ib >= 0) {
        int32_t x;
        if (ib < 0 || (ia >= 0 && ia < ib)) {
            x = ia;
            ia = s->next[ia];
        } else {
            x = ib;
            ib = s->next[ib];
        }
        s->group[x] = a;
        if (t < 0) h = x;
        else s->next[t] = x;
        t = x;
    }
    s->next[t] = -1;
    s->head[a] = h;
    s->tail[a] = t;
    s->size[a] += s->size[b];
    s->size[b] = 0;
    s->head[b] = s->tail[b] = -1;
}

static void form_groups(fuse_state *s)
{
    const mt_graph *g = s->f->g;
    for (int32_t i = 0; i < s->n; i++) {
        mt_var v = s->f->order[i];
        if (scalar_constant(g, v)) s->inlined[i] = true;
        if (!fusable(g, v) || !s->reach[i]) continue;
        s->limit = i + 1;
        int32_t target = -1, nin = mt_graph_ninputs(g, v);
        for (int32_t j = 0; j < nin && target < 0; j++) {
            mt_var u = mt_graph_input(g, v, j);
            int32_t up = mt__order_pos(s->f, u);
            if (up < 0 || s->group[up] < 0 || s->inlined[up]) continue;
            if (!same_shape(mt_graph_type(g, u), mt_graph_type(g, v))) continue;
            if (can_join(s, i, s->group[up])) target = s->group[up];
        }
        if (target < 0) target = s->ngroups++;
        group_add(s, target, i);
        /* Other operand groups (independent chains meeting here) join too when they can. */
        for (int32_t j = 0; j < nin; j++) {
            int32_t up = mt__order_pos(s->f, mt_graph_input(g, v, j));
            if (up < 0 || s->group[up] < 0 || s->group[up] == target || s->inlined[up]) continue;
            try_merge(s, target, s->group[up]);
        }
    }
}

/* ext_use: members read by a node outside their group or kept as results. */
static void mark_external_uses(fuse_state *s)
{
    const mt_graph *g = s->f->g;
    for (int32_t i = 0; i < s->n; i++) {
        mt_var v = s->f->order[i];
        if (!s->reach[i]) continue;
        for (int32_t j = 0; j < mt_graph_ninputs(g, v); j++) {
            int32_t u = mt__order_pos(s->f, mt_graph_input(g, v, j));
            if (u >= 0 && s->group[u] >= 0 && s->group[u] != s->group[i]) s->ext_use[u] = true;
        }
    }
    for (int32_t i = 0; i < s->n; i++)
        if (s->keep[i]) s->ext_use[i] = true;
}

/* Splits groups needing more than MT_MAX_DIMS kernel outputs back into single nodes. */
static void split_wide_groups(fuse_state *s)
{
    int32_t ng = s->ngroups;
    bool split = false;
    for (int32_t gid = 0; gid < ng; gid++) {
        int32_t nout = 0;
        for (int32_t m = s->head[gid]; m >= 0; m = s->next[m]) nout += s->ext_use[m];
        if (nout <= MT_MAX_DIMS) continue;
        split = true;
        int32_t m = s->head[gid];
        s->size[gid] = 0;
        while (m >= 0) {
            int32_t nx = s->next[m];
            int32_t target = s->size[gid] == 0 ? gid : s->ngroups++;
            if (target != gid) s->size[target] = 0;
            group_add(s, target, m);
            m = nx;
        }
    }
    /* members of a split group now read their former partners as external operands */
    if (split) mark_external_uses(s);
}

/* Reductions at the end of kernels. A REDUCE node whose operand is the only output of a group
 * (a member read by nothing else and not a result) runs as one mt_reduce_fused call with the
 * group's expression as its map: one pass over memory, no temporary for the operand. The
 * reduction's dtype must be the one mt_reduce_fused gives for the map's dtype. Groups split
 * by split_wide_groups may have ids up to 2n, hence red_pos's size. */
static void absorb_reductions(fuse_state *s)
{
    const mt_graph *g = s->f->g;
    for (int32_t k = 0; k < s->ngroups; k++) s->red_pos[k] = -1;
    for (int32_t i = 0; i < s->n; i++) {
        mt_var r = s->f->order[i];
        if (mt_graph_op(g, r) != MT_OP_REDUCE || s->inlined[i] || !s->reach[i]) continue;
        int32_t up = mt__order_pos(s->f, mt_graph_input(g, r, 0));
        int32_t gid = up >= 0 ? s->group[up] : -1;
        if (gid < 0 || s->keep[up] || s->red_pos[gid] >= 0) continue;
        if (s->ustart[up + 1] - s->ustart[up] != 1) continue; /* read by r only */
        int32_t nout = 0;
        for (int32_t m = s->head[gid]; m >= 0; m = s->next[m]) nout += s->ext_use[m];
        if (nout != 1) continue;
        mt_dtype md = mt_graph_type(g, s->f->order[up])->dtype;
        if (mt_reduce_result_dtype(mt_graph_attrs(g, r)->reduce, md) != mt_graph_type(g, r)->dtype)
            continue;
        s->red_pos[gid] = i;
        s->absorbed[i] = true;
    }
}

/* ---------------------------------------------------------------- kernels and steps */

/* One unit of work before ordering: a group (FUSED step) or a single non-leaf node. */
typedef struct fuse_units {
    int32_t n;
    mt__jstep *steps;  /* one per unit, in creation order */
    int32_t *unit_of;  /* per position: the unit producing it, -1 for leaves */
    int32_t *kin;      /* per position: kexpr node of a kernel input / member (scratch) */
} fuse_units;

static mt_status step_alloc(mt__jstep *st, int32_t nin, int32_t nout)
{
    st->in = mt_calloc((size_t)nin + 1, sizeof *st->in);
    st->out = mt_calloc((size_t)nout + 1, sizeof *st->out);
    return st->in && st->out ? MT_OK : MT_ERR_NOMEM;
}

/* The operand of member v at operand index j as a kexpr node (inputs deduplicated). */
static int32_t kernel_operand(fuse_state *s, fuse_units *u, int32_t gid, mt__jstep *st,
                              mt_var v, int32_t j)
{
    const mt_graph *g = s->f->g;
    mt_var w = mt_graph_input(g, v, j);
    int32_t wp = mt__order_pos(s->f, w);
    mt_dtype dt = mt_graph_type(g, w)->dtype;
    if (s->group[wp] == gid) return u->kin[wp];
    if (s->inlined[wp]) {
        mt_scalar val;
        mt_graph_scalar_value(g, w, &val);
        return mt_kexpr_const(&st->kx, val, dt);
    }
    if (s->stamp[wp] != s->cur_stamp) {
        s->stamp[wp] = s->cur_stamp;
        st->in[st->nin] = wp;
        u->kin[wp] = mt_kexpr_input(&st->kx, st->nin, dt);
        st->nin++;
    }
    return u->kin[wp];
}

/* Where each operand of member k comes from at run time (for the shape pass of run_fused):
 * the kernel input index (>= 0), MT__SRC_MEMBER(i) (member i) or MT__SRC_ONES (an inlined
 * constant). */
static void record_sources(fuse_state *s, int32_t gid, mt__jstep *st, int32_t k, mt_var v)
{
    const mt_graph *g = s->f->g;
    for (int32_t j = 0; j < 3; j++) {
        int32_t src = MT__SRC_ONES;
        if (j < mt_graph_ninputs(g, v)) {
            mt_var w = mt_graph_input(g, v, j);
            int32_t wp = mt__order_pos(s->f, w);
            if (s->group[wp] == gid) {
                for (int32_t i = 0; i < k; i++)
                    if (st->members[i] == w) src = MT__SRC_MEMBER(i);
            } else if (!s->inlined[wp]) {
                for (int32_t i = 0; i < st->nin; i++)
                    if (st->in[i] == wp) src = i;
            }
        }
        st->msrc[3 * k + j] = src;
    }
    if (mt_graph_flags(g, v) & MT_NODE_RTCHECK) st->nchecks++;
}

static mt_status build_kernel(fuse_state *s, fuse_units *u, int32_t gid, mt__jstep *st)
{
    const mt_graph *g = s->f->g;
    int32_t n = s->size[gid];
    st->kind = MT__STEP_FUSED;
    st->members = mt_calloc((size_t)n + 1, sizeof *st->members);
    st->out_vars = mt_calloc(MT_MAX_DIMS, sizeof *st->out_vars);
    st->msrc = mt_calloc(3 * (size_t)n + 1, sizeof *st->msrc);
    st->mdims = mt_calloc((size_t)n * MT_MAX_DIMS + 1, sizeof *st->mdims);
    mt_status rc = step_alloc(st, 3 * n, MT_MAX_DIMS);
    if (rc != MT_OK || !st->members || !st->out_vars || !st->msrc || !st->mdims)
        return MT_ERR_NOMEM;
    mt_kexpr_init(&st->kx);
    st->has_kx = true;
    s->cur_stamp++;
    for (int32_t m = s->head[gid]; m >= 0; m = s->next[m]) {
        mt_var v = s->f->order[m];
        int32_t ops[3] = {-1, -1, -1}, nin = mt_graph_ninputs(g, v);
        for (int32_t j = 0; j < nin && j < 3; j++) ops[j] = kernel_operand(s, u, gid, st, v, j);
        u->kin[m] = mt__kexpr_emit_node(g, v, &st->kx, ops);
        st->members[st->nmembers] = v;
        record_sources(s, gid, st, st->nmembers, v);
        st->nmembers++;
        if (st->v == MT_VAR_NONE) st->v = v;
        if (s->ext_use[m]) {
            rc = mt_kexpr_add_output(&st->kx, u->kin[m]);
            if (rc != MT_OK) return mt__node_error(g, v, rc);
            st->out_vars[st->nout] = v;
            st->out[st->nout++] = m;
        }
    }
    if (st->nout == 0) return MT_OK; /* nothing reads it (its users inlined it): a dead step */
    st->v = st->out_vars[0];
    rc = mt_kexpr_validate(&st->kx);
    return rc == MT_OK ? MT_OK : mt__node_error(g, st->v, rc);
}

static mt_status build_node_step(mt_function *f, int32_t pos, mt__jstep *st)
{
    mt_var v = f->order[pos];
    st->kind = MT__STEP_NODE;
    st->v = v;
    st->nin = mt_graph_ninputs(f->g, v);
    st->nout = 1;
    mt_status rc = step_alloc(st, st->nin, 1);
    if (rc != MT_OK) return rc;
    st->out[0] = pos;
    for (int32_t j = 0; j < st->nin; j++) st->in[j] = mt__order_pos(f, mt_graph_input(f->g, v, j));
    if (mt_graph_op(f->g, v) == MT_OP_ELEMWISE) {
        if ((rc = mt__ref_elemwise_kexpr(f->g, v, &st->kx)) != MT_OK)
            return mt__node_error(f->g, v, rc);
        st->has_kx = true;
    }
    return MT_OK;
}

static mt_status build_units(fuse_state *s, fuse_units *u)
{
    mt_function *f = s->f;
    size_t n1 = (size_t)s->n + 1;
    u->steps = mt_calloc(n1, sizeof *u->steps);
    u->unit_of = mt_malloc(n1 * sizeof *u->unit_of);
    u->kin = mt_calloc(n1, sizeof *u->kin);
    if (!u->steps || !u->unit_of || !u->kin) return MT_ERR_NOMEM;
    for (int32_t i = 0; i < s->n; i++) u->unit_of[i] = -1;
    mt_status rc = MT_OK;
    for (int32_t i = 0; i < s->n && rc == MT_OK; i++) {
        mt_op op = mt_graph_op(f->g, f->order[i]);
        if (op == MT_OP_INPUT || op == MT_OP_CONST || s->absorbed[i]) continue;
        int32_t gid = s->group[i];
        if (gid >= 0 && s->head[gid] != i) continue; /* built with its group's head */
        int32_t k = u->n++;
        mt__jstep *st = &u->steps[k];
        if (op == MT_OP_SCAN && s->reach[i]) { /* one step for the loop's live nodes */
            rc = mt__scan_step_init(f, i, s->reach, s->absorbed, st);
            for (int32_t j = 0; j < st->nout; j++) u->unit_of[st->out[j]] = k;
            continue;
        }
        rc = gid >= 0 ? build_kernel(s, u, gid, st) : build_node_step(f, i, st);
        if (gid >= 0)
            for (int32_t m = s->head[gid]; m >= 0; m = s->next[m]) u->unit_of[m] = k;
        else
            u->unit_of[i] = k;
        if (rc == MT_OK && gid >= 0 && s->red_pos[gid] >= 0) {
            int32_t rp = s->red_pos[gid]; /* the step now yields the reduction only */
            st->kind = MT__STEP_REDUCE;
            st->v = f->order[rp];
            st->out[0] = rp;
            u->unit_of[rp] = k;
        }
    }
    return rc;
}

/* ---------------------------------------------------------------- ordering */

void mt__jheap_push(int64_t *h, int32_t *n, int64_t x)
{
    int32_t i = (*n)++;
    h[i] = x;
    while (i > 0 && h[(i - 1) / 2] > h[i]) {
        int32_t p = (i - 1) / 2;
        int64_t t = h[p];
        h[p] = h[i];
        h[i] = t;
        i = p;
    }
}

int64_t mt__jheap_pop(int64_t *h, int32_t *n)
{
    int64_t top = h[0];
    h[0] = h[--(*n)];
    for (int32_t i = 0;;) {
        int32_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < *n && h[l] < h[m]) m = l;
        if (r < *n && h[r] < h[m]) m = r;
        if (m == i) break;
        int64_t t = h[m];
        h[m] = h[i];
        h[i] = t;
        i = m;
    }
    return top;
}

/* order[0..n) = the units in a topological order of their slot dependencies. */
static mt_status order_units(const fuse_units *u, int32_t *order)
{
    int32_t n = u->n, nedges = 0;
    for (int32_t k = 0; k < n; k++) nedges += u->steps[k].nin;
    int32_t *indeg = mt_calloc((size_t)n + 1, sizeof *indeg);
    int32_t *start = mt_calloc((size_t)n + 2, sizeof *start);
    int32_t *adj = mt_malloc(((size_t)nedges + 1) * sizeof *adj);
    int32_t *fill = mt_calloc((size_t)n + 1, sizeof *fill);
    int64_t *heap = mt_malloc(((size_t)n + 1) * sizeof *heap);
    mt_status rc = indeg && start && adj && fill && heap ? MT_OK : MT_ERR_NOMEM;
    for (int32_t k = 0; rc == MT_OK && k < n; k++)
        for (int32_t j = 0; j < u->steps[k].nin; j++) {
            int32_t p = u->unit_of[u->steps[k].in[j]];
            if (p >= 0) {
                start[p + 1]++;
                indeg[k]++;
            }
        }
    for (int32_t k = 0; rc == MT_OK && k < n; k++) start[k + 1] += start[k];
    for (int32_t k = 0; rc == MT_OK && k < n; k++)
        for (int32_t j = 0; j < u->steps[k].nin; j++) {
            int32_t p = u->unit_of[u->steps[k].in[j]];
            if (p >= 0) adj[start[p] + fill[p]++] = k;
        }
    int32_t nh = 0, done = 0;
    for (int32_t k = 0; rc == MT_OK && k < n; k++)
        if (indeg[k] == 0) mt__jheap_push(heap, &nh, k);
    while (rc == MT_OK && nh > 0) {
        int32_t k = (int32_t)mt__jheap_pop(heap, &nh);
        order[done++] = k;
        for (int32_t e = start[k]; e < start[k + 1]; e++)
            if (--indeg[adj[e]] == 0) mt__jheap_push(heap, &nh, adj[e]);
    }
    if (rc == MT_OK && done != n)
        rc = mt_err_set(MT_ERR_INTERNAL, "fusion produced a cycle between kernels (%d of %d "
                        "steps ordered)", (int)done, (int)n);
    mt_free(indeg);
    mt_free(start);
    mt_free(adj);
    mt_free(fill);
    mt_free(heap);
    return rc;
}

/* Moves the needed units into p->steps in order (dropping the dead ones) and the needed
 * leaves into p->leaves. */
static mt_status assemble(mt_function *f, fuse_units *u, const int32_t *order, mt__jplan *p)
{
    bool *needed = mt_calloc((size_t)f->n_order + 1, sizeof *needed);
    bool *live = mt_calloc((size_t)u->n + 1, sizeof *live);
    p->steps = mt_calloc((size_t)u->n + 1, sizeof *p->steps);
    if (!needed || !live || !p->steps) {
        mt_free(needed);
        mt_free(live);
        return MT_ERR_NOMEM;
    }
    for (int32_t i = 0; i < f->n_outputs; i++) needed[p->out_slot[i]] = true;
    for (int32_t i = 0; i < f->n_updates; i++) needed[p->upd_slot[i]] = true;
    for (int32_t r = u->n - 1; r >= 0; r--) {
        const mt__jstep *st = &u->steps[order[r]];
        for (int32_t j = 0; j < st->nout; j++) live[order[r]] |= needed[st->out[j]];
        if (!live[order[r]]) continue;
        for (int32_t j = 0; j < st->nin; j++) needed[st->in[j]] = true;
    }
    for (int32_t r = 0; r < u->n; r++) {
        mt__jstep *st = &u->steps[order[r]];
        if (live[order[r]]) {
            p->steps[p->nsteps++] = *st;
            memset(st, 0, sizeof *st);
        } else {
            mt__step_free(st); /* a dead step: only inlined constants needed it */
        }
    }
    int32_t nl = 0;
    for (int32_t i = 0; i < p->nleaves; i++)
        if (needed[p->leaves[i].slot]) p->leaves[nl++] = p->leaves[i];
    p->nleaves = nl;
    mt_free(needed);
    mt_free(live);
    return MT_OK;
}

/* In-place updates. The new value of a shared variable W computed by a fused kernel is
 * written straight into W's held array (saving a temporary and the copy back) when that is
 * invisible: the kernel is the last step reading W or any view of it (so every other use saw
 * the old value), and neither W (or a view of it) nor the new value is an output of the
 * function or another update's value. run_fused re-checks at run time that the held array fits
 * and is not shared with another variable. */
static mt_status plan_inplace(mt_function *f, mt__jplan *p)
{
    if (f->n_updates == 0) return MT_OK;
    size_t ns = (size_t)p->nslots + 1;
    int32_t *base = mt_malloc(ns * sizeof *base), *prod = mt_malloc(ns * sizeof *prod);
    int32_t *lastread = mt_malloc(((size_t)f->n_shared + 1) * sizeof *lastread);
    bool *bad = mt_calloc((size_t)f->n_shared + 1, sizeof *bad);
    bool *result = mt_calloc(ns, sizeof *result);
    mt_status rc = base && prod && lastread && bad && result ? MT_OK : MT_ERR_NOMEM;
    for (size_t i = 0; rc == MT_OK && i < ns; i++) base[i] = prod[i] = -1;
    for (int32_t k = 0; rc == MT_OK && k < f->n_shared; k++) lastread[k] = -1;
    for (int32_t i = 0; rc == MT_OK && i < p->nleaves; i++)
        if (p->leaves[i].kind == MT__LEAF_SHARED) base[p->leaves[i].slot] = p->leaves[i].index;
    for (int32_t j = 0; rc == MT_OK && j < p->nsteps; j++) {
        const mt__jstep *st = &p->steps[j];
        for (int32_t i = 0; i < st->nin; i++)
            if (base[st->in[i]] >= 0) lastread[base[st->in[i]]] = j;
        for (int32_t o = 0; o < st->nout; o++) prod[st->out[o]] = j;
        if (st->kind == MT__STEP_NODE && st->nin > 0 &&
            mt_op_lowering(mt_graph_op(f->g, st->v)) == MT_LOWER_VIEW)
            base[st->out[0]] = base[st->in[0]];
    }
    for (int32_t i = 0; rc == MT_OK && i < f->n_outputs; i++) {
        result[p->out_slot[i]] = true;
        if (base[p->out_slot[i]] >= 0) bad[base[p->out_slot[i]]] = true;
    }
    for (int32_t u = 0; rc == MT_OK && u < f->n_updates; u++)
        if (base[p->upd_slot[u]] >= 0) bad[base[p->upd_slot[u]]] = true;
    for (int32_t u = 0; rc == MT_OK && u < f->n_updates; u++) {
        int32_t k = f->upd_shared[u], slot = p->upd_slot[u], j = prod[slot];
        bool shared_slot = result[slot];
        for (int32_t v = 0; v < f->n_updates; v++) shared_slot |= v != u && p->upd_slot[v] == slot;
        if (j < 0 || bad[k] || lastread[k] > j || shared_slot) continue;
        mt__jstep *st = &p->steps[j];
        /* A GEMM qualifies when its c operand is the variable itself (beta * W + ...). */
        bool gemm = st->kind == MT__STEP_NODE && mt_graph_op(f->g, st->v) == MT_OP_GEMM &&
                    p->leaves && st->in[2] >= 0 && base[st->in[2]] == k &&
                    mt_graph_op(f->g, f->order[st->in[2]]) == MT_OP_INPUT;
        if (st->kind != MT__STEP_FUSED && !gemm) continue;
        if (!st->inplace) {
            st->inplace = mt_malloc(MT_MAX_DIMS * sizeof *st->inplace);
            if (!st->inplace) {
                rc = MT_ERR_NOMEM;
                break;
            }
            for (int32_t o = 0; o < MT_MAX_DIMS; o++) st->inplace[o] = -1;
        }
        for (int32_t o = 0; o < st->nout; o++)
            if (st->out[o] == slot) st->inplace[o] = k;
    }
    mt_free(base);
    mt_free(prod);
    mt_free(lastread);
    mt_free(bad);
    mt_free(result);
    return rc;
}

mt_status mt__plan_fused(mt_function *f, mt__jplan *p)
{
    memset(p, 0, sizeof *p);
    p->name = "fused";
    p->nslots = f->n_order;
    p->values = mt_calloc((size_t)p->nslots + 1, sizeof *p->values);
    p->out_slot = mt_calloc((size_t)f->n_outputs + 1, sizeof *p->out_slot);
    p->upd_slot = mt_calloc((size_t)f->n_updates + 1, sizeof *p->upd_slot);
    if (!p->values || !p->out_slot || !p->upd_slot) return MT_ERR_NOMEM;
    for (int32_t i = 0; i < f->n_outputs; i++) p->out_slot[i] = mt__order_pos(f, f->out_fast[i]);
    for (int32_t i = 0; i < f->n_updates; i++) p->upd_slot[i] = mt__order_pos(f, f->upd_fast[i]);
    fuse_state s;
    fuse_units u;
    memset(&u, 0, sizeof u);
    int32_t *order = NULL;
    mt_status rc = fuse_init(&s, f);
    if (rc == MT_OK) rc = mt__plan_leaves(f, p);
    if (rc == MT_OK) {
        form_groups(&s);
        mark_external_uses(&s);
        split_wide_groups(&s);
        absorb_reductions(&s);
        rc = build_units(&s, &u);
    }
    if (rc == MT_OK) {
        order = mt_malloc(((size_t)u.n + 1) * sizeof *order);
        rc = order ? order_units(&u, order) : MT_ERR_NOMEM;
    }
    if (rc == MT_OK) rc = assemble(f, &u, order, p);
    if (rc == MT_OK) rc = mt__plan_collectives(f, p, false); /* before in-place planning */
    if (rc == MT_OK) rc = plan_inplace(f, p);
    if (rc == MT_OK) rc = mt__plan_liveness(f, p);
    if (u.steps) { /* units not moved into p (on error) */
        mt__jplan tmp = {.nsteps = u.n, .steps = u.steps};
        mt__plan_free(&tmp);
    }
    mt_free(u.unit_of);
    mt_free(u.kin);
    mt_free(order);
    fuse_free(&s);
    return rc;
}
