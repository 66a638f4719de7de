"""The active runs of a runner: each run's handle, and how its end will be noticed.

A run enters when its worker started (:meth:`ActiveRuns.add`) and leaves when
the runner settles it (:meth:`ActiveRuns.remove`). On entering, its handle's
``notice`` decides how the runner learns of its end: a descriptor watched by
the event loop, the backend's own notification, or polling. Runners written
for proFit put their own objects into ``runs`` directly; those are read through
:class:`~profit.run.handles.ForeignHandle` and polled.
"""

from __future__ import annotations

from .events import EventLoop
from .handles import Notice, RunHandle, as_handle

# Without an exit event to wait on (PROFIT_EXIT_WATCH=poll, no descriptor left), check this
# often while other runs have events, or when the runs are cheap to check (child processes).
FALLBACK_POLL_INTERVAL = 0.005


class ActiveRuns:
    """Active runs by run id (``runs``, the runner's public dict) with their handles.

    Args:
        events: The runner's event loop.
    """

    def __init__(self, events: EventLoop):
        self.events = events
        self.runs: dict[int, object] = {}  # what the backend returned (or a proFit-style runner stored)
        self._handles: dict[int, RunHandle] = {}  # of the runs that entered through add()
        self._polled: set[int] = set()  # of those, the runs without an event: they need polling
        self._cheap: set[int] = set()  # of those, the runs that are cheap to poll (child processes)

    def add(self, run_id: int, handle: object) -> RunHandle:
        """Track a started run; returns its handle (``handle`` itself, or a reader of it).

        Args:
            run_id: The run.
            handle: What the backend returned for it.
        """
        tracked = as_handle(handle)
        self.runs[run_id] = handle
        self._handles[run_id] = tracked
        fd = tracked.fileno() if tracked.notice is Notice.EVENT else None
        if fd is not None:
            self.events.watch(fd, run_id)
        elif tracked.notice is not Notice.NOTIFIED:
            self._polled.add(run_id)
            if tracked.cheap_poll:
                self._cheap.add(run_id)
        return tracked

    def add_many(self, run_ids: list[int], handles: list[RunHandle]) -> list[RunHandle]:
        """Track many started runs at once, as :meth:`add` does; returns their handles.

        Args:
            run_ids: The runs.
            handles: What the backend returned for them, in the same order.
        """
        # (a check per class of handle, not per handle: isinstance of an ABC is slow)
        classes = {type(handle) for handle in handles}
        notified = Notice.NOTIFIED
        if all(issubclass(kind, RunHandle) for kind in classes) and all(
            handle.notice is notified for handle in handles
        ):
            # Their backend notices their ends itself: nothing to watch or poll, only the dicts.
            self.runs.update(zip(run_ids, handles))
            self._handles.update(zip(run_ids, handles))
            return handles
        return [self.add(run_id, handle) for run_id, handle in zip(run_ids, handles)]

    def remove_many(self, run_ids: list[int]) -> None:
        """Stop tracking many settled runs, as :meth:`remove` does.

        Args:
            run_ids: The runs (all active).
        """
        runs, handles, notified = self.runs, self._handles, Notice.NOTIFIED
        closes = RunHandle.close  # (the base's close does nothing: not called)
        for run_id in run_ids:
            tracked = handles.get(run_id)
            if tracked is not None and tracked.notice is notified:
                del runs[run_id], handles[run_id]  # (no descriptor, not polled)
                if type(tracked).close is not closes:
                    tracked.close()
            else:
                self.remove(run_id)

    def remove(self, run_id: int) -> None:
        """Stop tracking a run (it was settled) and release its handle.

        Args:
            run_id: The run.
        """
        del self.runs[run_id]
        tracked = self._handles.pop(run_id, None)
        if tracked is None:
            return
        self._polled.discard(run_id)
        self._cheap.discard(run_id)
        fd = tracked.fileno() if tracked.notice is Notice.EVENT else None
        if fd is not None:
            self.events.unwatch(fd)
        tracked.close()

    def handle(self, run_id: int) -> RunHandle | None:
        """The handle of an active run, or None if ``run_id`` is not active.

        Args:
            run_id: The run.
        """
        tracked = self._handles.get(run_id)
        if tracked is None and run_id in self.runs:
            return as_handle(self.runs[run_id])
        return tracked

    @property
    def need_polling(self) -> bool:
        """Whether some runs have no event to wait on (runs put into ``runs`` directly have none)."""
        return bool(self._polled) or len(self.runs) > len(self._handles)

    def poll_interval(self, sleep: float) -> float:
        """How often to poll: ``sleep``, or briefly when other runs wake the runner anyway or
        the polled runs are cheap to check.

        Args:
            sleep: The runner's poll interval in seconds.
        """
        if self._cheap or len(self._polled) < len(self._handles):
            return FALLBACK_POLL_INTERVAL
        return sleep

    def __len__(self) -> int:
        return len(self.runs)

    def __contains__(self, run_id: object) -> bool:
        return run_id in self.runs
