/* mt_function: compiling a graph into a callable function, shared variables, calls, checking
 * mode, printing and profiling (the public face of the jit module, include/mltrain/jit.h).
 *
 * Compilation validates the caller's handles, copies the needed part of the caller's graph into
 * a private graph (so the function owns everything it refers to and the rewrites can append to
 * it), runs the rewrites there for FAST_RUN and CHECK (keeping the unrewritten outputs for the
 * reference schedule), finds the shared variables (placeholders needed but not arguments, and
 * update targets), uploads constants, and builds the schedules (plan.c, fuse.c).
 *
 * A call validates the arguments, runs the schedule, hands out the outputs (copying any that
 * would alias function-owned memory or be read-only) and only then writes the updates back, so
 * every output and update is computed from the values before the call. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jit_impl.h"

/* ---------------------------------------------------------------- options and modes */

static const char *const g_mode_names[MT_MODE_COUNT] = {"fast_run", "fast_compile", "check"};

const char *mt_mode_name(mt_mode mode)
{
    if ((int)mode < 0 || mode >= MT_MODE_COUNT) return "invalid";
    return g_mode_names[mode];
}

mt_status mt_mode_from_name(mt_mode *out, const char *name)
{
    char buf[32];
    size_t n = name ? strlen(name) : 0;
    if (!out || !name || n >= sizeof buf)
        return mt_err_set(MT_ERR_INVALID, "unknown mode '%s' (expected fast_run, fast_compile "
                          "or check)", name ? name : "(null)");
    for (size_t i = 0; i <= n; i++) buf[i] = name[i] == '-' ? '_' : name[i];
    for (int m = 0; m < MT_MODE_COUNT; m++)
        if (strcmp(buf, g_mode_names[m]) == 0) {
            *out = (mt_mode)m;
            return MT_OK;
        }
    return mt_err_set(MT_ERR_INVALID, "unknown mode '%s' (expected fast_run, fast_compile or "
                      "check)", name);
}

void mt_function_options_init(mt_function_options *opts)
{
    if (!opts) return;
    memset(opts, 0, sizeof *opts);
    opts->mode = MT_MODE_FAST_RUN;
}

/* ---------------------------------------------------------------- lifecycle */

void mt_function_free(mt_function *f)
{
    if (!f) return;
    mt__plan_free(&f->ref);
    mt__plan_free(&f->fast);
    mt__scan_fns_free(f);
    for (int32_t i = 0; i < f->n_shared; i++) mt_array_clear(&f->shared[i].value);
    for (int32_t i = 0; i < f->n_consts; i++) mt_array_clear(&f->consts[i]);
    for (int32_t i = 0; i < f->n_disabled; i++) mt_free(f->disabled[i]);
    mt_free(f->disabled);
    mt_free(f->in_user);
    mt_free(f->in_var);
    mt_free(f->out_user);
    mt_free(f->out_var);
    mt_free(f->shared);
    mt_free(f->upd_shared);
    mt_free(f->upd_var);
    mt_free(f->out_fast);
    mt_free(f->upd_fast);
    mt_free(f->stabilized);
    mt_free(f->consts);
    mt_free(f->const_var);
    mt_free(f->order);
    mt_free(f->moved);
    mt_free(f->res);
    mt_free(f->ins);
    mt_threadpool_free(f->conv_pool);
    mt_graph_free(f->g);
    mt_device_release(f->dev);
    mt_free(f);
}

static const char *var_name(const mt_graph *g, mt_var v, char *buf, size_t len)
{
    const char *n = mt_graph_name(g, v);
    if (n) return n;
    snprintf(buf, len, "v%d", (int)v);
    return buf;
}

/* ERR_INVALID for an invalid handle, with the graph's first error when it has one. */
static mt_status bad_handle(const mt_graph *g, const char *what, int32_t i, mt_var v)
{
    if (mt_graph_status(g) != MT_OK)
        return mt_err_set(MT_ERR_INVALID, "%s %d is not a valid variable (v%d); the graph "
                          "recorded an error: %s", what, (int)i, (int)v, mt_graph_last_error(g));
    return mt_err_set(MT_ERR_INVALID, "%s %d is not a valid variable (v%d)", what, (int)i,
                      (int)v);
}

/* Types are compatible for an update: same dtype and ndim, static sizes equal where known. */
static mt_status check_update_type(const mt_graph *g, int32_t i, mt_var var, mt_var val)
{
    const mt_type *a = mt_graph_type(g, var), *b = mt_graph_type(g, val);
    bool ok = a->ndim == b->ndim;
    for (int32_t d = 0; ok && d < a->ndim; d++)
        if (a->shape[d] >= 0 && b->shape[d] >= 0 && a->shape[d] != b->shape[d]) ok = false;
    if (ok && a->dtype == b->dtype) return MT_OK;
    mt_strbuf sa, sb;
    mt_strbuf_init(&sa);
    mt_strbuf_init(&sb);
    mt_type_format(a, &sa);
    mt_type_format(b, &sb);
    char nb[32];
    mt_status st = mt_err_set(a->dtype != b->dtype ? MT_ERR_DTYPE : MT_ERR_SHAPE,
                              "update %d: shared variable '%s' is %s but its new value v%d is %s",
                              (int)i, var_name(g, var, nb, sizeof nb), sa.data ? sa.data : "?",
                              (int)val, sb.data ? sb.data : "?");
    mt_strbuf_deinit(&sa);
    mt_strbuf_deinit(&sb);
    return st;
}

static mt_status validate_args(const mt_graph *g, int32_t n_inputs, const mt_var *inputs,
                               int32_t n_outputs, const mt_var *outputs, int32_t n_updates,
                               const mt_update *updates)
{
    if (n_inputs < 0 || n_outputs < 0 || n_updates < 0 || (n_inputs && !inputs) ||
        (n_outputs && !outputs) || (n_updates && !updates))
        return mt_err_set(MT_ERR_INVALID, "function: negative count or NULL array");
    for (int32_t i = 0; i < n_inputs; i++) {
        if (!mt_graph_valid(g, inputs[i])) return bad_handle(g, "input", i, inputs[i]);
        if (mt_graph_op(g, inputs[i]) != MT_OP_INPUT)
            return mt_err_set(MT_ERR_INVALID, "input %d (v%d, %s) is not a placeholder", (int)i,
                              (int)inputs[i], mt_graph_op_label(g, inputs[i]));
        for (int32_t j = 0; j < i; j++)
            if (inputs[j] == inputs[i])
                return mt_err_set(MT_ERR_INVALID, "inputs %d and %d are the same placeholder v%d",
                                  (int)j, (int)i, (int)inputs[i]);
    }
    for (int32_t i = 0; i < n_outputs; i++)
        if (!mt_graph_valid(g, outputs[i])) return bad_handle(g, "output", i, outputs[i]);
    char nb[32];
    for (int32_t i = 0; i < n_updates; i++) {
        mt_var var = updates[i].var, val = updates[i].value;
        if (!mt_graph_valid(g, var)) return bad_handle(g, "update target", i, var);
        if (!mt_graph_valid(g, val)) return bad_handle(g, "update value", i, val);
        if (mt_graph_op(g, var) != MT_OP_INPUT)
            return mt_err_set(MT_ERR_INVALID, "update %d: target v%d (%s) is not a placeholder",
                              (int)i, (int)var, mt_graph_op_label(g, var));
        for (int32_t j = 0; j < n_inputs; j++)
            if (inputs[j] == var)
                return mt_err_set(MT_ERR_INVALID, "update %d: '%s' is argument %d of the "
                                  "function; an updated variable must be shared, not an argument",
                                  (int)i, var_name(g, var, nb, sizeof nb), (int)j);
        for (int32_t j = 0; j < i; j++)
            if (updates[j].var == var)
                return mt_err_set(MT_ERR_INVALID, "updates %d and %d both update '%s'", (int)j,
                                  (int)i, var_name(g, var, nb, sizeof nb));
        mt_status st = check_update_type(g, i, var, val);
        if (st != MT_OK) return st;
    }
    return MT_OK;
}

/* Copies the needed part of g into f->g and records the private handles of the caller's. */
static mt_status clone_graph(mt_function *f, const mt_graph *g, const mt_var *inputs,
                             const mt_var *outputs, const mt_update *updates, mt_var **map_out)
{
    int32_t nroots = f->n_outputs + 2 * f->n_updates + f->n_inputs;
    mt_var *roots = mt_calloc((size_t)nroots + 1, sizeof *roots);
    mt_var *copies = mt_calloc((size_t)nroots + 1, sizeof *copies);
    mt_var *map = mt_calloc((size_t)mt_graph_size(g) + 1, sizeof *map);
    mt_status st = roots && copies && map ? MT_OK : MT_ERR_NOMEM;
    if (st == MT_OK) st = mt_graph_new(&f->g);
    if (st == MT_OK) {
        int32_t k = 0;
        for (int32_t i = 0; i < f->n_outputs; i++) roots[k++] = outputs[i];
        for (int32_t i = 0; i < f->n_updates; i++) roots[k++] = updates[i].value;
        for (int32_t i = 0; i < f->n_updates; i++) roots[k++] = updates[i].var;
        for (int32_t i = 0; i < f->n_inputs; i++) roots[k++] = inputs[i];
        st = mt_graph_clone_with(f->g, g, nroots, roots, 0, NULL, NULL, copies, map);
        if (st != MT_OK) st = mt_err_prefix(st, "function: copying the graph: ");
    }
    if (st == MT_OK) {
        int32_t k = 0;
        for (int32_t i = 0; i < f->n_outputs; i++) f->out_var[i] = copies[k++];
        for (int32_t i = 0; i < f->n_updates; i++) f->upd_var[i] = copies[k++];
        k += f->n_updates; /* targets: found again through map below */
        for (int32_t i = 0; i < f->n_inputs; i++) f->in_var[i] = copies[k++];
    }
    mt_free(roots);
    mt_free(copies);
    if (st != MT_OK) {
        mt_free(map);
        return st;
    }
    *map_out = map;
    return MT_OK;
}

static int32_t shared_index(const mt_function *f, mt_var private_var)
{
    for (int32_t i = 0; i < f->n_shared; i++)
        if (f->shared[i].var == private_var) return i;
    return -1;
}

static int32_t shared_index_user(const mt_function *f, mt_var user_var)
{
    for (int32_t i = 0; i < f->n_shared; i++)
        if (f->shared[i].user_var == user_var) return i;
    return -1;
}

/* Shared variables: the needed placeholders that are not arguments, then update targets not
 * needed by anything (a variable only written). user_of maps private to caller handles. */
static mt_status find_shared(mt_function *f, const mt_graph *g, const mt_update *updates,
                             const mt_var *map)
{
    int32_t pn = mt_graph_size(f->g), un = mt_graph_size(g);
    mt_var *user_of = mt_calloc((size_t)pn + 1, sizeof *user_of);
    f->shared = mt_calloc((size_t)f->n_order + (size_t)f->n_updates + 1, sizeof *f->shared);
    f->upd_shared = mt_calloc((size_t)f->n_updates + 1, sizeof *f->upd_shared);
    if (!user_of || !f->shared || !f->upd_shared) {
        mt_free(user_of);
        return MT_ERR_NOMEM;
    }
    for (mt_var u = 1; u <= un; u++)
        if (map[u] > 0 && map[u] <= pn) user_of[map[u]] = u;
    for (int32_t i = 0; i < f->n_order; i++) {
        mt_var v = f->order[i];
        if (mt_graph_op(f->g, v) != MT_OP_INPUT) continue;
        bool arg = false;
        for (int32_t j = 0; j < f->n_inputs; j++) arg |= f->in_var[j] == v;
        if (arg) continue;
        f->shared[f->n_shared++] = (mt__jshared){.user_var = user_of[v], .var = v, .update = -1};
    }
    mt_status st = MT_OK;
    for (int32_t u = 0; u < f->n_updates && st == MT_OK; u++) {
        mt_var v = map[updates[u].var];
        int32_t k = shared_index(f, v);
        if (k < 0) {
            k = f->n_shared++;
            f->shared[k] = (mt__jshared){.user_var = updates[u].var, .var = v, .update = -1};
        }
        f->shared[k].update = u;
        f->upd_shared[u] = k;
        if (v <= 0) st = mt_err_set(MT_ERR_INTERNAL, "jit: update target was not copied");
    }
    mt_free(user_of);
    return st;
}

/* Uploads the constants the schedule reads. */
static mt_status upload_consts(mt_function *f)
{
    f->consts = mt_calloc((size_t)f->n_order + 1, sizeof *f->consts);
    f->const_var = mt_calloc((size_t)f->n_order + 1, sizeof *f->const_var);
    if (!f->consts || !f->const_var) return MT_ERR_NOMEM;
    for (int32_t i = 0; i < f->n_order; i++) {
        mt_var v = f->order[i];
        if (mt_graph_op(f->g, v) != MT_OP_CONST) continue;
        const mt_type *t = mt_graph_type(f->g, v);
        const mt_op_attrs *at = mt_graph_attrs(f->g, v);
        mt_status st = mt_array_from_host(&f->consts[f->n_consts], f->dev, t->dtype, t->ndim,
                                          t->shape, at->data);
        if (st != MT_OK) return mt__node_error(f->g, v, mt_err_prefix(st, "uploading: "));
        f->const_var[f->n_consts++] = v;
    }
    return MT_OK;
}

static mt_status copy_options(mt_function *f, const mt_function_options *o)
{
    f->mode = o->mode;
    f->profile = o->profile;
    f->check_rtol = o->check_rtol;
    f->check_atol = o->check_atol;
    if (o->collectives) {
        if (!o->collectives->start || !o->collectives->wait)
            return mt_err_set(MT_ERR_INVALID, "function options: collective hooks need both "
                              "start and wait");
        f->coll = *o->collectives;
        f->has_coll = true;
    }
    if ((int)o->mode < 0 || o->mode >= MT_MODE_COUNT)
        return mt_err_set(MT_ERR_INVALID, "function: invalid mode %d", (int)o->mode);
    if (o->n_disabled_rewrites < 0 || (o->n_disabled_rewrites && !o->disabled_rewrites))
        return mt_err_set(MT_ERR_INVALID, "function: bad disabled rewrite list");
    f->disabled = mt_calloc((size_t)o->n_disabled_rewrites + 1, sizeof *f->disabled);
    if (!f->disabled) return MT_ERR_NOMEM;
    for (int32_t i = 0; i < o->n_disabled_rewrites; i++) {
        f->disabled[i] = mt_strdup(o->disabled_rewrites[i] ? o->disabled_rewrites[i] : "");
        if (!f->disabled[i]) return MT_ERR_NOMEM;
        f->n_disabled++;
    }
    if (f->n_disabled > 0) {
        mt_status st = mt_rewrite_check_names(f->n_disabled, (const char *const *)f->disabled);
        if (st != MT_OK) return mt_err_prefix(st, "function options: ");
    }
    return MT_OK;
}

static mt_status alloc_tables(mt_function *f)
{
    f->in_user = mt_calloc((size_t)f->n_inputs + 1, sizeof *f->in_user);
    f->in_var = mt_calloc((size_t)f->n_inputs + 1, sizeof *f->in_var);
    f->out_user = mt_calloc((size_t)f->n_outputs + 1, sizeof *f->out_user);
    f->out_var = mt_calloc((size_t)f->n_outputs + 1, sizeof *f->out_var);
    f->upd_var = mt_calloc((size_t)f->n_updates + 1, sizeof *f->upd_var);
    f->out_fast = mt_calloc((size_t)f->n_outputs + 1, sizeof *f->out_fast);
    f->upd_fast = mt_calloc((size_t)f->n_updates + 1, sizeof *f->upd_fast);
    f->moved = mt_calloc((size_t)f->n_inputs + 1, sizeof *f->moved);
    f->res = mt_calloc(2 * (size_t)(f->n_outputs + f->n_updates) + 1, sizeof *f->res);
    f->ins = mt_calloc((size_t)f->n_inputs + 1, sizeof *f->ins);
    f->stabilized = mt_calloc((size_t)(f->n_outputs + f->n_updates) + 1, sizeof *f->stabilized);
    if (!f->stabilized) return MT_ERR_NOMEM;
    if (!f->in_user || !f->in_var || !f->out_user || !f->out_var || !f->upd_var || !f->moved ||
        !f->res || !f->ins || !f->out_fast || !f->upd_fast)
        return MT_ERR_NOMEM;
    return MT_OK;
}

/* A rule of the STABILIZE phase that is not also a canonicalization (constant folding and the
 * algebraic identities run in every phase): the rules whose results may legitimately differ
 * from the literal graph's. */
static bool stability_rule(const char *name)
{
    const mt_rewrite_info *r = mt_rewrite_get(mt_rewrite_find(name));
    return r && (r->phases & (1u << MT_REWRITE_STABILIZE)) &&
           !(r->phases & (1u << MT_REWRITE_CANONICALIZE));
}

/* stabilized[i]: the optimized result i differs from the literal one and a node of its
 * subgraph was made by a stability rule (a depth-first walk over the new nodes only: nodes of
 * the literal graph have no rewrites in their provenance). */
static mt_status mark_stabilized(mt_function *f)
{
    int32_t nres = f->n_outputs + f->n_updates, n = mt_graph_size(f->g);
    uint8_t *seen = mt_calloc((size_t)n + 1, 1);
    mt_var *stack = mt_malloc(((size_t)n + 1) * sizeof *stack);
    if (!seen || !stack) {
        mt_free(seen);
        mt_free(stack);
        return MT_ERR_NOMEM;
    }
    for (int32_t i = 0; i < nres; i++) {
        mt_var root = i < f->n_outputs ? f->out_fast[i] : f->upd_fast[i - f->n_outputs];
        mt_var lit = i < f->n_outputs ? f->out_var[i] : f->upd_var[i - f->n_outputs];
        if (root == lit) continue;
        memset(seen, 0, (size_t)n + 1);
        int32_t sp = 0;
        stack[sp++] = root;
        seen[root] = 1;
        while (sp > 0 && !f->stabilized[i]) {
            mt_var v = stack[--sp];
            const mt_provenance *pv = mt_graph_provenance(f->g, v);
            if (!pv || pv->nrules == 0) continue;
            for (int32_t r = 0; r < pv->nrules; r++)
                if (stability_rule(pv->rules[r])) f->stabilized[i] = true;
            for (int32_t j = 0; j < mt_graph_ninputs(f->g, v); j++) {
                mt_var w = mt_graph_input(f->g, v, j);
                if (w > 0 && w <= n && !seen[w]) {
                    seen[w] = 1;
                    stack[sp++] = w;
                }
            }
        }
    }
    mt_free(seen);
    mt_free(stack);
    return MT_OK;
}

/* The graph rewrites (graph_rewrite.h) on the private graph.
 * FAST_RUN and CHECK: every phase, giving the outputs the fused schedule computes; the
 * unoptimized outputs stay for the reference schedule (CHECK compares against them).
 * FAST_COMPILE: canonicalize and stabilize only (as PyTensor's FAST_COMPILE keeps its
 * stabilizations): the reference executor then runs the stabilized graph, so log(1 + exp(x))
 * is not inf in one mode and x in the other; no specialization (GEMM, power expansion), which
 * the fast schedule exists for. mt_graph_eval (no_rewrites) keeps the literal graph: it is the
 * reference the rewrite tests compare against.
 * A failing rewrite pass is not fatal: the function is then built unoptimized, with a warning
 * (a broken rule must not stop a training run). */
static mt_status optimize_graph(mt_function *f)
{
    int32_t n = f->n_outputs + f->n_updates;
    if (f->n_outputs) memcpy(f->out_fast, f->out_var, (size_t)f->n_outputs * sizeof *f->out_var);
    if (f->n_updates) memcpy(f->upd_fast, f->upd_var, (size_t)f->n_updates * sizeof *f->upd_var);
    bool compile = f->mode == MT_MODE_FAST_COMPILE;
    if ((compile && f->no_rewrites) || n == 0) return MT_OK;
    mt_var *roots = mt_malloc((size_t)n * sizeof *roots);
    if (!roots) return MT_ERR_NOMEM;
    if (f->n_outputs) memcpy(roots, f->out_var, (size_t)f->n_outputs * sizeof *roots);
    if (f->n_updates) memcpy(roots + f->n_outputs, f->upd_var, (size_t)f->n_updates * sizeof *roots);
    mt_rewrite_options ro;
    mt_rewrite_options_init(&ro);
    ro.n_disabled = f->n_disabled;
    ro.disabled = (const char *const *)f->disabled;
    if (compile) ro.last_phase = MT_REWRITE_STABILIZE;
    mt_status st = mt_graph_optimize(f->g, n, roots, &ro, &f->rewrite_stats);
    if (st == MT_OK) {
        if (f->n_outputs) memcpy(f->out_fast, roots, (size_t)f->n_outputs * sizeof *roots);
        if (f->n_updates)
            memcpy(f->upd_fast, roots + f->n_outputs, (size_t)f->n_updates * sizeof *roots);
        f->optimized = true;
        if (compile) { /* the reference schedule runs the stabilized graph */
            if (f->n_outputs) memcpy(f->out_var, f->out_fast, (size_t)f->n_outputs * sizeof *roots);
            if (f->n_updates) memcpy(f->upd_var, f->upd_fast, (size_t)f->n_updates * sizeof *roots);
        } else {
            st = mark_stabilized(f);
        }
    } else if (st != MT_ERR_NOMEM) {
        mt_log(MT_LOG_WARN, "jit: graph rewrites failed, compiling the unoptimized graph: %s",
               mt_last_error());
        mt_graph_clear_error(f->g);
        st = MT_OK;
    }
    mt_free(roots);
    return st;
}

/* ---------------------------------------------------------------- kernel prediction */

/* Cold start: without this, every kernel would be compiled lazily at its first use, one `cc`
 * run (~80 ms) after another. At mt_function_new (FAST_RUN, host) the function's kernels are
 * predicted inside a kernel batch (mt_kernel_batch_begin): predicting compiles nothing, the
 * kernels missing from the caches are recorded, and mt_kernel_batch_end then compiles them
 * together, several per compiler run and one run per CPU at a time.
 * 1. Each elementwise step's kernel (FUSED steps, unfused ELEMWISE nodes) is predicted for
 *    C-contiguous operands by mt_elemwise_prebuild (unknown sizes taken as > 1); steps with
 *    the same expression and operand types once. Cached kernels are loaded by this.
 * 2. When one of them was missing (a cold cache) or there was none, a dry run of the fused
 *    schedule on stand-in values (zeros of each argument's and shared variable's type, every
 *    unknown size PREDICT_DIM) through the executor a call uses: every kernel a call would
 *    request is requested with the layout a call gives it -- fused kernels and reductions, the
 *    kernels inside the nnet ops (softmax, crossentropies and their gradients), on views and
 *    broadcasts alike. While the batch is open, the missing kernels run interpreted on the
 *    tiny stand-ins. Not done with collectives (their hooks must only see real calls) or when
 *    the stand-ins would be large; it stops at a shape the stand-ins cannot satisfy.
 * When every kernel of step 1 was cached, the function was compiled before with this cache:
 * the dry run (a few ms: stand-ins as large as the parameters, a small step) is skipped, and
 * the remaining kernels load from the disk cache at their first use. The kernels of step 1
 * that the dry run shows to be mispredicted are still compiled, so that this test holds warm.
 * After the batch, step 1 runs again to load its kernels (the first call then finds them in
 * memory, as after a warm start).
 * A wrong prediction only means that kernel is built at first use, as without this; errors are
 * ignored (a real problem shows up again, with its message, when the step runs). */
#define PREBUILD_MAX_IN 64             /* mt_elemwise takes at most 64 arguments */
#define PREDICT_DIM 8                  /* stand-in for unknown sizes (> 1, and >= the 8 outputs
                                          from which a host reduction over a strided axis tiles) */
#define PREDICT_MAX_BYTES (64 << 20)   /* larger stand-ins: no dry run */

/* What decides a step's predicted kernel: the expression and, per operand, its dtype and
 * which sizes are 1 (the stand-ins' sizes). Steps with equal signatures share their kernel,
 * which is then predicted once. A hash collision only drops a prediction. */
static uint64_t step_signature(const mt_function *f, const mt__jstep *s)
{
    uint64_t h = mt_kexpr_hash(&s->kx);
    for (int32_t i = 0; i <= s->nin; i++) {
        mt_var v = i < s->nin ? f->order[s->in[i]]
                              : s->kind == MT__STEP_FUSED ? s->out_vars[0] : s->v;
        const mt_type *t = mt_graph_type(f->g, v);
        uint64_t bits = (uint64_t)t->dtype << 16 | (uint64_t)t->ndim << 8;
        for (int32_t d = 0; d < t->ndim && d < MT_MAX_DIMS; d++)
            bits |= (uint64_t)(t->shape[d] == 1) << d;
        h = (h ^ bits) * 0x100000001b3ull;
    }
    return h;
}

/* MT_ERR_NOT_BUILT when the kernel is missing (left to the batch). */
static mt_status prebuild_step(mt_function *f, const mt__jstep *s)
{
    mt_dtype dt[PREBUILD_MAX_IN];
    int32_t nd[PREBUILD_MAX_IN];
    if (s->nin > PREBUILD_MAX_IN) return MT_ERR_RANGE;
    int64_t (*dims)[MT_MAX_DIMS] = mt_calloc((size_t)s->nin + 1, sizeof *dims);
    if (!dims) return MT_ERR_NOMEM;
    for (int32_t i = 0; i < s->nin; i++) {
        const mt_type *t = mt_graph_type(f->g, f->order[s->in[i]]);
        dt[i] = t->dtype;
        nd[i] = t->ndim;
        memcpy(dims[i], t->shape, sizeof dims[i]);
    }
    const mt_type *o = mt_graph_type(f->g, s->kind == MT__STEP_FUSED ? s->out_vars[0] : s->v);
    mt_status st = mt_elemwise_prebuild(f->dev, &s->kx, s->nin, dt, nd,
                                        (const int64_t(*)[MT_MAX_DIMS])dims, o->ndim, o->shape, 0);
    mt_free(dims);
    mt_err_clear();
    return st;
}

/* Step 1 above: the elementwise steps' kernels for C-contiguous operands. *missing (may be
 * NULL) gets the number of them missing from the caches; returns the number predicted. */
static int32_t prebuild_elementwise(mt_function *f, int32_t *missing)
{
    if (missing) *missing = 0;
    uint64_t *sigs = mt_calloc((size_t)f->fast.nsteps + 1, sizeof *sigs);
    if (!sigs) return 0;
    int32_t n = 0;
    for (int32_t k = 0; k < f->fast.nsteps; k++) {
        const mt__jstep *s = &f->fast.steps[k];
        if (s->kind == MT__STEP_REDUCE || !s->has_kx) continue;
        uint64_t sig = step_signature(f, s);
        bool seen = false;
        for (int32_t j = 0; j < n && !seen; j++) seen = sigs[j] == sig;
        if (seen) continue;
        sigs[n++] = sig;
        if (prebuild_step(f, s) == MT_ERR_NOT_BUILT && missing) (*missing)++;
    }
    mt_free(sigs);
    return n;
}

/* A zero array of type t, unknown sizes PREDICT_DIM; *bytes grows by its size. */
static mt_status standin(mt_array *a, mt_device *dev, const mt_type *t, int64_t *bytes)
{
    int64_t dims[MT_MAX_DIMS], n = (int64_t)mt_dtype_size(t->dtype);
    for (int32_t d = 0; d < t->ndim; d++) {
        dims[d] = t->shape[d] >= 0 ? t->shape[d] : PREDICT_DIM;
        n *= dims[d];
    }
    *bytes += n;
    if (*bytes > PREDICT_MAX_BYTES)
        return mt_err_set(MT_ERR_RANGE, "stand-ins over %d MB", PREDICT_MAX_BYTES >> 20);
    return mt_array_zeros(a, dev, t->dtype, t->ndim, dims);
}

/* Step 2 above: true when the whole schedule ran. Shared variables have no values yet at
 * compile time: they hold stand-ins during the run (in-place updates write into those). */
static bool dry_run(mt_function *f)
{
    if (f->has_coll) return false;
    int32_t nres = f->n_outputs + f->n_updates;
    mt_array *ins = mt_calloc((size_t)f->n_inputs + 1, sizeof *ins);
    const mt_array **inp = mt_calloc((size_t)f->n_inputs + 1, sizeof *inp);
    mt_array *res = mt_calloc((size_t)nres + 1, sizeof *res);
    bool *mine = mt_calloc((size_t)f->n_shared + 1, sizeof *mine); /* stand-in given here */
    mt_status st = ins && inp && res && mine ? MT_OK : MT_ERR_NOMEM;
    int64_t bytes = 0;
    double t0 = mt_now_seconds(), t1 = t0;
    for (int32_t i = 0; i < f->n_inputs && st == MT_OK; i++) {
        st = standin(&ins[i], f->dev, mt_graph_type(f->g, f->in_var[i]), &bytes);
        inp[i] = &ins[i];
    }
    for (int32_t i = 0; i < f->n_shared && st == MT_OK; i++) {
        if (f->shared[i].value.buf) continue;
        st = standin(&f->shared[i].value, f->dev, mt_graph_type(f->g, f->shared[i].var), &bytes);
        mine[i] = true;
    }
    if (st == MT_OK) {
        t1 = mt_now_seconds();
        bool profile = f->profile;
        int64_t peak = f->fast.run_peak_bytes;
        f->profile = false;
        st = mt__plan_run(f, &f->fast, inp, res, false, NULL);
        f->profile = profile;
        f->fast.run_peak_bytes = peak;
        mt__plan_forget_launches(&f->fast);
        if (st == MT_OK) st = mt_device_sync(f->dev);
    }
    if (st != MT_OK) {
        mt_log(MT_LOG_DEBUG, "jit: dry run for kernel prediction stopped: %s", mt_last_error());
        mt_err_clear();
    } else {
        mt_log(MT_LOG_DEBUG, "jit: dry run for kernel prediction: stand-ins %.3f ms (%.1f MB), "
               "run %.3f ms", (t1 - t0) * 1e3, (double)bytes / 1e6, (mt_now_seconds() - t1) * 1e3);
    }
    for (int32_t i = 0; res && i < nres; i++) mt_array_clear(&res[i]);
    for (int32_t i = 0; ins && i < f->n_inputs; i++) mt_array_clear(&ins[i]);
    for (int32_t i = 0; mine && i < f->n_shared; i++)
        if (mine[i]) mt_array_clear(&f->shared[i].value);
    mt_free(mine);
    mt_free(ins);
    mt_free(inp);
    mt_free(res);
    return st == MT_OK;
}

static void predict_kernels(mt_function *f)
{
    const mt_device_info *info = mt_device_get_info(f->dev);
    if (!f->has_fast || !info || strcmp(info->backend, "host") != 0) return;
    if (mt_kernel_batch_begin() != MT_OK) { /* one is open already: nothing to add here */
        mt_err_clear();
        return;
    }
    int32_t missing = 0, n = prebuild_elementwise(f, &missing);
    if (missing > 0 || n == 0) dry_run(f);
    int32_t built = 0;
    if (mt_kernel_batch_end(0, &built) != MT_OK) mt_err_clear();
    mt_log(MT_LOG_DEBUG, "jit: %d predicted kernels compiled", (int)built);
    /* load the elementwise ones now, as a warm start does (the others load at first use) */
    if (built > 0 && n > 0) prebuild_elementwise(f, NULL);
}

/* Everything after the argument checks; f is freed by the caller on error. */
static mt_status build(mt_function *f, const mt_graph *g, const mt_var *inputs,
                       const mt_var *outputs, const mt_update *updates)
{
    mt_status st = alloc_tables(f);
    if (st != MT_OK) return st;
    if (f->n_inputs) memcpy(f->in_user, inputs, (size_t)f->n_inputs * sizeof *inputs);
    if (f->n_outputs) memcpy(f->out_user, outputs, (size_t)f->n_outputs * sizeof *outputs);
    mt_var *map = NULL;
    if ((st = clone_graph(f, g, inputs, outputs, updates, &map)) != MT_OK) return st;
    st = optimize_graph(f);
    /* The order holds the nodes of both schedules (shared nodes once, same slot). */
    int32_t nr = f->n_outputs + f->n_updates, nroots = 2 * nr;
    mt_var *roots = mt_calloc((size_t)nroots + 1, sizeof *roots);
    if (!roots && st == MT_OK) st = MT_ERR_NOMEM;
    if (st == MT_OK) {
        if (f->n_outputs) memcpy(roots, f->out_var, (size_t)f->n_outputs * sizeof *roots);
        if (f->n_updates)
            memcpy(roots + f->n_outputs, f->upd_var, (size_t)f->n_updates * sizeof *roots);
        if (f->n_outputs) memcpy(roots + nr, f->out_fast, (size_t)f->n_outputs * sizeof *roots);
        if (f->n_updates)
            memcpy(roots + nr + f->n_outputs, f->upd_fast, (size_t)f->n_updates * sizeof *roots);
        if (nroots > 0) st = mt_graph_toposort(f->g, nroots, roots, &f->order, &f->n_order);
    }
    mt_free(roots);
    for (int32_t i = 0; st == MT_OK && !f->has_coll && i < f->n_order; i++)
        if (mt_graph_op(f->g, f->order[i]) == MT_OP_ALLREDUCE)
            st = mt__node_error(f->g, f->order[i],
                                mt_err_set(MT_ERR_INVALID, "the graph has all-reduce nodes but "
                                           "mt_function_options.collectives is NULL (compile "
                                           "data-parallel graphs with the options of "
                                           "mt_dp_function_options)"));
    if (st == MT_OK) st = find_shared(f, g, updates, map);
    mt_free(map);
    if (st == MT_OK) st = upload_consts(f);
    if (st == MT_OK) st = mt__plan_reference(f, &f->ref);
    if (st == MT_OK && f->mode != MT_MODE_FAST_COMPILE) {
        st = mt__plan_fused(f, &f->fast);
        f->has_fast = st == MT_OK;
        if (st != MT_OK && st != MT_ERR_NOMEM) { /* fall back to the reference schedule */
            mt_log(MT_LOG_WARN, "jit: fusion failed, using the reference schedule: %s",
                   mt_last_error());
            mt__plan_free(&f->fast);
            st = MT_OK;
        }
        if (f->has_fast && f->mode == MT_MODE_FAST_RUN) predict_kernels(f);
    }
    if (st == MT_OK && f->ref.broken && !f->has_fast)
        st = mt_err_set(MT_ERR_INVALID, "%s", f->ref.broken);
    return st;
}

static mt_status function_new(mt_function **out, const mt_graph *g, int32_t n_inputs,
                              const mt_var *inputs, int32_t n_outputs, const mt_var *outputs,
                              int32_t n_updates, const mt_update *updates, mt_device *dev,
                              const mt_function_options *opts, bool no_rewrites)
{
    if (!out || !g) return mt_err_set(MT_ERR_INVALID, "function: NULL output or graph");
    *out = NULL;
    double t0 = mt_now_seconds();
    mt_status st = validate_args(g, n_inputs, inputs, n_outputs, outputs, n_updates, updates);
    if (st != MT_OK) return st;
    mt_function_options defaults;
    mt_function_options_init(&defaults);
    mt_function *f = mt_calloc(1, sizeof *f);
    if (!f) return MT_ERR_NOMEM;
    f->n_inputs = n_inputs;
    f->n_outputs = n_outputs;
    f->n_updates = n_updates;
    f->no_rewrites = no_rewrites;
    if (dev) {
        mt_device_retain(dev);
        f->dev = dev;
    } else {
        st = mt_device_open(&f->dev, "host");
    }
    if (st == MT_OK) st = copy_options(f, opts ? opts : &defaults);
    if (st == MT_OK) st = build(f, g, inputs, outputs, updates);
    if (st != MT_OK) {
        mt_function_free(f);
        return st;
    }
    f->compile_seconds = mt_now_seconds() - t0;
    *out = f;
    return MT_OK;
}

mt_status mt_function_new(mt_function **out, const mt_graph *g, int32_t n_inputs,
                          const mt_var *inputs, int32_t n_outputs, const mt_var *outputs,
                          int32_t n_updates, const mt_update *updates, mt_device *dev,
                          const mt_function_options *opts)
{
    return function_new(out, g, n_inputs, inputs, n_outputs, outputs, n_updates, updates, dev,
                        opts, false);
}

mt_status mt__function_new_ex(mt_function **out, const mt_graph *g, int32_t n_inputs,
                              const mt_var *inputs, int32_t n_outputs, const mt_var *outputs,
                              mt_device *dev, const mt_function_options *opts, bool no_rewrites)
{
    return function_new(out, g, n_inputs, inputs, n_outputs, outputs, 0, NULL, dev, opts,
                        no_rewrites);
}

/* ---------------------------------------------------------------- introspection */

int32_t mt_function_n_inputs(const mt_function *f) { return f ? f->n_inputs : 0; }
int32_t mt_function_n_outputs(const mt_function *f) { return f ? f->n_outputs : 0; }
int32_t mt_function_n_shared(const mt_function *f) { return f ? f->n_shared : 0; }
int32_t mt_function_n_updates(const mt_function *f) { return f ? f->n_updates : 0; }

mt_var mt_function_input(const mt_function *f, int32_t i)
{
    return f && i >= 0 && i < f->n_inputs ? f->in_user[i] : MT_VAR_NONE;
}

mt_var mt_function_output(const mt_function *f, int32_t i)
{
    return f && i >= 0 && i < f->n_outputs ? f->out_user[i] : MT_VAR_NONE;
}

mt_var mt_function_shared(const mt_function *f, int32_t i)
{
    return f && i >= 0 && i < f->n_shared ? f->shared[i].user_var : MT_VAR_NONE;
}

const mt_type *mt_function_input_type(const mt_function *f, int32_t i)
{
    return f && i >= 0 && i < f->n_inputs ? mt_graph_type(f->g, f->in_var[i]) : NULL;
}

const mt_type *mt_function_output_type(const mt_function *f, int32_t i)
{
    return f && i >= 0 && i < f->n_outputs ? mt_graph_type(f->g, f->out_var[i]) : NULL;
}

const mt_type *mt_function_var_type(const mt_function *f, mt_var var)
{
    if (!f) return NULL;
    int32_t k = shared_index_user(f, var);
    if (k >= 0) return mt_graph_type(f->g, f->shared[k].var);
    for (int32_t i = 0; i < f->n_inputs; i++)
        if (f->in_user[i] == var) return mt_graph_type(f->g, f->in_var[i]);
    return NULL;
}

mt_device *mt_function_device(const mt_function *f) { return f ? f->dev : NULL; }
mt_mode mt_function_mode(const mt_function *f) { return f ? f->mode : MT_MODE_COUNT; }
uint64_t mt_function_rng_counter(const mt_function *f) { return f ? f->rng_calls : 0; }

void mt_function_set_rng_counter(mt_function *f, uint64_t calls)
{
    if (f) f->rng_calls = calls;
}

/* ---------------------------------------------------------------- values and type checks */

/* ERR_INVALID / ERR_DTYPE / ERR_SHAPE unless a fits v's type; v is argument `arg` (>= 0) or a
 * shared variable (arg < 0). The label (into what) is formatted only on an error: this runs on
 * every call. */
static mt_status check_value(const mt_graph *g, mt_var v, int32_t arg, const mt_array *a,
                             char *what, size_t what_size)
{
    const mt_type *t = mt_graph_type(g, v);
    bool dt_ok = a && a->buf && a->dtype == t->dtype;
    bool shape_ok = a && a->buf && a->ndim == t->ndim;
    for (int32_t d = 0; shape_ok && d < t->ndim; d++)
        if (t->shape[d] >= 0 && t->shape[d] != a->dims[d]) shape_ok = false;
    if (dt_ok && shape_ok) return MT_OK;
    char nb[32];
    if (arg >= 0)
        snprintf(what, what_size, "argument %d ('%s')", (int)arg, var_name(g, v, nb, sizeof nb));
    else
        snprintf(what, what_size, "shared variable '%s'", var_name(g, v, nb, sizeof nb));
    if (!a || !a->buf)
        return mt_err_set(MT_ERR_INVALID, "%s: no array given (NULL or empty)", what);
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    mt_type_format(t, &sb);
    char sh[128];
    mt_status st = mt_err_set(dt_ok ? MT_ERR_SHAPE : MT_ERR_DTYPE,
                              "%s: expected %s, given %s%s", what, sb.data ? sb.data : "?",
                              mt_dtype_name(a->dtype), mt_shape_str(a->ndim, a->dims, sh, sizeof sh));
    mt_strbuf_deinit(&sb);
    return st;
}

mt_status mt_function_set_shared(mt_function *f, mt_var var, const mt_array *value)
{
    if (!f) return mt_err_set(MT_ERR_INVALID, "set_shared: NULL function");
    int32_t k = shared_index_user(f, var);
    if (k < 0)
        return mt_err_set(MT_ERR_INVALID, "set_shared: v%d is not a shared variable of this "
                          "function (%d shared variables)", (int)var, (int)f->n_shared);
    mt__jshared *s = &f->shared[k];
    char what[96], nb[32];
    mt_status st = check_value(f->g, s->var, -1, value, what, sizeof what);
    if (st != MT_OK) return st;
    mt_array nv = {0};
    if (mt_array_device(value) == f->dev && (value->flags & MT_ARRAY_WRITEABLE))
        mt_array_view(&nv, value);
    else if ((st = mt_array_copy_to(&nv, value, f->dev)) != MT_OK)
        return mt_err_prefix(st, "shared variable '%s': copying to %s: ",
                             var_name(f->g, s->var, nb, sizeof nb), mt_device_name(f->dev));
    mt_array_clear(&s->value);
    s->value = nv;
    return MT_OK;
}

mt_status mt_function_get_shared(const mt_function *f, mt_var var, mt_array *out)
{
    if (!f || !out) return mt_err_set(MT_ERR_INVALID, "get_shared: NULL argument");
    int32_t k = shared_index_user(f, var);
    if (k < 0)
        return mt_err_set(MT_ERR_INVALID, "get_shared: v%d is not a shared variable of this "
                          "function", (int)var);
    if (!f->shared[k].value.buf) {
        char nb[32];
        return mt_err_set(MT_ERR_INVALID, "get_shared: shared variable '%s' has no value yet",
                          var_name(f->g, f->shared[k].var, nb, sizeof nb));
    }
    mt_array_view(out, &f->shared[k].value);
    return MT_OK;
}

bool mt_function_has_shared_value(const mt_function *f, mt_var var)
{
    int32_t k = f ? shared_index_user(f, var) : -1;
    return k >= 0 && f->shared[k].value.buf != NULL;
}

/* ---------------------------------------------------------------- calls */

static mt_status check_call(mt_function *f, int32_t n_in, const mt_array *const *inputs,
                            int32_t n_out, mt_array *outputs, mt_array *moved)
{
    if (n_in != f->n_inputs || n_out != f->n_outputs)
        return mt_err_set(MT_ERR_INVALID, "function call: %d inputs and %d outputs given, the "
                          "function takes %d and returns %d", (int)n_in, (int)n_out,
                          (int)f->n_inputs, (int)f->n_outputs);
    if ((n_in && !inputs) || (n_out && !outputs))
        return mt_err_set(MT_ERR_INVALID, "function call: NULL input or output array");
    char nb[32];
    for (int32_t i = 0; i < f->n_shared; i++)
        if (!f->shared[i].value.buf)
            return mt_err_set(MT_ERR_INVALID, "function call: placeholder '%s' is needed but is "
                              "neither an argument of the function nor bound with "
                              "mt_function_set_shared",
                              var_name(f->g, f->shared[i].var, nb, sizeof nb));
    for (int32_t i = 0; i < n_in; i++) {
        char what[96];
        mt_status st = check_value(f->g, f->in_var[i], i, inputs[i], what, sizeof what);
        if (st != MT_OK) return st;
        if (mt_array_device(inputs[i]) != f->dev) {
            st = mt_array_copy_to(&moved[i], inputs[i], f->dev);
            if (st != MT_OK)
                return mt_err_prefix(st, "argument %d ('%s'): copying to %s: ", (int)i,
                                     var_name(f->g, f->in_var[i], nb, sizeof nb),
                                     mt_device_name(f->dev));
        }
    }
    return MT_OK;
}

/* Whether a's memory belongs to the function (a constant or a shared value). */
static bool function_owned(const mt_function *f, const mt_array *a)
{
    for (int32_t i = 0; i < f->n_shared; i++)
        if (f->shared[i].value.buf == a->buf) return true;
    for (int32_t i = 0; i < f->n_consts; i++)
        if (f->consts[i].buf == a->buf) return true;
    return false;
}

static bool updated_buffer(const mt_function *f, const mt_buffer *b)
{
    for (int32_t u = 0; u < f->n_updates; u++)
        if (f->shared[f->upd_shared[u]].value.buf == b) return true;
    return false;
}

static bool same_view(const mt_array *a, const mt_array *b)
{
    if (a->buf != b->buf || a->offset != b->offset || a->ndim != b->ndim ||
        a->dtype != b->dtype)
        return false;
    for (int32_t d = 0; d < a->ndim; d++)
        if (a->dims[d] != b->dims[d] || (a->dims[d] > 1 && a->strides[d] != b->strides[d]))
            return false;
    return true;
}

/* Writes the update values (results[n_outputs + u]) back into the shared values. Values that
 * alias an updated shared value are copied first, so swaps see the old values. */
static mt_status write_updates(mt_function *f, mt_array *vals)
{
    mt_status st = MT_OK;
    for (int32_t u = 0; u < f->n_updates && st == MT_OK; u++) {
        mt__jshared *s = &f->shared[f->upd_shared[u]];
        if (same_view(&vals[u], &s->value) || !updated_buffer(f, vals[u].buf)) continue;
        mt_array c = {0};
        st = mt_array_copy_to(&c, &vals[u], f->dev);
        mt_array_clear(&vals[u]);
        vals[u] = c;
    }
    for (int32_t u = 0; u < f->n_updates && st == MT_OK; u++) {
        mt__jshared *s = &f->shared[f->upd_shared[u]];
        if (same_view(&vals[u], &s->value)) continue;
        bool same_shape = vals[u].ndim == s->value.ndim;
        for (int32_t d = 0; same_shape && d < vals[u].ndim; d++)
            same_shape = vals[u].dims[d] == s->value.dims[d];
        if (same_shape) {
            st = mt_array_copy(&s->value, &vals[u]);
        } else { /* the variable changes shape: it gets its own new storage */
            mt_array c = {0};
            st = mt_array_copy_to(&c, &vals[u], f->dev);
            if (st == MT_OK) {
                mt_array_clear(&s->value);
                s->value = c;
            }
        }
        if (st != MT_OK) {
            char nb[32];
            st = mt_err_prefix(st, "writing the update of '%s': ",
                               var_name(f->g, s->var, nb, sizeof nb));
        }
    }
    return st;
}

/* Moves results into the caller's outputs; copies the ones that alias function memory or are
 * read-only views. */
static mt_status hand_out(mt_function *f, mt_array *res, mt_array *outputs)
{
    mt_status st = MT_OK;
    for (int32_t i = 0; i < f->n_outputs && st == MT_OK; i++) {
        if (function_owned(f, &res[i]) || !(res[i].flags & MT_ARRAY_WRITEABLE)) {
            mt_array c = {0};
            st = mt_array_copy_to(&c, &res[i], f->dev);
            mt_array_clear(&res[i]);
            res[i] = c;
        }
    }
    if (st != MT_OK) return st;
    for (int32_t i = 0; i < f->n_outputs; i++) {
        outputs[i] = res[i];
        memset(&res[i], 0, sizeof res[i]);
    }
    return MT_OK;
}

static mt_status function_call(mt_function *f, int32_t n_in, const mt_array *const *inputs,
                               int32_t n_out, mt_array *outputs, bool sync_at_end)
{
    if (!f) return mt_err_set(MT_ERR_INVALID, "function call: NULL function");
    double t0 = mt_now_seconds();
    int32_t nres = f->n_outputs + f->n_updates;
    mt_array *moved = f->moved, *res = f->res;
    const mt_array **ins = f->ins;
    mt_status st = check_call(f, n_in, inputs, n_out, outputs, moved);
    for (int32_t i = 0; st == MT_OK && i < n_in; i++)
        ins[i] = moved[i].buf ? &moved[i] : inputs[i];
    bool fast = f->has_fast && f->mode != MT_MODE_FAST_COMPILE;
    if (st == MT_OK && f->mode == MT_MODE_CHECK && fast) {
        /* The reference run keeps every node's value; the fast run is compared step by step
         * (naming the first node whose value differs), then the results as a whole. */
        st = mt__plan_run(f, &f->ref, ins, res + nres, true, NULL);
        if (st == MT_OK) st = mt__plan_run(f, &f->fast, ins, res, false, f->ref.values);
        if (st == MT_OK) st = mt__check_results(f, res, res + nres);
        mt__plan_clear(&f->ref);
    } else if (st == MT_OK) {
        st = mt__plan_run(f, fast ? &f->fast : &f->ref, ins, res, false, NULL);
    }
    if (st == MT_OK) st = hand_out(f, res, outputs);
    if (st == MT_OK) {
        st = write_updates(f, res + f->n_outputs);
        if (st != MT_OK)
            for (int32_t i = 0; i < f->n_outputs; i++) mt_array_clear(&outputs[i]);
    }
    /* The work is complete on return (also after an error: nothing stays in flight). */
    mt_status sync = sync_at_end ? mt_device_sync(f->dev) : MT_OK;
    if (st == MT_OK && sync != MT_OK) {
        st = sync;
        for (int32_t i = 0; i < f->n_outputs; i++) mt_array_clear(&outputs[i]);
    }
    if (st == MT_OK) {
        f->rng_calls++;
        f->ncalls++;
        f->call_seconds += mt_now_seconds() - t0;
    }
    for (int32_t i = 0; i < 2 * nres; i++) mt_array_clear(&res[i]);
    for (int32_t i = 0; i < f->n_inputs; i++) mt_array_clear(&moved[i]);
    return st;
}

mt_status mt_function_call(mt_function *f, int32_t n_in, const mt_array *const *inputs,
                           int32_t n_out, mt_array *outputs)
{
    return function_call(f, n_in, inputs, n_out, outputs, true);
}

mt_status mt__function_call_nosync(mt_function *f, int32_t n_in, const mt_array *const *inputs,
                                   int32_t n_out, mt_array *outputs)
{
    return function_call(f, n_in, inputs, n_out, outputs, false);
}

/* ---------------------------------------------------------------- stats and printing */

void mt_function_get_stats(const mt_function *f, mt_function_stats *out)
{
    if (!out) return;
    memset(out, 0, sizeof *out);
    if (!f) return;
    const mt__jplan *p = f->has_fast && f->mode != MT_MODE_FAST_COMPILE ? &f->fast : &f->ref;
    out->n_nodes = f->n_order;
    out->n_steps = p->nsteps;
    for (int32_t k = 0; k < p->nsteps; k++)
        if (p->steps[k].kind == MT__STEP_FUSED || p->steps[k].kind == MT__STEP_REDUCE) {
            out->n_fused++;
            out->n_fused_nodes += p->steps[k].nmembers;
        }
    out->peak_bytes = p->peak_bytes;
    out->n_buckets = p->ncoll;
    out->collective_calls = f->coll_calls;
    out->collective_seconds = f->coll_seconds;
    out->collective_wait_seconds = f->coll_wait_seconds;
    out->run_peak_bytes = p->run_peak_bytes;
    out->compile_seconds = f->compile_seconds;
}

static void print_var_line(const mt_function *f, mt_strbuf *sb, const char *kind, mt_var v)
{
    char nb[32];
    mt_strbuf_appendf(sb, "  %s '%s' (v%d) : ", kind, var_name(f->g, v, nb, sizeof nb), (int)v);
    mt_type_format(mt_graph_type(f->g, v), sb);
    mt_strbuf_append(sb, "\n");
}

mt_status mt_function_print(const mt_function *f, mt_strbuf *sb)
{
    if (!f || !sb) return mt_err_set(MT_ERR_INVALID, "function print: NULL argument");
    const mt__jplan *p = f->has_fast && f->mode != MT_MODE_FAST_COMPILE ? &f->fast : &f->ref;
    mt_strbuf_appendf(sb, "function on %s, mode %s: %d arguments, %d outputs, %d shared, "
                      "%d updates\n", mt_device_name(f->dev), mt_mode_name(f->mode),
                      (int)f->n_inputs, (int)f->n_outputs, (int)f->n_shared, (int)f->n_updates);
    for (int32_t i = 0; i < f->n_inputs; i++) print_var_line(f, sb, "argument", f->in_var[i]);
    for (int32_t i = 0; i < f->n_shared; i++) print_var_line(f, sb, "shared", f->shared[i].var);
    if (f->optimized) {
        mt_rewrite_stats_format(&f->rewrite_stats, sb);
        mt_strbuf_append(sb, "\n");
    }
    mt__plan_print(f, p, sb);
    mt_strbuf_append(sb, "outputs:");
    for (int32_t i = 0; i < f->n_outputs; i++)
        mt_strbuf_appendf(sb, " v%d", (int)f->order[p->out_slot[i]]);
    mt_strbuf_append(sb, "\n");
    char nb[32];
    for (int32_t u = 0; u < f->n_updates; u++)
        mt_strbuf_appendf(sb, "update: '%s' <- v%d\n",
                          var_name(f->g, f->shared[f->upd_shared[u]].var, nb, sizeof nb),
                          (int)f->order[p->upd_slot[u]]);
    return mt_strbuf_status(sb);
}

typedef struct prof_row {
    double seconds;
    int32_t step;
} prof_row;

static int prof_cmp(const void *a, const void *b)
{
    const prof_row *x = a, *y = b;
    if (x->seconds != y->seconds) return x->seconds < y->seconds ? 1 : -1;
    return x->step - y->step;
}

mt_status mt_function_print_profile(const mt_function *f, mt_strbuf *sb)
{
    if (!f || !sb) return mt_err_set(MT_ERR_INVALID, "print_profile: NULL argument");
    if (!f->profile) {
        mt_strbuf_append(sb, "profile: not enabled (mt_function_options.profile)\n");
        return mt_strbuf_status(sb);
    }
    const mt__jplan *p = f->has_fast && f->mode != MT_MODE_FAST_COMPILE ? &f->fast : &f->ref;
    prof_row *rows = mt_calloc((size_t)p->nsteps + 1, sizeof *rows);
    if (!rows) return MT_ERR_NOMEM;
    double total = 0;
    for (int32_t k = 0; k < p->nsteps; k++) {
        rows[k] = (prof_row){p->steps[k].seconds, k};
        total += p->steps[k].seconds;
    }
    qsort(rows, (size_t)p->nsteps, sizeof *rows, prof_cmp);
    mt_strbuf_appendf(sb, "profile: %llu calls, %.3f ms in calls (%.1f us per call), %.3f ms in "
                      "steps, compiled in %.3f ms\n", (unsigned long long)f->ncalls,
                      f->call_seconds * 1e3,
                      f->ncalls ? f->call_seconds * 1e6 / (double)f->ncalls : 0.0, total * 1e3,
                      f->compile_seconds * 1e3);
    mt_strbuf_append(sb, "   time%   total ms   calls      MB in     MB out  step\n");
    for (int32_t r = 0; r < p->nsteps; r++) {
        const mt__jstep *s = &p->steps[rows[r].step];
        mt_strbuf_appendf(sb, "  %5.1f%% %10.3f %7llu %10.3f %10.3f  [%d] ",
                          total > 0 ? 100.0 * s->seconds / total : 0.0, s->seconds * 1e3,
                          (unsigned long long)s->calls, (double)s->bytes_in / 1e6,
                          (double)s->bytes_out / 1e6, (int)rows[r].step);
        if (s->kind == MT__STEP_FUSED)
            mt_strbuf_appendf(sb, "fused kernel of %d nodes -> v%d", (int)s->nmembers,
                              (int)s->out_vars[0]);
        else if (s->kind == MT__STEP_REDUCE)
            mt_strbuf_appendf(sb, "fused kernel of %d nodes reduced -> v%d", (int)s->nmembers,
                              (int)s->v);
        else if (s->kind == MT__STEP_COLL_START || s->kind == MT__STEP_COLL_WAIT)
            mt_strbuf_appendf(sb, "%s all-reduce of bucket %d",
                              s->kind == MT__STEP_COLL_START ? "start" : "wait for",
                              (int)p->coll_bucket[s->coll]);
        else if (s->kind == MT__STEP_SCAN)
            mt_strbuf_appendf(sb, "scan loop of %d results -> v%d", (int)s->nout, (int)s->v);
        else
            mt_graph_print_node(f->g, s->v, sb);
        mt_strbuf_append(sb, "\n");
    }
    mt_free(rows);
    return mt_strbuf_status(sb);
}

void mt_function_reset_profile(mt_function *f)
{
    if (!f) return;
    mt__jplan *plans[2] = {&f->ref, &f->fast};
    for (int i = 0; i < 2; i++)
        for (int32_t k = 0; k < plans[i]->nsteps; k++) {
            mt__jstep *s = &plans[i]->steps[k];
            s->calls = 0;
            s->seconds = 0;
            s->bytes_in = s->bytes_out = 0;
        }
    f->ncalls = 0;
    f->call_seconds = 0;
    f->coll_calls = 0;
    f->coll_seconds = f->coll_wait_seconds = 0;
}

/* ---------------------------------------------------------------- convenience */

mt_status mt_graph_eval(const mt_graph *g, int32_t n_out, const mt_var *outputs, int32_t n_in,
                        const mt_var *input_vars, const mt_array *const *input_arrays,
                        mt_device *dev, mt_array *out_arrays)
{
    mt_function_options o;
    mt_function_options_init(&o);
    o.mode = MT_MODE_FAST_COMPILE;
    mt_function *f = NULL;
    mt_status st = function_new(&f, g, n_in, input_vars, n_out, outputs, 0, NULL, dev, &o, true);
    if (st != MT_OK) return st;
    st = mt_function_call(f, n_in, input_arrays, n_out, out_arrays);
    mt_function_free(f);
    return st;
}
