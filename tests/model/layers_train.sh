#!/bin/sh
# Training runs of the nested layers from YAML (tests/model/CMakeLists.txt registers each case
# as cli.layers.CASE): CompositeLayer + FlattenerLayer, a nested MLP and an LSTM over image
# rows on a slice of Fashion-MNIST, ProjectionLayer on a tiny integer dataset written here (two
# .npy sources joined by CompositeDataset). Each case trains 4 epochs and checks that
# train_objective went down, then trains again, is stopped by SIGTERM mid-epoch, resumes, and
# must end with the same parameters, optimizer state and monitor history bit for bit
# (ckpt_diff).
# Usage: layers_train.sh CASE MLTRAIN CKPT_DIFF SOURCE_DIR WORK_ROOT
set -u
CASE=$1
MLTRAIN=$2
DIFF=$3
SRC=$4
ROOT=$5
FASHION=/usr/share/datasets/fashion-mnist
PY=/usr/bin/python3

fail() { echo "FAIL: $*"; exit 1; }
skip() { echo "SKIP: $*"; exit 77; }

[ -x "$PY" ] || PY=python3
W=$ROOT/$CASE
rm -rf "$W"
mkdir -p "$W"
cd "$W" || fail "cd $W"
cp "$SRC/layers_$CASE.yaml" job.yaml || fail "copy the job"
# bit-identical resume does not depend on the thread count when it is pinned
export MLTRAIN_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1

P=""
case "$CASE" in
composite|nested|lstm)
    [ -e "$FASHION/train-images-idx3-ubyte.gz" ] || skip "Fashion-MNIST not installed ($FASHION)"
    ;;
projection)
    "$PY" -c "import numpy" 2> /dev/null || skip "no numpy to write the integer dataset"
    "$PY" - "$W" <<'PYEOF' || fail "writing the dataset"
import sys, numpy as np
d = sys.argv[1]
rng = np.random.RandomState(7)
n = 400
tokens = rng.randint(0, 20, size=(n, 3)).astype(np.int64)
dense = rng.normal(size=(n, 2)).astype(np.float32)
# the class depends on the first token and, less, on the dense features
labels = ((tokens[:, 0] < 10).astype(np.int64) ^ (dense[:, 0] > 1.5)).astype(np.int64)
np.save(d + "/tokens.npy", tokens)
np.save(d + "/dense.npy", dense)
np.save(d + "/labels.npy", labels)
PYEOF
    P="--param data=$W"
    ;;
*)
    fail "unknown case $CASE"
    ;;
esac

# run EXPECTED_RC OUT ARGS...: runs mltrain on the job, output in OUT
run() {
    want=$1
    out=$2
    shift 2
    timeout 150 "$MLTRAIN" job.yaml $P "$@" > "$out" 2>&1
    rc=$?
    cat "$out"
    [ "$rc" = "$want" ] || fail "mltrain job.yaml $* exited with $rc (expected $want)"
}

"$MLTRAIN" job.yaml $P --param max_epochs=4 --param save_path="$W/dry" --dry-run > dry.txt 2>&1 ||
    { cat dry.txt; grep -q "ERR_NOT_BUILT" dry.txt && skip "built without a module the job needs"; fail "dry run"; }

run 0 a.txt --param max_epochs=4 --param save_path="$W/a" --run-dir "$W/a.run"
[ -s "$W/a/final.ckpt" ] || fail "no checkpoint written"
# train_objective: the first record (before training) against the last (after 4 epochs)
"$PY" - "$W/a.run/monitor.jsonl" <<'PYEOF' || fail "the objective did not go down"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
first, last = recs[0]["channels"]["train_objective"], recs[-1]["channels"]["train_objective"]
print("train_objective %.6f -> %.6f over %d records" % (first, last, len(recs)))
sys.exit(0 if last < 0.95 * first else 1)
PYEOF

# stopped by SIGTERM in epoch 2, then resumed: the same end as the uninterrupted run
MLTRAIN_TEST_SIGNAL_AFTER_BATCHES=15 timeout 150 "$MLTRAIN" job.yaml $P --param max_epochs=4 \
    --param save_path="$W/b" --run-dir "$W/b.run" > b1.txt 2>&1
rc=$?
cat b1.txt
[ "$rc" = 3 ] || fail "exit code $rc after SIGTERM (expected 3)"
run 0 b2.txt --param max_epochs=4 --param save_path="$W/b" --run-dir "$W/b.run" --resume
grep -q "resuming from" b2.txt || fail "did not resume"
"$DIFF" "$W/a/final.ckpt" "$W/b/final.ckpt" --channels ||
    fail "the resumed run differs from the uninterrupted one"
echo "PASS: $CASE"
