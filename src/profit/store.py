"""The one store of a study: a table with one row per run, in its work directory.

``profit-study.npy`` is a valid ``.npy`` file (``numpy.load`` reads it) holding,
for each run: its inputs; the interface's columns ``DONE``, ``TIME`` (whole
seconds, as proFit keeps it), ``STATE`` and ``REASON``; its outputs (NaN until
it succeeded); and the study's columns ``ATTEMPTS``, ``STARTED`` and ``ENDED``
(Unix timestamps, NaN when unknown) and ``PID`` (the process group of the run in
flight). The runner's interface maps this very table (see
:meth:`profit.run.interface.RunnerInterface.use_store`): workers write their
outputs into it, and nothing is copied between stores. It grows in place, so
rows never move. A runner that is killed, even with SIGKILL, leaves every
result that a worker transmitted in the file.

A run has *settled* when its runner decided how it ended: ``ENDED`` is then set.
A row whose run has not settled (``STATE`` running, or failed by the worker's own
word before its runner could decide) was interrupted: it runs again, unless its
worker transmitted (``DONE``), in which case its results count.

``profit-study.json`` holds what the rows were made from, and
``profit-study.lock`` is held by the process that runs the study.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
import weakref

import numpy as np

from .datafiles import field_names
from .run import _npyfile
from .run._files import write_atomically
from .run._proc import group_members, has_proc, marked_processes, optional_psutil, proc_stat
from .run.errors import InterfaceError
from .run.interface import INTERNAL_VARS, RESERVED_NAMES, STUDY_VARS, clear_outputs, decode_reason
from .run.state import RunState

TABLE = "profit-study.npy"
META = "profit-study.json"
LOCK = "profit-study.lock"


def count_states(states: np.ndarray) -> dict[RunState, int]:
    """How many of ``states`` (values of :class:`RunState`) are in each state.

    Args:
        states: Values of :class:`RunState`.
    """
    counts = np.bincount(states, minlength=max(RunState) + 1)
    return {state: int(counts[state]) for state in RunState}


def inputs_digest(rows: np.ndarray, input_names: list[str]) -> str:
    """A short digest of the columns ``input_names`` of ``rows`` (a table's, or the rows it is made from).

    Args:
        rows: A table's rows, or the rows it is made from.
        input_names: The columns.
    """
    digest = hashlib.sha256()
    for name in input_names:
        digest.update(np.ascontiguousarray(rows[name]).tobytes())
    return digest.hexdigest()[:16]


def table_dtype(inputs: np.dtype, outputs: np.dtype) -> np.dtype:
    """The table's row: inputs, the interface's columns, outputs, the study's columns.

    Args:
        inputs: The inputs' dtype.
        outputs: The outputs' dtype.

    Raises:
        InterfaceError: A variable's name is reserved by profit.
    """
    clash = (set(field_names(inputs)) | set(field_names(outputs))) & RESERVED_NAMES
    if clash:
        raise InterfaceError(f"variable name {sorted(clash)[0]!r} is reserved by profit; rename the variable")
    # Field by field: a dtype taken from a view of some fields has gaps (void padding) in its descr.
    packed = [(name, inputs[name]) for name in field_names(inputs)]
    results = [(name, outputs[name]) for name in field_names(outputs)]
    return np.dtype(packed + INTERNAL_VARS + results + STUDY_VARS)


class StudyTable:
    """The rows of a study, memory-mapped from its ``.npy`` file.

    Args:
        path: The ``.npy`` file.
        layout: Its layout.
        input_names: The inputs.
        output_names: The outputs.
    """

    def __init__(self, path: str, layout: _npyfile.NpyLayout, input_names: list[str], output_names: list[str]):
        self.path = path
        self._layout = layout
        self.input_names = input_names
        self.output_names = output_names
        self._map()

    def _map(self) -> None:
        self._mapping = _npyfile.map_rows(self.path, self._layout)
        self.rows = self._mapping.view(np.ndarray)
        # Single columns: writing one element of a column is far cheaper than a record.
        self._state, self._attempts = self.rows["STATE"], self.rows["ATTEMPTS"]
        self._started, self._ended, self._pid = self.rows["STARTED"], self.rows["ENDED"], self.rows["PID"]

    @classmethod
    def create(cls, path: str, inputs: np.ndarray, outputs: np.dtype) -> StudyTable:
        """A new table at ``path`` for ``inputs`` (a structured array), with outputs of dtype ``outputs``.

        It is built beside ``path`` and moved into place whole, so an interruption
        leaves either no table or a complete one.

        Args:
            path: The table's file.
            inputs: A structured array: one run per row.
            outputs: The outputs' dtype.
        """
        dtype = table_dtype(inputs.dtype, outputs)
        building = path + ".new"
        layout = _npyfile.create(building, dtype, len(inputs))
        rows = _npyfile.map_rows(building, layout)
        for name in field_names(inputs.dtype):
            rows[name] = inputs[name]
        _reset(rows, field_names(outputs))
        rows.flush()
        del rows
        os.replace(building, path)
        return cls(path, layout, list(field_names(inputs.dtype)), list(field_names(outputs)))

    @classmethod
    def open(cls, path: str, inputs: np.dtype, outputs: np.dtype) -> StudyTable:
        """The table at ``path``; :class:`InterfaceError` if it is damaged or of other variables.

        Args:
            path: The table's file.
            inputs: The inputs' dtype.
            outputs: The outputs' dtype.

        Raises:
            InterfaceError: The table is damaged, cut short or of other variables.
        """
        layout = _npyfile.read_layout(path, "study table", "profit run")
        if layout.dtype != table_dtype(inputs, outputs):
            raise InterfaceError(f"{path} holds other variables than this study")
        if _npyfile.data_rows(path, layout.offset, layout.dtype.itemsize) < layout.size:
            raise InterfaceError(f"{path} is cut short")
        table = cls(path, layout, list(field_names(inputs)), list(field_names(outputs)))
        if np.any(table.states() > max(RunState)):
            raise InterfaceError(f"{path} holds run states that are no states: it is damaged")
        return table

    def inputs_digest(self) -> str:
        """A short digest of every run's inputs: the study's record keeps it, to know its table."""
        return inputs_digest(self.rows, self.input_names)

    def __len__(self) -> int:
        return len(self.rows)

    def grow(self, size: int, inputs: np.ndarray | None = None) -> np.ndarray:
        """Extend the table in place to ``size`` rows, pending; the rows.

        The new rows get ``inputs`` (one per new row; the runner's interface grows
        without) before the header counts them, so a table cut off while growing
        never holds a run without its inputs.

        Args:
            size: The rows.
            inputs: The new rows' inputs, one per new row (None: none).
        """
        if size > len(self.rows):

            def initialize(rows: np.memmap) -> None:
                _reset(rows, self.output_names)
                if inputs is not None:
                    for name in self.input_names:
                        rows[name] = inputs[name]
                    rows.flush()

            self._layout = _npyfile.grow(self.path, self._layout, size, initialize=initialize)
            self._map()
        return self.rows

    def append(self, inputs: np.ndarray) -> range:
        """Add one pending run per row of ``inputs``; their run ids.

        Args:
            inputs: A structured array: one run per row.
        """
        first = len(self.rows)
        self.grow(first + len(inputs), inputs)
        return range(first, len(self.rows))

    def flush(self) -> None:
        """Write the rows through to the disk (they survive a crash of the runner anyway)."""
        self._mapping.flush()

    # --- reading -----------------------------------------------------------------------------

    @property
    def inputs(self) -> np.ndarray:
        """The inputs of every run (a structured view)."""
        return self.rows[self.input_names]

    @property
    def outputs(self) -> np.ndarray:
        """The outputs of every run (NaN where a run has no result)."""
        return self.rows[self.output_names]

    def states(self) -> np.ndarray:
        """The state of every run (values of :class:`RunState`)."""
        return self._state

    def counts(self) -> dict[RunState, int]:
        """How many runs are in each state."""
        return count_states(self._state)

    def reason(self, run_id: int | np.integer) -> str:
        """Why ``run_id`` failed (empty when it did not).

        Args:
            run_id: The run.
        """
        return decode_reason(self.rows["REASON"][run_id])

    # --- as runs start and end ---------------------------------------------------------------

    def note_process(self, run_id: int, pid: int | None) -> None:
        """Note the process (group) ``pid`` of ``run_id``, which has just started: at once, so that a
        runner that is killed leaves it findable.

        Args:
            run_id: The run.
            pid: Its process (group); None: none.
        """
        self._pid[run_id] = pid or 0

    def started(self, run_ids: list[int], times: list[float]) -> None:
        """Note that ``run_ids`` started at ``times`` (Unix times; a run may appear twice: a retry).

        Args:
            run_ids: The runs.
            times: When each started (Unix times).
        """
        ids = np.asarray(run_ids, dtype=np.intp)
        np.add.at(self._attempts, ids, 1)
        self._started[ids] = times
        self._ended[ids] = np.nan

    def ended(self, run_ids: list[int], times: list[float]) -> None:
        """Note that the runner settled ``run_ids`` at ``times`` (their states and outputs are in the rows).

        Args:
            run_ids: The runs.
            times: When each was settled (Unix times).
        """
        ids = np.asarray(run_ids, dtype=np.intp)
        self._ended[ids] = times
        self._pid[ids] = 0

    # --- after a runner stopped --------------------------------------------------------------

    def interrupted(self) -> np.ndarray:
        """Run ids whose run started but never settled (their runner stopped first)."""
        states = self._state
        unsettled = (states == RunState.RUNNING) | ((states == RunState.FAILED) & np.isnan(self._ended))
        return np.flatnonzero(unsettled)

    def leftovers(self) -> list[int]:
        """Process groups of interrupted runs that still have processes, and every process
        an earlier runner of this study left (found by the mark in its environment).

        The group id is the worker's pid. A process that has that pid but started
        after the run did is not the run's: the pid was reused. A runner killed
        between starting a worker and noting its pid leaves no pid in the table:
        every process that a local worker, or a program under a forked worker, execs
        carries ``PROFIT_WORK_DIR`` (see :mod:`profit.run._proc`), and whoever holds
        the study's lock finds those of the study's work directory by it: they can
        only be left over (the runner that started them is gone). Their process
        groups are ended whole (:func:`end_process_groups` takes group ids).
        """
        groups = []
        for run_id in self.interrupted():
            pid = int(self._pid[run_id])
            if pid and group_members(pid) and not _started_after(pid, float(self._started[run_id])):
                groups.append(pid)
        groups += [group for group in marked_groups(os.path.dirname(os.path.abspath(self.path))) if group not in groups]
        return groups

    def settle_interrupted(self) -> tuple[int, int]:
        """Settle the interrupted runs: those that transmitted are done, the others pending.

        Returns (done, pending). Only this table's own rows are looked at.
        """
        rows = self.interrupted()
        done = self.rows["DONE"][rows]
        transmitted, again = rows[done], rows[~done]
        self._state[transmitted] = RunState.DONE
        self.rows["REASON"][transmitted] = b""
        self.reset(again)
        self._pid[rows] = 0
        self.flush()
        return len(transmitted), len(again)

    def reset(self, run_ids: np.ndarray) -> None:
        """Make ``run_ids`` pending again, without results (to run them again).

        Args:
            run_ids: The runs.
        """
        self._state[run_ids] = RunState.PENDING
        self.rows["REASON"][run_ids] = b""
        self.rows["DONE"][run_ids] = False
        for name in self.output_names:
            column = self.rows[name]
            column[run_ids] = np.nan if column.dtype.kind == "f" else 0


def _reset(rows: np.ndarray, output_names: tuple[str, ...] | list[str]) -> None:
    """Fresh rows: pending, no result, no start or end yet."""
    clear_outputs(rows[list(output_names)])
    rows["STARTED"] = np.nan
    rows["ENDED"] = np.nan


def marked_groups(work_dir: str) -> list[int]:
    """The process groups of the processes that carry the mark of ``work_dir`` (left by a runner of
    that study), but never this process's own group.

    Args:
        work_dir: The study's work directory.
    """
    groups = []
    for pid in marked_processes(work_dir):
        group = _process_group(pid)
        if group is not None and group not in groups and group != os.getpgrp():
            groups.append(group)
    return groups


def _process_group(pid: int) -> int | None:
    """The process group of ``pid`` (None: gone)."""
    try:
        return os.getpgid(pid)
    except (ProcessLookupError, PermissionError):
        return None


def _started_after(pid: int, started: float) -> bool:
    """Whether process ``pid`` started after the wall-clock time ``started`` (it is not the run's then)."""
    if not has_proc():  # (macOS, the BSDs: psutil knows, where it is installed)
        psutil = optional_psutil()
        try:
            return psutil is not None and psutil.Process(pid).create_time() > started + 0.05
        except psutil.Error:
            return False  # gone meanwhile: its group decides
    fields = proc_stat(pid)
    if fields is None:
        return False  # gone meanwhile, or no /proc: its group decides
    try:
        with open("/proc/uptime") as file:
            uptime = float(file.read().split()[0])
    except (OSError, ValueError, IndexError):
        return False
    boot = time.time() - uptime
    ticks = os.sysconf("SC_CLK_TCK")
    # The run's process was forked before its start was noted; a reused pid only after that.
    return boot + int(fields[19]) / ticks > started + 0.05


class Meta:
    """``profit-study.json``: what the study's rows were made from, and when it ran.

    Args:
        folder: The study's work directory.
    """

    MAX_BYTES = 16 << 20  # far more than a record holds; a larger file is not one

    def __init__(self, folder: str):
        self.path = os.path.join(folder, META)
        self.data: dict = {}
        if os.path.exists(self.path):
            # A damaged record (not JSON, not UTF-8, nested beyond Python's recursion, not an object,
            # far larger than a record is) reads as none: the study then says its record is damaged.
            try:
                with open(self.path, "rb") as file:
                    raw = file.read(self.MAX_BYTES + 1)
                if len(raw) <= self.MAX_BYTES:
                    self.data = json.loads(raw.decode("utf-8"))
            except (OSError, ValueError, RecursionError):  # (JSONDecodeError and UnicodeDecodeError are ValueErrors)
                self.data = {}
        if not isinstance(self.data, dict):
            self.data = {}

    def save(self, **changes: object) -> None:
        """Update the record with ``changes`` and replace the file atomically."""
        self.data.update(changes)
        write_atomically(self.path, json.dumps(self.data, indent=1))


class StudyLock:
    """An exclusive lock on a study's work directory, released when its process ends.

    Only the process that took it holds it: a forked process (a worker, and
    whatever that forks) closes its copy of the descriptor at once (``flock``
    locks belong to the open file, which a fork shares), so that a process left
    over after the runner was killed never keeps the next ``profit run`` out.
    Exec'd processes never get it (the descriptor is close-on-exec).

    Args:
        folder: The study's work directory.
    """

    def __init__(self, folder: str):
        self.path = os.path.join(folder, LOCK)
        self._fd: int | None = None

    def holder(self) -> int | None:
        """The pid of the process holding the lock, or None if nobody does."""
        if not os.path.exists(self.path):
            return None
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            content = os.read(fd, 64).decode(errors="replace").strip()
            return int(content) if content.isdigit() else -1
        finally:
            os.close(fd)
        return None

    def acquire(self) -> bool:
        """Take the lock; False if another process holds it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        # (fix, found by tests/test_ui.py: holder() takes the lock shared for an instant, and
        # `profit status` or a `profit ui` page asks it every second; a run starting in that instant
        # was refused as "being run by process None". Such a reader lets go at once: try again briefly.)
        deadline = time.monotonic() + 0.25
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    return False
                time.sleep(0.002)
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        _HELD_LOCKS.add(self)
        return True

    def release(self) -> None:
        """Give the lock up (it also goes when the process ends)."""
        _HELD_LOCKS.discard(self)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _forget_in_child(self) -> None:
        """In a forked child: close the inherited descriptor (the parent keeps the lock)."""
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None


_HELD_LOCKS: weakref.WeakSet[StudyLock] = weakref.WeakSet()


def _close_locks_in_child() -> None:
    for lock in list(_HELD_LOCKS):
        lock._forget_in_child()
    _HELD_LOCKS.clear()


os.register_at_fork(after_in_child=_close_locks_in_child)


def end_process_groups(pgids: list[int], timeout: float = 10.0) -> None:
    """Kill the process groups ``pgids`` and wait until none of their processes is left.

    Args:
        pgids: The process groups.
        timeout: The most seconds to wait.

    Raises:
        InterfaceError: Their processes do not end within ``timeout``.
    """
    import signal

    for pgid in pgids:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    # They are not our children: no exit event to wait on, so check their group.
    deadline = time.monotonic() + timeout
    while any(group_members(pgid) for pgid in pgids):
        if time.monotonic() > deadline:
            raise InterfaceError(
                f"processes of earlier runs (process groups {pgids}) do not end; stop them, then run again"
            )
        time.sleep(0.01)
