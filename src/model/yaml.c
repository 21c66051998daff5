/* A model's structure as YAML (mt_model_to_yaml) and back (mt_model_from_yaml): the text is a
 * component document the registry builds into an equal model (same layers, hyperparameters,
 * shapes and parameter names; the parameter VALUES are new draws and are loaded separately
 * by name, e.g. from a checkpoint). Floats are written with the fewest digits that read back
 * as the same double; strings single-quoted. A PretrainedLayer is written with its content
 * autoencoder inline (its structure only), so the text needs no other file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_impl.h"

void mt__yaml_float(mt_strbuf *sb, double v)
{
    if (isnan(v)) {
        mt_strbuf_append(sb, ".nan");
        return;
    }
    if (isinf(v)) {
        mt_strbuf_append(sb, v > 0 ? ".inf" : "-.inf");
        return;
    }
    char buf[40];
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, sizeof(buf), "%.*g", p, v);
        if (strtod(buf, NULL) == v) break;
    }
    char *e = strchr(buf, 'e');
    if (!strchr(buf, '.')) {
        if (e) {
            char tail[40];
            snprintf(tail, sizeof(tail), "%s", e);
            snprintf(e, sizeof(buf) - (size_t)(e - buf), ".0%s", tail);
        } else {
            strcat(buf, ".0");
        }
    }
    mt_strbuf_append(sb, buf);
}

void mt__yaml_str(mt_strbuf *sb, const char *s)
{
    mt_strbuf_append(sb, "'");
    for (const char *p = s; *p; p++) {
        if (*p == '\'') mt_strbuf_append(sb, "''");
        else mt_strbuf_appendn(sb, p, 1);
    }
    mt_strbuf_append(sb, "'");
}

/* ---------------------------------------------------------------- writer helpers */

typedef struct yw {
    mt_strbuf *sb;
    bool first;
} yw;

static void key(yw *w, const char *k)
{
    mt_strbuf_appendf(w->sb, "%s%s: ", w->first ? "" : ", ", k);
    w->first = false;
}

static void kf(yw *w, const char *k, double v)
{
    key(w, k);
    mt__yaml_float(w->sb, v);
}

static void kf_opt(yw *w, const char *k, double v)
{
    if (!isnan(v)) kf(w, k, v);
}

static void ki(yw *w, const char *k, int64_t v)
{
    key(w, k);
    mt_strbuf_appendf(w->sb, "%lld", (long long)v);
}

static void ks(yw *w, const char *k, const char *v)
{
    key(w, k);
    if (v) mt__yaml_str(w->sb, v);
    else mt_strbuf_append(w->sb, "null");
}

static void kb(yw *w, const char *k, bool v)
{
    key(w, k);
    mt_strbuf_append(w->sb, v ? "true" : "false");
}

static void kpair(yw *w, const char *k, const int64_t v[2])
{
    key(w, k);
    mt_strbuf_appendf(w->sb, "[%lld, %lld]", (long long)v[0], (long long)v[1]);
}

/* ---------------------------------------------------------------- layers */

static void write_init(yw *w, const mt__layer_spec *s)
{
    if (s->has_irange) kf(w, "irange", s->irange);
    if (s->has_istdev) kf(w, "istdev", s->istdev);
    if (s->has_sparse_init) ki(w, "sparse_init", s->sparse_init);
    if (s->sparse_stdev != 1.0) kf(w, "sparse_stdev", s->sparse_stdev);
    if (s->include_prob != 1.0) kf(w, "include_prob", s->include_prob);
    if (s->init_bias != 0.0) kf(w, "init_bias", s->init_bias);
    kf_opt(w, "W_lr_scale", s->W_lr_scale);
    kf_opt(w, "b_lr_scale", s->b_lr_scale);
}

static const char *act_nonlin(mt__act a)
{
    switch (a) {
    case MT__ACT_RELU: return "RectifierConvNonlinearity";
    case MT__ACT_SIGMOID: return "SigmoidConvNonlinearity";
    case MT__ACT_TANH: return "TanhConvNonlinearity";
    default: return "IdentityConvNonlinearity";
    }
}

static void write_conv(yw *w, const mt__layer_spec *s)
{
    bool rect = !strcmp(s->cls, "ConvRectifiedLinear");
    ki(w, "output_channels", s->dim);
    kpair(w, "kernel_shape", s->kernel_shape);
    write_init(w, s);
    kf_opt(w, "max_kernel_norm", s->max_kernel_norm);
    if (s->kernel_stride[0] != 1 || s->kernel_stride[1] != 1)
        kpair(w, "kernel_stride", s->kernel_stride);
    if (s->border_full) ks(w, "border_mode", "full");
    if (s->pool_type != MT__POOL_NONE || rect) {
        ks(w, "pool_type", s->pool_type == MT__POOL_MAX    ? "max"
                           : s->pool_type == MT__POOL_MEAN ? "mean"
                                                           : NULL);
        kpair(w, "pool_shape", s->pool_shape);
        kpair(w, "pool_stride", s->pool_stride);
    }
    if (s->tied_b) kb(w, "tied_b", true);
    if (!s->monitor_classification) ks(w, "monitor_style", "detection");
    if (rect) {
        if (s->left_slope != 0.0) kf(w, "left_slope", s->left_slope);
        return;
    }
    key(w, "nonlinearity");
    mt_strbuf_appendf(w->sb, "!obj:%s {", act_nonlin(s->conv_act));
    if (s->conv_act == MT__ACT_RELU && s->left_slope != 0.0) {
        mt_strbuf_append(w->sb, "left_slope: ");
        mt__yaml_float(w->sb, s->left_slope);
    } else if (s->conv_act == MT__ACT_SIGMOID && !s->monitor_classification) {
        mt_strbuf_append(w->sb, "monitor_style: 'detection'");
    }
    mt_strbuf_append(w->sb, "}");
}

static mt_status write_layer(mt_strbuf *sb, const mt__layer_spec *s, const char *indent);

/* The sub-layers of a container, inline: "[!obj:... {...}, ...]". */
static mt_status write_sublayers(yw *w, const mt__layer_spec *s)
{
    key(w, "layers");
    mt_strbuf_append(w->sb, "[");
    for (int32_t i = 0; i < s->n_sub; i++) {
        mt_status st = write_layer(w->sb, &s->sub[i], i ? ", " : "");
        if (st) return st;
    }
    mt_strbuf_append(w->sb, "]");
    return MT_OK;
}

static mt_status write_layer(mt_strbuf *sb, const mt__layer_spec *s, const char *indent)
{
    yw w = {sb, true};
    mt_strbuf_appendf(sb, "%s!obj:%s {", indent, s->cls);
    if (s->kind == MT__LAYER_FLATTENER) { /* named after its raw layer */
        key(&w, "raw_layer");
        mt_status st = s->n_sub == 1 ? write_layer(sb, &s->sub[0], "")
                                     : mt_err_set(MT_ERR_INTERNAL, "to_yaml: FlattenerLayer '%s' "
                                                  "has no raw layer", s->name);
        if (st) return st;
        mt_strbuf_append(sb, "}");
        return MT_OK;
    }
    ks(&w, "layer_name", s->name);
    switch (s->kind) {
    case MT__LAYER_MLP: {
        mt_status st = write_sublayers(&w, s);
        if (st) return st;
        break;
    }
    case MT__LAYER_COMPOSITE: {
        mt_status st = write_sublayers(&w, s);
        if (st) return st;
        if (s->n_route > 0) {
            key(&w, "inputs_to_layers");
            mt_strbuf_append(sb, "{");
            for (int32_t r = 0; r < s->n_route; r++) {
                mt_strbuf_appendf(sb, "%s%d: [", r ? ", " : "", (int)s->route_key[r]);
                for (int32_t k = s->route_off[r]; k < s->route_off[r + 1]; k++)
                    mt_strbuf_appendf(sb, "%s%d", k > s->route_off[r] ? ", " : "",
                                      (int)s->route_val[k]);
                mt_strbuf_append(sb, "]");
            }
            mt_strbuf_append(sb, "}");
        }
        break;
    }
    case MT__LAYER_PROJECTION:
        ki(&w, "dim", s->dim);
        if (s->has_irange) kf(&w, "irange", s->irange);
        if (s->has_istdev) kf(&w, "istdev", s->istdev);
        break;
    case MT__LAYER_LINEAR:
    case MT__LAYER_SIGMOID:
    case MT__LAYER_TANH:
    case MT__LAYER_RELU:
    case MT__LAYER_SOFTPLUS:
        ki(&w, "dim", s->dim);
        write_init(&w, s);
        kf_opt(&w, "max_row_norm", s->max_row_norm);
        kf_opt(&w, "max_col_norm", s->max_col_norm);
        if (!s->use_bias) kb(&w, "use_bias", false);
        if (s->use_abs_loss) kb(&w, "use_abs_loss", true);
        if (s->kind == MT__LAYER_RELU && s->left_slope != 0.0) kf(&w, "left_slope", s->left_slope);
        if (s->kind == MT__LAYER_SIGMOID && s->monitor_classification)
            ks(&w, "monitor_style", "classification");
        break;
    case MT__LAYER_SOFTMAX:
        ki(&w, "n_classes", s->dim);
        write_init(&w, s);
        kf_opt(&w, "max_row_norm", s->max_row_norm);
        kf_opt(&w, "max_col_norm", s->max_col_norm);
        if (s->no_affine) kb(&w, "no_affine", true);
        if (s->binary_target_dim > 0) ki(&w, "binary_target_dim", s->binary_target_dim);
        break;
    case MT__LAYER_MAXOUT:
        ki(&w, "num_units", s->dim);
        ki(&w, "num_pieces", s->num_pieces);
        if (s->maxout_stride > 0) ki(&w, "pool_stride", s->maxout_stride);
        write_init(&w, s);
        kf_opt(&w, "max_col_norm", s->max_col_norm);
        if (s->min_zero) kb(&w, "min_zero", true);
        break;
    case MT__LAYER_CONV: write_conv(&w, s); break;
    case MT__LAYER_SIMPLE_RNN:
    case MT__LAYER_LSTM:
    case MT__LAYER_GRU:
        ki(&w, "dim", s->dim);
        ki(&w, "n_steps", s->n_steps);
        write_init(&w, s);
        kf_opt(&w, "U_lr_scale", s->U_lr_scale);
        if (s->U_orthogonal) ks(&w, "U_init", "orthogonal");
        if (s->return_sequences) kb(&w, "return_sequences", true);
        if (s->reverse) kb(&w, "reverse", true);
        if (s->kind == MT__LAYER_LSTM && s->forget_bias != 1.0)
            kf(&w, "forget_bias", s->forget_bias);
        if (s->kind == MT__LAYER_SIMPLE_RNN && s->rnn_act != MT__ACT_TANH)
            ks(&w, "activation", mt__act_name(s->rnn_act));
        break;
    case MT__LAYER_PRETRAINED:
        if (s->freeze) kb(&w, "freeze_params", true);
        key(&w, "layer_content");
        mt_strbuf_append(sb, s->pre_yaml ? s->pre_yaml : "null");
        break;
    default:
        return mt_err_set(MT_ERR_INTERNAL, "to_yaml: layer '%s' cannot be written", s->name);
    }
    mt_strbuf_append(sb, "}");
    return MT_OK;
}

/* ---------------------------------------------------------------- models */

static void write_space(mt_strbuf *sb, const mt__space *sp)
{
    switch (sp->kind) {
    case MT__SPACE_VECTOR:
        mt_strbuf_appendf(sb, "!obj:VectorSpace {dim: %lld}", (long long)sp->dim);
        break;
    case MT__SPACE_CONV2D:
        mt_strbuf_appendf(sb, "!obj:Conv2DSpace {shape: [%lld, %lld], num_channels: %lld",
                          (long long)sp->shape[0], (long long)sp->shape[1],
                          (long long)sp->channels);
        if (sp->axes[0] && strcmp(sp->axes, "b01c") != 0) {
            mt_strbuf_append(sb, ", axes: [");
            for (int i = 0; i < 4; i++) {
                char c = sp->axes[i];
                if (c == '0' || c == '1') mt_strbuf_appendf(sb, "%s%c", i ? ", " : "", c);
                else mt_strbuf_appendf(sb, "%s'%c'", i ? ", " : "", c);
            }
            mt_strbuf_append(sb, "]");
        }
        mt_strbuf_append(sb, "}");
        break;
    case MT__SPACE_INDEX:
        mt_strbuf_appendf(sb, "!obj:IndexSpace {dim: %lld, max_labels: %lld}",
                          (long long)sp->dim, (long long)sp->max_labels);
        break;
    case MT__SPACE_COMPOSITE:
        mt_strbuf_append(sb, "!obj:CompositeSpace {components: [");
        for (int32_t i = 0; i < sp->n_comp; i++) {
            if (i) mt_strbuf_append(sb, ", ");
            write_space(sb, &sp->comp[i]);
        }
        mt_strbuf_append(sb, "]}");
        break;
    }
}

static void write_seed(yw *w, const mt_model *m, const char *k)
{
    key(w, k);
    if (m->n_seed == 1 && !strcmp(k, "rng")) {
        mt_strbuf_appendf(w->sb, "%lld", (long long)m->seed[0]);
        return;
    }
    mt_strbuf_append(w->sb, "[");
    for (int32_t i = 0; i < m->n_seed; i++)
        mt_strbuf_appendf(w->sb, "%s%lld", i ? ", " : "", (long long)m->seed[i]);
    mt_strbuf_append(w->sb, "]");
}

static mt_status write_mlp(const mt_model *m, mt_strbuf *sb)
{
    yw w = {sb, true};
    mt_strbuf_append(sb, "!obj:MLP {\n    ");
    if (m->has_input_space) {
        key(&w, "input_space");
        write_space(sb, &m->input_space);
    } else {
        ki(&w, "nvis", m->input_space.dim);
    }
    mt_strbuf_append(sb, ",\n    ");
    w.first = true;
    write_seed(&w, m, "seed");
    if (m->batch_size > 0) ki(&w, "batch_size", m->batch_size);
    mt_strbuf_append(sb, ",\n    layers: [\n");
    for (int32_t i = 0; i < m->n_layers; i++) {
        mt_status st = write_layer(sb, &m->layers[i].s, "        ");
        if (st) return st;
        mt_strbuf_append(sb, i + 1 < m->n_layers ? ",\n" : "\n");
    }
    mt_strbuf_append(sb, "    ]\n}");
    return MT_OK;
}

static void write_softmax_regression(const mt_model *m, mt_strbuf *sb)
{
    const mt__layer_spec *s = &m->layers[0].s;
    yw w = {sb, true};
    mt_strbuf_append(sb, "!obj:SoftmaxRegression {");
    ki(&w, "n_classes", s->dim);
    ki(&w, "nvis", m->input_space.dim);
    write_init(&w, s);
    kf_opt(&w, "max_row_norm", s->max_row_norm);
    kf_opt(&w, "max_col_norm", s->max_col_norm);
    write_seed(&w, m, "seed");
    if (m->batch_size > 0) ki(&w, "batch_size", m->batch_size);
    mt_strbuf_append(sb, "}");
}

static void write_ae(const mt_model *m, mt_strbuf *sb)
{
    yw w = {sb, true};
    mt_strbuf_appendf(sb, "!obj:%s {", mt_model_type_name(m));
    ki(&w, "nvis", m->nvis);
    ki(&w, "nhid", m->nhid);
    ks(&w, "act_enc", m->act_enc == MT__ACT_LINEAR ? NULL : mt__act_name(m->act_enc));
    ks(&w, "act_dec", m->act_dec == MT__ACT_LINEAR ? NULL : mt__act_name(m->act_dec));
    if (m->tied_weights) kb(&w, "tied_weights", true);
    kf_opt(&w, "irange", m->ae_irange);
    kf_opt(&w, "istdev", m->ae_istdev);
    write_seed(&w, m, "rng");
    if (m->kind == MT__MODEL_DAE) {
        key(&w, "corruptor");
        if (m->corruptor.kind == MT__CORRUPT_GAUSSIAN) {
            mt_strbuf_append(sb, "!obj:GaussianCorruptor {stdev: ");
        } else {
            mt_strbuf_append(sb, "!obj:BinomialCorruptor {corruption_level: ");
        }
        mt__yaml_float(sb, m->corruptor.level);
        mt_strbuf_append(sb, "}");
    }
    mt_strbuf_append(sb, "}");
}

mt_status mt_model_to_yaml(const mt_model *m, mt_strbuf *sb)
{
    if (!m || !sb) return mt_err_set(MT_ERR_INVALID, "to_yaml: NULL argument");
    mt_status st = MT_OK;
    switch (m->kind) {
    case MT__MODEL_MLP: st = write_mlp(m, sb); break;
    case MT__MODEL_SOFTMAX_REGRESSION: write_softmax_regression(m, sb); break;
    default: write_ae(m, sb); break;
    }
    if (st) return st;
    return mt_strbuf_status(sb);
}

mt_status mt_model_from_yaml(mt_model **out, const struct mt_cfg_registry *r, const char *text)
{
    *out = NULL;
    if (!r || !text) return mt_err_set(MT_ERR_INVALID, "from_yaml: NULL argument");
    mt_cfg_options o;
    mt_cfg_options_init(&o);
    o.no_environment = true;
    mt_cfg_doc *doc = NULL;
    mt_cfg_builder *b = NULL;
    mt_status st = mt_cfg_load_string(&doc, text, strlen(text), "<model>", &o);
    if (!st) st = mt_cfg_validate(r, mt_cfg_doc_root(doc), "model");
    if (!st) st = mt_cfg_builder_new(&b, r);
    void *obj = NULL;
    if (!st) st = mt_cfg_build(b, mt_cfg_doc_root(doc), "model", &obj, NULL);
    if (!st && (!obj || ((mt_model *)obj)->magic != MT__MODEL_MAGIC))
        st = mt_err_set(MT_ERR_INVALID, "from_yaml: the text does not describe a model");
    if (!st) st = mt_cfg_builder_release(b, obj);
    mt_cfg_builder_free(b);
    mt_cfg_doc_free(doc);
    if (st) return mt_err_prefix(st, "model from YAML: ");
    *out = obj;
    return MT_OK;
}
