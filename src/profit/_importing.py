"""What :mod:`importlib.util` offers for making modules, without importing it.

``importlib.util`` imports ``contextlib`` and with it ``collections`` and
``functools``, and ``importlib`` itself ``warnings``: milliseconds in a
``profit-worker`` process, whose whole start is worth a few (see
:mod:`profit._worker_main`). The same functions live in the import system's
own frozen modules, which every interpreter has loaded before it runs any
code; where a Python lacks them there, ``importlib.util`` is used.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # (typing costs every worker process its import)
if TYPE_CHECKING:
    from collections.abc import Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType

# The import system's own modules (importlib._bootstrap and importlib._bootstrap_external).
_BOOTSTRAP = sys.modules.get("_frozen_importlib")
_EXTERNAL = sys.modules.get("_frozen_importlib_external")


def _util() -> ModuleType:
    import importlib.util

    return importlib.util


def spec_from_file_location(name: str, path: str) -> ModuleSpec | None:
    """As :func:`importlib.util.spec_from_file_location`.

    Args:
        name: The module's name.
        path: Its source file.
    """
    make = getattr(_EXTERNAL, "spec_from_file_location", None) or _util().spec_from_file_location
    return make(name, path)


def find_spec_in(name: str, path: Sequence[str]) -> ModuleSpec | None:
    """The spec of the submodule ``name`` of a package whose ``__path__`` is ``path``.

    Args:
        name: The submodule's full name.
        path: The package's ``__path__``.
    """
    finder = getattr(_EXTERNAL, "PathFinder", None)
    if finder is None:
        import importlib.machinery

        finder = importlib.machinery.PathFinder
    return finder.find_spec(name, list(path))


def module_from_spec(spec: ModuleSpec) -> ModuleType:
    """As :func:`importlib.util.module_from_spec`.

    Args:
        spec: The module's spec.
    """
    make = getattr(_BOOTSTRAP, "module_from_spec", None) or _util().module_from_spec
    return make(spec)
