"""Tables of parameter sets given by users: ``profit run --inputs FILE``, ``Study.extend(table)``,
``Study.create(inputs=table)``. One job: turn what a user hands over into a structured array,
or say in one sentence why it cannot be one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from .run.errors import ConfigError


def table_of(source: object, where: str) -> np.ndarray:
    """A structured array from a structured array, a pandas DataFrame or a mapping of columns.

    Args:
        source: The parameter sets.
        where: Where they come from (starts the error message).

    Raises:
        ConfigError: ``source`` is none of these, or its columns differ in length.
    """
    if isinstance(source, np.ndarray) and source.dtype.names:
        return source
    if hasattr(source, "to_records") and hasattr(source, "columns"):  # a pandas DataFrame
        return source.to_records(index=False)
    if isinstance(source, Mapping):
        try:
            columns = {str(name): np.asarray(values) for name, values in source.items()}
            lengths = {len(column) for column in columns.values()}
        except TypeError:
            raise ConfigError(f"{where}: a mapping of columns needs a sequence of values per name") from None
        if len(lengths) > 1:
            raise ConfigError(f"{where}: the columns have different lengths ({sorted(lengths)})")
        length = lengths.pop() if lengths else 0
        table = np.zeros(length, [(name, column.dtype) for name, column in columns.items()])
        for name, column in columns.items():
            table[name] = column
        return table
    raise ConfigError(
        f"{where}: give a structured numpy array, a pandas DataFrame, a mapping of columns or a file name, "
        f"not {type(source).__name__}"
    )


def read_table(path: str) -> np.ndarray:
    """Parameter sets from a ``.csv`` (a header line of names), ``.txt`` (``# names`` header) or ``.npy`` file.

    Args:
        path: The file.

    Raises:
        ConfigError: The file does not exist, has another extension, cannot be read as a table of
            numbers or names no columns.
    """
    where = f"the table {path}"
    extension = os.path.splitext(path)[1].lower()
    if not os.path.isfile(path):
        raise ConfigError(f"{where} does not exist; give a .csv, .txt or .npy file of parameter sets")
    try:
        if extension == ".npy":
            table = np.atleast_1d(np.load(path, allow_pickle=False))
        elif extension in (".csv", ".txt", ".in"):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("error")  # numpy only warns about rows of the wrong length
                table = np.genfromtxt(
                    path,
                    names=True,
                    delimiter="," if extension == ".csv" else None,
                    deletechars="",
                    ndmin=1,
                    encoding="utf-8-sig",  # (a spreadsheet's byte order mark is not part of the first name)
                )
        else:
            raise ConfigError(f"{where}: use a .csv, .txt (or proFit's .in) or .npy file of parameter sets")
    except (ValueError, OSError, UserWarning) as error:
        raise ConfigError(f"{where} cannot be read as a table of numbers ({str(error).splitlines()[0]})") from None
    if table.dtype.names is None:
        raise ConfigError(f"{where} has no column names; its first line must name the inputs")
    return table
