#!/usr/bin/env bash
# Slurm tests of mltrain (tests/slurm/CMakeLists.txt registers each case as slurm.CASE): a real
# single-node Slurm cluster (scripts/slurm-start.sh: munged, slurmctld, slurmd) runs the jobs/
# scripts with the real mltrain binary on 2 ranks through `srun --mpi=pmix`, on the README's MLP
# job shortened by --max-epochs / --limit-batches. The daemons are always stopped afterwards.
#   sbatch   jobs/fashion_mnist_mlp.sbatch under `sbatch --wait`: exit code 0, the checkpoint,
#            its monitor (print-monitor), monitor.jsonl, and both ranks in a 2-rank run
#   multinode  jobs/fashion_mnist_mlp_multinode.sbatch on a cluster of 2 nodes (2 slurmd on this
#            host, MLTRAIN_SLURM_NODES=2), one rank per node: one MPI world across the nodes
#   preempt  jobs/fashion_mnist_mlp_preemptible.sbatch: SIGUSR1 to the batch script mid-run
#            (what --signal=B:USR1@120 sends before a time limit) -> the ranks checkpoint and
#            exit 3 -> the script requeues the job -> the second run resumes from the
#            checkpoint and finishes: `sbatch --wait` exits 0
# Skipped (exit 77) when not root, or Slurm, munge or Fashion-MNIST is not installed.
# Usage: slurm_test.sh CASE MLTRAIN SOURCE_ROOT WORK_ROOT
set -u
CASE=$1
MLTRAIN=$2
SRC=$3
WORK=$4
FASHION=/usr/share/datasets/fashion-mnist
# the cluster of the tests: its own directory and ports, so a cluster started by hand
# (scripts/slurm-start.sh, default /run/mltrain-slurm on port 6817) is not disturbed
CLUSTER=/run/mltrain-slurm-test
export MLTRAIN_SLURM_PORT=16817
export MLTRAIN_SLURM_CRED_EXPIRE=5  # a requeued job starts again after ~10 s, not 2 min
export MLTRAIN_SLURM_MIN_JOB_AGE=4  # sbatch --wait polls every 2 s
export MLTRAIN_SLURM_NODES=1
[ "$CASE" = multinode ] && MLTRAIN_SLURM_NODES=2

fail() { echo "FAIL: $*"; exit 1; }
skip() { echo "SKIP: $*"; exit 77; }
t0=$(date +%s.%N)
elapsed() { awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

[ "$(id -u)" = 0 ] || skip "needs root (it starts munged as user munge, slurmctld and slurmd)"
for b in /usr/sbin/munged /usr/sbin/slurmctld /usr/sbin/slurmd sbatch srun scontrol scancel; do
    command -v "$b" >/dev/null 2>&1 || skip "$b not installed (apt-get install slurm-wlm slurm-client munge)"
done
[ -e "$FASHION/train-images-idx3-ubyte.gz" ] || skip "Fashion-MNIST not installed ($FASHION)"
[ -x "$MLTRAIN" ] || fail "no mltrain binary at $MLTRAIN"

# One test cluster per machine at a time, also across ctest runs of several build folders.
mkdir -p /run/lock
exec 9>/run/lock/mltrain-slurm-test.lock
flock -w 240 9 || fail "another Slurm test held /run/lock/mltrain-slurm-test.lock for 4 minutes"

# (the daemons must not inherit the lock's descriptor: 9>&-)
stop_cluster() { "$SRC/scripts/slurm-stop.sh" "$CLUSTER" 9>&-; }
trap stop_cluster EXIT
trap 'exit 143' TERM INT
# from a fresh cluster, even when an earlier test was killed before it could stop its own
stop_cluster > /dev/null
"$SRC/scripts/slurm-start.sh" "$CLUSTER" 9>&- || fail "slurm-start.sh failed"
export SLURM_CONF=$CLUSTER/slurm.conf
srun --mpi=list 2>&1 | grep -q pmix || skip "Slurm has no PMIx plugin (srun --mpi=list)"
echo "cluster up after $(elapsed) s"

W=$WORK/$CASE
rm -rf "$W"
mkdir -p "$W" || fail "mkdir $W"
# the outputs (checkpoint, monitor logs) go next to the job file: a copy in the work folder
cp "$SRC/jobs/fashion_mnist_mlp.yaml" "$W/" || fail "copy the job file"
JOB=$W/fashion_mnist_mlp.yaml
CKPT=$W/fashion_mnist_mlp.ckpt
MONITOR=$W/fashion_mnist_mlp.run/monitor.jsonl
export MLTRAIN MLTRAIN_JOB=$JOB
export MLTRAIN_CACHE_DIR=${MLTRAIN_CACHE_DIR:-$WORK/cache}
# the ranks share the node's 2 CPUs with the other tests: one compute thread each, and Open MPI
# yields the CPU while it waits (sbatch and srun pass the environment on to the ranks)
export MLTRAIN_NUM_THREADS=1 OMPI_MCA_mpi_yield_when_idle=1

# expect FILE REGEX WHAT: FILE has a line matching the extended REGEX
expect() { grep -Eq "$2" "$1" || fail "$3: no line matching '$2' in $1"; }

# two_ranks FILE: the step's ranks formed one MPI world of 2 (rank 0 reports its size) and
# trained one model together (only rank 0 prints results: one "done" line, not one per rank)
two_ranks() {
    expect "$1" 'data-parallel run: 2 ranks \(mpi\)' "mltrain did not run on an MPI world of 2"
    n=$(grep -c '^done: ' "$1")
    [ "$n" = 1 ] || fail "$n 'done:' lines in $1: the ranks did not train as one job"
}

# check_ckpt EPOCHS: the final checkpoint holds EPOCHS epochs and a monitor record per epoch
check_ckpt() {
    [ -s "$CKPT" ] || fail "no checkpoint $CKPT"
    "$MLTRAIN" print-monitor "$CKPT" > "$W/print-monitor.txt" 2>&1 ||
        { cat "$W/print-monitor.txt"; fail "print-monitor $CKPT failed"; }
    expect "$W/print-monitor.txt" "^epochs seen: $1\$" "print-monitor"
    expect "$W/print-monitor.txt" '^valid_y_misclass : 0\.[0-9]+' "print-monitor"
    [ -s "$MONITOR" ] || fail "no monitor log $MONITOR"
    n=$(grep -c '"epoch":' "$MONITOR")
    [ "$n" = $(($1 + 1)) ] || fail "$MONITOR has $n records, expected $(($1 + 1)) (epochs 0..$1)"
    for e in $(seq 0 "$1"); do
        grep -q "^{\"epoch\":$e," "$MONITOR" || fail "$MONITOR has no record of epoch $e"
    done
}

# job_done RC: prints the job's output ($OUT); sbatch --wait must have exited with RC 0
job_done() {
    echo "--- job output ($OUT)"
    cat "$OUT" 2>/dev/null
    echo "---"
    [ "$1" = 0 ] || fail "sbatch --wait exited with $1 (the job's exit code)"
}

case "$CASE" in
sbatch)
    OUT=$W/slurm.out
    timeout 120 sbatch --wait --chdir="$W" --output="$OUT" --time=5 \
        "$SRC/jobs/fashion_mnist_mlp.sbatch" --max-epochs 1 --limit-batches 20
    job_done $?
    expect "$OUT" '^fashion_mnist_mlp.sbatch: job [0-9]+ on .*: 2 ranks x 1 threads' "the script"
    expect "$OUT" '^done: 1 phase, 1 epochs' "mltrain"
    two_ranks "$OUT"
    check_ckpt 1
    ;;
multinode)
    OUT=$W/slurm.out
    # the script's 2 nodes x 2 ranks x 4 CPUs, shrunk to 1 rank of 1 CPU per node
    timeout 120 sbatch --wait --chdir="$W" --output="$OUT" --time=5 --ntasks-per-node=1 \
        --cpus-per-task=1 "$SRC/jobs/fashion_mnist_mlp_multinode.sbatch" --max-epochs 1 \
        --limit-batches 20
    job_done $?
    expect "$OUT" '^fashion_mnist_mlp_multinode.sbatch: job [0-9]+ on .* \(2 nodes\): 2 ranks x 1 threads' \
        "the script"
    expect "$OUT" '^done: 1 phase, 1 epochs' "mltrain"
    two_ranks "$OUT"
    check_ckpt 1
    ;;
preempt)
    OUT=$W/slurm.out
    # 2 epochs of 40 batches (and their monitoring): seconds of work even on a fast machine, so
    # SIGUSR1 sent as soon as the epoch-0 monitor record exists lands before the end
    timeout 150 sbatch --wait --chdir="$W" --output="$OUT" --time=5 \
        "$SRC/jobs/fashion_mnist_mlp_preemptible.sbatch" --max-epochs 2 --limit-batches 40 \
        > "$W/sbatch.txt" 2>&1 &
    sbatch_pid=$!
    job=
    for _ in $(seq 100); do
        job=$(sed -n 's/^Submitted batch job \([0-9]*\).*/\1/p' "$W/sbatch.txt")
        [ -n "$job" ] && break
        sleep 0.1
    done
    [ -n "$job" ] || { cat "$W/sbatch.txt"; fail "sbatch printed no job id"; }
    # training has begun once the epoch-0 monitor record exists
    for _ in $(seq 600); do
        grep -q '"epoch":0,' "$MONITOR" 2>/dev/null && break
        sleep 0.05
    done
    grep -q '"epoch":0,' "$MONITOR" 2>/dev/null || fail "job $job wrote no monitor record in 30 s"
    echo "sending SIGUSR1 to the batch script of job $job at $(elapsed) s"
    scancel --batch --signal=USR1 "$job" || fail "scancel --batch --signal=USR1 $job failed"
    wait "$sbatch_pid"
    rc=$?
    cat "$W/sbatch.txt"
    job_done $rc
    # run 1: signal forwarded, checkpoint written, exit 3, requeued
    expect "$OUT" '^fashion_mnist_mlp_preemptible.sbatch: job [0-9]+ run 1 \(restarts: 0\)' "run 1"
    expect "$OUT" 'SIGUSR1 at .*: asking the ranks to checkpoint' "the USR1 trap"
    expect "$OUT" 'stopped by signal 15 after [0-9]+ epochs; checkpoint ' \
        "mltrain's checkpoint on SIGTERM"
    expect "$OUT" 'mltrain stopped at a checkpoint \(exit 3\): requeueing job' "the requeue"
    # run 2: resumed, finished
    expect "$OUT" '^fashion_mnist_mlp_preemptible.sbatch: job [0-9]+ run 2 \(restarts: 1\)' "run 2"
    expect "$OUT" 'resuming from .* at epoch [0-9]+, batch [0-9]+' "mltrain --resume=auto"
    expect "$OUT" '^done: 1 phase, 2 epochs' "mltrain"
    expect "$OUT" 'training finished \(exit 0\) after 1 requeues' "the script"
    two_ranks "$OUT"
    check_ckpt 2
    ;;
*)
    fail "unknown case '$CASE'"
    ;;
esac
echo "PASS ($CASE) in $(elapsed) s"
