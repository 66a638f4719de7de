"""How the local runners learn that a process ended: one descriptor per process, or polling.

Three backends, chosen at run time:

* ``pidfd`` (Linux 5.3+): ``os.pidfd_open``; the descriptor becomes readable when the
  process exits;
* ``kqueue`` (macOS, the BSDs): a kqueue per process with ``KQ_FILTER_PROC`` /
  ``KQ_NOTE_EXIT`` registered; the kqueue's descriptor becomes readable when the
  process exits;
* ``poll`` (anywhere): no descriptor; the owner checks the child every few
  milliseconds with ``os.waitid(..., WEXITED | WNOHANG | WNOWAIT)`` (the event loop
  drives the checks: :data:`profit.run.tracking.FALLBACK_POLL_INTERVAL`).

The environment variable ``PROFIT_EXIT_WATCH`` picks one (``pidfd``, ``kqueue`` or
``poll``); unset or empty, the best one available here is used. None of them reaps:
an ended child stays a zombie until its owner reaps it, so that its process group
id stays reserved while the group is signalled (see :class:`~._proc.ChildProcess`).
A process watched by a descriptor falls back to polling when no descriptor is left
(EMFILE, ENFILE).
"""

from __future__ import annotations

import errno
import os
import select

from .errors import ConfigError

TYPE_CHECKING = False  # (typing costs every worker process its import)
if TYPE_CHECKING:
    from typing import Any

_kq: Any = select  # (kqueue's names exist on macOS and the BSDs only)

ENV = "PROFIT_EXIT_WATCH"
BACKENDS = ("pidfd", "kqueue", "poll")  # best first

HAVE_KQUEUE = hasattr(select, "kqueue") and hasattr(select, "KQ_FILTER_PROC") and hasattr(select, "KQ_NOTE_EXIT")
HAVE_WAITID = hasattr(os, "waitid") and hasattr(os, "WNOWAIT")

_pidfd_works: bool | None = None  # probed once: os.pidfd_open may exist on a kernel without it
_chosen: dict[str, str] = {}  # value of the variable -> backend
_kqueues: dict[int, Any] = {}  # descriptor -> its kqueue (kept alive until unwatch)

# Descriptors lacking: the process is polled instead (like on a platform without a backend).
_NO_DESCRIPTOR = (errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOSYS)


def pidfd_available() -> bool:
    """Whether pidfds work here (probed once: ``os.pidfd_open`` may exist on a kernel that refuses it).

    Returns:
        True where a pidfd can hold a process, whichever backend watches exits.
    """
    global _pidfd_works
    if _pidfd_works is None:
        _pidfd_works = False
        if hasattr(os, "pidfd_open"):
            try:
                os.close(os.pidfd_open(os.getpid()))
                _pidfd_works = True
            except OSError as error:
                _pidfd_works = error.errno not in (errno.ENOSYS, errno.EPERM, errno.EINVAL)
    return _pidfd_works


def available() -> list[str]:
    """The backends that work here, best first (``poll`` always)."""
    found = ["pidfd"] if pidfd_available() else []
    if HAVE_KQUEUE:
        found.append("kqueue")
    return [*found, "poll"]


def backend() -> str:
    """The backend in use: ``PROFIT_EXIT_WATCH``, else the best available.

    Raises:
        ConfigError: The variable names an unknown backend or one not available here.
    """
    value = os.environ.get(ENV, "")
    chosen = _chosen.get(value)
    if chosen is None:
        here = available()
        name = value.strip().lower()
        if not name:
            chosen = here[0]
        elif name in here:
            chosen = name
        else:
            what = "is not available here" if name in BACKENDS else "is not a way to watch process exits"
            raise ConfigError(
                f"{ENV}={value!r} {what}; choose one of {', '.join(BACKENDS)} "
                f"(available here: {', '.join(here)}) or leave {ENV} unset for the best available"
            )
        _chosen[value] = chosen
    return chosen


def watch(pid: int, *, child: bool = True) -> int | None:
    """A descriptor that becomes readable when process ``pid`` exits, or None: poll it.

    Release it with :func:`unwatch`.

    Args:
        pid: The process.
        child: ``pid`` is a child of this process (an ended one is then recognised as such).

    Raises:
        ProcessLookupError: A process that is no child of this process is gone already.
    """
    name = backend()
    if name == "pidfd":
        try:
            return os.pidfd_open(pid)
        except OSError as error:
            if error.errno in _NO_DESCRIPTOR:
                return None
            raise
    if name == "kqueue":
        return _watch_kqueue(pid, child)
    return None


def _watch_kqueue(pid: int, child: bool) -> int | None:
    try:
        queue = _kq.kqueue()
    except OSError as error:
        if error.errno in _NO_DESCRIPTOR:
            return None
        raise
    event = _kq.kevent(pid, filter=_kq.KQ_FILTER_PROC, flags=_kq.KQ_EV_ADD | _kq.KQ_EV_ONESHOT, fflags=_kq.KQ_NOTE_EXIT)
    try:
        queue.control([event], 0, 0)
    except ProcessLookupError:
        # Gone already: a zombie child (some kernels refuse to watch one), or no process at all.
        queue.close()
        if not child:
            raise
        return None  # (polling sees at once that it ended)
    except BaseException:
        queue.close()
        raise
    if child and exited(pid):
        queue.close()  # it ended before the watch began: the event may never come
        return None
    fd = queue.fileno()
    _kqueues[fd] = queue
    return fd


def unwatch(fd: int) -> None:
    """Release a descriptor that :func:`watch` returned.

    Args:
        fd: The descriptor.
    """
    queue = _kqueues.pop(fd, None)
    if queue is not None:
        queue.close()
    else:
        os.close(fd)


def exited(pid: int) -> bool:
    """Whether child ``pid`` has ended, without reaping it (True when it is no child of ours).

    Args:
        pid: The child process.
    """
    if HAVE_WAITID:
        try:
            info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return info is not None and info.si_pid != 0
    return _exited_without_waitid(pid)


# Children reaped to learn that they ended (no waitid: macOS before Python 3.13): pid -> wait status.
_reaped: dict[int, int] = {}


def _exited_without_waitid(pid: int) -> bool:
    """Without waitid: psutil tells a zombie without reaping it; failing that, the child is reaped
    here and its wait status kept for :func:`take_reaped` (its group is then signalled a moment
    after the group id was freed: a best effort)."""
    if pid in _reaped:
        return True
    try:
        import psutil  # type: ignore[import-untyped]
    except ImportError:
        psutil = None
    if psutil is not None:
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True
        except psutil.Error:
            pass
    try:
        reaped, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    if reaped == 0:
        return False
    _reaped[pid] = status
    return True


def take_reaped(pid: int) -> int | None:
    """The wait status of child ``pid`` if :func:`exited` had to reap it, else None.

    Args:
        pid: The child process.
    """
    return _reaped.pop(pid, None)


def block_until_exited(pid: int) -> None:
    """Block until child ``pid`` has ended, without reaping it (its group id stays reserved).

    Args:
        pid: The child process.
    """
    if HAVE_WAITID:
        try:
            os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
        except ChildProcessError:
            pass
        return
    fd = _watch_kqueue(pid, True) if HAVE_KQUEUE else None
    if fd is not None:
        try:
            wait_readable(fd, None)
        finally:
            unwatch(fd)
        return
    import time

    pause = 0.001
    while not exited(pid):
        time.sleep(pause)
        pause = min(2 * pause, 0.05)


def wait_readable(fd: int, timeout: float | None) -> bool:
    """Wait up to ``timeout`` seconds (None: no bound) for a watch descriptor; whether the process ended.

    Args:
        fd: A descriptor that :func:`watch` returned.
        timeout: The most seconds to wait (None: no bound).
    """
    ready, _, _ = select.select([fd], [], [], timeout)
    return bool(ready)
