"""The zeromq interface with workers forked from the runner: they use the row they share with it.

A ForkRunner's and a PoolRunner's workers read their inputs from, and write their
outputs, time and DONE (or a failure's reason) into, their row of storage shared
with the runner (an anonymous shared file, or the study's table), never the
socket. Each test counts the messages the runner answered (a spy on
``_answer``), so that a result that came over the socket cannot pass for one
that came through the shared row. Workers started as programs (LocalRunner)
still use the socket.
"""

import os

import numpy as np
import pytest

pytest.importorskip("zmq")

from helpers import params, scalar_runner  # noqa: E402

from profit.run import RunState, Worker  # noqa: E402
from profit.run.zeromq import ZeroMQRunnerInterface  # noqa: E402
from profit.store import StudyTable  # noqa: E402


@Worker.wrap("t_zmq_sum_pid", ["f", "g"])
def sum_and_pid(u, v):
    """f = u + v, and which process computed it."""
    return u + v, float(os.getpid())


@pytest.fixture
def messages(monkeypatch):
    """The kinds of the messages the runner's zeromq interface answered, in order."""
    seen = []
    answer = ZeroMQRunnerInterface._answer

    def spy(self, frames):
        seen.append(frames[0][32:].split(b" ")[1] if len(frames) == 1 else b"?")  # (after the signature)
        return answer(self, frames)

    monkeypatch.setattr(ZeroMQRunnerInterface, "_answer", spy)
    return seen


def zeromq_runner(kind, tmp_path, size, worker="t_zmq_sum_pid", names=("f", "g"), **options):
    return scalar_runner(kind, tmp_path, worker, size=size, interface="zeromq", names=names, parallel=2, **options)


@pytest.mark.parametrize("kind", ["fork", "pool"])
def test_forked_workers_write_exact_results_into_their_rows_without_the_socket(tmp_path, messages, kind):
    rows = params(120, seed=3)
    runner = zeromq_runner(kind, tmp_path, size=len(rows))
    try:
        runner.spawn_array(rows, wait=True)
        single = runner.spawn({"u": 0.25, "v": 0.5}, wait=True)
        assert runner.failed == {}
        output = runner.interface.output
        np.testing.assert_array_equal(output["f"][: len(rows)], rows["u"] + rows["v"])  # row i is run i, exactly
        assert output["f"][single] == 0.75
        assert all(runner.status(run_id).state is RunState.DONE for run_id in range(single + 1))
        assert os.getpid() not in set(output["g"][: single + 1])  # computed in the forked workers
        assert messages == []  # nothing travelled over the socket
    finally:
        runner.close()


def test_a_pool_worker_reaches_rows_added_after_it_was_forked(tmp_path, messages):
    runner = zeromq_runner("pool", tmp_path, size=2)
    first, more = params(2, seed=1), params(300, seed=2)
    try:
        runner.spawn_array(first, wait=True)  # the pool's workers exist now, with 2 rows mapped
        early_pids = set(runner.interface.output["g"][:2])
        runner.spawn_array(more, wait=True)  # the interface grows (several times) under them
        assert runner.interface.size >= 302
        assert runner.failed == {}
        output = runner.interface.output
        sent = np.concatenate([first, more])
        np.testing.assert_array_equal(output["f"][:302], sent["u"] + sent["v"])
        late_pids = set(output["g"][2:302])
        assert late_pids & early_pids  # the workers forked before the growth served the new rows
        assert messages == []
    finally:
        runner.close()


@pytest.mark.parametrize("kind", ["fork", "pool"])
def test_a_forked_worker_s_failure_reason_reaches_the_runner(tmp_path, messages, kind):
    runner = zeromq_runner(kind, tmp_path, size=2, worker="t_raise", names=("f",))
    try:
        status = runner.wait(runner.spawn({"u": 1.0, "v": 2.0}), timeout=30)
        assert status.state is RunState.FAILED
        assert status.reason.startswith("ValueError: boom at u=1.0")
        assert np.isnan(runner.interface.output["f"][0])
        assert messages == []
    finally:
        runner.close()


def test_a_program_worker_still_uses_the_socket(tmp_path, messages):
    rows = params(4, seed=5)
    runner = zeromq_runner("local", tmp_path, size=4, worker="t_sum", names=("f",))
    try:
        runner.spawn_array(rows, wait=True)
        assert runner.failed == {}
        np.testing.assert_array_equal(runner.interface.output["f"], rows["u"] + rows["v"])
        assert sorted(messages) == [b"DATA"] * 4 + [b"READY"] * 4
    finally:
        runner.close()


def study_table(tmp_path, rows):
    return StudyTable.create(str(tmp_path / "profit-study.npy"), rows, np.dtype([("f", "f8"), ("g", "f8")]))


@pytest.mark.parametrize("kind", ["fork", "pool"])
def test_forked_workers_write_into_the_study_s_table_also_after_it_grew(tmp_path, messages, kind):
    first, more = params(2, seed=7), params(100, seed=8)
    table = study_table(tmp_path, first)
    runner = zeromq_runner(kind, tmp_path / "run", size=0)
    try:
        runner.interface.use_store(table.rows, table.grow, table.path)
        runner.spawn_array(first, wait=True)
        runner.spawn_array(more, wait=True)  # the table grows while a pool's workers live
        assert runner.failed == {}
        sent = np.concatenate([first, more])
        reread = np.load(table.path)  # the file itself, as another process reads it
        np.testing.assert_array_equal(reread["f"][: len(sent)], sent["u"] + sent["v"])
        assert (reread["STATE"][: len(sent)] == RunState.DONE).all()
        assert messages == []
    finally:
        runner.close()


def test_a_pool_worker_forked_before_the_rows_moved_into_a_table_uses_the_socket(tmp_path, messages):
    first, more = params(2, seed=9), params(6, seed=10)
    runner = zeromq_runner("pool", tmp_path / "run", size=2)
    try:
        runner.spawn_array(first, wait=True)  # the pool's workers map the interface's own rows
        assert messages == []
        table = study_table(tmp_path, np.concatenate([first, more]))
        runner.interface.use_store(table.rows, table.grow, table.path)
        runner.spawn_array(more, wait=True)  # (run ids 2..7: rows of the table)
        assert runner.failed == {}
        np.testing.assert_array_equal(np.load(table.path)["f"][2:8], more["u"] + more["v"])
        assert sorted(messages) == [b"DATA"] * 6 + [b"READY"] * 6  # never into rows the runner left
    finally:
        runner.close()
