"""The runner's event loop: file descriptors, run deadlines and a polling fallback.

A runner waits for whatever can end a run next:

* a file descriptor becoming readable: a run's pidfd (its process ended), a
  pool worker's result pipe, a message socket of the interface;
* the earliest run deadline (its timeout), kept in a heap;
* for runs without any event (``Notice.POLL``), a poll interval.

:meth:`EventLoop.wait` blocks until the first of these and returns the data
registered with the descriptors that are ready; the runner then settles what
ended. Waiting never sleeps a fixed time when an event can wake it.
"""

from __future__ import annotations

import heapq
import selectors
import time


class EventLoop:
    """A selector of watched descriptors plus a heap of deadlines by run id."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._deadlines: list[tuple[float, int]] = []
        self._deadline_of: dict[int, float] = {}

    # --- descriptors -----------------------------------------------------------------

    def watch(self, fd: int, data: object) -> None:
        """Wake :meth:`wait` when ``fd`` becomes readable; it then returns ``data``.

        Args:
            fd: The descriptor.
            data: What :meth:`wait` returns for it.
        """
        self._selector.register(fd, selectors.EVENT_READ, data)

    def unwatch(self, fd: int) -> None:
        """Stop watching ``fd`` (before it is closed).

        Args:
            fd: The descriptor.
        """
        self._selector.unregister(fd)

    def watching(self, fd: int) -> bool:
        """Whether ``fd`` is watched.

        Args:
            fd: The descriptor.
        """
        return fd in self._selector.get_map()

    # --- deadlines ---------------------------------------------------------------------

    def set_deadline(self, run_id: int, seconds: float) -> None:
        """``run_id`` is due ``seconds`` from now (replacing an earlier deadline of it).

        Args:
            run_id: The run.
            seconds: Seconds from now.
        """
        deadline = time.monotonic() + seconds
        self._deadline_of[run_id] = deadline
        heapq.heappush(self._deadlines, (deadline, run_id))

    def clear_deadline(self, run_id: int) -> None:
        """``run_id`` has no deadline any more (its entry in the heap is skipped when it comes up).

        Args:
            run_id: The run.
        """
        self._deadline_of.pop(run_id, None)

    @property
    def has_deadlines(self) -> bool:
        """Whether any deadline is pending."""
        return bool(self._deadlines)

    def expired(self) -> list[int]:
        """The run ids whose deadline has passed (each once), earliest first."""
        now = time.monotonic()
        due = []
        while self._deadlines and self._deadlines[0][0] <= now:
            deadline, run_id = heapq.heappop(self._deadlines)
            if self._deadline_of.get(run_id) == deadline:  # else: that attempt has ended already
                del self._deadline_of[run_id]
                due.append(run_id)
        return due

    # --- waiting ----------------------------------------------------------------------

    def wait(self, timeout: float | None, poll_interval: float | None = None) -> list[object]:
        """Block until a watched descriptor is ready, the next deadline, ``poll_interval``
        or ``timeout`` seconds (None: no bound); return the data of the ready descriptors.

        Args:
            timeout: The most seconds to wait (None: no bound).
            poll_interval: Seconds after which to return in any case (None: none).

        Returns:
            The data of the ready descriptors.
        """
        for bound in (poll_interval, self._until_deadline()):
            if bound is not None:
                timeout = bound if timeout is None else min(timeout, bound)
        if not self._selector.get_map():
            time.sleep(timeout or 0)  # nothing can wake us: nothing to wait for but time
            return []
        return [key.data for key, _ in self._selector.select(timeout)]

    def _until_deadline(self) -> float | None:
        if not self._deadlines:
            return None
        return max(0.0, self._deadlines[0][0] - time.monotonic())

    def close(self) -> None:
        """Release the selector."""
        self._selector.close()
