"""Memory-map interface (label ``memmap``): runner and workers share one ``.npy`` file.

The file is a valid ``.npy`` file holding one structured row per run (inputs,
``DONE``, ``TIME``, ``STATE``, ``REASON``, outputs). It grows in place (see
:mod:`profit.run._npyfile`): a Worker maps only its own row, and that row never
moves, so adding runs while workers are in flight is safe. A worker forked from
the runner uses its row of the runner's own mapping (no open, no header parsing,
no new mapping: the mapping is shared, so its writes reach the file); a worker
started as a program maps its row without numpy (:mod:`profit.run._record`).
"""

from __future__ import annotations

import os

from . import _npyfile
from ._lazy import logging
from ._lazy import numpy as np
from ._record import StructRecord, parse_descr
from ._state_values import FAILED
from .errors import InterfaceError
from .interface import (
    INTERNAL_NAMES,
    RESERVED_NAMES,
    RunnerInterface,
    WorkerInterface,
    clear_outputs,
    empty_record,
    encode_reason,
    whole_seconds,
)
from .options import is_whole

TYPE_CHECKING = False  # (typing costs every worker process its import)
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    import numpy


class MemmapRunnerInterface(RunnerInterface, label="memmap"):
    """Runner-Worker Interface using a memory mapped numpy array

    - fast with the local runners: each Worker maps its own row of the file
      (see ``benchmarks/`` for figures)
    - inefficient on a cluster with a shared filesystem (every worker maps the file)
    - reliable: the file is a valid ``.npy`` file (``numpy.load`` reads it)
    - growing is safe: the file is extended in place, rows never move

    Args:
        size: number of runs for which space is allocated (it grows on demand).
        input_config: ``{name: {"dtype": numpy scalar type}}`` (or Variable-like objects).
        output_config: ``{name: {"dtype": ..., "size": (1, n)}}``; ``n > 1`` is a vector.
        path: the ``.npy`` file (relative: to the current directory, made absolute at once).
        logger_parent: logger whose handlers receive this interface's records.
    """

    def __init__(
        self,
        size: int,
        input_config: Mapping,
        output_config: Mapping,
        *,
        path: str = "interface.npy",
        logger_parent: logging.Logger | None = None,
    ):
        self.path = os.path.abspath(path)
        super().__init__(size, input_config, output_config, logger_parent=logger_parent)
        self.logger.debug("memmap interface %s with %d rows of %s", self.path, self.size, self.dtype)

    def _allocate(self, size: int) -> numpy.ndarray:
        if size == 0:  # no file until there are runs (a study hands its own table to use_store)
            self._layout = None
            return self._new_rows(0)
        self._layout = _npyfile.create(self.path, self.dtype, size)
        rows = _npyfile.map_rows(self.path, self._layout)
        clear_outputs(rows[self.output_names])
        return rows.view(np.ndarray)  # plain ndarray views index faster; the mapping stays referenced

    def _grow(self, size: int) -> numpy.ndarray:
        if self._layout is None:
            return self._allocate(size)
        self._layout = _npyfile.grow(
            self.path, self._layout, size, initialize=lambda rows: clear_outputs(rows[self.output_names])
        )
        return _npyfile.map_rows(self.path, self._layout).view(np.ndarray)

    def use_store(self, rows: numpy.ndarray, grow: Callable[[int], numpy.ndarray], path: str | None = None) -> None:
        """Map the study's table (the ``.npy`` file at ``path``) instead of a file of its own:
        workers write their outputs straight into the study's rows.

        Raises:
            InterfaceError: No ``path`` was given.
        """
        if path is None:
            raise InterfaceError("the memmap interface needs the path of the study's table")
        super().use_store(rows, grow, path)
        if self._layout is not None and os.path.exists(self.path):
            os.remove(self.path)  # an empty file of its own, made before the store was handed over
        self._layout = None
        self.path = os.path.abspath(path)

    @property
    def config(self) -> dict:
        """What a Worker needs: the label and the file's absolute path."""
        return {**super().config, "path": self.path}

    def forked_worker_interface(self, run_id: int, *, row_is_current: bool) -> MemmapWorkerInterface:
        """A worker interface that uses this runner's mapping of the file (inherited by the fork)."""
        interface = MemmapWorkerInterface(run_id, path=self.path)
        interface._shared = self
        return interface

    def forked_rows(self, run_id: int) -> np.ndarray | None:
        """The mapped rows of the file (or of the study's table), shared with the runner, if they
        hold ``run_id`` (a process forked before the file grew maps the new rows on its own)."""
        return self._data if 0 <= run_id < self.size else None

    def resize(self, size: int) -> None:
        """Resizing the Interface

        Grows it to ``size`` runs, safely: the file is extended in place and its header rewritten; existing rows
        never move, so Workers that have the file mapped keep working and no
        result is lost. Shrinking is not supported.

        Args:
            size: the number of runs to hold.
        """
        super().resize(size)

    def clean(self) -> None:
        """Remove the interface file (never the study's table it was handed)."""
        if self._grow_store is None and os.path.exists(self.path):
            os.remove(self.path)


class MemmapWorkerInterface(WorkerInterface, label="memmap"):
    """Runner-Worker Interface using a memory mapped numpy array

    counterpart to :py:class:`MemmapRunnerInterface`: maps only its own row.

    Args:
        run_id: the run's id (its row).
        path: the runner's ``.npy`` file.
        logger_parent: logger whose handlers receive this interface's records.
    """

    def __init__(self, run_id: int, *, path: str = "interface.npy", logger_parent: logging.Logger | None = None):
        self.path = path
        self._record: StructRecord | None = None
        self._time = 0.0
        # The runner's half, where this process was forked from the runner (set by it).
        self._shared: MemmapRunnerInterface | None = None
        super().__init__(run_id, logger_parent=logger_parent)

    @property
    def config(self) -> dict:
        """The options this interface was built with: ``{"class": "memmap", "path": ...}``."""
        return {**super().config, "path": self.path}

    @property
    def time(self) -> float:
        """The run's duration in seconds (stored in the interface in whole seconds once retrieved)."""
        return self._time

    @time.setter
    def time(self, value: float) -> None:
        self._time = value
        if self._record is not None:
            self._record["TIME"] = whole_seconds(value)

    def _map(self) -> StructRecord:
        """This run's whole row of the interface file as a writable record."""
        if self._record is not None:
            return self._record
        if not is_whole(self.run_id):
            raise InterfaceError(f"run id {self.run_id!r} is not a whole number")
        run_id = int(self.run_id)
        shared = self._shared
        if shared is not None and 0 <= run_id < shared.size:
            # Forked from the runner: its mapping of the file is ours too.
            buffer, fields = shared.row_buffer(run_id)
        else:
            buffer, fields = self._map_from_file(run_id)
        names = [field.name for field in fields]
        inputs = fields[: names.index("DONE")] if "DONE" in names else []
        self._record = StructRecord(buffer, fields)
        self.input = StructRecord(buffer, inputs)
        self.output = StructRecord(
            buffer, [field for field in fields[len(inputs) :] if field.name not in RESERVED_NAMES]
        )
        return self._record

    def _map_from_file(self, run_id: int) -> tuple:
        header = _npyfile.read_header(self.path)
        where = os.path.abspath(self.path)
        try:
            fields, itemsize = parse_descr(header.descr)
        except ValueError as error:
            raise InterfaceError(f"interface file {where} was not written by the memmap interface ({error})") from None
        if not INTERNAL_NAMES <= {field.name for field in fields}:
            raise InterfaceError(
                f"interface file {where} lacks the columns {', '.join(sorted(INTERNAL_NAMES))}; "
                "it was not written by the memmap interface"
            )
        rows = _npyfile.data_rows(self.path, header.offset, itemsize)
        if not 0 <= run_id < rows:
            raise InterfaceError(
                f"run id {run_id} is outside the interface file {where} (it holds runs 0..{rows - 1}); "
                "the run id must come from the runner that made the file"
            )
        return _npyfile.map_row(self.path, header.offset, itemsize, run_id), fields

    def retrieve(self) -> None:
        """retrieve the input

        1. connect to the Runner-Interface (map this run's row of the file)
        2. retrieve the input data and store it in .input
        """
        self._map()["TIME"] = whole_seconds(self._time)

    def transmit(self) -> None:
        """transmit the output

        1. transmit the output and time data (.output and .time): they are in the mapped row already
        2. signal the Worker has finished (DONE, written last)
        3. the connection is closed by clean()
        """
        self._map()["DONE"] = True

    def fail(self, reason: str) -> None:
        """Record why this run failed, for the runner to report."""
        try:
            row = self._map()
        except InterfaceError as error:
            self.logger.error("run %s failed: %s (and could not report it: %s)", self.run_id, reason, error)
            return
        row["REASON"] = encode_reason(reason)
        row["STATE"] = FAILED

    def clean(self) -> None:
        """Release the mapping."""
        self._record = None
        self.input = empty_record()
        self.output = empty_record()
