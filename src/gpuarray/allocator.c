/* The per-device caching allocator.
 *
 * Device allocations are slow (OpenCL, CUDA) and training loops allocate the same sizes every
 * step, so released blocks are kept on a free list sorted by size and handed out again. Sizes
 * are rounded up (256 bytes below 1 MiB, 64 KiB above) so that near-equal requests share
 * blocks. A request takes the smallest cached block that fits, but never one more than twice
 * its rounded size: a small array must not pin a huge block. When the backend runs out of
 * memory the cache is returned to it and the allocation retried once.
 *
 * Statistics count rounded (block) sizes, which is what the device actually holds. */
#include <stdio.h>
#include <string.h>

#include "gpuarray_impl.h"

#define SMALL_LIMIT ((size_t)1 << 20)
#define SMALL_ROUND ((size_t)256)
#define LARGE_ROUND ((size_t)64 << 10)

static bool round_size(size_t n, size_t *out)
{
    size_t r = n <= SMALL_LIMIT ? SMALL_ROUND : LARGE_ROUND;
    if (n == 0) n = 1; /* empty buffers still get a distinct, valid block */
    if (n > SIZE_MAX - r) return false;
    *out = (n + r - 1) / r * r;
    return true;
}

/* "1.5 GiB", "256 bytes" */
static const char *fmt_bytes(char *buf, size_t len, size_t n)
{
    static const char *units[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    if (n < 1024) {
        snprintf(buf, len, "%zu bytes", n);
        return buf;
    }
    double v = (double)n;
    int u = 0;
    while (v >= 1024.0 && u < 6) {
        v /= 1024.0;
        u++;
    }
    snprintf(buf, len, "%.1f %s", v, units[u]);
    return buf;
}

/* Detaches the whole free list (caller frees the blocks outside the lock). */
static mt_cached_block *take_cache_locked(mt_device *dev)
{
    mt_cached_block *list = dev->alloc.free_list;
    dev->alloc.free_list = NULL;
    dev->alloc.stats.cached = 0;
    return list;
}

static void free_blocks(mt_device *dev, mt_cached_block *b)
{
    while (b) {
        mt_cached_block *next = b->next;
        dev->ops->free(dev, b->handle);
        mt_free(b);
        b = next;
    }
}

/* Takes the best-fitting cached block for `size` bytes (rounded), or NULL. */
static mt_cached_block *take_fit_locked(mt_device *dev, size_t size)
{
    mt_cached_block **pp = &dev->alloc.free_list;
    while (*pp && (*pp)->size < size)
        pp = &(*pp)->next;
    mt_cached_block *b = *pp;
    if (!b || b->size / 2 > size) return NULL; /* more than 2x: leave it for a bigger request */
    *pp = b->next;
    return b;
}

static void count_in_use_locked(mt_device *dev, size_t size)
{
    mt_mem_stats *s = &dev->alloc.stats;
    s->in_use += size;
    if (s->in_use > s->peak) s->peak = s->in_use;
}

mt_status mt__alloc_get(mt_device *dev, size_t nbytes, void **handle, size_t *capacity)
{
    *handle = NULL;
    *capacity = 0;
    size_t size;
    char tmp[32], tmp2[32];
    if (!round_size(nbytes, &size))
        return mt_err_set(MT_ERR_NOMEM, "cannot allocate %zu bytes on %s: size too large", nbytes,
                          dev->info.name);
    pthread_mutex_lock(&dev->alloc.lock);
    dev->alloc.stats.allocs++;
    mt_cached_block *b = take_fit_locked(dev, size);
    if (b) {
        dev->alloc.stats.cache_hits++;
        dev->alloc.stats.cached -= b->size;
        count_in_use_locked(dev, b->size);
        pthread_mutex_unlock(&dev->alloc.lock);
        *handle = b->handle;
        *capacity = b->size;
        mt_free(b);
        return MT_OK;
    }
    pthread_mutex_unlock(&dev->alloc.lock);

    if (dev->info.max_alloc && size > dev->info.max_alloc)
        return mt_err_set(MT_ERR_NOMEM,
                          "cannot allocate %s on %s: the largest allocation it allows is %s",
                          fmt_bytes(tmp, sizeof tmp, nbytes), dev->info.name,
                          fmt_bytes(tmp2, sizeof tmp2, (size_t)dev->info.max_alloc));
    void *h = NULL;
    mt_status st = dev->ops->alloc(dev, size, &h);
    if (st != MT_OK) {
        /* give the cached blocks back to the backend and try once more */
        pthread_mutex_lock(&dev->alloc.lock);
        mt_cached_block *list = take_cache_locked(dev);
        pthread_mutex_unlock(&dev->alloc.lock);
        if (list) {
            free_blocks(dev, list);
            st = dev->ops->alloc(dev, size, &h);
        }
        if (st != MT_OK) {
            char why[MT_ERR_MSG_MAX];
            snprintf(why, sizeof why, "%s", mt_last_error());
            return mt_err_set(MT_ERR_NOMEM, "cannot allocate %s on %s: %s",
                              fmt_bytes(tmp, sizeof tmp, nbytes), dev->info.name, why);
        }
    }
    pthread_mutex_lock(&dev->alloc.lock);
    dev->alloc.stats.backend_allocs++;
    count_in_use_locked(dev, size);
    pthread_mutex_unlock(&dev->alloc.lock);
    *handle = h;
    *capacity = size;
    return MT_OK;
}

void mt__alloc_put(mt_device *dev, void *handle, size_t capacity)
{
    mt_cached_block *nb = mt_malloc(sizeof *nb);
    pthread_mutex_lock(&dev->alloc.lock);
    MT_ASSERT(dev->alloc.stats.in_use >= capacity);
    dev->alloc.stats.in_use -= capacity;
    if (nb) {
        nb->handle = handle;
        nb->size = capacity;
        mt_cached_block **pp = &dev->alloc.free_list;
        while (*pp && (*pp)->size < capacity)
            pp = &(*pp)->next;
        nb->next = *pp;
        *pp = nb;
        dev->alloc.stats.cached += capacity;
    }
    pthread_mutex_unlock(&dev->alloc.lock);
    if (!nb) dev->ops->free(dev, handle); /* no node to track it: return it right away */
}

void mt__alloc_deinit(mt_device *dev)
{
    mt_device_empty_cache(dev);
}

void mt_device_mem_stats(const mt_device *dev, mt_mem_stats *out)
{
    mt_device *d = (mt_device *)dev; /* the lock is not part of the logical state */
    pthread_mutex_lock(&d->alloc.lock);
    *out = d->alloc.stats;
    pthread_mutex_unlock(&d->alloc.lock);
}

void mt_device_mem_reset_peak(mt_device *dev)
{
    pthread_mutex_lock(&dev->alloc.lock);
    dev->alloc.stats.peak = dev->alloc.stats.in_use;
    pthread_mutex_unlock(&dev->alloc.lock);
}

void mt_device_empty_cache(mt_device *dev)
{
    pthread_mutex_lock(&dev->alloc.lock);
    mt_cached_block *list = take_cache_locked(dev);
    pthread_mutex_unlock(&dev->alloc.lock);
    free_blocks(dev, list);
}
