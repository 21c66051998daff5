/* Device registry, shared device objects, the in-memory kernel cache, streams and events.
 *
 * This is the only file outside the backend sources that looks at the MT_HAVE_* flags: it maps a
 * device name ("host", "opencl:P:D", "cuda:N") to a backend vtable. Devices are shared: opening
 * the same name twice returns the same refcounted object from a process-wide table, so buffers
 * and compiled kernels are not duplicated. A device is destroyed when its last reference goes
 * (every buffer holds one), after its kernels are freed and its allocator cache is emptied.
 *
 * Streams and events wrap the backend's handles. Backends that run everything in order on one
 * queue leave the stream/event members NULL; then a stream maps to the default queue, recording
 * an event waits for the device and notes the host clock, and waiting on an event is a no-op. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpuarray_impl.h"
#if MT_HAVE_CUDA
#include "cudaemu.h"
#endif

struct mt_stream {
    mt_device *dev; /* holds a reference */
    void *impl;     /* backend stream, NULL when the backend has no stream ops */
};

struct mt_event {
    mt_device *dev; /* holds a reference */
    void *impl;     /* backend event, NULL when the backend has no event ops */
    double host_time;
    bool recorded;
};

/* ---------------------------------------------------------------- backend registry */

#if MT_HAVE_CUDA
extern const mt_device_ops mt__cuda_ops; /* device_cuda.c */
#endif

typedef struct backend_entry {
    const char *prefix; /* name prefix */
    const mt_device_ops *ops;
} backend_entry;

static const backend_entry g_backends[] = {
    {"host", &mt__host_ops},
#if MT_HAVE_OPENCL
    {"opencl", &mt__opencl_ops},
#endif
#if MT_HAVE_CUDA
    /* CUDA emulation for CI: listed only with MLTRAIN_CUDAEMU=1, always openable by name */
    {"cudaemu", &mt__cudaemu_ops},
#endif
#if MT_HAVE_CUDA
    {"cuda", &mt__cuda_ops},
#endif
};
#define NBACKENDS ((int)(sizeof g_backends / sizeof g_backends[0]))

static const mt_device_ops *find_backend(const char *prefix)
{
    for (int i = 0; i < NBACKENDS; i++)
        if (strcmp(g_backends[i].prefix, prefix) == 0) return g_backends[i].ops;
    return NULL;
}

/* Whether a device computes on the host's CPU cores. OpenCL reports a device type but the
 * info struct carries no type field from the backends, so CPU runtimes are recognised by name:
 * PoCL calls its CPU devices "pthread-<cpu>" or "cpu-<cpu>", the Intel and AMD CPU runtimes
 * name the CPU model. Getting this wrong costs speed, never correctness. */
bool mt__device_info_is_cpu(const mt_device_ops *ops, const mt_device_info *info)
{
    if (ops->klang == MT_KLANG_C) return true;
    const char *d = info->description;
    return strstr(d, "pthread") || strcasestr(d, "cpu") || strstr(d, "Intel(R) Core") ||
           strstr(d, "Xeon") || strstr(d, "EPYC") || strstr(d, "Ryzen");
}

mt_status mt_device_list(mt_device_info **out, int32_t *count)
{
    mt_device_info *infos = NULL;
    int32_t n = 0, cap = 0;
    for (int i = 0; i < NBACKENDS; i++) {
        int32_t first = n;
        if (g_backends[i].ops->enumerate) g_backends[i].ops->enumerate(&infos, &n, &cap);
        for (int32_t k = first; k < n && infos; k++)
            infos[k].cpu = mt__device_info_is_cpu(g_backends[i].ops, &infos[k]);
    }
    if (n == 0 || !infos) {
        mt_free(infos);
        *out = NULL;
        *count = 0;
        return mt_err_set(MT_ERR_NOMEM, "device list: out of memory enumerating devices");
    }
    *out = infos;
    *count = n;
    return MT_OK;
}

/* ---------------------------------------------------------------- name parsing */

typedef struct parsed_name {
    const mt_device_ops *ops;
    int32_t platform, index;
    char canon[64];
} parsed_name;

/* Parses a non-negative decimal integer of at most 9 digits at *p, advancing p. */
static bool parse_uint(const char **p, int32_t *out)
{
    const char *s = *p;
    int32_t v = 0;
    int nd = 0;
    while (*s >= '0' && *s <= '9') {
        if (++nd > 9) return false;
        v = v * 10 + (*s - '0');
        s++;
    }
    if (nd == 0) return false;
    *out = v;
    *p = s;
    return true;
}

static mt_status malformed(const char *name)
{
    return mt_err_set(MT_ERR_INVALID, "unknown device '%s': expected host, opencl:P:D or cuda:N",
                      name);
}

static mt_status parse_device_name(const char *name, parsed_name *pn)
{
    memset(pn, 0, sizeof *pn);
    if (!name) return mt_err_set(MT_ERR_INVALID, "device name is NULL");
    if (strcmp(name, "host") == 0) {
        pn->ops = &mt__host_ops;
        snprintf(pn->canon, sizeof pn->canon, "host");
        return MT_OK;
    }
    if (strncmp(name, "opencl", 6) == 0 && (name[6] == '\0' || name[6] == ':')) {
        const char *p = name + 6;
        if (*p == ':') {
            p++;
            if (!parse_uint(&p, &pn->platform) || *p++ != ':' || !parse_uint(&p, &pn->index) ||
                *p != '\0')
                return malformed(name);
        }
        pn->ops = find_backend("opencl");
        if (!pn->ops)
            return mt_err_set(MT_ERR_NOT_BUILT,
                              "cannot open '%s': mltrain was built without "
                              "OpenCL; reconfigure with -DMT_WITH_OPENCL=ON",
                              name);
        snprintf(pn->canon, sizeof pn->canon, "opencl:%d:%d", (int)pn->platform, (int)pn->index);
        return MT_OK;
    }
    if (strncmp(name, "cudaemu:", 8) == 0) {
        const char *p = name + 8;
        if (!parse_uint(&p, &pn->index) || *p != '\0') return malformed(name);
#if MT_HAVE_CUDA
        pn->ops = &mt__cudaemu_ops;
        snprintf(pn->canon, sizeof pn->canon, "cudaemu:%d", (int)pn->index);
        return MT_OK;
#else
        return mt_err_set(MT_ERR_NOT_BUILT,
                          "cannot open '%s': the CUDA emulation device needs a build with "
                          "CUDA; reconfigure with -DMT_WITH_CUDA=ON",
                          name);
#endif
    }
    if (strncmp(name, "cuda:", 5) == 0) {
        const char *p = name + 5;
        if (!parse_uint(&p, &pn->index) || *p != '\0') return malformed(name);
#if MT_HAVE_CUDA
        pn->ops = find_backend("cuda");
        snprintf(pn->canon, sizeof pn->canon, "cuda:%d", (int)pn->index);
        return MT_OK;
#else
        return mt_err_set(MT_ERR_NOT_BUILT,
                          "cannot open '%s': mltrain was built without CUDA; "
                          "reconfigure with -DMT_WITH_CUDA=ON",
                          name);
#endif
    }
    return malformed(name);
}

/* Checks that the backend lists pn->canon; ERR_NOT_FOUND naming what exists otherwise. */
static mt_status check_present(const parsed_name *pn)
{
    if (pn->ops == &mt__host_ops) return MT_OK;
#if MT_HAVE_CUDA
    if (pn->ops == &mt__cudaemu_ops) return MT_OK; /* not listed unless asked for; open checks */
    /* the CUDA backend's open explains absence itself (no driver, no device, bad ordinal) */
    if (pn->ops == &mt__cuda_ops) return MT_OK;
#endif
    mt_device_info *infos = NULL;
    int32_t n = 0, cap = 0;
    if (pn->ops->enumerate) pn->ops->enumerate(&infos, &n, &cap);
    bool found = false;
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    for (int32_t i = 0; i < n; i++) {
        if (strcmp(infos[i].name, pn->canon) == 0) found = true;
        mt_strbuf_appendf(&sb, "%s%s", i ? ", " : "", infos[i].name);
    }
    mt_free(infos);
    mt_status st = MT_OK;
    if (!found)
        st = mt_err_set(MT_ERR_NOT_FOUND, "no device '%s'; %s devices present: %s", pn->canon,
                        pn->ops->backend, n ? sb.data : "none");
    mt_strbuf_deinit(&sb);
    return st;
}

/* ---------------------------------------------------------------- the open-device table */

#define MAX_OPEN_DEVICES 64
static pthread_mutex_t g_table_lock = PTHREAD_MUTEX_INITIALIZER;
static mt_device *g_table[MAX_OPEN_DEVICES];

static void kcache_clear(mt_device *dev)
{
    for (int b = 0; b < 256; b++) {
        mt_kcache_entry *e = dev->kcache[b];
        while (e) {
            mt_kcache_entry *next = e->next;
            if (dev->ops->kernel_free && e->kernel) dev->ops->kernel_free(dev, e->kernel);
            mt_free(e->key);
            mt_free(e);
            e = next;
        }
        dev->kcache[b] = NULL;
    }
}

static void device_destroy(mt_device *dev)
{
    /* queued work may still use kernels and buffers freed below; the caller's pending error
     * (a release on an error path) stays what mt_last_error() reports */
    if (dev->ops->sync) {
        mt_status saved = mt_last_status();
        char msg[MT_ERR_MSG_MAX];
        snprintf(msg, sizeof msg, "%s", mt_last_error());
        if (dev->ops->sync(dev) != MT_OK) {
            mt_log(MT_LOG_WARN, "closing device %s: %s", dev->info.name, mt_last_error());
            if (saved != MT_OK)
                mt_err_set(saved, "%s", msg);
            else
                mt_err_clear();
        }
    }
    kcache_clear(dev);
    mt__alloc_deinit(dev);
    if (dev->ops->close) dev->ops->close(dev);
    pthread_mutex_destroy(&dev->kcache_lock);
    pthread_mutex_destroy(&dev->alloc.lock);
    mt_free(dev);
}

/* Creates and opens a new device object (not yet in the table). */
static mt_status device_create(mt_device **out, const parsed_name *pn)
{
    mt_device *dev = mt_calloc(1, sizeof *dev);
    if (!dev) return mt_err_prefix(MT_ERR_NOMEM, "opening device '%s': ", pn->canon);
    dev->ops = pn->ops;
    dev->refcount = 1;
    pthread_mutex_init(&dev->alloc.lock, NULL);
    pthread_mutex_init(&dev->kcache_lock, NULL);
    snprintf(dev->info.name, sizeof dev->info.name, "%s", pn->canon);
    snprintf(dev->info.backend, sizeof dev->info.backend, "%s", pn->ops->backend);
    mt_status st = pn->ops->open ? pn->ops->open(dev, pn->platform, pn->index)
                                 : mt_err_set(MT_ERR_UNSUPPORTED, "backend %s cannot open devices",
                                              pn->ops->backend);
    if (st != MT_OK) {
        pthread_mutex_destroy(&dev->kcache_lock);
        pthread_mutex_destroy(&dev->alloc.lock);
        mt_free(dev);
        return mt_err_prefix(st, "opening device '%s': ", pn->canon);
    }
    dev->info.cpu = mt__device_info_is_cpu(dev->ops, &dev->info);
    /* the table is keyed by the canonical name, whatever the backend wrote */
    snprintf(dev->info.name, sizeof dev->info.name, "%s", pn->canon);
    snprintf(dev->info.backend, sizeof dev->info.backend, "%s", pn->ops->backend);
    *out = dev;
    return MT_OK;
}

mt_status mt_device_open(mt_device **out, const char *name)
{
    *out = NULL;
    parsed_name pn;
    mt_status st = parse_device_name(name, &pn);
    if (st != MT_OK) return st;
    pthread_mutex_lock(&g_table_lock);
    int free_slot = -1;
    for (int i = 0; i < MAX_OPEN_DEVICES; i++) {
        mt_device *d = g_table[i];
        if (!d) {
            if (free_slot < 0) free_slot = i;
            continue;
        }
        if (strcmp(d->info.name, pn.canon) == 0) {
            __atomic_fetch_add(&d->refcount, 1, __ATOMIC_ACQ_REL);
            pthread_mutex_unlock(&g_table_lock);
            *out = d;
            return MT_OK;
        }
    }
    if (free_slot < 0) {
        pthread_mutex_unlock(&g_table_lock);
        return mt_err_set(MT_ERR_RANGE, "cannot open '%s': %d devices are open already", name,
                          MAX_OPEN_DEVICES);
    }
    /* opening under the lock keeps two threads from creating the same device twice */
    st = check_present(&pn);
    mt_device *dev = NULL;
    if (st == MT_OK) st = device_create(&dev, &pn);
    if (st == MT_OK) g_table[free_slot] = dev;
    pthread_mutex_unlock(&g_table_lock);
    *out = dev;
    return st;
}

void mt_device_retain(mt_device *dev)
{
    if (dev) __atomic_fetch_add(&dev->refcount, 1, __ATOMIC_ACQ_REL);
}

void mt_device_release(mt_device *dev)
{
    if (!dev) return;
    /* the decrement to zero and the removal from the table happen under the table lock so a
     * concurrent mt_device_open cannot pick up a dying device */
    pthread_mutex_lock(&g_table_lock);
    int old = __atomic_fetch_sub(&dev->refcount, 1, __ATOMIC_ACQ_REL);
    MT_ASSERT(old > 0);
    if (old == 1) {
        for (int i = 0; i < MAX_OPEN_DEVICES; i++)
            if (g_table[i] == dev) g_table[i] = NULL;
    }
    pthread_mutex_unlock(&g_table_lock);
    if (old == 1) device_destroy(dev);
}

const mt_device_info *mt_device_get_info(const mt_device *dev)
{
    return &dev->info;
}

const char *mt_device_name(const mt_device *dev)
{
    return dev ? dev->info.name : "(none)";
}

bool mt_device_is_host_addressable(const mt_device *dev)
{
    return dev && dev->ops->host_ptr != NULL;
}

mt_status mt_device_sync(mt_device *dev)
{
    if (!dev->ops->sync) return MT_OK;
    mt_status st = dev->ops->sync(dev);
    if (st != MT_OK) return mt_err_prefix(st, "sync of %s: ", dev->info.name);
    return MT_OK;
}

/* ---------------------------------------------------------------- kernel cache */

static mt_kcache_entry *kcache_find(mt_device *dev, uint64_t h, const char *key)
{
    for (mt_kcache_entry *e = dev->kcache[h & 255]; e; e = e->next)
        if (e->hash == h && strcmp(e->key, key) == 0) return e;
    return NULL;
}

/* Generates the source and builds it (outside the cache lock: builds take long). */
static mt_status kcache_build(mt_device *dev, const char *key, mt_ksource_fn gen, void *ctx,
                              void **kernel)
{
    mt_strbuf src;
    mt_strbuf_init(&src);
    char entry[128] = {0};
    mt_status st = gen(ctx, &src, entry, sizeof entry);
    if (st == MT_OK) st = mt_strbuf_status(&src);
    if (st == MT_OK && !src.data)
        st = mt_err_set(MT_ERR_INTERNAL, "kernel '%s': empty source", key);
    if (st == MT_OK) st = dev->ops->kernel_build(dev, src.data, entry, kernel);
    mt_strbuf_deinit(&src);
    return st;
}

mt_status mt__kernel_get(mt_device *dev, const char *key, mt_ksource_fn gen, void *ctx,
                         void **kernel)
{
    *kernel = NULL;
    if (!dev->ops->kernel_build)
        return mt_err_set(MT_ERR_UNSUPPORTED, "device %s cannot build kernels", dev->info.name);
    uint64_t h = mt_hash64(key, strlen(key), 0x6d6c747261696eull);
    pthread_mutex_lock(&dev->kcache_lock);
    mt_kcache_entry *e = kcache_find(dev, h, key);
    pthread_mutex_unlock(&dev->kcache_lock);
    if (e) {
        *kernel = e->kernel;
        return MT_OK;
    }
    void *k = NULL;
    mt_status st = kcache_build(dev, key, gen, ctx, &k);
    if (st != MT_OK) return st;
    mt_kcache_entry *ne = mt_calloc(1, sizeof *ne);
    char *kcopy = mt_strdup(key);
    if (!ne || !kcopy) {
        mt_free(ne);
        mt_free(kcopy);
        if (dev->ops->kernel_free) dev->ops->kernel_free(dev, k);
        return mt_err_prefix(MT_ERR_NOMEM, "kernel cache: ");
    }
    pthread_mutex_lock(&dev->kcache_lock);
    /* another thread may have built the same kernel meanwhile: keep the first one */
    e = kcache_find(dev, h, key);
    if (!e) {
        ne->hash = h;
        ne->key = kcopy;
        ne->kernel = k;
        ne->next = dev->kcache[h & 255];
        dev->kcache[h & 255] = ne;
        e = ne;
        ne = NULL;
        k = NULL;
    }
    pthread_mutex_unlock(&dev->kcache_lock);
    if (ne) {
        mt_free(ne);
        mt_free(kcopy);
        if (dev->ops->kernel_free) dev->ops->kernel_free(dev, k);
    }
    *kernel = e->kernel;
    return MT_OK;
}

/* ---------------------------------------------------------------- streams and events */

void *mt__stream_impl(const mt_stream *s)
{
    return s ? s->impl : NULL;
}

mt_status mt_stream_new(mt_stream **out, mt_device *dev)
{
    *out = NULL;
    mt_stream *s = mt_calloc(1, sizeof *s);
    if (!s) return mt_err_prefix(MT_ERR_NOMEM, "stream on %s: ", dev->info.name);
    if (dev->ops->stream_new) {
        mt_status st = dev->ops->stream_new(dev, &s->impl);
        if (st != MT_OK) {
            mt_free(s);
            return mt_err_prefix(st, "creating a stream on %s: ", dev->info.name);
        }
    }
    mt_device_retain(dev);
    s->dev = dev;
    *out = s;
    return MT_OK;
}

mt_status mt_stream_sync(mt_stream *s)
{
    if (!s) return MT_OK;
    if (s->impl && s->dev->ops->stream_sync) {
        mt_status st = s->dev->ops->stream_sync(s->dev, s->impl);
        if (st != MT_OK) return mt_err_prefix(st, "stream sync on %s: ", s->dev->info.name);
        return MT_OK;
    }
    return mt_device_sync(s->dev);
}

void mt_stream_free(mt_stream *s)
{
    if (!s) return;
    if (mt_stream_sync(s) != MT_OK) mt_log(MT_LOG_WARN, "freeing a stream: %s", mt_last_error());
    if (s->impl && s->dev->ops->stream_free) s->dev->ops->stream_free(s->dev, s->impl);
    mt_device_release(s->dev);
    mt_free(s);
}

mt_status mt_event_new(mt_event **out, mt_device *dev)
{
    *out = NULL;
    mt_event *e = mt_calloc(1, sizeof *e);
    if (!e) return mt_err_prefix(MT_ERR_NOMEM, "event on %s: ", dev->info.name);
    if (dev->ops->event_new) {
        mt_status st = dev->ops->event_new(dev, &e->impl);
        if (st != MT_OK) {
            mt_free(e);
            return mt_err_prefix(st, "creating an event on %s: ", dev->info.name);
        }
    }
    mt_device_retain(dev);
    e->dev = dev;
    *out = e;
    return MT_OK;
}

void mt_event_free(mt_event *e)
{
    if (!e) return;
    if (e->impl && e->dev->ops->event_free) e->dev->ops->event_free(e->dev, e->impl);
    mt_device_release(e->dev);
    mt_free(e);
}

mt_status mt_event_record(mt_event *e, mt_stream *s)
{
    if (s && s->dev != e->dev)
        return mt_err_set(MT_ERR_INVALID, "event of %s recorded on a stream of %s",
                          e->dev->info.name, s->dev->info.name);
    mt_status st;
    if (e->impl && e->dev->ops->event_record) {
        st = e->dev->ops->event_record(e->dev, e->impl, s ? s->impl : NULL);
        if (st != MT_OK) return mt_err_prefix(st, "recording an event on %s: ", e->dev->info.name);
    } else {
        /* in-order backend: the event completes when the queued work does */
        st = s ? mt_stream_sync(s) : mt_device_sync(e->dev);
        if (st != MT_OK) return st;
    }
    e->host_time = mt_now_seconds();
    e->recorded = true;
    return MT_OK;
}

mt_status mt_stream_wait_event(mt_stream *s, mt_event *e)
{
    if (!e->recorded)
        return mt_err_set(MT_ERR_INVALID, "waiting on an event that was never recorded");
    if (e->impl && e->dev->ops->event_wait) {
        mt_status st = e->dev->ops->event_wait(e->dev, s ? s->impl : NULL, e->impl);
        if (st != MT_OK) return mt_err_prefix(st, "stream wait on %s: ", e->dev->info.name);
    }
    return MT_OK;
}

mt_status mt_event_sync(mt_event *e)
{
    if (!e->recorded) return mt_err_set(MT_ERR_INVALID, "syncing an event that was never recorded");
    if (e->impl && e->dev->ops->event_sync) {
        mt_status st = e->dev->ops->event_sync(e->dev, e->impl);
        if (st != MT_OK) return mt_err_prefix(st, "event sync on %s: ", e->dev->info.name);
    }
    return MT_OK;
}

mt_status mt_event_elapsed_ms(float *ms, mt_event *start, mt_event *end)
{
    *ms = 0;
    if (!start->recorded || !end->recorded)
        return mt_err_set(MT_ERR_INVALID, "elapsed time: %s event was never recorded",
                          start->recorded ? "the end" : "the start");
    if (start->dev != end->dev)
        return mt_err_set(MT_ERR_INVALID, "elapsed time between events of %s and %s",
                          start->dev->info.name, end->dev->info.name);
    if (start->impl && end->impl && start->dev->ops->event_elapsed) {
        mt_status st = start->dev->ops->event_elapsed(start->dev, ms, start->impl, end->impl);
        if (st != MT_OK) return mt_err_prefix(st, "elapsed time on %s: ", start->dev->info.name);
        return MT_OK;
    }
    *ms = (float)((end->host_time - start->host_time) * 1000.0);
    return MT_OK;
}
