/* Run-time loading of the CUDA driver (libcuda.so.1) and cuBLAS for the CUDA backend.
 *
 * The driver is never linked: a binary that links libcuda cannot even start on a machine
 * without the NVIDIA driver (the dynamic loader fails before main), and CPU-only machines must
 * run the same binary and simply see no CUDA device. So libcuda.so.1 ($MLTRAIN_LIBCUDA first)
 * is dlopen'ed once, every entry point is resolved by its versioned symbol name (the names the
 * toolkit header's macros expand to, e.g. cuMemAlloc_v2), and cuInit(0) is called; any failure
 * (no library, a stub library, no device, a driver older than the API used here) leaves the
 * backend without devices and keeps the reason for the error message of mt_device_open.
 * cuBLAS is loaded the same way on the first GEMM. Entry points of optional fast paths (pinned
 * host memory, cublasGemmEx) may be missing: their pointers stay NULL and the backend keeps to
 * the paths it had without them. Thread-safe: both loaders run under
 * pthread_once and the tables never change afterwards. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_api.h"

/* ---------------------------------------------------------------- the driver */

static pthread_once_t g_cu_once = PTHREAD_ONCE_INIT;
static mt_cu_api g_cu;
static bool g_cu_ok;
static char g_cu_why[1024];

typedef struct sym_entry {
    const char *name;
    const char *fallback; /* older name with the same signature, or NULL */
    void **slot;
    bool optional;
} sym_entry;

static void *open_first(const char *const *names, int n, char *tried, size_t len)
{
    for (int i = 0; i < n; i++) {
        if (!names[i] || !*names[i]) continue;
        void *h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
        if (h) return h;
        const char *e = dlerror();
        size_t used = strlen(tried);
        if (used + 8 < len)
            snprintf(tried + used, len - used, "%s%s", used ? "; " : "", e ? e : names[i]);
    }
    return NULL;
}

/* Resolves every entry; false with why naming the first missing required symbol. */
static bool resolve(void *h, const sym_entry *syms, size_t n, const char *lib, char *why,
                    size_t len)
{
    for (size_t i = 0; i < n; i++) {
        void *p = dlsym(h, syms[i].name);
        if (!p && syms[i].fallback) p = dlsym(h, syms[i].fallback);
        if (!p && !syms[i].optional) {
            snprintf(why, len, "%s lacks %s (driver too old for this mltrain?)", lib,
                     syms[i].name);
            return false;
        }
        *syms[i].slot = p;
    }
    return true;
}

static void cu_load_once(void)
{
    char tried[900] = "";
    const char *env = getenv("MLTRAIN_LIBCUDA");
    const char *names[] = {env, "libcuda.so.1"};
    void *h = open_first(names, 2, tried, sizeof tried);
    if (!h) {
        snprintf(g_cu_why, sizeof g_cu_why, "no CUDA driver (%s)", tried);
        return;
    }
    const sym_entry syms[] = {
        {"cuInit", NULL, (void **)&g_cu.Init, false},
        {"cuDriverGetVersion", NULL, (void **)&g_cu.DriverGetVersion, false},
        {"cuGetErrorName", NULL, (void **)&g_cu.GetErrorName, false},
        {"cuGetErrorString", NULL, (void **)&g_cu.GetErrorString, false},
        {"cuDeviceGetCount", NULL, (void **)&g_cu.DeviceGetCount, false},
        {"cuDeviceGet", NULL, (void **)&g_cu.DeviceGet, false},
        {"cuDeviceGetName", NULL, (void **)&g_cu.DeviceGetName, false},
        {"cuDeviceTotalMem_v2", NULL, (void **)&g_cu.DeviceTotalMem, false},
        {"cuDeviceGetAttribute", NULL, (void **)&g_cu.DeviceGetAttribute, false},
        {"cuDevicePrimaryCtxRetain", NULL, (void **)&g_cu.DevicePrimaryCtxRetain, false},
        {"cuDevicePrimaryCtxRelease_v2", NULL, (void **)&g_cu.DevicePrimaryCtxRelease, false},
        {"cuCtxSetCurrent", NULL, (void **)&g_cu.CtxSetCurrent, false},
        {"cuCtxSynchronize", NULL, (void **)&g_cu.CtxSynchronize, false},
        {"cuStreamCreate", NULL, (void **)&g_cu.StreamCreate, false},
        {"cuStreamDestroy_v2", NULL, (void **)&g_cu.StreamDestroy, false},
        {"cuStreamSynchronize", NULL, (void **)&g_cu.StreamSynchronize, false},
        {"cuStreamWaitEvent", NULL, (void **)&g_cu.StreamWaitEvent, false},
        {"cuEventCreate", NULL, (void **)&g_cu.EventCreate, false},
        {"cuEventDestroy_v2", NULL, (void **)&g_cu.EventDestroy, false},
        {"cuEventRecord", NULL, (void **)&g_cu.EventRecord, false},
        {"cuEventSynchronize", NULL, (void **)&g_cu.EventSynchronize, false},
        {"cuEventQuery", NULL, (void **)&g_cu.EventQuery, false},
        /* same signature; _v2 (driver >= 12.8) reports sub-microsecond differences correctly */
        {"cuEventElapsedTime_v2", "cuEventElapsedTime", (void **)&g_cu.EventElapsedTime, false},
        {"cuMemAlloc_v2", NULL, (void **)&g_cu.MemAlloc, false},
        {"cuMemFree_v2", NULL, (void **)&g_cu.MemFree, false},
        {"cuMemGetInfo_v2", NULL, (void **)&g_cu.MemGetInfo, false},
        {"cuMemcpyHtoDAsync_v2", NULL, (void **)&g_cu.MemcpyHtoDAsync, false},
        {"cuMemcpyDtoHAsync_v2", NULL, (void **)&g_cu.MemcpyDtoHAsync, false},
        {"cuMemcpyDtoDAsync_v2", NULL, (void **)&g_cu.MemcpyDtoDAsync, false},
        {"cuModuleLoadData", NULL, (void **)&g_cu.ModuleLoadData, false},
        {"cuModuleUnload", NULL, (void **)&g_cu.ModuleUnload, false},
        {"cuModuleGetFunction", NULL, (void **)&g_cu.ModuleGetFunction, false},
        {"cuFuncGetAttribute", NULL, (void **)&g_cu.FuncGetAttribute, false},
        {"cuFuncGetParamInfo", NULL, (void **)&g_cu.FuncGetParamInfo, true},
        {"cuLaunchKernel", NULL, (void **)&g_cu.LaunchKernel, false},
        {"cuMemHostAlloc", NULL, (void **)&g_cu.MemHostAlloc, true},
        {"cuMemFreeHost", NULL, (void **)&g_cu.MemFreeHost, true},
    };
    if (!resolve(h, syms, sizeof syms / sizeof syms[0], "libcuda.so.1", g_cu_why,
                 sizeof g_cu_why)) {
        memset(&g_cu, 0, sizeof g_cu);
        dlclose(h);
        return;
    }
    CUresult r = g_cu.Init(0);
    if (r != CUDA_SUCCESS) {
        /* the stub library cannot name its own errors: spell out the common codes */
        const char *name = NULL;
        if (g_cu.GetErrorName(r, &name) != CUDA_SUCCESS || !name) name = NULL;
        if (r == CUDA_ERROR_NO_DEVICE)
            snprintf(g_cu_why, sizeof g_cu_why, "CUDA driver reports no device (cuInit: %s)",
                     name ? name : "CUDA_ERROR_NO_DEVICE");
        else if (r == CUDA_ERROR_STUB_LIBRARY)
            snprintf(g_cu_why, sizeof g_cu_why, "no CUDA driver (libcuda.so.1 is the toolkit's "
                     "stub library: cuInit: CUDA_ERROR_STUB_LIBRARY)");
        else if (r == CUDA_ERROR_SYSTEM_DRIVER_MISMATCH ||
                 r == CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE)
            snprintf(g_cu_why, sizeof g_cu_why, "CUDA driver too old or incompatible (cuInit: %s)",
                     name ? name : "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH");
        else
            snprintf(g_cu_why, sizeof g_cu_why, "CUDA driver failed to initialise (cuInit: %s, "
                     "code %d)", name ? name : "unknown error", (int)r);
        memset(&g_cu, 0, sizeof g_cu);
        dlclose(h);
        return;
    }
    g_cu_ok = true; /* the library stays loaded for the life of the process */
}

const mt_cu_api *mt__cu_api(char *why, size_t why_len)
{
    pthread_once(&g_cu_once, cu_load_once);
    if (!g_cu_ok) {
        if (why && why_len) snprintf(why, why_len, "%s", g_cu_why);
        return NULL;
    }
    return &g_cu;
}

const char *mt__cu_err_name(CUresult r)
{
    static __thread char buf[32];
    const char *name = NULL;
    if (g_cu_ok && g_cu.GetErrorName(r, &name) == CUDA_SUCCESS && name) return name;
    snprintf(buf, sizeof buf, "CUresult %d", (int)r);
    return buf;
}

mt_status mt__cu_status(CUresult r)
{
    switch (r) {
    case CUDA_SUCCESS: return MT_OK;
    case CUDA_ERROR_OUT_OF_MEMORY: return MT_ERR_NOMEM;
    case CUDA_ERROR_INVALID_VALUE: return MT_ERR_INVALID;
    default: return MT_ERR_DEVICE;
    }
}

/* ---------------------------------------------------------------- cuBLAS */

static pthread_once_t g_cb_once = PTHREAD_ONCE_INIT;
static mt_cublas_api g_cb;
static bool g_cb_ok;
static char g_cb_why[1400];

static void cb_load_once(void)
{
    char tried[1000] = "", p1[600] = "";
    const char *env = getenv("MLTRAIN_CUBLAS");
    const char *home = getenv("CUDA_HOME");
    if (home && *home) snprintf(p1, sizeof p1, "%s/lib64/libcublas.so.13", home);
    const char *names[] = {env, "libcublas.so.13", p1, "/usr/local/cuda/lib64/libcublas.so.13",
                           "libcublas.so"};
    void *h = open_first(names, 5, tried, sizeof tried);
    if (!h) {
        snprintf(g_cb_why, sizeof g_cb_why, "cuBLAS not found (%s)", tried);
        return;
    }
    const sym_entry syms[] = {
        {"cublasCreate_v2", NULL, (void **)&g_cb.Create, false},
        {"cublasDestroy_v2", NULL, (void **)&g_cb.Destroy, false},
        {"cublasSetStream_v2", NULL, (void **)&g_cb.SetStream, false},
        {"cublasGetStatusName", NULL, (void **)&g_cb.GetStatusName, true},
        {"cublasSgemm_v2_64", NULL, (void **)&g_cb.Sgemm, false},
        {"cublasDgemm_v2_64", NULL, (void **)&g_cb.Dgemm, false},
        {"cublasSgemmStridedBatched_64", NULL, (void **)&g_cb.SgemmStridedBatched, false},
        {"cublasDgemmStridedBatched_64", NULL, (void **)&g_cb.DgemmStridedBatched, false},
        {"cublasSetMathMode", NULL, (void **)&g_cb.SetMathMode, true},
        {"cublasGemmEx_64", NULL, (void **)&g_cb.GemmEx, true},
        {"cublasGemmStridedBatchedEx_64", NULL, (void **)&g_cb.GemmStridedBatchedEx, true},
    };
    if (!resolve(h, syms, sizeof syms / sizeof syms[0], "libcublas", g_cb_why, sizeof g_cb_why)) {
        memset(&g_cb, 0, sizeof g_cb);
        dlclose(h);
        return;
    }
    if (!g_cb.GemmEx || !g_cb.GemmStridedBatchedEx) { /* half products: both or neither */
        g_cb.GemmEx = NULL;
        g_cb.GemmStridedBatchedEx = NULL;
    }
    g_cb_ok = true;
}

const mt_cublas_api *mt__cublas_api(char *why, size_t why_len)
{
    pthread_once(&g_cb_once, cb_load_once);
    if (!g_cb_ok) {
        if (why && why_len) snprintf(why, why_len, "%s", g_cb_why);
        return NULL;
    }
    return &g_cb;
}
