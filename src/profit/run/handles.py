"""The one protocol through which a runner tracks a started run, whatever started it.

Every backend returns a :class:`RunHandle` from its ``_start``: a forked or shell
process (:class:`~profit.run._proc.ChildProcess`), a run queued at a pool worker,
a Slurm job. Runners written for proFit store their own objects (a ``Popen``, a
``multiprocessing.Process``) in ``runner.runs``; the runner reads those through
:class:`ForeignHandle`. A handle answers two questions:

*How is its end noticed?* (``notice``)
    ``Notice.EVENT``: ``fileno()`` becomes readable when it ends (a pidfd, a kqueue);
    ``Notice.NOTIFIED``: the backend settles it from an event source of its own
    (a pool worker's result pipe); ``Notice.POLL``: the runner calls ``poll()``
    every so often (no event to wait on: a Slurm job, a proFit-style handle, a
    process without an exit watch descriptor: ``PROFIT_EXIT_WATCH=poll``).

*How is it stopped?*
    ``tree()`` is the process tree to end (``_proc.stop_trees`` signals it with
    SIGTERM, then SIGKILL after a grace time), or None when the run has no
    process here; then ``stop()`` asks it to end its own way.

``poll()`` returns how the run ended (an :class:`Ending`: an exit status or a
scheduler's verdict) once it has, and None before.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod

TYPE_CHECKING = False  # (typing costs every worker process its import)
if TYPE_CHECKING:
    from typing import Protocol

    from ._proc import ProcessTree

    class Ending(Protocol):
        """How a run's process or job ended, as the runner reads it (an exit status, a job's verdict)."""

        @property
        def success(self) -> bool:
            """Whether it ended normally (exit code 0, a job COMPLETED)."""
            ...

        def describe(self, *, through_shell: bool = False) -> str:
            """A human phrase: 'exited with code 3', 'killed by SIGKILL', 'ran out of memory (...)'."""
            ...


class Notice(enum.Enum):
    """How the runner learns that a run has ended."""

    EVENT = "event"
    NOTIFIED = "notified"
    POLL = "poll"


class RunHandle(ABC):
    """A started run, as its runner tracks it (see the module docstring)."""

    notice: Notice = Notice.POLL
    # False when the run may wait before it really starts (a pool queue, a batch
    # queue): its backend starts the timeout clock itself (Runner._start_clock).
    clock_at_launch: bool = True
    # The process group of the run on this host, if it has one: the profit command
    # notes it, to end what a killed runner left running.
    pid: int | None = None
    # Polling it is a cheap system call (a child's waitid), not a query of a service: a
    # runner polls it every few milliseconds rather than every ``sleep`` seconds.
    cheap_poll: bool = False

    def fileno(self) -> int | None:
        """A file descriptor that becomes readable when the run ends (``Notice.EVENT``), else None."""
        return None

    @abstractmethod
    def poll(self) -> Ending | None:
        """How the run ended once it has (reaping its process), else None."""

    def exited(self) -> bool:
        """Whether the run has ended, without consuming its ending (False when unknown)."""
        return False

    def tree(self) -> ProcessTree | None:
        """The process tree that ending this run must end, or None when it has none here."""
        return None

    def stop(self) -> None:
        """End a run that has no process tree here, its own way (called by cancel and timeouts)."""

    def close(self) -> None:
        """Release what the handle holds (called once, when the run is settled)."""


class ForeignHandle(RunHandle):
    """Reads an object that a proFit-style runner put into ``runner.runs`` as a handle.

    A ``subprocess.Popen`` ends when ``poll()`` has a return code, a
    ``multiprocessing.Process`` when it has an ``exitcode``; other objects only
    through the interface (the worker transmitted). ``stop()`` calls the
    object's ``terminate()`` if it has one.

    Args:
        obj: The object in ``runner.runs``.
    """

    __slots__ = ("obj",)

    def __init__(self, obj: object):
        self.obj = obj

    @property
    def pid(self) -> int | None:  # type: ignore[override]
        """The object's ``pid`` if it is an int, else None."""
        pid = getattr(self.obj, "pid", None)
        return pid if isinstance(pid, int) else None

    def poll(self) -> Ending | None:
        """How the object ended: its ``poll()`` (a ``Popen``) or ``exitcode`` (a ``Process``), None while unknown."""
        from ._proc import ExitStatus

        poll = getattr(self.obj, "poll", None)
        if callable(poll):
            code = poll()
        else:
            code = getattr(self.obj, "exitcode", None)
        return ExitStatus.from_returncode(code) if isinstance(code, int) else None

    def stop(self) -> None:
        """Call the object's ``terminate()``, if it has one."""
        terminate = getattr(self.obj, "terminate", None)
        if callable(terminate):
            terminate()


def as_handle(obj: object) -> RunHandle:
    """``obj`` itself if it is a :class:`RunHandle`, else a :class:`ForeignHandle` reading it.

    Args:
        obj: A handle, or an object a proFit-style runner put into ``runner.runs``.
    """
    return obj if isinstance(obj, RunHandle) else ForeignHandle(obj)
