"""Input and output files of a study: ``.txt``, ``.csv``, ``.npy`` and ``.hdf5``.

Written the way users' scripts already read them:

* ``.txt``: a ``# name ...`` header line, then one row per run, readable by
  ``numpy.genfromtxt(path, names=True)``; a vector variable ``g`` of length 3
  spreads over the columns ``g_0 g_1 g_2``;
* ``.csv``: the same, comma separated, with a plain header line;
* ``.npy``: a structured array (vector variables as sub-arrays);
* ``.hdf5``: one dataset per variable, as proFit 0.6 writes it (a scalar
  variable of shape ``(runs, 1)``, a vector one ``(runs, length)``).

Floats are written in their shortest exact form (``repr``), so they read back exactly.
Files are replaced atomically: a crash while writing never leaves half a file.
Runs that did not succeed have NaN outputs; their state and reason go into
the file where the format allows (``.hdf5``: attributes of the file, out of
the way of proFit's reader, which takes every dataset for a variable:
``state`` with one state per run and ``reason`` with a line per failed run; ``.txt``/``.csv``:
trailing comment lines, a note's line breaks turned into spaces so that it stays
one comment line). :mod:`profit.exports` writes a study's whole results table.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from .run._files import atomic_path
from .run.errors import ConfigError

FORMATS = (".txt", ".csv", ".npy", ".hdf5", ".h5", ".in", ".out", ".pkl")
# proFit's other names of formats: .in and .out are its text layout.
TEXT_ALIASES = {".in": ".txt", ".out": ".txt"}


def format_of(path: str) -> str:
    """The format a file name's extension names (``.in`` and ``.out`` are text as ``.txt``, as in proFit).

    Args:
        path: The file name.
    """
    extension = os.path.splitext(path)[1].lower()
    return TEXT_ALIASES.get(extension, extension)


def check_format(path: str, key: str, where: str) -> None:
    """Refuse a file name whose extension we cannot write, naming the key.

    Args:
        path: The file name.
        key: The key of ``files`` that gives it.
        where: The study file (starts the message).

    Raises:
        ConfigError: The extension is not one we can write.
    """
    if os.path.splitext(path)[1].lower() not in FORMATS:
        raise ConfigError(f"{where}: files.{key} is {path!r}; use one of the extensions {', '.join(FORMATS)}")


def field_names(dtype: np.dtype) -> tuple[str, ...]:
    """The field names of a structured dtype; TypeError for another dtype (it has no fields to iterate).

    Args:
        dtype: A structured dtype.

    Raises:
        TypeError: ``dtype`` is not structured.
    """
    names = dtype.names
    if names is None:
        raise TypeError(f"{dtype} is not a structured dtype")
    return names


def columns(array: np.ndarray, fields: Sequence[str] | None = None) -> tuple[list[str], np.ndarray]:
    """Column names and a 2-D float table of a structured array's ``fields`` (all by default; vector fields
    spread out: ``g`` of length 3 as ``g_0 g_1 g_2``).

    Args:
        array: A structured array.
        fields: Its fields to take (all by default).
    """
    names, parts = [], []
    for name in field_names(array.dtype) if fields is None else fields:
        field = array[name]
        if field.ndim > 1:
            names += [f"{name}_{index}" for index in range(field.shape[1])]
            parts.append(field.astype(float))
        else:
            names.append(name)
            parts.append(field.astype(float)[:, None])
    table = np.hstack(parts) if parts else np.zeros((len(array), 0))
    return names, table


def float_text(values: np.ndarray) -> list[str]:
    """Each value of a 1-D column as the ``repr`` of a float: its shortest exact form (``nan``, ``inf``).

    Formats the whole column in C (``tolist`` and ``map``): a column of 10**5 floats in a few tens of
    milliseconds, about 0.1 to 0.5 µs a value (full 17-digit floats are the slow ones).

    Args:
        values: A 1-D column.
    """
    return list(map(repr, values.astype(float, copy=False).tolist()))


def one_line(text: str) -> str:
    """``text`` on one line: its line breaks (any that ``str.splitlines`` knows) become spaces.

    Args:
        text: The text.
    """
    return " ".join(text.splitlines())


Column = tuple  # (values: a 1-D numpy array, format: values -> list of texts)
ROWS_AT_ONCE = 8192  # rows formatted per block: memory stays bounded however long the table


def write_table(
    path: str, names: Sequence[str], table: Sequence[Column], rows: int, delimiter: str, notes: Sequence[str] = ()
) -> None:
    """Write a text table to ``path``: the header line (``# `` first when ``delimiter`` is a space), then
    ``rows`` lines (each column a ``(values, format)`` pair, formatted a block of rows at a time), then a
    ``# note`` line for each of ``notes`` (line breaks in a note become spaces: it stays one comment line).

    Args:
        path: The file.
        names: The column names (the header line).
        table: The columns: ``(values, format)`` pairs.
        rows: The rows.
        delimiter: Between columns.
        notes: A ``# note`` line each.
    """
    header = delimiter.join(names)
    with open(path, "w", encoding="utf-8") as file:
        file.write(("# " + header if delimiter == " " else header) + "\n")
        for start in range(0, rows, ROWS_AT_ONCE):
            if table:
                cells = [form(values[start : start + ROWS_AT_ONCE]) for values, form in table]
                file.write("\n".join(map(delimiter.join, zip(*cells))) + "\n")
            else:
                file.write("\n" * min(ROWS_AT_ONCE, rows - start))
        file.writelines(f"# {one_line(note)}\n" for note in notes)


def write(path: str, array: np.ndarray, notes: Sequence[str] = (), states: Sequence[str] | None = None) -> None:
    """Write ``array`` to ``path`` atomically, in the format its extension names.

    Args:
        path: The file.
        array: A structured array.
        notes: Notes written into the file.
        states: The runs' states (written into an HDF5 file).
    """
    extension = format_of(path)
    h5py = import_h5py(path) if extension in (".hdf5", ".h5") else None
    with atomic_path(path, suffix=os.path.splitext(path)[1]) as temporary:
        if extension in (".txt", ".csv"):
            names, table = columns(array)
            delimiter = "," if extension == ".csv" else " "
            write_table(temporary, names, [(column, float_text) for column in table.T], len(table), delimiter, notes)
        elif extension == ".npy":
            np.save(temporary, array)
        elif extension == ".pkl":  # proFit's pickle of the structured array
            import pickle

            with open(temporary, "wb") as file:
                pickle.dump(np.array(array), file)
        else:
            _write_hdf5(h5py, temporary, array, notes, states)


def import_h5py(path: str) -> Any:
    """The h5py module; a :class:`ConfigError` naming ``path`` and the extra to install when it is missing.

    Args:
        path: The file to write (named in the message).

    Raises:
        ConfigError: h5py is missing.
    """
    try:
        import h5py  # type: ignore[import-untyped]  # (h5py has no type hints of its own)
    except ImportError:
        raise ConfigError(f"writing {path!r} needs h5py: pip install 'profit-run[hdf5]'") from None
    return h5py


def _write_hdf5(h5py: Any, path: str, array: np.ndarray, notes: Sequence[str], states: Sequence[str] | None) -> None:
    """One dataset per variable, in proFit 0.6's shapes (``(runs, 1)`` for a scalar, ``(runs, length)`` for a
    vector); the states and notes as attributes of the file (UTF-8 strings), where proFit's reader, which takes
    every dataset (or group) of the file for a variable, does not see them. Attributes larger than 64 KiB
    (many runs) need HDF5 1.8's dense attribute storage: the file is readable by HDF5 1.8 and later."""
    with h5py.File(path, "w", libver=("v108", "latest")) as file:
        for name in field_names(array.dtype):
            values = array[name]
            file[name] = values.reshape(-1, 1) if values.ndim == 1 else values
        if states is not None:
            file.attrs.create("state", np.array(list(states), dtype=object), dtype=h5py.string_dtype())
        if notes:
            file.attrs.create("reason", np.array(list(notes), dtype=object), dtype=h5py.string_dtype())
