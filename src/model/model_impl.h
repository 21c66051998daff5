/* Private interface of the model module: layer and model descriptions, the model object, the
 * deterministic parameter initializers, graph helpers shared by the forward pass, channels and
 * costs, and the cost object. Public contract: include/mltrain/model.h; user page:
 * docs/models.md.
 *
 * A model is built in two steps, as in Pylearn2: layer descriptions (mt__layer_spec, made by
 * the YAML components or by tests) carry the hyperparameters; mt__model_new_mlp /
 * mt__model_new_autoencoder then run Pylearn2's set_input_space chain (each layer learns its
 * input shape from the layer below, computes its output shape and allocates its parameters)
 * and initialize every parameter from Philox streams (init.c). The model copies everything it
 * is given, so it never points into the objects of a config builder. */
#ifndef MT_MODEL_IMPL_H
#define MT_MODEL_IMPL_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include "mltrain/config.h"
#include "mltrain/core.h"
#include "mltrain/graph.h"
#include "mltrain/model.h"

#define MT__NAME_MAX 64
#define MT__PATH_MAX 256 /* storage of a layer's path: names of its containers and its own,
                            '/'-joined */
/* The longest layer path accepted (bytes, mt__setup_layer). Every name built from a path then
 * fits where it is stored, so no two of them can be cut to the same text: the monitoring
 * channels "<path, '/' as '_'>_kernel_norms_mean" (the longest suffix, 18 bytes) in
 * mt_channel_def.name (95 bytes; model.c checks this at compile time), the parameters
 * "<path>_W" and "<path>_b", and the checkpoint keys and graph names made from those, the
 * longest being "optimizer/mean_square_grad_<path>_W" (106 bytes, in the 159 bytes of an
 * optimizer state's name). */
#define MT__PATH_LEN_MAX 77
#define MT__MAX_SEED 16
#define MT__MODEL_MAGIC 0x6d746d6fu /* "mtmo": checks that a !pkl result is a model */

/* ---------------------------------------------------------------- layers */

typedef enum mt__layer_kind {
    MT__LAYER_LINEAR = 0,
    MT__LAYER_SIGMOID,
    MT__LAYER_TANH,
    MT__LAYER_RELU,
    MT__LAYER_SOFTPLUS,
    MT__LAYER_SOFTMAX,
    MT__LAYER_MAXOUT,
    MT__LAYER_CONV,
    MT__LAYER_PRETRAINED,
    MT__LAYER_AE_ENC, /* autoencoder halves (layers of Autoencoder / DenoisingAutoencoder) */
    MT__LAYER_AE_DEC,
    MT__LAYER_COMPOSITE,  /* CompositeLayer: parallel sub-layers (layers.c) */
    MT__LAYER_FLATTENER,  /* FlattenerLayer: its raw_layer's output as one vector */
    MT__LAYER_MLP,        /* an MLP used as a layer of another MLP */
    MT__LAYER_PROJECTION, /* ProjectionLayer: embeddings of IndexSpace inputs */
    MT__LAYER_SIMPLE_RNN, /* recurrent layers over n_steps rows of the input (rnn.c) */
    MT__LAYER_LSTM,
    MT__LAYER_GRU,
    MT__LAYER_KIND_COUNT
} mt__layer_kind;

/* Elementwise activations (dense layers, conv nonlinearities, autoencoder act_enc/act_dec). */
typedef enum mt__act {
    MT__ACT_LINEAR = 0,
    MT__ACT_SIGMOID,
    MT__ACT_TANH,
    MT__ACT_RELU, /* with left_slope */
    MT__ACT_SOFTPLUS,
    MT__ACT_COUNT
} mt__act;
const char *mt__act_name(mt__act a); /* "linear", "sigmoid", "tanh", "relu", "softplus" */
/* Parses an autoencoder act_enc/act_dec string (NULL or "linear" = linear); ERR_INVALID
 * listing the valid names. */
mt_status mt__act_from_name(mt__act *out, const char *name);

typedef enum mt__pool_kind { MT__POOL_NONE = 0, MT__POOL_MAX, MT__POOL_MEAN } mt__pool_kind;

/* Hyperparameters of one layer. NaN means "not given" for the optional reals. */
typedef struct mt__layer_spec {
    mt__layer_kind kind;
    char name[MT__NAME_MAX];
    char cls[32];          /* component name for to_yaml ("ConvRectifiedLinear", ...) */
    int64_t dim;           /* Linear family: dim; Softmax: n_classes; Maxout: num_units;
                              conv: output_channels */
    /* initialization (Pylearn2: exactly one of irange / istdev / sparse_init) */
    bool has_irange, has_istdev, has_sparse_init;
    double irange, istdev;
    int64_t sparse_init;
    double sparse_stdev;   /* 1 */
    double include_prob;   /* 1: irange weights kept with this probability */
    double init_bias;      /* 0 */
    /* constraints and learning-rate scales (NaN = none) */
    double max_col_norm, max_row_norm, max_kernel_norm;
    double W_lr_scale, b_lr_scale;
    bool use_bias;         /* Linear family (true) */
    bool no_affine;        /* Softmax */
    bool use_abs_loss;     /* Linear output cost */
    int64_t binary_target_dim; /* Softmax, accepted (0 = not given) */
    double left_slope;     /* RectifiedLinear, ConvRectifiedLinear, RectifierConvNonlinearity */
    bool monitor_classification; /* Sigmoid monitor_style 'classification' (default
                                    'detection'); conv: 'classification' default */
    /* maxout */
    int64_t num_pieces, maxout_stride; /* maxout_stride 0 = num_pieces */
    bool min_zero;
    /* conv */
    int64_t kernel_shape[2], kernel_stride[2], pool_shape[2], pool_stride[2];
    mt__pool_kind pool_type;
    bool border_full;
    bool tied_b;
    mt__act conv_act;      /* nonlinearity object (RELU uses left_slope) */
    /* pretrained (the content's encoder, copied) */
    bool freeze;
    mt__act enc_act;
    int64_t pre_in, pre_out;
    float *pre_W;          /* [pre_in, pre_out], owned */
    float *pre_b;          /* [pre_out], owned */
    char *pre_yaml;        /* the content's structure (mt_model_to_yaml), owned */
    /* containers: CompositeLayer and nested MLP (their layers), FlattenerLayer (n_sub 1: the
     * raw_layer, whose name the flattener shares) */
    int32_t n_sub;
    struct mt__layer_spec *sub; /* owned */
    /* CompositeLayer inputs_to_layers (n_route 0: not given): input component route_key[i]
     * goes to the sub-layers route_val[route_off[i] .. route_off[i + 1]) */
    int32_t n_route;
    int32_t *route_key, *route_off, *route_val; /* owned */
    /* recurrent layers (SimpleRNN, LSTM, GRU): the input vector read as n_steps rows */
    int64_t n_steps;
    bool return_sequences; /* output every step's state [N, n_steps*dim], else the last */
    bool reverse;          /* run from the last row to the first (outputs stay aligned) */
    mt__act rnn_act;       /* SimpleRNN activation (tanh) */
    double forget_bias;    /* LSTM: initial bias of the forget gate (1) */
    double U_lr_scale;     /* NaN: W_lr_scale */
    bool U_orthogonal;     /* U_init 'orthogonal': each gate's [dim, dim] block orthogonal */
} mt__layer_spec;

/* Defaults as Pylearn2's constructors give them (NaN for unset optionals). */
void mt__layer_spec_init(mt__layer_spec *s, mt__layer_kind kind, const char *name);
/* Deep copy (pre_* buffers duplicated). */
mt_status mt__layer_spec_copy(mt__layer_spec *dst, const mt__layer_spec *src);
void mt__layer_spec_clear(mt__layer_spec *s);
const char *mt__layer_kind_name(mt__layer_kind k); /* "Linear", "Softmax", ... */

/* A layer placed in a model: its spec plus the shapes found by set_input_space. */
typedef struct mt__layer {
    mt__layer_spec s;
    bool in_image;          /* input is an image: NCHW inside graphs (in_c, in_h, in_w) */
    int64_t in_c, in_h, in_w;
    int64_t in_dim;         /* total input dimension */
    bool out_image;
    int64_t out_c, out_h, out_w;
    int64_t out_dim;
    int64_t det_h, det_w;   /* conv: detector (pre-pooling) size */
    int64_t det_dim;        /* maxout: num_units * num_pieces */
    int32_t iW, ib;         /* parameter indices, -1 if none */
    int32_t iU;             /* recurrent layers: the recurrent weights (-1 otherwise) */
    /* every layer: its path ("h0"; "comp/a" for sub-layer 'a' of the container 'comp'; a
     * FlattenerLayer and its raw layer share one path), which prefixes its parameters'
     * names ("comp/a_W"), and its input and output spaces (layers.c) */
    char path[MT__PATH_MAX];
    struct mt__space *in_sp, *out_sp; /* owned */
    /* containers: the placed sub-layers (owned) and, for a routed CompositeLayer, the input
     * components of sub-layer i: sub_in[sub_in_off[i] .. sub_in_off[i + 1]) (NULL: every
     * sub-layer reads the whole input) */
    int32_t n_sub;
    struct mt__layer *sub;
    int32_t *sub_in_off, *sub_in;
} mt__layer;

/* ---------------------------------------------------------------- spaces and corruptors */

typedef enum mt__space_kind {
    MT__SPACE_VECTOR = 0,
    MT__SPACE_CONV2D,
    MT__SPACE_INDEX,
    MT__SPACE_COMPOSITE
} mt__space_kind;

typedef struct mt__space {
    mt__space_kind kind;
    int64_t dim;          /* Vector, Index */
    int64_t shape[2];     /* Conv2D rows, cols */
    int64_t channels;     /* Conv2D */
    char axes[5];         /* Conv2D: "b01c" (Pylearn2 axes, for to_yaml only) */
    bool nchw;            /* Conv2D output of a layer: an NCHW state inside graphs (else the
                             dataset's b01c rows) */
    int64_t max_labels;   /* Index */
    int32_t n_comp;       /* Composite */
    struct mt__space *comp; /* owned */
} mt__space;
void mt__space_clear(mt__space *s);
mt_status mt__space_copy(mt__space *dst, const mt__space *src);
/* The number of features of s (a CompositeSpace: the sum over its components). Unchecked: for
 * the spaces of a built model, whose sizes were checked by mt__space_dim when they were
 * placed. */
int64_t mt__space_total_dim(const mt__space *s);
/* mt__space_total_dim with overflow checks: ERR_RANGE naming `what` ("layer 'h0' (Linear)")
 * and the sizes when the total does not fit in int64. */
mt_status mt__space_dim(const mt__space *s, const char *what, int64_t *out);
/* True when s is or contains an IndexSpace. */
bool mt__space_has_index(const mt__space *s);
/* "VectorSpace(dim 5)", "IndexSpace(dim 3, max_labels 100)", "CompositeSpace(...)". */
void mt__space_format(const mt__space *s, mt_strbuf *sb);

typedef enum mt__corrupt_kind {
    MT__CORRUPT_NONE = 0,
    MT__CORRUPT_BINOMIAL, /* x * Binomial(1, 1 - level) */
    MT__CORRUPT_GAUSSIAN  /* x + N(0, level^2) */
} mt__corrupt_kind;
typedef struct mt__corruptor {
    mt__corrupt_kind kind;
    double level; /* corruption_level / stdev */
} mt__corruptor;

/* ---------------------------------------------------------------- the model */

typedef enum mt__model_kind {
    MT__MODEL_MLP = 0,
    MT__MODEL_SOFTMAX_REGRESSION,
    MT__MODEL_AUTOENCODER,
    MT__MODEL_DAE
} mt__model_kind;

struct mt_model {
    uint32_t magic;         /* MT__MODEL_MAGIC */
    mt__model_kind kind;
    bool has_input_space;   /* MLP: input_space given (else nvis) */
    mt__space input_space;  /* always filled (VectorSpace(nvis) when nvis was given) */
    int64_t batch_size;     /* accepted; 0 = not given */
    int32_t n_seed;
    int64_t seed[MT__MAX_SEED];
    uint64_t seed_key;      /* hash of the seed list: the Philox key base */
    char input_source[32], target_source[32];
    int32_t n_layers;
    mt__layer *layers;
    int32_t n_params;
    mt_model_param *params; /* names owned (char *) */
    /* autoencoders */
    int64_t nvis, nhid;
    mt__act act_enc, act_dec;
    bool tied_weights;
    double ae_irange, ae_istdev; /* NaN when not given */
    mt__corruptor corruptor;
    /* SoftmaxRegression keeps its constructor arguments for to_yaml in layers[0] */
};

/* MLP / SoftmaxRegression description. */
typedef struct mt__mlp_desc {
    mt__model_kind kind;          /* MLP or SOFTMAX_REGRESSION */
    int32_t n_layers;
    const mt__layer_spec *layers; /* copied */
    int64_t nvis;                 /* 0 when input_space is given */
    const mt__space *input_space; /* NULL when nvis is given */
    int32_t n_seed;               /* 0 = Pylearn2's default [2013, 1, 4] */
    const int64_t *seed;
    int64_t batch_size;
    const char *input_source, *target_source; /* NULL = "features" / "targets" */
    int32_t *failed_layer; /* optional out: the top-level layer whose set-up failed, or -1 */
} mt__mlp_desc;
mt_status mt__model_new_mlp(mt_model **out, const mt__mlp_desc *d);

typedef struct mt__ae_desc {
    bool denoising;
    int64_t nvis, nhid;
    mt__act act_enc, act_dec;
    bool tied_weights;
    double irange, istdev;        /* NaN = not given (irange defaults to 1e-3) */
    int64_t rng;                  /* Pylearn2's rng seed (9001) */
    mt__corruptor corruptor;
} mt__ae_desc;
mt_status mt__model_new_autoencoder(mt_model **out, const mt__ae_desc *d);
/* Host data of parameter i (float32, C order). */
float *mt__param_data(mt_model *m, int32_t i);

/* The layer's activation for the dense kinds (Linear family, pretrained, AE halves). */
mt__act mt__layer_act(const mt__layer *L);
bool mt__layer_has_cost(const mt__layer *L); /* Softmax, Linear, Sigmoid */
bool mt__model_is_mlp(const mt_model *m);
bool mt__model_is_autoencoder(const mt_model *m);

/* ---------------------------------------------------------------- the layer tree */

/* Places layer L of top-level index li (its parameters' `layer`) at `path` with input space
 * `in` (copied): Pylearn2's set_input_space, recursively for containers (model.c dispatches;
 * containers and ProjectionLayer are in layers.c). Fills L's shapes, spaces and parameters. */
mt_status mt__setup_layer(mt_model *m, mt__layer *L, int32_t li, const char *path,
                          const mt__space *in);
mt_status mt__setup_container(mt_model *m, mt__layer *L, int32_t li);
mt_status mt__setup_projection(mt_model *m, mt__layer *L, int32_t li);
/* Recurrent layers (rnn.c): parameters W [n_in, G*dim], U [dim, G*dim], b [G*dim] (GRU:
 * [2, 3*dim]) with G gates (1, 4, 3), their initialization and the output shape. */
mt_status mt__setup_rnn(mt_model *m, mt__layer *L, int32_t li);
bool mt__layer_is_recurrent(const mt__layer *L);
/* Appends a zero parameter "<owner>_<suffix>" (or "<owner>" when suffix is NULL) of layer li;
 * ERR_INVALID when the name is taken. */
mt_status mt__add_param(mt_model *m, const char *owner, const char *suffix, int32_t li,
                        bool is_weight, int32_t ndim, const int64_t *dims, int32_t *index);
/* Frees what L owns (spec, spaces, sub-layers, routes). */
void mt__layer_clear(mt__layer *L);
bool mt__layer_is_container(const mt__layer *L);
/* The layer whose output is the model's output: the last layer, through nested MLPs. */
const mt__layer *mt__output_layer(const mt_model *m);
/* The layer at `path` ("h0", "comp/a"), or NULL. */
const mt__layer *mt__find_path(const mt_model *m, const char *path);
/* Calls fn on L and every layer under it (pre-order); stops at the first non-OK status. */
typedef mt_status (*mt__layer_fn)(const mt__layer *L, void *user);
mt_status mt__layer_walk(const mt__layer *L, mt__layer_fn fn, void *user);
/* True when L or a layer under it has a parameter that is a weight. */
bool mt__layer_has_weights(const mt_model *m, const mt__layer *L);

/* ---------------------------------------------------------------- initialization (init.c) */

/* Deterministic draws for a parameter: Philox4x32-10 with key mt_hash64(name, seed_key) and
 * counter (index, purpose). */
uint64_t mt__init_key(uint64_t seed_key, const char *name);
double mt__init_uniform(uint64_t key, uint32_t purpose, uint64_t index); /* [0, 1) */
double mt__init_normal(uint64_t key, uint32_t purpose, uint64_t index);  /* N(0, 1) */
/* W [rows, cols] (C order) per the spec's scheme: irange, istdev, or sparse_init (k nonzero
 * per COLUMN, i.e. per output unit); conv kernels [out, in*kh*kw] use rows = out and the
 * "column" is each output kernel (see docs/models.md). */
mt_status mt__init_dense(float *W, int64_t n_in, int64_t n_out, const mt__layer_spec *s,
                         uint64_t key, const char *what);
mt_status mt__init_conv(float *W, int64_t n_out, int64_t fan_in, const mt__layer_spec *s,
                        uint64_t key, const char *what);
/* Pylearn2's Autoencoder: W ~ U(-r, r) [nvis, nhid], Wprime ~ (0.5 - U(0,1)) * r [nhid, nvis]
 * (or N(0, s^2) for istdev). */
void mt__init_ae(float *W, int64_t n, bool prime, double irange, double istdev, uint64_t key);
/* U [n, n_blocks * n] (C order) with each [n, n] column block an orthogonal matrix: Gram-Schmidt
 * (QR with a positive diagonal of R) of N(0, 1) draws, so Haar-distributed. */
mt_status mt__init_orthogonal(float *U, int64_t n, int64_t n_blocks, uint64_t key,
                              const char *what);

/* ---------------------------------------------------------------- graph helpers (fprop.c) */

/* A state during a forward pass: a [N, d] matrix, or an NCHW image batch. */
typedef struct mt__state {
    mt_var v;
    bool image;
} mt__state;

/* Output of one layer: its state, and the pre-activation (Softmax, Sigmoid, Linear output
 * layers: what the cost needs). */
typedef struct mt__layer_out {
    mt__state out;
    mt_var pre;
    mt__state in; /* the input as the layer saw it (after dropout) */
} mt__layer_out;

/* What the layers read for parameter i and for the input X: the compute-dtype casts of
 * mixed precision (mt_model_graph_set_compute), else the float32 placeholders. */
static inline mt_var mt__mg_param(const mt_model_graph *mg, int32_t i)
{
    return i < 0 ? MT_VAR_NONE : mg->reads ? mg->reads[i] : mg->params[i];
}
static inline mt_var mt__mg_input(const mt_model_graph *mg)
{
    return mg->x_read ? mg->x_read : mg->X;
}

/* Forward pass of one layer (recursively for containers) on input x. */
mt_status mt__layer_fprop(mt_model_graph *mg, const mt__layer *L, mt__state x,
                          mt__layer_out *lo);
/* Recurrent layers (rnn.c): a SCAN node over the body of one step. */
mt_status mt__rnn_fprop(mt_model_graph *mg, const mt__layer *L, mt__state x, mt__layer_out *lo);
/* The activation a applied to z (RELU with left_slope). */
mt_var mt__act_apply(mt_graph *g, mt__act a, mt_var z, double left_slope);
/* Containers and ProjectionLayer (layers.c). */
mt_status mt__container_fprop(mt_model_graph *mg, const mt__layer *L, mt__state x,
                              mt__layer_out *lo);
/* The input sub-layer i of container L reads when L reads x: x itself, the chained output for
 * a nested MLP is the caller's business; for a routed CompositeLayer the component(s) mapped
 * to it (one component in its own form, several as their concatenation). */
mt__state mt__sub_input(mt_model_graph *mg, const mt__layer *L, int32_t i, mt__state x);
/* The state of input component j of composite space sp held in the matrix x (columns). */
mt__state mt__component_state(mt_model_graph *mg, const mt__space *sp, int32_t j, mt_var x);
/* Runs the MLP forward; outs has n_layers entries (may be NULL: only the last is kept in
 * *last). */
mt_status mt__mlp_fprop(mt_model_graph *mg, const mt_fprop_options *opts, mt__layer_out *outs,
                        mt__layer_out *last);
/* Autoencoder: hidden code and reconstruction of (corrupted when corrupt) X. */
mt_status mt__ae_fprop(mt_model_graph *mg, bool corrupt, mt_var *hidden, mt_var *recon);
/* Flattens an NCHW state to [N, C*H*W]; returns v unchanged for matrices. */
mt_var mt__flatten_state(mt_graph *g, mt__state s);
/* The cost of the last layer for outputs lo and targets y (mean over examples). */
mt_status mt__output_cost(mt_model_graph *mg, const mt__layer *L, const mt__layer_out *lo,
                          mt_var y, mt_var *out);
/* y as float32 [N, k] (one-hot of labels with depth k, or y itself). */
mt_var mt__targets_float(mt_graph *g, mt_var y, int64_t k);
/* sum(x^2) or sum(|x|) over all elements, float32 0-d. */
mt_var mt__sum_sq(mt_graph *g, mt_var x);
mt_var mt__sum_abs(mt_graph *g, mt_var x);
/* A float32 RANDOM node with the model graph's seed and a stream unique in the graph (the
 * graph's counter; mg->next_stream is updated to the stream after it). shape_ref
 * MT_VAR_NONE: static shape (ndim, shape). */
mt_var mt__random(mt_model_graph *mg, mt_random_dist dist, mt_var shape_ref, int32_t ndim,
                  const int64_t *shape, double p0, double p1);
/* Records the graph's sticky error as the status (or MT_OK), and clears the graph's current
 * origin (as the expression parser does when it returns). */
mt_status mt__graph_check(mt_graph *g, const char *what);
/* Sets the provenance of the nodes built next, e.g. "at layer 'h0' (RectifiedLinear):1" (the
 * line is the 1-based layer index, 0 when none). */
void mt__set_origin(mt_graph *g, int32_t line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---------------------------------------------------------------- costs (cost.c) */

typedef enum mt__cost_kind {
    MT__COST_DEFAULT = 0,
    MT__COST_METHOD,
    MT__COST_MSRE,
    MT__COST_WEIGHT_DECAY,
    MT__COST_L1_WEIGHT_DECAY,
    MT__COST_DROPOUT,
    MT__COST_SUM,
    MT__COST_EXPRESSION,
    MT__COST_KIND_COUNT
} mt__cost_kind;

struct mt_cost {
    mt__cost_kind kind;
    char method[64];        /* METHOD */
    /* WEIGHT_DECAY / L1: coeffs per layer (by index), or by layer name when names != NULL */
    int32_t n_coeffs;
    double *coeffs;
    char **coeff_names;
    bool coeff_all;         /* one coefficient for every layer with weights */
    /* DROPOUT */
    mt_dropout_spec dropout; /* name arrays below are the owned copies it points to */
    char **dp_prob_names;
    double *dp_probs;
    char **dp_scale_names;
    double *dp_scales;
    /* SUM */
    int32_t n_terms;
    double *term_coeffs;
    mt_cost **terms;        /* owned */
    /* EXPRESSION */
    char *expr;
};

mt_status mt__cost_alloc(mt_cost **out, mt__cost_kind kind);
/* Fills include_prob / scale (n_layers each) for a Dropout cost on model m; ERR_INVALID for
 * unknown layer names (with a suggestion). */
mt_status mt__dropout_arrays(const mt_cost *c, const mt_model *m, double *include_prob,
                             double *scale);

/* ---------------------------------------------------------------- YAML (components*.c) */

mt_status mt__register_model_components(mt_cfg_registry *r);
mt_status mt__register_cost_components(mt_cfg_registry *r);
/* Appends a double so that YAML reads it back as the same float ("1.0", "0.001", "1e-05"). */
void mt__yaml_float(mt_strbuf *sb, double v);
/* Appends a single-quoted YAML string. */
void mt__yaml_str(mt_strbuf *sb, const char *s);
/* Pretrained layer: copies the encoder of an autoencoder model into spec. */
mt_status mt__pretrained_from_model(mt__layer_spec *spec, const mt_model *content);

/* A few string helpers. */
void mt__copy_name(char *dst, size_t cap, const char *src);
/* The closest layer name to `word`, or NULL. */
const char *mt__suggest_layer(const mt_model *m, const char *word);

#endif /* MT_MODEL_IMPL_H */
