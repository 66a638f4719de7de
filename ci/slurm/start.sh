#!/usr/bin/env bash
# ci/slurm/start.sh - install Debian's Slurm packages and start a REAL
# single-node Slurm cluster on 127.0.0.1, for the Slurm tests (CI and `make slurm`).
#
#   bash ci/slurm/start.sh          # install if needed, start what is not running, wait
#   bash ci/slurm/start.sh --clean  # same, but first wipe job state, logs and accounting
#
# Debian 12, as root, without systemd: every daemon is started by hand and
# tracked by its pid file (never by name). Stack, in start order:
#   munged -> mariadbd -> slurmdbd -> slurmctld -> slurmd
#
# Idempotent: a daemon that is already running is left alone; the Slurm daemons
# are restarted only when this script's generated configuration changed.
# Exits 0 once the node is idle AND slurmctld has completed a main scheduling
# cycle (before that, the first job waits ~3 s instead of <1 s). On failure,
# exits non-zero and prints the tail of the daemon logs.
#
# The cluster (see the generated /etc/slurm/slurm.conf):
#   ClusterName=localcluster, partition "debug" (default), one node = `hostname -s`
#   at 127.0.0.1 advertising 8 CPUs (more than the machine has, so that
#   `--array=...%N` throttling is observable), MaxArraySize=1001,
#   accounting through slurmdbd + MariaDB (real `sacct`).
#
# Settings (environment):
#   CI_SLURM_CPUS=8            CPUs the node advertises
#   CI_SLURM_TIMEOUT=60        seconds to wait for each daemon and for the node
#   CI_SLURM_NO_INSTALL=1      never call apt-get (fail if packages are missing)
# ci/slurm/stop.sh stops the stack; ci/slurm/verify.sh checks it.
set -Eeuo pipefail

CLUSTER=localcluster
PARTITION=debug
CPUS=${CI_SLURM_CPUS:-8}
TIMEOUT=${CI_SLURM_TIMEOUT:-60}
CLEAN=0; [[ ${1:-} == --clean ]] && CLEAN=1

NODE=$(hostname -s)             # slurmd registers under this name (also SLURM_SUBMIT_HOST)
ETC=/etc/slurm                  # where Debian's client tools look for slurm.conf
STATE=/var/lib/slurm
LOGDIR=/var/log/slurm
MARK=/run/ci-slurm              # markers: which daemons this script started
DB_SOCK=/run/mysqld/mysqld.sock
DB_PASS=slurmdbpass             # MariaDB user 'slurm'@'localhost'; test cluster only
export DEBIAN_FRONTEND=noninteractive

# log, pid_alive, pid_of, stop_group
# shellcheck source=common.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/common.sh" || exit 1
dump_logs() {
    local f
    for f in /var/log/munge/munged.log /var/log/mysql/error.log "$LOGDIR/slurmdbd.log" \
             "$LOGDIR/slurmctld.log" "$LOGDIR/slurmd.log"; do
        if [[ -s $f ]]; then echo "----- tail -n 15 $f"; tail -n 15 "$f"; fi
    done
}
die() { trap - ERR; log "ERROR: $*" >&2; dump_logs >&2; exit 1; }
trap 'die "command failed (line $LINENO, exit $?): $BASH_COMMAND"' ERR

[[ $(id -u) -eq 0 ]] || { echo "ci/slurm/start.sh: must run as root" >&2; exit 1; }
[[ $CPUS =~ ^[1-9][0-9]*$ ]] || { echo "CI_SLURM_CPUS must be a positive integer" >&2; exit 2; }

# ------------------------------------------------------------------- helpers
# wait_for SECONDS CMD...: run CMD every 0.1 s until it succeeds
wait_for() {
    local limit=$(( $1 * 10 )) i=0; shift
    until "$@" >/dev/null 2>&1; do
        (( ++i > limit )) && return 1
        sleep 0.1
    done
}
# write_if_changed FILE MODE OWNER:GROUP < content: returns 0 if FILE changed
write_if_changed() {
    local tmp; tmp=$(mktemp)
    cat > "$tmp"
    if [[ -f $1 ]] && cmp -s "$tmp" "$1"; then rm -f "$tmp"; return 1; fi
    install -m "$2" -o "${3%:*}" -g "${3#*:}" "$tmp" "$1"; rm -f "$tmp"
}
# start_daemon NAME CMD...: run a daemon that forks by itself, stdio detached
start_daemon() {
    local name=$1; shift
    log "starting $name"
    "$@" </dev/null >/dev/null 2>&1 || die "$name failed to start"
    echo "$name" > "$MARK/$name"
}

# ------------------------------------------------------------------- 1. packages
PKGS=(munge slurmctld slurmd slurm-client slurmdbd mariadb-server)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if (( ${#missing[@]} )); then
    [[ ${CI_SLURM_NO_INSTALL:-0} == 1 ]] && die "missing packages: ${missing[*]}"
    log "installing: ${missing[*]}"
    # Keep the maintainer scripts from starting daemons via /etc/init.d: we
    # start everything below. Keep an existing policy-rc.d (Docker images ship one).
    own_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d; own_policy=1
    fi
    t0=$SECONDS
    apt_log=/var/log/ci-slurm-apt.log       # shown only if the install fails
    apt_ok=1
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } \
        > "$apt_log" 2>&1 || apt_ok=0
    (( own_policy )) && rm -f /usr/sbin/policy-rc.d
    if (( ! apt_ok )); then tail -n 30 "$apt_log" >&2; die "apt-get failed (log: $apt_log)"; fi
    log "install took $((SECONDS - t0)) s"
fi

# ------------------------------------------------------------------- 2. users, dirs, munge key
getent passwd slurm >/dev/null || die "user slurm missing (package slurm-client creates it)"
getent passwd munge >/dev/null || die "user munge missing (package munge creates it)"
install -d -m 0755 "$MARK"
install -d -o munge -g munge -m 0755 /run/munge
for d in /var/log/munge /var/lib/munge /etc/munge; do   # keep the packaged modes
    [[ -d $d ]] || install -d -o munge -g munge -m 0700 "$d"
done
install -d -o slurm -g slurm -m 0755 "$STATE" "$STATE/slurmctld" "$STATE/slurmd" "$LOGDIR"
if [[ ! -s /etc/munge/munge.key ]]; then
    log "creating munge key"
    mungekey --create --keyfile=/etc/munge/munge.key
fi
chown munge:munge /etc/munge/munge.key; chmod 0400 /etc/munge/munge.key

# ------------------------------------------------------------------- 3. configuration
# A no-op Epilog makes slurmd report a job's end with MESSAGE_EPILOG_COMPLETE,
# on which slurmctld schedules at once; without one, each finished job frees
# its CPU up to ~1 s late (100-task array of `true`: ~46 s instead of ~2.5 s).
write_if_changed "$ETC/epilog-noop.sh" 0755 root:root <<'EOF' || true
#!/bin/sh
# no-op epilog (written by ci/slurm/start.sh): its presence makes slurmctld schedule
# the next job as soon as one ends
exit 0
EOF

# RealMemory rounded down to whole GiB, so the file does not change between boots.
MEM_MB=$(( $(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1048576 * 1024 ))
(( MEM_MB > 0 )) || MEM_MB=1024
slurm_conf_changed=0
write_if_changed "$ETC/slurm.conf" 0644 root:root <<EOF && slurm_conf_changed=1 || true
# Written by ci/slurm/start.sh: single-node test cluster on 127.0.0.1.
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
StateSaveLocation=$STATE/slurmctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOGDIR/slurmctld.log
SlurmdLogFile=$LOGDIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true

# No cgroups: works in containers and VMs without a delegated cgroup tree.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none

# CPUs are the only consumable resource (no --mem bookkeeping).
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
# batch_sched_delay=0: submit-to-start latency <1 s instead of up to ~3 s.
SchedulerParameters=batch_sched_delay=0
Epilog=$ETC/epilog-noop.sh
MaxArraySize=1001

# Finished jobs stay in squeue -t all / scontrol show job for MinJobAge s.
MinJobAge=300
KillWait=5
InactiveLimit=0
ReturnToService=2
SlurmdTimeout=300
MessageTimeout=10

# Accounting through slurmdbd (real sacct); also one line per finished job in
# $LOGDIR/jobcomp.log (sacct -c).
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
JobCompType=jobcomp/filetxt
JobCompLoc=$LOGDIR/jobcomp.log

# config_overrides: the node may advertise more CPUs than the machine has.
SlurmdParameters=config_overrides
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS Boards=1 SocketsPerBoard=1 CoresPerSocket=$CPUS ThreadsPerCore=1 RealMemory=$MEM_MB State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF

dbd_conf_changed=0
write_if_changed "$ETC/slurmdbd.conf" 0600 slurm:slurm <<EOF && dbd_conf_changed=1 || true
# Written by ci/slurm/start.sh
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=slurm
DebugLevel=info
LogFile=$LOGDIR/slurmdbd.log
PidFile=/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF

# ------------------------------------------------------------------- 4. --clean
if (( CLEAN )); then
    log "--clean: stopping the Slurm daemons, wiping job state, logs and accounting"
    stop_group /run/slurmd.pid:slurmd /run/slurmctld.pid:slurmctld
    stop_group /run/slurmdbd.pid:slurmdbd
    rm -rf "${STATE:?}/slurmctld/"* "${STATE:?}/slurmd/"* "${LOGDIR:?}"/*.log
    rm -f "$MARK/sched-ready"
fi

# ------------------------------------------------------------------- 5. munged
if ! pid_alive /run/munge/munged.pid munged; then
    start_daemon munged runuser -u munge -- /usr/sbin/munged   # writes /run/munge/munged.pid
fi
wait_for "$TIMEOUT" bash -c 'munge -n | unmunge' || die "munge does not work"

# ------------------------------------------------------------------- 6. MariaDB + slurmdbd
if ! mariadb-admin --socket="$DB_SOCK" ping >/dev/null 2>&1; then
    log "starting mariadbd"
    install -d -o mysql -g root -m 0755 /run/mysqld
    install -d -o mysql -g adm -m 2750 /var/log/mysql
    # mariadbd does not daemonize: detach it with setsid; it writes its pid file.
    setsid /usr/sbin/mariadbd --user=mysql --pid-file=/run/mysqld/mysqld.pid \
        --socket="$DB_SOCK" --bind-address=127.0.0.1 \
        --log-error=/var/log/mysql/error.log </dev/null >/dev/null 2>&1 &
    echo mariadbd > "$MARK/mariadbd"
    wait_for "$TIMEOUT" mariadb-admin --socket="$DB_SOCK" ping || die "mariadbd did not come up"
fi
# Debian's root@localhost logs in through the unix socket, without a password.
mariadb --socket="$DB_SOCK" <<EOF
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
ALTER USER 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
EOF
if (( CLEAN )); then
    mariadb --socket="$DB_SOCK" -e 'DROP DATABASE IF EXISTS slurm_acct_db'
fi
(( dbd_conf_changed )) && stop_group /run/slurmdbd.pid:slurmdbd
if ! pid_alive /run/slurmdbd.pid slurmdbd; then
    start_daemon slurmdbd /usr/sbin/slurmdbd    # creates its tables on first start
fi
wait_for "$TIMEOUT" sacctmgr -n -P show cluster || die "slurmdbd does not answer"
# slurmctld registers its cluster itself; adding it first closes a window in
# which the first jobs are not yet known to the database.
if [[ -z $(sacctmgr -n -P show cluster "$CLUSTER" format=cluster) ]]; then
    sacctmgr -i add cluster "$CLUSTER" >/dev/null
fi

# ------------------------------------------------------------------- 7. slurmctld + slurmd
if (( slurm_conf_changed )); then
    # node, partition and plugin changes need a restart, not just `scontrol reconfigure`
    stop_group /run/slurmd.pid:slurmd /run/slurmctld.pid:slurmctld
fi
if ! pid_alive /run/slurmctld.pid slurmctld; then
    rm -f "$MARK/sched-ready"
    start_daemon slurmctld /usr/sbin/slurmctld  # drops to SlurmUser=slurm
fi
wait_for "$TIMEOUT" bash -c 'scontrol ping | grep -q "is UP"' || die "slurmctld is not UP"
if ! pid_alive /run/slurmd.pid slurmd; then
    start_daemon slurmd /usr/sbin/slurmd -N "$NODE"
fi

# ------------------------------------------------------------------- 8. wait: idle node, one scheduling cycle
deadline=$(( SECONDS + TIMEOUT ))
while :; do
    st=$(sinfo -h -n "$NODE" -o %T 2>/dev/null | head -n1) || st=
    case $st in
        idle) break ;;
        # left down or drained by an earlier crash or kill: put it back in service
        down*|drain*|fail*) scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true ;;
    esac
    if (( SECONDS > deadline )); then
        squeue 2>/dev/null | head -n 20 >&2 || true
        die "node $NODE not idle after ${TIMEOUT}s (state: '${st}'; jobs above)"
    fi
    sleep 0.2
done
# SchedulerParameters (batch_sched_delay=0) take effect with slurmctld's first
# main scheduling cycle, ~3 s after it starts. sdiag's counters also reset at
# midnight UTC, so a marker remembers which slurmctld (pid) has been seen ready.
ctld_pid=$(pid_of /run/slurmctld.pid)
main_cycles() {
    sdiag 2>/dev/null | awk '/^Main schedule statistics/ {m=1} m && /Total cycles:/ && !n {n=$3} END {print n+0}'
}
sched_ready() { (( $(main_cycles) >= 1 )); }
if [[ $(cat "$MARK/sched-ready" 2>/dev/null) != "$ctld_pid" ]]; then
    wait_for "$TIMEOUT" sched_ready || die "slurmctld ran no main scheduling cycle in ${TIMEOUT}s"
    echo "$ctld_pid" > "$MARK/sched-ready"
fi
log "Slurm is up: cluster=$CLUSTER partition=$PARTITION node=$NODE cpus=$CPUS ($SECONDS s)"
