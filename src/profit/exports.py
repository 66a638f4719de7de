"""Aligned results written to files that people read with their own tools.

The *aligned results array* of a study (what ``profit.Study.results()`` returns)
is a structured array with one row per run, in run order (the run id is the row
number): the inputs, the outputs (float64; a vector output is a sub-array field),
then ``state``, ``reason``, ``attempts``, ``started``, ``ended`` (Unix
timestamps) and ``duration`` (seconds; NaN when unknown). Runs that did not
succeed have NaN outputs. A vector output may lie over a grid: ``grids`` maps
the output's name to ``(axis name, axis values)``.

:func:`export` writes it in the format the file's extension names; each file is
replaced atomically (a crash while writing never leaves half a file):

* ``.csv``: a header line, then one line per run: the inputs and outputs (a
  vector output ``g`` of length 3 as ``g_0,g_1,g_2``), ``attempts``,
  ``started``, ``ended``, ``duration``, then ``state`` and ``reason``. Floats are
  written exactly (their ``repr``; ``nan`` for NaN), integers as integers
  (booleans as 0 and 1).
  Nothing is quoted: in the *export only*, a reason's (or state's) line breaks
  become spaces, ``,`` becomes ``;`` and ``"`` becomes ``'``, so that a reason
  can never shift the columns. ``pandas.read_csv(path)`` reads it (an empty
  reason as NaN), and so does ``numpy.genfromtxt(path, delimiter=",",
  names=True)`` (the two text columns as NaN).
* ``.txt``: proFit's layout, as :func:`profit.datafiles.write` writes it: a
  ``# name ...`` header, the inputs then outputs as space separated floats, a
  trailing ``# run N failed: reason`` comment line per failed run
  (``numpy.genfromtxt(path, names=True)`` reads it). Pass only the outputs
  (``inputs=()``) for a study's output file. States and reasons go into a
  second file beside it, ``<stem>.states.csv``, with the columns
  ``run,state,reason`` (written like ``.csv``, after the ``.txt``).
* ``.npy``: a structured array of the named inputs and outputs only (the layout
  proFit writes, for ``numpy.load``), with the states and reasons beside it in
  ``<stem>.states.csv`` as for ``.txt``.
* ``.hdf5``/``.h5``: proFit 0.6's layout, one dataset per input and output in
  proFit's shapes (a scalar variable ``(runs, 1)``, a vector output ``(runs,
  values)``); a grid's axis as a dataset named after the axis (an HDF5
  dimension scale, attached to the output's second dimension); the run
  bookkeeping as attributes of the file, one value per run: ``state`` and
  ``reason`` (UTF-8 strings), ``attempts``, ``started``, ``ended``,
  ``duration`` (``h5py.File(path).attrs["state"]``). proFit's reader takes every
  dataset and group of the file for a variable; attributes stay out of its way,
  so it reads a file of scalar variables as it reads its own (a grid axis
  and vector outputs it cannot read, nor its own vector outputs). Readable by
  HDF5 1.8 and later (dense attribute storage, for the bookkeeping of many
  runs). Needs h5py (extra ``hdf5``).
* ``.parquet``: :func:`to_dataframe` written with pyarrow (extra ``parquet``).
* ``.nc``: :func:`to_xarray` written with xarray's netCDF engine (netCDF4,
  h5netcdf or scipy's netCDF3, the first installed; extra ``netcdf``).
  Strings read back as strings. netCDF3 has no 64-bit integers: ``attempts``
  and the run ids read back as int32, an integer input beyond 32 bits as an
  (exact) float64.

``started`` and ``ended`` stay float Unix timestamps (seconds since 1970 UTC)
in every format, data frames and datasets included, so that they read back
exactly; ``pandas.to_datetime(df.started, unit="s")`` makes dates of them.
A library that a format needs and that is missing is a
:class:`~profit.run.errors.ConfigError` naming the file and the extra to install.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .datafiles import columns, field_names, float_text, format_of, one_line, write_table
from .run._files import atomic_path
from .run.errors import ConfigError

if TYPE_CHECKING:
    import pandas  # type: ignore[import-untyped]
    import xarray

EXPORT_FORMATS = (".csv", ".txt", ".npy", ".hdf5", ".h5", ".parquet", ".nc", ".in", ".out", ".pkl")

#: The run bookkeeping fields of an aligned results array, in their order (after the inputs and outputs).
BOOKKEEPING = ("state", "reason", "attempts", "started", "ended", "duration")
_TEXT_FIELDS = ("state", "reason")
_DESCRIPTIONS = {
    "state": "the run's state: done, failed, pending, running or cancelled",
    "reason": "why the run did not succeed ('' when there is nothing to say)",
    "attempts": "how many times the run was started",
    "started": "when the run's last attempt started: Unix timestamp in seconds (NaN when unknown)",
    "ended": "when the run's last attempt ended: Unix timestamp in seconds (NaN when unknown)",
    "duration": "how long the run's last attempt took, in seconds (NaN when unknown)",
}
_CSV_SAFE = str.maketrans({",": ";", '"': "'"})

#: Output name -> (axis name, axis values) for each vector output that lies over a grid.
Grids = Mapping[str, tuple[str, np.ndarray]]


def export(
    path: str | os.PathLike[str],
    results: np.ndarray,
    *,
    inputs: Sequence[str],
    outputs: Sequence[str],
    grids: Grids = {},
) -> None:
    """Write the aligned results to `path` atomically, in the format its extension names (.csv, .txt, .npy,
    .hdf5/.h5, .parquet, .nc): the fields ``inputs`` and ``outputs`` of ``results``, and its bookkeeping
    (state, reason, attempts, times). See the module's documentation for each format's layout.

    Args:
        path: The file (its extension names the format).
        results: The aligned results.
        inputs: The input fields.
        outputs: The output fields.
        grids: The grids of vector outputs: name -> (axis name, values).

    Raises:
        ConfigError: The extension is not one of an export format.
    """
    path = os.fspath(path)
    if os.path.splitext(path)[1].lower() not in EXPORT_FORMATS:
        raise ConfigError(f"cannot write {path!r}: use one of the extensions {', '.join(EXPORT_FORMATS)}")
    extension = format_of(path)  # (.in and .out: proFit's names of its text layout)
    names = _check(results, inputs, outputs, grids)
    # Every library the format needs is imported first: its message names the file, not a temporary one.
    if extension == ".txt":
        _export_txt(path, results, names)
        return
    module = None
    if extension in (".hdf5", ".h5"):
        module = _require("h5py", f"writing {path!r}", "hdf5")
    elif extension == ".parquet":
        _require("pandas", f"writing {path!r}", "parquet")
        _require("pyarrow", f"writing {path!r}", "parquet")
    elif extension == ".nc":
        _require("xarray", f"writing {path!r}", "netcdf")
        engine = _netcdf_engine(path)
    with atomic_path(path, suffix=os.path.splitext(path)[1]) as temporary:
        if extension == ".csv":
            _write_csv(temporary, results, names)
        elif extension == ".npy":
            np.save(temporary, _select(results, names))  # the variables only, as proFit writes the file
        elif extension == ".pkl":  # proFit's pickle of the variables' structured array
            import pickle

            with open(temporary, "wb") as file:
                pickle.dump(_select(results, names), file)
        elif extension == ".parquet":
            to_dataframe(results, inputs=inputs, outputs=outputs).to_parquet(temporary)
        elif extension == ".nc":
            dataset = to_xarray(results, inputs=inputs, outputs=outputs, grids=grids)
            if engine == "scipy":
                dataset = _fit_netcdf3(dataset, path)
            dataset.to_netcdf(temporary, engine=engine)
        else:
            _write_hdf5(module, temporary, results, inputs, outputs, grids)
    if extension in (".npy", ".pkl"):
        _export_states(path, results)


def to_dataframe(results: np.ndarray, *, inputs: Sequence[str], outputs: Sequence[str]) -> pandas.DataFrame:
    """The aligned results as a pandas DataFrame: one row per run (the index, named ``run``, is the run id);
    the columns are the inputs, the outputs (a vector output ``g`` of length n as ``g[0]`` ... ``g[n-1]``,
    so that ``df.filter(like="g[")`` selects them), then ``state``, ``reason``, ``attempts``, ``started``,
    ``ended`` and ``duration``. ``started`` and ``ended`` stay float Unix timestamps (they round-trip
    exactly; ``pandas.to_datetime(df.started, unit="s")`` makes dates of them).

    Args:
        results: The aligned results.
        inputs: The input fields.
        outputs: The output fields.
    """
    pd = _require("pandas", "profit.exports.to_dataframe", "pandas")
    _check(results, inputs, outputs, {})
    data: dict[str, np.ndarray] = {}
    for name in [*inputs, *outputs]:
        field = results[name]
        if field.ndim > 1:
            data.update((f"{name}[{index}]", field[:, index]) for index in range(field.shape[1]))
        else:
            data[name] = field
    data.update((name, results[name]) for name in _bookkeeping(results))
    return pd.DataFrame(data, index=pd.RangeIndex(len(results), name="run"))


def to_xarray(
    results: np.ndarray, *, inputs: Sequence[str], outputs: Sequence[str], grids: Grids = {}
) -> xarray.Dataset:
    """The aligned results as an xarray Dataset over the dimension ``run`` (its coordinate: the run ids).

    Every input, scalar output, ``state``, ``reason``, ``attempts``, ``started``, ``ended`` and ``duration``
    is a variable over ``run``; a vector output with a grid is a variable over (``run``, the axis name), the
    axis a coordinate with the grid's values; one without a grid is over (``run``, ``<name>_index``).
    ``started`` and ``ended`` stay float Unix timestamps (no ``units`` attribute, so that nothing decodes
    them into dates; their ``description`` attribute says what they are).

    Args:
        results: The aligned results.
        inputs: The input fields.
        outputs: The output fields.
        grids: The grids of vector outputs: name -> (axis name, values).
    """
    xr = _require("xarray", "profit.exports.to_xarray", "xarray")
    _check(results, inputs, outputs, grids)
    coords: dict[str, Any] = {"run": np.arange(len(results))}
    variables: dict[str, Any] = {}
    for name in inputs:
        variables[name] = ("run", np.array(results[name]))
    for name in outputs:
        field = np.array(results[name])
        if field.ndim == 1:
            variables[name] = ("run", field)
        elif name in grids:
            axis, values = grids[name]
            coords[axis] = np.asarray(values)
            variables[name] = (("run", axis), field)
        else:
            variables[name] = (("run", f"{name}_index"), field)
    for name in _bookkeeping(results):
        variables[name] = ("run", np.array(results[name]), {"description": _DESCRIPTIONS[name]})
    return xr.Dataset(variables, coords=coords)


def states_file(path: str | os.PathLike[str]) -> str:
    """The file beside a ``.txt`` export that has each run's state and reason: ``<stem>.states.csv``.

    Args:
        path: The ``.txt`` export.
    """
    return os.path.splitext(os.fspath(path))[0] + ".states.csv"


def _require(module: str, what: str, extra: str) -> Any:
    """Import ``module``, or a ConfigError: ``what`` needs it, and the pip extra that brings it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"{what} needs {module}: pip install 'profit-run[{extra}]'") from None


def _netcdf_engine(path: str) -> Literal["netcdf4", "h5netcdf", "scipy"]:
    """The xarray engine that writes ``path``: netCDF4 or h5netcdf (netCDF4 files), or scipy's netCDF3."""
    if importlib.util.find_spec("netCDF4") is not None:
        return "netcdf4"
    if importlib.util.find_spec("h5netcdf") is not None:
        return "h5netcdf"
    if importlib.util.find_spec("scipy") is not None:
        return "scipy"
    raise ConfigError(
        f"writing {path!r} needs a netCDF library for xarray (netCDF4, h5netcdf or scipy): "
        "pip install 'profit-run[netcdf]'"
    )


def _fit_netcdf3(dataset: xarray.Dataset, path: str) -> xarray.Dataset:
    """``dataset`` with integers that netCDF3 cannot hold (beyond 32 bits) as floats, when that is exact."""
    for name, variable in list(dataset.variables.items()):
        values = variable.values
        if values.dtype.kind not in "iu" or values.dtype.itemsize < 4 or not values.size:
            continue
        low, high = int(values.min()), int(values.max())
        if -(2**31) <= low and high < 2**31:
            continue  # xarray stores it as int32
        if max(-low, high) > 2**53:
            raise ConfigError(
                f"writing {path!r}: {name!r} has integers beyond 2**53, which scipy's netCDF3 cannot hold; "
                "pip install netCDF4 (netCDF4 files hold 64-bit integers), or write .hdf5, .parquet or .npy"
            )
        dataset[name] = variable.astype(np.float64)
    return dataset


def _check(results: np.ndarray, inputs: Sequence[str], outputs: Sequence[str], grids: Grids) -> list[str]:
    """The fields to write (inputs, then outputs); a ConfigError for a name or grid that does not fit."""
    if not isinstance(inputs, Sequence) or not isinstance(outputs, Sequence):
        raise ConfigError("inputs and outputs must be sequences of field names (lists or tuples)")
    if isinstance(inputs, str) or isinstance(outputs, str):
        raise ConfigError("inputs and outputs must be lists of field names, not one string")
    fields = results.dtype.names
    if fields is None or results.ndim != 1:
        raise ConfigError(f"the results must be a 1-D structured array (one row per run), not {results.dtype}")
    names = [*inputs, *outputs]
    if not names:
        raise ConfigError("nothing to write: name at least one input or output")
    for name in names:
        if name not in fields:
            raise ConfigError(f"{name!r} is not a field of the results; its fields are {', '.join(fields)}")
        if name in BOOKKEEPING:
            raise ConfigError(f"{name!r} is the runs' bookkeeping, not an input or output; it is always written")
        if len(results.dtype[name].shape) > 1:
            raise ConfigError(f"field {name!r} has the shape {results.dtype[name].shape}; a field is a scalar or 1-D")
    if len(set(names)) != len(names):
        raise ConfigError(f"a field is named twice among the inputs and outputs: {', '.join(names)}")
    axes: dict[str, np.ndarray] = {}
    for name, grid in grids.items():
        if name not in outputs:
            raise ConfigError(f"grids has {name!r}, which is not one of the outputs ({', '.join(outputs)})")
        try:
            axis, values = grid
        except (TypeError, ValueError):
            raise ConfigError(f"grids[{name!r}] must be (axis name, axis values), not {grid!r}") from None
        values = np.asarray(values)
        shape = results.dtype[name].shape
        if values.shape != shape or not shape:
            raise ConfigError(
                f"output {name!r} has {shape[0] if shape else 'a single'} value(s) per run but its grid "
                f"{axis!r} has the shape {values.shape}"
            )
        if axis in names or axis in BOOKKEEPING or axis == "run":
            raise ConfigError(f"the grid axis {axis!r} of output {name!r} has the name of a field; rename the axis")
        if axis in axes and not np.array_equal(axes[axis], values, equal_nan=values.dtype.kind == "f"):
            raise ConfigError(f"two outputs lie over a grid axis {axis!r} with different values; name them apart")
        axes[axis] = values
    return names


def _bookkeeping(results: np.ndarray) -> list[str]:
    """The bookkeeping fields that ``results`` has, in their order."""
    return [name for name in BOOKKEEPING if name in field_names(results.dtype)]


def _select(results: np.ndarray, names: list[str]) -> np.ndarray:
    """``results`` with only ``names`` as its fields, in that order (``results`` itself when that is all)."""
    if list(field_names(results.dtype)) == names:
        return results
    selected = np.empty(len(results), dtype=[(name, results.dtype[name]) for name in names])
    for name in names:
        selected[name] = results[name]
    return selected


def _csv_safe(text: str) -> str:
    """``text`` as a CSV cell that needs no quotes: one line, ``,`` as ``;``, ``"`` as ``'``."""
    return one_line(text).translate(_CSV_SAFE)


def _text_cells(values: np.ndarray) -> list[str]:
    """A column of strings as CSV cells (each distinct text made safe once)."""
    texts = values.astype(str).tolist()
    safe = {text: _csv_safe(text) for text in set(texts)}
    return list(map(safe.__getitem__, texts))


def _number_cells(values: np.ndarray) -> list[str]:
    """A 1-D column as CSV cells: integers as integers, other numbers as exact floats, strings made safe."""
    kind = values.dtype.kind
    if kind in "iub":
        return list(map(str, values.astype(np.int64 if kind == "b" else values.dtype).tolist()))
    if kind in "US":
        return _text_cells(values)
    return float_text(values)


def _write_csv(path: str, results: np.ndarray, names: list[str]) -> None:
    headers, table = [], []
    bookkeeping = _bookkeeping(results)
    for name in names + [name for name in bookkeeping if name not in _TEXT_FIELDS]:
        field = results[name]
        if field.ndim > 1:
            headers += [f"{name}_{index}" for index in range(field.shape[1])]
            table += [(field[:, index], _number_cells) for index in range(field.shape[1])]
        else:
            headers.append(name)
            table.append((field, _number_cells))
    for name in [name for name in bookkeeping if name in _TEXT_FIELDS]:
        headers.append(name)
        table.append((results[name], _text_cells))
    write_table(path, headers, table, len(results), ",")


def _export_txt(path: str, results: np.ndarray, names: list[str]) -> None:
    """proFit's ``.txt`` (as :func:`profit.datafiles.write`), then ``<stem>.states.csv`` beside it."""
    headers, table = columns(results, names)
    notes: list[str] = []
    fields = field_names(results.dtype)
    if "state" in fields:
        failed = np.flatnonzero(results["state"] == "failed")
        reasons = results["reason"][failed].tolist() if "reason" in fields else [""] * len(failed)
        notes = [f"run {run} failed: {reason}" for run, reason in zip(failed.tolist(), reasons)]
    with atomic_path(path, suffix=".txt") as temporary:
        write_table(temporary, headers, [(column, float_text) for column in table.T], len(table), " ", notes)
    _export_states(path, results)


def _export_states(path: str, results: np.ndarray) -> None:
    """``<stem>.states.csv`` beside a file whose layout has no room for them: each run's state and reason."""
    fields = field_names(results.dtype)
    text_fields = [name for name in _TEXT_FIELDS if name in fields]
    if text_fields:
        run_ids = np.arange(len(results))
        states = [(run_ids, _integer_cells)] + [(results[name], _text_cells) for name in text_fields]
        with atomic_path(states_file(path), suffix=".csv") as temporary:
            write_table(temporary, ["run", *text_fields], states, len(results), ",")


def _integer_cells(values: np.ndarray) -> list[str]:
    return list(map(str, values.tolist()))


def _write_hdf5(
    h5py: Any, path: str, results: np.ndarray, inputs: Sequence[str], outputs: Sequence[str], grids: Grids
) -> None:
    # Dense attribute storage (HDF5 1.8): an attribute of more than 64 KiB, the bookkeeping of many runs.
    with h5py.File(path, "w", libver=("v108", "latest")) as file:
        for name in [*inputs, *outputs]:
            values = results[name]
            file[name] = values.reshape(-1, 1) if values.ndim == 1 else values  # a scalar: (runs, 1)
        for name, (axis, values) in grids.items():
            if axis not in file:
                file[axis] = np.asarray(values)
                file[axis].make_scale(axis)
            file[name].dims[1].attach_scale(file[axis])
        # Attributes, not datasets: proFit's reader takes every dataset and group of the file for a variable.
        for name in _bookkeeping(results):
            if name in _TEXT_FIELDS:
                file.attrs.create(name, results[name].astype(str).astype(object), dtype=h5py.string_dtype())
            else:
                file.attrs[name] = results[name]
