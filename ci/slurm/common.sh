# shellcheck shell=bash
# ci/slurm/common.sh - helpers shared by ci/slurm/start.sh and ci/slurm/stop.sh.
# Sourced, not executed:
#   source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# Defines functions only; sets no options, variables or traps.

log() { printf '[ci/slurm %(%H:%M:%S)T] %s\n' -1 "$*"; }

# pid_alive PIDFILE COMM: the pid in PIDFILE runs a program named COMM
# (checking /proc/PID/comm guards against a recycled pid)
pid_alive() {
    local pid
    [[ -r $1 ]] || return 1
    pid=$(tr -dc 0-9 < "$1")
    [[ -n $pid && -r /proc/$pid/comm && $(< "/proc/$pid/comm") == "$2" ]]
}
# pid_of PIDFILE: the pid in PIDFILE (digits only)
pid_of() { tr -dc 0-9 < "$1"; }

# stop_group PIDFILE:COMM ...: SIGTERM all at once (by pid, only if pid_alive),
# wait up to 20 s, SIGKILL stragglers. Removes every PIDFILE given.
stop_group() {
    local spec f c pid pids=() alive
    for spec in "$@"; do
        f=${spec%%:*}; c=${spec#*:}
        if pid_alive "$f" "$c"; then
            pid=$(pid_of "$f"); pids+=("$pid")
            log "stopping $c (pid $pid)"; kill -TERM "$pid" 2>/dev/null || true
        fi
        # a stale /run/slurmctld.pid makes the package's prerm (apt-get remove) fail
        rm -f "$f"
    done
    (( ${#pids[@]} )) || return 0
    for _ in $(seq 200); do
        alive=0
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        (( alive )) || return 0
        sleep 0.1
    done
    for pid in "${pids[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            log "pid $pid ignored SIGTERM for 20 s: SIGKILL"; kill -KILL "$pid" 2>/dev/null || true
        fi
    done
}
