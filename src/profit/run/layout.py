"""What a work directory holds, by name: the one place that knows its layout.

A runner's work directory (``run_dir`` of a study) holds::

    run_000/ run_001/ ...   run directories of command workers (kept when a run failed)
    log/run_000.log ...     one log per run (only for runs that logged something)
    log/slurm-<job>.out     the batch system's output of each job
    interface.npy           the memmap interface (all runs' inputs, outputs, states)
    zeromq.key              the zeromq interface's secret (while its runner runs)
    slurm.bash              the batch script of the slurm runner
    runner.log              the runner's log (written by the ``profit`` command)

plus the files of the ``profit`` command's study state (see :mod:`profit.store`).
Defaults below are the option defaults of the components that write them.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # (typing costs every worker process its import)
if TYPE_CHECKING:
    from collections.abc import Iterable

LOG_DIR = "log"
INTERFACE_FILE = "interface.npy"
SECRET_FILE = "zeromq.key"
BATCH_SCRIPT = "slurm.bash"
RUNNER_LOG = "runner.log"
# Everything a runner and its workers leave besides the study's results.
LEFTOVER_FILES = (INTERFACE_FILE, SECRET_FILE, BATCH_SCRIPT, RUNNER_LOG)

_RUN_DIR = r"run_\d+"


def study_base_dir(given: str | None = None) -> str:
    """Where a study's relative paths (a template) start: ``given``, else ``PROFIT_BASE_DIR``
    (what the runner hands every worker), else the current directory.

    Args:
        given: The base directory, if one was given.
    """
    return given or os.environ.get("PROFIT_BASE_DIR") or os.getcwd()


def run_dir_name(run_id: int) -> str:
    """The run directory of a run, relative to the work directory: ``run_007``.

    Args:
        run_id: The run.
    """
    return f"run_{run_id:03d}"


def run_log_file(log_path: str, run_id: int) -> str:
    """The log file of a run: ``{log_path}/run_{run_id:03d}.log``.

    Args:
        log_path: The directory of the run logs.
        run_id: The run.
    """
    return os.path.join(log_path, f"{run_dir_name(run_id)}.log")


def begin_run_log(work_dir: str, log_path: str, run_id: int) -> None:
    """Before an attempt of a run starts: its log file so far becomes ``run_NNN.log.previous``.

    The run's log then holds only this attempt's lines, so a failure reason that
    quotes its last line never quotes an earlier attempt, or a run of an earlier
    study in the same directory (``--restart``); the previous attempt's lines stay
    readable beside it (one attempt back).

    Args:
        work_dir: The work directory.
        log_path: The directory of the run logs, relative to ``work_dir``.
        run_id: The run.
    """
    path = os.path.join(work_dir, run_log_file(log_path, run_id))
    try:
        os.replace(path, path + ".previous")
    except FileNotFoundError:
        pass
    except OSError:  # (a log we cannot move: never quote it)
        try:
            os.remove(path)
        except OSError:
            pass


def clean_work_dir(work_dir: str, *, log_path: str = LOG_DIR, files: Iterable[str] = LEFTOVER_FILES) -> list[str]:
    """Remove run directories, the log directory, ``files`` (names in ``work_dir``) and the
    temporary files of writers that were killed (:func:`~._files.remove_stale_temporaries`).

    Anything else in the directory (results, the user's own files) stays.

    Args:
        work_dir: The work directory.
        log_path: The log directory, relative to ``work_dir``.
        files: Names of files in ``work_dir`` to remove.

    Returns:
        The names removed, sorted.
    """
    import re  # here: every worker process imports this module, and only cleaning needs these
    import shutil

    from ._files import remove_stale_temporaries

    if not os.path.isdir(work_dir):
        return []
    removed = remove_stale_temporaries(work_dir)
    files = set(files)
    for entry in sorted(os.listdir(work_dir)):
        path = os.path.join(work_dir, entry)
        if (re.fullmatch(_RUN_DIR, entry) or entry == log_path) and os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        elif entry in files and (os.path.isfile(path) or os.path.islink(path)):
            os.remove(path)
        else:
            continue
        removed.append(entry)
    return sorted(removed)
