"""What produced a study's results: its ``run:`` section, template, include files and the files its command names.

:func:`model_parts` gives a digest of each part; a study keeps them beside its
results, and :func:`changed_parts` says which changed since, so that results of
an earlier simulation never come back without a word.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
from collections.abc import Mapping

from .studyfile import StudyFile

# run: keys that decide how runs are carried out, not what they compute.
_HOW_KEYS = {"runner", "interface", "debug", "timeout", "retries", "clean"}
_WHOLE_FILE = 1024 * 1024  # bytes hashed whole; larger files (data, meshes) by size and modification time


def model_parts(file: StudyFile) -> dict[str, str]:
    """A digest of each part of what computes the study's outputs, by a name a user recognises.

    Args:
        file: The study file.
    """
    parts = {"the run: section": _digest_json({k: v for k, v in file.run.items() if k not in _HOW_KEYS})}
    template = _template_dir(file)
    if template is not None and os.path.isdir(template):
        parts[f"the template {os.path.relpath(template, file.base_dir)}"] = _digest_tree(template)
    for include in file.includes:
        if os.path.isfile(include):
            parts[f"the include file {os.path.relpath(include, file.base_dir)}"] = _digest_file(include)
    for path in _command_files(file):
        parts[f"the file {os.path.relpath(path, file.base_dir)}"] = _digest_file(path)
    return parts


def changed_parts(before: Mapping[str, str], now: Mapping[str, str]) -> list[str]:
    """The names of the parts that differ (added, removed or changed).

    Args:
        before: The parts' digests before (:func:`model_parts`).
        now: Their digests now.
    """
    return sorted(name for name in set(before) | set(now) if before.get(name) != now.get(name))


def _template_dir(file: StudyFile) -> str | None:
    pre = file.run.get("pre", "template")
    if isinstance(pre, str):
        return os.path.join(file.base_dir, "template") if pre == "template" else None
    if isinstance(pre, Mapping) and pre.get("class") == "template":
        path = pre.get("path", "template")
        return os.path.normpath(os.path.join(file.base_dir, path)) if isinstance(path, str) else None
    return None


def _command_files(file: StudyFile) -> list[str]:
    """Files outside the run directory that the command names by a path: ``python3 ../sim.py`` (from
    the run directory), ``$PROFIT_BASE_DIR/sim.py`` or an absolute path. Words for files inside the run
    directory are the template's (hashed with it) or what runs write: they are no part of the model."""
    command = file.run.get("command")
    if not isinstance(command, str):
        return []
    try:
        words = shlex.split(command)
    except ValueError:
        return []
    run_dir = os.path.join(file.run_dir, "run_000")
    found = []
    for word in words:
        for variable in ("${PROFIT_BASE_DIR}", "$PROFIT_BASE_DIR"):
            if word.startswith(variable + "/"):
                word = os.path.join(file.base_dir, word[len(variable) + 1 :])
        if word.startswith("../"):
            path = os.path.normpath(os.path.join(run_dir, word))
        elif os.path.isabs(word):
            path = os.path.normpath(word)
        else:
            continue
        if os.path.isfile(path) and path not in found:
            found.append(path)
    return found


def _digest_json(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _digest_file(path: str) -> str:
    digest = hashlib.sha256()
    size = os.path.getsize(path)
    if size > _WHOLE_FILE:  # (a data file of gigabytes: its size and time stand for it)
        stat = os.stat(path)
        digest.update(f"{size} {stat.st_mtime_ns}".encode())  # (a copy with a new time counts as changed)
        return digest.hexdigest()[:16]
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def _digest_tree(folder: str) -> str:
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            digest.update(os.path.relpath(path, folder).encode() + b"\0")
            if os.path.isfile(path):
                digest.update(_digest_file(path).encode())
    return digest.hexdigest()[:16]
