"""Workers used by the test suite.

This file is loaded as an include file (like a study's ``include:``), so the
workers exist in the runner and, through PROFIT_INCLUDES, in every worker
process started through the shell.
"""

import ctypes
import faulthandler
import os
import signal
import subprocess
import sys
import time

from profit.run import Postprocessor, Preprocessor, Worker


@Worker.wrap("t_sum")
def f(u, v):
    return u + v


@Worker.wrap("t_pair", ["f", "g"])
def pair(u, v):
    return u + v, u - v


@Worker.wrap("t_vector", "f")
def vector(u, v):
    return [u, v, u + v]


@Worker.wrap("t_span", ["start", "end"])
def span(u, v):
    """Record when the run was active, to check how many ran at once."""
    start = time.time()
    time.sleep(float(u))
    return start, time.time()


@Worker.wrap("t_raise", "f")
def raises(u, v):
    raise ValueError(f"boom at u={u}")


@Worker.wrap("t_exit3", "f")
def exits(u, v):
    sys.exit(3)


@Worker.wrap("t_sigkill", "f")
def killed(u, v):
    os.kill(os.getpid(), signal.SIGKILL)


@Worker.wrap("t_segv", "f")
def segfault(u, v):
    # A real segmentation fault, as a crashing C extension would cause.
    # A forked worker inherits faulthandler from pytest (which enables it), which would print
    # "Fatal Python error: Segmentation fault" and a stack dump into the test output for this
    # deliberate crash. The runner must see the signal itself, so faulthandler is switched off
    # rather than the fault caught. (SIGKILL, used by the other crash workers, cannot be caught
    # by faulthandler, so those print nothing.)
    faulthandler.disable()
    ctypes.string_at(0)


@Worker.wrap("t_wrong_count", ["f", "g"])
def wrong_count(u, v):
    return u, v, u + v


@Worker.wrap("t_gate", "f")
def gate(u, v):
    """Block until the test lets one byte through the FIFO ``gate.fifo``, then sum."""
    with open("gate.fifo", "rb", buffering=0) as fifo:  # one byte per worker
        fifo.read(1)
    return u + v


@Worker.wrap("t_tree", "f")
def tree(u, v):
    """Start a grandchild, note both pids, then wait forever (until cancelled)."""
    child = subprocess.Popen(["sleep", "300"])
    os.makedirs("pids", exist_ok=True)
    with open(f"pids/{os.getpid()}.tmp", "w") as file:
        file.write(f"{os.getpid()} {child.pid}")
    os.rename(f"pids/{os.getpid()}.tmp", f"pids/{os.getpid()}")
    while True:
        signal.pause()


class NoTransmit(Worker, label="t_no_transmit"):
    """Retrieves its inputs and ends without transmitting."""

    def work(self):
        self.interface.retrieve()


class TransmitThenDie(Worker, label="t_transmit_then_die"):
    """Transmits a correct result, then dies: the run is done, not failed."""

    def work(self):
        self.interface.retrieve()
        self.interface.output["f"] = self.interface.input["u"] + self.interface.input["v"]
        self.interface.transmit()
        os.kill(os.getpid(), signal.SIGKILL)


class HalfWritten(Worker, label="t_half_written"):
    """Writes one of two outputs, then dies before transmitting."""

    def work(self):
        self.interface.retrieve()
        self.interface.output["f"] = 1.0
        os.kill(os.getpid(), signal.SIGKILL)


@Worker.wrap("t_sum_unless_negative", "f")
def sum_unless_negative(u, v):
    if u < 0:
        raise ArithmeticError("negative u")
    return u + v


@Preprocessor.wrap("t_write_inputs", config={"filename": "inputs.txt"})
def write_inputs(self, data):
    """Write the inputs, space separated, into one file of the run directory."""
    with open(self.filename, "w") as file:
        file.write(" ".join(str(data[name]) for name in data.dtype.names))


@Postprocessor.wrap("t_product", config={"path": "stdout", "scale": 1.0})
def read_product(self, data):
    """f = scale * (product of the two numbers in the file)."""
    a, b = (float(word) for word in open(self.path).read().split())
    data["f"] = self.scale * a * b


@Worker.wrap("t_faulty", "f", ["u", "v", "fault"])
def faulty(u, v, fault):
    """fault 1: SIGKILL itself on the first attempt; fault 2: raise on the first attempt; 3: always raise."""
    marker = f"attempted-{u!r}"
    first = not os.path.exists(marker)
    open(marker, "a").close()
    if fault == 3 or (first and fault == 2):
        raise RuntimeError(f"injected failure at u={u!r}")
    if first and fault == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return u + v


class TransmitThenWait(Worker, label="t_transmit_then_wait"):
    """Transmits a correct result, then lingers until it is ended."""

    def work(self):
        self.interface.retrieve()
        self.interface.output["f"] = self.interface.input["u"] + self.interface.input["v"]
        self.interface.transmit()
        open("transmitted", "w").close()
        while True:
            signal.pause()


class Sleep(Worker, label="t_sleep"):
    """f = u + v after `seconds` of idling (a long run, for connection keep-alive tests)."""

    def __init__(self, run_id, *, seconds=1.0, **kwargs):
        super().__init__(run_id, **kwargs)
        self.seconds = seconds

    def work(self):
        self.interface.retrieve()
        time.sleep(self.seconds)
        self.interface.output["f"] = self.interface.input["u"] + self.interface.input["v"]
        self.interface.transmit()


@Worker.wrap("t_slow_once", "f")
def slow_once(u, v):
    """Sleeps 60 s on the first attempt of a run (to time out), returns u + v at once on the next;
    each execution appends a line to ``executions-<u>`` in the work directory."""
    log = f"executions-{u!r}"
    first = not os.path.exists(log)
    with open(log, "a") as file:
        file.write(f"{os.getpid()}\n")
    if first:
        time.sleep(60)
    return u + v


@Worker.wrap("t_counted", "f")
def counted(u, v):
    """f = u + v; each execution appends its u to ``executions.log`` in the study's base directory.

    Fails (raises) for u < 0 until a file ``fixed`` exists there: a model bug that gets fixed.
    """
    base = os.environ["PROFIT_BASE_DIR"]
    with open(os.path.join(base, "executions.log"), "a") as file:
        file.write(f"{u!r}\n")
    if u < 0 and not os.path.exists(os.path.join(base, "fixed")):
        raise ValueError(f"u={u!r} is negative")
    return u + v


@Worker.wrap("t_orphan_fork", "f")
def orphan_fork(u, v):
    """Fork a grandchild that sleeps (an orphan once the worker dies), note its pid in ``orphans/`` of the
    study's base directory; then sum at once if ``release`` exists there, else hang."""
    base = os.environ["PROFIT_BASE_DIR"]
    pid = os.fork()
    if pid == 0:
        time.sleep(300)
        os._exit(0)
    os.makedirs(os.path.join(base, "orphans"), exist_ok=True)
    open(os.path.join(base, "orphans", str(pid)), "w").close()
    while not os.path.exists(os.path.join(base, "release")):
        time.sleep(0.05)
    return u + v


@Worker.wrap("t_setsid_tree", "f")
def setsid_tree(u, v):
    """A grandchild that leaves the worker's process group, then hang until ended.

    u == 0: ``setsid sleep 300`` (its parent, the worker, lives on); u == 1: a daemon, a ``sleep 300``
    in a session of its own whose parent exited. Notes ``<worker pid> <grandchild pid>`` in ``pids/``.
    """
    if u == 0:
        grandchild = subprocess.Popen(["setsid", "sleep", "300"]).pid
    else:
        read, write = os.pipe()
        middle = os.fork()
        if middle == 0:
            os.setsid()
            pid = os.fork()
            if pid == 0:
                os.execvp("sleep", ["sleep", "300"])
            os.write(write, str(pid).encode())
            os._exit(0)
        os.close(write)
        grandchild = int(os.read(read, 32))
        os.waitpid(middle, 0)
    os.makedirs("pids", exist_ok=True)
    with open(f"pids/{os.getpid()}.tmp", "w") as file:
        file.write(f"{os.getpid()} {grandchild}")
    os.rename(f"pids/{os.getpid()}.tmp", f"pids/{os.getpid()}")
    while True:
        signal.pause()
