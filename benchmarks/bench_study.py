"""Benchmark: what ``profit run`` adds to the runner alone, in wall time and in memory.

A study (``profit run``) is the runner plus the study machinery: the study's
table (``profit-study.npy``, which the runner's memmap interface maps), the lock,
the progress line, the input sampling and the exports (``input.txt``,
``output.txt``, ``output.states.csv``) at the end. The goal is that this
machinery costs at most 10 % of the wall time (ratio <= 1.10) and that its
memory stays flat as the study grows (beyond the table itself).

The study: ``ntrain: N`` runs (default 10^5) of ``f = u + v`` with ``u, v ~
Uniform(0, 1)`` (float64), ``seed: 1``, a Python worker ``bench_sum`` (a
function wrapped with ``@Worker.wrap`` in the include file ``worker.py``) on
the pool runner with its default ``parallel`` (all usable CPUs), in a fresh
temporary directory.

Time, measured in rounds (default 3); each round times, one after the other
(the order alternates from round to round, so that a drift of the machine's
speed hits both sides alike):

* ``profit run --restart DIR``: the ``profit`` console script of this Python's
  environment as a subprocess (stdout to a file, not a terminal, so it prints a
  progress line every 5 s);
* "runner alone": a subprocess of the same Python running a small script that
  loads the same include file (``profit.run.includes.load_includes``), builds
  the same runner (``Runner["pool"]`` with a memmap interface of N rows of
  u, v, f, the worker ``bench_sum``, a fresh work directory), samples N inputs
  with numpy, runs them all (``spawn_array(rows, wait=True)``), compares the
  outputs with ``u + v`` (a vectorized check, ~1 ms) and closes the runner.

Both are whole processes, so interpreter start-up and imports count on both
sides; wall time runs from just before ``Popen`` until ``os.wait4`` returns.
Reported: the median of the per-round ratios (profit run / runner alone), the
median of each side's times, and PASS/FAIL against the goal 1.10. One untimed
round with 1000 runs comes first (warms the file cache and the bytecode caches).
Every ``profit run`` is checked afterwards (its ``output.txt`` holds N values
equal to ``u + v`` of its ``input.txt``); a wrong or failed run makes the script
exit with status 1. A missed goal does not: this is a measurement, not a test.

Memory, for each N of ``--memory-sizes`` (default 10^3, 10^4, 10^5), in a fresh
study directory, once per N (memory hardly drifts):

* ``peak RSS``: ``ru_maxrss`` that ``os.wait4`` returns for the ``profit run``
  process. Linux reports the largest peak of the process *and of its
  descendants it waited for*: the pool's workers are forked children of the
  process and are reaped by it, so this is max(peak of profit run, peak of
  its largest worker), not a sum. Pages of the mapped table count in it (they
  are resident page cache, shared with the workers).
* ``own peak``: ``VmHWM`` of the profit run process alone, read from
  ``/proc/self/status`` by an ``atexit`` hook (the console script is run with
  ``runpy`` under ``python -c`` for this, which is otherwise the same process);
  forked workers do not report (the hook checks the process id). The two
  readings come from different kernel counters and may differ by a fraction
  of a MB even when the main process holds the peak.
* ``table``: size of ``profit-study.npy``; ``peak - table`` and ``own - table``
  are the memory beyond the table, which should not grow with N. The same
  figures of the runner alone (minus its ``interface.npy``) are printed beside
  them for comparison.

Growth = (peak - table) at the largest N minus at the smallest N, also per
1000 runs; "FLAT" when the growth of the own peak is at most
``FLAT_KB_PER_1000_RUNS`` kB per 1000 runs (the limit of bench_memory.py).

Usage::

    python benchmarks/bench_study.py [--runs N] [--rounds R] [--memory-sizes 1000,10000,100000]
                                     [--skip-memory] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # bench_runners.py sits beside this file
    sys.path.insert(0, str(HERE))

from bench_runners import machine_info  # noqa: E402

WORKER_LABEL = "bench_sum"
GOAL_RATIO = 1.10  # profit run / runner alone
FLAT_KB_PER_1000_RUNS = 16.0  # as in bench_memory.py: under 2 MB over 10^5 runs
WARMUP_RUNS = 1000
PROCESS_TIMEOUT = 600  # seconds one subprocess may take before it is killed
PROFIT_SCRIPT = pathlib.Path(sys.executable).parent / "profit"  # the console script of this environment

# Block style: in a flow mapping ({u: Uniform(0, 1), ...}) YAML splits at the comma.
STUDY_YAML = textwrap.dedent(
    f"""\
    ntrain: {{runs}}
    seed: 1
    include: worker.py
    variables:
      u: Uniform(0, 1)
      v: Uniform(0, 1)
      f: Output
    run:
      runner: pool
      worker: {WORKER_LABEL}
    """
)

WORKER_SOURCE = textwrap.dedent(
    f'''\
    """f = u + v as a profit Worker (the include file of the benchmark's study)."""

    from profit.run import Worker


    @Worker.wrap("{WORKER_LABEL}", "f")
    def f(u, v):
        return u + v
    '''
)

# The runner alone: argv = include file, runs, work directory, seed; prints one JSON line.
BASELINE_SOURCE = textwrap.dedent(
    f'''\
    """The runner alone: the study's runner, worker and number of runs, without the study."""

    import json
    import os
    import sys

    import numpy as np

    from profit.run import Runner
    from profit.run.includes import load_includes

    include, n, work_dir, seed = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    load_includes([include])
    rng = np.random.default_rng(seed)
    rows = np.zeros(n, dtype=[("u", np.float64), ("v", np.float64)])
    rows["u"] = rng.random(n)
    rows["v"] = rng.random(n)
    interface = {{
        "class": "memmap",
        "size": n,
        "input_config": {{"u": {{"dtype": np.float64}}, "v": {{"dtype": np.float64}}}},
        "output_config": {{"f": {{"dtype": np.float64}}}},
    }}
    runner = Runner["pool"](interface=interface, worker="{WORKER_LABEL}", work_dir=work_dir)
    try:
        runner.spawn_array(rows, wait=True)
        f = np.asarray(runner.interface.output["f"][:n], dtype=np.float64).reshape(n)
        wrong = int(np.count_nonzero(f != rows["u"] + rows["v"]))
        failed = len(runner.failed)
        iface_path = runner.interface.path
    finally:
        runner.close()
    hwm = None
    with open("/proc/self/status") as file:
        for line in file:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    iface_bytes = os.path.getsize(iface_path) if os.path.exists(iface_path) else None
    print(json.dumps({{"wrong": wrong, "failed": failed, "hwm_kb": hwm, "iface_bytes": iface_bytes}}))
    sys.exit(1 if wrong or failed else 0)
    '''
)

# ``profit run`` with an atexit hook that writes the process's own VmHWM (kB) to a file:
# argv = hook output file, then the console script's arguments.
PROFIT_HWM_WRAPPER = textwrap.dedent(
    """\
    import atexit, os, runpy, sys
    out, script, me = sys.argv[1], sys.argv[2], os.getpid()
    def report():
        if os.getpid() != me:  # a forked pool worker
            return
        with open("/proc/self/status") as file:
            hwm = next(line.split()[1] for line in file if line.startswith("VmHWM:"))
        with open(out, "w") as file:
            file.write(hwm)
    atexit.register(report)
    sys.argv = sys.argv[2:]
    runpy.run_path(script, run_name="__main__")
    """
)


@dataclass
class Process:
    """How one subprocess went."""

    wall_s: float
    maxrss_kb: int  # ru_maxrss from os.wait4: the process and its reaped descendants (max, not sum)
    returncode: int
    stdout: str
    stderr: str

    def tail(self) -> str:
        """The last line it wrote (for error messages)."""
        lines = (self.stderr.strip() or self.stdout.strip() or "no output").splitlines()
        return lines[-1]


@dataclass
class MemoryRow:
    runs: int
    profit: dict[str, Any] = field(default_factory=dict)
    alone: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


# --- subprocesses ----------------------------------------------------------------------


def run_process(command: list[str], cwd: str, log_dir: str) -> Process:
    """Run ``command``; wall time from just before ``Popen`` until ``os.wait4`` returns."""
    out_path, err_path = os.path.join(log_dir, "stdout"), os.path.join(log_dir, "stderr")
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        timer = threading.Timer(PROCESS_TIMEOUT, lambda: os.kill(process.pid, signal.SIGKILL))
        timer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)  # Popen must not wait for it again
    with open(out_path, errors="replace") as out, open(err_path, errors="replace") as err:
        stdout, stderr = out.read(), err.read()
    return Process(wall, usage.ru_maxrss, process.returncode, stdout, stderr)


def make_study(root: str, runs: int) -> str:
    """A fresh study directory for ``runs`` runs: profit.yaml and worker.py."""
    study = tempfile.mkdtemp(prefix=f"study-{runs}-", dir=root)
    pathlib.Path(study, "profit.yaml").write_text(STUDY_YAML.format(runs=runs))
    pathlib.Path(study, "worker.py").write_text(WORKER_SOURCE)
    return study


def profit_run(study: str, log_dir: str, hwm_file: str | None = None) -> Process:
    """``profit run --restart STUDY`` (with ``hwm_file``: through the VmHWM wrapper)."""
    args = ["run", "--restart", study]
    if hwm_file is None:
        command = [str(PROFIT_SCRIPT), *args]
    else:
        command = [sys.executable, "-c", PROFIT_HWM_WRAPPER, hwm_file, str(PROFIT_SCRIPT), *args]
    return run_process(command, cwd=study, log_dir=log_dir)


def runner_alone(study: str, runs: int, root: str, log_dir: str) -> tuple[Process, dict[str, Any]]:
    """The runner alone on ``runs`` runs of the study's worker, in a fresh work directory (removed after)."""
    work_dir = tempfile.mkdtemp(prefix="alone-", dir=root)
    script = os.path.join(root, "runner_alone.py")
    try:
        command = [sys.executable, script, os.path.join(study, "worker.py"), str(runs), work_dir, "1"]
        process = run_process(command, cwd=work_dir, log_dir=log_dir)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    lines = process.stdout.strip().splitlines()
    try:
        report = json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError:
        report = {}
    return process, report


def check_study(study: str, runs: int) -> str | None:
    """None when the study's exports hold ``runs`` outputs equal to ``u + v``; else what is wrong."""
    try:
        inputs = np.loadtxt(os.path.join(study, "input.txt"), ndmin=2)
        outputs = np.loadtxt(os.path.join(study, "output.txt"), ndmin=2)
    except (OSError, ValueError) as error:
        return f"cannot read the exports: {error}"
    if inputs.shape != (runs, 2) or outputs.shape != (runs, 1):
        return f"exports hold {inputs.shape} inputs and {outputs.shape} outputs, expected ({runs}, 2) and ({runs}, 1)"
    wrong = int(np.count_nonzero(~np.isclose(outputs[:, 0], inputs[:, 0] + inputs[:, 1], rtol=1e-12, atol=0)))
    return f"{wrong} outputs differ from u + v" if wrong else None


# --- measurements -----------------------------------------------------------------------


def measure_time(runs: int, rounds: int, root: str, log_dir: str) -> dict[str, Any]:
    """Interleaved rounds of profit run and the runner alone; per-round times and ratios."""
    result: dict[str, Any] = {"runs": runs, "rounds": [], "errors": []}

    # Untimed warm-up: file cache, bytecode caches, the page cache of the venv.
    warm = make_study(root, WARMUP_RUNS)
    for process in (profit_run(warm, log_dir), runner_alone(warm, WARMUP_RUNS, root, log_dir)[0]):
        if process.returncode != 0:
            result["errors"].append(f"warm-up: exit {process.returncode}: {process.tail()}")
            return result
    shutil.rmtree(warm, ignore_errors=True)

    study = make_study(root, runs)
    for index in range(rounds):
        times: dict[str, float] = {}
        order = ("profit", "alone") if index % 2 == 0 else ("alone", "profit")
        for side in order:
            if side == "profit":
                process = profit_run(study, log_dir)
                problem = check_study(study, runs) if process.returncode == 0 else None
            else:
                process, report = runner_alone(study, runs, root, log_dir)
                problem = None if report else "no report"
            if process.returncode != 0 or problem:
                why = problem or f"exit {process.returncode}: {process.tail()}"
                result["errors"].append(f"round {index + 1}, {side}: {why}")
                return result
            times[side] = process.wall_s
        ratio = times["profit"] / times["alone"]
        result["rounds"].append({"profit_s": times["profit"], "alone_s": times["alone"], "ratio": ratio})
        print(
            f"  round {index + 1}/{rounds} ({' first, '.join(order)} second): profit run {times['profit']:.2f} s, "
            f"runner alone {times['alone']:.2f} s, ratio {ratio:.3f}",
            flush=True,
        )
    shutil.rmtree(study, ignore_errors=True)
    return result


def measure_memory(runs: int, root: str, log_dir: str) -> MemoryRow:
    """Peak RSS of profit run and of the runner alone for a study of ``runs`` runs."""
    row = MemoryRow(runs)
    study = make_study(root, runs)
    hwm_file = os.path.join(root, "hwm")
    try:
        if os.path.exists(hwm_file):
            os.remove(hwm_file)
        process = profit_run(study, log_dir, hwm_file)
        if process.returncode != 0:
            problem: str | None = f"exit {process.returncode}: {process.tail()}"
        else:
            problem = check_study(study, runs)
        if problem:
            row.error = f"profit run: {problem}"
            return row
        own = int(pathlib.Path(hwm_file).read_text()) if os.path.exists(hwm_file) else None
        row.profit = {
            "wall_s": process.wall_s,
            "maxrss_kb": process.maxrss_kb,
            "own_kb": own,
            "table_bytes": os.path.getsize(os.path.join(study, "profit-study.npy")),
        }
        process, report = runner_alone(study, runs, root, log_dir)
        if process.returncode != 0 or not report:
            row.error = f"runner alone: exit {process.returncode}: {process.tail()}"
            return row
        row.alone = {
            "wall_s": process.wall_s,
            "maxrss_kb": process.maxrss_kb,
            "own_kb": report.get("hwm_kb"),
            "table_bytes": report.get("iface_bytes"),
        }
        return row
    finally:
        shutil.rmtree(study, ignore_errors=True)


# --- report -----------------------------------------------------------------------------


def _mb(kb: float | None) -> str:
    return "-" if kb is None else f"{kb / 1024:.1f}"


def _beyond(side: dict[str, Any], key: str) -> float | None:
    """kB of ``side[key]`` (a peak) beyond its table / interface file."""
    if side.get(key) is None or side.get("table_bytes") is None:
        return None
    return side[key] - side["table_bytes"] / 1024


def print_time(result: dict[str, Any]) -> None:
    print()
    rounds = result["rounds"]
    print(f"Time: {result['runs']} runs, {len(rounds)} interleaved rounds")
    if not rounds:
        print("  not measured")
        return
    profit_s = statistics.median(r["profit_s"] for r in rounds)
    alone_s = statistics.median(r["alone_s"] for r in rounds)
    ratio = statistics.median(r["ratio"] for r in rounds)
    spread = f"{min(r['ratio'] for r in rounds):.3f}-{max(r['ratio'] for r in rounds):.3f}"
    print(f"  profit run       median {profit_s:7.2f} s  ({result['runs'] / profit_s:,.0f} runs/s)")
    print(f"  runner alone     median {alone_s:7.2f} s  ({result['runs'] / alone_s:,.0f} runs/s)")
    print(f"  ratio profit run / runner alone: median {ratio:.3f} (rounds: {spread})")
    print(
        f"  goal: study machinery adds at most {GOAL_RATIO - 1:.0%} (ratio <= {GOAL_RATIO:.2f}): "
        f"{'PASS' if ratio <= GOAL_RATIO else 'FAIL'}"
    )


def print_memory(rows: list[MemoryRow]) -> None:
    print()
    print("Memory (MB = 2^20 bytes): peak = ru_maxrss from os.wait4 (the process and its reaped pool workers, max);")
    print("own = VmHWM of the main process alone; table = profit-study.npy (runner alone: its interface.npy)")
    header = (
        f"{'runs':>7} | {'wall s':>6} {'peak':>6} {'own':>6} {'table':>6} {'peak-tbl':>8} {'own-tbl':>7} "
        f"| {'wall s':>6} {'peak':>6} {'own':>6} {'iface':>6} {'peak-if':>7} {'own-if':>6}"
    )
    print(f"{'':>7} | {'profit run':<47} | runner alone")
    print(header)
    print("-" * len(header))
    for row in rows:
        if row.error:
            print(f"{row.runs:>7} | ERROR: {row.error}")
            continue
        cells = []
        for side in (row.profit, row.alone):
            cells.append(
                f"{side['wall_s']:>6.2f} {_mb(side['maxrss_kb']):>6} {_mb(side['own_kb']):>6} "
                f"{_mb(side['table_bytes'] / 1024 if side['table_bytes'] is not None else None):>6} "
                f"{_mb(_beyond(side, 'maxrss_kb')):>8} {_mb(_beyond(side, 'own_kb')):>7}"
            )
        print(f"{row.runs:>7} | {cells[0]} | {cells[1]}")
    print("-" * len(header))

    measured = [row for row in rows if not row.error]
    if len(measured) < 2:
        print("growth: needs two study sizes")
        return
    small, large = min(measured, key=lambda r: r.runs), max(measured, key=lambda r: r.runs)
    span = large.runs - small.runs
    verdict = None
    for side_name, key in (("profit run", "profit"), ("runner alone", "alone")):
        parts = []
        for label, peak in (("peak - table", "maxrss_kb"), ("own - table", "own_kb")):
            a, b = _beyond(getattr(small, key), peak), _beyond(getattr(large, key), peak)
            if a is None or b is None:
                parts.append(f"{label}: -")
                continue
            per_1000 = (b - a) / span * 1000
            parts.append(f"{label} {(b - a) / 1024:+.1f} MB ({per_1000:+.1f} kB per 1000 runs)")
            if key == "profit" and peak == "own_kb":
                verdict = per_1000 <= FLAT_KB_PER_1000_RUNS
        print(f"growth {small.runs} -> {large.runs} runs, {side_name}: " + "; ".join(parts))
    if verdict is not None:
        print(
            f"goal: memory beyond the table flat (own - table of profit run grows <= "
            f"{FLAT_KB_PER_1000_RUNS:g} kB per 1000 runs): {'FLAT' if verdict else 'GROWS'}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000, metavar="N", help="runs of the timed study (100000)")
    parser.add_argument("--rounds", type=int, default=3, metavar="R", help="interleaved timing rounds (3)")
    parser.add_argument(
        "--memory-sizes",
        default="1000,10000,100000",
        metavar="LIST",
        help="comma-separated study sizes of the memory table (1000,10000,100000)",
    )
    parser.add_argument("--skip-memory", action="store_true", help="measure time only")
    parser.add_argument("--json", metavar="PATH", help="also write all figures to this JSON file")
    args = parser.parse_args(argv)
    sizes = sorted({int(size) for size in args.memory_sizes.split(",") if size.strip()})
    if args.runs < 1 or args.rounds < 1 or any(size < 1 for size in sizes):
        parser.error("--runs, --rounds and --memory-sizes must be positive")
    if not PROFIT_SCRIPT.exists():
        parser.error(f"no profit console script beside this Python ({PROFIT_SCRIPT}); run it with the venv's python")

    machine = machine_info()
    load = machine["loadavg_1_5_15"]
    print(
        f"machine: nproc {machine['nproc']}, Python {machine['python']}, numpy {machine['numpy']}, "
        f"profit {machine['profit']}" + (f", load avg {load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f}" if load else ""),
        flush=True,
    )
    print("NOTE: this machine is shared and noisy; compare the ratios, not the absolute times.")
    started = time.perf_counter()
    root = tempfile.mkdtemp(prefix="bench-study-")
    log_dir = tempfile.mkdtemp(prefix="logs-", dir=root)
    pathlib.Path(root, "runner_alone.py").write_text(BASELINE_SOURCE)
    memory: list[MemoryRow] = []
    try:
        print(f"timing profit run and the runner alone, {args.runs} runs, {args.rounds} rounds ...", flush=True)
        timing = measure_time(args.runs, args.rounds, root, log_dir)
        if not args.skip_memory:
            for size in sizes:
                print(f"memory, {size} runs ...", flush=True)
                memory.append(measure_memory(size, root, log_dir))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    elapsed = time.perf_counter() - started

    print_time(timing)
    if not args.skip_memory:
        print_memory(memory)
    errors = timing["errors"] + [f"memory {row.runs}: {row.error}" for row in memory if row.error]
    for error in errors:
        print(f"ERROR: {error}")
    print(f"total time {elapsed:.0f} s")
    if args.json:
        figures = {
            "machine": machine,
            "time": timing,
            "memory": [vars(row) for row in memory],
            "exit_code": int(bool(errors)),
        }
        with open(args.json, "w") as file:
            json.dump(figures, file, indent=2)
        print(f"figures written to {args.json}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
