#!/usr/bin/env bash
# Builds mltrain (scripts/build.sh) and runs every benchmark of bench/: on the host, then on the
# first OpenCL device (fewer repetitions: PoCL is slow and compiles kernels on first use), then
# the NumPy/PyTorch baselines with Debian's /usr/bin/python3. Prints each command and its output
# and keeps the raw output in $BUILD_DIR/bench-out/<name>.txt.
#
# Environment: BUILD_DIR (default build), REPS (host repetitions, default 15),
#   CL_REPS (OpenCL repetitions, default 3), CL_DEVICE (default opencl:0:0; "none" skips),
#   NO_BUILD=1 (use the existing build), BENCH_TIMEOUT (seconds per benchmark, default 900),
#   TRAIN_ROUNDS / TRAIN_STEPS (bench_train: rounds, steps per round; default 7 / 30).
# Exit status: 0 when every benchmark ran or was skipped for an absent device/numpy.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD_DIR=${BUILD_DIR:-build}
REPS=${REPS:-15}
CL_REPS=${CL_REPS:-3}
CL_DEVICE=${CL_DEVICE:-opencl:0:0}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-900}
OUT="$BUILD_DIR/bench-out"

if [ "${NO_BUILD:-0}" != 1 ]; then
  echo "\$ BUILD_DIR=$BUILD_DIR scripts/build.sh"
  BUILD_DIR="$BUILD_DIR" scripts/build.sh || { echo "run.sh: build failed" >&2; exit 1; }
fi
mkdir -p "$OUT"
# Keep JIT kernels and PoCL's compiled programs between runs (the warm-up then measures no
# compiler), inside the build tree.
export MLTRAIN_CACHE_DIR=${MLTRAIN_CACHE_DIR:-$ROOT/$BUILD_DIR/bench-cache}
export POCL_CACHE_DIR=${POCL_CACHE_DIR:-$ROOT/$BUILD_DIR/pocl-cache}

failed=0
# run NAME CMD...: prints the command, tees output to $OUT/NAME.txt, accepts 0 and 77 (skip).
run() {
  local name=$1
  shift
  local log="$OUT/$name.txt"
  {
    echo "\$ $*"
    echo "# commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none)$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ' (+ uncommitted changes)')"
  } | tee "$log"
  timeout "$BENCH_TIMEOUT" "$@" 2>&1 | tee -a "$log"
  local rc=${PIPESTATUS[0]}
  case $rc in
    0) ;;
    77) echo "run.sh: $name skipped" | tee -a "$log" ;;
    124) echo "run.sh: $name timed out after ${BENCH_TIMEOUT}s" | tee -a "$log"; failed=1 ;;
    *) echo "run.sh: $name failed (exit $rc)" | tee -a "$log"; failed=1 ;;
  esac
  echo
}

B="$BUILD_DIR/bench"
run elemwise-host "$B/bench_elemwise" --device host --reps "$REPS"
run reduce-host "$B/bench_reduce" --device host --reps "$REPS"
run gemm-host "$B/bench_gemm" --device host --reps "$REPS"

if [ "$CL_DEVICE" != none ]; then
  run elemwise-opencl "$B/bench_elemwise" --device "$CL_DEVICE" --reps "$CL_REPS" --warmup 1 \
    --long-reps 2
  run reduce-opencl "$B/bench_reduce" --device "$CL_DEVICE" --reps "$CL_REPS" --warmup 1
  run gemm-opencl "$B/bench_gemm" --device "$CL_DEVICE" --reps "$CL_REPS" --warmup 1 \
    --sizes 256,512,1024 --sizes64 512 --trans-n 512
fi

# Training steps (issue 4): mltrain's SGD step and mt_job_run vs PyTorch (a coprocess of the
# same program) vs the step's GEMMs through cblas; TRAIN_ROUNDS rounds of TRAIN_STEPS steps.
if [ -x "$B/bench_train" ]; then
  run train-host "$B/bench_train" --rounds "${TRAIN_ROUNDS:-7}" --steps "${TRAIN_STEPS:-30}"
else
  echo "run.sh: $B/bench_train not built (train module absent); training benchmark skipped"
fi

if [ -x /usr/bin/python3 ]; then
  run numpy-baseline /usr/bin/python3 bench/numpy_baseline.py --reps "$REPS"
else
  echo "run.sh: /usr/bin/python3 not found; NumPy baseline skipped"
fi

echo "run.sh: raw output in $OUT/"
exit $failed
