"""The lanes of an :class:`~profit.run.Executor`: one runner per function and call signature.

A runner's interface has one fixed row layout, but an executor's calls differ:
each function, and each way of calling it (how many arguments, their types and
shapes), gets a *lane*: a runner whose row holds exactly those arguments (see
:func:`~profit.run.functions.call_signature`), plus ``result`` and
``result_kind``. Calls whose arguments are not numbers or numeric arrays share
a lane of the function whose row holds a digest of the pickled arguments, which
travel in a file beside it.

Bound to a study directory, a lane keeps its rows in a table there
(``evaluations/<function>-<digest>.npy``, a :class:`~profit.store.StudyTable`):
every evaluation with its inputs, result, state, reason, attempts and times.
Opened again, its finished rows answer the same calls at once (*memoised*).

Lanes live in the executor's driver thread, which owns their runners.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping

from ._lazy import logging
from ._lazy import numpy as np
from .errors import ConfigError, RunFailed
from .functions import (
    ARRAY,
    MAX_ROW_ELEMENTS,
    PICKLED,
    call_signature,
    forget_reference,
    function_reference,
    result_path,
    result_value,
    signature_fields,
)
from .layout import run_log_file
from .runner import Runner
from .state import RunState, RunStatus

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    import numpy

    from ..store import StudyTable

# The fields of a lane whose calls travel pickled: a digest of the pickled arguments.
DIGEST_FIELDS = ["args_digest_0", "args_digest_1"]
OUTPUT_CONFIG: dict[str, dict[str, Any]] = {"result": {"dtype": "float64"}, "result_kind": {"dtype": "uint8"}}
# How much of a failed run's log a RunFailed carries.
LOG_BYTES = 20_000


def digest_row(digest: bytes) -> tuple[int, int]:
    """The row of a call in a pickled lane: the two 64-bit words of its arguments' 16-byte digest.

    Args:
        digest: The arguments' 16-byte digest.
    """
    return int.from_bytes(digest[:8], "little"), int.from_bytes(digest[8:16], "little")


class Lane:
    """One runner for the calls of one function with one signature (None: pickled arguments).

    Args:
        function: The function called.
        signature: The calls' :func:`~profit.run.functions.call_signature` (None: pickled arguments).
        identity: The function's :func:`~profit.run.functions.function_identity`.
        result_layout: ``(dtype, shape)`` of an array result that travels in the row (None: none).
        label: The runner's label.
        options: The runner's options.
        interface: The interface's config (its size and fields are the lane's).
        folder: The executor's folder (the lane's is inside it).
        memoise: Keep the results in a table and answer a call made before from it.
        on_end: Called with the lane and the status of each run that ended.
        logger: The runner's logger.
    """

    def __init__(
        self,
        function: Callable,
        signature: tuple | None,
        *,
        identity: str,
        result_layout: tuple[str, tuple[int, ...]] | None = None,
        label: str,
        options: Mapping[str, object],
        interface: Mapping[str, object],
        folder: str,
        memoise: bool,
        on_end: Callable[[Lane, RunStatus], None],
        logger: logging.Logger,
    ):
        self.function = function
        self.signature = signature
        self.identity = identity
        self.result_layout = result_layout
        self.learned: tuple[str, tuple[int, ...]] | None = None  # the layout of an array result seen here
        self.memoise = memoise
        self._on_end = on_end
        self.fields = self._field_names()
        names = [name for names in self.fields for name in names]
        self.input_dtype = np.dtype([(name, dtype) for name, dtype in zip(names, self._field_dtypes())])
        self.output_config: dict[str, dict[str, Any]] = dict(OUTPUT_CONFIG)
        if result_layout is not None:  # (an array result of this layout travels in the row)
            self.output_config["result_array"] = {"dtype": result_layout[0], "size": (1, _count(result_layout[1]))}
        self.name = self._lane_name()
        self.folder = os.path.join(folder, self.name)
        self.calls_dir = os.path.join(self.folder, "calls")
        self.results_dir = os.path.join(self.folder, "results")
        for directory in (self.calls_dir, self.results_dir):
            os.makedirs(directory, exist_ok=True)
        runner_class: Any = Runner.resolve(label, "runner")[0]  # (options are checked by the executor)
        worker = {
            "class": "function",
            **function_reference(function, forked=getattr(runner_class, "forks_workers", False), folder=self.folder),
            "call": "executor",
            "signature": None if signature is None else [list(entry) for entry in signature],
            "fields": self.fields,
            "calls": self.calls_dir,
            "results": self.results_dir,
            "result_layout": None if result_layout is None else [result_layout[0], list(result_layout[1])],
        }
        interface_config = {
            **interface,
            "size": 0,
            "input_config": {name: {"dtype": dtype} for name, dtype in zip(names, self._field_dtypes())},
            "output_config": self.output_config,
        }
        self.table: StudyTable | None = self._open_table() if memoise else None
        self.runner: Runner = runner_class(
            interface=interface_config, worker=worker, work_dir=self.folder, logger=logger, **options
        )
        self.runner.listeners.append(self)
        self.used = 0  # rows in use (the interface may hold more)
        self.memo: dict[bytes, int] = {}  # inputs of a finished row -> its run id
        self.inflight: dict[bytes, int] = {}  # inputs of a row queued or running -> its run id
        self.futures: dict[int, list] = {}  # run id -> the futures waiting for it
        self.keys: dict[int, bytes] = {}  # run id -> its inputs (memoised lanes)
        self.recalled = 0  # calls answered from the store
        if self.table is not None:
            self.runner.interface.use_store(self.table.rows, self.table.grow, self.table.path)
            self._recall()

    # --- layout -----------------------------------------------------------------------------

    def _parameter_names(self) -> list[str]:
        import inspect

        try:
            parameters = inspect.signature(self.function).parameters.values()
        except (TypeError, ValueError):  # (a builtin without a signature)
            return []
        kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        return [p.name for p in parameters if p.kind in kinds]

    def _field_names(self) -> list[list[str]]:
        if self.signature is None:
            return [DIGEST_FIELDS]
        return signature_fields(self.signature, self._parameter_names())

    def _field_dtypes(self) -> list[str]:
        if self.signature is None:
            return ["<u8", "<u8"]
        dtypes = []
        for (_, _, dtype, _), names in zip(self.signature, self.fields):
            dtypes += [dtype] * len(names)
        return dtypes

    def _lane_name(self) -> str:
        """``<function>-<digest>``: the function's name, and a digest of its identity and the signature."""
        name = getattr(self.function, "__qualname__", None) or type(self.function).__qualname__
        name = "".join(char if char.isalnum() or char in "_." else "_" for char in name)[:40]
        digest = hashlib.sha256(self.identity.encode())
        digest.update(json.dumps(self.signature).encode())
        if self.result_layout is not None:
            digest.update(json.dumps(self.result_layout).encode())
        return f"{name}-{digest.hexdigest()[:12]}"

    # --- the store of a memoised lane --------------------------------------------------------

    def _open_table(self) -> StudyTable:
        from ..store import StudyTable

        path = os.path.join(self.folder, "evaluations.npy")
        outputs = np.dtype(
            [
                (name, spec["dtype"], (spec["size"][1],)) if spec.get("size", (1, 1))[1] > 1 else (name, spec["dtype"])
                for name, spec in self.output_config.items()
            ]
        )
        if os.path.exists(path):
            try:
                table = StudyTable.open(path, self.input_dtype, outputs)
            except Exception as error:
                raise ConfigError(
                    f"{path} cannot be read ({error}); remove the directory {self.folder} to start this function afresh"
                ) from None
            table.settle_interrupted()
            return table
        about = {
            "function": f"{getattr(self.function, '__module__', '?')}.{getattr(self.function, '__qualname__', '?')}",
            "identity": self.identity,
            "signature": self.signature,
            "fields": self.fields,
            "result_layout": self.result_layout,
        }
        from ._files import write_atomically

        write_atomically(os.path.join(self.folder, "lane.json"), json.dumps(about, indent=1))
        return StudyTable.create(path, np.zeros(0, self.input_dtype), outputs)

    def _recall(self) -> None:
        """Index the finished rows of the store by their inputs; rows after the last one that ever
        started are free again (a script killed while adding them left them unused)."""
        assert self.table is not None
        rows = self.table.rows
        started = np.flatnonzero((rows["ATTEMPTS"] > 0) | (rows["STATE"] == RunState.DONE))
        self.used = int(started[-1]) + 1 if len(started) else 0
        done = np.flatnonzero(rows["STATE"][: self.used] == RunState.DONE)
        keys = self._keys(rows[list(self.input_dtype.names or ())][done])
        self.memo = dict(zip(keys, done.tolist()))

    def _keys(self, rows: numpy.ndarray) -> list[bytes]:
        """The exact bytes of each row's inputs (the memo's keys)."""
        packed = np.empty(len(rows), self.input_dtype)
        for name in self.input_dtype.names or ():
            packed[name] = rows[name]
        if self.input_dtype.itemsize == 0:
            return [b""] * len(rows)
        return packed.view(f"V{self.input_dtype.itemsize}").tolist()

    # --- adding calls -----------------------------------------------------------------------------

    def add(self, calls: list, elders: list[Lane] = ()) -> list[int]:  # type: ignore[assignment]
        """Give each call a row (or, memoised, the row that already answers it, here or in an
        ``elder``: a lane of the same calls this one took over from); return the run ids to start.
        Each call's future waits in :attr:`futures` for its run, or is answered here.

        Args:
            calls: The calls.
            elders: Lanes of the same calls this one took over from.

        Returns:
            The run ids to start.
        """
        rows = np.array([call.row for call in calls], dtype=self.input_dtype)
        keys = self._keys(rows) if self.memoise else None
        new: list[int] = []
        ids: list[int] = []
        for index, call in enumerate(calls):
            if keys is not None:
                key = keys[index]
                if self._known(key, call.future) or any(elder._known(key, call.future) for elder in elders):
                    self.recalled += 1
                    continue
            run_id = self.used + len(new)
            new.append(index)
            ids.append(run_id)
            self.futures[run_id] = [call.future]
            call.future._run = (self, run_id)
            if keys is not None:
                self.inflight[keys[index]] = run_id
                self.keys[run_id] = keys[index]
        if not new:
            return []
        try:
            self._write(rows[new], ids, [calls[index].payload for index in new])
        except BaseException:
            for run_id in ids:  # (their rows are free again: nothing may point at them)
                self.take(run_id)
            raise
        return ids

    def _write(self, rows: numpy.ndarray, ids: list[int], payloads: list[bytes | None]) -> None:
        """Write the new calls' rows (growing the interface) and their pickled arguments."""
        interface = self.runner.interface
        needed = self.used + len(ids)
        if needed > interface.size:
            # A store grows a quarter at a time (a file); in memory, doubling.
            grown = interface.size + interface.size // 4 + 64 if self.table is not None else 2 * interface.size
            interface.resize(max(needed, grown))
        interface.input[self.used : needed] = rows
        for run_id, payload in zip(ids, payloads):
            if payload is not None:
                # In place (a rename would cost ten times as much): the run that reads it starts after this.
                with open(os.path.join(self.calls_dir, f"{run_id}.pkl"), "wb") as file:
                    file.write(payload)
        self.used = needed

    def _known(self, key: bytes, future: object) -> bool:
        """Answer ``future`` from the row of these inputs, done or still running; False if there is none."""
        done = self.memo.get(key)
        if done is not None:
            self.answer(done, [future])
            return True
        running = self.inflight.get(key)
        if running is not None:
            self.futures[running].append(future)
            return True
        return False

    def start(self, run_ids: list[int]) -> None:
        """Start these runs (as a job array, where the runner has them).

        Args:
            run_ids: The runs.
        """
        runner = self.runner
        begin = 0
        while begin < len(run_ids):
            end = runner._batch_end(run_ids, begin, len(run_ids))
            runner._start_batch(run_ids[begin:end])
            begin = end

    # --- runs ending --------------------------------------------------------------------------------

    def run_started(self, run_id: int, handle: object) -> None:
        """Runner listener: note the run's start time and process in the lane's table, if it has one.

        Args:
            run_id: The run.
            handle: Its handle.
        """
        if self.table is not None:
            self.table.started([run_id], [time.time()])
            self.table.note_process(run_id, getattr(handle, "pid", None))

    def run_ended(self, status: RunStatus) -> None:
        """Runner listener: note the run's end time in the table, if any; hand ``status`` to ``on_end``.

        Args:
            status: The run's status.
        """
        if self.table is not None:
            self.table.ended([status.run_id], [time.time()])
        self._on_end(self, status)

    def take(self, run_id: int) -> list:
        """The futures waiting for ``run_id``, which has ended: memoised if it is done, no longer in flight.

        Args:
            run_id: The run.
        """
        key = self.keys.pop(run_id, None)
        if key is not None:
            self.inflight.pop(key, None)
            if self.runner.interface.state(run_id) == RunState.DONE:
                self.memo[key] = run_id
        self._drop_call(run_id)  # (a call that runs again later gets a row of its own)
        return self.futures.pop(run_id, [])

    @property
    def idle(self) -> bool:
        """Whether nothing waits for this lane: no run active, no future waiting."""
        return not self.runner.runs and not self.futures

    def _drop_call(self, run_id: int) -> None:
        if self.signature is None:
            try:
                os.remove(os.path.join(self.calls_dir, f"{run_id}.pkl"))
            except FileNotFoundError:
                pass

    def answer(self, run_id: int, futures: list) -> None:
        """Answer ``futures`` with the result of ``run_id``, which is done.

        Args:
            run_id: The run.
            futures: The futures waiting for it.
        """
        output = self.runner.interface.output
        kind = int(output["result_kind"][run_id])
        path = result_path(self.results_dir, run_id)
        try:
            if kind == ARRAY and self.result_layout is not None:
                dtype, shape = self.result_layout
                value: object = np.array(output["result_array"][run_id], dtype=dtype).reshape(shape)
            else:
                value = result_value(kind, float(output["result"][run_id]), path)
        except Exception as error:  # (a result file that is gone or damaged)
            failure = RunFailed(
                f"the result of run {run_id} cannot be read ({type(error).__name__}: {error})",
                state=RunState.FAILED,
                run_id=run_id,
                function=self.function,
            )
            for future in futures:
                _set(future, exception=failure)
            return
        if kind == PICKLED:
            if not self.memoise:
                os.remove(path)
            if self.learned is None and self.result_layout is None:
                self.learned = array_layout(value)
        for future in futures:
            _set(future, result=value)

    def failure(self, status: RunStatus) -> RunFailed:
        """The exception of a run that failed, with the end of its log.

        Args:
            status: The run's status.
        """
        log_file = os.path.join(
            self.folder, run_log_file(self.runner.worker_config.get("log_path", "log"), status.run_id)
        )
        log = ""
        try:
            with open(log_file, "rb") as file:
                file.seek(max(0, os.path.getsize(log_file) - LOG_BYTES))
                log = file.read().decode("utf-8", "replace")
        except OSError:
            log_file = ""
        return RunFailed(
            status.reason or "failed",
            state=status.state,
            run_id=status.run_id,
            function=self.function,
            log=log,
            log_file=log_file,
        )

    def close(self) -> None:
        """Close the runner (ending what still runs), flush the store, let the function go."""
        try:
            self.runner.close()
        finally:
            if self.table is not None:
                self.table.flush()
            reference = self.runner.worker_config.get("function", "")
            if reference.startswith("@"):
                forget_reference(reference)


def array_layout(value: object) -> tuple[str, tuple[int, ...]] | None:
    """``(dtype, shape)`` of a result that can travel in a row: a numeric numpy array of at most
    MAX_ROW_ELEMENTS elements; None for anything else.

    Args:
        value: A result.
    """
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    if type(value).__name__ != "ndarray" or dtype is None or shape is None or not shape:
        return None
    if (
        dtype.kind not in "biuf"
        or dtype.byteorder == ">"
        or not 0 < _count(shape) <= MAX_ROW_ELEMENTS
        or len(shape) > 3
    ):
        return None
    return dtype.str, tuple(int(extent) for extent in shape)


def _count(shape: tuple[int, ...]) -> int:
    count = 1
    for extent in shape:
        count *= extent
    return count


def _set(future: object, *, result: object = None, exception: BaseException | None = None) -> None:
    """Answer a future unless it was cancelled meanwhile."""
    from concurrent.futures import InvalidStateError

    try:
        if exception is not None:
            future.set_exception(exception)  # type: ignore[attr-defined]
        else:
            future.set_result(result)  # type: ignore[attr-defined]
    except InvalidStateError:
        pass  # cancelled: nobody waits for it


__all__ = ["Lane", "call_signature", "digest_row"]
