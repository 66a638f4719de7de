"""Process helpers: exit statuses with signal names, and process trees.

Every worker process started by the local runners leads its own process group,
so that one ``killpg`` reaches the worker and everything it started (the shell,
the simulation under the shell, ...). Each child's exit is an event that a
selector can wait on (a Linux pidfd, a kqueue on macOS and the BSDs, see
:mod:`.exitwatch`), which keeps waiting event driven; without one it is polled.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections import namedtuple
from collections.abc import Callable, Sequence

from . import exitwatch
from .errors import ConfigError
from .handles import Notice, RunHandle

TYPE_CHECKING = False  # (typing costs every worker process its import)
if TYPE_CHECKING:
    from subprocess import Popen
    from typing import Any, Literal, Protocol


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

    The tree is every descendant of the leader, also those that left its process
    group (``setsid``): they are collected from /proc before anything is
    signalled, and again before SIGKILL; orphans of the runs reparented to this
    process (a subreaper) are found by their ``PROFIT_RUN_ID``. All of them end.
    """
    members = _Processes()
    members.add(_tree_members(trees))
    try:
        if grace > 0:
            for tree in trees:
                tree.signal_tree(signal.SIGTERM)
            members.signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        statuses: list[ExitStatus] = []
        for tree in trees:
            status = tree.wait(max(0.0, deadline - time.monotonic())) if grace > 0 else None
            if status is None:
                members.add(_tree_members([tree]))
                members.signal(signal.SIGKILL)
                tree.signal_tree(signal.SIGKILL)
                status = tree.wait()
            statuses.append(status)  # type: ignore[arg-type]  # an unbounded wait returns a status
    finally:
        members.end()
    return statuses


class ChildProcess(RunHandle):
    """A direct child that leads its own process group.

    ``fileno()`` becomes readable when the child exits (a pidfd or a kqueue:
    :func:`.exitwatch.watch`), so many children can be watched with one selector.
    ``poll()`` reaps the child; until then the zombie keeps its pid, and with it the
    process group id, reserved, which makes signalling the group safe from pid
    reuse. Where no descriptor can be had (``PROFIT_EXIT_WATCH=poll``, no backend
    on the platform, or the process is out of descriptors: EMFILE, ENFILE) the
    child is polled instead (``Notice.POLL``, ``waitid`` WNOHANG|WNOWAIT).
    """

    __slots__ = ("pid", "_fd", "_popen", "status", "notice")
    pid: int  # always a process here (RunHandle allows None)
    cheap_poll = True  # (polled: one waitid)

    def __init__(self, pid: int, popen: Popen[Any] | None = None):
        self.pid = pid
        self._popen = popen  # kept so that subprocess does not reap behind our back
        self.status: ExitStatus | None = None
        try:
            self._fd = exitwatch.watch(pid)
        except ConfigError:  # (PROFIT_EXIT_WATCH changed to a bad value since the runner checked it:
            self._fd = None  # the child exists now, and must not go unwatched: it is polled)
        self.notice = Notice.EVENT if self._fd is not None else Notice.POLL

    def tree(self) -> ChildProcess:
        """The child's process group is the run's process tree."""
        return self

    def fileno(self) -> int | None:
        """The exit watch descriptor, or None without one (then callers poll)."""
        return self._fd

    def exited(self) -> bool:
        """Whether the child has ended (without reaping it)."""
        if self.status is not None:
            return True
        return exitwatch.exited(self.pid)

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
                return self._wait_polling(timeout)
            if not exitwatch.wait_readable(fd, timeout):
                return None
        return self.poll()

    def _wait_polling(self, timeout: float | None) -> ExitStatus | None:
        """Without a descriptor: an unbounded wait blocks in ``waitpid``; a bounded one checks
        every few milliseconds until the child ended or the time is up."""
        if timeout is None:
            exitwatch.block_until_exited(self.pid)
            return self.poll()
        deadline = time.monotonic() + timeout
        pause = 0.001
        while not self.exited():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            time.sleep(min(pause, remaining))
            pause = min(2 * pause, 0.05)
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
        """Release the exit watch descriptor (once the owner stopped watching it)."""
        if self._fd is not None:
            exitwatch.unwatch(self._fd)
            self._fd = None

    def _reap(self, blocking: bool = False) -> ExitStatus | None:
        early = exitwatch.take_reaped(self.pid)  # (reaped to learn that it ended: no waitid here)
        try:
            if early is not None:
                pid, wait_status = self.pid, early
            else:
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


_has_proc: bool | None = None


def has_proc() -> bool:
    """Whether processes can be read from ``/proc`` (Linux); elsewhere psutil, where installed, reads them."""
    global _has_proc
    if _has_proc is None:
        _has_proc = os.path.exists(f"/proc/{os.getpid()}/stat")
    return _has_proc


def optional_psutil() -> Any:
    """The psutil module where it is installed (no dependency of profit), else None."""
    try:
        import psutil  # type: ignore[import-untyped]
    except ImportError:
        return None
    return psutil


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of process group ``pgid`` (Linux: read from /proc).

    Elsewhere: psutil's list of processes; without psutil, ``[pgid]`` while the group has a
    process that signal 0 reaches (a zombie one too), else an empty list.
    """
    members = []
    if not has_proc():
        psutil = optional_psutil()
        if psutil is None:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return []
            except PermissionError:
                pass
            return [pgid]
        for process in psutil.process_iter():
            try:
                if os.getpgid(process.pid) == pgid and process.status() != psutil.STATUS_ZOMBIE:
                    members.append(process.pid)
            except (OSError, psutil.Error):
                pass
        return members
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


# --- parent death, portably: a lifeline pipe -----------------------------------------------------
#
# A process that forks workers holds the write end of a pipe, its lifeline; nobody else
# does (each forked worker closes its copy at once, and exec'd programs never get it: the
# pipe is not inheritable). When the process ends, however it ends, the pipe's read end,
# which every worker holds, reads end of file: a thread of each worker, blocked in that
# read, then kills the worker's process group and what left it (its descendants: it is
# their subreaper). The thread costs a forked worker some tens of microseconds at its
# start and nothing afterwards.
#
# Where PR_SET_PDEATHSIG is in use (Linux, a runner that loaded prctl: :func:`die_with_parent`)
# no thread is started: the kernel kills the worker at once with SIGKILL, which would race
# the thread, and the worker's leftovers are found by a later runner (by their mark, see
# below) as before. So the thread runs on macOS and the BSDs, and in the children of
# :mod:`.runfork` (a packed Slurm task, a Dask worker's run server), which use no prctl.
# A process that the runner forks by other means (not through fork_group) holds the write
# end as well while it lives: the lifeline breaks only when it has ended too.

_lifeline: tuple[int, int, int] | None = None  # (owning process, read end, write end)


def lifeline() -> int:
    """The read end of this process's lifeline (made on first use; a forked child makes its own)."""
    global _lifeline
    if _lifeline is None or _lifeline[0] != os.getpid():
        read_end, write_end = os.pipe()  # (not inheritable: exec'd programs do not hold it)
        _lifeline = (os.getpid(), read_end, write_end)
    return _lifeline[1]


def hold_lifeline(parent_pid: int) -> None:
    """In a child forked by :func:`fork_group`: drop the parent's write end of its lifeline and
    watch the read end; when the parent has ended, kill this process's group (and what left it)."""
    if _lifeline is None or _lifeline[0] != parent_pid:
        return  # (the parent had no descriptor left for one: PR_SET_PDEATHSIG alone, where there is one)
    _, read_end, write_end = _lifeline
    try:
        os.close(write_end)
    except OSError:
        return
    if _prctl:
        return  # PR_SET_PDEATHSIG will end this worker with its parent (see above)
    import _thread

    _thread.start_new_thread(_end_with_lifeline, (read_end,))


def _end_with_lifeline(read_end: int) -> None:
    try:
        while os.read(read_end, 64):
            pass  # (nobody writes: only its end counts)
    except OSError:
        return  # the worker's own code closed it: there is nothing left to watch
    for pid in descendants(os.getpid()):  # (also those that left the group: this is their subreaper)
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    os.killpg(os.getpgrp(), signal.SIGKILL)


def fork_group(child: Callable[[int], int]) -> int:
    """Fork a process that leads its own process group and runs ``child(parent_pid)``.

    The child never returns into the caller's code: it exits with what ``child``
    returns (70, EX_SOFTWARE, if it raises). Returns the child's pid. The child's
    group is killed when this process ends (:func:`lifeline`).
    """
    # Unflushed output would otherwise be written twice: by us and by the child.
    sys.stdout.flush()
    sys.stderr.flush()
    parent_pid = os.getpid()
    try:
        lifeline()  # (runners make it early: it may fail here when descriptors run out)
    except OSError:
        pass
    pid = os.fork()
    if pid == 0:
        code = 70
        try:
            os.setpgid(0, 0)
            hold_lifeline(parent_pid)
            code = child(parent_pid)
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
                end_descendants()  # what the worker left behind (it is their subreaper) ends with it
            finally:
                os._exit(code)
    try:
        os.setpgid(pid, pid)  # also done by the child; whoever is first wins the race
    except OSError:
        pass
    note_worker(pid)
    return pid


def enter_worker_process(work_dir: str, runner_pid: int, base_dir: str) -> bool:
    """Set up a process forked from a runner as a worker; False if the runner is gone already.

    The worker dies with its runner (it must not run on unobserved), leaves
    Ctrl-C to the runner (which cancels its runs), reads no stdin (in a
    background group, reading the terminal would stop it), works in the work
    directory, and has the study's ``base_dir`` in ``PROFIT_BASE_DIR`` as a
    worker started as a program has (this process's own environment).
    It is a child subreaper, so that every process of its runs stays in its tree
    (also one whose parent exited), and the programs it execs carry the work
    directory's mark (:data:`MARK`), by which a later runner finds them.
    """
    if not die_with_parent(runner_pid):
        return False
    become_subreaper()
    os.environ[MARK] = work_dir_mark(work_dir)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    fd = os.open(os.devnull, os.O_RDONLY)
    os.dup2(fd, 0)
    os.close(fd)
    os.chdir(work_dir)
    if os.environ.get("PROFIT_BASE_DIR") != base_dir:
        os.environ["PROFIT_BASE_DIR"] = base_dir
    return True


# --- finding every process of a run -------------------------------------------------------------
#
# A run's processes are its worker's process group, and whatever left that group
# (``setsid``) or lost its parent. Three means find them:
#
# * the process tree: every descendant, read from ``/proc/<pid>/task/*/children``
#   before anything is killed (a process that called setsid is still a descendant
#   while its parent lives);
# * subreapers: a forked worker is a child subreaper, so that orphans of its
#   descendants stay in its tree while it lives; a local runner is one too, so that
#   orphans of its shell workers become its children;
# * a mark in the environment: every process that a local worker, or a program
#   under a forked worker, execs carries ``PROFIT_WORK_DIR`` (the runner's work
#   directory, resolved) and, from a local runner, ``PROFIT_RUN_ID``. A runner that
#   resumes a study after a ``kill -9`` finds the earlier runner's processes by it.
#
# What remains out of reach: a process that a *forked* worker forks without exec
# (it carries the runner's environment, not the mark), that leaves the worker's
# process group (setsid) and whose whole ancestry up to the worker has exited,
# after the worker itself died by other means than the runner stopping it (its
# orphans then reparent to the runner, anonymous, or to init when the runner is
# dead as well). Only a cgroup per run would hold those; a study needs none.

MARK = "PROFIT_WORK_DIR"  # the runner's work directory, in the environment of every exec'd run process
_PR_SET_CHILD_SUBREAPER = 36  # from <linux/prctl.h>
# pid of each worker process this process started -> its run id and the mark of its runner's work directory
_worker_runs: dict[int, tuple[int | None, str | None]] = {}


_marks: dict[str, str] = {}


def work_dir_mark(work_dir: str) -> str:
    """The value of :data:`MARK` for ``work_dir``: its resolved absolute path (resolved once: it is asked per run)."""
    mark = _marks.get(work_dir)
    if mark is None:
        mark = _marks[work_dir] = os.path.realpath(work_dir)
    return mark


def note_worker(pid: int, run_id: int | None = None, work_dir: str | None = None) -> None:
    """Remember a worker process this process started (and its run and its runner's work directory,
    where it is one run's: orphans are told apart by both, as run ids repeat across studies)."""
    if len(_worker_runs) > 4096:  # forget workers that are no longer children
        for known in [known for known in _worker_runs if proc_stat(known) is None]:
            del _worker_runs[known]
    _worker_runs[pid] = (run_id, work_dir_mark(work_dir) if work_dir is not None else None)


_subreaper_holders = 0  # runners of this process that need it to be a subreaper


def become_subreaper() -> bool:
    """Make this process a child subreaper: orphans of its descendants become its children (Linux).

    Each call is matched by :func:`leave_subreaper`; the last one makes the process an
    ordinary one again (orphans of other children then go to init as before)."""
    global _subreaper_holders
    prctl = load_prctl()
    if prctl is None or prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        return False
    _subreaper_holders += 1
    return True


def leave_subreaper() -> None:
    """A runner no longer needs this process to be a subreaper (see :func:`become_subreaper`)."""
    global _subreaper_holders
    _subreaper_holders = max(0, _subreaper_holders - 1)
    prctl = load_prctl()
    if _subreaper_holders == 0 and prctl is not None:
        prctl(_PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


def children(pid: int) -> list[int]:
    """The children of ``pid`` (of every thread of it); empty when it is gone (or without
    /proc and psutil)."""
    found: list[int] = []
    if not has_proc():
        psutil = optional_psutil()
        try:
            return [child.pid for child in psutil.Process(pid).children()] if psutil is not None else found
        except psutil.Error:
            return found
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as file:
                found.extend(int(word) for word in file.read().split())
        except (OSError, ValueError):
            pass
    return found


def descendants(pid: int) -> list[int]:
    """Every descendant of ``pid`` (children first), read from /proc; empty when it has none."""
    found: list[int] = []
    seen = {pid}
    level = [pid]
    while level:
        below = [child for parent in level for child in children(parent) if child not in seen]
        seen.update(below)
        found.extend(below)
        level = below
    return found


def environment_of(pid: int) -> dict[bytes, bytes] | None:
    """The environment ``pid`` was exec'd with (None when it cannot be read: gone, a zombie, not ours)."""
    if not has_proc():
        psutil = optional_psutil()
        try:
            env = psutil.Process(pid).environ() if psutil is not None else None
        except psutil.Error:
            return None
        return {name.encode(): value.encode() for name, value in env.items()} if env else None
    try:
        with open(f"/proc/{pid}/environ", "rb") as file:
            data = file.read()
    except OSError:
        return None
    if not data:
        return None
    return dict(entry.partition(b"=")[::2] for entry in data.split(b"\0") if entry)


def marked_processes(work_dir: str) -> list[int]:
    """Live processes (but this one) whose environment carries the mark of ``work_dir``."""
    needle = f"\0{MARK}={work_dir_mark(work_dir)}\0".encode()
    own = os.getpid()
    found = []
    if not has_proc():
        psutil = optional_psutil()
        for process in psutil.process_iter() if psutil is not None else ():
            try:
                env = process.environ()
                if process.pid != own and env.get(MARK) == work_dir_mark(work_dir):
                    if process.status() != psutil.STATUS_ZOMBIE:
                        found.append(process.pid)
            except psutil.Error:
                pass
        return found
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == own:
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as file:
                data = b"\0" + file.read() + b"\0"
        except OSError:
            continue
        if needle in data:
            fields = proc_stat(int(entry))
            if fields is not None and fields[0] not in ("Z", "X"):
                found.append(int(entry))
    return found


def _orphans_of_runs(runs: set[tuple[int, str]]) -> list[int]:
    """Children of this process that are no workers of it but carry the run id and work directory mark
    of one of ``runs``: orphans of those runs, reparented to this (subreaper) process."""
    wanted = {(str(run_id).encode(), mark.encode()) for run_id, mark in runs}
    found = []
    for pid in children(os.getpid()):
        if pid in _worker_runs:
            continue
        env = environment_of(pid)
        if env is not None and (env.get(b"PROFIT_RUN_ID"), env.get(MARK.encode())) in wanted:
            found.append(pid)
    return found


class _Processes:
    """Processes to end, each held by an exit watch descriptor where there is one (:mod:`.exitwatch`).

    A pidfd also pins the process: one whose pid is reused is never signalled. A kqueue
    that saw the process end keeps it from being signalled by pid after that.
    """

    def __init__(self) -> None:
        self.held: dict[int, int | None] = {}  # pid -> exit watch descriptor
        # Pinning is not watching: wherever pidfds work, they hold the processes to end, whichever
        # way exits are watched (PROFIT_EXIT_WATCH=poll must not signal a reused pid).
        self._pidfds = exitwatch.pidfd_available()

    def add(self, pids: Sequence[int]) -> None:
        for pid in pids:
            if pid in self.held:
                continue
            try:
                self.held[pid] = os.pidfd_open(pid) if self._pidfds else exitwatch.watch(pid, child=False)
            except ProcessLookupError:
                continue  # gone already
            except OSError:
                self.held[pid] = None  # (no descriptor left, not ours to watch: by pid, as when polling)

    def signal(self, signum: int) -> None:
        for pid, fd in self.held.items():
            try:
                if fd is None:
                    os.kill(pid, signum)
                elif self._pidfds:
                    signal.pidfd_send_signal(fd, signum)
                elif not exitwatch.wait_readable(fd, 0):  # (a kqueue: not if it ended already)
                    os.kill(pid, signum)
            except (ProcessLookupError, PermissionError):
                pass

    def end(self, timeout: float = 5.0) -> None:
        """SIGKILL them all, reap those that became this process's children, wait for the rest; close."""
        self.signal(signal.SIGKILL)
        deadline = time.monotonic() + timeout
        for pid, fd in self.held.items():
            # Bounded: a process stuck in the kernel (hung NFS) must not hang a cancel or a close.
            if fd is not None:
                exitwatch.wait_readable(fd, max(0.0, deadline - time.monotonic()))
            while True:
                try:
                    reaped, _ = os.waitpid(pid, os.WNOHANG)  # an orphan reparented to this subreaper
                except ChildProcessError:
                    break  # not our child (someone else reaps it), or reaped already
                if reaped or fd is not None or time.monotonic() >= deadline:
                    break
                time.sleep(0.01)  # (without a descriptor: its end has no event to wait on)
            if fd is not None:
                exitwatch.unwatch(fd)
        self.held.clear()


def _tree_members(trees: Sequence[ProcessTree]) -> list[int]:
    """Descendants of the trees' leaders, and orphans reparented here from their runs."""
    found: list[int] = []
    runs: set[tuple[int, str]] = set()
    for tree in trees:
        pid = getattr(tree, "pid", None)
        if isinstance(pid, int) and getattr(tree, "status", None) is None:
            found.extend(descendants(pid))
            run_id, mark = _worker_runs.get(pid, (None, None))
            if run_id is not None and mark is not None:
                runs.add((run_id, mark))
    if runs:
        found.extend(_orphans_of_runs(runs))
    return found


def end_descendants() -> None:
    """In a worker process about to exit: end every process it left behind (it is their subreaper)."""
    if hasattr(os, "waitid"):
        try:
            os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return  # no child, so no descendant (an orphan below it would have become its child)
    left = descendants(os.getpid())
    if left:
        processes = _Processes()
        processes.add(left)
        processes.end(timeout=1.0)


_last_reaped = 0.0


def reap_orphans(every: float = 0.5) -> None:
    """Reap ended orphans of runs that were reparented to this (subreaper) process: zombie children
    in the process group of one of its workers (no other child of this process is in such a group).

    At most every ``every`` seconds. Orphans that left their worker's group and ended on their own
    stay zombies until this process ends (nothing tells them from other children of it).
    """
    global _last_reaped
    now = time.monotonic()
    if now - _last_reaped < every:
        return
    _last_reaped = now
    for pid in children(os.getpid()):
        if pid in _worker_runs:
            continue
        fields = proc_stat(pid)
        if fields is not None and fields[0] == "Z" and int(fields[2]) in _worker_runs:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
