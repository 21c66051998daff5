#!/usr/bin/env bash
# Starts a Slurm cluster on this machine, as root, without systemd: its own munged (run as user
# munge, on its own socket and key), slurmctld and one slurmd per node (one node by default),
# all configured by one slurm.conf in a directory of its own, so an existing
# /etc/slurm/slurm.conf or a system munged is left alone. Used by the Slurm tests (tests/slurm)
# and for trying the jobs/*.sbatch scripts on one machine; docs/parallel.md ("Slurm") shows how.
#
# Usage: scripts/slurm-start.sh [DIR]
#   DIR (default $MLTRAIN_SLURM_DIR, else /run/mltrain-slurm) receives slurm.conf, the daemons'
#   state, logs and PID files, and env.sh. Point the Slurm commands at the cluster with
#       export SLURM_CONF=DIR/slurm.conf        (or: . DIR/env.sh)
# Environment:
#   MLTRAIN_SLURM_PORT         slurmctld's port (default 6817); slurmd(s) use the next ones
#   MLTRAIN_SLURM_CRED_EXPIRE  seconds a requeued job waits before it starts again (Slurm's
#                              AuthInfo cred_expire; default 120, Slurm's own default)
#   MLTRAIN_SLURM_MIN_JOB_AGE  seconds a finished job stays visible to scontrol (default 300);
#                              `sbatch --wait` polls every 2 s when it is 4 or less (else it
#                              backs off to 8 s and more)
#   MLTRAIN_SLURM_CPUS         CPUs each node offers (default: nproc)
#   MLTRAIN_SLURM_NODES        nodes (default 1: the node is named after the host). With N > 1,
#                              N slurmd processes on this host play nodes HOST1..HOSTN, each
#                              offering all CPUs: multi-node jobs (srun -N 2 --mpi=pmix) run for
#                              real, over the loopback network
# Idempotent: when the daemons of DIR already run with the same nodes, it says so and does
# nothing (other settings are not compared: stop first to change them). Each start begins with
# an empty job queue (slurmctld -c). scripts/slurm-stop.sh DIR stops exactly the processes
# started here (their PIDs are in DIR/pids/).
# Exit codes: 0 running (every node idle), 1 a daemon failed (its log is printed),
# 2 not root, a package is missing or a bad setting.
set -euo pipefail

DIR=${1:-${MLTRAIN_SLURM_DIR:-/run/mltrain-slurm}}
PORT=${MLTRAIN_SLURM_PORT:-6817}
CRED_EXPIRE=${MLTRAIN_SLURM_CRED_EXPIRE:-120}
CPUS=${MLTRAIN_SLURM_CPUS:-$(nproc)}
MIN_JOB_AGE=${MLTRAIN_SLURM_MIN_JOB_AGE:-300}
NODES=${MLTRAIN_SLURM_NODES:-1}

die() { echo "slurm-start: $*" >&2; exit "${2:-1}"; }

[ "$(id -u)" = 0 ] || die "must run as root (it starts munged as user munge and slurmd as root)" 2
missing=()
for b in /usr/sbin/munged /usr/sbin/mungekey /usr/sbin/slurmctld /usr/sbin/slurmd sinfo srun \
         sbatch scontrol munge unmunge runuser; do
    command -v "$b" >/dev/null 2>&1 || missing+=("$b")
done
[ ${#missing[@]} = 0 ] || die "missing ${missing[*]} (install: apt-get install slurm-wlm slurm-client munge)" 2
id munge >/dev/null 2>&1 || die "no user 'munge' (install the munge package)" 2
for v in PORT CRED_EXPIRE CPUS MIN_JOB_AGE NODES; do
    case "${!v}" in '' | *[!0-9]*) die "MLTRAIN_SLURM_$v='${!v}' is not a number" 2 ;; esac
done
[ "$NODES" -ge 1 ] || die "MLTRAIN_SLURM_NODES must be at least 1" 2
case "$DIR" in /*) ;; *) DIR=$PWD/$DIR ;; esac

CONF=$DIR/slurm.conf
M=$DIR/munge
SOCKET=$M/munge.socket
# a Unix socket path has at most 107 bytes
[ ${#SOCKET} -lt 100 ] || die "DIR is too long for munge's socket path: $DIR" 2

host=$(hostname -s)
names=()
if [ "$NODES" = 1 ]; then
    names=("$host")
else
    for i in $(seq "$NODES"); do names+=("$host$i"); done
fi
nodelist=$(IFS=,; echo "${names[*]}")

# alive NAME PIDFILE: the PID in PIDFILE runs the program NAME (not a zombie, not a reused PID)
alive() {
    local pid
    pid=$(cat "$2" 2>/dev/null) || return 1
    [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ] || return 1
    [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]
}
running() {
    alive munged "$DIR/pids/munged.pid" && alive slurmctld "$DIR/pids/slurmctld.pid" || return 1
    local n
    for n in "${names[@]}"; do alive slurmd "$DIR/pids/slurmd-$n.pid" || return 1; done
    grep -qx "# nodes: $nodelist" "$CONF" 2>/dev/null
}

if running; then
    echo "slurm-start: already running in $DIR (export SLURM_CONF=$CONF)"
    exit 0
fi
# a partly running cluster (a daemon died) or one with other nodes: start over
if [ -d "$DIR/pids" ]; then
    "$(dirname "$0")/slurm-stop.sh" "$DIR" >/dev/null || true
fi

mkdir -p "$DIR"/{pids,log,ctld} "$M"
for n in "${names[@]}"; do mkdir -p "$DIR/slurmd-$n" "$DIR/tmp-$n"; done
chmod 755 "$DIR"
# munged checks that its directories belong to it, are not writable by others, and that every
# user can reach its socket
chown munge:munge "$M"
chmod 755 "$M"
if [ ! -s "$M/munge.key" ]; then
    runuser -u munge -- /usr/sbin/mungekey --create --keyfile="$M/munge.key" >/dev/null
fi
: > "$DIR/pids/munged.pid"
chown munge:munge "$DIR/pids/munged.pid"

mem_mb=$(awk '/^MemTotal:/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
{
    cat <<EOF
# A test cluster on one machine, written by mltrain's scripts/slurm-start.sh; stop it with
# scripts/slurm-stop.sh $DIR
# nodes: $nodelist
ClusterName=mltrain
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCKET,cred_expire=$CRED_EXPIRE
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
# backfill every second: a requeued job starts as soon as cred_expire allows (default: 30 s)
SchedulerParameters=bf_interval=1
ReturnToService=2
StateSaveLocation=$DIR/ctld
# %n: the node's name (several slurmd may share this host); TmpFS holds PMIx's per-step files
SlurmdSpoolDir=$DIR/slurmd-%n
TmpFS=$DIR/tmp-%n
SlurmctldPidFile=$DIR/pids/slurmctld.pid
SlurmdPidFile=$DIR/pids/slurmd-%n.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd-%n.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
MinJobAge=$MIN_JOB_AGE
EOF
    i=0
    for n in "${names[@]}"; do
        i=$((i + 1))
        echo "NodeName=$n NodeHostname=$host NodeAddr=127.0.0.1 Port=$((PORT + i)) CPUs=$CPUS" \
             "RealMemory=$mem_mb State=UNKNOWN"
    done
    echo "PartitionName=debug Nodes=$nodelist Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO"
} > "$CONF.tmp"
mv "$CONF.tmp" "$CONF"
cat > "$DIR/env.sh" <<EOF
# . this file to use the cluster of $DIR
export SLURM_CONF=$CONF
EOF
export SLURM_CONF=$CONF

show_log() { echo "--- $1 (last lines)" >&2; tail -n 20 "$1" >&2 2>/dev/null || true; }

# wait_pid NAME PIDFILE: until the daemon has written its PID file (they fork into the background)
wait_pid() {
    local _
    for _ in $(seq 100); do
        alive "$1" "$2" && return 0
        sleep 0.1
    done
    return 1
}

runuser -u munge -- /usr/sbin/munged --socket="$SOCKET" --key-file="$M/munge.key" \
    --pid-file="$DIR/pids/munged.pid" --log-file="$M/munged.log" --seed-file="$M/munged.seed" ||
    { show_log "$M/munged.log"; die "munged failed to start"; }
wait_pid munged "$DIR/pids/munged.pid" || { show_log "$M/munged.log"; die "munged did not start"; }
munge --socket="$SOCKET" -n | unmunge --socket="$SOCKET" >/dev/null ||
    die "munge credentials do not round-trip through $SOCKET"

/usr/sbin/slurmctld -c -f "$CONF" || { show_log "$DIR/log/slurmctld.log"; die "slurmctld failed"; }
wait_pid slurmctld "$DIR/pids/slurmctld.pid" ||
    { show_log "$DIR/log/slurmctld.log"; die "slurmctld did not start"; }
for n in "${names[@]}"; do
    /usr/sbin/slurmd -f "$CONF" -N "$n" ||
        { show_log "$DIR/log/slurmd-$n.log"; die "slurmd of node $n failed"; }
    wait_pid slurmd "$DIR/pids/slurmd-$n.pid" ||
        { show_log "$DIR/log/slurmd-$n.log"; die "slurmd of node $n did not start"; }
done

# the nodes register within a second or so
want=$(for _ in "${names[@]}"; do echo idle; done)
states=
for _ in $(seq 150); do
    states=$(sinfo -h -N -o %T 2>/dev/null || true)
    [ "$states" = "$want" ] && break
    sleep 0.2
done
if [ "$states" != "$want" ]; then
    show_log "$DIR/log/slurmctld.log"
    for n in "${names[@]}"; do show_log "$DIR/log/slurmd-$n.log"; done
    die "nodes $nodelist are '$(echo "${states:-unknown}" | tr '\n' ' ')', not idle, after 30 s"
fi
echo "slurm-start: $nodelist idle with $CPUS CPUs each; export SLURM_CONF=$CONF"
