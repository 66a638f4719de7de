"""Cancel ends the whole process tree of a run, and a cancelled run stays cancelled."""

import os

import pytest
from helpers import alive, started_pids, wait_for

from profit.run import RunState
from profit.run.errors import RunNotFoundError


def test_cancel_ends_worker_and_grandchild(make_runner):
    runner = make_runner("t_tree")
    runner.spawn({"u": 0.0, "v": 0.0})
    pids = started_pids(runner, 1)
    assert all(alive(pid) for pid in pids)
    status = runner.cancel(0)
    assert status.state is RunState.CANCELLED and status.reason == "cancelled"
    for pid in pids:
        wait_for(lambda: not alive(pid), what=f"process {pid} to end")
    assert runner.runs == {}
    assert runner.failed[0].state is RunState.CANCELLED
    assert runner.interface.state(0) is RunState.CANCELLED
    assert not runner.interface.internal["DONE"][0]


def test_cancel_all_ends_every_tree(make_runner):
    runner = make_runner("t_tree", parallel=3)
    for _ in range(3):
        runner.spawn({"u": 0.0, "v": 0.0})
    pids = started_pids(runner, 3)
    assert len(pids) == 6
    runner.cancel_all()
    for pid in pids:
        wait_for(lambda: not alive(pid), what=f"process {pid} to end")
    assert [runner.status(i).state for i in range(3)] == [RunState.CANCELLED] * 3


def test_cancelled_run_never_turns_done(make_runner, gate_for):
    runner = make_runner("t_gate")
    gate = gate_for(runner)
    runner.spawn({"u": 1.0, "v": 1.0})
    runner.cancel(0)
    gate.release(1)  # were the worker still there, it would now complete
    runner.check_runs()
    runner.wait_all(timeout=5)
    assert runner.status(0).state is RunState.CANCELLED
    assert len(runner.output_data) == 0
    with pytest.raises(RunNotFoundError, match="run 0 is not active"):
        runner.cancel(0)


def test_cancel_of_a_finished_run_keeps_its_result(make_runner):
    runner = make_runner("t_sum")
    runner.spawn({"u": 1.0, "v": 1.0})
    handle = runner.runs[0]
    wait_for(handle.exited, what="the worker to exit", listen=runner)
    status = runner.cancel(0)
    assert status.state is RunState.DONE
    assert runner.output_data["f"].tolist() == [2.0]


def test_cancel_keeps_a_result_that_was_transmitted(make_runner):
    runner = make_runner("t_transmit_then_wait")
    runner.spawn({"u": 1.0, "v": 2.0})
    wait_for(lambda: os.path.exists(os.path.join(runner.work_dir, "transmitted")), what="the result", listen=runner)
    status = runner.cancel(0)
    assert status.state is RunState.DONE
    assert runner.output_data["f"].tolist() == [3.0]


def test_cancel_does_not_retry_a_failed_run(make_runner):
    inputs = {"u": {"dtype": "f8"}, "v": {"dtype": "f8"}, "fault": {"dtype": "i8"}}
    runner = make_runner("t_faulty", input_config=inputs, retries=2)
    runner.spawn({"u": 1.0, "v": 2.0, "fault": 3})  # always raises
    runner.cancel_all()
    assert runner.runs == {}
    assert runner.status(0).state in (RunState.FAILED, RunState.CANCELLED)


def test_cancel_one_run_among_several(make_runner, gate_for):
    # With a one-worker pool, run 0 runs and runs 1 and 2 wait in its queue.
    runner = make_runner("t_gate", parallel=1)
    gate = gate_for(runner)
    for u in (1.0, 2.0, 3.0):
        runner.spawn({"u": u, "v": 0.0})
    assert runner.cancel(1).state is RunState.CANCELLED
    gate.release(2)
    runner.wait_all(timeout=30)
    assert [runner.status(i).state for i in range(3)] == [RunState.DONE, RunState.CANCELLED, RunState.DONE]
    assert runner.interface.output["f"][[0, 2]].tolist() == [1.0, 3.0]
