"""Checks of option values, shared by every component.

Each checker takes the value and the option's name as the user wrote it (for
the message), returns the value in its canonical type, and raises
:class:`~profit.run.errors.ConfigError` with one sentence otherwise. Booleans
are not numbers here, and NaN and infinity are refused wherever a number is
expected: they would make a limit that never or always applies.
"""

from __future__ import annotations

from .errors import ConfigError

TYPE_CHECKING = False  # (typing costs every worker process its import)
if TYPE_CHECKING:
    import reprlib

# The largest whole number an option may hold (numpy's int64 holds the counts and ids).
INT64_MAX = 2**63 - 1
# The longest duration an option may give: about 31 years (an OS timer overflows beyond).
MAX_SECONDS = 1e9
# Descriptors a local run may hold (its pipes, log and status files), and those profit keeps besides.
DESCRIPTORS_PER_RUN, SPARE_DESCRIPTORS = 4, 64

# The reprlib.Repr that shown() uses: made at its first use (a worker's start rarely needs it).
_shortly: reprlib.Repr | None = None


def _short_repr() -> reprlib.Repr:
    global _shortly
    if _shortly is None:
        import reprlib

        shortly = reprlib.Repr()
        shortly.maxlevel, shortly.maxstring, shortly.maxother, shortly.maxlong = 3, 80, 80, 40
        shortly.maxlist = shortly.maxtuple = shortly.maxdict = shortly.maxset = 8
        _shortly = shortly
    return _shortly


def shown(value: object, limit: int = 80) -> str:
    """``repr(value)`` cut to about ``limit`` characters, for messages: a value from a file
    (an expanded YAML alias, a megabyte string, a huge integer) never grows a message.

    Args:
        value: The value.
        limit: About the most characters.
    """
    try:
        text = _short_repr().repr(value)
    except Exception:  # a repr that fails (an integer of more digits than Python prints)
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _number(value: object) -> bool:
    """A real number, not a bool (int and float first: ``numbers`` costs a worker's start its import)."""
    if type(value) in (float, int):
        return True
    import numbers

    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def is_whole(value: object) -> bool:
    """Whether ``value`` is a whole number (an int, a numpy integer), not a bool.

    Args:
        value: Anything.
    """
    if type(value) is int:
        return True
    import numbers

    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def seconds(value: object, name: str, *, positive: bool = True, hint: str = "") -> float:
    """A finite duration in seconds: ``> 0`` (``positive``) or ``>= 0``, at most :data:`MAX_SECONDS`.

    Args:
        value: The option's value.
        name: The option's name (for the message).
        positive: ``> 0`` rather than ``>= 0``.
        hint: Added to the message.

    Raises:
        ConfigError: The value is no such duration.
    """
    import math  # (here: a worker's start need not import it)

    try:
        good = _number(value) and math.isfinite(value) and (value > 0 if positive else value >= 0)  # type: ignore[arg-type,operator]
    except (OverflowError, TypeError, ValueError):  # a number type that cannot be compared or made a float
        good = False
    if not good:
        bound = "> 0" if positive else ">= 0"
        raise ConfigError(f"{name} must be a number of seconds {bound}{hint}, got {shown(value)}")
    if value > MAX_SECONDS:  # type: ignore[operator]
        raise ConfigError(
            f"{name} must be at most {MAX_SECONDS:.0e} seconds (about 31 years){hint}, got {shown(value)}"
        )
    return float(value)  # type: ignore[arg-type]


def optional_seconds(value: object, name: str, *, hint: str = " (or None for no limit)") -> float | None:
    """``None`` (no limit) or a finite duration in seconds ``> 0``.

    Args:
        value: The option's value.
        name: The option's name (for the message).
        hint: Added to the message.
    """
    return None if value is None else seconds(value, name, hint=hint)


def whole_number(value: object, name: str, *, minimum: int = 0, maximum: int | None = None, hint: str = "") -> int:
    """A whole number (``int`` or a numpy integer) within ``minimum..maximum``
    (``maximum`` None: at most :data:`INT64_MAX`, the most a count or an id may be).

    Args:
        value: The option's value.
        name: The option's name (for the message).
        minimum: The least it may be.
        maximum: The most it may be.
        hint: Added to the message.

    Raises:
        ConfigError: The value is no such number.
    """
    top = INT64_MAX if maximum is None else maximum
    whole = is_whole(value)
    too_large = whole and value > top  # type: ignore[operator]  # numbers.Real declares only < and <=
    if not whole or value < minimum or too_large:  # type: ignore[operator]
        if maximum is not None:
            bound = f"{minimum}..{maximum}"
        else:
            bound = f"{minimum}..2**63-1" if too_large else f">= {minimum}"
        raise ConfigError(f"{name} must be a whole number {bound}{hint}, got {shown(value)}")
    return int(value)  # type: ignore[call-overload]


def boolean(value: object, name: str) -> bool:
    """``True`` or ``False`` (numpy booleans too); anything else is refused rather than guessed.

    Args:
        value: The option's value.
        name: The option's name (for the message).

    Raises:
        ConfigError: The value is not a boolean.
    """
    if not isinstance(value, bool) and type(value).__name__ not in ("bool_", "bool"):  # numpy's bool
        raise ConfigError(f"{name} must be true or false, got {shown(value)}")
    return bool(value)


def usable_cpus() -> int:
    """The CPUs this process may run on."""
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def descriptor_limit() -> int | None:
    """The file descriptors this process may open (``ulimit -n``), or None where unknown or unlimited."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):
        return None
    return None if soft == resource.RLIM_INFINITY or soft < 0 else soft


def _raise_descriptor_limit(need: int) -> None:
    """Raise this process's soft descriptor limit towards ``need``, within its hard limit."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        if target > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ImportError, OSError, ValueError):
        pass  # (the limit stays; the caller refuses what it cannot serve)


def most_parallel() -> int | None:
    """The most runs at once the descriptor limit serves (:data:`DESCRIPTORS_PER_RUN` each, and spare ones)."""
    limit = descriptor_limit()
    return None if limit is None else max((limit - SPARE_DESCRIPTORS) // DESCRIPTORS_PER_RUN, 1)


def parallel(value: object, name: str = "parallel") -> int:
    """Concurrent runs: ``'all'`` (the usable CPUs, as many as the descriptor limit serves) or a
    whole number ``>= 0`` (0: unbounded) that the process's descriptor limit (``ulimit -n``) serves.

    Args:
        value: The option's value.
        name: The option's name (for the message).

    Raises:
        ConfigError: The descriptor limit cannot serve that many runs.
    """
    count = usable_cpus() if isinstance(value, str) and value == "all" else None
    if count is None:
        count = whole_number(value, name, hint=" (0: unbounded) or 'all'")
    most = most_parallel()
    if most is not None and count > most:
        # The soft limit is often far below the hard one (1024 of 524288): raise it as far as needed.
        _raise_descriptor_limit(count * DESCRIPTORS_PER_RUN + SPARE_DESCRIPTORS)
        most = most_parallel()
    if isinstance(value, str) and value == "all":
        return count if most is None else min(count, most)
    if most is not None and count > most:
        need = count * DESCRIPTORS_PER_RUN + SPARE_DESCRIPTORS
        raise ConfigError(
            f"{name} {count} needs about {need} file descriptors ({DESCRIPTORS_PER_RUN} per run), but this process "
            f"may open {descriptor_limit()} (ulimit -n), enough for {most} runs at once; lower {name} to at most "
            f"{most} or raise the limit (e.g. 'ulimit -n {need}' in the shell that starts profit)"
        )
    return count
