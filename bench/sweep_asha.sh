#!/bin/sh
# ASHA against the unpruned sweep on a real training sweep (issue 7), label slow: the
# Fashion-MNIST MLP sweep (jobs/fashion_mnist_mlp_sweep.yaml) with random search, so both runs
# evaluate the same configurations (same seed, same points; ASHA only stops some early), once
# with its ASHA pruner (rungs at epochs 1 and 3, eta 3) and once with `pruner: none`. Prints the
# best valid_y_misclass and the epochs trained of each; passes when ASHA's best is within 0.5
# percentage points of the unpruned best and it trains at most half the epochs.
# Usage: bench/sweep_asha.sh [MLTRAIN] [TRIALS] [NP] [extra mltrain options, e.g.
#        --limit-batches 100]     (defaults: build/bin/mltrain, 16 trials, 1 process)
set -eu
MLTRAIN=${1:-build/bin/mltrain}
T=${2:-16}
NP=${3:-1}
shift 3 2>/dev/null || shift $#
SRC=$(cd "$(dirname "$0")/.." && pwd)
FASHION=/usr/share/datasets/fashion-mnist
[ -e "$FASHION/train-images-idx3-ubyte.gz" ] || { echo "SKIP: no Fashion-MNIST"; exit 77; }
W=${SWEEP_ASHA_DIR:-$(mktemp -d /tmp/sweep_asha.XXXXXX)}
mkdir -p "$W"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_mpi_yield_when_idle=1
sed 's/algorithm: tpe,/algorithm: random,/' "$SRC/jobs/fashion_mnist_mlp_sweep.yaml" > "$W/asha.yaml"
sed 's/^  pruner: .*/  pruner: { type: none },/' "$W/asha.yaml" > "$W/none.yaml"
run() { # run NAME
    if [ "$NP" = 1 ]; then set -- "$MLTRAIN"; else set -- mpiexec -n "$NP" --bind-to none "$MLTRAIN"; fi
    start=$(date +%s)
    "$@" "$W/$name.yaml" --dir "$W/$name.sweep" --max-trials "$T" $EXTRA > "$W/$name.out" 2>&1
    echo $(($(date +%s) - start)) > "$W/$name.seconds"
}
EXTRA="$*"
for name in none asha; do run; done
# best value (column 3 of ok rows) and the sum of epochs (column 6) from summary.csv
best() { awk -F, 'NR > 1 && $2 == "ok" && $3 != "" { if (b == "" || $3 < b) b = $3 } END { print b }' "$1"; }
epochs() { awk -F, 'NR > 1 { s += $6 } END { print s }' "$1"; }
bn=$(best "$W/none.sweep/summary.csv"); ba=$(best "$W/asha.sweep/summary.csv")
en=$(epochs "$W/none.sweep/summary.csv"); ea=$(epochs "$W/asha.sweep/summary.csv")
pr=$(grep -c ',pruned,' "$W/asha.sweep/summary.csv" || true)
printf '%-8s %8s %12s %8s %8s\n' sweep trials best_misclass epochs seconds
printf '%-8s %8s %12s %8s %8s\n' none "$T" "$bn" "$en" "$(cat "$W/none.seconds")"
printf '%-8s %8s %12s %8s %8s   (%s pruned)\n' asha "$T" "$ba" "$ea" "$(cat "$W/asha.seconds")" "$pr"
awk -v bn="$bn" -v ba="$ba" -v en="$en" -v ea="$ea" 'BEGIN {
    ok = (ba - bn <= 0.005) && (ea <= 0.5 * en)
    printf "ASHA best - unpruned best = %+.4f (limit +0.005), epochs %.0f%% of unpruned (limit 50%%): %s\n",
           ba - bn, 100 * ea / en, ok ? "PASS" : "FAIL"
    exit ok ? 0 : 1 }'
