/* Host allocation through replaceable hooks, with fault injection for tests.
 *
 * Every host allocation of the library goes through mt_malloc/mt_calloc/mt_realloc so that
 * an embedding program can substitute its allocator and tests can make the n-th allocation
 * fail (mt_alloc_fail_after) to exercise out-of-memory paths. Failures return NULL and
 * record MT_ERR_NOMEM; nothing here aborts.
 *
 * mt_aligned_alloc uses posix_memalign directly and is NOT routed through the hooks (the
 * hook interface has no aligned entry point) nor through fault injection; its memory must be
 * released with mt_aligned_free, never mt_free. */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "mltrain/core.h"

static mt_allocator current = {malloc, realloc, calloc, free};

/* Countdown to an injected failure: 0 disabled; k > 0 means the k-th allocation from now
 * fails. Atomic because allocations happen on worker threads too. */
static atomic_llong fail_countdown;

void mt_set_allocator(const mt_allocator *a)
{
    if (!a) {
        current = (mt_allocator){malloc, realloc, calloc, free};
        return;
    }
    current.malloc_fn = a->malloc_fn ? a->malloc_fn : malloc;
    current.realloc_fn = a->realloc_fn ? a->realloc_fn : realloc;
    current.calloc_fn = a->calloc_fn ? a->calloc_fn : calloc;
    current.free_fn = a->free_fn ? a->free_fn : free;
}

void mt_alloc_fail_after(int64_t n)
{
    atomic_store(&fail_countdown, n > 0 ? (long long)n : 0);
}

/* True when this allocation must fail by injection. */
static bool injected_failure(void)
{
    long long c = atomic_load(&fail_countdown);
    while (c > 0) {
        if (atomic_compare_exchange_weak(&fail_countdown, &c, c - 1)) return c == 1;
    }
    return false;
}

static void *nomem(size_t n)
{
    mt_err_set(MT_ERR_NOMEM, "out of memory allocating %zu bytes", n);
    return NULL;
}

void *mt_malloc(size_t n)
{
    if (injected_failure()) return nomem(n);
    void *p = current.malloc_fn(n ? n : 1);
    return p ? p : nomem(n);
}

void *mt_calloc(size_t count, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(count, size, &total)) {
        mt_err_set(MT_ERR_NOMEM, "out of memory allocating %zu x %zu bytes (overflow)", count,
                   size);
        return NULL;
    }
    if (injected_failure()) return nomem(total);
    void *p = total ? current.calloc_fn(count, size) : current.calloc_fn(1, 1);
    return p ? p : nomem(total);
}

void *mt_realloc(void *p, size_t n)
{
    if (injected_failure()) return nomem(n);
    void *q = current.realloc_fn(p, n ? n : 1);
    return q ? q : nomem(n);
}

void mt_free(void *p)
{
    if (p) current.free_fn(p);
}

char *mt_strdup(const char *s)
{
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *d = mt_malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

void *mt_aligned_alloc(size_t align, size_t n)
{
    /* posix_memalign needs a power of two that is a multiple of sizeof(void *). */
    if (align < sizeof(void *)) align = sizeof(void *);
    if (align & (align - 1)) {
        mt_err_set(MT_ERR_INVALID, "aligned allocation: alignment %zu is not a power of two",
                   align);
        return NULL;
    }
    void *p = NULL;
    int rc = posix_memalign(&p, align, n ? n : 1);
    if (rc != 0) {
        mt_err_set(MT_ERR_NOMEM, "out of memory allocating %zu bytes (aligned to %zu)", n, align);
        return NULL;
    }
    return p;
}

void mt_aligned_free(void *p)
{
    free(p);
}
