/* YAML components of the costs (kind "cost"): Default (pylearn2.costs.mlp.Default),
 * MethodCost, MeanSquaredReconstructionError, WeightDecay, L1WeightDecay, Dropout, SumOfCosts
 * and ExpressionCost. Built objects are mt_cost* owning copies of everything (SumOfCosts
 * clones its terms), so a released cost refers to nothing else the builder owns. */
#include <stdio.h>
#include <string.h>

#include "model_impl.h"

static void cost_destroy(void *obj) { mt_cost_free(obj); }

static mt_status key_error(const mt_cfg_node *node, const char *key, mt_status st)
{
    char msg[MT_ERR_MSG_MAX];
    snprintf(msg, sizeof(msg), "%s", mt_last_error());
    return mt_cfg_error(st, mt_cfg_key_loc(node, key), "%s", msg);
}

static mt_status default_build(mt_cfg_builder *b, const mt_cfg_node *node, void **out)
{
    (void)b;
    (void)node;
    return mt_cost_default((mt_cost **)out);
}

static mt_status msre_build(mt_cfg_builder *b, const mt_cfg_node *node, void **out)
{
    (void)b;
    (void)node;
    return mt_cost_msre((mt_cost **)out);
}

static mt_status method_check(const mt_cfg_node *node)
{
    const mt_cfg_node *m = mt_cfg_get(node, "method");
    if (!m || m->kind != MT_CFG_STRING) return MT_OK;
    mt_cost *c;
    mt_status st = mt_cost_method(&c, m->str);
    mt_cost_free(c);
    return st ? key_error(node, "method", st) : MT_OK;
}

static mt_status method_build(mt_cfg_builder *b, const mt_cfg_node *node, void **out)
{
    (void)b;
    const char *m = NULL;
    mt_status st = mt_cfg_get_string(node, "method", NULL, &m);
    if (st) return st;
    st = mt_cost_method((mt_cost **)out, m);
    return st ? key_error(node, "method", st) : MT_OK;
}

/* Coefficient entries of a nested list (CompositeLayer / nested MLP sub-layers): selector
 * strings as mt_cost_weight_decay takes them ("@1/@0" for sub-layer 0 of layer 1, "@1/#" with
 * the list's length for the count check, "#" for the top list). */
typedef struct decay_ents {
    int32_t n, cap;
    char **names;
    double *vals;
} decay_ents;

static mt_status ents_add(decay_ents *e, const char *name, double v)
{
    if (e->n == e->cap) {
        int32_t cap = e->cap ? e->cap * 2 : 16;
        char **nn = mt_realloc(e->names, (size_t)cap * sizeof(char *));
        if (nn) e->names = nn;
        double *nv = mt_realloc(e->vals, (size_t)cap * sizeof(double));
        if (nv) e->vals = nv;
        if (!nn || !nv) return mt_err_set(MT_ERR_NOMEM, "WeightDecay: out of memory");
        e->cap = cap;
    }
    if (!(e->names[e->n] = mt_strdup(name))) return mt_err_set(MT_ERR_NOMEM, "WeightDecay: "
                                                                "out of memory");
    e->vals[e->n++] = v;
    return MT_OK;
}

static void ents_free(decay_ents *e)
{
    for (int32_t i = 0; i < e->n; i++) mt_free(e->names[i]);
    mt_free(e->names);
    mt_free(e->vals);
}

static bool number(const mt_cfg_node *v, double *out)
{
    if (!v || (v->kind != MT_CFG_INT && v->kind != MT_CFG_FLOAT)) return false;
    *out = v->f;
    return true;
}

/* Checks (e NULL) or encodes a coefficient list; nested lists at depth > 0. */
static mt_status decay_list(const mt_cfg_node *l, const char *prefix, decay_ents *e)
{
    char name[256];
    for (int32_t i = 0; i < l->n; i++) {
        const mt_cfg_node *it = l->items[i];
        if (snprintf(name, sizeof(name), "%s@%d", prefix, (int)i) >= (int)sizeof(name))
            return mt_cfg_error(MT_ERR_INVALID, l->loc, "coeffs: lists nested too deeply");
        double v;
        mt_status st = MT_OK;
        if (it && it->kind == MT_CFG_LIST) {
            char sub[256];
            if (snprintf(sub, sizeof(sub), "%s/", name) >= (int)sizeof(sub))
                return mt_cfg_error(MT_ERR_INVALID, it->loc, "coeffs: lists nested too deeply");
            st = decay_list(it, sub, e);
        } else if (it && it->kind == MT_CFG_TAGGED) {
            continue; /* a search tag: resolved by the sweep module before building */
        } else if (!number(it, &v)) {
            return mt_cfg_error(MT_ERR_INVALID, it ? it->loc : l->loc, "coeffs: item %d must be "
                                "a number or a list of numbers (one per sub-layer of a "
                                "CompositeLayer or nested MLP)", (int)i);
        } else if (e) {
            st = ents_add(e, name, v);
        }
        if (st) return st;
    }
    if (!e) return MT_OK;
    if (snprintf(name, sizeof(name), "%s#", prefix) >= (int)sizeof(name))
        return mt_cfg_error(MT_ERR_INVALID, l->loc, "coeffs: lists nested too deeply");
    return ents_add(e, name, (double)l->n);
}

static bool nested(const mt_cfg_node *c)
{
    for (int32_t i = 0; c->kind == MT_CFG_LIST && i < c->n; i++)
        if (c->items[i] && c->items[i]->kind == MT_CFG_LIST) return true;
    return false;
}

static mt_status decay_check(const mt_cfg_node *node)
{
    const mt_cfg_node *c = mt_cfg_get(node, "coeffs");
    if (!c) return MT_OK;
    double v;
    if (c->kind == MT_CFG_LIST) return decay_list(c, "", NULL);
    if (c->kind == MT_CFG_MAP) {
        for (int32_t i = 0; i < c->n; i++)
            if (c->items[i]->kind != MT_CFG_TAGGED && !number(c->items[i], &v))
                return mt_cfg_error(MT_ERR_INVALID, c->items[i]->loc, "coeffs: the coefficient "
                                    "of layer '%s' must be a number", c->keys[i]);
        return MT_OK;
    }
    if (c->kind == MT_CFG_TAGGED || number(c, &v)) return MT_OK;
    return mt_cfg_error(MT_ERR_INVALID, c->loc, "coeffs must be a number, a list (one per layer, "
                        "nested lists for CompositeLayer / nested MLP sub-layers) or "
                        "{layer_name: coeff}");
}

/* coeffs: a list (per layer; an item may be a list, one per sub-layer of a container), one
 * number (every layer) or {layer_name: coeff} (names may be paths like 'comp/a'). */
static mt_status decay_build(mt_cfg_builder *b, const mt_cfg_node *node, void **out)
{
    (void)b;
    bool l1 = node->tag && strstr(node->tag, "L1") != NULL;
    const mt_cfg_node *c = mt_cfg_get(node, "coeffs");
    if (!c) return mt_cfg_error(MT_ERR_INVALID, node->loc, "coeffs is required");
    mt_status st = decay_check(node);
    if (st) return st;
    if (nested(c)) {
        decay_ents e = {0};
        st = decay_list(c, "", &e);
        if (!st)
            st = mt_cost_weight_decay((mt_cost **)out, l1, e.n, e.vals,
                                      (const char *const *)e.names);
        ents_free(&e);
        return st ? key_error(node, "coeffs", st) : MT_OK;
    }
    int32_t n = c->kind == MT_CFG_LIST || c->kind == MT_CFG_MAP ? c->n : 1;
    double *v = mt_malloc((size_t)(n ? n : 1) * sizeof(double));
    const char **names = mt_calloc((size_t)(n ? n : 1), sizeof(char *));
    if (!v || !names) {
        st = mt_err_set(MT_ERR_NOMEM, "WeightDecay: out of memory");
        goto done;
    }
    if (c->kind == MT_CFG_MAP) {
        for (int32_t i = 0; i < n && !st; i++) {
            st = mt_cfg_get_float(c, c->keys[i], 0.0, &v[i]);
            names[i] = c->keys[i];
        }
        if (!st) st = mt_cost_weight_decay((mt_cost **)out, l1, n, v, names);
    } else {
        int32_t got = 0;
        st = mt_cfg_get_floats(node, "coeffs", n, v, &got);
        if (!st) st = mt_cost_weight_decay((mt_cost **)out, l1, c->kind == MT_CFG_LIST ? got : -1,
                                           v, NULL);
    }
    if (st) st = key_error(node, "coeffs", st);
done:
    mt_free(v);
    mt_free(names);
    return st;
}

/* A {layer_name: value} map into owned-by-node names and values. */
static mt_status read_map(const mt_cfg_node *node, const char *key, int32_t *n,
                          const char ***names, double **vals)
{
    *n = 0;
    *names = NULL;
    *vals = NULL;
    const mt_cfg_node *m = mt_cfg_get(node, key);
    if (!m || m->kind == MT_CFG_NULL) return MT_OK;
    if (m->kind != MT_CFG_MAP)
        return mt_cfg_error(MT_ERR_INVALID, mt_cfg_key_loc(node, key), "'%s' must be a mapping "
                            "{layer_name: value}", key);
    *names = mt_calloc((size_t)(m->n ? m->n : 1), sizeof(char *));
    *vals = mt_calloc((size_t)(m->n ? m->n : 1), sizeof(double));
    if (!*names || !*vals) return mt_err_set(MT_ERR_NOMEM, "Dropout: out of memory");
    for (int32_t i = 0; i < m->n; i++) {
        mt_status st = mt_cfg_get_float(m, m->keys[i], 0.0, &(*vals)[i]);
        if (st) return st;
        (*names)[i] = m->keys[i];
    }
    *n = m->n;
    return MT_OK;
}

static mt_status dropout_build(mt_cfg_builder *b, const mt_cfg_node *node, void **out)
{
    (void)b;
    mt_dropout_spec s;
    mt_dropout_spec_init(&s);
    const char **pn = NULL, **sn = NULL;
    double *pv = NULL, *sv = NULL;
    mt_status st = mt_cfg_get_float(node, "default_input_include_prob", 0.5,
                                    &s.default_input_include_prob);
    if (!st) st = mt_cfg_get_float(node, "default_input_scale", 2.0, &s.default_input_scale);
    if (!st) st = mt_cfg_get_bool(node, "per_example", true, &s.per_example);
    if (!st) st = read_map(node, "input_include_probs", &s.n_include_probs, &pn, &pv);
    if (!st) st = read_map(node, "input_scales", &s.n_input_scales, &sn, &sv);
    s.include_prob_layers = pn;
    s.include_probs = pv;
    s.input_scale_layers = sn;
    s.input_scales = sv;
    if (!st) {
        st = mt_cost_dropout((mt_cost **)out, &s);
        if (st) st = key_error(node, "input_include_probs", st);
    }
    mt_free(pn);
    mt_free(pv);
    mt_free(sn);
    mt_free(sv);
    return st;
}

/* costs: [cost, [coeff, cost], ...] */
static mt_status sum_build(mt_cfg_builder *b, const mt_cfg_node *node, void **out)
{
    const mt_cfg_node *list = mt_cfg_get(node, "costs");
    if (!list || list->kind != MT_CFG_LIST || list->n < 1)
        return mt_cfg_error(MT_ERR_INVALID, mt_cfg_key_loc(node, "costs"), "SumOfCosts: costs "
                            "must be a non-empty list of costs or [coefficient, cost] pairs");
    int32_t n = list->n;
    double *coeffs = mt_malloc((size_t)n * sizeof(double));
    const mt_cost **terms = mt_calloc((size_t)n, sizeof(mt_cost *));
    mt_status st = MT_OK;
    if (!coeffs || !terms) st = mt_err_set(MT_ERR_NOMEM, "SumOfCosts: out of memory");
    for (int32_t i = 0; i < n && !st; i++) {
        const mt_cfg_node *it = list->items[i], *cn = it;
        coeffs[i] = 1.0;
        if (it && it->kind == MT_CFG_LIST) {
            if (it->n != 2 || !it->items[0] ||
                (it->items[0]->kind != MT_CFG_INT && it->items[0]->kind != MT_CFG_FLOAT)) {
                st = mt_cfg_error(MT_ERR_INVALID, it->loc, "SumOfCosts: a pair must be "
                                  "[coefficient, cost]");
                break;
            }
            coeffs[i] = it->items[0]->f;
            cn = it->items[1];
        }
        void *obj;
        st = mt_cfg_build(b, cn, "cost", &obj, NULL);
        terms[i] = obj;
    }
    if (!st) st = mt_cost_sum((mt_cost **)out, n, coeffs, terms);
    mt_free(coeffs);
    mt_free(terms);
    return st;
}

static mt_status expression_build(mt_cfg_builder *b, const mt_cfg_node *node, void **out)
{
    (void)b;
    const char *e = NULL;
    mt_status st = mt_cfg_get_string(node, "expr", NULL, &e);
    if (!st) st = mt_cost_expression((mt_cost **)out, e);
    return st ? key_error(node, "expr", st) : MT_OK;
}

#define F(n, t, doc) {n, MT_CFG_T_##t, false, true, NULL, false, doc}
#define R(n, t, doc) {n, MT_CFG_T_##t, true, false, NULL, false, doc}
#define END {NULL, MT_CFG_T_ANY, false, false, NULL, false, NULL}
#define ALIASES(...) (const char *const[]){__VA_ARGS__, NULL}

static const mt_cfg_key no_keys[] = {END};
static const mt_cfg_key method_keys[] = {
    R("method", STRING, "'cost_from_X' (the model's default cost)"),
    {"data_specs", MT_CFG_T_ANY, false, true, NULL, false, "accepted"}, END};
static const mt_cfg_key decay_keys[] = {
    {"coeffs", MT_CFG_T_ANY, true, false, NULL, false,
     "one coefficient per layer (a list of them for a CompositeLayer or nested MLP), one for "
     "all layers, or {layer_name: coeff} (names may be paths: 'comp/a')"}, END};
static const mt_cfg_key dropout_keys[] = {
    F("default_input_include_prob", FLOAT, "probability of keeping each input (0.5)"),
    F("input_include_probs", FLOAT_MAP, "{layer_name: probability} overrides"),
    F("default_input_scale", FLOAT, "multiplier of kept inputs (2.0)"),
    F("input_scales", FLOAT_MAP, "{layer_name: scale} overrides"),
    F("per_example", BOOL, "a mask per example (true) or per batch"), END};
static const mt_cfg_key sum_keys[] = {
    {"costs", MT_CFG_T_ANY, true, false, NULL, false, "[cost, [coefficient, cost], ...]"}, END};
static const mt_cfg_key expression_keys[] = {
    R("expr", STRING, "expression over X, y, y_hat, parameters, default_cost"), END};

static const mt_component cost_components[] = {
    {"Default", "cost", ALIASES("pylearn2.costs.mlp.Default"), no_keys, false,
     "the model's default cost (the output layer's cost; autoencoders: reconstruction error)",
     default_build, cost_destroy, NULL},
    {"MethodCost", "cost", ALIASES("pylearn2.costs.cost.MethodCost"), method_keys, false,
     "a cost method of the model (cost_from_X)", method_build, cost_destroy, method_check},
    {"MeanSquaredReconstructionError", "cost",
     ALIASES("pylearn2.costs.autoencoder.MeanSquaredReconstructionError"), no_keys, false,
     "mean over examples of sum((reconstruct(X) - X)^2)", msre_build, cost_destroy, NULL},
    {"WeightDecay", "cost",
     ALIASES("pylearn2.costs.mlp.WeightDecay", "pylearn2.models.mlp.WeightDecay"), decay_keys,
     false, "sum over layers of coeff * sum(W^2)", decay_build, cost_destroy, decay_check},
    {"L1WeightDecay", "cost",
     ALIASES("pylearn2.costs.mlp.L1WeightDecay", "pylearn2.models.mlp.L1WeightDecay"),
     decay_keys, false, "sum over layers of coeff * sum(|W|)", decay_build, cost_destroy,
     decay_check},
    {"Dropout", "cost", ALIASES("pylearn2.costs.mlp.dropout.Dropout"), dropout_keys, false,
     "the default cost on a forward pass with dropout on each layer's input", dropout_build,
     cost_destroy, NULL},
    {"SumOfCosts", "cost", ALIASES("pylearn2.costs.cost.SumOfCosts"), sum_keys, false,
     "weighted sum of costs", sum_build, cost_destroy, NULL},
    {"ExpressionCost", "cost", ALIASES("mltrain.ExpressionCost"), expression_keys, false,
     "a cost written in the expression language", expression_build, cost_destroy, NULL},
};

mt_status mt__register_cost_components(mt_cfg_registry *r)
{
    mt_status st = MT_OK;
    for (size_t i = 0; !st && i < sizeof(cost_components) / sizeof(cost_components[0]); i++)
        st = mt_cfg_registry_add(r, &cost_components[i]);
    return st;
}
