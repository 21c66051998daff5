/* The bump allocator shared by the graph (nodes, operand arrays, constants, strings) and the
 * config module (document nodes and strings): memory is taken from chunks obtained with
 * mt_malloc and released all at once by mt_arena_free, so pointers stay valid for the life of
 * the graph or document. */
#include <stdint.h>
#include <string.h>

#include "mltrain/core.h"

enum { ARENA_CHUNK = 16384 };

struct mt_arena_chunk {
    mt_arena_chunk *next;
    size_t cap, used;
    _Alignas(16) unsigned char data[];
};

void *mt_arena_alloc(mt_arena *a, size_t n, size_t align)
{
    if (align < 1) align = 1;
    mt_arena_chunk *c = a->head;
    if (c) {
        /* align the address, not the offset: data is only 16-byte aligned */
        uintptr_t at = (uintptr_t)(c->data + c->used), pad = (align - at % align) % align;
        size_t off = c->used + (size_t)pad;
        if (off <= c->cap && n <= c->cap - off) {
            c->used = off + n;
            a->used += n;
            return c->data + off;
        }
    }
    size_t cap = n + align > ARENA_CHUNK ? n + align : ARENA_CHUNK;
    mt_arena_chunk *nc = mt_malloc(sizeof(*nc) + cap);
    if (!nc) return NULL;
    nc->cap = cap;
    if (c && n > ARENA_CHUNK / 4) { /* a big block: small requests keep filling c */
        nc->next = c->next;
        c->next = nc;
    } else {
        nc->next = c;
        a->head = nc;
    }
    a->reserved += sizeof(*nc) + cap;
    size_t off = 0;
    while (((uintptr_t)(nc->data + off)) % align) off++;
    nc->used = off + n;
    a->used += n;
    return nc->data + off;
}

void *mt_arena_calloc(mt_arena *a, size_t n)
{
    void *p = mt_arena_alloc(a, n ? n : 1, 16);
    if (p) memset(p, 0, n ? n : 1);
    return p;
}

char *mt_arena_strndup(mt_arena *a, const char *s, size_t n)
{
    char *d = mt_arena_alloc(a, n + 1, 1);
    if (!d) return NULL;
    if (n) memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *mt_arena_strdup(mt_arena *a, const char *s)
{
    return s ? mt_arena_strndup(a, s, strlen(s)) : NULL;
}

void mt_arena_free(mt_arena *a)
{
    mt_arena_chunk *c = a->head;
    while (c) {
        mt_arena_chunk *next = c->next;
        mt_free(c);
        c = next;
    }
    a->head = NULL;
    a->used = a->reserved = 0;
}
