"""How a run ended: the one decision, as a pure function of what was observed.

The runner observes a finished run once, in this order: the exit status of its
process (or the scheduler's verdict), *then* whether its worker transmitted.
Reading the exit status first means that a worker that transmitted and then
exited (or was killed on its way out) is seen as having transmitted: a run that
finished is never called failed, not even when it was cancelled or its time
was up at that moment. Then::

    transmitted                 -> DONE
    cancelled                   -> CANCELLED ("cancelled")
    otherwise, with retries left -> Retry (same run id and row, next attempt)
    otherwise                   -> FAILED (the worker's own reason, or the timeout,
                                   or the exit status and the last line of the run's log)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from .handles import Ending
from .state import RunState, RunStatus


class Observation(NamedTuple):
    """What the runner knows about a run that has ended (or is being ended)."""

    run_id: int
    transmitted: bool  # the worker handed its results over (the interface's DONE flag)
    ending: Ending | None = None  # exit status or scheduler verdict, read before `transmitted`
    timed_out: bool = False
    cancelled: bool = False
    reported: str = ""  # the reason the worker itself reported, if it did
    attempt: int = 1  # 1 for the first execution of the run


class Retry(NamedTuple):
    """Run ``run_id`` again: its ``attempt``-th execution, after failing with ``reason``."""

    run_id: int
    attempt: int
    reason: str


def decide(
    seen: Observation,
    *,
    retries: int = 0,
    may_retry: bool = True,
    timeout: float | None = None,
    through_shell: bool = False,
    last_log_line: Callable[[], str] = lambda: "",
) -> RunStatus | Retry:
    """The run's final status, or a :class:`Retry` when it failed with retries left.

    ``retries`` is how often a failed run is run again; ``may_retry`` is False
    where a failure must be final (a run that ended while it was being
    cancelled). ``through_shell`` explains shell exit codes (127: not found).
    ``last_log_line`` is called only when the reason is an exit status.
    """
    if seen.transmitted:
        return RunStatus(seen.run_id, RunState.DONE)
    if seen.cancelled:
        return RunStatus(seen.run_id, RunState.CANCELLED, "cancelled")
    if seen.timed_out:
        reason = f"timed out after {timeout:g} s" if timeout is not None else "timed out"
    else:
        reason = failure_reason(seen, through_shell=through_shell, last_log_line=last_log_line)
    if may_retry and seen.attempt <= retries:
        return Retry(seen.run_id, seen.attempt + 1, reason)
    if seen.attempt > 1:
        reason += f" (attempt {seen.attempt} of {retries + 1})"
    return RunStatus(seen.run_id, RunState.FAILED, reason)


def failure_reason(seen: Observation, *, through_shell: bool, last_log_line: Callable[[], str]) -> str:
    """Why a run that did not transmit failed: what its worker said, else how its process ended."""
    if seen.reported:
        return seen.reported
    if seen.ending is None:
        return "worker ended without transmitting results"
    described = seen.ending.describe(through_shell=through_shell)
    described = f"worker {described} without transmitting results" if seen.ending.success else f"worker {described}"
    last = last_log_line()
    return f"{described}; last log line: {last}" if last else described
