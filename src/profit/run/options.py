"""Checks of option values, shared by every component.

Each checker takes the value and the option's name as the user wrote it (for
the message), returns the value in its canonical type, and raises
:class:`~profit.run.errors.ConfigError` with one sentence otherwise. Booleans
are not numbers here, and NaN and infinity are refused wherever a number is
expected: they would make a limit that never or always applies.
"""

from __future__ import annotations

import math
import numbers

from .errors import ConfigError


def _number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def seconds(value: object, name: str, *, positive: bool = True, hint: str = "") -> float:
    """A finite duration in seconds: ``> 0`` (``positive``) or ``>= 0``."""
    if (
        not _number(value)
        or not math.isfinite(value)  # type: ignore[arg-type]
        or (value <= 0 if positive else value < 0)  # type: ignore[operator]
    ):
        bound = "> 0" if positive else ">= 0"
        raise ConfigError(f"{name} must be a number of seconds {bound}{hint}, got {value!r}")
    return float(value)  # type: ignore[arg-type]


def optional_seconds(value: object, name: str, *, hint: str = " (or None for no limit)") -> float | None:
    """``None`` (no limit) or a finite duration in seconds ``> 0``."""
    return None if value is None else seconds(value, name, hint=hint)


def whole_number(value: object, name: str, *, minimum: int = 0, maximum: int | None = None, hint: str = "") -> int:
    """A whole number (``int`` or a numpy integer) within ``minimum..maximum``."""
    if (
        not isinstance(value, numbers.Integral)
        or isinstance(value, bool)
        or value < minimum
        or (maximum is not None and value > maximum)  # type: ignore[operator]  # numbers.Real declares only < and <=
    ):
        bound = f"{minimum}..{maximum}" if maximum is not None else f">= {minimum}"
        raise ConfigError(f"{name} must be a whole number {bound}{hint}, got {value!r}")
    return int(value)


def boolean(value: object, name: str) -> bool:
    """``True`` or ``False`` (numpy booleans too); anything else is refused rather than guessed."""
    if not isinstance(value, bool) and type(value).__name__ not in ("bool_", "bool"):  # numpy's bool
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    return bool(value)


def usable_cpus() -> int:
    """The CPUs this process may run on."""
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def parallel(value: object, name: str = "parallel") -> int:
    """Concurrent runs: ``'all'`` (the usable CPUs) or a whole number ``>= 0`` (0: unbounded)."""
    if value == "all":
        return usable_cpus()
    return whole_number(value, name, hint=" (0: unbounded) or 'all'")
