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
 * dtype and shape, the number of attributes, arrays, monitors, channels and records is
 * bounded, every byte it decodes (array payloads, names, strings, the slots of arrays,
 * attributes, channels and records) is charged, before it is allocated, to a budget of 4 times
 * the child's memory limit (none when the limit is off), and a malformed stream, an entry the
 * checkpoint API refuses included, is an error naming the file. The parent never calls libhdf5
 * on the file, and never falls back to parsing in-process.
 *
 * Memory: the parent holds the file image until the child has started (the child keeps its
 * copy-on-write copy), then the checkpoint it rebuilds; the child holds the image, libhdf5's
 * own memory and one array at a time. At the peak the machine holds about the file plus the
 * decoded checkpoint (docs/security.md, "Checkpoints").
 *
 * Test hook: MLTRAIN_ISOLATE_TEST_CHILD=garbage[-attrs|-arrays|-strings|-records|-refused]
 * makes the child send a malformed or hostile stream (child_garbage; the runner's own hooks:
 * hang|segv|abort|exit3|silent; tests/io/test_ckpt_isolate.c). */
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
/* Bounds the parent checks (io_impl.h: the checkpoint API refuses to hold more, so mltrain
 * never writes what it would refuse to read): each name and string, and how many attributes,
 * arrays, monitors, channels (all monitors together) and records (all channels together) one
 * stream may hold. The counts also bound the time the checkpoint API's duplicate checks take
 * (quadratic in the number of entries). */
#define MAX_NAME ((uint32_t)1 << 16)
#define MAX_STRING ((uint32_t)1 << 28)
#define MAX_ATTRS ((uint32_t)MT__CKPT_MAX_ATTRS)
#define MAX_ARRAYS ((uint32_t)MT__CKPT_MAX_ARRAYS)
#define MAX_MONITORS ((uint32_t)MT__CKPT_MAX_MONITORS)
#define MAX_CHANNELS ((uint32_t)MT__CKPT_MAX_CHANNELS)
#define MAX_RECORDS ((uint64_t)MT__CKPT_MAX_RECORDS)

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

/* The test hook's hostile streams (MLTRAIN_ISOLATE_TEST_CHILD=garbage[-<kind>]); each but the
 * first and the last goes on until the parent stops reading (tx_raw then _exits):
 *   garbage          an array record of 1000 dimensions
 *   garbage-attrs    integer attributes with distinct names
 *   garbage-arrays   empty arrays with distinct names of 60000 bytes
 *   garbage-strings  string attributes of 200 MiB each
 *   garbage-records  a monitor channel announcing 2^26 records (2.5 GiB), then records
 *   garbage-refused  an array the checkpoint API refuses (a name under "monitors/") */
static void child_garbage(tx *t, const char *kind)
{
    static char big[60000 + 32];
    if (!strcmp(kind, "")) {
        tx_u8(t, REC_ARRAY);
        tx_str(t, "params/W");
        tx_u32(t, (uint32_t)MT_FLOAT32);
        tx_u32(t, 1000);
    } else if (!strcmp(kind, "-refused")) {
        int64_t dim = 0, nbytes = 0;
        tx_u8(t, REC_ARRAY);
        tx_str(t, "monitors/W");
        tx_u32(t, (uint32_t)MT_FLOAT32);
        tx_u32(t, 1);
        tx_put(t, &dim, 8);
        tx_put(t, &nbytes, 8);
    } else if (!strcmp(kind, "-records")) {
        uint64_t n = (uint64_t)1 << 26;
        mt_chan_record r = {0};
        tx_u8(t, REC_MONITOR);
        tx_str(t, "monitor");
        tx_u32(t, 1);
        tx_str(t, "objective");
        tx_put(t, &n, 8);
        for (;;)
            tx_put(t, &r, sizeof r);
    }
    memset(big, 'x', sizeof big - 1);
    for (uint64_t i = 0; kind[0]; i++) {
        char name[32];
        int k = snprintf(name, sizeof name, "a%llu", (unsigned long long)i);
        if (!strcmp(kind, "-attrs")) {
            int64_t v = (int64_t)i;
            tx_u8(t, REC_ATTR);
            tx_str(t, name);
            tx_u8(t, MT_CKPT_ATTR_INT);
            tx_put(t, &v, 8);
        } else if (!strcmp(kind, "-arrays")) {
            int64_t dim = 0, nbytes = 0;
            memcpy(big, name, (size_t)k); /* distinct: the number first */
            big[60000] = '\0';
            tx_u8(t, REC_ARRAY);
            tx_str(t, big);
            tx_u32(t, (uint32_t)MT_FLOAT32);
            tx_u32(t, 1);
            tx_put(t, &dim, 8);
            tx_put(t, &nbytes, 8);
        } else if (!strcmp(kind, "-strings")) {
            tx_u8(t, REC_ATTR);
            tx_str(t, name);
            tx_u8(t, MT_CKPT_ATTR_STRING);
            tx_u32(t, (uint32_t)200 << 20);
            for (int j = 0; j < (200 << 20) / 60000; j++)
                tx_put(t, big, 60000);
            tx_put(t, big, (200 << 20) % 60000);
        } else {
            break; /* not a hook of this reader */
        }
    }
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
    char why[400];      /* a malformed stream's reason that quotes the checkpoint API */
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
    if (tm && !strncmp(tm, "garbage", 7)) {
        child_garbage(&t, tm + 7);
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
    uint64_t cap;    /* bytes this process may decode in all: 4 budgets (0: no bound) */
    uint64_t taken;  /* bytes decoded so far: payloads, names, strings, record slots */
    uint32_t n_attrs, n_arrays, n_monitors, n_channels;
    uint64_t n_records;
    char *why;      /* room for a reason that quotes the checkpoint API (static storage of the */
    size_t why_len; /* job: the runner reports it after the decoding returned) */
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

/* A status of the checkpoint API on what the stream said: out of memory is this process's own
 * failure; anything else (a name, dtype or shape it refuses) makes the stream malformed, and
 * the error names the file and quotes the refusal. */
static bool d_refused(dec *d, mt_status st)
{
    if (d->bad || d->own || d->ended) return false; /* the first failure is the one reported */
    if (st == MT_ERR_NOMEM) return d_fail(d, mt_err_prefix(st, "%s: ", d->label));
    snprintf(d->why, d->why_len, "an entry the checkpoint refuses: %.300s", mt_last_error());
    mt_err_clear();
    return d_malformed(d, d->why);
}

/* Counts n more decoded bytes (before they are allocated): false, malformed, past the cap. */
static bool d_charge(dec *d, uint64_t n)
{
    if (d->cap && (n > d->cap || d->taken > d->cap - n))
        return d_malformed(d, "more data than the reading process's memory limit allows");
    d->taken = n > UINT64_MAX - d->taken ? UINT64_MAX : d->taken + n;
    return true;
}

/* Counts one more item of a kind (*count of at most max): false, malformed (why), past max. */
static bool d_count(dec *d, uint32_t *count, uint32_t max, const char *why)
{
    if (*count >= max) return d_malformed(d, why);
    (*count)++;
    return true;
}

/* A string of at most max bytes as a new NUL-terminated string (mt_free), charged to the
 * budget before it is allocated. */
static char *d_str(dec *d, uint32_t max)
{
    uint32_t n;
    if (!d_read(d, &n, 4)) return NULL;
    if (n > max) {
        d_malformed(d, "a string longer than the limit");
        return NULL;
    }
    if (!d_charge(d, (uint64_t)n + 1)) return NULL;
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
    if (!d_count(d, &d->n_attrs, MAX_ATTRS, "too many attributes") ||
        !d_charge(d, sizeof(mt__ckpt_attr)))
        return false;
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
    if (st != MT_OK) return d_refused(d, st);
    return !d->bad && !d->own && !d->ended;
}

static bool d_array(dec *d, mt_ckpt *c)
{
    if (!d_count(d, &d->n_arrays, MAX_ARRAYS, "too many arrays") ||
        !d_charge(d, sizeof(mt__ckpt_array)))
        return false;
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
     * over that limit, or a total past max(4 limits, 32x the file), is not a real parse */
    if (ok && d->budget && nbytes > d->budget)
        ok = d_malformed(d, "an array larger than the reading process's memory limit");
    ok = ok && d_charge(d, nbytes);
    void *data = NULL;
    if (ok && nbytes && !(data = mt_malloc((size_t)nbytes)))
        ok = d_fail(d, mt_err_prefix(MT_ERR_NOMEM, "%s: array '%s' (%llu bytes): ", d->label, name,
                                     (unsigned long long)nbytes));
    if (ok && nbytes) ok = d_read(d, data, (size_t)nbytes);
    if (ok) {
        mt_status st = mt__ckpt_put_array_owned(c, name, (mt_dtype)dt, (int32_t)ndim, dims, data,
                                                (size_t)nbytes);
        data = NULL; /* owned by c now, or freed */
        if (st != MT_OK) ok = d_refused(d, st);
    }
    mt_free(data);
    mt_free(name);
    return ok;
}

/* One channel of a monitor: its name, its record count, its records. */
static bool d_channel(dec *d, mt_monitor_history *h)
{
    if (!d_count(d, &d->n_channels, MAX_CHANNELS, "too many monitor channels") ||
        !d_charge(d, sizeof(mt_chan_history)))
        return false;
    char *cname = d_str(d, MAX_NAME);
    uint64_t n;
    bool ok = cname && d_read(d, &n, 8);
    if (ok && n > MAX_RECORDS - d->n_records) ok = d_malformed(d, "too many monitor records");
    if (ok) d->n_records += n;
    ok = ok && d_charge(d, n * sizeof(mt_chan_record)); /* n < 2^27: no overflow */
    mt_chan_history *ch = ok ? mt_monitor_history_channel(h, cname, true) : NULL;
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
    return ok;
}

static bool d_monitor(dec *d, mt_ckpt *c)
{
    if (!d_count(d, &d->n_monitors, MAX_MONITORS, "too many monitors") ||
        !d_charge(d, sizeof(mt_monitor_history)))
        return false;
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
    for (uint32_t i = 0; ok && i < nch; i++)
        ok = d_channel(d, &h);
    if (!ok) {
        mt_monitor_history_clear(&h);
        return false;
    }
    mt_status st = mt__ckpt_put_monitor_move(c, &h);
    return st == MT_OK ? true : d_refused(d, st);
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
    dec d = {.r = rx, .label = j->label, .why = j->why, .why_len = sizeof j->why};
    d.budget = mt__isolate_mem_limit(j->size); /* at most 2^60: 4 budgets fit in 64 bits */
    d.cap = d.budget > UINT64_MAX / 4 ? UINT64_MAX : 4 * d.budget;
    /* with MLTRAIN_ISOLATE_MAX_MB set low, a genuine checkpoint larger than 4 limits still
     * streams (the child holds one array at a time): the total may reach 32x the file too */
    uint64_t by_file = j->size > UINT64_MAX / 32 ? UINT64_MAX : 32 * (uint64_t)j->size;
    if (d.budget && d.cap < by_file) d.cap = by_file;
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
