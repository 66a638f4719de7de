"""The fork server of :class:`~profit.run.fork.ForkRunner`: runs forked from a small process.

Forking the runner itself costs in proportion to the runner's size: the kernel
copies its page tables, and every page the runner or the run then writes is
copied once more (a runner that imported pandas, scipy or a plotting library
pays milliseconds per run). So, where every component of the runs can be
loaded by name in a fresh interpreter, the runner starts one small process, the
fork server (``serve()``, in a new interpreter): it imports only the worker's
machinery, the study's include files and the components the config names, maps
the interface's rows (the memmap interface's file; the zeromq interface's shared
rows, see :func:`rows_of`), and forks one child per run from there. The child does
what a worker forked from the runner does (same Worker, same interface rows,
same log file, exit codes and process group); the runner keeps all bookkeeping.

Where a component lives only in the runner's memory (a function given as the
worker, a class defined in the script or in a module that is no include file),
the runner forks itself, as before: see :func:`launchable`.

The protocol, on two pipes (little-endian ``struct``\\ s of fixed size)::

    runner --(run id, signal)--> requests   signal 0: start the run; else: signal its process group
    runner <--(kind, run id, pid, value)-- reports
           kind READY: its imports are done (its first report; the runner forks runs itself until then);
           kind SPARE: it forked a spare child (pid), which waits for a run (run id -1);
           kind SPARE_GONE: a spare ended unused (someone killed it);
           kind STARTED: the run's pid (value 0), or its fork failed (pid 0, value errno);
           kind ENDED: the run's process ended (value: its return code, negative: the signal).

The server keeps ``_SPARES`` children forked ahead, set up as far as they can be
without their run; a start request hands the oldest its run id through a pipe of
its own. So a run starts without waiting for a fork, and the runner knows its pid
at once (the spares are given out in the order they were reported; where one was
lost, the run's STARTED report corrects the pid).

The server dies with the runner (``PR_SET_PDEATHSIG`` where there is one; an end of
file on the requests pipe in any case), and its runs die with it.
"""

from __future__ import annotations

import collections
import errno
import functools
import json
import os
import signal
import struct
import sys

from ._proc import ExitStatus, fork_group
from .handles import Notice, RunHandle

TYPE_CHECKING = False  # (typing costs every worker process its import)
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from .events import EventLoop
    from .interface import WorkerInterface

REQUEST = struct.Struct("<qi")  # run id, signal (0: start it)
REPORT = struct.Struct("<iqqi")  # kind, run id, pid, value
STARTED, ENDED, READY, SPARE, SPARE_GONE = 1, 2, 3, 4, 5
_ROWS_VARIABLE = "PROFIT_FORK_SERVER_ROWS"  # (the server's own: rows_of(); not its children's)
_RUN_ID = struct.Struct("<q")  # what a spare child reads: the run it is to run
_NO_RUN = -1  # the run id of a spare's reports
# Children the server forks ahead, each waiting for a run: a run starts without a fork in its way,
# and its pid is known to the runner beforehand.
_SPARES = 2
# The server's program (not ``-m``: this module is imported with the package before it would run).
# Its first argument, the directory profit is imported from, takes the place of the script's
# directory on sys.path (for -c: the working directory, where a study's files must not shadow
# modules); the environment stays the runs' own (no PYTHONPATH of ours in their programs).
_SERVER_MAIN = (
    "import sys; sys.path[0] = sys.argv[1]; from profit.run.forkserver import serve; "
    "sys.exit(serve(*map(int, sys.argv[2:])))"
)


# --- the runner's side ------------------------------------------------------------------------


def launchable(worker_config: Mapping, interface: object) -> bool:
    """Whether a fresh process can run these runs exactly as a fork of this one would: the
    interface is the plain memmap interface over a file, or one whose rows another process can
    open (zeromq: see :func:`rows_of`), the worker config names no function held in memory, and
    every component the config names comes from profit itself or an include file.

    A component registered anywhere else (the script, a module imported by it) is one a fresh
    process would not know: then the runner forks itself. Every string in the config that is a
    component's label counts as naming it (a preprocessor's label given as an option, too).

    Args:
        worker_config: The runner's ``worker`` config.
        interface: The runner's interface.

    Returns:
        True where the fork server may run them.
    """
    from .includes import _loaded
    from .memmap import MemmapRunnerInterface
    from .registry import Component

    if getattr(interface, "size", 0) == 0:
        return False
    if type(interface) is not MemmapRunnerInterface and rows_of(interface) is None:
        return False
    try:
        encoded = json.dumps(worker_config)
    except (TypeError, ValueError):
        return False
    if '"@' in encoded:  # an in-memory function reference (functions.function_reference)
        return False
    named = set(_strings(worker_config))
    modules = set(_loaded.values())
    classes: list[type] = [Component]
    while classes:
        cls = classes.pop()
        classes.extend(cls.__subclasses__())
        registry = cls.__dict__.get("_registry") or {}  # (a kind: Worker, Preprocessor, ...)
        for label in named.intersection(registry):
            module = registry[label].__module__
            if not (module == "profit" or module.startswith("profit.") or module in modules):
                return False
    return True


def rows_of(interface: object) -> dict | None:
    """Where the fork server's children reach the rows of an interface other than memmap (its
    ``shared_rows()``, zeromq's: a file, the rows' offset and layout, the names), or None.

    Args:
        interface: The runner's interface.

    Returns:
        The description, or None where the interface has no such rows (the runner then forks its runs).
    """
    zeromq = sys.modules.get("profit.run.zeromq")  # (not imported: it is no zeromq interface)
    if zeromq is None or type(interface) is not zeromq.ZeroMQRunnerInterface:
        return None
    return interface.shared_rows()  # type: ignore[attr-defined]  # (a ZeroMQRunnerInterface)


def _strings(config: object):
    """Every string in a JSON-like config, at any depth."""
    if isinstance(config, str):
        yield config
    elif isinstance(config, dict):
        for value in config.values():
            yield from _strings(value)
    elif isinstance(config, list | tuple):
        for value in config:
            yield from _strings(value)


class _ServerEnding(ExitStatus):
    """How a run of a fork server ended where the server, not the run, decided it: the run died
    with the server, or was never forked (neither code nor signal of its own is known)."""

    phrase: str  # the reason's phrase

    def __new__(cls, phrase: str) -> _ServerEnding:
        ending = super().__new__(cls)
        ending.phrase = phrase
        return ending

    def describe(self, *, through_shell: bool = False) -> str:
        """The phrase of the reason."""
        return self.phrase


class LaunchedRun(RunHandle):
    """A run forked by the fork server: its end arrives as a report (``Notice.NOTIFIED``); it is
    stopped by signals the server sends to its process group (:meth:`signal_tree`).

    Args:
        run_id: The run.
        pid: Its process (a child of the server).
        server: The server that forked it.
    """

    notice = Notice.NOTIFIED
    __slots__ = ("run_id", "pid", "status", "server")

    def __init__(self, run_id: int, pid: int, server: ForkServer):
        self.run_id = run_id
        self.pid = pid
        self.status: ExitStatus | None = None
        self.server = server

    def poll(self) -> ExitStatus | None:
        """How the run ended, once the server reported it."""
        return self.status

    def exited(self) -> bool:
        """Whether its end was reported."""
        return self.status is not None

    def tree(self) -> LaunchedRun:
        """The run's process tree: itself."""
        return self

    def signal_tree(self, signum: int) -> None:
        """Have the server signal the run's process group (it is their parent: never a reused pid).

        Args:
            signum: The signal.
        """
        if self.status is None:
            self.server.signal(self.run_id, signum)

    def wait(self, timeout: float | None = None) -> ExitStatus | None:
        """Wait up to ``timeout`` seconds for the run's end to be reported.

        Args:
            timeout: Seconds (None: no bound).

        Returns:
            How it ended, or None on timeout.
        """
        if self.status is None:
            self.server.wait_for(self, timeout)
        return self.status


class ForkServer:
    """The runner's end of a fork server process (see the module's docstring).

    Args:
        env: The server's environment (the workers' environment).
        work_dir: Its working directory (the runs' too).
        events: The runner's event loop: the reports pipe is watched there.
        on_ended: Called with each run whose end was reported (the runner settles it).
        rows: Where the runs' rows are, for an interface other than memmap (:func:`rows_of`).
    """

    def __init__(
        self,
        env: Mapping[str, str],
        work_dir: str,
        events: EventLoop,
        on_ended: Callable[[LaunchedRun], None],
        rows: dict | None = None,
    ):
        import subprocess

        request_read, self._requests = os.pipe()
        self._reports, report_write = os.pipe()
        server_env = dict(env)
        # The server imports profit from where this process did (a checkout, a path added at run time).
        package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        if rows is not None:
            server_env[_ROWS_VARIABLE] = json.dumps(rows)
        try:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    _SERVER_MAIN,
                    package_root,
                    *map(str, (request_read, report_write, os.getpid())),
                ],
                env=server_env,
                cwd=work_dir,
                stdin=subprocess.DEVNULL,
                pass_fds=(request_read, report_write),
                start_new_session=True,  # (Ctrl-C at the terminal is the runner's to handle: it cancels the runs)
            )
        except BaseException:
            os.close(self._requests)
            os.close(self._reports)
            raise
        finally:
            os.close(request_read)
            os.close(report_write)
        self.runs: dict[int, LaunchedRun] = {}
        self.ready = False  # (until its imports are done, the runner forks runs itself)
        self.alive = True  # (until its reports pipe closes)
        self._buffer = b""
        self._ended_runs: list[LaunchedRun] = []  # read, not yet handed to the runner
        self._spares: collections.deque[int] = collections.deque()  # pids of its spare children, oldest first
        self._events = events
        self._on_ended = on_ended
        events.watch(self._reports, self._on_reports)

    def start(self, run_id: int) -> LaunchedRun:
        """Have the server start the run: in a spare child it forked ahead (the run's pid is known:
        no waiting), else in one it forks now (returns once it has).

        Args:
            run_id: The run (its row is written).

        Returns:
            The run's handle.

        Raises:
            OSError: The server could not fork it, or has ended.
        """
        self._send(run_id, 0)
        if self._spares:
            # The server gives runs to its spares in the order it reported them. (Should it have
            # lost that spare meanwhile, its report of the run's start corrects the pid.)
            spared = self.runs[run_id] = LaunchedRun(run_id, self._spares.popleft(), self)
            return spared
        run: LaunchedRun | None = None
        while run is None:
            # Every report read is taken in: the run's end may come in the same read as its start.
            for kind, reported, pid, value in self._read(block=True):
                if kind == STARTED and reported == run_id:
                    if pid == 0:
                        raise OSError(value, f"the fork server could not fork run {run_id}: {os.strerror(value)}")
                    if pid in self._spares:
                        self._spares.remove(pid)  # (reported, not yet read: the run took it)
                    run = self.runs[run_id] = LaunchedRun(run_id, pid, self)
                else:
                    self._take(kind, reported, pid, value)
            if run is None and not self.alive:
                raise OSError(errno.EPIPE, "the runner's fork server has ended")
        return run

    def wait_ready(self) -> None:
        """Block until the server is ready (its imports done) or has ended."""
        while not self.ready and self.alive:
            for kind, run_id, pid, value in self._read(block=True):
                self._take(kind, run_id, pid, value)

    def signal(self, run_id: int, signum: int) -> None:
        """Have the server send ``signum`` to the run's process group.

        Args:
            run_id: The run.
            signum: The signal.
        """
        try:
            self._send(run_id, signum)
        except OSError:
            pass  # it has ended: so have its runs (their ends are reported as lost)

    def wait_for(self, run: LaunchedRun, timeout: float | None) -> None:
        """Read reports until ``run`` ended or ``timeout`` seconds passed.

        Args:
            run: The run.
            timeout: Seconds (None: no bound).
        """
        import selectors
        import time

        deadline = None if timeout is None else time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(self._reports, selectors.EVENT_READ)
            while run.status is None and self.alive:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return
                if selector.select(remaining):
                    self._on_reports(settle=False)

    def _send(self, run_id: int, signum: int) -> None:
        if not self.alive:
            raise OSError(errno.EPIPE, "the runner's fork server has ended")
        os.write(self._requests, REQUEST.pack(run_id, signum))

    def _read(self, block: bool) -> list[tuple[int, int, int, int]]:
        """The whole reports that arrived (at least one, where ``block``, unless the server ended)."""
        os.set_blocking(self._reports, block)
        try:
            data = os.read(self._reports, 65536)
        except BlockingIOError:
            return []
        if not data:
            self._lost()
            return []
        data = self._buffer + data
        usable = len(data) - len(data) % REPORT.size
        self._buffer = data[usable:]
        return list(REPORT.iter_unpack(data[:usable]))

    def _take(self, kind: int, run_id: int, pid: int, value: int) -> None:
        """Take in a report (other than the start of a run being started and waited for)."""
        if kind == ENDED:
            run = self.runs.pop(run_id, None)
            if run is not None:
                run.status = ExitStatus.from_returncode(value)
                self._ended_runs.append(run)
        elif kind == SPARE:
            self._spares.append(pid)
        elif kind == STARTED:
            run = self.runs.get(run_id)
            if run is not None and pid:
                run.pid = pid  # (the same, unless the spare it was given to was lost)
            elif run is not None:  # given to a spare that was lost, and no fork instead: it never ran
                del self.runs[run_id]
                run.status = _ServerEnding(
                    f"was never started: the fork server could not fork it ({os.strerror(value)})"
                )
                self._ended_runs.append(run)
        elif kind == SPARE_GONE and pid in self._spares:
            self._spares.remove(pid)
        elif kind == READY:
            self.ready = True

    def _on_reports(self, settle: bool = True) -> None:
        for kind, run_id, pid, value in self._read(block=False):
            self._take(kind, run_id, pid, value)
        if settle:
            self.settle_ended()

    @property
    def busy(self) -> bool:
        """Whether runs of the server are active or their ends are not handed to the runner yet."""
        return bool(self.runs or self._ended_runs)

    def settle_ended(self) -> bool:
        """Hand every run whose end was read (here or while starting another) to the runner.

        Returns:
            Whether there were any.
        """
        ended, self._ended_runs = self._ended_runs, []
        for run in ended:
            self._on_ended(run)
        return bool(ended)

    def _lost(self) -> None:
        """The server ended (its reports pipe closed): so did its runs, which end here, whichever
        read (a start, a wait, the runner's event loop) met the end of file."""
        if not self.alive:
            return
        self.alive = False
        try:
            code = self.process.wait(timeout=5)
        except Exception:  # (it closed its reports but lives on: it cannot be trusted with runs)
            self.process.kill()
            code = self.process.wait()
        how = ExitStatus.from_returncode(code).describe()  # ("killed by SIGKILL", "exited with code 1")
        which = f"was {how}" if how.startswith("killed") else how
        ending = _ServerEnding(f"killed with the runner's fork server, which {which}")
        for run in self.runs.values():
            run.status = ending
        self._ended_runs.extend(self.runs.values())
        self.runs.clear()

    def close(self) -> None:
        """End the server (its runs, if any are left, die with it) and release its pipes."""
        try:
            self._events.unwatch(self._reports)
        except (KeyError, ValueError, RuntimeError, TypeError):
            pass  # (the runner's event loop was closed first, or never had it)
        os.close(self._requests)  # (its end of file ends the server)
        os.close(self._reports)
        self.alive = False
        try:
            self.process.wait(timeout=5)
        except Exception:
            self.process.kill()
            self.process.wait()


# --- the server's side ------------------------------------------------------------------------


class _MappedRows:
    """Rows of a file as the server maps them, for its children to read and write: from
    ``offset`` on, ``itemsize`` bytes each. Mapped again (:meth:`cover`) when a run beyond the
    mapped rows comes: the file grows in place, rows never move."""

    def __init__(self, path: str):
        self.path = path
        self.size = 0
        self.fields: list = []
        self.itemsize = 0
        self._bytes: memoryview | None = None

    def _map(self, fd: int, offset: int, size: int) -> None:
        import mmap

        self._bytes = memoryview(mmap.mmap(fd, offset + size * self.itemsize))[offset:]
        self.size = size

    def row_buffer(self, run_id: int) -> tuple:
        """The bytes of row ``run_id`` and the row's fields (what a worker interface asks of the
        runner's interface)."""
        assert self._bytes is not None
        return self._bytes[run_id * self.itemsize : (run_id + 1) * self.itemsize], self.fields


class _Table(_MappedRows):
    """The memmap interface's ``.npy`` file (its header tells the layout and the rows), for
    :class:`~profit.run.memmap.MemmapWorkerInterface`."""

    def cover(self, run_id: int) -> None:
        """Map the file again if ``run_id`` lies beyond the mapped rows."""
        if run_id < self.size:
            return
        from . import _npyfile
        from ._record import parse_descr

        header = _npyfile.read_header(self.path)
        self.fields, self.itemsize = parse_descr(header.descr)
        with open(self.path, "r+b") as file:
            self._map(file.fileno(), header.offset, header.size)


class _FileRows(_MappedRows):
    """Rows in a file another process of the runner's made (the zeromq interface's anonymous
    file, or a study's table), as :func:`rows_of` describes them, for
    :class:`~profit.run.zeromq.ZeroMQForkedWorkerInterface`."""

    def __init__(self, rows: Mapping):
        from ._record import parse_descr
        from .interface import INTERNAL_NAMES

        super().__init__(rows["path"])
        self.offset = int(rows["offset"])
        self.fields, self.itemsize = parse_descr(rows["descr"])
        inputs, outputs = set(rows["inputs"]), set(rows["outputs"])
        self.parts = (
            [field for field in self.fields if field.name in inputs],
            [field for field in self.fields if field.name in outputs],
            [field for field in self.fields if field.name in INTERNAL_NAMES],
        )
        self._file = open(self.path, "r+b")  # noqa: SIM115  # (held: a descriptor of the runner's may close)

    def cover(self, run_id: int) -> None:
        """Map the file again if ``run_id`` lies beyond the mapped rows."""
        if run_id < self.size:
            return
        fd = self._file.fileno()
        self._map(fd, self.offset, (os.fstat(fd).st_size - self.offset) // self.itemsize)

    def interface(self, run_id: int) -> WorkerInterface:
        """The worker interface of a run over its row (the one a fork of the runner gets)."""
        from ._record import StructRecord
        from .errors import InterfaceError
        from .zeromq import ZeroMQForkedWorkerInterface

        if not 0 <= run_id < self.size:
            raise InterfaceError(f"run {run_id} has no row in {self.path} ({self.size} rows)")
        row, _ = self.row_buffer(run_id)
        inputs, outputs, internal = (StructRecord(row, fields) for fields in self.parts)
        return ZeroMQForkedWorkerInterface(run_id, inputs, outputs, internal)


def serve(requests: int, reports: int, runner_pid: int) -> int:
    """The fork server's loop (see the module's docstring).

    Args:
        requests: The descriptor requests arrive on.
        reports: The descriptor reports go to.
        runner_pid: The runner's pid (the server dies with it).

    Returns:
        The exit code.
    """
    import selectors

    from ._proc import become_subreaper, die_with_parent, load_prctl, work_dir_mark
    from .memmap import MemmapWorkerInterface
    from .runfork import prepare
    from .worker import RunLog, Worker, execute, run_log_handler

    load_prctl()
    if not die_with_parent(runner_pid):
        return 1
    env = os.environ
    prepare(env)
    import gc

    gc.freeze()  # (the collector of a run then leaves these objects, and their pages, alone: fewer copies)
    env["PROFIT_WORK_DIR"] = work_dir_mark(os.getcwd())  # (_proc.MARK: a later runner finds the runs by it)
    worker_config = json.loads(env["PROFIT_WORKER"])
    rows = env.pop(_ROWS_VARIABLE, None)
    table: _Table | _FileRows
    try:
        table = _FileRows(json.loads(rows)) if rows else _Table(json.loads(env["PROFIT_INTERFACE"])["path"])
    except (OSError, ValueError, KeyError) as error:  # (the runner forks its runs itself: say why, briefly)
        print(f"profit: the fork server cannot reach the interface's rows ({error})", file=sys.stderr)
        return 1
    log_handler = run_log_handler()
    log_path, debug = worker_config.get("log_path", "log"), bool(worker_config.get("debug", False))
    wakeup_read, wakeup_write = os.pipe()
    os.set_blocking(wakeup_read, False)
    os.set_blocking(wakeup_write, False)
    signal.set_wakeup_fd(wakeup_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # (its wakeup byte is what counts)
    own_fds = (requests, reports, wakeup_read, wakeup_write)
    os.write(reports, REPORT.pack(READY, 0, os.getpid(), 0))
    children: dict[int, int] = {}  # pid -> run id (_NO_RUN: a spare)
    pids: dict[int, int] = {}  # run id -> pid
    spares: collections.deque[tuple[int, int]] = collections.deque()  # (pid, its run-id pipe), oldest first

    def run(run_id: int | None, run_ids: int | None, feed: int | None, parent_pid: int) -> int:
        """A child: runs ``run_id``, or (a spare) the run whose id arrives on ``run_ids``."""
        if feed is not None:
            os.close(feed)  # (the server's end: its closing, unused, ends this spare)
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for fd in own_fds:
            os.close(fd)
        for _, other in spares:
            os.close(other)  # (the pipes of the other spares: their end of file is theirs)
        if not die_with_parent(parent_pid):
            return 1
        become_subreaper()
        if run_ids is not None:
            data = os.read(run_ids, _RUN_ID.size)
            if len(data) < _RUN_ID.size:
                return 0  # the server ended it unused
            (run_id,) = _RUN_ID.unpack(data)
            table.cover(run_id)
        assert run_id is not None
        env["PROFIT_RUN_ID"] = str(run_id)
        log = RunLog(log_path, run_id, debug, log_handler)

        def build() -> Worker:
            if isinstance(table, _FileRows):
                return Worker.from_config(worker_config, table.interface(run_id), run_id)
            interface = MemmapWorkerInterface(run_id, path=table.path)
            interface._shared = table  # type: ignore[assignment]  # (row_buffer and size, as the runner's)
            return Worker.from_config(worker_config, interface, run_id)

        return execute(build, log)

    def add_spares() -> None:
        while len(spares) < _SPARES:
            run_ids, feed = os.pipe()
            try:
                pid = fork_group(functools.partial(run, None, run_ids, feed))
            except OSError:
                os.close(feed)
                return  # (out of processes: runs are forked when they come)
            finally:
                os.close(run_ids)
            spares.append((pid, feed))
            children[pid] = _NO_RUN
            os.write(reports, REPORT.pack(SPARE, _NO_RUN, pid, 0))

    def to_spare(run_id: int) -> int | None:
        """Hand the run to the oldest spare that is alive; its pid (None: no spare left)."""
        while spares:
            pid, feed = spares.popleft()
            try:
                os.write(feed, _RUN_ID.pack(run_id))
                return pid
            except BrokenPipeError:
                continue  # (it died before its run came: reap() reports it gone)
            finally:
                os.close(feed)
        return None

    def start(run_id: int) -> None:
        try:
            table.cover(run_id)  # (rows beyond the mapped ones: the file grew; the spares map it themselves)
            pid = to_spare(run_id)
            if pid is None:
                pid = fork_group(functools.partial(run, run_id, None, None))
        except Exception as error:  # (the table unreadable, out of processes): the runner forks it itself
            code = getattr(error, "errno", None) or errno.EIO
            os.write(reports, REPORT.pack(STARTED, run_id, 0, code))
            return
        children[pid] = run_id
        pids[run_id] = pid
        os.write(reports, REPORT.pack(STARTED, run_id, pid, 0))

    def reap() -> None:
        while children:
            try:
                ended = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if ended is None:
                return
            pid = ended.si_pid
            try:
                os.killpg(pid, signal.SIGKILL)  # what it left in its group (the zombie reserves the id)
            except OSError:
                pass
            _, status = os.waitpid(pid, 0)
            run_id = children.pop(pid, None)
            if run_id == _NO_RUN:  # a spare that someone ended
                for spare in [spare for spare in spares if spare[0] == pid]:
                    spares.remove(spare)
                    os.close(spare[1])
                os.write(reports, REPORT.pack(SPARE_GONE, _NO_RUN, pid, 0))
            elif run_id is not None:
                del pids[run_id]
                os.write(reports, REPORT.pack(ENDED, run_id, pid, os.waitstatus_to_exitcode(status)))

    add_spares()
    selector = selectors.DefaultSelector()
    selector.register(requests, selectors.EVENT_READ)
    selector.register(wakeup_read, selectors.EVENT_READ)
    pending = b""
    while True:
        for key, _ in selector.select():
            if key.fd == wakeup_read:
                try:
                    os.read(wakeup_read, 4096)
                except BlockingIOError:
                    pass
                continue
            data = os.read(requests, 65536)
            if not data:  # the runner is gone or done: so are the runs
                for pid in children:
                    try:
                        os.killpg(pid, signal.SIGKILL)
                    except OSError:
                        pass
                return 0
            pending += data
            usable = len(pending) - len(pending) % REQUEST.size
            for run_id, signum in REQUEST.iter_unpack(pending[:usable]):
                if not signum:
                    start(run_id)
                elif run_id in pids:
                    try:
                        os.killpg(pids[run_id], signum)
                    except OSError:
                        pass
            pending = pending[usable:]
            add_spares()  # (after the runs: their start is what the runner waits for)
        reap()
