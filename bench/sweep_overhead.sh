#!/bin/sh
# Coordinator overhead per trial (issue 7): random search over a trivial expression objective
# (no training), so the time per trial is the sweep machinery itself: the sampler, the
# journal (fsync'd records), summary.csv, and the TRIAL/DONE messages between the coordinator
# and the worker groups. Runs 1 process (the coordinator runs the trials itself) and 4 ranks
# (a coordinator and 3 workers), with storage.fsync true and false.
# Usage: bench/sweep_overhead.sh [MLTRAIN] [TRIALS]     (results: bench/RESULTS.md, "Sweeps")
set -eu
MLTRAIN=${1:-build/bin/mltrain}
T=${2:-400}
W=$(mktemp -d /tmp/sweep_overhead.XXXXXX)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_mpi_yield_when_idle=1
export MLTRAIN_NUM_THREADS=1
sweep() { # sweep FILE FSYNC
    cat > "$1" <<YAML
!obj:Sweep {
  name: 'overhead', seed: 1,
  params: { x: !uniform [0, 1], y: !loguniform [0.001, 1.0], k: !choice [1, 2, 3] },
  train: !obj:Train { model: !obj:MLP { nvis: 2, layers: [] } },
  objective: { expression: 'x * y + k' },
  search: { algorithm: random, max_trials: $T, max_concurrent: 8 },
  storage: { dir: '${1%.yaml}.sweep', fsync: $2 },
}
YAML
}
printf '%-28s %8s %12s %14s\n' "configuration" "trials" "wall ms/trial" "coord busy ms"
for fs in true false; do
    for np in 1 4; do
        f=$W/s_${np}_$fs.yaml
        sweep "$f" "$fs"
        out=$(if [ "$np" = 1 ]; then "$MLTRAIN" "$f" 2>&1; else
              mpiexec -n "$np" --bind-to none "$MLTRAIN" "$f" 2>&1; fi | tail -n 1)
        secs=$(echo "$out" | sed -n 's/.*), \([0-9.]*\) s.*/\1/p')
        busy=$(echo "$out" | sed -n 's/.*coordinator busy \([0-9.]*\) ms.*/\1/p')
        ms=$(awk -v s="$secs" -v t="$T" 'BEGIN { printf "%.3f", 1000 * s / t }')
        printf '%-28s %8s %12s %14s\n' "np $np, fsync $fs" "$T" "$ms" "$busy"
    done
done
rm -rf "$W"
