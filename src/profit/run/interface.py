"""Runner-Worker interface: how inputs reach a Worker and outputs come back.

Each variant has two halves sharing one label: a :class:`RunnerInterface` that
holds the data of all runs (structured arrays ``input``, ``output`` and
``internal``) and a :class:`WorkerInterface` that gives one Worker its run's
``input`` record and a writable ``output`` record::

    Worker:  interface.retrieve()          -> interface.input
             interface.output[...] = ...
             interface.time = duration
             interface.transmit()          -> runner sees DONE

The ``internal`` array has the fields ``DONE`` (bool), ``TIME`` (the run's
duration in whole seconds, cut as proFit does), ``STATE`` (a
:class:`~profit.run.state.RunState` value) and ``REASON`` (why a run did not
succeed, UTF-8, truncated to the field size).
"""

from __future__ import annotations

import keyword
from _collections_abc import Mapping  # (collections.abc itself imports collections: see _record.Field)
from abc import abstractmethod

from . import options as check
from ._lazy import logging
from ._lazy import numpy as np
from ._record import StructRecord, parse_descr
from ._state_values import DONE
from .errors import ConfigError
from .registry import Component

TYPE_CHECKING = False  # (typing costs every worker process its import)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeAlias

    from .state import RunState

    # numpy field specs: (name, dtype) for scalars, (name, dtype, (n,)) for vector outputs
    InputVar: TypeAlias = tuple[str, np.dtype]
    OutputVar: TypeAlias = tuple[str, np.dtype] | tuple[str, np.dtype, tuple[int]]

REASON_BYTES = 256
INTERNAL_VARS: list[tuple[str, str]] = [
    ("DONE", "?"),
    ("TIME", "<u4"),  # whole seconds, as proFit keeps it (a study also keeps exact start and end times)
    ("STATE", "u1"),
    ("REASON", f"S{REASON_BYTES}"),
]
INTERNAL_NAMES = frozenset(name for name, _ in INTERNAL_VARS)
# Columns a study's table adds after the outputs (see profit.store): never a worker's outputs.
STUDY_VARS: list[tuple[str, str]] = [
    ("ATTEMPTS", "<u4"),
    ("STARTED", "<f8"),
    ("ENDED", "<f8"),
    ("PID", "<i8"),
]
RESERVED_NAMES = INTERNAL_NAMES | frozenset(name for name, _ in STUDY_VARS)


_CUT = " … [cut: the run's log has it whole]"


def encode_reason(reason: str) -> bytes:
    """Fit a reason into the ``REASON`` field (UTF-8): a long one is cut at a word and says so
    (the worker writes it whole, with its traceback, into the run's log).

    Args:
        reason: The reason a run failed.

    Returns:
        The bytes of the field.
    """
    data = reason.encode("utf-8", "replace")
    if len(data) <= REASON_BYTES:
        return data
    room = REASON_BYTES - len(_CUT.encode())
    text = data[:room].decode("utf-8", "ignore")
    if " " in text[room // 2 :]:  # (a word boundary in the second half: cut there)
        text = text[: text.rindex(" ")]
    return text.encode() + _CUT.encode()


def whole_seconds(duration: float) -> int:
    """A duration as the ``TIME`` column keeps it: whole seconds, cut (as proFit does), within the column's range.

    Args:
        duration: A duration in seconds.
    """
    return min(max(int(duration), 0), 2**32 - 1) if duration == duration else 0


def decode_reason(raw: bytes) -> str:
    """The text of a ``REASON`` field (UTF-8; undecodable bytes replaced).

    Args:
        raw: The bytes of the field.
    """
    return bytes(raw).decode("utf-8", "replace")


def _spec_value(spec: object, key: str, default: object = None) -> object:
    """Read ``key`` from a mapping spec or an attribute of a Variable-like object."""
    if isinstance(spec, Mapping):
        return spec.get(key, default)
    return getattr(spec, key, default)


def _check_name(name: object, what: str) -> None:
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise ConfigError(f"{what} name {name!r} is not valid; use a Python identifier such as 'u' or 'f1'")
    if name in RESERVED_NAMES:
        raise ConfigError(
            f"{what} name {name!r} is reserved for the run system's own columns "
            f"({', '.join(sorted(RESERVED_NAMES))}); rename the {what}"
        )


def _dtype_of(name: str, spec: object, what: str) -> np.dtype:
    raw: Any = _spec_value(spec, "dtype", np.float64)  # anything: numpy.dtype() refuses what is not a type
    try:
        dtype = np.dtype(raw)
    except TypeError:
        raise ConfigError(
            f"{what} {name!r}: dtype {raw!r} is not a numpy scalar type (use e.g. numpy.float64)"
        ) from None
    if dtype.kind not in "biuf":
        raise ConfigError(f"{what} {name!r}: dtype {dtype} is not supported; use a bool, integer or float type")
    return dtype


def output_length(name: str, size: object) -> int:
    """Validate an output ``size`` of the form ``(1, n)`` and return ``n``.

    Args:
        name: The output's name (for the error message).
        size: Its ``size``; ``None`` stands for ``(1, 1)``.

    Returns:
        ``n``, the output's length.

    Raises:
        ConfigError: ``size`` is not ``(1, n)`` with a whole number ``n >= 1``.
    """
    if size is None:
        return 1
    pair: Any = size  # anything: what is not a pair of whole numbers fails below
    try:
        rows, length = pair
        valid = int(rows) == rows == 1 and int(length) == length and length >= 1
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise ConfigError(
            f"output {name!r}: size {size!r} is invalid; expected (1, n) with a whole number n >= 1 "
            "(n > 1 makes a vector output of length n)"
        )
    return int(length)


def build_vars(input_config: Mapping, output_config: Mapping) -> tuple[list[InputVar], list[OutputVar]]:
    """Turn input and output configs into numpy field lists ``(name, dtype[, shape])``.

    Args:
        input_config: The inputs: name -> ``{'dtype': ...}``.
        output_config: The outputs: name -> ``{'dtype': ..., 'size': ...}``.

    Returns:
        The input fields and the output fields.

    Raises:
        ConfigError: A config is not a mapping, or a name is both an input and an output.
    """
    if not isinstance(input_config, Mapping) or not isinstance(output_config, Mapping):
        raise ConfigError("input_config and output_config must be mappings of name -> {'dtype': ..., 'size': ...}")
    input_vars: list[InputVar] = []
    output_vars: list[OutputVar] = []
    for name, spec in input_config.items():
        _check_name(name, "input")
        input_vars.append((name, _dtype_of(name, spec, "input")))
    for name, spec in output_config.items():
        _check_name(name, "output")
        if name in input_config:
            raise ConfigError(f"{name!r} is both an input and an output; each name may be only one of them")
        length = output_length(name, _spec_value(spec, "size"))
        dtype = _dtype_of(name, spec, "output")
        output_vars.append((name, dtype, (length,)) if length > 1 else (name, dtype))
    return input_vars, output_vars


def clear_outputs(output: np.ndarray) -> None:
    """Set outputs to their 'no result' value: NaN for floats, 0 otherwise.

    Args:
        output: The outputs (a structured array, set in place).
    """
    for name in output.dtype.names or ():
        field = output[name]
        field[...] = np.nan if field.dtype.kind == "f" else 0


def empty_record() -> StructRecord:
    """A record without fields: ``.input``/``.output`` before ``retrieve()``."""
    return StructRecord(memoryview(bytearray()), [])


class RunnerInterface(Component, registry=True):
    """Runner half of an interface: the data of all runs, in structured arrays.

    Args:
        size: number of runs for which space is allocated (it grows on demand).
        input_config: ``{name: {"dtype": numpy scalar type}}`` (or Variable-like objects).
        output_config: ``{name: {"dtype": ..., "size": (1, n)}}``; ``n > 1`` is a vector.
        logger_parent: logger whose handlers receive this interface's records.

    This base keeps the arrays in memory; variants may keep them elsewhere
    (a memory-mapped file) but offer the same ``input``/``output``/``internal``.
    """

    internal_vars = INTERNAL_VARS
    # Options naming files, which a runner puts into its work directory when they are relative.
    path_options: tuple[str, ...] = ("path",)
    # True when messages are waiting that no new event of fileno() will announce.
    backlog = False
    # True once a Runner drives this interface (it marks the runs it starts); used alone, any row is served.
    managed = False

    def __init__(
        self, size: int, input_config: Mapping, output_config: Mapping, *, logger_parent: logging.Logger | None = None
    ):
        self._logger_parent = logger_parent
        size = check.whole_number(size, "interface size")
        self.input_vars, self.output_vars = build_vars(input_config, output_config)
        self.dtype = np.dtype(self.input_vars + list(self.internal_vars) + self.output_vars)
        self.input_names = [v[0] for v in self.input_vars]
        self.output_names = [v[0] for v in self.output_vars]
        # The value of each output while a run has no result (NaN for floats).
        self._no_result: np.void | None = self._new_rows(1)[0][self.output_names] if self.output_names else None
        self._grow_store: Callable[[int], np.ndarray] | None = None
        self._bind(self._allocate(int(size)))

    def _allocate(self, size: int) -> np.ndarray:
        """Storage for ``size`` fresh rows (variants override to use a file etc.)."""
        return self._new_rows(size)

    def _grow(self, size: int) -> np.ndarray:
        """Storage for ``size`` rows holding the current rows first."""
        return np.concatenate([self._data, self._new_rows(size - self.size)])

    def use_store(self, rows: np.ndarray, grow: Callable[[int], np.ndarray], path: str | None = None) -> None:
        """Keep the runs' data in ``rows``, a study's table, instead of storage of its own.

        Workers then read and write the table itself: no row is ever copied
        between the interface and the study.

        Args:
            rows: a structured array (a memory map of the study's file at ``path``) whose
                fields include this interface's inputs, internal columns and outputs, in that
                order (more columns may follow).
            grow: ``grow(size)`` returns the table grown to ``size`` rows.
            path: the study's file that ``rows`` maps.

        Raises:
            ConfigError: ``rows`` lacks some of the interface's columns.
        """
        names = set(rows.dtype.names or ())
        missing = [name for name in self.dtype.names or () if name not in names]
        if missing:
            raise ConfigError(f"the study's table lacks the interface columns {', '.join(missing)}")
        self._grow_store = grow
        self._bind(rows)

    def _new_rows(self, count: int) -> np.ndarray:
        rows = np.zeros(count, dtype=self.dtype)
        clear_outputs(rows[self.output_names])
        return rows

    def _bind(self, data: np.ndarray) -> None:
        """Point ``input``, ``output`` and ``internal`` at (views of) ``data``."""
        self._data = data
        self.input = data[self.input_names]
        self.output = data[self.output_names]
        self.internal = data[[name for name, _ in self.internal_vars]]
        # Single columns, for mark(): writing one element of a column is far
        # cheaper than going through a record of the whole row.
        self._columns = {name: data[name] for name in ("DONE", "STATE", "REASON")}
        no_result = self._no_result  # None only when there are no outputs
        self._output_columns = (
            [(data[name], no_result[name]) for name in self.output_names] if no_result is not None else []
        )
        # Prepared here, in the runner, so that forked workers only slice them (row_buffer).
        self._bytes = data.view(np.uint8).data  # the same as memoryview(...), which numpy types only on 3.12+
        self._fields = parse_descr(np.lib.format.dtype_to_descr(data.dtype))[0]
        self._row_input_fields = [field for field in self._fields if field.name in self.input_names]

    def row_buffer(self, run_id: int) -> tuple:
        """The bytes of row ``run_id`` in this process's storage, and the row's fields
        (what a worker forked from the runner reads and writes its row through).

        Args:
            run_id: the run (its row).

        Returns:
            ``(buffer, fields)``, a memoryview of the row's bytes and the row's fields.
        """
        itemsize = self._data.dtype.itemsize
        return self._bytes[run_id * itemsize : (run_id + 1) * itemsize], self._fields

    @property
    def config(self) -> dict:
        """What a Worker needs to connect: ``{"class": label, ...options}``."""
        return {"class": self.label}

    @property
    def size(self) -> int:
        """Number of runs for which space is allocated."""
        return len(self._data)

    def resize(self, size: int) -> None:
        """Grow to ``size`` runs, keeping every existing row (shrinking is refused).

        Args:
            size: the number of runs to hold; no more than :attr:`size` changes nothing.
        """
        if size <= self.size:
            self.logger.debug("resize to %d ignored: interface already holds %d runs", size, self.size)
            return
        self._bind(self._grow(size) if self._grow_store is None else self._grow_store(size))

    def poll(self) -> None:
        """Receive what Workers sent (for interfaces with active communication)."""

    def fileno(self) -> int | None:
        """A file descriptor that becomes readable when Workers may have sent something (None: never)."""
        return None

    def forked_worker_interface(self, run_id: int, *, row_is_current: bool) -> WorkerInterface | None:
        """In a worker process forked from this runner: a WorkerInterface for ``run_id`` that
        uses what the fork inherited (this object, its mapping, its secret), or None for one
        built from :attr:`config` as any worker would.

        Args:
            run_id: the run of the worker.
            row_is_current: True when the process was forked after the run's row was
                written (a fork per run), so its copy of the row holds the run's inputs.

        Returns:
            The WorkerInterface, or None (which this base always returns).
        """
        return None

    def forked_rows(self, run_id: int) -> np.ndarray | None:
        """In a worker process forked from this runner: the rows (a structured array) that this
        process shares with the runner, if they hold ``run_id``: a value written into them is the
        runner's at once. None where the worker cannot reach the run's row that way (this base:
        its rows are the runner's private memory; the copy a fork has is its own).

        Args:
            run_id: a run the worker is to compute.

        Returns:
            The shared rows, or None.
        """
        return None

    def close(self) -> None:
        """Release what the runner holds (sockets); the interface's files stay."""

    def clean(self) -> None:
        """Remove what the interface created (files, sockets)."""

    # --- used by the runner ------------------------------------------------

    def state(self, run_id: int) -> RunState:
        """The state recorded for ``run_id``.

        Args:
            run_id: the run.

        Returns:
            Its ``STATE`` column.
        """
        from .state import RunState  # (not at the top: a worker process writes states, as integers)

        return RunState(int(self._columns["STATE"][run_id]))

    def transmitted(self, run_id: int) -> bool:
        """Whether the worker of ``run_id`` transmitted its results (the ``DONE`` flag).

        Until the runner has settled the run, the flag is the worker's word; once
        settled, :meth:`mark` makes it the runner's verdict (True only for DONE).

        Args:
            run_id: the run.

        Returns:
            The ``DONE`` flag.
        """
        return bool(self._columns["DONE"][run_id])

    def reason(self, run_id: int) -> str:
        """The reason recorded for ``run_id`` (empty when there is none).

        Args:
            run_id: the run.

        Returns:
            The reason (its ``REASON`` column, decoded).
        """
        return decode_reason(self.internal["REASON"][run_id])

    def mark(self, run_id: int, state: RunState, reason: str = "") -> None:
        """Record the runner's verdict on a run; failed or cancelled rows get NaN outputs.

        Args:
            run_id: the run.
            state: its state (``DONE`` also sets the ``DONE`` flag; any other clears it).
            reason: why it did not succeed (cut to fit the ``REASON`` column).
        """
        columns = self._columns
        if state != DONE:
            for column, no_result in self._output_columns:
                column[run_id] = no_result
        columns["REASON"][run_id] = encode_reason(reason) if reason else b""
        columns["DONE"][run_id] = state == DONE
        columns["STATE"][run_id] = state


class WorkerInterface(Component, registry=True):
    """Worker half of an interface: one run's ``input`` and ``output`` records.

    ``retrieve()`` makes ``.input`` (the run's inputs) and ``.output`` (a writable
    record) available; ``.time`` is settable; ``transmit()`` hands output and time
    back and marks the run done; ``clean()`` releases resources.

    Args:
        run_id: the run's id (its row in the runner's interface).
        logger_parent: logger whose handlers receive this interface's records.
    """

    def __init__(self, run_id: int, *, logger_parent: logging.Logger | None = None):
        self.run_id = run_id
        self._logger_parent = logger_parent
        # Variants may define these as properties; do not shadow them.
        if not hasattr(type(self), "time"):
            self.time: float = 0.0
        if not hasattr(type(self), "input"):
            self.input = empty_record()
        if not hasattr(type(self), "output"):
            self.output = empty_record()

    @property
    def config(self) -> dict:
        """The options this interface was built with: ``{"class": label, ...}``."""
        return {"class": self.label}

    @abstractmethod
    def retrieve(self) -> None:
        """Connect to the runner's interface and make ``.input`` and ``.output`` available."""

    @abstractmethod
    def transmit(self) -> None:
        """Hand ``.output`` and ``.time`` back and signal that the run is done."""

    def fail(self, reason: str) -> None:
        """Tell the runner that this run failed and why (best effort).

        The runner decides the run's state; this only supplies the reason. The
        default logs it, for interfaces written before reasons existed.

        Args:
            reason: why the run failed.
        """
        self.logger.error("run %s failed: %s", self.run_id, reason)

    def clean(self) -> None:
        """Release the connection to the runner's interface."""
