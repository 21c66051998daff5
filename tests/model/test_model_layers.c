/* Layer tests: Maxout pooling (disjoint, overlapping, min_zero), convolution layers (b01c input
 * to NCHW, untied and tied biases, valid/full borders, Pylearn2's ceil-mode max pooling) against
 * direct loops, the conv tutorial's shapes, gradients through conv + pooling, dropout masks,
 * autoencoders and corruptors, PretrainedLayer and first-layer filters. */
#include <stdio.h>
#include <string.h>

#include "model_test_util.h"

static double *forward(mt_model *m, const float *X, int64_t n, int32_t layer, bool corrupt,
                       mt_type *type_out)
{
    mtt_ctx c;
    mtt_ctx_init(&c, m, false, 0, 0, 3);
    mt_var outs[16];
    mt_fprop_options o;
    memset(&o, 0, sizeof(o));
    o.corrupt = corrupt;
    MT_CHECK_OK(mt_model_fprop_layers(&c.mg, &o, outs));
    if (type_out) *type_out = *mt_graph_type(c.g, outs[layer]);
    mt_function *f = mtt_compile(&c, 1, &outs[layer], false, MT_MODE_FAST_RUN);
    mt_array res = {0};
    mtt_call(f, X, n, mt_model_input_dim(m), NULL, NULL, 0, 1, &res);
    double *d = mtt_to_double(&res);
    mt_array_clear(&res);
    mt_function_free(f);
    mtt_ctx_clear(&c);
    return d;
}

/* ---------------------------------------------------------------- maxout */

MT_TEST(maxout_pools_as_pylearn2)
{
    static const struct {
        const char *extra;
        int64_t out_dim, stride;
        bool min_zero;
    } cases[3] = {{"", 4, 3, false}, {"pool_stride: 1,", 10, 1, false}, {"min_zero: true,", 4, 3, true}};
    for (int k = 0; k < 3; k++) {
        char yaml[512];
        snprintf(yaml, sizeof(yaml),
                 "!obj:MLP {nvis: 5, layers: [!obj:pylearn2.models.maxout.Maxout {layer_name: "
                 "'h0', num_units: 4, num_pieces: 3, %s irange: 1.0, init_bias: -0.3}]}",
                 cases[k].extra);
        mt_model *m = mtt_model(yaml);
        MT_CHECK_EQ_INT(mt_model_output_dim(m), cases[k].out_dim);
        const mt_array *W = mtt_param_array(m, "h0_W");
        MT_CHECK(W->dims[0] == 5 && W->dims[1] == 12);
        float X[7 * 5];
        mtt_fill(X, 35, 21 + (uint64_t)k);
        mt_type t;
        double *got = forward(m, X, 7, 0, false, &t);
        MT_CHECK(t.ndim == 2 && t.shape[1] == cases[k].out_dim);
        const float *w = mtt_param(m, "h0_W"), *b = mtt_param(m, "h0_b");
        double ref[7 * 10];
        for (int r = 0; r < 7; r++)
            for (int64_t j = 0; j < cases[k].out_dim; j++) {
                double best = cases[k].min_zero ? 0.0 : -INFINITY;
                for (int64_t p = 0; p < 3; p++) {
                    int64_t u = j * cases[k].stride + p;
                    double z = b[u];
                    for (int i = 0; i < 5; i++) z += (double)X[r * 5 + i] * w[i * 12 + u];
                    best = fmax(best, z);
                }
                ref[r * cases[k].out_dim + j] = best;
            }
        MT_CHECK_ALLCLOSE(got, ref, (size_t)(7 * cases[k].out_dim), 1e-5, 1e-5);
        mt_free(got);
        mt_model_free(m);
    }
}

/* ---------------------------------------------------------------- convolution */

/* Reference of a conv layer on b01c input rows: detector d[n, o, i, j] (untied or tied bias),
 * then the nonlinearity and Pylearn2's ceil-mode pooling (windows clipped at the border). */
static void conv_ref(const float *X, int64_t N, int64_t H, int64_t Wd, int64_t C, const float *W,
                     int64_t O, int64_t KH, int64_t KW, int64_t pad, const float *b, bool tied,
                     int act, int64_t P, int64_t S, int pool_mean, double *out, int64_t *OH,
                     int64_t *OW)
{
    int64_t DH = H + 2 * pad - KH + 1, DW = Wd + 2 * pad - KW + 1;
    double *d = mt_malloc((size_t)(N * O * DH * DW) * sizeof(double));
    for (int64_t n = 0; n < N; n++)
        for (int64_t o = 0; o < O; o++)
            for (int64_t i = 0; i < DH; i++)
                for (int64_t j = 0; j < DW; j++) {
                    double s = tied ? b[o] : b[(o * DH + i) * DW + j];
                    for (int64_t c = 0; c < C; c++)
                        for (int64_t ki = 0; ki < KH; ki++)
                            for (int64_t kj = 0; kj < KW; kj++) {
                                int64_t r = i + ki - pad, q = j + kj - pad;
                                if (r < 0 || r >= H || q < 0 || q >= Wd) continue;
                                s += (double)W[((o * C + c) * KH + ki) * KW + kj] *
                                     X[n * H * Wd * C + (r * Wd + q) * C + c];
                            }
                    if (act == 1) s = s > 0 ? s : 0;
                    if (act == 2) s = tanh(s);
                    d[((n * O + o) * DH + i) * DW + j] = s;
                }
    if (P == 0) {
        memcpy(out, d, (size_t)(N * O * DH * DW) * sizeof(double));
        *OH = DH;
        *OW = DW;
        mt_free(d);
        return;
    }
    int64_t ph = (DH - P + S - 1) / S + 1, pw = (DW - P + S - 1) / S + 1;
    for (int64_t n = 0; n < N; n++)
        for (int64_t o = 0; o < O; o++)
            for (int64_t i = 0; i < ph; i++)
                for (int64_t j = 0; j < pw; j++) {
                    double best = -INFINITY, sum = 0;
                    int64_t cnt = 0;
                    for (int64_t a = i * S; a < i * S + P && a < DH; a++)
                        for (int64_t c = j * S; c < j * S + P && c < DW; c++) {
                            double v = d[((n * O + o) * DH + a) * DW + c];
                            best = fmax(best, v);
                            sum += v;
                            cnt++;
                        }
                    out[((n * O + o) * ph + i) * pw + j] = pool_mean ? sum / (double)cnt : best;
                }
    *OH = ph;
    *OW = pw;
    mt_free(d);
}

MT_TEST(conv_layers_match_loops)
{
    static const struct {
        const char *layer;
        bool tied;
        int act;
        int64_t pad, P, S;
        int mean;
    } cases[4] = {
        {"!obj:ConvElemwise {layer_name: 'c', output_channels: 3, kernel_shape: [3, 2], "
         "irange: 0.5, init_bias: 0.1, nonlinearity: !obj:TanhConvNonlinearity {}}",
         false, 2, 0, 0, 0, 0},
        {"!obj:ConvRectifiedLinear {layer_name: 'c', output_channels: 3, kernel_shape: [2, 2], "
         "pool_shape: [3, 3], pool_stride: [2, 2], irange: 0.5, tied_b: true}",
         true, 1, 0, 3, 2, 0},
        {"!obj:ConvElemwise {layer_name: 'c', output_channels: 2, kernel_shape: [3, 3], "
         "border_mode: 'full', istdev: 0.5, nonlinearity: !obj:IdentityConvNonlinearity {}}",
         false, 0, 2, 0, 0, 0},
        {"!obj:ConvElemwise {layer_name: 'c', output_channels: 2, kernel_shape: [2, 2], "
         "irange: 0.5, pool_type: 'mean', pool_shape: [2, 2], pool_stride: [2, 2], tied_b: 1, "
         "nonlinearity: !obj:RectifierConvNonlinearity {}}",
         true, 1, 0, 2, 2, 1},
    };
    for (int k = 0; k < 4; k++) {
        char yaml[768];
        snprintf(yaml, sizeof(yaml),
                 "!obj:MLP {input_space: !obj:pylearn2.space.Conv2DSpace {shape: [7, 5], "
                 "num_channels: 2}, layers: [%s]}", cases[k].layer);
        mt_model *m = mtt_model(yaml);
        const mt_array *W = mtt_param_array(m, "c_W"), *B = mtt_param_array(m, "c_b");
        MT_CHECK(W->ndim == 4 && W->dims[1] == 2); /* [out, in, kh, kw] */
        MT_CHECK_EQ_INT(B->ndim, cases[k].tied ? 1 : 3);
        /* random biases so that untied positions differ */
        float *b = mtt_param(m, "c_b");
        mtt_fill(b, mt_array_size(B), 99);
        float X[3 * 70];
        mtt_fill(X, 210, 5 + (uint64_t)k);
        mt_type t;
        double *got = forward(m, X, 3, 0, false, &t);
        double ref[3 * 3 * 9 * 7];
        int64_t oh, ow;
        conv_ref(X, 3, 7, 5, 2, mtt_param(m, "c_W"), W->dims[0], W->dims[2], W->dims[3],
                 cases[k].pad, b, cases[k].tied, cases[k].act, cases[k].P, cases[k].S,
                 cases[k].mean, ref, &oh, &ow);
        MT_CHECK(t.ndim == 4 && t.shape[1] == W->dims[0] && t.shape[2] == oh && t.shape[3] == ow);
        MT_CHECK_EQ_INT(mt_model_output_dim(m), W->dims[0] * oh * ow);
        MT_CHECK_ALLCLOSE(got, ref, (size_t)(3 * W->dims[0] * oh * ow), 1e-5, 1e-4);
        mt_free(got);
        mt_model_free(m);
    }
}

static const char *CONV_TUTORIAL =
    "!obj:pylearn2.models.mlp.MLP {\n"
    "  batch_size: 2,\n"
    "  input_space: !obj:pylearn2.space.Conv2DSpace {shape: [28, 28], num_channels: 1},\n"
    "  layers: [ !obj:pylearn2.models.mlp.ConvRectifiedLinear {layer_name: 'h2',\n"
    "      output_channels: 64, irange: .05, kernel_shape: [5, 5], pool_shape: [4, 4],\n"
    "      pool_stride: [2, 2], max_kernel_norm: 1.9365},\n"
    "    !obj:pylearn2.models.mlp.ConvRectifiedLinear {layer_name: 'h3',\n"
    "      output_channels: 64, irange: .05, kernel_shape: [5, 5], pool_shape: [4, 4],\n"
    "      pool_stride: [2, 2], max_kernel_norm: 1.9365},\n"
    "    !obj:pylearn2.models.mlp.Softmax {max_col_norm: 1.9365, layer_name: 'y',\n"
    "      n_classes: 10, istdev: .05} ]\n"
    "}\n";

/* 28x28 -> 5x5 conv (24x24) -> pool 4/2 -> 11x11 -> conv (7x7) -> pool 4/2 -> 3x3 -> 10. */
MT_TEST(conv_tutorial_shapes)
{
    mt_model *m = mtt_model(CONV_TUTORIAL);
    MT_CHECK_EQ_INT(mt_model_input_dim(m), 784);
    const mt_array *W2 = mtt_param_array(m, "h2_W"), *b2 = mtt_param_array(m, "h2_b");
    MT_CHECK(W2->dims[0] == 64 && W2->dims[1] == 1 && W2->dims[2] == 5 && W2->dims[3] == 5);
    MT_CHECK(b2->ndim == 3 && b2->dims[1] == 24 && b2->dims[2] == 24); /* untied: detector */
    const mt_array *W3 = mtt_param_array(m, "h3_W"), *Wy = mtt_param_array(m, "y_W");
    MT_CHECK(W3->dims[0] == 64 && W3->dims[1] == 64);
    MT_CHECK(Wy->dims[0] == 64 * 3 * 3 && Wy->dims[1] == 10);
    mtt_ctx c;
    mtt_ctx_init(&c, m, true, 10, 0, 1);
    mt_var outs[3];
    MT_CHECK_OK(mt_model_fprop_layers(&c.mg, NULL, outs));
    const int64_t want[2][3] = {{64, 11, 11}, {64, 3, 3}};
    for (int i = 0; i < 2; i++) {
        const mt_type *t = mt_graph_type(c.g, outs[i]);
        MT_CHECK(t->ndim == 4 && t->shape[1] == want[i][0] && t->shape[2] == want[i][1] &&
                 t->shape[3] == want[i][2]);
    }
    mt_channel_list cl = {0};
    MT_CHECK_OK(mt_model_channels(&c.mg, &cl));
    bool found = false;
    for (int32_t i = 0; i < cl.n; i++) found |= !strcmp(cl.items[i].name, "h2_kernel_norms_max");
    MT_CHECK(found);
    mt_var cost;
    MT_CHECK_OK(mt_model_default_cost(&c.mg, NULL, &cost));
    mt_var fo[2] = {outs[2], cost};
    mt_function *f = mtt_compile(&c, 2, fo, true, MT_MODE_FAST_RUN);
    float *X = mt_malloc(2 * 784 * sizeof(float));
    mtt_fill(X, 2 * 784, 4);
    int64_t lab[2] = {3, 7};
    mt_array res[2] = {{0}};
    mtt_call(f, X, 2, 784, lab, NULL, 0, 2, res);
    MT_CHECK(res[0].ndim == 2 && res[0].dims[0] == 2 && res[0].dims[1] == 10);
    double *p = mtt_to_double(&res[0]);
    for (int r = 0; r < 2; r++) {
        double s = 0;
        for (int k = 0; k < 10; k++) s += p[r * 10 + k];
        MT_CHECK_CLOSE(s, 1.0, 1e-5, 0);
    }
    MT_CHECK(isfinite(mtt_scalar(&res[1])) && mtt_scalar(&res[1]) > 0);
    mt_free(p);
    mt_free(X);
    mt_array_clear(&res[0]);
    mt_array_clear(&res[1]);
    mt_function_free(f);
    mt_channel_list_clear(&cl);
    mtt_ctx_clear(&c);
    mt_model_free(m);
}

MT_TEST(conv_gradients_verify_grad)
{
    mt_model *m = mtt_model(
        "!obj:MLP {input_space: !obj:Conv2DSpace {shape: [5, 4], num_channels: 2}, layers: [\n"
        " !obj:ConvElemwise {layer_name: 'c', output_channels: 2, kernel_shape: [2, 2],\n"
        "   irange: 0.7, pool_type: 'max', pool_shape: [2, 2], pool_stride: [1, 2],\n"
        "   nonlinearity: !obj:TanhConvNonlinearity {}},\n"
        " !obj:Softmax {layer_name: 'y', n_classes: 3, irange: 0.5}]}");
    mtt_ctx c;
    mtt_ctx_init(&c, m, true, 3, 0, 1);
    mt_var cost;
    MT_CHECK_OK(mt_model_default_cost(&c.mg, NULL, &cost));
    float X[3 * 40];
    mtt_fill(X, 120, 8);
    mtt_fill(mtt_param(m, "c_b"), mt_array_size(mtt_param_array(m, "c_b")), 3);
    int64_t lab[3] = {1, 0, 2}, n = 3, xd[2] = {3, 40};
    mt_array ax = {0}, ay = {0};
    MT_CHECK_OK(mt_array_from_host(&ax, mtt_host(), MT_FLOAT32, 2, xd, X));
    MT_CHECK_OK(mt_array_from_host(&ay, mtt_host(), MT_INT64, 1, &n, lab));
    mt_var ins[6] = {c.mg.X, c.mg.y};
    const mt_array *vals[6] = {&ax, &ay};
    for (int32_t i = 0; i < 4; i++) {
        ins[2 + i] = c.mg.params[i];
        vals[2 + i] = &mt_model_param_at(m, i)->value;
    }
    mt_verify_grad_report rep;
    MT_CHECK_OK(mt_verify_grad(c.g, cost, 6, ins, vals, NULL, &rep));
    MT_CHECK(rep.passed);
    mt_array_clear(&ax);
    mt_array_clear(&ay);
    mtt_ctx_clear(&c);
    mt_model_free(m);
}

/* ---------------------------------------------------------------- dropout */

/* Two Linear layers with identity weights: the output is X * m0 * s0 * m1 * s1 with Bernoulli
 * masks; h0 uses the override (0.8, 1.25), y the defaults (0.5, 2.0). */
MT_TEST(dropout_masks_and_scales)
{
    mt_model *m = mtt_model("!obj:MLP {nvis: 200, layers: [!obj:Linear {layer_name: 'h0', "
                            "dim: 200, irange: 0.}, !obj:Linear {layer_name: 'y', dim: 200, "
                            "irange: 0.}]}");
    for (int l = 0; l < 2; l++) {
        float *W = mtt_param(m, l ? "y_W" : "h0_W");
        for (int i = 0; i < 200; i++) W[i * 200 + i] = 1.0f;
    }
    const char *names[1] = {"h0"};
    double p[1] = {0.8}, s[1] = {1.25};
    mt_dropout_spec ds;
    mt_dropout_spec_init(&ds);
    ds.n_include_probs = 1;
    ds.include_prob_layers = names;
    ds.include_probs = p;
    ds.n_input_scales = 1;
    ds.input_scale_layers = names;
    ds.input_scales = s;
    mt_cost *dc;
    MT_CHECK_OK(mt_cost_dropout(&dc, &ds));
    MT_CHECK(mt_cost_is_stochastic(dc, m));
    MT_CHECK_OK(mt_cost_check(dc, m));
    double probs[2], scales[2];
    MT_CHECK_OK(mt__dropout_arrays(dc, m, probs, scales));
    MT_CHECK(probs[0] == 0.8 && scales[0] == 1.25 && probs[1] == 0.5 && scales[1] == 2.0);
    float *X = mt_malloc(50 * 200 * sizeof(float));
    for (int i = 0; i < 50 * 200; i++) X[i] = 1.0f;
    for (int per_batch = 0; per_batch < 2; per_batch++) {
        mtt_ctx c;
        mtt_ctx_init(&c, m, false, 0, 0, 1234);
        mt_fprop_options o;
        memset(&o, 0, sizeof(o));
        o.dropout = true;
        o.include_prob = probs;
        o.scale = scales;
        o.per_batch_mask = per_batch;
        mt_var out;
        MT_CHECK_OK(mt_model_fprop(&c.mg, &o, &out));
        mt_function *f = mtt_compile(&c, 1, &out, false, MT_MODE_FAST_RUN);
        mt_array r1 = {0}, r2 = {0};
        mtt_call(f, X, 50, 200, NULL, NULL, 0, 1, &r1);
        mtt_call(f, X, 50, 200, NULL, NULL, 0, 1, &r2);
        double *a = mtt_to_double(&r1), *b = mtt_to_double(&r2);
        int64_t kept = 0, diff = 0, rows_differ = 0;
        for (int i = 0; i < 50 * 200; i++) {
            MT_CHECK(a[i] == 0.0 || fabs(a[i] - 2.5) < 1e-6);
            kept += a[i] != 0;
            diff += a[i] != b[i];
            if (i >= 200) rows_differ += a[i] != a[i % 200];
        }
        double frac = (double)kept / 10000.0;
        if (per_batch) {
            MT_CHECK_EQ_INT(rows_differ, 0); /* one mask for the whole batch */
            MT_CHECK_CLOSE(frac, 0.4, 0.12, 0);
        } else {
            MT_CHECK(rows_differ > 1000);
            MT_CHECK_CLOSE(frac, 0.4, 0.02, 0); /* 0.8 * 0.5 */
        }
        MT_CHECK(diff > 0); /* a new mask on every call */
        mt_free(a);
        mt_free(b);
        mt_array_clear(&r1);
        mt_array_clear(&r2);
        mt_function_free(f);
        mtt_ctx_clear(&c);
    }
    mt_free(X);
    mt_cost_free(dc);
    /* Dropout with every include probability 1 is exactly the default cost */
    mt_dropout_spec_init(&ds);
    ds.default_input_include_prob = 1.0;
    MT_CHECK_OK(mt_cost_dropout(&dc, &ds));
    mt_cost *def;
    MT_CHECK_OK(mt_cost_default(&def));
    mtt_ctx c;
    mtt_ctx_init(&c, m, false, 0, 200, 1);
    mt_var v[2];
    MT_CHECK_OK(mt_cost_expr(dc, &c.mg, &v[0]));
    MT_CHECK_OK(mt_cost_expr(def, &c.mg, &v[1]));
    MT_CHECK_EQ_INT(v[0], v[1]); /* hash-consed: the same graph */
    mtt_ctx_clear(&c);
    mt_cost_free(def);
    mt_cost_free(dc);
    mt_model_free(m);
}

/* ---------------------------------------------------------------- autoencoders */

MT_TEST(denoising_autoencoder_values_and_corruption)
{
    mt_model *m = mtt_model(
        "!obj:pylearn2.models.autoencoder.DenoisingAutoencoder {nvis: 6, nhid: 4, irange: 0.5,\n"
        "  corruptor: !obj:pylearn2.corruption.BinomialCorruptor {corruption_level: .3},\n"
        "  act_enc: 'tanh', act_dec: null}");
    MT_CHECK_STR_EQ(mt_model_type_name(m), "DenoisingAutoencoder");
    MT_CHECK(!mt_model_needs_targets(m));
    MT_CHECK_EQ_INT(mt_model_n_params(m), 4);
    MT_CHECK(mt_model_find_param(m, "Wprime") >= 0 && mt_model_find_param(m, "vb") >= 0);
    const float *Wp = mtt_param(m, "Wprime");
    for (int i = 0; i < 24; i++) MT_CHECK(fabs(Wp[i]) <= 0.25); /* (0.5 - U) * irange */
    float X[5 * 6];
    mtt_fill(X, 30, 2);
    const float *W = mtt_param(m, "W"), *hb = mtt_param(m, "hb"), *vb = mtt_param(m, "vb");
    double ref[30], msre = 0;
    for (int r = 0; r < 5; r++) {
        double h[4];
        for (int j = 0; j < 4; j++) {
            double z = hb[j];
            for (int i = 0; i < 6; i++) z += (double)X[r * 6 + i] * W[i * 4 + j];
            h[j] = tanh(z);
        }
        for (int i = 0; i < 6; i++) {
            double z = vb[i];
            for (int j = 0; j < 4; j++) z += h[j] * Wp[j * 6 + i];
            ref[r * 6 + i] = z;
            msre += (z - X[r * 6 + i]) * (z - X[r * 6 + i]);
        }
    }
    double *got = forward(m, X, 5, 1, false, NULL);
    MT_CHECK_ALLCLOSE(got, ref, 30, 1e-5, 1e-5);
    mt_free(got);
    mtt_ctx c;
    mtt_ctx_init(&c, m, false, 0, 0, 1);
    mt_var cost;
    MT_CHECK_OK(mt_model_default_cost(&c.mg, NULL, &cost));
    mt_function *f = mtt_compile(&c, 1, &cost, false, MT_MODE_FAST_RUN);
    mt_array res = {0};
    mtt_call(f, X, 5, 6, NULL, NULL, 0, 1, &res);
    MT_CHECK_CLOSE(mtt_scalar(&res), msre / 5.0, 1e-5, 1e-5);
    mt_array_clear(&res);
    mt_function_free(f);
    mtt_ctx_clear(&c);
    mt_cost *msc;
    MT_CHECK_OK(mt_cost_msre(&msc));
    MT_CHECK(mt_cost_is_stochastic(msc, m));
    MT_CHECK(!mt_cost_needs_targets(msc, m));
    MT_CHECK_OK(mt_cost_check(msc, m));
    mt_cost_free(msc);
    mt_model_free(m);
}

/* With W = I, hb = 0 and a linear encoder the code is the corrupted input itself. */
MT_TEST(corruptor_statistics)
{
    for (int gauss = 0; gauss < 2; gauss++) {
        mt_model *m = mtt_model(gauss ? "!obj:DenoisingAutoencoder {nvis: 100, nhid: 100, "
                                        "act_enc: null, act_dec: null, corruptor: "
                                        "!obj:GaussianCorruptor {stdev: 0.5}}"
                                      : "!obj:DenoisingAutoencoder {nvis: 100, nhid: 100, "
                                        "act_enc: null, act_dec: null, corruptor: "
                                        "!obj:BinomialCorruptor {corruption_level: 0.25}}");
        float *W = mtt_param(m, "W");
        memset(W, 0, 100 * 100 * sizeof(float));
        for (int i = 0; i < 100; i++) W[i * 100 + i] = 1.0f;
        float *X = mt_malloc(40 * 100 * sizeof(float));
        for (int i = 0; i < 4000; i++) X[i] = 2.0f;
        double *h = forward(m, X, 40, 0, true, NULL);
        double zeros = 0, s = 0, s2 = 0;
        for (int i = 0; i < 4000; i++) {
            zeros += h[i] == 0;
            s += h[i] - 2.0;
            s2 += (h[i] - 2.0) * (h[i] - 2.0);
            if (!gauss) MT_CHECK(h[i] == 0 || h[i] == 2.0);
        }
        if (gauss) {
            MT_CHECK(fabs(s / 4000) < 0.03);
            MT_CHECK_CLOSE(sqrt(s2 / 4000), 0.5, 0, 0.05);
        } else {
            MT_CHECK_CLOSE(zeros / 4000, 0.25, 0.025, 0);
        }
        double *clean = forward(m, X, 40, 0, false, NULL);
        for (int i = 0; i < 4000; i++) MT_CHECK(clean[i] == 2.0);
        mt_free(clean);
        mt_free(h);
        mt_free(X);
        mt_model_free(m);
    }
}

MT_TEST(pretrained_layer_uses_the_encoder)
{
    mt_model *m = mtt_model(
        "!obj:MLP {nvis: 6, layers: [\n"
        "  !obj:pylearn2.models.mlp.PretrainedLayer {layer_name: 'h1', freeze_params: true,\n"
        "      layer_content: !pkl: 'dae@6x4.pkl'},\n"
        "  !obj:Softmax {layer_name: 'y', n_classes: 2, irange: 0.1}]}");
    /* the same autoencoder the test loader builds */
    mt__ae_desc d;
    memset(&d, 0, sizeof(d));
    d.denoising = true;
    d.nvis = 6;
    d.nhid = 4;
    d.act_enc = MT__ACT_TANH;
    d.irange = 0.05;
    d.istdev = NAN;
    d.rng = 77;
    d.corruptor.kind = MT__CORRUPT_BINOMIAL;
    d.corruptor.level = 0.2;
    mt_model *ae;
    MT_CHECK_OK(mt__model_new_autoencoder(&ae, &d));
    MT_CHECK(!memcmp(mtt_param(m, "h1_W"), mtt_param(ae, "W"), 24 * sizeof(float)));
    const mt_model_param *pw = mt_model_param_const(m, mt_model_find_param(m, "h1_W"));
    const mt_model_param *py = mt_model_param_const(m, mt_model_find_param(m, "y_W"));
    MT_CHECK(pw->frozen && !py->frozen);
    float X[2 * 6];
    mtt_fill(X, 12, 1);
    double *h = forward(m, X, 2, 0, false, NULL);
    const float *W = mtt_param(ae, "W"), *hb = mtt_param(ae, "hb");
    for (int r = 0; r < 2; r++)
        for (int j = 0; j < 4; j++) {
            double z = hb[j];
            for (int i = 0; i < 6; i++) z += (double)X[r * 6 + i] * W[i * 4 + j];
            MT_CHECK_CLOSE(h[r * 4 + j], tanh(z), 1e-6, 1e-5);
        }
    mt_free(h);
    mt_model *bad;
    MT_CHECK_ERR(mtt_try_model(&bad, "!obj:MLP {nvis: 5, layers: [!obj:PretrainedLayer "
                                     "{layer_name: 'h1', layer_content: !pkl: 'dae@6x4.pkl'}]}"),
                 MT_ERR_SHAPE, "expects 6 inputs");
    mt_model_free(ae);
    mt_model_free(m);
}

MT_TEST(first_layer_filters)
{
    mt_model *m = mtt_model("!obj:MLP {nvis: 16, layers: [!obj:Linear {layer_name: 'h', dim: 3, "
                            "irange: 1.}]}");
    float *f;
    int64_t nf, shape[3];
    MT_CHECK_OK(mt_model_first_layer_filters(m, NULL, &f, &nf, shape));
    MT_CHECK(nf == 3 && shape[0] == 4 && shape[1] == 4 && shape[2] == 1);
    const float *W = mtt_param(m, "h_W");
    for (int j = 0; j < 3; j++)
        for (int i = 0; i < 16; i++) MT_CHECK(f[j * 16 + i] == W[i * 3 + j]);
    mt_free(f);
    int64_t topo[3] = {2, 4, 2};
    MT_CHECK_OK(mt_model_first_layer_filters(m, topo, &f, &nf, shape));
    MT_CHECK(shape[0] == 2 && shape[1] == 4 && shape[2] == 2);
    mt_free(f);
    mt_model_free(m);
    m = mtt_model("!obj:MLP {nvis: 15, layers: [!obj:Linear {layer_name: 'h', dim: 3, irange: "
                  "1.}]}");
    MT_CHECK_ERR(mt_model_first_layer_filters(m, NULL, &f, &nf, shape), MT_ERR_UNSUPPORTED,
                 "not an image");
    mt_model_free(m);
    m = mtt_model("!obj:MLP {input_space: !obj:Conv2DSpace {shape: [5, 5], num_channels: 3}, "
                  "layers: [!obj:ConvElemwise {layer_name: 'c', output_channels: 2, "
                  "kernel_shape: [3, 2], irange: 1., nonlinearity: "
                  "!obj:IdentityConvNonlinearity {}}]}");
    MT_CHECK_OK(mt_model_first_layer_filters(m, NULL, &f, &nf, shape));
    MT_CHECK(nf == 2 && shape[0] == 3 && shape[1] == 2 && shape[2] == 3);
    const float *K = mtt_param(m, "c_W"); /* [2, 3, 3, 2] */
    MT_CHECK(f[((1 * 3 + 2) * 2 + 1) * 3 + 0] == K[((1 * 3 + 0) * 3 + 2) * 2 + 1]);
    mt_free(f);
    mt_model_free(m);
}
