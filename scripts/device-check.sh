#!/usr/bin/env bash
# GPU validation of mltrain on a machine with an NVIDIA GPU, the CUDA toolkit (nvcc and headers),
# CMake and a C compiler, but possibly no Debian packages and no network (docs/gpuarray.md,
# "Running the GPU checks"). Usage: scripts/device-check.sh OUTDIR
#
#   1. env      the machine: GPU (nvidia-smi), driver, nvcc, cmake, compiler, PyTorch
#   2. deps     unpacks .devdeps/*.deb (scripts/device-deps.sh fetched them) into a private
#               prefix ($MT_DEPS_PREFIX, default /opt/mtdeps; never /) and adds the links that
#               Debian's alternatives would make; skipped when .devdeps/ holds no packages (the
#               machine then needs OpenBLAS, LAPACKE, libyaml, zlib, libpng and dlpack itself)
#   3. build    configures with CUDA on and MPI, HDF5, OpenCL off, and builds (ninja if present)
#   4. devices  `mltrain devices`
#   5. tests    `ctest -L cuda`, then a gpuarray subset of `ctest -L unit`
#   6. benches  on cuda:0 with short settings: fused elementwise vs the device copy, GEMM vs
#               cuBLAS, the backend's fast paths (copies staged through pinned memory vs direct
#               cuMemcpy from pinned and pageable memory; float16/bfloat16 GEMM through
#               cublasGemmEx vs a direct cublasGemmEx call), MLP and convnet training steps vs
#               PyTorch on the same GPU, the cold (empty cache) and warm-cache build time of
#               the training function, and one convolution layer per direction (first call,
#               median, CPU time per call)
#
# Every phase runs under `timeout`, within one overall budget ($MT_CHECK_BUDGET seconds, default
# 285) so the script ends in under 5 minutes even when a phase hangs; a failing phase is recorded
# and the next one runs. OUTDIR gets at most 6 files: env.txt, build.log, ctest.log, bench.txt,
# summary.txt (phases, test counts, key numbers; also printed at the end) and cmake-cache.txt.
# Exit status: 0 when no phase failed (skips are no failure), else 1.
#
# Environment:
#   MT_CHECK_BUDGET (seconds, default 285), MT_DEPS_PREFIX (default /opt/mtdeps),
#   MT_CHECK_BUILD_DIR (default build-device), MT_CHECK_DEVICE (default cuda:0),
#   MT_CHECK_JOBS (build jobs, default nproc),
#   MT_CHECK_SANITIZER=1 (also run the NCCL, pinned staging and cuDNN cases under
#     compute-sanitizer's memcheck, ~2 min),
#   MT_CHECK_BENCHES (which benchmarks: a space-separated subset of elementwise gemm fastpaths
#     compile mlp conv conv_tf32 mlp_small conv_layer lstm; default all),
#   MT_CHECK_KEEP_BUILD=1 (reuse the build directory instead of starting afresh),
#   MT_CHECK_WORK (scratch, default /tmp/mt-device-check),
#   CUDA_HOME (default: from nvcc on PATH, else /usr/local/cuda).
#   The backend's own settings pass through to the tests and benchmarks, e.g.
#   MLTRAIN_CUDA_PINNED_MB=0 (no pinned staging) or MLTRAIN_CUDA_ASYNC_WRITES=1.
set -u
if [ $# -ne 1 ]; then
  echo "usage: $0 OUTDIR" >&2
  exit 2
fi
ROOT=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$1" || exit 2
OUTDIR=$(cd "$1" && pwd)
cd "$ROOT" || exit 2

T0=$(date +%s)
BUDGET=${MT_CHECK_BUDGET:-285}
PREFIX=${MT_DEPS_PREFIX:-/opt/mtdeps}
case $PREFIX in /*) ;; *) PREFIX=$ROOT/$PREFIX ;; esac
BUILD=${MT_CHECK_BUILD_DIR:-build-device}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
DEV=${MT_CHECK_DEVICE:-cuda:0}
JOBS=${MT_CHECK_JOBS:-$(nproc 2>/dev/null || echo 4)}
WORK=${MT_CHECK_WORK:-/tmp/mt-device-check}
ENV_TXT=$OUTDIR/env.txt BUILD_LOG=$OUTDIR/build.log CTEST_LOG=$OUTDIR/ctest.log
BENCH_TXT=$OUTDIR/bench.txt SUMMARY=$OUTDIR/summary.txt
: >"$ENV_TXT"; : >"$BUILD_LOG"; : >"$CTEST_LOG"; : >"$BENCH_TXT"
rm -rf "$WORK"
mkdir -p "$WORK"
# The prefix must be writable (a read-only /opt falls back to the scratch folder).
mkdir -p "$PREFIX" 2>/dev/null && [ -w "$PREFIX" ] || PREFIX=$WORK/mtdeps
ORIG_LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}
ORIG_PATH=$PATH
PHASES=$WORK/phases.txt
: >"$PHASES"
failed=0

now() { date +%s; }
left() { echo $((T0 + BUDGET - $(now))); }

# phase NAME MAX_SECONDS LOG CMD...: runs CMD under timeout (at most MAX_SECONDS, never past the
# overall budget minus a reserve for the summary), appends its output to LOG, records the
# result. Exit 77 of CMD counts as a skip.
phase() {
  local name=$1 max=$2 log=$3
  shift 3
  local t=$(( $(left) - 8 ))
  [ "$t" -gt "$max" ] && t=$max
  if [ "$t" -lt 3 ]; then
    printf '%-22s %-8s %5s s  (no time left in the %s s budget)\n' "$name" SKIPPED 0 "$BUDGET" \
      >>"$PHASES"
    echo "=== $name: skipped, no time left" >>"$log"
    return 0
  fi
  local s rc
  s=$(now)
  echo "=== $name (limit ${t}s): $*" >>"$log"
  if declare -F "$1" >/dev/null; then # a function of this script (exported below)
    timeout -k 5 "$t" bash -c '"$@"' bash "$@" >>"$log" 2>&1
  else
    timeout -k 5 "$t" "$@" >>"$log" 2>&1
  fi
  rc=$?
  local st=ok
  case $rc in
    0) ;;
    77) st=SKIP ;;
    124 | 137) st=TIMEOUT; failed=1 ;;
    *) st="FAIL($rc)"; failed=1 ;;
  esac
  echo "=== $name: $st after $(( $(now) - s ))s" >>"$log"
  printf '%-22s %-8s %5s s  (limit %s s)\n' "$name" "$st" "$(( $(now) - s ))" "$t" >>"$PHASES"
  return $rc
}

# ------------------------------------------------------------------ 1. environment
if [ -z "${CUDA_HOME:-}" ]; then
  if command -v nvcc >/dev/null 2>&1; then
    CUDA_HOME=$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")
  else
    CUDA_HOME=/usr/local/cuda
  fi
fi
export CUDA_HOME ROOT WORK PREFIX DEV
[ -x "$CUDA_HOME/bin/nvcc" ] && PATH=$CUDA_HOME/bin:$PATH
PYTHON=$(PATH=$ORIG_PATH command -v python3 || true)
export PYTHON

# Directories of the CUDA libraries mltrain dlopens (libcuda comes with the driver and is on the
# loader's path already; NVRTC, cuBLAS, NCCL and cuDNN may only be in the toolkit or in Python
# wheels).
CUDA_LIBDIRS=
find_cuda_lib() {
  local lib=$1 d
  for d in "$CUDA_HOME/lib64" "$CUDA_HOME/targets/x86_64-linux/lib"; do
    [ -e "$d/$lib" ] && { echo "$d"; return; }
  done
  if ldconfig -p 2>/dev/null | grep -q "$lib"; then echo system; return; fi
  d=$(timeout 10 find /usr/local /opt /usr/lib -name "$lib" -print -quit 2>/dev/null)
  [ -n "$d" ] && dirname "$d"
}
CUDA_LIB_REPORT=
for lib in libnvrtc.so.13 libcublas.so.13 libcublasLt.so.13 libnccl.so.2 libcudnn.so.9; do
  d=$(find_cuda_lib $lib)
  CUDA_LIB_REPORT="$CUDA_LIB_REPORT$lib: ${d:-not found}; "
  case $d in "" | system) ;; *) case ":$CUDA_LIBDIRS:" in *":$d:"*) ;; *) CUDA_LIBDIRS=$CUDA_LIBDIRS:$d ;; esac ;; esac
done
export CUDA_LIB_REPORT

env_info() {
  echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "host: $(uname -a)"
  echo "CPUs: $(nproc)"
  free -g 2>/dev/null | head -2
  if [ -r /etc/os-release ]; then grep -E '^(PRETTY_NAME)=' /etc/os-release; fi
  echo "glibc: $(ldd --version 2>/dev/null | head -1)"
  echo "git: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none)$(git -C "$ROOT" \
    diff --quiet HEAD 2>/dev/null || echo ' (+ uncommitted changes)')"
  echo "--- nvidia-smi"
  if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi
    nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv
  else
    echo "nvidia-smi: not found"
  fi
  echo "--- nvcc ($CUDA_HOME)"
  nvcc --version 2>&1 || echo "nvcc: not found"
  echo "--- tools"
  cmake --version 2>&1 | head -1 || echo "cmake: not found"
  ninja --version 2>&1 | sed 's/^/ninja /' || echo "ninja: not found"
  ${CC:-cc} --version 2>&1 | head -1 || echo "cc: not found"
  command -v pkg-config >/dev/null && echo "pkg-config: $(pkg-config --version)" \
    || echo "pkg-config: not found"
  command -v dpkg >/dev/null && echo "dpkg: yes" || echo "dpkg: not found (ar + tar used)"
  echo "--- CUDA libraries"
  ldconfig -p 2>/dev/null | grep -E 'libcuda\.so|libnvrtc\.so|libcublas\.so' || true
  echo "found: $CUDA_LIB_REPORT"
  echo "--- python3 ($PYTHON)"
  [ -n "$PYTHON" ] && timeout 60 "$PYTHON" -c '
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print("device 0:", p.name, "sm_%d%d" % (p.major, p.minor), p.multi_processor_count, "SMs,",
          p.total_memory // 2**20, "MiB")' 2>&1
  return 0
}
export -f env_info
phase env 90 "$ENV_TXT" env_info
GPU_NAME=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
GPU_NAME=${GPU_NAME:-none}

# ------------------------------------------------------------------ 2. dependencies
export TRIPLET=x86_64-linux-gnu
export P=$PREFIX/usr
export LIBD=$P/lib/$TRIPLET
have_debs=0
ls .devdeps/*.deb >/dev/null 2>&1 && have_debs=1

unpack_deps() {
  case $PREFIX in / | /usr | /usr/local | "") echo "refusing to unpack into $PREFIX"; return 1 ;; esac
  rm -rf "$PREFIX"
  mkdir -p "$PREFIX"
  local f
  for f in .devdeps/*.deb; do
    if command -v dpkg-deb >/dev/null 2>&1; then
      dpkg-deb -x "$f" "$PREFIX" || return 1
    else
      local t
      t=$(mktemp -d "$WORK/deb.XXXXXX")
      (cd "$t" && ar x "$ROOT/$f" && tar -xf data.tar.* -C "$PREFIX") || return 1
      rm -rf "$t"
    fi
    echo "unpacked $f"
  done
  # Absolute links (libz.so -> /lib/...) must point into the prefix.
  local l target
  while IFS= read -r l; do
    target=$(readlink "$l")
    case $target in /*) ln -sfn "$PREFIX$target" "$l" ;; esac
  done < <(find "$PREFIX" -type l)
  # What Debian's alternatives make for OpenBLAS (libblas.so.3-x86_64-linux-gnu and friends).
  local ob=$LIBD/openblas-pthread n
  for n in libopenblas.so libopenblas.so.0 libblas.so libblas.so.3 liblapack.so liblapack.so.3; do
    [ -e "$ob/$n" ] && ln -sfn "openblas-pthread/$n" "$LIBD/$n"
  done
  mkdir -p "$P/include/$TRIPLET"
  for n in cblas.h f77blas.h openblas_config.h; do
    [ -e "$P/include/$TRIPLET/openblas-pthread/$n" ] && ln -sfn "openblas-pthread/$n" "$P/include/$TRIPLET/$n"
  done
  # pkg-config files name /usr: make them name the prefix.
  for f in $(find "$PREFIX" -name '*.pc'); do
    [ -L "$f" ] && continue
    sed -i -e "s#^prefix=/usr#prefix=$P#" -e "s#=/usr/#=$P/#g" "$f"
  done
  # nccl.h (scripts/device-deps.sh copies it) and Debian's Fashion-MNIST, at the path the tests
  # and jobs read when the machine has none of its own.
  if [ -e .devdeps/include/nccl.h ]; then
    mkdir -p "$P/include" && cp .devdeps/include/nccl.h "$P/include/"
  fi
  if [ ! -e /usr/share/datasets/fashion-mnist ] && [ -d "$P/share/datasets/fashion-mnist" ]; then
    mkdir -p /usr/share/datasets && ln -s "$P/share/datasets/fashion-mnist" /usr/share/datasets/ ||
      echo "cannot link /usr/share/datasets/fashion-mnist: the training tests will skip"
  fi
  echo "prefix $PREFIX: $(du -sh "$PREFIX" | cut -f1)"
  ls -l "$LIBD" | head -60
}
export -f unpack_deps
if [ $have_debs = 1 ]; then
  phase deps 60 "$BUILD_LOG" unpack_deps
  DEPS_LD=$LIBD:$LIBD/openblas-pthread:$PREFIX/lib/$TRIPLET
  export LD_LIBRARY_PATH=$DEPS_LD${CUDA_LIBDIRS}${ORIG_LD_LIBRARY_PATH:+:$ORIG_LD_LIBRARY_PATH}
  export PKG_CONFIG_LIBDIR=$LIBD/pkgconfig:$P/share/pkgconfig
  unset PKG_CONFIG_PATH
  PKGCONF=()
  [ -x "$P/bin/pkgconf" ] && PKGCONF=(-DPKG_CONFIG_EXECUTABLE="$P/bin/pkgconf")
  DEPS_CMAKE=(-DCMAKE_PREFIX_PATH="$P;$PREFIX" "${PKGCONF[@]}")
else
  echo "=== deps: .devdeps/ holds no packages; using the machine's own libraries" >>"$BUILD_LOG"
  printf '%-22s %-8s %5s s  (no .devdeps/*.deb: system libraries)\n' deps SKIP 0 >>"$PHASES"
  export LD_LIBRARY_PATH=${CUDA_LIBDIRS#:}${ORIG_LD_LIBRARY_PATH:+:$ORIG_LD_LIBRARY_PATH}
  DEPS_CMAKE=()
fi

# ------------------------------------------------------------------ 3. build
# The build keeps going past a failing target (ninja -k 0, make -k), so that a compile error in
# one module still leaves the programs that do not depend on it to test and measure.
GEN=()
KEEP_GOING=(-k)
command -v ninja >/dev/null 2>&1 && GEN=(-G Ninja) && KEEP_GOING=(-k 0)
[ "${MT_CHECK_KEEP_BUILD:-0}" = 1 ] || rm -rf "$BUILD"
NCCL=OFF # NCCL is loaded at run time: its header is all the build needs
[ -e "$CUDA_HOME/include/nccl.h" ] || [ -e "${P:-/nonexistent}/include/nccl.h" ] && NCCL=ON
build_ok=0
if phase configure 90 "$BUILD_LOG" cmake -S "$ROOT" -B "$BUILD" "${GEN[@]}" \
  -DCMAKE_BUILD_TYPE=Release -DMT_WITH_CUDA=ON -DMT_WITH_NCCL="$NCCL" -DMT_WITH_MPI=OFF \
  -DMT_WITH_HDF5=OFF -DMT_WITH_OPENCL=OFF -DCUDAToolkit_ROOT="$CUDA_HOME" "${DEPS_CMAKE[@]}"; then
  phase build 200 "$BUILD_LOG" cmake --build "$BUILD" -j"$JOBS" -- "${KEEP_GOING[@]}"
  build_ok=1 # configured: run what was built
fi
# The libraries CMake chose (they should lie under the prefix when .devdeps/ was used).
if [ -f "$BUILD/CMakeCache.txt" ]; then
  grep -E '^(BLAS_|MT_CBLAS|MT_LAPACKE|MT_DLPACK|ZLIB_|PNG_|pkgcfg_lib|PKG_CONFIG_EXECUTABLE|CUDAToolkit_(BIN|INCLUDE|LIBRARY_ROOT)|CMAKE_C_COMPILER:|CMAKE_PREFIX_PATH|MT_HAVE|MT_WITH)' \
    "$BUILD/CMakeCache.txt" | grep -v -- '-ADVANCED' >"$OUTDIR/cmake-cache.txt" 2>/dev/null
fi
MLTRAIN=$BUILD/bin/mltrain
export B=$BUILD/bench

# ------------------------------------------------------------------ 4. devices, 5. tests
export MLTRAIN_CACHE_DIR=$WORK/cache
# built PATH NAME: true when the program exists, else records NAME as not built (a failure).
built() {
  [ -x "$1" ] && return 0
  printf '%-22s %-8s %5s s  (%s was not built)\n' "$2" FAIL 0 "${1#"$BUILD"/}" >>"$PHASES"
  failed=1
  return 1
}
if [ $build_ok = 1 ]; then
  built "$MLTRAIN" devices && phase devices 30 "$CTEST_LOG" "$MLTRAIN" devices
  phase "ctest -L cuda" 100 "$CTEST_LOG" \
    ctest --test-dir "$BUILD" -L cuda --output-on-failure -j8 --timeout 90
  # why each skipped case skipped (a skip exits at once; ctest hides its message otherwise)
  skipped=$(sed -n '/^=== ctest -L cuda /,/^=== /p' "$CTEST_LOG" |
    sed -n 's/.*Test *#[0-9]*: \([A-Za-z0-9_.]*\) .*\*\*\*Skipped.*/\1/p' | sort -u |
    sed 's/\./\\./g' | paste -sd'|' -)
  [ -n "$skipped" ] && phase "skip reasons" 20 "$CTEST_LOG" \
    sh -c 'ctest --test-dir "$1" -R "^($2)\$" -V --timeout 15 | grep -E "^[0-9]+: SKIP|Test *#[0-9]+:"' \
    sh "$BUILD" "$skipped"
  # opt-in: the asynchronous paths (NCCL, pinned staging, cuDNN) under compute-sanitizer
  if [ "${MT_CHECK_SANITIZER:-0}" = 1 ] && command -v compute-sanitizer >/dev/null 2>&1; then
    phase "compute-sanitizer" 150 "$CTEST_LOG" compute-sanitizer --target-processes all \
      --tool memcheck --error-exitcode 9 ctest --test-dir "$BUILD" -L cuda \
      -R '^test_(comm_nccl|cuda_fastpaths|conv_device_cuda)\.' --output-on-failure --timeout 120
  fi
else
  printf '%-22s %-8s %5s s  (not configured)\n' devices SKIPPED 0 "ctest -L cuda" SKIPPED 0 \
    >>"$PHASES"
fi

# ------------------------------------------------------------------ 6. benchmarks
# PyTorch runs with the machine's own library path (the unpacked Debian libraries and the
# toolkit's CUDA libraries must not replace the ones its wheels bring).
PYWRAP=$WORK/python3
cat >"$PYWRAP" <<EOF
#!/bin/sh
LD_LIBRARY_PATH='$ORIG_LD_LIBRARY_PATH'
[ -n "\$LD_LIBRARY_PATH" ] || unset LD_LIBRARY_PATH
exec '${PYTHON:-python3}' "\$@"
EOF
chmod +x "$PYWRAP"

bench_run() { # NAME MAX CMD...: a benchmark; its output goes to bench.txt under a heading
  local name=$1 max=$2
  shift 2
  echo >>"$BENCH_TXT"
  echo "######## $name: $*" >>"$BENCH_TXT"
  phase "$name" "$max" "$BENCH_TXT" "$@"
}
compile_time() { # cold then warm: the same function built with an empty, then a filled cache
  local c=$WORK/compile-cache # the training benchmarks below reuse it (warm)
  rm -rf "$c"
  mkdir -p "$c"
  local case_name
  for case_name in mlp_big conv; do
    echo "--- $case_name, cold (empty MLTRAIN_CACHE_DIR and CUDA_CACHE_PATH)"
    MLTRAIN_CACHE_DIR=$c/mt CUDA_CACHE_PATH=$c/nv "$B/bench_train" --device "$DEV" \
      --case "$case_name" --compile-only --no-torch || return $?
    echo "--- $case_name, warm (the same caches, a new process)"
    MLTRAIN_CACHE_DIR=$c/mt CUDA_CACHE_PATH=$c/nv "$B/bench_train" --device "$DEV" \
      --case "$case_name" --compile-only --no-torch || return $?
  done
}
export -f compile_time
# want NAME: whether MT_CHECK_BENCHES (a space-separated subset of: elementwise gemm fastpaths
# compile mlp conv conv_tf32 mlp_small conv_layer lstm; unset = all) asks for that benchmark.
want() { [ -z "${MT_CHECK_BENCHES+x}" ] || case " $MT_CHECK_BENCHES " in *" $1 "*) ;; *) false ;; esac; }
if [ $build_ok = 1 ]; then
  want elementwise && built "$B/bench_elemwise" "bench elementwise" &&
    bench_run "bench elementwise" 40 "$B/bench_elemwise" --device "$DEV" --n 33554432 --reps 9 \
    --warmup 2 --inner 10 --skip-long
  want gemm && built "$B/bench_gemm" "bench gemm" &&
    bench_run "bench gemm" 60 "$B/bench_gemm" --device "$DEV" --reps 7 --warmup 2 \
    --sizes 1024,4096,8192 --sizes64 2048 --trans-n 4096
  # pinned staging (bytes staged are printed: proof the path ran) and float16/bfloat16 GemmEx
  want fastpaths && built "$B/bench_cuda_fastpaths" "bench fastpaths" &&
    bench_run "bench fastpaths" 45 "$B/bench_cuda_fastpaths" --device "$DEV" --reps 5 \
    --warmup 1 --copy-mib 1,4,16,64,256 --gemm-sizes 4096,8192
  if built "$B/bench_train" "bench train"; then
    want compile && bench_run "bench compile" 60 compile_time
    export MLTRAIN_CACHE_DIR=$WORK/compile-cache/mt CUDA_CACHE_PATH=$WORK/compile-cache/nv
    want mlp && bench_run "bench train mlp" 60 "$B/bench_train" --device "$DEV" --case mlp_big --rounds 3 \
      --steps 20 --no-job --no-diag --python "$PYWRAP"
    want conv && bench_run "bench train conv" 60 "$B/bench_train" --device "$DEV" --case conv --rounds 3 \
      --steps 10 --no-job --no-diag --python "$PYWRAP"
    # both sides with TF32 (PyTorch's default for convolutions), an opt-in for mltrain
    want conv_tf32 && bench_run "bench train conv tf32" 60 "$B/bench_train" --device "$DEV" \
      --case conv --rounds 3 --steps 10 --no-job --no-diag --tf32 --python "$PYWRAP"
    # one convolution layer, each direction: first call (cuDNN plan), median, CPU time per call;
    # then with the timed algorithm search, then with TF32 (opt-ins, off by default)
    if want conv_layer && built "$B/bench_conv_device" "bench conv layer"; then
      bench_run "bench conv layer" 30 "$B/bench_conv_device" --device "$DEV" --reps 9 --warmup 2
      bench_run "bench conv layer search" 30 env MLTRAIN_CUDNN_BENCHMARK=1 \
        "$B/bench_conv_device" --device "$DEV" --reps 9 --warmup 2
      bench_run "bench conv layer tf32" 30 env MLTRAIN_CUDA_TF32=1 \
        "$B/bench_conv_device" --device "$DEV" --reps 9 --warmup 2
    fi
    want mlp_small && bench_run "bench train mlp_small" 40 "$B/bench_train" --device "$DEV" --case mlp_small \
      --rounds 3 --steps 50 --no-job --no-diag --python "$PYWRAP"
    # a recurrent layer: a loop of 28 steps and its reverse loop against cuDNN's fused LSTM
    want lstm && bench_run "bench train lstm" 60 "$B/bench_train" --device "$DEV" --case lstm \
      --rounds 3 --steps 10 --no-job --no-diag --python "$PYWRAP"
  fi
  # The host side of gpuarray with the unpacked libraries (the quick suites; CI runs them all).
  phase "ctest unit gpuarray" 45 "$CTEST_LOG" ctest --test-dir "$BUILD" -L unit \
    -R '^test_(array|views|io)\.' -j"$JOBS" --timeout 40
fi

# ------------------------------------------------------------------ summary
count_tests() { # LOG PHASE-NAME [NAME-PART]: "passed P, failed F, skipped S of T" of one ctest
  # run (of its tests whose name contains NAME-PART)
  awk -v want="=== $2 " -v part="${3:-}" '
    index($0, want) == 1 && !inside { inside = 1; next }
    inside && /^=== / { inside = 0 }
    inside && / Test +#[0-9]+:/ && index($0, part) {
      t++
      if ($0 ~ / Passed /) p++
      else if ($0 ~ /\*\*\*Skipped/) s++
      else f++ # Failed, Timeout, Not Run (executable not built), ...
    }
    END { printf "passed %d, failed %d, skipped %d of %d\n", p, f, s, t }' "$1"
}
{
  echo "mltrain GPU check: $GPU_NAME | device $DEV | $(date -u '+%Y-%m-%d %H:%M UTC') | $(( $(now) - T0 )) s of a $BUDGET s budget"
  echo "git $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none)$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ' (+ uncommitted changes)') | build dir $BUILD | deps prefix $([ $have_debs = 1 ] && echo "$PREFIX" || echo 'none (system)')"
  echo
  echo "## phases"
  cat "$PHASES"
  echo
  if grep -qE '^FAILED: |error:' "$BUILD_LOG"; then
    echo "## build errors (build.log has them all)"
    grep -E '^FAILED: |error:' "$BUILD_LOG" | cut -c1-300 | head -20
    echo
  fi
  echo "## tests"
  echo "ctest -L cuda:         $(count_tests "$CTEST_LOG" "ctest -L cuda")"
  echo "  of which NCCL:       $(count_tests "$CTEST_LOG" "ctest -L cuda" test_comm_nccl)"
  echo "  of which training:   $(count_tests "$CTEST_LOG" "ctest -L cuda" test_train)"
  echo "ctest unit gpuarray:   $(count_tests "$CTEST_LOG" "ctest unit gpuarray")"
  grep -E '^[[:space:]]*[0-9]+ - .*\((Failed|Timeout|SEGFAULT|Subprocess|Exception|Child)' "$CTEST_LOG" \
    | head -40 | sed 's/^/  failed: /'
  grep -q 'No tests were found' "$CTEST_LOG" && echo "  (a ctest run found no tests)"
  grep -E '^[0-9]+: SKIP' "$CTEST_LOG" | sed 's/^[0-9]*: /  /' | sort | uniq -c | sort -rn |
    head -20 | sed 's/^/  skip reason:/'
  echo
  echo "## devices"
  sed -n '/^=== devices (/,/^=== devices:/p' "$CTEST_LOG" | grep -v '^===' | head -20
  echo
  echo "## key numbers (bench.txt has the tables)"
  grep -E '^(SKIP|bench:|baseline:)|\*\*|compiled \+ first step|^--- |^\| (forward|gradient of) ' "$BENCH_TXT" \
    | sed -e 's/^| //' | head -60
  grep -E '^######## ' "$BENCH_TXT" | sed 's/^######## /ran: /' | cut -c1-160
} >"$SUMMARY"
# Keep every file well under the 16 MiB a result file may have.
for f in "$ENV_TXT" "$BUILD_LOG" "$CTEST_LOG" "$BENCH_TXT"; do
  [ "$(stat -c %s "$f")" -gt 8000000 ] && truncate -s 8000000 "$f"
done
cat "$SUMMARY"
exit $failed
