/* Layers that hold other layers or read integer inputs, with Pylearn2's semantics:
 * CompositeLayer (parallel sub-layers; with a CompositeSpace input, inputs_to_layers routes
 * input components to sub-layers, every unmapped component going to every sub-layer; output
 * the CompositeSpace of the sub-layers' outputs), FlattenerLayer (its raw_layer's output as
 * one VectorSpace), an MLP used as a layer (its layers in a chain, input from the layer
 * below), and ProjectionLayer (pylearn2.sandbox.nlp: an IndexSpace(dim k, max_labels V) input
 * looks up rows of W [V, dim], output VectorSpace(k * dim)). Also the walks over the layer
 * tree that the costs, channels and checks use.
 *
 * Composite states: inside a graph a CompositeSpace value is ONE [N, total] matrix holding its
 * components side by side, each flattened (vectors as they are, a layer's NCHW image as C*H*W,
 * the dataset's images as their b01c rows, indices as float32 columns) — Pylearn2's
 * CompositeSpace -> VectorSpace conversion. A layer reading a composite input as a vector
 * (Linear, Softmax, ...) therefore reads the concatenation, as Pylearn2's format_as gives it;
 * a routed sub-layer reads its component(s) as column slices, an image component reshaped
 * back to NCHW. Gradients flow through the slices and concatenations.
 *
 * Names: a sub-layer's path is its container's path, '/', its own name ("comp/a"); its
 * parameters are "<path>_W", "<path>_b" ("comp/a_W"), unique because names are unique in
 * each container; top-level layers keep Pylearn2's "h0_W". A FlattenerLayer shares its raw
 * layer's name (as in Pylearn2) and path. Parameters are drawn from the model's seed keyed by
 * these names (init.c), so they are stable across runs and checkpoints. */
#include <stdio.h>
#include <string.h>

#include "model_impl.h"

/* ---------------------------------------------------------------- tree helpers */

bool mt__layer_is_container(const mt__layer *L)
{
    return L->s.kind == MT__LAYER_COMPOSITE || L->s.kind == MT__LAYER_FLATTENER ||
           L->s.kind == MT__LAYER_MLP;
}

static void space_free(mt__space *s)
{
    if (!s) return;
    mt__space_clear(s);
    mt_free(s);
}

void mt__layer_clear(mt__layer *L)
{
    if (!L) return;
    mt__layer_spec_clear(&L->s);
    space_free(L->in_sp);
    space_free(L->out_sp);
    L->in_sp = L->out_sp = NULL;
    for (int32_t i = 0; i < L->n_sub; i++) mt__layer_clear(&L->sub[i]);
    mt_free(L->sub);
    L->sub = NULL;
    L->n_sub = 0;
    mt_free(L->sub_in_off);
    mt_free(L->sub_in);
    L->sub_in_off = L->sub_in = NULL;
}

mt_status mt__layer_walk(const mt__layer *L, mt__layer_fn fn, void *user)
{
    mt_status st = fn(L, user);
    for (int32_t i = 0; !st && i < L->n_sub; i++) st = mt__layer_walk(&L->sub[i], fn, user);
    return st;
}

const mt__layer *mt__output_layer(const mt_model *m)
{
    if (!m || m->n_layers < 1) return NULL;
    const mt__layer *L = &m->layers[m->n_layers - 1];
    while (L->s.kind == MT__LAYER_MLP && L->n_sub > 0) L = &L->sub[L->n_sub - 1];
    return L;
}

typedef struct find_ctx {
    const char *path;
    const mt__layer *found;
} find_ctx;

static mt_status find_fn(const mt__layer *L, void *user)
{
    find_ctx *f = user;
    if (!strcmp(L->path, f->path)) {
        f->found = L;
        return MT_ERR_INTERNAL; /* stops the walk: not an error for the caller */
    }
    return MT_OK;
}

const mt__layer *mt__find_path(const mt_model *m, const char *path)
{
    find_ctx f = {path, NULL};
    for (int32_t i = 0; m && path && i < m->n_layers && !f.found; i++)
        (void)mt__layer_walk(&m->layers[i], find_fn, &f);
    return f.found;
}

typedef struct weights_ctx {
    const mt_model *m;
} weights_ctx;

static mt_status weights_fn(const mt__layer *L, void *user)
{
    const weights_ctx *w = user;
    if (L->iW >= 0 && w->m->params[L->iW].is_weight) return MT_ERR_INTERNAL; /* found: stop */
    return MT_OK;
}

bool mt__layer_has_weights(const mt_model *m, const mt__layer *L)
{
    weights_ctx w = {m};
    return mt__layer_walk(L, weights_fn, &w) != MT_OK;
}

/* ---------------------------------------------------------------- set_input_space */

static mt_status space_new(mt__space **out, const mt__space *src)
{
    *out = mt_calloc(1, sizeof(mt__space));
    if (!*out) return mt_err_set(MT_ERR_NOMEM, "model: out of memory");
    return mt__space_copy(*out, src);
}

static mt_status space_desc(const mt__space *s, const char *fmt, const mt__layer *L, int code)
{
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    mt__space_format(s, &sb);
    mt_status st = mt_err_set((mt_status)code, fmt, L->s.name, L->s.cls, sb.data ? sb.data : "");
    mt_strbuf_deinit(&sb);
    return st;
}

/* The CompositeSpace of the given spaces (copied), or a copy of the one space when n is 1. */
static mt_status composite_of(mt__space **out, int32_t n, const mt__space *const *parts)
{
    if (n == 1) return space_new(out, parts[0]);
    *out = mt_calloc(1, sizeof(mt__space));
    if (!*out) return mt_err_set(MT_ERR_NOMEM, "model: out of memory");
    (*out)->kind = MT__SPACE_COMPOSITE;
    (*out)->comp = mt_calloc((size_t)n, sizeof(mt__space));
    if (!(*out)->comp) return mt_err_set(MT_ERR_NOMEM, "model: out of memory");
    for (int32_t i = 0; i < n; i++) {
        mt_status st = mt__space_copy(&(*out)->comp[i], parts[i]);
        if (st) return st;
        (*out)->n_comp = i + 1;
    }
    return MT_OK;
}

static mt_status unique_names(const mt__layer *L)
{
    for (int32_t i = 0; i < L->s.n_sub; i++)
        for (int32_t j = 0; j < i; j++)
            if (!strcmp(L->s.sub[i].name, L->s.sub[j].name))
                return mt_err_set(MT_ERR_INVALID, "layer '%s' (%s): two or more layers named "
                                  "'%s'", L->s.name, L->s.cls, L->s.sub[i].name);
    return MT_OK;
}

static bool route_has(const mt__layer_spec *s, int32_t r, int32_t layer)
{
    for (int32_t k = s->route_off[r]; k < s->route_off[r + 1]; k++)
        if (s->route_val[k] == layer) return true;
    return false;
}

/* Pylearn2's CompositeLayer.set_input_space: input component j goes to sub-layer i when
 * inputs_to_layers maps j to a list holding i, or when j is not a key of the mapping. */
static mt_status composite_routes(mt__layer *L)
{
    const mt__layer_spec *s = &L->s;
    const mt__space *in = L->in_sp;
    if (in->kind != MT__SPACE_COMPOSITE)
        return space_desc(in, "layer '%s' (%s): inputs_to_layers maps the components of a "
                          "CompositeSpace input, but the input is %s", L, MT_ERR_INVALID);
    for (int32_t r = 0; r < s->n_route; r++)
        if (s->route_key[r] >= in->n_comp)
            return mt_err_set(MT_ERR_INVALID, "layer '%s' (CompositeLayer): inputs_to_layers "
                              "has the key %d (0-based) but the input space has only %d "
                              "components", s->name, (int)s->route_key[r], (int)in->n_comp);
    /* the routes are int32 offsets into sub_in: at most n_sub * n_comp of them */
    int64_t n_pairs = 0;
    if (__builtin_mul_overflow((int64_t)L->n_sub, (int64_t)in->n_comp, &n_pairs) ||
        n_pairs >= INT32_MAX)
        return mt_err_set(MT_ERR_RANGE, "layer '%s' (CompositeLayer): inputs_to_layers over %d "
                          "sub-layers and %d input components gives %lld routes, over the limit "
                          "of %d", L->path, (int)L->n_sub, (int)in->n_comp, (long long)n_pairs,
                          INT32_MAX - 1);
    L->sub_in_off = mt_calloc((size_t)L->n_sub + 1, sizeof(int32_t));
    L->sub_in = mt_calloc((size_t)n_pairs + 1, sizeof(int32_t));
    if (!L->sub_in_off || !L->sub_in) return mt_err_set(MT_ERR_NOMEM, "model: out of memory");
    int32_t k = 0;
    for (int32_t i = 0; i < L->n_sub; i++) {
        L->sub_in_off[i] = k;
        for (int32_t j = 0; j < in->n_comp; j++) {
            int32_t r = -1;
            for (int32_t q = 0; q < s->n_route; q++)
                if (s->route_key[q] == j) r = q;
            if (r < 0 || route_has(s, r, i)) L->sub_in[k++] = j;
        }
        if (k == L->sub_in_off[i])
            return mt_err_set(MT_ERR_INVALID, "layer '%s' (CompositeLayer): inputs_to_layers "
                              "gives sub-layer %d ('%s') no input component", s->name, (int)i,
                              s->sub[i].name);
    }
    L->sub_in_off[L->n_sub] = k;
    return MT_OK;
}

static mt_status set_out_shape(mt__layer *L)
{
    const mt__space *o = L->out_sp;
    char what[MT__PATH_MAX + 64];
    snprintf(what, sizeof(what), "layer '%s' (%s): output", L->path, L->s.cls);
    mt_status st = mt__space_dim(o, what, &L->out_dim);
    if (st) return st;
    L->out_image = o->kind == MT__SPACE_CONV2D && o->nchw;
    L->out_c = L->out_image ? o->channels : 0;
    L->out_h = L->out_image ? o->shape[0] : 0;
    L->out_w = L->out_image ? o->shape[1] : 0;
    return MT_OK;
}

mt_status mt__setup_container(mt_model *m, mt__layer *L, int32_t li)
{
    const mt__layer_spec *s = &L->s;
    if (s->n_sub < 1)
        return mt_err_set(MT_ERR_INVALID, "layer '%s' (%s): layers must not be empty", s->name,
                          s->cls);
    mt_status st = unique_names(L);
    if (st) return st;
    L->sub = mt_calloc((size_t)s->n_sub, sizeof(mt__layer));
    if (!L->sub) return mt_err_set(MT_ERR_NOMEM, "model: out of memory");
    for (int32_t i = 0; i < s->n_sub; i++) {
        if ((st = mt__layer_spec_copy(&L->sub[i].s, &s->sub[i]))) return st;
        L->n_sub = i + 1;
    }
    char path[MT__PATH_MAX + MT__NAME_MAX + 2];
    const mt__space *in = L->in_sp;
    switch (s->kind) {
    case MT__LAYER_FLATTENER: {
        if ((st = mt__setup_layer(m, &L->sub[0], li, L->path, in))) return st;
        mt__space v;
        memset(&v, 0, sizeof(v));
        v.kind = MT__SPACE_VECTOR;
        v.dim = L->sub[0].out_dim; /* checked when the raw layer was placed */
        st = space_new(&L->out_sp, &v);
        break;
    }
    case MT__LAYER_MLP: {
        const mt__space *sp = in;
        for (int32_t i = 0; i < L->n_sub; i++) {
            snprintf(path, sizeof(path), "%s/%s", L->path, L->sub[i].s.name);
            if ((st = mt__setup_layer(m, &L->sub[i], li, path, sp))) return st;
            sp = L->sub[i].out_sp;
        }
        st = space_new(&L->out_sp, sp);
        break;
    }
    case MT__LAYER_COMPOSITE: {
        if (s->n_route > 0 && (st = composite_routes(L))) return st;
        const mt__space **outs = mt_calloc((size_t)L->n_sub, sizeof(*outs));
        const mt__space **parts = mt_calloc((size_t)(in->n_comp + 1), sizeof(*parts));
        if (!outs || !parts) st = mt_err_set(MT_ERR_NOMEM, "model: out of memory");
        for (int32_t i = 0; !st && i < L->n_sub; i++) {
            mt__space *sub_in = NULL;
            if (L->sub_in_off) {
                int32_t n = L->sub_in_off[i + 1] - L->sub_in_off[i];
                for (int32_t k = 0; k < n; k++)
                    parts[k] = &in->comp[L->sub_in[L->sub_in_off[i] + k]];
                st = composite_of(&sub_in, n, parts);
            }
            snprintf(path, sizeof(path), "%s/%s", L->path, L->sub[i].s.name);
            if (!st) st = mt__setup_layer(m, &L->sub[i], li, path, sub_in ? sub_in : in);
            space_free(sub_in);
            if (!st) outs[i] = L->sub[i].out_sp;
        }
        /* Pylearn2's output space is always the CompositeSpace, one sub-layer or more */
        if (!st) {
            mt__space c;
            memset(&c, 0, sizeof(c));
            c.kind = MT__SPACE_COMPOSITE;
            c.n_comp = L->n_sub;
            c.comp = mt_calloc((size_t)L->n_sub, sizeof(mt__space));
            if (!c.comp) st = mt_err_set(MT_ERR_NOMEM, "model: out of memory");
            for (int32_t i = 0; !st && i < L->n_sub; i++) c.comp[i] = *outs[i]; /* shallow */
            if (!st) st = space_new(&L->out_sp, &c);
            mt_free(c.comp);
        }
        mt_free(outs);
        mt_free(parts);
        break;
    }
    default: return mt_err_set(MT_ERR_INTERNAL, "layer '%s' is not a container", s->name);
    }
    if (st) return st;
    return set_out_shape(L);
}

mt_status mt__setup_projection(mt_model *m, mt__layer *L, int32_t li)
{
    const mt__layer_spec *s = &L->s;
    const mt__space *in = L->in_sp;
    if (in->kind != MT__SPACE_INDEX)
        return space_desc(in, "layer '%s' (%s): needs an IndexSpace input (integer indices), "
                          "got %s", L, MT_ERR_INVALID);
    if (s->dim < 1)
        return mt_err_set(MT_ERR_INVALID, "layer '%s' (ProjectionLayer): dim must be >= 1, got "
                          "%lld", s->name, (long long)s->dim);
    if (s->has_irange == s->has_istdev)
        return mt_err_set(MT_ERR_INVALID, "layer '%s' (ProjectionLayer): give irange or istdev "
                          "(exactly one)", s->name);
    mt__space v;
    memset(&v, 0, sizeof(v));
    v.kind = MT__SPACE_VECTOR;
    if (__builtin_mul_overflow(in->dim, s->dim, &v.dim))
        return mt_err_set(MT_ERR_RANGE, "layer '%s' (ProjectionLayer): its output has input dim "
                          "%lld * dim %lld features, more than an int64 holds", L->path,
                          (long long)in->dim, (long long)s->dim);
    int64_t wd[2] = {in->max_labels, s->dim};
    mt_status st = mt__add_param(m, L->path, "W", li, true, 2, wd, &L->iW);
    if (st) return st;
    char what[160];
    snprintf(what, sizeof(what), "layer '%s' (ProjectionLayer)", s->name);
    uint64_t key = mt__init_key(m->seed_key, m->params[L->iW].name);
    if ((st = mt__init_dense(mt__param_data(m, L->iW), wd[0], wd[1], s, key, what))) return st;
    if ((st = space_new(&L->out_sp, &v))) return st;
    return set_out_shape(L);
}

/* ---------------------------------------------------------------- forward */

static int64_t comp_offset(const mt__space *sp, int32_t j)
{
    int64_t off = 0;
    for (int32_t i = 0; i < j; i++) off += mt__space_total_dim(&sp->comp[i]);
    return off;
}

mt__state mt__component_state(mt_model_graph *mg, const mt__space *sp, int32_t j, mt_var x)
{
    mt_graph *g = mg->g;
    const mt__space *c = &sp->comp[j];
    int64_t off = comp_offset(sp, j), d = mt__space_total_dim(c);
    mt__state st = {mt_graph_slice_axis(g, x, 1, off, off + d, 1), false};
    if (c->kind == MT__SPACE_CONV2D && c->nchw) {
        int64_t shp[4] = {MT_RESHAPE_KEEP, c->channels, c->shape[0], c->shape[1]};
        st.v = mt_graph_reshape(g, st.v, 4, shp);
        st.image = true;
    }
    /* an input holding indices is read in float32 (mixed precision would round them); its
     * other components compute in the compute dtype */
    const mt_type *t = st.v ? mt_graph_type(g, st.v) : NULL;
    if (!mt__space_has_index(c) && t && t->dtype != mg->compute)
        st.v = mt_graph_cast(g, st.v, mg->compute);
    return st;
}

mt__state mt__sub_input(mt_model_graph *mg, const mt__layer *L, int32_t i, mt__state x)
{
    if (L->s.kind != MT__LAYER_COMPOSITE || !L->sub_in_off) return x;
    int32_t a = L->sub_in_off[i], n = L->sub_in_off[i + 1] - a;
    if (n == 1) return mt__component_state(mg, L->in_sp, L->sub_in[a], x.v);
    mt_var parts[64] = {0};
    mt_var *pp = n <= 64 ? parts : mt_calloc((size_t)n, sizeof(mt_var));
    mt__state st = {MT_VAR_NONE, false};
    if (!pp) {
        mt_err_set(MT_ERR_NOMEM, "CompositeLayer '%s': routing %d input components", L->path,
                   (int)n);
        return st;
    }
    bool index = false;
    for (int32_t k = 0; k < n; k++) {
        int32_t j = L->sub_in[a + k];
        int64_t off = comp_offset(L->in_sp, j), d = mt__space_total_dim(&L->in_sp->comp[j]);
        pp[k] = mt_graph_slice_axis(mg->g, x.v, 1, off, off + d, 1);
        index |= mt__space_has_index(&L->in_sp->comp[j]);
    }
    st.v = mt_graph_concatenate(mg->g, n, pp, 1);
    if (pp != parts) mt_free(pp);
    /* as mt__component_state: indices stay float32, the rest computes in the compute dtype */
    const mt_type *t = st.v ? mt_graph_type(mg->g, st.v) : NULL;
    if (!index && t && t->dtype != mg->compute) st.v = mt_graph_cast(mg->g, st.v, mg->compute);
    return st;
}

mt_status mt__container_fprop(mt_model_graph *mg, const mt__layer *L, mt__state x,
                              mt__layer_out *lo)
{
    mt_graph *g = mg->g;
    mt_status st = MT_OK;
    lo->in = x;
    lo->pre = MT_VAR_NONE;
    switch (L->s.kind) {
    case MT__LAYER_PROJECTION: {
        /* Pylearn2: W[x.flatten()].reshape((n, k * dim)) */
        mt__set_origin(g, 0, "layer '%s' (ProjectionLayer)", L->path);
        mt_var idx = mt_graph_cast(g, x.v, MT_INT64);
        mt_var e = mt_graph_gather(g, mt__mg_param(mg, L->iW), idx, 0);
        int64_t shp[2] = {MT_RESHAPE_KEEP, L->out_dim};
        lo->out.v = mt_graph_reshape(g, e, 2, shp);
        lo->out.image = false;
        lo->pre = lo->out.v;
        return MT_OK;
    }
    case MT__LAYER_FLATTENER: {
        mt__layer_out r;
        if ((st = mt__layer_fprop(mg, &L->sub[0], x, &r))) return st;
        lo->pre = r.pre;
        lo->out.v = mt__flatten_state(g, r.out);
        lo->out.image = false;
        return MT_OK;
    }
    case MT__LAYER_MLP: {
        mt__state s = x;
        mt__layer_out r;
        memset(&r, 0, sizeof(r));
        for (int32_t i = 0; i < L->n_sub; i++) {
            if ((st = mt__layer_fprop(mg, &L->sub[i], s, &r))) return st;
            s = r.out;
        }
        lo->pre = r.pre;
        lo->out = r.out;
        return MT_OK;
    }
    case MT__LAYER_COMPOSITE: {
        mt_var parts[64] = {0};
        mt_var *pp = L->n_sub <= 64 ? parts : mt_calloc((size_t)L->n_sub, sizeof(mt_var));
        if (!pp) return mt_err_set(MT_ERR_NOMEM, "fprop: out of memory");
        for (int32_t i = 0; !st && i < L->n_sub; i++) {
            mt__layer_out r;
            st = mt__layer_fprop(mg, &L->sub[i], mt__sub_input(mg, L, i, x), &r);
            if (!st) pp[i] = mt__flatten_state(g, r.out);
        }
        if (!st) {
            mt__set_origin(g, 0, "layer '%s' (CompositeLayer)", L->path);
            lo->out.v = L->n_sub == 1 ? pp[0] : mt_graph_concatenate(g, L->n_sub, pp, 1);
            lo->out.image = false;
        }
        if (pp != parts) mt_free(pp);
        return st;
    }
    default: return mt_err_set(MT_ERR_INTERNAL, "layer '%s' is not a container", L->s.name);
    }
}
