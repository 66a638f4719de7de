"""Plain functions the tests of the study's page give as workers (test_ui.py, test_ui_browser.py).

Defined at module level, so a worker in another process imports them by name.
"""

import os
import time


def flaky(u, v) -> ["f", "g"]:  # noqa: F821  (the return annotation names the outputs)
    """Fails for some inputs, with one of two reasons; else a scalar and a 2-vector."""
    if u > 0.8:
        raise ValueError("u is too large for the model")
    if v < 0.2:
        raise RuntimeError("the solver did not converge")
    print(f"computing at u={u} v={v}")
    return u + v, [u, u * v]


def quick(u, v) -> "f":  # noqa: F821
    return u + v


def gated(u, v) -> "f":  # noqa: F821
    """Waits until the file named by $PROFIT_UI_GATE exists (the test creates it), then returns."""
    gate = os.environ["PROFIT_UI_GATE"]
    deadline = time.monotonic() + 120
    while not os.path.exists(gate):
        if time.monotonic() > deadline:
            raise TimeoutError("the gate file never appeared")
        time.sleep(0.02)
    return u + v


def half_gated(u, v) -> "f":  # noqa: F821
    """Returns at once for u < 0.5; otherwise waits at the gate as :func:`gated` does."""
    if u < 0.5:
        return u + v
    return gated(u, v)


def unique_failures(u, v) -> "f":  # noqa: F821
    """Fails for most inputs with a reason that carries the input: one failure group per run."""
    if u > 0.2:
        raise ValueError(f"u={u!r} is too large")
    return u + v
