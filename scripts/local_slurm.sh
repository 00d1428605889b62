#!/usr/bin/env bash
# A single-node Slurm on this machine: for the cluster tests (tests/cluster/) and for trying
# `ppo-bench -m ... hydra/launcher=submitit_slurm` before a real cluster (docs/cluster.md).
#
#   scripts/local_slurm.sh start [--accounting]   install (root on Debian/Ubuntu: slurm-wlm, munge) and start
#                                                 munged, slurmctld and slurmd; returns once `srun -N1 hostname`
#                                                 answers. Idempotent: what already runs is left as it is.
#                                                 --accounting adds slurmdbd on a local MariaDB (sacct works)
#   scripts/local_slurm.sh stop                   cancel the jobs, stop every daemon `start` started (by pid)
#   scripts/local_slurm.sh status                 daemons, sinfo, squeue; exit 0 if Slurm answers, 3 if not
#
# One node (this machine: its CPUs, 90% of its memory), one default partition `local`, no cgroups
# (ProctrackType=proctrack/linuxproc, TaskPlugin=task/none), cores and memory as consumable resources
# (select/cons_tres, CR_Core_Memory). A requeued job may start again once its job credential has expired:
# AuthInfo=cred_expire=10 (Slurm's default: 120 s), and the scheduler looks at pending jobs every 2 s
# (sched_interval, bf_interval; defaults 60 and 30 s), so a requeued job runs again ~12 s later, not ~2 min.
# Daemons run as root (SlurmUser=root), munged as the munge user.
# State, logs and pid files: $LOCAL_SLURM_DIR (default /var/tmp/ppo-bench-slurm); the job ids go on from the
# saved state, so a sweep folder's old .submitit/<job id> folders are never reused. The configuration goes to
# /etc/slurm/slurm.conf, where every Slurm command looks; a slurm.conf this script did not write is never
# touched, and if a Slurm already answers here, `start` uses it and starts nothing.
set -euo pipefail

STATE=${LOCAL_SLURM_DIR:-/var/tmp/ppo-bench-slurm}
CONF=${SLURM_CONF:-/etc/slurm/slurm.conf}
DBD_CONF=$(dirname "$CONF")/slurmdbd.conf
MARK="# written by ppo-bench scripts/local_slurm.sh"
PIDS=$STATE/started.pids     # "name pid" of every daemon this script started
DAEMONS="slurmd slurmctld slurmdbd mariadbd munged"  # in the order `stop` stops them
export SLURM_CONF=$CONF

say() { echo "local_slurm: $*" >&2; }
die() { say "$*"; exit 1; }

pid_of() { [[ -f "$PIDS" ]] && awk -v n="$1" '$1 == n {p = $2} END {print p}' "$PIDS" || true; }
# alive NAME PID: PID runs and is that daemon (a pid file outlives a reboot, and its pid may be another process's now)
alive() { [[ -n "${2:-}" ]] && kill -0 "$2" 2>/dev/null && [[ "$(cat "/proc/$2/comm" 2>/dev/null)" == "$1" ]]; }
running() { alive "$1" "$(pid_of "$1")"; }
record() { mkdir -p "$STATE"; grep -v "^$1 " "$PIDS" 2>/dev/null > "$PIDS.tmp" || true; echo "$1 $2" >> "$PIDS.tmp"; mv "$PIDS.tmp" "$PIDS"; }
read_pidfile() { local p; for _ in $(seq 50); do p=$(cat "$1" 2>/dev/null || true); [[ -n "$p" ]] && { echo "$p"; return; }; sleep 0.1; done; }

answers() { timeout 10 sinfo -h -o %T >/dev/null 2>&1; }
node_up() { sinfo -h -n "$1" -o %T | grep -Eqx 'idle|mixed|allocated|completing'; }  # not down, drained or not responding (*)

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
    local until=$((SECONDS + $1)) what=$2; shift 2
    until "$@" >/dev/null 2>&1; do
        (( SECONDS < until )) || return 1
        sleep 0.5
    done
    say "$what"
}

install_packages() {
    local missing=()
    for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    [[ $(id -u) -eq 0 ]] || die "${missing[*]} missing and not root: install them (apt-get install -y ${missing[*]}) or run as root"
    command -v apt-get >/dev/null || die "${missing[*]} missing and no apt-get (Debian/Ubuntu only): install Slurm and munge yourself"
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends "${missing[@]}" >"$STATE/apt.log" 2>&1 ||
        { apt-get update -q >>"$STATE/apt.log" 2>&1 && apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$STATE/apt.log" 2>&1; } ||
        die "apt-get install ${missing[*]} failed: see $STATE/apt.log"
}

write_conf() {
    local accounting=$1 node cpus mem
    if [[ -f "$CONF" ]] && ! grep -qF "$MARK" "$CONF"; then
        die "$CONF exists and was not written by this script; not touching it (stop that Slurm, or use it)"
    fi
    node=$(slurmd -C | head -1)                       # NodeName=<host> CPUs=... Boards=... RealMemory=<MB>
    mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$node")
    cpus=$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$node")
    mem=$((mem * 9 / 10))                             # a bit less than the machine has, or slurmd drains the node
    node=$(sed "s/RealMemory=[0-9]*/RealMemory=$mem/" <<<"$node")
    local storage="AccountingStorageType=accounting_storage/none"
    [[ $accounting == 1 ]] && storage="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
JobAcctGatherType=jobacct_gather/linux"
    mkdir -p "$(dirname "$CONF")" "$STATE/slurmctld" "$STATE/slurmd"
    cat >"$CONF.tmp" <<EOF
$MARK ($(date -u +%FT%TZ)); rewritten by each start
ClusterName=local
SlurmctldHost=$(hostname -s)(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=cred_expire=10
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$((mem / cpus))
$storage
JobCompType=jobcomp/none
StateSaveLocation=$STATE/slurmctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=local Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    mv "$CONF.tmp" "$CONF"
}

start_munge() {
    if timeout 5 bash -c 'munge -n | unmunge' >/dev/null 2>&1; then
        return 0   # a munged answers already (ours or the system's)
    fi
    [[ -s /etc/munge/munge.key ]] || runuser -u munge -- mungekey --create >/dev/null
    mkdir -p /run/munge && chown munge:munge /run/munge && chmod 755 /run/munge
    rm -f /run/munge/munged.pid
    runuser -u munge -- /usr/sbin/munged
    record munged "$(read_pidfile /run/munge/munged.pid)"
    wait_for 20 "munged answers (pid $(pid_of munged))" bash -c 'munge -n | unmunge' || die "munged did not start"
}

start_accounting() {
    install_packages mariadb-server slurmdbd
    if ! mariadb-admin ping >/dev/null 2>&1; then
        mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
        [[ -d /var/lib/mysql/mysql ]] || mariadb-install-db --user=mysql >/dev/null
        rm -f /run/mysqld/mysqld.pid
        runuser -u mysql -- /usr/sbin/mariadbd --bind-address=127.0.0.1 \
            --pid-file=/run/mysqld/mysqld.pid >"$STATE/mariadb.log" 2>&1 &
        wait_for 60 "mariadbd answers" mariadb-admin ping || die "mariadbd did not start: see $STATE/mariadb.log"
        record mariadbd "$(read_pidfile /run/mysqld/mysqld.pid)"
    fi
    mariadb -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
                CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm';
                GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"
    if ! running slurmdbd; then
        cat >"$DBD_CONF" <<EOF
$MARK
AuthType=auth/munge
DbdHost=$(hostname -s)
DbdAddr=127.0.0.1
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
PidFile=$STATE/slurmdbd.pid
LogFile=$STATE/slurmdbd.log
EOF
        chmod 600 "$DBD_CONF"
        rm -f "$STATE/slurmdbd.pid"
        /usr/sbin/slurmdbd
        record slurmdbd "$(read_pidfile "$STATE/slurmdbd.pid")"
        wait_for 60 "slurmdbd answers (pid $(pid_of slurmdbd))" sacctmgr -n list cluster ||
            die "slurmdbd did not answer: see $STATE/slurmdbd.log"
    fi
    sacctmgr -i -Q add cluster local >/dev/null 2>&1 || true
}

start() {
    local accounting=0
    [[ "${1:-}" == --accounting ]] && accounting=1
    mkdir -p "$STATE"
    if answers && ! running slurmctld; then
        say "a Slurm answers here already (not started by this script): using it"; sinfo; return 0
    fi
    install_packages slurm-wlm munge
    [[ $(id -u) -eq 0 ]] || die "starting slurmctld/slurmd needs root"
    if ! running slurmctld; then
        write_conf "$accounting"
    elif [[ $accounting == 1 ]] && ! grep -q slurmdbd "$CONF"; then
        die "running without accounting; stop it first to restart with --accounting"
    fi
    start_munge
    [[ $accounting == 1 ]] && start_accounting
    if ! running slurmctld; then
        rm -f "$STATE/slurmctld.pid"
        /usr/sbin/slurmctld
        record slurmctld "$(read_pidfile "$STATE/slurmctld.pid")"
        wait_for 30 "slurmctld answers (pid $(pid_of slurmctld))" sinfo || die "slurmctld did not answer: see $STATE/slurmctld.log"
    fi
    if ! running slurmd; then
        rm -f "$STATE/slurmd.pid"
        /usr/sbin/slurmd
        record slurmd "$(read_pidfile "$STATE/slurmd.pid")"
    fi
    local node; node=$(hostname -s)
    if ! wait_for 30 "node $node up (slurmd pid $(pid_of slurmd))" node_up "$node"; then
        # a node left down/drained by an earlier run: bring it back
        scontrol update NodeName="$node" State=RESUME >/dev/null 2>&1 || true
        wait_for 20 "node $node resumed" node_up "$node" || die "node $node is $(sinfo -h -n "$node" -o %T): see $STATE/slurmd.log"
    fi
    timeout 60 srun -N1 -t 1 hostname >/dev/null || die "srun -N1 hostname did not answer: see $STATE/slurmctld.log, $STATE/slurmd.log"
    say "up: srun -N1 hostname answers; $(sinfo -h -o '%P %D node(s) %c CPUs %m MB %T' | head -1)"
}

stop() {
    if running slurmctld; then
        # the jobs first, so that no slurmstepd outlives the daemons
        local jobs; jobs=$(squeue -h -o %A 2>/dev/null | sort -u | tr '\n' ' ')
        if [[ -n "${jobs// }" ]]; then
            say "cancelling job(s) $jobs"
            scancel $jobs 2>/dev/null || true
            wait_for 60 "jobs gone" bash -c '[[ -z "$(squeue -h -o %A)" ]]' || say "some jobs still there: $(squeue -h)"
        fi
    fi
    local name pid
    for name in $DAEMONS; do
        pid=$(pid_of "$name")
        if alive "$name" "$pid"; then
            kill -TERM "$pid"
            for _ in $(seq 100); do alive "$name" "$pid" || break; sleep 0.1; done
            alive "$name" "$pid" && { say "$name (pid $pid) ignored SIGTERM: SIGKILL"; kill -KILL "$pid"; }
            say "stopped $name (pid $pid)"
        elif [[ -n "$pid" ]]; then
            say "$name (pid $pid) was not running"
        fi
    done
    rm -f "$PIDS"
}

status() {
    local name pid rc=0
    for name in $DAEMONS; do
        pid=$(pid_of "$name")
        [[ -n "$pid" ]] && echo "$name: pid $pid $(alive "$name" "$pid" && echo running || echo 'NOT running')"
    done
    if answers; then
        sinfo; squeue
    else
        echo "no Slurm answers here (sinfo)"; rc=3
    fi
    return $rc
}

case "${1:-}" in
    start) shift; start "$@" ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start [--accounting] | stop | status" >&2; exit 2 ;;
esac
