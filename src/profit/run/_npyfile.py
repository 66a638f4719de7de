"""A ``.npy`` file holding a 1-D structured array that can grow in place.

The file is always a valid ``.npy`` file (``numpy.load`` reads it). numpy writes
array headers with room for a 21-digit length, so growing the array only
extends the file and rewrites the header *in place*: bytes that already exist
never move, so a process that has part of the file mapped keeps a valid
mapping, and no result is ever copied or lost (no delete-and-recreate).
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.lib import format as npy_format

from .errors import InterfaceError

# A header rewrite can race with a worker reading it; re-reading gives a whole copy.
_HEADER_READ_ATTEMPTS = 3


@dataclass(frozen=True)
class NpyLayout:
    """Where the rows of a structured ``.npy`` file are: dtype, row count, data offset."""

    dtype: np.dtype
    size: int
    offset: int


def _header_bytes(dtype: np.dtype, size: int) -> bytes:
    header = {"descr": npy_format.dtype_to_descr(dtype), "fortran_order": False, "shape": (size,)}
    buffer = io.BytesIO()
    try:
        npy_format.write_array_header_1_0(buffer, header)
    except ValueError:  # header too long for format 1.0 (thousands of fields)
        buffer = io.BytesIO()
        npy_format.write_array_header_2_0(buffer, header)
    return buffer.getvalue()


def create(path: str, dtype: np.dtype, size: int) -> NpyLayout:
    """Create (or replace) ``path`` with ``size`` zeroed rows of ``dtype``."""
    header = _header_bytes(dtype, size)
    with open(path, "wb") as file:
        file.write(header)
        file.truncate(len(header) + size * dtype.itemsize)  # sparse zeros, no copy
    return NpyLayout(dtype, size, len(header))


def read_layout(path: str) -> NpyLayout:
    """Read the header of ``path``; raise :class:`InterfaceError` if it is not usable."""
    last_error: Exception | None = None
    for _ in range(_HEADER_READ_ATTEMPTS):
        try:
            with open(path, "rb") as file:
                version = npy_format.read_magic(file)
                if version == (1, 0):
                    shape, fortran_order, dtype = npy_format.read_array_header_1_0(file)
                else:
                    shape, fortran_order, dtype = npy_format.read_array_header_2_0(file)
                offset = file.tell()
        except FileNotFoundError:
            raise InterfaceError(
                f"interface file {os.path.abspath(path)} does not exist; start the worker in the "
                "runner's work directory or give the interface the runner's path"
            ) from None
        except (ValueError, SyntaxError, EOFError, OSError) as error:
            last_error = error
            continue
        if fortran_order or len(shape) != 1 or dtype.names is None:
            raise InterfaceError(
                f"interface file {os.path.abspath(path)} holds a {shape}-shaped {dtype} array; "
                "expected a 1-D structured array written by the memmap interface"
            )
        return NpyLayout(dtype, shape[0], offset)
    raise InterfaceError(
        f"interface file {os.path.abspath(path)} is corrupt ({last_error}); "
        "it must be the .npy file written by the runner's memmap interface"
    )


def rows_on_disk(path: str, layout: NpyLayout) -> int:
    """How many whole rows the file holds now (may exceed the header during growth)."""
    return (os.stat(path).st_size - layout.offset) // layout.dtype.itemsize


def grow(
    path: str, layout: NpyLayout, size: int, initialize: Callable[[np.memmap], None] | None = None
) -> NpyLayout:
    """Extend the file to ``size`` rows, then record the new length in the header.

    The data is extended (and the new rows given to ``initialize``) first, so the
    header never claims rows that the file lacks or that are not ready.
    """
    header = _header_bytes(layout.dtype, size)
    if len(header) != layout.offset:
        raise InterfaceError(
            f"cannot grow interface file {path} in place: its header would change length "
            f"({layout.offset} -> {len(header)} bytes); numpy>=1.24 writes headers with room to grow"
        )
    with open(path, "r+b") as file:
        file.truncate(layout.offset + size * layout.dtype.itemsize)
        if initialize is not None:
            initialize(map_rows(path, layout, layout.size, size - layout.size))
        file.seek(0)
        file.write(header)
    return NpyLayout(layout.dtype, size, layout.offset)


def map_rows(path: str, layout: NpyLayout, start: int = 0, count: int | None = None) -> np.memmap:
    """Map rows ``start .. start+count`` of the file for reading and writing."""
    count = layout.size - start if count is None else count
    return np.memmap(
        path, dtype=layout.dtype, mode="r+", offset=layout.offset + start * layout.dtype.itemsize, shape=(count,)
    )
