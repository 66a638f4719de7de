"""Run states and the status value object.

A run moves ``PENDING -> RUNNING -> DONE | FAILED | CANCELLED``. The state is
stored as a small integer in the interface (column ``STATE`` beside ``DONE``), so
it is visible to anyone who can read the interface, including another shell.
"""

from __future__ import annotations

import enum
from collections import namedtuple

from . import _state_values as _values


class RunState(enum.IntEnum):
    """The state of one run. The integer values are stored in interface files."""

    PENDING = _values.PENDING
    RUNNING = _values.RUNNING
    DONE = _values.DONE
    FAILED = _values.FAILED
    CANCELLED = _values.CANCELLED

    @property
    def final(self) -> bool:
        """Whether the run has ended (it will not change state by itself again)."""
        return self >= RunState.DONE

    def __str__(self) -> str:
        return self.name.lower()


class RunStatus(namedtuple("RunStatus", ["run_id", "state", "reason"], defaults=[""])):
    """What is known about one run: ``run_id``, ``state`` and, when it did not succeed, ``reason``."""

    __slots__ = ()

    def __str__(self) -> str:
        text = f"run {self.run_id}: {self.state}"
        return f"{text} ({self.reason})" if self.reason else text
