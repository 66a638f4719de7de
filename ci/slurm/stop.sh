#!/usr/bin/env bash
# ci/slurm/stop.sh - stop the single-node Slurm cluster started by ci/slurm/start.sh.
#
#   bash ci/slurm/stop.sh           # cancel jobs, stop the daemons (state is kept)
#   bash ci/slurm/stop.sh --purge   # also remove configs, job state, logs and the
#                                   # accounting database (packages stay installed)
#
# Every daemon is stopped through the pid in its own pid file (SIGTERM, SIGKILL
# after 20 s), after checking /proc/PID/comm; nothing is killed by name.
# MariaDB is stopped only if start.sh started it; one that was already running
# is left alone. Stopping a stopped cluster is a no-op (exit 0).
# SLURM_KEEP_JOBS=1 skips the scancel of remaining jobs.
set -Euo pipefail

# log, pid_alive, pid_of, stop_group
# shellcheck source=common.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/common.sh" || exit 1
[[ $(id -u) -eq 0 ]] || { echo "ci/slurm/stop.sh: must run as root" >&2; exit 1; }
PURGE=0; [[ ${1:-} == --purge ]] && PURGE=1
MARK=/run/ci-slurm
DB_SOCK=/run/mysqld/mysqld.sock
OUR_MARIADB=0; [[ -e $MARK/mariadbd ]] && OUR_MARIADB=1

# 1. cancel remaining jobs, so that no job processes outlive the daemons
if [[ ${SLURM_KEEP_JOBS:-0} != 1 ]] && pid_alive /run/slurmctld.pid slurmctld \
   && [[ -n $(squeue -h -o %i 2>/dev/null) ]]; then
    log "cancelling all jobs"
    # %A: the job id, or the array's job id for array tasks (cancels the whole array)
    squeue -h -o %A 2>/dev/null | sort -u | xargs -r scancel --quiet 2>/dev/null || true
    for _ in $(seq 150); do
        [[ -z $(squeue -h -o %i 2>/dev/null) ]] && break
        sleep 0.1
    done
fi

# 2. slurmd + slurmctld first (slurmctld flushes job records to slurmdbd as it
#    exits), then slurmdbd, then MariaDB (only if ours) and munged
stop_group /run/slurmd.pid:slurmd /run/slurmctld.pid:slurmctld
stop_group /run/slurmdbd.pid:slurmdbd
if (( PURGE && OUR_MARIADB )) && mariadb-admin --socket="$DB_SOCK" ping >/dev/null 2>&1; then
    log "dropping database slurm_acct_db and user slurm"
    mariadb --socket="$DB_SOCK" \
        -e "DROP DATABASE IF EXISTS slurm_acct_db; DROP USER IF EXISTS 'slurm'@'localhost';" || true
fi
if (( OUR_MARIADB )); then
    stop_group /run/mysqld/mysqld.pid:mariadbd /run/munge/munged.pid:munged
else
    stop_group /run/munge/munged.pid:munged
fi
rm -f "$MARK"/*

left=$(ps -C slurmstepd -o pid= 2>/dev/null | tr -s ' \n' ' ' || true)
[[ -n ${left// /} ]] && log "WARNING: slurmstepd processes still running: $left"

# 3. --purge: remove what start.sh wrote
if (( PURGE )); then
    log "purging configuration, job state and logs"
    rm -f /etc/slurm/slurm.conf /etc/slurm/slurmdbd.conf /etc/slurm/epilog-noop.sh
    rm -rf /var/lib/slurm/slurmctld/* /var/lib/slurm/slurmd/* /var/log/slurm/*
    rm -f /var/log/ci-slurm-apt.log
    rmdir "$MARK" 2>/dev/null || true
fi
log "stopped"
exit 0
