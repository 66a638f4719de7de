"""Studies made by the first build of profit: their state in today's table, with every result kept.

The first build kept ``profit-study.npy`` as a ledger (inputs, outputs, then
``STATE``, ``REASON``, ``TIME`` in float seconds, ``ATTEMPTS``, ``PID``,
``PSTART``) beside an interface file, and recorded a fingerprint of the
variables, ``ntrain`` and seed. A ledger is converted only when that fingerprint
matches the study file as it is now (with the ``ntrain`` it was made with), so
its rows are known to mean what the study says.
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np

from .run._proc import proc_stat
from .run.interface import whole_seconds
from .run.state import RunState
from .store import Meta, StudyTable
from .studyfile import StudyFile

OLD_COLUMNS = ("STATE", "REASON", "TIME", "ATTEMPTS", "PID", "PSTART")


def old_fingerprint(file: StudyFile, ntrain: int) -> str:
    """The first build's fingerprint of ``file`` made with ``ntrain`` runs.

    Args:
        file: The study file.
        ntrain: The study's runs.
    """
    definition = {
        "ntrain": ntrain,
        "seed": file.seed,
        "variables": {name: repr(variable) + str(variable.dtype) for name, variable in file.variables.items()},
    }
    return hashlib.sha256(json.dumps(definition, sort_keys=True).encode()).hexdigest()[:16]


def is_old_study(meta: Meta) -> bool:
    """Whether ``meta`` is the record of a study made by the first build.

    Args:
        meta: The study's record.
    """
    return "fingerprint" in meta.data and "definition" not in meta.data


def convert(path: str, file: StudyFile, meta: Meta, outputs: np.dtype) -> StudyTable | None:
    """The first build's ledger at ``path`` as a table of today (None when it does not match ``file``).

    Runs that were done or failed stay so, with their results and reasons;
    interrupted runs are pending. A process of a run that still runs keeps its
    process group in the table, so that the next run ends it.

    Args:
        path: The first build's ledger.
        file: The study file.
        meta: The study's record.
        outputs: The dtype of the outputs.
    """
    ntrain = meta.data.get("runs")
    if not isinstance(ntrain, int) or meta.data.get("fingerprint") != old_fingerprint(file, ntrain):
        return None
    try:
        old = np.load(path, mmap_mode="r")
        names = old.dtype.names or ()
    except (OSError, ValueError, EOFError):
        return None
    inputs = [name for name, variable in file.variables.items() if variable.is_input]
    if not set(OLD_COLUMNS) <= set(names) or not set(inputs) <= set(names) or len(old) != ntrain:
        return None
    rows = np.zeros(len(old), [(name, old.dtype[name]) for name in inputs])
    for name in inputs:
        rows[name] = old[name]
    table = StudyTable.create(path, rows, outputs)  # (replaces the ledger whole)
    new = table.rows
    states = np.asarray(old["STATE"])
    settled = (states == RunState.DONE) | (states == RunState.FAILED)
    for name in table.output_names:
        new[name][settled] = old[name][settled]
    new["STATE"] = np.where(settled, states, RunState.PENDING)
    new["DONE"] = states == RunState.DONE
    new["REASON"][settled] = old["REASON"][settled]
    new["ATTEMPTS"] = old["ATTEMPTS"]
    new["TIME"] = [whole_seconds(value) for value in old["TIME"].tolist()]
    # When they ended is not known, only that it was before the last runner finished.
    new["ENDED"][settled] = meta.data.get("finished") or os.path.getmtime(meta.path)
    for run_id in np.flatnonzero(states == RunState.RUNNING):
        pid, started = int(old["PID"][run_id]), int(old["PSTART"][run_id])
        fields = proc_stat(pid) if pid else None
        if fields is not None and int(fields[19]) == started:  # still the run's own process
            new["STATE"][run_id], new["PID"][run_id] = RunState.RUNNING, pid
    table.flush()
    return table
