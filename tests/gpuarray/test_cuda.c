/* The CUDA backend: device info, transfers, copies with conversion, generated elementwise and
 * reduction kernels for every dtype, cuBLAS GEMM, random streams, events and the kernel disk
 * cache on cuda:0, each compared with the host device's results (per-dtype tolerances).
 * Cases that need a GPU skip when cuda:0 cannot be opened (no driver, no device). Two groups
 * run everywhere: opening cuda:0 without a driver fails cleanly with ERR_NOT_FOUND and the
 * reason, and NVRTC (which needs no GPU) compiles kernels, generated ones included, to cubin
 * and PTX for sm_80 and sm_90. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../src/gpuarray/gpuarray_impl.h"
#include "../../src/gpuarray/nvrtc.h"
#include "mltrain/gpuarray.h"
#include "mt_test.h"
#include "mt_test_device.h"

uint64_t mt__cuda_disk_cache_hits(void); /* device_cuda.c */

/* ---------------------------------------------------------------- helpers */

static mt_device *open_cuda(void) { return mt_test_open_or_skip("cuda:0"); }
static mt_device *open_host(void) { return mt_test_open_or_skip("host"); }

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static double urand(void) /* [-1, 1) */
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (double)(g_rng >> 11) * 0x1p-52 - 1.0;
}

static void tol_of(mt_dtype dt, double *atol, double *rtol)
{
    switch (dt) {
    case MT_FLOAT16: *atol = 2e-3; *rtol = 2e-3; break;
    case MT_BFLOAT16: *atol = 1.6e-2; *rtol = 1.6e-2; break;
    case MT_FLOAT32: *atol = 1e-5; *rtol = 1e-5; break;
    case MT_FLOAT64: *atol = 1e-12; *rtol = 1e-12; break;
    default: *atol = 0; *rtol = 0; break; /* integers and bool: exact */
    }
}

/* The same values on both devices: a (GPU) vs b (host). */
static void expect_same(const char *what, const mt_array *gpu, const mt_array *host, double atol,
                        double rtol)
{
    MT_CHECK_EQ_INT(gpu->dtype, host->dtype);
    MT_CHECK_EQ_INT(mt_array_size(gpu), mt_array_size(host));
    double *g = mt_test_to_f64(gpu), *h = mt_test_to_f64(host);
    mt_test_allclose(__FILE__, __LINE__, what, g, h, (size_t)mt_array_size(host), atol, rtol);
    free(g);
    free(h);
}

static const mt_dtype k_all_dtypes[] = {MT_BOOL,   MT_INT8,    MT_INT16,   MT_INT32, MT_INT64,
                                        MT_UINT8,  MT_UINT16,  MT_UINT32,  MT_UINT64,
                                        MT_FLOAT16, MT_BFLOAT16, MT_FLOAT32, MT_FLOAT64};
#define N_DTYPES ((int)(sizeof k_all_dtypes / sizeof k_all_dtypes[0]))

/* ---------------------------------------------------------------- without a GPU */

/* With no usable driver (this CI machine) the open fails cleanly and says why; the device list
 * has no CUDA entry. On a GPU machine this case has nothing to check and skips. */
MT_TEST(cuda_open_without_driver_fails_cleanly)
{
    mt_device *dev = NULL;
    mt_err_clear();
    mt_status st = mt_device_open(&dev, "cuda:0");
    if (st == MT_OK) {
        mt_device_release(dev);
        MT_SKIP("a CUDA device is present");
    }
    MT_CHECK_EQ_INT(st, MT_ERR_NOT_FOUND);
    const char *msg = mt_last_error();
    MT_CHECK(strstr(msg, "cuda:0") != NULL);
    MT_CHECK(strstr(msg, "no CUDA driver") != NULL || strstr(msg, "CUDA driver") != NULL);
    mt_device_info *infos = NULL;
    int32_t n = 0;
    MT_CHECK_OK(mt_device_list(&infos, &n));
    for (int32_t i = 0; i < n; i++) MT_CHECK(strcmp(infos[i].backend, "cuda") != 0);
    mt_free(infos);
    MT_CHECK_ERR(mt_device_open(&dev, "cuda:x"), MT_ERR_INVALID, "cuda:N");
}

/* The toolkit's stub libcuda exports every entry point but fails cuInit: that is "no driver"
 * too, and the symbol lookup of every entry point the backend uses is exercised for real. */
MT_TEST(cuda_stub_driver_is_no_device)
{
    const char *stub = "/usr/local/cuda/lib64/stubs/libcuda.so";
    if (access(stub, R_OK) != 0) MT_SKIP("no CUDA stub library at /usr/local/cuda/lib64/stubs");
    setenv("MLTRAIN_LIBCUDA", stub, 1);
    mt_device *dev = NULL;
    mt_err_clear();
    mt_status st = mt_device_open(&dev, "cuda:0");
    MT_CHECK_EQ_INT(st, MT_ERR_NOT_FOUND);
    if (!strstr(mt_last_error(), "stub library"))
        mt_test_fail(__FILE__, __LINE__, "unexpected message: %s", mt_last_error());
}

/* ---------------------------------------------------------------- NVRTC (no GPU needed) */

static const char k_saxpy[] =
    "extern \"C\" __global__ void saxpy(char *x, char *y, float a, long long n)\n"
    "{\n"
    "    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;\n"
    "         i += (long long)blockDim.x * gridDim.x)\n"
    "        ((float *)y)[i] = a * ((const float *)x)[i] + ((float *)y)[i];\n"
    "}\n";

MT_TEST(nvrtc_compiles_cubin_and_ptx)
{
    char why[600];
    if (!mt__nvrtc_available(why, sizeof why)) MT_SKIP(why);
    int major = 0, minor = 0;
    MT_CHECK_OK(mt__nvrtc_version(&major, &minor));
    MT_CHECK(major >= 11);
    int archs[64];
    int32_t na = mt__nvrtc_archs(archs, 64);
    MT_CHECK(na > 0);
    static const int targets[] = {80, 90};
    for (int t = 0; t < 2; t++) {
        char *img = NULL;
        size_t len = 0;
        MT_CHECK_OK(mt__nvrtc_compile(k_saxpy, "saxpy.cu", targets[t], true, &img, &len));
        MT_CHECK(len > 64 && memcmp(img, "\177ELF", 4) == 0); /* a cubin is an ELF image */
        mt_free(img);
        MT_CHECK_OK(mt__nvrtc_compile(k_saxpy, "saxpy.cu", targets[t], false, &img, &len));
        char want[32];
        snprintf(want, sizeof want, ".target sm_%d", targets[t]);
        MT_CHECK(strstr(img, want) != NULL);
        MT_CHECK(strstr(img, ".entry saxpy") != NULL);
        MT_CHECK(img[len - 1] == 0);
        /* --fmad=false: no fused multiply-add in the PTX */
        MT_CHECK(strstr(img, "fma.rn.f32") == NULL);
        mt_free(img);
    }
    char *img = NULL;
    size_t len = 0;
    MT_CHECK_ERR(mt__nvrtc_compile("extern \"C\" __global__ void k() { undefined_name; }",
                                   "bad.cu", 90, true, &img, &len),
                 MT_ERR_COMPILE, "undefined_name");
    MT_CHECK(img == NULL);
    MT_CHECK(strstr(mt_last_error(), "sm_90") != NULL);
    MT_CHECK(strstr(mt_last_error(), "NVRTC_ERROR_COMPILATION") != NULL);
}

/* The elementwise sources the CUDA backend builds (all dtypes, contiguous and strided, with a
 * parameter) compile with the backend's exact options for sm_80 and sm_90. */
MT_TEST(nvrtc_compiles_generated_elemwise)
{
    char why[600];
    if (!mt__nvrtc_available(why, sizeof why)) MT_SKIP(why);
    mt_device *host = open_host();
    for (int di = 0; di < N_DTYPES; di++) {
        mt_dtype dt = k_all_dtypes[di];
        mt_kexpr e;
        mt_kexpr_init(&e);
        int32_t a = mt_kexpr_input(&e, 0, dt), b = mt_kexpr_input(&e, 1, dt);
        int32_t o;
        if (dt == MT_BOOL) {
            o = mt_kexpr_binary(&e, MT_SOP_XOR, a, mt_kexpr_binary(&e, MT_SOP_AND, a, b));
        } else if (mt_dtype_is_float(dt)) {
            int32_t p = mt_kexpr_param(&e, 0, dt);
            o = mt_kexpr_binary(&e, MT_SOP_ADD, mt_kexpr_binary(&e, MT_SOP_MUL, a, p),
                                mt_kexpr_unary(&e, MT_SOP_TANH, b));
        } else {
            int32_t p = mt_kexpr_param(&e, 0, dt);
            o = mt_kexpr_binary(&e, MT_SOP_FLOORDIV, mt_kexpr_binary(&e, MT_SOP_MUL, a, p), b);
        }
        MT_CHECK_OK(mt_kexpr_add_output(&e, o));
        int64_t dims[2] = {4, 6};
        mt_array A = {0}, B = {0}, C = {0}, Bt = {0};
        MT_CHECK_OK(mt_array_zeros(&A, host, dt, 2, dims));
        int64_t tdims[2] = {6, 4};
        MT_CHECK_OK(mt_array_zeros(&B, host, dt, 2, tdims));
        MT_CHECK_OK(mt_array_swapaxes(&Bt, &B, 0, 1)); /* a strided input */
        MT_CHECK_OK(mt_array_zeros(&C, host, dt, 2, dims));
        mt_scalar prm = mt_scalar_f64(2.0);
        for (int layout = 0; layout < 2; layout++) {
            const mt_array *ins[2] = {&A, layout ? &Bt : &A};
            mt_array *outs[1] = {&C};
            mt_strbuf src;
            mt_strbuf_init(&src);
            char entry[128];
            int32_t np = dt == MT_BOOL ? 0 : 1;
            MT_CHECK_OK(mt__elemwise_source(&src, entry, sizeof entry, MT_KLANG_CUDA, &e, 2, ins,
                                            outs, np, np ? &prm : NULL));
            for (int arch = 80; arch <= 90; arch += 10) {
                char *img = NULL;
                size_t len = 0;
                mt_status st = mt__nvrtc_compile(src.data, entry, arch, true, &img, &len);
                if (st != MT_OK)
                    mt_test_fail(__FILE__, __LINE__, "%s (%s, layout %d, sm_%d): %s\n%s",
                                 entry, mt_dtype_name(dt), layout, arch, mt_last_error(),
                                 src.data);
                mt_free(img);
            }
            mt_strbuf_deinit(&src);
        }
        mt_array_clear(&A);
        mt_array_clear(&B);
        mt_array_clear(&Bt);
        mt_array_clear(&C);
        mt_kexpr_deinit(&e);
    }
    mt_device_release(host);
}

/* ---------------------------------------------------------------- on a GPU */

MT_TEST(cuda_device_info)
{
    mt_device *dev = open_cuda();
    const mt_device_info *info = mt_device_get_info(dev);
    MT_CHECK_STR_EQ(info->name, "cuda:0");
    MT_CHECK_STR_EQ(info->backend, "cuda");
    MT_CHECK(info->fp64);
    MT_CHECK(info->global_mem > ((uint64_t)1 << 28));
    MT_CHECK(info->max_alloc > 0 && info->max_alloc <= info->global_mem);
    MT_CHECK(info->compute_units > 0);
    MT_CHECK(strstr(info->description, "sm_") != NULL);
    MT_CHECK(!mt_device_is_host_addressable(dev));
    printf("cuda:0: %s, %llu MiB\n", info->description,
           (unsigned long long)(info->global_mem >> 20));
    /* listed by mt_device_list too */
    mt_device_info *infos = NULL;
    int32_t n = 0;
    bool found = false;
    MT_CHECK_OK(mt_device_list(&infos, &n));
    for (int32_t i = 0; i < n; i++) found = found || strcmp(infos[i].name, "cuda:0") == 0;
    mt_free(infos);
    MT_CHECK(found);
    /* an ordinal past the last device names what exists */
    mt_device *none = NULL;
    MT_CHECK_ERR(mt_device_open(&none, "cuda:999"), MT_ERR_NOT_FOUND, "cuda:999");
    mt_device_release(dev);
}

MT_TEST(cuda_buffer_roundtrip_offsets_and_copy)
{
    mt_device *dev = open_cuda();
    enum { N = 1 << 20 };
    unsigned char *src = malloc(N), *back = malloc(N);
    MT_CHECK(src && back);
    for (int i = 0; i < N; i++) src[i] = (unsigned char)(i * 131 + 7);
    mt_buffer *b = NULL, *c = NULL;
    MT_CHECK_OK(mt_buffer_new(&b, dev, N));
    MT_CHECK_OK(mt_buffer_new(&c, dev, N));
    MT_CHECK_OK(mt_buffer_write(b, 0, src, N, NULL));
    memset(back, 0, N);
    MT_CHECK_OK(mt_buffer_read(back, b, 0, N, NULL));
    MT_CHECK(memcmp(src, back, N) == 0);
    /* odd offsets and sizes */
    MT_CHECK_OK(mt_buffer_write(b, 13, src + 1000, 4097, NULL));
    MT_CHECK_OK(mt_buffer_read(back, b, 13, 4097, NULL));
    MT_CHECK(memcmp(back, src + 1000, 4097) == 0);
    MT_CHECK_OK(mt_buffer_read(back, b, 0, 13, NULL));
    MT_CHECK(memcmp(back, src, 13) == 0);
    /* device-to-device copy with offsets */
    MT_CHECK_OK(mt_buffer_write(b, 0, src, N, NULL));
    MT_CHECK_OK(mt_buffer_copy(c, 3, b, 100, 70001, NULL));
    MT_CHECK_OK(mt_buffer_read(back, c, 3, 70001, NULL));
    MT_CHECK(memcmp(back, src + 100, 70001) == 0);
    /* overlapping copy within one buffer behaves like memmove */
    MT_CHECK_OK(mt_buffer_copy(b, 10, b, 0, 1000, NULL));
    MT_CHECK_OK(mt_buffer_read(back, b, 0, 1010, NULL));
    MT_CHECK(memcmp(back, src, 10) == 0 && memcmp(back + 10, src, 1000) == 0);
    /* out of range */
    MT_CHECK_ERR(mt_buffer_read(back, b, N - 1, 2, NULL), MT_ERR_RANGE, NULL);
    /* a user stream */
    mt_stream *s = NULL;
    MT_CHECK_OK(mt_stream_new(&s, dev));
    MT_CHECK_OK(mt_buffer_write(c, 0, src + 7, 5000, s));
    MT_CHECK_OK(mt_buffer_read(back, c, 0, 5000, s));
    MT_CHECK(memcmp(back, src + 7, 5000) == 0);
    mt_stream_free(s);
    mt_buffer_release(b);
    mt_buffer_release(c);
    free(src);
    free(back);
    mt_device_release(dev);
}

/* Strided views copied with dtype conversion, and cross-device copies, vs the host. */
MT_TEST(cuda_strided_copies_with_conversion)
{
    mt_device *dev = open_cuda(), *host = open_host();
    int64_t dims[3] = {5, 7, 9};
    double v[315];
    for (int i = 0; i < 315; i++) v[i] = 100 * urand();
    static const mt_dtype pairs[][2] = {{MT_FLOAT32, MT_FLOAT16}, {MT_FLOAT64, MT_BFLOAT16},
                                        {MT_FLOAT32, MT_INT32},   {MT_INT64, MT_FLOAT64},
                                        {MT_FLOAT16, MT_FLOAT32}, {MT_INT16, MT_UINT8},
                                        {MT_FLOAT32, MT_BOOL}};
    for (size_t p = 0; p < sizeof pairs / sizeof pairs[0]; p++) {
        mt_array g = {0}, h = {0}, gv = {0}, hv = {0}, gc = {0}, hc = {0};
        mt_test_from_f64(&g, dev, pairs[p][0], 3, dims, v);
        mt_test_from_f64(&h, host, pairs[p][0], 3, dims, v);
        /* a transposed, stepped, reversed view */
        int32_t perm[3] = {2, 0, 1};
        mt_array gt = {0}, ht = {0};
        MT_CHECK_OK(mt_array_transpose(&gt, &g, perm));
        MT_CHECK_OK(mt_array_transpose(&ht, &h, perm));
        mt_slice sl[3] = {mt_slice_range(8, MT_SLICE_UNSET, -2), mt_slice_range(1, 5, 1),
                          mt_slice_range(0, 7, 3)};
        MT_CHECK_OK(mt_array_slice(&gv, &gt, 3, sl));
        MT_CHECK_OK(mt_array_slice(&hv, &ht, 3, sl));
        MT_CHECK_OK(mt_array_astype(&gc, &gv, pairs[p][1]));
        MT_CHECK_OK(mt_array_astype(&hc, &hv, pairs[p][1]));
        char what[64];
        snprintf(what, sizeof what, "%s -> %s", mt_dtype_name(pairs[p][0]),
                 mt_dtype_name(pairs[p][1]));
        expect_same(what, &gc, &hc, 0, 0); /* conversions are exact functions of the input */
        /* GPU -> host copy of the strided view */
        mt_array back = {0};
        MT_CHECK_OK(mt_array_copy_to(&back, &gv, host));
        expect_same("copy to host", &back, &hv, 0, 0);
        mt_array_clear(&back);
        mt_array *arrs[] = {&g, &h, &gv, &hv, &gc, &hc, &gt, &ht};
        for (size_t i = 0; i < sizeof arrs / sizeof arrs[0]; i++) mt_array_clear(arrs[i]);
    }
    mt_device_release(host);
    mt_device_release(dev);
}

/* One expression per dtype kind, run on both devices over a broadcast, strided layout. */
static void build_expr(mt_kexpr *e, mt_dtype dt)
{
    mt_kexpr_init(e);
    int32_t a = mt_kexpr_input(e, 0, dt), b = mt_kexpr_input(e, 1, dt), o;
    if (dt == MT_BOOL) {
        o = mt_kexpr_binary(e, MT_SOP_OR, mt_kexpr_binary(e, MT_SOP_XOR, a, b),
                            mt_kexpr_unary(e, MT_SOP_NOT, a));
    } else if (mt_dtype_is_float(dt)) {
        /* (a * p + tanh(b)) / (|b| + 1.5) + exp(a / 4) + sqrt(|a|) */
        int32_t p = mt_kexpr_param(e, 0, dt);
        int32_t one5 = mt_kexpr_const(e, mt_scalar_f64(1.5), dt);
        int32_t four = mt_kexpr_const(e, mt_scalar_f64(4.0), dt);
        int32_t num = mt_kexpr_binary(e, MT_SOP_ADD, mt_kexpr_binary(e, MT_SOP_MUL, a, p),
                                      mt_kexpr_unary(e, MT_SOP_TANH, b));
        int32_t den = mt_kexpr_binary(e, MT_SOP_ADD, mt_kexpr_unary(e, MT_SOP_ABS, b), one5);
        o = mt_kexpr_binary(e, MT_SOP_ADD, mt_kexpr_binary(e, MT_SOP_DIV, num, den),
                            mt_kexpr_unary(e, MT_SOP_EXP, mt_kexpr_binary(e, MT_SOP_DIV, a, four)));
        o = mt_kexpr_binary(e, MT_SOP_ADD, o,
                            mt_kexpr_unary(e, MT_SOP_SQRT, mt_kexpr_unary(e, MT_SOP_ABS, a)));
    } else {
        /* (a * p) // b + a % b + max(a, b) (integer division by zero gives 0) */
        int32_t p = mt_kexpr_param(e, 0, dt);
        o = mt_kexpr_binary(e, MT_SOP_ADD,
                            mt_kexpr_binary(e, MT_SOP_FLOORDIV, mt_kexpr_binary(e, MT_SOP_MUL, a, p), b),
                            mt_kexpr_binary(e, MT_SOP_MOD, a, b));
        o = mt_kexpr_binary(e, MT_SOP_ADD, o, mt_kexpr_binary(e, MT_SOP_MAX, a, b));
    }
    MT_CHECK_OK(mt_kexpr_add_output(e, o));
}

MT_TEST(cuda_elemwise_every_dtype_vs_host)
{
    mt_device *dev = open_cuda(), *host = open_host();
    int64_t adims[2] = {33, 65}, bdims[1] = {65};
    double av[33 * 65], bv[65];
    for (int di = 0; di < N_DTYPES; di++) {
        mt_dtype dt = k_all_dtypes[di];
        bool fl = mt_dtype_is_float(dt), un = mt_dtype_kind(dt) == 'u';
        for (int i = 0; i < 33 * 65; i++)
            av[i] = fl ? 3 * urand() : dt == MT_BOOL ? (urand() > 0) : floor(50 * urand()) + (un ? 50 : 0);
        for (int i = 0; i < 65; i++)
            bv[i] = fl ? 3 * urand() : dt == MT_BOOL ? (urand() > 0) : floor(9 * urand()) + (un ? 9 : 0);
        mt_kexpr e;
        build_expr(&e, dt);
        mt_array ga = {0}, gb = {0}, ha = {0}, hb = {0}, go = {0}, ho = {0}, gat = {0}, hat = {0};
        mt_test_from_f64(&ga, dev, dt, 2, adims, av);
        mt_test_from_f64(&ha, host, dt, 2, adims, av);
        mt_test_from_f64(&gb, dev, dt, 1, bdims, bv);
        mt_test_from_f64(&hb, host, dt, 1, bdims, bv);
        mt_scalar prm = mt_scalar_f64(fl ? 0.75 : 3.0);
        int32_t np = dt == MT_BOOL ? 0 : 1;
        for (int layout = 0; layout < 2; layout++) {
            /* layout 1: a reversed-column view as input a */
            const mt_array *gin[2], *hin[2];
            if (layout) {
                mt_slice sl[2] = {mt_slice_all(), mt_slice_range(MT_SLICE_UNSET, MT_SLICE_UNSET, -1)};
                MT_CHECK_OK(mt_array_slice(&gat, &ga, 2, sl));
                MT_CHECK_OK(mt_array_slice(&hat, &ha, 2, sl));
                gin[0] = &gat;
                hin[0] = &hat;
            } else {
                gin[0] = &ga;
                hin[0] = &ha;
            }
            gin[1] = &gb;
            hin[1] = &hb;
            MT_CHECK_OK(mt_array_empty(&go, dev, dt, 2, adims, 'C'));
            MT_CHECK_OK(mt_array_empty(&ho, host, dt, 2, adims, 'C'));
            mt_array *gouts[1] = {&go}, *houts[1] = {&ho};
            MT_CHECK_OK(mt_elemwise(&e, 2, gin, gouts, np, np ? &prm : NULL));
            MT_CHECK_OK(mt_elemwise(&e, 2, hin, houts, np, np ? &prm : NULL));
            double atol, rtol;
            tol_of(dt, &atol, &rtol);
            char what[64];
            snprintf(what, sizeof what, "elemwise %s layout %d", mt_dtype_name(dt), layout);
            expect_same(what, &go, &ho, atol, rtol);
            mt_array_clear(&go);
            mt_array_clear(&ho);
            mt_array_clear(&gat);
            mt_array_clear(&hat);
        }
        mt_array *arrs[] = {&ga, &gb, &ha, &hb};
        for (size_t i = 0; i < 4; i++) mt_array_clear(arrs[i]);
        mt_kexpr_deinit(&e);
    }
    mt_device_release(host);
    mt_device_release(dev);
}

MT_TEST(cuda_reductions_vs_host)
{
    mt_device *dev = open_cuda(), *host = open_host();
    int64_t dims[3] = {37, 129, 17};
    size_t n = 37 * 129 * 17;
    double *v = malloc(n * sizeof *v);
    MT_CHECK(v);
    for (size_t i = 0; i < n; i++) v[i] = 10 * urand();
    static const mt_dtype dts[] = {MT_FLOAT32, MT_FLOAT64, MT_FLOAT16, MT_BFLOAT16, MT_INT32};
    static const mt_reduce_op ops[] = {MT_REDUCE_SUM, MT_REDUCE_MAX, MT_REDUCE_ARGMAX,
                                       MT_REDUCE_MEAN, MT_REDUCE_MIN};
    static const int32_t axsets[][2] = {{0, -1}, {1, -1}, {2, -1}, {0, 2}};
    for (size_t di = 0; di < sizeof dts / sizeof dts[0]; di++) {
        mt_array g = {0}, h = {0};
        mt_test_from_f64(&g, dev, dts[di], 3, dims, v);
        mt_test_from_f64(&h, host, dts[di], 3, dims, v);
        for (size_t oi = 0; oi < sizeof ops / sizeof ops[0]; oi++) {
            for (size_t ai = 0; ai < 5; ai++) { /* 4 axis sets, then all axes */
                int32_t axes[2] = {0, 0}, na = 0;
                if (ai < 4) {
                    axes[0] = axsets[ai][0];
                    na = 1;
                    if (axsets[ai][1] >= 0) axes[na++] = axsets[ai][1];
                }
                if (ops[oi] == MT_REDUCE_ARGMAX && na != 1) continue; /* one axis or all */
                mt_array gr = {0}, hr = {0};
                MT_CHECK_OK(mt_array_reduce(&gr, &g, ops[oi], na, axes, false));
                MT_CHECK_OK(mt_array_reduce(&hr, &h, ops[oi], na, axes, false));
                double atol, rtol;
                mt_dtype rdt = hr.dtype;
                tol_of(rdt, &atol, &rtol);
                if (ops[oi] == MT_REDUCE_SUM || ops[oi] == MT_REDUCE_MEAN) {
                    /* both accumulate in float64 but may add in another order */
                    if (rdt == MT_FLOAT64) atol = rtol = 1e-10;
                }
                char what[96];
                snprintf(what, sizeof what, "reduce %s of %s over %d axes (set %zu)",
                         mt_reduce_op_name(ops[oi]), mt_dtype_name(dts[di]), (int)na, ai);
                expect_same(what, &gr, &hr, atol, rtol);
                mt_array_clear(&gr);
                mt_array_clear(&hr);
            }
        }
        mt_array_clear(&g);
        mt_array_clear(&h);
    }
    free(v);
    mt_device_release(host);
    mt_device_release(dev);
}

/* GEMM through cuBLAS: both dtypes, every transpose combination, alpha/beta, batched with a
 * broadcast operand, and a Fortran-order C, vs the host's OpenBLAS. */
MT_TEST(cuda_gemm_vs_host)
{
    mt_device *dev = open_cuda(), *host = open_host();
    static const mt_dtype dts[] = {MT_FLOAT32, MT_FLOAT64};
    const int64_t M = 67, N = 45, K = 129, B = 3;
    for (int di = 0; di < 2; di++) {
        mt_dtype dt = dts[di];
        double atol = dt == MT_FLOAT32 ? 1e-4 : 1e-11, rtol = dt == MT_FLOAT32 ? 1e-4 : 1e-11;
        for (int t = 0; t < 4; t++) {
            bool ta = t & 1, tb = t & 2;
            for (int batched = 0; batched < 2; batched++) {
                /* batched: a has B matrices, b one (broadcast over the batch) */
                int64_t ad[3] = {B, ta ? K : M, ta ? M : K}, bd[3] = {1, tb ? N : K, tb ? K : N};
                int64_t cd[3] = {B, M, N};
                int32_t nd = batched ? 3 : 2;
                const int64_t *adp = batched ? ad : ad + 1, *bdp = batched ? bd : bd + 1,
                              *cdp = batched ? cd : cd + 1;
                size_t na = (size_t)(batched ? B : 1) * (size_t)(M * K), nb = (size_t)(K * N),
                       nc = (size_t)(batched ? B : 1) * (size_t)(M * N);
                double *av = malloc(na * 8), *bv = malloc(nb * 8), *cv = malloc(nc * 8);
                MT_CHECK(av && bv && cv);
                for (size_t i = 0; i < na; i++) av[i] = urand();
                for (size_t i = 0; i < nb; i++) bv[i] = urand();
                for (size_t i = 0; i < nc; i++) cv[i] = urand();
                mt_array ga = {0}, gb = {0}, gc = {0}, ha = {0}, hb = {0}, hc = {0};
                mt_test_from_f64(&ga, dev, dt, nd, adp, av);
                mt_test_from_f64(&ha, host, dt, nd, adp, av);
                mt_test_from_f64(&gb, dev, dt, nd, bdp, bv);
                mt_test_from_f64(&hb, host, dt, nd, bdp, bv);
                mt_test_from_f64(&gc, dev, dt, nd, cdp, cv);
                mt_test_from_f64(&hc, host, dt, nd, cdp, cv);
                MT_CHECK_OK(mt_array_gemm(&gc, &ga, &gb, 0.5, 0.25, ta, tb));
                MT_CHECK_OK(mt_array_gemm(&hc, &ha, &hb, 0.5, 0.25, ta, tb));
                char what[96];
                snprintf(what, sizeof what, "gemm %s ta=%d tb=%d batched=%d", mt_dtype_name(dt),
                         ta, tb, batched);
                expect_same(what, &gc, &hc, atol, rtol);
                mt_array *arrs[] = {&ga, &gb, &gc, &ha, &hb, &hc};
                for (size_t i = 0; i < 6; i++) mt_array_clear(arrs[i]);
                free(av);
                free(bv);
                free(cv);
            }
        }
        /* matmul with a Fortran-order result via a transposed output view */
        int64_t d1[2] = {M, K}, d2[2] = {K, N};
        double *av = malloc((size_t)(M * K) * 8), *bv = malloc((size_t)(K * N) * 8);
        MT_CHECK(av && bv);
        for (int64_t i = 0; i < M * K; i++) av[i] = urand();
        for (int64_t i = 0; i < K * N; i++) bv[i] = urand();
        mt_array ga = {0}, gb = {0}, ha = {0}, hb = {0}, gm = {0}, hm = {0}, gf = {0};
        mt_test_from_f64(&ga, dev, dt, 2, d1, av);
        mt_test_from_f64(&gb, dev, dt, 2, d2, bv);
        mt_test_from_f64(&ha, host, dt, 2, d1, av);
        mt_test_from_f64(&hb, host, dt, 2, d2, bv);
        MT_CHECK_OK(mt_array_matmul(&gm, &ga, &gb));
        MT_CHECK_OK(mt_array_matmul(&hm, &ha, &hb));
        expect_same("matmul", &gm, &hm, atol, rtol);
        int64_t fd[2] = {M, N};
        MT_CHECK_OK(mt_array_empty(&gf, dev, dt, 2, fd, 'F'));
        MT_CHECK_OK(mt_array_gemm(&gf, &ga, &gb, 1.0, 0.0, false, false));
        expect_same("gemm into F-order C", &gf, &hm, atol, rtol);
        mt_array *arrs[] = {&ga, &gb, &ha, &hb, &gm, &hm, &gf};
        for (size_t i = 0; i < 7; i++) mt_array_clear(arrs[i]);
        free(av);
        free(bv);
    }
    mt_device_release(host);
    mt_device_release(dev);
}

/* Philox streams: uniform values are bit-identical to the host's; normal ones agree to the
 * accuracy of the GPU's log/cos. */
MT_TEST(cuda_random_matches_host)
{
    mt_device *dev = open_cuda(), *host = open_host();
    int64_t dims[2] = {129, 257};
    static const mt_dtype dts[] = {MT_FLOAT32, MT_FLOAT64, MT_FLOAT16, MT_BFLOAT16, MT_INT32};
    for (size_t di = 0; di < sizeof dts / sizeof dts[0]; di++) {
        mt_array g = {0}, h = {0};
        MT_CHECK_OK(mt_array_empty(&g, dev, dts[di], 2, dims, 'C'));
        MT_CHECK_OK(mt_array_empty(&h, host, dts[di], 2, dims, 'C'));
        MT_CHECK_OK(mt_array_random_uniform(&g, 1234567, 99, -3.0, 5.0));
        MT_CHECK_OK(mt_array_random_uniform(&h, 1234567, 99, -3.0, 5.0));
        expect_same("random_uniform", &g, &h, 0, 0);
        if (mt_dtype_is_float(dts[di])) {
            MT_CHECK_OK(mt_array_random_normal(&g, 42, 7, 1.0, 2.0));
            MT_CHECK_OK(mt_array_random_normal(&h, 42, 7, 1.0, 2.0));
            double atol, rtol;
            tol_of(dts[di], &atol, &rtol);
            expect_same("random_normal", &g, &h, 4 * atol + 1e-5, 4 * rtol + 1e-5);
        }
        MT_CHECK_OK(mt_array_random_bernoulli(&g, 5, 0, 0.3));
        MT_CHECK_OK(mt_array_random_bernoulli(&h, 5, 0, 0.3));
        expect_same("random_bernoulli", &g, &h, 0, 0);
        mt_array_clear(&g);
        mt_array_clear(&h);
    }
    mt_device_release(host);
    mt_device_release(dev);
}

MT_TEST(cuda_streams_and_events)
{
    mt_device *dev = open_cuda();
    int64_t dims[1] = {1 << 22};
    mt_array a = {0}, b = {0};
    MT_CHECK_OK(mt_array_zeros(&a, dev, MT_FLOAT32, 1, dims));
    MT_CHECK_OK(mt_array_zeros(&b, dev, MT_FLOAT32, 1, dims));
    mt_event *e0 = NULL, *e1 = NULL;
    MT_CHECK_OK(mt_event_new(&e0, dev));
    MT_CHECK_OK(mt_event_new(&e1, dev));
    MT_CHECK_OK(mt_event_record(e0, NULL));
    for (int i = 0; i < 5; i++) MT_CHECK_OK(mt_array_fill(&a, mt_scalar_f64(i)));
    MT_CHECK_OK(mt_array_copy(&b, &a));
    MT_CHECK_OK(mt_event_record(e1, NULL));
    MT_CHECK_OK(mt_event_sync(e1));
    float ms = -1;
    MT_CHECK_OK(mt_event_elapsed_ms(&ms, e0, e1));
    MT_CHECK(ms >= 0 && ms < 60000);
    /* a second stream waits for the default stream's event before reading */
    mt_stream *s = NULL;
    MT_CHECK_OK(mt_stream_new(&s, dev));
    MT_CHECK_OK(mt_stream_wait_event(s, e1));
    float back[4];
    MT_CHECK_OK(mt_buffer_read(back, b.buf, b.offset + 4 * 1000, sizeof back, s));
    for (int i = 0; i < 4; i++) MT_CHECK(back[i] == 4.0f);
    MT_CHECK_OK(mt_stream_sync(s));
    mt_stream_free(s);
    mt_event_free(e0);
    mt_event_free(e1);
    MT_CHECK_OK(mt_device_sync(dev));
    mt_array_clear(&a);
    mt_array_clear(&b);
    mt_device_release(dev);
}

/* A kernel compiled once is loaded from the disk cache by the next build of the same source. */
MT_TEST(cuda_kernel_disk_cache_hit)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/kcache", mt_test_tmpdir());
    setenv("MLTRAIN_CACHE_DIR", dir, 1);
    mt_device *dev = open_cuda();
    char src[sizeof k_saxpy + 64];
    snprintf(src, sizeof src, "/* %d */\n%s", (int)getpid(), k_saxpy); /* new to the cache */
    uint64_t h0 = mt__cuda_disk_cache_hits();
    void *k1 = NULL, *k2 = NULL;
    MT_CHECK_OK(dev->ops->kernel_build(dev, src, "saxpy", &k1));
    MT_CHECK_EQ_INT(mt__cuda_disk_cache_hits(), h0);
    MT_CHECK_OK(dev->ops->kernel_build(dev, src, "saxpy", &k2));
    MT_CHECK_EQ_INT(mt__cuda_disk_cache_hits(), h0 + 1);
    /* run the cached kernel: y = 2 x + y */
    enum { N = 10000 };
    float x[N], y[N];
    for (int i = 0; i < N; i++) {
        x[i] = (float)i;
        y[i] = 1.0f;
    }
    mt_buffer *bx = NULL, *by = NULL;
    MT_CHECK_OK(mt_buffer_new(&bx, dev, sizeof x));
    MT_CHECK_OK(mt_buffer_new(&by, dev, sizeof y + 64));
    MT_CHECK_OK(mt_buffer_write(bx, 0, x, sizeof x, NULL));
    MT_CHECK_OK(mt_buffer_write(by, 64, y, sizeof y, NULL));
    float a = 2.0f;
    long long n = N;
    mt_karg args[4] = {{.kind = MT_KARG_BUFFER, .buf = bx, .offset = 0},
                       {.kind = MT_KARG_BUFFER, .buf = by, .offset = 64},
                       {.kind = MT_KARG_SCALAR, .scalar = &a, .size = 4},
                       {.kind = MT_KARG_SCALAR, .scalar = &n, .size = 8}};
    MT_CHECK_OK(dev->ops->kernel_launch(dev, k2, 4, args, N, 1, NULL));
    MT_CHECK_OK(mt_buffer_read(y, by, 64, sizeof y, NULL));
    for (int i = 0; i < N; i++) MT_CHECK(y[i] == 2.0f * (float)i + 1.0f);
    /* a launch that does not match the parameter list is refused (where the driver tells) */
    mt_status st = dev->ops->kernel_launch(dev, k2, 3, args, N, 1, NULL);
    if (st == MT_OK) printf("note: the driver cannot report kernel parameters\n");
    else MT_CHECK_EQ_INT(st, MT_ERR_INVALID);
    MT_CHECK_OK(mt_device_sync(dev));
    dev->ops->kernel_free(dev, k1);
    dev->ops->kernel_free(dev, k2);
    mt_buffer_release(bx);
    mt_buffer_release(by);
    mt_device_release(dev);
}

/* A compile error names the kernel and shows NVRTC's log. */
MT_TEST(cuda_kernel_compile_error)
{
    mt_device *dev = open_cuda();
    void *k = NULL;
    MT_CHECK_ERR(dev->ops->kernel_build(dev, "extern \"C\" __global__ void bad() { nope; }",
                                        "bad", &k),
                 MT_ERR_COMPILE, "nope");
    MT_CHECK(k == NULL);
    mt_device_release(dev);
}
