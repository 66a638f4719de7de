"""Command Worker: run an external simulation program for each run.

* :class:`CommandWorker` (label ``command``): prepare a run directory, run the
  command there through the shell, read its results.
* :class:`Preprocessor`: prepares the run directory;
  :class:`TemplatePreprocessor` (label ``template``) fills it from a template.
* :class:`Postprocessor`: reads the results into the output record; labels
  ``numpytxt``, ``json`` and ``hdf5``.

Inside a worker process (never in the runner) the run directory becomes the
working directory while the run is prepared, computed and read, as custom
processors written for proFit expect. Input values reach the simulation only
through files; the command line is never templated.

A run fails, with a reason naming the file and field, when the command exits
non-zero (its exit code and the last lines of its stderr) or when its output
cannot be read. The run directory is then kept, and its path is in the reason.
"""

from __future__ import annotations

import os
import re
import time
from abc import abstractmethod
from collections.abc import Callable, Mapping

from ._files import tail as file_tail
from ._lazy import LazyModule, logging
from ._lazy import numpy as np
from .errors import CommandError, ConfigError, OutputError
from .layout import run_dir_name, study_base_dir
from .registry import Component
from .worker import Worker

TYPE_CHECKING = False  # (typing costs every worker process its import)
if TYPE_CHECKING:
    import shutil

    from .worker import Record
else:
    # shutil imports compression modules: only command workers that copy templates pay for it.
    shutil = LazyModule("shutil")

_STDERR_TAIL_LINES = 5


# === Command Worker === #


class CommandWorker(Worker, label="command"):
    """Run an executable simulation: pre → command → post.

    Args:
        run_id: the run's id (its row in the interface).
        pre: Preprocessor (label, config mapping or instance); default ``template``.
        post: Postprocessor (label, config mapping or instance); default ``numpytxt``.
        command: the shell command, run in the run directory.
        stdout: file (in the run directory) that receives the command's stdout; None: inherit.
        stderr: file for its stderr; None: kept for the failure message (and the run's log).
        base_dir: where relative paths of the study (the template) start, also given to the
            command as ``PROFIT_BASE_DIR``; default: ``PROFIT_BASE_DIR`` of the environment,
            else the current directory (runners fill it in with theirs).
        **kwargs: passed to :class:`~profit.run.worker.Worker`.

    Raises:
        ConfigError: ``command`` is empty (or ``pre`` or ``post`` is not valid).
    """

    passes_kwargs_on = True  # **kwargs are the base class's options (checked against its signature)

    uses_base_dir = True

    def __init__(
        self,
        run_id: int,
        *,
        pre="template",
        post="numpytxt",
        command="./simulation",
        stdout="stdout",
        stderr=None,
        base_dir: str | None = None,
        **kwargs,
    ):
        super().__init__(run_id, **kwargs)
        self.run_dir = run_dir_name(run_id)
        self.base_dir = study_base_dir(base_dir)
        parent = self.__dict__.get("_logger")
        if isinstance(pre, Preprocessor):
            self.pre = pre
        else:
            pre_kind, options = Preprocessor.resolve(pre, "pre")
            if pre_kind.uses_base_dir:
                options.setdefault("base_dir", self.base_dir)
            self.pre = pre_kind(self.run_dir, **options, logger_parent=parent)
        if isinstance(post, Postprocessor):
            self.post = post
        else:
            post_kind, options = Postprocessor.resolve(post, "post")
            self.post = post_kind(**options, logger_parent=parent)
        if not isinstance(command, str) or not command.strip():
            raise ConfigError(f"command must be a non-empty shell command, got {command!r}")
        self.command = command
        self.stdout = stdout
        self.stderr = stderr

    def work(self) -> None:
        """Prepare the run directory, run the command there, read and transmit its results."""
        self.interface.retrieve()
        try:
            self.pre.prepare(self.interface.input)
            started = time.perf_counter()
            self.run_command()
            self.interface.time = time.perf_counter() - started
            self.post.retrieve(self.interface.output)
        except BaseException as error:
            # Keep what the failed run left for inspection, and say where it is.
            self.pre.remove_run_dir = False
            # (error.add_note from Python 3.11 on; the list works on 3.10 too)
            notes = [*getattr(error, "__notes__", ()), f"run directory kept: {os.getcwd()}"]
            error.__notes__ = notes  # type: ignore[attr-defined]  # (typeshed knows __notes__ from 3.11 on)
            self.pre.post()
            raise
        self.interface.transmit()
        self.pre.post()

    def _environment(self) -> dict[str, str] | None:
        """The command's environment: this process's (None), with ``PROFIT_BASE_DIR`` set to
        ``base_dir`` for simulations that read their study's files (runners set it already)."""
        if os.environ.get("PROFIT_BASE_DIR") == self.base_dir:
            return None
        return {**os.environ, "PROFIT_BASE_DIR": self.base_dir}

    def run_command(self) -> None:
        """Run the command through the shell in the current (run) directory.

        Raises:
            CommandError: The command failed (a non-zero exit status).
        """
        import subprocess
        import tempfile

        stdout = open(self.stdout, "wb") if self.stdout is not None else None
        # Without a stderr file, keep stderr in a temporary file: bounded memory, tail for the reason.
        stderr = open(self.stderr, "w+b") if self.stderr is not None else tempfile.TemporaryFile()
        try:
            self.logger.debug("run %r in %s", self.command, os.getcwd())
            # No stdin: a simulation waiting for input would wait forever in a background group.
            returncode = subprocess.run(
                self.command,
                shell=True,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                env=self._environment(),
            ).returncode
            if returncode != 0:
                from ._proc import ExitStatus

                described = ExitStatus.from_returncode(returncode).describe(through_shell=True)
                tail = file_tail(stderr, _STDERR_TAIL_LINES)
                raise CommandError(f"command {self.command!r} {described}" + (f"; stderr ends: {tail}" if tail else ""))
        finally:
            stderr.close()
            if stdout is not None:
                stdout.close()


# === Preprocessor Component === #


class Preprocessor(Component, registry=True):
    """Prepare the run directory of one run.

    ``prepare(data)`` creates ``run_dir`` and makes it the working directory
    (of the worker process); ``post()`` returns to the previous directory and
    removes the run directory when ``clean``.

    Args:
        run_dir: The run directory.
        clean: Remove the run directory in ``post()``.
        logger_parent: The logger whose child the processor's logger is (else ``profit.run.preprocessor``).
    """

    # True for variants with a ``base_dir`` option (where relative paths start), which the
    # command worker then passes on.
    uses_base_dir = False

    def __init__(self, run_dir: str, *, clean: bool = True, logger_parent: logging.Logger | None = None):
        self.run_dir = run_dir
        self.remove_run_dir = bool(clean)
        self._logger_parent = logger_parent
        self.return_dir: str | None = None

    @property
    def clean(self) -> bool:
        """Whether :meth:`post` removes the run directory (proFit's name of ``remove_run_dir``)."""
        return self.remove_run_dir

    @clean.setter
    def clean(self, value: bool) -> None:
        self.remove_run_dir = bool(value)

    def _remove_stale_run_dir(self) -> None:
        if os.path.lexists(self.run_dir):
            # Left by an earlier attempt of this run (a crash, a retry): start afresh.
            self.logger.warning("replacing the run directory %s left by an earlier attempt", self.run_dir)
            if os.path.isdir(self.run_dir) and not os.path.islink(self.run_dir):
                shutil.rmtree(self.run_dir)
            else:
                os.remove(self.run_dir)

    def _enter_fresh_run_dir(self) -> None:
        self._remove_stale_run_dir()
        os.makedirs(self.run_dir)
        self._enter()

    def _enter(self) -> None:
        self.return_dir = os.getcwd()
        os.chdir(self.run_dir)

    @abstractmethod
    def prepare(self, data: Record | Mapping) -> None:
        """Create the run directory and enter it (variants then fill it).

        Args:
            data: The run's input record (or a mapping of name -> value).
        """
        self._enter_fresh_run_dir()

    def post(self) -> None:
        """Leave the run directory; remove it if ``clean``."""
        if self.return_dir is None:
            return
        os.chdir(self.return_dir)
        self.return_dir = None
        if self.remove_run_dir:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    @classmethod
    def wrap(cls, label: str, config: Mapping = {}) -> Callable[[Callable], type[Preprocessor]]:
        """Register ``f(self, data)`` as a Preprocessor; its options (and defaults) are ``config``.

        The run directory exists and is the working directory when ``f`` runs.

        Args:
            label: The label it is registered under.
            config: Its options and their defaults.

        Returns:
            A decorator that makes ``f`` a Preprocessor class.
        """

        def prepare(self, data):
            self._enter_fresh_run_dir()
            self.function(self, data)

        return _wrap_processor(cls, label, config, "prepare", prepare)


def _wrap_processor(base: type, label: str, config: Mapping, method: str, body: Callable):
    """Build a registered subclass of ``base`` whose ``method`` is ``body`` around the wrapped function."""
    defaults = dict(config)

    def decorator(func: Callable) -> type:
        def __init__(self, *args, logger_parent=None, **options):
            unknown = [key for key in options if key not in defaults and key != "clean"]
            if unknown:
                raise ConfigError(
                    f"{base.__name__.lower()} {label!r} has no option {', '.join(map(repr, unknown))}; "
                    f"its options are {', '.join(map(repr, defaults)) or 'none'}"
                )
            base_options = {"clean": options.pop("clean")} if "clean" in options else {}
            base.__init__(self, *args, **base_options, logger_parent=logger_parent)
            for key, value in {**defaults, **options}.items():
                setattr(self, key, value)

        namespace = {
            "__doc__": func.__doc__,
            "__module__": func.__module__,
            "__qualname__": f"Wrapped[{func.__qualname__}]",
            "__init__": __init__,
            "checks_own_options": True,  # its options are those of `config`, checked in __init__
            "function": staticmethod(func),
            method: body,
        }
        return type(base)(f"Wrapped[{func.__name__}]", (base,), namespace, label=label)

    return decorator


# --- Template Preprocessor --- #


class TemplatePreprocessor(Preprocessor, label="template"):
    """Fill the run directory from a template directory.

    * copies the template (``path``, relative to the study's base directory,
      ``base_dir``; default ``template``, used only if it exists) into the run directory; relative symbolic links become
      absolute ones, pointing where they pointed in the template;
    * replaces ``{name}`` by the value of input ``name`` in every regular text
      file, or only in ``param_files``; a file that contains ``{{`` uses
      ``{{name}}`` instead, so that its single braces (JSON) survive;
      ``{name:.3f}`` applies a format; placeholders that are not inputs stay;
    * floats are written so that they read back exactly (``repr``);
    * binary and non-UTF-8 files are copied unchanged.

    Args:
        run_dir: The run directory.
        clean: Remove the run directory in ``post()``.
        path: The template directory, relative to ``base_dir`` (default ``template``, used only if it exists).
        param_files: The files to fill in (one or a list; default: every regular text file).
        base_dir: The study's base directory, where a relative ``path`` starts.
        logger_parent: The logger whose child the processor's logger is.
    """

    def __init__(
        self,
        run_dir: str,
        *,
        clean: bool = True,
        path: str | None = None,
        param_files: str | list[str] | None = None,
        base_dir: str | None = None,
        logger_parent: logging.Logger | None = None,
    ):
        super().__init__(run_dir, clean=clean, logger_parent=logger_parent)
        # Without a path, the directory "template" is used if it exists; a study whose
        # command needs nothing from a template (echo 1) runs in an empty run directory.
        self.template_required = path is not None
        self.path = path if path is not None else "template"
        self.param_files = [param_files] if isinstance(param_files, str) else param_files
        # Where a relative path starts: given by the command worker (the study's directory).
        self.base_dir = study_base_dir(base_dir)

    uses_base_dir = True

    @property
    def template_path(self) -> str:
        """The template directory: ``path`` relative to the study's base directory (``base_dir``)."""
        return os.path.join(self.base_dir, self.path)

    def prepare(self, data: Record | Mapping) -> None:
        """Copy the template to the run directory, fill in the inputs, and enter it.

        Args:
            data: The run's input record (or a mapping of name -> value).

        Raises:
            ConfigError: A ``path`` was given and the template directory does not exist.
        """
        template = os.path.abspath(self.template_path)
        if not os.path.isdir(template) and not self.template_required:
            self._enter_fresh_run_dir()
            return
        if not os.path.isdir(template):
            raise ConfigError(
                f"template directory {template} does not exist (path {self.path!r} is relative to the study "
                "directory); create it or set the template preprocessor's 'path'"
            )
        self._remove_stale_run_dir()
        copy_template(template, self.run_dir)
        values = {name: data[name] for name in field_names(data)}
        fill_templates(self.run_dir, values, self.param_files)
        self._enter()


def copy_template(template: str, run_dir: str) -> None:
    """Copy ``template`` to ``run_dir``, turning relative symlinks into absolute ones.

    Args:
        template: The template directory.
        run_dir: The run directory (made here).
    """
    shutil.copytree(template, run_dir, symlinks=True)
    for root, dirs, files in os.walk(run_dir):
        for name in dirs + files:
            link = os.path.join(root, name)
            if os.path.islink(link):
                target = os.readlink(link)
                if not os.path.isabs(target):
                    in_template = os.path.join(template, os.path.relpath(root, run_dir))
                    os.remove(link)
                    os.symlink(os.path.normpath(os.path.join(in_template, target)), link)


def format_value(value: object, spec: str = "") -> str:
    """Write an input value into a file: floats so that they read back exactly.

    Args:
        value: The input value.
        spec: A format spec (``.3f``), as a placeholder ``{name:.3f}`` gives it.
    """
    if hasattr(value, "item"):  # a numpy scalar
        value = value.item()
    if spec:
        return format(value, spec)
    return repr(value) if isinstance(value, float) else str(value)


def substitute(text: str, values: Mapping[str, object]) -> str:
    """Replace the placeholders of inputs in ``text`` (``{{name}}`` if the text contains ``{{``).

    Args:
        text: The text of a file.
        values: The inputs: name -> value.
    """
    if not values:
        return text
    names = "|".join(re.escape(name) for name in sorted(values, key=len, reverse=True))
    if "{{" in text:
        # (spaces inside the double braces are layout, also after a format: {{ v:.6e }})
        pattern = re.compile(r"\{\{\s*(" + names + r")\s*(?::([^{}]*?))?\s*\}\}")
    else:
        pattern = re.compile(r"\{(" + names + r")(?::([^{}]*))?\}")
    return pattern.sub(lambda match: format_value(values[match.group(1)], match.group(2) or ""), text)


def fill_templates(run_dir: str, values: Mapping[str, object], param_files: list[str] | None = None) -> None:
    """Substitute ``values`` in the regular text files of ``run_dir`` (or only ``param_files``).

    Args:
        run_dir: The run directory.
        values: The inputs: name -> value.
        param_files: The files to fill in (default: every regular text file).
    """
    for root, _, files in os.walk(run_dir):
        for name in files:
            path = os.path.join(root, name)
            relative = os.path.relpath(path, run_dir)
            if param_files is not None and name not in param_files and relative not in param_files:
                continue
            if os.path.islink(path):
                if param_files is None:
                    continue  # a linked file is shared, not a copy: leave it alone
                target = os.path.realpath(path)  # named explicitly: substitute a copy
                os.remove(path)
                shutil.copy2(target, path)
            with open(path, "rb") as file:
                raw = file.read()
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                continue  # binary or another encoding: copied unchanged
            if "\0" in text:
                continue
            filled = substitute(text, values)
            if filled != text:
                with open(path, "w", encoding="utf-8", newline="") as file:
                    file.write(filled)


# === Postprocessor Component === #


class Postprocessor(Component, registry=True):
    """Read a run's results into its output record (``retrieve(data)``).

    Args:
        logger_parent: The logger whose child the processor's logger is (else ``profit.run.postprocessor``).
    """

    def __init__(self, *, logger_parent: logging.Logger | None = None):
        self._logger_parent = logger_parent

    @abstractmethod
    def retrieve(self, data: Record | Mapping) -> None:
        """Fill the output record ``data`` from the files the simulation wrote.

        Args:
            data: The run's output record (or a mapping of name -> value).
        """

    @classmethod
    def wrap(cls, label: str, config: Mapping = {}) -> Callable[[Callable], type[Postprocessor]]:
        """Register ``f(self, data)`` as a Postprocessor; its options (and defaults) are ``config``.

        Args:
            label: The label it is registered under.
            config: Its options and their defaults.

        Returns:
            A decorator that makes ``f`` a Postprocessor class.
        """

        def retrieve(self, data):
            """Call the registered function with this processor and the output record ``data``."""
            self.function(self, data)

        return _wrap_processor(cls, label, config, "retrieve", retrieve)


def field_names(data: object) -> tuple[str, ...]:
    """The names of a run's inputs or outputs in ``data``: a record's fields (numpy, StructRecord)
    or a mapping's keys (a plain ``{name: value}`` dict, as proFit's processors also take).

    Args:
        data: A record or a mapping.

    Raises:
        ConfigError: ``data`` is neither.
    """
    names = getattr(getattr(data, "dtype", None), "names", None)
    if names is not None:
        return tuple(names)
    if isinstance(data, Mapping):
        return tuple(data)
    raise ConfigError(
        f"a processor's data must be a record (with named fields) or a mapping of name -> value, "
        f"not {type(data).__name__}"
    )


def _output_file(path: str) -> str:
    if not os.path.exists(path):
        raise OutputError(f"output file {path!r} does not exist (the simulation did not write it)")
    return path


def _store(data, name: str, value: object, path: str) -> None:
    """Store one output value with a message naming the file and field if it does not fit."""
    try:
        data[name] = value
    except (ValueError, TypeError, OverflowError) as error:
        raise OutputError(f"output file {path!r}, field {name!r}: {error}") from None


# --- JSON Postprocessor --- #


@Postprocessor.wrap("json", config=dict(path="stdout"))
def JSONPostprocessor(self, data):
    """Read outputs from a JSON object: one key per output (a number, or a list for a vector)."""
    import json

    path = _output_file(self.path)
    try:
        with open(path, encoding="utf-8") as file:
            values = json.load(file)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise OutputError(f"output file {path!r} is not valid JSON: {error}") from None
    if not isinstance(values, Mapping):
        raise OutputError(f"output file {path!r} must hold a JSON object with one key per output")
    for name in field_names(data):
        if name not in values:
            raise OutputError(f"output file {path!r} has no field {name!r} (it has {', '.join(values) or 'none'})")
        _store(data, name, values[name], path)


# --- Numpy Text Postprocessor --- #


@Postprocessor.wrap("numpytxt", config=dict(path="stdout", names=None, options=dict(deletechars="")))
def NumpytxtPostprocessor(self, data):
    """Read outputs from one row of a text table (``numpy.genfromtxt``; ``options`` are passed on).

    ``names`` lists the file's columns in order (default: the outputs); a vector
    output spreads over as many consecutive columns as it has elements; names
    that are not outputs are skipped.
    """
    path = _output_file(self.path)
    names = list(self.names) if self.names is not None else list(field_names(data))
    widths = [_field_length(data, name) for name in names]
    options = dict(self.options or {})
    if os.path.isfile(path) and os.path.getsize(path) == 0:
        # (numpy would warn "Empty input file" on the terminal for every such run)
        raise OutputError(f"output file {path!r} is empty")
    try:
        table = np.atleast_1d(np.genfromtxt(path, dtype=float, **options))
        words = np.atleast_1d(np.genfromtxt(path, dtype=str, **options))
    except ValueError as error:
        raise OutputError(f"output file {path!r} could not be read as a table: {error}") from None
    if table.ndim > 1:
        if len(table) != 1:
            raise OutputError(f"output file {path!r} has {len(table)} rows; expected one row of values")
        table, words = table[0], words[0]
    if table.size == 0:
        raise OutputError(f"output file {path!r} is empty")
    if table.size != sum(widths):
        raise OutputError(
            f"output file {path!r} has {table.size} values; expected {sum(widths)} "
            f"(columns: {', '.join(f'{n}×{w}' if w > 1 else n for n, w in zip(names, widths))})"
        )
    column = 0
    for name, width in zip(names, widths):
        if name in field_names(data):  # other columns are skipped, whatever they hold
            values, texts = table[column : column + width], words[column : column + width]
            # genfromtxt reads unparsable text as NaN; only a written "nan" is one.
            bad = [str(text) for value, text in zip(values, texts) if np.isnan(value) and text.strip().lower() != "nan"]
            if bad:
                raise OutputError(f"output file {path!r}, field {name!r}: cannot read {bad[0]!r} as a number")
            _store(data, name, values if width > 1 else values[0], path)
        column += width


def _field_length(data, name: str) -> int:
    if name not in field_names(data):
        return 1
    value = data[name]
    return len(value) if hasattr(value, "__len__") and not isinstance(value, (str, bytes)) else 1


# --- HDF5 Postprocessor --- #


@Postprocessor.wrap("hdf5", config=dict(path="stdout"))
def HDF5Postprocessor(self, data):
    """Read outputs from an HDF5 file: one dataset per output (a one-element dataset is a scalar)."""
    try:
        import h5py  # type: ignore[import-untyped]  # (h5py has no type hints of its own)
    except ImportError:
        raise ConfigError("the hdf5 postprocessor needs h5py: pip install 'profit-run[hdf5]'") from None
    path = _output_file(self.path)
    try:
        file = h5py.File(path, "r")
    except OSError as error:
        raise OutputError(f"output file {path!r} is not a readable HDF5 file: {error}") from None
    with file:
        for name in field_names(data):
            if name not in file:
                raise OutputError(f"output file {path!r} has no dataset {name!r} (it has {', '.join(file) or 'none'})")
            value = np.asarray(file[name][()]).ravel()
            _store(data, name, value[0] if value.size == 1 and _field_length(data, name) == 1 else value, path)
