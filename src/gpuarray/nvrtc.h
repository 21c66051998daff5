/* Private to src/gpuarray: NVRTC, the CUDA C compiler library, loaded at run time.
 *
 * libnvrtc is found by dlopen ($MLTRAIN_NVRTC, then libnvrtc.so.13, libnvrtc.so, then
 * $CUDA_HOME/lib64 and /usr/local/cuda/lib64), so a binary built with MT_WITH_CUDA runs on
 * machines without the toolkit (then CUDA code generation reports "not available").
 * NVRTC works without a GPU: CI compiles every generated kernel with it. Thread-safe. */
#ifndef MT_GPUARRAY_NVRTC_H
#define MT_GPUARRAY_NVRTC_H

#include <stdbool.h>
#include <stddef.h>

#include "mltrain/core.h"

/* True when libnvrtc could be loaded; otherwise false and why (dlopen's message). */
bool mt__nvrtc_available(char *why, size_t why_len);
/* NVRTC's version (e.g. 13, 0); ERR_NOT_FOUND when it cannot be loaded. */
mt_status mt__nvrtc_version(int *major, int *minor);
/* The architectures NVRTC can target (ascending, e.g. 75, 80, ..., 121): up to cap of them
 * into archs; returns how many (0 when NVRTC cannot be loaded). */
int32_t mt__nvrtc_archs(int *archs, int32_t cap);

/* Compiles CUDA C `source` (program name `name`, used in messages) for the architecture
 * sm_<arch> (arch = 10 * major + minor, e.g. 80, 90). cubin = true gives a cubin (SASS) for
 * exactly that architecture; false gives PTX for compute_<arch>. Options: -std=c++17, the
 * architecture, --fmad=false (so results match the host: no contraction of a*b+c), and
 * -default-device. *out (mt_malloc'd, caller frees with mt_free) receives the image,
 * *out_len its size in bytes (PTX includes the terminating NUL).
 * Errors: ERR_NOT_FOUND (no libnvrtc), ERR_COMPILE with NVRTC's error name, the architecture
 * and the first lines of the compile log. */
mt_status mt__nvrtc_compile(const char *source, const char *name, int arch, bool cubin,
                            char **out, size_t *out_len);

#endif
