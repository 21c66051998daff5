/* Private to the CUDA backend (device_cuda.c, cuda_gemm.c, cuda_api.c): the CUDA driver API
 * and cuBLAS as tables of function pointers resolved at run time, and the backend's device
 * state.
 *
 * Nothing here links against libcuda or libcublas: the toolkit headers give the types and
 * prototypes (each pointer's type is __typeof__ of the header's declaration, so a wrong
 * signature is a compile error), and the libraries are dlopen'ed on first use. Compiled only
 * when MT_HAVE_CUDA. */
#ifndef MT_GPUARRAY_CUDA_API_H
#define MT_GPUARRAY_CUDA_API_H

#include <cuda.h>
#include <cublas_api.h>

#include "gpuarray_impl.h"

/* Driver entry points (the versioned symbols the header's macros name, e.g. cuMemAlloc_v2). */
typedef struct mt_cu_api {
    __typeof__(&cuInit) Init;
    __typeof__(&cuDriverGetVersion) DriverGetVersion;
    __typeof__(&cuGetErrorName) GetErrorName;
    __typeof__(&cuGetErrorString) GetErrorString;
    __typeof__(&cuDeviceGetCount) DeviceGetCount;
    __typeof__(&cuDeviceGet) DeviceGet;
    __typeof__(&cuDeviceGetName) DeviceGetName;
    __typeof__(&cuDeviceTotalMem_v2) DeviceTotalMem;
    __typeof__(&cuDeviceGetAttribute) DeviceGetAttribute;
    __typeof__(&cuDevicePrimaryCtxRetain) DevicePrimaryCtxRetain;
    __typeof__(&cuDevicePrimaryCtxRelease_v2) DevicePrimaryCtxRelease;
    __typeof__(&cuCtxSetCurrent) CtxSetCurrent;
    __typeof__(&cuCtxSynchronize) CtxSynchronize;
    __typeof__(&cuStreamCreate) StreamCreate;
    __typeof__(&cuStreamDestroy_v2) StreamDestroy;
    __typeof__(&cuStreamSynchronize) StreamSynchronize;
    __typeof__(&cuStreamWaitEvent) StreamWaitEvent;
    __typeof__(&cuEventCreate) EventCreate;
    __typeof__(&cuEventDestroy_v2) EventDestroy;
    __typeof__(&cuEventRecord) EventRecord;
    __typeof__(&cuEventSynchronize) EventSynchronize;
    __typeof__(&cuEventQuery) EventQuery;
    __typeof__(&cuEventElapsedTime_v2) EventElapsedTime;
    __typeof__(&cuMemAlloc_v2) MemAlloc;
    __typeof__(&cuMemFree_v2) MemFree;
    __typeof__(&cuMemGetInfo_v2) MemGetInfo;
    __typeof__(&cuMemcpyHtoDAsync_v2) MemcpyHtoDAsync;
    __typeof__(&cuMemcpyDtoHAsync_v2) MemcpyDtoHAsync;
    __typeof__(&cuMemcpyDtoDAsync_v2) MemcpyDtoDAsync;
    __typeof__(&cuModuleLoadData) ModuleLoadData;
    __typeof__(&cuModuleUnload) ModuleUnload;
    __typeof__(&cuModuleGetFunction) ModuleGetFunction;
    __typeof__(&cuFuncGetAttribute) FuncGetAttribute;
    __typeof__(&cuFuncGetParamInfo) FuncGetParamInfo; /* optional (driver >= 12.4): may be NULL */
    __typeof__(&cuLaunchKernel) LaunchKernel;
} mt_cu_api;

/* cuBLAS entry points (the _v2 API with 64-bit sizes). */
typedef struct mt_cublas_api {
    __typeof__(&cublasCreate_v2) Create;
    __typeof__(&cublasDestroy_v2) Destroy;
    __typeof__(&cublasSetStream_v2) SetStream;
    __typeof__(&cublasGetStatusName) GetStatusName; /* may be NULL */
    __typeof__(&cublasSgemm_v2_64) Sgemm;
    __typeof__(&cublasDgemm_v2_64) Dgemm;
    __typeof__(&cublasSgemmStridedBatched_64) SgemmStridedBatched;
    __typeof__(&cublasDgemmStridedBatched_64) DgemmStridedBatched;
} mt_cublas_api;

/* The driver table after a successful cuInit(0), or NULL with the reason in why (dlopen's
 * message, a missing symbol, or cuInit's error name). Loaded once per process; thread-safe. */
const mt_cu_api *mt__cu_api(char *why, size_t why_len);
/* The cuBLAS table, or NULL with the reason. Loaded once per process; thread-safe. */
const mt_cublas_api *mt__cublas_api(char *why, size_t why_len);
/* "CUDA_ERROR_OUT_OF_MEMORY" (or "CUresult <n>" when the driver cannot name it). */
const char *mt__cu_err_name(CUresult r);
/* The mt_status a driver error maps to (out of memory -> ERR_NOMEM, else ERR_DEVICE). */
mt_status mt__cu_status(CUresult r);

/* Per-device state of an open CUDA device (mt_device.impl). */
typedef struct mt_cuda_dev {
    const mt_cu_api *cu;
    CUdevice device;
    CUcontext ctx;  /* the device's primary context (retained) */
    CUstream stream; /* the compute stream (non-blocking): the default mt_stream */
    int ordinal;
    int arch;       /* 10 * major + minor */
    int sm_count;
    int max_threads_per_block;
    pthread_mutex_t blas_lock; /* guards the cuBLAS handle (created on first use) */
    cublasHandle_t blas;
    const mt_cublas_api *cb;
    void *dnn; /* cudnnHandle_t (cuda_dnn.c), created on first use under blas_lock */
} mt_cuda_dev;

/* Makes the device's context current on the calling thread (every backend entry point calls
 * this first: driver contexts are per thread). */
mt_status mt__cuda_bind(mt_device *dev);
/* The CUstream of an mt_stream handle (NULL handle -> the compute stream). */
CUstream mt__cuda_stream(mt_device *dev, void *stream_impl);

/* cuda_gemm.c: the backend's gemm member (float32/float64 through cuBLAS). */
mt_status mt__cuda_gemm(mt_device *dev, mt_dtype dt, bool trans_a, bool trans_b, int64_t m,
                        int64_t n, int64_t k, double alpha, void *a, size_t a_off, int64_t lda,
                        int64_t stride_a, void *b, size_t b_off, int64_t ldb, int64_t stride_b,
                        double beta, void *c, size_t c_off, int64_t ldc, int64_t stride_c,
                        int64_t batch, mt_stream *s);
/* Releases the device's cuBLAS handle (device close). */
void mt__cuda_gemm_close(mt_device *dev);

/* cuda_dnn.c: the backend's conv2d / pool2d members through cuDNN (see gpuarray_impl.h);
 * an error means "use the generic kernels". mt__cuda_dnn_close releases the device's handle
 * (device close); mt__cuda_dnn_calls counts the operations cuDNN ran in this process. */
mt_status mt__cuda_dnn_conv2d(mt_device *dev, int32_t kind, mt_array *out, const mt_array *a,
                              const mt_array *b, const mt_conv2d_params *p);
mt_status mt__cuda_dnn_pool2d(mt_device *dev, bool backward, mt_array *out, const mt_array *x,
                              const mt_array *y, const mt_array *dy, const mt_pool2d_params *p);
void mt__cuda_dnn_close(mt_device *dev);
uint64_t mt__cuda_dnn_calls(void);

/* device_cuda.c: kernels loaded from the on-disk cache (for tests: a second build of the same
 * source in a fresh process or after a device reopen counts a hit). */
uint64_t mt__cuda_disk_cache_hits(void);

#endif
