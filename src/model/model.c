/* The model object: layer descriptions, Pylearn2's set_input_space chain (each layer learns
 * its input shape from the layer below and computes its output shape), parameter allocation
 * and initialization, accessors, dataset checks and first-layer filters. Building graphs from
 * a model is in fprop.c, channels in channels.c, costs in cost.c, YAML in components*.c and
 * yaml.c. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "model_impl.h"

/* ---------------------------------------------------------------- names */

static const char *const layer_kind_names[MT__LAYER_KIND_COUNT] = {
    [MT__LAYER_LINEAR] = "Linear",       [MT__LAYER_SIGMOID] = "Sigmoid",
    [MT__LAYER_TANH] = "Tanh",           [MT__LAYER_RELU] = "RectifiedLinear",
    [MT__LAYER_SOFTPLUS] = "Softplus",   [MT__LAYER_SOFTMAX] = "Softmax",
    [MT__LAYER_MAXOUT] = "Maxout",       [MT__LAYER_CONV] = "ConvElemwise",
    [MT__LAYER_PRETRAINED] = "PretrainedLayer", [MT__LAYER_AE_ENC] = "encoder",
    [MT__LAYER_AE_DEC] = "decoder",      [MT__LAYER_COMPOSITE] = "CompositeLayer",
    [MT__LAYER_FLATTENER] = "FlattenerLayer", [MT__LAYER_MLP] = "MLP",
    [MT__LAYER_PROJECTION] = "ProjectionLayer", [MT__LAYER_SIMPLE_RNN] = "SimpleRNN",
    [MT__LAYER_LSTM] = "LSTM",           [MT__LAYER_GRU] = "GRU",
};

const char *mt__layer_kind_name(mt__layer_kind k)
{
    return (unsigned)k < MT__LAYER_KIND_COUNT ? layer_kind_names[k] : "invalid";
}

static const char *const act_names[MT__ACT_COUNT] = {"linear", "sigmoid", "tanh", "relu",
                                                      "softplus"};

const char *mt__act_name(mt__act a)
{
    return (unsigned)a < MT__ACT_COUNT ? act_names[a] : "invalid";
}

mt_status mt__act_from_name(mt__act *out, const char *name)
{
    if (!name || !strcmp(name, "linear") || !strcmp(name, "None")) {
        *out = MT__ACT_LINEAR;
        return MT_OK;
    }
    for (int i = 0; i < MT__ACT_COUNT; i++)
        if (!strcmp(name, act_names[i])) {
            *out = (mt__act)i;
            return MT_OK;
        }
    if (!strcmp(name, "rectify")) {
        *out = MT__ACT_RELU;
        return MT_OK;
    }
    return mt_err_set(MT_ERR_INVALID, "unknown activation '%s' (valid: null, linear, sigmoid, "
                      "tanh, relu, softplus)", name);
}

void mt__copy_name(char *dst, size_t cap, const char *src)
{
    if (!cap) return;
    snprintf(dst, cap, "%s", src ? src : "");
}

/* ---------------------------------------------------------------- layer specs */

void mt__layer_spec_init(mt__layer_spec *s, mt__layer_kind kind, const char *name)
{
    memset(s, 0, sizeof(*s));
    s->kind = kind;
    mt__copy_name(s->name, sizeof(s->name), name);
    mt__copy_name(s->cls, sizeof(s->cls), mt__layer_kind_name(kind));
    s->sparse_stdev = 1.0;
    s->include_prob = 1.0;
    s->init_bias = 0.0;
    s->max_col_norm = s->max_row_norm = s->max_kernel_norm = NAN;
    s->W_lr_scale = s->b_lr_scale = NAN;
    s->use_bias = true;
    s->kernel_stride[0] = s->kernel_stride[1] = 1;
    s->conv_act = MT__ACT_LINEAR;
    s->enc_act = MT__ACT_LINEAR;
    s->monitor_classification = kind == MT__LAYER_CONV;
    s->rnn_act = MT__ACT_TANH;
    s->forget_bias = 1.0;
    s->U_lr_scale = NAN;
}

static int32_t *dup_ints(const int32_t *v, int32_t n)
{
    int32_t *d = mt_malloc((size_t)(n > 0 ? n : 1) * sizeof(int32_t));
    if (d && n > 0) memcpy(d, v, (size_t)n * sizeof(int32_t));
    return d;
}

mt_status mt__layer_spec_copy(mt__layer_spec *dst, const mt__layer_spec *src)
{
    *dst = *src;
    dst->pre_W = NULL;
    dst->pre_b = NULL;
    dst->pre_yaml = NULL;
    dst->sub = NULL;
    dst->n_sub = 0;
    dst->route_key = dst->route_off = dst->route_val = NULL;
    dst->n_route = 0;
    if (src->n_sub > 0) {
        if (!(dst->sub = mt_calloc((size_t)src->n_sub, sizeof(mt__layer_spec)))) goto fail;
        for (int32_t i = 0; i < src->n_sub; i++) {
            mt_status st = mt__layer_spec_copy(&dst->sub[i], &src->sub[i]);
            if (st) {
                mt__layer_spec_clear(dst);
                return st;
            }
            dst->n_sub = i + 1;
        }
    }
    if (src->n_route > 0) {
        dst->route_key = dup_ints(src->route_key, src->n_route);
        dst->route_off = dup_ints(src->route_off, src->n_route + 1);
        dst->route_val = dup_ints(src->route_val, src->route_off[src->n_route]);
        if (!dst->route_key || !dst->route_off || !dst->route_val) goto fail;
        dst->n_route = src->n_route;
    }
    if (src->pre_W) {
        size_t nw = (size_t)(src->pre_in * src->pre_out) * sizeof(float);
        size_t nb = (size_t)src->pre_out * sizeof(float);
        dst->pre_W = mt_malloc(nw ? nw : 1);
        dst->pre_b = mt_malloc(nb ? nb : 1);
        if (!dst->pre_W || !dst->pre_b) goto fail;
        memcpy(dst->pre_W, src->pre_W, nw);
        if (src->pre_b) memcpy(dst->pre_b, src->pre_b, nb);
        else memset(dst->pre_b, 0, nb);
    }
    if (src->pre_yaml && !(dst->pre_yaml = mt_strdup(src->pre_yaml))) goto fail;
    return MT_OK;
fail:
    mt__layer_spec_clear(dst);
    return mt_err_set(MT_ERR_NOMEM, "layer '%s': out of memory", src->name);
}

void mt__layer_spec_clear(mt__layer_spec *s)
{
    if (!s) return;
    mt_free(s->pre_W);
    mt_free(s->pre_b);
    mt_free(s->pre_yaml);
    s->pre_W = s->pre_b = NULL;
    s->pre_yaml = NULL;
    for (int32_t i = 0; i < s->n_sub; i++) mt__layer_spec_clear(&s->sub[i]);
    mt_free(s->sub);
    s->sub = NULL;
    s->n_sub = 0;
    mt_free(s->route_key);
    mt_free(s->route_off);
    mt_free(s->route_val);
    s->route_key = s->route_off = s->route_val = NULL;
    s->n_route = 0;
}

/* ---------------------------------------------------------------- spaces */

void mt__space_clear(mt__space *s)
{
    if (!s) return;
    for (int32_t i = 0; i < s->n_comp; i++) mt__space_clear(&s->comp[i]);
    mt_free(s->comp);
    s->comp = NULL;
    s->n_comp = 0;
}

mt_status mt__space_copy(mt__space *dst, const mt__space *src)
{
    *dst = *src;
    dst->comp = NULL;
    dst->n_comp = 0;
    if (src->n_comp > 0) {
        dst->comp = mt_calloc((size_t)src->n_comp, sizeof(mt__space));
        if (!dst->comp) return mt_err_set(MT_ERR_NOMEM, "space: out of memory");
        for (int32_t i = 0; i < src->n_comp; i++) {
            mt_status st = mt__space_copy(&dst->comp[i], &src->comp[i]);
            dst->n_comp = i + 1;
            if (st) {
                mt__space_clear(dst);
                return st;
            }
        }
    }
    return MT_OK;
}

int64_t mt__space_total_dim(const mt__space *s)
{
    switch (s->kind) {
    case MT__SPACE_VECTOR:
    case MT__SPACE_INDEX: return s->dim;
    case MT__SPACE_CONV2D: return s->shape[0] * s->shape[1] * s->channels;
    case MT__SPACE_COMPOSITE: {
        int64_t t = 0;
        for (int32_t i = 0; i < s->n_comp; i++) t += mt__space_total_dim(&s->comp[i]);
        return t;
    }
    }
    return 0;
}

mt_status mt__space_dim(const mt__space *s, const char *what, int64_t *out)
{
    int64_t t = 0;
    switch (s->kind) {
    case MT__SPACE_VECTOR:
    case MT__SPACE_INDEX: t = s->dim; break;
    case MT__SPACE_CONV2D:
        if (__builtin_mul_overflow(s->shape[0], s->shape[1], &t) ||
            __builtin_mul_overflow(t, s->channels, &t))
            return mt_err_set(MT_ERR_RANGE, "%s: Conv2DSpace %lld x %lld with %lld channels has "
                              "more features than an int64 holds", what, (long long)s->shape[0],
                              (long long)s->shape[1], (long long)s->channels);
        break;
    case MT__SPACE_COMPOSITE:
        for (int32_t i = 0; i < s->n_comp; i++) {
            int64_t d = 0;
            mt_status st = mt__space_dim(&s->comp[i], what, &d);
            if (st) return st;
            int64_t sum = 0;
            if (__builtin_add_overflow(t, d, &sum))
                return mt_err_set(MT_ERR_RANGE, "%s: CompositeSpace component %d has %lld "
                                  "features, which with the %lld of the components before it "
                                  "are more than an int64 holds", what, (int)i, (long long)d,
                                  (long long)t);
            t = sum;
        }
        break;
    }
    *out = t;
    return MT_OK;
}

bool mt__space_has_index(const mt__space *s)
{
    if (s->kind == MT__SPACE_INDEX) return true;
    for (int32_t i = 0; i < s->n_comp; i++)
        if (mt__space_has_index(&s->comp[i])) return true;
    return false;
}

void mt__space_format(const mt__space *s, mt_strbuf *sb)
{
    switch (s->kind) {
    case MT__SPACE_VECTOR: mt_strbuf_appendf(sb, "VectorSpace(dim %lld)", (long long)s->dim); break;
    case MT__SPACE_CONV2D:
        mt_strbuf_appendf(sb, "Conv2DSpace(%lldx%lld, %lld channels)", (long long)s->shape[0],
                          (long long)s->shape[1], (long long)s->channels);
        break;
    case MT__SPACE_INDEX:
        mt_strbuf_appendf(sb, "IndexSpace(dim %lld, max_labels %lld)", (long long)s->dim,
                          (long long)s->max_labels);
        break;
    case MT__SPACE_COMPOSITE:
        mt_strbuf_append(sb, "CompositeSpace(");
        for (int32_t i = 0; i < s->n_comp; i++) {
            if (i) mt_strbuf_append(sb, ", ");
            mt__space_format(&s->comp[i], sb);
        }
        mt_strbuf_append(sb, ")");
        break;
    }
}

/* ---------------------------------------------------------------- the model object */

static mt_model *model_alloc(mt__model_kind kind)
{
    mt_model *m = mt_calloc(1, sizeof(*m));
    if (!m) return NULL;
    m->magic = MT__MODEL_MAGIC;
    m->kind = kind;
    m->ae_irange = m->ae_istdev = NAN;
    snprintf(m->input_source, sizeof(m->input_source), "features");
    snprintf(m->target_source, sizeof(m->target_source), "targets");
    return m;
}

void mt_model_free(mt_model *m)
{
    if (!m) return;
    for (int32_t i = 0; i < m->n_layers; i++) mt__layer_clear(&m->layers[i]);
    mt_free(m->layers);
    for (int32_t i = 0; i < m->n_params; i++) {
        mt_free((char *)m->params[i].name);
        mt_array_clear(&m->params[i].value);
    }
    mt_free(m->params);
    mt__space_clear(&m->input_space);
    m->magic = 0;
    mt_free(m);
}

static void set_seed(mt_model *m, int32_t n, const int64_t *seed)
{
    static const int64_t dflt[3] = {2013, 1, 4};
    if (n <= 0) {
        n = 3;
        seed = dflt;
    }
    if (n > MT__MAX_SEED) n = MT__MAX_SEED;
    m->n_seed = n;
    memcpy(m->seed, seed, (size_t)n * sizeof(int64_t));
    m->seed_key = mt_hash64(m->seed, (size_t)n * sizeof(int64_t), 0x6d6f64656c736564ull);
}

/* Appends a parameter of the given shape, initialized to zeros (host float32). */
mt_status mt__add_param(mt_model *m, const char *layer, const char *suffix, int32_t li,
                        bool is_weight, int32_t ndim, const int64_t *dims, int32_t *index)
{
    char name[MT__PATH_MAX + 16];
    if (suffix) snprintf(name, sizeof(name), "%s_%s", layer, suffix);
    else snprintf(name, sizeof(name), "%s", layer);
    for (int32_t i = 0; i < m->n_params; i++)
        if (!strcmp(m->params[i].name, name))
            return mt_err_set(MT_ERR_INVALID, "model: two parameters named '%s' (layer names "
                              "must be unique in each MLP and CompositeLayer)", name);
    mt_model_param *np = mt_realloc(m->params, (size_t)(m->n_params + 1) * sizeof(*np));
    if (!np) return mt_err_set(MT_ERR_NOMEM, "model: out of memory");
    m->params = np;
    mt_model_param *p = &m->params[m->n_params];
    memset(p, 0, sizeof(*p));
    p->name = mt_strdup(name);
    if (!p->name) return mt_err_set(MT_ERR_NOMEM, "model: out of memory");
    p->layer = li;
    p->is_weight = is_weight;
    p->lr_scale = 1.0f;
    mt_device *host = NULL;
    mt_status st = mt_device_open(&host, "host");
    if (!st) st = mt_array_zeros(&p->value, host, MT_FLOAT32, ndim, dims);
    mt_device_release(host); /* the array's buffer keeps its own reference */
    if (st) {
        mt_free((char *)p->name);
        return mt_err_prefix(st, "model: parameter '%s': ", name);
    }
    *index = m->n_params++;
    return MT_OK;
}

float *mt__param_data(mt_model *m, int32_t i)
{
    return (float *)mt_buffer_host_ptr(m->params[i].value.buf);
}

static void fill(float *p, int64_t n, double v)
{
    for (int64_t i = 0; i < n; i++) p[i] = (float)v;
}

static void set_scales(mt_model *m, const mt__layer *L)
{
    if (L->iW >= 0 && !isnan(L->s.W_lr_scale)) m->params[L->iW].lr_scale = (float)L->s.W_lr_scale;
    if (L->ib >= 0 && !isnan(L->s.b_lr_scale)) m->params[L->ib].lr_scale = (float)L->s.b_lr_scale;
    if (L->iU >= 0) {
        double u = !isnan(L->s.U_lr_scale) ? L->s.U_lr_scale : L->s.W_lr_scale;
        if (!isnan(u)) m->params[L->iU].lr_scale = (float)u;
    }
    if (L->iW < 0) return;
    mt_model_param *W = &m->params[L->iW];
    if (!isnan(L->s.max_kernel_norm)) {
        W->constraint = MT_NORM_MAX_KERNEL;
        W->constraint_limit = L->s.max_kernel_norm;
    } else if (!isnan(L->s.max_row_norm)) {
        W->constraint = MT_NORM_MAX_ROW;
        W->constraint_limit = L->s.max_row_norm;
    } else if (!isnan(L->s.max_col_norm)) {
        W->constraint = MT_NORM_MAX_COL;
        W->constraint_limit = L->s.max_col_norm;
    }
}

/* ---------------------------------------------------------------- set_input_space */

static mt_status bad(const mt__layer *L, const char *fmt, const char *detail)
{
    return mt_err_set(MT_ERR_INVALID, "layer '%s' (%s): %s%s", L->s.name, L->s.cls, fmt,
                      detail ? detail : "");
}

/* Dense layers: W [in, units], b [units]. */
static mt_status setup_dense(mt_model *m, mt__layer *L, int32_t li)
{
    const mt__layer_spec *s = &L->s;
    int64_t units = s->dim;
    char what[160];
    snprintf(what, sizeof(what), "layer '%s' (%s)", s->name, s->cls);
    if (units < 1)
        return mt_err_set(MT_ERR_INVALID, "%s: %s must be >= 1, got %lld", what,
                          s->kind == MT__LAYER_SOFTMAX ? "n_classes" : "dim", (long long)units);
    if (s->kind == MT__LAYER_SOFTMAX && s->no_affine) {
        if (L->in_dim != units)
            return mt_err_set(MT_ERR_SHAPE, "%s: no_affine needs an input of n_classes = %lld "
                              "features, got %lld", what, (long long)units,
                              (long long)L->in_dim);
        L->out_dim = units;
        return MT_OK;
    }
    int64_t wd[2] = {L->in_dim, units};
    mt_status st = mt__add_param(m, L->path, "W", li, true, 2, wd, &L->iW);
    if (!st && s->use_bias) st = mt__add_param(m, L->path, "b", li, false, 1, &units, &L->ib);
    if (st) return st;
    uint64_t key = mt__init_key(m->seed_key, m->params[L->iW].name);
    if (s->kind == MT__LAYER_SOFTMAX && !s->has_irange && !s->has_istdev && !s->has_sparse_init)
        return mt_err_set(MT_ERR_INVALID, "%s: give one of irange, istdev or sparse_init "
                          "(irange: 0. gives zeros)", what);
    st = mt__init_dense(mt__param_data(m, L->iW), L->in_dim, units, s, key, what);
    if (st) return st;
    if (L->ib >= 0) fill(mt__param_data(m, L->ib), units, s->init_bias);
    L->out_dim = units;
    return MT_OK;
}

static mt_status setup_maxout(mt_model *m, mt__layer *L, int32_t li)
{
    const mt__layer_spec *s = &L->s;
    if (s->dim < 1) return bad(L, "num_units must be >= 1", NULL);
    if (s->num_pieces < 1) return bad(L, "num_pieces must be >= 1", NULL);
    int64_t stride = s->maxout_stride > 0 ? s->maxout_stride : s->num_pieces;
    int64_t det = 0;
    if (__builtin_mul_overflow(s->dim, s->num_pieces, &det))
        return mt_err_set(MT_ERR_RANGE, "layer '%s' (Maxout): num_units %lld * num_pieces %lld "
                          "is more than an int64 holds", L->path, (long long)s->dim,
                          (long long)s->num_pieces);
    if ((det - s->num_pieces) % stride != 0)
        return mt_err_set(MT_ERR_INVALID, "layer '%s' (Maxout): num_units*num_pieces - "
                          "num_pieces = %lld is not divisible by pool_stride %lld", s->name,
                          (long long)(det - s->num_pieces), (long long)stride);
    if (!isnan(s->max_row_norm))
        return bad(L, "max_row_norm is not implemented for Maxout (as in Pylearn2)", NULL);
    L->det_dim = det;
    int64_t wd[2] = {L->in_dim, det};
    mt_status st = mt__add_param(m, L->path, "W", li, true, 2, wd, &L->iW);
    if (!st) st = mt__add_param(m, L->path, "b", li, false, 1, &det, &L->ib);
    if (st) return st;
    char what[160];
    snprintf(what, sizeof(what), "layer '%s' (Maxout)", s->name);
    uint64_t key = mt__init_key(m->seed_key, m->params[L->iW].name);
    st = mt__init_dense(mt__param_data(m, L->iW), L->in_dim, det, s, key, what);
    if (st) return st;
    fill(mt__param_data(m, L->ib), det, s->init_bias);
    L->out_dim = (det - s->num_pieces) / stride + 1;
    return MT_OK;
}

/* Pylearn2's max_pool/mean_pool: ceil((size - pool) / stride) + 1 outputs (mt_graph_pool2d's
 * ceil_mode). */
static int64_t pool_out(int64_t n, int64_t p, int64_t s)
{
    /* 1 <= p <= n and s >= 1 (any size): ceil((n - p) / s) + 1 without overflow */
    int64_t out = (n - p) / s + ((n - p) % s != 0) + 1;
    if (out - 1 > (n - 1) / s) out--; /* (out - 1) * s >= n: the last window would be empty */
    return out;
}

static mt_status setup_conv(mt_model *m, mt__layer *L, int32_t li)
{
    mt__layer_spec *s = &L->s;
    char what[160];
    snprintf(what, sizeof(what), "layer '%s' (%s)", s->name, s->cls);
    if (!L->in_image)
        return mt_err_set(MT_ERR_INVALID, "%s: expects a Conv2DSpace input (an image from the "
                          "MLP's input_space or a conv layer below), got a vector of %lld "
                          "features", what, (long long)L->in_dim);
    if (s->dim < 1) return mt_err_set(MT_ERR_INVALID, "%s: output_channels must be >= 1", what);
    for (int i = 0; i < 2; i++) {
        if (s->kernel_shape[i] < 1 || s->kernel_stride[i] < 1)
            return mt_err_set(MT_ERR_INVALID, "%s: kernel_shape and kernel_stride must be >= 1, "
                              "got [%lld, %lld] and [%lld, %lld]", what,
                              (long long)s->kernel_shape[0], (long long)s->kernel_shape[1],
                              (long long)s->kernel_stride[0], (long long)s->kernel_stride[1]);
    }
    int64_t in_hw[2] = {L->in_h, L->in_w}, det[2];
    for (int i = 0; i < 2; i++) {
        int64_t pad = s->border_full ? s->kernel_shape[i] - 1 : 0, span = 0;
        if (__builtin_mul_overflow(pad, 2, &span) || __builtin_add_overflow(span, in_hw[i], &span))
            return mt_err_set(MT_ERR_RANGE, "%s: kernel_shape [%lld, %lld] with border_mode "
                              "'full' on a %lldx%lld input is more than an int64 holds", what,
                              (long long)s->kernel_shape[0], (long long)s->kernel_shape[1],
                              (long long)L->in_h, (long long)L->in_w);
        span -= s->kernel_shape[i];
        if (span < 0)
            return mt_err_set(MT_ERR_SHAPE, "%s: kernel %lldx%lld is larger than the %lldx%lld "
                              "input", what, (long long)s->kernel_shape[0],
                              (long long)s->kernel_shape[1], (long long)L->in_h,
                              (long long)L->in_w);
        det[i] = span / s->kernel_stride[i] + 1;
    }
    L->det_h = det[0];
    L->det_w = det[1];
    L->out_c = s->dim;
    L->out_h = det[0];
    L->out_w = det[1];
    if (s->pool_type != MT__POOL_NONE) {
        for (int i = 0; i < 2; i++) {
            if (s->pool_shape[i] < 1 || s->pool_stride[i] < 1)
                return mt_err_set(MT_ERR_INVALID, "%s: pool_shape and pool_stride must be >= 1",
                                  what);
            if (s->pool_shape[i] > det[i])
                return mt_err_set(MT_ERR_SHAPE, "%s: pool_shape [%lld, %lld] exceeds the "
                                  "detector layer %lldx%lld", what,
                                  (long long)s->pool_shape[0], (long long)s->pool_shape[1],
                                  (long long)det[0], (long long)det[1]);
        }
        L->out_h = pool_out(det[0], s->pool_shape[0], s->pool_stride[0]);
        L->out_w = pool_out(det[1], s->pool_shape[1], s->pool_stride[1]);
    }
    L->out_image = true;
    if (__builtin_mul_overflow(L->out_c, L->out_h, &L->out_dim) ||
        __builtin_mul_overflow(L->out_dim, L->out_w, &L->out_dim))
        return mt_err_set(MT_ERR_RANGE, "%s: the output of %lld channels x %lld x %lld has more "
                          "features than an int64 holds", what, (long long)L->out_c,
                          (long long)L->out_h, (long long)L->out_w);
    int64_t wd[4] = {s->dim, L->in_c, s->kernel_shape[0], s->kernel_shape[1]};
    int64_t bd[3] = {s->dim, det[0], det[1]};
    mt_status st = mt__add_param(m, L->path, "W", li, true, 4, wd, &L->iW);
    if (!st) st = mt__add_param(m, L->path, "b", li, false, s->tied_b ? 1 : 3, bd, &L->ib);
    if (st) return st;
    uint64_t key = mt__init_key(m->seed_key, m->params[L->iW].name);
    int64_t fan_in = L->in_c * s->kernel_shape[0] * s->kernel_shape[1];
    st = mt__init_conv(mt__param_data(m, L->iW), s->dim, fan_in, s, key, what);
    if (st) return st;
    fill(mt__param_data(m, L->ib), s->tied_b ? s->dim : s->dim * det[0] * det[1], s->init_bias);
    return MT_OK;
}

static mt_status setup_pretrained(mt_model *m, mt__layer *L, int32_t li)
{
    const mt__layer_spec *s = &L->s;
    if (!s->pre_W) return bad(L, "layer_content has no encoder weights", NULL);
    if (s->pre_in != L->in_dim)
        return mt_err_set(MT_ERR_SHAPE, "layer '%s' (PretrainedLayer): layer_content expects "
                          "%lld inputs (nvis) but the layer below gives %lld", s->name,
                          (long long)s->pre_in, (long long)L->in_dim);
    int64_t wd[2] = {s->pre_in, s->pre_out};
    mt_status st = mt__add_param(m, L->path, "W", li, true, 2, wd, &L->iW);
    if (!st) st = mt__add_param(m, L->path, "b", li, false, 1, &s->pre_out, &L->ib);
    if (st) return st;
    memcpy(mt__param_data(m, L->iW), s->pre_W, (size_t)(s->pre_in * s->pre_out) * sizeof(float));
    memcpy(mt__param_data(m, L->ib), s->pre_b, (size_t)s->pre_out * sizeof(float));
    m->params[L->iW].frozen = m->params[L->ib].frozen = s->freeze;
    L->out_dim = s->pre_out;
    return MT_OK;
}

static mt_status space_new(mt__space **out, const mt__space *src)
{
    *out = mt_calloc(1, sizeof(mt__space));
    if (!*out) return mt_err_set(MT_ERR_NOMEM, "model: out of memory");
    return mt__space_copy(*out, src);
}

mt_status mt__setup_layer(mt_model *m, mt__layer *L, int32_t li, const char *path,
                          const mt__space *in)
{
    _Static_assert(MT__PATH_LEN_MAX < MT__PATH_MAX, "a layer path must fit in mt__layer.path");
    _Static_assert(MT__PATH_LEN_MAX + sizeof("_kernel_norms_mean") <=
                       sizeof(((mt_channel_def *)0)->name),
                   "the longest channel of a layer must fit in mt_channel_def.name");
    L->iW = L->ib = L->iU = -1;
    size_t len = strlen(path);
    if (len > MT__PATH_LEN_MAX)
        return mt_err_set(MT_ERR_INVALID, "layer '%s' (%s): its path '%s' is %zu bytes long, over "
                          "the limit of %d bytes (parameter names, checkpoint keys and "
                          "monitoring channels are made from it): use shorter layer names",
                          L->s.name, L->s.cls, path, len, MT__PATH_LEN_MAX);
    memcpy(L->path, path, len + 1);
    char what[MT__PATH_MAX + 48];
    snprintf(what, sizeof(what), "layer '%s' (%s)", path, L->s.cls);
    mt_status st = mt__space_dim(in, what, &L->in_dim);
    if (!st) st = space_new(&L->in_sp, in);
    if (st) return st;
    L->in_image = in->kind == MT__SPACE_CONV2D;
    L->in_c = L->in_image ? in->channels : 0;
    L->in_h = L->in_image ? in->shape[0] : 0;
    L->in_w = L->in_image ? in->shape[1] : 0;
    switch (L->s.kind) {
    case MT__LAYER_COMPOSITE:
    case MT__LAYER_FLATTENER:
    case MT__LAYER_MLP: return mt__setup_container(m, L, li);
    case MT__LAYER_PROJECTION: return mt__setup_projection(m, L, li);
    default: break;
    }
    if (mt__space_has_index(in)) {
        mt_strbuf sb;
        mt_strbuf_init(&sb);
        mt__space_format(in, &sb);
        st = mt_err_set(MT_ERR_INVALID, "layer '%s' (%s): its input %s holds integer indices: "
                        "put a ProjectionLayer (pylearn2.sandbox.nlp.models.mlp.ProjectionLayer) "
                        "before it to embed them", L->s.name, L->s.cls, sb.data ? sb.data : "");
        mt_strbuf_deinit(&sb);
        return st;
    }
    switch (L->s.kind) {
    case MT__LAYER_LINEAR:
    case MT__LAYER_SIGMOID:
    case MT__LAYER_TANH:
    case MT__LAYER_RELU:
    case MT__LAYER_SOFTPLUS:
    case MT__LAYER_SOFTMAX: st = setup_dense(m, L, li); break;
    case MT__LAYER_MAXOUT: st = setup_maxout(m, L, li); break;
    case MT__LAYER_CONV: st = setup_conv(m, L, li); break;
    case MT__LAYER_PRETRAINED: st = setup_pretrained(m, L, li); break;
    case MT__LAYER_SIMPLE_RNN:
    case MT__LAYER_LSTM:
    case MT__LAYER_GRU: st = mt__setup_rnn(m, L, li); break;
    default: return bad(L, "this layer kind cannot be used in an MLP", NULL);
    }
    if (st) return st;
    set_scales(m, L);
    mt__space out;
    memset(&out, 0, sizeof(out));
    if (L->out_image) {
        out.kind = MT__SPACE_CONV2D;
        out.shape[0] = L->out_h;
        out.shape[1] = L->out_w;
        out.channels = L->out_c;
        out.nchw = true;
        snprintf(out.axes, sizeof(out.axes), "bc01");
    } else {
        out.kind = MT__SPACE_VECTOR;
        out.dim = L->out_dim;
    }
    return space_new(&L->out_sp, &out);
}

/* ---------------------------------------------------------------- MLP */

static mt_status input_from_space(mt_model *m, const mt__space *sp)
{
    switch (sp->kind) {
    case MT__SPACE_VECTOR:
        if (sp->dim < 1)
            return mt_err_set(MT_ERR_INVALID, "MLP: VectorSpace dim must be >= 1, got %lld",
                              (long long)sp->dim);
        return MT_OK;
    case MT__SPACE_CONV2D:
        if (sp->shape[0] < 1 || sp->shape[1] < 1 || sp->channels < 1)
            return mt_err_set(MT_ERR_INVALID, "MLP: Conv2DSpace shape [%lld, %lld] and "
                              "num_channels %lld must be >= 1", (long long)sp->shape[0],
                              (long long)sp->shape[1], (long long)sp->channels);
        return MT_OK;
    case MT__SPACE_INDEX:
        if (sp->dim < 1 || sp->max_labels < 1)
            return mt_err_set(MT_ERR_INVALID, "MLP: IndexSpace dim %lld and max_labels %lld "
                              "must be >= 1", (long long)sp->dim, (long long)sp->max_labels);
        if (sp->max_labels > ((int64_t)1 << 24))
            return mt_err_set(MT_ERR_UNSUPPORTED, "MLP: IndexSpace max_labels %lld is over "
                              "2^24: datasets hold indices as float32, exact only up to 2^24",
                              (long long)sp->max_labels);
        return MT_OK;
    case MT__SPACE_COMPOSITE:
        if (sp->n_comp < 1)
            return mt_err_set(MT_ERR_INVALID, "MLP: CompositeSpace components must not be "
                              "empty");
        for (int32_t i = 0; i < sp->n_comp; i++) {
            mt_status st = input_from_space(m, &sp->comp[i]);
            if (st) return mt_err_prefix(st, "component %d: ", (int)i);
        }
        return MT_OK;
    }
    (void)m;
    return MT_OK;
}

mt_status mt__model_new_mlp(mt_model **out, const mt__mlp_desc *d)
{
    *out = NULL;
    if (d->failed_layer) *d->failed_layer = -1;
    if (d->n_layers < 1) return mt_err_set(MT_ERR_INVALID, "MLP: layers must not be empty");
    if (!d->input_space && d->nvis < 1)
        return mt_err_set(MT_ERR_INVALID, "MLP: give nvis >= 1 or input_space (got nvis %lld)",
                          (long long)d->nvis);
    if (d->input_space && d->nvis > 0)
        return mt_err_set(MT_ERR_INVALID, "MLP: give nvis or input_space, not both");
    for (int32_t i = 0; i < d->n_layers; i++)
        for (int32_t j = 0; j < i; j++)
            if (!strcmp(d->layers[i].name, d->layers[j].name))
                return mt_err_set(MT_ERR_INVALID, "MLP: two or more layers named '%s'",
                                  d->layers[i].name);
    mt_model *m = model_alloc(d->kind);
    if (!m) return mt_err_set(MT_ERR_NOMEM, "MLP: out of memory");
    mt_status st = MT_OK;
    set_seed(m, d->n_seed, d->seed);
    m->batch_size = d->batch_size;
    if (d->input_source) mt__copy_name(m->input_source, sizeof(m->input_source), d->input_source);
    if (d->target_source)
        mt__copy_name(m->target_source, sizeof(m->target_source), d->target_source);
    if (d->input_space) {
        m->has_input_space = true;
        if ((st = mt__space_copy(&m->input_space, d->input_space))) goto fail;
        if ((st = input_from_space(m, &m->input_space))) goto fail;
        int64_t total = 0;
        if ((st = mt__space_dim(&m->input_space, "MLP: input_space", &total))) goto fail;
    } else {
        m->input_space.kind = MT__SPACE_VECTOR;
        m->input_space.dim = d->nvis;
    }
    m->layers = mt_calloc((size_t)d->n_layers, sizeof(mt__layer));
    if (!m->layers) {
        st = mt_err_set(MT_ERR_NOMEM, "MLP: out of memory");
        goto fail;
    }
    for (int32_t i = 0; i < d->n_layers; i++) {
        if ((st = mt__layer_spec_copy(&m->layers[i].s, &d->layers[i]))) goto fail;
        m->n_layers = i + 1;
    }
    const mt__space *sp = &m->input_space;
    for (int32_t i = 0; i < m->n_layers; i++) {
        mt__layer *L = &m->layers[i];
        if ((st = mt__setup_layer(m, L, i, L->s.name, sp))) {
            if (d->failed_layer) *d->failed_layer = i;
            goto fail;
        }
        sp = L->out_sp;
    }
    *out = m;
    return MT_OK;
fail:
    mt_model_free(m);
    return st;
}

/* ---------------------------------------------------------------- autoencoders */

mt_status mt__model_new_autoencoder(mt_model **out, const mt__ae_desc *d)
{
    *out = NULL;
    const char *cls = d->denoising ? "DenoisingAutoencoder" : "Autoencoder";
    if (d->nvis < 1 || d->nhid < 1)
        return mt_err_set(MT_ERR_INVALID, "%s: nvis and nhid must be >= 1, got nvis %lld nhid "
                          "%lld", cls, (long long)d->nvis, (long long)d->nhid);
    double irange = d->irange, istdev = d->istdev;
    if (!isnan(irange) && !isnan(istdev))
        return mt_err_set(MT_ERR_INVALID, "%s: give irange or istdev, not both", cls);
    if (isnan(irange) && isnan(istdev)) irange = 1e-3;
    if (d->denoising && d->corruptor.kind == MT__CORRUPT_NONE)
        return mt_err_set(MT_ERR_INVALID, "DenoisingAutoencoder: a corruptor is required");
    mt_model *m = model_alloc(d->denoising ? MT__MODEL_DAE : MT__MODEL_AUTOENCODER);
    if (!m) return mt_err_set(MT_ERR_NOMEM, "%s: out of memory", cls);
    mt_status st = MT_OK;
    set_seed(m, 1, &d->rng);
    m->nvis = d->nvis;
    m->nhid = d->nhid;
    m->act_enc = d->act_enc;
    m->act_dec = d->act_dec;
    m->tied_weights = d->tied_weights;
    m->ae_irange = d->irange;
    m->ae_istdev = d->istdev;
    m->corruptor = d->corruptor;
    m->input_space.kind = MT__SPACE_VECTOR;
    m->input_space.dim = d->nvis;
    m->layers = mt_calloc(2, sizeof(mt__layer));
    if (!m->layers) {
        st = mt_err_set(MT_ERR_NOMEM, "%s: out of memory", cls);
        goto fail;
    }
    m->n_layers = 2;
    mt__layer *E = &m->layers[0], *D = &m->layers[1];
    mt__layer_spec_init(&E->s, MT__LAYER_AE_ENC, "encoder");
    mt__layer_spec_init(&D->s, MT__LAYER_AE_DEC, "decoder");
    E->s.dim = d->nhid;
    D->s.dim = d->nvis;
    E->in_dim = D->out_dim = d->nvis;
    E->out_dim = D->in_dim = d->nhid;
    E->iW = E->ib = D->iW = D->ib = -1;
    E->iU = D->iU = -1;
    int64_t wd[2] = {d->nvis, d->nhid}, wpd[2] = {d->nhid, d->nvis};
    if ((st = mt__add_param(m, "W", NULL, 0, true, 2, wd, &E->iW))) goto fail;
    if ((st = mt__add_param(m, "hb", NULL, 0, false, 1, &d->nhid, &E->ib))) goto fail;
    if ((st = mt__add_param(m, "vb", NULL, 1, false, 1, &d->nvis, &D->ib))) goto fail;
    if (!d->tied_weights && (st = mt__add_param(m, "Wprime", NULL, 1, true, 2, wpd, &D->iW)))
        goto fail;
    mt__init_ae(mt__param_data(m, E->iW), d->nvis * d->nhid, false, irange, istdev,
                mt__init_key(m->seed_key, "W"));
    if (D->iW >= 0)
        mt__init_ae(mt__param_data(m, D->iW), d->nvis * d->nhid, true, irange, istdev,
                    mt__init_key(m->seed_key, "Wprime"));
    *out = m;
    return MT_OK;
fail:
    mt_model_free(m);
    return st;
}

mt_status mt__pretrained_from_model(mt__layer_spec *spec, const mt_model *c)
{
    if (!c || c->magic != MT__MODEL_MAGIC)
        return mt_err_set(MT_ERR_INVALID, "PretrainedLayer '%s': layer_content is not a model",
                          spec->name);
    if (!mt__model_is_autoencoder(c))
        return mt_err_set(MT_ERR_UNSUPPORTED, "PretrainedLayer '%s': layer_content must be an "
                          "Autoencoder or DenoisingAutoencoder (it provides the encoder), got %s",
                          spec->name, mt_model_type_name(c));
    const mt__layer *E = &c->layers[0];
    mt__layer_spec_clear(spec);
    spec->pre_in = c->nvis;
    spec->pre_out = c->nhid;
    spec->enc_act = c->act_enc;
    size_t nw = (size_t)(c->nvis * c->nhid) * sizeof(float), nb = (size_t)c->nhid * sizeof(float);
    spec->pre_W = mt_malloc(nw);
    spec->pre_b = mt_malloc(nb);
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    mt_status st = mt_model_to_yaml(c, &sb);
    spec->pre_yaml = mt_strbuf_take(&sb);
    if (!spec->pre_W || !spec->pre_b || st || !spec->pre_yaml) {
        mt__layer_spec_clear(spec);
        return st ? st : mt_err_set(MT_ERR_NOMEM, "PretrainedLayer: out of memory");
    }
    memcpy(spec->pre_W, mt_buffer_host_ptr(c->params[E->iW].value.buf), nw);
    memcpy(spec->pre_b, mt_buffer_host_ptr(c->params[E->ib].value.buf), nb);
    return MT_OK;
}

/* ---------------------------------------------------------------- accessors */

int32_t mt_model_n_params(const mt_model *m) { return m ? m->n_params : 0; }

mt_model_param *mt_model_param_at(mt_model *m, int32_t i)
{
    return m && i >= 0 && i < m->n_params ? &m->params[i] : NULL;
}

const mt_model_param *mt_model_param_const(const mt_model *m, int32_t i)
{
    return m && i >= 0 && i < m->n_params ? &m->params[i] : NULL;
}

int32_t mt_model_find_param(const mt_model *m, const char *name)
{
    if (!m || !name) return -1;
    for (int32_t i = 0; i < m->n_params; i++)
        if (!strcmp(m->params[i].name, name)) return i;
    return -1;
}

int32_t mt_model_n_layers(const mt_model *m) { return m ? m->n_layers : 0; }

const char *mt_model_layer_name(const mt_model *m, int32_t i)
{
    return m && i >= 0 && i < m->n_layers ? m->layers[i].s.name : NULL;
}

int32_t mt_model_find_layer(const mt_model *m, const char *name)
{
    if (!m || !name) return -1;
    for (int32_t i = 0; i < m->n_layers; i++)
        if (!strcmp(m->layers[i].s.name, name)) return i;
    return -1;
}

const char *mt__suggest_layer(const mt_model *m, const char *word)
{
    const char *names[64];
    int32_t n = m->n_layers < 64 ? m->n_layers : 64;
    for (int32_t i = 0; i < n; i++) names[i] = m->layers[i].s.name;
    return mt_cfg_suggest(word, n, names);
}

const char *mt_model_type_name(const mt_model *m)
{
    if (!m) return "invalid";
    switch (m->kind) {
    case MT__MODEL_MLP: return "MLP";
    case MT__MODEL_SOFTMAX_REGRESSION: return "SoftmaxRegression";
    case MT__MODEL_AUTOENCODER: return "Autoencoder";
    case MT__MODEL_DAE: return "DenoisingAutoencoder";
    }
    return "invalid";
}

bool mt__model_is_mlp(const mt_model *m)
{
    return m->kind == MT__MODEL_MLP || m->kind == MT__MODEL_SOFTMAX_REGRESSION;
}

bool mt__model_is_autoencoder(const mt_model *m)
{
    return m->kind == MT__MODEL_AUTOENCODER || m->kind == MT__MODEL_DAE;
}

mt__act mt__layer_act(const mt__layer *L)
{
    switch (L->s.kind) {
    case MT__LAYER_SIGMOID: return MT__ACT_SIGMOID;
    case MT__LAYER_TANH: return MT__ACT_TANH;
    case MT__LAYER_RELU: return MT__ACT_RELU;
    case MT__LAYER_SOFTPLUS: return MT__ACT_SOFTPLUS;
    case MT__LAYER_CONV: return L->s.conv_act;
    case MT__LAYER_PRETRAINED: return L->s.enc_act;
    default: return MT__ACT_LINEAR;
    }
}

bool mt__layer_has_cost(const mt__layer *L)
{
    return L->s.kind == MT__LAYER_SOFTMAX || L->s.kind == MT__LAYER_LINEAR ||
           L->s.kind == MT__LAYER_SIGMOID;
}

bool mt_model_needs_targets(const mt_model *m)
{
    return m && mt__model_is_mlp(m) && mt__layer_has_cost(mt__output_layer(m));
}

int64_t mt_model_input_dim(const mt_model *m)
{
    return m ? mt__space_total_dim(&m->input_space) : 0;
}

int64_t mt_model_output_dim(const mt_model *m)
{
    if (!m || m->n_layers < 1) return 0;
    return m->layers[m->n_layers - 1].out_dim;
}

/* ---------------------------------------------------------------- dataset checks */

mt_status mt_model_check_data(const mt_model *m, const mt_dataset_info *d)
{
    const char *dn = d->name ? d->name : "dataset";
    int64_t in = mt_model_input_dim(m);
    if (d->dim != in)
        return mt_err_set(MT_ERR_SHAPE, "%s expects %lld input features (%s) but %s has %lld",
                          mt_model_type_name(m), (long long)in,
                          m->has_input_space ? "input_space" : "nvis", dn, (long long)d->dim);
    const mt__space *sp = &m->input_space;
    if (sp->kind == MT__SPACE_CONV2D && d->topo_ndim == 3 &&
        (d->topo[0] != sp->shape[0] || d->topo[1] != sp->shape[1] || d->topo[2] != sp->channels))
        return mt_err_set(MT_ERR_SHAPE, "%s's Conv2DSpace is %lldx%lld with %lld channel(s) but "
                          "%s holds %lldx%lld images with %lld channel(s)",
                          mt_model_type_name(m), (long long)sp->shape[0],
                          (long long)sp->shape[1], (long long)sp->channels, dn,
                          (long long)d->topo[0], (long long)d->topo[1], (long long)d->topo[2]);
    if (sp->kind == MT__SPACE_COMPOSITE && d->n_sources > 0) {
        if (d->n_sources != sp->n_comp)
            return mt_err_set(MT_ERR_SHAPE, "%s's input_space is a CompositeSpace of %d "
                              "components but %s has %d sources", mt_model_type_name(m),
                              (int)sp->n_comp, dn, (int)d->n_sources);
        for (int32_t i = 0; i < sp->n_comp; i++) {
            int64_t want = mt__space_total_dim(&sp->comp[i]);
            if (d->source_dims[i] != want)
                return mt_err_set(MT_ERR_SHAPE, "%s's input_space component %d needs %lld "
                                  "features but source %d of %s has %lld", mt_model_type_name(m),
                                  (int)i, (long long)want, (int)i, dn,
                                  (long long)d->source_dims[i]);
        }
    }
    if (!mt_model_needs_targets(m) || !d->has_y) return MT_OK;
    const mt__layer *L = mt__output_layer(m);
    if (d->y_is_labels) {
        if (d->n_classes > L->out_dim)
            return mt_err_set(MT_ERR_SHAPE, "output layer '%s' (%s) has %s %lld but %s has "
                              "labels of %lld classes", L->s.name, L->s.cls,
                              L->s.kind == MT__LAYER_SOFTMAX ? "n_classes" : "dim",
                              (long long)L->out_dim, dn, (long long)d->n_classes);
    } else if (d->y_dim != L->out_dim) {
        return mt_err_set(MT_ERR_SHAPE, "output layer '%s' (%s) has %lld outputs but %s has "
                          "targets of %lld columns", L->s.name, L->s.cls, (long long)L->out_dim,
                          dn, (long long)d->y_dim);
    }
    return MT_OK;
}

/* ---------------------------------------------------------------- first-layer filters */

static bool square_root(int64_t n, int64_t *r)
{
    int64_t s = (int64_t)llround(sqrt((double)n));
    for (int64_t t = s > 1 ? s - 1 : 0; t <= s + 1; t++)
        if (t * t == n && t > 0) {
            *r = t;
            return true;
        }
    return false;
}

mt_status mt_model_first_layer_filters(const mt_model *m, const int64_t *topo, float **out,
                                       int64_t *n_filters, int64_t shape[3])
{
    *out = NULL;
    const mt__layer *L = &m->layers[0];
    if (L->iW < 0 || L->s.kind == MT__LAYER_PROJECTION)
        return mt_err_set(MT_ERR_UNSUPPORTED, "first layer '%s' (%s) has no weights on an image "
                          "input", L->s.name, L->s.cls);
    if (mt__layer_is_recurrent(L))
        return mt_err_set(MT_ERR_UNSUPPORTED, "first layer '%s' (%s) is recurrent: its weights "
                          "read one step of %lld features, not the whole image", L->s.name,
                          L->s.cls, (long long)(L->in_dim / L->s.n_steps));
    const float *W = mt_buffer_host_ptr(m->params[L->iW].value.buf);
    const mt__space *sp = &m->input_space;
    if (L->s.kind == MT__LAYER_CONV) {
        int64_t O = L->s.dim, C = L->in_c, KH = L->s.kernel_shape[0], KW = L->s.kernel_shape[1];
        float *f = mt_malloc((size_t)(O * C * KH * KW) * sizeof(float));
        if (!f) return mt_err_set(MT_ERR_NOMEM, "filters: out of memory");
        for (int64_t o = 0; o < O; o++)
            for (int64_t r = 0; r < KH; r++)
                for (int64_t c = 0; c < KW; c++)
                    for (int64_t ch = 0; ch < C; ch++)
                        f[((o * KH + r) * KW + c) * C + ch] = W[((o * C + ch) * KH + r) * KW + c];
        *out = f;
        *n_filters = O;
        shape[0] = KH;
        shape[1] = KW;
        shape[2] = C;
        return MT_OK;
    }
    int64_t in = L->in_dim, units = m->params[L->iW].value.dims[1];
    int64_t rows, cols, ch;
    if (sp->kind == MT__SPACE_CONV2D) {
        rows = sp->shape[0];
        cols = sp->shape[1];
        ch = sp->channels;
    } else if (topo && topo[0] * topo[1] * topo[2] == in) {
        rows = topo[0];
        cols = topo[1];
        ch = topo[2];
    } else if (square_root(in, &rows)) {
        cols = rows;
        ch = 1;
    } else {
        return mt_err_set(MT_ERR_UNSUPPORTED, "filters: the input of %lld features is not an "
                          "image (no Conv2DSpace, no topology given, not a square)",
                          (long long)in);
    }
    float *f = mt_malloc((size_t)(in * units) * sizeof(float));
    if (!f) return mt_err_set(MT_ERR_NOMEM, "filters: out of memory");
    for (int64_t j = 0; j < units; j++)
        for (int64_t i = 0; i < in; i++) f[j * in + i] = W[i * units + j];
    *out = f;
    *n_filters = units;
    shape[0] = rows;
    shape[1] = cols;
    shape[2] = ch;
    return MT_OK;
}
