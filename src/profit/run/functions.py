"""Plain Python functions as workers (label ``function``).

Wherever a Worker label is accepted, a function is accepted too; the runner
turns it into a *reference* its workers can follow (:func:`function_reference`):

* a worker forked from the runner (``fork``, ``pool``) finds the function in the
  memory it inherited (``@<key>``, registered before any worker is forked);
* a worker in another process image (``local``, ``slurm``) imports it by name
  (``module:qualname``, with the directory the module was found in), or, when it
  cannot be imported (defined in ``__main__``, a notebook, or inside another
  function), loads it from a pickle file the runner wrote (``pickle:<path>``;
  with ``cloudpickle``, an optional extra, for what plain pickle cannot send).

:class:`FunctionWorker` calls it in one of two ways:

* ``call="fields"``: one argument per input of the run, by parameter name; the
  return value is one value per output (as :meth:`Worker.wrap` does);
* ``call="executor"``: the arguments of one call of :class:`profit.run.Executor`,
  decoded from the run's row (numbers and numeric arrays: see
  :func:`call_signature`) or from a pickle file (anything else); the result goes
  into the outputs ``result`` and ``result_kind``, or into a pickle file.

This module is imported by every worker process: nothing heavy at module level.
"""

from __future__ import annotations

import os
import sys

from .errors import ConfigError, WorkerError
from .worker import Worker, _annotated_outputs, _collect_inputs, _parameter_names, _store_outputs, _unwrapped

TYPE_CHECKING = False  # (typing costs every worker process its import)
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any

    from ._lazy import logging
    from .interface import WorkerInterface

# Functions of this process that forked workers call, by key ("@" + a number).
_IN_PROCESS: dict[str, Callable] = {}
# How many runners use each of them (a closed executor lane lets its function go).
_REFERENCES: dict[str, int] = {}
# Functions a worker process resolved already (a pool worker or a packed job serves many runs).
_RESOLVED: dict[tuple[str, str | None], Callable] = {}

# How a result travels back (the ``result_kind`` output).
NO_RESULT = 0
FLOAT = 1  # a Python float, in ``result``
FLOAT64 = 2  # a numpy.float64, in ``result``
INT = 3  # a Python int within +-2**53, in ``result`` (exact)
BOOL = 4  # a Python bool, in ``result``
NONE = 5  # None
ARRAY = 6  # a numeric numpy array of the lane's result layout, in ``result_array``
PICKLED = 9  # anything else, in the run's pickle file

# Numbers and numeric arrays with at most this many elements in all travel in the run's row.
MAX_ROW_ELEMENTS = 1024


# --- references ---------------------------------------------------------------------------------


def function_reference(func: Callable, *, forked: bool, folder: str) -> dict[str, str]:
    """The worker config keys that let a worker find ``func``: ``function`` (and ``path``).

    Args:
        func: The function.
        forked: The workers are forked from this process (they inherit its memory).
        folder: Where a pickled function is written (the runner's work directory).

    Raises:
        ConfigError: (One sentence) for a function a worker cannot get.
    """
    if not callable(func):
        raise ConfigError(f"worker {func!r} is neither a Worker label nor a function")
    if forked:
        key = f"@{id(func)}"
        _IN_PROCESS[key] = func  # (kept while referenced: a worker forked later needs it)
        _REFERENCES[key] = _REFERENCES.get(key, 0) + 1
        return {"function": key}
    named = importable_name(func)
    if named is None:
        reference = {"function": "pickle:" + pickle_function(func, folder)}
        # A partial of a module's function, an object of a module's class: its pickle names that
        # module, which the worker imports from where it was found here.
        named = importable_name(_unwrapped(func)) or importable_name(type(_unwrapped(func)))
    else:
        reference = {"function": named[0]}
    if named is not None and named[1]:
        reference["path"] = named[1]
    return reference


def forget_reference(reference: str) -> None:
    """One user of an in-process reference (a runner that closed) no longer needs it; the function
    is let go when none does.

    Args:
        reference: The in-process reference (``@...``).
    """
    count = _REFERENCES.get(reference, 0) - 1
    if count > 0:
        _REFERENCES[reference] = count
    else:
        _REFERENCES.pop(reference, None)
        _IN_PROCESS.pop(reference, None)


def importable_name(func: object) -> tuple[str, str] | None:
    """``("module:qualname", directory)`` when another process can import ``func`` by name (the
    directory to put on ``sys.path`` for its module, or ""); None when it cannot.

    Args:
        func: The function.
    """
    module_name = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", None)
    if not isinstance(module_name, str) or not isinstance(qualname, str) or module_name == "__main__":
        return None
    if "<" in qualname:  # <locals>, <lambda>
        return None
    module = sys.modules.get(module_name)
    target: object = module
    for part in qualname.split("."):
        target = getattr(target, part, None)
    if target is not func:
        return None
    return f"{module_name}:{qualname}", _import_root(module)


def _import_root(module: object) -> str:
    """The directory from which ``module`` was imported (its top package's parent), or ""."""
    path = getattr(module, "__file__", None)
    name = getattr(module, "__name__", "")
    if not isinstance(path, str):
        return ""
    root = os.path.dirname(os.path.abspath(path))
    levels = name.count(".") + (os.path.basename(path).startswith("__init__.") and 1)
    for _ in range(levels):
        root = os.path.dirname(root)
    return root


def pickle_function(func: Callable, folder: str) -> str:
    """Write ``func`` pickled into ``folder/.profit-functions/`` (named by its content); its path.

    Args:
        func: The function.
        folder: The runner's work directory.

    Returns:
        The path of the pickle.
    """
    import hashlib

    data = pickled(func, what=f"function {_describe(func)}", fork_helps=True)
    directory = os.path.join(os.path.abspath(folder), ".profit-functions")
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, hashlib.sha256(data).hexdigest()[:20] + ".pkl")
    if not os.path.exists(path):
        from ._files import write_atomically

        write_atomically(path, data)
    return path


def canonical_digest(value: object) -> bytes:
    """A digest of ``value`` that is the same in every process: its pickle, with the items of every
    set (within tuples, lists and dicts) in a fixed order. For the memo's keys; the pickle itself goes
    unchanged to the worker. (Sets inside other objects keep their order: such a call is recalled only
    by chance, never wrongly.)

    Args:
        value: What is pickled (a call's arguments).
    """
    import hashlib
    import pickle

    return hashlib.blake2b(pickle.dumps(_canonical(value), protocol=4), digest_size=16).digest()


def _canonical(value: object) -> object:
    import pickle

    kind = type(value)
    if kind is tuple or kind is list:
        return kind(_canonical(item) for item in value)  # type: ignore[attr-defined]
    if kind is dict:
        return {key: _canonical(item) for key, item in value.items()}  # type: ignore[attr-defined]
    if kind is set or kind is frozenset:
        items = [_canonical(item) for item in value]  # type: ignore[attr-defined]
        return (kind.__name__, sorted(items, key=lambda item: pickle.dumps(item, protocol=4)))
    return value


def pickled_call(args: tuple, kwargs: dict, *, what: str, forked: bool) -> tuple[bytes, bytes]:
    """The arguments of a call pickled (see :func:`pickled`), and the digest that keys them in a memo:
    the same for the same arguments in every process (:func:`canonical_digest` where they hold sets).

    Args:
        args: The call's positional arguments.
        kwargs: Its keyword arguments.
        what: What they are, for the error message (``an argument of f``).
        forked: The worker is forked from this process (see :func:`pickled`).

    Returns:
        The pickle and its digest.
    """
    import hashlib

    payload = pickled((args, kwargs), what=what, forked=forked)
    # EMPTY_SET and FROZENSET opcodes (or the same bytes within data: the canonical digest is right either way)
    if b"\x8f" in payload or b"\x91" in payload:
        return payload, canonical_digest((args, kwargs))
    return payload, hashlib.blake2b(payload, digest_size=16).digest()


def pickled(value: object, *, what: str, forked: bool = False, fork_helps: bool = False) -> bytes:
    """``value`` pickled, by plain pickle or else by cloudpickle (what a worker in another process
    cannot import by name: defined in ``__main__``, a notebook or another function); ConfigError
    saying what cannot be sent and what would work. ``forked``: the worker is forked from this
    process and has its ``__main__``, so plain pickle does. ``fork_helps``: a forked worker would not
    need ``value`` pickled (a function: it finds it in memory), which the sentence then says.

    Args:
        value: What is sent.
        what: What it is, for the error message.
        forked: The worker is forked from this process and has its ``__main__``, so plain pickle does.
        fork_helps: A forked worker would not need ``value`` pickled.

    Raises:
        ConfigError: ``value`` cannot be sent; says what would work.
    """
    import io
    import pickle

    buffer = io.BytesIO()
    pickler: Any = _main_spotter()(buffer, protocol=pickle.HIGHEST_PROTOCOL)
    try:
        pickler.dump(value)
    except Exception as error:  # (pickle raises PicklingError, AttributeError, TypeError, ...)
        plain_error: Exception | None = error
    else:
        if forked or pickler.from_main is None:
            return buffer.getvalue()
        plain_error = None
    try:
        import cloudpickle  # type: ignore[import-untyped]  # (no type hints of its own)
    except ImportError:
        if pickler.from_main is not None and not forked:
            subject = "it is" if what.endswith(pickler.from_main) else f"it refers to {pickler.from_main}, which is"
            raise ConfigError(
                f"{what} cannot be sent to a worker in another process: {subject} defined in __main__ (a script or "
                "a notebook), which that worker cannot import; define it in a module, install cloudpickle "
                "(pip install 'profit-run[functions]')" + (", or use the fork or pool runner" if fork_helps else "")
            ) from None
        raise ConfigError(
            f"{what} cannot be sent to a worker: plain pickle fails ({type(plain_error).__name__}: {plain_error}); "
            "define it in a module, or install cloudpickle (pip install 'profit-run[functions]')"
            + (", or use the fork or pool runner" if fork_helps else "")
        ) from None
    try:
        return cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as error:
        raise ConfigError(
            f"{what} cannot be sent to a worker: even cloudpickle fails ({type(error).__name__}: {error}); "
            "define it in a module" + (", or use the fork or pool runner" if fork_helps else "")
        ) from None


_SPOTTER: type | None = None


def _main_spotter() -> type:
    """A pickler class that notes the first object it sends by a name in ``__main__`` (made on first
    use: worker processes rarely pickle, and would pay for the import of pickle)."""
    global _SPOTTER
    if _SPOTTER is None:
        import pickle

        class MainSpotter(pickle.Pickler):
            from_main: str | None = None

            def reducer_override(self, obj: object) -> Any:
                if self.from_main is None:
                    owner = obj if isinstance(obj, type) or callable(obj) else type(obj)
                    if getattr(owner, "__module__", None) == "__main__":
                        self.from_main = f"__main__.{getattr(owner, '__qualname__', type(owner).__name__)}"
                return NotImplemented

        _SPOTTER = MainSpotter
    return _SPOTTER


def _describe(value: object) -> str:
    name = getattr(value, "__qualname__", None) or type(value).__qualname__
    module = getattr(value, "__module__", None) or type(value).__module__
    return f"{module}.{name}"


def resolve_function(reference: str, path: str | None = None) -> Callable:
    """In a worker process: the function a reference names (see :func:`function_reference`).

    Args:
        reference: The reference: ``@...`` (in the runner's memory), ``pickle:<file>`` or ``module:qualname``.
        path: The directory to put on ``sys.path`` for the function's module.

    Raises:
        ConfigError: The function cannot be found: it lives in the memory of a runner this worker was not
            forked from, its module cannot be imported or has no such name, or it is not callable.
    """
    key = (reference, path)
    found = _RESOLVED.get(key)
    if found is not None:
        return found
    if reference.startswith("@"):
        func = _IN_PROCESS.get(reference)
        if func is None:
            raise ConfigError(
                f"function {reference} lives in the runner's memory and reaches only workers forked from it; "
                "this worker was not (build the runner with the function again)"
            )
    elif reference.startswith("pickle:"):
        import pickle

        if path and path not in sys.path:  # (the module a pickled partial or object names)
            sys.path.insert(0, path)
        with open(reference[len("pickle:") :], "rb") as file:
            func = pickle.load(file)  # (written by the runner of this study: trusted as the study itself)
    else:
        func = _import_by_name(reference, path)
    _RESOLVED[key] = func
    return func


def _import_by_name(reference: str, path: str | None) -> Callable:
    import importlib

    module_name, _, qualname = reference.partition(":")
    if not module_name or not qualname:
        raise ConfigError(f"function {reference!r} must be given as 'module:qualified_name'")
    if path and path not in sys.path:
        sys.path.insert(0, path)
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as error:
        raise ConfigError(f"function {reference}: cannot import module {module_name!r} ({error})") from None
    for part in qualname.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ConfigError(f"function {reference}: module {module_name!r} has no {qualname!r}") from None
    if not callable(target):
        raise ConfigError(f"function {reference}: {qualname!r} is not callable")
    return target


# --- what counts as the same function -------------------------------------------------------------


def function_identity(func: object) -> str:
    """A digest that stays the same for the same function in another process, and changes when
    its code does: module and qualified name, its code (instructions, constants, names, nested
    functions), its default values; for a callable object, its class and its attributes, each in
    the same way; for ``functools.partial``, the function and its bound arguments. Globals the
    function reads and the functions it calls are not part of it.

    Args:
        func: The function (or callable object, or ``functools.partial``).
    """
    import hashlib

    digest = hashlib.sha256()
    _feed_identity(digest, func, depth=0)
    return digest.hexdigest()


def _feed_identity(digest: Any, value: object, depth: int) -> None:
    import functools
    import hashlib
    import pickle
    import types

    update = digest.update
    if depth > 8:
        update(b"<deep>")
        return
    if isinstance(value, types.FunctionType):
        update(f"function {value.__module__}.{value.__qualname__}".encode())
        _feed_code(digest, value.__code__)
        _feed_identity(digest, value.__defaults__, depth + 1)
        _feed_identity(digest, value.__kwdefaults__, depth + 1)
        for cell in value.__closure__ or ():
            try:
                _feed_identity(digest, cell.cell_contents, depth + 1)
            except ValueError:  # an empty cell
                update(b"<empty cell>")
    elif isinstance(value, types.MethodType):
        update(b"method")
        _feed_identity(digest, value.__func__, depth + 1)
        _feed_identity(digest, value.__self__, depth + 1)
    elif isinstance(value, functools.partial):
        update(b"partial")
        for part in (value.func, value.args, value.keywords):
            _feed_identity(digest, part, depth + 1)
    elif isinstance(value, (tuple, list)):
        update(f"{type(value).__name__} {len(value)}".encode())
        for item in value:
            _feed_identity(digest, item, depth + 1)
    elif isinstance(value, (set, frozenset)):
        # (in sorted order: a set of strings iterates in an order that changes from process to process)
        parts = []
        for item in value:
            item_digest = hashlib.sha256()
            _feed_identity(item_digest, item, depth + 1)
            parts.append(item_digest.digest())
        update(f"{type(value).__name__} {len(value)}".encode() + b"".join(sorted(parts)))
    elif isinstance(value, dict):
        update(f"dict {len(value)}".encode())
        for key in sorted(value, key=repr):
            update(repr(key).encode())
            _feed_identity(digest, value[key], depth + 1)
    elif isinstance(value, type):
        update(f"class {value.__module__}.{value.__qualname__}".encode())
        call = value.__dict__.get("__call__")
        if call is not None:
            _feed_identity(digest, call, depth + 1)
    elif callable(value) and hasattr(value, "__dict__"):
        _feed_identity(digest, type(value), depth + 1)
        _feed_identity(digest, vars(value), depth + 1)
    else:
        try:
            update(pickle.dumps(value, protocol=4))
        except Exception:
            # Neither code nor data to compare: this object only (its id), never another one with the same repr.
            update(f"{type(value).__module__}.{type(value).__qualname__} {value!r} at {id(value)}".encode())


def _feed_code(digest: Any, code: Any) -> None:
    import types

    digest.update(code.co_code)
    digest.update(repr(code.co_names).encode())
    digest.update(repr(code.co_varnames).encode())
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            _feed_code(digest, constant)
        elif isinstance(constant, frozenset):  # (x in {"a", "b"}: its repr's order changes from process to process)
            digest.update(repr(sorted(map(repr, constant))).encode())
        else:
            digest.update(repr(constant).encode())


# --- the arguments of one call ----------------------------------------------------------------------


def call_signature(args: Sequence, kwargs: Mapping[str, object]) -> tuple | None:
    """How the arguments of a call travel in a run's row: one entry per argument,
    ``(keyword or None, kind, dtype, shape)`` with ``kind`` one of ``float``, ``int``, ``bool``
    (Python numbers), ``scalar`` (a numpy number) or ``array`` (a numeric numpy array);
    None when an argument is none of these (the call then travels pickled).

    Args:
        args: The call's positional arguments.
        kwargs: Its keyword arguments.
    """
    import numpy

    entries = []
    count = 0
    for keyword, value in [*((None, arg) for arg in args), *kwargs.items()]:
        kind = type(value)
        if kind is float:
            entries.append((keyword, "float", "<f8", ()))
            count += 1
        elif kind is bool:
            entries.append((keyword, "bool", "|b1", ()))
            count += 1
        elif kind is int:
            if not -(2**63) <= value < 2**63:
                return None
            entries.append((keyword, "int", "<i8", ()))
            count += 1
        elif isinstance(value, numpy.ndarray):
            if value.dtype.kind not in "biuf" or value.dtype.byteorder == ">" or value.ndim > 3:
                return None
            entries.append((keyword, "array", value.dtype.str, value.shape))
            count += value.size
        elif isinstance(value, numpy.generic) and value.dtype.kind in "biuf":
            entries.append((keyword, "scalar", value.dtype.str, ()))
            count += 1
        else:
            return None
        if count > MAX_ROW_ELEMENTS:
            return None
    return tuple(entries)


def flat_values(args: Sequence, kwargs: Mapping[str, object], signature: tuple) -> tuple:
    """The arguments of a call as one flat tuple of numbers, in the order of the row's fields.

    Args:
        args: The call's positional arguments.
        kwargs: Its keyword arguments.
        signature: Their :func:`call_signature`.
    """
    values: list = []
    for arg in [*args, *kwargs.values()]:
        if type(arg) in (float, int, bool):
            values.append(arg)
        elif getattr(arg, "ndim", 0):
            values.extend(arg.ravel().tolist())
        else:
            values.append(arg.item())
    return tuple(values)


def signature_fields(signature: tuple, parameter_names: Sequence[str]) -> list[list[str]]:
    """The row's field names of each argument: the parameter's name (``theta``; an array's
    elements ``theta_0``, ``theta_1``, ...), ``arg0``... where no name is known; never a name
    the run system or the result uses.

    Args:
        signature: The call's :func:`call_signature`.
        parameter_names: The names of the function's parameters.
    """
    taken = {"result", "result_kind"}
    fields: list[list[str]] = []
    for index, (keyword, _kind, _dtype, shape) in enumerate(signature):
        base = keyword or (parameter_names[index] if index < len(parameter_names) else f"arg{index}")
        base = base if base.isidentifier() and not base.isupper() else f"arg{index}"
        while base in taken or any(name.startswith(base + "_") for name in taken):
            base += "_"
        count = 1
        for extent in shape:
            count *= extent
        names = [base] if not shape else [f"{base}_{i}" for i in range(count)]
        taken.update(names)
        fields.append(names)
    return fields


def _arguments(record: Any, signature: Sequence, fields: Sequence[Sequence[str]]) -> tuple[list, dict]:
    """In a worker: the call's arguments, read from its row."""
    args: list = []
    kwargs: dict = {}
    for (keyword, kind, dtype, shape), names in zip(signature, fields):
        if kind == "float":
            value: object = float(record[names[0]])
        elif kind == "int":
            value = int(record[names[0]])
        elif kind == "bool":
            value = bool(record[names[0]])
        else:
            import numpy

            if kind == "scalar":
                value = numpy.dtype(dtype).type(record[names[0]])
            else:
                value = numpy.array([record[name] for name in names], dtype=dtype).reshape(shape)
        if keyword is None:
            args.append(value)
        else:
            kwargs[keyword] = value
    return args, kwargs


def result_code(value: object) -> tuple[int, float]:
    """How a result travels: (``result_kind``, ``result``); PICKLED for what a float cannot hold.

    Args:
        value: The function's result.
    """
    kind = type(value)
    if kind is float:
        return FLOAT, value  # type: ignore[return-value]
    if kind is bool:
        return BOOL, float(value)  # type: ignore[arg-type]
    if kind is int and -(2**53) <= value <= 2**53:  # type: ignore[operator]
        return INT, float(value)  # type: ignore[arg-type]
    if value is None:
        return NONE, float("nan")
    if kind.__name__ == "float64" and kind.__module__ == "numpy":
        return FLOAT64, float(value)  # type: ignore[arg-type]
    return PICKLED, float("nan")


def result_value(kind: int, number: float, pickle_path: str) -> object:
    """The result a worker handed back (see :func:`result_code`).

    Args:
        kind: The ``result_kind``.
        number: The ``result``.
        pickle_path: Where a pickled result is (see :func:`result_path`).

    Raises:
        WorkerError: The kind is unknown.
    """
    if kind == FLOAT:
        return number
    if kind == FLOAT64:
        import numpy

        return numpy.float64(number)
    if kind == INT:
        return int(number)
    if kind == BOOL:
        return bool(number)
    if kind == NONE:
        return None
    if kind == PICKLED:
        import pickle

        with open(pickle_path, "rb") as file:
            return pickle.load(file)
    raise WorkerError(f"the run's result kind {kind} is unknown")


def result_path(folder: str, run_id: int) -> str:
    """Where run ``run_id`` leaves a result that travels pickled.

    Args:
        folder: The directory of the pickled results.
        run_id: The run.
    """
    return os.path.join(folder, f"{run_id}.pkl")


# --- the worker ---------------------------------------------------------------------------------


class FunctionWorker(Worker, label="function"):
    """Call a plain Python function for each run.

    Args:
        run_id: the run's id (its row in the interface).
        function: the function's reference (see :func:`function_reference`).
        path: a directory to put on ``sys.path`` before importing it.
        call: ``"fields"`` (one argument per input, by name; one value per output) or
            ``"executor"`` (the arguments of an :class:`~profit.run.Executor` call).
        inputs: the function's parameters, in order (``fields``; default: its parameter names).
        outputs: the outputs its values go to, in order (``fields``; default: its return annotation or name).
        signature: how the arguments travel (``executor``; from :func:`call_signature`), None: pickled.
        result_layout: ``[dtype, shape]`` of an array result that travels in the row (``executor``).
        fields: the row's field names of each argument (``executor``).
        calls: the directory of pickled arguments (``executor``, when ``signature`` is None).
        results: the directory of pickled results (``executor``).
        interface: a WorkerInterface, its label, or a config ``{"class": label, ...}``.
        debug: log in more detail.
        log_path: directory of the per-run log files (relative to the work directory).
        logger: the logger to use (default: ``profit.run.worker``).

    Raises:
        ConfigError: ``call`` is neither ``"fields"`` nor ``"executor"``.
    """

    def __init__(
        self,
        run_id: int,
        *,
        function: str,
        path: str | None = None,
        call: str = "fields",
        inputs: Sequence[str] | None = None,
        outputs: Sequence[str] | None = None,
        signature: Sequence | None = None,
        fields: Sequence[Sequence[str]] | None = None,
        calls: str | None = None,
        results: str | None = None,
        result_layout: Sequence | None = None,
        interface: WorkerInterface | str | Mapping = "memmap",
        debug: bool = False,
        log_path: str = "log",
        logger: logging.Logger | None = None,
    ):
        super().__init__(run_id, interface=interface, debug=debug, log_path=log_path, logger=logger)
        if call not in ("fields", "executor"):
            raise ConfigError(f"worker 'function': call {call!r} must be 'fields' or 'executor'")
        self.function = resolve_function(function, path)
        self.call = call
        self.inputs = list(inputs) if inputs is not None else None
        self.outputs = list(outputs) if outputs is not None else None
        self.signature = signature
        self.fields = fields or []
        self.calls = calls
        self.results = results
        # (dtype, shape) of an array result that travels in the row (``result_array``), if the lane has one
        self.result_layout = None if result_layout is None else (result_layout[0], tuple(result_layout[1]))

    def work(self) -> None:
        """Retrieve the inputs, call the function, set ``interface.time`` and transmit.

        With ``call == "fields"`` the function takes the input fields and its values go to the
        output fields; otherwise it takes the call's arguments and its result goes to the row (an
        array of the lane's layout, or a number) or, pickled, to a file in the results directory.

        Raises:
            WorkerError: A result must travel pickled but the executor gave no results directory.
        """
        import time

        interface = self.interface
        interface.retrieve()
        func = self.function
        if self.call == "fields":
            names = self.inputs if self.inputs is not None else _parameter_names(func)
            arguments = _collect_inputs(interface.input, names, func)
            started = time.perf_counter()
            values = func(*arguments)
            interface.time = time.perf_counter() - started
            outputs = self.outputs if self.outputs is not None else _annotated_outputs(func)
            _store_outputs(interface.output, outputs, values, func)
        else:
            args, kwargs = self._call_arguments()
            started = time.perf_counter()
            value = func(*args, **kwargs)
            interface.time = time.perf_counter() - started
            kind, number = result_code(value)
            if kind == PICKLED and self._fits_row(value):
                interface.output["result_array"] = value.ravel() if value.size > 1 else value.item()
                kind = ARRAY
            if kind == PICKLED:
                if self.results is None:
                    raise WorkerError("the executor gave no directory for results that travel pickled")
                data = pickled(value, what=f"the result of {_describe(func)}", forked=True)
                # Written in place, not beside and renamed (ten times dearer): nobody reads it before the
                # run is done, which transmit() below makes it only once the file is whole.
                with open(result_path(self.results, self.run_id), "wb") as file:
                    file.write(data)
            interface.output["result"] = number
            interface.output["result_kind"] = kind
        interface.transmit()

    def _fits_row(self, value: object) -> bool:
        """Whether ``value`` is an array of the lane's result layout (it then travels in the row)."""
        layout = self.result_layout
        return (
            layout is not None
            and type(value).__name__ == "ndarray"
            and value.dtype.str == layout[0]  # type: ignore[attr-defined]
            and value.shape == layout[1]  # type: ignore[attr-defined]
        )

    def _call_arguments(self) -> tuple[list, dict]:
        if self.signature is not None:
            return _arguments(self.interface.input, self.signature, self.fields)
        import pickle

        if self.calls is None:
            raise WorkerError("the executor gave no directory for arguments that travel pickled")
        with open(os.path.join(self.calls, f"{self.run_id}.pkl"), "rb") as file:
            args, kwargs = pickle.load(file)
        return list(args), dict(kwargs)
