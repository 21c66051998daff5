/* Loops (SCAN nodes) run by compiled functions on the test device (MLTRAIN_TEST_DEVICE or the
 * host), each checked against a plain C loop in the array's dtype with per-dtype tolerances, in
 * FAST_RUN, FAST_COMPILE and CHECK: cumulative sums forward and reverse, an Elman RNN, two
 * states with an extra output, loops without sequences, zero steps, integer states, outputs
 * that alias the body's inputs, expressions around the loop (fused kernels, a reversed view as
 * the sequence), a loop inside a loop's body, run-time errors (sequences of different lengths,
 * a state whose shape changes) and the schedule computing every result of a loop with one
 * step. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jit_ref.h"

static const mt_mode g_modes[] = {MT_MODE_FAST_RUN, MT_MODE_FAST_COMPILE, MT_MODE_CHECK};
#define NMODES ((int)(sizeof g_modes / sizeof g_modes[0]))

/* ---------------------------------------------------------------- helpers */

static mt_graph *new_graph(void)
{
    mt_graph *g = NULL;
    MT_CHECK_OK(mt_graph_new(&g));
    mt_graph_set_origin(g, __FILE__, __LINE__);
    return g;
}

/* A loop of g over body: mt_graph_scan, checked; results into stacked / finals. */
static void build_scan(mt_graph *g, const mt_graph *body, mt_scan_spec spec, const mt_var *bin,
                       const mt_var *bout, const mt_var *operands, mt_var *stacked,
                       mt_var *finals)
{
    mt_status st = mt_graph_scan(g, body, &spec, bin, bout, operands, stacked, finals);
    if (st != MT_OK)
        mt_test_fail(__FILE__, __LINE__, "mt_graph_scan: %s (%s)", mt_status_name(st),
                     mt_graph_last_error(g));
}

static mt_function *compile_fn(mt_graph *g, int32_t nin, const mt_var *vars, int32_t nout,
                               const mt_var *outs, mt_mode mode)
{
    mt_function_options o;
    mt_function_options_init(&o);
    o.mode = mode;
    mt_function *f = NULL;
    mt_status st = mt_function_new(&f, g, nin, vars, nout, outs, 0, NULL, jt_dev(), &o);
    if (st != MT_OK)
        mt_test_fail(__FILE__, __LINE__, "mt_function_new (%s): %s", mt_mode_name(mode),
                     mt_last_error());
    return f;
}

/* Compiles outs of g over the arguments vars in mode and calls it once on args. */
static void run_fn(mt_graph *g, int32_t nin, const mt_var *vars, const mt_array *const *args,
                   int32_t nout, const mt_var *outs, mt_mode mode, mt_array *res)
{
    mt_function *f = compile_fn(g, nin, vars, nout, outs, mode);
    for (int32_t j = 0; j < nout; j++) memset(&res[j], 0, sizeof res[j]);
    mt_status st = mt_function_call(f, nin, args, nout, res);
    if (st != MT_OK)
        mt_test_fail(__FILE__, __LINE__, "call (%s on %s): %s", mt_mode_name(mode),
                     mt_device_name(jt_dev()), mt_last_error());
    mt_function_free(f);
}

/* The error status of compiling and calling (compilation must succeed). */
static mt_status call_status(mt_graph *g, int32_t nin, const mt_var *vars,
                             const mt_array *const *args, int32_t nout, const mt_var *outs,
                             mt_mode mode)
{
    mt_function *f = compile_fn(g, nin, vars, nout, outs, mode);
    mt_array res[8];
    memset(res, 0, sizeof res);
    mt_err_clear();
    mt_status st = mt_function_call(f, nin, args, nout, res);
    for (int32_t j = 0; j < nout; j++) mt_array_clear(&res[j]);
    mt_function_free(f);
    return st;
}

/* a's values against expect with the dtype's tolerances times scale. */
static void expect_scaled(const mt_array *a, mt_dtype dt, int32_t nd, const int64_t *dims,
                          const double *expect, double scale)
{
    double atol, rtol;
    jt_tol(dt, &atol, &rtol);
    jt_expect_tol(a, dt, nd, dims, expect, atol * scale, rtol * scale);
}

/* v rounded to dt (the reference loops compute in the arrays' dtype). */
static double in_dtype(mt_dtype dt, double v)
{
    return dt == MT_FLOAT32 ? (double)(float)v : v;
}

static mt_scan_spec spec_of(int32_t n_seq, int32_t n_state, int32_t n_nonseq, int32_t n_extra,
                            int64_t n_steps, bool reverse)
{
    mt_scan_spec s = {n_seq, n_state, n_nonseq, n_extra, n_steps, reverse};
    return s;
}

static int count_of(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

/* ---------------------------------------------------------------- cumulative sums */

/* The running-sum body h' = h + x (placeholders x and h of n elements of dt, in that order) and
 * the outer placeholders xs (rows, n) and h0 (n). */
typedef struct sum_loop {
    mt_graph *body, *g;
    mt_var bin[2], bout[1], xs, h0;
} sum_loop;

static void sum_loop_init(sum_loop *L, mt_dtype dt, int64_t rows, int64_t n)
{
    L->body = new_graph();
    L->g = new_graph();
    int64_t d[1] = {n}, sx[2] = {rows, n};
    L->bin[0] = mt_graph_placeholder(L->body, "x", dt, 1, d);
    L->bin[1] = mt_graph_placeholder(L->body, "h", dt, 1, d);
    L->bout[0] = mt_graph_add(L->body, L->bin[1], L->bin[0]);
    L->xs = mt_graph_placeholder(L->g, "xs", dt, 2, sx);
    L->h0 = mt_graph_placeholder(L->g, "h0", dt, 1, d);
}

static void sum_loop_free(sum_loop *L)
{
    mt_graph_free(L->g);
    mt_graph_free(L->body);
}

/* h_t = h_{t-1} + x_t over xs (T, 4) from h0 (4,): the stacked states and the final one. */
static void run_cumsum(mt_dtype dt, bool reverse, int64_t T, mt_mode mode)
{
    enum { N = 4 };
    sum_loop L;
    sum_loop_init(&L, dt, -1, N);
    mt_graph *g = L.g;
    int64_t n[1] = {N};
    mt_var xs = L.xs, h0 = L.h0, ops[2] = {xs, h0}, stacked[1], finals[1];
    build_scan(g, L.body, spec_of(1, 1, 0, 0, -1, reverse), L.bin, L.bout, ops, stacked, finals);
    double xv[64 * N], hv[N], es[64 * N], ef[N];
    MT_CHECK(T <= 64);
    jt_fill(xv, (size_t)(T * N), -1, 1, 11);
    jt_fill(hv, N, -1, 1, 12);
    for (int32_t c = 0; c < N; c++) {
        double h = in_dtype(dt, hv[c]);
        for (int64_t i = 0; i < T; i++) {
            int64_t t = reverse ? T - 1 - i : i;
            h = in_dtype(dt, h + in_dtype(dt, xv[t * N + c]));
            es[t * N + c] = h;
        }
        ef[c] = h;
    }
    int64_t xd[2] = {T, N};
    mt_array X, H;
    jt_arr(&X, dt, 2, xd, xv);
    jt_arr(&H, dt, 1, n, hv);
    const mt_array *args[2] = {&X, &H};
    mt_var vars[2] = {xs, h0}, outs[2] = {stacked[0], finals[0]};
    mt_array res[2];
    run_fn(g, 2, vars, args, 2, outs, mode, res);
    expect_scaled(&res[0], dt, 2, xd, es, 1);
    expect_scaled(&res[1], dt, 1, n, ef, 1);
    for (int j = 0; j < 2; j++) mt_array_clear(&res[j]);
    mt_array_clear(&X);
    mt_array_clear(&H);
    sum_loop_free(&L);
}

MT_TEST(cumsum)
{
    for (int m = 0; m < NMODES; m++) {
        run_cumsum(MT_FLOAT64, false, 7, g_modes[m]);
        run_cumsum(MT_FLOAT32, false, 7, g_modes[m]);
    }
}

MT_TEST(cumsum_reverse)
{
    for (int m = 0; m < NMODES; m++) {
        run_cumsum(MT_FLOAT64, true, 6, g_modes[m]);
        run_cumsum(MT_FLOAT32, true, 6, g_modes[m]);
    }
}

/* T = 0: the stacked states are (0, 4), the final state is the initial one. */
MT_TEST(zero_steps)
{
    for (int m = 0; m < NMODES; m++) {
        run_cumsum(MT_FLOAT64, false, 0, g_modes[m]);
        run_cumsum(MT_FLOAT32, true, 0, g_modes[m]);
    }
}

/* ---------------------------------------------------------------- an Elman RNN */

/* h_t = tanh(x_t @ U + h_{t-1} @ W + b), x (T, B, I), U (I, H), W (H, H), b (H,). */
static void run_elman(mt_dtype dt, mt_mode mode)
{
    enum { T = 5, B = 2, I = 3, H = 4 };
    mt_graph *body = new_graph(), *g = new_graph();
    int64_t sx[2] = {B, I}, sh[2] = {B, H}, su[2] = {I, H}, sw[2] = {H, H}, sb[1] = {H};
    mt_var bx = mt_graph_placeholder(body, "x_t", dt, 2, sx);
    mt_var bh = mt_graph_placeholder(body, "h", dt, 2, sh);
    mt_var bu = mt_graph_placeholder(body, "U", dt, 2, su);
    mt_var bw = mt_graph_placeholder(body, "W", dt, 2, sw);
    mt_var bb = mt_graph_placeholder(body, "b", dt, 1, sb);
    mt_var pre = mt_graph_add(body, mt_graph_add(body, mt_graph_matmul(body, bx, bu),
                                                 mt_graph_matmul(body, bh, bw)), bb);
    mt_var bin[5] = {bx, bh, bu, bw, bb}, bout[1] = {mt_graph_tanh(body, pre)};
    int64_t sxs[3] = {T, B, I}, shs[3] = {T, B, H};
    mt_var xs = mt_graph_placeholder(g, "xs", dt, 3, sxs);
    mt_var h0 = mt_graph_placeholder(g, "h0", dt, 2, sh);
    mt_var U = mt_graph_placeholder(g, "U", dt, 2, su);
    mt_var W = mt_graph_placeholder(g, "W", dt, 2, sw);
    mt_var b = mt_graph_placeholder(g, "b", dt, 1, sb);
    mt_var ops[5] = {xs, h0, U, W, b}, stacked[1], finals[1];
    build_scan(g, body, spec_of(1, 1, 2 + 1, 0, -1, false), bin, bout, ops, stacked, finals);
    double xv[T * B * I], hv[B * H], uv[I * H], wv[H * H], bv[H];
    jt_fill(xv, T * B * I, -1, 1, 21);
    jt_fill(hv, B * H, -0.5, 0.5, 22);
    jt_fill(uv, I * H, -0.7, 0.7, 23);
    jt_fill(wv, H * H, -0.7, 0.7, 24);
    jt_fill(bv, H, -0.2, 0.2, 25);
    double *vals[5] = {xv, hv, uv, wv, bv};
    size_t counts[5] = {T * B * I, B * H, I * H, H * H, H};
    for (int a = 0; a < 5; a++)
        for (size_t i = 0; i < counts[a]; i++) vals[a][i] = in_dtype(dt, vals[a][i]);
    double es[T * B * H], h[B * H], nh[B * H];
    memcpy(h, hv, sizeof h);
    for (int t = 0; t < T; t++) {
        for (int r = 0; r < B; r++)
            for (int c = 0; c < H; c++) {
                double s = bv[c];
                for (int k = 0; k < I; k++) s += xv[(t * B + r) * I + k] * uv[k * H + c];
                for (int k = 0; k < H; k++) s += h[r * H + k] * wv[k * H + c];
                nh[r * H + c] = tanh(s);
            }
        memcpy(h, nh, sizeof h);
        memcpy(es + t * B * H, h, sizeof h);
    }
    mt_array A[5];
    jt_arr(&A[0], dt, 3, sxs, xv);
    jt_arr(&A[1], dt, 2, sh, hv);
    jt_arr(&A[2], dt, 2, su, uv);
    jt_arr(&A[3], dt, 2, sw, wv);
    jt_arr(&A[4], dt, 1, sb, bv);
    const mt_array *args[5] = {&A[0], &A[1], &A[2], &A[3], &A[4]};
    mt_var outs[2] = {stacked[0], finals[0]};
    mt_array res[2];
    run_fn(g, 5, ops, args, 2, outs, mode, res);
    /* float32: each step rounds the products and the tanh; the errors carry over 5 steps */
    double scale = dt == MT_FLOAT32 ? 20 : 10;
    expect_scaled(&res[0], dt, 3, shs, es, scale);
    expect_scaled(&res[1], dt, 2, sh, h, scale);
    for (int j = 0; j < 2; j++) mt_array_clear(&res[j]);
    for (int a = 0; a < 5; a++) mt_array_clear(&A[a]);
    mt_graph_free(g);
    mt_graph_free(body);
}

MT_TEST(elman_rnn)
{
    for (int m = 0; m < NMODES; m++) {
        run_elman(MT_FLOAT64, g_modes[m]);
        run_elman(MT_FLOAT32, g_modes[m]);
    }
}

/* ---------------------------------------------------------------- two states, one extra */

/* Over xs (T, 3): a' = a + x_t (3,), c' = 0.5 c + sum(x_t) (0-d), extra y = sum(a' * x_t)
 * (0-d). Every result of the loop is an output (5 nodes of one loop). */
typedef struct two_state {
    mt_graph *g, *body;
    mt_var xs, a0, c0;
    mt_var stacked[3], finals[2];
} two_state;

static void two_state_build(two_state *L, mt_dtype dt)
{
    L->body = new_graph();
    L->g = new_graph();
    mt_graph *body = L->body, *g = L->g;
    int64_t s3[1] = {3}, sxs[2] = {-1, 3};
    mt_var bx = mt_graph_placeholder(body, "x", dt, 1, s3);
    mt_var ba = mt_graph_placeholder(body, "a", dt, 1, s3);
    mt_var bc = mt_graph_placeholder(body, "c", dt, 0, NULL);
    mt_var na = mt_graph_add(body, ba, bx);
    mt_var nc = mt_graph_add(body, mt_graph_mul(body, bc, mt_graph_scalar(body, dt, 0.5)),
                             mt_graph_sum(body, bx, 0, NULL, false));
    mt_var y = mt_graph_sum(body, mt_graph_mul(body, na, bx), 0, NULL, false);
    mt_var bin[3] = {bx, ba, bc}, bout[3] = {na, nc, y};
    L->xs = mt_graph_placeholder(g, "xs", dt, 2, sxs);
    L->a0 = mt_graph_placeholder(g, "a0", dt, 1, s3);
    L->c0 = mt_graph_placeholder(g, "c0", dt, 0, NULL);
    mt_var ops[3] = {L->xs, L->a0, L->c0};
    build_scan(g, body, spec_of(1, 2, 0, 1, -1, false), bin, bout, ops, L->stacked, L->finals);
}

static void two_state_free(two_state *L)
{
    mt_graph_free(L->g);
    mt_graph_free(L->body);
}

static void run_two_state(mt_dtype dt, int64_t T, mt_mode mode)
{
    two_state L;
    two_state_build(&L, dt);
    double xv[16 * 3], av[3], cv[1];
    MT_CHECK(T <= 16);
    jt_fill(xv, (size_t)T * 3, -1, 1, 31);
    jt_fill(av, 3, -1, 1, 32);
    cv[0] = 0.75;
    for (int64_t i = 0; i < T * 3; i++) xv[i] = in_dtype(dt, xv[i]);
    for (int i = 0; i < 3; i++) av[i] = in_dtype(dt, av[i]);
    double ea[16 * 3], ec[16], ey[16], a[3], c = cv[0];
    memcpy(a, av, sizeof a);
    for (int64_t t = 0; t < T; t++) {
        double sx = 0, y = 0;
        for (int i = 0; i < 3; i++) {
            a[i] = in_dtype(dt, a[i] + xv[t * 3 + i]);
            sx += xv[t * 3 + i];
        }
        for (int i = 0; i < 3; i++) y += a[i] * xv[t * 3 + i];
        c = in_dtype(dt, 0.5 * c + sx);
        memcpy(ea + t * 3, a, sizeof a);
        ec[t] = c;
        ey[t] = y;
    }
    int64_t sxs[2] = {T, 3}, s3[1] = {3}, sT[1] = {T};
    mt_array X, A, C;
    jt_arr(&X, dt, 2, sxs, xv);
    jt_arr(&A, dt, 1, s3, av);
    jt_arr(&C, dt, 0, NULL, cv);
    const mt_array *args[3] = {&X, &A, &C};
    mt_var vars[3] = {L.xs, L.a0, L.c0};
    mt_var outs[5] = {L.stacked[0], L.stacked[1], L.stacked[2], L.finals[0], L.finals[1]};
    mt_array res[5];
    run_fn(L.g, 3, vars, args, 5, outs, mode, res);
    expect_scaled(&res[0], dt, 2, sxs, ea, 4);
    expect_scaled(&res[1], dt, 1, sT, ec, 4);
    expect_scaled(&res[2], dt, 1, sT, ey, 4);
    expect_scaled(&res[3], dt, 1, s3, a, 4);
    expect_scaled(&res[4], dt, 0, NULL, &c, 4);
    for (int j = 0; j < 5; j++) mt_array_clear(&res[j]);
    mt_array_clear(&X);
    mt_array_clear(&A);
    mt_array_clear(&C);
    two_state_free(&L);
}

MT_TEST(two_states_extra)
{
    for (int m = 0; m < NMODES; m++) {
        run_two_state(MT_FLOAT64, 5, g_modes[m]);
        run_two_state(MT_FLOAT32, 5, g_modes[m]);
    }
}

/* T = 0 with an extra output: its stacked result takes the body output's static shape. */
MT_TEST(two_states_zero_steps)
{
    for (int m = 0; m < NMODES; m++) run_two_state(MT_FLOAT64, 0, g_modes[m]);
}

/* ---------------------------------------------------------------- no sequences */

/* h = 2 h for 4 steps (n_steps, no sequence), forward and reverse. */
static void run_doubling(mt_dtype dt, bool reverse, mt_mode mode)
{
    enum { T = 4 };
    mt_graph *body = new_graph(), *g = new_graph();
    int64_t s2[1] = {2}, sT2[2] = {T, 2};
    mt_var bh = mt_graph_placeholder(body, "h", dt, 1, s2);
    mt_var bin[1] = {bh}, bout[1] = {mt_graph_mul(body, bh, mt_graph_scalar(body, dt, 2))};
    mt_var h0 = mt_graph_placeholder(g, "h0", dt, 1, s2);
    mt_var stacked[1], finals[1];
    build_scan(g, body, spec_of(0, 1, 0, 0, T, reverse), bin, bout, &h0, stacked, finals);
    double hv[2] = {1.5, -0.25}, es[T * 2], ef[2];
    for (int i = 0; i < T; i++) {
        int t = reverse ? T - 1 - i : i;
        for (int c = 0; c < 2; c++) es[t * 2 + c] = hv[c] * pow(2, i + 1);
    }
    for (int c = 0; c < 2; c++) ef[c] = hv[c] * pow(2, T);
    mt_array H;
    jt_arr(&H, dt, 1, s2, hv);
    const mt_array *args[1] = {&H};
    mt_var outs[2] = {stacked[0], finals[0]};
    mt_array res[2];
    run_fn(g, 1, &h0, args, 2, outs, mode, res);
    expect_scaled(&res[0], dt, 2, sT2, es, 1);
    expect_scaled(&res[1], dt, 1, s2, ef, 1);
    for (int j = 0; j < 2; j++) mt_array_clear(&res[j]);
    mt_array_clear(&H);
    mt_graph_free(g);
    mt_graph_free(body);
}

MT_TEST(n_steps)
{
    for (int m = 0; m < NMODES; m++) {
        run_doubling(MT_FLOAT64, false, g_modes[m]);
        run_doubling(MT_FLOAT32, true, g_modes[m]);
    }
}

/* ---------------------------------------------------------------- integers */

/* Running maximum of int32 rows: exact. */
static void run_running_max(mt_mode mode)
{
    enum { T = 7, N = 5 };
    mt_graph *body = new_graph(), *g = new_graph();
    int64_t n[1] = {N}, sx[2] = {T, N};
    mt_var bx = mt_graph_placeholder(body, "x", MT_INT32, 1, n);
    mt_var bh = mt_graph_placeholder(body, "h", MT_INT32, 1, n);
    mt_var bin[2] = {bx, bh}, bout[1] = {mt_graph_maximum(body, bh, bx)};
    mt_var xs = mt_graph_placeholder(g, "xs", MT_INT32, 2, sx);
    mt_var h0 = mt_graph_placeholder(g, "h0", MT_INT32, 1, n);
    mt_var ops[2] = {xs, h0}, stacked[1], finals[1];
    build_scan(g, body, spec_of(1, 1, 0, 0, -1, false), bin, bout, ops, stacked, finals);
    double xv[T * N], hv[N], es[T * N], ef[N];
    for (int i = 0; i < T * N; i++) xv[i] = (double)((i * 7919 + 13) % 201 - 100);
    for (int c = 0; c < N; c++) hv[c] = -50 + 10 * c;
    for (int c = 0; c < N; c++) {
        double h = hv[c];
        for (int t = 0; t < T; t++) {
            if (xv[t * N + c] > h) h = xv[t * N + c];
            es[t * N + c] = h;
        }
        ef[c] = h;
    }
    mt_array X, H;
    jt_arr(&X, MT_INT32, 2, sx, xv);
    jt_arr(&H, MT_INT32, 1, n, hv);
    const mt_array *args[2] = {&X, &H};
    mt_var outs[2] = {stacked[0], finals[0]};
    mt_array res[2];
    run_fn(g, 2, ops, args, 2, outs, mode, res);
    jt_expect(&res[0], MT_INT32, 2, sx, es);
    jt_expect(&res[1], MT_INT32, 1, n, ef);
    for (int j = 0; j < 2; j++) mt_array_clear(&res[j]);
    mt_array_clear(&X);
    mt_array_clear(&H);
    mt_graph_free(g);
    mt_graph_free(body);
}

MT_TEST(int32_running_max)
{
    for (int m = 0; m < NMODES; m++) run_running_max(g_modes[m]);
}

/* ---------------------------------------------------------------- aliasing and composition */

/* The new state is the old one and the extra output is the sequence's row itself: the body
 * returns its own arguments, the loop's results must still be copies with the right values. */
MT_TEST(identity_outputs)
{
    enum { T = 3, N = 2 };
    for (int m = 0; m < NMODES; m++) {
        mt_graph *body = new_graph(), *g = new_graph();
        int64_t n[1] = {N}, sx[2] = {T, N};
        mt_var bx = mt_graph_placeholder(body, "x", MT_FLOAT64, 1, n);
        mt_var bh = mt_graph_placeholder(body, "h", MT_FLOAT64, 1, n);
        mt_var bin[2] = {bx, bh}, bout[2] = {bh, bx};
        mt_var xs = mt_graph_placeholder(g, "xs", MT_FLOAT64, 2, sx);
        mt_var h0 = mt_graph_placeholder(g, "h0", MT_FLOAT64, 1, n);
        mt_var ops[2] = {xs, h0}, stacked[2], finals[1];
        build_scan(g, body, spec_of(1, 1, 0, 1, -1, false), bin, bout, ops, stacked, finals);
        double xv[T * N] = {1, 2, 3, 4, 5, 6}, hv[N] = {-1, -2}, eh[T * N];
        for (int t = 0; t < T; t++) memcpy(eh + t * N, hv, sizeof hv);
        mt_array X, H;
        jt_arr(&X, MT_FLOAT64, 2, sx, xv);
        jt_arr(&H, MT_FLOAT64, 1, n, hv);
        const mt_array *args[2] = {&X, &H};
        mt_var outs[3] = {stacked[0], stacked[1], finals[0]};
        mt_array res[3];
        run_fn(g, 2, ops, args, 3, outs, g_modes[m], res);
        jt_expect(&res[0], MT_FLOAT64, 2, sx, eh);
        jt_expect(&res[1], MT_FLOAT64, 2, sx, xv);
        jt_expect(&res[2], MT_FLOAT64, 1, n, hv);
        /* writing into a result leaves the arguments alone */
        MT_CHECK_OK(mt_array_fill(&res[1], mt_scalar_f64(0)));
        jt_expect(&X, MT_FLOAT64, 2, sx, xv);
        for (int j = 0; j < 3; j++) mt_array_clear(&res[j]);
        mt_array_clear(&X);
        mt_array_clear(&H);
        mt_graph_free(g);
        mt_graph_free(body);
    }
}

/* Expressions around the loop: the sequence is (2 xs)[::-1] (a fused kernel, then a view
 * with a negative stride), the results feed elementwise nodes (3 stacked + 1, final - 1). */
MT_TEST(composed)
{
    enum { T = 5, N = 3 };
    for (int m = 0; m < NMODES; m++) {
        sum_loop L;
        sum_loop_init(&L, MT_FLOAT64, T, N);
        mt_graph *g = L.g;
        int64_t n[1] = {N}, sx[2] = {T, N};
        mt_var xs = L.xs, h0 = L.h0;
        mt_var seq = mt_graph_slice_axis(g, mt_graph_mul(g, xs, mt_graph_literal_float(g, 2)),
                                         0, MT_IDX_NONE, MT_IDX_NONE, -1);
        mt_var ops[2] = {seq, h0}, stacked[1], finals[1];
        build_scan(g, L.body, spec_of(1, 1, 0, 0, -1, false), L.bin, L.bout, ops, stacked,
                   finals);
        mt_var o0 = mt_graph_add(g, mt_graph_mul(g, stacked[0], mt_graph_literal_float(g, 3)),
                                 mt_graph_literal_float(g, 1));
        mt_var o1 = mt_graph_sub(g, finals[0], mt_graph_literal_float(g, 1));
        double xv[T * N], hv[N], e0[T * N], e1[N];
        jt_fill(xv, T * N, -1, 1, 41);
        jt_fill(hv, N, -1, 1, 42);
        for (int c = 0; c < N; c++) {
            double h = hv[c];
            for (int t = 0; t < T; t++) {
                h += 2 * xv[(T - 1 - t) * N + c];
                e0[t * N + c] = 3 * h + 1;
            }
            e1[c] = h - 1;
        }
        mt_array X, H;
        jt_arr(&X, MT_FLOAT64, 2, sx, xv);
        jt_arr(&H, MT_FLOAT64, 1, n, hv);
        const mt_array *args[2] = {&X, &H};
        mt_var vars[2] = {xs, h0}, outs[2] = {o0, o1};
        mt_array res[2];
        run_fn(g, 2, vars, args, 2, outs, g_modes[m], res);
        expect_scaled(&res[0], MT_FLOAT64, 2, sx, e0, 10);
        expect_scaled(&res[1], MT_FLOAT64, 1, n, e1, 10);
        for (int j = 0; j < 2; j++) mt_array_clear(&res[j]);
        mt_array_clear(&X);
        mt_array_clear(&H);
        sum_loop_free(&L);
    }
}

/* A loop in a loop's body: the outer loop adds, per row X[t] (T2, 3), the final state of an
 * inner cumulative sum over X[t]'s rows; the result is the sum of every row. */
MT_TEST(nested)
{
    enum { T1 = 3, T2 = 4, N = 3 };
    for (int m = 0; m < NMODES; m++) {
        mt_graph *inner = new_graph(), *body = new_graph(), *g = new_graph();
        int64_t n[1] = {N}, sx2[2] = {T2, N}, sx3[3] = {T1, T2, N};
        mt_var ix = mt_graph_placeholder(inner, "x", MT_FLOAT64, 1, n);
        mt_var ih = mt_graph_placeholder(inner, "h", MT_FLOAT64, 1, n);
        mt_var iin[2] = {ix, ih}, iout[1] = {mt_graph_add(inner, ih, ix)};
        mt_var bx = mt_graph_placeholder(body, "rows", MT_FLOAT64, 2, sx2);
        mt_var bs = mt_graph_placeholder(body, "s", MT_FLOAT64, 1, n);
        mt_var iops[2] = {bx, mt_graph_zeros(body, MT_FLOAT64, 1, n)}, ifin[1];
        build_scan(body, inner, spec_of(1, 1, 0, 0, -1, false), iin, iout, iops, NULL, ifin);
        mt_var bin[2] = {bx, bs}, bout[1] = {mt_graph_add(body, bs, ifin[0])};
        mt_var xs = mt_graph_placeholder(g, "xs", MT_FLOAT64, 3, sx3);
        mt_var s0 = mt_graph_placeholder(g, "s0", MT_FLOAT64, 1, n);
        mt_var ops[2] = {xs, s0}, fin[1];
        build_scan(g, body, spec_of(1, 1, 0, 0, -1, false), bin, bout, ops, NULL, fin);
        double xv[T1 * T2 * N], sv[N], e[N];
        jt_fill(xv, T1 * T2 * N, -1, 1, 51);
        jt_fill(sv, N, -1, 1, 52);
        for (int c = 0; c < N; c++) {
            e[c] = sv[c];
            for (int t = 0; t < T1; t++) {
                double h = 0;
                for (int r = 0; r < T2; r++) h += xv[(t * T2 + r) * N + c];
                e[c] += h;
            }
        }
        mt_array X, S;
        jt_arr(&X, MT_FLOAT64, 3, sx3, xv);
        jt_arr(&S, MT_FLOAT64, 1, n, sv);
        const mt_array *args[2] = {&X, &S};
        mt_array res[1];
        run_fn(g, 2, ops, args, 1, fin, g_modes[m], res);
        expect_scaled(&res[0], MT_FLOAT64, 1, n, e, 10);
        mt_array_clear(&res[0]);
        mt_array_clear(&X);
        mt_array_clear(&S);
        mt_graph_free(g);
        mt_graph_free(body);
        mt_graph_free(inner);
    }
}

/* ---------------------------------------------------------------- errors */

/* Two sequences of unknown lengths given 4 and 3 rows. */
MT_TEST(error_sequence_lengths)
{
    for (int m = 0; m < NMODES; m++) {
        mt_graph *body = new_graph(), *g = new_graph();
        int64_t n[1] = {2}, sx[2] = {-1, 2};
        mt_var bx = mt_graph_placeholder(body, "x", MT_FLOAT64, 1, n);
        mt_var by = mt_graph_placeholder(body, "y", MT_FLOAT64, 1, n);
        mt_var bh = mt_graph_placeholder(body, "h", MT_FLOAT64, 1, n);
        mt_var bin[3] = {bx, by, bh};
        mt_var bout[1] = {mt_graph_add(body, bh, mt_graph_mul(body, bx, by))};
        mt_var xs = mt_graph_placeholder(g, "xs", MT_FLOAT64, 2, sx);
        mt_var ys = mt_graph_placeholder(g, "ys", MT_FLOAT64, 2, sx);
        mt_var h0 = mt_graph_placeholder(g, "h0", MT_FLOAT64, 1, n);
        mt_var ops[3] = {xs, ys, h0}, fin[1];
        build_scan(g, body, spec_of(2, 1, 0, 0, -1, false), bin, bout, ops, NULL, fin);
        double v[8] = {1, 2, 3, 4, 5, 6, 7, 8};
        int64_t d4[2] = {4, 2}, d3[2] = {3, 2};
        mt_array X, Y, H;
        jt_arr(&X, MT_FLOAT64, 2, d4, v);
        jt_arr(&Y, MT_FLOAT64, 2, d3, v);
        jt_arr(&H, MT_FLOAT64, 1, n, v);
        const mt_array *args[3] = {&X, &Y, &H};
        mt_status st = call_status(g, 3, ops, args, 1, fin, g_modes[m]);
        MT_CHECK_EQ_INT(st, MT_ERR_SHAPE);
        const char *msg = mt_last_error();
        char node[32];
        snprintf(node, sizeof node, "node v%d", (int)fin[0]);
        if (!strstr(msg, "scan") || !strstr(msg, node) ||
            !strstr(msg, "sequence 1 has 3 rows but sequence 0 has 4"))
            mt_test_fail(__FILE__, __LINE__, "unexpected message (%s): %s",
                         mt_mode_name(g_modes[m]), msg);
        mt_array_clear(&X);
        mt_array_clear(&Y);
        mt_array_clear(&H);
        mt_graph_free(g);
        mt_graph_free(body);
    }
}

/* h' = concatenate(h, x): the state grows at the first step. */
MT_TEST(error_state_shape)
{
    for (int m = 0; m < NMODES; m++) {
        mt_graph *body = new_graph(), *g = new_graph();
        int64_t n[1] = {2}, nu[1] = {-1}, sx[2] = {3, 2};
        mt_var bx = mt_graph_placeholder(body, "x", MT_FLOAT64, 1, n);
        mt_var bh = mt_graph_placeholder(body, "h", MT_FLOAT64, 1, nu);
        mt_var parts[2] = {bh, bx};
        mt_var bin[2] = {bx, bh}, bout[1] = {mt_graph_concatenate(body, 2, parts, 0)};
        mt_var xs = mt_graph_placeholder(g, "xs", MT_FLOAT64, 2, sx);
        mt_var h0 = mt_graph_placeholder(g, "h0", MT_FLOAT64, 1, nu);
        mt_var ops[2] = {xs, h0}, stacked[1], fin[1];
        build_scan(g, body, spec_of(1, 1, 0, 0, -1, false), bin, bout, ops, stacked, fin);
        double v[6] = {1, 2, 3, 4, 5, 6};
        int64_t d3[1] = {3};
        mt_array X, H;
        jt_arr(&X, MT_FLOAT64, 2, sx, v);
        jt_arr(&H, MT_FLOAT64, 1, d3, v);
        const mt_array *args[2] = {&X, &H};
        mt_var outs[2] = {stacked[0], fin[0]};
        mt_status st = call_status(g, 2, ops, args, 2, outs, g_modes[m]);
        MT_CHECK_EQ_INT(st, MT_ERR_SHAPE);
        const char *msg = mt_last_error();
        if (!strstr(msg, "scan") || !strstr(msg, "node v") || !strstr(msg, "state 0 at step 0") ||
            !strstr(msg, "(5,)") || !strstr(msg, "(3,)"))
            mt_test_fail(__FILE__, __LINE__, "unexpected message (%s): %s",
                         mt_mode_name(g_modes[m]), msg);
        mt_array_clear(&X);
        mt_array_clear(&H);
        mt_graph_free(g);
        mt_graph_free(body);
    }
}

/* ---------------------------------------------------------------- one step per loop */

/* Three results of one loop (stacked state, stacked extra, final state; the other final
 * state is not used): one SCAN step in every mode's schedule, and the results agree with the
 * loop computing all five (two_states_extra). */
MT_TEST(siblings_one_step)
{
    for (int m = 0; m < NMODES; m++) {
        two_state L;
        two_state_build(&L, MT_FLOAT64);
        mt_var vars[3] = {L.xs, L.a0, L.c0};
        mt_var outs[3] = {L.stacked[0], L.stacked[2], L.finals[0]};
        mt_function *f = compile_fn(L.g, 3, vars, 3, outs, g_modes[m]);
        mt_strbuf sb;
        mt_strbuf_init(&sb);
        MT_CHECK_OK(mt_function_print(f, &sb));
        if (count_of(sb.data, "scan loop") != 1 || !strstr(sb.data, "3 results"))
            mt_test_fail(__FILE__, __LINE__, "expected one scan step with 3 results (%s):\n%s",
                         mt_mode_name(g_modes[m]), sb.data);
        mt_strbuf_deinit(&sb);
        double xv[2 * 3] = {1, 2, 3, -1, 0.5, 2}, av[3] = {0, 1, -1}, cv[1] = {2};
        int64_t sxs[2] = {2, 3}, s3[1] = {3}, s2[1] = {2};
        mt_array X, A, C;
        jt_arr(&X, MT_FLOAT64, 2, sxs, xv);
        jt_arr(&A, MT_FLOAT64, 1, s3, av);
        jt_arr(&C, MT_FLOAT64, 0, NULL, cv);
        const mt_array *args[3] = {&X, &A, &C};
        mt_array res[3];
        memset(res, 0, sizeof res);
        MT_CHECK_OK(mt_function_call(f, 3, args, 3, res));
        double ea[6] = {1, 3, 2, 0, 3.5, 4}, ey[2] = {1 * 1 + 3 * 2 + 2 * 3, 0 + 3.5 * 0.5 + 8};
        jt_expect(&res[0], MT_FLOAT64, 2, sxs, ea);
        jt_expect(&res[1], MT_FLOAT64, 1, s2, ey);
        jt_expect(&res[2], MT_FLOAT64, 1, s3, ea + 3);
        for (int j = 0; j < 3; j++) mt_array_clear(&res[j]);
        mt_array_clear(&X);
        mt_array_clear(&A);
        mt_array_clear(&C);
        mt_function_free(f);
        two_state_free(&L);
    }
}

/* ---------------------------------------------------------------- loops in functions */

/* h' = tanh(h @ W + x_t) with W a shared variable (a non-sequence that is not an argument)
 * updated to 0.5 W by each call: the second call's loop runs with the new W. The profile names
 * the loop's step. */
static void run_shared(mt_mode mode)
{
    enum { T = 4, N = 3 };
    mt_graph *body = new_graph(), *g = new_graph();
    int64_t n[1] = {N}, nn[2] = {N, N}, sx[2] = {T, N};
    mt_var bx = mt_graph_placeholder(body, "x", MT_FLOAT64, 1, n);
    mt_var bh = mt_graph_placeholder(body, "h", MT_FLOAT64, 1, n);
    mt_var bw = mt_graph_placeholder(body, "W", MT_FLOAT64, 2, nn);
    mt_var bin[3] = {bx, bh, bw};
    mt_var bout[1] = {mt_graph_tanh(body, mt_graph_add(body, mt_graph_matmul(body, bh, bw), bx))};
    mt_var xs = mt_graph_placeholder(g, "xs", MT_FLOAT64, 2, sx);
    mt_var h0 = mt_graph_placeholder(g, "h0", MT_FLOAT64, 1, n);
    mt_var W = mt_graph_placeholder(g, "W", MT_FLOAT64, 2, nn);
    mt_var ops[3] = {xs, h0, W}, stacked[1], fin[1];
    build_scan(g, body, spec_of(1, 1, 1, 0, -1, false), bin, bout, ops, stacked, fin);
    mt_update up = {W, mt_graph_mul(g, W, mt_graph_literal_float(g, 0.5))};
    mt_function_options o;
    mt_function_options_init(&o);
    o.mode = mode;
    o.profile = true;
    mt_function *f = NULL;
    mt_var outs[2] = {stacked[0], fin[0]};
    MT_CHECK_OK(mt_function_new(&f, g, 2, ops, 2, outs, 1, &up, jt_dev(), &o));
    double xv[T * N], hv[N], wv[N * N];
    jt_fill(xv, T * N, -1, 1, 61);
    jt_fill(hv, N, -1, 1, 62);
    jt_fill(wv, N * N, -1, 1, 63);
    mt_array X, H, Wa;
    jt_arr(&X, MT_FLOAT64, 2, sx, xv);
    jt_arr(&H, MT_FLOAT64, 1, n, hv);
    jt_arr(&Wa, MT_FLOAT64, 2, nn, wv);
    MT_CHECK_OK(mt_function_set_shared(f, W, &Wa));
    const mt_array *args[2] = {&X, &H};
    for (int call = 0; call < 2; call++) {
        double scale = call ? 0.5 : 1, h[N], es[T * N];
        memcpy(h, hv, sizeof h);
        for (int t = 0; t < T; t++) {
            double nh[N];
            for (int c = 0; c < N; c++) {
                double s = xv[t * N + c];
                for (int k = 0; k < N; k++) s += h[k] * wv[k * N + c] * scale;
                nh[c] = tanh(s);
            }
            memcpy(h, nh, sizeof h);
            memcpy(es + t * N, h, sizeof h);
        }
        mt_array res[2];
        memset(res, 0, sizeof res);
        MT_CHECK_OK(mt_function_call(f, 2, args, 2, res));
        expect_scaled(&res[0], MT_FLOAT64, 2, sx, es, 10);
        expect_scaled(&res[1], MT_FLOAT64, 1, n, h, 10);
        for (int j = 0; j < 2; j++) mt_array_clear(&res[j]);
    }
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    MT_CHECK_OK(mt_function_print_profile(f, &sb));
    if (!strstr(sb.data, "scan loop of 2 results"))
        mt_test_fail(__FILE__, __LINE__, "profile lacks the loop (%s):\n%s", mt_mode_name(mode),
                     sb.data);
    mt_strbuf_deinit(&sb);
    mt_function_free(f);
    mt_array_clear(&X);
    mt_array_clear(&H);
    mt_array_clear(&Wa);
    mt_graph_free(g);
    mt_graph_free(body);
}

MT_TEST(shared_nonseq_update)
{
    for (int m = 0; m < NMODES; m++) run_shared(g_modes[m]);
}

/* Collective hooks standing in for a group of two identical processes: the sum doubles. */
typedef struct doubling_group {
    int starts, waits;
} doubling_group;

static mt_status doubling_start(void *ctx, int32_t bucket, int32_t n, mt_array *const *arrays,
                                void **req)
{
    doubling_group *dg = ctx;
    (void)bucket;
    for (int32_t i = 0; i < n; i++) {
        size_t cnt = (size_t)mt_array_size(arrays[i]);
        double *v = calloc(cnt + 1, sizeof *v);
        MT_CHECK(v != NULL);
        jt_read(arrays[i], v, cnt);
        for (size_t k = 0; k < cnt; k++) v[k] *= 2;
        mt_array tmp;
        jt_arr(&tmp, arrays[i]->dtype, arrays[i]->ndim, arrays[i]->dims, v);
        MT_CHECK_OK(mt_array_copy(arrays[i], &tmp));
        mt_array_clear(&tmp);
        free(v);
    }
    dg->starts++;
    *req = dg;
    return MT_OK;
}

static mt_status doubling_wait(void *ctx, void *req)
{
    doubling_group *dg = ctx;
    MT_CHECK(req == dg);
    dg->waits++;
    return MT_OK;
}

/* All-reduces before and after a loop: the sequence is reduced (bucket 0), then the loop's
 * final state (bucket 1): 2 (h0 + sum(2 x)). */
MT_TEST(allreduce_around_loop)
{
    enum { T = 3, N = 2 };
    for (int m = 0; m < NMODES; m++) {
        sum_loop L;
        sum_loop_init(&L, MT_FLOAT64, T, N);
        mt_graph *g = L.g;
        int64_t n[1] = {N}, sx[2] = {T, N};
        mt_var xs = L.xs, h0 = L.h0;
        mt_var ops[2] = {mt_graph_allreduce(g, xs, 0), h0}, fin[1];
        build_scan(g, L.body, spec_of(1, 1, 0, 0, -1, false), L.bin, L.bout, ops, NULL, fin);
        mt_var out = mt_graph_allreduce(g, fin[0], 1);
        doubling_group dg = {0, 0};
        mt_collective_hooks hooks = {&dg, doubling_start, doubling_wait};
        mt_function_options o;
        mt_function_options_init(&o);
        o.mode = g_modes[m];
        o.collectives = &hooks;
        mt_function *f = NULL;
        mt_var vars[2] = {xs, h0};
        MT_CHECK_OK(mt_function_new(&f, g, 2, vars, 1, &out, 0, NULL, jt_dev(), &o));
        double xv[T * N] = {1, 2, 3, 4, 5, 6}, hv[N] = {0.5, -1}, e[N];
        for (int c = 0; c < N; c++) {
            e[c] = hv[c];
            for (int t = 0; t < T; t++) e[c] += 2 * xv[t * N + c];
            e[c] *= 2;
        }
        mt_array X, H, r = {0};
        jt_arr(&X, MT_FLOAT64, 2, sx, xv);
        jt_arr(&H, MT_FLOAT64, 1, n, hv);
        const mt_array *args[2] = {&X, &H};
        MT_CHECK_OK(mt_function_call(f, 2, args, 1, &r));
        jt_expect(&r, MT_FLOAT64, 1, n, e);
        /* CHECK runs both schedules, each reducing both buckets */
        int per_call = g_modes[m] == MT_MODE_CHECK ? 4 : 2;
        MT_CHECK_EQ_INT(dg.starts, per_call);
        MT_CHECK_EQ_INT(dg.waits, per_call);
        mt_array_clear(&r);
        mt_function_free(f);
        mt_array_clear(&X);
        mt_array_clear(&H);
        sum_loop_free(&L);
    }
}
