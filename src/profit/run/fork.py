"""ForkRunner (label ``fork``): each run's Worker in a forked copy of the runner.

The worker process sees every component the runner knows (include files are
already imported) and starts in well under a millisecond. ``os.fork`` is used
explicitly, whatever the default multiprocessing start method of the platform.
Each worker leads its own process group (cancel ends the whole tree), dies with
the runner, and its exit is an event the runner waits on (see :mod:`.exitwatch`).
"""

from __future__ import annotations

import os

from . import exitwatch
from . import options as check
from ._lazy import logging
from ._proc import ChildProcess, enter_worker_process, fork_group, lifeline, load_prctl, note_worker
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

    def _exported(self) -> dict[str, str]:
        """What a worker started as a program reads (``Worker.from_env``), for the programs a forked
        worker starts (its simulation), as the other runners export it. Made on first use: include
        files may be loaded after the runner was made."""
        if self._exports is None:
            env = self.worker_environment()
            self._exports = {name: env[name] for name in ("PROFIT_WORKER", "PROFIT_INTERFACE", "PROFIT_INCLUDES")}
        return self._exports

    def _start(self, run_id: int) -> ChildProcess:
        begin_run_log(self.work_dir, self._log_options[0], run_id)
        self._exported()  # (once, in the runner: not in every fork)
        pid = fork_group(lambda runner_pid: self._work_in_child(run_id, runner_pid))
        note_worker(pid, run_id, self.work_dir)
        return ChildProcess(pid)

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
