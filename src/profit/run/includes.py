"""Loading users' Python files that define custom components (``include:``).

The runner loads them, and so does every Worker process: forked workers inherit
the loaded modules, workers started through the shell get the list in the
environment variable ``PROFIT_INCLUDES`` (a JSON list of absolute paths).

A ``PROFIT_INCLUDES`` that the caller set in the runner's environment is honoured
too: the runner loads those files and passes them on, merged with its own
(:func:`worker_includes`).
"""

from __future__ import annotations

import os
import sys

from .._importing import module_from_spec, spec_from_file_location
from .errors import ConfigError

TYPE_CHECKING = False  # (typing costs every worker process its import)
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

_loaded: dict[str, str] = {}  # absolute path -> module name


def load_includes(paths: Iterable[str] | str) -> None:
    """Import each file once (by absolute path); custom components register on import.

    Args:
        paths: The files (one path or several).

    Raises:
        ConfigError: A file is missing or fails to import (naming the file and its error in one line).
    """
    if isinstance(paths, str):
        paths = [paths]
    for path in paths:
        path = os.path.abspath(path)
        if path in _loaded:
            continue
        if not os.path.isfile(path):
            raise ConfigError(f"include file {path} does not exist; list existing Python files under 'include'")
        name = f"profit_include_{len(_loaded)}_{os.path.splitext(os.path.basename(path))[0]}"
        spec = spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ConfigError(f"include file {path} cannot be imported; it must be a Python source file (.py)")
        module = module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except (Exception, SystemExit) as error:  # any error in user code becomes one clear sentence
            import traceback

            sys.modules.pop(name, None)
            line: int | str | None
            if isinstance(error, SyntaxError):
                line = error.lineno
            else:  # the deepest frame in the include file itself
                frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == path]
                line = frames[-1].lineno if frames else "?"
            if isinstance(error, SystemExit):  # sys.exit() or exit() at import: a file to import must not end profit
                what = f"called sys.exit({_cut(repr(error.code))})"
            else:
                what = f"failed to import: {type(error).__name__}: {_cut(str(error))}"
            raise ConfigError(f"include file {path} {what} (line {line} of {os.path.basename(path)})") from (
                None if isinstance(error, SystemExit) else error
            )
        _loaded[path] = name


def _cut(text: str, limit: int = 160) -> str:
    """``text`` cut to about ``limit`` characters (a message quoting user code stays one short line)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def loaded_includes() -> list[str]:
    """Absolute paths of the include files loaded in this process, in load order."""
    return list(_loaded)


def env_includes(env: Mapping[str, str] | None = None) -> list[str]:
    """The include files listed in ``PROFIT_INCLUDES`` of ``env`` (default: this process's environment).

    A JSON list of paths (a single path, or a JSON string, is one file); unset or empty: none.

    Args:
        env: The environment (default: this process's).

    Raises:
        ConfigError: The variable is neither a path nor a JSON list of paths.
    """
    env = os.environ if env is None else env
    text = env.get("PROFIT_INCLUDES", "").strip()
    if not text:
        return []
    if text[0] not in '["':  # a plain path, as a user may set it by hand
        return [text]
    from ._jsonscan import loads  # (json itself costs every worker process its import)

    try:
        paths = loads(text)
    except ValueError as error:  # (json.JSONDecodeError)
        raise ConfigError(f"environment variable PROFIT_INCLUDES is not valid JSON ({error}): {text[:80]!r}") from None
    if isinstance(paths, str):
        paths = [paths]
    if not isinstance(paths, list) or not all(isinstance(path, str) for path in paths):
        raise ConfigError(f"environment variable PROFIT_INCLUDES must be a JSON list of paths, got {text[:80]!r}")
    return paths


def worker_includes(env: Mapping[str, str] | None = None) -> list[str]:
    """What workers get as ``PROFIT_INCLUDES``: the files of the caller's ``PROFIT_INCLUDES``
    (absolute paths) and those loaded in this process, each once, in that order.

    Args:
        env: The caller's environment (default: this process's).
    """
    paths = [os.path.abspath(path) for path in env_includes(env)] + loaded_includes()
    return list(dict.fromkeys(paths))
