"""Process helpers: exit statuses with signal names, and process trees.

Every worker process started by the local runners leads its own process group,
so that one ``killpg`` reaches the worker and everything it started (the shell,
the simulation under the shell, ...). A Linux *pidfd* makes each child's exit an
event that a selector can wait on, which keeps waiting event driven.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time
from collections import namedtuple
from collections.abc import Callable, Sequence

from .handles import Notice, RunHandle

TYPE_CHECKING = False  # (typing costs every worker process its import)
if TYPE_CHECKING:
    from subprocess import Popen
    from typing import Any, Literal, Protocol

HAVE_PIDFD = hasattr(os, "pidfd_open")


def signal_name(number: int) -> str:
    """``9 -> 'SIGKILL'``; unknown numbers are shown as ``'signal 99'``."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


# What a POSIX shell means by these exit codes.
_SHELL_CODES = {126: "the command is not executable", 127: "the command was not found"}


class ExitStatus(namedtuple("ExitStatus", ["code", "signal"], defaults=[None, None])):
    """How a process ended: an exit ``code``, or the ``signal`` that killed it."""

    __slots__ = ()

    @classmethod
    def from_returncode(cls, returncode: int) -> ExitStatus:
        """From a ``subprocess``-style return code (negative: killed by a signal)."""
        return cls(signal=-returncode) if returncode < 0 else cls(code=returncode)

    @property
    def success(self) -> bool:
        return self.code == 0

    def describe(self, *, through_shell: bool = False) -> str:
        """A human sentence: 'killed by SIGKILL', 'exited with code 3'."""
        if self.signal is not None:
            return f"killed by {signal_name(self.signal)}"
        text = f"exited with code {self.code}"
        if through_shell and self.code in _SHELL_CODES:
            text += f" ({_SHELL_CODES[self.code]})"
        # A shell that did not exec its last command reports a signal as 128+n.
        elif through_shell and self.code is not None and 128 < self.code < 128 + 65:
            text += f" (the shell's way of saying killed by {signal_name(self.code - 128)})"
        return text


if TYPE_CHECKING:

    class ProcessTree(Protocol):
        """A process and everything it started, as :func:`stop_trees` ends it."""

        def signal_tree(self, signum: int) -> None:
            """Send ``signum`` to every process of the tree."""
            ...

        def wait(self, timeout: float | None = None) -> ExitStatus | None:
            """Wait for the tree's leader to end (reaping it); None on timeout."""
            ...


def stop_trees(trees: Sequence[ProcessTree], grace: float) -> list[ExitStatus]:
    """End process trees: the one way a run's processes are ended (cancel, timeout, pool).

    All get SIGTERM at once; what is left after ``grace`` seconds gets SIGKILL
    (``grace`` 0: SIGKILL at once). Returns each leader's exit status, reaped.
    """
    if grace > 0:
        for tree in trees:
            tree.signal_tree(signal.SIGTERM)
    deadline = time.monotonic() + grace
    statuses: list[ExitStatus] = []
    for tree in trees:
        status = tree.wait(max(0.0, deadline - time.monotonic())) if grace > 0 else None
        if status is None:
            tree.signal_tree(signal.SIGKILL)
            status = tree.wait()
        statuses.append(status)  # type: ignore[arg-type]  # an unbounded wait returns a status
    return statuses


class ChildProcess(RunHandle):
    """A direct child that leads its own process group.

    ``fileno()`` becomes readable when the child exits (Linux pidfd), so many
    children can be watched with one selector. ``poll()`` reaps the child; until
    then the zombie keeps its pid, and with it the process group id, reserved,
    which makes signalling the group safe from pid reuse.
    """

    __slots__ = ("pid", "_fd", "_popen", "status", "notice")
    pid: int  # always a process here (RunHandle allows None)

    def __init__(self, pid: int, popen: Popen[Any] | None = None):
        self.pid = pid
        self._popen = popen  # kept so that subprocess does not reap behind our back
        self.status: ExitStatus | None = None
        self._fd = os.pidfd_open(pid) if HAVE_PIDFD else None
        self.notice = Notice.EVENT if self._fd is not None else Notice.POLL

    def tree(self) -> ChildProcess:
        """The child's process group is the run's process tree."""
        return self

    def fileno(self) -> int | None:
        """The pidfd, or None where the platform has none (then callers poll)."""
        return self._fd

    def exited(self) -> bool:
        """Whether the child has ended (without reaping it)."""
        if self.status is not None:
            return True
        try:
            info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return info is not None and info.si_pid != 0

    def poll(self) -> ExitStatus | None:
        """Reap the child if it has ended and return how; None while it runs.

        Whatever the worker left behind in its process group is killed first,
        while the zombie still reserves the group id.
        """
        if self.status is not None:
            return self.status
        if not self.exited():
            return None
        self.signal_tree(signal.SIGKILL)
        return self._reap()

    def wait(self, timeout: float | None = None) -> ExitStatus | None:
        """Wait up to ``timeout`` seconds for the child to end; reap it."""
        if self.status is None:
            fd = self._fd
            if fd is None:
                # No pidfd: a bounded wait is a single check, an unbounded one blocks.
                return self._reap(blocking=timeout is None)
            ready, _, _ = select.select([fd], [], [], timeout)
            if not ready:
                return None
        return self.poll()

    def signal_tree(self, signum: int) -> None:
        """Send ``signum`` to the child's whole process group (if any is left)."""
        if self.status is not None:
            return  # reaped: the group id may belong to somebody else by now
        try:
            os.killpg(self.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    def close(self) -> None:
        """Release the pidfd (once the owner stopped watching it)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _reap(self, blocking: bool = False) -> ExitStatus | None:
        try:
            pid, wait_status = os.waitpid(self.pid, 0 if blocking else os.WNOHANG)
        except ChildProcessError:
            # Reaped elsewhere (should not happen); the status is lost.
            self.status = ExitStatus(code=-1)
        else:
            if pid == 0:
                return None
            self.status = ExitStatus.from_returncode(os.waitstatus_to_exitcode(wait_status))
        if self._popen is not None:
            self._popen.returncode = -self.status.signal if self.status.signal is not None else self.status.code
        return self.status


def proc_stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (state first), or None if gone.

    The command name may hold spaces and parentheses, so the split is after its last ")".
    """
    try:
        with open(f"/proc/{pid}/stat") as file:
            return file.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of process group ``pgid`` (Linux: read from /proc)."""
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = proc_stat(int(entry))  # None: it ended meanwhile
            if fields is not None and int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
                members.append(int(entry))
    return members


_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_prctl: Callable[..., object] | Literal[False] | None = None  # False: looked for, not found


def load_prctl() -> Callable[..., object] | None:
    """Load libc's prctl (Linux), so that forked workers can call it cheaply; None elsewhere."""
    global _prctl
    if _prctl is None and sys.platform.startswith("linux"):
        import ctypes

        try:
            _prctl = ctypes.CDLL(None, use_errno=True).prctl
        except (OSError, AttributeError):
            _prctl = False
    return _prctl or None


def die_with_parent(parent_pid: int) -> bool:
    """In a forked worker: be killed (SIGKILL) when the parent dies; False if it is gone already."""
    prctl = _prctl or None
    if prctl is None:
        return True
    prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    return os.getppid() == parent_pid  # it may have died before prctl took effect


def fork_group(child: Callable[[int], int]) -> int:
    """Fork a process that leads its own process group and runs ``child(parent_pid)``.

    The child never returns into the caller's code: it exits with what ``child``
    returns (70, EX_SOFTWARE, if it raises). Returns the child's pid.
    """
    # Unflushed output would otherwise be written twice: by us and by the child.
    sys.stdout.flush()
    sys.stderr.flush()
    parent_pid = os.getpid()
    pid = os.fork()
    if pid == 0:
        code = 70
        try:
            os.setpgid(0, 0)
            code = child(parent_pid)
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)
    try:
        os.setpgid(pid, pid)  # also done by the child; whoever is first wins the race
    except OSError:
        pass
    return pid


def enter_worker_process(work_dir: str, runner_pid: int, base_dir: str) -> bool:
    """Set up a process forked from a runner as a worker; False if the runner is gone already.

    The worker dies with its runner (it must not run on unobserved), leaves
    Ctrl-C to the runner (which cancels its runs), reads no stdin (in a
    background group, reading the terminal would stop it), works in the work
    directory, and has the study's ``base_dir`` in ``PROFIT_BASE_DIR`` as a
    worker started as a program has (this process's own environment).
    """
    if not die_with_parent(runner_pid):
        return False
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    fd = os.open(os.devnull, os.O_RDONLY)
    os.dup2(fd, 0)
    os.close(fd)
    os.chdir(work_dir)
    if os.environ.get("PROFIT_BASE_DIR") != base_dir:
        os.environ["PROFIT_BASE_DIR"] = base_dir
    return True
