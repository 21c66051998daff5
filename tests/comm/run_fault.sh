#!/bin/sh
# Runs a fault-injection command (mpiexec ... comm_fault ...) and checks what the job must do:
# exit non-zero, within MAX_S seconds, with output matching REGEX, and leave no rank behind
# (every "comm_fault: rank R pid P" line names a process that must be gone).
# Usage: run_fault.sh REGEX MAX_S command...
regex=$1
max_s=$2
shift 2
out=$(mktemp)
start=$(date +%s.%N)
"$@" >"$out" 2>&1
rc=$?
end=$(date +%s.%N)
cat "$out"
fail=0
elapsed=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
echo "run_fault: exit code $rc after $elapsed s"
if [ "$rc" -eq 0 ]; then echo "run_fault: FAIL: the job exited 0"; fail=1; fi
if awk -v e="$elapsed" -v m="$max_s" 'BEGIN { exit !(e > m) }'; then
  echo "run_fault: FAIL: the job took longer than $max_s s"; fail=1
fi
if ! grep -Eq "$regex" "$out"; then echo "run_fault: FAIL: no line matches /$regex/"; fail=1; fi
sleep 1
for pid in $(sed -n 's/.*comm_fault: rank [0-9]* pid \([0-9]*\).*/\1/p' "$out"); do
  # a zombie (state Z, waiting for a parent that does not reap it) has exited
  state=$(ps -o stat= -p "$pid" 2>/dev/null)
  case "$state" in
    ""|Z*) ;;
    *) echo "run_fault: FAIL: rank process $pid is still alive ($state)"; fail=1 ;;
  esac
done
if ! grep -q "comm_fault: rank 0 pid" "$out"; then echo "run_fault: FAIL: rank 0 never started"; fail=1; fi
rm -f "$out"
exit $fail
