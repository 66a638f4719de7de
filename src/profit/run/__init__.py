"""profit.run: run a simulation at many parameter sets, locally or on a cluster.

A :class:`Runner` starts one :class:`Worker` per parameter set (a *run*); Runner
and Workers exchange inputs and outputs through an interface
(:class:`RunnerInterface` / :class:`WorkerInterface`). Each kind of component
has a registry of variants by label, e.g. ``Runner["fork"]``.

Importing this package registers the built-in components; optional heavy
dependencies are imported only by the components that use them.
"""

# Built-in variants register themselves on import.
from . import dask, functions, local, pool, slurm, zeromq  # noqa: E402,F401  (register the built-in variants)
from .command import Postprocessor, Preprocessor
from .errors import RunFailed
from .interface import RunnerInterface, WorkerInterface
from .runner import Runner
from .state import RunState, RunStatus
from .worker import Worker

__all__ = [
    "Runner",
    "Worker",
    "RunnerInterface",
    "WorkerInterface",
    "Preprocessor",
    "Postprocessor",
    "RunState",
    "RunStatus",
    "Executor",
    "RunFailed",
]


def __getattr__(name: str) -> object:
    # The executor is imported on first use: worker processes import this package, and
    # concurrent.futures would cost each of them its import (logging among others).
    if name == "Executor":
        from .executor import Executor

        return Executor
    raise AttributeError(f"module 'profit.run' has no attribute {name!r}")
