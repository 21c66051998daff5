/* Tests of the launch memo of fused kernels (mt_elemwise_memo_run, used by every FUSED step of
 * a compiled function): a memoized launch gives the same bits as mt_elemwise, it is taken only
 * when dtypes, shapes and strides repeat, and it falls back to the full path (and records
 * again) on any change: another batch size, a transposed operand, an input partially
 * overlapping the output, a wrong dtype (same error as mt_elemwise). At the function level, a
 * momentum training step called with batches 17, 32, 32, 17, 17, 32, 32 gives exactly the loss
 * and updated parameters of a fresh function (no memo yet) started from the same values, and
 * its fused steps launch from the memo exactly when the batch repeats (or does not matter). */
#include <stdlib.h>
#include <string.h>

#include "jit_impl.h" /* the fused steps' memos, to count their launches */
#include "jit_ref.h"

/* The elements of a float32 array as raw bits (n must equal the size). */
static void read_bits(const mt_array *a, uint32_t *bits, size_t n)
{
    MT_CHECK_EQ_INT((int64_t)mt_array_size(a), (int64_t)n);
    MT_CHECK_OK(mt_array_to_host(bits, n * sizeof *bits, a));
}

static void expect_same_bits(const mt_array *a, const mt_array *b)
{
    size_t n = mt_array_size(a);
    MT_CHECK_EQ_INT((int64_t)mt_array_size(b), (int64_t)n);
    uint32_t *x = calloc(n + 1, sizeof *x), *y = calloc(n + 1, sizeof *y);
    MT_CHECK(x && y);
    read_bits(a, x, n);
    read_bits(b, y, n);
    MT_CHECK(memcmp(x, y, n * sizeof *x) == 0);
    free(x);
    free(y);
}

/* out0 = relu(in0 * in1 + in2), out1 = in0 - in2: float32, in2 a row broadcast over in0. */
static void build_expr(mt_kexpr *e)
{
    mt_kexpr_init(e);
    int32_t a = mt_kexpr_input(e, 0, MT_FLOAT32);
    int32_t b = mt_kexpr_input(e, 1, MT_FLOAT32);
    int32_t c = mt_kexpr_input(e, 2, MT_FLOAT32);
    int32_t m = mt_kexpr_binary(e, MT_SOP_MUL, a, b);
    int32_t r = mt_kexpr_unary(e, MT_SOP_RELU, mt_kexpr_binary(e, MT_SOP_ADD, m, c));
    MT_CHECK_OK(mt_kexpr_add_output(e, r));
    MT_CHECK_OK(mt_kexpr_add_output(e, mt_kexpr_binary(e, MT_SOP_SUB, a, c)));
}

/* Runs e on ins through mt_elemwise and through the memo; both results must be equal. */
static void run_both(const mt_kexpr *e, mt_elemwise_memo **memo, const mt_array *const *ins,
                     int32_t nd, const int64_t *dims)
{
    mt_array r[2] = {{0}}, q[2] = {{0}};
    for (int j = 0; j < 2; j++) {
        MT_CHECK_OK(mt_array_empty(&r[j], jt_dev(), MT_FLOAT32, nd, dims, 'C'));
        MT_CHECK_OK(mt_array_empty(&q[j], jt_dev(), MT_FLOAT32, nd, dims, 'C'));
    }
    mt_array *ro[2] = {&r[0], &r[1]}, *qo[2] = {&q[0], &q[1]};
    MT_CHECK_OK(mt_elemwise(e, 3, ins, ro, 0, NULL));
    MT_CHECK_OK(mt_elemwise_memo_run(memo, e, 3, ins, qo, 0, NULL));
    for (int j = 0; j < 2; j++) {
        expect_same_bits(&r[j], &q[j]);
        mt_array_clear(&r[j]);
        mt_array_clear(&q[j]);
    }
}

MT_TEST(memo_launch_matches_elemwise_and_falls_back)
{
    mt_kexpr e;
    build_expr(&e);
    mt_elemwise_memo *memo = NULL;
    const int64_t rows[5] = {32, 32, 17, 32, 32};
    const int64_t hits_after[5] = {0, 1, 1, 1, 2}; /* 17 and the first 32 after it re-record */
    for (int k = 0; k < 5; k++) {
        int64_t d2[2] = {rows[k], 10}, d1[1] = {10};
        double va[320], vb[320], vc[10];
        jt_fill(va, (size_t)rows[k] * 10, -2, 2, 100 + (uint64_t)k);
        jt_fill(vb, (size_t)rows[k] * 10, -2, 2, 200 + (uint64_t)k);
        jt_fill(vc, 10, -1, 1, 300 + (uint64_t)k);
        mt_array A, B, C;
        jt_arr(&A, MT_FLOAT32, 2, d2, va);
        jt_arr(&B, MT_FLOAT32, 2, d2, vb);
        jt_arr(&C, MT_FLOAT32, 1, d1, vc);
        const mt_array *ins[3] = {&A, &B, &C};
        run_both(&e, &memo, ins, 2, d2);
        MT_CHECK_EQ_INT(mt_elemwise_memo_hits(memo), hits_after[k]);
        mt_array_clear(&A);
        mt_array_clear(&B);
        mt_array_clear(&C);
    }
    /* same shape, other strides (B transposed): the full path, then memoized again */
    int64_t d2[2] = {32, 10}, dt[2] = {10, 32}, d1[1] = {10};
    double va[320], vb[320], vc[10];
    jt_fill(va, 320, -2, 2, 7);
    jt_fill(vb, 320, -2, 2, 8);
    jt_fill(vc, 10, -1, 1, 9);
    mt_array A, BT, B, C;
    jt_arr(&A, MT_FLOAT32, 2, d2, va);
    jt_arr(&BT, MT_FLOAT32, 2, dt, vb);
    jt_arr(&C, MT_FLOAT32, 1, d1, vc);
    MT_CHECK_OK(mt_array_transpose(&B, &BT, NULL));
    const mt_array *ins[3] = {&A, &B, &C};
    run_both(&e, &memo, ins, 2, d2);
    MT_CHECK_EQ_INT(mt_elemwise_memo_hits(memo), 2);
    run_both(&e, &memo, ins, 2, d2);
    MT_CHECK_EQ_INT(mt_elemwise_memo_hits(memo), 3);
    /* a wrong dtype after a recorded call: mt_elemwise's error */
    mt_array I;
    jt_arr(&I, MT_INT32, 2, d2, va);
    const mt_array *bad[3] = {&A, &I, &C};
    mt_array o[2] = {{0}};
    for (int j = 0; j < 2; j++)
        MT_CHECK_OK(mt_array_empty(&o[j], jt_dev(), MT_FLOAT32, 2, d2, 'C'));
    mt_array *oo[2] = {&o[0], &o[1]};
    MT_CHECK_ERR(mt_elemwise_memo_run(&memo, &e, 3, bad, oo, 0, NULL), MT_ERR_DTYPE, "input 1");
    MT_CHECK_EQ_INT(mt_elemwise_memo_hits(memo), 3);
    for (int j = 0; j < 2; j++) mt_array_clear(&o[j]);
    mt_array_clear(&I);
    mt_array_clear(&A);
    mt_array_clear(&B);
    mt_array_clear(&BT);
    mt_array_clear(&C);
    mt_elemwise_memo_free(memo);
    mt_kexpr_deinit(&e);
}

/* x <- x * y in place (an exact alias: memoized), then x[1:] <- x[:-1] * y (a partial overlap:
 * always the full path, which reads a copy of the input), each against mt_elemwise. */
MT_TEST(memo_aliasing_in_place_and_overlap)
{
    mt_kexpr e;
    mt_kexpr_init(&e);
    int32_t a = mt_kexpr_input(&e, 0, MT_FLOAT32);
    int32_t b = mt_kexpr_input(&e, 1, MT_FLOAT32);
    MT_CHECK_OK(mt_kexpr_add_output(&e, mt_kexpr_binary(&e, MT_SOP_MUL, a, b)));
    int64_t n[1] = {64}, m[1] = {63};
    double vx[64], vy[64];
    jt_fill(vx, 64, -2, 2, 11);
    jt_fill(vy, 64, -2, 2, 12);
    mt_array X1, X2, Y;
    jt_arr(&X1, MT_FLOAT32, 1, n, vx);
    jt_arr(&X2, MT_FLOAT32, 1, n, vx);
    jt_arr(&Y, MT_FLOAT32, 1, n, vy);
    mt_elemwise_memo *memo = NULL;
    for (int it = 0; it < 3; it++) {
        const mt_array *i1[2] = {&X1, &Y}, *i2[2] = {&X2, &Y};
        mt_array *o1[1] = {&X1}, *o2[1] = {&X2};
        MT_CHECK_OK(mt_elemwise(&e, 2, i1, o1, 0, NULL));
        MT_CHECK_OK(mt_elemwise_memo_run(&memo, &e, 2, i2, o2, 0, NULL));
        expect_same_bits(&X1, &X2);
    }
    MT_CHECK_EQ_INT(mt_elemwise_memo_hits(memo), 2);
    for (int it = 0; it < 3; it++) {
        mt_array src[2], dst[2], ys;
        mt_slice lo = mt_slice_range(0, 63, 1), hi = mt_slice_range(1, 64, 1);
        MT_CHECK_OK(mt_array_slice(&src[0], &X1, 1, &lo));
        MT_CHECK_OK(mt_array_slice(&dst[0], &X1, 1, &hi));
        MT_CHECK_OK(mt_array_slice(&src[1], &X2, 1, &lo));
        MT_CHECK_OK(mt_array_slice(&dst[1], &X2, 1, &hi));
        MT_CHECK_OK(mt_array_slice(&ys, &Y, 1, &lo));
        MT_CHECK_EQ_INT(dst[0].dims[0], m[0]);
        const mt_array *i1[2] = {&src[0], &ys}, *i2[2] = {&src[1], &ys};
        mt_array *o1[1] = {&dst[0]}, *o2[1] = {&dst[1]};
        MT_CHECK_OK(mt_elemwise(&e, 2, i1, o1, 0, NULL));
        MT_CHECK_OK(mt_elemwise_memo_run(&memo, &e, 2, i2, o2, 0, NULL));
        expect_same_bits(&X1, &X2);
        for (int j = 0; j < 2; j++) {
            mt_array_clear(&src[j]);
            mt_array_clear(&dst[j]);
        }
        mt_array_clear(&ys);
    }
    MT_CHECK_EQ_INT(mt_elemwise_memo_hits(memo), 2);
    mt_array_clear(&X1);
    mt_array_clear(&X2);
    mt_array_clear(&Y);
    mt_elemwise_memo_free(memo);
    mt_kexpr_deinit(&e);
}

/* ------------------------------------------------------------ a memoized training step */

enum { NI = 12, NH = 7, NO = 4, NP = 4 };

typedef struct mlp {
    mt_graph *g;
    mt_var x, y, lr, mu, p[NP];
    mt_var loss;
    mt_update ups[2 * NP];
    int32_t nd[4];
    int64_t shp[4][2];
} mlp;

/* 12-7-4 MLP with ReLU and softmax cross-entropy; parameters W1 b1 W2 b2 and their momentum
 * velocities v (v <- mu v - lr g; p <- p + v), mu and lr shared scalars. */
static void build_mlp(mlp *m)
{
    MT_CHECK_OK(mt_graph_new(&m->g));
    mt_graph *g = m->g;
    mt_graph_set_origin(g, __FILE__, __LINE__);
    int64_t sx[2] = {-1, NI}, sy[1] = {-1}, s0[1] = {0};
    const int64_t shp[4][2] = {{NI, NH}, {NH, 0}, {NH, NO}, {NO, 0}};
    const int32_t nd[4] = {2, 1, 2, 1};
    memcpy(m->shp, shp, sizeof shp);
    memcpy(m->nd, nd, sizeof nd);
    m->x = mt_graph_placeholder(g, "x", MT_FLOAT32, 2, sx);
    m->y = mt_graph_placeholder(g, "y", MT_INT64, 1, sy);
    m->lr = mt_graph_placeholder(g, "lr", MT_FLOAT32, 0, s0);
    m->mu = mt_graph_placeholder(g, "mu", MT_FLOAT32, 0, s0);
    static const char *pn[4] = {"W1", "b1", "W2", "b2"}, *vn[4] = {"vW1", "vb1", "vW2", "vb2"};
    for (int k = 0; k < 4; k++) m->p[k] = mt_graph_placeholder(g, pn[k], MT_FLOAT32, nd[k], shp[k]);
    mt_var h = mt_graph_relu(g, mt_graph_add(g, mt_graph_matmul(g, m->x, m->p[0]), m->p[1]));
    mt_var z = mt_graph_add(g, mt_graph_matmul(g, h, m->p[2]), m->p[3]);
    m->loss = mt_graph_mean(g, mt_graph_softmax_crossentropy_labels(g, z, m->y, 1), 0, NULL,
                            false);
    mt_var n = mt_graph_cast(g, mt_graph_size_of(g, m->x, 1, (int32_t[]){0}), MT_FLOAT32);
    mt_var dz = mt_graph_div(g, mt_graph_sub(g, mt_graph_softmax(g, z, 1),
                                             mt_graph_one_hot(g, m->y, NO, MT_FLOAT32)), n);
    mt_var gW2 = mt_graph_matmul(g, mt_graph_transpose(g, h, NULL), dz);
    mt_var gb2 = mt_graph_sum(g, dz, 1, (int32_t[]){0}, false);
    mt_var dh = mt_graph_matmul(g, dz, mt_graph_transpose(g, m->p[2], NULL));
    mt_var zero = mt_graph_literal_float(g, 0.0);
    dh = mt_graph_where(g, mt_graph_gt(g, h, zero), dh, zero);
    mt_var gW1 = mt_graph_matmul(g, mt_graph_transpose(g, m->x, NULL), dh);
    mt_var gb1 = mt_graph_sum(g, dh, 1, (int32_t[]){0}, false);
    mt_var grads[4] = {gW1, gb1, gW2, gb2};
    for (int k = 0; k < 4; k++) {
        const int64_t *s = shp[k];
        mt_var v = mt_graph_placeholder(g, vn[k], MT_FLOAT32, nd[k], s);
        mt_var nv = mt_graph_sub(g, mt_graph_mul(g, m->mu, v), mt_graph_mul(g, m->lr, grads[k]));
        m->ups[2 * k] = (mt_update){v, nv};
        m->ups[2 * k + 1] = (mt_update){m->p[k], mt_graph_add(g, m->p[k], nv)};
    }
    MT_CHECK_OK(mt_graph_status(g));
}

static int64_t val_size(const mlp *m, int k)
{
    int64_t n = 1;
    for (int32_t d = 0; d < m->nd[k / 2]; d++) n *= m->shp[k / 2][d];
    return n;
}

/* A FAST_RUN function of m whose parameters, velocities, lr and mu hold vals (NI*NH at most
 * per array); returns it with the arrays it holds in held[2 * NP + 2] (caller clears). */
static mt_function *new_step(const mlp *m, double (*vals)[NI * NH], mt_array *held)
{
    mt_function_options o;
    mt_function_options_init(&o);
    o.mode = MT_MODE_FAST_RUN;
    mt_function *f = NULL;
    mt_var args[2] = {m->x, m->y};
    MT_CHECK_OK(mt_function_new(&f, m->g, 2, args, 1, &m->loss, 8, m->ups, jt_dev(), &o));
    for (int k = 0; k < 8; k++) {
        jt_arr(&held[k], MT_FLOAT32, m->nd[k / 2], m->shp[k / 2], vals[k]);
        MT_CHECK_OK(mt_function_set_shared(f, m->ups[k].var, &held[k]));
    }
    double lr = 0.25, mu = 0.9;
    jt_arr(&held[8], MT_FLOAT32, 0, NULL, &lr);
    jt_arr(&held[9], MT_FLOAT32, 0, NULL, &mu);
    MT_CHECK_OK(mt_function_set_shared(f, m->lr, &held[8]));
    MT_CHECK_OK(mt_function_set_shared(f, m->mu, &held[9]));
    return f;
}

MT_TEST(memoized_step_matches_fresh_function)
{
    mlp m;
    build_mlp(&m);
    double vals[8][NI * NH];
    for (int k = 0; k < 8; k++) {
        memset(vals[k], 0, sizeof vals[k]);
        if (k % 2 == 1) jt_fill(vals[k], (size_t)val_size(&m, k), -0.5, 0.5, 40 + (uint64_t)k);
    }
    mt_array held[10], fresh_held[10];
    mt_function *f = new_step(&m, vals, held);
    /* a memo recorded at 17 must not serve 32 (nor the reverse) */
    const int64_t batches[7] = {17, 32, 32, 17, 17, 32, 32};
    for (int it = 0; it < 7; it++) {
        int64_t b = batches[it], dx[2] = {b, NI}, dy[1] = {b};
        double xv[32 * NI], yv[32];
        jt_fill(xv, (size_t)(b * NI), -1, 1, 500 + (uint64_t)it);
        for (int64_t i = 0; i < b; i++) yv[i] = (double)((i * 7 + it) % NO);
        mt_array X, Y;
        jt_arr(&X, MT_FLOAT32, 2, dx, xv);
        jt_arr(&Y, MT_INT64, 1, dy, yv);
        /* the long-lived function's values before this call seed a fresh one */
        for (int k = 0; k < 8; k++) jt_read(&held[k], vals[k], (size_t)val_size(&m, k));
        mt_function *fresh = new_step(&m, vals, fresh_held);
        const mt_array *in[2] = {&X, &Y};
        mt_array l1 = {0}, l2 = {0};
        MT_CHECK_OK(mt_function_call(f, 2, in, 1, &l1));
        MT_CHECK_OK(mt_function_call(fresh, 2, in, 1, &l2));
        expect_same_bits(&l1, &l2);
        for (int k = 0; k < 8; k++) expect_same_bits(&held[k], &fresh_held[k]);
        mt_array_clear(&l1);
        mt_array_clear(&l2);
        mt_function_free(fresh);
        for (int k = 0; k < 10; k++) mt_array_clear(&fresh_held[k]);
        mt_array_clear(&X);
        mt_array_clear(&Y);
    }
    /* every fused kernel launched from its memo when the batch repeated (calls 3, 5, 7); the
     * batch-dependent ones only then, the parameter updates on every call after the first */
    int32_t nfused = 0, nbatch = 0;
    for (int32_t k = 0; k < f->fast.nsteps; k++) {
        const mt__jstep *st = &f->fast.steps[k];
        if (st->kind != MT__STEP_FUSED) continue;
        int64_t hits = mt_elemwise_memo_hits(st->ew_memo);
        MT_CHECK(hits == 3 || hits == 6);
        nfused++;
        nbatch += hits == 3;
    }
    MT_CHECK(nfused >= 4);
    MT_CHECK(nbatch >= 1 && nbatch < nfused);
    /* the step trained: W2's velocity moved */
    double v2[NH * NO];
    jt_read(&held[4], v2, NH * NO);
    double s = 0;
    for (int i = 0; i < NH * NO; i++) s += v2[i] * v2[i];
    MT_CHECK(s > 0);
    mt_function_free(f);
    for (int k = 0; k < 10; k++) mt_array_clear(&held[k]);
    mt_graph_free(m.g);
}
