/* Helpers of the tests that run on the CUDA emulation device cudaemu:0: opening it next to the
 * host, and the report every case prints of the kernels NVRTC compiled on the way. The test
 * needs src/gpuarray on its include path (cudaemu.h). */
#ifndef MT_TEST_CUDAEMU_H
#define MT_TEST_CUDAEMU_H

#include <stdio.h>

#include "cudaemu.h"
#include "mltrain/gpuarray.h"
#include "mt_test.h"

/* Opens the host and cudaemu:0 into *host and *emu unless *emu is open already; SKIPs where
 * cudaemu cannot run kernels (no C++ compiler). */
static inline void mt_test_cudaemu_open(mt_device **host, mt_device **emu)
{
    if (*emu) return;
    MT_CHECK_OK(mt_device_open(host, "host"));
    mt_status st = mt_device_open(emu, "cudaemu:0");
    if (st == MT_ERR_NOT_FOUND) MT_SKIP("cudaemu:0 cannot run kernels here (no C++ compiler)");
    MT_CHECK_OK(st);
}

/* Prints the NVRTC count and checks that no kernel escaped it. */
static inline void mt_test_cudaemu_report(void)
{
    mt_cudaemu_stats s;
    mt__cudaemu_get_stats(&s);
    if (s.nvrtc_available) {
        printf("cudaemu: %lld kernels compiled for %s (%lld by an earlier process, same NVRTC "
               "and source); %lld host C++ compiles, %lld launches\n",
               (long long)s.nvrtc_checked, mt__cudaemu_archs_text(), (long long)s.nvrtc_cached,
               (long long)s.cxx_compiled, (long long)s.launches);
        MT_CHECK_EQ_INT(s.nvrtc_checked, s.kernels);
    } else {
        printf("cudaemu: NVRTC not available: %lld kernels ran WITHOUT the %s check (skipped)\n",
               (long long)s.kernels, mt__cudaemu_archs_text());
    }
}

#endif
