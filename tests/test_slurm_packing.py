"""Packing on a real Slurm cluster: ``runs_per_job`` runs to an array task (``make slurm`` starts one).

Skipped, with the reason shown, where no cluster answers.
"""

import os
import subprocess

import numpy as np
import pytest
from helpers import SCALAR_INPUTS, TESTS, outputs, profit, study_results, wait_for

from profit.run import Runner, RunState
from profit.run.errors import ConfigError
from profit.run.includes import load_includes

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]

# A worker that notes when two processes run the same run at once (a lock dies with its process).
ONCE_WORKER = """
import fcntl, os, time
from profit.run import Worker

@Worker.wrap("t_pack_once", "f")
def once(u, v):
    folder = os.environ["T_PACK_LOCKS"]
    lock = open(os.path.join(folder, f"{int(v)}.lock"), "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        with open(os.path.join(folder, "twice"), "a") as note:
            note.write(f"{int(v)}\\n")
    time.sleep(u)
    return v
"""


class Jobs:
    """The array tasks each run was given to (a runner listener)."""

    def __init__(self):
        self.tasks = {}

    def run_started(self, run_id, handle):
        self.tasks.setdefault(run_id, []).append(handle.job_id)


def sacct_tasks(arrays):
    lines = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-o", "JobID,State", "-j", ",".join(sorted(arrays))],
        capture_output=True,
        text=True,
        env={**os.environ, "SLURM_BITSTR_LEN": "0"},
    ).stdout.splitlines()
    return dict(line.split("|", 1) for line in lines)


@pytest.fixture
def make_runner(tmp_path):
    made = []

    def make(worker, size, names=("f",), interface="memmap", **options):
        runner = Runner["slurm"](
            interface={
                "class": interface,
                "size": size,
                "input_config": SCALAR_INPUTS,
                "output_config": outputs(*names),
            },
            worker=worker,
            work_dir=str(tmp_path / "study"),
            min_poll=0.2,
            **options,
        )
        made.append(runner)
        jobs = Jobs()
        runner.listeners.append(jobs)
        return runner, jobs

    yield make
    for runner in made:
        runner.close()


def test_runs_per_job_is_checked(tmp_path):
    for bad in (0, -1, 1.5, "many"):
        with pytest.raises(ConfigError, match="runs_per_job"):
            Runner["slurm"](worker="t_sum", work_dir=str(tmp_path), runs_per_job=bad)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("interface", ["memmap", "zeromq"])
def test_200_runs_in_4_tasks_and_one_fails_alone(make_runner, interface):
    runner, jobs = make_runner("t_sum_unless_negative", size=200, runs_per_job=50, interface=interface)
    rows = np.zeros(200, dtype=[("u", "f8"), ("v", "f8")])
    rows["u"], rows["v"] = np.arange(200), 0.5
    rows["u"][137] = -1
    runner.spawn_array(rows, wait=True)
    tasks = {task for run_tasks in jobs.tasks.values() for task in run_tasks}
    assert len(tasks) == 4 and all(len(run_tasks) == 1 for run_tasks in jobs.tasks.values())
    assert len({jobs.tasks[run_id][0] for run_id in range(100, 150)}) == 1  # 137's task mates
    arrays = {task.split("_")[0] for task in tasks}
    # (a run is settled when its results arrive; its task goes on with the next)
    # (sacct may list an array by its bare id while it records it: wait for the four tasks)
    wait_for(lambda: sacct_tasks(arrays) == dict.fromkeys(tasks, "COMPLETED"), timeout=30, what="the tasks to end")
    assert list(runner.failed) == [137] and "negative" in runner.status(137).reason
    assert runner.status(137).state is RunState.FAILED
    assert all(runner.status(i).state is RunState.DONE for i in range(200) if i != 137)
    f = runner.interface.output["f"][:200]
    expected = rows["u"] + rows["v"]
    assert np.isnan(f[137]) and np.array_equal(np.delete(f, 137), np.delete(expected, 137))


@pytest.mark.timeout(120)
def test_cancelled_task_gives_its_unfinished_runs_to_another(make_runner, tmp_path, monkeypatch, caplog):
    worker_file = tmp_path / "once_worker.py"
    worker_file.write_text(ONCE_WORKER)
    locks = tmp_path / "locks"
    locks.mkdir()
    monkeypatch.setenv("T_PACK_LOCKS", str(locks))
    load_includes([str(worker_file)])
    runner, jobs = make_runner("t_pack_once", size=12, runs_per_job=6, retries=1)
    rows = np.zeros(12, dtype=[("u", "f8"), ("v", "f8")])
    rows["u"], rows["v"] = 0.4, np.arange(12)
    runner.spawn_array(rows)
    first = runner.runs[0]
    started = lambda: [r for r in range(6) if os.path.exists(os.path.join(first.pack_dir, f"{r}.start"))]  # noqa: E731
    wait_for(lambda: len(started()) >= 2, timeout=60, what="two runs of the first task to start")
    subprocess.run(["scancel", first.job_id], check=True)
    runner.wait_all(timeout=90)
    assert runner.failed == {}
    assert [runner.status(i).state for i in range(12)] == [RunState.DONE] * 12
    np.testing.assert_array_equal(runner.interface.output["f"][:12], rows["v"])
    assert not (locks / "twice").exists(), (locks / "twice").read_text()
    ran_again = [r for r in range(6) if len(jobs.tasks[r]) > 1]
    assert ran_again, "no run of the cancelled task ran again"
    assert all(first.job_id not in jobs.tasks[r][1:] for r in ran_again)
    assert all(len(jobs.tasks[r]) == 1 for r in range(6, 12))  # the other task's runs were not touched
    noted = lambda r, what: os.path.exists(os.path.join(first.pack_dir, f"{r}.{what}"))  # noqa: E731
    in_flight = [r for r in range(6) if noted(r, "start") and not noted(r, "end")]
    assert len(in_flight) <= 1 and set(in_flight) <= set(ran_again)
    # Only the run in flight counted a failed attempt (with Slurm's verdict); the others went back to pending.
    attempts = [record.getMessage() for record in caplog.records if "failed (attempt 1 of 2)" in record.getMessage()]
    assert [message.split()[1] for message in attempts] == [str(r) for r in in_flight], attempts
    assert all("cancelled by Slurm or a user" in message for message in attempts)


@pytest.mark.timeout(60)
def test_per_run_timeout_in_a_packed_task(make_runner):
    runner, jobs = make_runner("t_span", size=3, names=("start", "end"), runs_per_job=3, timeout=1.5)
    rows = np.zeros(3, dtype=[("u", "f8"), ("v", "f8")])
    rows["u"] = [0.1, 10, 0.1]
    runner.spawn_array(rows, wait=True)
    assert len({jobs.tasks[r][0] for r in range(3)}) == 1
    assert [runner.status(r).state for r in range(3)] == [RunState.DONE, RunState.FAILED, RunState.DONE]
    assert runner.status(1).reason.startswith("timed out after 1.5 s")


@pytest.mark.timeout(60)
def test_cancel_one_packed_run_then_all(make_runner):
    runner, jobs = make_runner("t_span", size=3, names=("start", "end"), runs_per_job=3)
    rows = np.zeros(3, dtype=[("u", "f8"), ("v", "f8")])
    rows["u"] = 30
    runner.spawn_array(rows)
    first = runner.runs[0]
    wait_for(lambda: os.path.exists(os.path.join(first.pack_dir, "0.start")), timeout=30, what="run 0 to start")
    assert runner.cancel(1).state is RunState.CANCELLED  # its task goes on with run 0
    assert sorted(runner.runs) == [0, 2]
    runner.cancel_all()
    assert [runner.status(r).state for r in range(3)] == [RunState.CANCELLED] * 3
    states = sacct_tasks({first.array_job})
    assert all(state.startswith("CANCELLED") for state in states.values()), states


@pytest.mark.timeout(60)
def test_a_run_that_cannot_finish_before_the_time_limit_is_not_started(make_runner):
    runner, jobs = make_runner("t_sum", size=2, runs_per_job=2, timeout=300, options={"time": "0:01:00"})
    rows = np.zeros(2, dtype=[("u", "f8"), ("v", "f8")])
    runner.spawn_array(rows, wait=True)
    for r in range(2):
        status = runner.status(r)
        assert status.state is RunState.FAILED and "less than the timeout (300 s)" in status.reason, status


PACKED_STUDY = """\
ntrain: 1000
seed: 5
variables:
  u: Uniform(0, 1)
  v: Uniform(0, 1)
  f: Output
include: {workers}
run:
  runner: {{class: slurm, runs_per_job: auto, min_poll: 0.2, options: {{job-name: {name}}}}}
  worker: t_sum
"""


@pytest.mark.timeout(300)
def test_profit_run_of_1000_runs_in_a_handful_of_jobs(tmp_path):
    """runs_per_job: auto spreads the runs over as many tasks as the cluster has CPUs (sinfo)."""
    name = f"pack-{os.getpid()}-{tmp_path.name}"[:40]
    study = tmp_path / "study"
    study.mkdir()
    (study / "profit.yaml").write_text(PACKED_STUDY.format(workers=TESTS / "workers.py", name=name))
    done = profit("run", str(study), timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1000 runs: 1000 done, 0 failed" in done.stdout
    inputs, results = study_results(study, 1000)
    np.testing.assert_array_equal(results["f"], inputs["u"] + inputs["v"])
    cpus = subprocess.run(["sinfo", "-h", "-o", "%C"], capture_output=True, text=True, check=True).stdout
    slots = sum(int(line.split("/")[-1]) for line in cpus.split())

    def listed():
        return subprocess.run(
            ["sacct", "-X", "-n", "-P", "-o", "JobID", f"--name={name}", "-S", "now-1hour"],
            capture_output=True,
            text=True,
            env={**os.environ, "SLURM_BITSTR_LEN": "0"},
        ).stdout.split()

    # The controller hands finished jobs to the accounting daemon a moment later: wait for them.
    wait_for(lambda: listed(), timeout=60, what="the study's jobs in sacct")
    assert 1 <= len(listed()) <= slots, listed()  # a handful of array tasks, not a thousand jobs
