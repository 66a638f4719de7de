"""Shared fixtures: runners of every kind on every interface, in a temporary directory."""

import os
import pathlib

import numpy as np
import pytest

from profit.run import Runner
from profit.run.includes import load_includes

TESTS = pathlib.Path(__file__).parent
# Like a study's include file: loaded in the runner, passed on to every worker.
load_includes([str(TESTS / "workers.py")])

RUNNERS = ["fork", "local", "pool"]
INTERFACES = ["memmap", "zeromq"]

SCALAR_INPUTS = {"u": {"dtype": np.float64}, "v": {"dtype": np.float64}}


def outputs(*names, length=1):
    return {name: {"dtype": np.float64, "size": (1, length)} for name in names}


@pytest.fixture(params=RUNNERS)
def runner_label(request):
    return request.param


@pytest.fixture(params=INTERFACES)
def interface_label(request):
    return request.param


@pytest.fixture
def make_runner(tmp_path, runner_label, interface_label):
    """Build a runner of the current kind; every runner made is cancelled and closed at the end."""
    made = []

    def make(worker, *, output_config=None, input_config=None, size=4, work_dir="study", **options):
        interface = {
            "class": interface_label,
            "size": size,
            "input_config": input_config or SCALAR_INPUTS,
            "output_config": output_config or outputs("f"),
        }
        runner = Runner[runner_label](interface=interface, worker=worker, work_dir=str(tmp_path / work_dir), **options)
        made.append(runner)
        return runner

    yield make
    for runner in made:
        runner.cancel_all()
        getattr(runner, "shutdown", lambda: None)()  # a pool's worker processes


def params(n, seed=0):
    """n random (u, v) rows as a structured array."""
    rng = np.random.default_rng(seed)
    rows = np.zeros(n, dtype=[("u", "f8"), ("v", "f8")])
    rows["u"] = rng.uniform(-1, 1, n)
    rows["v"] = rng.uniform(-1, 1, n)
    return rows


def most_at_once(spans):
    """The largest number of (start, end) spans active at one instant (a span ends before one that starts then)."""
    return max(sum(1 for other in spans if other["start"] <= span["start"] < other["end"]) for span in spans)


def alive(pid):
    """Whether a process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            state = file.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def wait_for(condition, timeout=10.0, what="condition", listen=None):
    """Wait until condition() is true, checking often; fail after timeout seconds.

    ``listen``: a runner whose interface keeps receiving meanwhile (without
    settling runs), as a runner does while it waits: workers of a message-based
    interface (zeromq) need the runner's answer to go on.
    """
    import time

    deadline = time.monotonic() + timeout
    while True:
        if listen is not None:
            listen.interface.poll()
        if condition():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


class Gate:
    """A FIFO that holds t_gate workers until the test lets them through, one byte each."""

    def __init__(self, work_dir):
        self.path = os.path.join(work_dir, "gate.fifo")
        os.mkfifo(self.path)
        # Read-write, so neither we nor the workers block on open.
        self.fd = os.open(self.path, os.O_RDWR)

    def release(self, count):
        os.write(self.fd, b"x" * count)

    def close(self):
        os.close(self.fd)


@pytest.fixture
def gate_for():
    gates = []

    def make(runner):
        gates.append(Gate(runner.work_dir))
        return gates[-1]

    yield make
    for gate in gates:
        gate.close()


def _why_no_slurm():
    """None when a Slurm cluster answers here; otherwise why not."""
    import shutil
    import subprocess

    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        return "Slurm's commands are not on PATH (start a local cluster with 'make slurm')"
    try:
        nodes = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=15)
        accounting = subprocess.run(["sacct", "-n", "-X", "-j", "1"], capture_output=True, text=True, timeout=15)
    except subprocess.TimeoutExpired:
        return "the Slurm controller does not answer within 15 s"
    if nodes.returncode != 0:
        return f"sinfo fails: {nodes.stderr.strip()}"
    if not any(state.startswith(("idle", "mix", "alloc")) for state in nodes.stdout.split()):
        return f"no node can take jobs (sinfo: {nodes.stdout.strip() or 'no nodes'})"
    if accounting.returncode != 0:
        return f"sacct fails (job accounting is needed): {accounting.stderr.strip()}"
    return None


@pytest.fixture(scope="session")
def slurm_cluster():
    """Skip (with the reason) unless a real Slurm cluster takes jobs here."""
    why = _why_no_slurm()
    if why is not None:
        pytest.skip(f"no Slurm cluster: {why}")
