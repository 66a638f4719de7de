"""A study: the ``profit.yaml`` file that says what to run, read and checked.

Keys users already write (proFit's)::

    ntrain: 100               # number of runs
    seed: 1                   # optional: reproducible sampling
    variables: {...}          # see profit.variables
    include: [custom.py]      # Python files with custom components
    files: {input: input.txt, output: output.txt}
    run_dir: .                # the work directory
    run:
      runner: fork            # or {class: fork, parallel: 4}
      interface: memmap
      worker: command         # default; with pre, post, command below
      pre: template           # or {class: template, path: template}
      post: numpytxt          # or {class: json, path: out.json}
      command: ./simulation
      timeout: 600            # seconds a run may take (default: no limit)
      retries: 2              # run a failed run again, at most this often
      debug: false

Paths are relative to the directory of the study file. Sections that proFit
studies carry for other tasks (``fit``, ``active_learning``, ``ui``) are
accepted and ignored with a notice. Any mistake is one :class:`ConfigError`
sentence that names the file and the key.

A hostile or absurd file costs bounded memory and time: the file is at most
:data:`MAX_FILE_BYTES`, nested at most :data:`MAX_DEPTH` levels, its aliases
expand to at most :data:`MAX_ALIAS_NODES` values (no "billion laughs"), a key
given twice is refused (YAML would keep the last silently), and ``ntrain`` is
checked against the free disk and memory before anything is allocated.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
from collections.abc import Mapping

from .datafiles import check_format
from .run import options as check
from .run.errors import ConfigError
from .run.options import shown
from .variables import Variable, input_config, output_config, parse_variables

STUDY_FILE = "profit.yaml"
# Bounds on what reading a study file may cost (real study files are a few hundred bytes and nodes).
MAX_FILE_BYTES = 1 << 20
MAX_DEPTH = 64
MAX_ALIAS_NODES = 10_000
# What a run costs the study table besides its inputs and outputs (state, reason, times: profit.store).
ROW_BOOKKEEPING_BYTES = 300
KEYS = {"ntrain", "seed", "variables", "include", "files", "run_dir", "run"}
IGNORED_KEYS = {"fit", "active_learning", "ui"}
# Keys proFit accepts that name what this program already knows (the study file itself): noted, not used.
NOTED_KEYS = {"config_file", "base_dir"}
RUN_KEYS = {
    "runner",
    "interface",
    "worker",
    "pre",
    "post",
    "command",
    "debug",
    "include",
    "timeout",
    "retries",
    "clean",  # proFit's: remove a run's directory after it succeeded (the template preprocessor's option)
}
FILE_KEYS = {"input", "output"}


def _unknown(key: str, known: set[str], where: str, section: str = "") -> ConfigError:
    close = difflib.get_close_matches(str(key), sorted(known), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    place = f"{section}.{key}" if section else str(key)
    return ConfigError(f"{where}: unknown key {shown(place)}{hint} (known keys: {', '.join(sorted(known))})")


def _cut(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _loader_class() -> type:
    """A YAML SafeLoader that bounds depth and alias expansion and refuses keys given twice.

    Its errors are YAML errors with a mark (the line), which :meth:`StudyFile.load` turns into one sentence.
    """
    import yaml
    from yaml.composer import ComposerError
    from yaml.constructor import ConstructorError
    from yaml.events import AliasEvent
    from yaml.nodes import MappingNode, ScalarNode, SequenceNode

    class StudyLoader(yaml.SafeLoader):
        def __init__(self, stream: str):
            super().__init__(stream)
            self._depth = 0
            self._distinct = 0  # nodes written out in the file
            self._expanded: dict[int, int] = {}  # id(node) -> values it stands for, aliases expanded
            self._key: str | None = None  # the top-level key being read

        def _in(self) -> str:
            return f" (under {shown(self._key)})" if self._key is not None else ""

        def compose_node(self, parent, index):
            if self._depth == 1 and isinstance(index, ScalarNode):
                self._key = index.value
            self._depth += 1
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise ComposerError(None, None, f"nested more than {MAX_DEPTH} levels deep{self._in()}", mark)
            alias = self.check_event(AliasEvent)
            try:
                node = super().compose_node(parent, index)
            finally:
                self._depth -= 1
            if alias:
                if id(node) not in self._expanded:  # the node it names is still being read: it holds itself
                    raise ComposerError(
                        None, None, f"an alias refers to the value it is part of{self._in()}", node.start_mark
                    )
                return node
            if isinstance(node, SequenceNode):
                children = node.value
            elif isinstance(node, MappingNode):
                children = [child for pair in node.value for child in pair]
            else:
                children = []
            size = 1
            for child in children:
                size += self._expanded[id(child)]
            self._distinct += 1
            self._expanded[id(node)] = size
            if size - self._distinct > MAX_ALIAS_NODES:
                raise ComposerError(
                    None,
                    None,
                    f"its aliases (*name) expand to more than {MAX_ALIAS_NODES} values{self._in()}; "
                    "write the values out",
                    node.start_mark,
                )
            return node

        def construct_mapping(self, node, deep=False):
            if isinstance(node, MappingNode):
                seen: dict[object, int] = {}
                for key_node, _ in node.value:
                    if not isinstance(key_node, ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                        continue
                    key = self.construct_object(key_node)
                    try:
                        first = seen.setdefault(key, key_node.start_mark.line)
                    except TypeError:  # unhashable: the constructor says so
                        continue
                    if first != key_node.start_mark.line:
                        raise ConstructorError(
                            None,
                            None,
                            f"key {shown(key)} is given twice (first on line {first + 1}); keep one",
                            key_node.start_mark,
                        )
            return super().construct_mapping(node, deep=deep)

        def construct_object(self, node, deep=False):
            try:
                return super().construct_object(node, deep=deep)
            except yaml.YAMLError:
                raise
            except (ValueError, OverflowError, TypeError) as error:  # e.g. an integer of 5000 digits, a 13th month
                raise ConstructorError(
                    None, None, f"cannot read the value: {_cut(str(error), 100)}", node.start_mark
                ) from None

    return StudyLoader


def _free_bytes(directory: str) -> tuple[int | None, str]:
    """Bytes free on the file system of ``directory`` (its nearest existing ancestor), and that ancestor."""
    existing = os.path.abspath(directory)
    while not os.path.isdir(existing) and os.path.dirname(existing) != existing:
        existing = os.path.dirname(existing)
    try:
        stats = os.statvfs(existing)
    except (OSError, AttributeError):
        return None, existing
    return stats.f_bavail * stats.f_frsize, existing


def _available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux: MemAvailable), or None where unknown."""
    try:
        with open("/proc/meminfo") as file:
            for line in file:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _size_text(count: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB", "TB", "PB"):
        if count < 1000 or unit == "PB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.3g} {unit}"
        count /= 1000
    return f"{count:.3g} PB"  # (not reached)


def _python_study(path: str, name: str) -> dict:
    """A study written as Python (proFit reads ``.py`` study files too): its public global names."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("profit_study_file", path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{name}: cannot be read as Python")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # the user's code: one sentence, as for an include file
        raise ConfigError(f"{name} failed to run: {type(error).__name__}: {_cut(str(error))}") from None
    config = {key: value for key, value in vars(module).items() if not key.startswith("_")}
    config = {key: value for key, value in config.items() if not callable(value) and not hasattr(value, "__spec__")}
    for key in [key for key in config if key in IGNORED_KEYS | NOTED_KEYS]:
        config.pop(key)
    unknown = sorted(key for key in config if key not in KEYS)
    if unknown:
        raise _unknown(unknown[0], KEYS, name)
    return config


def find_study_file(path: str) -> str:
    """``path`` itself if it is a file, else ``path/profit.yaml``.

    Args:
        path: A study file or a directory holding one.

    Raises:
        ConfigError: There is no study file there.
    """
    candidate = path if os.path.isfile(path) else os.path.join(path, STUDY_FILE)
    if not os.path.isfile(candidate):
        raise ConfigError(
            f"no study file at {candidate}; give a directory holding {STUDY_FILE} or the YAML file itself"
        )
    return os.path.abspath(candidate)


class StudyFile:
    """A checked study file (``profit.yaml``). Build it with :meth:`load`.

    Args:
        path: The file.
        config: What it holds (read as YAML).
        notices: Notices about it, for its user.

    Raises:
        ConfigError: A value in the file is invalid.
    """

    def __init__(self, path: str, config: dict, notices: list[str]):
        self.path = path
        self.name = os.path.basename(path)
        self.base_dir = os.path.dirname(path)
        self.config = config
        self.notices = notices
        where = self.name

        seed = config.get("seed")
        self.seed: int | None = None if seed is None else check.whole_number(seed, f"{where}: seed")
        self.variables: dict[str, Variable] = parse_variables(config.get("variables"), where)
        given = [name for name, variable in self.variables.items() if variable.kind == "Input"]
        self.ntrain: int = check.whole_number(
            config.get("ntrain", 0 if given else 10), f"{where}: ntrain", hint=" (runs to sample)"
        )
        if given and self.ntrain:
            raise ConfigError(
                f"{where}: ntrain is {self.ntrain}, but the inputs {', '.join(given)} are Input (their values come "
                "from tables: profit run --inputs FILE); set ntrain to 0 or give them a kind such as Uniform(0, 1)"
            )

        files = config.get("files", {})
        if not isinstance(files, Mapping):
            raise ConfigError(f"{where}: 'files' must map input/output to file names, e.g. {{output: output.txt}}")
        for key in files:
            if key not in FILE_KEYS:
                raise _unknown(key, FILE_KEYS, where, "files")
        self.input_file = self._path(files.get("input", "input.txt"), "files.input")
        self.output_file = self._path(files.get("output", "output.txt"), "files.output")
        check_format(self.input_file, "input", where)
        check_format(self.output_file, "output", where)
        self.run_dir = self._path(config.get("run_dir", "."), "run_dir")
        self._check_size()

        run = config.get("run", {})
        if run is None:
            run = {}
        if not isinstance(run, Mapping):
            raise ConfigError(f"{where}: 'run' must be a mapping with runner, interface, worker, ...")
        for key in run:
            if key not in RUN_KEYS:
                raise _unknown(key, RUN_KEYS, where, "run")
        for key in ("runner", "interface", "worker", "pre", "post"):
            if key in run and not isinstance(run[key], (str, Mapping)):
                raise ConfigError(
                    f"{where}: run.{key} must be a label or a mapping with 'class', got {shown(run[key])}"
                )
            if isinstance(run.get(key), Mapping) and "class" not in run[key]:
                raise ConfigError(f"{where}: run.{key} needs a 'class' (a label), e.g. {{class: ...}}")
        if "command" in run and (not isinstance(run["command"], str) or not run["command"].strip()):
            raise ConfigError(f"{where}: run.command must be a shell command (a string), got {shown(run['command'])}")
        if "command" in run and "worker" in run:
            worker = run["worker"] if isinstance(run["worker"], str) else run["worker"]["class"]
            if worker != "command":
                raise ConfigError(f"{where}: run.command is for the command worker, but run.worker is {shown(worker)}")
        self.run: dict = dict(run)
        includes = config.get("include", run.get("include", []))
        includes = [includes] if isinstance(includes, str) else includes
        if not isinstance(includes, list) or not all(isinstance(item, str) for item in includes):
            raise ConfigError(f"{where}: 'include' must be a file name or a list of file names")
        self.includes = [self._path(item, "include") for item in includes]

    def _path(self, value: object, key: str) -> str:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{self.name}: {key} must be a path, got {shown(value)}")
        if "\0" in value:
            raise ConfigError(f"{self.name}: {key} must be a path, got {shown(value)} (it holds a NUL character)")
        return os.path.normpath(os.path.join(self.base_dir, value))

    def _check_size(self) -> None:
        """Refuse an ``ntrain`` whose study table cannot fit the free disk, or whose inputs cannot be
        sampled in the available memory: one sentence now, not a MemoryError or a full disk later."""
        if not self.ntrain:
            return
        inputs = sum(v.dtype.itemsize for v in self.variables.values() if v.is_input)
        outputs = sum(entry["dtype"](0).itemsize * entry["size"][1] for entry in self.output_config.values())
        table = self.ntrain * (inputs + outputs + ROW_BOOKKEEPING_BYTES)
        free, where = _free_bytes(self.run_dir)
        if free is not None:
            from .store import TABLE

            try:  # a study run before: its table takes the place of the new one
                free += os.path.getsize(os.path.join(self.run_dir, TABLE))
            except OSError:
                pass
        if free is not None and table > free:
            raise ConfigError(
                f"{self.name}: ntrain {self.ntrain} needs about {_size_text(table)} for the study table, but only "
                f"{_size_text(free)} are free in {where}; lower ntrain or free some space"
            )
        # Sampling holds every input row in memory, with one column of draws besides.
        memory = self.ntrain * (inputs + 8)
        available = _available_memory()
        if available is not None and memory > available:
            raise ConfigError(
                f"{self.name}: ntrain {self.ntrain} needs about {_size_text(memory)} of memory to sample its inputs, "
                f"but only {_size_text(available)} are available; lower ntrain"
            )

    @classmethod
    def load(cls, path: str) -> StudyFile:
        """Read and check the study file at ``path`` (a file or a directory holding profit.yaml).

        Args:
            path: A study file or a directory holding one.

        Raises:
            ConfigError: The file cannot be read, is too large, is not valid YAML or its values are invalid.
        """
        import yaml

        path = find_study_file(path)
        name = os.path.basename(path)
        try:
            with open(path, "rb") as file:
                data = file.read(MAX_FILE_BYTES + 1)
        except OSError as error:
            raise ConfigError(f"{name}: cannot be read: {_cut(str(error))}") from None
        if len(data) > MAX_FILE_BYTES:
            raise ConfigError(
                f"{name} is larger than {MAX_FILE_BYTES // 1024} kB; a study file says what to run, "
                "it does not hold data"
            )
        if path.endswith(".py"):
            return cls(path, _python_study(path, name), [])
        try:
            loader = _loader_class()(data.decode("utf-8"))
            try:
                config = loader.get_single_data()
            finally:
                loader.dispose()
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            line = f" line {mark.line + 1}" if mark is not None else ""
            problem = getattr(error, "problem", None) or str(error).splitlines()[0]
            context, start = getattr(error, "context", None), getattr(error, "context_mark", None)
            if context and start is not None and (mark is None or start.line != mark.line):
                problem += f" ({context} that starts on line {start.line + 1})"
            raise ConfigError(f"{name}{line}: not valid YAML: {_cut(problem)}") from None
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"{name}: cannot be read: {_cut(str(error))}") from None
        except (RecursionError, MemoryError, ValueError, OverflowError, TypeError) as error:
            # (bounded above; a last guard, so that no file makes an internal error)
            raise ConfigError(f"{name}: not valid YAML: {type(error).__name__}: {_cut(str(error))}") from None
        if config is None:
            config = {}
        if not isinstance(config, dict):
            raise ConfigError(
                f"{name}: must be a mapping of keys such as ntrain, variables, run, got {type(config).__name__}"
            )
        notices = []
        for key in list(config):
            if key in IGNORED_KEYS:
                notices.append(f"{name}: section {key!r} is for other proFit tasks; ignored by profit run")
                config.pop(key)
            elif key in NOTED_KEYS:
                notices.append(f"{name}: {key!r} has no effect here (the study is {name} in its own directory)")
                config.pop(key)
            elif key not in KEYS:
                raise _unknown(key, KEYS | IGNORED_KEYS | NOTED_KEYS, name)
        return cls(path, config, notices)

    # --- what the runner needs -------------------------------------------------------------

    @property
    def input_config(self) -> dict:
        """The interface's input config of this study."""
        return input_config(self.variables)

    @property
    def output_config(self) -> dict:
        """The interface's output config of this study."""
        return output_config(self.variables)

    def run_config(self) -> dict:
        """The ``run:`` section with its defaults (runner fork, interface memmap, worker command)."""
        run = {key: value for key, value in self.run.items() if key not in ("include", "timeout", "retries", "clean")}
        run.setdefault("runner", "fork")
        run.setdefault("interface", "memmap")
        if "clean" in self.run:  # proFit's run.clean: the preprocessor's option
            pre = run.get("pre", "template")
            run["pre"] = {**({"class": pre} if isinstance(pre, str) else pre), "clean": self.run["clean"]}
        # timeout and retries may stand directly under run: they are runner options
        options = {key: self.run[key] for key in ("timeout", "retries") if key in self.run}
        if options:
            runner = run["runner"]
            run["runner"] = {**({"class": runner} if isinstance(runner, str) else runner), **options}
        return run

    def base_config(self) -> dict:
        """What :meth:`Runner.from_config` needs besides the ``run:`` section."""
        return {
            "ntrain": self.ntrain,
            "input": self.input_config,
            "output": self.output_config,
            "run_dir": self.run_dir,
            "base_dir": self.base_dir,
        }

    def definition(self) -> dict[str, str]:
        """What the rows of the study mean: each variable's kind, parameters and dtype
        (not ``ntrain``: a study may grow)."""
        return {name: f"{variable!r} ({variable.dtype})" for name, variable in self.variables.items()}

    def fingerprint(self) -> str:
        """A short digest of :meth:`definition` and the seed."""
        definition = {"seed": self.seed, "variables": self.definition()}
        return hashlib.sha256(json.dumps(definition, sort_keys=True).encode()).hexdigest()[:16]
