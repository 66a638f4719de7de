"""The task loop of a packed Slurm array task: many runs, one after another.

A :class:`~profit.run.slurm.SlurmRunner` with ``runs_per_job`` > 1 starts
``python -m profit.run.packed`` (through ``srun``) in each array task. The task
reads its runs from ``$PROFIT_PACK_DIR/tasks.json`` (task ``$PROFIT_ARRAY_ID``)
and runs each in a process of its own, forked from this one once it imported
the worker's machinery and the include files (:mod:`profit.run.runfork`: no
interpreter start per run), or, where the study gives its own worker command,
that command with ``PROFIT_RUN_ID`` set. A failing run fails alone. For each run it leaves, in the pack
directory, ``<run>.start`` before the worker starts and ``<run>.end`` (JSON:
``code`` or ``signal``, and ``timed_out``, ``cancelled`` or ``refused``) once it
ended. The runner learns results through the interface as from any worker and
reads the files for how the others ended, and which runs a job that ended early
left unstarted. A run with a timeout is ended (its process group: SIGTERM, then
SIGKILL) when its time is up; a ``<run>.cancel`` file (the runner's cancel of
one run) ends or skips it. Where the job's end time is known
(``SLURM_JOB_END_TIME``, else ``squeue``), a run that could not finish within
its timeout before then is not started.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from ._proc import ChildProcess
from .runfork import prepare, start_run

TASKS_FILE = "tasks.json"
_child: ChildProcess | None = None


def write_json(path: str, data: object) -> None:
    """Write ``data`` to ``path`` whole (a reader never sees half of it).

    Args:
        path: The file.
        data: What is written (as JSON).
    """
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w") as file:
        json.dump(data, file)
    os.replace(temporary, path)


def job_end_time(env: dict[str, str]) -> float | None:
    """When the job's time limit ends (seconds since the epoch), where Slurm tells; else None.

    Args:
        env: The job's environment.
    """
    value = env.get("SLURM_JOB_END_TIME", "")
    if value.isdigit():
        return float(value)
    job = env.get("SLURM_JOB_ID")
    if not job:
        return None
    try:
        out = subprocess.run(["squeue", "-h", "-j", job, "-o", "%e"], capture_output=True, text=True, timeout=30)
        return time.mktime(time.strptime(out.stdout.strip(), "%Y-%m-%dT%H:%M:%S"))
    except (OSError, subprocess.SubprocessError, ValueError, OverflowError):
        return None  # no limit ('N/A', 'Unknown'), or squeue is not there


def _stop(process: ChildProcess, grace: float = 1.0) -> None:
    """End the run's process group: SIGTERM, then SIGKILL after ``grace`` seconds."""
    process.signal_tree(signal.SIGTERM)
    if process.wait(grace) is None:
        process.signal_tree(signal.SIGKILL)
        process.wait()


def _on_term(signum: int, frame: object) -> None:
    """The job is being ended (scancel, its time limit): end the run in flight with it."""
    if _child is not None and _child.status is None:
        _stop(_child, grace=0.5)
    sys.exit(128 + signum)


def start_program(argv: list[str], run_id: int, env: dict[str, str]) -> ChildProcess:
    """Start the run as a program of its own (a custom worker command), in a session of its own.

    Args:
        argv: The worker command.
        run_id: The run.
        env: The environment of the task.
    """
    process = subprocess.Popen(argv, env={**env, "PROFIT_RUN_ID": str(run_id)}, start_new_session=True)
    return ChildProcess(process.pid, process)


def run_one(process: ChildProcess, timeout: float | None, cancel_path: str) -> dict:
    """Wait for a run's process; return how it ended (for its ``.end`` file).

    Args:
        process: The run's process.
        timeout: The run's timeout in seconds (None: none).
        cancel_path: A file whose appearance cancels the run.
    """
    global _child
    _child = process
    started = time.monotonic()
    try:
        while True:
            status = process.wait(0.1)
            if status is not None:
                return {"signal": status.signal} if status.signal is not None else {"code": status.code}
            if timeout is not None and time.monotonic() - started >= timeout:
                _stop(process)
                return {"timed_out": True}
            if os.path.exists(cancel_path):
                _stop(process)
                return {"cancelled": True}
    finally:
        _child = None
        process.close()


def main() -> None:
    """Run the runs of this array task (``$PROFIT_ARRAY_ID`` of ``$PROFIT_PACK_DIR/tasks.json``), one after another."""
    env = dict(os.environ)
    pack = env["PROFIT_PACK_DIR"]
    task = int(env.get("PROFIT_ARRAY_ID") or env.get("SLURM_ARRAY_TASK_ID") or 0)
    with open(os.path.join(pack, TASKS_FILE)) as file:
        spec = json.load(file)
    run_ids: list[int] = spec["tasks"][task]
    timeout = spec.get("timeout")
    argv = spec.get("worker")  # a custom worker command (else: runs forked from this process)
    env.pop("PROFIT_ARRAY_ID", None)
    if not argv:
        prepare(env)
    signal.signal(signal.SIGTERM, _on_term)
    end_time = job_end_time(env) if timeout else None
    started_any = False
    for position, run_id in enumerate(run_ids):
        end_path = os.path.join(pack, f"{run_id}.end")
        if os.path.exists(os.path.join(pack, f"{run_id}.cancel")):
            write_json(end_path, {"cancelled": True})
            continue
        if end_time is not None and time.time() + timeout > end_time:
            if not started_any:  # not even one fits: say why, rather than be queued again and again
                left = max(0.0, end_time - time.time())
                reason = f"not started: its Slurm job had {left:.0f} s left, less than the timeout ({timeout:g} s)"
                for later in run_ids[position:]:
                    write_json(os.path.join(pack, f"{later}.end"), {"refused": reason})
            break  # the runner runs the rest in another job
        with open(os.path.join(pack, f"{run_id}.start"), "w"):
            pass
        started_any = True
        process = start_program(argv, run_id, env) if argv else start_run(run_id, env)
        ended = run_one(process, timeout, os.path.join(pack, f"{run_id}.cancel"))
        write_json(end_path, ended)


if __name__ == "__main__":
    main()
