/* Monitoring channels with Pylearn2's names (MLP.get_layer_monitoring_channels): for every
 * layer "<layer>_<quantity>" from the weights (norms, computed once per monitor call) and from
 * the layer's output on the batch (activation statistics), and for the output layer the
 * quantities that need targets (misclass, nll, ...). Pylearn2's monitor averages every channel
 * over the batches of a dataset weighted by batch size, max_x_max_u included; the data channels
 * here are MT_CHAN_MEAN for that reason.
 *
 *   Linear family, PretrainedLayer: {row,col}_norms_{min,mean,max};
 *       range_x_{max,mean,min}_u, max_x_*, mean_x_*, min_x_* (statistics over units u of the
 *       max / mean / min / range over the examples x of the batch).
 *   Sigmoid output with targets: 01_loss, kl, precision, recall, f1 (monitor_style detection),
 *       or misclass (classification).
 *   Softmax: {row,col}_norms_* (unless no_affine), mean_max_class, max_max_class,
 *       min_max_class; with targets misclass and nll.
 *   Maxout: {row,col}_norms_*; then, with the prefix "p_" when num_pieces > 1, Pylearn2's
 *       dotted names max_x.max_u, max_x.mean_u, max_x.min_u, min_x.*, range_x.*, mean_x.*.
 *   ConvElemwise: kernel_norms_{min,mean,max}; the activation statistics of the (pooled)
 *       output over its channels and positions (range_x_*, max_x_*, mean_x_*, min_x_*). */
#include <stdio.h>
#include <string.h>

#include "model_impl.h"

mt_status mt_channel_list_add(mt_channel_list *l, const char *name, mt_var value,
                              mt_chan_reduce reduce)
{
    if (!l || !name) return mt_err_set(MT_ERR_INVALID, "channel list: NULL argument");
    if (strlen(name) >= sizeof(l->items[0].name))
        return mt_err_set(MT_ERR_INVALID, "channel name '%s' is too long (at most %zu bytes)",
                          name, sizeof(l->items[0].name) - 1);
    for (int32_t i = 0; i < l->n; i++)
        if (!strcmp(l->items[i].name, name))
            return mt_err_set(MT_ERR_INVALID, "channel '%s' is defined twice", name);
    if (l->n == l->cap) {
        int32_t cap = l->cap ? l->cap * 2 : 32;
        mt_channel_def *it = mt_realloc(l->items, (size_t)cap * sizeof(*it));
        if (!it) return mt_err_set(MT_ERR_NOMEM, "channel list: out of memory");
        l->items = it;
        l->cap = cap;
    }
    mt_channel_def *c = &l->items[l->n++];
    memset(c, 0, sizeof(*c));
    snprintf(c->name, sizeof(c->name), "%s", name);
    c->value = value;
    c->reduce = reduce;
    return MT_OK;
}

void mt_channel_list_clear(mt_channel_list *l)
{
    if (!l) return;
    mt_free(l->items);
    memset(l, 0, sizeof(*l));
}

/* ---------------------------------------------------------------- helpers */

typedef struct chan_ctx {
    mt_graph *g;
    mt_channel_list *out;
    const char *layer;
    mt_status st;
} chan_ctx;

static void add(chan_ctx *c, const char *key, mt_var v, mt_chan_reduce r)
{
    if (c->st) return;
    char name[160];
    snprintf(name, sizeof(name), "%s_%s", c->layer, key);
    c->st = mt_channel_list_add(c->out, name, mt_graph_cast(c->g, v, MT_FLOAT32), r);
}

static mt_var red(mt_graph *g, mt_reduce_op op, mt_var x)
{
    return mt_graph_reduce(g, op, x, 0, NULL, false);
}

/* min, mean, max of a vector of norms (names "<what>_min" ...). */
static void norms3(chan_ctx *c, const char *what, mt_var norms)
{
    char k[64];
    static const char *sfx[3] = {"min", "mean", "max"};
    static const mt_reduce_op ops[3] = {MT_REDUCE_MIN, MT_REDUCE_MEAN, MT_REDUCE_MAX};
    for (int i = 0; i < 3; i++) {
        snprintf(k, sizeof(k), "%s_%s", what, sfx[i]);
        add(c, k, red(c->g, ops[i], norms), MT_CHAN_NODATA);
    }
}

static void weight_norms(chan_ctx *c, mt_var W)
{
    mt_graph *g = c->g;
    int32_t a1 = 1, a0 = 0;
    mt_var sq = mt_graph_square(g, W);
    norms3(c, "row_norms", mt_graph_sqrt(g, mt_graph_sum(g, sq, 1, &a1, false)));
    norms3(c, "col_norms", mt_graph_sqrt(g, mt_graph_sum(g, sq, 1, &a0, false)));
}

/* Statistics over examples (axis 0) then over units (all remaining axes). dotted: Maxout's
 * "max_x.max_u" spelling and order (max, min, range, mean); else the Linear order (range,
 * max, mean, min) with underscores. */
static void activation_stats(chan_ctx *c, mt_var state, const char *prefix, bool dotted)
{
    mt_graph *g = c->g;
    int32_t a0 = 0;
    mt_var mx = mt_graph_max(g, state, 1, &a0, false);
    mt_var mn = mt_graph_min(g, state, 1, &a0, false);
    mt_var mean = mt_graph_mean(g, state, 1, &a0, false);
    mt_var rg = mt_graph_sub(g, mx, mn);
    struct { const char *n; mt_var v; } lin[4] = {{"range", rg}, {"max", mx}, {"mean", mean},
                                                  {"min", mn}},
      dot[4] = {{"max", mx}, {"min", mn}, {"range", rg}, {"mean", mean}};
    static const char *us[3] = {"max", "mean", "min"};
    static const mt_reduce_op uo[3] = {MT_REDUCE_MAX, MT_REDUCE_MEAN, MT_REDUCE_MIN};
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 3; j++) {
            char k[64];
            const char *n = dotted ? dot[i].n : lin[i].n;
            snprintf(k, sizeof(k), "%s%s_x%c%s_u", prefix, n, dotted ? '.' : '_', us[j]);
            add(c, k, red(g, uo[j], dotted ? dot[i].v : lin[i].v), MT_CHAN_MEAN);
        }
}

/* misclass from probabilities/outputs and labels or one-hot targets (argmax). */
static mt_var misclass(mt_graph *g, mt_var state, mt_var y)
{
    int32_t a1 = 1;
    mt_var yhat = mt_graph_argmax(g, state, 1, &a1, false);
    const mt_type *t = mt_graph_type(g, y);
    mt_var lab = t && mt_dtype_is_int(t->dtype) ? mt_graph_cast(g, y, MT_INT64)
                                               : mt_graph_argmax(g, y, 1, &a1, false);
    return mt_graph_mean(g, mt_graph_cast(g, mt_graph_ne(g, yhat, lab), MT_FLOAT32), 0, NULL,
                         false);
}

/* Sigmoid output channels (Pylearn2's get_detection_channels_from_state, without the
 * per_output_* ones; or misclass for monitor_style classification). */
static void sigmoid_target_channels(chan_ctx *c, const mt__layer *L, const mt__layer_out *lo,
                                    mt_var y, mt_model_graph *mg)
{
    mt_graph *g = c->g;
    mt_var t = mt__targets_float(g, y, L->out_dim);
    mt_var half = mt_graph_literal_float(g, 0.5);
    mt_var yh = mt_graph_cast(g, mt_graph_gt(g, lo->out.v, half), MT_FLOAT32);
    mt_var yy = mt_graph_cast(g, mt_graph_gt(g, t, half), MT_FLOAT32);
    if (L->s.monitor_classification) {
        int32_t a1 = 1;
        mt_var wrong = mt_graph_max(g, mt_graph_cast(g, mt_graph_ne(g, t, yh), MT_FLOAT32), 1,
                                    &a1, false);
        add(c, "misclass", mt_graph_mean(g, wrong, 0, NULL, false), MT_CHAN_MEAN);
        return;
    }
    add(c, "01_loss", red(g, MT_REDUCE_MEAN, mt_graph_cast(g, mt_graph_ne(g, yy, yh),
                                                           MT_FLOAT32)), MT_CHAN_MEAN);
    mt_var kl;
    if (!c->st) c->st = mt__output_cost(mg, L, lo, y, &kl);
    if (c->st) return;
    add(c, "kl", kl, MT_CHAN_MEAN);
    mt_var one = mt_graph_literal_float(g, 1.0);
    mt_var tp = red(g, MT_REDUCE_SUM, mt_graph_mul(g, yy, yh));
    mt_var fp = red(g, MT_REDUCE_SUM, mt_graph_mul(g, mt_graph_sub(g, one, yy), yh));
    mt_var prec = mt_graph_div(g, tp, mt_graph_maximum(g, one, mt_graph_add(g, tp, fp)));
    mt_var rec = mt_graph_div(g, tp, mt_graph_maximum(g, one, red(g, MT_REDUCE_SUM, yy)));
    mt_var f1 = mt_graph_div(g, mt_graph_mul(g, mt_graph_mul(g, mt_graph_literal_float(g, 2.0),
                                                               prec), rec),
                             mt_graph_maximum(g, one, mt_graph_add(g, prec, rec)));
    add(c, "precision", prec, MT_CHAN_MEAN);
    add(c, "recall", rec, MT_CHAN_MEAN);
    add(c, "f1", f1, MT_CHAN_MEAN);
}

static void layer_channels(chan_ctx *c, mt_model_graph *mg, const mt__layer *L,
                           const mt__layer_out *lo, mt_var y)
{
    mt_graph *g = c->g;
    mt_var W = L->iW >= 0 ? mg->params[L->iW] : MT_VAR_NONE;
    switch (L->s.kind) {
    case MT__LAYER_SOFTMAX: {
        if (W) weight_norms(c, W);
        int32_t a1 = 1;
        mt_var mx = mt_graph_max(g, lo->out.v, 1, &a1, false);
        add(c, "mean_max_class", red(g, MT_REDUCE_MEAN, mx), MT_CHAN_MEAN);
        add(c, "max_max_class", red(g, MT_REDUCE_MAX, mx), MT_CHAN_MEAN);
        add(c, "min_max_class", red(g, MT_REDUCE_MIN, mx), MT_CHAN_MEAN);
        if (y) {
            add(c, "misclass", misclass(g, lo->out.v, y), MT_CHAN_MEAN);
            mt_var nll;
            if (!c->st) c->st = mt__output_cost(mg, L, lo, y, &nll);
            add(c, "nll", nll, MT_CHAN_MEAN);
        }
        return;
    }
    case MT__LAYER_MAXOUT:
        weight_norms(c, W);
        activation_stats(c, lo->out.v, L->s.num_pieces > 1 ? "p_" : "", true);
        return;
    case MT__LAYER_CONV: {
        int32_t ax[3] = {1, 2, 3};
        norms3(c, "kernel_norms",
               mt_graph_sqrt(g, mt_graph_sum(g, mt_graph_square(g, W), 3, ax, false)));
        activation_stats(c, lo->out.v, "", false);
        return;
    }
    default:
        weight_norms(c, W);
        activation_stats(c, lo->out.v, "", false);
        if (y && L->s.kind == MT__LAYER_SIGMOID) sigmoid_target_channels(c, L, lo, y, mg);
        return;
    }
}

/* Channels of L (recursively for containers, Pylearn2's prefixes: "<composite>_<sub>_...",
 * "<nested mlp>_<layer>_...", a FlattenerLayer's are its raw layer's) on input x; y only for
 * the model's output layer. The forward pass is built again per layer: equal nodes are merged
 * by the graph, so this adds nothing to what mt__mlp_fprop builds. */
static void tree_channels(chan_ctx *c, mt_model_graph *mg, const mt__layer *L, mt__state x,
                          const char *prefix, mt_var y, int32_t line, mt__layer_out *lo)
{
    if (c->st) return;
    if ((c->st = mt__layer_fprop(mg, L, x, lo))) return;
    mt__set_origin(mg->g, line, "channels of layer '%s' (%s)", L->path, L->s.cls);
    char sub[MT__PATH_MAX + MT__NAME_MAX + 2];
    mt__layer_out r;
    switch (L->s.kind) {
    case MT__LAYER_PRETRAINED: return; /* Pylearn2: none */
    case MT__LAYER_PROJECTION:
        c->layer = prefix;
        weight_norms(c, mg->params[L->iW]);
        return;
    case MT__LAYER_FLATTENER:
        tree_channels(c, mg, &L->sub[0], x, prefix, MT_VAR_NONE, line, &r);
        return;
    case MT__LAYER_COMPOSITE:
        for (int32_t i = 0; i < L->n_sub; i++) {
            snprintf(sub, sizeof(sub), "%s_%s", prefix, L->sub[i].s.name);
            tree_channels(c, mg, &L->sub[i], mt__sub_input(mg, L, i, x), sub, MT_VAR_NONE, line,
                          &r);
        }
        return;
    case MT__LAYER_MLP: {
        mt__state s = x;
        for (int32_t i = 0; i < L->n_sub; i++) {
            snprintf(sub, sizeof(sub), "%s_%s", prefix, L->sub[i].s.name);
            tree_channels(c, mg, &L->sub[i], s, sub, i == L->n_sub - 1 ? y : MT_VAR_NONE, line,
                          &r);
            s = r.out;
        }
        return;
    }
    default:
        c->layer = prefix;
        layer_channels(c, mg, L, lo, y);
        return;
    }
}

mt_status mt_model_channels(mt_model_graph *mg, mt_channel_list *out)
{
    if (!mg || !mg->g || !mg->m) return mt_err_set(MT_ERR_INVALID, "channels: no model graph");
    const mt_model *m = mg->m;
    if (!mt__model_is_mlp(m)) return MT_OK; /* Pylearn2's autoencoders have no channels */
    chan_ctx c = {mg->g, out, NULL, MT_OK};
    mt__state x = {mt__space_has_index(&m->input_space) ? mg->X : mt__mg_input(mg), false};
    for (int32_t i = 0; i < m->n_layers && !c.st; i++) {
        const mt__layer *L = &m->layers[i];
        mt__set_origin(mg->g, i + 1, "layer '%s' (%s)", L->s.name, L->s.cls);
        bool is_last = i == m->n_layers - 1;
        mt__layer_out lo;
        tree_channels(&c, mg, L, x, L->s.name, is_last ? mg->y : MT_VAR_NONE, i + 1, &lo);
        x = lo.out;
    }
    if (c.st) return c.st;
    return mt__graph_check(mg->g, "channels");
}
