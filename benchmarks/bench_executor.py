"""Benchmark: profit.run.Executor against the process pools people use, in one invocation.

Throughput: ``map`` of N trivial calls (``x + 1.0`` on a float) with two
workers, by

* ours: ``Executor("pool", parallel=2).map`` (each call a run, with its state,
  reason, timeout and cancel), and ``Executor("fork")`` (a process per call);
* ``concurrent.futures.ProcessPoolExecutor(2)`` (fork context): ``map`` with the
  default chunksize 1, and with a tuned chunksize (N / 8);
* loky's reusable executor, ``map`` with the tuned chunksize;
* joblib's ``Parallel(n_jobs=2)`` with its defaults (loky backend, automatic batching).

Latency: the median wall time of ``submit(f, x).result()`` for ours (pool and
fork) and ProcessPoolExecutor. Last, ours with numpy array results against float
results (arrays travel in the rows once the executor knows their layout).

Every executor is made (and warmed up with one call) before it is timed;
rounds are interleaved, so a noisy machine slows every mode alike. The script
prints each mode's rate (min / median / max over the rounds) and the ratio of
ours to each baseline per round (median, min, max). Results are checked: a
wrong one makes the script exit with status 1.

Usage::

    python benchmarks/bench_executor.py [--calls N] [--rounds R] [--latency-calls M]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import statistics
import sys
import time
from collections.abc import Callable

PARALLEL = 2


def trivial(x: float) -> float:
    return x + 1.0


def pair(x: float) -> object:
    import numpy

    return numpy.array([x, 2.0 * x])


def array_results(calls: int, rounds: int) -> bool:
    """Ours with array results (they travel in the rows once the lane knows their layout) against
    float results, interleaved; prints the ratio; False if a result was wrong."""
    import numpy

    from profit.run import Executor

    inputs = [float(index) for index in range(calls)]
    ratios, right = [], True
    with Executor("pool", parallel=PARALLEL) as executor:
        executor.submit(pair, 0.0).result()
        executor.submit(trivial, 0.0).result()
        for _ in range(rounds):
            started = time.perf_counter()
            floats = list(executor.map(trivial, inputs))
            float_time = time.perf_counter() - started
            started = time.perf_counter()
            arrays = list(executor.map(pair, inputs))
            ratios.append(float_time / (time.perf_counter() - started))
            right &= floats == [x + 1.0 for x in inputs]
            right &= all(numpy.array_equal(value, [x, 2.0 * x]) for value, x in zip(arrays, inputs))
    ratios.sort()
    print(
        f"\narray results (numpy, 2 elements) / float results, ours on the pool: "
        f"{statistics.median(ratios):.2f}x [{ratios[0]:.2f}, {ratios[-1]:.2f}]"
    )
    return right


def _ours(runner: str) -> Callable[[], object]:
    from profit.run import Executor

    return lambda: Executor(runner, parallel=PARALLEL)


def _process_pool() -> concurrent.futures.ProcessPoolExecutor:
    return concurrent.futures.ProcessPoolExecutor(PARALLEL, mp_context=multiprocessing.get_context("fork"))


class Mode:
    """One way of running the calls: how to make its executor and how to map with it."""

    def __init__(self, name: str, make: Callable[[], object], run: Callable[[object, list[float]], list]):
        self.name, self.make, self.run = name, make, run
        self.rates: list[float] = []
        self.executor: object = None


def modes(calls: int) -> list[Mode]:
    tuned = max(1, calls // (4 * PARALLEL))
    found = [
        Mode("ours: Executor('pool').map", _ours("pool"), lambda ex, xs: list(ex.map(trivial, xs))),
        Mode("ours: Executor('fork').map", _ours("fork"), lambda ex, xs: list(ex.map(trivial, xs))),
        Mode("ProcessPoolExecutor.map, chunksize 1", _process_pool, lambda ex, xs: list(ex.map(trivial, xs))),
        Mode(
            f"ProcessPoolExecutor.map, chunksize {tuned}",
            _process_pool,
            lambda ex, xs: list(ex.map(trivial, xs, chunksize=tuned)),
        ),
    ]
    try:
        import loky

        found.append(
            Mode(
                f"loky reusable executor .map, chunksize {tuned}",
                lambda: loky.get_reusable_executor(PARALLEL),
                lambda ex, xs: list(ex.map(trivial, xs, chunksize=tuned)),
            )
        )
    except ImportError:
        print("(loky is not installed: its mode is left out)")
    try:
        import joblib

        found.append(
            Mode(
                "joblib Parallel(n_jobs=2), defaults",
                lambda: joblib.Parallel(n_jobs=PARALLEL),
                lambda ex, xs: ex(joblib.delayed(trivial)(x) for x in xs),
            )
        )
    except ImportError:
        print("(joblib is not installed: its mode is left out)")
    return found


def _close(executor: object) -> None:
    shutdown = getattr(executor, "shutdown", None)
    if shutdown is not None and "loky" not in type(executor).__module__:
        shutdown(wait=True)


def latency(make: Callable[[], object], count: int) -> float:
    executor = make()
    try:
        executor.submit(trivial, 0.0).result()  # type: ignore[attr-defined]
        samples = []
        for index in range(count):
            started = time.perf_counter()
            value = executor.submit(trivial, float(index)).result()  # type: ignore[attr-defined]
            samples.append(time.perf_counter() - started)
            if value != index + 1.0:
                raise SystemExit(f"wrong result {value!r} for {index}")
        return statistics.median(samples)
    finally:
        _close(executor)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=10_000, help="calls per map (default 10000)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--latency-calls", type=int, default=300, help="calls for the latency (default 300)")
    arguments = parser.parse_args(argv)
    inputs = [float(index) for index in range(arguments.calls)]
    expected = [x + 1.0 for x in inputs]
    all_modes = modes(arguments.calls)
    print(f"{arguments.calls} trivial calls, {PARALLEL} workers, {arguments.rounds} interleaved rounds")
    wrong = False
    for mode in all_modes:
        mode.executor = mode.make()
        mode.run(mode.executor, [0.0])  # warm up: workers started
    try:
        for _ in range(arguments.rounds):
            for mode in all_modes:
                started = time.perf_counter()
                results = mode.run(mode.executor, inputs)
                elapsed = time.perf_counter() - started
                mode.rates.append(arguments.calls / elapsed)
                if results != expected:
                    wrong = True
                    print(f"WRONG RESULTS from {mode.name}")
    finally:
        for mode in all_modes:
            _close(mode.executor)
    print(f"\n{'mode':48s} {'calls/s min':>12s} {'median':>10s} {'max':>10s}")
    for mode in all_modes:
        rates = sorted(mode.rates)
        print(f"{mode.name:48s} {rates[0]:12.0f} {statistics.median(rates):10.0f} {rates[-1]:10.0f}")
    for ours in all_modes[:2]:
        print(f"\nratio {ours.name} / baseline (per round; median [min, max]; > 1: ours is faster)")
        for mode in all_modes[2:]:
            ratios = sorted(a / b for a, b in zip(ours.rates, mode.rates))
            print(f"  / {mode.name:44s} {statistics.median(ratios):6.2f}x  [{ratios[0]:.2f}, {ratios[-1]:.2f}]")
    print(f"\nlatency of submit(f, x).result(), median of {arguments.latency_calls}:")
    pool_latency = latency(_process_pool, arguments.latency_calls)
    for name, make in (("ours, pool", _ours("pool")), ("ours, fork", _ours("fork"))):
        ours_latency = latency(make, arguments.latency_calls)
        print(f"  {name:12s} {ours_latency * 1e3:7.3f} ms   ({ours_latency / pool_latency:.2f}x ProcessPoolExecutor)")
    print(f"  {'ProcessPoolExecutor':12s} {pool_latency * 1e3:7.3f} ms")
    if not array_results(arguments.calls, arguments.rounds):
        print("WRONG RESULTS from the array results")
        wrong = True
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
