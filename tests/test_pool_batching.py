"""The pool's batching: runs sent to a worker in batches, reports written in batches, runs
started and settled in bulk; every run's outcome stays what it would be one by one."""

import os
import signal
import time

import numpy as np
import pytest
from helpers import scalar_runner, sum_rows

from profit.run import RunState
from profit.run import pool as pool_module
from profit.run.pool import _report_now


def make_pool(tmp_path, worker, *, size=64, **options):
    return scalar_runner("pool", tmp_path / "study", worker, size=size, **options)


def executions(log):
    with open(log) as file:
        return [float(line) for line in file.read().split()]


# --- when a worker writes its reports ---------------------------------------------------------


def test_reports_of_quick_successful_runs_wait_for_more():
    assert not _report_now(0, took=1e-5, held=1e-4, left=5, refill=3, count=2, hold=0.001)


@pytest.mark.parametrize(
    "case",
    [
        {"code": 1},  # a failure
        {"left": 0},  # nothing more to run: it goes idle
        {"left": 3},  # half-way through what it holds
        {"took": 0.5},  # a slow run
        {"held": 0.002},  # the oldest report waited long enough
        {"count": pool_module._MAX_REPORT},  # a full write
        {"hold": 0.0},  # a timeout: every report at once
    ],
)
def test_a_worker_reports_at_once_when(case):
    quick = {"code": 0, "took": 1e-5, "held": 1e-4, "left": 5, "refill": 3, "count": 2, "hold": 0.001}
    assert _report_now(**{**quick, **case})


# --- how many runs a worker holds -----------------------------------------------------------


@pytest.mark.parametrize(("pace", "span"), [(None, 1), (1e-6, 32), (5e-4, 4), (0.01, 1), (100.0, 1)])
def test_a_worker_holds_runs_by_the_pace_of_runs(tmp_path, pace, span):
    with make_pool(tmp_path, "t_sum", parallel=1, depth=32) as runner:
        runner._pace = pace
        assert runner._span() == span


def test_slow_runs_are_handed_out_one_per_worker(tmp_path):
    def slow(u, v):
        time.sleep(0.05)
        return u + v

    with make_pool(tmp_path, slow, parallel=2, depth=8) as runner:
        runner.spawn({"u": 1.0, "v": 1.0}, wait=True)  # its report tells the pace: 50 ms a run
        runner.spawn_array(sum_rows(6))  # returns once all were handed to the pool
        assert [worker.load for worker in runner._workers] == [1, 1]
        assert len(runner._waiting) == 4  # the others wait for the first worker that is free
        runner.wait_all(timeout=60)
        assert runner.failed == {}
        np.testing.assert_array_equal(runner.interface.output["f"][1:7], sum_rows(6)["u"] + 0.5)


# --- outcomes ----------------------------------------------------------------------------


def test_reports_held_by_an_idle_worker_still_arrive(tmp_path, monkeypatch):
    monkeypatch.setattr(pool_module, "_HOLD_SECONDS", 3600.0)  # only going idle (or half-way) writes them
    with make_pool(tmp_path, "t_sum", parallel=2) as runner:
        runner.spawn_array(sum_rows(50), wait=True)
        assert runner.spawn({"u": 1.0, "v": 2.0}, wait=True) == 50
        assert runner.failed == {} and not runner.runs
        np.testing.assert_array_equal(runner.interface.output["f"][:50], sum_rows(50)["u"] + 0.5)
        assert runner.interface.output["f"][50] == 3.0


def test_failures_among_many_quick_runs_keep_their_reasons(tmp_path):
    def some_fail(u, v):
        if u % 7 == 3:
            raise ValueError(f"no {u}")
        return u + v

    count = 300
    with make_pool(tmp_path, some_fail, parallel=2, size=count) as runner:
        runner.spawn_array(sum_rows(count), wait=True)
        failing = [run_id for run_id in range(count) if run_id % 7 == 3]
        assert sorted(runner.failed) == failing
        assert runner.failed[3].reason.startswith("ValueError: no 3.0")
        fine = np.array([run_id for run_id in range(count) if run_id % 7 != 3])
        states = runner.interface.internal["STATE"]
        assert (states[fine] == RunState.DONE).all() and (states[failing] == RunState.FAILED).all()
        np.testing.assert_array_equal(runner.interface.output["f"][fine], fine + 0.5)
        assert np.isnan(runner.interface.output["f"][failing]).all()


def test_a_worker_that_dies_fails_the_run_it_was_running_not_the_ones_it_finished(tmp_path):
    # One worker, many quick runs: the runs it finished before run 20 killed it may not have
    # been reported yet. They are done (not run again), run 20 fails, the rest run elsewhere.
    log = tmp_path / "executions.log"

    def dies_at_20(u, v):
        with open(log, "a") as file:
            file.write(f"{u!r}\n")
        if u == 20.0:
            os.kill(os.getpid(), signal.SIGKILL)
        return u + v

    count = 60
    with make_pool(tmp_path, dies_at_20, parallel=1, size=count) as runner:
        runner.spawn_array(sum_rows(count), wait=True)
        assert list(runner.failed) == [20]
        assert runner.failed[20].reason.startswith("worker killed by SIGKILL")
        assert sorted(executions(log)) == list(np.arange(count, dtype=float))  # each once
        fine = np.array([run_id for run_id in range(count) if run_id != 20])
        assert (runner.interface.internal["STATE"][fine] == RunState.DONE).all()
        np.testing.assert_array_equal(runner.interface.output["f"][fine], fine + 0.5)


def test_listeners_hear_of_every_run_started_and_ended_in_bulk(tmp_path):
    class Listener:
        def __init__(self):
            self.started, self.ended = [], []

        def run_started(self, run_id, handle):
            self.started.append(run_id)

        def run_ended(self, status):
            self.ended.append(status)

    listener = Listener()
    with make_pool(tmp_path, "t_sum", parallel=2, size=500) as runner:
        runner.listeners.append(listener)
        runner.spawn_array(sum_rows(500), wait=True)
    assert listener.started == list(range(500))
    assert sorted(status.run_id for status in listener.ended) == list(range(500))
    assert {status.state for status in listener.ended} == {RunState.DONE}


def test_runs_again_in_bulk_forget_their_earlier_outcome(tmp_path):
    fixed = tmp_path / "fixed"

    def fails_until_fixed(u, v):
        if not fixed.exists():
            raise ValueError("not yet")
        return u + v

    with make_pool(tmp_path, fails_until_fixed, parallel=2, size=40) as runner:
        runner.spawn_array(sum_rows(40), wait=True)
        assert sorted(runner.failed) == list(range(40))
        fixed.touch()
        runner.drive(range(40))
        assert runner.failed == {}
        assert (runner.interface.internal["STATE"][:40] == RunState.DONE).all()
        assert (runner.interface.internal["REASON"][:40] == b"").all()
        np.testing.assert_array_equal(runner.interface.output["f"][:40], sum_rows(40)["u"] + 0.5)


def test_a_slow_run_does_not_hold_up_the_reports_of_the_quick_runs_before_it(tmp_path):
    # One worker holds quick runs and then a run that waits at a gate: the quick ones are
    # reported (done) while the slow one still runs, within the hold time, not when it ends.
    gate = tmp_path / "gate"

    def slow_at_5(u, v):
        if u == 5.0:
            deadline = time.monotonic() + 60
            while not gate.exists() and time.monotonic() < deadline:
                time.sleep(0.01)
        return u + v

    with make_pool(tmp_path, slow_at_5, parallel=1, depth=16) as runner:
        runner._pace = 1e-6  # the runner hands all six runs to the worker at once
        try:
            runner.spawn_array(sum_rows(6))
            assert runner._workers[0].load == 6
            deadline = time.monotonic() + 30
            while len(runner.runs) > 1 and time.monotonic() < deadline:
                runner.wait_some(timeout=1.0)
            assert list(runner.runs) == [5]
            assert (runner.interface.internal["STATE"][:5] == RunState.DONE).all()
            np.testing.assert_array_equal(runner.interface.output["f"][:5], sum_rows(5)["u"] + 0.5)
        finally:
            gate.touch()
        runner.wait_all(timeout=60)
        assert runner.failed == {} and runner.interface.output["f"][5] == 5.5
