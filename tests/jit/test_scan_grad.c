/* Gradients of loops (SCAN): backpropagation through time checked against central
 * differences in float64 (mt_verify_grad) on the test device (MLTRAIN_TEST_DEVICE or host):
 * an Elman RNN through its stacked states and through its final state, forward and reverse;
 * two states and a per-step output whose gradients arrive together; a loop without sequences;
 * zero steps; an integer sequence that indexes a parameter; the second derivative (the
 * backward loop differentiated again); the optimized executor. References are finite
 * differences of the evaluated function, never the code under test. */
#include <math.h>
#include <string.h>

#include "jit_ref.h"
#include "mltrain/graph_grad.h"
#include "mltrain/jit_verify.h"

#define MAXIN 8

/* A graph, its placeholders and their values on the test device. */
typedef struct gcase {
    mt_graph *g;
    int32_t n;
    mt_var v[MAXIN];
    mt_array a[MAXIN];
} gcase;

static void gc_init(gcase *c)
{
    memset(c, 0, sizeof(*c));
    MT_CHECK_OK(mt_graph_new(&c->g));
}

static void gc_free(gcase *c)
{
    for (int32_t i = 0; i < c->n; i++) mt_array_clear(&c->a[i]);
    mt_graph_free(c->g);
}

/* A float64 (or dt) input with deterministic values in [lo, hi). */
static mt_var gc_in(gcase *c, const char *name, mt_dtype dt, int32_t nd, const int64_t *dims,
                    double lo, double hi, uint64_t seed)
{
    double vals[256];
    int64_t n = 1;
    for (int32_t d = 0; d < nd; d++) n *= dims[d];
    MT_CHECK(n <= 256 && c->n < MAXIN);
    jt_fill(vals, (size_t)n, lo, hi, seed);
    if (!mt_dtype_is_float(dt))
        for (int64_t i = 0; i < n; i++) vals[i] = floor(vals[i]);
    mt_var v = mt_graph_placeholder(c->g, name, dt, nd, dims);
    MT_CHECK(v != MT_VAR_NONE);
    jt_arr(&c->a[c->n], dt, nd, dims, vals);
    c->v[c->n++] = v;
    return v;
}

static void gc_verify_at(const char *file, int line, gcase *c, mt_var out, mt_mode mode)
{
    if (!out || mt_graph_status(c->g))
        mt_test_fail(file, line, "building failed: %s", mt_graph_last_error(c->g));
    const mt_array *arrs[MAXIN];
    for (int32_t i = 0; i < c->n; i++) arrs[i] = &c->a[i];
    mt_verify_grad_options o;
    mt_verify_grad_options_init(&o);
    o.mode = mode;
    o.dev = jt_dev();
    mt_verify_grad_report rep;
    mt_status st = mt_verify_grad(c->g, out, c->n, c->v, arrs, &o, &rep);
    if (st || !rep.passed)
        mt_test_fail(file, line, "verify_grad: %s (max abs err %g, rel %g)", mt_last_error(),
                     rep.max_abs_err, rep.max_rel_err);
}
#define gc_verify(c, out, mode) gc_verify_at(__FILE__, __LINE__, c, out, mode)

/* Elman body: h' = tanh(x @ U + h @ W + b); extra y = sum(h' * h'). */
typedef struct body {
    mt_graph *g;
    mt_var in[5], out[2];
} body;

static void elman(body *b, int64_t n, int64_t m)
{
    MT_CHECK_OK(mt_graph_new(&b->g));
    mt_graph *g = b->g;
    b->in[0] = mt_graph_placeholder(g, "x", MT_FLOAT64, 1, (int64_t[]){n});
    b->in[1] = mt_graph_placeholder(g, "h", MT_FLOAT64, 1, (int64_t[]){m});
    b->in[2] = mt_graph_placeholder(g, "U", MT_FLOAT64, 2, (int64_t[]){n, m});
    b->in[3] = mt_graph_placeholder(g, "W", MT_FLOAT64, 2, (int64_t[]){m, m});
    b->in[4] = mt_graph_placeholder(g, "b", MT_FLOAT64, 1, (int64_t[]){m});
    mt_var pre = mt_graph_add(g, mt_graph_add(g, mt_graph_matmul(g, b->in[0], b->in[2]),
                                              mt_graph_matmul(g, b->in[1], b->in[3])),
                              b->in[4]);
    b->out[0] = mt_graph_tanh(g, pre);
    b->out[1] = mt_graph_sum(g, mt_graph_mul(g, b->out[0], b->out[0]), 0, NULL, false);
    MT_CHECK_OK(mt_graph_status(g));
}

/* An Elman loop over T rows in c: inputs X, h0, U, W, b; results stacked H, stacked y, final h. */
static void elman_loop(gcase *c, int64_t T, bool reverse, mt_var res[3])
{
    const int64_t n = 3, m = 2;
    body b;
    elman(&b, n, m);
    mt_var ops[5];
    ops[0] = gc_in(c, "X", MT_FLOAT64, 2, (int64_t[]){T, n}, -1.0, 1.0, 11);
    ops[1] = gc_in(c, "h0", MT_FLOAT64, 1, (int64_t[]){m}, -0.5, 0.5, 12);
    ops[2] = gc_in(c, "U", MT_FLOAT64, 2, (int64_t[]){n, m}, -0.8, 0.8, 13);
    ops[3] = gc_in(c, "W", MT_FLOAT64, 2, (int64_t[]){m, m}, -0.8, 0.8, 14);
    ops[4] = gc_in(c, "b", MT_FLOAT64, 1, (int64_t[]){m}, -0.3, 0.3, 15);
    mt_scan_spec s = {1, 1, 3, 1, -1, reverse};
    MT_CHECK_OK(mt_graph_scan(c->g, b.g, &s, b.in, b.out, ops, res, res + 2));
    mt_graph_free(b.g);
}

MT_TEST(scan_grad_elman_stacked_states)
{
    gcase c;
    gc_init(&c);
    mt_var r[3];
    elman_loop(&c, 4, false, r);
    gc_verify(&c, r[0], MT_MODE_FAST_COMPILE);
    gc_free(&c);
}

MT_TEST(scan_grad_elman_final_state_reverse)
{
    gcase c;
    gc_init(&c);
    mt_var r[3];
    elman_loop(&c, 5, true, r);
    gc_verify(&c, r[2], MT_MODE_FAST_COMPILE);
    gc_free(&c);
}

MT_TEST(scan_grad_results_together_optimized)
{
    /* the per-step output, the stacked states and the final state all reach the cost: one
     * backward loop gets the three gradients */
    gcase c;
    gc_init(&c);
    mt_var r[3];
    elman_loop(&c, 4, false, r);
    mt_graph *g = c.g;
    mt_var out = mt_graph_add(g, mt_graph_sum(g, mt_graph_sin(g, r[0]), 0, NULL, false),
                              mt_graph_add(g, mt_graph_sum(g, r[1], 0, NULL, false),
                                           mt_graph_sum(g, mt_graph_square(g, r[2]), 0, NULL,
                                                        false)));
    gc_verify(&c, out, MT_MODE_FAST_COMPILE);
    gc_verify(&c, out, MT_MODE_FAST_RUN);
    /* one reverse loop in the gradient graph */
    mt_var gr[5];
    MT_CHECK_OK(mt_graph_grad(g, out, 5, c.v, gr, NULL));
    mt_var *order = NULL;
    int32_t n = 0, nrev = 0;
    uint64_t ids[8];
    MT_CHECK_OK(mt_graph_toposort(g, 5, gr, &order, &n));
    for (int32_t i = 0; i < n; i++) {
        mt_scan_info info;
        if (!mt_graph_scan_info(g, order[i], &info) || !info.spec.reverse) continue;
        bool seen = false;
        for (int32_t k = 0; k < nrev; k++) seen = seen || ids[k] == info.id;
        if (!seen && nrev < 8) ids[nrev++] = info.id;
    }
    mt_free(order);
    MT_CHECK_EQ_INT(nrev, 1);
    gc_free(&c);
}

MT_TEST(scan_grad_two_states_and_extra)
{
    /* c' = c * sigmoid(x) + tanh(h * w);  h' = tanh(c') * w;  y = sum(h' * c') */
    mt_graph *bg;
    MT_CHECK_OK(mt_graph_new(&bg));
    int64_t d2[1] = {2};
    mt_var x = mt_graph_placeholder(bg, "x", MT_FLOAT64, 1, d2);
    mt_var h = mt_graph_placeholder(bg, "h", MT_FLOAT64, 1, d2);
    mt_var cc = mt_graph_placeholder(bg, "c", MT_FLOAT64, 1, d2);
    mt_var w = mt_graph_placeholder(bg, "w", MT_FLOAT64, 1, d2);
    mt_var c2 = mt_graph_add(bg, mt_graph_mul(bg, cc, mt_graph_sigmoid(bg, x)),
                             mt_graph_tanh(bg, mt_graph_mul(bg, h, w)));
    mt_var h2 = mt_graph_mul(bg, mt_graph_tanh(bg, c2), w);
    mt_var y = mt_graph_sum(bg, mt_graph_mul(bg, h2, c2), 0, NULL, false);
    mt_var bin[4] = {x, h, cc, w}, bout[3] = {h2, c2, y};
    gcase c;
    gc_init(&c);
    mt_var ops[4];
    ops[0] = gc_in(&c, "X", MT_FLOAT64, 2, (int64_t[]){3, 2}, -1.0, 1.0, 21);
    ops[1] = gc_in(&c, "h0", MT_FLOAT64, 1, d2, -0.5, 0.5, 22);
    ops[2] = gc_in(&c, "c0", MT_FLOAT64, 1, d2, -0.5, 0.5, 23);
    ops[3] = gc_in(&c, "w", MT_FLOAT64, 1, d2, 0.5, 1.5, 24);
    mt_scan_spec s = {1, 2, 1, 1, -1, false};
    mt_var st[3], fin[2];
    MT_CHECK_OK(mt_graph_scan(c.g, bg, &s, bin, bout, ops, st, fin));
    mt_graph_free(bg);
    gc_verify(&c, st[2], MT_MODE_FAST_COMPILE);                 /* the per-step output */
    gc_verify(&c, fin[1], MT_MODE_FAST_COMPILE);                /* the final c only */
    gc_verify(&c, mt_graph_add(c.g, st[0], st[1]), MT_MODE_FAST_RUN); /* both stacked states */
    gc_free(&c);
}

MT_TEST(scan_grad_without_sequences)
{
    /* h' = tanh(h @ W), 3 steps */
    mt_graph *bg;
    MT_CHECK_OK(mt_graph_new(&bg));
    mt_var h = mt_graph_placeholder(bg, "h", MT_FLOAT64, 1, (int64_t[]){3});
    mt_var W = mt_graph_placeholder(bg, "W", MT_FLOAT64, 2, (int64_t[]){3, 3});
    mt_var h2 = mt_graph_tanh(bg, mt_graph_matmul(bg, h, W));
    mt_var bin[2] = {h, W};
    gcase c;
    gc_init(&c);
    mt_var ops[2];
    ops[0] = gc_in(&c, "h0", MT_FLOAT64, 1, (int64_t[]){3}, -1.0, 1.0, 31);
    ops[1] = gc_in(&c, "W", MT_FLOAT64, 2, (int64_t[]){3, 3}, -1.0, 1.0, 32);
    mt_scan_spec s = {0, 1, 1, 0, 3, false};
    mt_var st, fin;
    MT_CHECK_OK(mt_graph_scan(c.g, bg, &s, bin, &h2, ops, &st, &fin));
    mt_graph_free(bg);
    gc_verify(&c, fin, MT_MODE_FAST_COMPILE);
    gc_verify(&c, st, MT_MODE_FAST_RUN);
    gc_free(&c);
}

MT_TEST(scan_grad_zero_steps)
{
    /* T = 0: the final state is h0 (gradient: identity), the sequence has no rows */
    gcase c;
    gc_init(&c);
    mt_var r[3];
    elman_loop(&c, 0, false, r);
    mt_graph *g = c.g;
    mt_var out = mt_graph_add(g, mt_graph_mul(g, r[2], r[2]),
                              mt_graph_sum(g, r[0], 1, (int32_t[]){0}, false));
    gc_verify(&c, out, MT_MODE_FAST_COMPILE);
    mt_var gr[5];
    MT_CHECK_OK(mt_graph_grad(g, mt_graph_sum(g, out, 0, NULL, false), 5, c.v, gr, NULL));
    mt_var outs[2] = {gr[1], gr[0]};
    const mt_array *arrs[5];
    for (int32_t i = 0; i < 5; i++) arrs[i] = &c.a[i];
    mt_array res[2];
    memset(res, 0, sizeof(res));
    jt_eval(g, 2, outs, 5, c.v, arrs, res);
    double h0[2];
    jt_read(&c.a[1], h0, 2);
    double want[2] = {2 * h0[0], 2 * h0[1]};
    jt_expect(&res[0], MT_FLOAT64, 1, ((int64_t[]){2}), want);
    MT_CHECK_EQ_INT(mt_array_size(&res[1]), 0);
    MT_CHECK_EQ_INT(res[1].ndim, 2);
    MT_CHECK_EQ_INT(res[1].dims[0], 0);
    mt_array_clear(&res[0]);
    mt_array_clear(&res[1]);
    gc_free(&c);
}

MT_TEST(scan_grad_integer_sequence_indexes_a_table)
{
    /* h' = tanh(h + E[i_t]) with an int64 sequence of row indices */
    mt_graph *bg;
    MT_CHECK_OK(mt_graph_new(&bg));
    mt_var i = mt_graph_placeholder(bg, "i", MT_INT64, 0, NULL);
    mt_var h = mt_graph_placeholder(bg, "h", MT_FLOAT64, 1, (int64_t[]){3});
    mt_var E = mt_graph_placeholder(bg, "E", MT_FLOAT64, 2, (int64_t[]){5, 3});
    mt_var h2 = mt_graph_tanh(bg, mt_graph_add(bg, h, mt_graph_gather(bg, E, i, 0)));
    mt_var bin[3] = {i, h, E};
    gcase c;
    gc_init(&c);
    mt_var ops[3];
    ops[0] = gc_in(&c, "idx", MT_INT64, 1, (int64_t[]){4}, 0.0, 5.0, 41);
    ops[1] = gc_in(&c, "h0", MT_FLOAT64, 1, (int64_t[]){3}, -0.5, 0.5, 42);
    ops[2] = gc_in(&c, "E", MT_FLOAT64, 2, (int64_t[]){5, 3}, -1.0, 1.0, 43);
    mt_scan_spec s = {1, 1, 1, 0, -1, false};
    mt_var st;
    MT_CHECK_OK(mt_graph_scan(c.g, bg, &s, bin, &h2, ops, &st, NULL));
    mt_graph_free(bg);
    gc_verify(&c, st, MT_MODE_FAST_COMPILE);
    gc_free(&c);
}

MT_TEST(scan_grad_second_derivative)
{
    /* the gradient of sum(H) with respect to W is itself a loop; differentiate it again */
    gcase c;
    gc_init(&c);
    mt_var r[3];
    elman_loop(&c, 3, false, r);
    mt_graph *g = c.g;
    mt_var gW;
    MT_CHECK_OK(mt_graph_grad(g, mt_graph_sum(g, r[0], 0, NULL, false), 1, &c.v[3], &gW, NULL));
    gc_verify(&c, gW, MT_MODE_FAST_COMPILE);
    gc_free(&c);
}

/* R-op (double reverse through the backward loop): J v of the stacked states along a tangent
 * of W and h0, against (f(p + k v) - f(p - k v)) / 2k. */
MT_TEST(scan_rop_vs_finite_differences)
{
    gcase c;
    gc_init(&c);
    mt_var r[3];
    elman_loop(&c, 3, true, r);
    mt_graph *g = c.g;
    int64_t dW[2] = {2, 2}, dh[1] = {2};
    mt_var VW = gc_in(&c, "VW", MT_FLOAT64, 2, dW, -1.0, 1.0, 51);
    mt_var Vh = gc_in(&c, "Vh", MT_FLOAT64, 1, dh, -1.0, 1.0, 52);
    mt_var wrt[2] = {c.v[3], c.v[1]}, ev[2] = {VW, Vh}, jv;
    MT_CHECK_OK(mt_graph_rop(g, 1, &r[0], 2, wrt, ev, &jv, NULL));
    const mt_array *arrs[MAXIN];
    for (int32_t i = 0; i < c.n; i++) arrs[i] = &c.a[i];
    mt_array res;
    memset(&res, 0, sizeof(res));
    jt_eval(g, 1, &jv, c.n, c.v, arrs, &res);
    double got[6], w0[4], h0[2], vw[4], vh[2], f[2][6];
    jt_read(&res, got, 6);
    mt_array_clear(&res);
    jt_read(&c.a[3], w0, 4);
    jt_read(&c.a[1], h0, 2);
    jt_read(&c.a[5], vw, 4);
    jt_read(&c.a[6], vh, 2);
    const double k = 1e-6;
    for (int s = 0; s < 2; s++) {
        double wp[4], hp[2], sg = s ? -k : k;
        for (int i = 0; i < 4; i++) wp[i] = w0[i] + sg * vw[i];
        for (int i = 0; i < 2; i++) hp[i] = h0[i] + sg * vh[i];
        mt_array a3, a1;
        jt_arr(&a3, MT_FLOAT64, 2, dW, wp);
        jt_arr(&a1, MT_FLOAT64, 1, dh, hp);
        arrs[3] = &a3;
        arrs[1] = &a1;
        memset(&res, 0, sizeof(res));
        jt_eval(g, 1, &r[0], c.n, c.v, arrs, &res);
        jt_read(&res, f[s], 6);
        mt_array_clear(&res);
        mt_array_clear(&a3);
        mt_array_clear(&a1);
    }
    double want[6];
    for (int i = 0; i < 6; i++) want[i] = (f[0][i] - f[1][i]) / (2 * k);
    MT_CHECK_ALLCLOSE(got, want, 6, 1e-7, 1e-6);
    gc_free(&c);
}

/* A batched Elman loop (x_t [B, n], h [B, m]): the input product x_t @ U is taken out of the
 * body and computed for every step at once (graph.h, "loops"), and the gradient's loop takes
 * out its recomputed h_{t-1} @ W and sums the weight gradients as one product each; values
 * against a plain C loop, gradients against central differences, T = 0 included. */
static void batched_elman(gcase *c, int64_t T, bool reverse, mt_var res[2])
{
    const int64_t B = 2, n = 3, m = 2;
    mt_graph *bg;
    MT_CHECK_OK(mt_graph_new(&bg));
    mt_var in[5], out;
    in[0] = mt_graph_placeholder(bg, "x", MT_FLOAT64, 2, (int64_t[]){-1, n});
    in[1] = mt_graph_placeholder(bg, "h", MT_FLOAT64, 2, (int64_t[]){-1, m});
    in[2] = mt_graph_placeholder(bg, "U", MT_FLOAT64, 2, (int64_t[]){n, m});
    in[3] = mt_graph_placeholder(bg, "W", MT_FLOAT64, 2, (int64_t[]){m, m});
    in[4] = mt_graph_placeholder(bg, "b", MT_FLOAT64, 1, (int64_t[]){m});
    out = mt_graph_tanh(bg, mt_graph_add(bg, mt_graph_add(bg, mt_graph_matmul(bg, in[0], in[2]),
                                                         mt_graph_matmul(bg, in[1], in[3])),
                                         in[4]));
    mt_var ops[5];
    ops[0] = gc_in(c, "X", MT_FLOAT64, 3, (int64_t[]){T, B, n}, -1.0, 1.0, 61);
    ops[1] = gc_in(c, "h0", MT_FLOAT64, 2, (int64_t[]){B, m}, -0.5, 0.5, 62);
    ops[2] = gc_in(c, "U", MT_FLOAT64, 2, (int64_t[]){n, m}, -0.8, 0.8, 63);
    ops[3] = gc_in(c, "W", MT_FLOAT64, 2, (int64_t[]){m, m}, -0.8, 0.8, 64);
    ops[4] = gc_in(c, "b", MT_FLOAT64, 1, (int64_t[]){m}, -0.3, 0.3, 65);
    mt_scan_spec s = {1, 1, 3, 0, -1, reverse};
    MT_CHECK_OK(mt_graph_scan(c->g, bg, &s, in, &out, ops, &res[0], &res[1]));
    mt_graph_free(bg);
    mt_scan_info info;
    MT_CHECK(mt_graph_scan_info(c->g, res[0], &info));
    MT_CHECK_EQ_INT(info.spec.n_seq, 2); /* x, and the product x @ U */
    MT_CHECK_STR_EQ(mt_graph_name(info.body, info.inputs[1]), "x@U");
}

static void batched_elman_values(gcase *c, int64_t T, bool reverse, const mt_var res[2])
{
    const int B = 2, n = 3, m = 2;
    double X[4 * 2 * 3], h[2 * 2], U[3 * 2], W[2 * 2], b[2], H[4 * 2 * 2];
    MT_CHECK(T <= 4);
    jt_read(&c->a[0], X, (size_t)(T * B * n));
    jt_read(&c->a[1], h, (size_t)(B * m));
    jt_read(&c->a[2], U, (size_t)(n * m));
    jt_read(&c->a[3], W, (size_t)(m * m));
    jt_read(&c->a[4], b, (size_t)m);
    for (int64_t i = 0; i < T; i++) {
        int64_t t = reverse ? T - 1 - i : i;
        double hn[4];
        for (int r = 0; r < B; r++)
            for (int j = 0; j < m; j++) {
                double z = b[j];
                for (int k = 0; k < n; k++) z += X[(t * B + r) * n + k] * U[k * m + j];
                for (int k = 0; k < m; k++) z += h[r * m + k] * W[k * m + j];
                hn[r * m + j] = tanh(z);
            }
        memcpy(h, hn, sizeof(hn));
        memcpy(H + t * B * m, hn, sizeof(hn));
    }
    const mt_array *arrs[MAXIN];
    for (int32_t i = 0; i < c->n; i++) arrs[i] = &c->a[i];
    mt_array r[2];
    memset(r, 0, sizeof(r));
    jt_eval(c->g, 2, res, c->n, c->v, arrs, r);
    jt_expect(&r[0], MT_FLOAT64, 3, ((int64_t[]){T, B, m}), H);
    jt_expect(&r[1], MT_FLOAT64, 2, ((int64_t[]){B, m}), h);
    mt_array_clear(&r[0]);
    mt_array_clear(&r[1]);
}

MT_TEST(scan_batched_products_out_of_the_loop)
{
    for (int64_t T = 0; T <= 3; T += 3)
        for (int rev = 0; rev < 2; rev++) {
            gcase c;
            gc_init(&c);
            mt_var r[2];
            batched_elman(&c, T, rev, r);
            batched_elman_values(&c, T, rev, r);
            mt_var out = mt_graph_add(c.g, mt_graph_sum(c.g, mt_graph_sin(c.g, r[0]), 0, NULL,
                                                        false),
                                      mt_graph_sum(c.g, mt_graph_square(c.g, r[1]), 0, NULL,
                                                   false));
            gc_verify(&c, out, MT_MODE_FAST_COMPILE);
            gc_verify(&c, out, MT_MODE_FAST_RUN);
            gc_free(&c);
        }
}

/* Training a batched loop runs two loops, and the backward step does one product (g @ W^T):
 * the recomputed h_{t-1} @ W and the weight gradient h_{t-1}^T @ g are products over all steps
 * outside it; U, which the forward body no longer reads (x_t @ U is taken out), has no running
 * sum in it; the data X (no gradient wanted) has no rows of gradient. */
MT_TEST(scan_grad_backward_step_has_one_product)
{
    for (int mode = 0; mode < 2; mode++) {
        gcase c;
        gc_init(&c);
        mt_var r[2];
        batched_elman(&c, 3, false, r);
        mt_graph *g = c.g;
        mt_var cost = mt_graph_sum(g, mt_graph_sin(g, r[0]), 0, NULL, false);
        mt_var outs[5];
        outs[0] = cost;
        MT_CHECK_OK(mt_graph_grad(g, cost, 4, c.v + 1, outs + 1, NULL)); /* not X */
        mt_function_options o;
        mt_function_options_init(&o);
        o.mode = mode ? MT_MODE_FAST_RUN : MT_MODE_FAST_COMPILE;
        mt_function *fn = NULL;
        MT_CHECK_OK(mt_function_new(&fn, g, c.n, c.v, 5, outs, 0, NULL, jt_dev(), &o));
        mt_strbuf sb;
        mt_strbuf_init(&sb);
        MT_CHECK_OK(mt_function_print(fn, &sb));
        int loops = 0;
        for (const char *p = sb.data; (p = strstr(p, "scan loop #")) != NULL; p++) loops++;
        if (loops != 2) mt_test_fail(__FILE__, __LINE__, "%d loops in\n%s", loops, sb.data);
        mt_strbuf_deinit(&sb);
        mt_function_free(fn);
        mt_var *order = NULL;
        int32_t n = 0, nback = 0;
        uint64_t seen = 0;
        MT_CHECK_OK(mt_graph_toposort(g, 5, outs, &order, &n));
        for (int32_t i = 0; i < n; i++) {
            mt_scan_info info;
            if (!mt_graph_scan_info(g, order[i], &info) || !info.spec.reverse || info.id == seen)
                continue;
            seen = info.id;
            mt_var *border = NULL;
            int32_t bn = 0, nmm = 0;
            MT_CHECK_OK(mt_graph_toposort(info.body, info.spec.n_state + info.spec.n_extra,
                                          info.outputs, &border, &bn));
            for (int32_t k = 0; k < bn; k++)
                nmm += mt_graph_op(info.body, border[k]) == MT_OP_MATMUL;
            mt_free(border);
            MT_CHECK_EQ_INT(nmm, 1);
            MT_CHECK_EQ_INT(info.spec.n_state, 2); /* the carried gradient, b's running sum */
            MT_CHECK_EQ_INT(info.spec.n_extra, 2); /* gradient rows: of x @ U, of the step's sum */
            nback++;
        }
        mt_free(order);
        MT_CHECK_EQ_INT(nback, 1);
        gc_free(&c);
    }
}
