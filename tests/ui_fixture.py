"""A dev harness for the study's web page (src/profit/ui): studies with failures, and report-mode files.

``python tests/ui_fixture.py OUTDIR`` makes a small real study (some runs fail, one output is a vector),
a synthetic snapshot of 100000 runs and an empty one, and writes each as a self-contained report-mode
HTML file (``OUTDIR/*.html``) to open in a browser. Not a test module (its name does not start with test_).
"""

from __future__ import annotations

import json
import math
import os
import random
import sys
import time
from pathlib import Path

UI = Path(__file__).resolve().parents[1] / "src" / "profit" / "ui"


def flaky(u, v) -> ["f", "g"]:  # noqa: F821, UP037  (the return annotation names the outputs)
    """Fails for some inputs (two different reasons), else returns a scalar and a 3-vector."""
    if u > 0.8:
        raise ValueError("u too large for the model")
    if v < 0.1:
        raise RuntimeError("solver did not converge")
    print(f"computing at u={u} v={v}")
    return math.sin(6 * u) + v, [u, v, u * v]


def page(snap: dict | None, logs: dict | None = None) -> str:
    """page.html with the CSS and JS inlined; with ``snap``, report mode (the data embedded)."""
    html = (UI / "page.html").read_text()
    html = html.replace("<!--PROFIT:STYLE-->", "<style>" + (UI / "page.css").read_text() + "</style>")
    html = html.replace("<!--PROFIT:SCRIPT-->", "<script>" + (UI / "page.js").read_text() + "</script>")
    data = ""
    if snap is not None:
        payload = dict(snap, logs={str(k): v for k, v in (logs or {}).items()})
        text = json.dumps(payload).replace("<", "\\u003c")
        data = f'<script id="profit-data" type="application/json">{text}</script>'
    return html.replace("<!--PROFIT:DATA-->", data)


def real_study(directory: Path) -> tuple[dict, dict]:
    import profit
    from profit.dashboard import run_log, snapshot

    if (directory / "profit.yaml").exists():
        study = profit.Study.load(str(directory))
    else:
        sys.path.insert(0, str(Path(__file__).parent))
        import ui_fixture

        study = profit.Study.create(
            directory,
            inputs={"u": "Uniform(0, 1)", "v": "Uniform(0, 1)"},
            outputs={"f": None, "g": 3},
            run={"worker": ui_fixture.flaky},
            ntrain=60,
            seed=1,
        )
        study.run()
    snap = snapshot(study)
    logs = {}
    for group in snap["status"]["failure_groups"]:
        for run_id in group["runs"]:
            text = run_log(study, run_id)
            if text is not None:
                logs[run_id] = text
    return snap, logs


def synthetic(n: int, seed: int = 0, running: bool = True) -> dict:
    """A made-up snapshot of ``n`` runs (all states, NaNs, long reasons) without running anything."""
    rng = random.Random(seed)
    now = time.time()
    start = now - 3600
    states = ["done"] * 70 + ["failed"] * 8 + ["cancelled"] * 2 + ["pending"] * 15 + ["running"] * 5
    reasons = ["", "exit status 1: segmentation fault in solver <core dumped>", "timeout after 600 s", "NaN & ∞"]
    cols: dict[str, list] = {
        k: []
        for k in ("run", "a", "b", "y", "z[0]", "z[1]", "state", "reason", "attempts", "started", "ended", "duration")
    }
    for i in range(n):
        state = rng.choice(states) if running else rng.choice(["done", "failed"])
        a, b = rng.uniform(-1, 1), rng.lognormvariate(0, 1)
        cols["run"].append(i)
        cols["a"].append(a)
        cols["b"].append(b if rng.random() > 0.01 else None)
        done = state == "done"
        cols["y"].append(a * a + rng.gauss(0, 0.1) if done else None)
        cols["z[0]"].append(b * 2 if done else None)
        cols["z[1]"].append((None if rng.random() < 0.05 else -a) if done else None)
        cols["state"].append(state)
        reason = "" if state in ("done", "pending", "running") else rng.choice(reasons[1:])
        cols["reason"].append(reason)
        cols["attempts"].append(1 if state != "pending" else 0)
        started = start + rng.uniform(0, 3500) if state != "pending" else None
        duration = rng.lognormvariate(1, 0.5) if state in ("done", "failed") else None
        cols["started"].append(started)
        cols["ended"].append(started + duration if duration is not None else None)
        cols["duration"].append(duration)
    counts = {s: cols["state"].count(s) for s in ("pending", "running", "done", "failed", "cancelled")}
    groups: dict[tuple, list] = {}
    for i, (s, r) in enumerate(zip(cols["state"], cols["reason"])):
        if s in ("failed", "cancelled"):
            groups.setdefault((s, r), []).append(i)
    ended = sorted(e for e, s in zip(cols["ended"], cols["state"]) if e is not None and s in ("done", "failed"))
    step = max(1, len(ended) // 300)
    throughput = [[t, k + 1] for k, t in enumerate(ended)][::step]
    finished = counts["done"] + counts["failed"]
    return {
        "status": {
            "study": "/data/studies/synthetic/profit.yaml",
            "directory": "/data/studies/synthetic",
            "generated": now,
            "total": n,
            "counts": counts,
            "finished_percent": 100.0 * finished / max(n, 1),
            "running_pid": 4242 if running else None,
            "started": start,
            "ended": None if running else now,
            "rate_per_second": finished / 3600 if running else None,
            "eta_seconds": (n - finished) / max(finished / 3600, 1e-9) if running else None,
            "failure_groups": [
                {"state": s, "reason": r, "count": len(ids), "runs": ids[:200]}
                for (s, r), ids in sorted(groups.items(), key=lambda kv: -len(kv[1]))
            ],
        },
        "runs": {"inputs": ["a", "b"], "outputs": ["y", "z[0]", "z[1]"], "count": n, "columns": cols},
        "throughput": throughput,
    }


def empty() -> dict:
    snap = synthetic(0, running=False)
    snap["status"].update(ended=None, started=None, finished_percent=0.0)
    return snap


def main(out: str) -> None:
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    snap, logs = real_study(out_dir / "study")
    (out_dir / "study.json").write_text(json.dumps(snap))
    (out_dir / "real.html").write_text(page(snap, logs))
    (out_dir / "big.html").write_text(page(synthetic(100_000)))
    (out_dir / "mid.html").write_text(page(synthetic(500, seed=2), {3: "line 1\nline 2 <b>not bold</b>\n"}))
    (out_dir / "empty.html").write_text(page(empty()))
    (out_dir / "live.html").write_text(page(None))
    print("wrote", sorted(os.listdir(out_dir)))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/profit-ui")
