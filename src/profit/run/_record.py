"""One row of a structured array, read and written without numpy.

A Worker needs one record of inputs and one of outputs. Importing numpy costs
a worker process more than everything else it does for a trivial run (about
60 ms against 10 ms for Python itself), so the worker side of the memmap
interface reads and writes its row through :mod:`struct` instead. The layout
comes from the ``descr`` of a ``.npy`` header (numpy's documented format).

Values come back as Python ``float``/``int``/``bool``; a vector field comes back
as a writable ``memoryview`` of its elements (``numpy.asarray`` takes it as is).
"""

from __future__ import annotations

import struct
import sys
from _operator import itemgetter  # (operator's C half: operator.py costs a worker's start 0.3 ms)

TYPE_CHECKING = False  # (typing costs every worker process its import)
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from typing import Any

_NATIVE = "<" if sys.byteorder == "little" else ">"
_FORMATS = {  # numpy kind + item size -> struct format character
    ("f", 4): "f",
    ("f", 8): "d",
    ("i", 1): "b",
    ("i", 2): "h",
    ("i", 4): "i",
    ("i", 8): "q",
    ("u", 1): "B",
    ("u", 2): "H",
    ("u", 4): "I",
    ("u", 8): "Q",
    ("b", 1): "?",
}


class Field(tuple):
    """Where one field lives in a row and how to read it: ``(name, offset, code, count, kind)``.

    ``code`` is the struct format of one element (e.g. ``"<d"``), ``count`` the
    number of elements (1 for scalars), ``kind`` numpy's kind letter (f, i, u, b, S).
    (A tuple with named fields, as ``collections.namedtuple`` makes, without importing
    ``collections``: that costs a worker process started per run a millisecond or two.)
    """

    __slots__ = ()
    name: str = property(itemgetter(0))  # type: ignore[assignment]
    offset: int = property(itemgetter(1))  # type: ignore[assignment]
    code: Any = property(itemgetter(2))
    count: int = property(itemgetter(3))  # type: ignore[assignment]
    kind: str = property(itemgetter(4))  # type: ignore[assignment]

    def __new__(cls, name: str, offset: int, code: str, count: int, kind: str) -> Field:
        return tuple.__new__(cls, (name, offset, code, count, kind))

    def __repr__(self) -> str:
        return "Field(name={!r}, offset={!r}, code={!r}, count={!r}, kind={!r})".format(*self)

    @property
    def size(self) -> int:
        return struct.calcsize(self.code) * self.count

    def describe(self) -> str:
        what = {"f": "float", "i": "integer", "u": "unsigned integer", "b": "bool", "S": "bytes"}[self.kind]
        return f"a vector of {self.count} {what}s" if self.count > 1 else f"a {what}"


def parse_descr(descr: object) -> tuple[list[Field], int]:
    """Turn a ``.npy`` ``descr`` of a packed structured dtype into fields and the row size.

    Raises ValueError for layouts a Worker cannot use (nested fields, objects...).
    """
    if not isinstance(descr, list):
        raise ValueError(f"not a structured array (descr {descr!r})")
    fields, offset = [], 0
    for entry in descr:
        name, typestr = entry[0], entry[1]
        shape = entry[2] if len(entry) > 2 else ()
        if not isinstance(typestr, str) or len(typestr) < 3:
            raise ValueError(f"field {name!r} has an unsupported type {typestr!r}")
        order, kind, size = typestr[0], typestr[1], int(typestr[2:])
        count = 1
        for extent in shape:
            count *= extent
        if kind == "S" or kind == "V":
            code = f"{size}s"
        elif (kind, size) in _FORMATS:
            code = ("<" if order in "<|" else ">") + _FORMATS[kind, size]
        else:
            raise ValueError(f"field {name!r} has an unsupported type {typestr!r}")
        field = Field(name, offset, code if code[0] in "<>" else "<" + code, count, kind)
        if name:  # unnamed entries are padding
            fields.append(field)
        offset += field.size
    return fields, offset


class _Names:
    """Stands in for ``record.dtype`` where code asks for ``.names`` or ``.fields``."""

    def __init__(self, record: StructRecord):
        self.names = tuple(record._fields)
        self.fields = {name: (field.describe(), field.offset) for name, field in record._fields.items()}


class StructRecord:
    """A mutable record of some fields of one row in a writable buffer.

    Supports ``record[name]``, ``record[name] = value``, ``len``, iteration over
    values, ``keys()`` and ``record.dtype.names`` (like a numpy record).
    """

    __slots__ = ("_buffer", "_fields")

    def __init__(self, buffer: memoryview, fields: Iterable[Field]):
        self._buffer = buffer
        self._fields = {field.name: field for field in fields}

    @property
    def dtype(self) -> _Names:
        return _Names(self)

    def keys(self) -> list[str]:
        return list(self._fields)

    def _field(self, name: str) -> Field:
        try:
            return self._fields[name]
        except KeyError:
            raise KeyError(f"no field {name!r}; fields: {', '.join(self._fields) or 'none'}") from None

    def __getitem__(self, name: str) -> object:
        field = self._field(name)
        if field.count > 1:
            if field.code[0] == _NATIVE:  # a writable view of the elements
                return self._buffer[field.offset : field.offset + field.size].cast(field.code[1:])
            return struct.unpack_from(f"{field.code[0]}{field.count}{field.code[1:]}", self._buffer, field.offset)
        (value,) = struct.unpack_from(field.code, self._buffer, field.offset)
        return value

    def __setitem__(self, name: str, value: object) -> None:
        field = self._field(name)
        try:
            self._pack(field, value)
        except (struct.error, TypeError) as error:
            raise TypeError(f"{name!r} takes {field.describe()}, got {value!r} ({error})") from None

    def _pack(self, field: Field, value: Any) -> None:
        # value: anything a user assigns; what does not fit raises TypeError or ValueError here
        name = field.name
        if field.count > 1:
            values = value.tolist() if hasattr(value, "tolist") else list(value)
            if len(values) == 1 and isinstance(values[0], (list, tuple)):
                values = list(values[0])  # a (1, n) array, the shape of the output's "size"
            if len(values) != field.count:
                raise ValueError(f"{name!r} takes {field.count} values, got {len(values)}")
            struct.pack_into(f"{field.code[0]}{field.count}{field.code[1:]}", self._buffer, field.offset, *values)
        elif field.kind == "S":
            struct.pack_into(field.code, self._buffer, field.offset, bytes(value))
        else:
            struct.pack_into(field.code, self._buffer, field.offset, _scalar(value, field))

    def __len__(self) -> int:
        return len(self._fields)

    def __iter__(self) -> Iterator[object]:
        return (self[name] for name in self._fields)

    def __repr__(self) -> str:
        values = ", ".join(f"{name}={self[name]!r}" for name in self._fields if self._fields[name].count == 1)
        return f"<record {values}>"


def _scalar(value: Any, field: Field) -> object:
    """Convert a value for a scalar field the way numpy would, refusing nonsense.

    ``value`` may be anything; float() and int() raise TypeError or ValueError for what does not fit.
    """
    if hasattr(value, "item") and getattr(value, "shape", ()) in ((), (1,), (1, 1)):
        value = value.item() if getattr(value, "size", 1) == 1 else value
    if field.kind == "f":
        return float(value)
    if field.kind == "b":
        return bool(value)
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"{value!r} is not a whole number")
    return int(value)
