"""Exactly once with the local runner: kill -9 of 'profit run' at random moments, then 'profit run' again.

No two executions of one run at the same time, no run executed again after it transmitted, every
run completes, and no process of the study is left. The kills are made to land where they hurt: an
include file (loaded by the runner) slows down noting each started worker in the study's table, so
that a kill often falls between starting a worker and writing its pid.
"""

import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
from helpers import PROFIT, STUDY, make_study, profit, wait_for

from profit.run._proc import marked_processes

# Each execution holds a lock on its run's file while it runs: one that cannot take it overlaps another.
PROGRAM = """\
import fcntl, os, time
values = dict(line.split(" = ") for line in open("input.txt").read().splitlines())
u, v = float(values["u"]), float(values["v"])
base = os.environ["PROFIT_BASE_DIR"]
log = os.path.join(base, "executions.log")
lock = open(os.path.join(base, f"running-{u!r}"), "a")
try:
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    alone = "alone"
except BlockingIOError:
    alone = "overlapping"
with open(log, "a") as file:
    file.write(f"start {u!r} {time.time()!r} {os.getpid()} {alone}\\n")
time.sleep(SLEEP)
with open(log, "a") as file:
    file.write(f"end {u!r} {time.time()!r} {os.getpid()} {alone}\\n")
print(u + v, u * v)
"""

SLOW_RECORD = """\
import time
from profit import studyrun

_noted = studyrun.TableRecorder.run_started

def run_started(self, run_id, handle):
    time.sleep(0.15)  # a runner killed now has started the worker but not noted its pid
    _noted(self, run_id, handle)

studyrun.TableRecorder.run_started = run_started
"""


def local_study(folder, ntrain, sleep, parallel=4):
    yaml = STUDY.format(ntrain=ntrain, runner=f"{{class: local, parallel: {parallel}}}") + "include: slow_record.py\n"
    study = make_study(folder, yaml)
    (study / "slow_record.py").write_text(SLOW_RECORD)
    program = study / "template" / "simulation"
    program.write_text(f"#!{sys.executable}\n" + PROGRAM.replace("SLEEP", repr(sleep)))
    return study


def executions(study):
    """{u: [(start, end or None, overlapping)]} from the programs' log, by process."""
    spans = {}
    path = study / "executions.log"
    for line in path.read_text().splitlines() if path.exists() else []:
        kind, u, at, pid, alone = line.split()
        key = (float(u), int(pid))
        if kind == "start":
            spans[key] = [float(at), None, alone == "overlapping"]
        elif key in spans:
            spans[key][1] = float(at)
    by_run = {}
    for (u, _), span in spans.items():
        by_run.setdefault(u, []).append(tuple(span))
    return {u: sorted(runs) for u, runs in by_run.items()}


def kill_storm(study, kills, rng):
    """Start 'profit run' and kill -9 it at a random moment, ``kills`` times; after each kill,
    the runs whose results were in the table (transmitted) and the time of the kill."""
    ledger = study / "profit-study.npy"
    transmitted = []
    for _ in range(kills):
        process = subprocess.Popen([PROFIT, "run", str(study)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: ledger.exists(), timeout=30, what="the study's table")
            time.sleep(rng.uniform(0.3, 1.5))
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
        rows = np.load(ledger)
        transmitted.append((time.time(), set(np.flatnonzero(rows["DONE"] | (rows["STATE"] == 2)).tolist())))
    return transmitted


def check_exactly_once(study, ntrain, transmitted):
    """Every run done with its result; executions of one run never overlapped; none after it transmitted."""
    inputs = np.genfromtxt(study / "input.txt", names=True)
    outputs = np.genfromtxt(study / "output.txt", names=True)
    np.testing.assert_array_equal(outputs["f"], inputs["u"] + inputs["v"])
    log = executions(study)
    for run_id, u in enumerate(inputs["u"]):
        spans = log.get(float(u), [])
        assert any(end is not None for _, end, _ in spans), f"run {run_id} never completed"
        assert not any(overlapping for _, _, overlapping in spans), f"run {run_id} ran twice at once: {spans}"
        for (_, end, _), (later, _, _) in zip(spans, spans[1:]):
            assert end is None or later >= end, f"run {run_id} ran twice at once: {spans}"
        for killed_at, done in transmitted:
            if run_id in done:
                assert all(start < killed_at for start, _, _ in spans), f"run {run_id} ran again after it transmitted"
    assert marked_processes(str(study)) == [], "processes of the study are left"


def test_kill_storm_local_runner(tmp_path):
    rng = random.Random(int.from_bytes(os.urandom(4), "little"))
    study = local_study(tmp_path / "study", ntrain=12, sleep=1.0)
    transmitted = kill_storm(study, kills=3, rng=rng)
    finished = profit("run", str(study), timeout=60)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    check_exactly_once(study, 12, transmitted)
