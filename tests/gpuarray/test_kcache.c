/* The kernel disk cache's trust and integrity rules (hostcc.c, docs/security.md), through the
 * host compiler path the JIT uses (mt__hostcc_build: real compiler, real files, real dlopen):
 * a cache directory writable by group/others or owned by someone else is refused with a
 * message naming it, its owner and mode and the fix, and kernels still build (in a private
 * temporary directory, nothing written to the refused one); an entry altered or truncated after
 * publication is detected, rebuilt and replaced, and the kernel computes the right value; a
 * shared read-only cache (MLTRAIN_CACHE_READONLY) is read but never written; directories are
 * created 0700 and files 0600; a file verified once in a process is not hashed again (counted
 * by mt__kcache_checksum_count); kernels compiled as one group of a batch compute what they
 * compute alone and are published without clashing with others' temporaries. Each case sets
 * its own MLTRAIN_CACHE_DIR under its temporary directory. */
#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gpuarray_impl.h"
#include "mt_test.h"

/* ---------------------------------------------------------------- helpers */

static char g_log[16384];
static int g_compiles;

static void capture(mt_log_level level, const char *msg, void *user)
{
    (void)user;
    if (strstr(msg, "hostcc: compiled")) g_compiles++;
    if (level >= MT_LOG_WARN) {
        size_t n = strlen(g_log);
        snprintf(g_log + n, sizeof g_log - n, "%s\n", msg);
    }
}

static void capture_logs(void)
{
    g_log[0] = 0;
    g_compiles = 0;
    mt_log_set_callback(capture, NULL);
    mt_log_set_level(MT_LOG_DEBUG);
}

static void need_cc(void)
{
    if (!mt__hostcc_available()) MT_SKIP("no host C compiler");
}

static const char *sub(const char *name)
{
    static char bufs[4][1024];
    static int next;
    char *b = bufs[next++ % 4];
    snprintf(b, sizeof bufs[0], "%s/%s", mt_test_tmpdir(), name);
    return b;
}

static void make_dir(const char *path, unsigned mode)
{
    MT_CHECK(mkdir(path, 0700) == 0);
    MT_CHECK(chmod(path, (mode_t)mode) == 0); /* exact mode, whatever the umask */
}

/* Builds double f(double) = x * k + 1 and checks its value; the handle is closed again so a
 * later build really loads the file. */
static void build_and_check(int k)
{
    char src[256];
    snprintf(src, sizeof src, "double mt_kc_fn(double x) { return x * %d.0 + 1.0; }\n", k);
    void *fn = NULL, *dl = NULL;
    MT_CHECK_OK(mt__hostcc_build(src, "mt_kc_fn", &fn, &dl));
    double (*f)(double) = (double (*)(double))fn;
    MT_CHECK_CLOSE(f(2.5), 2.5 * k + 1.0, 0, 0);
    dlclose(dl);
}

static int count_files(const char *dir, const char *suffix)
{
    DIR *dp = opendir(dir);
    MT_CHECK(dp != NULL);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(dp)) != NULL) {
        size_t l = strlen(de->d_name), s = strlen(suffix);
        if (de->d_name[0] != '.' && l >= s && strcmp(de->d_name + l - s, suffix) == 0) n++;
    }
    closedir(dp);
    return n;
}

/* The path of the only *.so entry in dir. */
static void only_entry(const char *dir, char *out, size_t len)
{
    MT_CHECK_EQ_INT(count_files(dir, ".so"), 1);
    DIR *dp = opendir(dir);
    struct dirent *de;
    while ((de = readdir(dp)) != NULL) {
        size_t l = strlen(de->d_name);
        if (de->d_name[0] != '.' && l > 3 && strcmp(de->d_name + l - 3, ".so") == 0)
            snprintf(out, len, "%s/%s", dir, de->d_name);
    }
    closedir(dp);
}

static uid_t nobody_uid(void)
{
    struct passwd *pw = getpwnam("nobody");
    return pw ? pw->pw_uid : 65534;
}

/* ---------------------------------------------------------------- refusal */

MT_TEST(kcache_world_writable_dir_refused)
{
    need_cc();
    const char *dir = sub("open");
    make_dir(dir, 0777);
    MT_CHECK_ERR(mt__kcache_check_dir(dir, false), MT_ERR_IO, "chmod 700 ");
    MT_CHECK(strstr(mt_last_error(), dir) != NULL);
    MT_CHECK(strstr(mt_last_error(), "mode 0777") != NULL);
    MT_CHECK(strstr(mt_last_error(), "writable by group and others") != NULL);
    MT_CHECK(strstr(mt_last_error(), "MLTRAIN_CACHE_DIR") != NULL);
    /* group-writable alone is refused too */
    MT_CHECK(chmod(dir, 0770) == 0);
    MT_CHECK_ERR(mt__kcache_check_dir(dir, false), MT_ERR_IO, "writable by its group");
    MT_CHECK(chmod(dir, 0777) == 0);

    setenv("MLTRAIN_CACHE_DIR", dir, 1);
    capture_logs();
    build_and_check(3);
    build_and_check(5);
    MT_CHECK(strstr(g_log, "refused") && strstr(g_log, dir));
    MT_CHECK(strstr(g_log, "private temporary directory") != NULL);
    /* logged once per directory, however many kernels are built */
    const char *once = "private temporary directory";
    if (strstr(strstr(g_log, once) + 1, once))
        mt_test_fail(__FILE__, __LINE__, "refusal logged more than once:\n%s", g_log);
    MT_CHECK_EQ_INT(g_compiles, 2);
    /* nothing was written into the refused directory */
    DIR *dp = opendir(dir);
    struct dirent *de;
    int n = 0;
    while ((de = readdir(dp)) != NULL) n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
    closedir(dp);
    MT_CHECK_EQ_INT(n, 0);
    /* the fix works */
    MT_CHECK(chmod(dir, 0700) == 0);
    MT_CHECK_OK(mt__kcache_check_dir(dir, false));
    build_and_check(7);
    MT_CHECK_EQ_INT(count_files(dir, ".so"), 1);
}

MT_TEST(kcache_foreign_owner_dir_refused)
{
    need_cc();
    if (geteuid() != 0) MT_SKIP("needs root to give a directory to another user");
    const char *dir = sub("theirs");
    make_dir(dir, 0700);
    MT_CHECK(chown(dir, nobody_uid(), (gid_t)-1) == 0);
    MT_CHECK_ERR(mt__kcache_check_dir(dir, false), MT_ERR_IO, "not by you");
    MT_CHECK(strstr(mt_last_error(), dir) != NULL);
    MT_CHECK(strstr(mt_last_error(), "mode 0700") != NULL);
    MT_CHECK(strstr(mt_last_error(), "MLTRAIN_CACHE_DIR") != NULL);
    char uid[32];
    snprintf(uid, sizeof uid, "uid %u", (unsigned)nobody_uid());
    MT_CHECK(strstr(mt_last_error(), uid) != NULL);

    setenv("MLTRAIN_CACHE_DIR", dir, 1);
    capture_logs();
    build_and_check(4);
    MT_CHECK(strstr(g_log, "not by you") && strstr(g_log, "private temporary directory"));
    MT_CHECK_EQ_INT(count_files(dir, ""), 0);
}

/* ---------------------------------------------------------------- integrity */

static void flip_byte(const char *path, off_t at)
{
    int fd = open(path, O_RDWR);
    MT_CHECK(fd >= 0);
    unsigned char b = 0;
    MT_CHECK(pread(fd, &b, 1, at) == 1);
    b ^= 0x40;
    MT_CHECK(pwrite(fd, &b, 1, at) == 1);
    close(fd);
}

MT_TEST(kcache_altered_entry_rebuilt)
{
    need_cc();
    const char *dir = sub("cache");
    make_dir(dir, 0700);
    setenv("MLTRAIN_CACHE_DIR", dir, 1);
    capture_logs();
    build_and_check(6);
    MT_CHECK_EQ_INT(g_compiles, 1);
    build_and_check(6); /* intact: loaded, not compiled */
    MT_CHECK_EQ_INT(g_compiles, 1);
    MT_CHECK(strstr(g_log, "not loaded") == NULL);

    char path[2048];
    only_entry(dir, path, sizeof path);
    struct stat sb;
    MT_CHECK(stat(path, &sb) == 0);
    off_t size = sb.st_size;

    /* one flipped byte in the code */
    flip_byte(path, size / 2);
    build_and_check(6);
    MT_CHECK_EQ_INT(g_compiles, 2);
    MT_CHECK(strstr(g_log, "not loaded") && strstr(g_log, "does not match its recorded checksum"));
    build_and_check(6); /* the replacement is valid */
    MT_CHECK_EQ_INT(g_compiles, 2);

    /* truncated to half, then to the bare shared object (trailer cut off) */
    const off_t cuts[] = {size / 2, size - 32}; /* 32: the trailer */
    for (int i = 0; i < 2; i++) {
        g_log[0] = 0;
        MT_CHECK(truncate(path, cuts[i]) == 0);
        build_and_check(6);
        MT_CHECK_EQ_INT(g_compiles, 3 + i);
        MT_CHECK(strstr(g_log, "no valid trailer") != NULL);
        MT_CHECK(stat(path, &sb) == 0);
        MT_CHECK_EQ_INT(sb.st_size, size);
    }
    /* a flipped byte in the recorded hash itself */
    g_log[0] = 0;
    flip_byte(path, size - 1);
    build_and_check(6);
    MT_CHECK_EQ_INT(g_compiles, 5);
    MT_CHECK(strstr(g_log, "not loaded") != NULL);
}

/* A file verified once in a process is not hashed again while its identity (inode, size, mtime,
 * ctime) stays the same, but a change after that is still caught. The entry must be over 2 s
 * old to be remembered at all (file times advance in coarse ticks), hence the wait. */
MT_TEST(kcache_verified_once_then_altered_rebuilt)
{
    need_cc();
    const char *dir = sub("cache-memo");
    make_dir(dir, 0700);
    setenv("MLTRAIN_CACHE_DIR", dir, 1);
    capture_logs();
    mt__kcache_forget_verified();
    build_and_check(9);
    MT_CHECK_EQ_INT(g_compiles, 1);
    struct timespec wait = {2, 200000000};
    nanosleep(&wait, NULL);
    int64_t h0 = mt__kcache_checksum_count();
    build_and_check(9); /* verified (hashed) and remembered */
    int64_t h1 = mt__kcache_checksum_count();
    MT_CHECK(h1 > h0);
    build_and_check(9); /* remembered: not hashed again */
    build_and_check(9);
    MT_CHECK_EQ_INT(mt__kcache_checksum_count(), h1);
    MT_CHECK_EQ_INT(g_compiles, 1);
    MT_CHECK(strstr(g_log, "not loaded") == NULL);
    char path[2048];
    only_entry(dir, path, sizeof path);
    struct stat sb;
    MT_CHECK(stat(path, &sb) == 0);
    flip_byte(path, sb.st_size / 2); /* same size, new ctime */
    build_and_check(9);
    MT_CHECK(mt__kcache_checksum_count() > h1); /* the changed file is hashed again */
    MT_CHECK_EQ_INT(g_compiles, 2);
    MT_CHECK(strstr(g_log, "does not match its recorded checksum") != NULL);
}

/* ---------------------------------------------------------------- batches */

/* A generated kernel: the C prelude, then its own part. */
static char *kernel_source(const char *body)
{
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    mt__kgen_prelude(&sb, MT_KLANG_C);
    mt_strbuf_append(&sb, body);
    MT_CHECK_OK(mt_strbuf_status(&sb));
    return sb.data; /* owned by the caller (mt_free) */
}

/* The entry name (<key>.so) the cache gives source: built once in a scratch cache. */
static void entry_name_of(const char *source, const char *entry, const char *scratch, char *out,
                          size_t len)
{
    setenv("MLTRAIN_CACHE_DIR", scratch, 1);
    void *fn = NULL, *dl = NULL;
    MT_CHECK_OK(mt__hostcc_build(source, entry, &fn, &dl));
    dlclose(dl);
    char path[2048];
    only_entry(scratch, path, sizeof path);
    snprintf(out, len, "%s", strrchr(path, '/') + 1);
    unlink(path);
}

/* Two kernels compiled as one group (one compiler run, one file under both names):
 * - the first kernel's own part #defines a macro that the second tests with #ifdef, and
 *   redefines one of the prelude's (MT_INF), which the second uses: each must compute what it
 *   computes alone (no macro leaks into the kernel after it, the prelude's comes back);
 * - the temporary names under which the group's file is linked before the renames are not
 *   derived from the pid and a counter (which repeat across containers and hosts sharing a
 *   cache directory): temporaries planted under every such name for this pid do not make the
 *   group fail (it would be compiled again kernel by kernel: three compiler runs), and they
 *   are left alone. */
MT_TEST(kcache_batch_group_isolated_kernels)
{
    need_cc();
    const char *scratch = sub("scratch"), *dir = sub("batch");
    make_dir(scratch, 0700);
    make_dir(dir, 0700);
    capture_logs();
    /* the first part is the larger one: a group is ordered by size, largest first */
    char *a = kernel_source("/* a kernel that defines a macro for its own use .................. "
                            "................................................................ */\n"
                            "#define MT_KC_LEAK 7.0\n"
                            "#undef MT_INF\n#define MT_INF 100.0\n"
                            "double mt_kc_a(double x) { return x + MT_KC_LEAK + MT_INF; }\n");
    char *b = kernel_source("double mt_kc_b(double x)\n{\n#ifdef MT_KC_LEAK\n    return -1.0;\n"
                            "#else\n    return MT_INF > 1e300 ? x * 2.0 : -2.0;\n#endif\n}\n");
    char name_a[128], name_b[128];
    entry_name_of(a, "mt_kc_a", scratch, name_a, sizeof name_a);
    entry_name_of(b, "mt_kc_b", scratch, name_b, sizeof name_b);
    int planted = 0;
    for (int k = 0; k < 256; k++)
        for (int w = 0; w < 2; w++) {
            char path[2048];
            snprintf(path, sizeof path, "%s/.tmp-ln-%ld-%d-%.16s", dir, (long)getpid(), k,
                     w ? name_b : name_a);
            int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
            MT_CHECK(fd >= 0);
            close(fd);
            planted++;
        }
    setenv("MLTRAIN_CACHE_DIR", dir, 1);
    int64_t runs0 = 0, runs1 = 0;
    mt_host_kernel_counts(NULL, &runs0);
    MT_CHECK_OK(mt_kernel_batch_begin());
    void *fn = NULL, *dl = NULL;
    MT_CHECK_ERR(mt__hostcc_build(a, "mt_kc_a", &fn, &dl), MT_ERR_NOT_BUILT, "kernel batch");
    MT_CHECK_ERR(mt__hostcc_build(b, "mt_kc_b", &fn, &dl), MT_ERR_NOT_BUILT, "kernel batch");
    int32_t built = 0;
    MT_CHECK_OK(mt_kernel_batch_end(1, &built));
    MT_CHECK_EQ_INT(built, 2);
    mt_host_kernel_counts(NULL, &runs1);
    MT_CHECK_EQ_INT(runs1 - runs0, 1); /* one group, one compiler run */
    char pa[2048], pb[2048];
    snprintf(pa, sizeof pa, "%s/%s", dir, name_a);
    snprintf(pb, sizeof pb, "%s/%s", dir, name_b);
    struct stat sa, sb;
    MT_CHECK(stat(pa, &sa) == 0 && stat(pb, &sb) == 0);
    MT_CHECK(sa.st_ino == sb.st_ino); /* one file under both names */
    MT_CHECK_OK(mt__hostcc_build(a, "mt_kc_a", &fn, &dl));
    MT_CHECK_CLOSE(((double (*)(double))fn)(1.5), 108.5, 0, 0);
    dlclose(dl);
    MT_CHECK_OK(mt__hostcc_build(b, "mt_kc_b", &fn, &dl));
    MT_CHECK_CLOSE(((double (*)(double))fn)(1.5), 3.0, 0, 0);
    dlclose(dl);
    mt_host_kernel_counts(NULL, &runs0);
    MT_CHECK_EQ_INT(runs0, runs1); /* loaded, not compiled */
    /* the planted temporaries are still there, and nothing else was left behind */
    DIR *dp = opendir(dir);
    MT_CHECK(dp != NULL);
    int tmps = 0, others = 0;
    struct dirent *de;
    while ((de = readdir(dp)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        if (!strncmp(de->d_name, ".tmp-ln-", 8))
            tmps++;
        else if (strcmp(de->d_name, name_a) && strcmp(de->d_name, name_b) &&
                 strncmp(de->d_name, "cc-", 3))
            others++;
    }
    closedir(dp);
    MT_CHECK_EQ_INT(tmps, planted);
    MT_CHECK_EQ_INT(others, 0);
    mt_free(a);
    mt_free(b);
}

/* What follows a kernel's own part in a group: an #undef for each macro the part defines
 * (a continued definition counts once, and a "#define" inside its continuation is not a
 * definition), and the prelude's own definition of a redefined macro back, every
 * continuation line of it. */
MT_TEST(kcache_group_restores_multiline_prelude_macros)
{
    const char *prelude = "#define ONE 1\n"
                          "#define TWO(a) \\\n    ((a) + \\\n     (a))\n"
                          "#define THREE 3\n";
    const char *body = "#undef TWO\n#define TWO(a) \\\n  ((a) * 2)\n"
                       "#define MINE \\\n#define NOT_A_DEFINITION\n"
                       "int f(void) { return TWO(ONE); }\n";
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    mt__hostcc_undef_macros(&sb, body, prelude);
    MT_CHECK_OK(mt_strbuf_status(&sb));
    MT_CHECK_STR_EQ(sb.data, "\n#undef TWO\n#define TWO(a) \\\n    ((a) + \\\n     (a))\n"
                             "#undef MINE\n");
    mt_strbuf_deinit(&sb);
}

/* The data entries the CUDA backend stores (cubin/PTX images) go through the same checks. */
MT_TEST(kcache_data_entry_verified)
{
    const char *dir = sub("data");
    make_dir(dir, 0700);
    setenv("MLTRAIN_CACHE_DIR", dir, 1);
    capture_logs();
    mt_kcache kc;
    MT_CHECK_OK(mt__kcache_open(&kc));
    MT_CHECK(!kc.temp);
    MT_CHECK_STR_EQ(kc.dir, dir);
    const char payload[] = "image bytes\0with a NUL";
    MT_CHECK_OK(mt__kcache_write(&kc, "x.cubin", payload, sizeof payload));
    char *got = NULL, path[4200];
    size_t n = 0;
    MT_CHECK(mt__kcache_read(&kc, "x.cubin", MT_KCACHE_ANY, &got, &n, path, sizeof path));
    MT_CHECK_EQ_INT(n, sizeof payload);
    MT_CHECK(memcmp(got, payload, n) == 0);
    mt_free(got);
    MT_CHECK(!mt__kcache_read(&kc, "missing.cubin", MT_KCACHE_ANY, &got, &n, path, sizeof path));
    MT_CHECK(g_log[0] == 0); /* a miss is not a warning */
    snprintf(path, sizeof path, "%s/x.cubin", dir);

    flip_byte(path, 3);
    MT_CHECK(!mt__kcache_read(&kc, "x.cubin", MT_KCACHE_ANY, &got, &n, path, sizeof path));
    MT_CHECK(strstr(g_log, "does not match") != NULL);
    MT_CHECK(access(path, F_OK) != 0); /* removed from the user's own cache */

    MT_CHECK_OK(mt__kcache_write(&kc, "x.cubin", payload, sizeof payload));
    MT_CHECK(truncate(path, 10) == 0);
    MT_CHECK(!mt__kcache_read(&kc, "x.cubin", MT_KCACHE_ANY, &got, &n, path, sizeof path));
    MT_CHECK(strstr(g_log, "no valid trailer") != NULL);

    /* an entry another user could write is not trusted either */
    MT_CHECK_OK(mt__kcache_write(&kc, "y.cubin", payload, sizeof payload));
    snprintf(path, sizeof path, "%s/y.cubin", dir);
    MT_CHECK(chmod(path, 0666) == 0);
    MT_CHECK(!mt__kcache_read(&kc, "y.cubin", MT_KCACHE_ANY, &got, &n, path, sizeof path));
    MT_CHECK(strstr(g_log, "mode 0666 not allowed") != NULL);
    mt__kcache_close(&kc);
}

/* ---------------------------------------------------------------- shared read-only cache */

static unsigned long long dir_fingerprint(const char *dir)
{
    DIR *dp = opendir(dir);
    MT_CHECK(dp != NULL);
    unsigned long long h = 0;
    struct dirent *de;
    char path[2048];
    while ((de = readdir(dp)) != NULL) {
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        struct stat sb;
        MT_CHECK(lstat(path, &sb) == 0);
        h += (unsigned long long)sb.st_ino * 31 + (unsigned long long)sb.st_size * 7 +
             (unsigned long long)sb.st_mtim.tv_nsec + (unsigned long long)sb.st_mtim.tv_sec;
        for (const char *p = de->d_name; *p; p++) h = h * 131 + (unsigned char)*p;
    }
    closedir(dp);
    return h;
}

MT_TEST(kcache_shared_readonly_reads_never_writes)
{
    need_cc();
    const char *shared = sub("shared"), *own = sub("own");
    make_dir(shared, 0700);
    make_dir(own, 0700);
    /* an administrator fills the shared cache, then opens it for reading */
    setenv("MLTRAIN_CACHE_DIR", shared, 1);
    capture_logs();
    build_and_check(8);
    char entry[2048];
    only_entry(shared, entry, sizeof entry);
    MT_CHECK(chmod(shared, 0755) == 0);
    MT_CHECK(chmod(entry, 0644) == 0);
    bool root = geteuid() == 0;
    if (root) { /* owned by someone else, as a real shared cache would be */
        MT_CHECK(chown(shared, nobody_uid(), (gid_t)-1) == 0);
        MT_CHECK(chown(entry, nobody_uid(), (gid_t)-1) == 0);
        MT_CHECK_ERR(mt__kcache_check_dir(shared, false), MT_ERR_IO, "not by you");
    }
    MT_CHECK_OK(mt__kcache_check_dir(shared, true));
    unsigned long long before = dir_fingerprint(shared);

    setenv("MLTRAIN_CACHE_DIR", own, 1);
    setenv("MLTRAIN_CACHE_READONLY", shared, 1);
    capture_logs();
    build_and_check(8); /* found in the shared cache */
    MT_CHECK_EQ_INT(g_compiles, 0);
    MT_CHECK_EQ_INT(count_files(own, ".so"), 0);
    build_and_check(9); /* a miss is compiled into the user's own cache */
    MT_CHECK_EQ_INT(g_compiles, 1);
    MT_CHECK_EQ_INT(count_files(own, ".so"), 1);
    MT_CHECK(g_log[0] == 0);
    MT_CHECK(dir_fingerprint(shared) == before);

    /* a bad shared entry is verified, not loaded, rebuilt privately and left where it is */
    flip_byte(entry, 100);
    before = dir_fingerprint(shared);
    build_and_check(8);
    MT_CHECK_EQ_INT(g_compiles, 2);
    MT_CHECK(strstr(g_log, "rebuilt in the private cache") != NULL);
    MT_CHECK_EQ_INT(count_files(own, ".so"), 2);
    MT_CHECK(dir_fingerprint(shared) == before);
    MT_CHECK(access(entry, F_OK) == 0);

    /* a shared cache that others can write is refused, with its fix */
    if (root) MT_CHECK(chown(shared, 0, (gid_t)-1) == 0);
    MT_CHECK(chmod(shared, 0757) == 0);
    MT_CHECK_ERR(mt__kcache_check_dir(shared, true), MT_ERR_IO, "chmod o-w");
    g_log[0] = 0;
    build_and_check(10);
    MT_CHECK(strstr(g_log, "writable by others") != NULL);
}

/* ---------------------------------------------------------------- modes */

static void check_mode(const char *path, unsigned want)
{
    struct stat sb;
    MT_CHECK(lstat(path, &sb) == 0);
    if ((sb.st_mode & 07777) != want)
        mt_test_fail(__FILE__, __LINE__, "%s has mode %04o, expected %04o", path,
                     (unsigned)sb.st_mode & 07777, want);
}

MT_TEST(kcache_creates_0700_dirs_and_0600_files)
{
    need_cc();
    umask(0); /* the modes must not depend on the caller's umask */
    const char *top = sub("a");
    char dir[2048];
    snprintf(dir, sizeof dir, "%s/b/c", top);
    setenv("MLTRAIN_CACHE_DIR", dir, 1);
    setenv("MLTRAIN_KEEP_KERNEL_SOURCE", "1", 1);
    capture_logs();
    build_and_check(11);
    check_mode(top, 0700);
    char mid[2048];
    snprintf(mid, sizeof mid, "%s/b", top);
    check_mode(mid, 0700);
    check_mode(dir, 0700);
    DIR *dp = opendir(dir);
    struct dirent *de;
    int n = 0;
    char path[4096];
    while ((de = readdir(dp)) != NULL) {
        if (de->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        check_mode(path, 0600);
        n++;
    }
    closedir(dp);
    MT_CHECK(n >= 2); /* the entry and its kept source (and the compiler identity) */
    mt_kcache kc;
    MT_CHECK_OK(mt__kcache_open(&kc));
    MT_CHECK_OK(mt__kcache_write(&kc, "z.ptx", "p", 2));
    snprintf(path, sizeof path, "%s/z.ptx", dir);
    check_mode(path, 0600);
}
