/* Benchmark of loops (SCAN nodes): the executor's per-step overhead over the body's own calls.
 *
 *   bench_scan [--device D] [--reps N] [--warmup N] [--steps T] [--size N]
 *
 * The loop is a cumulative sum h_t = h_{t-1} + x_t over xs float32[T, N] (default T = 10000,
 * N = 16). Per mode (FAST_RUN, FAST_COMPILE) it prints the median time per step of
 *   scan_stacked   one call of a function returning the stacked states (T, N) and the final one
 *   scan_final     the same loop returning only the final state (no per-step copy)
 *   body_calls     the baseline: the body h + x compiled on its own and called T times by a C
 *                  loop (each result is the next call's state; row t of xs is a view), i.e. what
 *                  the loop does minus the executor's own work
 * Repetitions are interleaved (scan_stacked, scan_final, body_calls, ...) so that the noise of a
 * shared machine hits all three alike. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"
#include "mltrain/graph.h"
#include "mltrain/jit.h"

static int64_t g_steps = 10000, g_size = 16;

static int extra_opt(int argc, char **argv, int i)
{
    if (i + 1 < argc && !strcmp(argv[i], "--steps")) {
        g_steps = atoll(argv[i + 1]);
        return 2;
    }
    if (i + 1 < argc && !strcmp(argv[i], "--size")) {
        g_size = atoll(argv[i + 1]);
        return 2;
    }
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct loop_fns {
    mt_graph *body, *g;
    mt_function *stacked, *final, *step; /* the loop two ways, the body alone */
} loop_fns;

static void build(loop_fns *L, mt_device *dev, mt_mode mode)
{
    int64_t n[1] = {g_size}, xs_shape[2] = {-1, g_size};
    BENCH_CHECK(mt_graph_new(&L->body));
    BENCH_CHECK(mt_graph_new(&L->g));
    mt_var bx = mt_graph_placeholder(L->body, "x", MT_FLOAT32, 1, n);
    mt_var bh = mt_graph_placeholder(L->body, "h", MT_FLOAT32, 1, n);
    mt_var bin[2] = {bx, bh}, bout[1] = {mt_graph_add(L->body, bh, bx)};
    mt_var xs = mt_graph_placeholder(L->g, "xs", MT_FLOAT32, 2, xs_shape);
    mt_var h0 = mt_graph_placeholder(L->g, "h0", MT_FLOAT32, 1, n);
    mt_var ops[2] = {xs, h0}, stacked[1], finals[1];
    mt_scan_spec spec = {1, 1, 0, 0, -1, false};
    BENCH_CHECK(mt_graph_scan(L->g, L->body, &spec, bin, bout, ops, stacked, finals));
    mt_function_options o;
    mt_function_options_init(&o);
    o.mode = mode;
    mt_var outs[2] = {stacked[0], finals[0]};
    BENCH_CHECK(mt_function_new(&L->stacked, L->g, 2, ops, 2, outs, 0, NULL, dev, &o));
    BENCH_CHECK(mt_function_new(&L->final, L->g, 2, ops, 1, finals, 0, NULL, dev, &o));
    BENCH_CHECK(mt_function_new(&L->step, L->body, 2, bin, 1, bout, 0, NULL, dev, &o));
}

static void free_fns(loop_fns *L)
{
    mt_function_free(L->stacked);
    mt_function_free(L->final);
    mt_function_free(L->step);
    mt_graph_free(L->g);
    mt_graph_free(L->body);
}

static double time_loop(mt_function *f, int32_t nout, const mt_array *xs, const mt_array *h0)
{
    const mt_array *in[2] = {xs, h0};
    mt_array out[2];
    memset(out, 0, sizeof out);
    double t0 = mt_now_seconds();
    BENCH_CHECK(mt_function_call(f, 2, in, nout, out));
    double t = mt_now_seconds() - t0;
    for (int j = 0; j < nout; j++) mt_array_clear(&out[j]);
    return t;
}

/* The body called by a C loop, as the executor calls it. */
static double time_body(mt_function *f, const mt_array *xs, const mt_array *h0)
{
    mt_array row = *xs, h = {0};
    row.ndim = 1;
    row.dims[0] = xs->dims[1];
    row.strides[0] = xs->strides[1];
    mt_array_update_flags(&row);
    double t0 = mt_now_seconds();
    for (int64_t t = 0; t < xs->dims[0]; t++) {
        row.offset = xs->offset + (size_t)(t * xs->strides[0]);
        const mt_array *in[2] = {&row, h.buf ? &h : h0};
        mt_array nh = {0};
        BENCH_CHECK(mt_function_call(f, 2, in, 1, &nh));
        mt_array_clear(&h);
        h = nh;
    }
    double t = mt_now_seconds() - t0;
    mt_array_clear(&h);
    return t;
}

int main(int argc, char **argv)
{
    bench_opts o;
    bench_parse_args(&o, argc, argv, 5, "[--steps T] [--size N]", extra_opt);
    if (g_steps < 1 || g_size < 1) bench_fail("--steps and --size must be positive");
    mt_device *dev = bench_open_device(&o);
    bench_print_context("bench_scan: loop executor overhead per step", &o, dev);
    int64_t xd[2] = {g_steps, g_size};
    float *xv = malloc((size_t)(g_steps * g_size) * sizeof *xv);
    float *hv = malloc((size_t)g_size * sizeof *hv);
    if (!xv || !hv) bench_fail("out of memory");
    for (int64_t i = 0; i < g_steps * g_size; i++) xv[i] = (float)((i % 17) - 8) / 64.0f;
    for (int64_t i = 0; i < g_size; i++) hv[i] = 0.5f;
    mt_array xs, h0;
    BENCH_CHECK(mt_array_from_host(&xs, dev, MT_FLOAT32, 2, xd, xv));
    BENCH_CHECK(mt_array_from_host(&h0, dev, MT_FLOAT32, 1, xd + 1, hv));
    printf("cumulative sum of float32[%lld] over %lld steps; median of %d, us per step\n",
           (long long)g_size, (long long)g_steps, o.reps);
    printf("%-13s %14s %14s %14s %12s\n", "mode", "scan_stacked", "scan_final", "body_calls",
           "overhead");
    const mt_mode modes[2] = {MT_MODE_FAST_RUN, MT_MODE_FAST_COMPILE};
    for (int m = 0; m < 2; m++) {
        loop_fns L;
        memset(&L, 0, sizeof L);
        build(&L, dev, modes[m]);
        for (int w = 0; w < o.warmup; w++) {
            time_loop(L.stacked, 2, &xs, &h0);
            time_loop(L.final, 1, &xs, &h0);
            time_body(L.step, &xs, &h0);
        }
        double *ts = calloc((size_t)o.reps * 3, sizeof *ts);
        if (!ts) bench_fail("out of memory");
        for (int r = 0; r < o.reps; r++) {
            ts[r] = time_loop(L.stacked, 2, &xs, &h0);
            ts[o.reps + r] = time_loop(L.final, 1, &xs, &h0);
            ts[2 * o.reps + r] = time_body(L.step, &xs, &h0);
        }
        double med[3];
        for (int c = 0; c < 3; c++) {
            qsort(ts + c * o.reps, (size_t)o.reps, sizeof *ts, cmp_double);
            med[c] = ts[c * o.reps + o.reps / 2] * 1e6 / (double)g_steps;
        }
        printf("%-13s %14.3f %14.3f %14.3f %11.2fx\n", mt_mode_name(modes[m]), med[0], med[1],
               med[2], med[0] / med[2]);
        free(ts);
        free_fns(&L);
    }
    mt_array_clear(&xs);
    mt_array_clear(&h0);
    free(xv);
    free(hv);
    mt_device_release(dev);
    return 0;
}
