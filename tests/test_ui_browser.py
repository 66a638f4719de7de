"""The study's page in a real browser: Debian's chromium, headless, its DOM dumped once the scripts ran.

``--virtual-time-budget`` lets the page's scripts (and the live page's first fetches) run before
chromium writes the DOM. What the page shows is read from the ids the page keeps for this
(``count-<state>``, ``failures``, ``console-errors``) and compared with the study's store.
Skipped, with the reason, where no chromium is installed (.ci/run installs it).
"""

import html
import os
import re
import shutil
import subprocess
import sys

import pytest
import ui_models
from helpers import PROFIT, wait_for
from ui_helpers import request, run_cli, serving, strict_json

import profit
from profit.dashboard import STATES
from profit.run.state import RunState

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium installed (apt-get install chromium)")


def dump_dom(url, tmp_path):
    """The page's DOM after its scripts ran (chromium headless, a fresh profile)."""
    profile = tmp_path / f"chromium-profile-{len(list(tmp_path.iterdir()))}"
    profile.mkdir()
    result = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        timeout=90,
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-2000:]
    dom = result.stdout.decode("utf-8", "replace")
    assert "</html>" in dom, dom[-500:]
    return dom


def shown_counts(dom):
    counts = {}
    for state in STATES:
        found = re.search(rf'<[a-z]+\b[^>]*\bid="count-{state}"[^>]*>([^<]*)<', dom)
        assert found, f"no #count-{state}"
        counts[state] = int(found.group(1).strip().replace(",", "").replace("\u202f", ""))
    return counts


def console_errors(dom):
    found = re.search(r'<pre\b[^>]*\bid="console-errors"[^>]*>(.*?)</pre>', dom, re.S)
    assert found, "no #console-errors"
    return html.unescape(found.group(1))


def failures_text(dom):
    found = re.search(r'\bid="failures"[^>]*>(.*?)</section>', dom, re.S)
    assert found, "no #failures"
    return html.unescape(re.sub(r"<[^>]+>", " ", found.group(1)))


def rendered(dom):
    found = re.search(r'<body\b[^>]*\bdata-rendered="(\d+)"', dom)
    return int(found.group(1)) if found else 0


def store_counts(study):
    status = study.status()
    return {state.name.lower(): status.counts[state] for state in RunState}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    made = profit.Study.create(
        tmp_path_factory.mktemp("browser") / "study",
        inputs={"u": "Uniform(0, 1)", "v": "Uniform(0, 1)"},
        outputs={"f": None, "g": 2},
        run={"runner": {"class": "pool", "parallel": 2}, "worker": ui_models.flaky},
        ntrain=40,
        seed=1,
    )
    made.run()
    assert made.status().failed and made.status().done
    return made


def check_finished_page(dom, study):
    assert console_errors(dom) == ""
    assert rendered(dom) >= 1, "the page's script did not draw"
    assert shown_counts(dom) == store_counts(study)
    shown = failures_text(dom)
    for _, reason in study.status().failures:
        assert reason in shown, reason
    assert "u is too large for the model" in shown and "the solver did not converge" in shown


def test_the_live_page_of_a_finished_study(study, tmp_path):
    with serving(study) as server:
        dom = dump_dom(server.url, tmp_path)
    assert 'data-mode="live"' in dom
    check_finished_page(dom, study)


def test_the_live_page_behind_a_token_fetches_with_it(study, tmp_path):
    with serving(study, token="browser-token") as server:
        assert "?token=browser-token" in server.url
        dom = dump_dom(server.url, tmp_path)
    check_finished_page(dom, study)
    assert not re.search(r"<body\b[^>]*\bdata-fetch-failed=", dom)  # (every fetch carried the token)


def test_the_report_file(study, tmp_path):
    target = tmp_path / "report.html"
    code, _ = run_cli("report", study.directory, "-o", target)
    assert code == 0
    dom = dump_dom(target.as_uri(), tmp_path)
    assert 'data-mode="report"' in dom
    check_finished_page(dom, study)


def test_the_live_page_of_a_running_study_shows_the_store_of_that_moment(tmp_path):
    """Runs with u < 0.5 finish at once, the others wait at a gate file: the page is loaded while they wait.

    The quick runs come first (a table of inputs), so that the slow ones, three at a time, hold up none of them.
    """
    gate = tmp_path / "gate"
    quick, slow = 9, 6
    study = profit.Study.create(
        tmp_path / "s",
        inputs={
            "u": [0.1 * (i % 5) for i in range(quick)] + [0.6] * slow,
            "v": [float(i) for i in range(quick + slow)],
        },
        outputs=["f"],
        run={"runner": {"class": "pool", "parallel": 3}, "worker": ui_models.half_gated},
    )
    env = dict(os.environ, PROFIT_UI_GATE=str(gate))
    process = subprocess.Popen([PROFIT, "run", study.directory], stdout=subprocess.DEVNULL, env=env)
    try:
        wait_for(lambda: study.status().done == quick, timeout=30, what="the quick runs to finish")
        wait_for(lambda: study.status().running_pid == process.pid, timeout=30, what="the run's lock")
        with serving(study) as server:
            before = strict_json(request(server, "/api/status")[2])
            dom = dump_dom(server.url, tmp_path)
            after = strict_json(request(server, "/api/status")[2])
        shown = shown_counts(dom)
        assert console_errors(dom) == ""
        assert before["running_pid"] == process.pid == after["running_pid"]
        for state in STATES:
            low, high = sorted((before["counts"][state], after["counts"][state]))
            assert low <= shown[state] <= high, (state, before["counts"], shown, after["counts"])
        assert shown["done"] == quick and shown["running"] > 0
        assert sum(shown.values()) == quick + slow
        gate.touch()
        assert process.wait(60) == 0
    finally:
        gate.touch()
        if process.poll() is None:
            process.kill()
            process.wait(20)
    assert study.status().done == quick + slow


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-v"]))
