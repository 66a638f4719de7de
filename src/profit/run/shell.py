"""LocalRunner (label ``local``): each run's Worker as a shell command.

Each run is ``command`` (default ``profit-worker``) run through the shell in
the work directory, in a new session (its own process group: cancel ends the
whole tree, also what left the group, see :func:`~._proc.stop_trees`); every
process of a run carries ``PROFIT_WORK_DIR`` and ``PROFIT_RUN_ID`` in its
environment, by which a study that resumes after its runner was killed finds
them; the Worker reads its run id, worker and interface configs from the
environment (``PROFIT_RUN_ID``, ``PROFIT_WORKER``, ``PROFIT_INTERFACE``,
``PROFIT_INCLUDES``). Its exit is an event the runner waits on (see :mod:`.exitwatch`).

The default command runs the ``profit-worker`` script beside this Python as that
interpreter with the script's code given inline, through the lean entry point
``profit._worker_main``: the same program, without the script's own costs.
"""

from __future__ import annotations

import os
import shlex
import sys

from . import exitwatch
from . import options as check
from ._proc import (
    MARK,
    ChildProcess,
    become_subreaper,
    leave_subreaper,
    note_worker,
    reap_orphans,
    work_dir_mark,
)
from .layout import begin_run_log
from .runner import Runner

TYPE_CHECKING = False  # (typing costs every worker process its import)
if TYPE_CHECKING:
    from typing import Any


class LocalRunner(Runner, label="local"):
    """start Workers locally via the shell

    Each run is ``command`` (default ``profit-worker``) run through the shell in
    the work directory, in a new session; the Worker reads its run id, worker and
    interface configs from the environment (``PROFIT_RUN_ID``, ``PROFIT_WORKER``,
    ``PROFIT_INTERFACE``, ``PROFIT_INCLUDES``).

    Args:
        command: the shell command that runs a Worker.
        parallel: how many runs are active at once: ``"all"`` (the CPUs this process may use)
            or a whole number (0: unbounded).
        **kwargs: the options of :class:`~profit.run.runner.Runner` (keyword only).
    """

    passes_kwargs_on = True  # **kwargs are the base class's options (checked against its signature)

    _through_shell = True

    def __init__(self, command: str = "profit-worker", parallel: int | str = "all", **kwargs: Any):
        self.command = command
        super().__init__(parallel=check.parallel(parallel), **kwargs)
        exitwatch.backend()  # (PROFIT_EXIT_WATCH is checked now, not at the first run)
        self._env: dict[str, str] | None = None
        self._env_bytes: tuple[dict[str, str], dict[bytes, bytes]] | None = None  # (_env, encoded once)
        self._shell: tuple[str, str] | None = None  # (command, what the shell runs for it)
        # Orphans of the workers' processes become this process's children, so that a run's
        # cancel or timeout finds them (by their PROFIT_RUN_ID) when their parents are gone.
        self._subreaper = become_subreaper()

    def close(self) -> None:
        """Cancel what still runs and release the runner; this process stops being a subreaper for it."""
        try:
            super().close()
        finally:
            if self._subreaper:
                self._subreaper = False
                leave_subreaper()

    def __repr__(self) -> str:
        details = [f"parallel={self.parallel}"] + (["debug"] if self.debug else [])
        if self.command != "profit-worker":
            details.append(f"command={self.command!r}")
        return f"<{type(self).__name__} ({', '.join(details)})>"

    @property
    def config(self) -> dict:
        """The runner's options as a JSON-able dict, with its ``command``."""
        return {**super().config, "command": self.command}

    def _environment(self) -> dict[str, str]:
        # Built on first use: include files may be loaded after the runner was made.
        if self._env is None:
            # The mark of the work directory: a later runner of the same study finds every
            # process of these runs by it, even one whose pid it never learnt (kill -9).
            self._env = {**self.worker_environment(), MARK: work_dir_mark(self.work_dir)}
        return self._env

    def _encoded_environment(self) -> dict[bytes, bytes]:
        # subprocess encodes a str environment again for every process; bytes pass as they are.
        env = self._environment()
        if self._env_bytes is None or self._env_bytes[0] is not env:
            self._env_bytes = (env, {os.fsencode(name): os.fsencode(value) for name, value in env.items()})
        return self._env_bytes[1]

    def _shell_command(self) -> str:
        # The default worker is the one installed beside this Python (a venv's
        # bin/ need not be on PATH), and the shell execs it: one process less,
        # and no "Killed" line from the shell when a worker is killed. Any other
        # command is the user's, run as written. Worked out once for each command.
        if self._shell is None or self._shell[0] != self.command:
            self._shell = (self.command, _expand(self.command))
        return self._shell[1]

    def _start(self, run_id: int) -> ChildProcess:
        import subprocess  # here, not at the top: worker processes import this package

        reap_orphans()
        env = self._encoded_environment().copy()
        env[b"PROFIT_RUN_ID"] = str(run_id).encode()
        begin_run_log(self.work_dir, self.worker_config.get("log_path", "log"), run_id)
        popen = subprocess.Popen(
            self._shell_command(),
            shell=True,
            env=env,
            cwd=self.work_dir,
            start_new_session=True,
            stdin=subprocess.DEVNULL,  # a worker in a background session must not wait for a terminal
        )
        note_worker(popen.pid, run_id, self.work_dir)
        return ChildProcess(popen.pid, popen)


# What the installed profit-worker script does, in the same interpreter, minus what the script
# itself costs (its own lookup, and pip's wrapper may import ``re``), and through the lean entry
# point (profit._worker_main): sys.argv[0] and sys.path[0] are the script's, as if it ran.
_WORKER_CODE = (
    "import sys; sys.argv[0] = {script!r}; sys.path[0] = {bin!r}; from profit._worker_main import main; main()"
)


def _expand(command: str) -> str:
    """What the shell runs for ``command``: ``profit-worker`` (with any arguments) as the
    interpreter that runs the script beside this Python, with the script's code inlined;
    anything else as it is."""
    name, _, rest = command.partition(" ")
    if name == "profit-worker":
        script = os.path.join(os.path.dirname(sys.executable), "profit-worker")
        if os.access(script, os.X_OK):
            arguments = " " + rest if rest else ""
            if _interpreter(script) != os.path.realpath(sys.executable):  # (not ours: run it as it is)
                return "exec " + shlex.quote(script) + arguments
            code = _WORKER_CODE.format(script=script, bin=os.path.dirname(script))
            return "exec " + shlex.join([sys.executable, "-c", code]) + arguments
    return command


def _interpreter(script: str) -> str | None:
    """The interpreter of a script's ``#!`` line (resolved), or None."""
    try:
        with open(script, "rb") as file:
            first = file.readline(4096)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    words = first[2:].split()
    return os.path.realpath(os.fsdecode(words[0])) if len(words) == 1 else None
