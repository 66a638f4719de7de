"""Benchmark: our ForkRunner / LocalRunner / PoolRunner against bare fork, interpreter starts, loky, joblib, dask.

Every mode evaluates the trivial model ``f = u + v`` (float64 inputs and output)
with two runs (tasks) in flight, so what is measured is the cost of the run
system itself: starting a worker, handing it its inputs, getting its output
back and noticing that it ended.

The machine is shared and noisy, so the figures that count are RATIOS of ours
to a baseline measured in the same round: the script runs ``--rounds R``
rounds (default 5) in this one process; in each round every mode runs once,
back to back, in an order shuffled per round (seeded, printed), and every
ratio compares ours with its baseline *of the same round*. A ratio is reported
as min / median / max over the rounds; the median decides PASS or MISS against
the goal (issue 19, item 5):

1. ForkRunner + memmap throughput >= 0.85 x a bare ``os.fork`` loop (the child
   computes ``u + v`` and calls ``os._exit(0)``, the parent reaps it), and its
   single-run latency <= 1.3 x one bare fork + wait;
2. LocalRunner + memmap throughput >= 0.7 x starting ``python -c pass`` (this
   venv's interpreter, ``subprocess.Popen``) two at a time;
3. PoolRunner + memmap at least as fast as loky's reusable executor ``map``
   with chunks (``chunksize = n / (4 x 2)``) and as joblib's default
   (``Parallel(n_jobs=2)(delayed(add)(u, v) ...)``);
4. ForkRunner + zeromq >= 0.9 x ForkRunner + memmap; PoolRunner + zeromq
   >= 0.5 x PoolRunner + memmap.

Ours: ``Runner[kind](interface=..., worker=..., parallel=2)``; throughput =
runs / wall time of ``spawn_array(params, wait=True)``; latency = median wall
time of single blocking ``spawn(row, wait=True)``. Every output of ours is
checked exactly (``f == u + v``, every run DONE); wrong or missing results
make the exit status 1. A missed goal is only reported: this is a
measurement, not a test.

Other baselines, shown but not goals: ``python -c pass`` through ``sh -c``,
loky per-task ``submit``, ``ProcessPoolExecutor`` (fork context; per-task
``submit`` and chunked ``map``), ``multiprocessing.Pool`` (fork context,
chunked ``starmap``), a ``dask.distributed.LocalCluster`` (2 worker processes,
1 thread each; ``client.map`` per task and over chunks) and proFit 0.6 (in its
own venv, ``benchmarks/profit06.py``; measured once after the rounds, as it is
slow; ``--no-profit06`` skips it).

Pools, executors and clusters are started in their mode's slot of a round,
before the timing, warmed up with a few tasks, and shut down completely at the
end of the slot, so that no mode forks while another mode's threads are alive
(the dask cluster runs in a forked child of this process, as its client leaves
threads behind in the process that used it). The script checks that no
foreign thread is alive when a mode of ours or the bare fork loop starts and
says so if one is. A mode that fails, or whose library is missing (the
``bench`` extra: ``pip install 'profit-run[bench]'``), is reported as skipped.

Usage::

    python benchmarks/bench_runners.py [--rounds R] [--quick] [--no-profit06] [--json PATH]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import math
import multiprocessing
import os
import pathlib
import platform
import random
import resource
import select
import selectors
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # profit06.py sits beside this file
    sys.path.insert(0, str(HERE))

PARALLEL = 2
WARMUP_RUNS = 20
SEED = 2026
WORKER_LABEL = "bench_sum"

# proFit 0.6 polls with a 0.1 s sleep by default, so it gets fewer runs in the
# slow modes; the whole script should stay within a few minutes.
PROFIT06_MODES: list[dict[str, Any]] = [
    {
        "key": "profit06_fork_default",
        "name": "proFit 0.6 ForkRunner, default sleep",
        "runner": "fork",
        "sleep": None,
        "max_runs": 200,
        "max_latency_runs": 50,
    },
    {
        "key": "profit06_fork_1ms",
        "name": "proFit 0.6 ForkRunner, sleep=1 ms",
        "runner": "fork",
        "sleep": 0.001,
        "max_runs": None,
        "max_latency_runs": None,
    },
    {
        "key": "profit06_local_default",
        "name": "proFit 0.6 LocalRunner, default sleep",
        "runner": "local",
        "sleep": None,
        "max_runs": 100,
        "max_latency_runs": 20,
    },
    # Its ZeroMQ interface (loopback, a free port, otherwise proFit's defaults) does
    # 1-12 runs/s with stalls of ~5 s (timeout 4 s + retry_sleep 1 s): few runs, own time limit.
    {
        "key": "profit06_fork_zeromq",
        "name": "proFit 0.6 ForkRunner + zeromq *",
        "runner": "fork",
        "sleep": None,
        "interface": "zeromq",
        "max_runs": 50,
        "max_latency_runs": 10,
        "timeout": 150,
    },
]

# The worker lives in a file of its own because LocalRunner's workers are fresh
# processes: they learn about it only through PROFIT_INCLUDES, which lists the
# include files loaded in the runner's process (load_includes below).
WORKER_SOURCE = textwrap.dedent(
    f'''\
    """f = u + v as a profit Worker (loaded by the benchmark and by profit-worker)."""

    from profit.run import Worker


    @Worker.wrap("{WORKER_LABEL}")
    def f(u, v):
        return u + v
    '''
)

INTERFACE_DTYPES = {
    "input_config": {"u": {"dtype": np.float64}, "v": {"dtype": np.float64}},
    "output_config": {"f": {"dtype": np.float64, "size": (1, 1)}},
}


@dataclass
class Result:
    """Figures of one mode; ``skipped`` (a reason) when it could not be measured."""

    key: str
    name: str
    runs: int = 0
    latency_runs: int = 0
    runs_per_s: float | None = None
    latency_s: float | None = None
    # True/False: outputs checked; None: nothing to check (bare fork: exit codes only).
    correct: bool | None = None
    ours: bool = False
    note: str = ""
    skipped: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# --- helpers -------------------------------------------------------------------------


def _inputs(count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` random (u, v) rows as a structured array, as a study would pass them."""
    params = np.zeros(count, dtype=[("u", np.float64), ("v", np.float64)])
    params["u"] = rng.random(count)
    params["v"] = rng.random(count)
    return params


def _latency_stats(samples: list[float]) -> dict[str, float]:
    """Median (the reported figure) plus spread, kept for the JSON output."""
    ordered = sorted(samples)
    return {
        "latency_min_s": ordered[0],
        "latency_p90_s": ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))],
        "latency_max_s": ordered[-1],
    }


def _cpu_seconds() -> tuple[float, float]:
    """CPU time (user + system) so far of this process (all its threads) and of its reaped children."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def _add(u: float, v: float) -> float:
    """The model, for the process pools (module level, so it pickles by reference)."""
    return u + v


def _chunksize(n_tasks: int) -> int:
    """Chunk size of the chunked pool baselines: about four chunks per worker."""
    return max(1, n_tasks // (4 * PARALLEL))


# --- ours: ForkRunner / LocalRunner ----------------------------------------------------


# A worker as ``Runner`` takes it: a registered label (``f = u + v`` in Python, here)
# or a config dict (the command worker of bench_command.py).
WorkerSpec = str | dict[str, Any]


def _make_runner(
    kind: str, size: int, work_dir: str, worker: WorkerSpec = WORKER_LABEL, interface: str = "memmap"
) -> Any:
    """Our ``kind`` runner with an ``interface`` (label: memmap, zeromq) of ``size`` rows, running ``worker``.

    Every interface gets its defaults otherwise (zeromq: loopback, a free port).
    """
    from profit.run import Runner

    config = {"class": interface, "size": size, **INTERFACE_DTYPES}
    return Runner[kind](interface=config, worker=worker, work_dir=work_dir, parallel=PARALLEL)


def _check_outputs(runner: Any, sent: np.ndarray) -> tuple[bool, str]:
    """Compare every row's output with the inputs *we sent* (not what the interface holds)."""
    from profit.run import RunState

    n = len(sent)
    done = np.asarray(runner.interface.internal["DONE"][:n], dtype=bool)
    states = np.asarray(runner.interface.internal["STATE"][:n])
    f = np.asarray(runner.interface.output["f"][:n], dtype=np.float64).reshape(n)
    # The worker does the same float64 addition, so equality must be exact.
    wrong = int(np.count_nonzero(f != sent["u"] + sent["v"]))
    not_done = int(np.count_nonzero(~done | (states != RunState.DONE)))
    problems = []
    if runner.failed:
        first = min(runner.failed)
        problems.append(f"{len(runner.failed)} failed (run {first}: {runner.failed[first].reason})")
    if not_done:
        problems.append(f"{not_done} not done")
    if wrong:
        problems.append(f"{wrong} wrong outputs")
    return not problems, "; ".join(problems)


def _with_runner(
    kind: str,
    size: int,
    root: str,
    body: Callable[[Any], Any],
    worker: WorkerSpec = WORKER_LABEL,
    interface: str = "memmap",
) -> Any:
    """Run ``body(runner)`` with a fresh runner in a fresh work directory, then clean up."""
    work_dir = tempfile.mkdtemp(prefix=f"{kind}-{interface}-", dir=root)
    runner = _make_runner(kind, size, work_dir, worker, interface)
    try:
        return body(runner)
    finally:
        try:
            if runner.runs:  # only after an error: clean() refuses active runs
                runner.cancel_all()
            runner.clean()
        finally:
            shutil.rmtree(work_dir, ignore_errors=True)


def measure_ours(
    kind: str,
    name: str,
    n_runs: int,
    latency_runs: int,
    root: str,
    *,
    worker: WorkerSpec = WORKER_LABEL,
    interface: str = "memmap",
    warmup_runs: int = WARMUP_RUNS,
    note: str = "",
    report_done: bool = False,
    report_cpu: bool = False,
) -> Result:
    """Throughput and latency of our ``kind`` runner with the ``interface`` (default: memmap).

    Both benchmark scripts measure our runners through this one function, so
    that their figures come from the same method and stay comparable.

    Args:
        kind: ``"fork"``, ``"local"`` or ``"pool"`` (a key of ``Runner``); the result's key is
            ``ours_{kind}`` with the memmap interface, ``ours_{kind}_{interface}`` with another.
        name: the mode's name in the table.
        n_runs: runs in the timed ``spawn_array`` batch.
        latency_runs: single blocking runs whose median is the latency.
        root: directory under which each phase gets a fresh work directory.
        worker: what the runner runs (default: the ``f = u + v`` Python worker).
        interface: the interface's label (``"memmap"``, ``"zeromq"``), with its default options.
        warmup_runs: untimed runs before each phase.
        note: text for the notes section; problems found are appended to it.
        report_done: also count the runs that ended DONE (warm-up included), keep
            the counts in ``extra`` and say ``done X/Y (incl. warm-up)`` in the note.
        report_cpu: say the CPU time per run of the timed batch in the note: the runner
            process's (all its threads) and its workers' (reaped children: so only for
            runners with a process per run, not the pool, whose workers are reaped at the end).
            The runner's figure is kept in ``extra`` in any case.
    """
    key = f"ours_{kind}" if interface == "memmap" else f"ours_{kind}_{interface}"
    result = Result(key=key, name=name, runs=n_runs, latency_runs=latency_runs, ours=True, note=note)
    rng = np.random.default_rng(SEED)
    problems: list[str] = []
    completed = total = 0

    def check(runner: Any, sent: np.ndarray, phase: str) -> None:
        """Check every output of ``sent`` (after the timing, so it costs nothing measured)."""
        nonlocal completed, total
        from profit.run import RunState

        states = np.asarray(runner.interface.internal["STATE"][: len(sent)])
        completed += int(np.count_nonzero(states == RunState.DONE))
        total += len(sent)
        ok, why = _check_outputs(runner, sent)
        if not ok:
            problems.append(f"{phase}: {why}")

    try:
        # (a) throughput: warm-up batch, then the timed batch, in one runner whose
        # interface is big enough from the start (no resize while timing).
        warm, batch = _inputs(warmup_runs, rng), _inputs(n_runs, rng)

        def throughput(runner: Any) -> float:
            runner.spawn_array(warm, wait=True)
            own_before, children_before = _cpu_seconds()
            start = time.perf_counter()
            runner.spawn_array(batch, wait=True)
            elapsed = time.perf_counter() - start
            own_after, children_after = _cpu_seconds()
            result.extra["runner_cpu_ms_per_run"] = (own_after - own_before) * 1000 / n_runs
            if report_cpu:  # meaningless for the pool, whose workers are reaped only at the end
                result.extra["children_cpu_ms_per_run"] = (children_after - children_before) * 1000 / n_runs
            check(runner, np.concatenate([warm, batch]), "throughput")
            return elapsed

        elapsed = _with_runner(kind, warmup_runs + n_runs, root, throughput, worker, interface)
        result.runs_per_s = n_runs / elapsed

        # (b) latency: one blocking run at a time, in a new runner.
        warm, singles = _inputs(warmup_runs, rng), _inputs(latency_runs, rng)

        def latency(runner: Any) -> list[float]:
            for row in warm:
                runner.spawn({"u": row["u"], "v": row["v"]}, wait=True)
            samples = []
            for row in singles:
                params = {"u": row["u"], "v": row["v"]}
                start = time.perf_counter()
                runner.spawn(params, wait=True)
                samples.append(time.perf_counter() - start)
            check(runner, np.concatenate([warm, singles]), "latency")
            return samples

        samples = _with_runner(kind, warmup_runs + latency_runs, root, latency, worker, interface)
        result.latency_s = statistics.median(samples)
        result.extra.update(_latency_stats(samples))
        result.correct = not problems
        findings = list(problems)
        if report_cpu:
            findings.insert(
                0,
                f"CPU per run: workers {result.extra['children_cpu_ms_per_run']:.2f} ms, "
                f"runner {result.extra['runner_cpu_ms_per_run']:.2f} ms",
            )
        if report_done:
            result.extra.update(completed=completed, total=total)
            findings.insert(0, f"done {completed}/{total} (incl. warm-up)")
        if findings:
            result.note = "; ".join([result.note, *findings]).strip("; ")
    except Exception as error:  # a broken runner is a finding to report, not a crash
        traceback.print_exc()
        result.correct = False
        result.skipped = f"error: {type(error).__name__}: {error}"
    return result


# --- baseline: bare fork ---------------------------------------------------------------


class _ChildWaiter:
    """Reap our own children as their exits become events.

    With a pidfd per child (Linux) the parent sleeps in a selector until a
    child ends, like the runner does, and never reaps a child that is not
    its own. Without pidfds it falls back to ``os.wait()``. A child started by
    ``subprocess.Popen`` is reaped through its ``Popen`` (so that it knows it ended).
    """

    def __init__(self) -> None:
        self._pidfd = hasattr(os, "pidfd_open")
        self._selector = selectors.DefaultSelector() if self._pidfd else None
        self._processes: dict[int, subprocess.Popen[bytes]] = {}
        self.pending = 0

    def add(self, pid: int, process: subprocess.Popen[bytes] | None = None) -> None:
        if process is not None:
            self._processes[pid] = process
        if self._selector is not None:
            self._selector.register(os.pidfd_open(pid), selectors.EVENT_READ, pid)
        self.pending += 1

    def _reap(self, pid: int) -> int:
        process = self._processes.pop(pid, None)
        if process is not None:
            return process.wait()  # returns at once: the pidfd said it ended
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status)

    def wait(self) -> list[int]:
        """Block until at least one child ended; reap the ended ones, return their exit codes."""
        codes = []
        if self._selector is None:
            pid, status = os.wait()
            code = os.waitstatus_to_exitcode(status)
            process = self._processes.pop(pid, None)
            if process is not None:
                process.returncode = code
            codes.append(code)
        else:
            for key, _ in self._selector.select():
                self._selector.unregister(key.fd)
                os.close(key.fd)
                codes.append(self._reap(key.data))
        self.pending -= len(codes)
        return codes

    def close(self) -> None:
        while self.pending:
            self.wait()
        if self._selector is not None:
            self._selector.close()


def _fork_task(u: float, v: float) -> int:
    """Fork a child that computes ``u + v`` and exits at once; return its pid."""
    pid = os.fork()
    if pid == 0:
        try:
            u + v  # the "work"; the result is not sent back in this baseline
        finally:
            os._exit(0)  # no atexit handlers, no buffer flushing: leave at once
    return pid


# --- baseline: proFit 0.6 ---------------------------------------------------------------------


def _describe_profit06(raw: dict[str, Any]) -> str:
    """The note of a measured proFit 0.6 mode, from what ``measure_profit06`` returned."""
    return f"{raw['note']}; done {raw['completed']}/{raw['total']}; no warm-up"


def measure_profit06_modes(
    n_runs: int,
    latency_runs: int,
    *,
    modes: list[dict[str, Any]] = PROFIT06_MODES,
    timeout: float = 300,
    worker: dict[str, Any] | None = None,
    describe: Callable[[dict[str, Any]], str] = _describe_profit06,
) -> list[Result]:
    """proFit 0.6's runners in their own venv (see ``profit06.py``); skipped modes keep a note.

    Args:
        n_runs, latency_runs: requested sizes, capped per mode by its ``max_runs`` / ``max_latency_runs``.
        modes: which proFit 0.6 runners to measure (see ``PROFIT06_MODES`` for the keys;
            optional: ``interface``, default memmap, and ``timeout``, overriding the argument).
        timeout: seconds each mode may take before ``profit06.py`` gives up on it.
        worker: a proFit 0.6 worker config; None for its ``f = u + v`` Python worker.
        describe: the note of a measured mode, from ``measure_profit06``'s raw figures.
    """
    try:
        from profit06 import measure_profit06
    except Exception as error:  # the baseline is optional; our own figures still count
        return [
            Result(key=mode["key"], name=mode["name"], skipped=f"cannot import profit06.py: {error}") for mode in modes
        ]
    results = []
    for mode in modes:
        runs = n_runs if mode["max_runs"] is None else min(n_runs, mode["max_runs"])
        lat_runs = latency_runs if mode["max_latency_runs"] is None else min(latency_runs, mode["max_latency_runs"])
        print(f"  {mode['name']}: {runs} runs + {lat_runs} single runs ...", flush=True)
        raw = measure_profit06(
            runs,
            mode["runner"],
            sleep=mode["sleep"],
            parallel=PARALLEL,
            latency_runs=lat_runs,
            timeout=mode.get("timeout", timeout),
            worker=worker,
            interface=mode.get("interface"),
        )
        result = Result(key=mode["key"], name=mode["name"], runs=runs, latency_runs=lat_runs)
        if "skipped" in raw:
            result.skipped = raw["skipped"]
            print(f"    skipped: {raw['skipped']}", flush=True)
        else:
            result.runs_per_s = raw["runs_per_s"]
            result.latency_s = raw["latency_s"]
            result.correct = bool(raw["correct"]) and raw["completed"] == raw["total"]
            result.note = describe(raw)
            result.extra = {k: v for k, v in raw.items() if k not in ("runs_per_s", "latency_s", "note")}
        results.append(result)
    return results


# --- report ---------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    """What the figures were measured on (they mean little without it)."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    try:
        import profit

        profit_version = getattr(profit, "__version__", "?")
    except Exception:  # the report still has the rest of the machine
        profit_version = "?"
    return {
        "nproc": usable,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "numpy": np.__version__,
        "profit": profit_version,
        "platform": platform.platform(),
        "loadavg_1_5_15": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator <= 0 or math.isnan(numerator):
        return None
    return numerator / denominator


def _fmt_rate(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def _fmt_ms(seconds: float | None) -> str:
    if seconds is None or math.isnan(seconds):
        return "-"
    ms = seconds * 1000
    return f"{ms:.2f}" if ms < 10 else f"{ms:.1f}"


def _fmt_x(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}x" if value < 10 else f"{value:.0f}x"


def _fmt_correct(result: Result) -> str:
    if result.skipped and result.correct is None:
        return "-"
    if result.correct is None:
        return "exit 0" if result.extra.get("children_exited_0") else "exit!=0"
    return "yes" if result.correct else "NO"


def compute_ratios(by_key: dict[str, Result], pairs: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Ours ÷ each baseline: speed ratio (runs/s; >1 = ours faster), latency ratio (<1 = ours faster).

    Pairs whose modes were not measured (e.g. ``--no-profit06``) are left out.
    """
    ratios = []
    for ours_key, base_key in pairs:
        ours, base = by_key.get(ours_key), by_key.get(base_key)
        if ours is None or base is None:
            continue
        ratios.append(
            {
                "ours": ours_key,
                "baseline": base_key,
                "speed_ratio": _ratio(ours.runs_per_s, base.runs_per_s),
                "latency_ratio": _ratio(ours.latency_s, base.latency_s),
            }
        )
    return ratios


def print_preamble(title: str, machine: dict[str, Any], settings: dict[str, Any]) -> None:
    """The report's opening: title, the noise warning, the machine and the settings."""
    load = machine["loadavg_1_5_15"]
    print()
    print(title)
    print(
        "NOTE: this machine is shared and noisy; absolute times drift from run to run. "
        "Compare the RATIOS, which were all measured in this same invocation."
    )
    print(
        f"machine: nproc {machine['nproc']} (cpu_count {machine['cpu_count']}), "
        f"Python {machine['python']}, numpy {machine['numpy']}, profit {machine['profit']}, "
        f"{machine['platform']}" + (f", load avg {load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f}" if load else "")
    )
    print(
        f"settings: --runs {settings['runs']} --latency-runs {settings['latency_runs']}; "
        f"runs column = throughput runs / latency runs (latency = median of single blocking runs)"
    )
    print()


def profit06_peer(result: Result) -> str:
    """Key of the proFit 0.6 mode (same runner kind, default sleep) that ``result`` is compared with.

    ForkRunner + zeromq is compared with proFit 0.6's ForkRunner + zeromq; every
    other mode with proFit's memmap mode of the same runner kind (PoolRunner: ForkRunner).
    """
    if result.key == "ours_fork_zeromq":
        return "profit06_fork_zeromq"
    return "profit06_local_default" if result.key.startswith("ours_local") else "profit06_fork_default"


# A ratio column of the table: heading, width, and the baseline key a row is divided by.
RatioColumn = tuple[str, int, Callable[[Result], str]]


def print_table(results: list[Result], ratio_columns: list[RatioColumn], legend: str) -> None:
    """The results table, one row per mode, then ``legend`` (what the ratio columns mean) and the notes.

    Every mode gets the same columns (runs, runs/s, latency, correct); each of
    ``ratio_columns`` adds our runs/s ÷ a baseline's, filled in for our modes only.
    """
    by_key = {result.key: result for result in results}

    def rate_ratio(result: Result, baseline_key: str) -> str:
        if not result.ours:
            return ""
        base = by_key.get(baseline_key)
        return _fmt_x(_ratio(result.runs_per_s, base.runs_per_s if base else None))

    header = f"{'mode':<42} {'runs':>9} {'runs/s':>8} {'lat ms':>8} {'correct':>7}" + "".join(
        f" {heading:>{width}}" for heading, width, _ in ratio_columns
    )
    print(header)
    print("-" * len(header))
    for result in results:
        runs = f"{result.runs}/{result.latency_runs}" if result.runs else "-"
        print(
            f"{result.name:<42} {runs:>9} {_fmt_rate(result.runs_per_s):>8} {_fmt_ms(result.latency_s):>8} "
            f"{_fmt_correct(result):>7}"
            + "".join(f" {rate_ratio(result, baseline(result)):>{width}}" for _, width, baseline in ratio_columns)
        )
    print("-" * len(header))
    print(legend)
    print("notes:")
    for result in results:
        text = f"skipped: {result.skipped}" if result.skipped else result.note
        if text:
            print(f"  {result.name}: {text}")


def print_ratios(heading: str, results: list[Result], ratios: list[dict[str, Any]], widths: tuple[int, int]) -> None:
    """The ratio lines under ``heading``; ``widths`` pad our and the baseline's mode names."""
    print()
    print(heading)
    names = {result.key: result.name for result in results}
    ours_width, base_width = widths
    for ratio in ratios:
        print(
            f"  {names[ratio['ours']]:<{ours_width}} vs {names[ratio['baseline']]:<{base_width}} "
            f"speed {_fmt_x(ratio['speed_ratio']):>7}   latency {_fmt_x(ratio['latency_ratio']):>7}"
        )


# --- main ----------------------------------------------------------------------------------


def parse_arguments(
    description: str, default_runs: int, default_latency_runs: int, argv: list[str] | None = None
) -> argparse.Namespace:
    """The options both benchmark scripts take (only their defaults differ)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--runs", type=int, default=default_runs, help=f"runs in each throughput batch (default {default_runs})"
    )
    parser.add_argument(
        "--latency-runs",
        type=int,
        default=default_latency_runs,
        help=f"single runs for each latency median (default {default_latency_runs})",
    )
    parser.add_argument("--no-profit06", action="store_true", help="skip the proFit 0.6 baseline")
    parser.add_argument("--json", metavar="PATH", help="also write all figures to this JSON file")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.latency_runs < 1:
        parser.error("--runs and --latency-runs must be at least 1")
    return args


def finish(
    results: list[Result], machine: dict[str, Any], settings: dict[str, Any], json_path: str | None, **sections: Any
) -> int:
    """Exit status, 1 when any mode of ours gave wrong or no results; writes the JSON report if asked.

    Missed performance targets do not count: the scripts measure, they do not test.
    ``sections`` (ratios, targets, ...) go into the JSON report after the results.
    """
    ours_wrong = [result.name for result in results if result.ours and result.correct is not True]
    exit_code = 1 if ours_wrong else 0
    if ours_wrong:
        print(f"\nWRONG OR MISSING RESULTS from: {', '.join(ours_wrong)} (exit status 1)")

    if json_path:
        report = {
            "machine": machine,
            "settings": settings,
            "results": [asdict(result) for result in results],
            **sections,
            "exit_code": exit_code,
        }
        with open(json_path, "w") as file:
            json.dump(report, file, indent=2)
        print(f"figures written to {json_path}")
    return exit_code


# --- the interleaved rounds ------------------------------------------------------------------


@dataclass
class Sizes:
    """Runs per mode and round (throughput batches) and single runs per latency median."""

    fork: int = 600
    local: int = 150
    pool: int = 20_000
    fork_zeromq: int = 600
    pool_zeromq: int = 5000
    spawn: int = 150  # python -c pass, directly and through sh -c
    pool_baseline: int = 20_000  # loky, joblib, ProcessPoolExecutor, multiprocessing.Pool, dask over chunks
    dask_per_task: int = 2000  # dask's scheduler handles ~1-2k tasks/s here: fewer runs per task
    latency: int = 100
    local_latency: int = 20  # LocalRunner and the interpreter starts: ~30 ms each


DEFAULT_SIZES = Sizes()
QUICK_SIZES = Sizes(
    fork=150,
    local=30,
    pool=4000,
    fork_zeromq=150,
    pool_zeromq=1000,
    spawn=30,
    pool_baseline=4000,
    dask_per_task=300,
    latency=30,
    local_latency=8,
)
POOL_WARMUP_TASKS = 20  # tasks through a freshly started pool, executor or cluster before its timing
DASK_TIMEOUT_S = 300  # the forked child that measures dask is killed after this
BENCH_EXTRA = "pip install 'profit-run[bench]'"


@dataclass
class Figure:
    """One mode's figures in one round."""

    runs_per_s: float | None = None
    latency_s: float | None = None
    # True/False: outputs checked; None: nothing comes back, only exit codes are checked.
    correct: bool | None = None
    note: str = ""


@dataclass
class Mode:
    """A mode of the table and its figures over the rounds (``figures[round]`` or ``skipped[round]``)."""

    key: str
    name: str
    runs: int
    latency_runs: int = 0
    ours: bool = False
    figures: dict[int, Figure] = field(default_factory=dict)
    skipped: dict[int, str] = field(default_factory=dict)

    def values(self, metric: str) -> list[float]:
        """The mode's ``runs_per_s`` or ``latency_s`` of every round that measured it."""
        return [value for f in self.figures.values() if (value := getattr(f, metric)) is not None]

    def median(self, metric: str) -> float | None:
        values = self.values(metric)
        return statistics.median(values) if values else None

    def failed(self) -> bool:
        """True when this mode's results were wrong, or it could not run, in some round."""
        return any(f.correct is False for f in self.figures.values()) or bool(self.skipped)


@dataclass
class Slot:
    """What runs back to back in a round: one mode, or the modes that share one pool or executor.

    ``measure(rng, round_index)`` returns a ``Figure`` per mode key. Every slot forks from
    this process (ours, the bare fork loop, the pools, the child that measures dask), so no
    other mode's thread may be alive when one starts. ``needs`` are the top-level modules
    the slot imports; when one is missing, its modes are skipped with one sentence.
    """

    name: str
    keys: list[str]
    measure: Callable[[np.random.Generator, int], dict[str, Figure]]
    needs: tuple[str, ...] = ()


def _native_threads() -> int | None:
    """Threads of this process as the kernel counts them (also ZeroMQ's and BLAS's), None off Linux."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return None


def _foreign_threads(native_baseline: int | None) -> list[str]:
    """Threads of this process other than the main thread and those it had at the start (``native_baseline``).

    Python threads are named; native ones (a ZeroMQ I/O thread, say) are only counted.
    """
    names = [thread.name for thread in threading.enumerate() if thread is not threading.main_thread()]
    native = _native_threads()
    if native is not None and native_baseline is not None and native - len(names) > native_baseline:
        names.append(f"{native - len(names) - native_baseline} native thread(s)")
    return names


def _settle_threads(timeout: float = 10.0) -> None:
    """Give the threads that a shut-down pool is ending (queue feeders, say) up to ``timeout`` s to end."""
    deadline = time.monotonic() + timeout
    for thread in threading.enumerate():
        if thread is not threading.main_thread():
            thread.join(max(0.0, deadline - time.monotonic()))


def _pairs(params: np.ndarray) -> list[tuple[float, float]]:
    return [(float(u), float(v)) for u, v in params.tolist()]


def _add_chunk(pairs: list[tuple[float, float]]) -> list[float]:
    """The model over a chunk of (u, v) pairs: one task of the chunked dask baseline."""
    return [u + v for u, v in pairs]


def _correct(outputs: list[float], pairs: list[tuple[float, float]]) -> bool:
    """Exact comparison: the baselines do the same float64 addition."""
    return list(outputs) == [u + v for u, v in pairs]


def _time(call: Callable[[], Any]) -> tuple[float, Any]:
    """Wall time of ``call()`` and what it returned."""
    start = time.perf_counter()
    value = call()
    return time.perf_counter() - start, value


def _latencies(call: Callable[[float, float], Any], pairs: list[tuple[float, float]]) -> tuple[float, list[Any]]:
    """Median wall time of ``call(u, v)`` over ``pairs`` (one at a time), and what the calls returned."""
    samples, outputs = [], []
    for u, v in pairs:
        elapsed, output = _time(lambda: call(u, v))  # called at once, in this iteration
        samples.append(elapsed)
        outputs.append(output)
    return statistics.median(samples), outputs


# --- slots: ours ------------------------------------------------------------------------------


def measure_ours_round(
    kind: str, interface: str, n_runs: int, latency_runs: int, root: str, rng: np.random.Generator
) -> Figure:
    """One round of our ``kind`` runner: warm-up batch, timed ``spawn_array`` batch, single blocking runs.

    All in one runner whose interface has a row per run from the start (no resize while timing);
    every output is checked afterwards, so checking costs nothing measured.
    """
    warm, batch, singles = _inputs(WARMUP_RUNS, rng), _inputs(n_runs, rng), _inputs(latency_runs, rng)

    def body(runner: Any) -> Figure:
        runner.spawn_array(warm, wait=True)
        elapsed, _ = _time(lambda: runner.spawn_array(batch, wait=True))
        latency, _ = _latencies(lambda u, v: runner.spawn({"u": u, "v": v}, wait=True), _pairs(singles))
        ok, why = _check_outputs(runner, np.concatenate([warm, batch, singles]))
        return Figure(n_runs / elapsed, latency, ok, why)

    try:
        figure: Figure = _with_runner(kind, WARMUP_RUNS + n_runs + latency_runs, root, body, interface=interface)
    finally:
        if interface == "zeromq":
            _end_zeromq_context()
    return figure


def _end_zeromq_context() -> None:
    """Close this process's ZeroMQ context: its I/O thread must not outlive the zeromq slot.

    Our zeromq interface takes its sockets from ``zmq.Context.instance()``, which
    makes a new context the next time it is needed.
    """
    zmq = sys.modules.get("zmq")
    if zmq is not None:
        zmq.Context.instance().destroy(linger=0)


# --- slots: bare fork and interpreter starts -------------------------------------------------


def measure_bare_fork_round(n_runs: int, latency_runs: int, rng: np.random.Generator) -> Figure:
    """``os.fork`` per task, at most ``PARALLEL`` children in flight; latency: one fork + wait."""
    waiter = _ChildWaiter()
    codes: list[int] = []
    sys.stdout.flush()  # a child leaves with os._exit: nothing buffered is written twice anyway
    sys.stderr.flush()

    def batch(pairs: list[tuple[float, float]]) -> None:
        for u, v in pairs:
            while waiter.pending >= PARALLEL:
                codes.extend(waiter.wait())
            waiter.add(_fork_task(u, v))
        while waiter.pending:
            codes.extend(waiter.wait())

    def single(u: float, v: float) -> None:
        waiter.add(_fork_task(u, v))
        codes.extend(waiter.wait())

    try:
        batch(_pairs(_inputs(WARMUP_RUNS, rng)))
        elapsed, _ = _time(lambda: batch(_pairs(_inputs(n_runs, rng))))
        latency, _ = _latencies(single, _pairs(_inputs(latency_runs, rng)))
    finally:
        waiter.close()
    bad = sum(code != 0 for code in codes)
    # Nothing comes back from the children: all that can be checked is that they exited 0.
    return Figure(
        n_runs / elapsed, latency, None if not bad else False, f"{bad} children exited non-zero" if bad else ""
    )


def measure_spawn_round(argv: list[str], n_runs: int, latency_runs: int) -> Figure:
    """``subprocess.Popen(argv)`` per task, at most ``PARALLEL`` in flight; latency: one Popen + wait."""
    waiter = _ChildWaiter()
    codes: list[int] = []

    def start() -> None:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
        waiter.add(process.pid, process)

    def batch(count: int) -> None:
        for _ in range(count):
            while waiter.pending >= PARALLEL:
                codes.extend(waiter.wait())
            start()
        while waiter.pending:
            codes.extend(waiter.wait())

    def single(u: float, v: float) -> None:
        start()
        codes.extend(waiter.wait())

    try:
        batch(PARALLEL)  # warm-up: the interpreter's files in the page cache
        elapsed, _ = _time(lambda: batch(n_runs))
        latency, _ = _latencies(single, [(0.0, 0.0)] * latency_runs)
    finally:
        waiter.close()
    bad = sum(code != 0 for code in codes)
    return Figure(n_runs / elapsed, latency, None if not bad else False, f"{bad} exited non-zero" if bad else "")


# --- slots: pools and executors ----------------------------------------------------------------


def _pool_figures(
    rng: np.random.Generator,
    round_index: int,
    sizes: dict[str, int],
    batch_calls: dict[str, Callable[[list[tuple[float, float]]], list[float]]],
    single_calls: dict[str, Callable[[float, float], float]],
    latency_runs: int,
) -> dict[str, Figure]:
    """Time each of ``batch_calls`` (one pool, its modes in an order rotated per round), then latencies.

    ``batch_calls[key](pairs)`` computes ``sizes[key]`` pairs; ``single_calls[key](u, v)`` is one
    blocking call of the mode ``key`` (a mode without one has no latency figure). The caller has
    started and warmed up the pool and shuts it down.
    """
    keys = list(batch_calls)
    shift = round_index % len(keys)
    figures: dict[str, Figure] = {}
    for key in keys[shift:] + keys[:shift]:
        pairs = _pairs(_inputs(sizes[key], rng))
        elapsed, outputs = _time(lambda: batch_calls[key](pairs))  # called at once, in this iteration
        figures[key] = Figure(len(pairs) / elapsed, correct=_correct(outputs, pairs))
    for key, call in single_calls.items():
        pairs = _pairs(_inputs(latency_runs, rng))
        figures[key].latency_s, outputs = _latencies(call, pairs)
        figures[key].correct = bool(figures[key].correct) and _correct(outputs, pairs)
    return figures


def _warm(batch_call: Callable[[list[tuple[float, float]]], list[float]], rng: np.random.Generator) -> None:
    batch_call(_pairs(_inputs(POOL_WARMUP_TASKS, rng)))


def _executor_figures(
    executor: Any, name: str, sizes: Sizes, rng: np.random.Generator, round_index: int
) -> dict[str, Figure]:
    """A ``concurrent.futures``-style executor (loky's, ``ProcessPoolExecutor``): chunked ``map``
    (``{name}_map``) and per-task ``submit`` (``{name}_submit``); latency ``submit().result()``."""
    n = sizes.pool_baseline

    def chunked(pairs: list[tuple[float, float]]) -> list[float]:
        return list(executor.map(_add, *zip(*pairs), chunksize=_chunksize(len(pairs))))

    def per_task(pairs: list[tuple[float, float]]) -> list[float]:
        futures = [executor.submit(_add, u, v) for u, v in pairs]
        return [future.result() for future in futures]

    _warm(per_task, rng)
    return _pool_figures(
        rng,
        round_index,
        {f"{name}_map": n, f"{name}_submit": n},
        {f"{name}_map": chunked, f"{name}_submit": per_task},
        {f"{name}_submit": lambda u, v: executor.submit(_add, u, v).result()},
        sizes.latency,
    )


def measure_loky_round(sizes: Sizes, rng: np.random.Generator, round_index: int) -> dict[str, Figure]:
    """loky's reusable executor: chunked ``map`` and per-task ``submit``; latency ``submit().result()``."""
    import loky

    executor = loky.get_reusable_executor(max_workers=PARALLEL)
    try:
        return _executor_figures(executor, "loky", sizes, rng, round_index)
    finally:
        executor.shutdown(wait=True, kill_workers=True)


def measure_joblib_round(sizes: Sizes, rng: np.random.Generator, round_index: int) -> dict[str, Figure]:
    """joblib's default use: ``Parallel(n_jobs=2)(delayed(add)(u, v) for ...)`` (its loky backend, auto batching)."""
    import joblib

    def default(pairs: list[tuple[float, float]]) -> list[float]:
        return list(joblib.Parallel(n_jobs=PARALLEL)(joblib.delayed(_add)(u, v) for u, v in pairs))

    try:
        _warm(default, rng)
        return _pool_figures(
            rng,
            round_index,
            {"joblib": sizes.pool_baseline},
            {"joblib": default},
            {"joblib": lambda u, v: default([(u, v)])[0]},
            sizes.latency,
        )
    finally:
        # joblib keeps its (vendored loky) executor and workers for the next call: end them now.
        from joblib.externals.loky import reusable_executor

        executor = getattr(reusable_executor, "_executor", None)
        if executor is not None:
            executor.shutdown(wait=True, kill_workers=True)


def measure_process_pool_round(sizes: Sizes, rng: np.random.Generator, round_index: int) -> dict[str, Figure]:
    """``concurrent.futures.ProcessPoolExecutor`` (fork context): per-task ``submit`` and chunked ``map``."""
    import concurrent.futures

    executor = concurrent.futures.ProcessPoolExecutor(
        max_workers=PARALLEL, mp_context=multiprocessing.get_context("fork")
    )
    try:
        return _executor_figures(executor, "ppe", sizes, rng, round_index)
    finally:
        executor.shutdown(wait=True)


def measure_mp_pool_round(sizes: Sizes, rng: np.random.Generator, round_index: int) -> dict[str, Figure]:
    """``multiprocessing.Pool(2)`` (fork context): chunked ``starmap``; latency ``apply``."""
    pool = multiprocessing.get_context("fork").Pool(PARALLEL)

    def chunked(pairs: list[tuple[float, float]]) -> list[float]:
        return pool.starmap(_add, pairs, chunksize=_chunksize(len(pairs)))

    try:
        _warm(chunked, rng)
        return _pool_figures(
            rng,
            round_index,
            {"mp_pool": sizes.pool_baseline},
            {"mp_pool": chunked},
            {"mp_pool": lambda u, v: pool.apply(_add, (u, v))},
            sizes.latency,
        )
    finally:
        pool.close()
        pool.join()


def measure_dask_round(sizes: Sizes, rng: np.random.Generator, round_index: int) -> dict[str, Figure]:
    """A ``LocalCluster`` (2 processes, 1 thread each): ``client.map`` per task and over chunks.

    Measured in a forked child of this process: the client leaves threads behind
    (its event loop, an offload executor) that our fork modes must not fork with.
    """

    def body() -> dict[str, Any]:
        import logging

        from dask.distributed import Client, LocalCluster

        cluster = LocalCluster(
            n_workers=PARALLEL,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        )
        client = Client(cluster)

        def per_task(pairs: list[tuple[float, float]]) -> list[float]:
            us, vs = zip(*pairs)
            return list(client.gather(client.map(_add, us, vs, pure=False)))

        def chunked(pairs: list[tuple[float, float]]) -> list[float]:
            chunks = [pairs[i : i + _chunksize(len(pairs))] for i in range(0, len(pairs), _chunksize(len(pairs)))]
            results = client.gather(client.map(_add_chunk, chunks, pure=False))
            return [value for chunk in results for value in chunk]

        try:
            _warm(per_task, rng)
            figures = _pool_figures(
                rng,
                round_index,
                {"dask_map": sizes.dask_per_task, "dask_chunks": sizes.pool_baseline},
                {"dask_map": per_task, "dask_chunks": chunked},
                {"dask_map": lambda u, v: client.submit(_add, u, v, pure=False).result()},
                sizes.latency,
            )
        finally:
            client.close()
            cluster.close()
        return {key: asdict(figure) for key, figure in figures.items()}

    return {key: Figure(**values) for key, values in _in_child(body, DASK_TIMEOUT_S).items()}


def _in_child(body: Callable[[], dict[str, Any]], timeout: float) -> dict[str, Any]:
    """``body()`` in a forked child; its JSON-able result comes back through a pipe.

    Raises:
        RuntimeError: ``body`` raised (its message is passed on) or the child died without an answer.
        TimeoutError: no answer within ``timeout`` seconds (the child is killed).
    """
    read_fd, write_fd = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: measure, send, leave without running the parent's exit handlers
        os.close(read_fd)
        try:
            try:
                payload: dict[str, Any] = {"figures": body()}
            except BaseException as error:  # everything goes back to the parent as a reason
                payload = {"error": f"{type(error).__name__}: {error}"}
            with os.fdopen(write_fd, "w") as pipe:
                json.dump(payload, pipe)
        finally:
            os._exit(0)
    os.close(write_fd)
    data = b""
    deadline = time.monotonic() + timeout
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([read_fd], [], [], remaining)[0]:
                os.kill(pid, signal.SIGKILL)
                raise TimeoutError(f"no answer within {timeout:.0f} s")
            chunk = os.read(read_fd, 65536)
            if not chunk:
                break
            data += chunk
    finally:
        os.close(read_fd)
        _, status = os.waitpid(pid, 0)
    if not data:
        raise RuntimeError(
            f"the measuring child ended without an answer (exit status {os.waitstatus_to_exitcode(status)})"
        )
    payload = json.loads(data)
    if "error" in payload:
        raise RuntimeError(payload["error"])
    figures: dict[str, Any] = payload["figures"]
    return figures


# --- the plan: modes, slots, goals ----------------------------------------------------------


def plan(sizes: Sizes, root: str) -> tuple[list[Mode], list[Slot]]:
    """Every mode of the table, and the slots that measure them in each round."""
    python_pass = [sys.executable, "-c", "pass"]
    sh_python_pass = ["sh", "-c", f"{shlex.quote(sys.executable)} -c pass"]
    s = sizes
    modes = [
        Mode("bare_fork", "bare os.fork loop", s.fork, s.latency),
        Mode("python_pass", "Popen python -c pass", s.spawn, s.local_latency),
        Mode("sh_python_pass", "Popen sh -c 'python -c pass'", s.spawn, s.local_latency),
        Mode("loky_map", "loky executor map, chunked", s.pool_baseline),
        Mode("loky_submit", "loky executor submit per task", s.pool_baseline, s.latency),
        Mode("joblib", "joblib Parallel(n_jobs=2) default", s.pool_baseline, s.latency),
        Mode("ppe_submit", "ProcessPoolExecutor submit per task", s.pool_baseline, s.latency),
        Mode("ppe_map", "ProcessPoolExecutor map, chunked", s.pool_baseline),
        Mode("mp_pool", "multiprocessing.Pool starmap, chunked", s.pool_baseline, s.latency),
        Mode("dask_map", "dask LocalCluster client.map per task", s.dask_per_task, s.latency),
        Mode("dask_chunks", "dask LocalCluster client.map of chunks", s.pool_baseline),
        Mode("ours_fork", "ours: ForkRunner + memmap", s.fork, s.latency, ours=True),
        Mode("ours_local", "ours: LocalRunner + memmap", s.local, s.local_latency, ours=True),
        Mode("ours_pool", "ours: PoolRunner + memmap", s.pool, s.latency, ours=True),
        Mode("ours_fork_zeromq", "ours: ForkRunner + zeromq", s.fork_zeromq, s.latency, ours=True),
        Mode("ours_pool_zeromq", "ours: PoolRunner + zeromq", s.pool_zeromq, s.latency, ours=True),
    ]

    def ours(key: str, kind: str, interface: str, n: int, latency: int) -> Slot:
        return Slot(key, [key], lambda rng, _: {key: measure_ours_round(kind, interface, n, latency, root, rng)})

    slots = [
        Slot("bare_fork", ["bare_fork"], lambda rng, _: {"bare_fork": measure_bare_fork_round(s.fork, s.latency, rng)}),
        Slot(
            "python_pass",
            ["python_pass"],
            lambda rng, _: {"python_pass": measure_spawn_round(python_pass, s.spawn, s.local_latency)},
        ),
        Slot(
            "sh_python_pass",
            ["sh_python_pass"],
            lambda rng, _: {"sh_python_pass": measure_spawn_round(sh_python_pass, s.spawn, s.local_latency)},
        ),
        Slot("loky", ["loky_map", "loky_submit"], lambda rng, r: measure_loky_round(s, rng, r), needs=("loky",)),
        Slot("joblib", ["joblib"], lambda rng, r: measure_joblib_round(s, rng, r), needs=("joblib",)),
        Slot("ProcessPoolExecutor", ["ppe_submit", "ppe_map"], lambda rng, r: measure_process_pool_round(s, rng, r)),
        Slot("multiprocessing.Pool", ["mp_pool"], lambda rng, r: measure_mp_pool_round(s, rng, r)),
        Slot(
            "dask",
            ["dask_map", "dask_chunks"],
            lambda rng, r: measure_dask_round(s, rng, r),
            needs=("dask", "distributed"),
        ),
        ours("ours_fork", "fork", "memmap", s.fork, s.latency),
        ours("ours_local", "local", "memmap", s.local, s.local_latency),
        ours("ours_pool", "pool", "memmap", s.pool, s.latency),
        ours("ours_fork_zeromq", "fork", "zeromq", s.fork_zeromq, s.latency),
        ours("ours_pool_zeromq", "pool", "zeromq", s.pool_zeromq, s.latency),
    ]
    return modes, slots


@dataclass
class Goal:
    """``ours``'s metric ÷ ``baseline``'s, per round; ``at_least`` (rates) or at most (latencies) ``target``."""

    text: str
    ours: str
    baseline: str
    metric: str = "runs_per_s"
    target: float | None = None  # None: shown, not a goal
    at_least: bool = True


GOALS = [
    Goal("ForkRunner+memmap runs/s / bare os.fork loop", "ours_fork", "bare_fork", target=0.85),
    Goal("ForkRunner latency / bare fork+wait", "ours_fork", "bare_fork", "latency_s", 1.3, at_least=False),
    Goal("LocalRunner+memmap runs/s / python -c pass", "ours_local", "python_pass", target=0.7),
    Goal("PoolRunner+memmap runs/s / loky map chunked", "ours_pool", "loky_map", target=1.0),
    Goal("PoolRunner+memmap runs/s / joblib default", "ours_pool", "joblib", target=1.0),
    Goal("ForkRunner+zeromq runs/s / ForkRunner+memmap", "ours_fork_zeromq", "ours_fork", target=0.9),
    Goal("PoolRunner+zeromq runs/s / PoolRunner+memmap", "ours_pool_zeromq", "ours_pool", target=0.5),
]
INFO_RATIOS = [
    Goal("LocalRunner+memmap runs/s / sh -c 'python -c pass'", "ours_local", "sh_python_pass"),
    Goal("PoolRunner+memmap latency / loky submit", "ours_pool", "loky_submit", "latency_s"),
    Goal("PoolRunner+memmap latency / joblib", "ours_pool", "joblib", "latency_s"),
    Goal("PoolRunner+memmap latency / ProcessPoolExecutor submit", "ours_pool", "ppe_submit", "latency_s"),
    Goal("PoolRunner+memmap runs/s / ProcessPoolExecutor map chunked", "ours_pool", "ppe_map"),
    Goal("PoolRunner+memmap runs/s / multiprocessing.Pool chunked", "ours_pool", "mp_pool"),
    Goal("PoolRunner+memmap runs/s / dask client.map of chunks", "ours_pool", "dask_chunks"),
]


def evaluate(goal: Goal, by_key: dict[str, Mode]) -> dict[str, Any]:
    """The per-round ratios of ``goal`` (same round only), their min / median / max and PASS / MISS / n/a.

    A mode of ours with wrong results (or none) MISSes its goals: a fast wrong answer is no answer.
    """
    ours, base = by_key[goal.ours], by_key[goal.baseline]
    ratios = []
    for round_index, figure in sorted(ours.figures.items()):
        other = base.figures.get(round_index)
        mine = getattr(figure, goal.metric)
        theirs = getattr(other, goal.metric) if other else None
        if mine is not None and theirs:
            ratios.append(mine / theirs)
    row: dict[str, Any] = {
        "goal": goal.text,
        "ours": goal.ours,
        "baseline": goal.baseline,
        "metric": goal.metric,
        "target": goal.target,
        "at_least": goal.at_least,
        "ratios": ratios,
        "min": min(ratios) if ratios else None,
        "median": statistics.median(ratios) if ratios else None,
        "max": max(ratios) if ratios else None,
    }
    if goal.target is None:
        row["status"] = ""
    elif not ratios:
        row["status"] = "n/a"
    elif ours.failed():
        row["status"] = "MISS (wrong or missing results)"
    else:
        met = row["median"] >= goal.target if goal.at_least else row["median"] <= goal.target
        row["status"] = "PASS" if met else "MISS"
    return row


# --- running the rounds ------------------------------------------------------------------------


def run_slot(
    slot: Slot, round_index: int, by_key: dict[str, Mode], warned: set[str], audit: list[str], native: int | None
) -> None:
    """Measure ``slot``'s modes once; a failure becomes a skip reason of its modes in this round.

    ``native`` is the number of threads the process had before the first round (the main
    thread, BLAS's); more than that before or after a slot goes into ``audit``.
    """
    missing = [name for name in slot.needs if importlib.util.find_spec(name) is None]
    if missing:
        reason = f"{', '.join(missing)} not installed ({BENCH_EXTRA})"
        if slot.name not in warned:
            warned.add(slot.name)
            print(f"  {slot.name}: skipped, {reason}.", flush=True)
        for key in slot.keys:
            by_key[key].skipped[round_index] = reason
        return
    alive = _foreign_threads(native)
    if alive:
        audit.append(f"round {round_index + 1}: {slot.name} started with threads alive: {', '.join(alive)}")
    seed = np.random.default_rng([SEED, round_index, sum(map(ord, slot.name))])
    started = time.perf_counter()
    try:
        figures = slot.measure(seed, round_index)
    except Exception as error:  # one broken mode is a finding, not the end of the benchmark
        reason = f"{type(error).__name__}: {error}".splitlines()[0][:200]
        if by_key[slot.keys[0]].ours:
            traceback.print_exc()
        print(f"  {slot.name}: failed: {reason}", flush=True)
        for key in slot.keys:
            by_key[key].skipped[round_index] = reason
        return
    finally:
        _settle_threads()
        left = _foreign_threads(native)
        if left:
            audit.append(f"round {round_index + 1}: threads left after {slot.name}: {', '.join(left)}")
    for key in slot.keys:
        figure = figures[key]
        by_key[key].figures[round_index] = figure
        latency = f", {_fmt_ms(figure.latency_s)} ms" if figure.latency_s is not None else ""
        wrong = "" if figure.correct is not False else f"  WRONG: {figure.note}"
        print(f"  {by_key[key].name:<40} {_fmt_rate(figure.runs_per_s):>7} runs/s{latency}{wrong}", flush=True)
    print(f"  ({slot.name}: {time.perf_counter() - started:.1f} s)", flush=True)


def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), or what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def library_versions() -> dict[str, str]:
    """Versions of the baseline libraries (``-`` when not installed), without importing them."""
    versions = {}
    for name in ("loky", "joblib", "dask", "distributed", "pyzmq"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "-"
    return versions


# --- the report ----------------------------------------------------------------------------------


def _fmt_spread(values: list[float], fmt: Callable[[float | None], str]) -> str:
    return f"{fmt(min(values))}-{fmt(max(values))}" if len(values) > 1 else ""


def print_modes(modes: list[Mode], rounds: int, profit06: list[Result]) -> None:
    """One row per mode: medians over the rounds (and the rate's min-max), correctness, skip reasons."""
    header = f"{'mode':<42} {'runs/lat':>11} {'rounds':>6} {'runs/s':>8} {'(min-max)':>13} {'lat ms':>8} {'correct':>8}"
    print(header)
    print("-" * len(header))
    notes = []
    for mode in modes:
        rates = mode.values("runs_per_s")
        checks = [f.correct for f in mode.figures.values()]
        if not mode.figures:
            correct = "-"
        elif any(check is False for check in checks):
            correct = "NO"
        else:
            correct = "yes" if all(check is True for check in checks) else "exit 0"
        sizes = f"{mode.runs}/{mode.latency_runs}" if mode.latency_runs else f"{mode.runs}/-"
        print(
            f"{mode.name:<42} {sizes:>11} {len(mode.figures):>3}/{rounds:<2} {_fmt_rate(mode.median('runs_per_s')):>8} "
            f"{_fmt_spread(rates, _fmt_rate):>13} {_fmt_ms(mode.median('latency_s')):>8} {correct:>8}"
        )
        for reason in sorted(set(mode.skipped.values())):
            notes.append(
                f"  {mode.name}: skipped in {sum(r == reason for r in mode.skipped.values())} round(s): {reason}"
            )
        for note in sorted({f.note for f in mode.figures.values() if f.note}):
            notes.append(f"  {mode.name}: {note}")
    for result in profit06:
        sizes = f"{result.runs}/{result.latency_runs}" if result.runs else "-"
        correct = "-" if result.correct is None else ("yes" if result.correct else "NO")
        print(
            f"{result.name + ' (once)':<42} {sizes:>11} {'':>6} {_fmt_rate(result.runs_per_s):>8} {'':>13} "
            f"{_fmt_ms(result.latency_s):>8} {correct:>8}"
        )
        if result.skipped:
            notes.append(f"  {result.name}: skipped: {result.skipped}")
    print("-" * len(header))
    print(
        "runs/lat: runs per throughput batch / single runs per latency median, per round; runs/s and lat ms: "
        "medians over the rounds;\n(once): proFit 0.6, measured once after the rounds, not interleaved"
    )
    if notes:
        print("notes:")
        print("\n".join(notes))


def print_goals(heading: str, rows: list[dict[str, Any]]) -> None:
    """The ratio rows: min / median / max over the rounds, the goal and its status."""

    def fmt(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    print()
    print(heading)
    for row in rows:
        goal = "" if row["target"] is None else f"{'>=' if row['at_least'] else '<='} {row['target']:.2f}"
        spread = f"{fmt(row['min'])} / {fmt(row['median'])} / {fmt(row['max'])}"
        print(f"  {row['goal']:<58} {spread:>20}  {goal:>7}  {row['status']}".rstrip())


# --- main ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 5; --quick: 2)")
    parser.add_argument("--quick", action="store_true", help="small sizes, 2 rounds, proFit 0.6 memmap modes only")
    parser.add_argument("--no-profit06", action="store_true", help="skip the proFit 0.6 baseline")
    parser.add_argument("--json", metavar="PATH", help="also write all figures (every round) to this JSON file")
    args = parser.parse_args(argv)
    rounds = args.rounds if args.rounds is not None else (2 if args.quick else 5)
    if rounds < 1:
        parser.error("--rounds must be at least 1")
    sizes = QUICK_SIZES if args.quick else DEFAULT_SIZES

    machine = machine_info()
    machine.update(cpu_model=cpu_model(), **library_versions())
    load_before = list(os.getloadavg())
    root = tempfile.mkdtemp(prefix="bench-runners-")
    begun = time.perf_counter()
    audit: list[str] = []
    profit06: list[Result] = []
    try:
        # The include must be loaded before a LocalRunner is created: the runner
        # hands the list of loaded includes to its workers via PROFIT_INCLUDES.
        worker_file = os.path.join(root, "bench_sum_worker.py")
        with open(worker_file, "w") as file:
            file.write(WORKER_SOURCE)
        from profit.run.includes import load_includes

        load_includes([worker_file])

        modes, slots = plan(sizes, root)
        by_key = {mode.key: mode for mode in modes}
        warned: set[str] = set()
        native = _native_threads()
        for round_index in range(rounds):
            order = list(slots)
            random.Random(SEED + round_index).shuffle(order)
            print(f"round {round_index + 1}/{rounds}: {', '.join(slot.name for slot in order)}", flush=True)
            for slot in order:
                run_slot(slot, round_index, by_key, warned, audit, native)
        if not args.no_profit06:
            print("proFit 0.6, once (its venv is created on first use, which may take a minute) ...", flush=True)
            quick_modes = [
                mode for mode in PROFIT06_MODES if mode["key"] in ("profit06_fork_default", "profit06_local_default")
            ]
            profit06 = measure_profit06_modes(
                min(sizes.fork, 50) if args.quick else sizes.fork,
                min(sizes.latency, 10) if args.quick else sizes.latency,
                modes=quick_modes if args.quick else PROFIT06_MODES,
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    load_after = list(os.getloadavg())
    elapsed = time.perf_counter() - begun

    goals = [evaluate(goal, by_key) for goal in GOALS]
    info = [evaluate(goal, by_key) for goal in INFO_RATIOS]
    print()
    print(
        f"Runner benchmark: f = u + v (float64), parallel {PARALLEL}, {rounds} interleaved rounds "
        f"(order shuffled per round), {elapsed:.0f} s"
    )
    print(
        f"machine: {machine['cpu_model']}, {machine['nproc']} cores (cpu_count {machine['cpu_count']}), "
        f"Python {machine['python']}, numpy {machine['numpy']}, loky {machine['loky']}, joblib {machine['joblib']}, "
        f"dask {machine['dask']}, distributed {machine['distributed']}, pyzmq {machine['pyzmq']}"
    )
    print(
        "load average (1/5/15 min): before {:.2f}/{:.2f}/{:.2f}, after {:.2f}/{:.2f}/{:.2f}".format(
            *load_before, *load_after
        )
    )
    print()
    print_modes(modes, rounds, profit06)
    print_goals("goals: ours ÷ baseline of the same round, min / median / max over the rounds (median decides)", goals)
    print_goals("more ratios (not goals), same rounds", info)
    if audit:
        print("\nthread audit (forking with threads alive is unsafe; these figures may be affected):")
        print("\n".join(f"  {line}" for line in audit))

    failed = [mode.name for mode in modes if mode.ours and (mode.failed() or not mode.figures)]
    exit_code = 1 if failed else 0
    if failed:
        print(f"\nWRONG OR MISSING RESULTS from: {', '.join(failed)} (exit status 1)")
    if args.json:
        report = {
            "machine": machine,
            "load_before": load_before,
            "load_after": load_after,
            "elapsed_s": elapsed,
            "settings": {"rounds": rounds, "quick": args.quick, "parallel": PARALLEL, "sizes": asdict(sizes)},
            "modes": [
                {
                    **{k: v for k, v in asdict(mode).items() if k not in ("figures", "skipped")},
                    "median_runs_per_s": mode.median("runs_per_s"),
                    "median_latency_s": mode.median("latency_s"),
                    "rounds": [
                        {"round": r + 1, **asdict(mode.figures[r])}
                        if r in mode.figures
                        else {"round": r + 1, "skipped": mode.skipped.get(r, "not measured")}
                        for r in range(rounds)
                    ],
                }
                for mode in modes
            ],
            "goals": goals,
            "more_ratios": info,
            "profit06": [asdict(result) for result in profit06],
            "thread_audit": audit,
            "exit_code": exit_code,
        }
        with open(args.json, "w") as file:
            json.dump(report, file, indent=2)
        print(f"figures written to {args.json}")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
