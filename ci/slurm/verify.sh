#!/usr/bin/env bash
# ci/slurm/verify.sh - functional checks and timings against the cluster that
# ci/slurm/start.sh started: a trivial job, a failing job, a 20-task array
# throttled with %2, sacct, scancel, the submitting environment in a job, and
# submit-to-start latency. Prints PASS/FAIL lines and a closing
# "N passed, N failed"; exits non-zero if any check failed. Takes ~15 s.
set -uo pipefail
W=$(mktemp -d /tmp/ci-slurm-verify.XXXXXX); cd "$W" || exit 1
pass=0; fail=0
check() {   # check DESCRIPTION TEST: TEST is a shell expression, evaluated
    if eval "$2"; then echo "PASS: $1"; pass=$((pass + 1)); else echo "FAIL: $1"; fail=$((fail + 1)); fi
}
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", b - a}'; }

# wait_final JOBID [SECONDS]: wait until squeue -t all shows only final states
# for JOBID (all tasks of an array); prints them, sorted and unique
wait_final() {
    local s="" i
    for (( i = 0; i < ${2:-60} * 20; i++ )); do
        s=$(squeue -h -t all -r -j "$1" -o %T 2>/dev/null | sort -u | tr '\n' ' ')
        case "$s" in ""|*PENDING*|*RUNNING*|*COMPLETING*|*CONFIGURING*|*SUSPENDED*) ;;
            *) echo "${s% }"; return 0 ;; esac
        sleep 0.05
    done
    echo "TIMEOUT(${s% })"; return 1
}
# sacct_states JOBIDS EXPECTED_LINES: poll sacct (records reach slurmdbd
# asynchronously; a new job is missing for up to ~1 s) until it lists
# EXPECTED_LINES allocations; prints JobID|State|ExitCode lines
sacct_states() {
    local out="" i
    for (( i = 0; i < 100; i++ )); do
        out=$(sacct -X -n -P -j "$1" -o JobID,State,ExitCode 2>/dev/null)
        if [[ $(grep -c . <<<"$out") -ge $2 ]] && ! grep -qE '\|(PENDING|RUNNING|COMPLETING)\|' <<<"$out"; then
            break
        fi
        sleep 0.1
    done
    echo "$out"
}

NODE=$(sinfo -h -o %N | head -n1)
CONF=$(scontrol show config)    # once: `scontrol ... | grep -q` fails under pipefail (SIGPIPE)
conf() { awk -F' *= *' -v k="$1" '$1 == k {print $2}' <<<"$CONF"; }
echo "cluster: $(conf ClusterName)  partition: $(sinfo -h -o %P | head -n1)  node: $NODE  workdir: $W"

# ---- 0. configuration
check "MaxArraySize = $(conf MaxArraySize)" '[[ $(conf MaxArraySize) == 1001 ]]'
check "node advertises 8 CPUs ($(sinfo -h -o %c))" '[[ $(sinfo -h -o %c) == 8 ]]'
check "accounting: $(conf AccountingStorageType)" '[[ $(conf AccountingStorageType) == accounting_storage/slurmdbd ]]'
check "node is idle ($(sinfo -h -o %T))" '[[ $(sinfo -h -o %T) == idle ]]'

cat > job.sh <<'EOF'
#!/bin/bash
id=${SLURM_ARRAY_TASK_ID:-$SLURM_JOB_ID}
date +%s.%N > "start.$id"
echo "task=${SLURM_ARRAY_TASK_ID:-none} job=$SLURM_JOB_ID submithost=${SLURM_SUBMIT_HOST:-unset} node=${SLURMD_NODENAME:-unset}"
sleep "${SLEEP:-0}"
date +%s.%N > "end.$id"
exit "${RC:-0}"
EOF
chmod +x job.sh

# ---- 1. a trivial job
t0=$(now)
J=$(sbatch --parsable -J v-ok -o "ok-%j.out" job.sh)
check "sbatch --parsable prints a bare job id ($J)" '[[ $J =~ ^[0-9]+$ ]]'
st=$(wait_final "$J"); t1=$(now)
check "trivial job COMPLETED in squeue -t all ($st, $(secs "$t0" "$t1") s after sbatch)" '[[ $st == COMPLETED ]]'
check "job output: $(cat "ok-$J.out" 2>/dev/null)" 'grep -q "submithost=$(hostname -s) node=$NODE" "ok-$J.out"'
check "scontrol show job: JobState=COMPLETED ExitCode=0:0" \
    '[[ $(scontrol show job "$J") == *JobState=COMPLETED*ExitCode=0:0* ]]'

# ---- 2. a failing job (values go through the submitting environment: the
#         default --export=ALL; --export=ALL,VAR=x costs 0.3-1.2 s per job)
F=$(RC=3 sbatch --parsable -J v-fail -o /dev/null job.sh)
st=$(wait_final "$F")
check "failing job FAILED ($st), ExitCode=3:0" '[[ $st == FAILED && $(scontrol show job "$F") == *ExitCode=3:0* ]]'

# ---- 3. the submitting environment inside a job
E=$(FOO=bar sbatch --parsable -J v-env -o "env-%j.out" --wrap 'echo "FOO=$FOO"; python3 -c "import sys; print(sys.executable)"')
wait_final "$E" >/dev/null
check "job sees the submitting environment ($(head -n1 "env-$E.out" 2>/dev/null))" '[[ $(head -n1 "env-$E.out") == FOO=bar ]]'
echo "  python3 in a job: $(sed -n 2p "env-$E.out" 2>/dev/null)"

# ---- 4. a 20-task array throttled with %2 (the node has 8 CPUs: only the
#         throttle keeps it at 2); concurrency from the tasks' own timestamps
t0=$(now)
A=$(SLEEP=0.5 sbatch --parsable -J v-arr -o "arr-%A_%a.out" --array=0-19%2 job.sh)
st=$(wait_final "$A" 120); t1=$(now)
check "array: all 20 tasks COMPLETED ($st) in $(secs "$t0" "$t1") s" \
    '[[ $st == COMPLETED && $(squeue -h -t all -r -j "$A" -o %T | grep -c COMPLETED) == 20 ]]'
check "array: SLURM_ARRAY_TASK_ID set in every task" \
    '(for t in $(seq 0 19); do grep -q "^task=$t " "arr-${A}_$t.out" || exit 1; done)'
maxrun=$(for t in $(seq 0 19); do
            [[ -s start.$t && -s end.$t ]] && { echo "$(< "start.$t") 1"; echo "$(< "end.$t") -1"; }
         done | sort -n -k1,1 -k2,2n | awk '{c += $2; if (c > m) m = c} END {print m + 0}')
check "array: throttle %2 held and reached (max tasks running at once: $maxrun)" '[[ $maxrun == 2 ]]'

# ---- 5. scancel of a running job
printf '#!/bin/bash\necho $$ > pid.$SLURM_JOB_ID\nexec sleep 300\n' > long.sh; chmod +x long.sh
L=$(sbatch --parsable -J v-long -o /dev/null long.sh)
for (( i = 0; i < 200; i++ )); do [[ -s pid.$L ]] && break; sleep 0.05; done
jobpid=$(cat "pid.$L" 2>/dev/null)
check "long job RUNNING, its script started (pid ${jobpid:-none})" \
    '[[ $(squeue -h -j "$L" -o %T) == RUNNING && -n $jobpid ]] && kill -0 "$jobpid"'
t0=$(now); scancel "$L"; st=$(wait_final "$L"); t1=$(now)
check "scancel: CANCELLED ($st) $(secs "$t0" "$t1") s after scancel" '[[ $st == CANCELLED ]]'
for (( i = 0; i < 200; i++ )); do kill -0 "$jobpid" 2>/dev/null || break; sleep 0.05; done
t2=$(now)
check "scancel: the job's process is gone $(secs "$t0" "$t2") s after scancel" '! kill -0 "$jobpid" 2>/dev/null'

# ---- 6. sacct (slurmdbd)
out=$(sacct_states "$J,$F,$L" 3)
sed 's/^/  sacct: /' <<<"$out"
check "sacct: trivial job COMPLETED 0:0" 'grep -q "^$J|COMPLETED|0:0$" <<<"$out"'
check "sacct: failing job FAILED 3:0" 'grep -q "^$F|FAILED|3:0$" <<<"$out"'
check "sacct: cancelled job CANCELLED" 'grep -q "^$L|CANCELLED" <<<"$out"'
out=$(sacct_states "$A" 20)
check "sacct: array lists 20 tasks ${A}_N COMPLETED" '[[ $(grep -cE "^${A}_[0-9]+\|COMPLETED\|" <<<"$out") == 20 ]]'

# ---- 7. submit-to-start latency of a trivial job
lat=()
for i in 1 2 3 4 5; do
    sleep "0.$((RANDOM % 10))"          # submit at a random phase of slurmctld's 1 s tick
    t0=$(now)
    K=$(sbatch --parsable -J v-lat -o /dev/null job.sh)
    wait_final "$K" >/dev/null
    lat+=("$(secs "$t0" "$(cat "start.$K" 2>/dev/null || echo "$t0")")")
done
echo "  sbatch -> job script start (s): ${lat[*]}"
med=$(printf '%s\n' "${lat[@]}" | sort -n | sed -n 3p)
check "median submit-to-start latency $med s < 2 s" 'awk -v m="$med" "BEGIN {exit !(m > 0 && m < 2)}"'

cd /; rm -rf "$W"
echo "$pass passed, $fail failed"
(( fail == 0 ))
