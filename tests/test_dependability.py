"""Timeouts, retries, and faults injected into many runs."""

import os

import numpy as np
import pytest
from helpers import alive, outputs, wait_for

from profit.run import RunState
from profit.run.errors import ConfigError

FAULTY_INPUTS = {"u": {"dtype": np.float64}, "v": {"dtype": np.float64}, "fault": {"dtype": np.int64}}


def plan(n, seed=5, kill=0.1, raise_=0.05):
    """n runs; a random tenth SIGKILL themselves once, a twentieth raise once."""
    rng = np.random.default_rng(seed)
    rows = np.zeros(n, dtype=[("u", "f8"), ("v", "f8"), ("fault", "i8")])
    rows["u"] = np.arange(n) + rng.uniform(0, 0.5, n)
    rows["v"] = rng.uniform(-1, 1, n)
    order = rng.permutation(n)
    rows["fault"][order[: int(kill * n)]] = 1
    rows["fault"][order[int(kill * n) : int(kill * n) + int(raise_ * n)]] = 2
    return rows


@pytest.mark.exclusive
def test_timeout_ends_the_process_tree(make_runner):
    runner = make_runner("t_tree", timeout=0.5)
    runner.spawn({"u": 0.0, "v": 0.0})
    folder = os.path.join(runner.work_dir, "pids")
    wait_for(
        lambda: os.path.isdir(folder) and any(not n.endswith(".tmp") for n in os.listdir(folder)),
        what="the worker to start its grandchild",
        listen=runner,
    )
    name = next(n for n in os.listdir(folder) if not n.endswith(".tmp"))
    pids = [int(pid) for pid in open(os.path.join(folder, name)).read().split()]
    status = runner.wait(0, timeout=20)
    assert status.state is RunState.FAILED
    assert status.reason == "timed out after 0.5 s"
    for pid in pids:
        wait_for(lambda: not alive(pid), what=f"process {pid} to end")


def test_fast_runs_are_not_affected_by_the_timeout(make_runner):
    runner = make_runner("t_sum", timeout=30, parallel=2)
    rows = plan(10, kill=0, raise_=0)[["u", "v"]]
    runner.spawn_array(rows, wait=True)
    assert runner.failed == {}
    assert runner.config["timeout"] == 30.0


@pytest.mark.parametrize("retries, state", [(0, RunState.FAILED), (1, RunState.DONE)])
def test_retry_after_a_failure(make_runner, retries, state):
    runner = make_runner("t_faulty", input_config=FAULTY_INPUTS, retries=retries)
    runner.spawn({"u": 1.0, "v": 2.0, "fault": 2}, wait=True)
    status = runner.status(0)
    assert status.state is state, status
    if state is RunState.DONE:
        assert runner.output_data["f"].tolist() == [3.0]
    else:
        assert status.reason.startswith("RuntimeError: injected failure at u=1.0")


def test_final_failure_keeps_the_last_reason_and_attempts(make_runner):
    runner = make_runner("t_faulty", input_config=FAULTY_INPUTS, retries=2)
    runner.spawn({"u": 1.0, "v": 2.0, "fault": 3}, wait=True)
    status = runner.status(0)
    assert status.state is RunState.FAILED
    assert status.reason.endswith("(attempt 3 of 3)")
    assert "RuntimeError: injected failure at u=1.0" in status.reason
    assert np.isnan(runner.interface.output["f"][0])


@pytest.mark.parametrize("bad", [{"timeout": 0}, {"timeout": "soon"}, {"retries": -1}, {"retries": 1.5}])
def test_bad_timeout_and_retries(make_runner, bad):
    with pytest.raises(ConfigError, match="timeout must be|retries must be"):
        make_runner("t_sum", **bad)


def fault_injection(make_runner, runs, retries):
    runner = make_runner("t_faulty", input_config=FAULTY_INPUTS, size=16, parallel=2, retries=retries)
    rows = plan(runs)
    runner.spawn_array(rows, wait=True)
    return runner, rows


@pytest.mark.parametrize("runs", [300])
def test_fault_injection_with_retries_loses_nothing(make_runner, runner_label, runs):
    if runner_label == "local":
        runs = 40  # every local run is a new Python process
    runner, rows = fault_injection(make_runner, runs, retries=3)
    assert runner.failed == {}
    states = runner.interface.internal["STATE"][:runs]
    assert (states == RunState.DONE).all()
    np.testing.assert_array_equal(runner.interface.output["f"][:runs], rows["u"] + rows["v"])


def test_fault_injection_without_retries_fails_exactly_the_injected(make_runner, runner_label):
    runs = 300 if runner_label == "fork" else 40
    runner, rows = fault_injection(make_runner, runs, retries=0)
    killed = set(np.flatnonzero(rows["fault"] == 1).tolist())
    raised = set(np.flatnonzero(rows["fault"] == 2).tolist())
    assert set(runner.failed) == killed | raised
    for run_id in killed:
        assert "killed by SIGKILL" in runner.failed[run_id].reason
    for run_id in raised:
        assert runner.failed[run_id].reason.startswith(
            f"RuntimeError: injected failure at u={float(rows['u'][run_id])!r}"
        )
    fine = np.flatnonzero(rows["fault"] == 0)
    np.testing.assert_array_equal(runner.interface.output["f"][fine], rows["u"][fine] + rows["v"][fine])
    assert np.isnan(runner.interface.output["f"][sorted(killed | raised)]).all()


@pytest.mark.exclusive
def test_time_waiting_for_a_worker_does_not_count(make_runner):
    # Two runs of 0.6 s with a 1 s limit: a pool with one worker runs them one after the other.
    runner = make_runner("t_span", output_config=outputs("start", "end"), timeout=1.0, parallel=1)
    runner.spawn({"u": 0.6, "v": 0.0})
    runner.spawn({"u": 0.6, "v": 0.0})
    runner.wait_all(timeout=20)
    assert runner.failed == {}, runner.failed


def test_a_timed_out_run_is_retried_and_its_retry_counts(make_runner):
    # The first attempt times out; the retry (same id and row) finishes: the run is done, executed twice.
    runner = make_runner("t_slow_once", timeout=1.0, retries=1, parallel=1)
    runner.spawn({"u": 1.5, "v": 2.0})
    assert runner.wait(0, timeout=30).state == RunState.DONE
    assert runner.interface.output["f"][0] == 3.5
    assert runner.failed == {}
    executions = open(os.path.join(runner.work_dir, "executions-1.5")).read().split()
    assert len(executions) == 2
