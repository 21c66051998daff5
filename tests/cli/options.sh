#!/bin/sh
# The option parsing of `mltrain JOB.yaml` (train) and `mltrain SWEEP.yaml` / `mltrain
# sweep-report` (sweep): each usage error names the option and the rule, exits 2, and runs
# nothing; --help exits 0. Option errors are found before a job file is read, so the job files
# here need not exist (the sweep file only has to start with !obj:Sweep).
# usage: options.sh train|sweep MLTRAIN WORKDIR
set -u
CASE=$1
MLTRAIN=$2
W=$3
mkdir -p "$W" && cd "$W" || exit 1
fails=0

# check EXIT_CODE 'fixed text the output must contain' ARGS...
check() {
    want_rc=$1
    want=$2
    shift 2
    out=$("$MLTRAIN" "$@" 2>&1)
    rc=$?
    if [ "$rc" -ne "$want_rc" ]; then
        echo "FAIL: mltrain $*: exit $rc, expected $want_rc; output:"
        echo "$out"
        fails=$((fails + 1))
    elif ! printf '%s\n' "$out" | grep -qF -- "$want"; then
        echo "FAIL: mltrain $*: no '$want' in:"
        echo "$out"
        fails=$((fails + 1))
    else
        echo "ok: mltrain $* -> $want"
    fi
}

case "$CASE" in
train)
    check 2 "mltrain: error: --max-epochs wants an integer >= 0, got '-1'" none.yaml --max-epochs -1
    check 2 "mltrain: error: --max-epochs wants an integer >= 0, got '2x'" none.yaml --max-epochs=2x
    check 2 "mltrain: error: --limit-batches wants an integer >= 1, got '0'" none.yaml --limit-batches=0
    check 2 "mltrain: error: --seed wants an integer, got 'x'" none.yaml --seed x
    check 2 "mltrain: error: --seed needs a value" none.yaml --seed
    check 2 "mltrain: error: --param wants NAME=VALUE, got 'foo'" none.yaml --param foo
    check 2 "mltrain: error: --param wants NAME=VALUE, got '=1'" none.yaml -p =1
    check 2 "mltrain: error: -p needs a value" none.yaml -p
    check 2 "mltrain: error: --device needs a value" none.yaml --device
    check 2 "mltrain: error: --loss-scale wants a number >= 1, got '0.5'" none.yaml --loss-scale 0.5
    check 2 "mltrain: error: --precision wants float32, bfloat16 or float16, got 'int8'" none.yaml --precision=int8
    check 2 "mltrain: error: --resume=maybe: expected yes, auto or no" none.yaml --resume=maybe
    check 2 "mltrain: error: --shards wants an integer in [1, 65536]" none.yaml --shards 0
    check 2 "mltrain: error: --bucket-mb wants a number > 0 (MiB)" none.yaml --bucket-mb=0
    check 2 "mltrain: error: --comm-timeout wants seconds >= 0 (0: none)" none.yaml --comm-timeout=-1
    check 2 "mltrain: error: --comm-timeout needs a value" none.yaml --comm-timeout
    check 2 "mltrain: error: unknown option '--bogus'" none.yaml --bogus
    check 2 "usage: mltrain JOB.yaml [options]" none.yaml --bogus
    check 2 "mltrain: error: one job file at a time ('a.yaml' and 'b.yaml')" train a.yaml b.yaml
    check 2 "usage: mltrain JOB.yaml [options]" train --quiet
    check 0 "usage: mltrain JOB.yaml [options]" none.yaml --help
    ;;
sweep)
    printf '!obj:Sweep {}\n' > s.yaml
    check 2 "mltrain: error: --max-trials wants an integer >= 0, got '-2'" s.yaml --max-trials -2
    check 2 "mltrain: error: --max-epochs wants an integer >= 0, got '1.5'" s.yaml --max-epochs=1.5
    check 2 "mltrain: error: --limit-batches wants an integer >= 0, got ''" s.yaml --limit-batches=
    check 2 "mltrain: error: --array-task wants an integer >= 0, got 'x'" s.yaml --array-task x
    check 2 "mltrain: error: --array-task needs a value" s.yaml --array-task
    check 2 "mltrain: error: --dir needs a value" s.yaml --dir
    check 2 "mltrain: error: --param wants NAME=VALUE, got 'x'" s.yaml --param=x
    check 2 "mltrain: error: --comm-timeout wants seconds >= 0 (0: none)" s.yaml --comm-timeout abc
    check 2 "mltrain: error: unknown sweep option '--shards'" s.yaml --shards 2
    check 2 "usage: mltrain SWEEP.yaml [options]" s.yaml --bogus
    check 2 "mltrain: error: one sweep file at a time ('s.yaml' and 't.yaml')" s.yaml t.yaml
    check 0 "usage: mltrain SWEEP.yaml [options]" s.yaml --help
    check 2 "mltrain: error: --top wants an integer >= 1, got '0'" sweep-report d --top 0
    check 2 "mltrain: error: --top needs a value" sweep-report d --top
    check 2 "mltrain: error: sweep-report: unexpected '--bogus'" sweep-report d --bogus
    ;;
*)
    echo "unknown case '$CASE'"
    exit 1
    ;;
esac
[ "$fails" -eq 0 ] || { echo "$fails check(s) failed"; exit 1; }
echo "all checks passed"
