/* Running a function in a forked child that streams its result back through a pipe, with a
 * deadline and a memory limit (declared in isolate.h). mltrain hands files it did not write
 * itself (checkpoints, HDF5 dataset files) to libhdf5, whose parser crashes, hangs or allocates
 * gigabytes on some crafted files (docs/security.md); here such a file ends in an error naming
 * it instead of taking the process down or swapping the machine.
 *
 * The child: gets the default action back for the fatal signals (Open MPI and other libraries
 * install handlers that print backtraces), ignores SIGPIPE, unblocks every signal, dumps no
 * core, dies with its parent (PR_SET_PDEATHSIG, and leaves at once when the parent is already
 * gone), keeps stdin, stdout and stderr (a sanitizer reports on stderr; those the parent had
 * closed are opened on /dev/null) and the pipe (moved to descriptor 3; the parent keeps both
 * ends above 2, so that a process started with stdio closed cannot get the pipe on 1 or 2,
 * where the child's writes to stdout or stderr would land in the result) and closes every
 * other descriptor it inherited, limits its address space, runs the caller's function and
 * leaves with _exit: no atexit handler runs and no stdio buffer that belongs to the parent is
 * flushed. It never calls MPI (fork after MPI_Init is fine for a child that only computes and
 * _exits).
 *
 * Fork in a process with threads (the training loop's thread pools, MPI's progress threads):
 * the child holds only the forking thread, and every lock another thread held at the fork
 * stays held in it forever. core's own log mutex is made free again in the child
 * (mt__log_reset_after_fork); glibc's malloc and stdio take care of theirs. A lock of another
 * library held at that moment (libhdf5's, when a thread of this process is inside libhdf5;
 * a lock of the MPI library, if the child's work reached it) makes the child wait forever: it
 * is reported as a timeout at the deadline, not as a hang of this process. Callers should fork
 * while no other thread of theirs is inside libhdf5. With InfiniBand verbs transports (Open
 * MPI's openib, UCX over verbs) memory registered for RDMA is not fork-safe on kernels that do
 * not copy pinned pages at fork (older ones) unless the transport enables its fork support
 * (ibv_fork_init, RDMAV_FORK_SAFE=1): without it, this process (not the child, which never
 * touches that memory or MPI) can see RDMA transfers land in the pages the child got
 * copy-on-write while it ran; Open MPI warns about fork() there (OMPI_MCA_mpi_warn_on_fork=0
 * silences the warning, not the risk). docs/security.md, "Checkpoints", says the same for
 * users.
 *
 * The memory limit (RLIMIT_AS): the child may map mt__isolate_mem_limit(file size) bytes more
 * than the address space it inherited (measured in /proc/self/statm), by default
 * max(1 GiB, 8 x the file), MLTRAIN_ISOLATE_MAX_MB MiB when set (0: no limit). An allocation
 * beyond it fails (malloc returns NULL) instead of growing the child until the machine swaps;
 * the caller's function reports its failure through mt__isolate_child_result, which gives an
 * ERR_NOMEM of the work (the caller maps a library's allocation failure to ERR_NOMEM) the
 * out-of-memory message naming the limit; any other status is left as it is. Under
 * AddressSanitizer or ThreadSanitizer there is no limit: they reserve terabytes of address
 * space and report oversized allocations themselves.
 *
 * This process reads the result until the deadline, then kills the child. Any end other than a
 * complete result followed by exit status 0 (a signal, a sanitizer's report with its non-zero
 * exit, a lost or malformed result) is an error naming the subject; nothing falls back to
 * running the work in-process.
 *
 * Test hook: MLTRAIN_ISOLATE_TEST_CHILD=hang|segv|abort|exit3|silent makes the child misbehave
 * that way instead of running the work (other values are left to the caller's function). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "core_internal.h"
#include "isolate.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define MT__ISOLATE_NO_LIMIT 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define MT__ISOLATE_NO_LIMIT 1
#endif
#endif
#ifndef MT__ISOLATE_NO_LIMIT
#define MT__ISOLATE_NO_LIMIT 0
#endif

#define MIB ((uint64_t)1 << 20)

/* ================================================================ the memory limit */

uint64_t mt__isolate_mem_limit(uint64_t file_bytes)
{
    if (MT__ISOLATE_NO_LIMIT) return 0;
    const char *v = getenv("MLTRAIN_ISOLATE_MAX_MB");
    if (v && *v) {
        char *end;
        errno = 0;
        unsigned long long mb = strtoull(v, &end, 10);
        if (*end == '\0' && v[0] >= '0' && v[0] <= '9' && (errno == 0 || errno == ERANGE)) {
            if (errno == ERANGE || mb > MT__ISOLATE_MAX_MB) mb = MT__ISOLATE_MAX_MB;
            return (uint64_t)mb * MIB; /* 0: no limit */
        }
        static int warned;
        if (!__atomic_exchange_n(&warned, 1, __ATOMIC_RELAXED))
            mt_log(MT_LOG_WARN, "MLTRAIN_ISOLATE_MAX_MB='%s' is not a whole number of MiB (0 "
                                "lifts the limit); using the default limit",
                   v);
    }
    const uint64_t most = MT__ISOLATE_MAX_MB * MIB;
    uint64_t scaled = file_bytes > most / 8 ? most : 8 * file_bytes;
    return scaled > 1024 * MIB ? scaled : 1024 * MIB;
}

/* The child's own state (set in the forked child only, for mt__isolate_child_result). */
static struct {
    const mt__isolate_spec *spec;
    uint64_t limit; /* bytes; 0 when no limit is in force */
} g_child;

/* The address space this process has mapped, from /proc/self/statm (async-signal-safe calls
 * only); 0 when unknown. */
static uint64_t mapped_bytes(void)
{
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char buf[128];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    uint64_t pages = 0;
    for (ssize_t i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; i++)
        pages = pages * 10 + (uint64_t)(buf[i] - '0');
    long ps = sysconf(_SC_PAGESIZE);
    return pages * (uint64_t)(ps > 0 ? ps : 4096);
}

/* In the child: RLIMIT_AS to what it has mapped plus limit bytes; false when not in force. */
static bool child_limit_memory(uint64_t limit)
{
    if (limit == 0) return false;
    uint64_t have = mapped_bytes();
    if (have == 0 || have > RLIM_INFINITY - limit) return false;
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) != 0) return false;
    rlim_t want = (rlim_t)(have + limit);
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want) want = rl.rlim_max;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) want = rl.rlim_cur; /* never loosen */
    rl.rlim_cur = want;
    return setrlimit(RLIMIT_AS, &rl) == 0;
}

mt_status mt__isolate_child_result(mt_status st)
{
    if (st != MT_ERR_NOMEM || !g_child.spec || g_child.limit == 0) return st;
    const mt__isolate_spec *s = g_child.spec;
    return mt_err_set(MT_ERR_NOMEM,
                      "%s: %s ran out of memory within the limit of %llu MiB while %s "
                      "(MLTRAIN_ISOLATE_MAX_MB sets the limit); %s",
                      s->subject, s->worker, (unsigned long long)(g_child.limit / MIB), s->task,
                      s->hint);
}

/* ================================================================ the child */

bool mt__isolate_write(int fd, const void *data, size_t n)
{
    const char *p = data;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* The test hooks; returns only for a mode that is not one of them. */
static void child_misbehave(const char *mode)
{
    if (!strcmp(mode, "hang"))
        for (;;)
            pause();
    if (!strcmp(mode, "segv")) raise(SIGSEGV);
    if (!strcmp(mode, "abort")) abort();
    if (!strcmp(mode, "exit3")) _exit(3);
    if (!strcmp(mode, "silent")) _exit(0);
}

/* In the child: closes every descriptor from 4 up (close_range where the kernel has it, else
 * the descriptors /proc/self/fd lists, else every number below the descriptor limit). */
static void close_other_fds(void)
{
#ifdef SYS_close_range
    if (syscall(SYS_close_range, 4u, ~0u, 0u) == 0) return;
#endif
    long max = sysconf(_SC_OPEN_MAX);
    if (max < 0 || max > 1 << 20) max = 1 << 20;
    for (long fd = 4; fd < max; fd++) close((int)fd);
}

/* In the child: descriptors 0, 1 and 2 that this process had closed are opened on /dev/null,
 * so that nothing the child opens later (a file libhdf5 reads) lands on them and no write to
 * stdout or stderr reaches it. */
static void fill_stdio(void)
{
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF) continue;
        int n = open("/dev/null", O_RDWR);
        if (n >= 0 && n != fd) {
            dup2(n, fd);
            close(n);
        }
    }
}

static _Noreturn void child_main(const mt__isolate_spec *s, int wfd, pid_t parent, uint64_t limit)
{
    /* a thread of the parent may have held the log's mutex at the fork: it never unlocks here */
    mt__log_reset_after_fork();
    /* every signal back to its default action (the parent's handlers, e.g. the training loop's
     * SIGTERM/SIGINT flag setters, would keep a stuck child alive), SIGPIPE ignored */
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP) signal(sig, SIG_DFL);
    signal(SIGPIPE, SIG_IGN);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
#ifdef __linux__
    prctl(PR_SET_PDEATHSIG, SIGKILL);
#endif
    if (getppid() != parent) _exit(0); /* the parent died before the line above */
    /* stdin, stdout and stderr stay; the pipe (above 2: see mt__isolate_run) moves to 3, every
     * other descriptor goes */
    if (wfd != 3 && dup2(wfd, 3) < 0) _exit(125);
    close_other_fds();
    fill_stdio();
    g_child.spec = s;
    g_child.limit = child_limit_memory(limit) ? limit : 0;
    const char *tm = getenv("MLTRAIN_ISOLATE_TEST_CHILD");
    if (tm && *tm) child_misbehave(tm);
    errno = 0;
    int code = s->child(3, s->ctx);
    _exit(code);
}

/* ================================================================ this process */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

struct mt__isolate_rx {
    int fd;
    double deadline;
    bool late, eof;
    const char *bad; /* malformed: why */
    size_t at, len;
    unsigned char buf[1 << 14];
};

/* Reads up to n bytes into dst (or the buffer when dst is NULL); false at EOF or the deadline. */
static bool rx_fill(mt__isolate_rx *r, void *dst, size_t n, size_t *got)
{
    for (;;) {
        double left = r->deadline - now_s();
        if (left <= 0) {
            r->late = true;
            return false;
        }
        struct pollfd p = {.fd = r->fd, .events = POLLIN};
        int ms = left > 1e6 ? 1000000000 : (int)(left * 1000.0) + 1;
        int pr = poll(&p, 1, ms);
        if (pr < 0 && errno == EINTR) continue;
        if (pr == 0) continue; /* the loop checks the deadline */
        ssize_t k = pr < 0 ? -1 : read(r->fd, dst ? dst : r->buf, dst ? n : sizeof r->buf);
        if (k < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (k <= 0) {
            r->eof = true;
            return false;
        }
        *got = (size_t)k;
        return true;
    }
}

bool mt__isolate_read(mt__isolate_rx *r, void *dst, size_t n)
{
    unsigned char *d = dst;
    if (r->late || r->eof || r->bad) return false;
    while (n > 0) {
        if (r->at < r->len) {
            size_t k = r->len - r->at < n ? r->len - r->at : n;
            memcpy(d, r->buf + r->at, k);
            r->at += k;
            d += k;
            n -= k;
            continue;
        }
        size_t got = 0;
        if (n >= sizeof r->buf) { /* large payloads go straight to their destination */
            if (!rx_fill(r, d, n, &got)) return false;
            d += got;
            n -= got;
            continue;
        }
        if (!rx_fill(r, NULL, 0, &got)) return false;
        r->at = 0;
        r->len = got;
    }
    return true;
}

mt_status mt__isolate_malformed(mt__isolate_rx *r, const char *why)
{
    if (!r->bad) r->bad = why;
    return MT_ERR_FORMAT;
}

/* Waits for the child until the deadline (it may close the pipe and go on running). 1: *ws
 * filled; 0: timed out (the child is killed and reaped); -1: its status is not available
 * (SIGCHLD ignored, or someone else reaped it). */
static int wait_child(pid_t pid, double deadline, int *ws)
{
    long nap_ns = 20000;
    for (;;) {
        pid_t r = waitpid(pid, ws, WNOHANG);
        if (r == pid) return 1;
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return -1;
        if (now_s() >= deadline) {
            kill(pid, SIGKILL);
            while (waitpid(pid, ws, 0) < 0 && errno == EINTR) {
            }
            return 0;
        }
        struct timespec ts = {0, nap_ns};
        nanosleep(&ts, NULL);
        if (nap_ns < 10000000) nap_ns *= 2;
    }
}

static const char *signal_name(int sig, char *buf, size_t len)
{
    const char *abbrev = sigabbrev_np(sig);
    if (abbrev)
        snprintf(buf, len, "SIG%s", abbrev);
    else
        snprintf(buf, len, "signal %d", sig);
    return buf;
}

/* The error for a child that did not deliver a complete, well-formed result. */
static mt_status child_error(const mt__isolate_spec *s, const mt__isolate_rx *r, int w, int ws)
{
    char sb[32];
    if (w == 0 || r->late)
        return mt_err_set(MT_ERR_TIMEOUT, "%s: %s did not finish %s within %g s (%s); %s",
                          s->subject, s->worker, s->task, s->timeout_s, s->timeout_var, s->hint);
    if (r->bad) /* before the signal: this process killed the child */
        return mt_err_set(MT_ERR_FORMAT,
                          "%s: the process in which %s was %s sent a malformed result (%s); %s",
                          s->subject, s->worker, s->task, r->bad, s->hint);
    if (w == 1 && WIFSIGNALED(ws))
        return mt_err_set(MT_ERR_FORMAT, "%s: %s crashed (%s%s) while %s; %s", s->subject,
                          s->worker, signal_name(WTERMSIG(ws), sb, sizeof sb),
                          WTERMSIG(ws) == SIGKILL ? ", perhaps by the out-of-memory killer" : "",
                          s->task, s->hint);
    if (w == 1 && WIFEXITED(ws) && WEXITSTATUS(ws) != 0)
        return mt_err_set(MT_ERR_FORMAT,
                          "%s: the process in which %s was %s ended with exit status %d (a "
                          "sanitizer's report?); %s",
                          s->subject, s->worker, s->task, WEXITSTATUS(ws), s->hint);
    return mt_err_set(MT_ERR_FORMAT,
                      "%s: the process in which %s was %s ended without a result%s; %s", s->subject,
                      s->worker, s->task,
                      w < 0 ? " (and its exit status was lost: is SIGCHLD ignored?)" : "", s->hint);
}

/* fd itself when it is above 2, else a close-on-exec duplicate above 2 (fd is closed): a
 * process started with stdin, stdout or stderr closed gets its pipe on those numbers, and a
 * write end left on 1 or 2 in the child would take the child's (and its libraries') writes to
 * stdout or stderr into the result stream. -1 with errno on failure. */
static int above_stdio(int fd)
{
    if (fd > 2) return fd;
    int moved = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    int e = errno;
    close(fd);
    errno = e;
    return moved;
}

mt_status mt__isolate_run(const mt__isolate_spec *s)
{
    const char *fix = s->start_fix ? s->start_fix : "";
    int fds[2];
    bool piped = pipe2(fds, O_CLOEXEC) == 0;
    if (piped && (fds[0] = above_stdio(fds[0])) < 0) {
        int e = errno;
        close(fds[1]);
        errno = e;
        piped = false;
    }
    if (piped && (fds[1] = above_stdio(fds[1])) < 0) {
        int e = errno;
        close(fds[0]);
        errno = e;
        piped = false;
    }
    if (!piped) {
        int e = errno;
        return mt_err_set(MT_ERR_IO,
                          "%s: cannot create a pipe for the process in which %s would be %s: %s%s",
                          s->subject, s->worker, s->task, strerror(e), fix);
    }
    fcntl(fds[1], F_SETPIPE_SZ, 1 << 20); /* fewer switches for large results; best effort */
    uint64_t limit = mt__isolate_mem_limit(s->file_bytes);
    pid_t parent = getpid();
    double deadline = now_s() + s->timeout_s;
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        child_main(s, fds[1], parent, limit);
    }
    int e = errno;
    close(fds[1]);
    if (pid < 0) {
        close(fds[0]);
        return mt_err_set(e == ENOMEM || e == EAGAIN ? MT_ERR_NOMEM : MT_ERR_IO,
                          "%s: cannot start the process in which %s would be %s (fork: %s)%s",
                          s->subject, s->worker, s->task, strerror(e), fix);
    }
    mt__isolate_rx rx, *r = &rx;
    memset(r, 0, offsetof(mt__isolate_rx, buf));
    r->fd = fds[0];
    r->deadline = deadline;
    mt_status st = s->parent(r, s->ctx);
    bool complete = st == MT_OK && !r->late && !r->eof && !r->bad;
    bool own = st != MT_OK && !r->late && !r->eof && !r->bad; /* a failure of this process */
    close(fds[0]);
    int ws = 0, w;
    if (own || r->bad || r->late) { /* stop the child: nothing more is wanted from it */
        kill(pid, SIGKILL);
        while (waitpid(pid, &ws, 0) < 0 && errno == EINTR) {
        }
        w = r->late ? 0 : 1;
    } else {
        w = wait_child(pid, deadline, &ws);
    }
    if (!own) {
        bool clean = complete && (w < 0 || (WIFEXITED(ws) && WEXITSTATUS(ws) == 0));
        st = clean ? MT_OK : child_error(s, r, w, ws);
    }
    return st;
}
