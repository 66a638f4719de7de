"""How the local runners learn that a process ended (profit.run.exitwatch), and parent death.

The chooser (``PROFIT_EXIT_WATCH``: its values and the sentence for a wrong one),
every backend available here on real child processes (an ended child stays a zombie
until it is reaped, and what it left in its process group is killed before that),
and the lifeline: a forked worker's process group ends when the process that forked
it is killed, without PR_SET_PDEATHSIG.
"""

import os
import select
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from helpers import SCALAR_INPUTS, alive, outputs, sum_rows, wait_for

from profit.run import Runner, exitwatch
from profit.run._proc import ChildProcess, stop_trees
from profit.run.errors import ConfigError
from profit.run.handles import Notice

AVAILABLE = exitwatch.available()


@pytest.fixture(params=AVAILABLE)
def backend(request, monkeypatch):
    monkeypatch.setenv(exitwatch.ENV, request.param)
    return request.param


# --- the chooser -------------------------------------------------------------------------


def test_unset_or_empty_is_the_best_available(monkeypatch):
    monkeypatch.delenv(exitwatch.ENV, raising=False)
    assert exitwatch.backend() == AVAILABLE[0]
    monkeypatch.setenv(exitwatch.ENV, "")
    assert exitwatch.backend() == AVAILABLE[0]
    assert AVAILABLE[-1] == "poll"
    if sys.platform.startswith("linux") and hasattr(os, "pidfd_open"):
        assert AVAILABLE[0] == "pidfd"


@pytest.mark.parametrize("value", ["pidfd", "kqueue", "poll", " Poll "])
def test_a_named_backend_is_used_where_available(monkeypatch, value):
    monkeypatch.setenv(exitwatch.ENV, value)
    name = value.strip().lower()
    if name in AVAILABLE:
        assert exitwatch.backend() == name
    else:
        with pytest.raises(ConfigError) as error:
            exitwatch.backend()
        assert str(error.value) == (
            f"PROFIT_EXIT_WATCH={value!r} is not available here; choose one of pidfd, kqueue, poll "
            f"(available here: {', '.join(AVAILABLE)}) or leave PROFIT_EXIT_WATCH unset for the best available"
        )


def test_an_unknown_backend_is_one_clear_sentence(monkeypatch):
    monkeypatch.setenv(exitwatch.ENV, "epoll")
    with pytest.raises(ConfigError) as error:
        exitwatch.backend()
    assert str(error.value) == (
        "PROFIT_EXIT_WATCH='epoll' is not a way to watch process exits; choose one of pidfd, kqueue, poll "
        f"(available here: {', '.join(AVAILABLE)}) or leave PROFIT_EXIT_WATCH unset for the best available"
    )


@pytest.mark.parametrize("label", ["fork", "local", "pool"])
def test_a_local_runner_refuses_an_unknown_backend_when_made(tmp_path, monkeypatch, label):
    monkeypatch.setenv(exitwatch.ENV, "sometimes")
    with pytest.raises(ConfigError, match="PROFIT_EXIT_WATCH='sometimes'"):
        Runner[label](
            interface={"class": "memmap", "size": 2, "input_config": SCALAR_INPUTS, "output_config": outputs("f")},
            worker="t_sum",
            work_dir=str(tmp_path),
        )


# --- each backend on real children -------------------------------------------------------


def _zombie(pid):
    """Whether child ``pid`` has ended and is not reaped yet."""
    info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    return info is not None and info.si_pid == pid


def test_a_descriptor_or_polling_tells_the_end_without_reaping(backend):
    process = subprocess.Popen(["sleep", "0.3"], start_new_session=True)
    fd = exitwatch.watch(process.pid)
    try:
        assert (fd is None) == (backend == "poll")
        assert not exitwatch.exited(process.pid)
        if fd is not None:
            assert not exitwatch.wait_readable(fd, 0)
            assert exitwatch.wait_readable(fd, 10), "no exit event"
        else:
            wait_for(lambda: exitwatch.exited(process.pid), what="the child's end")
        assert exitwatch.exited(process.pid)
        assert _zombie(process.pid), "the watch reaped the child"
        os.killpg(process.pid, 0)  # the zombie keeps its process group id reserved
    finally:
        if fd is not None:
            exitwatch.unwatch(fd)
        process.wait()


def test_a_child_process_signals_its_group_before_it_is_reaped(backend):
    # The leader exits at once with code 3, leaving a sleeper in its process group.
    process = subprocess.Popen(
        ["sh", "-c", "sleep 60 & echo $!; exit 3"], start_new_session=True, stdout=subprocess.PIPE
    )
    sleeper = int(process.stdout.readline())
    process.stdout.close()
    child = ChildProcess(process.pid, process)
    try:
        assert child.notice is (Notice.POLL if backend == "poll" else Notice.EVENT)
        assert child.cheap_poll
        status = child.wait(10)
        assert status is not None and status.code == 3
        assert process.returncode == 3  # told to subprocess, which must not reap behind our back
        wait_for(lambda: not alive(sleeper), what="the sleeper left in the group to be killed")
    finally:
        child.close()
        try:
            os.kill(sleeper, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_a_bounded_wait_times_out_while_the_child_runs(backend):
    process = subprocess.Popen(["sleep", "30"], start_new_session=True)
    child = ChildProcess(process.pid, process)
    try:
        started = time.monotonic()
        assert child.wait(0.2) is None
        assert 0.15 < time.monotonic() - started < 5
        assert child.poll() is None and not child.exited()
        assert stop_trees([child], grace=0.0)[0].signal == signal.SIGKILL
    finally:
        child.close()


def test_a_process_that_is_gone_cannot_be_watched_as_a_stranger(backend):
    process = subprocess.Popen(["true"])
    process.wait()  # reaped: the pid names nothing now (or, rarely, somebody else)
    if backend == "poll":
        assert exitwatch.watch(process.pid, child=False) is None
    else:
        with pytest.raises(ProcessLookupError):
            exitwatch.watch(process.pid, child=False)


@pytest.mark.parametrize("label", ["fork", "local", "pool"])
def test_runners_work_with_each_backend(tmp_path, backend, label):
    runner = Runner[label](
        interface={"class": "memmap", "size": 6, "input_config": SCALAR_INPUTS, "output_config": outputs("f")},
        worker="t_sum",
        work_dir=str(tmp_path),
        parallel=2,
    )
    with runner:
        started = time.monotonic()
        runner.spawn_array(sum_rows(6), wait=True)
        assert runner.failed == {}
        assert runner.output_data["f"].ravel().tolist() == [u + 0.5 for u in range(6)]
        assert time.monotonic() - started < 30


# --- parent death: the lifeline ------------------------------------------------------------

# A runner-like process: forks a worker with fork_group (PR_SET_PDEATHSIG switched off: the
# lifeline alone), the worker starts a sleeper in its group and one in a session of its own.
_PARENT = textwrap.dedent(
    """\
    import os, subprocess, sys, time
    from profit.run import _proc
    _proc._prctl = False  # no PR_SET_PDEATHSIG
    assert _proc.die_with_parent(os.getppid())
    told = int(sys.argv[1])

    def worker(parent_pid):
        _proc.become_subreaper()
        in_group = subprocess.Popen(["sleep", "60"])
        away = subprocess.Popen(["sleep", "60"], start_new_session=True)
        os.write(told, f"{os.getpid()} {in_group.pid} {away.pid}\\n".encode())
        time.sleep(60)
        return 0

    _proc.fork_group(worker)
    time.sleep(60)
    """
)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="forks")
def test_a_forked_workers_group_ends_when_its_parent_is_killed(tmp_path):
    read_end, write_end = os.pipe()
    parent = subprocess.Popen([sys.executable, "-c", _PARENT, str(write_end)], pass_fds=[write_end])
    os.close(write_end)
    pids = []
    try:
        assert select.select([read_end], [], [], 30)[0], "the worker did not start"
        pids = [int(word) for word in os.read(read_end, 200).split()]
        assert all(alive(pid) for pid in pids)
        parent.kill()
        parent.wait()
        wait_for(lambda: not any(alive(pid) for pid in pids), timeout=10, what="the worker and its processes to end")
    finally:
        os.close(read_end)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def test_a_forked_worker_holds_no_write_end_of_the_lifeline(tmp_path):
    from profit.run import _proc

    _proc.lifeline()
    owner, read_end, write_end = _proc._lifeline
    told, hear = os.pipe()

    def worker(parent_pid):
        try:
            os.fstat(write_end)
            answer = b"open"
        except OSError:
            answer = b"closed"
        os.write(hear, answer)
        return 0

    child = ChildProcess(_proc.fork_group(worker))
    os.close(hear)
    assert child.wait(10).code == 0
    child.close()
    assert os.read(told, 10) == b"closed"
    os.close(told)
    assert owner == os.getpid()


# --- processes read without /proc (macOS, the BSDs): psutil, where installed ----------------------


@pytest.mark.parametrize("reader", ["proc", "psutil"])
def test_processes_are_found_with_and_without_proc(tmp_path, monkeypatch, reader):
    from profit.run import _proc

    if reader == "psutil":
        pytest.importorskip("psutil")
        monkeypatch.setattr(_proc, "_has_proc", False)
    elif not _proc.has_proc():
        pytest.skip("no /proc here")
    env = {**os.environ, _proc.MARK: _proc.work_dir_mark(str(tmp_path)), "PROFIT_RUN_ID": "7"}
    process = subprocess.Popen(["sleep", "30"], start_new_session=True, env=env)
    try:
        wait_for(lambda: _proc.environment_of(process.pid) is not None, what="the child's exec")
        assert _proc.environment_of(process.pid)[b"PROFIT_RUN_ID"] == b"7"
        assert process.pid in _proc.children(os.getpid())
        assert process.pid in _proc.descendants(os.getpid())
        assert _proc.group_members(process.pid) == [process.pid]
        assert _proc.marked_processes(str(tmp_path)) == [process.pid]
    finally:
        process.kill()
        process.wait()
    assert _proc.group_members(process.pid) == []
    assert _proc.marked_processes(str(tmp_path)) == []


@pytest.mark.skipif(not exitwatch.pidfd_available(), reason="no pidfds here")
def test_processes_to_end_are_pinned_by_a_pidfd_whichever_backend_watches(monkeypatch):
    """Pinning is not watching: with PROFIT_EXIT_WATCH=poll, a process to end is still held by a pidfd,
    so that a pid reused during the grace time is never signalled."""
    from profit.run._proc import _Processes

    monkeypatch.setenv(exitwatch.ENV, "poll")
    child = subprocess.Popen(["sleep", "30"])
    held = _Processes()
    held.add([child.pid])
    assert held.held[child.pid] is not None  # a descriptor, not the bare pid
    held.end(timeout=5)
    assert not alive(child.pid)  # (ended, and reaped by end())
