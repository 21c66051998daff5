#!/bin/sh
# Data-parallel scaling of the MLP job (jobs/fashion_mnist_mlp.yaml: 784-1024-1024-10 ReLU,
# global batch 128, SGD + Momentum) from 1 to 2 ranks with the same total cores:
#   1x1        one process, 1 compute thread (reference)
#   1x2        one process, 2 threads (mltrain's pool and OpenBLAS)
#   2x1 fast   mpirun -np 2, 1 thread per rank, gradient all-reduce overlapped (default mode)
#   2x1 det    the same in --deterministic mode (ordered all-gather sum, no overlap)
# Each run trains --limit-batches BATCHES steps of one epoch; samples/s = BATCHES * 128 /
# training_seconds_this_epoch (the loop's own timer around the epoch's batches: compiling,
# loading and monitoring are not counted), read back from rank 0's checkpoint with
# `mltrain print-monitor`. Configurations are interleaved REPS times; the median is printed.
# The 2-rank fast runs also print the fraction of all-reduce time hidden behind the backward
# pass (the jit's collective statistics, logged by rank 0 at the end of the epoch).
# Usage: bench/scaling.sh [BUILD_DIR (default build)] [REPS (5)] [BATCHES (150)]
set -u
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "${1:-$SRC/build}" && pwd)
REPS=${2:-5}
BATCHES=${3:-150}
MLTRAIN=$BUILD/bin/mltrain
[ -x "$MLTRAIN" ] || { echo "no $MLTRAIN (build first)"; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# MPI polls while it waits; yielding lets a rank's compute thread use the core meanwhile.
export OMPI_MCA_mpi_yield_when_idle=1
export MLTRAIN_CACHE_DIR=${MLTRAIN_CACHE_DIR:-$BUILD/bench-cache}
W=$(mktemp -d /tmp/mltrain-scaling.XXXXXX)
trap 'rm -rf "$W"' EXIT
cp "$SRC/jobs/fashion_mnist_mlp.yaml" "$W/job.yaml"
cd "$W" || exit 1
ARGS="job.yaml --max-epochs 1 --limit-batches $BATCHES --run-dir $W/run"

# one CONFIG: runs it once, prints samples/s (and keeps the log in $W/CONFIG.log)
one() {
    case "$1" in
    1x1) MLTRAIN_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 "$MLTRAIN" $ARGS ;;
    1x2) MLTRAIN_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 "$MLTRAIN" $ARGS ;;
    2x1fast) mpirun -np 2 --bind-to core -x MLTRAIN_NUM_THREADS=1 -x OPENBLAS_NUM_THREADS=1 \
                 "$MLTRAIN" $ARGS ;;
    2x1det) mpirun -np 2 --bind-to core -x MLTRAIN_NUM_THREADS=1 -x OPENBLAS_NUM_THREADS=1 \
                "$MLTRAIN" $ARGS --deterministic ;;
    esac > "$W/$1.log" 2>&1 || { echo "run $1 failed:" >&2; tail -5 "$W/$1.log" >&2; return 1; }
    secs=$("$MLTRAIN" print-monitor job.ckpt | awk '/^training_seconds_this_epoch/ {print $3}')
    awk -v b="$BATCHES" -v s="$secs" 'BEGIN { printf "%.0f\n", b * 128 / s }'
}

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

CONFIGS="1x1 1x2 2x1fast 2x1det"
for c in $CONFIGS; do one "$c" > /dev/null || exit 1; done # warm the kernel cache
for r in $(seq "$REPS"); do
    for c in $CONFIGS; do
        v=$(one "$c") || exit 1
        echo "$v" >> "$W/$c.rates"
        [ "$c" = 2x1fast ] && grep -o "[0-9.]* s in flight.*" "$W/$c.log" >> "$W/overlap.txt"
    done
done
echo "MLP 784-1024-1024-10, global batch 128, $BATCHES steps per run, $REPS runs (median, min-max samples/s)"
base=$(median < "$W/1x2.rates")
for c in $CONFIGS; do
    m=$(median < "$W/$c.rates")
    lo=$(sort -n "$W/$c.rates" | head -1)
    hi=$(sort -n "$W/$c.rates" | tail -1)
    awk -v c="$c" -v m="$m" -v lo="$lo" -v hi="$hi" -v b="$base" \
        'BEGIN { printf "%-8s %8.0f samples/s  (%s-%s)  %.2f of 1x2\n", c, m, lo, hi, m / b }'
done
echo "2x1 fast, gradient all-reduce per run (rank 0):"
sed 's/^/  /' "$W/overlap.txt"
