"""The Runner: starts one Worker per parameter set and keeps track of every run.

Data flow::

    Runner.spawn(params) --inputs--> RunnerInterface row run_id
        |  starts a Worker process (fork, shell, batch job...)
        v
    Worker: WorkerInterface.retrieve() -> simulate -> transmit() --outputs--> row
        |  process exits (an event: pidfd readable, message received)
        v
    Runner._settle(run_id, exit status)   <- the one place that decides a run's state

A run is *done* when its worker transmitted, whatever the exit timing; otherwise
it *failed* with a reason: the one the worker reported (a Python exception), or
the process's exit code / signal. Failed rows keep their place with NaN outputs,
so inputs and outputs stay aligned.
"""

from __future__ import annotations

import heapq
import json
import numbers
import os
import selectors
import time
from collections.abc import Iterable, Mapping

from ._lazy import logging
from ._lazy import numpy as np
from ._proc import RunHandle
from .errors import ConfigError, ParameterError, RunNotFoundError, WaitTimeout
from .interface import RunnerInterface
from .registry import Component
from .state import RunState, RunStatus
from .worker import Worker, run_log_file

# Without an exit event to wait on (no pidfd), check this often.
_FALLBACK_POLL_INTERVAL = 0.005
# Selector data of the interface's own event source (messages arriving).
_INTERFACE_EVENT = object()


class Runner(Component, registry=True):
    """Start Workers, one per run, and keep every run's state.

    Parameters (keyword only):
        interface: a RunnerInterface or a config ``{"class": label, "size": ..., "input_config": ...,
            "output_config": ..., ...}`` (relative paths are relative to ``work_dir``).
        worker: a Worker label or a config ``{"class": label, ...}`` given to each Worker.
        work_dir: where workers run and write (created if missing).
        debug: log in more detail.
        parallel: maximum number of concurrent runs in :meth:`spawn_array` (0: unbounded;
            the local runners take ``"all"``, the CPUs this process may use, by default).
        sleep: poll interval, used only by runners that have no event to wait on.
        logfile: the runner's log file name (the ``profit`` command writes it).
        logger: the logger to use (default ``profit.run.runner``).
        timeout: seconds a run may take; then its process tree is killed and it
            fails with "timed out after N s" (default: no limit).
        retries: how many times a failed run is run again (same id and row)
            before it counts as failed; cancelled runs are not retried.

    Attributes: ``runs`` (active runs by id), ``failed`` (failed and cancelled runs
    by id, each a :class:`RunStatus`), ``next_run_id``, ``interface``, ``worker``.
    """

    def __init__(
        self,
        *,
        interface: RunnerInterface | Mapping,
        worker: str | Mapping,
        work_dir: str = ".",
        debug: bool = False,
        parallel: int = 0,
        sleep: float = 0.1,
        logfile: str = "runner.log",
        logger: logging.Logger | None = None,
        timeout: float | None = None,
        retries: int = 0,
    ):
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
            raise ConfigError(f"timeout must be a number of seconds > 0 (or None for no limit), got {timeout!r}")
        if isinstance(retries, bool) or not isinstance(retries, numbers.Integral) or retries < 0:
            raise ConfigError(f"retries must be a whole number >= 0, got {retries!r}")
        self.timeout = None if timeout is None else float(timeout)
        self.retries = int(retries)
        if isinstance(parallel, bool) or not isinstance(parallel, numbers.Integral) or parallel < 0:
            raise ConfigError(f"parallel must be a whole number >= 0 (0: unbounded), got {parallel!r}")
        if isinstance(sleep, bool) or not isinstance(sleep, (int, float)) or sleep < 0:
            raise ConfigError(f"sleep must be a number of seconds >= 0, got {sleep!r}")
        self.work_dir = str(work_dir)
        self.debug = bool(debug)
        self.parallel = int(parallel)
        self.sleep = float(sleep)
        self.logfile = logfile
        if logger is not None:
            self.logger = logger
        os.makedirs(self.work_dir, exist_ok=True)
        # Paths of a study (a template, say) are relative to where the study started.
        self.base_dir = os.environ.get("PROFIT_BASE_DIR", os.getcwd())

        # The worker first: an interface may hold a socket and files, which a bad worker config would leak.
        worker_class, worker_options = Worker.resolve(worker, "worker")
        self.interface: RunnerInterface = self._build_interface(interface)
        self._input_dtypes = {name: self.interface.input.dtype[name] for name in self.interface.input_names}
        self.worker: dict = {"class": worker_class.label, **worker_options}
        if self.debug:
            self.worker.setdefault("debug", True)

        self.listeners: list = []  # objects with run_started(run_id, handle) and/or run_ended(status)
        self.runs: dict[int, object] = {}
        self.failed: dict[int, RunStatus] = {}
        self.next_run_id = 0
        self._selector = selectors.DefaultSelector()
        self._unwatched = 0  # active runs without an exit event: they need polling
        self._deadlines: list[tuple[float, int]] = []  # heap of (deadline, run_id) when timeout is set
        self._deadline_of: dict[int, float] = {}
        self._attempts: dict[int, int] = {}  # attempt number of active runs that were retried
        # An interface that receives messages (zeromq) wakes the runner when they arrive.
        interface_fd = getattr(self.interface, "fileno", lambda: None)()
        if interface_fd is not None:
            self._selector.register(interface_fd, selectors.EVENT_READ, _INTERFACE_EVENT)
        self.logger.debug("init %r with config %s", self, self.config)

    def _build_interface(self, interface: RunnerInterface | Mapping) -> RunnerInterface:
        if isinstance(interface, RunnerInterface):
            return interface
        if isinstance(interface, str):
            raise ConfigError(
                f"interface {interface!r}: a label alone is not enough here; pass a RunnerInterface or a mapping "
                "{'class': label, 'size': n, 'input_config': {...}, 'output_config': {...}}"
            )
        cls, options = RunnerInterface.resolve(interface, "interface")
        import inspect  # runner side only; worker processes import this module too

        # Interface files live in the work directory, like everything a study writes.
        parameters = inspect.signature(cls).parameters
        for option in getattr(cls, "path_options", ("path",)):
            if option in parameters:
                path = options.get(option, parameters[option].default)
                if isinstance(path, str) and not os.path.isabs(path):
                    options[option] = os.path.join(self.work_dir, path)
        missing = [key for key in ("size", "input_config", "output_config") if key not in options]
        if missing:
            raise ConfigError(f"interface config for {cls.label!r} lacks {', '.join(missing)}")
        return cls(**options, logger_parent=self.logger)

    @classmethod
    def from_config(cls, run_config: Mapping, base_config: Mapping) -> Runner:
        """Build a runner from the ``run:`` section of a study and the study's base config.

        ``run_config`` holds ``runner`` (label or mapping), ``interface``, ``worker``,
        ``pre``, ``post``, ``command`` and ``debug``; ``base_config`` holds ``ntrain``,
        ``input``, ``output`` and ``run_dir``.
        """
        runner_spec = run_config.get("runner", "fork")
        runner_spec = {"class": runner_spec} if isinstance(runner_spec, str) else dict(runner_spec)
        label = runner_spec.pop("class", "fork")
        kwargs: dict[str, object] = dict(runner_spec)

        interface = run_config.get("interface", kwargs.get("interface", "memmap"))
        interface = {"class": interface} if isinstance(interface, str) else dict(interface)
        interface["size"] = base_config["ntrain"]
        interface["input_config"] = base_config["input"]
        interface["output_config"] = base_config["output"]
        kwargs["interface"] = interface

        worker = run_config.get("worker", kwargs.get("worker", "command"))
        worker = {"class": worker} if isinstance(worker, str) else dict(worker)
        for key in ("pre", "post"):
            if key in run_config:
                worker[key] = run_config[key]
        if isinstance(run_config.get("command"), str):
            worker["class"] = "command"
            worker["command"] = run_config["command"]
        if run_config.get("debug"):
            kwargs["debug"] = True
            worker["debug"] = True
        kwargs["worker"] = worker
        kwargs["work_dir"] = base_config.get("run_dir", kwargs.get("work_dir", "."))
        return cls[label](**kwargs)

    def __repr__(self) -> str:
        details = [f"parallel={self.parallel}"] + (["debug"] if self.debug else [])
        return f"<{type(self).__name__} ({', '.join(details)})>"

    @property
    def config(self) -> dict:
        """The runner's options as a JSON-able dict (``class`` is its label)."""
        return {
            "class": self.label,
            "work_dir": self.work_dir,
            "debug": self.debug,
            "parallel": self.parallel,
            "sleep": self.sleep,
            "logfile": self.logfile,
            "timeout": self.timeout,
            "retries": self.retries,
        }

    def worker_environment(self) -> dict[str, str]:
        """The environment of a worker started as a program: this process's, plus what
        ``Worker.from_env`` reads (all but ``PROFIT_RUN_ID``, which is per run)."""
        from .includes import loaded_includes

        env = {
            **os.environ,
            "PROFIT_WORKER": json.dumps(self.worker),
            "PROFIT_INTERFACE": json.dumps(self.interface.config),
            "PROFIT_INCLUDES": json.dumps(loaded_includes()),
            "PROFIT_BASE_DIR": self.base_dir,
        }
        env.pop("PROFIT_ARRAY_ID", None)
        return env

    # --- inputs ------------------------------------------------------------------

    def _ensure_rows(self, count: int) -> None:
        if count > self.interface.size:
            self.interface.resize(max(count, 2 * self.interface.size))

    def _input_row(self, params: object, run_id: int) -> tuple:
        """Validate ``params`` against the study's inputs; return the converted row."""
        names = self.interface.input_names
        if isinstance(params, (np.void, np.ndarray)) and params.dtype.names is not None:
            if params.dtype.names == tuple(names) and all(
                params.dtype[name] == self._input_dtypes[name] for name in names
            ):
                return params.item()  # a record of exactly the inputs: nothing to check or convert
            given = {name: params[name] for name in params.dtype.names}
        elif isinstance(params, Mapping):
            given = params
        else:
            raise ParameterError(
                f"params for run {run_id} must be a mapping of input name to value or a numpy record, "
                f"got {type(params).__name__}"
            )
        unknown = [key for key in given if key not in names]
        missing = [name for name in names if name not in given]
        if unknown or missing:
            problems = []
            if unknown:
                problems.append(
                    f"{', '.join(map(repr, unknown))} {'is not an input' if len(unknown) == 1 else 'are not inputs'}"
                )
            if missing:
                problems.append(f"{', '.join(map(repr, missing))} {'is' if len(missing) == 1 else 'are'} missing")
            raise ParameterError(f"params for run {run_id}: {'; '.join(problems)} (the inputs are {', '.join(names)})")
        dtypes = self.interface.input.dtype
        return tuple(_convert(name, given[name], dtypes[name], run_id) for name in names)

    def fill(self, params_array: Iterable, offset: int = 0) -> None:
        """Write many input rows (each a mapping or record) starting at row ``offset``."""
        rows = [self._input_row(params, offset + index) for index, params in enumerate(params_array)]
        self._ensure_rows(offset + len(rows))
        for index, row in enumerate(rows):
            self.interface.input[offset + index] = row

    def fill_output(self, named_output: np.ndarray, offset: int = 0) -> None:
        """Write known outputs (a structured array with output names) starting at ``offset``."""
        unknown = [name for name in named_output.dtype.names or () if name not in self.interface.output_names]
        if unknown:
            raise ParameterError(
                f"fill_output: {', '.join(map(repr, unknown))} not among the outputs "
                f"({', '.join(self.interface.output_names)})"
            )
        self._ensure_rows(offset + len(named_output))
        for name in named_output.dtype.names:
            self.interface.output[name][offset : offset + len(named_output)] = named_output[name]

    # --- starting runs -----------------------------------------------------------------

    def spawn(self, params: object = None, wait: bool = False) -> int:
        """Start the next run (wait for it if asked) and return its run id.

        ``params`` is a mapping or numpy record of every input, or None when the
        row was filled before (:meth:`fill`). The interface grows as needed.
        Variants implement :meth:`_start`; runners written for proFit instead
        override ``spawn``, call this first (it then only prepares the row) and
        start the worker themselves.
        """
        return self._spawn_at(self.next_run_id, params, wait)

    def respawn(self, run_id: int, wait: bool = False) -> int:
        """Run ``run_id`` again, with the inputs in its row (after a failure or a cancel, or to resume).

        The run keeps its id and row; its previous outcome is forgotten.
        """
        if run_id in self.runs:
            raise ConfigError(f"run {run_id} is still active; wait for it or cancel it before running it again")
        if not 0 <= run_id < self.interface.size:
            raise RunNotFoundError(f"run {run_id} does not exist (the interface holds {self.interface.size} runs)")
        if type(self)._start is Runner._start:
            raise ConfigError(f"{type(self).__name__} cannot run a run again (it starts runs in spawn itself)")
        self.failed.pop(run_id, None)
        self._attempts.pop(run_id, None)
        return self._spawn_at(run_id, None, wait)

    def _spawn_at(self, run_id: int, params: object, wait: bool) -> int:
        row = None if params is None else self._input_row(params, run_id)
        self._ensure_rows(run_id + 1)
        if row is not None:
            self.interface.input[run_id] = row
        # Before the worker starts: a worker that fails at once writes over this.
        self.interface.mark(run_id, RunState.RUNNING)
        try:
            handle = self._start(run_id)
        except BaseException:
            self.interface.mark(run_id, RunState.PENDING)  # it never started
            raise
        if handle is not None:
            self._launch(run_id, handle)
            if wait:
                self.wait(run_id)
        return run_id

    def _start(self, run_id: int) -> RunHandle | None:
        """Start the Worker of ``run_id`` and return its handle (variants implement this)."""
        return None

    def _launch(self, run_id: int, handle: object) -> None:
        """Record a started run (variants call this after starting its Worker)."""
        self.runs[run_id] = handle
        if getattr(handle, "clock_at_launch", True):
            self._start_clock(run_id)
        fd = handle.fileno() if isinstance(handle, RunHandle) else None
        if fd is not None:
            self._selector.register(fd, selectors.EVENT_READ, run_id)
        elif not getattr(handle, "notified", False):
            self._unwatched += 1
        self.next_run_id = max(self.next_run_id, run_id + 1)
        self.logger.debug("run %d started", run_id)
        self._notify("run_started", run_id, handle)

    @property
    def capacity(self) -> int:
        """How many runs :meth:`spawn_array` keeps active at once (``parallel``; 0: no limit)."""
        return self.parallel

    def _start_clock(self, run_id: int) -> None:
        """From now on, ``run_id`` has ``timeout`` seconds (if a timeout is set)."""
        if self.timeout is not None:
            deadline = time.monotonic() + self.timeout
            self._deadline_of[run_id] = deadline
            heapq.heappush(self._deadlines, (deadline, run_id))

    def spawn_array(self, params_array: Iterable, wait: bool = False, progress: bool = False) -> None:
        """Spawn one run per row, never more than ``parallel`` at once; block until all started."""
        if not hasattr(params_array, "__len__"):
            params_array = list(params_array)
        bar = self._progress_bar(progress, total=self.next_run_id + len(params_array))
        try:
            for params in params_array:
                while self.capacity and len(self.runs) >= self.capacity:
                    self._process_events(None)
                    self._update_bar(bar)
                self.spawn(params)
            if wait:
                self._wait_until(lambda: not self.runs, None, bar)
        finally:
            if bar is not None:
                self._update_bar(bar, force=True)
                bar.close()

    # --- observing runs -----------------------------------------------------------------

    def _handle(self, run_id: int) -> object:
        try:
            return self.runs[run_id]
        except KeyError:
            raise RunNotFoundError(
                f"run {run_id} is not active (active runs: {len(self.runs)}, next run id: {self.next_run_id})"
            ) from None

    def poll(self, run_id: int) -> None:
        """Check one run directly; settle it if its process has ended."""
        handle = self._handle(run_id)
        if isinstance(handle, RunHandle):
            status = handle.poll()
            if status is not None:
                self._settle(run_id, status)
        elif self.interface.done(run_id):
            self._settle(run_id, None)

    def poll_all(self) -> None:
        """Check every active run directly."""
        for run_id in list(self.runs):
            if run_id in self.runs:
                self.poll(run_id)

    def check_runs(self) -> None:
        """Receive what the interface has, then check every active run."""
        self.interface.poll()
        for run_id, handle in list(self.runs.items()):
            # Runners written for proFit track runs their own way: DONE settles them.
            if not isinstance(handle, RunHandle) and self.interface.done(run_id):
                self._settle(run_id, None)
        self.poll_all()

    def _settle(
        self, run_id: int, exit_status: object, timed_out: bool = False, cancelled: bool = False, retry: bool = True
    ) -> RunStatus:
        """Decide a finished run's state: the one place where this happens.

        ``exit_status`` (an :class:`~profit.run._proc.ExitStatus` or None) was read
        *before* the interface's DONE flag, so a run that transmitted and then
        exited is never called failed or cancelled, not even when its time was up
        or it was cancelled on its way out. Otherwise a ``cancelled`` run is
        cancelled, and a failed run with retries left (and ``retry``) is started
        again (same id and row).
        """
        handle = self.runs.pop(run_id)
        self._forget(handle)
        self._deadline_of.pop(run_id, None)
        if isinstance(handle, RunHandle):
            handle.close()
        attempt = self._attempts.pop(run_id, 1)
        if self.interface.done(run_id):
            status = RunStatus(run_id, RunState.DONE)
            if exit_status is not None and not getattr(exit_status, "success", True):
                self.logger.warning("run %d transmitted its results, then %s", run_id, exit_status.describe())
            self.logger.debug("run %d done", run_id)
        elif cancelled:
            status = RunStatus(run_id, RunState.CANCELLED, "cancelled")
            self.failed[run_id] = status
            self.logger.info("run %d cancelled", run_id)
        else:
            if timed_out:
                reason = f"timed out after {self.timeout:g} s"
            else:
                reason = self._failure_reason(run_id, exit_status)
            if retry and attempt <= self.retries:
                self.logger.info(
                    "run %d failed (attempt %d of %d): %s; running it again", run_id, attempt, self.retries + 1, reason
                )
                self._spawn_at(run_id, None, wait=False)
                self._attempts[run_id] = attempt + 1
                return RunStatus(run_id, RunState.RUNNING)
            if attempt > 1:
                reason += f" (attempt {attempt} of {self.retries + 1})"
            status = RunStatus(run_id, RunState.FAILED, reason)
            self.failed[run_id] = status
            self.logger.info("run %d failed: %s", run_id, status.reason)
        self.interface.mark(run_id, status.state, status.reason)
        self._notify("run_ended", status)
        return status

    def _expire(self) -> None:
        """End the runs whose time is up (their whole process tree)."""
        import signal

        now = time.monotonic()
        while self._deadlines and self._deadlines[0][0] <= now:
            deadline, run_id = heapq.heappop(self._deadlines)
            if self._deadline_of.get(run_id) != deadline:
                continue  # that attempt of the run has ended already
            handle = self.runs[run_id]
            if isinstance(handle, RunHandle):
                handle.signal_tree(signal.SIGKILL)
                self._settle(run_id, handle.wait(), timed_out=True)
            else:
                self._cancel_foreign(handle)
                self._settle(run_id, None, timed_out=True)

    def _failure_reason(self, run_id: int, exit_status: object) -> str:
        if self.interface.state(run_id) == RunState.FAILED and self.interface.reason(run_id):
            return self.interface.reason(run_id)  # the worker said why
        if exit_status is None:
            return "worker ended without transmitting results"
        described = exit_status.describe(through_shell=self._through_shell)
        if exit_status.success:
            described = f"worker {described} without transmitting results"
        else:
            described = f"worker {described}"
        last = self._last_log_line(run_id)
        return f"{described}; last log line: {last}" if last else described

    _through_shell = False  # runners that start workers through a shell say so

    def _last_log_line(self, run_id: int) -> str:
        path = os.path.join(self.work_dir, run_log_file(self.worker.get("log_path", "log"), run_id))
        try:
            with open(path, "rb") as file:
                file.seek(max(0, os.path.getsize(path) - 4096))
                lines = file.read().decode("utf-8", "replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1].strip() if lines else ""

    def _forget(self, handle: object) -> None:
        """Stop watching a run's handle (it is no longer active)."""
        fd = handle.fileno() if isinstance(handle, RunHandle) else None
        if fd is not None:
            self._selector.unregister(fd)
        elif not getattr(handle, "notified", False):
            self._unwatched -= 1

    def status(self, run_id: int) -> RunStatus:
        """The state of any run of this runner, with the reason where it did not succeed."""
        if not 0 <= run_id < self.interface.size:
            raise RunNotFoundError(f"run {run_id} does not exist (the interface holds {self.interface.size} runs)")
        if run_id in self.failed:
            return self.failed[run_id]
        return RunStatus(run_id, self.interface.state(run_id), self.interface.reason(run_id))

    # --- waiting ----------------------------------------------------------------------

    def _before_waiting(self) -> None:
        """Hand over what a variant buffered (a pool sends runs in batches) before blocking."""

    def _process_events(self, timeout: float | None) -> None:
        """Wait up to ``timeout`` for a run to end and settle the runs that did."""
        self._before_waiting()
        if self._deadlines:  # wake up in time to end a run that runs too long
            until = max(0.0, self._deadlines[0][0] - time.monotonic())
            timeout = until if timeout is None else min(timeout, until)
        if self._unwatched:  # runs without an exit event: look at them every so often
            interval = self._poll_interval()
            timeout = interval if timeout is None else min(timeout, interval)
        if getattr(self.interface, "backlog", False):
            timeout = 0  # messages wait that no new event will announce
        if self._selector.get_map():
            ready = self._selector.select(timeout)
        else:
            ready = []
            time.sleep(timeout or 0)
        self.interface.poll()
        for key, _ in ready:
            if callable(key.data):  # an event source of the variant (a pool's result pipe)
                key.data()
            elif key.data is _INTERFACE_EVENT:
                continue  # handled by interface.poll() above
            elif key.data in self.runs:
                self.poll(key.data)
        if self._unwatched:
            self.check_runs()
        if self._deadlines:
            self._expire()

    def _poll_interval(self) -> float:
        """How often runs without an exit event are checked (``sleep``; short when others have events)."""
        if any(isinstance(key.data, int) for key in self._selector.get_map().values()):
            return _FALLBACK_POLL_INTERVAL
        return self.sleep

    def wait_some(self, timeout: float | None = None) -> None:
        """Block until at least one active run ends (or ``timeout`` seconds pass); settle what ended."""
        self._process_events(timeout)

    def _notify(self, event: str, *args: object) -> None:
        for listener in self.listeners:
            method = getattr(listener, event, None)
            if method is not None:
                method(*args)

    def _wait_until(self, finished, timeout: float | None, bar=None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not finished():
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise WaitTimeout(
                    f"runs still active after {timeout} s: {len(self.runs)} "
                    f"(first: {', '.join(map(str, list(self.runs)[:5]))}); they keep running"
                )
            if bar is not None and (remaining is None or remaining > 0.5):
                remaining = 0.5  # keep the progress bar's ETA moving
            self._process_events(remaining)
            self._update_bar(bar)

    def wait(self, run_id: int, timeout: float | None = None) -> RunStatus:
        """Block until ``run_id`` has ended (at once if it has); return its status."""
        if run_id not in self.runs and not 0 <= run_id < self.next_run_id:
            raise RunNotFoundError(f"run {run_id} was never started (next run id: {self.next_run_id})")
        self._wait_until(lambda: run_id not in self.runs, timeout)
        return self.status(run_id)

    def wait_all(self, progress: bool = False, timeout: float | None = None) -> None:
        """Block until every active run has ended (``WaitTimeout`` after ``timeout`` seconds)."""
        bar = self._progress_bar(progress, total=self.next_run_id)
        try:
            self._wait_until(lambda: not self.runs, timeout, bar)
        finally:
            if bar is not None:
                self._update_bar(bar, force=True)
                bar.close()

    def _progress_bar(self, progress: bool, total: int):
        if not progress:
            return None
        bar = progress_bar(total)
        bar.profit_next_update = 0.0
        return bar

    def _update_bar(self, bar, force: bool = False) -> None:
        # Called after every event; redrawing that often would cost more than a run.
        if bar is None or (not force and time.monotonic() < bar.profit_next_update):
            return
        bar.profit_next_update = time.monotonic() + 0.1
        finished = self.next_run_id - len(self.runs)
        bar.total = max(bar.total, self.next_run_id)
        bar.set_postfix(
            done=finished - len(self.failed), failed=len(self.failed), running=len(self.runs), refresh=False
        )
        bar.update(finished - bar.n)

    # --- stopping runs --------------------------------------------------------------

    cancel_grace = 1.0
    """Seconds a run has to end after SIGTERM before SIGKILL ends its process tree."""

    def cancel(self, run_id: int) -> RunStatus:
        """End the run's whole process tree and mark it cancelled.

        A run that had already ended is settled as it ended instead.
        """
        handle = self._handle(run_id)
        if isinstance(handle, RunHandle) and handle.exited():
            return self._settle(run_id, handle.poll(), retry=False)
        return self._cancel_many([run_id])[0]

    def cancel_all(self) -> None:
        """Cancel every active run (all are signalled at once, then given the grace time)."""
        self.logger.debug("cancel all %d runs", len(self.runs))
        ended = [run_id for run_id, handle in self.runs.items() if isinstance(handle, RunHandle) and handle.exited()]
        for run_id in ended:
            self._settle(run_id, self.runs[run_id].poll(), retry=False)
        self._cancel_many(list(self.runs))

    def _cancel_many(self, run_ids: list[int]) -> list[RunStatus]:
        import signal

        handles = {run_id: self.runs[run_id] for run_id in run_ids}
        for handle in handles.values():
            if isinstance(handle, RunHandle):
                handle.signal_tree(signal.SIGTERM)
        deadline = time.monotonic() + self.cancel_grace
        statuses = []
        for run_id, handle in handles.items():
            exit_status = None
            if isinstance(handle, RunHandle):
                exit_status = handle.wait(max(0.0, deadline - time.monotonic()))
                if exit_status is None:
                    handle.signal_tree(signal.SIGKILL)
                    exit_status = handle.wait()
            else:
                self._cancel_foreign(handle)
            # One decision: a run that transmitted before the signal keeps its result.
            statuses.append(self._settle(run_id, exit_status, cancelled=True))
        return statuses

    def _cancel_foreign(self, handle: object) -> None:
        """Stop a run tracked by something other than a RunHandle (Popen, Process)."""
        terminate = getattr(handle, "terminate", None)
        if terminate is not None:
            terminate()

    # --- results -------------------------------------------------------------------------

    @property
    def input_data(self) -> np.ndarray:
        """Inputs of the completed runs (a structured array)."""
        return self.interface.input[self.interface.internal["DONE"]]

    @property
    def output_data(self) -> np.ndarray:
        """Outputs of the completed runs (a structured array)."""
        return self.interface.output[self.interface.internal["DONE"]]

    @property
    def flat_output_data(self) -> np.ndarray:
        """Outputs of the completed runs as a plain 2-D float array (vectors spread over columns)."""
        from numpy.lib import recfunctions

        data = self.output_data
        return recfunctions.structured_to_unstructured(data, dtype=np.float64).reshape(len(data), -1)

    def close(self) -> None:
        """Cancel what still runs and release the runner's event sources (it cannot be used after)."""
        self.cancel_all()
        self._selector.close()
        getattr(self.interface, "close", lambda: None)()

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def clean(self) -> None:
        """Remove what runs left in the work directory: interface, run directories, logs."""
        import re
        import shutil

        if self.runs:
            raise ConfigError(f"clean: {len(self.runs)} runs are still active; wait for or cancel them first")
        self.interface.clean()
        log_path = self.worker.get("log_path", "log")
        for entry in os.listdir(self.work_dir):
            path = os.path.join(self.work_dir, entry)
            if (re.fullmatch(r"run_\d+", entry) or entry == log_path) and os.path.isdir(path):
                shutil.rmtree(path)
            elif entry == self.logfile and os.path.isfile(path):
                os.remove(path)


def progress_bar(total: int, initial: int = 0):
    """A tqdm bar of runs, without tqdm's monitor thread (forking a threaded process is unsafe)."""
    from tqdm import tqdm  # only where a bar is asked for

    class Bar(tqdm):
        monitor_interval = 0

    return Bar(total=total, initial=initial, desc="runs", unit="run", smoothing=0.1)


def _convert(name: str, value: object, dtype: np.dtype, run_id: int) -> object:
    """Convert one input value to its field's dtype, refusing lossy or absurd values."""

    def refuse(why: str = "") -> ParameterError:
        return ParameterError(f"input {name!r} of run {run_id}: cannot convert {value!r} to {dtype}{why}")

    if value is None or isinstance(value, (str, bytes)):
        raise refuse()
    try:
        array = np.asarray(value)
        if array.shape != ():
            raise refuse(" (expected a single value)")
        if dtype.kind in "iu" and array.dtype.kind == "f":
            if not np.isfinite(array) or not float(array).is_integer():
                raise refuse(" without losing its fractional part")
        if dtype.kind in "iu" and array.dtype.kind in "iuf":
            info = np.iinfo(dtype)
            if not info.min <= array <= info.max:
                raise refuse(f" (out of range {info.min}..{info.max})")
        return dtype.type(array.item()) if array.dtype.kind != "O" else dtype.type(value)
    except ParameterError:
        raise
    except (TypeError, ValueError, OverflowError):
        raise refuse() from None
