"""Import a module on first use.

The worker side of the run system must start fast: every worker started
through the shell is a new Python process that imports ``profit.run``. numpy
costs such a process about 60 ms and logging about 20 ms, against roughly 12 ms
for Python itself. Modules refer to them through these proxies, so a worker
that never touches numpy (the memmap worker) or logs nothing never imports them.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # (typing costs every worker process its import)
if TYPE_CHECKING:
    from types import ModuleType


class LazyModule:
    """Stands for the module ``name``; the first attribute access imports it."""

    def __init__(self, name: str):
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attribute: str) -> object:
        if self._module is None:
            __import__(self._name)  # (not importlib: it imports warnings, a worker's start pays for that)
            self._module = sys.modules[self._name]
        return getattr(self._module, attribute)

    def __repr__(self) -> str:
        state = "imported" if self._module is not None else "not imported yet"
        return f"<lazy module {self._name!r} ({state})>"


if TYPE_CHECKING:  # type checkers see the modules themselves
    import logging

    import numpy
else:
    numpy = LazyModule("numpy")
    logging = LazyModule("logging")
