/* The jit on a CUDA device: a small dense layer with softmax, its cost and its gradients,
 * compiled (fused kernels as CUDA C through NVRTC, GEMMs through cuBLAS) and run on cuda:0,
 * compared with the same function on the host. Skips when cuda:0 cannot be opened. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mltrain/graph.h"
#include "mltrain/graph_grad.h"
#include "mltrain/gpuarray.h"
#include "mltrain/jit.h"
#include "mt_test.h"
#include "mt_test_device.h"

static void fill(double *v, size_t n, uint64_t seed, double scale)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        v[i] = scale * ((double)(seed >> 11) * 0x1p-53 - 0.5);
    }
}

/* outputs: probs = softmax(x @ W + b), cost = mean(-log(probs) * t), dcost/dW, dcost/db */
static void run_layer(mt_device *dev, mt_dtype dt, mt_array *outs)
{
    enum { NB = 37, NI = 65, NO = 10 };
    int64_t sx[2] = {NB, NI}, sw[2] = {NI, NO}, sb[1] = {NO}, st[2] = {NB, NO};
    mt_graph *g = NULL;
    MT_CHECK_OK(mt_graph_new(&g));
    mt_var x = mt_graph_placeholder(g, "x", dt, 2, sx);
    mt_var W = mt_graph_placeholder(g, "W", dt, 2, sw);
    mt_var b = mt_graph_placeholder(g, "b", dt, 1, sb);
    mt_var t = mt_graph_placeholder(g, "t", dt, 2, st);
    mt_var probs = mt_graph_softmax(g, mt_graph_add(g, mt_graph_matmul(g, x, W), b), 1);
    mt_var nll = mt_graph_mul(g, mt_graph_neg(g, mt_graph_log(g, probs)), t);
    mt_var cost = mt_graph_mean(g, nll, 0, NULL, false);
    mt_var wrt[2] = {W, b}, grads[2];
    MT_CHECK_OK(mt_graph_grad(g, cost, 2, wrt, grads, NULL));
    MT_CHECK_OK(mt_graph_status(g));
    mt_var ins[4] = {x, W, b, t}, res[4] = {probs, cost, grads[0], grads[1]};
    mt_function *f = NULL;
    MT_CHECK_OK(mt_function_new(&f, g, 4, ins, 4, res, 0, NULL, dev, NULL));
    double vx[NB * NI], vw[NI * NO], vb[NO], vt[NB * NO];
    fill(vx, NB * NI, 1, 2.0);
    fill(vw, NI * NO, 2, 0.5);
    fill(vb, NO, 3, 0.2);
    for (int i = 0; i < NB * NO; i++) vt[i] = (i % NO) == (i / NO) % NO ? 1.0 : 0.0;
    mt_array ax = {0}, aw = {0}, ab = {0}, at = {0};
    mt_test_from_f64(&ax, dev, dt, 2, sx, vx);
    mt_test_from_f64(&aw, dev, dt, 2, sw, vw);
    mt_test_from_f64(&ab, dev, dt, 1, sb, vb);
    mt_test_from_f64(&at, dev, dt, 2, st, vt);
    const mt_array *args[4] = {&ax, &aw, &ab, &at};
    MT_CHECK_OK(mt_function_call(f, 4, args, 4, outs));
    /* a second call reuses the compiled kernels */
    for (int i = 0; i < 4; i++) mt_array_clear(&outs[i]);
    MT_CHECK_OK(mt_function_call(f, 4, args, 4, outs));
    mt_array_clear(&ax);
    mt_array_clear(&aw);
    mt_array_clear(&ab);
    mt_array_clear(&at);
    mt_function_free(f);
    mt_graph_free(g);
}

static void compare(mt_dtype dt)
{
    mt_device *cuda = mt_test_open_or_skip("cuda:0"), *host = mt_test_open_or_skip("host");
    mt_array gc[4] = {{0}}, hc[4] = {{0}};
    run_layer(cuda, dt, gc);
    run_layer(host, dt, hc);
    static const char *const names[4] = {"probs", "cost", "dW", "db"};
    double tol = dt == MT_FLOAT64 ? 1e-10 : 2e-5;
    for (int i = 0; i < 4; i++) {
        MT_CHECK(strcmp(mt_device_get_info(mt_array_device(&gc[i]))->backend, "cuda") == 0);
        MT_CHECK_EQ_INT(mt_array_size(&gc[i]), mt_array_size(&hc[i]));
        double *a = mt_test_to_f64(&gc[i]), *b = mt_test_to_f64(&hc[i]);
        mt_test_allclose(__FILE__, __LINE__, names[i], a, b, (size_t)mt_array_size(&hc[i]), tol,
                         tol);
        free(a);
        free(b);
        mt_array_clear(&gc[i]);
        mt_array_clear(&hc[i]);
    }
    mt_device_release(cuda);
    mt_device_release(host);
}

MT_TEST(jit_cuda_softmax_layer_and_grad_float32) { compare(MT_FLOAT32); }
MT_TEST(jit_cuda_softmax_layer_and_grad_float64) { compare(MT_FLOAT64); }
