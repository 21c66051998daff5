/* DLPack export and import: zero-copy exchange of arrays with other frameworks.
 *
 * Export hands out a DLManagedTensor whose manager context holds one reference on the array's
 * buffer plus the shape and stride storage; the consumer calls its deleter once, which drops
 * that reference. Import wraps the tensor's memory in an mt_buffer (mt__buffer_wrap) whose
 * deleter calls the tensor's deleter when the last view of it is released.
 *
 * Ownership on import: only a successful mt_array_from_dlpack takes the tensor. On any error the
 * tensor's deleter is NOT called and the caller still owns it (and must call it), so a failed
 * import never frees memory behind the producer's back.
 *
 * Devices: the device type comes from the buffer's device info backend string ("host" ->
 * kDLCPU with data = the host pointer, "opencl" -> kDLOpenCL with data = the cl_mem handle,
 * "cuda" -> kDLCUDA with data = the device pointer), never from build flags. The OpenCL
 * device_id is the device's position among the OpenCL devices of mt_device_list(); importing an
 * OpenCL tensor opens that device and assumes the cl_mem belongs to its context (true for
 * tensors exported by mltrain; foreign OpenCL contexts cannot be checked here).
 *
 * dtypes: bool is exported as kDLBool (code 6, bits 8; DLPack 0.8's code, which Debian 12's
 * dlpack.h 0.6 lacks, so it is defined here), bfloat16 as kDLBfloat. Import also accepts
 * kDLUInt bits 8 (what older PyTorch used for bool) as uint8. Complex, opaque handles and
 * vector (lanes != 1) types are refused. Shapes and strides are in elements: an array whose byte
 * strides are not multiples of its item size cannot be exported. */
#include <dlpack/dlpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpuarray_impl.h"

#if defined(DLPACK_MAJOR_VERSION) || (defined(DLPACK_VERSION) && DLPACK_VERSION >= 80)
#define MT_DL_BOOL ((uint8_t)kDLBool)
#else
#define MT_DL_BOOL ((uint8_t)6) /* kDLBool in DLPack >= 0.8 */
#endif

typedef struct dl_export {
    DLManagedTensor tensor;
    mt_buffer *buf; /* the reference the tensor holds */
    int64_t shape[MT_MAX_DIMS];
    int64_t strides[MT_MAX_DIMS];
} dl_export;

static void dl_export_delete(DLManagedTensor *self)
{
    if (!self) return;
    dl_export *ex = self->manager_ctx;
    mt_buffer_release(ex->buf);
    mt_free(ex);
}

static const char *dl_device_type_name(int t)
{
    switch (t) {
    case kDLCPU: return "CPU";
    case kDLCUDA: return "CUDA";
    case kDLCUDAHost: return "CUDA host";
    case kDLOpenCL: return "OpenCL";
    case kDLVulkan: return "Vulkan";
    case kDLMetal: return "Metal";
    case kDLVPI: return "VPI";
    case kDLROCM: return "ROCm";
    case kDLROCMHost: return "ROCm host";
    case kDLExtDev: return "ExtDev";
    case kDLCUDAManaged: return "CUDA managed";
    default: return "unknown";
    }
}

/* Position of an OpenCL device among the OpenCL devices mt_device_list() reports, or -1. */
static int32_t opencl_ordinal(const char *name)
{
    mt_device_info *infos = NULL;
    int32_t count = 0, ord = 0, found = -1;
    if (mt_device_list(&infos, &count) != MT_OK) return -1;
    for (int32_t i = 0; i < count && found < 0; i++) {
        if (strcmp(infos[i].backend, "opencl") != 0) continue;
        if (strcmp(infos[i].name, name) == 0) found = ord;
        ord++;
    }
    mt_free(infos);
    return found;
}

/* Name of the ordinal-th OpenCL device into buf, or false. */
static bool opencl_name(int32_t ordinal, char *buf, size_t len)
{
    mt_device_info *infos = NULL;
    int32_t count = 0, ord = 0;
    bool ok = false;
    if (mt_device_list(&infos, &count) != MT_OK) return false;
    for (int32_t i = 0; i < count && !ok; i++) {
        if (strcmp(infos[i].backend, "opencl") != 0) continue;
        if (ord++ == ordinal) {
            snprintf(buf, len, "%s", infos[i].name);
            ok = true;
        }
    }
    mt_free(infos);
    return ok;
}

static mt_status dl_dtype_of(mt_dtype dt, DLDataType *out)
{
    out->lanes = 1;
    out->bits = (uint8_t)(8 * mt_dtype_size(dt));
    switch (dt) {
    case MT_BOOL: out->code = MT_DL_BOOL; return MT_OK;
    case MT_BFLOAT16: out->code = kDLBfloat; return MT_OK;
    default: break;
    }
    switch (mt_dtype_kind(dt)) {
    case 'i': out->code = kDLInt; return MT_OK;
    case 'u': out->code = kDLUInt; return MT_OK;
    case 'f': out->code = kDLFloat; return MT_OK;
    default: return mt_err_set(MT_ERR_DTYPE, "to_dlpack: invalid dtype %d", (int)dt);
    }
}

static mt_status dl_dtype_from(DLDataType t, mt_dtype *out)
{
    if (t.lanes != 1)
        return mt_err_set(MT_ERR_DTYPE, "from_dlpack: vector dtypes (lanes=%u) are not supported",
                          (unsigned)t.lanes);
    mt_dtype dt = MT_DTYPE_COUNT;
    int bits = t.bits;
    switch (t.code) {
    case kDLInt:
        dt = bits == 8 ? MT_INT8 : bits == 16 ? MT_INT16 : bits == 32 ? MT_INT32
           : bits == 64 ? MT_INT64 : MT_DTYPE_COUNT;
        break;
    case kDLUInt:
        dt = bits == 8 ? MT_UINT8 : bits == 16 ? MT_UINT16 : bits == 32 ? MT_UINT32
           : bits == 64 ? MT_UINT64 : MT_DTYPE_COUNT;
        break;
    case kDLFloat:
        dt = bits == 16 ? MT_FLOAT16 : bits == 32 ? MT_FLOAT32 : bits == 64 ? MT_FLOAT64
           : MT_DTYPE_COUNT;
        break;
    case kDLBfloat: dt = bits == 16 ? MT_BFLOAT16 : MT_DTYPE_COUNT; break;
    case kDLComplex:
        return mt_err_set(MT_ERR_DTYPE, "from_dlpack: complex dtypes (complex%d) are not "
                          "supported", bits);
    case kDLOpaqueHandle:
        return mt_err_set(MT_ERR_DTYPE, "from_dlpack: opaque handle dtypes are not supported");
    default:
        if (t.code == MT_DL_BOOL && bits == 8) dt = MT_BOOL;
        break;
    }
    if (dt == MT_DTYPE_COUNT)
        return mt_err_set(MT_ERR_DTYPE, "from_dlpack: unsupported dtype (code %u, %d bits)",
                          (unsigned)t.code, bits);
    *out = dt;
    return MT_OK;
}

/* Device type, id and data pointer of an array's buffer, by its backend's name. */
static mt_status dl_device_of(const mt_array *a, DLDevice *dev, void **data)
{
    const mt_device *d = mt_array_device(a);
    const mt_device_info *info = mt_device_get_info(d);
    if (strcmp(info->backend, "host") == 0) {
        dev->device_type = kDLCPU;
        dev->device_id = 0;
        *data = mt_buffer_host_ptr(a->buf);
        return MT_OK;
    }
    if (strcmp(info->backend, "opencl") == 0) {
        int32_t ord = opencl_ordinal(info->name);
        if (ord < 0)
            return mt_err_set(MT_ERR_NOT_FOUND, "to_dlpack: OpenCL device %s is not in the "
                              "device list", info->name);
        dev->device_type = kDLOpenCL;
        dev->device_id = ord;
        *data = a->buf->handle;
        return MT_OK;
    }
    if (strcmp(info->backend, "cuda") == 0) {
        const char *colon = strchr(info->name, ':');
        dev->device_type = kDLCUDA;
        dev->device_id = colon ? atoi(colon + 1) : 0;
        *data = a->buf->handle;
        return MT_OK;
    }
    return mt_err_set(MT_ERR_UNSUPPORTED, "to_dlpack: backend '%s' of device %s has no DLPack "
                      "device type", info->backend, info->name);
}

mt_status mt_array_to_dlpack(struct DLManagedTensor **out, const mt_array *a)
{
    if (!out || !a || !a->buf)
        return mt_err_set(MT_ERR_INVALID, "to_dlpack: out or array is NULL or empty");
    *out = NULL;
    DLDataType dtype;
    mt_status st = dl_dtype_of(a->dtype, &dtype);
    if (st != MT_OK) return st;
    int64_t isz = (int64_t)mt_dtype_size(a->dtype);
    dl_export *ex = mt_calloc(1, sizeof *ex);
    if (!ex) return mt_err_prefix(MT_ERR_NOMEM, "to_dlpack: ");
    for (int32_t i = 0; i < a->ndim; i++) {
        ex->shape[i] = a->dims[i];
        if (a->strides[i] % isz != 0) {
            char desc[256];
            mt_free(ex);
            return mt_err_set(MT_ERR_INVALID, "to_dlpack: byte stride %lld of axis %d is not a "
                              "multiple of the item size %lld (%s); DLPack strides count "
                              "elements", (long long)a->strides[i], (int)i, (long long)isz,
                              mt_array_describe(a, desc, sizeof desc));
        }
        ex->strides[i] = a->strides[i] / isz;
    }
    DLTensor *t = &ex->tensor.dl_tensor;
    st = dl_device_of(a, &t->device, &t->data);
    if (st != MT_OK) {
        mt_free(ex);
        return st;
    }
    t->ndim = a->ndim;
    t->dtype = dtype;
    t->shape = ex->shape;
    t->strides = ex->strides;
    t->byte_offset = a->offset;
    mt_buffer_retain(a->buf);
    ex->buf = a->buf;
    ex->tensor.manager_ctx = ex;
    ex->tensor.deleter = dl_export_delete;
    *out = &ex->tensor;
    return MT_OK;
}

/* The wrapped buffer's deleter: hands the tensor back to its producer. */
static void dl_import_release(void *ctx)
{
    DLManagedTensor *t = ctx;
    if (t->deleter) t->deleter(t);
}

/* Opens the mltrain device that holds a DLPack device's memory. */
static mt_status dl_open_device(mt_device **out, DLDevice d)
{
    switch ((int)d.device_type) {
    case kDLCPU:
    case kDLCUDAHost: /* pinned host memory is ordinary host-addressable memory */
        return mt_device_open(out, "host");
    case kDLOpenCL: {
        char name[64];
        if (d.device_id < 0 || !opencl_name(d.device_id, name, sizeof name))
            return mt_err_set(MT_ERR_NOT_FOUND, "from_dlpack: there is no OpenCL device #%d",
                              d.device_id);
        return mt_device_open(out, name);
    }
    case kDLCUDA: {
        char name[32];
        snprintf(name, sizeof name, "cuda:%d", d.device_id);
        return mt_device_open(out, name);
    }
    default:
        return mt_err_set(MT_ERR_UNSUPPORTED, "from_dlpack: device type %d (%s) is not supported",
                          (int)d.device_type, dl_device_type_name((int)d.device_type));
    }
}

/* Byte strides from the tensor (element strides, or C-contiguous when NULL) and the extent of
 * the addressed bytes relative to element 0: [lo, hi). */
static mt_status dl_layout(const DLTensor *t, int64_t isz, int64_t *strides, int64_t *lo,
                           int64_t *hi)
{
    int64_t s = isz;
    bool empty = false;
    for (int32_t i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] < 0)
            return mt_err_set(MT_ERR_INVALID, "from_dlpack: negative dimension %lld on axis %d",
                              (long long)t->shape[i], (int)i);
        if (t->shape[i] == 0) empty = true;
        if (t->strides) {
            if (__builtin_mul_overflow(t->strides[i], isz, &strides[i]))
                return mt_err_set(MT_ERR_RANGE, "from_dlpack: stride %lld on axis %d overflows",
                                  (long long)t->strides[i], (int)i);
        } else {
            strides[i] = s;
            if (t->shape[i] > 0 && __builtin_mul_overflow(s, t->shape[i], &s))
                return mt_err_set(MT_ERR_RANGE, "from_dlpack: shape too large");
        }
    }
    *lo = 0;
    *hi = empty ? 0 : isz;
    for (int32_t i = 0; i < t->ndim && !empty; i++) {
        int64_t span;
        if (__builtin_mul_overflow(t->shape[i] - 1, strides[i], &span) ||
            __builtin_add_overflow(span > 0 ? *hi : *lo, span, span > 0 ? hi : lo))
            return mt_err_set(MT_ERR_RANGE, "from_dlpack: the tensor's extent overflows");
    }
    return MT_OK;
}

mt_status mt_array_from_dlpack(mt_array *out, struct DLManagedTensor *mt)
{
    if (!out || !mt) return mt_err_set(MT_ERR_INVALID, "from_dlpack: out or tensor is NULL");
    const DLTensor *t = &mt->dl_tensor;
    mt_dtype dt = MT_DTYPE_COUNT;
    mt_status st = dl_dtype_from(t->dtype, &dt);
    if (st != MT_OK) return st;
    if (t->ndim < 0 || t->ndim > MT_MAX_DIMS)
        return mt_err_set(MT_ERR_RANGE, "from_dlpack: ndim %d is outside 0..%d", t->ndim,
                          MT_MAX_DIMS);
    if (t->ndim > 0 && !t->shape)
        return mt_err_set(MT_ERR_INVALID, "from_dlpack: shape is NULL for a %d-d tensor",
                          t->ndim);
    int64_t isz = (int64_t)mt_dtype_size(dt), lo, hi;
    mt_array a;
    memset(&a, 0, sizeof a);
    st = dl_layout(t, isz, a.strides, &lo, &hi);
    if (st != MT_OK) return st;
    if (t->byte_offset > (uint64_t)INT64_MAX)
        return mt_err_set(MT_ERR_RANGE, "from_dlpack: byte_offset %llu is too large",
                          (unsigned long long)t->byte_offset);
    int64_t boff = (int64_t)t->byte_offset;
    if (!t->data && hi > lo)
        return mt_err_set(MT_ERR_INVALID, "from_dlpack: data is NULL for a non-empty tensor");
    mt_device *dev;
    st = dl_open_device(&dev, t->device);
    if (st != MT_OK) return st;
    void *handle;
    size_t size;
    if (mt_device_is_host_addressable(dev)) {
        /* the buffer starts at the lowest addressed byte, so negative strides fit too */
        handle = t->data ? (char *)t->data + boff + lo : NULL;
        size = (size_t)(hi - lo);
        a.offset = (size_t)-lo;
    } else {
        /* a device handle cannot be offset: the buffer is the whole handle */
        if (boff + lo < 0) {
            mt_device_release(dev);
            return mt_err_set(MT_ERR_INVALID, "from_dlpack: negative strides reach %lld bytes "
                              "before the start of the device allocation", (long long)(boff + lo));
        }
        handle = t->data;
        size = (size_t)(boff + hi);
        a.offset = (size_t)boff;
    }
    st = mt__buffer_wrap(&a.buf, dev, handle, size, dl_import_release, mt);
    mt_device_release(dev); /* the buffer holds its own reference */
    if (st != MT_OK) return st;
    a.dtype = dt;
    a.ndim = t->ndim;
    for (int32_t i = 0; i < t->ndim; i++) a.dims[i] = t->shape[i];
    a.flags = MT_ARRAY_WRITEABLE;
    mt_array_update_flags(&a);
    *out = a;
    return MT_OK;
}
