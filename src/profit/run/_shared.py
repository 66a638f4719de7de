"""Rows shared with the workers a runner forks: an anonymous file, mapped ``MAP_SHARED``.

An interface whose workers otherwise talk over a socket (zeromq) keeps its rows
here, so that a worker forked from the runner (a fork per run, or a pool worker
serving many runs) reads its inputs from and writes its outputs into its row
directly, as a memmap worker does: no socket, no message, no signature.

The file is a memfd where the system has one (an unlinked temporary file
elsewhere), created close-on-exec: programs the runner starts never inherit it.
It grows in place (``ftruncate``), so rows never move; a pool worker forked
before the file grew maps it again, through the descriptor it inherited, to
reach the new rows. A small control block before the rows says when the runner
stopped using the file (its rows moved into a study's table): a worker forked
before that must not write here, and asks the runner over the socket instead.
"""

from __future__ import annotations

import mmap
import os

from ._lazy import numpy as np

TYPE_CHECKING = False  # (typing costs every worker process its import)
if TYPE_CHECKING:
    import numpy

# Bytes before the first row: the control block (its first byte: the rows moved away).
_CONTROL = 64
_MOVED = 1
ROWS_OFFSET = _CONTROL  # where the rows begin in the file (for a process that opens it anew)


def _anonymous_file() -> int:
    """A descriptor of a new, empty file that no other process can open (close-on-exec)."""
    if hasattr(os, "memfd_create"):
        try:
            return os.memfd_create("profit-interface-rows", os.MFD_CLOEXEC)
        except OSError:  # (memfd disabled, e.g. by a seccomp filter): a temporary file
            pass
    import tempfile

    fd, path = tempfile.mkstemp(prefix="profit-interface-rows-")  # (not inheritable by programs)
    os.unlink(path)
    return fd


class SharedRows:
    """A growable array of rows in an anonymous file that forked processes share.

    The runner creates it and calls :meth:`rows` to get (more) rows; a process
    forked from the runner calls :meth:`reach` for rows the runner may have
    added after the fork, and :meth:`moved` to learn whether the runner still
    uses the file.

    Args:
        dtype: The rows' numpy dtype.
    """

    def __init__(self, dtype: numpy.dtype):
        self.dtype = dtype
        self.itemsize = dtype.itemsize
        fd = _anonymous_file()
        self.fd: int | None = fd
        self._length = 0
        self._extend(_CONTROL)
        # The control block, mapped for good (also in every fork: a shared mapping).
        self._control = mmap.mmap(fd, _CONTROL)

    def _extend(self, length: int) -> None:
        """Make the file ``length`` bytes long (never shorter), the new bytes zero."""
        if length <= self._length or self.fd is None:
            return
        try:  # reserved now: running out of memory is an error here, not a SIGBUS in a worker
            os.posix_fallocate(self.fd, self._length, length - self._length)
        except (AttributeError, OSError):
            os.ftruncate(self.fd, length)
        self._length = length

    def _map(self, size: int) -> numpy.ndarray:
        """The first ``size`` rows, mapped shared (the file holds them)."""
        if size == 0 or self.fd is None:  # (None: closed, when the runner is done)
            return np.zeros(size, self.dtype)
        mapping = mmap.mmap(self.fd, _CONTROL + size * self.itemsize)  # (the array keeps it alive)
        return np.frombuffer(mapping, self.dtype, count=size, offset=_CONTROL)

    def rows(self, size: int) -> numpy.ndarray:
        """In the runner: the first ``size`` rows, the file grown to hold them; new rows are zero.

        Args:
            size: The rows.

        Returns:
            A writable array mapping them.
        """
        self._extend(_CONTROL + size * self.itemsize)
        return self._map(size)

    def reach(self, row: int) -> numpy.ndarray | None:
        """In a forked process: every row the file holds now, if it holds ``row`` (else None).

        Args:
            row: The row that is needed.

        Returns:
            A writable array mapping the rows, or None (the runner has not grown the file
            that far, or stopped using it).
        """
        if self.fd is None or self.moved():
            return None
        size = (os.fstat(self.fd).st_size - _CONTROL) // self.itemsize
        return self._map(size) if 0 <= row < size else None

    def moved(self) -> bool:
        """Whether the runner stopped using these rows (see :meth:`abandon`).

        Returns:
            True once :meth:`abandon` was called, in any process.
        """
        return self._control[0] == _MOVED

    def abandon(self) -> None:
        """In the runner: its rows live elsewhere from now on; forked workers must not use these."""
        self._control[0] = _MOVED

    def close(self) -> None:
        """Close the descriptor (mapped rows stay usable; the file cannot grow any more)."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
