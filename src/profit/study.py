"""A study as one object: a set of runs on disk, made, grown, run, watched and exported.

    from profit import Study

    study = Study.load("my_study/")              # from its profit.yaml
    study.run()                                  # resumable: runs what has not run yet
    table = study.results()                      # one row per run, in run order
    frame = study.to_dataframe()                 # (pandas)
    study.extend(100)                            # 100 more sampled runs
    study.export("results.csv")

The study's runs live in one table in its work directory (see :mod:`profit.store`).
``profit run``, ``profit status``, ``profit export`` and ``profit clean`` are thin
commands over this class.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import datafiles
from .migrate import convert, is_old_study
from .parameter_sets import read_table, table_of
from .run._files import remove_stale_temporaries
from .run.errors import ConfigError, InterfaceError
from .run.interface import build_vars, decode_reason
from .run.layout import LEFTOVER_FILES, RUNNER_LOG, clean_work_dir
from .run.state import RunState
from .store import (
    LOCK,
    META,
    TABLE,
    Meta,
    StudyLock,
    StudyTable,
    count_states,
    end_process_groups,
    inputs_digest,
    marked_groups,
)
from .studyfile import STUDY_FILE, StudyFile
from .variables import new_seed, sample_inputs

STATE_NAMES = {state: str(state) for state in RunState}


@dataclass
class StudyStatus:
    """How far a study is: counts by state, failures, and whether a process is running it.

    Attributes:
        total: The study's runs.
        counts: The runs in each state.
        failures: ``(run id, reason)`` of each failed run.
        running_pid: The process that runs the study, if one does.
        started: When the last run of the study started (seconds since the epoch).
        finished: When it finished, if it has.
        finished_before: The runs that were finished when it started.
    """

    total: int
    counts: dict[RunState, int]
    failures: list[tuple[int, str]]
    running_pid: int | None = None
    started: float | None = None
    finished: float | None = None
    finished_before: int = 0

    @property
    def done(self) -> int:
        """Runs that are done."""
        return self.counts[RunState.DONE]

    @property
    def failed(self) -> int:
        """Runs that failed."""
        return self.counts[RunState.FAILED]

    @property
    def pending(self) -> int:
        """Runs still to run (pending, cancelled, or interrupted when no process runs the study)."""
        waiting = self.counts[RunState.PENDING] + self.counts[RunState.CANCELLED]
        return waiting + (0 if self.running_pid else self.counts[RunState.RUNNING])


class Notes(list):
    """What a run tells its user as it goes (a list of lines), handed on to ``say`` as it is added.

    Args:
        say: Called with each line as it is added (none by default).
    """

    def __init__(self, say: Callable[[str], object] | None = None):
        super().__init__()
        self.say = say

    def append(self, text: str) -> None:
        """Add a line: logged (``profit.study``) and handed to ``say``, if there is one.

        Args:
            text: The line.
        """
        super().append(text)
        logging.getLogger("profit.study").info("%s", text)
        if self.say is not None:
            self.say(text)


@dataclass
class RunReport:
    """What :meth:`Study.run` did.

    Attributes:
        status: The study's status after the run.
        ran: The runs it ran.
        resumed: Whether it resumed an interrupted run of the study.
        failed_kept: Failed runs in the study after the run (run again only with ``retry_failed``).
        stopped_by: The signal (SIGINT, SIGTERM) that stopped it early, if one did.
        export_error: The error that kept the results from being exported, if one did.
        notes: What it told its user as it went.
    """

    status: StudyStatus
    ran: int = 0
    resumed: bool = False
    failed_kept: int = 0  # failed runs in the study after the run (run again only with retry_failed)
    stopped_by: int | None = None  # the signal (SIGINT, SIGTERM) that stopped it early
    export_error: OSError | None = None
    notes: list[str] = field(default_factory=list)


class Study:
    """A set of runs on disk. Make one with :meth:`load`, :meth:`create` or :meth:`open`.

    Attributes:
        file: the checked study file (:class:`profit.studyfile.StudyFile`).
        directory: the work directory, holding the table of runs.
    """

    def __init__(self, file: StudyFile):
        self.file = file
        self.directory = file.run_dir
        self.table_path = os.path.join(self.directory, TABLE)
        self._input_vars, self._output_vars = build_vars(file.input_config, file.output_config)

    def __repr__(self) -> str:
        return f"<Study {self.file.path}>"

    # --- making and finding studies ----------------------------------------------------------

    @classmethod
    def load(cls, path: str | os.PathLike = ".") -> Study:
        """The study described by ``path``: a ``profit.yaml`` or the directory holding it.

        Nothing is written: the file is read and checked.

        Args:
            path: the study file, or the directory holding its ``profit.yaml``.

        Returns:
            The study.
        """
        return cls(StudyFile.load(os.fspath(path)))

    @classmethod
    def open(cls, path: str | os.PathLike = ".") -> Study:
        """An existing study by its directory (where its table is) or its ``profit.yaml``.

        Args:
            path: the study's directory or its ``profit.yaml``.

        Returns:
            The study.
        """
        path = os.fspath(path)
        meta = Meta(path) if os.path.isdir(path) else None
        recorded = meta.data.get("study") if meta is not None else None
        if (
            isinstance(recorded, str)
            and os.path.isfile(recorded)
            and not os.path.isfile(os.path.join(path, STUDY_FILE))
        ):
            return cls.load(recorded)
        return cls.load(path)

    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        *,
        inputs: Mapping[str, Any] | np.ndarray | Any,
        outputs: Sequence[str] | Mapping[str, int | str | None],
        run: Mapping[str, Any] | None = None,
        ntrain: int | None = None,
        seed: int | None = None,
        files: Mapping[str, str] | None = None,
        include: Sequence[str] = (),
    ) -> Study:
        """Make a new study in the directory ``path`` and write its ``profit.yaml``.

        Args:
            path: the study's directory (created if missing).
            inputs: variable specs by name (``{"u": "Uniform(0, 1)", "k": 3}``, as
                under ``variables:`` in a study file), or a table of parameter sets
                (a structured array, a pandas DataFrame or a mapping of equal-length
                columns): its rows become the study's first runs.
            outputs: output names (``["f"]``), or a mapping of name to ``None`` (a
                scalar), a vector length (``{"g": 11}``) or an ``Independent`` axis
                spec such as ``"t: Independent(0, 1, 11)"`` is given among inputs and
                ``{"g": "t"}`` here.
            run: the ``run:`` section (runner, interface, worker, command, ...).
            ntrain: runs to sample (default 10 for specs, 0 for a table).
            seed: makes the sampling reproducible.
            files: ``{"input": "input.txt", "output": "output.txt"}``.
            include: Python files with custom components (workers) to load
                (relative paths start where Python runs, not in the study).

        Returns:
            The new study.

        Raises:
            ConfigError: A study already is at ``path`` (open it with :meth:`open`), or the
                inputs or outputs do not make a valid study.
        """
        import yaml

        directory = os.path.abspath(os.fspath(path))
        study_file = os.path.join(directory, STUDY_FILE)
        if os.path.exists(study_file) or os.path.exists(os.path.join(directory, TABLE)):
            raise ConfigError(f"{directory} already holds a study; open it with Study.open({directory!r})")
        table = None
        if isinstance(inputs, Mapping) and all(
            isinstance(value, (str, int, float, Mapping)) for value in inputs.values()
        ):
            variables: dict[str, Any] = dict(inputs)
        else:
            table = table_of(inputs, "inputs")
            variables = {name: {"class": "Input", "dtype": str(table.dtype[name])} for name in table.dtype.names or ()}
        for name, spec in _output_specs(outputs, variables).items():
            variables[name] = spec
        config: dict[str, Any] = {"variables": variables}
        if ntrain is not None:
            config["ntrain"] = ntrain
        if seed is not None:
            config["seed"] = seed
        if files:
            config["files"] = dict(files)
        if include:  # (relative to where Python runs; paths under files and run are relative to the study)
            config["include"] = [os.path.abspath(os.fspath(item)) for item in include]
        if run:
            config["run"] = _run_section(run)
        # Checked as a study file is, before anything is written.
        plain: dict = _plain(config)  # type: ignore[assignment]  # (a mapping stays a dict)
        checked = cls(StudyFile(study_file, plain, []))
        checked._check_components()
        if table is not None:
            checked.check_inputs(table)
        os.makedirs(directory, exist_ok=True)
        from .run._files import write_atomically

        write_atomically(study_file, yaml.safe_dump(plain, sort_keys=False))
        study = cls.load(study_file)
        if table is not None:
            study.extend(table)
        return study

    # --- names -------------------------------------------------------------------------------

    @property
    def input_names(self) -> list[str]:
        """The names of the study's input variables, in order."""
        return [spec[0] for spec in self._input_vars]

    @property
    def output_names(self) -> list[str]:
        """The names of the study's output variables, in order."""
        return [spec[0] for spec in self._output_vars]

    def _dtypes(self) -> tuple[np.dtype, np.dtype]:
        return np.dtype(self._input_vars), np.dtype(self._output_vars)

    # --- the table ---------------------------------------------------------------------------

    def _read_table(self) -> np.ndarray | None:
        """The table, read-only (None before the first run)."""
        if not os.path.exists(self.table_path):
            return None
        try:
            rows = np.load(self.table_path, mmap_mode="r")
            rows["REASON"], rows["ENDED"]  # noqa: B018  # (the columns are there)
            if np.any(rows["STATE"] > max(RunState)):
                raise ValueError("run states that are no states")
        # Whatever numpy raises for a damaged file (a scrambled header raises even SyntaxError).
        except Exception:
            raise ConfigError(
                f"the study table {self.table_path} is damaged or of an older version of profit; "
                "'profit run' continues an older study, 'profit run --restart' starts over"
            ) from None
        if rows.dtype != _table_dtype(self):
            raise ConfigError(
                f"{self.file.name}: the variables changed since the study table {self.table_path} was made, so its "
                "rows do not match them; restore them, or 'profit run --restart' starts over"
            )
        return rows

    def _prepare(self, meta: Meta, restart: bool, notes: list[str]) -> tuple[StudyTable, bool]:
        """The table to run: the earlier one (checked, grown to ``ntrain``) or a new one. Holds the lock."""
        inputs, outputs = self._dtypes()
        file = self.file
        self._finish_replacing(meta)
        if restart or not os.path.exists(self.table_path) or self._unrecorded(meta):
            seed = file.seed if file.seed is not None else new_seed()
            _refuse_unsampled_linear(file, 0)
            rows = sample_inputs(file.variables, file.ntrain, seed)
            record = {
                "fingerprint": file.fingerprint(),
                "definition": file.definition(),
                "seed": seed,
                "sampled": file.ntrain,
                "given": 0,
                "created": time.time(),
                "study": file.path,
                "inputs_digest": inputs_digest(rows, self.input_names),
            }
            # The new record first, beside the old one; then the table, replaced whole; then the record.
            # Cut off anywhere, the study is the old one or the new one, whole (see _finish_replacing).
            meta.save(next=record)
            with _Naming(self.table_path):
                table = StudyTable.create(self.table_path, rows, outputs)
            meta.data = dict(record)
            meta.save()
            return table, False
        if is_old_study(meta):
            self._convert_old_study(meta, outputs, notes)
        self._check_definition(meta)
        try:
            table = StudyTable.open(self.table_path, inputs, outputs)
        except InterfaceError:
            raise ConfigError(
                f"the study table {self.table_path} is damaged or of other variables; "
                "'profit run --restart' starts over"
            ) from None
        self._finish_growing(table, meta)
        if meta.data.get("inputs_digest") != table.inputs_digest():
            # The table was replaced after the record was written (an interrupted --restart), or edited.
            raise ConfigError(
                f"the study table {self.table_path} does not hold the inputs its record {meta.path} describes "
                "(was a --restart interrupted?); 'profit run --restart' starts the study over"
            )
        sampled = int(meta.data.get("sampled", 0))
        if file.ntrain > sampled:
            _refuse_unsampled_linear(file, sampled)
            new = sample_inputs(file.variables, file.ntrain, int(meta.data["seed"]), start=sampled)
            self._append(table, meta, new, "sampled")
            notes.append(f"ntrain grew from {sampled} to {file.ntrain}: {len(new)} new runs")
        return table, True

    def _finish_replacing(self, meta: Meta) -> None:
        """After a cut-off creation or ``--restart``: the new record if the new table is in place, else the old."""
        record = meta.data.get("next")
        if not isinstance(record, dict):
            return
        inputs, outputs = self._dtypes()
        try:
            table = StudyTable.open(self.table_path, inputs, outputs)
            replaced = table.inputs_digest() == record.get("inputs_digest")
        except (InterfaceError, OSError):
            replaced = False
        if replaced:
            meta.data = dict(record)
        else:
            meta.data.pop("next")
        meta.save()

    def _convert_old_study(self, meta: Meta, outputs: np.dtype, notes: list[str]) -> None:
        """Bring a study of the first build of profit to today's table, keeping every result."""
        table = convert(self.table_path, self.file, meta, outputs)
        if table is None:
            raise ConfigError(
                f"{self.file.name}: the study in {self.directory} was made by an earlier version of profit with other "
                "variables, ntrain or seed than the study file has now; restore them to continue it, or "
                "'profit run --restart' starts over"
            )
        seed = self.file.seed if self.file.seed is not None else new_seed()
        meta.data = {key: value for key, value in meta.data.items() if key not in ("fingerprint", "runs")}
        meta.save(
            fingerprint=self.file.fingerprint(),
            definition=self.file.definition(),
            seed=seed,
            sampled=len(table),
            given=0,
            inputs_digest=table.inputs_digest(),
        )
        done = int(np.count_nonzero(table.states() == RunState.DONE))
        notes.append(f"converted the study state of an earlier version of profit ({done} runs done are kept)")

    def _unrecorded(self, meta: Meta) -> bool:
        """A table whose record is missing: one whose first creation was interrupted, and nothing ran yet."""
        if "fingerprint" in meta.data:
            return False
        rows = self._read_table()
        if rows is not None and np.any(rows["STATE"] != RunState.PENDING):
            raise ConfigError(
                f"the study record {meta.path} is missing or damaged, so the runs in {self.directory} cannot be "
                "matched to this study; run 'profit run --restart' to start over"
            )
        return True

    def _check_definition(self, meta: Meta) -> None:
        """Refuse a study whose variables (or seed) changed since its table was made."""
        file = self.file
        before, now = meta.data.get("definition") or {}, file.definition()
        seed_kept = file.seed is None or file.seed == meta.data.get("seed")
        if before == now and list(before) == list(now) and seed_kept:
            return
        if before == now and seed_kept:
            raise ConfigError(
                f"{file.name}: the variables are listed in another order than when this study was made in "
                f"{self.directory} ({', '.join(before)}); list them in that order again, or 'profit run --restart' "
                "starts over (earlier results are discarded)"
            )
        changes = [
            f"{name}: {before.get(name, 'absent')} became {now.get(name, 'absent')}"
            for name in sorted(set(before) | set(now))
            if before.get(name) != now.get(name)
        ]
        if not changes:
            changes = [f"seed: {meta.data.get('seed')} became {file.seed}"]
        raise ConfigError(
            f"{file.name}: the variables changed since this study last ran in {self.directory} "
            f"({'; '.join(changes[:3])}), so its runs do not match them; 'profit run --restart' starts over "
            "(earlier results are discarded)"
        )

    def _finish_growing(self, table: StudyTable, meta: Meta) -> None:
        """Complete the record of an extension that was interrupted after the table grew."""
        expected = int(meta.data.get("sampled", 0)) + int(meta.data.get("given", 0))
        growing = meta.data.get("growing")
        if len(table) == expected:
            if growing:
                meta.save(growing=None)
            return
        if isinstance(growing, dict) and len(table) == growing.get("rows"):
            kind = growing["kind"]
            meta.save(
                **{kind: int(meta.data.get(kind, 0)) + len(table) - expected},
                growing=None,
                inputs_digest=table.inputs_digest(),
            )
            return
        raise ConfigError(
            f"the study table {self.table_path} has {len(table)} runs but its record {meta.path} says {expected}; "
            "'profit run --restart' starts the study over"
        )

    def _append(self, table: StudyTable, meta: Meta, rows: np.ndarray, kind: str) -> range:
        meta.save(growing={"kind": kind, "rows": len(table) + len(rows)})
        with _Naming(self.table_path):
            added = table.append(rows)
        meta.save(**{kind: int(meta.data.get(kind, 0)) + len(rows)}, growing=None, inputs_digest=table.inputs_digest())
        return added

    # --- growing ---------------------------------------------------------------------------

    def extend(self, more: int | np.ndarray | Any) -> range:
        """Add runs: ``more`` sampled ones (a number), or one per row of a table of parameter sets.

        Args:
            more: how many runs to sample, or a table: a structured array, a pandas DataFrame,
                a mapping of columns or the name of a ``.csv``/``.txt``/``.npy`` file; it must
                give every input.

        Returns:
            The run ids of the new runs, which the next :meth:`run` runs.

        Raises:
            ConfigError: ``more`` is a negative number, or the table does not fit (see :meth:`check_inputs`).
        """
        if isinstance(more, (int, np.integer)) and not isinstance(more, bool):
            if more < 0:
                raise ConfigError(f"extend({more}): the number of runs to add must be 0 or more")
            rows = None
        else:
            rows = self.check_inputs(more)
        with self._locked("extend"):
            meta = Meta(self.directory)
            os.makedirs(self.directory, exist_ok=True)
            table, _ = self._prepare(meta, restart=False, notes=[])
            if rows is None:
                sampled = int(meta.data.get("sampled", 0))
                _refuse_unsampled_linear(self.file, sampled)
                rows = sample_inputs(self.file.variables, sampled + int(more), int(meta.data["seed"]), start=sampled)
                return self._append(table, meta, rows, "sampled")
            return self._append(table, meta, rows, "given")

    def check_inputs(self, source: object) -> np.ndarray:
        """A table of parameter sets (see :meth:`extend`) as rows of this study's inputs.

        Args:
            source: the table (as :meth:`extend` takes it), or the name of its file.

        Returns:
            A structured array with one field per input.

        Raises:
            ConfigError: The table does not fit (a missing or extra column, a value that is not a finite number).
        """
        where = f"the table {source!r}" if isinstance(source, (str, os.PathLike)) else "the table of inputs"
        table = read_table(os.fspath(source)) if isinstance(source, (str, os.PathLike)) else table_of(source, where)
        if table.ndim != 1:
            raise ConfigError(f"{where} must be a list of parameter sets (one dimension), not of shape {table.shape}")
        names = list(table.dtype.names or ())
        missing = [name for name in self.input_names if name not in names]
        extra = [name for name in names if name not in self.input_names]
        if missing or extra:
            problem = (
                f"lacks {', '.join(missing)}" if missing else f"has columns that are not inputs: {', '.join(extra)}"
            )
            raise ConfigError(f"{where} {problem}; it needs exactly the inputs {', '.join(self.input_names)}")
        rows = np.zeros(len(table), np.dtype(self._input_vars))
        for name in self.input_names:
            column = np.asarray(table[name])
            if column.ndim != 1 or column.dtype.kind not in "biuf" or not np.all(np.isfinite(column.astype(float))):
                raise ConfigError(f"{where}: column {name!r} must hold one finite number per parameter set")
            rows[name] = column
            # Compared in the column's own type: a big integer that a float cannot hold exactly is refused.
            if not np.array_equal(rows[name].astype(column.dtype), column):
                raise ConfigError(f"{where}: column {name!r} does not fit the input's type {rows.dtype[name]}")
        return rows

    # --- running ---------------------------------------------------------------------------

    def run(
        self,
        *,
        retry_failed: bool = False,
        restart: bool = False,
        progress: bool = False,
        inputs: object = None,
        debug: bool = False,
        keep_results: bool = False,
    ) -> RunReport:
        """Run the runs that have not run yet; returns a :class:`RunReport`. Resumable at any point.

        Pending and interrupted runs run. Everything is checked before anything is
        written. When what computes the outputs changed since runs finished (the
        ``run:`` section, the template, include files, files the command names), the
        study stops with one sentence, unless ``keep_results`` or ``restart``.

        Args:
            retry_failed: run the failed runs again too.
            restart: discard every earlier run and sample afresh.
            progress: show a progress bar (on a terminal; else a line every few seconds).
            inputs: a table as :meth:`extend` takes it: its rows are added as runs first.
            debug: log in more detail.
            keep_results: continue with the earlier results although what computes the
                outputs changed (knowingly).

        Returns:
            What the run came to (counts, failures, times).

        Raises:
            KeyboardInterrupt: On Ctrl-C (or SIGTERM), once the runs in flight are cancelled;
                what finished is kept (``profit run`` exits 130 instead).
        """
        report = self._run(
            retry_failed=retry_failed,
            restart=restart,
            progress=progress,
            inputs=inputs,
            debug=debug,
            keep_results=keep_results,
        )
        if report.stopped_by is not None:
            raise KeyboardInterrupt(f"study stopped by signal {report.stopped_by}; finished results are kept")
        return report

    def _run(
        self,
        *,
        retry_failed: bool,
        restart: bool,
        progress: bool,
        inputs: object,
        debug: bool,
        say: Callable[[str], object] | None = None,
        restore_signals: bool = True,
        keep_results: bool = False,
    ) -> RunReport:
        label, options = self._check_components()
        extra = self.check_inputs(inputs) if inputs is not None else None
        os.makedirs(self.directory, exist_ok=True)
        with self._locked("run"):
            if not restart:
                self._check_model(keep_results)
            logfile = options.get("logfile", RUNNER_LOG)  # (the runner's option names its log)
            log = _LogTo(os.path.join(self.directory, logfile), debug or bool(self.file.run.get("debug")))
            try:
                return self._run_locked(
                    label, options, retry_failed, restart, progress, extra, Notes(say), restore_signals
                )
            finally:
                log.close()

    def _check_model(self, keep_results: bool) -> None:
        """Refuse to continue with results of an earlier simulation without a word (see :mod:`profit.model`)."""
        from .model import changed_parts, model_parts

        before = Meta(self.directory).data.get("model")
        if not isinstance(before, dict) or keep_results:
            return
        changed = changed_parts(before, model_parts(self.file))
        rows = self._read_table() if changed else None
        done = int(np.count_nonzero(rows["STATE"] == RunState.DONE)) if rows is not None else 0
        if changed and done:
            raise ConfigError(
                f"{self.file.name}: {', '.join(changed[:3])} changed since {done} runs of this study finished, so "
                "their results may be of another simulation; 'profit run --restart' computes everything again, "
                "'profit run --keep-results' continues with them"
            )

    def _run_locked(
        self,
        label: str,
        options: dict,
        retry_failed: bool,
        restart: bool,
        progress: bool,
        extra: np.ndarray | None,
        notes: Notes,
        restore_signals: bool,
    ) -> RunReport:
        from .run import Runner
        from .studyrun import Progress, StopRequest, TableRecorder, Ticker

        meta = Meta(self.directory)
        # Files a killed writer left half-written, here and beside the exports.
        exports = (self.file.input_file, self.file.output_file)
        for folder in {self.directory, *(os.path.dirname(path) for path in exports)}:
            remove_stale_temporaries(folder)
        _end_leftover_jobs(meta, notes)  # also before --restart, which forgets the earlier runs
        if restart:
            _end_leftover_processes(self.directory, notes)
            # An earlier study's run logs must never be quoted as a reason of this one's runs.
            log_path = options["worker"].get("log_path", "log") if isinstance(options["worker"], dict) else "log"
            shutil.rmtree(os.path.join(self.directory, log_path), ignore_errors=True)
        table, resumed = self._prepare(meta, restart, notes)
        from .model import model_parts
        from .template_check import template_warnings

        meta.save(model=model_parts(self.file))  # what computes the results from now on
        # Each warning about the template once per study (again only when it changes).
        warnings = template_warnings(self.file)
        for warning in warnings:
            if warning not in (meta.data.get("template_warnings") or []):
                notes.append(f"warning: {warning}")
        meta.save(template_warnings=warnings)
        if extra is not None and len(extra):
            added = self._append(table, meta, extra, "given")
            notes.append(f"{len(added)} runs added from the table of inputs (runs {added.start}..{added.stop - 1})")
        if resumed:
            leftovers = table.leftovers()
            if leftovers:
                notes.append(f"ended {len(leftovers)} runs left running by the previous runner")
                end_process_groups(leftovers)
            adopted, _ = table.settle_interrupted()
            if adopted:
                notes.append(f"{adopted} runs finished after the previous runner stopped; their results are kept")
        states = table.states()
        failed = np.flatnonzero(states == RunState.FAILED)
        if retry_failed and len(failed):
            table.reset(failed)
        to_run = np.flatnonzero(np.isin(states, (RunState.PENDING, RunState.CANCELLED, RunState.RUNNING)))
        if resumed:
            done = int(np.count_nonzero(states == RunState.DONE))
            notes.append(f"continuing {self.file.path}: {done} runs done before, {len(to_run)} to run")
        report = RunReport(self._status(table.rows), resumed=resumed, notes=notes)
        self._export_inputs(table)
        meta.save(started=time.time(), finished=None, finished_before=int(len(table) - len(to_run)))

        runner_class, _ = Runner.resolve(label, "run.runner")
        # The study's log handler already writes the runner's records (the runner would write them twice).
        runner = runner_class(**options, logger=logging.getLogger("profit.run.runner"))
        try:
            runner.interface.use_store(table.rows, table.grow, table.path)
            runner.next_run_id = len(table)
            batch_jobs: list[str] = []

            def note_batch_job(job: str) -> None:
                batch_jobs.append(job)
                meta.save(batch_jobs=sorted(batch_jobs), batch_runner=runner.label)

            recorder = TableRecorder(table, note_batch_job, batch=callable(getattr(runner, "end_jobs", None)))
            runner.listeners.append(recorder)
            bar = Progress(table, runner, len(table)) if progress else None
            stop = StopRequest()
            try:
                runner.drive(
                    [int(run_id) for run_id in to_run],
                    stop=stop,
                    tick=Ticker(table, recorder, bar, lambda: self._export_outputs(table, report)),
                )
            finally:
                try:
                    runner.close()  # cancels what still runs (after a stop: the runs in flight)
                    recorder.flush()
                    table.flush()
                    if bar is not None:
                        bar.update(force=True)
                        bar.close()
                finally:
                    if restore_signals:  # (only now: a second Ctrl-C must not cut the cancel short)
                        stop.restore()
        finally:
            # Closing the runner cancelled its jobs; any it could not cancel, the next run will.
            meta.save(finished=time.time(), batch_jobs=sorted(getattr(runner, "uncancelled", ())))
        self._export_outputs(table, report)
        report.ran = len(to_run)
        report.stopped_by = stop.signal
        report.status = self._status(table.rows)  # (the table this process maps: no second mapping)
        report.failed_kept = report.status.failed  # (profit run tells how to run them again)
        return report

    def _check_components(self) -> tuple[str, dict]:
        """Load the study's includes and check every option of every component and every study-wide
        fact that would make each run fail; the runner's label and options."""
        from .run.includes import load_includes
        from .validate import check_study

        load_includes(self.file.includes)
        label, options = self._runner_options()
        check_study(self.file)
        return label, options

    def _runner_options(self) -> tuple[str, dict]:
        """The runner's label and options; every option of every component checked, nothing built."""
        from .run import Runner, RunnerInterface, Worker
        from .run.command import Postprocessor, Preprocessor
        from .run.config import check_options, runner_options, runs_own_worker

        file = self.file
        label, options = runner_options(file.run_config(), {**file.base_config(), "ntrain": 0})
        runner_class, _ = Runner.resolve(label, "run.runner")
        check_options(runner_class, options, "runner", where=f"{file.name}: run.runner")
        worker_label = options["worker"].get("class") if isinstance(options["worker"], dict) else options["worker"]
        if runs_own_worker(options.get("command")) and worker_label not in Worker.labels:
            return label, options  # the runner's own worker program defines that worker (proFit's custom worker)
        worker_class, worker_options = Worker.resolve(options["worker"], "run.worker")
        check_options(
            worker_class, worker_class.own_options(worker_options), "worker", where=f"{file.name}: run.worker"
        )
        interface_class, interface_options = RunnerInterface.resolve(options["interface"], "run.interface")
        check_options(interface_class, interface_options, "interface", where=f"{file.name}: run.interface")
        # The worker's processors are built in every worker: check their options once, here.
        if worker_class.label == "command":
            for key, kind, args in (("pre", Preprocessor, ("run_000",)), ("post", Postprocessor, ())):
                spec = worker_options.get(key, "template" if key == "pre" else "numpytxt")
                where = f"{file.name}: run.{key}"
                component, component_options = kind.resolve(spec, f"run.{key}")
                check_options(component, component_options, kind.__name__.lower(), where=where)
                try:
                    component(*args, **component_options)
                except ConfigError as error:
                    raise ConfigError(f"{where}: {error}") from None
        return label, options

    def _locked(self, action: str) -> _Lock:
        return _Lock(self.directory, action)

    # --- exports -----------------------------------------------------------------------------

    def _export_inputs(self, table: StudyTable) -> None:
        # Column by column: a copy of the multi-field view would be as wide as the whole table.
        inputs = np.zeros(len(table), self._input_vars)
        for name in self.input_names:
            inputs[name] = table.rows[name]
        datafiles.write(self.file.input_file, inputs)  # (a full disk: atomic_path names the file)

    def _export_outputs(self, table: StudyTable, report: RunReport) -> None:
        """Write the output file; a full disk is reported, not raised (the table keeps the results)."""
        from .exports import export

        try:
            # A .txt or .npy output has the states beside it, without the times: only what is written is built.
            times = os.path.splitext(self.file.output_file)[1].lower() not in (".txt", ".npy")
            export(
                self.file.output_file,
                self._results(table.rows, inputs=False, times=times),
                inputs=[],
                outputs=self.output_names,
                grids=self.grids(),
            )
        except OSError as error:
            report.export_error = error
        else:
            report.export_error = None

    def grids(self) -> dict[str, tuple[str, np.ndarray]]:
        """The ``Independent`` axis of each vector output that has one: ``{output: (axis, values)}``."""
        grids = {}
        for name, variable in self.file.variables.items():
            if variable.kind == "Output" and variable.over:
                start, stop, count = self.file.variables[variable.over].args
                grids[name] = (variable.over, np.linspace(start, stop, int(count)))
        return grids

    def results(self) -> np.ndarray:
        """One row per run, in run order: inputs, outputs (float; NaN unless the run is done),
        ``state``, ``reason``, ``attempts``, ``started``, ``ended`` (Unix times) and ``duration``
        (seconds; NaN where unknown).

        Unlike :attr:`Runner.output_data` (completed runs only, as in proFit), row
        ``i`` is always run ``i``.
        """
        rows = self._read_table()
        if rows is None:
            return self._results(np.zeros(0, _table_dtype(self)))
        return self._results(rows)

    def _results(self, rows: np.ndarray, *, inputs: bool = True, times: bool = True) -> np.ndarray:
        states = np.asarray(rows["STATE"])
        raw_reasons = np.asarray(rows["REASON"])
        with_reason = np.flatnonzero(raw_reasons != b"")  # (decoding only those: most runs have none)
        reasons = {int(run_id): decode_reason(raw_reasons[run_id]) for run_id in with_reason}
        width = max([len(reason) for reason in reasons.values()] + [1])
        input_names = self.input_names if inputs else []
        fields: list[tuple] = [(name, rows.dtype[name]) for name in input_names]
        for spec in self._output_vars:
            fields.append((spec[0], np.float64, *spec[2:]))
        fields += [("state", "U9"), ("reason", f"U{width}")]
        if times:
            fields += [("attempts", "<u4"), ("started", "<f8"), ("ended", "<f8"), ("duration", "<f8")]
        result = np.zeros(len(rows), fields)
        for name in input_names:
            result[name] = rows[name]
        done = states == RunState.DONE
        for name in self.output_names:
            result[name] = rows[name]
            result[name][~done] = np.nan  # never a number for a run that did not succeed
        names = np.array([STATE_NAMES.get(RunState(value), "?") for value in range(max(RunState) + 1)])
        result["state"] = names[states]
        reason_column = result["reason"]
        for run_id, reason in reasons.items():
            reason_column[run_id] = reason
        if times:
            result["attempts"] = rows["ATTEMPTS"]
            result["started"] = rows["STARTED"]
            result["ended"] = rows["ENDED"]
            result["duration"] = result["ended"] - result["started"]
        return result

    def to_dataframe(self) -> Any:
        """The results as a pandas DataFrame (one row per run; see :func:`profit.exports.to_dataframe`)."""
        from .exports import to_dataframe

        return to_dataframe(self.results(), inputs=self.input_names, outputs=self.output_names)

    def to_xarray(self) -> Any:
        """The results as an xarray Dataset over ``run`` (an ``Independent`` axis as a coordinate)."""
        from .exports import to_xarray

        return to_xarray(self.results(), inputs=self.input_names, outputs=self.output_names, grids=self.grids())

    def export(self, path: str | os.PathLike) -> None:
        """Write every run (inputs, outputs, state, reason, times) to ``path``, in the format its extension names.

        Args:
            path: the file to write (``.csv``, ``.txt``, ``.npy``, ``.hdf5``, ...).
        """
        from .exports import export
        from .validate import check_export_path

        check_export_path(self.file, os.fspath(path))
        export(os.fspath(path), self.results(), inputs=self.input_names, outputs=self.output_names, grids=self.grids())

    def executor(self, **options: Any) -> Any:
        """A :class:`profit.run.Executor` bound to this study: its runner (``run.runner``) and
        interface unless ``options`` say otherwise, and every evaluation recorded in the study's
        directory (``evaluations/``), so that a script started again gets the finished ones back
        at once (see the Executor's "Memoised evaluations").

        Args:
            **options: the :class:`~profit.run.executor.Executor`'s options (``runner``,
                ``parallel``, ``timeout``, ...).

        Returns:
            The executor (close it with ``shutdown()`` or use it in a ``with`` block).
        """
        from .run.executor import Executor

        runner = options.pop("runner", self.file.run.get("runner", "fork"))
        options.setdefault("interface", self.file.run.get("interface", "memmap"))
        return Executor(runner, study=self, **options)

    # --- watching and cleaning ---------------------------------------------------------------

    def status(self) -> StudyStatus:
        """Counts by state, failures and the running process, read without disturbing a run."""
        return self._status(self._read_table())

    def _status(self, rows: np.ndarray | None) -> StudyStatus:
        meta = Meta(self.directory).data if os.path.isdir(self.directory) else {}
        if rows is None:
            return StudyStatus(0, count_states(np.zeros(0, np.uint8)), [])
        states = np.array(rows["STATE"])
        failures = [
            (int(run_id), decode_reason(rows["REASON"][run_id])) for run_id in np.flatnonzero(states == RunState.FAILED)
        ]
        return StudyStatus(
            total=len(rows),
            counts=count_states(states),
            failures=failures,
            running_pid=StudyLock(self.directory).holder(),
            started=meta.get("started"),
            finished=meta.get("finished"),
            finished_before=int(meta.get("finished_before", 0)),
        )

    def clean(self, all: bool = False) -> list[str]:
        """Remove run directories, logs and interface files; with ``all``, also the table, the exports and
        the evaluations an executor of the study recorded (``evaluations/``).

        Args:
            all: also remove the table, the exports and the recorded evaluations.

        Returns:
            What was removed (relative names).

        Raises:
            ConfigError: A process runs the study (or an executor of it uses ``evaluations/``).
        """
        holder = StudyLock(self.directory).holder()
        if holder:
            raise ConfigError(
                f"the study in {self.directory} is being run by process {holder}; clean it when it has finished"
            )
        if not os.path.isdir(self.directory):
            return []
        evaluations = os.path.join(self.directory, "evaluations")
        if all and os.path.isdir(evaluations):  # (what study.executor() recorded: results too)
            evaluations_holder = StudyLock(evaluations).holder()
            if evaluations_holder:
                raise ConfigError(
                    f"an executor of process {evaluations_holder} uses {evaluations}; clean it when it has finished"
                )
        removed = clean_work_dir(self.directory, files=LEFTOVER_FILES + ((TABLE, META, LOCK) if all else ()))
        if all:
            from .exports import states_file

            if os.path.isdir(evaluations):
                shutil.rmtree(evaluations)
                removed.append("evaluations")
            for path in (self.file.input_file, self.file.output_file, states_file(self.file.output_file)):
                if os.path.exists(path):
                    os.remove(path)
                    removed.append(os.path.relpath(path, self.file.base_dir))
        return removed


class _Naming:
    """Gives an OSError that names no file (a full disk while writing) the file it was about."""

    def __init__(self, path: str):
        self.path = path

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type | None, error: BaseException | None, traceback: object) -> None:
        if isinstance(error, OSError) and not error.filename:
            raise OSError(error.errno, error.strerror or str(error), self.path) from None


class _Lock:
    """The study's lock, held for a block; refused with one sentence when another process holds it."""

    def __init__(self, directory: str, action: str):
        self.lock = StudyLock(directory)
        self.directory, self.action = directory, action

    def __enter__(self) -> StudyLock:
        os.makedirs(self.directory, exist_ok=True)
        if not self.lock.acquire():
            raise ConfigError(
                f"the study in {self.directory} is being run by process {self.lock.holder()}; "
                f"wait for it to finish before you {self.action} it ('profit status' shows how far it is)"
            )
        return self.lock

    def __exit__(self, *exc: object) -> None:
        self.lock.release()


class _LogTo:
    """The ``profit`` logger writes into the study's log while a run goes on; its level is put back after."""

    def __init__(self, path: str, debug: bool):
        self.handler = logging.FileHandler(path)
        self.handler.setFormatter(logging.Formatter("{asctime} {levelname:8s} {name}: {message}", style="{"))
        self.logger = logging.getLogger("profit")
        self.level = self.logger.level
        self.logger.addHandler(self.handler)
        self.logger.setLevel(logging.DEBUG if debug else logging.INFO)

    def close(self) -> None:
        self.logger.removeHandler(self.handler)
        self.logger.setLevel(self.level)
        self.handler.close()


def _end_leftover_jobs(meta: Meta, notes: list[str]) -> None:
    """Cancel the batch jobs of a runner that was killed (or could not cancel them): their runs run again."""
    from .run import Runner

    jobs = meta.data.get("batch_jobs") or []
    label = meta.data.get("batch_runner")  # the runner that submitted them, whatever the study says now
    end_jobs = getattr(Runner[label], "end_jobs", None) if label in Runner.labels else None
    if jobs and end_jobs is not None:
        notes.append(f"cancelling {len(jobs)} batch jobs left by the previous runner ({', '.join(jobs)})")
        end_jobs(jobs)
        meta.save(batch_jobs=[])


def _end_leftover_processes(directory: str, notes: list[str]) -> None:
    """End the processes a killed runner of this study left (found by the mark in their environment)."""
    groups = marked_groups(directory)
    if groups:
        notes.append(f"ended {len(groups)} process groups left running by the previous runner")
        end_process_groups(sorted(groups))


def _refuse_unsampled_linear(file: StudyFile, sampled: int) -> None:
    """Linear spreads its values over ntrain runs: a study that has some cannot grow by sampling."""
    if not sampled:
        return
    linear = [name for name, variable in file.variables.items() if variable.kind == "Linear"]
    if linear:
        raise ConfigError(
            f"{file.name}: {', '.join(linear)} is Linear, which spreads its values over ntrain runs, so the study "
            "cannot grow by sampling; add runs with a table (profit run --inputs FILE) or start over with --restart"
        )


def _table_dtype(study: Study) -> np.dtype:
    from .store import table_dtype

    inputs, outputs = study._dtypes()
    return table_dtype(inputs, outputs)


def _output_specs(outputs: Sequence[str] | Mapping[str, Any], variables: Mapping[str, Any]) -> dict[str, str]:
    """``Study.create``'s outputs as variable specs."""
    if isinstance(outputs, str):
        outputs = [outputs]
    if not isinstance(outputs, Mapping):
        return {str(name): "Output" for name in outputs}
    specs = {}
    for name, shape in outputs.items():
        if shape is None or shape == 1:
            specs[name] = "Output"
        elif isinstance(shape, str):
            specs[name] = f"Output({shape})"
        elif isinstance(shape, (int, np.integer)) and not isinstance(shape, bool) and shape > 1:
            axis = f"{name}_index"
            while axis in variables:
                axis += "_"
            specs[axis] = f"Independent(0, {int(shape) - 1}, {int(shape)})"
            specs[name] = f"Output({axis})"
        else:
            raise ConfigError(
                f"output {name!r}: give None (a scalar), a vector length or an Independent variable's name"
            )
    return specs


def _run_section(run: Mapping[str, Any]) -> dict:
    """The ``run:`` section as a study file keeps it: a function given as the worker (or as the
    ``class`` or ``function`` of its config) written by its importable name, ``module:qualname``;
    ConfigError for a function other processes cannot import by name."""
    from .run.config import function_of
    from .run.functions import importable_name

    section = dict(run)
    worker = section.get("worker")
    func = function_of(worker)
    if func is None:
        return section
    named = importable_name(func)
    if named is None:
        raise ConfigError(
            f"run.worker: the function {getattr(func, '__qualname__', func)!r} cannot be written into the study "
            "file, as it cannot be imported by name (defined in __main__, a notebook or another function, or a "
            "partial or object); define it at the top level of a module"
        )
    options = {k: v for k, v in worker.items() if k not in ("class", "function")} if isinstance(worker, Mapping) else {}
    name, root = named
    section["worker"] = {"class": "function", "function": name, **({"path": root} if root else {}), **options}
    return section


def _plain(value: object) -> object:
    """Plain Python values (no numpy scalars) for YAML."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
