/* YAML tests: channel names and values, the structure round trip (to_yaml / from_yaml), error
 * messages for bad keys and values (with file:line:col), dataset checks, costs from YAML
 * (ExpressionCost, SumOfCosts, MethodCost), and the model and cost subtree of every Pylearn2
 * conformance file. */
#include <dirent.h>
#include <stdio.h>
#include <string.h>

#include "model_test_util.h"

#ifndef MT_CONFORMANCE_DIR
#define MT_CONFORMANCE_DIR ""
#endif

static mt_status cost_from_yaml(mt_cost **out, const char *text)
{
    *out = NULL;
    mt_cfg_options o;
    mt_cfg_options_init(&o);
    o.no_environment = true;
    mt_cfg_doc *doc = NULL;
    mt_cfg_builder *b = NULL;
    void *obj = NULL;
    mt_status st = mt_cfg_load_string(&doc, text, strlen(text), "cost.yaml", &o);
    if (!st) st = mt_cfg_validate(mtt_registry(), mt_cfg_doc_root(doc), "cost");
    if (!st) st = mt_cfg_builder_new(&b, mtt_registry());
    if (!st) st = mt_cfg_build(b, mt_cfg_doc_root(doc), "cost", &obj, NULL);
    if (!st) st = mt_cost_clone(out, obj);
    mt_cfg_builder_free(b);
    mt_cfg_doc_free(doc);
    return st;
}

static double eval1(mt_model *m, mt_var (*build)(mtt_ctx *, void *), void *user,
                    const float *X, int64_t n, const int64_t *lab)
{
    mtt_ctx c;
    mtt_ctx_init(&c, m, lab != NULL, mt_model_output_dim(m), 0, 1);
    mt_var v = build(&c, user);
    mt_function *f = mtt_compile(&c, 1, &v, lab != NULL, MT_MODE_FAST_RUN);
    mt_array res = {0};
    mtt_call(f, X, n, mt_model_input_dim(m), lab, NULL, 0, 1, &res);
    double r = mtt_scalar(&res);
    mt_array_clear(&res);
    mt_function_free(f);
    mtt_ctx_clear(&c);
    return r;
}

static mt_var build_cost(mtt_ctx *c, void *user)
{
    mt_var v = MT_VAR_NONE;
    MT_CHECK_OK(mt_cost_expr(user, &c->mg, &v));
    return v;
}

/* ---------------------------------------------------------------- channels */

static const char *CHAN_MLP =
    "!obj:MLP {nvis: 4, layers: [\n"
    "  !obj:RectifiedLinear {layer_name: 'h0', dim: 3, irange: 1.},\n"
    "  !obj:Maxout {layer_name: 'h1', num_units: 2, num_pieces: 2, irange: 1.},\n"
    "  !obj:Softmax {layer_name: 'y', n_classes: 3, irange: 1.}]}";

MT_TEST(channel_names_and_values)
{
    mt_model *m = mtt_model(CHAN_MLP);
    mtt_ctx c;
    mtt_ctx_init(&c, m, true, 3, 0, 1);
    mt_channel_list cl = {0};
    MT_CHECK_OK(mt_model_channels(&c.mg, &cl));
    static const char *norms[6] = {"row_norms_min", "row_norms_mean", "row_norms_max",
                                   "col_norms_min", "col_norms_mean", "col_norms_max"};
    static const char *lin[12] = {"range_x_max_u", "range_x_mean_u", "range_x_min_u",
                                  "max_x_max_u",   "max_x_mean_u",   "max_x_min_u",
                                  "mean_x_max_u",  "mean_x_mean_u",  "mean_x_min_u",
                                  "min_x_max_u",   "min_x_mean_u",   "min_x_min_u"};
    static const char *mo[12] = {"p_max_x.max_u",   "p_max_x.mean_u",   "p_max_x.min_u",
                                 "p_min_x.max_u",   "p_min_x.mean_u",   "p_min_x.min_u",
                                 "p_range_x.max_u", "p_range_x.mean_u", "p_range_x.min_u",
                                 "p_mean_x.max_u",  "p_mean_x.mean_u",  "p_mean_x.min_u"};
    char want[64][96];
    int nw = 0;
    for (int i = 0; i < 6; i++) snprintf(want[nw++], 96, "h0_%s", norms[i]);
    for (int i = 0; i < 12; i++) snprintf(want[nw++], 96, "h0_%s", lin[i]);
    for (int i = 0; i < 6; i++) snprintf(want[nw++], 96, "h1_%s", norms[i]);
    for (int i = 0; i < 12; i++) snprintf(want[nw++], 96, "h1_%s", mo[i]);
    for (int i = 0; i < 6; i++) snprintf(want[nw++], 96, "y_%s", norms[i]);
    static const char *soft[5] = {"mean_max_class", "max_max_class", "min_max_class", "misclass",
                                  "nll"};
    for (int i = 0; i < 5; i++) snprintf(want[nw++], 96, "y_%s", soft[i]);
    MT_CHECK_EQ_INT(cl.n, nw);
    for (int i = 0; i < nw; i++) MT_CHECK_STR_EQ(cl.items[i].name, want[i]);
    MT_CHECK_EQ_INT(cl.items[0].reduce, MT_CHAN_NODATA);
    MT_CHECK_EQ_INT(cl.items[6].reduce, MT_CHAN_MEAN);
    /* values: y_nll is the default cost, y_misclass the error rate, h0_col_norms_max and
     * h0_max_x_max_u from the parameters and the batch */
    mt_var outs[6], cost;
    int idx_nll = nw - 1, idx_mis = nw - 2, idx_cn = 5, idx_mx = 9;
    MT_CHECK_STR_EQ(cl.items[idx_mx].name, "h0_max_x_max_u");
    MT_CHECK_OK(mt_model_default_cost(&c.mg, NULL, &cost));
    mt_var probs;
    MT_CHECK_OK(mt_model_fprop(&c.mg, NULL, &probs));
    outs[0] = cl.items[idx_nll].value;
    outs[1] = cl.items[idx_mis].value;
    outs[2] = cl.items[idx_cn].value;
    outs[3] = cl.items[idx_mx].value;
    outs[4] = cost;
    outs[5] = probs;
    mt_function *f = mtt_compile(&c, 6, outs, true, MT_MODE_FAST_RUN);
    float X[9 * 4];
    mtt_fill(X, 36, 17);
    int64_t lab[9] = {0, 1, 2, 0, 1, 2, 0, 1, 2};
    mt_array res[6] = {{0}};
    mtt_call(f, X, 9, 4, lab, NULL, 0, 6, res);
    MT_CHECK_CLOSE(mtt_scalar(&res[0]), mtt_scalar(&res[4]), 1e-6, 1e-6);
    double *p = mtt_to_double(&res[5]);
    int wrong = 0;
    for (int r = 0; r < 9; r++) {
        int best = 0;
        for (int k = 1; k < 3; k++)
            if (p[r * 3 + k] > p[r * 3 + best]) best = k;
        wrong += best != lab[r];
    }
    MT_CHECK_CLOSE(mtt_scalar(&res[1]), wrong / 9.0, 1e-6, 0);
    const float *W = mtt_param(m, "h0_W"), *b = mtt_param(m, "h0_b");
    double cn = 0, mx = -1e300;
    for (int j = 0; j < 3; j++) {
        double s = 0;
        for (int i = 0; i < 4; i++) s += (double)W[i * 3 + j] * W[i * 3 + j];
        cn = fmax(cn, sqrt(s));
        for (int r = 0; r < 9; r++) {
            double z = b[j];
            for (int i = 0; i < 4; i++) z += (double)X[r * 4 + i] * W[i * 3 + j];
            mx = fmax(mx, fmax(z, 0.0));
        }
    }
    MT_CHECK_CLOSE(mtt_scalar(&res[2]), cn, 1e-6, 1e-6);
    MT_CHECK_CLOSE(mtt_scalar(&res[3]), mx, 1e-6, 1e-6);
    mt_free(p);
    for (int i = 0; i < 6; i++) mt_array_clear(&res[i]);
    mt_function_free(f);
    mt_channel_list_clear(&cl);
    mtt_ctx_clear(&c);
    /* without targets: no misclass / nll */
    mtt_ctx_init(&c, m, false, 0, 0, 1);
    MT_CHECK_OK(mt_model_channels(&c.mg, &cl));
    MT_CHECK_EQ_INT(cl.n, nw - 2);
    mt_channel_list_clear(&cl);
    mtt_ctx_clear(&c);
    mt_model_free(m);
}

MT_TEST(sigmoid_output_channels)
{
    mt_model *m = mtt_model("!obj:MLP {nvis: 3, layers: [!obj:Sigmoid {layer_name: 'y', dim: 2, "
                            "irange: 1.}]}");
    mtt_ctx c;
    mtt_ctx_init(&c, m, false, 0, 2, 1);
    mt_channel_list cl = {0};
    MT_CHECK_OK(mt_model_channels(&c.mg, &cl));
    const char *tail[5] = {"y_01_loss", "y_kl", "y_precision", "y_recall", "y_f1"};
    MT_CHECK_EQ_INT(cl.n, 18 + 5);
    for (int i = 0; i < 5; i++) MT_CHECK_STR_EQ(cl.items[18 + i].name, tail[i]);
    mt_channel_list_clear(&cl);
    mtt_ctx_clear(&c);
    mt_model_free(m);
}

/* ---------------------------------------------------------------- round trip */

static const char *ROUND_TRIP[] = {
    "!obj:MLP {nvis: 5, seed: [1, 2, 3], batch_size: 10, layers: [\n"
    "  !obj:Tanh {layer_name: 'h0', dim: 4, irange: 0.5, init_bias: 0.1, W_lr_scale: 0.5},\n"
    "  !obj:RectifiedLinear {layer_name: 'h1', dim: 3, istdev: 0.7, left_slope: 0.1,\n"
    "      max_col_norm: 1.9365},\n"
    "  !obj:Sigmoid {layer_name: 'h2', dim: 3, sparse_init: 2, sparse_stdev: 0.3,\n"
    "      monitor_style: 'classification', use_bias: false},\n"
    "  !obj:Softplus {layer_name: 'h3', dim: 3, irange: 0.01, include_prob: 0.5},\n"
    "  !obj:Maxout {layer_name: 'h4', num_units: 3, num_pieces: 2, pool_stride: 1,\n"
    "      irange: .005, min_zero: true, b_lr_scale: 2.},\n"
    "  !obj:Linear {layer_name: 'h5', dim: 2, irange: 1e-3, max_row_norm: 3.,\n"
    "      use_abs_loss: true},\n"
    "  !obj:Softmax {layer_name: 'y', n_classes: 2, no_affine: true}]}",
    "!obj:MLP {input_space: !obj:Conv2DSpace {shape: [9, 8], channels: 3, axes: ['c', 0, 1, "
    "'b']},\n layers: [\n"
    "  !obj:ConvElemwise {layer_name: 'c0', output_channels: 4, kernel_shape: [3, 2],\n"
    "      kernel_stride: [2, 1], irange: 0.1, border_mode: 'full', tied_b: true,\n"
    "      nonlinearity: !obj:RectifierConvNonlinearity {left_slope: 0.2}},\n"
    "  !obj:ConvRectifiedLinear {layer_name: 'c1', output_channels: 2, kernel_shape: 2,\n"
    "      pool_shape: [2, 2], pool_stride: [1, 1], sparse_init: 3, max_kernel_norm: 2.,\n"
    "      pool_type: 'mean', left_slope: 0.01},\n"
    "  !obj:ConvElemwise {layer_name: 'c2', output_channels: 2, kernel_shape: [1, 1],\n"
    "      irange: 0.1, nonlinearity: !obj:SigmoidConvNonlinearity {}},\n"
    "  !obj:Softmax {layer_name: 'y', n_classes: 3, istdev: 0.05, max_col_norm: 1.}]}",
    "!obj:DenoisingAutoencoder {nvis: 7, nhid: 3, act_enc: 'sigmoid', act_dec: 'tanh',\n"
    "  tied_weights: true, istdev: 0.2, rng: 5,\n"
    "  corruptor: !obj:GaussianCorruptor {stdev: 0.25}}",
    "!obj:Autoencoder {nvis: 7, nhid: 3, act_enc: null, act_dec: null}",
    "!obj:pylearn2.models.softmax_regression.SoftmaxRegression {n_classes: 10, irange: 0.,\n"
    "  nvis: 784}",
    "!obj:MLP {nvis: 784, layers: [\n"
    "  !obj:PretrainedLayer {layer_name: 'h1', layer_content: !pkl: 'dae_l1.pkl'},\n"
    "  !obj:PretrainedLayer {layer_name: 'h2', layer_content: !pkl: 'dae_l2.pkl',\n"
    "      freeze_params: true},\n"
    "  !obj:Softmax {layer_name: 'y', n_classes: 10, irange: .005}]}",
};

static void same_params(mt_model *a, mt_model *b)
{
    MT_CHECK_EQ_INT(mt_model_n_params(a), mt_model_n_params(b));
    for (int32_t i = 0; i < mt_model_n_params(a); i++) {
        const mt_model_param *p = mt_model_param_const(a, i), *q = mt_model_param_const(b, i);
        MT_CHECK_STR_EQ(p->name, q->name);
        MT_CHECK_EQ_INT(p->value.ndim, q->value.ndim);
        for (int32_t d = 0; d < p->value.ndim; d++)
            MT_CHECK_EQ_INT(p->value.dims[d], q->value.dims[d]);
        MT_CHECK(p->is_weight == q->is_weight && p->frozen == q->frozen);
        MT_CHECK(p->lr_scale == q->lr_scale && p->constraint == q->constraint);
        MT_CHECK(p->constraint_limit == q->constraint_limit);
        /* initialization depends only on the seed and the names: equal values too */
        MT_CHECK(!memcmp(mt_buffer_host_ptr(p->value.buf), mt_buffer_host_ptr(q->value.buf),
                         mt_array_nbytes(&p->value)));
    }
}

MT_TEST(yaml_round_trip)
{
    for (size_t k = 0; k < sizeof(ROUND_TRIP) / sizeof(ROUND_TRIP[0]); k++) {
        mt_model *m1 = mtt_model(ROUND_TRIP[k]);
        mt_strbuf s1, s2;
        mt_strbuf_init(&s1);
        mt_strbuf_init(&s2);
        MT_CHECK_OK(mt_model_to_yaml(m1, &s1));
        mt_model *m2 = NULL;
        mt_status st = mtt_try_model(&m2, s1.data);
        if (st) mt_test_fail(__FILE__, __LINE__, "case %zu: %s\n%s", k, mt_last_error(), s1.data);
        MT_CHECK_OK(mt_model_to_yaml(m2, &s2));
        MT_CHECK_STR_EQ(s1.data, s2.data);
        MT_CHECK_STR_EQ(mt_model_type_name(m1), mt_model_type_name(m2));
        MT_CHECK_EQ_INT(mt_model_n_layers(m1), mt_model_n_layers(m2));
        for (int32_t i = 0; i < mt_model_n_layers(m1); i++)
            MT_CHECK_STR_EQ(mt_model_layer_name(m1, i), mt_model_layer_name(m2, i));
        MT_CHECK_EQ_INT(mt_model_output_dim(m1), mt_model_output_dim(m2));
        same_params(m1, m2);
        mt_strbuf_deinit(&s1);
        mt_strbuf_deinit(&s2);
        mt_model_free(m1);
        mt_model_free(m2);
    }
}

/* ---------------------------------------------------------------- errors */

MT_TEST(yaml_error_messages)
{
    mtt_expect_error("!obj:MLP {nvis: 4, layers: [!obj:Linear {layer_name: 'h', dim: 0, irange: 1.}]}",
                 MT_ERR_INVALID, "<model>:1:");
    mtt_expect_error("!obj:MLP {nvis: 4, layers: [!obj:Linear {layer_name: 'h', dim: 0, irange: 1.}]}",
                 MT_ERR_INVALID, "dim must be >= 1, got 0");
    mtt_expect_error("!obj:MLP {nvis: 4, layers: [!obj:Linear {layer_name: 'h', dim: 2, irnage: 1.}]}",
                 MT_ERR_INVALID, "did you mean 'irange'");
    mtt_expect_error("!obj:MLP {nvis: 4, layers: [!obj:Linear {layer_name: 'h', dim: 2, irange: 1.,"
                 " istdev: 1.}]}", MT_ERR_INVALID, "give only one of irange, istdev");
    mtt_expect_error("!obj:MLP {nvis: 4, layers: [!obj:Softmax {layer_name: 'y', n_classes: 2}]}",
                 MT_ERR_INVALID, "give one of irange, istdev or sparse_init");
    mtt_expect_error("!obj:MLP {nvis: 4, layers: [!obj:Linear {layer_name: 'h', dim: 2}]}",
                 MT_ERR_INVALID, "give one of irange, istdev or sparse_init");
    mtt_expect_error("!obj:MLP {nvis: 4, layers: [!obj:Linear {layer_name: 'h', dim: 2, irange: 1.},"
                 " !obj:Linear {layer_name: 'h', dim: 2, irange: 1.}]}", MT_ERR_INVALID,
                 "two or more layers named 'h'");
    mtt_expect_error("!obj:MLP {nvis: 4, layers: [!obj:Linear {layer_name: 'h', dim: 4, irange: 1.},"
                 " !obj:ConvRectifiedLinear {layer_name: 'c', output_channels: 2, kernel_shape: "
                 "[1, 1], pool_shape: [1, 1], pool_stride: [1, 1], irange: 1.}]}", MT_ERR_INVALID,
                 "expects a Conv2DSpace input");
    mtt_expect_error("!obj:MLP {input_space: !obj:Conv2DSpace {shape: [6, 6], num_channels: 1}, "
                 "layers: [!obj:ConvRectifiedLinear {layer_name: 'c', output_channels: 2, "
                 "kernel_shape: [3, 3], pool_shape: [5, 5], pool_stride: [2, 2], irange: 1.}]}",
                 MT_ERR_SHAPE, "exceeds the detector layer 4x4");
    mtt_expect_error("!obj:MLP {nvis: 3, input_space: !obj:VectorSpace {dim: 3}, layers: "
                 "[!obj:Linear {layer_name: 'h', dim: 2, irange: 1.}]}", MT_ERR_INVALID,
                 "give nvis or input_space, not both");
    mtt_expect_error("!obj:MLP {input_space: !obj:Conv2DSpace {shape: [6, 6], num_channels: 1, "
                 "axes: ['b', 0, 0, 'c']}, layers: [!obj:Linear {layer_name: 'h', dim: 2, "
                 "irange: 1.}]}", MT_ERR_INVALID, "permutation");
    mtt_expect_error("!obj:Autoencoder {nvis: 3, nhid: 2, act_enc: 'swish', act_dec: null}",
                 MT_ERR_INVALID, "unknown activation 'swish'");
    mtt_expect_error("!obj:DenoisingAutoencoder {nvis: 3, nhid: 2, act_enc: null, act_dec: null, "
                 "corruptor: !obj:BinomialCorruptor {corruption_level: 1.5}}", MT_ERR_INVALID,
                 "corruption_level must be in [0, 1]");
    mtt_expect_error("!obj:MLP {nvis: 4, layers: [!obj:Maxout {layer_name: 'h', num_units: 4, "
                 "num_pieces: 3, pool_stride: 2, irange: 1.}]}", MT_ERR_INVALID,
                 "not divisible by pool_stride 2");
    mtt_expect_error("!obj:MLP {nvis: 4, layers: [!obj:VectorSpace {dim: 3}]}", MT_ERR_INVALID,
                 "layer");
}

/* mt_cfg_validate (a dry run) already reports the layer rules; search tags pass. */
MT_TEST(validation_checks_layer_rules)
{
    MT_CHECK_ERR(mtt_validate_only("!obj:MLP {nvis: 4, layers: [\n  !obj:Linear {layer_name: 'h', "
                               "dim: 0, irange: 1.}]}"),
                 MT_ERR_INVALID, "job.yaml:2:33: Linear 'h': dim must be >= 1, got 0");
    MT_CHECK_ERR(mtt_validate_only("!obj:MLP {nvis: 4, layers: [!obj:Softmax {layer_name: 'y', "
                               "n_classes: 3}]}"),
                 MT_ERR_INVALID, "give one of irange, istdev or sparse_init");
    MT_CHECK_ERR(mtt_validate_only("!obj:MLP {nvis: 4, layers: [!obj:ConvElemwise {layer_name: 'c', "
                               "output_channels: 3, kernel_shape: [2, 2], irange: 1., "
                               "border_mode: 'same', nonlinearity: "
                               "!obj:TanhConvNonlinearity {}}]}"),
                 MT_ERR_INVALID, "border_mode must be 'valid' or 'full', got 'same'");
    MT_CHECK_ERR(mtt_validate_only("!obj:Autoencoder {nvis: 3, nhid: 2, act_enc: 'tanhh', "
                               "act_dec: null}"), MT_ERR_INVALID, "unknown activation 'tanhh'");
    MT_CHECK_OK(mtt_validate_only("!obj:MLP {nvis: 4, layers: [!obj:RectifiedLinear {layer_name: "
                              "'h', dim: !randint [10, 100], irange: !loguniform [0.001, 0.1]}, "
                              "!obj:Softmax {layer_name: 'y', n_classes: 3, irange: 0.}]}"));
}

MT_TEST(check_data_errors)
{
    mt_model *m = mtt_model("!obj:MLP {nvis: 784, layers: [!obj:Softmax {layer_name: 'y', "
                            "n_classes: 10, irange: 0.}]}");
    mt_dataset_info d;
    memset(&d, 0, sizeof(d));
    d.n = 100;
    d.dim = 784;
    d.has_y = true;
    d.y_is_labels = true;
    d.n_classes = 10;
    d.name = "MNIST(train)";
    MT_CHECK_OK(mt_model_check_data(m, &d));
    d.n_classes = 12;
    MT_CHECK_ERR(mt_model_check_data(m, &d), MT_ERR_SHAPE,
                 "output layer 'y' (Softmax) has n_classes 10 but MNIST(train) has labels of 12");
    d.n_classes = 10;
    d.dim = 100;
    MT_CHECK_ERR(mt_model_check_data(m, &d), MT_ERR_SHAPE,
                 "MLP expects 784 input features (nvis) but MNIST(train) has 100");
    d.dim = 784;
    d.y_is_labels = false;
    d.y_dim = 3;
    MT_CHECK_ERR(mt_model_check_data(m, &d), MT_ERR_SHAPE, "targets of 3 columns");
    mt_model_free(m);
    m = mtt_model("!obj:MLP {input_space: !obj:Conv2DSpace {shape: [28, 28], num_channels: 1}, "
                  "layers: [!obj:Softmax {layer_name: 'y', n_classes: 10, irange: 0.}]}");
    d.y_is_labels = true;
    d.topo_ndim = 3;
    d.topo[0] = 28;
    d.topo[1] = 28;
    d.topo[2] = 1;
    MT_CHECK_OK(mt_model_check_data(m, &d));
    d.topo[0] = 14;
    d.topo[1] = 56;
    MT_CHECK_ERR(mt_model_check_data(m, &d), MT_ERR_SHAPE,
                 "Conv2DSpace is 28x28 with 1 channel(s) but MNIST(train) holds 14x56 images");
    mt_model_free(m);
}

/* ---------------------------------------------------------------- costs from YAML */

MT_TEST(costs_from_yaml)
{
    mt_model *m = mtt_model(CHAN_MLP);
    float X[4 * 4];
    mtt_fill(X, 16, 2);
    int64_t lab[4] = {2, 1, 0, 2};
    mt_cost *def, *sum, *ex, *meth;
    MT_CHECK_OK(cost_from_yaml(&def, "!obj:pylearn2.costs.mlp.Default {}"));
    MT_CHECK_OK(cost_from_yaml(&meth, "!obj:pylearn2.costs.cost.MethodCost {method: "
                                      "'cost_from_X'}"));
    MT_CHECK_OK(cost_from_yaml(&sum, "!obj:pylearn2.costs.cost.SumOfCosts {costs: [\n"
                                     "  !obj:pylearn2.costs.mlp.Default {},\n"
                                     "  [0.01, !obj:pylearn2.costs.mlp.WeightDecay "
                                     "{coeffs: {h0: 1., h1: 2.}}]]}"));
    MT_CHECK_OK(cost_from_yaml(&ex, "!obj:ExpressionCost {expr: 'default_cost + 0.01 * "
                                    "(sum(h0_W ** 2) + 2 * sum(h1_W ** 2))'}"));
    double d = eval1(m, build_cost, def, X, 4, lab);
    MT_CHECK_CLOSE(eval1(m, build_cost, meth, X, 4, lab), d, 0, 1e-6);
    double s = eval1(m, build_cost, sum, X, 4, lab);
    MT_CHECK_CLOSE(eval1(m, build_cost, ex, X, 4, lab), s, 1e-6, 1e-5);
    MT_CHECK(s > d);
    MT_CHECK(mt_cost_needs_targets(ex, m));
    mt_cost_free(ex);
    /* an expression over y_hat and y: the NLL written out */
    MT_CHECK_OK(cost_from_yaml(&ex, "!obj:ExpressionCost {expr: '-mean(log(sum(y_hat * "
                                    "one_hot(y, 3), axis=1)))'}"));
    MT_CHECK_CLOSE(eval1(m, build_cost, ex, X, 4, lab), d, 1e-5, 1e-4);
    mt_cost_free(ex);
    /* expression errors: syntax with the caret, non-scalar, unknown names */
    mtt_ctx c;
    mtt_ctx_init(&c, m, true, 3, 0, 1);
    mt_var v;
    MT_CHECK_OK(mt_cost_expression(&ex, "default_cost +"));
    MT_CHECK_ERR(mt_cost_expr(ex, &c.mg, &v), MT_ERR_INVALID, "ExpressionCost: 1:");
    mt_cost_free(ex);
    MT_CHECK_OK(mt_cost_expression(&ex, "y_hat * 2"));
    MT_CHECK_ERR(mt_cost_expr(ex, &c.mg, &v), MT_ERR_SHAPE, "must be a scalar");
    mt_cost_free(ex);
    MT_CHECK_OK(mt_cost_expression(&ex, "sum(h9_W)"));
    MT_CHECK_ERR(mt_cost_expr(ex, &c.mg, &v), MT_ERR_INVALID, "h9_W");
    mt_cost_free(ex);
    mtt_ctx_clear(&c);
    /* YAML errors */
    mt_cost *bad = NULL;
    MT_CHECK_ERR(cost_from_yaml(&bad, "!obj:MethodCost {method: 'cost_from_Y'}"), MT_ERR_INVALID,
                 "valid: cost_from_X");
    MT_CHECK_ERR(cost_from_yaml(&bad, "!obj:SumOfCosts {costs: [[1, 2, 3]]}"), MT_ERR_INVALID,
                 "[coefficient, cost]");
    MT_CHECK_OK(cost_from_yaml(&bad, "!obj:Dropout {input_include_probs: {h3: .8}}"));
    MT_CHECK_ERR(mt_cost_check(bad, m), MT_ERR_INVALID, "did you mean 'h");
    mt_cost_free(bad);
    MT_CHECK_OK(cost_from_yaml(&bad, "!obj:MeanSquaredReconstructionError {}"));
    MT_CHECK_ERR(mt_cost_check(bad, m), MT_ERR_UNSUPPORTED, "needs an autoencoder");
    mt_cost_free(bad);
    mt_model *relu = mtt_model("!obj:MLP {nvis: 2, layers: [!obj:RectifiedLinear {layer_name: "
                               "'h', dim: 2, irange: 1.}]}");
    MT_CHECK(!mt_model_needs_targets(relu));
    MT_CHECK_ERR(mt_cost_check(def, relu), MT_ERR_UNSUPPORTED, "has no cost");
    mt_model_free(relu);
    mt_cost_free(def);
    mt_cost_free(meth);
    mt_cost_free(sum);
    mt_model_free(m);
}

/* ---------------------------------------------------------------- conformance files */

/* Builds the model subtree (and the algorithm's cost) of one conformance file. Returns false
 * when the file has no model of this module (push_monitor, dataset-only files). */
static bool conformance_file(const char *dir, const char *file)
{
    char path[1024], vals[8][1100];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    static const char *names[] = {"train_stop", "valid_stop", "test_stop", "dim_h0", "dim_h1",
                                  "sparse_init_h1", "max_epochs", "save_path", "batch_size",
                                  "output_channels_h2", "output_channels_h3", "nhid", "nvis",
                                  "monitoring_batches", "dataset", "model", "algorithm"};
    static const char *values[] = {"50000", "60000", "10000", "500", "1000", "15", "3", "/tmp",
                                   "100", "64", "64", "16", "16", "10"};
    mt_cfg_var params[17];
    for (int i = 0; i < 14; i++) params[i] = (mt_cfg_var){names[i], values[i]};
    const char *parts[3] = {"sr_dataset", "sr_model", "sr_algorithm"};
    for (int i = 0; i < 3; i++) {
        snprintf(vals[i], sizeof(vals[i]), "@%s/tutorials__softmax_regression__%s.yaml", dir,
                 parts[i]);
        params[14 + i] = (mt_cfg_var){names[14 + i], vals[i]};
    }
    mt_cfg_var vars[16];
    char *store = NULL;
    mt_cfg_options o;
    mt_cfg_options_init(&o);
    o.no_environment = true;
    o.n_params = 17;
    o.params = params;
    o.n_vars = mt_cfg_job_vars(vars, 16, path, 0, &store);
    o.vars = vars;
    char *text = NULL;
    size_t len = 0;
    MT_CHECK_OK(mt_file_read_all(path, &text, &len, 0));
    mt_cfg_doc *doc = NULL;
    mt_status st = mt_cfg_load_string(&doc, text, len, path, &o);
    if (st) mt_test_fail(__FILE__, __LINE__, "%s: %s", file, mt_last_error());
    const mt_cfg_node *root = mt_cfg_doc_root(doc);
    const mt_cfg_node *model = root, *cost = NULL;
    if (root->kind == MT_CFG_OBJ && strstr(root->tag, "Train")) {
        model = mt_cfg_get(root, "model");
        const mt_cfg_node *alg = mt_cfg_get(root, "algorithm");
        cost = alg ? mt_cfg_get(alg, "cost") : NULL;
    }
    bool built = false;
    const mt_component *comp = model && model->kind == MT_CFG_OBJ
                                   ? mt_cfg_registry_find(mtt_registry(), model->tag)
                                   : NULL;
    if (comp && mt_component_is_kind(comp, "model")) {
        mt_cfg_builder *b = NULL;
        void *obj = NULL;
        st = mt_cfg_validate(mtt_registry(), model, "model");
        if (!st) st = mt_cfg_builder_new(&b, mtt_registry());
        if (!st) st = mt_cfg_build(b, model, "model", &obj, NULL);
        if (st) mt_test_fail(__FILE__, __LINE__, "%s: %s", file, mt_last_error());
        mt_model *m = obj;
        MT_CHECK(mt_model_n_params(m) > 0);
        mt_dataset_info d;
        memset(&d, 0, sizeof(d));
        d.dim = 784;
        d.topo_ndim = 3;
        d.topo[0] = d.topo[1] = 28;
        d.topo[2] = 1;
        d.has_y = true;
        d.y_is_labels = true;
        d.n_classes = 10;
        if (mt_model_input_dim(m) == 784) MT_CHECK_OK(mt_model_check_data(m, &d));
        if (cost) {
            void *cobj = NULL;
            st = mt_cfg_validate(mtt_registry(), cost, "cost");
            if (!st) st = mt_cfg_build(b, cost, "cost", &cobj, NULL);
            if (!st) st = mt_cost_check(cobj, m);
            if (st) mt_test_fail(__FILE__, __LINE__, "%s: cost: %s", file, mt_last_error());
        }
        /* the model goes into a graph with its default cost and channels */
        mt_graph *g;
        MT_CHECK_OK(mt_graph_new(&g));
        mt_model_graph mg;
        MT_CHECK_OK(mt_model_graph_init(&mg, m, g, &d, 100, 1));
        mt_var v;
        MT_CHECK_OK(mt_model_default_cost(&mg, NULL, &v));
        mt_channel_list cl = {0};
        MT_CHECK_OK(mt_model_channels(&mg, &cl));
        if (mt_model_needs_targets(m)) MT_CHECK(cl.n > 5);
        mt_channel_list_clear(&cl);
        mt_model_graph_clear(&mg);
        mt_graph_free(g);
        mt_cfg_builder_free(b);
        built = true;
    } else {
        MT_CHECK(!model || model->kind != MT_CFG_OBJ || strstr(model->tag, "push_monitor") ||
                 strstr(model->tag, "Dataset") || strstr(model->tag, "MNIST") ||
                 strstr(model->tag, "BGD"));
    }
    mt_cfg_doc_free(doc);
    mt_free(text);
    mt_cfg_vars_free(store);
    return built;
}

MT_TEST(conformance_models_build)
{
    const char *dir = MT_CONFORMANCE_DIR;
    DIR *dp = *dir ? opendir(dir) : NULL;
    if (!dp) MT_SKIP("the conformance directory is not available");
    int built = 0, files = 0;
    struct dirent *e;
    while ((e = readdir(dp)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n < 6 || strcmp(e->d_name + n - 5, ".yaml") != 0) continue;
        files++;
        /* sr_algorithm.yaml is a fragment (its *train alias points into sr_train.yaml): it is
         * loaded as part of sr_train */
        if (strstr(e->d_name, "sr_algorithm")) continue;
        built += conformance_file(dir, e->d_name);
    }
    closedir(dp);
    MT_CHECK(files >= 14);
    /* every file with a model of this module: dropout, maxout, conv, MLP parts 2-4, softmax
     * regression (model and train), the three autoencoder tutorials */
    MT_CHECK_EQ_INT(built, 11);
}
