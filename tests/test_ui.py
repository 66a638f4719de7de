"""profit ui, report, plot and status --json against real studies (no browser: test_ui_browser.py has that).

A finished study with failures (tests/ui_models.py:flaky fails for some inputs, with two reasons) is
served by a StudyServer on a free port in a thread; requests go through http.client, so that the
paths reach the server exactly as written (no client-side normalisation of ``..``).
"""

import contextlib
import hashlib
import io
import math
import os
import queue
import re
import subprocess
import sys
import threading
import time
import urllib.parse

import numpy as np
import pytest
import ui_models
from helpers import PROFIT, wait_for
from ui_helpers import request, run_cli, serving, strict_json

import profit
from profit.dashboard import STATES, status_data
from profit.run.errors import ConfigError
from profit.run.state import RunState
from profit.store import StudyLock

NTRAIN = 40


# --- helpers -----------------------------------------------------------------------------------


def tree_state(folder):
    """Every file under ``folder``: its size, modification time and contents' hash."""
    state = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            info = os.stat(path)
            with open(path, "rb") as file:
                digest = hashlib.sha256(file.read()).hexdigest()
            state[os.path.relpath(path, folder)] = (info.st_size, info.st_mtime_ns, digest)
    return state


def store_counts(study):
    status = study.status()
    return {state.name.lower(): status.counts[state] for state in RunState}


def as_json_column(values):
    """A results column as the snapshot lists it: NaN -> None."""
    return [None if isinstance(v, float) and math.isnan(v) else v for v in np.asarray(values).tolist()]


# --- a finished study with failures --------------------------------------------------------------


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ui") / "study"
    made = profit.Study.create(
        folder,
        inputs={"u": "Uniform(0, 1)", "v": "Uniform(0, 1)"},
        outputs={"f": None, "g": 2},
        run={"runner": {"class": "pool", "parallel": 2}, "worker": ui_models.flaky},
        ntrain=NTRAIN,
        seed=1,
    )
    made.run()
    status = made.status()
    # Both reasons and successes occur (the seed is fixed): otherwise the tests below would prove little.
    reasons = {reason.split(":")[0] for _, reason in status.failures}
    assert reasons == {"ValueError", "RuntimeError"} and status.done > 0, status
    return made


@pytest.fixture(scope="module")
def server(study):
    with serving(study) as running:
        yield running


def get_json(server, path):
    status, headers, body = request(server, path)
    assert status == 200, body
    assert headers["Content-Type"] == "application/json"
    return strict_json(body)


def test_api_status_counts_are_the_stores_and_those_of_profit_status_json(study, server):
    served = get_json(server, "/api/status")
    status = study.status()
    expected = {state.name.lower(): status.counts[state] for state in RunState}
    assert served["counts"] == expected
    assert served["total"] == NTRAIN == sum(expected.values())
    assert served["running_pid"] is None  # finished: no process runs it

    code, printed = run_cli("status", study.directory, "--json")
    assert code == 0
    from_cli = strict_json(printed.encode())
    assert from_cli["counts"] == served["counts"]
    served.pop("generated"), from_cli.pop("generated")
    assert from_cli == served


def test_failure_groups_carry_the_reasons_and_the_runs(study, server):
    groups = get_json(server, "/api/status")["failure_groups"]
    expected: dict[str, list[int]] = {}
    for run_id, reason in study.status().failures:
        expected.setdefault(reason, []).append(run_id)
    assert {group["reason"]: group["runs"] for group in groups} == expected
    assert all(group["state"] == "failed" and group["count"] == len(group["runs"]) for group in groups)
    assert any("u is too large for the model" in reason for reason in expected)
    assert any("the solver did not converge" in reason for reason in expected)
    # Largest group first.
    assert [group["count"] for group in groups] == sorted((group["count"] for group in groups), reverse=True)


def test_snapshot_columns_align_with_the_results(study, server):
    status, _, body = request(server, "/api/snapshot")
    assert status == 200
    assert b"NaN" not in body  # (failed runs' outputs are NaN in the results: null in JSON)
    snapshot = strict_json(body)
    results = study.results()
    runs = snapshot["runs"]
    assert runs["inputs"] == ["u", "v"] and runs["outputs"] == ["f", "g[0]", "g[1]"]
    assert runs["count"] == len(results) == NTRAIN
    columns = runs["columns"]
    assert columns["run"] == list(range(NTRAIN))
    for name in ("u", "v", "f", "started", "ended", "duration"):
        assert columns[name] == as_json_column(results[name]), name
    for index in range(2):
        assert columns[f"g[{index}]"] == as_json_column(results["g"][:, index])
    assert columns["state"] == results["state"].tolist()
    assert columns["reason"] == results["reason"].tolist()
    failed = results["state"] == "failed"
    assert all(columns["f"][i] is None for i in np.flatnonzero(failed))
    assert all(isinstance(columns["f"][i], float) for i in np.flatnonzero(~failed))
    # The throughput ends at every finished run.
    assert snapshot["throughput"][-1][1] == NTRAIN
    assert snapshot["status"]["counts"]["failed"] == int(failed.sum())


def test_a_failed_runs_log_is_served(study, server):
    run_id, reason = next((r, why) for r, why in study.status().failures if "ValueError" in why)
    status, headers, body = request(server, f"/log/{run_id}")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    text = body.decode()
    assert "ValueError: u is too large for the model" in text and "Traceback" in text
    # A run that has no log (done, it wrote none) and one that does not exist: 404.
    done = int(np.flatnonzero(study.results()["state"] == "done")[0])
    if not os.path.exists(os.path.join(study.directory, "log", f"run_{done:03d}.log")):
        assert request(server, f"/log/{done}")[0] == 404
    assert request(server, "/log/999999")[0] == 404


@pytest.mark.parametrize(
    "path",
    [
        "/log/../..",
        "/log/../../etc/passwd",
        "/log/%2e%2e/x",
        "/log/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/../../etc/passwd",
        "//etc/passwd",
        "/etc/passwd",
        "http://127.0.0.1/etc/passwd",
        "/log//etc/passwd",
        "/log/1e3",
        "/log/-1",
        "/log/4/../../profit.yaml",
        "/profit.yaml",
        "/profit-study.npy",
        "/log/run_004.log",
        "/page.js",
    ],
)
def test_paths_outside_the_api_are_not_found_and_serve_no_file(study, server, path):
    status, _, body = request(server, path)
    if path.startswith("http://"):  # an absolute URI is not a path of this server: a bad request
        assert (status, body) == (400, b"only paths are answered (GET /...)\n")
    else:
        assert status == 404, (path, body)
        assert body == b"not found\n" or body == b"this run has no log\n"
    with open("/etc/passwd", "rb") as file:
        assert file.read(20) not in body
    with open(study.file.path, "rb") as file:
        assert file.read() not in body


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_writing_methods_are_refused_and_change_nothing(study, server, method):
    before = tree_state(study.directory)
    for path in ("/", "/api/status", "/api/snapshot", "/log/4", "/profit.yaml"):
        status, headers, body = request(server, path, method, body=b'{"state": "done"}')
        assert status == 405, (method, path)
        assert headers["Allow"] == "GET, HEAD"
    # Reading changes nothing either.
    for path in ("/", "/api/status", "/api/snapshot", "/log/4"):
        request(server, path)
    assert tree_state(study.directory) == before


def test_head_answers_without_a_body(server):
    status, headers, body = request(server, "/api/status", "HEAD")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) > 0


def test_a_token_is_required_when_one_is_set(study):
    with serving(study, token="s3cret-token") as guarded:
        for path in ("/", "/api/status", "/api/snapshot", "/log/4"):
            assert request(guarded, path)[0] == 403, path
            assert request(guarded, path + "?token=wrong")[0] == 403, path
            assert request(guarded, path + "?token=")[0] == 403, path
        assert request(guarded, "/?token=s3cret-token")[0] == 200
        status, _, body = request(guarded, "/api/status?token=s3cret-token")
        assert status == 200 and strict_json(body)["total"] == NTRAIN
        assert request(guarded, "/log/999999?token=s3cret-token")[0] == 404
        assert guarded.url.endswith("/?token=s3cret-token")


class Lines:
    """The lines a process writes to a pipe, read by a thread: next() waits with a timeout."""

    def __init__(self, stream):
        self.queue: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream):
        for line in stream:
            self.queue.put(line)
        self.queue.put(None)

    def next(self, timeout=30.0):
        line = self.queue.get(timeout=timeout)
        assert line is not None, "the process closed its output"
        return line


def test_profit_ui_on_another_host_warns_and_prints_a_url_with_a_token(study):
    process = subprocess.Popen(
        [PROFIT, "ui", study.directory, "--host", "0.0.0.0", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        warning = Lines(process.stderr).next()
        assert "warning" in warning and "0.0.0.0" in warning and "token" in warning
        first = Lines(process.stdout).next()
        url = re.search(r"http://\S+", first)
        assert url, first
        parts = urllib.parse.urlsplit(url.group())
        token = urllib.parse.parse_qs(parts.query)["token"][0]
        assert len(token) >= 16
        address = ("127.0.0.1", parts.port)
        assert request(address, "/api/status")[0] == 403
        assert request(address, f"/api/status?token={token}x")[0] == 403
        status, _, body = request(address, f"/api/status?token={token}")
        assert status == 200 and strict_json(body)["total"] == NTRAIN
    finally:
        process.terminate()
        process.wait(20)


def test_profit_ui_on_loopback_needs_no_token(study):
    process = subprocess.Popen(
        [PROFIT, "ui", study.directory, "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        first = Lines(process.stdout).next()
        url = urllib.parse.urlsplit(re.search(r"http://\S+", first).group())
        assert url.hostname == "127.0.0.1" and "token" not in url.query
        assert request(("127.0.0.1", url.port), "/api/status")[0] == 200
    finally:
        process.terminate()
        process.wait(20)


def embedded_data(html):
    found = re.search(r'<script id="profit-data" type="application/json">(.*?)</script>', html, re.S)
    assert found, "no embedded data"
    return found, strict_json(found.group(1).encode())


def test_profit_report_writes_one_self_contained_file(study, tmp_path):
    target = tmp_path / "report.html"
    code, printed = run_cli("report", study.directory, "-o", target)
    assert code == 0 and str(target) in printed
    assert os.listdir(tmp_path) == ["report.html"]  # one file
    html = target.read_text()
    for state in STATES:
        assert f'id="count-{state}"' in html
    found, data = embedded_data(html)
    assert data["status"]["counts"] == status_data(study)["counts"]
    assert data["runs"]["columns"]["state"] == study.results()["state"].tolist()
    # The failed runs' logs travel with it (no server to ask).
    failed = [run_id for run_id, _ in study.status().failures]
    assert set(data["logs"]) == {str(run_id) for run_id in failed}
    assert all("Traceback" in text for text in data["logs"].values())
    # Nothing outside the data reaches the network (a data: URL is no fetch).
    rest = html[: found.start()] + html[found.end() :]
    lowered = rest.lower()
    fetches = (r"<script[^>]*\ssrc\s*=", r"<link[^>]*\shref\s*=\s*(?![\"']?data:)", "@import", r"url\(\s*['\"]?https?:")
    for pattern in fetches:
        assert not re.search(pattern, lowered), pattern
    # (an SVG namespace is a name, not a fetch)
    assert not re.findall(r"https?://(?!www\.w3\.org/)", rest)


def test_profit_report_refuses_a_study_that_has_not_run(tmp_path):
    fresh = profit.Study.create(
        tmp_path / "fresh", inputs={"u": "Uniform(0, 1)", "v": "Uniform(0, 1)"}, outputs=["f"],
        run={"worker": ui_models.quick}, ntrain=3,
    )  # fmt: skip
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code, _ = run_cli("report", fresh.directory, "-o", tmp_path / "r.html")
    assert code == 2 and "has not been run yet" in err.getvalue()
    assert not (tmp_path / "r.html").exists()


def test_profit_plot_writes_png_and_svg_figures(study, tmp_path):
    pytest.importorskip("matplotlib", reason="profit plot needs matplotlib (the plot extra)")
    target = tmp_path / "plots"
    code, printed = run_cli("plot", study.directory, "-o", target)
    assert code == 0 and "figures written" in printed
    names = sorted(os.listdir(target))
    stems = ["states", "throughput", "durations"] + [f"{y}-vs-{x}" for y in ("f", "g_0", "g_1") for x in ("u", "v")]
    assert names == sorted(f"{stem}.{ext}" for stem in stems for ext in ("png", "svg"))
    for stem in stems:
        assert (target / f"{stem}.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
        svg = (target / f"{stem}.svg").read_text()
        assert "<svg" in svg and svg.rstrip().endswith("</svg>")
    # The failed runs are drawn: as many red x markers as failed runs (each an SVG <use> of the marker).
    failed = len(study.status().failures)
    assert f"failed ({failed})" in (target / "f-vs-u.svg").read_text()
    assert f"done ({study.status().done})" in (target / "f-vs-u.svg").read_text()


def test_profit_plot_without_matplotlib_says_what_to_install(study, tmp_path, monkeypatch):
    from profit.plots import write_plots

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # (import matplotlib raises ImportError)
    with pytest.raises(ConfigError, match=r"install 'profit-run\[plot\]'"):
        write_plots(study, tmp_path / "plots")
    assert not (tmp_path / "plots").exists()


def test_a_run_is_not_refused_because_a_page_reads_the_lock(tmp_path):
    """The page (and profit status) ask who holds the study's lock, taking it shared for an instant;
    a run starting at that instant must still get it."""
    (tmp_path / "s").mkdir()
    folder = str(tmp_path / "s")
    stop = threading.Event()

    def peek():
        while not stop.is_set():
            StudyLock(folder).holder()

    reader = threading.Thread(target=peek)
    reader.start()
    try:
        refused = 0
        for _ in range(300):
            lock = StudyLock(folder)
            if lock.acquire():
                lock.release()
            else:
                refused += 1
    finally:
        stop.set()
        reader.join()
    assert refused == 0
    held = StudyLock(folder)
    assert held.acquire()
    try:  # a real holder still keeps others out
        assert not StudyLock(folder).acquire()
    finally:
        held.release()


# --- a running study -----------------------------------------------------------------------------


def test_the_page_does_not_block_a_running_study(tmp_path):
    """200 runs wait at a gate until the poller has seen runs running; then all finish while it polls."""
    count = 200
    gate = tmp_path / "gate"
    study = profit.Study.create(
        tmp_path / "s",
        inputs={"u": "Uniform(0, 1)", "v": "Uniform(0, 1)"},
        outputs=["f"],
        run={"runner": {"class": "pool", "parallel": 4}, "worker": ui_models.gated},
        ntrain=count,
        seed=2,
    )
    env = dict(os.environ, PROFIT_UI_GATE=str(gate))
    with serving(study) as server:
        process = subprocess.Popen(
            [PROFIT, "run", study.directory], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True
        )
        try:
            responses = 0
            done_seen = []
            running_seen = False
            deadline = time.monotonic() + 45
            while process.poll() is None:
                assert time.monotonic() < deadline, "the study did not finish"
                status, _, body = request(server, "/api/snapshot")
                assert status == 200, body
                snapshot = strict_json(body)  # valid JSON, every time
                responses += 1
                counts = snapshot["status"]["counts"]
                done_seen.append(counts["done"])
                if snapshot["status"]["running_pid"] and counts["running"] > 0 and not gate.exists():
                    running_seen = True
                    assert counts["done"] == 0  # (nothing passes the gate before it opens)
                    gate.touch()
            output = process.stdout.read()
        finally:
            if process.poll() is None:
                process.kill()
            process.wait(20)
        assert process.returncode == 0, output
        assert running_seen, "the poller never saw a run running"
        assert done_seen == sorted(done_seen), "done went down"
        final = get_json(server, "/api/snapshot")
    assert final["status"]["counts"]["done"] == count and final["status"]["total"] == count
    assert final["status"]["running_pid"] is None
    assert study.status().done == count
    assert responses > 1


def test_status_json_of_a_running_study_reports_its_process(tmp_path):
    """While runs wait at the gate, profit status --json names the running process and counts them running."""
    gate = tmp_path / "gate"
    study = profit.Study.create(
        tmp_path / "s",
        inputs={"u": "Uniform(0, 1)", "v": "Uniform(0, 1)"},
        outputs=["f"],
        run={"runner": {"class": "pool", "parallel": 2}, "worker": ui_models.gated},
        ntrain=6,
        seed=2,
    )
    env = dict(os.environ, PROFIT_UI_GATE=str(gate))
    process = subprocess.Popen([PROFIT, "run", study.directory], stdout=subprocess.DEVNULL, env=env)
    try:
        wait_for(lambda: study.status().counts[RunState.RUNNING] > 0, timeout=30, what="runs running")
        seen = {}

        def read_while_still():
            """profit status --json, read while the store's counts stood still (runs may still be handed out)."""
            before = store_counts(study)
            code, printed = run_cli("status", study.directory, "--json")
            assert code == 0
            seen.update(data=strict_json(printed.encode()), store=store_counts(study))
            return before == seen["store"]

        wait_for(read_while_still, timeout=30, what="a read while the counts stood still")
        data = seen["data"]
        assert data["running_pid"] == process.pid
        # Nothing finishes before the gate opens. (The pool runner hands every run to its pool at once: they
        # are recorded running.)
        assert data["counts"] == seen["store"]
        assert data["counts"]["running"] > 0 and data["counts"]["done"] == 0
        assert data["rate_per_second"] is None  # (nothing finished yet: no rate, no ETA)
        gate.touch()
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(20)
    assert study.status().done == 6
