"""The slurm runner's logic without a cluster: pure functions, and fake Slurm commands.

``tests/fake_slurm`` fakes sbatch, sacct, scancel, scontrol and srun (see its
README); ``test_slurm_cluster.py`` runs the same runner against a real cluster.
"""

import sys

import pytest

from profit.run import Runner
from profit.run.errors import ConfigError
from profit.run.slurm import (
    JobEnd,
    JobRecord,
    SchedulerError,
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


@pytest.mark.parametrize(
    "options, fragment",
    [
        ({"cpus": -1}, "cpus must be a whole number >= 1, or 'all' or 0"),
        ({"submit_retries": -1}, "submit_retries must be a whole number >= 0"),
        ({"options": ["time=1"]}, "options must be a mapping of #SBATCH option to value"),
        ({"min_poll": 0}, "min_poll must be a number of seconds > 0"),
        ({"custom": True, "path": "missing.bash"}, "custom is set, but there is no batch script at"),
    ],
)
def test_bad_options(tmp_path, options, fragment):
    interface = {"class": "memmap", "size": 1, "input_config": {"u": {}}, "output_config": {"f": {}}}
    with pytest.raises(ConfigError, match=fragment):
        Runner["slurm"](interface=interface, worker="t_sum", work_dir=str(tmp_path), **options)


# --- the runner against fake Slurm commands ----------------------------------------------

import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402

import numpy as np  # noqa: E402
from helpers import FAKE_SLURM as FAKE  # noqa: E402
from helpers import (  # noqa: E402
    GOLDEN,
    PROFIT,
    SCALAR_INPUTS,
    STUDY,
    make_study,
    most_at_once,
    outputs,
    profit,
    runs_done,
    sum_rows,
    wait_for,
)

from profit.run import RunState  # noqa: E402


def test_runs_complete_through_fake_slurm(make_fake_runner):
    runner = make_fake_runner("t_sum")
    runner.spawn_array(sum_rows(5), wait=True)
    assert runner.failed == {}
    assert runner.output_data["f"].tolist() == [0.5, 1.5, 2.5, 3.5, 4.5]


def test_arrays_are_split_at_max_array_size(make_fake_runner, monkeypatch, caplog):
    monkeypatch.setenv("FAKE_SLURM_MAX_ARRAY_SIZE", "4")
    runner = make_fake_runner("t_sum")
    with caplog.at_level("INFO", logger="profit"):
        runner.spawn_array(sum_rows(10), wait=True)
    assert runner.max_array_size == 4
    arrays = [message.split(" are ")[0] for message in caplog.messages if "Slurm job array" in message]
    assert arrays == ["runs 0..3", "runs 4..7", "runs 8..9"]
    np.testing.assert_array_equal(runner.output_data["f"], sum_rows(10)["u"] + 0.5)


def test_parallel_holds_across_split_arrays(make_fake_runner, monkeypatch):
    monkeypatch.setenv("FAKE_SLURM_MAX_ARRAY_SIZE", "3")
    runner = make_fake_runner("t_span", output_config=outputs("start", "end"), parallel=2)
    rows = sum_rows(7)
    rows["u"] = 0.3
    runner.spawn_array(rows, wait=True)
    assert runner.failed == {}
    assert most_at_once(runner.output_data) <= 2


def test_transient_sbatch_failures_are_retried(make_fake_runner, monkeypatch, caplog):
    monkeypatch.setenv("FAKE_SLURM_SBATCH_FAIL", "transient:2")
    runner = make_fake_runner("t_sum")
    with caplog.at_level("WARNING", logger="profit"):
        status = runner.wait(runner.spawn({"u": 1.0, "v": 2.0}), timeout=30)
    assert status.state is RunState.DONE
    assert sum("Resource temporarily unavailable" in message for message in caplog.messages) == 2


def test_failing_sbatch_gives_one_clear_error(make_fake_runner, monkeypatch):
    monkeypatch.setenv("FAKE_SLURM_SBATCH_FAIL", "permanent")
    runner = make_fake_runner("t_sum")
    with pytest.raises(
        SchedulerError,
        match=r"submitting runs to Slurm failed: sbatch failed \(exited with code 1: "
        r"sbatch: error: Batch job submission failed: Invalid account .*\); "
        r"the batch script is .*slurm.bash",
    ):
        runner.spawn_array(sum_rows(3))
    assert runner.runs == {}
    assert [runner.interface.state(i) for i in range(3)] == [RunState.PENDING] * 3


@pytest.mark.parametrize(
    "state, reason",
    [
        ("TIMEOUT", "worker reached its Slurm time limit (Slurm job {job}: TIMEOUT)"),
        ("OUT_OF_MEMORY", "worker ran out of memory (Slurm job {job}: OUT_OF_MEMORY)"),
        ("NODE_FAIL", "worker lost its node (node failure) (Slurm job {job}: NODE_FAIL)"),
    ],
)
def test_slurm_ending_a_job_is_the_runs_reason(make_fake_runner, fake_slurm, state, reason):
    runner = make_fake_runner({"class": "t_sleep", "seconds": 60})
    run_id = runner.spawn({"u": 1.0, "v": 2.0})
    job = runner.runs[run_id].job_id
    (fake_slurm / "forced_states.json").write_text(json.dumps({job: state}))
    status = runner.wait(run_id, timeout=30)
    assert status.state is RunState.FAILED
    assert status.reason == reason.format(job=job)


def test_job_that_completes_without_results(make_fake_runner):
    runner = make_fake_runner("t_no_transmit")
    status = runner.wait(runner.spawn({"u": 1.0, "v": 2.0}), timeout=30)
    assert status.state is RunState.FAILED
    assert "(Slurm job" in status.reason and ": COMPLETED) without transmitting results" in status.reason


def test_scheduler_is_polled_with_backoff(make_fake_runner, fake_slurm):
    import time

    runner = make_fake_runner({"class": "t_sleep", "seconds": 3.0})
    started = time.monotonic()
    runner.wait(runner.spawn({"u": 1.0, "v": 2.0}), timeout=30)
    elapsed = time.monotonic() - started
    assert runner.status(0).state is RunState.DONE
    calls = len((fake_slurm / "sacct_calls").read_text().splitlines())
    # Backing off by 1.5x from min_poll 0.1 s reaches max_poll 1 s after 6 calls
    # (2 s); then one call a second. Polling every 0.1 s (or every loop of the
    # runner) would make about elapsed / 0.1 calls, 30 or more.
    assert 2 <= calls <= 6 + elapsed / 1.0 + 1, (calls, elapsed)
    assert calls < elapsed / 0.1 / 2


def test_results_arrive_even_when_sacct_fails(make_fake_runner, monkeypatch, caplog):
    monkeypatch.setenv("FAKE_SLURM_SACCT_FAIL", "1")
    runner = make_fake_runner("t_sum")
    with caplog.at_level("WARNING", logger="profit"):
        runner.spawn_array(sum_rows(3), wait=True)
    assert runner.output_data["f"].tolist() == [0.5, 1.5, 2.5]
    assert any("could not ask Slurm about" in message for message in caplog.messages)


def test_timeout_cancels_the_job(make_fake_runner, fake_slurm):
    runner = make_fake_runner({"class": "t_sleep", "seconds": 60}, timeout=0.5)
    run_id = runner.spawn({"u": 1.0, "v": 2.0})
    job = runner.runs[run_id].job_id
    assert runner.wait(run_id, timeout=30).reason == "timed out after 0.5 s"
    sacct = subprocess.run(
        [str(FAKE / "sacct"), "-X", "-n", "-P", "-o", "JobID,State", "-j", job], capture_output=True, text=True
    ).stdout
    wait_for(
        lambda: (
            "CANCELLED"
            in subprocess.run(
                [str(FAKE / "sacct"), "-X", "-n", "-P", "-o", "JobID,State", "-j", job], capture_output=True, text=True
            ).stdout
        ),
        what=f"job {job} to be cancelled ({sacct.strip()})",
    )


def test_custom_batch_script_is_used_as_it_is(make_fake_runner, tmp_path):
    study = tmp_path / "study"
    study.mkdir()
    script = study / "mine.sh"
    script.write_text('#!/bin/bash\n#SBATCH --job-name=mine\ntouch "custom-$PROFIT_RUN_ID"\nexec profit-worker\n')
    runner = make_fake_runner("t_sum", custom=True, path="mine.sh")
    assert runner.wait(runner.spawn({"u": 1.0, "v": 2.0}), timeout=30).state is RunState.DONE
    assert (study / "custom-0").exists()
    assert script.read_text().startswith("#!/bin/bash\n#SBATCH --job-name=mine")


def test_zeromq_workers_through_fake_slurm(make_fake_runner):
    runner = make_fake_runner("t_sum", interface="zeromq")
    runner.spawn_array(sum_rows(4), wait=True)
    assert runner.output_data["f"].tolist() == [0.5, 1.5, 2.5, 3.5]


@pytest.mark.parametrize(
    "failure, message",
    [
        (
            "permanent",
            "submitting runs to Slurm failed: sbatch failed (exited with code 1: sbatch: error: Batch job "
            "submission failed: Invalid account or account/partition combination specified); the batch script is",
        ),
        ("missing", "sbatch was not found; the slurm runner needs Slurm's commands on PATH"),
    ],
)
def test_profit_run_reports_a_failing_sbatch_in_one_sentence(tmp_path, fake_slurm, monkeypatch, failure, message):

    if failure == "missing":
        monkeypatch.setenv("PATH", os.path.dirname(sys.executable))  # python, but no Slurm commands
    else:
        monkeypatch.setenv("FAKE_SLURM_SBATCH_FAIL", failure)
    study = make_study(tmp_path / "study", STUDY.format(ntrain=3, runner="slurm"))
    done = profit("run", str(study))
    assert done.returncode == 2
    assert done.stderr.startswith("profit: ") and message in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    status = profit("status", str(study))  # the study's state is intact: fix the cause, run again
    assert status.returncode == 0 and "0 done, 0 failed" in status.stdout, status.stdout + status.stderr


def test_ctrl_c_cancels_the_jobs_and_keeps_results(tmp_path, fake_slurm, monkeypatch):
    """Ctrl-C while arrays wait for their turn (MaxArraySize 4, parallel 2): no further array is
    submitted, the jobs in flight are cancelled, the results that arrived are kept."""
    import signal

    monkeypatch.setenv("FAKE_SLURM_MAX_ARRAY_SIZE", "4")
    runner = "{class: slurm, parallel: 2, min_poll: 0.1}"
    study = make_study(tmp_path / "study", STUDY.format(ntrain=12, runner=runner), sleep=0.5)
    process = subprocess.Popen([PROFIT, "run", str(study)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: runs_done(study) >= 2, timeout=60, what="two runs to finish")
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, out + err
    queued = subprocess.run([str(FAKE / "squeue"), "-h", "-o", "%i %T"], capture_output=True, text=True).stdout
    assert queued.strip() == "", f"jobs still queued or running after Ctrl-C: {queued}"
    arrays = (study / "runner.log").read_text().count("are Slurm job array")
    assert 1 <= arrays < 3  # of the 3 arrays of 4 runs, the last was never submitted
    saved = np.genfromtxt(study / "output.txt", names=True)
    assert 2 <= np.count_nonzero(~np.isnan(saved["f"])) < 12
    again = profit("run", str(study))
    assert again.returncode == 0 and "12 runs: 12 done" in again.stdout, again.stdout + again.stderr


def test_failed_array_tasks_are_retried_as_single_jobs(tmp_path, fake_slurm):
    inputs = {"u": {"dtype": "f8"}, "v": {"dtype": "f8"}, "fault": {"dtype": "i8"}}
    runner = Runner["slurm"](
        interface={"class": "memmap", "size": 4, "input_config": inputs, "output_config": outputs("f")},
        worker="t_faulty",
        work_dir=str(tmp_path / "study"),
        min_poll=0.1,
        max_poll=1.0,
        retries=1,
    )
    try:
        rows = np.array(
            [(1.0, 1.0, 0), (2.0, 1.0, 1), (3.0, 1.0, 2), (4.0, 1.0, 3)],
            dtype=[("u", "f8"), ("v", "f8"), ("fault", "i8")],
        )
        runner.spawn_array(rows, wait=True)
        states = [runner.status(i).state for i in range(4)]
        assert states == [RunState.DONE, RunState.DONE, RunState.DONE, RunState.FAILED]
        assert runner.interface.output["f"][:3].tolist() == [2.0, 3.0, 4.0]
        assert runner.status(3).reason.startswith("RuntimeError: injected failure at u=4.0")
        assert runner.status(3).reason.endswith("(attempt 2 of 2)")
    finally:
        runner.close()


def test_a_bare_array_line_is_never_taken_for_another_task():
    from profit.run.slurm import SlurmJob

    records = parse_sacct("12|FAILED|2:0\n12_1|RUNNING|0:0\n")  # the task carrying id 12 failed
    assert SlurmJob("12_0", "12").record(records) is None  # task 0 has no line of its own yet
    assert SlurmJob("12_1", "12").record(records).state == "RUNNING"
    cancelled = parse_sacct("12|CANCELLED by 0|0:0\n")  # after our scancel: the tasks never started
    assert SlurmJob("12_3", "12").record(cancelled, cancelled=True).state == "CANCELLED"
    assert SlurmJob("12_3", "12").record(cancelled) is None


@pytest.mark.parametrize("idempotent, calls", [(False, 1), (True, 3)])
def test_a_command_that_timed_out_is_retried_only_if_that_is_safe(tmp_path, idempotent, calls):
    import logging

    from profit.run.slurm import SlurmCommands

    counter = tmp_path / "calls"
    command = tmp_path / "sbatch"
    command.write_text(
        f"#!/bin/sh\necho x >> {counter}\necho 'sbatch: error: Socket timed out on send/recv operation' >&2\nexit 1\n"
    )
    command.chmod(0o755)
    commands = SlurmCommands(logging.getLogger("test"), retries=2, retry_sleep=0.01)
    with pytest.raises(SchedulerError, match="Socket timed out") as raised:
        commands.run([str(command)], idempotent=idempotent)
    assert len(counter.read_text().splitlines()) == calls
    assert ("it may have submitted the jobs all the same: check squeue" in str(raised.value)) == (not idempotent)


def test_a_relative_work_directory(make_fake_runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = Runner["slurm"](
        interface={"class": "memmap", "size": 2, "input_config": SCALAR_INPUTS, "output_config": outputs("f")},
        worker="t_sum",
        work_dir="relative-study",
        min_poll=0.1,
    )
    try:
        runner.spawn_array(sum_rows(2), wait=True)
        assert runner.output_data["f"].tolist() == [0.5, 1.5]
        assert runner.path == str(tmp_path / "relative-study" / "slurm.bash")
    finally:
        runner.close()


def test_restart_cancels_the_jobs_of_a_killed_runner(tmp_path, fake_slurm):
    import signal

    study = make_study(tmp_path / "study", STUDY.format(ntrain=6, runner="{class: slurm, min_poll: 0.1}"), sleep=30)
    process = subprocess.Popen([PROFIT, "run", str(study)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    meta = study / "profit-study.json"
    wait_for(
        lambda: meta.exists() and json.loads(meta.read_text()).get("batch_jobs"),
        timeout=30,
        what="the runner to note its jobs",
    )
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    jobs = json.loads(meta.read_text())["batch_jobs"]
    make_study(tmp_path / "study", STUDY.format(ntrain=6, runner="{class: slurm, min_poll: 0.1}"), sleep=0)
    again = profit("run", "--restart", str(study))
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"cancelling 1 batch jobs left by the previous runner ({jobs[0]})" in again.stdout
    queued = subprocess.run([str(FAKE / "squeue"), "-h", "-o", "%i %T"], capture_output=True, text=True).stdout
    assert queued.strip() == ""


def test_results_are_written_while_arrays_wait_for_their_turn(tmp_path, fake_slurm, monkeypatch):
    """parallel 1 and MaxArraySize 2: six arrays one after the other; output.txt fills as they go."""

    monkeypatch.setenv("FAKE_SLURM_MAX_ARRAY_SIZE", "2")
    study = make_study(
        tmp_path / "study", STUDY.format(ntrain=12, runner="{class: slurm, parallel: 1, min_poll: 0.1}"), sleep=0.3
    )
    process = subprocess.Popen([PROFIT, "run", str(study)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:

        def some_results_written():
            path, log = study / "output.txt", study / "runner.log"
            if not path.exists() or not log.exists():
                return False
            submitted = log.read_text().count("are Slurm job array")
            written = np.genfromtxt(path, names=True)
            # Results on disk while the later arrays still wait to be submitted.
            return np.count_nonzero(~np.isnan(written["f"])) > 0 and submitted < 6

        wait_for(some_results_written, timeout=60, what="output.txt to show results before the study ends")
    finally:
        out, err = process.communicate(timeout=120)
    assert process.returncode == 0 and "12 runs: 12 done" in out, out + err
