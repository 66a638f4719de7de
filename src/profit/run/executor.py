"""profit.run.Executor: a :class:`concurrent.futures.Executor` over any runner.

Optimizers, samplers and active-learning loops take an executor or a pool;
this one runs each call as a run of a runner (``fork``, ``pool``, ``local``,
``slurm``, ...), so every call has a state and a reason, a timeout, retries and
a cancel that ends its whole process tree::

    with Executor("pool", parallel=4) as executor:
        futures = [executor.submit(simulate, x) for x in points]   # concurrent.futures.Future
        values = executor.map(simulate, points)                    # in input order
        scipy.optimize.differential_evolution(f, bounds, workers=executor)
        emcee.EnsembleSampler(n, ndim, log_prob, pool=executor)

A driver thread owns the runners (one per function and call signature: see
:mod:`profit.run.lanes`); ``submit`` hands it calls through a queue and a wake-up
pipe. Numbers and numeric numpy arrays travel in the runs' rows; other
arguments and results travel pickled through files in the work directory.

Bound to a study directory (``study=``), every evaluation is recorded there, and
a script started again gets the evaluations that finished back at once.
"""

from __future__ import annotations

import collections
import concurrent.futures
import json
import os
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import _base

from . import options as check
from ._lazy import logging
from .errors import ConfigError, RunFailed
from .functions import call_signature, flat_values, pickled_call
from .state import RunState, RunStatus

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .lanes import Lane

__all__ = ["Executor", "RunFailed", "RunFuture"]

_LOGGER_NAME = "profit.run.executor"
# In a lane's folder: the result layout of the lane that took over its calls.
SUCCESSOR = "successor.json"
# Lanes kept open at most (beyond, idle ones are closed; a lane is made again when needed).
MAX_OPEN_LANES = 16


class RunFuture(concurrent.futures.Future):
    """The future of one call: a :class:`concurrent.futures.Future` tied to its run.

    :meth:`cancel` cancels the run too, also while it runs (its process tree
    ends). A failed run raises :class:`~profit.run.errors.RunFailed` from
    :meth:`result` (``nan_on_failure`` applies to :meth:`Executor.map` and the
    calls like it, where a NaN stands in for the result; a future always tells).

    Args:
        executor: The executor the call was submitted to.
    """

    def __init__(self, executor: Executor):
        super().__init__()
        self._executor_ref = weakref.ref(executor)
        self._run: tuple[Lane, int] | None = None  # set by the driver once the call has a run

    def cancel(self) -> bool:
        """Cancel the call, and its run if it has one (a running run is ended). False if it has finished."""
        with self._condition:
            if self._state == _base.FINISHED:
                return False
            if self._state in (_base.CANCELLED, _base.CANCELLED_AND_NOTIFIED):
                return True
            self._state = _base.CANCELLED
            self._condition.notify_all()
            # (waiters of as_completed and wait learn of it now; under the lock, so the driver's
            # _wanted cannot notify in between: a second notification raised RuntimeError here)
            self.set_running_or_notify_cancel()
        executor = self._executor_ref()
        if executor is not None:
            executor._post("cancel", self)
        self._invoke_callbacks()  # type: ignore[attr-defined]  # (Future's own, untyped)
        return True


class _Call:
    """One call: its function, how its arguments travel, its future."""

    __slots__ = ("function", "signature", "row", "payload", "future")

    def __init__(self, function: Callable, args: tuple, kwargs: dict, future: RunFuture, forked: bool):
        self.function = function
        self.future = future
        self.signature = call_signature(args, kwargs)
        if self.signature is not None:
            self.row: tuple = flat_values(args, kwargs, self.signature)
            self.payload: bytes | None = None
        else:
            from .lanes import digest_row

            self.payload, digest = pickled_call(args, kwargs, what=f"an argument of {_name(function)}", forked=forked)
            self.row = digest_row(digest)


def _name(function: object) -> str:
    return getattr(function, "__qualname__", None) or type(function).__qualname__


class Executor(concurrent.futures.Executor):
    """Run calls of Python functions as runs of a runner: a :class:`concurrent.futures.Executor`.

    Args:
        runner: a runner label (``fork``, ``pool``, ``local``, ``slurm``, ...) or a mapping
            ``{"class": label, **options}`` as under ``run.runner`` in a study.
        parallel: how many calls run at once (default: the runner's, the usable CPUs locally).
        timeout: seconds a call may take; then its process tree is ended and it fails.
        retries: how many times a failed call runs again before it counts as failed.
        work_dir: where the runs' files and logs go (default: a temporary directory,
            removed at :meth:`shutdown`; a study's ``evaluations/`` when bound to one).
        study: a directory (or a :class:`profit.Study`) whose store records every
            evaluation; calls answered there before are answered at once (see below).
        interface: the interface: a label (``memmap``, ``zeromq``) or ``{"class": label, **options}``.
        nan_on_failure: :meth:`map`, :meth:`starmap` and calling the executor give ``nan`` for a
            failed call instead of raising :class:`RunFailed` (a future's ``result()`` still raises).
        unordered: :meth:`map` yields results as they come, not in input order.
        fresh: with ``study``, forget the evaluations recorded there first.
        debug: the runners log in more detail.
        **options: the runner's own options (``depth``, ``cpus``, ``partition``, ...).

    Raises:
        ConfigError: An option is not valid: ``options`` that the executor sets itself
            (``interface``, ``worker``, ``work_dir``, ``logger``), both ``study`` and ``work_dir``,
            ``fresh`` without ``study``, or a study directory that another executor uses.

    **Memoised evaluations.** Bound to a study directory, each call is keyed by the
    function's identity and its exact arguments. The same function means: the
    same module and qualified name, the same code (instructions, constants,
    default values, the values of its closure; for a callable object its class
    and attributes); editing the function's body starts a new record, while a
    change in a global it reads or a function it calls does not. Exact arguments
    means the same types and the same bits (``1`` and ``1.0`` differ). Failed
    calls are not remembered: they run again. Start afresh with ``fresh=True``
    or by deleting ``evaluations/`` in the study directory.
    """

    def __init__(
        self,
        runner: str | Mapping = "fork",
        *,
        parallel: int | str | None = None,
        timeout: float | None = None,
        retries: int = 0,
        work_dir: str | os.PathLike[str] | None = None,
        study: object = None,
        interface: str | Mapping = "memmap",
        nan_on_failure: bool = False,
        unordered: bool = False,
        fresh: bool = False,
        debug: bool = False,
        **options: Any,
    ):
        from .config import check_options
        from .runner import Runner

        spec = {"class": runner} if isinstance(runner, str) else dict(runner)
        label = spec.pop("class", "fork")
        runner_class = Runner.resolve(label, "runner")[0]
        options = {**spec, **options}
        if parallel is not None:
            options["parallel"] = parallel
        options.update(
            timeout=check.optional_seconds(timeout, "timeout"), retries=check.whole_number(retries, "retries")
        )
        options["debug"] = check.boolean(debug, "debug")
        for key in ("interface", "worker", "work_dir", "logger"):
            if key in options:
                raise ConfigError(f"Executor: {key!r} is not a runner option here; the executor sets it")
        check_options(runner_class, options, "runner", where="Executor")
        self._label = label
        self._forked = bool(getattr(runner_class, "forks_workers", False))
        self._options = options
        if not isinstance(interface, (str, Mapping)):
            raise ConfigError(f"Executor: interface {interface!r} must be a label or a mapping {{'class': label, ...}}")
        self._interface = {"class": interface} if isinstance(interface, str) else dict(interface)
        self.nan_on_failure = check.boolean(nan_on_failure, "nan_on_failure")
        self.unordered = check.boolean(unordered, "unordered")
        self._max_workers = self._workers(options.get("parallel"))
        self._memoise = study is not None
        self._lock_held = None
        self._temporary = None
        if study is not None:
            if work_dir is not None:
                raise ConfigError(
                    "Executor: give study= (its evaluations/ is the work directory) or work_dir=, not both"
                )
            folder = self._study_folder(study)
            from ..store import StudyLock

            os.makedirs(folder, exist_ok=True)
            lock = StudyLock(folder)
            if not lock.acquire():
                raise ConfigError(
                    f"the study directory {folder} is in use by process {lock.holder()}; one executor at a time"
                )
            try:
                if fresh:
                    _remove_lanes(folder)
            except BaseException:
                lock.release()
                raise
            self._lock_held = lock
            self.work_dir = folder
        elif fresh:
            raise ConfigError("Executor: fresh=True forgets a study's evaluations; it needs study=...")
        elif work_dir is not None:
            self.work_dir = os.path.abspath(os.fspath(work_dir))
        else:
            import tempfile

            self.work_dir = self._temporary = tempfile.mkdtemp(prefix="profit-executor-")
        os.makedirs(self.work_dir, exist_ok=True)
        self.logger = logging.getLogger(_LOGGER_NAME)
        self._inbox: collections.deque = collections.deque()
        self._wake_lock = threading.Lock()
        self._woken = False
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        self._pipe_closed = False
        self._shutdown = False
        self._broken: BaseException | None = None
        # (written by the driver thread only; read as a snapshot by stats)
        self._stats = {"done": 0, "failed": 0, "cancelled": 0, "recalled": 0, "lanes": 0}
        self._thread = threading.Thread(target=self._drive, name="profit-executor", daemon=True)
        self._thread.start()
        _LIVE.add(self)

    # --- sizes the libraries ask for ------------------------------------------------------------

    @staticmethod
    def _workers(parallel: object) -> int:
        count = check.parallel("all" if parallel is None else parallel)
        return count if count > 0 else (os.cpu_count() or 1)

    @property
    def size(self) -> int:
        """How many calls run at once (dynesty's ``pool.size``; also ``_max_workers``)."""
        return self._max_workers

    @property
    def stats(self) -> dict[str, int]:
        """What the calls so far came to: ``done``, ``failed``, ``cancelled`` (runs that ended so),
        ``recalled`` (answered from the study's store without a run) and ``lanes`` (runners made:
        one per function and call signature, made again after an idle one was closed)."""
        return dict(self._stats)

    # --- submitting -------------------------------------------------------------------------------

    def submit(self, fn: Callable, /, *args: Any, **kwargs: Any) -> RunFuture:
        """Run ``fn(*args, **kwargs)`` as a run; its future.

        Args:
            fn: the function.
            *args: its positional arguments.
            **kwargs: its keyword arguments.

        Returns:
            The call's future (its ``result()`` raises :class:`RunFailed` if the run failed).

        Raises:
            RuntimeError: The executor was shut down (or is broken).
        """
        future = RunFuture(self)
        call = _Call(fn, args, kwargs, future, self._forked)
        self._post("calls", [call])
        return future

    def _submit_many(self, fn: Callable, argument_lists: Iterable[tuple]) -> list[RunFuture]:
        calls = []
        for args in argument_lists:
            calls.append(_Call(fn, args, {}, RunFuture(self), self._forked))
        self._post("calls", calls)
        return [call.future for call in calls]

    def map(
        self,
        fn: Callable,
        *iterables: Iterable,
        timeout: float | None = None,
        chunksize: int = 1,
        unordered: bool | None = None,
    ) -> Iterator:
        """``fn`` over the iterables' items (zipped), as runs; results in input order
        (as they come, with ``unordered``).

        Args:
            fn: the function.
            *iterables: its arguments: one iterable per parameter.
            timeout: seconds the whole iteration may take (``TimeoutError``).
            chunksize: accepted for compatibility: calls are handed to the runner in batches
                anyway, and each keeps its own state.
            unordered: yield results as they come (default: the executor's ``unordered``).

        Returns:
            An iterator of the results (``nan`` for a failed call with ``nan_on_failure``).
            Iterating raises :class:`RunFailed` for a failed call (otherwise) and
            ``TimeoutError`` once ``timeout`` has passed.
        """
        check.whole_number(chunksize, "chunksize", minimum=1)
        futures = self._submit_many(fn, zip(*iterables))
        in_order = not (self.unordered if unordered is None else unordered)
        return self._results(futures, timeout, in_order)

    def starmap(self, fn: Callable, iterable: Iterable[Iterable]) -> list:
        """``[fn(*args) for args in iterable]``, as runs (``multiprocessing.Pool.starmap``, pymoo's runner).

        Args:
            fn: the function.
            iterable: the argument tuples, one per call.

        Returns:
            The results, in order.

        Raises:
            RunFailed: A call failed (unless ``nan_on_failure``: then its result is ``nan``).
        """
        return list(self._results(self._submit_many(fn, (tuple(args) for args in iterable)), None, True))

    def __call__(self, fn: Callable, iterable: Iterable) -> list:
        """``list(map(fn, iterable))``: scipy's ``workers=`` takes the executor itself.

        Args:
            fn: the function.
            iterable: the arguments, one per call.

        Returns:
            The results, in order.

        Raises:
            RunFailed: A call failed (unless ``nan_on_failure``: then its result is ``nan``).
        """
        return list(self.map(fn, iterable))

    def _results(self, futures: list[RunFuture], timeout: float | None, in_order: bool) -> Iterator:
        import time

        deadline = None if timeout is None else time.monotonic() + timeout

        def remaining() -> float | None:
            return None if deadline is None else max(0.0, deadline - time.monotonic())

        def results() -> Iterator:
            try:
                if in_order:
                    for future in futures:
                        yield self._value(future, remaining())
                else:
                    for done in concurrent.futures.as_completed(futures, timeout=remaining()):
                        yield self._value(done, None)
            finally:
                for future in futures:  # the rest, when the caller stops early or a call failed
                    future.cancel()

        return results()

    def _value(self, future: concurrent.futures.Future, timeout: float | None) -> object:
        try:
            return future.result(timeout)
        except RunFailed:
            if self.nan_on_failure:
                return float("nan")
            raise

    # --- shutting down ------------------------------------------------------------------------------

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """No more calls.

        Args:
            wait: block until the runs have ended and the runners are closed.
            cancel_futures: cancel the calls not started.
        """
        with self._wake_lock:
            first = not self._shutdown
            self._shutdown = True
        if first or cancel_futures:
            self._post("shutdown", cancel_futures)
        if wait and self._thread is not threading.current_thread():
            self._thread.join()

    def cancel_all(self) -> None:
        """Cancel every call that has not finished (running runs end)."""
        self._post("cancel_all", None)

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        # After an error (a Ctrl-C) in the block, nobody waits for the rest: cancel it.
        if exc_type is not None:
            self.cancel_all()
        self.shutdown(wait=True, cancel_futures=exc_type is not None)

    # --- the driver thread ------------------------------------------------------------------------

    def _post(self, kind: str, item: object) -> None:
        # Checked and appended under the lock the driver decides to end under: a call is either
        # refused here or taken by the driver, never left in the inbox of a driver that has gone.
        with self._wake_lock:  # (held while writing: the driver closes the pipe under it too)
            if kind == "calls" and (self._shutdown or self._broken is not None or self._pipe_closed):
                if self._broken is not None:
                    raise RuntimeError(f"the executor is broken: {self._broken}")
                raise RuntimeError("cannot schedule new futures after shutdown")
            if self._pipe_closed:
                return  # (a cancel after the driver ended: nothing left to cancel)
            self._inbox.append((kind, item))
            if self._woken:
                return
            self._woken = True
            os.write(self._wake_write, b"!")

    def _drive(self) -> None:
        driver = _Driver(self)
        try:
            driver.loop()
        except BaseException as error:  # a bug, or a broken runner: no future may wait forever
            self._broken = error
            self.logger.exception("the executor's driver failed")
            driver.fail_everything(error)
        finally:
            with self._wake_lock:
                self._pipe_closed = True
                os.close(self._wake_read)
                os.close(self._wake_write)
            driver.close()
            if self._lock_held is not None:
                self._lock_held.release()
            if self._temporary is not None:
                import shutil

                shutil.rmtree(self._temporary, ignore_errors=True)
            _LIVE.discard(self)

    @staticmethod
    def _study_folder(study: object) -> str:
        directory = getattr(study, "work_dir", None) or getattr(study, "directory", None)
        path = directory if isinstance(directory, str) else os.fspath(study)  # type: ignore[call-overload]
        return os.path.join(os.path.abspath(path), "evaluations")


def _remove_lanes(folder: str) -> None:
    """Forget what a study's evaluations recorded (``fresh=True``)."""
    import shutil

    if not os.path.isdir(folder):
        return
    for entry in os.listdir(folder):
        path = os.path.join(folder, entry)
        if os.path.isdir(path) and os.path.exists(os.path.join(path, "evaluations.npy")):
            shutil.rmtree(path)


class _Driver:
    """The executor's thread: lanes, the queue of runs to start, the wait for runs to end."""

    def __init__(self, executor: Executor):
        self.executor = executor
        self.lanes: dict[tuple[str, object], Lane] = {}
        self.elders: dict[tuple[str, object], list[Lane]] = {}  # lanes a successor took over from
        self.refused: dict[tuple[str, object], BaseException] = {}
        self._identities: dict[int, tuple[Callable, str]] = {}
        self.ready: collections.deque[tuple[Lane, int]] = collections.deque()
        self.stopping = False
        self._selector: Any = None

    # --- the loop ------------------------------------------------------------------------------

    def loop(self) -> None:
        executor = self.executor
        while True:
            self.take_inbox()
            self.start_ready()
            active = [lane for lane in self.all_lanes() if lane.runner.runs]
            if self.stopping and not active and not self.ready:
                with executor._wake_lock:  # (_post appends under it: nothing arrives once this is decided)
                    if not executor._inbox:
                        executor._pipe_closed = True
                        return
            self.wait(active)

    def take_inbox(self) -> None:
        executor = self.executor
        # Drain the pipe and clear the flag together, under the lock _post writes under. (Clearing
        # first let a post in between write its byte, which the drain then took: the flag stayed set
        # with the pipe empty, the next post wrote nothing, and the driver slept through it.)
        with executor._wake_lock:
            try:
                while os.read(executor._wake_read, 4096):
                    pass
            except BlockingIOError:
                pass
            executor._woken = False
        inbox = executor._inbox
        while inbox:
            kind, item = inbox.popleft()
            if kind == "calls":
                self.add_calls(item)
            elif kind == "cancel":
                self.cancel(item)
            elif kind == "cancel_all":
                self.cancel_everything()
            elif kind == "shutdown":
                self.stopping = True
                if item:
                    self.cancel_queued()

    def add_calls(self, calls: list[_Call]) -> None:
        # Consecutive calls of one lane are added together (a map: one array of rows, one resize).
        group: list[_Call] = []
        group_key: tuple[str, object] | None = None
        for call in calls:
            if call.future.cancelled():
                continue
            # By identity, not by object: a bound method or a partial is a new object at each call,
            # and the calls of one function must share its lane (and its folder) to stay apart.
            key = (self.identity(call.function), call.signature)
            if key != group_key and group:
                self._add_group(group_key, group)  # type: ignore[arg-type]
                group = []
            group_key = key
            group.append(call)
        if group:
            self._add_group(group_key, group)  # type: ignore[arg-type]

    def identity(self, function: Callable) -> str:
        """The identity of ``function`` (:func:`~profit.run.functions.function_identity`), cached by object."""
        cached = self._identities.get(id(function))
        if cached is not None and cached[0] is function:
            return cached[1]
        from .functions import function_identity

        identity = function_identity(function)
        self._identities[id(function)] = (function, identity)  # (the object is kept: its id stays its own)
        if len(self._identities) > 256:  # objects made for each call: keep the newest
            del self._identities[next(iter(self._identities))]
        return identity

    def _add_group(self, key: tuple[str, object], calls: list[_Call]) -> None:
        lane = self.lane(key, calls[0])
        if lane is None:
            error = self.refused[key]
            for call in calls:
                _fail(call.future, error)
            return
        if lane.learned is not None and lane.result_layout is None:
            lane = self.successor(key, lane, lane.learned)
        recalled = lane.recalled
        try:
            run_ids = lane.add(calls, self.elders.get(key, []))
        except Exception as error:  # (a full disk while writing rows or arguments)
            for call in calls:
                _fail(call.future, error)
            return
        self.executor._stats["recalled"] += lane.recalled - recalled
        self.ready.extend((lane, run_id) for run_id in run_ids)

    def lane(self, key: tuple[str, object], call: _Call) -> Lane | None:
        """The lane of ``key`` (made on first use; None if it cannot be made: see ``refused``)."""
        lane = self.lanes.get(key)
        if lane is not None or key in self.refused:
            return lane
        try:
            lane = self._make_lane(key, call.function, None)
        except Exception as error:
            self.refused[key] = error
            return None
        self._retire_idle_lanes()
        self.lanes[key] = lane
        layout = _successor_layout(lane)
        return self.successor(key, lane, layout) if layout is not None else lane

    def _make_lane(self, key: tuple[str, object], function: Callable, layout: tuple | None) -> Lane:
        from .lanes import Lane

        executor = self.executor
        lane = Lane(
            function,
            key[1],  # type: ignore[arg-type]  # (the call signature)
            identity=key[0],
            result_layout=layout,
            label=executor._label,
            options=executor._options,
            interface=executor._interface,
            folder=executor.work_dir,
            memoise=executor._memoise,
            on_end=self.run_ended,
            logger=executor.logger,
        )
        executor._stats["lanes"] += 1
        if self._selector is not None:
            self._watch_lane(lane)
        return lane

    def successor(self, key: tuple[str, object], lane: Lane, layout: tuple) -> Lane:
        """A lane that takes over the calls of ``lane``, whose results were arrays of ``layout``: they
        travel in its rows (a file each before). The elder finishes its runs and still answers, from
        its store, the calls it answered before. Noted in the elder's folder, for the next executor."""
        lane.learned = None
        try:
            successor = self._make_lane(key, lane.function, layout)
        except Exception:  # (the elder goes on: its results travel as files, as they did)
            self.executor.logger.exception("a lane for array results of %s could not be made", lane.name)
            return lane
        self.elders.setdefault(key, []).append(lane)
        self.lanes[key] = successor
        from ._files import write_atomically

        write_atomically(
            os.path.join(lane.folder, SUCCESSOR), json.dumps({"result_layout": [layout[0], list(layout[1])]})
        )
        return successor

    def all_lanes(self) -> list[Lane]:
        """The lanes that take calls and their elders (which may still run some)."""
        return [*self.lanes.values(), *(elder for elders in self.elders.values() for elder in elders)]

    def _retire_idle_lanes(self) -> None:
        """Close lanes nothing waits for once there are many (a partial made for each call is a
        function of its own: each would keep its runner, and a pool its processes)."""
        if len(self.lanes) < MAX_OPEN_LANES:
            return
        queued = {id(lane) for lane, _ in self.ready}
        for key, lane in list(self.lanes.items()):
            family = [lane, *self.elders.get(key, [])]
            if all(member.idle and id(member) not in queued for member in family):
                del self.lanes[key]
                self.elders.pop(key, None)
                for member in family:
                    if self._selector is not None:
                        self._unwatch_lane(member)
                    member.close()

    def _unwatch_lane(self, lane: Lane) -> None:
        selector = lane.runner.events._selector
        fd = selector.fileno() if hasattr(selector, "fileno") else -1
        if fd >= 0 and fd in self._selector.get_map():
            self._selector.unregister(fd)

    def start_ready(self) -> None:
        """Start queued runs while there is room (``parallel`` over all lanes), a batch per lane."""
        ready = self.ready
        while ready:
            capacity = ready[0][0].runner.capacity
            room = len(ready) if not capacity else capacity - sum(len(lane.runner.runs) for lane in self.all_lanes())
            if room <= 0:
                return
            lane = ready[0][0]
            batch: list[int] = []
            while ready and len(batch) < room and ready[0][0] is lane:
                _, run_id = ready.popleft()
                if self._wanted(lane, run_id):
                    batch.append(run_id)
            if batch:
                lane.start(batch)

    @staticmethod
    def _wanted(lane: Lane, run_id: int) -> bool:
        """Whether a queued run has a future still waiting for it (each becomes RUNNING now)."""
        wanted = False
        for future in lane.futures.get(run_id, ()):
            with future._condition:  # (a cancel notifies under it: checked and set at once)
                if future._state == _base.CANCELLED_AND_NOTIFIED:
                    continue  # cancelled meanwhile (set_running_or_notify_cancel would log CRITICAL, raise)
                if future.set_running_or_notify_cancel():
                    wanted = True
        if not wanted:
            lane.take(run_id)
        return wanted

    def wait(self, active: list[Lane]) -> None:
        """Block until a run ends, a deadline passes or the inbox is woken; settle what ended."""
        wake = self.executor._wake_read
        if len(active) == 1:
            lane = active[0]
            events = lane.runner.events
            if not events.watching(wake):
                events.watch(wake, _nothing)  # (woken: the loop reads the inbox after this)
            lane.runner._process_events(None)
            return
        if self._selector is None:
            import selectors

            self._selector = selectors.DefaultSelector()
            self._selector.register(wake, selectors.EVENT_READ)
            for lane in self.all_lanes():
                self._watch_lane(lane)
        timeout = None
        for lane in active:
            bound = _wait_bound(lane.runner)
            if bound is not None:
                timeout = bound if timeout is None else min(timeout, bound)
        self._selector.select(timeout)
        for lane in active:
            lane.runner._process_events(0)

    def _watch_lane(self, lane: Lane) -> None:
        import selectors

        selector = lane.runner.events._selector
        fd = selector.fileno() if hasattr(selector, "fileno") else -1
        if fd >= 0:
            self._selector.register(fd, selectors.EVENT_READ)
        else:
            lane.runner.sleep = min(lane.runner.sleep, 0.005)  # (a selector that cannot be watched: poll)

    # --- runs ending ------------------------------------------------------------------------------

    def run_ended(self, lane: Lane, status: RunStatus) -> None:
        futures = lane.take(status.run_id)
        self.executor._stats[status.state.name.lower()] += 1
        if status.state == RunState.DONE:
            lane.answer(status.run_id, futures)
            return
        if status.state == RunState.CANCELLED:
            for future in futures:
                _cancel_from_driver(future)
            return
        failure = lane.failure(status)
        for future in futures:
            _fail(future, failure)

    def cancel(self, future: RunFuture) -> None:
        """A future was cancelled: cancel its run, unless another future still waits for it."""
        if future._run is None:
            return  # not added yet (it is skipped then) or answered from the store
        lane, run_id = future._run
        if any(not other.cancelled() for other in lane.futures.get(run_id, ())):
            return
        if run_id in lane.runner.runs:
            lane.runner.cancel(run_id)

    def cancel_queued(self) -> None:
        for lane, run_id in self.ready:
            for future in lane.futures.get(run_id, ()):
                _cancel_from_driver(future)
        # (the queue keeps them: start_ready drops runs that nobody waits for)

    def cancel_everything(self) -> None:
        self.cancel_queued()
        for lane in self.all_lanes():
            if lane.runner.runs:
                for run_id in list(lane.runner.runs):
                    for future in lane.futures.get(run_id, ()):
                        _cancel_from_driver(future)
                lane.runner.cancel_all()

    def fail_everything(self, error: BaseException) -> None:
        for lane in self.all_lanes():
            for futures in lane.futures.values():
                for future in futures:
                    _fail(future, error)
        for kind, item in list(self.executor._inbox):
            if kind == "calls":
                for call in item:
                    _fail(call.future, error)

    def close(self) -> None:
        for lane in self.all_lanes():
            try:
                lane.close()
            except Exception:
                self.executor.logger.exception("closing the runner of %s failed", lane.name)
        if self._selector is not None:
            self._selector.close()


def _successor_layout(lane: Lane) -> tuple | None:
    """The result layout an earlier executor learned for this lane's calls (see _Driver.successor)."""
    try:
        with open(os.path.join(lane.folder, SUCCESSOR)) as file:
            dtype, shape = json.load(file)["result_layout"]
        return str(dtype), tuple(int(extent) for extent in shape)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _nothing() -> None:
    """The wake-up pipe's event: the driver loop reads the inbox next."""


def _wait_bound(runner: Any) -> float | None:
    """How long a runner may wait without missing anything: a timeout's deadline, its polling."""
    if runner.interface.backlog:
        return 0.0
    bound = runner.events._until_deadline()
    if runner._active.need_polling:
        interval = runner._poll_interval()
        bound = interval if bound is None else min(bound, interval)
    return bound


def _fail(future: RunFuture, error: BaseException) -> None:
    try:
        future.set_exception(error)
    except concurrent.futures.InvalidStateError:
        pass  # cancelled


def _cancel_from_driver(future: RunFuture) -> None:
    """Cancel a future that has not finished, from the driver (its run is dealt with there)."""
    with future._condition:
        if future._state not in (_base.PENDING, _base.RUNNING):
            return
        future._state = _base.CANCELLED
        future._condition.notify_all()
        future.set_running_or_notify_cancel()  # (under the lock, as in RunFuture.cancel)
    future._invoke_callbacks()  # type: ignore[attr-defined]  # (Future's own, untyped)


# Executors not shut down: at exit their runs are cancelled (no simulation outlives the script).
_LIVE: weakref.WeakSet[Executor] = weakref.WeakSet()


def _at_exit() -> None:
    for executor in list(_LIVE):
        try:
            executor.cancel_all()
            executor.shutdown(wait=True, cancel_futures=True)
        except Exception:
            pass


import atexit  # noqa: E402

atexit.register(_at_exit)
