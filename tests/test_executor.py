"""profit.run.Executor as a concurrent.futures.Executor: futures, map, cancel, failures, arguments and
results, shutdown, memoised evaluations in a study directory, other interfaces and runners.

Functions that run in workers live in ``executor_models.py``. Nothing here sleeps and hopes: a test
waits for a file or a process with a bound (helpers.wait_for), and a function that blocks waits for a
file the test creates.
"""

import concurrent.futures
import math
import os
import subprocess
import sys

import executor_models as models
import numpy as np
import pytest
from helpers import TESTS, wait_for

from profit.run import Executor, RunFailed, RunState
from profit.run.errors import ConfigError

SRC = str(TESTS.parent / "src")


@pytest.fixture
def make_executor():
    """Build executors; each is shut down at the end (what still runs is cancelled)."""
    made = []

    def make(runner="fork", **options):
        executor = Executor(runner, **options)
        made.append(executor)
        return executor

    yield make
    for executor in made:
        executor.cancel_all()
        executor.shutdown(wait=True, cancel_futures=True)


def process_ended(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def read_pid(path, timeout=20):
    wait_for(lambda: os.path.exists(path), timeout=timeout, what=f"{path} to be written")
    with open(path) as file:
        return int(file.read())


# --- futures and concurrent.futures' functions --------------------------------------------------


def test_as_completed_yields_every_future_with_its_value(make_executor):
    executor = make_executor("pool", parallel=2)
    futures = {executor.submit(models.double, i): i for i in range(100)}
    seen = {}
    for future in concurrent.futures.as_completed(futures, timeout=50):
        seen[futures[future]] = future.result()
    assert seen == {i: 2 * i for i in range(100)}


def test_wait_first_completed_returns_the_call_that_finished(make_executor, tmp_path):
    executor = make_executor("fork", parallel=2)
    gate = str(tmp_path / "gate")
    blocked = executor.submit(models.gated, str(tmp_path / "started"), gate, 1.0)
    quick = executor.submit(models.double, 21)
    first = concurrent.futures.FIRST_COMPLETED
    done, not_done = concurrent.futures.wait([blocked, quick], timeout=20, return_when=first)
    assert done == {quick} and not_done == {blocked}
    assert quick.result() == 42 and not blocked.done()
    open(gate, "w").close()
    done, not_done = concurrent.futures.wait([blocked, quick], timeout=20)
    assert not not_done and blocked.result() == 1.0


def test_futures_are_run_futures_with_callbacks(make_executor):
    executor = make_executor("fork", parallel=2)
    future = executor.submit(models.add, 2, 3)
    assert isinstance(future, concurrent.futures.Future)
    values = []
    future.add_done_callback(lambda done: values.append(done.result()))
    assert future.result(timeout=20) == 5
    wait_for(lambda: values == [5], what="the done callback")


# --- cancel ---------------------------------------------------------------------------------------


def test_cancel_of_a_pending_call_means_it_never_runs(make_executor, tmp_path):
    executor = make_executor("fork", parallel=1)
    started, gate = str(tmp_path / "started"), str(tmp_path / "gate")
    evidence = str(tmp_path / "evidence")
    first = executor.submit(models.gated, started, gate, 1.0)
    wait_for(lambda: os.path.exists(started), timeout=20, what="the first call to start")
    pending = executor.submit(models.touch, evidence)
    assert not pending.running() and not pending.done()
    assert pending.cancel() is True
    assert pending.cancelled() and pending.done()
    with pytest.raises(concurrent.futures.CancelledError):
        pending.result(timeout=0)
    open(gate, "w").close()
    assert first.result(timeout=20) == 1.0
    # A call submitted after it runs after the place the cancelled one had: had that run, it would have by now.
    after = str(tmp_path / "after")
    assert executor.submit(models.touch, after).result(timeout=20) == after
    assert os.path.exists(after) and not os.path.exists(evidence)


@pytest.mark.parametrize("runner", ["fork", "pool", "local"])
def test_cancel_of_a_running_call_ends_its_process(make_executor, tmp_path, runner):
    executor = make_executor(runner, parallel=2)
    pid_file = str(tmp_path / "pid")
    future = executor.submit(models.pid_then_sleep, pid_file, 60.0)
    pid = read_pid(pid_file)
    wait_for(future.running, timeout=10, what="the future to be running")
    assert future.cancel() is True
    assert future.cancelled()
    wait_for(lambda: process_ended(pid), timeout=15, what=f"process {pid} to end")
    with pytest.raises(concurrent.futures.CancelledError):
        future.result(timeout=0)
    # The executor goes on.
    assert list(executor.map(models.double, [1, 2, 3], timeout=30)) == [2, 4, 6]


def test_every_new_executor_hears_a_cancel(tmp_path):
    """A post right after the driver started was lost once (the wake-up byte drained, the flag left
    set): the next post (this cancel) woke nobody. Many fresh executors, each cancelling at once."""
    for attempt in range(30):
        with Executor(("fork", "pool", "local")[attempt % 3], parallel=1) as executor:
            pid_file = str(tmp_path / f"pid-{attempt}")
            future = executor.submit(models.pid_then_sleep, pid_file, 60.0)
            pid = read_pid(pid_file)
            assert future.cancel() is True
            wait_for(lambda: process_ended(pid), timeout=10, what=f"attempt {attempt}: process {pid} to end")


def test_cancel_races_the_driver_starting_the_calls(make_executor, caplog):
    """Cancelling while the driver starts the same calls: cancel() never raises, nothing is logged
    as CRITICAL, and each future ends either cancelled or with its value."""
    executor = make_executor("fork", parallel=2)
    futures = [executor.submit(models.double, i) for i in range(60)]
    for future in futures[::2]:
        future.cancel()
    concurrent.futures.wait(futures, timeout=30)
    for i, future in enumerate(futures):
        assert future.done()
        assert future.cancelled() or future.result() == 2 * i
    assert all(future.cancelled() or future.result() == 2 * i for i, future in enumerate(futures))
    assert not [record for record in caplog.records if record.levelname == "CRITICAL"]


def test_cancel_of_a_finished_call_is_refused(make_executor):
    executor = make_executor("fork")
    future = executor.submit(models.double, 4)
    assert future.result(timeout=20) == 8
    assert future.cancel() is False and not future.cancelled()


# --- failures -------------------------------------------------------------------------------------


def test_an_exception_fails_the_call_with_its_reason_and_log(make_executor):
    executor = make_executor("fork")
    future = executor.submit(models.fails, 3)
    with pytest.raises(RunFailed) as caught:
        future.result(timeout=20)
    failure = caught.value
    assert "ValueError" in failure.reason and "x=3 is out of range" in failure.reason
    assert "Traceback" in failure.log and "ValueError: x=3 is out of range" in failure.log
    assert failure.log_file and os.path.exists(failure.log_file)
    assert failure.run_id == 0
    assert failure.state == RunState.FAILED
    # The other calls are not affected.
    assert executor.submit(models.double, 2).result(timeout=20) == 4


def test_nan_on_failure_gives_nan_from_map(make_executor):
    executor = make_executor("pool", parallel=2, nan_on_failure=True)
    values = list(executor.map(models.fails_when_negative, [1.0, -1.0, 2.0, -2.0], timeout=30))
    assert values[0] == 1.0 and values[2] == 2.0
    assert math.isnan(values[1]) and math.isnan(values[3])
    # The future itself still raises: nan_on_failure is about map's values.
    with pytest.raises(RunFailed):
        executor.submit(models.fails_when_negative, -5.0).result(timeout=20)


def test_map_raises_the_failure_without_nan_on_failure(make_executor):
    executor = make_executor("fork", parallel=2)
    with pytest.raises(RunFailed, match="negative"):
        list(executor.map(models.fails_when_negative, [1.0, -1.0, 2.0], timeout=30))


def test_a_call_over_its_timeout_fails_saying_so(make_executor, tmp_path):
    executor = make_executor("fork", timeout=0.5)
    pid_file = str(tmp_path / "pid")
    future = executor.submit(models.pid_then_sleep, pid_file, 30.0)
    with pytest.raises(RunFailed) as caught:
        future.result(timeout=20)
    assert "timed out" in caught.value.reason
    pid = read_pid(pid_file, timeout=1)
    wait_for(lambda: process_ended(pid), timeout=10, what="the timed out process to end")


def test_retries_run_a_failing_call_again(make_executor, tmp_path):
    executor = make_executor("fork", retries=2)
    counter = str(tmp_path / "attempts")
    assert executor.submit(models.flaky, counter, 2).result(timeout=30) == 3
    with open(counter) as file:
        assert file.read() == "xxx"


def test_retries_give_up_after_the_last_attempt(make_executor, tmp_path):
    executor = make_executor("fork", retries=1)
    counter = str(tmp_path / "attempts")
    with pytest.raises(RunFailed, match="attempt 2 fails"):
        executor.submit(models.flaky, counter, 5).result(timeout=30)
    with open(counter) as file:
        assert file.read() == "xx"


# --- map, starmap, __call__ ----------------------------------------------------------------------


def test_map_keeps_input_order_with_varied_durations(make_executor):
    executor = make_executor("pool", parallel=2)
    xs = list(range(8))
    delays = [0.3, 0.0, 0.2, 0.0, 0.1, 0.0, 0.05, 0.0]
    assert list(executor.map(models.delayed_square, xs, delays, timeout=30)) == [x * x for x in xs]


def test_map_unordered_yields_every_result(make_executor):
    executor = make_executor("pool", parallel=2)
    xs = list(range(8))
    delays = [0.3, 0.0, 0.2, 0.0, 0.1, 0.0, 0.05, 0.0]
    values = list(executor.map(models.delayed_square, xs, delays, timeout=30, unordered=True))
    assert sorted(values) == [x * x for x in xs]
    unordered = make_executor("fork", parallel=2, unordered=True)
    assert sorted(unordered.map(models.double, range(10), timeout=30)) == [2 * x for x in range(10)]


def test_map_timeout_bounds_the_iteration(make_executor, tmp_path):
    executor = make_executor("fork", parallel=1)
    iterator = executor.map(models.gated, [str(tmp_path / "started")], [str(tmp_path / "never")], [1.0], timeout=0.2)
    with pytest.raises(concurrent.futures.TimeoutError):
        next(iterator)


def test_starmap_call_and_kwargs(make_executor):
    executor = make_executor("fork", parallel=2)
    assert executor.starmap(models.add, [(1, 2), (3, 4), (5.5, 0.5)]) == [3, 7, 6.0]
    values = executor(models.double, range(5))
    assert isinstance(values, list) and values == [0, 2, 4, 6, 8]
    assert executor.submit(models.scaled_sum, 1.0, 2.0, scale=3.0).result(timeout=20) == 9.0
    assert executor.submit(models.scaled_sum, 1.0, y=2.0, offset=0.5).result(timeout=20) == 3.5
    assert executor.submit(models.scaled_sum, x=1, y=2, scale=2, offset=1).result(timeout=20) == 7


# --- what travels -----------------------------------------------------------------------------------


@pytest.mark.parametrize("runner", ["fork", "local"])
def test_arguments_arrive_with_their_types(make_executor, runner):
    executor = make_executor(runner, parallel=2)
    cases = [
        (np.arange(5.0), ("ndarray", "<f8", (5,), [0.0, 1.0, 2.0, 3.0, 4.0])),
        (np.arange(6, dtype=np.int32).reshape(2, 3), ("ndarray", "<i4", (2, 3), [[0, 1, 2], [3, 4, 5]])),
        (np.array([[1.5, -2.0]], dtype=np.float32), ("ndarray", "<f4", (1, 2), [[1.5, -2.0]])),
        (np.arange(3, dtype=np.uint8), ("ndarray", "|u1", (3,), [0, 1, 2])),
        (np.float32(2.5), ("float32", "<f4", (), 2.5)),
        (np.int64(7), ("int64", "<i8", (), 7)),
        (np.float64(0.1), ("float64", "<f8", (), 0.1)),
        (3, ("int", None, None, 3)),
        (0.1, ("float", None, None, 0.1)),
        (True, ("bool", None, None, True)),
        ("a string", ("str", None, None, "a string")),
        ({"a": [1, 2]}, ("dict", None, None, {"a": [1, 2]})),
        (None, ("NoneType", None, None, None)),
        (np.array(["x", "y"]), ("ndarray", "<U1", (2,), ["x", "y"])),  # not numeric: pickled
    ]
    futures = [executor.submit(models.describe, value) for value, _ in cases]
    for (value, expected), future in zip(cases, futures):
        assert future.result(timeout=30) == expected, value


def test_exact_values_travel_in_the_row(make_executor):
    executor = make_executor("fork", parallel=2)
    values = [0.1, 1 / 3, -0.0, 1e-300, 2.0**-1074, float("inf"), 2**62 + 1, -(2**63)]
    results = list(executor.map(models.echo, values, timeout=30))
    for value, result in zip(values, results):
        assert type(result) is type(value) and result == value and math.copysign(1, result) == math.copysign(1, value)
    assert math.isnan(executor.submit(models.echo, float("nan")).result(timeout=20))
    big = 2**70  # beyond the row's int64: travels pickled
    assert executor.submit(models.echo, big).result(timeout=20) == big


@pytest.mark.parametrize("runner", ["fork", "local"])
def test_results_come_back_with_their_types(make_executor, runner):
    executor = make_executor(runner, parallel=2)
    kinds = ["array", "int_array", "tuple", "dict", "string", "none", "int", "big_int", "float", "float64", "bool"]
    results = dict(zip(kinds, executor.map(models.make_result, kinds, timeout=30)))
    for kind in kinds:
        expected = models.make_result(kind)
        result = results[kind]
        assert type(result) is type(expected), kind
        if isinstance(expected, np.ndarray):
            assert result.dtype == expected.dtype and result.shape == expected.shape
            np.testing.assert_array_equal(result, expected)
        else:
            assert result == expected, kind


def test_a_large_array_travels_pickled(make_executor):
    executor = make_executor("fork")
    big = np.arange(5000.0).reshape(50, 100)
    result = executor.submit(models.describe, big).result(timeout=20)
    assert result[:3] == ("ndarray", "<f8", (50, 100))
    np.testing.assert_array_equal(np.array(result[3]), big)


def test_a_lambda_and_a_closure_on_forking_runners(make_executor):
    executor = make_executor("pool", parallel=2)
    offset = 10
    assert list(executor.map(lambda x: x + offset, [1, 2], timeout=20)) == [11, 12]


# --- shutdown ----------------------------------------------------------------------------------------


def test_submit_after_shutdown_raises(make_executor):
    executor = make_executor("fork")
    assert executor.submit(models.double, 1).result(timeout=20) == 2
    executor.shutdown()
    with pytest.raises(RuntimeError, match="shutdown"):
        executor.submit(models.double, 1)
    with pytest.raises(RuntimeError):
        executor.map(models.double, [1])


def test_shutdown_cancel_futures_cancels_the_queued_calls(make_executor, tmp_path):
    executor = make_executor("fork", parallel=1)
    started, gate = str(tmp_path / "started"), str(tmp_path / "gate")
    first = executor.submit(models.gated, started, gate, 1.0)
    wait_for(lambda: os.path.exists(started), timeout=20, what="the first call to start")
    queued = [executor.submit(models.touch, str(tmp_path / f"queued-{i}")) for i in range(3)]
    executor.shutdown(wait=False, cancel_futures=True)
    wait_for(lambda: all(future.cancelled() for future in queued), timeout=10, what="the queued calls cancelled")
    open(gate, "w").close()  # the running call was not cancelled: it finishes
    assert first.result(timeout=20) == 1.0
    executor.shutdown(wait=True)
    assert not any(os.path.exists(tmp_path / f"queued-{i}") for i in range(3))


def test_shutdown_waits_for_running_calls(make_executor):
    executor = make_executor("fork", parallel=2)
    futures = [executor.submit(models.delayed_square, x, 0.2) for x in range(4)]
    executor.shutdown(wait=True)
    assert [future.result(timeout=0) for future in futures] == [0, 1, 4, 9]


def test_an_exception_in_the_with_block_cancels_the_running_calls(tmp_path):
    class Stop(Exception):
        pass

    pid_files = [str(tmp_path / f"pid-{i}") for i in range(2)]
    with pytest.raises(Stop):
        with Executor("fork", parallel=2) as executor:
            running = [executor.submit(models.pid_then_sleep, path, 60.0) for path in pid_files]
            queued = executor.submit(models.touch, str(tmp_path / "queued"))
            pids = [read_pid(path) for path in pid_files]
            raise Stop
    # __exit__ returned: the runs were cancelled and the runners closed.
    for pid in pids:
        wait_for(lambda: process_ended(pid), timeout=15, what=f"process {pid} to end")
    assert all(future.cancelled() for future in running) and queued.cancelled()
    assert not os.path.exists(tmp_path / "queued")


def test_the_with_block_waits_for_the_calls(tmp_path):
    with Executor("pool", parallel=2) as executor:
        futures = [executor.submit(models.delayed_square, x, 0.05) for x in range(6)]
    assert [future.result(timeout=0) for future in futures] == [x * x for x in range(6)]
    assert executor.size == executor._max_workers == 2


def test_options_are_checked(tmp_path):
    with pytest.raises(ConfigError):
        Executor("fork", work_dir=str(tmp_path), worker="x")
    with pytest.raises(ConfigError):
        Executor("fork", fresh=True)
    with pytest.raises(Exception):
        Executor("no-such-runner")


# --- other interfaces ---------------------------------------------------------------------------


def test_zeromq_interface_with_the_fork_runner(make_executor):
    pytest.importorskip("zmq", reason="pyzmq is not installed")
    executor = make_executor("fork", parallel=2, interface="zeromq")
    assert list(executor.map(models.add, [1.0, 2.0, 3.0], [0.5, 0.5, 0.5], timeout=30)) == [1.5, 2.5, 3.5]
    assert executor.submit(models.make_result, "dict").result(timeout=20) == {"a": 1, "b": [2, 3]}
    np.testing.assert_array_equal(executor.submit(models.echo, np.arange(4.0)).result(timeout=20), np.arange(4.0))
    with pytest.raises(RunFailed, match="ValueError"):
        executor.submit(models.fails, 1).result(timeout=20)


# --- scripts: __main__ functions, memoised restarts ------------------------------------------------


def run_script(path, *, env=None, timeout=60):
    environment = {**os.environ, **(env or {})}
    environment["PYTHONPATH"] = os.pathsep.join([SRC, str(TESTS), environment.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=timeout, env=environment)


MAIN_FUNCTION = """\
from profit.run import Executor

def cube(x):
    return x ** 3

if __name__ == "__main__":
    with Executor("local", parallel=2) as executor:
        print(list(executor.map(cube, [1, 2, 3, 4.5])))
"""


def test_a_function_of_main_on_the_local_runner(tmp_path):
    pytest.importorskip("cloudpickle", reason="a function of __main__ travels by cloudpickle")
    script = tmp_path / "script.py"
    script.write_text(MAIN_FUNCTION)
    done = run_script(script)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[1, 8, 27, 91.125]"


UNPICKLABLE = """\
import sys, threading
sys.modules["cloudpickle"] = None  # as if it were not installed
from profit.run import Executor
from profit.run.errors import ConfigError

def make():
    lock = threading.Lock()
    def locked(x):
        with lock:
            return x
    return locked

if __name__ == "__main__":
    with Executor("local") as executor:
        future = executor.submit(make(), 1)
        try:
            future.result(timeout=30)
        except ConfigError as error:
            print("ConfigError:", error)
"""


def test_a_function_that_cannot_be_sent_fails_with_one_sentence(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(UNPICKLABLE)
    done = run_script(script)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ConfigError: "), done.stdout
    assert "cannot be sent to a worker" in lines[0] and "locked" in lines[0]
    assert "Traceback" not in done.stdout


MEMO_MODEL = """\
import os, signal, time

def evaluate(x):
    with open(os.environ["EXECUTIONS"], "a") as file:
        file.write(f"{{x}}\\n")
    if x == int(os.environ.get("KILL_AT", "-1")):
        os.kill(int(os.environ["SCRIPT_PID"]), signal.SIGKILL)
        time.sleep(5)
    return {body}
"""

MEMO_SCRIPT = """\
import os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ["SCRIPT_PID"] = str(os.getpid())
from memo_model import evaluate
from profit.run import Executor

fresh = os.environ.get("FRESH") == "1"
with Executor("fork", parallel=2, study=os.environ["STUDY"], fresh=fresh) as executor:
    for x, y in zip(range(40), executor.map(evaluate, range(40))):
        print(x, y, flush=True)
"""


def executions(path):
    if not os.path.exists(path):
        return []
    with open(path) as file:
        return [int(line) for line in file.read().split()]


def test_a_restarted_script_gets_finished_evaluations_back(tmp_path):
    (tmp_path / "memo_model.py").write_text(MEMO_MODEL.format(body="x * x"))
    script = tmp_path / "script.py"
    script.write_text(MEMO_SCRIPT)
    log = str(tmp_path / "executions.log")
    env = {"STUDY": str(tmp_path / "study"), "EXECUTIONS": log}

    first = run_script(script, env={**env, "KILL_AT": "20"})
    assert first.returncode == -9, first.stderr
    # The lines printed whole (the kill may cut the last one short).
    printed = [line.split() for line in first.stdout.split("\n")[:-1]]
    finished = {int(x) for x, _ in printed}
    assert all(int(y) == int(x) ** 2 for x, y in printed)
    assert 10 <= len(finished) <= 20 and finished == set(range(len(finished)))
    # Workers of the killed script that were still running end (the killer sleeps 5 s at most).
    before = executions(log)
    assert 20 in before

    second = run_script(script, env=env)
    assert second.returncode == 0, second.stderr
    assert [line.split() for line in second.stdout.splitlines()] == [[str(x), str(x * x)] for x in range(40)]
    counts = {x: executions(log).count(x) for x in range(40)}
    assert all(counts[x] == 1 for x in finished), counts  # not executed again
    assert all(counts[x] >= 1 for x in range(40))
    # Only calls in flight at the kill ran twice: at most parallel (2) of them, none that had finished.
    in_flight = 2
    again = {x for x in range(40) if counts[x] > 1}
    assert 20 in again and len(again) <= in_flight and not again & finished, counts
    assert len(executions(log)) <= 40 + in_flight

    # All of them are answered from the study now: a third run executes nothing.
    total = len(executions(log))
    third = run_script(script, env=env)
    assert third.returncode == 0, third.stderr
    assert third.stdout == second.stdout and len(executions(log)) == total

    # fresh=True forgets: everything runs again.
    fresh = run_script(script, env={**env, "FRESH": "1"})
    assert fresh.returncode == 0, fresh.stderr
    assert fresh.stdout == second.stdout
    assert sorted(executions(log)[total:]) == list(range(40))

    # A changed body is a different function: nothing of the old one is reused.
    total = len(executions(log))
    (tmp_path / "memo_model.py").write_text(MEMO_MODEL.format(body="x * x + 1"))
    changed = run_script(script, env=env)
    assert changed.returncode == 0, changed.stderr
    assert [line.split() for line in changed.stdout.splitlines()] == [[str(x), str(x * x + 1)] for x in range(40)]
    assert sorted(executions(log)[total:]) == list(range(40))


def test_the_study_records_every_evaluation(tmp_path):
    study = tmp_path / "study"
    with Executor("fork", parallel=2, study=str(study)) as executor:
        assert list(executor.map(models.double, [1.0, 2.0, 3.0])) == [2.0, 4.0, 6.0]
    tables = list((study / "evaluations").glob("*/evaluations.npy"))
    assert len(tables) == 1 and tables[0].parent.name.startswith("double-")
    rows = np.load(tables[0])
    assert rows["x"][:3].tolist() == [1.0, 2.0, 3.0] and rows["result"][:3].tolist() == [2.0, 4.0, 6.0]
    # A second executor answers from the study, and 1 (an int) is not 1.0 (a float): it runs.
    with Executor("fork", study=str(study)) as executor:
        assert executor.submit(models.double, 2.0).result(timeout=20) == 4.0
        assert executor.submit(models.double, 1).result(timeout=20) == 2
    assert len(list((study / "evaluations").glob("*/evaluations.npy"))) == 2


def test_one_executor_at_a_time_on_a_study(tmp_path):
    study = str(tmp_path / "study")
    with Executor("fork", study=study):
        with pytest.raises(ConfigError, match="in use"):
            Executor("fork", study=study)
    with Executor("fork", study=study) as executor:  # released
        assert executor.submit(models.double, 1).result(timeout=20) == 2


# --- Slurm --------------------------------------------------------------------------------------


@pytest.mark.slurm
@pytest.mark.timeout(300)
def test_slurm_runs_module_functions(slurm_cluster, tmp_path):
    with Executor("slurm", parallel=2, work_dir=str(tmp_path / "work"), min_poll=0.2) as executor:
        assert list(executor.map(models.add, [1.0, 2.0, 3.0, 4.0, 5.0], [10.0] * 5, timeout=240)) == [
            11.0,
            12.0,
            13.0,
            14.0,
            15.0,
        ]
