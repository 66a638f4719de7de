"""Parameters of a run: checked against the study's inputs and converted to their dtypes.

A run's parameters are a mapping of input name to value, or a numpy record.
Every input must be given, nothing else may be, and every value must convert
to its input's dtype without loss (no fractional part dropped, no integer out
of range, no string): otherwise :class:`~profit.run.errors.ParameterError`
names the run, the input and the value.

Many runs' parameters (:func:`parameter_rows`) are a numpy structured array, a
sequence of mappings or records, or a pandas DataFrame (pandas is never imported
here: a DataFrame exists only where pandas was imported already).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence

from ._lazy import numpy as np
from .errors import ParameterError

TYPE_CHECKING = False  # (typing costs every worker process its import)
if TYPE_CHECKING:
    from collections.abc import Iterable

    import numpy


def _pandas_kind(value: object) -> str | None:
    """``"DataFrame"`` or ``"Series"`` for a pandas object of that kind, else None; pandas is
    looked up among the loaded modules only (an object of pandas means pandas is loaded)."""
    pandas = sys.modules.get("pandas")
    if pandas is None:
        return None
    for kind in ("DataFrame", "Series"):
        cls = getattr(pandas, kind, None)
        if isinstance(cls, type) and isinstance(value, cls):
            return kind
    return None


def parameter_rows(params_array: object) -> Iterable:
    """Many runs' parameters as rows :func:`input_row` takes: a pandas DataFrame as its records
    (one per row, fields named by its columns); a structured array, a sequence or any iterable of
    mappings and records as it is.

    Args:
        params_array: The parameter sets.

    Raises:
        ParameterError: ``params_array`` is not many parameter sets.
    """
    if _pandas_kind(params_array) == "DataFrame":
        return params_array.to_records(index=False)  # type: ignore[attr-defined]
    if isinstance(params_array, (str, bytes, Mapping)):
        # (iterating would give its characters or keys, each refused as "a str" without saying why)
        raise ParameterError(
            f"params must be many parameter sets: a structured array, a pandas DataFrame or a sequence of "
            f"mappings of input name to value, got a {type(params_array).__name__}"
        )
    return params_array  # type: ignore[return-value]


def single_parameters(params: object) -> object:
    """One run's parameters as :func:`input_row` takes them: a pandas Series (a row of a DataFrame)
    as a mapping; a one-row DataFrame or structured array as its record; anything else as it is.

    Args:
        params: The run's parameters.

    Raises:
        ParameterError: ``params`` is a table of more than one row.
    """
    kind = _pandas_kind(params)
    if kind == "Series":
        return params.to_dict()  # type: ignore[attr-defined]
    if kind == "DataFrame":
        params = params.to_records(index=False)  # type: ignore[attr-defined]
    if isinstance(params, np.ndarray) and params.dtype.names is not None and params.ndim > 0:
        if params.size != 1:
            raise ParameterError(
                f"params of one run must be one parameter set, got a table of {params.size} rows "
                "(spawn_array runs one per row)"
            )
        return params.reshape(-1)[0]
    return params


def input_row(params: object, run_id: int, names: Sequence[str], dtypes: numpy.dtype) -> tuple:
    """``params`` as a row of the inputs ``names`` (a tuple in field order, converted to ``dtypes``).

    Args:
        params: The run's parameters: a mapping of input name to value or a numpy record.
        run_id: The run (for the error message).
        names: The inputs.
        dtypes: The inputs' dtypes.

    Raises:
        ParameterError: ``params`` is neither, misses inputs or names others, or a value cannot be converted.
    """
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
    """One input value in its field's dtype, refusing lossy or absurd values.

    Args:
        name: The input (for the error message).
        value: Its value.
        dtype: Its field's dtype.
        run_id: The run (for the error message).

    Raises:
        ParameterError: The value cannot be converted without loss.
    """

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
