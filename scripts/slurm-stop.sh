#!/usr/bin/env bash
# Stops the Slurm cluster that scripts/slurm-start.sh started in DIR: cancels its jobs (so no job
# step outlives the daemons), then ends exactly the slurmd(s), slurmctld and munged whose PIDs it
# recorded in DIR/pids/ (SIGTERM, SIGKILL after 10 s). A PID that no longer runs that program is
# left alone. Idempotent: nothing running is not an error. DIR itself (logs, slurm.conf) stays.
# Usage: scripts/slurm-stop.sh [DIR]   (default $MLTRAIN_SLURM_DIR, else /run/mltrain-slurm)
set -uo pipefail

DIR=${1:-${MLTRAIN_SLURM_DIR:-/run/mltrain-slurm}}
case "$DIR" in /*) ;; *) DIR=$PWD/$DIR ;; esac

# runs PID PROGRAM: PID is a live process of PROGRAM (not a zombie, not a reused PID)
runs() {
    [ -n "$1" ] && [ -r "/proc/$1/stat" ] || return 1
    [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ] || return 1
    [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]
}
# pid_of NAME: the PID recorded in DIR/pids/NAME.pid when it still runs the program the name
# says (slurmd-NODE: slurmd)
pid_of() {
    local pid
    pid=$(cat "$DIR/pids/$1.pid" 2>/dev/null) || return 1
    runs "$pid" "${1%%-*}" || return 1
    echo "$pid"
}

if [ ! -d "$DIR/pids" ]; then
    echo "slurm-stop: nothing started in $DIR"
    exit 0
fi
[ "$(id -u)" = 0 ] || { echo "slurm-stop: must run as root" >&2; exit 2; }

# Jobs first, while slurmctld and slurmd still run: their steps end with them.
if pid_of slurmctld >/dev/null && [ -e "$DIR/slurm.conf" ]; then
    export SLURM_CONF=$DIR/slurm.conf
    jobs=$(timeout 10 squeue -h -o %i 2>/dev/null)
    if [ -n "$jobs" ]; then
        # shellcheck disable=SC2086  # one argument per job id
        timeout 10 scancel --full $jobs 2>/dev/null || true
        for _ in $(seq 50); do
            [ -z "$(timeout 10 squeue -h -o %i 2>/dev/null)" ] && break
            sleep 0.2
        done
    fi
fi

names=()
for f in "$DIR"/pids/slurmd*.pid; do
    [ -e "$f" ] && names+=("$(basename "$f" .pid)")
done
stopped=()
for name in "${names[@]}" slurmctld munged; do
    pid=$(pid_of "$name") || { rm -f "$DIR/pids/$name.pid"; continue; }
    prog=${name%%-*}
    kill -TERM "$pid" 2>/dev/null || true
    # (the daemons remove their PID file when they begin to shut down: watch the PID itself)
    for _ in $(seq 100); do
        runs "$pid" "$prog" || break
        sleep 0.1
    done
    if runs "$pid" "$prog"; then
        echo "slurm-stop: $name ($pid) ignored SIGTERM for 10 s; sending SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.2
    fi
    rm -f "$DIR/pids/$name.pid"
    stopped+=("$name($pid)")
done
echo "slurm-stop: stopped ${stopped[*]:-nothing} in $DIR"
