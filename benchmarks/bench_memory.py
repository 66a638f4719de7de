"""Benchmark: cost per run and the runner's resident memory as a study grows.

A run system for parameter studies must not get slower per run, nor fatter, as
the number of runs grows: 10^5 runs should cost 100 x what 10^3 runs cost, and
the runner's process should hold the same memory at the end as after start-up,
apart from the interface file it maps (which is sized for the study on purpose).

Measurements, each in a fresh Python process (so that one does not inherit the
heap of another) with a fresh temporary work directory:

* PoolRunner (``Runner["pool"]``, parallel 2): 10^3, 10^4 and 10^5 runs;
* ForkRunner (``Runner["fork"]``, parallel 2): 10^3 and 10^4 runs (a fork per
  run; 10^5 would take minutes on this machine).

Every run evaluates ``f = u + v`` (float64; a worker registered with
``@Worker.wrap``) through a memmap interface of exactly N rows, so the
interface never grows while runs are measured. All inputs are generated before
the first run (their array is in both memory readings). Runs 0-99 are the
start-up batch, then the runner's memory is read; runs 100..N-1 follow, then
it is read again. Each reading follows ``gc.collect()`` and takes:

* ``VmRSS`` from ``/proc/self/status``: everything resident in the runner's process;
* the ``Rss`` of the interface file's mapping(s), from ``/proc/self/smaps``:
  the pages of the mapped ``interface.npy`` that are resident; they grow with
  the runs that have been written, and they are page cache shared with the
  workers, not memory the runner allocated;
* ``RSS - iface`` = VmRSS minus that: the runner's own memory, which should stay flat.

Growth per 1000 runs = (RSS - iface at the end - RSS - iface after start-up)
/ (N - 100) x 1000. For the pool, the largest resident set among its worker
processes is reported as well, with and without their interface pages (at
the same two moments).
Wall time counts both batches (``spawn_array(..., wait=True)``), not the
runner's construction (``setup``, reported apart: it creates the interface file
and, for the pool, forks the workers) and not the memory readings in between.

Every output is checked (``f == u + v`` exactly, every run DONE) after the
second reading; wrong results make the script exit with status 1. Memory growth
does not: this is a measurement, not a test.

Usage::

    python benchmarks/bench_memory.py [--quick] [--json PATH]

``--quick`` divides every study size by 10 (for a smoke test).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # bench_runners.py sits beside this file
    sys.path.insert(0, str(HERE))

# The runner set-up (parallel 2, memmap, u/v/f as float64), the output check and
# the machine description are shared with bench_runners.py.
from bench_runners import PARALLEL, SEED, _check_outputs, _inputs, _make_runner, machine_info  # noqa: E402

WORKER_LABEL = "bench_memory_sum"
STARTUP_RUNS = 100

# (runner kind, study sizes); the fork runner forks per run, so it stops at 10^4.
STUDIES: list[tuple[str, list[int]]] = [
    ("pool", [1_000, 10_000, 100_000]),
    ("fork", [1_000, 10_000]),
]

# Seconds one measurement may take before it is given up (the whole script
# should take well under three minutes on a two-core machine).
MEASUREMENT_TIMEOUT = 150

# Verdict: "flat" when the runner's own memory (RSS minus the interface file)
# grew by at most this much per 1000 runs in the largest study of each runner,
# i.e. at most ~16 bytes per run: under 2 MB for 10^5 runs.
FLAT_KB_PER_1000_RUNS = 16.0


# --- inside a measurement process --------------------------------------------------------


def _status_kb(pid: int | str = "self") -> dict[str, int]:
    """The ``kB`` fields of ``/proc/PID/status`` (VmRSS, RssAnon, RssFile, ...)."""
    fields = {}
    with open(f"/proc/{pid}/status") as file:
        for line in file:
            name, _, value = line.partition(":")
            parts = value.split()
            if len(parts) == 2 and parts[1] == "kB":
                fields[name] = int(parts[0])
    return fields


def _mapped_rss_kb(path: str, pid: int | str = "self") -> int:
    """Resident kB of every mapping of ``path`` in process ``pid`` (``Rss`` lines of ``/proc/PID/smaps``)."""
    total = 0
    inside = False
    with open(f"/proc/{pid}/smaps") as file:
        for line in file:
            first = line.split(maxsplit=1)[0]
            if "-" in first and not first.endswith(":"):  # a mapping's header line: "start-end perms ..."
                parts = line.split(maxsplit=5)
                name = parts[5].strip() if len(parts) > 5 else ""
                inside = name == path or name == f"{path} (deleted)"
            elif inside and first == "Rss:":
                total += int(line.split()[1])
    return total


def _children_rss_kb(path: str) -> list[tuple[int, int]]:
    """(VmRSS, resident kB of ``path``'s mappings) of every live child process of this one (the pool's workers)."""
    me = os.getpid()
    sizes = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as file:
                stat = file.read()
            # "pid (comm) state ppid ...": comm may hold spaces, so split after its ")".
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == me:
                rss = _status_kb(entry).get("VmRSS")
                if rss is not None:  # None: a zombie
                    sizes.append((rss, _mapped_rss_kb(path, entry)))
        except (OSError, ValueError, IndexError):
            continue  # ended meanwhile
    return sizes


def _reading(interface_path: str) -> dict[str, Any]:
    """The runner process's memory now (after a full garbage collection)."""
    gc.collect()
    status = _status_kb()
    mapped = _mapped_rss_kb(interface_path)
    workers = _children_rss_kb(interface_path)
    return {
        "rss_kb": status["VmRSS"],
        "rss_anon_kb": status.get("RssAnon"),
        "rss_file_kb": status.get("RssFile"),
        "iface_rss_kb": mapped,
        "rss_excl_iface_kb": status["VmRSS"] - mapped,
        "max_worker_rss_kb": max(rss for rss, _ in workers) if workers else None,
        "max_worker_rss_excl_iface_kb": max(rss - mapped for rss, mapped in workers) if workers else None,
        "workers": len(workers),
    }


def measure_one(kind: str, n_runs: int) -> dict[str, Any]:
    """One study of ``n_runs`` runs with a new ``kind`` runner in a fresh work directory."""
    from profit.run import Worker

    @Worker.wrap(WORKER_LABEL)
    def f(u, v):
        return u + v

    params = _inputs(n_runs, np.random.default_rng(SEED))
    startup = min(STARTUP_RUNS, n_runs)
    work_dir = tempfile.mkdtemp(prefix=f"bench-memory-{kind}-")
    result: dict[str, Any] = {"kind": kind, "runs": n_runs, "startup_runs": startup}
    runner = None
    try:
        start = time.perf_counter()
        runner = _make_runner(kind, n_runs, work_dir, WORKER_LABEL)
        result["setup_s"] = time.perf_counter() - start
        path = runner.interface.path

        start = time.perf_counter()
        runner.spawn_array(params[:startup], wait=True)
        first_s = time.perf_counter() - start
        result["start"] = _reading(path)

        start = time.perf_counter()
        runner.spawn_array(params[startup:], wait=True)
        rest_s = time.perf_counter() - start
        result["end"] = _reading(path)

        result["wall_s"] = first_s + rest_s
        result["runs_per_s"] = n_runs / result["wall_s"]
        result["us_per_run_after_startup"] = rest_s / (n_runs - startup) * 1e6 if n_runs > startup else None
        result["iface_file_bytes"] = os.path.getsize(path)
        result["iface_row_bytes"] = runner.interface.dtype.itemsize
        ok, why = _check_outputs(runner, params)
        result["correct"] = ok
        result["problems"] = why
    finally:
        try:
            if runner is not None:
                if runner.runs:  # only after an error: clean() refuses active runs
                    runner.cancel_all()
                runner.clean()  # the pool's clean also ends its workers
        finally:
            shutil.rmtree(work_dir, ignore_errors=True)
    return result


# --- the driver ---------------------------------------------------------------------------


def run_measurement(kind: str, n_runs: int) -> dict[str, Any]:
    """``measure_one`` in a new Python process; its result, or ``{"error": ...}``."""
    command = [sys.executable, __file__, "--one", kind, str(n_runs)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=MEASUREMENT_TIMEOUT)
    except subprocess.TimeoutExpired:
        return {"kind": kind, "runs": n_runs, "error": f"timed out after {MEASUREMENT_TIMEOUT} s"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"kind": kind, "runs": n_runs, "error": f"exit {done.returncode}: {tail}"}
    return json.loads(lines[-1])


def growth_per_1000(result: dict[str, Any]) -> float | None:
    """kB the runner's own memory (RSS minus the interface mapping) grew per 1000 runs after start-up."""
    measured = result["runs"] - result["startup_runs"]
    if measured <= 0:
        return None
    delta = result["end"]["rss_excl_iface_kb"] - result["start"]["rss_excl_iface_kb"]
    return delta / measured * 1000


def print_report(machine: dict[str, Any], results: list[dict[str, Any]], elapsed: float) -> None:
    load = machine["loadavg_1_5_15"]
    print()
    print(
        f"Memory benchmark: f = u + v (float64), parallel = {PARALLEL}, memmap interface of N rows, "
        f"memory read after the first {STARTUP_RUNS} runs (start) and after the last (end)"
    )
    print("NOTE: this machine is shared and noisy; wall times drift from run to run, memory figures much less.")
    print(
        f"machine: nproc {machine['nproc']} (cpu_count {machine['cpu_count']}), "
        f"Python {machine['python']}, numpy {machine['numpy']}, profit {machine['profit']}, "
        f"{machine['platform']}" + (f", load avg {load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f}" if load else "")
    )
    print()

    def pair(start: int | None, end: int | None, digits: int = 1) -> str:
        return "-" if start is None or end is None else f"{start / 1024:.{digits}f}->{end / 1024:.{digits}f}"

    header = (
        f"{'runner':<6} {'runs':>7} {'setup s':>7} {'wall s':>7} {'runs/s':>7} {'us/run':>6} "
        f"{'RSS':>11} {'iface file':>10} {'iface res':>9} {'RSS - iface':>13} {'kB/1000 runs':>12} "
        f"{'worker RSS':>11} {'worker -iface':>13} {'correct':>7}"
    )
    print(header)
    print("-" * len(header))
    for result in results:
        if "error" in result:
            print(f"{result['kind']:<6} {result['runs']:>7}  ERROR: {result['error']}")
            continue
        start, end = result["start"], result["end"]
        growth = growth_per_1000(result)
        us = result["us_per_run_after_startup"]
        print(
            f"{result['kind']:<6} {result['runs']:>7} {result['setup_s']:>7.2f} {result['wall_s']:>7.2f} "
            f"{result['runs_per_s']:>7.0f} {'-' if us is None else f'{us:.0f}':>6} "
            f"{pair(start['rss_kb'], end['rss_kb']):>11} {result['iface_file_bytes'] / 2**20:>10.1f} "
            f"{pair(start['iface_rss_kb'], end['iface_rss_kb']):>9} "
            f"{pair(start['rss_excl_iface_kb'], end['rss_excl_iface_kb'], 2):>13} "
            f"{'-' if growth is None else f'{growth:+.1f}':>12} "
            f"{pair(start['max_worker_rss_kb'], end['max_worker_rss_kb']):>11} "
            f"{pair(start['max_worker_rss_excl_iface_kb'], end['max_worker_rss_excl_iface_kb'], 2):>13} "
            f"{'yes' if result['correct'] else 'NO':>7}"
        )
    print("-" * len(header))
    row_bytes = next((r["iface_row_bytes"] for r in results if "iface_row_bytes" in r), "?")
    print(
        'Memory in MB (2^20 bytes), "a->b" = after the first '
        f"{STARTUP_RUNS} runs -> after the last. RSS: VmRSS of the runner process."
    )
    print(
        f"iface file: size of interface.npy ({row_bytes} bytes per row + header). iface res: its pages resident in "
        "the runner's mapping (smaps Rss; part of RSS, page cache shared with the workers; all resident from the "
        "start, as the runner sets every row's outputs to NaN when it creates the file)."
    )
    print("RSS - iface: the runner's own memory. kB/1000 runs: growth of RSS - iface from start to end, per 1000 runs.")
    print(
        f"us/run: wall time per run after the first {STARTUP_RUNS}. worker RSS / worker -iface: the largest pool "
        "worker's VmRSS, and without its interface pages (fork runs are gone when memory is read)."
    )
    for result in results:
        if "error" not in result and not result["correct"]:
            print(f"  {result['kind']} {result['runs']}: WRONG: {result['problems']}")

    print()
    verdicts = []
    flat = True
    for kind, _ in STUDIES:
        measured = [r for r in results if r["kind"] == kind and "error" not in r and growth_per_1000(r) is not None]
        if not measured:
            verdicts.append(f"{kind}: not measured")
            flat = False
            continue
        largest = max(measured, key=lambda r: r["runs"])
        growth = growth_per_1000(largest)
        total_kb = largest["end"]["rss_excl_iface_kb"] - largest["start"]["rss_excl_iface_kb"]
        rates = [r["runs_per_s"] for r in sorted(measured, key=lambda r: r["runs"])]
        flat = flat and growth <= FLAT_KB_PER_1000_RUNS
        verdicts.append(
            f"{kind}: {growth:+.1f} kB per 1000 runs ({total_kb:+d} kB over {largest['runs']} runs); "
            f"runs/s from smallest to largest study: {' / '.join(f'{rate:.0f}' for rate in rates)}"
        )
    word = "FLAT" if flat else "GROWS"
    print(
        f"verdict: {word} (limit {FLAT_KB_PER_1000_RUNS:g} kB per 1000 runs, largest study of each runner), "
        f"memory growth per 1000 runs excluding the interface file -- " + "; ".join(verdicts)
    )
    print(f"total time {elapsed:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="every study size divided by 10 (a smoke test)")
    parser.add_argument("--json", metavar="PATH", help="also write all figures to this JSON file")
    parser.add_argument("--one", nargs=2, metavar=("KIND", "N"), help=argparse.SUPPRESS)  # a measurement process
    args = parser.parse_args(argv)

    if args.one:
        kind, n_runs = args.one[0], int(args.one[1])
        print(json.dumps(measure_one(kind, n_runs)), flush=True)
        return 0

    machine = machine_info()
    print(f"machine: nproc {machine['nproc']}, Python {machine['python']}", flush=True)
    started = time.perf_counter()
    results = []
    for kind, sizes in STUDIES:
        for n_runs in sizes:
            n_runs = n_runs // 10 if args.quick else n_runs
            print(f"measuring {kind} runner, {n_runs} runs ...", flush=True)
            results.append(run_measurement(kind, n_runs))
    elapsed = time.perf_counter() - started
    print_report(machine, results, elapsed)

    bad = [f"{r['kind']} {r['runs']}" for r in results if "error" in r or not r["correct"]]
    if bad:
        print(f"\nWRONG OR MISSING RESULTS from: {', '.join(bad)} (exit status 1)")
    if args.json:
        with open(args.json, "w") as file:
            json.dump({"machine": machine, "results": results, "exit_code": int(bool(bad))}, file, indent=2)
        print(f"figures written to {args.json}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
