"""Runner.drive: the one loop that starts runs, at most ``capacity`` at once, until all ended or a stop.

Fork and pool runners (on both interfaces) with real runs; runs that must not end
on their own wait at a FIFO gate that the test opens from ``tick``, the loop's own
callback, so nothing depends on timing. The slurm runner's batches (job arrays)
are driven against the fake Slurm.
"""

import time

import numpy as np
import pytest
from helpers import most_at_once, outputs, params, sum_rows

from profit.run import RunState
from profit.run.errors import ConfigError, RunNotFoundError


@pytest.fixture(params=["fork", "pool"])
def runner_label(request):
    return request.param


def one_at_a_time(runner_label):
    """Options that make ``parallel`` the runner's capacity (a pool keeps ``depth`` runs per worker)."""
    return {"depth": 1} if runner_label == "pool" else {}


class Peak:
    """A listener: the most runs active at once, as each run starts."""

    def __init__(self, runner):
        self.runner, self.most, self.started = runner, 0, []
        runner.listeners.append(self)

    def run_started(self, run_id, handle):
        self.started.append(run_id)
        self.most = max(self.most, len(self.runner.runs))


def test_every_run_ends_with_its_outputs(make_runner):
    runner = make_runner("t_sum", size=2, parallel=3)
    rows = params(25)
    runner.fill(rows)
    runner.drive(range(25))
    assert runner.runs == {} and runner.failed == {}
    assert [runner.status(run_id).state for run_id in range(25)] == [RunState.DONE] * 25
    np.testing.assert_allclose(runner.interface.output["f"][:25], rows["u"] + rows["v"])
    assert runner.next_run_id == 25


def test_never_more_than_parallel_at_once(make_runner, gate_for, runner_label):
    runner = make_runner("t_gate", size=6, parallel=2, **one_at_a_time(runner_label))
    gate = gate_for(runner)
    peak = Peak(runner)
    seen = []

    def tick():
        seen.append(len(runner.runs))
        gate.release(1)  # one waiting worker goes on

    runner.fill(sum_rows(6))
    runner.drive(range(6), tick=tick)
    assert runner.failed == {}
    assert runner.interface.output["f"][:6].tolist() == (sum_rows(6)["u"] + 0.5).tolist()
    assert peak.started == list(range(6))
    # The gate holds the first two until the first tick: both slots were used, never more.
    assert peak.most == 2 and seen[0] == 2 and max(seen) <= 2


@pytest.mark.exclusive
def test_runs_never_overlap_beyond_parallel(make_runner, runner_label):
    # A pool keeps up to depth runs per worker active (its capacity); only `parallel` run at once.
    runner = make_runner("t_span", output_config=outputs("start", "end"), size=6, parallel=2)
    rows = sum_rows(6)
    rows["u"] = 0.3  # each run is active for 0.3 s, long enough that two overlap
    runner.fill(rows)
    runner.drive(range(6))
    assert runner.failed == {}
    assert most_at_once(runner.output_data) == 2


def test_a_stop_leaves_the_rest_unstarted(make_runner, gate_for, runner_label):
    runner = make_runner("t_gate", size=5, parallel=2, **one_at_a_time(runner_label))
    gate = gate_for(runner)
    peak = Peak(runner)
    ticks = []
    runner.fill(sum_rows(5))
    # The first two runs wait at the gate; the first tick asks for the stop.
    runner.drive(range(5), stop=lambda: bool(ticks), tick=lambda: ticks.append(time.monotonic()))
    assert len(ticks) == 1
    assert peak.started == [0, 1] and sorted(runner.runs) == [0, 1]
    assert [runner.status(run_id).state for run_id in range(2, 5)] == [RunState.PENDING] * 3
    # The caller decides about the runs in flight: here they may finish.
    gate.release(2)
    runner.wait_all(timeout=30)
    assert [runner.status(run_id).state for run_id in range(5)] == [RunState.DONE] * 2 + [RunState.PENDING] * 3
    # Driving the rest later runs them (a resumed study).
    gate.release(3)
    runner.drive([2, 3, 4])
    assert runner.interface.output["f"][:5].tolist() == [0.5, 1.5, 2.5, 3.5, 4.5]


def test_a_stop_before_anything_started(make_runner):
    runner = make_runner("t_sum", size=3)
    runner.fill(sum_rows(3))
    runner.drive(range(3), stop=lambda: True)
    assert runner.runs == {} and runner.next_run_id == 0
    assert [runner.status(run_id).state for run_id in range(3)] == [RunState.PENDING] * 3


def test_tick_is_called_while_nothing_happens(make_runner, gate_for):
    runner = make_runner("t_gate", size=1)
    gate = gate_for(runner)
    ticks = []

    def tick():
        ticks.append(time.monotonic())
        if len(ticks) == 3:
            gate.release(1)  # only ticks let the run end: without them drive would wait for ever

    runner.fill(sum_rows(1))
    runner.drive([0], tick=tick)
    assert runner.status(0).state is RunState.DONE and len(ticks) >= 3
    gaps = np.diff(ticks[:3])
    assert (gaps < 5.0).all(), gaps  # every half second; generous for a loaded machine


def test_failed_runs_driven_again_run_again(make_runner):
    runner = make_runner("t_sum_unless_negative", size=4, parallel=2)
    rows = sum_rows(4)
    rows["u"] = [1.0, -1.0, 2.0, -2.0]
    runner.fill(rows)
    runner.drive(range(4))
    assert sorted(runner.failed_runs) == [1, 3]
    assert "negative u" in runner.status(1).reason
    # Mend their inputs and drive just those: same ids, same rows, their failure forgotten.
    runner.fill([{"u": 5.0, "v": 0.5}], offset=1)
    runner.fill([{"u": 7.0, "v": 0.5}], offset=3)
    runner.drive(sorted(runner.failed_runs))
    assert runner.failed == {}
    assert [runner.status(run_id).state for run_id in range(4)] == [RunState.DONE] * 4
    assert runner.interface.output["f"][:4].tolist() == [1.5, 5.5, 2.5, 7.5]
    assert runner.next_run_id == 4


def test_active_missing_or_repeated_run_ids_are_refused(make_runner, gate_for):
    runner = make_runner("t_gate", size=3)
    gate = gate_for(runner)
    runner.fill(sum_rows(3))
    runner.spawn()  # run 0, held at the gate
    with pytest.raises(ConfigError, match="run 0 is still active"):
        runner.drive([1, 0])
    with pytest.raises(ConfigError, match="run 2 is given more than once"):
        runner.drive([2, 1, 2])
    with pytest.raises(RunNotFoundError, match="run 3 does not exist"):
        runner.drive([1, 3])
    # Nothing was started by the refused calls.
    assert list(runner.runs) == [0] and runner.status(1).state is RunState.PENDING
    gate.release(3)
    runner.drive([1, 2])
    runner.wait_all(timeout=30)
    assert [runner.status(run_id).state for run_id in range(3)] == [RunState.DONE] * 3


def test_spawn_array_without_wait_returns_once_all_started(make_runner, gate_for, runner_label):
    runner = make_runner("t_gate", size=3, parallel=3, **one_at_a_time(runner_label))
    gate = gate_for(runner)
    runner.spawn_array(sum_rows(3))  # within capacity: nothing to wait for
    assert sorted(runner.runs) == [0, 1, 2]
    gate.release(3)
    runner.wait_all(timeout=30)
    assert runner.interface.output["f"][:3].tolist() == [0.5, 1.5, 2.5]


# --- the slurm runner: job arrays as batches ----------------------------------------------------


def arrays_submitted(caplog):
    return [message.split(" are ")[0] for message in caplog.messages if "Slurm job array" in message]


def test_slurm_submits_the_runs_as_arrays_split_at_max_array_size(make_fake_runner, monkeypatch, caplog):
    monkeypatch.setenv("FAKE_SLURM_MAX_ARRAY_SIZE", "4")
    runner = make_fake_runner("t_sum")
    runner.fill(sum_rows(10))
    ticks = []
    with caplog.at_level("INFO", logger="profit"):
        runner.drive([0, 1, 2, 5, 9], tick=lambda: ticks.append(1))
    # Without a parallel limit all arrays go in at once.
    assert arrays_submitted(caplog) == ["runs 0..2", "runs 5..5", "runs 9..9"]
    assert [runner.status(run_id).state for run_id in (0, 1, 2, 5, 9)] == [RunState.DONE] * 5
    assert runner.status(3).state is RunState.PENDING and ticks


def test_slurm_with_parallel_submits_one_array_after_the_other(make_fake_runner, monkeypatch, caplog):
    monkeypatch.setenv("FAKE_SLURM_MAX_ARRAY_SIZE", "4")
    runner = make_fake_runner("t_span", output_config=outputs("start", "end"), parallel=2)
    rows = sum_rows(12)
    rows["u"] = 0.2
    runner.fill(rows)
    run_ids = [0, 1, 2, 3, 5, 11]  # sparse: 5 and 11 do not fit the array of 0..3
    with caplog.at_level("INFO", logger="profit"):
        runner.drive(run_ids)
    assert arrays_submitted(caplog) == ["runs 0..3", "runs 5..5", "runs 11..11"]
    assert runner.failed == {}
    assert most_at_once(runner.interface.output[run_ids]) <= 2


def test_slurm_respawn_array_is_drive(make_fake_runner):
    runner = make_fake_runner("t_sum")
    runner.fill(sum_rows(3))
    runner.respawn_array([0, 2], stop=lambda: False)
    assert runner.runs == {}
    assert [runner.status(run_id).state for run_id in range(3)] == [RunState.DONE, RunState.PENDING, RunState.DONE]
