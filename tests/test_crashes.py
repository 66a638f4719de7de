"""The crash table: how each way of failing is reported, on every runner."""

import os

import numpy as np
import pytest
from helpers import outputs

from profit.run import RunState

CRASHES = [
    # worker label, expected state, fragments of the reason
    ("t_raise", RunState.FAILED, ["ValueError: boom at u=1.0", "workers.py", "in raises"]),
    ("t_exit3", RunState.FAILED, ["exited with code 3"]),
    ("t_sigkill", RunState.FAILED, ["SIGKILL"]),
    ("t_segv", RunState.FAILED, ["SIGSEGV"]),
    ("t_no_transmit", RunState.FAILED, ["exited with code 0 without transmitting"]),
    ("t_wrong_count", RunState.FAILED, ["returned 3 values; expected 2"]),
    ("t_half_written", RunState.FAILED, ["SIGKILL"]),
    ("t_transmit_then_die", RunState.DONE, []),
]


@pytest.mark.parametrize("worker, state, fragments", CRASHES, ids=[c[0] for c in CRASHES])
def test_crash_table(make_runner, worker, state, fragments):
    runner = make_runner(worker, output_config=outputs("f", "g"))
    runner.spawn({"u": 1.0, "v": 2.0}, wait=True)
    status = runner.status(0)
    assert status.state is state, status
    for fragment in fragments:
        assert fragment in status.reason
    assert runner.interface.state(0) is state
    if state is RunState.FAILED:
        assert runner.failed[0] == status
        assert runner.interface.reason(0) == status.reason
        # A failed row keeps its place, with NaN outputs (never a half-written row).
        assert np.isnan(runner.interface.output["f"][0]) and np.isnan(runner.interface.output["g"][0])
        assert len(runner.output_data) == 0
    else:
        assert runner.failed == {}
        assert runner.output_data["f"].tolist() == [3.0]


def test_python_failure_logs_full_traceback(make_runner):
    runner = make_runner("t_raise")
    runner.spawn({"u": 1.0, "v": 2.0}, wait=True)
    with open(os.path.join(runner.work_dir, "log", "run_000.log")) as log:
        text = log.read()
    assert "Traceback (most recent call last)" in text
    assert "ValueError: boom at u=1.0" in text


def test_failures_do_not_disturb_other_runs(make_runner):
    runner = make_runner("t_sum_unless_negative", parallel=2, size=2)
    rows = np.array([(1.0, 1.0), (-2.0, 2.0), (3.0, 3.0), (-4.0, 0.0), (5.0, 5.0)], dtype=[("u", "f8"), ("v", "f8")])
    runner.spawn_array(rows, wait=True)
    states = [runner.status(i).state for i in range(5)]
    assert states == [RunState.DONE, RunState.FAILED, RunState.DONE, RunState.FAILED, RunState.DONE]
    assert sorted(runner.failed) == [1, 3]
    assert "ArithmeticError: negative u" in runner.failed[3].reason
    assert runner.interface.output["f"][[0, 2, 4]].tolist() == [2.0, 6.0, 10.0]
    assert np.isnan(runner.interface.output["f"][[1, 3]]).all()
    # Only completed runs are results; they keep their inputs.
    assert runner.input_data["u"].tolist() == [1.0, 3.0, 5.0]
