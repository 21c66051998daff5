/* The OpenCL device backend: one mt_device per (platform, device) pair found by the ICD
 * loader, driven through a context and in-order command queues (extra queues are the
 * streams), with GEMM through CLBlast's C API.
 *
 * Buffers are cl_mem objects and are not host-addressable: every transfer is an explicit
 * clEnqueue{Read,Write,Copy}Buffer. Generated kernels receive each buffer as a
 * (__global char *, ulong byte offset) pair because OpenCL 1.2 has no pointer arithmetic on
 * cl_mem handles from the host side. Every failure message names the OpenCL (or CLBlast)
 * call, the error code by its CL_* name and the device, so a user can tell an allocation
 * failure from a driver bug without a debugger.
 *
 * Compiled only when MT_HAVE_OPENCL; the registry in device.c refers to mt__opencl_ops. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <CL/cl.h>
#include <clblast_c.h>

#include "gpuarray_impl.h"

/* ---------------------------------------------------------------- error names */

static const char *cl_err_name(cl_int err)
{
    switch (err) {
#define MT__CLE(name) \
    case name: return #name;
        MT__CLE(CL_SUCCESS)
        MT__CLE(CL_DEVICE_NOT_FOUND)
        MT__CLE(CL_DEVICE_NOT_AVAILABLE)
        MT__CLE(CL_COMPILER_NOT_AVAILABLE)
        MT__CLE(CL_MEM_OBJECT_ALLOCATION_FAILURE)
        MT__CLE(CL_OUT_OF_RESOURCES)
        MT__CLE(CL_OUT_OF_HOST_MEMORY)
        MT__CLE(CL_PROFILING_INFO_NOT_AVAILABLE)
        MT__CLE(CL_MEM_COPY_OVERLAP)
        MT__CLE(CL_IMAGE_FORMAT_MISMATCH)
        MT__CLE(CL_IMAGE_FORMAT_NOT_SUPPORTED)
        MT__CLE(CL_BUILD_PROGRAM_FAILURE)
        MT__CLE(CL_MAP_FAILURE)
        MT__CLE(CL_MISALIGNED_SUB_BUFFER_OFFSET)
        MT__CLE(CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST)
        MT__CLE(CL_COMPILE_PROGRAM_FAILURE)
        MT__CLE(CL_LINKER_NOT_AVAILABLE)
        MT__CLE(CL_LINK_PROGRAM_FAILURE)
        MT__CLE(CL_DEVICE_PARTITION_FAILED)
        MT__CLE(CL_KERNEL_ARG_INFO_NOT_AVAILABLE)
        MT__CLE(CL_INVALID_VALUE)
        MT__CLE(CL_INVALID_DEVICE_TYPE)
        MT__CLE(CL_INVALID_PLATFORM)
        MT__CLE(CL_INVALID_DEVICE)
        MT__CLE(CL_INVALID_CONTEXT)
        MT__CLE(CL_INVALID_QUEUE_PROPERTIES)
        MT__CLE(CL_INVALID_COMMAND_QUEUE)
        MT__CLE(CL_INVALID_HOST_PTR)
        MT__CLE(CL_INVALID_MEM_OBJECT)
        MT__CLE(CL_INVALID_IMAGE_FORMAT_DESCRIPTOR)
        MT__CLE(CL_INVALID_IMAGE_SIZE)
        MT__CLE(CL_INVALID_SAMPLER)
        MT__CLE(CL_INVALID_BINARY)
        MT__CLE(CL_INVALID_BUILD_OPTIONS)
        MT__CLE(CL_INVALID_PROGRAM)
        MT__CLE(CL_INVALID_PROGRAM_EXECUTABLE)
        MT__CLE(CL_INVALID_KERNEL_NAME)
        MT__CLE(CL_INVALID_KERNEL_DEFINITION)
        MT__CLE(CL_INVALID_KERNEL)
        MT__CLE(CL_INVALID_ARG_INDEX)
        MT__CLE(CL_INVALID_ARG_VALUE)
        MT__CLE(CL_INVALID_ARG_SIZE)
        MT__CLE(CL_INVALID_KERNEL_ARGS)
        MT__CLE(CL_INVALID_WORK_DIMENSION)
        MT__CLE(CL_INVALID_WORK_GROUP_SIZE)
        MT__CLE(CL_INVALID_WORK_ITEM_SIZE)
        MT__CLE(CL_INVALID_GLOBAL_OFFSET)
        MT__CLE(CL_INVALID_EVENT_WAIT_LIST)
        MT__CLE(CL_INVALID_EVENT)
        MT__CLE(CL_INVALID_OPERATION)
        MT__CLE(CL_INVALID_GL_OBJECT)
        MT__CLE(CL_INVALID_BUFFER_SIZE)
        MT__CLE(CL_INVALID_MIP_LEVEL)
        MT__CLE(CL_INVALID_GLOBAL_WORK_SIZE)
        MT__CLE(CL_INVALID_PROPERTY)
        MT__CLE(CL_INVALID_IMAGE_DESCRIPTOR)
        MT__CLE(CL_INVALID_COMPILER_OPTIONS)
        MT__CLE(CL_INVALID_LINKER_OPTIONS)
        MT__CLE(CL_INVALID_DEVICE_PARTITION_COUNT)
#undef MT__CLE
    /* Later core versions and common extensions, by value (the 1.2 headers lack them). */
    case -69: return "CL_INVALID_PIPE_SIZE";
    case -70: return "CL_INVALID_DEVICE_QUEUE";
    case -71: return "CL_INVALID_SPEC_ID";
    case -72: return "CL_MAX_SIZE_RESTRICTION_EXCEEDED";
    case -1000: return "CL_INVALID_GL_SHAREGROUP_REFERENCE_KHR";
    case -1001: return "CL_PLATFORM_NOT_FOUND_KHR";
    case -1057: return "CL_DEVICE_PARTITION_FAILED_EXT";
    case -1058: return "CL_INVALID_PARTITION_COUNT_EXT";
    case -1059: return "CL_INVALID_PARTITION_NAME_EXT";
    case -1121: return "CL_CONTEXT_TERMINATED_KHR";
    default: break;
    }
    return "CL_UNKNOWN_ERROR";
}

static const char *clblast_status_name(CLBlastStatusCode st)
{
    switch (st) {
#define MT__CBS(name) \
    case name: return #name;
        MT__CBS(CLBlastSuccess)
        MT__CBS(CLBlastOpenCLCompilerNotAvailable)
        MT__CBS(CLBlastTempBufferAllocFailure)
        MT__CBS(CLBlastOpenCLOutOfResources)
        MT__CBS(CLBlastOpenCLOutOfHostMemory)
        MT__CBS(CLBlastOpenCLBuildProgramFailure)
        MT__CBS(CLBlastInvalidValue)
        MT__CBS(CLBlastInvalidCommandQueue)
        MT__CBS(CLBlastInvalidMemObject)
        MT__CBS(CLBlastInvalidBinary)
        MT__CBS(CLBlastInvalidBuildOptions)
        MT__CBS(CLBlastInvalidProgram)
        MT__CBS(CLBlastInvalidProgramExecutable)
        MT__CBS(CLBlastInvalidKernelName)
        MT__CBS(CLBlastInvalidKernelDefinition)
        MT__CBS(CLBlastInvalidKernel)
        MT__CBS(CLBlastInvalidArgIndex)
        MT__CBS(CLBlastInvalidArgValue)
        MT__CBS(CLBlastInvalidArgSize)
        MT__CBS(CLBlastInvalidKernelArgs)
        MT__CBS(CLBlastInvalidLocalNumDimensions)
        MT__CBS(CLBlastInvalidLocalThreadsTotal)
        MT__CBS(CLBlastInvalidLocalThreadsDim)
        MT__CBS(CLBlastInvalidGlobalOffset)
        MT__CBS(CLBlastInvalidEventWaitList)
        MT__CBS(CLBlastInvalidEvent)
        MT__CBS(CLBlastInvalidOperation)
        MT__CBS(CLBlastInvalidBufferSize)
        MT__CBS(CLBlastInvalidGlobalWorkSize)
        MT__CBS(CLBlastNotImplemented)
        MT__CBS(CLBlastInvalidMatrixA)
        MT__CBS(CLBlastInvalidMatrixB)
        MT__CBS(CLBlastInvalidMatrixC)
        MT__CBS(CLBlastInvalidVectorX)
        MT__CBS(CLBlastInvalidVectorY)
        MT__CBS(CLBlastInvalidDimension)
        MT__CBS(CLBlastInvalidLeadDimA)
        MT__CBS(CLBlastInvalidLeadDimB)
        MT__CBS(CLBlastInvalidLeadDimC)
        MT__CBS(CLBlastInvalidIncrementX)
        MT__CBS(CLBlastInvalidIncrementY)
        MT__CBS(CLBlastInsufficientMemoryA)
        MT__CBS(CLBlastInsufficientMemoryB)
        MT__CBS(CLBlastInsufficientMemoryC)
        MT__CBS(CLBlastInsufficientMemoryX)
        MT__CBS(CLBlastInsufficientMemoryY)
        MT__CBS(CLBlastInsufficientMemoryTemp)
        MT__CBS(CLBlastInvalidBatchCount)
        MT__CBS(CLBlastInvalidOverrideKernel)
        MT__CBS(CLBlastMissingOverrideParameter)
        MT__CBS(CLBlastInvalidLocalMemUsage)
        MT__CBS(CLBlastNoHalfPrecision)
        MT__CBS(CLBlastNoDoublePrecision)
        MT__CBS(CLBlastInvalidVectorScalar)
        MT__CBS(CLBlastInsufficientMemoryScalar)
        MT__CBS(CLBlastDatabaseError)
        MT__CBS(CLBlastUnknownError)
        MT__CBS(CLBlastUnexpectedError)
#undef MT__CBS
    default: break;
    }
    /* CLBlast passes other OpenCL codes through unchanged. */
    return cl_err_name((cl_int)st);
}

/* The mt_status an OpenCL error code maps to: allocation failures are ERR_NOMEM (the caching
 * allocator frees its cache and retries on that), everything else a device runtime error. */
static mt_status cl_code_status(cl_int err)
{
    switch (err) {
    case CL_MEM_OBJECT_ALLOCATION_FAILURE:
    case CL_OUT_OF_HOST_MEMORY: return MT_ERR_NOMEM;
    default: return MT_ERR_DEVICE;
    }
}

/* Records "<call> on <device> failed: CL_NAME<extra>" and returns code. */
static mt_status cl_fail(mt_status code, cl_int err, const mt_device *dev, const char *extra,
                         const char *call_fmt, ...) __attribute__((format(printf, 5, 6)));
static mt_status cl_fail(mt_status code, cl_int err, const mt_device *dev, const char *extra,
                         const char *call_fmt, ...)
{
    char call[256];
    va_list ap;
    va_start(ap, call_fmt);
    vsnprintf(call, sizeof call, call_fmt, ap);
    va_end(ap);
    return mt_err_set(code, "%s on %s failed: %s%s", call, dev ? dev->info.name : "opencl",
                      cl_err_name(err), extra ? extra : "");
}

/* ---------------------------------------------------------------- backend state */

typedef struct ocl_dev {
    cl_platform_id platform;
    cl_device_id device;
    cl_context ctx;
    cl_command_queue queue; /* the default stream */
    cl_uint compute_units;
    size_t max_wg;         /* CL_DEVICE_MAX_WORK_GROUP_SIZE */
    const char *build_opts; /* clBuildProgram options */
} ocl_dev;

typedef struct ocl_kernel {
    cl_program program;
    cl_kernel kernel;
    cl_uint nparams;   /* CL_KERNEL_NUM_ARGS, to check launches against */
    size_t max_local;  /* CL_KERNEL_WORK_GROUP_SIZE */
    /* clSetKernelArg + clEnqueueNDRangeKernel on one cl_kernel must not interleave between
     * threads (the kernel cache shares kernels), so a launch holds this. */
    pthread_mutex_t lock;
    char entry[64];
} ocl_kernel;

typedef struct ocl_event {
    cl_event ev; /* NULL until recorded */
} ocl_event;

static ocl_dev *impl_of(mt_device *dev) { return (ocl_dev *)dev->impl; }

/* The command queue a stream stands for; NULL is the device's default queue. */
static cl_command_queue queue_of(mt_device *dev, mt_stream *s)
{
    void *h = mt__stream_impl(s);
    return h ? (cl_command_queue)h : impl_of(dev)->queue;
}

static cl_command_queue queue_of_handle(mt_device *dev, void *stream)
{
    return stream ? (cl_command_queue)stream : impl_of(dev)->queue;
}

/* ---------------------------------------------------------------- enumerate / open */

static bool has_extension(const char *exts, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = exts; (p = strstr(p, name)) != NULL; p += n) {
        bool start = p == exts || p[-1] == ' ';
        bool end = p[n] == '\0' || p[n] == ' ';
        if (start && end) return true;
    }
    return false;
}

static void device_string(cl_device_id d, cl_device_info what, char *buf, size_t len)
{
    buf[0] = '\0';
    if (clGetDeviceInfo(d, what, len, buf, NULL) != CL_SUCCESS) buf[0] = '\0';
    buf[len - 1] = '\0';
}

static void fill_info(mt_device_info *info, cl_device_id d, int32_t p, int32_t idx)
{
    memset(info, 0, sizeof *info);
    snprintf(info->name, sizeof info->name, "opencl:%d:%d", (int)p, (int)idx);
    snprintf(info->backend, sizeof info->backend, "opencl");
    char vendor[96], name[128], driver[64];
    device_string(d, CL_DEVICE_VENDOR, vendor, sizeof vendor);
    device_string(d, CL_DEVICE_NAME, name, sizeof name);
    device_string(d, CL_DRIVER_VERSION, driver, sizeof driver);
    snprintf(info->description, sizeof info->description, "%s %s (driver %s)", vendor, name,
             driver);
    cl_ulong mem = 0, max_alloc = 0;
    cl_uint cu = 0;
    cl_device_fp_config fp64 = 0;
    clGetDeviceInfo(d, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof mem, &mem, NULL);
    clGetDeviceInfo(d, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof max_alloc, &max_alloc, NULL);
    clGetDeviceInfo(d, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof cu, &cu, NULL);
    if (clGetDeviceInfo(d, CL_DEVICE_DOUBLE_FP_CONFIG, sizeof fp64, &fp64, NULL) != CL_SUCCESS)
        fp64 = 0;
    info->global_mem = mem;
    info->max_alloc = max_alloc;
    info->compute_units = (int32_t)cu;
    size_t elen = 0;
    char *exts = NULL;
    if (clGetDeviceInfo(d, CL_DEVICE_EXTENSIONS, 0, NULL, &elen) == CL_SUCCESS && elen > 0)
        exts = mt_malloc(elen + 1);
    if (exts && clGetDeviceInfo(d, CL_DEVICE_EXTENSIONS, elen, exts, NULL) == CL_SUCCESS) {
        exts[elen] = '\0';
        info->fp64 = fp64 != 0 || has_extension(exts, "cl_khr_fp64");
        info->fp16 = has_extension(exts, "cl_khr_fp16");
    } else {
        info->fp64 = fp64 != 0;
    }
    mt_free(exts);
}

/* Platform ids (caller frees); 0 platforms (no ICD) is not an error. */
static cl_int get_platforms(cl_platform_id **out, cl_uint *n)
{
    *out = NULL;
    *n = 0;
    cl_int err = clGetPlatformIDs(0, NULL, n);
    if (err != CL_SUCCESS || *n == 0) {
        *n = 0;
        return err == -1001 /* CL_PLATFORM_NOT_FOUND_KHR */ ? CL_SUCCESS : err;
    }
    *out = mt_malloc(sizeof **out * *n);
    if (!*out) return CL_OUT_OF_HOST_MEMORY;
    err = clGetPlatformIDs(*n, *out, NULL);
    if (err != CL_SUCCESS) {
        mt_free(*out);
        *out = NULL;
        *n = 0;
    }
    return err;
}

static cl_int get_devices(cl_platform_id p, cl_device_id **out, cl_uint *n)
{
    *out = NULL;
    *n = 0;
    cl_int err = clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, 0, NULL, n);
    if (err != CL_SUCCESS || *n == 0) {
        *n = 0;
        return err == CL_DEVICE_NOT_FOUND ? CL_SUCCESS : err;
    }
    *out = mt_malloc(sizeof **out * *n);
    if (!*out) return CL_OUT_OF_HOST_MEMORY;
    err = clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, *n, *out, NULL);
    if (err != CL_SUCCESS) {
        mt_free(*out);
        *out = NULL;
        *n = 0;
    }
    return err;
}

static void ocl_enumerate(mt_device_info **infos, int32_t *count, int32_t *cap)
{
    cl_platform_id *plats = NULL;
    cl_uint np = 0;
    if (get_platforms(&plats, &np) != CL_SUCCESS) return; /* no usable ICD: nothing */
    for (cl_uint p = 0; p < np; p++) {
        cl_device_id *devs = NULL;
        cl_uint nd = 0;
        if (get_devices(plats[p], &devs, &nd) != CL_SUCCESS) continue;
        for (cl_uint d = 0; d < nd; d++) {
            if (*count == *cap) {
                int32_t ncap = *cap ? *cap * 2 : 8;
                mt_device_info *grown = mt_realloc(*infos, sizeof **infos * (size_t)ncap);
                if (!grown) break;
                *infos = grown;
                *cap = ncap;
            }
            fill_info(&(*infos)[*count], devs[d], (int32_t)p, (int32_t)d);
            (*count)++;
        }
        mt_free(devs);
    }
    mt_free(plats);
}

/* Finds device #idx of platform #platform; ERR_NOT_FOUND naming what exists otherwise. */
static mt_status find_device(int32_t platform, int32_t idx, cl_platform_id *pl,
                             cl_device_id *dv)
{
    cl_platform_id *plats = NULL;
    cl_uint np = 0;
    cl_int err = get_platforms(&plats, &np);
    if (err != CL_SUCCESS)
        return cl_fail(MT_ERR_NOT_FOUND, err, NULL, NULL, "clGetPlatformIDs");
    if (platform < 0 || (cl_uint)platform >= np) {
        mt_free(plats);
        return mt_err_set(MT_ERR_NOT_FOUND, "no OpenCL platform %d (%u present)", (int)platform,
                          np);
    }
    *pl = plats[platform];
    mt_free(plats);
    cl_device_id *devs = NULL;
    cl_uint nd = 0;
    err = get_devices(*pl, &devs, &nd);
    if (err != CL_SUCCESS)
        return cl_fail(MT_ERR_NOT_FOUND, err, NULL, NULL, "clGetDeviceIDs(platform %d)",
                       (int)platform);
    if (idx < 0 || (cl_uint)idx >= nd) {
        mt_free(devs);
        return mt_err_set(MT_ERR_NOT_FOUND, "no OpenCL device %d on platform %d (%u present)",
                          (int)idx, (int)platform, nd);
    }
    *dv = devs[idx];
    mt_free(devs);
    return MT_OK;
}

static mt_status ocl_open(mt_device *dev, int32_t platform, int32_t idx)
{
    cl_platform_id pl = NULL;
    cl_device_id dv = NULL;
    mt_status st = find_device(platform, idx, &pl, &dv);
    if (st != MT_OK) return st;
    fill_info(&dev->info, dv, platform, idx);
    ocl_dev *d = mt_calloc(1, sizeof *d);
    if (!d) return mt_err_set(MT_ERR_NOMEM, "opening %s: out of host memory", dev->info.name);
    d->platform = pl;
    d->device = dv;
    d->compute_units = (cl_uint)(dev->info.compute_units > 0 ? dev->info.compute_units : 1);
    if (clGetDeviceInfo(dv, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof d->max_wg, &d->max_wg, NULL) !=
            CL_SUCCESS ||
        d->max_wg == 0)
        d->max_wg = 1;
    /* Correctly rounded float32 division and sqrt where the device offers them, so results
     * match the host's bit for bit (OpenCL otherwise allows 2.5 and 3 ulp). */
    cl_device_fp_config fp32 = 0;
    if (clGetDeviceInfo(dv, CL_DEVICE_SINGLE_FP_CONFIG, sizeof fp32, &fp32, NULL) != CL_SUCCESS)
        fp32 = 0;
    d->build_opts = (fp32 & CL_FP_CORRECTLY_ROUNDED_DIVIDE_SQRT)
                        ? "-cl-std=CL1.2 -cl-fp32-correctly-rounded-divide-sqrt"
                        : "-cl-std=CL1.2";
    cl_int err = CL_SUCCESS;
    cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)pl, 0};
    d->ctx = clCreateContext(props, 1, &dv, NULL, NULL, &err);
    if (!d->ctx) {
        st = cl_fail(MT_ERR_DEVICE, err, dev, NULL, "clCreateContext");
        goto fail_free;
    }
    d->queue = clCreateCommandQueue(d->ctx, dv, CL_QUEUE_PROFILING_ENABLE, &err);
    if (!d->queue) {
        st = cl_fail(MT_ERR_DEVICE, err, dev, NULL, "clCreateCommandQueue");
        goto fail_ctx;
    }
    dev->impl = d;
    return MT_OK;

fail_ctx:
    clReleaseContext(d->ctx);
fail_free:
    mt_free(d);
    return st;
}

static void ocl_close(mt_device *dev)
{
    ocl_dev *d = impl_of(dev);
    if (!d) return;
    clFinish(d->queue);
    /* CLBlast caches compiled programs per context, and each holds the context alive: drop
     * them (a reopened device gets a new context, so they could never be hit again). Other
     * open OpenCL devices merely rebuild theirs on next use, from the driver's binary cache. */
    CLBlastClearCache();
    clReleaseCommandQueue(d->queue);
    clReleaseContext(d->ctx);
    mt_free(d);
    dev->impl = NULL;
}

/* ---------------------------------------------------------------- memory */

static mt_status ocl_alloc(mt_device *dev, size_t nbytes, void **handle)
{
    ocl_dev *d = impl_of(dev);
    /* OpenCL refuses 0-byte buffers; an empty mt_buffer still needs a valid cl_mem to pass
     * to kernels. */
    size_t n = nbytes ? nbytes : 16;
    cl_int err = CL_SUCCESS;
    cl_mem m = clCreateBuffer(d->ctx, CL_MEM_READ_WRITE, n, NULL, &err);
    if (!m) {
        char extra[96] = "";
        if (nbytes > dev->info.max_alloc)
            snprintf(extra, sizeof extra, " (the largest allocation on this device is %llu bytes)",
                     (unsigned long long)dev->info.max_alloc);
        bool oom = err == CL_MEM_OBJECT_ALLOCATION_FAILURE || err == CL_OUT_OF_RESOURCES ||
                   err == CL_OUT_OF_HOST_MEMORY || err == CL_INVALID_BUFFER_SIZE;
        return cl_fail(oom ? MT_ERR_NOMEM : MT_ERR_DEVICE, err, dev, extra,
                       "clCreateBuffer(%zu bytes)", nbytes);
    }
    *handle = m;
    return MT_OK;
}

static void ocl_free(mt_device *dev, void *handle)
{
    if (handle) clReleaseMemObject((cl_mem)handle);
}

/* ERR_RANGE unless [off, off + n) lies inside the cl_mem. */
static mt_status check_range(mt_device *dev, cl_mem m, size_t off, size_t n, const char *what)
{
    if (!m) return mt_err_set(MT_ERR_INVALID, "%s on %s: no buffer", what, dev->info.name);
    size_t size = 0;
    cl_int err = clGetMemObjectInfo(m, CL_MEM_SIZE, sizeof size, &size, NULL);
    if (err != CL_SUCCESS)
        return cl_fail(MT_ERR_DEVICE, err, dev, NULL, "clGetMemObjectInfo(%s)", what);
    if (off > size || n > size - off)
        return mt_err_set(MT_ERR_RANGE,
                          "%s of %zu bytes at offset %zu on %s: past the end of a %zu-byte buffer",
                          what, n, off, dev->info.name, size);
    return MT_OK;
}

static mt_status ocl_write(mt_device *dev, void *dst, size_t off, const void *src, size_t n,
                           mt_stream *s)
{
    mt_status st = check_range(dev, (cl_mem)dst, off, n, "write");
    if (st != MT_OK || n == 0) return st;
    /* Blocking: the caller may reuse src as soon as this returns. */
    cl_int err =
        clEnqueueWriteBuffer(queue_of(dev, s), (cl_mem)dst, CL_TRUE, off, n, src, 0, NULL, NULL);
    if (err != CL_SUCCESS)
        return cl_fail(cl_code_status(err), err, dev, NULL,
                       "clEnqueueWriteBuffer(%zu bytes at offset %zu)", n, off);
    return MT_OK;
}

static mt_status ocl_read(mt_device *dev, void *dst, void *src, size_t off, size_t n,
                          mt_stream *s)
{
    mt_status st = check_range(dev, (cl_mem)src, off, n, "read");
    if (st != MT_OK || n == 0) return st;
    cl_int err =
        clEnqueueReadBuffer(queue_of(dev, s), (cl_mem)src, CL_TRUE, off, n, dst, 0, NULL, NULL);
    if (err != CL_SUCCESS)
        return cl_fail(cl_code_status(err), err, dev, NULL,
                       "clEnqueueReadBuffer(%zu bytes at offset %zu)", n, off);
    return MT_OK;
}

static mt_status ocl_copy(mt_device *dev, void *dst, size_t doff, void *src, size_t soff,
                          size_t n, mt_stream *s)
{
    mt_status st = check_range(dev, (cl_mem)src, soff, n, "copy source");
    if (st == MT_OK) st = check_range(dev, (cl_mem)dst, doff, n, "copy destination");
    if (st != MT_OK || n == 0 || (dst == src && doff == soff)) return st;
    cl_command_queue q = queue_of(dev, s);
    bool overlap = dst == src && doff < soff + n && soff < doff + n;
    if (!overlap) {
        cl_int err =
            clEnqueueCopyBuffer(q, (cl_mem)src, (cl_mem)dst, soff, doff, n, 0, NULL, NULL);
        if (err != CL_SUCCESS)
            return cl_fail(cl_code_status(err), err, dev, NULL,
                           "clEnqueueCopyBuffer(%zu bytes)", n);
        return MT_OK;
    }
    /* OpenCL forbids overlapping copies within one buffer (CL_MEM_COPY_OVERLAP): bounce
     * through a temporary, like memmove. */
    void *tmp = NULL;
    st = ocl_alloc(dev, n, &tmp);
    if (st != MT_OK) return st;
    cl_int err = clEnqueueCopyBuffer(q, (cl_mem)src, (cl_mem)tmp, soff, 0, n, 0, NULL, NULL);
    if (err == CL_SUCCESS)
        err = clEnqueueCopyBuffer(q, (cl_mem)tmp, (cl_mem)dst, 0, doff, n, 0, NULL, NULL);
    /* Releasing is safe while commands are queued: OpenCL keeps the object alive. */
    ocl_free(dev, tmp);
    if (err != CL_SUCCESS)
        return cl_fail(cl_code_status(err), err, dev, NULL,
                       "clEnqueueCopyBuffer(%zu overlapping bytes)", n);
    return MT_OK;
}

/* ---------------------------------------------------------------- kernels */

/* Copies at most max_lines lines (and what fits) of a build log into out. */
static void log_head(const char *log, int max_lines, char *out, size_t len)
{
    size_t o = 0;
    int lines = 0;
    for (const char *p = log; *p && o + 1 < len; p++) {
        if (*p == '\n' && ++lines >= max_lines) break;
        out[o++] = *p;
    }
    out[o] = '\0';
}

static mt_status build_failure(mt_device *dev, cl_program prog, cl_int err, const char *entry)
{
    ocl_dev *d = impl_of(dev);
    size_t len = 0;
    char *log = NULL;
    if (clGetProgramBuildInfo(prog, d->device, CL_PROGRAM_BUILD_LOG, 0, NULL, &len) ==
            CL_SUCCESS &&
        len > 0)
        log = mt_malloc(len + 1);
    if (log &&
        clGetProgramBuildInfo(prog, d->device, CL_PROGRAM_BUILD_LOG, len, log, NULL) ==
            CL_SUCCESS)
        log[len] = '\0';
    else if (log)
        log[0] = '\0';
    if (log) mt_log(MT_LOG_DEBUG, "OpenCL build log of '%s' on %s:\n%s", entry, dev->info.name,
                    log);
    char head[768];
    log_head(log ? log : "(no build log)", 30, head, sizeof head);
    mt_free(log);
    return mt_err_set(MT_ERR_COMPILE, "clBuildProgram(kernel '%s') on %s failed: %s\n%s", entry,
                      dev->info.name, cl_err_name(err), head);
}

static mt_status ocl_kernel_build(mt_device *dev, const char *source, const char *entry,
                                  void **kernel)
{
    ocl_dev *d = impl_of(dev);
    ocl_kernel *k = mt_calloc(1, sizeof *k);
    if (!k) return mt_err_set(MT_ERR_NOMEM, "building kernel '%s': out of host memory", entry);
    snprintf(k->entry, sizeof k->entry, "%s", entry);
    mt_status st;
    cl_int err = CL_SUCCESS;
    k->program = clCreateProgramWithSource(d->ctx, 1, &source, NULL, &err);
    if (!k->program) {
        st = cl_fail(cl_code_status(err), err, dev, NULL,
                     "clCreateProgramWithSource(kernel '%s')", entry);
        goto fail_free;
    }
    err = clBuildProgram(k->program, 1, &d->device, d->build_opts, NULL, NULL);
    if (err != CL_SUCCESS) {
        st = err == CL_BUILD_PROGRAM_FAILURE || err == CL_INVALID_BUILD_OPTIONS
                 ? build_failure(dev, k->program, err, entry)
                 : cl_fail(cl_code_status(err), err, dev, NULL, "clBuildProgram(kernel '%s')",
                           entry);
        goto fail_program;
    }
    k->kernel = clCreateKernel(k->program, entry, &err);
    if (!k->kernel) {
        st = cl_fail(err == CL_INVALID_KERNEL_NAME ? MT_ERR_COMPILE : cl_code_status(err), err,
                     dev, " (no __kernel of that name in the program?)",
                     "clCreateKernel('%s')", entry);
        goto fail_program;
    }
    if (clGetKernelInfo(k->kernel, CL_KERNEL_NUM_ARGS, sizeof k->nparams, &k->nparams, NULL) !=
        CL_SUCCESS)
        k->nparams = 0;
    if (clGetKernelWorkGroupInfo(k->kernel, d->device, CL_KERNEL_WORK_GROUP_SIZE,
                                 sizeof k->max_local, &k->max_local, NULL) != CL_SUCCESS ||
        k->max_local == 0)
        k->max_local = d->max_wg;
    if (pthread_mutex_init(&k->lock, NULL) != 0) {
        st = mt_err_set(MT_ERR_INTERNAL, "building kernel '%s': pthread_mutex_init failed",
                        entry);
        goto fail_kernel;
    }
    *kernel = k;
    return MT_OK;

fail_kernel:
    clReleaseKernel(k->kernel);
fail_program:
    clReleaseProgram(k->program);
fail_free:
    mt_free(k);
    return st;
}

static void ocl_kernel_free(mt_device *dev, void *kernel)
{
    ocl_kernel *k = kernel;
    if (!k) return;
    pthread_mutex_destroy(&k->lock);
    clReleaseKernel(k->kernel);
    clReleaseProgram(k->program);
    mt_free(k);
}

/* Work sizes for a launch over nwork items. Measured on PoCL 3.1 (2 CPU cores), 16M-float
 * a*b+c: one work item per element (G close to nwork) runs at memory speed, while a few
 * groups looping with stride G are 30x slower (each work item walks memory with a large
 * stride). A NULL local size makes PoCL pick a divisor of G, which for a prime G is 1 and
 * 10x slower, so the local size is explicit and G is nwork rounded down to a multiple of it;
 * the kernels' grid-stride loop covers the remaining items. Local 256..1024 measured equal. */
static void launch_sizes(const ocl_dev *d, const ocl_kernel *k, int64_t nwork, size_t *global,
                         size_t *local)
{
    size_t l = 256;
    if (l > k->max_local) l = k->max_local;
    /* Keep every compute unit busy for small launches. */
    while (l > 8 && (uint64_t)nwork / l < d->compute_units) l /= 2;
    /* Bound G so very large launches stay within 32-bit-safe global ids on any driver. */
    uint64_t cap = (uint64_t)1 << 30;
    uint64_t g = (uint64_t)nwork < cap ? (uint64_t)nwork : cap;
    if (g < l) {
        l = (size_t)g; /* one group smaller than the preferred size; g <= 8 here */
    } else {
        g -= g % l;
    }
    *global = (size_t)g;
    *local = l;
}

static mt_status set_args(mt_device *dev, ocl_kernel *k, int32_t nargs, const mt_karg *args)
{
    cl_uint p = 0;
    for (int32_t i = 0; i < nargs; i++) {
        const mt_karg *a = &args[i];
        cl_int err;
        if (a->kind == MT_KARG_BUFFER) {
            if (!a->buf || !a->buf->handle)
                return mt_err_set(MT_ERR_INVALID, "kernel '%s' on %s: argument %d has no buffer",
                                  k->entry, dev->info.name, (int)i);
            cl_mem m = (cl_mem)a->buf->handle;
            cl_ulong off = (cl_ulong)a->offset;
            err = clSetKernelArg(k->kernel, p++, sizeof m, &m);
            if (err == CL_SUCCESS) err = clSetKernelArg(k->kernel, p++, sizeof off, &off);
        } else {
            err = clSetKernelArg(k->kernel, p++, a->size, a->scalar);
        }
        if (err != CL_SUCCESS)
            return cl_fail(MT_ERR_INVALID, err, dev, NULL,
                           "clSetKernelArg(kernel '%s', argument %d, parameter %u)", k->entry,
                           (int)i, (unsigned)(p - 1));
    }
    return MT_OK;
}

static mt_status ocl_kernel_launch(mt_device *dev, void *kernel, int32_t nargs,
                                   const mt_karg *args, int64_t nwork, int64_t grain,
                                   mt_stream *s)
{
    ocl_kernel *k = kernel;
    if (nwork < 0)
        return mt_err_set(MT_ERR_INVALID, "kernel '%s' on %s: negative work size %lld", k->entry,
                          dev->info.name, (long long)nwork);
    cl_uint want = 0;
    int32_t nbuf = 0;
    for (int32_t i = 0; i < nargs; i++) {
        want += args[i].kind == MT_KARG_BUFFER ? 2u : 1u;
        nbuf += args[i].kind == MT_KARG_BUFFER;
    }
    if (k->nparams && want != k->nparams)
        return mt_err_set(MT_ERR_INVALID,
                          "kernel '%s' on %s takes %u parameters but the launch passes %u "
                          "(%d buffers as (pointer, offset) pairs + %d scalars)",
                          k->entry, dev->info.name, (unsigned)k->nparams, (unsigned)want,
                          (int)nbuf, (int)(nargs - nbuf));
    if (nwork == 0) return MT_OK;
    size_t global, local;
    launch_sizes(impl_of(dev), k, nwork, &global, &local);
    pthread_mutex_lock(&k->lock);
    mt_status st = set_args(dev, k, nargs, args);
    cl_int err = CL_SUCCESS;
    if (st == MT_OK)
        err = clEnqueueNDRangeKernel(queue_of(dev, s), k->kernel, 1, NULL, &global, &local, 0,
                                     NULL, NULL);
    pthread_mutex_unlock(&k->lock);
    if (st == MT_OK && err != CL_SUCCESS)
        st = cl_fail(cl_code_status(err), err, dev, NULL,
                     "clEnqueueNDRangeKernel(kernel '%s', global %zu, local %zu)", k->entry,
                     global, local);
    return st;
}

static mt_status ocl_sync(mt_device *dev)
{
    cl_int err = clFinish(impl_of(dev)->queue);
    if (err != CL_SUCCESS) return cl_fail(cl_code_status(err), err, dev, NULL, "clFinish");
    return MT_OK;
}

/* ---------------------------------------------------------------- streams and events */

static mt_status ocl_stream_new(mt_device *dev, void **stream)
{
    ocl_dev *d = impl_of(dev);
    cl_int err = CL_SUCCESS;
    cl_command_queue q = clCreateCommandQueue(d->ctx, d->device, CL_QUEUE_PROFILING_ENABLE, &err);
    if (!q) return cl_fail(cl_code_status(err), err, dev, NULL, "clCreateCommandQueue(stream)");
    *stream = q;
    return MT_OK;
}

static void ocl_stream_free(mt_device *dev, void *stream)
{
    if (!stream) return;
    clFinish((cl_command_queue)stream);
    clReleaseCommandQueue((cl_command_queue)stream);
}

static mt_status ocl_stream_sync(mt_device *dev, void *stream)
{
    cl_int err = clFinish(queue_of_handle(dev, stream));
    if (err != CL_SUCCESS)
        return cl_fail(cl_code_status(err), err, dev, NULL, "clFinish(stream)");
    return MT_OK;
}

static mt_status ocl_event_new(mt_device *dev, void **event)
{
    ocl_event *e = mt_calloc(1, sizeof *e);
    if (!e) return mt_err_set(MT_ERR_NOMEM, "event on %s: out of host memory", dev->info.name);
    *event = e;
    return MT_OK;
}

static void ocl_event_free(mt_device *dev, void *event)
{
    ocl_event *e = event;
    if (!e) return;
    if (e->ev) clReleaseEvent(e->ev);
    mt_free(e);
}

static mt_status ocl_event_record(mt_device *dev, void *event, void *stream)
{
    ocl_event *e = event;
    cl_event ev = NULL;
    cl_int err = clEnqueueMarkerWithWaitList(queue_of_handle(dev, stream), 0, NULL, &ev);
    if (err != CL_SUCCESS)
        return cl_fail(cl_code_status(err), err, dev, NULL, "clEnqueueMarkerWithWaitList");
    if (e->ev) clReleaseEvent(e->ev);
    e->ev = ev;
    /* Markers only start once the queue reaches them; flush so event_sync cannot wait on a
     * marker that was never submitted. */
    clFlush(queue_of_handle(dev, stream));
    return MT_OK;
}

static mt_status ocl_event_wait(mt_device *dev, void *stream, void *event)
{
    ocl_event *e = event;
    if (!e->ev) return MT_OK; /* never recorded: nothing to wait for (as in CUDA) */
    cl_int err = clEnqueueBarrierWithWaitList(queue_of_handle(dev, stream), 1, &e->ev, NULL);
    if (err != CL_SUCCESS)
        return cl_fail(cl_code_status(err), err, dev, NULL, "clEnqueueBarrierWithWaitList");
    return MT_OK;
}

static mt_status ocl_event_sync(mt_device *dev, void *event)
{
    ocl_event *e = event;
    if (!e->ev) return MT_OK;
    cl_int err = clWaitForEvents(1, &e->ev);
    if (err != CL_SUCCESS) return cl_fail(cl_code_status(err), err, dev, NULL, "clWaitForEvents");
    return MT_OK;
}

static mt_status ocl_event_elapsed(mt_device *dev, float *ms, void *start, void *end)
{
    ocl_event *a = start, *b = end;
    if (!a->ev || !b->ev)
        return mt_err_set(MT_ERR_INVALID, "event elapsed time on %s: event not recorded",
                          dev->info.name);
    cl_event evs[2] = {a->ev, b->ev};
    cl_int err = clWaitForEvents(2, evs);
    cl_ulong t0 = 0, t1 = 0;
    if (err == CL_SUCCESS)
        err = clGetEventProfilingInfo(a->ev, CL_PROFILING_COMMAND_END, sizeof t0, &t0, NULL);
    if (err == CL_SUCCESS)
        err = clGetEventProfilingInfo(b->ev, CL_PROFILING_COMMAND_END, sizeof t1, &t1, NULL);
    if (err != CL_SUCCESS)
        return cl_fail(cl_code_status(err), err, dev, NULL, "clGetEventProfilingInfo");
    *ms = (float)(((double)t1 - (double)t0) * 1e-6);
    return MT_OK;
}

/* ---------------------------------------------------------------- GEMM (CLBlast) */

static mt_status clblast_fail(mt_device *dev, CLBlastStatusCode st, const char *call, int64_t m,
                              int64_t n, int64_t k, int64_t batch)
{
    mt_status code = MT_ERR_DEVICE;
    switch (st) {
    case CLBlastTempBufferAllocFailure:
    case CLBlastOpenCLOutOfResources:
    case CLBlastOpenCLOutOfHostMemory: code = MT_ERR_NOMEM; break;
    case CLBlastNoDoublePrecision:
    case CLBlastNoHalfPrecision:
    case CLBlastNotImplemented: code = MT_ERR_UNSUPPORTED; break;
    case CLBlastInvalidDimension:
    case CLBlastInvalidLeadDimA:
    case CLBlastInvalidLeadDimB:
    case CLBlastInvalidLeadDimC:
    case CLBlastInsufficientMemoryA:
    case CLBlastInsufficientMemoryB:
    case CLBlastInsufficientMemoryC:
    case CLBlastInvalidBatchCount: code = MT_ERR_INVALID; break;
    default: break;
    }
    return mt_err_set(code, "%s(m=%lld, n=%lld, k=%lld, batch=%lld) on %s failed: %s", call,
                      (long long)m, (long long)n, (long long)k, (long long)batch,
                      dev->info.name, clblast_status_name(st));
}

/* One GEMM call description in CLBlast's terms (element offsets, size_t strides). */
typedef struct gemm_call {
    bool f64, ta, tb;
    size_t m, n, k;
    double alpha, beta;
    cl_mem a, b, c;
    size_t ao, bo, co, lda, ldb, ldc, sa, sb, sc, batch;
} gemm_call;

static CLBlastStatusCode gemm_run(const gemm_call *g, cl_command_queue *q)
{
    CLBlastTranspose ta = g->ta ? CLBlastTransposeYes : CLBlastTransposeNo;
    CLBlastTranspose tb = g->tb ? CLBlastTransposeYes : CLBlastTransposeNo;
    const CLBlastLayout rm = CLBlastLayoutRowMajor;
    if (g->batch == 1 && g->f64)
        return CLBlastDgemm(rm, ta, tb, g->m, g->n, g->k, g->alpha, g->a, g->ao, g->lda, g->b,
                            g->bo, g->ldb, g->beta, g->c, g->co, g->ldc, q, NULL);
    if (g->batch == 1)
        return CLBlastSgemm(rm, ta, tb, g->m, g->n, g->k, (float)g->alpha, g->a, g->ao, g->lda,
                            g->b, g->bo, g->ldb, (float)g->beta, g->c, g->co, g->ldc, q, NULL);
    if (g->f64)
        return CLBlastDgemmStridedBatched(rm, ta, tb, g->m, g->n, g->k, g->alpha, g->a, g->ao,
                                          g->lda, g->sa, g->b, g->bo, g->ldb, g->sb, g->beta,
                                          g->c, g->co, g->ldc, g->sc, g->batch, q, NULL);
    return CLBlastSgemmStridedBatched(rm, ta, tb, g->m, g->n, g->k, (float)g->alpha, g->a, g->ao,
                                      g->lda, g->sa, g->b, g->bo, g->ldb, g->sb, (float)g->beta,
                                      g->c, g->co, g->ldc, g->sc, g->batch, q, NULL);
}

/* C = beta * C for k == 0 (CLBlast rejects zero dimensions): zero fill for beta 0 (BLAS
 * semantics: C is not read), else CLBlast's scal row by row. */
static mt_status gemm_scale_c(mt_device *dev, const gemm_call *g, cl_command_queue *q)
{
    size_t es = g->f64 ? 8 : 4;
    for (size_t bi = 0; bi < g->batch; bi++) {
        for (size_t i = 0; i < g->m; i++) {
            size_t off = g->co + bi * g->sc + i * g->ldc;
            if (g->beta == 0.0) {
                double zero = 0.0;
                cl_int err = clEnqueueFillBuffer(*q, g->c, &zero, es, off * es, g->n * es, 0,
                                                 NULL, NULL);
                if (err != CL_SUCCESS)
                    return cl_fail(cl_code_status(err), err, dev, NULL,
                                   "clEnqueueFillBuffer(gemm C, k=0)");
                continue;
            }
            CLBlastStatusCode st =
                g->f64 ? CLBlastDscal(g->n, g->beta, g->c, off, 1, q, NULL)
                       : CLBlastSscal(g->n, (float)g->beta, g->c, off, 1, q, NULL);
            if (st != CLBlastSuccess)
                return clblast_fail(dev, st, g->f64 ? "CLBlastDscal" : "CLBlastSscal",
                                    (int64_t)g->m, (int64_t)g->n, 0, (int64_t)g->batch);
        }
    }
    return MT_OK;
}

/* Converts a byte offset to elements; ERR_INVALID when it is not a whole element. */
static mt_status elem_offset(mt_device *dev, size_t boff, size_t es, char which, size_t *out)
{
    if (boff % es != 0)
        return mt_err_set(MT_ERR_INVALID,
                          "gemm on %s: byte offset %zu of %c is not a multiple of the element "
                          "size %zu",
                          dev->info.name, boff, which, es);
    *out = boff / es;
    return MT_OK;
}

/* A leading dimension only matters when its matrix has more than one row (row-major storage);
 * CLBlast still checks it against the column count, so an unused one is raised to that. */
static size_t fix_ld(int64_t ld, size_t rows, size_t cols)
{
    size_t l = ld > 0 ? (size_t)ld : 0;
    return rows <= 1 && l < cols ? cols : l;
}

static mt_status ocl_gemm(mt_device *dev, mt_dtype dt, bool trans_a, bool trans_b, int64_t m,
                          int64_t n, int64_t k, double alpha, void *a, size_t a_off, int64_t lda,
                          int64_t stride_a, void *b, size_t b_off, int64_t ldb, int64_t stride_b,
                          double beta, void *c, size_t c_off, int64_t ldc, int64_t stride_c,
                          int64_t batch, mt_stream *s)
{
    if (dt != MT_FLOAT32 && dt != MT_FLOAT64)
        return mt_err_set(MT_ERR_DTYPE, "gemm on %s: CLBlast path takes float32 or float64, not %s",
                          dev->info.name, mt_dtype_name(dt));
    if (dt == MT_FLOAT64 && !dev->info.fp64)
        return mt_err_set(MT_ERR_UNSUPPORTED, "gemm on %s: the device has no float64",
                          dev->info.name);
    if (m < 0 || n < 0 || k < 0 || batch < 0)
        return mt_err_set(MT_ERR_INVALID, "gemm on %s: negative size (m=%lld n=%lld k=%lld "
                          "batch=%lld)", dev->info.name, (long long)m, (long long)n, (long long)k,
                          (long long)batch);
    if (m == 0 || n == 0 || batch == 0) return MT_OK;
    size_t es = mt_dtype_size(dt);
    gemm_call g = {.f64 = dt == MT_FLOAT64, .ta = trans_a, .tb = trans_b, .m = (size_t)m,
                   .n = (size_t)n, .k = (size_t)k, .alpha = alpha, .beta = beta,
                   .a = (cl_mem)a, .b = (cl_mem)b, .c = (cl_mem)c, .batch = (size_t)batch};
    mt_status st = elem_offset(dev, a_off, es, 'A', &g.ao);
    if (st == MT_OK) st = elem_offset(dev, b_off, es, 'B', &g.bo);
    if (st == MT_OK) st = elem_offset(dev, c_off, es, 'C', &g.co);
    if (st != MT_OK) return st;
    /* Row-major: op(A) is m x k, stored k x m when transposed; likewise B. */
    g.lda = trans_a ? fix_ld(lda, g.k, g.m) : fix_ld(lda, g.m, g.k);
    g.ldb = trans_b ? fix_ld(ldb, g.n, g.k) : fix_ld(ldb, g.k, g.n);
    g.ldc = fix_ld(ldc, g.m, g.n);
    cl_command_queue q = queue_of(dev, s);
    if (k == 0) {
        if (stride_c <= 0 && batch > 1)
            return mt_err_set(MT_ERR_INVALID, "gemm on %s: batched C needs a positive stride",
                              dev->info.name);
        g.sc = (size_t)stride_c;
        return gemm_scale_c(dev, &g, &q);
    }
    /* CLBlast's strides are unsigned: a negative one (a reversed batch view) runs as one
     * call per matrix with the offsets computed here. */
    bool negative = stride_a < 0 || stride_b < 0 || stride_c < 0;
    if (!negative) {
        g.sa = (size_t)stride_a;
        g.sb = (size_t)stride_b;
        g.sc = (size_t)stride_c;
        CLBlastStatusCode cs = gemm_run(&g, &q);
        if (cs != CLBlastSuccess)
            return clblast_fail(dev, cs,
                                batch > 1 ? (g.f64 ? "CLBlastDgemmStridedBatched"
                                                   : "CLBlastSgemmStridedBatched")
                                          : (g.f64 ? "CLBlastDgemm" : "CLBlastSgemm"),
                                m, n, k, batch);
        return MT_OK;
    }
    gemm_call one = g;
    one.batch = 1;
    for (int64_t i = 0; i < batch; i++) {
        one.ao = (size_t)((int64_t)g.ao + i * stride_a);
        one.bo = (size_t)((int64_t)g.bo + i * stride_b);
        one.co = (size_t)((int64_t)g.co + i * stride_c);
        CLBlastStatusCode cs = gemm_run(&one, &q);
        if (cs != CLBlastSuccess)
            return clblast_fail(dev, cs, g.f64 ? "CLBlastDgemm" : "CLBlastSgemm", m, n, k, batch);
    }
    return MT_OK;
}

/* ---------------------------------------------------------------- the vtable */

const mt_device_ops mt__opencl_ops = {
    .abi_version = MT_DEVICE_OPS_ABI,
    .backend = "opencl",
    .klang = MT_KLANG_OPENCL,
    .enumerate = ocl_enumerate,
    .open = ocl_open,
    .close = ocl_close,
    .alloc = ocl_alloc,
    .free = ocl_free,
    .host_ptr = NULL, /* cl_mem is not host-addressable */
    .write = ocl_write,
    .read = ocl_read,
    .copy = ocl_copy,
    .kernel_build = ocl_kernel_build,
    .kernel_free = ocl_kernel_free,
    .kernel_launch = ocl_kernel_launch,
    .sync = ocl_sync,
    .stream_new = ocl_stream_new,
    .stream_free = ocl_stream_free,
    .stream_sync = ocl_stream_sync,
    .event_new = ocl_event_new,
    .event_free = ocl_event_free,
    .event_record = ocl_event_record,
    .event_wait = ocl_event_wait,
    .event_sync = ocl_event_sync,
    .event_elapsed = ocl_event_elapsed,
    .gemm = ocl_gemm,
};
