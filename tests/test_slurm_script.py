"""The slurm runner's pure functions: the batch script (against a golden file), array specs and
chunks, and reading sbatch, scontrol and sacct output. No Slurm commands run here.

``test_slurm_runner.py`` runs the runner against the fake Slurm of ``tests/fake_slurm``,
``test_slurm_cli.py`` runs ``profit run`` against it, and ``test_slurm_cluster.py`` runs
the same runner against a real cluster.
"""

import pytest
from helpers import GOLDEN

from profit.run.slurm import (
    JobEnd,
    JobRecord,
    SchedulerError,
    SlurmJob,
    array_chunks,
    array_spec,
    batch_script,
    parse_job_id,
    parse_max_array_size,
    parse_sacct,
)


def test_batch_script_matches_the_golden_file():
    script = batch_script(
        command="srun profit-worker",
        cpus=4,
        openmp=True,
        output="log/slurm-%j.out",
        options={"job-name": "profit", "time": "1:00:00", "partition": "short", "exclusive": False, "requeue": True},
    )
    assert script == (GOLDEN / "slurm.bash").read_text()


def test_whole_node_runs():
    script = batch_script(command="srun profit-worker", cpus="all", openmp=True, options={})
    assert "#SBATCH --exclusive" in script and "#SBATCH --nodes=1" in script
    assert "--cpus-per-task" not in script
    assert 'export OMP_NUM_THREADS="$SLURM_CPUS_ON_NODE"' in script


def test_user_output_option_wins():
    script = batch_script(command="x", options={"output": "out/%A_%a.txt"}, output="log/slurm-%j.out")
    assert "#SBATCH --output=out/%A_%a.txt" in script and "log/slurm" not in script


@pytest.mark.parametrize(
    "indices, parallel, spec",
    [
        ([0, 1, 2, 3], 0, "0-3"),
        ([0, 1, 2, 5, 7, 8], 2, "0-2,5,7-8%2"),
        ([4], 0, "4"),
        ([3, 1, 2], 0, "1-3"),
    ],
)
def test_array_spec(indices, parallel, spec):
    assert array_spec(indices, parallel) == spec


def test_array_chunks_stay_below_max_array_size():
    assert array_chunks(range(10), 4) == [(0, [0, 1, 2, 3]), (4, [0, 1, 2, 3]), (8, [0, 1])]
    # Gaps (runs that are done already) are skipped; indices are relative to the chunk's first run.
    assert array_chunks([2, 3, 9, 20, 21], 10) == [(2, [0, 1, 7]), (20, [0, 1])]
    assert array_chunks([], 10) == []


def test_parse_job_id():
    assert parse_job_id("1234\n") == "1234"
    assert parse_job_id("1234;cluster\n") == "1234"
    with pytest.raises(SchedulerError, match="instead of a job id"):
        parse_job_id("sbatch: error: something\n")


def test_parse_max_array_size():
    assert parse_max_array_size("MaxArraySize            = 5000\nMaxJobCount = 10000\n") == 5000
    assert parse_max_array_size("nothing here") == 1001


def test_parse_sacct_expands_pending_tasks_and_keeps_steps():
    records = parse_sacct(
        "12_0|COMPLETED|0:0\n12_0.batch|COMPLETED|0:0\n12_1|FAILED|3:0\n12_1.0|FAILED|0:9\n"
        "12_[2-3,6%2]|CANCELLED by 1000|0:0\n13|RUNNING|0:0\n14_[0-6:3]|PENDING|0:0\n"
    )
    assert [records.get(f"14_{i}") is not None for i in range(7)] == [True, False, False, True, False, False, True]
    assert records["12_0"].state == "COMPLETED" and records["12_1"].exit_code == 3
    assert records["12_1.0"].signal == 9
    assert [records[f"12_{i}"].state for i in (2, 3, 6)] == ["CANCELLED"] * 3
    assert records["12_2"].detail == "by 1000" and records["12_2"].final
    assert not records["13"].final


@pytest.mark.parametrize(
    "line, step, reason",
    [
        ("7|FAILED|3:0", None, "exited with code 3 (Slurm job 7: FAILED)"),
        ("7|FAILED|9:0", "7.0|CANCELLED|0:9", "killed by SIGKILL (Slurm job 7: FAILED)"),
        ("7|TIMEOUT|0:0", None, "reached its Slurm time limit (Slurm job 7: TIMEOUT)"),
        ("7|OUT_OF_MEMORY|0:125", None, "ran out of memory (Slurm job 7: OUT_OF_MEMORY)"),
        ("7|NODE_FAIL|0:0", None, "lost its node (node failure) (Slurm job 7: NODE_FAIL)"),
        ("7|CANCELLED by 0|0:0", None, "was cancelled by Slurm or a user (Slurm job 7: CANCELLED by 0)"),
        ("7|PREEMPTED|0:0", None, "was preempted (Slurm job 7: PREEMPTED)"),
    ],
)
def test_slurm_states_read_as_reasons(line, step, reason):
    records = parse_sacct(line + ("\n" + step if step else ""))
    end = JobEnd(records["7"], records.get("7.0"))
    assert end.describe() == reason
    assert not end.success


def test_completed_job_is_a_success_of_the_job():
    assert JobEnd(JobRecord("7", "COMPLETED", 0, 0, "")).success


def test_a_bare_array_line_is_never_taken_for_another_task():
    records = parse_sacct("12|FAILED|2:0\n12_1|RUNNING|0:0\n")  # the task carrying id 12 failed
    assert SlurmJob("12_0", "12").record(records) is None  # task 0 has no line of its own yet
    assert SlurmJob("12_1", "12").record(records).state == "RUNNING"
    cancelled = parse_sacct("12|CANCELLED by 0|0:0\n")  # after our scancel: the tasks never started
    assert SlurmJob("12_3", "12").record(cancelled, cancelled=True).state == "CANCELLED"
    assert SlurmJob("12_3", "12").record(cancelled) is None
