"""Plain functions the tests of function workers give as workers (test_function_workers.py).

Defined at module level, so a worker in another process (the local runner's)
imports them by name; nothing here registers a Worker label.
"""

import sys


def model(u, v) -> ["f", "g"]:  # noqa: F821  (the return annotation names the outputs)
    return u + v, u * v


def typed(n: int, flag: bool, x) -> "y":  # noqa: F821
    return n * 10.0 + flag + x


def scaled(scale, u, v) -> "f":  # noqa: F821  (given as functools.partial(scaled, 3.0))
    return scale * (u + v)


def pandas_loaded(u, v):
    """1.0 when the worker process imported pandas (it never should), else 0.0."""
    return float("pandas" in sys.modules)


class Affine:
    """A callable object as the worker: its class's __call__ names the output."""

    def __init__(self, slope):
        self.slope = slope

    def __call__(self, u, v) -> "h":  # noqa: F821
        return self.slope * u + v
