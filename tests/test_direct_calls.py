"""A pool worker calls a wrapped (or plain) function directly on the shared rows
(profit.run.directcall): every row, exit code, reason and log line must be what the usual
path (a Worker and a worker interface per run) gives for the same run."""

import logging
import sys

import numpy as np
import pytest
from helpers import SCALAR_INPUTS, outputs, params, scalar_runner

from profit.run import Runner, RunState, Worker
from profit.run.directcall import DirectCalls
from profit.run.worker import RunLog, execute_forked


@Worker.wrap("t_direct_float", "f")
def direct_float(u, v):
    return u + v


@Worker.wrap("t_direct_float64", "f")
def direct_float64(u, v):
    return np.float64(u) * v


@Worker.wrap("t_direct_int", "f")
def direct_int(u, v):
    return int(u * 10)  # (an int for a float column: converted as the usual record does)


@Worker.wrap("t_direct_pair", ["f", "g"])
def direct_pair(u, v):
    return u + v, u - v


@Worker.wrap("t_direct_list", ["f", "g"])
def direct_list(u, v):
    return [u + v, u - v]


@Worker.wrap("t_direct_one_tuple", "f")
def direct_one_tuple(u, v):
    return (u + v,)


@Worker.wrap("t_direct_raises", "f")
def direct_raises(u, v):
    if u < 0:
        raise ValueError(f"u is negative: {u}")
    return u + v


@Worker.wrap("t_direct_none", "f")
def direct_none(u, v):
    return None


@Worker.wrap("t_direct_text", "f")
def direct_text(u, v):
    return "not a number"


@Worker.wrap("t_direct_exits", "f")
def direct_exits(u, v):
    if u > 0:
        sys.exit(3)
    return u


@Worker.wrap("t_direct_array", "f")
def direct_array(u, v):
    return np.array([u, v])  # two values for one scalar output: a wrong count


@Worker.wrap("t_direct_vector", "f")
def direct_vector(u, v):
    return float(sum(u)) + v


@Worker.wrap("t_direct_typed", "f")
def direct_typed(n, flag):
    """1 for an int n, 2 for a bool flag: the inputs arrive as the usual records give them."""
    return float(type(n) is int) + 2.0 * float(type(flag) is bool)


SINGLE = ["t_direct_float", "t_direct_float64", "t_direct_int", "t_direct_one_tuple", "t_direct_raises"]
SINGLE += ["t_direct_none", "t_direct_text", "t_direct_exits", "t_direct_array"]
CASES = [(label, ("f",)) for label in SINGLE] + [("t_direct_pair", ("f", "g")), ("t_direct_list", ("f", "g"))]


@pytest.fixture
def keep_logging():
    """A run's log takes over the root logger in a worker process; here it must be put back."""
    root, ours = logging.getLogger(), logging.getLogger("profit")
    saved = root.handlers[:], ours.handlers[:], root.level
    yield
    root.handlers[:], ours.handlers[:] = saved[0], saved[1]
    root.setLevel(saved[2])


def _runner(tmp_path, name, label, names, input_config=SCALAR_INPUTS, size=8):
    config = {"class": "memmap", "size": size, "input_config": input_config, "output_config": outputs(*names)}
    return Runner["pool"](interface=config, worker=label, work_dir=str(tmp_path / name), parallel=1)


def _fill(runner, rows):
    for name in rows.dtype.names:
        runner.interface.input[name] = rows[name]


def _log_lines(path):
    """The log's lines without their time stamps."""
    return [line.split(" ", 2)[2] for line in path.read_text().splitlines() if line[:2] == "20"]


@pytest.mark.parametrize("label, names", CASES)
def test_a_direct_call_writes_what_the_usual_path_writes(tmp_path, keep_logging, monkeypatch, label, names):
    rows = params(8, seed=3)
    rows["u"][:2] = [-0.25, 0.75]  # (both signs, for the functions that fail on one)
    direct_runner, usual_runner = _runner(tmp_path, "direct", label, names), _runner(tmp_path, "usual", label, names)
    with direct_runner, usual_runner:
        _fill(direct_runner, rows)
        _fill(usual_runner, rows)
        monkeypatch.chdir(tmp_path)
        direct = DirectCalls.for_worker(direct_runner.worker_config, direct_runner.interface, None)
        assert direct is not None
        direct.log_path = "direct-logs"
        arguments = direct.read_inputs(list(range(8)))
        assert arguments is not None
        direct_codes = [direct.call(run_id, given) for run_id, given in enumerate(arguments)]
        usual_codes = [
            execute_forked(
                usual_runner.worker_config,
                usual_runner.interface,
                run_id,
                RunLog("usual-logs", run_id),
                row_is_current=False,
            )
            for run_id in range(8)
        ]
        assert direct_codes == usual_codes
        direct_rows, usual_rows = direct_runner.interface._data[:8], usual_runner.interface._data[:8]
        for name in direct_rows.dtype.names:
            assert direct_rows[name].tobytes() == usual_rows[name].tobytes(), name
    usual_logs = sorted(path.name for path in (tmp_path / "usual-logs").glob("*.log"))
    direct_logs = sorted(path.name for path in (tmp_path / "direct-logs").glob("*.log"))
    assert direct_logs == usual_logs
    for name in usual_logs:
        assert _log_lines(tmp_path / "direct-logs" / name) == _log_lines(tmp_path / "usual-logs" / name)


def test_quick_values_take_the_direct_way(tmp_path):
    """Plain floats into float64 columns are written directly (the case that makes the pool fast)."""
    runner = _runner(tmp_path, "study", "t_direct_pair", ("f", "g"))
    with runner:
        _fill(runner, params(8))
        direct = DirectCalls.for_worker(runner.worker_config, runner.interface, None)
        assert direct is not None and direct.read_inputs([0, 1]) is not None
        assert direct._outputs is not None and direct._inputs is not None


def test_inputs_arrive_as_python_values(tmp_path, keep_logging, monkeypatch):
    monkeypatch.chdir(tmp_path)  # (a failed run's log would go to log/ here)
    inputs = {"n": {"dtype": np.int64}, "flag": {"dtype": np.bool_}}
    runner = _runner(tmp_path, "study", "t_direct_typed", ("f",), input_config=inputs)
    with runner:
        runner.interface.input["n"] = [3, -4, 5, 0, 1, 2, 7, 9]
        runner.interface.input["flag"] = [True, False] * 4
        direct = DirectCalls.for_worker(runner.worker_config, runner.interface, None)
        assert direct is not None
        codes = [direct.call(run_id, given) for run_id, given in enumerate(direct.read_inputs(list(range(8))))]
        assert codes == [0] * 8
        assert runner.interface.output["f"].ravel().tolist() == [3.0] * 8


class Halves(Worker, label="t_direct_custom"):
    """A Worker of its own: its work is its own business."""

    def work(self):
        self.interface.retrieve()
        self.interface.output["f"] = self.interface.input["u"] / 2
        self.interface.transmit()


class Overridden(Worker["t_direct_float"], label="t_direct_overridden"):
    """A wrapped function's class whose work was changed: called the usual way."""

    def work(self):
        self.interface.retrieve()
        self.interface.output["f"] = -1.0
        self.interface.transmit()


class OtherFunction(Worker["t_direct_float"], label="t_direct_other_function"):
    """A wrapped function's class given another function: its work still calls the wrapped one."""

    function = staticmethod(lambda u, v: -1.0)


@pytest.mark.parametrize(
    "worker, why",
    [
        ("t_direct_custom", "a Worker of its own"),
        ("t_direct_overridden", "a subclass that changes work"),
        ("t_direct_other_function", "a subclass with another function than its work calls"),
        ({"class": "t_direct_float", "debug": True}, "debug mode logs every run"),
    ],
)
def test_other_workers_take_the_usual_way(tmp_path, worker, why):
    runner = scalar_runner("pool", tmp_path, worker, size=4, parallel=1)
    with runner:
        assert DirectCalls.for_worker(runner.worker_config, runner.interface, None) is None, why


def test_vector_outputs_are_written_the_usual_way(tmp_path, keep_logging, monkeypatch):
    monkeypatch.chdir(tmp_path)  # (the failed runs' logs go to log/ here)
    config = {"class": "memmap", "size": 4, "input_config": SCALAR_INPUTS, "output_config": outputs("f", "g", length=2)}
    runner = Runner["pool"](interface=config, worker="t_direct_pair", work_dir=str(tmp_path), parallel=1)
    with runner:
        _fill(runner, params(4))
        direct = DirectCalls.for_worker(runner.worker_config, runner.interface, None)
        assert direct is not None
        arguments = direct.read_inputs([0, 1, 2, 3])
        assert direct._outputs is None  # (a vector column: the usual record converts what it gets)
        codes = [direct.call(run_id, given) for run_id, given in enumerate(arguments)]
        # A float for a vector of 2 is a wrong count, as the usual path says.
        assert codes == [1] * 4
        assert runner.interface.reason(0).startswith(
            "WorkerOutputError: function direct_pair: output 'f' must be a vector of 2 floats; got "
        )


def mixed(u, v):
    """Every way a run of a function can end, by the value of u."""
    if u < -0.6:
        raise ValueError(f"u is too small: {u:.3f}")
    if u < -0.2:
        return int(u * 100)
    if u < 0.2:
        return np.float64(u) * v
    if u < 0.6:
        return None
    return u + v


@pytest.mark.parametrize("interface", ["memmap", "zeromq"])
@pytest.mark.parametrize("worker", ["t_direct_raises", mixed])
def test_a_pool_gives_what_forked_workers_give(tmp_path, interface, worker):
    """The same runs through a pool (direct calls) and a fork per run (the usual path): the same
    outputs, states and reasons."""
    rows = params(40, seed=7)
    results = {}
    for label in ("pool", "fork"):
        runner = scalar_runner(label, tmp_path / label, worker, size=40, interface=interface, parallel=2)
        with runner:
            runner.spawn_array(rows, wait=True)
            statuses = [runner.status(run_id) for run_id in range(40)]
            results[label] = (
                runner.output_data["f"].ravel().tobytes(),
                [status.state for status in statuses],
                [status.reason for status in statuses],
            )
    assert results["pool"] == results["fork"]
    states = results["pool"][1]
    assert RunState.DONE in states and RunState.FAILED in states  # (both ways of ending were taken)


@Worker.wrap("t_direct_moves_and_raises", "f")
def direct_moves_and_raises(u, v):
    """Changes into a directory of its own (beside the study's), then fails for u < 0."""
    import os

    os.makedirs("../elsewhere", exist_ok=True)
    os.chdir("../elsewhere")
    if u < 0:
        raise ValueError(f"u is negative: {u}")
    return u + v


def test_a_failed_run_logs_where_it_started_whatever_directory_it_left(tmp_path):
    """A run's log lies in the study's log/ even when the run changed directory before it failed."""
    runner = scalar_runner("pool", tmp_path / "study", "t_direct_moves_and_raises", size=2, parallel=1)
    with runner:
        rows = params(2)
        rows["u"] = [1.0, -1.0]
        runner.spawn_array(rows, wait=True)
        assert runner.status(1).state is RunState.FAILED
        assert runner.interface.output["f"][0] == 1.0 + rows["v"][0]
    log = tmp_path / "study" / "log" / "run_001.log"
    assert "u is negative: -1" in log.read_text()
    assert not list((tmp_path / "elsewhere").rglob("*.log"))


def test_a_module_that_exits_as_it_is_imported_fails_each_run_with_its_code(tmp_path):
    """A function worker's module that calls sys.exit at its import (a script): every run ends with
    that code, on the pool as on forked workers, and the pool's worker processes live on."""
    (tmp_path / "scripts").mkdir()
    script = "import sys\n\n\ndef f(u, v):\n    return u + v\n\n\nsys.exit(4)\n"
    (tmp_path / "scripts" / "exiting_script.py").write_text(script)
    worker = {"class": "function", "function": "exiting_script:f", "path": str(tmp_path / "scripts"), "outputs": ["f"]}
    reasons = {}
    for label in ("pool", "fork"):
        runner = scalar_runner(label, tmp_path / label, worker, size=4, parallel=1)
        with runner:
            runner.spawn_array(params(2), wait=True)
            if label == "pool":
                pid = runner._workers[0].process.pid
            runner.spawn_array(params(2), wait=True)
            if label == "pool":
                assert [worker.process.pid for worker in runner._workers] == [pid]
            reasons[label] = [runner.status(run_id).reason for run_id in range(4)]
    assert reasons["pool"] == reasons["fork"] == ["worker exited with code 4"] * 4
