#!/usr/bin/env bash
# Configures and builds mltrain into build/ with every backend this machine supports.
# Extra arguments go to cmake's configure step (e.g. -DMT_SANITIZE=address,undefined).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
werror=OFF
[ "${CI:-}" = "true" ] && werror=ON
# CUDA: the toolkit's headers are enough to build the backend (the driver, NVRTC and cuBLAS are
# loaded at run time), so a machine without a GPU builds and tests it too.
cuda=OFF
[ -e "${CUDA_HOME:-/usr/local/cuda}/include/cuda.h" ] && cuda=ON
# NCCL: nccl.h next to the toolkit is enough (libnccl.so.2 is loaded at run time).
nccl=OFF
[ "$cuda" = ON ] && [ -e "${CUDA_HOME:-/usr/local/cuda}/include/nccl.h" ] && nccl=ON
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DMT_WITH_OPENCL=ON -DMT_WITH_HDF5=ON \
  -DMT_WITH_MPI=ON -DMT_WITH_CUDA="$cuda" -DMT_WITH_NCCL="$nccl" -DMT_WERROR="$werror" "$@" >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)"
