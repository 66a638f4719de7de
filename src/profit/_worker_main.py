"""The lean start of ``profit-worker``: a worker process that imports only what its run needs.

Importing :mod:`profit.run` registers every built-in component (runners, the zeromq
interface, command and function workers...), which costs a worker process started
through the shell more than Python's own start-up. A plain run (the memmap interface,
a Worker registered by an include file) needs none of it. :func:`main` therefore sets
up the package ``profit.run`` without running its ``__init__`` and completes it on
demand (:func:`_complete`): on the first access to one of its names that is not
there yet, on a registry lookup that misses, when a built-in label is taken or the
labels are listed (hooks in :mod:`profit.run.registry`). So a run that needs more
gets exactly what ``import profit.run`` gives, only later; one that does not never
pays for it.

This module lies outside :mod:`profit.run` on purpose: importing anything inside it
would run the package's ``__init__`` first.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # (typing costs every worker process its import)
if TYPE_CHECKING:
    from importlib.machinery import ModuleSpec

    from profit.run.registry import RegistryMeta

# The labels that importing profit.run registers, for each component kind. An include file
# that takes one of them must meet the built-in variant first (an error, or a replacement
# with a warning), as with a complete package; tests/test_lean_worker.py keeps this in step.
BUILTIN_LABELS: dict[str, frozenset[str]] = {
    "Runner": frozenset({"dask", "fork", "local", "pool", "slurm"}),
    "Worker": frozenset({"command", "function"}),
    "RunnerInterface": frozenset({"memmap", "zeromq"}),
    "WorkerInterface": frozenset({"memmap", "zeromq"}),
    "Preprocessor": frozenset({"template"}),
    "Postprocessor": frozenset({"hdf5", "json", "numpytxt"}),
}

# The names of profit.run that the lean start provides before completing the package:
# those of modules a plain run imports anyway (``from profit.run import Worker``).
_EARLY_NAMES = {
    "Worker": "worker",
    "WorkerInterface": "interface",
    "RunnerInterface": "interface",
    "RunFailed": "errors",
}


def main() -> None:
    """Entry point of ``profit-worker``: run the worker of the environment's run in a lean process.

    Raises:
        SystemExit: With the worker's exit code (see :func:`profit.run.worker.main`).
    """
    if "profit.run" not in sys.modules:
        _defer_package()
    from profit.run.worker import main as worker_main

    worker_main()


def _defer_package() -> None:
    """Put ``profit.run`` into ``sys.modules`` without running its ``__init__`` (see the module's docstring)."""
    import profit
    from profit._importing import find_spec_in, module_from_spec

    spec = find_spec_in("profit.run", profit.__path__)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:  # pragma: no cover
        return  # (not a package on disk: import it as usual)
    package = module_from_spec(spec)
    directory = spec.submodule_search_locations[0]

    def __getattr__(name: str) -> object:
        # A submodule's name: let the import system import it (``from . import options``
        # asks the package first). Anything else: the complete package has it, or nobody.
        if os.path.exists(os.path.join(directory, name + ".py")):
            raise AttributeError(name)
        _complete()
        return getattr(package, name)

    package.__dict__["__getattr__"] = __getattr__  # (PEP 562: looked up in the module's dict)
    sys.modules["profit.run"] = package
    profit.run = package  # (as importing it would bind it)
    global _pending
    _pending = spec

    from profit.run import errors, interface, registry, worker

    registry.deferred_builtins = _on_registry
    modules = {"worker": worker, "interface": interface, "errors": errors}
    for name, module in _EARLY_NAMES.items():
        setattr(package, name, getattr(modules[module], name))


_pending: ModuleSpec | None = None


def _on_registry(cls: RegistryMeta, label: str | None) -> None:
    """Registry hook: complete the package before a miss, a listing (``label`` None) or a built-in
    label taken by a class that is not the built-in one (those of profit.run take theirs as they load)."""
    if label is None or (label in BUILTIN_LABELS.get(cls._kind, ()) and not cls.__module__.startswith("profit.run.")):
        _complete()


def _complete() -> None:
    """Run ``profit.run``'s ``__init__`` in the deferred package: every built-in component registers."""
    global _pending
    spec, _pending = _pending, None
    if spec is None or spec.loader is None:
        return
    from profit.run import registry

    registry.deferred_builtins = None
    package = sys.modules["profit.run"]
    del package.__getattr__  # (the package's own __init__ may define another)
    spec.loader.exec_module(package)
