"""The ``profit`` command: run, watch and clean a study described by ``profit.yaml``.

    profit run [PATH] [--restart]   run the study (continue an unfinished one)
    profit status [PATH]            how far a running or finished study is
    profit clean [--all] [PATH]     remove what runs left behind

Exit status: 0 all runs done, 1 some runs failed, 2 bad study file or
arguments, 3 an internal error (a bug: please report it with --debug output),
4 the output file could not be written (a full disk: the results are kept in
the study's work directory), 5 a service the study needs failed (the batch
scheduler: run again when it is back), 130 after Ctrl-C and 143 after SIGTERM
(completed results are saved).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from types import FrameType
from typing import TYPE_CHECKING

import numpy as np

from . import __version__, datafiles
from .ledger import LEDGER, LOCK, META, Ledger, Meta, StudyLock, count_states, end_process_groups
from .run.errors import ConfigError, InterfaceError, ProfitError, ServiceError
from .run.interface import build_vars
from .run.layout import INTERFACE_FILE, LEFTOVER_FILES, RUNNER_LOG, clean_work_dir
from .run.state import RunState, RunStatus
from .studyfile import StudyFile as Study

if TYPE_CHECKING:
    from .run import Runner

EXIT_DONE, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_BUG, EXIT_UNSAVED, EXIT_SERVICE = 0, 1, 2, 3, 4, 5
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143
OUTPUT_WRITE_INTERVAL = 1.0  # seconds between rewrites of the output file while runs finish


class StopRequest:
    """Records Ctrl-C (SIGINT) and SIGTERM instead of raising where they land.

    A KeyboardInterrupt raised inside a fork hook or a logging lock is lost, so
    the run loop checks this flag instead. Once installed, it stays for the rest
    of the ``profit run`` process: a second Ctrl-C changes nothing while the runs
    in flight are cancelled and the results saved.
    """

    def __init__(self) -> None:
        self.signal: int | None = None
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._record)

    def _record(self, signum: int, frame: FrameType | None) -> None:
        self.signal = self.signal or signum

    @property
    def exit_status(self) -> int | None:
        if self.signal is None:
            return None
        statuses: dict[int, int] = {signal.SIGINT: EXIT_INTERRUPTED, signal.SIGTERM: EXIT_TERMINATED}
        return statuses.get(self.signal)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="profit", description="Run parameter studies described by profit.yaml.")
    parser.add_argument("--version", action="version", version=f"profit {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="{run,status,clean}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("path", nargs="?", default=".", help="study directory holding profit.yaml, or the YAML file")
    common.add_argument("--debug", action="store_true", help="log in detail and show tracebacks")
    run = commands.add_parser("run", parents=[common], help="run the study, continuing an unfinished one")
    run.add_argument("--restart", action="store_true", help="start over: discard earlier results of this study")
    commands.add_parser("status", parents=[common], help="report a running or finished study")
    clean = commands.add_parser("clean", parents=[common], help="remove run directories, logs and the interface file")
    clean.add_argument("--all", action="store_true", help="also remove the input and output files and the study state")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``profit`` command; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    handlers = {"run": command_run, "status": command_status, "clean": command_clean}
    try:
        return handlers[args.command](args)
    except ProfitError as error:
        if args.debug:
            raise
        print(f"profit: {error}", file=sys.stderr)
        # A scheduler that fails is not a mistake in the study; everything else we raise on purpose is.
        if isinstance(error, ServiceError) and not isinstance(error, ConfigError):
            return EXIT_SERVICE
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:  # before any run started: nothing to save
        print("profit: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as error:  # a file or directory that cannot be made or read
        if args.debug:
            raise
        where = f": {error.filename}" if error.filename else ""
        print(f"profit: {error.strerror or error}{where}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as error:  # a bug: one line, unless asked for the traceback
        if args.debug:
            raise
        print(
            f"profit: internal error: {type(error).__name__}: {error} (run with --debug for the traceback)",
            file=sys.stderr,
        )
        return EXIT_BUG


# --- profit run ------------------------------------------------------------------------------


def _configure_logging(run_dir: str, debug: bool) -> logging.Handler:
    handler = logging.FileHandler(os.path.join(run_dir, RUNNER_LOG))
    handler.setFormatter(logging.Formatter("{asctime} {levelname:8s} {name}: {message}", style="{"))
    logger = logging.getLogger("profit")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if debug else logging.INFO)
    return handler


class _Recorder:
    """Keeps the ledger and the output file current as runs start and end."""

    def __init__(self, ledger: Ledger, runner: Runner, study: Study, meta: Meta):
        self.ledger, self.runner, self.study, self.meta = ledger, runner, study, meta
        self.next_write = 0.0
        self.write_error: OSError | None = None
        self.batch_jobs: set[str] = set()

    def run_started(self, run_id: int, handle: object) -> None:
        self.ledger.started(run_id, getattr(handle, "pid", None))
        # A batch job outlives a runner that is killed: note it, so that the next run ends it.
        job = getattr(handle, "array_job", None)
        if job is not None and job not in self.batch_jobs:
            self.batch_jobs.add(job)
            self.meta.save(batch_jobs=sorted(self.batch_jobs), batch_runner=self.runner.label)

    def run_ended(self, status: RunStatus) -> None:
        internal = self.runner.interface.internal
        self.ledger.ended(status, self.runner.interface.output[status.run_id], float(internal["TIME"][status.run_id]))

    def write_output(self, force: bool = False) -> None:
        if not force and time.monotonic() < self.next_write:
            return
        self.next_write = time.monotonic() + OUTPUT_WRITE_INTERVAL
        self.ledger.flush()
        states = self.ledger.states()
        notes = [
            f"run {run_id} failed: {self.ledger.reason(run_id)}" for run_id in np.flatnonzero(states == RunState.FAILED)
        ]
        names = [str(RunState(int(state))) for state in states]
        try:
            datafiles.write(self.study.output_file, np.array(self.ledger.outputs), notes=notes, states=names)
        except OSError as error:  # a full disk: the ledger has the results; try again later
            if self.write_error is None:
                print(
                    f"profit: cannot write {self.study.output_file} ({error.strerror or error}); "
                    f"the results are kept in {os.path.join(self.study.run_dir, LEDGER)}",
                    file=sys.stderr,
                )
            self.write_error = error
        else:
            self.write_error = None


class _Progress:
    """A tqdm bar on a terminal; plain lines every few seconds otherwise."""

    def __init__(self, ledger: Ledger, runner: Runner):
        self.ledger, self.runner = ledger, runner
        self.total = len(ledger.rows)
        self.started = time.monotonic()
        self.finished_before = self._finished()
        self.next_line = 0.0
        self.bar = None
        if sys.stdout.isatty():
            from .run.progress import progress_bar

            self.bar = progress_bar(self.total, self.finished_before)

    def _finished(self) -> int:
        counts = self.ledger.counts()
        return counts[RunState.DONE] + counts[RunState.FAILED]

    def update(self, force: bool = False) -> None:
        # Counting reads every run's state: only as often as anybody can read it.
        if not force and time.monotonic() < self.next_line:
            return
        self.next_line = time.monotonic() + (0.1 if self.bar is not None else 5.0)
        counts = self.ledger.counts()
        finished = counts[RunState.DONE] + counts[RunState.FAILED]
        if self.bar is not None:
            self.bar.set_postfix(
                done=counts[RunState.DONE], failed=counts[RunState.FAILED], running=len(self.runner.runs), refresh=False
            )
            self.bar.update(finished - self.bar.n)
            return
        print(
            f"profit: {finished}/{self.total} finished "
            f"(done {counts[RunState.DONE]}, failed {counts[RunState.FAILED]}, "
            f"running {len(self.runner.runs)}){self._eta(finished)}",
            flush=True,
        )

    def _eta(self, finished: int) -> str:
        elapsed = time.monotonic() - self.started
        now = finished - self.finished_before
        if now <= 0 or finished >= self.total:
            return ""
        return f", ETA {_duration((self.total - finished) * elapsed / now)}"

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _open_ledger(study: Study, restart: bool, meta: Meta) -> tuple[Ledger, bool]:
    """The study's ledger: the earlier one (to continue), or a new one with freshly sampled inputs."""
    from .variables import sample_inputs

    inputs = list(study.input_config)
    outputs = list(study.output_config)
    path = os.path.join(study.run_dir, LEDGER)
    if not restart and os.path.exists(path):
        if "fingerprint" not in meta.data:
            raise ConfigError(
                f"the study record {meta.path} is missing or damaged, so the earlier runs in {study.run_dir} "
                "cannot be matched to this study; run 'profit run --restart' to start over"
            )
        if meta.data.get("fingerprint") != study.fingerprint():
            raise ConfigError(
                f"{study.name}: the variables, ntrain or seed changed since this study last ran in {study.run_dir}, "
                "so its earlier runs do not match; run 'profit run --restart' to start over "
                "(earlier results are discarded)"
            )
        try:
            return Ledger.open(study.run_dir, inputs, outputs), True
        except InterfaceError as error:
            raise ConfigError(
                f"the study state {path} cannot be used ({error}); run 'profit run --restart' to start over"
            ) from None
    rows = sample_inputs(study.variables, study.ntrain, study.seed)
    ledger = Ledger.create(study.run_dir, rows, np.dtype(build_vars({}, study.output_config)[1]))
    meta.data = {}
    meta.save(fingerprint=study.fingerprint(), created=time.time(), study=study.path, runs=study.ntrain)
    return ledger, False


def _end_leftover_jobs(meta: Meta) -> None:
    """Cancel the batch jobs of a runner that was killed (or could not cancel them): their runs run again."""
    from .run import Runner

    jobs = meta.data.get("batch_jobs") or []
    label = meta.data.get("batch_runner")  # the runner that submitted them, whatever the study says now
    end_jobs = getattr(Runner[label], "end_jobs", None) if label in Runner.labels else None
    if jobs and end_jobs is not None:
        print(f"profit: cancelling {len(jobs)} batch jobs left by the previous runner ({', '.join(jobs)})")
        end_jobs(jobs)
        meta.save(batch_jobs=[])


def _adopt_finished(ledger: Ledger, study: Study) -> int:
    """Take over results that workers of a killed runner finished in the old interface file."""
    interface = study.run_config()["interface"]
    options = interface if isinstance(interface, dict) else {"class": interface}
    if options.get("class") != "memmap":
        return 0  # only a memmap interface outlives its runner
    path = os.path.join(study.run_dir, options.get("path", INTERFACE_FILE))
    if not os.path.exists(path):
        return 0
    try:
        old = np.load(path, mmap_mode="r")
    except (OSError, ValueError, EOFError):  # damaged: nothing to adopt from it
        return 0
    adopted = 0
    names = ledger.input_names + ledger.output_names
    if old.dtype.names is None or not set(names + ["DONE"]) <= set(old.dtype.names):
        return 0
    for run_id in np.flatnonzero(ledger.states() != RunState.DONE):
        if (
            run_id < len(old)
            and old["DONE"][run_id]
            and all(old[name][run_id] == ledger.rows[name][run_id] for name in ledger.input_names)
        ):
            ledger.ended(RunStatus(int(run_id), RunState.DONE), old[run_id], float(old["TIME"][run_id]))
            adopted += 1
    return adopted


def command_run(args: argparse.Namespace) -> int:
    """``profit run``: run the runs of the study that are not done yet."""
    from .run import Runner
    from .run.includes import load_includes

    study = Study.load(args.path)
    for notice in study.notices:
        print(f"profit: {notice}")
    load_includes(study.includes)
    os.makedirs(study.run_dir, exist_ok=True)
    lock = StudyLock(study.run_dir)
    if not lock.acquire():
        raise ConfigError(
            f"the study in {study.run_dir} is being run by process {lock.holder()}; "
            "wait for it to finish ('profit status' shows how far it is)"
        )
    handler = _configure_logging(study.run_dir, args.debug or bool(study.run.get("debug")))
    try:
        return _run(study, args, Runner)
    finally:
        logging.getLogger("profit").removeHandler(handler)
        handler.close()
        lock.release()


def _run(study: Study, args: argparse.Namespace, Runner: type[Runner]) -> int:
    meta = Meta(study.run_dir)
    _end_leftover_jobs(meta)  # also before --restart, which forgets the earlier runs
    ledger, resumed = _open_ledger(study, args.restart, meta)
    datafiles.write(study.input_file, np.array(ledger.inputs))
    if resumed:
        leftovers = ledger.leftovers()
        if leftovers:
            print(f"profit: ending {len(leftovers)} runs left running by the previous runner")
            end_process_groups(leftovers)
        adopted = _adopt_finished(ledger, study)
        if adopted:
            print(f"profit: {adopted} runs finished after the previous runner stopped; their results are kept")
    for run_id in np.flatnonzero(ledger.states() == RunState.RUNNING):
        ledger.ended(RunStatus(int(run_id), RunState.CANCELLED), None)  # did not finish: run again

    runner = _build_runner(study, Runner)
    runner.fill(ledger.inputs)
    done = np.flatnonzero(ledger.states() == RunState.DONE)
    for name in ledger.output_names:  # completed runs are results of this runner too
        runner.interface.output[name][done] = ledger.rows[name][done]
    for run_id in done:
        runner.interface.mark(int(run_id), RunState.DONE)
    pending = [int(run_id) for run_id in np.flatnonzero(ledger.states() != RunState.DONE)]
    if resumed:
        print(f"profit: continuing {study.path}: {len(done)} runs done before, {len(pending)} to run")
    meta.save(started=time.time(), pid=os.getpid(), finished=None, finished_before=int(len(done)))

    recorder = _Recorder(ledger, runner, study, meta)
    runner.listeners.append(recorder)
    progress = _Progress(ledger, runner)
    stop = StopRequest()
    try:
        _drive(runner, pending, stop, progress, recorder)
    finally:
        runner.close()  # cancels what still runs (after a stop: the runs in flight)
        progress.update(force=True)
        progress.close()
        recorder.write_output(force=True)
        # Closing the runner cancelled its jobs; any it could not cancel, the next run will.
        meta.save(finished=time.time(), batch_jobs=sorted(getattr(runner, "uncancelled", ())))
    status = _summary(study, ledger, stop.exit_status)
    if recorder.write_error is not None:
        print(
            f"profit: {study.output_file} could not be written "
            f"({recorder.write_error.strerror or recorder.write_error}); "
            f"every completed result is kept in {os.path.join(study.run_dir, LEDGER)}: free some space and "
            "run 'profit run' again to write it",
            file=sys.stderr,
        )
        status = EXIT_UNSAVED
    return status


def _drive(runner: Runner, pending: list[int], stop: StopRequest, progress: _Progress, recorder: _Recorder) -> None:
    """Start the pending runs, at most ``parallel`` at once, until all ended or a stop is asked."""
    # wait_some returns at least every half second, so a stop is noticed quickly.
    if hasattr(runner, "respawn_array"):  # a batch system: one job array for all of them

        def tick() -> None:
            progress.update()
            recorder.write_output()

        runner.respawn_array(pending, stop=lambda: bool(stop.signal), tick=tick)
        pending = []
    for run_id in pending:
        while runner.capacity and len(runner.runs) >= runner.capacity and not stop.signal:
            runner.wait_some(0.5)
            progress.update()
            recorder.write_output()
        if stop.signal:
            return
        runner.respawn(run_id)
    while runner.runs and not stop.signal:
        runner.wait_some(0.5)
        progress.update()
        recorder.write_output()


def _build_runner(study: Study, Runner: type[Runner]) -> Runner:
    """The study's runner; every option of every component is checked before anything is built."""
    from .run import RunnerInterface, Worker
    from .run.command import Postprocessor, Preprocessor
    from .run.config import check_options, runner_options

    label, options = runner_options(study.run_config(), study.base_config())
    runner_class = Runner[label]
    check_options(runner_class, options, "runner", where=f"{study.name}: run.runner")
    worker_class, worker_options = Worker.resolve(options["worker"], "run.worker")
    check_options(worker_class, worker_class.own_options(worker_options), "worker", where=f"{study.name}: run.worker")
    interface_class, interface_options = RunnerInterface.resolve(options["interface"], "run.interface")
    check_options(interface_class, interface_options, "interface", where=f"{study.name}: run.interface")
    # The worker's processors are built in every worker: check their options once, here.
    if worker_class.label == "command":
        for key, kind, args in (("pre", Preprocessor, ("run_000",)), ("post", Postprocessor, ())):
            spec = worker_options.get(key, "template" if key == "pre" else "numpytxt")
            where = f"{study.name}: run.{key}"
            component, component_options = kind.resolve(spec, f"run.{key}")
            check_options(component, component_options, kind.__name__.lower(), where=where)
            try:
                component(*args, **component_options)
            except ConfigError as error:
                raise ConfigError(f"{where}: {error}") from None
    return runner_class(**options)


def _summary(study: Study, ledger: Ledger, interrupted: int | None) -> int:
    counts = ledger.counts()
    done, failed, pending = counts[RunState.DONE], counts[RunState.FAILED], counts[RunState.PENDING]
    print(
        f"\nprofit: {len(ledger.rows)} runs: {done} done, {failed} failed" + (f", {pending} not run" if pending else "")
    )
    failures = np.flatnonzero(ledger.states() == RunState.FAILED)
    for run_id in failures[:20]:
        print(f"  run {run_id} failed: {ledger.reason(run_id)}")
    if len(failures) > 20:
        print(f"  ... and {len(failures) - 20} more ('profit status' lists them all)")
    print(f"profit: outputs in {study.output_file}, inputs in {study.input_file}")
    if interrupted:
        print("profit: interrupted; completed results are saved. 'profit run' continues the study.")
        return interrupted
    return EXIT_FAILED if failed else EXIT_DONE


# --- profit status -----------------------------------------------------------------------------


def command_status(args: argparse.Namespace) -> int:
    """``profit status``: report a running or finished study without disturbing it."""
    study = Study.load(args.path)
    path = os.path.join(study.run_dir, LEDGER)
    if not os.path.exists(path):
        print(f"profit: {study.path} has not been run yet (no {LEDGER} in {study.run_dir})")
        return EXIT_DONE
    try:
        rows = np.load(path, mmap_mode="r")
        states, reasons = np.array(rows["STATE"]), rows["REASON"]
    except (OSError, ValueError, EOFError, KeyError, TypeError, IndexError):
        raise ConfigError(f"the study state {path} is damaged; 'profit run --restart' starts the study over") from None
    meta = Meta(study.run_dir).data
    holder = StudyLock(study.run_dir).holder()
    counts = count_states(states)
    total = len(rows)
    finished = counts[RunState.DONE] + counts[RunState.FAILED]
    print(f"study:   {study.path}")
    started, ended = meta.get("started"), meta.get("finished")
    if holder:
        running_for = time.time() - started if started else 0
        done_now = finished - meta.get("finished_before", 0)
        eta = ""
        if done_now > 0 and finished < total:
            eta = f", ETA {_duration((total - finished) * running_for / done_now)}"
        print(f"state:   running (process {holder}) for {_duration(running_for)}{eta}")
    elif ended:
        print(
            f"state:   not running; last run ended {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(ended))}"
            + (f" after {_duration(ended - started)}" if started else "")
        )
    else:
        print("state:   not running (the last runner stopped without finishing; 'profit run' continues)")
    print(
        f"runs:    {total}: {counts[RunState.DONE]} done, {counts[RunState.FAILED]} failed, "
        f"{counts[RunState.RUNNING] if holder else 0} running, "
        f"{counts[RunState.PENDING] + (0 if holder else counts[RunState.RUNNING])} pending "
        f"({100 * finished / total:.0f}% finished)"
    )
    failures = np.flatnonzero(states == RunState.FAILED)
    for run_id in failures:
        print(f"  run {run_id} failed: {bytes(reasons[run_id]).decode('utf-8', 'replace')}")
    print(f"results: {study.output_file} (inputs: {study.input_file}, work directory: {study.run_dir})")
    return EXIT_DONE


# --- profit clean ------------------------------------------------------------------------------


def command_clean(args: argparse.Namespace) -> int:
    """``profit clean``: remove run directories, logs and the interface file (``--all``: results too)."""
    study = Study.load(args.path)
    holder = StudyLock(study.run_dir).holder()
    if holder:
        raise ConfigError(
            f"the study in {study.run_dir} is being run by process {holder}; clean it when it has finished"
        )
    if not os.path.isdir(study.run_dir):
        return EXIT_DONE
    removed = clean_work_dir(study.run_dir, files=LEFTOVER_FILES + ((LEDGER, META, LOCK) if args.all else ()))
    if args.all:
        for path in (study.input_file, study.output_file):
            if os.path.exists(path):
                os.remove(path)
                removed.append(os.path.relpath(path, study.base_dir))
    print(f"profit: removed {', '.join(removed) if removed else 'nothing'} in {study.run_dir}")
    return EXIT_DONE


def entry_point() -> None:
    """Console script ``profit``."""
    status = main()
    # Everything is saved: a late Ctrl-C must not turn the exit status into "killed by SIGINT"
    # (Python restores the default handlers while it shuts down).
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    sys.exit(status)
