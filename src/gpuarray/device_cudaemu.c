/* The CUDA emulation device "cudaemu:0": a checking backend that lets machines without a GPU
 * compile and execute every CUDA C kernel the code generators emit.
 *
 * Towards everything above gpuarray it is a CUDA device: its kernel language is CUDA C, its
 * memory is not host-addressable (callers go through read/write/copy as for a GPU), reductions
 * and copies take the device paths. Underneath, memory is host memory with guard zones, and each
 * kernel is built twice:
 *   1. NVRTC (nvrtc.h, loaded at run time, runs on the CPU) compiles the source to a cubin for
 *      sm_80 and for sm_90; a failure is ERR_COMPILE with NVRTC's log. This is the check that a
 *      generated-code bug fails CI without a GPU. A success is recorded in the kernel cache
 *      (keyed by the source and the NVRTC version) so other processes skip the same compile.
 *      Without libnvrtc this step is skipped with one warning, and the statistics say so.
 *   2. The host C++ compiler (MLTRAIN_CXX, else c++ or g++ on PATH) compiles the same source
 *      after a small header that defines the CUDA qualifiers, the built-in index variables and
 *      the intrinsics the prelude uses, followed by a launch trampoline generated from the
 *      kernel's `extern "C" __global__ void NAME(...)` signature. The shared object lands in the
 *      kernel cache (content-addressed, published by rename like hostcc.c) and is dlopen'ed.
 * A launch emulates a grid of up to 4 blocks of 32 threads, run one thread after the other: the
 * generated kernels are grid-stride loops without shared memory or barriers (__shared__ and
 * __syncthreads are deliberately left undefined, so a kernel that needs them does not build
 * here), so every work item runs exactly once and the result equals a GPU's up to the device
 * math library. Each launch checks the arguments against the kernel's parameters (count,
 * pointer or value, size) and the guard zones around every buffer it was given, so packing
 * mistakes and out-of-bounds writes are errors instead of silent corruption. GEMM runs on the
 * host's cblas. The device is listed by mt_device_list only with MLTRAIN_CUDAEMU=1 (it is not
 * real hardware) and can always be opened by name. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cudaemu.h"
#include "gpuarray_impl.h"
#include "nvrtc.h"

static const int k_archs[] = {80, 90};
#define N_ARCHS ((int)(sizeof k_archs / sizeof k_archs[0]))

static const char *const cxx_flags[] = {"-std=c++17",        "-O1",   "-fno-fast-math",
                                        "-ffp-contract=off", "-fPIC", "-shared",
                                        "-w"};
#define N_FLAGS (sizeof cxx_flags / sizeof cxx_flags[0])
#define MAX_CMD_WORDS 16
#define MAX_PARAMS 256

/* Emulated launch shape: blocks of EMU_BLOCK threads, at most EMU_MAX_GRID blocks. */
#define EMU_BLOCK 32
#define EMU_MAX_GRID 4

/* Buffer layout: [header][guard][user bytes][guard, to the next 64 bytes and GUARD more]. */
#define HDR_BYTES 64
#define GUARD_BYTES 64
#define GUARD_FILL 0xA5
#define BUF_MAGIC 0x756d6564616375ull /* "cudaemu" */

typedef struct emu_hdr {
    uint64_t magic;
    size_t size;
} emu_hdr;

/* ---------------------------------------------------------------- statistics */

static int64_t g_kernels, g_checked, g_cached, g_cxx, g_launches;
static int g_nvrtc_warned;

void mt__cudaemu_get_stats(mt_cudaemu_stats *out)
{
    out->kernels = __atomic_load_n(&g_kernels, __ATOMIC_RELAXED);
    out->nvrtc_checked = __atomic_load_n(&g_checked, __ATOMIC_RELAXED);
    out->nvrtc_cached = __atomic_load_n(&g_cached, __ATOMIC_RELAXED);
    out->cxx_compiled = __atomic_load_n(&g_cxx, __ATOMIC_RELAXED);
    out->launches = __atomic_load_n(&g_launches, __ATOMIC_RELAXED);
    out->nvrtc_available = mt__nvrtc_available(NULL, 0);
}

const char *mt__cudaemu_archs_text(void)
{
    return "sm_80 and sm_90";
}

/* ---------------------------------------------------------------- the host C++ compiler */

static pthread_once_t g_cxx_once = PTHREAD_ONCE_INIT;
static char g_cxx_cmd[512];
static char g_cxx_version[256];
static char g_cxx_why[700];
static bool g_cxx_ok;

/* First line of `cmd --version`; false when it cannot be run. */
static bool cxx_version(const char *cmd, char *out, size_t len)
{
    char buf[512], *words[MAX_CMD_WORDS + 2];
    snprintf(buf, sizeof buf, "%s", cmd);
    int nw = mt__split_words(buf, words, MAX_CMD_WORDS);
    int fds[2];
    if (nw == 0 || pipe2(fds, O_CLOEXEC) != 0) return false;
    words[nw] = "--version";
    words[nw + 1] = NULL;
    int code = -1;
    mt_status st = mt__run_program(words, fds[1], &code);
    close(fds[1]);
    char line[256] = {0};
    ssize_t got = st == MT_OK && code == 0 ? read(fds[0], line, sizeof line - 1) : -1;
    close(fds[0]);
    if (st != MT_OK) mt_err_clear();
    if (got <= 0) return false;
    line[got] = 0;
    line[strcspn(line, "\r\n")] = 0;
    snprintf(out, len, "%s", line);
    return true;
}

static void cxx_find(void)
{
    const char *env = getenv("MLTRAIN_CXX");
    const char *cands[3] = {NULL, "c++", "g++"};
    int first = 1;
    if (env && *env) {
        cands[0] = env;
        first = 0;
    }
    for (int i = first; i < 3; i++) {
        if (!cands[i]) continue;
        if (cxx_version(cands[i], g_cxx_version, sizeof g_cxx_version)) {
            snprintf(g_cxx_cmd, sizeof g_cxx_cmd, "%s", cands[i]);
            g_cxx_ok = true;
            return;
        }
        if (i == 0) break; /* an explicit MLTRAIN_CXX that does not run is an error, no fallback */
    }
    snprintf(g_cxx_why, sizeof g_cxx_why,
             env && *env ? "the C++ compiler MLTRAIN_CXX='%s' cannot be run"
                         : "no host C++ compiler (c++ or g++ on PATH, or set MLTRAIN_CXX)%s",
             env && *env ? env : "");
}

/* ---------------------------------------------------------------- kernel cache directory */

/* The directory, its checks and the entries' verification are the shared kernel cache's
 * (mt__kcache_*, hostcc.c). */

static void hash_hex(const char *const *parts, size_t nparts, char hex[65])
{
    mt_sha256 s;
    mt_sha256_init(&s);
    for (size_t i = 0; i < nparts; i++) mt_sha256_update(&s, parts[i], strlen(parts[i]) + 1);
    uint8_t d[32];
    mt_sha256_final(&s, d);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

static mt_status write_file(const char *path, const char *data)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return mt_err_errno(errno, "creating '%s'", path);
    size_t n = strlen(data);
    while (n > 0) {
        ssize_t w = write(fd, data, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            int e = errno ? errno : EIO;
            close(fd);
            return mt_err_errno(e, "writing '%s'", path);
        }
        data += w;
        n -= (size_t)w;
    }
    close(fd);
    return MT_OK;
}

/* ---------------------------------------------------------------- step 1: NVRTC */

static bool env_flag(const char *name)
{
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0") != 0;
}

/* Compiles source with NVRTC for every architecture of k_archs (or finds the record that an
 * earlier process did). *checked: whether NVRTC ran or was recorded; false only without
 * libnvrtc. */
static mt_status nvrtc_check(const mt_kcache *kc, const char *source, const char *entry,
                             bool *checked)
{
    const char *dir = kc->dir;
    *checked = false;
    char why[600];
    if (!mt__nvrtc_available(why, sizeof why)) {
        if (__atomic_exchange_n(&g_nvrtc_warned, 1, __ATOMIC_ACQ_REL) == 0)
            mt_log(MT_LOG_WARN, "cudaemu: %s; kernels run without the NVRTC check for %s", why,
                   mt__cudaemu_archs_text());
        return MT_OK;
    }
    int major = 0, minor = 0;
    mt_status st = mt__nvrtc_version(&major, &minor);
    if (st != MT_OK) return st;
    char ver[32], key[65], path[4200], mark[128], *rec = NULL;
    size_t nrec = 0;
    snprintf(ver, sizeof ver, "nvrtc %d.%d archs 80,90 cubin", major, minor);
    const char *parts[] = {"mltrain-cudaemu-nvrtc/3", source, ver};
    hash_hex(parts, 3, key);
    snprintf(mark, sizeof mark, "cudaemu-%s.nvrtc-ok", key);
    if (!env_flag("MLTRAIN_CUDAEMU_RECHECK") &&
        mt__kcache_read(kc, mark, MT_KCACHE_ANY, &rec, &nrec, path, sizeof path)) {
        mt_free(rec);
        *checked = true;
        __atomic_fetch_add(&g_cached, 1, __ATOMIC_RELAXED);
        return MT_OK;
    }
    char name[160];
    snprintf(name, sizeof name, "%s.cu", entry);
    for (int a = 0; a < N_ARCHS; a++) {
        char *img = NULL;
        size_t n = 0;
        st = mt__nvrtc_compile(source, name, k_archs[a], true, &img, &n);
        mt_free(img);
        if (st != MT_OK) {
            char msg[4000], kept[4200];
            snprintf(msg, sizeof msg, "%s", mt_last_error());
            snprintf(kept, sizeof kept, "%s/cudaemu-%s-failed.cu", dir, key);
            if (write_file(kept, source) != MT_OK) snprintf(kept, sizeof kept, "(not kept)");
            return mt_err_set(st, "cudaemu: kernel '%s' does not compile for sm_%d (source kept "
                              "at %s): %s", entry, k_archs[a], kept, msg);
        }
    }
    /* best effort: a missing record only costs the next process a compile */
    if (mt__kcache_write(kc, mark, "ok\n", 3) != MT_OK) mt_err_clear();
    *checked = true;
    return MT_OK;
}

/* ---------------------------------------------------------------- step 2: host C++ */

/* Defines what CUDA C needs beyond C++ for the kernels of mltrain's generators. */
static const char shim[] =
    "/* mltrain cudaemu: CUDA C compiled for the host */\n"
    "#include <stdint.h>\n"
    "#include <string.h>\n"
    "#include <math.h>\n"
    "#define __global__\n"
    "#define __device__\n"
    "#define __host__\n"
    "#define __forceinline__ inline\n"
    "#define __noinline__ __attribute__((noinline))\n"
    "#define __launch_bounds__(...)\n"
    "struct mt_emu_uint3 { unsigned int x, y, z; };\n"
    "static thread_local mt_emu_uint3 threadIdx, blockIdx, blockDim, gridDim;\n"
    "static inline float __uint_as_float(unsigned int u) { float f; memcpy(&f, &u, 4); return f; }\n"
    "static inline unsigned int __float_as_uint(float f) { unsigned int u; memcpy(&u, &f, 4); return u; }\n"
    "static inline float __int_as_float(int u) { float f; memcpy(&f, &u, 4); return f; }\n"
    "static inline int __float_as_int(float f) { int u; memcpy(&u, &f, 4); return u; }\n"
    "static inline long long __double_as_longlong(double d) { long long u; memcpy(&u, &d, 8); return u; }\n"
    "static inline double __longlong_as_double(long long u) { double d; memcpy(&d, &u, 8); return d; }\n"
    "static inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz((unsigned int)x); }\n"
    "static inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll((unsigned long long)x); }\n"
    "static inline int __popc(unsigned int x) { return __builtin_popcount(x); }\n"
    "static inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }\n"
    "static inline int __ffs(int x) { return __builtin_ffs(x); }\n"
    "static inline int __ffsll(long long x) { return __builtin_ffsll(x); }\n"
    "static inline unsigned int __umulhi(unsigned int a, unsigned int b) { return (unsigned int)(((unsigned long long)a * b) >> 32); }\n"
    "static inline unsigned long long __umul64hi(unsigned long long a, unsigned long long b) { return (unsigned long long)(((unsigned __int128)a * b) >> 64); }\n"
    /* round-to-nearest arithmetic: what the host does without contraction */
    "static inline float __fadd_rn(float a, float b) { return a + b; }\n"
    "static inline float __fsub_rn(float a, float b) { return a - b; }\n"
    "static inline float __fmul_rn(float a, float b) { return a * b; }\n"
    "static inline float __fdiv_rn(float a, float b) { return a / b; }\n"
    "static inline float __frcp_rn(float a) { return 1.0f / a; }\n"
    "static inline float __fsqrt_rn(float a) { return sqrtf(a); }\n"
    "static inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }\n"
    "static inline double __dadd_rn(double a, double b) { return a + b; }\n"
    "static inline double __dsub_rn(double a, double b) { return a - b; }\n"
    "static inline double __dmul_rn(double a, double b) { return a * b; }\n"
    "static inline double __ddiv_rn(double a, double b) { return a / b; }\n"
    "static inline double __drcp_rn(double a) { return 1.0 / a; }\n"
    "static inline double __dsqrt_rn(double a) { return sqrt(a); }\n"
    "static inline double __fma_rn(double a, double b, double c) { return fma(a, b, c); }\n"
    /* the fast-math intrinsics, as their accurate counterparts (a GPU is less exact); macros,
     * since glibc declares functions of some of these names */
    "#define __expf(x) expf(x)\n"
    "#define __exp10f(x) powf(10.0f, (x))\n"
    "#define __logf(x) logf(x)\n"
    "#define __log2f(x) log2f(x)\n"
    "#define __log10f(x) log10f(x)\n"
    "#define __sinf(x) sinf(x)\n"
    "#define __cosf(x) cosf(x)\n"
    "#define __tanf(x) tanf(x)\n"
    "#define __powf(x, y) powf((x), (y))\n"
    "#define __fdividef(a, b) ((a) / (b))\n"
    "static inline float __saturatef(float x) { return x >= 1.0f ? 1.0f : (x > 0.0f ? x : 0.0f); }\n"
    /* CUDA math functions that C++ lacks */
    "static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }\n"
    "static inline double rsqrt(double x) { return 1.0 / sqrt(x); }\n"
    "static inline float rcbrtf(float x) { return 1.0f / cbrtf(x); }\n"
    "static inline double rcbrt(double x) { return 1.0 / cbrt(x); }\n"
    "static inline float normcdff(float x) { return 0.5f * erfcf(-x * 0.70710678118654752f); }\n"
    "static inline double normcdf(double x) { return 0.5 * erfc(-x * 0.70710678118654752); }\n"
    "static inline int min(int a, int b) { return a < b ? a : b; }\n"
    "static inline int max(int a, int b) { return a > b ? a : b; }\n"
    "static inline unsigned int min(unsigned int a, unsigned int b) { return a < b ? a : b; }\n"
    "static inline unsigned int max(unsigned int a, unsigned int b) { return a > b ? a : b; }\n"
    "static inline long long min(long long a, long long b) { return a < b ? a : b; }\n"
    "static inline long long max(long long a, long long b) { return a > b ? a : b; }\n"
    "static inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }\n"
    "static inline unsigned long long max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }\n"
    "static inline float min(float a, float b) { return fminf(a, b); }\n"
    "static inline float max(float a, float b) { return fmaxf(a, b); }\n"
    "static inline double min(double a, double b) { return fmin(a, b); }\n"
    "static inline double max(double a, double b) { return fmax(a, b); }\n"
    "#line 1 \"kernel.cu\"\n";

typedef struct kparam {
    char type[96];
    bool is_ptr;
} kparam;

/* Parses `extern "C" __global__ void <entry>(...)` of source into params. */
static mt_status parse_signature(const char *source, const char *entry, kparam *params,
                                 int32_t *nparams)
{
    char pat[200];
    snprintf(pat, sizeof pat, "extern \"C\" __global__ void %s(", entry);
    const char *p = strstr(source, pat);
    if (!p)
        return mt_err_set(MT_ERR_COMPILE, "cudaemu: the source of kernel '%s' has no "
                          "'extern \"C\" __global__ void %s(...)' (the CUDA backend looks the "
                          "entry up by its unmangled name)", entry, entry);
    p += strlen(pat);
    int32_t n = 0;
    int depth = 0;
    const char *start = p;
    for (;; p++) {
        if (!*p) return mt_err_set(MT_ERR_COMPILE, "cudaemu: kernel '%s': unterminated "
                                   "parameter list", entry);
        if (*p == '(' || *p == '<') depth++;
        if ((*p == ')' || *p == '>') && depth > 0) {
            depth--;
            continue;
        }
        if (!((*p == ',' && depth == 0) || (*p == ')' && depth == 0))) continue;
        /* one parameter in [start, p): "<type> <name>" */
        const char *b = start, *e = p;
        while (b < e && (*b == ' ' || *b == '\n' || *b == '\t')) b++;
        while (e > b && (e[-1] == ' ' || e[-1] == '\n' || e[-1] == '\t')) e--;
        bool last = *p == ')';
        if (e == b && last && n == 0) break; /* "()" */
        const char *nm = e;
        while (nm > b && (nm[-1] == '_' || (nm[-1] >= '0' && nm[-1] <= '9') ||
                          (nm[-1] >= 'a' && nm[-1] <= 'z') || (nm[-1] >= 'A' && nm[-1] <= 'Z')))
            nm--;
        const char *te = nm;
        while (te > b && te[-1] == ' ') te--;
        if (nm == e || te == b || memchr(b, '&', (size_t)(e - b)) || memchr(b, '[', (size_t)(e - b)))
            return mt_err_set(MT_ERR_COMPILE, "cudaemu: kernel '%s': cannot read parameter %d "
                              "'%.*s' (expected '<type> <name>')", entry, (int)n, (int)(e - b), b);
        if (n >= MAX_PARAMS || (size_t)(te - b) >= sizeof params[0].type)
            return mt_err_set(MT_ERR_RANGE, "cudaemu: kernel '%s': too many or too long "
                              "parameters", entry);
        snprintf(params[n].type, sizeof params[n].type, "%.*s", (int)(te - b), b);
        params[n].is_ptr = memchr(b, '*', (size_t)(te - b)) != NULL;
        n++;
        start = p + 1;
        if (last) break;
    }
    *nparams = n;
    return MT_OK;
}

/* Appends the launch trampoline and the parameter table of the kernel. */
static void append_trampoline(mt_strbuf *sb, const char *entry, const kparam *params,
                              int32_t n)
{
    mt_strbuf_append(sb, "\n/* cudaemu: launch trampoline */\n"
                         "extern \"C\" int mt_emu_params(const int **sizes, const int **ptrs)\n{\n"
                         "    static const int s[] = {0");
    for (int32_t i = 0; i < n; i++) mt_strbuf_appendf(sb, ", (int)sizeof(%s)", params[i].type);
    mt_strbuf_append(sb, "};\n    static const int q[] = {0");
    for (int32_t i = 0; i < n; i++) mt_strbuf_appendf(sb, ", %d", params[i].is_ptr ? 1 : 0);
    mt_strbuf_appendf(sb, "};\n    *sizes = s + 1;\n    *ptrs = q + 1;\n    return %d;\n}\n", (int)n);
    mt_strbuf_append(sb,
                     "extern \"C\" void mt_emu_launch(void **args, unsigned int grid, "
                     "unsigned int block)\n{\n"
                     "    (void)args;\n"
                     "    gridDim.x = grid; gridDim.y = 1; gridDim.z = 1;\n"
                     "    blockDim.x = block; blockDim.y = 1; blockDim.z = 1;\n"
                     "    blockIdx.y = blockIdx.z = threadIdx.y = threadIdx.z = 0;\n"
                     "    for (unsigned int b = 0; b < grid; b++)\n"
                     "        for (unsigned int t = 0; t < block; t++) {\n"
                     "            blockIdx.x = b;\n"
                     "            threadIdx.x = t;\n");
    mt_strbuf_appendf(sb, "            %s(", entry);
    for (int32_t i = 0; i < n; i++)
        mt_strbuf_appendf(sb, "%s*(%s *)args[%d]", i ? ", " : "", params[i].type, (int)i);
    mt_strbuf_append(sb, ");\n        }\n}\n");
}

typedef void (*emu_launch_fn)(void **args, unsigned int grid, unsigned int block);
typedef int (*emu_params_fn)(const int **sizes, const int **ptrs);

typedef struct emu_kernel {
    void *dl;
    emu_launch_fn launch;
    int32_t nparams;
    const int *psize;
    const int *pptr;
    char entry[128];
} emu_kernel;

/* Loads cudaemu-<key>.so from the kernel cache (verified), or compiles the C++ text into it
 * first with the kernel cache's compile step (hostcc.c: temporaries, a failed source kept as
 * cudaemu-<key>-failed.cpp, MLTRAIN_KEEP_KERNEL_SOURCE, trailer + rename). */
static mt_status cxx_compile(const mt_kcache *kc, const char *text, const char *entry, void **dl,
                             char *so_out, size_t so_len)
{
    char key[65], stem[80], kname[128];
    char flags[256] = "";
    for (size_t i = 0; i < N_FLAGS; i++)
        snprintf(flags + strlen(flags), sizeof flags - strlen(flags), "%s ", cxx_flags[i]);
    const char *parts[] = {"mltrain-cudaemu/3", text, g_cxx_cmd, g_cxx_version, flags};
    hash_hex(parts, sizeof parts / sizeof parts[0], key);
    snprintf(stem, sizeof stem, "cudaemu-%s", key);
    snprintf(kname, sizeof kname, "%s.so", stem);
    mt_status hit = mt__kcache_dlopen(kc, kname, MT_KCACHE_ANY, dl, so_out, so_len);
    if (hit == MT_OK) return MT_OK;
    if (hit != MT_ERR_NOT_FOUND) /* verified but not loadable: rebuild it */
        mt_log(MT_LOG_WARN, "cudaemu: rebuilding %s (%s)", so_out, mt_last_error());
    mt_err_clear();
    const mt_cc_spec cc = {.cmd = g_cxx_cmd,
                           .flags = cxx_flags,
                           .nflags = N_FLAGS,
                           .ext = ".cpp",
                           .who = "cudaemu: host C++ compiler",
                           .log_tag = "cudaemu",
                           .compiled = &g_cxx};
    mt_status st = mt__kcache_compile_publish(kc, &cc, stem, text, entry, kname);
    if (st == MT_OK) st = mt__kcache_dlopen(kc, kname, MT_KCACHE_OWN, dl, so_out, so_len);
    return st;
}

static mt_status build_in(const mt_kcache *kc, const char *source, const char *entry,
                         void **kernel)
{
    bool checked = false;
    mt_status st = nvrtc_check(kc, source, entry, &checked);
    if (st != MT_OK) return st;

    kparam *params = mt_calloc(MAX_PARAMS, sizeof *params);
    if (!params) return mt_err_prefix(MT_ERR_NOMEM, "cudaemu kernel '%s': ", entry);
    int32_t np = 0;
    st = parse_signature(source, entry, params, &np);
    mt_strbuf text;
    mt_strbuf_init(&text);
    if (st == MT_OK) {
        mt_strbuf_append(&text, shim);
        mt_strbuf_append(&text, source);
        append_trampoline(&text, entry, params, np);
        st = mt_strbuf_status(&text);
    }
    mt_free(params);
    char so[4200];
    void *dl = NULL;
    if (st == MT_OK) st = cxx_compile(kc, text.data, entry, &dl, so, sizeof so);
    mt_strbuf_deinit(&text);
    if (st != MT_OK) return st;

    emu_kernel *k = mt_calloc(1, sizeof *k);
    if (!k) {
        dlclose(dl);
        return mt_err_prefix(MT_ERR_NOMEM, "cudaemu kernel '%s': ", entry);
    }
    snprintf(k->entry, sizeof k->entry, "%s", entry);
    k->dl = dl;
    void *fl = dlsym(k->dl, "mt_emu_launch"), *fp = dlsym(k->dl, "mt_emu_params");
    if (!fl || !fp) {
        dlclose(k->dl);
        mt_free(k);
        return mt_err_set(MT_ERR_COMPILE, "cudaemu: '%s' lacks its launch trampoline", so);
    }
    /* POSIX guarantees that dlsym's object pointer converts to a function pointer */
    k->launch = (emu_launch_fn)fl;
    k->nparams = ((emu_params_fn)fp)(&k->psize, &k->pptr);
    __atomic_fetch_add(&g_kernels, 1, __ATOMIC_RELAXED);
    if (checked) __atomic_fetch_add(&g_checked, 1, __ATOMIC_RELAXED);
    *kernel = k;
    return MT_OK;
}

static mt_status emu_kernel_build(mt_device *dev, const char *source, const char *entry,
                                  void **kernel)
{
    (void)dev;
    *kernel = NULL;
    pthread_once(&g_cxx_once, cxx_find);
    if (!g_cxx_ok) return mt_err_set(MT_ERR_NOT_BUILT, "cudaemu: %s", g_cxx_why);
    if (strlen(entry) >= sizeof ((emu_kernel *)0)->entry)
        return mt_err_set(MT_ERR_RANGE, "cudaemu: kernel name '%s' is too long", entry);
    mt_kcache kc;
    mt_status st = mt__kcache_open(&kc);
    if (st != MT_OK) return st;
    st = build_in(&kc, source, entry, kernel);
    mt__kcache_close(&kc); /* removes a private temporary directory (the .so stays mapped) */
    return st;
}

static void emu_kernel_free(mt_device *dev, void *kernel)
{
    (void)dev;
    emu_kernel *k = kernel;
    if (!k) return;
    if (k->dl) dlclose(k->dl);
    mt_free(k);
}

/* ---------------------------------------------------------------- memory with guard zones */

static emu_hdr *hdr_of(void *handle)
{
    return (emu_hdr *)((char *)handle - GUARD_BYTES - HDR_BYTES);
}

static size_t tail_bytes(size_t n)
{
    return (n + 63) / 64 * 64 - n + GUARD_BYTES;
}

/* Bytes of the guard zones around handle that were overwritten (0 = intact). */
static size_t guard_damage(void *handle)
{
    const emu_hdr *h = hdr_of(handle);
    const unsigned char *front = (const unsigned char *)handle - GUARD_BYTES;
    const unsigned char *back = (const unsigned char *)handle + h->size;
    size_t bad = 0, nt = tail_bytes(h->size);
    for (size_t i = 0; i < GUARD_BYTES; i++) bad += front[i] != GUARD_FILL;
    for (size_t i = 0; i < nt; i++) bad += back[i] != GUARD_FILL;
    return bad;
}

static mt_status emu_alloc(mt_device *dev, size_t nbytes, void **handle)
{
    (void)dev;
    size_t total = HDR_BYTES + GUARD_BYTES + nbytes + tail_bytes(nbytes);
    char *base = mt_aligned_alloc(64, total);
    if (!base)
        return mt_err_set(MT_ERR_NOMEM, "cudaemu: out of memory (%zu bytes requested)", nbytes);
    emu_hdr *h = (emu_hdr *)base;
    h->magic = BUF_MAGIC;
    h->size = nbytes;
    memset(base + HDR_BYTES, GUARD_FILL, GUARD_BYTES);
    memset(base + HDR_BYTES + GUARD_BYTES + nbytes, GUARD_FILL, tail_bytes(nbytes));
    *handle = base + HDR_BYTES + GUARD_BYTES;
    return MT_OK;
}

static void emu_free(mt_device *dev, void *handle)
{
    (void)dev;
    if (!handle) return;
    emu_hdr *h = hdr_of(handle);
    if (h->magic != BUF_MAGIC) {
        mt_log(MT_LOG_ERROR, "cudaemu: freeing a buffer whose header was overwritten");
        return; /* leak rather than free a corrupt block */
    }
    size_t bad = guard_damage(handle);
    if (bad)
        mt_log(MT_LOG_ERROR, "cudaemu: %zu guard bytes around a buffer of %zu bytes were "
               "overwritten (an out-of-bounds write)", bad, h->size);
    h->magic = 0;
    mt_aligned_free(h);
}

static mt_status check_range(void *handle, size_t off, size_t n, const char *what)
{
    size_t size = hdr_of(handle)->size;
    if (off > size || n > size - off)
        return mt_err_set(MT_ERR_RANGE, "cudaemu: %s of %zu bytes at offset %zu is outside the "
                          "buffer of %zu bytes", what, n, off, size);
    return MT_OK;
}

static mt_status emu_write(mt_device *dev, void *dst, size_t off, const void *src, size_t n,
                           mt_stream *s)
{
    (void)dev, (void)s;
    mt_status st = check_range(dst, off, n, "write");
    if (st == MT_OK) memcpy((char *)dst + off, src, n);
    return st;
}

static mt_status emu_read(mt_device *dev, void *dst, void *src, size_t off, size_t n,
                          mt_stream *s)
{
    (void)dev, (void)s;
    mt_status st = check_range(src, off, n, "read");
    if (st == MT_OK) memcpy(dst, (const char *)src + off, n);
    return st;
}

static mt_status emu_copy(mt_device *dev, void *dst, size_t doff, void *src, size_t soff,
                          size_t n, mt_stream *s)
{
    (void)dev, (void)s;
    mt_status st = check_range(src, soff, n, "copy source");
    if (st == MT_OK) st = check_range(dst, doff, n, "copy destination");
    if (st == MT_OK) memmove((char *)dst + doff, (const char *)src + soff, n);
    return st;
}

static mt_status emu_sync(mt_device *dev)
{
    (void)dev;
    return MT_OK;
}

/* ---------------------------------------------------------------- launch */

static mt_status emu_kernel_launch(mt_device *dev, void *kernel, int32_t nargs,
                                   const mt_karg *args, int64_t nwork, int64_t grain, mt_stream *s)
{
    (void)dev, (void)grain, (void)s;
    const emu_kernel *k = kernel;
    if (nwork <= 0) return MT_OK;
    if (nargs != k->nparams)
        return mt_err_set(MT_ERR_INTERNAL, "cudaemu: kernel '%s' takes %d parameters, the launch "
                          "passes %d", k->entry, (int)k->nparams, (int)nargs);
    void *stack_a[64];
    char *stack_p[64];
    void **a = stack_a;
    char **ptrs = stack_p;
    if (nargs > 64) {
        a = mt_malloc((size_t)nargs * sizeof *a);
        ptrs = mt_malloc((size_t)nargs * sizeof *ptrs);
        if (!a || !ptrs) {
            mt_free(a);
            mt_free(ptrs);
            return mt_err_prefix(MT_ERR_NOMEM, "cudaemu launch: ");
        }
    }
    mt_status st = MT_OK;
    for (int32_t i = 0; i < nargs && st == MT_OK; i++) {
        const mt_karg *g = &args[i];
        if (g->kind == MT_KARG_BUFFER) {
            if (!k->pptr[i])
                st = mt_err_set(MT_ERR_INTERNAL, "cudaemu: kernel '%s' parameter %d is a value "
                                "of %d bytes, the launch passes a buffer", k->entry, (int)i,
                                k->psize[i]);
            else if (!g->buf || g->buf->dev != dev || !g->buf->handle)
                st = mt_err_set(MT_ERR_INVALID, "cudaemu: kernel '%s' argument %d is not a buffer "
                                "of %s", k->entry, (int)i, dev->info.name);
            else if (g->offset > hdr_of(g->buf->handle)->size)
                st = mt_err_set(MT_ERR_RANGE, "cudaemu: kernel '%s' argument %d: offset %zu past "
                                "the buffer's %zu bytes", k->entry, (int)i, g->offset,
                                hdr_of(g->buf->handle)->size);
            ptrs[i] = (char *)g->buf->handle + g->offset;
            a[i] = &ptrs[i];
        } else {
            if (k->pptr[i] || (size_t)k->psize[i] != g->size)
                st = mt_err_set(MT_ERR_INTERNAL, "cudaemu: kernel '%s' parameter %d is %s of %d "
                                "bytes, the launch passes a value of %zu bytes", k->entry, (int)i,
                                k->pptr[i] ? "a pointer" : "a value", k->psize[i], g->size);
            a[i] = (void *)g->scalar;
        }
    }
    if (st == MT_OK) {
        int64_t blocks = (nwork + EMU_BLOCK - 1) / EMU_BLOCK;
        unsigned int grid = (unsigned int)(blocks < EMU_MAX_GRID ? blocks : EMU_MAX_GRID);
        k->launch(a, grid, EMU_BLOCK);
        __atomic_fetch_add(&g_launches, 1, __ATOMIC_RELAXED);
        for (int32_t i = 0; i < nargs && st == MT_OK; i++) {
            if (args[i].kind != MT_KARG_BUFFER) continue;
            size_t bad = guard_damage(args[i].buf->handle);
            if (bad)
                st = mt_err_set(MT_ERR_INTERNAL, "cudaemu: kernel '%s' wrote %zu bytes outside "
                                "buffer argument %d (%zu bytes, offset %zu, nwork %lld)", k->entry,
                                bad, (int)i, hdr_of(args[i].buf->handle)->size, args[i].offset,
                                (long long)nwork);
        }
    }
    if (a != stack_a) {
        mt_free(a);
        mt_free(ptrs);
    }
    return st;
}

/* ---------------------------------------------------------------- GEMM, device */

static mt_status emu_gemm(mt_device *dev, mt_dtype dt, bool trans_a, bool trans_b, int64_t m,
                          int64_t n, int64_t k, double alpha, void *a, size_t a_off, int64_t lda,
                          int64_t stride_a, void *b, size_t b_off, int64_t ldb, int64_t stride_b,
                          double beta, void *c, size_t c_off, int64_t ldc, int64_t stride_c,
                          int64_t batch, mt_stream *s)
{
    /* the memory is host memory: the host backend's cblas call works on the handles as they are */
    mt_status st = mt__host_ops.gemm(dev, dt, trans_a, trans_b, m, n, k, alpha, a, a_off, lda,
                                     stride_a, b, b_off, ldb, stride_b, beta, c, c_off, ldc,
                                     stride_c, batch, s);
    if (st == MT_OK && guard_damage(c))
        st = mt_err_set(MT_ERR_INTERNAL, "cudaemu: gemm wrote outside its output buffer");
    return st;
}

static void emu_info(mt_device_info *info)
{
    memset(info, 0, sizeof *info);
    snprintf(info->name, sizeof info->name, "cudaemu:0");
    snprintf(info->backend, sizeof info->backend, "cudaemu");
    /* no "CPU" in the text: reduce.c plans device-style work for this device, as for a GPU */
    snprintf(info->description, sizeof info->description,
             "CUDA emulation: kernels compiled by NVRTC for %s, run on the host as C++",
             mt__cudaemu_archs_text());
    long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGE_SIZE);
    info->global_mem = pages > 0 && psize > 0 ? (uint64_t)pages * (uint64_t)psize : 0;
    info->max_alloc = info->global_mem;
    info->compute_units = 2;
    info->fp64 = true;
    info->fp16 = true;
}

static void emu_enumerate(mt_device_info **infos, int32_t *count, int32_t *cap)
{
    if (!env_flag("MLTRAIN_CUDAEMU")) return;
    if (*count >= *cap) {
        int32_t ncap = *cap ? *cap * 2 : 4;
        mt_device_info *nv = mt_realloc(*infos, (size_t)ncap * sizeof *nv);
        if (!nv) return;
        *infos = nv;
        *cap = ncap;
    }
    emu_info(&(*infos)[*count]);
    (*count)++;
}

static mt_status emu_open(mt_device *dev, int32_t platform, int32_t idx)
{
    if (platform != 0 || idx != 0)
        return mt_err_set(MT_ERR_NOT_FOUND, "there is only one CUDA emulation device, cudaemu:0");
    pthread_once(&g_cxx_once, cxx_find);
    if (!g_cxx_ok) return mt_err_set(MT_ERR_NOT_FOUND, "cudaemu: %s", g_cxx_why);
    emu_info(&dev->info);
    return MT_OK;
}

const mt_device_ops mt__cudaemu_ops = {
    .abi_version = MT_DEVICE_OPS_ABI,
    .backend = "cudaemu",
    .klang = MT_KLANG_CUDA,
    .enumerate = emu_enumerate,
    .open = emu_open,
    .alloc = emu_alloc,
    .free = emu_free,
    .write = emu_write,
    .read = emu_read,
    .copy = emu_copy,
    .kernel_build = emu_kernel_build,
    .kernel_free = emu_kernel_free,
    .kernel_launch = emu_kernel_launch,
    .sync = emu_sync,
    .gemm = emu_gemm,
};
