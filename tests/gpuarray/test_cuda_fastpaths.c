/* The CUDA backend's optional fast paths on cuda:0: host<->device copies staged through pinned
 * host memory (sizes around the staging threshold and the chunk size, unaligned offsets, other
 * streams, the switch that turns staging off, writes that return once queued and are then
 * reused at once), and float16/bfloat16 products through cublasGemmEx with float32
 * accumulation against the host's float32 product rounded once. The process-wide counters of
 * device_cuda.c and cuda_gemm.c prove that the fast path ran. Every case needs a GPU and skips
 * without one; each runs in its own process, so the environment a case sets is read by its own
 * device open. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/gpuarray/gpuarray_impl.h"
#include "mltrain/gpuarray.h"
#include "mt_test.h"
#include "mt_test_device.h"

uint64_t mt__cuda_staged_bytes(bool to_device); /* device_cuda.c */
uint64_t mt__cuda_gemmex_calls(void);           /* cuda_gemm.c */

#define KIB ((size_t)1 << 10)
#define MIB ((size_t)1 << 20)

/* ---------------------------------------------------------------- pinned staging */

/* Sizes below, at and above the staging threshold (64 KiB) and across several chunks (the
 * default pool is 4 chunks of 8 MiB), at odd offsets, on the compute stream and on a stream of
 * its own; every byte comes back, and the counters grow by exactly the staged sizes. */
MT_TEST(cuda_staged_copies_roundtrip)
{
    mt_device *dev = mt_test_open_or_skip("cuda:0");
    const size_t sizes[] = {1, 4095, 64 * KIB - 1, 64 * KIB, 1 * MIB + 3, 8 * MIB,
                            8 * MIB + 1, 37 * MIB + 12345};
    const size_t offs[] = {0, 3};
    uint64_t up0 = mt__cuda_staged_bytes(true), down0 = mt__cuda_staged_bytes(false);
    uint64_t expect = 0;
    mt_stream *side = NULL;
    MT_CHECK_OK(mt_stream_new(&side, dev));
    unsigned seed = 1;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        for (size_t j = 0; j < 2; j++) {
            mt_test_roundtrip(dev, sizes[i], offs[j], j ? side : NULL, seed++);
            if (sizes[i] >= 64 * KIB) expect += sizes[i];
        }
    }
    uint64_t up = mt__cuda_staged_bytes(true) - up0, down = mt__cuda_staged_bytes(false) - down0;
    printf("staged %llu bytes up, %llu down (expected %llu each)\n", (unsigned long long)up,
           (unsigned long long)down, (unsigned long long)expect);
    if (up != expect || down != expect)
        mt_test_fail(__FILE__, __LINE__, "pinned staging did not carry the large copies: %llu "
                     "up and %llu down of %llu bytes (a warning above says why when pinning "
                     "failed)", (unsigned long long)up, (unsigned long long)down,
                     (unsigned long long)expect);
    mt_stream_free(side);
    mt_device_release(dev);
}

/* MLTRAIN_CUDA_PINNED_MB=0: the direct copies of before, nothing staged. */
MT_TEST(cuda_staging_off_copies_direct)
{
    setenv("MLTRAIN_CUDA_PINNED_MB", "0", 1);
    mt_device *dev = mt_test_open_or_skip("cuda:0");
    uint64_t up0 = mt__cuda_staged_bytes(true), down0 = mt__cuda_staged_bytes(false);
    mt_test_roundtrip(dev, 9 * MIB + 7, 5, NULL, 11);
    MT_CHECK_EQ_INT(mt__cuda_staged_bytes(true), up0);
    MT_CHECK_EQ_INT(mt__cuda_staged_bytes(false), down0);
    mt_device_release(dev);
}

/* MLTRAIN_CUDA_ASYNC_WRITES=1 and a small pool (1 MiB: 4 chunks of 256 KiB): each round fills
 * x (an upload or a kernel), writes new host data over it (staged: returns once queued), reuses
 * the host memory at once, and copies x device-to-device into its slot of `all`. The write is
 * ordered after the fill and before the copy on the compute stream, and a pinned chunk is
 * refilled only after its DMA is done: every slot holds its round's data. */
MT_TEST(cuda_async_staged_writes_are_ordered)
{
    setenv("MLTRAIN_CUDA_ASYNC_WRITES", "1", 1);
    setenv("MLTRAIN_CUDA_PINNED_MB", "1", 1);
    mt_device *dev = mt_test_open_or_skip("cuda:0");
    const size_t n = 3 * MIB + 100; /* elements of uint8 */
    const int rounds = 6;
    int64_t dn = (int64_t)n, dall = (int64_t)n * rounds;
    mt_array x = {0}, all = {0};
    MT_CHECK_OK(mt_array_empty(&x, dev, MT_UINT8, 1, &dn, 'C'));
    MT_CHECK_OK(mt_array_zeros(&all, dev, MT_UINT8, 1, &dall));
    uint8_t *h = malloc(n), *back = malloc(n * (size_t)rounds);
    MT_CHECK(h && back);
    for (int r = 0; r < rounds; r++) {
        MT_CHECK_OK(mt_array_fill(&x, mt_scalar_i64(200 + r)));
        mt_test_fill_pattern(h, n, 100u + (unsigned)r);
        uint64_t up0 = mt__cuda_staged_bytes(true);
        MT_CHECK_OK(mt_buffer_write(x.buf, x.offset, h, n, NULL));
        MT_CHECK_EQ_INT(mt__cuda_staged_bytes(true) - up0, n);
        memset(h, 0xEE, n); /* at once: the staged write must not read it any more */
        MT_CHECK_OK(mt_buffer_copy(all.buf, all.offset + (size_t)r * n, x.buf, x.offset, n,
                                   NULL));
    }
    MT_CHECK_OK(mt_array_to_host(back, n * (size_t)rounds, &all));
    for (int r = 0; r < rounds; r++) {
        char what[32];
        snprintf(what, sizeof what, "round %d", r);
        mt_test_check_pattern(back + (size_t)r * n, n, 100u + (unsigned)r, what);
    }
    free(h);
    free(back);
    mt_array_clear(&x);
    mt_array_clear(&all);
    mt_device_release(dev);
}

/* ---------------------------------------------------------------- GemmEx */

/* C = alpha op(A) op(B) + beta C for float16 / bfloat16 through the backend's gemm member
 * (cublasGemmEx, float32 accumulation) against mt_array_gemm on the host (float32 temporaries,
 * one rounding): transposes, a batch with a broadcast B, beta != 0. */
MT_TEST(cuda_gemm_half_through_gemmex_vs_host)
{
    mt_device *dev = mt_test_open_or_skip("cuda:0");
    mt_device *host = mt_test_open_or_skip("host");
    static const mt_dtype dts[] = {MT_FLOAT16, MT_BFLOAT16};
    const int64_t M = 67, N = 45, K = 129, B = 3;
    uint64_t calls0 = mt__cuda_gemmex_calls(), expect_calls = 0;
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    for (int di = 0; di < 2; di++) {
        mt_dtype dt = dts[di];
        /* float32 sums of exact products on both sides, in another order: the results may
         * differ by one unit in the last place of the type */
        double atol = dt == MT_FLOAT16 ? 1e-2 : 6e-2, rtol = dt == MT_FLOAT16 ? 2e-3 : 1.6e-2;
        for (int t = 0; t < 4; t++) {
            bool ta = t & 1, tb = t & 2;
            int64_t ad[3] = {B, ta ? K : M, ta ? M : K}, bd[3] = {1, tb ? N : K, tb ? K : N};
            int64_t cd[3] = {B, M, N};
            size_t na = (size_t)(B * M * K), nb = (size_t)(K * N), nc = (size_t)(B * M * N);
            double *av = malloc(na * 8), *bv = malloc(nb * 8), *cv = malloc(nc * 8);
            MT_CHECK(av && bv && cv);
            double *vals[3] = {av, bv, cv};
            size_t cnt[3] = {na, nb, nc};
            for (int v = 0; v < 3; v++)
                for (size_t i = 0; i < cnt[v]; i++) {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    vals[v][i] = (double)(rng >> 11) * 0x1p-52 - 1.0;
                }
            mt_array ga = {0}, gb = {0}, gc = {0}, ha = {0}, hb = {0}, hc = {0};
            mt_test_from_f64(&ga, dev, dt, 3, ad, av);
            mt_test_from_f64(&gb, dev, dt, 3, bd, bv);
            mt_test_from_f64(&gc, dev, dt, 3, cd, cv);
            mt_test_from_f64(&ha, host, dt, 3, ad, av);
            mt_test_from_f64(&hb, host, dt, 3, bd, bv);
            mt_test_from_f64(&hc, host, dt, 3, cd, cv);
            /* row-major operands: ld is the stored row length; B broadcasts (stride 0) */
            mt_status st = dev->ops->gemm(dev, dt, ta, tb, M, N, K, 0.5, ga.buf->handle,
                                          ga.offset, ad[2], M * K, gb.buf->handle, gb.offset,
                                          bd[2], 0, 0.25, gc.buf->handle, gc.offset, N, M * N, B,
                                          NULL);
            if (st == MT_ERR_DTYPE) MT_SKIP(mt_last_error()); /* no GemmEx for it here */
            MT_CHECK_OK(st);
            expect_calls++;
            MT_CHECK_OK(mt_array_gemm(&hc, &ha, &hb, 0.5, 0.25, ta, tb));
            double *g = mt_test_to_f64(&gc), *hv = mt_test_to_f64(&hc);
            char what[96];
            snprintf(what, sizeof what, "GemmEx %s ta=%d tb=%d batch=%lld", mt_dtype_name(dt),
                     ta, tb, (long long)B);
            mt_test_allclose(__FILE__, __LINE__, what, g, hv, nc, atol, rtol);
            free(g);
            free(hv);
            mt_array *arrs[] = {&ga, &gb, &gc, &ha, &hb, &hc};
            for (size_t i = 0; i < 6; i++) mt_array_clear(arrs[i]);
            free(av);
            free(bv);
            free(cv);
        }
    }
    MT_CHECK_EQ_INT(mt__cuda_gemmex_calls() - calls0, expect_calls);
    mt_device_release(host);
    mt_device_release(dev);
}

/* mt_array_gemm on float16 operands of cuda:0 agrees with the host whichever backend path
 * gemm.c takes (GemmEx, or float32 temporaries through cublasSgemm). */
MT_TEST(cuda_array_gemm_half_vs_host)
{
    mt_device *dev = mt_test_open_or_skip("cuda:0");
    mt_device *host = mt_test_open_or_skip("host");
    const int64_t M = 96, N = 80, K = 256;
    int64_t ad[2] = {M, K}, bd[2] = {K, N}, cd[2] = {M, N};
    double *av = malloc((size_t)(M * K) * 8), *bv = malloc((size_t)(K * N) * 8);
    MT_CHECK(av && bv);
    for (int64_t i = 0; i < M * K; i++) av[i] = sin(0.37 * (double)i);
    for (int64_t i = 0; i < K * N; i++) bv[i] = cos(0.11 * (double)i);
    mt_array ga = {0}, gb = {0}, gc = {0}, ha = {0}, hb = {0}, hc = {0};
    mt_test_from_f64(&ga, dev, MT_FLOAT16, 2, ad, av);
    mt_test_from_f64(&gb, dev, MT_FLOAT16, 2, bd, bv);
    mt_test_from_f64(&ha, host, MT_FLOAT16, 2, ad, av);
    mt_test_from_f64(&hb, host, MT_FLOAT16, 2, bd, bv);
    MT_CHECK_OK(mt_array_zeros(&gc, dev, MT_FLOAT16, 2, cd));
    MT_CHECK_OK(mt_array_zeros(&hc, host, MT_FLOAT16, 2, cd));
    uint64_t calls0 = mt__cuda_gemmex_calls();
    MT_CHECK_OK(mt_array_gemm(&gc, &ga, &gb, 1.0, 0.0, false, false));
    MT_CHECK_OK(mt_array_gemm(&hc, &ha, &hb, 1.0, 0.0, false, false));
    printf("mt_array_gemm float16 on cuda:0: %s\n",
           mt__cuda_gemmex_calls() > calls0 ? "cublasGemmEx" : "float32 temporaries");
    double *g = mt_test_to_f64(&gc), *hv = mt_test_to_f64(&hc);
    mt_test_allclose(__FILE__, __LINE__, "mt_array_gemm float16", g, hv, (size_t)(M * N), 5e-2,
                     1e-2);
    free(g);
    free(hv);
    mt_array *arrs[] = {&ga, &gb, &gc, &ha, &hb, &hc};
    for (size_t i = 0; i < 6; i++) mt_array_clear(arrs[i]);
    free(av);
    free(bv);
    mt_device_release(host);
    mt_device_release(dev);
}
