/* Benchmark of convolution on an accelerator device: mt_conv2d_forward (generated im2col
 * kernels + the device's GEMM, or the backend's vendor library) against the path mltrain took
 * before it existed, emulated here step for step: copy x and w to the host, run the host
 * convolution (a compiled host function of one CONV2D node, as src/jit/ref_conv.c runs it),
 * copy y back to the device. Both sides end with a device sync; repetitions alternate A B A B.
 *
 *   bench_conv_device [--device D] [--reps N] [--warmup N]
 *
 * Layer: the Pylearn2 convolutional tutorial's second convolution, float32, x [100, 64, 11,
 * 11], w [64, 64, 5, 5] -> y [100, 64, 7, 7] (0.50 G multiply-adds).
 *
 * Then each direction of the device path alone (forward, gradient of the input, gradient of
 * the filter): the first call with its sync (on CUDA it includes choosing cuDNN's algorithm for
 * the shape), the median call with its sync, and the CPU time a call takes to return (ten calls
 * queued back to back, then one sync): the per-call overhead a training step pays on the host
 * while the device works. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"
#include "mltrain/jit.h"

typedef struct ctx {
    mt_device *dev, *host;
    mt_array x, w, y;  /* on dev */
    float *hx, *hw, *hy; /* host staging */
    mt_function *host_fn;
} ctx;

static const int64_t XD[4] = {100, 64, 11, 11}, WD[4] = {64, 64, 5, 5}, YD[4] = {100, 64, 7, 7};

static int64_t numel(const int64_t *d)
{
    return d[0] * d[1] * d[2] * d[3];
}

static void run_device(void *p)
{
    ctx *c = p;
    const mt_conv2d_params prm = {{1, 1}, {0, 0}};
    BENCH_CHECK(mt_conv2d_forward(&c->y, &c->x, &c->w, &prm));
    BENCH_CHECK(mt_device_sync(c->dev));
}

/* The former path: operands to the host, host convolution, result back to the device. */
static void run_host_copy(void *p)
{
    ctx *c = p;
    BENCH_CHECK(mt_array_to_host(c->hx, (size_t)numel(XD) * 4, &c->x));
    BENCH_CHECK(mt_array_to_host(c->hw, (size_t)numel(WD) * 4, &c->w));
    mt_array hx, hw, hy;
    memset(&hy, 0, sizeof hy);
    BENCH_CHECK(mt_array_from_host(&hx, c->host, MT_FLOAT32, 4, XD, c->hx));
    BENCH_CHECK(mt_array_from_host(&hw, c->host, MT_FLOAT32, 4, WD, c->hw));
    const mt_array *in[2] = {&hx, &hw};
    BENCH_CHECK(mt_function_call(c->host_fn, 2, in, 1, &hy));
    BENCH_CHECK(mt_buffer_write(c->y.buf, c->y.offset, mt_buffer_host_ptr(hy.buf),
                                (size_t)numel(YD) * 4, NULL));
    BENCH_CHECK(mt_device_sync(c->dev));
    mt_array_clear(&hx), mt_array_clear(&hw), mt_array_clear(&hy);
}

typedef struct dir_ctx {
    ctx *c;
    int kind; /* 0 forward, 1 gradient of x, 2 gradient of w */
    mt_array dx, dw;
} dir_ctx;

static void dir_call(dir_ctx *d)
{
    const mt_conv2d_params prm = {{1, 1}, {0, 0}};
    ctx *c = d->c;
    if (d->kind == 0)
        BENCH_CHECK(mt_conv2d_forward(&c->y, &c->x, &c->w, &prm));
    else if (d->kind == 1)
        BENCH_CHECK(mt_conv2d_backward_data(&d->dx, &c->y, &c->w, &prm));
    else
        BENCH_CHECK(mt_conv2d_backward_filter(&d->dw, &c->x, &c->y, &prm));
}

/* One direction: first call, median synced call, median CPU time per queued call (ms). */
static void bench_direction(ctx *c, int kind, int reps)
{
    static const char *const names[3] = {"forward", "gradient of x", "gradient of w"};
    dir_ctx d = {.c = c, .kind = kind};
    BENCH_CHECK(mt_array_empty(&d.dx, c->dev, MT_FLOAT32, 4, XD, 'C'));
    BENCH_CHECK(mt_array_empty(&d.dw, c->dev, MT_FLOAT32, 4, WD, 'C'));
    double t0 = bench_now();
    dir_call(&d);
    BENCH_CHECK(mt_device_sync(c->dev));
    double first = bench_now() - t0;
    double *synced = bench_xmalloc((size_t)reps * sizeof(double));
    double *queued = bench_xmalloc((size_t)reps * sizeof(double));
    for (int r = 0; r < reps; r++) {
        t0 = bench_now();
        dir_call(&d);
        BENCH_CHECK(mt_device_sync(c->dev));
        synced[r] = bench_now() - t0;
        enum { QUEUE = 10 };
        t0 = bench_now();
        for (int q = 0; q < QUEUE; q++) dir_call(&d);
        queued[r] = (bench_now() - t0) / QUEUE;
        BENCH_CHECK(mt_device_sync(c->dev));
    }
    printf("| %-14s | %10.3f | %10.3f | %10.3f |\n", names[kind], first * 1e3,
           bench_median(synced, reps) * 1e3, bench_median(queued, reps) * 1e3);
    free(synced), free(queued);
    mt_array_clear(&d.dx), mt_array_clear(&d.dw);
}

int main(int argc, char **argv)
{
    bench_opts o;
    bench_parse_args(&o, argc, argv, 11, NULL, NULL);
    ctx c;
    memset(&c, 0, sizeof c);
    c.dev = bench_open_device(&o);
    BENCH_CHECK(mt_device_open(&c.host, "host"));
    bench_print_context("conv2d forward on a device: generic kernels vs host copies", &o, c.dev);
    c.hx = bench_xmalloc((size_t)numel(XD) * 4);
    c.hw = bench_xmalloc((size_t)numel(WD) * 4);
    bench_fill_uniform_f32(c.hx, (size_t)numel(XD), 1, -1, 1);
    bench_fill_uniform_f32(c.hw, (size_t)numel(WD), 2, -0.1f, 0.1f);
    BENCH_CHECK(mt_array_from_host(&c.x, c.dev, MT_FLOAT32, 4, XD, c.hx));
    BENCH_CHECK(mt_array_from_host(&c.w, c.dev, MT_FLOAT32, 4, WD, c.hw));
    BENCH_CHECK(mt_array_empty(&c.y, c.dev, MT_FLOAT32, 4, YD, 'C'));

    /* first, so that each direction's first call on this device is the shape's first */
    printf("Each direction on the device (ms; the CPU column is the time one call takes to "
           "return when calls are queued back to back):\n\n"
           "| direction      | first call | median     | CPU / call |\n"
           "|---|---:|---:|---:|\n");
    for (int k = 0; k < 3; k++) bench_direction(&c, k, o.reps);
    printf("\n");

    mt_graph *g = NULL;
    BENCH_CHECK(mt_graph_new(&g));
    mt_var X = mt_graph_placeholder(g, "x", MT_FLOAT32, 4, XD);
    mt_var W = mt_graph_placeholder(g, "w", MT_FLOAT32, 4, WD);
    const int32_t s[2] = {1, 1}, pd[2] = {0, 0};
    mt_var Y = mt_graph_conv2d(g, X, W, s, pd);
    BENCH_CHECK(mt_graph_status(g));
    mt_var vars[2] = {X, W};
    mt_function_options fo;
    mt_function_options_init(&fo);
    BENCH_CHECK(mt_function_new(&c.host_fn, g, 2, vars, 1, &Y, 0, NULL, c.host, &fo));

    /* the two paths agree (tolerance of a float32 sum of 1600 terms) */
    float *a = bench_xmalloc((size_t)numel(YD) * 4), *b = bench_xmalloc((size_t)numel(YD) * 4);
    run_device(&c);
    BENCH_CHECK(mt_array_to_host(a, (size_t)numel(YD) * 4, &c.y));
    run_host_copy(&c);
    BENCH_CHECK(mt_array_to_host(b, (size_t)numel(YD) * 4, &c.y));
    double maxd = 0;
    for (int64_t i = 0; i < numel(YD); i++) {
        double d = a[i] > b[i] ? a[i] - b[i] : b[i] - a[i];
        if (d > maxd) maxd = d;
    }
    /* TF32 (MLTRAIN_CUDA_TF32=1) rounds the operands to 10-bit mantissas: ~1e-3 per product */
    const char *tf32 = getenv("MLTRAIN_CUDA_TF32");
    double tol = tf32 && *tf32 && strcmp(tf32, "0") != 0 ? 2e-2 : 1e-3;
    printf("max |generic - host copy| = %.3g (tolerance %g)\n", maxd, tol);
    if (maxd > tol) {
        fprintf(stderr, "the two paths disagree\n");
        return 1;
    }

    static const char *const impl[2] = {"generic device kernels", "host copy (former path)"};
    bench_case cases[2] = {
        {.name = "conv2d fwd [100,64,11,11] * [64,64,5,5]", .fn = run_device, .ctx = &c},
        {.name = "conv2d fwd [100,64,11,11] * [64,64,5,5]", .fn = run_host_copy, .ctx = &c},
    };
    bench_run(cases, 2, o.reps, o.warmup);
    const double macs = (double)numel(YD) * 64 * 25;
    bench_table_header();
    for (int i = 0; i < 2; i++) {
        char ratio[64] = "reference";
        if (i == 0)
            snprintf(ratio, sizeof ratio, "**%.2fx** faster (paired)",
                     bench_paired_ratio(&cases[0], 1, &cases[1], 1));
        bench_table_row(cases[i].name, impl[i], "-", &cases[i], 2 * macs, "GFLOP/s", ratio);
    }
    for (int i = 0; i < 2; i++) bench_case_free(&cases[i]);

    free(a), free(b), free(c.hx), free(c.hw);
    mt_function_free(c.host_fn);
    mt_graph_free(g);
    mt_array_clear(&c.x), mt_array_clear(&c.w), mt_array_clear(&c.y);
    mt_device_release(c.host);
    mt_device_release(c.dev);
    return 0;
}
