/* Benchmark of compiled functions (jit): call overhead on tiny inputs and a long elementwise
 * expression on a large array, in each execution mode, plus compile times.
 *
 *   bench_jit [--device D] [--calls N] [--size N] [--case NAME] [--mode M]
 *
 * --case runs one case only (raw_add, tiny_add, tiny_pow, long_expr, mlp_train) and --mode one
 * mode only (fast_run, fast_compile), so that compile times can be measured in a fresh process:
 * cold with an empty MLTRAIN_CACHE_DIR, warm by running the same command again.
 *
 * Cases:
 *   tiny_add     y = x + 1 on float32[4]: the per-call overhead of the executor
 *   tiny_pow     a + a**10 on float64[3] (as `mltrain eval` would run it)
 *   long_expr    tanh(x)*sigmoid(x) + exp(-x*x)*0.5 - log1p(abs(x)) on float32[size]
 * Each prints the median time per call over 5 batches for FAST_COMPILE (reference executor,
 * one kernel per node) and FAST_RUN (fused schedule), and the time of mt_function_new.
 *   mlp_train    an MLP 784-1024-1024-10 training step (relu, softmax crossentropy with integer
 *                labels, gradients by mt_graph_grad, SGD updates) on a batch of 128: compile
 *                time, schedule size, peak temporaries, step time, and the host kernels
 *                compiled by mt_function_new and by the first step (with compiler runs). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mltrain/graph_grad.h"
#include "mltrain/jit.h"

#define CHECK(expr)                                                                     \
    do {                                                                                \
        mt_status st_ = (expr);                                                         \
        if (st_ != MT_OK) {                                                             \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #expr, mt_last_error()); \
            exit(1);                                                                    \
        }                                                                               \
    } while (0)

static const char *only_case; /* --case */
static int n_modes = 2;        /* --mode: one mode in modes_sel[0] */
static mt_mode modes_sel[2] = {MT_MODE_FAST_COMPILE, MT_MODE_FAST_RUN};

static bool wanted(const char *name)
{
    return !only_case || !strcmp(only_case, name);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median over 5 batches of `calls` calls, in seconds per call. */
static double time_calls(mt_function *f, const mt_array *x, int calls)
{
    const mt_array *in[1] = {x};
    double t[5];
    for (int b = 0; b < 5; b++) {
        double t0 = mt_now_seconds();
        for (int i = 0; i < calls; i++) {
            mt_array out = {0};
            CHECK(mt_function_call(f, 1, in, 1, &out));
            mt_array_clear(&out);
        }
        t[b] = (mt_now_seconds() - t0) / calls;
    }
    qsort(t, 5, sizeof t[0], cmp_double);
    return t[2];
}

typedef mt_var (*build_fn)(mt_graph *g, mt_var x);

static mt_var build_add(mt_graph *g, mt_var x)
{
    return mt_graph_add(g, x, mt_graph_literal_float(g, 1.0));
}

static mt_var build_pow(mt_graph *g, mt_var x)
{
    return mt_graph_add(g, x, mt_graph_pow(g, x, mt_graph_literal_int(g, 10)));
}

static mt_var build_long(mt_graph *g, mt_var x)
{
    mt_var t = mt_graph_mul(g, mt_graph_tanh(g, x), mt_graph_sigmoid(g, x));
    mt_var e = mt_graph_mul(g, mt_graph_exp(g, mt_graph_neg(g, mt_graph_mul(g, x, x))),
                            mt_graph_literal_float(g, 0.5));
    return mt_graph_sub(g, mt_graph_add(g, t, e), mt_graph_log1p(g, mt_graph_abs(g, x)));
}

static void run_case(const char *name, mt_device *dev, mt_dtype dt, int64_t n, build_fn build,
                     int calls)
{
    mt_graph *g = NULL;
    CHECK(mt_graph_new(&g));
    mt_var x = mt_graph_placeholder(g, "x", dt, 1, &n);
    mt_var y = build(g, x);
    CHECK(mt_graph_status(g));
    mt_array X = {0};
    CHECK(mt_array_empty(&X, dev, dt, 1, &n, 'C'));
    CHECK(mt_array_random_uniform(&X, 1, 0, -2, 2));
    const mt_mode *modes = modes_sel;
    for (int m = 0; m < n_modes; m++) {
        mt_function_options o;
        mt_function_options_init(&o);
        o.mode = modes[m];
        mt_function *f = NULL;
        double t0 = mt_now_seconds();
        CHECK(mt_function_new(&f, g, 1, &x, 1, &y, 0, NULL, dev, &o));
        double tc = mt_now_seconds() - t0;
        const mt_array *in[1] = {&X};
        mt_array out = {0};
        t0 = mt_now_seconds();
        CHECK(mt_function_call(f, 1, in, 1, &out)); /* first call: kernels built or loaded */
        double tfirst = mt_now_seconds() - t0;
        mt_array_clear(&out);
        double per = time_calls(f, &X, calls);
        mt_function_stats st;
        mt_function_get_stats(f, &st);
        printf("%-10s %-12s n=%-9lld steps=%-3d fused=%-2d new %8.3f ms  first call %8.3f ms  "
               "call %10.3f us\n", name, mt_mode_name(modes[m]), (long long)n, (int)st.n_steps,
               (int)st.n_fused, tc * 1e3, tfirst * 1e3, per * 1e6);
        mt_function_free(f);
    }
    mt_array_clear(&X);
    mt_graph_free(g);
}

/* The floor: one mt_elemwise call (x + 1 into a new array) without any executor around it. */
static void raw_elemwise(mt_device *dev, int calls)
{
    int64_t n = 4;
    mt_array X = {0};
    CHECK(mt_array_zeros(&X, dev, MT_FLOAT32, 1, &n));
    mt_kexpr e;
    mt_kexpr_init(&e);
    int32_t r = mt_kexpr_binary(&e, MT_SOP_ADD, mt_kexpr_input(&e, 0, MT_FLOAT32),
                                mt_kexpr_const(&e, mt_scalar_f64(1), MT_FLOAT32));
    CHECK(mt_kexpr_add_output(&e, r));
    const mt_array *in[1] = {&X};
    double t[5];
    for (int b = 0; b < 5; b++) {
        double t0 = mt_now_seconds();
        for (int i = 0; i < calls; i++) {
            mt_array o = {0};
            CHECK(mt_array_empty(&o, dev, MT_FLOAT32, 1, &n, 'C'));
            mt_array *outs[1] = {&o};
            CHECK(mt_elemwise(&e, 1, in, outs, 0, NULL));
            mt_array_clear(&o);
        }
        CHECK(mt_device_sync(dev));
        t[b] = (mt_now_seconds() - t0) / calls;
    }
    qsort(t, 5, sizeof t[0], cmp_double);
    printf("%-10s %-12s n=%-9d %66s call %10.3f us\n", "raw_add", "mt_elemwise", 4, "",
           t[2] * 1e6);
    mt_kexpr_deinit(&e);
    mt_array_clear(&X);
}

static mt_var dense(mt_graph *g, mt_var h, mt_var W, mt_var b, bool relu)
{
    mt_var z = mt_graph_add(g, mt_graph_matmul(g, h, W), b);
    return relu ? mt_graph_relu(g, z) : z;
}

static void mlp_train(mt_device *dev, int steps)
{
    static const int64_t sizes[4] = {784, 1024, 1024, 10};
    int64_t batch = 128;
    mt_graph *g = NULL;
    CHECK(mt_graph_new(&g));
    int64_t sx[2] = {-1, 784}, sy[1] = {-1};
    mt_var x = mt_graph_placeholder(g, "x", MT_FLOAT32, 2, sx);
    mt_var y = mt_graph_placeholder(g, "y", MT_INT64, 1, sy);
    mt_var params[6], h = x;
    for (int l = 0; l < 3; l++) {
        char nw[8], nb[8];
        snprintf(nw, sizeof nw, "W%d", l);
        snprintf(nb, sizeof nb, "b%d", l);
        int64_t sw[2] = {sizes[l], sizes[l + 1]};
        params[2 * l] = mt_graph_placeholder(g, nw, MT_FLOAT32, 2, sw);
        params[2 * l + 1] = mt_graph_placeholder(g, nb, MT_FLOAT32, 1, sw + 1);
        h = dense(g, h, params[2 * l], params[2 * l + 1], l < 2);
    }
    mt_var cost = mt_graph_mean(g, mt_graph_softmax_crossentropy_labels(g, h, y, 1), 0, NULL,
                                false);
    mt_var grads[6];
    CHECK(mt_graph_grad(g, cost, 6, params, grads, NULL));
    mt_update ups[6];
    for (int i = 0; i < 6; i++)
        ups[i] = (mt_update){params[i], mt_graph_sub(g, params[i],
                                                    mt_graph_mul(g, mt_graph_literal_float(g, 0.01),
                                                                 grads[i]))};
    CHECK(mt_graph_status(g));
    mt_array P[6], X = {0}, Y = {0};
    int64_t dx[2] = {batch, 784};
    CHECK(mt_array_empty(&X, dev, MT_FLOAT32, 2, dx, 'C'));
    CHECK(mt_array_random_uniform(&X, 3, 0, 0, 1));
    CHECK(mt_array_empty(&Y, dev, MT_INT64, 1, &batch, 'C'));
    CHECK(mt_array_random_uniform(&Y, 4, 0, 0, 10));
    const mt_mode *modes = modes_sel;
    for (int m = 0; m < n_modes; m++) {
        mt_function_options o;
        mt_function_options_init(&o);
        o.mode = modes[m];
        o.profile = getenv("BENCH_PROFILE") != NULL;
        mt_function *f = NULL;
        mt_var vars[2] = {x, y};
        int64_t k0, r0, k1, r1, k2, r2; /* host kernels compiled and compiler runs */
        mt_host_kernel_counts(&k0, &r0);
        double t0 = mt_now_seconds();
        CHECK(mt_function_new(&f, g, 2, vars, 1, &cost, 6, ups, dev, &o));
        double tc = mt_now_seconds() - t0;
        mt_host_kernel_counts(&k1, &r1);
        for (int i = 0; i < 6; i++) {
            const mt_type *t = mt_graph_type(g, params[i]);
            CHECK(mt_array_empty(&P[i], dev, MT_FLOAT32, t->ndim, t->shape, 'C'));
            CHECK(mt_array_random_uniform(&P[i], 10 + (uint64_t)i, 0, -0.05, 0.05));
            CHECK(mt_function_set_shared(f, params[i], &P[i]));
        }
        const mt_array *in[2] = {&X, &Y};
        double first = 0, tstep[64];
        int ns = steps < 64 ? steps : 64;
        for (int k = 0; k <= ns; k++) {
            mt_array out = {0};
            t0 = mt_now_seconds();
            CHECK(mt_function_call(f, 2, in, 1, &out));
            double dt = mt_now_seconds() - t0;
            if (k == 0) {
                first = dt;
                mt_host_kernel_counts(&k2, &r2);
            }
            else tstep[k - 1] = dt;
            mt_array_clear(&out);
        }
        qsort(tstep, (size_t)ns, sizeof tstep[0], cmp_double);
        mt_function_stats st;
        mt_function_get_stats(f, &st);
        printf("%-10s %-12s nodes=%-4d steps=%-4d fused=%-3d (%d nodes) peak %.1f MB  new %8.3f ms"
               "  first step %8.3f ms  step %8.3f ms\n", "mlp_train", mt_mode_name(modes[m]),
               (int)st.n_nodes, (int)st.n_steps, (int)st.n_fused, (int)st.n_fused_nodes,
               (double)(st.peak_bytes >= 0 ? st.peak_bytes : st.run_peak_bytes) / 1e6, tc * 1e3, first * 1e3, tstep[ns / 2] * 1e3);
        printf("%-10s %-12s host kernels compiled: %lld in new (%lld compiler runs), %lld in "
               "the first step (%lld runs)\n", "", "", (long long)(k1 - k0),
               (long long)(r1 - r0), (long long)(k2 - k1), (long long)(r2 - r1));
        if (o.profile) {
            mt_strbuf sb;
            mt_strbuf_init(&sb);
            CHECK(mt_function_print_profile(f, &sb));
            CHECK(mt_function_print(f, &sb));
            printf("%s", sb.data);
            mt_strbuf_deinit(&sb);
        }
        for (int i = 0; i < 6; i++) mt_array_clear(&P[i]);
        mt_function_free(f);
    }
    mt_array_clear(&X);
    mt_array_clear(&Y);
    mt_graph_free(g);
}

int main(int argc, char **argv)
{
    const char *devname = "host";
    int calls = 20000;
    int64_t size = 1 << 22;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--device")) devname = argv[i + 1];
        else if (!strcmp(argv[i], "--calls")) calls = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--size")) size = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--case")) only_case = argv[i + 1];
        else if (!strcmp(argv[i], "--mode")) {
            CHECK(mt_mode_from_name(&modes_sel[0], argv[i + 1]));
            n_modes = 1;
        } else {
            fprintf(stderr, "usage: bench_jit [--device D] [--calls N] [--size N] [--case NAME] "
                    "[--mode M]\n");
            return 2;
        }
    }
    mt_device *dev = NULL;
    mt_status st = mt_device_open(&dev, devname);
    if (st == MT_ERR_NOT_FOUND || st == MT_ERR_NOT_BUILT) {
        printf("SKIP: device %s not available\n", devname);
        return 77;
    }
    CHECK(st);
    printf("bench_jit on %s\n", mt_device_name(dev));
    if (wanted("raw_add")) raw_elemwise(dev, calls);
    if (wanted("tiny_add")) run_case("tiny_add", dev, MT_FLOAT32, 4, build_add, calls);
    if (wanted("tiny_pow")) run_case("tiny_pow", dev, MT_FLOAT64, 3, build_pow, calls);
    int lcalls = (int)(calls / 1000 > 5 ? calls / 1000 : 5);
    if (wanted("long_expr")) run_case("long_expr", dev, MT_FLOAT32, size, build_long, lcalls);
    if (wanted("mlp_train")) mlp_train(dev, 10);
    mt_device_release(dev);
    return 0;
}
