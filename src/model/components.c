/* YAML components of the model module: models (MLP, SoftmaxRegression, Autoencoder,
 * DenoisingAutoencoder), layers, convolution nonlinearities, spaces and corruptors, each under
 * its canonical name and Pylearn2's dotted class names (the recurrent layers, which Pylearn2
 * lacks, as mltrain.models.rnn.*). Costs are in components_cost.c. An error in placing a layer
 * of an MLP (sizes that do not fit the layer below) points at that layer's position.
 *
 * Every layer component reads its keys into an mt__layer_spec with one parser that both the
 * validation hook (`check`, run by mt_cfg_validate before anything is built, so a dry run
 * reports "FILE:LINE:COL: Linear 'h0': dim must be >= 1") and the build function use; values
 * that are sweep search tags are skipped by the check. Built layers, spaces and corruptors are
 * small structs owned by the builder; the model builders copy them, so a built model refers
 * to nothing else the builder owns (mt_cfg_builder_release works on it). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_impl.h"

/* ---------------------------------------------------------------- key reader */

typedef struct rd {
    const mt_cfg_node *n;
    bool checking; /* validation: skip tagged values, build nothing */
    mt_status st;
    const char *what; /* "Linear 'h0'" for messages */
} rd;

static const mt_cfg_node *val(rd *r, const char *key)
{
    const mt_cfg_node *v = mt_cfg_get(r->n, key);
    if (!v || v->kind == MT_CFG_NULL) return NULL;
    if (v->kind == MT_CFG_TAGGED) return NULL; /* a search tag: resolved by the sweep module */
    return v;
}

static bool has(rd *r, const char *key) { return val(r, key) != NULL; }

/* Given at all (a search tag counts): for "one of these keys is required" rules. */
static bool given(rd *r, const char *key)
{
    const mt_cfg_node *v = mt_cfg_get(r->n, key);
    return v && v->kind != MT_CFG_NULL;
}

static int64_t get_i(rd *r, const char *key, int64_t dflt)
{
    int64_t v = dflt;
    if (!r->st && val(r, key)) r->st = mt_cfg_get_int(r->n, key, dflt, &v);
    return v;
}

static double get_f(rd *r, const char *key, double dflt)
{
    double v = dflt;
    if (!r->st && val(r, key)) r->st = mt_cfg_get_float(r->n, key, dflt, &v);
    return v;
}

static bool get_b(rd *r, const char *key, bool dflt)
{
    bool v = dflt;
    if (!r->st && val(r, key)) r->st = mt_cfg_get_bool(r->n, key, dflt, &v);
    return v;
}

static const char *get_s(rd *r, const char *key, const char *dflt)
{
    const char *v = dflt;
    if (!r->st && val(r, key)) r->st = mt_cfg_get_string(r->n, key, dflt, &v);
    return v;
}

/* A pair of ints ([a, b], or one int for both). */
static void get_pair(rd *r, const char *key, int64_t out[2])
{
    if (r->st || !val(r, key)) return;
    int64_t v[2];
    int32_t n = 0;
    r->st = mt_cfg_get_ints(r->n, key, 2, v, &n);
    if (r->st) return;
    if (n == 1) v[1] = v[0];
    if (n < 1) {
        r->st = mt_cfg_error(MT_ERR_INVALID, mt_cfg_key_loc(r->n, key), "%s: '%s' must be two "
                             "integers [rows, cols]", r->what, key);
        return;
    }
    out[0] = v[0];
    out[1] = v[1];
}

static mt_status key_err(rd *r, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void need_pos(rd *r, const char *key, int64_t v);
static mt_status key_err(rd *r, const char *key, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (!r->st) r->st = mt_cfg_error(MT_ERR_INVALID, mt_cfg_key_loc(r->n, key), "%s: %s",
                                     r->what, msg);
    return r->st;
}

/* A size that must be >= 1 (skipped by the check when the value is a search tag). */
static void need_pos(rd *r, const char *key, int64_t v)
{
    if (r->checking && !has(r, key)) return;
    if (v < 1) key_err(r, key, "%s must be >= 1, got %lld", key, (long long)v);
}

/* ---------------------------------------------------------------- layers */

typedef struct layer_info {
    const char *name;
    mt__layer_kind kind;
} layer_info;

static void read_init(rd *r, mt__layer_spec *s)
{
    s->has_irange = has(r, "irange");
    s->has_istdev = has(r, "istdev");
    s->has_sparse_init = has(r, "sparse_init");
    s->irange = get_f(r, "irange", 0.0);
    s->istdev = get_f(r, "istdev", 0.0);
    s->sparse_init = get_i(r, "sparse_init", 0);
    s->sparse_stdev = get_f(r, "sparse_stdev", 1.0);
    s->include_prob = get_f(r, "include_prob", 1.0);
    s->init_bias = get_f(r, "init_bias", 0.0);
    s->W_lr_scale = get_f(r, "W_lr_scale", NAN);
    s->b_lr_scale = get_f(r, "b_lr_scale", NAN);
    s->max_col_norm = get_f(r, "max_col_norm", NAN);
    s->max_row_norm = get_f(r, "max_row_norm", NAN);
    s->max_kernel_norm = get_f(r, "max_kernel_norm", NAN);
    int n = s->has_irange + s->has_istdev + s->has_sparse_init;
    if (n > 1) key_err(r, s->has_sparse_init ? "sparse_init" : "istdev", "give only one of "
                       "irange, istdev and sparse_init");
    if (s->has_irange && !(s->irange >= 0)) key_err(r, "irange", "irange must be >= 0");
    if (s->has_istdev && !(s->istdev >= 0)) key_err(r, "istdev", "istdev must be >= 0");
    if (s->has_sparse_init && s->sparse_init < 0)
        key_err(r, "sparse_init", "sparse_init must be >= 0");
    if (!(s->include_prob >= 0 && s->include_prob <= 1))
        key_err(r, "include_prob", "include_prob must be in [0, 1]");
    static const char *norms[3] = {"max_col_norm", "max_row_norm", "max_kernel_norm"};
    double nv[3] = {s->max_col_norm, s->max_row_norm, s->max_kernel_norm};
    for (int i = 0; i < 3; i++)
        if (!isnan(nv[i]) && !(nv[i] > 0)) key_err(r, norms[i], "%s must be > 0", norms[i]);
    if (!isnan(s->max_col_norm) && !isnan(s->max_row_norm))
        key_err(r, "max_row_norm", "give max_row_norm or max_col_norm, not both");
}

static mt_status read_monitor_style(rd *r, mt__layer_spec *s, const char *dflt)
{
    const char *ms = get_s(r, "monitor_style", dflt);
    if (r->st || !ms) return r->st;
    if (!strcmp(ms, "classification")) s->monitor_classification = true;
    else if (!strcmp(ms, "detection")) s->monitor_classification = false;
    else key_err(r, "monitor_style", "monitor_style must be 'detection' or 'classification', "
                 "got '%s'", ms);
    return r->st;
}

/* Conv keys shared by ConvElemwise and ConvRectifiedLinear. */
static void read_conv(rd *r, mt__layer_spec *s, bool rectified)
{
    s->dim = get_i(r, "output_channels", 0);
    get_pair(r, "kernel_shape", s->kernel_shape);
    get_pair(r, "kernel_stride", s->kernel_stride);
    get_pair(r, "pool_shape", s->pool_shape);
    get_pair(r, "pool_stride", s->pool_stride);
    const char *bm = get_s(r, "border_mode", "valid");
    if (!r->st && strcmp(bm, "valid") && strcmp(bm, "full"))
        key_err(r, "border_mode", "border_mode must be 'valid' or 'full', got '%s'", bm);
    s->border_full = !r->st && !strcmp(bm, "full");
    const mt_cfg_node *ptn = mt_cfg_get(r->n, "pool_type");
    bool explicit_none = ptn && ptn->kind == MT_CFG_NULL;
    const char *pt = get_s(r, "pool_type", rectified && !explicit_none ? "max" : NULL);
    if (r->st) return;
    if (!pt) s->pool_type = MT__POOL_NONE;
    else if (!strcmp(pt, "max")) s->pool_type = MT__POOL_MAX;
    else if (!strcmp(pt, "mean")) s->pool_type = MT__POOL_MEAN;
    else key_err(r, "pool_type", "pool_type must be 'max', 'mean' or null, got '%s'", pt);
    bool pool_given = has(r, "pool_shape") && has(r, "pool_stride");
    if (!r->st && !r->checking && s->pool_type != MT__POOL_NONE && !pool_given)
        key_err(r, has(r, "pool_shape") ? "pool_stride" : "pool_shape", "%s-pooling needs "
                "pool_shape and pool_stride", pt);
    s->tied_b = get_b(r, "tied_b", false);
    need_pos(r, "output_channels", s->dim);
    if (!r->st && !given(r, "irange") && !given(r, "istdev") && !given(r, "sparse_init"))
        key_err(r, "output_channels", "give irange or sparse_init (as Pylearn2's conv layers "
                "require)");
    read_monitor_style(r, s, "classification");
    if (rectified) {
        s->conv_act = MT__ACT_RELU;
        s->left_slope = get_f(r, "left_slope", 0.0);
    }
}

/* Conv nonlinearity objects. */
typedef struct conv_nonlin {
    mt__act act;
    double left_slope;
    bool monitor_classification;
} conv_nonlin;

bool mt_model_is_model(const void *obj)
{
    return obj && *(const uint32_t *)obj == MT__MODEL_MAGIC;
}

/* A sub-layer of a container (an item of `layers`, or raw_layer), deep-copied into dst. */
static mt_status build_sub(rd *r, mt_cfg_builder *b, const mt_cfg_node *item,
                           mt__layer_spec *dst)
{
    void *obj = NULL;
    mt_status st = mt_cfg_build(b, item, "layer", &obj, NULL);
    if (st) return st;
    if (mt_model_is_model(obj))
        return mt_cfg_error(MT_ERR_INVALID, item->loc, "%s: an MLP used as a layer needs a "
                            "layer_name and takes its input from the layer below (no nvis or "
                            "input_space)", r->what);
    return mt__layer_spec_copy(dst, obj);
}

/* layers of a CompositeLayer or nested MLP. */
static void read_sublayers(rd *r, mt__layer_spec *s, mt_cfg_builder *b)
{
    const mt_cfg_node *l = mt_cfg_get(r->n, "layers");
    if (r->st) return;
    if (!l || l->kind != MT_CFG_LIST || l->n < 1) {
        key_err(r, "layers", "layers must be a non-empty list of layers");
        return;
    }
    if (r->checking) return;
    s->sub = mt_calloc((size_t)l->n, sizeof(mt__layer_spec));
    if (!s->sub) {
        r->st = mt_err_set(MT_ERR_NOMEM, "%s: out of memory", r->what);
        return;
    }
    for (int32_t i = 0; i < l->n && !r->st; i++) {
        r->st = build_sub(r, b, l->items[i], &s->sub[i]);
        if (!r->st) s->n_sub = i + 1;
    }
    for (int32_t i = 0; i < s->n_sub && !r->st; i++)
        for (int32_t j = 0; j < i; j++)
            if (!strcmp(s->sub[i].name, s->sub[j].name)) {
                r->st = mt_cfg_error(MT_ERR_INVALID, l->items[i]->loc, "%s: two or more layers "
                                     "named '%s'", r->what, s->sub[i].name);
                break;
            }
}

/* CompositeLayer inputs_to_layers: {input component: [sub-layer indices]}. */
static void read_routes(rd *r, mt__layer_spec *s)
{
    const mt_cfg_node *m = val(r, "inputs_to_layers");
    const mt_cfg_node *l = mt_cfg_get(r->n, "layers");
    int32_t n_layers = l && l->kind == MT_CFG_LIST ? l->n : 0;
    if (r->st || !m) return;
    if (m->kind != MT_CFG_MAP) {
        key_err(r, "inputs_to_layers", "inputs_to_layers must be a mapping {input component: "
                "[sub-layer indices]}");
        return;
    }
    int32_t total = 0;
    for (int32_t i = 0; i < m->n; i++)
        if (m->items[i] && m->items[i]->kind == MT_CFG_LIST) total += m->items[i]->n;
    s->route_key = mt_calloc((size_t)(m->n ? m->n : 1), sizeof(int32_t));
    s->route_off = mt_calloc((size_t)m->n + 1, sizeof(int32_t));
    s->route_val = mt_calloc((size_t)(total ? total : 1), sizeof(int32_t));
    if (!s->route_key || !s->route_off || !s->route_val) {
        r->st = mt_err_set(MT_ERR_NOMEM, "%s: out of memory", r->what);
        return;
    }
    int32_t k = 0;
    for (int32_t i = 0; i < m->n; i++) {
        char *end;
        long key = strtol(m->keys[i], &end, 10);
        if (end == m->keys[i] || *end || key < 0 || key > 1000000) {
            r->st = mt_cfg_error(MT_ERR_INVALID, m->key_locs[i], "%s: inputs_to_layers: the key "
                                 "'%s' is not an input component index (0, 1, ...)", r->what,
                                 m->keys[i]);
            return;
        }
        for (int32_t j = 0; j < i; j++)
            if (s->route_key[j] == (int32_t)key) {
                r->st = mt_cfg_error(MT_ERR_INVALID, m->key_locs[i], "%s: inputs_to_layers maps "
                                     "input component %ld twice", r->what, key);
                return;
            }
        const mt_cfg_node *v = m->items[i];
        if (!v || v->kind != MT_CFG_LIST) {
            r->st = mt_cfg_error(MT_ERR_INVALID, v ? v->loc : m->key_locs[i], "%s: "
                                 "inputs_to_layers: input component %ld must map to a list of "
                                 "sub-layer indices", r->what, key);
            return;
        }
        s->route_key[i] = (int32_t)key;
        s->route_off[i] = k;
        for (int32_t j = 0; j < v->n; j++) {
            const mt_cfg_node *it = v->items[j];
            if (!it || it->kind != MT_CFG_INT || it->i < 0 || it->i >= n_layers) {
                r->st = mt_cfg_error(MT_ERR_INVALID, it ? it->loc : v->loc, "%s: "
                                     "inputs_to_layers: %s is not a sub-layer index (0..%d)",
                                     r->what, it && it->str ? it->str : "the item",
                                     (int)n_layers - 1);
                return;
            }
            s->route_val[k++] = (int32_t)it->i;
        }
        s->n_route = i + 1;
    }
    s->route_off[m->n] = k;
}

/* SimpleRNN, LSTM, GRU (rnn.c). */
static void read_rnn(rd *r, mt__layer_spec *s)
{
    s->dim = get_i(r, "dim", 0);
    s->n_steps = get_i(r, "n_steps", 0);
    need_pos(r, "dim", s->dim);
    need_pos(r, "n_steps", s->n_steps);
    if (!r->st && !given(r, "irange") && !given(r, "istdev") && !given(r, "sparse_init"))
        key_err(r, "dim", "give one of irange, istdev or sparse_init");
    static const char *norms[2] = {"max_col_norm", "max_row_norm"};
    for (int i = 0; i < 2; i++)
        if (given(r, norms[i]))
            key_err(r, norms[i], "%s: norm constraints are not supported by recurrent layers",
                    norms[i]);
    s->return_sequences = get_b(r, "return_sequences", false);
    s->reverse = get_b(r, "reverse", false);
    s->U_lr_scale = get_f(r, "U_lr_scale", NAN);
    const char *ui = get_s(r, "U_init", NULL);
    if (!r->st && ui && strcmp(ui, "orthogonal"))
        key_err(r, "U_init", "U_init must be 'orthogonal' or null (U drawn as W), got '%s'", ui);
    s->U_orthogonal = !r->st && ui != NULL;
    if (s->kind == MT__LAYER_LSTM) s->forget_bias = get_f(r, "forget_bias", 1.0);
    if (s->kind != MT__LAYER_SIMPLE_RNN) return;
    const mt_cfg_node *an = mt_cfg_get(r->n, "activation");
    bool explicit_none = an && an->kind == MT_CFG_NULL; /* null: linear */
    const char *a = get_s(r, "activation", explicit_none ? NULL : "tanh");
    if (!r->st && mt__act_from_name(&s->rnn_act, a))
        key_err(r, "activation", "%s", mt_last_error());
}

static mt_status read_layer(rd *r, mt__layer_spec *s, mt_cfg_builder *b)
{
    read_init(r, s);
    switch (s->kind) {
    case MT__LAYER_LINEAR:
    case MT__LAYER_SIGMOID:
    case MT__LAYER_TANH:
    case MT__LAYER_RELU:
    case MT__LAYER_SOFTPLUS:
        s->dim = get_i(r, "dim", 0);
        need_pos(r, "dim", s->dim);
        if (!r->st && !given(r, "irange") && !given(r, "istdev") && !given(r, "sparse_init"))
            key_err(r, "dim", "give one of irange, istdev or sparse_init");
        s->use_bias = get_b(r, "use_bias", true);
        s->use_abs_loss = get_b(r, "use_abs_loss", false);
        if (s->kind == MT__LAYER_RELU) s->left_slope = get_f(r, "left_slope", 0.0);
        if (s->kind == MT__LAYER_SIGMOID) read_monitor_style(r, s, "detection");
        if (!s->use_bias && has(r, "b_lr_scale"))
            key_err(r, "b_lr_scale", "b_lr_scale needs use_bias");
        break;
    case MT__LAYER_SOFTMAX:
        s->dim = get_i(r, "n_classes", 0);
        need_pos(r, "n_classes", s->dim);
        s->no_affine = get_b(r, "no_affine", false);
        s->binary_target_dim = get_i(r, "binary_target_dim", 0);
        if (!r->st && !s->no_affine && !given(r, "irange") && !given(r, "istdev") &&
            !given(r, "sparse_init"))
            key_err(r, "n_classes", "give one of irange, istdev or sparse_init (irange: 0. "
                    "gives zero weights)");
        break;
    case MT__LAYER_MAXOUT:
        s->dim = get_i(r, "num_units", 0);
        s->num_pieces = get_i(r, "num_pieces", 0);
        s->maxout_stride = get_i(r, "pool_stride", 0);
        s->min_zero = get_b(r, "min_zero", false);
        need_pos(r, "num_units", s->dim);
        need_pos(r, "num_pieces", s->num_pieces);
        if (!r->st && !given(r, "irange") && !given(r, "istdev") && !given(r, "sparse_init"))
            key_err(r, "num_units", "give one of irange, istdev or sparse_init");
        if (get_b(r, "randomize_pools", false))
            key_err(r, "randomize_pools", "randomize_pools is not supported");
        if (!isnan(s->max_row_norm))
            key_err(r, "max_row_norm", "max_row_norm is not implemented for Maxout (as in "
                    "Pylearn2)");
        break;
    case MT__LAYER_CONV: {
        bool rectified = !strcmp(s->cls, "ConvRectifiedLinear");
        read_conv(r, s, rectified);
        if (!rectified && !r->checking && !r->st) {
            void *obj = NULL;
            r->st = mt_cfg_build(b, mt_cfg_get(r->n, "nonlinearity"), "conv_nonlinearity", &obj,
                                 NULL);
            if (!r->st) {
                const conv_nonlin *nl = obj;
                s->conv_act = nl->act;
                s->left_slope = nl->left_slope;
                if (!has(r, "monitor_style"))
                    s->monitor_classification = nl->monitor_classification;
            }
        }
        break;
    }
    case MT__LAYER_PRETRAINED:
        s->freeze = get_b(r, "freeze_params", false);
        if (!r->checking && !r->st) {
            void *obj = NULL;
            r->st = mt_cfg_build(b, mt_cfg_get(r->n, "layer_content"), "model", &obj, NULL);
            if (!r->st) r->st = mt__pretrained_from_model(s, obj);
        }
        break;
    case MT__LAYER_COMPOSITE:
        read_sublayers(r, s, b);
        read_routes(r, s);
        break;
    case MT__LAYER_FLATTENER:
        if (!r->checking && !r->st) {
            s->sub = mt_calloc(1, sizeof(mt__layer_spec));
            if (!s->sub) return r->st = mt_err_set(MT_ERR_NOMEM, "%s: out of memory", r->what);
            r->st = build_sub(r, b, mt_cfg_get(r->n, "raw_layer"), &s->sub[0]);
            if (!r->st) {
                s->n_sub = 1;
                mt__copy_name(s->name, sizeof(s->name), s->sub[0].name); /* Pylearn2's */
            }
        }
        break;
    case MT__LAYER_PROJECTION:
        s->dim = get_i(r, "dim", 0);
        need_pos(r, "dim", s->dim);
        if (!r->st && given(r, "irange") == given(r, "istdev"))
            key_err(r, "dim", "give irange or istdev (exactly one)");
        break;
    case MT__LAYER_SIMPLE_RNN:
    case MT__LAYER_LSTM:
    case MT__LAYER_GRU: read_rnn(r, s); break;
    default: break;
    }
    return r->st;
}

static mt__layer_kind kind_of(const char *cls)
{
    static const layer_info map[] = {
        {"Linear", MT__LAYER_LINEAR},       {"Sigmoid", MT__LAYER_SIGMOID},
        {"Tanh", MT__LAYER_TANH},           {"RectifiedLinear", MT__LAYER_RELU},
        {"Softplus", MT__LAYER_SOFTPLUS},   {"Softmax", MT__LAYER_SOFTMAX},
        {"Maxout", MT__LAYER_MAXOUT},       {"ConvElemwise", MT__LAYER_CONV},
        {"ConvRectifiedLinear", MT__LAYER_CONV}, {"PretrainedLayer", MT__LAYER_PRETRAINED},
        {"CompositeLayer", MT__LAYER_COMPOSITE}, {"FlattenerLayer", MT__LAYER_FLATTENER},
        {"ProjectionLayer", MT__LAYER_PROJECTION}, {"SimpleRNN", MT__LAYER_SIMPLE_RNN},
        {"LSTM", MT__LAYER_LSTM},           {"GRU", MT__LAYER_GRU},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (!strcmp(map[i].name, cls)) return map[i].kind;
    return MT__LAYER_KIND_COUNT;
}

static mt_status parse_layer(const mt_component *c, const mt_cfg_node *node, mt_cfg_builder *b,
                             mt__layer_spec *s, bool checking)
{
    const char *name = NULL;
    const mt_cfg_node *ln = mt_cfg_get(node, "layer_name");
    if (ln && ln->kind == MT_CFG_STRING) name = ln->str;
    mt__layer_spec_init(s, kind_of(c->name), name ? name : "");
    mt__copy_name(s->cls, sizeof(s->cls), c->name);
    char what[160];
    snprintf(what, sizeof(what), "%s '%s'", c->name, s->name);
    rd r = {node, checking, MT_OK, what};
    bool named = s->kind != MT__LAYER_FLATTENER; /* a FlattenerLayer takes its raw layer's */
    if (named && !checking && (!name || !*name))
        return key_err(&r, "layer_name", "layer_name must be a non-empty string");
    if (name && strchr(name, '/'))
        return key_err(&r, "layer_name", "layer_name '%s' may not contain '/' (it separates the "
                       "names of nested layers in parameter names)", name);
    if (name && strlen(name) >= MT__NAME_MAX)
        return key_err(&r, "layer_name", "layer_name is too long (at most %d bytes)",
                       MT__NAME_MAX - 1);
    return read_layer(&r, s, b);
}

static void layer_destroy(void *obj)
{
    mt__layer_spec_clear(obj);
    mt_free(obj);
}

/* One build function per component name (the component tells which layer it is). */
#define LAYER_FUNCS(fn, cname)                                                              \
    static mt_status fn##_build(mt_cfg_builder *b, const mt_cfg_node *node, void **out);    \
    static mt_status fn##_check(const mt_cfg_node *node);                                   \
    static const mt_component fn##_component;                                                \
    static mt_status fn##_build(mt_cfg_builder *b, const mt_cfg_node *node, void **out)     \
    {                                                                                        \
        mt__layer_spec *s = mt_calloc(1, sizeof(*s));                                        \
        if (!s) return mt_err_set(MT_ERR_NOMEM, "%s: out of memory", cname);                \
        mt_status st = parse_layer(&fn##_component, node, b, s, false);                     \
        if (st) {                                                                            \
            layer_destroy(s);                                                                \
            return st;                                                                       \
        }                                                                                    \
        *out = s;                                                                            \
        return MT_OK;                                                                        \
    }                                                                                        \
    static mt_status fn##_check(const mt_cfg_node *node)                                    \
    {                                                                                        \
        mt__layer_spec s;                                                                    \
        mt_status st = parse_layer(&fn##_component, node, NULL, &s, true);                  \
        mt__layer_spec_clear(&s);                                                            \
        return st;                                                                           \
    }

#define F(n, t, doc) {n, MT_CFG_T_##t, false, true, NULL, false, doc}
#define R(n, t, doc) {n, MT_CFG_T_##t, true, false, NULL, false, doc}
#define END {NULL, MT_CFG_T_ANY, false, false, NULL, false, NULL}

#define INIT_KEYS                                                                           \
    F("irange", FLOAT, "weights ~ U(-irange, irange)"),                                      \
    F("istdev", FLOAT, "weights ~ N(0, istdev^2)"),                                          \
    F("sparse_init", INT, "number of nonzero N(0, sparse_stdev^2) weights per unit"),        \
    F("sparse_stdev", FLOAT, "stdev of sparse_init weights (1)"),                            \
    F("include_prob", FLOAT, "irange weights are kept with this probability (1)"),           \
    F("init_bias", FLOAT, "initial bias (0)"),                                               \
    F("W_lr_scale", FLOAT, "learning-rate multiplier of W"),                                 \
    F("b_lr_scale", FLOAT, "learning-rate multiplier of b")

#define DENSE_KEYS                                                                          \
    R("layer_name", STRING, "unique name of the layer"),                                     \
    R("dim", INT, "number of units"), INIT_KEYS,                                              \
    F("max_row_norm", FLOAT, "max L2 norm of each row of W"),                                 \
    F("max_col_norm", FLOAT, "max L2 norm of each column of W"),                              \
    F("use_abs_loss", BOOL, "output cost: mean absolute instead of squared error"),           \
    F("use_bias", BOOL, "add a bias (true)")

static const mt_cfg_key linear_keys[] = {DENSE_KEYS, END};
static const mt_cfg_key sigmoid_keys[] = {
    DENSE_KEYS, F("monitor_style", STRING, "'detection' (default) or 'classification'"), END};
static const mt_cfg_key relu_keys[] = {
    DENSE_KEYS, F("left_slope", FLOAT, "slope for negative inputs (0)"), END};
static const mt_cfg_key softmax_keys[] = {
    R("layer_name", STRING, "unique name of the layer"), R("n_classes", INT, "number of classes"),
    INIT_KEYS,
    F("max_row_norm", FLOAT, "max L2 norm of each row of W"),
    F("max_col_norm", FLOAT, "max L2 norm of each column of W"),
    F("no_affine", BOOL, "softmax of the input itself (no W, b)"),
    F("binary_target_dim", INT, "accepted: integer labels are always supported"), END};
static const mt_cfg_key maxout_keys[] = {
    R("layer_name", STRING, "unique name of the layer"),
    R("num_units", INT, "number of maxout units"), R("num_pieces", INT, "linear pieces per unit"),
    F("pool_stride", INT, "distance between pools (num_pieces)"),
    F("randomize_pools", BOOL, "not supported (false only)"), INIT_KEYS,
    F("max_col_norm", FLOAT, "max L2 norm of each column of W"),
    F("max_row_norm", FLOAT, "not implemented (as in Pylearn2)"),
    F("min_zero", BOOL, "include 0 in the max (rectified pools)"), END};

#define CONV_KEYS                                                                           \
    R("layer_name", STRING, "unique name of the layer"),                                     \
    R("output_channels", INT, "number of kernels"),                                          \
    R("kernel_shape", INTS, "[rows, cols] of each kernel"), INIT_KEYS,                      \
    F("border_mode", STRING, "'valid' (default) or 'full' (pad kernel-1)"),                  \
    F("kernel_stride", INTS, "[rows, cols] stride of the convolution ([1, 1])"),             \
    F("max_kernel_norm", FLOAT, "max L2 norm of each output kernel"),                        \
    F("tied_b", BOOL, "one bias per channel (default false: one per output position)"),      \
    F("monitor_style", STRING, "'classification' or 'detection'")

static const mt_cfg_key conv_elemwise_keys[] = {
    CONV_KEYS, {"nonlinearity", MT_CFG_T_OBJ, true, false, "conv_nonlinearity", false,
                "IdentityConvNonlinearity, RectifierConvNonlinearity, ..."},
    F("pool_type", STRING, "'max', 'mean' or null (none, default)"),
    F("pool_shape", INTS, "[rows, cols] of each pool"),
    F("pool_stride", INTS, "[rows, cols] distance between pools"), END};
static const mt_cfg_key conv_relu_keys[] = {
    CONV_KEYS, R("pool_shape", INTS, "[rows, cols] of each pool"),
    R("pool_stride", INTS, "[rows, cols] distance between pools"),
    F("pool_type", STRING, "'max' (default), 'mean' or null"),
    F("left_slope", FLOAT, "slope for negative inputs (0)"), END};
static const mt_cfg_key composite_keys[] = {
    R("layer_name", STRING, "unique name of the layer"),
    {"layers", MT_CFG_T_OBJ_LIST, true, false, "layer", false,
     "the sub-layers, each reading the input (or its inputs_to_layers components)"},
    {"inputs_to_layers", MT_CFG_T_ANY, false, true, NULL, false,
     "{input component: [sub-layer indices]} for a CompositeSpace input; components not "
     "listed go to every sub-layer"}, END};
static const mt_cfg_key flattener_keys[] = {
    {"raw_layer", MT_CFG_T_OBJ, true, false, "layer", false,
     "the layer whose output (e.g. a CompositeLayer's) becomes one vector; its name is the "
     "flattener's"}, END};
static const mt_cfg_key projection_keys[] = {
    R("layer_name", STRING, "unique name of the layer"),
    R("dim", INT, "embedding size: the output is input dim * dim"),
    F("irange", FLOAT, "embeddings ~ U(-irange, irange)"),
    F("istdev", FLOAT, "embeddings ~ N(0, istdev^2)"), END};
#define RNN_KEYS                                                                            \
    R("layer_name", STRING, "unique name of the layer"),                                     \
    R("dim", INT, "number of units (the size of the state h)"),                              \
    R("n_steps", INT, "time steps: the input is read as n_steps rows of input/n_steps "      \
      "features"),                                                                           \
    INIT_KEYS,                                                                               \
    F("U_lr_scale", FLOAT, "learning-rate multiplier of U (default W_lr_scale)"),            \
    F("U_init", STRING, "'orthogonal': each gate's [dim, dim] block of U orthogonal "        \
      "(default: drawn as W)"),                                                              \
    F("return_sequences", BOOL, "output every step's state, [n_steps*dim] (default false: "  \
      "the last state, [dim])"),                                                             \
    F("reverse", BOOL, "run from the last row to the first (false)"),                        \
    F("max_col_norm", FLOAT, "not supported by recurrent layers"),                           \
    F("max_row_norm", FLOAT, "not supported by recurrent layers")

static const mt_cfg_key simple_rnn_keys[] = {
    RNN_KEYS, F("activation", STRING, "tanh (default), sigmoid, relu, softplus, linear or null"),
    END};
static const mt_cfg_key lstm_keys[] = {
    RNN_KEYS, F("forget_bias", FLOAT, "initial bias of the forget gate (1)"), END};
static const mt_cfg_key gru_keys[] = {RNN_KEYS, END};
static const mt_cfg_key pretrained_keys[] = {
    R("layer_name", STRING, "unique name of the layer"),
    {"layer_content", MT_CFG_T_OBJ, true, false, "model", true,
     "an autoencoder (usually !pkl: of a pretraining run): its encoder becomes the layer"},
    F("freeze_params", BOOL, "do not train the pretrained weights"), END};

LAYER_FUNCS(linear, "Linear")
LAYER_FUNCS(sigmoid, "Sigmoid")
LAYER_FUNCS(tanh_l, "Tanh")
LAYER_FUNCS(relu, "RectifiedLinear")
LAYER_FUNCS(softplus, "Softplus")
LAYER_FUNCS(softmax, "Softmax")
LAYER_FUNCS(maxout, "Maxout")
LAYER_FUNCS(conv_elemwise, "ConvElemwise")
LAYER_FUNCS(conv_relu, "ConvRectifiedLinear")
LAYER_FUNCS(pretrained, "PretrainedLayer")
LAYER_FUNCS(composite, "CompositeLayer")
LAYER_FUNCS(flattener, "FlattenerLayer")
LAYER_FUNCS(projection, "ProjectionLayer")
LAYER_FUNCS(simple_rnn, "SimpleRNN")
LAYER_FUNCS(lstm, "LSTM")
LAYER_FUNCS(gru, "GRU")

#define ALIASES(...) (const char *const[]){__VA_ARGS__, NULL}
#define LAYER_COMPONENT(fn, cname, keys, alias, doc)                                        \
    static const mt_component fn##_component = {cname, "layer", ALIASES(alias), keys, false, \
                                                doc, fn##_build, layer_destroy, fn##_check};

LAYER_COMPONENT(linear, "Linear", linear_keys, "pylearn2.models.mlp.Linear",
                "affine layer x W + b (also an output layer: squared-error cost)")
LAYER_COMPONENT(sigmoid, "Sigmoid", sigmoid_keys, "pylearn2.models.mlp.Sigmoid",
                "sigmoid(x W + b) (output layer: cross-entropy cost)")
LAYER_COMPONENT(tanh_l, "Tanh", linear_keys, "pylearn2.models.mlp.Tanh", "tanh(x W + b)")
LAYER_COMPONENT(relu, "RectifiedLinear", relu_keys, "pylearn2.models.mlp.RectifiedLinear",
                "max(x W + b, 0) (leaky with left_slope)")
LAYER_COMPONENT(softplus, "Softplus", linear_keys, "pylearn2.models.mlp.Softplus",
                "log(1 + exp(x W + b))")
LAYER_COMPONENT(softmax, "Softmax", softmax_keys, "pylearn2.models.mlp.Softmax",
                "softmax(x W + b) output layer (negative log-likelihood cost)")
LAYER_COMPONENT(maxout, "Maxout", maxout_keys, "pylearn2.models.maxout.Maxout",
                "max over groups of num_pieces linear units")
LAYER_COMPONENT(conv_elemwise, "ConvElemwise", conv_elemwise_keys,
                "pylearn2.models.mlp.ConvElemwise",
                "convolution + bias + nonlinearity object + optional pooling")
LAYER_COMPONENT(conv_relu, "ConvRectifiedLinear", conv_relu_keys,
                "pylearn2.models.mlp.ConvRectifiedLinear",
                "convolution + bias + rectifier + max pooling")
LAYER_COMPONENT(pretrained, "PretrainedLayer", pretrained_keys,
                "pylearn2.models.mlp.PretrainedLayer",
                "the encoder of a trained autoencoder as a layer")
LAYER_COMPONENT(composite, "CompositeLayer", composite_keys, "pylearn2.models.mlp.CompositeLayer",
                "sub-layers side by side; output: the CompositeSpace of their outputs")
LAYER_COMPONENT(flattener, "FlattenerLayer", flattener_keys, "pylearn2.models.mlp.FlattenerLayer",
                "its raw_layer's (composite) output as one vector")
LAYER_COMPONENT(projection, "ProjectionLayer", projection_keys,
                "pylearn2.sandbox.nlp.models.mlp.ProjectionLayer",
                "embedding lookup: IndexSpace(dim k, max_labels V) -> k * dim features "
                "(W [V, dim])")
LAYER_COMPONENT(simple_rnn, "SimpleRNN", simple_rnn_keys, "mltrain.models.rnn.SimpleRNN",
                "Elman recurrent layer h' = act(x_t W + h U + b) over n_steps rows of the input")
LAYER_COMPONENT(lstm, "LSTM", lstm_keys, "mltrain.models.rnn.LSTM",
                "long short-term memory over n_steps rows of the input (gates i, f, g, o)")
LAYER_COMPONENT(gru, "GRU", gru_keys, "mltrain.models.rnn.GRU",
                "gated recurrent unit (Cho et al. 2014, PyTorch's form) over n_steps rows")

/* ---------------------------------------------------------------- conv nonlinearities */

static mt_status nonlin_build(mt_cfg_builder *b, const mt_cfg_node *node, void **out,
                              mt__act act)
{
    (void)b;
    conv_nonlin *nl = mt_calloc(1, sizeof(*nl));
    if (!nl) return mt_err_set(MT_ERR_NOMEM, "nonlinearity: out of memory");
    nl->act = act;
    nl->monitor_classification = true;
    rd r = {node, false, MT_OK, node->tag ? node->tag : "nonlinearity"};
    nl->left_slope = get_f(&r, "left_slope", 0.0);
    const char *ms = get_s(&r, "monitor_style", "classification");
    if (!r.st && ms) nl->monitor_classification = strcmp(ms, "detection") != 0;
    if (r.st) {
        mt_free(nl);
        return r.st;
    }
    *out = nl;
    return MT_OK;
}

static mt_status identity_nl_build(mt_cfg_builder *b, const mt_cfg_node *n, void **out)
{
    return nonlin_build(b, n, out, MT__ACT_LINEAR);
}
static mt_status rectifier_nl_build(mt_cfg_builder *b, const mt_cfg_node *n, void **out)
{
    return nonlin_build(b, n, out, MT__ACT_RELU);
}
static mt_status sigmoid_nl_build(mt_cfg_builder *b, const mt_cfg_node *n, void **out)
{
    return nonlin_build(b, n, out, MT__ACT_SIGMOID);
}
static mt_status tanh_nl_build(mt_cfg_builder *b, const mt_cfg_node *n, void **out)
{
    return nonlin_build(b, n, out, MT__ACT_TANH);
}

static const mt_cfg_key no_keys[] = {END};
static const mt_cfg_key rectifier_nl_keys[] = {
    F("left_slope", FLOAT, "slope for negative inputs (0)"), END};
static const mt_cfg_key sigmoid_nl_keys[] = {
    F("monitor_style", STRING, "'classification' (default) or 'detection'"), END};

static const mt_component nonlin_components[] = {
    {"IdentityConvNonlinearity", "conv_nonlinearity",
     ALIASES("pylearn2.models.mlp.IdentityConvNonlinearity"), no_keys, false,
     "linear convolution output", identity_nl_build, mt_free, NULL},
    {"RectifierConvNonlinearity", "conv_nonlinearity",
     ALIASES("pylearn2.models.mlp.RectifierConvNonlinearity"), rectifier_nl_keys, false,
     "rectifier (leaky with left_slope)", rectifier_nl_build, mt_free, NULL},
    {"SigmoidConvNonlinearity", "conv_nonlinearity",
     ALIASES("pylearn2.models.mlp.SigmoidConvNonlinearity"), sigmoid_nl_keys, false, "sigmoid",
     sigmoid_nl_build, mt_free, NULL},
    {"TanhConvNonlinearity", "conv_nonlinearity",
     ALIASES("pylearn2.models.mlp.TanhConvNonlinearity"), no_keys, false, "tanh",
     tanh_nl_build, mt_free, NULL},
};

/* ---------------------------------------------------------------- spaces */

static mt_status check_dtype(rd *r)
{
    const char *dt = get_s(r, "dtype", "floatX");
    if (r->st || !dt) return r->st;
    if (strcmp(dt, "floatX") && strcmp(dt, "float32") && strcmp(dt, "int64") &&
        strcmp(dt, "int32"))
        key_err(r, "dtype", "dtype '%s' is not supported (mltrain computes in float32; labels "
                "are int64)", dt);
    return r->st;
}

/* Conv2DSpace axes: a permutation of 'b', 0, 1, 'c' (strings or ints). */
static mt_status read_axes(rd *r, char axes[5])
{
    snprintf(axes, 5, "b01c");
    const mt_cfg_node *a = val(r, "axes");
    if (!a) return MT_OK;
    if (a->kind != MT_CFG_LIST || a->n != 4)
        return key_err(r, "axes", "axes must be a list of 4 items, a permutation of "
                       "['b', 0, 1, 'c']");
    char got[5] = {0};
    for (int32_t i = 0; i < 4; i++) {
        const mt_cfg_node *it = a->items[i];
        char c = 0;
        if (it && it->kind == MT_CFG_INT && (it->i == 0 || it->i == 1)) c = (char)('0' + it->i);
        else if (it && it->kind == MT_CFG_STRING && strlen(it->str) == 1) c = it->str[0];
        if (!c || !strchr("b01c", c) || strchr(got, c))
            return key_err(r, "axes", "axes must be a permutation of ['b', 0, 1, 'c']");
        got[i] = c;
    }
    memcpy(axes, got, 5);
    return MT_OK;
}

static mt_status parse_space(const mt_cfg_node *node, mt_cfg_builder *b, mt__space *s,
                             bool checking)
{
    memset(s, 0, sizeof(*s));
    const char *tag = node->tag ? node->tag : "space";
    rd r = {node, checking, MT_OK, tag};
    if (strstr(tag, "VectorSpace")) {
        s->kind = MT__SPACE_VECTOR;
        s->dim = get_i(&r, "dim", 0);
        if (!checking && s->dim < 1) key_err(&r, "dim", "dim must be >= 1, got %lld",
                                             (long long)s->dim);
        if (get_b(&r, "sparse", false)) key_err(&r, "sparse", "sparse spaces are not supported");
        check_dtype(&r);
    } else if (strstr(tag, "Conv2DSpace")) {
        s->kind = MT__SPACE_CONV2D;
        get_pair(&r, "shape", s->shape);
        bool nc = has(&r, "num_channels"), ch = has(&r, "channels");
        if (nc && ch) key_err(&r, "channels", "give num_channels or channels, not both");
        s->channels = nc ? get_i(&r, "num_channels", 0) : get_i(&r, "channels", 0);
        if (!checking && !nc && !ch)
            key_err(&r, "shape", "give num_channels (or channels)");
        if (!checking && (s->shape[0] < 1 || s->shape[1] < 1 || s->channels < 1))
            key_err(&r, "shape", "shape and num_channels must be >= 1");
        if (!r.st) read_axes(&r, s->axes);
        check_dtype(&r);
    } else if (strstr(tag, "IndexSpace")) {
        s->kind = MT__SPACE_INDEX;
        s->dim = get_i(&r, "dim", 0);
        s->max_labels = get_i(&r, "max_labels", 0);
        if (!checking && (s->dim < 1 || s->max_labels < 1))
            key_err(&r, "dim", "dim and max_labels must be >= 1");
        check_dtype(&r);
    } else {
        s->kind = MT__SPACE_COMPOSITE;
        const mt_cfg_node *comps = val(&r, "components");
        if (!checking && comps && comps->kind == MT_CFG_LIST) {
            s->comp = mt_calloc((size_t)(comps->n ? comps->n : 1), sizeof(mt__space));
            if (!s->comp) return mt_err_set(MT_ERR_NOMEM, "CompositeSpace: out of memory");
            for (int32_t i = 0; i < comps->n && !r.st; i++) {
                void *obj;
                r.st = mt_cfg_build(b, comps->items[i], "space", &obj, NULL);
                if (!r.st) r.st = mt__space_copy(&s->comp[i], obj);
                if (!r.st) s->n_comp = i + 1;
            }
        }
    }
    if (r.st) mt__space_clear(s);
    return r.st;
}

static void space_destroy(void *obj)
{
    mt__space_clear(obj);
    mt_free(obj);
}

static mt_status space_build(mt_cfg_builder *b, const mt_cfg_node *node, void **out)
{
    mt__space *s = mt_calloc(1, sizeof(*s));
    if (!s) return mt_err_set(MT_ERR_NOMEM, "space: out of memory");
    mt_status st = parse_space(node, b, s, false);
    if (st) {
        mt_free(s);
        return st;
    }
    *out = s;
    return MT_OK;
}

static mt_status space_check(const mt_cfg_node *node)
{
    mt__space s;
    mt_status st = parse_space(node, NULL, &s, true);
    mt__space_clear(&s);
    return st;
}

static const mt_cfg_key vector_space_keys[] = {
    R("dim", INT, "number of features"), F("sparse", BOOL, "false only"),
    F("dtype", STRING, "floatX / float32"), END};
static const mt_cfg_key conv2d_space_keys[] = {
    R("shape", INTS, "[rows, cols]"), F("num_channels", INT, "channels of each image"),
    F("channels", INT, "same as num_channels"),
    {"axes", MT_CFG_T_ANY, false, true, NULL, false,
     "Pylearn2 axis order; datasets give b01c rows whatever this says"},
    F("dtype", STRING, "floatX / float32"), END};
static const mt_cfg_key index_space_keys[] = {
    R("max_labels", INT, "number of label values"), R("dim", INT, "labels per example"),
    F("dtype", STRING, "int64"), END};
static const mt_cfg_key composite_space_keys[] = {
    {"components", MT_CFG_T_OBJ_LIST, true, false, "space", false, "the component spaces"}, END};

static const mt_component space_components[] = {
    {"VectorSpace", "space", ALIASES("pylearn2.space.VectorSpace"), vector_space_keys, false,
     "batches of dim-dimensional vectors", space_build, space_destroy, space_check},
    {"Conv2DSpace", "space", ALIASES("pylearn2.space.Conv2DSpace"), conv2d_space_keys, false,
     "batches of images (rows of the dataset are b01c images)", space_build, space_destroy,
     space_check},
    {"IndexSpace", "space", ALIASES("pylearn2.space.IndexSpace"), index_space_keys, false,
     "integer indices (an MLP input read by a ProjectionLayer)", space_build, space_destroy,
     space_check},
    {"CompositeSpace", "space", ALIASES("pylearn2.space.CompositeSpace"), composite_space_keys,
     false, "a tuple of spaces (several sources: see CompositeDataset)", space_build,
     space_destroy, NULL},
};

/* ---------------------------------------------------------------- corruptors */

static mt_status corruptor_parse(const mt_cfg_node *node, mt__corruptor *c, bool checking)
{
    bool gauss = node->tag && strstr(node->tag, "Gaussian");
    rd r = {node, checking, MT_OK, gauss ? "GaussianCorruptor" : "BinomialCorruptor"};
    c->kind = gauss ? MT__CORRUPT_GAUSSIAN : MT__CORRUPT_BINOMIAL;
    c->level = get_f(&r, gauss ? "stdev" : "corruption_level", 0.0);
    if (!gauss && !(c->level >= 0 && c->level <= 1))
        key_err(&r, "corruption_level", "corruption_level must be in [0, 1], got %g", c->level);
    if (gauss && !(c->level >= 0)) key_err(&r, "stdev", "stdev must be >= 0, got %g", c->level);
    return r.st;
}

static mt_status corruptor_build(mt_cfg_builder *b, const mt_cfg_node *node, void **out)
{
    (void)b;
    mt__corruptor *c = mt_calloc(1, sizeof(*c));
    if (!c) return mt_err_set(MT_ERR_NOMEM, "corruptor: out of memory");
    mt_status st = corruptor_parse(node, c, false);
    if (st) {
        mt_free(c);
        return st;
    }
    *out = c;
    return MT_OK;
}

static mt_status corruptor_check(const mt_cfg_node *node)
{
    mt__corruptor c;
    return corruptor_parse(node, &c, true);
}

static const mt_cfg_key binomial_keys[] = {
    R("corruption_level", FLOAT, "probability of zeroing each input"),
    {"rng", MT_CFG_T_ANY, false, true, NULL, false, "accepted; draws use the training seed"},
    END};
static const mt_cfg_key gaussian_keys[] = {
    R("stdev", FLOAT, "standard deviation of the added noise"),
    {"rng", MT_CFG_T_ANY, false, true, NULL, false, "accepted; draws use the training seed"},
    END};

static const mt_component corruptor_components[] = {
    {"BinomialCorruptor", "corruptor", ALIASES("pylearn2.corruption.BinomialCorruptor"),
     binomial_keys, false, "x * Bernoulli(1 - corruption_level)", corruptor_build, mt_free,
     corruptor_check},
    {"GaussianCorruptor", "corruptor", ALIASES("pylearn2.corruption.GaussianCorruptor"),
     gaussian_keys, false, "x + N(0, stdev^2)", corruptor_build, mt_free, corruptor_check},
};

/* ---------------------------------------------------------------- models */

/* The MLP component builds a model, or a layer spec when the MLP is a layer of another. */
static void model_destroy(void *obj)
{
    if (mt_model_is_model(obj)) mt_model_free(obj);
    else layer_destroy(obj);
}

/* An MLP used as a layer (Pylearn2's nested MLP): layer_name and layers; its input is the
 * output of the layer below. */
static mt_status nested_mlp_build(mt_cfg_builder *b, const mt_cfg_node *node, void **out)
{
    const mt_cfg_node *ln = mt_cfg_get(node, "layer_name");
    char what[160];
    snprintf(what, sizeof(what), "MLP '%s'", ln && ln->kind == MT_CFG_STRING ? ln->str : "");
    rd r = {node, false, MT_OK, what};
    if (has(&r, "seed"))
        return key_err(&r, "seed", "an MLP used as a layer draws its parameters from the outer "
                       "MLP's seed: give seed there");
    mt__layer_spec *s = mt_calloc(1, sizeof(*s));
    if (!s) return mt_err_set(MT_ERR_NOMEM, "MLP: out of memory");
    mt_status st = MT_OK;
    if (!ln || ln->kind != MT_CFG_STRING || !*ln->str)
        st = key_err(&r, "layer_name", "layer_name must be a non-empty string");
    else if (strlen(ln->str) >= MT__NAME_MAX)
        st = key_err(&r, "layer_name", "layer_name is too long (at most %d bytes)",
                     MT__NAME_MAX - 1);
    else if (strchr(ln->str, '/'))
        st = key_err(&r, "layer_name", "layer_name '%s' may not contain '/'", ln->str);
    if (!st) {
        mt__layer_spec_init(s, MT__LAYER_MLP, ln->str);
        read_sublayers(&r, s, b);
        st = r.st;
    }
    if (st) {
        layer_destroy(s);
        return st;
    }
    *out = s;
    return MT_OK;
}

static mt_status read_seed(rd *r, int32_t *n, int64_t *seed, const char *key)
{
    *n = 0;
    if (r->st || !val(r, key)) return r->st;
    r->st = mt_cfg_get_ints(r->n, key, MT__MAX_SEED, seed, n);
    return r->st;
}

static mt_status mlp_build(mt_cfg_builder *b, const mt_cfg_node *node, void **out)
{
    rd r = {node, false, MT_OK, "MLP"};
    mt__mlp_desc d;
    memset(&d, 0, sizeof(d));
    d.kind = MT__MODEL_MLP;
    int64_t seed[MT__MAX_SEED];
    const mt_cfg_node *layers = mt_cfg_get(node, "layers");
    if (!layers || layers->kind != MT_CFG_LIST || layers->n < 1)
        return key_err(&r, "layers", "layers must be a non-empty list of layers");
    if (has(&r, "layer_name") && !has(&r, "nvis") && !has(&r, "input_space"))
        return nested_mlp_build(b, node, out);
    d.nvis = get_i(&r, "nvis", 0);
    d.batch_size = get_i(&r, "batch_size", 0);
    read_seed(&r, &d.n_seed, seed, "seed");
    d.seed = seed;
    const char *src = NULL;
    const mt_cfg_node *is = mt_cfg_get(node, "input_source");
    if (is && is->kind == MT_CFG_STRING) src = is->str;
    d.input_source = src;
    const mt_cfg_node *ts = mt_cfg_get(node, "target_source");
    d.target_source = ts && ts->kind == MT_CFG_STRING ? ts->str : NULL;
    if (r.st) return r.st;
    if (has(&r, "input_space") && has(&r, "nvis"))
        return key_err(&r, "nvis", "give nvis or input_space, not both");
    if (!has(&r, "input_space") && !has(&r, "nvis"))
        return key_err(&r, "layers", "give nvis or input_space (or, for an MLP that is a layer "
                       "of another MLP, layer_name)");
    if (d.nvis < 0 || (has(&r, "nvis") && d.nvis < 1))
        return key_err(&r, "nvis", "nvis must be >= 1, got %lld", (long long)d.nvis);
    if (has(&r, "input_space")) {
        void *sp;
        r.st = mt_cfg_build(b, mt_cfg_get(node, "input_space"), "space", &sp, NULL);
        if (r.st) return r.st;
        d.input_space = sp;
    }
    mt__layer_spec *specs = mt_calloc((size_t)layers->n, sizeof(*specs));
    if (!specs) return mt_err_set(MT_ERR_NOMEM, "MLP: out of memory");
    for (int32_t i = 0; i < layers->n && !r.st; i++) {
        void *obj;
        r.st = mt_cfg_build(b, layers->items[i], "layer", &obj, NULL);
        if (!r.st && mt_model_is_model(obj))
            r.st = mt_cfg_error(MT_ERR_INVALID, layers->items[i]->loc, "MLP: an MLP used as a "
                                "layer needs a layer_name and takes its input from the layer "
                                "below (no nvis or input_space)");
        if (!r.st) specs[i] = *(const mt__layer_spec *)obj; /* shallow: the model copies */
    }
    d.n_layers = layers->n;
    d.layers = specs;
    int32_t failed = -1;
    d.failed_layer = &failed;
    mt_model *m = NULL;
    if (!r.st) {
        r.st = mt__model_new_mlp(&m, &d);
        if (r.st && r.st != MT_ERR_NOMEM && failed >= 0 && failed < layers->n) {
            char msg[MT_ERR_MSG_MAX];
            snprintf(msg, sizeof(msg), "%s", mt_last_error());
            r.st = mt_cfg_error(r.st, layers->items[failed]->loc, "MLP: %s", msg);
        }
    }
    mt_free(specs);
    if (r.st) return r.st;
    *out = m;
    return MT_OK;
}

static mt_status softmax_regression_build(mt_cfg_builder *b, const mt_cfg_node *node,
                                          void **out)
{
    (void)b;
    rd r = {node, false, MT_OK, "SoftmaxRegression"};
    mt__layer_spec s;
    mt__layer_spec_init(&s, MT__LAYER_SOFTMAX, "y");
    read_init(&r, &s);
    s.dim = get_i(&r, "n_classes", 0);
    int64_t nvis = get_i(&r, "nvis", 0);
    mt__mlp_desc d;
    memset(&d, 0, sizeof(d));
    int64_t seed[MT__MAX_SEED];
    read_seed(&r, &d.n_seed, seed, "seed");
    d.batch_size = get_i(&r, "batch_size", 0);
    if (!r.st && s.dim < 1) key_err(&r, "n_classes", "n_classes must be >= 1");
    if (!r.st && nvis < 1) key_err(&r, "nvis", "nvis must be >= 1");
    if (!r.st && !s.has_irange && !s.has_istdev && !s.has_sparse_init)
        key_err(&r, "n_classes", "give one of irange, istdev or sparse_init (irange: 0. gives "
                "zero weights)");
    if (r.st) return r.st;
    d.kind = MT__MODEL_SOFTMAX_REGRESSION;
    d.n_layers = 1;
    d.layers = &s;
    d.nvis = nvis;
    d.seed = seed;
    mt_model *m;
    mt_status st = mt__model_new_mlp(&m, &d);
    if (!st) *out = m;
    return st;
}

static mt_status ae_build(mt_cfg_builder *b, const mt_cfg_node *node, void **out)
{
    bool dae = node->tag && strstr(node->tag, "Denoising");
    rd r = {node, false, MT_OK, dae ? "DenoisingAutoencoder" : "Autoencoder"};
    mt__ae_desc d;
    memset(&d, 0, sizeof(d));
    d.denoising = dae;
    d.nvis = get_i(&r, "nvis", 0);
    d.nhid = get_i(&r, "nhid", 0);
    d.tied_weights = get_b(&r, "tied_weights", false);
    d.irange = get_f(&r, "irange", NAN);
    d.istdev = get_f(&r, "istdev", NAN);
    d.rng = get_i(&r, "rng", 9001);
    const char *ae = get_s(&r, "act_enc", NULL), *ad = get_s(&r, "act_dec", NULL);
    if (r.st) return r.st;
    if (mt__act_from_name(&d.act_enc, ae)) return key_err(&r, "act_enc", "%s", mt_last_error());
    if (mt__act_from_name(&d.act_dec, ad)) return key_err(&r, "act_dec", "%s", mt_last_error());
    if (dae) {
        void *c;
        r.st = mt_cfg_build(b, mt_cfg_get(node, "corruptor"), "corruptor", &c, NULL);
        if (r.st) return r.st;
        d.corruptor = *(const mt__corruptor *)c;
    }
    mt_model *m;
    mt_status st = mt__model_new_autoencoder(&m, &d);
    if (!st) *out = m;
    return st;
}

static mt_status ae_check(const mt_cfg_node *node)
{
    rd r = {node, true, MT_OK, node->tag};
    const char *keys[2] = {"act_enc", "act_dec"};
    for (int i = 0; i < 2 && !r.st; i++) {
        const char *a = get_s(&r, keys[i], NULL);
        mt__act act;
        if (!r.st && mt__act_from_name(&act, a)) key_err(&r, keys[i], "%s", mt_last_error());
    }
    if (!r.st && has(&r, "irange") && has(&r, "istdev"))
        key_err(&r, "istdev", "give irange or istdev, not both");
    return r.st;
}

static const mt_cfg_key mlp_keys[] = {
    {"layers", MT_CFG_T_OBJ_LIST, true, false, "layer", false, "the layers, input to output"},
    F("nvis", INT, "input dimension (a VectorSpace)"),
    {"input_space", MT_CFG_T_OBJ, false, true, "space", false,
     "VectorSpace, Conv2DSpace, IndexSpace or CompositeSpace (instead of nvis)"},
    F("batch_size", INT, "accepted (the algorithm's batch_size is used)"),
    F("seed", INTS, "initialization seed (Pylearn2's [2013, 1, 4])"),
    F("input_source", STRINGS, "accepted ('features')"),
    F("target_source", STRINGS, "accepted ('targets')"),
    F("layer_name", STRING, "an MLP used as a layer of another MLP: its name (then without "
      "nvis and input_space)"),
    F("monitor_targets", BOOL, "accepted"), END};
static const mt_cfg_key softmax_regression_keys[] = {
    R("n_classes", INT, "number of classes"), R("nvis", INT, "input dimension"), INIT_KEYS,
    F("max_row_norm", FLOAT, "max L2 norm of each row of W"),
    F("max_col_norm", FLOAT, "max L2 norm of each column of W"),
    F("seed", INTS, "initialization seed ([2013, 1, 4])"),
    F("batch_size", INT, "accepted"), END};

#define AE_KEYS                                                                             \
    R("nvis", INT, "input dimension"), R("nhid", INT, "hidden units"),                       \
    {"act_enc", MT_CFG_T_STRING, true, true, NULL, false,                                    \
     "encoder activation: null (linear), sigmoid, tanh, relu, softplus"},                    \
    {"act_dec", MT_CFG_T_STRING, true, true, NULL, false, "decoder activation (as act_enc)"}, \
    F("tied_weights", BOOL, "decoder weights = W^T (false)"),                                \
    F("irange", FLOAT, "W ~ U(-irange, irange), Wprime ~ U(-irange/2, irange/2) (1e-3)"),    \
    F("istdev", FLOAT, "weights ~ N(0, istdev^2) instead"),                                  \
    F("rng", INT, "initialization seed (9001)")

static const mt_cfg_key ae_keys[] = {AE_KEYS, END};
static const mt_cfg_key dae_keys[] = {
    {"corruptor", MT_CFG_T_OBJ, true, false, "corruptor", false,
     "BinomialCorruptor or GaussianCorruptor"}, AE_KEYS, END};

static const mt_component model_components[] = {
    {"MLP", "model|layer", ALIASES("pylearn2.models.mlp.MLP"), mlp_keys, false,
     "multilayer perceptron (also a layer of another MLP, with layer_name)", mlp_build,
     model_destroy, NULL},
    {"SoftmaxRegression", "model", ALIASES("pylearn2.models.softmax_regression.SoftmaxRegression"),
     softmax_regression_keys, false, "an MLP with one Softmax layer 'y'",
     softmax_regression_build, model_destroy, NULL},
    {"Autoencoder", "model", ALIASES("pylearn2.models.autoencoder.Autoencoder"), ae_keys, false,
     "act_dec(act_enc(x W + hb) Wprime + vb)", ae_build, model_destroy, ae_check},
    {"DenoisingAutoencoder", "model",
     ALIASES("pylearn2.models.autoencoder.DenoisingAutoencoder"), dae_keys, false,
     "autoencoder trained to reconstruct x from corruptor(x)", ae_build, model_destroy,
     ae_check},
};

/* ---------------------------------------------------------------- registration */

mt_status mt__register_model_components(mt_cfg_registry *r)
{
    static const mt_component *const layers[] = {
        &linear_component,  &sigmoid_component,       &tanh_l_component,
        &relu_component,    &softplus_component,      &softmax_component,
        &maxout_component,  &conv_elemwise_component, &conv_relu_component,
        &pretrained_component, &composite_component, &flattener_component,
        &projection_component, &simple_rnn_component, &lstm_component,
        &gru_component};
    mt_status st = MT_OK;
    for (size_t i = 0; !st && i < sizeof(layers) / sizeof(layers[0]); i++)
        st = mt_cfg_registry_add(r, layers[i]);
    for (size_t i = 0; !st && i < sizeof(nonlin_components) / sizeof(nonlin_components[0]); i++)
        st = mt_cfg_registry_add(r, &nonlin_components[i]);
    for (size_t i = 0; !st && i < sizeof(space_components) / sizeof(space_components[0]); i++)
        st = mt_cfg_registry_add(r, &space_components[i]);
    for (size_t i = 0; !st && i < sizeof(corruptor_components) / sizeof(corruptor_components[0]);
         i++)
        st = mt_cfg_registry_add(r, &corruptor_components[i]);
    for (size_t i = 0; !st && i < sizeof(model_components) / sizeof(model_components[0]); i++)
        st = mt_cfg_registry_add(r, &model_components[i]);
    return st;
}

mt_status mt_model_register_components(struct mt_cfg_registry *r)
{
    mt_status st = mt__register_model_components(r);
    if (!st) st = mt__register_cost_components(r);
    return st;
}
