/* Recurrent layers (SimpleRNN, LSTM, GRU): forward values against plain C loops in double
 * (batch 3, n_steps 4, n_in 5, dim 6; last state and return_sequences, forward and reverse, a
 * SimpleRNN activation, an image input, two recurrent layers stacked, a ProjectionLayer's
 * tokens), in FAST_RUN and FAST_COMPILE; the loop built once per graph; gradients
 * with respect to the input and every parameter by central differences with the forward pass
 * in float64 (mt_verify_grad, tolerance 1e-5); parameter names, shapes and initialization
 * (forget_bias, orthogonal U, learning-rate scales), weight decay over W and U, channels, the
 * YAML round trip, and the errors with the position of the layer at fault. */
#include <stdio.h>
#include <string.h>

#include "model_test_util.h"

enum { KIND_RNN = 0, KIND_LSTM = 1, KIND_GRU = 2 };
static const char *const KIND_NAME[3] = {"SimpleRNN", "LSTM", "GRU"};

/* ---------------------------------------------------------------- reference */

typedef struct rnn_ref {
    int kind;
    int64_t T, n_in, d;
    bool seqs, rev;
    int act; /* SimpleRNN: 0 tanh, 1 sigmoid, 2 relu */
    const float *W, *U, *b;
} rnn_ref;

static double sigm(double z) { return 1.0 / (1.0 + exp(-z)); }

/* out [N, seqs ? T*d : d] of the layer on X [N, T*n_in]. */
static void rnn_forward(const rnn_ref *c, const double *X, int64_t N, double *out)
{
    int64_t d = c->d, G = c->kind == KIND_LSTM ? 4 : c->kind == KIND_GRU ? 3 : 1, gd = G * d;
    double h[64], cs[64], zx[256], zh[256], nh[64];
    MT_CHECK(d <= 64 && gd <= 256);
    for (int64_t r = 0; r < N; r++) {
        for (int64_t j = 0; j < d; j++) h[j] = cs[j] = 0.0;
        for (int64_t i = 0; i < c->T; i++) {
            int64_t t = c->rev ? c->T - 1 - i : i;
            const double *x = X + r * c->T * c->n_in + t * c->n_in;
            for (int64_t j = 0; j < gd; j++) {
                double a = 0.0, e = 0.0;
                for (int64_t k = 0; k < c->n_in; k++) a += x[k] * c->W[k * gd + j];
                for (int64_t k = 0; k < d; k++) e += h[k] * c->U[k * gd + j];
                zx[j] = a;
                zh[j] = e;
            }
            for (int64_t j = 0; j < d; j++) {
                if (c->kind == KIND_RNN) {
                    double z = zx[j] + zh[j] + c->b[j];
                    nh[j] = c->act == 1 ? sigm(z) : c->act == 2 ? (z > 0 ? z : 0) : tanh(z);
                } else if (c->kind == KIND_LSTM) {
                    double gi = sigm(zx[j] + zh[j] + c->b[j]);
                    double gf = sigm(zx[d + j] + zh[d + j] + c->b[d + j]);
                    double gg = tanh(zx[2 * d + j] + zh[2 * d + j] + c->b[2 * d + j]);
                    double go = sigm(zx[3 * d + j] + zh[3 * d + j] + c->b[3 * d + j]);
                    cs[j] = gf * cs[j] + gi * gg;
                    nh[j] = go * tanh(cs[j]);
                } else {
                    const float *bi = c->b, *bh = c->b + gd;
                    double rr = sigm(zx[j] + bi[j] + zh[j] + bh[j]);
                    double zz = sigm(zx[d + j] + bi[d + j] + zh[d + j] + bh[d + j]);
                    double nn = tanh(zx[2 * d + j] + bi[2 * d + j] +
                                     rr * (zh[2 * d + j] + bh[2 * d + j]));
                    nh[j] = (1.0 - zz) * nn + zz * h[j];
                }
            }
            for (int64_t j = 0; j < d; j++) h[j] = nh[j];
            if (c->seqs)
                for (int64_t j = 0; j < d; j++) out[r * c->T * d + t * d + j] = h[j];
        }
        if (!c->seqs)
            for (int64_t j = 0; j < d; j++) out[r * d + j] = h[j];
    }
}

static rnn_ref ref_of(mt_model *m, const char *layer, int kind, int64_t T, int64_t n_in,
                      int64_t d, bool seqs, bool rev, int act)
{
    char w[80], u[80], b[80];
    snprintf(w, sizeof w, "%s_W", layer);
    snprintf(u, sizeof u, "%s_U", layer);
    snprintf(b, sizeof b, "%s_b", layer);
    rnn_ref r = {kind, T, n_in, d, seqs, rev, act, mtt_param(m, w), mtt_param(m, u),
                 mtt_param(m, b)};
    return r;
}

/* Output of the whole model for X in double (float32 forward pass in mode). */
static double *model_out(mt_model *m, const float *X, int64_t n, mt_mode mode)
{
    mtt_ctx c;
    mtt_ctx_init(&c, m, false, 0, 0, 3);
    mt_var out;
    MT_CHECK_OK(mt_model_fprop(&c.mg, NULL, &out));
    mt_function *f = mtt_compile(&c, 1, &out, false, mode);
    mt_array res = {0};
    mtt_call(f, X, n, mt_model_input_dim(m), NULL, NULL, 0, 1, &res);
    MT_CHECK_EQ_INT(res.ndim, 2);
    MT_CHECK_EQ_INT(res.dims[0], n);
    MT_CHECK_EQ_INT(res.dims[1], mt_model_output_dim(m));
    double *d = mtt_to_double(&res);
    mt_array_clear(&res);
    mt_function_free(f);
    mtt_ctx_clear(&c);
    return d;
}

enum { B = 3, T = 4, NIN = 5, DIM = 6 };

static mt_model *one_layer(int kind, bool seqs, bool rev, const char *extra)
{
    char y[512];
    snprintf(y, sizeof y,
             "!obj:MLP {nvis: %d, seed: [7], layers: [!obj:%s {layer_name: 'r', dim: %d, "
             "n_steps: %d, irange: 0.6, init_bias: 0.1, return_sequences: %s, reverse: %s%s}]}",
             T * NIN, KIND_NAME[kind], DIM, T, seqs ? "true" : "false", rev ? "true" : "false",
             extra);
    return mtt_model(y);
}

MT_TEST(rnn_forward_matches_loops)
{
    float X[B * T * NIN];
    double Xd[B * T * NIN], ref[B * T * DIM];
    mtt_fill(X, B * T * NIN, 41);
    for (int i = 0; i < B * T * NIN; i++) Xd[i] = X[i];
    for (int kind = 0; kind < 3; kind++)
        for (int v = 0; v < 4; v++) {
            bool seqs = v & 1, rev = v & 2;
            mt_model *m = one_layer(kind, seqs, rev, "");
            rnn_ref r = ref_of(m, "r", kind, T, NIN, DIM, seqs, rev, 0);
            rnn_forward(&r, Xd, B, ref);
            int64_t n_out = B * (seqs ? T * DIM : DIM);
            MT_CHECK_EQ_INT(mt_model_output_dim(m), seqs ? T * DIM : DIM);
            for (int mode = 0; mode < 2; mode++) {
                double *got = model_out(m, X, B, mode ? MT_MODE_FAST_COMPILE : MT_MODE_FAST_RUN);
                MT_CHECK_ALLCLOSE(got, ref, n_out, 1e-5, 1e-4);
                mt_free(got);
            }
            mt_model_free(m);
        }
    /* a Conv2DSpace input (b01c rows, one channel): read row by row, as the same vector */
    mt_model *im = mtt_model("!obj:MLP {input_space: !obj:Conv2DSpace {shape: [4, 5], "
                             "num_channels: 1}, seed: [7], layers: [!obj:LSTM {layer_name: 'r', "
                             "dim: 6, n_steps: 4, irange: 0.6, init_bias: 0.1}]}");
    rnn_ref ri = ref_of(im, "r", KIND_LSTM, T, NIN, DIM, false, false, 0);
    rnn_forward(&ri, Xd, B, ref);
    double *gi = model_out(im, X, B, MT_MODE_FAST_RUN);
    MT_CHECK_ALLCLOSE(gi, ref, B * DIM, 1e-5, 1e-4);
    mt_free(gi);
    mt_model_free(im);
    /* SimpleRNN activations: sigmoid, relu */
    static const char *acts[2] = {", activation: 'sigmoid'", ", activation: 'relu'"};
    for (int a = 0; a < 2; a++) {
        mt_model *m = one_layer(KIND_RNN, true, false, acts[a]);
        rnn_ref r = ref_of(m, "r", KIND_RNN, T, NIN, DIM, true, false, a + 1);
        rnn_forward(&r, Xd, B, ref);
        double *got = model_out(m, X, B, MT_MODE_FAST_RUN);
        MT_CHECK_ALLCLOSE(got, ref, B * T * DIM, 1e-5, 1e-4);
        mt_free(got);
        mt_model_free(m);
    }
}

/* An LSTM giving every state to a GRU over the same 4 steps (each step reads the LSTM's
 * 6-feature state), then a Softmax: the composition of the loops, and the default cost. */
MT_TEST(rnn_layers_stack)
{
    mt_model *m = mtt_model(
        "!obj:MLP {nvis: 20, layers: [\n"
        "  !obj:LSTM {layer_name: 'a', dim: 6, n_steps: 4, istdev: 0.4, return_sequences: true},\n"
        "  !obj:GRU {layer_name: 'b', dim: 3, n_steps: 4, irange: 0.7, reverse: true},\n"
        "  !obj:Softmax {layer_name: 'y', n_classes: 3, irange: 0.5}]}");
    float X[B * T * NIN];
    double Xd[B * T * NIN], h1[B * T * DIM], h2[B * 3];
    mtt_fill(X, B * T * NIN, 43);
    for (int i = 0; i < B * T * NIN; i++) Xd[i] = X[i];
    rnn_ref a = ref_of(m, "a", KIND_LSTM, T, NIN, DIM, true, false, 0);
    rnn_ref b = ref_of(m, "b", KIND_GRU, T, DIM, 3, false, true, 0);
    rnn_forward(&a, Xd, B, h1);
    rnn_forward(&b, h1, B, h2);
    const float *W = mtt_param(m, "y_W"), *bb = mtt_param(m, "y_b");
    double probs[B * 3];
    for (int r = 0; r < B; r++) {
        double z[3], mx = -1e300, s = 0;
        for (int j = 0; j < 3; j++) {
            z[j] = bb[j];
            for (int k = 0; k < 3; k++) z[j] += h2[r * 3 + k] * W[k * 3 + j];
            mx = z[j] > mx ? z[j] : mx;
        }
        for (int j = 0; j < 3; j++) s += exp(z[j] - mx);
        for (int j = 0; j < 3; j++) probs[r * 3 + j] = exp(z[j] - mx) / s;
    }
    double *got = model_out(m, X, B, MT_MODE_FAST_RUN);
    MT_CHECK_ALLCLOSE(got, probs, B * 3, 1e-5, 1e-4);
    mt_free(got);
    /* the default cost: mean of -log p[label] */
    int64_t lab[B] = {2, 0, 1};
    double nll = 0;
    for (int r = 0; r < B; r++) nll -= log(probs[r * 3 + lab[r]]) / B;
    mtt_ctx c;
    mtt_ctx_init(&c, m, true, 3, 0, 3);
    mt_var cost;
    MT_CHECK_OK(mt_model_default_cost(&c.mg, NULL, &cost));
    mt_function *f = mtt_compile(&c, 1, &cost, true, MT_MODE_FAST_RUN);
    mt_array res = {0};
    mtt_call(f, X, B, 20, lab, NULL, 0, 1, &res);
    MT_CHECK_CLOSE(mtt_scalar(&res), nll, 1e-5, 1e-5);
    mt_array_clear(&res);
    mt_function_free(f);
    mtt_ctx_clear(&c);
    mt_model_free(m);
}

/* ---------------------------------------------------------------- gradients */

/* d sum(u * out) / d (X, every parameter) of the model's output, forward pass in float64. */
static void check_grads(mt_model *m, const float *X, int64_t n)
{
    mtt_ctx c;
    mtt_ctx_init(&c, m, false, 0, 0, 5);
    MT_CHECK_OK(mt_model_graph_set_compute(&c.mg, MT_FLOAT64));
    mt_var out;
    MT_CHECK_OK(mt_model_fprop(&c.mg, NULL, &out));
    MT_CHECK(mt_graph_type(c.g, out)->dtype == MT_FLOAT64);
    int64_t xd[2] = {n, mt_model_input_dim(m)};
    mt_array ax = {0};
    MT_CHECK_OK(mt_array_from_host(&ax, mtt_host(), MT_FLOAT32, 2, xd, X));
    int32_t np = mt_model_n_params(m), k = 0;
    mt_var ins[8];
    const mt_array *vals[8];
    MT_CHECK(np + 1 <= 8);
    ins[k] = c.mg.X;
    vals[k++] = &ax;
    for (int32_t i = 0; i < np; i++) {
        ins[k] = c.mg.params[i];
        vals[k++] = &mt_model_param_at(m, i)->value;
    }
    mt_verify_grad_options o;
    mt_verify_grad_options_init(&o);
    o.eps = 1e-4; /* steps in float32 inputs; the function computed in float64 */
    o.abs_tol = o.rel_tol = 1e-5;
    mt_verify_grad_report rep;
    mt_status st = mt_verify_grad(c.g, out, k, ins, vals, &o, &rep);
    if (st) mt_test_fail(__FILE__, __LINE__, "verify_grad: %s", mt_last_error());
    MT_CHECK(rep.passed);
    MT_CHECK(rep.max_abs_err < 1e-5 || rep.max_rel_err < 1e-5);
    mt_array_clear(&ax);
    mtt_ctx_clear(&c);
}

MT_TEST(rnn_gradients_verify_grad)
{
    float X[B * T * NIN];
    mtt_fill(X, B * T * NIN, 47);
    for (int kind = 0; kind < 3; kind++)
        for (int v = 0; v < 2; v++) {
            /* the last state forward; every state of a reverse loop */
            mt_model *m = one_layer(kind, v == 1, v == 1, "");
            check_grads(m, X, B);
            mt_model_free(m);
        }
}

/* ---------------------------------------------------------------- parameters */

static void check_shape(mt_model *m, const char *name, int32_t nd, int64_t d0, int64_t d1)
{
    const mt_array *a = mtt_param_array(m, name);
    MT_CHECK_EQ_INT(a->ndim, nd);
    MT_CHECK_EQ_INT(a->dims[0], d0);
    if (nd > 1) MT_CHECK_EQ_INT(a->dims[1], d1);
}

MT_TEST(rnn_parameters_and_initialization)
{
    /* names, shapes, order; biases: init_bias, the LSTM's forget gate forget_bias */
    for (int kind = 0; kind < 3; kind++) {
        mt_model *m = one_layer(kind, false, false, kind == KIND_LSTM ? ", forget_bias: 2.5" : "");
        int64_t G = kind == KIND_LSTM ? 4 : kind == KIND_GRU ? 3 : 1;
        MT_CHECK_EQ_INT(mt_model_n_params(m), 3);
        MT_CHECK_STR_EQ(mt_model_param_at(m, 0)->name, "r_W");
        MT_CHECK_STR_EQ(mt_model_param_at(m, 1)->name, "r_U");
        MT_CHECK_STR_EQ(mt_model_param_at(m, 2)->name, "r_b");
        MT_CHECK(mt_model_param_at(m, 0)->is_weight && mt_model_param_at(m, 1)->is_weight);
        MT_CHECK(!mt_model_param_at(m, 2)->is_weight);
        check_shape(m, "r_W", 2, NIN, G * DIM);
        check_shape(m, "r_U", 2, DIM, G * DIM);
        if (kind == KIND_GRU) check_shape(m, "r_b", 2, 2, G * DIM);
        else check_shape(m, "r_b", 1, G * DIM, 0);
        const float *b = mtt_param(m, "r_b");
        int64_t nb = kind == KIND_GRU ? 2 * G * DIM : G * DIM;
        for (int64_t i = 0; i < nb; i++) {
            bool f = kind == KIND_LSTM && i >= DIM && i < 2 * DIM;
            MT_CHECK_CLOSE(b[i], f ? 2.5 : 0.1, 0, 1e-7);
        }
        /* W and U: irange 0.6, different streams */
        const float *W = mtt_param(m, "r_W"), *U = mtt_param(m, "r_U");
        double mx = 0;
        for (int64_t i = 0; i < NIN * G * DIM; i++) mx = fmax(mx, fabs(W[i]));
        for (int64_t i = 0; i < DIM * G * DIM; i++) mx = fmax(mx, fabs(U[i]));
        MT_CHECK(mx <= 0.6 && mx > 0.3);
        MT_CHECK(W[0] != U[0]);
        mt_model_free(m);
    }
    /* the LSTM's default forget_bias is 1 */
    mt_model *m = one_layer(KIND_LSTM, false, false, "");
    MT_CHECK_CLOSE(mtt_param(m, "r_b")[DIM], 1.0, 0, 0);
    MT_CHECK_CLOSE(mtt_param(m, "r_b")[0], 0.1, 0, 1e-7);
    mt_model_free(m);
    /* U_init 'orthogonal': every gate block Q has Q^T Q = I; learning-rate scales */
    m = one_layer(KIND_LSTM, false, false, ", U_init: 'orthogonal', W_lr_scale: 0.5, "
                  "b_lr_scale: 2.0");
    const float *U = mtt_param(m, "r_U");
    for (int g = 0; g < 4; g++)
        for (int p = 0; p < DIM; p++)
            for (int q = 0; q < DIM; q++) {
                double s = 0;
                for (int i = 0; i < DIM; i++)
                    s += (double)U[i * 4 * DIM + g * DIM + p] * U[i * 4 * DIM + g * DIM + q];
                MT_CHECK_CLOSE(s, p == q ? 1.0 : 0.0, 1e-6, 0);
            }
    MT_CHECK_CLOSE(mt_model_param_at(m, 0)->lr_scale, 0.5, 0, 0);
    MT_CHECK_CLOSE(mt_model_param_at(m, 1)->lr_scale, 0.5, 0, 0); /* U: W_lr_scale */
    MT_CHECK_CLOSE(mt_model_param_at(m, 2)->lr_scale, 2.0, 0, 0);
    mt_model_free(m);
    m = one_layer(KIND_GRU, false, false, ", W_lr_scale: 0.5, U_lr_scale: 0.25");
    MT_CHECK_CLOSE(mt_model_param_at(m, 1)->lr_scale, 0.25, 0, 0);
    MT_CHECK_CLOSE(mt_model_param_at(m, 2)->lr_scale, 1.0, 0, 0);
    mt_model_free(m);
    /* the same YAML gives the same values; another seed other values */
    mt_model *a = one_layer(KIND_GRU, false, false, "");
    mt_model *b2 = one_layer(KIND_GRU, false, false, "");
    MT_CHECK(!memcmp(mtt_param(a, "r_U"), mtt_param(b2, "r_U"), DIM * 3 * DIM * sizeof(float)));
    mt_model_free(a);
    mt_model_free(b2);
}

/* WeightDecay covers W and U (both weights), not b; the channels are the dense layers'. */
MT_TEST(rnn_weight_decay_and_channels)
{
    mt_model *m = mtt_model("!obj:MLP {nvis: 20, layers: [!obj:LSTM {layer_name: 'r', dim: 6, "
                            "n_steps: 4, irange: 0.5}, !obj:Softmax {layer_name: 'y', "
                            "n_classes: 3, irange: 0.5}]}");
    double c2[2] = {0.5, 2.0};
    mt_cost *wd;
    MT_CHECK_OK(mt_cost_weight_decay(&wd, false, 2, c2, NULL));
    mtt_ctx c;
    mtt_ctx_init(&c, m, false, 0, 0, 1);
    mt_var v;
    MT_CHECK_OK(mt_cost_expr(wd, &c.mg, &v));
    mt_function *f = mtt_compile(&c, 1, &v, false, MT_MODE_FAST_RUN);
    float X[20] = {0};
    mt_array res = {0};
    mtt_call(f, X, 1, 20, NULL, NULL, 0, 1, &res);
    MT_CHECK_CLOSE(mtt_scalar(&res),
                   0.5 * (mtt_param_sumsq(m, "r_W") + mtt_param_sumsq(m, "r_U")) + 2.0 * mtt_param_sumsq(m, "y_W"), 1e-6,
                   1e-5);
    mt_array_clear(&res);
    mt_function_free(f);
    mtt_ctx_clear(&c);
    mt_cost_free(wd);
    mtt_ctx_init(&c, m, true, 3, 0, 1);
    mt_channel_list l = {0};
    MT_CHECK_OK(mt_model_channels(&c.mg, &l));
    static const char *want[4] = {"r_col_norms_mean", "r_max_x_max_u", "y_misclass", "y_nll"};
    for (int k = 0; k < 4; k++) {
        bool found = false;
        for (int32_t i = 0; i < l.n; i++) found |= !strcmp(l.items[i].name, want[k]);
        if (!found) mt_test_fail(__FILE__, __LINE__, "no channel '%s'", want[k]);
    }
    mt_channel_list_clear(&l);
    mtt_ctx_clear(&c);
    mt_model_free(m);
}

/* ---------------------------------------------------------------- YAML */

MT_TEST(rnn_yaml_round_trip)
{
    static const char *texts[3] = {
        "!obj:MLP {nvis: 20, seed: [3, 1], layers: [!obj:SimpleRNN {layer_name: 'r', dim: 6, "
        "n_steps: 4, irange: 0.5, activation: 'relu', return_sequences: true}, "
        "!obj:Softmax {layer_name: 'y', n_classes: 3, irange: 0.5}]}",
        "!obj:MLP {nvis: 20, layers: [!obj:mltrain.models.rnn.LSTM {layer_name: 'r', dim: 6, "
        "n_steps: 4, istdev: 0.1, forget_bias: 0.5, U_init: 'orthogonal', reverse: true, "
        "W_lr_scale: 0.5, U_lr_scale: 0.2, b_lr_scale: 3.0, init_bias: 0.25}]}",
        "!obj:MLP {input_space: !obj:Conv2DSpace {shape: [4, 5], num_channels: 1}, layers: "
        "[!obj:GRU {layer_name: 'r', dim: 6, n_steps: 4, irange: 0.5}]}",
    };
    for (int k = 0; k < 3; k++) {
        mt_model *m1 = NULL;
        mt_status st = mtt_try_model(&m1, texts[k]);
        if (st) mt_test_fail(__FILE__, __LINE__, "case %d: %s", k, mt_last_error());
        mt_strbuf s1, s2;
        mt_strbuf_init(&s1);
        mt_strbuf_init(&s2);
        MT_CHECK_OK(mt_model_to_yaml(m1, &s1));
        mt_model *m2 = NULL;
        st = mtt_try_model(&m2, s1.data);
        if (st) mt_test_fail(__FILE__, __LINE__, "case %d: %s\n%s", k, mt_last_error(), s1.data);
        MT_CHECK_OK(mt_model_to_yaml(m2, &s2));
        MT_CHECK_STR_EQ(s1.data, s2.data);
        MT_CHECK_EQ_INT(mt_model_n_params(m1), mt_model_n_params(m2));
        for (int32_t i = 0; i < mt_model_n_params(m1); i++) {
            const mt_model_param *p1 = mt_model_param_at(m1, i), *p2 = mt_model_param_at(m2, i);
            MT_CHECK_STR_EQ(p1->name, p2->name);
            MT_CHECK_EQ_INT(mt_array_size(&p1->value), mt_array_size(&p2->value));
            MT_CHECK(!memcmp(mt_buffer_host_ptr(p1->value.buf), mt_buffer_host_ptr(p2->value.buf),
                             (size_t)mt_array_size(&p1->value) * sizeof(float)));
            MT_CHECK_CLOSE(p1->lr_scale, p2->lr_scale, 0, 0);
        }
        if (k == 0) MT_CHECK(strstr(s1.data, "activation: 'relu'") != NULL);
        if (k == 2) MT_CHECK(strstr(s1.data, "Conv2DSpace") != NULL);
        if (k == 1) {
            MT_CHECK(strstr(s1.data, "!obj:LSTM {") != NULL);
            MT_CHECK(strstr(s1.data, "U_init: 'orthogonal'") != NULL);
            MT_CHECK(strstr(s1.data, "forget_bias: 0.5") != NULL);
            MT_CHECK(strstr(s1.data, "reverse: true") != NULL);
        }
        mt_strbuf_deinit(&s1);
        mt_strbuf_deinit(&s2);
        mt_model_free(m1);
        mt_model_free(m2);
    }
}

MT_TEST(rnn_yaml_errors)
{
    /* n_steps not dividing the input: at the layer's position */
    mtt_expect_error("!obj:MLP {nvis: 20, layers: [\n  !obj:Tanh {layer_name: 'h', dim: 10, "
                 "irange: 0.1},\n  !obj:LSTM {layer_name: 'r', dim: 6, n_steps: 4, irange: 0.5}]}",
                 MT_ERR_SHAPE, "<model>:3:3: MLP: layer 'r' (LSTM): n_steps 4 does not divide "
                 "its input of 10 features");
    mtt_expect_error("!obj:MLP {nvis: 20, layers: [!obj:GRU {layer_name: 'r', dim: 6, n_steps: 3, "
                 "irange: 0.5}]}", MT_ERR_SHAPE, "n_steps 3 does not divide");
    /* unknown activation, missing dim, n_steps 0, no initialization: dry-run checks */
    MT_CHECK_ERR(mtt_validate_only("!obj:MLP {nvis: 20, layers: [\n  !obj:SimpleRNN {layer_name: 'r', "
                               "dim: 6, n_steps: 4, irange: 0.5, activation: 'swish'}]}"),
                 MT_ERR_INVALID, "job.yaml:2:");
    mtt_expect_error("!obj:MLP {nvis: 20, layers: [!obj:SimpleRNN {layer_name: 'r', dim: 6, "
                 "n_steps: 4, irange: 0.5, activation: 'swish'}]}", MT_ERR_INVALID,
                 "unknown activation 'swish'");
    mtt_expect_error("!obj:MLP {nvis: 20, layers: [!obj:LSTM {layer_name: 'r', n_steps: 4, "
                 "irange: 0.5}]}", MT_ERR_INVALID, "LSTM is missing the required key 'dim'");
    MT_CHECK_ERR(mtt_validate_only("!obj:MLP {nvis: 20, layers: [\n  !obj:GRU {layer_name: 'r', "
                               "dim: 6, n_steps: 0, irange: 0.5}]}"),
                 MT_ERR_INVALID, "job.yaml:2:");
    mtt_expect_error("!obj:MLP {nvis: 20, layers: [!obj:GRU {layer_name: 'r', dim: 6, n_steps: 0, "
                 "irange: 0.5}]}", MT_ERR_INVALID, "n_steps must be >= 1, got 0");
    mtt_expect_error("!obj:MLP {nvis: 20, layers: [!obj:GRU {layer_name: 'r', dim: 6, n_steps: 4}]}",
                 MT_ERR_INVALID, "give one of irange, istdev or sparse_init");
    /* norm constraints and unknown U_init values are refused */
    mtt_expect_error("!obj:MLP {nvis: 20, layers: [!obj:LSTM {layer_name: 'r', dim: 6, n_steps: 4, "
                 "irange: 0.5, max_col_norm: 1.0}]}", MT_ERR_INVALID,
                 "max_col_norm: norm constraints are not supported by recurrent layers");
    mtt_expect_error("!obj:MLP {nvis: 20, layers: [!obj:LSTM {layer_name: 'r', dim: 6, n_steps: 4, "
                 "irange: 0.5, U_init: 'identity'}]}", MT_ERR_INVALID,
                 "U_init must be 'orthogonal' or null");
    mtt_expect_error("!obj:MLP {nvis: 20, layers: [!obj:GRU {layer_name: 'r', dim: 6, n_steps: 4, "
                 "irange: 0.5, forget_bias: 1.0}]}", MT_ERR_INVALID, "forget_bias");
    mtt_expect_error("!obj:MLP {nvis: 20, layers: [!obj:GRU {layer_name: 'r', dim: 6, n_steps: 4, "
                 "irange: 0.5, activation: null}]}", MT_ERR_INVALID, "has no key 'activation'");
    /* an integer input needs a ProjectionLayer first */
    mtt_expect_error("!obj:MLP {input_space: !obj:IndexSpace {dim: 4, max_labels: 9}, layers: "
                 "[!obj:LSTM {layer_name: 'r', dim: 6, n_steps: 4, irange: 0.5}]}",
                 MT_ERR_INVALID, "put a ProjectionLayer");
}

/* Tokens through a ProjectionLayer, read token by token (n_steps = the number of tokens). */
MT_TEST(rnn_after_projection)
{
    mt_model *m = mtt_model(
        "!obj:MLP {input_space: !obj:IndexSpace {dim: 4, max_labels: 9}, layers: [\n"
        "  !obj:ProjectionLayer {layer_name: 'emb', dim: 5, irange: 1.0},\n"
        "  !obj:GRU {layer_name: 'r', dim: 6, n_steps: 4, irange: 0.5}]}");
    float X[B * 4] = {1, 8, 0, 3, 2, 2, 7, 5, 0, 4, 6, 1};
    double E[B * 4 * 5], ref[B * DIM];
    const float *W = mtt_param(m, "emb_W");
    for (int r = 0; r < B * 4; r++)
        for (int j = 0; j < 5; j++) E[r * 5 + j] = W[(int)X[r] * 5 + j];
    rnn_ref c = ref_of(m, "r", KIND_GRU, 4, 5, DIM, false, false, 0);
    rnn_forward(&c, E, B, ref);
    double *got = model_out(m, X, B, MT_MODE_FAST_RUN);
    MT_CHECK_ALLCLOSE(got, ref, B * DIM, 1e-5, 1e-4);
    mt_free(got);
    mt_model_free(m);
}

/* The loop of a layer is built once per graph: channels, the default cost and the output each
 * build the forward pass again, and the graph's merging of equal nodes must find the same loop
 * (one loop body, no new SCAN node), or the monitor would run every recurrent layer once per
 * use. A dropout forward pass reads another input: a second loop with the same body. */
static int32_t count_loops(mt_graph *g, int32_t *n_bodies)
{
    const void *bodies[16];
    int32_t n = 0;
    *n_bodies = 0;
    for (mt_var v = 1; v <= mt_graph_size(g); v++) {
        if (mt_graph_op(g, v) != MT_OP_SCAN) continue;
        n++;
        const void *b = mt_graph_attrs(g, v)->body;
        bool seen = false;
        for (int32_t i = 0; i < *n_bodies; i++) seen |= bodies[i] == b;
        if (!seen && *n_bodies < 16) bodies[(*n_bodies)++] = b;
    }
    return n;
}

MT_TEST(rnn_loop_built_once_per_graph)
{
    mt_model *m = mtt_model("!obj:MLP {nvis: 20, layers: [!obj:LSTM {layer_name: 'r', dim: 6, "
                            "n_steps: 4, irange: 0.5}, !obj:Softmax {layer_name: 'y', "
                            "n_classes: 3, irange: 0.5}]}");
    mtt_ctx c;
    mtt_ctx_init(&c, m, true, 3, 0, 1);
    mt_var out, cost;
    MT_CHECK_OK(mt_model_fprop(&c.mg, NULL, &out));
    int32_t nb0 = 0, n0 = count_loops(c.g, &nb0);
    MT_CHECK(n0 >= 1);
    MT_CHECK_EQ_INT(nb0, 1);
    mt_channel_list l = {0};
    MT_CHECK_OK(mt_model_channels(&c.mg, &l));
    MT_CHECK_OK(mt_model_default_cost(&c.mg, NULL, &cost));
    MT_CHECK_OK(mt_model_fprop(&c.mg, NULL, &out));
    int32_t nb1 = 0;
    MT_CHECK_EQ_INT(count_loops(c.g, &nb1), n0);
    MT_CHECK_EQ_INT(nb1, 1);
    /* dropout on the LSTM's input: the same step over another sequence */
    double p[2] = {0.5, 1.0}, s[2] = {2.0, 1.0};
    mt_fprop_options o;
    memset(&o, 0, sizeof(o));
    o.dropout = true;
    o.include_prob = p;
    o.scale = s;
    MT_CHECK_OK(mt_model_fprop(&c.mg, &o, &out));
    int32_t nb2 = 0;
    MT_CHECK(count_loops(c.g, &nb2) > n0);
    MT_CHECK_EQ_INT(nb2, 1);
    mt_channel_list_clear(&l);
    mtt_ctx_clear(&c);
    mt_model_free(m);
}
