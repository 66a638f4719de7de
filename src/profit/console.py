"""The console script ``profit``: the command's start-up, where a Ctrl-C is one line, not a traceback.

The script imports this small module first; the command itself (``profit.cli``,
which imports numpy and the study machinery) is imported inside the guard.
"""

import sys


def entry_point() -> None:
    """Console script ``profit``: run :func:`profit.cli.main` and exit with its status."""
    try:
        from .cli import finish, main
    except KeyboardInterrupt:  # while the command was still being imported: nothing to save
        print("profit: interrupted", file=sys.stderr)
        sys.exit(130)
    try:
        status = main()
    except KeyboardInterrupt:  # between the steps main() guards (e.g. while printing the summary)
        print("profit: interrupted", file=sys.stderr)
        status = 130
    except BrokenPipeError:  # the reader went away (profit status | head -2): nothing more to say
        status = _quietly_closed_stdout()
    finish(status)


def _quietly_closed_stdout() -> int:
    """After a broken pipe: point stdout at /dev/null so that Python's final flush does not complain."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 0
