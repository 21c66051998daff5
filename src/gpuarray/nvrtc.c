/* NVRTC, the CUDA C compiler library, loaded at run time with dlopen (contract in nvrtc.h).
 *
 * The library is looked up once per process ($MLTRAIN_NVRTC, libnvrtc.so.13, libnvrtc.so,
 * $CUDA_HOME/lib64, /usr/local/cuda/lib64) and its entry points are resolved with dlsym into a
 * table of function pointers, so this file needs no CUDA header and a binary built with CUDA
 * support starts on machines without the toolkit. NVRTC itself works without a GPU (it is a
 * pure compiler), so CPU-only machines compile generated kernels to PTX and cubin for any
 * architecture the library knows. Every NVRTC call here is checked; failures name the call,
 * NVRTC's error string, the program name and the target architecture. Thread-safe: the loader
 * runs under pthread_once and NVRTC programs are per call. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nvrtc.h"

/* The NVRTC ABI as used here (nvrtc.h: nvrtcResult is an int-sized enum, nvrtcProgram an
 * opaque pointer). */
typedef int nv_result;
typedef struct nv_prog_s *nv_prog;

typedef struct nvrtc_api {
    const char *(*GetErrorString)(nv_result);
    nv_result (*Version)(int *, int *);
    nv_result (*GetNumSupportedArchs)(int *);
    nv_result (*GetSupportedArchs)(int *);
    nv_result (*CreateProgram)(nv_prog *, const char *, const char *, int, const char *const *,
                               const char *const *);
    nv_result (*DestroyProgram)(nv_prog *);
    nv_result (*CompileProgram)(nv_prog, int, const char *const *);
    nv_result (*GetPTXSize)(nv_prog, size_t *);
    nv_result (*GetPTX)(nv_prog, char *);
    nv_result (*GetCUBINSize)(nv_prog, size_t *);
    nv_result (*GetCUBIN)(nv_prog, char *);
    nv_result (*GetProgramLogSize)(nv_prog, size_t *);
    nv_result (*GetProgramLog)(nv_prog, char *);
} nvrtc_api;

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static nvrtc_api g_api;
static bool g_ok;
static char g_why[2200];
static int g_major, g_minor;
static int g_archs[64];
static int g_narchs;

#define LOG_LINES 20

/* Tries one library name; appends dlerror to why on failure. */
static void *try_open(const char *name, char *why, size_t len)
{
    void *h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        size_t used = strlen(why);
        if (used + 4 < len)
            snprintf(why + used, len - used, "%s%s", used ? "; " : "", e ? e : name);
    }
    return h;
}

static void load_once(void)
{
    char tried[2048] = "";
    void *h = NULL;
    const char *env = getenv("MLTRAIN_NVRTC");
    if (env && *env) h = try_open(env, tried, sizeof tried);
    if (!h) h = try_open("libnvrtc.so.13", tried, sizeof tried);
    if (!h) h = try_open("libnvrtc.so", tried, sizeof tried);
    const char *home = getenv("CUDA_HOME");
    char path[1200];
    if (!h && home && *home) {
        snprintf(path, sizeof path, "%s/lib64/libnvrtc.so", home);
        h = try_open(path, tried, sizeof tried);
    }
    if (!h) h = try_open("/usr/local/cuda/lib64/libnvrtc.so", tried, sizeof tried);
    if (!h) {
        snprintf(g_why, sizeof g_why, "libnvrtc not found (%s)", tried);
        return;
    }
    struct {
        const char *name;
        void **slot;
    } syms[] = {
        {"nvrtcGetErrorString", (void **)&g_api.GetErrorString},
        {"nvrtcVersion", (void **)&g_api.Version},
        {"nvrtcGetNumSupportedArchs", (void **)&g_api.GetNumSupportedArchs},
        {"nvrtcGetSupportedArchs", (void **)&g_api.GetSupportedArchs},
        {"nvrtcCreateProgram", (void **)&g_api.CreateProgram},
        {"nvrtcDestroyProgram", (void **)&g_api.DestroyProgram},
        {"nvrtcCompileProgram", (void **)&g_api.CompileProgram},
        {"nvrtcGetPTXSize", (void **)&g_api.GetPTXSize},
        {"nvrtcGetPTX", (void **)&g_api.GetPTX},
        {"nvrtcGetCUBINSize", (void **)&g_api.GetCUBINSize},
        {"nvrtcGetCUBIN", (void **)&g_api.GetCUBIN},
        {"nvrtcGetProgramLogSize", (void **)&g_api.GetProgramLogSize},
        {"nvrtcGetProgramLog", (void **)&g_api.GetProgramLog},
    };
    for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++) {
        *syms[i].slot = dlsym(h, syms[i].name);
        if (!*syms[i].slot) {
            snprintf(g_why, sizeof g_why, "libnvrtc lacks %s (too old an NVRTC?)", syms[i].name);
            dlclose(h);
            memset(&g_api, 0, sizeof g_api);
            return;
        }
    }
    if (g_api.Version(&g_major, &g_minor) != 0) {
        snprintf(g_why, sizeof g_why, "nvrtcVersion failed");
        memset(&g_api, 0, sizeof g_api);
        dlclose(h);
        return;
    }
    int n = 0;
    if (g_api.GetNumSupportedArchs(&n) == 0 && n > 0 && n <= (int)(sizeof g_archs / sizeof g_archs[0])) {
        if (g_api.GetSupportedArchs(g_archs) == 0) g_narchs = n;
    }
    g_ok = true; /* the handle stays open for the life of the process */
}

bool mt__nvrtc_available(char *why, size_t why_len)
{
    pthread_once(&g_once, load_once);
    if (!g_ok && why && why_len) snprintf(why, why_len, "%s", g_why);
    return g_ok;
}

mt_status mt__nvrtc_version(int *major, int *minor)
{
    pthread_once(&g_once, load_once);
    if (!g_ok) return mt_err_set(MT_ERR_NOT_FOUND, "CUDA compiler not available: %s", g_why);
    *major = g_major;
    *minor = g_minor;
    return MT_OK;
}

int32_t mt__nvrtc_archs(int *archs, int32_t cap)
{
    pthread_once(&g_once, load_once);
    if (!g_ok) return 0;
    int32_t n = g_narchs < cap ? g_narchs : cap;
    for (int32_t i = 0; i < n; i++) archs[i] = g_archs[i];
    return n;
}

static const char *err_name(nv_result r)
{
    const char *s = g_api.GetErrorString ? g_api.GetErrorString(r) : NULL;
    return s ? s : "NVRTC_ERROR_UNKNOWN";
}

/* The first LOG_LINES lines of the program log (mt_malloc'd; NULL if there is none). */
static char *log_head(nv_prog prog)
{
    size_t n = 0;
    if (g_api.GetProgramLogSize(prog, &n) != 0 || n <= 1) return NULL;
    char *log = mt_malloc(n + 1);
    if (!log) {
        mt_err_clear();
        return NULL;
    }
    if (g_api.GetProgramLog(prog, log) != 0) {
        mt_free(log);
        return NULL;
    }
    log[n] = 0;
    int lines = 0;
    for (char *p = log; *p; p++) {
        if (*p == '\n' && ++lines == LOG_LINES) {
            *p = 0;
            break;
        }
    }
    size_t len = strlen(log);
    while (len && (log[len - 1] == '\n' || log[len - 1] == '\r')) log[--len] = 0;
    return log;
}

mt_status mt__nvrtc_compile(const char *source, const char *name, int arch, bool cubin,
                            char **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    pthread_once(&g_once, load_once);
    if (!g_ok) return mt_err_set(MT_ERR_NOT_FOUND, "CUDA compiler not available: %s", g_why);
    if (!source || arch < 10 || arch > 10000)
        return mt_err_set(MT_ERR_INVALID, "nvrtc: invalid source or architecture %d", arch);
    if (!name || !*name) name = "kernel.cu";
    char arch_opt[64];
    snprintf(arch_opt, sizeof arch_opt, "--gpu-architecture=%s_%d", cubin ? "sm" : "compute",
             arch);
    const char *opts[] = {"-std=c++17", arch_opt, "--fmad=false", "-default-device"};
    nv_prog prog = NULL;
    nv_result r = g_api.CreateProgram(&prog, source, name, 0, NULL, NULL);
    if (r != 0)
        return mt_err_set(MT_ERR_COMPILE, "nvrtcCreateProgram('%s'): %s", name, err_name(r));
    mt_status st = MT_OK;
    r = g_api.CompileProgram(prog, (int)(sizeof opts / sizeof opts[0]), opts);
    if (r != 0) {
        char *log = log_head(prog);
        st = mt_err_set(MT_ERR_COMPILE, "nvrtcCompileProgram('%s', %s_%d, NVRTC %d.%d): %s%s%s",
                        name, cubin ? "sm" : "compute", arch, g_major, g_minor, err_name(r),
                        log ? ":\n" : "", log ? log : "");
        mt_free(log);
        goto done;
    }
    size_t n = 0;
    r = cubin ? g_api.GetCUBINSize(prog, &n) : g_api.GetPTXSize(prog, &n);
    if (r != 0 || n == 0) {
        st = mt_err_set(MT_ERR_COMPILE, "%s('%s', %s_%d): %s", cubin ? "nvrtcGetCUBINSize" :
                        "nvrtcGetPTXSize", name, cubin ? "sm" : "compute", arch,
                        r != 0 ? err_name(r) : "empty image");
        goto done;
    }
    char *img = mt_malloc(n + 1);
    if (!img) {
        st = MT_ERR_NOMEM;
        goto done;
    }
    r = cubin ? g_api.GetCUBIN(prog, img) : g_api.GetPTX(prog, img);
    if (r != 0) {
        mt_free(img);
        st = mt_err_set(MT_ERR_COMPILE, "%s('%s', %s_%d): %s", cubin ? "nvrtcGetCUBIN" :
                        "nvrtcGetPTX", name, cubin ? "sm" : "compute", arch, err_name(r));
        goto done;
    }
    img[n] = 0; /* PTX already ends in NUL (counted in n); keeps cubins safe for printing too */
    *out = img;
    *out_len = n;
done:
    g_api.DestroyProgram(&prog);
    return st;
}
