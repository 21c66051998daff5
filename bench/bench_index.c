/* Benchmark of advanced indexing on an accelerator device: the generated indexing kernels
 * (gpuarray's mt_array_take / _scatter_add / _take_labels, used by the jit's gather,
 * scatter_add and integer-label crossentropy nodes) against the path mltrain took before they
 * existed, a copy of the operands to the host, host loops and a copy of the result back. The
 * former path is selected in the same process with MLTRAIN_INDEX_PATH=host (read at every
 * call), so both sides run the same compiled functions; repetitions alternate A B A B.
 *
 *   bench_index [--device D] [--reps N] [--warmup N] [--case mlp_big|mlp_small|xent|embed|all]
 *
 * Cases (each a compiled FAST_RUN function on the device, ending with the read of its first
 * output, as the SGD loop reads the cost every step):
 *   mlp_big    the training step of jobs/fashion_mnist_mlp.yaml's model: MLP 784-1024-1024-10,
 *              ReLU, softmax crossentropy with int64 labels, batch 128, SGD updates in place
 *   mlp_small  the same with 784-100-10, batch 32 (overhead-bound)
 *   xent       mean softmax crossentropy of [128, 10] logits with labels and its gradient
 *   embed      an embedding lookup and its gradient: take rows of E [1000, 64] at 512 int32
 *              indices, cost sum(take^2), d cost / dE (a scatter-add with repeated rows) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"
#include "mltrain/graph_grad.h"
#include "mltrain/jit.h"

static const char *g_case = "all";

static int extra_opt(int argc, char **argv, int i)
{
    if (strcmp(argv[i], "--case") == 0 && i + 1 < argc) {
        g_case = argv[i + 1];
        return 2;
    }
    return 0;
}

static bool wanted(const char *name)
{
    return strcmp(g_case, "all") == 0 || strcmp(g_case, name) == 0;
}

typedef struct work {
    mt_device *dev;
    mt_function *f;
    int32_t nin;
    const mt_array *in[2];
    bool host_path;
} work;

static void step(void *p)
{
    work *w = p;
    if (w->host_path) setenv("MLTRAIN_INDEX_PATH", "host", 1);
    else unsetenv("MLTRAIN_INDEX_PATH");
    mt_array out = {0};
    BENCH_CHECK(mt_function_call(w->f, w->nin, w->in, 1, &out));
    float v[1];
    BENCH_CHECK(mt_array_to_host(v, sizeof v, &out)); /* synchronizes */
    mt_array_clear(&out);
}

/* Times w with the kernels and with the host path, prints two rows. */
static void measure(const bench_opts *o, const char *name, work *w)
{
    work wh = *w;
    wh.host_path = true;
    w->host_path = false;
    bench_case cases[2] = {{.name = name, .fn = step, .ctx = w},
                           {.name = name, .fn = step, .ctx = &wh}};
    bench_run(cases, 2, o->reps, o->warmup);
    unsetenv("MLTRAIN_INDEX_PATH");
    char ratio[64];
    snprintf(ratio, sizeof ratio, "**%.2fx** faster (paired)",
             bench_paired_ratio(&cases[0], 1, &cases[1], 1));
    bench_table_row(name, "device indexing kernels", "-", &cases[0], 0, NULL, ratio);
    bench_table_row(name, "host copies (MLTRAIN_INDEX_PATH=host)", "-", &cases[1], 0, NULL,
                    "reference");
    bench_case_free(&cases[0]);
    bench_case_free(&cases[1]);
}

static mt_function *compile(mt_graph *g, int32_t nin, const mt_var *vars, mt_var out,
                            int32_t nup, const mt_update *ups, mt_device *dev)
{
    BENCH_CHECK(mt_graph_status(g));
    mt_function_options fo;
    mt_function_options_init(&fo);
    fo.mode = MT_MODE_FAST_RUN;
    mt_function *f = NULL;
    BENCH_CHECK(mt_function_new(&f, g, nin, vars, 1, &out, nup, ups, dev, &fo));
    return f;
}

static void mlp(const bench_opts *o, mt_device *dev, const char *name, const int64_t *sizes,
                int nl, int64_t batch)
{
    mt_graph *g = NULL;
    BENCH_CHECK(mt_graph_new(&g));
    int64_t sx[2] = {batch, sizes[0]};
    mt_var x = mt_graph_placeholder(g, "x", MT_FLOAT32, 2, sx);
    mt_var y = mt_graph_placeholder(g, "y", MT_INT64, 1, &batch);
    mt_var params[6], h = x;
    for (int l = 0; l < nl; l++) {
        char nw[8], nb[8];
        snprintf(nw, sizeof nw, "W%d", l);
        snprintf(nb, sizeof nb, "b%d", l);
        int64_t sw[2] = {sizes[l], sizes[l + 1]};
        params[2 * l] = mt_graph_placeholder(g, nw, MT_FLOAT32, 2, sw);
        params[2 * l + 1] = mt_graph_placeholder(g, nb, MT_FLOAT32, 1, sw + 1);
        h = mt_graph_add(g, mt_graph_matmul(g, h, params[2 * l]), params[2 * l + 1]);
        if (l < nl - 1) h = mt_graph_relu(g, h);
    }
    mt_var cost = mt_graph_mean(g, mt_graph_softmax_crossentropy_labels(g, h, y, 1), 0, NULL,
                                false);
    mt_var grads[6];
    int np = 2 * nl;
    BENCH_CHECK(mt_graph_grad(g, cost, np, params, grads, NULL));
    mt_update ups[6];
    for (int i = 0; i < np; i++)
        ups[i] = (mt_update){params[i],
                             mt_graph_sub(g, params[i],
                                          mt_graph_mul(g, mt_graph_literal_float(g, 0.01),
                                                       grads[i]))};
    mt_var vars[2] = {x, y};
    mt_function *f = compile(g, 2, vars, cost, np, ups, dev);
    mt_array P[6], X = {0}, Y = {0};
    for (int i = 0; i < np; i++) {
        const mt_type *t = mt_graph_type(g, params[i]);
        BENCH_CHECK(mt_array_empty(&P[i], dev, MT_FLOAT32, t->ndim, t->shape, 'C'));
        BENCH_CHECK(mt_array_random_uniform(&P[i], 10 + (uint64_t)i, 0, -0.05, 0.05));
        BENCH_CHECK(mt_function_set_shared(f, params[i], &P[i]));
    }
    BENCH_CHECK(mt_array_empty(&X, dev, MT_FLOAT32, 2, sx, 'C'));
    BENCH_CHECK(mt_array_random_uniform(&X, 3, 0, 0, 1));
    BENCH_CHECK(mt_array_empty(&Y, dev, MT_INT64, 1, &batch, 'C'));
    BENCH_CHECK(mt_array_random_uniform(&Y, 4, 0, 0, (double)sizes[nl]));
    work w = {dev, f, 2, {&X, &Y}, false};
    measure(o, name, &w);
    mt_function_free(f);
    for (int i = 0; i < np; i++) mt_array_clear(&P[i]);
    mt_array_clear(&X);
    mt_array_clear(&Y);
    mt_graph_free(g);
}

static void xent(const bench_opts *o, mt_device *dev)
{
    const int64_t sz[2] = {128, 10};
    mt_graph *g = NULL;
    BENCH_CHECK(mt_graph_new(&g));
    mt_var x = mt_graph_placeholder(g, "x", MT_FLOAT32, 2, sz);
    mt_var y = mt_graph_placeholder(g, "y", MT_INT64, 1, sz);
    mt_var cost = mt_graph_mean(g, mt_graph_softmax_crossentropy_labels(g, x, y, 1), 0, NULL,
                                false);
    mt_var gx;
    BENCH_CHECK(mt_graph_grad(g, cost, 1, &x, &gx, NULL));
    /* one output: the cost plus a sum of the gradient, so both are computed */
    mt_var out = mt_graph_add(g, cost, mt_graph_sum(g, mt_graph_mul(g, gx, gx), 0, NULL, false));
    mt_var vars[2] = {x, y};
    mt_function *f = compile(g, 2, vars, out, 0, NULL, dev);
    mt_array X = {0}, Y = {0};
    BENCH_CHECK(mt_array_empty(&X, dev, MT_FLOAT32, 2, sz, 'C'));
    BENCH_CHECK(mt_array_random_uniform(&X, 5, 0, -3, 3));
    BENCH_CHECK(mt_array_empty(&Y, dev, MT_INT64, 1, sz, 'C'));
    BENCH_CHECK(mt_array_random_uniform(&Y, 6, 0, 0, 10));
    work w = {dev, f, 2, {&X, &Y}, false};
    measure(o, "xent+grad [128,10]", &w);
    mt_function_free(f);
    mt_array_clear(&X);
    mt_array_clear(&Y);
    mt_graph_free(g);
}

static void embed(const bench_opts *o, mt_device *dev)
{
    const int64_t se[2] = {1000, 64}, si[1] = {512};
    mt_graph *g = NULL;
    BENCH_CHECK(mt_graph_new(&g));
    mt_var e = mt_graph_placeholder(g, "E", MT_FLOAT32, 2, se);
    mt_var ix = mt_graph_placeholder(g, "ix", MT_INT32, 1, si);
    mt_var t = mt_graph_gather(g, e, ix, 0);
    mt_var cost = mt_graph_sum(g, mt_graph_mul(g, t, t), 0, NULL, false);
    mt_var ge;
    BENCH_CHECK(mt_graph_grad(g, cost, 1, &e, &ge, NULL));
    mt_var out = mt_graph_add(g, cost, mt_graph_sum(g, ge, 0, NULL, false));
    mt_var vars[2] = {e, ix};
    mt_function *f = compile(g, 2, vars, out, 0, NULL, dev);
    mt_array E = {0}, I = {0};
    BENCH_CHECK(mt_array_empty(&E, dev, MT_FLOAT32, 2, se, 'C'));
    BENCH_CHECK(mt_array_random_uniform(&E, 7, 0, -1, 1));
    BENCH_CHECK(mt_array_empty(&I, dev, MT_INT32, 1, si, 'C'));
    BENCH_CHECK(mt_array_random_uniform(&I, 8, 0, 0, 1000));
    work w = {dev, f, 2, {&E, &I}, false};
    measure(o, "embedding take+grad [1000,64] x 512", &w);
    mt_function_free(f);
    mt_array_clear(&E);
    mt_array_clear(&I);
    mt_graph_free(g);
}

int main(int argc, char **argv)
{
    bench_opts o;
    bench_parse_args(&o, argc, argv, 15, "[--case mlp_big|mlp_small|xent|embed|all]",
                     extra_opt);
    mt_device *dev = bench_open_device(&o);
    bench_print_context("advanced indexing on a device: kernels vs host copies", &o, dev);
    bench_table_header();
    static const int64_t big[4] = {784, 1024, 1024, 10}, small[3] = {784, 100, 10};
    if (wanted("mlp_big")) mlp(&o, dev, "mlp_big step (784-1024-1024-10, b128)", big, 3, 128);
    if (wanted("mlp_small")) mlp(&o, dev, "mlp_small step (784-100-10, b32)", small, 2, 32);
    if (wanted("xent")) xent(&o, dev);
    if (wanted("embed")) embed(&o, dev);
    mt_device_release(dev);
    return 0;
}
