/* IDX files (the MNIST format) and the MNIST / Fashion-MNIST dataset.
 *
 * An IDX file is: two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
 * 0x0D float32, 0x0E float64), the number of dimensions, one big-endian uint32 per dimension,
 * then the elements, big-endian, in C order. Files are read through zlib's gz* interface, which
 * reads gzip files and passes plain files through, so one code path serves both.
 *
 * Everything the header claims is checked before anything is allocated: a plain file must be
 * exactly header + payload bytes long (shorter: truncated, naming the offset where it ends;
 * longer: trailing bytes); a gzip file cannot decompress to more than 1032 times its size
 * (deflate's largest ratio), so a header claiming more is corrupt; the delivered bytes must be
 * within the limit (mt_data_max_bytes or the caller's). When the gzip trailer's length (ISIZE)
 * agrees with the header, the result is allocated at once; otherwise the file is probably
 * damaged and the buffer grows as data actually arrives, so a lying header costs no more memory
 * than the data present. Decompressed chunks are byte-swapped and converted straight into the
 * result (uint8 -> float32 x / 255 for images, as Pylearn2's read_mnist_images), without a
 * second copy of the file. Corrupt gzip data and CRC failures name the decompressed offset and
 * zlib's message. Lazy datasets (lazy.c) read only the header here and then fetch rows of a
 * raw file by offset; a gzip file cannot be read that way and is loaded whole (logged at info
 * level). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "data_impl.h"

#define IDX_CHUNK ((size_t)1 << 20)
#define DEFLATE_MAX_RATIO 1032
#define GROW_START ((size_t)64 << 20)

typedef struct idx_src {
    const char *path;
    gzFile gz;
    uint64_t file_size;
    uint64_t off; /* decompressed bytes consumed */
    bool gzip;
} idx_src;

static mt_status idx_fail(const idx_src *s, mt_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static mt_status idx_fail(const idx_src *s, mt_status code, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return mt_err_set(code, "idx '%s': %s", s->path, msg);
}

/* zlib's message without the "path: " prefix gzerror puts in front. */
static const char *gz_message(const idx_src *s, int *zerr)
{
    const char *m = gzerror(s->gz, zerr);
    size_t n = strlen(s->path);
    if (m && strncmp(m, s->path, n) == 0 && m[n] == ':' && m[n + 1] == ' ') m += n + 2;
    return m ? m : "?";
}

/* Reads exactly n bytes; a short read is a truncation, a zlib error is corruption. */
static mt_status src_read(idx_src *s, void *buf, size_t n, const char *what, uint64_t expect)
{
    size_t got = 0;
    while (got < n) {
        size_t want = n - got > ((size_t)1 << 30) ? ((size_t)1 << 30) : n - got;
        int r = gzread(s->gz, (char *)buf + got, (unsigned)want);
        if (r < 0) {
            int zerr;
            const char *zmsg = gz_message(s, &zerr);
            if (zerr == Z_ERRNO)
                return idx_fail(s, MT_ERR_IO, "read error at offset %llu: %s",
                                (unsigned long long)(s->off + got), strerror(errno));
            return idx_fail(s, MT_ERR_FORMAT,
                            "corrupt gzip data at decompressed offset %llu "
                            "while reading the %s: %s",
                            (unsigned long long)(s->off + got), what, zmsg);
        }
        if (r == 0) {
            int zerr;
            const char *zmsg = gz_message(s, &zerr);
            s->off += got;
            if (s->off == 0) return idx_fail(s, MT_ERR_FORMAT, "empty file (no IDX header)");
            return idx_fail(s, MT_ERR_FORMAT,
                            "truncated at %s offset %llu while reading the %s "
                            "(%llu bytes expected)%s%s",
                            s->gzip ? "decompressed" : "byte", (unsigned long long)s->off, what,
                            (unsigned long long)expect, s->gzip && zerr != Z_OK ? ": " : "",
                            s->gzip && zerr != Z_OK ? zmsg : "");
        }
        got += (size_t)r;
    }
    s->off += got;
    return MT_OK;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static bool idx_dtype(int code, mt_dtype *dt)
{
    switch (code) {
    case 0x08:
        *dt = MT_UINT8;
        return true;
    case 0x09:
        *dt = MT_INT8;
        return true;
    case 0x0B:
        *dt = MT_INT16;
        return true;
    case 0x0C:
        *dt = MT_INT32;
        return true;
    case 0x0D:
        *dt = MT_FLOAT32;
        return true;
    case 0x0E:
        *dt = MT_FLOAT64;
        return true;
    default:
        return false;
    }
}

static void dims_text(const mt__idx_header *h, char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = 0;
    for (int32_t i = 0; i < h->ndim && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%lld", i ? "x" : "", (long long)h->dims[i]);
}

/* Reads the magic and dims, and checks the payload against the file size and the limit. */
static mt_status read_header(idx_src *s, const mt__idx_request *req, mt__idx_header *h,
                             uint64_t *payload)
{
    unsigned char m[4];
    mt_status st = src_read(s, m, 4, "magic number", 4);
    if (st != MT_OK) return st;
    if (m[0] != 0 || m[1] != 0 || !idx_dtype(m[2], &h->dtype))
        return idx_fail(s, MT_ERR_FORMAT,
                        "bad magic number 0x%02x%02x%02x%02x (an IDX file "
                        "starts with 00 00, a type code 08/09/0B/0C/0D/0E and the rank)",
                        m[0], m[1], m[2], m[3]);
    h->ndim = m[3];
    if (h->ndim < req->min_ndim || h->ndim > req->max_ndim)
        return idx_fail(s, MT_ERR_FORMAT,
                        "magic field rank is %d; %s files need %d..%d "
                        "dimensions",
                        h->ndim, req->role, req->min_ndim, req->max_ndim);
    unsigned char db[16];
    if ((st = src_read(s, db, (size_t)h->ndim * 4, "dimensions", (uint64_t)h->ndim * 4)) != MT_OK)
        return st;
    uint64_t count = 1, nonzero = 1, nonzero_bytes;
    bool over = false;
    for (int32_t i = 0; i < h->ndim; i++) {
        h->dims[i] = be32(db + 4 * i);
        over |= __builtin_mul_overflow(count, (uint64_t)h->dims[i], &count);
        /* the nonzero dims too (as NumPy): an empty array's strides must fit */
        if (h->dims[i]) over |= __builtin_mul_overflow(nonzero, (uint64_t)h->dims[i], &nonzero);
    }
    char dt[64];
    dims_text(h, dt, sizeof dt);
    size_t esz = mt_dtype_size(h->dtype);
    uint64_t hdr = 4 + 4 * (uint64_t)h->ndim, total;
    if (over || __builtin_mul_overflow(nonzero, (uint64_t)esz, &nonzero_bytes) ||
        nonzero_bytes > (uint64_t)INT64_MAX ||
        __builtin_mul_overflow(count, (uint64_t)esz, payload) ||
        __builtin_add_overflow(*payload, hdr, &total) || count > (uint64_t)INT64_MAX)
        return idx_fail(s, MT_ERR_FORMAT, "field dims (%s of %s) overflows 64-bit sizes", dt,
                        mt_dtype_name(h->dtype));
    h->count = (int64_t)count;
    if (!s->gzip && total > s->file_size)
        return idx_fail(s, MT_ERR_FORMAT,
                        "field dims (%s of %s) promises %llu bytes but the file "
                        "has %llu: truncated at byte offset %llu",
                        dt, mt_dtype_name(h->dtype), (unsigned long long)total,
                        (unsigned long long)s->file_size, (unsigned long long)s->file_size);
    if (!s->gzip && total < s->file_size)
        return idx_fail(s, MT_ERR_FORMAT,
                        "field dims (%s of %s) accounts for %llu bytes but the "
                        "file has %llu (trailing bytes from offset %llu)",
                        dt, mt_dtype_name(h->dtype), (unsigned long long)total,
                        (unsigned long long)s->file_size, (unsigned long long)total);
    if (s->gzip && total / DEFLATE_MAX_RATIO > s->file_size)
        return idx_fail(s, MT_ERR_FORMAT,
                        "field dims (%s of %s) promises %llu bytes, more than a "
                        "gzip file of %llu bytes can hold (deflate expands at most %dx)",
                        dt, mt_dtype_name(h->dtype), (unsigned long long)total,
                        (unsigned long long)s->file_size, DEFLATE_MAX_RATIO);
    return MT_OK;
}

/* The gzip trailer's ISIZE (uncompressed length mod 2^32), or -1 when unreadable. */
static int64_t gzip_isize(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    unsigned char b[4];
    int64_t r = -1;
    if (fseeko(f, -4, SEEK_END) == 0 && fread(b, 1, 4, f) == 4)
        r = (int64_t)((uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
                      (uint32_t)b[3] << 24);
    fclose(f);
    return r;
}

bool mt__host_little_endian(void)
{
    const uint16_t one = 1;
    uint8_t b;
    memcpy(&b, &one, 1);
    return b == 1;
}

void mt__data_swap_bytes(unsigned char *p, size_t n, size_t esz)
{
    for (size_t i = 0; i + esz <= n; i += esz)
        for (size_t a = 0, b = esz - 1; a < b; a++, b--) {
            unsigned char t = p[i + a];
            p[i + a] = p[i + b];
            p[i + b] = t;
        }
}

void mt__data_scale_floats(float *x, size_t n, float divisor, double scale)
{
    if (divisor > 0) {
        const float d = divisor;
        for (size_t i = 0; i < n; i++)
            x[i] = x[i] / d;
    } else if (scale != 1.0) {
        const double sc = scale;
        for (size_t i = 0; i < n; i++)
            x[i] = (float)((double)x[i] * sc);
    }
}

/* Streams the payload into *data, converting chunk by chunk. */
static mt_status read_payload(idx_src *s, const mt__idx_request *req, const mt__idx_header *h,
                              uint64_t payload, size_t out_bytes, bool trusted, void **data)
{
    mt_dtype dst = req->dst_dtype == MT_DTYPE_COUNT ? h->dtype : req->dst_dtype;
    size_t esz = mt_dtype_size(h->dtype), dsz = mt_dtype_size(dst);
    size_t cap = trusted || out_bytes <= GROW_START ? out_bytes : GROW_START;
    unsigned char *out = mt_malloc(cap ? cap : 1);
    unsigned char *chunk = mt_malloc(IDX_CHUNK);
    mt_status st = MT_OK;
    if (!out || !chunk) {
        st = idx_fail(s, MT_ERR_NOMEM, "out of memory for %zu bytes", cap);
        goto done;
    }
    bool swap = esz > 1 && mt__host_little_endian();
    uint64_t done_el = 0, count = (uint64_t)h->count;
    while (done_el < count) {
        size_t n_el =
            (size_t)(count - done_el < IDX_CHUNK / esz ? count - done_el : IDX_CHUNK / esz);
        if ((st = src_read(s, chunk, n_el * esz, "data", payload)) != MT_OK) goto done;
        size_t need = (size_t)(done_el + n_el) * dsz;
        if (need > cap) {
            size_t nc = cap * 2 > need ? cap * 2 : need;
            if (nc > out_bytes) nc = out_bytes;
            unsigned char *o = mt_realloc(out, nc);
            if (!o) {
                st = idx_fail(s, MT_ERR_NOMEM, "out of memory growing to %zu bytes", nc);
                goto done;
            }
            out = o;
            cap = nc;
        }
        if (swap) mt__data_swap_bytes(chunk, n_el * esz, esz);
        unsigned char *o = out + (size_t)done_el * dsz;
        if (dst == h->dtype) {
            memcpy(o, chunk, n_el * esz);
        } else {
            mt_dtype_convert(o, dst, (ptrdiff_t)dsz, chunk, h->dtype, (ptrdiff_t)esz, n_el);
        }
        if (dst == MT_FLOAT32) mt__data_scale_floats((float *)o, n_el, req->divisor, req->scale);
        done_el += n_el;
    }
    /* One byte more: trailing data in a gzip member, and zlib's CRC / length check. */
    int r = gzread(s->gz, chunk, 1);
    if (r < 0) {
        int zerr;
        const char *zmsg = gz_message(s, &zerr);
        st = idx_fail(s, MT_ERR_FORMAT,
                      "corrupt gzip data at the end of the stream (decompressed "
                      "offset %llu): %s",
                      (unsigned long long)s->off, zmsg);
    } else if (r > 0) {
        st = idx_fail(s, MT_ERR_FORMAT,
                      "trailing data after the payload at offset %llu (dims "
                      "account for %llu bytes)",
                      (unsigned long long)s->off, (unsigned long long)s->off);
    }
done:
    mt_free(chunk);
    if (st != MT_OK) {
        mt_free(out);
        return st;
    }
    *data = out;
    return MT_OK;
}

/* Opens path (raw or gzip) and reads its header. On success s->gz is open (caller closes). */
static mt_status idx_open(idx_src *s, const char *path, const mt__idx_request *req,
                          mt__idx_header *h, uint64_t *payload)
{
    memset(h, 0, sizeof *h);
    memset(s, 0, sizeof *s);
    s->path = path;
    struct stat sb;
    if (stat(path, &sb) != 0) return mt_err_errno(errno, "idx '%s': cannot open", path);
    if (!S_ISREG(sb.st_mode)) return idx_fail(s, MT_ERR_IO, "not a regular file");
    s->file_size = (uint64_t)sb.st_size;
    s->gz = gzopen(path, "rb");
    if (!s->gz) return mt_err_errno(errno ? errno : ENOMEM, "idx '%s': cannot open", path);
    gzbuffer(s->gz, 256 * 1024);
    s->gzip = !gzdirect(s->gz);
    h->gzip = s->gzip;
    *payload = 0;
    mt_status st = read_header(s, req, h, payload);
    if (st != MT_OK) {
        gzclose(s->gz);
        s->gz = NULL;
    }
    return st;
}

mt_status mt__idx_read_header(const char *path, const mt__idx_request *req, mt__idx_header *h,
                              uint64_t *data_off)
{
    idx_src s;
    uint64_t payload;
    mt_status st = idx_open(&s, path, req, h, &payload);
    if (st != MT_OK) return st;
    *data_off = s.off;
    gzclose(s.gz);
    return MT_OK;
}

mt_status mt__idx_read(const char *path, const mt__idx_request *req, mt__idx_header *h, void **data)
{
    *data = NULL;
    idx_src s;
    uint64_t payload = 0;
    mt_status st = idx_open(&s, path, req, h, &payload);
    if (st != MT_OK) return st;
    mt_dtype dst = req->dst_dtype == MT_DTYPE_COUNT ? h->dtype : req->dst_dtype;
    size_t max = req->max_bytes ? req->max_bytes : mt_data_max_bytes();
    size_t out_bytes;
    char what[600];
    snprintf(what, sizeof what, "idx '%s': %s as %s", path, req->role, mt_dtype_name(dst));
    if ((st = mt__data_bytes(&out_bytes, h->count, mt_dtype_size(dst), max, what)) != MT_OK)
        goto out;
    bool trusted = true;
    if (s.gzip) {
        int64_t isz = gzip_isize(path);
        trusted = isz >= 0 && (uint32_t)isz == (uint32_t)(payload + s.off);
    }
    st = read_payload(&s, req, h, payload, out_bytes, trusted, data);
out:
    gzclose(s.gz);
    return st;
}

mt_status mt_idx_load(mt_array *out, const char *path, size_t max_bytes)
{
    if (!out || !path) return mt_err_set(MT_ERR_INVALID, "idx_load: out or path is NULL");
    mt__idx_request req = {.dst_dtype = MT_DTYPE_COUNT,
                           .scale = 1.0,
                           .max_bytes = max_bytes,
                           .min_ndim = 1,
                           .max_ndim = 4,
                           .role = "IDX"};
    mt__idx_header h;
    void *data;
    mt_status st = mt__idx_read(path, &req, &h, &data);
    if (st != MT_OK) return st;
    mt_device *host;
    if ((st = mt_device_open(&host, "host")) == MT_OK) {
        st = mt_array_from_host(out, host, h.dtype, h.ndim, h.dims, data);
        mt_device_release(host);
    }
    mt_free(data);
    return st;
}

/* ---------------------------------------------------------------- datasets */

static void float_request(mt__idx_request *req, double scale)
{
    memset(req, 0, sizeof *req);
    req->dst_dtype = MT_FLOAT32;
    req->scale = scale;
    double inv = scale != 0 ? 1.0 / scale : 0;
    /* 1/255 and friends: divide as NumPy's x / float32(255) does, bit for bit. */
    if (scale != 1.0 && inv >= 1.0 && inv < 16777216.0 && inv == (double)(int64_t)inv)
        req->divisor = (float)inv;
    req->min_ndim = 2;
    req->max_ndim = 4;
    req->role = "images";
}

/* The images file as a lazy source, or *src NULL when it is gzip-compressed (logged). */
static mt_status idx_lazy_src(mt__lazy_src **src, const char *images,
                              const mt__idx_request *ireq, mt__idx_header *hi)
{
    *src = NULL;
    uint64_t off;
    mt_status st = mt__idx_read_header(images, ireq, hi, &off);
    if (st != MT_OK) return st;
    if (hi->gzip) {
        mt_log(MT_LOG_INFO,
               "idx '%s': gzip-compressed, so its rows cannot be read by offset: loading it "
               "whole in memory (gunzip it to read rows lazily)",
               images);
        return MT_OK;
    }
    mt__lazy_src *s;
    if ((st = mt__lazy_src_new(&s, images, "idx")) != MT_OK) return st;
    s->n_file = hi->dims[0];
    s->dim = 1;
    for (int32_t i = 1; i < hi->ndim; i++)
        s->dim *= hi->dims[i];
    s->dtype = hi->dtype;
    s->row_bytes = (size_t)s->dim * mt_dtype_size(hi->dtype);
    s->data_off = off;
    s->swap = mt_dtype_size(hi->dtype) > 1 && mt__host_little_endian();
    s->divisor = ireq->divisor;
    s->scale = ireq->scale;
    if ((st = mt__lazy_src_open_raw(s)) != MT_OK) {
        mt__lazy_src_release(s);
        return st;
    }
    *src = s;
    return MT_OK;
}

/* Images + optional labels into a dataset (topo from 3-d / 4-d image files); lazy: the
 * images stay in their file when it is not compressed. */
static mt_status idx_pair(mt_dataset **out, const char *name, const char *images,
                          const char *labels, const mt__idx_request *ireq, int64_t n_classes,
                          bool lazy)
{
    mt__idx_header hi, hl;
    void *X = NULL, *L = NULL;
    mt__lazy_src *src = NULL;
    mt_status st = lazy ? idx_lazy_src(&src, images, ireq, &hi) : MT_OK;
    if (st != MT_OK) return st;
    if (!src) st = mt__idx_read(images, ireq, &hi, &X);
    if (st != MT_OK) return st;
    if (labels) {
        mt__idx_request lreq = {
            .dst_dtype = MT_INT64, .scale = 1.0, .min_ndim = 1, .max_ndim = 1, .role = "labels"};
        if ((st = mt__idx_read(labels, &lreq, &hl, &L)) != MT_OK) goto fail;
        if (hl.dims[0] != hi.dims[0]) {
            st = mt_err_set(MT_ERR_FORMAT, "idx: '%s' has %lld labels but '%s' has %lld images",
                            labels, (long long)hl.dims[0], images, (long long)hi.dims[0]);
            goto fail;
        }
    }
    mt_dataset *d;
    if (src) {
        st = mt__dataset_new_lazy(&d, name, src);
        src = NULL;
        if (st != MT_OK) goto fail;
    } else if (!(d = mt_calloc(1, sizeof *d)) || !(d->name = mt_strdup(name))) {
        mt_free(d);
        st = MT_ERR_NOMEM;
        goto fail;
    }
    d->n = hi.dims[0];
    d->dim = d->n ? hi.count / d->n : 1;
    for (int32_t i = 1; i < hi.ndim && d->n == 0; i++)
        d->dim *= hi.dims[i];
    d->X = X;
    d->labels = L;
    X = L = NULL;
    if (hi.ndim >= 3) {
        int64_t topo[3] = {hi.dims[1], hi.dims[2], hi.ndim == 4 ? hi.dims[3] : 1};
        if ((st = mt__dataset_set_topo(d, topo)) != MT_OK) goto fail_d;
    }
    if (d->labels && (st = mt__dataset_check_labels(d, n_classes, labels)) != MT_OK) goto fail_d;
    *out = d;
    return MT_OK;
fail_d:
    mt_dataset_free(d);
fail:
    mt__lazy_src_release(src);
    mt_free(X);
    mt_free(L);
    return st;
}

mt_status mt_dataset_idx(mt_dataset **out, const char *images_path, const char *labels_path,
                         double scale)
{
    return mt_dataset_idx_mode(out, images_path, labels_path, scale, MT_DATA_LOAD_AUTO);
}

mt_status mt_dataset_idx_mode(mt_dataset **out, const char *images_path,
                              const char *labels_path, double scale, mt_data_load load)
{
    if (!out || !images_path)
        return mt_err_set(MT_ERR_INVALID, "dataset_idx: out or images_path is NULL");
    *out = NULL;
    if (!(scale == scale) || scale == 0)
        return mt_err_set(MT_ERR_INVALID, "dataset_idx '%s': scale must be a non-zero number",
                          images_path);
    mt__idx_request req;
    float_request(&req, scale);
    const char *base = strrchr(images_path, '/');
    char name[256];
    snprintf(name, sizeof name, "IDX(%s)", base ? base + 1 : images_path);
    return idx_pair(out, name, images_path, labels_path, &req, 0,
                    mt__data_want_lazy(load, images_path));
}

void mt_mnist_options_init(mt_mnist_options *o)
{
    memset(o, 0, sizeof *o);
    o->which_set = "train";
    o->start = 0;
    o->stop = -1;
    o->seed = 1;
}

/* DIR/BASE if it exists, else DIR/BASE.gz; ERR_NOT_FOUND naming both. */
static mt_status find_file(char *buf, size_t len, const char *dir, const char *base)
{
    struct stat sb;
    snprintf(buf, len, "%s/%s", dir, base);
    if (stat(buf, &sb) == 0) return MT_OK;
    snprintf(buf, len, "%s/%s.gz", dir, base);
    if (stat(buf, &sb) == 0) return MT_OK;
    return mt_err_set(MT_ERR_NOT_FOUND,
                      "MNIST: neither '%s/%s' nor '%s.gz' exists (set the "
                      "dataset's path, or MLTRAIN_DATA_PATH to a folder holding mnist/; "
                      "Fashion-MNIST is at %s)",
                      dir, base, buf, MT_FASHION_MNIST_DIR);
}

static mt_status center_columns(mt_dataset *d)
{
    double *sum = mt_calloc((size_t)d->dim ? (size_t)d->dim : 1, sizeof(double));
    if (!sum) return mt_err_set(MT_ERR_NOMEM, "MNIST center: out of memory");
    for (int64_t i = 0; i < d->n; i++) {
        const float *r = d->X + i * d->dim;
        for (int64_t j = 0; j < d->dim; j++)
            sum[j] += r[j];
    }
    for (int64_t j = 0; j < d->dim; j++)
        sum[j] /= (double)d->n;
    for (int64_t i = 0; i < d->n; i++) {
        float *r = d->X + i * d->dim;
        for (int64_t j = 0; j < d->dim; j++)
            r[j] = (float)((double)r[j] - sum[j]);
    }
    mt_free(sum);
    return MT_OK;
}

mt_status mt_dataset_mnist(mt_dataset **out, const mt_mnist_options *o)
{
    if (!out || !o || !o->dir || !o->which_set)
        return mt_err_set(MT_ERR_INVALID, "dataset_mnist: out, options, dir or which_set is NULL");
    *out = NULL;
    const char *pre;
    if (strcmp(o->which_set, "train") == 0)
        pre = "train";
    else if (strcmp(o->which_set, "test") == 0)
        pre = "t10k";
    else
        return mt_err_set(MT_ERR_INVALID,
                          "MNIST: which_set '%s' is not one of 'train', 'test' "
                          "(validation sets are train with start/stop)",
                          o->which_set);
    char ip[4096], lp[4096], base[64];
    snprintf(base, sizeof base, "%s-images-idx3-ubyte", pre);
    mt_status st = find_file(ip, sizeof ip, o->dir, base);
    if (st != MT_OK) return st;
    snprintf(base, sizeof base, "%s-labels-idx1-ubyte", pre);
    if ((st = find_file(lp, sizeof lp, o->dir, base)) != MT_OK) return st;
    mt__idx_request req;
    float_request(&req, 1.0 / 255.0);
    req.min_ndim = req.max_ndim = 3;
    bool lazy = mt__data_want_lazy(o->load, ip);
    if (lazy && o->center) {
        mt_log(MT_LOG_INFO, "MNIST(%s): center needs the whole split: loading '%s' in memory",
               o->which_set, ip);
        lazy = false;
    }
    mt_dataset *d;
    if ((st = idx_pair(&d, "MNIST", ip, lp, &req, 10, lazy)) != MT_OK) return st;
    int64_t stop = o->stop < 0 ? d->n : o->stop;
    if (o->start < 0 || o->start > stop || stop > d->n) {
        st = mt_err_set(MT_ERR_RANGE,
                        "MNIST(%s): start %lld / stop %lld outside its %lld "
                        "examples",
                        o->which_set, (long long)o->start, (long long)o->stop, (long long)d->n);
        goto fail;
    }
    if (o->binarize && d->lazy) {
        d->lazy->binarize = true; /* applied to each row as it is read */
    } else if (o->binarize) {
        for (int64_t i = 0; i < d->n * d->dim; i++)
            d->X[i] = d->X[i] > 0.5f ? 1.0f : 0.0f;
    }
    if (o->center && (st = center_columns(d)) != MT_OK) goto fail;
    mt__dataset_keep_rows(d, o->start, stop);
    if (o->shuffle && (st = mt__dataset_shuffle(d, o->seed, 0x4D4E53u)) != MT_OK) goto fail;
    char name[128];
    snprintf(name, sizeof name, "MNIST(%s, %lld:%lld%s)", o->which_set, (long long)o->start,
             (long long)stop, o->shuffle ? ", shuffled" : "");
    if ((st = mt__dataset_set_name(d, name)) != MT_OK) goto fail;
    *out = d;
    return MT_OK;
fail:
    mt_dataset_free(d);
    return st;
}
