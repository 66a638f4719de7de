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
    The temporary name holds the writer's pid (:func:`temporary_name`), so that
    one left by a killed writer can be told from a live writer's and removed
    (:func:`remove_stale_temporaries`).
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
            name = temporary_name(os.path.basename(self.path), self.suffix)
            self.temporary = os.path.join(folder, name)
            try:
                fd = os.open(self.temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            except FileExistsError:
                continue
            os.close(fd)
            return self.temporary

    def __exit__(self, kind: object, error: object, traceback: object) -> None:
        if kind is None:
            try:
                os.replace(self.temporary, self.path)
            except OSError as failure:  # (the path is a directory, say): no temporary file stays behind
                os.remove(self.temporary)
                raise OSError(failure.errno, failure.strerror or str(failure), self.path) from None
            return
        if os.path.exists(self.temporary):
            os.remove(self.temporary)
        if isinstance(error, OSError) and not error.filename:  # a full disk: say which file it was about
            raise OSError(error.errno, error.strerror or str(error), self.path) from None


# ".<name>.tmp-<pid>-<12 hex digits><suffix>": the writer's pid, then a random part.
_TEMPORARY = r"\..+\.tmp-(\d+)-[0-9a-f]{12}(\.[^.]*)?"


def temporary_name(name: str, suffix: str = ".tmp") -> str:
    """A fresh temporary name for a file that replaces ``name``: ``.<name>.tmp-<pid>-<random><suffix>``."""
    return f".{name}.tmp-{os.getpid()}-{os.urandom(6).hex()}{suffix}"


def remove_stale_temporaries(directory: str) -> list[str]:
    """Remove the temporary files in ``directory`` whose writer is gone (killed mid-write); their names.

    A file whose writer's pid is alive stays: that writer may be writing it (or the
    pid was reused; the file is then removed once that process is gone too).
    """
    import re  # (here: every worker process imports this module)

    try:
        entries = os.listdir(directory)
    except OSError:
        return []
    removed = []
    for entry in entries:
        match = re.fullmatch(_TEMPORARY, entry)
        if match is None or _process_exists(int(match.group(1))):
            continue
        path = os.path.join(directory, entry)
        try:
            if os.path.isfile(path) and not os.path.islink(path):
                os.remove(path)
                removed.append(entry)
        except OSError:
            pass
    return sorted(removed)


def _process_exists(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # somebody else's
    return True


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
