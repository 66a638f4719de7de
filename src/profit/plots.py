"""``profit plot``: the study page's figures as PNG and SVG files, drawn with matplotlib.

matplotlib is an optional extra (``pip install 'profit-run[plot]'``); it is imported
only here, inside :func:`write_plots`, with the Agg backend (no display needed).
The figures come from the same views as the page (:mod:`profit.dashboard`):

* ``states``: runs by state (bars);
* ``throughput``: runs finished over time;
* ``durations``: a histogram of the finished runs' durations;
* ``<output>-vs-<input>``: each output against each input (the first
  :data:`MAX_INPUTS` inputs by the first :data:`MAX_OUTPUTS` outputs); a failed
  run has no output: it is marked by a red x at its input, on the bottom axis.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

from .run.errors import ConfigError

if TYPE_CHECKING:
    from .study import Study

MAX_INPUTS = 4
MAX_OUTPUTS = 4
FORMATS = ("png", "svg")
STATE_COLOURS = {
    "pending": "#9e9e9e",
    "running": "#1f77b4",
    "done": "#2ca02c",
    "failed": "#d62728",
    "cancelled": "#ff7f0e",
}


def file_stem(name: str) -> str:
    """A variable's name as part of a file name: letters, digits, ``.``, ``_`` and ``-`` only
    (``g[1]`` becomes ``g_1``).

    Args:
        name: The variable's name.
    """
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "variable"
    return stem


def write_plots(study: Study, directory: str | os.PathLike) -> list[str]:
    """Draw the study's figures into ``directory`` (made if missing) as PNG and SVG files.

    Args:
        study: The study.
        directory: Where the figures go.

    Returns:
        The paths written, in order.

    Raises:
        ConfigError: matplotlib is missing.
    """
    try:
        import matplotlib
    except ImportError:
        raise ConfigError(
            "profit plot draws with matplotlib, which is not installed: install 'profit-run[plot]'"
        ) from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    import numpy as np

    from .dashboard import snapshot

    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)
    views = snapshot(study)  # (the table read once for all figures)
    status, runs, throughput = views["status"], views["runs"], views["throughput"]
    columns: dict[str, list[Any]] = runs["columns"]
    states = np.array(columns["state"], dtype=str)
    title = os.path.basename(os.path.abspath(study.directory)) or study.directory
    written: list[str] = []

    def save(figure: Any, stem: str) -> None:
        figure.tight_layout()
        for extension in FORMATS:
            path = os.path.join(directory, f"{stem}.{extension}")
            figure.savefig(path, dpi=100)
            written.append(path)
        plt.close(figure)

    def floats(name: str) -> Any:
        return np.array([np.nan if value is None else value for value in columns[name]], dtype=np.float64)

    # Runs by state.
    figure, axes = plt.subplots(figsize=(6, 4))
    names = list(status["counts"])
    counts = [status["counts"][name] for name in names]
    bars = axes.bar(names, counts, color=[STATE_COLOURS.get(name, "#777777") for name in names])
    axes.bar_label(bars, labels=[str(count) for count in counts])
    axes.set_ylabel("runs")
    axes.set_title(_plain(f"{title}: {status['total']} runs by state"))
    axes.margins(y=0.15)
    save(figure, "states")

    # Runs finished over time.
    figure, axes = plt.subplots(figsize=(6, 4))
    if throughput:
        times = np.array([point[0] for point in throughput])
        finished = np.array([point[1] for point in throughput])
        axes.step(times - times[0], finished, where="post", color=STATE_COLOURS["done"])
        axes.set_xlabel("seconds since the first run finished")
    else:
        axes.text(0.5, 0.5, "no run has finished", ha="center", va="center", transform=axes.transAxes)
    axes.set_ylabel("runs finished (done or failed)")
    axes.set_title(_plain(f"{title}: throughput"))
    save(figure, "throughput")

    # Durations of the finished runs.
    figure, axes = plt.subplots(figsize=(6, 4))
    durations = floats("duration")
    finished_mask = np.isin(states, ("done", "failed")) & np.isfinite(durations)
    if finished_mask.any():
        for state in ("done", "failed"):
            picked = durations[finished_mask & (states == state)]
            if len(picked):
                axes.hist(picked, bins=30, alpha=0.7, label=f"{state} ({len(picked)})", color=STATE_COLOURS[state])
        axes.legend()
    else:
        axes.text(0.5, 0.5, "no run has finished", ha="center", va="center", transform=axes.transAxes)
    axes.set_xlabel("duration (s)")
    axes.set_ylabel("runs")
    axes.set_title(_plain(f"{title}: run durations"))
    save(figure, "durations")

    # Each output against each input; failed runs as red x at their inputs on the bottom axis.
    failed = states == "failed"
    stems: set[str] = set()
    for output in runs["outputs"][:MAX_OUTPUTS]:
        y = floats(output)
        for input_name in runs["inputs"][:MAX_INPUTS]:
            x = floats(input_name)
            figure, axes = plt.subplots(figsize=(6, 4))
            ok = np.isfinite(x) & np.isfinite(y)
            axes.scatter(x[ok], y[ok], s=12, color=STATE_COLOURS["done"], label=f"done ({int(ok.sum())})")
            bad = failed & np.isfinite(x)
            if bad.any():
                axes.scatter(
                    x[bad],
                    np.zeros(int(bad.sum())),
                    marker="x",
                    color=STATE_COLOURS["failed"],
                    transform=axes.get_xaxis_transform(),  # (x in data, y on the axes: the bottom edge)
                    clip_on=False,
                    label=f"failed ({int(bad.sum())})",
                )
            if ok.any() or bad.any():
                axes.legend(loc="best")
            axes.set_xlabel(_plain(input_name))
            axes.set_ylabel(_plain(output))
            axes.set_title(_plain(f"{title}: {output} against {input_name}"))
            stem = f"{file_stem(output)}-vs-{file_stem(input_name)}"
            while stem in stems or stem in ("states", "throughput", "durations"):
                stem += "_"
            stems.add(stem)
            save(figure, stem)
    return written


def _plain(text: str) -> str:
    """``text`` as matplotlib shows it literally: a ``$`` (in a directory's name) would start math."""
    return text.replace("$", r"\$")
