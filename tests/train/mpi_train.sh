#!/bin/sh
# Data-parallel training tests (label mpi; tests/train/CMakeLists.txt registers each case as
# mpi.train.CASE.N): real mpiexec ranks run tests/train/mpi_mlp.yaml on Fashion-MNIST and the
# checkpoints are compared with ckpt_diff (the io module's reader).
#   det N       N ranks --deterministic == one process --shards N, bit for bit (parameters,
#               optimizer state, monitor channels), 200 steps
#   det_bf16 N  the same with --precision bfloat16
#   det_cudaemu N  the det case on the CUDA checking device cudaemu:0 (device buffers, gradient
#               buckets staged through host memory by the jit's collective steps)
#   det_lstm N  the det case with tests/train/mpi_lstm.yaml, an LSTM (a loop and its reverse
#               loop in the training function), 1280 examples
#   fast N      N ranks (fast mode) == one plain process within a stated tolerance
#   kill        SIGKILL of rank 1 mid-run: every rank exits non-zero within 30 s, the output
#               names rank 1
#   stall       rank 1 stops making progress: with MLTRAIN_COMM_TIMEOUT=5 every rank exits
#               non-zero, the message names rank 1, the collective and its sequence number
#   sigterm     SIGTERM on rank 1 mid-epoch: exit 3 with a checkpoint, --resume=auto ends with
#               the same bits as an uninterrupted run (deterministic mode, and fast mode)
# Usage: mpi_train.sh CASE N MLTRAIN CKPT_DIFF WORK_ROOT SOURCE_ROOT
set -u
CASE=$1
N=$2
MLTRAIN=$3
DIFF=$4
ROOT=$5
SRC=$6
FASHION=/usr/share/datasets/fashion-mnist

fail() { echo "FAIL: $*"; exit 1; }
skip() { echo "SKIP: $*"; exit 77; }

[ -e "$FASHION/train-images-idx3-ubyte.gz" ] || skip "Fashion-MNIST not installed ($FASHION)"
MPIEXEC=${MPIEXEC:-mpiexec}
command -v "$MPIEXEC" > /dev/null 2>&1 || skip "no $MPIEXEC"
[ -x "$DIFF" ] || fail "no ckpt_diff at $DIFF"

W=$ROOT/$CASE.$N
rm -rf "$W"
mkdir -p "$W"
cd "$W" || fail "cd $W"
JOB=mpi_mlp.yaml
[ "$CASE" = det_lstm ] && JOB=mpi_lstm.yaml
cp "$SRC/tests/train/$JOB" job.yaml || fail "copy the job"

# Deterministic bits do not depend on the rank count; pin the threads so they do not depend
# on the thread count either (docs/parallel.md).
export MLTRAIN_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
export OMPI_MCA_mpi_yield_when_idle=1
MPI="$MPIEXEC -n $N --bind-to none --mca btl self,vader"

STOP=6400
[ "$CASE" = det_lstm ] && STOP=1280
params() { # params DIR: the job's template values, checkpoints in DIR
    echo "--param train_stop=$STOP --param batch_size=64 --param max_epochs=2 --param save_path=$1 --run-dir $1.run"
}

"$MLTRAIN" job.yaml $(params "$W/probe") --shards 2 --dry-run > probe.txt 2>&1
if ! grep -q "data parallel: 1 rank, 2 shards" probe.txt; then
    cat probe.txt
    grep -q "built without" probe.txt && skip "mltrain was built without the comm/parallel modules"
    fail "the dry run does not describe the data-parallel run"
fi

# run EXPECTED_RC OUT CMD...: runs a command with a 120 s limit, output in OUT
run() {
    want=$1
    out=$2
    shift 2
    timeout 120 "$@" > "$out" 2>&1
    rc=$?
    cat "$out"
    [ "$rc" = "$want" ] || fail "$* exited with $rc (expected $want)"
}

# must_stop WHAT LIMIT DIR VAR=VALUE...: runs the job on N ranks (checkpoints in DIR) with the
# variables set, output in out.txt; it must exit non-zero, without hanging, within LIMIT s
# (WHAT names the fault in the messages)
must_stop() {
    what=$1
    limit=$2
    dir=$3
    shift 3
    t0=$(date +%s)
    env "$@" timeout 90 $MPI "$MLTRAIN" job.yaml $(params "$W/$dir") > out.txt 2>&1
    rc=$?
    t1=$(date +%s)
    cat out.txt
    [ "$rc" != 0 ] || fail "exit code 0 $what"
    [ "$rc" != 124 ] || fail "the job hung $what"
    [ $((t1 - t0)) -le "$limit" ] || fail "the job took $((t1 - t0)) s to stop (limit $limit s)"
}

case "$CASE" in
det)
    run 0 ranks.txt $MPI "$MLTRAIN" job.yaml $(params "$W/ranks") --deterministic
    run 0 one.txt "$MLTRAIN" job.yaml $(params "$W/one") --shards "$N"
    grep -q "epoch 2/2 done" ranks.txt || fail "the $N-rank run printed no epoch 2 record"
    [ "$(grep -c "epoch 2/2 done" ranks.txt)" = 1 ] || fail "more than one rank printed records"
    [ -s ranks/best.ckpt ] || fail "MonitorBasedSaveBest wrote nothing on rank 0"
    "$DIFF" ranks/final.ckpt one/final.ckpt --channels || fail "$N ranks differ from --shards $N"
    ;;
det_lstm)
    run 0 ranks.txt $MPI "$MLTRAIN" job.yaml $(params "$W/ranks") --deterministic
    run 0 one.txt "$MLTRAIN" job.yaml $(params "$W/one") --shards "$N"
    grep -q "epoch 2/2 done" ranks.txt || fail "the $N-rank run printed no epoch 2 record"
    "$DIFF" ranks/final.ckpt one/final.ckpt --channels || fail "$N ranks differ from --shards $N"
    ;;
det_bf16)
    # mixed precision (bfloat16 compute, float32 gradients and all-reduce): N ranks equal one
    # process running N shards bit for bit, as in float32
    run 0 ranks.txt $MPI "$MLTRAIN" job.yaml $(params "$W/ranks") --deterministic \
        --precision bfloat16
    run 0 one.txt "$MLTRAIN" job.yaml $(params "$W/one") --shards "$N" --precision bfloat16
    grep -q "epoch 2/2 done" ranks.txt || fail "the $N-rank run printed no epoch 2 record"
    "$DIFF" ranks/final.ckpt one/final.ckpt --channels || fail "$N ranks differ from --shards $N"
    ;;
det_cudaemu)
    run 0 ranks.txt $MPI "$MLTRAIN" job.yaml $(params "$W/ranks") --deterministic \
        --device cudaemu:0
    grep -q "epoch 2/2 done" ranks.txt || fail "the $N-rank run printed no epoch 2 record"
    run 0 one.txt "$MLTRAIN" job.yaml $(params "$W/one") --shards "$N" --device cudaemu:0
    "$DIFF" ranks/final.ckpt one/final.ckpt --channels || fail "$N ranks differ from --shards $N"
    ;;
fast)
    run 0 ranks.txt $MPI "$MLTRAIN" job.yaml $(params "$W/ranks")
    run 0 one.txt "$MLTRAIN" job.yaml $(params "$W/one")
    # Stated tolerance: after 200 momentum steps the sum order of MPI's all-reduce moves
    # parameters by a few float32 ulps per step; 1e-4 relative to the largest value (params)
    # and 1e-4 relative (channels) hold with a wide margin (docs/parallel.md).
    "$DIFF" ranks/final.ckpt one/final.ckpt --tol 1e-4 --channels --channel-tol 1e-4 ||
        fail "$N ranks (fast) are not within the tolerance of one process"
    ;;
kill)
    must_stop "after rank 1 was killed" 30 k MLTRAIN_TEST_SIGNAL_AFTER_BATCHES=30:KILL \
        MLTRAIN_TEST_SIGNAL_RANK=1
    grep -q "rank 1" out.txt || fail "the output does not name rank 1"
    ;;
stall)
    must_stop "with a stalled rank" 60 s MLTRAIN_TEST_STALL_RANK=1 \
        MLTRAIN_TEST_STALL_AFTER_BATCHES=30 MLTRAIN_COMM_TIMEOUT=5
    grep -q "rank 1 (last started #[0-9]*) did not arrive" out.txt ||
        fail "the message does not name the stalled rank and its last collective"
    grep -Eq "(allreduce|allgather|broadcast|barrier)[a-z_]* #[0-9]+" out.txt ||
        fail "the message does not name the collective and its sequence number"
    ;;
sigterm)
    for mode in det fast; do
        flag=""
        [ $mode = det ] && flag=--deterministic
        run 0 a_$mode.txt $MPI "$MLTRAIN" job.yaml $(params "$W/a_$mode") $flag
        MLTRAIN_TEST_SIGNAL_AFTER_BATCHES=70 MLTRAIN_TEST_SIGNAL_RANK=1 \
            timeout 120 $MPI "$MLTRAIN" job.yaml $(params "$W/b_$mode") $flag > b1_$mode.txt 2>&1
        rc=$?
        cat b1_$mode.txt
        [ "$rc" = 3 ] || fail "$mode: exit code $rc after SIGTERM on rank 1 (expected 3)"
        grep -q "stopped by signal 15" b1_$mode.txt || fail "$mode: no stop message"
        [ -s "b_$mode/final.ckpt" ] || fail "$mode: no checkpoint written"
        run 0 b2_$mode.txt $MPI "$MLTRAIN" job.yaml $(params "$W/b_$mode") $flag --resume=auto
        grep -q "resuming from" b2_$mode.txt || fail "$mode: did not resume"
        "$DIFF" "a_$mode/final.ckpt" "b_$mode/final.ckpt" --channels ||
            fail "$mode: the resumed run differs from the uninterrupted one"
    done
    ;;
*)
    fail "unknown case $CASE"
    ;;
esac
echo "PASS: $CASE $N"
