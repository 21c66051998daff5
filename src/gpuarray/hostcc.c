/* The host C compiler driver: generated C source -> shared object -> function pointer, with a
 * content-addressed disk cache shared by every process on the machine (or cluster filesystem),
 * and that cache's rules for every backend that stores compiled code (mt__kcache_*, used by the
 * CUDA backend and the CUDA emulation device too; mt__kcache_compile_publish, the compile step
 * below, also builds the CUDA emulation device's C++ objects).
 *
 * Cache key: SHA-256 of the source, the compiler command, the first line of its --version (itself
 * cached on disk as cc-<hash>.id, keyed by the compiler files' identity, see ident_name), the
 * flags, the machine (uname -m) and the CPU's model and feature flags (-march=native code must
 * not be loaded on another CPU model sharing the cache directory). Entry: <dir>/<key>.so.
 * On a miss the source is written to a unique temporary name in the cache directory, the
 * compiler runs on it (posix_spawn with an argv, no shell; output to a temporary log), and the
 * result is published with rename(), which is atomic: any number of processes may build the
 * same key at once, each into its own temporary file, the last rename wins, and every process
 * dlopens a complete file. No locks, no partial entries. A compile error keeps the source as
 * <dir>/<key>-failed.c and reports the compiler's first lines; MLTRAIN_KEEP_KERNEL_SOURCE=1 keeps
 * the source of every compiled entry as <dir>/<key>.c.
 * Batches (section "batches" below; mt_kernel_batch_begin/_end): kernels requested on a thread
 * while it has a batch open are recorded instead of compiled, then compiled together, several
 * kernels per compiler run into one shared object whose file every member's entry names.
 * Trust and integrity (section "the kernel disk cache" below, docs/security.md): the directory
 * must be the user's own and writable by the user alone, else it is refused and kernels are
 * compiled in a private temporary directory; every entry ends in a trailer with its checksum,
 * checked before dlopen, so an altered or truncated entry is rebuilt instead of loaded.
 * Flags: -O3 -march=native so loops vectorize for this CPU, -fno-math-errno so libm calls can
 * be inlined, -ffp-contract=off so no a*b+c is fused into an FMA (results must match the
 * interpreter and the other backends bit for bit); never -ffast-math (NaN/inf semantics). */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <pwd.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
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
int mt__split_words(char *buf, char **words, int max)
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
mt_status mt__run_program(char *const *argv, int out_fd, int *exit_code)
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
 * Returns false (no name) when the program cannot be found. Entries carry the cache's trailer
 * (verified on reading) like every other entry. */
static bool ident_name(const char *cmd, char *out, size_t len)
{
    if (len < 40) return false;
    char buf[512], *words[MAX_CC_WORDS + 2];
    snprintf(buf, sizeof buf, "%s", cmd);
    int nw = mt__split_words(buf, words, MAX_CC_WORDS);
    if (nw == 0) return false;
    mt_sha256 s;
    mt_sha256_init(&s);
    mt_sha256_update(&s, "mltrain-ccid/2", 15); /* bump with the entry format */
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
    char hex[33];
    for (int i = 0; i < 16; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
    snprintf(out, len, "cc-%s.id", hex);
    return true;
}

static mt_status resolve(mt_kcache *kc, bool allow_temp);

static bool ident_read(const char *cmd, char *version, size_t vlen)
{
    char name[64], path[4200], *line = NULL;
    size_t n = 0;
    mt_kcache kc;
    if (!ident_name(cmd, name, sizeof name)) return false;
    if (resolve(&kc, false) != MT_OK) {
        mt_err_clear();
        return false;
    }
    if (!mt__kcache_read(&kc, name, MT_KCACHE_ANY, &line, &n, path, sizeof path)) return false;
    bool ok = n > 1 && n < 256 && line[n - 1] == '\n'; /* complete entries end in a newline */
    if (ok) {
        line[n - 1] = 0;
        snprintf(version, vlen, "%s", line);
    }
    mt_free(line);
    return ok;
}

/* Publishes the identity atomically (temporary + rename); best effort. */
static void ident_write(const char *cmd, const char *version)
{
    char name[64], line[300];
    mt_kcache kc;
    if (!ident_name(cmd, name, sizeof name)) return;
    if (resolve(&kc, false) != MT_OK) {
        mt_err_clear();
        return;
    }
    int n = snprintf(line, sizeof line, "%s\n", version);
    if (n > 0 && (size_t)n < sizeof line && mt__kcache_write(&kc, name, line, (size_t)n) != MT_OK)
        mt_err_clear();
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
    int nw = mt__split_words(buf, words, MAX_CC_WORDS);
    version[0] = 0;
    bool ok = ident_read(cmd, version, vlen), cached = ok;
    int fds[2];
    if (!ok && nw > 0 && pipe2(fds, O_CLOEXEC) == 0) {
        words[nw] = "--version";
        words[nw + 1] = NULL;
        int code = -1;
        /* read after the wait: the version text fits the pipe buffer (a longer output would
         * only make the child see EPIPE, and the first line is all we read) */
        mt_status st = mt__run_program(words, fds[1], &code);
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

/* ---------------------------------------------------------------- the kernel disk cache */

/* Shared by this file, the CUDA backend and the CUDA emulation device (contract in
 * gpuarray_impl.h). Trust: mltrain loads code from the cache, so the directory must belong to
 * the user and be writable by the user alone (anyone else able to write it could plant a
 * shared object); a directory that fails the check is refused with the fix in the message,
 * and kernels are then compiled in a private temporary directory that is removed after
 * loading. MLTRAIN_CACHE_READONLY=DIR marks a shared cache (e.g. one an administrator filled)
 * that may belong to someone else: it is read first, never written, and must not be writable
 * by others. Integrity: every entry ends in a trailer that records the payload's length and
 * checksum, written before the entry is published by rename(); an entry whose trailer does not
 * match (truncated, altered, foreign) is not loaded, and the caller rebuilds it. ELF loaders
 * ignore bytes after the last section, so a shared object with its trailer still dlopens.
 * The checksum is mt_hash64 (64-bit, non-cryptographic): it detects corruption and truncation,
 * which is its job; a cryptographic hash would not stop someone able to write the directory
 * either (they would rewrite the trailer too) -- the ownership check does -- and SHA-256 of a
 * 15 KB kernel took a third of a warm load, mt_hash64 about 2%. */

#define KC_MAGIC "MTKCACHE"
#define KC_VERSION 2u
#define KC_TRAILER 32 /* magic 8, version 4, reserved 4, payload length 8, mt_hash64 8 */
#define KC_SEED 0x6d746b6361636865ull /* "mtkcache" */
#define KC_PIECE 65536

static char g_refused_warned[3072]; /* the last refused directory a warning was logged for */

static void put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static void make_trailer(uint8_t t[KC_TRAILER], uint64_t len, uint64_t sum)
{
    memcpy(t, KC_MAGIC, 8);
    put_le(t + 8, KC_VERSION, 4);
    put_le(t + 12, 0, 4);
    put_le(t + 16, len, 8);
    put_le(t + 24, sum, 8);
}

/* mt_hash64 over a stream of pieces: each piece's hash is folded into the running one, so the
 * result depends on where pieces start; every caller uses the same 64 KiB pieces. */
static uint64_t sum_piece(uint64_t h, const void *data, size_t n)
{
    return mt_hash64_combine(h, mt_hash64(data, n, KC_SEED));
}

static void user_name(uid_t uid, char *out, size_t len)
{
    struct passwd pw, *res = NULL;
    char buf[1024];
    if (getpwuid_r(uid, &pw, buf, sizeof buf, &res) == 0 && res)
        snprintf(out, len, "%s (uid %u)", res->pw_name, (unsigned)uid);
    else
        snprintf(out, len, "uid %u", (unsigned)uid);
}

mt_status mt__kcache_check_dir(const char *dir, bool shared_readonly)
{
    struct stat sb;
    if (stat(dir, &sb) != 0) return mt_err_errno(errno, "kernel cache directory '%s'", dir);
    if (!S_ISDIR(sb.st_mode))
        return mt_err_set(MT_ERR_IO, "kernel cache directory '%s' is not a directory", dir);
    uid_t me = geteuid();
    unsigned mode = (unsigned)sb.st_mode & 07777;
    bool foreign = sb.st_uid != me && !shared_readonly;
    bool open_w = shared_readonly ? (mode & 002) != 0 : (mode & 022) != 0;
    if (!foreign && !open_w) return MT_OK;
    char owner[320], self[320];
    user_name(sb.st_uid, owner, sizeof owner);
    user_name(me, self, sizeof self);
    const char *who = (mode & 022) == 022 ? "group and others"
                      : (mode & 002)      ? "others"
                                          : "its group";
    if (shared_readonly)
        return mt_err_set(MT_ERR_IO, "shared read-only kernel cache '%s' (owner %s, mode %04o) is "
                          "writable by others, so anyone could plant code in it; refused. Fix: "
                          "`chmod o-w %s` (its owner), or unset MLTRAIN_CACHE_READONLY",
                          dir, owner, mode, dir);
    if (foreign)
        return mt_err_set(MT_ERR_IO, "kernel cache directory '%s' is owned by %s, not by you (%s; "
                          "mode %04o): mltrain loads compiled code from it, so it must be your own; "
                          "refused. Fix: set MLTRAIN_CACHE_DIR to a directory of your own (or "
                          "MLTRAIN_CACHE_READONLY=%s to read it as a shared read-only cache)",
                          dir, owner, self, mode, dir);
    return mt_err_set(MT_ERR_IO, "kernel cache directory '%s' (owner %s, mode %04o) is writable "
                      "by %s: mltrain loads compiled code from it, so only you may write it; "
                      "refused. Fix: `chmod 700 %s`, or set MLTRAIN_CACHE_DIR to a private "
                      "directory", dir, owner, mode, who, dir);
}

/* The configured directory (MLTRAIN_CACHE_DIR, $XDG_CACHE_HOME/mltrain, ~/.cache/mltrain),
 * created 0700 when missing. */
static mt_status configured_dir(char *out, size_t len)
{
    const char *d = getenv("MLTRAIN_CACHE_DIR");
    int w;
    if (d && *d)
        w = snprintf(out, len, "%s", d);
    else if ((d = getenv("XDG_CACHE_HOME")) && *d)
        w = snprintf(out, len, "%s/mltrain", d);
    else if ((d = getenv("HOME")) && *d)
        w = snprintf(out, len, "%s/.cache/mltrain", d);
    else
        return mt_err_set(MT_ERR_IO, "no kernel cache directory: set MLTRAIN_CACHE_DIR (HOME is "
                          "not set)");
    if (w < 0 || (size_t)w + 80 >= len) /* room for entry names */
        return mt_err_set(MT_ERR_RANGE, "kernel cache directory path is too long (%d bytes)", w);
    mt_status st = mt_mkdirs(out, 0700);
    if (st != MT_OK) return mt_err_prefix(st, "kernel cache directory '%s': ", out);
    return MT_OK;
}

/* Logs a refusal once per directory. */
static void warn_refused(const char *dir, const char *msg, const char *instead)
{
    pthread_mutex_lock(&g_lock);
    bool first = strcmp(g_refused_warned, dir) != 0;
    if (first) snprintf(g_refused_warned, sizeof g_refused_warned, "%s", dir);
    pthread_mutex_unlock(&g_lock);
    if (first) mt_log(MT_LOG_WARN, "%s; %s", msg, instead);
}

static mt_status resolve(mt_kcache *kc, bool allow_temp)
{
    memset(kc, 0, sizeof *kc);
    const char *ro = getenv("MLTRAIN_CACHE_READONLY");
    if (ro && *ro && strlen(ro) + 80 < sizeof kc->ro_dir) {
        if (mt__kcache_check_dir(ro, true) == MT_OK)
            snprintf(kc->ro_dir, sizeof kc->ro_dir, "%s", ro);
        else
            warn_refused(ro, mt_last_error(), "it is not used");
        mt_err_clear();
    }
    char dir[sizeof kc->dir];
    mt_status st = configured_dir(dir, sizeof dir);
    if (st == MT_OK) st = mt__kcache_check_dir(dir, false);
    if (st == MT_OK) {
        snprintf(kc->dir, sizeof kc->dir, "%s", dir);
        return MT_OK;
    }
    if (!allow_temp) return st;
    char msg[MT_ERR_MSG_MAX];
    snprintf(msg, sizeof msg, "%s", mt_last_error());
    const char *tmp = getenv("TMPDIR");
    int w = snprintf(kc->dir, sizeof kc->dir, "%s/mltrain-kcache-XXXXXX",
                     tmp && *tmp ? tmp : "/tmp");
    if (w < 0 || (size_t)w + 80 >= sizeof kc->dir || !mkdtemp(kc->dir)) {
        kc->dir[0] = 0;
        return mt_err_set(MT_ERR_IO, "%s (and no private temporary directory could be made "
                          "instead)", msg);
    }
    kc->temp = true;
    warn_refused(dir, msg, "kernels are compiled in a private temporary directory instead and "
                           "not reused across runs");
    mt_err_clear();
    return MT_OK;
}

mt_status mt__kcache_open(mt_kcache *kc)
{
    return resolve(kc, true);
}

void mt__kcache_close(mt_kcache *kc)
{
    if (!kc->temp || !kc->dir[0]) return;
    DIR *dp = opendir(kc->dir);
    if (dp) {
        struct dirent *de;
        char path[4200];
        while ((de = readdir(dp)) != NULL) {
            if (de->d_name[0] == '.' && (!de->d_name[1] || strcmp(de->d_name, "..") == 0))
                continue;
            if (strstr(de->d_name, "-failed.")) continue; /* named in an error message */
            snprintf(path, sizeof path, "%s/%s", kc->dir, de->d_name);
            unlink(path);
        }
        closedir(dp);
    }
    rmdir(kc->dir); /* fails, leaving it, when a failed source was kept */
    kc->dir[0] = 0;
}

/* Files whose checksum this process has already verified, by identity: device, inode, size,
 * modification and status-change times. The kernels of a group share one file under several
 * names (hard links), and a process loads each name: the payload is hashed once per file. Any
 * write, truncation, chmod or new link changes mtime or ctime, so an altered file is hashed
 * again; the owner and mode are still checked on every open. Files changed in the last 2 s are
 * not remembered (see remember_verified). */
typedef struct verified_file {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtim, ctim;
} verified_file;

#define VERIFIED_MAX 256
static pthread_mutex_t g_verified_mu = PTHREAD_MUTEX_INITIALIZER;
static verified_file g_verified[VERIFIED_MAX];
static int g_nverified, g_verified_next;

static bool same_file(const verified_file *v, const struct stat *sb)
{
    return v->dev == sb->st_dev && v->ino == sb->st_ino && v->size == sb->st_size &&
           v->mtim.tv_sec == sb->st_mtim.tv_sec && v->mtim.tv_nsec == sb->st_mtim.tv_nsec &&
           v->ctim.tv_sec == sb->st_ctim.tv_sec && v->ctim.tv_nsec == sb->st_ctim.tv_nsec;
}

static bool already_verified(const struct stat *sb)
{
    bool found = false;
    pthread_mutex_lock(&g_verified_mu);
    for (int i = 0; i < g_nverified && !found; i++) found = same_file(&g_verified[i], sb);
    pthread_mutex_unlock(&g_verified_mu);
    return found;
}

static void remember_verified(const struct stat *sb)
{
    /* Only files whose last status change is over 2 s old: file times advance in coarse ticks,
     * so a change made within the tick of the verification could keep the same ctime. */
    struct timespec now;
    if (clock_gettime(CLOCK_REALTIME, &now) != 0 || now.tv_sec - sb->st_ctim.tv_sec < 2) return;
    verified_file v = {sb->st_dev, sb->st_ino, sb->st_size, sb->st_mtim, sb->st_ctim};
    pthread_mutex_lock(&g_verified_mu);
    g_verified[g_verified_next] = v;
    g_verified_next = (g_verified_next + 1) % VERIFIED_MAX;
    if (g_nverified < VERIFIED_MAX) g_nverified++;
    pthread_mutex_unlock(&g_verified_mu);
}

static int64_t g_checksums; /* payloads hashed by verify_fd (mt__kcache_checksum_count) */

int64_t mt__kcache_checksum_count(void)
{
    return __atomic_load_n(&g_checksums, __ATOMIC_RELAXED);
}

void mt__kcache_forget_verified(void)
{
    pthread_mutex_lock(&g_verified_mu);
    g_nverified = g_verified_next = 0;
    pthread_mutex_unlock(&g_verified_mu);
}

/* Verifies the open entry fd (its file's owner and mode, then the trailer against the payload)
 * and returns the payload in *data when data is not NULL. false with *why filled otherwise. */
static bool verify_fd(int fd, bool shared, char **data, size_t *len, char *why, size_t wlen)
{
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        snprintf(why, wlen, "not a regular file");
        return false;
    }
    if ((!shared && sb.st_uid != geteuid()) || (sb.st_mode & (shared ? 002 : 022))) {
        snprintf(why, wlen, "owner uid %u or mode %04o not allowed", (unsigned)sb.st_uid,
                 (unsigned)sb.st_mode & 07777);
        return false;
    }
    if (!data && already_verified(&sb)) return true;
    uint8_t t[KC_TRAILER];
    size_t size = (size_t)sb.st_size;
    if (sb.st_size < KC_TRAILER || pread(fd, t, KC_TRAILER, sb.st_size - KC_TRAILER) != KC_TRAILER
        || memcmp(t, KC_MAGIC, 8) != 0 || get_le(t + 8, 4) != KC_VERSION
        || get_le(t + 16, 8) != size - KC_TRAILER) {
        snprintf(why, wlen, "no valid trailer (truncated or not written by mltrain; %zu bytes)",
                 size);
        return false;
    }
    size_t n = size - KC_TRAILER;
    char *buf = mt_malloc(data ? n + 1 : KC_PIECE);
    if (!buf) {
        snprintf(why, wlen, "out of memory");
        return false;
    }
    __atomic_fetch_add(&g_checksums, 1, __ATOMIC_RELAXED);
    uint64_t sum = KC_SEED;
    size_t done = 0;
    while (done < n) {
        size_t want = n - done < KC_PIECE ? n - done : KC_PIECE;
        char *at = data ? buf + done : buf;
        ssize_t got = pread(fd, at, want, (off_t)done);
        if (got < 0 && errno == EINTR) continue;
        if (got != (ssize_t)want) break; /* short read: the file changed under us */
        sum = sum_piece(sum, at, want);
        done += want;
    }
    if (done != n || sum != get_le(t + 24, 8)) {
        mt_free(buf);
        snprintf(why, wlen, "content does not match its recorded checksum (altered or corrupt)");
        return false;
    }
    remember_verified(&sb);
    if (data) {
        buf[n] = 0;
        *data = buf;
        *len = n;
    } else {
        mt_free(buf);
    }
    return true;
}

/* Opens and verifies dir/name. 1: verified (fd open in *fd_out), 0: absent, -1: bad entry
 * (removed when it is in our own directory; logged). */
static int open_verified(const mt_kcache *kc, const char *dir, const char *name, char **data,
                         size_t *len, char *path, size_t plen)
{
    bool shared = dir == kc->ro_dir;
    snprintf(path, plen, "%s/%s", dir, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT) return 0;
    }
    char why[200];
    bool ok = fd >= 0 && verify_fd(fd, shared, data, len, why, sizeof why);
    if (fd < 0) snprintf(why, sizeof why, "cannot be opened: %s", strerror(errno));
    if (fd >= 0) close(fd);
    if (ok) return 1;
    mt_log(MT_LOG_WARN, "kernel cache: entry %s is not loaded: %s; %s", path, why,
           shared ? "it is rebuilt in the private cache" : "it is removed and rebuilt");
    if (!shared) unlink(path);
    return -1;
}

bool mt__kcache_read(const mt_kcache *kc, const char *name, mt_kcache_where where, char **data,
                     size_t *len, char *path, size_t plen)
{
    *data = NULL;
    *len = 0;
    const char *dirs[2] = {where == MT_KCACHE_ANY ? kc->ro_dir : "", kc->dir};
    for (int i = 0; i < 2; i++)
        if (dirs[i][0] && open_verified(kc, dirs[i], name, data, len, path, plen) == 1)
            return true;
    return false;
}

mt_status mt__kcache_dlopen(const mt_kcache *kc, const char *name, mt_kcache_where where,
                            void **dl, char *path, size_t plen)
{
    *dl = NULL;
    const char *dirs[2] = {where == MT_KCACHE_ANY ? kc->ro_dir : "", kc->dir};
    for (int i = 0; i < 2; i++) {
        if (!dirs[i][0] || open_verified(kc, dirs[i], name, NULL, NULL, path, plen) != 1)
            continue;
        /* verified through a descriptor, loaded by name: only someone able to write the
         * directory could swap the file in between, and the directory check excludes that */
        void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (h) {
            *dl = h;
            return MT_OK;
        }
        const char *e = dlerror();
        return mt_err_set(MT_ERR_NOT_BUILT, "cannot load compiled kernel '%s': %s", path,
                          e ? e : "dlopen failed");
    }
    return mt_err_set(MT_ERR_NOT_FOUND, "kernel cache: no valid entry '%s'", name);
}

/* Appends the trailer to the open file fd holding the payload. */
static mt_status append_trailer(int fd, const char *path)
{
    struct stat sb;
    if (fstat(fd, &sb) != 0) return mt_err_errno(errno, "stat '%s'", path);
    char *buf = mt_malloc(KC_PIECE);
    if (!buf) return mt_err_set(MT_ERR_NOMEM, "publishing '%s'", path);
    uint64_t sum = KC_SEED;
    off_t off = 0;
    while (off < sb.st_size) {
        size_t want = sb.st_size - off < KC_PIECE ? (size_t)(sb.st_size - off) : KC_PIECE;
        ssize_t got = pread(fd, buf, want, off);
        if (got < 0 && errno == EINTR) continue;
        if (got != (ssize_t)want) {
            mt_free(buf);
            return mt_err_errno(got < 0 ? errno : EIO, "reading '%s'", path);
        }
        sum = sum_piece(sum, buf, want);
        off += got;
    }
    mt_free(buf);
    uint8_t t[KC_TRAILER];
    make_trailer(t, (uint64_t)off, sum);
    if (pwrite(fd, t, KC_TRAILER, off) != KC_TRAILER)
        return mt_err_errno(errno ? errno : EIO, "writing '%s'", path);
    return MT_OK;
}

/* Makes the temporary file tmp_path a complete entry: trailer, mode 0600, on disk. */
static mt_status seal_file(const char *tmp_path)
{
    int fd = open(tmp_path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    mt_status st = fd < 0 ? mt_err_errno(errno, "opening '%s'", tmp_path) : MT_OK;
    if (st == MT_OK) st = append_trailer(fd, tmp_path);
    if (st == MT_OK && fchmod(fd, 0600) != 0) st = mt_err_errno(errno, "chmod '%s'", tmp_path);
    if (st == MT_OK) fsync(fd);
    if (fd >= 0) close(fd);
    return st;
}

mt_status mt__kcache_publish_file(const mt_kcache *kc, const char *tmp_path, const char *name)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", kc->dir, name);
    mt_status st = seal_file(tmp_path);
    if (st == MT_OK && rename(tmp_path, path) != 0)
        st = mt_err_errno(errno, "publishing '%s' in the kernel cache", path);
    if (st != MT_OK) unlink(tmp_path);
    return st;
}

mt_status mt__kcache_write(const mt_kcache *kc, const char *name, const void *data, size_t len)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s/.tmp-put-XXXXXX", kc->dir);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) return mt_err_errno(errno, "creating a temporary file in kernel cache '%s'", kc->dir);
    mt_status st = MT_OK;
    for (size_t done = 0; done < len;) {
        ssize_t w = write(fd, (const char *)data + done, len - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            st = mt_err_errno(errno ? errno : EIO, "writing '%s'", tmp);
            break;
        }
        done += (size_t)w;
    }
    close(fd);
    if (st != MT_OK) {
        unlink(tmp);
        return st;
    }
    return mt__kcache_publish_file(kc, tmp, name);
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
    const char *parts[] = {"mltrain-hostcc/3", source, cmd, version, un.machine, cpu};
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

static int64_t g_kernels_compiled, g_cc_runs; /* mt_host_kernel_counts (atomic adds) */

/* The host C compiler as the kernel cache's compile step sees it. */
static mt_cc_spec host_cc(const char *cmd)
{
    return (mt_cc_spec){.cmd = cmd,
                        .flags = cc_flags,
                        .nflags = N_FLAGS,
                        .ext = ".c",
                        .who = "host compiler",
                        .log_tag = "hostcc",
                        .runs = &g_cc_runs,
                        .compiled = &g_kernels_compiled};
}

static bool env_flag(const char *name)
{
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0") != 0;
}

/* Compiles source with cc into a temporary shared object in kc->dir: on success *so_path and
 * *src_path name the object and the source (the caller publishes or removes both). On a
 * compiler error the source is kept as <failed_stem>-failed<ext> (removed when failed_stem is
 * NULL) and the error names `what` with the compiler's first lines. tag: 16 characters or less
 * of the temporaries' names. */
static mt_status compile_tmp(const mt_kcache *kc, const mt_cc_spec *cc, const char *tag,
                             const char *source, const char *what, const char *failed_stem,
                             char *src_path, char *so_path)
{
    const char *dir = kc->dir;
    if (cc->nflags > MT_CC_MAX_FLAGS)
        return mt_err_set(MT_ERR_INVALID, "%s: %zu flags (at most %d)", cc->who, cc->nflags,
                          MT_CC_MAX_FLAGS);
    sweep_stale(dir);
    char log_path[4200];
    int ext_len = (int)strlen(cc->ext);
    snprintf(src_path, 4096, "%s/.tmp-%.16s-XXXXXX%s", dir, tag, cc->ext);
    int fd = mkostemps(src_path, ext_len, O_CLOEXEC);
    if (fd < 0) return mt_err_errno(errno, "creating a temporary file in kernel cache '%s'", dir);
    size_t stem = strlen(src_path) - (size_t)ext_len;
    snprintf(so_path, 4200, "%.*s.so", (int)stem, src_path);
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
    char buf[512], *argv[MAX_CC_WORDS + MT_CC_MAX_FLAGS + 6];
    snprintf(buf, sizeof buf, "%s", cc->cmd);
    int n = mt__split_words(buf, argv, MAX_CC_WORDS);
    for (size_t i = 0; i < cc->nflags; i++) argv[n++] = (char *)cc->flags[i];
    argv[n++] = "-o";
    argv[n++] = so_path;
    argv[n++] = src_path;
    /* link libm explicitly: unversioned libm references in a library bind to glibc's oldest
     * symbol versions (e.g. the SVID-error-handling wrapper logf@GLIBC_2.2.5), which differ
     * from what the library itself calls */
    argv[n++] = "-lm";
    argv[n] = NULL;
    int code = -1;
    if (cc->runs) __atomic_fetch_add(cc->runs, 1, __ATOMIC_RELAXED);
    st = mt__run_program(argv, lfd, &code);
    close(lfd);
    if (st != MT_OK) {
        unlink(src_path);
        unlink(log_path);
        return mt_err_prefix(MT_ERR_NOT_BUILT, "%s: ", cc->who);
    }
    if (code != 0) {
        char head[3000], kept[4200];
        log_head(log_path, head, sizeof head);
        snprintf(kept, sizeof kept, "%s/%s-failed%s", dir, failed_stem ? failed_stem : "",
                 cc->ext);
        if (!failed_stem) {
            unlink(src_path);
            snprintf(kept, sizeof kept, "(removed)");
        } else if (rename(src_path, kept) != 0) {
            snprintf(kept, sizeof kept, "%s", src_path);
        }
        unlink(so_path);
        unlink(log_path);
        return mt_err_set(MT_ERR_COMPILE, "%s '%s' failed (exit status %d) on %s; "
                          "source kept at %s:\n%s", cc->who, cc->cmd, code, what, kept, head);
    }
    unlink(log_path);
    return MT_OK;
}

/* MLTRAIN_KEEP_KERNEL_SOURCE=1 keeps <stem><ext> beside the entry, for reading generated code:
 * the temporary source src_path is moved there (consumed either way). */
static void keep_source(const mt_kcache *kc, const char *stem, const char *ext,
                        const char *src_path, bool ok)
{
    char kept[4200];
    snprintf(kept, sizeof kept, "%s/%s%s", kc->dir, stem, ext);
    if (!(ok && env_flag("MLTRAIN_KEEP_KERNEL_SOURCE") && rename(src_path, kept) == 0))
        unlink(src_path);
}

mt_status mt__kcache_compile_publish(const mt_kcache *kc, const mt_cc_spec *cc, const char *stem,
                                     const char *source, const char *entry, const char *name)
{
    char src_path[4096], so_path[4200], what[200];
    snprintf(what, sizeof what, "kernel '%s'", entry);
    double t0 = mt_now_seconds();
    mt_status st = compile_tmp(kc, cc, stem, source, what, stem, src_path, so_path);
    if (st != MT_OK) return st;
    if (cc->compiled) __atomic_fetch_add(cc->compiled, 1, __ATOMIC_RELAXED);
    st = mt__kcache_publish_file(kc, so_path, name); /* trailer, 0600, fsync, rename */
    keep_source(kc, stem, cc->ext, src_path, st == MT_OK);
    mt_log(MT_LOG_DEBUG, "%s: compiled %s in %.3f s", cc->log_tag, entry, mt_now_seconds() - t0);
    return st;
}

/* Compiles source into the cache as <key>.so via temporaries in kc->dir. */
static mt_status compile_publish(const mt_kcache *kc, const char *key, const char *source,
                                 const char *cmd, const char *entry, const char *name)
{
    mt_cc_spec cc = host_cc(cmd);
    return mt__kcache_compile_publish(kc, &cc, key, source, entry, name);
}

void mt_host_kernel_counts(int64_t *compiled, int64_t *runs)
{
    if (compiled) *compiled = __atomic_load_n(&g_kernels_compiled, __ATOMIC_RELAXED);
    if (runs) *runs = __atomic_load_n(&g_cc_runs, __ATOMIC_RELAXED);
}

/* ---------------------------------------------------------------- batches */

/* A batch (mt_kernel_batch_begin .. _end, one per thread) records the kernels that missed the
 * caches instead of compiling them one by one, then compiles them together: the kernels that
 * start with the common C prelude (every generated kernel) are split into one group per
 * worker, balanced by size, and each group is compiled as ONE source (the prelude once, then
 * each kernel's own part) by one compiler run into one shared object. The compiler's fixed
 * cost per run (driver, cc1 start and the prelude, assembler, linker: about half of a small
 * kernel's ~80 ms) is paid once per group instead of once per kernel.
 * Each kernel keeps its own content-addressed entry <key>.so (key: its own source, as for a
 * single compile): the group's object is sealed once (trailer, 0600) and published under every
 * member's name as a hard link (a temporary link, then rename(), so publication stays atomic
 * and the last writer wins); where the file system has no hard links, as a copy. A file thus
 * holds several kernels, each found by its own symbol; every name passes the same checks
 * (owner, mode, checksum) and dlopen maps the object once, whichever names load it. Each
 * kernel's own part is followed by an #undef of every macro it #defines (undef_body_macros),
 * so a kernel compiles in its group exactly as alone: no macro leaks into the kernels after it.
 * The temporary link names carry 64 random bits (tmp_name_bits), not a pid and a counter,
 * which repeat across containers and hosts sharing the cache. A group that does not compile
 * (e.g. two kernels with one symbol name) is compiled kernel by kernel, so a faulty kernel
 * keeps its error message and failed source. */

typedef struct batch_item {
    char key[65];
    char name[80];
    char entry[128];
    char *source;
    size_t body; /* where its own part starts after the C prelude; 0: it has no such prelude */
} batch_item;

typedef struct hc_batch {
    batch_item *items;
    int32_t n, cap;
    int paused; /* > 0: misses are reported but not recorded */
} hc_batch;

static _Thread_local hc_batch *t_batch;

static void batch_free(hc_batch *b)
{
    if (!b) return;
    for (int32_t i = 0; i < b->n; i++) mt_free(b->items[i].source);
    mt_free(b->items);
    mt_free(b);
}

mt_status mt_kernel_batch_begin(void)
{
    if (t_batch) return mt_err_set(MT_ERR_INVALID, "kernel batch: one is already open on this "
                                   "thread");
    t_batch = mt_calloc(1, sizeof *t_batch);
    return t_batch ? MT_OK : mt_err_set(MT_ERR_NOMEM, "kernel batch: out of memory");
}

bool mt__hostcc_batch_open(void)
{
    return t_batch != NULL;
}

void mt__hostcc_batch_pause(bool pause)
{
    if (t_batch) t_batch->paused += pause ? 1 : -1;
}

/* Records a kernel that missed the caches (once per key); MT_ERR_NOT_BUILT, or ERR_NOMEM. */
static mt_status batch_record(hc_batch *b, const char *key, const char *name, const char *source,
                              const char *entry)
{
    bool seen = b->paused > 0;
    for (int32_t i = 0; i < b->n && !seen; i++) seen = strcmp(b->items[i].key, key) == 0;
    if (!seen) {
        if (b->n == b->cap) {
            int32_t cap = b->cap ? 2 * b->cap : 16;
            batch_item *it = mt_realloc(b->items, (size_t)cap * sizeof *it);
            if (!it) return mt_err_set(MT_ERR_NOMEM, "kernel batch: out of memory");
            b->items = it;
            b->cap = cap;
        }
        batch_item *it = &b->items[b->n];
        memset(it, 0, sizeof *it);
        it->source = mt_strdup(source);
        if (!it->source) return mt_err_set(MT_ERR_NOMEM, "kernel batch: out of memory");
        snprintf(it->key, sizeof it->key, "%s", key);
        snprintf(it->name, sizeof it->name, "%s", name);
        snprintf(it->entry, sizeof it->entry, "%s", entry);
        b->n++;
    }
    return mt_err_set(MT_ERR_NOT_BUILT, "kernel '%s' is left to the open kernel batch", entry);
}

/* 64 bits for a temporary name that no other process, container or host sharing the cache
 * directory picks: getrandom, else /dev/urandom, else a hash of the time, the pid, the host's
 * name and a counter (pids and counters alone repeat across containers and MPI ranks). */
static uint64_t tmp_name_bits(void)
{
    uint64_t r = 0;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) == (ssize_t)sizeof r) return r;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    bool ok = fd >= 0 && read(fd, &r, sizeof r) == (ssize_t)sizeof r;
    if (fd >= 0) close(fd);
    if (ok) return r;
    static atomic_uint_fast64_t counter;
    struct {
        struct timespec rt, mono;
        pid_t pid;
        uint64_t n;
        char host[64];
    } seed;
    memset(&seed, 0, sizeof seed);
    clock_gettime(CLOCK_REALTIME, &seed.rt);
    clock_gettime(CLOCK_MONOTONIC, &seed.mono);
    seed.pid = getpid();
    seed.n = atomic_fetch_add(&counter, 1);
    gethostname(seed.host, sizeof seed.host - 1);
    return mt_hash64(&seed, sizeof seed, KC_SEED);
}

/* Publishes the sealed file `sealed` (kept) as kc->dir/name: a hard link under a temporary
 * name (random, retried when it exists) renamed over the entry, or a copy where links are not
 * supported. */
static mt_status publish_link(const mt_kcache *kc, const char *sealed, const char *name)
{
    char tmp[4200], path[4200];
    snprintf(path, sizeof path, "%s/%s", kc->dir, name);
    int rc = -1;
    for (int tries = 0; tries < 16; tries++) {
        snprintf(tmp, sizeof tmp, "%s/.tmp-ln-%016llx-%.16s", kc->dir,
                 (unsigned long long)tmp_name_bits(), name);
        rc = link(sealed, tmp);
        if (rc == 0 || errno != EEXIST) break;
    }
    if (rc != 0) {
        if (errno != EPERM && errno != ENOTSUP && errno != EMLINK && errno != ENOSYS)
            return mt_err_errno(errno, "linking '%s' in the kernel cache", tmp);
        /* no hard links here: a copy of the sealed file */
        int in = open(sealed, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        snprintf(tmp, sizeof tmp, "%s/.tmp-cp-XXXXXX", kc->dir);
        int out = in >= 0 ? mkostemp(tmp, O_CLOEXEC) : -1;
        mt_status st = out < 0 ? mt_err_errno(errno, "copying '%s'", sealed) : MT_OK;
        char buf[65536];
        for (ssize_t got; st == MT_OK && (got = read(in, buf, sizeof buf)) != 0;) {
            if (got < 0 && errno == EINTR) continue;
            st = got < 0 ? mt_err_errno(errno, "reading '%s'", sealed)
                         : write_all(out, buf, (size_t)got, tmp);
        }
        if (st == MT_OK && fchmod(out, 0600) != 0) st = mt_err_errno(errno, "chmod '%s'", tmp);
        if (st == MT_OK) fsync(out);
        if (in >= 0) close(in);
        if (out >= 0) close(out);
        if (st != MT_OK) {
            if (out >= 0) unlink(tmp);
            return st;
        }
    }
    if (rename(tmp, path) != 0) {
        mt_status st = mt_err_errno(errno, "publishing '%s' in the kernel cache", path);
        unlink(tmp);
        return st;
    }
    return MT_OK;
}

/* Writes a source file kept beside its entry (MLTRAIN_KEEP_KERNEL_SOURCE); best effort. */
static void keep_item_source(const mt_kcache *kc, const batch_item *it)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s/.tmp-src-XXXXXX.c", kc->dir);
    int fd = mkostemps(tmp, 2, O_CLOEXEC);
    if (fd < 0) return;
    mt_status st = write_all(fd, it->source, strlen(it->source), tmp);
    close(fd);
    if (st != MT_OK) mt_err_clear();
    keep_source(kc, it->key, ".c", tmp, st == MT_OK);
}

/* The name of the macro that the line at p (a line of C source) #defines, in name[len]: its
 * length, or 0 when the line defines none. */
static size_t line_defines(const char *p, char *name, size_t len)
{
    while (*p == ' ' || *p == '\t') p++;
    if (*p++ != '#') return 0;
    while (*p == ' ' || *p == '\t') p++;
    if (strncmp(p, "define", 6) != 0 || (p[6] != ' ' && p[6] != '\t')) return 0;
    p += 6;
    while (*p == ' ' || *p == '\t') p++;
    size_t k = 0;
    while (k + 1 < len && (p[k] == '_' || (p[k] >= 'a' && p[k] <= 'z') ||
                           (p[k] >= 'A' && p[k] <= 'Z') || (k && p[k] >= '0' && p[k] <= '9'))) {
        name[k] = p[k];
        k++;
    }
    name[k] = 0;
    return k;
}

/* Whether the line q[0..len) ends with a backslash (the next line continues it). */
static bool line_continues(const char *q, size_t len)
{
    while (len > 0 && (q[len - 1] == '\r' || q[len - 1] == ' ' || q[len - 1] == '\t')) len--;
    return len > 0 && q[len - 1] == '\\';
}

void mt__hostcc_undef_macros(mt_strbuf *src, const char *body, const char *prelude)
{
    mt_strbuf_append(src, "\n");
    for (const char *p = body; *p;) {
        char name[128], other[128];
        if (line_defines(p, name, sizeof name)) {
            mt_strbuf_appendf(src, "#undef %s\n", name);
            bool copying = false; /* inside the prelude's own definition, if any */
            for (const char *q = prelude; *q;) {
                const char *eol = strchr(q, '\n');
                size_t len = eol ? (size_t)(eol - q) : strlen(q);
                if (!copying && line_defines(q, other, sizeof other) && !strcmp(name, other))
                    copying = true;
                if (copying) {
                    mt_strbuf_appendf(src, "%.*s\n", (int)len, q);
                    copying = line_continues(q, len);
                }
                q += len + (eol != NULL);
            }
        }
        /* the next line that is not a continuation of this one */
        for (;;) {
            const char *eol = strchr(p, '\n');
            size_t len = eol ? (size_t)(eol - p) : strlen(p);
            bool more = line_continues(p, len);
            p += len + (eol != NULL);
            if (!more || !*p) break;
        }
    }
}

/* Compiles the group items[0..n) as one source and publishes every member; the number of
 * kernels published in *done. */
static mt_status compile_group(const mt_kcache *kc, batch_item *const *items, int32_t n,
                               const char *prelude, const char *cmd, int32_t *done)
{
    *done = 0;
    mt_strbuf src;
    mt_strbuf_init(&src);
    mt_strbuf_append(&src, prelude);
    for (int32_t i = 0; i < n; i++) {
        mt_strbuf_appendf(&src, "\n/* kernel %s: %s */\n", items[i]->key, items[i]->entry);
        mt_strbuf_append(&src, items[i]->source + items[i]->body);
        mt__hostcc_undef_macros(&src, items[i]->source + items[i]->body, prelude);
    }
    mt_status st = mt_strbuf_status(&src);
    char src_path[4096], so_path[4200], what[200];
    snprintf(what, sizeof what, "a group of %d kernels ('%s', ...)", (int)n, items[0]->entry);
    double t0 = mt_now_seconds();
    mt_cc_spec cc = host_cc(cmd);
    if (st == MT_OK)
        st = compile_tmp(kc, &cc, items[0]->key, src.data, what, NULL, src_path, so_path);
    mt_strbuf_deinit(&src);
    if (st != MT_OK) return st;
    unlink(src_path);
    st = seal_file(so_path);
    for (int32_t i = 0; i < n && st == MT_OK; i++) {
        st = publish_link(kc, so_path, items[i]->name);
        if (st == MT_OK) {
            (*done)++;
            if (env_flag("MLTRAIN_KEEP_KERNEL_SOURCE")) keep_item_source(kc, items[i]);
        }
    }
    unlink(so_path);
    __atomic_fetch_add(&g_kernels_compiled, (int64_t)*done, __ATOMIC_RELAXED);
    mt_log(MT_LOG_DEBUG, "hostcc: compiled %d kernels in one run in %.3f s", (int)n,
           mt_now_seconds() - t0);
    return st;
}

/* A unit of work of a batch: a group (several kernels with the prelude) or one kernel. */
typedef struct batch_job {
    batch_item **items;
    int32_t n;
    size_t weight; /* bytes to compile */
} batch_job;

typedef struct batch_ctx {
    const mt_kcache *kc;
    const char *cmd;
    const char *prelude;
    batch_job *jobs;
    int32_t njobs;
    atomic_int next;
    atomic_int built;
} batch_ctx;

static void batch_run_job(batch_ctx *c, const batch_job *j)
{
    int32_t done = 0;
    mt_status st = MT_ERR_INVALID;
    if (j->n > 1) {
        st = compile_group(c->kc, j->items, j->n, c->prelude, c->cmd, &done);
        if (st != MT_OK)
            mt_log(MT_LOG_DEBUG, "hostcc: %s; compiling its kernels one by one", mt_last_error());
    }
    if (st != MT_OK) { /* one kernel, or a group that failed: each on its own */
        for (int32_t i = done; i < j->n; i++) {
            const batch_item *it = j->items[i];
            if (compile_publish(c->kc, it->key, it->source, c->cmd, it->entry, it->name) == MT_OK)
                done++;
        }
    }
    mt_err_clear(); /* a kernel that fails reports its error again when it is requested */
    atomic_fetch_add(&c->built, done);
}

static void batch_worker(void *vctx, int64_t begin, int64_t end, int thread)
{
    (void)begin, (void)end, (void)thread;
    batch_ctx *c = vctx;
    for (int k; (k = atomic_fetch_add(&c->next, 1)) < c->njobs;) batch_run_job(c, &c->jobs[k]);
}

static int cmp_job(const void *a, const void *b)
{
    const batch_job *x = a, *y = b;
    return x->weight < y->weight ? 1 : x->weight > y->weight ? -1 : 0;
}

static int cmp_item_size(const void *a, const void *b)
{
    const batch_item *x = *(batch_item *const *)a, *y = *(batch_item *const *)b;
    size_t nx = strlen(x->source + x->body), ny = strlen(y->source + y->body);
    return nx < ny ? 1 : nx > ny ? -1 : 0;
}

/* Splits the recorded kernels into jobs: the ones with the prelude into at most `workers`
 * groups (largest first, each into the lightest group), the others one job each. */
static mt_status batch_plan(hc_batch *b, const mt_kcache *kc, const char *prelude, size_t plen,
                            int32_t workers, batch_ctx *c, batch_item ***order_out)
{
    batch_item **order = mt_calloc((size_t)b->n + 1, sizeof *order);
    c->jobs = mt_calloc((size_t)b->n + 1, sizeof *c->jobs);
    if (!order || !c->jobs) {
        mt_free(order);
        return mt_err_set(MT_ERR_NOMEM, "kernel batch: out of memory");
    }
    *order_out = order;
    int32_t ng = 0, ns = 0; /* kernels with and without the prelude */
    for (int pass = 0; pass < 2; pass++)
        for (int32_t i = 0; i < b->n; i++) {
            batch_item *it = &b->items[i];
            it->body = strncmp(it->source, prelude, plen) == 0 ? plen : 0;
            if ((pass == 0) != (it->body > 0)) continue;
            char path[4200];
            snprintf(path, sizeof path, "%s/%s", kc->dir, it->name);
            if (access(path, F_OK) == 0) continue; /* another process built it meanwhile */
            if (pass == 0)
                order[ng++] = it;
            else
                order[ng + ns++] = it;
        }
    qsort(order, (size_t)ng, sizeof *order, cmp_item_size);
    int32_t groups = ng < workers ? ng : workers;
    int32_t *of = mt_calloc((size_t)ng + 1, sizeof *of); /* group of each kernel */
    if (!of) return mt_err_set(MT_ERR_NOMEM, "kernel batch: out of memory");
    for (int32_t i = 0; i < ng; i++) {
        int32_t best = 0;
        for (int32_t g = 1; g < groups; g++)
            if (c->jobs[g].weight < c->jobs[best].weight) best = g;
        of[i] = best;
        c->jobs[best].weight += strlen(order[i]->source + order[i]->body);
        c->jobs[best].n++;
    }
    /* reorder so that each group's kernels are contiguous */
    batch_item **tmp = mt_calloc((size_t)ng + 1, sizeof *tmp);
    if (!tmp) {
        mt_free(of);
        return mt_err_set(MT_ERR_NOMEM, "kernel batch: out of memory");
    }
    int32_t at = 0;
    for (int32_t g = 0; g < groups; g++) {
        c->jobs[g].items = order + at;
        for (int32_t i = 0; i < ng; i++)
            if (of[i] == g) tmp[at++] = order[i];
    }
    if (ng) memcpy(order, tmp, (size_t)ng * sizeof *order);
    mt_free(tmp);
    mt_free(of);
    c->njobs = groups;
    for (int32_t i = 0; i < ns; i++) {
        batch_job *j = &c->jobs[c->njobs++];
        j->items = order + ng + i;
        j->n = 1;
        j->weight = strlen(order[ng + i]->source);
    }
    qsort(c->jobs, (size_t)c->njobs, sizeof *c->jobs, cmp_job); /* longest first */
    return MT_OK;
}

static mt_status batch_build(hc_batch *b, int32_t nworkers, int32_t *nbuilt)
{
    const char *cmd = cc_command();
    char version[256], why[700];
    if (env_no_cc() || !cc_identify(cmd, version, sizeof version, why, sizeof why))
        return MT_OK; /* nothing is compiled: requests interpret or fail as they would */
    mt_kcache kc;
    mt_status st = mt__kcache_open(&kc);
    if (st != MT_OK) return st;
    mt_strbuf pre;
    mt_strbuf_init(&pre);
    mt__kgen_prelude(&pre, MT_KLANG_C);
    st = mt_strbuf_status(&pre);
    int32_t workers = nworkers > 0 ? nworkers : mt_cpu_count();
    if (workers < 1) workers = 1;
    batch_ctx c = {.kc = &kc, .cmd = cmd, .prelude = pre.data};
    batch_item **order = NULL;
    if (st == MT_OK) st = batch_plan(b, &kc, pre.data, pre.len, workers, &c, &order);
    if (st == MT_OK && c.njobs > 0) {
        int nthreads = c.njobs < workers ? c.njobs : workers;
        mt_threadpool *tp = NULL;
        if (nthreads > 1 && mt_threadpool_new(&tp, nthreads) == MT_OK) {
            mt_threadpool_run(tp, mt_threadpool_size(tp), 1, batch_worker, &c);
            mt_threadpool_free(tp);
        } else {
            mt_err_clear();
            batch_worker(&c, 0, 1, 0);
        }
        if (nbuilt) *nbuilt = atomic_load(&c.built);
    }
    mt_free(order);
    mt_free(c.jobs);
    mt_strbuf_deinit(&pre);
    mt__kcache_close(&kc);
    return st;
}

mt_status mt_kernel_batch_end(int32_t nworkers, int32_t *nbuilt)
{
    if (nbuilt) *nbuilt = 0;
    hc_batch *b = t_batch;
    if (!b) return mt_err_set(MT_ERR_INVALID, "kernel batch: none is open on this thread");
    t_batch = NULL;
    mt_status st = b->n > 0 ? batch_build(b, nworkers, nbuilt) : MT_OK;
    batch_free(b);
    return st;
}

/* Loads the entry name (verified) and finds its symbol. MT_ERR_NOT_FOUND: no valid entry. */
static mt_status open_entry(const mt_kcache *kc, const char *name, mt_kcache_where where,
                            const char *entry, void **fn, void **dl)
{
    char path[4200];
    void *h = NULL;
    mt_status st = mt__kcache_dlopen(kc, name, where, &h, path, sizeof path);
    if (st != MT_OK) return st;
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
    mt_kcache kc;
    mt_status st = mt__kcache_open(&kc);
    if (st != MT_OK) return st;
    char key[65], name[80];
    key_hex(source, cmd, version, key);
    snprintf(name, sizeof name, "%s.so", key);

    st = open_entry(&kc, name, MT_KCACHE_ANY, entry, fn, dl_handle);
    if (st != MT_OK && st != MT_ERR_NOT_FOUND) {
        /* verified but unloadable (disk trouble, another libc): replace it */
        mt_log(MT_LOG_WARN, "kernel cache: rebuilding %s (%s)", name, mt_last_error());
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", kc.dir, name);
        unlink(path);
    }
    if (st != MT_OK && t_batch && !kc.temp) { /* left to the batch (see "batches") */
        mt_err_clear();
        st = batch_record(t_batch, key, name, source, entry);
    } else if (st != MT_OK) {
        mt_err_clear();
        st = compile_publish(&kc, key, source, cmd, entry, name);
        if (st == MT_OK) st = open_entry(&kc, name, MT_KCACHE_OWN, entry, fn, dl_handle);
    }
    mt__kcache_close(&kc);
    return st;
}
