/* Core's isolated-child runner (src/core/isolate.c) on its own, with real forked children: a
 * result streamed back; the child's environment (only stdio and the pipe open, no core dump,
 * the default action for SIGSEGV, a memory limit relative to the address space it inherited,
 * no atexit handler run); every abnormal end (the deadline, also for a child that closes the
 * pipe and keeps running, a signal, a non-zero exit, no result, a malformed result, a failure
 * of this process) as an error naming the subject; the memory limit (an allocation beyond it
 * fails and is reported as running out of memory within it; MLTRAIN_ISOLATE_MAX_MB=0 lifts
 * it; the default grows with the file; huge settings are clamped; only an ERR_NOMEM of the work
 * is reported as running out of memory); a process started with stdio closed; the log's
 * mutex held by another thread at the fork. The users of the runner are tested with real files in
 * tests/io/test_ckpt_isolate.c and tests/io/test_hdf5_probe.c. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../src/core/isolate.h"
#include "mt_test.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define NO_LIMIT_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define NO_LIMIT_BUILD 1
#endif
#endif
#ifndef NO_LIMIT_BUILD
#define NO_LIMIT_BUILD 0
#endif

#define MIB ((size_t)1 << 20)

/* The child's report: a status, then facts about its environment, then a message. */
typedef struct report {
    int32_t status;
    uint64_t open_fds;   /* bit k: descriptor k (0..63) is open */
    uint64_t core_limit; /* RLIMIT_CORE */
    int32_t segv_default;
    int32_t alloc_ok; /* the allocation asked for succeeded */
    char msg[256];
} report;

typedef struct job {
    const char *mode;      /* what the child does */
    size_t alloc;          /* bytes the child allocates (and touches one byte of per page) */
    mt_status work_status; /* the status the child's work fails with (0: it does not) ... */
    int work_errno;        /* ... and errno at that moment */
    report got;
    const char *malformed; /* the parent calls the result malformed with this reason */
    bool own_failure;      /* the parent fails on its own after reading */
} job;

static int child_fn(int fd, void *ctx)
{
    const job *j = ctx;
    report r;
    memset(&r, 0, sizeof r);
    for (int k = 0; k < 64; k++)
        if (fcntl(k, F_GETFD) >= 0) r.open_fds |= (uint64_t)1 << k;
    struct rlimit rl;
    r.core_limit = getrlimit(RLIMIT_CORE, &rl) == 0 ? (uint64_t)rl.rlim_cur : 99;
    struct sigaction sa;
    r.segv_default = sigaction(SIGSEGV, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL;
    mt_status st = MT_OK;
    if (j->alloc) {
        char *p = mt_malloc(j->alloc);
        if (p) {
            for (size_t i = 0; i < j->alloc; i += 4096)
                p[i] = 1;
            r.alloc_ok = p[j->alloc / 2] == 1;
            mt_free(p);
        } else {
            st = MT_ERR_NOMEM;
        }
        st = mt__isolate_child_result(st);
    }
    if (j->work_status != MT_OK) {
        st = mt_err_set(j->work_status, "the work failed on its own");
        errno = j->work_errno;
        st = mt__isolate_child_result(st);
    }
    if (!strcmp(j->mode, "noisy")) { /* its stdout and stderr must not reach the result */
        printf("noise on stdout\n");
        fflush(stdout);
        fprintf(stderr, "noise on stderr\n");
        if (write(1, "raw noise\n", 10) < 0 || write(2, "raw noise\n", 10) < 0) r.alloc_ok = 0;
    }
    if (!strcmp(j->mode, "log")) mt_log(MT_LOG_ERROR, "logged in the child");
    r.status = (int32_t)st;
    snprintf(r.msg, sizeof r.msg, "%s", st == MT_OK ? "" : mt_last_error());
    if (!strcmp(j->mode, "half")) { /* half a report, then exit 0 */
        mt__isolate_write(fd, &r, sizeof r / 2);
        return 0;
    }
    if (!mt__isolate_write(fd, &r, sizeof r)) return 1;
    if (!strcmp(j->mode, "linger")) { /* the result, then no exit */
        close(fd);
        for (;;)
            pause();
    }
    return !strcmp(j->mode, "exit7") ? 7 : 0;
}

static mt_status parent_fn(mt__isolate_rx *rx, void *ctx)
{
    job *j = ctx;
    if (!mt__isolate_read(rx, &j->got, sizeof j->got)) return MT_ERR_FORMAT;
    if (j->malformed) return mt__isolate_malformed(rx, j->malformed);
    if (j->own_failure) return mt_err_set(MT_ERR_RANGE, "this side gave up");
    return MT_OK;
}

static mt_status run_job(job *j, double timeout_s)
{
    const mt__isolate_spec spec = {
        .subject = "thing 'x.bin'",
        .worker = "the parser",
        .task = "parsing it",
        .hint = "the thing is bad",
        .timeout_var = "TEST_TIMEOUT",
        .start_fix = "",
        .timeout_s = timeout_s,
        .file_bytes = 1000,
        .child = child_fn,
        .parent = parent_fn,
        .ctx = j,
    };
    return mt__isolate_run(&spec);
}

static void check_no_children(void)
{
    errno = 0;
    MT_CHECK(waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD);
}

static char g_marker[1024];

/* Creates the marker file: run at exit by this process only, never by a child. */
static void atexit_marker(void)
{
    int fd = open(g_marker, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd >= 0) close(fd);
}

/* A result comes back; the child ran with only stdio and the pipe (at 3) open, without core
 * dumps, with SIGSEGV's default action (this process handles it), and left without running
 * this process's atexit handlers. */
MT_TEST(isolate_result_and_child_environment)
{
    snprintf(g_marker, sizeof g_marker, "%s/atexit.txt", mt_test_tmpdir());
    MT_CHECK(atexit(atexit_marker) == 0);
    int nul = open("/dev/null", O_RDONLY);
    int extra = fcntl(nul, F_DUPFD, 10); /* inherited without close-on-exec */
    close(nul);
    MT_CHECK(extra >= 10);
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    MT_CHECK(sigaction(SIGSEGV, &sa, &old) == 0);
    job j = {.mode = "plain"};
    MT_CHECK_OK(run_job(&j, 30));
    sigaction(SIGSEGV, &old, NULL);
    close(extra);
    MT_CHECK_EQ_INT(j.got.status, MT_OK);
    MT_CHECK_EQ_INT((long long)(j.got.open_fds & ~(uint64_t)7), 8); /* 3 only, beyond stdio */
    MT_CHECK_EQ_INT((long long)j.got.core_limit, 0);
    MT_CHECK_EQ_INT(j.got.segv_default, 1);
    struct stat sb;
    MT_CHECK(stat(g_marker, &sb) != 0);
    check_no_children();
}

/* Every abnormal end is an error naming the subject and what happened; no child is left. */
MT_TEST(isolate_abnormal_ends)
{
    static const struct {
        const char *hook, *mode, *malformed;
        bool own;
        mt_status code;
        const char *needle;
    } cases[] = {
        {"hang", "plain", NULL, false, MT_ERR_TIMEOUT,
         "thing 'x.bin': the parser did not finish parsing it within 0.3 s (TEST_TIMEOUT); the "
         "thing is bad"},
        {NULL, "linger", NULL, false, MT_ERR_TIMEOUT, "did not finish parsing it within 0.3 s"},
        {"segv", "plain", NULL, false, MT_ERR_FORMAT,
         "thing 'x.bin': the parser crashed (SIGSEGV) while parsing it; the thing is bad"},
        {"abort", "plain", NULL, false, MT_ERR_FORMAT, "the parser crashed (SIGABRT)"},
        {"exit3", "plain", NULL, false, MT_ERR_FORMAT,
         "thing 'x.bin': the process in which the parser was parsing it ended with exit status 3"},
        {NULL, "exit7", NULL, false, MT_ERR_FORMAT, "ended with exit status 7"},
        {"silent", "plain", NULL, false, MT_ERR_FORMAT,
         "thing 'x.bin': the process in which the parser was parsing it ended without a result; "
         "the thing is bad"},
        {NULL, "half", NULL, false, MT_ERR_FORMAT, "ended without a result"},
        {NULL, "plain", "a record of no known kind", false, MT_ERR_FORMAT,
         "the parser was parsing it sent a malformed result (a record of no known kind); the "
         "thing is bad"},
        {NULL, "linger", NULL, true, MT_ERR_RANGE, "this side gave up"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (cases[i].hook)
            setenv("MLTRAIN_ISOLATE_TEST_CHILD", cases[i].hook, 1);
        else
            unsetenv("MLTRAIN_ISOLATE_TEST_CHILD");
        job j = {
            .mode = cases[i].mode, .malformed = cases[i].malformed, .own_failure = cases[i].own};
        double t0 = mt_now_seconds();
        MT_CHECK_ERR(run_job(&j, 0.3), cases[i].code, cases[i].needle);
        printf("%-6s %-6s %-5.2f s %s\n", cases[i].hook ? cases[i].hook : "-", cases[i].mode,
               mt_now_seconds() - t0, mt_last_error());
        check_no_children();
    }
    unsetenv("MLTRAIN_ISOLATE_TEST_CHILD");
}

/* The default limit and MLTRAIN_ISOLATE_MAX_MB. */
MT_TEST(isolate_memory_limit_setting)
{
    unsetenv("MLTRAIN_ISOLATE_MAX_MB");
    if (NO_LIMIT_BUILD) {
        MT_CHECK_EQ_INT((long long)mt__isolate_mem_limit(1000), 0);
        MT_SKIP("a sanitizer build: the child has no memory limit");
    }
    MT_CHECK_EQ_INT((long long)mt__isolate_mem_limit(0), 1024LL << 20);
    MT_CHECK_EQ_INT((long long)mt__isolate_mem_limit(100 << 20), 1024LL << 20);
    MT_CHECK_EQ_INT((long long)mt__isolate_mem_limit(1000LL << 20), 8000LL << 20);
    setenv("MLTRAIN_ISOLATE_MAX_MB", "64", 1);
    MT_CHECK_EQ_INT((long long)mt__isolate_mem_limit(1000LL << 20), 64LL << 20);
    setenv("MLTRAIN_ISOLATE_MAX_MB", "0", 1);
    MT_CHECK_EQ_INT((long long)mt__isolate_mem_limit(1000), 0);
    setenv("MLTRAIN_ISOLATE_MAX_MB", "lots", 1); /* not a number: the default */
    MT_CHECK_EQ_INT((long long)mt__isolate_mem_limit(1000), 1024LL << 20);
    setenv("MLTRAIN_ISOLATE_MAX_MB", " -5", 1); /* strtoull would negate it: the default too */
    MT_CHECK_EQ_INT((long long)mt__isolate_mem_limit(1000), 1024LL << 20);
    /* huge values are clamped to 2^40 MiB, so that 4 limits still fit in 64 bits */
    const uint64_t most = MT__ISOLATE_MAX_MB << 20;
    MT_CHECK(most <= UINT64_MAX / 8);
    static const char *const huge[] = {"1099511627777", "4398046511104", "8796093022207",
                                       "99999999999999999999999999"};
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
        setenv("MLTRAIN_ISOLATE_MAX_MB", huge[i], 1);
        if (mt__isolate_mem_limit(1000) != most)
            mt_test_fail(__FILE__, __LINE__, "MLTRAIN_ISOLATE_MAX_MB=%s gives %llu bytes", huge[i],
                         (unsigned long long)mt__isolate_mem_limit(1000));
    }
    setenv("MLTRAIN_ISOLATE_MAX_MB", "1099511627776", 1); /* the largest honoured as it is */
    MT_CHECK(mt__isolate_mem_limit(1000) == most);
    unsetenv("MLTRAIN_ISOLATE_MAX_MB");
    MT_CHECK(mt__isolate_mem_limit(UINT64_MAX) == most); /* the default too */
}

/* Only a work that failed with ERR_NOMEM gets the out-of-memory message (naming the limit):
 * a failure with another status keeps it and its message whatever errno says, and an ERR_NOMEM
 * needs no errno. */
MT_TEST(isolate_out_of_memory_needs_the_status)
{
    if (NO_LIMIT_BUILD) MT_SKIP("a sanitizer build: the child has no memory limit");
    unsetenv("MLTRAIN_ISOLATE_MAX_MB");
    unsetenv("MLTRAIN_ISOLATE_TEST_CHILD");
    job fmt = {.mode = "plain", .work_status = MT_ERR_FORMAT, .work_errno = ENOMEM};
    MT_CHECK_OK(run_job(&fmt, 30));
    MT_CHECK_EQ_INT(fmt.got.status, MT_ERR_FORMAT);
    MT_CHECK_STR_EQ(fmt.got.msg, "the work failed on its own");
    job oom = {.mode = "plain", .work_status = MT_ERR_NOMEM, .work_errno = 0};
    MT_CHECK_OK(run_job(&oom, 30));
    MT_CHECK_EQ_INT(oom.got.status, MT_ERR_NOMEM);
    MT_CHECK(strstr(oom.got.msg, "the parser ran out of memory within the limit of 1024 MiB") !=
             NULL);
    check_no_children();
}

/* A process started with some of stdin, stdout and stderr closed gets the pipe on those
 * numbers: the child's writes to its stdout and stderr (here printf, fprintf and raw writes)
 * must still not reach the result, and the child has all three open (on /dev/null where this
 * process had them closed). Each variant runs in a forked process of its own, which reports
 * through its exit status. */
MT_TEST(isolate_with_stdio_closed)
{
    unsetenv("MLTRAIN_ISOLATE_TEST_CHILD");
    static const int closed[][3] = {{0, 1, -1}, {1, 2, -1}, {0, 1, 2}, {1, -1, -1}};
    for (size_t v = 0; v < sizeof closed / sizeof closed[0]; v++) {
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        MT_CHECK(pid >= 0);
        if (pid == 0) {
            for (int k = 0; k < 3; k++)
                if (closed[v][k] >= 0) close(closed[v][k]);
            job j = {.mode = "noisy"};
            mt_status st = run_job(&j, 30);
            int code = st != MT_OK                            ? 10 + (int)-st
                       : j.got.status != MT_OK                ? 2
                       : strcmp(j.got.msg, "") != 0           ? 3
                       : (j.got.open_fds & 7) != 7            ? 4
                       : (j.got.open_fds & ~(uint64_t)7) != 8 ? 5
                                                              : 0;
            _exit(code);
        }
        int ws = 0;
        MT_CHECK(waitpid(pid, &ws, 0) == pid);
        if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0)
            mt_test_fail(__FILE__, __LINE__,
                         "with descriptors %d %d %d closed: the forked test process ended with "
                         "status %d (2: a wrong status in the result, 3: a wrong message, 4, 5: "
                         "wrong descriptors in the child, 10+: the run failed)",
                         closed[v][0], closed[v][1], closed[v][2],
                         WIFEXITED(ws) ? WEXITSTATUS(ws) : -WTERMSIG(ws));
    }
    check_no_children();
}

/* A thread of this process holds the log's mutex (inside a log callback) while the child is
 * forked: the child's own mt_log must not wait for it forever (the mutex is free again in the
 * child), so the result comes back well before the deadline. */
static pthread_t g_blocker;
static atomic_int g_inside, g_release;

static void blocking_sink(mt_log_level level, const char *msg, void *user)
{
    (void)level, (void)msg, (void)user;
    if (!pthread_equal(pthread_self(), g_blocker)) return;
    atomic_store(&g_inside, 1);
    while (!atomic_load(&g_release)) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

static void *blocker_main(void *arg)
{
    (void)arg;
    mt_log(MT_LOG_ERROR, "held while the child is forked");
    return NULL;
}

MT_TEST(isolate_log_lock_held_at_fork)
{
    unsetenv("MLTRAIN_ISOLATE_TEST_CHILD");
    mt_log_set_callback(blocking_sink, NULL);
    atomic_store(&g_inside, 0);
    atomic_store(&g_release, 0);
    MT_CHECK(pthread_create(&g_blocker, NULL, blocker_main, NULL) == 0);
    while (!atomic_load(&g_inside)) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    job j = {.mode = "log"};
    mt_status st = run_job(&j, 10);
    atomic_store(&g_release, 1);
    pthread_join(g_blocker, NULL);
    mt_log_set_callback(NULL, NULL);
    MT_CHECK_OK(st);
    MT_CHECK_EQ_INT(j.got.status, MT_OK);
    check_no_children();
}

/* An allocation beyond the limit fails in the child and is reported as running out of memory
 * within it; the limit counts from what the child inherited (this process holding 512 MiB of
 * address space does not eat into it); MLTRAIN_ISOLATE_MAX_MB=0 lifts it. */
MT_TEST(isolate_memory_limit_enforced)
{
    if (NO_LIMIT_BUILD) MT_SKIP("a sanitizer build: the child has no memory limit");
    char *ballast = mt_malloc(512 * MIB); /* mapped, not touched */
    MT_CHECK(ballast != NULL);
    setenv("MLTRAIN_ISOLATE_MAX_MB", "64", 1);
    job big = {.mode = "plain", .alloc = 160 * MIB};
    MT_CHECK_OK(run_job(&big, 30));
    MT_CHECK_EQ_INT(big.got.status, MT_ERR_NOMEM);
    MT_CHECK_EQ_INT(big.got.alloc_ok, 0);
    MT_CHECK(strstr(big.got.msg, "thing 'x.bin': the parser ran out of memory within the limit "
                                 "of 64 MiB while parsing it (MLTRAIN_ISOLATE_MAX_MB sets the "
                                 "limit); the thing is bad") != NULL);
    printf("%s\n", big.got.msg);
    job small = {.mode = "plain", .alloc = 32 * MIB};
    MT_CHECK_OK(run_job(&small, 30));
    MT_CHECK_EQ_INT(small.got.status, MT_OK);
    MT_CHECK_EQ_INT(small.got.alloc_ok, 1);
    setenv("MLTRAIN_ISOLATE_MAX_MB", "0", 1);
    job unlimited = {.mode = "plain", .alloc = 160 * MIB};
    MT_CHECK_OK(run_job(&unlimited, 30));
    MT_CHECK_EQ_INT(unlimited.got.status, MT_OK);
    MT_CHECK_EQ_INT(unlimited.got.alloc_ok, 1);
    unsetenv("MLTRAIN_ISOLATE_MAX_MB");
    mt_free(ballast);
    check_no_children();
}
