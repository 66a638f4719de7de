"""Pool Runner: a fixed set of forked worker processes, each serving many runs.

For cheap simulations starting a process per run costs more than the run. The
pool forks ``parallel`` worker processes once; the runner sends each a run id
through a pipe, the worker computes that run (exactly as a forked worker of
:class:`~profit.run.local.ForkRunner` would: same Worker, same interface, same
failure reasons) and answers with the run id and its exit code::

    runner --run id--> task pipe --> worker: execute(Worker for run id) --> interface row
    runner <--run id, code-- result pipe <--'

Every worker runs one run at a time, so a run that is sent is running:
cancelling it or ending it at its timeout kills that worker's process group,
and a replacement worker starts. A worker that dies fails its current run
with the exit status (``killed by SIGKILL``) and is replaced too. Runs beyond
the free workers wait in the runner (a ``spawn`` without throttling).
"""

import collections
import os
import selectors
import signal
import struct

from ._proc import ChildProcess, ExitStatus, RunHandle, die_with_parent, fork_group, load_prctl
from .local import _no_stdin, resolve_parallel
from .runner import Runner
from .worker import RunLog, Worker, execute, run_log_handler

_TASK = struct.Struct("<q")  # run id
_STOP = -1  # the task that ends a worker (an end of file may never come: forks share pipes)
_RESULT = struct.Struct("<qi")  # run id, exit code


class _PoolWorker:
    """The runner's view of one worker process."""

    __slots__ = ("process", "task_fd", "result_fd", "current", "buffer", "reported", "alive")

    def __init__(self, process: ChildProcess, task_fd: int, result_fd: int):
        self.process, self.task_fd, self.result_fd = process, task_fd, result_fd
        self.current: int | None = None
        self.buffer = b""
        self.reported: dict[int, int] = {}  # run id -> exit code, read but not yet settled
        self.alive = True

    def collect(self) -> bool:
        """Read what the worker reported so far; False once it closed its end."""
        open_ = True
        while True:
            try:
                data = os.read(self.result_fd, 65536)
            except BlockingIOError:
                break
            if not data:
                open_ = False
                break
            self.buffer += data
        usable = len(self.buffer) - len(self.buffer) % _RESULT.size
        for run_id, code in _RESULT.iter_unpack(self.buffer[:usable]):
            self.reported[run_id] = code
            if self.current == run_id:
                self.current = None
        self.buffer = self.buffer[usable:]
        return open_


class _PoolRun(RunHandle):
    """A run of the pool: waiting for a worker, or running on one."""

    notified = True  # its end arrives through the worker's result pipe
    clock_at_launch = False  # its timeout starts when a worker takes it, not while it waits
    __slots__ = ("runner", "run_id", "worker")

    def __init__(self, runner: "PoolRunner", run_id: int):
        self.runner, self.run_id = runner, run_id
        self.worker: _PoolWorker | None = None

    @property
    def pid(self) -> int | None:
        """The process group of the worker that runs it (None while it waits)."""
        return self.worker.process.pid if self.worker is not None else None

    def poll(self):
        """The run's exit status once its worker reported it (taking the report), else None."""
        if self.worker is None or not self.worker.alive:
            return None
        self.worker.collect()
        code = self.worker.reported.pop(self.run_id, None)
        return None if code is None else ExitStatus(code=code)

    def exited(self) -> bool:
        if self.worker is None or not self.worker.alive:
            return False
        self.worker.collect()
        return self.run_id in self.worker.reported

    def signal_tree(self, signum: int) -> None:
        if self.worker is None:
            self.runner._drop_waiting(self.run_id)
        else:
            self.worker.process.signal_tree(signum)

    def wait(self, timeout: float | None = None):
        if self.worker is None:
            return ExitStatus(signal=signal.SIGTERM)  # it never started
        status = self.worker.process.wait(timeout)
        if status is not None:
            self.runner._replace(self.worker)
        return status


class PoolRunner(Runner, label="pool"):
    """Keep ``parallel`` worker processes (default: the usable CPUs) and send them runs.

    Same semantics as the other runners (states and reasons, cancel, timeouts,
    retries); a worker process that dies is replaced. Workers are forked, so
    they know every component the runner knows. Call :meth:`shutdown` (or
    :meth:`clean`) to end the worker processes; they also end with the runner.
    """

    def __init__(self, parallel="all", **kwargs):
        super().__init__(parallel=resolve_parallel(parallel), **kwargs)
        if self.parallel < 1:
            from .errors import ConfigError

            raise ConfigError(f"a pool needs at least one worker process (parallel >= 1), got {self.parallel}")
        self._workers: list[_PoolWorker] = []
        self._waiting: collections.deque[int] = collections.deque()
        self._log_handler = run_log_handler()
        load_prctl()  # before forking: the workers only call it

    # --- starting runs ---------------------------------------------------------------

    def _start(self, run_id: int) -> RunHandle:
        while len(self._workers) < self.parallel:  # one by one: each closes its elders' pipes
            self._workers.append(self._fork_worker())
        handle = _PoolRun(self, run_id)
        idle = next((worker for worker in self._workers if worker.current is None), None)
        if idle is None:
            self._waiting.append(run_id)
        else:
            self._send(idle, handle)
        return handle

    def _send(self, worker: _PoolWorker, handle: _PoolRun) -> None:
        worker.current = handle.run_id
        handle.worker = worker
        os.write(worker.task_fd, _TASK.pack(handle.run_id))
        self._start_clock(handle.run_id)

    def _dispatch(self) -> None:
        """Give waiting runs to idle workers."""
        for worker in self._workers:
            while worker.current is None and self._waiting:
                run_id = self._waiting.popleft()
                handle = self.runs.get(run_id)
                if isinstance(handle, _PoolRun):
                    self._send(worker, handle)

    def _drop_waiting(self, run_id: int) -> None:
        try:
            self._waiting.remove(run_id)
        except ValueError:
            pass

    # --- events -----------------------------------------------------------------------

    def _settle_reported(self, worker: _PoolWorker) -> None:
        reported, worker.reported = worker.reported, {}
        for run_id, code in reported.items():
            if run_id in self.runs:
                self._settle(run_id, ExitStatus(code=code))

    def _on_results(self, worker: _PoolWorker) -> None:
        if not worker.alive:
            return
        worker.collect()  # an end of file is left to the exit event, which settles the rest
        self._settle_reported(worker)
        self._dispatch()

    def _on_exit(self, worker: _PoolWorker) -> None:
        if not worker.alive:
            return
        status = worker.process.poll()
        worker.collect()  # results it sent before it ended still count
        self._settle_reported(worker)
        current = worker.current
        self._replace(worker)
        if current is not None and current in self.runs:
            self.logger.warning("pool worker %d ended (%s) during run %d", worker.process.pid,
                                status.describe() if status else "?", current)
            self._settle(current, status)
        self._dispatch()

    def _replace(self, worker: _PoolWorker) -> None:
        """Forget a worker that ended and start another in its place."""
        if not worker.alive:
            return
        worker.alive = False
        worker.process.poll()
        for fd in (worker.result_fd, worker.process.fileno()):
            if fd is not None:
                self._selector.unregister(fd)
        os.close(worker.task_fd)
        os.close(worker.result_fd)
        worker.process.close()
        index = self._workers.index(worker)
        self._workers[index] = self._fork_worker()
        self._dispatch()

    # --- worker processes --------------------------------------------------------------

    def _fork_worker(self) -> _PoolWorker:
        task_read, task_write = os.pipe()
        result_read, result_write = os.pipe()

        def serve(runner_pid: int) -> int:
            os.close(task_write)
            os.close(result_read)
            return self._serve(task_read, result_write, runner_pid)

        pid = fork_group(serve)
        os.close(task_read)
        os.close(result_write)
        os.set_blocking(result_read, False)
        worker = _PoolWorker(ChildProcess(pid), task_write, result_read)
        self._selector.register(result_read, selectors.EVENT_READ, lambda: self._on_results(worker))
        if worker.process.fileno() is not None:
            self._selector.register(worker.process.fileno(), selectors.EVENT_READ, lambda: self._on_exit(worker))
        return worker

    def _serve(self, tasks: int, results: int, runner_pid: int) -> int:
        """The loop of a worker process: run each run id that arrives, answer with its exit code."""
        import logging

        if not die_with_parent(runner_pid):
            return 1
        # Pipes of the other workers, inherited: holding them would hide their end from them.
        for other in self._workers:
            if other.alive:
                os.close(other.task_fd)
                os.close(other.result_fd)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _no_stdin()
        os.chdir(self.work_dir)
        os.environ["PROFIT_BASE_DIR"] = self.base_dir
        # The runner's handlers must not receive the workers' records.
        logging.getLogger("profit").handlers = []
        logging.getLogger().handlers = [self._log_handler]
        log_path, debug = self.worker.get("log_path", "log"), bool(self.worker.get("debug", False))
        interface_config = self.interface.config
        pending = b""
        while True:
            data = os.read(tasks, 4096)
            if not data:
                return 0  # the runner closed the pipe: done
            pending += data
            usable = len(pending) - len(pending) % _TASK.size
            for (run_id,) in _TASK.iter_unpack(pending[:usable]):
                if run_id == _STOP:
                    return 0
                log = RunLog(log_path, run_id, debug, self._log_handler)
                code = execute(lambda: Worker.from_config(self.worker, interface_config, run_id), log)
                log.release()
                os.write(results, _RESULT.pack(run_id, code))
            pending = pending[usable:]

    def shutdown(self) -> None:
        """End the worker processes (after their current runs) and wait for them."""
        workers, self._workers = self._workers, []
        for worker in workers:
            if worker.alive:
                worker.alive = False
                try:
                    os.write(worker.task_fd, _TASK.pack(_STOP))
                except BrokenPipeError:
                    pass  # it has ended already
                os.close(worker.task_fd)
        for worker in workers:
            if worker.process.status is None:
                worker.process.wait()
            for fd in (worker.result_fd, worker.process.fileno()):
                if fd is not None and fd in self._selector.get_map():
                    self._selector.unregister(fd)
            os.close(worker.result_fd)
            worker.process.close()

    def clean(self) -> None:
        """End the worker processes, then remove what the runs left (see :meth:`Runner.clean`)."""
        self.shutdown()
        super().clean()

    def close(self) -> None:
        """Cancel what still runs, end the worker processes and release the event sources."""
        self.cancel_all()
        self.shutdown()
        self._selector.close()
