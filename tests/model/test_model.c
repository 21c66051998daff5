/* Model tests: MLP forward values and output-layer costs against plain double loops,
 * gradients through mt_verify_grad, Pylearn2's initialization schemes (statistics and exact
 * sparse counts, determinism), norm constraints against Pylearn2's formula, weight decay; the
 * layer path limit (names made from the longest paths stay whole, one byte more is an error)
 * and YAML sizes too large for int64 (range errors at model build). */
#include <stdio.h>
#include <string.h>

#include "model_test_util.h"

static const char *MLP3 =
    "!obj:pylearn2.models.mlp.MLP {\n"
    "  nvis: 5, seed: [1, 2, 3],\n"
    "  layers: [\n"
    "    !obj:pylearn2.models.mlp.Tanh {layer_name: 'h0', dim: 4, irange: 0.5, init_bias: 0.1},\n"
    "    !obj:pylearn2.models.mlp.RectifiedLinear {layer_name: 'h1', dim: 3, istdev: 0.7,\n"
    "        left_slope: 0.1},\n"
    "    !obj:pylearn2.models.mlp.Softmax {layer_name: 'y', n_classes: 3, irange: 0.3,\n"
    "        init_bias: 0.2}\n"
    "  ]\n"
    "}\n";

/* out[n, o] = x[n, :] @ W + b in double. */
static void dense(const double *x, int64_t n, int64_t in, const float *W, const float *b,
                  int64_t out, double *z)
{
    for (int64_t r = 0; r < n; r++)
        for (int64_t o = 0; o < out; o++) {
            double s = b ? b[o] : 0.0;
            for (int64_t i = 0; i < in; i++) s += x[r * in + i] * W[i * out + o];
            z[r * out + o] = s;
        }
}

/* Reference forward of MLP3: probabilities and mean NLL of labels. */
static double mlp3_reference(mt_model *m, const float *X, int64_t n, const int64_t *lab,
                             double *probs)
{
    double x[64 * 5], h0[64 * 4], h1[64 * 3], z[64 * 3];
    for (int64_t i = 0; i < n * 5; i++) x[i] = X[i];
    dense(x, n, 5, mtt_param(m, "h0_W"), mtt_param(m, "h0_b"), 4, h0);
    for (int64_t i = 0; i < n * 4; i++) h0[i] = tanh(h0[i]);
    dense(h0, n, 4, mtt_param(m, "h1_W"), mtt_param(m, "h1_b"), 3, h1);
    for (int64_t i = 0; i < n * 3; i++) h1[i] = h1[i] > 0 ? h1[i] : 0.1 * h1[i];
    dense(h1, n, 3, mtt_param(m, "y_W"), mtt_param(m, "y_b"), 3, z);
    double nll = 0;
    for (int64_t r = 0; r < n; r++) {
        double mx = fmax(z[r * 3], fmax(z[r * 3 + 1], z[r * 3 + 2])), s = 0;
        for (int k = 0; k < 3; k++) s += exp(z[r * 3 + k] - mx);
        for (int k = 0; k < 3; k++) probs[r * 3 + k] = exp(z[r * 3 + k] - mx) / s;
        nll -= z[r * 3 + lab[r]] - mx - log(s);
    }
    return nll / (double)n;
}

MT_TEST(mlp_forward_and_default_cost)
{
    mt_model *m = mtt_model(MLP3);
    MT_CHECK_STR_EQ(mt_model_type_name(m), "MLP");
    MT_CHECK_EQ_INT(mt_model_n_layers(m), 3);
    MT_CHECK_EQ_INT(mt_model_n_params(m), 6);
    MT_CHECK_EQ_INT(mt_model_input_dim(m), 5);
    MT_CHECK_EQ_INT(mt_model_output_dim(m), 3);
    MT_CHECK(mt_model_needs_targets(m));
    const mt_array *W0 = mtt_param_array(m, "h0_W");
    MT_CHECK(W0->ndim == 2 && W0->dims[0] == 5 && W0->dims[1] == 4); /* [input, units] */
    for (int i = 0; i < 4; i++) MT_CHECK_CLOSE(mtt_param(m, "h0_b")[i], 0.1, 1e-7, 0);
    mtt_ctx c;
    mtt_ctx_init(&c, m, true, 3, 0, 7);
    mt_var out[2];
    MT_CHECK_OK(mt_model_fprop(&c.mg, NULL, &out[0]));
    MT_CHECK_OK(mt_model_default_cost(&c.mg, NULL, &out[1]));
    const mt_type *t = mt_graph_type(c.g, out[1]);
    MT_CHECK(t->ndim == 0 && t->dtype == MT_FLOAT32);
    float X[8 * 5];
    mtt_fill(X, 40, 3);
    int64_t lab[8] = {0, 1, 2, 2, 1, 0, 1, 2};
    double ref[8 * 3];
    double nll = mlp3_reference(m, X, 8, lab, ref);
    for (int mode = 0; mode < 2; mode++) {
        mt_function *f = mtt_compile(&c, 2, out, true,
                                     mode ? MT_MODE_FAST_COMPILE : MT_MODE_FAST_RUN);
        mt_array res[2] = {{0}};
        mtt_call(f, X, 8, 5, lab, NULL, 0, 2, res);
        double *p = mtt_to_double(&res[0]);
        MT_CHECK_ALLCLOSE(p, ref, 24, 1e-5, 1e-4);
        MT_CHECK_CLOSE(mtt_scalar(&res[1]), nll, 1e-5, 1e-4);
        mt_free(p);
        mt_array_clear(&res[0]);
        mt_array_clear(&res[1]);
        mt_function_free(f);
    }
    mtt_ctx_clear(&c);
    mt_model_free(m);
}

MT_TEST(mlp_gradients_verify_grad)
{
    mt_model *m = mtt_model(MLP3);
    mtt_ctx c;
    mtt_ctx_init(&c, m, true, 3, 0, 7);
    mt_var cost;
    MT_CHECK_OK(mt_model_default_cost(&c.mg, NULL, &cost));
    float X[6 * 5];
    mtt_fill(X, 30, 11);
    int64_t lab[6] = {2, 0, 1, 1, 2, 0};
    mt_array ax = {0}, ay = {0};
    int64_t xd[2] = {6, 5}, n = 6;
    MT_CHECK_OK(mt_array_from_host(&ax, mtt_host(), MT_FLOAT32, 2, xd, X));
    MT_CHECK_OK(mt_array_from_host(&ay, mtt_host(), MT_INT64, 1, &n, lab));
    mt_var ins[8] = {c.mg.X, c.mg.y};
    const mt_array *vals[8] = {&ax, &ay};
    for (int32_t i = 0; i < 6; i++) {
        ins[2 + i] = c.mg.params[i];
        vals[2 + i] = &mt_model_param_at(m, i)->value;
    }
    mt_verify_grad_report rep;
    MT_CHECK_OK(mt_verify_grad(c.g, cost, 8, ins, vals, NULL, &rep));
    MT_CHECK(rep.passed);
    mt_array_clear(&ax);
    mt_array_clear(&ay);
    mtt_ctx_clear(&c);
    mt_model_free(m);
}

/* Linear output: mean over examples of summed squared error; Sigmoid output: mean over
 * examples and units of softplus(z) - y z; both from float targets or one-hot labels. */
MT_TEST(linear_and_sigmoid_output_costs)
{
    for (int kind = 0; kind < 2; kind++) {
        char yaml[512];
        snprintf(yaml, sizeof(yaml),
                 "!obj:MLP {nvis: 4, layers: [!obj:%s {layer_name: 'y', dim: 3, irange: 0.8, "
                 "init_bias: -0.1}]}", kind ? "Sigmoid" : "Linear");
        mt_model *m = mtt_model(yaml);
        float X[5 * 4], Y[5 * 3];
        mtt_fill(X, 20, 5);
        mtt_fill(Y, 15, 6);
        for (int i = 0; i < 15; i++) Y[i] = kind ? (Y[i] > 0) : Y[i];
        int64_t lab[5] = {0, 2, 1, 1, 0};
        double x[20], z[15];
        for (int i = 0; i < 20; i++) x[i] = X[i];
        dense(x, 5, 4, mtt_param(m, "y_W"), mtt_param(m, "y_b"), 3, z);
        for (int use_labels = 0; use_labels < 2; use_labels++) {
            double ref = 0;
            for (int r = 0; r < 5; r++)
                for (int k = 0; k < 3; k++) {
                    double t = use_labels ? (lab[r] == k) : Y[r * 3 + k];
                    if (kind) ref += log1p(exp(z[r * 3 + k])) - t * z[r * 3 + k];
                    else ref += (t - z[r * 3 + k]) * (t - z[r * 3 + k]);
                }
            ref /= kind ? 15.0 : 5.0;
            mtt_ctx c;
            mtt_ctx_init(&c, m, use_labels, 3, use_labels ? 0 : 3, 1);
            mt_var cost;
            MT_CHECK_OK(mt_model_default_cost(&c.mg, NULL, &cost));
            mt_function *f = mtt_compile(&c, 1, &cost, true, MT_MODE_FAST_RUN);
            mt_array res = {0};
            mtt_call(f, X, 5, 4, use_labels ? lab : NULL, use_labels ? NULL : Y, 3, 1, &res);
            MT_CHECK_CLOSE(mtt_scalar(&res), ref, 1e-5, 1e-5);
            mt_array_clear(&res);
            mt_function_free(f);
            mtt_ctx_clear(&c);
        }
        mt_model_free(m);
    }
}

/* Softmax with float (one-hot) targets gives the same NLL as with the labels. */
MT_TEST(softmax_float_targets_equal_labels)
{
    mt_model *m = mtt_model("!obj:MLP {nvis: 3, layers: [!obj:Softmax {layer_name: 'y', "
                            "n_classes: 4, istdev: 1.0}]}");
    float X[6 * 3], Y[6 * 4] = {0};
    mtt_fill(X, 18, 9);
    int64_t lab[6] = {3, 0, 1, 2, 3, 1};
    for (int r = 0; r < 6; r++) Y[r * 4 + lab[r]] = 1;
    double v[2];
    for (int k = 0; k < 2; k++) {
        mtt_ctx c;
        mtt_ctx_init(&c, m, k == 0, 4, k ? 4 : 0, 1);
        mt_var cost;
        MT_CHECK_OK(mt_model_default_cost(&c.mg, NULL, &cost));
        mt_function *f = mtt_compile(&c, 1, &cost, true, MT_MODE_FAST_RUN);
        mt_array res = {0};
        mtt_call(f, X, 6, 3, k ? NULL : lab, k ? Y : NULL, 4, 1, &res);
        v[k] = mtt_scalar(&res);
        mt_array_clear(&res);
        mt_function_free(f);
        mtt_ctx_clear(&c);
    }
    MT_CHECK(v[0] > 0.1);
    MT_CHECK_CLOSE(v[0], v[1], 1e-6, 1e-6);
    mt_model_free(m);
}

/* ---------------------------------------------------------------- initialization */

static void moments(const float *w, int64_t n, double *mean, double *sd, double *maxabs,
                    int64_t *nonzero)
{
    double s = 0, s2 = 0, mx = 0;
    int64_t nz = 0;
    for (int64_t i = 0; i < n; i++) {
        s += w[i];
        s2 += (double)w[i] * w[i];
        mx = fmax(mx, fabs(w[i]));
        nz += w[i] != 0;
    }
    *mean = s / (double)n;
    *sd = sqrt(s2 / (double)n - *mean * *mean);
    *maxabs = mx;
    *nonzero = nz;
}

MT_TEST(init_irange_istdev_include_prob)
{
    mt_model *m = mtt_model(
        "!obj:MLP {nvis: 784, layers: [\n"
        " !obj:Linear {layer_name: 'a', dim: 500, irange: 0.05},\n"
        " !obj:Linear {layer_name: 'b', dim: 400, istdev: 0.05},\n"
        " !obj:Sigmoid {layer_name: 'c', dim: 300, irange: 0.2, include_prob: 0.3},\n"
        " !obj:Softmax {layer_name: 'y', n_classes: 10, irange: 0.}]}");
    double mean, sd, mx;
    int64_t nz;
    moments(mtt_param(m, "a_W"), 784 * 500, &mean, &sd, &mx, &nz);
    MT_CHECK(mx <= 0.05);
    MT_CHECK(mx > 0.0499);
    MT_CHECK(fabs(mean) < 5e-4);
    MT_CHECK_CLOSE(sd, 0.05 / sqrt(3.0), 0, 0.01);
    moments(mtt_param(m, "b_W"), 500 * 400, &mean, &sd, &mx, &nz);
    MT_CHECK(fabs(mean) < 5e-4);
    MT_CHECK_CLOSE(sd, 0.05, 0, 0.01);
    MT_CHECK(mx > 0.15 && mx < 0.4); /* tails of a normal over 200000 draws (about 4-5 sd) */
    moments(mtt_param(m, "c_W"), 400 * 300, &mean, &sd, &mx, &nz);
    MT_CHECK_CLOSE((double)nz / (400 * 300), 0.3, 0.01, 0);
    MT_CHECK(mx <= 0.2);
    moments(mtt_param(m, "y_W"), 300 * 10, &mean, &sd, &mx, &nz);
    MT_CHECK_EQ_INT(nz, 0); /* Softmax irange 0. = zeros */
    mt_model_free(m);
}

MT_TEST(init_sparse_exactly_k_per_unit)
{
    mt_model *m = mtt_model(
        "!obj:MLP {nvis: 784, layers: [\n"
        " !obj:RectifiedLinear {layer_name: 'h0', dim: 500, sparse_init: 15, sparse_stdev: 2.},\n"
        " !obj:Softmax {layer_name: 'y', n_classes: 10, sparse_init: 0}]}");
    const float *W = mtt_param(m, "h0_W");
    double s2 = 0;
    int64_t total = 0;
    for (int64_t j = 0; j < 500; j++) {
        int64_t k = 0;
        for (int64_t i = 0; i < 784; i++)
            if (W[i * 500 + j] != 0) {
                k++;
                s2 += (double)W[i * 500 + j] * W[i * 500 + j];
            }
        if (k != 15) mt_test_fail(__FILE__, __LINE__, "column %lld has %lld nonzeros",
                                  (long long)j, (long long)k);
        total += k;
    }
    MT_CHECK_CLOSE(sqrt(s2 / (double)total), 2.0, 0, 0.03);
    /* the rows used are spread: no input row is chosen by more than a few units */
    int64_t maxrow = 0;
    for (int64_t i = 0; i < 784; i++) {
        int64_t k = 0;
        for (int64_t j = 0; j < 500; j++) k += W[i * 500 + j] != 0;
        if (k > maxrow) maxrow = k;
    }
    MT_CHECK(maxrow < 30);
    const float *Wy = mtt_param(m, "y_W");
    for (int i = 0; i < 5000; i++) MT_CHECK(Wy[i] == 0);
    mt_model_free(m);
    mt_model *bad;
    MT_CHECK_ERR(mtt_try_model(&bad, "!obj:MLP {nvis: 4, layers: [!obj:Linear {layer_name: "
                                     "'h', dim: 2, sparse_init: 5}]}"),
                 MT_ERR_INVALID, "sparse_init 5 must be in [0, 4]");
}

MT_TEST(init_is_deterministic_per_seed_and_name)
{
    const char *a = "!obj:MLP {nvis: 20, seed: 5, layers: [!obj:Tanh {layer_name: 'h', dim: 30, "
                    "irange: 1.0}, !obj:Softmax {layer_name: 'y', n_classes: 3, istdev: 1.}]}";
    mt_model *m1 = mtt_model(a), *m2 = mtt_model(a);
    mt_model *m3 = mtt_model("!obj:MLP {nvis: 20, seed: 6, layers: [!obj:Tanh {layer_name: "
                             "'h', dim: 30, irange: 1.0}, !obj:Softmax {layer_name: 'y', "
                             "n_classes: 3, istdev: 1.}]}");
    MT_CHECK(!memcmp(mtt_param(m1, "h_W"), mtt_param(m2, "h_W"), 600 * sizeof(float)));
    MT_CHECK(!memcmp(mtt_param(m1, "y_W"), mtt_param(m2, "y_W"), 90 * sizeof(float)));
    MT_CHECK(memcmp(mtt_param(m1, "h_W"), mtt_param(m3, "h_W"), 600 * sizeof(float)) != 0);
    /* the default seed is Pylearn2's [2013, 1, 4] */
    mt_model *d1 = mtt_model("!obj:MLP {nvis: 2, layers: [!obj:Linear {layer_name: 'y', dim: 2, "
                             "irange: 1.}]}");
    mt_model *d2 = mtt_model("!obj:MLP {nvis: 2, seed: [2013, 1, 4], layers: [!obj:Linear "
                             "{layer_name: 'y', dim: 2, irange: 1.}]}");
    MT_CHECK(!memcmp(mtt_param(d1, "y_W"), mtt_param(d2, "y_W"), 4 * sizeof(float)));
    mt_model_free(m1);
    mt_model_free(m2);
    mt_model_free(m3);
    mt_model_free(d1);
    mt_model_free(d2);
}

/* ---------------------------------------------------------------- constraints */

/* Runs mt_model_constrain on the parameter values themselves and compares with Pylearn2's
 * W * (clip(norms, 0, limit) / (1e-7 + norms)) computed in double. */
static void check_constraint(mt_model *m, const char *pname, mt_norm_constraint kind,
                             double limit)
{
    int32_t pi = mt_model_find_param(m, pname);
    const mt_model_param *p = mt_model_param_const(m, pi);
    MT_CHECK_EQ_INT(p->constraint, kind);
    MT_CHECK_CLOSE(p->constraint_limit, limit, 1e-12, 0);
    mtt_ctx c;
    mtt_ctx_init(&c, m, false, 0, 0, 1);
    mt_var *vals = mt_calloc((size_t)c.mg.n_params, sizeof(mt_var));
    vals[pi] = c.mg.params[pi];
    MT_CHECK_OK(mt_model_constrain(&c.mg, vals));
    mt_function *f = mtt_compile(&c, 1, &vals[pi], false, MT_MODE_FAST_RUN);
    mt_array res = {0};
    float *X = mt_calloc((size_t)mt_model_input_dim(m), sizeof(float));
    mtt_call(f, X, 1, mt_model_input_dim(m), NULL, NULL, 0, 1, &res);
    mt_free(X);
    double *got = mtt_to_double(&res);
    const float *W = mtt_param(m, pname);
    const mt_array *a = &p->value;
    int64_t n = mt_array_size(a);
    int64_t groups = kind == MT_NORM_MAX_ROW ? a->dims[0]
                     : kind == MT_NORM_MAX_COL ? a->dims[1]
                                               : a->dims[0];
    double *norm = mt_calloc((size_t)groups, sizeof(double));
    for (int64_t i = 0; i < n; i++) {
        int64_t gidx = kind == MT_NORM_MAX_ROW ? i / a->dims[1]
                       : kind == MT_NORM_MAX_COL ? i % a->dims[1]
                                                 : i / (n / a->dims[0]);
        norm[gidx] += (double)W[i] * W[i];
    }
    int64_t clipped = 0;
    for (int64_t gi = 0; gi < groups; gi++) {
        norm[gi] = sqrt(norm[gi]);
        clipped += norm[gi] > limit;
    }
    MT_CHECK(clipped > 0 && clipped < groups); /* the test exercises both cases */
    double *ref = mt_malloc((size_t)n * sizeof(double));
    for (int64_t i = 0; i < n; i++) {
        int64_t gidx = kind == MT_NORM_MAX_ROW ? i / a->dims[1]
                       : kind == MT_NORM_MAX_COL ? i % a->dims[1]
                                                 : i / (n / a->dims[0]);
        double nn = norm[gidx];
        ref[i] = W[i] * (fmin(nn, limit) / (1e-7 + nn));
    }
    MT_CHECK_ALLCLOSE(got, ref, (size_t)n, 1e-6, 1e-5);
    mt_free(ref);
    mt_free(norm);
    mt_free(got);
    mt_free(vals);
    mt_array_clear(&res);
    mt_function_free(f);
    mtt_ctx_clear(&c);
}

MT_TEST(norm_constraints_as_pylearn2)
{
    mt_model *m = mtt_model(
        "!obj:MLP {nvis: 4, layers: [\n"
        " !obj:Linear {layer_name: 'h0', dim: 6, irange: 1.0, max_col_norm: 1.1},\n"
        " !obj:Maxout {layer_name: 'h1', num_units: 3, num_pieces: 2, irange: 1.0,\n"
        "              max_col_norm: 1.2},\n"
        " !obj:Softmax {layer_name: 'y', n_classes: 5, irange: 1.0, max_row_norm: 1.0}]}");
    check_constraint(m, "h0_W", MT_NORM_MAX_COL, 1.1);
    check_constraint(m, "h1_W", MT_NORM_MAX_COL, 1.2);
    check_constraint(m, "y_W", MT_NORM_MAX_ROW, 1.0);
    MT_CHECK_EQ_INT(mt_model_param_const(m, mt_model_find_param(m, "h0_b"))->constraint,
                    MT_NORM_NONE);
    mt_model_free(m);
    mt_model *cm = mtt_model(
        "!obj:MLP {input_space: !obj:Conv2DSpace {shape: [6, 6], num_channels: 2}, layers: [\n"
        " !obj:ConvRectifiedLinear {layer_name: 'c', output_channels: 5, kernel_shape: [3, 3],\n"
        "   pool_shape: [2, 2], pool_stride: [2, 2], irange: 0.5, max_kernel_norm: 1.3},\n"
        " !obj:Softmax {layer_name: 'y', n_classes: 2, irange: 0.1}]}");
    check_constraint(cm, "c_W", MT_NORM_MAX_KERNEL, 1.3);
    mt_model_free(cm);
}

/* ---------------------------------------------------------------- weight decay */

static double host_decay(mt_model *m, const char *pname, bool l1)
{
    const mt_array *a = mtt_param_array(m, pname);
    const float *w = mtt_param(m, pname);
    double s = 0;
    for (int64_t i = 0; i < mt_array_size(a); i++) s += l1 ? fabs(w[i]) : (double)w[i] * w[i];
    return s;
}

static double eval_cost(mt_model *m, const mt_cost *cost, bool labels)
{
    mtt_ctx c;
    mtt_ctx_init(&c, m, labels, 3, 0, 1);
    mt_var v;
    MT_CHECK_OK(mt_cost_expr(cost, &c.mg, &v));
    mt_function *f = mtt_compile(&c, 1, &v, labels, MT_MODE_FAST_RUN);
    mt_array res = {0};
    float X[2 * 5];
    mtt_fill(X, 10, 1);
    int64_t lab[2] = {0, 2};
    mtt_call(f, X, 2, mt_model_input_dim(m), labels ? lab : NULL, NULL, 0, 1, &res);
    double r = mtt_scalar(&res);
    mt_array_clear(&res);
    mt_function_free(f);
    mtt_ctx_clear(&c);
    return r;
}

MT_TEST(weight_decay_values)
{
    mt_model *m = mtt_model(MLP3);
    double h0 = host_decay(m, "h0_W", false), h1 = host_decay(m, "h1_W", false);
    double y = host_decay(m, "y_W", false);
    double coeffs[3] = {0.5, 2.0, 0.25};
    mt_cost *wd;
    MT_CHECK_OK(mt_cost_weight_decay(&wd, false, 3, coeffs, NULL));
    MT_CHECK_CLOSE(eval_cost(m, wd, false), 0.5 * h0 + 2.0 * h1 + 0.25 * y, 0, 1e-5);
    MT_CHECK(!mt_cost_needs_targets(wd, m));
    MT_CHECK(!mt_cost_is_stochastic(wd, m));
    mt_cost_free(wd);
    const char *names[2] = {"y", "h0"};
    double c2[2] = {3.0, 1.5};
    MT_CHECK_OK(mt_cost_weight_decay(&wd, false, 2, c2, names));
    MT_CHECK_CLOSE(eval_cost(m, wd, false), 3.0 * y + 1.5 * h0, 0, 1e-5);
    mt_cost_free(wd);
    MT_CHECK_OK(mt_cost_weight_decay(&wd, true, 3, coeffs, NULL));
    MT_CHECK_CLOSE(eval_cost(m, wd, false),
                   0.5 * host_decay(m, "h0_W", true) + 2.0 * host_decay(m, "h1_W", true) +
                       0.25 * host_decay(m, "y_W", true), 0, 1e-5);
    mt_cost_free(wd);
    /* errors: count mismatch and unknown layer names (with a suggestion) */
    MT_CHECK_OK(mt_cost_weight_decay(&wd, false, 2, coeffs, NULL));
    MT_CHECK_ERR(mt_cost_check(wd, m), MT_ERR_INVALID, "coeffs has 2 entries but the MLP has 3");
    mt_cost_free(wd);
    const char *bad[1] = {"h2"};
    MT_CHECK_OK(mt_cost_weight_decay(&wd, false, 1, coeffs, bad));
    MT_CHECK_ERR(mt_cost_check(wd, m), MT_ERR_INVALID, "did you mean 'h");
    mt_cost_free(wd);
    /* SumOfCosts: default + decay, and its channels */
    mt_cost *def, *sum, *terms[2];
    MT_CHECK_OK(mt_cost_default(&def));
    MT_CHECK_OK(mt_cost_weight_decay(&wd, false, 3, coeffs, NULL));
    terms[0] = def;
    terms[1] = wd;
    double sc[2] = {1.0, 0.1};
    MT_CHECK_OK(mt_cost_sum(&sum, 2, sc, (const mt_cost *const *)terms));
    double d = eval_cost(m, def, true);
    MT_CHECK_CLOSE(eval_cost(m, sum, true), d + 0.1 * (0.5 * h0 + 2.0 * h1 + 0.25 * y), 0, 1e-5);
    MT_CHECK(mt_cost_needs_targets(sum, m));
    MT_CHECK_STR_EQ(mt_cost_type_name(sum), "SumOfCosts");
    mtt_ctx c;
    mtt_ctx_init(&c, m, true, 3, 0, 1);
    mt_channel_list cl = {0};
    MT_CHECK_OK(mt_cost_channels(sum, &c.mg, &cl));
    MT_CHECK_EQ_INT(cl.n, 2);
    MT_CHECK_STR_EQ(cl.items[0].name, "term_0");
    MT_CHECK_STR_EQ(cl.items[1].name, "term_1_weight_decay");
    MT_CHECK_EQ_INT(cl.items[1].reduce, MT_CHAN_NODATA);
    mt_channel_list_clear(&cl);
    mtt_ctx_clear(&c);
    mt_cost_free(sum);
    mt_cost_free(def);
    mt_cost_free(wd);
    mt_model_free(m);
}

/* ---------------------------------------------------------------- paths and sizes */

/* A model whose two deepest layers sit at paths of `len` bytes, "<a>/<b>/<c>0" and
 * "<a>/<b>/<c>1" (a, b: 30 bytes; the two differ in their last byte only): an MLP used as a
 * layer holding a CompositeLayer of two Tanh layers, then a Softmax. path0 receives the first
 * path. */
static const char *long_path_model(char *buf, size_t cap, int len, char *path0, size_t pcap)
{
    mt_test_long_names n;
    mt_test_long_names_init(&n, len, path0, pcap);
    snprintf(buf, cap,
             "!obj:pylearn2.models.mlp.MLP {\n"
             "  nvis: 4, seed: [1, 2, 3],\n"
             "  layers: [\n"
             "    !obj:pylearn2.models.mlp.MLP { layer_name: '%s', layers: [\n"
             "      !obj:pylearn2.models.mlp.CompositeLayer { layer_name: '%s', layers: [\n"
             "        !obj:pylearn2.models.mlp.Tanh { layer_name: '%s0', dim: 3, irange: 0.5 },\n"
             "        !obj:pylearn2.models.mlp.Tanh { layer_name: '%s1', dim: 2, irange: 0.5 }\n"
             "      ] } ] },\n"
             "    !obj:pylearn2.models.mlp.Softmax { layer_name: 'y', n_classes: 2, irange: 0.5 }\n"
             "  ]\n"
             "}\n",
             n.a, n.b, n.c, n.c);
    return buf;
}

MT_TEST(layer_path_length_limit)
{
    char yaml[2048], path[128], name[160], want[160];
    /* at the limit: builds, every name made from the paths is whole and distinct */
    mt_model *m = mtt_model(long_path_model(yaml, sizeof(yaml), MT__PATH_LEN_MAX, path,
                                            sizeof(path)));
    snprintf(name, sizeof(name), "%s_W", path);
    const mt_array *w0 = mtt_param_array(m, name);
    MT_CHECK_EQ_INT(w0->dims[1], 3);
    name[strlen(path) - 1] = '1'; /* "<a>/<b>/<c>1_W" */
    MT_CHECK_EQ_INT(mtt_param_array(m, name)->dims[1], 2);
    MT_CHECK_EQ_INT(mt_model_n_params(m), 6);
    mtt_ctx c;
    mtt_ctx_init(&c, m, true, 2, 0, 1);
    mt_channel_list cl = {0};
    MT_CHECK_OK(mt_model_channels(&c.mg, &cl));
    /* the longest channels of both layers, whole ('/' becomes '_' in channel names) */
    int found = 0;
    for (int k = 0; k < 2; k++) {
        snprintf(want, sizeof(want), "%s_range_x_mean_u", path);
        for (char *q = want; *q; q++)
            if (*q == '/') *q = '_';
        want[strlen(path) - 1] = (char)('0' + k);
        for (int32_t i = 0; i < cl.n; i++) found += !strcmp(cl.items[i].name, want);
    }
    MT_CHECK_EQ_INT(found, 2);
    mt_channel_list_clear(&cl);
    mtt_ctx_clear(&c);
    mt_model_free(m);
    /* one byte over: an error at model build naming the path, its length and the limit */
    long_path_model(yaml, sizeof(yaml), MT__PATH_LEN_MAX + 1, path, sizeof(path));
    snprintf(want, sizeof(want), "its path '%s' is %d bytes long, over the limit of %d bytes",
             path, MT__PATH_LEN_MAX + 1, MT__PATH_LEN_MAX);
    m = NULL;
    MT_CHECK_ERR(mtt_try_model(&m, yaml), MT_ERR_INVALID, want);
    MT_CHECK(m == NULL);
}

/* Sizes from YAML whose products or sums do not fit in int64: range errors naming the layer
 * (or the input space) and the values, at model build. */
MT_TEST(huge_yaml_sizes_are_range_errors)
{
    static const struct {
        const char *yaml, *needle;
    } cases[] = {
        {"!obj:MLP { input_space: !obj:IndexSpace { dim: 4294967296, max_labels: 5 }, layers: [\n"
         "  !obj:ProjectionLayer { layer_name: 'p', dim: 4294967296, irange: 0.1 } ] }",
         "layer 'p' (ProjectionLayer): its output has input dim 4294967296 * dim 4294967296 "
         "features, more than an int64 holds"},
        {"!obj:MLP { input_space: !obj:CompositeSpace { components: [\n"
         "    !obj:VectorSpace { dim: 5000000000000000000 },\n"
         "    !obj:VectorSpace { dim: 5000000000000000000 } ] },\n"
         "  layers: [ !obj:Softmax { layer_name: 'y', n_classes: 2, irange: 0.1 } ] }",
         "MLP: input_space: CompositeSpace component 1 has 5000000000000000000 features, which "
         "with the 5000000000000000000 of the components before it are more than an int64 "
         "holds"},
        {"!obj:MLP { input_space: !obj:Conv2DSpace { shape: [4294967296, 4294967296],\n"
         "    num_channels: 1 },\n"
         "  layers: [ !obj:Softmax { layer_name: 'y', n_classes: 2, irange: 0.1 } ] }",
         "Conv2DSpace 4294967296 x 4294967296 with 1 channels has more features than an int64 "
         "holds"},
        {"!obj:MLP { nvis: 4611686018427387904, layers: [\n"
         "  !obj:CompositeLayer { layer_name: 'comp', layers: [\n"
         "    !obj:Softmax { layer_name: 'a', n_classes: 4611686018427387904, no_affine: true },\n"
         "    !obj:Softmax { layer_name: 'b', n_classes: 4611686018427387904, no_affine: true }\n"
         "  ] } ] }",
         "layer 'comp' (CompositeLayer): output: CompositeSpace component 1 has "
         "4611686018427387904 features, which with the 4611686018427387904 of the components "
         "before it"},
        {"!obj:MLP { nvis: 3, layers: [\n"
         "  !obj:Maxout { layer_name: 'm', num_units: 4611686018427387904, num_pieces: 4,\n"
         "      irange: 0.1 } ] }",
         "layer 'm' (Maxout): num_units 4611686018427387904 * num_pieces 4 is more than an "
         "int64 holds"},
        {"!obj:MLP { input_space: !obj:Conv2DSpace { shape: [4, 4], num_channels: 1 },\n"
         "  layers: [ !obj:ConvRectifiedLinear { layer_name: 'c',\n"
         "    output_channels: 4611686018427387904, kernel_shape: [1, 1], pool_shape: [1, 1],\n"
         "    pool_stride: [1, 1],\n"
         "    irange: 0.1 } ] }",
         "the output of 4611686018427387904 channels x 4 x 4 has more features than an int64 "
         "holds"},
        {"!obj:MLP { input_space: !obj:Conv2DSpace { shape: [4, 4], num_channels: 1 },\n"
         "  layers: [ !obj:ConvRectifiedLinear { layer_name: 'c', output_channels: 2,\n"
         "    kernel_shape: [4611686018427387904, 2], border_mode: 'full', pool_shape: [1, 1],\n"
         "    pool_stride: [1, 1],\n"
         "    irange: 0.1 } ] }",
         "kernel_shape [4611686018427387904, 2] with border_mode 'full' on a 4x4 input is more "
         "than an int64 holds"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        mt_model *m = NULL;
        mt_err_clear();
        mt_status st = mtt_try_model(&m, cases[i].yaml);
        if (st != MT_ERR_RANGE || !strstr(mt_last_error(), cases[i].needle))
            mt_test_fail(__FILE__, __LINE__, "case %d: %s: '%s' (want ERR_RANGE with '%s')",
                         (int)i, mt_status_name(st), mt_last_error(), cases[i].needle);
        MT_CHECK(m == NULL);
    }
    /* pooling with a stride of any size gives one window per axis */
    mt_model *m = mtt_model(
        "!obj:MLP { input_space: !obj:Conv2DSpace { shape: [4, 4], num_channels: 1 },\n"
        "  layers: [ !obj:ConvRectifiedLinear { layer_name: 'c', output_channels: 2,\n"
        "    kernel_shape: [1, 1], pool_type: 'max', pool_shape: [2, 3],\n"
        "    pool_stride: [9223372036854775807, 9223372036854775807], irange: 0.1 } ] }");
    MT_CHECK_EQ_INT(m->layers[0].out_h, 1);
    MT_CHECK_EQ_INT(m->layers[0].out_w, 1);
    MT_CHECK_EQ_INT(m->layers[0].out_dim, 2);
    mt_model_free(m);
}

/* inputs_to_layers routes are int32 offsets: a CompositeLayer of 4096 sub-layers over an input
 * of 2^19 components (2^31 routes) is a range error, not an overflowed allocation. */
MT_TEST(composite_route_count_is_bounded)
{
    enum { NSUB = 4096, NCOMP = 1 << 19 };
    mt__space in;
    memset(&in, 0, sizeof(in));
    in.kind = MT__SPACE_COMPOSITE;
    in.comp = mt_calloc(NCOMP, sizeof(mt__space));
    MT_CHECK(in.comp != NULL);
    for (int32_t i = 0; i < NCOMP; i++) {
        in.comp[i].kind = MT__SPACE_VECTOR;
        in.comp[i].dim = 1;
    }
    in.n_comp = NCOMP;
    mt__layer_spec comp;
    mt__layer_spec_init(&comp, MT__LAYER_COMPOSITE, "comp");
    comp.sub = mt_calloc(NSUB, sizeof(mt__layer_spec));
    MT_CHECK(comp.sub != NULL);
    for (int32_t i = 0; i < NSUB; i++) {
        char nm[16];
        snprintf(nm, sizeof(nm), "s%d", (int)i);
        mt__layer_spec_init(&comp.sub[i], MT__LAYER_LINEAR, nm);
        comp.sub[i].dim = 1;
        comp.sub[i].has_irange = true;
    }
    comp.n_sub = NSUB;
    int32_t key = 0, off[2] = {0, 1}, val = 0; /* component 0 -> sub-layer 0 */
    comp.n_route = 1;
    comp.route_key = mt_malloc(sizeof(int32_t));
    comp.route_off = mt_malloc(2 * sizeof(int32_t));
    comp.route_val = mt_malloc(sizeof(int32_t));
    MT_CHECK(comp.route_key && comp.route_off && comp.route_val);
    memcpy(comp.route_key, &key, sizeof(key));
    memcpy(comp.route_off, off, sizeof(off));
    memcpy(comp.route_val, &val, sizeof(val));
    mt__mlp_desc d;
    memset(&d, 0, sizeof(d));
    d.kind = MT__MODEL_MLP;
    d.n_layers = 1;
    d.layers = &comp;
    d.input_space = &in;
    mt_model *m = NULL;
    MT_CHECK_ERR(mt__model_new_mlp(&m, &d), MT_ERR_RANGE,
                 "layer 'comp' (CompositeLayer): inputs_to_layers over 4096 sub-layers and "
                 "524288 input components gives 2147483648 routes, over the limit of 2147483646");
    MT_CHECK(m == NULL);
    mt__layer_spec_clear(&comp);
    mt__space_clear(&in);
}
