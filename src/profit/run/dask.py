"""DaskRunner (label ``dask``): each run's Worker as a process started by a Dask task.

The runner submits one task per run to a ``dask.distributed`` cluster: an
existing one (``scheduler: "tcp://host:port"``), one it builds from a cluster
class (``cluster: {class: "dask_jobqueue.SLURMCluster", ..., scale: N}`` or
``adapt: {minimum: 0, maximum: 10}``), or by default the scheduler of Dask's
config (``scheduler-address``, e.g. from ``DASK_SCHEDULER_ADDRESS``) if it names
one, else a ``LocalCluster`` of ``parallel`` single-threaded worker processes. The task hands the
run to its Dask worker's run server (:mod:`profit.run.runfork`, one per Dask worker process and
runner, started on first use): a process that imported the worker's machinery and the study's
include files once and forks the run from itself, in a process group of its own with the runner's
worker environment and ``PROFIT_RUN_ID``, as ``profit-worker`` would run it; the task waits for
it and returns its exit status. The run is isolated from the Dask worker, and its process group
dies with it (the server ends every run when its Dask worker's end of a pipe closes)::

    runner --submit--> scheduler --> Dask worker: task --> run server --fork--> run --> interface row
    runner <--done callback: a byte on a pipe-- client <--exit code--'

A cancel reaches the Dask workers at once (``Client.run``): a run there has its process group
ended by its server (SIGTERM, SIGKILL after the grace time), and a task queued there skips its
run; a task still at the scheduler is cancelled. (A ``distributed.Event`` per run, which a task
checks while its run lasts, backs this up for a worker the call does not reach.) A run's timeout
is kept by its server, from the run's start. The Dask worker lives on. A lost Dask worker
(``KilledWorker``, a closed connection) fails the run with a reason naming it
(``retries`` run it again). The interface must reach the Dask workers: memmap
where they share the work directory's file system (a LocalCluster does), zeromq
where they reach the runner's address. Dask is imported only when the runner is
built (install the extra ``dask``: ``pip install profit-run[dask]``).
"""

from __future__ import annotations

import collections
import os
import threading
import uuid

from . import options as check
from ._proc import MARK, ExitStatus, work_dir_mark
from .errors import ConfigError
from .handles import Notice, RunHandle
from .layout import begin_run_log
from .runner import Runner
from .state import RunState, RunStatus

TYPE_CHECKING = False  # (typing costs every worker process its import)
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

# What a run's task returns when the run's timeout ended it, and when the run was stopped before it started.
TIMED_OUT = "timed out"
STOPPED = "stopped"
# Seconds the runner waits, beyond the grace time, for the task of a stopped run to report.
_STOP_WAIT = 5.0
# How often a run's task asks the scheduler whether the run is to be stopped.
_WATCH_INTERVAL = 0.25


class DaskEnding:
    """A run whose Dask task did not report an exit status: its worker was lost, or the task failed.

    ``text`` is a predicate, as the reason reads it: 'worker was lost with its Dask worker (...)'.

    Args:
        text: The predicate, as the reason reads it.
    """

    __slots__ = ("text",)

    success = False

    def __init__(self, text: str):
        self.text = text

    def describe(self, *, through_shell: bool = False) -> str:
        """The predicate this ending was made with (``through_shell`` changes nothing).

        Args:
            through_shell: Changes nothing.
        """
        return self.text

    def __repr__(self) -> str:
        return f"DaskEnding({self.text!r})"


class DaskTimedOut(DaskEnding):
    """A run whose timeout was up (counted by its run server from the moment the run started)."""

    __slots__ = ()


class _DaskRun(RunHandle):
    """A run submitted as a Dask task; its end arrives through the future's done callback."""

    notice = Notice.NOTIFIED
    clock_at_launch = False  # a task may wait in Dask's queue: its run server keeps the time
    __slots__ = ("run_id", "future", "stop_name", "kill_name")

    def __init__(self, run_id: int, future: Any, key: str):
        self.run_id = run_id
        self.future = future
        self.stop_name = f"{key}-stop"
        self.kill_name = f"{key}-kill"

    def poll(self) -> ExitStatus | DaskEnding | None:
        return _ending(self.future) if self.future.done() else None

    def exited(self) -> bool:
        return bool(self.future.done())


def _ending(future: Any) -> ExitStatus | DaskEnding:
    """How the run of a finished future ended."""
    status = future.status
    if status == "finished":
        try:
            code = future.result()
        except Exception as unfetched:  # (the result could not be fetched: its worker went away)
            return DaskEnding(f"ended, but its Dask task's result was lost ({type(unfetched).__name__}: {unfetched})")
        if code == TIMED_OUT:
            return DaskTimedOut("timed out")
        if code == STOPPED:
            return DaskEnding("was stopped before it started")
        return ExitStatus.from_returncode(code)
    if status == "cancelled":
        return DaskEnding("was dropped by Dask (its task was cancelled by the scheduler or a client)")
    error: BaseException | None
    try:
        error = future.exception()
    except Exception as lost:  # (the exception could not be fetched either)
        error = lost
    name = type(error).__name__
    if name in ("KilledWorker", "CommClosedError", "WorkerLost", "FutureCancelledError") or isinstance(
        error, (OSError, EOFError)
    ):
        return DaskEnding(f"was lost with its Dask worker ({name}: {error})")
    return DaskEnding(f"failed in its Dask task ({name}: {error})")


class _RunServer:
    """This Dask worker process's run server for one runner (:mod:`profit.run.runfork`): a process that
    imported the worker's machinery and the study's include files once and forks each run from itself.

    Tasks (threads of the Dask worker) ask it to start and stop runs through a pipe; a reader thread hands
    each run's return code to the task that waits for it. When the Dask worker dies, the server reads the
    end of that pipe and kills every run's process group (a task that runs again elsewhere must not find
    an earlier attempt still at work).
    """

    def __init__(self, environment: Mapping[str, str], cwd: str):
        import subprocess
        import sys

        env = {**os.environ, **environment}
        env.pop("PROFIT_RUN_ID", None)
        env.pop("PROFIT_ARRAY_ID", None)
        request_read, self._requests = os.pipe()
        reply_read, reply_write = os.pipe()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "profit.run.runfork", str(request_read), str(reply_write)],
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                pass_fds=(request_read, reply_write),
                start_new_session=True,
            )
        except BaseException:
            os.close(self._requests)
            os.close(reply_read)
            raise
        finally:
            os.close(request_read)
            os.close(reply_write)
        self._lock = threading.Lock()
        self._waiting: dict[str, threading.Event] = {}
        self._codes: dict[str, tuple[int, bool]] = {}
        self.alive = True
        threading.Thread(target=self._read, args=(reply_read,), daemon=True, name="profit-run-server").start()

    def _read(self, fd: int) -> None:
        import json

        with open(fd, "rb") as replies:
            for line in replies:
                reply = json.loads(line)
                with self._lock:
                    self._codes[reply["key"]] = (int(reply["returncode"]), bool(reply.get("timed_out")))
                    waiter = self._waiting.pop(reply["key"], None)
                if waiter is not None:
                    waiter.set()
        self.process.wait()  # (its exit status, for the reason of the runs that wait)
        with self._lock:  # the server ended: nobody will answer the runs that wait
            self.alive = False
            waiting, self._waiting = list(self._waiting.values()), {}
        for waiter in waiting:
            waiter.set()

    def _send(self, request: dict) -> None:
        import json

        os.write(self._requests, (json.dumps(request) + "\n").encode())  # (one write under PIPE_BUF: whole)

    def start(self, key: str, run_id: int, timeout: float | None) -> threading.Event:
        """Start the run (killed after ``timeout`` seconds); the returned ``threading.Event`` is set when
        it ended (or the server did)."""
        waiter = threading.Event()
        with self._lock:
            if not self.alive:
                raise RuntimeError("the run server of its Dask worker ended")
            if key in self._waiting:
                raise RuntimeError(f"run key {key!r} is running on this Dask worker already")
            self._waiting[key] = waiter
            self._send({"start": key, "run": run_id, "timeout": timeout})
        return waiter

    def stop(self, key: str, grace: float) -> None:
        """End the run's process group: SIGTERM, SIGKILL after ``grace`` seconds (at once for 0)."""
        with self._lock:
            if self.alive:
                self._send({"stop": key, "grace": grace})

    def returncode(self, key: str) -> tuple[int, bool]:
        """The run's return code once its Event was set (negative: the signal that ended it), and
        whether its timeout ended it."""
        with self._lock:
            if key not in self._codes:
                raise RuntimeError(f"the run server of its Dask worker ended (exit status {self.process.poll()})")
            return self._codes.pop(key)

    def idle(self) -> bool:
        """Whether no run of it is waiting for its end."""
        with self._lock:
            return not self._waiting

    def holds(self, key: str) -> bool:
        """Whether the run ``key`` is running here."""
        with self._lock:
            return key in self._waiting

    def close(self) -> None:
        """Let the server go (it ends when its request pipe closes); closing again does nothing."""
        with self._lock:
            self.alive = False
            if self._requests >= 0:
                os.close(self._requests)
                self._requests = -1


# This Dask worker process's run servers, by the runner environment and work directory they serve.
_servers: dict[tuple, _RunServer] = {}
_servers_lock = threading.Lock()
_MAX_IDLE_SERVERS = 4


# Runs told to stop before their task started here (run key -> grace seconds), for the task to skip them.
_stopped: dict[str, float] = {}
_MAX_STOPPED = 100_000


def _server_for(environment: Mapping[str, str], cwd: str) -> _RunServer:
    """The run server for this environment (started on first use; idle ones beyond a few let go).
    The caller holds ``_servers_lock`` until its run started, so that no other task lets it go."""
    identity = (cwd, tuple(sorted(environment.items())))
    server = _servers.get(identity)
    if server is None or not server.alive:
        if server is not None:
            _servers.pop(identity).close()
        idle = [name for name, other in _servers.items() if other.idle() or not other.alive]
        for name in idle[: max(0, len(idle) - _MAX_IDLE_SERVERS + 1)]:
            _servers.pop(name).close()
        server = _servers[identity] = _RunServer(environment, cwd)
    return server


def note_stopped(stops: Mapping[str, float]) -> None:
    """Run on each Dask worker when runs are stopped: end those running here (SIGTERM, SIGKILL after
    their grace seconds), and note the others, so that a task of theirs that starts later skips its run.

    Args:
        stops: The stopped runs: the key of each -> its grace seconds.
    """
    with _servers_lock:
        for key, grace in stops.items():
            holder = next((server for server in _servers.values() if server.holds(key)), None)
            if holder is not None:
                holder.stop(key, grace)
            else:
                if len(_stopped) >= _MAX_STOPPED:  # (stops of tasks that never came here)
                    _stopped.pop(next(iter(_stopped)))
                _stopped[key] = grace


def close_run_servers(cwd: str) -> int:
    """Run on each Dask worker when a runner closes: let its run servers go; how many there were.

    Args:
        cwd: The runner's work directory.

    Returns:
        How many run servers there were.
    """
    with _servers_lock:
        leaving = [identity for identity in _servers if identity[0] == cwd]
        for identity in leaving:
            _servers.pop(identity).close()
    return len(leaving)


def run_in_dask_worker(
    run_id: int,
    environment: dict[str, str],
    cwd: str,
    stop_name: str,
    kill_name: str,
    grace: float,
    timeout: float | None = None,
) -> int | str:
    """The Dask task of a run: have this Dask worker's run server fork the run, wait for it and return
    its return code (negative: the signal that killed it), or :data:`TIMED_OUT` when its ``timeout``
    (seconds from its start) was up. The run's Events stop it: ``stop_name`` ends its process group
    (SIGTERM, then SIGKILL after ``grace`` seconds; at once if ``kill_name`` is set).

    Args:
        run_id: The run.
        environment: The run's environment.
        cwd: The runner's work directory.
        stop_name: The name of the Event that stops the run.
        kill_name: The name of the Event that kills it at once.
        grace: Seconds between SIGTERM and SIGKILL.
        timeout: Seconds from its start the run may take (None: no bound).

    Returns:
        The run's return code, or :data:`TIMED_OUT`.
    """
    key = stop_name
    with _servers_lock:
        if _stopped.pop(key, None) is not None:
            return STOPPED
        server = _server_for(environment, cwd)
        ended = server.start(key, run_id, timeout)
    if not ended.wait(_WATCH_INTERVAL):  # (a short run ends before the scheduler is ever asked)
        _watch(server, key, ended, stop_name, kill_name, grace)
    code, timed_out = server.returncode(key)
    return TIMED_OUT if timed_out else code


def _watch(server: _RunServer, key: str, ended: threading.Event, stop_name: str, kill_name: str, grace: float) -> None:
    """Wait until the run ended; end its process group when the run's Events say so."""
    from distributed import Event, get_client

    client = get_client()
    stop, kill = Event(stop_name, client=client), Event(kill_name, client=client)
    while not ended.wait(_WATCH_INTERVAL):
        try:
            if not stop.is_set():
                continue
            now = kill.is_set()
        except Exception:  # (the scheduler does not answer: the run goes on)
            continue
        server.stop(key, 0.0 if now else grace)
        ended.wait()  # (the server kills the group when the grace time is up)
        for event in (stop, kill):
            try:
                event.clear()  # (forgotten by the scheduler)
            except Exception:
                pass


def _import_class(path: str) -> type:
    import importlib

    module_name, _, name = path.rpartition(".")
    if not module_name:
        raise ConfigError(f"dask runner: cluster class {path!r} is not an import path (module.Class)")
    try:
        return getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as error:
        raise ConfigError(f"dask runner: cannot import the cluster class {path!r} ({error})") from None


class DaskRunner(Runner, label="dask"):
    """Run each Worker as a process started by a task on a ``dask.distributed`` cluster.

    Given neither ``scheduler`` nor ``cluster``, the runner uses the scheduler of Dask's config
    (``scheduler-address``, ``DASK_SCHEDULER_ADDRESS``) if set, else a ``LocalCluster`` of
    ``parallel`` single-threaded worker processes. A run's timeout counts from when it starts
    on a Dask worker.

    Args:
        scheduler: the address of a running scheduler, ``"tcp://host:port"``.
        cluster: a cluster to build, ``{"class": "module.Class", **kwargs, "scale": N}`` or with
            ``"adapt": {"minimum": ..., "maximum": ...}``: the runner builds the cluster and closes
            it with itself.
        parallel: how many runs are submitted at once (default: the usable CPUs; 0: unbounded).
        **kwargs: the options of :class:`~profit.run.runner.Runner` (keyword only).

    Raises:
        ConfigError: Both ``scheduler`` and ``cluster`` are given, either is malformed, or a local
            cluster would have no worker process (``parallel`` 0).
    """

    passes_kwargs_on = True  # **kwargs are the base class's options (checked against its signature)

    def __init__(
        self,
        scheduler: str | None = None,
        cluster: Mapping | None = None,
        parallel: int | str = "all",
        **kwargs: Any,
    ):
        if scheduler is not None and cluster is not None:
            raise ConfigError("dask runner: give either scheduler (an address) or cluster (a config), not both")
        if scheduler is not None and not isinstance(scheduler, str):
            raise ConfigError(f"dask runner: scheduler must be an address like 'tcp://host:8786', got {scheduler!r}")
        if cluster is not None:
            if not isinstance(cluster, dict) and not hasattr(cluster, "items"):
                raise ConfigError(f"dask runner: cluster must be a mapping with a 'class', got {cluster!r}")
            cluster = dict(cluster)
            if "scale" in cluster and "adapt" in cluster:
                raise ConfigError("dask runner: cluster takes scale or adapt, not both")
            if "adapt" in cluster and not hasattr(cluster["adapt"], "items"):
                raise ConfigError(f"dask runner: adapt takes {{minimum: ..., maximum: ...}}, got {cluster['adapt']!r}")
            _import_class(str(cluster.get("class", "distributed.LocalCluster")))  # (a typo fails now, not later)
        self.scheduler = scheduler
        self.cluster_config = cluster
        parallel = check.parallel(parallel)
        if parallel < 1 and scheduler is None and cluster is None:
            raise ConfigError("dask runner: a local cluster needs parallel >= 1 (its number of worker processes)")
        super().__init__(parallel=parallel, **kwargs)
        self._client: Any = None
        self._cluster: Any = None
        self._environment: dict[str, str] | None = None
        self._token = uuid.uuid4().hex[:12]
        self._ended: collections.deque[_DaskRun] = collections.deque()  # filled in the client's thread
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        self.events.watch(self._wake_read, self._on_ended)

    def __repr__(self) -> str:
        where = self.scheduler or (self.cluster_config or {}).get("class", "LocalCluster")
        return f"<{type(self).__name__} (parallel={self.parallel}, {where})>"

    @property
    def config(self) -> dict:
        """The runner's options (:attr:`Runner.config`) with ``scheduler`` and ``cluster``."""
        return {**super().config, "scheduler": self.scheduler, "cluster": self.cluster_config}

    # --- the cluster -----------------------------------------------------------------

    @property
    def client(self) -> Any:
        """The ``distributed.Client`` of the runner (connected, and the cluster built, on first use)."""
        if self._client is None:
            self._connect()
        return self._client

    def _connect(self) -> None:
        try:
            import distributed
        except ImportError:
            raise ConfigError(
                "the dask runner needs dask.distributed: pip install 'profit-run[dask]' (or 'dask[distributed]')"
            ) from None
        import dask

        # Dask's own default: the scheduler of its config (DASK_SCHEDULER_ADDRESS), as a bare Client() does.
        address = (
            self.scheduler
            if self.cluster_config is not None
            else self.scheduler or dask.config.get("scheduler-address", None)
        )
        if address:
            self._client = distributed.Client(address, set_as_default=False)
            return
        if self.cluster_config is None:
            cluster = distributed.LocalCluster(
                n_workers=self.parallel,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",
                silence_logs=40,  # (logging.ERROR)
            )
        else:
            options = dict(self.cluster_config)
            cluster_class = _import_class(str(options.pop("class", "distributed.LocalCluster")))
            scale, adapt = options.pop("scale", None), options.pop("adapt", None)
            cluster = cluster_class(**options)
            try:
                if scale is not None:
                    cluster.scale(scale)
                elif adapt is not None:
                    cluster.adapt(**dict(adapt))
            except BaseException:
                cluster.close()
                raise
        self._cluster = cluster
        try:
            self._client = distributed.Client(cluster, set_as_default=False)
        except BaseException:
            cluster.close()
            self._cluster = None
            raise

    # --- starting runs -----------------------------------------------------------------

    def _run_environment(self) -> dict[str, str]:
        """What a run's process gets beyond its Dask worker's environment (the PROFIT_ variables)."""
        if self._environment is None:
            env = self.worker_environment()
            self._environment = {name: value for name, value in env.items() if name.startswith("PROFIT_")}
            self._environment[MARK] = work_dir_mark(self.work_dir)
        return self._environment

    def _start(self, run_id: int) -> _DaskRun:
        return self._submit([run_id])[0]

    def _start_batch(self, run_ids: list[int]) -> None:
        """Submit these runs as one graph (the scheduler takes one message, not one a run)."""
        if len(run_ids) == 1:
            super()._start_batch(run_ids)
            return
        for run_id in run_ids:
            if run_id in self.runs:
                raise ConfigError(f"run {run_id} is still active; wait for it or cancel it before running it again")
            self._forget_outcome(run_id)
        self._ensure_rows(max(run_ids) + 1)
        for run_id in run_ids:
            self.interface.mark(run_id, RunState.RUNNING)  # (before the worker: one that fails at once writes over)
        try:
            handles = self._submit(run_ids)
        except BaseException:
            for run_id in run_ids:
                self.interface.mark(run_id, RunState.PENDING)  # they never started
            raise
        for handle in handles:
            self._launch(handle.run_id, handle)

    def _submit(self, run_ids: list[int]) -> list[_DaskRun]:
        """Submit a task per run (``client.map``: one graph); the runs' handles."""
        client = self.client
        log_path = self.worker_config.get("log_path", "log")
        for run_id in run_ids:
            begin_run_log(self.work_dir, log_path, run_id)
        keys = [f"profit-run-{run_id}-{self._token}-{uuid.uuid4().hex[:8]}" for run_id in run_ids]
        count = len(run_ids)
        futures = client.map(
            run_in_dask_worker,
            run_ids,
            [self._run_environment()] * count,
            [os.path.abspath(self.work_dir)] * count,
            [f"{key}-stop" for key in keys],
            [f"{key}-kill" for key in keys],
            [self.cancel_grace] * count,
            [self.timeout] * count,
            key=keys,
            pure=False,
            retries=0,
        )
        handles = []
        for run_id, future, key in zip(run_ids, futures, keys):
            handle = _DaskRun(run_id, future, key)
            future.add_done_callback(lambda _, handle=handle: self._notify_ended(handle))
            handles.append(handle)
        return handles

    def _notify_ended(self, handle: _DaskRun) -> None:
        """In the client's thread: hand the run to the runner's thread and wake it."""
        self._ended.append(handle)
        try:
            os.write(self._wake_write, b"x")
        except (BlockingIOError, OSError):
            pass  # the pipe is full (the runner will wake anyway) or closed (the runner is closed)

    def _on_ended(self) -> None:
        try:
            while os.read(self._wake_read, 4096):
                pass
        except BlockingIOError:
            pass
        while self._ended:
            handle = self._ended.popleft()
            if self.runs.get(handle.run_id) is handle:  # (else: settled already, by a stop)
                ending = handle.poll()
                if isinstance(ending, DaskTimedOut):
                    self._settle(handle.run_id, None, timed_out=True)
                else:
                    self._settle(handle.run_id, ending)

    # --- stopping runs --------------------------------------------------------------

    def _stop_runs(
        self, run_ids: list[int], grace: float, *, cancelled: bool = False, timed_out: bool = False
    ) -> list[RunStatus]:
        """End runs: each task is told (the run's Events) to end its run's process group; the runner
        waits for the tasks to report, then settles the runs (a task that does not is cancelled)."""
        import time

        from distributed import Event

        handles = [handle for run_id in run_ids if isinstance(handle := self.runs.get(run_id), _DaskRun)]
        client = self.client
        for handle in handles:
            try:
                if grace <= 0:
                    Event(handle.kill_name, client=client).set()
                Event(handle.stop_name, client=client).set()
            except Exception as error:  # (the scheduler does not answer: the tasks are cancelled below)
                self.logger.warning("run %d: cannot tell its Dask task to stop (%s)", handle.run_id, error)
        try:  # tasks not given to a worker yet are dropped at once, not waited for
            assigned = {key for keys in client.processing().values() for key in keys}
        except Exception:
            assigned = {handle.future.key for handle in handles}
        for handle in handles:
            if handle.future.key not in assigned and not handle.future.done():
                handle.future.cancel()
        # The Dask workers end the runs at once, and skip those whose task is queued there (the
        # Events above are for a worker this does not reach, and a task that runs long).
        stops = {handle.stop_name: max(0.0, grace) for handle in handles if handle.future.key in assigned}
        if stops:
            try:
                client.run(note_stopped, stops, wait=True)
            except Exception as error:
                self.logger.warning("could not tell every Dask worker to stop %d runs (%s)", len(stops), error)
        deadline = time.monotonic() + grace + _STOP_WAIT
        for handle in handles:
            while not handle.future.done() and time.monotonic() < deadline:
                try:
                    handle.future.result(timeout=min(0.5, max(0.0, deadline - time.monotonic())))
                except Exception:
                    pass  # (not yet, or it failed: told below)
        for handle in handles:
            if not handle.future.done():
                # Its worker does not answer, or the task waits for a thread there: dropped. A task that
                # starts anyway finds its stop Event set (left set for it; it clears it) and ends at once.
                handle.future.cancel()
            elif handle.future.status != "cancelled":
                for name in (handle.stop_name, handle.kill_name):
                    try:
                        Event(name, client=client).clear()  # (forgotten by the scheduler: nobody waits)
                    except Exception:
                        pass
        statuses = []
        for run_id in run_ids:
            handle = self.runs.get(run_id)
            ending = handle.poll() if isinstance(handle, _DaskRun) and handle.future.status != "cancelled" else None
            out_of_time = timed_out or isinstance(ending, DaskTimedOut)
            ending = None if isinstance(ending, DaskTimedOut) else ending
            statuses.append(self._settle(run_id, ending, cancelled=cancelled, timed_out=out_of_time))
        return statuses

    # --- closing ----------------------------------------------------------------------

    def close(self) -> None:
        """Cancel what still runs, close the client (and the cluster the runner built) and release
        the event sources and the interface (closing again does nothing)."""
        if not self._take_for_closing():
            return
        try:
            self.cancel_all()
        finally:
            try:
                self._disconnect()
            finally:
                if self.events.watching(self._wake_read):
                    self.events.unwatch(self._wake_read)
                os.close(self._wake_read)
                os.close(self._wake_write)
                super().close()

    def _disconnect(self) -> None:
        if self._cluster is not None and self.cluster_config is None:
            # The local cluster made for this runner goes quietly (Dask logs every step of a close at
            # INFO level on stderr), as it started (silence_logs).
            import logging

            quiet = logging.getLogger("distributed")
            level = quiet.level
            quiet.setLevel(logging.ERROR)
            try:
                self._close_client_and_cluster()
            finally:
                quiet.setLevel(level)
        else:
            self._close_client_and_cluster()

    def _close_client_and_cluster(self) -> None:
        client, cluster = self._client, self._cluster
        self._client = self._cluster = None
        try:
            if client is not None:
                try:  # the run servers of this runner on Dask workers that live on (an existing cluster)
                    client.run(close_run_servers, os.path.abspath(self.work_dir), wait=True)
                except Exception as error:  # (a worker that does not answer keeps its servers until it ends)
                    self.logger.info("could not close the run servers on the Dask workers (%s)", error)
                client.close()
        finally:
            if cluster is not None:
                cluster.close()
