"""Runs forked from a prepared process: one process serves many runs, each in a child of its own.

Where one long-lived process starts run after run (the task loop of a packed
Slurm job, :mod:`profit.run.packed`; the run server of a Dask worker, below), it
imports the worker's machinery and the study's include files once
(:func:`prepare`) and forks a child per run (:func:`start_run`). The child does
what ``profit-worker`` with ``PROFIT_RUN_ID`` does (same environment, exit codes
and log file) without an interpreter start and imports per run: a few
milliseconds instead of tens. Each run leads its own process group (a timeout or
a cancel ends the whole group) and dies with the process that forked it.

The run server (``python -m profit.run.runfork REQUESTS REPLIES``) is that
process for a Dask worker: it reads one JSON request per line from the file
descriptor ``REQUESTS`` -- ``{"start": key, "run": run_id, "timeout": seconds or
null}`` or ``{"stop": key, "grace": seconds}`` -- and writes ``{"key": key,
"returncode": n, "timed_out": bool}`` (negative: the signal) to ``REPLIES`` when
a run ended. A run's timeout counts from its fork (not from when its task was
queued); when it is up, the run's process group is killed. When ``REQUESTS`` closes (its Dask
worker ended, however it did) it kills every run's process group and exits.
"""

from __future__ import annotations

import json
import os
import signal
import sys

from ._proc import ChildProcess, die_with_parent, fork_group

TYPE_CHECKING = False  # (typing costs every worker process its import)
if TYPE_CHECKING:
    from collections.abc import Mapping


def prepare(env: Mapping[str, str]) -> None:
    """Import, once, what every run of this environment needs: the worker's and the interface's
    classes and the study's include files (``PROFIT_INCLUDES``).

    A configuration that does not load is left for the runs: each then fails with its
    reason, as a ``profit-worker`` process would.

    Args:
        env: The runs' environment.
    """
    from .interface import WorkerInterface
    from .worker import Worker

    try:
        if env.get("PROFIT_INCLUDES"):
            from .includes import env_includes, load_includes

            load_includes(env_includes(env))
        for kind, name in ((Worker, "PROFIT_WORKER"), (WorkerInterface, "PROFIT_INTERFACE")):
            config = json.loads(env.get(name) or "{}")
            label = config.get("class") if isinstance(config, dict) else config
            if isinstance(label, str):
                kind[label]  # (imports the module that registers it)
    except Exception:  # (told by each run, with the worker's own words)
        pass


def start_run(run_id: int, env: Mapping[str, str], *, close_fds: tuple[int, ...] = ()) -> ChildProcess:
    """Fork a child that runs ``run_id`` as ``profit-worker`` would with this environment.

    The child leads its own process group, dies with this process, reads no stdin
    and takes SIGINT and SIGTERM as a program does.

    Args:
        run_id: The run.
        env: The run's environment.
        close_fds: Closed in the child (the server's own pipes).
    """

    def child(parent_pid: int) -> int:
        for fd in close_fds:
            os.close(fd)
        if not die_with_parent(parent_pid):
            return 1
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        os.environ.clear()
        os.environ.update(env)
        os.environ.pop("PROFIT_ARRAY_ID", None)
        os.environ["PROFIT_RUN_ID"] = str(run_id)
        from .worker import RunLog, Worker, _json_env, execute

        try:
            options = _json_env(os.environ, "PROFIT_WORKER")
        except Exception:
            options = {}
        options = options if isinstance(options, dict) else {}
        log = RunLog(options.get("log_path", "log"), run_id, bool(options.get("debug", False)))
        return execute(lambda: Worker.from_env(os.environ), log)

    return ChildProcess(fork_group(child))


def stop_group(process: ChildProcess, grace: float) -> None:
    """Ask the run's process group to end (SIGTERM; SIGKILL at once when ``grace`` is 0).

    Args:
        process: The run's process.
        grace: Seconds between SIGTERM and SIGKILL (0: SIGKILL at once).
    """
    process.signal_tree(signal.SIGTERM if grace > 0 else signal.SIGKILL)


# --- the run server of a Dask worker -------------------------------------------------------


def serve(requests: int, replies: int) -> None:
    """Serve runs for one Dask worker until ``requests`` closes (see the module's docstring).

    Args:
        requests: The descriptor the requests arrive on.
        replies: The descriptor the replies go to.
    """
    import selectors
    import time

    prepare(os.environ)
    env = dict(os.environ)
    selector = selectors.DefaultSelector()
    selector.register(requests, selectors.EVENT_READ, None)
    runs: dict[str, ChildProcess] = {}
    kill_at: dict[str, float] = {}  # key -> when a run asked to stop (or out of time) is killed
    timed_out: set[str] = set()
    stopping: set[str] = set()  # runs asked to stop (their kill is not a timeout)
    polled: set[str] = set()  # runs without an exit watch descriptor: checked every few milliseconds
    buffer = b""

    def reply(key: str, process: ChildProcess) -> None:
        status = process.poll()
        assert status is not None
        code = -status.signal if status.signal is not None else status.code
        message = {"key": key, "returncode": code, "timed_out": key in timed_out}
        os.write(replies, (json.dumps(message) + "\n").encode())

    def finish(key: str) -> None:
        process = runs.pop(key)
        fd = process.fileno()
        if fd is not None:
            selector.unregister(fd)
        reply(key, process)
        process.close()
        kill_at.pop(key, None)
        polled.discard(key)
        timed_out.discard(key)
        stopping.discard(key)

    while True:
        now = time.monotonic()
        timeout = min([*kill_at.values(), now + (0.005 if polled else 3600)]) - now
        for selected, _ in selector.select(max(0.0, timeout)):
            if selected.data is not None:  # a run's exit watch descriptor: it ended
                finish(selected.data)
                continue
            chunk = os.read(requests, 65536)
            if not chunk:  # the Dask worker is gone: so are its runs
                for process in runs.values():
                    process.signal_tree(signal.SIGKILL)
                    process.poll()
                return
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                request = json.loads(line)
                if "start" in request and request["start"] in runs:  # (its task waits already: not twice)
                    print(f"profit.run.runfork: run key {request['start']!r} is running already", file=sys.stderr)
                elif "start" in request:
                    process = start_run(int(request["run"]), env, close_fds=(requests, replies))
                    runs[request["start"]] = process
                    if request.get("timeout") is not None:  # (killed at once then, as runners do)
                        kill_at[request["start"]] = time.monotonic() + float(request["timeout"])
                    fd = process.fileno()
                    if fd is not None:
                        selector.register(fd, selectors.EVENT_READ, request["start"])
                    else:
                        polled.add(request["start"])
                elif request.get("stop") in runs:
                    grace = float(request.get("grace", 0))
                    stop_group(runs[request["stop"]], grace)
                    stopping.add(request["stop"])
                    kill_at[request["stop"]] = time.monotonic() + grace
        now = time.monotonic()
        for key in [key for key, when in kill_at.items() if when <= now and key in runs]:
            if key not in stopping and not runs[key].exited():
                timed_out.add(key)
            runs[key].signal_tree(signal.SIGKILL)
            kill_at.pop(key)
        for key in [key for key in polled if runs[key].exited()]:
            finish(key)


if __name__ == "__main__":
    serve(int(sys.argv[1]), int(sys.argv[2]))
