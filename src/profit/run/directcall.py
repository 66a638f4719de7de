"""Runs of a :meth:`~profit.run.worker.Worker.wrap` function, called directly on rows shared with the runner.

A pool worker serves many runs. Built the usual way, each run costs a Worker, a
worker interface and records of its row: some 25 µs, most of the time a
function of a few microseconds takes. Where the worker is a wrapped function
and the runner's interface shares its rows with the worker process
(:meth:`~profit.run.interface.RunnerInterface.forked_rows`: memmap, zeromq's
shared rows), :class:`DirectCalls` reads the inputs of a batch of runs from
their columns at once, calls the function for each run and writes what the
usual path writes: the outputs, ``TIME``, then ``DONE``.

Only what is sure to come out the same is done here: inputs that are scalar
numbers or booleans (read as the same Python values the usual records give)
and outputs that are float64 columns given a float. Anything else goes the
usual way for that run, through its worker interface: another kind of value
(converted and checked by the same code), an exception or ``sys.exit`` (the
same reason, log and exit code). So a run's row, log and exit code never
depend on which path computed it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping

from ._lazy import numpy as np
from .errors import UnknownLabelError
from .interface import RunnerInterface, WorkerInterface, whole_seconds
from .worker import RunLog, Worker, _store_outputs, report_failure

TYPE_CHECKING = False  # (typing costs every worker process its import)
if TYPE_CHECKING:
    import logging
    from collections.abc import Callable, Sequence
    from typing import Any

# A worker config with other options than these has a reason to be built the usual way.
_PLAIN_OPTIONS = frozenset({"class", "log_path", "debug", "base_dir"})
# ... and for a plain function (FunctionWorker), its own.
_FUNCTION_OPTIONS = _PLAIN_OPTIONS | {"function", "path", "call", "inputs", "outputs"}
_INPUT_KINDS = "fiub"  # scalar columns whose values a record and numpy's tolist() read alike


class DirectCalls:
    """Calls a wrapped (or plain) function on the rows of ``interface``, in a process forked
    from the runner (made by :meth:`for_worker`).

    Args:
        function: The function: it takes the inputs ``input_names`` and returns the outputs ``output_names``.
        input_names: The inputs it takes, in order.
        output_names: The outputs it returns, in order.
        interface: The runner's interface (this process's copy of it).
        log_path: Where the run logs go (the worker config's ``log_path``).
        log_handler: The handler that a run's log reuses.
    """

    def __init__(
        self,
        function: Callable,
        input_names: Sequence[str],
        output_names: Sequence[str],
        interface: RunnerInterface,
        log_path: str,
        log_handler: logging.FileHandler | None,
    ):
        self.function = function
        self.input_names, self.output_names = tuple(input_names), tuple(output_names)
        self.interface = interface
        # Where the usual path's log of a run goes: it is made before the run, which may change
        # directory before it fails (the pool worker's directory is put back after each run).
        self.log_path, self.log_handler = os.path.abspath(log_path), log_handler
        self._rows: np.ndarray | None = None  # the rows the columns below are of
        self._inputs: list[np.ndarray] | None = None  # None: the inputs are not all plain scalars
        self._outputs: list[np.ndarray] | None = None  # None: the outputs are not all float64
        self._single: np.ndarray | None = None  # the column of the one output (of _outputs)
        self._time: np.ndarray | None = None
        self._done: np.ndarray | None = None
        # What a float64 column takes as it is: the same bits as the usual record would write.
        self._floats = (float, np.float64)

    @classmethod
    def for_worker(
        cls, worker_config: Mapping, interface: RunnerInterface, log_handler: logging.FileHandler | None
    ) -> DirectCalls | None:
        """Direct calls for the runs of ``worker_config`` on ``interface``, or None where every run
        must be built the usual way: another kind of worker than a :meth:`Worker.wrap` function or a
        plain function (``function`` with ``call="fields"``), a subclass that changes how it works,
        options beyond the plain ones, debug mode, a function that cannot be found.

        Args:
            worker_config: The ``worker`` section of the runner's config.
            interface: The runner's interface.
            log_handler: The handler that a run's log reuses.
        """
        if not isinstance(worker_config, Mapping) or worker_config.get("debug"):
            return None
        label = worker_config.get("class")
        if not isinstance(label, str):
            return None
        try:
            worker_class: type[Worker] = Worker[label]
        except UnknownLabelError:  # (the usual path says what is wrong, for each run)
            return None
        if worker_class.__init__ is Worker.__init__ and worker_class.clean is Worker.clean:
            work = getattr(worker_class, "wrapped_work", None)
            if work is None or worker_class.work is not work or not set(worker_config) <= _PLAIN_OPTIONS:
                return None
            # Its work calls the function Worker.wrap was given: a subclass that puts another
            # function or other names in its place changes nothing there, and so nothing here.
            made = next(kind for kind in worker_class.__mro__ if "wrapped_work" in vars(kind))
            if any(
                getattr(worker_class, name) is not getattr(made, name) for name in ("function", "inputs", "outputs")
            ):
                return None
            function = worker_class.function  # type: ignore[attr-defined]
            names = (worker_class.inputs, worker_class.outputs)  # type: ignore[attr-defined]
        else:
            found = _plain_function(worker_class, worker_config)
            if found is None:
                return None
            function, names = found
        return cls(function, *names, interface, str(worker_config.get("log_path", "log")), log_handler)

    def read_inputs(self, run_ids: list[int]) -> list[tuple] | None:
        """The arguments of each of ``run_ids`` (run ids >= 0, in order), read from their columns
        at once; None where the runs cannot be called directly (their rows are not shared with
        this process, or the function takes other than plain scalar inputs).

        Args:
            run_ids: Runs to compute next.
        """
        if not run_ids:
            return None
        rows = self.interface.forked_rows(max(run_ids))
        if rows is None:
            return None
        if rows is not self._rows:
            try:
                self._use(rows, run_ids[0])
            except Exception:  # (the usual path meets the same trouble, and says what it is, for each run)
                self._rows = None
                return None
        if self._inputs is None:
            return None
        if not self._inputs:
            return [()] * len(run_ids)
        return list(zip(*(column[run_ids].tolist() for column in self._inputs)))

    def _use(self, rows: np.ndarray, run_id: int) -> None:
        """Take the columns of ``rows``, and check once what the usual path would check for each run."""
        self._rows = rows
        self._inputs = self._outputs = self._single = None
        # The records of the usual path tell which inputs and outputs it has.
        usual = self._usual_interface(run_id)
        available_inputs, available_outputs = set(usual.input.dtype.names), set(usual.output.dtype.names)
        usual.clean()
        dtype = rows.dtype
        if all(
            name in available_inputs and dtype[name].shape == () and dtype[name].kind in _INPUT_KINDS
            for name in self.input_names
        ):
            self._inputs = [rows[name] for name in self.input_names]
        names = self.output_names
        if (
            len(set(names)) == len(names)
            and set(names) == available_outputs
            and all(dtype[name] == np.float64 for name in names)
        ):
            self._outputs = [rows[name] for name in names]
        self._single = self._outputs[0] if self._outputs is not None and len(self._outputs) == 1 else None
        self._time, self._done = rows["TIME"], rows["DONE"]

    def call(self, run_id: int, arguments: tuple) -> int:
        """Compute run ``run_id`` with ``arguments`` (from :meth:`read_inputs`); its exit code.

        Args:
            run_id: The run.
            arguments: Its inputs, in the order the function takes them.
        """
        clock = time.perf_counter
        started = clock()
        try:
            values = self.function(*arguments)
        except SystemExit as exit_request:  # (as the usual path: the code, and no results)
            try:
                self._usual_interface(run_id).clean()  # (what the usual path's interface wrote at its start)
            except Exception:
                pass
            code = exit_request.code
            return code if isinstance(code, int) else (0 if code is None else 1)
        except Exception as error:
            return self._fail(run_id, error, None)
        took = clock() - started
        # (the usual case first, in few steps: a float for the one output)
        single, floats = self._single, self._floats
        if single is not None and type(values) in floats:
            single[run_id] = values
        elif (
            single is None
            and self._outputs is not None
            and type(values) is tuple
            and len(values) == len(self._outputs)
            and all(type(value) in floats for value in values)
        ):
            for column, value in zip(self._outputs, values):
                column[run_id] = value
        else:
            return self._store_as_usual(run_id, values, took)
        self._time[run_id] = 0 if took < 1.0 else whole_seconds(took)  # type: ignore[index]  # (whole seconds)
        self._done[run_id] = True  # type: ignore[index]  # last: from here on the row is the run's result
        return 0

    def _store_as_usual(self, run_id: int, values: Any, took: float) -> int:
        """The values of a run that the direct path does not write: through the run's worker
        interface, converted and checked as :meth:`~profit.run.worker.Worker.wrap`'s work does."""
        interface = self._usual_interface(run_id)
        try:
            interface.time = took
            _store_outputs(interface.output, self.output_names, values, self.function)
        except Exception as error:
            return self._fail(run_id, error, interface)
        interface.transmit()
        interface.clean()
        return 0

    def _usual_interface(self, run_id: int) -> WorkerInterface:
        """The worker interface the usual path would use for ``run_id``, with its inputs retrieved."""
        interface = self.interface.forked_worker_interface(run_id, row_is_current=False)
        assert interface is not None  # (forked_rows reached its row: so does the interface)
        interface.retrieve()
        return interface

    def _fail(self, run_id: int, error: Exception, interface: WorkerInterface | None) -> int:
        """Fail the run as the usual path does (called while ``error`` is being handled)."""
        log = RunLog(self.log_path, run_id, False, self.log_handler)
        try:
            if interface is None:
                try:
                    interface = self._usual_interface(run_id)
                except Exception:  # (as the usual path where building the worker fails: stderr says it)
                    interface = None
            return report_failure(error, log, interface)
        finally:
            if interface is not None:
                interface.clean()
            log.release()


def _plain_function(worker_class: type[Worker], worker_config: Mapping) -> tuple[Callable, tuple] | None:
    """The function of a ``function`` worker that takes the inputs and gives the outputs
    (``call="fields"``), and its input and output names, as its work would find them; None otherwise."""
    from .functions import FunctionWorker, resolve_function
    from .worker import _annotated_outputs, _parameter_names

    if worker_class is not FunctionWorker or not set(worker_config) <= _FUNCTION_OPTIONS:
        return None
    if worker_config.get("call", "fields") != "fields":
        return None
    try:
        function = resolve_function(worker_config["function"], worker_config.get("path"))
    except (Exception, SystemExit):  # (sys.exit in a script, too: the usual path ends each run as it says)
        return None
    inputs, outputs = worker_config.get("inputs"), worker_config.get("outputs")
    input_names = list(inputs) if inputs is not None else _parameter_names(function)
    output_names = list(outputs) if outputs is not None else _annotated_outputs(function)
    return function, (tuple(input_names), tuple(output_names))
