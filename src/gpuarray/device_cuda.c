/* The CUDA device backend: one mt_device per GPU ("cuda:N", N = the driver's ordinal), driven
 * through the CUDA driver API loaded at run time (cuda_api.c), with kernels compiled by NVRTC
 * (nvrtc.c) and GEMM through cuBLAS (cuda_gemm.c).
 *
 * Context and streams: a device uses its primary context (cuDevicePrimaryCtxRetain), the one
 * the CUDA runtime and cuBLAS use too, and makes it current on the calling thread at every
 * entry point (driver contexts are per thread). Work goes to one compute stream created
 * non-blocking (it does not synchronise with the legacy NULL stream); mt_stream handles are
 * further non-blocking streams. Transfers are cuMemcpy*Async on the stream followed by a
 * synchronisation of that stream, so a write is ordered after the kernels queued before it,
 * the caller may reuse its host memory on return, and a read is complete on return.
 *
 * Pinned staging: host memory from the caller is pageable, which the driver copies through its
 * own bounce buffers, synchronously with the host. Transfers of at least STAGE_MIN_BYTES go instead through
 * a per-device pool of page-locked buffers (cuMemHostAlloc; MLTRAIN_CUDA_PINNED_MB, default 32,
 * split into up to 4 buffers; 0 turns staging off): a write copies chunk i into a free buffer
 * while the DMA of chunk i-1 runs (cuMemcpyHtoDAsync on the copy's stream, an event per buffer
 * marks when its DMA is done); a read queues the chunks' DMAs ahead and copies each one out as
 * its event completes. The semantics stay those above (with MLTRAIN_CUDA_ASYNC_WRITES=1 a
 * staged write returns once its chunks are queued: the data already sits in pinned memory, so
 * the caller may still reuse its own, and the upload overlaps the kernels queued before it;
 * work on other streams then needs an event like after a kernel). Any failure to pin, or of a
 * staged copy, turns staging off for the device (logged) and redoes the copy the direct way;
 * a pool busy with another thread's copy also means a direct copy. The pool is freed at close.
 *
 * Memory: plain cuMemAlloc device memory (never managed memory); the handle of a buffer is the
 * CUdeviceptr itself, which is also what DLPack exports. Freeing synchronises the context first
 * (queued kernels may still use the block); the caching allocator makes frees rare.
 *
 * Kernels: generated CUDA C (extern "C" __global__, buffers as char * with the offset already
 * added, scalars by value, the work size as the last scalar and a grid-stride loop) is
 * compiled by NVRTC to a cubin for the device's exact architecture, or, when NVRTC cannot
 * target it or the cubin does not load, to PTX for the newest architecture NVRTC knows at or
 * below the device's (the driver JIT-compiles it). Images go to the kernel disk cache shared
 * with host kernels (MLTRAIN_CACHE_DIR, else $XDG_CACHE_HOME/mltrain, else ~/.cache/mltrain)
 * under the SHA-256 of the source, the target and NVRTC's version, published atomically with
 * a rename. A launch checks the argument count and sizes against the kernel's parameter list
 * where the driver can report it (cuFuncGetParamInfo), since a mismatch would otherwise
 * corrupt memory silently. MLTRAIN_CUDA_SYNC=1 synchronises after every launch, so that a
 * faulting kernel is named in the error instead of surfacing at a later call.
 *
 * Every failure names the driver call, its CUresult name (cuGetErrorName) and the device.
 * Compiled only when MT_HAVE_CUDA; the registry in device.c refers to mt__cuda_ops. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cuda_api.h"
#include "cuda_interop.h"
#include "nvrtc.h"

extern const mt_device_ops mt__cuda_ops;

#define BLOCK_THREADS 256
#define MAX_PARAMS 1024
/* pinned staging: smaller copies go direct (the driver sends them inline) */
#define STAGE_MIN_BYTES ((size_t)64 << 10)
#define STAGE_DEFAULT_MB 32
#define STAGE_MAX_MB 1024
#define STAGE_BUFS 4

/* ---------------------------------------------------------------- errors */

static mt_cuda_dev *impl_of(mt_device *dev) { return (mt_cuda_dev *)dev->impl; }

/* Records "<call>: <CUresult name> on <device><extra>" with the status the code maps to. */
static mt_status cu_fail(mt_device *dev, CUresult r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static mt_status cu_fail(mt_device *dev, CUresult r, const char *fmt, ...)
{
    char call[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(call, sizeof call, fmt, ap);
    va_end(ap);
    return mt_err_set(mt__cu_status(r), "%s: %s on %s", call, mt__cu_err_name(r),
                      dev ? dev->info.name : "cuda");
}

mt_status mt__cuda_bind(mt_device *dev)
{
    mt_cuda_dev *d = impl_of(dev);
    CUresult r = d->cu->CtxSetCurrent(d->ctx);
    if (r != CUDA_SUCCESS) return cu_fail(dev, r, "cuCtxSetCurrent");
    return MT_OK;
}

CUstream mt__cuda_stream(mt_device *dev, void *stream_impl)
{
    return stream_impl ? (CUstream)stream_impl : impl_of(dev)->stream;
}

static CUdeviceptr dptr(void *handle) { return (CUdeviceptr)(uintptr_t)handle; }

/* ---------------------------------------------------------------- pinned staging */

static mt_status stream_wait_done(mt_device *dev, CUstream s, const char *what, size_t n)
{
    CUresult r = impl_of(dev)->cu->StreamSynchronize(s);
    if (r != CUDA_SUCCESS)
        return cu_fail(dev, r, "cuStreamSynchronize (after %s of %zu bytes)", what, n);
    return MT_OK;
}

static uint64_t g_staged_up, g_staged_down; /* atomic: bytes, all devices */

uint64_t mt__cuda_staged_bytes(bool to_device)
{
    return __atomic_load_n(to_device ? &g_staged_up : &g_staged_down, __ATOMIC_RELAXED);
}

static bool env_flag(const char *name)
{
    const char *e = getenv(name);
    return e && *e && strcmp(e, "0") != 0;
}

/* Reads the settings (device open). The pool itself is allocated on the first large copy. */
static void stage_configure(mt_cuda_stage *sg, const mt_cu_api *cu)
{
    long mb = STAGE_DEFAULT_MB;
    const char *e = getenv("MLTRAIN_CUDA_PINNED_MB");
    if (e && *e) {
        char *end = NULL;
        long v = strtol(e, &end, 10);
        if (end == e || *end || v < 0)
            mt_log(MT_LOG_WARN, "cuda: MLTRAIN_CUDA_PINNED_MB='%s' is not a number of MiB; "
                   "using %d", e, STAGE_DEFAULT_MB);
        else
            mb = v > STAGE_MAX_MB ? STAGE_MAX_MB : v;
    }
    sg->pool_bytes = (size_t)mb << 20;
    sg->async_writes = env_flag("MLTRAIN_CUDA_ASYNC_WRITES");
    /* STAGE_BUFS buffers of whole pages (at least 1 MiB in all, so at least 4 x 256 KiB) */
    sg->chunk = (sg->pool_bytes / STAGE_BUFS) & ~(size_t)4095;
    sg->off = mb == 0 || !cu->MemHostAlloc || !cu->MemFreeHost || sg->chunk < STAGE_MIN_BYTES;
    sg->nbufs = 0; /* allocated on the first large copy (stage_alloc) */
    sg->next = 0;
    sg->tried = false;
}

/* Frees the pool's buffers and events; the context is current and nothing uses them. */
static void stage_release_bufs(mt_cuda_dev *d)
{
    mt_cuda_stage *sg = &d->stage;
    for (int i = 0; i < sg->nbufs; i++) {
        if (sg->ev[i]) d->cu->EventDestroy(sg->ev[i]);
        if (sg->buf[i]) d->cu->MemFreeHost(sg->buf[i]);
        sg->ev[i] = NULL;
        sg->buf[i] = NULL;
        sg->pending[i] = false;
    }
    sg->nbufs = 0;
}

/* Allocates the pool (first large copy; lock held, context current). false: staging off. */
static bool stage_alloc(mt_device *dev, mt_cuda_stage *sg)
{
    mt_cuda_dev *d = impl_of(dev);
    sg->tried = true;
    int want = STAGE_BUFS;
    CUresult r = CUDA_SUCCESS;
    const char *call = "cuMemHostAlloc";
    for (int i = 0; i < want && r == CUDA_SUCCESS; i++) {
        void *p = NULL;
        call = "cuMemHostAlloc";
        r = d->cu->MemHostAlloc(&p, sg->chunk, 0);
        if (r != CUDA_SUCCESS) break;
        CUevent e = NULL;
        call = "cuEventCreate";
        r = d->cu->EventCreate(&e, CU_EVENT_DISABLE_TIMING);
        if (r != CUDA_SUCCESS) {
            d->cu->MemFreeHost(p);
            break;
        }
        sg->buf[i] = p;
        sg->ev[i] = e;
        sg->pending[i] = false;
        sg->nbufs = i + 1;
    }
    if (r != CUDA_SUCCESS || sg->nbufs < 2) {
        mt_log(MT_LOG_WARN, "cuda: no pinned staging on %s (%s of %zu bytes: %s); host<->device "
               "copies go direct", dev->info.name, call, sg->chunk, mt__cu_err_name(r));
        stage_release_bufs(d);
        __atomic_store_n(&sg->off, true, __ATOMIC_RELAXED);
        return false;
    }
    mt_log(MT_LOG_DEBUG, "cuda: %s stages host copies through %d pinned buffers of %zu bytes%s",
           dev->info.name, sg->nbufs, sg->chunk,
           sg->async_writes ? " (writes return once queued)" : "");
    return true;
}

/* Takes the pool for one copy: true with sg->lock held. false (nothing held) when staging is
 * off, the pool is busy with another thread's copy, or pinning fails. */
static bool stage_acquire(mt_device *dev, mt_cuda_stage *sg)
{
    if (__atomic_load_n(&sg->off, __ATOMIC_RELAXED)) return false;
    if (pthread_mutex_trylock(&sg->lock) != 0) return false;
    if (sg->off || (!sg->tried && !stage_alloc(dev, sg))) {
        pthread_mutex_unlock(&sg->lock);
        return false;
    }
    return true;
}

/* A staged copy failed at `call`: waits for what was queued (the buffers may still be read by a
 * DMA), turns staging off for the device and logs why. The caller redoes the copy directly. */
static void stage_broken(mt_device *dev, mt_cuda_stage *sg, CUstream cs, const char *call,
                         CUresult r)
{
    mt_cuda_dev *d = impl_of(dev);
    CUresult r2 = d->cu->StreamSynchronize(cs);
    if (r2 == CUDA_SUCCESS) r2 = d->cu->CtxSynchronize();
    mt_log(MT_LOG_WARN, "cuda: pinned staging on %s failed (%s: %s); host<->device copies go "
           "direct from now on", dev->info.name, call, mt__cu_err_name(r));
    if (r2 == CUDA_SUCCESS) stage_release_bufs(d); /* else freed at close, after a sync */
    for (int i = 0; i < sg->nbufs; i++) sg->pending[i] = false;
    __atomic_store_n(&sg->off, true, __ATOMIC_RELAXED);
}

/* Waits until buffer i is no longer read or written by a DMA. */
static CUresult stage_wait(mt_cuda_dev *d, mt_cuda_stage *sg, int i)
{
    if (!sg->pending[i]) return CUDA_SUCCESS;
    CUresult r = d->cu->EventSynchronize(sg->ev[i]);
    if (r == CUDA_SUCCESS) sg->pending[i] = false;
    return r;
}

/* Host -> device through the pool (lock held). true: done, *st is the result (synchronised
 * unless async writes are on). false: staging failed and is now off; nothing was reported and
 * the caller copies directly (rewriting the same bytes is harmless). */
static bool stage_write(mt_device *dev, mt_cuda_stage *sg, CUstream cs, CUdeviceptr dst,
                        const void *src, size_t n, mt_status *st)
{
    mt_cuda_dev *d = impl_of(dev);
    const char *call = "";
    CUresult r = CUDA_SUCCESS;
    for (size_t done = 0; done < n;) {
        size_t m = n - done < sg->chunk ? n - done : sg->chunk;
        int i = sg->next;
        sg->next = (i + 1) % sg->nbufs;
        call = "cuEventSynchronize";
        if ((r = stage_wait(d, sg, i)) != CUDA_SUCCESS) goto fail;
        memcpy(sg->buf[i], (const char *)src + done, m);
        call = "cuMemcpyHtoDAsync";
        if ((r = d->cu->MemcpyHtoDAsync(dst + done, sg->buf[i], m, cs)) != CUDA_SUCCESS)
            goto fail;
        call = "cuEventRecord";
        sg->pending[i] = true; /* even if the record fails: a DMA may read the buffer */
        if ((r = d->cu->EventRecord(sg->ev[i], cs)) != CUDA_SUCCESS) goto fail;
        done += m;
    }
    sg->up_bytes += n;
    __atomic_fetch_add(&g_staged_up, n, __ATOMIC_RELAXED);
    *st = sg->async_writes ? MT_OK : stream_wait_done(dev, cs, "a staged write", n);
    return true;
fail:
    stage_broken(dev, sg, cs, call, r);
    return false;
}

/* Device -> host through the pool (lock held): the DMAs of up to nbufs chunks are queued ahead,
 * each chunk is copied out once its event completes. Return value as stage_write's. */
static bool stage_read(mt_device *dev, mt_cuda_stage *sg, CUstream cs, void *dst,
                       CUdeviceptr src, size_t n, mt_status *st)
{
    mt_cuda_dev *d = impl_of(dev);
    size_t at[MT_CUDA_STAGE_MAX_BUFS], len[MT_CUDA_STAGE_MAX_BUFS]; /* chunk in buffer i */
    int order[MT_CUDA_STAGE_MAX_BUFS];                             /* buffers in queue order */
    int queued = 0, head = 0;
    const char *call = "";
    CUresult r = CUDA_SUCCESS;
    size_t issued = 0;
    while (issued < n || queued > 0) {
        if (issued < n && queued < sg->nbufs) {
            int i = sg->next;
            sg->next = (i + 1) % sg->nbufs;
            call = "cuEventSynchronize";
            if ((r = stage_wait(d, sg, i)) != CUDA_SUCCESS) goto fail;
            size_t m = n - issued < sg->chunk ? n - issued : sg->chunk;
            call = "cuMemcpyDtoHAsync";
            if ((r = d->cu->MemcpyDtoHAsync(sg->buf[i], src + issued, m, cs)) != CUDA_SUCCESS)
                goto fail;
            sg->pending[i] = true;
            call = "cuEventRecord";
            if ((r = d->cu->EventRecord(sg->ev[i], cs)) != CUDA_SUCCESS) goto fail;
            at[i] = issued;
            len[i] = m;
            order[(head + queued) % MT_CUDA_STAGE_MAX_BUFS] = i;
            queued++;
            issued += m;
            continue;
        }
        /* every buffer is in flight (or all is issued): copy out the oldest chunk */
        int i = order[head];
        call = "cuEventSynchronize";
        if ((r = stage_wait(d, sg, i)) != CUDA_SUCCESS) goto fail;
        memcpy((char *)dst + at[i], sg->buf[i], len[i]);
        head = (head + 1) % MT_CUDA_STAGE_MAX_BUFS;
        queued--;
    }
    sg->down_bytes += n;
    __atomic_fetch_add(&g_staged_down, n, __ATOMIC_RELAXED);
    *st = MT_OK;
    return true;
fail:
    stage_broken(dev, sg, cs, call, r);
    return false;
}

/* Device close (context current, streams synchronised by the caller): frees the pool. */
static void stage_free(mt_device *dev)
{
    mt_cuda_dev *d = impl_of(dev);
    mt_cuda_stage *sg = &d->stage;
    pthread_mutex_lock(&sg->lock);
    if (sg->nbufs > 0 || sg->up_bytes || sg->down_bytes)
        mt_log(MT_LOG_DEBUG, "cuda: %s staged %llu bytes to the device and %llu from it through "
               "pinned memory", dev->info.name, (unsigned long long)sg->up_bytes,
               (unsigned long long)sg->down_bytes);
    if (sg->nbufs > 0) {
        /* staged copies may have run on any stream */
        CUresult r = d->cu->CtxSynchronize();
        if (r != CUDA_SUCCESS)
            mt_log(MT_LOG_WARN, "closing %s: cuCtxSynchronize: %s", dev->info.name,
                   mt__cu_err_name(r));
        stage_release_bufs(d);
    }
    pthread_mutex_unlock(&sg->lock);
}

/* ---------------------------------------------------------------- enumerate / open */

static int attr(const mt_cu_api *cu, CUdevice d, CUdevice_attribute a)
{
    int v = 0;
    if (cu->DeviceGetAttribute(&v, a, d) != CUDA_SUCCESS) v = 0;
    return v;
}

/* Fills info for ordinal idx; false when the driver cannot describe it. */
static bool fill_info(mt_device_info *info, const mt_cu_api *cu, int idx, int *arch_out,
                      int *sms_out)
{
    CUdevice d;
    if (cu->DeviceGet(&d, idx) != CUDA_SUCCESS) return false;
    memset(info, 0, sizeof *info);
    snprintf(info->name, sizeof info->name, "cuda:%d", idx);
    snprintf(info->backend, sizeof info->backend, "cuda");
    char name[128] = "";
    if (cu->DeviceGetName(name, (int)sizeof name - 1, d) != CUDA_SUCCESS)
        snprintf(name, sizeof name, "unknown NVIDIA GPU");
    name[sizeof name - 1] = 0;
    size_t mem = 0;
    if (cu->DeviceTotalMem(&mem, d) != CUDA_SUCCESS) mem = 0;
    int major = attr(cu, d, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR);
    int minor = attr(cu, d, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
    int sms = attr(cu, d, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT);
    int drv = 0;
    if (cu->DriverGetVersion(&drv) != CUDA_SUCCESS) drv = 0;
    snprintf(info->description, sizeof info->description,
             "NVIDIA %s, sm_%d%d, %d SMs (CUDA driver %d.%d)", name, major, minor, sms,
             drv / 1000, (drv % 1000) / 10);
    info->global_mem = mem;
    info->max_alloc = mem;
    info->compute_units = sms;
    info->fp64 = true;
    info->fp16 = major >= 6;
    if (arch_out) *arch_out = 10 * major + minor;
    if (sms_out) *sms_out = sms;
    return true;
}

static void cuda_enumerate(mt_device_info **infos, int32_t *count, int32_t *cap)
{
    const mt_cu_api *cu = mt__cu_api(NULL, 0);
    if (!cu) return; /* no driver: no devices */
    int n = 0;
    if (cu->DeviceGetCount(&n) != CUDA_SUCCESS) return;
    for (int i = 0; i < n; i++) {
        if (*count == *cap) {
            int32_t ncap = *cap ? *cap * 2 : 8;
            mt_device_info *grown = mt_realloc(*infos, sizeof **infos * (size_t)ncap);
            if (!grown) return;
            *infos = grown;
            *cap = ncap;
        }
        if (fill_info(&(*infos)[*count], cu, i, NULL, NULL)) (*count)++;
    }
}

static mt_status cuda_open(mt_device *dev, int32_t platform, int32_t idx)
{
    (void)platform;
    char why[1100];
    const mt_cu_api *cu = mt__cu_api(why, sizeof why);
    if (!cu) return mt_err_set(MT_ERR_NOT_FOUND, "%s", why);
    int n = 0;
    CUresult r = cu->DeviceGetCount(&n);
    if (r != CUDA_SUCCESS) return cu_fail(dev, r, "cuDeviceGetCount");
    if (n == 0) return mt_err_set(MT_ERR_NOT_FOUND, "CUDA driver reports no device");
    if (idx < 0 || idx >= n)
        return mt_err_set(MT_ERR_NOT_FOUND, "no device cuda:%d; the CUDA driver reports %d "
                          "device%s (cuda:0..cuda:%d)", (int)idx, n, n == 1 ? "" : "s", n - 1);
    mt_cuda_dev *d = mt_calloc(1, sizeof *d);
    if (!d) return mt_err_set(MT_ERR_NOMEM, "opening cuda:%d: out of host memory", (int)idx);
    d->cu = cu;
    d->ordinal = idx;
    mt_status st = MT_OK;
    if (!fill_info(&dev->info, cu, idx, &d->arch, &d->sm_count)) {
        st = mt_err_set(MT_ERR_DEVICE, "cuDeviceGet(%d) failed", (int)idx);
        goto fail_free;
    }
    if (d->sm_count < 1) d->sm_count = 1;
    r = cu->DeviceGet(&d->device, idx);
    if (r != CUDA_SUCCESS) {
        st = cu_fail(dev, r, "cuDeviceGet(%d)", (int)idx);
        goto fail_free;
    }
    d->max_threads_per_block = attr(cu, d->device, CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK);
    if (d->max_threads_per_block < 32) d->max_threads_per_block = BLOCK_THREADS;
    r = cu->DevicePrimaryCtxRetain(&d->ctx, d->device);
    if (r != CUDA_SUCCESS) {
        st = cu_fail(dev, r, "cuDevicePrimaryCtxRetain");
        goto fail_free;
    }
    r = cu->CtxSetCurrent(d->ctx);
    if (r != CUDA_SUCCESS) {
        st = cu_fail(dev, r, "cuCtxSetCurrent");
        goto fail_ctx;
    }
    r = cu->StreamCreate(&d->stream, CU_STREAM_NON_BLOCKING);
    if (r != CUDA_SUCCESS) {
        st = cu_fail(dev, r, "cuStreamCreate");
        goto fail_ctx;
    }
    if (pthread_mutex_init(&d->blas_lock, NULL) != 0) {
        st = mt_err_set(MT_ERR_INTERNAL, "opening cuda:%d: pthread_mutex_init failed", (int)idx);
        goto fail_stream;
    }
    if (pthread_mutex_init(&d->stage.lock, NULL) != 0) {
        pthread_mutex_destroy(&d->blas_lock);
        st = mt_err_set(MT_ERR_INTERNAL, "opening cuda:%d: pthread_mutex_init failed", (int)idx);
        goto fail_stream;
    }
    stage_configure(&d->stage, cu);
    d->tf32 = env_flag("MLTRAIN_CUDA_TF32");
    d->dnn_benchmark = env_flag("MLTRAIN_CUDNN_BENCHMARK");
    dev->impl = d;
    mt_log(MT_LOG_DEBUG, "cuda: opened %s: %s", dev->info.name, dev->info.description);
    return MT_OK;

fail_stream:
    cu->StreamDestroy(d->stream);
fail_ctx:
    cu->DevicePrimaryCtxRelease(d->device);
fail_free:
    mt_free(d);
    return st;
}

static void cuda_close(mt_device *dev)
{
    mt_cuda_dev *d = impl_of(dev);
    if (!d) return;
    if (mt__cuda_bind(dev) == MT_OK) {
        CUresult r = d->cu->StreamSynchronize(d->stream);
        if (r != CUDA_SUCCESS)
            mt_log(MT_LOG_WARN, "closing %s: cuStreamSynchronize: %s", dev->info.name,
                   mt__cu_err_name(r));
        mt__cuda_gemm_close(dev);
        mt__cuda_dnn_close(dev);
        stage_free(dev);
        d->cu->StreamDestroy(d->stream);
    } else if (d->stage.nbufs > 0) {
        mt_log(MT_LOG_WARN, "closing %s: %d pinned staging buffers not freed (no context)",
               dev->info.name, d->stage.nbufs);
    }
    d->cu->DevicePrimaryCtxRelease(d->device);
    pthread_mutex_destroy(&d->stage.lock);
    pthread_mutex_destroy(&d->blas_lock);
    mt_free(d);
    dev->impl = NULL;
}

/* ---------------------------------------------------------------- memory */

static mt_status cuda_alloc(mt_device *dev, size_t nbytes, void **handle)
{
    mt_cuda_dev *d = impl_of(dev);
    *handle = NULL;
    mt_status st = mt__cuda_bind(dev);
    if (st != MT_OK) return st;
    /* cuMemAlloc refuses 0 bytes; an empty buffer still needs a valid pointer */
    size_t n = nbytes ? nbytes : 256;
    CUdeviceptr p = 0;
    CUresult r = d->cu->MemAlloc(&p, n);
    if (r != CUDA_SUCCESS) {
        size_t fr = 0, tot = 0;
        if (d->cu->MemGetInfo(&fr, &tot) != CUDA_SUCCESS) fr = tot = 0;
        return cu_fail(dev, r, "cuMemAlloc(%zu bytes; %zu of %zu bytes free)", nbytes, fr, tot);
    }
    *handle = (void *)(uintptr_t)p;
    return MT_OK;
}

static void cuda_free(mt_device *dev, void *handle)
{
    mt_cuda_dev *d = impl_of(dev);
    if (!handle || mt__cuda_bind(dev) != MT_OK) return;
    /* queued work on any stream may still use the block */
    CUresult r = d->cu->CtxSynchronize();
    if (r != CUDA_SUCCESS)
        mt_log(MT_LOG_WARN, "freeing device memory on %s: cuCtxSynchronize: %s", dev->info.name,
               mt__cu_err_name(r));
    r = d->cu->MemFree(dptr(handle));
    if (r != CUDA_SUCCESS)
        mt_log(MT_LOG_WARN, "cuMemFree on %s: %s", dev->info.name, mt__cu_err_name(r));
}

static mt_status direct_write(mt_device *dev, CUstream cs, void *dst, size_t off,
                             const void *src, size_t n)
{
    CUresult r = impl_of(dev)->cu->MemcpyHtoDAsync(dptr(dst) + off, src, n, cs);
    if (r != CUDA_SUCCESS)
        return cu_fail(dev, r, "cuMemcpyHtoDAsync(%zu bytes at offset %zu)", n, off);
    /* the caller may reuse src on return */
    return stream_wait_done(dev, cs, "a write", n);
}

static mt_status direct_read(mt_device *dev, CUstream cs, void *dst, void *src, size_t off,
                             size_t n)
{
    CUresult r = impl_of(dev)->cu->MemcpyDtoHAsync(dst, dptr(src) + off, n, cs);
    if (r != CUDA_SUCCESS)
        return cu_fail(dev, r, "cuMemcpyDtoHAsync(%zu bytes at offset %zu)", n, off);
    return stream_wait_done(dev, cs, "a read", n);
}

static mt_status cuda_write(mt_device *dev, void *dst, size_t off, const void *src, size_t n,
                            mt_stream *s)
{
    if (n == 0) return MT_OK;
    mt_status st = mt__cuda_bind(dev);
    if (st != MT_OK) return st;
    CUstream cs = mt__cuda_stream(dev, mt__stream_impl(s));
    mt_cuda_stage *sg = &impl_of(dev)->stage;
    if (n >= STAGE_MIN_BYTES && stage_acquire(dev, sg)) {
        bool done = stage_write(dev, sg, cs, dptr(dst) + off, src, n, &st);
        pthread_mutex_unlock(&sg->lock);
        if (done) return st;
    }
    return direct_write(dev, cs, dst, off, src, n);
}

static mt_status cuda_read(mt_device *dev, void *dst, void *src, size_t off, size_t n,
                           mt_stream *s)
{
    if (n == 0) return MT_OK;
    mt_status st = mt__cuda_bind(dev);
    if (st != MT_OK) return st;
    CUstream cs = mt__cuda_stream(dev, mt__stream_impl(s));
    mt_cuda_stage *sg = &impl_of(dev)->stage;
    if (n >= STAGE_MIN_BYTES && stage_acquire(dev, sg)) {
        bool done = stage_read(dev, sg, cs, dst, dptr(src) + off, n, &st);
        pthread_mutex_unlock(&sg->lock);
        if (done) return st;
    }
    return direct_read(dev, cs, dst, src, off, n);
}

static mt_status cuda_copy(mt_device *dev, void *dst, size_t doff, void *src, size_t soff,
                           size_t n, mt_stream *s)
{
    if (n == 0 || (dst == src && doff == soff)) return MT_OK;
    mt_cuda_dev *d = impl_of(dev);
    mt_status st = mt__cuda_bind(dev);
    if (st != MT_OK) return st;
    CUstream cs = mt__cuda_stream(dev, mt__stream_impl(s));
    CUdeviceptr dp = dptr(dst) + doff, sp = dptr(src) + soff;
    bool overlap = dp < sp + n && sp < dp + n;
    if (!overlap) {
        CUresult r = d->cu->MemcpyDtoDAsync(dp, sp, n, cs);
        if (r != CUDA_SUCCESS) return cu_fail(dev, r, "cuMemcpyDtoDAsync(%zu bytes)", n);
        return MT_OK;
    }
    /* overlapping ranges are undefined for cuMemcpy: bounce through a temporary (memmove) */
    void *tmp = NULL;
    st = cuda_alloc(dev, n, &tmp);
    if (st != MT_OK) return st;
    CUresult r = d->cu->MemcpyDtoDAsync(dptr(tmp), sp, n, cs);
    if (r == CUDA_SUCCESS) r = d->cu->MemcpyDtoDAsync(dp, dptr(tmp), n, cs);
    if (r == CUDA_SUCCESS) r = d->cu->StreamSynchronize(cs);
    cuda_free(dev, tmp);
    if (r != CUDA_SUCCESS) return cu_fail(dev, r, "cuMemcpyDtoDAsync(%zu overlapping bytes)", n);
    return MT_OK;
}

/* ---------------------------------------------------------------- kernel disk cache */

static uint64_t g_disk_hits; /* atomic */

uint64_t mt__cuda_disk_cache_hits(void)
{
    return __atomic_load_n(&g_disk_hits, __ATOMIC_RELAXED);
}

/* Name of the cache entry for (source, target, NVRTC version); the directory, its checks and
 * the entries' verification are the shared kernel cache's (mt__kcache_*, hostcc.c). */
static mt_status cache_name(const char *source, int arch, bool cubin, char *out, size_t len)
{
    int major = 0, minor = 0;
    mt_status st = mt__nvrtc_version(&major, &minor);
    if (st != MT_OK) return st;
    char target[32], ver[32];
    snprintf(target, sizeof target, "%s_%d", cubin ? "sm" : "compute", arch);
    snprintf(ver, sizeof ver, "nvrtc %d.%d", major, minor);
    /* the options are fixed in nvrtc.c; bump the tag when they change */
    const char *parts[] = {"mltrain-cuda/3", "-std=c++17 --fmad=false -default-device", target,
                           ver, source};
    mt_sha256 s;
    mt_sha256_init(&s);
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        mt_sha256_update(&s, parts[i], strlen(parts[i]) + 1);
    uint8_t dg[32];
    mt_sha256_final(&s, dg);
    char hex[65];
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", dg[i]);
    snprintf(out, len, "%s.%s", hex, cubin ? "cubin" : "ptx");
    return MT_OK;
}

/* The image for (source, target): from the disk cache (verified), or compiled and published
 * there. A refused cache directory means no disk cache for this process. */
static mt_status get_image(const char *source, const char *entry, int arch, bool cubin,
                           bool skip_cache, char **img, size_t *len, char *path, size_t plen,
                           bool *cached)
{
    *img = NULL;
    *cached = false;
    path[0] = 0;
    char kname[80];
    mt_status st = cache_name(source, arch, cubin, kname, sizeof kname);
    if (st == MT_ERR_NOT_FOUND) return st; /* no NVRTC */
    mt_kcache kc;
    bool have = st == MT_OK && mt__kcache_open(&kc) == MT_OK;
    if (!have) {
        mt_log(MT_LOG_WARN, "cuda: kernel disk cache unavailable (%s)", mt_last_error());
        mt_err_clear();
    } else if (kc.temp) { /* refused (warned once): compiled images stay in memory */
        mt__kcache_close(&kc);
        have = false;
    }
    if (have) snprintf(path, plen, "%s/%s", kc.dir, kname);
    if (have && !skip_cache && mt__kcache_read(&kc, kname, MT_KCACHE_ANY, img, len, path, plen)) {
        *cached = true;
        return MT_OK;
    }
    char name[160];
    snprintf(name, sizeof name, "%s.cu", entry);
    double t0 = mt_now_seconds();
    st = mt__nvrtc_compile(source, name, arch, cubin, img, len);
    if (st != MT_OK) return st;
    mt_log(MT_LOG_DEBUG, "cuda: compiled %s for %s_%d in %.3f s", entry, cubin ? "sm" : "compute",
           arch, mt_now_seconds() - t0);
    if (have) {
        /* PTX: len counts the NUL, which the loader needs; store it too */
        snprintf(path, plen, "%s/%s", kc.dir, kname);
        if (mt__kcache_write(&kc, kname, *img, *len) != MT_OK) {
            mt_log(MT_LOG_WARN, "cuda: cannot store %s in the kernel cache (%s)", entry,
                   mt_last_error());
            mt_err_clear();
        }
    }
    return MT_OK;
}

/* ---------------------------------------------------------------- kernels */

typedef struct cuda_kernel {
    CUmodule mod;
    CUfunction fn;
    int block;    /* threads per block */
    int nparams;  /* -1 when the driver cannot report the parameter list */
    uint16_t *psize;
    char entry[128];
} cuda_kernel;

/* Loads an image and finds the entry. */
static CUresult load_module(mt_cuda_dev *d, const char *img, const char *entry, CUmodule *mod,
                            CUfunction *fn, const char **failed_call)
{
    *failed_call = "cuModuleLoadData";
    CUresult r = d->cu->ModuleLoadData(mod, img);
    if (r != CUDA_SUCCESS) return r;
    *failed_call = "cuModuleGetFunction";
    r = d->cu->ModuleGetFunction(fn, *mod, entry);
    if (r != CUDA_SUCCESS) {
        d->cu->ModuleUnload(*mod);
        *mod = NULL;
    }
    return r;
}

/* Compiles (or fetches) and loads one target; a cached image that fails to load is rebuilt
 * once. */
static mt_status build_target(mt_device *dev, const char *source, const char *entry, int arch,
                              bool cubin, cuda_kernel *k)
{
    mt_cuda_dev *d = impl_of(dev);
    char path[4200];
    for (int attempt = 0; attempt < 2; attempt++) {
        char *img = NULL;
        size_t len = 0;
        bool cached = false;
        mt_status st = get_image(source, entry, arch, cubin, attempt > 0, &img, &len, path,
                                 sizeof path, &cached);
        if (st != MT_OK) return st;
        const char *call = "";
        CUresult r = load_module(d, img, entry, &k->mod, &k->fn, &call);
        mt_free(img);
        if (r == CUDA_SUCCESS) {
            if (cached) __atomic_fetch_add(&g_disk_hits, 1, __ATOMIC_RELAXED);
            return MT_OK;
        }
        if (!cached || attempt > 0)
            return cu_fail(dev, r, "%s(kernel '%s', %s_%d image)", call, entry,
                           cubin ? "sm" : "compute", arch);
        /* the rebuild republishes it (never removed here: it may be a shared read-only one) */
        mt_log(MT_LOG_WARN, "cuda: cached image %s does not load (%s); rebuilding", path,
               mt__cu_err_name(r));
    }
    return mt_err_set(MT_ERR_INTERNAL, "cuda: unreachable");
}

/* The newest architecture NVRTC supports at or below arch, or 0. */
static int ptx_arch(int arch, bool *exact)
{
    int archs[64];
    int32_t n = mt__nvrtc_archs(archs, 64);
    int best = 0;
    *exact = false;
    for (int32_t i = 0; i < n; i++) {
        if (archs[i] == arch) *exact = true;
        if (archs[i] <= arch && archs[i] > best) best = archs[i];
    }
    return best;
}

/* Reads the parameter list and the launch bound of a loaded kernel. */
static mt_status kernel_meta(mt_device *dev, cuda_kernel *k)
{
    mt_cuda_dev *d = impl_of(dev);
    int maxt = 0;
    CUresult r = d->cu->FuncGetAttribute(&maxt, CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK, k->fn);
    if (r != CUDA_SUCCESS)
        return cu_fail(dev, r, "cuFuncGetAttribute(kernel '%s', MAX_THREADS_PER_BLOCK)",
                       k->entry);
    int b = BLOCK_THREADS;
    if (maxt > 0 && maxt < b) b = maxt >= 32 ? maxt / 32 * 32 : maxt;
    k->block = b > 0 ? b : 1;
    k->nparams = -1;
    if (!d->cu->FuncGetParamInfo) return MT_OK;
    uint16_t sizes[MAX_PARAMS];
    int n = 0;
    for (; n < MAX_PARAMS; n++) {
        size_t off = 0, sz = 0;
        if (d->cu->FuncGetParamInfo(k->fn, (size_t)n, &off, &sz) != CUDA_SUCCESS) break;
        sizes[n] = (uint16_t)sz;
    }
    if (n == MAX_PARAMS) return MT_OK; /* implausible: do not check */
    k->psize = mt_malloc(sizeof *k->psize * (size_t)(n ? n : 1));
    if (!k->psize) return MT_ERR_NOMEM;
    memcpy(k->psize, sizes, sizeof *sizes * (size_t)n);
    k->nparams = n;
    return MT_OK;
}

static void cuda_kernel_free(mt_device *dev, void *kernel)
{
    cuda_kernel *k = kernel;
    if (!k) return;
    if (k->mod && mt__cuda_bind(dev) == MT_OK) {
        CUresult r = impl_of(dev)->cu->ModuleUnload(k->mod);
        if (r != CUDA_SUCCESS)
            mt_log(MT_LOG_WARN, "cuModuleUnload(kernel '%s') on %s: %s", k->entry,
                   dev->info.name, mt__cu_err_name(r));
    }
    mt_free(k->psize);
    mt_free(k);
}

static mt_status cuda_kernel_build(mt_device *dev, const char *source, const char *entry,
                                   void **kernel)
{
    mt_cuda_dev *d = impl_of(dev);
    *kernel = NULL;
    char why[600];
    if (!mt__nvrtc_available(why, sizeof why))
        return mt_err_set(MT_ERR_NOT_FOUND, "building kernel '%s' on %s: the CUDA compiler is "
                          "not available: %s", entry, dev->info.name, why);
    mt_status st = mt__cuda_bind(dev);
    if (st != MT_OK) return st;
    cuda_kernel *k = mt_calloc(1, sizeof *k);
    if (!k) return mt_err_prefix(MT_ERR_NOMEM, "building kernel '%s': ", entry);
    snprintf(k->entry, sizeof k->entry, "%s", entry);
    bool exact = false;
    int parch = ptx_arch(d->arch, &exact);
    st = MT_ERR_NOT_FOUND;
    char first_err[MT_ERR_MSG_MAX] = "";
    if (exact) {
        st = build_target(dev, source, entry, d->arch, true, k);
        if (st != MT_OK) {
            snprintf(first_err, sizeof first_err, "%s", mt_last_error());
            mt_log(MT_LOG_DEBUG, "cuda: cubin for sm_%d failed (%s); trying PTX", d->arch,
                   first_err);
        }
    }
    if (st != MT_OK) {
        if (parch == 0) {
            st = mt_err_set(MT_ERR_UNSUPPORTED, "building kernel '%s' on %s: NVRTC cannot target "
                            "sm_%d or any older architecture", entry, dev->info.name, d->arch);
        } else {
            st = build_target(dev, source, entry, parch, false, k);
            if (st != MT_OK && first_err[0] && st != MT_ERR_COMPILE)
                mt_err_prefix(st, "(cubin: %s) ", first_err);
        }
    }
    if (st == MT_OK) st = kernel_meta(dev, k);
    if (st != MT_OK) {
        cuda_kernel_free(dev, k);
        return st;
    }
    *kernel = k;
    return MT_OK;
}

static bool env_sync_launches(void)
{
    static int cached = -1; /* every thread computes the same value */
    int v = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (v < 0) {
        const char *e = getenv("MLTRAIN_CUDA_SYNC");
        v = e && *e && strcmp(e, "0") != 0;
        __atomic_store_n(&cached, v, __ATOMIC_RELAXED);
    }
    return v == 1;
}

/* ERR_INVALID unless the launch's arguments match the kernel's parameter list. */
static mt_status check_args(mt_device *dev, const cuda_kernel *k, int32_t nargs,
                            const mt_karg *args)
{
    for (int32_t i = 0; i < nargs; i++) {
        const mt_karg *a = &args[i];
        if (a->kind == MT_KARG_BUFFER && (!a->buf || !a->buf->handle))
            return mt_err_set(MT_ERR_INVALID, "kernel '%s' on %s: argument %d has no buffer",
                              k->entry, dev->info.name, (int)i);
        if (a->kind == MT_KARG_SCALAR && (!a->scalar || (a->size != 4 && a->size != 8 &&
                                                         a->size != 2 && a->size != 1)))
            return mt_err_set(MT_ERR_INVALID, "kernel '%s' on %s: scalar argument %d has size %zu",
                              k->entry, dev->info.name, (int)i, a->size);
    }
    if (k->nparams < 0) return MT_OK;
    if (k->nparams != nargs)
        return mt_err_set(MT_ERR_INVALID, "kernel '%s' on %s takes %d parameters but the launch "
                          "passes %d", k->entry, dev->info.name, k->nparams, (int)nargs);
    for (int32_t i = 0; i < nargs; i++) {
        size_t want = args[i].kind == MT_KARG_BUFFER ? sizeof(CUdeviceptr) : args[i].size;
        if (k->psize[i] != want)
            return mt_err_set(MT_ERR_INVALID, "kernel '%s' on %s: parameter %d has %u bytes but "
                              "the launch passes %zu (%s)", k->entry, dev->info.name, (int)i,
                              (unsigned)k->psize[i], want,
                              args[i].kind == MT_KARG_BUFFER ? "a buffer" : "a scalar");
    }
    return MT_OK;
}

static mt_status cuda_kernel_launch(mt_device *dev, void *kernel, int32_t nargs,
                                    const mt_karg *args, int64_t nwork, int64_t grain,
                                    mt_stream *s)
{
    (void)grain;
    cuda_kernel *k = kernel;
    mt_cuda_dev *d = impl_of(dev);
    if (nwork < 0)
        return mt_err_set(MT_ERR_INVALID, "kernel '%s' on %s: negative work size %lld", k->entry,
                          dev->info.name, (long long)nwork);
    if (nargs < 0 || nargs > MAX_PARAMS)
        return mt_err_set(MT_ERR_INVALID, "kernel '%s' on %s: %d arguments", k->entry,
                          dev->info.name, (int)nargs);
    mt_status st = check_args(dev, k, nargs, args);
    if (st != MT_OK || nwork == 0) return st;
    st = mt__cuda_bind(dev);
    if (st != MT_OK) return st;
    CUdeviceptr *ptrs = mt_calloc((size_t)(nargs ? nargs : 1), sizeof *ptrs);
    void **params = mt_calloc((size_t)(nargs ? nargs : 1), sizeof *params);
    if (!ptrs || !params) {
        mt_free(ptrs);
        mt_free(params);
        return mt_err_prefix(MT_ERR_NOMEM, "launching kernel '%s': ", k->entry);
    }
    for (int32_t i = 0; i < nargs; i++) {
        if (args[i].kind == MT_KARG_BUFFER) {
            ptrs[i] = dptr(args[i].buf->handle) + args[i].offset;
            params[i] = &ptrs[i];
        } else {
            params[i] = (void *)args[i].scalar;
        }
    }
    /* grid-stride kernels: enough blocks to fill the GPU, never more than the work needs */
    int64_t block = k->block;
    int64_t blocks = (nwork + block - 1) / block;
    int64_t cap = (int64_t)d->sm_count * 32;
    if (blocks > cap) blocks = cap;
    if (blocks < 1) blocks = 1;
    CUstream cs = mt__cuda_stream(dev, mt__stream_impl(s));
    CUresult r = d->cu->LaunchKernel(k->fn, (unsigned)blocks, 1, 1, (unsigned)block, 1, 1, 0, cs,
                                     params, NULL);
    mt_free(ptrs);
    mt_free(params);
    if (r != CUDA_SUCCESS)
        return cu_fail(dev, r, "cuLaunchKernel(kernel '%s', %lld blocks of %lld threads, nwork "
                       "%lld)", k->entry, (long long)blocks, (long long)block, (long long)nwork);
    if (env_sync_launches()) {
        r = d->cu->StreamSynchronize(cs);
        if (r != CUDA_SUCCESS)
            return cu_fail(dev, r, "kernel '%s' (nwork %lld) failed: cuStreamSynchronize",
                           k->entry, (long long)nwork);
    }
    return MT_OK;
}

static mt_status cuda_sync(mt_device *dev)
{
    mt_status st = mt__cuda_bind(dev);
    if (st != MT_OK) return st;
    CUresult r = impl_of(dev)->cu->CtxSynchronize();
    if (r != CUDA_SUCCESS) return cu_fail(dev, r, "cuCtxSynchronize");
    return MT_OK;
}

/* ---------------------------------------------------------------- streams and events */

static mt_status cuda_stream_new(mt_device *dev, void **stream)
{
    *stream = NULL;
    mt_status st = mt__cuda_bind(dev);
    if (st != MT_OK) return st;
    CUstream s = NULL;
    CUresult r = impl_of(dev)->cu->StreamCreate(&s, CU_STREAM_NON_BLOCKING);
    if (r != CUDA_SUCCESS) return cu_fail(dev, r, "cuStreamCreate");
    *stream = s;
    return MT_OK;
}

static void cuda_stream_free(mt_device *dev, void *stream)
{
    if (!stream || mt__cuda_bind(dev) != MT_OK) return;
    CUresult r = impl_of(dev)->cu->StreamDestroy((CUstream)stream);
    if (r != CUDA_SUCCESS)
        mt_log(MT_LOG_WARN, "cuStreamDestroy on %s: %s", dev->info.name, mt__cu_err_name(r));
}

static mt_status cuda_stream_sync(mt_device *dev, void *stream)
{
    mt_status st = mt__cuda_bind(dev);
    if (st != MT_OK) return st;
    CUresult r = impl_of(dev)->cu->StreamSynchronize(mt__cuda_stream(dev, stream));
    if (r != CUDA_SUCCESS) return cu_fail(dev, r, "cuStreamSynchronize");
    return MT_OK;
}

static mt_status cuda_event_new(mt_device *dev, void **event)
{
    *event = NULL;
    mt_status st = mt__cuda_bind(dev);
    if (st != MT_OK) return st;
    CUevent e = NULL;
    CUresult r = impl_of(dev)->cu->EventCreate(&e, CU_EVENT_DEFAULT); /* with timing */
    if (r != CUDA_SUCCESS) return cu_fail(dev, r, "cuEventCreate");
    *event = e;
    return MT_OK;
}

static void cuda_event_free(mt_device *dev, void *event)
{
    if (!event || mt__cuda_bind(dev) != MT_OK) return;
    CUresult r = impl_of(dev)->cu->EventDestroy((CUevent)event);
    if (r != CUDA_SUCCESS)
        mt_log(MT_LOG_WARN, "cuEventDestroy on %s: %s", dev->info.name, mt__cu_err_name(r));
}

static mt_status cuda_event_record(mt_device *dev, void *event, void *stream)
{
    mt_status st = mt__cuda_bind(dev);
    if (st != MT_OK) return st;
    CUresult r = impl_of(dev)->cu->EventRecord((CUevent)event, mt__cuda_stream(dev, stream));
    if (r != CUDA_SUCCESS) return cu_fail(dev, r, "cuEventRecord");
    return MT_OK;
}

static mt_status cuda_event_wait(mt_device *dev, void *stream, void *event)
{
    mt_status st = mt__cuda_bind(dev);
    if (st != MT_OK) return st;
    CUresult r = impl_of(dev)->cu->StreamWaitEvent(mt__cuda_stream(dev, stream), (CUevent)event,
                                                   0);
    if (r != CUDA_SUCCESS) return cu_fail(dev, r, "cuStreamWaitEvent");
    return MT_OK;
}

static mt_status cuda_event_sync(mt_device *dev, void *event)
{
    mt_status st = mt__cuda_bind(dev);
    if (st != MT_OK) return st;
    CUresult r = impl_of(dev)->cu->EventSynchronize((CUevent)event);
    if (r != CUDA_SUCCESS) return cu_fail(dev, r, "cuEventSynchronize");
    return MT_OK;
}

static mt_status cuda_event_elapsed(mt_device *dev, float *ms, void *start, void *end)
{
    *ms = 0;
    mt_status st = mt__cuda_bind(dev);
    if (st != MT_OK) return st;
    const mt_cu_api *cu = impl_of(dev)->cu;
    /* both must have completed; cuEventElapsedTime would report NOT_READY otherwise */
    CUresult r = cu->EventSynchronize((CUevent)end);
    if (r == CUDA_SUCCESS) r = cu->EventSynchronize((CUevent)start);
    if (r != CUDA_SUCCESS) return cu_fail(dev, r, "cuEventSynchronize");
    r = cu->EventElapsedTime(ms, (CUevent)start, (CUevent)end);
    if (r != CUDA_SUCCESS) return cu_fail(dev, r, "cuEventElapsedTime");
    return MT_OK;
}

/* ---------------------------------------------------------------- the vtable */

const mt_device_ops mt__cuda_ops = {
    .abi_version = MT_DEVICE_OPS_ABI,
    .backend = "cuda",
    .klang = MT_KLANG_CUDA,
    .enumerate = cuda_enumerate,
    .open = cuda_open,
    .close = cuda_close,
    .alloc = cuda_alloc,
    .free = cuda_free,
    .host_ptr = NULL, /* device memory is not host-addressable */
    .write = cuda_write,
    .read = cuda_read,
    .copy = cuda_copy,
    .kernel_build = cuda_kernel_build,
    .kernel_free = cuda_kernel_free,
    .kernel_launch = cuda_kernel_launch,
    .sync = cuda_sync,
    .stream_new = cuda_stream_new,
    .stream_free = cuda_stream_free,
    .stream_sync = cuda_stream_sync,
    .event_new = cuda_event_new,
    .event_free = cuda_event_free,
    .event_record = cuda_event_record,
    .event_wait = cuda_event_wait,
    .event_sync = cuda_event_sync,
    .event_elapsed = cuda_event_elapsed,
    .gemm = mt__cuda_gemm,
    .conv2d = mt__cuda_dnn_conv2d,
    .pool2d = mt__cuda_dnn_pool2d,
};

/* ---------------------------------------------------------------- interop (cuda_interop.h) */

bool mt__cuda_device_is_cuda(const mt_device *dev)
{
    return dev && dev->ops == &mt__cuda_ops && dev->impl;
}

int mt__cuda_device_ordinal(const mt_device *dev)
{
    return mt__cuda_device_is_cuda(dev) ? ((const mt_cuda_dev *)dev->impl)->ordinal : -1;
}

static mt_status not_cuda(const mt_device *dev, const char *what)
{
    return mt_err_set(MT_ERR_INVALID, "%s: %s is not a CUDA device", what,
                      dev ? dev->info.name : "(null)");
}

mt_status mt__cuda_device_bind(mt_device *dev)
{
    if (!mt__cuda_device_is_cuda(dev)) return not_cuda(dev, "binding the CUDA context");
    return mt__cuda_bind(dev);
}

void *mt__cuda_compute_stream(mt_device *dev)
{
    return mt__cuda_device_is_cuda(dev) ? (void *)impl_of(dev)->stream : NULL;
}

mt_status mt__cuda_aux_stream_new(mt_device *dev, void **stream)
{
    *stream = NULL;
    if (!mt__cuda_device_is_cuda(dev)) return not_cuda(dev, "creating a stream");
    return cuda_stream_new(dev, stream);
}

void mt__cuda_aux_stream_free(mt_device *dev, void *stream)
{
    if (mt__cuda_device_is_cuda(dev)) cuda_stream_free(dev, stream);
}

mt_status mt__cuda_aux_stream_sync(mt_device *dev, void *stream)
{
    if (!mt__cuda_device_is_cuda(dev)) return not_cuda(dev, "synchronising a stream");
    return cuda_stream_sync(dev, stream);
}

mt_status mt__cuda_sync_event_new(mt_device *dev, void **event)
{
    *event = NULL;
    if (!mt__cuda_device_is_cuda(dev)) return not_cuda(dev, "creating an event");
    mt_status st = mt__cuda_bind(dev);
    if (st != MT_OK) return st;
    CUevent e = NULL;
    CUresult r = impl_of(dev)->cu->EventCreate(&e, CU_EVENT_DISABLE_TIMING);
    if (r != CUDA_SUCCESS) return cu_fail(dev, r, "cuEventCreate(CU_EVENT_DISABLE_TIMING)");
    *event = e;
    return MT_OK;
}

void mt__cuda_sync_event_free(mt_device *dev, void *event)
{
    if (mt__cuda_device_is_cuda(dev)) cuda_event_free(dev, event);
}

mt_status mt__cuda_sync_event_record(mt_device *dev, void *event, void *stream)
{
    if (!mt__cuda_device_is_cuda(dev)) return not_cuda(dev, "recording an event");
    return cuda_event_record(dev, event, stream);
}

mt_status mt__cuda_stream_wait_event(mt_device *dev, void *stream, void *event)
{
    if (!mt__cuda_device_is_cuda(dev)) return not_cuda(dev, "waiting for an event");
    return cuda_event_wait(dev, stream, event);
}

mt_status mt__cuda_event_query(mt_device *dev, void *event, bool *done)
{
    *done = false;
    if (!mt__cuda_device_is_cuda(dev)) return not_cuda(dev, "querying an event");
    mt_status st = mt__cuda_bind(dev);
    if (st != MT_OK) return st;
    CUresult r = impl_of(dev)->cu->EventQuery((CUevent)event);
    if (r == CUDA_SUCCESS) {
        *done = true;
        return MT_OK;
    }
    if (r == CUDA_ERROR_NOT_READY) return MT_OK;
    return cu_fail(dev, r, "cuEventQuery");
}

mt_status mt__cuda_buffer_address(const mt_buffer *buf, size_t off, void **addr)
{
    *addr = NULL;
    if (!buf || !mt__cuda_device_is_cuda(buf->dev))
        return not_cuda(buf ? buf->dev : NULL, "device address of a buffer");
    if (off > buf->size)
        return mt_err_set(MT_ERR_RANGE, "device address of a buffer: offset %zu beyond its %zu "
                          "bytes on %s", off, buf->size, buf->dev->info.name);
    *addr = (void *)(uintptr_t)(dptr(buf->handle) + off);
    return MT_OK;
}
