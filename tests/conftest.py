"""Shared fixtures: runners of every kind on every interface, in a temporary directory.

Helpers that test files share (data builders, wait_for, Gate, study directories)
are in ``helpers.py``; this file holds the fixtures, and one hook (exclusive tests under xdist).
"""

import fcntl
import os
import pathlib
import subprocess
from contextlib import ExitStack

import pytest
from helpers import FAKE_SLURM, SCALAR_INPUTS, TESTS, Gate, outputs

from profit.run import Runner
from profit.run.includes import load_includes

# Like a study's include file: loaded in the runner, passed on to every worker.
load_includes([str(TESTS / "workers.py")])

RUNNERS = ["fork", "local", "pool"]
INTERFACES = ["memmap", "zeromq"]


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item):
    """Under pytest-xdist, a test marked ``exclusive`` runs while no other test runs.

    Such a test gives a process a time budget well under a second (to start, to
    answer, to overlap with another run); a test on another xdist worker would
    eat into that budget on a machine with few cores. A readers-writer lock
    between the workers of this session: every test holds ``machine.lock``
    shared, an exclusive test holds it alone; ``turnstile.lock`` lets an
    exclusive test that waits go first, so it is not starved. The lock is
    taken outside pytest-timeout's timer (this wrapper comes first), so waiting
    for the machine does not count towards a test's timeout.
    """
    if not hasattr(item.config, "workerinput"):  # one process: nothing runs alongside
        yield
        return
    exclusive = item.get_closest_marker("exclusive") is not None
    # xdist gives each worker <session basetemp>/popen-gwN: the parent is this session's, shared by its workers.
    shared = pathlib.Path(item.config.option.basetemp).parent
    with open(shared / "turnstile.lock", "a") as turnstile, open(shared / "machine.lock", "a") as machine:
        fcntl.flock(turnstile, fcntl.LOCK_EX)
        try:
            fcntl.flock(machine, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        finally:
            fcntl.flock(turnstile, fcntl.LOCK_UN)
        try:
            yield
        finally:
            # An explicit unlock: forked workers share the open file (and its lock) until they end.
            fcntl.flock(machine, fcntl.LOCK_UN)


@pytest.fixture(params=RUNNERS)
def runner_label(request):
    return request.param


@pytest.fixture(params=INTERFACES)
def interface_label(request):
    return request.param


@pytest.fixture
def make_runner(tmp_path, runner_label, interface_label):
    """Build a runner of the current kind; every runner made is closed at the end.

    ``close()`` cancels what still runs and releases the runner's sockets and
    selectors; a pool's also ends its worker processes.
    """
    with ExitStack() as made:  # closes every runner, even if closing one of them fails

        def make(worker, *, output_config=None, input_config=None, size=4, work_dir="study", **options):
            interface = {
                "class": interface_label,
                "size": size,
                "input_config": input_config or SCALAR_INPUTS,
                "output_config": output_config or outputs("f"),
            }
            runner = Runner[runner_label](
                interface=interface, worker=worker, work_dir=str(tmp_path / work_dir), **options
            )
            return made.enter_context(runner)  # a runner's __exit__ is close()

        yield make


@pytest.fixture
def gate_for():
    gates = []

    def make(runner):
        gates.append(Gate(runner.work_dir))
        return gates[-1]

    yield make
    for gate in gates:
        gate.close()


# --- the fake Slurm (tests/fake_slurm) ------------------------------------------------------


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    """Fake Slurm commands first on PATH; their state in a fresh directory (of this test alone)."""
    state = tmp_path / "fake-slurm-state"
    monkeypatch.setenv("PATH", f"{FAKE_SLURM}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SLURM_DIR", str(state))
    yield state
    subprocess.run([str(FAKE_SLURM / "scancel"), "--me"], capture_output=True)


@pytest.fixture
def make_fake_runner(tmp_path, fake_slurm):
    """Build a slurm runner that submits to the fake Slurm; every runner made is closed at the end."""
    with ExitStack() as made:

        def make(worker, interface="memmap", output_config=None, **options):
            runner = Runner["slurm"](
                interface={
                    "class": interface,
                    "size": 4,
                    "input_config": SCALAR_INPUTS,
                    "output_config": output_config or outputs("f"),
                },
                worker=worker,
                work_dir=str(tmp_path / "study"),
                min_poll=0.1,
                max_poll=1.0,
                **options,
            )
            made.enter_context(runner)
            runner._slurm.retry_sleep = 0.05  # transient failures are retried quickly in tests
            return runner

        yield make


# --- a real Slurm cluster (test_slurm_cluster.py) ---------------------------------------------


def _why_no_slurm():
    """None when a Slurm cluster answers here; otherwise why not."""
    import shutil

    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        return "Slurm's commands are not on PATH (start a local cluster with 'make slurm')"
    try:
        nodes = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=15)
        accounting = subprocess.run(["sacct", "-n", "-X", "-j", "1"], capture_output=True, text=True, timeout=15)
    except subprocess.TimeoutExpired:
        return "the Slurm controller does not answer within 15 s"
    if nodes.returncode != 0:
        return f"sinfo fails: {nodes.stderr.strip()}"
    # (a node that is completing a job, or planned for one, takes jobs again in a moment)
    if not any(state.startswith(("idle", "mix", "alloc", "completing", "planned")) for state in nodes.stdout.split()):
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
