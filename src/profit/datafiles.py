"""Input and output files of a study: ``.txt``, ``.csv``, ``.npy`` and ``.hdf5``.

Written the way users' scripts already read them:

* ``.txt``: a ``# name ...`` header line, then one row per run, readable by
  ``numpy.genfromtxt(path, names=True)``; a vector variable ``g`` of length 3
  spreads over the columns ``g_0 g_1 g_2``;
* ``.csv``: the same, comma separated, with a plain header line;
* ``.npy``: a structured array (vector variables as sub-arrays);
* ``.hdf5``: one dataset per variable.

Floats are written in their shortest exact form (``repr``), so they read back exactly.
Files are replaced atomically: a crash while writing never leaves half a file.
Runs that did not succeed have NaN outputs; their state and reason go into
the file where the format allows (``.hdf5``: a dataset ``_state`` with one
state per run and ``_reason`` with a line per failed run; ``.txt``/``.csv``:
trailing comment lines).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from .run._files import atomic_path
from .run.errors import ConfigError

FORMATS = (".txt", ".csv", ".npy", ".hdf5", ".h5")


def check_format(path: str, key: str, where: str) -> None:
    """Refuse a file name whose extension we cannot write, naming the key."""
    if os.path.splitext(path)[1].lower() not in FORMATS:
        raise ConfigError(f"{where}: files.{key} is {path!r}; use one of the extensions {', '.join(FORMATS)}")


def field_names(dtype: np.dtype) -> tuple[str, ...]:
    """The field names of a structured dtype; TypeError for another dtype (it has no fields to iterate)."""
    names = dtype.names
    if names is None:
        raise TypeError(f"{dtype} is not a structured dtype")
    return names


def columns(array: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Column names and a 2-D table of a structured array (vector fields spread out)."""
    names, parts = [], []
    for name in field_names(array.dtype):
        field = array[name]
        if field.ndim > 1:
            names += [f"{name}_{index}" for index in range(field.shape[1])]
            parts.append(field.astype(float))
        else:
            names.append(name)
            parts.append(field.astype(float)[:, None])
    table = np.hstack(parts) if parts else np.zeros((len(array), 0))
    return names, table


def write(path: str, array: np.ndarray, notes: Sequence[str] = (), states: Sequence[str] | None = None) -> None:
    """Write ``array`` to ``path`` atomically, in the format its extension names."""
    extension = os.path.splitext(path)[1].lower()
    with atomic_path(path, suffix=extension) as temporary:
        if extension in (".txt", ".csv"):
            _write_text(temporary, array, notes, delimiter="," if extension == ".csv" else " ")
        elif extension == ".npy":
            np.save(temporary, array)
        else:
            _write_hdf5(temporary, array, notes, states)


def _write_text(path: str, array: np.ndarray, notes: Sequence[str], delimiter: str) -> None:
    names, table = columns(array)
    header = delimiter.join(names)
    with open(path, "w") as file:
        file.write(("# " + header if delimiter == " " else header) + "\n")
        for row in table:
            file.write(delimiter.join(repr(float(value)) if value == value else "nan" for value in row) + "\n")
        for note in notes:
            file.write(f"# {note}\n")


def _write_hdf5(path: str, array: np.ndarray, notes: Sequence[str], states: Sequence[str] | None) -> None:
    try:
        import h5py  # type: ignore[import-untyped]  # (h5py has no type hints of its own)
    except ImportError:
        raise ConfigError(f"writing {path!r} needs h5py: pip install 'profit-run[hdf5]'") from None
    with h5py.File(path, "w") as file:
        for name in field_names(array.dtype):
            file[name] = array[name]
        if states is not None:
            file["_state"] = np.array(states, dtype="S")
        if notes:
            file["_reason"] = np.array(list(notes), dtype=h5py.string_dtype())
