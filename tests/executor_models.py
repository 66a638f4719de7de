"""Module-level functions the tests of :class:`profit.run.Executor` submit (test_executor*.py).

Defined at module level, so a worker in another process image (the local and
slurm runners') imports them by name. Functions that wait, wait for a file the
test creates, with a bound (they never hang a test that failed early).
"""

import os
import time

import numpy as np

BOUND = 30.0  # seconds a function waits at most for a file the test creates


def _wait_for_file(path, bound=BOUND):
    deadline = time.monotonic() + bound
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear within {bound} s")
        time.sleep(0.01)


def _touch(path, text=""):
    with open(path, "a") as file:
        file.write(text)


def double(x):
    return 2 * x


def add(x, y):
    return x + y


def scaled_sum(x, y, *, scale=1.0, offset=0.0):
    return scale * (x + y) + offset


def delayed_square(x, delay):
    """x squared, after ``delay`` seconds (calls of different lengths finish out of order)."""
    time.sleep(delay)
    return x * x


def gated(started, gate, value):
    """Write ``started``, wait until ``gate`` exists, give ``value``."""
    _touch(started, str(os.getpid()))
    _wait_for_file(gate)
    return value


def touch(path):
    """Create ``path`` (the evidence that this call ran)."""
    _touch(path, str(os.getpid()))
    return path


def pid_then_sleep(pid_file, seconds):
    """Write this process's pid to ``pid_file`` (atomically), then sleep."""
    with open(pid_file + ".tmp", "w") as file:
        file.write(str(os.getpid()))
    os.replace(pid_file + ".tmp", pid_file)
    time.sleep(seconds)
    return seconds


def sleep_for(seconds):
    time.sleep(seconds)
    return seconds


def fails(x):
    raise ValueError(f"x={x} is out of range")


def fails_when_negative(x):
    if x < 0:
        raise ValueError("negative")
    return x


def flaky(counter, failures):
    """Fail the first ``failures`` times (the attempts are counted in the file ``counter``)."""
    _touch(counter, "x")
    with open(counter) as file:
        attempt = len(file.read())
    if attempt <= failures:
        raise RuntimeError(f"attempt {attempt} fails")
    return attempt


def describe(value):
    """What arrived: type name, and for numpy values dtype and shape, and the value itself."""
    if isinstance(value, (np.ndarray, np.generic)):
        return type(value).__name__, value.dtype.str, value.shape, value.tolist()
    return type(value).__name__, None, None, value


def echo(value):
    return value


def make_result(kind):
    """A result of the kind named."""
    return {
        "array": np.arange(12.0).reshape(3, 4),
        "int_array": np.arange(5, dtype=np.int32),
        "tuple": (1, "two", 3.0),
        "dict": {"a": 1, "b": [2, 3]},
        "string": "hello",
        "none": None,
        "int": 7,
        "big_int": 2**60 + 1,
        "float": 0.1,
        "float64": np.float64(0.25),
        "bool": True,
    }[kind]


def log_prob(theta):
    """A correlated 2-D Gaussian (emcee)."""
    precision = np.array([[2.0, -0.9], [-0.9, 1.0]])
    return -0.5 * float(theta @ precision @ theta)


def peak(x):
    """A function with a sharp peak (adaptive's Learner1D example)."""
    a = 0.01
    return x + a**2 / (a**2 + x**2)


def square(x):
    return x * x


def fail_above(x, limit):
    if x > limit:
        raise ValueError(f"{x} is above {limit}")
    return x


def gaussian_loglike(x):
    return float(-0.5 * np.sum(x**2) - np.log(2 * np.pi))


def box_prior(unit):
    return 10.0 * unit - 5.0


class Scaler:
    """Its bound method is a new object at every attribute access: one function all the same."""

    def __init__(self, factor):
        self.factor = factor

    def scale(self, x):
        return [x * self.factor]  # (a list: the result travels pickled, in a file named by its run)


def count_tags(tags):
    return len(tags)


def pair(x):
    """An array result: float32, shape (2,)."""
    return np.array([x, 2 * x], dtype=np.float32)


def ragged(n):
    """Array results of a shape that changes with the call."""
    return np.arange(int(n), dtype=np.int64)
