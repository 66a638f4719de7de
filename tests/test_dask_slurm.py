"""The dask runner on a ``dask_jobqueue.SLURMCluster``: its Dask workers are jobs of a real Slurm cluster.

Skipped, with the reason shown, where no Slurm cluster answers (``make slurm`` starts one on
localhost) or dask-jobqueue is not installed (the extra ``jobqueue``). Every Slurm job of these
tests carries a job name of this session, and is cancelled by that name at the end.
"""

import contextlib
import json
import os
import subprocess
import sys
import uuid

import numpy as np
import pytest
from helpers import (
    SCALAR_INPUTS,
    STUDY,
    Gate,
    alive,
    make_study,
    outputs,
    params,
    profit,
    started_pids,
    study_results,
    wait_for,
)

from profit.run import Runner, RunState

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]

distributed = pytest.importorskip("distributed", reason="dask.distributed is not installed (the extra 'dask')")
dask_jobqueue = pytest.importorskip("dask_jobqueue", reason="dask-jobqueue is not installed (the extra 'jobqueue')")

# The Slurm jobs of this test session: each cluster's carry a name of their own beginning with this one.
JOB_NAME = f"profit-dask-test-{uuid.uuid4().hex[:8]}"


def cluster_options(folder, job_name):
    """SLURMCluster's keywords (dask-jobqueue 0.9): single-core workers of this venv's Python, files in ``folder``."""
    return {
        "cores": 1,
        "processes": 1,
        "memory": "1GB",
        "walltime": "00:10:00",
        "job_name": job_name,
        "python": sys.executable,
        "log_directory": str(folder / "slurm-logs"),
        "local_directory": str(folder / "dask-local"),
        "job_extra_directives": ["--partition=debug"],
        "scheduler_options": {"dashboard_address": ":0"},
    }


def our_jobs(job_name):
    listed = subprocess.run(["squeue", "-h", "-n", job_name, "-o", "%i"], capture_output=True, text=True)
    return listed.stdout.split()


def cancel_our_jobs(job_name):
    """Cancel every Slurm job named ``job_name``, and wait until none is left in the queue."""
    subprocess.run(["scancel", "--name", job_name], capture_output=True)
    wait_for(lambda: our_jobs(job_name) == [], timeout=30, what=f"the Slurm jobs named {job_name} to leave the queue")


@contextlib.contextmanager
def slurm_dask_cluster(folder, job_name, workers, **config):
    """A SLURMCluster of ``workers`` Dask workers (Slurm jobs), all running; its jobs cancelled at the end."""
    import dask

    try:
        with dask.config.set(config):  # (the scheduler, in this process, reads it as it starts)
            cluster = dask_jobqueue.SLURMCluster(**cluster_options(folder, job_name))
        try:
            cluster.scale(workers)
            with distributed.Client(cluster, set_as_default=False) as client:
                client.wait_for_workers(workers, timeout=50)
            yield cluster
        finally:
            cluster.close()
    finally:
        cancel_our_jobs(job_name)  # (closing the cluster cancels them; this makes sure, and waits)


@pytest.fixture(scope="module")
def shared_cluster(tmp_path_factory):
    """Four single-core Dask workers, each a Slurm job, shared by the tests of this file that leave them be."""
    with slurm_dask_cluster(tmp_path_factory.mktemp("slurm-dask"), f"{JOB_NAME}-shared", 4) as cluster:
        yield cluster


@pytest.fixture
def make_runner(tmp_path, shared_cluster):
    with contextlib.ExitStack() as made:

        def make(worker, size=4, **options):
            interface = {"class": "memmap", "size": size, "input_config": SCALAR_INPUTS, "output_config": outputs("f")}
            runner = Runner["dask"](
                scheduler=shared_cluster.scheduler_address,
                interface=interface,
                worker=worker,
                work_dir=str(tmp_path / "study"),
                **options,
            )
            return made.enter_context(runner)

        yield make


def dask_workers(cluster):
    with distributed.Client(cluster.scheduler_address, set_as_default=False) as client:
        return set(client.scheduler_info()["workers"])


def environment_of(pid):
    with open(f"/proc/{pid}/environ", "rb") as file:
        return dict(item.decode().split("=", 1) for item in file.read().split(b"\0") if b"=" in item)


def gate_holders(gate):
    """{pid: Slurm job} of the live processes (runs of t_gate) that hold ``gate``'s FIFO open, but this one."""
    held = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != os.getpid():
            try:
                if any(os.readlink(entry.path) == gate.path for entry in os.scandir(f"/proc/{name}/fd")):
                    held[int(name)] = environment_of(name).get("SLURM_JOB_ID")
            except OSError:  # (gone meanwhile, or not ours)
                continue
    return {pid: job for pid, job in held.items() if alive(pid)}


@pytest.mark.timeout(120)  # about 25 s on an idle machine of 2 cores: 4 Slurm jobs to start, 200 runs
def test_profit_run_of_a_200_run_study_on_slurm_dask_workers(tmp_path):
    job_name = f"{JOB_NAME}-cli"
    options = {"class": "dask_jobqueue.SLURMCluster", **cluster_options(tmp_path, job_name), "scale": 4}
    cluster = "{" + ", ".join(f"{key}: {json.dumps(value)}" for key, value in options.items()) + "}"
    runner = f"{{class: dask, parallel: 0, cluster: {cluster}}}"
    study = make_study(tmp_path / "study", STUDY.format(ntrain=200, runner=runner))
    try:
        done = profit("run", str(study), timeout=100)
    finally:
        cancel_our_jobs(job_name)  # (the runner's cluster cancels them as it closes; this makes sure)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "200 runs: 200 done, 0 failed" in done.stdout
    inputs, results = study_results(study, 200)
    np.testing.assert_array_equal(results["f"], inputs["u"] + inputs["v"])
    np.testing.assert_array_equal(results["g"], inputs["u"] * inputs["v"])
    assert "200 done, 0 failed" in profit("status", str(study)).stdout
    # The Dask workers were Slurm jobs: each wrote its log where the cluster config said.
    assert len(list((tmp_path / "slurm-logs").glob(f"{job_name}-*.err"))) == 4


def test_failed_runs_on_slurm_dask_workers_keep_outputs_aligned(make_runner):
    runner = make_runner("t_sum_unless_negative", size=6, parallel=6)
    rows = np.zeros(6, dtype=[("u", "f8"), ("v", "f8")])
    rows["u"], rows["v"] = [1, -1, 2, -2, 3, 4], 10
    runner.spawn_array(rows, wait=True)
    states = [runner.status(i).state for i in range(6)]
    assert states == [RunState.DONE, RunState.FAILED, RunState.DONE, RunState.FAILED, RunState.DONE, RunState.DONE]
    f = runner.interface.output["f"][:6].ravel()
    assert f[[0, 2, 4, 5]].tolist() == [11, 12, 13, 14] and np.isnan(f[[1, 3]]).all()
    assert sorted(runner.failed) == [1, 3] and "negative u" in runner.status(1).reason


def test_cancel_ends_the_run_and_leaves_the_slurm_dask_worker(make_runner, shared_cluster):
    before = dask_workers(shared_cluster)
    runner = make_runner("t_tree")  # starts a grandchild, then waits until it is ended
    run_id = runner.spawn({"u": 1.0, "v": 2.0})
    pids = started_pids(runner, 1)
    job = environment_of(pids[0])["SLURM_JOB_ID"]  # (the run runs in a Slurm job of the cluster)
    assert job in our_jobs(f"{JOB_NAME}-shared")
    assert runner.cancel(run_id).state is RunState.CANCELLED
    assert not any(alive(pid) for pid in pids)  # the worker and its grandchild, ended by the time cancel returns
    assert dask_workers(shared_cluster) == before  # the Dask workers (Slurm jobs) live on
    assert job in our_jobs(f"{JOB_NAME}-shared")


def test_a_dask_worker_cancelled_by_slurm_mid_run_is_retried_elsewhere(tmp_path):
    # A cluster of its own (the test ends one of its workers). allowed-failures 0: a task whose worker is
    # lost fails at once (KilledWorker) instead of being run again by Dask, so the runner sees the loss.
    config = {"distributed.scheduler.allowed-failures": 0}
    with slurm_dask_cluster(tmp_path, f"{JOB_NAME}-killed", 4, **config) as cluster:
        with distributed.Client(cluster, set_as_default=False) as client:
            names = {info["name"]: address for address, info in client.scheduler_info()["workers"].items()}
        address_of_job = {job.job_id: names[name] for name, job in cluster.workers.items()}
        work_dir = tmp_path / "study"
        work_dir.mkdir()
        gate = Gate(str(work_dir))  # holds every run until released
        try:
            with Runner["dask"](
                scheduler=cluster.scheduler_address,
                interface={"class": "memmap", "size": 8, "input_config": SCALAR_INPUTS, "output_config": outputs("f")},
                worker="t_gate",
                work_dir=str(work_dir),
                retries=1,
                parallel=8,
            ) as runner:
                rows = params(8)
                runner.spawn_array(rows)

                wait_for(
                    lambda: len(set(gate_holders(gate).values())) == 4,
                    timeout=30,
                    what="a run in each of the four Dask workers (Slurm jobs)",
                )
                job = min(gate_holders(gate).values())
                lost = address_of_job[job]
                subprocess.run(["scancel", job], check=True)  # as an administrator, a preemption or a walltime would
                wait_for(
                    lambda: job not in gate_holders(gate).values(),
                    timeout=30,
                    what=f"the runs in Slurm job {job} to end with it",
                )
                gate.release(16)  # (one byte a run; more than enough)
                runner.wait_all(timeout=40)
                assert runner.failed == {}
                assert [runner.status(i).state for i in range(8)] == [RunState.DONE] * 8
                np.testing.assert_array_equal(runner.interface.input["u"][:8], rows["u"])
                np.testing.assert_allclose(runner.interface.output["f"][:8].ravel(), rows["u"] + rows["v"])
        finally:
            gate.close()
    # The runs of the lost worker (the one it ran, and any task queued there) failed once, naming it.
    retried = [line for line in (work_dir / "runner.log").read_text().splitlines() if "running it again" in line]
    assert retried and all("failed (attempt 1 of 2)" in line for line in retried), retried
    for line in retried:
        assert "worker was lost with its Dask worker (KilledWorker" in line and lost in line, line
