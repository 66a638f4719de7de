"""Benchmark: does a page watching a study slow the study down?

The study: ``ntrain: N`` runs (default 100000) of ``f = u + v`` (a module-level function, written
into a temporary module ``bench_ui_model.py``) on the pool runner with its default ``parallel``
(all usable CPUs), in a fresh directory each time, run by ``profit run DIR`` as a subprocess.

Four ways, timed one after the other in every round (the order rotates from round to round,
so that a drift of the machine's speed hits each alike):

* ``no page``: ``profit run`` alone;
* ``page 2 s``: ``profit ui DIR`` runs as a second subprocess, and a client in this
  process fetches ``/api/snapshot`` every 2 s (as the page does) from before the run
  starts until it ends;
* ``page 0.5 s`` and ``page 0.1 s``: the same, every 0.5 s and every 0.1 s (a client
  waits for each answer: at most one request at a time).

Wall time runs from just before ``Popen`` of ``profit run`` until it exits; runs/s = N / wall.
Reported: each way's median runs/s, and the median over rounds of the ratio (with page /
without page; 1.00 = no slowdown), with the number of snapshots fetched. Every run is checked
afterwards (N runs done); every snapshot must be valid JSON whose ``done`` never goes down. A
failed check makes the script exit 1; a slow page does not (this is a measurement, not a test).

Usage::

    python benchmarks/bench_ui.py [--runs N] [--rounds R] [--json PATH]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

PROFIT = os.path.join(os.path.dirname(sys.executable), "profit")
MODEL = """def add(u, v) -> "f":  # noqa: F821
    return u + v
"""
WAYS = [("no page", None), ("page 2 s", 2.0), ("page 0.5 s", 0.5), ("page 0.1 s", 0.1)]


class Poller(threading.Thread):
    """Fetches /api/snapshot every ``interval`` seconds until stopped; checks each answer."""

    def __init__(self, port: int, interval: float):
        super().__init__(daemon=True)
        self.port, self.interval = port, interval
        self.stop = threading.Event()
        self.fetched = 0
        self.errors: list[str] = []
        self.last_done = 0
        self.seconds: list[float] = []  # (per snapshot fetched: request to last byte)
        self.size = 0

    def run(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        while not self.stop.is_set():
            try:
                began = time.perf_counter()
                connection.request("GET", "/api/snapshot")
                response = connection.getresponse()
                body = response.read()
                if response.status == 200:
                    self.seconds.append(time.perf_counter() - began)
                    self.size = max(self.size, len(body))
                    done = json.loads(body)["status"]["counts"]["done"]
                    if done < self.last_done:
                        self.errors.append(f"done went down: {self.last_done} -> {done}")
                    self.last_done = done
                    self.fetched += 1
                elif response.status != 503:  # (503: the table is being written: the page tries again)
                    self.errors.append(f"HTTP {response.status}: {body[:200]!r}")
            except (OSError, ValueError, KeyError, http.client.HTTPException) as error:
                self.errors.append(repr(error))
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            self.stop.wait(self.interval)
        connection.close()


def make_study(folder: str, runs: int) -> str:
    import profit

    sys.path.insert(0, os.path.dirname(folder))
    import bench_ui_model  # type: ignore[import-not-found]  # (written by main into the temporary directory)

    study = profit.Study.create(
        folder,
        inputs={"u": "Uniform(0, 1)", "v": "Uniform(0, 1)"},
        outputs=["f"],
        run={"runner": "pool", "worker": bench_ui_model.add},
        ntrain=runs,
        seed=1,
    )
    return study.directory


def start_ui(directory: str) -> tuple[subprocess.Popen, int]:
    process = subprocess.Popen(
        [PROFIT, "ui", directory, "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    found = re.search(r"http://\S+", line)
    if not found:
        process.kill()
        raise SystemExit(f"profit ui printed no URL: {line!r}")
    port = urllib.parse.urlsplit(found.group()).port
    assert port is not None
    return process, port


def one(base: str, name: str, runs: int, interval: float | None) -> tuple[float, Poller | None]:
    """Wall time of one ``profit run`` of a fresh study, and the client that polled meanwhile."""
    import profit

    directory = make_study(tempfile.mkdtemp(dir=base), runs)
    ui = poller = None
    if interval is not None:
        ui, port = start_ui(directory)
        poller = Poller(port, interval)
        poller.start()
    try:
        began = time.perf_counter()
        result = subprocess.run([PROFIT, "run", directory], capture_output=True, text=True)
        wall = time.perf_counter() - began
    finally:
        if poller is not None:
            poller.stop.set()
            poller.join(30)
        if ui is not None:
            ui.terminate()
            ui.wait(30)
    if result.returncode != 0:
        raise SystemExit(f"{name}: profit run failed ({result.returncode}): {result.stdout[-2000:]}")
    done = profit.Study.load(directory).status().done
    if done != runs:
        raise SystemExit(f"{name}: {done} of {runs} runs done")
    if poller is not None and poller.errors:
        raise SystemExit(f"{name}: the page's client saw: {poller.errors[:5]}")
    return wall, poller


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=100000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench_ui-") as base:
        with open(os.path.join(base, "bench_ui_model.py"), "w") as file:
            file.write(MODEL)
        one(base, "warm-up", min(args.runs, 500), 0.5)  # (untimed: file cache, bytecode caches)
        walls: dict[str, list[float]] = {name: [] for name, _ in WAYS}
        fetched: dict[str, list[int]] = {name: [] for name, _ in WAYS}
        ratios: dict[str, list[float]] = {name: [] for name, _ in WAYS[1:]}
        fetch_times: list[float] = []
        sizes: list[int] = []
        for round_ in range(args.rounds):
            order = WAYS[round_ % len(WAYS) :] + WAYS[: round_ % len(WAYS)]
            this: dict[str, float] = {}
            for name, interval in order:
                wall, poller = one(base, name, args.runs, interval)
                this[name] = wall
                walls[name].append(wall)
                polls = poller.fetched if poller is not None else 0
                fetched[name].append(polls)
                line = f"round {round_ + 1}: {name:<11} {wall:7.2f} s  {args.runs / wall:8.0f} runs/s"
                if poller is not None and poller.seconds:
                    fetch_times.extend(poller.seconds)
                    sizes.append(poller.size)
                    line += f"  {polls} snapshots, {statistics.median(poller.seconds):.3f} s each"
                print(line)
            for name, _ in WAYS[1:]:
                ratios[name].append(this["no page"] / this[name])  # runs/s with page / runs/s without

    print()
    print(f"{args.runs} runs of f = u + v on the pool runner, {args.rounds} rounds (median):")
    summary: dict[str, dict[str, float]] = {}
    for name, _ in WAYS:
        rate = args.runs / statistics.median(walls[name])
        line = f"  {name:<11} {rate:8.0f} runs/s"
        summary[name] = {"runs_per_second": rate, "snapshots": statistics.median(fetched[name])}
        if name in ratios:
            ratio = statistics.median(ratios[name])
            summary[name]["ratio"] = ratio
            line += f"   with page / without page = {ratio:.3f}   ({statistics.median(fetched[name]):.0f} snapshots)"
        print(line)
    snapshot = {}
    if fetch_times:
        snapshot = {"seconds": statistics.median(fetch_times), "bytes": max(sizes)}
        print(
            f"  a snapshot of the finished study: {max(sizes) / 1e6:.1f} MB; fetching one took "
            f"{snapshot['seconds']:.3f} s (median, while the study ran)"
        )
    if args.json:
        with open(args.json, "w") as file:
            json.dump({"runs": args.runs, "rounds": args.rounds, "ways": summary, "snapshot": snapshot}, file, indent=1)


if __name__ == "__main__":
    main()
