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
    /* optional (page-locked staging of host<->device copies): NULL = direct copies only */
    __typeof__(&cuMemHostAlloc) MemHostAlloc;
    __typeof__(&cuMemFreeHost) MemFreeHost;
} mt_cu_api;

/* cuBLAS entry points (the _v2 API with 64-bit sizes). */
typedef struct mt_cublas_api {
    __typeof__(&cublasCreate_v2) Create;
    __typeof__(&cublasDestroy_v2) Destroy;
    __typeof__(&cublasSetStream_v2) SetStream;
    __typeof__(&cublasGetStatusName) GetStatusName; /* may be NULL */
    __typeof__(&cublasSetMathMode) SetMathMode;     /* may be NULL */
    __typeof__(&cublasSgemm_v2_64) Sgemm;
    __typeof__(&cublasDgemm_v2_64) Dgemm;
    __typeof__(&cublasSgemmStridedBatched_64) SgemmStridedBatched;
    __typeof__(&cublasDgemmStridedBatched_64) DgemmStridedBatched;
    /* optional (float16/bfloat16 products with float32 accumulation): NULL = no GemmEx, the
     * products go through float32 temporaries */
    __typeof__(&cublasGemmEx_64) GemmEx;
    __typeof__(&cublasGemmStridedBatchedEx_64) GemmStridedBatchedEx;
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

/* Page-locked staging of host<->device copies (device_cuda.c). A small pool of pinned host
 * buffers, allocated on the first large copy: pageable host memory is copied through them in
 * chunks with cuMemcpy*Async on the copy's stream, an event per buffer telling when the DMA
 * that last used it is done. `off` is set when pinning fails or a staged copy fails (the device
 * then uses direct copies only, as before); the pool is freed at device close. */
#define MT_CUDA_STAGE_MAX_BUFS 8
typedef struct mt_cuda_stage {
    pthread_mutex_t lock; /* held for a whole staged copy (try-lock: busy = direct copy) */
    bool tried;           /* the pool was (tried to be) allocated */
    bool off;             /* no staging on this device */
    bool async_writes;    /* MLTRAIN_CUDA_ASYNC_WRITES=1: staged writes return once queued */
    size_t pool_bytes;    /* MLTRAIN_CUDA_PINNED_MB (default 32 MiB; 0 = off) */
    size_t chunk;         /* bytes per buffer */
    int nbufs;
    int next;             /* round-robin index of the next buffer to fill */
    void *buf[MT_CUDA_STAGE_MAX_BUFS];
    CUevent ev[MT_CUDA_STAGE_MAX_BUFS];
    bool pending[MT_CUDA_STAGE_MAX_BUFS]; /* ev recorded after a copy that used buf */
    uint64_t up_bytes, down_bytes;        /* staged through this pool (under lock) */
} mt_cuda_stage;

/* Process-wide counters of the CUDA backend's optional fast paths (for tests and the GPU
 * check; callers without cuda.h declare them): bytes staged through pinned memory to the
 * device (to_device) or from it (device_cuda.c), and cuBLAS GemmEx calls (float16/bfloat16
 * products). Monotonic; relaxed atomics. */
uint64_t mt__cuda_staged_bytes(bool to_device);
uint64_t mt__cuda_gemmex_calls(void); /* cuda_gemm.c */

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
    bool half_refused[2]; /* cuBLAS refused GemmEx for float16 / bfloat16 (under blas_lock) */
    cublasHandle_t blas;
    const mt_cublas_api *cb;
    void *dnn; /* cuda_dnn.c's state (handle, plan cache), created on first use under blas_lock */
    bool tf32;          /* MLTRAIN_CUDA_TF32=1: float32 products may use TF32 tensor cores */
    bool dnn_benchmark; /* MLTRAIN_CUDNN_BENCHMARK=1: time cuDNN's algorithms once per shape */
    mt_cuda_stage stage; /* pinned staging of host<->device copies */
} mt_cuda_dev;

/* Makes the device's context current on the calling thread (every backend entry point calls
 * this first: driver contexts are per thread). */
mt_status mt__cuda_bind(mt_device *dev);
/* The CUstream of an mt_stream handle (NULL handle -> the compute stream). */
CUstream mt__cuda_stream(mt_device *dev, void *stream_impl);

/* cuda_gemm.c: the backend's gemm member: float32/float64 through cublas[SD]gemm, float16 and
 * bfloat16 through cublasGemmEx with float32 accumulation (ERR_DTYPE when this cuBLAS lacks
 * GemmEx or refuses the type on this GPU: the caller then uses float32 temporaries). */
mt_status mt__cuda_gemm(mt_device *dev, mt_dtype dt, bool trans_a, bool trans_b, int64_t m,
                        int64_t n, int64_t k, double alpha, void *a, size_t a_off, int64_t lda,
                        int64_t stride_a, void *b, size_t b_off, int64_t ldb, int64_t stride_b,
                        double beta, void *c, size_t c_off, int64_t ldc, int64_t stride_c,
                        int64_t batch, mt_stream *s);
/* Releases the device's cuBLAS handle (device close). */
void mt__cuda_gemm_close(mt_device *dev);

/* cuda_dnn.c: the backend's conv2d / pool2d members through cuDNN (see gpuarray_impl.h);
 * an error means "use the generic kernels". mt__cuda_dnn_close releases the device's handle
 * and cached convolution plans (device close); mt__cuda_dnn_calls counts the operations cuDNN
 * ran in this process. */
mt_status mt__cuda_dnn_conv2d(mt_device *dev, int32_t kind, mt_array *out, const mt_array *a,
                              const mt_array *b, const mt_conv2d_params *p);
mt_status mt__cuda_dnn_pool2d(mt_device *dev, bool backward, mt_array *out, const mt_array *x,
                              const mt_array *y, const mt_array *dy, const mt_pool2d_params *p);
void mt__cuda_dnn_close(mt_device *dev);
uint64_t mt__cuda_dnn_calls(void);
/* Heuristic algorithm queries (cudnnGet*Algorithm_v7) made in this process: one per new
 * convolution plan (direction, dtype, shapes, padding, stride) of a device, not per call. */
uint64_t mt__cuda_dnn_algo_queries(void);
/* Timed algorithm searches (cudnnFind*AlgorithmEx, MLTRAIN_CUDNN_BENCHMARK=1): one per new
 * plan when the search is on. */
uint64_t mt__cuda_dnn_algo_searches(void);

/* device_cuda.c: kernels loaded from the on-disk cache (for tests: a second build of the same
 * source in a fresh process or after a device reopen counts a hit). */
uint64_t mt__cuda_disk_cache_hits(void);

#endif
