/* mltrain model: Pylearn2 models (MLP and its layers, SoftmaxRegression, autoencoders), their
 * parameters, and the costs, expressed as graphs (research/pylearn2_hyperopt.md §1.6, §1.10,
 * §1.13).
 *
 * A model (mt_model, opaque) owns its parameters as host float32 arrays (mt_model_param) and
 * knows how to build, in a caller's graph, the expressions of a forward pass, its default cost
 * and its monitoring channels. Parameters enter a graph as placeholders (one per parameter,
 * created by mt_model_graph_init) that the training algorithm binds as shared variables of its
 * compiled functions (mt_function_set_shared) to the model's arrays, so every function sees
 * the same values and the updates of the training function are the model's new parameters.
 *
 * Spaces: the input arrives as the dataset gives it, a float32 [batch, dim] design matrix whose
 * rows are images in b01c order when the input space is a Conv2DSpace; the model reshapes and
 * transposes as its layers need (Pylearn2's automatic space conversion). An IndexSpace input
 * holds integer ids as float32 columns (read by a ProjectionLayer); a CompositeSpace input
 * holds its components side by side (a CompositeDataset's sources), and so does any
 * composite value inside the graph (a CompositeLayer's output). Targets arrive as int64
 * labels [batch] (IndexSpace) or float32 [batch, k]; costs convert labels to one-hot where
 * they need it.
 *
 * Initialization is deterministic: parameters are drawn from Philox streams keyed by the
 * model's seed (MLP `seed`, default Pylearn2's [2013, 1, 4] hashed) and the parameter's name,
 * so the same YAML gives the same initial parameters on every machine and rank (the scheme is
 * in src/model/init.c and docs/models.md; the values differ from NumPy's RandomState draws).
 *
 * Graph building: every function below that builds nodes gives them the provenance of the
 * model part they come from ("at layer 'h0' (RectifiedLinear):1", "at cost of layer 'y'
 * (Softmax):0", "at max_col_norm of 'h0_W':0"), so run-time errors and NaN reports name the
 * layer; the graph's current origin is cleared when they return (as mt_graph_parse does).
 * Graph errors are returned with the graph's message. User page: docs/models.md. */
#ifndef MLTRAIN_MODEL_H
#define MLTRAIN_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mltrain/core.h"
#include "mltrain/data.h"
#include "mltrain/gpuarray.h"
#include "mltrain/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mt_model mt_model; /* opaque */

/* Norm constraints applied to a parameter after every update (Pylearn2's modify_updates). */
typedef enum mt_norm_constraint {
    MT_NORM_NONE = 0,
    MT_NORM_MAX_COL,    /* W [in, out]: each column's L2 norm <= limit (max_col_norm) */
    MT_NORM_MAX_ROW,    /* each row's norm <= limit (max_row_norm) */
    MT_NORM_MAX_KERNEL, /* conv W [out, in, kh, kw]: each output kernel's norm <= limit */
} mt_norm_constraint;

/* Parameter layouts: dense W [input dim, units] (Pylearn2's), biases [units]; Maxout W
 * [input dim, num_units*num_pieces]; conv W [output_channels, input_channels, kh, kw] (the
 * kernel of a cross-correlation, i.e. Pylearn2's kernel flipped), conv bias [output_channels]
 * (tied_b) or [output_channels, det_rows, det_cols] (untied, Pylearn2's default);
 * autoencoders W [nvis, nhid], hb [nhid], vb [nvis], Wprime [nhid, nvis]. */
typedef struct mt_model_param {
    const char *name;      /* "<layer>_W", "<layer>_b" (Pylearn2 names), unique in the model;
                              inside a CompositeLayer or nested MLP "<path>_W" with the '/'-
                              joined layer names ("comp/a_W"); autoencoders: "W", "hb", "vb",
                              "Wprime" */
    int32_t layer;         /* index of the top-level layer owning it (mt_model_layer_name) */
    bool is_weight;        /* W (weight decay applies), not a bias */
    float lr_scale;        /* W_lr_scale / b_lr_scale; 1 when not given */
    mt_norm_constraint constraint;
    double constraint_limit;
    mt_array value;        /* host float32, C-contiguous; owned by the model */
    bool frozen;           /* PretrainedLayer freeze_params: not trained (Pylearn2 leaves it
                              out of get_params): take no gradient, apply no update */
} mt_model_param;

int32_t mt_model_n_params(const mt_model *m);
mt_model_param *mt_model_param_at(mt_model *m, int32_t i);
const mt_model_param *mt_model_param_const(const mt_model *m, int32_t i);
int32_t mt_model_find_param(const mt_model *m, const char *name); /* -1 if absent */
int32_t mt_model_n_layers(const mt_model *m);
const char *mt_model_layer_name(const mt_model *m, int32_t i);
int32_t mt_model_find_layer(const mt_model *m, const char *name); /* -1 if absent */
/* "MLP", "SoftmaxRegression", "DenoisingAutoencoder", ... */
const char *mt_model_type_name(const mt_model *m);
/* Whether obj, built by the registry as kind "model", is an mt_model: an MLP with layer_name and
 * neither nvis nor input_space builds a layer of another MLP, which is not a model. */
bool mt_model_is_model(const void *obj);
/* True when the model's default cost needs targets (MLP with a Softmax/Linear/Sigmoid output);
 * autoencoders do not. */
bool mt_model_needs_targets(const mt_model *m);
/* Input features expected (dim of the input space) and the output dimension. */
int64_t mt_model_input_dim(const mt_model *m);
int64_t mt_model_output_dim(const mt_model *m);
/* Checks that a dataset fits the model (input dim, topology for Conv2DSpace, the components
 * of a CompositeSpace against the dataset's sources when it has several, labels within
 * n_classes, float target columns = output dim); ERR_SHAPE naming both. */
mt_status mt_model_check_data(const mt_model *m, const mt_dataset_info *data);
void mt_model_free(mt_model *m);

/* The model's structure as a YAML component text (`!obj:MLP {...}` with every layer and
 * hyperparameter), so that a checkpoint can rebuild the model (mt_model_from_yaml) and then
 * load parameters by name. A PretrainedLayer is written with its autoencoder inline. The text
 * round-trips exactly (to_yaml(from_yaml(t)) == t for t from to_yaml), and the rebuilt model
 * has the same parameter names, shapes, constraints and (deterministic) initial values.
 * mt_model_from_yaml loads, validates (kind "model") and builds with the registry r (which
 * needs the model components, and "!pkl" when the text uses it); the model is released from
 * the builder, the caller frees it. Errors "<model>:LINE:COL: ...". */
mt_status mt_model_to_yaml(const mt_model *m, mt_strbuf *sb);
struct mt_cfg_registry;
mt_status mt_model_from_yaml(mt_model **out, const struct mt_cfg_registry *r, const char *text);

/* First-layer weights as images, for `mltrain show-weights`: writes n_filters [rows, cols,
 * channels] filters (float32, n_filters*rows*cols*channels, owned by the caller, mt_free) when
 * the first layer's input is an image (Conv2DSpace, or a VectorSpace whose dim is a square or
 * given by `topo` = {rows, cols, channels}): one per unit (column of W, in the input's b01c
 * order), or for a convolution one per kernel ([kh, kw, input channels]). ERR_UNSUPPORTED
 * otherwise (no weights, or an input that is not an image). */
mt_status mt_model_first_layer_filters(const mt_model *m, const int64_t *topo, float **out,
                                       int64_t *n_filters, int64_t shape[3]);

/* ---------------------------------------------------------------- graphs */

/* Options of a forward pass. Dropout (Pylearn2's Dropout cost): the input of layer i is
 * multiplied by a Bernoulli(include_prob[i]) mask times scale[i]; include_prob 1 = none. */
typedef struct mt_fprop_options {
    bool dropout;
    const double *include_prob; /* n_layers entries (when dropout) */
    const double *scale;        /* n_layers entries (when dropout) */
    bool corrupt;               /* autoencoders: apply the corruptor to the input */
    bool per_batch_mask;        /* dropout: one mask for the whole batch (Pylearn2
                                   per_example=False); false (default): one per example */
} mt_fprop_options;

/* A model placed in a graph: the placeholders of its parameters and of the data. */
typedef struct mt_model_graph {
    mt_graph *g;            /* borrowed */
    const mt_model *m;      /* borrowed */
    int32_t n_params;
    mt_var *params;         /* placeholder of parameter i (owned; name = the param's name) */
    mt_var X;               /* float32 [-1, input dim] (or the static batch when given) */
    mt_var y;               /* int64 [-1] labels or float32 [-1, k]; MT_VAR_NONE without
                               targets */
    uint64_t seed;          /* seed of the RANDOM nodes built here (dropout, corruptors) */
    uint64_t next_stream;   /* the stream after the last RANDOM node built here (1 before) */
    /* Mixed precision (mt_model_graph_set_compute): the dtype the forward pass computes in
     * (MT_FLOAT32 unless set), and what the model's layers read: reads[i] = cast(params[i])
     * for parameter i and x_read = cast(X) (owned; NULL / MT_VAR_NONE at float32: the
     * placeholders themselves). */
    mt_dtype compute;
    mt_var *reads;
    mt_var x_read;
} mt_model_graph;

/* Creates the placeholders: "X", "y" and one per parameter named as the parameter (a
 * placeholder of that name and type already in g is reused, so several model graphs can share
 * one graph). data: the dataset the graph will be fed from (decides y's type: int64 [batch]
 * for labels, float32 [batch, y_dim] for targets; NULL or no targets: y = MT_VAR_NONE; y is
 * made whenever the data has targets, whether or not the model needs them). batch: static
 * batch size, or -1. Random nodes (dropout masks, corruptors) get mg->seed and a stream from
 * the graph's counter (mt_graph_random's: unique in the graph, so no two random nodes share a
 * key); building the same graph in the same order gives the same draws (resume). The graph's
 * own seed (mt_graph_seed) is left as it was. */
mt_status mt_model_graph_init(mt_model_graph *mg, const mt_model *m, mt_graph *g,
                              const mt_dataset_info *data, int64_t batch, uint64_t seed);
void mt_model_graph_clear(mt_model_graph *mg);
/* Mixed precision: the layers of every expression built from now on (forward passes, the
 * default and expression costs, activation channels) read cast(p, dt) of each parameter
 * placeholder p and cast(X, dt) of the input, so activations, products and per-example costs
 * are dt (MT_BFLOAT16 or MT_FLOAT16); the placeholders stay float32 (the master weights: their
 * gradients come out float32 through the cast's gradient). Costs cast per-example values to
 * float32 before the mean over examples and stay float32 scalars; parameter norms (norm
 * channels, weight decay, norm constraints) read the float32 masters. dt MT_FLOAT32 returns
 * to plain float32 reads. MT_FLOAT64 computes the forward pass in float64 (for gradient
 * checks by central differences, whose rounding error float32 would dominate). Call before
 * building expressions; ERR_INVALID for other dtypes. */
mt_status mt_model_graph_set_compute(mt_model_graph *mg, mt_dtype dt);

/* Output of the model for mg->X (MLP: the last layer's output, e.g. softmax probabilities;
 * autoencoder: the reconstruction). opts NULL = no dropout, no corruption. Vector outputs are
 * [N, d]; a convolution layer's output is NCHW [N, C, H, W]. */
mt_status mt_model_fprop(mt_model_graph *mg, const mt_fprop_options *opts, mt_var *out);
/* Output of each (top-level) layer (n_layers vars) for mg->X, written to outs (opts as above;
 * a CompositeLayer's output is its sub-layers' outputs side by side, [N, total]);
 * autoencoders: the hidden code and the reconstruction. */
mt_status mt_model_fprop_layers(mt_model_graph *mg, const mt_fprop_options *opts,
                                mt_var *outs);
/* The model's default cost (Pylearn2 mlp.Default / the output layer's cost): Softmax ->
 * mean NLL of the labels or float targets (computed from the pre-softmax values, stable);
 * Linear -> mean over examples of the summed squared error (absolute with use_abs_loss);
 * Sigmoid -> mean over examples AND units of the cross-entropy softplus(z) - y z (Pylearn2's
 * Sigmoid.cost = mean of pylearn2.expr.nnet.kl, which averages over units); labels are made
 * one-hot for Linear and Sigmoid. Autoencoders -> mean over examples of the summed squared
 * reconstruction error (of the corrupted input's reconstruction when opts->corrupt). Other
 * output layers: ERR_UNSUPPORTED naming the layer. An MLP without mg->y: ERR_INVALID.
 * Scalar float32. */
mt_status mt_model_default_cost(mt_model_graph *mg, const mt_fprop_options *opts,
                                 mt_var *out);

/* A monitoring channel: a scalar float32 value computed per batch and how batches combine. */
typedef enum mt_chan_reduce {
    MT_CHAN_MEAN = 0, /* mean over examples: batch values weighted by batch size */
    MT_CHAN_MAX,      /* max over batches */
    MT_CHAN_MIN,      /* min over batches */
    MT_CHAN_NODATA    /* does not depend on the data (norms of parameters): computed once */
} mt_chan_reduce;

typedef struct mt_channel_def {
    char name[96];     /* without the dataset prefix: "y_misclass", "h0_col_norms_max" */
    mt_var value;      /* 0-d float32 (or castable) */
    mt_chan_reduce reduce;
} mt_channel_def;

typedef struct mt_channel_list {
    int32_t n, cap;
    mt_channel_def *items; /* owned (mt_free) */
} mt_channel_list;
mt_status mt_channel_list_add(mt_channel_list *l, const char *name, mt_var value,
                              mt_chan_reduce reduce);
void mt_channel_list_clear(mt_channel_list *l);

/* The model's channels with Pylearn2 names (no dataset prefix), from a forward pass without
 * dropout, in Pylearn2's order, layer by layer (MLP.get_layer_monitoring_channels):
 *   Linear/Sigmoid/Tanh/RectifiedLinear/Softplus: <l>_{row,col}_norms_{min,mean,max}, then
 *     <l>_{range,max,mean,min}_x_{max,mean,min}_u (over units u of the max/mean/min/range over
 *     the batch's examples x); a Sigmoid output layer with targets adds <l>_01_loss, <l>_kl,
 *     <l>_precision, <l>_recall, <l>_f1 (monitor_style detection) or <l>_misclass;
 *   Softmax: <l>_{row,col}_norms_* (not with no_affine), <l>_mean_max_class,
 *     <l>_max_max_class, <l>_min_max_class, and with targets <l>_misclass, <l>_nll;
 *   Maxout: <l>_{row,col}_norms_*, then Pylearn2's dotted names with prefix "p_" when
 *     num_pieces > 1: <l>_p_max_x.max_u, ..._p_min_x.*, _p_range_x.*, _p_mean_x.*;
 *   ConvElemwise / ConvRectifiedLinear: <l>_kernel_norms_{min,mean,max}, then the activation
 *     statistics of the (pooled) output over channels and positions (<l>_range_x_max_u, ...);
 *   PretrainedLayer: none; autoencoders: none.
 * Norms are MT_CHAN_NODATA; everything computed from the batch is MT_CHAN_MEAN (Pylearn2's
 * monitor averages every channel over batches weighted by batch size, max_x_max_u too).
 * Channels needing targets are added only to the last layer and only when mg->y exists. */
mt_status mt_model_channels(mt_model_graph *mg, mt_channel_list *out);

/* Applies the norm constraints to new parameter values: for each parameter i with a
 * constraint, values[i] is replaced by Pylearn2's renormalized expression
 *     norms = sqrt(sum(W^2, axes)); W * (clip(norms, 0, limit) / (1e-7 + norms))
 * with axes 0 (max_col_norm: each column of [in, out]), 1 (max_row_norm) or (1, 2, 3)
 * (max_kernel_norm: each output kernel of [out, in, kh, kw]). values has n_params entries
 * (MT_VAR_NONE = not updated). */
mt_status mt_model_constrain(mt_model_graph *mg, mt_var *values);

/* ---------------------------------------------------------------- costs */

typedef struct mt_cost mt_cost; /* opaque; built from YAML (kind "cost") or by the C API */

/* The training objective (scalar float32) of the cost on mg's data. Default, MethodCost and
 * MeanSquaredReconstructionError of a DenoisingAutoencoder reconstruct the CORRUPTED input
 * (Pylearn2's DenoisingAutoencoder.reconstruct always corrupts). */
mt_status mt_cost_expr(const mt_cost *c, mt_model_graph *mg, mt_var *out);
/* Extra channels of the cost: a SumOfCosts adds each term's (unweighted) value as
 * "term_<i>" or "term_<i>_<name>" (Pylearn2's names: weight_decay, l1_penalty); other costs
 * add nothing. */
mt_status mt_cost_channels(const mt_cost *c, mt_model_graph *mg, mt_channel_list *out);
bool mt_cost_needs_targets(const mt_cost *c, const mt_model *m);
/* True when the cost draws random numbers (dropout, corruption). */
bool mt_cost_is_stochastic(const mt_cost *c, const mt_model *m);
/* Default cost object (mlp.Default); caller frees. */
mt_status mt_cost_default(mt_cost **out);
void mt_cost_free(mt_cost *c);

/* Other costs from C (the YAML components build the same objects). Nothing is consumed:
 * arrays and sub-costs are copied. */
/* MeanSquaredReconstructionError (autoencoders). */
mt_status mt_cost_msre(mt_cost **out);
/* WeightDecay (l1 false: sum coeff * sum(W^2)) / L1WeightDecay (sum coeff * sum(|W|)):
 * layer_names NULL: coeffs[i] for layer i (n must equal the model's layer count); else
 * coeffs[i] for the layer named layer_names[i] (layers not named get 0); n = -1: coeffs[0]
 * for every layer that has weights. */
mt_status mt_cost_weight_decay(mt_cost **out, bool l1, int32_t n, const double *coeffs,
                               const char *const *layer_names);
/* Dropout: the default cost on a forward pass where the input of each layer is multiplied by
 * a Bernoulli(include_prob) mask and by scale (Pylearn2's dropout_fprop). */
typedef struct mt_dropout_spec {
    double default_input_include_prob; /* 0.5 */
    double default_input_scale;        /* 2.0 */
    int32_t n_include_probs;           /* per-layer overrides by layer name */
    const char *const *include_prob_layers;
    const double *include_probs;
    int32_t n_input_scales;
    const char *const *input_scale_layers;
    const double *input_scales;
    bool per_example;                  /* true: a mask per example (Pylearn2's default) */
} mt_dropout_spec;
void mt_dropout_spec_init(mt_dropout_spec *s);
mt_status mt_cost_dropout(mt_cost **out, const mt_dropout_spec *s);
/* SumOfCosts: sum of coeffs[i] * terms[i] (coeffs NULL: all 1). */
mt_status mt_cost_sum(mt_cost **out, int32_t n, const double *coeffs,
                      const mt_cost *const *terms);
/* A cost written in the expression language (docs/expressions.md) over the names X, y,
 * y_hat (= output: the model's output without dropout), every parameter by name (h0_W, ...)
 * and default_cost (the model's default cost). The text is checked when the cost is used
 * (mt_cost_expr), with the parser's message and position. */
mt_status mt_cost_expression(mt_cost **out, const char *text);
/* MethodCost(method): "cost_from_X" is the default cost; other names are ERR_INVALID. */
mt_status mt_cost_method(mt_cost **out, const char *method);
mt_status mt_cost_clone(mt_cost **out, const mt_cost *c);
/* "Default", "WeightDecay", "Dropout", "SumOfCosts", ... */
const char *mt_cost_type_name(const mt_cost *c);
/* Checks the cost against a model without building anything: layer names of WeightDecay and
 * Dropout (with suggestions), coefficient counts, layers without weights given a nonzero
 * decay, costs the model has no output cost for (e.g. MeanSquaredReconstructionError on an
 * MLP, the default cost of an MLP ending in a RectifiedLinear layer). */
mt_status mt_cost_check(const mt_cost *c, const mt_model *m);

/* ---------------------------------------------------------------- YAML components */

/* Registers (with Pylearn2 aliases): models MLP (also a layer of another MLP, with
 * layer_name), SoftmaxRegression, Autoencoder, DenoisingAutoencoder; layers Linear, Sigmoid,
 * Tanh, RectifiedLinear, Softplus, Softmax, Maxout, ConvRectifiedLinear, ConvElemwise,
 * PretrainedLayer, CompositeLayer, FlattenerLayer, ProjectionLayer; conv nonlinearities
 * IdentityConvNonlinearity, RectifierConvNonlinearity, SigmoidConvNonlinearity,
 * TanhConvNonlinearity (kind "conv_nonlinearity"); spaces VectorSpace, Conv2DSpace, IndexSpace,
 * CompositeSpace; corruptors BinomialCorruptor, GaussianCorruptor; costs Default (mlp.Default),
 * MethodCost, MeanSquaredReconstructionError, WeightDecay, L1WeightDecay, Dropout, SumOfCosts,
 * ExpressionCost. Built objects: mt_model* (kind "model"), mt_cost* (kind "cost"); layers,
 * spaces and corruptors are internal kinds consumed by the model builders. Built models and
 * costs refer to nothing else the builder owns (mt_cfg_builder_release works on them). A
 * PretrainedLayer's layer_content is built with kind "model" (a !pkl: node by the "!pkl"
 * component, which must return an mt_model*); its encoder is copied. Cross-key rules (one
 * init scheme, sizes >= 1, activation names, axes) are checked by mt_cfg_validate already. */
mt_status mt_model_register_components(struct mt_cfg_registry *r);

#ifdef __cplusplus
}
#endif
#endif /* MLTRAIN_MODEL_H */
