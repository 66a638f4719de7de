"""What the study's page, report and ``profit status --json`` show, read from its store.

Everything here only reads: the study's table is mapped read-only (a running
study keeps writing it), nothing is locked, nothing is written. The views are
plain JSON-able dicts (NaN becomes ``null``):

* :func:`status_data`: counts by state, the total, ETA and throughput, whether a
  process runs the study, and the failures grouped by reason;
* :func:`runs_data`: one entry per run, column by column (inputs, outputs —
  vector outputs as ``x[0]``, ``x[1]``, ... —, state, reason, attempts, times);
* :func:`throughput_data`: runs finished over time (at most ``points`` points);
* :func:`snapshot`: all three, as the page and the report take them.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from .run.state import RunState

if TYPE_CHECKING:
    from .study import Study, StudyStatus

STATES = ("pending", "running", "done", "failed", "cancelled")
# Runs listed in each failure group (the group's count is exact), and groups shown (the rest as one).
GROUP_RUNS = 200
MAX_GROUPS = 50


def status_data(
    study: Study, status: StudyStatus | None = None, *, now: float | None = None, rows: np.ndarray | None = None
) -> dict[str, Any]:
    """Counts by state, ETA, throughput, the running process and the failure groups of ``study``
    (``rows``: its table, when the caller has read it already).

    Args:
        study: The study.
        status: Its status, when the caller has it already.
        now: The time (default: now).
        rows: Its table, when the caller has read it already.
    """
    rows = study._read_table() if rows is None else rows
    status = study._status(rows) if status is None else status
    now = time.time() if now is None else now
    counts = {state.name.lower(): int(status.counts[state]) for state in RunState}
    if not status.running_pid:
        # Without a process running the study, a run left RUNNING was interrupted: it waits to run again.
        counts["pending"] += counts["running"]
        counts["running"] = 0
    finished = counts["done"] + counts["failed"]
    rate = eta = None
    if status.running_pid and status.started:
        done_now = finished - status.finished_before
        running_for = now - status.started
        if done_now > 0 and running_for > 0:
            rate = done_now / running_for
            eta = (status.total - finished) / rate if finished < status.total else 0.0
    return {
        "study": study.file.path,
        "directory": study.directory,
        "generated": now,
        "total": int(status.total),
        "counts": counts,
        "finished_percent": 100.0 * finished / max(status.total, 1),
        "running_pid": status.running_pid,
        "started": status.started,
        "ended": status.finished,
        "rate_per_second": rate,
        "eta_seconds": eta,
        "failure_groups": failure_groups(rows),
    }


def failure_groups(rows: np.ndarray | None) -> list[dict[str, Any]]:
    """The failed and cancelled runs of a study's table (None: none yet) grouped by their reason,
    largest group first.

    Args:
        rows: A study's table (None: none yet).
    """
    if rows is None:
        return []
    states = np.asarray(rows["STATE"])
    groups: dict[tuple[str, str], list[int]] = {}
    for state in (RunState.FAILED, RunState.CANCELLED):
        ids = np.flatnonzero(states == state)
        reasons = np.asarray(rows["REASON"])[ids]
        for run_id, raw in zip(ids.tolist(), reasons.tolist()):
            reason = bytes(raw).decode("utf-8", "replace") or "(no reason recorded)"
            groups.setdefault((state.name.lower(), reason), []).append(run_id)
    ordered = sorted(groups.items(), key=lambda item: (-len(item[1]), item[1][0]))
    shown = [
        {"state": state, "reason": reason, "count": len(ids), "runs": ids[:GROUP_RUNS]}
        for (state, reason), ids in ordered[:MAX_GROUPS]
    ]
    rest = ordered[MAX_GROUPS:]
    if rest:  # (reasons that carry a run's own values: one group each would swamp the page)
        others = sorted(run_id for _, group in rest for run_id in group)
        shown.append(
            {
                "state": "failed" if any(state == "failed" for (state, _), _ in rest) else "cancelled",
                "reason": f"({len(rest)} other reasons, one group each; the runs table has them all)",
                "count": len(others),
                "runs": others[:GROUP_RUNS],
            }
        )
    return shown


def runs_data(study: Study, status: StudyStatus | None = None, *, rows: np.ndarray | None = None) -> dict[str, Any]:
    """Every run, column by column: ``inputs``, ``outputs`` (names; vector outputs flattened) and
    ``columns`` (name -> list; also ``run``, ``state``, ``reason``, ``attempts``, ``started``, ``ended``,
    ``duration``). Without a process running the study, a run left running is ``pending`` (it was
    interrupted and runs again), as in :func:`status_data`. ``rows``: the table, when read already.

    Args:
        study: The study.
        status: Its status, when the caller has it already.
        rows: Its table, when read already.
    """
    results = study.results() if rows is None else study._results(rows)
    if status is None:
        status = study.status() if rows is None else study._status(rows)
    inputs = list(study.input_names)
    outputs: list[str] = []
    columns: dict[str, list] = {"run": list(range(len(results)))}
    for name in inputs:
        columns[name] = _column(results[name])
    for name in study.output_names:
        values = results[name]
        if values.ndim == 1:
            outputs.append(name)
            columns[name] = _column(values)
        else:
            for index in range(values.shape[1]):
                key = f"{name}[{index}]"
                outputs.append(key)
                columns[key] = _column(values[:, index])
    states = results["state"]
    if not status.running_pid:
        states = np.where(states == "running", "pending", states)
    columns["state"] = states.tolist()
    columns["reason"] = results["reason"].tolist()
    columns["attempts"] = results["attempts"].tolist()
    for name in ("started", "ended", "duration"):
        columns[name] = _column(results[name])
    return {"inputs": inputs, "outputs": outputs, "count": len(results), "columns": columns}


def _column(values: np.ndarray) -> list:
    """A column as a JSON-able list: floats with NaN and infinities as None."""
    if values.dtype.kind in "iub":
        return values.tolist()
    as_float = np.asarray(values, dtype=np.float64)
    listed: list = as_float.tolist()
    bad = np.flatnonzero(~np.isfinite(as_float))
    for index in bad.tolist():
        listed[index] = None
    return listed


def throughput_data(rows: np.ndarray | None, points: int = 300) -> list[list[float]]:
    """``[[unix time, runs finished by then], ...]`` of a study's table (None: none yet), sorted,
    at most ``points`` points.

    Args:
        rows: A study's table (None: none yet).
        points: The most points.
    """
    if rows is None:
        return []
    states = np.asarray(rows["STATE"])
    ended = np.asarray(rows["ENDED"])[(states == RunState.DONE) | (states == RunState.FAILED)]
    ended = np.sort(ended[np.isfinite(ended)])
    if not len(ended):
        return []
    counts = np.arange(1, len(ended) + 1)
    if len(ended) > points:
        picked = np.unique(np.linspace(0, len(ended) - 1, points).round().astype(int))
        ended, counts = ended[picked], counts[picked]
    return [[float(t), int(n)] for t, n in zip(ended, counts)]


def fingerprint(study: Study) -> bytes:
    """A digest that changes when the study's views would: its runs' states and end times, the
    number of runs, its record, and which process runs it. Cheap next to the views themselves.

    Args:
        study: The study.
    """
    import hashlib

    from .store import META, StudyLock

    digest = hashlib.blake2b(digest_size=16)
    digest.update(repr(StudyLock(study.directory).holder() if os.path.isdir(study.directory) else None).encode())
    for path in (study.table_path, os.path.join(study.directory, META)):
        try:
            info = os.stat(path)
        except OSError:
            digest.update(b"-")
        else:
            digest.update(f"{info.st_size} {info.st_mtime_ns} {info.st_ino}".encode())
    rows = study._read_table()
    if rows is not None:
        digest.update(np.ascontiguousarray(rows["STATE"]).tobytes())
        digest.update(np.ascontiguousarray(rows["ENDED"]).tobytes())
    return digest.digest()


def snapshot(study: Study) -> dict[str, Any]:
    """Everything the page shows: ``status``, ``runs`` and ``throughput`` (the table read once).

    Args:
        study: The study.
    """
    rows = study._read_table()
    status = study._status(rows)
    return {
        "status": status_data(study, status, rows=rows),
        "runs": runs_data(study, status, rows=rows),
        "throughput": throughput_data(rows),
    }


def run_log(study: Study, run_id: int, max_bytes: int = 200_000) -> str | None:
    """The end of run ``run_id``'s log (at most ``max_bytes``), or None when it has none.

    The path is made from the run id, a whole number, inside the study's directory:
    nothing a request says can point it elsewhere.

    Args:
        study: The study.
        run_id: The run.
        max_bytes: The most bytes returned.
    """
    from .run.layout import run_log_file

    worker = study.file.run.get("worker")
    log_path = worker.get("log_path", "log") if isinstance(worker, dict) else "log"
    directory = os.path.realpath(study.directory)
    path = os.path.realpath(os.path.join(directory, run_log_file(str(log_path), int(run_id))))
    if os.path.commonpath([directory, path]) != directory or not os.path.isfile(path):
        return None
    with open(path, "rb") as file:
        size = os.path.getsize(path)
        file.seek(max(0, size - max_bytes))
        return file.read().decode("utf-8", "replace")
