"""The slurm runner on a real Slurm cluster (``make slurm`` starts one on localhost).

Skipped, with the reason shown, where no cluster answers.
"""

import os
import subprocess

import numpy as np
import pytest
from helpers import (
    PROFIT,
    SCALAR_INPUTS,
    STUDY,
    make_study,
    most_at_once,
    outputs,
    profit,
    runs_done,
    study_results,
    wait_for,
)

from profit.run import Runner, RunState

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]


def sacct_states(job):
    lines = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-o", "JobID,State", "-j", job], capture_output=True, text=True
    ).stdout.splitlines()
    return dict(line.split("|", 1) for line in lines)


@pytest.fixture
def make_slurm_runner(tmp_path):
    made = []

    def make(worker, interface="memmap", size=4, **options):
        runner = Runner["slurm"](
            interface={
                "class": interface,
                "size": size,
                "input_config": SCALAR_INPUTS,
                "output_config": outputs("f") if worker != "t_span" else outputs("start", "end"),
            },
            worker=worker,
            work_dir=str(tmp_path / "study"),
            min_poll=0.2,
            **options,
        )
        made.append(runner)
        return runner

    yield make
    for runner in made:
        runner.close()


@pytest.mark.timeout(600)  # 100 jobs on a single-node cluster of 2 cores: about 30 s, more when loaded
@pytest.mark.parametrize("interface", ["memmap", "zeromq"])
def test_profit_run_of_a_100_run_study(tmp_path, interface):
    yaml = STUDY.format(ntrain=100, runner="{class: slurm, min_poll: 0.2}") + f"  interface: {interface}\n"
    study = make_study(tmp_path / "study", yaml)
    done = profit("run", str(study), timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "100 runs: 100 done, 0 failed" in done.stdout
    inputs, results = study_results(study, 100)
    np.testing.assert_array_equal(results["f"], inputs["u"] + inputs["v"])
    np.testing.assert_array_equal(results["g"], inputs["u"] * inputs["v"])
    assert "100 done, 0 failed" in profit("status", str(study)).stdout


@pytest.mark.parametrize("interface", ["memmap", "zeromq"])
def test_outputs_stay_aligned_with_failures(make_slurm_runner, interface):
    runner = make_slurm_runner("t_sum_unless_negative", interface=interface)
    rows = np.zeros(6, dtype=[("u", "f8"), ("v", "f8")])
    rows["u"], rows["v"] = [1, -1, 2, -2, 3, 4], 10
    runner.spawn_array(rows, wait=True)
    states = [runner.status(i).state for i in range(6)]
    assert states == [RunState.DONE, RunState.FAILED, RunState.DONE, RunState.FAILED, RunState.DONE, RunState.DONE]
    f = runner.interface.output["f"][:6]
    assert f[[0, 2, 4, 5]].tolist() == [11, 12, 13, 14] and np.isnan(f[[1, 3]]).all()
    assert "negative" in runner.status(1).reason


def test_job_killed_by_slurm_fails_with_slurms_reason(make_slurm_runner):
    runner = make_slurm_runner({"class": "t_sleep", "seconds": 120})
    run_id = runner.spawn({"u": 1.0, "v": 2.0})
    job = runner.runs[run_id].job_id
    wait_for(lambda: sacct_states(job).get(job) == "RUNNING", timeout=30, what=f"job {job} to run")
    subprocess.run(["scancel", job], check=True)  # as an administrator, or a preemption, would
    status = runner.wait(run_id, timeout=60)
    assert status.state is RunState.FAILED
    assert status.reason == f"worker was cancelled by Slurm or a user (Slurm job {job}: CANCELLED by {os.getuid()})"


def test_worker_killed_by_a_signal_names_the_signal(make_slurm_runner):
    runner = make_slurm_runner("t_sigkill")
    status = runner.wait(runner.spawn({"u": 1.0, "v": 2.0}), timeout=60)
    job = runner.failed[0].reason.split("Slurm job ")[1].split(":")[0]
    assert status.state is RunState.FAILED
    assert status.reason.startswith(f"worker killed by SIGKILL (Slurm job {job}: FAILED)")


def test_cancel_ends_the_jobs(make_slurm_runner):
    runner = make_slurm_runner("t_tree", parallel=2)
    rows = np.zeros(4, dtype=[("u", "f8"), ("v", "f8")])
    runner.spawn_array(rows)
    job = runner.runs[0].array_job
    folder = os.path.join(runner.work_dir, "pids")
    wait_for(
        lambda: os.path.isdir(folder) and len([n for n in os.listdir(folder) if not n.endswith(".tmp")]) >= 2,
        timeout=30,
        what="two runs to start",
    )
    names = [name for name in os.listdir(folder) if not name.endswith(".tmp")]
    pids = [int(pid) for name in names for pid in open(os.path.join(folder, name)).read().split()]
    runner.cancel_all()
    assert [runner.status(i).state for i in range(4)] == [RunState.CANCELLED] * 4
    states = sacct_states(job)
    assert states and all(state.startswith("CANCELLED") for state in states.values()), states
    for pid in pids:
        wait_for(lambda: not os.path.exists(f"/proc/{pid}"), timeout=30, what=f"process {pid} to end")


def test_array_is_throttled_to_parallel(make_slurm_runner):
    runner = make_slurm_runner("t_span", parallel=2, size=6)
    rows = np.zeros(6, dtype=[("u", "f8"), ("v", "f8")])
    rows["u"] = 0.5
    runner.spawn_array(rows, wait=True)
    assert runner.failed == {}
    assert most_at_once(runner.output_data) <= 2


@pytest.mark.timeout(600)
@pytest.mark.parametrize("interface", ["memmap", "zeromq"])
def test_kill_the_runner_and_continue(tmp_path, interface):
    """kill -9 of 'profit run': its Slurm jobs are cancelled by the next 'profit run', which completes the study."""
    import json
    import signal

    yaml = STUDY.format(ntrain=12, runner="{class: slurm, parallel: 3, min_poll: 0.2}") + f"  interface: {interface}\n"
    study = make_study(tmp_path / "study", yaml, sleep=1.0)
    process = subprocess.Popen([PROFIT, "run", str(study)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: runs_done(study) >= 3, timeout=120, what="three runs to finish")
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    jobs = json.loads((study / "profit-study.json").read_text())["batch_jobs"]
    assert jobs, "the runner did not note its Slurm jobs"

    again = profit("run", str(study), timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"cancelling {len(jobs)} batch jobs left by the previous runner" in again.stdout
    assert all(state.startswith(("CANCELLED", "COMPLETED")) for job in jobs for state in sacct_states(job).values())
    inputs = np.genfromtxt(study / "input.txt", names=True)
    results = np.genfromtxt(study / "output.txt", names=True)
    np.testing.assert_array_equal(results["f"], inputs["u"] + inputs["v"])
