/* A model placed in a graph: placeholders for the data and the parameters, the forward pass of
 * every layer (dense, Maxout, convolution with pooling, pretrained encoders, autoencoders),
 * Pylearn2's dropout_fprop and corruptors as RANDOM nodes, the output layers' costs (the
 * default cost) and the norm constraints applied to parameter updates.
 *
 * Layouts inside the graph: a batch of vectors is [N, d]; images are NCHW. The input X is the
 * dataset's design matrix; when the MLP's input space is a Conv2DSpace its rows are b01c images
 * and a convolution layer reshapes them to [N, rows, cols, channels] and transposes to NCHW; a
 * dense layer after a convolution flattens NCHW to [N, C*H*W] (Pylearn2's bc01 -> vector
 * conversion), while a dense layer reading the input directly uses the b01c rows as they are. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "model_impl.h"

mt_status mt__graph_check(mt_graph *g, const char *what)
{
    mt_graph_clear_origin(g);
    mt_status st = mt_graph_status(g);
    if (st == MT_OK) return MT_OK;
    return mt_err_set(st, "%s: %s", what, mt_graph_last_error(g));
}

void mt__set_origin(mt_graph *g, int32_t line, const char *fmt, ...)
{
    char buf[192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    mt_graph_set_origin(g, buf, line);
}

/* ---------------------------------------------------------------- placeholders */

/* The placeholder `name` of this type: an existing one of the same type is reused, so several
 * model graphs (or a model graph and the caller's own code) may share a graph. */
static mt_var placeholder(mt_graph *g, const char *name, mt_dtype dt, int32_t nd,
                          const int64_t *shape)
{
    mt_var v = mt_graph_find_placeholder(g, name);
    if (!v) return mt_graph_placeholder(g, name, dt, nd, shape);
    mt_type want = mt_type_make(dt, nd, shape);
    if (mt_type_equal(mt_graph_type(g, v), &want)) return v;
    mt_strbuf a, b;
    mt_strbuf_init(&a);
    mt_strbuf_init(&b);
    mt_type_format(mt_graph_type(g, v), &a);
    mt_type_format(&want, &b);
    mt_err_set(MT_ERR_INVALID, "model graph: the graph already has a placeholder '%s' of type %s "
               "(the model needs %s)", name, a.data ? a.data : "", b.data ? b.data : "");
    mt_strbuf_deinit(&a);
    mt_strbuf_deinit(&b);
    return MT_VAR_NONE;
}

mt_status mt_model_graph_init(mt_model_graph *mg, const mt_model *m, mt_graph *g,
                              const mt_dataset_info *data, int64_t batch, uint64_t seed)
{
    memset(mg, 0, sizeof(*mg));
    if (!m || !g) return mt_err_set(MT_ERR_INVALID, "mt_model_graph_init: model or graph is NULL");
    mg->g = g;
    mg->m = m;
    mg->seed = seed;
    mg->next_stream = 1;
    mg->compute = MT_FLOAT32;
    mg->n_params = m->n_params;
    mg->params = mt_calloc((size_t)(m->n_params ? m->n_params : 1), sizeof(mt_var));
    if (!mg->params) return mt_err_set(MT_ERR_NOMEM, "model graph: out of memory");
    int64_t nb = batch > 0 ? batch : -1;
    int64_t xs[2] = {nb, mt_model_input_dim(m)};
    mg->X = placeholder(g, "X", MT_FLOAT32, 2, xs);
    if (!mg->X) goto fail;
    if (data && data->has_y) {
        if (data->y_is_labels) {
            mg->y = placeholder(g, "y", MT_INT64, 1, &nb);
        } else {
            int64_t ys[2] = {nb, data->y_dim};
            mg->y = placeholder(g, "y", MT_FLOAT32, 2, ys);
        }
        if (!mg->y) goto fail;
    }
    for (int32_t i = 0; i < m->n_params; i++) {
        const mt_array *a = &m->params[i].value;
        mg->params[i] = placeholder(g, m->params[i].name, MT_FLOAT32, a->ndim, a->dims);
        if (!mg->params[i]) goto fail;
    }
    return MT_OK;
fail:;
    mt_status st = mt_last_status();
    if (st == MT_OK) st = MT_ERR_INVALID;
    mt_model_graph_clear(mg);
    return st;
}

void mt_model_graph_clear(mt_model_graph *mg)
{
    if (!mg) return;
    mt_free(mg->params);
    mt_free(mg->reads);
    memset(mg, 0, sizeof(*mg));
}

mt_status mt_model_graph_set_compute(mt_model_graph *mg, mt_dtype dt)
{
    if (!mg || !mg->g || !mg->params)
        return mt_err_set(MT_ERR_INVALID, "model graph is not initialized (mt_model_graph_init)");
    if (dt != MT_FLOAT32 && dt != MT_BFLOAT16 && dt != MT_FLOAT16 && dt != MT_FLOAT64)
        return mt_err_set(MT_ERR_INVALID, "model graph: compute dtype %s is not float32, "
                          "bfloat16, float16 or float64", mt_dtype_name(dt));
    mt_free(mg->reads);
    mg->reads = NULL;
    mg->x_read = MT_VAR_NONE;
    mg->compute = dt;
    if (dt == MT_FLOAT32) return MT_OK;
    mg->reads = mt_calloc((size_t)(mg->n_params ? mg->n_params : 1), sizeof(mt_var));
    if (!mg->reads) return mt_err_set(MT_ERR_NOMEM, "model graph: out of memory");
    mt__set_origin(mg->g, 0, "%s compute of the %s", mt_dtype_name(dt), mt_model_type_name(mg->m));
    mg->x_read = mt_graph_cast(mg->g, mg->X, dt);
    for (int32_t i = 0; i < mg->n_params; i++)
        mg->reads[i] = mt_graph_cast(mg->g, mg->params[i], dt);
    return mt__graph_check(mg->g, "mixed precision casts");
}

mt_var mt__random(mt_model_graph *mg, mt_random_dist dist, mt_var shape_ref, int32_t ndim,
                  const int64_t *shape, double p0, double p1)
{
    /* the graph's stream counter gives a stream no other random node of the graph has, so
     * (seed, stream) keys never repeat even when the caller uses mg->seed for its own nodes */
    uint64_t saved = mt_graph_seed(mg->g);
    mt_graph_set_seed(mg->g, mg->seed);
    mt_var v = mt_graph_random(mg->g, dist, MT_FLOAT32, ndim, shape, shape_ref, p0, p1);
    mt_graph_set_seed(mg->g, saved);
    const mt_op_attrs *a = v ? mt_graph_attrs(mg->g, v) : NULL;
    if (a) mg->next_stream = a->stream + 1;
    return v;
}

/* ---------------------------------------------------------------- small helpers */

mt_var mt__sum_sq(mt_graph *g, mt_var x)
{
    return mt_graph_sum(g, mt_graph_square(g, x), 0, NULL, false);
}

mt_var mt__sum_abs(mt_graph *g, mt_var x)
{
    return mt_graph_sum(g, mt_graph_abs(g, x), 0, NULL, false);
}

mt_var mt__targets_float(mt_graph *g, mt_var y, int64_t k)
{
    const mt_type *t = mt_graph_type(g, y);
    if (t && mt_dtype_is_int(t->dtype)) return mt_graph_one_hot(g, y, k, MT_FLOAT32);
    return y;
}

mt_var mt__flatten_state(mt_graph *g, mt__state s)
{
    return s.image ? mt_graph_flatten(g, s.v, 2) : s.v;
}

mt_var mt__act_apply(mt_graph *g, mt__act a, mt_var z, double left_slope)
{
    switch (a) {
    case MT__ACT_SIGMOID: return mt_graph_sigmoid(g, z);
    case MT__ACT_TANH: return mt_graph_tanh(g, z);
    case MT__ACT_SOFTPLUS: return mt_graph_softplus(g, z);
    case MT__ACT_RELU:
        if (left_slope == 0.0) return mt_graph_relu(g, z);
        /* Pylearn2: switch(p > 0, p, left_slope * p) */
        return mt_graph_where(g, mt_graph_gt(g, z, mt_graph_literal_float(g, 0.0)), z,
                              mt_graph_mul(g, z, mt_graph_literal_float(g, left_slope)));
    default: return z;
    }
}

static mt_var affine(mt_graph *g, mt_var x, mt_var W, mt_var b)
{
    mt_var z = mt_graph_matmul(g, x, W);
    return b ? mt_graph_add(g, z, b) : z;
}

/* b01c rows of the input -> NCHW, or an NCHW state as it is. */
static mt_var to_image(mt_graph *g, mt__state s, const mt__layer *L)
{
    if (s.image) return s.v;
    int64_t shp[4] = {MT_RESHAPE_KEEP, L->in_h, L->in_w, L->in_c};
    int32_t perm[4] = {0, 3, 1, 2};
    return mt_graph_transpose(g, mt_graph_reshape(g, s.v, 4, shp), perm);
}

/* ---------------------------------------------------------------- layers */

static mt_var maxout_pool(mt_graph *g, const mt__layer *L, mt_var z)
{
    const mt__layer_spec *s = &L->s;
    int64_t pieces = s->num_pieces, stride = s->maxout_stride > 0 ? s->maxout_stride : pieces;
    mt_var p;
    if (pieces == 1 && stride == 1) {
        p = z;
    } else if (stride == pieces) {
        int64_t shp[3] = {MT_RESHAPE_KEEP, s->dim, pieces};
        int32_t ax = 2;
        p = mt_graph_max(g, mt_graph_reshape(g, z, 3, shp), 1, &ax, false);
    } else {
        /* Pylearn2: p = max_i z[:, i : last_start + i + 1 : pool_stride] */
        int64_t last_start = L->det_dim - pieces;
        p = MT_VAR_NONE;
        for (int64_t i = 0; i < pieces; i++) {
            mt_var cur = mt_graph_slice_axis(g, z, 1, i, last_start + i + 1, stride);
            p = p ? mt_graph_maximum(g, cur, p) : cur;
        }
    }
    if (s->min_zero) p = mt_graph_maximum(g, p, mt_graph_literal_float(g, 0.0));
    return p;
}

static mt_status conv_fprop(mt_model_graph *mg, const mt__layer *L, mt__state x,
                            mt__layer_out *lo)
{
    mt_graph *g = mg->g;
    const mt__layer_spec *s = &L->s;
    mt_var img = to_image(g, x, L);
    int32_t stride[2] = {(int32_t)s->kernel_stride[0], (int32_t)s->kernel_stride[1]};
    int32_t pad[2] = {0, 0};
    if (s->border_full) {
        pad[0] = (int32_t)(s->kernel_shape[0] - 1);
        pad[1] = (int32_t)(s->kernel_shape[1] - 1);
    }
    mt_var z = mt_graph_conv2d(g, img, mt__mg_param(mg, L->iW), stride, pad);
    int64_t bshape[4] = {1, s->dim, s->tied_b ? 1 : L->det_h, s->tied_b ? 1 : L->det_w};
    z = mt_graph_add(g, z, mt_graph_reshape(g, mt__mg_param(mg, L->ib), 4, bshape));
    mt_var d = mt__act_apply(g, s->conv_act, z, s->left_slope);
    if (s->pool_type != MT__POOL_NONE) {
        int32_t pool[2] = {(int32_t)s->pool_shape[0], (int32_t)s->pool_shape[1]};
        int32_t pst[2] = {(int32_t)s->pool_stride[0], (int32_t)s->pool_stride[1]};
        int32_t pz[2] = {0, 0};
        d = mt_graph_pool2d(g, d, s->pool_type == MT__POOL_MAX ? MT_POOL_MAX : MT_POOL_MEAN,
                            pool, pst, pz, true);
    }
    lo->pre = z;
    lo->out.v = d;
    lo->out.image = true;
    return MT_OK;
}

mt_status mt__layer_fprop(mt_model_graph *mg, const mt__layer *L, mt__state x,
                          mt__layer_out *lo)
{
    if (mt__layer_is_container(L) || L->s.kind == MT__LAYER_PROJECTION)
        return mt__container_fprop(mg, L, x, lo);
    mt_graph *g = mg->g;
    if (strchr(L->path, '/')) mt__set_origin(g, 0, "layer '%s' (%s)", L->path, L->s.cls);
    mt_var W = mt__mg_param(mg, L->iW);
    mt_var b = mt__mg_param(mg, L->ib);
    lo->in = x;
    lo->out.image = false;
    switch (L->s.kind) {
    case MT__LAYER_CONV: return conv_fprop(mg, L, x, lo);
    case MT__LAYER_SIMPLE_RNN:
    case MT__LAYER_LSTM:
    case MT__LAYER_GRU: return mt__rnn_fprop(mg, L, x, lo);
    case MT__LAYER_SOFTMAX: {
        mt_var v = mt__flatten_state(g, x);
        lo->pre = L->s.no_affine ? v : affine(g, v, W, b);
        lo->out.v = mt_graph_softmax(g, lo->pre, 1);
        return MT_OK;
    }
    case MT__LAYER_MAXOUT:
        lo->pre = affine(g, mt__flatten_state(g, x), W, b);
        lo->out.v = maxout_pool(g, L, lo->pre);
        return MT_OK;
    default:
        lo->pre = affine(g, mt__flatten_state(g, x), W, b);
        lo->out.v = mt__act_apply(g, mt__layer_act(L), lo->pre, L->s.left_slope);
        return MT_OK;
    }
}

/* Pylearn2's apply_dropout: state * mask * scale, mask ~ Bernoulli(p) per element (per
 * example), or one mask of the batch's origin shape broadcast over the batch. */
static mt_var dropout(mt_model_graph *mg, mt_var x, double p, double scale, bool per_batch)
{
    mt_graph *g = mg->g;
    mt_var mask;
    if (!per_batch) {
        mask = mt__random(mg, MT_RANDOM_BINOMIAL, x, 0, NULL, 1.0, p);
    } else {
        const mt_type *t = mt_graph_type(g, x);
        if (!t) return MT_VAR_NONE;
        int64_t shp[MT_MAX_DIMS];
        shp[0] = 1;
        for (int32_t i = 1; i < t->ndim; i++) shp[i] = t->shape[i];
        mask = mt__random(mg, MT_RANDOM_BINOMIAL, MT_VAR_NONE, t->ndim, shp, 1.0, p);
    }
    const mt_type *tx = mt_graph_type(g, x);
    if (tx && mask) mask = mt_graph_cast(g, mask, tx->dtype); /* 0/1: exact in any float */
    return mt_graph_mul(g, mt_graph_mul(g, x, mask), mt_graph_literal_float(g, scale));
}

mt_status mt__mlp_fprop(mt_model_graph *mg, const mt_fprop_options *opts, mt__layer_out *outs,
                        mt__layer_out *last)
{
    const mt_model *m = mg->m;
    if (!mt__model_is_mlp(m))
        return mt_err_set(MT_ERR_INVALID, "%s has no layer stack", mt_model_type_name(m));
    bool drop = opts && opts->dropout;
    if (drop && (!opts->include_prob || !opts->scale))
        return mt_err_set(MT_ERR_INVALID, "fprop: dropout needs include_prob and scale arrays");
    /* indices are read in float32 (a bfloat16 or float16 copy would round them) */
    mt__state st = {mt__space_has_index(&m->input_space) ? mg->X : mt__mg_input(mg), false};
    mt__layer_out lo;
    memset(&lo, 0, sizeof(lo));
    for (int32_t i = 0; i < m->n_layers; i++) {
        const mt__layer *L = &m->layers[i];
        mt__set_origin(mg->g, i + 1, "layer '%s' (%s)", L->s.name, L->s.cls);
        mt__state x = st;
        if (drop) {
            double p = opts->include_prob[i];
            if (!(p >= 0.0 && p <= 1.0))
                return mt_err_set(MT_ERR_INVALID, "dropout: include probability %g of layer "
                                  "'%s' is not in [0, 1]", p, L->s.name);
            if (p != 1.0 && mt__space_has_index(L->in_sp))
                return mt_err_set(MT_ERR_INVALID, "dropout: the input of layer '%s' (%s) holds "
                                  "integer indices, which cannot be dropped out: give it an "
                                  "include probability of 1 (input_include_probs: {%s: 1.})",
                                  L->s.name, L->s.cls, L->s.name);
            if (p != 1.0) x.v = dropout(mg, x.v, p, opts->scale[i], opts->per_batch_mask);
        }
        mt_status s = mt__layer_fprop(mg, L, x, &lo);
        if (s) return s;
        if (outs) outs[i] = lo;
        st = lo.out;
    }
    if (last) *last = lo;
    return mt__graph_check(mg->g, mt_model_type_name(m));
}

mt_status mt__ae_fprop(mt_model_graph *mg, bool corrupt, mt_var *hidden, mt_var *recon)
{
    const mt_model *m = mg->m;
    mt_graph *g = mg->g;
    const mt__layer *E = &m->layers[0], *D = &m->layers[1];
    mt_var x = mt__mg_input(mg);
    mt__set_origin(g, 1, "%s encoder", mt_model_type_name(m));
    mt_dtype xdt = mg->compute; /* the corruption keeps the input's compute dtype */
    if (corrupt && m->corruptor.kind == MT__CORRUPT_BINOMIAL)
        x = mt_graph_mul(g, x, mt_graph_cast(g, mt__random(mg, MT_RANDOM_BINOMIAL, x, 0, NULL,
                                                           1.0, 1.0 - m->corruptor.level), xdt));
    else if (corrupt && m->corruptor.kind == MT__CORRUPT_GAUSSIAN)
        x = mt_graph_add(g, x, mt_graph_cast(g, mt__random(mg, MT_RANDOM_NORMAL, x, 0, NULL, 0.0,
                                                           m->corruptor.level), xdt));
    mt_var W = mt__mg_param(mg, E->iW);
    mt_var h = mt__act_apply(g, m->act_enc, affine(g, x, W, mt__mg_param(mg, E->ib)), 0.0);
    mt__set_origin(g, 2, "%s decoder", mt_model_type_name(m));
    mt_var Wp = D->iW >= 0 ? mt__mg_param(mg, D->iW) : mt_graph_transpose(g, W, NULL);
    mt_var r = mt__act_apply(g, m->act_dec, affine(g, h, Wp, mt__mg_param(mg, D->ib)), 0.0);
    if (hidden) *hidden = h;
    if (recon) *recon = r;
    return mt__graph_check(g, mt_model_type_name(m));
}

/* ---------------------------------------------------------------- public forward passes */

static mt_status check_mg(const mt_model_graph *mg)
{
    if (!mg || !mg->g || !mg->m || !mg->params)
        return mt_err_set(MT_ERR_INVALID, "model graph is not initialized "
                          "(mt_model_graph_init)");
    return MT_OK;
}

mt_status mt_model_fprop(mt_model_graph *mg, const mt_fprop_options *opts, mt_var *out)
{
    *out = MT_VAR_NONE;
    mt_status st = check_mg(mg);
    if (st) return st;
    if (mt__model_is_autoencoder(mg->m)) return mt__ae_fprop(mg, opts && opts->corrupt, NULL, out);
    mt__layer_out last;
    st = mt__mlp_fprop(mg, opts, NULL, &last);
    if (!st) *out = last.out.v;
    return st;
}

mt_status mt_model_fprop_layers(mt_model_graph *mg, const mt_fprop_options *opts, mt_var *outs)
{
    mt_status st = check_mg(mg);
    if (st) return st;
    const mt_model *m = mg->m;
    if (mt__model_is_autoencoder(m))
        return mt__ae_fprop(mg, opts && opts->corrupt, &outs[0], &outs[1]);
    mt__layer_out *lo = mt_calloc((size_t)m->n_layers, sizeof(*lo));
    if (!lo) return mt_err_set(MT_ERR_NOMEM, "fprop: out of memory");
    st = mt__mlp_fprop(mg, opts, lo, NULL);
    for (int32_t i = 0; i < m->n_layers; i++) outs[i] = st ? MT_VAR_NONE : lo[i].out.v;
    mt_free(lo);
    return st;
}

/* ---------------------------------------------------------------- costs of output layers */

mt_status mt__output_cost(mt_model_graph *mg, const mt__layer *L, const mt__layer_out *lo,
                          mt_var y, mt_var *out)
{
    mt_graph *g = mg->g;
    const mt_type *ty = mt_graph_type(g, y);
    bool labels = ty && mt_dtype_is_int(ty->dtype);
    mt_var c;
    mt__set_origin(g, 0, "cost of layer '%s' (%s)", L->s.name, L->s.cls);
    switch (L->s.kind) {
    case MT__LAYER_SOFTMAX:
        /* Pylearn2 Softmax.cost: -mean(sum(Y * log_softmax(z))) from the pre-softmax z */
        c = labels ? mt_graph_softmax_crossentropy_labels(g, lo->pre, y, 1)
                   : mt_graph_softmax_crossentropy(g, lo->pre, y, 1);
        c = mt_graph_mean(g, mt_graph_cast(g, c, MT_FLOAT32), 0, NULL, false);
        break;
    case MT__LAYER_LINEAR: {
        /* Linear.cost: mean over examples of sum over outputs of (Y - Y_hat)^2 (or |.|) */
        mt_var d = mt_graph_sub(g, mt__targets_float(g, y, L->out_dim), lo->out.v);
        d = L->s.use_abs_loss ? mt_graph_abs(g, d) : mt_graph_square(g, d);
        int32_t ax = 1;
        c = mt_graph_mean(g, mt_graph_sum(g, mt_graph_cast(g, d, MT_FLOAT32), 1, &ax, false), 0,
                          NULL, false);
        break;
    }
    case MT__LAYER_SIGMOID:
        /* Sigmoid.cost = mean over examples of the mean over units of
         * Y softplus(-z) + (1 - Y) softplus(z) (pylearn2.expr.nnet.kl) */
        c = mt_graph_sigmoid_crossentropy_logits(g, lo->pre, mt__targets_float(g, y, L->out_dim));
        c = mt_graph_mean(g, mt_graph_cast(g, c, MT_FLOAT32), 0, NULL, false);
        break;
    default:
        return mt_err_set(MT_ERR_UNSUPPORTED, "the output layer '%s' (%s) has no cost: the last "
                          "layer of an MLP trained with the default cost must be Softmax, Linear "
                          "or Sigmoid", L->s.name, L->s.cls);
    }
    *out = mt_graph_cast(g, c, MT_FLOAT32);
    return mt__graph_check(g, "default cost");
}

mt_status mt_model_default_cost(mt_model_graph *mg, const mt_fprop_options *opts, mt_var *out)
{
    *out = MT_VAR_NONE;
    mt_status st = check_mg(mg);
    if (st) return st;
    const mt_model *m = mg->m;
    mt_graph *g = mg->g;
    if (mt__model_is_autoencoder(m)) {
        /* MeanSquaredReconstructionError: mean over examples of sum((recon - X)^2) */
        mt_var r;
        if ((st = mt__ae_fprop(mg, opts && opts->corrupt, NULL, &r))) return st;
        mt__set_origin(g, 0, "reconstruction cost of the %s", mt_model_type_name(m));
        int32_t ax = 1;
        /* squared errors in the compute dtype, summed in float32 (mixed precision) */
        mt_var d2 = mt_graph_square(g, mt_graph_sub(g, r, mt__mg_input(mg)));
        mt_var c = mt_graph_sum(g, mt_graph_cast(g, d2, MT_FLOAT32), 1, &ax, false);
        *out = mt_graph_mean(g, c, 0, NULL, false);
        return mt__graph_check(g, "reconstruction cost");
    }
    const mt__layer *L = mt__output_layer(m);
    if (!mt__layer_has_cost(L))
        return mt__output_cost(mg, L, NULL, MT_VAR_NONE, out); /* the error */
    if (!mg->y)
        return mt_err_set(MT_ERR_INVALID, "the default cost of %s needs targets, but the graph "
                          "has none (the dataset has no y)", mt_model_type_name(m));
    mt__layer_out last;
    if ((st = mt__mlp_fprop(mg, opts, NULL, &last))) return st;
    return mt__output_cost(mg, L, &last, mg->y, out);
}

/* ---------------------------------------------------------------- norm constraints */

mt_status mt_model_constrain(mt_model_graph *mg, mt_var *values)
{
    mt_status st = check_mg(mg);
    if (st) return st;
    mt_graph *g = mg->g;
    const mt_model *m = mg->m;
    for (int32_t i = 0; i < m->n_params; i++) {
        const mt_model_param *p = &m->params[i];
        if (p->constraint == MT_NORM_NONE || !values[i]) continue;
        int32_t axes[3], naxes;
        switch (p->constraint) {
        case MT_NORM_MAX_COL: axes[0] = 0; naxes = 1; break;
        case MT_NORM_MAX_ROW: axes[0] = 1; naxes = 1; break;
        default: axes[0] = 1; axes[1] = 2; axes[2] = 3; naxes = 3; break;
        }
        /* Pylearn2: norms = sqrt(sum(W^2, axes)); desired = clip(norms, 0, limit);
         * W * (desired / (1e-7 + norms)) */
        mt__set_origin(g, 0, "%s of '%s'", p->constraint == MT_NORM_MAX_COL   ? "max_col_norm"
                                           : p->constraint == MT_NORM_MAX_ROW ? "max_row_norm"
                                                                              : "max_kernel_norm",
                       p->name);
        mt_var W = values[i];
        mt_var norms = mt_graph_sqrt(g, mt_graph_sum(g, mt_graph_square(g, W), naxes, axes, true));
        mt_var desired = mt_graph_clip(g, norms, mt_graph_literal_float(g, 0.0),
                                       mt_graph_literal_float(g, p->constraint_limit));
        mt_var scale = mt_graph_div(g, desired,
                                    mt_graph_add(g, mt_graph_literal_float(g, 1e-7), norms));
        values[i] = mt_graph_mul(g, W, scale);
    }
    return mt__graph_check(g, "norm constraints");
}
