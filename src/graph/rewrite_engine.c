/* The rewrite engine: the rule registry, options and statistics, the cost of a graph, and
 * mt_graph_optimize, which runs the phases as sweeps over the live graph.
 *
 * A sweep visits the nodes the outputs need in topological order. Each node is first rebuilt on
 * its operands' final versions (mt_graph_rebuild; hash-consing merges equal nodes), then the
 * phase's rules are tried on it; an accepted replacement becomes the node's final version and
 * its users are rebuilt on it later in the same sweep. New interior nodes a rule creates are
 * visited by the next sweep; sweeps repeat until nothing applies.
 *
 * Termination is enforced, not hoped for: the engine keeps exact use counts of the conceptual
 * graph while it sweeps (what the outputs would need if the sweep stopped here), so for every
 * proposed replacement it knows precisely which nodes become live (the replacement's new part)
 * and which become dead (the replaced node and what only it used). The change of the cost
 * (P, N, W, D) over those nodes must be lexicographically negative, else the replacement is
 * undone and refused; D (heights) only breaks ties and then also requires the replacement not
 * to be taller than the node, so no user grows taller. The cost is a tuple of naturals, hence
 * well-founded, and every accepted step decreases it. Use counts are changed through an undo
 * log so a refused replacement leaves no trace except garbage nodes. */
#include <stdlib.h>
#include <string.h>

#include "rewrite_impl.h"

/* ---------------------------------------------------------------- registry */

typedef struct family {
    const mt__rule *rules;
    const int32_t *count;
} family;

/* Order of trial within a phase: folding first, then simplification, shapes, stability, BLAS. */
static const family families[] = {
    {mt__rules_fold, &mt__rules_fold_count},
    {mt__rules_algebra, &mt__rules_algebra_count},
    {mt__rules_shape, &mt__rules_shape_count},
    {mt__rules_stability, &mt__rules_stability_count},
    {mt__rules_blas, &mt__rules_blas_count},
};
#define NFAMILIES ((int32_t)(sizeof(families) / sizeof(families[0])))

int32_t mt_rewrite_count(void)
{
    int32_t n = 0;
    for (int32_t f = 0; f < NFAMILIES; f++) n += *families[f].count;
    MT_ASSERT(n <= MT_REWRITE_MAX_RULES);
    return n;
}

static const mt__rule *rule_at(int32_t i)
{
    if (i < 0) return NULL;
    for (int32_t f = 0; f < NFAMILIES; f++) {
        if (i < *families[f].count) return &families[f].rules[i];
        i -= *families[f].count;
    }
    return NULL;
}

const mt_rewrite_info *mt_rewrite_get(int32_t i)
{
    const mt__rule *r = rule_at(i);
    return r ? &r->info : NULL;
}

int32_t mt_rewrite_find(const char *name)
{
    if (!name) return -1;
    int32_t n = mt_rewrite_count();
    for (int32_t i = 0; i < n; i++)
        if (strcmp(rule_at(i)->info.name, name) == 0) return i;
    return -1;
}

mt_status mt_rewrite_check_names(int32_t n, const char *const *names)
{
    if (n < 0 || (n > 0 && !names))
        return mt_err_set(MT_ERR_INVALID, "rewrite options: bad list of %d disabled rewrites",
                          (int)n);
    for (int32_t i = 0; i < n; i++) {
        if (mt_rewrite_find(names[i]) >= 0) continue;
        mt_strbuf sb;
        mt_strbuf_init(&sb);
        int32_t count = mt_rewrite_count();
        for (int32_t k = 0; k < count; k++)
            mt_strbuf_appendf(&sb, "%s%s", k ? ", " : "", rule_at(k)->info.name);
        mt_status st = mt_err_set(MT_ERR_INVALID, "unknown rewrite '%s'; known rewrites: %s",
                                  names[i] ? names[i] : "(null)", sb.data ? sb.data : "");
        mt_strbuf_deinit(&sb);
        return st;
    }
    return MT_OK;
}

const char *mt_rewrite_phase_name(mt_rewrite_phase phase)
{
    static const char *const names[MT_REWRITE_PHASE_COUNT] = {
        "canonicalize", "stabilize", "specialize", "fuse", "memory"};
    return (unsigned)phase < MT_REWRITE_PHASE_COUNT ? names[phase] : "invalid";
}

const char *mt_rewrite_soundness_name(mt_rewrite_soundness s)
{
    static const char *const names[MT_REWRITE_SOUNDNESS_COUNT] = {"exact", "guarded", "finite"};
    return (unsigned)s < MT_REWRITE_SOUNDNESS_COUNT ? names[s] : "invalid";
}

/* ---------------------------------------------------------------- options and statistics */

void mt_rewrite_options_init(mt_rewrite_options *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->last_phase = MT_REWRITE_SPECIALIZE;
    opts->fold_max_elements = 4096;
    opts->max_rewrites_per_node = 8;
#ifdef NDEBUG
    const char *env = getenv("MLTRAIN_REWRITE_VERIFY");
    opts->verify = env && env[0] == '1';
#else
    opts->verify = true;
#endif
}

int64_t mt_rewrite_stats_count(const mt_rewrite_stats *stats, const char *name)
{
    int32_t i = mt_rewrite_find(name);
    return stats && i >= 0 ? stats->applied[i] : 0;
}

mt_status mt_rewrite_stats_format(const mt_rewrite_stats *stats, mt_strbuf *sb)
{
    mt_strbuf_appendf(sb, "rewrites: %lld applied", (long long)stats->total);
    bool first = true;
    for (int32_t i = 0; i < stats->n_rules && i < MT_REWRITE_MAX_RULES; i++) {
        if (!stats->applied[i]) continue;
        mt_strbuf_appendf(sb, "%s%s %lld", first ? " (" : ", ", rule_at(i)->info.name,
                          (long long)stats->applied[i]);
        first = false;
    }
    if (!first) mt_strbuf_append(sb, ")");
    mt_strbuf_appendf(sb, ", %lld rejected, %d+%d+%d sweeps, %d -> %d nodes, %.3f ms",
                      (long long)stats->rejected, (int)stats->sweeps[0], (int)stats->sweeps[1],
                      (int)stats->sweeps[2], (int)stats->nodes_before, (int)stats->nodes_after,
                      stats->seconds * 1e3);
    return mt_strbuf_status(sb);
}

/* ---------------------------------------------------------------- cost */

/* Weight of an elementwise scalar op: a rank from generic to specialized, so that replacing a
 * generic op by a specialized one (x * recip(y) -> x / y, exp(x) - 1 -> expm1(x)) lowers W. */
static int64_t sop_weight(mt_sop sop)
{
    switch (sop) {
    case MT_SOP_ADD: case MT_SOP_SUB: case MT_SOP_MUL: return 12;
    case MT_SOP_DIV: return 11;
    case MT_SOP_POW: return 12;
    case MT_SOP_WHERE: return 8;
    case MT_SOP_EXPM1: case MT_SOP_LOG1P: case MT_SOP_LOG1MEXP: case MT_SOP_SIGMOID:
    case MT_SOP_SOFTPLUS: case MT_SOP_LOGADDEXP: return 6;
    case MT_SOP_RECIP: case MT_SOP_CAST: return 5;
    case MT_SOP_NEG: return 4;
    default: return 10;
    }
}

void mt__rw_node_pw(const mt_graph *g, mt_var v, int64_t *penalty, int64_t *weight)
{
    const mt__node *n = mt__graph_node(g, v);
    int64_t p = 0, w = 10;
    switch (n->op) {
    case MT_OP_CONST: p = 0; w = 0; break;
    case MT_OP_INPUT: w = 1; break;
    case MT_OP_ELEMWISE:
        w = sop_weight(n->attrs.sop);
        if (n->attrs.sop == MT_SOP_LOG) p = 4;
        else if (n->attrs.sop == MT_SOP_LOG1P) p = 2;
        else if (n->attrs.sop == MT_SOP_POW) p = 2;
        break;
    case MT_OP_REDUCE: p = 1; w = 8; break;
    case MT_OP_LOGSUMEXP: case MT_OP_SOFTMAX: case MT_OP_LOGSOFTMAX: case MT_OP_SOFTMAX_XENT:
    case MT_OP_SOFTMAX_XENT_LABELS: case MT_OP_SOFTMAX_XENT_LABELS_DX: w = 3; break;
    case MT_OP_XENT: case MT_OP_XENT_LABELS: w = 8; break;
    case MT_OP_MATMUL: w = 20; break;
    case MT_OP_GEMM: w = 4 - (n->attrs.trans_a ? 1 : 0) - (n->attrs.trans_b ? 1 : 0); break;
    case MT_OP_DIMSHUFFLE: case MT_OP_RESHAPE: case MT_OP_SLICE: w = 2; break;
    case MT_OP_BROADCAST_TO: case MT_OP_BROADCAST_LIKE: w = 1; break;
    default: break;
    }
    *penalty = p;
    *weight = w;
}

int mt_rewrite_cost_compare(const mt_rewrite_cost *a, const mt_rewrite_cost *b)
{
    const int64_t x[4] = {a->penalty, a->nodes, a->weight, a->height};
    const int64_t y[4] = {b->penalty, b->nodes, b->weight, b->height};
    for (int i = 0; i < 4; i++)
        if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
    return 0;
}

/* Heights of nodes 1..n (operands precede users, so one forward pass). */
static int32_t *all_heights(const mt_graph *g)
{
    int32_t n = mt_graph_size(g);
    int32_t *h = mt_calloc((size_t)n + 1, sizeof(int32_t));
    if (!h) return NULL;
    for (mt_var v = 1; v <= n; v++) {
        const mt__node *nd = mt__graph_node(g, v);
        int32_t m = -1;
        for (int32_t i = 0; i < nd->nin; i++)
            if (h[nd->in[i]] > m) m = h[nd->in[i]];
        h[v] = m + 1;
    }
    return h;
}

static void cost_add(const mt_graph *g, mt_var v, int32_t height, mt_rewrite_cost *c, int sign)
{
    if (mt_graph_op(g, v) == MT_OP_CONST) return;
    int64_t p, w;
    mt__rw_node_pw(g, v, &p, &w);
    c->penalty += sign * p;
    c->nodes += sign;
    c->weight += sign * w;
    c->height += sign * (int64_t)height;
}

mt_status mt_rewrite_graph_cost(const mt_graph *g, int32_t n_outputs, const mt_var *outputs,
                                mt_rewrite_cost *out)
{
    memset(out, 0, sizeof(*out));
    mt_var *order = NULL;
    int32_t n = 0;
    mt_status st = mt_graph_toposort(g, n_outputs, outputs, &order, &n);
    if (st) return st;
    int32_t *h = all_heights(g);
    if (!h) {
        mt_free(order);
        return mt_err_set(MT_ERR_NOMEM, "rewrite cost: out of memory");
    }
    for (int32_t i = 0; i < n; i++) cost_add(g, order[i], h[order[i]], out, 1);
    mt_free(h);
    mt_free(order);
    return MT_OK;
}

/* ---------------------------------------------------------------- engine state */

typedef struct undo {
    mt_var v;
    int32_t old;
} undo;

typedef struct engine {
    mt_graph *g;
    mt__rw_ctx cx;
    const mt_rewrite_options *opts;
    mt_rewrite_stats *stats;
    bool *disabled;         /* per rule index */
    int32_t *cur;           /* use counts of the conceptual graph, by handle */
    int32_t *height;        /* memoized heights, valid for 1..hdone */
    int32_t cap, hdone;
    undo *log;
    int64_t nlog, logcap;
    mt_var *born, *died, *stack;
    int64_t nborn, ndied, nstack, bcap, dcap, scap;
    bool inconsistent; /* a use count would have gone negative: the step is refused */
} engine;

static mt_status nomem(void)
{
    return mt_err_set(MT_ERR_NOMEM, "rewrite: out of memory");
}

/* Makes cur[] and height[] cover every handle of the graph. */
static mt_status ensure_cap(engine *e)
{
    int32_t need = mt_graph_size(e->g) + 1;
    if (need <= e->cap) return MT_OK;
    int32_t cap = e->cap ? e->cap : 1024;
    while (cap < need) cap *= 2;
    int32_t *c = mt_realloc(e->cur, (size_t)cap * sizeof(int32_t));
    if (!c) return nomem();
    e->cur = c;
    int32_t *h = mt_realloc(e->height, (size_t)cap * sizeof(int32_t));
    if (!h) return nomem();
    e->height = h;
    memset(e->cur + e->cap, 0, (size_t)(cap - e->cap) * sizeof(int32_t));
    e->cap = cap;
    return MT_OK;
}

/* Height of v (nodes are immutable, so heights never change once computed). */
static int32_t height_of(engine *e, mt_var v)
{
    while (e->hdone < v) {
        mt_var u = ++e->hdone;
        const mt__node *n = mt__graph_node(e->g, u);
        int32_t m = -1;
        for (int32_t i = 0; i < n->nin; i++)
            if (e->height[n->in[i]] > m) m = e->height[n->in[i]];
        e->height[u] = m + 1;
    }
    return e->height[v];
}

static bool push_var(mt_var **arr, int64_t *n, int64_t *cap, mt_var v)
{
    if (*n == *cap) {
        int64_t c = *cap ? 2 * *cap : 256;
        mt_var *a = mt_realloc(*arr, (size_t)c * sizeof(mt_var));
        if (!a) return false;
        *arr = a;
        *cap = c;
    }
    (*arr)[(*n)++] = v;
    return true;
}

static bool set_cur(engine *e, mt_var v, int32_t val)
{
    if (e->nlog == e->logcap) {
        int64_t c = e->logcap ? 2 * e->logcap : 256;
        undo *l = mt_realloc(e->log, (size_t)c * sizeof(undo));
        if (!l) return false;
        e->log = l;
        e->logcap = c;
    }
    e->log[e->nlog].v = v;
    e->log[e->nlog].old = e->cur[v];
    e->nlog++;
    e->cur[v] = val;
    return true;
}

static void undo_all(engine *e)
{
    while (e->nlog > 0) {
        e->nlog--;
        e->cur[e->log[e->nlog].v] = e->log[e->nlog].old;
    }
}

/* Adds k uses to v; a node that was dead becomes live and takes one use of each operand. */
static bool acquire(engine *e, mt_var v, int32_t k)
{
    int32_t old = e->cur[v];
    if (!set_cur(e, v, old + k)) return false;
    if (old > 0) return true;
    e->nstack = 0;
    if (!push_var(&e->stack, &e->nstack, &e->scap, v)) return false;
    while (e->nstack > 0) {
        mt_var u = e->stack[--e->nstack];
        if (!push_var(&e->born, &e->nborn, &e->bcap, u)) return false;
        const mt__node *n = mt__graph_node(e->g, u);
        for (int32_t i = 0; i < n->nin; i++) {
            mt_var o = n->in[i];
            int32_t c = e->cur[o];
            if (!set_cur(e, o, c + 1)) return false;
            if (c == 0 && !push_var(&e->stack, &e->nstack, &e->scap, o)) return false;
        }
    }
    return true;
}

/* Removes k uses from v; a node left without uses dies and releases its operands. A count
 * that would go negative means the bookkeeping lost track of a reference (a replacement that
 * hash-consed onto a node of the old graph); the step is then marked inconsistent and refused
 * rather than trusted. */
static bool release(engine *e, mt_var v, int32_t k)
{
    int32_t old = e->cur[v];
    if (old < k) {
        e->inconsistent = true;
        return true;
    }
    if (!set_cur(e, v, old - k)) return false;
    if (old - k > 0) return true;
    e->nstack = 0;
    if (!push_var(&e->stack, &e->nstack, &e->scap, v)) return false;
    while (e->nstack > 0) {
        mt_var u = e->stack[--e->nstack];
        if (!push_var(&e->died, &e->ndied, &e->dcap, u)) return false;
        const mt__node *n = mt__graph_node(e->g, u);
        for (int32_t i = 0; i < n->nin; i++) {
            mt_var o = n->in[i];
            int32_t c = e->cur[o];
            if (c < 1) {
                e->inconsistent = true;
                continue;
            }
            if (!set_cur(e, o, c - 1)) return false;
            if (c == 1 && !push_var(&e->stack, &e->nstack, &e->scap, o)) return false;
        }
    }
    return true;
}

/* ---------------------------------------------------------------- one replacement */

/* Applies v1 -> v2 to the use counts and decides from the exact cost change whether to keep
 * it. Returns MT_OK with *accepted; on refusal the counts are restored. */
static mt_status try_replace(engine *e, mt_var v1, mt_var v2, bool *accepted)
{
    *accepted = false;
    mt_status st = ensure_cap(e);
    if (st) return st;
    e->nlog = e->nborn = e->ndied = 0;
    e->inconsistent = false;
    int32_t t = e->cur[v1];
    if (!acquire(e, v2, t) || !release(e, v1, t)) return nomem();
    if (e->inconsistent) {
        undo_all(e);
        e->nlog = 0;
        return MT_OK;
    }
    mt_rewrite_cost d;
    memset(&d, 0, sizeof(d));
    for (int64_t i = 0; i < e->nborn; i++)
        cost_add(e->g, e->born[i], height_of(e, e->born[i]), &d, 1);
    for (int64_t i = 0; i < e->ndied; i++)
        cost_add(e->g, e->died[i], height_of(e, e->died[i]), &d, -1);
    const mt_rewrite_cost zero = {0, 0, 0, 0};
    mt_rewrite_cost pnw = d;
    pnw.height = 0;
    int c = mt_rewrite_cost_compare(&pnw, &zero);
    if (c < 0)
        *accepted = true;
    else if (c == 0)
        *accepted = d.height < 0 && height_of(e, v2) <= height_of(e, v1);
    if (!*accepted) undo_all(e);
    e->nlog = 0;
    return MT_OK;
}

/* A node rebuilt on new operands takes over the old node's uses. The old node's references to
 * its operands already sit on the operands' new versions (they moved when those were mapped),
 * which are the rebuilt node's operands; if the rebuilt node was already live (hash-consing
 * merged it with another), those references are duplicates and are released. */
static mt_status transfer_rebuild(engine *e, mt_var v, mt_var v1)
{
    mt_status st = ensure_cap(e);
    if (st) return st;
    e->nlog = e->nborn = e->ndied = 0;
    int32_t t = e->cur[v];
    int32_t old = e->cur[v1];
    bool ok = set_cur(e, v, 0) && set_cur(e, v1, old + t);
    if (ok && old > 0) {
        const mt__node *n = mt__graph_node(e->g, v1);
        for (int32_t i = 0; ok && i < n->nin; i++) ok = release(e, n->in[i], 1);
    }
    e->nlog = 0;
    return ok ? MT_OK : nomem();
}

/* ---------------------------------------------------------------- one node */

static bool rule_matches_root(const mt__rule *r, const mt__node *n)
{
    if (r->root_op != MT_OP_COUNT && r->root_op != n->op) return false;
    if (r->root_op == MT_OP_ELEMWISE && r->root_sop != MT_SOP_COUNT &&
        r->root_sop != n->attrs.sop)
        return false;
    return true;
}

static mt_status rule_error(engine *e, const mt__rule *r, mt_var v)
{
    mt_status st = mt_graph_status(e->g);
    return mt_err_set(st == MT_ERR_NOMEM ? st : MT_ERR_INTERNAL,
                      "rewrite '%s' failed on v%d: %s", r->info.name, (int)v,
                      mt_graph_last_error(e->g));
}

static mt_status type_error(engine *e, const mt__rule *r, mt_var v, mt_var v2)
{
    mt_strbuf a, b;
    mt_strbuf_init(&a);
    mt_strbuf_init(&b);
    mt_type_format(mt_graph_type(e->g, v), &a);
    mt_type_format(mt_graph_type(e->g, v2), &b);
    mt_status st = mt_err_set(MT_ERR_INTERNAL, "rewrite '%s': replacement v%d of v%d has type "
                              "%s, expected %s", r->info.name, (int)v2, (int)v,
                              b.data ? b.data : "", a.data ? a.data : "");
    mt_strbuf_deinit(&a);
    mt_strbuf_deinit(&b);
    return st;
}

/* Tries the phase's rules on v (live, on final operands) until none applies or the per-node
 * limit is reached. *out receives the final version. */
static mt_status rewrite_node(engine *e, uint32_t phase_bit, mt_var v, mt_var *out, bool *changed)
{
    int32_t nrules = mt_rewrite_count();
    int32_t limit = e->opts->max_rewrites_per_node;
    for (int32_t round = 0; round < limit; round++) {
        bool applied = false;
        const mt__node *n = mt__graph_node(e->g, v);
        for (int32_t i = 0; i < nrules && !applied; i++) {
            const mt__rule *r = rule_at(i);
            if (!(r->info.phases & phase_bit) || e->disabled[i] || !rule_matches_root(r, n))
                continue;
            mt_provenance saved = e->g->origin;
            e->cx.rule_name = r->info.name;
            e->cx.began = false;
            mt_var v2 = r->fn(&e->cx, v);
            if (e->cx.began) e->g->origin = saved;
            if (mt_graph_status(e->g) != MT_OK) return rule_error(e, r, v);
            if (!v2 || v2 == v) continue;
            if (!mt__rw_fits(e->g, v2, v)) return type_error(e, r, v, v2);
            bool ok;
            mt_status st = try_replace(e, v, v2, &ok);
            if (st) return st;
            if (!ok) {
                e->stats->rejected++;
                continue;
            }
            e->stats->applied[i]++;
            e->stats->total++;
            *changed = true;
            applied = true;
            v = v2;
        }
        if (!applied) break;
    }
    *out = v;
    return MT_OK;
}

/* ---------------------------------------------------------------- sweeps and phases */

static mt_status sweep(engine *e, uint32_t phase_bit, int32_t n_out, mt_var *outs, bool *changed)
{
    mt_graph *g = e->g;
    mt_var *order = NULL, *map = NULL;
    int32_t *uses = NULL;
    int32_t n = 0;
    *changed = false;
    mt_status st = mt_graph_toposort(g, n_out, outs, &order, &n);
    if (st == MT_OK) st = mt_graph_use_counts(g, n_out, outs, &uses);
    if (st == MT_OK) st = ensure_cap(e);
    int32_t n0 = mt_graph_size(g);
    if (st == MT_OK && !(map = mt_calloc((size_t)n0 + 1, sizeof(mt_var)))) st = nomem();
    if (st == MT_OK) {
        memset(e->cur, 0, (size_t)e->cap * sizeof(int32_t));
        for (int32_t i = 0; i < n; i++) e->cur[order[i]] = uses[order[i]];
    }
    mt_var small[8];
    for (int32_t i = 0; st == MT_OK && i < n; i++) {
        mt_var v = order[i];
        const mt__node *nd = mt__graph_node(g, v);
        mt_var *ins = nd->nin <= 8 ? small : mt_malloc((size_t)nd->nin * sizeof(mt_var));
        if (!ins) {
            st = nomem();
            break;
        }
        for (int32_t k = 0; k < nd->nin; k++) ins[k] = map[nd->in[k]];
        mt_var v1 = mt_graph_rebuild(g, v, ins);
        if (ins != small) mt_free(ins);
        if (!v1) {
            st = mt_err_set(MT_ERR_INTERNAL, "rewrite: rebuilding v%d failed: %s", (int)v,
                            mt_graph_last_error(g));
            break;
        }
        if (v1 != v) st = transfer_rebuild(e, v, v1);
        if (st == MT_OK && e->cur[v1] > 0) st = rewrite_node(e, phase_bit, v1, &v1, changed);
        map[v] = v1;
    }
    if (st == MT_OK)
        for (int32_t i = 0; i < n_out; i++) outs[i] = map[outs[i]];
    mt_free(order);
    mt_free(uses);
    mt_free(map);
    return st;
}

static mt_status run_phase(engine *e, mt_rewrite_phase phase, bool fold, int32_t max_sweeps,
                           int32_t n_out, mt_var *outs)
{
    e->cx.fold_enabled = fold;
    for (int32_t s = 0; s < max_sweeps; s++) {
        mt_rewrite_cost before, after;
        mt_status st = MT_OK;
        if (e->opts->verify) st = mt_rewrite_graph_cost(e->g, n_out, outs, &before);
        bool changed = false;
        int64_t applied0 = e->stats->total;
        if (st == MT_OK) st = sweep(e, 1u << phase, n_out, outs, &changed);
        if (st) return st;
        e->stats->sweeps[phase]++;
        if (!changed) return MT_OK;
        if (e->opts->verify) {
            st = mt_rewrite_graph_cost(e->g, n_out, outs, &after);
            if (st) return st;
            if (mt_rewrite_cost_compare(&after, &before) >= 0)
                return mt_err_set(MT_ERR_INTERNAL, "rewrite: a %s sweep applied %lld rewrites "
                                  "but the graph cost did not decrease ((%lld, %lld, %lld, %lld) "
                                  "-> (%lld, %lld, %lld, %lld))", mt_rewrite_phase_name(phase),
                                  (long long)(e->stats->total - applied0),
                                  (long long)before.penalty, (long long)before.nodes,
                                  (long long)before.weight, (long long)before.height,
                                  (long long)after.penalty, (long long)after.nodes,
                                  (long long)after.weight, (long long)after.height);
        }
    }
    mt_log(MT_LOG_WARN, "rewrite: %s stopped after %d sweeps with rewrites still applying",
           mt_rewrite_phase_name(phase), (int)max_sweeps);
    return MT_OK;
}

static mt_status check_options(const mt_rewrite_options *o)
{
    mt_status st = mt_rewrite_check_names(o->n_disabled, o->disabled);
    if (st) return st;
    if ((unsigned)o->last_phase >= MT_REWRITE_PHASE_COUNT)
        return mt_err_set(MT_ERR_INVALID, "rewrite options: invalid last phase %d",
                          (int)o->last_phase);
    if (o->fold_max_elements < 0 || o->max_rewrites_per_node < 1)
        return mt_err_set(MT_ERR_INVALID, "rewrite options: fold_max_elements (%lld) must be >= "
                          "0 and max_rewrites_per_node (%d) >= 1",
                          (long long)o->fold_max_elements, (int)o->max_rewrites_per_node);
    return MT_OK;
}

static int32_t live_count(const mt_graph *g, int32_t n_out, const mt_var *outs)
{
    mt_var *order = NULL;
    int32_t n = 0;
    if (mt_graph_toposort(g, n_out, outs, &order, &n) != MT_OK) return -1;
    mt_free(order);
    return n;
}

static mt_status run_all(engine *e, int32_t n_out, mt_var *outs)
{
    const int32_t max_sweeps = 256;
    mt_rewrite_phase last = e->opts->last_phase;
    /* stabilize once without folding, so unstable constant subexpressions are not folded */
    mt_status st = run_phase(e, MT_REWRITE_STABILIZE, false, max_sweeps, n_out, outs);
    if (st == MT_OK) st = run_phase(e, MT_REWRITE_CANONICALIZE, true, max_sweeps, n_out, outs);
    if (st == MT_OK && last >= MT_REWRITE_STABILIZE)
        st = run_phase(e, MT_REWRITE_STABILIZE, true, max_sweeps, n_out, outs);
    if (st == MT_OK && last >= MT_REWRITE_SPECIALIZE)
        st = run_phase(e, MT_REWRITE_SPECIALIZE, true, max_sweeps, n_out, outs);
    return st;
}

mt_status mt_graph_optimize(mt_graph *g, int32_t n_outputs, mt_var *outputs,
                            const mt_rewrite_options *opts, mt_rewrite_stats *stats)
{
    double t0 = mt_now_seconds();
    if (!g) return mt_err_set(MT_ERR_INVALID, "optimize: graph is NULL");
    if (n_outputs < 0 || (n_outputs > 0 && !outputs))
        return mt_err_set(MT_ERR_INVALID, "optimize: bad output list (%d outputs)", (int)n_outputs);
    if (mt_graph_status(g) != MT_OK)
        return mt_err_set(MT_ERR_INVALID, "optimize: the graph has an error: %s",
                          mt_graph_last_error(g));
    for (int32_t i = 0; i < n_outputs; i++)
        if (!mt_graph_valid(g, outputs[i]))
            return mt_err_set(MT_ERR_INVALID, "optimize: output %d (v%d) is not a variable of "
                              "the graph", (int)i, (int)outputs[i]);
    mt_rewrite_options defaults;
    if (!opts) {
        mt_rewrite_options_init(&defaults);
        opts = &defaults;
    }
    mt_status st = check_options(opts);
    if (st) return st;

    mt_rewrite_stats local;
    if (!stats) stats = &local;
    memset(stats, 0, sizeof(*stats));
    stats->n_rules = mt_rewrite_count();

    engine e;
    memset(&e, 0, sizeof(e));
    e.g = g;
    e.opts = opts;
    e.stats = stats;
    e.cx.g = g;
    e.cx.fold_max = opts->fold_max_elements;
    mt_var *outs = mt_malloc(((size_t)n_outputs + 1) * sizeof(mt_var));
    e.disabled = mt_calloc((size_t)stats->n_rules + 1, sizeof(bool));
    if (!outs || !e.disabled) {
        mt_free(outs);
        mt_free(e.disabled);
        return nomem();
    }
    for (int32_t i = 0; i < opts->n_disabled; i++)
        e.disabled[mt_rewrite_find(opts->disabled[i])] = true;
    memcpy(outs, outputs, (size_t)n_outputs * sizeof(mt_var));
    mt_provenance saved_origin = g->origin;

    stats->nodes_before = live_count(g, n_outputs, outs);
    st = mt_rewrite_graph_cost(g, n_outputs, outs, &stats->cost_before);
    if (st == MT_OK) st = run_all(&e, n_outputs, outs);
    if (st == MT_OK && opts->verify) {
        st = mt_graph_verify(g);
        if (st) st = mt_err_prefix(MT_ERR_INTERNAL, "rewrite: graph invariants broken: ");
    }
    if (st == MT_OK) {
        stats->nodes_after = live_count(g, n_outputs, outs);
        st = mt_rewrite_graph_cost(g, n_outputs, outs, &stats->cost_after);
    }
    if (st == MT_OK) memcpy(outputs, outs, (size_t)n_outputs * sizeof(mt_var));
    g->origin = saved_origin;
    if (st != MT_OK && mt_graph_status(g) != MT_OK) mt_graph_clear_error(g);
    stats->seconds = mt_now_seconds() - t0;
    mt_free(outs);
    mt_free(e.disabled);
    mt_free(e.cur);
    mt_free(e.height);
    mt_free(e.log);
    mt_free(e.born);
    mt_free(e.died);
    mt_free(e.stack);
    return st;
}
