/* Reading a checkpoint in a child process, so that a file which crashes, hangs or exhausts
 * libhdf5 (docs/security.md "Checkpoints") ends in an error naming the file instead of taking
 * mltrain down, and so that libhdf5 never parses such a file inside mltrain's own process.
 *
 * mt__ckpt_read_isolated runs the parse through core's isolated-child runner
 * (src/core/isolate.c: fork, a child that _exits, dumps no core, dies with its parent, keeps
 * only stdio and the pipe, gets the default action for the fatal signals and a memory limit;
 * the deadline; the errors for a crash, a non-zero exit, a timeout). The child parses the
 * file's bytes, which the parent read once before the fork (its copy of the parent's memory:
 * nothing is read from disk again, so the bytes checked are the bytes parsed), with libhdf5,
 * and streams the checkpoint through the pipe: each array as soon as it is read (then dropped,
 * so the child holds the image and one array), then the attributes and monitor histories, then
 * an end record with the status and message (a failed parse discards what was sent). The
 * parent rebuilds the checkpoint from the stream with the checkpoint API, which validates every
 * name, dtype and shape again; it treats the stream as untrusted (a child whose memory libhdf5
 * corrupted may send anything): every length is bounded, every size is checked against the
 * dtype and shape, and a malformed stream is an error. The parent never calls libhdf5 on the
 * file, and never falls back to parsing in-process.
 *
 * Test hook: MLTRAIN_ISOLATE_TEST_CHILD=garbage makes the child send a malformed stream (the
 * runner's own hooks: hang|segv|abort|exit3|silent; tests/io/test_ckpt_isolate.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/isolate.h"
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
    if (!mt__isolate_write(fd, data, n)) _exit(0); /* the parent gave up: nothing left to do */
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

static void tx_array(tx *t, const mt__ckpt_array *a)
{
    uint64_t nbytes = a->nbytes;
    tx_u8(t, REC_ARRAY);
    tx_str(t, a->name);
    tx_u32(t, (uint32_t)a->dtype);
    tx_u32(t, (uint32_t)a->ndim);
    tx_put(t, a->dims, (size_t)a->ndim * sizeof a->dims[0]);
    tx_put(t, &nbytes, 8);
    if (nbytes) tx_put(t, a->data, a->nbytes);
}

/* The attributes and monitors of c (its arrays were streamed while they were read). */
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

/* The test hook: an array record of 1000 dimensions. */
static void child_garbage(tx *t)
{
    tx_u8(t, REC_ARRAY);
    tx_str(t, "params/W");
    tx_u32(t, (uint32_t)MT_FLOAT32);
    tx_u32(t, 1000);
    tx_flush(t);
}

/* One isolated read: the file's bytes (img, freed by the parent once the child has its copy),
 * and what the parent rebuilt. */
typedef struct ckpt_job {
    const char *path;
    const char *label;
    unsigned char *img;
    uint64_t size;
    mt_ckpt *c;         /* rebuilt from the stream */
    mt_status child_st; /* the status of the child's parse */
    char *msg;          /* its message (mt_free) */
} ckpt_job;

/* In the child: each array goes to the parent as soon as libhdf5 has read it, and its data is
 * dropped here, so the child holds the file image and one array at a time. */
static void child_array(void *user, mt_ckpt *c, mt__ckpt_array *a)
{
    (void)c;
    tx_array(user, a);
    mt_free(a->data);
    a->data = NULL;
}

/* In the child: parse (streaming the arrays), then the rest of the checkpoint and the end
 * record. */
static int ckpt_child(int fd, void *ctx)
{
    const ckpt_job *j = ctx;
    static tx t;
    t.fd = fd;
    const char *tm = getenv("MLTRAIN_ISOLATE_TEST_CHILD");
    if (tm && !strcmp(tm, "garbage")) {
        child_garbage(&t);
        return 0;
    }
    mt_ckpt *c = NULL;
    mt_status st = mt__isolate_child_result(
        mt__ckpt_parse_image_each(j->path, j->img, j->size, &c, child_array, &t));
    if (st == MT_OK) tx_ckpt(&t, c);
    tx_end(&t, st);
    return 0;
}

/* ================================================================ parent */

/* What went wrong while decoding: the stream ended (EOF or deadline), or it was malformed
 * (reason set), or this process failed (status set, e.g. out of memory). */
typedef struct dec {
    mt__isolate_rx *r;
    const char *label;
    const char *bad; /* malformed: why */
    mt_status own;   /* a failure of this process, its message recorded */
    bool ended;      /* the stream stopped early (EOF or the deadline) */
    uint64_t budget; /* the child's memory limit (0: none): no array it held can be larger */
    uint64_t taken;  /* array bytes received so far (at most 4 budgets in all) */
} dec;

static bool d_read(dec *d, void *dst, size_t n)
{
    if (d->bad || d->own || d->ended) return false;
    if (!mt__isolate_read(d->r, dst, n)) d->ended = true;
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
    /* the child held each array it sends within its memory limit, one at a time: an array
     * over that limit, or a total past 4 limits (a checkpoint decompressing to over 32x its
     * file size), is not a real parse */
    if (ok && d->budget && (nbytes > d->budget || d->taken + nbytes > 4 * d->budget))
        ok = d_malformed(d, "arrays larger than the reading process's memory limit");
    if (ok) d->taken += nbytes;
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

/* In this process: rebuild the checkpoint from the stream. */
static mt_status ckpt_parent(mt__isolate_rx *rx, void *ctx)
{
    ckpt_job *j = ctx;
    mt_free(j->img); /* the child has its own copy */
    j->img = NULL;
    mt_status st = mt_ckpt_new(&j->c);
    if (st == MT_OK && !(j->c->path = mt_strdup(j->path)))
        st = mt_err_prefix(MT_ERR_NOMEM, "%s: ", j->label);
    if (st != MT_OK) return st;
    dec d = {.r = rx, .label = j->label, .budget = mt__isolate_mem_limit(j->size)};
    if (d_stream(&d, j->c, &j->child_st, &j->msg)) return MT_OK;
    if (d.own) return d.own;
    if (d.bad) return mt__isolate_malformed(rx, d.bad);
    return MT_ERR_FORMAT; /* the stream ended early: the runner reports how the child ended */
}

mt_status mt__ckpt_read_isolated(mt_ckpt **out, const char *path, unsigned char *img, uint64_t size,
                                 double timeout_s)
{
    *out = NULL;
    char label[1100];
    snprintf(label, sizeof label, "checkpoint '%.1000s'", path);
    ckpt_job job = {.path = path, .label = label, .img = img, .size = size};
    const mt__isolate_spec spec = {
        .subject = label,
        .worker = "the HDF5 library",
        .task = "reading it",
        .hint = HINT,
        .timeout_var = "MLTRAIN_CKPT_ISOLATE_TIMEOUT",
        .start_fix = "; MLTRAIN_CKPT_ISOLATE=0 reads checkpoints in this process, unprotected",
        .timeout_s = timeout_s,
        .file_bytes = size,
        .child = ckpt_child,
        .parent = ckpt_parent,
        .ctx = &job,
    };
    mt_status st = mt__isolate_run(&spec);
    mt_free(job.img); /* still here when the child could not be started */
    if (st == MT_OK && job.child_st != MT_OK) st = mt_err_set(job.child_st, "%s", job.msg);
    mt_free(job.msg);
    if (st != MT_OK) {
        mt_ckpt_free(job.c);
        return st;
    }
    *out = job.c;
    return MT_OK;
}
