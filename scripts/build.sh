#!/usr/bin/env bash
# Configures and builds mltrain into build/ with every backend this machine supports.
# Extra arguments go to cmake's configure step (e.g. -DMT_SANITIZE=address,undefined).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
werror=OFF
[ "${CI:-}" = "true" ] && werror=ON
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DMT_WITH_OPENCL=ON -DMT_WITH_HDF5=ON -DMT_WERROR="$werror" "$@" >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)"
