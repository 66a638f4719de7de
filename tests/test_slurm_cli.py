"""profit run with the slurm runner, against the fake Slurm commands of ``tests/fake_slurm``:
errors in one sentence, Ctrl-C, a killed runner's jobs, results written while arrays wait.
"""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from helpers import FAKE_SLURM, PROFIT, STUDY, make_study, profit, runs_done, wait_for


@pytest.mark.parametrize(
    "failure, message",
    [
        (
            "permanent",
            "submitting runs to Slurm failed: sbatch failed (exited with code 1: sbatch: error: Batch job "
            "submission failed: Invalid account or account/partition combination specified); the batch script is",
        ),
        ("missing", "sbatch was not found; the slurm runner needs Slurm's commands on PATH"),
    ],
)
def test_profit_run_reports_a_failing_sbatch_in_one_sentence(tmp_path, fake_slurm, monkeypatch, failure, message):
    if failure == "missing":
        monkeypatch.setenv("PATH", os.path.dirname(sys.executable))  # python, but no Slurm commands
    else:
        monkeypatch.setenv("FAKE_SLURM_SBATCH_FAIL", failure)
    study = make_study(tmp_path / "study", STUDY.format(ntrain=3, runner="slurm"))
    done = profit("run", str(study))
    # A scheduler that fails is an outage (5), not a mistake in the study; no Slurm here is a setup mistake (2).
    assert done.returncode == (2 if failure == "missing" else 5)
    assert done.stderr.startswith("profit: ") and message in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    status = profit("status", str(study))  # the study's state is intact: fix the cause, run again
    assert status.returncode == 0 and "0 done, 0 failed" in status.stdout, status.stdout + status.stderr


def test_ctrl_c_cancels_the_jobs_and_keeps_results(tmp_path, fake_slurm, monkeypatch):
    """Ctrl-C while arrays wait for their turn (MaxArraySize 4, parallel 2): no further array is
    submitted, the jobs in flight are cancelled, the results that arrived are kept."""
    monkeypatch.setenv("FAKE_SLURM_MAX_ARRAY_SIZE", "4")
    runner = "{class: slurm, parallel: 2, min_poll: 0.1}"
    study = make_study(tmp_path / "study", STUDY.format(ntrain=12, runner=runner), sleep=0.5)
    process = subprocess.Popen([PROFIT, "run", str(study)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: runs_done(study) >= 2, timeout=60, what="two runs to finish")
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, out + err
    queued = subprocess.run([str(FAKE_SLURM / "squeue"), "-h", "-o", "%i %T"], capture_output=True, text=True).stdout
    assert queued.strip() == "", f"jobs still queued or running after Ctrl-C: {queued}"
    arrays = (study / "runner.log").read_text().count("are Slurm job array")
    assert 1 <= arrays < 3  # of the 3 arrays of 4 runs, the last was never submitted
    saved = np.genfromtxt(study / "output.txt", names=True)
    assert 2 <= np.count_nonzero(~np.isnan(saved["f"])) < 12
    again = profit("run", str(study))
    assert again.returncode == 0 and "12 runs: 12 done" in again.stdout, again.stdout + again.stderr


def test_restart_cancels_the_jobs_of_a_killed_runner(tmp_path, fake_slurm):
    study = make_study(tmp_path / "study", STUDY.format(ntrain=6, runner="{class: slurm, min_poll: 0.1}"), sleep=30)
    process = subprocess.Popen([PROFIT, "run", str(study)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    meta = study / "profit-study.json"
    wait_for(
        lambda: meta.exists() and json.loads(meta.read_text()).get("batch_jobs"),
        timeout=30,
        what="the runner to note its jobs",
    )
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    jobs = json.loads(meta.read_text())["batch_jobs"]
    make_study(tmp_path / "study", STUDY.format(ntrain=6, runner="{class: slurm, min_poll: 0.1}"), sleep=0)
    again = profit("run", "--restart", str(study))
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"cancelling 1 batch jobs left by the previous runner ({jobs[0]})" in again.stdout
    queued = subprocess.run([str(FAKE_SLURM / "squeue"), "-h", "-o", "%i %T"], capture_output=True, text=True).stdout
    assert queued.strip() == ""


def test_results_are_written_while_arrays_wait_for_their_turn(tmp_path, fake_slurm, monkeypatch):
    """parallel 1 and MaxArraySize 2: six arrays one after the other; output.txt fills as they go."""
    monkeypatch.setenv("FAKE_SLURM_MAX_ARRAY_SIZE", "2")
    study = make_study(
        tmp_path / "study", STUDY.format(ntrain=12, runner="{class: slurm, parallel: 1, min_poll: 0.1}"), sleep=0.3
    )
    process = subprocess.Popen([PROFIT, "run", str(study)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:

        def some_results_written():
            path, log = study / "output.txt", study / "runner.log"
            if not path.exists() or not log.exists():
                return False
            submitted = log.read_text().count("are Slurm job array")
            written = np.genfromtxt(path, names=True)
            # Results on disk while the later arrays still wait to be submitted.
            return np.count_nonzero(~np.isnan(written["f"])) > 0 and submitted < 6

        wait_for(some_results_written, timeout=60, what="output.txt to show results before the study ends")
    finally:
        out, err = process.communicate(timeout=120)
    assert process.returncode == 0 and "12 runs: 12 done" in out, out + err


def test_study_from_python_on_the_fake_slurm_grows_and_keeps_its_results(tmp_path, fake_slurm):
    from profit import Study

    template = make_study(tmp_path / "elsewhere", "") / "template"  # the simulation, in a directory of its own
    study = Study.create(
        tmp_path / "study",
        inputs={"u": "Uniform(0, 1)", "v": "Halton(2, 3)"},
        outputs=["f", "g"],
        run={
            "runner": {"class": "slurm", "min_poll": 0.1},
            "pre": {"class": "template", "path": str(template)},
            "command": "./simulation",
        },
        ntrain=3,
        seed=4,
    )
    study.run()
    first = study.results()
    assert (first["state"] == "done").all()
    np.testing.assert_array_equal(first["f"], first["u"] + first["v"])
    assert list(study.extend(2)) == [3, 4]
    study.run()
    results = study.results()
    np.testing.assert_array_equal(results[:3], first)  # not run again
    np.testing.assert_array_equal(results["g"], results["u"] * results["v"])
    assert (results["state"] == "done").all() and (results["attempts"] == 1).all()
