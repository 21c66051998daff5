/* Tests of mt_function: shared variables and updates, argument validation, compile-time
 * errors, printing, profiling and the checking mode. */
#include <dirent.h>
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "jit_ref.h"
#include "mltrain/graph_grad.h"

static mt_graph *new_graph(void)
{
    mt_graph *g = NULL;
    MT_CHECK_OK(mt_graph_new(&g));
    mt_graph_set_origin(g, __FILE__, __LINE__);
    return g;
}

static mt_function_options opts(mt_mode mode)
{
    mt_function_options o;
    mt_function_options_init(&o);
    o.mode = mode;
    return o;
}

MT_TEST(mode_names)
{
    mt_mode m;
    MT_CHECK_OK(mt_mode_from_name(&m, "fast-compile"));
    MT_CHECK_EQ_INT(m, MT_MODE_FAST_COMPILE);
    MT_CHECK_OK(mt_mode_from_name(&m, "check"));
    MT_CHECK_EQ_INT(m, MT_MODE_CHECK);
    MT_CHECK_STR_EQ(mt_mode_name(MT_MODE_FAST_RUN), "fast_run");
    MT_CHECK_ERR(mt_mode_from_name(&m, "fast"), MT_ERR_INVALID, "fast_compile");
}

/* w <- w - 0.1 * x, output sum(w * x) from the old w; three calls equal the closed form. */
static void run_sgd(mt_mode mode)
{
    mt_graph *g = new_graph();
    int64_t s[1] = {3};
    mt_var w = mt_graph_placeholder(g, "w", MT_FLOAT64, 1, s);
    mt_var x = mt_graph_placeholder(g, "x", MT_FLOAT64, 1, s);
    mt_var loss = mt_graph_sum(g, mt_graph_mul(g, w, x), 0, NULL, false);
    mt_var neww = mt_graph_sub(g, w, mt_graph_mul(g, mt_graph_literal_float(g, 0.1), x));
    mt_update up = {w, neww};
    mt_function_options o = opts(mode);
    mt_function *f = NULL;
    MT_CHECK_OK(mt_function_new(&f, g, 1, &x, 1, &loss, 1, &up, jt_dev(), &o));
    MT_CHECK_EQ_INT(mt_function_n_shared(f), 1);
    MT_CHECK_EQ_INT(mt_function_shared(f, 0), w);
    double w0[3] = {1, -2, 0.5}, xv[3] = {0.5, 0.25, -4};
    mt_array W, X;
    jt_arr(&W, MT_FLOAT64, 1, s, w0);
    jt_arr(&X, MT_FLOAT64, 1, s, xv);
    MT_CHECK_OK(mt_function_set_shared(f, w, &W));
    const mt_array *ins[1] = {&X};
    for (int k = 0; k < 3; k++) {
        mt_array out = {0};
        MT_CHECK_OK(mt_function_call(f, 1, ins, 1, &out));
        double e = 0;
        for (int i = 0; i < 3; i++) e += (w0[i] - 0.1 * k * xv[i]) * xv[i];
        jt_expect(&out, MT_FLOAT64, 0, NULL, &e);
        mt_array_clear(&out);
    }
    double w3[3];
    for (int i = 0; i < 3; i++) w3[i] = w0[i] - 0.3 * xv[i];
    mt_array cur = {0};
    MT_CHECK_OK(mt_function_get_shared(f, w, &cur));
    jt_expect(&cur, MT_FLOAT64, 1, s, w3);
    /* set_shared retained the caller's array: the updates are visible in it. */
    jt_expect(&W, MT_FLOAT64, 1, s, w3);
    mt_array_clear(&cur);
    mt_array_clear(&W);
    mt_array_clear(&X);
    mt_function_free(f);
    mt_graph_free(g);
}

MT_TEST(shared_sgd_updates)
{
    run_sgd(MT_MODE_FAST_COMPILE);
}

MT_TEST(shared_sgd_updates_fast_run)
{
    run_sgd(MT_MODE_FAST_RUN);
}

MT_TEST(shared_sgd_updates_check_mode)
{
    run_sgd(MT_MODE_CHECK);
}

MT_TEST(shared_between_functions)
{
    mt_graph *g = new_graph();
    int64_t s[1] = {2};
    mt_var w = mt_graph_placeholder(g, "w", MT_FLOAT32, 1, s);
    mt_update up = {w, mt_graph_add(g, w, mt_graph_literal_float(g, 1.0))};
    mt_var norm = mt_graph_sum(g, mt_graph_square(g, w), 0, NULL, false);
    mt_function *train = NULL, *monitor = NULL;
    mt_function_options o = opts(MT_MODE_FAST_COMPILE);
    MT_CHECK_OK(mt_function_new(&train, g, 0, NULL, 0, NULL, 1, &up, jt_dev(), &o));
    MT_CHECK_OK(mt_function_new(&monitor, g, 0, NULL, 1, &norm, 0, NULL, jt_dev(), &o));
    double w0[2] = {1, 2};
    mt_array W;
    jt_arr(&W, MT_FLOAT32, 1, s, w0);
    MT_CHECK_OK(mt_function_set_shared(train, w, &W));
    MT_CHECK_OK(mt_function_set_shared(monitor, w, &W));
    mt_array_clear(&W); /* the functions hold their references */
    MT_CHECK_OK(mt_function_call(train, 0, NULL, 0, NULL));
    MT_CHECK_OK(mt_function_call(train, 0, NULL, 0, NULL));
    mt_array out = {0};
    MT_CHECK_OK(mt_function_call(monitor, 0, NULL, 1, &out));
    double e = 3 * 3 + 4 * 4;
    jt_expect(&out, MT_FLOAT32, 0, NULL, &e);
    mt_array_clear(&out);
    mt_function_free(train);
    mt_function_free(monitor);
    mt_graph_free(g);
}

MT_TEST(updates_swap_and_output_of_old_value)
{
    mt_graph *g = new_graph();
    int64_t s[1] = {2};
    mt_var a = mt_graph_placeholder(g, "a", MT_FLOAT64, 1, s);
    mt_var b = mt_graph_placeholder(g, "b", MT_FLOAT64, 1, s);
    mt_update ups[2] = {{a, b}, {b, a}};
    mt_var outs[2] = {a, mt_graph_neg(g, b)};
    mt_function *f = NULL;
    mt_function_options o = opts(MT_MODE_FAST_COMPILE);
    MT_CHECK_OK(mt_function_new(&f, g, 0, NULL, 2, outs, 2, ups, jt_dev(), &o));
    double av[2] = {1, 2}, bv[2] = {3, 4}, nb[2] = {-3, -4}, na[2] = {-1, -2};
    mt_array A, B;
    jt_arr(&A, MT_FLOAT64, 1, s, av);
    jt_arr(&B, MT_FLOAT64, 1, s, bv);
    MT_CHECK_OK(mt_function_set_shared(f, a, &A));
    MT_CHECK_OK(mt_function_set_shared(f, b, &B));
    mt_array r[2] = {{0}};
    MT_CHECK_OK(mt_function_call(f, 0, NULL, 2, r));
    /* Outputs are the values before the updates, and stay so afterwards. */
    jt_expect(&r[0], MT_FLOAT64, 1, s, av);
    jt_expect(&r[1], MT_FLOAT64, 1, s, nb);
    jt_expect(&A, MT_FLOAT64, 1, s, bv);
    jt_expect(&B, MT_FLOAT64, 1, s, av);
    mt_array_clear(&r[0]);
    mt_array_clear(&r[1]);
    MT_CHECK_OK(mt_function_call(f, 0, NULL, 2, r));
    jt_expect(&r[0], MT_FLOAT64, 1, s, bv);
    jt_expect(&r[1], MT_FLOAT64, 1, s, na);
    jt_expect(&A, MT_FLOAT64, 1, s, av);
    jt_expect(&B, MT_FLOAT64, 1, s, bv);
    mt_array_clear(&r[0]);
    mt_array_clear(&r[1]);
    mt_array_clear(&A);
    mt_array_clear(&B);
    mt_function_free(f);
    mt_graph_free(g);
}

MT_TEST(shared_copied_when_not_retainable)
{
    mt_graph *g = new_graph();
    int64_t s[2] = {2, 3}, s1[1] = {3};
    mt_var w = mt_graph_placeholder(g, "w", MT_FLOAT64, 2, s);
    mt_update up = {w, mt_graph_mul(g, w, mt_graph_literal_float(g, 2.0))};
    mt_function *f = NULL;
    mt_function_options o = opts(MT_MODE_FAST_COMPILE);
    MT_CHECK_OK(mt_function_new(&f, g, 0, NULL, 0, NULL, 1, &up, jt_dev(), &o));
    double v[3] = {1, 2, 3};
    mt_array R, B = {0};
    jt_arr(&R, MT_FLOAT64, 1, s1, v);
    MT_CHECK_OK(mt_array_broadcast_to(&B, &R, 2, s)); /* read-only: must be copied */
    MT_CHECK_OK(mt_function_set_shared(f, w, &B));
    MT_CHECK_OK(mt_function_call(f, 0, NULL, 0, NULL));
    jt_expect(&R, MT_FLOAT64, 1, s1, v);
    mt_array cur = {0};
    MT_CHECK_OK(mt_function_get_shared(f, w, &cur));
    double e[6] = {2, 4, 6, 2, 4, 6};
    jt_expect(&cur, MT_FLOAT64, 2, s, e);
    mt_array_clear(&cur);
    mt_array_clear(&B);
    mt_array_clear(&R);
    mt_function_free(f);
    mt_graph_free(g);
}

MT_TEST(call_validation_errors)
{
    mt_graph *g = new_graph();
    int64_t s[2] = {-1, 3};
    mt_var x = mt_graph_placeholder(g, "x", MT_FLOAT32, 2, s);
    mt_var w = mt_graph_placeholder(g, "w", MT_FLOAT32, 1, s + 1);
    mt_var y = mt_graph_add(g, x, w);
    mt_function *f = NULL;
    mt_function_options o = opts(MT_MODE_FAST_COMPILE);
    MT_CHECK_OK(mt_function_new(&f, g, 1, &x, 1, &y, 0, NULL, jt_dev(), &o));
    double v[12] = {0};
    int64_t good[2] = {4, 3}, bad[2] = {4, 2};
    mt_array X64, X32, XB, W64, out = {0};
    jt_arr(&X64, MT_FLOAT64, 2, good, v);
    jt_arr(&X32, MT_FLOAT32, 2, good, v);
    jt_arr(&XB, MT_FLOAT32, 2, bad, v);
    jt_arr(&W64, MT_FLOAT64, 1, s + 1, v);
    const mt_array *in64[1] = {&X64}, *in32[1] = {&X32}, *inb[1] = {&XB};
    /* the shared w has no value yet */
    MT_CHECK_ERR(mt_function_call(f, 1, in32, 1, &out), MT_ERR_INVALID, "'w'");
    MT_CHECK(strstr(mt_last_error(), "mt_function_set_shared") != NULL);
    MT_CHECK_ERR(mt_function_set_shared(f, w, &W64), MT_ERR_DTYPE, "float32[3]");
    MT_CHECK_ERR(mt_function_set_shared(f, x, &X32), MT_ERR_INVALID, "not a shared variable");
    mt_array W32;
    jt_arr(&W32, MT_FLOAT32, 1, s + 1, v);
    MT_CHECK_OK(mt_function_set_shared(f, w, &W32));
    MT_CHECK_ERR(mt_function_call(f, 1, in64, 1, &out), MT_ERR_DTYPE, "argument 0 ('x')");
    MT_CHECK(strstr(mt_last_error(), "float32[?,3]") != NULL);
    MT_CHECK(strstr(mt_last_error(), "float64") != NULL);
    MT_CHECK_ERR(mt_function_call(f, 1, inb, 1, &out), MT_ERR_SHAPE, "(4, 2)");
    MT_CHECK_ERR(mt_function_call(f, 0, NULL, 1, &out), MT_ERR_INVALID, "takes 1");
    MT_CHECK_ERR(mt_function_call(f, 1, in32, 2, &out), MT_ERR_INVALID, "returns 1");
    MT_CHECK(out.buf == NULL);
    MT_CHECK_OK(mt_function_call(f, 1, in32, 1, &out));
    mt_array_clear(&out);
    mt_function_free(f);
    mt_array_clear(&X64);
    mt_array_clear(&X32);
    mt_array_clear(&XB);
    mt_array_clear(&W64);
    mt_array_clear(&W32);
    mt_graph_free(g);
}

MT_TEST(compile_errors)
{
    mt_graph *g = new_graph();
    int64_t s[1] = {3}, s2[1] = {2};
    mt_var x = mt_graph_placeholder(g, "x", MT_FLOAT64, 1, s);
    mt_var w = mt_graph_placeholder(g, "w", MT_FLOAT64, 1, s);
    mt_var y = mt_graph_add(g, x, w);
    mt_function *f = NULL;
    mt_var two[2] = {x, x};
    MT_CHECK_ERR(mt_function_new(&f, g, 1, &y, 1, &y, 0, NULL, NULL, NULL), MT_ERR_INVALID,
                 "not a placeholder");
    MT_CHECK_ERR(mt_function_new(&f, g, 2, two, 1, &y, 0, NULL, NULL, NULL), MT_ERR_INVALID,
                 "same placeholder");
    mt_var none = MT_VAR_NONE;
    MT_CHECK_ERR(mt_function_new(&f, g, 1, &x, 1, &none, 0, NULL, NULL, NULL), MT_ERR_INVALID,
                 "output 0");
    mt_update upx = {x, y};
    MT_CHECK_ERR(mt_function_new(&f, g, 1, &x, 1, &y, 1, &upx, NULL, NULL), MT_ERR_INVALID,
                 "must be shared");
    mt_update upt = {w, mt_graph_cast(g, y, MT_FLOAT32)};
    MT_CHECK_ERR(mt_function_new(&f, g, 1, &x, 1, &y, 1, &upt, NULL, NULL), MT_ERR_DTYPE,
                 "'w' is float64[3]");
    mt_var z = mt_graph_placeholder(g, "z", MT_FLOAT64, 1, s2);
    mt_update ups = {w, z};
    MT_CHECK_ERR(mt_function_new(&f, g, 1, &x, 1, &y, 1, &ups, NULL, NULL), MT_ERR_SHAPE,
                 "float64[2]");
    MT_CHECK(f == NULL);
    /* A failed builder: the error of the graph is reported. */
    mt_var bad = mt_graph_add(g, x, z);
    MT_CHECK(bad == MT_VAR_NONE);
    MT_CHECK_ERR(mt_function_new(&f, g, 1, &x, 1, &bad, 0, NULL, NULL, NULL), MT_ERR_INVALID,
                 "(3,)");
    /* mt_graph_eval without a needed placeholder */
    mt_array r = {0}, X;
    double v[3] = {1, 2, 3};
    jt_arr(&X, MT_FLOAT64, 1, s, v);
    const mt_array *in[1] = {&X};
    MT_CHECK_ERR(mt_graph_eval(g, 1, &y, 1, &x, in, jt_dev(), &r), MT_ERR_INVALID,
                 "placeholder 'w' is needed");
    mt_array_clear(&X);
    mt_graph_free(g);
}

MT_TEST(graph_independence)
{
    /* The function keeps working after the caller's graph is freed. */
    mt_graph *g = new_graph();
    int64_t s[1] = {3};
    mt_var x = mt_graph_placeholder(g, "x", MT_FLOAT64, 1, s);
    double cv[3] = {10, 20, 30};
    mt_var y = mt_graph_mul(g, x, mt_graph_constant(g, MT_FLOAT64, 1, s, cv));
    mt_function *f = NULL;
    MT_CHECK_OK(mt_function_new(&f, g, 1, &x, 1, &y, 0, NULL, jt_dev(), NULL));
    mt_graph_free(g);
    double v[3] = {1, 2, 3}, e[3] = {10, 40, 90};
    mt_array X, out = {0};
    jt_arr(&X, MT_FLOAT64, 1, s, v);
    const mt_array *in[1] = {&X};
    MT_CHECK_OK(mt_function_call(f, 1, in, 1, &out));
    jt_expect(&out, MT_FLOAT64, 1, s, e);
    mt_array_clear(&out);
    mt_array_clear(&X);
    mt_function_free(f);
}

MT_TEST(print_and_profile)
{
    mt_graph *g = new_graph();
    int64_t s[2] = {8, 16};
    mt_var x = mt_graph_placeholder(g, "x", MT_FLOAT32, 2, s);
    mt_var y = mt_graph_sum(MT_AT(g), mt_graph_tanh(g, mt_graph_mul(g, x, x)), 0, NULL, false);
    mt_function_options o = opts(MT_MODE_FAST_COMPILE);
    o.profile = true;
    mt_function *f = NULL;
    MT_CHECK_OK(mt_function_new(&f, g, 1, &x, 1, &y, 0, NULL, jt_dev(), &o));
    double v[128];
    jt_fill(v, 128, -1, 1, 3);
    mt_array X;
    jt_arr(&X, MT_FLOAT32, 2, s, v);
    const mt_array *in[1] = {&X};
    for (int k = 0; k < 3; k++) {
        mt_array out = {0};
        MT_CHECK_OK(mt_function_call(f, 1, in, 1, &out));
        mt_array_clear(&out);
    }
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    MT_CHECK_OK(mt_function_print(f, &sb));
    MT_CHECK(strstr(sb.data, "schedule (reference, 3 steps") != NULL);
    MT_CHECK(strstr(sb.data, "tanh") != NULL);
    MT_CHECK(strstr(sb.data, "test_jit_function.c") != NULL);
    MT_CHECK(strstr(sb.data, "argument 'x'") != NULL);
    mt_strbuf_clear(&sb);
    MT_CHECK_OK(mt_function_print_profile(f, &sb));
    MT_CHECK(strstr(sb.data, "profile: 3 calls") != NULL);
    MT_CHECK(strstr(sb.data, "sum") != NULL);
    mt_function_stats st;
    mt_function_get_stats(f, &st);
    MT_CHECK_EQ_INT(st.n_steps, 3);
    MT_CHECK(st.peak_bytes > 0);
    mt_function_reset_profile(f);
    mt_strbuf_clear(&sb);
    MT_CHECK_OK(mt_function_print_profile(f, &sb));
    MT_CHECK(strstr(sb.data, "profile: 0 calls") != NULL);
    mt_strbuf_deinit(&sb);
    mt_array_clear(&X);
    mt_function_free(f);
    mt_graph_free(g);
}

MT_TEST(identity_output_and_input_device_copy)
{
    mt_graph *g = new_graph();
    int64_t s[1] = {3};
    mt_var x = mt_graph_placeholder(g, "x", MT_FLOAT64, 1, s);
    mt_function *f = NULL;
    MT_CHECK_OK(mt_function_new(&f, g, 1, &x, 1, &x, 0, NULL, jt_dev(), NULL));
    /* An argument on the host is copied to the function's device when they differ. */
    mt_device *host = NULL;
    MT_CHECK_OK(mt_device_open(&host, "host"));
    double v[3] = {1, 2, 3};
    mt_array X, out = {0};
    MT_CHECK_OK(mt_array_from_host(&X, host, MT_FLOAT64, 1, s, v));
    const mt_array *in[1] = {&X};
    MT_CHECK_OK(mt_function_call(f, 1, in, 1, &out));
    MT_CHECK(mt_array_device(&out) == jt_dev());
    jt_expect(&out, MT_FLOAT64, 1, s, v);
    mt_array_clear(&out);
    mt_array_clear(&X);
    mt_device_release(host);
    mt_function_free(f);
    mt_graph_free(g);
}

MT_TEST(disabled_rewrites)
{
    mt_graph *g = new_graph();
    int64_t s[1] = {4};
    mt_var x = mt_graph_placeholder(g, "x", MT_FLOAT64, 1, s);
    mt_var y = mt_graph_log(g, mt_graph_add(g, mt_graph_literal_float(g, 1), x));
    mt_function_options o = opts(MT_MODE_FAST_RUN);
    const char *bad[1] = {"no_such_rule"};
    o.n_disabled_rewrites = 1;
    o.disabled_rewrites = bad;
    mt_function *f = NULL;
    MT_CHECK_ERR(mt_function_new(&f, g, 1, &x, 1, &y, 0, NULL, jt_dev(), &o), MT_ERR_INVALID,
                 "no_such_rule");
    /* log(1 + x) becomes log1p(x) unless the rule is switched off */
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    o.n_disabled_rewrites = 0;
    MT_CHECK_OK(mt_function_new(&f, g, 1, &x, 1, &y, 0, NULL, jt_dev(), &o));
    MT_CHECK_OK(mt_function_print(f, &sb));
    bool rewritten = strstr(sb.data, "log1p") != NULL;
    mt_function_free(f);
    if (!rewritten) {
        mt_strbuf_deinit(&sb);
        mt_graph_free(g);
        MT_SKIP("the log1p rewrite is not available in this build");
    }
    const char *off[1] = {"log1p"};
    o.n_disabled_rewrites = 1;
    o.disabled_rewrites = off;
    MT_CHECK_OK(mt_function_new(&f, g, 1, &x, 1, &y, 0, NULL, jt_dev(), &o));
    mt_strbuf_clear(&sb);
    MT_CHECK_OK(mt_function_print(f, &sb));
    MT_CHECK(strstr(sb.data, "log1p") == NULL);
    double v[4] = {1e-20, 0.5, 1, 2}, e[4];
    for (int i = 0; i < 4; i++) e[i] = log(1 + v[i]);
    mt_array X, out = {0};
    jt_arr(&X, MT_FLOAT64, 1, s, v);
    const mt_array *in[1] = {&X};
    MT_CHECK_OK(mt_function_call(f, 1, in, 1, &out));
    jt_expect(&out, MT_FLOAT64, 1, s, e); /* log(1 + 1e-20) = 0 without the rewrite */
    mt_array_clear(&out);
    mt_array_clear(&X);
    mt_function_free(f);
    mt_strbuf_deinit(&sb);
    mt_graph_free(g);
}

/* ---------------------------------------------------------------- concurrent kernel cache */

/* One process of concurrent_processes_share_one_cache: compiles a FAST_RUN function of
 * variant v (a fused kernel and a fused reduction with constants unique to this test run, so
 * every kernel is a cache miss) into the cache directory, calls it and compares with plain
 * loops. Returns the exit status: 0 correct, 1 wrong values, 2 a failed call. */
static int concurrent_child(int v, double nonce)
{
    mt_device *dev = NULL;
    mt_graph *g = NULL;
    mt_function *f = NULL;
    mt_array X = {0}, r[2] = {{0}};
    int rc = 2;
    enum { N = 1000 };
    double xv[N], c = nonce + v, yv[N], sum = 0;
    for (int i = 0; i < N; i++) xv[i] = -2.0 + 4.0 * i / N;
    if (mt_device_open(&dev, "host") != MT_OK || mt_graph_new(&g) != MT_OK) goto done;
    int64_t n = N;
    mt_var x = mt_graph_placeholder(g, "x", MT_FLOAT64, 1, &n);
    mt_var cv = mt_graph_literal_float(g, c);
    mt_var y = mt_graph_add(g, mt_graph_mul(g, mt_graph_tanh(g, x), cv),
                            mt_graph_exp(g, mt_graph_neg(g, mt_graph_mul(g, x, x))));
    mt_var s = mt_graph_sum(g, mt_graph_mul(g, mt_graph_mul(g, x, x), cv), 0, NULL, false);
    mt_var outs[2] = {y, s};
    const mt_array *in[1] = {&X};
    if (mt_graph_status(g) != MT_OK ||
        mt_function_new(&f, g, 1, &x, 2, outs, 0, NULL, dev, NULL) != MT_OK ||
        mt_array_from_host(&X, dev, MT_FLOAT64, 1, &n, xv) != MT_OK ||
        mt_function_call(f, 1, in, 2, r) != MT_OK)
        goto done;
    double got[N + 1];
    if (mt_array_to_host(got, N * sizeof(double), &r[0]) != MT_OK ||
        mt_array_to_host(got + N, sizeof(double), &r[1]) != MT_OK)
        goto done;
    rc = 0;
    for (int i = 0; i < N; i++) {
        yv[i] = tanh(xv[i]) * c + exp(-xv[i] * xv[i]);
        sum += xv[i] * xv[i] * c;
        if (fabs(got[i] - yv[i]) > 1e-12 * (1 + fabs(yv[i]))) rc = 1;
    }
    if (fabs(got[N] - sum) > 1e-10 * fabs(sum)) rc = 1;
    if (rc) fprintf(stderr, "  child %d: wrong values\n", v);
done:
    if (rc == 2) fprintf(stderr, "  child %d: %s\n", v, mt_last_error());
    mt_array_clear(&r[0]);
    mt_array_clear(&r[1]);
    mt_array_clear(&X);
    mt_function_free(f);
    mt_graph_free(g);
    mt_device_release(dev);
    return rc;
}

/* A kernel entry name the cache may leave behind: <64 hex digits>.so. */
static bool cache_entry_name(const char *name)
{
    size_t len = strlen(name);
    if (len != 67 || strcmp(name + 64, ".so") != 0) return false;
    for (int i = 0; i < 64; i++)
        if (!strchr("0123456789abcdef", name[i])) return false;
    return true;
}

MT_TEST(elemwise_prebuild_arguments)
{
    /* Direct use: a bad call fails with a message naming it; a good one puts a kernel in the
     * cache that mt_elemwise then uses (its values checked against plain loops). */
    mt_kexpr e;
    mt_kexpr_init(&e);
    int32_t i0 = mt_kexpr_input(&e, 0, MT_FLOAT64), i1 = mt_kexpr_input(&e, 1, MT_FLOAT64);
    MT_CHECK_OK(mt_kexpr_add_output(&e, mt_kexpr_binary(&e, MT_SOP_MUL, i0, i1)));
    mt_dtype dts[2] = {MT_FLOAT64, MT_FLOAT64};
    int32_t nds[2] = {2, 1};
    int64_t dims[2][MT_MAX_DIMS] = {{MT_DIM_UNKNOWN, 5}, {5}};
    int64_t od[2] = {MT_DIM_UNKNOWN, 5};
    MT_CHECK_ERR(mt_elemwise_prebuild(NULL, &e, 2, dts, nds, (const int64_t(*)[MT_MAX_DIMS])dims,
                                      2, od, 0), MT_ERR_INVALID, "prebuild");
    int32_t bad_nd[2] = {2, 9};
    MT_CHECK_ERR(mt_elemwise_prebuild(jt_dev(), &e, 2, dts, bad_nd,
                                      (const int64_t(*)[MT_MAX_DIMS])dims, 2, od, 0),
                 MT_ERR_INVALID, "rank 9");
    mt_dtype wrong[2] = {MT_FLOAT32, MT_FLOAT64};
    MT_CHECK_ERR(mt_elemwise_prebuild(jt_dev(), &e, 2, wrong, nds,
                                      (const int64_t(*)[MT_MAX_DIMS])dims, 2, od, 0),
                 MT_ERR_DTYPE, "input 0");
    MT_CHECK_OK(mt_elemwise_prebuild(jt_dev(), &e, 2, dts, nds,
                                     (const int64_t(*)[MT_MAX_DIMS])dims, 2, od, 0));
    int64_t xs[2] = {3, 5}, bs = 5;
    double xv[15], bv[5], got[15];
    jt_fill(xv, 15, -2, 2, 11);
    jt_fill(bv, 5, -2, 2, 12);
    mt_array X, B, O = {0};
    jt_arr(&X, MT_FLOAT64, 2, xs, xv);
    jt_arr(&B, MT_FLOAT64, 1, &bs, bv);
    MT_CHECK_OK(mt_array_empty(&O, jt_dev(), MT_FLOAT64, 2, xs, 'C'));
    const mt_array *in[2] = {&X, &B};
    mt_array *out[1] = {&O};
    MT_CHECK_OK(mt_elemwise(&e, 2, in, out, 0, NULL));
    jt_read(&O, got, 15);
    for (int i = 0; i < 15; i++) {
        double ev = xv[i] * bv[i % 5];
        MT_CHECK(fabs(got[i] - ev) <= 1e-15 * (1 + fabs(ev)));
    }
    mt_array_clear(&X);
    mt_array_clear(&B);
    mt_array_clear(&O);
    mt_kexpr_deinit(&e);
}

/* The kernel entries in dir (see cache_entry_name). */
static int count_entries(const char *dir)
{
    DIR *dp = opendir(dir);
    if (!dp) return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(dp)) != NULL) n += cache_entry_name(de->d_name);
    closedir(dp);
    return n;
}

/* Child of fused_kernels_prebuilt_at_compile, in an empty cache dir: the fused kernel exists
 * right after mt_function_new; a C-contiguous call compiles nothing more (the prediction was
 * right); a transposed argument (a layout not predicted) still gives the right values.
 * Returns 0 on success. */
static int prebuild_child(const char *dir, bool cc)
{
    mt_device *dev = NULL;
    mt_graph *g = NULL;
    mt_function *f = NULL;
    mt_array X = {0}, B = {0}, XT = {0}, Xv = {0}, r = {0};
    int rc = 2;
    double xv[12], bv[3], got[12];
    for (int i = 0; i < 12; i++) xv[i] = -1.5 + 0.25 * i;
    for (int i = 0; i < 3; i++) bv[i] = 0.5 * i - 0.3;
    if (mt_device_open(&dev, "host") != MT_OK || mt_graph_new(&g) != MT_OK) goto done;
    int64_t xs[2] = {MT_DIM_UNKNOWN, 3}, bs = 3, d43[2] = {4, 3}, d34[2] = {3, 4};
    mt_var x = mt_graph_placeholder(g, "x", MT_FLOAT64, 2, xs);
    mt_var b = mt_graph_placeholder(g, "b", MT_FLOAT64, 1, &bs);
    mt_var y = mt_graph_add(g, mt_graph_tanh(g, mt_graph_add(g, mt_graph_mul(g, x, x), b)),
                            mt_graph_exp(g, mt_graph_neg(g, x)));
    mt_var args[2] = {x, b};
    if (mt_graph_status(g) != MT_OK ||
        mt_function_new(&f, g, 2, args, 1, &y, 0, NULL, dev, NULL) != MT_OK)
        goto done;
    int n0 = count_entries(dir);
    if (cc && n0 < 1) {
        fprintf(stderr, "  no kernel prebuilt (%d entries)\n", n0);
        return 3;
    }
    const mt_array *in[2] = {&X, &B};
    int32_t perm[2] = {1, 0};
    if (mt_array_from_host(&X, dev, MT_FLOAT64, 2, d43, xv) != MT_OK ||
        mt_array_from_host(&B, dev, MT_FLOAT64, 1, &bs, bv) != MT_OK ||
        mt_function_call(f, 2, in, 1, &r) != MT_OK ||
        mt_array_to_host(got, sizeof got, &r) != MT_OK)
        goto done;
    rc = 0;
    for (int i = 0; i < 12; i++) {
        double v = xv[i], e = tanh(v * v + bv[i % 3]) + exp(-v);
        if (fabs(got[i] - e) > 1e-12 * (1 + fabs(e))) rc = 1;
    }
    if (cc && count_entries(dir) != n0) {
        fprintf(stderr, "  a contiguous call compiled %d more kernels\n", count_entries(dir) - n0);
        rc = 4;
    }
    /* the same values as a transposed (strided) view of a [3, 4] array */
    double tv[12];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 3; j++) tv[j * 4 + i] = xv[i * 3 + j];
    mt_array_clear(&r);
    in[0] = &Xv;
    if (mt_array_from_host(&XT, dev, MT_FLOAT64, 2, d34, tv) != MT_OK ||
        mt_array_transpose(&Xv, &XT, perm) != MT_OK || mt_function_call(f, 2, in, 1, &r) != MT_OK ||
        mt_array_to_host(got, sizeof got, &r) != MT_OK) {
        rc = 2;
        goto done;
    }
    for (int i = 0; i < 12; i++) {
        double v = xv[i], e = tanh(v * v + bv[i % 3]) + exp(-v);
        if (fabs(got[i] - e) > 1e-12 * (1 + fabs(e))) rc = 1;
    }
    if (rc == 1) fprintf(stderr, "  wrong values\n");
done:
    if (rc == 2) fprintf(stderr, "  %s\n", mt_last_error());
    mt_array_clear(&r);
    mt_array_clear(&X);
    mt_array_clear(&B);
    mt_array_clear(&Xv);
    mt_array_clear(&XT);
    mt_function_free(f);
    mt_graph_free(g);
    mt_device_release(dev);
    return rc;
}

MT_TEST(fused_kernels_prebuilt_at_compile)
{
    /* In a child (the cache directory is read once per process, and the host device is opened
     * there only: a thread pool does not survive fork). */
    if (strcmp(mt_test_device_name(), "host") != 0) MT_SKIP("host-only test");
    const char *tmp = getenv("TMPDIR");
    char dir[512], path[1024];
    snprintf(dir, sizeof dir, "%s/mltrain-pre-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    MT_CHECK(mkdtemp(dir) != NULL);
    const char *nocc = getenv("MLTRAIN_NO_CC");
    bool cc = !(nocc && *nocc && strcmp(nocc, "0") != 0);
    fflush(NULL);
    pid_t pid = fork();
    MT_CHECK(pid >= 0);
    if (pid == 0) {
        setenv("MLTRAIN_CACHE_DIR", dir, 1);
        _exit(prebuild_child(dir, cc));
    }
    int status = 0;
    MT_CHECK(waitpid(pid, &status, 0) == pid);
    MT_CHECK(WIFEXITED(status));
    MT_CHECK_EQ_INT(WEXITSTATUS(status), 0);
    DIR *dp = opendir(dir);
    struct dirent *de;
    while (dp && (de = readdir(dp)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        unlink(path);
    }
    if (dp) closedir(dp);
    rmdir(dir);
}

MT_TEST(concurrent_processes_share_one_cache)
{
    /* 8 processes, started together, compile 4 different functions (two processes each) into
     * one empty cache directory: all get correct results, and the directory holds only
     * complete, loadable entries (no temporaries, logs or failed sources). The host device is
     * opened only in the children (a parent's thread pool would not survive fork). */
    if (strcmp(mt_test_device_name(), "host") != 0) MT_SKIP("host-only test");
    const char *tmp = getenv("TMPDIR");
    char dir[512];
    snprintf(dir, sizeof dir, "%s/mltrain-conc-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    MT_CHECK(mkdtemp(dir) != NULL);
    double nonce = (double)(getpid() % 1000) + mt_now_seconds() * 1e-3;
    nonce -= floor(nonce / 1000) * 1000; /* a value of this run, not reused by the next one */
    int fds[2];
    MT_CHECK(pipe(fds) == 0);
    pid_t pids[8];
    for (int i = 0; i < 8; i++) {
        fflush(NULL);
        pids[i] = fork();
        MT_CHECK(pids[i] >= 0);
        if (pids[i] == 0) {
            close(fds[1]);
            char c;
            while (read(fds[0], &c, 1) > 0) {} /* start together: wait for the pipe to close */
            setenv("MLTRAIN_CACHE_DIR", dir, 1);
            _exit(concurrent_child(i % 4, nonce));
        }
    }
    close(fds[0]);
    close(fds[1]);
    for (int i = 0; i < 8; i++) {
        int status = 0;
        MT_CHECK(waitpid(pids[i], &status, 0) == pids[i]);
        MT_CHECK(WIFEXITED(status));
        MT_CHECK_EQ_INT(WEXITSTATUS(status), 0);
    }
    DIR *dp = opendir(dir);
    MT_CHECK(dp != NULL);
    struct dirent *de;
    int entries = 0;
    char path[1024];
    while ((de = readdir(dp)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        size_t nl = strlen(de->d_name);
        if (nl == 38 && !strncmp(de->d_name, "cc-", 3) && !strcmp(de->d_name + 35, ".id")) {
            /* the compiler identity: one complete line */
            FILE *fp = fopen(path, "r");
            char line[300] = {0};
            MT_CHECK(fp && fgets(line, sizeof line, fp) && strchr(line, '\n'));
            if (fp) fclose(fp);
        } else if (!cache_entry_name(de->d_name)) {
            fprintf(stderr, "  unexpected file in the cache: %s\n", de->d_name);
            MT_CHECK(false);
        } else {
            void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
            if (!h) fprintf(stderr, "  corrupt entry %s: %s\n", de->d_name, dlerror());
            MT_CHECK(h != NULL);
            if (h) dlclose(h);
            entries++;
        }
        unlink(path);
    }
    closedir(dp);
    rmdir(dir);
    /* at least one fused kernel per distinct function (the reduction's kernel may be shared
     * between them), unless kernels are interpreted */
    const char *nocc = getenv("MLTRAIN_NO_CC");
    if (!(nocc && *nocc && strcmp(nocc, "0") != 0)) MT_CHECK(entries >= 4);
}

/* Steps of a FAST_RUN momentum-SGD step of a small dense layer, with the rewrites on or off. */
static int32_t momentum_step_count(int32_t n_off, const char *const *off)
{
    mt_graph *g = new_graph();
    int64_t sx[2] = {8, 5}, sw[2] = {5, 3}, sb[1] = {3};
    mt_var x = mt_graph_placeholder(g, "x", MT_FLOAT32, 2, sx);
    mt_var W = mt_graph_placeholder(g, "W", MT_FLOAT32, 2, sw);
    mt_var b = mt_graph_placeholder(g, "b", MT_FLOAT32, 1, sb);
    mt_var vW = mt_graph_placeholder(g, "vW", MT_FLOAT32, 2, sw);
    mt_var vb = mt_graph_placeholder(g, "vb", MT_FLOAT32, 1, sb);
    mt_var z = mt_graph_tanh(g, mt_graph_add(g, mt_graph_matmul(g, x, W), b));
    mt_var cost = mt_graph_mean(g, mt_graph_mul(g, z, z), 0, NULL, false);
    mt_var params[2] = {W, b}, vel[2] = {vW, vb}, grads[2];
    MT_CHECK_OK(mt_graph_grad(g, cost, 2, params, grads, NULL));
    mt_update ups[4];
    for (int i = 0; i < 2; i++) {
        mt_var v1 = mt_graph_sub(g, mt_graph_mul(g, mt_graph_literal_float(g, 0.5), vel[i]),
                                 mt_graph_mul(g, mt_graph_literal_float(g, 0.1), grads[i]));
        ups[2 * i] = (mt_update){vel[i], v1};
        ups[2 * i + 1] = (mt_update){params[i], mt_graph_add(g, params[i], v1)};
    }
    MT_CHECK_OK(mt_graph_status(g));
    mt_function_options o = opts(MT_MODE_FAST_RUN);
    o.n_disabled_rewrites = n_off;
    o.disabled_rewrites = off;
    mt_function *f = NULL;
    MT_CHECK_OK(mt_function_new(&f, g, 1, &x, 1, &cost, 4, ups, jt_dev(), &o));
    mt_function_stats st;
    mt_function_get_stats(f, &st);
    mt_function_free(f);
    mt_graph_free(g);
    return st.n_steps;
}

/* The function's node order holds both the literal (reference) graph and the rewritten one;
 * fusion must group only what the rewritten outputs and updates need, or a kernel takes in its
 * unrewritten twins and the whole unoptimized gradient chain runs as well (a training step then
 * does its backward pass twice). Rewrites only remove work here, so the optimized schedule may
 * not have more steps than the one with the node-replacing rewrites switched off. */
MT_TEST(fusion_ignores_the_reference_schedule)
{
    static const char *const off[] = {"gemm_bias", "gemm_scale", "gemm_transpose",
                                      "div_to_recip", "constant_fold", "mul_one"};
    int32_t n_on = momentum_step_count(0, NULL);
    int32_t n_off = momentum_step_count((int32_t)(sizeof off / sizeof off[0]), off);
    if (n_on > n_off)
        mt_test_fail(__FILE__, __LINE__, "%d steps with the rewrites, %d without", (int)n_on,
                     (int)n_off);
}
