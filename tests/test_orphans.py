"""Processes a run leaves behind: they never keep the study locked, and cancel or a timeout ends them,
also those that left the worker's process group (setsid) or lost their parent."""

import os
import signal
import subprocess

import numpy as np
import pytest
from helpers import PROFIT, TESTS, alive, profit, runs_done, started_pids, wait_for

from profit.run import RunState
from profit.run._files import remove_stale_temporaries, temporary_name
from profit.run.interface import decode_reason
from profit.run.layout import clean_work_dir

ORPHAN_STUDY = """\
ntrain: 2
seed: 3
variables:
  u: Uniform(0, 1)
  v: Uniform(0, 1)
  f: Output
include: {workers}
run:
  runner: {runner}
  worker: t_orphan_fork
"""


def _orphans(study):
    folder = study / "orphans"
    return [int(name) for name in os.listdir(folder)] if folder.is_dir() else []


def _kill(pids):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.parametrize("runner", ["fork", "pool"])
def test_an_orphan_of_a_killed_runner_does_not_hold_the_lock(tmp_path, runner):
    """A forked worker's grandchild outlives the runner's kill -9; the next 'profit run' starts anyway,
    ends it, and completes."""
    study = tmp_path / "study"
    study.mkdir()
    (study / "profit.yaml").write_text(ORPHAN_STUDY.format(workers=TESTS / "workers.py", runner=runner))
    process = subprocess.Popen([PROFIT, "run", str(study)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: len(_orphans(study)) >= 1, timeout=30, what="a worker to fork its grandchild")
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        left = _orphans(study)
        assert any(alive(pid) for pid in left)  # the orphan outlived the runner
        (study / "release").touch()
        again = profit("run", str(study), timeout=60)
        assert "is being run by process" not in again.stderr
        assert again.returncode == 0, again.stdout + again.stderr
        assert runs_done(study) == 2
        for pid in left:  # the earlier runner's orphans were ended before the runs ran again
            assert not alive(pid)
        for pid in _orphans(study):  # and the new workers' ended with their workers
            wait_for(lambda: not alive(pid), timeout=5, what=f"orphan {pid} to end")
    finally:
        process.kill()
        process.wait()
        _kill(_orphans(study))


@pytest.mark.parametrize("interface_label", ["memmap"])
@pytest.mark.parametrize("how", ["cancel", "timeout"])
def test_a_grandchild_in_its_own_session_ends_with_its_run(make_runner, how):
    """u == 0: 'setsid sleep 300' under a live worker; u == 1: a daemon whose parent exited."""
    options = {"timeout": 1.0} if how == "timeout" else {}
    runner = make_runner("t_setsid_tree", parallel=2, **options)
    runner.spawn({"u": 0.0, "v": 0.0})
    runner.spawn({"u": 1.0, "v": 0.0})
    pids = started_pids(runner, 2)
    assert len(pids) == 4 and all(alive(pid) for pid in pids)
    try:
        if how == "cancel":
            runner.cancel_all()
            expected = RunState.CANCELLED
        else:
            runner.wait_all(timeout=20)
            expected = RunState.FAILED
        assert [runner.status(i).state for i in range(2)] == [expected] * 2
        for pid in pids:
            wait_for(lambda: not alive(pid), timeout=5, what=f"process {pid} to end")
    finally:
        _kill(pids)


def test_stale_temporaries_are_removed_and_live_ones_kept(tmp_path):
    """A writer killed mid-write leaves its temporary file; 'profit clean' (clean_work_dir) removes it,
    never one whose writer lives."""
    dead = subprocess.Popen(["true"])
    dead.wait()  # (reaped: its pid is free)
    mine = tmp_path / temporary_name("output.txt", ".txt")
    mine.write_text("being written")
    stale = tmp_path / temporary_name("profit-study.json").replace(f"-{os.getpid()}-", f"-{dead.pid}-")
    stale.write_text("cut off")
    other = tmp_path / ".notes.txt.tmp-1-zz"  # not a name profit makes
    other.write_text("the user's")
    assert remove_stale_temporaries(str(tmp_path)) == [stale.name]
    assert mine.exists() and other.exists() and not stale.exists()
    stale.write_text("cut off again")
    assert stale.name in clean_work_dir(str(tmp_path))
    assert mine.exists()


def test_a_failure_reason_never_quotes_an_earlier_study(tmp_path):
    """A run killed by a signal quotes its own log's last line, never one of the run with that id before
    (an earlier attempt or a study run again with --restart); the earlier lines stay beside it."""
    study = tmp_path / "study"
    study.mkdir()
    (study / "log").mkdir()
    (study / "log" / "run_000.log").write_text("ERROR an earlier study's line\n")
    (study / "profit.yaml").write_text(
        ORPHAN_STUDY.format(workers=TESTS / "workers.py", runner="fork")
        .replace("t_orphan_fork", "t_sigkill")
        .replace("ntrain: 2", "ntrain: 1")
    )
    profit("run", str(study))
    reason = decode_reason(np.load(study / "profit-study.npy")["REASON"][0])
    assert "killed by SIGKILL" in reason
    assert "earlier study" not in reason
    assert "earlier study" in (study / "log" / "run_000.log.previous").read_text()
