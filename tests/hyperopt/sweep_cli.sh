#!/bin/sh
# Sweeps through the mltrain command (tests/hyperopt/CMakeLists.txt registers each case as
# sweep.CASE[.N]): real processes, real mpiexec ranks, real files.
#   points N     random search with an expression objective on N ranks (oversubscribed) gives
#                the same set of trial points as one process, every trial once
#   kill N       SIGKILL of the whole job (its process group) mid-sweep, then the same command:
#                the sweep completes, every trial finishes exactly once in the journal and in
#                summary.csv, the points equal an uninterrupted run's
#   failing      trials whose objective is NaN are recorded failed with a message; the sweep
#                goes on and finishes with exit code 0
#   asha         ASHA on an expression of the parameters and `epoch`: some trials are pruned
#                before the last epoch, reports are journaled; sweep-report prints and plots
#   lost N       a worker group that stops answering: its trial is requeued after lease_grace_s
#                and finished by another group, the job then ends with an error
#   journal      a truncated last journal line is dropped with a warning and cut off; a garbage
#                line is an error naming journal.jsonl:LINE
#   sbatch       --emit-sbatch prints a job array for random search, refuses TPE; --dry-run
#                prints the space
#   report       sweep-report on the Branin sweep (jobs/branin_sweep.yaml) and on a sweep with
#                log, categorical and randint parameters, pruned and failed trials: the
#                parallel coordinates PNG (signature, size) and an importance row per parameter
#   hparams      the TensorBoard HParams files of that mixed sweep read back with TensorBoard's
#                own parsers: the experiment's parameters, types, domains and metric, each
#                trial's values, status and final objective as summary.csv says (SKIP without
#                tensorboard)
#   train N      the Fashion-MNIST MLP sweep (jobs/fashion_mnist_mlp_sweep.yaml), 4 trials x 2
#                epochs with --limit-batches, on N ranks in groups of 2 (4 ranks: a group of 2
#                and one of 1): trial folders with resolved.yaml, monitor logs, TensorBoard
#                events and result.json
# Usage: sweep_cli.sh CASE N MLTRAIN WORK_ROOT SOURCE_ROOT
set -u
CASE=$1
N=$2
MLTRAIN=$3
ROOT=$4
SRC=$5

fail() { echo "FAIL: $*"; exit 1; }
skip() { echo "SKIP: $*"; exit 77; }

W=$ROOT/$CASE.$N
rm -rf "$W"
mkdir -p "$W"
cd "$W" || fail "cd $W"
export MLTRAIN_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
export OMPI_MCA_mpi_yield_when_idle=1
MPIEXEC=${MPIEXEC:-mpiexec}
mpi() { # mpi N CMD...: N ranks (or the command alone for N = 1), at most 170 s
    n=$1
    shift
    if [ "$n" = 1 ]; then timeout 170 "$@"; else
        command -v "$MPIEXEC" > /dev/null 2>&1 || skip "no $MPIEXEC"
        timeout 170 "$MPIEXEC" -n "$n" --bind-to none --mca btl self,vader "$@"
    fi
}

# expr_sweep FILE ALGO TRIALS EXPRESSION [PRUNER]: a sweep with an expression objective
expr_sweep() {
    cat > "$1" <<EOF
!obj:Sweep {
  name: 'test', seed: 11,
  params: { x: !uniform [0, 1], n: !intuniform [1, 9], c: !choice [1.5, 2.5, 4.0] },
  train: !obj:Train { model: !obj:MLP { nvis: 2, layers: [] } },
  objective: { expression: '$4', mode: min },
  search: { algorithm: $2, max_trials: $3, max_concurrent: 8 },
  pruner: ${5:-{ type: none \}},
  distributed: { lease_grace_s: 60, heartbeat_s: 1 },
  storage: { dir: '${1%.yaml}.sweep' },
}
EOF
}

# the parameter columns of summary.csv (all but the first 8 and the message), sorted
points() { cut -d, -f1,9-11 "$1" | tail -n +2 | sort -n; }

# every id 0..N-1 exactly once among the journal's finished records
finished_once() {
    grep '"event":"trial_finished"' "$1" | sed 's/.*"trial":\([0-9]*\).*/\1/' | sort -n > ids.txt
    seq 0 $(($2 - 1)) > want.txt
    cmp -s ids.txt want.txt || { echo "finished ids:"; tr '\n' ' ' < ids.txt; echo; return 1; }
}

# mixed_sweep FILE: log, categorical (strings) and randint parameters; ASHA prunes; trial 0
# (x = 0.05, the first at every rung, so never pruned) gives NaN at epoch 4 and fails; the
# rest finish ok (run with --max-epochs 4)
mixed_sweep() {
    cat > "$1" <<EOF
!obj:Sweep {
  name: 'mixed', seed: 3,
  params: { lr: !loguniform [0.0001, 1], act: !choice ['relu', 'tanh', 'sigmoid'],
            x: !uniform [0, 1], n: !randint [2, 6] },
  train: !obj:Train { model: !obj:MLP { nvis: 2, layers: [] } },
  objective: { expression: 'log(x - 0.1 + (4 - epoch)) + lr * 10 / epoch + n', mode: min,
               reduce: last },
  search: { algorithm: random, max_trials: 30, max_concurrent: 8,
            points_to_evaluate: [ { x: 0.05, lr: 0.001, act: 'tanh', n: 3 } ] },
  pruner: { type: asha, min_resource: 1, reduction_factor: 3 },
  storage: { dir: '${1%.yaml}.sweep' },
}
EOF
}

is_png() { [ -s "$1" ] && [ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ]; }

case $CASE in
report)
    timeout 60 "$MLTRAIN" "$SRC/jobs/branin_sweep.yaml" --dir b.sweep --max-trials 12 --quiet \
        > b.out 2>&1 || { cat b.out; fail "branin sweep"; }
    mixed_sweep m.yaml
    timeout 60 "$MLTRAIN" m.yaml --max-epochs 4 --quiet > m.out 2>&1 || { cat m.out; fail "mixed sweep"; }
    grep -q '"status":"pruned"' m.sweep/journal.jsonl && grep -q '"status":"failed"' m.sweep/journal.jsonl \
        || fail "the mixed sweep has no pruned or no failed trial"
    for s in b m; do
        "$MLTRAIN" sweep-report $s.sweep -o ${s}rep > ${s}rep.out 2>&1 || { cat ${s}rep.out; fail "sweep-report $s"; }
        grep -q "^parameter importance over [0-9]* ok trials (a rough measure" ${s}rep.out \
            || { cat ${s}rep.out; fail "no importance table ($s)"; }
        if grep -q "cairo" ${s}rep.out; then echo "(no cairo: plots skipped)"; else
            is_png ${s}rep_parallel.png || fail "${s}rep_parallel.png is not a PNG"
            is_png ${s}rep_history.png || fail "${s}rep_history.png is not a PNG"
        fi
    done
    for p in x y; do
        grep -q "^  $p  *numeric  *12  rank correlation [-+][01]\.[0-9]* (higher values" brep.out \
            || { cat brep.out; fail "no importance row for $p"; }
    done
    for p in "lr  *numeric/log" "act  *categorical" "x  *numeric " "n  *categorical"; do
        grep -q "^  $p" mrep.out || { cat mrep.out; fail "no importance row '$p'"; }
    done
    echo "OK: parallel coordinates and importance for both sweeps"
    ;;
hparams)
    PY=/usr/bin/python3
    $PY -c 'import tensorboard' > /dev/null 2>&1 || skip "$PY cannot import tensorboard"
    mixed_sweep m.yaml
    timeout 60 "$MLTRAIN" m.yaml --max-epochs 4 --quiet > m.out 2>&1 || { cat m.out; fail "mixed sweep"; }
    $PY "$SRC/tests/hyperopt/hparams_check.py" m.sweep > py.out 2>&1 || { cat py.out; fail "HParams files"; }
    cat py.out
    ;;
points)
    expr_sweep one.yaml random 16 '(x - 0.3)**2 + n / 10 + c'
    timeout 120 "$MLTRAIN" one.yaml --quiet > one.out 2>&1 || { cat one.out; fail "1 process"; }
    expr_sweep many.yaml random 16 '(x - 0.3)**2 + n / 10 + c'
    mpi "$N" "$MLTRAIN" many.yaml > many.out 2>&1 || { cat many.out; fail "$N ranks"; }
    [ "$(wc -l < many.sweep/summary.csv)" = 17 ] || fail "summary.csv of $N ranks has not 16 rows"
    finished_once many.sweep/journal.jsonl 16 || fail "a trial is missing or repeated"
    points one.sweep/summary.csv > a.txt
    points many.sweep/summary.csv > b.txt
    cmp -s a.txt b.txt || { diff a.txt b.txt; fail "$N ranks drew other points than 1 process"; }
    grep -q "16 trials finished (16 ok" many.out || { cat many.out; fail "final line"; }
    echo "OK: $N ranks, 16 trials, same points as 1 process"
    ;;
kill)
    # 24 trials of 3 epochs, 0.15 s each epoch: about 11 s of trials in all
    expr_sweep ref.yaml random 24 '(x - 0.3)**2 + c / epoch'
    timeout 120 "$MLTRAIN" ref.yaml --quiet --max-epochs 3 > ref.out 2>&1 || { cat ref.out; fail "reference"; }
    expr_sweep s.yaml random 24 '(x - 0.3)**2 + c / epoch'
    MLTRAIN_TEST_SWEEP_EPOCH_SLEEP=0.15 setsid sh -c "exec $(if [ "$N" != 1 ]; then echo "$MPIEXEC -n $N --bind-to none --mca btl self,vader"; fi) $MLTRAIN s.yaml --max-epochs 3" > run1.out 2>&1 &
    pid=$!
    # wait until at least 3 trials finished, then kill the whole job at once
    i=0
    while :; do
        c=$(grep -c trial_finished s.sweep/journal.jsonl 2>/dev/null)
        [ "${c:-0}" -ge 3 ] && break
        i=$((i + 1))
        [ $i -gt 600 ] && { /bin/kill -KILL -- -$pid; cat run1.out; fail "no trial finished in 60 s"; }
        sleep 0.1
    done
    sleep 0.3
    /bin/kill -KILL -- -$pid 2>/dev/null
    wait $pid 2>/dev/null
    sleep 0.5
    n1=$(grep -c trial_finished s.sweep/journal.jsonl)
    [ "$n1" -lt 24 ] || fail "the sweep finished before it was killed"
    mpi "$N" "$MLTRAIN" s.yaml --max-epochs 3 > run2.out 2>&1 || { cat run2.out; fail "the restarted sweep failed"; }
    grep -q "continuing" run2.out || { cat run2.out; fail "the restart did not say it continues"; }
    finished_once s.sweep/journal.jsonl 24 || fail "after the restart a trial is missing or finished twice"
    [ "$(grep -c '"event":"restart"' s.sweep/journal.jsonl)" = 1 ] || fail "no restart record"
    [ "$(wc -l < s.sweep/summary.csv)" = 25 ] || fail "summary.csv has not 24 rows"
    [ "$(cut -d, -f1 s.sweep/summary.csv | tail -n +2 | sort -n | uniq | wc -l)" = 24 ] || fail "summary.csv repeats a trial"
    points ref.sweep/summary.csv > a.txt
    points s.sweep/summary.csv > b.txt
    cmp -s a.txt b.txt || { diff a.txt b.txt; fail "the killed and restarted sweep has other points"; }
    echo "OK: killed after $n1 finished trials; the restart completed 24 trials, each once"
    ;;
failing)
    expr_sweep f.yaml random 10 'log(x - 0.5)'
    timeout 60 "$MLTRAIN" f.yaml > f.out 2>&1 || { cat f.out; fail "exit code $?"; }
    nf=$(grep -c '"status":"failed"' f.sweep/journal.jsonl)
    nok=$(grep -c '"status":"ok"' f.sweep/journal.jsonl)
    [ "$nf" -gt 0 ] && [ "$nok" -gt 0 ] || { cat f.out; fail "$nf failed, $nok ok: want both"; }
    [ $((nf + nok)) = 10 ] || fail "not 10 trials"
    grep '"status":"failed"' f.sweep/journal.jsonl | grep -q 'the objective expression gave NaN' || fail "no failure message"
    grep -q "failed.*expression gave NaN" f.out || { cat f.out; fail "the table does not show the failure"; }
    echo "OK: $nf failed trials recorded, $nok ok"
    ;;
asha)
    expr_sweep a.yaml random 18 '(x - 0.3)**2 + c / epoch' \
        '{ type: asha, min_resource: 1, reduction_factor: 3 }'
    # rungs at epochs 1 and 3 (9 is past the last epoch): a pruned trial stops before epoch 8
    mpi "$N" "$MLTRAIN" a.yaml --max-epochs 8 > a.out 2>&1 || { cat a.out; fail "exit code"; }
    np=$(grep -c '"status":"pruned"' a.sweep/journal.jsonl)
    nok=$(grep -c '"status":"ok"' a.sweep/journal.jsonl)
    [ "$np" -gt 0 ] && [ "$nok" -gt 0 ] || fail "$np pruned, $nok ok: want both"
    grep '"status":"pruned"' a.sweep/journal.jsonl | grep -q '"epochs":8,' && fail "a pruned trial ran 8 epochs"
    grep '"status":"ok"' a.sweep/journal.jsonl | grep -qv '"epochs":8,' && fail "an ok trial stopped early"
    finished_once a.sweep/journal.jsonl 18 || fail "trials missing"
    "$MLTRAIN" sweep-report a.sweep -o rep > rep.out 2>&1 || { cat rep.out; fail "sweep-report"; }
    grep -q "18 finished ($nok ok, $np pruned, 0 failed)" rep.out || { cat rep.out; fail "report counts"; }
    if grep -q "cairo" rep.out; then echo "(no cairo: plots skipped)"; else
        [ -s rep_history.png ] && [ -s rep_intermediate.png ] || fail "no plots"
    fi
    echo "OK: $np of 18 trials pruned by ASHA"
    ;;
lost)
    # the worker of trial 2 hangs: after lease_grace_s (2 s) the coordinator requeues the
    # trial, another group runs it, the sweep completes, and the job ends with an error
    # (the hung rank cannot be stopped otherwise)
    expr_sweep l.yaml random 8 'x + c / epoch'
    sed -i 's/lease_grace_s: 60, heartbeat_s: 1/lease_grace_s: 2, heartbeat_s: 0.5/' l.yaml
    MLTRAIN_TEST_SWEEP_STALL_TRIAL=2 MLTRAIN_TEST_SWEEP_EPOCH_SLEEP=0.05 \
        mpi "$N" "$MLTRAIN" l.yaml --max-epochs 3 > l.out 2>&1 && { cat l.out; fail "exit code 0"; }
    grep -q "worker group [0-9] (ranks [0-9]-[0-9]) sent nothing for [0-9]* s" l.out || { cat l.out; fail "no lease message"; }
    grep -q '"event":"trial_requeued","trial":2' l.sweep/journal.jsonl || fail "trial 2 not requeued"
    finished_once l.sweep/journal.jsonl 8 || fail "trials missing"
    grep '"trial_finished","trial":2' l.sweep/journal.jsonl | grep -q '"status":"ok"' || fail "the rerun of trial 2 did not finish ok"
    grep -q "stopped answering; the journal is complete" l.out || { cat l.out; fail "no abort message"; }
    echo "OK: the hung group's trial was requeued and finished elsewhere"
    ;;
journal)
    expr_sweep j.yaml random 5 'x + n'
    timeout 60 "$MLTRAIN" j.yaml --quiet > j1.out 2>&1 || { cat j1.out; fail "first run"; }
    size=$(wc -c < j.sweep/journal.jsonl)
    printf '{"event":"trial_created","trial":5,"po' >> j.sweep/journal.jsonl
    timeout 60 "$MLTRAIN" j.yaml > j2.out 2>&1 || { cat j2.out; fail "the truncated line was not ignored"; }
    grep -q "journal.jsonl:[0-9]*: incomplete last record" j2.out || { cat j2.out; fail "no warning"; }
    [ "$(head -c "$size" j.sweep/journal.jsonl | wc -c)" = "$size" ] || fail "journal shrank"
    grep -q '"trial":5,"po$' j.sweep/journal.jsonl && fail "the partial record was not cut off"
    tail -n 1 j.sweep/journal.jsonl | grep -q sweep_finished || fail "the journal does not end well"
    finished_once j.sweep/journal.jsonl 5 || fail "trials changed"
    # garbage in the middle: an error with file:line
    sed -i '3s/.*/this is not json, {]/' j.sweep/journal.jsonl
    timeout 60 "$MLTRAIN" j.yaml > j3.out 2>&1 && { cat j3.out; fail "garbage accepted"; }
    grep -q "journal.jsonl:3: not a journal record" j3.out || { cat j3.out; fail "no file:line"; }
    echo "OK: truncated line dropped with a warning; garbage names journal.jsonl:3"
    ;;
sbatch)
    expr_sweep r.yaml random 20 'x'
    "$MLTRAIN" r.yaml --emit-sbatch > r.sbatch 2>&1 || { cat r.sbatch; fail "emit-sbatch"; }
    grep -q '^#SBATCH --array=0-19%8$' r.sbatch || { cat r.sbatch; fail "array line"; }
    grep -q -- '--array-task "$SLURM_ARRAY_TASK_ID"' r.sbatch || fail "array task"
    expr_sweep t.yaml tpe 20 'x'
    "$MLTRAIN" t.yaml --emit-sbatch > t.out 2>&1 && fail "TPE as a job array accepted"
    grep -q "TPE needs the history" t.out || { cat t.out; fail "message"; }
    # array task 3 runs trial 3 of the random sweep: the same point as a coordinated sweep
    "$MLTRAIN" r.yaml --array-task 3 --quiet > a3.out 2>&1 || { cat a3.out; fail "--array-task"; }
    [ -s r.sweep/trial_0003/result.json ] || fail "no result.json"
    "$MLTRAIN" r.yaml --dry-run > dry.out 2>&1 || { cat dry.out; fail "dry run"; }
    grep -q "params.x" dry.out && grep -q "3 parameters" dry.out || { cat dry.out; fail "space"; }
    echo "OK"
    ;;
train)
    FASHION=/usr/share/datasets/fashion-mnist
    [ -e "$FASHION/train-images-idx3-ubyte.gz" ] || skip "Fashion-MNIST not installed ($FASHION)"
    # with several ranks: groups of 2 ranks training data-parallel (4 ranks: groups of 2 and 1)
    sed 's/ranks_per_trial: 1,/ranks_per_trial: 2,/' "$SRC/jobs/fashion_mnist_mlp_sweep.yaml" > job.yaml
    mpi "$N" "$MLTRAIN" job.yaml --dir t.sweep --max-trials 4 --max-epochs 2 --limit-batches 4 \
        > t.out 2>&1 || { cat t.out; fail "exit code"; }
    if [ "$N" -gt 2 ]; then
        grep -q '"group":0' t.sweep/journal.jsonl || fail "no trial on group 0"
    fi
    if [ "$N" = 4 ]; then
        grep -q "the last group has 1" t.out || { cat t.out; fail "uneven groups not reported"; }
        grep -q '"group":1' t.sweep/journal.jsonl || fail "no trial on the smaller group 1"
    fi
    finished_once t.sweep/journal.jsonl 4 || fail "trials missing"
    for i in 0 1 2 3; do
        d=t.sweep/trial_000$i
        [ -s $d/resolved.yaml ] && [ -s $d/result.json ] || fail "$d lacks resolved.yaml or result.json"
        grep -q '"status":"ok"\|"status":"pruned"' $d/result.json || { cat $d/result.json; fail "trial $i failed"; }
        [ -s $d/monitor.csv ] || fail "$d has no monitor.csv"
        ls $d/events.out.tfevents.* > /dev/null 2>&1 || fail "$d has no TensorBoard events"
        [ -s $d/events.out.tfevents.0000000000.mltrain-hparams ] || fail "$d has no HParams session"
    done
    if /usr/bin/python3 -c 'import tensorboard' > /dev/null 2>&1; then
        /usr/bin/python3 "$SRC/tests/hyperopt/hparams_check.py" t.sweep > py.out 2>&1 || { cat py.out; fail "HParams files"; }
    else
        echo "(tensorboard not installed: HParams files not read back)"
    fi
    echo "OK: 4 training trials on $N ranks"
    ;;
*)
    fail "unknown case $CASE"
    ;;
esac
