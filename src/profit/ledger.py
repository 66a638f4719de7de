"""The ledger of a study: what it needs to continue, kept in its work directory.

``profit-study.npy`` holds one row per run: the inputs, the outputs, the state
and reason, the attempt count, and the process (pid and start time) of the run
in flight. It is a memory-mapped ``.npy`` file, updated as each run starts and
ends, so a runner that is killed (even with SIGKILL) leaves everything that
finished in the file; ``profit run`` also syncs it to the disk whenever it
writes the output file (at most a second apart) and at the end.
``profit-study.json`` holds what the rows were made from (a fingerprint of the
inputs' definition), and ``profit-study.lock`` is held by the ``profit run``
that works on the study.
"""

from __future__ import annotations

import fcntl
import json
import os

import numpy as np

from .datafiles import field_names
from .run import _npyfile
from .run._files import write_atomically
from .run._proc import group_members, proc_stat
from .run.errors import InterfaceError
from .run.interface import clear_outputs, decode_reason, encode_reason
from .run.state import RunState, RunStatus

LEDGER = "profit-study.npy"
META = "profit-study.json"
LOCK = "profit-study.lock"
_BOOKKEEPING = [
    ("STATE", "u1"),
    ("REASON", "S256"),
    ("TIME", "<f8"),
    ("ATTEMPTS", "<u4"),
    ("PID", "<i8"),
    ("PSTART", "<u8"),
]


def process_start(pid: int) -> int:
    """The start time of process ``pid`` in clock ticks since boot (0 if it is gone)."""
    fields = proc_stat(pid)
    return int(fields[19]) if fields is not None else 0


def count_states(states: np.ndarray) -> dict[RunState, int]:
    """How many of ``states`` (values of :class:`RunState`) are in each state."""
    return {state: int(np.count_nonzero(states == state)) for state in RunState}


class Ledger:
    """One row per run of a study, on disk."""

    def __init__(self, folder: str, mapping: np.memmap, input_names: list[str], output_names: list[str]):
        self.folder = folder
        self._mapping = mapping
        self.rows = mapping.view(np.ndarray)
        self.input_names = input_names
        self.output_names = output_names

    @classmethod
    def create(cls, folder: str, inputs: np.ndarray, outputs: np.dtype) -> Ledger:
        """A new ledger for ``inputs`` (a structured array) and outputs of dtype ``outputs``."""
        input_names, output_names = field_names(inputs.dtype), field_names(outputs)
        names = set(input_names) | set(output_names)
        clash = names & {name for name, _ in _BOOKKEEPING}
        if clash:
            raise InterfaceError(f"variable name {sorted(clash)[0]!r} is reserved by profit; rename the variable")
        dtype = np.dtype(inputs.dtype.descr + outputs.descr + _BOOKKEEPING)
        path = os.path.join(folder, LEDGER)
        layout = _npyfile.create(path, dtype, len(inputs))
        mapping = _npyfile.map_rows(path, layout)
        for name in input_names:
            mapping[name] = inputs[name]
        clear_outputs(mapping[list(output_names)])
        ledger = cls(folder, mapping, list(input_names), list(output_names))
        ledger.flush()
        return ledger

    @classmethod
    def open(cls, folder: str, input_names: list[str], output_names: list[str]) -> Ledger:
        """The ledger in ``folder``; :class:`InterfaceError` if it is corrupt or of another study."""
        path = os.path.join(folder, LEDGER)
        layout = _npyfile.read_layout(path, "study state", "profit run")
        missing = [name for name in [*input_names, *output_names] if name not in layout.dtype.names]
        if missing or _npyfile.data_rows(path, layout.offset, layout.dtype.itemsize) < layout.size:
            raise InterfaceError(f"{path} does not belong to this study or is cut short")
        return cls(folder, _npyfile.map_rows(path, layout), input_names, output_names)

    def flush(self) -> None:
        """Write the rows through to the disk (they survive a crash of the runner anyway)."""
        self._mapping.flush()

    @property
    def inputs(self) -> np.ndarray:
        """The inputs of every run (a structured view)."""
        return self.rows[self.input_names]

    @property
    def outputs(self) -> np.ndarray:
        """The outputs of every run (NaN where a run has no result)."""
        return self.rows[self.output_names]

    def state(self, run_id: int) -> RunState:
        """The recorded state of ``run_id``."""
        return RunState(int(self.rows["STATE"][run_id]))

    def states(self) -> np.ndarray:
        """The state of every run (values of :class:`RunState`)."""
        return self.rows["STATE"]

    def reason(self, run_id: int | np.integer) -> str:
        """Why ``run_id`` failed (empty when it did not)."""
        return decode_reason(self.rows["REASON"][run_id])

    def started(self, run_id: int, pid: int | None) -> None:
        """Note that ``run_id`` runs in process ``pid`` (its process group)."""
        row = self.rows[run_id]
        row["STATE"] = RunState.RUNNING
        row["ATTEMPTS"] += 1
        row["PID"] = pid or 0
        row["PSTART"] = process_start(pid) if pid else 0

    def ended(self, status: RunStatus, outputs: np.void | None, duration: float = 0.0) -> None:
        """Record how a run ended (a cancelled run goes back to pending: it did not finish)."""
        row = self.rows[status.run_id]
        if status.state == RunState.DONE and outputs is not None:
            for name in self.output_names:
                row[name] = outputs[name]
            row["TIME"] = duration
        else:
            clear_outputs(self.rows[self.output_names][status.run_id : status.run_id + 1])
        cancelled = status.state == RunState.CANCELLED
        row["STATE"] = RunState.PENDING if cancelled else status.state
        row["REASON"] = encode_reason("" if cancelled else status.reason)
        row["PID"] = 0

    def counts(self) -> dict[RunState, int]:
        """How many runs are in each state."""
        return count_states(self.states())

    def leftovers(self) -> list[int]:
        """Process groups of runs that were running when their runner died and still have processes.

        The group id is the worker's pid. If a process with that pid exists but
        started at another time, the pid was reused and the group is not ours.
        """
        groups = []
        for run_id in np.flatnonzero(self.states() == RunState.RUNNING):
            pid, started = int(self.rows["PID"][run_id]), int(self.rows["PSTART"][run_id])
            now = process_start(pid) if pid else 0
            if pid and (now == 0 or now == started) and group_members(pid):
                groups.append(pid)
        return groups


class Meta:
    """``profit-study.json``: what the study's rows were made from, and when it ran."""

    def __init__(self, folder: str):
        self.path = os.path.join(folder, META)
        self.data: dict = {}
        if os.path.exists(self.path):
            try:
                with open(self.path) as file:
                    self.data = json.load(file)
            except (OSError, json.JSONDecodeError):
                self.data = {}

    def save(self, **changes) -> None:
        """Update the record with ``changes`` and replace the file atomically."""
        self.data.update(changes)
        write_atomically(self.path, json.dumps(self.data, indent=1))


class StudyLock:
    """An exclusive lock on a study's work directory, released when its process ends."""

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
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return True

    def release(self) -> None:
        """Give the lock up (it also goes when the process ends)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def end_process_groups(pgids: list[int], timeout: float = 10.0) -> None:
    """Kill the process groups ``pgids`` and wait until none of their processes is left."""
    import signal
    import time

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
