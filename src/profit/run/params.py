"""Parameters of a run: checked against the study's inputs and converted to their dtypes.

A run's parameters are a mapping of input name to value, or a numpy record.
Every input must be given, nothing else may be, and every value must convert
to its input's dtype without loss (no fractional part dropped, no integer out
of range, no string): otherwise :class:`~profit.run.errors.ParameterError`
names the run, the input and the value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ._lazy import numpy as np
from .errors import ParameterError

TYPE_CHECKING = False  # (typing costs every worker process its import)
if TYPE_CHECKING:
    import numpy


def input_row(params: object, run_id: int, names: Sequence[str], dtypes: numpy.dtype) -> tuple:
    """``params`` as a row of the inputs ``names`` (a tuple in field order, converted to ``dtypes``)."""
    if isinstance(params, (np.void, np.ndarray)) and params.dtype.names is not None:
        if params.dtype.names == tuple(names) and all(params.dtype[name] == dtypes[name] for name in names):
            # A record of exactly the inputs: nothing to check or convert (a structured item() is a tuple).
            return params.item()  # type: ignore[return-value]
        given: Mapping = {name: params[name] for name in params.dtype.names}
    elif isinstance(params, Mapping):
        given = params
    else:
        raise ParameterError(
            f"params for run {run_id} must be a mapping of input name to value or a numpy record, "
            f"got {type(params).__name__}"
        )
    unknown = [key for key in given if key not in names]
    missing = [name for name in names if name not in given]
    if unknown or missing:
        problems = []
        if unknown:
            verb = "is not an input" if len(unknown) == 1 else "are not inputs"
            problems.append(f"{', '.join(map(repr, unknown))} {verb}")
        if missing:
            problems.append(f"{', '.join(map(repr, missing))} {'is' if len(missing) == 1 else 'are'} missing")
        raise ParameterError(f"params for run {run_id}: {'; '.join(problems)} (the inputs are {', '.join(names)})")
    return tuple(convert(name, given[name], dtypes[name], run_id) for name in names)


def convert(name: str, value: object, dtype: numpy.dtype, run_id: int) -> object:
    """One input value in its field's dtype, refusing lossy or absurd values."""

    def refuse(why: str = "") -> ParameterError:
        return ParameterError(f"input {name!r} of run {run_id}: cannot convert {value!r} to {dtype}{why}")

    if value is None or isinstance(value, (str, bytes)):
        raise refuse()
    try:
        array = np.asarray(value)
        if array.shape != ():
            raise refuse(" (expected a single value)")
        if dtype.kind in "iu" and array.dtype.kind == "f":
            if not np.isfinite(array) or not float(array).is_integer():
                raise refuse(" without losing its fractional part")
        if dtype.kind in "iu" and array.dtype.kind in "iuf":
            info = np.iinfo(dtype)
            if not info.min <= array <= info.max:
                raise refuse(f" (out of range {info.min}..{info.max})")
        return dtype.type(array.item()) if array.dtype.kind != "O" else dtype.type(value)
    except ParameterError:
        raise
    except (TypeError, ValueError, OverflowError):
        raise refuse() from None
