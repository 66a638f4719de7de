"""The small core, piece by piece: the outcome decision, the option checks, the event loop,
ending process trees, the handle protocol (proFit-style runners too), option checks by
signature, the work directory's layout and atomic files."""

import math
import multiprocessing
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from profit.run import Runner, RunState
from profit.run._files import atomic_path, tail, write_atomically
from profit.run._proc import ChildProcess, ExitStatus, stop_trees
from profit.run.config import accepted_options, check_options
from profit.run.errors import ConfigError
from profit.run.events import EventLoop
from profit.run.layout import clean_work_dir, run_dir_name, run_log_file
from profit.run.outcome import Observation, Retry, decide
from profit.run.state import RunStatus

# --- the outcome of a run: a table of observations and verdicts -----------------------------

KILLED = ExitStatus(signal=signal.SIGKILL)
EXIT3 = ExitStatus(code=3)
CLEAN = ExitStatus(code=0)

DECISIONS = [
    # observation, options, expected state, reason (or a fragment of it)
    (Observation(1, True, KILLED, cancelled=True), {}, RunState.DONE, ""),
    (Observation(1, True, KILLED, timed_out=True), {"timeout": 2.0}, RunState.DONE, ""),
    (Observation(1, True, EXIT3), {}, RunState.DONE, ""),
    (Observation(1, False, KILLED, cancelled=True), {}, RunState.CANCELLED, "cancelled"),
    (Observation(1, False, KILLED, timed_out=True), {"timeout": 2.0}, RunState.FAILED, "timed out after 2 s"),
    (Observation(1, False, EXIT3), {}, RunState.FAILED, "worker exited with code 3"),
    (Observation(1, False, KILLED), {}, RunState.FAILED, "worker killed by SIGKILL"),
    (Observation(1, False, CLEAN), {}, RunState.FAILED, "worker exited with code 0 without transmitting results"),
    (Observation(1, False, None), {}, RunState.FAILED, "worker ended without transmitting results"),
    (Observation(1, False, EXIT3, reported="ValueError: boom"), {}, RunState.FAILED, "ValueError: boom"),
    (
        Observation(1, False, ExitStatus(code=127)),
        {"through_shell": True},
        RunState.FAILED,
        "worker exited with code 127 (the command was not found)",
    ),
    (
        Observation(1, False, EXIT3),
        {"last_log_line": lambda: "ERROR disk full"},
        RunState.FAILED,
        "worker exited with code 3; last log line: ERROR disk full",
    ),
    (Observation(1, False, EXIT3, attempt=3), {"retries": 2}, RunState.FAILED, "code 3 (attempt 3 of 3)"),
    (Observation(1, False, EXIT3), {"retries": 2, "may_retry": False}, RunState.FAILED, "worker exited with code 3"),
]


@pytest.mark.parametrize("seen, options, state, reason", DECISIONS)
def test_decide(seen, options, state, reason):
    verdict = decide(seen, **options)
    assert isinstance(verdict, RunStatus)
    assert verdict.state == state
    assert verdict.reason == reason if state != RunState.FAILED else reason in verdict.reason


@pytest.mark.parametrize(
    "seen",
    [Observation(4, False, EXIT3, attempt=1), Observation(4, False, KILLED, timed_out=True, attempt=2)],
)
def test_decide_retries_a_failure_with_retries_left(seen):
    verdict = decide(seen, retries=2, timeout=1.0)
    assert verdict == Retry(4, seen.attempt + 1, verdict.reason)
    assert verdict.reason in ("worker exited with code 3", "timed out after 1 s")


def test_decide_reads_the_log_only_when_the_reason_is_an_exit_status():
    def must_not_read():
        raise AssertionError("the log was read")

    for seen in (
        Observation(0, True),
        Observation(0, False, EXIT3, reported="mine"),
        Observation(0, False, cancelled=True),
    ):
        decide(seen, last_log_line=must_not_read)


# --- option checks -----------------------------------------------------------------------


@pytest.mark.parametrize("value", [True, float("nan"), math.inf, -1.0, 0, "3", None])
def test_seconds_refused(value):
    from profit.run import options

    with pytest.raises(ConfigError, match=r"^timeout must be a number of seconds > 0, got "):
        options.seconds(value, "timeout")


@pytest.mark.parametrize("value, expected", [(2, 2.0), (np.float32(0.5), 0.5), (np.int64(3), 3.0)])
def test_seconds_accepted(value, expected):
    from profit.run import options

    assert options.seconds(value, "timeout") == expected


@pytest.mark.parametrize("value", [True, 1.0, float("nan"), -1, "2", 2**70])
def test_whole_numbers_refused(value):
    from profit.run import options

    with pytest.raises(ConfigError, match=r"^retries must be a whole number 0\.\.1000, got "):
        options.whole_number(value, "retries", maximum=1000)


def test_whole_numbers_accept_numpy_integers_and_parallel_takes_all():
    from profit.run import options

    assert options.whole_number(np.int32(4), "retries") == 4 and type(options.whole_number(np.int32(4), "x")) is int
    assert options.parallel("all") == len(os.sched_getaffinity(0))
    assert options.boolean(np.bool_(True), "debug") is True
    with pytest.raises(ConfigError, match="debug must be true or false, got 'yes'"):
        options.boolean("yes", "debug")


def test_runner_options_are_checked_alike_for_every_runner(tmp_path):
    interface = {"class": "memmap", "size": 1, "input_config": {"u": {}}, "output_config": {"f": {}}}
    for label in ("fork", "local", "pool"):
        for option, value, fragment in [
            ("timeout", float("nan"), "timeout must be a number of seconds > 0"),
            ("retries", np.float64(1.5), "retries must be a whole number >= 0"),
            ("parallel", True, "parallel must be a whole number >= 0"),
        ]:
            with pytest.raises(ConfigError, match=fragment):
                Runner[label](interface=interface, worker="t_sum", work_dir=str(tmp_path), **{option: value})


# --- options by signature -------------------------------------------------------------------


def test_accepted_options_follow_kwargs_to_the_base_class():
    local = accepted_options(Runner["local"])
    assert {"command", "parallel", "timeout", "retries", "work_dir"} <= set(local)
    assert accepted_options(Runner["pool"]).count("parallel") == 1


def test_check_options_suggests_the_close_match():
    with pytest.raises(ConfigError, match=r"^run.runner: runner 'pool' has no option 'dept'; did you mean 'depth'\?$"):
        check_options(Runner["pool"], {"dept": 2}, "runner", where="run.runner")


def test_wrapped_processors_check_their_own_options():
    from profit.run import Postprocessor

    assert accepted_options(Postprocessor["t_product"]) is None
    with pytest.raises(ConfigError, match="has no option 'scael'"):
        Postprocessor["t_product"](scael=2)


# --- the event loop ---------------------------------------------------------------------------


def test_event_loop_wakes_on_a_descriptor_and_returns_its_data():
    loop = EventLoop()
    read, write = os.pipe()
    try:
        loop.watch(read, "pipe")
        assert loop.wait(0) == []
        os.write(write, b"x")
        assert loop.wait(10) == ["pipe"]
        loop.unwatch(read)
        assert not loop.watching(read)
    finally:
        loop.close()
        os.close(read)
        os.close(write)


def test_event_loop_deadlines_expire_once_in_order_and_can_be_cleared():
    loop = EventLoop()
    read, write = os.pipe()
    try:
        loop.watch(read, "never")
        loop.set_deadline(2, 0.02)
        loop.set_deadline(1, 0.01)
        loop.set_deadline(3, 0.01)
        loop.clear_deadline(3)
        loop.set_deadline(4, 60)
        loop.wait(None)  # returns at the first deadline, not after 60 s
        due = []
        while len(due) < 2:
            loop.wait(None)
            due += loop.expired()
        assert due == [1, 2]
        assert loop.expired() == [] and loop.has_deadlines
    finally:
        loop.close()
        os.close(read)
        os.close(write)


# --- ending process trees -------------------------------------------------------------------------


def _child(code):
    """A child leading its own process group, running ``code`` with Python."""
    process = subprocess.Popen([sys.executable, "-c", code], start_new_session=True, stdout=subprocess.PIPE)
    process.stdout.readline()  # it has set up its signal handlers
    return ChildProcess(process.pid, process)


def test_stop_trees_terminates_then_kills_what_ignores_sigterm():
    polite = _child("import time; print(flush=True); time.sleep(60)")
    stubborn = _child(
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print(flush=True); time.sleep(60)"
    )
    try:
        statuses = stop_trees([polite, stubborn], grace=0.5)
        assert statuses == [ExitStatus(signal=signal.SIGTERM), ExitStatus(signal=signal.SIGKILL)]
    finally:
        for child in (polite, stubborn):
            child.close()


def test_stop_trees_without_grace_kills_at_once():
    child = _child("import time; print(flush=True); time.sleep(60)")
    try:
        assert stop_trees([child], grace=0) == [ExitStatus(signal=signal.SIGKILL)]
    finally:
        child.close()


# --- handles of runners written in proFit's style ------------------------------------------------------


class PopenRunner(Runner, label="t_profit_popen"):
    """A runner as proFit's users write them: spawn starts the worker itself and stores a Popen."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.runs = {}  # as proFit's own runners did: the runner keeps tracking this dict

    def spawn(self, params=None, wait=False):
        super().spawn(params, wait)  # fills the row
        env = {**self.worker_environment(), "PROFIT_RUN_ID": str(self.next_run_id)}
        worker = os.path.join(os.path.dirname(sys.executable), "profit-worker")
        self.runs[self.next_run_id] = subprocess.Popen([worker], env=env, cwd=self.work_dir)
        if wait:
            self.wait(self.next_run_id)
        self.next_run_id += 1


class ProcessRunner(Runner, label="t_profit_process"):
    """The same with a multiprocessing.Process running the Worker."""

    def spawn(self, params=None, wait=False):
        super().spawn(params, wait)
        run_id = self.next_run_id
        context = multiprocessing.get_context("fork")
        worker, interface = self.worker_config, self.interface.config
        process = context.Process(target=_work, args=(worker, interface, run_id, self.work_dir))
        process.start()
        self.runs[run_id] = process
        if wait:
            self.wait(run_id)
        self.next_run_id += 1


def _work(worker, interface, run_id, work_dir):
    from profit.run import Worker
    from profit.run.worker import RunLog, execute

    os.chdir(work_dir)
    sys.exit(execute(lambda: Worker.from_config(worker, interface, run_id), RunLog("log", run_id)))


@pytest.mark.parametrize("label", ["t_profit_popen", "t_profit_process"])
def test_profit_style_runners_are_polled_and_settled(tmp_path, label):
    interface = {"class": "memmap", "size": 3, "input_config": {"u": {}, "v": {}}, "output_config": {"f": {}}}
    with Runner[label](
        interface=interface, worker="t_sum_unless_negative", work_dir=str(tmp_path), sleep=0.01
    ) as runner:
        for u in (1.0, -1.0, 2.0):
            runner.spawn({"u": u, "v": 0.5})
        runner.wait_all(timeout=30)
        assert not runner.runs
        assert runner.status(0).state == RunState.DONE and runner.status(2).state == RunState.DONE
        assert runner.interface.output["f"][[0, 2]].tolist() == [1.5, 2.5]
        assert runner.status(1).state == RunState.FAILED and "negative" in runner.status(1).reason


def test_a_profit_style_run_is_cancelled_through_its_terminate(tmp_path):
    interface = {"class": "memmap", "size": 1, "input_config": {"u": {}, "v": {}}, "output_config": {"f": {}}}
    with Runner["t_profit_process"](interface=interface, worker="t_sleep", work_dir=str(tmp_path)) as runner:
        runner.worker_config["seconds"] = 60
        runner.spawn({"u": 1.0, "v": 0.0})
        process = runner.runs[0]
        status = runner.cancel(0)
        process.join(10)
        assert status.state == RunState.CANCELLED and process.exitcode == -signal.SIGTERM


# --- the work directory -----------------------------------------------------------------------------------


def test_clean_work_dir_removes_only_what_runs_leave(tmp_path):
    for name in (run_dir_name(0), run_dir_name(1234), "log"):
        (tmp_path / name).mkdir()
    (tmp_path / "interface.npy").write_text("x")
    (tmp_path / "runner.log").write_text("x")
    (tmp_path / "results.csv").write_text("keep")
    (tmp_path / "run_notes").mkdir()
    removed = clean_work_dir(str(tmp_path))
    assert removed == ["interface.npy", "log", "run_000", "run_1234", "runner.log"]
    assert sorted(os.listdir(tmp_path)) == ["results.csv", "run_notes"]
    assert run_log_file("log", 7) == os.path.join("log", "run_007.log")


def test_atomic_path_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(str(target)) as temporary:
            open(temporary, "w").write("half")
            raise RuntimeError("disk full")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["out.txt"]
    write_atomically(str(target), "new", permissions=0o600)
    assert target.read_text() == "new" and (target.stat().st_mode & 0o777) == 0o600


def test_tail_reads_the_last_lines_of_a_large_file(tmp_path):
    log = tmp_path / "run.log"
    log.write_text("x" * 100_000 + "\nfirst\n\n second \n")
    assert tail(str(log)) == "second"
    assert tail(str(log), 2) == "second"  # the last two lines, of which one is blank
    assert tail(str(log), 3) == "first | second"
    assert tail(str(tmp_path / "missing.log")) == ""


def test_a_long_reason_is_cut_at_a_word_and_says_where_the_rest_is():
    from profit.run.interface import REASON_BYTES, decode_reason, encode_reason

    reason = "ValueError: " + " ".join(f"word{index}" for index in range(200))
    stored = decode_reason(encode_reason(reason))
    assert len(stored.encode()) <= REASON_BYTES
    assert stored.endswith(" … [cut: the run's log has it whole]")
    kept = stored.removesuffix(" … [cut: the run's log has it whole]")
    assert reason.startswith(kept) and reason[len(kept)] == " "  # cut between words
    assert decode_reason(encode_reason("short")) == "short"
