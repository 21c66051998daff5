/* Reading a checkpoint in a child process, so that a file which crashes or hangs libhdf5
 * (docs/security.md "Checkpoints") ends in an error naming the file instead of taking mltrain
 * down, and so that libhdf5 never parses such a file inside mltrain's own process.
 *
 * mt__ckpt_read_isolated forks. The child parses the file's bytes, which the parent read once
 * before the fork (its copy of the parent's memory: nothing is read from disk again, so the
 * bytes checked are the bytes parsed), with libhdf5 into a checkpoint, every array read, and
 * streams that checkpoint through a pipe: attributes, arrays, monitor histories, then an end
 * record with the status and message. The parent rebuilds the checkpoint from the stream with
 * the checkpoint API, which validates every name, dtype and shape again; it treats the stream
 * as untrusted (a child whose memory libhdf5 corrupted may send anything): every length is
 * bounded, every size is checked against the dtype and shape, and a malformed stream is an
 * error. The parent never calls libhdf5 on the file.
 *
 * The child never calls MPI (fork after MPI_Init is fine for a child that only computes and
 * _exits), leaves with _exit (no atexit handlers, no flush of stdio buffers that belong to the
 * parent), does not dump core, dies with its parent, closes every inherited descriptor except
 * stdio and the pipe, and gets the default action back for the fatal signals (Open MPI and
 * other libraries install handlers that print backtraces). The parent receives until the
 * deadline, then kills the child. Any end other than a complete stream followed by exit status
 * 0 (a signal, a sanitizer's report with its non-zero exit, a lost or malformed stream) is an
 * error; it never falls back to parsing in-process.
 *
 * Test hook: MLTRAIN_ISOLATE_TEST_CHILD=hang|segv|abort|exit3|silent|garbage makes the child
 * misbehave that way instead of parsing (tests/io/test_ckpt_isolate.c). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "io_impl.h"
#include "mltrain/gpuarray.h"

/* Stream records (native byte order: both ends are the same program on the same machine). */
enum { REC_ATTR = 'A', REC_ARRAY = 'R', REC_MONITOR = 'M', REC_END = 'E' };
/* Bounds the parent checks (a legitimate checkpoint stays far below them). */
#define MAX_NAME ((uint32_t)1 << 16)
#define MAX_STRING ((uint32_t)1 << 28)
#define MAX_CHANNELS ((uint32_t)1 << 20)
#define MAX_RECORDS ((uint64_t)1 << 28)

static const char *const HINT = "the file is corrupt or was not written by mltrain";

/* ================================================================ child */

typedef struct tx {
    int fd;
    size_t n;
    unsigned char buf[1 << 16];
} tx;

static void tx_raw(int fd, const void *data, size_t n)
{
    const char *p = data;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) _exit(0); /* the parent gave up (EPIPE): nothing left to do */
        p += w;
        n -= (size_t)w;
    }
}

static void tx_flush(tx *t)
{
    tx_raw(t->fd, t->buf, t->n);
    t->n = 0;
}

static void tx_put(tx *t, const void *data, size_t n)
{
    if (n == 0) return; /* data may be NULL (a channel without records) */
    if (t->n + n > sizeof t->buf) tx_flush(t);
    if (n > sizeof t->buf) {
        tx_raw(t->fd, data, n);
        return;
    }
    memcpy(t->buf + t->n, data, n);
    t->n += n;
}

static void tx_u8(tx *t, unsigned char v)
{
    tx_put(t, &v, 1);
}

static void tx_u32(tx *t, uint32_t v)
{
    tx_put(t, &v, 4);
}

static void tx_str(tx *t, const char *s)
{
    size_t n = strlen(s);
    tx_u32(t, (uint32_t)n);
    tx_put(t, s, n);
}

static void tx_ckpt(tx *t, const mt_ckpt *c)
{
    for (int32_t i = 0; i < c->n_attrs; i++) {
        const mt__ckpt_attr *a = &c->attrs[i];
        tx_u8(t, REC_ATTR);
        tx_str(t, a->name);
        tx_u8(t, (unsigned char)a->kind);
        if (a->kind == MT_CKPT_ATTR_INT)
            tx_put(t, &a->i, 8);
        else if (a->kind == MT_CKPT_ATTR_DOUBLE)
            tx_put(t, &a->d, 8);
        else
            tx_str(t, a->s);
    }
    for (int32_t i = 0; i < c->n_arrays; i++) {
        const mt__ckpt_array *a = &c->arrays[i];
        uint64_t nbytes = a->nbytes;
        tx_u8(t, REC_ARRAY);
        tx_str(t, a->name);
        tx_u32(t, (uint32_t)a->dtype);
        tx_u32(t, (uint32_t)a->ndim);
        tx_put(t, a->dims, (size_t)a->ndim * sizeof a->dims[0]);
        tx_put(t, &nbytes, 8);
        if (nbytes) tx_put(t, a->data, a->nbytes);
    }
    for (int32_t i = 0; i < c->n_monitors; i++) {
        const mt_monitor_history *h = &c->monitors[i];
        tx_u8(t, REC_MONITOR);
        tx_str(t, h->name);
        tx_u32(t, (uint32_t)h->n);
        for (int32_t j = 0; j < h->n; j++) {
            const mt_chan_history *ch = &h->channels[j];
            uint64_t n = (uint64_t)ch->n;
            tx_str(t, ch->name);
            tx_put(t, &n, 8);
            tx_put(t, ch->records, (size_t)ch->n * sizeof *ch->records);
        }
    }
}

static void tx_end(tx *t, mt_status st)
{
    const char *msg = st == MT_OK ? "" : mt_last_error();
    int32_t code = (int32_t)st;
    tx_u8(t, REC_END);
    tx_put(t, &code, 4);
    tx_str(t, msg);
    tx_flush(t);
}

/* The test hooks; returns only for an unknown mode. */
static void child_misbehave(tx *t, const char *mode)
{
    if (!strcmp(mode, "hang"))
        for (;;)
            pause();
    if (!strcmp(mode, "segv")) raise(SIGSEGV);
    if (!strcmp(mode, "abort")) abort();
    if (!strcmp(mode, "exit3")) _exit(3);
    if (!strcmp(mode, "silent")) _exit(0);
    if (!strcmp(mode, "garbage")) { /* an array record of 1000 dimensions */
        tx_u8(t, REC_ARRAY);
        tx_str(t, "params/W");
        tx_u32(t, (uint32_t)MT_FLOAT32);
        tx_u32(t, 1000);
        tx_flush(t);
        _exit(0);
    }
}

static _Noreturn void child_main(int wfd, const char *test_mode, const char *path,
                                 unsigned char *img, uint64_t size)
{
    static const int fatal[] = {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL, SIGTRAP, SIGSYS};
    for (size_t i = 0; i < sizeof fatal / sizeof fatal[0]; i++)
        signal(fatal[i], SIG_DFL);
    signal(SIGPIPE, SIG_IGN);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
#ifdef __linux__
    prctl(PR_SET_PDEATHSIG, SIGKILL);
#endif
    /* stdin, stdout and stderr stay (a sanitizer reports on stderr); the pipe moves to 3 */
    if (wfd != 3 && dup2(wfd, 3) < 0) _exit(125);
    close_range(4, ~0u, 0);
    static tx t;
    t.fd = 3;
    if (test_mode) child_misbehave(&t, test_mode);
    mt_ckpt *c = NULL;
    mt_status st = mt__ckpt_parse_image(path, img, size, &c);
    if (st == MT_OK) tx_ckpt(&t, c);
    tx_end(&t, st);
    _exit(0);
}

/* ================================================================ parent */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The receiving end: buffered reads with the deadline. */
typedef struct rx {
    int fd;
    double deadline;
    bool late, eof;
    size_t at, len;
    unsigned char buf[1 << 14];
} rx;

/* Reads up to n bytes into dst (or the buffer when dst is NULL); false at EOF or the deadline. */
static bool rx_fill(rx *r, void *dst, size_t n, size_t *got)
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

/* Exactly n bytes into dst; false at EOF or the deadline. */
static bool rx_read(rx *r, void *dst, size_t n)
{
    unsigned char *d = dst;
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

/* What went wrong while decoding: the stream ended (EOF or deadline), or it was malformed
 * (reason set), or this process failed (status set, e.g. out of memory). */
typedef struct dec {
    rx *r;
    const char *label;
    const char *bad; /* malformed: why */
    mt_status own;   /* a failure of this process, its message recorded */
    bool ended;      /* the stream stopped early (EOF or the deadline) */
} dec;

static bool d_read(dec *d, void *dst, size_t n)
{
    if (d->bad || d->own || d->ended) return false;
    if (!rx_read(d->r, dst, n)) d->ended = true;
    return !d->ended;
}

static bool d_malformed(dec *d, const char *why)
{
    if (!d->bad && !d->own && !d->ended) d->bad = why;
    return false;
}

static bool d_fail(dec *d, mt_status st)
{
    if (!d->bad && !d->own && !d->ended) d->own = st;
    return false;
}

/* A string of at most max bytes as a new NUL-terminated string (mt_free). */
static char *d_str(dec *d, uint32_t max)
{
    uint32_t n;
    if (!d_read(d, &n, 4)) return NULL;
    if (n > max) {
        d_malformed(d, "a string longer than the limit");
        return NULL;
    }
    char *s = mt_malloc((size_t)n + 1);
    if (!s) {
        d_fail(d, mt_err_prefix(MT_ERR_NOMEM, "%s: ", d->label));
        return NULL;
    }
    if (!d_read(d, s, n)) {
        mt_free(s);
        return NULL;
    }
    s[n] = '\0';
    if (strlen(s) != n) {
        mt_free(s);
        d_malformed(d, "a string holding a NUL byte");
        return NULL;
    }
    return s;
}

static bool d_attr(dec *d, mt_ckpt *c)
{
    char *name = d_str(d, MAX_NAME);
    unsigned char kind;
    if (!name || !d_read(d, &kind, 1)) {
        mt_free(name);
        return false;
    }
    mt_status st = MT_OK;
    if (kind == MT_CKPT_ATTR_INT || kind == MT_CKPT_ATTR_DOUBLE) {
        union {
            int64_t i;
            double f;
        } v;
        if (d_read(d, &v, 8))
            st = kind == MT_CKPT_ATTR_INT ? mt_ckpt_put_int(c, name, v.i)
                                          : mt_ckpt_put_double(c, name, v.f);
    } else if (kind == MT_CKPT_ATTR_STRING) {
        char *s = d_str(d, MAX_STRING);
        if (s) st = mt_ckpt_put_string(c, name, s);
        mt_free(s);
    } else {
        d_malformed(d, "an attribute of an unknown kind");
    }
    mt_free(name);
    if (st != MT_OK) return d_fail(d, st);
    return !d->bad && !d->own && !d->ended;
}

static bool d_array(dec *d, mt_ckpt *c)
{
    char *name = d_str(d, MAX_NAME);
    uint32_t dt, ndim;
    int64_t dims[MT_MAX_DIMS];
    uint64_t nbytes;
    bool ok = name && d_read(d, &dt, 4) && d_read(d, &ndim, 4);
    if (ok && (dt >= MT_DTYPE_COUNT || !mt__ckpt_dtype_ok((mt_dtype)dt) || ndim > MT_MAX_DIMS))
        ok = d_malformed(d, "an array of an impossible dtype or rank");
    ok = ok && d_read(d, dims, ndim * sizeof dims[0]) && d_read(d, &nbytes, 8);
    uint64_t want = ok ? mt_dtype_size((mt_dtype)dt) : 0;
    for (uint32_t i = 0; ok && i < ndim; i++) {
        if (dims[i] < 0 || (dims[i] > 0 && want > (UINT64_MAX >> 2) / (uint64_t)dims[i]))
            ok = d_malformed(d, "an array of an impossible shape");
        else
            want *= (uint64_t)dims[i];
    }
    if (ok && (want != nbytes || nbytes > SIZE_MAX / 2))
        ok = d_malformed(d, "an array whose size does not match its shape");
    void *data = NULL;
    if (ok && nbytes && !(data = mt_malloc((size_t)nbytes)))
        ok = d_fail(d, mt_err_prefix(MT_ERR_NOMEM, "%s: array '%s' (%llu bytes): ", d->label, name,
                                     (unsigned long long)nbytes));
    if (ok && nbytes) ok = d_read(d, data, (size_t)nbytes);
    if (ok) {
        mt_status st = mt__ckpt_put_array_owned(c, name, (mt_dtype)dt, (int32_t)ndim, dims, data,
                                                (size_t)nbytes);
        data = NULL; /* owned by c now, or freed */
        if (st != MT_OK) ok = d_fail(d, st);
    }
    mt_free(data);
    mt_free(name);
    return ok;
}

static bool d_monitor(dec *d, mt_ckpt *c)
{
    char *name = d_str(d, MAX_NAME);
    uint32_t nch;
    if (!name || !d_read(d, &nch, 4)) {
        mt_free(name);
        return false;
    }
    mt_monitor_history h;
    mt_monitor_history_init(&h, name);
    mt_free(name);
    bool ok = h.name ? true : d_fail(d, mt_err_prefix(MT_ERR_NOMEM, "%s: ", d->label));
    if (ok && nch > MAX_CHANNELS) ok = d_malformed(d, "too many monitor channels");
    for (uint32_t i = 0; ok && i < nch; i++) {
        char *cname = d_str(d, MAX_NAME);
        uint64_t n;
        ok = cname && d_read(d, &n, 8);
        if (ok && n > MAX_RECORDS) ok = d_malformed(d, "too many monitor records");
        mt_chan_history *ch = ok ? mt_monitor_history_channel(&h, cname, true) : NULL;
        mt_free(cname);
        if (ok && !ch) ok = d_fail(d, mt_err_prefix(MT_ERR_NOMEM, "%s: ", d->label));
        mt_chan_record recs[256];
        for (uint64_t k = 0; ok && k < n;) {
            size_t take = n - k < 256 ? (size_t)(n - k) : 256;
            ok = d_read(d, recs, take * sizeof recs[0]);
            for (size_t j = 0; ok && j < take; j++) {
                mt_status st = mt_chan_history_append(ch, &recs[j]);
                if (st != MT_OK) ok = d_fail(d, st);
            }
            k += take;
        }
    }
    if (!ok) {
        mt_monitor_history_clear(&h);
        return false;
    }
    mt_status st = mt__ckpt_put_monitor_move(c, &h);
    return st == MT_OK ? true : d_fail(d, st);
}

/* Decodes the stream into c until its end record: true with *child_st (and, for an error, the
 * child's message in *msg, mt_free) when the stream was complete. */
static bool d_stream(dec *d, mt_ckpt *c, mt_status *child_st, char **msg)
{
    for (;;) {
        unsigned char tag;
        if (!d_read(d, &tag, 1)) return false;
        bool ok;
        switch (tag) {
        case REC_ATTR:
            ok = d_attr(d, c);
            break;
        case REC_ARRAY:
            ok = d_array(d, c);
            break;
        case REC_MONITOR:
            ok = d_monitor(d, c);
            break;
        case REC_END: {
            int32_t code;
            if (!d_read(d, &code, 4)) return false;
            char *m = d_str(d, MT_ERR_MSG_MAX);
            if (!m) return false;
            if (code > 0 || code <= -MT_STATUS_COUNT) {
                mt_free(m);
                return d_malformed(d, "an unknown status");
            }
            *child_st = (mt_status)code;
            *msg = m;
            return true;
        }
        default:
            ok = d_malformed(d, "an unknown record");
            break;
        }
        if (!ok) return false;
    }
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
static mt_status child_error(const char *label, const dec *d, int w, int ws, double limit)
{
    char sb[32];
    if (w == 0 || d->r->late)
        return mt_err_set(MT_ERR_TIMEOUT,
                          "%s: the HDF5 library did not finish reading it within %g s "
                          "(MLTRAIN_CKPT_ISOLATE_TIMEOUT); %s",
                          label, limit, HINT);
    if (d->bad) /* before the signal: this process killed the child */
        return mt_err_set(MT_ERR_FORMAT,
                          "%s: the process in which the HDF5 library was reading it sent a "
                          "malformed result (%s); %s",
                          label, d->bad, HINT);
    if (w == 1 && WIFSIGNALED(ws))
        return mt_err_set(MT_ERR_FORMAT, "%s: the HDF5 library crashed (%s%s) while reading it; %s",
                          label, signal_name(WTERMSIG(ws), sb, sizeof sb),
                          WTERMSIG(ws) == SIGKILL ? ", perhaps by the out-of-memory killer" : "",
                          HINT);
    if (w == 1 && WIFEXITED(ws) && WEXITSTATUS(ws) != 0)
        return mt_err_set(MT_ERR_FORMAT,
                          "%s: the process in which the HDF5 library was reading it ended with "
                          "exit status %d (a sanitizer's report?); %s",
                          label, WEXITSTATUS(ws), HINT);
    return mt_err_set(MT_ERR_FORMAT,
                      "%s: the process in which the HDF5 library was reading it ended without a "
                      "result%s; %s",
                      label, w < 0 ? " (and its exit status was lost: is SIGCHLD ignored?)" : "",
                      HINT);
}

mt_status mt__ckpt_read_isolated(mt_ckpt **out, const char *path, unsigned char *img, uint64_t size,
                                 double timeout_s)
{
    *out = NULL;
    char label[1100];
    snprintf(label, sizeof label, "checkpoint '%.1000s'", path);
    static const char *const SWITCH =
        "; MLTRAIN_CKPT_ISOLATE=0 reads checkpoints in this process, unprotected";
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        int e = errno;
        mt_free(img);
        return mt_err_set(MT_ERR_IO, "%s: cannot create a pipe for the process that reads it: %s%s",
                          label, strerror(e), SWITCH);
    }
    fcntl(fds[1], F_SETPIPE_SZ, 1 << 20); /* fewer switches for large arrays; best effort */
    const char *tm = getenv("MLTRAIN_ISOLATE_TEST_CHILD");
    double deadline = now_s() + timeout_s;
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        child_main(fds[1], tm && *tm ? tm : NULL, path, img, size);
    }
    int e = errno;
    mt_free(img); /* the child has its own copy */
    close(fds[1]);
    if (pid < 0) {
        close(fds[0]);
        return mt_err_set(e == ENOMEM || e == EAGAIN ? MT_ERR_NOMEM : MT_ERR_IO,
                          "%s: cannot start the process that reads it (fork: %s)%s", label,
                          strerror(e), SWITCH);
    }
    rx r;
    memset(&r, 0, offsetof(rx, buf));
    r.fd = fds[0];
    r.deadline = deadline;
    dec d = {.r = &r, .label = label};
    mt_ckpt *c = NULL;
    mt_status child_st = MT_OK;
    char *msg = NULL;
    bool complete = false;
    mt_status st = mt_ckpt_new(&c);
    if (st == MT_OK && !(c->path = mt_strdup(path)))
        st = mt_err_prefix(MT_ERR_NOMEM, "%s: ", label);
    if (st == MT_OK) {
        complete = d_stream(&d, c, &child_st, &msg);
        st = d.own;
    }
    close(fds[0]);
    int ws = 0, w;
    if (st != MT_OK || d.bad || r.late) { /* stop the child: nothing more is wanted from it */
        kill(pid, SIGKILL);
        while (waitpid(pid, &ws, 0) < 0 && errno == EINTR) {
        }
        w = r.late ? 0 : 1;
    } else {
        w = wait_child(pid, deadline, &ws);
    }
    bool clean = complete && (w < 0 || (WIFEXITED(ws) && WEXITSTATUS(ws) == 0));
    if (st == MT_OK && !clean) st = child_error(label, &d, w, ws, timeout_s);
    if (st == MT_OK && child_st != MT_OK) st = mt_err_set(child_st, "%s", msg);
    mt_free(msg);
    if (st != MT_OK) {
        mt_ckpt_free(c);
        return st;
    }
    *out = c;
    return MT_OK;
}
