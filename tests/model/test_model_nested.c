/* Layers holding layers and integer inputs: CompositeLayer (shared input, inputs_to_layers
 * routing of a CompositeSpace input), FlattenerLayer, an MLP nested as a layer, ProjectionLayer
 * on IndexSpace inputs (alone and as a component of a CompositeSpace). For each: parameter
 * names and shapes, forward values against loops in double, gradients by central differences
 * with the forward pass in float64 (mt_verify_grad, tolerance 1e-5), channel names, weight
 * decay and norm constraints through the nesting, the YAML round trip, and the errors (with
 * file:line:column where the YAML is at fault). Also CompositeDataset and the dataset checks
 * of a CompositeSpace input. */
#include <stdio.h>
#include <string.h>

#include "model_test_util.h"

/* Gradient check of out (built by the caller in a float64 model graph) with respect to X and
 * every parameter. */
static void check_grads(mtt_ctx *c, mt_var out, const float *X, int64_t n, const int64_t *lab,
                        bool f64)
{
    mt_model *m = c->m;
    int64_t xd[2] = {n, mt_model_input_dim(m)};
    mt_array ax = {0}, ay = {0};
    MT_CHECK_OK(mt_array_from_host(&ax, mtt_host(), MT_FLOAT32, 2, xd, X));
    int32_t np = mt_model_n_params(m), k = 0;
    mt_var *ins = mt_calloc((size_t)np + 2, sizeof(mt_var));
    const mt_array **vals = mt_calloc((size_t)np + 2, sizeof(mt_array *));
    ins[k] = c->mg.X;
    vals[k++] = &ax;
    if (lab) {
        MT_CHECK_OK(mt_array_from_host(&ay, mtt_host(), MT_INT64, 1, &n, lab));
        ins[k] = c->mg.y;
        vals[k++] = &ay;
    }
    for (int32_t i = 0; i < np; i++) {
        ins[k] = c->mg.params[i];
        vals[k++] = &mt_model_param_at(m, i)->value;
    }
    mt_verify_grad_options o;
    mt_verify_grad_options_init(&o);
    if (f64) {
        o.eps = 1e-4; /* steps in float32 inputs; the function computed in float64 */
        o.abs_tol = o.rel_tol = 1e-5;
    }
    mt_verify_grad_report rep;
    mt_status st = mt_verify_grad(c->g, out, k, ins, vals, &o, &rep);
    if (st) mt_test_fail(__FILE__, __LINE__, "verify_grad: %s", mt_last_error());
    MT_CHECK(rep.passed);
    if (f64) MT_CHECK(rep.max_abs_err < 1e-5 || rep.max_rel_err < 1e-5);
    mt_free(ins);
    mt_free(vals);
    mt_array_clear(&ax);
    mt_array_clear(&ay);
}

/* The model's output (float64 forward) checked by central differences; also the default
 * cost when lab is given. */
static void grad_model(mt_model *m, const float *X, int64_t n, const int64_t *lab,
                       int64_t n_classes)
{
    mtt_ctx c;
    mtt_ctx_init(&c, m, lab != NULL, n_classes, 0, 5);
    MT_CHECK_OK(mt_model_graph_set_compute(&c.mg, MT_FLOAT64));
    mt_var out;
    MT_CHECK_OK(mt_model_fprop(&c.mg, NULL, &out));
    MT_CHECK(mt_graph_type(c.g, out)->dtype == MT_FLOAT64);
    check_grads(&c, out, X, n, lab, true);
    mtt_ctx_clear(&c);
}

/* Output of top-level layer `layer` for X, in double (float32 forward pass). */
static double *forward(mt_model *m, const float *X, int64_t n, int32_t layer)
{
    mtt_ctx c;
    mtt_ctx_init(&c, m, false, 0, 0, 3);
    mt_var outs[8];
    MT_CHECK_OK(mt_model_fprop_layers(&c.mg, NULL, outs));
    mt_function *f = mtt_compile(&c, 1, &outs[layer], false, MT_MODE_FAST_RUN);
    mt_array res = {0};
    mtt_call(f, X, n, mt_model_input_dim(m), NULL, NULL, 0, 1, &res);
    double *d = mtt_to_double(&res);
    mt_array_clear(&res);
    mt_function_free(f);
    mtt_ctx_clear(&c);
    return d;
}

/* act(x[cols] W + b) for one example: x has in features, W [in, units]. */
static void dense_ref(const float *x, int64_t in, const float *W, const float *b, int64_t units,
                      int act, double *out)
{
    for (int64_t j = 0; j < units; j++) {
        double z = b ? b[j] : 0.0;
        for (int64_t i = 0; i < in; i++) z += (double)x[i] * W[i * units + j];
        out[j] = act == 1 ? tanh(z) : act == 2 ? 1.0 / (1.0 + exp(-z)) : z;
    }
}

static bool has_channel(const mt_channel_list *l, const char *name)
{
    for (int32_t i = 0; i < l->n; i++)
        if (!strcmp(l->items[i].name, name)) return true;
    return false;
}

static mt_channel_list channels_of(mt_model *m, int64_t n_classes)
{
    mtt_ctx c;
    mtt_ctx_init(&c, m, n_classes > 0, n_classes, 0, 1);
    mt_channel_list l = {0};
    MT_CHECK_OK(mt_model_channels(&c.mg, &l));
    mtt_ctx_clear(&c);
    return l;
}

/* ---------------------------------------------------------------- CompositeLayer */

static const char *COMPOSITE_MLP =
    "!obj:pylearn2.models.mlp.MLP {nvis: 5, layers: [\n"
    "  !obj:pylearn2.models.mlp.FlattenerLayer {raw_layer:\n"
    "    !obj:pylearn2.models.mlp.CompositeLayer {layer_name: 'comp', layers: [\n"
    "      !obj:pylearn2.models.mlp.Tanh {layer_name: 'a', dim: 3, irange: 0.8, init_bias: 0.1},\n"
    "      !obj:pylearn2.models.mlp.Linear {layer_name: 'b', dim: 2, irange: 0.8,\n"
    "                                       max_col_norm: 0.5}]}},\n"
    "  !obj:pylearn2.models.mlp.Softmax {layer_name: 'y', n_classes: 3, irange: 0.5}]}";

MT_TEST(composite_layer_shares_the_input)
{
    mt_model *m = mtt_model(COMPOSITE_MLP);
    MT_CHECK_EQ_INT(mt_model_n_layers(m), 2);
    MT_CHECK_STR_EQ(mt_model_layer_name(m, 0), "comp"); /* the flattener takes its raw name */
    MT_CHECK_EQ_INT(mt_model_n_params(m), 6);
    const char *names[6] = {"comp/a_W", "comp/a_b", "comp/b_W", "comp/b_b", "y_W", "y_b"};
    for (int i = 0; i < 6; i++)
        MT_CHECK_STR_EQ(mt_model_param_const(m, i)->name, names[i]);
    const mt_array *Wa = mtt_param_array(m, "comp/a_W"), *Wy = mtt_param_array(m, "y_W");
    MT_CHECK(Wa->dims[0] == 5 && Wa->dims[1] == 3);
    MT_CHECK(Wy->dims[0] == 5 && Wy->dims[1] == 3); /* 3 + 2 flattened features */
    const mt_model_param *pb = mt_model_param_const(m, mt_model_find_param(m, "comp/b_W"));
    MT_CHECK(pb->constraint == MT_NORM_MAX_COL && pb->constraint_limit == 0.5);
    MT_CHECK_EQ_INT(pb->layer, 0);
    float X[4 * 5];
    mtt_fill(X, 20, 17);
    double *got = forward(m, X, 4, 0);
    for (int r = 0; r < 4; r++) {
        double ref[5];
        dense_ref(X + r * 5, 5, mtt_param(m, "comp/a_W"), mtt_param(m, "comp/a_b"), 3, 1, ref);
        dense_ref(X + r * 5, 5, mtt_param(m, "comp/b_W"), mtt_param(m, "comp/b_b"), 2, 0, ref + 3);
        MT_CHECK_ALLCLOSE(got + r * 5, ref, 5, 1e-6, 1e-5);
    }
    mt_free(got);
    mtt_fill(mtt_param(m, "y_b"), 3, 4);
    int64_t lab[4] = {0, 2, 1, 2};
    grad_model(m, X, 4, lab, 3);
    /* the float32 default cost too, with the usual float32 tolerances */
    mtt_ctx c;
    mtt_ctx_init(&c, m, true, 3, 0, 5);
    mt_var cost;
    MT_CHECK_OK(mt_model_default_cost(&c.mg, NULL, &cost));
    check_grads(&c, cost, X, 4, lab, false);
    mtt_ctx_clear(&c);
    mt_channel_list l = channels_of(m, 3);
    MT_CHECK(has_channel(&l, "comp_a_col_norms_max"));
    MT_CHECK(has_channel(&l, "comp_b_max_x_max_u"));
    MT_CHECK(has_channel(&l, "y_misclass"));
    MT_CHECK(!has_channel(&l, "comp_col_norms_max"));
    mt_channel_list_clear(&l);
    mt_model_free(m);
}

MT_TEST(composite_layer_routes_inputs)
{
    /* component 2 is not a key: Pylearn2 gives it to every sub-layer */
    mt_model *m = mtt_model(
        "!obj:MLP {input_space: !obj:CompositeSpace {components: [\n"
        "    !obj:VectorSpace {dim: 3}, !obj:VectorSpace {dim: 2}, !obj:VectorSpace {dim: 4}]},\n"
        "  layers: [!obj:CompositeLayer {layer_name: 'c', inputs_to_layers: {0: [0], 1: [1]},\n"
        "    layers: [!obj:Sigmoid {layer_name: 'p', dim: 2, irange: 0.7},\n"
        "             !obj:Tanh {layer_name: 'q', dim: 3, istdev: 0.6}]},\n"
        "  !obj:Linear {layer_name: 'o', dim: 2, irange: 0.5}]}");
    MT_CHECK_EQ_INT(mt_model_input_dim(m), 9);
    const mt_array *Wp = mtt_param_array(m, "c/p_W"), *Wq = mtt_param_array(m, "c/q_W");
    MT_CHECK(Wp->dims[0] == 7 && Wq->dims[0] == 6); /* [3 + 4], [2 + 4] inputs */
    MT_CHECK_EQ_INT(mtt_param_array(m, "o_W")->dims[0], 5);
    float X[3 * 9];
    mtt_fill(X, 27, 23);
    double *got = forward(m, X, 3, 0);
    for (int r = 0; r < 3; r++) {
        const float *x = X + r * 9;
        float xp[7], xq[6];
        memcpy(xp, x, 3 * sizeof(float));
        memcpy(xp + 3, x + 5, 4 * sizeof(float));
        memcpy(xq, x + 3, 2 * sizeof(float));
        memcpy(xq + 2, x + 5, 4 * sizeof(float));
        double ref[5];
        dense_ref(xp, 7, mtt_param(m, "c/p_W"), mtt_param(m, "c/p_b"), 2, 2, ref);
        dense_ref(xq, 6, mtt_param(m, "c/q_W"), mtt_param(m, "c/q_b"), 3, 1, ref + 2);
        MT_CHECK_ALLCLOSE(got + r * 5, ref, 5, 1e-6, 1e-5);
    }
    mt_free(got);
    grad_model(m, X, 3, NULL, 0);
    mt_model_free(m);
    /* routing errors */
    mt_model *bad;
    MT_CHECK_ERR(mtt_try_model(&bad, "!obj:MLP {nvis: 4, layers: [!obj:CompositeLayer "
                                     "{layer_name: 'c', inputs_to_layers: {0: [0]}, layers: "
                                     "[!obj:Linear {layer_name: 'p', dim: 2, irange: 1.}]}]}"),
                 MT_ERR_INVALID, "maps the components of a CompositeSpace input");
    MT_CHECK_ERR(mtt_try_model(&bad, "!obj:MLP {input_space: !obj:CompositeSpace {components: "
                                     "[!obj:VectorSpace {dim: 3}]}, layers: [!obj:CompositeLayer "
                                     "{layer_name: 'c', inputs_to_layers: {2: [0]}, layers: "
                                     "[!obj:Linear {layer_name: 'p', dim: 2, irange: 1.}]}]}"),
                 MT_ERR_INVALID, "has the key 2 (0-based) but the input space has only 1");
    MT_CHECK_ERR(mtt_try_model(&bad, "!obj:MLP {input_space: !obj:CompositeSpace {components: "
                                     "[!obj:VectorSpace {dim: 3}]}, layers: [!obj:CompositeLayer "
                                     "{layer_name: 'c', inputs_to_layers: {0: [0]}, layers: "
                                     "[!obj:Linear {layer_name: 'p', dim: 2, irange: 1.}, "
                                     "!obj:Linear {layer_name: 'q', dim: 2, irange: 1.}]}]}"),
                 MT_ERR_INVALID, "gives sub-layer 1 ('q') no input component");
}

/* ---------------------------------------------------------------- nested MLP */

MT_TEST(nested_mlp_as_a_layer)
{
    mt_model *m = mtt_model(
        "!obj:MLP {nvis: 4, layers: [\n"
        "  !obj:pylearn2.models.mlp.MLP {layer_name: 'inner', layers: [\n"
        "    !obj:Tanh {layer_name: 'h0', dim: 3, irange: 0.9},\n"
        "    !obj:Sigmoid {layer_name: 'h1', dim: 3, irange: 0.9}]},\n"
        "  !obj:MLP {layer_name: 'out', layers: [\n"
        "    !obj:Softmax {layer_name: 'y', n_classes: 2, irange: 0.5}]}]}");
    const char *names[6] = {"inner/h0_W", "inner/h0_b", "inner/h1_W", "inner/h1_b", "out/y_W",
                            "out/y_b"};
    MT_CHECK_EQ_INT(mt_model_n_params(m), 6);
    for (int i = 0; i < 6; i++)
        MT_CHECK_STR_EQ(mt_model_param_const(m, i)->name, names[i]);
    MT_CHECK(mt_model_needs_targets(m)); /* the output layer is out/y, a Softmax */
    MT_CHECK_EQ_INT(mt_model_output_dim(m), 2);
    float X[5 * 4];
    mtt_fill(X, 20, 31);
    double *got = forward(m, X, 5, 0);
    for (int r = 0; r < 5; r++) {
        double h0[3], h1[3];
        dense_ref(X + r * 4, 4, mtt_param(m, "inner/h0_W"), mtt_param(m, "inner/h0_b"), 3, 1, h0);
        float h0f[3] = {(float)h0[0], (float)h0[1], (float)h0[2]};
        dense_ref(h0f, 3, mtt_param(m, "inner/h1_W"), mtt_param(m, "inner/h1_b"), 3, 2, h1);
        MT_CHECK_ALLCLOSE(got + r * 3, h1, 3, 1e-6, 1e-5);
    }
    mt_free(got);
    int64_t lab[5] = {1, 0, 0, 1, 1};
    grad_model(m, X, 5, lab, 2);
    mt_channel_list l = channels_of(m, 2);
    MT_CHECK(has_channel(&l, "inner_h0_row_norms_min"));
    MT_CHECK(has_channel(&l, "inner_h1_range_x_max_u"));
    MT_CHECK(has_channel(&l, "out_y_misclass"));
    MT_CHECK(has_channel(&l, "out_y_nll"));
    mt_channel_list_clear(&l);
    mt_model *bad;
    MT_CHECK_ERR(mtt_try_model(&bad, "!obj:MLP {nvis: 4, layers: [!obj:MLP {nvis: 4, layers: "
                                     "[!obj:Linear {layer_name: 'h', dim: 2, irange: 1.}]}]}"),
                 MT_ERR_INVALID, "<model>:1:29: MLP: an MLP used as a layer needs a layer_name");
    MT_CHECK_ERR(mtt_try_model(&bad, "!obj:MLP {nvis: 4, layers: [!obj:MLP {layer_name: 'i', "
                                     "seed: 3, layers: [!obj:Linear {layer_name: 'h', dim: 2, "
                                     "irange: 1.}]}]}"),
                 MT_ERR_INVALID, "draws its parameters from the outer MLP's seed");
    MT_CHECK_ERR(mtt_try_model(&bad, "!obj:MLP {nvis: 4, layers: [!obj:MLP {layer_name: 'i', "
                                     "layers: [!obj:Linear {layer_name: 'h', dim: 2, irange: 1.}, "
                                     "!obj:Linear {layer_name: 'h', dim: 2, irange: 1.}]}]}"),
                 MT_ERR_INVALID, "two or more layers named 'h'");
    mt_model_free(m);
}

/* ---------------------------------------------------------------- ProjectionLayer */

MT_TEST(projection_layer_embeds_indices)
{
    mt_model *m = mtt_model(
        "!obj:MLP {input_space: !obj:pylearn2.space.IndexSpace {dim: 3, max_labels: 7},\n"
        "  layers: [!obj:pylearn2.sandbox.nlp.models.mlp.ProjectionLayer {layer_name: 'proj',\n"
        "             dim: 4, irange: 0.5},\n"
        "           !obj:Softmax {layer_name: 'y', n_classes: 2, irange: 0.5}]}");
    const mt_array *W = mtt_param_array(m, "proj_W");
    MT_CHECK(W->ndim == 2 && W->dims[0] == 7 && W->dims[1] == 4);
    MT_CHECK_EQ_INT(mt_model_find_param(m, "proj_b"), -1);
    MT_CHECK_EQ_INT(mtt_param_array(m, "y_W")->dims[0], 12);
    MT_CHECK_EQ_INT(mt_model_input_dim(m), 3);
    const float *w = mtt_param(m, "proj_W");
    for (int i = 0; i < 28; i++) MT_CHECK(fabsf(w[i]) <= 0.5f);
    /* repeated indices in a row and across rows: the gradient adds them up */
    float X[4 * 3] = {0, 6, 0, 3, 3, 3, 5, 1, 2, 6, 0, 4};
    double *got = forward(m, X, 4, 0);
    for (int r = 0; r < 4; r++)
        for (int k = 0; k < 3; k++)
            for (int d = 0; d < 4; d++)
                MT_CHECK(got[r * 12 + k * 4 + d] == w[(int)X[r * 3 + k] * 4 + d]);
    mt_free(got);
    /* indices as floats are truncated: a quarter above keeps them away from the steps of the
     * central differences, whose derivative with respect to an index is zero */
    float Xq[4 * 3];
    for (int i = 0; i < 12; i++) Xq[i] = X[i] + 0.25f;
    int64_t lab[4] = {1, 0, 1, 1};
    grad_model(m, Xq, 4, lab, 2);
    mt_channel_list l = channels_of(m, 2);
    MT_CHECK(has_channel(&l, "proj_row_norms_max") && has_channel(&l, "proj_col_norms_min"));
    mt_channel_list_clear(&l);
    /* dropout may not touch the indices */
    mtt_ctx c;
    mtt_ctx_init(&c, m, true, 2, 0, 1);
    double p[2] = {0.5, 0.5}, s[2] = {2, 2};
    mt_fprop_options o;
    memset(&o, 0, sizeof(o));
    o.dropout = true;
    o.include_prob = p;
    o.scale = s;
    mt_var out;
    MT_CHECK_ERR(mt_model_fprop(&c.mg, &o, &out), MT_ERR_INVALID,
                 "input_include_probs: {proj: 1.}");
    p[0] = 1.0;
    MT_CHECK_OK(mt_model_fprop(&c.mg, &o, &out));
    mtt_ctx_clear(&c);
    float *f;
    int64_t nf, shape[3];
    MT_CHECK_ERR(mt_model_first_layer_filters(m, NULL, &f, &nf, shape), MT_ERR_UNSUPPORTED,
                 "no weights on an image input");
    mt_model_free(m);
    mt_model *bad;
    MT_CHECK_ERR(mtt_try_model(&bad, "!obj:MLP {nvis: 3, layers: [!obj:ProjectionLayer "
                                     "{layer_name: 'p', dim: 2, irange: 0.1}]}"),
                 MT_ERR_INVALID, "needs an IndexSpace input (integer indices), got "
                                 "VectorSpace(dim 3)");
    MT_CHECK_ERR(mtt_try_model(&bad, "!obj:MLP {input_space: !obj:IndexSpace {dim: 2, "
                                     "max_labels: 9}, layers: [!obj:Linear {layer_name: 'h', "
                                     "dim: 2, irange: 0.1}]}"),
                 MT_ERR_INVALID, "put a ProjectionLayer");
    MT_CHECK_ERR(mtt_try_model(&bad, "!obj:MLP {input_space: !obj:IndexSpace {dim: 2, "
                                     "max_labels: 9}, layers: [!obj:ProjectionLayer "
                                     "{layer_name: 'p', dim: 2}]}"),
                 MT_ERR_INVALID, "<model>:1:");
}

/* An IndexSpace and a VectorSpace side by side: the indices are embedded, the vector goes
 * through a Tanh layer, a Softmax reads both (the composite output as one vector). */
static const char *MIXED_MLP =
    "!obj:MLP {input_space: !obj:CompositeSpace {components: [\n"
    "    !obj:IndexSpace {dim: 2, max_labels: 5}, !obj:VectorSpace {dim: 3}]},\n"
    "  layers: [!obj:CompositeLayer {layer_name: 'in', inputs_to_layers: {0: [0], 1: [1]},\n"
    "             layers: [!obj:ProjectionLayer {layer_name: 'emb', dim: 2, istdev: 0.5},\n"
    "                      !obj:Tanh {layer_name: 't', dim: 2, irange: 0.8}]},\n"
    "           !obj:Softmax {layer_name: 'y', n_classes: 3, irange: 0.5}]}";

MT_TEST(projection_in_a_composite_input)
{
    mt_model *m = mtt_model(MIXED_MLP);
    MT_CHECK_EQ_INT(mt_model_input_dim(m), 5);
    MT_CHECK(mtt_param_array(m, "in/emb_W")->dims[0] == 5);
    MT_CHECK_EQ_INT(mtt_param_array(m, "in/t_W")->dims[0], 3);
    MT_CHECK_EQ_INT(mtt_param_array(m, "y_W")->dims[0], 6);
    float X[3 * 5] = {4, 0, 0.5f, -0.3f, 0.9f, 2, 2, -1, 0.2f, 0.1f, 1, 3, 0.3f, 0.3f, -0.7f};
    double *got = forward(m, X, 3, 0);
    const float *E = mtt_param(m, "in/emb_W");
    for (int r = 0; r < 3; r++) {
        double ref[6];
        for (int k = 0; k < 2; k++)
            for (int d = 0; d < 2; d++) ref[k * 2 + d] = E[(int)X[r * 5 + k] * 2 + d];
        dense_ref(X + r * 5 + 2, 3, mtt_param(m, "in/t_W"), mtt_param(m, "in/t_b"), 2, 1, ref + 4);
        MT_CHECK_ALLCLOSE(got + r * 6, ref, 6, 1e-6, 1e-5);
    }
    mt_free(got);
    for (int r = 0; r < 3; r++) X[r * 5] += 0.25f, X[r * 5 + 1] += 0.25f;
    int64_t lab[3] = {2, 0, 1};
    grad_model(m, X, 3, lab, 3);
    /* mixed precision keeps the indices in float32 */
    mtt_ctx c;
    mtt_ctx_init(&c, m, true, 3, 0, 5);
    MT_CHECK_OK(mt_model_graph_set_compute(&c.mg, MT_BFLOAT16));
    mt_var cost;
    MT_CHECK_OK(mt_model_default_cost(&c.mg, NULL, &cost));
    mtt_ctx_clear(&c);
    mt_model_free(m);
}

/* ---------------------------------------------------------------- costs through nesting */

static double eval_cost(mt_model *m, const mt_cost *cost)
{
    mtt_ctx c;
    mtt_ctx_init(&c, m, false, 0, 0, 1);
    mt_var v;
    MT_CHECK_OK(mt_cost_expr(cost, &c.mg, &v));
    mt_function *f = mtt_compile(&c, 1, &v, false, MT_MODE_FAST_RUN);
    float X[5] = {0};
    mt_array res = {0};
    mtt_call(f, X, 1, mt_model_input_dim(m), NULL, NULL, 0, 1, &res);
    double r = mtt_scalar(&res);
    mt_array_clear(&res);
    mt_function_free(f);
    mtt_ctx_clear(&c);
    return r;
}

MT_TEST(weight_decay_through_nested_layers)
{
    mt_model *m = mtt_model(COMPOSITE_MLP);
    double a = mtt_param_sumsq(m, "comp/a_W"), b = mtt_param_sumsq(m, "comp/b_W"), y = mtt_param_sumsq(m, "y_W");
    /* one coefficient per top-level layer: the composite's covers both sub-layers */
    double c2[2] = {0.5, 2.0};
    mt_cost *wd;
    MT_CHECK_OK(mt_cost_weight_decay(&wd, false, 2, c2, NULL));
    MT_CHECK_CLOSE(eval_cost(m, wd), 0.5 * (a + b) + 2.0 * y, 1e-6, 1e-5);
    mt_cost_free(wd);
    /* names: a container, then a path overriding it */
    const char *names[3] = {"comp", "comp/b", "y"};
    double c3[3] = {1.0, 3.0, 0.0};
    MT_CHECK_OK(mt_cost_weight_decay(&wd, false, 3, c3, names));
    MT_CHECK_CLOSE(eval_cost(m, wd), a + 3.0 * b, 1e-6, 1e-5);
    mt_cost_free(wd);
    /* nested lists from YAML (Pylearn2: a list for the composite's sub-layers) */
    mt_cfg_options o;
    mt_cfg_options_init(&o);
    o.no_environment = true;
    static const char *texts[3] = {
        "!obj:WeightDecay {coeffs: [[0.25, 4.0], 1.0]}",
        "!obj:WeightDecay {coeffs: [[0.25], 1.0]}",
        "!obj:WeightDecay {coeffs: {'comp/c': 1.0}}",
    };
    for (int k = 0; k < 3; k++) {
        mt_cfg_doc *doc = NULL;
        mt_cfg_builder *bld = NULL;
        void *obj = NULL;
        MT_CHECK_OK(mt_cfg_load_string(&doc, texts[k], strlen(texts[k]), "cost.yaml", &o));
        MT_CHECK_OK(mt_cfg_validate(mtt_registry(), mt_cfg_doc_root(doc), "cost"));
        MT_CHECK_OK(mt_cfg_builder_new(&bld, mtt_registry()));
        MT_CHECK_OK(mt_cfg_build(bld, mt_cfg_doc_root(doc), "cost", &obj, NULL));
        if (k == 0) MT_CHECK_CLOSE(eval_cost(m, obj), 0.25 * a + 4.0 * b + y, 1e-6, 1e-5);
        if (k == 1)
            MT_CHECK_ERR(mt_cost_check(obj, m), MT_ERR_INVALID,
                         "gives 1 coefficients for layer 'comp' (CompositeLayer), which has 2");
        if (k == 2)
            MT_CHECK_ERR(mt_cost_check(obj, m), MT_ERR_INVALID, "names no layer of the MLP: "
                         "'comp/c'");
        mt_cfg_builder_free(bld);
        mt_cfg_doc_free(doc);
    }
    /* a bad item is reported where it is written */
    mt_cfg_doc *doc = NULL;
    const char *bad = "!obj:WeightDecay {\n  coeffs: [[0.25, 'x'], 1.0]}";
    MT_CHECK_OK(mt_cfg_load_string(&doc, bad, strlen(bad), "cost.yaml", &o));
    MT_CHECK_ERR(mt_cfg_validate(mtt_registry(), mt_cfg_doc_root(doc), "cost"), MT_ERR_INVALID,
                 "cost.yaml:2:19: coeffs: item 1 must be a number");
    mt_cfg_doc_free(doc);
    /* max_col_norm of a sub-layer is applied by mt_model_constrain */
    mtt_ctx c;
    mtt_ctx_init(&c, m, false, 0, 0, 1);
    mt_var vals[6] = {0};
    int32_t ib = mt_model_find_param(m, "comp/b_W");
    vals[ib] = c.mg.params[ib];
    MT_CHECK_OK(mt_model_constrain(&c.mg, vals));
    MT_CHECK(vals[ib] != c.mg.params[ib]);
    mtt_ctx_clear(&c);
    mt_model_free(m);
}

/* ---------------------------------------------------------------- YAML */

MT_TEST(nested_yaml_round_trip_and_errors)
{
    const char *models[4] = {COMPOSITE_MLP, MIXED_MLP,
        "!obj:MLP {nvis: 3, seed: [1, 2], layers: [!obj:MLP {layer_name: 'm', layers: [\n"
        "  !obj:CompositeLayer {layer_name: 'c', layers: [!obj:Tanh {layer_name: 'a', dim: 2,\n"
        "    irange: 0.1}, !obj:MLP {layer_name: 'deep', layers: [!obj:Linear {layer_name: 'l',\n"
        "    dim: 1, istdev: 0.2}]}]}]},\n"
        "  !obj:Softmax {layer_name: 'y', n_classes: 2, irange: 0.}]}",
        "!obj:MLP {input_space: !obj:IndexSpace {dim: 4, max_labels: 11}, layers: [\n"
        "  !obj:ProjectionLayer {layer_name: 'p', dim: 3, istdev: 0.1},\n"
        "  !obj:Softmax {layer_name: 'y', n_classes: 2, irange: 0.}]}"};
    for (int k = 0; k < 4; k++) {
        mt_model *m1 = mtt_model(models[k]);
        mt_strbuf s1, s2;
        mt_strbuf_init(&s1);
        mt_strbuf_init(&s2);
        MT_CHECK_OK(mt_model_to_yaml(m1, &s1));
        mt_model *m2 = NULL;
        if (mtt_try_model(&m2, s1.data))
            mt_test_fail(__FILE__, __LINE__, "case %d: %s\n%s", k, mt_last_error(), s1.data);
        MT_CHECK_OK(mt_model_to_yaml(m2, &s2));
        MT_CHECK_STR_EQ(s1.data, s2.data);
        MT_CHECK_EQ_INT(mt_model_n_params(m1), mt_model_n_params(m2));
        for (int32_t i = 0; i < mt_model_n_params(m1); i++) {
            const mt_model_param *a = mt_model_param_const(m1, i), *b = mt_model_param_const(m2, i);
            MT_CHECK_STR_EQ(a->name, b->name);
            MT_CHECK_EQ_INT(mt_array_size(&a->value), mt_array_size(&b->value));
            MT_CHECK(!memcmp(mt_buffer_host_ptr(a->value.buf), mt_buffer_host_ptr(b->value.buf),
                             (size_t)mt_array_size(&a->value) * sizeof(float)));
        }
        if (k == 2) MT_CHECK(mt_model_find_param(m1, "m/c/deep/l_W") >= 0);
        mt_strbuf_deinit(&s1);
        mt_strbuf_deinit(&s2);
        mt_model_free(m1);
        mt_model_free(m2);
    }
    /* validation (a dry run) reports bad keys and values at their place */
    static const struct {
        const char *text, *needle;
    } errs[] = {
        {"!obj:MLP {nvis: 4, layers: [!obj:CompositeLayer {layer_name: 'c',\n"
         "  inputs_to_layer: {0: [0]}, layers: [!obj:Tanh {layer_name: 'a', dim: 2, "
         "irange: 1.}]}]}",
         "job.yaml:2:3: CompositeLayer has no key 'inputs_to_layer' (did you mean "
         "'inputs_to_layers'?)"},
        {"!obj:MLP {nvis: 4, layers: [!obj:CompositeLayer {layer_name: 'c',\n"
         "  inputs_to_layers: {0: [3]}, layers: [!obj:Tanh {layer_name: 'a', dim: 2, "
         "irange: 1.}]}]}",
         "job.yaml:2:26: CompositeLayer 'c': inputs_to_layers: 3 is not a sub-layer index (0..0)"},
        {"!obj:MLP {nvis: 4, layers: [!obj:CompositeLayer {layer_name: 'c',\n"
         "  inputs_to_layers: {x: [0]}, layers: [!obj:Tanh {layer_name: 'a', dim: 2, "
         "irange: 1.}]}]}",
         "job.yaml:2:22: CompositeLayer 'c': inputs_to_layers: the key 'x'"},
        {"!obj:MLP {input_space: !obj:IndexSpace {dim: 2, max_labels: 9}, layers: [\n"
         "  !obj:ProjectionLayer {layer_name: 'p', dim: 0, irange: 0.1}]}",
         "job.yaml:2:42: ProjectionLayer 'p': dim must be >= 1, got 0"},
        {"!obj:MLP {input_space: !obj:IndexSpace {dim: 2, max_labels: 9}, layers: [\n"
         "  !obj:ProjectionLayer {layer_name: 'p', dim: 2, irange: 0.1, istdev: 0.1}]}",
         "job.yaml:2:63: ProjectionLayer 'p': give only one of irange, istdev"},
        {"!obj:MLP {nvis: 4, layers: [\n  !obj:FlattenerLayer {layer_name: 'f', raw_layer: "
         "!obj:Tanh {layer_name: 'a', dim: 2, irange: 1.}}]}",
         "job.yaml:2:24: FlattenerLayer has no key 'layer_name'"},
        {"!obj:MLP {nvis: 4, layers: [\n  !obj:Tanh {layer_name: 'a/b', dim: 2, irange: 1.}]}",
         "job.yaml:2:14: Tanh 'a/b': layer_name 'a/b' may not contain '/'"},
    };
    for (size_t k = 0; k < sizeof(errs) / sizeof(errs[0]); k++) {
        mt_cfg_options o;
        mt_cfg_options_init(&o);
        o.no_environment = true;
        mt_cfg_doc *doc = NULL;
        MT_CHECK_OK(mt_cfg_load_string(&doc, errs[k].text, strlen(errs[k].text), "job.yaml", &o));
        mt_err_clear();
        mt_status st = mt_cfg_validate(mtt_registry(), mt_cfg_doc_root(doc), "model");
        if (st != MT_ERR_INVALID || !strstr(mt_last_error(), errs[k].needle))
            mt_test_fail(__FILE__, __LINE__, "case %zu: got %s '%s', expected '%s'", k,
                         mt_status_name(st), mt_last_error(), errs[k].needle);
        mt_cfg_doc_free(doc);
    }
}

/* ---------------------------------------------------------------- datasets */

MT_TEST(composite_dataset_and_checks)
{
    mt_cfg_registry *r = NULL;
    MT_CHECK_OK(mt_cfg_registry_new(&r));
    MT_CHECK_OK(mt_data_register_components(r));
    static const char *text =
        "!obj:CompositeDataset {sources: [\n"
        "  !obj:DenseDesignMatrix {X: [[1, 2], [3, 4], [0, 1]]},\n"
        "  !obj:DenseDesignMatrix {X: [[0.5], [0.25], [0.125]], y: [1, 0, 2]}], start: 1}";
    mt_cfg_options o;
    mt_cfg_options_init(&o);
    o.no_environment = true;
    mt_cfg_doc *doc = NULL;
    mt_cfg_builder *b = NULL;
    void *obj = NULL;
    MT_CHECK_OK(mt_cfg_load_string(&doc, text, strlen(text), "data.yaml", &o));
    MT_CHECK_OK(mt_cfg_validate(r, mt_cfg_doc_root(doc), "dataset"));
    MT_CHECK_OK(mt_cfg_builder_new(&b, r));
    MT_CHECK_OK(mt_cfg_build(b, mt_cfg_doc_root(doc), "dataset", &obj, NULL));
    mt_dataset_info info;
    mt_dataset_get_info(obj, &info);
    MT_CHECK(info.n == 2 && info.dim == 3 && info.n_sources == 2);
    MT_CHECK(info.source_dims[0] == 2 && info.source_dims[1] == 1);
    MT_CHECK(info.has_y && info.y_is_labels && info.n_classes == 3);
    const float *X = mt_dataset_X(obj);
    const float want[6] = {3, 4, 0.25f, 0, 1, 0.125f};
    for (int i = 0; i < 6; i++) MT_CHECK(X[i] == want[i]);
    MT_CHECK(mt_dataset_labels(obj)[0] == 0 && mt_dataset_labels(obj)[1] == 2);
    mt_dataset *sl;
    MT_CHECK_OK(mt_dataset_slice(&sl, obj, 1, 2));
    mt_dataset_info si;
    mt_dataset_get_info(sl, &si);
    MT_CHECK(si.n_sources == 2 && si.source_dims[1] == 1);
    /* the model checks the components against the sources */
    mt_model *m = mtt_model("!obj:MLP {input_space: !obj:CompositeSpace {components: [\n"
                            "  !obj:IndexSpace {dim: 2, max_labels: 5}, !obj:VectorSpace "
                            "{dim: 1}]}, layers: [!obj:CompositeLayer {layer_name: 'c', "
                            "inputs_to_layers: {0: [0], 1: [1]}, layers: [!obj:ProjectionLayer "
                            "{layer_name: 'e', dim: 2, irange: 0.1}, !obj:Linear {layer_name: "
                            "'l', dim: 1, irange: 0.1}]}, !obj:Softmax {layer_name: 'y', "
                            "n_classes: 3, irange: 0.}]}");
    MT_CHECK_OK(mt_model_check_data(m, &info));
    mt_model_free(m);
    m = mtt_model("!obj:MLP {input_space: !obj:CompositeSpace {components: [\n"
                  "  !obj:VectorSpace {dim: 1}, !obj:VectorSpace {dim: 2}]}, layers: [!obj:Softmax "
                  "{layer_name: 'y', n_classes: 3, irange: 0.}]}");
    MT_CHECK_ERR(mt_model_check_data(m, &info), MT_ERR_SHAPE,
                 "input_space component 0 needs 1 features but source 0 of");
    mt_model_free(m);
    mt_dataset_free(sl);
    mt_cfg_builder_free(b);
    mt_cfg_doc_free(doc);
    /* sources of different lengths, targets in two sources */
    static const struct {
        const char *text, *needle;
    } errs[2] = {
        {"!obj:CompositeDataset {sources: [\n  !obj:DenseDesignMatrix {X: [[1], [2]]},\n"
         "  !obj:DenseDesignMatrix {X: [[1]]}]}",
         "data.yaml:3:3: CompositeDataset: source 1 (DenseDesignMatrix) has 1 examples"},
        {"!obj:CompositeDataset {sources: [\n  !obj:DenseDesignMatrix {X: [[1]], y: [0]},\n"
         "  !obj:DenseDesignMatrix {X: [[1]], y: [1]}]}",
         "sources 0 and 1 both have targets: say which to use with targets_from"},
    };
    for (int k = 0; k < 2; k++) {
        MT_CHECK_OK(mt_cfg_load_string(&doc, errs[k].text, strlen(errs[k].text), "data.yaml",
                                       &o));
        MT_CHECK_OK(mt_cfg_builder_new(&b, r));
        mt_err_clear();
        mt_status st = mt_cfg_build(b, mt_cfg_doc_root(doc), "dataset", &obj, NULL);
        if (!st || !strstr(mt_last_error(), errs[k].needle))
            mt_test_fail(__FILE__, __LINE__, "case %d: got '%s'", k, mt_last_error());
        mt_cfg_builder_free(b);
        mt_cfg_doc_free(doc);
    }
    mt_cfg_registry_free(r);
}
