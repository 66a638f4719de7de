"""Refuse, before anything is written or run, a study whose every run would fail.

:func:`check_study` looks at facts of the whole study that no run can overcome:

* a template directory that the command worker needs but that is missing
  (``run.pre.path`` given, or the command runs a program from the run directory,
  such as ``./simulation``, which only the template can put there);
* a wrapped function (:meth:`~profit.run.worker.Worker.wrap`) whose parameters
  are not inputs of the study, or whose outputs are not the study's outputs;
* numpytxt ``names`` that leave an output of the study unread;
* ``files.input`` or ``files.output`` naming a file of profit's own (the study
  file, the study's state, the runner's log, the interface file) or each other.

Each is one :class:`~profit.run.errors.ConfigError` sentence naming the study
file and the key. Options that a component does not take are not checked here:
the runner's option check (:func:`profit.run.config.check_options`) refuses them,
and the checks here that depend on such options step aside for it.
"""

from __future__ import annotations

import difflib
import inspect
import os
import shlex
from collections.abc import Mapping, Sequence

from .run import Postprocessor, Preprocessor, Runner, RunnerInterface, Worker
from .run.command import CommandWorker, TemplatePreprocessor
from .run.config import accepted_options, runner_options
from .run.errors import ConfigError, UnknownLabelError
from .run.includes import load_includes
from .run.layout import RUNNER_LOG
from .store import LOCK, META, TABLE
from .studyfile import StudyFile

#: A numpytxt column to skip. (proFit has no marker: it skips any name that is not an
#: output, and so does profit; IGNORE is the name to use for it.)
IGNORE = "IGNORE"


def check_study(study: StudyFile) -> None:
    """Refuse, before anything is written or run, a study whose every run would fail.

    Args:
        study: The study file.
    """
    _check_files(study)
    load_includes(study.includes)  # custom workers and processors register on import
    _, options = runner_options(study.run_config(), study.base_config())
    try:
        worker_class, worker_options = Worker.resolve(options["worker"], "run.worker")
    except UnknownLabelError:
        return  # the runner's option check names it
    worker_options = worker_class.own_options(worker_options)
    if hasattr(worker_class, "wrapped_inputs"):
        _check_wrapped(study, worker_class)
    if issubclass(worker_class, CommandWorker) and _takes(worker_class, worker_options):
        _check_template(study, worker_class, worker_options)
        _check_names(study, worker_class, worker_options)


# --- where a key is written ------------------------------------------------------------------


def _worker_key(study: StudyFile, key: str) -> str:
    """Where the study sets the worker's option ``key`` (``run.pre``, ``run.worker.pre``, ...)."""
    run = study.run
    if key in run:
        return f"run.{key}"
    worker = run.get("worker")
    if isinstance(worker, Mapping) and key in worker:
        return f"run.worker.{key}"
    runner = run.get("runner")
    if isinstance(runner, Mapping) and isinstance(runner.get("worker"), Mapping) and key in runner["worker"]:
        return f"run.runner.worker.{key}"
    return f"run.{key}"


def _worker_place(study: StudyFile) -> str:
    runner = study.run.get("runner")
    if "worker" not in study.run and isinstance(runner, Mapping) and "worker" in runner:
        return "run.runner.worker"
    return "run.worker"


def _default(cls: type, option: str, fallback: type) -> object:
    """The default of ``option`` in the constructor of ``cls`` (or of ``fallback``, its base)."""
    for klass in (cls, fallback):
        parameter = inspect.signature(klass).parameters.get(option)
        if parameter is not None and parameter.default is not parameter.empty:
            return parameter.default
    return None


def _takes(cls: type, options: Mapping) -> bool:
    """Whether ``cls`` takes every option in ``options`` (if not, the runner's option check says so)."""
    accepted = accepted_options(cls)
    return accepted is None or all(key in accepted for key in options)


def _names(names: Sequence[str]) -> str:
    return ", ".join(names) or "none"


# --- 1. the template directory ---------------------------------------------------------------


def _program(command: str) -> str | None:
    """The program a shell command runs: its first word after variable assignments (``A=1 ./sim``)."""
    try:
        words = shlex.split(command)
    except ValueError:  # unbalanced quotes: the shell will say so
        words = command.split()
    for word in words:
        name, equals, _ = word.partition("=")
        if equals and name.isidentifier():
            continue
        return word
    return None


def _in_run_dir(program: str | None) -> bool:
    """Whether ``program`` is a path inside the run directory: ``./simulation``, ``bin/sim``
    (not a program on PATH, an absolute path, ``../x`` or anything the shell expands)."""
    if not program or "/" not in program or os.path.isabs(program) or program[0] in "~$`":
        return False
    return os.path.normpath(program).split("/")[0] != ".."


def _processor(
    worker_class: type[Worker], options: Mapping, key: str, kind: type[Preprocessor] | type[Postprocessor]
) -> tuple[type, dict] | None:
    """The command worker's processor ``key`` (``pre``/``post``) of base ``kind``: its class and
    options, or None where the spec is not sound (the runner's option check names that)."""
    spec = options.get(key, _default(worker_class, key, CommandWorker))
    if not isinstance(spec, (str, Mapping)):
        return None
    try:
        return kind.resolve(spec, f"run.{key}")
    except (UnknownLabelError, ConfigError):
        return None


def _check_template(study: StudyFile, worker_class: type[Worker], options: Mapping) -> None:
    found = _processor(worker_class, options, "pre", Preprocessor)
    if found is None:
        return
    pre_class, pre_options = found
    if not issubclass(pre_class, TemplatePreprocessor) or not _takes(pre_class, pre_options):
        return
    pre_key = _worker_key(study, "pre")
    explicit = "path" in pre_options
    path = pre_options.get("path", _default(pre_class, "path", TemplatePreprocessor)) or "template"
    if not isinstance(path, str):
        raise ConfigError(f"{study.name}: {pre_key}.path must be the template directory (a path), got {path!r}")
    command = options.get("command", _default(worker_class, "command", CommandWorker))
    program = _program(command) if isinstance(command, str) else None
    if not explicit and not _in_run_dir(program):
        return  # a command such as `echo 1` or `python3 -c ...` needs no template
    base = pre_options.get("base_dir") or options.get("base_dir") or study.base_dir
    if not isinstance(base, str) or not os.path.isabs(base):
        return  # a relative base directory is the worker's business
    template = os.path.normpath(os.path.join(base, path))
    if os.path.isdir(template):
        return
    problem = "is not a directory" if os.path.exists(template) else "does not exist"
    if explicit:
        raise ConfigError(
            f"{study.name}: {pre_key}.path: the template directory {path} {problem} ({template}); "
            f"create it, or set {pre_key}.path to the directory that holds the simulation's files "
            f"(relative to {study.base_dir})"
        )
    command_key = _worker_key(study, "command")
    given = "command" in study.run or command_key != "run.command"
    described = f"{command_key} {command!r}" if given else f"{command_key} (default {command!r})"
    raise ConfigError(
        f"{study.name}: {pre_key}.path: the template directory {path} {problem} ({template}), but "
        f"{described} runs {program} from the run directory, which is made from the template; "
        f"create {path}/ holding {os.path.normpath(program or '')}, or set "
        f"{pre_key}: {{class: template, path: <your template directory>}}"
    )


# --- 2. a wrapped function -------------------------------------------------------------------


def _check_wrapped(study: StudyFile, worker_class: type[Worker]) -> None:
    inputs, outputs = list(study.input_config), list(study.output_config)
    wrapped_inputs: Sequence[str] = worker_class.wrapped_inputs  # type: ignore[attr-defined]
    wrapped_outputs: Sequence[str] = worker_class.wrapped_outputs  # type: ignore[attr-defined]
    function = getattr(getattr(worker_class, "function", None), "__name__", worker_class.__name__)
    where = f"{study.name}: {_worker_place(study)}: the function {function} of worker {worker_class.label!r}"
    strangers = [name for name in wrapped_inputs if name not in inputs]
    if strangers:
        these = "is not an input" if len(strangers) == 1 else "are not inputs"
        raise ConfigError(
            f"{where} takes {', '.join(map(repr, strangers))}, which {these} of the study (inputs: {_names(inputs)}); "
            f"rename its parameters after the inputs, or pass inputs=[...] to Worker.wrap"
        )
    strangers = [name for name in wrapped_outputs if name not in outputs]
    if strangers:
        these = "is not an output" if len(strangers) == 1 else "are not outputs"
        raise ConfigError(
            f"{where} returns {', '.join(map(repr, strangers))}, which {these} of the study "
            f"(outputs: {_names(outputs)}); declare them under variables (name: Output), "
            "or name the study's outputs in Worker.wrap(label, [...])"
        )
    missing = [name for name in outputs if name not in wrapped_outputs]
    if missing:
        raise ConfigError(
            f"{where} returns no value for output{'s' * (len(missing) > 1)} {', '.join(map(repr, missing))} "
            f"of the study (it returns {_names(wrapped_outputs)}); name every output in "
            f"Worker.wrap({worker_class.label!r}, [{', '.join(map(repr, outputs))}]) and return a value for each"
        )


# --- 3. the columns of the numpytxt postprocessor --------------------------------------------


def _check_names(study: StudyFile, worker_class: type[Worker], options: Mapping) -> None:
    found = _processor(worker_class, options, "post", Postprocessor)
    if found is None:
        return
    post_class, post_options = found
    if not issubclass(post_class, Postprocessor["numpytxt"]) or post_options.get("names") is None:
        return
    post_key = _worker_key(study, "post")
    outputs = list(study.output_config)
    names = post_options["names"]
    # The postprocessor takes names as a sequence: a string is read letter by letter.
    if (isinstance(names, str) and len(names) != 1) or not isinstance(names, Sequence):
        raise ConfigError(
            f"{study.name}: {post_key}.names must be a list of the output file's columns, "
            f"e.g. [{', '.join(outputs)}], got {names!r}"
        )
    names = [str(name) for name in names]
    missing = [name for name in outputs if name not in names]
    if not missing:
        return  # columns that are not outputs (IGNORE, or any other name) are skipped
    strangers = [name for name in names if name not in outputs and name != IGNORE]
    hint = ""
    close = difflib.get_close_matches(missing[0], strangers, n=1)
    if close:
        hint = f"; did you mean {missing[0]!r} instead of {close[0]!r}?"
    elif strangers:
        these = "is not an output" if len(strangers) == 1 else "are not outputs"
        hint = f" ({', '.join(map(repr, strangers))} {these})"
    raise ConfigError(
        f"{study.name}: {post_key}.names: the output{'s' * (len(missing) > 1)} {', '.join(map(repr, missing))} "
        f"of the study {'is' if len(missing) == 1 else 'are'} not among the columns [{', '.join(names)}], "
        f"so no run would read {'it' if len(missing) == 1 else 'them'}{hint}; name each column after its output, "
        f"and a column to skip {IGNORE}"
    )


# --- 5. the input and output files -----------------------------------------------------------


def _own_files(study: StudyFile) -> dict[str, str]:
    """profit's own files of the study, by real path: what they are."""
    work = study.run_dir
    own = {study.path: f"the study file {study.name}"}
    for name, what in (
        (TABLE, "the study's state"),
        (META, "the study's record"),
        (LOCK, "the study's lock"),
        (RUNNER_LOG, "the runner's log"),
    ):
        own[os.path.join(work, name)] = f"{what} {name}"
    label, options = runner_options(study.run_config(), study.base_config())
    places: list[tuple[type, Mapping, str, str]] = []
    try:
        interface_class, interface_options = RunnerInterface.resolve(options["interface"], "run.interface")
        for option in interface_class.path_options:
            places.append((interface_class, interface_options, option, "interface file"))
    except (UnknownLabelError, ConfigError):
        pass  # the runner's option check names it
    try:
        runner_class, _ = Runner.resolve(label, "run.runner")
        parameters = inspect.signature(runner_class).parameters
        places += [(runner_class, options, "logfile", "runner's log")]
        if "path" in parameters and "custom" in parameters:  # a batch system's script (slurm)
            places += [(runner_class, options, "path", "batch script")]
    except UnknownLabelError:
        pass
    for cls, given, option, what in places:
        path = given.get(option, _default(cls, option, cls))
        if isinstance(path, str) and path:
            own.setdefault(os.path.join(work, path), f"the {what} {path}")
    return {os.path.realpath(path): what for path, what in own.items()}


def check_export_path(study: StudyFile, path: str) -> None:
    """Refuse to export over one of profit's own files of the study (its table, record, lock, log, ...).

    Args:
        study: The study file.
        path: Where the export goes.

    Raises:
        ConfigError: ``path`` is one of those files.
    """
    what = _own_files(study).get(os.path.realpath(path))
    if what is not None:
        raise ConfigError(f"cannot export to {path}: it is {what}, which profit keeps for itself; choose another file")


def _check_files(study: StudyFile) -> None:
    own = _own_files(study)
    for key, path in (("files.input", study.input_file), ("files.output", study.output_file)):
        what = own.get(os.path.realpath(path))
        if what is not None:
            raise ConfigError(
                f"{study.name}: {key}: {os.path.relpath(path, study.base_dir)} is {what} ({path}), "
                f"which profit keeps for itself; choose another file name, e.g. {key.split('.')[1]}.txt"
            )
    from .exports import states_file

    if os.path.realpath(study.input_file) == os.path.realpath(states_file(study.output_file)):
        raise ConfigError(
            f"{study.name}: files.input: {os.path.relpath(study.input_file, study.base_dir)} is where the states of "
            "files.output are written; give the inputs another file name, e.g. input.txt"
        )
    if os.path.realpath(study.input_file) == os.path.realpath(study.output_file):
        raise ConfigError(
            f"{study.name}: files.output: {os.path.relpath(study.output_file, study.base_dir)} is also files.input, "
            "so the outputs would overwrite the inputs; give each a file of its own, e.g. input.txt and output.txt"
        )
