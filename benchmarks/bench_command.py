"""Benchmark: the command-worker case (template copy, run, parse), ours against proFit 0.6.

Both run systems run the SAME external-program study: each run copies a
template directory, fills ``input.txt`` (``u = {u}``, ``v = {v}``) with the
template preprocessor, runs ``sh ./simulation`` there (a POSIX sh script:
one ``awk`` that prints ``u + v`` with 17 significant digits to stdout) and
reads ``f`` back from ``stdout`` with the ``numpytxt`` postprocessor. The
program is cheap on purpose, so what is measured is the run system around it:
starting a worker, preparing the run directory, starting the command, reading
its output, cleaning up and noticing that the run ended. Parallel 2.

Modes, all measured in one invocation so that their ratios are comparable:

* ours, ForkRunner + command worker + memmap;
* ours, LocalRunner + command worker + memmap (a new ``profit-worker`` process
  per run through the shell, hence fewer runs);
* proFit 0.6 (the release our run system replaces), in its own venv through
  ``benchmarks/profit06.py``: ForkRunner with its default 0.1 s polling sleep and
  with sleep = 1 ms, and LocalRunner with the default sleep; its own
  CommandWorker + template + numpytxt with the same template and command.

For each mode: throughput = runs / wall time of one batch (``spawn_array(...,
wait=True)``), latency = median wall time of one blocking run (``spawn(params,
wait=True)``). Every output is checked against the inputs that were sent
(``f == u + v`` exactly: both preprocessors write floats so that they read
back exactly, and awk adds in float64 too). Wrong results of ours make the
script exit with status 1; missed performance is not an error.

Usage::

    python benchmarks/bench_command.py [--runs N] [--latency-runs M] [--no-profit06] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import statistics
import sys
import tempfile
import textwrap
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # bench_runners.py and profit06.py sit beside this file
    sys.path.insert(0, str(HERE))

from bench_runners import (  # noqa: E402  (after the sys.path line above)
    INTERFACE_DTYPES,
    PARALLEL,
    SEED,
    Result,
    _check_outputs,
    _fmt_correct,
    _fmt_ms,
    _fmt_rate,
    _fmt_x,
    _inputs,
    _latency_stats,
    _ratio,
    machine_info,
)

WARMUP_RUNS = 10  # per phase, ours only (proFit 0.6 gets none, as in bench_runners.py)

# LocalRunner starts a Python interpreter per run; these caps keep it to seconds.
LOCAL_MAX_RUNS = 100
LOCAL_MAX_LATENCY_RUNS = 20

COMMAND = "sh ./simulation"  # `sh` for both systems: identical start-up, no exec bit needed

# The simulation: awk reads u and v from input.txt and prints u + v so that it
# reads back exactly (awk computes in float64, as numpy does).
SIMULATION_SOURCE = textwrap.dedent(
    """\
    #!/bin/sh
    # f = u + v, read from input.txt (filled in by the template preprocessor).
    exec awk -F '=' '
        $1 ~ /^ *u *$/ { u = $2 }
        $1 ~ /^ *v *$/ { v = $2 }
        END { printf "%.17g\\n", u + v }
    ' input.txt
    """
)
INPUT_TEMPLATE = "u = {u}\nv = {v}\n"

# proFit 0.6 substitutes with str.format_map over the whole file, which would
# trip over awk's braces; both systems therefore substitute only input.txt.
PARAM_FILES = ["input.txt"]

PROFIT06_MODES: list[dict[str, Any]] = [
    {"key": "profit06_fork_default", "name": "proFit 0.6 ForkRunner, default sleep",
     "runner": "fork", "sleep": None, "max_runs": None, "max_latency_runs": None},
    {"key": "profit06_fork_1ms", "name": "proFit 0.6 ForkRunner, sleep=1 ms",
     "runner": "fork", "sleep": 0.001, "max_runs": None, "max_latency_runs": None},
    {"key": "profit06_local_default", "name": "proFit 0.6 LocalRunner, default sleep",
     "runner": "local", "sleep": None, "max_runs": LOCAL_MAX_RUNS, "max_latency_runs": LOCAL_MAX_LATENCY_RUNS},
]


def make_template(root: str) -> str:
    """Write the template directory (``simulation``, ``input.txt``); return its absolute path."""
    template = os.path.join(root, "template")
    os.makedirs(template)
    simulation = os.path.join(template, "simulation")
    with open(simulation, "w") as file:
        file.write(SIMULATION_SOURCE)
    os.chmod(simulation, 0o755)
    with open(os.path.join(template, "input.txt"), "w") as file:
        file.write(INPUT_TEMPLATE)
    return os.path.abspath(template)


def worker_config(template: str) -> dict[str, Any]:
    """The command worker, in the config form both systems accept (JSON-serialisable)."""
    return {
        "class": "command",
        "command": COMMAND,
        "pre": {"class": "template", "path": template, "param_files": PARAM_FILES},
        "post": {"class": "numpytxt", "path": "stdout"},
        "stdout": "stdout",
    }


# --- ours ------------------------------------------------------------------------------


def _with_runner(kind: str, size: int, root: str, template: str, body: Callable[[Any], Any]) -> Any:
    """Run ``body(runner)`` with a fresh command-worker runner in a fresh work directory."""
    from profit.run import Runner

    work_dir = tempfile.mkdtemp(prefix=f"{kind}-", dir=root)
    interface = {"class": "memmap", "size": size, **INTERFACE_DTYPES}
    runner = Runner[kind](interface=interface, worker=worker_config(template), work_dir=work_dir, parallel=PARALLEL)
    try:
        return body(runner)
    finally:
        try:
            if runner.runs:  # only after an error: clean() refuses active runs
                runner.cancel_all()
            runner.clean()
        finally:
            shutil.rmtree(work_dir, ignore_errors=True)


def measure_ours(kind: str, name: str, n_runs: int, latency_runs: int, root: str, template: str,
                 note: str = "") -> Result:
    """Throughput and latency of our ``kind`` runner with the command worker and memmap."""
    result = Result(key=f"ours_{kind}", name=name, runs=n_runs, latency_runs=latency_runs, ours=True, note=note)
    rng = np.random.default_rng(SEED)
    problems: list[str] = []
    completed = total = 0

    def check(runner: Any, sent: np.ndarray, phase: str) -> None:
        nonlocal completed, total
        from profit.run import RunState

        states = np.asarray(runner.interface.internal["STATE"][: len(sent)])
        completed += int(np.count_nonzero(states == RunState.DONE))
        total += len(sent)
        ok, why = _check_outputs(runner, sent)
        if not ok:
            problems.append(f"{phase}: {why}")

    try:
        warm, batch = _inputs(WARMUP_RUNS, rng), _inputs(n_runs, rng)

        def throughput(runner: Any) -> float:
            runner.spawn_array(warm, wait=True)
            start = time.perf_counter()
            runner.spawn_array(batch, wait=True)
            elapsed = time.perf_counter() - start
            check(runner, np.concatenate([warm, batch]), "throughput")
            return elapsed

        elapsed = _with_runner(kind, WARMUP_RUNS + n_runs, root, template, throughput)
        result.runs_per_s = n_runs / elapsed

        warm, singles = _inputs(WARMUP_RUNS, rng), _inputs(latency_runs, rng)

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

        samples = _with_runner(kind, WARMUP_RUNS + latency_runs, root, template, latency)
        result.latency_s = statistics.median(samples)
        result.extra.update(_latency_stats(samples))
        result.extra.update(completed=completed, total=total)
        result.correct = not problems
        result.note = "; ".join([result.note, f"done {completed}/{total} (incl. warm-up)", *problems]).strip("; ")
    except Exception as error:  # a broken runner is a finding to report, not a crash
        traceback.print_exc()
        result.correct = False
        result.skipped = f"error: {type(error).__name__}: {error}"
    return result


# --- proFit 0.6 ------------------------------------------------------------------------


def measure_profit06_modes(n_runs: int, latency_runs: int, template: str) -> list[Result]:
    """proFit 0.6's runners with its CommandWorker (see ``profit06.py``); skipped modes keep a note."""
    try:
        from profit06 import measure_profit06
    except Exception as error:  # the baseline is optional; our own figures still count
        return [Result(key=mode["key"], name=mode["name"], skipped=f"cannot import profit06.py: {error}")
                for mode in PROFIT06_MODES]
    results = []
    for mode in PROFIT06_MODES:
        runs = n_runs if mode["max_runs"] is None else min(n_runs, mode["max_runs"])
        lat_runs = latency_runs if mode["max_latency_runs"] is None else min(latency_runs, mode["max_latency_runs"])
        print(f"  {mode['name']}: {runs} runs + {lat_runs} single runs ...", flush=True)
        raw = measure_profit06(runs, mode["runner"], sleep=mode["sleep"], parallel=PARALLEL,
                               latency_runs=lat_runs, timeout=240, worker=worker_config(template))
        result = Result(key=mode["key"], name=mode["name"], runs=runs, latency_runs=lat_runs)
        if "skipped" in raw:
            result.skipped = raw["skipped"]
            print(f"    skipped: {raw['skipped']}", flush=True)
        else:
            result.runs_per_s = raw["runs_per_s"]
            result.latency_s = raw["latency_s"]
            result.correct = bool(raw["correct"]) and raw["completed"] == raw["total"]
            result.note = (f"{raw['note']}; done {raw['completed']}/{raw['total']}, "
                           f"wrong {raw.get('wrong', '?')}; no warm-up"
                           + (f"; its runner.clean() failed: {raw['clean_error']}" if raw.get("clean_error") else ""))
            result.extra = {k: v for k, v in raw.items() if k not in ("runs_per_s", "latency_s", "note")}
        results.append(result)
    return results


# --- report ----------------------------------------------------------------------------


PAIRS = [
    ("ours_fork", "profit06_fork_default"),
    ("ours_fork", "profit06_fork_1ms"),
    ("ours_local", "profit06_local_default"),
]


def compute_ratios(by_key: dict[str, Result]) -> list[dict[str, Any]]:
    """Ours ÷ proFit 0.6, same runner kind: speed (runs/s, >1 = ours faster), latency (<1 = ours faster)."""
    ratios = []
    for ours_key, base_key in PAIRS:
        ours, base = by_key.get(ours_key), by_key.get(base_key)
        if ours is None or base is None:
            continue
        ratios.append({
            "ours": ours_key,
            "baseline": base_key,
            "speed_ratio": _ratio(ours.runs_per_s, base.runs_per_s),
            "latency_ratio": _ratio(ours.latency_s, base.latency_s),
        })
    return ratios


def print_report(machine: dict[str, Any], results: list[Result], ratios: list[dict[str, Any]],
                 settings: dict[str, Any]) -> None:
    by_key = {result.key: result for result in results}
    load = machine["loadavg_1_5_15"]
    print()
    print(f"Command-worker benchmark: template copy + `{COMMAND}` (awk: f = u + v) + numpytxt, "
          f"parallel = {PARALLEL}, {WARMUP_RUNS} warm-up runs per phase not counted (ours; not proFit 0.6)")
    print("NOTE: this machine is shared and noisy; absolute times drift from run to run. "
          "Compare the RATIOS, which were all measured in this same invocation.")
    print(f"machine: nproc {machine['nproc']} (cpu_count {machine['cpu_count']}), "
          f"Python {machine['python']}, numpy {machine['numpy']}, profit {machine['profit']}, "
          f"{machine['platform']}" + (f", load avg {load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f}" if load else ""))
    print(f"settings: --runs {settings['runs']} --latency-runs {settings['latency_runs']}; "
          f"runs column = throughput runs / latency runs (latency = median of single blocking runs)")
    print()

    def ours_ratio(result: Result) -> str:
        if not result.ours:
            return ""
        base = by_key.get("profit06_local_default" if result.key == "ours_local" else "profit06_fork_default")
        return _fmt_x(_ratio(result.runs_per_s, base.runs_per_s if base else None))

    header = f"{'mode':<42} {'runs':>9} {'runs/s':>8} {'lat ms':>8} {'correct':>7} {'÷proFit':>8}"
    print(header)
    print("-" * len(header))
    for result in results:
        runs = f"{result.runs}/{result.latency_runs}" if result.runs else "-"
        print(f"{result.name:<42} {runs:>9} {_fmt_rate(result.runs_per_s):>8} {_fmt_ms(result.latency_s):>8} "
              f"{_fmt_correct(result):>7} {ours_ratio(result):>8}")
    print("-" * len(header))
    print("÷proFit: our runs/s divided by proFit 0.6's (same runner kind, default sleep)")
    print("notes:")
    for result in results:
        text = f"skipped: {result.skipped}" if result.skipped else result.note
        if text:
            print(f"  {result.name}: {text}")

    if ratios:
        print()
        print("ratios, ours ÷ proFit 0.6 (speed = runs/s ratio, >1: ours faster; latency = ms ratio, <1: ours faster)")
        names = {result.key: result.name for result in results}
        for ratio in ratios:
            print(f"  {names[ratio['ours']]:<42} vs {names[ratio['baseline']]:<38} "
                  f"speed {_fmt_x(ratio['speed_ratio']):>7}   latency {_fmt_x(ratio['latency_ratio']):>7}")


# --- main ------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300, help="runs in each throughput batch (default 300)")
    parser.add_argument("--latency-runs", type=int, default=30,
                        help="single runs for each latency median (default 30)")
    parser.add_argument("--no-profit06", action="store_true", help="skip the proFit 0.6 baseline")
    parser.add_argument("--json", metavar="PATH", help="also write all figures to this JSON file")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.latency_runs < 1:
        parser.error("--runs and --latency-runs must be at least 1")

    machine = machine_info()
    root = tempfile.mkdtemp(prefix="bench-command-")
    results: list[Result] = []
    try:
        template = make_template(root)
        local_runs = min(args.runs, LOCAL_MAX_RUNS)
        local_latency_runs = min(args.latency_runs, LOCAL_MAX_LATENCY_RUNS)
        steps: list[tuple[str, Callable[[], Result]]] = [
            ("ForkRunner + command worker", lambda: measure_ours(
                "fork", "ours: ForkRunner + command + memmap", args.runs, args.latency_runs, root, template)),
            ("LocalRunner + command worker", lambda: measure_ours(
                "local", "ours: LocalRunner + command + memmap *", local_runs, local_latency_runs, root, template,
                note=f"* fewer runs: min(N, {LOCAL_MAX_RUNS}) / min(M, {LOCAL_MAX_LATENCY_RUNS}); "
                     "each run is a new profit-worker process via the shell")),
        ]
        for label, step in steps:
            print(f"measuring ours: {label} ...", flush=True)
            results.append(step())
        if not args.no_profit06:
            print("measuring proFit 0.6 (its venv is created on first use, which may take a minute) ...", flush=True)
            results.extend(measure_profit06_modes(args.runs, args.latency_runs, template))
    finally:
        shutil.rmtree(root, ignore_errors=True)

    by_key = {result.key: result for result in results}
    ratios = compute_ratios(by_key)
    settings = {"runs": args.runs, "latency_runs": args.latency_runs, "parallel": PARALLEL,
                "warmup_runs": WARMUP_RUNS, "command": COMMAND, "profit06": not args.no_profit06}
    print_report(machine, results, ratios, settings)

    ours_wrong = [result.name for result in results if result.ours and result.correct is not True]
    exit_code = 1 if ours_wrong else 0
    if ours_wrong:
        print(f"\nWRONG OR MISSING RESULTS from: {', '.join(ours_wrong)} (exit status 1)")

    if args.json:
        report = {"machine": machine, "settings": settings, "results": [asdict(result) for result in results],
                  "ratios": ratios, "exit_code": exit_code}
        with open(args.json, "w") as file:
            json.dump(report, file, indent=2)
        print(f"figures written to {args.json}")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
