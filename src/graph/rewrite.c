/* Graph-level operations over immutable nodes: generic creation (mt_graph_make), rebuilding a
 * node on new operands, recorded replacements and their application, cloning with
 * substitution (also across graphs), topological order, use counts, run-time shape evaluation,
 * the IR verifier and constant-value lookup. Rebuilding walks the dependence graph with an
 * explicit stack (graphs can be deep), so recursion depth never limits graph size; a
 * replacement that would make the graph cyclic is reported instead of looping. */
#include <string.h>

#include "graph_impl.h"

/* ---------------------------------------------------------------- make, rebuild */

mt_var mt_graph_make(mt_graph *g, mt_op op, const mt_op_attrs *attrs, int32_t nin,
                     const mt_var *in)
{
    if (!g) return MT_VAR_NONE;
    if (op == MT_OP_INPUT)
        return mt__fail(g, MT_ERR_INVALID, "make: placeholders are created with "
                        "mt_graph_placeholder");
    mt_op_attrs a;
    mt__attrs_canon(op, attrs, &a);
    if (op == MT_OP_SCAN && !mt__graph_has_body(g, a.body))
        return mt__fail(g, MT_ERR_INVALID, "make: a scan's body must be one of this graph's "
                        "loops (loops are created with mt_graph_scan)");
    if (op == MT_OP_RANDOM) {
        if (a.stream == 0) a.stream = ++g->next_stream;
        if (a.stream > g->next_stream) g->next_stream = a.stream;
    }
    return mt__create(g, op, &a, nin, in);
}

mt_var mt_graph_rebuild(mt_graph *g, mt_var v, const mt_var *new_inputs)
{
    mt__node *n = mt__graph_node(g, v);
    if (!n) return g ? mt__fail(g, MT_ERR_INVALID, "rebuild: invalid variable %d", (int)v) : 0;
    bool same = true;
    for (int32_t i = 0; i < n->nin && same; i++) same = new_inputs[i] == n->in[i];
    if (same) return v;
    mt_provenance saved = g->origin;
    g->origin = n->prov;
    mt_var r = mt__create(g, n->op, &n->attrs, n->nin, new_inputs);
    g->origin = saved;
    return r;
}

/* ---------------------------------------------------------------- replacements */

static bool types_compatible(const mt_type *a, const mt_type *b)
{
    if (a->dtype != b->dtype || a->ndim != b->ndim) return false;
    for (int32_t i = 0; i < a->ndim; i++)
        if (a->shape[i] >= 0 && b->shape[i] >= 0 && a->shape[i] != b->shape[i]) return false;
    return true;
}

mt_var mt_graph_resolve(const mt_graph *g, mt_var v)
{
    const mt__node *n = mt__graph_node(g, v);
    for (int32_t guard = 0; n && n->replaced_by && guard <= g->n; guard++) {
        v = n->replaced_by;
        n = mt__graph_node(g, v);
    }
    return v;
}

mt_status mt_graph_replace(mt_graph *g, mt_var old, mt_var new_var, const char *rule)
{
    mt_var vs[2] = {old, new_var};
    const char *name = rule ? rule : "replace";
    if (!mt__check_vars(g, name, 2, vs)) return g && g->status ? g->status : MT_ERR_INVALID;
    if (old == new_var) return MT_OK;
    mt__node *o = mt__graph_node(g, old), *n = mt__graph_node(g, new_var);
    if (!types_compatible(&o->type, &n->type)) {
        mt_strbuf a, b;
        mt_strbuf_init(&a);
        mt_strbuf_init(&b);
        mt_type_format(&o->type, &a);
        mt_type_format(&n->type, &b);
        mt_status st = mt__fail_status(g, MT_ERR_INVALID, "%s: v%d (%s) cannot be replaced by v%d "
                                       "(%s)", name, (int)old, a.data ? a.data : "",
                                       (int)new_var, b.data ? b.data : "");
        mt_strbuf_deinit(&a);
        mt_strbuf_deinit(&b);
        return st;
    }
    if (mt_graph_resolve(g, new_var) == old)
        return mt__fail_status(g, MT_ERR_INVALID, "%s: replacing v%d by v%d would make a cycle",
                               name, (int)old, (int)new_var);
    o->replaced_by = new_var;
    g->nreplaced++;
    if (new_var > old) {
        if (!n->prov.file && n->prov.source < 0) {
            n->prov.file = o->prov.file;
            n->prov.line = o->prov.line;
            n->prov.source = o->prov.source;
            n->prov.col_begin = o->prov.col_begin;
            n->prov.col_end = o->prov.col_end;
        }
        if (rule) {
            int32_t k = n->prov.nrules;
            const char **rules = mt_arena_alloc(&g->arena, (size_t)(k + 1) * sizeof(char *),
                                                 _Alignof(char *));
            const char *r = mt_arena_strdup(&g->arena, rule);
            if (!rules || !r) return mt__fail_status(g, MT_ERR_NOMEM, "replace: out of memory");
            for (int32_t i = 0; i < k; i++) rules[i] = n->prov.rules[i];
            rules[k] = r;
            n->prov.rules = rules;
            n->prov.nrules = k + 1;
        }
    }
    return MT_OK;
}

/* ---------------------------------------------------------------- the rebuild engine */

enum { ST_NEW = 0, ST_ACTIVE, ST_DONE };

typedef struct engine {
    mt_graph *dst;
    const mt_graph *src;
    int32_t n0;          /* src nodes at the start */
    bool same;           /* dst == src */
    bool use_repl;       /* follow recorded replacements */
    mt_var *map;         /* src var -> dst var */
    mt_var *wait;        /* src var whose result v takes (replacement), or 0 */
    unsigned char *state;
    mt_var *stack;
    int64_t sp, cap;
    int32_t *source_map; /* src source id -> dst source id (+1; 0 unknown) */
} engine;

static bool push(engine *e, mt_var v)
{
    if (e->sp == e->cap) {
        int64_t cap = e->cap ? 2 * e->cap : 256;
        mt_var *s = mt_realloc(e->stack, (size_t)cap * sizeof(mt_var));
        if (!s) return false;
        e->stack = s;
        e->cap = cap;
    }
    e->stack[e->sp++] = v;
    return true;
}

/* Copies a provenance from src into dst's arena (strings and source texts). */
static mt_provenance copy_prov(engine *e, const mt_provenance *p)
{
    mt_provenance r = *p;
    mt_graph *g = e->dst;
    if (p->file) r.file = mt_arena_strdup(&g->arena, p->file);
    if (p->source >= 0 && p->source < e->src->nsources) {
        if (!e->source_map[p->source])
            e->source_map[p->source] = mt_graph_add_source(g, e->src->sources[p->source]) + 1;
        r.source = e->source_map[p->source] - 1;
    }
    if (p->nrules > 0) {
        const char **rules = mt_arena_alloc(&g->arena, (size_t)p->nrules * sizeof(char *),
                                             _Alignof(char *));
        if (rules)
            for (int32_t i = 0; i < p->nrules; i++)
                rules[i] = mt_arena_strdup(&g->arena, p->rules[i]);
        r.rules = rules;
        if (!rules) r.nrules = 0;
    }
    return r;
}

/* A copy of src node v (operands already mapped) in another graph. */
static mt_var copy_node(engine *e, mt_var v, const mt_var *ins)
{
    const mt__node *n = mt__graph_node(e->src, v);
    mt_graph *g = e->dst;
    if (n->op == MT_OP_INPUT) {
        mt_var d = mt_graph_find_placeholder(g, n->name);
        if (d) {
            if (mt_type_equal(mt_graph_type(g, d), &n->type)) return d;
            mt_strbuf a;
            mt_strbuf_init(&a);
            mt_type_format(mt_graph_type(g, d), &a);
            mt__fail(g, MT_ERR_INVALID, "clone: placeholder '%s' exists in the destination with "
                     "type %s", n->name, a.data ? a.data : "");
            mt_strbuf_deinit(&a);
            return MT_VAR_NONE;
        }
    }
    mt_provenance saved = g->origin;
    g->origin = copy_prov(e, &n->prov);
    mt_var r;
    if (n->op == MT_OP_INPUT) {
        r = mt_graph_placeholder(g, n->name, n->type.dtype, n->type.ndim, n->type.shape);
        if (r) mt__graph_node(g, r)->prov = g->origin;
    } else {
        if (n->op == MT_OP_RANDOM && n->attrs.stream > g->next_stream)
            g->next_stream = n->attrs.stream;
        r = mt__create(g, n->op, &n->attrs, n->nin, ins);
    }
    g->origin = saved;
    if (r && n->name && n->op != MT_OP_INPUT) mt_graph_set_name(g, r, n->name);
    return r;
}

/* Builds the result for root (and everything it needs). */
static mt_status build(engine *e, mt_var root)
{
    if (!push(e, root)) return mt__fail_status(e->dst, MT_ERR_NOMEM, "rebuild: out of memory");
    mt_var ins_small[8];
    while (e->sp > 0) {
        mt_var v = e->stack[e->sp - 1];
        if (e->state[v] == ST_DONE) {
            e->sp--;
            continue;
        }
        if (e->wait[v]) {
            mt_var w = e->wait[v];
            if (e->state[w] == ST_DONE) {
                e->map[v] = e->map[w];
                e->state[v] = ST_DONE;
                e->sp--;
            } else if (e->state[w] == ST_ACTIVE) {
                return mt__fail_status(e->dst, MT_ERR_INVALID, "rebuild: replacements form a "
                                       "cycle through v%d", (int)v);
            } else if (!push(e, w)) {
                return mt__fail_status(e->dst, MT_ERR_NOMEM, "rebuild: out of memory");
            }
            continue;
        }
        mt_var r = e->use_repl ? mt_graph_resolve(e->src, v) : v;
        if (r != v) {
            e->wait[v] = r;
            e->state[v] = ST_ACTIVE;
            continue;
        }
        const mt__node *n = mt__graph_node(e->src, v);
        bool pending = false;
        for (int32_t i = n->nin - 1; i >= 0; i--) { /* first operand built first */
            mt_var u = n->in[i];
            if (e->state[u] == ST_DONE) continue;
            if (e->state[u] == ST_ACTIVE)
                return mt__fail_status(e->dst, MT_ERR_INVALID, "rebuild: replacements form a "
                                       "cycle through v%d", (int)u);
            if (!push(e, u)) return mt__fail_status(e->dst, MT_ERR_NOMEM, "rebuild: out of memory");
            pending = true;
        }
        if (pending) {
            e->state[v] = ST_ACTIVE;
            continue;
        }
        mt_var *ins = n->nin <= 8 ? ins_small : mt_malloc((size_t)n->nin * sizeof(mt_var));
        if (!ins) return mt__fail_status(e->dst, MT_ERR_NOMEM, "rebuild: out of memory");
        for (int32_t i = 0; i < n->nin; i++) ins[i] = e->map[n->in[i]];
        mt_var nv = e->same ? mt_graph_rebuild(e->dst, v, ins) : copy_node(e, v, ins);
        if (ins != ins_small) mt_free(ins);
        if (!nv) return e->dst->status ? e->dst->status : MT_ERR_INTERNAL;
        if (e->use_repl && nv != v && nv <= e->n0 && mt_graph_resolve(e->src, nv) != nv) {
            /* the rebuilt node already existed and was itself replaced */
            e->wait[v] = mt_graph_resolve(e->src, nv);
            e->state[v] = ST_ACTIVE;
            continue;
        }
        e->map[v] = nv;
        e->state[v] = ST_DONE;
        e->sp--;
    }
    return MT_OK;
}

static mt_status engine_init(engine *e, mt_graph *dst, const mt_graph *src, bool use_repl)
{
    memset(e, 0, sizeof(*e));
    e->dst = dst;
    e->src = src;
    e->n0 = src->n;
    e->same = dst == src;
    e->use_repl = use_repl;
    size_t n = (size_t)src->n + 1;
    e->map = mt_calloc(n, sizeof(mt_var));
    e->wait = mt_calloc(n, sizeof(mt_var));
    e->state = mt_calloc(n, 1);
    e->source_map = mt_calloc((size_t)src->nsources + 1, sizeof(int32_t));
    if (!e->map || !e->wait || !e->state || !e->source_map)
        return mt__fail_status(dst, MT_ERR_NOMEM, "rebuild: out of memory");
    return MT_OK;
}

static void engine_deinit(engine *e)
{
    mt_free(e->map);
    mt_free(e->wait);
    mt_free(e->state);
    mt_free(e->stack);
    mt_free(e->source_map);
}

mt_status mt_graph_apply_replacements(mt_graph *g, int32_t n_outputs, mt_var *outputs)
{
    if (!g) return MT_ERR_INVALID;
    if (n_outputs > 0 && !mt__check_vars(g, "apply_replacements", n_outputs, outputs))
        return g->status ? g->status : MT_ERR_INVALID;
    if (g->nreplaced == 0) return MT_OK;
    engine e;
    mt_status st = engine_init(&e, g, g, true);
    for (int32_t i = 0; st == MT_OK && i < n_outputs; i++) {
        st = build(&e, outputs[i]);
        if (st == MT_OK) outputs[i] = e.map[outputs[i]];
    }
    engine_deinit(&e);
    return st;
}

mt_status mt_graph_clone_with(mt_graph *dst, const mt_graph *src, int32_t n_outputs,
                              const mt_var *outputs, int32_t n_subst, const mt_var *subst_from,
                              const mt_var *subst_to, mt_var *new_outputs, mt_var *map)
{
    if (!dst || !src) return mt_err_set(MT_ERR_INVALID, "clone: graph is NULL");
    for (int32_t i = 0; i < n_outputs; i++) {
        new_outputs[i] = MT_VAR_NONE;
        if (!mt__graph_node(src, outputs[i]))
            return mt__fail_status(dst, MT_ERR_INVALID, "clone: output %d (v%d) is not a variable "
                                   "of the source graph", (int)i, (int)outputs[i]);
    }
    engine e;
    mt_status st = engine_init(&e, dst, src, false);
    for (int32_t i = 0; st == MT_OK && i < n_subst; i++) {
        if (!mt__graph_node(src, subst_from[i]) || !mt__graph_node(dst, subst_to[i])) {
            st = mt__fail_status(dst, MT_ERR_INVALID, "clone: substitution %d (v%d -> v%d) names "
                                 "an invalid variable", (int)i, (int)subst_from[i],
                                 (int)subst_to[i]);
            break;
        }
        e.map[subst_from[i]] = subst_to[i];
        e.state[subst_from[i]] = ST_DONE;
    }
    for (int32_t i = 0; st == MT_OK && i < n_outputs; i++) {
        st = build(&e, outputs[i]);
        if (st == MT_OK) new_outputs[i] = e.map[outputs[i]];
    }
    if (st == MT_OK && map)
        for (mt_var v = 0; v <= e.n0; v++) map[v] = e.state[v] == ST_DONE ? e.map[v] : 0;
    if (st != MT_OK)
        for (int32_t i = 0; i < n_outputs; i++) new_outputs[i] = MT_VAR_NONE;
    engine_deinit(&e);
    return st;
}

/* ---------------------------------------------------------------- order and uses */

/* Marks the nodes the outputs need (operands always precede users, so one descending sweep
 * suffices). */
static unsigned char *mark_needed(const mt_graph *g, int32_t n_outputs, const mt_var *outputs)
{
    unsigned char *need = mt_calloc((size_t)g->n + 1, 1);
    if (!need) return NULL;
    if (n_outputs <= 0 || !outputs) {
        memset(need + 1, 1, (size_t)g->n);
        return need;
    }
    for (int32_t i = 0; i < n_outputs; i++) need[outputs[i]] = 1;
    for (mt_var v = g->n; v >= 1; v--) {
        if (!need[v]) continue;
        const mt__node *n = mt__graph_node(g, v);
        for (int32_t i = 0; i < n->nin; i++) need[n->in[i]] = 1;
    }
    return need;
}

static mt_status check_outputs(const mt_graph *g, const char *name, int32_t n, const mt_var *outs)
{
    if (!g) return mt_err_set(MT_ERR_INVALID, "%s: graph is NULL", name);
    for (int32_t i = 0; outs && i < n; i++)
        if (!mt__graph_node(g, outs[i]))
            return mt_err_set(MT_ERR_INVALID, "%s: output %d (v%d) is not a variable of the graph",
                              name, (int)i, (int)outs[i]);
    return MT_OK;
}

mt_status mt_graph_toposort(const mt_graph *g, int32_t n_outputs, const mt_var *outputs,
                            mt_var **order, int32_t *n_order)
{
    *order = NULL;
    *n_order = 0;
    mt_status st = check_outputs(g, "toposort", n_outputs, outputs);
    if (st) return st;
    unsigned char *need = mark_needed(g, n_outputs, outputs);
    mt_var *o = mt_malloc(((size_t)g->n + 1) * sizeof(mt_var));
    if (!need || !o) {
        mt_free(need);
        mt_free(o);
        return mt_err_set(MT_ERR_NOMEM, "toposort: out of memory");
    }
    int32_t k = 0;
    for (mt_var v = 1; v <= g->n; v++)
        if (need[v]) o[k++] = v;
    mt_free(need);
    *order = o;
    *n_order = k;
    return MT_OK;
}

mt_status mt_graph_use_counts(const mt_graph *g, int32_t n_outputs, const mt_var *outputs,
                              int32_t **counts)
{
    *counts = NULL;
    mt_status st = check_outputs(g, "use_counts", n_outputs, outputs);
    if (st) return st;
    unsigned char *need = mark_needed(g, n_outputs, outputs);
    int32_t *c = mt_calloc((size_t)g->n + 1, sizeof(int32_t));
    if (!need || !c) {
        mt_free(need);
        mt_free(c);
        return mt_err_set(MT_ERR_NOMEM, "use_counts: out of memory");
    }
    for (mt_var v = 1; v <= g->n; v++) {
        if (!need[v]) continue;
        const mt__node *n = mt__graph_node(g, v);
        for (int32_t i = 0; i < n->nin; i++) c[n->in[i]]++;
    }
    for (int32_t i = 0; outputs && i < n_outputs; i++) c[outputs[i]]++;
    mt_free(need);
    *counts = c;
    return MT_OK;
}

/* ---------------------------------------------------------------- run-time shapes */

/* A dimension whose size was unknown at build time never broadcasts at run time (gradients
 * sum over broadcast dimensions, so they must be known statically): operand i's dims
 * [from, to) (right-aligned with out) must equal out's where the static size was unknown. */
static mt_status no_late_broadcast(const mt_graph *g, const mt__node *n, int32_t i,
                                   const int64_t *rt, int32_t from, int32_t to, const mt_type *out)
{
    const mt_type *st = &mt__graph_node(g, n->in[i])->type;
    int32_t off = out->ndim - st->ndim;
    if (to > st->ndim) to = st->ndim;
    for (int32_t d = from; d < to; d++) {
        int32_t od = d + off;
        if (od < 0 || od >= out->ndim || st->shape[d] >= 0 || rt[d] == out->shape[od]) continue;
        char b[128];
        return mt_err_set(MT_ERR_SHAPE, "%s: operand %d of shape %s has size %lld on axis %d, "
                          "which was unknown when the graph was built and cannot broadcast to "
                          "%lld at run time", mt__op_label(n->op, &n->attrs), (int)i,
                          mt__shape_str(st->ndim, rt, b, sizeof(b)), (long long)rt[d], (int)d,
                          (long long)out->shape[od]);
    }
    return MT_OK;
}

static mt_status check_late_broadcast(const mt_graph *g, const mt__node *n,
                                      const int64_t *const *in_shapes, const mt_type *out)
{
    mt_status st = MT_OK;
    switch (n->op) {
    case MT_OP_ELEMWISE:
        for (int32_t i = 0; i < n->nin && !st; i++)
            st = no_late_broadcast(g, n, i, in_shapes[i], 0, MT_MAX_DIMS, out);
        break;
    case MT_OP_BROADCAST_TO:
    case MT_OP_BROADCAST_LIKE:
        st = no_late_broadcast(g, n, 0, in_shapes[0], 0, MT_MAX_DIMS, out);
        break;
    case MT_OP_GEMM:
        st = no_late_broadcast(g, n, 2, in_shapes[2], 0, MT_MAX_DIMS, out); /* then batch dims */
        /* fall through */
    case MT_OP_MATMUL:
        for (int32_t i = 0; i < 2 && !st; i++)
            st = no_late_broadcast(g, n, i, in_shapes[i], 0, out->ndim - 2, out);
        break;
    case MT_OP_SOFTMAX_XENT_LABELS_DX: { /* gz's axis d is the output's d, or d + 1 from the
                                          * class axis on */
        const mt_type *gt = &mt__graph_node(g, n->in[0])->type;
        int32_t axis = n->attrs.axes[0];
        for (int32_t d = 0; d < gt->ndim && !st; d++) {
            int32_t od = d < axis ? d : d + 1;
            if (gt->shape[d] >= 0 || od >= out->ndim || in_shapes[0][d] == out->shape[od])
                continue;
            char b[128];
            st = mt_err_set(MT_ERR_SHAPE, "%s: the output gradient of shape %s has size %lld on "
                            "axis %d, which was unknown when the graph was built and cannot "
                            "broadcast to %lld at run time", mt__op_label(n->op, &n->attrs),
                            mt__shape_str(gt->ndim, in_shapes[0], b, sizeof(b)),
                            (long long)in_shapes[0][d], (int)d, (long long)out->shape[od]);
        }
        break;
    }
    default:
        break;
    }
    return st;
}

mt_status mt_graph_eval_shape(const mt_graph *g, mt_var v, const int64_t *const *in_shapes,
                              int64_t *out_shape)
{
    const mt__node *n = mt__graph_node(g, v);
    if (!n) return mt_err_set(MT_ERR_INVALID, "eval_shape: invalid variable %d", (int)v);
    mt_type small[4];
    mt_type *types = n->nin <= 4 ? small : mt_malloc((size_t)n->nin * sizeof(mt_type));
    const mt_type *psmall[4] = {NULL, NULL, NULL, NULL};
    const mt_type **ptrs = n->nin <= 4 ? psmall : mt_malloc((size_t)n->nin * sizeof(mt_type *));
    if (!types || !ptrs) {
        if (types != small) mt_free(types);
        if (ptrs != psmall) mt_free(ptrs);
        return mt_err_set(MT_ERR_NOMEM, "eval_shape: out of memory");
    }
    for (int32_t i = 0; i < n->nin; i++) {
        types[i] = mt__graph_node(g, n->in[i])->type;
        for (int32_t d = 0; d < types[i].ndim; d++) types[i].shape[d] = in_shapes[i][d];
        ptrs[i] = &types[i];
    }
    mt_type out;
    bool rt = false;
    mt_status st = mt__infer_node(n->op, &n->attrs, n->nin, ptrs, &out, &rt);
    if (types != small) mt_free(types);
    if (ptrs != psmall) mt_free(ptrs);
    if (st == MT_OK) st = check_late_broadcast(g, n, in_shapes, &out);
    if (st == MT_OK && out.ndim != n->type.ndim)
        st = mt_err_set(MT_ERR_INTERNAL, "%s: run-time ndim %d differs from the node's %d",
                        mt__op_label(n->op, &n->attrs), (int)out.ndim, (int)n->type.ndim);
    for (int32_t d = 0; st == MT_OK && d < out.ndim; d++) {
        if (out.shape[d] < 0)
            st = mt_err_set(MT_ERR_SHAPE, "%s: run-time size of axis %d is unknown",
                            mt__op_label(n->op, &n->attrs), (int)d);
        else if (n->type.shape[d] >= 0 && out.shape[d] != n->type.shape[d])
            st = mt_err_set(MT_ERR_SHAPE, "%s: run-time size %lld of axis %d differs from the "
                            "static size %lld", mt__op_label(n->op, &n->attrs),
                            (long long)out.shape[d], (int)d, (long long)n->type.shape[d]);
    }
    if (st != MT_OK) {
        mt_strbuf sb;
        mt_strbuf_init(&sb);
        mt_strbuf_append(&sb, mt_last_error());
        mt_strbuf_append(&sb, " (at ");
        mt_graph_print_node(g, v, &sb);
        mt_strbuf_append(&sb, ")");
        st = mt_err_set(st, "%s", sb.data ? sb.data : "eval_shape failed");
        mt_strbuf_deinit(&sb);
        return st;
    }
    for (int32_t d = 0; d < out.ndim; d++) out_shape[d] = out.shape[d];
    return MT_OK;
}

/* ---------------------------------------------------------------- verifier */

static mt_status verify_node(const mt_graph *g, mt_var v)
{
    const mt__node *n = mt__graph_node(g, v);
    const char *label = mt__op_label(n->op, &n->attrs);
    if ((unsigned)n->op >= MT_OP_COUNT)
        return mt_err_set(MT_ERR_INTERNAL, "verify: v%d has invalid op %d", (int)v, (int)n->op);
    const mt_op_info *info = &mt__op_table[n->op];
    if (n->nin < info->min_in || (info->max_in >= 0 && n->nin > info->max_in))
        return mt_err_set(MT_ERR_INTERNAL, "verify: v%d (%s) has %d operands", (int)v, label,
                          (int)n->nin);
    const mt_type *small[8];
    const mt_type **types = n->nin <= 8 ? small : mt_malloc((size_t)n->nin * sizeof(*types));
    if (!types) return mt_err_set(MT_ERR_NOMEM, "verify: out of memory");
    mt_status st = MT_OK;
    for (int32_t i = 0; i < n->nin && st == MT_OK; i++) {
        if (n->in[i] <= 0 || n->in[i] >= v)
            st = mt_err_set(MT_ERR_INTERNAL, "verify: v%d (%s) operand %d is v%d, not an earlier "
                            "node", (int)v, label, (int)i, (int)n->in[i]);
        else
            types[i] = &mt__graph_node(g, n->in[i])->type;
    }
    mt_type t;
    bool rt = false;
    if (st == MT_OK && mt__infer_node(n->op, &n->attrs, n->nin, types, &t, &rt) != MT_OK)
        st = mt_err_set(MT_ERR_INTERNAL, "verify: v%d (%s) no longer type-checks: %s", (int)v,
                        label, mt_last_error());
    if (types != small) mt_free(types);
    if (st) return st;
    if (!mt_type_equal(&t, &n->type) || rt != ((n->flags & MT_NODE_RTCHECK) != 0))
        return mt_err_set(MT_ERR_INTERNAL, "verify: v%d (%s) type or check flag differs from "
                          "re-inference", (int)v, label);
    mt_op_attrs a;
    mt__attrs_canon(n->op, &n->attrs, &a);
    if (memcmp(&a, &n->attrs, sizeof(a)) != 0)
        return mt_err_set(MT_ERR_INTERNAL, "verify: v%d (%s) attributes are not canonical",
                          (int)v, label);
    if (n->op == MT_OP_CONST &&
        (n->attrs.nbytes != (size_t)mt_type_numel(&n->type) * mt_dtype_size(n->type.dtype) ||
         (n->attrs.nbytes && mt_hash64(n->attrs.data, n->attrs.nbytes, 0x636f6e7374ull) !=
                                 n->attrs.data_hash)))
        return mt_err_set(MT_ERR_INTERNAL, "verify: v%d (const) data does not match its size or "
                          "hash", (int)v);
    if (n->hash != mt__node_key_hash(n))
        return mt_err_set(MT_ERR_INTERNAL, "verify: v%d (%s) hash-consing key changed", (int)v,
                          label);
    if (!info->never_merge && mt__table_lookup(g, n) != v)
        return mt_err_set(MT_ERR_INTERNAL, "verify: v%d (%s) is not the table's node for its key "
                          "(v%d is)", (int)v, label, (int)mt__table_lookup(g, n));
    if (n->replaced_by) {
        const mt__node *r = mt__graph_node(g, n->replaced_by);
        if (!r || !types_compatible(&n->type, &r->type))
            return mt_err_set(MT_ERR_INTERNAL, "verify: v%d replacement v%d is invalid", (int)v,
                              (int)n->replaced_by);
    }
    return MT_OK;
}

mt_status mt_graph_verify(const mt_graph *g)
{
    if (!g) return mt_err_set(MT_ERR_INVALID, "verify: graph is NULL");
    mt_status st = mt__op_table_check();
    for (mt_var v = 1; st == MT_OK && v <= g->n; v++) st = verify_node(g, v);
    return st;
}

/* ---------------------------------------------------------------- constant values */

static mt_scalar scalar_to(const mt_scalar *s, mt_dtype dt)
{
    unsigned char buf[16] = {0};
    mt_scalar_store(s, dt, buf);
    mt_scalar r;
    memset(&r, 0, sizeof(r));
    switch (mt_dtype_kind(dt)) {
    case 'b': r.v.b = buf[0] != 0; break;
    case 'i': mt_dtype_convert(&r.v.i, MT_INT64, 8, buf, dt, 0, 1); break;
    case 'u': mt_dtype_convert(&r.v.u, MT_UINT64, 8, buf, dt, 0, 1); break;
    default: mt_dtype_convert(&r.v.f, MT_FLOAT64, 8, buf, dt, 0, 1); break;
    }
    r.dtype = dt;
    return r;
}

bool mt_graph_scalar_value(const mt_graph *g, mt_var v, mt_scalar *out)
{
    const mt__node *n = mt__graph_node(g, v);
    for (int32_t depth = 0; n && depth < 64; depth++) {
        switch (n->op) {
        case MT_OP_CONST: {
            int64_t numel = mt_type_numel(&n->type);
            size_t sz = mt_dtype_size(n->type.dtype);
            if (numel < 1) return false;
            const unsigned char *p = n->attrs.data;
            for (int64_t i = 1; i < numel; i++)
                if (memcmp(p, p + (size_t)i * sz, sz) != 0) return false;
            *out = mt__const_elem(n, 0);
            return true;
        }
        case MT_OP_ELEMWISE:
            if (n->attrs.sop != MT_SOP_CAST) return false;
            if (!mt_graph_scalar_value(g, n->in[0], out)) return false;
            *out = scalar_to(out, n->type.dtype);
            return true;
        case MT_OP_DIMSHUFFLE: case MT_OP_RESHAPE: case MT_OP_BROADCAST_TO:
        case MT_OP_BROADCAST_LIKE: case MT_OP_STOP_GRADIENT: case MT_OP_GRAD_CLIP:
        case MT_OP_SHAPE_ASSERT: case MT_OP_SLICE:
            if (n->op == MT_OP_SLICE && mt_type_numel(&n->type) == 0) return false;
            n = mt__graph_node(g, n->in[0]);
            break;
        default:
            return false;
        }
    }
    return false;
}
