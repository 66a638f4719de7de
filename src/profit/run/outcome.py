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

from collections import namedtuple
from collections.abc import Callable

from .state import RunState, RunStatus

TYPE_CHECKING = False  # (typing costs every worker process its import)
if TYPE_CHECKING:
    pass


class Observation(
    namedtuple(
        "Observation",
        ["run_id", "transmitted", "ending", "timed_out", "cancelled", "reported", "attempt"],
        defaults=[None, False, False, "", 1],
    )
):
    """What the runner knows about a run that has ended (or is being ended).

    ``transmitted``: the worker handed its results over (the interface's DONE
    flag); ``ending``: its exit status or scheduler verdict (an
    :class:`~profit.run.handles.Ending`, or None), read *before* ``transmitted``;
    ``timed_out``, ``cancelled``: how the runner ended it, if it did;
    ``reported``: the reason the worker itself reported; ``attempt``: 1 for the
    first execution of the run.
    """

    __slots__ = ()


class Retry(namedtuple("Retry", ["run_id", "attempt", "reason"])):
    """Run ``run_id`` again: its ``attempt``-th execution, after failing with ``reason``."""

    __slots__ = ()


def decide(
    seen: Observation,
    *,
    retries: int = 0,
    may_retry: bool = True,
    timeout: float | None = None,
    through_shell: bool = False,
    last_log_line: Callable[[], str] = lambda: "",
    left_behind: Callable[[], str] = lambda: "",
) -> RunStatus | Retry:
    """The run's final status, or a :class:`Retry` when it failed with retries left.

    Args:
        seen: What was observed of the run.
        retries: How often a failed run is run again.
        may_retry: False where a failure must be final (a run that ended while it was being cancelled).
        timeout: The run's timeout in seconds (for the reason of a run that timed out).
        through_shell: Explains shell exit codes (127: not found).
        last_log_line: Called only when the reason is an exit status.
        left_behind: Where to look (the run's log, its kept directory); called only for a timeout.
    """
    if seen.transmitted:
        return RunStatus(seen.run_id, RunState.DONE)
    if seen.cancelled:
        return RunStatus(seen.run_id, RunState.CANCELLED, "cancelled")
    if seen.timed_out:
        reason = f"timed out after {timeout:g} s" if timeout is not None else "timed out"
        where = left_behind()
        reason += f" ({where})" if where else ""
    else:
        reason = failure_reason(seen, through_shell=through_shell, last_log_line=last_log_line)
    if may_retry and seen.attempt <= retries:
        return Retry(seen.run_id, seen.attempt + 1, reason)
    if seen.attempt > 1:
        reason += f" (attempt {seen.attempt} of {retries + 1})"
    return RunStatus(seen.run_id, RunState.FAILED, reason)


def failure_reason(seen: Observation, *, through_shell: bool, last_log_line: Callable[[], str]) -> str:
    """Why a run that did not transmit failed: what its worker said, else how its process ended.

    Args:
        seen: What was observed of the run.
        through_shell: Explains shell exit codes (127: not found).
        last_log_line: The last line of the run's log (called when the reason is an exit status).
    """
    if seen.reported:
        return seen.reported
    if seen.ending is None:
        return "worker ended without transmitting results"
    described = seen.ending.describe(through_shell=through_shell)
    described = f"worker {described} without transmitting results" if seen.ending.success else f"worker {described}"
    last = last_log_line()
    return f"{described}; last log line: {last}" if last else described
