"""The behaviour every runner x interface pair shares."""

import os

import numpy as np
import pytest
from helpers import most_at_once, outputs, params

from profit.run import RunState
from profit.run.errors import WaitTimeout

try:
    import distributed
except ImportError:  # (the extra 'dask' is not installed)
    distributed = None

# The runners of conftest.RUNNERS, and the Dask runner (on a cluster this file's tests share).
DASK = pytest.param("dask", marks=pytest.mark.skipif(distributed is None, reason="dask.distributed is not installed"))


@pytest.fixture(scope="module")
def dask_cluster():
    """Two single-threaded Dask worker processes; the dask runners of this file find them through
    Dask's config (``scheduler-address``), as a runner without scheduler or cluster does."""
    import dask

    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=40
    ) as cluster:
        with dask.config.set({"scheduler-address": cluster.scheduler_address}):
            yield cluster


@pytest.fixture(params=["fork", "local", "pool", DASK])
def runner_label(request):
    if request.param == "dask":
        request.getfixturevalue("dask_cluster")
    return request.param


def test_single_run_with_wait(make_runner):
    runner = make_runner("t_sum")
    run_id = runner.spawn({"u": 1.5, "v": 2.25}, wait=True)
    assert run_id == 0
    assert runner.runs == {} and runner.failed == {}
    assert runner.status(0).state is RunState.DONE
    assert runner.wait(0).state is RunState.DONE  # waiting for a finished run returns at once
    assert runner.output_data["f"].tolist() == [3.75]
    assert runner.input_data["u"].tolist() == [1.5]


def test_outputs_stay_aligned_with_inputs(make_runner):
    runner = make_runner("t_pair", output_config=outputs("f", "g"), size=3, parallel=2)
    rows = params(40)
    runner.spawn_array(rows, wait=True)
    assert runner.failed == {}
    np.testing.assert_array_equal(runner.input_data["u"], rows["u"])
    np.testing.assert_allclose(runner.output_data["f"], rows["u"] + rows["v"])
    np.testing.assert_allclose(runner.output_data["g"], rows["u"] - rows["v"])
    flat = runner.flat_output_data
    assert flat.shape == (40, 2)
    np.testing.assert_allclose(flat[:, 1], rows["u"] - rows["v"])


def test_vector_output(make_runner):
    runner = make_runner("t_vector", output_config=outputs("f", length=3))
    runner.spawn({"u": 1.0, "v": 2.0}, wait=True)
    assert runner.output_data["f"].tolist() == [[1.0, 2.0, 3.0]]
    assert runner.flat_output_data.tolist() == [[1.0, 2.0, 3.0]]


def test_integer_and_bool_inputs(make_runner):
    runner = make_runner("t_sum", input_config={"u": {"dtype": np.int64}, "v": {"dtype": np.bool_}})
    runner.spawn({"u": 41, "v": True}, wait=True)
    assert runner.output_data["f"].tolist() == [42.0]


@pytest.mark.exclusive
def test_parallel_limit_is_respected(make_runner):
    runner = make_runner("t_span", output_config=outputs("start", "end"), parallel=2)
    rows = params(6)
    rows["u"] = 0.3  # long enough that two runs overlap even when workers start slowly (a loaded machine)
    runner.spawn_array(rows, wait=True)
    assert runner.failed == {}
    assert most_at_once(runner.output_data) == 2  # both slots used, never more


def test_time_is_recorded_in_whole_seconds_as_in_profit(make_runner):
    runner = make_runner("t_span", output_config=outputs("start", "end"))
    runner.spawn({"u": 0.02, "v": 0.0}, wait=True)
    duration = runner.interface.internal["TIME"][0]
    assert runner.interface.internal["TIME"].dtype.kind == "u"  # proFit's uint32 seconds
    assert duration == 0  # a run of 0.02 s, cut to whole seconds


def test_state_column_and_npy_file(make_runner):
    runner = make_runner("t_sum", size=2)
    runner.spawn_array(params(3), wait=True)
    assert runner.interface.internal["STATE"][:3].tolist() == [RunState.DONE] * 3
    assert runner.interface.internal["DONE"][:3].all()
    if runner.interface.label == "memmap":
        saved = np.load(runner.interface.path)
        assert saved.shape == (runner.interface.size,)
        assert saved["STATE"][:3].tolist() == [RunState.DONE] * 3
        np.testing.assert_allclose(saved["f"][:3], runner.output_data["f"])


def test_waiting_is_not_paced_by_sleep(make_runner):
    # With a 60 s poll interval, only event-driven waiting finishes in time.
    runner = make_runner("t_sum", sleep=60, parallel=1)
    runner.spawn_array(params(3), wait=False)
    runner.wait_all(timeout=20)
    assert runner.status(2).state is RunState.DONE


def test_wait_all_timeout_leaves_runs_running(make_runner, gate_for):
    runner = make_runner("t_gate")
    gate = gate_for(runner)
    runner.spawn({"u": 1.0, "v": 1.0})
    with pytest.raises(WaitTimeout, match="still active"):
        runner.wait_all(timeout=0.2)
    assert list(runner.runs) == [0]
    gate.release(1)
    runner.wait_all(timeout=20)
    assert runner.output_data["f"].tolist() == [2.0], runner.status(0)


def test_fill_then_spawn_without_params(make_runner):
    runner = make_runner("t_sum")
    runner.fill(params(2))
    runner.spawn(wait=True)
    runner.spawn(wait=True)
    np.testing.assert_allclose(runner.output_data["f"], params(2)["u"] + params(2)["v"])


def test_config_is_json_able(make_runner):
    import json

    runner = make_runner("t_sum", parallel=3)
    config = json.loads(json.dumps(runner.config))
    assert config["parallel"] == 3 and config["class"] == runner.label
    assert json.loads(json.dumps(runner.interface.config))["class"] == runner.interface.label


def test_clean_removes_what_runs_left(make_runner):
    runner = make_runner("t_raise")
    runner.spawn({"u": 1.0, "v": 1.0}, wait=True)
    assert os.path.isdir(os.path.join(runner.work_dir, "log"))
    runner.clean()
    assert not os.path.exists(os.path.join(runner.work_dir, "log"))
    if runner.interface.label == "memmap":
        assert not os.path.exists(runner.interface.path)


def test_runner_as_context_manager_cancels_what_runs(make_runner, gate_for):
    runner = make_runner("t_gate")
    gate_for(runner)
    with runner:
        runner.spawn({"u": 1.0, "v": 1.0})
    assert runner.runs == {}
    assert runner.status(0).state is RunState.CANCELLED
