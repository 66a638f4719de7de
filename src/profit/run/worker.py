"""Workers: compute one run each.

A Worker obtains its inputs through a :class:`~profit.run.interface.WorkerInterface`,
executes the simulation and hands the outputs back. Variants register with a
label; :meth:`Worker.wrap` turns a plain function into one.

:func:`execute` is the single place that runs a Worker in a worker process (the
``profit-worker`` command and forked workers both use it): it logs to the run's
log file and, when the Worker raises, reports the failure's reason through the
interface, so the runner can say why the run failed.
"""

from __future__ import annotations

import os
import struct
import sys
import time
from _collections_abc import Mapping  # (collections.abc itself imports collections: see _record.Field)
from abc import abstractmethod

from ._jsonscan import loads as json_loads
from ._lazy import logging
from .errors import ConfigError, WorkerError, WorkerOutputError
from .interface import WorkerInterface
from .layout import run_log_file
from .registry import Component

TYPE_CHECKING = False  # (typing costs every worker process its import)
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence, Sized
    from typing import Any, Protocol, TypeGuard

    from .interface import RunnerInterface

    class RecordType(Protocol):
        """What a record's ``dtype`` tells: its field names and a description of each field."""

        @property
        def names(self) -> tuple[str, ...]: ...

        @property
        def fields(self) -> Mapping[str, tuple[Any, ...]]: ...

    class Record(Protocol):
        """One run's inputs or outputs: a :class:`~profit.run._record.StructRecord` or a numpy record.

        (numpy's stubs allow a dtype without fields; a record always has them.)
        """

        @property
        def dtype(self) -> RecordType: ...

        def __getitem__(self, name: str, /) -> Any: ...

        def __setitem__(self, name: str, value: Any, /) -> None: ...

    class SizedIterable(Sized, Iterable[object], Protocol):
        """Several values, as a function returns them for several outputs (a tuple, a list, an array)."""


LOG_FORMAT = "{asctime} {levelname:8s} {name}: {message}"


class Worker(Component, registry=True):
    """Compute one run: retrieve inputs, simulate, transmit outputs.

    Args:
        run_id: the run's id (its row in the interface).
        interface: a WorkerInterface, its label, or a config ``{"class": label, ...}``.
        debug: log in more detail.
        log_path: directory of the per-run log files (relative to the work directory).
        logger: the logger to use (default: ``profit.run.worker``).

    Subclasses implement :meth:`work`.
    """

    # True for variants with a ``base_dir`` option (where a study's relative paths start):
    # runners fill it in with the directory they were started from.
    uses_base_dir = False

    def __init__(
        self,
        run_id: int,
        *,
        interface: WorkerInterface | str | Mapping = "memmap",
        debug: bool = False,
        log_path: str = "log",
        logger: logging.Logger | None = None,
    ):
        self.run_id = run_id
        self.debug = debug
        self.log_path = log_path
        if logger is not None:
            self.logger = logger
        if isinstance(interface, str):
            interface = {"class": interface}
        if isinstance(interface, Mapping):
            options = {key: value for key, value in interface.items() if key != "class"}
            # The interface logs through our logger, if we have one already.
            parent = self.__dict__.get("_logger")
            # Without a "class" the lookup fails as it should: unknown label None.
            kind: type[WorkerInterface] = WorkerInterface[interface.get("class")]  # type: ignore[index]
            interface = kind(run_id, **options, logger_parent=parent)
        self.interface: WorkerInterface = interface

    @abstractmethod
    def work(self) -> None:
        """Retrieve the inputs, compute, set ``interface.time`` and transmit."""

    def clean(self) -> None:
        """Release resources (the interface connection)."""
        self.interface.clean()

    @classmethod
    def from_config(cls, config: Mapping, interface: WorkerInterface | Mapping | str, run_id: int) -> Worker:
        """Build the Worker ``config["class"]`` with the other keys of ``config`` as options.

        Args:
            config: ``{"class": label, **options}``.
            interface: a WorkerInterface, its label, or a config ``{"class": label, ...}``.
            run_id: the run's id.

        Returns:
            The Worker.

        Raises:
            ConfigError: ``config`` is not a mapping with a ``class`` key.
            UnknownLabelError: No Worker has the label.
        """
        if not isinstance(config, Mapping) or "class" not in config:
            raise ConfigError(f"worker config {config!r} must be a mapping with a 'class' key (a Worker label)")
        worker_class = cls[config["class"]]
        options = worker_class.own_options({key: value for key, value in config.items() if key != "class"})
        return worker_class(run_id=run_id, interface=interface, **options)

    @classmethod
    def own_options(cls, options: Mapping) -> dict:
        """``options`` without what a runner puts into every worker's config but this variant does
        not take: ``base_dir`` (where the study's paths start; every worker has it as ``PROFIT_BASE_DIR``).

        Args:
            options: a worker config's options (without ``class``).

        Returns:
            The options this variant takes.
        """
        return {key: value for key, value in options.items() if key != "base_dir" or cls.uses_base_dir}

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Worker:
        """Build a Worker from the environment a runner set up.

        Reads ``PROFIT_RUN_ID`` (plus ``PROFIT_ARRAY_ID`` for job arrays),
        ``PROFIT_WORKER`` and ``PROFIT_INTERFACE`` (JSON), and loads the files in
        ``PROFIT_INCLUDES`` (a JSON list of paths) first.

        Args:
            env: the environment (default: ``os.environ``).

        Returns:
            The Worker of the run.

        Raises:
            ConfigError: A variable is missing or not valid.
        """
        from .includes import env_includes, load_includes

        env = os.environ if env is None else env
        if env.get("PROFIT_INCLUDES"):
            load_includes(env_includes(env))
        return cls.from_config(
            config=_json_env(env, "PROFIT_WORKER"),
            interface=_json_env(env, "PROFIT_INTERFACE"),
            run_id=run_id_from_env(env),
        )

    @classmethod
    def wrap(
        cls, label: str, outputs: str | Sequence[str] | None = None, inputs: str | Sequence[str] | None = None
    ) -> Callable[[Callable], type[Worker]]:
        """Register a plain function as a Worker with the given label.

        Inputs default to the function's parameter names; outputs to its return
        annotation (a name or a list of names), else the function's name. The
        function returns one value per output (a single value for one output)::

            @Worker.wrap("sum")
            def f(u, v):              # inputs u, v; output f
                return u + v

            @Worker.wrap("both", ["f", "g"])
            def model(u, v):
                return u + v, u - v

        Args:
            label: the Worker's label (``worker: <label>`` in a study).
            outputs: the output name or names (default: the return annotation, else the
                function's name).
            inputs: the input name or names (default: the function's parameter names).

        Returns:
            A decorator that registers the function and returns the Worker class.
        """

        def decorator(func: Callable) -> type[Worker]:
            input_names = _names(inputs) if inputs is not None else _parameter_names(func)
            output_names = _names(outputs) if outputs is not None else _annotated_outputs(func)

            def work(self: Worker) -> None:
                self.interface.retrieve()
                arguments = _collect_inputs(self.interface.input, input_names, func)
                started = time.perf_counter()
                values = func(*arguments)
                self.interface.time = time.perf_counter() - started
                _store_outputs(self.interface.output, output_names, values, func)
                self.interface.transmit()

            # Named after the function so that the registry can tell a re-definition
            # of the same function (allowed) from another function taking the label.
            namespace = {
                "__doc__": func.__doc__,
                "__module__": func.__module__,
                "__qualname__": f"Wrapped[{func.__qualname__}]",
                "work": work,
                "function": staticmethod(func),
                # (profit.run.directcall calls the function itself only while work is this one)
                "wrapped_work": work,
                "inputs": tuple(input_names),
                "outputs": tuple(output_names),
                # What the study must match (checked before a study runs: profit.validate).
                "wrapped_inputs": tuple(input_names),
                "wrapped_outputs": tuple(output_names),
            }
            metaclass: type = type(cls)  # (RegistryMeta, or a metaclass derived from it)
            WrappedWorker: type[Worker] = metaclass(f"Wrapped[{func.__name__}]", (cls,), namespace, label=label)
            return WrappedWorker

        return decorator


# --- helpers of Worker.wrap ---------------------------------------------------


def _names(names: str | Sequence[str]) -> list[str]:
    return [names] if isinstance(names, str) else list(names)


def _parameter_names(func: Callable) -> list[str]:
    code = getattr(func, "__code__", None)
    if code is not None and not hasattr(func, "__wrapped__"):
        # A plain function: read its code object. inspect would cost every worker
        # process that imports a wrapped function several milliseconds.
        return list(code.co_varnames[: code.co_argcount])
    import inspect

    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [p.name for p in inspect.signature(func).parameters.values() if p.kind in kinds]


def _unwrapped(func: Callable) -> Callable:
    """The function a ``functools.partial`` (or a partial of a partial) calls; ``func`` otherwise."""
    functools = sys.modules.get("functools")
    if functools is None:  # (not imported, so no partial exists: a lean worker process need not import it)
        return func
    while isinstance(func, functools.partial):
        func = func.func
    return func


def _function_name(func: Callable) -> str:
    """The name of ``func`` for messages and default outputs: a function's own name, the wrapped
    function's for a ``functools.partial``, the class name of a callable object."""
    func = _unwrapped(func)
    name = getattr(func, "__name__", None)
    return name if isinstance(name, str) else type(func).__name__


def _return_annotation(func: Callable) -> Any:
    """The return annotation of ``func`` (of a partial's function, of a callable object's
    ``__call__``), or None."""
    func = _unwrapped(func)
    if not hasattr(func, "__code__") and not hasattr(func, "__func__"):
        # A callable object: its class's __call__ says it (the instance's __annotations__, if any,
        # are its class's attributes, not what it returns).
        func = getattr(type(func), "__call__", None)  # type: ignore[assignment]
    annotations = getattr(func, "__annotations__", None)
    return annotations.get("return") if isinstance(annotations, Mapping) else None


def _annotated_outputs(func: Callable) -> list[str]:
    annotation = _return_annotation(func)
    if annotation is None:
        annotation = _function_name(func)
    # With `from __future__ import annotations` the annotation arrives as source text.
    if isinstance(annotation, str) and annotation[:1] in "'\"[(":
        import ast

        try:
            annotation = ast.literal_eval(annotation)
        except (ValueError, SyntaxError):
            pass
    return _names(annotation)


def _collect_inputs(record: Record, names: Sequence[str], func: Callable) -> list:
    available = record.dtype.names or ()
    missing = [name for name in names if name not in available]
    if missing:
        raise WorkerError(
            f"function {_function_name(func)} takes {', '.join(map(repr, missing))} which "
            f"{'is not an input' if len(missing) == 1 else 'are not inputs'} of the study "
            f"(inputs: {', '.join(available) or 'none'}); pass inputs=[...] to Worker.wrap"
        )
    return [record[name] for name in names]


def _is_sequence(values: object) -> TypeGuard[SizedIterable]:
    # tuples, lists and arrays; a string or a 0-d array is one value
    return not isinstance(values, (str, bytes)) and hasattr(values, "__len__") and getattr(values, "ndim", 1) > 0


def _store_outputs(record: Record, names: Sequence[str], values: object, func: Callable) -> None:
    """Write the values ``func`` returned into the output record: one value for each of ``names``,
    and ``names`` must be the study's outputs, every one of them (a run is never done with an
    output left empty). Anything else fails the run with a :class:`WorkerOutputError`."""
    available = record.dtype.names or ()
    if len(names) == 1:
        # A single output: the value itself (a 1-tuple is unwrapped).
        values = values if not (isinstance(values, tuple) and len(values) == 1) else values[0]
        # Several values for a scalar output are a wrong count, not a wrong type.
        several = _is_sequence(values) and len(values) != 1 and names[0] in available
        if values is None or (several and not _is_vector(record, names[0])):
            raise _wrong_count(func, names, values)
        values = [values]
    elif not _is_sequence(values) or len(values) != len(names):
        raise _wrong_count(func, names, values)
    for name in names:
        if name not in available:
            raise WorkerOutputError(
                f"function {_function_name(func)} returns output {name!r} which is not an output of the study "
                f"(outputs: {', '.join(available) or 'none'})"
            )
    missing = [name for name in available if name not in names]
    if missing:
        raise WorkerOutputError(
            f"function {_function_name(func)} returns no value for output{'s' * (len(missing) > 1)} "
            f"{', '.join(map(repr, missing))} of the study (it returns {', '.join(names) or 'nothing'}); "
            "name every output of the study in Worker.wrap(label, [...]) and return a value for each"
        )
    for name, value in zip(names, values):
        try:
            record[name] = value
        except (ValueError, TypeError, OverflowError, struct.error) as error:
            raise WorkerOutputError(
                f"function {_function_name(func)}: output {name!r} must be {_field_description(record, name)}; "
                f"got {_short_repr(value)} ({error})"
            ) from None


def _wrong_count(func: Callable, names: Sequence[str], values: object) -> WorkerOutputError:
    expected = f"expected {len(names)} (one for each output: {', '.join(names) or 'none'})"
    if values is None and names:
        return WorkerOutputError(f"function {_function_name(func)} returned None; {expected}")
    count = len(values) if _is_sequence(values) else 1
    return WorkerOutputError(f"function {_function_name(func)} returned {count} value{'s' * (count != 1)}; {expected}")


def _is_vector(record: Record, name: str) -> bool:
    # a vector field reads as a memoryview, a tuple or an array; a scalar as a number
    value = record[name]
    return hasattr(value, "__len__") and not isinstance(value, (str, bytes))


def _field_description(record: Record, name: str) -> str:
    described = record.dtype.fields[name][0]
    if isinstance(described, str):  # a StructRecord describes itself
        return described
    # a numpy record (custom interfaces): its field dtype
    return f"a vector of {described.shape[0]} {described.base}" if described.shape else f"a {described}"


def _short_repr(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- running a worker in a worker process ---------------------------------------


def _json_env(env: Mapping[str, str], name: str) -> Any:  # JSON: checked by whoever reads it
    if name not in env:
        raise ConfigError(
            f"environment variable {name} is not set; profit-worker is started by a runner, which sets it"
        )
    try:
        return json_loads(env[name])
    except ValueError as error:  # (json.JSONDecodeError: json is imported only then)
        raise ConfigError(f"environment variable {name} is not valid JSON ({error}): {env[name][:80]!r}") from None


def run_id_from_env(env: Mapping[str, str]) -> int:
    """``PROFIT_RUN_ID`` plus ``PROFIT_ARRAY_ID`` (the index within a job array).

    Args:
        env: The worker's environment (``os.environ``).

    Returns:
        The run id.

    Raises:
        ConfigError: ``PROFIT_RUN_ID`` is not set, or either variable is not a whole number.
    """
    try:
        return int(env["PROFIT_RUN_ID"]) + int(env.get("PROFIT_ARRAY_ID", 0) or 0)
    except KeyError:
        raise ConfigError(
            "environment variable PROFIT_RUN_ID is not set; profit-worker is started by a runner, which sets it"
        ) from None
    except ValueError:
        raise ConfigError(
            f"PROFIT_RUN_ID={env.get('PROFIT_RUN_ID')!r} / PROFIT_ARRAY_ID={env.get('PROFIT_ARRAY_ID')!r} "
            "must be whole numbers"
        ) from None


def failure_reason(error: BaseException) -> str:
    """One line: exception type and message, and where it was raised (last frame).

    Args:
        error: The exception that failed the run.
    """
    import traceback  # only on failure

    message = str(error)
    text = f"{type(error).__name__}: {message}" if message else type(error).__name__
    frames = traceback.extract_tb(error.__traceback__)
    if frames and not isinstance(error, (WorkerError, ConfigError)):
        last = frames[-1]
        text += f" (at {os.path.basename(last.filename)}:{last.lineno} in {last.name}"
        text += f": {last.line.strip()})" if last.line else ")"
    # Notes added on the way up (e.g. where a failed run's directory was kept).
    for note in getattr(error, "__notes__", ()):
        text += f"; {note}"
    return text


def run_log_handler() -> logging.FileHandler:
    """A handler for a run's log file; :class:`RunLog` points it at one run.

    A forked runner makes it once, before forking, so that each worker only
    retargets it (making a handler in every worker costs page faults). The file
    is opened on the first record only, so quiet runs leave no file.
    """
    handler = logging.FileHandler(os.devnull, mode="a", delay=True)
    handler.setFormatter(logging.Formatter(LOG_FORMAT, style="{"))
    return handler


class RunLog:
    """The log of one run in a worker process: ``{log_path}/run_{run_id:03d}.log``.

    Set up on :meth:`activate`: at once where the worker inherited the runner's
    logging (a fork) or in debug mode, otherwise only when there is something
    to log, so that a worker process that succeeds never imports logging.
    Handlers inherited from the runner (on the root and ``profit`` loggers,
    where the ``profit`` command puts them) are dropped, so a worker never
    writes the runner's log.

    Args:
        log_path: The directory of the run logs.
        run_id: The run's id (names the file).
        debug: Log everything, from the start (debug mode).
        handler: A file handler to reuse (its file is set to this run's log); a new one by default.
    """

    def __init__(self, log_path: str, run_id: int, debug: bool = False, handler: logging.FileHandler | None = None):
        self.path = os.path.abspath(run_log_file(log_path, run_id))
        self.debug = debug
        self._handler = handler
        self._active = False

    def activate(self) -> logging.Logger:
        """Route records to the run's log file (once) and return the worker logger."""
        if not self._active:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            handler = self._handler if self._handler is not None else run_log_handler()
            handler.baseFilename = self.path
            logging.getLogger("profit").handlers = []
            root = logging.getLogger()
            root.handlers = [handler]
            # Errors pass the default level; debug asks for everything. (setLevel
            # walks every logger, which is slow in a fresh fork: only when needed.)
            if self.debug:
                root.setLevel(logging.DEBUG)
            self._active = True
        return logging.getLogger("profit.run.worker")

    def release(self) -> None:
        """Close the run's log file if it was opened (a worker serving many runs moves on)."""
        if self._active and self._handler is not None and self._handler.stream is not None:
            self._handler.close()


def report_failure(error: Exception, log: RunLog, interface: WorkerInterface | None) -> int:
    """Fail the run of ``error`` (being handled): its reason to the runner through ``interface``
    (to standard error without one), the traceback to the run's log; returns the exit code, 1.

    Args:
        error: What failed the run (called in the ``except`` block that caught it).
        log: The run's log.
        interface: The run's worker interface, or None where there is none (building it failed).
    """
    reason = failure_reason(error)
    logger = log.activate()
    logger.error("run failed: %s", reason, exc_info=True)
    if interface is not None:
        try:
            interface.fail(reason)
        except Exception:  # the interface itself is broken: the exit code still tells
            logger.exception("could not report the failure through the interface")
    else:
        print(f"profit-worker: {reason}", file=sys.stderr)
    return 1


def execute(build: Callable[[], Worker], log: RunLog) -> int:
    """Build a Worker, run it and clean up; return the process's exit code.

    An exception in the Worker fails the run: its reason goes to the runner
    through the interface, the full traceback to the run's log. ``SystemExit``
    keeps its code, so ``sys.exit(3)`` in a simulation fails the run with code 3.

    Args:
        build: Makes the Worker.
        log: The run's log.

    Returns:
        The process's exit code.
    """
    if log.debug:
        log.activate()
    worker: Worker | None = None
    try:
        worker = build()
        worker.work()
        return 0
    except SystemExit as exit_request:
        code = exit_request.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except Exception as error:  # a failing simulation is data, reported to the runner
        return report_failure(error, log, None if worker is None else worker.interface)
    finally:
        if worker is not None:
            try:
                worker.clean()
            except Exception:
                log.activate().exception("cleaning the worker failed")


def execute_forked(
    worker_config: Mapping, interface: RunnerInterface, run_id: int, log: RunLog, *, row_is_current: bool
) -> int:
    """In a process forked from a runner: build the run's Worker on what the fork inherited, run it.

    The worker interface comes from the runner's own ``interface``
    (:meth:`~profit.run.interface.RunnerInterface.forked_worker_interface`), so it
    need not connect as a stranger would; returns the process's exit code.

    Args:
        worker_config: The ``worker`` section of the runner's config.
        interface: The runner's interface.
        run_id: The run's id.
        log: The run's log.
        row_is_current: Whether the run's row of the interface is already the one the fork inherited.

    Returns:
        The process's exit code.
    """

    def build() -> Worker:  # inside execute: a failure to connect fails the run with its reason
        inherited = interface.forked_worker_interface(run_id, row_is_current=row_is_current)
        return Worker.from_config(worker_config, inherited if inherited is not None else interface.config, run_id)

    return execute(build, log)


def main() -> None:
    """Entry point of ``profit-worker``: build a Worker from the environment, run it, clean up.

    The process ends with the run's exit code as soon as its files are closed and its output
    flushed (``_end_at_once``): tearing down the interpreter would cost a short run a sizeable share.

    Raises:
        SystemExit: With the run's exit code (2: the environment lacks the run).
    """
    env = os.environ
    try:
        worker_config = _json_env(env, "PROFIT_WORKER")
        run_id = run_id_from_env(env)
    except ConfigError as error:
        print(f"profit-worker: {error}", file=sys.stderr)
        sys.exit(2)
    options = worker_config if isinstance(worker_config, Mapping) else {}
    log = RunLog(options.get("log_path", "log"), run_id, bool(options.get("debug", False)))
    memmap = _import_memmap(env)
    code = execute(lambda: Worker.from_env(env), log)
    if memmap:  # (other interfaces may hold connections that only the usual exit winds down)
        _end_at_once(code)
    sys.exit(code)


def _import_memmap(env: Mapping[str, str]) -> bool:
    """Import the memmap interface up front when the run uses it (whether it does): in a lean worker
    process (``profit._worker_main``) its label would otherwise register every built-in component."""
    try:
        interface = json_loads(env.get("PROFIT_INTERFACE", ""))
    except ValueError:  # (Worker.from_env says what is wrong with it)
        return False
    if not (isinstance(interface, Mapping) and interface.get("class") == "memmap"):
        return False
    from . import memmap  # noqa: F401  (registers the label)

    return True


def _end_at_once(code: int) -> None:
    """End the process with ``code`` at once, if nothing is left to do at exit; return otherwise.

    Interpreter teardown only matters where something still waits for it: an atexit handler
    (logging registers one, so a run that logged exits as usual), a thread other than this one,
    or a file that the run's code left open for writing (closing it flushes it). Otherwise
    flushing the standard streams is all that is left, and ``os._exit`` skips the rest.
    """
    import atexit

    if atexit._ncallbacks() or ("threading" in sys.modules and sys.modules["threading"].active_count() > 1):
        return
    if _open_writers():
        return
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except Exception:  # (a closed or broken stream: the usual exit reports it as it always did)
        return
    os._exit(code)


def _open_writers() -> bool:
    """Whether a file object other than the standard streams is open for writing (with data it may hold)."""
    try:
        descriptors = os.listdir("/proc/self/fd")
    except OSError:  # (no /proc: look at the objects)
        pass
    else:
        # A file object holds a descriptor: beyond 0, 1, 2 only the listing's own is open.
        if sum(int(fd) > 2 for fd in descriptors) <= 1:
            return False
    import gc
    import io

    kinds = {io.TextIOWrapper, io.BufferedWriter, io.BufferedRandom, io.BufferedRWPair}
    streams = [sys.stdin, sys.stdout, sys.stderr, sys.__stdin__, sys.__stdout__, sys.__stderr__]
    streams += [getattr(stream, "buffer", None) for stream in streams]
    standard = {id(stream) for stream in streams}
    for thing in gc.get_objects():
        if type(thing) in kinds and id(thing) not in standard and not thing.closed:
            if not (isinstance(thing, io.TextIOWrapper) and not thing.writable()):
                return True
    return False
