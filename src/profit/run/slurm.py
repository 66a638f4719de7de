"""SlurmRunner: one batch job per run, job arrays for many runs.

The scheduler is reached through its commands (``sbatch``, ``sacct``,
``scancel``, ``scontrol``), run by one gateway (:class:`SlurmCommands`). The
command lines and the parsing of their output are pure functions, so they can be
tested without a cluster; ``tests/fake_slurm`` fakes the commands as a whole.

How a run ends is noticed two ways::

    worker transmits --> interface (DONE; a zeromq message wakes the runner at once)
    job ends badly   --> sacct, polled with backoff (0.5 s, growing to max_poll)

so a run that succeeds is settled as soon as its results arrive, and the
scheduler is asked only every so often about jobs that end without results
(FAILED, TIMEOUT, OUT_OF_MEMORY, NODE_FAIL, cancelled by someone else...).

Workers find a zeromq runner bound to a wildcard address through
``PROFIT_RUNNER_ADDRESS`` (the submit host, set in the batch script).
"""

from __future__ import annotations

import os
import re
import shlex
import sys
import time
from collections import namedtuple
from collections.abc import Callable, Iterable, Mapping

from . import options as check
from ._lazy import logging
from ._proc import ExitStatus
from .errors import ConfigError, SchedulerError, SchedulerNotFound
from .handles import Notice, RunHandle
from .runner import Runner
from .state import RunState, RunStatus

DEFAULT_MAX_ARRAY_SIZE = 1001  # Slurm's default MaxArraySize
DEFAULT_COMMAND = "srun profit-worker"  # how a batch script starts a run's worker
# Seconds a cancelled job may take to end: Slurm's default KillWait (30 s, from SIGTERM to
# SIGKILL) and some time to reap. A cancel waits no longer for its processes to be gone.
KILL_WAIT_BOUND = 40.0

# sacct states after which a job does not run any more.
FINAL_STATES = frozenset(
    {
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "TIMEOUT",
        "OUT_OF_MEMORY",
        "NODE_FAIL",
        "PREEMPTED",
        "BOOT_FAIL",
        "DEADLINE",
        "REVOKED",
        "SPECIAL_EXIT",
    }
)
# What a user should read for a job that Slurm ended.
_ENDED_BY_SLURM = {
    "TIMEOUT": "reached its Slurm time limit",
    "OUT_OF_MEMORY": "ran out of memory",
    "NODE_FAIL": "lost its node (node failure)",
    "PREEMPTED": "was preempted",
    "BOOT_FAIL": "could not start (its node failed to boot)",
    "DEADLINE": "reached its Slurm deadline",
    "REVOKED": "was revoked by a federated cluster",
    "CANCELLED": "was cancelled by Slurm or a user",
}
# Failures worth trying again: the controller said no for now, or could not be reached.
_TRANSIENT = re.compile(r"temporarily|try again|unable to contact|connection refused|busy", re.IGNORECASE)
# Failures after which a submission may or may not have been accepted ("Socket timed
# out on send/recv"): retrying sbatch then could submit the runs twice.
_AMBIGUOUS = re.compile(r"timed out|time out|socket", re.IGNORECASE)


# --- pure functions: command lines, batch script, parsing ----------------------------


def batch_script(
    *, command: str, cpus: int | str = 1, openmp: bool = False, options: Mapping[str, object], output: str | None = None
) -> str:
    """The batch script of every run of a study (a pure function of the options).

    An array task adds its index to ``PROFIT_RUN_ID`` through ``PROFIT_ARRAY_ID``.

    Args:
        command: The command that runs a run (the worker).
        cpus: The CPUs of one run (``'all'`` or 0: a whole node, exclusively).
        openmp: Export ``OMP_NUM_THREADS`` to match ``cpus``.
        options: Become ``#SBATCH --key=value`` lines (``True``: ``--key`` alone).
        output: Where Slurm writes the job's output (``--output``), unless ``options`` say.
    """
    whole_node = cpus in ("all", 0)
    lines = ["#!/bin/bash", "# Written by profit's SlurmRunner: one run per job or array task."]
    for key, value in options.items():
        if value is True:
            lines.append(f"#SBATCH --{key}")
        elif value is not False and value is not None:
            lines.append(f"#SBATCH --{key}={value}")
    if output is not None and "output" not in options:
        lines.append(f"#SBATCH --output={output}")
    lines.append("#SBATCH --ntasks=1")
    if whole_node:
        lines += ["#SBATCH --nodes=1", "#SBATCH --exclusive"]
    else:
        lines.append(f"#SBATCH --cpus-per-task={cpus}")
    lines += [
        "",
        'if [ -n "${SLURM_ARRAY_TASK_ID:-}" ]; then',
        '    export PROFIT_ARRAY_ID="$SLURM_ARRAY_TASK_ID"',
        "fi",
        'export PROFIT_RUNNER_ADDRESS="${PROFIT_RUNNER_ADDRESS:-$SLURM_SUBMIT_HOST}"',
    ]
    if openmp:
        threads = "$SLURM_CPUS_ON_NODE" if whole_node else "${SLURM_CPUS_PER_TASK:-1}"
        lines += [f'export OMP_NUM_THREADS="{threads}"', "export OMP_PLACES=threads"]
    lines += ["", command, ""]
    return "\n".join(lines)


def array_spec(indices: Iterable[int], parallel: int = 0) -> str:
    """``[0, 1, 2, 5, 7, 8]`` -> ``'0-2,5,7-8'``, with ``%parallel`` when that is > 0.

    Args:
        indices: The array's task indices.
        parallel: The most tasks Slurm runs at once (0: no bound).
    """
    parts: list[str] = []
    indices = sorted(indices)
    start = previous = None
    for index in indices + [None]:
        if start is not None and previous is not None and index == previous + 1:  # (both set together)
            previous = index
            continue
        if start is not None:
            parts.append(str(start) if start == previous else f"{start}-{previous}")
        start = previous = index
    return ",".join(parts) + (f"%{parallel}" if parallel else "")


def array_chunks(run_ids: Iterable[int], max_array_size: int) -> list[tuple[int, list[int]]]:
    """Split run ids into arrays: ``(base run id, task indices)`` with every index < ``max_array_size``.

    Args:
        run_ids: The runs.
        max_array_size: Slurm's ``MaxArraySize``.
    """
    chunks: list[tuple[int, list[int]]] = []
    for run_id in sorted(run_ids):
        if chunks and run_id - chunks[-1][0] < max_array_size:
            chunks[-1][1].append(run_id - chunks[-1][0])
        else:
            chunks.append((run_id, [0]))
    return chunks


def parse_job_id(stdout: str) -> str:
    """The job id from ``sbatch --parsable`` (``'123'`` or ``'123;cluster'``).

    Args:
        stdout: What sbatch printed.

    Raises:
        SchedulerError: It printed no job id.
    """
    first = stdout.strip().splitlines()[0] if stdout.strip() else ""
    job_id = first.split(";", 1)[0].strip()
    if not job_id.isdigit():
        raise SchedulerError(f"sbatch printed {stdout.strip()[:200]!r} instead of a job id")
    return job_id


def parse_max_array_size(scontrol_config: str) -> int:
    """``MaxArraySize`` from ``scontrol show config`` (Slurm's default if it is not there).

    Args:
        scontrol_config: What ``scontrol show config`` printed.
    """
    match = re.search(r"^\s*MaxArraySize\s*=\s*(\d+)", scontrol_config, re.MULTILINE)
    return int(match.group(1)) if match else DEFAULT_MAX_ARRAY_SIZE


class JobRecord(namedtuple("JobRecord", ["job_id", "state", "exit_code", "signal", "detail"])):
    """One line of ``sacct``: ``state`` is the first word (``'CANCELLED by 0'`` -> ``CANCELLED``)."""

    __slots__ = ()

    @property
    def final(self) -> bool:
        """Whether the job's state is final (it will not change)."""
        return self.state in FINAL_STATES


def sacct_command(job_ids: Iterable[str]) -> list[str]:
    """Jobs and their steps (a step tells a signal that the job's own exit code hides).

    Args:
        job_ids: The jobs to ask about.

    Returns:
        The sacct command line.
    """
    return ["sacct", "-n", "-P", "-o", "JobID,State,ExitCode", "-j", ",".join(sorted(set(job_ids)))]


# sacct shortens long lists of pending tasks (123_[0-1,4,...]) unless told not to.
SACCT_ENVIRONMENT = {"SLURM_BITSTR_LEN": "0"}


def parse_sacct(stdout: str) -> dict[str, JobRecord]:
    """``JobID|State|ExitCode`` lines -> records by job id (``'123'``, ``'123_4'``, steps ``'123_4.0'``).

    Array tasks that never started share one line (``123_[5-9,12%2]``): it
    stands for each of them.

    Args:
        stdout: What sacct printed.
    """
    records = {}
    for line in stdout.splitlines():
        fields = line.strip().split("|")
        if len(fields) < 3:
            continue
        job_ids, state_text, exit_text = _expand_tasks(fields[0]), fields[1], fields[2]
        words = state_text.split()
        code, _, signal = exit_text.partition(":")
        for job_id in job_ids:
            records[job_id] = JobRecord(
                job_id,
                words[0] if words else "UNKNOWN",
                int(code) if code.isdigit() else 0,
                int(signal) if signal.isdigit() else 0,
                " ".join(words[1:]),
            )
    return records


def _expand_tasks(job_id: str) -> list[str]:
    """``'123_[1-3,7,10-14:2%2]'`` -> ``123_1, 123_2, 123_3, 123_7, 123_10, 123_12, 123_14``;
    other ids as they are."""
    match = re.fullmatch(r"(\d+)_\[([\d,:\-]+)(?:%\d+)?\]", job_id)
    if match is None:
        return [job_id]
    tasks = []
    for part in match.group(2).split(","):
        span = re.fullmatch(r"(\d+)(?:-(\d+)(?::(\d+))?)?", part)
        if span:
            first, last, step = int(span[1]), int(span[2] or span[1]), int(span[3] or 1)
            tasks += [f"{match.group(1)}_{index}" for index in range(first, last + 1, max(step, 1))]
    return tasks


class JobEnd(namedtuple("JobEnd", ["record", "step"], defaults=[None])):
    """How a Slurm job ended, read like an exit status by :meth:`Runner._settle`.

    ``step`` is the record of the job's first step (``srun``), if there was one.
    """

    __slots__ = ()

    @property
    def success(self) -> bool:
        """Whether the job completed (state ``COMPLETED``)."""
        return self.record.state == "COMPLETED"

    def describe(self, *, through_shell: bool = False) -> str:
        """E.g. 'exited with code 3 (Slurm job 12_3: FAILED)', 'ran out of memory (Slurm job 12: OUT_OF_MEMORY)'.

        Args:
            through_shell: Changes nothing (a job's code is always read as through a shell).
        """
        record = self.record
        state = f"{record.state} {record.detail}".strip()
        where = f"(Slurm job {record.job_id}: {state})"
        if record.state in ("COMPLETED", "FAILED"):
            signal = record.signal or (self.step.signal if self.step is not None else 0)
            status = ExitStatus(signal=signal) if signal else ExitStatus(code=record.exit_code)
            return f"{status.describe(through_shell=True)} {where}"
        return f"{_ENDED_BY_SLURM.get(record.state, 'was ended by Slurm')} {where}"


# --- the one gateway to the scheduler -----------------------------------------------------


class SlurmCommands:
    """Runs Slurm's commands: transient failures are retried with backoff, others raise
    :class:`SchedulerError` with the command's stderr.

    Args:
        logger: Where retries are logged.
        retries: How often a failed command is tried again.
        retry_sleep: Seconds before the first retry (doubled for each next one).
        timeout: Seconds a command may take.
    """

    def __init__(self, logger: logging.Logger, retries: int = 3, retry_sleep: float = 1.0, timeout: float = 60.0):
        self.logger, self.retries, self.retry_sleep, self.timeout = logger, retries, retry_sleep, timeout

    def run(
        self,
        argv: list[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        retries: int | None = None,
        idempotent: bool = True,
    ) -> str:
        """The command's stdout; raises :class:`SchedulerError` when it fails for good.

        A command that is not ``idempotent`` (sbatch) is not retried after a failure
        that leaves open whether it took effect (a timeout).

        Args:
            argv: The command.
            env: Its environment (default: this process's).
            cwd: Its working directory.
            retries: How often it is tried again (default: the instance's ``retries``).
            idempotent: Whether it may be run again after such a failure.

        Raises:
            SchedulerNotFound: The command is not on ``PATH``.
            SchedulerError: The command failed for good.
        """
        import subprocess  # here: every worker process imports this module

        retries = self.retries if retries is None else retries
        pause = self.retry_sleep
        for attempt in range(retries + 1):
            try:
                # A session of its own: Ctrl-C in the terminal is for the runner, which
                # then cancels its jobs; it must not kill a command halfway.
                done = subprocess.run(
                    argv,
                    env=env,
                    cwd=cwd,
                    capture_output=True,
                    text=True,
                    timeout=self.timeout,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            except FileNotFoundError:
                raise SchedulerNotFound(
                    f"{argv[0]} was not found; the slurm runner needs Slurm's commands on PATH "
                    "(run the study on a machine that can submit jobs, such as a cluster's login node)"
                ) from None
            except subprocess.TimeoutExpired:
                problem, transient = f"did not answer within {self.timeout:g} s", idempotent
            else:
                if done.returncode == 0:
                    return done.stdout
                stderr = " ".join(done.stderr.strip().splitlines()[-3:]) or "(no error message)"
                problem = f"exited with code {done.returncode}: {stderr}"
                transient = bool(_TRANSIENT.search(done.stderr)) or (
                    idempotent and bool(_AMBIGUOUS.search(done.stderr))
                )
            if not transient or attempt == retries:
                unsure = not idempotent and _AMBIGUOUS.search(problem)
                raise SchedulerError(
                    f"{argv[0]} failed ({problem})"
                    + (f" after {attempt + 1} tries" if attempt else "")
                    + ("; it may have submitted the jobs all the same: check squeue" if unsure else "")
                )
            self.logger.warning("%s failed (%s); trying again in %g s", argv[0], problem, pause)
            time.sleep(pause)
            pause *= 2
        raise AssertionError("unreachable")


def still_queued(commands: SlurmCommands, job_ids: Iterable[str]) -> list[str]:
    """The jobs (or array tasks) of ``job_ids`` that ``squeue`` still lists: pending, running, or
    completing (ended, but Slurm is still killing their processes); an array's tasks one by one.

    Args:
        commands: The gateway to Slurm's commands.
        job_ids: The jobs.

    Raises:
        SchedulerError: squeue failed.
    """
    try:
        # -r: an array's pending tasks one by one, not folded into ``123_[4-10]``.
        out = commands.run(["squeue", "-h", "-r", "-o", "%i", "-j", ",".join(sorted(set(job_ids)))], retries=0)
    except SchedulerError as error:
        if "Invalid job id" in str(error):  # (squeue's answer when none of them is known any more)
            return []
        raise
    return out.split()


def wait_until_gone(
    commands: SlurmCommands, job_ids: Iterable[str], timeout: float, between: Callable[[], None] | None = None
) -> list[str]:
    """Wait (at most ``timeout`` seconds) until ``squeue`` lists none of ``job_ids``; the ones it
    still lists then. A cancelled job's processes live on for a while (up to Slurm's KillWait):
    a worker among them may still write its run's row, so a row is not final before they are gone.

    Args:
        commands: The gateway to Slurm's commands.
        job_ids: The jobs (cancelled ones, usually).
        timeout: Seconds to wait at most.
        between: Called between two looks (a runner takes in results meanwhile).

    Raises:
        SchedulerError: squeue failed every time it was asked until ``timeout`` ran out (a failure
            now and then is asked again: it says nothing about the jobs).
    """
    asked = sorted(set(job_ids))  # (always asked for by these ids: squeue's answer may name tasks)
    listed = asked
    deadline = time.monotonic() + timeout
    pause = 0.05
    failure: SchedulerError | None = None  # (of the last look)
    while listed:
        try:
            listed = still_queued(commands, asked)
            failure = None
        except SchedulerError as error:
            if failure is None:  # (once in a row of failures: the error raised at the end says the rest)
                commands.logger.warning("squeue: %s", error)
            failure = error
        if not listed or time.monotonic() >= deadline:
            if failure is not None:
                raise failure
            break
        if between is not None:
            between()
        time.sleep(pause)
        pause = min(2 * pause, 0.5)
    return listed


# --- the runner ---------------------------------------------------------------------------


class SlurmJob(RunHandle):
    """The handle of a run submitted to Slurm (a job, or a task of a job array).

    It has no process here (``tree()`` is None): the runner polls it and settles
    it when its results arrive or, after ``sacct`` reported the job ended
    without them, when :meth:`poll` returns the scheduler's verdict.

    Args:
        job_id: ``'123'`` or ``'123_4'``: what sacct and scancel take.
        array_job: ``'123'``: what sacct is asked about.
    """

    notice = Notice.POLL
    clock_at_launch = False  # the timeout counts from when Slurm starts the job

    def __init__(self, job_id: str, array_job: str):
        self.job_id = job_id  # '123' or '123_4': what sacct and scancel take
        self.array_job = array_job  # '123': what sacct is asked about
        self.started = False
        self.ended: JobEnd | None = None
        self.ended_seen = 0.0

    def __repr__(self) -> str:
        return f"<SlurmJob {self.job_id}>"

    def poll(self) -> JobEnd | None:
        """Slurm's verdict once sacct reported the job ended without results, and a
        moment passed in which results could still arrive; else None."""
        if self.ended is not None and time.monotonic() >= self.ended_seen:
            return self.ended
        return None

    def record(self, records: Mapping[str, JobRecord], cancelled: bool = False) -> JobRecord | None:
        """This job's sacct record, if it has one yet.

        A line of the array's bare id (``123``) may stand for any one task (the
        one that carries the array's id), so it is never taken as this task's.
        Only after this runner cancelled the task (``cancelled``) does a
        CANCELLED bare line count: it then stands for the tasks that never started.

        Args:
            records: sacct's records by job id (:func:`parse_sacct`).
            cancelled: This runner cancelled the task.
        """
        record = records.get(self.job_id)
        if record is None and cancelled and self.job_id != self.array_job:
            bare = records.get(self.array_job)
            if bare is not None and bare.state == "CANCELLED":
                record = bare
        return record


class PackedJob(SlurmJob):
    """The handle of a run that shares an array task with others (``runs_per_job`` > 1).

    ``pack_dir`` is where the task loop (:mod:`profit.run.packed`) notes which
    runs it started and how each ended; ``ended`` is set from there (an exit
    status), or from the task's verdict for the run in flight when it ended.

    Args:
        job_id: The array task's id (``'123_4'``).
        array_job: The array's id (``'123'``).
        pack_dir: Where the task loop notes which runs it started and how each ended.
        task_runs: Every run of its task.
    """

    def __init__(self, job_id: str, array_job: str, pack_dir: str, task_runs: list[int]):
        super().__init__(job_id, array_job)
        self.pack_dir = pack_dir
        self.task_runs = task_runs  # every run of its task

    def __repr__(self) -> str:
        return f"<PackedJob {self.job_id}>"

    def noted(self, run_id: int, what: str) -> bool:
        """Whether the task loop noted ``what`` (``start``, ``end``) of ``run_id``.

        Args:
            run_id: The run.
            what: ``start`` or ``end``.
        """
        return os.path.exists(os.path.join(self.pack_dir, f"{run_id}.{what}"))


class Refused(namedtuple("Refused", ["reason"])):
    """A run the task loop did not start (its job's time left was shorter than the timeout)."""

    __slots__ = ()
    success = False

    def describe(self, *, through_shell: bool = False) -> str:
        """'was <reason>' (``through_shell`` changes nothing).

        Args:
            through_shell: Changes nothing.
        """
        return f"was {self.reason}"


# Slurm ended a job before its runs could: its unstarted runs go to another job, no attempt counted.
_ENDED_EARLY = frozenset({"CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "DEADLINE", "REVOKED"})
PACK_DIR = ".profit-packs"


class SlurmRunner(Runner, label="slurm"):
    """Run each Worker as a Slurm batch job (job arrays for :meth:`spawn_array`).

    Its parameters are keyword only; ``**kwargs`` are those of :class:`Runner`.

    Args:
        cpus: CPUs per run (``--cpus-per-task``); ``'all'`` or 0 takes whole nodes.
        openmp: export ``OMP_NUM_THREADS`` (and ``OMP_PLACES``) to match ``cpus``.
        custom: use the batch script at ``path`` as it is, instead of writing one.
        path: the batch script (relative: in the work directory).
        options: extra ``#SBATCH`` options, e.g. ``{"time": "1:00:00", "partition": "short"}``
            (default ``{"job-name": "profit"}``).
        command: how the batch script starts the worker.
        parallel: how many runs of an array may run at once (``%parallel``; 0: as the cluster allows;
            one of the ``**kwargs``).
        min_poll: the scheduler is asked about jobs every ``min_poll`` seconds at first,
            backing off to every ``max_poll`` seconds while nothing changes.
        max_poll: the longest interval between such questions (seconds).
        submit_retries: how often a transiently failing ``sbatch`` is tried again.
        runs_per_job: how many runs each array task serves, one after another, each in a
            process of its own forked from the task's loop (default 1: a task per run). ``'auto'``:
            the runs of a batch spread over ``parallel`` tasks, or without ``parallel`` over as many
            tasks as the cluster has room for (``sinfo``: its CPUs divided by ``cpus``).
            A run keeps its own state, reason, timeout and retries; when a job ends early
            (time limit, node failure, scancel) its unstarted runs go to another job without
            counting an attempt, and the run in flight fails with Slurm's verdict (or is retried).
        **kwargs: the options of :class:`Runner`.

    Raises:
        ConfigError: An option is not valid (``options`` not a mapping, ``runs_per_job`` below 1,
            ``custom`` without a batch script at ``path``, ...).
    """

    passes_kwargs_on = True  # **kwargs are the base class's options (checked against its signature)

    def __init__(
        self,
        *,
        cpus: int | str = 1,
        openmp: bool = False,
        custom: bool = False,
        path: str = "slurm.bash",
        options: Mapping[str, object] | None = None,
        command: str = DEFAULT_COMMAND,
        min_poll: float = 0.5,
        max_poll: float = 30.0,
        submit_retries: int = 3,
        runs_per_job: int | str = 1,
        **kwargs,
    ):
        if runs_per_job != "auto":
            runs_per_job = check.whole_number(runs_per_job, "slurm runner: runs_per_job", hint=" (or 'auto')")
            if runs_per_job < 1:
                raise ConfigError(f"slurm runner: runs_per_job must be 1 or more (or 'auto'), got {runs_per_job}")
        self.runs_per_job = runs_per_job
        if cpus != "all":
            cpus = check.whole_number(cpus, "slurm runner: cpus", hint=" (0 or 'all': whole nodes)")
        submit_retries = check.whole_number(submit_retries, "slurm runner: submit_retries")
        if options is not None and not isinstance(options, Mapping):
            raise ConfigError(f"slurm runner: options must be a mapping of #SBATCH option to value, got {options!r}")
        min_poll = check.seconds(min_poll, "slurm runner: min_poll")
        max_poll = check.seconds(max_poll, "slurm runner: max_poll")
        self.openmp = check.boolean(openmp, "slurm runner: openmp")
        self.custom = check.boolean(custom, "slurm runner: custom")
        self.cpus, self.command = cpus, command
        self.options = {"job-name": "profit", **(options or {})}
        self.min_poll, self.max_poll = min_poll, max(max_poll, min_poll)
        self.path = os.path.abspath(os.path.join(str(kwargs.get("work_dir", ".")), path))
        if self.custom and not os.path.isfile(self.path):
            raise ConfigError(f"slurm runner: custom is set, but there is no batch script at {self.path}")
        super().__init__(**kwargs)
        self._slurm = SlurmCommands(self.logger, retries=submit_retries)
        self._poll_every = self.min_poll
        self._next_poll = 0.0
        self._max_array_size: int | None = None
        self._slots: int | None = None
        self._env: dict[str, str] | None = None
        self.uncancelled: set[str] = set()  # jobs whose scancel failed: the profit command notes them
        self._packs = 0  # pack directories made so far
        if not self.custom:
            self._write_script()

    def __repr__(self) -> str:
        details = (
            [f"cpus={self.cpus}"] + (["OpenMP"] if self.openmp else []) + (["custom script"] if self.custom else [])
        )
        return f"<{type(self).__name__} ({', '.join(details)})>"

    @property
    def config(self) -> dict:
        """The runner's options (:attr:`Runner.config`) with the Slurm ones (``cpus``, ``runs_per_job``, ...)."""
        return {
            **super().config,
            "cpus": self.cpus,
            "openmp": self.openmp,
            "custom": self.custom,
            "path": self.path,
            "options": dict(self.options),
            "command": self.command,
            "min_poll": self.min_poll,
            "max_poll": self.max_poll,
            "runs_per_job": self.runs_per_job,
        }

    @property
    def capacity(self) -> int:
        """0 (no limit: Slurm queues) without ``parallel``. With it, each job array is throttled
        to ``%parallel`` and the next one goes in once the previous ones ended: no room while
        any run is active, else room for one array (:meth:`_batch_end`)."""
        if not self.parallel:
            return 0
        return len(self.runs) or self.max_array_size

    def _write_script(self) -> None:
        log_path = self.worker_config.get("log_path", "log")
        os.makedirs(os.path.join(self.work_dir, log_path), exist_ok=True)
        command = self.command
        if self.packing:
            # The task loop forks each run from itself; a study's own worker command runs per run,
            # started by the loop (without srun: a step of its own could not start inside the loop's).
            loop = f"{shlex.quote(sys.executable)} -m profit.run.packed"
            command = f"srun {loop}" if self._forks_runs else loop
        script = batch_script(
            command=command,
            cpus=self.cpus,
            openmp=self.openmp,
            options=self.options,
            output=os.path.join(log_path, "slurm-%j.out"),
        )
        with open(self.path, "w") as file:
            file.write(script)

    @classmethod
    def end_jobs(cls, job_ids: Iterable[str], timeout: float = 120.0) -> None:
        """Cancel jobs of an earlier runner of the study (one that was killed), and wait until
        their processes are gone: until then a worker among them may still write its run's row
        (a run that Slurm's SIGTERM cut short would read as failed). Ended jobs are ignored.

        Args:
            job_ids: The jobs.
            timeout: Seconds to wait for their processes to end.

        Raises:
            SchedulerError: Slurm still lists some of them after ``timeout`` seconds.
        """
        job_ids = list(job_ids)
        commands = SlurmCommands(logging.getLogger("profit.run.slurm"))
        try:
            commands.run(["scancel", *job_ids])
        except SchedulerError as error:  # "Invalid job id": it has ended already
            commands.logger.info("scancel of leftover jobs: %s", error)
        try:
            left = wait_until_gone(commands, job_ids, timeout)
        except SchedulerError as error:
            raise SchedulerError(
                f"could not learn whether the batch jobs left by the previous runner ({', '.join(job_ids)}) "
                f"are gone within {timeout:g} s ({error}); run the study again once squeue answers and no "
                "longer lists them"
            ) from None
        if left:
            raise SchedulerError(
                f"the batch jobs left by the previous runner ({', '.join(left)}) are still listed by squeue "
                f"{timeout:g} s after scancel; run the study again once squeue no longer lists them"
            )

    def clean(self) -> None:
        """Remove what runs left in the work directory, and the batch script this runner wrote."""
        super().clean()
        if not self.custom and os.path.exists(self.path):
            os.remove(self.path)
        import shutil

        shutil.rmtree(os.path.join(self.work_dir, PACK_DIR), ignore_errors=True)

    # --- submitting ---------------------------------------------------------------------

    def _submit_environment(self, base_run_id: int) -> dict[str, str]:
        if self._env is None:
            env = self.worker_environment()
            # profit-worker of this Python, even where its bin/ is not on PATH (a venv).
            env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
            self._env = env
        return {**self._env, "PROFIT_RUN_ID": str(base_run_id)}

    def _sbatch(self, base_run_id: int, array: str | None = None, extra: Mapping[str, str] | None = None) -> str:
        # --export=ALL: the job gets the environment built here, even where a site sets
        # SBATCH_EXPORT=NONE. (ALL alone is fast; ALL,VAR=... makes slurmd load a login shell.)
        argv = ["sbatch", "--parsable", "--export=ALL"] + ([f"--array={array}"] if array else []) + [self.path]
        try:
            env = {**self._submit_environment(base_run_id), **(extra or {})}
            out = self._slurm.run(argv, env=env, cwd=self.work_dir, idempotent=False)
        except SchedulerError as error:
            why = f"submitting runs to Slurm failed: {error}; the batch script is {self.path}"
            raise type(error)(why) from None  # the same kind: an outage, or no Slurm here
        finally:
            self.interface.poll()  # workers waiting for an answer while sbatch ran
        return parse_job_id(out)

    def _start(self, run_id: int) -> SlurmJob:
        if self.packing:  # (a run tried again: a pack of one)
            return self._submit_packs([run_id], launch=False)[0][1]
        job_id = self._sbatch(run_id)
        self.logger.debug("run %d is Slurm job %s", run_id, job_id)
        self._poll_soon()
        return SlurmJob(job_id, job_id)

    @property
    def max_array_size(self) -> int:
        """The cluster's ``MaxArraySize`` (asked once)."""
        if self._max_array_size is None:
            try:
                self._max_array_size = parse_max_array_size(self._slurm.run(["scontrol", "show", "config"], retries=1))
            except SchedulerError as error:
                self.logger.warning("could not read MaxArraySize (%s); assuming %d", error, DEFAULT_MAX_ARRAY_SIZE)
                self._max_array_size = DEFAULT_MAX_ARRAY_SIZE
        return self._max_array_size

    @property
    def _forks_runs(self) -> bool:
        """Whether a packed task forks its runs (the default command) rather than starting ``command`` per run."""
        return self.command == DEFAULT_COMMAND

    @property
    def packing(self) -> bool:
        """Whether array tasks serve several runs each (``runs_per_job``)."""
        return self.runs_per_job != 1

    def _pack_size(self, count: int) -> int:
        if self.runs_per_job == "auto":
            slots = self.parallel or self.slots
            return max(1, -(-count // slots)) if slots else 1  # (the cluster's size unknown: no packing)
        return int(self.runs_per_job)

    @property
    def slots(self) -> int:
        """How many runs the cluster (the partition in ``options``, if any) can hold at once, by ``sinfo``:
        its CPUs divided by the CPUs of a run, or its nodes for whole-node runs (asked once; 0 if unknown)."""
        if self._slots is None:
            partition = self.options.get("partition")
            field = "%D" if self.cpus in ("all", 0) else "%C"  # nodes, or CPUs as allocated/idle/other/total
            argv = ["sinfo", "-h", "-o", field] + ([f"--partition={partition}"] if partition else [])
            try:
                lines = self._slurm.run(argv, retries=1).split()
                total = sum(int(line.split("/")[-1]) for line in lines if line.split("/")[-1].isdigit())
            except SchedulerError as error:
                self.logger.warning("sinfo could not tell the cluster's size (%s): auto packs no runs", error)
                total = 0
            per_run = 1 if self.cpus in ("all", 0) else int(self.cpus)
            self._slots = max(1, total // per_run) if total else 0
        return self._slots

    def _submit_packs(self, run_ids: list[int], *, launch: bool = True) -> list[tuple[int, PackedJob]]:
        """Submit these runs, ``runs_per_job`` to a task, as job arrays; their handles, each array's launched
        as soon as it is submitted (unless not ``launch``)."""
        size = self._pack_size(len(run_ids))
        ids = sorted(run_ids)
        groups = [ids[start : start + size] for start in range(0, len(ids), size)]
        handles: list[tuple[int, PackedJob]] = []
        for first in range(0, len(groups), self.max_array_size):
            chunk = groups[first : first + self.max_array_size]
            self._ensure_rows(max(group[-1] for group in chunk) + 1)
            self._packs += 1
            pack_dir = os.path.join(self.work_dir, PACK_DIR, f"{os.getpid()}-{time.time_ns()}-{self._packs}")
            os.makedirs(pack_dir)
            from .packed import TASKS_FILE, write_json

            spec: dict[str, object] = {"tasks": chunk, "timeout": self.timeout}
            if not self._forks_runs:
                spec["worker"] = ["/bin/sh", "-c", self.command]
            write_json(os.path.join(pack_dir, TASKS_FILE), spec)
            for group in chunk:
                for run_id in group:
                    self.interface.mark(run_id, RunState.RUNNING)
            try:
                job_id = self._sbatch(
                    chunk[0][0], array_spec(range(len(chunk)), self.parallel), {"PROFIT_PACK_DIR": pack_dir}
                )
            except BaseException:
                for group in chunk:
                    for run_id in group:
                        self.interface.mark(run_id, RunState.PENDING)
                raise
            self.logger.info(
                "runs %d..%d are Slurm job array %s (%d tasks of up to %d runs)",
                chunk[0][0],
                chunk[-1][-1],
                job_id,
                len(chunk),
                size,
            )
            submitted = [
                (run_id, PackedJob(f"{job_id}_{index}", job_id, pack_dir, group))
                for index, group in enumerate(chunk)
                for run_id in group
            ]
            if launch:  # (now: should a later array fail to go in, these are tracked all the same)
                for run_id, handle in submitted:
                    self._launch(run_id, handle)
            handles += submitted
        self._poll_soon()
        return handles

    def _start_batch(self, run_ids: list[int]) -> None:
        """Submit these runs as job arrays (split where task indices would reach ``MaxArraySize``),
        each throttled to ``%parallel``."""
        if self.packing:
            for run_id in run_ids:
                self._forget_outcome(run_id)
            self._submit_packs(run_ids)
            return
        for base, indices in array_chunks(run_ids, self.max_array_size):
            chunk = [base + index for index in indices]
            self._ensure_rows(chunk[-1] + 1)
            for run_id in chunk:
                self._forget_outcome(run_id)
                self.interface.mark(run_id, RunState.RUNNING)
            try:
                job_id = self._sbatch(base, array_spec(indices, self.parallel))
            except BaseException:
                for run_id in chunk:
                    self.interface.mark(run_id, RunState.PENDING)
                raise
            self.logger.info("runs %d..%d are Slurm job array %s", chunk[0], chunk[-1], job_id)
            for index, run_id in zip(indices, chunk):
                self._launch(run_id, SlurmJob(f"{job_id}_{index}", job_id))
        self._poll_soon()

    def _batch_end(self, run_ids: list[int], start: int, end: int) -> int:
        """With a ``parallel`` limit, one job array at a time: the runs from ``start`` on whose
        task indices fit one array."""
        if not self.parallel:
            return end
        low = high = run_ids[start]
        for position in range(start + 1, end):
            low, high = min(low, run_ids[position]), max(high, run_ids[position])
            if high - low >= self.max_array_size:
                return position
        return end

    def respawn_array(
        self, run_ids: Iterable[int], stop: Callable[[], bool] | None = None, tick: Callable[[], object] | None = None
    ) -> None:
        """Deprecated: :meth:`drive` (which this calls) runs them as job arrays until all ended or ``stop()``.

        Unlike the first build's ``respawn_array``, it returns when the runs have
        ended (or ``stop()`` said so), not as soon as the arrays are submitted.

        Args:
            run_ids: The runs (as :meth:`drive` takes them).
            stop: Called while the loop runs; True ends it.
            tick: Called at least every half second while the loop waits.
        """
        self.drive(run_ids, stop=stop, tick=tick)

    # --- noticing ends ----------------------------------------------------------------------

    def _poll_soon(self) -> None:
        self._poll_every = self.min_poll
        self._next_poll = min(self._next_poll or float("inf"), time.monotonic() + self.min_poll)

    def check_runs(self) -> None:
        """Settle runs whose results arrived or whose job ended; ask the scheduler about the others when it is time."""
        super().check_runs()
        if self.packing:
            self._read_packs()
        if self.runs and time.monotonic() >= self._next_poll:
            self._ask_scheduler()

    def _ask_scheduler(self) -> None:
        jobs = {job.array_job for job in self._jobs().values()}
        changed = False
        try:
            records = self._sacct(jobs)
        except SchedulerError as error:
            self.logger.warning("could not ask Slurm about %d jobs (%s); asking again later", len(jobs), error)
            records = {}
        self.interface.poll()  # workers waiting for an answer while sacct ran
        now = time.monotonic()
        ended_tasks: dict[str, list[int]] = {}
        for run_id, job in self._jobs().items():
            record = job.record(records)
            if record is None:
                continue  # not in the accounting yet: pending
            if isinstance(job, PackedJob):  # its runs' clocks run in the task loop
                if record.final and job.ended is None and self._steps_final(job, records):
                    changed = True
                    ended_tasks.setdefault(job.job_id, []).append(run_id)
                continue
            if not job.started and record.state != "PENDING":
                job.started = changed = True
                self._start_clock(run_id)
            if record.final and job.ended is None:
                changed = True
                if self.interface.transmitted(run_id):
                    self._settle(run_id, None)
                else:
                    # Results may still be on their way (a message in flight, a file
                    # system that shows writes late): give them a moment.
                    job.ended, job.ended_seen = JobEnd(record, records.get(f"{job.job_id}.0")), now + self.min_poll
        for run_ids in ended_tasks.values():
            self._task_ended(run_ids, records, now)
        self._poll_every = self.min_poll if changed else min(self.max_poll, self._poll_every * 1.5)
        self._next_poll = now + self._poll_every

    # --- packed tasks ------------------------------------------------------------------------

    @staticmethod
    def _steps_final(job: SlurmJob, records: Mapping[str, JobRecord]) -> bool:
        """Whether the task's steps ended too (its processes are gone: a run may go elsewhere)."""
        steps = (records.get(f"{job.job_id}.{step}") for step in ("batch", "0"))
        return all(step.final for step in steps if step is not None)

    def _read_packs(self) -> None:
        """Note how the runs of packed tasks ended, from the task loops' ``.end`` files."""
        by_dir: dict[str, dict[int, PackedJob]] = {}
        for run_id, job in self._jobs().items():
            if isinstance(job, PackedJob) and job.ended is None:
                by_dir.setdefault(job.pack_dir, {})[run_id] = job
        if not by_dir:
            return
        import json

        self.interface.poll()
        now = time.monotonic()
        for pack_dir, jobs in by_dir.items():
            try:
                names = os.listdir(pack_dir)
            except OSError:
                continue
            for name in names:
                run_id = int(name[:-4]) if name.endswith(".end") and name[:-4].isdigit() else -1
                job = jobs.get(run_id)  # type: ignore[assignment]
                if job is None or run_id not in self.runs:
                    continue
                try:
                    with open(os.path.join(pack_dir, name)) as file:
                        end = json.load(file)
                except (OSError, ValueError):
                    continue  # (being written)
                if end.get("cancelled"):
                    continue  # this runner cancelled it, and settled it then
                if end.get("timed_out"):  # (its results arrived before its time was up: it is done)
                    self._settle(run_id, None, timed_out=not self.interface.transmitted(run_id))
                    continue
                if "refused" in end:
                    job.ended = Refused(end["refused"])  # type: ignore[assignment]
                else:
                    job.ended = ExitStatus(end.get("code"), end.get("signal"))  # type: ignore[assignment]
                # Results may still be on their way (a message in flight): give them a moment.
                job.ended_seen = now + self.min_poll

    def _task_ended(self, run_ids: list[int], records: Mapping[str, JobRecord], now: float) -> None:
        """A packed task ended: its runs that ended are settled (or will be, from their ``.end``
        files); the one in flight gets Slurm's verdict; the ones it did not start go to another
        job (without counting an attempt) when Slurm ended it early."""
        jobs = self._jobs()
        first = jobs[run_ids[0]]
        assert isinstance(first, PackedJob)
        record = first.record(records)
        assert record is not None
        started_any = any(first.noted(run_id, "start") for run_id in first.task_runs)
        again = []
        for run_id in run_ids:
            job = jobs[run_id]
            if self.interface.transmitted(run_id):
                self._settle(run_id, None)
            elif first.noted(run_id, "end"):
                continue  # read by _read_packs
            elif first.noted(run_id, "start") or not (started_any or record.state in _ENDED_EARLY):
                job.ended, job.ended_seen = JobEnd(record, records.get(f"{job.job_id}.0")), now + self.min_poll
            else:
                again.append(run_id)
        if again:
            self.logger.info(
                "Slurm job %s ended (%s) before %d of its runs started; they go to another job",
                first.job_id,
                record.state,
                len(again),
            )
            for run_id in again:
                self._active.remove(run_id)  # (their attempts stay as they were)
            # (should sbatch fail, the runs not submitted are pending again, and the error ends the drive)
            self._submit_packs(again)

    def _poll_interval(self) -> float:
        return min(self.sleep, max(0.0, self._next_poll - time.monotonic())) if self.runs else self.sleep

    # --- stopping ----------------------------------------------------------------------------

    def _sacct(self, job_ids: Iterable[str]) -> dict[str, JobRecord]:
        return parse_sacct(self._slurm.run(sacct_command(job_ids), env={**os.environ, **SACCT_ENVIRONMENT}, retries=0))

    def _scancel(self, job_ids: list[str]) -> bool:
        """Cancel these jobs; False (and a warning) if scancel failed."""
        if not job_ids:
            return True
        try:
            self._slurm.run(["scancel", *job_ids])
        except SchedulerError as error:
            self.logger.warning("scancel: %s", error)
            return False
        return True

    def _jobs(self) -> dict[int, SlurmJob]:
        """The active runs' jobs, by run id."""
        return {run_id: job for run_id, job in self.runs.items() if isinstance(job, SlurmJob)}

    def _cancel_targets(self, jobs: Iterable[SlurmJob]) -> list[str]:
        """What to scancel: a whole array when all its active tasks go, else the tasks."""
        jobs = list(jobs)
        leaving = {job.job_id for job in jobs}
        targets = []
        for array in sorted({job.array_job for job in jobs}):
            tasks = [job.job_id for job in self._jobs().values() if job.array_job == array]
            targets += [array] if all(task in leaving for task in tasks) else [t for t in tasks if t in leaving]
        return targets

    def _wait_until_ended(self, jobs: dict[int, SlurmJob]) -> None:
        """After a scancel of ``jobs`` (by run id): wait (bounded) until Slurm reports them ended,
        so that results that arrived before are kept, and then until their processes are gone."""
        deadline = time.monotonic() + self.cancel_grace + 10
        pending = set(jobs)
        while pending and time.monotonic() < deadline:
            try:
                records = self._sacct(jobs[r].array_job for r in pending)
            except SchedulerError:
                break
            pending = {r for r in pending if not getattr(jobs[r].record(records, cancelled=True), "final", False)}
            if pending:
                self.interface.poll()
                time.sleep(0.2)
        if pending:
            self.logger.warning("%d cancelled jobs are not reported ended by Slurm yet", len(pending))
        # Ended for Slurm, but until their processes are gone the runs' workers may still write their rows.
        cancelled_jobs = (job.job_id for job in jobs.values())
        try:
            left = wait_until_gone(self._slurm, cancelled_jobs, KILL_WAIT_BOUND, self.interface.poll)
        except SchedulerError as error:
            self.logger.warning("could not learn whether the cancelled jobs are gone: %s", error)
        else:
            if left:
                self.logger.warning("%d cancelled jobs are still listed by squeue", len(left))

    def _stop_runs(
        self, run_ids: list[int], grace: float, *, cancelled: bool = False, timed_out: bool = False
    ) -> list[RunStatus]:
        """``scancel`` the runs' jobs and settle them; a cancel first waits (bounded) until Slurm
        reports the jobs ended, so that results that arrived before are kept."""
        active = self._jobs()
        if not timed_out:
            # Runs of packed tasks that keep other runs: the task loop skips or ends them.
            alone = []
            for run_id in run_ids:
                job = active[run_id]
                if isinstance(job, PackedJob) and any(
                    other in active and other not in run_ids and active[other].job_id == job.job_id
                    for other in job.task_runs
                ):
                    with open(os.path.join(job.pack_dir, f"{run_id}.cancel"), "w"):
                        pass
                    alone.append(run_id)
            if alone:
                kept = set(alone)
                settled = {run_id: self._settle(run_id, None, cancelled=cancelled) for run_id in alone}
                rest = self._stop_runs([r for r in run_ids if r not in kept], grace, cancelled=cancelled)
                by_id = {status.run_id: status for status in rest}
                return [settled[r] if r in kept else by_id[r] for r in run_ids]
        jobs = {run_id: active[run_id] for run_id in run_ids}
        scancelled = self._scancel(self._cancel_targets(jobs.values()))
        if not scancelled:
            self.uncancelled.update(job.array_job for job in jobs.values())
        if timed_out:  # its time is up: no need to wait for Slurm to confirm
            return [self._settle(run_id, None, timed_out=True) for run_id in run_ids]
        # Where scancel failed (it said so), the jobs go on: nothing to wait for. The profit
        # command notes them (uncancelled), and the study's next runner ends them.
        if scancelled:
            self._wait_until_ended(jobs)
        self.interface.poll()  # results that arrived before the cancel are kept
        return [self._settle(run_id, None, cancelled=cancelled) for run_id in run_ids]
