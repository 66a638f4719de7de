"""Benchmark: our ForkRunner / LocalRunner / PoolRunner against bare fork, process pools and proFit 0.6.

Every mode evaluates the trivial model ``f = u + v`` (float64 inputs and output)
with at most two runs in flight, so what is measured is the cost of the run
system itself: starting a worker, handing it its inputs, getting its output
back and noticing that it ended.

Modes, all measured in one invocation so that their ratios are comparable:

* ours, ForkRunner + memmap interface (``Runner["fork"]``);
* ours, LocalRunner + memmap interface: every run is a new ``profit-worker``
  process started through the shell, hence fewer runs;
* ours, PoolRunner + memmap interface: persistent forked workers, hence more runs;
* ours, the same three runners with the ZeroMQ interface (loopback, a free
  port): a worker sends its outputs as a signed DATA message instead of writing
  the row (LocalRunner's and PoolRunner's workers first ask for their inputs
  with READY; ForkRunner's inherit them);
* baseline "bare fork": one ``os.fork`` per task, the child computes ``u + v``
  and calls ``os._exit(0)``, the parent reaps it (pidfd + selector); this is
  the floor for any run system that starts a process per run;
* baseline ``concurrent.futures.ProcessPoolExecutor`` (fork context), default
  use: one ``submit`` per task; workers are reused, so it shows what
  process-per-run costs against a pool;
* baselines for PoolRunner, with as many runs as it gets: the same executor
  with ``pool.map(..., chunksize=c)``, and ``multiprocessing.Pool`` (fork
  context) with ``pool.starmap(..., chunksize=c)``, c = max(1, n // (4 x parallel));
* baseline proFit 0.6 (the release our run system replaces), measured in its
  own venv by ``benchmarks/profit06.py``: ForkRunner and LocalRunner with its
  memmap interface, and ForkRunner with its ZeroMQ interface (few runs: it
  stalls for seconds at a time).

For each mode: throughput = runs / wall time of one batch (``spawn_array(...,
wait=True)`` for ours), latency = median wall time of one blocking run
(``spawn(params, wait=True)`` for ours; ``submit(...).result()``,
``map`` of one task or ``apply`` for the pools). Our outputs are checked
against the inputs that were sent; wrong results make the script exit with
status 1. Missed performance targets do not: this is a measurement, not a test.

Usage::

    python benchmarks/bench_runners.py [--runs N] [--latency-runs M] [--no-profit06] [--json PATH]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import math
import multiprocessing
import os
import pathlib
import platform
import resource
import selectors
import shutil
import statistics
import sys
import tempfile
import textwrap
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
POOL_RUNS_FACTOR = 10  # the pool is fast: more runs keep its timing above the noise
WARMUP_RUNS = 20
SEED = 2026
WORKER_LABEL = "bench_sum"

# LocalRunner starts a Python interpreter per run; these caps keep it to seconds.
LOCAL_MAX_RUNS = 300
LOCAL_MAX_LATENCY_RUNS = 30
# PoolRunner + zeromq: every run asks for its inputs (READY) and sends its outputs (DATA),
# ~1000 runs/s here: fewer runs than the memmap pool.
POOL_ZEROMQ_MAX_RUNS = 5000

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
    its own. Without pidfds it falls back to ``os.wait()``.
    """

    def __init__(self) -> None:
        self._pidfd = hasattr(os, "pidfd_open")
        self._selector = selectors.DefaultSelector() if self._pidfd else None
        self.pending = 0

    def add(self, pid: int) -> None:
        if self._selector is not None:
            self._selector.register(os.pidfd_open(pid), selectors.EVENT_READ, pid)
        self.pending += 1

    def wait(self) -> list[int]:
        """Block until at least one child ended; reap the ended ones, return their exit codes."""
        codes = []
        if self._selector is None:
            _, status = os.wait()
            codes.append(os.waitstatus_to_exitcode(status))
        else:
            for key, _ in self._selector.select():
                self._selector.unregister(key.fd)
                os.close(key.fd)
                _, status = os.waitpid(key.data, 0)
                codes.append(os.waitstatus_to_exitcode(status))
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


def measure_bare_fork(n_runs: int, latency_runs: int) -> Result:
    """One ``os.fork`` per task with at most ``PARALLEL`` children in flight."""
    result = Result(
        key="bare_fork",
        name="baseline: bare os.fork",
        runs=n_runs,
        latency_runs=latency_runs,
        note="child computes u+v, os._exit(0); parent reaps via pidfd+selector; no data returned",
    )
    rng = np.random.default_rng(SEED)
    sys.stdout.flush()
    sys.stderr.flush()
    waiter = _ChildWaiter()
    codes: list[int] = []
    try:

        def batch(params: np.ndarray) -> None:
            for u, v in params.tolist():
                while waiter.pending >= PARALLEL:
                    codes.extend(waiter.wait())
                waiter.add(_fork_task(u, v))
            while waiter.pending:
                codes.extend(waiter.wait())

        batch(_inputs(WARMUP_RUNS, rng))
        params = _inputs(n_runs, rng)
        start = time.perf_counter()
        batch(params)
        result.runs_per_s = n_runs / (time.perf_counter() - start)

        samples = []
        for index, (u, v) in enumerate(_inputs(WARMUP_RUNS + latency_runs, rng).tolist()):
            start = time.perf_counter()
            waiter.add(_fork_task(u, v))
            codes.extend(waiter.wait())
            if index >= WARMUP_RUNS:
                samples.append(time.perf_counter() - start)
        result.latency_s = statistics.median(samples)
        result.extra.update(_latency_stats(samples))
        # Nothing comes back from the children; all that can be checked is that they exited 0.
        result.extra["children_exited_0"] = all(code == 0 for code in codes)
        if not result.extra["children_exited_0"]:
            result.note += f"; {sum(code != 0 for code in codes)} children exited non-zero"
    except Exception as error:
        traceback.print_exc()
        result.skipped = f"error: {type(error).__name__}: {error}"
    finally:
        waiter.close()
    return result


# --- baselines: process pools ------------------------------------------------------------


def _measure_pool(
    result: Result,
    open_pool: Callable[[], Any],
    batch_call: Callable[[Any, list[tuple[float, float]]], list[float]],
    single_call: Callable[[Any, float, float], float],
    note: str,
) -> Result:
    """Throughput and latency of one pool baseline, all in one pool.

    ``open_pool()`` gives the pool (a context manager); ``batch_call(pool, pairs)``
    computes a batch and returns its outputs; ``single_call(pool, u, v)`` is one
    blocking call. The start of the pool (until the first result) is not counted.
    """
    rng = np.random.default_rng(SEED)
    warm, batch, singles = (_inputs(count, rng).tolist() for count in (WARMUP_RUNS, result.runs, result.latency_runs))
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        started = time.perf_counter()
        with open_pool() as pool:
            # With fork, ProcessPoolExecutor starts its processes on the first submit:
            # "pool start" is creation until that first result, excluded from the rates.
            single_call(pool, 0.0, 0.0)
            result.extra["pool_start_s"] = time.perf_counter() - started
            batch_call(pool, warm)

            start = time.perf_counter()
            outputs = batch_call(pool, batch)
            result.runs_per_s = result.runs / (time.perf_counter() - start)

            samples = []
            for u, v in singles:
                start = time.perf_counter()
                outputs.append(single_call(pool, u, v))
                samples.append(time.perf_counter() - start)
        result.latency_s = statistics.median(samples)
        result.extra.update(_latency_stats(samples))
        result.correct = outputs == [u + v for u, v in batch + singles]
        result.note = f"{note}; workers reused; pool start {result.extra['pool_start_s'] * 1000:.1f} ms (not counted)"
    except Exception as error:
        traceback.print_exc()
        result.skipped = f"error: {type(error).__name__}: {error}"
    return result


def _executor() -> concurrent.futures.ProcessPoolExecutor:
    return concurrent.futures.ProcessPoolExecutor(max_workers=PARALLEL, mp_context=multiprocessing.get_context("fork"))


def measure_process_pool(n_runs: int, latency_runs: int) -> Result:
    """``ProcessPoolExecutor(max_workers=PARALLEL)``, fork context, one ``submit`` per task (its default use)."""
    result = Result(
        key="process_pool", name="baseline: ProcessPoolExecutor, default", runs=n_runs, latency_runs=latency_runs
    )

    def batch_call(pool: Any, pairs: list[tuple[float, float]]) -> list[float]:
        futures = [pool.submit(_add, u, v) for u, v in pairs]
        return [future.result() for future in futures]

    return _measure_pool(
        result,
        _executor,
        batch_call,
        lambda pool, u, v: pool.submit(_add, u, v).result(),
        "fork context, one submit per task; latency: submit().result()",
    )


def measure_process_pool_chunked(n_runs: int, latency_runs: int) -> Result:
    """The same executor with ``pool.map(_add, us, vs, chunksize=c)``, c = ``_chunksize(n_runs)``."""
    chunksize = _chunksize(n_runs)
    result = Result(
        key="process_pool_chunked",
        name="baseline: ProcessPoolExecutor, chunked",
        runs=n_runs,
        latency_runs=latency_runs,
        extra={"chunksize": chunksize},
    )

    def batch_call(pool: Any, pairs: list[tuple[float, float]]) -> list[float]:
        us, vs = zip(*pairs)
        return list(pool.map(_add, us, vs, chunksize=chunksize))

    return _measure_pool(
        result,
        _executor,
        batch_call,
        lambda pool, u, v: list(pool.map(_add, (u,), (v,), chunksize=chunksize))[0],
        f"fork context, pool.map(chunksize={chunksize}); latency: map of one task",
    )


def measure_mp_pool(n_runs: int, latency_runs: int) -> Result:
    """``multiprocessing.Pool(PARALLEL)``, fork context, ``starmap(_add, pairs, chunksize=c)``."""
    chunksize = _chunksize(n_runs)
    result = Result(
        key="mp_pool",
        name="baseline: multiprocessing.Pool, chunked",
        runs=n_runs,
        latency_runs=latency_runs,
        extra={"chunksize": chunksize},
    )
    context = multiprocessing.get_context("fork")
    return _measure_pool(
        result,
        lambda: context.Pool(PARALLEL),
        lambda pool, pairs: pool.starmap(_add, pairs, chunksize=chunksize),
        lambda pool, u, v: pool.apply(_add, (u, v)),
        f"fork context, starmap(chunksize={chunksize}); latency: apply()",
    )


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


# (ours, baseline) result keys whose ratios this script reports.
RATIO_PAIRS: list[tuple[str, str]] = [
    ("ours_fork", "bare_fork"),
    ("ours_fork", "process_pool"),
    ("ours_fork", "profit06_fork_default"),
    ("ours_fork", "profit06_fork_1ms"),
    ("ours_fork_zeromq", "bare_fork"),
    ("ours_fork_zeromq", "ours_fork"),
    ("ours_fork_zeromq", "profit06_fork_zeromq"),
    ("ours_local", "bare_fork"),
    ("ours_local", "profit06_local_default"),
    ("ours_local_zeromq", "ours_local"),
    ("ours_pool", "mp_pool"),
    ("ours_pool", "process_pool_chunked"),
    ("ours_pool_zeromq", "ours_pool"),
]


def compute_ratios(by_key: dict[str, Result], pairs: list[tuple[str, str]] = RATIO_PAIRS) -> list[dict[str, Any]]:
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


def evaluate_targets(by_key: dict[str, Result]) -> list[dict[str, Any]]:
    """The goals of the run system, each PASS / MISS (n/a when not measured).

    A mode whose results were wrong MISSes every goal: a fast wrong answer is no answer.
    """
    fork, local, bare = by_key.get("ours_fork"), by_key.get("ours_local"), by_key.get("bare_fork")
    pool, fork_zmq = by_key.get("ours_pool"), by_key.get("ours_fork_zeromq")
    pool_rate = pool.runs_per_s if pool else None
    fork_zmq_rate = fork_zmq.runs_per_s if fork_zmq else None
    fork_rate = fork.runs_per_s if fork else None
    fork_latency = fork.latency_s if fork else None
    local_rate = local.runs_per_s if local else None
    bare_rate = bare.runs_per_s if bare else None
    share = _ratio(fork_rate, bare_rate)

    def target(goal: str, mode: Result | None, value: float | None, passed: bool, figure: str) -> dict[str, Any]:
        if value is None:
            status, figure = "n/a", "not measured"
        elif mode is not None and mode.correct is not True:
            status, figure = "MISS", f"{figure} but its results were wrong"
        else:
            status = "PASS" if passed else "MISS"
        return {"goal": goal, "value": value, "status": status, "figure": figure}

    return [
        target(
            "ForkRunner >= 1000 runs/s",
            fork,
            fork_rate,
            fork_rate is not None and fork_rate >= 1000,
            f"{_fmt_rate(fork_rate)} runs/s",
        ),
        target(
            "ForkRunner >= 0.5 x bare-fork rate",
            fork,
            share,
            share is not None and share >= 0.5,
            f"{share:.3f} x ({_fmt_rate(fork_rate)} / {_fmt_rate(bare_rate)} runs/s)" if share is not None else "",
        ),
        target(
            "ForkRunner latency < 5 ms",
            fork,
            fork_latency,
            fork_latency is not None and fork_latency < 0.005,
            f"{_fmt_ms(fork_latency)} ms (median)",
        ),
        target(
            "LocalRunner >= 50 runs/s",
            local,
            local_rate,
            local_rate is not None and local_rate >= 50,
            f"{_fmt_rate(local_rate)} runs/s",
        ),
        target(
            "PoolRunner >= 20000 runs/s",
            pool,
            pool_rate,
            pool_rate is not None and pool_rate >= 20000,
            f"{_fmt_rate(pool_rate)} runs/s",
        ),
        target(
            "ForkRunner + zeromq >= 300 runs/s",
            fork_zmq,
            fork_zmq_rate,
            fork_zmq_rate is not None and fork_zmq_rate >= 300,
            f"{_fmt_rate(fork_zmq_rate)} runs/s",
        ),
    ]


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


def print_report(
    machine: dict[str, Any],
    results: list[Result],
    ratios: list[dict[str, Any]],
    targets: list[dict[str, Any]],
    settings: dict[str, Any],
) -> None:
    print_preamble(
        f"Runner benchmark: f = u + v (float64), parallel = {PARALLEL}, "
        f"{WARMUP_RUNS} warm-up runs per phase not counted (ours and the other baselines; not proFit 0.6)",
        machine,
        settings,
    )
    print_table(
        results,
        [("÷bare", 7, lambda result: "bare_fork"), ("÷proFit", 8, profit06_peer)],
        "÷bare, ÷proFit: our runs/s divided by bare os.fork's / by proFit 0.6's (same runner kind, "
        "default sleep, memmap;\n  ForkRunner + zeromq: by proFit 0.6's ForkRunner + zeromq; "
        "PoolRunner: by proFit 0.6's ForkRunner)",
    )

    print_ratios(
        "ratios, ours ÷ baseline (speed = runs/s ratio, >1: ours faster; latency = ms ratio, <1: ours faster)",
        results,
        ratios,
        widths=(29, 40),
    )

    print()
    print("targets")
    for item in targets:
        print(f"  {item['status']:<4}  {item['goal']:<36} {item['figure']}")


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


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(__doc__.splitlines()[0], 1000, 200, argv)

    machine = machine_info()
    root = tempfile.mkdtemp(prefix="bench-runners-")
    results: list[Result] = []
    try:
        # The include must be loaded before the LocalRunner is created: the runner
        # hands the list of loaded includes to its workers via PROFIT_INCLUDES.
        worker_file = os.path.join(root, "bench_sum_worker.py")
        with open(worker_file, "w") as file:
            file.write(WORKER_SOURCE)
        from profit.run.includes import load_includes

        load_includes([worker_file])

        local_runs = min(args.runs, LOCAL_MAX_RUNS)
        local_latency_runs = min(args.latency_runs, LOCAL_MAX_LATENCY_RUNS)
        local_note = (
            f"* fewer runs: min(N, {LOCAL_MAX_RUNS}) / min(M, {LOCAL_MAX_LATENCY_RUNS}); "
            "each run is a new profit-worker process via the shell"
        )
        pool_runs = args.runs * POOL_RUNS_FACTOR
        pool_zeromq_runs = min(pool_runs, POOL_ZEROMQ_MAX_RUNS)
        # Bare fork and ForkRunner back to back: their ratio is the headline figure,
        # and adjacent measurements see the most similar machine load.
        # The memmap modes of ours come before the zeromq ones: a zeromq runner leaves
        # this process's ZeroMQ context (and its I/O thread) behind, which the memmap
        # modes should not fork with.
        # The process pools come after every fork-based mode of ours: their
        # management threads must not exist while we fork (forking a threaded process is unsafe).
        steps: list[tuple[str, Callable[[], Result]]] = [
            ("bare os.fork", lambda: measure_bare_fork(args.runs, args.latency_runs)),
            (
                "ForkRunner + memmap",
                lambda: measure_ours(
                    "fork", "ours: ForkRunner + memmap", args.runs, args.latency_runs, root, report_cpu=True
                ),
            ),
            (
                "LocalRunner + memmap",
                lambda: measure_ours(
                    "local",
                    "ours: LocalRunner + memmap *",
                    local_runs,
                    local_latency_runs,
                    root,
                    note=local_note,
                    report_cpu=True,
                ),
            ),
            (
                "PoolRunner + memmap",
                lambda: measure_ours(
                    "pool",
                    "ours: PoolRunner + memmap",
                    pool_runs,
                    args.latency_runs,
                    root,
                    note=f"persistent workers: {POOL_RUNS_FACTOR} x N runs, "
                    "so that timing is not dominated by start-up",
                ),
            ),
            (
                "ForkRunner + zeromq",
                lambda: measure_ours(
                    "fork",
                    "ours: ForkRunner + zeromq",
                    args.runs,
                    args.latency_runs,
                    root,
                    interface="zeromq",
                    note="loopback, a free port; each forked worker connects and sends one DATA message",
                    report_cpu=True,
                ),
            ),
            (
                "LocalRunner + zeromq",
                lambda: measure_ours(
                    "local",
                    "ours: LocalRunner + zeromq *",
                    local_runs,
                    local_latency_runs,
                    root,
                    interface="zeromq",
                    note=f"{local_note}; READY + DATA round trips",
                    report_cpu=True,
                ),
            ),
            (
                "PoolRunner + zeromq",
                lambda: measure_ours(
                    "pool",
                    "ours: PoolRunner + zeromq *",
                    pool_zeromq_runs,
                    args.latency_runs,
                    root,
                    interface="zeromq",
                    note=f"* min({POOL_RUNS_FACTOR} x N, {POOL_ZEROMQ_MAX_RUNS}) runs; "
                    "READY + DATA round trips per run",
                ),
            ),
            ("ProcessPoolExecutor, default", lambda: measure_process_pool(args.runs, args.latency_runs)),
            ("ProcessPoolExecutor, chunked", lambda: measure_process_pool_chunked(pool_runs, args.latency_runs)),
            ("multiprocessing.Pool, chunked", lambda: measure_mp_pool(pool_runs, args.latency_runs)),
        ]
        for label, step in steps:
            print(f"measuring {label} ...", flush=True)
            results.append(step())
        if not args.no_profit06:
            print("measuring proFit 0.6 (its venv is created on first use, which may take a minute) ...", flush=True)
            results.extend(measure_profit06_modes(args.runs, args.latency_runs))
    finally:
        shutil.rmtree(root, ignore_errors=True)

    # Table order: baselines first, then ours, then proFit.
    order = [
        "bare_fork",
        "process_pool",
        "process_pool_chunked",
        "mp_pool",
        "ours_fork",
        "ours_fork_zeromq",
        "ours_local",
        "ours_local_zeromq",
        "ours_pool",
        "ours_pool_zeromq",
    ]
    results.sort(key=lambda r: order.index(r.key) if r.key in order else len(order))
    by_key = {result.key: result for result in results}
    ratios = compute_ratios(by_key)
    targets = evaluate_targets(by_key)
    settings = {
        "runs": args.runs,
        "latency_runs": args.latency_runs,
        "parallel": PARALLEL,
        "warmup_runs": WARMUP_RUNS,
        "profit06": not args.no_profit06,
    }
    print_report(machine, results, ratios, targets, settings)
    return finish(results, machine, settings, args.json, ratios=ratios, targets=targets)


if __name__ == "__main__":
    sys.exit(main())
