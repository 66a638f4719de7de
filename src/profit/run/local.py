"""Local Runner & Memory-map Interface

* LocalRunner: start Workers locally via the shell (subprocess.Popen)
* ForkRunner: start Workers locally with forking (the fork start method, explicitly)
* MemmapInterface: share data using a memory-mapped, structured array (using numpy)

Every worker leads its own process group (cancel ends the whole tree) and its
exit is an event (a pidfd) that the runner waits on, so a finished run is
noticed at once rather than at the next poll.

The memmap file is a valid ``.npy`` file. It grows in place (see
:mod:`profit.run._npyfile`): a Worker maps only its own row, and that row never
moves, so adding runs while workers are in flight is safe.
"""

import numbers
import os
import shlex
import signal
import sys
import weakref

from . import _npyfile
from . import interface as interface_module
from ._lazy import logging
from ._lazy import numpy as np
from ._proc import ChildProcess, die_with_parent, fork_group, load_prctl
from ._record import StructRecord, parse_descr
from .errors import InterfaceError
from .interface import INTERNAL_NAMES, RunnerInterface, WorkerInterface, clear_outputs, empty_record, encode_reason
from .runner import Runner
from .state import RunState
from .worker import RunLog, Worker, execute, run_log_handler


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# The seed documents spawn, poll and cancel on each local runner, with these
# signatures; both runners share the implementation of Runner.


def _spawn(self, params=None, wait=False):
    """spawn a single run

    Parameters:
        params: a mapping which defines input parameters to be set
        wait: whether to wait for the run to complete
    """
    return Runner.spawn(self, params, wait)


def _poll(self, run_id):
    """check the status of the run directly"""
    Runner.poll(self, run_id)


def _cancel(self, run_id):
    """end the run's whole process tree and mark it cancelled"""
    return Runner.cancel(self, run_id)


def enter_worker_process(runner: Runner, runner_pid: int) -> bool:
    """Set up a process forked from ``runner`` as a worker; False if the runner is gone already.

    The worker dies with its runner (it must not run on unobserved), leaves
    Ctrl-C to the runner (which cancels its runs), reads no stdin (in a
    background group, reading the terminal would stop it), and works in the
    work directory with the study's base directory in ``PROFIT_BASE_DIR``.
    """
    if not die_with_parent(runner_pid):
        return False
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    fd = os.open(os.devnull, os.O_RDONLY)
    os.dup2(fd, 0)
    os.close(fd)
    os.chdir(runner.work_dir)
    if os.environ.get("PROFIT_BASE_DIR") != runner.base_dir:
        os.environ["PROFIT_BASE_DIR"] = runner.base_dir
    return True


def resolve_parallel(parallel):
    # 'all' means the CPUs this process may use; anything else is checked by Runner.
    return _usable_cpus() if parallel == "all" else parallel


class LocalRunner(Runner, label="local"):
    """start Workers locally via the shell

    Each run is ``command`` (default ``profit-worker``) run through the shell in
    the work directory, in a new session; the Worker reads its run id, worker and
    interface configs from the environment (``PROFIT_RUN_ID``, ``PROFIT_WORKER``,
    ``PROFIT_INTERFACE``, ``PROFIT_INCLUDES``).
    """

    _through_shell = True

    def __init__(self, command="profit-worker", parallel="all", **kwargs):
        self.command = command
        super().__init__(parallel=resolve_parallel(parallel), **kwargs)
        self._env = None

    def __repr__(self):
        details = [f"parallel={self.parallel}"] + (["debug"] if self.debug else [])
        if self.command != "profit-worker":
            details.append(f"command={self.command!r}")
        return f"<{type(self).__name__} ({', '.join(details)})>"

    @property
    def config(self):
        return {**super().config, "command": self.command}

    spawn = _spawn
    poll = _poll
    cancel = _cancel

    def _environment(self) -> dict[str, str]:
        # Built on first use: include files may be loaded after the runner was made.
        if self._env is None:
            self._env = self.worker_environment()
        return self._env

    def _shell_command(self) -> str:
        # The default worker is the one installed beside this Python (a venv's
        # bin/ need not be on PATH), and the shell execs it: one process less,
        # and no "Killed" line from the shell when a worker is killed. Any other
        # command is the user's, run as written.
        name, _, rest = self.command.partition(" ")
        if name == "profit-worker":
            sibling = os.path.join(os.path.dirname(sys.executable), "profit-worker")
            if os.access(sibling, os.X_OK):
                return "exec " + shlex.quote(sibling) + (" " + rest if rest else "")
        return self.command

    def _start(self, run_id: int) -> ChildProcess:
        import subprocess  # here, not at the top: worker processes import this module

        env = {**self._environment(), "PROFIT_RUN_ID": str(run_id)}
        popen = subprocess.Popen(
            self._shell_command(),
            shell=True,
            env=env,
            cwd=self.work_dir,
            start_new_session=True,
            stdin=subprocess.DEVNULL,  # a worker in a background session must not wait for a terminal
        )
        return ChildProcess(popen.pid, popen)


class ForkRunner(Runner, label="fork"):
    """start Workers locally using forking (the fork start method)

    The Worker runs in a forked copy of the runner process, so it sees every
    component the runner knows (include files are already imported) and starts
    in well under a millisecond. Uses ``os.fork`` explicitly, whatever the
    default multiprocessing start method of the platform is.
    """

    def __init__(self, parallel="all", **kwargs):
        super().__init__(parallel=resolve_parallel(parallel), **kwargs)
        self._log_handler = run_log_handler()
        load_prctl()  # before forking: the workers only call it
        self._log_options = (self.worker.get("log_path", "log"), bool(self.worker.get("debug", False)))

    spawn = _spawn
    poll = _poll
    cancel = _cancel

    def _start(self, run_id: int) -> ChildProcess:
        return ChildProcess(fork_group(lambda runner_pid: self._work_in_child(run_id, runner_pid)))

    def _work_in_child(self, run_id: int, runner_pid: int) -> int:
        if not enter_worker_process(self, runner_pid):
            return 1
        interface_module.forked_for_run = run_id
        log_path, debug = self._log_options
        log = RunLog(log_path, run_id, debug, self._log_handler)
        # Handlers inherited from the runner must not receive the worker's records:
        # re-route them at once. Without any, routing waits until something is logged.
        if logging.getLogger().handlers or logging.getLogger("profit").handlers:
            log.activate()
        interface_config = self.interface.config
        return execute(lambda: Worker.from_config(self.worker, interface_config, run_id), log)


# === Numpy Memmap Interface === #

# The runner-side interfaces of this process by file path. A forked worker
# inherits them and uses its row of the runner's mapping directly: no open, no
# header parsing, no new mapping (the mapping is shared, so writes reach the file).
_open_interfaces: "weakref.WeakValueDictionary[str, MemmapRunnerInterface]" = weakref.WeakValueDictionary()


class MemmapRunnerInterface(RunnerInterface, label="memmap"):
    """Runner-Worker Interface using a memory mapped numpy array

    - fast with the local runners: each Worker maps its own row of the file
      (see ``benchmarks/`` for figures)
    - inefficient on a cluster with a shared filesystem (every worker maps the file)
    - reliable: the file is a valid ``.npy`` file (``numpy.load`` reads it)
    - growing is safe: the file is extended in place, rows never move
    """

    def __init__(
        self,
        size,
        input_config,
        output_config,
        *,
        path: str = "interface.npy",
        logger_parent: "logging.Logger" = None,
    ):
        self.path = os.path.abspath(path)
        super().__init__(size, input_config, output_config, logger_parent=logger_parent)
        _open_interfaces[self.path] = self
        self.logger.debug("memmap interface %s with %d rows of %s", self.path, self.size, self.dtype)

    def _allocate(self, size: int) -> "np.ndarray":
        self._layout = _npyfile.create(self.path, self.dtype, size)
        rows = _npyfile.map_rows(self.path, self._layout)
        clear_outputs(rows[self.output_names])
        return rows.view(np.ndarray)  # plain ndarray views index faster; the mapping stays referenced

    def _grow(self, size: int) -> "np.ndarray":
        self._layout = _npyfile.grow(
            self.path, self._layout, size, initialize=lambda rows: clear_outputs(rows[self.output_names])
        )
        return _npyfile.map_rows(self.path, self._layout).view(np.ndarray)

    @property
    def config(self):
        return {**super().config, "path": self.path}

    def resize(self, size):
        """Grow the Interface to ``size`` runs, safely.

        The file is extended in place and its header rewritten; existing rows
        never move, so Workers that have the file mapped keep working and no
        result is lost. Shrinking is not supported.
        """
        super().resize(size)

    def clean(self):
        """Remove the interface file."""
        _open_interfaces.pop(self.path, None)
        if os.path.exists(self.path):
            os.remove(self.path)


class MemmapWorkerInterface(WorkerInterface, label="memmap"):
    """Runner-Worker Interface using a memory mapped numpy array

    counterpart to :py:class:`MemmapRunnerInterface`: maps only its own row.
    """

    def __init__(self, run_id: int, *, path="interface.npy", logger_parent: "logging.Logger" = None):
        self.path = path
        self._record = None
        self._time = 0.0
        super().__init__(run_id, logger_parent=logger_parent)

    @property
    def config(self):
        return {**super().config, "path": self.path}

    @property
    def time(self):
        """The run's duration in seconds (stored in the interface once retrieved)."""
        return float(self._record["TIME"]) if self._record is not None else self._time

    @time.setter
    def time(self, value):
        self._time = value
        if self._record is not None:
            self._record["TIME"] = value

    def _map(self) -> StructRecord:
        """This run's whole row of the interface file as a writable record."""
        if self._record is not None:
            return self._record
        if not isinstance(self.run_id, numbers.Integral) or isinstance(self.run_id, bool):
            raise InterfaceError(f"run id {self.run_id!r} is not a whole number")
        run_id = int(self.run_id)
        shared = _open_interfaces.get(self.path) or _open_interfaces.get(os.path.abspath(self.path))
        if shared is not None and 0 <= run_id < shared.size:
            # Forked from the runner: its mapping of the file is ours too.
            buffer, fields = shared.row_buffer(run_id)
        else:
            buffer, fields = self._map_from_file(run_id)
        names = [field.name for field in fields]
        inputs = fields[: names.index("DONE")] if "DONE" in names else []
        self._record = StructRecord(buffer, fields)
        self.input = StructRecord(buffer, inputs)
        self.output = StructRecord(
            buffer, [field for field in fields[len(inputs) :] if field.name not in INTERNAL_NAMES]
        )
        return self._record

    def _map_from_file(self, run_id: int) -> tuple:
        header = _npyfile.read_header(self.path)
        where = os.path.abspath(self.path)
        try:
            fields, itemsize = parse_descr(header.descr)
        except ValueError as error:
            raise InterfaceError(f"interface file {where} was not written by the memmap interface ({error})") from None
        if not INTERNAL_NAMES <= {field.name for field in fields}:
            raise InterfaceError(
                f"interface file {where} lacks the columns {', '.join(sorted(INTERNAL_NAMES))}; "
                "it was not written by the memmap interface"
            )
        rows = _npyfile.data_rows(self.path, header.offset, itemsize)
        if not 0 <= run_id < rows:
            raise InterfaceError(
                f"run id {run_id} is outside the interface file {where} (it holds runs 0..{rows - 1}); "
                "the run id must come from the runner that made the file"
            )
        return _npyfile.map_row(self.path, header.offset, itemsize, run_id), fields

    def retrieve(self):
        """retrieve the input

        1. connect to the Runner-Interface (map this run's row of the file)
        2. retrieve the input data and store it in .input
        """
        self._map()["TIME"] = self._time

    def transmit(self):
        """transmit the output

        1. transmit the output and time data (.output and .time): they are in the mapped row already
        2. signal the Worker has finished (DONE, written last)
        3. the connection is closed by clean()
        """
        self._map()["DONE"] = True

    def fail(self, reason: str) -> None:
        """Record why this run failed, for the runner to report."""
        try:
            row = self._map()
        except InterfaceError as error:
            self.logger.error("run %s failed: %s (and could not report it: %s)", self.run_id, reason, error)
            return
        row["REASON"] = encode_reason(reason)
        row["STATE"] = RunState.FAILED

    def clean(self):
        """Release the mapping."""
        self._record = None
        self.input = empty_record()
        self.output = empty_record()
