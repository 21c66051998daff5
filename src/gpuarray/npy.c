/* Reading and writing NumPy .npy files (format versions 1.0, 2.0 and 3.0).
 *
 * A file is the magic "\x93NUMPY", a version (major, minor), a little-endian header length
 * (2 bytes for 1.0, 4 for 2.0/3.0), a Python dict literal
 * "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }" padded with spaces and a final
 * '\n' so that the payload starts on a 64-byte boundary, then the raw elements in C or Fortran
 * order. Files come from anywhere, so the header is parsed strictly (exactly the three keys, a
 * known descr, non-negative dims) and every size is checked before anything is allocated: a
 * header claiming 2^40 elements in a short file is an error naming the promised and the present
 * byte counts, never an allocation attempt. Bytes after the payload are ignored, as NumPy
 * ignores them.
 *
 * dtypes: '|b1' bool, '|i1' '<i2' '<i4' '<i8', '|u1' '<u2' '<u4' '<u8', '<f2' '<f4' '<f8', and
 * bfloat16 as '<V2' (NumPy has no bfloat16; ml_dtypes' bfloat16 saves as '<V2'). On reading,
 * '>' (big-endian) descrs are byte-swapped, '=' means native, '|' is accepted for any size and
 * '|V2' (what NumPy writes back for a '<V2' array) also reads as bfloat16. Complex, object,
 * string, datetime, long double and structured dtypes are refused by name.
 *
 * A Fortran-order file loads into an F-contiguous array (F strides over the same bytes), so no
 * transposing copy happens. Saving writes C order for C-contiguous arrays,
 * 'fortran_order': True for F-contiguous ones and a C-order copy for anything else; the header
 * is byte-for-byte what NumPy 1.24 writes for the same array. Files are written atomically. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "gpuarray_impl.h"

#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAGIC_LEN 6
#define NPY_ALIGN 64
/* NumPy leaves room after the dict so the growth axis can be rewritten in place. */
#define NPY_GROWTH_DIGITS 21
/* Our headers are at most a few hundred bytes; anything this large is corrupt or hostile. */
#define NPY_MAX_HEADER ((size_t)1 << 20)

typedef struct npy_header {
    mt_dtype dtype;
    bool swap;    /* payload is in the other byte order */
    bool fortran; /* payload is in Fortran order */
    int32_t ndim;
    int64_t dims[MT_MAX_DIMS];
    size_t data_off; /* bytes from the start of the file to the payload */
    size_t nbytes;   /* payload bytes */
} npy_header;

static bool host_is_little_endian(void)
{
    const uint16_t one = 1;
    uint8_t first;
    memcpy(&first, &one, 1);
    return first == 1;
}

/* Records "npy '<what>': <message>" with code. */
__attribute__((format(printf, 3, 4))) static mt_status npy_fail(mt_status code,
                                                                 const char *what,
                                                                 const char *fmt, ...)
{
    char msg[MT_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return mt_err_set(code, "npy '%s': %s", what, msg);
}

/* ---------------------------------------------------------------- descr */

/* The descr we write for a dtype (native byte order for multi-byte types). */
static void npy_descr_for(mt_dtype dt, char *buf, size_t len)
{
    char order = host_is_little_endian() ? '<' : '>';
    size_t sz = mt_dtype_size(dt);
    switch (dt) {
    case MT_BOOL: snprintf(buf, len, "|b1"); return;
    case MT_BFLOAT16: snprintf(buf, len, "%cV2", order); return;
    default: break;
    }
    char kind = mt_dtype_kind(dt);
    snprintf(buf, len, "%c%c%zu", sz == 1 ? '|' : order, kind, sz);
}

/* Maps a descr string to a dtype and byte-swap flag, or a clear error for what we refuse. */
static mt_status npy_parse_descr(const char *descr, const char *what, npy_header *h)
{
    const char *p = descr;
    char order = '=';
    if (*p == '<' || *p == '>' || *p == '=' || *p == '|') order = *p++;
    char kind = *p ? *p++ : 0;
    char *end = NULL;
    long size = 0;
    bool has_size = *p >= '0' && *p <= '9';
    if (has_size) {
        errno = 0;
        size = strtol(p, &end, 10);
        if (errno || *end) has_size = false;
    }
    if (kind == '?' && !*p) {
        kind = 'b';
        size = 1;
        has_size = true;
    }
    const char *family = NULL;
    switch (kind) {
    case 'c': family = "complex"; break;
    case 'O': family = "object arrays"; break;
    case 'U': case 'S': case 'a': family = "strings"; break;
    case 'M': case 'm': family = "datetime"; break;
    default: break;
    }
    if (family) return npy_fail(MT_ERR_DTYPE, what, "unsupported dtype descr '%s' (%s)", descr,
                                family);
    mt_dtype dt = MT_DTYPE_COUNT;
    if (has_size) {
        switch (kind) {
        case 'b': if (size == 1) dt = MT_BOOL; break;
        case 'i':
            dt = size == 1 ? MT_INT8 : size == 2 ? MT_INT16 : size == 4 ? MT_INT32
               : size == 8 ? MT_INT64 : MT_DTYPE_COUNT;
            break;
        case 'u':
            dt = size == 1 ? MT_UINT8 : size == 2 ? MT_UINT16 : size == 4 ? MT_UINT32
               : size == 8 ? MT_UINT64 : MT_DTYPE_COUNT;
            break;
        case 'f':
            dt = size == 2 ? MT_FLOAT16 : size == 4 ? MT_FLOAT32 : size == 8 ? MT_FLOAT64
               : MT_DTYPE_COUNT;
            if (dt == MT_DTYPE_COUNT && (size == 12 || size == 16))
                return npy_fail(MT_ERR_DTYPE, what, "unsupported dtype descr '%s' (long double)",
                                descr);
            break;
        case 'V':
            /* bfloat16 by convention; other void sizes are opaque records */
            if (size == 2) dt = MT_BFLOAT16;
            else
                return npy_fail(MT_ERR_DTYPE, what, "unsupported dtype descr '%s' (void/record; "
                                "only '<V2' = bfloat16 is understood)", descr);
            break;
        default: break;
        }
    }
    if (dt == MT_DTYPE_COUNT)
        return npy_fail(MT_ERR_DTYPE, what, "unsupported dtype descr '%s'", descr);
    bool little = host_is_little_endian();
    h->dtype = dt;
    h->swap = mt_dtype_size(dt) > 1 && ((order == '>' && little) || (order == '<' && !little));
    return MT_OK;
}

/* ---------------------------------------------------------------- header dict */

typedef struct npy_lex {
    const char *p, *end;
    const char *what;
} npy_lex;

static void lex_ws(npy_lex *l)
{
    while (l->p < l->end && (*l->p == ' ' || *l->p == '\t' || *l->p == '\n' || *l->p == '\r'))
        l->p++;
}

/* Skips whitespace, then consumes c if it is next. */
static bool lex_accept(npy_lex *l, char c)
{
    lex_ws(l);
    if (l->p < l->end && *l->p == c) {
        l->p++;
        return true;
    }
    return false;
}

/* A short printable excerpt of the text at p for messages. */
static const char *lex_excerpt(const npy_lex *l, const char *p, char *buf, size_t len)
{
    size_t n = (size_t)(l->end - p);
    if (n > 24) n = 24;
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < len; i++) {
        unsigned char c = (unsigned char)p[i];
        buf[o++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    buf[o] = 0;
    return buf;
}

/* A Python string literal in ' or " quotes (no escapes: no valid key or descr needs them). */
static mt_status lex_string(npy_lex *l, char *out, size_t cap, const char *ctx)
{
    char ex[32];
    lex_ws(l);
    if (l->p >= l->end || (*l->p != '\'' && *l->p != '"'))
        return npy_fail(MT_ERR_FORMAT, l->what, "bad header: expected a quoted %s at '%s'", ctx,
                        lex_excerpt(l, l->p, ex, sizeof ex));
    char q = *l->p++;
    size_t n = 0;
    while (l->p < l->end && *l->p != q) {
        if (*l->p == '\\' || n + 1 >= cap)
            return npy_fail(MT_ERR_FORMAT, l->what, "bad header: unsupported %s string", ctx);
        out[n++] = *l->p++;
    }
    if (l->p >= l->end)
        return npy_fail(MT_ERR_FORMAT, l->what, "bad header: unterminated %s string", ctx);
    l->p++;
    out[n] = 0;
    return MT_OK;
}

/* "(3, 4)", "(5,)", "()", optionally with Python 2 long suffixes "(3L, 4L)". */
static mt_status lex_shape(npy_lex *l, npy_header *h)
{
    char ex[32];
    lex_ws(l);
    const char *start = l->p;
    if (!lex_accept(l, '('))
        return npy_fail(MT_ERR_FORMAT, l->what, "bad shape text '%s': expected a tuple",
                        lex_excerpt(l, start, ex, sizeof ex));
    int32_t nd = 0;
    bool trailing_comma = false;
    for (;;) {
        if (lex_accept(l, ')')) break;
        lex_ws(l);
        if (l->p < l->end && *l->p == '-')
            return npy_fail(MT_ERR_FORMAT, l->what, "negative dimension in shape '%s'",
                            lex_excerpt(l, start, ex, sizeof ex));
        if (l->p >= l->end || *l->p < '0' || *l->p > '9')
            return npy_fail(MT_ERR_FORMAT, l->what, "bad shape text '%s'",
                            lex_excerpt(l, start, ex, sizeof ex));
        uint64_t v = 0;
        while (l->p < l->end && *l->p >= '0' && *l->p <= '9') {
            if (v > ((uint64_t)INT64_MAX - 9) / 10)
                return npy_fail(MT_ERR_RANGE, l->what, "size overflow: a dimension in shape '%s' "
                                "exceeds 2^63", lex_excerpt(l, start, ex, sizeof ex));
            v = v * 10 + (uint64_t)(*l->p++ - '0');
        }
        if (l->p < l->end && *l->p == 'L') l->p++;
        if (nd >= MT_MAX_DIMS)
            return npy_fail(MT_ERR_RANGE, l->what, "shape '%s' has more than %d dimensions",
                            lex_excerpt(l, start, ex, sizeof ex), MT_MAX_DIMS);
        h->dims[nd++] = (int64_t)v;
        trailing_comma = lex_accept(l, ',');
        if (!trailing_comma) {
            if (lex_accept(l, ')')) break;
            return npy_fail(MT_ERR_FORMAT, l->what, "bad shape text '%s'",
                            lex_excerpt(l, start, ex, sizeof ex));
        }
    }
    /* "(5)" is the integer 5 in Python, not a 1-tuple */
    if (nd == 1 && !trailing_comma)
        return npy_fail(MT_ERR_FORMAT, l->what, "bad shape text '%s': a 1-tuple needs a comma",
                        lex_excerpt(l, start, ex, sizeof ex));
    h->ndim = nd;
    return MT_OK;
}

static mt_status lex_bool(npy_lex *l, bool *out)
{
    char ex[32];
    lex_ws(l);
    size_t left = (size_t)(l->end - l->p);
    if (left >= 4 && memcmp(l->p, "True", 4) == 0) {
        l->p += 4;
        *out = true;
        return MT_OK;
    }
    if (left >= 5 && memcmp(l->p, "False", 5) == 0) {
        l->p += 5;
        *out = false;
        return MT_OK;
    }
    return npy_fail(MT_ERR_FORMAT, l->what, "bad header: fortran_order must be True or False, "
                    "not '%s'", lex_excerpt(l, l->p, ex, sizeof ex));
}

/* Parses the dict: the three keys exactly once each, in any order, trailing comma allowed,
 * nothing but whitespace after the closing brace. */
static mt_status npy_parse_dict(const char *text, size_t n, const char *what, npy_header *h)
{
    npy_lex l = {text, text + n, what};
    char ex[32];
    if (!lex_accept(&l, '{'))
        return npy_fail(MT_ERR_FORMAT, what, "bad header: expected a dict, found '%s'",
                        lex_excerpt(&l, l.p, ex, sizeof ex));
    bool seen[3] = {false, false, false};
    static const char *const keys[3] = {"descr", "fortran_order", "shape"};
    mt_status st;
    for (;;) {
        if (lex_accept(&l, '}')) break;
        char key[64];
        if ((st = lex_string(&l, key, sizeof key, "key")) != MT_OK) return st;
        int k = -1;
        for (int i = 0; i < 3; i++)
            if (strcmp(key, keys[i]) == 0) k = i;
        if (k < 0) return npy_fail(MT_ERR_FORMAT, what, "bad header: unexpected key '%s'", key);
        if (seen[k]) return npy_fail(MT_ERR_FORMAT, what, "bad header: key '%s' repeated", key);
        seen[k] = true;
        if (!lex_accept(&l, ':'))
            return npy_fail(MT_ERR_FORMAT, what, "bad header: expected ':' after '%s'", key);
        if (k == 0) {
            lex_ws(&l);
            if (l.p < l.end && *l.p == '[')
                return npy_fail(MT_ERR_DTYPE, what, "unsupported structured dtype (descr is a "
                                "list of fields)");
            char descr[64];
            if ((st = lex_string(&l, descr, sizeof descr, "descr")) != MT_OK) return st;
            if ((st = npy_parse_descr(descr, what, h)) != MT_OK) return st;
        } else if (k == 1) {
            if ((st = lex_bool(&l, &h->fortran)) != MT_OK) return st;
        } else {
            if ((st = lex_shape(&l, h)) != MT_OK) return st;
        }
        if (lex_accept(&l, ',')) continue;
        if (lex_accept(&l, '}')) break;
        return npy_fail(MT_ERR_FORMAT, what, "bad header: expected ',' or '}' at '%s'",
                        lex_excerpt(&l, l.p, ex, sizeof ex));
    }
    lex_ws(&l);
    /* a NUL pad is what some writers leave; anything else is corruption */
    while (l.p < l.end && *l.p == 0) l.p++;
    if (l.p != l.end)
        return npy_fail(MT_ERR_FORMAT, what, "bad header: unexpected text '%s' after the dict",
                        lex_excerpt(&l, l.p, ex, sizeof ex));
    for (int i = 0; i < 3; i++)
        if (!seen[i]) return npy_fail(MT_ERR_FORMAT, what, "bad header: key '%s' missing", keys[i]);
    return MT_OK;
}

/* ---------------------------------------------------------------- prefix and payload checks */

/* Checks magic and version and finds the header text. p holds the first min(total, 12) bytes
 * of a file of `total` bytes. */
static mt_status npy_parse_prefix(const unsigned char *p, size_t total, const char *what,
                                  size_t *hdr_off, size_t *hdr_len)
{
    size_t avail = total < 12 ? total : 12;
    size_t cmp = avail < NPY_MAGIC_LEN ? avail : NPY_MAGIC_LEN;
    if (memcmp(p, NPY_MAGIC, cmp) != 0) {
        char hex[40] = "";
        for (size_t i = 0; i < cmp; i++)
            snprintf(hex + 3 * i, sizeof hex - 3 * i, "%02x ", p[i]);
        return npy_fail(MT_ERR_FORMAT, what, "bad magic: not an .npy file (starts with %s)", hex);
    }
    if (total < 10)
        return npy_fail(MT_ERR_FORMAT, what, "truncated header: the file has only %zu bytes",
                        total);
    int major = p[6], minor = p[7];
    if (major < 1 || major > 3 || minor != 0)
        return npy_fail(MT_ERR_FORMAT, what, "unsupported .npy format version %d.%d (1.0, 2.0 "
                        "and 3.0 are understood)", major, minor);
    size_t off = major == 1 ? 10 : 12;
    if (total < off)
        return npy_fail(MT_ERR_FORMAT, what, "truncated header: the file has only %zu bytes",
                        total);
    size_t len = (size_t)p[8] | (size_t)p[9] << 8;
    if (major > 1) len |= (size_t)p[10] << 16 | (size_t)p[11] << 24;
    if (len > total - off)
        return npy_fail(MT_ERR_FORMAT, what, "header length %zu runs past the end of the file "
                        "(%zu bytes)", len, total);
    if (len > NPY_MAX_HEADER)
        return npy_fail(MT_ERR_FORMAT, what, "header length %zu is over the %zu-byte limit", len,
                        NPY_MAX_HEADER);
    *hdr_off = off;
    *hdr_len = len;
    return MT_OK;
}

/* Payload size with overflow checks, the caller's limit, and the bytes actually present. */
static mt_status npy_check_payload(npy_header *h, size_t total, size_t max_bytes,
                                   const char *what)
{
    char sh[256];
    mt_shape_str(h->ndim, h->dims, sh, sizeof sh);
    uint64_t n = 1;
    bool zero = false;
    /* As NumPy, the nonzero dims must multiply to a valid size even when a dim is 0 (an empty
     * array's strides are products of them). */
    for (int32_t i = 0; i < h->ndim; i++) {
        if (h->dims[i] == 0) {
            zero = true;
            continue;
        }
        if (__builtin_mul_overflow(n, (uint64_t)h->dims[i], &n) || n > (uint64_t)INT64_MAX)
            return npy_fail(MT_ERR_RANGE, what, "size overflow: shape %s has more than 2^63 "
                            "elements", sh);
    }
    uint64_t bytes;
    if (__builtin_mul_overflow(n, (uint64_t)mt_dtype_size(h->dtype), &bytes) ||
        bytes > (uint64_t)INT64_MAX || bytes > (uint64_t)SIZE_MAX)
        return npy_fail(MT_ERR_RANGE, what, "size overflow: shape %s of %s needs more than 2^63 "
                        "bytes", sh, mt_dtype_name(h->dtype));
    if (zero) bytes = 0;
    if (max_bytes > 0 && bytes > max_bytes)
        return npy_fail(MT_ERR_RANGE, what, "payload of %llu bytes (shape %s, %s) is over the "
                        "limit of %zu bytes", (unsigned long long)bytes, sh,
                        mt_dtype_name(h->dtype), max_bytes);
    size_t have = total - h->data_off;
    if (bytes > have)
        return npy_fail(MT_ERR_FORMAT, what, "truncated: header promises %llu bytes of %s data "
                        "(shape %s), file has %zu", (unsigned long long)bytes,
                        mt_dtype_name(h->dtype), sh, have);
    h->nbytes = (size_t)bytes;
    return MT_OK;
}

/* Parses everything up to the payload from the first bytes of a file. `head` must hold at
 * least min(total, 12) bytes, and the whole header when the prefix says it fits in the file
 * (the file reader fetches it in a second step; see read_header). */
static mt_status npy_parse_header(const unsigned char *head, size_t total, size_t max_bytes,
                                  const char *what, npy_header *h)
{
    memset(h, 0, sizeof *h);
    size_t off, len;
    mt_status st = npy_parse_prefix(head, total, what, &off, &len);
    if (st != MT_OK) return st;
    st = npy_parse_dict((const char *)head + off, len, what, h);
    if (st != MT_OK) return st;
    h->data_off = off + len;
    return npy_check_payload(h, total, max_bytes, what);
}

/* ---------------------------------------------------------------- payload */

static void npy_swap(void *data, size_t nbytes, size_t isz)
{
    unsigned char *p = data;
    for (size_t i = 0; i + isz <= nbytes; i += isz)
        for (size_t a = 0, b = isz - 1; a < b; a++, b--) {
            unsigned char t = p[i + a];
            p[i + a] = p[i + b];
            p[i + b] = t;
        }
}

/* Byte order and bool normalisation (a bool file may hold any nonzero byte for True). */
static void npy_fixup(void *data, const npy_header *h)
{
    if (h->swap) npy_swap(data, h->nbytes, mt_dtype_size(h->dtype));
    if (h->dtype == MT_BOOL) {
        unsigned char *p = data;
        for (size_t i = 0; i < h->nbytes; i++) p[i] = p[i] != 0;
    }
}

/* Creates the array and fills it from mem (bytes of the payload) or by reading f. */
static mt_status npy_materialize(mt_array *out, mt_device *dev, const npy_header *h,
                                 const void *mem, FILE *f, const char *what)
{
    mt_array a;
    mt_status st = mt_array_empty(&a, dev, h->dtype, h->ndim, h->dims, h->fortran ? 'F' : 'C');
    if (st != MT_OK) return mt_err_prefix(st, "npy '%s': ", what);
    if (h->nbytes == 0) {
        *out = a;
        return MT_OK;
    }
    char *host = mt_buffer_host_ptr(a.buf);
    bool fix = h->swap || h->dtype == MT_BOOL;
    char *tmp = NULL;
    char *dst = host ? host + a.offset : NULL;
    if (!dst && (f || fix)) {
        dst = tmp = mt_malloc(h->nbytes);
        if (!tmp) {
            st = mt_err_prefix(MT_ERR_NOMEM, "npy '%s': ", what);
            goto fail;
        }
    }
    if (f) {
        if (fread(dst, 1, h->nbytes, f) != h->nbytes) {
            st = ferror(f) ? mt_err_errno(errno, "npy '%s': reading the payload", what)
                           : npy_fail(MT_ERR_FORMAT, what, "truncated: the file shrank while "
                                      "being read");
            goto fail;
        }
    } else if (dst) {
        memcpy(dst, mem, h->nbytes);
    }
    if (fix) npy_fixup(dst, h);
    if (!host) {
        st = mt_buffer_write(a.buf, a.offset, dst ? dst : mem, h->nbytes, NULL);
        if (st != MT_OK) {
            mt_err_prefix(st, "npy '%s': uploading to %s: ", what, mt_device_name(dev));
            goto fail;
        }
    }
    mt_free(tmp);
    *out = a;
    return MT_OK;
fail:
    mt_free(tmp);
    mt_array_clear(&a);
    return st;
}

/* NULL means the host device; *opened gets a reference to release once the array holds one. */
static mt_status npy_device(mt_device **dev, mt_device **opened)
{
    *opened = NULL;
    if (*dev) return MT_OK;
    mt_status st = mt_device_open(opened, "host");
    *dev = *opened;
    return st;
}

mt_status mt_npy_load_mem(mt_array *out, mt_device *dev, const void *data, size_t len,
                          const char *what)
{
    if (!what) what = "<memory>";
    if (!out || (!data && len > 0))
        return npy_fail(MT_ERR_INVALID, what, "load_mem: out or data is NULL");
    unsigned char empty[1] = {0};
    const unsigned char *p = data ? data : empty;
    npy_header h;
    mt_status st = npy_parse_header(p, len, 0, what, &h);
    if (st != MT_OK) return st;
    mt_device *opened;
    if ((st = npy_device(&dev, &opened)) != MT_OK) return st;
    st = npy_materialize(out, dev, &h, p + h.data_off, NULL, what);
    mt_device_release(opened);
    return st;
}

/* Reads prefix and header text of an open file into a buffer laid out like the file start. */
static mt_status read_header(FILE *f, size_t total, size_t max_bytes, const char *path,
                             npy_header *h)
{
    unsigned char prefix[12];
    size_t want = total < sizeof prefix ? total : sizeof prefix;
    if (fread(prefix, 1, want, f) != want)
        return mt_err_errno(errno ? errno : EIO, "npy '%s': reading the header", path);
    size_t off, len;
    mt_status st = npy_parse_prefix(prefix, total, path, &off, &len);
    if (st != MT_OK) return st;
    unsigned char *head = mt_malloc(off + len + 1);
    if (!head) return mt_err_prefix(MT_ERR_NOMEM, "npy '%s': ", path);
    memcpy(head, prefix, off);
    if (fseeko(f, (off_t)off, SEEK_SET) != 0 || fread(head + off, 1, len, f) != len) {
        st = mt_err_errno(errno ? errno : EIO, "npy '%s': reading the header", path);
    } else {
        st = npy_parse_header(head, total, max_bytes, path, h);
    }
    mt_free(head);
    return st;
}

mt_status mt_npy_load(mt_array *out, mt_device *dev, const char *path, size_t max_bytes)
{
    if (!out || !path) return mt_err_set(MT_ERR_INVALID, "npy_load: out or path is NULL");
    FILE *f = fopen(path, "rb");
    if (!f) return mt_err_errno(errno, "npy '%s': cannot open", path);
    mt_status st;
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0) {
        st = mt_err_errno(errno, "npy '%s': stat", path);
        goto out;
    }
    if (!S_ISREG(sb.st_mode)) {
        st = npy_fail(MT_ERR_IO, path, "not a regular file");
        goto out;
    }
    npy_header h;
    st = read_header(f, (size_t)sb.st_size, max_bytes, path, &h);
    if (st != MT_OK) goto out;
    if (fseeko(f, (off_t)h.data_off, SEEK_SET) != 0) {
        st = mt_err_errno(errno, "npy '%s': seeking to the payload", path);
        goto out;
    }
    mt_device *opened;
    if ((st = npy_device(&dev, &opened)) != MT_OK) goto out;
    st = npy_materialize(out, dev, &h, NULL, f, path);
    mt_device_release(opened);
out:
    fclose(f);
    return st;
}

mt_status mt_npy_read_info(mt_npy_info *out, const char *path, size_t max_bytes)
{
    if (!out || !path) return mt_err_set(MT_ERR_INVALID, "npy_read_info: out or path is NULL");
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) return mt_err_errno(errno, "npy '%s': cannot open", path);
    mt_status st;
    struct stat sb;
    npy_header h;
    if (fstat(fileno(f), &sb) != 0)
        st = mt_err_errno(errno, "npy '%s': stat", path);
    else if (!S_ISREG(sb.st_mode))
        st = npy_fail(MT_ERR_IO, path, "not a regular file");
    else
        st = read_header(f, (size_t)sb.st_size, max_bytes, path, &h);
    fclose(f);
    if (st != MT_OK) return st;
    out->dtype = h.dtype;
    out->ndim = h.ndim;
    memcpy(out->dims, h.dims, sizeof out->dims);
    out->fortran_order = h.fortran;
    out->byteswap = h.swap;
    out->data_offset = h.data_off;
    out->nbytes = h.nbytes;
    return MT_OK;
}

/* ---------------------------------------------------------------- save */

/* Appends the complete prefix + padded header NumPy writes for (descr, fortran, shape). */
static mt_status npy_build_header(mt_strbuf *sb, const mt_array *a, bool fortran)
{
    char descr[16];
    npy_descr_for(a->dtype, descr, sizeof descr);
    mt_strbuf dict;
    mt_strbuf_init(&dict);
    mt_strbuf_appendf(&dict, "{'descr': '%s', 'fortran_order': %s, 'shape': (", descr,
                      fortran ? "True" : "False");
    for (int32_t i = 0; i < a->ndim; i++)
        mt_strbuf_appendf(&dict, "%s%lld", i ? ", " : "", (long long)a->dims[i]);
    mt_strbuf_append(&dict, a->ndim == 1 ? ",), }" : "), }");
    if (a->ndim > 0) {
        char digits[32];
        int nd = snprintf(digits, sizeof digits, "%lld",
                          (long long)a->dims[fortran ? a->ndim - 1 : 0]);
        for (int i = nd; i < NPY_GROWTH_DIGITS; i++) mt_strbuf_append(&dict, " ");
    }
    mt_status st = mt_strbuf_status(&dict);
    if (st != MT_OK) {
        mt_strbuf_deinit(&dict);
        return st;
    }
    size_t hlen = dict.len + 1; /* + '\n' */
    int major = hlen + NPY_ALIGN + 10 > 65535 ? 2 : 1;
    size_t pre = major == 1 ? 10 : 12;
    size_t pad = NPY_ALIGN - (pre + hlen) % NPY_ALIGN;
    size_t field = hlen + pad;
    unsigned char prefix[12];
    memcpy(prefix, NPY_MAGIC, NPY_MAGIC_LEN);
    prefix[6] = (unsigned char)major;
    prefix[7] = 0;
    for (size_t i = 0; i < pre - 8; i++) prefix[8 + i] = (unsigned char)(field >> (8 * i));
    mt_strbuf_appendn(sb, (const char *)prefix, pre);
    mt_strbuf_appendn(sb, dict.data, dict.len);
    for (size_t i = 0; i < pad; i++) mt_strbuf_append(sb, " ");
    mt_strbuf_append(sb, "\n");
    mt_strbuf_deinit(&dict);
    return mt_strbuf_status(sb);
}

mt_status mt_npy_save(const char *path, const mt_array *a)
{
    if (!path || !a || !a->buf)
        return mt_err_set(MT_ERR_INVALID, "npy_save: path or array is NULL or empty");
    if (!mt_dtype_valid(a->dtype))
        return mt_err_set(MT_ERR_DTYPE, "npy '%s': invalid dtype %d", path, (int)a->dtype);
    bool c = mt_array_is_c_contiguous(a);
    bool fortran = !c && mt_array_is_f_contiguous(a);
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    mt_status st = npy_build_header(&sb, a, fortran);
    if (st != MT_OK) {
        mt_strbuf_deinit(&sb);
        return mt_err_prefix(st, "npy '%s': ", path);
    }
    size_t hdr = sb.len, nbytes = mt_array_nbytes(a);
    char *file = mt_malloc(hdr + nbytes + 1);
    if (!file) {
        mt_strbuf_deinit(&sb);
        return mt_err_prefix(MT_ERR_NOMEM, "npy '%s': ", path);
    }
    memcpy(file, sb.data, hdr);
    mt_strbuf_deinit(&sb);
    if (nbytes > 0) {
        /* a C- or F-contiguous array is one block starting at its offset (positive strides) */
        if (c || fortran)
            st = mt_buffer_read(file + hdr, a->buf, a->offset, nbytes, NULL);
        else
            st = mt_array_to_host(file + hdr, nbytes, a);
    }
    if (st == MT_OK) st = mt_file_write_atomic(path, file, hdr + nbytes, 0644);
    mt_free(file);
    if (st != MT_OK) return mt_err_prefix(st, "npy save '%s': ", path);
    return MT_OK;
}
