#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite (every label except `slow`).
# Usage: scripts/test.sh [ctest arguments, e.g. -L unit or -R test_array]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --with-python  # torch, h5py and tensorboard cross-check mltrain in the tests
scripts/build.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure -j2 -LE slow "$@"
