"""What :mod:`importlib.util` offers for making modules, without importing it.

``importlib.util`` imports ``contextlib`` and with it ``collections`` and
``functools``: milliseconds in a ``profit-worker`` process, whose whole start is
worth a few (see :mod:`profit._worker_main`). The same functions live in the
import system's own modules, which every interpreter has loaded already;
where a Python lacks them there, ``importlib.util`` is used.
"""

from __future__ import annotations

import importlib.machinery
import sys
from types import ModuleType

TYPE_CHECKING = False  # (typing costs every worker process its import)
if TYPE_CHECKING:
    from collections.abc import Sequence
    from importlib.machinery import ModuleSpec


def _util() -> ModuleType:
    import importlib.util

    return importlib.util


def spec_from_file_location(name: str, path: str) -> ModuleSpec | None:
    """As :func:`importlib.util.spec_from_file_location`.

    Args:
        name: The module's name.
        path: Its source file.
    """
    external = sys.modules.get("importlib._bootstrap_external")
    make = getattr(external, "spec_from_file_location", None) or _util().spec_from_file_location
    return make(name, path)


def find_spec_in(name: str, path: Sequence[str]) -> ModuleSpec | None:
    """The spec of the submodule ``name`` of a package whose ``__path__`` is ``path``.

    Args:
        name: The submodule's full name.
        path: The package's ``__path__``.
    """
    return importlib.machinery.PathFinder.find_spec(name, list(path))


def module_from_spec(spec: ModuleSpec) -> ModuleType:
    """As :func:`importlib.util.module_from_spec`.

    Args:
        spec: The module's spec.
    """
    bootstrap = sys.modules.get("importlib._bootstrap")
    make = getattr(bootstrap, "module_from_spec", None) or _util().module_from_spec
    return make(spec)
