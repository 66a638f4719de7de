"""The exceptions of the run system, in one hierarchy.

Exceptions are for misuse, bad configuration and broken infrastructure. A run
that fails is *data* (a :class:`~profit.run.state.RunStatus` with a reason),
never an exception in the runner.

Every message says what is wrong, which item, what was expected versus what was
given, and what to do about it.
"""

from __future__ import annotations

TYPE_CHECKING = False  # (typing costs every worker process its import)
if TYPE_CHECKING:
    from collections.abc import Iterable


class ProfitError(Exception):
    """Base class of every error raised by profit.

    The ``profit`` command maps each branch to its exit status: a
    :class:`ConfigError` (the study or its options) is 2, a
    :class:`ServiceError` (the scheduler, say) is 5; any other exception is a bug.
    """


class ConfigError(ProfitError, ValueError):
    """A configuration value is invalid (a key, a label, a size, a dtype...)."""


class UnknownLabelError(ConfigError, KeyError):
    """A component label is not registered.

    Args:
        kind: The kind of component (``'runner'``, ``'worker'``...).
        label: The label that is not registered.
        known: The labels that are.
    """

    def __init__(self, kind: str, label: object, known: Iterable[str]):
        self.kind = kind
        self.label = label
        self.known = sorted(known)
        known_text = ", ".join(repr(k) for k in self.known) or "none"
        super().__init__(
            f"unknown {kind} label {label!r}; known labels: {known_text} "
            f"(a custom {kind} must be defined in a file listed under 'include')"
        )

    # KeyError quotes its message; we want the sentence as it is.
    __str__ = ProfitError.__str__


class ParameterError(ProfitError, ValueError):
    """Input parameters for a run do not match the study's inputs."""


class ServiceError(ProfitError):
    """Something the study needs outside this process failed: a batch scheduler, a network service."""


class SchedulerError(ServiceError):
    """A batch scheduler's command failed (the message has its stderr)."""


class SchedulerNotFound(SchedulerError, ConfigError):
    """A batch scheduler's commands are not installed here: a set-up mistake, not an outage."""


class InterfaceError(ProfitError):
    """The runner-worker interface is missing, corrupt or addressed wrongly."""


class RunNotFoundError(ProfitError, KeyError):
    """A run id does not name an active run of this runner."""

    __str__ = ProfitError.__str__


class WaitTimeout(ProfitError, TimeoutError):
    """Waiting for runs took longer than the given timeout."""


class RunFailed(ProfitError):
    """A run of an :class:`~profit.run.Executor` call failed, timed out or was cancelled.

    ``reason`` (also the message) says why, ``state`` is the run's
    :class:`~profit.run.state.RunState`, ``run_id`` its run, ``function`` what was
    called, ``log`` the end of the run's log (the traceback of an exception in
    the function) and ``log_file`` where the whole log is (empty when it has none).

    Args:
        reason: Why the run failed (also the message).
        state: The run's :class:`~profit.run.state.RunState`.
        run_id: Its run.
        function: What was called.
        log: The end of the run's log (the traceback of an exception in the function).
        log_file: Where the whole log is (empty when it has none).
    """

    def __init__(self, reason: str, *, state: object, run_id: int, function: object, log: str = "", log_file: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.state = state
        self.run_id = run_id
        self.function = function
        self.log = log
        self.log_file = log_file

    def __reduce__(self) -> tuple:  # (picklable, with its attributes: a future's exception may travel)
        return _rebuild_run_failed, (self.reason, self.state, self.run_id, None, self.log, self.log_file)


def _rebuild_run_failed(
    reason: str, state: object, run_id: int, function: object, log: str, log_file: str
) -> RunFailed:
    return RunFailed(reason, state=state, run_id=run_id, function=function, log=log, log_file=log_file)


class WorkerError(ProfitError):
    """Raised inside a worker to fail its run; the message is the run's reason."""


class WorkerOutputError(WorkerError, ValueError):
    """A worker produced outputs that do not fit the declared outputs."""


class CommandError(WorkerError):
    """The simulation command failed (non-zero exit status)."""


class OutputError(WorkerError):
    """The simulation's output could not be read."""
