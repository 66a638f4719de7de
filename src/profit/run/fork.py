"""ForkRunner (label ``fork``): each run's Worker in a forked copy of the runner.

The worker process sees every component the runner knows (include files are
already imported) and starts in well under a millisecond. ``os.fork`` is used
explicitly, whatever the default multiprocessing start method of the platform.
Each worker leads its own process group (cancel ends the whole tree), dies with
the runner, and its exit is an event the runner waits on (see :mod:`.exitwatch`).

Where every component of the runs loads by name (built-in ones and those of the
study's include files; the memmap interface, or zeromq's shared rows), the runs are forked from a
small fork server instead (:mod:`.forkserver`): forking a large runner (one that
imported pandas or a plotting library) costs in proportion to its size. Runs look
the same either way: results, states, reasons, logs, timeouts and cancel. A worker
given as a function or class of the script is forked from the runner, as is every
run until the server is ready (its imports take a fraction of a second).
``PROFIT_FORK_SERVER`` chooses: ``auto`` (the default), ``never`` (always fork the
runner), ``wait`` (the first run waits until the server is ready).
"""

from __future__ import annotations

import os

from . import exitwatch, forkserver
from . import options as check
from ._lazy import logging
from ._proc import ChildProcess, enter_worker_process, fork_group, lifeline, load_prctl, note_worker, stop_trees
from .errors import ConfigError
from .handles import RunHandle
from .layout import begin_run_log
from .runner import Runner
from .worker import RunLog, execute_forked, run_log_handler

TYPE_CHECKING = False  # (typing costs every worker process its import)
if TYPE_CHECKING:
    from typing import Any


class ForkRunner(Runner, label="fork"):
    """start Workers locally using forking (multiprocessing.Process)

    The Worker runs in a forked copy of the runner process, so it sees every
    component the runner knows (include files are already imported) and starts
    in well under a millisecond. proFit forked it through ``multiprocessing.Process``;
    this runner calls ``os.fork`` explicitly, whatever the default multiprocessing
    start method of the platform is.

    Args:
        parallel: how many runs are active at once: ``"all"`` (the CPUs this process may use)
            or a whole number (0: unbounded).
        **kwargs: the options of :class:`~profit.run.runner.Runner` (keyword only).
    """

    passes_kwargs_on = True  # **kwargs are the base class's options (checked against its signature)
    forks_workers = True  # a function given as the worker reaches them in memory

    def __init__(self, parallel: int | str = "all", **kwargs: Any):
        super().__init__(parallel=check.parallel(parallel), **kwargs)
        exitwatch.backend()  # (PROFIT_EXIT_WATCH is checked now, not at the first run)
        # Made before forking, so that each worker only points them at its run.
        self._log_handler = run_log_handler()
        load_prctl()
        lifeline()  # (made now: at a run's start the process may be short of descriptors)
        self._log_options = (self.worker_config.get("log_path", "log"), bool(self.worker_config.get("debug", False)))
        self._exports: dict[str, str] | None = None
        self._server_mode = _server_mode()
        self._server: forkserver.ForkServer | None = None
        self._server_for: tuple | None = None  # what the server was started for (see _fork_server)
        self._server_off = False  # a server failed: this runner forks its runs itself
        self._retired: list[forkserver.ForkServer] = []  # servers of an earlier config, ending with their runs

    def _exported(self) -> dict[str, str]:
        """What a worker started as a program reads (``Worker.from_env``), for the programs a forked
        worker starts (its simulation), as the other runners export it. Made on first use: include
        files may be loaded after the runner was made."""
        if self._exports is None:
            env = self.worker_environment()
            self._exports = {name: env[name] for name in ("PROFIT_WORKER", "PROFIT_INTERFACE", "PROFIT_INCLUDES")}
        return self._exports

    def _start(self, run_id: int) -> RunHandle:
        begin_run_log(self.work_dir, self._log_options[0], run_id)
        server = self._fork_server()
        if server is not None and server.ready:
            try:
                return server.start(run_id)
            except OSError as error:  # (it could not fork it, or died): this process forks, from now on
                self.logger.warning("the fork server failed (%s); runs are forked from the runner from now on", error)
                self._retire_server(keep_off=True)
        elif server is not None and not server.alive:  # it ended before it was ready (it said why)
            self.logger.warning("the fork server ended at its start; runs are forked from the runner")
            self._retire_server(keep_off=True)
        self._exported()  # (once, in the runner: not in every fork)
        pid = fork_group(lambda runner_pid: self._work_in_child(run_id, runner_pid))
        note_worker(pid, run_id, self.work_dir)
        return ChildProcess(pid)

    # --- the fork server ---------------------------------------------------------------------

    def _fork_server(self) -> forkserver.ForkServer | None:
        """The fork server for the runs, started on the first run where :func:`.forkserver.launchable`
        (until it is ready, and where it is not, this process forks the runs); None without one.

        ``PROFIT_FORK_SERVER`` (see the module's docstring) is read when the runner is made."""
        from .includes import _loaded

        config = self.worker_config
        rows = forkserver.rows_of(self.interface)
        where = self.interface.config.get("path") if rows is None else (rows["path"], rows["offset"])
        key = (id(config), len(config), where, len(_loaded))
        if key == self._server_for or self._server_off:
            return self._server
        self._retire_server()  # (the config changed: a new server; the old one ends with its runs)
        self._server_for = key
        mode = self._server_mode
        if mode == "never" or not forkserver.launchable(config, self.interface):
            return None
        try:
            server = forkserver.ForkServer(
                self.worker_environment(), self.work_dir, self.events, self._server_ended, rows
            )
        except OSError as error:
            self.logger.warning("no fork server (%s): runs are forked from the runner", error)
            return None
        self._server = server
        if mode == "wait":
            server.wait_ready()
        return server

    def _server_ended(self, run: forkserver.LaunchedRun) -> None:
        if self._active.handle(run.run_id) is run:
            self._settle(run.run_id, run.status)
        for server in [server for server in self._retired if not server.busy]:
            self._retired.remove(server)
            server.close()

    def _retire_server(self, keep_off: bool = False) -> None:
        """Start no more runs in the current fork server: it ends once its runs have (their ends
        are settled as they come), or now where it has none.

        Args:
            keep_off: Start none again for this runner (this process forks its runs).
        """
        server, self._server = self._server, None
        self._server_off = self._server_off or keep_off
        if server is not None and server.busy:
            self._retired.append(server)
        elif server is not None:
            server.close()

    def _before_waiting(self) -> bool:
        settled = False
        for server in [self._server, *self._retired]:
            if server is not None:
                settled = server.settle_ended() or settled  # (reports read while a run was started)
        return settled

    def _end_server(self) -> None:
        """End the fork servers; their runs, if any are left, are killed and settled."""
        servers = [server for server in [self._server, *self._retired] if server is not None]
        self._server, self._retired = None, []
        for server in servers:
            if server.runs:
                stop_trees(list(server.runs.values()), 0.0)
            server.settle_ended()  # (also the ends read before, as when the server died)
            server.close()

    def close(self) -> None:
        """Cancel what still runs, end the fork server, release the event sources and the interface
        (as :meth:`Runner.close` does)."""
        try:
            super().close()
        finally:
            self._end_server()

    def clean(self) -> None:
        """End the fork server, then remove what the runs left (see :meth:`Runner.clean`).

        Raises:
            ConfigError: Runs are still active.
        """
        if not self.runs:
            self._end_server()
        super().clean()

    def _work_in_child(self, run_id: int, runner_pid: int) -> int:
        if not enter_worker_process(self.work_dir, runner_pid, self.base_dir):
            return 1
        # Programs it execs carry their run, and what a worker needs (PROFIT_INCLUDES, ...).
        os.environ.update(self._exported())
        os.environ["PROFIT_RUN_ID"] = str(run_id)
        log_path, debug = self._log_options
        log = RunLog(log_path, run_id, debug, self._log_handler)
        # Handlers inherited from the runner must not receive the worker's records:
        # re-route them at once. Without any, routing waits until something is logged.
        if logging.getLogger().handlers or logging.getLogger("profit").handlers:
            log.activate()
        return execute_forked(self.worker_config, self.interface, run_id, log, row_is_current=True)


_SERVER_MODES = ("auto", "never", "wait")


def _server_mode() -> str:
    """``PROFIT_FORK_SERVER``, checked."""
    mode = os.environ.get("PROFIT_FORK_SERVER", "auto")
    if mode not in _SERVER_MODES:
        raise ConfigError(
            f"PROFIT_FORK_SERVER={mode!r} is not a mode of the fork server: use one of {', '.join(_SERVER_MODES)}"
        )
    return mode
