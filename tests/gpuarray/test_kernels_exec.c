/* Elementwise kernels: layouts, thread chunks, index and random nodes, aliasing, error paths,
 * the host compiler driver and its disk cache, and the CUDA / OpenCL renderings. */
#include <dirent.h>
#include <dlfcn.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "../../src/gpuarray/gpuarray_impl.h"
#include "mltrain/gpuarray.h"
#include "mt_test.h"
#include "kernels_helpers.h"


/* Strided kernels split over threads: chunks start and end in the middle of rows, the inner
 * stride is 2 or -2 elements, a row is broadcast; INDEX gives the flat C index. */
static void run_chunks_case(bool interp)
{
    set_interp(interp);
    mt_device *dev = open_host();
    enum { R = 3, L = 100003 };
    const int64_t dbase[2] = {R, 2 * L}, dy[2] = {R, L}, dz[1] = {L};
    float *X = malloc(sizeof(float) * R * 2 * L), *Y = malloc(sizeof(float) * R * L),
          *Z = malloc(sizeof(float) * L);
    MT_CHECK(X && Y && Z);
    for (int64_t i = 0; i < (int64_t)R * 2 * L; i++) X[i] = (float)(i % 1000) * 0.5f;
    for (int64_t i = 0; i < (int64_t)R * L; i++) Y[i] = (float)(i % 77) - 30.0f;
    for (int64_t i = 0; i < L; i++) Z[i] = (float)(i % 13) * 0.25f;
    mt_array xb = mk(dev, MT_FLOAT32, 2, dbase, X), y = mk(dev, MT_FLOAT32, 2, dy, Y);
    mt_array z = mk(dev, MT_FLOAT32, 1, dz, Z), xs, xn;
    mt_slice s1[2] = {mt_slice_all(), mt_slice_range(MT_SLICE_UNSET, MT_SLICE_UNSET, 2)};
    mt_slice s2[2] = {mt_slice_all(), mt_slice_range(MT_SLICE_UNSET, MT_SLICE_UNSET, -2)};
    MT_CHECK_OK(mt_array_slice(&xs, &xb, 2, s1));
    MT_CHECK_OK(mt_array_slice(&xn, &xb, 2, s2));
    mt_kexpr e;
    mt_kexpr_init(&e);
    int32_t a = mt_kexpr_input(&e, 0, MT_FLOAT32), b = mt_kexpr_input(&e, 1, MT_FLOAT32);
    int32_t c = mt_kexpr_input(&e, 2, MT_FLOAT32), d = mt_kexpr_input(&e, 3, MT_FLOAT32);
    int32_t r = mt_kexpr_binary(&e, MT_SOP_ADD, mt_kexpr_binary(&e, MT_SOP_MUL, a, b), c);
    r = mt_kexpr_binary(&e, MT_SOP_SUB, r, d);
    MT_CHECK_OK(mt_kexpr_add_output(&e, r));
    MT_CHECK_OK(mt_kexpr_add_output(&e, mt_kexpr_index(&e)));
    mt_array o0 = mk_empty(dev, MT_FLOAT32, 2, dy), o1 = mk_empty(dev, MT_INT64, 2, dy);
    mt_array ins[4] = {xs, y, z, xn}, outs[2] = {o0, o1};
    MT_CHECK_OK(ew(&e, 4, ins, 2, outs, 0, NULL));
    float *g = to_host(&o0);
    int64_t *gi = to_host(&o1);
    for (int64_t i = 0; i < R; i++)
        for (int64_t j = 0; j < L; j++) {
            float want = X[i * 2 * L + 2 * j] * Y[i * L + j] + Z[j] - X[i * 2 * L + 2 * L - 1 - 2 * j];
            if (g[i * L + j] != want || gi[i * L + j] != i * L + j)
                mt_test_fail(__FILE__, __LINE__, "[%lld,%lld]: got %g / %lld want %g / %lld",
                             (long long)i, (long long)j, g[i * L + j], (long long)gi[i * L + j],
                             want, (long long)(i * L + j));
        }
    free(g);
    free(gi);
    /* and a plain contiguous 1-D run over threads */
    mt_array f1, f2;
    MT_CHECK_OK(mt_array_flatten(&f1, &y));
    int64_t n = R * L;
    f2 = mk_empty(dev, MT_FLOAT32, 1, &n);
    mt_kexpr e2;
    mt_kexpr_init(&e2);
    int32_t u = mt_kexpr_input(&e2, 0, MT_FLOAT32);
    MT_CHECK_OK(mt_kexpr_add_output(&e2, mt_kexpr_binary(&e2, MT_SOP_MUL, u, u)));
    MT_CHECK_OK(ew(&e2, 1, &f1, 1, &f2, 0, NULL));
    g = to_host(&f2);
    for (int64_t i = 0; i < n; i++) MT_CHECK(g[i] == Y[i] * Y[i]);
    free(g);
    set_interp(false);
    mt_kexpr_deinit(&e);
    mt_kexpr_deinit(&e2);
    mt_array *all[] = {&xb, &y, &z, &xs, &xn, &o0, &o1, &f1, &f2};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) mt_array_clear(all[i]);
    free(X);
    free(Y);
    free(Z);
    mt_device_release(dev);
}

MT_TEST(thread_chunks_mid_row) { run_chunks_case(false); }
MT_TEST(thread_chunks_mid_row_interp) { run_chunks_case(true); }

MT_TEST(zero_d_and_empty)
{
    mt_device *dev = open_host();
    for (int pass = 0; pass < 2; pass++) {
        set_interp(pass == 1);
        double x = 2.5, y = -4.0;
        mt_array a = mk(dev, MT_FLOAT64, 0, NULL, &x), b = mk(dev, MT_FLOAT64, 0, NULL, &y);
        mt_array o = mk_empty(dev, MT_FLOAT64, 0, NULL);
        mt_kexpr e;
        mt_kexpr_init(&e);
        int32_t r = mt_kexpr_binary(&e, MT_SOP_POW, mt_kexpr_input(&e, 0, MT_FLOAT64),
                                    mt_kexpr_input(&e, 1, MT_FLOAT64));
        MT_CHECK_OK(mt_kexpr_add_output(&e, r));
        mt_array ins[2] = {a, b};
        MT_CHECK_OK(ew(&e, 2, ins, 1, &o, 0, NULL));
        double got;
        MT_CHECK_OK(mt_array_to_host(&got, 8, &o));
        MT_CHECK(got == pow(2.5, -4.0));
        /* size 0: OK, nothing written, broadcasting still checked */
        const int64_t d0[2] = {0, 3}, d1[2] = {1, 3}, d2[2] = {2, 3};
        mt_array z = mk_empty(dev, MT_FLOAT64, 2, d0), r1 = mk_empty(dev, MT_FLOAT64, 2, d1);
        mt_array r2 = mk_empty(dev, MT_FLOAT64, 2, d2);
        mt_array zi[2] = {r1, a};
        MT_CHECK_OK(ew(&e, 2, zi, 1, &z, 0, NULL));
        mt_array bad[2] = {r2, a};
        MT_CHECK_ERR(ew(&e, 2, bad, 1, &z, 0, NULL), MT_ERR_SHAPE, "input 0 of shape (2, 3)");
        mt_kexpr_deinit(&e);
        mt_array *all[] = {&a, &b, &o, &z, &r1, &r2};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) mt_array_clear(all[i]);
    }
    set_interp(false);
    mt_device_release(dev);
}

MT_TEST(multi_output_and_params)
{
    mt_device *dev = open_host();
    enum { N = 37 };
    float X[N];
    int32_t Y[N];
    for (int i = 0; i < N; i++) {
        X[i] = (float)(i - 18) * 0.37f;
        Y[i] = (i - 18) * 1000003;
    }
    int64_t n = N;
    mt_array in[2] = {mk(dev, MT_FLOAT32, 1, &n, X), mk(dev, MT_INT32, 1, &n, Y)};
    const mt_dtype od[6] = {MT_FLOAT16, MT_INT8, MT_BOOL, MT_UINT64, MT_FLOAT64, MT_INT16};
    mt_array out[6];
    for (int j = 0; j < 6; j++) out[j] = mk_empty(dev, od[j], 1, &n);
    mt_kexpr e;
    mt_kexpr_init(&e);
    int32_t x = mt_kexpr_input(&e, 0, MT_FLOAT32), y = mt_kexpr_input(&e, 1, MT_INT32);
    MT_CHECK_OK(mt_kexpr_add_output(&e, mt_kexpr_binary(&e, MT_SOP_MUL, mt_kexpr_cast(&e, x, MT_FLOAT16), mt_kexpr_param(&e, 0, MT_FLOAT16))));
    MT_CHECK_OK(mt_kexpr_add_output(&e, mt_kexpr_binary(&e, MT_SOP_ADD, mt_kexpr_cast(&e, y, MT_INT8), mt_kexpr_param(&e, 1, MT_INT8))));
    int32_t pos = mt_kexpr_binary(&e, MT_SOP_GT, x, mt_kexpr_const(&e, mt_scalar_f64(0), MT_FLOAT32));
    MT_CHECK_OK(mt_kexpr_add_output(&e, mt_kexpr_binary(&e, MT_SOP_AND, mt_kexpr_param(&e, 2, MT_BOOL), pos)));
    MT_CHECK_OK(mt_kexpr_add_output(&e, mt_kexpr_binary(&e, MT_SOP_ADD, mt_kexpr_cast(&e, y, MT_UINT64), mt_kexpr_param(&e, 3, MT_UINT64))));
    MT_CHECK_OK(mt_kexpr_add_output(&e, mt_kexpr_binary(&e, MT_SOP_ADD, mt_kexpr_cast(&e, x, MT_FLOAT64), mt_kexpr_param(&e, 4, MT_FLOAT64))));
    MT_CHECK_OK(mt_kexpr_add_output(&e, mt_kexpr_binary(&e, MT_SOP_SUB, mt_kexpr_cast(&e, y, MT_INT16), mt_kexpr_param(&e, 6, MT_INT16))));
    const mt_scalar prm[7] = {mt_scalar_f64(1.0 / 3.0), mt_scalar_i64(300), mt_scalar_i64(5),
                              mt_scalar_u64((1ull << 63) + 5), mt_scalar_f64(0.1),
                              mt_scalar_f64(99.0) /* unused */, mt_scalar_i64(-40000)};
    uint8_t *prev[6] = {0};
    for (int pass = 0; pass < 2; pass++) {
        set_interp(pass == 1);
        MT_CHECK_OK(ew(&e, 2, in, 6, out, 7, prm));
        uint16_t *g0 = to_host(&out[0]);
        int8_t *g1 = to_host(&out[1]);
        uint8_t *g2 = to_host(&out[2]);
        uint64_t *g3 = to_host(&out[3]);
        double *g4 = to_host(&out[4]);
        int16_t *g5 = to_host(&out[5]);
        float p0 = mt_f16_to_f32(mt_f64_to_f16(1.0 / 3.0));
        for (int i = 0; i < N; i++) {
            float hx = mt_f16_to_f32(mt_f32_to_f16(X[i]));
            MT_CHECK_EQ_INT(g0[i], mt_f32_to_f16(hx * p0));
            MT_CHECK_EQ_INT(g1[i], (int8_t)(uint8_t)((unsigned)(uint8_t)Y[i] + 44u));
            MT_CHECK_EQ_INT(g2[i], X[i] > 0);
            MT_CHECK(g3[i] == (uint64_t)(int64_t)Y[i] + (1ull << 63) + 5);
            MT_CHECK(g4[i] == (double)X[i] + 0.1);
            MT_CHECK_EQ_INT(g5[i], (int16_t)(uint16_t)((unsigned)(uint16_t)Y[i] - 25536u));
        }
        uint8_t *gs[6] = {(uint8_t *)g0, (uint8_t *)g1, g2, (uint8_t *)g3, (uint8_t *)g4, (uint8_t *)g5};
        for (int j = 0; j < 6; j++) {
            if (pass == 1) {
                MT_CHECK(memcmp(prev[j], gs[j], N * dsz(od[j])) == 0);
                free(prev[j]);
                free(gs[j]);
            } else {
                prev[j] = gs[j];
            }
        }
    }
    /* too few params */
    MT_CHECK_ERR(ew(&e, 2, in, 6, out, 5, prm), MT_ERR_INVALID, "reads param 6 but 5 params");
    set_interp(false);
    mt_kexpr_deinit(&e);
    for (int j = 0; j < 6; j++) mt_array_clear(&out[j]);
    mt_array_clear(&in[0]);
    mt_array_clear(&in[1]);
    mt_device_release(dev);
}

/* ---------------------------------------------------------------- index and random numbers */

MT_TEST(index_is_c_order)
{
    mt_device *dev = open_host();
    const int64_t dims[3] = {3, 4, 5};
    mt_array o;
    MT_CHECK_OK(mt_array_empty(&o, dev, MT_INT64, 3, dims, 'F'));
    mt_kexpr e;
    mt_kexpr_init(&e);
    int32_t k2 = mt_kexpr_const(&e, mt_scalar_i64(2), MT_INT64);
    MT_CHECK_OK(mt_kexpr_add_output(&e, mt_kexpr_binary(&e, MT_SOP_MUL, mt_kexpr_index(&e), k2)));
    for (int pass = 0; pass < 2; pass++) {
        set_interp(pass == 1);
        MT_CHECK_OK(ew(&e, 0, NULL, 1, &o, 0, NULL));
        int64_t *g = to_host(&o); /* logical C order */
        for (int64_t i = 0; i < 60; i++) MT_CHECK_EQ_INT(g[i], 2 * i);
        free(g);
    }
    set_interp(false);
    mt_kexpr_deinit(&e);
    mt_array_clear(&o);
    mt_device_release(dev);
}

static double unit53(uint32_t hi, uint32_t lo)
{
    return (double)((((uint64_t)hi << 32) | lo) >> 11) * 0x1p-53;
}

MT_TEST(rand_reproducible_and_in_range)
{
    /* Random123's known answer for Philox4x32-10 with zero counter and key */
    const uint32_t zc[4] = {0, 0, 0, 0}, zk[2] = {0, 0};
    uint32_t kat[4];
    mt_philox4x32(zc, zk, kat);
    MT_CHECK(kat[0] == 0x6627e8d5u && kat[1] == 0xe169c58du && kat[2] == 0xbc57ac4cu &&
             kat[3] == 0x9b00dbd8u);

    mt_device *dev = open_host();
    enum { N = 1 << 20 };
    int64_t n = N;
    const mt_dtype od[6] = {MT_FLOAT32, MT_FLOAT64, MT_FLOAT32, MT_FLOAT64, MT_FLOAT16, MT_BFLOAT16};
    mt_array out[6];
    for (int j = 0; j < 6; j++) out[j] = mk_empty(dev, od[j], 1, &n);
    mt_kexpr e;
    mt_kexpr_init(&e);
    MT_CHECK_OK(mt_kexpr_add_output(&e, mt_kexpr_rand(&e, MT_SOP_RAND_UNIFORM, 0, MT_FLOAT32)));
    MT_CHECK_OK(mt_kexpr_add_output(&e, mt_kexpr_rand(&e, MT_SOP_RAND_UNIFORM, 0, MT_FLOAT64)));
    MT_CHECK_OK(mt_kexpr_add_output(&e, mt_kexpr_rand(&e, MT_SOP_RAND_NORMAL, 0, MT_FLOAT32)));
    MT_CHECK_OK(mt_kexpr_add_output(&e, mt_kexpr_rand(&e, MT_SOP_RAND_NORMAL, 0, MT_FLOAT64)));
    MT_CHECK_OK(mt_kexpr_add_output(&e, mt_kexpr_rand(&e, MT_SOP_RAND_UNIFORM, 0, MT_FLOAT16)));
    MT_CHECK_OK(mt_kexpr_add_output(&e, mt_kexpr_rand(&e, MT_SOP_RAND_UNIFORM, 0, MT_BFLOAT16)));
    const uint64_t seed = 0x123456789abcdefull, off = 1000;
    mt_scalar prm[2] = {mt_scalar_u64(seed), mt_scalar_u64(off)};
    void *res[2][6];
    for (int pass = 0; pass < 2; pass++) {
        set_interp(pass == 1);
        MT_CHECK_OK(ew(&e, 0, NULL, 6, out, 2, prm));
        for (int j = 0; j < 6; j++) res[pass][j] = to_host(&out[j]);
        float *u32 = res[pass][0], *z32 = res[pass][2];
        double *u64 = res[pass][1], *z64 = res[pass][3];
        uint16_t *h = res[pass][4], *bh = res[pass][5];
        const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
        double s1 = 0, sz = 0, sz2 = 0;
        for (int64_t i = 0; i < N; i++) {
            uint64_t c = (uint64_t)i + off;
            const uint32_t ctr[4] = {(uint32_t)c, (uint32_t)(c >> 32), 0, 0};
            uint32_t w[4];
            mt_philox4x32(ctr, key, w);
            float uf = (float)(w[0] >> 8) * 0x1p-24f;
            double ud = unit53(w[0], w[1]);
            if (u32[i] != uf || u64[i] != ud || !(u32[i] >= 0 && u32[i] < 1) || !(u64[i] < 1))
                mt_test_fail(__FILE__, __LINE__, "uniform %lld: %.9g %.17g want %.9g %.17g",
                             (long long)i, u32[i], u64[i], uf, ud);
            float zf = sqrtf(-2.0f * logf(1.0f - (float)(w[0] >> 8) * 0x1p-24f)) *
                       cosf(6.28318530717958647692f * ((float)(w[1] >> 8) * 0x1p-24f));
            double zd = sqrt(-2.0 * log(1.0 - unit53(w[0], w[1]))) *
                        cos(6.283185307179586476925286766559 * unit53(w[2], w[3]));
            MT_CHECK(close_ulps(MT_FLOAT32, z32[i], zf, 2) && close_ulps(MT_FLOAT64, z64[i], zd, 2));
            float hf = mt_f16_to_f32(h[i]), bf = mt_bf16_to_f32(bh[i]);
            MT_CHECK(hf == (float)(w[0] >> 21) * 0x1p-11f && hf < 1.0f);
            MT_CHECK(bf == (float)(w[0] >> 24) * 0x1p-8f && bf < 1.0f);
            s1 += u32[i];
            sz += z64[i];
            sz2 += z64[i] * z64[i];
        }
        MT_CHECK(fabs(s1 / N - 0.5) < 0.002);
        MT_CHECK(fabs(sz / N) < 0.005 && fabs(sz2 / N - 1.0) < 0.01);
    }
    for (int j = 0; j < 6; j++) {
        MT_CHECK(memcmp(res[0][j], res[1][j], N * dsz(od[j])) == 0);
        free(res[1][j]);
    }
    /* same seed again: same numbers; offset k shifts the stream by k; another seed differs */
    set_interp(false);
    mt_scalar p2[2] = {mt_scalar_u64(seed), mt_scalar_u64(off + 17)};
    MT_CHECK_OK(ew(&e, 0, NULL, 6, out, 2, p2));
    float *sh = to_host(&out[0]), *r0 = res[0][0];
    for (int64_t i = 0; i + 17 < N; i++) MT_CHECK(sh[i] == r0[i + 17]);
    free(sh);
    mt_scalar p3[2] = {mt_scalar_u64(seed + 1), mt_scalar_u64(off)};
    MT_CHECK_OK(ew(&e, 0, NULL, 6, out, 2, p3));
    float *other = to_host(&out[0]);
    int64_t same = 0;
    for (int64_t i = 0; i < N; i++) same += other[i] == r0[i];
    MT_CHECK(same < N / 1000);
    free(other);
    for (int j = 0; j < 6; j++) free(res[0][j]);
    mt_kexpr_deinit(&e);
    for (int j = 0; j < 6; j++) mt_array_clear(&out[j]);
    mt_device_release(dev);
}

/* ---------------------------------------------------------------- aliasing */

MT_TEST(inplace_and_overlap)
{
    mt_device *dev = open_host();
    for (int pass = 0; pass < 2; pass++) {
        set_interp(pass == 1);
        float v[10];
        for (int i = 0; i < 10; i++) v[i] = (float)i + 1;
        int64_t n = 10;
        mt_array a = mk(dev, MT_FLOAT32, 1, &n, v);
        mt_kexpr e;
        mt_kexpr_init(&e);
        int32_t x = mt_kexpr_input(&e, 0, MT_FLOAT32);
        MT_CHECK_OK(mt_kexpr_add_output(&e, mt_kexpr_binary(&e, MT_SOP_MUL, x, mt_kexpr_const(&e, mt_scalar_f64(2), MT_FLOAT32))));
        /* exact alias: a = a * 2 */
        MT_CHECK_OK(ew(&e, 1, &a, 1, &a, 0, NULL));
        float *g = to_host(&a);
        for (int i = 0; i < 10; i++) MT_CHECK(g[i] == 2.0f * (float)(i + 1));
        free(g);
        /* partial overlap: a[1:] = a[:-1] * 2 reads every input before writing (NumPy) */
        mt_array lo, hi;
        mt_slice sl = mt_slice_range(0, 9, 1), sh = mt_slice_range(1, 10, 1);
        MT_CHECK_OK(mt_array_slice(&lo, &a, 1, &sl));
        MT_CHECK_OK(mt_array_slice(&hi, &a, 1, &sh));
        MT_CHECK_OK(ew(&e, 1, &lo, 1, &hi, 0, NULL));
        g = to_host(&a);
        MT_CHECK(g[0] == 2.0f);
        for (int i = 1; i < 10; i++) MT_CHECK(g[i] == 4.0f * (float)i);
        free(g);
        /* reversed view onto itself: a = a[::-1] + 0 */
        mt_array rv;
        mt_slice sr = mt_slice_range(MT_SLICE_UNSET, MT_SLICE_UNSET, -1);
        MT_CHECK_OK(mt_array_slice(&rv, &a, 1, &sr));
        float before[10];
        MT_CHECK_OK(mt_array_to_host(before, sizeof before, &a));
        MT_CHECK_OK(ew(&e, 1, &rv, 1, &a, 0, NULL));
        g = to_host(&a);
        for (int i = 0; i < 10; i++) MT_CHECK(g[i] == 2.0f * before[9 - i]);
        free(g);
        mt_kexpr_deinit(&e);
        mt_array_clear(&lo);
        mt_array_clear(&hi);
        mt_array_clear(&rv);
        mt_array_clear(&a);
    }
    set_interp(false);
    mt_device_release(dev);
}

/* ---------------------------------------------------------------- error paths */

MT_TEST(elemwise_errors)
{
    mt_device *dev = open_host();
    const int64_t d23[2] = {2, 3}, d32[2] = {3, 2}, d4[1] = {4}, d3[1] = {3};
    mt_array f = mk_empty(dev, MT_FLOAT32, 2, d23), g = mk_empty(dev, MT_FLOAT32, 2, d23);
    mt_array i32 = mk_empty(dev, MT_INT32, 2, d23), f32b = mk_empty(dev, MT_FLOAT32, 2, d32);
    mt_array v4 = mk_empty(dev, MT_FLOAT32, 1, d4), v3 = mk_empty(dev, MT_FLOAT32, 1, d3);
    mt_array bc;
    MT_CHECK_OK(mt_array_broadcast_to(&bc, &v3, 2, d23));
    mt_kexpr e;
    mt_kexpr_init(&e);
    int32_t a = mt_kexpr_input(&e, 0, MT_FLOAT32), b = mt_kexpr_input(&e, 1, MT_FLOAT32);
    MT_CHECK_OK(mt_kexpr_add_output(&e, mt_kexpr_binary(&e, MT_SOP_ADD, a, b)));
    mt_array ins[2] = {f, g};
    MT_CHECK_ERR(ew(&e, 1, ins, 1, &g, 0, NULL), MT_ERR_INVALID, "reads input 1 but 1 inputs");
    mt_array bad_dt[2] = {f, i32};
    MT_CHECK_ERR(ew(&e, 2, bad_dt, 1, &g, 0, NULL), MT_ERR_DTYPE, "input 1 has dtype int32");
    MT_CHECK_ERR(ew(&e, 2, ins, 1, &i32, 0, NULL), MT_ERR_DTYPE, "output 0 has dtype int32");
    mt_array bad_sh[2] = {v4, g};
    MT_CHECK_ERR(ew(&e, 2, bad_sh, 1, &g, 0, NULL), MT_ERR_SHAPE, "input 0 of shape (4,)");
    mt_array ok_bc[2] = {v3, g}; /* (3,) broadcasts against (2, 3) */
    MT_CHECK_OK(ew(&e, 2, ok_bc, 1, &g, 0, NULL));
    MT_CHECK_ERR(ew(&e, 2, ins, 1, &bc, 0, NULL), MT_ERR_INVALID, "read-only");
    mt_kexpr e2;
    mt_kexpr_init(&e2);
    int32_t x = mt_kexpr_input(&e2, 0, MT_FLOAT32);
    MT_CHECK_OK(mt_kexpr_add_output(&e2, x));
    MT_CHECK_OK(mt_kexpr_add_output(&e2, x));
    mt_array two[2] = {g, f32b};
    MT_CHECK_ERR(ew(&e2, 1, &f, 2, two, 0, NULL), MT_ERR_SHAPE, "output 1 has shape (3, 2)");
    mt_array *nul[1] = {NULL};
    const mt_array *ip[1] = {&f};
    MT_CHECK_ERR(mt_elemwise(&e, 1, ip, nul, 0, NULL), MT_ERR_INVALID, NULL);
    MT_CHECK_ERR(mt_elemwise(NULL, 1, ip, nul, 0, NULL), MT_ERR_INVALID, "NULL expression");
    mt_kexpr e3;
    mt_kexpr_init(&e3);
    (void)mt_kexpr_input(&e3, 0, MT_FLOAT32);
    MT_CHECK_ERR(ew(&e3, 1, &f, 1, &g, 0, NULL), MT_ERR_INVALID, "0 outputs");
    mt_kexpr e4;
    mt_kexpr_init(&e4);
    MT_CHECK_OK(mt_kexpr_add_output(&e4, mt_kexpr_param(&e4, 0, MT_FLOAT32)));
    MT_CHECK_ERR(ew(&e4, 0, NULL, 1, &g, 0, NULL), MT_ERR_INVALID, "reads param 0 but 0 params");
    /* arrays on two devices */
    mt_device *cl = NULL;
    if (mt_device_open(&cl, "opencl") == MT_OK) {
        mt_array fc = mk_empty(cl, MT_FLOAT32, 2, d23);
        mt_array mix[2] = {f, fc};
        MT_CHECK_ERR(ew(&e, 2, mix, 1, &g, 0, NULL), MT_ERR_DEVICE, "input 1 is on opencl");
        mt_array_clear(&fc);
        mt_device_release(cl);
    }
    mt_kexpr_deinit(&e);
    mt_kexpr_deinit(&e2);
    mt_kexpr_deinit(&e3);
    mt_kexpr_deinit(&e4);
    mt_array *all[] = {&f, &g, &i32, &f32b, &v4, &v3, &bc};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) mt_array_clear(all[i]);
    mt_device_release(dev);
}

/* ---------------------------------------------------------------- the host compiler driver */

/* Number of directory entries whose name ends with `suffix` (or starts with it if prefix). */
static int count_files(const char *dir, const char *pat, bool prefix)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name), k = strlen(pat);
        if (prefix ? strncmp(de->d_name, pat, k) == 0
                   : (l >= k && strcmp(de->d_name + l - k, pat) == 0))
            n++;
    }
    closedir(d);
    return n;
}

static void fresh_cache(char *dir, size_t len, const char *name)
{
    snprintf(dir, len, "%s/%s", mt_test_tmpdir(), name);
    mkdir(dir, 0700);
    setenv("MLTRAIN_CACHE_DIR", dir, 1);
}

MT_TEST(hostcc_errors)
{
    need_cc();
    char dir[600];
    fresh_cache(dir, sizeof dir, "cc-errors");
    void *fn = NULL, *dl = NULL;
    MT_CHECK_ERR(mt__hostcc_build("int f(void) { return undeclared_thing; }\n", "f", &fn, &dl),
                 MT_ERR_COMPILE, "undeclared_thing");
    MT_CHECK(strstr(mt_last_error(), "source kept at") && strstr(mt_last_error(), "error"));
    MT_CHECK_EQ_INT(count_files(dir, "-failed.c", false), 1);
    MT_CHECK_EQ_INT(count_files(dir, ".tmp-", true), 0);
    MT_CHECK_EQ_INT(count_files(dir, ".so", false), 0);
    MT_CHECK(fn == NULL && dl == NULL);
    /* a good source without the entry symbol */
    MT_CHECK_ERR(mt__hostcc_build("int g(void) { return 1; }\n", "f", &fn, &dl), MT_ERR_COMPILE,
                 "no symbol 'f'");
    /* a good source: callable */
    MT_CHECK_OK(mt__hostcc_build("int f(int x) { return 3 * x + 1; }\n", "f", &fn, &dl));
    MT_CHECK_EQ_INT(((int (*)(int))fn)(4), 13);
    dlclose(dl);
    /* compilation disabled or impossible: NOT_BUILT, and elemwise falls back to the interpreter */
    setenv("MLTRAIN_NO_CC", "1", 1);
    MT_CHECK(!mt__hostcc_available());
    MT_CHECK_ERR(mt__hostcc_build("int f(void) { return 0; }\n", "f", &fn, &dl), MT_ERR_NOT_BUILT,
                 "MLTRAIN_NO_CC");
    unsetenv("MLTRAIN_NO_CC");
    setenv("MLTRAIN_CC", "/nonexistent/bin/cc", 1);
    MT_CHECK(!mt__hostcc_available());
    MT_CHECK_ERR(mt__hostcc_build("int f(void) { return 0; }\n", "f", &fn, &dl), MT_ERR_NOT_BUILT,
                 "cannot be run");
    mt_device *dev = open_host();
    int64_t n = 5;
    const float v[5] = {1, 2, 3, 4, 5};
    mt_array a = mk(dev, MT_FLOAT32, 1, &n, v), o = mk_empty(dev, MT_FLOAT32, 1, &n);
    mt_kexpr e;
    mt_kexpr_init(&e);
    int32_t x = mt_kexpr_input(&e, 0, MT_FLOAT32);
    MT_CHECK_OK(mt_kexpr_add_output(&e, mt_kexpr_unary(&e, MT_SOP_SQUARE, mt_kexpr_binary(&e, MT_SOP_SUB, x, mt_kexpr_const(&e, mt_scalar_f64(0.5), MT_FLOAT32)))));
    MT_CHECK_OK(ew(&e, 1, &a, 1, &o, 0, NULL));
    float *g = to_host(&o);
    for (int i = 0; i < 5; i++) MT_CHECK(g[i] == (v[i] - 0.5f) * (v[i] - 0.5f));
    free(g);
    MT_CHECK_EQ_INT(count_files(dir, ".so", false), 2); /* g and f above; nothing new */
    unsetenv("MLTRAIN_CC");
    mt_kexpr_deinit(&e);
    mt_array_clear(&a);
    mt_array_clear(&o);
    mt_device_release(dev);
}

/* Runs a*b+c with a kernel-specific constant through mt_elemwise in this process (a fresh
 * device), checks the result; returns 0 on success. */
static int child_elemwise(double k)
{
    mt_device *dev = NULL;
    if (mt_device_open(&dev, "host") != MT_OK) return 2;
    enum { N = 1000 };
    float a[N], b[N];
    for (int i = 0; i < N; i++) {
        a[i] = (float)i;
        b[i] = 0.5f;
    }
    int64_t n = N;
    mt_array in[2], o;
    if (mt_array_from_host(&in[0], dev, MT_FLOAT32, 1, &n, a) ||
        mt_array_from_host(&in[1], dev, MT_FLOAT32, 1, &n, b) ||
        mt_array_empty(&o, dev, MT_FLOAT32, 1, &n, 'C'))
        return 3;
    mt_kexpr e;
    mt_kexpr_init(&e);
    int32_t x = mt_kexpr_input(&e, 0, MT_FLOAT32), y = mt_kexpr_input(&e, 1, MT_FLOAT32);
    int32_t r = mt_kexpr_binary(&e, MT_SOP_ADD, mt_kexpr_binary(&e, MT_SOP_MUL, x, y),
                                mt_kexpr_const(&e, mt_scalar_f64(k), MT_FLOAT32));
    if (mt_kexpr_add_output(&e, r) != MT_OK) return 4;
    if (ew(&e, 2, in, 1, &o, 0, NULL) != MT_OK) {
        fprintf(stderr, "child: %s\n", mt_last_error());
        return 5;
    }
    float g[N];
    if (mt_array_to_host(g, sizeof g, &o) != MT_OK) return 6;
    for (int i = 0; i < N; i++)
        if (g[i] != a[i] * b[i] + (float)k) return 7;
    mt_kexpr_deinit(&e);
    mt_array_clear(&in[0]);
    mt_array_clear(&in[1]);
    mt_array_clear(&o);
    mt_device_release(dev);
    return 0;
}

/* Forks a child running child_elemwise(k); returns its exit code and how long it took. */
static int fork_elemwise(double k, double *seconds)
{
    fflush(NULL);
    double t0 = mt_now_seconds();
    pid_t pid = fork();
    MT_CHECK(pid >= 0);
    if (pid == 0) _exit(child_elemwise(k));
    int status = 0;
    MT_CHECK(waitpid(pid, &status, 0) == pid);
    if (seconds) *seconds = mt_now_seconds() - t0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status);
}

MT_TEST(disk_cache_second_process)
{
    need_cc();
    char dir[600];
    fresh_cache(dir, sizeof dir, "cache2");
    double t1, t2;
    MT_CHECK_EQ_INT(fork_elemwise(1.25, &t1), 0);
    MT_CHECK_EQ_INT(count_files(dir, ".so", false), 1);
    MT_CHECK_EQ_INT(count_files(dir, ".tmp-", true), 0);
    char so[1200] = {0};
    DIR *d = opendir(dir);
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strstr(de->d_name, ".so")) snprintf(so, sizeof so, "%s/%s", dir, de->d_name);
    closedir(d);
    struct stat s1, s2;
    MT_CHECK(stat(so, &s1) == 0);
    MT_CHECK_EQ_INT(fork_elemwise(1.25, &t2), 0); /* a new process finds the entry */
    MT_CHECK(stat(so, &s2) == 0);
    MT_CHECK_EQ_INT(count_files(dir, ".so", false), 1);
    MT_CHECK(s1.st_ino == s2.st_ino && s1.st_mtime == s2.st_mtime); /* not rebuilt */
    printf("first process %.3f s (compiles), second %.3f s (loads the cached entry)\n", t1, t2);
    MT_CHECK(t2 < t1);
    /* a corrupt entry is detected by dlopen and rebuilt */
    FILE *f = fopen(so, "w");
    MT_CHECK(f);
    fputs("not an ELF file", f);
    fclose(f);
    MT_CHECK_EQ_INT(fork_elemwise(1.25, NULL), 0);
    MT_CHECK(stat(so, &s2) == 0 && s2.st_size > 100);
}

/* 8 processes at once into one empty cache: the same kernel and per-process kernels, built
 * through hostcc directly and through mt_elemwise. */
MT_TEST(disk_cache_concurrent_processes)
{
    need_cc();
    char dir[600];
    fresh_cache(dir, sizeof dir, "cache8");
    enum { P = 8 };
    pid_t pids[P];
    fflush(NULL);
    for (int p = 0; p < P; p++) {
        pids[p] = fork();
        MT_CHECK(pids[p] >= 0);
        if (pids[p] != 0) continue;
        char src[256];
        void *fn, *dl;
        /* shared by all */
        if (mt__hostcc_build("long f(long x) { return x * 7 + 3; }\n", "f", &fn, &dl) != MT_OK) _exit(10);
        if (((long (*)(long))fn)(5) != 38) _exit(11);
        /* one of four per-process kernels */
        snprintf(src, sizeof src, "long g(long x) { return x * %d; }\n", 100 + p % 4);
        if (mt__hostcc_build(src, "g", &fn, &dl) != MT_OK) _exit(12);
        if (((long (*)(long))fn)(2) != 2 * (100 + p % 4)) _exit(13);
        _exit(child_elemwise(p % 2 ? 0.5 : 2.0));
    }
    for (int p = 0; p < P; p++) {
        int status = 0;
        MT_CHECK(waitpid(pids[p], &status, 0) == pids[p]);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            mt_test_fail(__FILE__, __LINE__, "child %d failed (status %#x)", p, status);
    }
    MT_CHECK_EQ_INT(count_files(dir, ".so", false), 1 + 4 + 2);
    MT_CHECK_EQ_INT(count_files(dir, ".tmp-", true), 0);
    MT_CHECK_EQ_INT(count_files(dir, ".c", false), 0);
    /* every entry is a complete, loadable library */
    DIR *d = opendir(dir);
    struct dirent *de;
    int loaded = 0;
    while ((de = readdir(d)) != NULL) {
        if (!strstr(de->d_name, ".so")) continue;
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!h) mt_test_fail(__FILE__, __LINE__, "dlopen %s: %s", path, dlerror());
        dlclose(h);
        loaded++;
    }
    closedir(d);
    MT_CHECK_EQ_INT(loaded, 7);
}

/* ---------------------------------------------------------------- CUDA and OpenCL renderings */

/* Expressions covering the code paths of the renderers: contiguous and strided layouts, 16-bit
 * floats, float64, params of every passing class, RAND and INDEX, integer helpers, casts. */
static int build_render_set(mt_kexpr *ex, mt_device *dev, mt_array *arrs)
{
    int k = 0;
    /* 0: a*b+c float32 */
    mt_kexpr_init(&ex[k]);
    int32_t a = mt_kexpr_input(&ex[k], 0, MT_FLOAT32), b = mt_kexpr_input(&ex[k], 1, MT_FLOAT32);
    int32_t c = mt_kexpr_input(&ex[k], 2, MT_FLOAT32);
    MT_CHECK_OK(mt_kexpr_add_output(&ex[k], mt_kexpr_binary(&ex[k], MT_SOP_ADD, mt_kexpr_binary(&ex[k], MT_SOP_MUL, a, b), c)));
    k++;
    /* 1: float16 / bfloat16 math with params, bool and int8 outputs */
    mt_kexpr_init(&ex[k]);
    int32_t h = mt_kexpr_input(&ex[k], 0, MT_FLOAT16), bf = mt_kexpr_input(&ex[k], 1, MT_BFLOAT16);
    int32_t s = mt_kexpr_binary(&ex[k], MT_SOP_LOGADDEXP, mt_kexpr_unary(&ex[k], MT_SOP_SIGMOID, h),
                                mt_kexpr_cast(&ex[k], mt_kexpr_unary(&ex[k], MT_SOP_SOFTPLUS, bf), MT_FLOAT16));
    s = mt_kexpr_binary(&ex[k], MT_SOP_MUL, s, mt_kexpr_param(&ex[k], 0, MT_FLOAT16));
    MT_CHECK_OK(mt_kexpr_add_output(&ex[k], s));
    int32_t pb = mt_kexpr_param(&ex[k], 1, MT_BOOL);
    MT_CHECK_OK(mt_kexpr_add_output(&ex[k], mt_kexpr_binary(&ex[k], MT_SOP_XOR, pb, mt_kexpr_unary(&ex[k], MT_SOP_ISNAN, h))));
    MT_CHECK_OK(mt_kexpr_add_output(&ex[k], mt_kexpr_binary(&ex[k], MT_SOP_ADD, mt_kexpr_cast(&ex[k], bf, MT_INT8), mt_kexpr_param(&ex[k], 2, MT_INT8))));
    k++;
    /* 2: float64 with RAND, INDEX, log1mexp, floor division, float -> uint64 */
    mt_kexpr_init(&ex[k]);
    int32_t d = mt_kexpr_input(&ex[k], 0, MT_FLOAT64);
    int32_t r = mt_kexpr_rand(&ex[k], MT_SOP_RAND_NORMAL, 0, MT_FLOAT64);
    int32_t u = mt_kexpr_rand(&ex[k], MT_SOP_RAND_UNIFORM, 0, MT_FLOAT32);
    r = mt_kexpr_binary(&ex[k], MT_SOP_FLOORDIV, mt_kexpr_binary(&ex[k], MT_SOP_ADD, r, d), mt_kexpr_cast(&ex[k], u, MT_FLOAT64));
    r = mt_kexpr_binary(&ex[k], MT_SOP_ADD, r, mt_kexpr_unary(&ex[k], MT_SOP_LOG1MEXP, mt_kexpr_cast(&ex[k], mt_kexpr_index(&ex[k]), MT_FLOAT64)));
    MT_CHECK_OK(mt_kexpr_add_output(&ex[k], r));
    MT_CHECK_OK(mt_kexpr_add_output(&ex[k], mt_kexpr_cast(&ex[k], d, MT_UINT64)));
    MT_CHECK_OK(mt_kexpr_add_output(&ex[k], mt_kexpr_cast(&ex[k], d, MT_BFLOAT16)));
    k++;
    /* 3: integer helpers */
    mt_kexpr_init(&ex[k]);
    int32_t i = mt_kexpr_input(&ex[k], 0, MT_INT32), j = mt_kexpr_input(&ex[k], 1, MT_INT64);
    int32_t ij = mt_kexpr_cast(&ex[k], i, MT_INT64);
    int32_t q = mt_kexpr_binary(&ex[k], MT_SOP_MOD, mt_kexpr_binary(&ex[k], MT_SOP_POW, ij, j), mt_kexpr_binary(&ex[k], MT_SOP_FLOORDIV, j, ij));
    q = mt_kexpr_binary(&ex[k], MT_SOP_RSHIFT, mt_kexpr_binary(&ex[k], MT_SOP_LSHIFT, q, j), j);
    q = mt_kexpr_where(&ex[k], mt_kexpr_binary(&ex[k], MT_SOP_GE, q, ij), mt_kexpr_unary(&ex[k], MT_SOP_ABS, q), mt_kexpr_unary(&ex[k], MT_SOP_SIGN, q));
    MT_CHECK_OK(mt_kexpr_add_output(&ex[k], q));
    MT_CHECK_OK(mt_kexpr_add_output(&ex[k], mt_kexpr_cast(&ex[k], mt_kexpr_binary(&ex[k], MT_SOP_BITXOR, i, mt_kexpr_param(&ex[k], 0, MT_INT32)), MT_FLOAT16)));
    MT_CHECK_OK(mt_kexpr_add_output(&ex[k], mt_kexpr_cast(&ex[k], mt_kexpr_binary(&ex[k], MT_SOP_MUL, mt_kexpr_cast(&ex[k], i, MT_UINT16), mt_kexpr_param(&ex[k], 1, MT_UINT16)), MT_FLOAT32)));
    k++;
    /* arrays: [0..2] contiguous f32 (64), [3] strided f32 view, [4] row f32, plus per-expr args */
    int64_t n = 64;
    const int64_t d2[2] = {8, 8}, d8[1] = {8}, d16[2] = {8, 16};
    arrs[0] = mk_empty(dev, MT_FLOAT32, 1, &n);
    arrs[1] = mk_empty(dev, MT_FLOAT16, 2, d2);
    arrs[2] = mk_empty(dev, MT_BFLOAT16, 1, d8);
    arrs[3] = mk_empty(dev, MT_FLOAT16, 2, d2);
    arrs[4] = mk_empty(dev, MT_BOOL, 2, d2);
    arrs[5] = mk_empty(dev, MT_INT8, 2, d2);
    arrs[6] = mk_empty(dev, MT_FLOAT64, 2, d16);
    arrs[7] = mk_empty(dev, MT_FLOAT64, 2, d2);
    arrs[8] = mk_empty(dev, MT_UINT64, 2, d2);
    arrs[9] = mk_empty(dev, MT_BFLOAT16, 2, d2);
    arrs[10] = mk_empty(dev, MT_INT32, 1, &n);
    arrs[11] = mk_empty(dev, MT_INT64, 1, &n);
    arrs[12] = mk_empty(dev, MT_INT64, 1, &n);
    arrs[13] = mk_empty(dev, MT_FLOAT16, 1, &n);
    arrs[14] = mk_empty(dev, MT_FLOAT32, 1, &n);
    return k;
}

/* Renders each expression in lang (a contiguous and a strided layout) into sources[]. */
static int render_all(mt_klang lang, char **sources, mt_kexpr *ex, mt_array *A)
{
    int ns = 0;
    char entry[128];
    mt_array dsl;
    mt_slice sl[2] = {mt_slice_all(), mt_slice_range(MT_SLICE_UNSET, MT_SLICE_UNSET, -2)};
    MT_CHECK_OK(mt_array_slice(&dsl, &A[6], 2, sl)); /* (8, 8) float64 with stride -16 */
    struct {
        int e, nin, nout;
        const mt_array *in[3];
        mt_array *out[3];
    } plans[] = {
        {0, 3, 1, {&A[0], &A[0], &A[0]}, {&A[0]}},
        {1, 2, 3, {&A[1], &A[2]}, {&A[3], &A[4], &A[5]}},
        {2, 1, 3, {&dsl}, {&A[7], &A[8], &A[9]}},
        {3, 2, 3, {&A[10], &A[11]}, {&A[12], &A[13], &A[14]}},
    };
    for (size_t p = 0; p < sizeof plans / sizeof plans[0]; p++) {
        mt_strbuf sb;
        mt_strbuf_init(&sb);
        MT_CHECK_OK(mt__elemwise_source(&sb, entry, sizeof entry, lang, &ex[plans[p].e],
                                        plans[p].nin, plans[p].in, plans[p].out, 3, NULL));
        sources[ns++] = mt_strbuf_take(&sb);
    }
    mt_array_clear(&dsl);
    return ns;
}

static bool find_tool(const char *name, char *out, size_t len)
{
    const char *extra[] = {"/usr/local/cuda/bin", "/usr/bin", "/usr/local/bin"};
    const char *path = getenv("PATH");
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path ? path : "");
    for (char *tok = strtok(buf, ":"); tok; tok = strtok(NULL, ":")) {
        snprintf(out, len, "%s/%s", tok, name);
        if (access(out, X_OK) == 0) return true;
    }
    for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++) {
        snprintf(out, len, "%s/%s", extra[i], name);
        if (access(out, X_OK) == 0) return true;
    }
    return false;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    MT_CHECK(f);
    fputs(text, f);
    fclose(f);
}

/* The CUDA renderings compile with nvcc (to PTX, no GPU needed) when nvcc is installed. */
MT_TEST(cuda_sources_compile)
{
    char nvcc[512];
    if (!find_tool("nvcc", nvcc, sizeof nvcc)) MT_SKIP("nvcc not installed");
    mt_device *dev = open_host();
    mt_kexpr ex[8];
    mt_array A[16];
    int ne = build_render_set(ex, dev, A);
    char *src[8];
    int ns = render_all(MT_KLANG_CUDA, src, ex, A);
    /* one translation unit: the prelude once, then every kernel */
    mt_strbuf pre, all;
    mt_strbuf_init(&pre);
    mt_strbuf_init(&all);
    mt__kgen_prelude(&pre, MT_KLANG_CUDA);
    mt_strbuf_append(&all, pre.data);
    for (int i = 0; i < ns; i++) {
        MT_CHECK(strncmp(src[i], pre.data, pre.len) == 0);
        MT_CHECK(strstr(src[i], "extern \"C\" __global__ void mt_ew_"));
        mt_strbuf_append(&all, src[i] + pre.len);
        free(src[i]);
    }
    char path[700], cmd[4000];
    snprintf(path, sizeof path, "%s/kernels.cu", mt_test_tmpdir());
    write_text(path, all.data);
    snprintf(cmd, sizeof cmd, "'%s' -ptx -o '%s.ptx' '%s' > '%s.log' 2>&1", nvcc, path, path, path);
    int rc = system(cmd);
    if (rc != 0) {
        char *log = NULL;
        size_t len = 0;
        char lp[800];
        snprintf(lp, sizeof lp, "%s.log", path);
        mt_file_read_all(lp, &log, &len, 1 << 20);
        mt_test_fail(__FILE__, __LINE__, "nvcc failed on %s:\n%.3000s", path, log ? log : "");
    }
    mt_strbuf_deinit(&pre);
    mt_strbuf_deinit(&all);
    for (int i = 0; i < ne; i++) mt_kexpr_deinit(&ex[i]);
    for (int i = 0; i < 15; i++) mt_array_clear(&A[i]);
    mt_device_release(dev);
}

/* The OpenCL renderings pass clang's OpenCL C 1.2 front end, with and without fp64. */
MT_TEST(opencl_sources_parse)
{
    char clang[512];
    if (!find_tool("clang", clang, sizeof clang)) MT_SKIP("clang not installed");
    mt_device *dev = open_host();
    mt_kexpr ex[8];
    mt_array A[16];
    int ne = build_render_set(ex, dev, A);
    char *src[8];
    int ns = render_all(MT_KLANG_OPENCL, src, ex, A);
    for (int i = 0; i < ns; i++) {
        MT_CHECK(strstr(src[i], "__kernel void mt_ew_") && strstr(src[i], "ulong o0"));
        MT_CHECK((strstr(src[i], "#define MT_NO_FP64") != NULL) == (i == 0 || i == 1 || i == 3));
        char path[700], cmd[4000];
        snprintf(path, sizeof path, "%s/k%d.cl", mt_test_tmpdir(), i);
        write_text(path, src[i]);
        snprintf(cmd, sizeof cmd, "'%s' -x cl -cl-std=CL1.2 -Xclang -finclude-default-header "
                 "-fsyntax-only -Werror=implicit-function-declaration '%s' > '%s.log' 2>&1",
                 clang, path, path);
        if (system(cmd) != 0) {
            char *log = NULL;
            size_t len = 0;
            char lp[800];
            snprintf(lp, sizeof lp, "%s.log", path);
            mt_file_read_all(lp, &log, &len, 1 << 20);
            mt_test_fail(__FILE__, __LINE__, "clang rejects %s:\n%.3000s", path, log ? log : "");
        }
        free(src[i]);
    }
    for (int i = 0; i < ne; i++) mt_kexpr_deinit(&ex[i]);
    for (int i = 0; i < 15; i++) mt_array_clear(&A[i]);
    mt_device_release(dev);
}

/* The CUDA renderings compile with NVRTC (the later CUDA backend's compiler), when libnvrtc
 * can be loaded; each source is its own program, as the backend will do it. */
MT_TEST(cuda_sources_nvrtc)
{
    void *lib = dlopen("libnvrtc.so", RTLD_NOW | RTLD_LOCAL);
    if (!lib) lib = dlopen("/usr/local/cuda/lib64/libnvrtc.so", RTLD_NOW | RTLD_LOCAL);
    if (!lib) MT_SKIP("libnvrtc not available");
    typedef int (*create_fn)(void **, const char *, const char *, int, const char *const *,
                             const char *const *);
    typedef int (*compile_fn)(void *, int, const char *const *);
    typedef int (*logsize_fn)(void *, size_t *);
    typedef int (*log_fn)(void *, char *);
    typedef int (*destroy_fn)(void **);
    create_fn create = (create_fn)dlsym(lib, "nvrtcCreateProgram");
    compile_fn compile = (compile_fn)dlsym(lib, "nvrtcCompileProgram");
    logsize_fn logsize = (logsize_fn)dlsym(lib, "nvrtcGetProgramLogSize");
    log_fn getlog = (log_fn)dlsym(lib, "nvrtcGetProgramLog");
    destroy_fn destroy = (destroy_fn)dlsym(lib, "nvrtcDestroyProgram");
    MT_CHECK(create && compile && logsize && getlog && destroy);
    mt_device *dev = open_host();
    mt_kexpr ex[8];
    mt_array A[16];
    int ne = build_render_set(ex, dev, A);
    char *src[8];
    int ns = render_all(MT_KLANG_CUDA, src, ex, A);
    for (int i = 0; i < ns; i++) {
        void *prog = NULL;
        MT_CHECK_EQ_INT(create(&prog, src[i], "mt_kernel.cu", 0, NULL, NULL), 0);
        const char *opts[] = {"--gpu-architecture=compute_75"};
        int rc = compile(prog, 1, opts);
        if (rc != 0) {
            size_t n = 0;
            logsize(prog, &n);
            char *log = malloc(n + 1);
            MT_CHECK(log);
            getlog(prog, log);
            mt_test_fail(__FILE__, __LINE__, "NVRTC rejects kernel %d (rc %d):\n%.3000s\n--- source "
                         "tail:\n%s", i, rc, log, src[i] + (strlen(src[i]) > 1500 ? strlen(src[i]) - 1500 : 0));
        }
        destroy(&prog);
        free(src[i]);
    }
    for (int i = 0; i < ne; i++) mt_kexpr_deinit(&ex[i]);
    for (int i = 0; i < 15; i++) mt_array_clear(&A[i]);
    mt_device_release(dev);
    dlclose(lib);
}

