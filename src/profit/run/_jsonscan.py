"""``json.loads`` for worker processes, without importing :mod:`json`.

Importing json imports :mod:`re` and compiles half a dozen patterns, in every
worker process started through the shell: a sizeable share of a short run. The
value parser itself is json's C scanner (``_json.make_scanner``), which needs
none of that; :func:`loads` uses it with ``json.loads``'s defaults and leaves
anything it does not take whole (an error, no C scanner) to ``json.loads``, so
values and error messages are json's own.
"""

from __future__ import annotations

TYPE_CHECKING = False  # (typing costs every worker process its import)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

_WHITESPACE = " \t\n\r"  # (JSON's whitespace, as json.loads skips it around the value)


class _Defaults:
    """What json's C scanner reads from its decoder: the options ``json.loads`` uses by default."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}.__getitem__


def _scanner() -> Callable[[str, int], tuple[Any, int]] | None:
    """json's C scanner with json.loads's options; None on a Python without it."""
    try:
        from _json import make_scanner
    except ImportError:
        return None
    return make_scanner(_Defaults())  # type: ignore[arg-type]  # (it reads the options off any object)


_scan = _scanner()


def loads(text: str) -> Any:
    """The value of the JSON document ``text``, as ``json.loads(text)`` gives it.

    Args:
        text: A JSON document.

    Returns:
        Its value.

    Raises:
        json.JSONDecodeError: ``text`` is not JSON (raised by ``json.loads`` itself).
    """
    if _scan is not None:
        body = text.strip(_WHITESPACE)
        try:
            value, end = _scan(body, 0)
        except Exception:  # (not JSON: json.loads says why, below)
            pass
        else:
            if end == len(body):
                return value
    import json

    return json.loads(text)
