"""Benchmark: the slurm runner (one job per run, and packed) and the dask runner on SLURMCluster,
against bare job arrays, on the same Slurm cluster (``make slurm`` starts a single-node one).

Two workloads of N runs each (default 1000): a trivial Python function (``f = u + v``) and one
that sleeps 0.1 s. For each, in one invocation:

* baseline ``sbatch --array=0-N-1 --wrap true`` (``sleep 0.1``): Slurm's own floor for one task
  per run, and ``--wrap 'srun true'`` (with the job step the runner's batch script has);
* ours, one job per run: ``Runner["slurm"]`` (memmap), as before packing;
* ours, packed: ``runs_per_job: auto`` (the runs spread over as many array tasks as the
  cluster has CPUs, ``sinfo``), each task forking its runs from a prepared loop;
* ours, Dask: ``Runner["dask"]`` on a ``dask_jobqueue.SLURMCluster`` of one single-core Dask
  worker per CPU, each a Slurm job (its start-up is timed apart; the workers are up when the
  runs are timed, as they are for a study that uses a running cluster);
* ideal for the sleeping runs: runs x 0.1 s / slots.

Each figure is the wall time from submission until every run has ended and its output is
checked (for the baselines: until ``squeue`` lists none of the tasks), as runs per second,
with ratios against one job per run of the same invocation.

Usage::

    python benchmarks/bench_slurm.py [--runs N] [--skip-one-per-job]
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
    import time

    from profit.run import Worker


    @Worker.wrap("bench_slurm_sum")
    def f(u, v):
        return u + v


    @Worker.wrap("bench_slurm_sleep", inputs=["u", "v"], outputs="f")
    def g(u, v):
        time.sleep(0.1)
        return u + v
    """
)
WORKLOADS = {"trivial": ("bench_slurm_sum", "true", 0.0), "sleep 0.1 s": ("bench_slurm_sleep", "sleep 0.1", 0.1)}


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


def ours(runs: int, worker: str, work_dir: str, label: str = "slurm", **options: object) -> tuple[float, bool]:
    """Seconds for ``spawn_array(..., wait=True)`` of ``runs`` runs, and whether every output is right."""
    from profit.run import Runner

    rng = np.random.default_rng(2026)
    rows = np.zeros(runs, dtype=[("u", "f8"), ("v", "f8")])
    rows["u"], rows["v"] = rng.uniform(size=runs), rng.uniform(size=runs)
    runner = Runner[label](
        interface={"class": "memmap", "size": runs, "input_config": {"u": {}, "v": {}}, "output_config": {"f": {}}},
        worker=worker,
        work_dir=work_dir,
        **options,
    )
    try:
        start = time.perf_counter()
        runner.spawn_array(rows, wait=True)
        elapsed = time.perf_counter() - start
        correct = not runner.failed and np.array_equal(runner.interface.output["f"][:runs], rows["u"] + rows["v"])
    finally:
        runner.close()
    return elapsed, bool(correct)


def slurm_cpus() -> int:
    out = subprocess.run(["sinfo", "-h", "-o", "%C"], capture_output=True, text=True, check=True).stdout
    return sum(int(line.split("/")[-1]) for line in out.split())


def start_dask_cluster(workers: int, root: str):  # -> (SLURMCluster, seconds until its workers are up)
    from dask_jobqueue import SLURMCluster
    from distributed import Client

    start = time.perf_counter()
    cluster = SLURMCluster(
        cores=1,
        processes=1,
        memory="1GB",
        walltime="01:00:00",
        python=sys.executable,
        log_directory=os.path.join(root, "dask-logs"),
        local_directory=os.path.join(root, "dask-local"),
        job_extra_directives=["--job-name=bench-dask"],
    )
    cluster.scale(workers)
    with Client(cluster, set_as_default=False) as client:
        client.wait_for_workers(workers, timeout=300)
    return cluster, time.perf_counter() - start


def slurm_modes(args: argparse.Namespace, worker: str, command: str) -> list:
    """The modes measured on Slurm itself: (name, work_dir -> (seconds, correct or None))."""
    runs = args.runs
    modes = [
        (f"baseline: sbatch --array, {command}", lambda d: (bare_array(runs, command, d), None)),
        (f"baseline: sbatch --array, srun {command}", lambda d: (bare_array(runs, f"srun {command}", d), None)),
    ]
    if not args.skip_one_per_job:
        modes.append(("ours: slurm, one job per run", lambda d: ours(runs, worker, d, min_poll=0.2)))
    modes.append(("ours: slurm, runs_per_job auto", lambda d: ours(runs, worker, d, min_poll=0.2, runs_per_job="auto")))
    return modes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--skip-one-per-job", action="store_true", help="(slow: about 80 s per workload)")
    args = parser.parse_args(argv)
    if shutil.which("sbatch") is None:
        print("no Slurm commands on PATH: start a local cluster with 'make slurm'", file=sys.stderr)
        return 2
    slots = slurm_cpus()
    root = tempfile.mkdtemp(prefix="bench-slurm-", dir=os.path.expanduser("~"))
    results: dict[str, list[tuple[str, float, bool | None]]] = {}
    cluster = None
    try:
        worker_file = os.path.join(root, "bench_slurm_worker.py")
        with open(worker_file, "w") as file:
            file.write(WORKER_SOURCE)
        from profit.run.includes import load_includes

        load_includes([worker_file])
        for workload, (worker, command, _) in WORKLOADS.items():
            rows = results[workload] = []
            for name, measure in slurm_modes(args, worker, command):
                print(f"{workload}: measuring {name} ...", flush=True)
                seconds, correct = measure(tempfile.mkdtemp(dir=root))
                rows.append((name, seconds, correct))
        # The Dask workers hold the cluster's CPUs while they live: measured last, on their own.
        try:
            cluster, dask_start = start_dask_cluster(slots, root)
        except ImportError:
            print("dask_jobqueue is not installed: no Dask figures (pip install 'profit-run[jobqueue]')")
        else:
            print(f"SLURMCluster: {slots} Dask workers (Slurm jobs) up in {dask_start:.1f} s", flush=True)
            for workload, (worker, _, _) in WORKLOADS.items():
                print(f"{workload}: measuring ours: dask on SLURMCluster ...", flush=True)
                work_dir = tempfile.mkdtemp(dir=root)
                address = cluster.scheduler_address
                seconds, correct = ours(args.runs, worker, work_dir, "dask", scheduler=address, parallel=0)
                results[workload].append(("ours: dask on SLURMCluster", seconds, correct))
    finally:
        if cluster is not None:
            cluster.close()
        shutil.rmtree(root, ignore_errors=True)

    print(f"\n{args.runs} runs per mode and workload on the cluster that 'sinfo' shows here ({slots} CPUs)")
    for workload, rows in results.items():
        duration = WORKLOADS[workload][2]
        reference = next((seconds for name, seconds, _ in rows if "one job per run" in name), None)
        print(f"\n{workload}")
        print(f"{'mode':42s} {'seconds':>8s} {'runs/s':>8s} {'correct':>8s} {'÷one job/run':>13s}")
        for name, seconds, correct in rows:
            shown = "-" if correct is None else ("yes" if correct else "NO")
            ratio = f"{reference / seconds:12.1f}x" if reference else f"{'-':>13s}"
            print(f"{name:42s} {seconds:8.2f} {args.runs / seconds:8.1f} {shown:>8s} {ratio}")
        if duration:
            ideal = args.runs * duration / slots
            print(f"{'ideal: runs x duration / slots':42s} {ideal:8.2f} {args.runs / ideal:8.1f}")
            for name, seconds, correct in rows:
                if name.startswith("ours"):
                    print(f"  {name}: {seconds / ideal:.2f}x the ideal time")
    print("\n÷one job/run: that mode's runs/s divided by one job per run's (>1: faster)")
    return 0 if all(correct is not False for rows in results.values() for _, _, correct in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
