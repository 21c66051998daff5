/* The host C compiler driver: generated C source -> shared object -> function pointer, with a
 * content-addressed disk cache shared by every process on the machine (or cluster filesystem).
 *
 * Cache key: SHA-256 of the source, the compiler command, the first line of its --version (itself
 * cached on disk as cc-<hash>.id, keyed by the compiler files' identity, see ident_path), the
 * flags, the machine (uname -m) and the CPU's model and feature flags (-march=native code must
 * not be loaded on another CPU model sharing the cache directory). Entry: <dir>/<key>.so.
 * On a miss the source is written to a unique temporary name in the cache directory, the
 * compiler runs on it (posix_spawn with an argv, no shell; output to a temporary log), and the
 * result is published with rename(), which is atomic: any number of processes may build the
 * same key at once, each into its own temporary file, the last rename wins, and every process
 * dlopens a complete file. No locks, no partial entries. A compile error keeps the source as
 * <dir>/<key>-failed.c and reports the compiler's first lines; MLTRAIN_KEEP_KERNEL_SOURCE=1 keeps
 * the source of every compiled entry as <dir>/<key>.c.
 * Flags: -O3 -march=native so loops vectorize for this CPU, -fno-math-errno so libm calls can
 * be inlined, -ffp-contract=off so no a*b+c is fused into an FMA (results must match the
 * interpreter and the other backends bit for bit); never -ffast-math (NaN/inf semantics). */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gpuarray_impl.h"

extern char **environ;

static const char *const cc_flags[] = {"-O3", "-march=native", "-fno-math-errno",
                                       "-ffp-contract=off", "-fPIC", "-shared", "-std=gnu11",
                                       "-w"};
#define N_FLAGS (sizeof cc_flags / sizeof cc_flags[0])
#define MAX_CC_WORDS 16
#define LOG_LINES 30

static bool env_no_cc(void)
{
    const char *v = getenv("MLTRAIN_NO_CC");
    return v && *v && strcmp(v, "0") != 0;
}

static const char *cc_command(void)
{
    const char *v = getenv("MLTRAIN_CC");
    return v && *v ? v : MT_HOST_CC;
}

/* Splits the compiler command on blanks ("ccache gcc" works); words point into buf. */
static int split_words(char *buf, char **words, int max)
{
    int n = 0;
    for (char *p = buf; *p && n < max;) {
        while (*p == ' ' || *p == '\t') *p++ = 0;
        if (!*p) break;
        words[n++] = p;
        while (*p && *p != ' ' && *p != '\t') p++;
    }
    return n;
}

/* Runs argv with stdin from /dev/null and stdout+stderr into out_fd. *exit_code gets the exit
 * status (128+signal when killed). ERR_NOT_FOUND when the program cannot be started. */
static mt_status run_program(char *const *argv, int out_fd, int *exit_code)
{
    posix_spawn_file_actions_t fa;
    if (posix_spawn_file_actions_init(&fa) != 0)
        return mt_err_set(MT_ERR_NOMEM, "cannot start '%s': posix_spawn setup failed", argv[0]);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
    posix_spawn_file_actions_adddup2(&fa, out_fd, 2);
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        return mt_err_set(MT_ERR_NOT_FOUND, "cannot run '%s': %s", argv[0], strerror(rc));
    int status = 0;
    for (;;) {
        pid_t w = waitpid(pid, &status, 0);
        if (w == pid) break;
        if (w < 0 && errno == EINTR) continue;
        return mt_err_errno(errno, "waiting for '%s'", argv[0]);
    }
    if (WIFEXITED(status))
        *exit_code = WEXITSTATUS(status);
    else
        *exit_code = 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    return MT_OK;
}

/* ---------------------------------------------------------------- per-process facts */

typedef struct cc_ident {
    char cmd[512];
    char version[256];
    bool ok;
} cc_ident;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static cc_ident g_idents[8];
static int g_nidents;
static char g_cpu[1024];
static bool g_cpu_done;

static mt_status cache_dir(char *out, size_t len);

/* Finds an executable word of the compiler command the way posix_spawnp does (PATH search
 * unless it contains a '/') and stats it. */
static bool stat_program(const char *word, struct stat *sb)
{
    if (strchr(word, '/')) return stat(word, sb) == 0;
    const char *path = getenv("PATH");
    char full[4096];
    for (const char *p = path && *path ? path : "/usr/bin:/bin"; *p;) {
        size_t n = strcspn(p, ":");
        snprintf(full, sizeof full, "%.*s/%s", (int)n, n ? p : ".", word);
        if (stat(full, sb) == 0 && S_ISREG(sb->st_mode) && access(full, X_OK) == 0) return true;
        p += n;
        if (*p == ':') p++;
    }
    return false;
}

/* Disk cache of compiler identities, so that a warm process does not spawn `cc --version`
 * (~1-2 ms) before loading its first cached kernel: <cache>/cc-<hash>.id holds the version
 * line, keyed by the command and the identity (device, inode, size, mtime) of every program
 * word of it ("ccache gcc": both), so replacing or upgrading the compiler changes the name.
 * Returns false (no path) when the program cannot be found or there is no cache directory. */
static bool ident_path(const char *cmd, char *out, size_t len)
{
    char buf[512], *words[MAX_CC_WORDS + 2];
    snprintf(buf, sizeof buf, "%s", cmd);
    int nw = split_words(buf, words, MAX_CC_WORDS);
    if (nw == 0) return false;
    mt_sha256 s;
    mt_sha256_init(&s);
    mt_sha256_update(&s, cmd, strlen(cmd) + 1);
    const char *path = getenv("PATH");
    if (path) mt_sha256_update(&s, path, strlen(path) + 1);
    for (int i = 0; i < nw; i++) {
        if (words[i][0] == '-') continue;
        struct stat sb;
        if (!stat_program(words[i], &sb)) {
            if (i == 0) return false; /* later words may be arguments, not programs */
            continue;
        }
        long long id[6] = {(long long)sb.st_dev, (long long)sb.st_ino, (long long)sb.st_size,
                           (long long)sb.st_mtim.tv_sec, (long long)sb.st_mtim.tv_nsec,
                           (long long)sb.st_ctim.tv_sec};
        mt_sha256_update(&s, id, sizeof id);
    }
    uint8_t d[32];
    mt_sha256_final(&s, d);
    char dir[3072], hex[33];
    for (int i = 0; i < 16; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
    if (cache_dir(dir, sizeof dir) != MT_OK) {
        mt_err_clear();
        return false;
    }
    snprintf(out, len, "%s/cc-%s.id", dir, hex);
    return true;
}

static bool ident_read(const char *cmd, char *version, size_t vlen)
{
    char path[4200];
    if (!ident_path(cmd, path, sizeof path)) return false;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    char line[256];
    ssize_t got = read(fd, line, sizeof line - 1);
    close(fd);
    if (got <= 1 || line[got - 1] != '\n') return false; /* complete entries end in a newline */
    line[got - 1] = 0;
    snprintf(version, vlen, "%s", line);
    return true;
}

/* Publishes the identity atomically (temporary + rename); best effort. */
static void ident_write(const char *cmd, const char *version)
{
    char path[4200], tmp[4300];
    if (!ident_path(cmd, path, sizeof path)) return;
    snprintf(tmp, sizeof tmp, "%.*s/.tmp-ident-XXXXXX", (int)(strrchr(path, '/') - path), path);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) return;
    char line[300];
    int n = snprintf(line, sizeof line, "%s\n", version);
    bool ok = n > 0 && (size_t)n < sizeof line && write(fd, line, (size_t)n) == (ssize_t)n;
    close(fd);
    if (!ok || rename(tmp, path) != 0) unlink(tmp);
}

/* First line of `cc --version`, cached per compiler command in memory and on disk (above).
 * false if it cannot be run. */
static bool cc_identify(const char *cmd, char *version, size_t vlen, char *why, size_t wlen)
{
    pthread_mutex_lock(&g_lock);
    for (int i = 0; i < g_nidents; i++) {
        if (strcmp(g_idents[i].cmd, cmd) == 0) {
            snprintf(version, vlen, "%s", g_idents[i].version);
            bool ok = g_idents[i].ok;
            pthread_mutex_unlock(&g_lock);
            if (!ok) snprintf(why, wlen, "host C compiler '%s' cannot be run", cmd);
            return ok;
        }
    }
    pthread_mutex_unlock(&g_lock);

    char buf[512], *words[MAX_CC_WORDS + 2];
    snprintf(buf, sizeof buf, "%s", cmd);
    int nw = split_words(buf, words, MAX_CC_WORDS);
    version[0] = 0;
    bool ok = ident_read(cmd, version, vlen), cached = ok;
    int fds[2];
    if (!ok && nw > 0 && pipe2(fds, O_CLOEXEC) == 0) {
        words[nw] = "--version";
        words[nw + 1] = NULL;
        int code = -1;
        /* read after the wait: the version text fits the pipe buffer (a longer output would
         * only make the child see EPIPE, and the first line is all we read) */
        mt_status st = run_program(words, fds[1], &code);
        close(fds[1]);
        char line[256] = {0};
        ssize_t got = st == MT_OK && code == 0 ? read(fds[0], line, sizeof line - 1) : -1;
        close(fds[0]);
        if (got > 0) {
            line[got] = 0;
            line[strcspn(line, "\r\n")] = 0;
            snprintf(version, vlen, "%s", line);
            ok = true;
        }
    }
    if (ok && !cached) ident_write(cmd, version);
    if (!ok) snprintf(why, wlen, "host C compiler '%s' cannot be run ('%s --version' failed)", cmd, cmd);
    pthread_mutex_lock(&g_lock);
    if (g_nidents < (int)(sizeof g_idents / sizeof g_idents[0])) {
        cc_ident *id = &g_idents[g_nidents++];
        snprintf(id->cmd, sizeof id->cmd, "%s", cmd);
        snprintf(id->version, sizeof id->version, "%s", version);
        id->ok = ok;
    }
    pthread_mutex_unlock(&g_lock);
    return ok;
}

/* The first processor's model and feature lines of /proc/cpuinfo (empty elsewhere). */
static void cpu_ident(char *out, size_t len)
{
    pthread_mutex_lock(&g_lock);
    if (!g_cpu_done) {
        FILE *f = fopen("/proc/cpuinfo", "r");
        size_t used = 0;
        if (f) {
            char line[4096];
            while (fgets(line, sizeof line, f)) {
                if (line[0] == '\n') break; /* end of the first processor's block */
                static const char *const keys[] = {"model name", "flags", "Features",
                                                   "CPU implementer", "CPU part", "cpu model",
                                                   "isa"};
                for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
                    if (strncmp(line, keys[k], strlen(keys[k])) == 0 && used < sizeof g_cpu - 1) {
                        int w = snprintf(g_cpu + used, sizeof g_cpu - used, "%s", line);
                        if (w > 0) used += (size_t)w < sizeof g_cpu - used ? (size_t)w : sizeof g_cpu - used - 1;
                    }
                }
            }
            fclose(f);
        }
        /* long flag lines are cut at the buffer: hash the whole first block instead */
        if (used >= sizeof g_cpu - 1) {
            f = fopen("/proc/cpuinfo", "r");
            if (f) {
                mt_sha256 s;
                mt_sha256_init(&s);
                char line[4096];
                while (fgets(line, sizeof line, f) && line[0] != '\n')
                    if (strncmp(line, "cpu MHz", 7) != 0 && strncmp(line, "bogomips", 8) != 0)
                        mt_sha256_update(&s, line, strlen(line));
                fclose(f);
                uint8_t d[32];
                mt_sha256_final(&s, d);
                for (int i = 0; i < 32; i++) snprintf(g_cpu + 2 * i, 3, "%02x", d[i]);
            }
        }
        g_cpu_done = true;
    }
    snprintf(out, len, "%s", g_cpu);
    pthread_mutex_unlock(&g_lock);
}

bool mt__hostcc_available(void)
{
    if (env_no_cc()) return false;
    char version[256], why[600];
    return cc_identify(cc_command(), version, sizeof version, why, sizeof why);
}

/* ---------------------------------------------------------------- cache directory */

static mt_status cache_dir(char *out, size_t len)
{
    const char *d = getenv("MLTRAIN_CACHE_DIR");
    if (d && *d) {
        snprintf(out, len, "%s", d);
    } else if ((d = getenv("XDG_CACHE_HOME")) && *d) {
        snprintf(out, len, "%s/mltrain", d);
    } else if ((d = getenv("HOME")) && *d) {
        snprintf(out, len, "%s/.cache/mltrain", d);
    } else {
        return mt_err_set(MT_ERR_IO, "no kernel cache directory: set MLTRAIN_CACHE_DIR (HOME is "
                          "not set)");
    }
    if (strlen(out) + 1 >= len)
        return mt_err_set(MT_ERR_RANGE, "kernel cache directory path is too long (%zu bytes)",
                          strlen(d));
    mt_status st = mt_mkdirs(out, 0700);
    if (st != MT_OK) return mt_err_prefix(st, "kernel cache directory '%s': ", out);
    return MT_OK;
}

/* Removes temporaries older than a day (left by killed processes); best effort. */
static void sweep_stale(const char *dir)
{
    DIR *dp = opendir(dir);
    if (!dp) return;
    time_t now = time(NULL);
    struct dirent *de;
    char path[4096];
    while ((de = readdir(dp)) != NULL) {
        if (strncmp(de->d_name, ".tmp-", 5) != 0) continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        struct stat sb;
        if (stat(path, &sb) == 0 && now - sb.st_mtime > 86400) unlink(path);
    }
    closedir(dp);
}

static void key_hex(const char *source, const char *cmd, const char *version, char hex[65])
{
    struct utsname un;
    char cpu[1100];
    if (uname(&un) != 0) snprintf(un.machine, sizeof un.machine, "unknown");
    cpu_ident(cpu, sizeof cpu);
    mt_sha256 s;
    mt_sha256_init(&s);
    const char *parts[] = {"mltrain-hostcc/1", source, cmd, version, un.machine, cpu};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        mt_sha256_update(&s, parts[i], strlen(parts[i]) + 1); /* with the NUL as separator */
    for (size_t i = 0; i < N_FLAGS; i++) mt_sha256_update(&s, cc_flags[i], strlen(cc_flags[i]) + 1);
    mt_sha256_update(&s, "-lm", 4);
    uint8_t d[32];
    mt_sha256_final(&s, d);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

/* ---------------------------------------------------------------- compile and publish */

/* Reads the first LOG_LINES lines of a log file into out. */
static void log_head(const char *path, char *out, size_t len)
{
    out[0] = 0;
    FILE *f = fopen(path, "r");
    if (!f) return;
    size_t used = 0;
    char line[512];
    for (int n = 0; n < LOG_LINES && fgets(line, sizeof line, f); n++) {
        int w = snprintf(out + used, len - used, "%s", line);
        if (w < 0 || (size_t)w >= len - used) break;
        used += (size_t)w;
    }
    fclose(f);
    if (used && out[used - 1] == '\n') out[used - 1] = 0;
}

static mt_status write_all(int fd, const char *data, size_t n, const char *path)
{
    while (n > 0) {
        ssize_t w = write(fd, data, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return mt_err_errno(errno ? errno : EIO, "writing '%s'", path);
        data += w;
        n -= (size_t)w;
    }
    return MT_OK;
}

static void fsync_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* Compiles source into dir/<key>.so via temporaries. */
static mt_status compile_publish(const char *dir, const char *key, const char *source,
                                 const char *cmd, const char *entry, const char *final_path)
{
    sweep_stale(dir);
    char src_path[4096], so_path[4200], log_path[4200];
    snprintf(src_path, sizeof src_path, "%s/.tmp-%.16s-XXXXXX.c", dir, key);
    int fd = mkostemps(src_path, 2, O_CLOEXEC);
    if (fd < 0) return mt_err_errno(errno, "creating a temporary file in kernel cache '%s'", dir);
    size_t stem = strlen(src_path) - 2;
    snprintf(so_path, sizeof so_path, "%.*s.so", (int)stem, src_path);
    snprintf(log_path, sizeof log_path, "%.*s.log", (int)stem, src_path);
    mt_status st = write_all(fd, source, strlen(source), src_path);
    close(fd);
    if (st != MT_OK) {
        unlink(src_path);
        return st;
    }
    int lfd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (lfd < 0) {
        st = mt_err_errno(errno, "creating '%s'", log_path);
        unlink(src_path);
        return st;
    }
    char buf[512], *argv[MAX_CC_WORDS + N_FLAGS + 6];
    snprintf(buf, sizeof buf, "%s", cmd);
    int n = split_words(buf, argv, MAX_CC_WORDS);
    for (size_t i = 0; i < N_FLAGS; i++) argv[n++] = (char *)cc_flags[i];
    argv[n++] = "-o";
    argv[n++] = so_path;
    argv[n++] = src_path;
    /* link libm explicitly: unversioned libm references in a library bind to glibc's oldest
     * symbol versions (e.g. the SVID-error-handling wrapper logf@GLIBC_2.2.5), which differ
     * from what the library itself calls */
    argv[n++] = "-lm";
    argv[n] = NULL;
    int code = -1;
    double t0 = mt_now_seconds();
    st = run_program(argv, lfd, &code);
    close(lfd);
    if (st != MT_OK) {
        unlink(src_path);
        unlink(log_path);
        return mt_err_prefix(MT_ERR_NOT_BUILT, "host kernel compiler: ");
    }
    if (code != 0) {
        char head[3000], kept[4200];
        log_head(log_path, head, sizeof head);
        snprintf(kept, sizeof kept, "%s/%s-failed.c", dir, key);
        if (rename(src_path, kept) != 0) snprintf(kept, sizeof kept, "%s", src_path);
        unlink(so_path);
        unlink(log_path);
        return mt_err_set(MT_ERR_COMPILE, "host compiler '%s' failed (exit status %d) on kernel "
                          "'%s'; source kept at %s:\n%s", cmd, code, entry, kept, head);
    }
    fsync_path(so_path);
    if (rename(so_path, final_path) != 0) {
        st = mt_err_errno(errno, "publishing '%s' in the kernel cache", final_path);
        unlink(so_path);
    }
    /* MLTRAIN_KEEP_KERNEL_SOURCE=1 keeps <key>.c beside the entry, for reading generated code */
    const char *keep = getenv("MLTRAIN_KEEP_KERNEL_SOURCE");
    char kept[4200];
    snprintf(kept, sizeof kept, "%s/%s.c", dir, key);
    if (!(keep && *keep && strcmp(keep, "0") != 0 && st == MT_OK && rename(src_path, kept) == 0))
        unlink(src_path);
    unlink(log_path);
    mt_log(MT_LOG_DEBUG, "hostcc: compiled %s in %.3f s", entry, mt_now_seconds() - t0);
    return st;
}

static mt_status open_entry(const char *path, const char *entry, void **fn, void **dl)
{
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        return mt_err_set(MT_ERR_NOT_BUILT, "cannot load compiled kernel '%s': %s", path,
                          e ? e : "dlopen failed");
    }
    void *sym = dlsym(h, entry);
    if (!sym) {
        dlclose(h);
        return mt_err_set(MT_ERR_COMPILE, "compiled kernel '%s' has no symbol '%s'", path, entry);
    }
    *fn = sym;
    *dl = h;
    return MT_OK;
}

mt_status mt__hostcc_build(const char *source, const char *entry, void **fn, void **dl_handle)
{
    *fn = NULL;
    *dl_handle = NULL;
    if (env_no_cc())
        return mt_err_set(MT_ERR_NOT_BUILT, "host kernel compilation disabled (MLTRAIN_NO_CC)");
    const char *cmd = cc_command();
    char version[256], why[700];
    if (!cc_identify(cmd, version, sizeof version, why, sizeof why))
        return mt_err_set(MT_ERR_NOT_BUILT, "%s", why);
    char dir[3072];
    mt_status st = cache_dir(dir, sizeof dir);
    if (st != MT_OK) return st;
    char key[65], path[4200];
    key_hex(source, cmd, version, key);
    snprintf(path, sizeof path, "%s/%s.so", dir, key);

    if (access(path, F_OK) == 0) {
        st = open_entry(path, entry, fn, dl_handle);
        if (st == MT_OK) return MT_OK;
        /* an unreadable entry (disk trouble, foreign file): replace it */
        mt_log(MT_LOG_WARN, "kernel cache: rebuilding %s (%s)", path, mt_last_error());
        unlink(path);
    }
    st = compile_publish(dir, key, source, cmd, entry, path);
    if (st != MT_OK) return st;
    return open_entry(path, entry, fn, dl_handle);
}
