"""The zeromq interface: loopback by default, signed messages, junk dropped, retries, reconnects.

The behaviour suite runs every runner on this interface too (conftest.INTERFACES);
these tests cover what only a network interface has.
"""

import json
import logging
import os
import stat
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

zmq = pytest.importorskip("zmq")

from helpers import SCALAR_INPUTS, STUDY, make_study, outputs, profit, wait_for  # noqa: E402

from profit.run import Runner, RunState  # noqa: E402
from profit.run.errors import ConfigError, InterfaceError  # noqa: E402
from profit.run.zeromq import Message, ZeroMQRunnerInterface, ZeroMQWorkerInterface, message, read_secret  # noqa: E402


@pytest.fixture
def interface(tmp_path):
    made = ZeroMQRunnerInterface(4, SCALAR_INPUTS, outputs("f", "g", length=1), keyfile=str(tmp_path / "zeromq.key"))
    made.input[0] = (1.5, 2.5)
    made.managed = True  # as under a Runner, which marks the runs it starts (alone, any row is served)
    made.mark(0, RunState.RUNNING)
    yield made
    made.clean()


_worker_sides = []  # closed after each test (clean_worker_sides)


def worker_side(interface, run_id=0, **overrides):
    options = {key: value for key, value in interface.config.items() if key != "class"}
    worker = ZeroMQWorkerInterface(run_id, **{**options, **overrides})
    _worker_sides.append(worker)
    return worker


@pytest.fixture(autouse=True)
def clean_worker_sides():
    """Close the connection of every worker side a test made (clean() may run twice)."""
    yield
    while _worker_sides:
        _worker_sides.pop().clean()


def serve_until(interface, future, timeout=10.0):
    """Answer messages as a waiting runner does until the worker call in ``future`` returns."""
    wait_for(lambda: interface.poll() or future.done(), timeout=timeout, what="the worker's call")
    return future.result()


@pytest.fixture
def background():
    with ThreadPoolExecutor(max_workers=1) as pool:
        yield pool.submit


def raw_peer(interface):
    socket = zmq.Context.instance().socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.connect(interface.endpoint)
    return socket


def test_binds_loopback_on_9000_or_a_free_port_by_default(interface, tmp_path):
    assert interface.endpoint.startswith("tcp://127.0.0.1:")
    assert interface.port == int(interface.endpoint.rsplit(":", 1)[1]) > 0
    assert interface.config["port"] == interface.port
    other = ZeroMQRunnerInterface(1, SCALAR_INPUTS, outputs("f"), keyfile=str(tmp_path / "other.key"))
    try:
        assert other.port != interface.port
        with pytest.raises(ConfigError, match=rf"cannot bind tcp://127.0.0.1:{interface.port} .*choose another port"):
            ZeroMQRunnerInterface(1, SCALAR_INPUTS, outputs("f"), port=interface.port, keyfile=str(tmp_path / "x.key"))
    finally:
        other.clean()


def test_secret_is_in_a_private_file_not_in_the_config(interface):
    secret = read_secret(interface.keyfile)
    assert len(secret) == 32
    assert stat.S_IMODE(os.stat(interface.keyfile).st_mode) == 0o600
    assert secret.hex() not in json.dumps(interface.config)


@pytest.mark.parametrize(
    "option, value, fragment",
    [
        ("transport", "udp", "transport 'udp' is not supported"),
        ("port", 70000, "port must be a whole number 0..65535"),
        ("timeout", 0, "timeout must be a number of seconds > 0"),
        ("retries", -1, "retries must be a whole number >= 0"),
    ],
)
def test_bad_options_are_refused(tmp_path, option, value, fragment):
    with pytest.raises(ConfigError, match=fragment):
        ZeroMQRunnerInterface(1, SCALAR_INPUTS, outputs("f"), keyfile=str(tmp_path / "k"), **{option: value})


def test_worker_round_trip(interface, background):
    worker = worker_side(interface)
    serve_until(interface, background(worker.retrieve))
    assert (worker.input["u"], worker.input["v"]) == (1.5, 2.5)
    assert np.isnan(worker.output["f"])  # no result until the worker sets one
    worker.output["f"] = 4.0
    worker.time = 1.75
    serve_until(interface, background(worker.transmit))
    worker.clean()
    assert interface.internal["DONE"][0] and interface.internal["TIME"][0] == 1  # whole seconds, cut
    assert interface.output["f"][0] == 4.0 and np.isnan(interface.output["g"][0])


def test_repeated_data_changes_nothing(interface, background):
    worker = worker_side(interface)
    serve_until(interface, background(worker.retrieve))
    worker.output["f"] = 4.0
    serve_until(interface, background(worker.transmit))
    worker.output["f"] = 99.0  # as if the ACK had been lost and the worker sent again
    serve_until(interface, background(worker.transmit))
    assert interface.output["f"][0] == 4.0


def test_junk_is_dropped_without_an_answer(interface, caplog):
    peer = raw_peer(interface)
    secret = read_secret(interface.keyfile)
    rng = np.random.default_rng(7)
    junk = [[rng.bytes(int(rng.integers(0, 200))) for _ in range(int(rng.integers(1, 9)))] for _ in range(200)]
    junk += [
        [message(b"not the secret" * 3, b"READY", 0, b"r1")],  # signed with another key
        [b"\0" * 32 + message(secret, b"READY", 0, b"r2")[32:]],  # signature forged
        [message(secret, b"READY", 0, b"r3")[32:]],  # unsigned
        [message(secret, b"READY", 0, b"r4"), b"extra"],  # a valid message with a frame added
    ]
    with caplog.at_level(logging.WARNING, logger="profit"):
        for frames in junk:
            peer.send_multipart(frames)
        # Then one valid message: its answer must be the first thing the peer receives.
        peer.send(message(secret, b"READY", 0, b"valid"))
        wait_for(lambda: interface.poll() or peer.poll(0), what="the answer to the valid message")
    answer, problem = Message.unpack(secret, peer.recv())
    assert answer.kind == b"INPUT" and answer.request_id == b"valid", problem
    assert interface.state(0) is RunState.RUNNING and not interface.internal["DONE"][0]
    assert interface.dropped == len(junk)
    assert "zeromq interface dropped a message (1 so far)" in caplog.text
    peer.close()


@pytest.mark.parametrize(
    "kind, run_id, payload, refusal",
    [
        (b"READY", 9, b"", "run 9 does not exist"),
        (b"READY", 1, b"", "run 1 is pending, not running"),
        (b"DATA", 0, b"short", "outputs of 5 bytes instead of 24"),
        (b"HELLO", 0, b"", "unknown message kind"),
    ],
)
def test_signed_but_wrong_messages_are_refused(interface, kind, run_id, payload, refusal):
    peer = raw_peer(interface)
    secret = read_secret(interface.keyfile)
    peer.send(message(secret, kind, run_id, b"req", payload))
    wait_for(lambda: interface.poll() or peer.poll(0), what="the refusal")
    answer, _ = Message.unpack(secret, peer.recv())
    assert answer.kind == b"ERROR" and refusal in answer.payload.decode()
    assert not interface.internal["DONE"].any()
    peer.close()


def test_worker_sees_a_refusal_as_an_error(interface, background):
    worker = worker_side(interface, run_id=3)
    with pytest.raises(InterfaceError, match="the runner refused READY for run 3: run 3 is pending, not running"):
        serve_until(interface, background(worker.retrieve))


@pytest.mark.exclusive
def test_worker_retries_on_a_new_connection_when_an_answer_is_lost(interface, background):
    worker = worker_side(interface, timeout=0.3, retries=2, retry_sleep=0.05)
    call = background(worker.retrieve)
    # Swallow the first request, as a lost message or a runner busy elsewhere would.
    raw = interface._socket
    assert raw.poll(5000), "the worker's first request did not arrive"
    first = raw.recv_multipart()
    serve_until(interface, call)
    assert worker.input["u"] == 1.5
    # The retry came on a fresh connection (another identity), and was accepted.
    assert worker._socket is not None and first[0] != b""


def test_worker_gives_up_after_retries_with_a_clear_error(tmp_path):
    interface = ZeroMQRunnerInterface(1, SCALAR_INPUTS, outputs("f"), keyfile=str(tmp_path / "k"))
    try:
        options = {key: value for key, value in interface.config.items() if key != "class"}
        # The runner never polls: nobody answers (a hung runner, or one on a host the worker cannot reach).
        worker = ZeroMQWorkerInterface(0, **{**options, "timeout": 0.05, "retries": 2, "retry_sleep": 0.01})
        with pytest.raises(
            InterfaceError,
            match=r"no answer from the runner at tcp://127.0.0.1:\d+ to READY for run 0 "
            r"after 3 tries of 0.05 s",
        ):
            worker.retrieve()
    finally:
        interface.clean()


def test_worker_ignores_answers_not_signed_by_its_runner(interface, background, tmp_path):
    impostor = zmq.Context.instance().socket(zmq.ROUTER)
    impostor.setsockopt(zmq.LINGER, 0)
    port = impostor.bind_to_random_port("tcp://127.0.0.1")
    worker = worker_side(interface, port=port, timeout=0.2, retries=0)
    call = background(worker.retrieve)
    assert impostor.poll(5000)
    identity, request = impostor.recv_multipart()
    request_id = request[32:].split(b"\n")[0].split(b" ")[3]
    forged = message(b"another study's secret", b"INPUT", 0, request_id, b"{}\n")
    impostor.send_multipart([identity, forged])
    with pytest.raises(InterfaceError, match="no answer from the runner"):
        call.result(timeout=10)
    impostor.close()


def test_secret_never_reaches_a_command_line_or_environment(tmp_path):
    runner = Runner["local"](
        interface={"class": "zeromq", "size": 2, "input_config": SCALAR_INPUTS, "output_config": outputs("f")},
        worker="t_sum",
        work_dir=str(tmp_path),
    )
    try:
        secret = read_secret(runner.interface.keyfile).hex()
        environment = runner._environment()
        assert all(secret not in value for value in environment.values())
        assert runner.interface.keyfile.startswith(str(tmp_path))  # in the work directory
        runner.spawn({"u": 1.0, "v": 2.0}, wait=True)
        assert runner.output_data["f"].tolist() == [3.0]
    finally:
        runner.close()
        runner.clean()
    assert not os.path.exists(os.path.join(tmp_path, "zeromq.key"))


@pytest.mark.exclusive
def test_long_run_keeps_its_connection(tmp_path):
    # The connection opened at retrieve() idles for many heartbeat intervals and
    # several answer timeouts before transmit() uses it.
    runner = Runner["fork"](
        interface={
            "class": "zeromq",
            "size": 1,
            "input_config": SCALAR_INPUTS,
            "output_config": outputs("f"),
            "heartbeat": 0.02,
            "timeout": 0.5,
            "retries": 0,
        },
        worker={"class": "t_sleep", "seconds": 2.0},
        work_dir=str(tmp_path),
    )
    try:
        assert runner.spawn({"u": 1.0, "v": 2.0}, wait=True) == 0
        assert runner.status(0).state is RunState.DONE, runner.status(0).reason
        assert runner.output_data["f"].tolist() == [3.0]
    finally:
        runner.close()


def test_a_reason_travels_back_from_a_failing_worker(tmp_path):
    runner = Runner["local"](
        interface={"class": "zeromq", "size": 1, "input_config": SCALAR_INPUTS, "output_config": outputs("f")},
        worker="t_raise",
        work_dir=str(tmp_path),
    )
    try:
        status = runner.wait(runner.spawn({"u": 1.0, "v": 2.0}), timeout=30)
        assert status.state is RunState.FAILED
        assert status.reason.startswith("ValueError: boom")
    finally:
        runner.close()


def test_many_runs_in_parallel_stay_aligned(tmp_path):
    runner = Runner["fork"](
        interface={"class": "zeromq", "size": 8, "input_config": SCALAR_INPUTS, "output_config": outputs("f")},
        worker="t_sum",
        work_dir=str(tmp_path),
        parallel=4,
    )
    rows = np.zeros(300, dtype=[("u", "f8"), ("v", "f8")])
    rows["u"], rows["v"] = np.arange(300), 0.5
    try:
        runner.spawn_array(rows, wait=True)
        assert runner.failed == {}
        assert np.array_equal(runner.output_data["f"], rows["u"] + 0.5)
    finally:
        runner.close()


def test_importing_profit_run_stays_lean():
    # Every worker process imports profit.run: what it does not need must not load
    # (pyzmq alone costs a LocalRunner worker some 60 ms).
    import subprocess
    import sys

    heavy = [
        "zmq",
        "numpy",
        "subprocess",
        "logging",
        "inspect",
        "shutil",
        "hashlib",
        "h5py",
        "scipy",
        "typing",
        "contextlib",
    ]
    code = f"import sys, profit.run; print([m for m in {heavy!r} if m in sys.modules])"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "[]"


def test_threads_do_not_leak_from_the_worker_side(interface, background):
    before = threading.active_count()
    worker = worker_side(interface)
    serve_until(interface, background(worker.retrieve))
    worker.clean()
    assert threading.active_count() <= before + 1  # the executor's own thread


def test_ipc_transport(tmp_path):
    runner = Runner["local"](
        interface={
            "class": "zeromq",
            "size": 2,
            "input_config": SCALAR_INPUTS,
            "output_config": outputs("f"),
            "transport": "ipc",
        },
        worker="t_sum",
        work_dir=str(tmp_path),
    )
    try:
        assert runner.interface.endpoint == f"ipc://{tmp_path}/zeromq.ipc"
        runner.spawn_array([{"u": 1.0, "v": 2.0}, {"u": 3.0, "v": 4.0}], wait=True)
        assert runner.output_data["f"].tolist() == [3.0, 7.0]
    finally:
        runner.close()
        runner.clean()
    assert not os.path.exists(tmp_path / "zeromq.ipc")


@pytest.mark.parametrize("runner", ["fork", "local"])
def test_profit_run_with_the_zeromq_interface(tmp_path, runner):
    study = make_study(tmp_path / "study", STUDY.format(ntrain=8, runner=runner) + "  interface: zeromq\n")
    done = profit("run", str(study))
    assert done.returncode == 0, done.stdout + done.stderr
    inputs = np.genfromtxt(study / "input.txt", names=True)
    results = np.genfromtxt(study / "output.txt", names=True)
    np.testing.assert_array_equal(results["f"], inputs["u"] + inputs["v"])
    assert not (study / "zeromq.key").exists()  # the secret lives only as long as its runner


def test_workers_of_a_wildcard_runner_connect_to_the_submit_host(tmp_path, monkeypatch):
    interface = ZeroMQRunnerInterface(1, SCALAR_INPUTS, outputs("f"), bind="tcp://*:0", keyfile=str(tmp_path / "k"))
    try:
        assert interface.config["address"] == "0.0.0.0"
        monkeypatch.setenv("PROFIT_RUNNER_ADDRESS", "login1")
        assert worker_side(interface).endpoint == f"tcp://login1:{interface.port}"
        monkeypatch.delenv("PROFIT_RUNNER_ADDRESS")
        assert worker_side(interface).endpoint == f"tcp://127.0.0.1:{interface.port}"
        assert worker_side(interface, address="10.0.0.5").endpoint == f"tcp://10.0.0.5:{interface.port}"
    finally:
        interface.clean()


def test_a_failure_after_the_results_keeps_the_results(interface, background):
    worker = worker_side(interface)
    serve_until(interface, background(worker.retrieve))
    worker.output["f"] = 4.0
    serve_until(interface, background(worker.transmit))
    serve_until(interface, background(lambda: worker.fail("OSError: disk full while cleaning up")))
    assert interface.transmitted(0) and interface.output["f"][0] == 4.0


def test_a_replayed_failure_cannot_fail_a_later_attempt(interface):
    peer = raw_peer(interface)
    captured = message(read_secret(interface.keyfile), b"FAIL", 0, b"attempt-1", b"RuntimeError: first attempt")
    peer.send(captured)
    wait_for(lambda: interface.poll() or peer.poll(0), what="the ACK")
    peer.recv()
    assert interface.state(0) is RunState.FAILED
    interface.mark(0, RunState.RUNNING)  # the runner starts attempt 2
    peer.send(captured)  # an attacker (or a late resend) replays attempt 1's message
    wait_for(lambda: interface.poll() or peer.poll(0), what="the answer to the replay")
    assert interface.state(0) is RunState.RUNNING and interface.reason(0) == ""
    peer.close()


def test_oversized_messages_are_refused_before_they_are_read(interface, background):
    flooder = raw_peer(interface)
    for _ in range(5):
        flooder.send(b"x" * 1_000_000)  # far above any message of this study
    worker = worker_side(interface)
    serve_until(interface, background(worker.retrieve))  # a real worker is served all the same
    assert worker.input["u"] == 1.5
    assert interface.dropped == 0  # libzmq cut the flooder off; nothing reached the interface
    flooder.close()


@pytest.mark.exclusive  # (no other test holds port 9000 meanwhile)
def test_a_pair_built_with_defaults_talks_as_in_profit(tmp_path, monkeypatch, background):
    """proFit's tests build both halves with defaults (port 9000), without a Runner marking runs."""
    monkeypatch.chdir(tmp_path)  # (the default key file is in the current directory)
    blocker = None
    runner_side = ZeroMQRunnerInterface(2, SCALAR_INPUTS, outputs("f"))
    try:
        if runner_side.port != 9000:  # (only a program outside the tests can hold it now)
            pytest.skip("port 9000 is held by another program on this machine")
        runner_side.input[1] = (3.0, 4.0)  # a row nobody marked running: served all the same
        worker = ZeroMQWorkerInterface(1)
        _worker_sides.append(worker)
        serve_until(runner_side, background(worker.retrieve))
        assert (worker.input["u"], worker.input["v"]) == (3.0, 4.0)
        worker.output["f"] = 7.0
        serve_until(runner_side, background(worker.transmit))
        assert runner_side.output["f"][1] == 7.0 and runner_side.internal["DONE"][1]
        # A second study while the first holds 9000: a free port, told to its workers through config.
        blocker = ZeroMQRunnerInterface(2, SCALAR_INPUTS, outputs("f"), keyfile=str(tmp_path / "other.key"))
        assert blocker.port != 9000 and blocker.config["port"] == blocker.port
    finally:
        runner_side.clean()
        if blocker is not None:
            blocker.clean()
