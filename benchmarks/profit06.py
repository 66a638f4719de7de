"""Baseline: the old proFit 0.6 run system, measured through its own Python API.

proFit 0.6 (PyPI ``profit==0.6``) is the release our run system replaces. To
compare like with like, this module installs it into a private virtual
environment and drives its ``ForkRunner`` / ``LocalRunner`` with the memmap
interface (or, on request, its ZeroMQ interface) and a ``Worker.wrap``-ed
function ``f = u + v``, in a subprocess that uses the venv's interpreter.

Why a separate venv and subprocess: our package is also called ``profit``, and
proFit 0.6 pins ``numpy<1.24``, so the two cannot share an interpreter.

Only the standard library is used here; numpy and proFit live in the venv.

Usage::

    python3 benchmarks/profit06.py --runs 200 [--interface zeromq]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import venv

HERE = pathlib.Path(__file__).resolve().parent
DEFAULT_VENV = HERE / ".venv-profit06"

# proFit itself is installed with --no-deps: its declared dependencies pull in
# GPy, chaospy, dash, matplotlib, ... none of which the run system needs.
# These are what `profit.run.{local,runner,worker,interface}` really import at
# import time (found by trying): profit/__init__ imports profit.config (yaml),
# and profit/run/__init__ imports profit.run.zeromq (zmq, i.e. pyzmq).
# tqdm is imported lazily by Runner.spawn_array / wait_all.
PROFIT_REQUIREMENT = "profit==0.6"
DEPENDENCIES = ["numpy<1.24", "PyYAML", "tqdm", "pyzmq"]

# Modules that must import for the venv to count as working.
PROBE_CODE = (
    "import importlib.metadata as m, sys, profit, profit.run.local, "
    "profit.run.runner, profit.run.worker, profit.run.interface, tqdm, yaml; "
    "assert m.version('profit') == '0.6', m.version('profit'); "
    "assert profit.__file__.startswith(sys.prefix), profit.__file__"
)

RESULT_MARKER = "PROFIT06_RESULT "

# The worker lives in its own file because LocalRunner starts each run as a
# fresh `profit-worker` process: proFit 0.6's Worker.from_env() only knows
# user-defined workers if it loads them from the files listed (as a JSON list)
# in PROFIT_INCLUDES, via profit.util.load_includes.
WORKER_LABEL = "profit06_bench_add"
WORKER_SOURCE = f'''\
"""f = u + v as a proFit 0.6 worker (loaded through PROFIT_INCLUDES)."""

from profit.run import Worker


# Worker.wrap(label, outputs, inputs) registers a Worker subclass under `label`.
@Worker.wrap("{WORKER_LABEL}", "f", ["u", "v"])
def add(u, v):
    return u + v
'''

# Runs inside the proFit 0.6 venv. Argument: a JSON object with the settings.
# Prints one line: RESULT_MARKER + JSON.
DRIVER_SOURCE = textwrap.dedent(
    f'''\
    """Drive proFit 0.6's ForkRunner/LocalRunner and report timings as JSON."""

    import importlib.metadata
    import json
    import os
    import statistics
    import sys
    import time

    import numpy as np

    import profit
    from profit.util import load_includes

    cfg = json.loads(sys.argv[1])

    # Guard against importing the wrong `profit` (ours has the same name).
    version = importlib.metadata.version("profit")
    if version != "0.6" or not profit.__file__.startswith(sys.prefix):
        raise SystemExit(f"wrong profit imported: {{version}} at {{profit.__file__}}")

    # LocalRunner copies os.environ into each worker process, so setting it
    # here is enough for `profit-worker` to load the wrapped worker.
    os.environ["PROFIT_INCLUDES"] = json.dumps([cfg["worker_file"]])
    # The runner process needs the label registered too (ForkRunner's forked
    # children simply inherit this registry).
    load_includes([cfg["worker_file"]])

    from profit.run.local import ForkRunner, LocalRunner

    n_runs = cfg["n_runs"]
    latency_runs = cfg["latency_runs"]
    total = n_runs + latency_runs

    # One interface big enough for both phases: MemmapRunnerInterface.resize
    # rewrites the file with zeros, which would wipe earlier results.
    # cfg["interface"]: the interface's class and options (memmap if not given).
    interface = {{
        **(cfg.get("interface") or {{"class": "memmap"}}),
        "size": total,
        "input_config": {{"u": {{"dtype": np.float64}}, "v": {{"dtype": np.float64}}}},
        "output_config": {{"f": {{"dtype": np.float64, "size": (1, 1)}}}},
    }}
    kwargs = {{
        "interface": interface,
        # cfg["worker"]: a worker config (the command worker, say); default: the wrapped f = u + v.
        "worker": cfg.get("worker") or {{"class": "{WORKER_LABEL}"}},
        "work_dir": cfg["work_dir"],
        "parallel": cfg["parallel"],
    }}
    if cfg["sleep"] is not None:
        kwargs["sleep"] = cfg["sleep"]
    if cfg["runner"] == "local":
        # Absolute path: never pick up another `profit-worker` from PATH
        # (our own package installs a console script of the same name).
        kwargs["command"] = cfg["worker_command"]
        runner = LocalRunner(**kwargs)
    else:
        runner = ForkRunner(**kwargs)

    rng = np.random.default_rng(cfg["seed"])
    u_sent = np.full(total, np.nan)
    v_sent = np.full(total, np.nan)

    # (a) throughput: one batch, proFit throttles to `parallel` at a time.
    batch = np.zeros(n_runs, dtype=[("u", np.float64), ("v", np.float64)])
    batch["u"] = rng.random(n_runs)
    batch["v"] = rng.random(n_runs)
    first_id = runner.next_run_id
    u_sent[first_id:first_id + n_runs] = batch["u"]
    v_sent[first_id:first_id + n_runs] = batch["v"]
    start = time.perf_counter()
    runner.spawn_array(batch, wait=True)
    throughput_wall = time.perf_counter() - start

    # (b) latency: one blocking run at a time.
    latencies = []
    for _ in range(latency_runs):
        run_id = runner.next_run_id
        u, v = float(rng.random()), float(rng.random())
        u_sent[run_id], v_sent[run_id] = u, v
        start = time.perf_counter()
        runner.spawn({{"u": u, "v": v}}, wait=True)
        latencies.append(time.perf_counter() - start)

    # (c) correctness against what we sent, not against what the interface
    # holds, so lost or mixed-up inputs would show up as well.
    done = np.asarray(runner.interface.internal["DONE"], dtype=bool)
    f = np.asarray(runner.interface.output["f"], dtype=np.float64)
    completed = int(done.sum())
    # Same float64 addition on both sides, so exact equality is expected.
    correct = completed > 0 and bool(np.all(f[done] == u_sent[done] + v_sent[done]))
    wrong = int(np.count_nonzero(f[done] != u_sent[done] + v_sent[done]))

    result = {{
        "runs_per_s": n_runs / throughput_wall,
        "latency_s": statistics.median(latencies) if latencies else float("nan"),
        "completed": completed,
        "total": total,
        "failed": len(runner.failed),
        "wrong": wrong,
        "correct": correct,
        "sleep": runner.sleep,
        "parallel": runner.parallel,
        "profit_version": version,
    }}
    # proFit 0.6 sets DONE before a worker has finished (the command worker
    # removes its run directory after transmit()), so workers may still be
    # tidying up: wait for them, and never let clean() lose the figures.
    import multiprocessing

    for child in multiprocessing.active_children():
        child.join(timeout=30)
    try:
        runner.clean()
    except OSError as error:
        result["clean_error"] = f"{{type(error).__name__}}: {{error}}"
    print("{RESULT_MARKER}" + json.dumps(result), flush=True)
    '''
)


def _venv_python(venv_dir: pathlib.Path) -> pathlib.Path:
    """Path of the interpreter inside ``venv_dir`` (POSIX layout)."""
    return venv_dir / "bin" / "python"


def _clean_env(venv_dir: pathlib.Path | None = None) -> dict[str, str]:
    """Environment for venv subprocesses.

    PYTHONPATH/PYTHONHOME are dropped so that a PYTHONPATH pointing at our own
    ``src`` (package also named ``profit``) cannot shadow proFit 0.6. With
    ``venv_dir`` the venv is "activated" (bin first on PATH), as proFit expects.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    if venv_dir is not None:
        env["VIRTUAL_ENV"] = str(venv_dir)
        env["PATH"] = str(venv_dir / "bin") + os.pathsep + env.get("PATH", "")
    return env


def _tail(text: str, limit: int = 300) -> str:
    """Last non-empty line(s) of ``text`` squeezed into one short line."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    tail = " | ".join(lines[-3:])
    return tail[-limit:] if tail else "(no output)"


def _venv_works(python: pathlib.Path) -> bool:
    """True if ``python`` exists and imports proFit 0.6's run modules."""
    if not python.exists():
        return False
    try:
        probe = subprocess.run(
            [str(python), "-c", PROBE_CODE],
            capture_output=True,
            text=True,
            timeout=120,
            env=_clean_env(python.parent.parent),
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return probe.returncode == 0


def _pip(python: pathlib.Path, args: list[str], timeout: float = 900) -> str:
    """Run ``python -m pip install ARGS``; return "" on success or a note."""
    cmd = [
        str(python),
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--no-input",
        # Fail fast without network instead of pip's long retry back-off.
        "--retries",
        "1",
        "--timeout",
        "30",
        *args,
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_clean_env())
    except subprocess.TimeoutExpired:
        return f"pip install {' '.join(args)} timed out after {timeout:.0f} s"
    except OSError as exc:
        return f"pip could not start: {exc}"
    if proc.returncode != 0:
        return f"pip install {' '.join(args)} failed: {_tail(proc.stderr or proc.stdout)}"
    return ""


def profit06_python(venv_dir: pathlib.Path | None = None) -> tuple[pathlib.Path | None, str]:
    """Ensure a venv with proFit 0.6 and return its interpreter.

    The venv (default ``benchmarks/.venv-profit06``) is reused when it already
    imports proFit 0.6's run modules; otherwise it is (re)created and filled
    with ``pip install --no-deps profit==0.6`` plus the few packages those
    modules import.

    Returns:
        ``(python, "")`` on success, ``(None, "one-line reason")`` otherwise.
        Never raises.
    """
    try:
        venv_dir = pathlib.Path(venv_dir or DEFAULT_VENV).resolve()
        python = _venv_python(venv_dir)
        if _venv_works(python):
            return python, ""

        if venv_dir.exists() and any(venv_dir.iterdir()):
            if not (venv_dir / "pyvenv.cfg").exists():
                # Refuse to wipe a directory that is not a venv.
                return None, f"{venv_dir} exists and is not a virtual environment"
        if not python.exists():
            # clear=True only ever touches a venv (checked above) or an empty dir.
            venv.EnvBuilder(with_pip=True, clear=True, symlinks=True).create(venv_dir)

        # proFit without its heavy dependency list (GPy, dash, ...).
        note = _pip(python, ["--no-deps", PROFIT_REQUIREMENT])
        if note:
            return None, note
        # Wheels only: numpy<1.24 has no wheel past Python 3.11, and building
        # it from source would take many minutes before failing anyway.
        note = _pip(python, ["--only-binary=:all:", *DEPENDENCIES])
        if note:
            return None, note

        if not _venv_works(python):
            return None, f"proFit 0.6 installed in {venv_dir} but its run modules do not import"
        return python, ""
    except Exception as exc:  # the benchmark must degrade to a note, never crash
        return None, f"could not set up proFit 0.6 venv: {type(exc).__name__}: {exc}"


def free_port() -> int:
    """A TCP port on loopback that was free a moment ago (bound to port 0, then closed).

    proFit 0.6's ZeroMQ interface binds a fixed port (default 9000) and cannot
    pick a free one itself; a port that something else took in between makes
    the mode fail, which the benchmark reports like any other failure.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def interface_config(interface: str | dict | None) -> dict:
    """proFit 0.6's interface config (without size and variables) for ``interface``.

    ``None`` or ``"memmap"``: the memmap interface. ``"zeromq"`` (or a dict with
    ``"class": "zeromq"``): proFit 0.6's ZeroMQ interface on loopback and a free
    port; options given in the dict win. proFit's defaults otherwise (timeout
    4 s, retries 3, retry_sleep 1 s). Without ``bind`` proFit 0.6 binds
    ``tcp://*:PORT`` (every interface), so the runner is bound to loopback here.
    """
    config = {"class": interface} if isinstance(interface, str) else dict(interface or {"class": "memmap"})
    if config.get("class") == "zeromq":
        port = config.get("port") or free_port()
        config = {"transport": "tcp", "address": "127.0.0.1", "port": port, "bind": f"tcp://127.0.0.1:{port}", **config}
    return config


def measure_profit06(
    n_runs: int,
    runner: str,
    *,
    sleep: float | None = None,
    parallel: int = 2,
    latency_runs: int = 50,
    timeout: float = 600,
    worker: dict | None = None,
    interface: str | dict | None = None,
) -> dict:
    """Measure proFit 0.6's ForkRunner or LocalRunner on ``f = u + v``.

    Runs a driver script with the proFit 0.6 venv's interpreter in a fresh
    temporary directory. It measures

    * throughput: ``spawn_array`` of ``n_runs`` random ``(u, v)`` with
      ``wait=True``; runs per second of wall time;
    * latency: median seconds of ``spawn(params, wait=True)`` over
      ``latency_runs`` single runs;
    * correctness: ``f == u + v`` for every completed run.

    Args:
        n_runs: runs in the throughput batch.
        runner: ``"fork"`` (ForkRunner) or ``"local"`` (LocalRunner).
        sleep: proFit's polling interval in seconds; None keeps proFit's default.
        parallel: maximum concurrent runs.
        latency_runs: number of single blocking runs for the latency median.
        timeout: seconds before the driver subprocess is killed.
        worker: proFit 0.6 worker config (JSON-serialisable mapping) that
            computes ``f = u + v``; None: the ``Worker.wrap``-ed function.
        interface: ``"memmap"`` (None, the default) or ``"zeromq"``, or a dict
            of proFit 0.6 interface options (see :func:`interface_config`).

    Returns:
        ``{"runs_per_s", "latency_s", "completed", "correct", "note", ...}``
        or ``{"skipped": "one-line reason"}``. Never raises.
    """
    try:
        if runner not in ("fork", "local"):
            return {"skipped": f"unknown runner {runner!r} (expected 'fork' or 'local')"}
        python, note = profit06_python()
        if python is None:
            return {"skipped": note}
        venv_dir = python.parent.parent
        iface = interface_config(interface)
        mode = runner if iface["class"] == "memmap" else f"{runner} + {iface['class']}"

        with tempfile.TemporaryDirectory(prefix="profit06-bench-") as tmp:
            tmp_path = pathlib.Path(tmp)
            worker_file = tmp_path / "profit06_worker.py"
            worker_file.write_text(WORKER_SOURCE)
            driver_file = tmp_path / "profit06_driver.py"
            driver_file.write_text(DRIVER_SOURCE)
            # proFit 0.6's Runner tries `os.path.mkdir` for a missing work_dir
            # (which does not exist), so the directory must be there already.
            work_dir = tmp_path / "work"
            work_dir.mkdir()
            cfg = {
                "runner": runner,
                "n_runs": int(n_runs),
                "latency_runs": int(latency_runs),
                "parallel": int(parallel),
                "sleep": sleep,
                "seed": 2024,
                "work_dir": str(work_dir),
                "worker_file": str(worker_file),
                "worker_command": str(venv_dir / "bin" / "profit-worker"),
                "worker": worker,
                "interface": iface,
            }
            # Own session so a timeout can kill the driver together with the
            # worker processes it started (LocalRunner spawns shells).
            proc = subprocess.Popen(
                [str(python), str(driver_file), json.dumps(cfg)],
                cwd=tmp,
                env=_clean_env(venv_dir),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
            try:
                stdout, stderr = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)  # our own process group only
                except ProcessLookupError:
                    pass
                stdout, stderr = proc.communicate()
                return {"skipped": f"proFit 0.6 {mode} timed out after {timeout:.0f} s: {_tail(stderr)}"}

        lines = [line for line in stdout.splitlines() if line.startswith(RESULT_MARKER)]
        if proc.returncode != 0 or not lines:
            return {"skipped": f"proFit 0.6 {mode} failed (exit {proc.returncode}): {_tail(stderr)}"}
        result = json.loads(lines[-1][len(RESULT_MARKER) :])
        result["note"] = (
            f"proFit {result.pop('profit_version')} "
            f"{'ForkRunner' if runner == 'fork' else 'LocalRunner'}, {iface['class']}"
            + (
                f" (port {iface.get('port')}, timeout {iface.get('timeout', 4)} s, retries {iface.get('retries', 3)}, "
                f"retry_sleep {iface.get('retry_sleep', 1)} s)"
                if iface["class"] == "zeromq"
                else ""
            )
            + ", "
            + (f"{worker.get('class', '?')} worker, " if worker else "")
            + f"parallel={result.pop('parallel')}, sleep={result.pop('sleep')} s"
            + ("" if sleep is not None else " (proFit default)")
        )
        return result
    except Exception as exc:  # report, never crash the surrounding benchmark
        return {"skipped": f"proFit 0.6 {runner} error: {type(exc).__name__}: {exc}"}


def _fmt(value: object, spec: str) -> str:
    """Format a number for the table, '-' if missing or NaN."""
    if not isinstance(value, (int, float)) or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def main(argv: list[str] | None = None) -> int:
    """Print proFit 0.6 figures for fork/local at default sleep and 1 ms (memmap or zeromq interface)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="runs in the throughput batch")
    parser.add_argument("--latency-runs", type=int, default=50, help="single runs for the latency median")
    parser.add_argument("--parallel", type=int, default=2, help="maximum concurrent runs")
    parser.add_argument(
        "--interface",
        choices=("memmap", "zeromq"),
        default="memmap",
        help="proFit 0.6's interface (zeromq: loopback, a free port)",
    )
    args = parser.parse_args(argv)

    python, note = profit06_python()
    if python is None:
        print(f"proFit 0.6 baseline skipped: {note}")
        return 0

    header = f"{'runner':<7} {'sleep':>8} {'runs/s':>9} {'latency ms':>11} {'done':>9} {'correct':>7}  note"
    print(header)
    print("-" * len(header))
    for runner in ("fork", "local"):
        for sleep in (None, 0.001):
            res = measure_profit06(
                args.runs,
                runner,
                sleep=sleep,
                parallel=args.parallel,
                latency_runs=args.latency_runs,
                interface=args.interface,
            )
            label = "default" if sleep is None else f"{sleep:g}"
            if "skipped" in res:
                print(f"{runner:<7} {label:>8} {'skipped: ' + res['skipped']}")
                continue
            latency_ms = res["latency_s"] * 1000 if isinstance(res.get("latency_s"), float) else None
            done = f"{res['completed']}/{res.get('total', '?')}"
            print(
                f"{runner:<7} {label:>8} {_fmt(res['runs_per_s'], '9.1f')} "
                f"{_fmt(latency_ms, '11.1f')} {done:>9} {str(res['correct']):>7}  {res['note']}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
