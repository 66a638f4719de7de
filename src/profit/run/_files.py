"""File helpers: atomic replacement and the tail of a file."""

from __future__ import annotations

import os

TYPE_CHECKING = False  # (typing costs every worker process its import)
if TYPE_CHECKING:
    from typing import Protocol

    class _BinaryFile(Protocol):
        """An open binary file that can seek (what :func:`tail` reads)."""

        def seek(self, offset: int, whence: int = ..., /) -> int: ...
        def tell(self) -> int: ...
        def read(self) -> bytes: ...


class atomic_path:  # noqa: N801  (used like a function: with atomic_path(path) as temporary)
    """A temporary path beside ``path`` that replaces ``path`` when the ``with`` block succeeds.

    Readers see the old file or the new one, never a part; a failure leaves
    ``path`` as it was and removes the temporary file. ``permissions`` (e.g.
    ``0o600`` for a secret) is set before anything is written; by default the
    file gets an ordinary new file's mode (``0o666`` less the umask). A file
    that replaces another is a new file, so a process that has the old one open
    or mapped never writes into the new one. ``suffix`` ends the temporary name
    (writers that add their format's extension, like ``numpy.save``, need it).
    """

    def __init__(self, path: str, *, permissions: int | None = None, suffix: str = ".tmp"):
        self.path, self.permissions, self.suffix = path, permissions, suffix
        self.temporary = ""

    def __enter__(self) -> str:
        folder = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(folder, exist_ok=True)
        # Created here with its final mode (the umask applies as to any new file; touching the
        # process's umask would not be thread-safe); O_EXCL: a name nobody else holds.
        mode = 0o666 if self.permissions is None else self.permissions
        while True:
            name = f".{os.path.basename(self.path)}.{os.urandom(6).hex()}{self.suffix}"
            self.temporary = os.path.join(folder, name)
            try:
                fd = os.open(self.temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            except FileExistsError:
                continue
            os.close(fd)
            return self.temporary

    def __exit__(self, kind: object, error: object, traceback: object) -> None:
        if kind is None:
            os.replace(self.temporary, self.path)
        elif os.path.exists(self.temporary):
            os.remove(self.temporary)


def write_atomically(path: str, data: bytes | str, *, permissions: int | None = None) -> None:
    """Replace ``path`` with ``data`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path, permissions=permissions) as temporary:
        with open(temporary, "wb") as file:
            file.write(data.encode() if isinstance(data, str) else data)


def tail(
    source: str | os.PathLike[str] | _BinaryFile, lines: int = 1, *, max_bytes: int = 4096, separator: str = " | "
) -> str:
    """The non-empty lines among the last ``lines`` lines of a file (a path or an open binary file), stripped and
    joined with ``separator``; empty when there is no such file.

    Reads at most ``max_bytes`` from the end, so a huge log costs no more than a small one.
    """
    try:
        if isinstance(source, (str, os.PathLike)):
            with open(source, "rb") as opened:
                return tail(opened, lines, max_bytes=max_bytes, separator=separator)
        file = source
        file.seek(0, os.SEEK_END)
        file.seek(max(0, file.tell() - max_bytes))
        text = file.read().decode("utf-8", "replace")
    except OSError:
        return ""
    last = text.strip().splitlines()[-lines:]
    return separator.join(line.strip() for line in last if line.strip())
