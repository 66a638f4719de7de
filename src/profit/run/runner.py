"""The Runner: starts one Worker per parameter set and keeps track of every run.

Data flow::

    Runner.spawn(params) --inputs--> RunnerInterface row run_id        (params.py)
        |  backend._start(run_id) starts a Worker: fork, shell, pool slot, batch job
        v                         and returns its RunHandle             (handles.py)
    Worker: WorkerInterface.retrieve() -> simulate -> transmit() --outputs--> row
        |  the run ends: an event (pidfd, pipe, socket) or a poll      (events.py)
        v
    Runner._settle(run_id, ending) -> outcome.decide(...)               (outcome.py)
        -> DONE | FAILED | CANCELLED, written to the interface, or run again (retry)

A run is *done* when its worker transmitted, whatever the exit timing; otherwise
it *failed* with a reason: the one the worker reported (a Python exception), or
the process's exit code / signal. Failed rows keep their place with NaN outputs,
so inputs and outputs stay aligned.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from threading import get_ident

from . import options as check
from ._lazy import logging
from ._lazy import numpy as np
from ._proc import stop_trees
from .config import build_interface, function_interface, function_of, runs_own_worker, worker_config
from .errors import ConfigError, ParameterError, RunNotFoundError, WaitTimeout
from .events import EventLoop
from .handles import Notice, RunHandle
from .interface import RunnerInterface
from .layout import RUNNER_LOG, clean_work_dir, run_dir_name, run_log_file, study_base_dir
from .outcome import Observation, Retry, decide
from .params import input_row, parameter_rows, single_parameters
from .progress import RunProgress
from .registry import Component
from .state import RunState, RunStatus
from .tracking import ActiveRuns

TYPE_CHECKING = False  # (typing costs every worker process its import)
if TYPE_CHECKING:
    import numpy

    from .handles import Ending

# Event-loop data of the interface's own event source (messages arriving).
_INTERFACE_EVENT = object()


class Runner(Component, registry=True):
    """Start Workers, one per run, and keep every run's state.

    Every parameter is keyword only.

    Args:
        interface: a RunnerInterface or a config ``{"class": label, "size": ..., "input_config": ...,
            "output_config": ..., ...}`` (relative paths are relative to ``work_dir``). With a function
            as the worker, a label alone (default: ``memmap``, as in proFit) or a config without
            ``size``, ``input_config`` or ``output_config`` will do: the function tells them (its
            parameters are the inputs, float64 unless annotated ``int`` or ``bool``; its outputs float64).
        worker: a Worker label, a Worker class or a config ``{"class": label, ...}`` given to each Worker
            (default: ``command``, as in proFit), or a plain function (a ``functools.partial``, a
            callable object; or ``{"class": func, "inputs": [...], "outputs": [...]}``), called once per
            run with one argument per input and returning one value per output (see
            :mod:`profit.run.functions`: forked workers find it in memory, others import or unpickle it).
            A runner whose workers run a command of their own (the local runner's ``command`` other
            than ``profit-worker``) takes a label that only that program defines.
        work_dir: where workers run and write (created if missing).
        debug: log in more detail.
        parallel: maximum number of concurrent runs in :meth:`drive` and :meth:`spawn_array` (0: unbounded;
            the local runners take ``"all"``, the CPUs this process may use, by default).
        sleep: poll interval, used only by runners that have no event to wait on.
        logfile: the runner's log file, in ``work_dir`` (as in proFit): without a ``logger``, the
            runner writes its records there (and passes them on to ``profit.run.runner``).
        logger: the logger to use instead (then no file of its own is written).
        timeout: seconds a run may take; then its process tree is killed and it
            fails with "timed out after N s" (default: no limit).
        retries: how many times a failed run is run again (same id and row)
            before it counts as failed; cancelled runs are not retried.

    Attributes: ``runs`` (active runs by id), ``failed`` (failed and cancelled runs
    by id, each a :class:`RunStatus`, as in proFit; :attr:`failed_runs` and
    :attr:`cancelled_runs` tell them apart), ``next_run_id``, ``interface``,
    ``worker_config`` (also ``worker``, proFit's name).

    **Writing a backend.** A runner variant implements one hook and may refine a few:

    * ``_start(run_id) -> RunHandle`` (required): start the Worker of ``run_id``, whose
      row is filled, and return its handle (:mod:`profit.run.handles`: how its end
      is noticed, how it is stopped).
    * ``capacity`` (property): how many runs :meth:`drive` keeps active (``parallel``; 0: no limit).
    * ``_start_batch(run_ids)``: start several runs at once (:meth:`drive` hands it as many
      as ``capacity`` leaves room for; a batch system submits them as one job array). The
      default starts them one by one, as :meth:`respawn` does (``_start`` for each).
    * ``_batch_end(run_ids, start, end)``: hand ``_start_batch`` fewer runs than there is room
      for (a job array must fit ``MaxArraySize``).
    * ``_before_waiting()``: hand over what the variant buffered before the runner blocks.
    * ``_stop_runs(run_ids, grace, *, cancelled, timed_out)``: end active runs
      (default: their process trees via ``_proc.stop_trees``, else ``handle.stop()``).
    * ``_poll_interval()``: how often runs without an event are polled.
    * ``check_runs()``: extend to ask an outside source (a scheduler) about runs.
    * ``_through_shell``: True when workers are started through a shell (exit codes explained).

    A variant reports through ``_launch(run_id, handle)`` (a run started),
    ``_settle(run_id, ending, ...)`` (a run ended), ``_start_clock(run_id)``
    (its timeout starts now) and ``events`` (watch descriptors of its own).
    Runners written for proFit instead override :meth:`spawn`, call this class's
    ``spawn`` first (it then only prepares the row), start the worker themselves
    and put any handle (a ``Popen``, a ``Process``) into ``runs``.

    **One thread.** A runner belongs to the thread that built it: the methods that
    change its state (spawn, respawn, spawn_array, drive, wait, wait_some,
    wait_all, cancel, cancel_all, poll, poll_all, check_runs, close, fill,
    fill_output) raise :class:`~profit.run.errors.ConfigError` naming the method
    when called from another thread (two threads would lose runs and misalign
    rows). Reading (``status``, the data, ``runs``) is not checked. ``close()``
    is the one exception, for clean-ups: once the owner thread has ended (an
    ``atexit`` hook, a finalizer in another thread), any thread may close the
    runner; while the owner lives, only it may (signal handlers run in the main
    thread, so a runner built there can be closed from one). After ``close()``
    every such method raises ConfigError (the runner is closed; closing again
    does nothing), so nothing starts that nobody would wait for.
    """

    # True for variants whose workers are forked from the runner and inherit its memory (a function
    # given as the worker then reaches them as it is: no import by name, no pickle).
    forks_workers: bool = False

    def __init__(
        self,
        *,
        interface: RunnerInterface | Mapping | str = "memmap",
        worker: str | Mapping | Callable | type = "command",
        work_dir: str = ".",
        debug: bool = False,
        parallel: int = 0,
        sleep: float = 0.1,
        logfile: str = RUNNER_LOG,
        logger: logging.Logger | None = None,
        timeout: float | None = None,
        retries: int = 0,
    ):
        self.timeout = check.optional_seconds(timeout, "timeout")
        self.retries = check.whole_number(retries, "retries")
        self.parallel = check.whole_number(parallel, "parallel", hint=" (0: unbounded)")
        self.sleep = check.seconds(sleep, "sleep", positive=False)
        self.work_dir = str(work_dir)
        self.debug = check.boolean(debug, "debug")
        self.logfile = logfile
        os.makedirs(self.work_dir, exist_ok=True)
        self._runner_log_file: logging.Handler | None = None
        if logger is not None:
            self.logger = logger
        elif logfile:
            self.logger = self._own_log(os.path.join(self.work_dir, logfile))
        # The worker first: an interface may hold a socket and files, which a bad worker config would leak.
        # Include files the caller listed in PROFIT_INCLUDES define components too (every runner honours them).
        from .includes import env_includes, load_includes

        load_includes(env_includes())
        # A worker that runs a command of its own (proFit's custom worker script: `python3 my_worker.py`,
        # which calls Worker.from_env()) may define its label there: the worker process resolves it.
        own_worker = runs_own_worker(getattr(self, "command", None))
        self.worker_config: dict = worker_config(
            worker, debug=self.debug, resolve=not own_worker, forked=type(self).forks_workers, folder=self.work_dir
        )
        # A function worker tells what the interface config leaves out (its inputs and outputs).
        inferred = function_interface(self.worker_config, function_of(worker))
        self.interface: RunnerInterface = build_interface(interface, self.work_dir, self.logger, inferred)
        self.interface.managed = True
        if self._runner_log_file is not None:  # (its logger is this runner's alone: not found by name)
            self.interface.logger.parent = self.logger

        # The thread that may use the runner (None once closed); see "One thread" above.
        self._owner: int | None = get_ident()
        self._owner_thread = threading.current_thread()
        self.listeners: list = []  # objects with run_started(run_id, handle) and/or run_ended(status)
        self.failed: dict[int, RunStatus] = {}
        self.next_run_id = 0
        self.events = EventLoop()
        self._active = ActiveRuns(self.events)
        self._attempts: dict[int, int] = {}  # attempt number of active runs that were retried
        # An interface that receives messages (zeromq) wakes the runner when they arrive.
        interface_fd = self.interface.fileno()
        if interface_fd is not None:
            self.events.watch(interface_fd, _INTERFACE_EVENT)
        self.logger.debug("init %r with config %s", self, self.config)

    @property
    def runs(self) -> dict[int, object]:
        """The active runs by run id (their handles; runners written for proFit add their own)."""
        return self._active.runs

    @runs.setter
    def runs(self, runs: dict[int, object]) -> None:
        self._active.runs = runs  # (proFit's runners assign a fresh dict in __init__)

    @property
    def worker(self) -> dict:
        """The config every Worker is built from, ``{"class": label, ...}`` (proFit's name of :attr:`worker_config`)."""
        return self.worker_config

    @worker.setter
    def worker(self, config: dict) -> None:
        self.worker_config = config

    @property
    def base_dir(self) -> str:
        """Where the study's relative paths (a template) start; workers get it as ``PROFIT_BASE_DIR``."""
        return study_base_dir(self.worker_config.get("base_dir"))

    @base_dir.setter
    def base_dir(self, path: str) -> None:
        self.worker_config["base_dir"] = path

    @classmethod
    def from_config(cls, run_config: Mapping, base_config: Mapping) -> Runner:
        """Build a runner from the ``run:`` section of a study and the study's base config.

        ``run_config`` holds ``runner`` (label or mapping), ``interface``, ``worker``,
        ``pre``, ``post``, ``command`` and ``debug``; ``base_config`` holds ``ntrain``,
        ``input``, ``output``, ``run_dir`` and optionally ``base_dir`` (see
        :func:`profit.run.config.runner_options`).

        Args:
            run_config: the ``run:`` section.
            base_config: the study's base config.

        Returns:
            A runner of the class that ``run_config["runner"]`` names.
        """
        from .config import runner_options

        label, options = runner_options(run_config, base_config)
        return cls[label](**options)

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
        from .includes import worker_includes

        env = {
            **os.environ,
            "PROFIT_WORKER": json.dumps(self.worker_config),
            "PROFIT_INTERFACE": json.dumps(self.interface.config),
            # The caller's PROFIT_INCLUDES merged with what this process loaded.
            "PROFIT_INCLUDES": json.dumps(worker_includes()),
            "PROFIT_BASE_DIR": self.base_dir,
        }
        env.pop("PROFIT_ARRAY_ID", None)
        return env

    # --- inputs ------------------------------------------------------------------

    def _ensure_rows(self, count: int) -> None:
        if count > self.interface.size:
            self.interface.resize(max(count, 2 * self.interface.size))

    def _input_row(self, params: object, run_id: int) -> tuple:
        return input_row(params, run_id, self.interface.input_names, self.interface.input.dtype)

    def fill(self, params_array: Iterable, offset: int = 0) -> None:
        """Write many input rows starting at row ``offset``.

        Args:
            params_array: the rows: a structured array, a pandas DataFrame, or a sequence of
                mappings (input name to value) or records.
            offset: the row (run id) of the first one.
        """
        if get_ident() != self._owner:
            self._refuse("fill")
        params_array = parameter_rows(params_array)
        if self._fill_exact(params_array, offset):
            return
        rows = [self._input_row(params, offset + index) for index, params in enumerate(params_array)]
        self._ensure_rows(offset + len(rows))
        for index, row in enumerate(rows):
            self.interface.input[offset + index] = row

    def _fill_exact(self, params_array: object, offset: int) -> bool:
        """Write a structured array of exactly the inputs (names and dtypes: nothing to check or
        convert, as in ``input_row``) column by column; False for anything else (written row by row)."""
        interface = self.interface
        names = tuple(interface.input_names)
        if not (
            isinstance(params_array, np.ndarray)
            and params_array.ndim == 1
            and params_array.dtype.names == names
            and all(params_array.dtype[name] == interface.input.dtype[name] for name in names)
        ):
            return False
        self._ensure_rows(offset + len(params_array))
        rows = interface.input[offset : offset + len(params_array)]  # (read after growing: a view of the rows)
        for name in names:
            rows[name] = params_array[name]
        return True

    def fill_output(self, named_output: numpy.ndarray, offset: int = 0) -> None:
        """Write known outputs starting at row ``offset``.

        Args:
            named_output: a structured array whose fields are output names.
            offset: the row (run id) of its first row.

        Raises:
            ParameterError: A field is not an output.
        """
        if get_ident() != self._owner:
            self._refuse("fill_output")
        names = named_output.dtype.names or ()
        unknown = [name for name in names if name not in self.interface.output_names]
        if unknown:
            raise ParameterError(
                f"fill_output: {', '.join(map(repr, unknown))} not among the outputs "
                f"({', '.join(self.interface.output_names)})"
            )
        self._ensure_rows(offset + len(named_output))
        for name in names:
            self.interface.output[name][offset : offset + len(named_output)] = named_output[name]

    # --- starting runs -----------------------------------------------------------------

    def spawn(self, params: object = None, wait: bool = False) -> int:
        """Spawn a single run

        The run gets the next run id; the interface grows as needed.

        Args:
            params: a mapping which defines input parameters to be set: a mapping or numpy
                record of every input (or a one-row structured array, a pandas Series or
                one-row DataFrame), or None when the row was filled before (:meth:`fill`).
            wait: whether to wait for the run to complete

        Returns:
            The run id.
        """
        if get_ident() != self._owner:
            self._refuse("spawn")
        return self._spawn_at(self.next_run_id, None if params is None else single_parameters(params), wait)

    def respawn(self, run_id: int, wait: bool = False) -> int:
        """Run ``run_id`` again, with the inputs in its row (after a failure or a cancel, or to resume).

        The run keeps its id and row; its previous outcome is forgotten.

        Args:
            run_id: the run.
            wait: whether to wait for the run to complete.

        Returns:
            The run id.

        Raises:
            ConfigError: The run is still active, or this runner starts runs in ``spawn`` itself
                (a runner written for proFit).
            RunNotFoundError: The interface holds no row ``run_id``.
        """
        if get_ident() != self._owner:
            self._refuse("respawn")
        if run_id in self.runs:
            raise ConfigError(f"run {run_id} is still active; wait for it or cancel it before running it again")
        if not 0 <= run_id < self.interface.size:
            raise RunNotFoundError(f"run {run_id} does not exist (the interface holds {self.interface.size} runs)")
        if type(self)._start is Runner._start:
            raise ConfigError(f"{type(self).__name__} cannot run a run again (it starts runs in spawn itself)")
        self._forget_outcome(run_id)
        return self._spawn_at(run_id, None, wait)

    def _forget_outcome(self, run_id: int) -> None:
        """Before a run runs again: its earlier failure and attempts no longer count."""
        self.failed.pop(run_id, None)
        self._attempts.pop(run_id, None)

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
        if self._active.add(run_id, handle).clock_at_launch:
            self._start_clock(run_id)
        self.next_run_id = max(self.next_run_id, run_id + 1)
        self.logger.debug("run %d started", run_id)
        self._notify("run_started", run_id, handle)

    @property
    def capacity(self) -> int:
        """How many runs :meth:`drive` (and :meth:`spawn_array`) keeps active at once (``parallel``; 0: no limit)."""
        return self.parallel

    def _start_clock(self, run_id: int) -> None:
        """From now on, ``run_id`` has ``timeout`` seconds (if a timeout is set)."""
        if self.timeout is not None:
            self.events.set_deadline(run_id, self.timeout)

    def spawn_array(self, params_array: Iterable, wait: bool = False, progress: bool = False) -> None:
        """Spawn one run per row (run ids from :attr:`next_run_id` on), never more than ``capacity``
        at once; block until all started, or with ``wait`` until all ended (see :meth:`drive`).

        Args:
            params_array: the rows: a structured array, a pandas DataFrame, or a sequence of
                mappings or records.
            wait: block until all runs ended, not only until all started.
            progress: show a progress bar.
        """
        if get_ident() != self._owner:
            self._refuse("spawn_array")
        params_array = parameter_rows(params_array)
        rows = params_array if hasattr(params_array, "__len__") else list(params_array)
        first = self.next_run_id
        bar = self._progress(progress, total=first + len(rows))  # type: ignore[arg-type]  # (has __len__)
        try:
            self.fill(rows, offset=first)
            tick = None if bar is None else lambda: self._show(bar)
            self._drive(range(first, first + len(rows)), None, tick, until_ended=wait)  # type: ignore[arg-type]
        finally:
            self._show(bar, force=True, close=True)

    def drive(
        self,
        run_ids: Iterable[int],
        *,
        stop: Callable[[], bool] | None = None,
        tick: Callable[[], object] | None = None,
    ) -> None:
        """Run these runs (their input rows are already filled), at most ``capacity`` active at once,
        until all of them ended or ``stop()`` returns True.

        After a stop, :meth:`drive` returns at once: the runs not started yet stay
        as they were (PENDING for new rows), the active ones are left to the
        caller (who cancels them with :meth:`close` or :meth:`cancel_all`).
        With ``stop`` or ``tick`` the loop never blocks longer than half a second,
        so a stop (a Ctrl-C flag) is noticed quickly.
        Runs are handed to the backend in batches (:meth:`_start_batch`): all at
        once without a ``capacity``, else as many as there is room for.

        Args:
            run_ids: any existing rows, new ones or ones that ran before (each is started
                like :meth:`respawn`: its earlier outcome is forgotten).
            stop: called while the loop runs; True ends it.
            tick: called at least every half second while the loop waits (a progress line,
                flushing results).

        Raises:
            ConfigError: A run is active already (refused before anything starts).
        """
        if get_ident() != self._owner:
            self._refuse("drive")
        self._drive(run_ids, stop, tick, until_ended=True)

    def _drive(
        self,
        run_ids: Iterable[int],
        stop: Callable[[], bool] | None,
        tick: Callable[[], object] | None,
        *,
        until_ended: bool,
    ) -> None:
        """The loop of :meth:`drive`; without ``until_ended`` it returns once every run started."""
        ids = run_ids if isinstance(run_ids, list) else list(run_ids)
        runs, size = self.runs, self.interface.size
        for run_id in ids:
            if run_id in runs:
                raise ConfigError(f"run {run_id} is still active; wait for it or cancel it before running it again")
            if not 0 <= run_id < size:
                raise RunNotFoundError(f"run {run_id} does not exist (the interface holds {size} runs)")
        if not isinstance(run_ids, range) and len(ids) > 1:
            # (sorted as an array: a set of 10**5 ids would cost the runner megabytes at its peak)
            order = np.sort(np.fromiter(ids, np.int64, count=len(ids)))
            repeated = order[1:][order[1:] == order[:-1]]
            if len(repeated):
                raise ConfigError(f"run {int(repeated[0])} is given more than once")
        timeout = None if stop is None and tick is None else 0.5
        count = len(ids)
        started = 0  # ids[:started] were handed to the backend
        ended = 0  # ids[:ended] have ended (checked once all started)
        while True:
            if stop is not None and stop():
                return
            if started < count:
                capacity = self.capacity
                room = count - started if not capacity else capacity - len(self.runs)
                if room > 0:
                    end = self._batch_end(ids, started, min(count, started + room))
                    self._start_batch(ids[started:end])
                    started = end
                    continue
            else:
                if not until_ended:
                    return
                runs = self.runs
                while ended < count and ids[ended] not in runs:
                    ended += 1
                if ended == count:
                    return
            self._process_events(timeout)
            if tick is not None:
                tick()

    def _batch_end(self, run_ids: list[int], start: int, end: int) -> int:
        """Where the batch :meth:`drive` hands :meth:`_start_batch` next ends: ``run_ids[start:end]``
        fit ``capacity``; a variant may hand fewer (at least one)."""
        return end

    def _start_batch(self, run_ids: list[int]) -> None:
        """Start these runs (their rows are filled); by default one by one, as :meth:`respawn` does."""
        if type(self)._start is Runner._start:  # a runner written for proFit: its spawn starts the next run
            for run_id in run_ids:
                if run_id != self.next_run_id:
                    raise ConfigError(
                        f"{type(self).__name__} cannot run run {run_id} (it starts only new runs, in spawn itself)"
                    )
                self.spawn()
            return
        runs = self.runs
        for run_id in run_ids:
            if run_id in runs:  # (active since drive began: a listener started it)
                raise ConfigError(f"run {run_id} is still active; wait for it or cancel it before running it again")
            self._forget_outcome(run_id)
            self._spawn_at(run_id, None, wait=False)

    # --- bulk paths: many runs started or ended at once ------------------------------------
    #
    # For backends that take runs by the thousand (a pool of workers): the same bookkeeping as
    # _spawn_at/_launch and _settle, in one pass over many runs, with vectorised writes to the
    # interface. A variant implements _start_many and calls _spawn_many and _settle_succeeded.

    def _start_many(self, run_ids: list[int]) -> list[RunHandle]:
        """Start the Workers of these runs (rows filled, marked RUNNING); one handle per run, in order.

        Only variants that call :meth:`_spawn_many` implement it.

        Args:
            run_ids: the runs.

        Returns:
            Their handles.

        Raises:
            NotImplementedError: The variant does not start runs in bulk.
        """
        raise NotImplementedError(f"{type(self).__name__} does not start runs in bulk")

    def _spawn_many(self, run_ids: list[int]) -> None:
        """Start these runs as :meth:`_start_batch` does (their earlier outcomes forgotten), with one
        bookkeeping pass: marked RUNNING together, started by :meth:`_start_many`, recorded together.

        Args:
            run_ids: runs whose rows are filled and that are not active.

        Raises:
            ConfigError: A run is active.
        """
        runs = self.runs
        for run_id in run_ids:
            if run_id in runs:  # (active since drive began: a listener started it)
                raise ConfigError(f"run {run_id} is still active; wait for it or cancel it before running it again")
        if self.failed or self._attempts:
            for run_id in run_ids:
                self._forget_outcome(run_id)
        self._ensure_rows(max(run_ids) + 1)
        self._mark_many(run_ids, RunState.RUNNING)  # before the workers start, as in _spawn_at
        try:
            handles = self._start_many(run_ids)
        except BaseException:
            self._mark_many(run_ids, RunState.PENDING)  # none of them started
            raise
        self._launch_many(run_ids, handles)

    def _launch_many(self, run_ids: list[int], handles: list[RunHandle]) -> None:
        """Record many started runs, as :meth:`_launch` records one."""
        tracked = self._active.add_many(run_ids, handles)
        if self.timeout is not None:
            for run_id, handle in zip(run_ids, tracked):
                if handle.clock_at_launch:
                    self._start_clock(run_id)
        self.next_run_id = max(self.next_run_id, max(run_ids) + 1)
        if self.logger.isEnabledFor(logging.DEBUG):
            for run_id in run_ids:
                self.logger.debug("run %d started", run_id)
        if self.listeners:
            for run_id, handle in zip(run_ids, handles):
                self._notify("run_started", run_id, handle)

    def _settle_succeeded(self, run_ids: list[int]) -> None:
        """Settle active runs whose Workers ended with exit code 0 (read before this call), as
        :meth:`_settle` would: those that transmitted are DONE, recorded in one pass; any other
        goes through :meth:`_settle` (a retry, a failure).

        Args:
            run_ids: active runs.
        """
        from ._proc import ExitStatus

        ids = np.asarray(run_ids, dtype=np.intp)
        transmitted = np.asarray(self.interface.internal["DONE"][ids], dtype=bool)
        done = ids[transmitted].tolist() if not transmitted.all() else list(run_ids)
        if len(done) < len(run_ids):
            for run_id in ids[~transmitted].tolist():
                self._settle(run_id, ExitStatus(code=0))
        if not done:
            return
        self._active.remove_many(done)
        if self.timeout is not None:
            for run_id in done:
                self.events.clear_deadline(run_id)
        if self._attempts:
            for run_id in done:
                self._attempts.pop(run_id, None)
        self._mark_many(done, RunState.DONE)
        if self.listeners:
            for run_id in done:
                self._notify("run_ended", RunStatus(run_id, RunState.DONE))

    def _mark_many(self, run_ids: list[int], state: RunState) -> None:
        """:meth:`RunnerInterface.mark` of many runs, without a reason, in vectorised writes."""
        first = run_ids[0]
        index: slice | numpy.ndarray
        if run_ids[-1] - first + 1 == len(run_ids) and (
            len(run_ids) < 3 or bool((np.diff(np.asarray(run_ids)) == 1).all())
        ):
            index = slice(first, first + len(run_ids))  # a contiguous range (spawn_array's): a view, no copy
        else:
            index = np.asarray(run_ids, dtype=np.intp)
        interface = self.interface
        if state != RunState.DONE:
            output = interface.output
            for name in output.dtype.names or ():
                column = output[name]  # (a view: the assignment reaches the interface's rows)
                column[index] = np.nan if column.dtype.kind == "f" else 0
        internal = interface.internal
        internal["REASON"][index] = b""
        internal["DONE"][index] = state == RunState.DONE
        internal["STATE"][index] = state

    # --- observing runs -----------------------------------------------------------------

    def _handle(self, run_id: int) -> RunHandle:
        """The handle of an active run (a foreign object read through :class:`ForeignHandle`)."""
        handle = self._active.handle(run_id)
        if handle is None:
            raise RunNotFoundError(
                f"run {run_id} is not active (active runs: {len(self.runs)}, next run id: {self.next_run_id})"
            )
        return handle

    def poll(self, run_id: int) -> None:
        """Check the status of the run directly

        Settles the run if it has ended.

        Args:
            run_id: an active run.

        Raises:
            RunNotFoundError: The run is not active.
        """
        if get_ident() != self._owner:
            self._refuse("poll")
        handle = self._handle(run_id)
        ending = handle.poll()
        # A run without a process here (a job, a proFit-style handle) has ended when its results arrived.
        if ending is not None or (
            handle.notice is Notice.POLL and handle.tree() is None and self.interface.transmitted(run_id)
        ):
            self._settle(run_id, ending)

    def poll_all(self) -> None:
        """Check every active run directly."""
        if get_ident() != self._owner:
            self._refuse("poll_all")
        for run_id in list(self.runs):
            if run_id in self.runs:
                self.poll(run_id)

    def check_runs(self) -> None:
        """Receive what the interface has, then check every active run."""
        if get_ident() != self._owner:
            self._refuse("check_runs")
        self.interface.poll()
        self.poll_all()

    def _settle(
        self,
        run_id: int,
        ending: Ending | None,
        *,
        timed_out: bool = False,
        cancelled: bool = False,
        retry: bool = True,
    ) -> RunStatus:
        """Decide how an active run ended (see :mod:`profit.run.outcome`), record it, and return its status.

        ``ending`` (an exit status or a scheduler's verdict, or None) was read
        *before* the interface's transmitted flag. A failed run with retries left
        (and ``retry``) starts again at once, with the same id and row; its status
        is then RUNNING.
        """
        self._active.remove(run_id)
        self.events.clear_deadline(run_id)
        attempt = self._attempts.pop(run_id, 1)
        transmitted = self.interface.transmitted(run_id)
        reported = "" if transmitted else self._reported_reason(run_id)
        verdict = decide(
            Observation(run_id, transmitted, ending, timed_out, cancelled, reported, attempt),
            retries=self.retries,
            may_retry=retry,
            timeout=self.timeout,
            through_shell=self._through_shell,
            last_log_line=lambda: self._last_log_line(run_id),
            left_behind=lambda: self._left_behind(run_id),
        )
        if isinstance(verdict, Retry):
            self.logger.info(
                "run %d failed (attempt %d of %d): %s; running it again",
                run_id,
                attempt,
                self.retries + 1,
                verdict.reason,
            )
            self._spawn_at(run_id, None, wait=False)
            self._attempts[run_id] = verdict.attempt
            return RunStatus(run_id, RunState.RUNNING)
        status = verdict
        if status.state == RunState.DONE:
            if ending is not None and not ending.success:
                self.logger.warning("run %d transmitted its results, then %s", run_id, ending.describe())
        elif status.state == RunState.CANCELLED:
            self.failed[run_id] = status
            self.logger.info("run %d cancelled", run_id)
        else:
            self.failed[run_id] = status
            self.logger.info("run %d failed: %s", run_id, status.reason)
        self.interface.mark(run_id, status.state, status.reason)
        self._notify("run_ended", status)
        return status

    def _reported_reason(self, run_id: int) -> str:
        """The reason the worker of ``run_id`` reported for its failure, if it did."""
        if self.interface.state(run_id) == RunState.FAILED:
            return self.interface.reason(run_id)
        return ""

    _through_shell = False  # runners that start workers through a shell say so

    def _left_behind(self, run_id: int) -> str:
        """Where a run that was cut off left its traces: its log and its run directory, where they exist."""
        log = run_log_file(self.worker_config.get("log_path", "log"), run_id)
        places = [f"its log: {log}"] if os.path.exists(os.path.join(self.work_dir, log)) else []
        if os.path.isdir(os.path.join(self.work_dir, run_dir_name(run_id))):
            places.append(f"run directory kept: {run_dir_name(run_id)}")
        return "; ".join(places)

    def _last_log_line(self, run_id: int) -> str:
        from ._files import tail

        log_path = self.worker_config.get("log_path", "log")
        return tail(os.path.join(self.work_dir, run_log_file(log_path, run_id)))

    def status(self, run_id: int) -> RunStatus:
        """The state of any run of this runner, with the reason where it did not succeed.

        Args:
            run_id: the run.

        Returns:
            Its run id, state and reason.

        Raises:
            RunNotFoundError: The interface holds no row ``run_id``.
        """
        if not 0 <= run_id < self.interface.size:
            raise RunNotFoundError(f"run {run_id} does not exist (the interface holds {self.interface.size} runs)")
        if run_id in self.failed:
            return self.failed[run_id]
        return RunStatus(run_id, self.interface.state(run_id), self.interface.reason(run_id))

    @property
    def failed_runs(self) -> dict[int, RunStatus]:
        """The runs that failed (not those cancelled), by run id."""
        return {run_id: status for run_id, status in self.failed.items() if status.state == RunState.FAILED}

    @property
    def cancelled_runs(self) -> dict[int, RunStatus]:
        """The runs that were cancelled, by run id."""
        return {run_id: status for run_id, status in self.failed.items() if status.state == RunState.CANCELLED}

    # --- waiting ----------------------------------------------------------------------

    def _before_waiting(self) -> bool:
        """Hand over what a variant buffered (a pool sends runs in batches) before blocking; True
        where that settled runs (their ends were read earlier): the caller has more to do, not to wait."""
        return False

    def _process_events(self, timeout: float | None) -> None:
        """Wait up to ``timeout`` for a run to end and settle the runs that did."""
        if self._before_waiting():
            timeout = 0
        polling = self._active.need_polling
        if self.interface.backlog:
            timeout = 0  # messages wait that no new event will announce
        ready = self.events.wait(timeout, self._poll_interval() if polling else None)
        self.interface.poll()
        for data in ready:
            if callable(data):  # an event source of the variant (a pool's result pipe)
                data()
            elif data is not _INTERFACE_EVENT and data in self.runs:
                self.poll(data)
        if polling:
            self.check_runs()
        if self.events.has_deadlines:
            self._expire()

    def _poll_interval(self) -> float:
        """How often runs without an exit event are checked (``sleep``; short when others have events)."""
        return self._active.poll_interval(self.sleep)

    def _expire(self) -> None:
        """End the runs whose time is up (their whole process tree)."""
        for run_id in self.events.expired():
            if run_id in self.runs:
                self._stop_runs([run_id], grace=0.0, timed_out=True)

    def wait_some(self, timeout: float | None = None) -> None:
        """Block until at least one active run ends (or ``timeout`` seconds pass); settle what ended.

        Args:
            timeout: seconds to wait at most (None: no limit).
        """
        if get_ident() != self._owner:
            self._refuse("wait_some")
        self._process_events(timeout)

    def _notify(self, event: str, *args: object) -> None:
        for listener in self.listeners:
            method = getattr(listener, event, None)
            if method is not None:
                method(*args)

    def _wait_until(self, finished: Callable[[], bool], timeout: float | None, bar: RunProgress | None = None) -> None:
        import time

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
            self._show(bar)

    def wait(self, run_id: int, timeout: float | None = None) -> RunStatus:
        """Block until ``run_id`` has ended (at once if it has); return its status.

        Args:
            run_id: the run.
            timeout: seconds to wait at most (None: no limit).

        Returns:
            The run's status (as :meth:`status`).

        Raises:
            RunNotFoundError: The run was never started.
            WaitTimeout: The run is still active after ``timeout`` seconds (it keeps running).
        """
        if get_ident() != self._owner:
            self._refuse("wait")
        if run_id not in self.runs and not 0 <= run_id < self.next_run_id:
            raise RunNotFoundError(f"run {run_id} was never started (next run id: {self.next_run_id})")
        self._wait_until(lambda: run_id not in self.runs, timeout)
        return self.status(run_id)

    def wait_all(self, progress: bool = False, timeout: float | None = None) -> None:
        """Block until every active run has ended (``WaitTimeout`` after ``timeout`` seconds).

        Args:
            progress: show a progress bar.
            timeout: seconds to wait at most (None: no limit).

        Raises:
            WaitTimeout: Runs are still active after ``timeout`` seconds (they keep running).
        """
        if get_ident() != self._owner:
            self._refuse("wait_all")
        bar = self._progress(progress, total=self.next_run_id)
        try:
            self._wait_until(lambda: not self.runs, timeout, bar)
        finally:
            self._show(bar, force=True, close=True)

    def _progress(self, progress: bool, total: int) -> RunProgress | None:
        return RunProgress(total) if progress else None

    def _show(self, bar: RunProgress | None, force: bool = False, close: bool = False) -> None:
        if bar is None:
            return
        bar.update(started=self.next_run_id, running=len(self.runs), failed=len(self.failed), force=force)
        if close:
            bar.close()

    # --- stopping runs --------------------------------------------------------------

    cancel_grace = 1.0
    """Seconds a run has to end after SIGTERM before SIGKILL ends its process tree."""

    def cancel(self, run_id: int) -> RunStatus:
        """End the run's whole process tree and mark it cancelled.

        A run that had already ended is settled as it ended instead.

        Args:
            run_id: an active run.

        Returns:
            The run's status.

        Raises:
            RunNotFoundError: The run is not active.
        """
        if get_ident() != self._owner:
            self._refuse("cancel")
        handle = self._handle(run_id)
        if handle.exited():
            return self._settle(run_id, handle.poll(), retry=False)
        return self._stop_runs([run_id], grace=self.cancel_grace, cancelled=True)[0]

    def cancel_all(self) -> None:
        """Cancel every active run (all are signalled at once, then given the grace time)."""
        if get_ident() != self._owner:
            self._refuse("cancel_all")
        self.logger.debug("cancel all %d runs", len(self.runs))
        for run_id in list(self.runs):
            handle = self._handle(run_id)
            if handle.exited():
                self._settle(run_id, handle.poll(), retry=False)
        if self.runs:
            self._stop_runs(list(self.runs), grace=self.cancel_grace, cancelled=True)

    def _stop_runs(
        self, run_ids: list[int], grace: float, *, cancelled: bool = False, timed_out: bool = False
    ) -> list[RunStatus]:
        """End these active runs and settle them (cancelled, or timed out).

        Process trees are ended together (:func:`~profit.run._proc.stop_trees`:
        SIGTERM, then SIGKILL after ``grace`` seconds); a run without a process
        tree here is asked to ``stop()``. A run that transmitted before it was
        stopped keeps its result (one decision, in :meth:`_settle`).
        """
        handles = {run_id: self._handle(run_id) for run_id in run_ids}
        trees = {run_id: handle.tree() for run_id, handle in handles.items()}
        with_tree = [(run_id, tree) for run_id in run_ids if (tree := trees[run_id]) is not None]
        statuses = stop_trees([tree for _, tree in with_tree], grace)
        endings: dict[int, Ending] = {run_id: status for (run_id, _), status in zip(with_tree, statuses)}
        for run_id in run_ids:
            if trees[run_id] is None:
                handles[run_id].stop()
        return [
            self._settle(run_id, endings.get(run_id), cancelled=cancelled, timed_out=timed_out) for run_id in run_ids
        ]

    # --- results -------------------------------------------------------------------------

    @property
    def input_data(self) -> numpy.ndarray:
        """Inputs of the completed runs (a structured array), as in proFit.

        Failed, cancelled and unfinished runs are left out, so the position of a
        row here is not its run id. For results aligned with their runs (row *i*
        is run *i*, failed rows NaN with state and reason) use ``interface.input``
        and ``interface.output`` with :meth:`status`, or, for a study,
        :meth:`profit.Study.results`, :meth:`~profit.Study.to_dataframe` and
        :meth:`~profit.Study.to_xarray`.
        """
        return self.interface.input[self.interface.internal["DONE"]]

    @property
    def output_data(self) -> numpy.ndarray:
        """Outputs of the completed runs (a structured array), as in proFit: row *i* is not run *i*
        when a run failed (see :attr:`input_data` for the aligned accessors)."""
        return self.interface.output[self.interface.internal["DONE"]]

    @property
    def flat_output_data(self) -> numpy.ndarray:
        """Outputs of the completed runs as a plain 2-D float array (vectors spread over columns)."""
        from numpy.lib import recfunctions

        data = self.output_data
        return recfunctions.structured_to_unstructured(data, dtype=np.float64).reshape(len(data), -1)

    def close(self) -> None:
        """Cancel what still runs and release the runner's event sources (it cannot be used after;
        closing again does nothing)."""
        if not self._take_for_closing():
            return
        try:
            self.cancel_all()
        finally:
            self._owner = None  # closed: every state-changing method refuses from now on
            self.events.close()
            self.interface.close()
            if self._runner_log_file is not None:
                self.logger.removeHandler(self._runner_log_file)
                self._runner_log_file.close()
                self._runner_log_file = None

    def _own_log(self, path: str) -> logging.Logger:
        """A logger of this runner alone that writes ``path`` (proFit's ``logfile``) and passes its records
        on to ``profit.run.runner``; not registered by name, so it goes with the runner."""
        from ._lazy import logging as logging_module

        shared = logging_module.getLogger("profit.run.runner")
        logger = logging_module.Logger(f"profit.run.runner[{os.path.basename(self.work_dir) or '.'}]")
        logger.parent = shared
        handler = logging_module.FileHandler(path)
        handler.setFormatter(logging_module.Formatter("{asctime} {levelname:8s} {name}: {message}", style="{"))
        handler.setLevel(logging_module.DEBUG if self.debug else logging_module.INFO)
        logger.addHandler(handler)
        logger.setLevel(logging_module.DEBUG if self.debug else logging_module.INFO)
        self._runner_log_file = handler
        return logger

    def _take_for_closing(self) -> bool:
        """Whether this call of close() is to close the runner (False: it is closed already).

        Another thread than the owner may close it only once the owner has ended
        (it then becomes the owner); else ConfigError, as for the other methods.
        """
        if get_ident() == self._owner:
            return True
        if self._owner is None:
            return False
        if self._owner_thread.is_alive():
            self._refuse("close")
        self._owner = get_ident()
        return True

    def _refuse(self, method: str) -> None:
        """Raise for a call of ``method`` from another thread than the owner, or after close()."""
        if self._owner is None:
            raise ConfigError(f"{method}: the runner is closed; build a new runner to run more")
        raise ConfigError(
            f"{method}: this runner belongs to thread {self._owner_thread.name!r}, which built it, and cannot "
            f"be used from thread {threading.current_thread().name!r} (use one runner per thread)"
        )

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def clean(self) -> None:
        """Remove what runs left in the work directory: interface, run directories, logs.

        Raises:
            ConfigError: Runs are still active.
        """
        if self.runs:
            raise ConfigError(f"clean: {len(self.runs)} runs are still active; wait for or cancel them first")
        self.interface.clean()
        clean_work_dir(self.work_dir, log_path=self.worker_config.get("log_path", "log"), files=[self.logfile])
