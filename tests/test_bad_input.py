"""Bad input gets one clear sentence, and nothing already completed is lost."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from helpers import outputs, wait_for

from profit.run import Runner, RunState, WorkerInterface
from profit.run.errors import ConfigError, InterfaceError, ParameterError, RunNotFoundError, UnknownLabelError
from profit.run.local import MemmapRunnerInterface, MemmapWorkerInterface


@pytest.fixture
def runner_with_result(make_runner):
    """A runner that already completed one run; every test checks it survives."""
    runner = make_runner("t_sum", size=1)
    runner.spawn({"u": 1.0, "v": 2.0}, wait=True)
    yield runner
    assert runner.status(0).state is RunState.DONE
    assert runner.interface.output["f"][0] == 3.0


def test_unknown_worker_label(tmp_path):
    interface = {"class": "memmap", "size": 1, "input_config": {}, "output_config": {}}
    with pytest.raises(UnknownLabelError, match=r"unknown Worker label 'nope'; known labels: .*'t_sum'"):
        Runner["fork"](interface=interface, worker="nope", work_dir=str(tmp_path))


def test_unknown_interface_label(tmp_path):
    with pytest.raises(UnknownLabelError, match=r"unknown RunnerInterface label 'zmq'.*'memmap'"):
        Runner["fork"](interface={"class": "zmq"}, worker="t_sum", work_dir=str(tmp_path))


def test_params_with_unknown_and_missing_keys(runner_with_result):
    with pytest.raises(
        ParameterError, match=r"params for run 1: 'w' is not an input; 'v' is missing \(the inputs are u, v\)"
    ):
        runner_with_result.spawn({"u": 1.0, "w": 2.0})
    assert runner_with_result.next_run_id == 1 and runner_with_result.runs == {}


def test_params_of_the_wrong_type(runner_with_result):
    with pytest.raises(ParameterError, match="must be a mapping of input name to value or a numpy record, got list"):
        runner_with_result.spawn([1.0, 2.0])


@pytest.mark.parametrize(
    "value, fragment",
    [
        ("abc", "cannot convert 'abc' to float64"),
        (None, "cannot convert None to float64"),
        ([1.0, 2.0], "cannot convert [1.0, 2.0] to float64 (expected a single value)"),
    ],
)
def test_value_that_cannot_be_converted(runner_with_result, value, fragment):
    with pytest.raises(ParameterError, match=re.escape(f"input 'u' of run 1: {fragment}")):
        runner_with_result.spawn({"u": value, "v": 1.0})


def test_lossy_integer_conversion_is_refused(make_runner):
    runner = make_runner("t_sum", input_config={"u": {"dtype": np.int32}, "v": {"dtype": np.float64}})
    with pytest.raises(ParameterError, match="without losing its fractional part"):
        runner.spawn({"u": 1.5, "v": 0.0})
    with pytest.raises(ParameterError, match=r"out of range"):
        runner.spawn({"u": 2**40, "v": 0.0})


def test_fill_validates_every_row_before_writing(runner_with_result):
    rows = [{"u": 5.0, "v": 5.0}, {"u": "x", "v": 1.0}]
    with pytest.raises(ParameterError, match="input 'u' of run 2"):
        runner_with_result.fill(rows, offset=1)
    assert runner_with_result.interface.input["u"][0] == 1.0


@pytest.mark.parametrize("size", [(2, 3), (1, 0), (1, 2.5), 3, "big"])
def test_invalid_output_size(tmp_path, size):
    with pytest.raises(ConfigError, match=r"output 'f': size .* is invalid; expected \(1, n\)"):
        MemmapRunnerInterface(
            2, {"u": {"dtype": np.float64}}, {"f": {"dtype": np.float64, "size": size}}, path=str(tmp_path / "i.npy")
        )


def test_reserved_and_clashing_names(tmp_path):
    with pytest.raises(ConfigError, match="'DONE' is reserved"):
        MemmapRunnerInterface(1, {"DONE": {"dtype": np.float64}}, {}, path=str(tmp_path / "i.npy"))
    with pytest.raises(ConfigError, match="'x' is both an input and an output"):
        MemmapRunnerInterface(1, {"x": {}}, {"x": {}}, path=str(tmp_path / "i.npy"))


def test_wrapped_function_with_wrong_number_of_values(make_runner):
    runner = make_runner("t_wrong_count", output_config=outputs("f", "g"))
    runner.spawn({"u": 1.0, "v": 2.0}, wait=True)
    assert (
        runner.status(0).reason
        == "WorkerOutputError: function wrong_count returned 3 values; expected 2 (one for each output: f, g)"
    )


def test_run_id_outside_the_interface(runner_with_result):

    if runner_with_result.interface.label == "zeromq":
        from concurrent.futures import ThreadPoolExecutor

        options = {k: v for k, v in runner_with_result.interface.config.items() if k != "class"}
        worker_side = WorkerInterface["zeromq"](7, **options)
        with (
            ThreadPoolExecutor(1) as pool,
            pytest.raises(InterfaceError, match="refused READY for run 7: run 7 does not exist"),
        ):
            call = pool.submit(worker_side.retrieve)
            wait_for(lambda: runner_with_result.interface.poll() or call.done(), what="the refusal")
            call.result()
    else:
        # Read the file as a worker started through the shell would (not through the runner's mapping).
        interface = MemmapWorkerInterface(7, path=runner_with_result.interface.path)
        with pytest.raises(InterfaceError, match=r"run id 7 is outside the interface file .*\(it holds runs 0\.\.0\)"):
            interface.retrieve()
    with pytest.raises(RunNotFoundError, match="run 7 was never started"):
        runner_with_result.wait(7)
    with pytest.raises(RunNotFoundError, match="run 7 is not active"):
        runner_with_result.cancel(7)
    with pytest.raises(RunNotFoundError, match="run 7 does not exist"):
        runner_with_result.status(7)


def test_missing_interface_file(tmp_path):
    interface = MemmapWorkerInterface(0, path=str(tmp_path / "missing.npy"))
    with pytest.raises(InterfaceError, match=r"interface file .*missing\.npy does not exist"):
        interface.retrieve()


@pytest.mark.parametrize("content", [b"garbage" * 20, b"\x93NUMPY\x01\x00\x10\x00{'descr': oops"])
def test_corrupt_interface_file(tmp_path, content):
    path = tmp_path / "interface.npy"
    path.write_bytes(content)
    with pytest.raises(InterfaceError, match=r"interface file .*interface\.npy is corrupt"):
        MemmapWorkerInterface(0, path=str(path)).retrieve()


def test_foreign_npy_file(tmp_path):
    path = tmp_path / "interface.npy"
    np.save(path, np.zeros((3, 3)))
    with pytest.raises(InterfaceError, match="expected a 1-D structured array"):
        MemmapWorkerInterface(0, path=str(path)).retrieve()


def test_profit_worker_reports_missing_file_in_the_run_log(runner_with_result, tmp_path):
    """A worker that cannot reach its interface fails the run with the reason in its log."""
    env = {
        **os.environ,
        "PROFIT_RUN_ID": "0",
        "PROFIT_WORKER": json.dumps({"class": "t_sum"}),
        "PROFIT_INTERFACE": json.dumps({"class": "memmap", "path": str(tmp_path / "gone.npy")}),
        "PROFIT_INCLUDES": json.dumps([os.path.join(os.path.dirname(__file__), "workers.py")]),
    }
    worker = os.path.join(os.path.dirname(sys.executable), "profit-worker")
    done = subprocess.run([worker], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    with open(tmp_path / "log" / "run_000.log") as log:
        assert "gone.npy does not exist" in log.read().strip().splitlines()[-1]


def test_profit_worker_without_environment(tmp_path):
    worker = os.path.join(os.path.dirname(sys.executable), "profit-worker")
    env = {key: value for key, value in os.environ.items() if not key.startswith("PROFIT_")}
    done = subprocess.run([worker], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "profit-worker: environment variable PROFIT_WORKER is not set; "
        "profit-worker is started by a runner, which sets it"
    )


def test_interface_label_alone_is_not_enough(tmp_path):
    with pytest.raises(ConfigError, match="a label alone is not enough here"):
        Runner["fork"](interface="memmap", worker="t_sum", work_dir=str(tmp_path))


@pytest.mark.parametrize("parallel", [-1, 1.5, "many"])
def test_bad_parallel(tmp_path, parallel):
    interface = {"class": "memmap", "size": 1, "input_config": {}, "output_config": {}}
    with pytest.raises(ConfigError, match="parallel must be a whole number >= 0"):
        Runner["fork"](interface=interface, worker="t_sum", work_dir=str(tmp_path), parallel=parallel)
