"""From the ``run:`` section of a study to a runner's options, and option checks by signature.

:func:`runner_options` translates the study schema (``runner``, ``interface``,
``worker``, ``pre``, ``post``, ``command``, ``debug`` under ``run:``, plus the
study's inputs, outputs, size and work directory) into the label and keyword
options of a runner. :func:`check_options` refuses an option that a component's
constructor does not take, with one sentence, before anything is built: a
``TypeError`` that escapes a constructor is then always a bug, never a typo in
a study file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from .errors import ConfigError, UnknownLabelError
from .interface import RunnerInterface
from .layout import study_base_dir
from .worker import Worker, _annotated_outputs, _parameter_names

TYPE_CHECKING = False  # (typing costs every worker process its import)
if TYPE_CHECKING:
    import logging
    from collections.abc import Callable


def runs_own_worker(command: object) -> bool:
    """Whether a runner's ``command`` starts a worker program of its own (proFit's custom worker
    script: ``python3 my_worker.py``, which calls ``Worker.from_env()``), not ``profit-worker``:
    such a program may define its worker's label itself.

    Args:
        command: The runner's ``command`` option.
    """
    return isinstance(command, str) and not any(os.path.basename(word) == "profit-worker" for word in command.split())


def worker_config(
    worker: str | Mapping | Callable | type[Worker] | None = None,
    *,
    debug: bool = False,
    resolve: bool = True,
    forked: bool = False,
    folder: str = ".",
) -> dict:
    """A runner's ``worker`` option as the config every Worker is built from: ``{"class": label, ...}``.

    ``worker`` is a label, a config ``{"class": label, ...}``, a Worker class (its label), or a plain
    function (a ``functools.partial``, a callable object): the worker ``function`` then calls it (see
    :func:`function_config`; ``forked`` and ``folder`` say how its workers find it).

    ``debug`` turns on the workers' debug logging unless the config says otherwise.
    ``base_dir`` is where a study's relative paths (a template) start: given, or
    ``PROFIT_BASE_DIR``, else the current directory. Every worker process gets it as
    ``PROFIT_BASE_DIR``; :meth:`Worker.from_config` passes it on only to workers
    that take it (``uses_base_dir``).

    Without a worker, proFit's default: the ``command`` worker. With ``resolve=False``
    (a runner whose workers run a command of their own, which defines the label: proFit's
    custom worker scripts), a label unknown here stays a label, for the worker process to resolve.

    Args:
        worker: A label, a config, a Worker class or a plain function (None: the ``command`` worker).
        debug: Turns on the workers' debug logging unless the config says otherwise.
        resolve: Resolve the label here (False: a label unknown here stays a label).
        forked: The workers are forked from this process (how they find a function).
        folder: Where a pickled function is written (how they find a function).
    """
    if worker is None:
        worker = "command"
    spec = _labelled(worker, forked=forked, folder=folder)
    try:
        worker_class, options = Worker.resolve(spec, "worker")
    except UnknownLabelError as error:
        label = error.label  # (resolve checked the shape: a label, or a mapping with a "class")
        if resolve or not isinstance(label, str) or not label:
            raise
        assert isinstance(spec, (str, Mapping))
        options = {} if isinstance(spec, str) else {k: v for k, v in spec.items() if k != "class"}
        config: dict = {"class": label, **options}
    else:
        config = {"class": worker_class.label, **options}
    if debug:
        config.setdefault("debug", True)
    config["base_dir"] = study_base_dir(config.get("base_dir"))
    return config


def _labelled(worker: object, *, forked: bool, folder: str) -> object:
    """``worker`` with a Worker class turned into its label and a function into the config of the
    worker ``function``; anything else as it is (:meth:`Worker.resolve` judges it)."""
    if isinstance(worker, type):
        return _worker_label(worker)
    func = function_of(worker)
    if func is None:
        if isinstance(worker, Mapping) and isinstance(worker.get("class"), type):
            return {**worker, "class": _worker_label(worker["class"])}
        return worker
    options = {}
    if isinstance(worker, Mapping):
        options = {key: value for key, value in worker.items() if key not in ("class", "function")}
    return function_config(func, options, forked=forked, folder=folder)


def _worker_label(cls: type) -> str:
    """The label of a Worker class given in place of its label."""
    if not issubclass(cls, Worker):
        raise ConfigError(
            f"worker {cls.__module__}.{cls.__qualname__} is a class but not a Worker; "
            "give a Worker class, a Worker label or a function"
        )
    label = cls.__dict__.get("label")  # (not one inherited: that label names the base class)
    if not isinstance(label, str) or cls._registry.get(label) is not cls:
        raise ConfigError(
            f"worker class {cls.__module__}.{cls.__qualname__} has no label of its own; "
            f"register it (class {cls.__name__}(Worker, label='...')) or give a function"
        )
    return label


def function_of(worker: object) -> Callable | None:
    """The plain function a runner's ``worker`` option gives, if it gives one: the option itself
    (a function, a ``functools.partial``, a callable object), or a config whose ``class`` is one,
    or ``{"class": "function", "function": <a function>}``. None for labels, Worker classes and
    configs that name their function by reference (a string).

    Args:
        worker: A runner's ``worker`` option.
    """
    if isinstance(worker, Mapping):
        spec = worker.get("class")
        if spec == "function":
            spec = worker.get("function")
        return spec if _is_function(spec) else None
    return worker if _is_function(worker) else None  # type: ignore[return-value]


def _is_function(value: object) -> bool:
    # a class is callable too, but a class given as a worker names a Worker (or is a mistake)
    return callable(value) and not isinstance(value, (str, Mapping, type))


def function_config(func: Callable, options: Mapping, *, forked: bool, folder: str) -> dict:
    """The config of the worker ``function`` calling ``func``: how its workers find it
    (:func:`~profit.run.functions.function_reference`), its inputs (default: its parameter names)
    and outputs (default: its return annotation or name), and the other ``options`` given.

    Args:
        func: The function.
        options: The worker's other options.
        forked: The workers are forked from this process.
        folder: Where a pickled function is written (the runner's work directory).

    Raises:
        ConfigError: An output has no name that is an identifier.
    """
    from .functions import function_reference  # (registers the worker "function")

    reference = function_reference(func, forked=forked, folder=folder)
    config: dict = {"class": "function", **reference}
    config["inputs"] = list(options["inputs"]) if "inputs" in options else _parameter_names(func)
    config["outputs"] = list(options["outputs"]) if "outputs" in options else _annotated_outputs(func)
    unnamed = [name for name in config["outputs"] if not isinstance(name, str) or not name.isidentifier()]
    if unnamed:  # (a lambda's name is "<lambda>")
        raise ConfigError(
            f"worker function {unnamed[0]!r} cannot name its output; give its outputs: "
            "{'class': func, 'outputs': ['f']}, or annotate its return (-> 'f')"
        )
    config.update((key, value) for key, value in options.items() if key not in config)
    return config


def function_interface(config: Mapping, func: Callable | None = None) -> dict | None:
    """What a function worker's ``config`` tells of the interface: ``input_config`` (each input a
    float64, or as ``func`` annotates its parameter: int, bool, a numpy type), ``output_config``
    (each output a float64) and ``size`` 0 (the interface grows with the runs); None when the
    worker is not a function called with fields, or its inputs and outputs are not known.

    Args:
        config: The function worker's config.
        func: The function (to read its annotations).
    """
    if config.get("class") != "function" or config.get("call", "fields") != "fields":
        return None
    inputs, outputs = config.get("inputs"), config.get("outputs")
    if not isinstance(inputs, (list, tuple)) or not isinstance(outputs, (list, tuple)):
        return None
    dtypes = _annotated_dtypes(func) if func is not None else {}
    return {
        "size": 0,
        "input_config": {name: {"dtype": dtypes.get(name, "float64")} for name in inputs},
        "output_config": {name: {"dtype": "float64"} for name in outputs},
    }


# Parameter annotations that choose an input's dtype (as objects, or as text under
# `from __future__ import annotations`); any other annotation leaves it a float64.
_ANNOTATED_DTYPES = {int: "int64", "int": "int64", bool: "bool", "bool": "bool", float: "float64", "float": "float64"}


def _annotated_dtypes(func: Callable) -> dict[str, str]:
    """The dtype each parameter of ``func`` is annotated with, where it says one."""
    import inspect

    try:
        parameters = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: nothing annotated
        return {}
    dtypes: dict[str, str] = {}
    for parameter in parameters:
        annotation = parameter.annotation
        try:
            dtype = _ANNOTATED_DTYPES.get(annotation)
        except TypeError:  # an unhashable annotation
            dtype = None
        if dtype is None and isinstance(annotation, type) and annotation.__module__ == "numpy":
            import numpy

            if issubclass(annotation, numpy.generic) and numpy.dtype(annotation).kind in "biuf":
                dtype = numpy.dtype(annotation).name  # numpy.int32, numpy.float32, ...
        if dtype is not None:
            dtypes[parameter.name] = dtype
    return dtypes


def build_interface(
    interface: RunnerInterface | Mapping | str,
    work_dir: str,
    logger: logging.Logger | None = None,
    inferred: Mapping | None = None,
) -> RunnerInterface:
    """A runner's ``interface`` option as an interface: an instance as it is, a config built,
    with relative file paths (``path_options``) put into ``work_dir``. ``inferred`` holds what
    a function worker tells (:func:`function_interface`): ``size``, ``input_config`` and
    ``output_config`` where the config (or a label alone) does not give them.

    Args:
        interface: An instance, a config or a label.
        work_dir: The runner's work directory.
        logger: The logger whose child the interface's logger is.
        inferred: What a function worker tells of the interface.

    Raises:
        ConfigError: A label alone where nothing was inferred, or a config that lacks ``size``,
            ``input_config`` or ``output_config``.
    """
    if isinstance(interface, RunnerInterface):
        return interface
    if isinstance(interface, str):
        if inferred is None:
            raise ConfigError(
                f"interface {interface!r}: a label alone is not enough here; pass a RunnerInterface or a mapping "
                "{'class': label, 'size': n, 'input_config': {...}, 'output_config': {...}}"
            )
        interface = {"class": interface}
    import inspect  # runner side only: worker processes import this module too

    cls, options = RunnerInterface.resolve(interface, "interface")
    parameters = inspect.signature(cls).parameters
    for option in cls.path_options:
        if option in parameters:
            path = options.get(option, parameters[option].default)
            if isinstance(path, str) and not os.path.isabs(path):
                options[option] = os.path.join(work_dir, path)
    for key, value in (inferred or {}).items():
        options.setdefault(key, value)
    missing = [key for key in ("size", "input_config", "output_config") if key not in options]
    if missing:
        raise ConfigError(f"interface config for {cls.label!r} lacks {', '.join(missing)}")
    return cls(**options, logger_parent=logger)


def runner_options(run_config: Mapping, base_config: Mapping) -> tuple[str, dict]:
    """The runner label and its keyword options for a study's ``run:`` section.

    ``base_config`` holds ``ntrain``, ``input``, ``output``, ``run_dir`` and,
    optionally, ``base_dir`` (where relative paths of the study, a template,
    start; default: the current directory).

    Args:
        run_config: The study's ``run:`` section.
        base_config: ``ntrain``, ``input``, ``output``, ``run_dir`` and, optionally, ``base_dir``.
    """
    runner_spec = run_config.get("runner", "fork")
    runner_spec = {"class": runner_spec} if isinstance(runner_spec, str) else dict(runner_spec)
    label = runner_spec.pop("class", "fork")
    options: dict[str, object] = dict(runner_spec)

    interface = run_config.get("interface", options.get("interface", "memmap"))
    interface = {"class": interface} if isinstance(interface, str) else dict(interface)
    interface["size"] = base_config["ntrain"]
    interface["input_config"] = base_config["input"]
    interface["output_config"] = base_config["output"]
    options["interface"] = interface

    worker = run_config.get("worker", options.get("worker", "command"))
    worker = {"class": worker} if isinstance(worker, str) else dict(worker)
    for key in ("pre", "post"):
        if key in run_config:
            worker[key] = run_config[key]
    if isinstance(run_config.get("command"), str):
        worker["class"] = "command"
        worker["command"] = run_config["command"]
    if run_config.get("debug"):
        options["debug"] = True
        worker["debug"] = True
    if base_config.get("base_dir") is not None:
        worker.setdefault("base_dir", base_config["base_dir"])
    options["worker"] = worker
    options["work_dir"] = base_config.get("run_dir", options.get("work_dir", "."))
    return label, options


# Constructor parameters that a runner or worker fills in, not the user.
_NOT_OPTIONS = frozenset({"logger", "logger_parent", "run_id", "run_dir", "size", "input_config", "output_config"})


def accepted_options(cls: type) -> list[str] | None:
    """The keyword options ``cls(...)`` takes, or None when it takes any.

    A constructor with ``**kwargs`` takes any option, unless its class declares
    ``passes_kwargs_on`` (it hands them to its base class, as the built-in
    runners do): then the search continues up the class's MRO. A class that
    sets ``checks_own_options`` takes what its constructor accepts.
    """
    import inspect  # runner side only: worker processes import this module too

    names: list[str] = []
    for klass in cls.__mro__:
        if klass.__dict__.get("checks_own_options"):
            return None
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        if klass is object:
            return names
        parameters = list(inspect.signature(init).parameters.values())[1:]  # without self
        names += [
            p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in names
        ]
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            return names
        if not klass.__dict__.get("passes_kwargs_on"):
            return None  # a user's component may take options of its own through **kwargs
    return None


def check_options(cls: type, options: Mapping, what: str, *, where: str = "") -> None:
    """Refuse options that ``cls`` does not take: ``where: what 'label' has no option 'x'; did you mean 'y'?``.

    Args:
        cls: The component class.
        options: The options given.
        what: Names the kind (``runner``).
        where: The place in the study file (``run.runner``).

    Raises:
        ConfigError: An option ``cls`` does not take, or a required one missing.
    """
    import difflib
    import inspect

    label = getattr(cls, "label", None) or cls.__name__
    prefix = f"{where}: " if where else ""
    # Options without a default that the study must give (the rest are filled in by the runner).
    required = [
        p.name
        for p in inspect.signature(cls).parameters.values()
        if p.default is p.empty and p.kind is p.KEYWORD_ONLY and p.name not in _NOT_OPTIONS
    ]
    missing = [name for name in required if name not in options]
    if missing:
        raise ConfigError(f"{prefix}{what} {label!r} needs the option {missing[0]!r}; give it a value in the study")
    accepted = accepted_options(cls)
    if accepted is None:
        return
    unknown = [key for key in options if key not in accepted]
    if not unknown:
        return
    key = unknown[0]
    close = difflib.get_close_matches(str(key), accepted, n=1)
    listed = [name for name in accepted if name not in _NOT_OPTIONS]
    hint = f"; did you mean {close[0]!r}?" if close else f"; its options are {', '.join(map(repr, listed))}"
    raise ConfigError(f"{prefix}{what} {label!r} has no option {key!r}{hint}")
