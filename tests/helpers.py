"""Helpers the test files share: data builders, waiting, a FIFO gate, study directories, the fake Slurm.

Test files import from here (``from helpers import ...``), never from another
test file or from ``conftest.py``; fixtures live in ``conftest.py``.
"""

import os
import pathlib
import stat
import subprocess
import sys
import textwrap
import time

import numpy as np

TESTS = pathlib.Path(__file__).parent
FAKE_SLURM = TESTS / "fake_slurm"  # fake sbatch, sacct, scancel, ... (see fake_slurm/README.md)
GOLDEN = TESTS / "golden"

# --- runners and their data ----------------------------------------------------------------

SCALAR_INPUTS = {"u": {"dtype": np.float64}, "v": {"dtype": np.float64}}


def outputs(*names, length=1):
    return {name: {"dtype": np.float64, "size": (1, length)} for name in names}


def params(n, seed=0):
    """n random (u, v) rows as a structured array."""
    rng = np.random.default_rng(seed)
    rows = np.zeros(n, dtype=[("u", "f8"), ("v", "f8")])
    rows["u"] = rng.uniform(-1, 1, n)
    rows["v"] = rng.uniform(-1, 1, n)
    return rows


def scalar_runner(label, work_dir, worker, *, size, interface="memmap", names=("f",), **options):
    """A runner ``label`` in ``work_dir`` over an interface of ``size`` rows: (u, v) in, ``names``
    out. A callable ``worker`` is run as a function worker with those outputs."""
    from profit.run import Runner

    config = {"class": interface, "size": size, "input_config": SCALAR_INPUTS, "output_config": outputs(*names)}
    if callable(worker):
        worker = {"class": worker, "outputs": list(names)}
    return Runner[label](interface=config, worker=worker, work_dir=str(work_dir), **options)


def sum_rows(count):
    """count (u, v) rows with u = 0, 1, 2, ... and v = 0.5."""
    rows = np.zeros(count, dtype=[("u", "f8"), ("v", "f8")])
    rows["u"], rows["v"] = np.arange(count), 0.5
    return rows


def study_results(study, count):
    """A study's inputs and results as its export files hold them (input.txt, output.txt), checked to be
    ``count`` rows each."""
    inputs = np.genfromtxt(study / "input.txt", names=True)
    results = np.genfromtxt(study / "output.txt", names=True)
    assert len(inputs) == len(results) == count
    return inputs, results


def most_at_once(spans):
    """The largest number of (start, end) spans active at one instant (a span ends before one that starts then)."""
    return max(sum(1 for other in spans if other["start"] <= span["start"] < other["end"]) for span in spans)


# --- processes and waiting -----------------------------------------------------------------


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
    deadline = time.monotonic() + timeout
    while True:
        if listen is not None:
            listen.interface.poll()
        if condition():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


def started_pids(runner, count):
    """Wait until `count` t_tree workers have written their (worker, grandchild) pids."""
    folder = os.path.join(runner.work_dir, "pids")

    def ready():
        return os.path.isdir(folder) and len([n for n in os.listdir(folder) if not n.endswith(".tmp")]) >= count

    wait_for(ready, what=f"{count} workers to start their grandchildren", listen=runner)
    pids = []
    for name in os.listdir(folder):
        if not name.endswith(".tmp"):
            with open(os.path.join(folder, name)) as file:
                pids.extend(int(pid) for pid in file.read().split())
    return pids


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


# --- the profit command on study directories -------------------------------------------------

PROFIT = os.path.join(os.path.dirname(sys.executable), "profit")

SIMULATION = """\
import os, sys, time
values = dict(line.split(" = ") for line in open("input.txt").read().splitlines())
u, v = float(values["u"]), float(values["v"])
log = os.path.join(os.environ["PROFIT_BASE_DIR"], "executions.log")
with open(log, "a") as file:
    file.write(f"start {{u!r}} {{time.time()!r}}\\n")
time.sleep({sleep})
if u < {fail_below}:
    print(f"u={{u}} is too small", file=sys.stderr)
    sys.exit(4)
with open(log, "a") as file:
    file.write(f"end {{u!r}} {{time.time()!r}}\\n")
print(u + v, u * v)
"""


def make_study(folder, yaml, sleep=0.0, fail_below=-1.0):
    """A study directory: profit.yaml, and a template whose program computes u+v and u*v."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "profit.yaml").write_text(textwrap.dedent(yaml))
    template = folder / "template"
    template.mkdir(exist_ok=True)
    (template / "input.txt").write_text("u = {u}\nv = {v}\n")
    program = template / "simulation"
    program.write_text(f"#!{sys.executable}\n" + SIMULATION.format(sleep=sleep, fail_below=fail_below))
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    return folder


STUDY = """\
ntrain: {ntrain}
seed: 11
variables:
  u: Uniform(0, 1)
  v: Halton(2, 3)
  f: Output
  g: Output
run:
  runner: {runner}
  command: ./simulation
"""


def runs_done(study):
    """How many runs the study's ledger records as done (0 before it exists)."""
    ledger = study / "profit-study.npy"
    return int(np.count_nonzero(np.load(ledger, mmap_mode="r")["STATE"] == 2)) if ledger.exists() else 0


def profit(*args, cwd=None, timeout=120):
    return subprocess.run([PROFIT, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)
