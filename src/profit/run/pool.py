"""Pool Runner: a fixed set of forked worker processes, each serving many runs.

For cheap simulations starting a process per run costs more than the run. The
pool forks ``parallel`` worker processes once; the runner sends each a batch of
run ids through a pipe, the worker computes them in order (exactly as a forked
worker of :class:`~profit.run.local.ForkRunner` would: same Worker, same
interface, same failure reasons) and answers with each run id, its exit code and
how long it took::

    runner --run ids--> task pipe --> worker: execute(Worker for each id) --> interface rows
    runner <--run id, code, seconds-- result pipe <--'

A function worker (:meth:`~profit.run.worker.Worker.wrap`, or a plain function)
whose rows the worker shares with the runner is called directly, without a
Worker per run (:mod:`profit.run.directcall`): the same rows, reasons and logs,
at a few microseconds per run. After every run the worker puts back what the
run may have changed in its process: descriptors 0 to 2, the working directory
and the standard streams.

Both directions are batched, adaptively, so that cheap runs do not pay a
message each: the runner gives a worker as many runs at a time as fit in
about ``_BATCH_SECONDS`` of work at the pace the workers report (one run
while runs are slow, so that no run waits behind a busy worker while another
is idle; at most ``depth``), and a worker reports finished runs together: at
once when it has nothing left to run, when a run was slow or failed, half-way
through what it holds (so that the runner refills it before it runs dry), and
at the latest ``_HOLD_SECONDS`` after a run ended (a thread of the worker
writes them while a slow run goes on). With a timeout a worker
reports each run at once (the next run's clock starts on that report). The
runner starts and settles such runs in bulk (``Runner._spawn_many``,
``Runner._settle_succeeded``).

A worker holds at most ``depth`` runs; the first is running, and its timeout
clock runs. Cancelling a run that a worker holds, or ending it at its timeout,
kills that worker's process group; a replacement starts and the worker's other
runs go to the front of the waiting line. A worker that dies fails its running
run with the exit status (``killed by SIGKILL``) and is replaced too.
"""

from __future__ import annotations

import collections
import functools
import itertools
import mmap
import os
import struct
import sys
import threading
import time
from collections.abc import Callable, Container

from . import exitwatch
from . import options as check
from ._lazy import numpy as np
from ._proc import ChildProcess, ExitStatus, enter_worker_process, fork_group, lifeline, load_prctl, stop_trees
from .directcall import DirectCalls
from .errors import ConfigError
from .handles import Notice, RunHandle
from .runner import Runner
from .state import RunStatus
from .worker import RunLog, execute_forked, run_log_handler

TYPE_CHECKING = False  # (typing costs every worker process its import)
if TYPE_CHECKING:
    from typing import Any

_TASK = struct.Struct("<q")  # run id
_STOP = -1  # the task that ends a worker (an end of file may never come: forks share pipes)
_RESULT = struct.Struct("<qid")  # run id, exit code, seconds the run took
_RESULT_COLUMNS = [("run_id", "<i8"), ("code", "<i4"), ("seconds", "<f8")]  # (the same, for numpy)
_CURRENT = struct.Struct("<q")  # the run a worker started last (in memory it shares with the runner)
# A message to a worker holds about this much work (at the pace runs take): enough runs to make the
# message's cost negligible, few enough that a worker holds one run while runs are slow.
_BATCH_SECONDS = 0.002
# A worker keeps a finished run's report at most this long while it runs further (cheap) runs.
_HOLD_SECONDS = 0.001
_BULK = 8  # from this many runs on, the runner starts or settles them together (numpy's set-up costs less)
_MAX_REPORT = 128  # reports in one write (a pipe writes up to 4096 bytes at once)
_READ_SIZE = 65536  # bytes read from a pipe at once (results by the runner, run ids by a worker)
# Seconds a worker whose result pipe closed has to end before it is killed (polled: no exit watch descriptor).
_EXIT_GRACE = 5.0


class _PoolWorker:
    """The runner's view of one worker process: runs sent to it, in order, and runs to send."""

    __slots__ = (
        "process",
        "task_fd",
        "result_fd",
        "current",
        "queue",
        "outbox",
        "clocked",
        "buffer",
        "reported",
        "alive",
        "closed",
    )

    def __init__(self, process: ChildProcess, task_fd: int, result_fd: int, current: mmap.mmap):
        self.process, self.task_fd, self.result_fd = process, task_fd, result_fd
        self.current = current  # the run it started last: which run a worker that died was running
        self.queue: collections.deque[int] = collections.deque()  # sent; the first one is running
        self.outbox: list[int] = []  # assigned, not sent yet
        self.clocked: int | None = None  # the run whose timeout clock runs
        self.buffer = b""
        self.reported: dict[int, int] = {}  # run id -> exit code, read but not yet settled
        self.alive = True
        self.closed = False  # its end of the result pipe is closed: it has ended (or is ending)

    @property
    def load(self) -> int:
        return len(self.queue) + len(self.outbox)

    def collect(self) -> float | None:
        """Read what the worker reported so far (it works through its queue in order); returns
        the median seconds of the runs reported now (None: none)."""
        while True:
            try:
                data = os.read(self.result_fd, _READ_SIZE)
            except BlockingIOError:
                break
            if not data:
                self.closed = True  # it ended: its exit event settles the rest
                break
            self.buffer += data
            if len(data) < _READ_SIZE:
                break  # the pipe is empty now (a read that fails would cost more; more wakes the runner again)
        usable = len(self.buffer) - len(self.buffer) % _RESULT.size
        if not usable:
            return None
        queue, reported = self.queue, self.reported
        if usable == len(self.buffer) == _RESULT.size:  # one report (a blocking spawn's): the short way
            run_id, reported[run_id], seconds = _RESULT.unpack(self.buffer)
            self.buffer = b""
            if queue and queue[0] == run_id:
                queue.popleft()
            elif run_id in queue:
                queue.remove(run_id)
            return seconds
        # Read as columns (many reports at a time: one by one costs the runner more than the runs).
        columns = np.frombuffer(self.buffer, dtype=_RESULT_COLUMNS, count=usable // _RESULT.size)
        run_ids, codes = columns["run_id"].tolist(), columns["code"].tolist()
        reported.update(zip(run_ids, codes))
        count = len(run_ids)
        if list(itertools.islice(queue, count)) == run_ids:  # (as usual: in the order they were sent)
            for _ in range(count):
                queue.popleft()
        else:
            for run_id in run_ids:
                if run_id in queue:
                    queue.remove(run_id)
        self.buffer = self.buffer[usable:]
        # (the median: a run that lost its CPU for a while does not count)
        return float(np.partition(columns["seconds"], count // 2)[count // 2])

    def started_last(self) -> int:
        """The run the worker started last (-1: none yet)."""
        return _CURRENT.unpack_from(self.current)[0]

    def flush(self) -> None:
        """Send the assigned runs in one write."""
        if self.outbox and self.alive:
            try:
                os.write(self.task_fd, struct.pack(f"<{len(self.outbox)}q", *self.outbox))  # (as _TASK, each)
            except BrokenPipeError:
                return  # it died; its exit event hands these runs to another worker
            self.queue.extend(self.outbox)
            self.outbox.clear()


def _report_now(code: int, took: float, held: float, left: int, refill: int, count: int, hold: float) -> bool:
    """Whether a pool worker writes its reports now, after a run ended.

    Args:
        code: the run's exit code.
        took: seconds the run took.
        held: seconds since the oldest report not yet written was made.
        left: runs the worker holds still to run.
        refill: ``left`` at which to report so that the runner sends more runs in time.
        count: reports not yet written (this run's included).
        hold: how long a report may wait (0: not at all).
    """
    return (
        code != 0  # a failure: the runner decides at once (a retry, and which run killed a worker)
        or left == 0  # nothing more to run: the worker waits for the runner
        or left == refill
        or took >= hold  # a slow run: holding its report would save nothing
        or held >= hold
        or count >= _MAX_REPORT
    )


class _HeldReports:
    """The reports a pool worker has not written yet (quick runs that succeeded).

    The worker's loop writes them after a run when :func:`_report_now` says so. While a run
    goes on, a thread writes those that have waited ``hold`` seconds: a slow run after quick
    ones must not hold up their reports (the runner would show finished runs as running, and
    refill the worker late). The thread starts with the first held report.
    """

    __slots__ = ("_due", "_fd", "_hold", "_items", "_lock", "_thread", "since")

    def __init__(self, fd: int, hold: float) -> None:
        self._fd, self._hold = fd, hold
        self._items: list[bytes] = []
        self.since = 0.0  # when the oldest report not yet written was made
        self._lock = threading.Lock()
        self._due = threading.Event()
        self._thread: threading.Thread | None = None

    def __len__(self) -> int:
        return len(self._items)

    def add(self, report: bytes, now: float) -> None:
        with self._lock:
            if not self._items:
                self.since = now
                if self._hold > 0:
                    if self._thread is None:
                        self._thread = threading.Thread(target=self._write_when_due, name="profit-reports", daemon=True)
                        self._thread.start()
                    self._due.set()
            self._items.append(report)

    def write(self) -> None:
        with self._lock:
            if self._items:
                os.write(self._fd, b"".join(self._items))
                self._items.clear()

    def _write_when_due(self) -> None:
        while True:
            self._due.wait()
            self._due.clear()
            delay = self.since + self._hold - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            self.write()  # (early for reports added meanwhile: harmless)


def _load(worker: _PoolWorker) -> int:
    return worker.load


class _Surroundings:
    """What a run may change in its pool worker process and the next run must not inherit:
    descriptors 0, 1 and 2, the working directory, and ``sys.stdin``, ``sys.stdout``, ``sys.stderr``.

    Saved when the worker starts (copies of the descriptors, made with ``os.dup``, and a
    descriptor of the working directory, none of them inherited by programs a run starts)
    and put back after each run: a run that closed its standard output or changed directory
    leaves nothing behind. Putting them back costs a few system calls per run, which for a
    function of a few microseconds is most of the run: :attr:`restore` is made for the usual
    case, where nothing changed.
    """

    __slots__ = ("copies", "directory", "restore", "streams")

    def __init__(self) -> None:
        self.copies: list[tuple[int, int]] = []  # (copy, descriptor)
        for fd in (0, 1, 2):
            try:
                self.copies.append((os.dup(fd), fd))
            except OSError:
                pass  # closed when the worker started: nothing to put back
        # The working directory itself (a descriptor: fchdir costs less than comparing getcwd), or
        # where the system refuses one, its path.
        self.directory: int | str
        try:
            self.directory = os.open(".", getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            self.directory = os.getcwd()
        self.streams = (sys.stdin, sys.stdout, sys.stderr)
        self.restore = self._restorer()

    def _restorer(self) -> Callable[[], None]:
        """``restore()``: put back what a run may have changed; what it uses is bound once."""
        copies, dup2, surroundings, system = tuple(self.copies), os.dup2, self, sys
        directory = self.directory
        back_to_directory: Callable[[], None]
        if isinstance(directory, int):
            back_to_directory = functools.partial(os.fchdir, directory)
        else:

            def back_to_directory() -> None:  # (by its path)
                try:
                    moved = os.getcwd() != directory
                except OSError:  # the run removed the directory it moved to
                    moved = True
                if moved:
                    os.chdir(directory)

        def restore() -> None:
            stdin, stdout, stderr = surroundings.streams
            streams_changed = True
            if system.stdin is stdin and system.stdout is stdout and system.stderr is stderr:
                try:  # the run's own output, where the run left it
                    if stdout is not None:
                        stdout.flush()
                    if stderr is not None:
                        stderr.flush()
                except ValueError:  # a run closed one: the other flushed, new streams (below)
                    surroundings.flush_run_streams()
                except OSError:
                    streams_changed = False
                else:
                    streams_changed = stdin is not None and stdin.closed
            else:
                surroundings.flush_run_streams()
            # The descriptors first: a stream made anew below is made over the worker's own.
            for copy, fd in copies:
                dup2(copy, fd)  # (the same file again if the run left it alone)
            back_to_directory()
            if streams_changed:
                surroundings.put_back_streams()

        return restore

    @staticmethod
    def flush_run_streams() -> None:
        """Flush the standard streams the run left (its output goes where it sent it)."""
        for stream in (sys.stdout, sys.stderr):
            try:
                if stream is not None and not stream.closed:
                    stream.flush()
            except (OSError, ValueError):
                pass

    def put_back_streams(self) -> None:
        """Put the worker's own ``sys.std*`` back: new ones over descriptors 0-2 where a run closed them
        (call after the descriptors are back); None for a descriptor that is not open."""
        kept: list[Any] = []
        for fd, stream in enumerate(self.streams):
            if stream is not None and stream.closed:  # a run closed it: a new one over the same descriptor
                try:
                    stream = open(fd, "r" if fd == 0 else "w", encoding=stream.encoding, closefd=False)  # noqa: SIM115
                except OSError:  # (closed when the worker started, and by the run: nothing to read or write)
                    stream = None
            kept.append(stream)
        self.streams = (kept[0], kept[1], kept[2])
        sys.stdin, sys.stdout, sys.stderr = kept


class _PoolRun(RunHandle):
    """A run of the pool: waiting for a worker, queued at one, or running on one.

    Its end arrives through the worker's result pipe (``Notice.NOTIFIED``); the
    pool stops it by ending the worker that holds it (:meth:`PoolRunner._stop_runs`).
    """

    notice = Notice.NOTIFIED
    clock_at_launch = False  # its timeout starts when its worker starts it, not while it waits
    __slots__ = ("run_id", "worker")

    def __init__(self, run_id: int):
        self.run_id = run_id
        self.worker: _PoolWorker | None = None

    @property
    def pid(self) -> int | None:  # type: ignore[override]  # read-only: the pid of the worker holding it
        """The process group of the worker that has it (None while it waits)."""
        return self.worker.process.pid if self.worker is not None else None

    def poll(self) -> ExitStatus | None:
        """The run's exit status once its worker reported it (taking the report), else None."""
        if self.worker is None or not self.worker.alive:
            return None
        self.worker.collect()
        code = self.worker.reported.pop(self.run_id, None)
        return None if code is None else ExitStatus(code=code)

    def exited(self) -> bool:
        if self.worker is None or not self.worker.alive:
            return False
        self.worker.collect()
        return self.run_id in self.worker.reported


class PoolRunner(Runner, label="pool"):
    """Keep ``parallel`` worker processes (default: the usable CPUs) and send them runs.

    Each worker gets up to ``depth`` runs at a time (sent in one message) and
    works through them in order. Same semantics as the other runners (states
    and reasons, cancel, timeouts, retries). A worker process that dies fails
    its running run and is replaced; the runs queued behind it go to another
    worker. Cancelling a queued run ends its worker too, so the run that worker
    was running starts again elsewhere. Workers are forked, so they know every
    component the runner knows. Call :meth:`shutdown` (or :meth:`clean`) to end
    the worker processes; they also end with the runner.

    Args:
        parallel: how many worker processes: ``"all"`` (the CPUs this process may use) or a
            whole number (at least 1).
        depth: how many runs a worker process gets at a time (at least 1).
        **kwargs: the options of :class:`~profit.run.runner.Runner` (keyword only).

    Raises:
        ConfigError: ``parallel`` is less than 1 (or an option is not valid).
    """

    passes_kwargs_on = True  # **kwargs are the base class's options (checked against its signature)
    forks_workers = True  # a function given as the worker reaches them in memory

    def __init__(self, parallel: int | str = "all", depth: int = 512, **kwargs: Any):
        self.depth = check.whole_number(depth, "depth (runs queued per pool worker)", minimum=1)
        super().__init__(parallel=check.parallel(parallel), **kwargs)
        exitwatch.backend()  # (PROFIT_EXIT_WATCH is checked now, not at the first run)
        if self.parallel < 1:
            raise ConfigError(f"a pool needs at least one worker process (parallel >= 1), got {self.parallel}")
        self._workers: list[_PoolWorker] = []
        self._waiting: collections.deque[_PoolRun] = collections.deque()  # started, not given to a worker yet
        self._pace: float | None = None  # seconds a run takes (a running mean): see _span
        self._log_handler = run_log_handler()
        load_prctl()  # before forking: the workers only call it
        lifeline()  # the workers end when this process does

    @property
    def capacity(self) -> int:
        """Runs kept active at once by :meth:`spawn_array`: ``depth`` per worker."""
        return self.parallel * self.depth

    @property
    def config(self) -> dict:
        """The runner's options (:attr:`Runner.config`) with ``depth``."""
        return {**super().config, "depth": self.depth}

    # --- starting runs ---------------------------------------------------------------

    def _start(self, run_id: int) -> RunHandle:
        self._ensure_workers()
        handle = _PoolRun(run_id)
        self._waiting.append(handle)
        self._dispatch()
        return handle

    def _start_many(self, run_ids: list[int]) -> list[RunHandle]:
        self._ensure_workers()
        handles = [_PoolRun(run_id) for run_id in run_ids]
        self._waiting.extend(handles)
        self._dispatch()
        return handles  # type: ignore[return-value]  # (a list of _PoolRun is a list of RunHandle)

    def _start_batch(self, run_ids: list[int]) -> None:
        """Start these runs with one bookkeeping pass (:meth:`Runner._spawn_many`); a few, one by one."""
        if len(run_ids) >= _BULK:
            self._spawn_many(run_ids)
        else:
            super()._start_batch(run_ids)

    def _ensure_workers(self) -> None:
        while len(self._workers) < self.parallel:  # one by one: each closes its elders' pipes
            self._workers.append(self._fork_worker())

    def _span(self) -> int:
        """How many runs a worker holds at a time now: about ``_BATCH_SECONDS`` of work at the pace
        runs took so far (one until a run has ended, and while runs are slow), at most ``depth``."""
        pace = self._pace
        if pace is None:
            return 1
        if pace * self.depth <= _BATCH_SECONDS:
            return self.depth
        return max(1, int(_BATCH_SECONDS / pace))

    def _dispatch(self) -> None:
        """Give waiting runs to workers with room, the least loaded first; idle workers get theirs at once."""
        waiting, workers = self._waiting, self._workers
        if not waiting or not workers:
            return
        span = self._span()
        if len(waiting) == 1 and len(workers) > 1:  # one run (a blocking spawn's): the short way
            worker = min(workers, key=_load)
            if worker.load < span:
                handle = waiting.popleft()
                handle.worker = worker
                worker.outbox.append(handle.run_id)
                if not worker.queue:
                    self._flush(worker)
            return
        while waiting:
            worker = min(workers, key=_load)
            room = span - worker.load
            if room <= 0:
                break
            # A fair share each while few runs wait (two runs on two idle workers: one each).
            share = min(room, len(waiting), max(1, len(waiting) // len(workers)))
            outbox = worker.outbox
            for _ in range(share):
                handle = waiting.popleft()
                handle.worker = worker
                outbox.append(handle.run_id)
            if not worker.queue:
                self._flush(worker)

    def _flush(self, worker: _PoolWorker) -> None:
        worker.flush()
        self._clock(worker)

    def _clock(self, worker: _PoolWorker) -> None:
        """Start the timeout clock of the run the worker works on now."""
        if worker.queue and worker.clocked != worker.queue[0]:
            worker.clocked = worker.queue[0]
            self._start_clock(worker.clocked)

    def _before_waiting(self) -> bool:
        for worker in self._workers:
            if worker.outbox:  # (else nothing to send, and its clock is set)
                self._flush(worker)
        return False

    # --- events -----------------------------------------------------------------------

    def _collect(self, worker: _PoolWorker) -> None:
        """Read the worker's reports; the time its runs took sets the pace of dispatching (:meth:`_span`)."""
        pace = worker.collect()
        if pace is not None:
            # Slow runs count at once (one run per worker, now); else a running mean, so that runs
            # that lost their CPU for a while (a busy machine) do not shrink the batches much.
            self._pace = pace if self._pace is None or pace >= _BATCH_SECONDS else (self._pace + pace) / 2

    def _settle_reported(self, worker: _PoolWorker, final: Container[int] = ()) -> None:
        """Settle the runs the worker reported; those in ``final`` (being cancelled) are not retried."""
        reported, worker.reported = worker.reported, {}
        runs = self.runs
        succeeded = []
        for run_id, code in reported.items():
            if run_id in runs:
                if code == 0 and run_id not in final:
                    succeeded.append(run_id)  # (most runs: settled together)
                else:
                    self._settle(run_id, ExitStatus(code=code), retry=run_id not in final)
        if len(succeeded) >= _BULK:
            self._settle_succeeded(succeeded)
        else:  # a few runs (a blocking spawn's): one by one is quicker than vectorised writes
            for run_id in succeeded:
                self._settle(run_id, ExitStatus(code=0))

    def _split_at_running(self, worker: _PoolWorker) -> tuple[list[int], int | None]:
        """Of a worker that ended (or is being ended): the runs that ran to their end before the one it
        was running, taken off its queue (their reports were still held, so their exit codes were 0),
        and the one it was running (the one it started last; else, as the runner sees it, the first)."""
        queue = worker.queue
        last = worker.started_last()
        if last not in queue:
            return [], queue[0] if queue else None
        finished = []
        while queue[0] != last:
            finished.append(queue.popleft())
        return finished, last

    def _on_results(self, worker: _PoolWorker) -> None:
        if not worker.alive:
            return
        self._collect(worker)
        if worker.closed and worker.process.fileno() is None:
            self._on_exit(worker)  # no exit event will come (polled): its pipe's end is the event
            return
        self._settle_reported(worker)
        if worker.alive:
            self._clock(worker)
        self._dispatch()

    def _on_exit(self, worker: _PoolWorker) -> None:
        if not worker.alive:
            return
        status = worker.process.poll()
        if status is None:  # its result pipe ended before its exit could be seen (polled)
            status = worker.process.wait(_EXIT_GRACE) or stop_trees([worker.process], 0.0)[0]
        worker.collect()  # results it sent before it ended still count
        self._settle_reported(worker)
        finished, running = self._split_at_running(worker)
        self._retire(worker, status, keep={running} if running is not None else set())
        finished = [run_id for run_id in finished if run_id in self.runs]
        if finished:
            self._settle_succeeded(finished)
        if running is not None and running in self.runs:
            self.logger.info(
                "pool worker %d ended (%s) during run %d",
                worker.process.pid,
                status.describe() if status else "?",
                running,
            )
            self._settle(running, status)
        self._dispatch()

    def _retire(self, worker: _PoolWorker, status: ExitStatus | None, keep: Container[int] = ()) -> None:
        """Replace a worker that ended; its other runs go back to the front of the waiting line.

        The runs in ``keep`` (which the caller settles itself) are left alone; a
        run that had transmitted before the end is settled as done.
        """
        if not worker.alive:
            return
        worker.alive = False
        worker.process.poll()
        for fd in (worker.result_fd, worker.process.fileno()):
            if fd is not None:
                self.events.unwatch(fd)
        os.close(worker.task_fd)
        os.close(worker.result_fd)
        worker.process.close()
        worker.current.close()
        self._workers[self._workers.index(worker)] = self._fork_worker()
        again = []
        for run_id in [*worker.queue, *worker.outbox]:
            if run_id in keep or run_id not in self.runs:
                continue
            if self.interface.transmitted(run_id):
                self._settle(run_id, status)
            else:
                handle = self.runs[run_id]
                if isinstance(handle, _PoolRun):
                    handle.worker = None
                    again.append(handle)
        self._waiting.extendleft(reversed(again))
        self._dispatch()

    def _stop_runs(
        self, run_ids: list[int], grace: float, *, cancelled: bool = False, timed_out: bool = False
    ) -> list[RunStatus]:
        """End runs: waiting or unsent ones are dropped; the workers running or holding one end
        (their process trees, like any run's), and their other runs go to another worker."""
        targets = set(run_ids)
        workers = [w for w in self._workers if any(run_id in targets for run_id in w.queue)]
        sent = {run_id for worker in workers for run_id in worker.queue}
        # Decided before anything is settled: a run settled below may start again (a retry).
        unsent = [run_id for run_id in run_ids if run_id in self.runs and run_id not in sent]
        endings = stop_trees([worker.process for worker in workers], grace)
        for worker, ending in zip(workers, endings):
            worker.collect()
            # Runs that ended before the stop, as they ended (a cancelled one is not retried).
            self._settle_reported(worker, final=targets if cancelled else ())
            finished, _ = self._split_at_running(worker)
            held = [run_id for run_id in worker.queue if run_id in targets and run_id in self.runs]
            self._retire(worker, ending, keep=held)
            ended = [run_id for run_id in finished if run_id in self.runs]
            for run_id in ended:
                if run_id in targets:  # it had ended with code 0: as it ended, but not retried
                    self._settle(run_id, ExitStatus(code=0), cancelled=cancelled, timed_out=timed_out, retry=False)
            ended = [run_id for run_id in ended if run_id not in targets]
            if ended:
                self._settle_succeeded(ended)
            for run_id in held:
                self._settle(run_id, ending, cancelled=cancelled, timed_out=timed_out)
        for run_id in unsent:
            if run_id in self.runs:
                self._drop(run_id)
                self._settle(run_id, None, cancelled=cancelled, timed_out=timed_out)
        return [self.status(run_id) for run_id in run_ids]

    def _drop(self, run_id: int) -> None:
        """Take a run that has not started out of the waiting line or a worker's outbox."""
        for handle in self._waiting:
            if handle.run_id == run_id:
                self._waiting.remove(handle)
                break
        for worker in self._workers:
            if run_id in worker.outbox:
                worker.outbox.remove(run_id)

    # --- worker processes --------------------------------------------------------------

    def _fork_worker(self) -> _PoolWorker:
        task_read, task_write = os.pipe()
        result_read, result_write = os.pipe()
        current = mmap.mmap(-1, _CURRENT.size)  # shared with the worker (an anonymous shared mapping)
        _CURRENT.pack_into(current, 0, -1)

        def serve(runner_pid: int) -> int:
            os.close(task_write)
            os.close(result_read)
            return self._serve(task_read, result_write, current, runner_pid)

        pid = fork_group(serve)
        os.close(task_read)
        os.close(result_write)
        os.set_blocking(result_read, False)
        worker = _PoolWorker(ChildProcess(pid), task_write, result_read, current)
        self.events.watch(result_read, lambda: self._on_results(worker))
        exit_fd = worker.process.fileno()
        if exit_fd is not None:
            self.events.watch(exit_fd, lambda: self._on_exit(worker))
        return worker

    def _serve(self, tasks: int, results: int, current: mmap.mmap, runner_pid: int) -> int:
        """The loop of a worker process: run each run id that arrives, report its exit code.

        Reports wait (at most ``_HOLD_SECONDS``) only while runs are quick and succeed; see the
        module docstring for when they are written.
        """
        import logging

        if not enter_worker_process(self.work_dir, runner_pid, self.base_dir):
            return 1
        # Pipes of the other workers, inherited: holding them would hide their end from them.
        for other in self._workers:
            if other.alive:
                os.close(other.task_fd)
                os.close(other.result_fd)
        # The runner's handlers must not receive the workers' records.
        logging.getLogger("profit").handlers = []
        logging.getLogger().handlers = [self._log_handler]
        log_path, debug = self.worker_config.get("log_path", "log"), bool(self.worker_config.get("debug", False))
        # With a timeout the runner starts a run's clock when the run before it is reported: at once.
        hold = 0.0 if self.timeout is not None else _HOLD_SECONDS
        surroundings = _Surroundings()
        clock, pack, note = time.perf_counter, _RESULT.pack, _CURRENT.pack_into
        # A wrapped function on shared rows is called directly (the same results, without a Worker per run).
        direct = DirectCalls.for_worker(self.worker_config, self.interface, self._log_handler)
        pending = b""
        report = _HeldReports(results, hold)
        restore, add = surroundings.restore, report.add  # (looked up once: called for every run)
        while True:
            data = os.read(tasks, _READ_SIZE)
            if not data:
                return 0  # the runner closed the pipe: done
            pending += data
            usable = len(pending) - len(pending) % _TASK.size
            run_ids = [run_id for (run_id,) in _TASK.iter_unpack(pending[:usable])]
            pending = pending[usable:]
            left = len(run_ids)
            refill = left // 2  # half-way: report, so that the runner sends more before these run out
            computable = [run_id for run_id in run_ids if run_id != _STOP]
            given = direct.read_inputs(computable) if direct is not None else None
            arguments = iter(given) if given is not None else None  # (in the order of computable)
            for run_id in run_ids:
                if run_id == _STOP:
                    report.write()
                    return 0
                note(current, 0, run_id)
                start = clock()
                if arguments is not None:
                    code = direct.call(run_id, next(arguments))  # type: ignore[union-attr]  # (direct is set)
                else:
                    log = RunLog(log_path, run_id, debug, self._log_handler)
                    code = execute_forked(self.worker_config, self.interface, run_id, log, row_is_current=False)
                    log.release()
                restore()
                end = clock()
                left -= 1
                took = end - start
                add(pack(run_id, code, took), end)
                if left == 0 or _report_now(code, took, end - report.since, left, refill, len(report), hold):
                    report.write()

    def shutdown(self) -> None:
        """End the worker processes (after their current runs) and wait for them."""
        workers, self._workers = self._workers, []
        for worker in workers:
            if worker.alive:
                worker.alive = False
                try:
                    os.write(worker.task_fd, _TASK.pack(_STOP))
                except BrokenPipeError:
                    pass  # it has ended already
                os.close(worker.task_fd)
        for worker in workers:
            if worker.process.status is None:
                worker.process.wait()
            for fd in (worker.result_fd, worker.process.fileno()):
                if fd is not None and self.events.watching(fd):
                    self.events.unwatch(fd)
            os.close(worker.result_fd)
            worker.process.close()
            if not worker.current.closed:
                worker.current.close()

    def clean(self) -> None:
        """End the worker processes, then remove what the runs left (see :meth:`Runner.clean`)."""
        self.shutdown()
        super().clean()

    def close(self) -> None:
        """Cancel what still runs, end the worker processes and release the event sources and
        the interface, as :meth:`Runner.close` does (a spawn after it is refused; closing again
        does nothing)."""
        if not self._take_for_closing():
            return
        try:
            self.cancel_all()
        finally:
            try:
                self.shutdown()
            finally:
                super().close()
