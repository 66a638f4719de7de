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

import os
import pathlib
import shutil
import sys
import tempfile
import textwrap
from collections.abc import Callable
from typing import Any

HERE = pathlib.Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # bench_runners.py and profit06.py sit beside this file
    sys.path.insert(0, str(HERE))

# The measurement method and the report format are shared with bench_runners.py,
# so that figures of the two scripts are measured and shown the same way.
from bench_runners import (  # noqa: E402  (after the sys.path line above)
    PARALLEL,
    Result,
    compute_ratios,
    finish,
    machine_info,
    measure_ours,
    measure_profit06_modes,
    parse_arguments,
    print_preamble,
    print_ratios,
    print_table,
    profit06_peer,
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
    {
        "key": "profit06_fork_default",
        "name": "proFit 0.6 ForkRunner, default sleep",
        "runner": "fork",
        "sleep": None,
        "max_runs": None,
        "max_latency_runs": None,
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
        "max_runs": LOCAL_MAX_RUNS,
        "max_latency_runs": LOCAL_MAX_LATENCY_RUNS,
    },
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


# --- proFit 0.6 ------------------------------------------------------------------------


def describe_profit06(raw: dict[str, Any]) -> str:
    """The note of a proFit 0.6 mode; with its command worker, wrong outputs and a failed clean-up matter too."""
    return f"{raw['note']}; done {raw['completed']}/{raw['total']}, wrong {raw.get('wrong', '?')}; no warm-up" + (
        f"; its runner.clean() failed: {raw['clean_error']}" if raw.get("clean_error") else ""
    )


# --- report ----------------------------------------------------------------------------


PAIRS = [
    ("ours_fork", "profit06_fork_default"),
    ("ours_fork", "profit06_fork_1ms"),
    ("ours_local", "profit06_local_default"),
]


def print_report(
    machine: dict[str, Any], results: list[Result], ratios: list[dict[str, Any]], settings: dict[str, Any]
) -> None:
    print_preamble(
        f"Command-worker benchmark: template copy + `{COMMAND}` (awk: f = u + v) + numpytxt, "
        f"parallel = {PARALLEL}, {WARMUP_RUNS} warm-up runs per phase not counted (ours; not proFit 0.6)",
        machine,
        settings,
    )
    print_table(
        results,
        [("÷proFit", 8, profit06_peer)],
        "÷proFit: our runs/s divided by proFit 0.6's (same runner kind, default sleep)",
    )

    if ratios:  # none without --no-profit06's baseline: then the section is left out
        print_ratios(
            "ratios, ours ÷ proFit 0.6 (speed = runs/s ratio, >1: ours faster; latency = ms ratio, <1: ours faster)",
            results,
            ratios,
            widths=(42, 38),
        )


# --- main ------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(__doc__.splitlines()[0], 300, 30, argv)

    machine = machine_info()
    root = tempfile.mkdtemp(prefix="bench-command-")
    results: list[Result] = []
    try:
        template = make_template(root)
        worker = worker_config(template)
        local_runs = min(args.runs, LOCAL_MAX_RUNS)
        local_latency_runs = min(args.latency_runs, LOCAL_MAX_LATENCY_RUNS)
        # Every run is an external program here, so a run that did not end DONE is
        # worth a count of its own in the notes (report_done).
        steps: list[tuple[str, Callable[[], Result]]] = [
            (
                "ForkRunner + command worker",
                lambda: measure_ours(
                    "fork",
                    "ours: ForkRunner + command + memmap",
                    args.runs,
                    args.latency_runs,
                    root,
                    worker=worker,
                    warmup_runs=WARMUP_RUNS,
                    report_done=True,
                ),
            ),
            (
                "LocalRunner + command worker",
                lambda: measure_ours(
                    "local",
                    "ours: LocalRunner + command + memmap *",
                    local_runs,
                    local_latency_runs,
                    root,
                    worker=worker,
                    warmup_runs=WARMUP_RUNS,
                    report_done=True,
                    note=f"* fewer runs: min(N, {LOCAL_MAX_RUNS}) / min(M, {LOCAL_MAX_LATENCY_RUNS}); "
                    "each run is a new profit-worker process via the shell",
                ),
            ),
        ]
        for label, step in steps:
            print(f"measuring ours: {label} ...", flush=True)
            results.append(step())
        if not args.no_profit06:
            print("measuring proFit 0.6 (its venv is created on first use, which may take a minute) ...", flush=True)
            results.extend(
                measure_profit06_modes(
                    args.runs,
                    args.latency_runs,
                    modes=PROFIT06_MODES,
                    timeout=240,
                    worker=worker,
                    describe=describe_profit06,
                )
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)

    by_key = {result.key: result for result in results}
    ratios = compute_ratios(by_key, PAIRS)
    settings = {
        "runs": args.runs,
        "latency_runs": args.latency_runs,
        "parallel": PARALLEL,
        "warmup_runs": WARMUP_RUNS,
        "command": COMMAND,
        "profit06": not args.no_profit06,
    }
    print_report(machine, results, ratios, settings)
    return finish(results, machine, settings, args.json, ratios=ratios)


if __name__ == "__main__":
    sys.exit(main())
