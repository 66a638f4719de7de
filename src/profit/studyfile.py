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
from .variables import Variable, input_config, output_config, parse_variables

STUDY_FILE = "profit.yaml"
KEYS = {"ntrain", "seed", "variables", "include", "files", "run_dir", "run"}
IGNORED_KEYS = {"fit", "active_learning", "ui"}
RUN_KEYS = {"runner", "interface", "worker", "pre", "post", "command", "debug", "include", "timeout", "retries"}
FILE_KEYS = {"input", "output"}


def _unknown(key: str, known: set[str], where: str, section: str = "") -> ConfigError:
    close = difflib.get_close_matches(str(key), sorted(known), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    place = f"{section}.{key}" if section else str(key)
    return ConfigError(f"{where}: unknown key {place!r}{hint} (known keys: {', '.join(sorted(known))})")


def find_study_file(path: str) -> str:
    """``path`` itself if it is a file, else ``path/profit.yaml``."""
    candidate = path if os.path.isfile(path) else os.path.join(path, STUDY_FILE)
    if not os.path.isfile(candidate):
        raise ConfigError(
            f"no study file at {candidate}; give a directory holding {STUDY_FILE} or the YAML file itself"
        )
    return os.path.abspath(candidate)


class StudyFile:
    """A checked study file (``profit.yaml``). Build it with :meth:`load`."""

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
                raise ConfigError(f"{where}: run.{key} must be a label or a mapping with 'class', got {run[key]!r}")
            if isinstance(run.get(key), Mapping) and "class" not in run[key]:
                raise ConfigError(f"{where}: run.{key} needs a 'class' (a label), e.g. {{class: ...}}")
        if "command" in run and (not isinstance(run["command"], str) or not run["command"].strip()):
            raise ConfigError(f"{where}: run.command must be a shell command (a string), got {run['command']!r}")
        if "command" in run and "worker" in run:
            worker = run["worker"] if isinstance(run["worker"], str) else run["worker"]["class"]
            if worker != "command":
                raise ConfigError(f"{where}: run.command is for the command worker, but run.worker is {worker!r}")
        self.run: dict = dict(run)
        includes = config.get("include", run.get("include", []))
        includes = [includes] if isinstance(includes, str) else includes
        if not isinstance(includes, list) or not all(isinstance(item, str) for item in includes):
            raise ConfigError(f"{where}: 'include' must be a file name or a list of file names")
        self.includes = [self._path(item, "include") for item in includes]

    def _path(self, value: object, key: str) -> str:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{self.name}: {key} must be a path, got {value!r}")
        return os.path.normpath(os.path.join(self.base_dir, value))

    @classmethod
    def load(cls, path: str) -> StudyFile:
        """Read and check the study file at ``path`` (a file or a directory holding profit.yaml)."""
        import yaml

        path = find_study_file(path)
        name = os.path.basename(path)
        try:
            with open(path, encoding="utf-8") as file:
                config = yaml.safe_load(file)
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            line = f" line {mark.line + 1}" if mark is not None else ""
            problem = getattr(error, "problem", None) or str(error).splitlines()[0]
            context, start = getattr(error, "context", None), getattr(error, "context_mark", None)
            if context and start is not None and (mark is None or start.line != mark.line):
                problem += f" ({context} that starts on line {start.line + 1})"
            raise ConfigError(f"{name}{line}: not valid YAML: {problem}") from None
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"{name}: cannot be read: {error}") from None
        if config is None:
            config = {}
        if not isinstance(config, dict):
            raise ConfigError(f"{name}: must be a mapping of keys such as ntrain, variables, run")
        notices = []
        for key in list(config):
            if key in IGNORED_KEYS:
                notices.append(f"{name}: section {key!r} is for other proFit tasks; ignored by profit run")
                config.pop(key)
            elif key not in KEYS:
                raise _unknown(key, KEYS | IGNORED_KEYS, name)
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
        run = {key: value for key, value in self.run.items() if key not in ("include", "timeout", "retries")}
        run.setdefault("runner", "fork")
        run.setdefault("interface", "memmap")
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
