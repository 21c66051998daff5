/* Refcounted device buffers and raw byte copies between them.
 *
 * A buffer is one device allocation (from the caching allocator) or one piece of foreign memory
 * wrapped for DLPack import (freed by its deleter). Each buffer holds a reference on its device
 * so the device outlives every buffer. Raw copies are bounds-checked here, once, so backends can
 * trust their arguments; copies between two devices go straight through the host pointer of a
 * host-addressable side, or are staged through host memory in chunks. */
#include <string.h>

#include "gpuarray_impl.h"

#define STAGE_CHUNK ((size_t)16 << 20)

mt_status mt_buffer_new(mt_buffer **out, mt_device *dev, size_t nbytes)
{
    *out = NULL;
    mt_buffer *b = mt_calloc(1, sizeof *b);
    if (!b) return mt_err_prefix(MT_ERR_NOMEM, "buffer on %s: ", dev->info.name);
    mt_status st = mt__alloc_get(dev, nbytes, &b->handle, &b->capacity);
    if (st != MT_OK) {
        mt_free(b);
        return st;
    }
    mt_device_retain(dev);
    b->dev = dev;
    b->size = nbytes;
    b->refcount = 1;
    *out = b;
    return MT_OK;
}

/* Wrapped memory without a deleter is borrowed: nothing to free, but it must not reach the
 * allocator either, so it gets this deleter. */
static void borrowed_deleter(void *ctx)
{
    (void)ctx;
}

/* On failure nothing is taken: the caller still owns the memory and its deleter. */
mt_status mt__buffer_wrap(mt_buffer **out, mt_device *dev, void *handle, size_t size,
                          void (*deleter)(void *), void *ctx)
{
    *out = NULL;
    mt_buffer *b = mt_calloc(1, sizeof *b);
    if (!b) return mt_err_prefix(MT_ERR_NOMEM, "wrapping foreign memory on %s: ", dev->info.name);
    mt_device_retain(dev);
    b->dev = dev;
    b->handle = handle;
    b->size = size;
    b->capacity = size;
    b->refcount = 1;
    b->deleter = deleter ? deleter : borrowed_deleter;
    b->deleter_ctx = ctx;
    *out = b;
    return MT_OK;
}

void mt_buffer_retain(mt_buffer *buf)
{
    if (buf) __atomic_fetch_add(&buf->refcount, 1, __ATOMIC_RELAXED);
}

void mt_buffer_release(mt_buffer *buf)
{
    if (!buf) return;
    int old = __atomic_fetch_sub(&buf->refcount, 1, __ATOMIC_ACQ_REL);
    MT_ASSERT(old > 0);
    if (old != 1) return;
    mt_device *dev = buf->dev;
    if (buf->deleter)
        buf->deleter(buf->deleter_ctx);
    else
        mt__alloc_put(dev, buf->handle, buf->capacity);
    mt_free(buf);
    mt_device_release(dev);
}

size_t mt_buffer_size(const mt_buffer *buf)
{
    return buf ? buf->size : 0;
}

mt_device *mt_buffer_device(const mt_buffer *buf)
{
    return buf ? buf->dev : NULL;
}

void *mt_buffer_host_ptr(const mt_buffer *buf)
{
    if (!buf || !buf->dev->ops->host_ptr) return NULL;
    return buf->dev->ops->host_ptr(buf->dev, buf->handle);
}

/* ERR_RANGE unless [off, off+n) lies inside buf. */
static mt_status check_range(const char *what, const mt_buffer *buf, size_t off, size_t n)
{
    if (off > buf->size || n > buf->size - off)
        return mt_err_set(MT_ERR_RANGE,
                          "%s: bytes [%zu, %zu+%zu) are outside the %zu-byte buffer on %s", what,
                          off, off, n, buf->size, buf->dev->info.name);
    return MT_OK;
}

mt_status mt_buffer_write(mt_buffer *dst, size_t off, const void *src, size_t n, mt_stream *s)
{
    mt_status st = check_range("buffer write", dst, off, n);
    if (st != MT_OK || n == 0) return st;
    st = dst->dev->ops->write(dst->dev, dst->handle, off, src, n, s);
    if (st != MT_OK) return mt_err_prefix(st, "writing %zu bytes to %s: ", n, dst->dev->info.name);
    return MT_OK;
}

mt_status mt_buffer_read(void *dst, const mt_buffer *src, size_t off, size_t n, mt_stream *s)
{
    mt_status st = check_range("buffer read", src, off, n);
    if (st != MT_OK || n == 0) return st;
    st = src->dev->ops->read(src->dev, dst, src->handle, off, n, s);
    if (st != MT_OK)
        return mt_err_prefix(st, "reading %zu bytes from %s: ", n, src->dev->info.name);
    return MT_OK;
}

/* Copy between two devices where neither side has a host pointer: chunks through host memory. */
static mt_status stage_copy(mt_buffer *dst, size_t doff, const mt_buffer *src, size_t soff,
                            size_t n)
{
    size_t chunk = n < STAGE_CHUNK ? n : STAGE_CHUNK;
    char *tmp = mt_malloc(chunk);
    if (!tmp)
        return mt_err_prefix(MT_ERR_NOMEM, "staging a copy %s -> %s: ", src->dev->info.name,
                             dst->dev->info.name);
    mt_status st = MT_OK;
    for (size_t done = 0; done < n && st == MT_OK; done += chunk) {
        size_t m = n - done < chunk ? n - done : chunk;
        st = mt_buffer_read(tmp, src, soff + done, m, NULL);
        if (st == MT_OK) st = mt_buffer_write(dst, doff + done, tmp, m, NULL);
    }
    mt_free(tmp);
    return st;
}

mt_status mt_buffer_copy(mt_buffer *dst, size_t doff, const mt_buffer *src, size_t soff, size_t n,
                         mt_stream *s)
{
    mt_status st = check_range("buffer copy (source)", src, soff, n);
    if (st == MT_OK) st = check_range("buffer copy (destination)", dst, doff, n);
    if (st != MT_OK || n == 0) return st;
    if (dst->dev == src->dev) {
        mt_device *dev = dst->dev;
        st = dev->ops->copy(dev, dst->handle, doff, src->handle, soff, n, s);
        if (st != MT_OK) return mt_err_prefix(st, "copying %zu bytes on %s: ", n, dev->info.name);
        return MT_OK;
    }
    /* different devices: the stream belongs to one of them only, so both sides run on their
     * default streams */
    const char *sp = mt_buffer_host_ptr(src);
    if (sp) return mt_buffer_write(dst, doff, sp + soff, n, NULL);
    char *dp = mt_buffer_host_ptr(dst);
    if (dp) return mt_buffer_read(dp + doff, src, soff, n, NULL);
    return stage_copy(dst, doff, src, soff, n);
}
