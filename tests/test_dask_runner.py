"""The Dask runner (label ``dask``): each run a profit-worker process started by a Dask task."""

import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from helpers import SCALAR_INPUTS, STUDY, alive, make_study, outputs, params, profit, started_pids, wait_for

from profit.run import Runner, RunState
from profit.run.errors import ConfigError

distributed = pytest.importorskip("distributed", reason="dask.distributed is not installed (the extra 'dask')")

from profit.run.dask import DaskEnding, _ending  # noqa: E402


@pytest.fixture(scope="module")
def cluster():
    """Two single-threaded Dask worker processes, shared by the tests of this file."""
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=40
    ) as local:
        yield local


@pytest.fixture
def make_runner(tmp_path, cluster):
    made = []

    def make(worker, *, output_config=None, work_dir="study", **options):
        runner = Runner["dask"](
            scheduler=cluster.scheduler_address,
            interface={
                "class": options.pop("interface", "memmap"),
                "size": 4,
                "input_config": SCALAR_INPUTS,
                "output_config": output_config or outputs("f"),
            },
            worker=worker,
            work_dir=str(tmp_path / work_dir),
            **options,
        )
        made.append(runner)
        return runner

    yield make
    for runner in made:
        runner.close()


def run_processes(runner):
    """Pids of the processes of this runner's runs (by the work directory mark in their environment;
    not the run servers that fork them)."""
    mark = f"PROFIT_WORK_DIR={os.path.realpath(runner.work_dir)}".encode()
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/environ", "rb") as file:
                    if mark in file.read().split(b"\0"):
                        pids.append(int(name))
            except OSError:
                pass
    return [pid for pid in pids if alive(pid) and not is_run_server(pid)]


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as file:
            return file.read()
    except OSError:
        return b""


def is_run_server(pid):
    """A run server (profit.run.runfork) is started by its Dask worker; the runs it forks share its
    command line, but their parent is the server."""
    try:
        parent = parent_of(pid)
    except OSError:
        return False
    return b"profit.run.runfork" in _cmdline(pid) and b"profit.run.runfork" not in _cmdline(parent)


def dask_workers(cluster):
    with distributed.Client(cluster.scheduler_address, set_as_default=False) as client:
        return set(client.scheduler_info()["workers"])


@pytest.mark.parametrize("interface", ["memmap", "zeromq"])
def test_twenty_runs_give_aligned_outputs(make_runner, interface):
    runner = make_runner("t_pair", output_config=outputs("f", "g"), parallel=2, interface=interface)
    rows = params(20)
    runner.spawn_array(rows, wait=True)
    assert runner.failed == {}
    np.testing.assert_array_equal(runner.interface.input["u"][:20], rows["u"])
    np.testing.assert_allclose(runner.interface.output["f"][:20].ravel(), rows["u"] + rows["v"])
    np.testing.assert_allclose(runner.interface.output["g"][:20].ravel(), rows["u"] - rows["v"])


def test_a_failing_run_fails_with_its_reason(make_runner):
    runner = make_runner("t_sum_unless_negative", parallel=2)
    rows = np.zeros(3, dtype=[("u", "f8"), ("v", "f8")])
    rows["u"] = [1.0, -1.0, 2.0]
    runner.spawn_array(rows, wait=True)
    assert list(runner.failed) == [1]
    status = runner.status(1)
    assert status.state is RunState.FAILED and "negative u" in status.reason
    assert runner.status(0).state is RunState.DONE and runner.status(2).state is RunState.DONE
    assert np.isnan(runner.interface.output["f"][1]).all()
    np.testing.assert_allclose(runner.interface.output["f"][[0, 2]].ravel(), [1.0, 2.0])


def test_a_timeout_ends_the_run_process_and_not_the_dask_worker(make_runner, cluster):
    before = dask_workers(cluster)
    runner = make_runner("t_slow_once", timeout=1, parallel=2)  # sleeps 60 s on its first attempt only
    status = runner.wait(runner.spawn({"u": 1.0, "v": 2.0}))
    assert status.state is RunState.FAILED and "timed out after 1 s" in status.reason
    wait_for(lambda: not run_processes(runner), timeout=5, what="the timed-out run's process to end")
    assert dask_workers(cluster) == before  # the Dask workers live on
    assert runner.wait(runner.respawn(0)).state is RunState.DONE  # and the runner's next run works
    assert float(runner.interface.output["f"][0]) == 3.0


def test_a_timeout_counts_from_the_start_not_from_the_queue(make_runner):
    """Six runs of 1.5 s on two Dask workers, a 3 s timeout: the last two wait 3 s in Dask's queue
    (a clock from submission would end them), then run 1.5 s each, well within their time."""
    runner = make_runner("t_span", output_config=outputs("start", "end"), timeout=3, parallel=0)
    rows = params(6)
    rows["u"] = 1.5
    runner.spawn_array(rows, wait=True)
    assert runner.failed == {}
    spans = runner.interface.output[["start", "end"]][:6]
    first = spans["start"].min()
    assert max(spans["end"]) - first > 3  # (from submission, the last runs' time would have been up)
    assert all(runner.status(i).state is RunState.DONE for i in range(6))


def test_cancel_ends_the_run_process_group(make_runner, cluster):
    before = dask_workers(cluster)
    runner = make_runner("t_tree", parallel=2)  # starts a grandchild, then waits until it is ended
    run_id = runner.spawn({"u": 1.0, "v": 2.0})
    pids = started_pids(runner, 1)
    status = runner.cancel(run_id)
    assert status.state is RunState.CANCELLED
    assert not any(alive(pid) for pid in pids)  # the worker and its grandchild, ended by the time cancel returns
    assert run_processes(runner) == []
    assert runner.runs == {}
    assert dask_workers(cluster) == before


def test_cancel_drops_runs_that_wait_in_the_dask_queue_at_once(make_runner):
    import time

    runner = make_runner("t_tree", parallel=6)  # six runs on two Dask workers: four wait
    runner.spawn_array(params(6))
    started_pids(runner, 2)
    begin = time.monotonic()
    runner.cancel_all()
    assert time.monotonic() - begin < 4.0  # (the grace time of the running ones, not a wait for the queued)
    assert len(runner.cancelled_runs) == 6 and runner.runs == {}
    wait_for(lambda: not run_processes(runner), timeout=5, what="every run's processes to end")


def test_a_cancelled_run_queued_on_a_dask_worker_does_not_run(make_runner):
    """Two long runs hold the two Dask workers; the two short runs behind them wait on the workers
    (Dask hands a worker more tasks than threads). After cancel_all, none of the four ran to its end."""
    runner = make_runner("t_span", output_config=outputs("start", "end"), parallel=0)
    rows = params(4)
    rows["u"] = [30, 30, 0, 0]
    runner.spawn_array(rows)
    wait_for(lambda: len(run_processes(runner)) >= 2, timeout=30, what="the two long runs to start")
    runner.cancel_all()
    assert [runner.status(i).state for i in range(4)] == [RunState.CANCELLED] * 4
    assert np.isnan(runner.interface.output["end"][:4]).all()  # (a short run that ran would have an end)


def test_runs_that_fail_once_succeed_on_retry(tmp_path, cluster):
    inputs = {**SCALAR_INPUTS, "fault": {"dtype": np.int64}}
    with Runner["dask"](
        scheduler=cluster.scheduler_address,
        interface={"class": "memmap", "size": 4, "input_config": inputs, "output_config": outputs("f")},
        worker="t_faulty",
        work_dir=str(tmp_path / "study"),
        retries=1,
        parallel=2,
    ) as runner:
        rows = np.zeros(3, dtype=[("u", "f8"), ("v", "f8"), ("fault", "i8")])
        rows["u"], rows["v"], rows["fault"] = [1.0, 2.0, 3.0], 0.5, [1, 2, 0]  # killed once, raised once, fine
        runner.spawn_array(rows, wait=True)
        assert runner.failed == {}
        np.testing.assert_allclose(runner.interface.output["f"][:3].ravel(), [1.5, 2.5, 3.5])


def parent_of(pid):
    with open(f"/proc/{pid}/stat") as file:
        return int(file.read().rsplit(")", 1)[1].split()[1])


def test_the_run_process_group_dies_with_its_dask_worker(make_runner, cluster):
    runner = make_runner("t_tree", parallel=2)
    run_id = runner.spawn({"u": 1.0, "v": 2.0})
    worker, grandchild = started_pids(runner, 1)
    server = parent_of(worker)  # the run server that forked it
    assert is_run_server(server)
    os.kill(parent_of(server), signal.SIGKILL)  # the Dask worker process that runs its task
    wait_for(
        lambda: not any(alive(pid) for pid in (server, worker, grandchild)),
        timeout=10,
        what="the run's processes to die with their Dask worker",
    )
    # Dask runs the task again on the other worker (the worker was lost, not the task's fault).
    assert len(started_pids(runner, 2)) == 4
    assert runner.cancel(run_id).state is RunState.CANCELLED
    assert run_processes(runner) == []
    with distributed.Client(cluster.scheduler_address, set_as_default=False) as client:
        client.wait_for_workers(2, timeout=30)  # (the nanny restarts the worker, for the next tests)


def test_a_lost_dask_worker_is_named_in_the_reason():
    class Lost:
        status = "error"

        def exception(self):
            return type("KilledWorker", (Exception,), {})("attempted to run task on 3 workers, all died")

    ending = _ending(Lost())
    assert isinstance(ending, DaskEnding) and not ending.success
    assert (
        ending.describe()
        == "was lost with its Dask worker (KilledWorker: attempted to run task on 3 workers, all died)"
    )


def test_own_local_cluster_is_closed_with_the_runner(tmp_path):
    runner = Runner["dask"](
        interface={"class": "memmap", "size": 2, "input_config": SCALAR_INPUTS, "output_config": outputs("f")},
        worker="t_sum",
        work_dir=str(tmp_path / "study"),
        parallel=2,
    )
    try:
        runner.spawn_array(params(4), wait=True)
        assert runner.failed == {}
        own = runner._cluster
        assert len(own.workers) == 2
    finally:
        runner.close()
    assert own.status.name == "closed"


QUIET_SCRIPT = """
import math
from profit.run import Executor

def f(x):
    return math.sqrt(x)

if __name__ == "__main__":
    with Executor("dask", parallel=2, timeout=30) as executor:
        print(sum(executor.map(f, [1.0, 4.0, 9.0])))
        try:
            executor.submit(f, -1.0).result()
        except Exception as error:
            print(type(error).__name__)
"""


def test_a_script_with_its_own_local_cluster_prints_only_its_results(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(QUIET_SCRIPT)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "6.0\nRunFailed\n"
    assert done.stderr == ""  # (not Dask's log of every step of the local cluster's close)


def test_a_cluster_config_builds_a_cluster_of_that_class(tmp_path):
    cluster = {
        "class": "distributed.LocalCluster",
        "n_workers": 0,
        "threads_per_worker": 1,
        "processes": True,
        "dashboard_address": ":0",
        "scale": 2,
    }
    with Runner["dask"](
        cluster=cluster,
        interface={"class": "memmap", "size": 2, "input_config": SCALAR_INPUTS, "output_config": outputs("f")},
        worker="t_sum",
        work_dir=str(tmp_path / "study"),
        parallel=2,
    ) as runner:
        rows = params(4)
        runner.spawn_array(rows, wait=True)
        assert runner.failed == {}
        np.testing.assert_allclose(runner.interface.output["f"][:4].ravel(), rows["u"] + rows["v"])
        assert runner.config["cluster"] == cluster


@pytest.mark.parametrize(
    "options, message",
    [
        ({"scheduler": "tcp://127.0.0.1:1", "cluster": {}}, "either scheduler"),
        ({"cluster": {"class": "distributed.NoSuchCluster"}}, "cannot import the cluster class"),
        ({"cluster": {"class": "LocalCluster"}}, "not an import path"),
        ({"cluster": {"scale": 2, "adapt": {"maximum": 3}}}, "scale or adapt"),
        ({"scheduler": 8786}, "an address like"),
    ],
)
def test_bad_options_are_refused_when_the_runner_is_built(tmp_path, options, message):
    with pytest.raises(ConfigError, match=message):
        Runner["dask"](worker="t_sum", work_dir=str(tmp_path / "study"), **options)


def test_importing_profit_run_does_not_import_dask():
    import subprocess
    import sys

    code = "import sys, profit.run; print('distributed' in sys.modules or 'dask' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_profit_run_of_a_study_with_the_dask_runner(tmp_path):
    study = make_study(tmp_path / "study", STUDY.format(ntrain=6, runner="{class: dask, parallel: 2}"))
    done = profit("run", str(study))
    assert done.returncode == 0, done.stderr
    assert "6 runs: 6 done, 0 failed" in done.stdout
    inputs = np.genfromtxt(study / "input.txt", names=True)
    results = np.genfromtxt(study / "output.txt", names=True)
    np.testing.assert_array_equal(results["f"], inputs["u"] + inputs["v"])
