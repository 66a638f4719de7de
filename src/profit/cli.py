"""The ``profit`` command: run, watch and clean a study described by ``profit.yaml``.

    profit run [PATH] [--restart] [--retry-failed] [--inputs FILE]
                                    run the study (continue an unfinished one)
    profit status [PATH] [--json]   how far a running or finished study is
    profit ui [PATH] [--port N]     a live page of the study, in the browser
    profit report [PATH] [-o FILE]  the page as one self-contained HTML file
    profit plot [PATH] [-o DIR]     the figures as PNG and SVG files (matplotlib)
    profit export [PATH] FILE       write every run to FILE (.csv, .txt, .npy, .hdf5, .parquet, .nc)
    profit clean [--all] [PATH]     remove what runs left behind

The work itself is done by :class:`profit.Study`; this module parses and prints.

Exit status: 0 all runs done, 1 some runs failed, 2 bad study file or
arguments, 3 an internal error (a bug: please report it with --debug output),
4 the output file could not be written (a full disk: the results are kept in
the study's work directory), 5 a service the study needs failed (the batch
scheduler: run again when it is back), 130 after Ctrl-C and 143 after SIGTERM
(completed results are saved).
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
import time

from . import __version__
from .run.errors import ConfigError, ProfitError, ServiceError
from .run.state import RunState
from .store import TABLE
from .study import RunReport, Study, StudyStatus
from .studyrun import duration_text

EXIT_DONE, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_BUG, EXIT_UNSAVED, EXIT_SERVICE = 0, 1, 2, 3, 4, 5
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="profit", description="Run parameter studies described by profit.yaml.")
    parser.add_argument("--version", action="version", version=f"profit {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="{run,status,ui,report,plot,export,clean}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("path", nargs="?", default=".", help="study directory holding profit.yaml, or the YAML file")
    common.add_argument("--debug", action="store_true", help="log in detail and show tracebacks")
    run = commands.add_parser("run", parents=[common], help="run the study, continuing an unfinished one")
    run.add_argument("--restart", action="store_true", help="start over: discard earlier results of this study")
    run.add_argument("--retry-failed", action="store_true", help="run the failed runs again too")
    run.add_argument("--inputs", metavar="FILE", help="add one run per row of FILE (.csv, .txt, .npy) first")
    run.add_argument(
        "--keep-results",
        action="store_true",
        help="continue although the simulation changed since runs finished (their results are kept)",
    )
    run.add_argument(
        "--allow-failures", action="store_true", help="exit 0 when runs failed (they stay recorded as failed)"
    )
    status = commands.add_parser("status", parents=[common], help="report a running or finished study")
    status.add_argument("--json", action="store_true", help="print the status as JSON (as the page's /api/status)")
    ui = commands.add_parser("ui", parents=[common], help="serve a live page of the study (read-only)")
    ui.add_argument("--port", type=int, default=0, help="the port to listen on (default: a free one)")
    ui.add_argument(
        "--host", default=None, help="the address to listen on (default 127.0.0.1; another one requires a token)"
    )
    report = commands.add_parser("report", parents=[common], help="write the page as one self-contained HTML file")
    report.add_argument("-o", "--output", default="report.html", help="the file to write (default report.html)")
    plot = commands.add_parser("plot", parents=[common], help="write the figures as PNG and SVG files")
    plot.add_argument("-o", "--output", default="plots", help="the directory to write them to (default plots)")
    export = commands.add_parser("export", parents=[common], help="write every run with its state to a file")
    export.add_argument("file", help="the file to write; its extension names the format")
    clean = commands.add_parser("clean", parents=[common], help="remove run directories, logs and the interface file")
    clean.add_argument("--all", action="store_true", help="also remove the input and output files and the study state")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``profit`` command; returns the exit status.

    Args:
        argv: The command's arguments (default: ``sys.argv[1:]``).
    """
    try:
        parser = _parser()
        args = parser.parse_args(argv)
    except KeyboardInterrupt:  # while starting: nothing to save
        print("profit: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    if args.command is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    handlers = {
        "run": command_run,
        "status": command_status,
        "ui": command_ui,
        "report": command_report,
        "plot": command_plot,
        "export": command_export,
        "clean": command_clean,
    }
    try:
        return handlers[args.command](args)
    except ProfitError as error:
        if args.debug:
            raise
        print(f"profit: {error}", file=sys.stderr)
        # A scheduler that fails is not a mistake in the study; everything else we raise on purpose is.
        if isinstance(error, ServiceError) and not isinstance(error, ConfigError):
            return EXIT_SERVICE
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:  # before any run started: nothing to save
        print("profit: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader went away (profit status | head -2): the console script ends quietly
        raise
    except OSError as error:  # a file or directory that cannot be made or read
        if args.debug:
            raise
        where = f": {error.filename}" if error.filename else ""
        if error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):  # nothing computed is lost: run again
            print(f"profit: {error.strerror}{where}; free some space and run again", file=sys.stderr)
            return EXIT_UNSAVED
        print(f"profit: {error.strerror or error}{where}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as error:  # a bug: one line, unless asked for the traceback
        if args.debug:
            raise
        print(
            f"profit: internal error: {type(error).__name__}: {error} (run with --debug for the traceback)",
            file=sys.stderr,
        )
        return EXIT_BUG


# --- profit run ------------------------------------------------------------------------------


def command_run(args: argparse.Namespace) -> int:
    """``profit run``: run the runs of the study that have not run yet.

    Args:
        args: The command line, parsed.

    Returns:
        The exit status.
    """
    study = Study.load(args.path)
    for notice in study.file.notices:
        print(f"profit: {notice}")
    report = study._run(
        retry_failed=args.retry_failed,
        restart=args.restart,
        progress=True,
        inputs=args.inputs,
        debug=args.debug,
        keep_results=args.keep_results,
        say=lambda note: print(f"profit: {note}", flush=True),
        restore_signals=False,  # a late Ctrl-C changes nothing while the results are saved and summed up
    )
    status = _summary(study, report)
    return EXIT_DONE if status == EXIT_FAILED and args.allow_failures else status


def _summary(study: Study, report: RunReport) -> int:
    status = report.status
    print(
        f"\nprofit: {status.total} runs: {status.done} done, {status.failed} failed"
        + (f", {status.pending} not run" if status.pending else "")
    )
    for run_id, reason in status.failures[:20]:
        print(f"  run {run_id} failed: {reason}")
    if len(status.failures) > 20:
        print(f"  ... and {len(status.failures) - 20} more ('profit status' lists them all)")
    if report.failed_kept:
        print(f"profit: {report.failed_kept} failed runs kept; --retry-failed runs them again")
    print(f"profit: outputs in {study.file.output_file}, inputs in {study.file.input_file}")
    if report.export_error is not None:
        error = report.export_error
        print(
            f"profit: {study.file.output_file} could not be written ({error.strerror or error}); "
            f"every completed result is kept in {os.path.join(study.directory, TABLE)}: free some space and "
            "run 'profit run' (or 'profit export') again to write it",
            file=sys.stderr,
        )
        return EXIT_UNSAVED
    if report.stopped_by is not None:
        print("profit: interrupted; completed results are saved. 'profit run' continues the study.")
        return EXIT_TERMINATED if report.stopped_by == signal.SIGTERM else EXIT_INTERRUPTED
    return EXIT_FAILED if status.failed else EXIT_DONE


# --- profit status -----------------------------------------------------------------------------


def command_status(args: argparse.Namespace) -> int:
    """``profit status``: report a running or finished study without disturbing it.

    Args:
        args: The command line, parsed.

    Returns:
        The exit status.
    """
    study = Study.load(args.path)
    status = study.status()
    if args.json:
        import json

        from .dashboard import status_data

        print(json.dumps(status_data(study, status), allow_nan=False, indent=1))
        return EXIT_DONE
    if not status.total and not os.path.exists(study.table_path):
        print(f"profit: {study.file.path} has not been run yet (no {TABLE} in {study.directory})")
        return EXIT_DONE
    print(f"study:   {study.file.path}")
    print(f"state:   {_state_line(status)}")
    finished = status.done + status.failed
    print(
        f"runs:    {status.total}: {status.done} done, {status.failed} failed, "
        f"{status.counts[RunState.RUNNING] if status.running_pid else 0} running, {status.pending} pending "
        f"({100 * finished / max(status.total, 1):.0f}% finished)"
    )
    for run_id, reason in status.failures:
        print(f"  run {run_id} failed: {reason}")
    print(f"results: {study.file.output_file} (inputs: {study.file.input_file}, work directory: {study.directory})")
    return EXIT_DONE


def _state_line(status: StudyStatus) -> str:
    started, ended = status.started, status.finished
    if status.running_pid:
        running_for = time.time() - started if started else 0
        finished = status.done + status.failed
        done_now = finished - status.finished_before
        eta = ""
        if done_now > 0 and finished < status.total:
            eta = f", ETA {duration_text((status.total - finished) * running_for / done_now)}"
        return f"running (process {status.running_pid}) for {duration_text(running_for)}{eta}"
    if ended:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ended))
        return f"not running; last run ended {when}" + (f" after {duration_text(ended - started)}" if started else "")
    return "not running (the last runner stopped without finishing; 'profit run' continues)"


# --- profit ui, report, plot ---------------------------------------------------------------------


def command_ui(args: argparse.Namespace) -> int:
    """``profit ui``: serve the study's page until Ctrl-C (read-only; loopback unless ``--host``).

    Args:
        args: The command line, parsed.

    Returns:
        The exit status.

    Raises:
        ConfigError: ``--port`` is not a port, or the page cannot be served there.
    """
    import secrets

    from .uiserver import LOOPBACK, StudyServer

    study = Study.load(args.path)
    host = args.host or LOOPBACK
    token = None
    if host not in (LOOPBACK, "localhost"):
        token = secrets.token_urlsafe(16)
        print(
            f"profit: warning: serving on {host}: whoever reaches it with the token in the URL can read the study",
            file=sys.stderr,
        )
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port} is not a port; give one from 1 to 65535 (or 0: a free one)")
    try:
        server = StudyServer(study, host, args.port, token)
    except OSError as error:
        raise ConfigError(
            f"cannot listen on {host}:{args.port} ({error.strerror or error}); give another --port, or an "
            "IPv4 address of this machine as --host"
        ) from None
    port = server.server_address[1]
    print(f"profit: the page of {study.file.path} is at {server.url}")
    if token is None:
        print(
            f"profit: to watch it from your laptop while this runs on a cluster's login node: "
            f"ssh -L {port}:127.0.0.1:{port} <login node>, then open http://127.0.0.1:{port}/"
        )
    print("profit: Ctrl-C stops serving", flush=True)
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        print("profit: stopped serving", file=sys.stderr)
    finally:
        server.server_close()
    return EXIT_DONE


def _study_that_ran(path: str, consequence: str) -> Study:
    """The study at ``path``; ConfigError if it has no table yet (``consequence``: what that means here)."""
    study = Study.load(path)
    if not os.path.exists(study.table_path):
        raise ConfigError(f"{study.file.path} has not been run yet (no {TABLE} in {study.directory}); {consequence}")
    return study


def command_report(args: argparse.Namespace) -> int:
    """``profit report``: the page with the study's data in one HTML file that needs no network.

    Args:
        args: The command line, parsed.

    Returns:
        The exit status.

    Raises:
        ConfigError: ``-o`` is a directory.
    """
    from .run._files import write_atomically
    from .uiserver import page_html, report_data

    study = _study_that_ran(args.path, "nothing to report")
    if os.path.isdir(args.output):
        raise ConfigError(f"-o {args.output} is a directory; give the report's file name, e.g. -o report.html")
    write_atomically(args.output, page_html(report_data(study)))
    print(f"profit: report of {study.file.path} written to {os.path.abspath(args.output)}")
    return EXIT_DONE


def command_plot(args: argparse.Namespace) -> int:
    """``profit plot``: the page's figures as PNG and SVG files (matplotlib, an optional extra).

    Args:
        args: The command line, parsed.

    Returns:
        The exit status.

    Raises:
        ConfigError: ``-o`` is a file.
    """
    study = _study_that_ran(args.path, "nothing to plot")
    if os.path.exists(args.output) and not os.path.isdir(args.output):
        raise ConfigError(f"-o {args.output} is a file; give a directory for the figures, e.g. -o figures")
    from .plots import write_plots

    written = write_plots(study, args.output)
    print(f"profit: {len(written)} figures written to {os.path.abspath(args.output)}")
    return EXIT_DONE


# --- profit export -----------------------------------------------------------------------------


def command_export(args: argparse.Namespace) -> int:
    """``profit export``: every run (inputs, outputs, state, reason, times) into one file.

    Args:
        args: The command line, parsed.

    Returns:
        The exit status.
    """
    study = _study_that_ran(args.path, "nothing to export")
    study.export(args.file)
    print(f"profit: {study.status().total} runs written to {args.file}")
    return EXIT_DONE


# --- profit clean ------------------------------------------------------------------------------


def command_clean(args: argparse.Namespace) -> int:
    """``profit clean``: remove run directories, logs and the interface file (``--all``: results too).

    Args:
        args: The command line, parsed.

    Returns:
        The exit status.
    """
    study = Study.load(args.path)
    removed = study.clean(all=args.all)
    if os.path.isdir(study.directory):
        print(f"profit: removed {', '.join(removed) if removed else 'nothing'} in {study.directory}")
    return EXIT_DONE


def finish(status: int) -> None:
    """Exit with ``status``. Everything is saved: a late Ctrl-C must not turn the exit status into
    "killed by SIGINT" (Python restores the default handlers while it shuts down).

    Args:
        status: The exit status.
    """
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    sys.exit(status)
