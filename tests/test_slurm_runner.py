"""The slurm runner without a cluster: its options, its Slurm commands, and whole runs
against the fake Slurm commands of ``tests/fake_slurm`` (see its README).

The fixtures ``fake_slurm`` and ``make_fake_runner`` (conftest.py) give every test
a state directory of its own.
"""

import json
import logging
import re
import subprocess
import time

import numpy as np
import pytest
from helpers import FAKE_SLURM, SCALAR_INPUTS, most_at_once, outputs, sum_rows, wait_for

from profit.run import Runner, RunState
from profit.run.errors import ConfigError
from profit.run.slurm import JobRecord, SchedulerError, SlurmCommands


@pytest.mark.parametrize(
    "options, fragment",
    [
        ({"cpus": -1}, "cpus must be a whole number >= 0 (0 or 'all': whole nodes)"),
        ({"submit_retries": -1}, "submit_retries must be a whole number >= 0"),
        ({"options": ["time=1"]}, "options must be a mapping of #SBATCH option to value"),
        ({"min_poll": 0}, "min_poll must be a number of seconds > 0"),
        ({"custom": True, "path": "missing.bash"}, "custom is set, but there is no batch script at"),
    ],
)
def test_bad_options(tmp_path, options, fragment):
    interface = {"class": "memmap", "size": 1, "input_config": {"u": {}}, "output_config": {"f": {}}}
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        Runner["slurm"](interface=interface, worker="t_sum", work_dir=str(tmp_path), **options)


@pytest.mark.parametrize("idempotent, calls", [(False, 1), (True, 3)])
def test_a_command_that_timed_out_is_retried_only_if_that_is_safe(tmp_path, idempotent, calls):
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

    def sacct():
        command = [str(FAKE_SLURM / "sacct"), "-X", "-n", "-P", "-o", "JobID,State", "-j", job]
        return subprocess.run(command, capture_output=True, text=True).stdout

    before = sacct()
    wait_for(lambda: "CANCELLED" in sacct(), what=f"job {job} to be cancelled ({before.strip()})")


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


# --- packing: the runner's side, with sbatch and sinfo stood in for -----------------------------


def _packing_runner(tmp_path, **options):
    return Runner["slurm"](
        interface={"class": "memmap", "size": 6, "input_config": SCALAR_INPUTS, "output_config": outputs("f")},
        worker="t_sum",
        work_dir=str(tmp_path / "study"),
        **options,
    )


def test_auto_packs_no_runs_when_sinfo_cannot_tell_the_cluster_size(tmp_path, monkeypatch):
    runner = _packing_runner(tmp_path, runs_per_job="auto")
    try:

        def refuse(argv, **kwargs):
            raise SchedulerError("sinfo failed (exited with code 1: slurm_load_partitions: Unable to contact)")

        monkeypatch.setattr(runner._slurm, "run", refuse)
        assert runner._pack_size(200) == 1  # one run a task, as the warning says: not all 200 in one task
    finally:
        monkeypatch.undo()
        runner.close()


def test_packed_arrays_submitted_before_a_failing_sbatch_are_tracked(tmp_path, monkeypatch):
    runner = _packing_runner(tmp_path, runs_per_job=2)
    runner._max_array_size = 2  # (two tasks an array: 6 runs are 2 arrays of 2 tasks of 2 runs)
    submitted = []

    def sbatch(base_run_id, array=None, extra=None):
        if submitted:
            raise SchedulerError("submitting runs to Slurm failed: sbatch failed (Invalid account)")
        submitted.append(base_run_id)
        return "424242"

    monkeypatch.setattr(runner, "_sbatch", sbatch)
    monkeypatch.setattr(runner, "_scancel", lambda job_ids: True)
    ended = {"424242": JobRecord("424242", "CANCELLED", 0, 0, "")}  # (as sacct tells after the scancel)
    monkeypatch.setattr(runner, "_sacct", lambda job_ids: ended)
    try:
        with pytest.raises(SchedulerError, match="Invalid account"):
            runner.spawn_array(sum_rows(6))
        assert sorted(runner.runs) == [0, 1, 2, 3]  # the first array's runs run on Slurm: they are watched
        assert [runner.interface.state(run_id) for run_id in (4, 5)] == [RunState.PENDING] * 2
    finally:
        runner.close()


# A job that takes half a second to end after SIGTERM, and notes when it has.
_SLOW_TO_END = """#!/bin/bash
trap 'sleep 0.5; echo ended > {ended}; exit 1' TERM
echo started > {started}
while true; do sleep 0.05; done
"""


def _slow_to_end_job(tmp_path):
    started, ended = tmp_path / "started", tmp_path / "ended"
    script = tmp_path / "job.sh"
    script.write_text(_SLOW_TO_END.format(started=started, ended=ended))
    out = subprocess.run(
        [str(FAKE_SLURM / "sbatch"), "--parsable", str(script)], capture_output=True, text=True, cwd=tmp_path
    )
    job = out.stdout.strip()
    assert job, out.stderr
    wait_for(started.exists, timeout=30, what="the job to start")
    return job, ended


def test_leftover_jobs_are_ended_before_the_table_is_read(tmp_path, fake_slurm):
    """end_jobs returns only once the cancelled job's processes are gone: a worker among them
    may still write its row (Slurm's SIGTERM first reaches its simulation, which then fails)."""
    job, ended = _slow_to_end_job(tmp_path)
    Runner["slurm"].end_jobs([job])
    assert ended.exists(), "end_jobs returned while the cancelled job was still ending"
    queued = subprocess.run([str(FAKE_SLURM / "squeue"), "-h", "-o", "%i"], capture_output=True, text=True)
    assert queued.stdout.strip() == ""


def test_a_cancel_whose_scancel_failed_waits_for_no_verdict(make_fake_runner, fake_slurm, monkeypatch):
    """The job goes on (scancel said why): the cancel neither waits for sacct's verdict nor for
    squeue to let go of it; the job is noted for the study's next runner."""
    runner = make_fake_runner({"class": "t_sleep", "seconds": 60})
    run_id = runner.spawn({"u": 1.0, "v": 2.0})
    job = runner.runs[run_id]
    monkeypatch.setattr(runner, "_scancel", lambda job_ids: False)
    for name in ("sacct_calls", "squeue_calls"):
        (fake_slurm / name).unlink(missing_ok=True)
    status = runner.cancel(run_id)
    assert status.state is RunState.CANCELLED
    assert runner.uncancelled == {job.array_job}
    assert not (fake_slurm / "squeue_calls").exists()
    assert not (fake_slurm / "sacct_calls").exists()


def test_leftover_jobs_are_ended_when_squeue_fails_now_and_then(tmp_path, fake_slurm, monkeypatch):
    """A failed squeue says nothing about the jobs: it is asked again (not taken for "still listed")."""
    job, ended = _slow_to_end_job(tmp_path)
    monkeypatch.setenv("FAKE_SLURM_SQUEUE_FAIL", "transient:2")
    Runner["slurm"].end_jobs([job])
    assert ended.exists(), "end_jobs returned while the cancelled job was still ending"
    assert (fake_slurm / "squeue_fail_count").read_text().strip() == "2"  # (both failures were met)


def test_leftover_jobs_when_squeue_never_answers_are_one_clear_error(tmp_path, fake_slurm, monkeypatch):
    job, ended = _slow_to_end_job(tmp_path)
    monkeypatch.setenv("FAKE_SLURM_SQUEUE_FAIL", "permanent")
    with pytest.raises(SchedulerError, match=rf"could not learn whether the batch jobs .*\({job}\) are gone.*squeue"):
        Runner["slurm"].end_jobs([job], timeout=0.3)
    wait_for(ended.exists, timeout=30, what="the job to end")


def test_leftover_jobs_that_do_not_end_are_one_clear_error(tmp_path, fake_slurm):
    job, ended = _slow_to_end_job(tmp_path)
    with pytest.raises(SchedulerError, match=rf"jobs left by the previous runner \({job}\) are still listed by squeue"):
        Runner["slurm"].end_jobs([job], timeout=0.1)
    wait_for(ended.exists, timeout=30, what="the job to end")
