"""Benchmark: the slurm runner against bare job arrays on the same Slurm cluster.

What does profit add to a job array? Three ways to run N trivial tasks, one
after the other on the same cluster (``make slurm`` starts a single-node one):

* baseline ``sbatch --array=0-N-1 --wrap true``: Slurm's own floor;
* baseline ``sbatch --array=0-N-1 --wrap 'srun true'``: the same with a job
  step, which the slurm runner's default command (``srun profit-worker``) has;
* ours: ``Runner["slurm"]`` with the memmap and with the zeromq interface,
  ``spawn_array`` of N runs of ``f = u + v``, outputs checked; and packed
  (``runs_per_job`` = N/4: four array tasks, each serving a quarter of the runs).

Each figure is the wall time from submission until every task has ended
(for the baselines: until ``squeue`` lists none of them), as runs per second,
with ratios against the baselines of the same invocation.

Usage::

    python benchmarks/bench_slurm.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time

import numpy as np

WORKER_SOURCE = textwrap.dedent(
    """\
    from profit.run import Worker


    @Worker.wrap("bench_slurm_sum")
    def f(u, v):
        return u + v
    """
)


def bare_array(runs: int, command: str, work_dir: str) -> float:
    """Seconds from ``sbatch`` until no task of the array is queued or running."""
    start = time.perf_counter()
    job = (
        subprocess.run(
            ["sbatch", "--parsable", f"--array=0-{runs - 1}", "--output=/dev/null", "--wrap", command],
            capture_output=True,
            text=True,
            check=True,
            cwd=work_dir,
        )
        .stdout.strip()
        .split(";")[0]
    )
    while subprocess.run(["squeue", "-h", "-j", job], capture_output=True, text=True).stdout.strip():
        time.sleep(0.05)
    return time.perf_counter() - start


def ours(runs: int, interface: str, work_dir: str, runs_per_job: int = 1) -> tuple[float, bool]:
    """Seconds for ``spawn_array(..., wait=True)`` of ``runs`` runs, and whether every output is right."""
    from profit.run import Runner

    rng = np.random.default_rng(2026)
    rows = np.zeros(runs, dtype=[("u", "f8"), ("v", "f8")])
    rows["u"], rows["v"] = rng.uniform(size=runs), rng.uniform(size=runs)
    runner = Runner["slurm"](
        interface={"class": interface, "size": runs, "input_config": {"u": {}, "v": {}}, "output_config": {"f": {}}},
        worker="bench_slurm_sum",
        work_dir=work_dir,
        min_poll=0.2,
        runs_per_job=runs_per_job,
    )
    try:
        start = time.perf_counter()
        runner.spawn_array(rows, wait=True)
        elapsed = time.perf_counter() - start
        correct = not runner.failed and np.array_equal(runner.interface.output["f"][:runs], rows["u"] + rows["v"])
    finally:
        runner.close()
    return elapsed, bool(correct)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    args = parser.parse_args(argv)
    if shutil.which("sbatch") is None:
        print("no Slurm commands on PATH: start a local cluster with 'make slurm'", file=sys.stderr)
        return 2
    root = tempfile.mkdtemp(prefix="bench-slurm-", dir=os.path.expanduser("~"))
    try:
        worker_file = os.path.join(root, "bench_slurm_worker.py")
        with open(worker_file, "w") as file:
            file.write(WORKER_SOURCE)
        from profit.run.includes import load_includes

        load_includes([worker_file])
        packed = max(1, args.runs // 4)  # (four array tasks, each serving a quarter of the runs)
        rows = []
        for name, measure in [
            ("baseline: sbatch --array, true", lambda d: (bare_array(args.runs, "true", d), None)),
            ("baseline: sbatch --array, srun true", lambda d: (bare_array(args.runs, "srun true", d), None)),
            ("ours: slurm runner + memmap", lambda d: ours(args.runs, "memmap", d)),
            ("ours: slurm runner + zeromq", lambda d: ours(args.runs, "zeromq", d)),
            (f"ours: memmap, runs_per_job={packed}", lambda d: ours(args.runs, "memmap", d, packed)),
        ]:
            print(f"measuring {name} ...", flush=True)
            seconds, correct = measure(tempfile.mkdtemp(dir=root))
            rows.append((name, seconds, correct))
    finally:
        shutil.rmtree(root, ignore_errors=True)

    bare, with_step = rows[0][1], rows[1][1]
    print(
        f"\n{args.runs} trivial tasks per mode, submitted at once (one job array), on the cluster "
        f"that 'sinfo' shows here\n"
    )
    print(f"{'mode':40s} {'seconds':>8s} {'runs/s':>8s} {'correct':>8s} {'÷true':>7s} {'÷srun':>7s}")
    for name, seconds, correct in rows:
        shown = "-" if correct is None else ("yes" if correct else "NO")
        print(
            f"{name:40s} {seconds:8.2f} {args.runs / seconds:8.1f} {shown:>8s} "
            f"{bare / seconds:6.2f}x {with_step / seconds:6.2f}x"
        )
    print("\n÷true, ÷srun: our runs/s divided by the bare array's (>1: ours faster)")
    return 0 if all(correct is not False for _, _, correct in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
