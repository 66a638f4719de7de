"""The integer values of :class:`~profit.run.state.RunState`, for code a worker process runs.

Importing :mod:`enum` (with ``functools`` and ``collections``) costs a process
started per run about as much as four thousandths of a second: a third of
Python's own start. The worker's side of an interface writes these plain
integers into the ``STATE`` column; they are the enum's values
(``RunState`` is defined from them), so the column reads the same.
"""

PENDING, RUNNING, DONE, FAILED, CANCELLED = 0, 1, 2, 3, 4
