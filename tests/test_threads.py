"""A runner belongs to the thread that built it: other threads are refused, in one sentence."""

import threading

import numpy as np
import pytest
from helpers import sum_rows

from profit.run import RunState
from profit.run.errors import ConfigError


def in_thread(call):
    """Run ``call()`` in a new thread; return what it returned or raised."""
    outcome = {}

    def target():
        try:
            outcome["value"] = call()
        except BaseException as error:  # handed to the test
            outcome["error"] = error

    thread = threading.Thread(target=target, name="intruder")
    thread.start()
    thread.join(30)
    assert not thread.is_alive()
    return outcome


def test_a_second_thread_cannot_spawn_and_rows_stay_aligned(make_runner):
    runner = make_runner("t_sum", size=4, parallel=2)
    rows = sum_rows(6)
    for row in rows[:3]:
        runner.spawn(row)
    outcome = in_thread(lambda: runner.spawn({"u": 100.0, "v": 100.0}))
    error = outcome.get("error")
    assert isinstance(error, ConfigError), outcome
    assert str(error).startswith("spawn: this runner belongs to thread 'MainThread'")
    assert "'intruder'" in str(error)
    for row in rows[3:]:
        runner.spawn(row)
    runner.wait_all(timeout=60)
    assert runner.next_run_id == 6
    assert runner.failed == {}
    assert [runner.status(i).state for i in range(6)] == [RunState.DONE] * 6
    np.testing.assert_array_equal(runner.interface.input["u"][:6], rows["u"])
    np.testing.assert_array_equal(runner.interface.output["f"][:6].ravel(), rows["u"] + rows["v"])


@pytest.mark.parametrize(
    "method, call",
    [
        ("respawn", lambda r: r.respawn(0)),
        ("spawn_array", lambda r: r.spawn_array(sum_rows(2))),
        ("drive", lambda r: r.drive([0])),
        ("wait", lambda r: r.wait(0)),
        ("wait_some", lambda r: r.wait_some(0)),
        ("wait_all", lambda r: r.wait_all()),
        ("cancel", lambda r: r.cancel(0)),
        ("cancel_all", lambda r: r.cancel_all()),
        ("poll", lambda r: r.poll(0)),
        ("poll_all", lambda r: r.poll_all()),
        ("check_runs", lambda r: r.check_runs()),
        ("close", lambda r: r.close()),
        ("fill", lambda r: r.fill(sum_rows(1))),
        ("fill_output", lambda r: r.fill_output(np.zeros(1, [("f", "f8", (1, 1))]))),
    ],
)
@pytest.mark.parametrize("runner_label", ["fork"])
@pytest.mark.parametrize("interface_label", ["memmap"])
def test_every_method_that_changes_state_is_refused_elsewhere(make_runner, method, call):
    runner = make_runner("t_sum")
    runner.spawn({"u": 1.0, "v": 2.0}, wait=True)
    error = in_thread(lambda: call(runner)).get("error")
    assert isinstance(error, ConfigError) and str(error).startswith(f"{method}: this runner belongs to thread")
    assert runner.status(0).state is RunState.DONE
    assert runner.spawn({"u": 2.0, "v": 2.0}, wait=True) == 1  # the owner goes on as before


@pytest.mark.parametrize("interface_label", ["memmap"])
def test_a_runner_whose_thread_ended_can_be_closed_by_another(make_runner, runner_label):
    made = in_thread(lambda: make_runner("t_sum"))
    runner = made["value"]
    runner.close()  # its thread has ended: an atexit hook or a finalizer may close it
    with pytest.raises(ConfigError, match=r"^spawn: the runner is closed"):
        runner.spawn({"u": 1.0, "v": 2.0})
    runner.close()  # (and again)
