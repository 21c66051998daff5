/* Private to src/gpuarray (and the tests of mltrain that check generated CUDA code): the CUDA
 * emulation device "cudaemu:0" (device_cudaemu.c). It behaves like a CUDA device towards
 * everything above gpuarray (CUDA C kernels, memory not host-addressable), compiles every kernel
 * with NVRTC for sm_80 and sm_90, and runs it on the host as C++, so machines without a GPU
 * check and execute the CUDA code generator's output. Built with MT_WITH_CUDA only. */
#ifndef MT_GPUARRAY_CUDAEMU_H
#define MT_GPUARRAY_CUDAEMU_H

#include <stdbool.h>
#include <stdint.h>

#include "mltrain/core.h"

/* Process-wide counters of the CUDA emulation device. */
typedef struct mt_cudaemu_stats {
    int64_t kernels;       /* kernels built on cudaemu (each source once per device) */
    int64_t nvrtc_checked; /* of those, compiled by NVRTC for every architecture checked */
    int64_t nvrtc_cached;  /* of nvrtc_checked: compiled by an earlier process (same source,
                            * same NVRTC version; its record in the kernel cache) */
    int64_t cxx_compiled;  /* host C++ compiles run (the rest came from the kernel cache) */
    int64_t launches;      /* kernel launches */
    bool nvrtc_available;  /* libnvrtc could be loaded (false: kernels run unchecked) */
} mt_cudaemu_stats;

/* The backend vtable (registered in device.c). */
extern const struct mt_device_ops mt__cudaemu_ops;

void mt__cudaemu_get_stats(mt_cudaemu_stats *out);
/* The architectures every kernel is compiled for ("sm_80 and sm_90"), for messages. */
const char *mt__cudaemu_archs_text(void);

#endif
