"""Warnings about a study's template before it runs (see docs/templates.md).

:func:`template_warnings` reads the template of a study whose command worker uses the
``template`` preprocessor, the way :func:`profit.run.command.fill_templates` would fill it,
and returns one sentence per problem:

* a file that contains ``{{`` takes ``{{name}}`` placeholders, so its single-brace ``{name}``
  of an input is left as it is;
* an input (not a Constant) that no filled file and not the command mentions: every run
  gets the same simulation, whatever its value.
"""

from __future__ import annotations

import codecs
import os
import re
from collections.abc import Mapping

from .studyfile import StudyFile

# Bounds of the check, so that it stays fast on any template.
MAX_FILE_BYTES = 1024 * 1024  # read at most this much of each file
MAX_FILES = 1000  # read at most this many files
MAX_TOTAL_BYTES = 64 * 1024 * 1024  # and at most this much in all
MAX_ENTRIES = 10 * MAX_FILES  # walk at most this many directory entries


def template_warnings(study: StudyFile) -> list[str]:
    """Warnings (one sentence each, naming the file and placeholder) about a study's template, before it runs.

    Only for a study whose worker is the command worker with the ``template`` preprocessor
    (``run.pre`` absent or ``template``: the directory ``template/`` of the study, if it exists;
    or ``{class: template, path: ..., param_files: [...]}``); otherwise, and when there is no
    template directory, the list is empty. Only the files that ``fill_templates`` fills are read:
    regular UTF-8 text files without NUL characters (linked files only when named in
    ``param_files``), or only ``param_files``.

    1. A file that contains ``{{`` takes ``{{name}}`` placeholders; each single-brace ``{name}``
       (or ``{name:spec}``) of an input in it is left as it is: one warning per file and name.
    2. An input (Constants aside) that appears as a placeholder (either form) in no filled file and
       not as a word in the command: one warning per input.

    Bounded: at most ``MAX_FILE_BYTES`` (1 MB) of each file, ``MAX_FILES`` (1000) files,
    ``MAX_TOTAL_BYTES`` (64 MB) in all and ``MAX_ENTRIES`` (10000) directory entries are read;
    warning 2 is left out when the template was not read completely (a use may lie beyond).
    The study file's name starts each message; nothing is printed.

    Args:
        study: The study file.
    """
    setup = _template_setup(study)
    if setup is None:
        return []
    template, param_files, command = setup
    if not os.path.isdir(template):
        return []
    inputs = [name for name, variable in study.variables.items() if variable.is_input]
    if not inputs:
        return []
    names = "|".join(re.escape(name) for name in sorted(inputs, key=len, reverse=True))
    single = re.compile(r"\{(" + names + r")(?::([^{}]*))?\}")
    double = re.compile(r"\{\{\s*(" + names + r")\s*(?::([^{}]*))?\}\}")

    warnings: list[str] = []
    used: set[str] = set()
    files, complete = _filled_files(template, param_files)
    total = 0
    for path, relative in files:
        if total >= MAX_TOTAL_BYTES:
            complete = False
            break
        text, whole, size = _read_text(path)
        total += size
        if not whole:
            complete = False
        if text is None:
            continue
        shown = _shown_path(os.path.join(template, relative), study.base_dir)
        if "{{" in text:
            used.update(match.group(1) for match in double.finditer(text))
            rest = double.sub("", text)
            warned: set[str] = set()
            for match in single.finditer(rest):
                name = match.group(1)
                used.add(name)
                if name in warned:
                    continue
                warned.add(name)
                spec = f":{match.group(2)}" if match.group(2) is not None else ""
                warnings.append(
                    f"{study.name}: {shown} uses {{{{name}}}} placeholders (it contains '{{{{'), so "
                    f"{{{name}{spec}}} is left as it is; write {{{{{name}{spec}}}}}"
                )
        else:
            used.update(match.group(1) for match in single.finditer(text))
            # (a '{{ u }}' of a truncated file whose '{{' lies beyond the part read)
            used.update(match.group(1) for match in double.finditer(text))

    if complete:
        for name in inputs:
            if name in used or study.variables[name].kind == "Constant":
                continue
            if re.search(r"(?<!\w)" + re.escape(name) + r"(?!\w)", command):
                continue
            warnings.append(
                f"{study.name}: input {name} is used by no template file and not by the command; "
                f"every run gets the same simulation for any {name}"
            )
    return warnings


def _template_setup(study: StudyFile) -> tuple[str, list[str] | None, str] | None:
    """(template directory, param_files, command) of a command worker with the template
    preprocessor, as the runner would build it from ``study.run``; None for any other worker."""
    run = study.run
    runner = run.get("runner")
    worker: object = run.get("worker")
    if worker is None and isinstance(runner, Mapping):
        worker = runner.get("worker")
    if worker is None:
        worker = "command"
    worker_options: Mapping = worker if isinstance(worker, Mapping) else {}
    label = worker if isinstance(worker, str) else worker_options.get("class")
    command = run.get("command")
    if not isinstance(command, str):
        command = worker_options.get("command", "./simulation")
        if label != "command":
            return None
    if not isinstance(command, str):
        command = ""
    pre = run["pre"] if "pre" in run else worker_options.get("pre", "template")
    if isinstance(pre, str):
        if pre != "template":
            return None
        pre = {}
    elif not isinstance(pre, Mapping) or pre.get("class") != "template":
        return None
    path = pre.get("path")
    path = "template" if path is None else path
    param_files = pre.get("param_files")
    if isinstance(param_files, str):
        param_files = [param_files]
    if not isinstance(path, str) or not (param_files is None or isinstance(param_files, list)):
        return None  # (a malformed option: the preprocessor says so when it starts)
    base_dir = pre.get("base_dir") or worker_options.get("base_dir") or study.base_dir
    if not isinstance(base_dir, str):
        base_dir = study.base_dir
    base_dir = os.path.join(study.base_dir, base_dir)
    return os.path.normpath(os.path.join(base_dir, path)), param_files, command


def _filled_files(template: str, param_files: list[str] | None) -> tuple[list[tuple[str, str]], bool]:
    """The files of ``template`` that ``fill_templates`` fills, as (path to read, path relative to
    the template), in a stable order; and whether the walk saw the whole template."""
    found: list[tuple[str, str]] = []
    entries = 0
    for root, dirs, files in os.walk(template):
        dirs.sort()
        entries += len(dirs)
        for name in sorted(files):
            entries += 1
            if entries > MAX_ENTRIES or len(found) >= MAX_FILES:
                return found, False
            path = os.path.join(root, name)
            relative = os.path.relpath(path, template)
            if param_files is not None and name not in param_files and relative not in param_files:
                continue
            if os.path.islink(path):
                if param_files is None:
                    continue  # a linked file is shared, not a copy: never filled
                path = os.path.realpath(path)
            found.append((path, relative))
    return found, True


def _read_text(path: str) -> tuple[str | None, bool, int]:
    """(the text of ``path``, or None if it is not filled as text; whether all of it was read;
    bytes read). Only the first ``MAX_FILE_BYTES`` are read."""
    try:
        with open(path, "rb") as file:
            raw = file.read(MAX_FILE_BYTES + 1)
    except OSError:
        return None, True, 0  # (unreadable: the copy fails with its own message)
    whole = len(raw) <= MAX_FILE_BYTES
    raw = raw[:MAX_FILE_BYTES]
    try:
        # (incremental: a character cut at the limit is no reason to take the file for binary)
        text = codecs.getincrementaldecoder("utf-8")().decode(raw, final=whole)
    except UnicodeDecodeError:
        return None, True, len(raw)  # binary or another encoding: copied unchanged
    if "\0" in text:
        return None, True, len(raw)
    return text, whole, len(raw)


def _shown_path(path: str, base_dir: str) -> str:
    """``path`` relative to the study's directory (absolute if outside it), with forward slashes."""
    relative = os.path.relpath(path, base_dir)
    if relative.startswith(os.pardir):
        return path
    return relative.replace(os.sep, "/")
