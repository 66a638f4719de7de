"""One run of a study: its runner working on the study's table, with progress, stop and exports.

:meth:`profit.Study.run` (and ``profit run``) build a :class:`StudyRun` while
they hold the study's lock. The runner's interface maps the study's table, so
the only bookkeeping here is noting when each run started and ended; the
output file is an export, written when the run ends and, on the way, every few
seconds, but never costing more than 2% of the time (a big study's export takes
a while: it is then written less often).
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING

from .run.state import RunState, RunStatus
from .store import StudyTable

if TYPE_CHECKING:
    from .run import Runner

EXPORT_INTERVAL = 2.0  # seconds between exports of the output file while runs go on, at least
EXPORT_SHARE = 0.02  # and never more than this share of the time
EXPORT_COST_GUESS = 50e-6  # seconds per run for the first export, before one was timed
FLUSH_INTERVAL = 1.0  # seconds between syncs of the table to the disk


class StopRequest:
    """Records Ctrl-C (SIGINT) and SIGTERM instead of raising where they land.

    A KeyboardInterrupt raised inside a fork hook or a logging lock is lost, so
    the run loop checks this flag instead: the runs in flight are cancelled and
    the results saved. Only the main thread can receive signals; elsewhere this
    records nothing. :meth:`restore` puts the earlier handlers back.
    """

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, object] = {}
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._record)

    def _record(self, signum: int, frame: FrameType | None) -> None:
        self.signal = self.signal or signum

    def __call__(self) -> bool:
        return self.signal is not None

    def restore(self) -> None:
        """Give the signals back to whoever handled them before."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]  # (what signal.signal returned)
        self._previous = {}


class TableRecorder:
    """A runner listener that notes in the study's table when each run starts and ends.

    A run's process is noted at once (a runner that is killed must leave it
    findable); its attempt count and start and end times are collected and
    written a batch at a time (:meth:`flush`, every second and at the end):
    per run, that is two appends instead of a handful of numpy element writes.
    Cut off before a flush, a run that had failed is run again (its end was not
    noted yet); nothing else is lost that the table does not hold otherwise.

    Args:
        table: The study's table.
        on_batch_job: Called with the id of each batch job a run is in.
        batch: The runner is a batch system's: its runs are jobs.
    """

    def __init__(self, table: StudyTable, on_batch_job: Callable[[str], None], batch: bool = False):
        self.table = table
        self.on_batch_job = on_batch_job
        self.batch = batch  # a batch system's runner: its runs are jobs
        self.batch_jobs: set[str] = set()
        self._starts: list[int] = []
        self._start_times: list[float] = []
        self._ends: list[int] = []
        self._end_times: list[float] = []

    def run_started(self, run_id: int, handle: object) -> None:
        """Runner listener: note the run's process (and batch job) at once, its start for the next :meth:`flush`.

        Args:
            run_id: The run.
            handle: Its handle.
        """
        pid = getattr(handle, "pid", None)
        if pid:
            self.table.note_process(run_id, pid)
        self._starts.append(run_id)
        self._start_times.append(time.time())
        if not self.batch:  # (called for every run: the common case costs one test)
            return
        # A batch job outlives a runner that is killed: note it, so that the next run ends it.
        job = getattr(handle, "array_job", None)
        if job is not None and job not in self.batch_jobs:
            self.batch_jobs.add(job)
            self.on_batch_job(job)

    def run_ended(self, status: RunStatus) -> None:
        """Runner listener: note the run's end for the next :meth:`flush`.

        Args:
            status: The run's status.
        """
        self._ends.append(status.run_id)
        self._end_times.append(time.time())

    def flush(self) -> None:
        """Write what was collected into the table (the starts first: a run may start and end in a batch)."""
        if self._starts:
            self.table.started(self._starts, self._start_times)
            self._starts, self._start_times = [], []
        if self._ends:
            self.table.ended(self._ends, self._end_times)
            self._ends, self._end_times = [], []


class Progress:
    """A tqdm bar on a terminal; plain lines every few seconds otherwise.

    Args:
        table: The study's table.
        runner: The runner.
        total: The runs.
    """

    def __init__(self, table: StudyTable, runner: Runner, total: int):
        self.table, self.runner, self.total = table, runner, total
        self.started = time.monotonic()
        self.finished_before = self._finished()
        self.next_line = 0.0
        self.bar = None
        if sys.stdout.isatty():
            from .run.progress import progress_bar

            self.bar = progress_bar(self.total, self.finished_before)

    def _finished(self) -> int:
        counts = self.table.counts()
        return counts[RunState.DONE] + counts[RunState.FAILED]

    def update(self, force: bool = False) -> None:
        """Show the counts (the bar: at most every 0.1 s; lines: every 5 s) or, with ``force``, now.

        Args:
            force: Show them now.
        """
        # Counting reads every run's state: only as often as anybody can read it.
        if not force and time.monotonic() < self.next_line:
            return
        self.next_line = time.monotonic() + (0.1 if self.bar is not None else 5.0)
        counts = self.table.counts()
        finished = counts[RunState.DONE] + counts[RunState.FAILED]
        if self.bar is not None:
            self.bar.set_postfix(
                done=counts[RunState.DONE], failed=counts[RunState.FAILED], running=len(self.runner.runs), refresh=False
            )
            self.bar.update(finished - self.bar.n)
            return
        print(
            f"profit: {finished}/{self.total} finished "
            f"(done {counts[RunState.DONE]}, failed {counts[RunState.FAILED]}, "
            f"running {len(self.runner.runs)}){self._eta(finished)}",
            flush=True,
        )

    def _eta(self, finished: int) -> str:
        elapsed = time.monotonic() - self.started
        now = finished - self.finished_before
        if now <= 0 or finished >= self.total:
            return ""
        return f", ETA {duration_text((self.total - finished) * elapsed / now)}"

    def close(self) -> None:
        """Close the bar, if there is one."""
        if self.bar is not None:
            self.bar.close()


def duration_text(seconds: float) -> str:
    """``H:MM:SS``.

    Args:
        seconds: A duration in seconds.
    """
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Ticker:
    """What happens every half second while runs go on: progress, a sync of the table, an export.

    Args:
        table: The study's table.
        recorder: The table's recorder.
        progress: The progress display (None: none).
        export: Exports the results.
    """

    def __init__(
        self, table: StudyTable, recorder: TableRecorder, progress: Progress | None, export: Callable[[], object]
    ):
        self.table, self.recorder, self.progress, self.export = table, recorder, progress, export
        self.next_flush = time.monotonic() + FLUSH_INTERVAL
        guess = len(table) * EXPORT_COST_GUESS
        self.next_export = time.monotonic() + max(EXPORT_INTERVAL, guess / EXPORT_SHARE)

    def __call__(self) -> None:
        now = time.monotonic()
        if self.progress is not None:
            self.progress.update()
        if now >= self.next_flush:  # (called after every wait, thousands of times a second: only now and then)
            self.recorder.flush()
            self.table.flush()
            self.next_flush = now + FLUSH_INTERVAL
        if now >= self.next_export:
            self.export()
            took = time.monotonic() - now
            self.next_export = time.monotonic() + max(EXPORT_INTERVAL, took / EXPORT_SHARE)
