/* Control and introspection functions of the stand-in CUDA driver (cuda_standin.c, built as
 * libmt_cuda_standin.so) and the stand-in cuDNN (cudnn_standin.c, libmt_cudnn_standin.so):
 * test doubles of libcuda.so.1 and libcudnn.so.9 that let the CUDA backend's host logic run
 * without a GPU (tests/gpuarray/test_cuda_standin.c).
 *
 * The libraries are loaded by the backend itself (MLTRAIN_LIBCUDA / MLTRAIN_LIBCUDNN); a test
 * reaches these functions with dlopen(path, RTLD_NOW | RTLD_NOLOAD) and dlsym on the same path,
 * so it sees the very instance the backend uses. Nothing links against the libraries: the
 * declarations below are for the libraries' own definitions and for __typeof__ in the tests. */
#ifndef MT_TESTS_STANDIN_H
#define MT_TESTS_STANDIN_H

#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------- the CUDA driver stand-in */

#define MT_STANDIN_CU_NAME "mltrain CUDA stand-in"
#define MT_STANDIN_CU_SMS 132
#define MT_STANDIN_CU_TOTAL_MEM ((size_t)80 << 30)
#define MT_STANDIN_CU_DRIVER 13000
/* bytes of guard pattern before and after every allocation (device and pinned host) */
#define MT_STANDIN_GUARD 64

typedef struct mt_standin_cu_stats {
    int64_t live_allocs;      /* cuMemAlloc minus cuMemFree */
    int64_t live_bytes;       /* bytes of those */
    int64_t alloc_calls;      /* successful cuMemAlloc calls */
    int64_t live_host_allocs; /* cuMemHostAlloc minus cuMemFreeHost */
    int64_t host_alloc_calls; /* cuMemHostAlloc calls (failed ones included) */
    int64_t live_streams;     /* cuStreamCreate minus cuStreamDestroy */
    int64_t live_events;      /* cuEventCreate minus cuEventDestroy */
    int64_t ctx_retains;      /* primary context retains minus releases */
    int64_t queued_copies;    /* copies to or from pinned memory that went through a queue */
    int64_t pending_ops;      /* copies and event records queued and not yet done */
    int64_t module_loads;     /* cuModuleLoadData calls (all refused) */
    int64_t launches;         /* cuLaunchKernel calls (all refused) */
    int64_t syncs;            /* cuStreamSynchronize + cuEventSynchronize + cuCtxSynchronize */
} mt_standin_cu_stats;

/* Misuse found so far (a write past an allocation, a copy outside one, freeing memory a queued
 * copy still uses, a release without a retain, ...): each is reported on stderr when found. */
int64_t mt_standin_errors(void);
void mt_standin_cu_stats_get(mt_standin_cu_stats *out);
/* Checks the guard bytes of every live allocation now; returns the errors it found (they are
 * added to mt_standin_errors). Freeing checks them too. */
int64_t mt_standin_check_guards(void);
/* Fault injection: after `skip` further successful calls of driver entry `entry` (its symbol
 * name, e.g. "cuMemHostAlloc", "cuMemcpyHtoDAsync_v2", "cuMemAlloc_v2"), the next `count` calls
 * fail with CUresult `result` without doing anything. Returns 0, or -1 for an unknown entry. */
int mt_standin_cu_fail(const char *entry, int64_t skip, int64_t count, int result);
/* CUresult values for it (cuda.h's, for tests built without the toolkit's headers) */
#define MT_STANDIN_CUDA_ERROR_OUT_OF_MEMORY 2
#define MT_STANDIN_CUDA_ERROR_LAUNCH_FAILED 719
/* For the cuDNN stand-in: whether [p, p + n) lies inside one live device allocation; whether
 * stream is a live stream (NULL, the legacy stream, counts as live); runs every copy queued on
 * stream (its work is ordered before what follows on it); whether a context is current on the
 * calling thread. */
int mt_standin_cu_range_ok(const void *p, size_t n);
int mt_standin_cu_stream_ok(const void *stream);
void mt_standin_cu_stream_drain(void *stream);
int mt_standin_cu_ctx_current(void);

/* ---------------------------------------------------------------- the cuDNN stand-in */

#define MT_STANDIN_DNN_VERSION 90100

typedef struct mt_standin_dnn_stats {
    int64_t create_calls;     /* cudnnCreate calls (failed ones included) */
    int64_t live_handles;     /* cudnnCreate minus cudnnDestroy */
    int64_t live_descs;       /* descriptors of every kind, created minus destroyed */
    int64_t live_tensors, live_filters, live_convs, live_pools;
    int64_t queries[3];       /* cudnnGet*Algorithm_v7: forward, backward data, backward filter */
    int64_t execs[3];         /* convolutions run (successful), same order */
    int64_t pool_execs[2];    /* pooling forward, backward (successful) */
    int64_t failed_execs;     /* executions failed on purpose (mt_standin_dnn_fail_execs) */
    int64_t violations;       /* calls outside the contract (each reported on stderr) */
    int64_t linked;           /* 1: the CUDA stand-in was found, pointers and streams checked */
    /* what the last successful convolution execution of each kind ran: its algorithm (-1:
     * none yet), the convolution descriptor's cudnnMathType_t and the workspace bytes */
    int64_t last_algo[3], last_math[3], last_ws[3];
    int64_t searches[3];      /* cudnnFind*AlgorithmEx calls (failed ones included) */
    int64_t failed_searches;  /* searches failed on purpose (mt_standin_dnn_fail_searches) */
    /* the last search of each kind: the workspace bytes it was given, and the largest workspace
     * of an entry of the heuristic's ranking that mltrain may take for that convolution */
    int64_t last_search_ws[3], last_search_need[3];
    /* 1: the last execution of each kind ran on the very pointers (operands, output) the last
     * search of that kind was given */
    int64_t last_exec_as_searched[3];
} mt_standin_dnn_stats;

/* cudnnMathType_t values (cudnn.h's, for tests built without its headers) */
#define MT_STANDIN_DNN_TENSOR_OP_MATH 1
#define MT_STANDIN_DNN_FMA_MATH 3

void mt_standin_dnn_stats_get(mt_standin_dnn_stats *out);
/* The heuristic offers no acceptable algorithm (only ones mltrain must skip) for convolutions
 * whose batch size (N of x) is n; -1 turns it off. */
void mt_standin_dnn_refuse_batch(int n);
/* cudnnCreate fails (CUDNN_STATUS_NOT_INITIALIZED) while this environment variable is set to a
 * non-empty value other than 0 (read at each call: the library is loaded by the first one). */
#define MT_STANDIN_DNN_FAIL_CREATE_ENV "MLTRAIN_STANDIN_CUDNN_FAIL_CREATE"
/* on = 0: the heuristic's tensor-op entry (the one acceptable only with TF32) is reported as
 * CUDNN_STATUS_NOT_SUPPORTED, so TF32 allowed still ends with an FMA entry; 1 (default):
 * offered. */
void mt_standin_dnn_offer_tf32(int on);
/* The next n convolution or pooling executions fail with CUDNN_STATUS_EXECUTION_FAILED. */
void mt_standin_dnn_fail_execs(int n);
/* The next n algorithm searches (cudnnFind*AlgorithmEx) fail with CUDNN_STATUS_INTERNAL_ERROR
 * after filling the output with NaNs. */
void mt_standin_dnn_fail_searches(int n);
/* Algorithms of a convolution of kind k (0 forward, 1 backward data, 2 backward filter):
 * good: the heuristic's first acceptable entry with FMA math (what runs without TF32 and
 * without a search); tf32: the heuristic's entry that is acceptable only with TF32 allowed
 * (mathType CUDNN_TENSOR_OP_MATH, ranked before the good one); found: the fastest acceptable
 * FMA entry of a search (another algorithm than good, needing more workspace than good: a
 * search given only good's workspace cannot run it). */
int mt_standin_dnn_good_algo(int kind);
int mt_standin_dnn_tf32_algo(int kind);
int mt_standin_dnn_found_algo(int kind);
/* A variant of the stand-in cuDNN built without the cudnnFind*AlgorithmEx entry points
 * (compiled with MT_STANDIN_NO_FIND, libmt_cudnn_standin_nofind.so): CTest puts its path in
 * this environment variable. */
#define MT_STANDIN_DNN_NOFIND_ENV "MLTRAIN_STANDIN_CUDNN_NOFIND"

#endif
