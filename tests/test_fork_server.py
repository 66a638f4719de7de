"""ForkRunner's fork server: runs whose components load by name are forked from a small process
(profit.run.forkserver); every outcome is what a fork of the runner itself gives."""

import os
import signal
import textwrap
import time

import numpy as np
import pytest
from helpers import alive, scalar_runner, sum_rows, wait_for

from profit.run import RunState
from profit.run.errors import ConfigError
from profit.run.includes import load_includes

# The workers live in an include file: what a study's `include` gives, so that a fresh process
# (the server) loads them by name. Labels carry the module's name: unique in the test process.
WORKERS = textwrap.dedent(
    '''\
    """Workers of test_fork_server (an include file)."""
    import os
    import subprocess
    import time

    from profit.run import Worker


    @Worker.wrap("fs_sum", "f")
    def total(u, v):
        return u + v


    @Worker.wrap("fs_parent", "f")
    def parent(u, v):
        return float(os.getppid())


    @Worker.wrap("fs_environment", "f")
    def environment(u, v):
        # A number that tells the runs' environments apart: which variables, and PYTHONPATH's value.
        import zlib

        seen = sorted(name for name in os.environ if name != "PROFIT_RUN_ID")
        return float(zlib.crc32(repr((seen, os.environ.get("PYTHONPATH"))).encode()))


    @Worker.wrap("fs_fails", "f")
    def fails(u, v):
        if u >= 2:
            raise ValueError(f"u={u!r} is too large")
        return u + v


    @Worker.wrap("fs_sleeps", "f")
    def sleeps(u, v):
        with open(os.environ["FS_PIDS"], "a") as file:
            file.write(f"{os.getpid()}\\n")
        time.sleep(float(os.environ.get("FS_SLEEP", "60")))
        return u + v


    @Worker.wrap("fs_leaves_a_child", "f")
    def leaves_a_child(u, v):
        child = subprocess.Popen(["sleep", "60"])
        with open(os.environ["FS_PIDS"], "a") as file:
            file.write(f"{child.pid}\\n")
        return u + v
    '''
)


@pytest.fixture(scope="module")
def workers(tmp_path_factory):
    path = tmp_path_factory.mktemp("includes") / "fs_workers.py"
    path.write_text(WORKERS)
    load_includes([str(path)])
    return path


@pytest.fixture
def server_mode(monkeypatch, workers):
    """Every run goes through the fork server (the first waits until it is ready)."""
    monkeypatch.setenv("PROFIT_FORK_SERVER", "wait")
    return "wait"


def make_runner(tmp_path, worker, *, size=32, interface="memmap", **options):
    return scalar_runner("fork", tmp_path / "study", worker, size=size, interface=interface, **options)


def pids_in(path, count, timeout=30.0):
    wait_for(lambda: path.exists() and len(path.read_text().split()) >= count, timeout, f"{count} pids in {path}")
    return [int(pid) for pid in path.read_text().split()]


@pytest.mark.parametrize("interface", ["memmap", "zeromq"])
def test_runs_are_forked_by_the_server_and_their_results_are_exact(tmp_path, server_mode, interface):
    with make_runner(tmp_path, "fs_parent", size=8, parallel=2, interface=interface) as runner:
        runner.spawn_array(sum_rows(6), wait=True)
        server = runner._server.process.pid
        assert runner.failed == {}
        assert (runner.interface.output["f"][:6] == server).all()
        assert (runner.interface.internal["STATE"][:6] == RunState.DONE).all()
    assert not alive(server)  # (it ends with its runner)


@pytest.mark.parametrize("interface", ["memmap", "zeromq"])
def test_many_runs_through_the_server_and_the_table_grows(tmp_path, server_mode, interface):
    count = 300
    with make_runner(tmp_path, "fs_sum", size=16, parallel=2, interface=interface) as runner:
        runner.spawn_array(sum_rows(count), wait=True)  # 16 rows at first: the server maps the file again
        assert runner._server is not None and runner.failed == {}
        np.testing.assert_array_equal(runner.interface.output["f"][:count], sum_rows(count)["u"] + 0.5)
        for run_id in range(10):  # one at a time: each waits for its own end
            assert runner.spawn({"u": float(run_id), "v": 1.0}, wait=True) == count + run_id
        np.testing.assert_array_equal(runner.interface.output["f"][count : count + 10], np.arange(10) + 1.0)


def outcomes(tmp_path, monkeypatch, mode, worker, **options):
    """The states and reasons of four runs of ``worker``, with the fork server in ``mode``."""
    monkeypatch.setenv("PROFIT_FORK_SERVER", mode)
    with make_runner(tmp_path / mode / options.get("interface", ""), worker, size=8, parallel=2, **options) as runner:
        runner.spawn_array(sum_rows(4), wait=True)
        assert (runner._server is not None) == (mode == "wait")
        return (
            runner.interface.internal["STATE"][:4].tolist(),
            [reason.decode() for reason in runner.interface.internal["REASON"][:4]],
            runner.interface.output["f"][:4].tolist(),
        )


@pytest.mark.parametrize("interface", ["memmap", "zeromq"])
def test_failures_read_as_they_do_without_the_server(tmp_path, monkeypatch, workers, interface):
    served = outcomes(tmp_path, monkeypatch, "wait", "fs_fails", interface=interface)
    assert served[:2] == outcomes(tmp_path, monkeypatch, "never", "fs_fails", interface=interface)[:2]
    states, reasons, values = served
    assert states == [RunState.DONE] * 2 + [RunState.FAILED] * 2
    assert reasons[2].startswith("ValueError: u=2.0 is too large")
    assert values[:2] == [0.5, 1.5] and np.isnan(values[2:]).all()


def test_a_timeout_kills_the_run_and_reads_as_without_the_server(tmp_path, monkeypatch, workers):
    monkeypatch.setenv("FS_PIDS", str(tmp_path / "pids"))
    served = outcomes(tmp_path, monkeypatch, "wait", "fs_sleeps", timeout=0.5)
    killed = pids_in(tmp_path / "pids", 4)
    assert served[:2] == outcomes(tmp_path, monkeypatch, "never", "fs_sleeps", timeout=0.5)[:2]
    assert served[0] == [RunState.FAILED] * 4 and "0.5" in served[1][0]
    assert not any(alive(pid) for pid in killed)


def test_cancel_ends_a_run_of_the_server(tmp_path, server_mode, monkeypatch):
    pids = tmp_path / "pids"
    monkeypatch.setenv("FS_PIDS", str(pids))
    with make_runner(tmp_path, "fs_sleeps", size=4) as runner:
        run_id = runner.spawn({"u": 1.0, "v": 2.0})
        (pid,) = pids_in(pids, 1)
        status = runner.cancel(run_id)
        assert status.state == RunState.CANCELLED
        assert runner.interface.internal["STATE"][run_id] == RunState.CANCELLED
        wait_for(lambda: not alive(pid), 10, "the cancelled run's process to end")


def test_what_a_run_leaves_running_ends_with_it(tmp_path, server_mode, monkeypatch):
    pids = tmp_path / "pids"
    monkeypatch.setenv("FS_PIDS", str(pids))
    with make_runner(tmp_path, "fs_leaves_a_child", size=4) as runner:
        assert runner.status(runner.spawn({"u": 1.0, "v": 2.0}, wait=True)).state == RunState.DONE
        (child,) = pids_in(pids, 1)
        wait_for(lambda: not alive(child), 10, "the run's child to end")


def test_a_server_that_dies_fails_its_runs_with_the_reason_and_the_runner_forks_on(tmp_path, server_mode, monkeypatch):
    pids = tmp_path / "pids"
    monkeypatch.setenv("FS_PIDS", str(pids))
    monkeypatch.setenv("FS_SLEEP", "60")
    with make_runner(tmp_path, "fs_sleeps", size=8, parallel=2) as runner:
        first = [runner.spawn({"u": float(u), "v": 0.0}) for u in range(2)]
        runs = pids_in(pids, 2)
        server = runner._server.process.pid
        os.kill(server, signal.SIGKILL)
        runner.wait_all(timeout=30)
        for run_id in first:
            status = runner.status(run_id)
            assert status.state == RunState.FAILED
            assert "killed with the runner's fork server, which was killed by SIGKILL" in status.reason, status.reason
        wait_for(lambda: not any(alive(pid) for pid in runs), 10, "the server's runs to end")
        # From now on this runner forks its runs itself.
        monkeypatch.setenv("FS_SLEEP", "0")
        run_id = runner.spawn({"u": 5.0, "v": 1.0}, wait=True)
        assert runner.status(run_id).state == RunState.DONE and runner.interface.output["f"][run_id] == 6.0
        assert runner._server is None


def test_a_run_started_before_the_runner_noticed_its_server_died_is_forked_by_the_runner(
    tmp_path, server_mode, monkeypatch
):
    pids = tmp_path / "pids"
    monkeypatch.setenv("FS_PIDS", str(pids))
    monkeypatch.setenv("FS_SLEEP", "60")
    with make_runner(tmp_path, "fs_sleeps", size=8, parallel=3) as runner:
        first = [runner.spawn({"u": float(u), "v": 0.0}) for u in range(2)]
        runs = pids_in(pids, 2)
        server = runner._server.process
        server.kill()
        wait_for(lambda: not alive(server.pid), 10, "the server to end")
        monkeypatch.setenv("FS_SLEEP", "0")
        late = runner.spawn({"u": 5.0, "v": 1.0})  # (the runner has read nothing of the server's end yet)
        runner.wait_all(timeout=30)
        assert runner.status(late).state == RunState.DONE and runner.interface.output["f"][late] == 6.0
        for run_id in first:
            assert "killed with the runner's fork server, which was killed by SIGKILL" in runner.status(run_id).reason
        wait_for(lambda: not any(alive(pid) for pid in runs), 10, "the server's runs to end")
        assert runner._server is None and runner._retired == []


def test_a_function_held_in_memory_is_forked_by_the_runner(tmp_path, server_mode):
    def parent(u, v):
        return float(os.getppid())

    with make_runner(tmp_path, {"class": parent, "outputs": ["f"]}, size=4) as runner:
        runner.spawn({"u": 1.0, "v": 2.0}, wait=True)
        assert runner._server is None
        assert runner.interface.output["f"][0] == os.getpid()


def test_the_runs_of_a_server_end_when_its_runner_process_dies(tmp_path, workers):
    # A runner in a child process: killed, its server and the server's runs end too.
    pids = tmp_path / "pids"
    ready = tmp_path / "ready"
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        try:
            os.environ.update(PROFIT_FORK_SERVER="wait", FS_PIDS=str(pids))
            runner = make_runner(tmp_path, "fs_sleeps", size=4)
            runner.spawn({"u": 1.0, "v": 2.0})
            ready.write_text(str(runner._server.process.pid))
            time.sleep(60)
        finally:
            os._exit(0)
    try:
        (run,) = pids_in(pids, 1)
        wait_for(ready.exists, 30, "the runner's fork server")
        server = int(ready.read_text())
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    wait_for(lambda: not alive(server) and not alive(run), 10, "the server and its run to end")


def test_an_unknown_mode_is_refused_in_one_sentence(tmp_path, monkeypatch):
    monkeypatch.setenv("PROFIT_FORK_SERVER", "sometimes")
    with pytest.raises(
        ConfigError, match=r"PROFIT_FORK_SERVER='sometimes' is not a mode .* use one of auto, never, wait"
    ):
        make_runner(tmp_path, "fs_sum")


def test_a_run_given_to_a_spare_that_was_killed_runs_in_a_new_fork_with_its_own_pid(tmp_path, server_mode, monkeypatch):
    pids = tmp_path / "pids"
    monkeypatch.setenv("FS_PIDS", str(pids))
    with make_runner(tmp_path, "fs_sleeps", size=4) as runner:
        runner.spawn({"u": 0.0, "v": 0.0})  # (the server has forked its spares by its answer)
        (first,) = pids_in(pids, 1)
        server = runner._server
        wait_for(lambda: server._on_reports() or len(server._spares) > 0, 10, "a spare of the server")
        spares = list(server._spares)
        for spare in spares:
            os.kill(spare, signal.SIGKILL)
        wait_for(lambda: not any(alive(pid) for pid in spares), 10, "the spares to end")
        run_id = runner.spawn({"u": 1.0, "v": 0.0})
        _, second = pids_in(pids, 2)
        assert second not in spares
        deadline = time.monotonic() + 10
        while runner.runs[run_id].pid != second and time.monotonic() < deadline:
            runner.wait_some(timeout=0.1)
        assert runner.runs[run_id].pid == second  # (the run's start corrected what the runner assumed)
        runner.cancel_all()
        assert not alive(first) and not alive(second)


def test_a_server_that_cannot_reach_the_rows_says_why_and_the_runner_forks_its_runs(
    tmp_path, server_mode, monkeypatch, capfd, caplog
):
    from profit.run.zeromq import ZeroMQRunnerInterface

    def nowhere(self):
        return {"path": str(tmp_path / "missing"), "offset": 0, "descr": [("f", "<f8")], "inputs": [], "outputs": []}

    monkeypatch.setattr(ZeroMQRunnerInterface, "shared_rows", nowhere)
    with make_runner(tmp_path, "fs_parent", size=4, interface="zeromq") as runner:
        runner.spawn_array(sum_rows(3), wait=True)
        assert runner.failed == {} and runner._server is None
        assert (runner.interface.output["f"][:3] == os.getpid()).all()  # forked by the runner itself
    err = capfd.readouterr().err
    assert "profit: the fork server cannot reach the interface's rows" in err and "missing" in err
    assert "Traceback" not in err
    assert "the fork server ended at its start; runs are forked from the runner" in caplog.text


def test_the_runs_see_the_environment_and_files_they_see_without_the_server(tmp_path, monkeypatch, workers):
    # A file of the study that is named like a module the server imports must not shadow it.
    for mode in ("wait", "never"):
        (tmp_path / mode / "study").mkdir(parents=True)
        (tmp_path / mode / "study" / "selectors.py").write_text("raise SystemExit('shadowed')\n")
    served = outcomes(tmp_path, monkeypatch, "wait", "fs_environment")
    forked = outcomes(tmp_path, monkeypatch, "never", "fs_environment")
    assert served[0] == [RunState.DONE] * 4, served[1]
    assert served[2] == forked[2]
