"""A ``.npy`` file holding a 1-D structured array that can grow in place.

The file is always a valid ``.npy`` file (``numpy.load`` reads it). numpy writes
array headers with room for a 21-digit length, so growing the array only
extends the file and rewrites the header *in place*: bytes that already exist
never move, so a process that has part of the file mapped keeps a valid
mapping, and no result is ever copied or lost (no delete-and-recreate).
"""

from __future__ import annotations

import io
import mmap
import os
import struct
from _operator import itemgetter  # (operator's C half: operator.py costs a worker's start 0.3 ms)

from ._files import atomic_path
from ._jsonscan import loads as json_loads
from ._lazy import numpy as np
from .errors import InterfaceError

TYPE_CHECKING = False  # (typing costs every worker process its import)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

_MAGIC = b"\x93NUMPY"

# A header rewrite can race with a worker reading it; re-reading gives a whole copy.
_HEADER_READ_ATTEMPTS = 3


class NpyHeader(tuple):
    """What a header says, read without numpy: ``(descr, size, offset)``, the dtype's ``descr``,
    the rows and the data offset. (A tuple with named fields, as ``collections.namedtuple``
    makes, without importing ``collections``: see :class:`._record.Field`.)"""

    __slots__ = ()
    descr: Any = property(itemgetter(0))
    size: int = property(itemgetter(1))  # type: ignore[assignment]
    offset: int = property(itemgetter(2))  # type: ignore[assignment]

    def __new__(cls, descr: object, size: int, offset: int) -> NpyHeader:
        return tuple.__new__(cls, (descr, size, offset))

    def __repr__(self) -> str:
        return f"NpyHeader(descr={self.descr!r}, size={self.size!r}, offset={self.offset!r})"


class NpyLayout(tuple):
    """The same for the runner side, with the numpy dtype: ``(dtype, size, offset)``."""

    __slots__ = ()
    dtype: np.dtype = property(itemgetter(0))  # type: ignore[assignment]
    size: int = property(itemgetter(1))  # type: ignore[assignment]
    offset: int = property(itemgetter(2))  # type: ignore[assignment]

    def __new__(cls, dtype: np.dtype, size: int, offset: int) -> NpyLayout:
        return tuple.__new__(cls, (dtype, size, offset))

    def __repr__(self) -> str:
        return f"NpyLayout(dtype={self.dtype!r}, size={self.size!r}, offset={self.offset!r})"


def _header_bytes(dtype: np.dtype, size: int) -> bytes:
    npy_format = np.lib.format
    header = {"descr": npy_format.dtype_to_descr(dtype), "fortran_order": False, "shape": (size,)}
    buffer = io.BytesIO()
    try:
        npy_format.write_array_header_1_0(buffer, header)
    except UnicodeEncodeError:  # names beyond Latin-1 (λ): format 3.0 holds UTF-8
        return _header_utf8(header)
    except ValueError:  # header too long for format 1.0 (thousands of fields)
        buffer = io.BytesIO()
        npy_format.write_array_header_2_0(buffer, header)
    return buffer.getvalue()


def _header_utf8(header: dict) -> bytes:
    """A format 3.0 header (UTF-8), laid out as numpy lays out its headers: the entries in order, room
    for the row count to grow to 21 digits (so the header never changes length), 64-byte aligned."""
    text = "{" + "".join(f"{key!r}: {header[key]!r}, " for key in sorted(header)) + "}"
    text += " " * (21 - len(repr(header["shape"][0])))
    encoded = text.encode("utf-8")
    padding = 64 - (len(_MAGIC) + 2 + 4 + len(encoded) + 1) % 64
    encoded += b" " * (padding % 64) + b"\n"
    return _MAGIC + bytes([3, 0]) + struct.pack("<I", len(encoded)) + encoded


def _reserve(file, length: int, start: int = 0) -> None:
    """Extend ``file`` to ``length`` bytes of zeros, with the disk space from ``start`` on reserved.

    A sparse file would fail later, when a mapped page is first written on a
    full disk, with SIGBUS; reserving the space makes that an OSError here.
    Bytes before ``start`` (rows that workers may be writing) are not touched.
    """
    file.flush()
    if hasattr(os, "posix_fallocate"):
        os.posix_fallocate(file.fileno(), start, length - start)
    else:
        file.truncate(length)


def create(path: str, dtype: np.dtype, size: int) -> NpyLayout:
    """Create (or replace) ``path`` with ``size`` zeroed rows of ``dtype``.

    A replaced file is a new file (written aside, then renamed): a worker left
    over from an earlier runner that still has the old one mapped writes there,
    never into the new runner's rows.
    """
    header = _header_bytes(dtype, size)
    with atomic_path(path) as temporary, open(temporary, "wb") as file:
        file.write(header)
        _reserve(file, len(header) + size * dtype.itemsize)
    return NpyLayout(dtype, size, len(header))


# numpy writes the header as a Python literal of strings, booleans, integers,
# tuples and lists; those map onto JSON one to one. Parsing it as JSON spares
# every worker process the import of `ast` (slow here), and json's C scanner
# (_jsonscan) that of json and re; anything unusual falls back to ast.literal_eval.
_TO_JSON = str.maketrans({"'": '"', "(": "[", ")": "]"})


def _without_trailing_commas(text: str) -> str:
    """``text`` without each comma (and the whitespace after it) that a closing bracket or brace follows."""
    parts = text.split(",")
    kept = [parts[0]]
    for part in parts[1:]:
        rest = part.lstrip()
        kept.append(rest if rest[:1] in ("]", "}") else "," + part)
    return "".join(kept)


def _literal(text: str) -> object:
    if '"' not in text and "\\" not in text:
        candidate = _without_trailing_commas(text.translate(_TO_JSON))
        candidate = candidate.replace("False", "false").replace("True", "true")
        try:
            return json_loads(candidate)
        except ValueError:  # (json.JSONDecodeError)
            pass
    import ast

    return ast.literal_eval(text)


def _parse_header(path: str) -> dict:
    with open(path, "rb") as file:
        start = file.read(12)
        if len(start) < 10 or not start.startswith(_MAGIC):
            raise ValueError("no .npy magic string at the start")
        major = start[6]
        if major == 1:
            (length,), begin = struct.unpack("<H", start[8:10]), 10
        elif major in (2, 3):
            (length,), begin = struct.unpack("<I", start[8:12]), 12
        else:
            raise ValueError(f"unknown .npy format version {major}")
        file.seek(begin)
        text = file.read(length)
    if len(text) < length:
        raise ValueError("the header is cut short")
    header = _literal(text.decode("utf-8" if major == 3 else "latin1"))
    if not isinstance(header, dict) or not {"descr", "fortran_order", "shape"} <= header.keys():
        raise ValueError("the header is not a dict with descr, fortran_order and shape")
    header["offset"] = begin + length
    return header


def read_header(path: str, what: str = "interface file", writer: str = "the runner's memmap interface") -> NpyHeader:
    """Read the header of ``path`` (without numpy); raise :class:`InterfaceError` if it is unusable.

    ``what`` names the file and ``writer`` what should have written it, in messages.
    """
    last_error: Exception | None = None
    for _ in range(_HEADER_READ_ATTEMPTS):
        try:
            header = _parse_header(path)
        except FileNotFoundError:
            raise InterfaceError(
                f"{what} {os.path.abspath(path)} does not exist; start the worker in the "
                "runner's work directory or give the interface the runner's path"
                if what == "interface file"
                else f"{what} {os.path.abspath(path)} does not exist"
            ) from None
        except (ValueError, SyntaxError, TypeError, MemoryError, OSError) as error:
            last_error = error
            continue
        shape, descr = header["shape"], header["descr"]
        shape = tuple(shape) if isinstance(shape, list) else shape
        one_dimensional = isinstance(shape, tuple) and len(shape) == 1 and isinstance(shape[0], int)
        if not one_dimensional or not isinstance(descr, list) or header["fortran_order"]:
            raise InterfaceError(
                f"{what} {os.path.abspath(path)} holds a {shape}-shaped array of {descr!r}; "
                f"expected a 1-D structured array written by {writer}"
            )
        return NpyHeader(descr, shape[0], header["offset"])
    raise InterfaceError(
        f"{what} {os.path.abspath(path)} is corrupt ({last_error}); it must be the .npy file written by {writer}"
    )


def read_layout(path: str, what: str = "interface file", writer: str = "the runner's memmap interface") -> NpyLayout:
    """Read the header of ``path`` with its numpy dtype (for the runner side)."""
    header = read_header(path, what, writer)
    return NpyLayout(np.lib.format.descr_to_dtype(header.descr), header.size, header.offset)


def map_row(path: str, offset: int, itemsize: int, row: int) -> memoryview:
    """Map row ``row`` alone (shared, writable) and return its bytes; no numpy needed."""
    start = offset + row * itemsize
    base = start - start % mmap.ALLOCATIONGRANULARITY
    with open(path, "r+b") as file:
        mapping = mmap.mmap(file.fileno(), start - base + itemsize, offset=base)
    # The view keeps the mapping alive; the file may be closed.
    return memoryview(mapping)[start - base : start - base + itemsize]


def data_rows(path: str, offset: int, itemsize: int) -> int:
    """How many whole rows the file holds now (may exceed the header during growth)."""
    return (os.stat(path).st_size - offset) // itemsize


def grow(path: str, layout: NpyLayout, size: int, initialize: Callable[[np.memmap], None] | None = None) -> NpyLayout:
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
        _reserve(
            file, layout.offset + size * layout.dtype.itemsize, layout.offset + layout.size * layout.dtype.itemsize
        )
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
