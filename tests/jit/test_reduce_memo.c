/* Tests of the launch memo of fused reductions (mt_reduce_memo_run, used by every REDUCE step
 * of a compiled function): a memoized launch gives the same bits as mt_reduce_fused, it is
 * taken only when op, axes, dtypes, shapes and strides repeat, and it falls back to the full
 * path (and records again) on any change: another batch size (32, 17, 32), another output
 * layout, a wrong dtype (same error as mt_reduce_fused). Views with an offset and a reduction
 * long enough to be split into chunks (a second, combining launch) are covered too. */
#include <stdlib.h>
#include <string.h>

#include "jit_ref.h"

static void expect_same_bits(const mt_array *a, const mt_array *b)
{
    size_t n = mt_array_size(a);
    MT_CHECK_EQ_INT((int64_t)mt_array_size(b), (int64_t)n);
    size_t isz = mt_dtype_size(a->dtype);
    unsigned char *x = calloc(n * isz + 1, 1), *y = calloc(n * isz + 1, 1);
    MT_CHECK(x && y);
    MT_CHECK_OK(mt_array_to_host(x, n * isz, a));
    MT_CHECK_OK(mt_array_to_host(y, n * isz, b));
    MT_CHECK(memcmp(x, y, n * isz) == 0);
    free(x);
    free(y);
}

/* Expected launches from the memo: none where the host interprets (MLTRAIN_NO_CC=1), since only
 * compiled kernels are recorded; the results must still be the same bits. */
static int64_t hits(int64_t n)
{
    const char *e = getenv("MLTRAIN_NO_CC");
    return e && *e && strcmp(e, "0") != 0 ? 0 : n;
}

/* out = sum(in0 * in1 + in2) over the axes, float32 (a bias gradient when in2 is zero). */
static void build_map(mt_kexpr *e)
{
    mt_kexpr_init(e);
    int32_t a = mt_kexpr_input(e, 0, MT_FLOAT32);
    int32_t b = mt_kexpr_input(e, 1, MT_FLOAT32);
    int32_t c = mt_kexpr_input(e, 2, MT_FLOAT32);
    int32_t m = mt_kexpr_binary(e, MT_SOP_MUL, a, b);
    MT_CHECK_OK(mt_kexpr_add_output(e, mt_kexpr_binary(e, MT_SOP_ADD, m, c)));
}

/* Reduces through mt_reduce_fused into r and through the memo into q (both shaped like out);
 * the two must have the same bits. */
static void run_both(const mt_kexpr *e, mt_reduce_memo **memo, const mt_array *const *ins,
                     mt_reduce_op op, int32_t naxes, const int32_t *axes, const mt_array *r,
                     const mt_array *q)
{
    MT_CHECK_OK(mt_reduce_fused(e, 3, ins, op, naxes, axes, (mt_array *)r, 0, NULL));
    MT_CHECK_OK(mt_reduce_memo_run(memo, e, 3, ins, op, naxes, axes, (mt_array *)q, 0, NULL));
    expect_same_bits(r, q);
}

MT_TEST(reduce_memo_matches_fused_and_falls_back)
{
    mt_kexpr e;
    build_map(&e);
    mt_reduce_memo *memo = NULL;
    const int64_t rows[6] = {32, 17, 32, 32, 17, 17};
    const int64_t hits_after[6] = {0, 0, 0, 1, 1, 2};
    const int32_t axis0 = 0;
    for (int k = 0; k < 6; k++) {
        int64_t d2[2] = {rows[k], 10}, d1[1] = {10};
        double va[320], vb[320], vc[10];
        jt_fill(va, (size_t)rows[k] * 10, -2, 2, 100 + (uint64_t)k);
        jt_fill(vb, (size_t)rows[k] * 10, -2, 2, 200 + (uint64_t)k);
        jt_fill(vc, 10, -1, 1, 300 + (uint64_t)k);
        mt_array A, B, C, r = {0}, q = {0};
        jt_arr(&A, MT_FLOAT32, 2, d2, va);
        jt_arr(&B, MT_FLOAT32, 2, d2, vb);
        jt_arr(&C, MT_FLOAT32, 1, d1, vc);
        MT_CHECK_OK(mt_array_empty(&r, jt_dev(), MT_FLOAT32, 1, d1, 'C'));
        MT_CHECK_OK(mt_array_empty(&q, jt_dev(), MT_FLOAT32, 1, d1, 'C'));
        const mt_array *ins[3] = {&A, &B, &C};
        run_both(&e, &memo, ins, MT_REDUCE_SUM, 1, &axis0, &r, &q);
        MT_CHECK_EQ_INT(mt_reduce_memo_hits(memo), hits(hits_after[k]));
        mt_array_clear(&A);
        mt_array_clear(&B);
        mt_array_clear(&C);
        mt_array_clear(&r);
        mt_array_clear(&q);
    }
    /* same inputs, other axis or op: the full path each time the call changes */
    int64_t d2[2] = {32, 10}, d1[1] = {10}, dk[2] = {32, 1}, dt[2] = {10, 32};
    double va[320], vb[320], vc[10];
    jt_fill(va, 320, -2, 2, 7);
    jt_fill(vb, 320, -2, 2, 8);
    jt_fill(vc, 10, -1, 1, 9);
    mt_array A, B, BT, Bt, C, r = {0}, q = {0};
    jt_arr(&A, MT_FLOAT32, 2, d2, va);
    jt_arr(&B, MT_FLOAT32, 2, d2, vb);
    jt_arr(&BT, MT_FLOAT32, 2, dt, vb);
    jt_arr(&C, MT_FLOAT32, 1, d1, vc);
    MT_CHECK_OK(mt_array_transpose(&Bt, &BT, NULL));
    const mt_array *ins[3] = {&A, &B, &C};
    const int32_t axis1 = 1;
    MT_CHECK_OK(mt_array_empty(&r, jt_dev(), MT_FLOAT32, 2, dk, 'C'));
    MT_CHECK_OK(mt_array_empty(&q, jt_dev(), MT_FLOAT32, 2, dk, 'C'));
    run_both(&e, &memo, ins, MT_REDUCE_SUM, 1, &axis1, &r, &q);
    run_both(&e, &memo, ins, MT_REDUCE_MAX, 1, &axis1, &r, &q);
    MT_CHECK_EQ_INT(mt_reduce_memo_hits(memo), hits(2));
    run_both(&e, &memo, ins, MT_REDUCE_MAX, 1, &axis1, &r, &q);
    MT_CHECK_EQ_INT(mt_reduce_memo_hits(memo), hits(3));
    /* B transposed in memory (same shape, other strides): recorded again */
    const mt_array *tins[3] = {&A, &Bt, &C};
    run_both(&e, &memo, tins, MT_REDUCE_MAX, 1, &axis1, &r, &q);
    MT_CHECK_EQ_INT(mt_reduce_memo_hits(memo), hits(3));
    run_both(&e, &memo, tins, MT_REDUCE_MAX, 1, &axis1, &r, &q);
    MT_CHECK_EQ_INT(mt_reduce_memo_hits(memo), hits(4));
    /* a wrong dtype after a recorded call: mt_reduce_fused's error */
    mt_array I;
    jt_arr(&I, MT_INT32, 2, d2, va);
    const mt_array *bad[3] = {&A, &I, &C};
    MT_CHECK_ERR(mt_reduce_memo_run(&memo, &e, 3, bad, MT_REDUCE_MAX, 1, &axis1, &q, 0, NULL),
                 MT_ERR_DTYPE, "input 1");
    MT_CHECK_EQ_INT(mt_reduce_memo_hits(memo), hits(4));
    /* and a good call after the error records again before launching from the memo */
    run_both(&e, &memo, tins, MT_REDUCE_MAX, 1, &axis1, &r, &q);
    run_both(&e, &memo, tins, MT_REDUCE_MAX, 1, &axis1, &r, &q);
    MT_CHECK_EQ_INT(mt_reduce_memo_hits(memo), hits(5));
    mt_array_clear(&I);
    mt_array_clear(&A);
    mt_array_clear(&B);
    mt_array_clear(&BT);
    mt_array_clear(&Bt);
    mt_array_clear(&C);
    mt_array_clear(&r);
    mt_array_clear(&q);
    mt_reduce_memo_free(memo);
    mt_kexpr_deinit(&e);
}

/* Views at other offsets of the same buffers (the memo keeps offsets relative to the arrays),
 * a reversed input (negative strides), and a sum long enough to be split into chunks. */
MT_TEST(reduce_memo_offsets_and_chunks)
{
    mt_kexpr e;
    build_map(&e);
    mt_reduce_memo *memo = NULL;
    enum { N = 3 * 65536 };
    double *v = malloc(sizeof *v * (N + 8));
    MT_CHECK(v != NULL);
    jt_fill(v, N + 8, -2, 2, 41);
    int64_t dn[1] = {N + 8}, d1[1] = {1};
    mt_array X, Y, Z, r = {0}, q = {0};
    jt_arr(&X, MT_FLOAT32, 1, dn, v);
    jt_fill(v, N + 8, -1, 1, 42);
    jt_arr(&Y, MT_FLOAT32, 1, dn, v);
    jt_arr(&Z, MT_FLOAT32, 1, d1, (double[]){0.25});
    MT_CHECK_OK(mt_array_empty(&r, jt_dev(), MT_FLOAT32, 0, NULL, 'C'));
    MT_CHECK_OK(mt_array_empty(&q, jt_dev(), MT_FLOAT32, 0, NULL, 'C'));
    for (int k = 0; k < 6; k++) {
        int64_t start = k % 3, stop = start + N;
        mt_array xs, ys;
        int64_t lo = 8 - k % 3; /* ys: N elements from lo up, or from lo + N - 1 down */
        mt_slice sx = mt_slice_range(start, stop, 1);
        mt_slice sy =
            k < 3 ? mt_slice_range(lo, lo + N, 1) : mt_slice_range(lo + N - 1, lo - 1, -1);
        MT_CHECK_OK(mt_array_slice(&xs, &X, 1, &sx));
        MT_CHECK_OK(mt_array_slice(&ys, &Y, 1, &sy));
        MT_CHECK_EQ_INT(xs.dims[0], N);
        MT_CHECK_EQ_INT(ys.dims[0], N);
        const mt_array *ins[3] = {&xs, &ys, &Z};
        run_both(&e, &memo, ins, MT_REDUCE_SUM, 0, NULL, &r, &q);
        mt_array_clear(&xs);
        mt_array_clear(&ys);
    }
    /* calls 1, 2 and 4, 5 launch from the memo (3 records the reversed layout) */
    MT_CHECK_EQ_INT(mt_reduce_memo_hits(memo), hits(4));
    free(v);
    mt_array_clear(&X);
    mt_array_clear(&Y);
    mt_array_clear(&Z);
    mt_array_clear(&r);
    mt_array_clear(&q);
    mt_reduce_memo_free(memo);
    mt_kexpr_deinit(&e);
}
