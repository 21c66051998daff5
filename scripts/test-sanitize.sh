#!/usr/bin/env bash
# Builds mltrain with AddressSanitizer + UndefinedBehaviorSanitizer (LeakSanitizer included) into
# build-asan and runs under them the unit tests and the MPI tests at 2 ranks. Any report fails
# the test it occurs in: UBSan does not recover (-fno-sanitize-recover=all), ASan and LSan exit
# non-zero. CI runs this after scripts/test.sh.
#
# What runs (docs/security.md, "Sanitizers"):
# - pass 1, leak checking on: every test labelled `unit` except those that mostly exercise
#   third-party code (PoCL/LLVM for OpenCL, NVRTC, the CUDA emulation device's g++ builds:
#   minutes under ASan and covered unsanitized by scripts/test.sh) and the 20-million-element
#   reduction cases (the same code as their small siblings). Leaks inside libraries that keep
#   memory until exit (fontconfig, PoCL, LLVM) are suppressed in tests/lsan.supp.
# - pass 2, leak checking off: the 2-rank MPI tests and the tests that start MPI as a singleton.
#   Open MPI loads its components with dlopen and unloads them in MPI_Finalize, so LSan sees
#   their allocations as leaks from unknown modules that no suppression can name. ASan and UBSan
#   stay on.
# Usage: scripts/test-sanitize.sh [extra ctest arguments for both passes, e.g. -E test_reduce;
#        a -R given here replaces each pass's own selection]
# Environment: ASAN_BUILD_DIR (default build-asan).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export BUILD_DIR=${ASAN_BUILD_DIR:-build-asan}
# -O1 -g: readable stacks at a reasonable speed; Debug keeps MT_ASSERT on. No -Werror here: the
# warnings gate is scripts/test.sh's build, and the instrumentation changes what GCC's flow
# analysis sees (false -Wformat-truncation at -O1).
scripts/build.sh -DMT_SANITIZE=address,undefined -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_C_FLAGS_DEBUG="-O1 -g" -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g" -DMT_WERROR=OFF
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export LSAN_OPTIONS="suppressions=$root/tests/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
mpi='\.np2\.|^mpi\.train\.[a-z]+\.2$|mpi_singleton'
skip='opencl|cudaemu|cuda_source|nvrtc|_20m_|^slurm\.|\.np([013-9]|[1-9][0-9]+)\.|^mpi\.train\.[a-z]+\.[013-9]$'
rc=0
echo "== sanitizers, pass 1: unit tests, leak checking on"
ASAN_OPTIONS="detect_leaks=1" ctest --test-dir "$BUILD_DIR" --output-on-failure -j2 -LE slow \
  -L unit -E "$skip|$mpi" "$@" || rc=1
echo "== sanitizers, pass 2: MPI tests at 2 ranks, leak checking off"
ASAN_OPTIONS="detect_leaks=0" ctest --test-dir "$BUILD_DIR" --output-on-failure -j2 -LE slow \
  -L 'unit|mpi' -R "$mpi" -E "$skip" "$@" || rc=1
exit $rc
