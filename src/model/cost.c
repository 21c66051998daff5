/* Costs (Pylearn2's pylearn2.costs): Default (the model's default cost), MethodCost
 * (cost_from_X), MeanSquaredReconstructionError, WeightDecay and L1WeightDecay, Dropout,
 * SumOfCosts and ExpressionCost (a cost written in the expression language). A cost object
 * holds only hyperparameters (copied); mt_cost_expr builds its graph for a model graph. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mltrain/graph_parse.h"
#include "model_impl.h"

static const char *const cost_names[MT__COST_KIND_COUNT] = {
    [MT__COST_DEFAULT] = "Default",
    [MT__COST_METHOD] = "MethodCost",
    [MT__COST_MSRE] = "MeanSquaredReconstructionError",
    [MT__COST_WEIGHT_DECAY] = "WeightDecay",
    [MT__COST_L1_WEIGHT_DECAY] = "L1WeightDecay",
    [MT__COST_DROPOUT] = "Dropout",
    [MT__COST_SUM] = "SumOfCosts",
    [MT__COST_EXPRESSION] = "ExpressionCost",
};

const char *mt_cost_type_name(const mt_cost *c)
{
    return c && (unsigned)c->kind < MT__COST_KIND_COUNT ? cost_names[c->kind] : "invalid";
}

/* ---------------------------------------------------------------- construction */

mt_status mt__cost_alloc(mt_cost **out, mt__cost_kind kind)
{
    *out = mt_calloc(1, sizeof(mt_cost));
    if (!*out) return mt_err_set(MT_ERR_NOMEM, "cost: out of memory");
    (*out)->kind = kind;
    mt_dropout_spec_init(&(*out)->dropout);
    return MT_OK;
}

static void free_names(char **names, int32_t n)
{
    if (!names) return;
    for (int32_t i = 0; i < n; i++) mt_free(names[i]);
    mt_free(names);
}

void mt_cost_free(mt_cost *c)
{
    if (!c) return;
    mt_free(c->coeffs);
    free_names(c->coeff_names, c->n_coeffs);
    free_names(c->dp_prob_names, c->dropout.n_include_probs);
    mt_free(c->dp_probs);
    free_names(c->dp_scale_names, c->dropout.n_input_scales);
    mt_free(c->dp_scales);
    for (int32_t i = 0; i < c->n_terms; i++) mt_cost_free(c->terms[i]);
    mt_free(c->terms);
    mt_free(c->term_coeffs);
    mt_free(c->expr);
    mt_free(c);
}

static mt_status dup_names(char ***out, int32_t n, const char *const *names)
{
    *out = NULL;
    if (n <= 0 || !names) return MT_OK;
    char **a = mt_calloc((size_t)n, sizeof(char *));
    if (!a) return mt_err_set(MT_ERR_NOMEM, "cost: out of memory");
    for (int32_t i = 0; i < n; i++)
        if (!(a[i] = mt_strdup(names[i] ? names[i] : ""))) {
            free_names(a, n);
            return mt_err_set(MT_ERR_NOMEM, "cost: out of memory");
        }
    *out = a;
    return MT_OK;
}

static mt_status dup_doubles(double **out, int32_t n, const double *v)
{
    *out = NULL;
    if (n <= 0) return MT_OK;
    *out = mt_malloc((size_t)n * sizeof(double));
    if (!*out) return mt_err_set(MT_ERR_NOMEM, "cost: out of memory");
    memcpy(*out, v, (size_t)n * sizeof(double));
    return MT_OK;
}

mt_status mt_cost_default(mt_cost **out) { return mt__cost_alloc(out, MT__COST_DEFAULT); }

mt_status mt_cost_msre(mt_cost **out) { return mt__cost_alloc(out, MT__COST_MSRE); }

mt_status mt_cost_method(mt_cost **out, const char *method)
{
    *out = NULL;
    if (!method || strcmp(method, "cost_from_X") != 0)
        return mt_err_set(MT_ERR_INVALID, "MethodCost: unknown method '%s' (valid: cost_from_X)",
                          method ? method : "(null)");
    mt_status st = mt__cost_alloc(out, MT__COST_METHOD);
    if (!st) mt__copy_name((*out)->method, sizeof((*out)->method), method);
    return st;
}

mt_status mt_cost_weight_decay(mt_cost **out, bool l1, int32_t n, const double *coeffs,
                               const char *const *layer_names)
{
    *out = NULL;
    const char *cls = l1 ? "L1WeightDecay" : "WeightDecay";
    bool all = n == -1;
    if (all) {
        n = 1;
        layer_names = NULL;
    }
    if (n < 0 || (n > 0 && !coeffs))
        return mt_err_set(MT_ERR_INVALID, "%s: invalid coefficient list", cls);
    for (int32_t i = 0; i < n; i++)
        if (!isfinite(coeffs[i]))
            return mt_err_set(MT_ERR_INVALID, "%s: coefficient %d is not finite", cls, (int)i);
    mt_cost *c;
    mt_status st = mt__cost_alloc(&c, l1 ? MT__COST_L1_WEIGHT_DECAY : MT__COST_WEIGHT_DECAY);
    if (st) return st;
    c->n_coeffs = n;
    c->coeff_all = all;
    if ((st = dup_doubles(&c->coeffs, n, coeffs)) ||
        (st = dup_names(&c->coeff_names, n, layer_names))) {
        c->n_coeffs = 0;
        mt_cost_free(c);
        return st;
    }
    *out = c;
    return MT_OK;
}

void mt_dropout_spec_init(mt_dropout_spec *s)
{
    memset(s, 0, sizeof(*s));
    s->default_input_include_prob = 0.5;
    s->default_input_scale = 2.0;
    s->per_example = true;
}

static mt_status check_prob(double p, const char *what)
{
    if (!(p >= 0.0 && p <= 1.0))
        return mt_err_set(MT_ERR_INVALID, "Dropout: %s %g is not a probability in [0, 1]", what,
                          p);
    return MT_OK;
}

mt_status mt_cost_dropout(mt_cost **out, const mt_dropout_spec *s)
{
    *out = NULL;
    mt_status st = check_prob(s->default_input_include_prob, "default_input_include_prob");
    for (int32_t i = 0; !st && i < s->n_include_probs; i++)
        st = check_prob(s->include_probs[i], "input_include_probs value");
    if (st) return st;
    mt_cost *c;
    if ((st = mt__cost_alloc(&c, MT__COST_DROPOUT))) return st;
    c->dropout = *s;
    c->dropout.n_include_probs = c->dropout.n_input_scales = 0;
    if ((s->n_include_probs > 0 && (!s->include_prob_layers || !s->include_probs)) ||
        (s->n_input_scales > 0 && (!s->input_scale_layers || !s->input_scales)))
        st = mt_err_set(MT_ERR_INVALID, "Dropout: per-layer overrides without names or values");
    if (!st) st = dup_names(&c->dp_prob_names, s->n_include_probs, s->include_prob_layers);
    if (!st) {
        c->dropout.n_include_probs = s->n_include_probs;
        st = dup_doubles(&c->dp_probs, s->n_include_probs, s->include_probs);
    }
    if (!st) st = dup_names(&c->dp_scale_names, s->n_input_scales, s->input_scale_layers);
    if (!st) {
        c->dropout.n_input_scales = s->n_input_scales;
        st = dup_doubles(&c->dp_scales, s->n_input_scales, s->input_scales);
    }
    if (st) {
        mt_cost_free(c);
        return st;
    }
    c->dropout.include_prob_layers = (const char *const *)c->dp_prob_names;
    c->dropout.include_probs = c->dp_probs;
    c->dropout.input_scale_layers = (const char *const *)c->dp_scale_names;
    c->dropout.input_scales = c->dp_scales;
    *out = c;
    return MT_OK;
}

mt_status mt_cost_sum(mt_cost **out, int32_t n, const double *coeffs,
                      const mt_cost *const *terms)
{
    *out = NULL;
    if (n < 1 || !terms) return mt_err_set(MT_ERR_INVALID, "SumOfCosts: costs must not be empty");
    mt_cost *c;
    mt_status st = mt__cost_alloc(&c, MT__COST_SUM);
    if (st) return st;
    c->terms = mt_calloc((size_t)n, sizeof(mt_cost *));
    c->term_coeffs = mt_malloc((size_t)n * sizeof(double));
    if (!c->terms || !c->term_coeffs) {
        mt_cost_free(c);
        return mt_err_set(MT_ERR_NOMEM, "SumOfCosts: out of memory");
    }
    for (int32_t i = 0; i < n; i++) {
        c->term_coeffs[i] = coeffs ? coeffs[i] : 1.0;
        if (!isfinite(c->term_coeffs[i])) st = mt_err_set(MT_ERR_INVALID, "SumOfCosts: "
                                                          "coefficient %d is not finite", (int)i);
        if (!st) st = mt_cost_clone(&c->terms[i], terms[i]);
        if (st) break;
        c->n_terms = i + 1;
    }
    if (st) {
        mt_cost_free(c);
        return st;
    }
    *out = c;
    return MT_OK;
}

mt_status mt_cost_expression(mt_cost **out, const char *text)
{
    *out = NULL;
    if (!text || !*text) return mt_err_set(MT_ERR_INVALID, "ExpressionCost: expr is empty");
    mt_cost *c;
    mt_status st = mt__cost_alloc(&c, MT__COST_EXPRESSION);
    if (st) return st;
    if (!(c->expr = mt_strdup(text))) {
        mt_cost_free(c);
        return mt_err_set(MT_ERR_NOMEM, "ExpressionCost: out of memory");
    }
    *out = c;
    return MT_OK;
}

mt_status mt_cost_clone(mt_cost **out, const mt_cost *c)
{
    *out = NULL;
    if (!c) return mt_err_set(MT_ERR_INVALID, "cost clone: NULL cost");
    switch (c->kind) {
    case MT__COST_DEFAULT: return mt_cost_default(out);
    case MT__COST_MSRE: return mt_cost_msre(out);
    case MT__COST_METHOD: return mt_cost_method(out, c->method);
    case MT__COST_WEIGHT_DECAY:
    case MT__COST_L1_WEIGHT_DECAY:
        return mt_cost_weight_decay(out, c->kind == MT__COST_L1_WEIGHT_DECAY,
                                    c->coeff_all ? -1 : c->n_coeffs, c->coeffs,
                                    (const char *const *)c->coeff_names);
    case MT__COST_DROPOUT: return mt_cost_dropout(out, &c->dropout);
    case MT__COST_SUM:
        return mt_cost_sum(out, c->n_terms, c->term_coeffs, (const mt_cost *const *)c->terms);
    case MT__COST_EXPRESSION: return mt_cost_expression(out, c->expr);
    default: return mt_err_set(MT_ERR_INVALID, "cost clone: invalid cost");
    }
}

/* ---------------------------------------------------------------- checks */

static mt_status unknown_layer(const mt_model *m, const char *cls, const char *what,
                               const char *name)
{
    const char *sug = mt__suggest_layer(m, name);
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    for (int32_t i = 0; i < m->n_layers; i++)
        mt_strbuf_appendf(&sb, "%s'%s'", i ? ", " : "", m->layers[i].s.name);
    mt_status st = mt_err_set(MT_ERR_INVALID, "%s: %s names no layer of the %s: '%s'%s%s%s "
                              "(layers: %s)", cls, what, mt_model_type_name(m), name,
                              sug ? " (did you mean '" : "", sug ? sug : "", sug ? "'?)" : "",
                              sb.data ? sb.data : "");
    mt_strbuf_deinit(&sb);
    return st;
}

/* The layer a coefficient selector names: a layer path ("h0", "comp/a") or, for the entries
 * of nested coefficient lists, positions ("@1/@0": sub-layer 0 of layer 1; a FlattenerLayer
 * passes its list to its raw layer, as Pylearn2's get_weight_decay does). NULL if none. */
static const mt__layer *resolve_selector(const mt_model *m, const char *sel)
{
    if (sel[0] != '@') return mt__find_path(m, sel);
    const mt__layer *L = NULL;
    const char *p = sel;
    while (*p == '@') {
        char *end;
        long k = strtol(p + 1, &end, 10);
        if (end == p + 1 || k < 0) return NULL;
        if (!L) {
            if (k >= m->n_layers) return NULL;
            L = &m->layers[k];
        } else {
            while (L->s.kind == MT__LAYER_FLATTENER) L = &L->sub[0];
            if (k >= L->n_sub) return NULL;
            L = &L->sub[k];
        }
        if (*end == '\0') return L;
        if (*end != '/') return NULL;
        p = end + 1;
    }
    return NULL;
}

static int32_t selector_depth(const char *sel)
{
    int32_t d = 1;
    for (const char *p = sel; *p; p++) d += *p == '/';
    return d;
}

typedef struct decay_set {
    const mt_model *m;
    double *per_param;
    double coeff;
} decay_set;

static mt_status decay_set_fn(const mt__layer *L, void *user)
{
    decay_set *d = user;
    if (L->iW >= 0 && d->m->params[L->iW].is_weight) d->per_param[L->iW] = d->coeff;
    if (mt__layer_is_recurrent(L) && L->iU >= 0) d->per_param[L->iU] = d->coeff; /* U too */
    return MT_OK;
}

/* Sets the coefficient of every weight under L (its own and its sub-layers'). */
static mt_status decay_assign(const mt_cost *c, const mt_model *m, const mt__layer *L,
                              double coeff, double *per_param)
{
    if (coeff != 0.0 && !mt__layer_has_weights(m, L))
        return mt_err_set(MT_ERR_INVALID, "%s: layer '%s' (%s) has no weights but its "
                          "coefficient is %g", mt_cost_type_name(c), L->path, L->s.cls, coeff);
    decay_set d = {m, per_param, coeff};
    return mt__layer_walk(L, decay_set_fn, &d);
}

/* A count marker of a nested list ("#": the top-level list, "@1/#": the list at layer 1)
 * checks the list's length against the layers it covers. */
static mt_status decay_count(const mt_cost *c, const mt_model *m, const char *sel, double n)
{
    const char *cls = mt_cost_type_name(c);
    if (!strcmp(sel, "#")) {
        if ((int32_t)n != m->n_layers)
            return mt_err_set(MT_ERR_INVALID, "%s: coeffs has %d entries but the %s has %d "
                              "layers (give one per layer, or a {layer_name: coeff} map)", cls,
                              (int)n, mt_model_type_name(m), (int)m->n_layers);
        return MT_OK;
    }
    char parent[MT__PATH_MAX];
    snprintf(parent, sizeof(parent), "%.*s", (int)(strlen(sel) - 2), sel);
    const mt__layer *L = resolve_selector(m, parent);
    while (L && L->s.kind == MT__LAYER_FLATTENER) L = &L->sub[0];
    if (!L || !L->n_sub)
        return mt_err_set(MT_ERR_INVALID, "%s: coeffs gives a list of %d coefficients at "
                          "position %s, which is not a CompositeLayer or nested MLP", cls,
                          (int)n, parent);
    if ((int32_t)n != L->n_sub)
        return mt_err_set(MT_ERR_INVALID, "%s: coeffs gives %d coefficients for layer '%s' "
                          "(%s), which has %d layers", cls, (int)n, L->path, L->s.cls,
                          (int)L->n_sub);
    return MT_OK;
}

/* The coefficients of the cost resolved per parameter into per_param[n_params] (0 for
 * parameters without decay); layers through containers, Pylearn2's rules: one number for
 * every layer, a list per layer (nested lists for CompositeLayer / nested MLP sub-layers;
 * one number for a container covers all its sub-layers), or {layer_name: coeff} where names
 * may be paths ("comp/a") and deeper names override their containers'. */
static mt_status decay_coeffs(const mt_cost *c, const mt_model *m, double *per_param)
{
    const char *cls = mt_cost_type_name(c);
    for (int32_t i = 0; i < m->n_params; i++) per_param[i] = 0.0;
    if (c->coeff_all) {
        for (int32_t i = 0; i < m->n_params; i++)
            per_param[i] = m->params[i].is_weight ? c->coeffs[0] : 0.0;
        return MT_OK;
    }
    if (!c->coeff_names) {
        if (c->n_coeffs != m->n_layers) return decay_count(c, m, "#", c->n_coeffs);
        for (int32_t i = 0; i < m->n_layers; i++) {
            mt_status st = decay_assign(c, m, &m->layers[i], c->coeffs[i], per_param);
            if (st) return st;
        }
        return MT_OK;
    }
    int32_t maxd = 1;
    for (int32_t i = 0; i < c->n_coeffs; i++) {
        int32_t d = selector_depth(c->coeff_names[i]);
        if (d > maxd) maxd = d;
    }
    for (int32_t depth = 1; depth <= maxd; depth++)
        for (int32_t i = 0; i < c->n_coeffs; i++) {
            const char *sel = c->coeff_names[i];
            if (selector_depth(sel) != depth) continue;
            size_t n = strlen(sel);
            mt_status st;
            if (sel[n - 1] == '#') {
                st = decay_count(c, m, sel, c->coeffs[i]);
            } else {
                const mt__layer *L = resolve_selector(m, sel);
                if (!L) return unknown_layer(m, cls, "coeffs", sel);
                st = decay_assign(c, m, L, c->coeffs[i], per_param);
            }
            if (st) return st;
        }
    return MT_OK;
}

mt_status mt__dropout_arrays(const mt_cost *c, const mt_model *m, double *include_prob,
                             double *scale)
{
    const mt_dropout_spec *d = &c->dropout;
    for (int32_t i = 0; i < m->n_layers; i++) {
        include_prob[i] = d->default_input_include_prob;
        scale[i] = d->default_input_scale;
    }
    for (int32_t i = 0; i < d->n_include_probs; i++) {
        int32_t li = mt_model_find_layer(m, d->include_prob_layers[i]);
        if (li < 0) return unknown_layer(m, "Dropout", "input_include_probs",
                                         d->include_prob_layers[i]);
        include_prob[li] = d->include_probs[i];
    }
    for (int32_t i = 0; i < d->n_input_scales; i++) {
        int32_t li = mt_model_find_layer(m, d->input_scale_layers[i]);
        if (li < 0) return unknown_layer(m, "Dropout", "input_scales", d->input_scale_layers[i]);
        scale[li] = d->input_scales[i];
    }
    return MT_OK;
}

static mt_status check_default(const mt_model *m, const char *cls)
{
    if (mt__model_is_autoencoder(m)) return MT_OK;
    const mt__layer *L = mt__output_layer(m);
    if (!mt__layer_has_cost(L))
        return mt_err_set(MT_ERR_UNSUPPORTED, "%s: the output layer '%s' (%s) has no cost: the "
                          "last layer of the MLP must be Softmax, Linear or Sigmoid", cls,
                          L->s.name, L->s.cls);
    return MT_OK;
}

mt_status mt_cost_check(const mt_cost *c, const mt_model *m)
{
    if (!c || !m) return mt_err_set(MT_ERR_INVALID, "cost check: NULL argument");
    switch (c->kind) {
    case MT__COST_DEFAULT:
    case MT__COST_METHOD: return check_default(m, mt_cost_type_name(c));
    case MT__COST_MSRE:
        if (!mt__model_is_autoencoder(m))
            return mt_err_set(MT_ERR_UNSUPPORTED, "MeanSquaredReconstructionError needs an "
                              "autoencoder model (it reconstructs the input), got %s",
                              mt_model_type_name(m));
        return MT_OK;
    case MT__COST_WEIGHT_DECAY:
    case MT__COST_L1_WEIGHT_DECAY: {
        double *pl = mt_malloc((size_t)(m->n_params ? m->n_params : 1) * sizeof(double));
        if (!pl) return mt_err_set(MT_ERR_NOMEM, "cost check: out of memory");
        mt_status st = decay_coeffs(c, m, pl);
        mt_free(pl);
        return st;
    }
    case MT__COST_DROPOUT: {
        if (!mt__model_is_mlp(m))
            return mt_err_set(MT_ERR_UNSUPPORTED, "Dropout needs an MLP, got %s",
                              mt_model_type_name(m));
        double *a = mt_malloc((size_t)m->n_layers * 2 * sizeof(double));
        if (!a) return mt_err_set(MT_ERR_NOMEM, "cost check: out of memory");
        mt_status st = mt__dropout_arrays(c, m, a, a + m->n_layers);
        mt_free(a);
        return st ? st : check_default(m, "Dropout");
    }
    case MT__COST_SUM:
        for (int32_t i = 0; i < c->n_terms; i++) {
            mt_status st = mt_cost_check(c->terms[i], m);
            if (st) return mt_err_prefix(st, "SumOfCosts term %d: ", (int)i);
        }
        return MT_OK;
    case MT__COST_EXPRESSION: return MT_OK;
    default: return mt_err_set(MT_ERR_INVALID, "cost check: invalid cost");
    }
}

/* ---------------------------------------------------------------- expressions */

static mt_status weight_decay_expr(const mt_cost *c, mt_model_graph *mg, mt_var *out)
{
    const mt_model *m = mg->m;
    mt_graph *g = mg->g;
    double *pl = mt_malloc((size_t)(m->n_params ? m->n_params : 1) * sizeof(double));
    if (!pl) return mt_err_set(MT_ERR_NOMEM, "weight decay: out of memory");
    mt_status st = decay_coeffs(c, m, pl);
    mt_var total = MT_VAR_NONE;
    bool l1 = c->kind == MT__COST_L1_WEIGHT_DECAY;
    mt__set_origin(g, 0, "cost %s", mt_cost_type_name(c));
    /* parameters are in layer order, so this sums layer by layer */
    for (int32_t p = 0; !st && p < m->n_params; p++) {
        if (pl[p] == 0.0 || !m->params[p].is_weight) continue;
        mt_var W = mg->params[p];
        mt_var t = l1 ? mt__sum_abs(g, W) : mt__sum_sq(g, W);
        t = mt_graph_mul(g, mt_graph_literal_float(g, pl[p]), t);
        total = total ? mt_graph_add(g, total, t) : t;
    }
    mt_free(pl);
    if (st) return st;
    *out = total ? total : mt_graph_scalar(g, MT_FLOAT32, 0.0);
    return mt__graph_check(g, mt_cost_type_name(c));
}

static mt_status dropout_expr(const mt_cost *c, mt_model_graph *mg, mt_var *out)
{
    const mt_model *m = mg->m;
    mt_status st = mt_cost_check(c, m);
    if (st) return st;
    double *a = mt_malloc((size_t)m->n_layers * 2 * sizeof(double));
    if (!a) return mt_err_set(MT_ERR_NOMEM, "Dropout: out of memory");
    st = mt__dropout_arrays(c, m, a, a + m->n_layers);
    if (!st) {
        mt_fprop_options o;
        memset(&o, 0, sizeof(o));
        o.dropout = true;
        o.include_prob = a;
        o.scale = a + m->n_layers;
        o.per_batch_mask = !c->dropout.per_example;
        st = mt_model_default_cost(mg, &o, out);
    }
    mt_free(a);
    return st;
}

/* Names of an ExpressionCost, built on first use. */
typedef struct expr_ctx {
    mt_model_graph *mg;
    mt_status st;
    mt_var y_hat, default_cost; /* built once */
} expr_ctx;

static mt_var expr_lookup(void *user, mt_graph *g, const char *name)
{
    expr_ctx *x = user;
    mt_model_graph *mg = x->mg;
    (void)g;
    if (!strcmp(name, "X")) return mt__mg_input(mg);
    if (!strcmp(name, "y")) return mg->y;
    if (!strcmp(name, "y_hat") || !strcmp(name, "output")) {
        if (!x->y_hat) {
            mt_status st = mt_model_fprop(mg, NULL, &x->y_hat);
            if (st && !x->st) x->st = st;
        }
        return x->y_hat;
    }
    if (!strcmp(name, "default_cost")) {
        if (!x->default_cost) {
            mt_fprop_options o;
            memset(&o, 0, sizeof(o));
            o.corrupt = true;
            mt_status st = mt_model_default_cost(mg, &o, &x->default_cost);
            if (st && !x->st) x->st = st;
        }
        return x->default_cost;
    }
    int32_t p = mt_model_find_param(mg->m, name);
    return p >= 0 ? mt__mg_param(mg, p) : MT_VAR_NONE;
}

static mt_status expression_expr(const mt_cost *c, mt_model_graph *mg, mt_var *out)
{
    mt_graph *g = mg->g;
    expr_ctx x = {mg, MT_OK, MT_VAR_NONE, MT_VAR_NONE};
    mt_parse_options po;
    mt_parse_options_init(&po);
    po.lookup = expr_lookup;
    po.lookup_user = &x;
    po.no_placeholders = true;
    mt_parse_error err;
    mt_var v = MT_VAR_NONE;
    mt_status st = mt_graph_parse_ex(g, c->expr, &po, &v, &err);
    if (x.st) return mt_err_prefix(x.st, "ExpressionCost '%s': ", c->expr);
    if (st) {
        mt_strbuf sb;
        mt_strbuf_init(&sb);
        mt_parse_error_format(&err, c->expr, &sb);
        st = mt_err_set(st, "ExpressionCost: %s", sb.data ? sb.data : err.message);
        mt_strbuf_deinit(&sb);
        return st;
    }
    const mt_type *t = mt_graph_type(g, v);
    if (!t || t->ndim != 0) {
        mt_strbuf sb;
        mt_strbuf_init(&sb);
        if (t) mt_type_format(t, &sb);
        st = mt_err_set(MT_ERR_SHAPE, "ExpressionCost '%s': the cost must be a scalar, got %s "
                        "(reduce it, e.g. mean(...))", c->expr, sb.data ? sb.data : "?");
        mt_strbuf_deinit(&sb);
        return st;
    }
    if (!mt_dtype_is_float(t->dtype) && !mt_dtype_is_int(t->dtype) && t->dtype != MT_BOOL)
        return mt_err_set(MT_ERR_DTYPE, "ExpressionCost '%s': not a number", c->expr);
    *out = mt_graph_cast(g, v, MT_FLOAT32);
    return mt__graph_check(g, "ExpressionCost");
}

mt_status mt_cost_expr(const mt_cost *c, mt_model_graph *mg, mt_var *out)
{
    *out = MT_VAR_NONE;
    if (!c || !mg || !mg->g || !mg->m) return mt_err_set(MT_ERR_INVALID, "cost: NULL argument");
    mt_graph *g = mg->g;
    mt_fprop_options corrupt;
    memset(&corrupt, 0, sizeof(corrupt));
    corrupt.corrupt = true; /* a DenoisingAutoencoder's cost reconstructs corrupted input */
    mt_status st;
    switch (c->kind) {
    case MT__COST_DEFAULT:
    case MT__COST_METHOD:
        if ((st = check_default(mg->m, mt_cost_type_name(c)))) return st;
        return mt_model_default_cost(mg, &corrupt, out);
    case MT__COST_MSRE:
        if ((st = mt_cost_check(c, mg->m))) return st;
        return mt_model_default_cost(mg, &corrupt, out);
    case MT__COST_WEIGHT_DECAY:
    case MT__COST_L1_WEIGHT_DECAY: return weight_decay_expr(c, mg, out);
    case MT__COST_DROPOUT: return dropout_expr(c, mg, out);
    case MT__COST_SUM: {
        mt_var total = MT_VAR_NONE;
        for (int32_t i = 0; i < c->n_terms; i++) {
            mt_var t;
            if ((st = mt_cost_expr(c->terms[i], mg, &t)))
                return mt_err_prefix(st, "SumOfCosts term %d: ", (int)i);
            mt__set_origin(g, i + 1, "cost SumOfCosts term %d", (int)i);
            if (c->term_coeffs[i] != 1.0)
                t = mt_graph_mul(g, mt_graph_literal_float(g, c->term_coeffs[i]), t);
            total = total ? mt_graph_add(g, total, t) : t;
        }
        *out = mt_graph_cast(g, total, MT_FLOAT32);
        return mt__graph_check(g, "SumOfCosts");
    }
    case MT__COST_EXPRESSION: return expression_expr(c, mg, out);
    default: return mt_err_set(MT_ERR_INVALID, "cost: invalid cost");
    }
}

/* Pylearn2's SumOfCosts.get_monitoring_channels: term_<i>[_<name of the term's value>]. */
static const char *term_value_name(const mt_cost *c)
{
    switch (c->kind) {
    case MT__COST_WEIGHT_DECAY: return "_weight_decay";
    case MT__COST_L1_WEIGHT_DECAY: return "_l1_penalty";
    default: return "";
    }
}

mt_status mt_cost_channels(const mt_cost *c, mt_model_graph *mg, mt_channel_list *out)
{
    if (!c || c->kind != MT__COST_SUM) return MT_OK;
    for (int32_t i = 0; i < c->n_terms; i++) {
        mt_var t;
        mt_status st = mt_cost_expr(c->terms[i], mg, &t);
        if (st) return mt_err_prefix(st, "SumOfCosts term %d: ", (int)i);
        char name[96];
        snprintf(name, sizeof(name), "term_%d%s", (int)i, term_value_name(c->terms[i]));
        mt_chan_reduce r = c->terms[i]->kind == MT__COST_WEIGHT_DECAY ||
                                   c->terms[i]->kind == MT__COST_L1_WEIGHT_DECAY
                               ? MT_CHAN_NODATA
                               : MT_CHAN_MEAN;
        if ((st = mt_channel_list_add(out, name, t, r))) return st;
    }
    return MT_OK;
}

/* ---------------------------------------------------------------- properties */

/* Does the expression text use identifier `id`? */
static bool uses_name(const char *text, const char *id)
{
    size_t n = strlen(id);
    for (const char *p = text; (p = strstr(p, id)) != NULL; p += n) {
        bool left = p == text || !(isalnum((unsigned char)p[-1]) || p[-1] == '_');
        bool right = !(isalnum((unsigned char)p[n]) || p[n] == '_');
        if (left && right) return true;
    }
    return false;
}

bool mt_cost_needs_targets(const mt_cost *c, const mt_model *m)
{
    if (!c) return false;
    switch (c->kind) {
    case MT__COST_DEFAULT:
    case MT__COST_METHOD:
    case MT__COST_DROPOUT: return mt_model_needs_targets(m);
    case MT__COST_SUM:
        for (int32_t i = 0; i < c->n_terms; i++)
            if (mt_cost_needs_targets(c->terms[i], m)) return true;
        return false;
    case MT__COST_EXPRESSION:
        return uses_name(c->expr, "y") ||
               (uses_name(c->expr, "default_cost") && mt_model_needs_targets(m));
    default: return false;
    }
}

bool mt_cost_is_stochastic(const mt_cost *c, const mt_model *m)
{
    if (!c) return false;
    bool dae = m && m->kind == MT__MODEL_DAE;
    switch (c->kind) {
    case MT__COST_DROPOUT: return true;
    case MT__COST_DEFAULT:
    case MT__COST_METHOD:
    case MT__COST_MSRE: return dae;
    case MT__COST_SUM:
        for (int32_t i = 0; i < c->n_terms; i++)
            if (mt_cost_is_stochastic(c->terms[i], m)) return true;
        return false;
    case MT__COST_EXPRESSION: return dae && uses_name(c->expr, "default_cost");
    default: return false;
    }
}
