"""Make docs/ui.png (the live page of ``profit ui``) and docs/report.png (the file ``profit report`` writes).

A demo study of 300 runs of a damped oscillator, some of which fail (two reasons), is made and run
in a temporary directory; its live page (served by a StudyServer on a free loopback port) and its
report are photographed with headless chromium (Debian's ``chromium``)::

    .venv/bin/python docs/screenshots.py [--size 1280,2000]
"""

import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading

import profit
from profit.uiserver import StudyServer, page_html, report_data

DOCS = os.path.dirname(os.path.abspath(__file__))


def oscillator(damping, frequency) -> ["amplitude", "phase"]:  # noqa: F821  (the return annotation names the outputs)
    """The amplitude and phase of a driven damped oscillator; fails where the demo's solver would."""
    if damping < 0.05:
        raise RuntimeError("the integrator did not converge (damping too small)")
    if frequency > 1.9:
        raise ValueError("the frequency is above the model's range (1.9)")
    detuning = 1.0 - frequency**2
    amplitude = 1.0 / math.sqrt(detuning**2 + (2 * damping * frequency) ** 2)
    phase = math.atan2(2 * damping * frequency, detuning)
    print(f"damping={damping:.4f} frequency={frequency:.4f}: amplitude {amplitude:.4f}, phase {phase:.4f}")
    return amplitude, phase


def shoot(chromium: str, url: str, target: str, size: str, profile: str) -> None:
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            f"--window-size={size}",
            "--virtual-time-budget=5000",
            f"--screenshot={target}",
            url,
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    print(f"wrote {target}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="1280,2000", help="the browser window, width,height (default 1280,2000)")
    parser.add_argument("--out", default=DOCS, help="where to write ui.png and report.png (default docs/)")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("no chromium: apt-get install chromium")

    with tempfile.TemporaryDirectory(prefix="profit-screenshots-") as base:
        # The worker must be importable by name in the worker processes: this file's directory on sys.path.
        sys.path.insert(0, DOCS)
        import screenshots

        study = profit.Study.create(
            os.path.join(base, "oscillator"),
            inputs={"damping": "Uniform(0.01, 0.5)", "frequency": "Uniform(0.2, 2.0)"},
            outputs=["amplitude", "phase"],
            run={"runner": {"class": "pool", "parallel": 2}, "worker": screenshots.oscillator},
            ntrain=300,
            seed=7,
        )
        with open(os.devnull, "w") as quiet:  # (the runs' prints)
            stdout, sys.stdout = sys.stdout, quiet
            try:
                study.run()
            finally:
                sys.stdout = stdout
        status = study.status()
        print(f"demo study: {status.total} runs, {status.done} done, {status.failed} failed")

        server = StudyServer(study)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        thread.start()
        try:
            shoot(chromium, server.url, os.path.join(args.out, "ui.png"), args.size, os.path.join(base, "p1"))
        finally:
            server.shutdown()
            server.server_close()

        report = os.path.join(base, "report.html")
        with open(report, "w", encoding="utf-8") as file:
            file.write(page_html(report_data(study)))
        shoot(chromium, "file://" + report, os.path.join(args.out, "report.png"), args.size, os.path.join(base, "p2"))


if __name__ == "__main__":
    main()
