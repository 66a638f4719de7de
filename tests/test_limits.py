"""Resource limits: strangers on the zeromq port, a process out of file descriptors, a closed pool.

A runner must keep working when what it needs is scarce: a descriptor it cannot
open is replaced by polling, and strangers on its port cannot hold descriptors
for long.
"""

import errno
import json
import os
import select
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from helpers import SCALAR_INPUTS, TESTS, alive, outputs, sum_rows

from profit.run import Runner, RunState, Worker
from profit.run.errors import ConfigError

# A study process whose descriptors are few: it prints its endpoint, waits until the test
# has occupied its port, then runs 20 runs and prints their states and outputs.
_STARVED_STUDY = textwrap.dedent(
    """\
    import json, resource, sys
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
    import numpy as np
    from profit.run import Runner
    from profit.run.includes import load_includes
    load_includes([{workers!r}])
    runner = Runner["fork"](
        interface={{"class": "zeromq", "size": 20, "bind": "tcp://127.0.0.1:*",
                    "input_config": {{"u": {{"dtype": "float64"}}, "v": {{"dtype": "float64"}}}},
                    "output_config": {{"f": {{"dtype": "float64", "size": [1, 1]}}}}}},
        worker="t_sum", work_dir="study", parallel=4,
    )
    print(runner.interface.endpoint, flush=True)
    sys.stdin.readline()  # the test has opened its connections
    rows = np.zeros(20, dtype=[("u", "f8"), ("v", "f8")])
    rows["u"], rows["v"] = np.arange(20), 0.5
    runner.spawn_array(rows, wait=True)
    print(json.dumps([[runner.status(i).state.name, runner.status(i).reason,
                       float(runner.interface.output["f"][i].ravel()[0])] for i in range(20)]), flush=True)
    runner.close()
    """
)


@pytest.mark.exclusive
@pytest.mark.timeout(180)
def test_strangers_holding_connections_do_not_end_a_study_short_of_descriptors(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-c", _STARVED_STUDY.format(workers=str(TESTS / "workers.py"))],
        cwd=tmp_path,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    strangers = []
    try:
        endpoint = process.stdout.readline().strip()
        assert endpoint.startswith("tcp://127.0.0.1:"), process.communicate(timeout=30)
        port = int(endpoint.rsplit(":", 1)[1])
        for _ in range(300):  # more than the study's whole descriptor table
            try:
                strangers.append(socket.create_connection(("127.0.0.1", port), timeout=0.5))
            except OSError:
                pass  # its backlog is full: that stranger waits in the kernel
        assert len(strangers) >= 200
        process.stdin.write("go\n")
        process.stdin.flush()
        out, err = process.communicate(timeout=150)
    finally:
        for stranger in strangers:
            stranger.close()
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    results = json.loads(out.splitlines()[-1])
    assert [state for state, _, _ in results] == ["DONE"] * 20, results
    assert [value for _, _, value in results] == [u + 0.5 for u in range(20)]


def _no_pidfd(pid):
    raise OSError(errno.EMFILE, "Too many open files")


def test_a_child_without_a_pidfd_is_polled(tmp_path, monkeypatch):
    monkeypatch.setattr("profit.run._proc.os.pidfd_open", _no_pidfd)
    runner = Runner["fork"](
        interface={"class": "memmap", "size": 4, "input_config": SCALAR_INPUTS, "output_config": outputs("f")},
        worker="t_sum",
        work_dir=str(tmp_path),
        parallel=3,
    )
    with runner:
        runner.spawn_array(sum_rows(10), wait=True)
        assert runner.failed == {}
        assert runner.output_data["f"].ravel().tolist() == [u + 0.5 for u in range(10)]


def test_a_child_without_a_pidfd_gets_its_grace_time(tmp_path, monkeypatch):
    monkeypatch.setattr("profit.run._proc.os.pidfd_open", _no_pidfd)
    from profit.run._proc import ChildProcess, fork_group

    ready, told = os.pipe()

    def child(parent_pid):
        import signal
        import time

        signal.signal(signal.SIGTERM, lambda *_: os._exit(7))  # ends on SIGTERM with its own code
        os.write(told, b"!")  # (its handler is in place)
        time.sleep(30)
        return 0

    process = ChildProcess(fork_group(child))
    os.close(told)
    assert process.fileno() is None
    assert select.select([ready], [], [], 30)[0] and os.read(ready, 1) == b"!", "the child did not start"
    os.close(ready)
    from profit.run._proc import stop_trees

    assert stop_trees([process], grace=5.0)[0].code == 7  # not killed at once: SIGTERM was waited for
    assert not alive(process.pid)


@pytest.mark.parametrize("interface", ["memmap", "zeromq"])
def test_a_pool_without_pidfds_notices_its_workers_dying(tmp_path, monkeypatch, interface):
    if interface == "zeromq":
        pytest.importorskip("zmq")
    monkeypatch.setattr("profit.run._proc.os.pidfd_open", _no_pidfd)
    runner = Runner["pool"](
        interface={"class": interface, "size": 3, "input_config": SCALAR_INPUTS, "output_config": outputs("f")},
        worker="t_sigkill",
        work_dir=str(tmp_path),
        parallel=1,
    )
    with runner:
        runner.spawn_array(sum_rows(3), wait=True)
        assert all(runner.status(i).reason.endswith("killed by SIGKILL") for i in range(3)), runner.failed


# --- a closed pool --------------------------------------------------------------------------


@pytest.mark.parametrize("label", ["pool", "fork"])
def test_close_releases_the_interface_and_refuses_new_runs(tmp_path, label):
    pytest.importorskip("zmq")
    import zmq

    runner = Runner[label](
        interface={"class": "zeromq", "size": 2, "input_config": SCALAR_INPUTS, "output_config": outputs("f")},
        worker="t_sum",
        work_dir=str(tmp_path),
        parallel=1,
    )
    assert runner.spawn({"u": 1.0, "v": 2.0}, wait=True) == 0
    keyfile = runner.interface.keyfile
    assert os.path.exists(keyfile)
    runner.close()
    assert runner.interface._socket.closed
    assert not os.path.exists(keyfile)
    # Nobody listens on the port any more: a peer's message is never answered.
    peer = zmq.Context.instance().socket(zmq.DEALER)
    peer.setsockopt(zmq.LINGER, 0)
    try:
        peer.connect(runner.interface.endpoint)
        peer.send(b"hello")
        assert not peer.poll(200)
    finally:
        peer.close()
    children = set(_children())
    with pytest.raises(ConfigError, match=r"^spawn: the runner is closed"):
        runner.spawn({"u": 1.0, "v": 2.0})
    assert set(_children()) <= children  # nothing started: no process left, no zombie
    runner.close()  # closing again changes nothing


def _children():
    """The pids of this process's children (live or zombie)."""
    own = os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as file:
                    fields = file.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == own:
                found.append(int(entry))
    return found


def test_arrays_of_a_closed_runner_stay_readable(tmp_path):
    runner = Runner["pool"](
        interface={"class": "memmap", "size": 2, "input_config": SCALAR_INPUTS, "output_config": outputs("f")},
        worker="t_sum",
        work_dir=str(tmp_path),
        parallel=1,
    )
    runner.spawn_array(sum_rows(2), wait=True)
    runner.close()
    assert np.array_equal(runner.output_data["f"].ravel(), [0.5, 1.5])
    assert runner.status(1).state is RunState.DONE


# --- what a run leaves in its pool worker ----------------------------------------------------------


def _closes_stdout():
    sys.stdout.flush()
    os.close(1)


def _closes_stdout_stream():
    sys.stdout.close()
    os.close(1)


def _closes_stdin_and_exits():
    sys.stdin.close()
    os.close(0)
    sys.exit(3)


# label: the damage a run with u < 0 does (then returns u and 0); other runs print, write
# ``written-<u>`` (a relative path) and return u + v and the inode of their standard output.
DAMAGE = {
    "t_closes_stdout": _closes_stdout,
    "t_changes_directory": lambda: os.chdir(".."),
    "t_closes_stdout_stream": _closes_stdout_stream,
    "t_closes_stdin_and_exits": _closes_stdin_and_exits,
}


def _damaging_worker(label):
    damage = DAMAGE[label]

    @Worker.wrap(label, ["f", "g"])
    def damaging(u, v):
        if u < 0:
            damage()
            return u, 0.0
        return _behave(u, v)


for _label in DAMAGE:
    _damaging_worker(_label)


def _behave(u, v):
    print(f"run with u={u:g} prints", flush=True)
    with open(f"written-{u:g}", "w") as file:
        file.write("written")
    return u + v, float(os.fstat(1).st_ino)


@pytest.mark.parametrize("worker", sorted(DAMAGE))
def test_a_run_leaves_no_damage_in_its_pool_worker(tmp_path, capfd, worker):
    """Run 1 does damage (u < 0) between two runs that do not; the same pool worker runs all three."""
    runner = Runner["pool"](
        interface={"class": "memmap", "size": 3, "input_config": SCALAR_INPUTS, "output_config": outputs("f", "g")},
        worker=worker,
        work_dir=str(tmp_path / "study"),
        parallel=1,
    )
    with runner:
        runner.spawn({"u": 1.0, "v": 0.0}, wait=True)
        pid = runner._workers[0].process.pid
        runner.spawn({"u": -1.0, "v": 0.0}, wait=True)
        runner.spawn({"u": 2.0, "v": 0.5}, wait=True)
        assert [worker.process.pid for worker in runner._workers] == [pid]  # the same worker process ran all
    states = [runner.status(run_id) for run_id in range(3)]
    assert [status.state for status in states[::2]] == [RunState.DONE] * 2, [status.reason for status in states]
    if worker == "t_closes_stdin_and_exits":  # (the run's own exit code, not the pool worker's end)
        assert (states[1].state, states[1].reason) == (RunState.FAILED, "worker exited with code 3")
    else:
        assert states[1].state is RunState.DONE, states[1].reason
        assert runner.interface.output["f"][1] == -1.0
    assert runner.interface.output["f"][2] == 2.5
    assert runner.interface.output["g"][2] == os.fstat(1).st_ino  # its output went where the runner's goes
    assert (tmp_path / "study" / "written-2").read_text() == "written"
    assert not (tmp_path / "written-2").exists()
    assert "run with u=2 prints" in capfd.readouterr().out


@pytest.mark.parametrize("by_descriptor", [True, False])
def test_a_pool_worker_goes_back_to_its_directory(tmp_path, monkeypatch, by_descriptor):
    """After a run that changed directory, by a descriptor of the directory (or, where the
    system refuses one, by its path)."""
    from profit.run.pool import _Surroundings

    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    home.mkdir()
    elsewhere.mkdir()
    monkeypatch.chdir(home)

    def refuse(*args, **kwargs):
        raise PermissionError("no descriptor here")

    with monkeypatch.context() as patch:
        if not by_descriptor:
            patch.setattr(os, "open", refuse)
        surroundings = _Surroundings()
    assert isinstance(surroundings.directory, int) is by_descriptor
    os.chdir(elsewhere)
    surroundings.restore()
    assert os.getcwd() == str(home)
    surroundings.restore()  # (nothing changed: stays)
    assert os.getcwd() == str(home)
