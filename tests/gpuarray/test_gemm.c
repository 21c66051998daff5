/* Tests of gpuarray GEMM and matmul against naive float64 loops (transposed, strided, batched,
 * broadcast, 16-bit and integer dtypes, no copies where the layout allows none). */
#include <cblas.h>
#include <dlpack/dlpack.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mltrain/gpuarray.h"
#include "mt_test.h"

#include "io_helpers.h"

/* ================================================================ GEMM */

/* Values of one logical operand: 3-D (bat, r, c) as doubles, C order. */
typedef struct mat3 {
    int64_t bat, r, c;
    double *v;
} mat3;

static double m3(const mat3 *x, int64_t b, int64_t i, int64_t j)
{
    if (x->bat == 1) b = 0;
    return x->v[(b * x->r + i) * x->c + j];
}

/* Naive reference: alpha * A @ B + beta * C0 into out (bat, m, n). */
static void ref_gemm(double *out, const mat3 *A, const mat3 *B, const mat3 *C0, double alpha,
                     double beta)
{
    for (int64_t b = 0; b < C0->bat; b++)
        for (int64_t i = 0; i < A->r; i++)
            for (int64_t j = 0; j < B->c; j++) {
                double s = 0;
                for (int64_t p = 0; p < A->c; p++) s += m3(A, b, i, p) * m3(B, b, p, j);
                out[(b * C0->r + i) * C0->c + j] = alpha * s + beta * m3(C0, b, i, j);
            }
}

/* Stored values (as the dtype holds them) of a random logical matrix stack, plus an array that
 * stores it transposed when trans (so gemm must be told trans). */
static void rand_operand(mt_array *arr, mat3 *logical, mt_device *dev, mt_dtype dt, int64_t bat,
                         int64_t r, int64_t c, bool trans, bool batched, double scale)
{
    int64_t n = bat * r * c;
    logical->bat = bat;
    logical->r = r;
    logical->c = c;
    logical->v = malloc((size_t)n * sizeof(double));
    double *stored = malloc((size_t)n * sizeof(double));
    for (int64_t i = 0; i < n; i++) {
        double x = mt_dtype_is_float(dt) ? urand() * scale : floor(urand() * scale);
        if (mt_dtype_kind(dt) == 'u') x = fabs(x);
        double rt;
        char tmp[8];
        mt_dtype_convert(tmp, dt, 0, &x, MT_FLOAT64, 0, 1);
        mt_dtype_convert(&rt, MT_FLOAT64, 0, tmp, dt, 0, 1);
        logical->v[i] = rt;
    }
    for (int64_t b = 0; b < bat; b++)
        for (int64_t i = 0; i < r; i++)
            for (int64_t j = 0; j < c; j++) {
                double x = logical->v[(b * r + i) * c + j];
                if (trans) stored[(b * c + j) * r + i] = x;
                else stored[(b * r + i) * c + j] = x;
            }
    int64_t dims3[3] = {bat, trans ? c : r, trans ? r : c};
    if (batched) make_array(arr, dev, dt, 3, dims3, stored);
    else make_array(arr, dev, dt, 2, dims3 + 1, stored);
    free(stored);
}

static void gemm_case(mt_device *dev, mt_dtype dt, bool ta, bool tb, int64_t bat, int64_t m,
                      int64_t n, int64_t k, double alpha, double beta, double atol, double rtol)
{
    bool batched = bat > 0;
    int64_t nb = batched ? bat : 1;
    mt_array A, B, C;
    mat3 la, lb, lc;
    rand_operand(&A, &la, dev, dt, nb, m, k, ta, batched, 1.0);
    rand_operand(&B, &lb, dev, dt, nb, k, n, tb, batched, 1.0);
    rand_operand(&C, &lc, dev, dt, nb, m, n, false, batched, 1.0);
    double *want = malloc((size_t)(nb * m * n) * sizeof(double));
    ref_gemm(want, &la, &lb, &lc, alpha, beta);
    MT_CHECK_OK(mt_array_gemm(&C, &A, &B, alpha, beta, ta, tb));
    double *got = read_vals(&C);
    MT_CHECK_ALLCLOSE(got, want, (size_t)(nb * m * n), atol, rtol);
    free(got);
    free(want);
    free(la.v);
    free(lb.v);
    free(lc.v);
    mt_array_clear(&A);
    mt_array_clear(&B);
    mt_array_clear(&C);
}

MT_TEST(gemm_float_vs_naive)
{
    mt_device *dev = open_dev();
    for (int t = 0; t < 4; t++) {
        bool ta = t & 1, tb = t & 2;
        gemm_case(dev, MT_FLOAT32, ta, tb, 0, 37, 29, 41, 1.5, -0.5, 1e-5, 1e-5);
        gemm_case(dev, MT_FLOAT64, ta, tb, 0, 37, 29, 41, 1.5, -0.5, 1e-13, 1e-13);
        gemm_case(dev, MT_FLOAT32, ta, tb, 3, 5, 7, 9, 1.0, 0.0, 1e-5, 1e-5);
        gemm_case(dev, MT_FLOAT64, ta, tb, 3, 5, 7, 9, 0.25, 2.0, 1e-13, 1e-13);
        /* over 8M multiply-adds: split over the host's pool by rows (m >= n), by columns */
        gemm_case(dev, MT_FLOAT32, ta, tb, 0, 275, 200, 160, 1.5, -0.5, 1e-4, 1e-4);
        gemm_case(dev, MT_FLOAT64, ta, tb, 2, 200, 275, 160, 0.5, 1.0, 1e-12, 1e-12);
    }
    /* degenerate shapes: vectors, k = 0 (c = beta c), empty */
    gemm_case(dev, MT_FLOAT32, false, false, 0, 1, 9, 5, 1.0, 0.0, 1e-5, 1e-5);
    gemm_case(dev, MT_FLOAT32, true, true, 0, 9, 1, 5, 1.0, 1.0, 1e-5, 1e-5);
    gemm_case(dev, MT_FLOAT64, false, false, 0, 4, 3, 0, 1.0, 3.0, 0, 0);
    gemm_case(dev, MT_FLOAT64, false, false, 2, 0, 3, 4, 1.0, 3.0, 0, 0);
    mt_device_release(dev);
}

/* mt_array_gemm on the host is cblas with the operands' own strides and transposes (no copy):
 * bit-identical to calling cblas directly the way it does. Products under 8M multiply-adds are
 * one single-threaded cblas call (src/gpuarray/device_host.c); larger ones are split over the
 * device's thread pool into single-threaded calls on blocks of C, which agree with the whole
 * call to rounding (OpenBLAS's kernel choice depends on the block's size) and give the same bits
 * run after run. The two sizes here take one path each. */
static void gemm_exact_case(mt_device *dev, int m, int n, int k, bool serial)
{
    mt_array A, B, C;
    mat3 la, lb, lc;
    rand_operand(&A, &la, dev, MT_FLOAT32, 1, k, m, false, false, 1.0); /* stored (k, m) */
    rand_operand(&B, &lb, dev, MT_FLOAT32, 1, k, n, false, false, 1.0);
    rand_operand(&C, &lc, dev, MT_FLOAT32, 1, m, n, false, false, 1.0);
    float *cref = malloc((size_t)m * n * sizeof(float));
    MT_CHECK_OK(mt_array_to_host(cref, (size_t)m * n * 4, &C));
    int threads = openblas_get_num_threads();
    openblas_set_num_threads(1);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, m, n, k, 0.75f,
                mt_buffer_host_ptr(A.buf), m, mt_buffer_host_ptr(B.buf), n, 0.5f, cref, n);
    openblas_set_num_threads(threads);
    mt_array C2;
    MT_CHECK_OK(mt_array_copy_to(&C2, &C, NULL));
    MT_CHECK_OK(mt_array_gemm(&C, &A, &B, 0.75, 0.5, true, false));
    MT_CHECK(openblas_get_num_threads() == threads); /* restored after the product */
    float *got = malloc((size_t)m * n * sizeof(float));
    MT_CHECK_OK(mt_array_to_host(got, (size_t)m * n * 4, &C));
    if (serial) {
        MT_CHECK(memcmp(got, cref, (size_t)m * n * 4) == 0);
    } else {
        int bad = 0;
        for (int i = 0; i < m * n; i++) bad += !mt_test_close(got[i], cref[i], 1e-5, 1e-5);
        MT_CHECK_EQ_INT(bad, 0);
        float *again = malloc((size_t)m * n * sizeof(float));
        MT_CHECK_OK(mt_array_gemm(&C2, &A, &B, 0.75, 0.5, true, false));
        MT_CHECK_OK(mt_array_to_host(again, (size_t)m * n * 4, &C2));
        MT_CHECK(memcmp(got, again, (size_t)m * n * 4) == 0);
        free(again);
    }
    mt_array_clear(&C2);
    free(cref);
    free(got);
    free(la.v);
    free(lb.v);
    free(lc.v);
    mt_array_clear(&A);
    mt_array_clear(&B);
    mt_array_clear(&C);
}

MT_TEST(gemm_matches_cblas_exactly)
{
    if (strcmp(mt_test_device_name(), "host") != 0) MT_SKIP("compares with host OpenBLAS");
    mt_device *dev = open_host();
    gemm_exact_case(dev, 96, 80, 112, true);    /* 0.86M multiply-adds: one thread */
    gemm_exact_case(dev, 256, 288, 320, false); /* 23.6M: split over the pool */
    mt_device_release(dev);
}

/* gemm on arbitrary views against the reference computed from their values. */
static void gemm_views(const mt_array *A, const mt_array *B, mt_array *C, double alpha, double beta,
                       bool expect_no_copy, double tol)
{
    mt_device *dev = mt_array_device(C);
    double *a = read_vals(A), *b = read_vals(B), *c0 = read_vals(C);
    int64_t m = A->dims[A->ndim - 2], k = A->dims[A->ndim - 1], n = B->dims[B->ndim - 1];
    int64_t bat = C->ndim == 3 ? C->dims[0] : 1;
    mat3 la = {A->ndim == 3 ? A->dims[0] : 1, m, k, a}, lb = {B->ndim == 3 ? B->dims[0] : 1, k, n, b};
    mat3 lc = {bat, m, n, c0};
    double *want = malloc((size_t)(bat * m * n) * sizeof(double));
    ref_gemm(want, &la, &lb, &lc, alpha, beta);
    uint64_t before = allocs_of(dev);
    MT_CHECK_OK(mt_array_gemm(C, A, B, alpha, beta, false, false));
    if (expect_no_copy) MT_CHECK_EQ_INT(allocs_of(dev), before);
    double *got = read_vals(C);
    MT_CHECK_ALLCLOSE(got, want, (size_t)(bat * m * n), tol, tol);
    free(a);
    free(b);
    free(c0);
    free(want);
    free(got);
}

MT_TEST(gemm_views_without_copies)
{
    mt_device *dev = open_dev();
    mt_array S, T, At, Bs, big, Cs, Cf, Cbase, x;
    mat3 l;
    /* A = transpose view of a (k, m) array; B = column slice of a wider array */
    rand_operand(&S, &l, dev, MT_FLOAT32, 1, 12, 10, false, false, 1.0);
    free(l.v);
    MT_CHECK_OK(mt_array_transpose(&At, &S, NULL)); /* (10, 12), unit row stride */
    rand_operand(&big, &l, dev, MT_FLOAT32, 1, 12, 20, false, false, 1.0);
    free(l.v);
    mt_slice sl[2] = {mt_slice_all(), mt_slice_range(3, 10, 1)};
    MT_CHECK_OK(mt_array_slice(&Bs, &big, 2, sl)); /* (12, 7), row stride 20 */
    /* C = column slice of a wider array */
    rand_operand(&Cbase, &l, dev, MT_FLOAT32, 1, 10, 9, false, false, 1.0);
    free(l.v);
    mt_slice cs[2] = {mt_slice_all(), mt_slice_range(1, 8, 1)};
    MT_CHECK_OK(mt_array_slice(&Cs, &Cbase, 2, cs));
    gemm_views(&At, &Bs, &Cs, 1.0, 0.5, true, 1e-5);
    /* C in Fortran order (transposed view of a (7, 10) array): computed as C^T, no copy */
    rand_operand(&T, &l, dev, MT_FLOAT32, 1, 7, 10, false, false, 1.0);
    free(l.v);
    MT_CHECK_OK(mt_array_transpose(&Cf, &T, NULL));
    gemm_views(&At, &Bs, &Cf, 2.0, -1.0, true, 1e-5);
    /* a step-2 column slice has no unit stride: copied once, still right */
    mt_slice s2[2] = {mt_slice_all(), mt_slice_range(0, 20, 3)};
    MT_CHECK_OK(mt_array_slice(&x, &big, 2, s2)); /* (12, 7), column stride 3 */
    gemm_views(&At, &x, &Cs, 1.0, 0.0, false, 1e-5);
    /* reversed rows (negative stride) */
    mt_array rev;
    mt_slice r2[2] = {mt_slice_range(MT_SLICE_UNSET, MT_SLICE_UNSET, -1), mt_slice_all()};
    MT_CHECK_OK(mt_array_slice(&rev, &Bs, 2, r2));
    gemm_views(&At, &rev, &Cf, 1.0, 1.0, false, 1e-5);
    /* C aliasing an input is computed from a copy of the input */
    mt_array sq, sqv;
    rand_operand(&sq, &l, dev, MT_FLOAT64, 1, 6, 6, false, false, 1.0);
    free(l.v);
    mt_array_view(&sqv, &sq);
    gemm_views(&sqv, &sqv, &sq, 1.0, 1.0, false, 1e-12);
    mt_array_clear(&sqv);
    mt_array_clear(&sq);
    mt_array_clear(&rev);
    mt_array_clear(&x);
    mt_array_clear(&T);
    mt_array_clear(&Cf);
    mt_array_clear(&Cbase);
    mt_array_clear(&Cs);
    mt_array_clear(&Bs);
    mt_array_clear(&big);
    mt_array_clear(&At);
    mt_array_clear(&S);
    mt_device_release(dev);
}

MT_TEST(gemm_batched_broadcast)
{
    mt_device *dev = open_dev();
    mt_array A, B, C, Ab, Bt, Ct;
    mat3 l;
    /* (4, 5, 6) @ (6, 3) -> (4, 5, 3): b broadcasts with batch stride 0, no copies */
    rand_operand(&A, &l, dev, MT_FLOAT64, 4, 5, 6, false, true, 1.0);
    free(l.v);
    rand_operand(&B, &l, dev, MT_FLOAT64, 1, 6, 3, false, false, 1.0);
    free(l.v);
    rand_operand(&C, &l, dev, MT_FLOAT64, 4, 5, 3, false, true, 1.0);
    free(l.v);
    gemm_views(&A, &B, &C, 1.0, 1.0, true, 1e-12);
    /* broadcast_to view of a (1, 6, 3) stack: stride-0 batch dim, no copies */
    mt_array B3;
    int64_t d3[3] = {1, 6, 3}, b3[3] = {4, 6, 3};
    MT_CHECK_OK(mt_array_reshape_view(&B3, &B, 3, d3, NULL));
    MT_CHECK_OK(mt_array_broadcast_to(&Bt, &B3, 3, b3));
    MT_CHECK_EQ_INT(Bt.strides[0], 0);
    gemm_views(&A, &Bt, &C, 0.5, 0.0, true, 1e-12);
    /* batch of transposed views: perm (0, 2, 1) */
    int32_t perm[3] = {0, 2, 1};
    rand_operand(&Ab, &l, dev, MT_FLOAT64, 4, 6, 5, false, true, 1.0);
    free(l.v);
    mt_array Abt;
    MT_CHECK_OK(mt_array_transpose(&Abt, &Ab, perm)); /* (4, 5, 6) */
    gemm_views(&Abt, &Bt, &C, 1.0, -2.0, true, 1e-12);
    /* Fortran-order batched C (transposed views of (4, 3, 5)) */
    mt_array Cb;
    rand_operand(&Cb, &l, dev, MT_FLOAT64, 4, 3, 5, false, true, 1.0);
    free(l.v);
    MT_CHECK_OK(mt_array_transpose(&Ct, &Cb, perm));
    gemm_views(&Abt, &B, &Ct, 1.0, 1.0, true, 1e-12);
    mt_array_clear(&Ct);
    mt_array_clear(&Cb);
    mt_array_clear(&Abt);
    mt_array_clear(&Ab);
    mt_array_clear(&Bt);
    mt_array_clear(&B3);
    mt_array_clear(&A);
    mt_array_clear(&B);
    mt_array_clear(&C);
    mt_device_release(dev);
}

MT_TEST(gemm_half_and_integer_dtypes)
{
    mt_device *dev = open_dev();
    /* 16-bit floats: float32 compute, one rounding at the end */
    gemm_case(dev, MT_FLOAT16, false, true, 0, 9, 11, 24, 1.0, 0.5, 4e-3, 2e-3);
    gemm_case(dev, MT_BFLOAT16, true, false, 2, 9, 11, 24, 1.0, 0.5, 3e-2, 8e-3);
    /* small integers (|values| <= 2, results <= 78): exact in every integer dtype */
    for (int d = 0; d < MT_DTYPE_COUNT; d++) {
        mt_dtype dt = (mt_dtype)d;
        if (!mt_dtype_is_int(dt)) continue;
        int64_t m = 7, n = 5, k = 9;
        mt_array A, B, C;
        mat3 la, lb, lc;
        rand_operand(&A, &la, dev, dt, 1, m, k, true, false, 2.0);
        rand_operand(&B, &lb, dev, dt, 1, k, n, false, false, 2.0);
        rand_operand(&C, &lc, dev, dt, 1, m, n, false, false, 2.0);
        double want[35];
        ref_gemm(want, &la, &lb, &lc, 2.0, 3.0);
        MT_CHECK_OK(mt_array_gemm(&C, &A, &B, 2.0, 3.0, true, false));
        double *got = read_vals(&C);
        MT_CHECK_ALLCLOSE(got, want, 35, 0, 0);
        free(got);
        free(la.v);
        free(lb.v);
        free(lc.v);
        mt_array_clear(&A);
        mt_array_clear(&B);
        mt_array_clear(&C);
    }
    /* wrap-around: int8 and uint8 products overflow like NumPy's */
    int64_t d2[2] = {2, 2};
    const double av[4] = {100, 100, -100, 50}, bv[4] = {100, 3, 2, 100};
    for (int u = 0; u < 2; u++) {
        mt_dtype dt = u ? MT_UINT8 : MT_INT8;
        mt_array A, B, C;
        make_array(&A, dev, dt, 2, d2, av);
        make_array(&B, dev, dt, 2, d2, bv);
        MT_CHECK_OK(mt_array_empty(&C, dev, dt, 2, d2, 'C'));
        MT_CHECK_OK(mt_array_gemm(&C, &A, &B, 1.0, 0.0, false, false));
        uint8_t got[4];
        MT_CHECK_OK(mt_array_to_host(got, 4, &C));
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 2; j++) {
                /* operands as the dtype holds them, product mod 256 */
                int64_t s = 0;
                for (int p = 0; p < 2; p++) {
                    int64_t x = (int64_t)av[i * 2 + p], y = (int64_t)bv[p * 2 + j];
                    if (u) x &= 0xff, y &= 0xff;
                    s += x * y;
                }
                MT_CHECK_EQ_INT(got[i * 2 + j], (uint8_t)(s & 0xff));
            }
        mt_array_clear(&A);
        mt_array_clear(&B);
        mt_array_clear(&C);
    }
    /* non-integral alpha on int64: float64 math, truncation toward zero */
    const double iv[4] = {1, 2, 3, 4}, jv[4] = {-1, 0, 0, 1};
    mt_array A, B, C;
    make_array(&A, dev, MT_INT64, 2, d2, iv);
    make_array(&B, dev, MT_INT64, 2, d2, jv);
    MT_CHECK_OK(mt_array_empty(&C, dev, MT_INT64, 2, d2, 'C'));
    MT_CHECK_OK(mt_array_gemm(&C, &A, &B, 0.5, 0.0, false, false));
    int64_t r[4];
    MT_CHECK_OK(mt_array_to_host(r, sizeof r, &C));
    /* A @ B = [[-1, 2], [-3, 4]] -> * 0.5 = [[-0.5, 1], [-1.5, 2]] -> trunc */
    MT_CHECK(r[0] == 0 && r[1] == 1 && r[2] == -1 && r[3] == 2);
    mt_array_clear(&A);
    mt_array_clear(&B);
    mt_array_clear(&C);
    /* bool: logical or of ands */
    const double ba[4] = {1, 0, 0, 0}, bb[4] = {0, 1, 1, 0};
    make_array(&A, dev, MT_BOOL, 2, d2, ba);
    make_array(&B, dev, MT_BOOL, 2, d2, bb);
    MT_CHECK_OK(mt_array_empty(&C, dev, MT_BOOL, 2, d2, 'C'));
    MT_CHECK_OK(mt_array_gemm(&C, &A, &B, 1.0, 0.0, false, false));
    uint8_t bres[4];
    MT_CHECK_OK(mt_array_to_host(bres, 4, &C));
    MT_CHECK(bres[0] == 0 && bres[1] == 1 && bres[2] == 0 && bres[3] == 0);
    mt_array_clear(&A);
    mt_array_clear(&B);
    mt_array_clear(&C);
    mt_device_release(dev);
}

MT_TEST(gemm_errors)
{
    mt_device *dev = open_dev();
    int64_t d34[2] = {3, 4}, d56[2] = {5, 6}, d35[2] = {3, 5}, d45[2] = {4, 5}, d4[1] = {4};
    int64_t b245[3] = {2, 4, 5}, b335[3] = {3, 3, 5};
    mt_array a, b, c, bb, cc, v, f64, ro;
    MT_CHECK_OK(mt_array_zeros(&a, dev, MT_FLOAT32, 2, d34));
    MT_CHECK_OK(mt_array_zeros(&b, dev, MT_FLOAT32, 2, d56));
    MT_CHECK_OK(mt_array_zeros(&c, dev, MT_FLOAT32, 2, d35));
    MT_CHECK_ERR(mt_array_gemm(&c, &a, &b, 1, 0, false, false), MT_ERR_SHAPE, "(3, 4)");
    MT_CHECK(strstr(mt_last_error(), "(5, 6)") != NULL);
    MT_CHECK(strstr(mt_last_error(), "inner dims differ") != NULL);
    mt_array_clear(&b);
    MT_CHECK_OK(mt_array_zeros(&b, dev, MT_FLOAT32, 2, d45));
    MT_CHECK_OK(mt_array_gemm(&c, &a, &b, 1, 0, false, false));
    MT_CHECK_ERR(mt_array_gemm(&c, &a, &b, 1, 0, true, false), MT_ERR_SHAPE, "trans_a=1");
    MT_CHECK_ERR(mt_array_gemm(&a, &c, &b, 1, 0, false, false), MT_ERR_SHAPE, NULL);
    MT_CHECK_OK(mt_array_zeros(&bb, dev, MT_FLOAT32, 3, b245));
    MT_CHECK_ERR(mt_array_gemm(&c, &a, &bb, 1, 0, false, false), MT_ERR_SHAPE, "needs a 3-D c");
    MT_CHECK_OK(mt_array_zeros(&cc, dev, MT_FLOAT32, 3, b335));
    MT_CHECK_ERR(mt_array_gemm(&cc, &a, &bb, 1, 0, false, false), MT_ERR_SHAPE, "batch sizes");
    MT_CHECK_OK(mt_array_zeros(&v, dev, MT_FLOAT32, 1, d4));
    MT_CHECK_ERR(mt_array_gemm(&c, &a, &v, 1, 0, false, false), MT_ERR_SHAPE, "2-D or 3-D");
    MT_CHECK_OK(mt_array_zeros(&f64, dev, MT_FLOAT64, 2, d45));
    MT_CHECK_ERR(mt_array_gemm(&c, &a, &f64, 1, 0, false, false), MT_ERR_DTYPE, "float64");
    MT_CHECK_OK(mt_array_broadcast_to(&ro, &c, 2, d35));
    ro.flags &= ~(uint32_t)MT_ARRAY_WRITEABLE;
    MT_CHECK_ERR(mt_array_gemm(&ro, &a, &b, 1, 0, false, false), MT_ERR_INVALID, "not writeable");
    mt_array empty = {0};
    MT_CHECK_ERR(mt_array_gemm(&c, &empty, &b, 1, 0, false, false), MT_ERR_INVALID, NULL);
    mt_array_clear(&ro);
    mt_array_clear(&f64);
    mt_array_clear(&v);
    mt_array_clear(&cc);
    mt_array_clear(&bb);
    mt_array_clear(&a);
    mt_array_clear(&b);
    mt_array_clear(&c);
    mt_device_release(dev);
}

/* ---------------------------------------------------------------- matmul */

/* NumPy matmul on C-order doubles with explicit index arithmetic. */
static void ref_matmul(const double *a, int32_t nda, const int64_t *da, const double *b,
                       int32_t ndb, const int64_t *db, double *out, int32_t *ndo, int64_t *dout)
{
    int64_t m = nda == 1 ? 1 : da[nda - 2], k = da[nda - 1];
    int64_t n = ndb == 1 ? 1 : db[ndb - 1];
    int32_t nba = nda > 2 ? nda - 2 : 0, nbb = ndb > 2 ? ndb - 2 : 0;
    int32_t nb = nba > nbb ? nba : nbb;
    int64_t bd[MT_MAX_DIMS];
    for (int32_t i = 0; i < nb; i++) {
        int32_t ia = i - (nb - nba), ib = i - (nb - nbb);
        int64_t x = ia >= 0 ? da[ia] : 1, y = ib >= 0 ? db[ib] : 1;
        bd[i] = x > y ? x : y;
    }
    *ndo = 0;
    for (int32_t i = 0; i < nb; i++) dout[(*ndo)++] = bd[i];
    if (nda > 1) dout[(*ndo)++] = m;
    if (ndb > 1) dout[(*ndo)++] = n;
    int64_t total = prod(nb, bd);
    for (int64_t t = 0; t < total; t++) {
        int64_t rem = t, offa = 0, offb = 0, mula = 1, mulb = 1;
        for (int32_t i = nb - 1; i >= 0; i--) {
            int64_t idx = rem % bd[i];
            rem /= bd[i];
            int32_t ia = i - (nb - nba), ib = i - (nb - nbb);
            if (ia >= 0) {
                offa += (da[ia] == 1 ? 0 : idx) * mula;
                mula *= da[ia];
            }
            if (ib >= 0) {
                offb += (db[ib] == 1 ? 0 : idx) * mulb;
                mulb *= db[ib];
            }
        }
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) {
                double s = 0;
                for (int64_t p = 0; p < k; p++)
                    s += a[offa * m * k + i * k + p] * b[offb * k * n + p * n + j];
                out[(t * m + i) * n + j] = s;
            }
    }
}

static void matmul_case(mt_device *dev, mt_dtype dta, int32_t nda, const int64_t *da,
                        mt_dtype dtb, int32_t ndb, const int64_t *db, double tol)
{
    int64_t na = prod(nda, da), nb = prod(ndb, db);
    double *av = malloc((size_t)(na + 1) * 8), *bv = malloc((size_t)(nb + 1) * 8);
    for (int64_t i = 0; i < na; i++) av[i] = floor(urand() * 8);
    for (int64_t i = 0; i < nb; i++) bv[i] = floor(urand() * 8);
    mt_array A, B, O;
    make_array(&A, dev, dta, nda, da, av);
    make_array(&B, dev, dtb, ndb, db, bv);
    MT_CHECK_OK(mt_array_matmul(&O, &A, &B));
    int64_t dout[MT_MAX_DIMS];
    int32_t ndo;
    double *want = malloc(4096 * 8);
    ref_matmul(av, nda, da, bv, ndb, db, want, &ndo, dout);
    MT_CHECK_EQ_INT(O.ndim, ndo);
    for (int32_t i = 0; i < ndo; i++) MT_CHECK_EQ_INT(O.dims[i], dout[i]);
    MT_CHECK_EQ_INT(O.dtype, mt_dtype_promote(dta, dtb));
    double *got = read_vals(&O);
    MT_CHECK_ALLCLOSE(got, want, (size_t)mt_array_size(&O), tol, tol);
    free(got);
    free(want);
    free(av);
    free(bv);
    mt_array_clear(&A);
    mt_array_clear(&B);
    mt_array_clear(&O);
}

MT_TEST(matmul_numpy_semantics)
{
    mt_device *dev = open_dev();
    const mt_dtype F = MT_FLOAT32, D = MT_FLOAT64;
    int64_t v5[1] = {5}, m35[2] = {3, 5}, m52[2] = {5, 2}, t435[3] = {4, 3, 5};
    int64_t q2135[4] = {2, 1, 3, 5}, t652[3] = {6, 5, 2}, t153[3] = {1, 5, 3}, t235[3] = {2, 3, 5};
    int64_t m50[2] = {5, 0}, m05[2] = {0, 5}, v0[1] = {0};
    matmul_case(dev, D, 1, v5, D, 1, v5, 0);           /* -> 0-d */
    matmul_case(dev, D, 1, v5, D, 2, m52, 0);          /* -> (2,) */
    matmul_case(dev, D, 2, m35, D, 1, v5, 0);          /* -> (3,) */
    matmul_case(dev, F, 2, m35, F, 2, m52, 0);         /* -> (3, 2) */
    matmul_case(dev, F, 3, t435, F, 2, m52, 0);        /* folded into one (12, 5) @ (5, 2) */
    matmul_case(dev, D, 2, m35, D, 3, t652, 0);        /* a broadcast over 6 */
    matmul_case(dev, D, 4, q2135, D, 3, t652, 0);      /* (2, 6) batch that does not flatten */
    matmul_case(dev, D, 1, v5, D, 3, t652, 0);         /* -> (6, 2) */
    matmul_case(dev, D, 3, t235, D, 1, v5, 0);         /* -> (2, 3) */
    matmul_case(dev, D, 3, t235, D, 3, t153, 0);       /* b batch 1 broadcasts */
    matmul_case(dev, MT_INT32, 3, t435, F, 2, m52, 0); /* int32 @ float32 -> float64 */
    matmul_case(dev, MT_INT16, 2, m35, MT_INT8, 1, v5, 0);
    matmul_case(dev, MT_FLOAT16, 2, m35, MT_FLOAT16, 2, m52, 0);
    matmul_case(dev, D, 2, m50, D, 1, v0, 0); /* k > 0 empty output... */
    matmul_case(dev, D, 2, m05, D, 2, m52, 0);
    int64_t m30[2] = {3, 0}, m04[2] = {0, 4};
    matmul_case(dev, D, 2, m30, D, 2, m04, 0); /* k = 0 -> zeros (3, 4) */
    /* errors */
    mt_array A, B, S, O;
    double one = 1;
    make_array(&A, dev, D, 2, m35, (double[15]){0});
    make_array(&B, dev, D, 2, m35, (double[15]){0});
    make_array(&S, dev, D, 0, NULL, &one);
    MT_CHECK_ERR(mt_array_matmul(&O, &A, &B), MT_ERR_SHAPE, "inner dims differ (5 vs 3)");
    MT_CHECK(strstr(mt_last_error(), "(3, 5)") != NULL);
    MT_CHECK_ERR(mt_array_matmul(&O, &S, &B), MT_ERR_SHAPE, "at least 1 dimension");
    mt_array X, Y;
    int64_t x2[3] = {2, 3, 5}, y3[3] = {3, 5, 4};
    make_array(&X, dev, D, 3, x2, (double[30]){0});
    make_array(&Y, dev, D, 3, y3, (double[60]){0});
    MT_CHECK_ERR(mt_array_matmul(&O, &X, &Y), MT_ERR_SHAPE, "batch dims do not broadcast");
    mt_array_clear(&X);
    mt_array_clear(&Y);
    mt_array_clear(&A);
    mt_array_clear(&B);
    mt_array_clear(&S);
    mt_device_release(dev);
}

MT_TEST(opencl_gemm_npy_dlpack)
{
    mt_device *cl = open_opencl();
    /* CLBlast with a transposed operand (one float32 routine: CLBlast compiles each routine
     * and precision on first use, which costs seconds on PoCL); the integer loop staged
     * through the host. MLTRAIN_TEST_DEVICE=opencl:0:0 runs every case here on OpenCL. */
    gemm_case(cl, MT_FLOAT32, true, false, 0, 17, 13, 19, 1.0, 0.5, 1e-5, 1e-5);
    gemm_case(cl, MT_INT32, false, false, 0, 4, 5, 6, 1.0, 1.0, 0, 0);
    mt_array S, At, B, C;
    mat3 l;
    rand_operand(&S, &l, cl, MT_FLOAT32, 1, 12, 10, false, false, 1.0);
    free(l.v);
    MT_CHECK_OK(mt_array_transpose(&At, &S, NULL));
    rand_operand(&B, &l, cl, MT_FLOAT32, 1, 12, 7, false, false, 1.0);
    free(l.v);
    rand_operand(&C, &l, cl, MT_FLOAT32, 1, 10, 7, false, false, 1.0);
    free(l.v);
    gemm_views(&At, &B, &C, 1.0, 1.0, true, 1e-5);
    /* npy onto and from the device, Fortran order kept */
    int64_t dims[3] = {3, 4, 2};
    mt_array f, g;
    pat_array(&f, cl, MT_INT16, 3, dims, true);
    const char *path = path_in_tmp("cl.npy");
    MT_CHECK_OK(mt_npy_save(path, &f));
    MT_CHECK_OK(mt_npy_load(&g, cl, path, 0));
    MT_CHECK(mt_array_device(&g) == cl && mt_array_is_f_contiguous(&g));
    check_pat(&g, MT_INT16, 3, dims);
    /* DLPack: kDLOpenCL with the cl_mem handle, imported back without a copy */
    DLManagedTensor *t = NULL;
    MT_CHECK_OK(mt_array_to_dlpack(&t, &g));
    MT_CHECK_EQ_INT(t->dl_tensor.device.device_type, kDLOpenCL);
    MT_CHECK_EQ_INT(t->dl_tensor.device.device_id, 0);
    MT_CHECK(t->dl_tensor.data != NULL);
    MT_CHECK(t->dl_tensor.strides[0] == 1 && t->dl_tensor.strides[2] == 12);
    mt_array back;
    uint64_t before = allocs_of(cl);
    MT_CHECK_OK(mt_array_from_dlpack(&back, t));
    MT_CHECK_EQ_INT(allocs_of(cl), before);
    MT_CHECK(mt_array_device(&back) == cl);
    mt_array_clear(&g);
    check_pat(&back, MT_INT16, 3, dims);
    mt_array_clear(&back);
    mt_array_clear(&f);
    mt_array_clear(&S);
    mt_array_clear(&At);
    mt_array_clear(&B);
    mt_array_clear(&C);
    mt_device_release(cl);
}
