#!/usr/bin/env bash
# Fuzzes one target (or "all", one after the other) for SECONDS each with libFuzzer
# (docs/fuzzing.md). Builds the fuzz build first when needed: clang, MT_FUZZ=ON,
# MT_SANITIZE=address,undefined, in $FUZZ_BUILD_DIR (default build-fuzz).
#   scripts/fuzz.sh TARGET SECONDS [libFuzzer options...]
# Targets: expr yaml npy idx cifar ckpt journal. New inputs found go to $FUZZ_BUILD_DIR/fuzz-work/TARGET/
# (the seed corpus in fuzz/corpus/ stays small); crashes, leaks, timeouts and out-of-memory
# inputs are kept in fuzz/crashes/TARGET/ (add them to the repository once fixed: the CTest test
# fuzz.TARGET replays them). Limits: 2 GiB RSS, no single allocation over 512 MiB (the readers cap
# decoded arrays at 64 MiB in the targets), 25 s per input. Leaks inside HDF5 itself are
# suppressed (fuzz/lsan.supp). Runs at nice $FUZZ_NICE (default 10).
# The last line per target reads "fuzz TARGET: N executions in S s, K new crash inputs".
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 2 ]; then
  echo "usage: scripts/fuzz.sh TARGET|all SECONDS [libFuzzer options...]" >&2
  exit 2
fi
target=$1
seconds=$2
shift 2
all_targets="expr yaml npy idx cifar ckpt journal"
build=${FUZZ_BUILD_DIR:-build-fuzz}
nice_level=${FUZZ_NICE:-10}

if [ ! -f "$build/CMakeCache.txt" ]; then
  CC=${FUZZ_CC:-clang} cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g" -DMT_SANITIZE=address,undefined -DMT_FUZZ=ON \
    -DMT_WITH_HDF5=ON -DMT_WITH_MPI=OFF -DMT_WITH_OPENCL=OFF -DMT_WITH_CUDA=OFF >/dev/null
fi

run_one() {
  local t=$1
  shift
  # A tree that others are editing may not build at this moment: fuzz the last good binary then.
  if ! nice -n "$nice_level" cmake --build "$build" -j2 --target "fuzz_$t" >"$build/fuzz-build-$t.log" 2>&1; then
    if [ -x "$build/fuzz/fuzz_$t" ]; then
      echo "fuzz $t: the build failed (see $build/fuzz-build-$t.log); fuzzing the previous binary" >&2
    else
      cat "$build/fuzz-build-$t.log" >&2
      return 1
    fi
  fi
  local work="$build/fuzz-work/$t" crashes="fuzz/crashes/$t"
  mkdir -p "$work/corpus" "$work/tmp" "$crashes"
  local before
  before=$(find "$crashes" -type f | wc -l)
  local log="$build/fuzz-work/$t.log"
  local start=$SECONDS
  set +e
  TMPDIR="$PWD/$work/tmp" \
  ASAN_OPTIONS=${ASAN_OPTIONS:-allocator_may_return_null=1:detect_leaks=1} \
  LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/fuzz/lsan.supp} \
  UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
    nice -n "$nice_level" "$build/fuzz/fuzz_$t" -max_total_time="$seconds" -rss_limit_mb=2048 \
      -malloc_limit_mb=512 -timeout=25 -print_final_stats=1 -artifact_prefix="$crashes/" \
      "$@" "$work/corpus" "fuzz/corpus/$t" </dev/null >"$log" 2>&1
  local rc=$?
  set -e
  local execs secs after
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  secs=$((SECONDS - start))
  after=$(find "$crashes" -type f | wc -l)
  echo "fuzz $t: ${execs:-?} executions in $secs s, $((after - before)) new crash inputs (log $log, exit $rc)"
  if [ $rc -ne 0 ]; then
    grep -m3 -E "ERROR: |runtime error|fuzz invariant failed|SUMMARY" "$log" || tail -20 "$log"
    return 1
  fi
}

status=0
if [ "$target" = all ]; then
  for t in $all_targets; do run_one "$t" "$@" || status=1; done
else
  case " $all_targets " in
    *" $target "*) run_one "$target" "$@" || status=1 ;;
    *) echo "scripts/fuzz.sh: unknown target '$target' (targets: $all_targets)" >&2; exit 2 ;;
  esac
fi
exit $status
