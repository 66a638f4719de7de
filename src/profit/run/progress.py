"""Progress bars of runs (tqdm, imported only where a bar is asked for)."""

from __future__ import annotations

import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def progress_bar(total: int, initial: int = 0) -> Any:
    """A tqdm bar of runs, without tqdm's monitor thread (forking a threaded process is unsafe).

    Args:
        total: The runs.
        initial: The runs finished already.
    """
    from tqdm import tqdm  # type: ignore[import-untyped]  # tqdm has no inline types (types-tqdm is not a dependency)

    class Bar(tqdm):
        monitor_interval = 0

    return Bar(total=total, initial=initial, desc="runs", unit="run", smoothing=0.1)


class RunProgress:
    """A runner's bar: finished runs of ``total``, with done, failed and running counts.

    Redrawn at most ten times a second: it is updated after every event, and
    redrawing that often would cost more than a run.

    Args:
        total: The runs.
    """

    def __init__(self, total: int):
        self.bar = progress_bar(total)
        self._next_update = 0.0

    def update(self, *, started: int, running: int, failed: int, force: bool = False) -> None:
        """``started`` runs so far, of which ``running`` are active and ``failed`` failed or were cancelled.

        Args:
            started: The runs started so far.
            running: Those of them that are active.
            failed: Those that failed or were cancelled.
            force: Redraw now (not at most ten times a second).
        """
        if not force and time.monotonic() < self._next_update:
            return
        self._next_update = time.monotonic() + 0.1
        finished = started - running
        self.bar.total = max(self.bar.total, started)
        self.bar.set_postfix(done=finished - failed, failed=failed, running=running, refresh=False)
        self.bar.update(finished - self.bar.n)

    def close(self) -> None:
        """Close the bar."""
        self.bar.close()
