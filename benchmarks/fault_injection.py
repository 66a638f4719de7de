"""Fault injection: do runs survive killed workers, failing workers and a killed runner?

Three scenarios, all measured in one invocation, each next to a clean run of the
same size so that the cost of the faults can be read as a time difference:

1. ``ForkRunner``, 300 runs of ``f = u + v``, parallel 2, ``retries=3``. A random
   tenth of the workers SIGKILL themselves on their first attempt and a random
   twentieth raise ``RuntimeError`` on their first attempt. Every run must end
   DONE with ``f == u + v``.
2. The same with ``LocalRunner`` and 60 runs (every local run is a fresh
   ``profit-worker`` process). The worker lives in a module file written to a
   temporary directory and loaded with ``load_includes``, so that the shell
   started workers find it through ``PROFIT_INCLUDES``.
3. Runner death: a study directory (``profit.yaml`` + a template program that
   computes ``u + v`` and ``u * v`` and sleeps 0.1 s) with 40 runs. ``profit run``
   is started, SIGKILLed once about ten runs are done, and started again to
   completion. The template program appends to a side-effect log, so runs that
   were executed twice can be counted.

How a fault is injected (scenarios 1 and 2): every run's inputs carry a
``fault`` column (0 none, 1 SIGKILL, 2 raise). The worker creates a marker file
``first-<u>`` in the work directory with ``O_EXCL``; whoever creates it is the
first attempt and commits the fault; a retry finds the marker and computes the
result. Each attempt also appends one line to ``attempts.log``, and the runner's
own "running it again" log records are counted, so the table shows that the
faults really happened rather than trusting the plan.

Scenarios 4-6 (exactly once with the local runner under a storm of runner kills, an
orphan that must not hold the study's lock, grandchildren that left their worker's
process group) are described beside their code and printed in a second table;
``--only-processes`` runs only those.

Printed: the machine, ONE table (faults injected, runs lost, wrong results, time
to recover) and notes. Exit status 1 when a run was lost, a result was wrong, a
run finished before the runner's death was executed again, or the faults did
not happen as planned (then the benchmark did not test what it claims); else 0.

Usage::

    python benchmarks/fault_injection.py [--fork-repeats N] [--local-repeats M] [--keep]
                                         [--storm-kills K] [--seed S] [--only-processes]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import logging
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field

import numpy as np

import profit
from profit.run import Runner, RunState
from profit.run.includes import load_includes

PARALLEL = 2
RETRIES = 3
KILL_SHARE = 0.10  # workers that SIGKILL themselves on their first attempt
RAISE_SHARE = 0.05  # workers that raise on their first attempt
FORK_RUNS = 300
LOCAL_RUNS = 60  # a new Python process per run: keep it quick
STUDY_RUNS = 40
STUDY_SLEEP = 0.1  # seconds the template program sleeps: a run long enough to be caught in flight
KILL_AFTER_DONE = 10  # SIGKILL `profit run` once this many runs are done
WAIT_LIMIT = 60.0  # seconds; bound on every wait for a subprocess

FAULT_NONE, FAULT_SIGKILL, FAULT_RAISE = 0, 1, 2
WORKER_LABEL = "fi_faulty"
PROFIT = os.path.join(os.path.dirname(sys.executable), "profit")

# A module file of its own, not a function here: LocalRunner's workers are new
# processes that know only the include files the runner's process loaded.
WORKER_SOURCE = textwrap.dedent(
    f'''\
    """The fault-injecting worker of benchmarks/fault_injection.py (loaded as an include file)."""

    import os
    import signal

    from profit.run import Worker


    def _note(line: str) -> None:
        # One write with O_APPEND: lines of concurrent workers never interleave.
        fd = os.open("attempts.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line + "\\n").encode())
        finally:
            os.close(fd)


    @Worker.wrap("{WORKER_LABEL}", "f", ["u", "v", "fault"])
    def faulty(u, v, fault):
        """fault {FAULT_SIGKILL}: SIGKILL itself on the first attempt; {FAULT_RAISE}: raise on it; else f = u + v."""
        key = repr(float(u))  # u is unique per run, so it names the run
        try:
            # O_EXCL: exactly one attempt of a run is the first, even if two overlapped.
            os.close(os.open(f"first-{{key}}", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
            first = True
        except FileExistsError:
            first = False
        fault = int(fault)
        _note(f"{{key}} {{fault}} {{'first' if first else 'retry'}}")
        if first and fault == {FAULT_SIGKILL}:
            os.kill(os.getpid(), signal.SIGKILL)
        if first and fault == {FAULT_RAISE}:
            raise RuntimeError(f"injected failure at u={{key}}")
        return u + v
    '''
)

# The template program of scenario 3. It logs "start" and "end" with the run's u
# (unique per run) to a log outside the run directories, which `profit clean`
# and the runner never touch: the log tells how often each run really executed.
SIMULATION_SOURCE = textwrap.dedent(
    """\
    import os, time
    pairs = (line.split(" = ") for line in open("input.txt").read().splitlines() if line.strip())
    values = {{name.strip(): float(value) for name, value in pairs}}
    u, v = values["u"], values["v"]

    def note(kind):
        fd = os.open({log!r}, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{{kind}} {{u!r}} {{time.time()!r}} {{os.getpid()}}\\n".encode())
        finally:
            os.close(fd)

    note("start")
    time.sleep({sleep})
    note("end")
    print(repr(u + v), repr(u * v))
    """
)

STUDY_YAML = textwrap.dedent(
    """\
    ntrain: {ntrain}
    seed: 7
    variables:
      u: Uniform(0, 1)
      v: Uniform(2, 3)
      f: Output
      g: Output
    run:
      runner: {{class: fork, parallel: {parallel}}}
      command: ./simulation
    """
)


# --- the report ------------------------------------------------------------------------------


@dataclass
class Row:
    """One scenario's line of the table, plus what the notes need."""

    scenario: str
    runs: str
    faults: str
    lost: int = 0
    wrong: int = 0
    clean_s: float | None = None
    faulty_s: float | None = None
    recover: str = ""
    problems: list[str] = field(default_factory=list)  # make the exit status 1
    notes: list[str] = field(default_factory=list)


def machine_info() -> str:
    """One line: what the times were measured on."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count() or 0
    load = ", load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()) if hasattr(os, "getloadavg") else ""
    return (
        f"machine: nproc {usable} (cpu_count {os.cpu_count()}), Python {platform.python_version()} "
        f"({platform.python_implementation()}), numpy {np.__version__}, profit "
        f"{getattr(profit, '__version__', '?')}, {platform.platform()}{load}"
    )


def print_table(rows: list[Row]) -> None:
    header = [
        "scenario",
        "runs",
        "faults injected",
        "runs lost (must be 0)",
        "wrong results (must be 0)",
        "clean",
        "with faults",
        "time to recover",
    ]
    cells = [
        [
            row.scenario,
            row.runs,
            row.faults,
            str(row.lost),
            str(row.wrong),
            _seconds(row.clean_s),
            _seconds(row.faulty_s),
            row.recover,
        ]
        for row in rows
    ]
    widths = [max(len(line[column]) for line in [header, *cells]) for column in range(len(header))]
    rule = "+".join("-" * (width + 2) for width in widths)
    print("|".join(f" {text:<{width}} " for text, width in zip(header, widths)))
    print(rule)
    for line in cells:
        print("|".join(f" {text:<{width}} " for text, width in zip(line, widths)))


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


# --- scenarios 1 and 2: faulty workers under a Runner with retries -------------------------------


@contextlib.contextmanager
def captured_stderr(lines: list[str]):
    """Collect what is written to file descriptor 2 meanwhile (by us or any child) into ``lines``.

    At the descriptor, not sys.stderr: worker processes and the shells that start
    them inherit fd 2, and whatever they print there lands in a user's terminal.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines.extend(sink.read().decode("utf-8", "replace").splitlines())


class RetryLog(logging.Handler):
    """Counts the runner's own records of retried runs, by the reason it gives.

    The plan says which faults should happen; these records say which failures the
    runner saw, so the two can be compared. Warnings are kept for the notes: the
    runner warns about odd things (a run that transmitted and then died, say).
    """

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.sigkill = 0
        self.raised = 0
        self.other: list[str] = []
        self.warnings: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.levelno >= logging.WARNING:
            self.warnings.append(message)
        if "running it again" not in message:
            return
        if "killed by SIGKILL" in message:
            self.sigkill += 1
        elif "RuntimeError: injected failure" in message:
            self.raised += 1
        else:
            self.other.append(message)


def fault_plan(n: int, seed: int, kill: float, raise_: float) -> np.ndarray:
    """n rows (u, v, fault): u unique per run; disjoint random sets get fault SIGKILL and raise."""
    rng = np.random.default_rng(seed)
    rows = np.zeros(n, dtype=[("u", "f8"), ("v", "f8"), ("fault", "i8")])
    # Distinct integers plus a fraction: u names its run, and u + v is not trivially exact.
    rows["u"] = np.arange(n) + rng.random(n)
    rows["v"] = rng.normal(0.0, 10.0, n)
    chosen = rng.choice(n, size=int(round(kill * n)) + int(round(raise_ * n)), replace=False)
    rows["fault"][chosen[: int(round(kill * n))]] = FAULT_SIGKILL
    rows["fault"][chosen[int(round(kill * n)) :]] = FAULT_RAISE
    return rows


@dataclass
class Batch:
    """What one batch of runs left: time, end states, and the evidence of faults."""

    wall_s: float
    lost: int
    wrong: int
    retried_sigkill: int
    retried_raise: int
    retried_other: list[str]
    attempts: int  # lines in attempts.log: every attempt that got as far as the worker function
    warnings: list[str]
    failed: dict
    stderr: list[str]  # what the runner's process and its children printed to fd 2


def run_batch(label: str, rows: np.ndarray, work_dir: str) -> Batch:
    """Run every row through Runner[label] with retries; check states and outputs."""
    log = RetryLog()
    profit_logger = logging.getLogger("profit")
    profit_logger.addHandler(log)
    previous_level = profit_logger.level
    profit_logger.setLevel(logging.INFO)  # the retry records are INFO
    try:
        runner = Runner[label](
            interface={
                "class": "memmap",
                "size": len(rows),
                "input_config": {"u": {"dtype": np.float64}, "v": {"dtype": np.float64}, "fault": {"dtype": np.int64}},
                "output_config": {"f": {"dtype": np.float64, "size": (1, 1)}},
            },
            worker=WORKER_LABEL,
            work_dir=work_dir,
            parallel=PARALLEL,
            retries=RETRIES,
        )
        stderr: list[str] = []
        with captured_stderr(stderr):
            started = time.perf_counter()
            runner.spawn_array(rows, wait=True)
            wall = time.perf_counter() - started
        n = len(rows)
        states = np.asarray(runner.interface.internal["STATE"][:n])
        f = np.asarray(runner.interface.output["f"][:n]).reshape(n)
        done = states == RunState.DONE
        # Exact equality: the worker adds the same two float64 numbers as we do here.
        wrong = int(np.count_nonzero(done & (f != rows["u"] + rows["v"])))
        failed = {run_id: str(status) for run_id, status in runner.failed.items()}
        runner.interface.clean()  # drop the interface file now: later batches need no leftovers
    finally:
        profit_logger.removeHandler(log)
        profit_logger.setLevel(previous_level)
    attempts_path = os.path.join(work_dir, "attempts.log")
    attempts = len(open(attempts_path).read().splitlines()) if os.path.exists(attempts_path) else 0
    return Batch(
        wall,
        int(np.count_nonzero(~done)),
        wrong,
        log.sigkill,
        log.raised,
        log.other,
        attempts,
        log.warnings,
        failed,
        stderr,
    )


def runner_scenario(label: str, n: int, repeats: int, scratch: str) -> Row:
    """Clean and faulty batches of n runs, interleaved ``repeats`` times (medians of the times)."""
    kills, raises = int(round(KILL_SHARE * n)), int(round(RAISE_SHARE * n))
    row = Row(
        f"{label}: {n} runs of u+v, retries={RETRIES}",
        f"{n} x{repeats}" if repeats > 1 else str(n),
        f"{kills} SIGKILL + {raises} raise" + (f" (each of {repeats} repeats)" if repeats > 1 else ""),
    )
    clean_times, faulty_times = [], []
    stray: collections.Counter[str] = collections.Counter()
    for repeat in range(repeats):
        # Clean first, then faulty, in every repeat: drifts of the machine hit both alike.
        seed = 2026 + repeat
        clean_rows = fault_plan(n, seed, 0.0, 0.0)
        faulty_rows = fault_plan(n, seed, KILL_SHARE, RAISE_SHARE)
        for kind, rows in (("clean", clean_rows), ("faulty", faulty_rows)):
            batch = run_batch(label, rows, os.path.join(scratch, f"{label}-{kind}-{repeat}"))
            (clean_times if kind == "clean" else faulty_times).append(batch.wall_s)
            row.lost += batch.lost
            row.wrong += batch.wrong
            expected_kill = int(np.count_nonzero(rows["fault"] == FAULT_SIGKILL))
            expected_raise = int(np.count_nonzero(rows["fault"] == FAULT_RAISE))
            tag = f"{label} {kind} repeat {repeat + 1}"
            if batch.lost:
                details = "; ".join(f"{text}" for _, text in sorted(batch.failed.items())[:10])
                row.problems.append(f"{tag}: {batch.lost} runs not DONE: {details}")
            if batch.wrong:
                row.problems.append(f"{tag}: {batch.wrong} DONE runs with f != u + v")
            if (batch.retried_sigkill, batch.retried_raise) != (expected_kill, expected_raise) or batch.retried_other:
                row.problems.append(
                    f"{tag}: the runner retried {batch.retried_sigkill} SIGKILLed and {batch.retried_raise} raising "
                    f"runs (planned {expected_kill} and {expected_raise})"
                    + (f"; other retries: {batch.retried_other[:3]}" if batch.retried_other else "")
                )
            if batch.attempts != n + expected_kill + expected_raise:
                # More lines: a run ran more often than its faults explain; fewer: a fault did not fire.
                row.problems.append(
                    f"{tag}: {batch.attempts} attempts reached the worker function, expected "
                    f"{n + expected_kill + expected_raise} ({n} runs + one retry per fault)"
                )
            stray.update(f"{kind}: {line}" for line in batch.stderr)
            for warning in batch.warnings[:5]:
                row.notes.append(f"{tag}: runner warned: {warning}")
            if kind == "faulty" and repeat == 0:
                row.notes.append(
                    f"{label}: the runner itself logged {batch.retried_sigkill} retries after 'killed by SIGKILL' and "
                    f"{batch.retried_raise} after the injected RuntimeError; {batch.attempts} attempts reached the "
                    f"worker function for {n} runs (first repeat)"
                )
    if stray:
        row.notes.append(
            f"{label}: printed to the runner's stderr (all repeats, count x line): "
            + "; ".join(f"{count} x {line!r}" for line, count in stray.most_common(5))
        )
    row.clean_s = statistics.median(clean_times)
    row.faulty_s = statistics.median(faulty_times)
    faults = kills + raises
    difference = row.faulty_s - row.clean_s
    row.recover = f"{difference:+.2f} s ({1000 * difference / faults:+.1f} ms/fault)"
    if repeats > 1:
        spread = max(max(clean_times) - min(clean_times), max(faulty_times) - min(faulty_times))
        # Say so when the machine's noise is as large as the effect: the figure is then an upper bound at best.
        verdict = (
            f"the difference of the medians is smaller than the run-to-run spread ({spread:.2f} s), so "
            "read it as noise around a small cost"
            if abs(difference) < spread
            else f"the run-to-run spread is {spread:.2f} s"
        )
        row.notes.append(
            f"{label}: wall times of the {repeats} repeats, clean: {', '.join(f'{t:.2f}' for t in clean_times)} s; "
            f"with faults: {', '.join(f'{t:.2f}' for t in faulty_times)} s (the table shows medians); {verdict}"
        )
    return row


# --- scenario 3: the runner itself is SIGKILLed -------------------------------------------------


def make_study(folder: str, ntrain: int) -> str:
    """A study directory whose template program logs every execution to <folder>/executions.log."""
    os.makedirs(os.path.join(folder, "template"))
    with open(os.path.join(folder, "profit.yaml"), "w") as file:
        file.write(STUDY_YAML.format(ntrain=ntrain, parallel=PARALLEL))
    with open(os.path.join(folder, "template", "input.txt"), "w") as file:
        file.write("u = {u}\nv = {v}\n")
    program = os.path.join(folder, "template", "simulation")
    log = os.path.join(os.path.abspath(folder), "executions.log")
    with open(program, "w") as file:
        file.write(f"#!{sys.executable}\n" + SIMULATION_SOURCE.format(log=log, sleep=STUDY_SLEEP))
    os.chmod(program, 0o755)
    return folder


def executions(folder: str) -> dict[float, list[tuple[float, float | None]]]:
    """Executions of each run (keyed by its u) as (start, end) times; end None when it never ended.

    The program logs its pid on both lines, which pairs them even when two
    executions of one run overlap.
    """
    path = os.path.join(folder, "executions.log")
    runs: dict[float, dict[int, list]] = {}
    if os.path.exists(path):
        for line in open(path).read().splitlines():
            kind, u, at, pid = line.split()
            span = runs.setdefault(float(u), {}).setdefault(int(pid), [None, None])
            span[0 if kind == "start" else 1] = float(at)
    return {
        u: sorted((tuple(span) for span in by_pid.values()), key=lambda span: span[0] or 0.0)
        for u, by_pid in runs.items()
    }


def check_results(folder: str, ntrain: int) -> tuple[int, int, np.ndarray, str]:
    """(lost, wrong, u of every row, details) from the study's input.txt and output.txt."""
    if not os.path.exists(os.path.join(folder, "output.txt")):
        return ntrain, 0, np.full(ntrain, np.nan), "no output.txt was written"
    inputs = np.genfromtxt(os.path.join(folder, "input.txt"), names=True)
    outputs = np.genfromtxt(os.path.join(folder, "output.txt"), names=True)
    inputs, outputs = np.atleast_1d(inputs), np.atleast_1d(outputs)
    if len(inputs) != ntrain or len(outputs) != ntrain:
        return ntrain, 0, inputs["u"], f"input.txt has {len(inputs)} rows, output.txt {len(outputs)}; expected {ntrain}"
    missing = np.isnan(outputs["f"]) | np.isnan(outputs["g"])
    # The program prints repr() of float64 sums and products: they read back exactly.
    bad = ~missing & ((outputs["f"] != inputs["u"] + inputs["v"]) | (outputs["g"] != inputs["u"] * inputs["v"]))
    details = ""
    if missing.any() or bad.any():
        details = (
            f"rows with NaN outputs: {np.flatnonzero(missing).tolist()}; wrong rows: {np.flatnonzero(bad).tolist()}"
        )
    return int(np.count_nonzero(missing)), int(np.count_nonzero(bad)), inputs["u"], details


def ledger_states(folder: str) -> np.ndarray | None:
    """The STATE column of the study's ledger, or None while it does not exist (yet)."""
    path = os.path.join(folder, "profit-study.npy")
    try:
        return np.array(np.load(path, mmap_mode="r")["STATE"])
    except (OSError, ValueError, KeyError):  # not written yet, or its header is being written
        return None


def run_profit(folder: str) -> tuple[float, subprocess.CompletedProcess]:
    """Run ``profit run folder`` to its end; return its wall time and what it printed."""
    started = time.perf_counter()
    done = subprocess.run([PROFIT, "run", folder], capture_output=True, text=True, timeout=WAIT_LIMIT * 2)
    return time.perf_counter() - started, done


def study_scenario(scratch: str) -> Row:
    """A clean study, then the same study with its runner SIGKILLed part way and continued."""
    n = STUDY_RUNS
    row = Row(f"profit run SIGKILLed after ~{KILL_AFTER_DONE} runs, then run again", str(n), "")

    clean = make_study(os.path.join(scratch, "study-clean"), n)
    clean_s, clean_done = run_profit(clean)
    lost, wrong, _, details = check_results(clean, n)
    row.lost += lost
    row.wrong += wrong
    if clean_done.returncode != 0 or lost or wrong:
        row.problems.append(
            f"clean study: exit {clean_done.returncode}, {lost} lost, {wrong} wrong; {details} "
            f"{clean_done.stderr.strip()[-300:]}"
        )
    row.clean_s = clean_s

    study = make_study(os.path.join(scratch, "study-killed"), n)
    with open(os.path.join(study, "first-run.out"), "w") as out:
        started = time.perf_counter()
        process = subprocess.Popen([PROFIT, "run", study], stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + WAIT_LIMIT
        while time.monotonic() < deadline and process.poll() is None:
            states = ledger_states(study)
            if states is not None and np.count_nonzero(states == RunState.DONE) >= KILL_AFTER_DONE:
                break
            time.sleep(0.005)
        finished_by_itself = process.poll() is not None
        process.send_signal(signal.SIGKILL)  # our own child: its pid cannot have been reused before wait()
        process.wait(timeout=WAIT_LIMIT)
        first_s = time.perf_counter() - started
    killed_at = time.time()
    states = ledger_states(study)
    if finished_by_itself or states is None:
        row.problems.append("the first 'profit run' ended before it could be killed; runner death was not tested")
        states = np.zeros(n, dtype=np.uint8) if states is None else states
    done_before = set(np.flatnonzero(states == RunState.DONE).tolist())
    in_flight = int(np.count_nonzero(states == RunState.RUNNING))
    starts_before = sum(
        1 for spans in executions(study).values() for start, _ in spans if start is not None and start <= killed_at
    )
    row.faults = f"1 runner SIGKILL, {in_flight} run{'' if in_flight == 1 else 's'} in flight"

    resume_s, resumed = run_profit(study)
    remaining = n - len(done_before)
    lost, wrong, u_of_row, details = check_results(study, n)
    row.lost += lost
    row.wrong += wrong
    row.faulty_s = first_s + resume_s
    if resumed.returncode != 0 or lost or wrong:
        row.problems.append(
            f"resumed study: exit {resumed.returncode}, {lost} lost, {wrong} wrong; {details}; "
            f"stdout: {resumed.stdout.strip()[-400:]!r} stderr: {resumed.stderr.strip()[-400:]!r}"
        )

    # Executions per run, from the program's own log.
    log = executions(study)
    spans_of = [log.get(float(u), []) for u in u_of_row]
    again = [
        run_id
        for run_id in sorted(done_before)
        if len(spans_of[run_id]) != 1 or (spans_of[run_id][0][0] or 0.0) > killed_at
    ]
    if again:
        row.problems.append(f"runs done before the kill were executed again: {again}")
    never = [run_id for run_id, spans in enumerate(spans_of) if not any(end is not None for _, end in spans)]
    if never:
        row.problems.append(f"runs whose program never completed, by its own log: {never}")
    executed_twice = [run_id for run_id, spans in enumerate(spans_of) if len(spans) > 1]
    # Two executions of one run at the same time: a start before the previous execution's
    # logged end. (An execution killed before its end line cannot be checked this way.)
    overlapping = [
        run_id
        for run_id, spans in enumerate(spans_of)
        if any(end is not None and later is not None and later < end for (_, end), (later, _) in zip(spans, spans[1:]))
    ]
    if overlapping:
        row.problems.append(f"runs executed twice at the same time: {overlapping}")
    twice_details = []
    for run_id in executed_twice:
        first_start, first_end = spans_of[run_id][0]
        fate = (
            "its program had completed at kill %+.3f s, but the run was not recorded as done" % (first_end - killed_at)
            if first_end is not None
            else "its program never logged an end (killed)"
        )
        twice_details.append(f"run {run_id}: first execution started at kill {first_start - killed_at:+.3f} s, {fate}")

    # Time to recover: the crash's whole cost in wall time, i.e. both invocations
    # together minus one uninterrupted run of the same study. It contains the work
    # in flight that was thrown away, a second start-up and the clean-up of the
    # processes the dead runner left. The kill itself is instantaneous here: the
    # second invocation starts right after it, as a script or a user would do.
    overhead = row.faulty_s - clean_s
    per_run = clean_s / n
    row.recover = f"{overhead:+.2f} s (2nd run {resume_s:.2f} s for {remaining} runs)"

    adopted = re.search(r"(\d+) runs finished after the previous runner stopped", resumed.stdout)
    ended = re.search(r"ending (\d+) runs left running", resumed.stdout)
    continuing = re.search(r"continuing .*?: (\d+) runs done before, (\d+) to run", resumed.stdout)
    row.notes += [
        f"study: killed {first_s:.2f} s after start with {len(done_before)} of {n} runs done in the ledger and "
        f"{in_flight} running; {starts_before} executions had logged their start by then (a program logs it "
        "after its interpreter started, so one started just before the kill may log it just after)",
        "study: the 2nd 'profit run' said: "
        + "; ".join(
            filter(
                None,
                [
                    continuing and f"{continuing.group(1)} done before, {continuing.group(2)} to run",
                    ended and f"ended {ended.group(1)} leftover process groups",
                    adopted and f"adopted {adopted.group(1)} results finished after the kill",
                ],
            )
        )
        + ("" if ended else "; no leftover processes to end")
        + ("" if adopted else "; no results to adopt"),
        f"study: runs done before the kill executed again: {len(again)} (must be 0); runs executed twice in all: "
        f"{len(executed_twice)} {executed_twice} (only runs in flight at the kill may be); executions of one run "
        f"overlapping in time: {len(overlapping)} (must be 0)",
        *(f"study: executed twice: {detail}" for detail in twice_details),
        *(
            [f"study: the 2nd 'profit run' printed to stderr: {resumed.stderr.strip()[-300:]!r}"]
            if resumed.stderr.strip()
            else []
        ),
        f"study: time to recover = (time until the kill {first_s:.2f} s + 2nd run {resume_s:.2f} s) - clean run "
        f"{clean_s:.2f} s. For scale: the clean run took {per_run:.3f} s per run, so {remaining} runs would take "
        f"{per_run * remaining:.2f} s at its pace; the 2nd run took {resume_s:.2f} s",
    ]
    return row


# --- exactly once, orphans and whole trees (the process scenarios) ---------------------------------
#
# 4. Kill storm, local runner: a study of STORM_RUNS runs of about a second, ``profit run``
#    SIGKILLed STORM_KILLS times at random moments, then run to its end. An include file
#    slows down noting a started worker in the study's table by 0.15 s, so that kills land
#    between starting a worker and noting its pid (where only the environment mark finds it).
#    Each execution takes a lock on its run's file: one that cannot take it ran at the same
#    time as another execution of that run.
# 5. Orphan lock: a forked worker (fork, pool) forks a sleeping grandchild; ``profit run`` is
#    SIGKILLed; the next ``profit run`` must start (no "is being run by process"), end the
#    orphan and complete.
# 6. setsid grandchild: per runner (fork, pool, local), runs whose worker starts ``setsid sleep
#    300`` or a daemon (a sleep in its own session whose parent exited) are cancelled, or time out.
#
# For each: faults injected, runs lost, wrong results, duplicate concurrent executions, leftover
# processes (processes of the scenario alive at its end); all must be 0.

STORM_RUNS = 16
STORM_KILLS = 12
STORM_SLEEP = 1.0

PROCESS_WORKERS = textwrap.dedent(
    """\
    \"\"\"Workers of the process scenarios of benchmarks/fault_injection.py (an include file).\"\"\"

    import os
    import signal
    import subprocess
    import time

    from profit.run import Worker


    @Worker.wrap("fi_orphan_fork", "f")
    def orphan_fork(u, v):
        base = os.environ["PROFIT_BASE_DIR"]
        pid = os.fork()
        if pid == 0:
            time.sleep(300)
            os._exit(0)
        os.makedirs(os.path.join(base, "orphans"), exist_ok=True)
        open(os.path.join(base, "orphans", str(pid)), "w").close()
        while not os.path.exists(os.path.join(base, "release")):
            time.sleep(0.05)
        return u + v


    @Worker.wrap("fi_setsid_tree", "f")
    def setsid_tree(u, v):
        if int(u) % 2 == 0:
            grandchild = subprocess.Popen(["setsid", "sleep", "300"]).pid
        else:
            read, write = os.pipe()
            middle = os.fork()
            if middle == 0:
                os.setsid()
                pid = os.fork()
                if pid == 0:
                    os.execvp("sleep", ["sleep", "300"])
                os.write(write, str(pid).encode())
                os._exit(0)
            os.close(write)
            grandchild = int(os.read(read, 32))
            os.waitpid(middle, 0)
        os.makedirs("pids", exist_ok=True)
        with open(f"pids/{os.getpid()}.tmp", "w") as file:
            file.write(f"{os.getpid()} {grandchild}")
        os.rename(f"pids/{os.getpid()}.tmp", f"pids/{os.getpid()}")
        while True:
            signal.pause()
    """
)

STORM_PROGRAM = textwrap.dedent(
    """\
    import fcntl, os, time
    values = dict(line.split(" = ") for line in open("input.txt").read().splitlines())
    u, v = float(values["u"]), float(values["v"])
    base = os.environ["PROFIT_BASE_DIR"]
    lock = open(os.path.join(base, f"running-{{u!r}}"), "a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        alone = "alone"
    except BlockingIOError:
        alone = "overlapping"

    def note(kind):
        fd = os.open(os.path.join(base, "executions.log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{{kind}} {{u!r}} {{time.time()!r}} {{os.getpid()}} {{alone}}\\n".encode())
        finally:
            os.close(fd)

    note("start")
    time.sleep({sleep})
    note("end")
    print(repr(u + v), repr(u * v))
    """
)

SLOW_RECORD = textwrap.dedent(
    """\
    import time
    from profit import studyrun

    _noted = studyrun.TableRecorder.run_started

    def run_started(self, run_id, handle):
        time.sleep(0.15)  # a kill now falls between starting the worker and noting its pid
        _noted(self, run_id, handle)

    studyrun.TableRecorder.run_started = run_started
    """
)


@dataclass
class ProcessRow:
    scenario: str
    faults: str
    lost: int = 0
    wrong: int = 0
    duplicates: int = 0
    leftovers: int = 0
    problems: list[str] = field(default_factory=list)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as file:
            return file.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def _marked(folder: str) -> list[int]:
    from profit.run._proc import marked_processes

    return marked_processes(folder)


def _wait_until(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def storm_scenario(scratch: str, kills: int, seed: int) -> ProcessRow:
    """Scenario 4: the local runner's kill storm."""
    import random

    rng = random.Random(seed)
    folder = os.path.join(scratch, "storm")
    os.makedirs(os.path.join(folder, "template"))
    yaml = STUDY_YAML.format(ntrain=STORM_RUNS, parallel=4).replace("class: fork", "class: local")
    with open(os.path.join(folder, "profit.yaml"), "w") as file:
        file.write(yaml + "include: slow_record.py\n")
    with open(os.path.join(folder, "slow_record.py"), "w") as file:
        file.write(SLOW_RECORD)
    with open(os.path.join(folder, "template", "input.txt"), "w") as file:
        file.write("u = {u}\nv = {v}\n")
    program = os.path.join(folder, "template", "simulation")
    with open(program, "w") as file:
        file.write(f"#!{sys.executable}\n" + STORM_PROGRAM.format(sleep=STORM_SLEEP))
    os.chmod(program, 0o755)
    row = ProcessRow("local kill storm", f"{kills} runner SIGKILLs")
    ledger = os.path.join(folder, "profit-study.npy")
    transmitted: list[tuple[float, set[int]]] = []
    for _ in range(kills):
        process = subprocess.Popen([PROFIT, "run", folder], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_until(lambda: os.path.exists(ledger), WAIT_LIMIT)
            time.sleep(rng.uniform(0.3, 1.5))
        finally:
            process.kill()
            process.wait()
        rows = np.load(ledger)
        transmitted.append((time.time(), set(np.flatnonzero(rows["DONE"] | (rows["STATE"] == RunState.DONE)).tolist())))
    _, finished = run_profit(folder)
    if finished.returncode != 0:
        row.problems.append(f"storm: the last 'profit run' exited {finished.returncode}: {finished.stderr[-300:]!r}")
    lost, wrong, u_of_row, details = check_results(folder, STORM_RUNS)
    row.lost, row.wrong = lost, wrong
    if details:
        row.problems.append(f"storm: {details}")
    spans: dict[float, list[tuple[float, float | None, bool]]] = {}
    by_pid: dict[tuple[float, int], list] = {}
    for line in open(os.path.join(folder, "executions.log")).read().splitlines():
        kind, u, at, pid, alone = line.split()
        span = by_pid.setdefault((float(u), int(pid)), [None, None, alone == "overlapping"])
        span[0 if kind == "start" else 1] = float(at)
    for (u, _), span in by_pid.items():
        spans.setdefault(u, []).append(tuple(span))  # type: ignore[arg-type]
    for run_id, u in enumerate(u_of_row):
        executions_of = sorted(spans.get(float(u), []), key=lambda span: span[0] or 0.0)
        overlapped = any(overlapping for _, _, overlapping in executions_of) or any(
            end is not None and later is not None and later < end
            for (_, end, _), (later, _, _) in zip(executions_of, executions_of[1:])
        )
        again = any(
            run_id in done and any(start is not None and start > killed_at for start, _, _ in executions_of)
            for killed_at, done in transmitted
        )
        row.duplicates += int(overlapped) + int(again)
        if overlapped or again:
            row.problems.append(f"storm: run {run_id} executed {'at the same time' if overlapped else 'again'}")
    row.leftovers = len(_marked(folder))
    return row


def orphan_lock_scenario(scratch: str, label: str) -> ProcessRow:
    """Scenario 5: a forked worker's grandchild outlives the killed runner; the next run must start."""
    folder = os.path.join(scratch, f"orphan-{label}")
    os.makedirs(folder)
    workers = os.path.join(scratch, "process_workers.py")
    with open(os.path.join(folder, "profit.yaml"), "w") as file:
        file.write(
            "ntrain: 2\nseed: 3\nvariables:\n  u: Uniform(0, 1)\n  v: Uniform(0, 1)\n  f: Output\n"
            f"include: {workers}\nrun:\n  runner: {label}\n  worker: fi_orphan_fork\n"
        )
    row = ProcessRow(f"orphan lock ({label})", "1 runner SIGKILL with an orphan")
    orphans_dir = os.path.join(folder, "orphans")

    def orphans() -> list[int]:
        return [int(name) for name in os.listdir(orphans_dir)] if os.path.isdir(orphans_dir) else []

    process = subprocess.Popen([PROFIT, "run", folder], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not _wait_until(lambda: len(orphans()) >= 1, WAIT_LIMIT):
            row.problems.append(f"orphan ({label}): no grandchild was forked")
    finally:
        process.kill()
        process.wait()
    left = [pid for pid in orphans() if _alive(pid)]
    row.faults += f" ({len(left)} alive after the kill)"
    open(os.path.join(folder, "release"), "w").close()
    _, again = run_profit(folder)
    if again.returncode != 0:
        row.problems.append(
            f"orphan ({label}): the next 'profit run' exited {again.returncode}: {again.stderr[-200:]!r}"
        )
    states = ledger_states(folder)
    row.lost = 2 - int(np.count_nonzero(states == RunState.DONE)) if states is not None else 2
    _wait_until(lambda: not any(_alive(pid) for pid in orphans()), 5.0)
    row.leftovers = sum(1 for pid in orphans() if _alive(pid))
    for pid in orphans():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return row


def setsid_scenario(scratch: str, label: str, how: str) -> ProcessRow:
    """Scenario 6: grandchildren in sessions of their own end with their run's cancel or timeout."""
    work_dir = os.path.join(scratch, f"setsid-{label}-{how}")
    runner = Runner[label](
        interface={
            "class": "memmap",
            "size": 4,
            "input_config": {"u": {"dtype": np.float64}, "v": {"dtype": np.float64}},
            "output_config": {"f": {"dtype": np.float64, "size": (1, 1)}},
        },
        worker="fi_setsid_tree",
        work_dir=work_dir,
        parallel=4,
        **({"timeout": 1.0} if how == "timeout" else {}),
    )
    row = ProcessRow(f"setsid grandchild ({label}, {how})", f"4 runs {how}, 4 grandchildren out of the group")
    pids: list[int] = []
    try:
        for u in range(4):
            runner.spawn({"u": float(u), "v": 0.0})
        folder = os.path.join(work_dir, "pids")

        def noted() -> list[str]:
            return [n for n in os.listdir(folder) if not n.endswith(".tmp")] if os.path.isdir(folder) else []

        deadline = time.monotonic() + WAIT_LIMIT
        while len(noted()) < 4 and time.monotonic() < deadline:
            runner.interface.poll()
            time.sleep(0.01)
        for name in noted():
            with open(os.path.join(folder, name)) as file:
                pids.extend(int(pid) for pid in file.read().split())
        if how == "cancel":
            runner.cancel_all()
        else:
            runner.wait_all(timeout=WAIT_LIMIT)
        expected = RunState.CANCELLED if how == "cancel" else RunState.FAILED
        row.lost = sum(1 for run_id in range(4) if runner.status(run_id).state is not expected)
        _wait_until(lambda: not any(_alive(pid) for pid in pids), 5.0)
        row.leftovers = sum(1 for pid in pids if _alive(pid))
    finally:
        runner.close()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return row


def process_scenarios(scratch: str, kills: int, seed: int) -> list[ProcessRow]:
    workers = os.path.join(scratch, "process_workers.py")
    with open(workers, "w") as file:
        file.write(PROCESS_WORKERS)
    load_includes([workers])
    rows = [storm_scenario(scratch, kills, seed)]
    rows += [orphan_lock_scenario(scratch, label) for label in ("fork", "pool")]
    rows += [
        setsid_scenario(scratch, label, how) for label in ("fork", "pool", "local") for how in ("cancel", "timeout")
    ]
    return rows


def print_process_table(rows: list[ProcessRow]) -> None:
    header = ["scenario", "faults injected", "runs lost", "wrong results", "duplicate concurrent", "leftover processes"]
    lines = [[r.scenario, r.faults, str(r.lost), str(r.wrong), str(r.duplicates), str(r.leftovers)] for r in rows]
    widths = [max(len(text) for text in column) for column in zip(header, *lines)]
    print("|".join(f" {text:<{width}} " for text, width in zip(header, widths)))
    print("|".join("-" * (width + 2) for width in widths))
    for line in lines:
        print("|".join(f" {text:<{width}} " for text, width in zip(line, widths)))


# --- main -----------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--fork-repeats",
        type=int,
        default=5,
        help="clean/faulty pairs of the fork scenario; the table shows medians (default 5)",
    )
    parser.add_argument(
        "--local-repeats", type=int, default=3, help="clean/faulty pairs of the local scenario (default 3)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory and print its path")
    parser.add_argument(
        "--storm-kills", type=int, default=STORM_KILLS, help=f"SIGKILLs of the local kill storm (default {STORM_KILLS})"
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the kill storm's moments (default 1)")
    parser.add_argument(
        "--only-processes", action="store_true", help="only the process scenarios (kill storm, orphans, setsid)"
    )
    args = parser.parse_args()
    if not os.access(PROFIT, os.X_OK):
        print(f"fault_injection: no profit command beside this Python ({PROFIT})", file=sys.stderr)
        return 2

    scratch = tempfile.mkdtemp(prefix="profit-faults-")
    try:
        worker_file = os.path.join(scratch, "faulty_worker.py")
        with open(worker_file, "w") as file:
            file.write(WORKER_SOURCE)
        load_includes([worker_file])  # before any runner exists: LocalRunner passes it on to its workers

        print(machine_info())
        print(
            f"parallel {PARALLEL}; runner scenarios: {KILL_SHARE:.0%} of workers SIGKILL themselves and "
            f"{RAISE_SHARE:.0%} raise on their first attempt, retries={RETRIES}; scratch: {scratch}"
        )
        started = time.perf_counter()
        rows = (
            []
            if args.only_processes
            else [
                runner_scenario("fork", FORK_RUNS, max(1, args.fork_repeats), scratch),
                runner_scenario("local", LOCAL_RUNS, max(1, args.local_repeats), scratch),
                study_scenario(scratch),
            ]
        )
        process_rows = process_scenarios(scratch, max(1, args.storm_kills), args.seed)
        if rows:
            print()
            print_table(rows)
        print()
        print("exactly once, orphans and whole trees (every count must be 0):")
        print_process_table(process_rows)
        print()
        print("notes:")
        print(
            "  * runs lost = runs not DONE at the end (runner scenarios: interface STATE; study: NaN rows in "
            "output.txt); wrong results = DONE runs whose outputs differ from u+v (and u*v) computed here, "
            "compared exactly"
        )
        print(
            "  * time to recover (runner scenarios) = wall time with faults - wall time of the same runs without "
            "faults (spawn_array(wait=True), same seed, fresh work directory); per fault it is what a SIGKILLed "
            "or raising attempt plus its retry costs, as seen through parallel 2"
        )
        for row in rows:
            for note in row.notes:
                print(f"  * {note}")
        problems = [problem for row in rows for problem in row.problems]
        problems += [problem for row in process_rows for problem in row.problems]
        problems += [
            f"{row.scenario}: {row.lost} lost, {row.wrong} wrong, {row.duplicates} duplicate, {row.leftovers} leftover"
            for row in process_rows
            if row.lost or row.wrong or row.duplicates or row.leftovers
        ]
        for problem in problems:
            print(f"  ! {problem}")
        print(f"total benchmark time {time.perf_counter() - started:.1f} s")
        failed = any(row.lost or row.wrong for row in rows) or bool(problems)
        print("RESULT: " + ("FAILED (see the lines marked !)" if failed else "no run lost, no result wrong"))
        return 1 if failed else 0
    finally:
        if args.keep:
            print(f"scratch directory kept: {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
