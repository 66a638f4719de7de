"""The profit command, driven as a user drives it: in a subprocess, on study directories."""

import os
import signal
import stat
import subprocess
import time

import numpy as np
import pytest
from helpers import PROFIT, STUDY, make_study, profit, runs_done, wait_for

VARIABLES = "variables:\n  u: Uniform(0, 1)\n  f: Output\n"


def executions(folder):
    """(kind, u, time) of each line the simulation logged."""
    path = folder / "executions.log"
    if not path.exists():
        return []
    return [(kind, float(u), float(at)) for kind, u, at in (line.split() for line in path.read_text().splitlines())]


@pytest.mark.parametrize("runner", ["fork", "local", "pool"])
def test_full_study(tmp_path, runner):
    study = make_study(tmp_path / "study", STUDY.format(ntrain=12, runner=runner))
    done = profit("run", str(study))
    assert done.returncode == 0, done.stderr
    assert "12 runs: 12 done, 0 failed" in done.stdout
    inputs = np.genfromtxt(study / "input.txt", names=True)
    outputs = np.genfromtxt(study / "output.txt", names=True)
    assert inputs.dtype.names == ("u", "v") and outputs.dtype.names == ("f", "g")
    assert len(inputs) == len(outputs) == 12
    np.testing.assert_array_equal(outputs["f"], inputs["u"] + inputs["v"])
    np.testing.assert_array_equal(outputs["g"], inputs["u"] * inputs["v"])
    assert ((2 <= inputs["v"]) & (inputs["v"] <= 3)).all()
    assert len(executions(study)) == 24  # each run once (a start and an end line)
    status = profit("status", str(study))
    assert "12 done, 0 failed" in status.stdout and "not running" in status.stdout
    # Running again finds nothing left to do.
    again = profit("run", str(study))
    assert again.returncode == 0 and "12 runs done before, 0 to run" in again.stdout
    assert len(executions(study)) == 24


def test_failed_runs_are_reported_and_keep_their_rows(tmp_path):
    study = make_study(tmp_path / "study", STUDY.format(ntrain=10, runner="fork"), fail_below=0.3)
    done = profit("run", str(study))
    inputs = np.genfromtxt(study / "input.txt", names=True)
    outputs = np.genfromtxt(study / "output.txt", names=True)
    bad = inputs["u"] < 0.3
    assert bad.any() and not bad.all()
    assert done.returncode == 1
    assert f"{(~bad).sum()} done, {bad.sum()} failed" in done.stdout
    assert "exited with code 4; stderr ends: u=" in done.stdout
    assert np.isnan(outputs["f"][bad]).all() and not np.isnan(outputs["f"][~bad]).any()
    assert "failed:" in (study / "output.txt").read_text().splitlines()[-1]  # the reason is in the file too
    status = profit("status", str(study))
    assert f"{bad.sum()} failed" in status.stdout
    assert status.stdout.count("failed: CommandError") == bad.sum()


def test_output_file_formats(tmp_path):
    pytest.importorskip("h5py")
    import h5py

    for extension in ("csv", "npy", "hdf5"):
        yaml = STUDY.format(ntrain=3, runner="fork") + f"files:\n  input: in.{extension}\n  output: out.{extension}\n"
        study = make_study(tmp_path / extension, yaml)
        done = profit("run", str(study))
        assert done.returncode == 0, done.stderr
        path = study / f"out.{extension}"
        if extension == "csv":
            outputs = np.genfromtxt(path, names=True, delimiter=",")
            inputs = np.genfromtxt(study / "in.csv", names=True, delimiter=",")
        elif extension == "npy":
            outputs, inputs = np.load(path), np.load(study / "in.npy")
        else:
            with h5py.File(path) as file, h5py.File(study / "in.hdf5") as infile:
                outputs = {"f": file["f"][()]}
                inputs = {"u": infile["u"][()], "v": infile["v"][()]}
                assert list(file.attrs["state"]) == ["done"] * 3
        np.testing.assert_array_equal(outputs["f"], inputs["u"] + inputs["v"])


@pytest.mark.parametrize(
    "yaml, fragment",
    [
        (
            "ntrain: 3\n" + VARIABLES + "run:\n  runner: [fork\n",
            "profit.yaml line 7: not valid YAML: expected ',' or ']', but got '<stream end>' "
            "(while parsing a flow sequence that starts on line 6)",
        ),
        ("ntrian: 3\n" + VARIABLES, "unknown key 'ntrian'; did you mean 'ntrain'?"),
        (VARIABLES + "run: {comand: ./x}\n", "unknown key 'run.comand'; did you mean 'command'?"),
        ("variables:\n  u: Uniform(0,\n  f: Output\n", "variable 'u': cannot read 'Uniform(0,'"),
        (
            "variables:\n  u: Unifrom(0, 1)\n  f: Output\n",
            "variable 'u': unknown kind 'Unifrom'; did you mean 'Uniform'?",
        ),
        ("variables:\n  u: Uniform(a, b)\n  f: Output\n", "variable 'u': Uniform(a, b) takes numbers"),
        ("variables:\n  u: Uniform(0, 1)\n  f: Output(t)\n", "'t' is not an Independent variable"),
        (
            VARIABLES + "include: broken.py\n",
            "broken.py failed to import: ZeroDivisionError: division by zero (line 1 of broken.py)",
        ),
        (VARIABLES + "run: {runner: forky}\n", "unknown Runner label 'forky'"),
        (VARIABLES + "ntrain: -2\n", "ntrain must be a whole number >= 0 (runs to sample), got -2"),
        (VARIABLES + "files: {output: out.xlsx}\n", "files.output is"),
    ],
)
def test_bad_study_file(tmp_path, yaml, fragment):
    (tmp_path / "profit.yaml").write_text(yaml)
    (tmp_path / "broken.py").write_text("1 / 0\n")
    done = profit("run", str(tmp_path))
    assert done.returncode == 2
    assert fragment in done.stderr
    assert done.stderr.startswith("profit: ") and len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["broken.py", "profit.yaml"]  # nothing written


def test_missing_study_file_and_debug_traceback(tmp_path):
    done = profit("run", str(tmp_path / "nowhere"))
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"profit: no study file at {tmp_path / 'nowhere' / 'profit.yaml'}; "
        "give a directory holding profit.yaml or the YAML file itself"
    )
    debug = profit("run", "--debug", str(tmp_path / "nowhere"))
    assert "Traceback" in debug.stderr


def test_version_and_help():
    assert profit("--version").stdout.startswith("profit ")
    for command in ("run", "status", "clean"):
        assert profit(command, "--help").returncode == 0


def test_ignored_sections_and_changed_inputs(tmp_path):
    yaml = STUDY.format(ntrain=2, runner="fork") + "fit:\n  surrogate: GPy\nui:\n  plot: true\n"
    study = make_study(tmp_path / "study", yaml)
    done = profit("run", str(study))
    assert done.returncode == 0
    assert "section 'fit' is for other proFit tasks; ignored" in done.stdout
    (study / "profit.yaml").write_text(yaml.replace("ntrain: 2", "ntrain: 3"))
    grown = profit("run", str(study))  # more runs: the study grows
    assert grown.returncode == 0 and "3 runs: 3 done" in grown.stdout
    (study / "profit.yaml").write_text(yaml.replace("ntrain: 2", "ntrain: 3").replace("Halton(2, 3)", "Halton(2, 4)"))
    changed = profit("run", str(study))
    assert changed.returncode == 2 and "'profit run --restart' starts over" in changed.stderr
    restarted = profit("run", "--restart", str(study))
    assert restarted.returncode == 0 and "3 runs: 3 done" in restarted.stdout


@pytest.mark.parametrize("runner", ["fork", "local", "pool"])
def test_kill_the_runner_and_continue(tmp_path, runner):
    """kill -9 of the runner mid-study; 'profit run' again completes every run, none twice at once."""
    study = make_study(tmp_path / "study", STUDY.format(ntrain=16, runner=runner), sleep=0.15)
    process = subprocess.Popen([PROFIT, "run", str(study)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ledger = study / "profit-study.npy"
    wait_for(lambda: runs_done(study) >= 4, timeout=60, what="four runs to finish")
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    killed_at = time.time()
    done_before = set(np.flatnonzero(np.load(ledger)["STATE"] == 2).tolist())
    assert 4 <= len(done_before) < 16

    again = profit("run", str(study))
    assert again.returncode == 0, again.stdout + again.stderr
    assert "continuing" in again.stdout
    inputs = np.genfromtxt(study / "input.txt", names=True)
    outputs = np.genfromtxt(study / "output.txt", names=True)
    np.testing.assert_array_equal(outputs["f"], inputs["u"] + inputs["v"])

    log = executions(study)
    for run_id, u in enumerate(inputs["u"]):
        starts = sorted(at for kind, value, at in log if kind == "start" and value == u)
        ends = sorted(at for kind, value, at in log if kind == "end" and value == u)
        assert ends, f"run {run_id} never completed"
        if run_id in done_before:
            # A result on disk is never computed again.
            assert len(ends) == 1 and all(at < killed_at for at in starts), f"run {run_id} ran again"
        # Never two executions of one run at the same time: each start follows the previous end.
        for earlier_end, later_start in zip(ends, starts[1:]):
            assert later_start >= earlier_end or later_start > killed_at


def test_status_while_running_and_exclusive_access(tmp_path):
    # Runs long enough (about 4 s) that the study is still running after three profit commands on a loaded machine.
    study = make_study(tmp_path / "study", STUDY.format(ntrain=8, runner="fork"), sleep=1.0)
    process = subprocess.Popen([PROFIT, "run", str(study)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: runs_done(study) >= 1, timeout=60, what="a first run to finish")
        status = profit("status", str(study))
        assert status.returncode == 0
        assert f"running (process {process.pid})" in status.stdout
        second = profit("run", str(study))
        assert second.returncode == 2
        assert f"is being run by process {process.pid}" in second.stderr
        clean = profit("clean", str(study))
        assert clean.returncode == 2 and "is being run by process" in clean.stderr
    finally:
        out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "8 runs: 8 done" in out


def test_ctrl_c_saves_results_and_continues(tmp_path):
    study = make_study(tmp_path / "study", STUDY.format(ntrain=20, runner="fork"), sleep=0.2)
    process = subprocess.Popen([PROFIT, "run", str(study)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: runs_done(study) >= 2, timeout=60, what="two runs to finish")
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, out + err
    assert "interrupted; completed results are saved" in out
    saved = np.genfromtxt(study / "output.txt", names=True)
    assert 2 <= np.count_nonzero(~np.isnan(saved["f"])) < 20, out + err
    again = profit("run", str(study))
    assert again.returncode == 0 and "20 runs: 20 done" in again.stdout


def test_clean(tmp_path):
    study = make_study(tmp_path / "study", STUDY.format(ntrain=2, runner="fork"), fail_below=2)
    profit("run", str(study))
    assert (study / "run_000").is_dir() and (study / "log").is_dir()  # failed runs keep their directory
    assert not (study / "interface.npy").exists()  # the runner's interface maps the study's table
    done = profit("clean", str(study))
    assert done.returncode == 0
    assert not (study / "run_000").exists() and not (study / "log").exists()
    assert not (study / "runner.log").exists() and (study / "output.txt").exists()
    profit("clean", "--all", str(study))
    assert not (study / "output.txt").exists() and not (study / "profit-study.npy").exists()
    assert (study / "profit.yaml").exists() and (study / "template").is_dir()


def test_the_demo_study(tmp_path):
    """make demo runs examples/external: it must work as shipped."""
    import shutil

    example = os.path.join(os.path.dirname(__file__), os.pardir, "examples", "external")
    study = tmp_path / "external"
    shutil.copytree(example, study, ignore=shutil.ignore_patterns("study"))
    done = profit("run", "--restart", str(study))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "60 runs: 60 done, 0 failed" in done.stdout
    outputs = np.genfromtxt(study / "study" / "output.txt", names=True)
    assert outputs.dtype.names == ("amplitude", "x_0", "x_1", "x_2", "x_3", "x_4")
    np.testing.assert_allclose(outputs["amplitude"], np.abs(outputs["x_4"]))


def test_sigterm_and_a_second_ctrl_c_leave_no_worker_behind(tmp_path):
    study = make_study(
        tmp_path / "study", STUDY.format(ntrain=20, runner="fork") + "  timeout: 60\n  retries: 1\n", sleep=0.3
    )
    process = subprocess.Popen([PROFIT, "run", str(study)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ledger = study / "profit-study.npy"

    def two_done_one_running():
        rows = np.load(ledger) if ledger.exists() else None
        return (
            rows is not None
            and np.count_nonzero(rows["STATE"] == 2) >= 2
            and (rows["PID"][rows["STATE"] == 1] > 0).any()
        )

    wait_for(two_done_one_running, timeout=60, what="two runs to finish while another runs")
    running = np.load(ledger)
    pids = [int(pid) for pid in running["PID"][running["STATE"] == 1] if pid]
    process.send_signal(signal.SIGTERM)
    # Once it is stopping (its runs leave the running state), an impatient second signal.
    wait_for(
        lambda: not (np.load(ledger, mmap_mode="r")["STATE"] == 1).any() or process.poll() is not None,
        timeout=60,
        what="the runs to be cancelled",
    )
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 143, out + err
    from profit.run._proc import group_members

    assert all(not group_members(pid) for pid in pids)  # workers and their simulations are gone
    assert "interrupted; completed results are saved" in out


@pytest.mark.parametrize("damage", ["truncate", "foreign", "garbage"])
def test_damaged_study_state_is_refused_clearly(tmp_path, damage):
    study = make_study(tmp_path / "study", STUDY.format(ntrain=4, runner="fork"))
    assert profit("run", str(study)).returncode == 0
    ledger = study / "profit-study.npy"
    if damage == "truncate":
        ledger.write_bytes(ledger.read_bytes()[:300])
    elif damage == "foreign":
        np.save(ledger, np.zeros(4, dtype=[("x", "f8")]))
    else:
        ledger.write_bytes(b"not a study state at all")
    done = profit("run", str(study))
    assert done.returncode == 2
    assert f"the study table {ledger}" in done.stderr and "is damaged" in done.stderr
    assert "'profit run --restart' starts over" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert profit("run", "--restart", str(study)).returncode == 0


def test_full_disk_keeps_the_results(tmp_path):
    """The output file cannot be written (a file size limit stands in for a full disk)."""
    import resource

    yaml = STUDY.format(ntrain=6, runner="fork").replace(
        "  g: Output\n", "  g: Output(t)\n  t: Independent(0, 1, 400)\n"
    )
    study = make_study(tmp_path / "study", yaml)
    program = study / "template" / "simulation"
    program.write_text(program.read_text().replace("print(u + v, u * v)", "print(u + v, *([u * v] * 400))"))
    limit = 32 * 1024  # the ledger and interface (binary, ~21 kB) fit; the output text (~45 kB) does not

    def limited():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead

    done = subprocess.run([PROFIT, "run", str(study)], capture_output=True, text=True, timeout=120, preexec_fn=limited)
    assert done.returncode == 4, done.stdout + done.stderr
    assert "output.txt could not be written (File too large)" in done.stderr
    assert "6 runs: 6 done, 0 failed" in done.stdout
    # With space again, the results are all there: nothing is run again.
    again = profit("run", str(study))
    assert again.returncode == 0 and "6 runs done before, 0 to run" in again.stdout
    outputs = np.genfromtxt(study / "output.txt", names=True)
    inputs = np.genfromtxt(study / "input.txt", names=True)
    np.testing.assert_array_equal(outputs["f"], inputs["u"] + inputs["v"])
    assert len(executions(study)) == 12


@pytest.mark.parametrize(
    "run, fragment",
    [
        (
            "  runner: {class: fork, paralel: 2}\n",
            "run.runner: runner 'fork' has no option 'paralel'; did you mean 'parallel'?",
        ),
        (
            "  pre: {class: template, pth: tpl}\n",
            "run.pre: preprocessor 'template' has no option 'pth'; did you mean 'path'?",
        ),
        ("  post: {class: json, path: out.json, names: [f]}\n", "run.post: postprocessor 'json' has no option 'names'"),
        (
            "  interface: {class: memmap, pth: x.npy}\n",
            "run.interface: interface 'memmap' has no option 'pth'; did you mean 'path'?",
        ),
        (
            "  worker: {class: command, comand: ./simulation}\n",
            "run.worker: worker 'command' has no option 'comand'; did you mean 'command'?",
        ),
        ("  runner: 5\n", "run.runner must be a label or a mapping"),
        ("  command: [./simulation]\n", "run.command must be a shell command"),
    ],
)
def test_bad_run_section(tmp_path, run, fragment):
    yaml = STUDY.format(ntrain=2, runner="fork").replace("  runner: fork\n  command: ./simulation\n", run)
    study = make_study(tmp_path / "study", yaml)
    done = profit("run", str(study))
    assert done.returncode == 2, done.stdout + done.stderr
    assert fragment in done.stderr
    assert "Traceback" not in done.stderr


def test_simulation_reading_stdin_does_not_hang(tmp_path):
    study = make_study(tmp_path / "study", STUDY.format(ntrain=2, runner="fork"))
    program = study / "template" / "simulation"
    program.write_text(
        program.read_text().replace("import os, sys, time\n", "import os, sys, time\nsys.stdin.read()\n", 1)
    )
    # stdin stays open and silent, as a terminal would: the simulation must see no input, not wait for it.
    process = subprocess.Popen([PROFIT, "run", str(study)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert process.wait(timeout=60) == 0
    finally:
        process.stdin.close()
        process.stdout.close()


def test_result_files_get_ordinary_permissions(tmp_path):
    study = make_study(tmp_path / "study", STUDY.format(ntrain=2, runner="fork"))
    assert profit("run", str(study)).returncode == 0
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((study / "output.txt").stat().st_mode) == 0o666 & ~umask


def test_status_of_a_damaged_study(tmp_path):
    study = make_study(tmp_path / "study", STUDY.format(ntrain=2, runner="fork"))
    assert profit("run", str(study)).returncode == 0
    (study / "profit-study.npy").write_bytes(b"junk")
    done = profit("status", str(study))
    assert done.returncode == 2 and "is damaged" in done.stderr


def test_include_with_a_syntax_error(tmp_path):
    (tmp_path / "profit.yaml").write_text(VARIABLES + "include: broken.py\n")
    (tmp_path / "broken.py").write_text("x = 1\ndef f(:\n")
    done = profit("run", str(tmp_path))
    assert done.returncode == 2
    assert "broken.py failed to import: SyntaxError" in done.stderr and "(line 2 of broken.py)" in done.stderr


PYTHON_STUDY = """\
ntrain: 3
seed: 5
variables:
  u: Uniform(0, 1)
  v: Uniform(0, 1)
  f: Output
include: model.py
run:
  runner: {runner}
  worker: {worker}
"""

MODEL = """\
import os
from profit.run import Runner, Worker

@Worker.wrap("t_cli_sum", "f")
def total(u, v):
    return u + v

class Scaled(Worker, label="t_cli_scaled"):
    # options of its own through **kwargs, as users write them
    def __init__(self, run_id, **kwargs):
        self.scale = kwargs.pop("scale", 1.0)
        super().__init__(run_id, **kwargs)

    def work(self):
        self.interface.retrieve()
        base = os.environ["PROFIT_BASE_DIR"]  # where the study file is, in every worker process
        self.interface.output["f"] = self.scale * (self.interface.input["u"] + self.interface.input["v"])
        open(os.path.join(base, f"seen-{os.getpid()}"), "w").close()
        self.interface.transmit()

class NeedsNodes(Runner["fork"], label="t_cli_needs_nodes"):
    def __init__(self, *, nodes, **kwargs):
        super().__init__(**kwargs)
"""


@pytest.mark.parametrize("runner", ["fork", "local", "pool"])
@pytest.mark.parametrize("worker", ["t_cli_sum", "{class: t_cli_scaled, scale: 2.0}"])
def test_python_workers_run_from_a_study(tmp_path, runner, worker):
    study = tmp_path / "study"
    study.mkdir()
    (study / "profit.yaml").write_text(PYTHON_STUDY.format(runner=runner, worker=worker))
    (study / "model.py").write_text(MODEL)
    done = profit("run", str(study), cwd=str(tmp_path))  # from another directory than the study's
    assert done.returncode == 0, done.stdout + done.stderr
    inputs, outputs = np.genfromtxt(study / "input.txt", names=True), np.genfromtxt(study / "output.txt", names=True)
    scale = 2.0 if "scaled" in worker else 1.0
    np.testing.assert_array_equal(outputs["f"], scale * (inputs["u"] + inputs["v"]))
    if "scaled" in worker:
        assert any(name.startswith("seen-") for name in os.listdir(study))


def test_a_runner_option_without_default_must_be_given(tmp_path):
    study = tmp_path / "study"
    study.mkdir()
    (study / "profit.yaml").write_text(PYTHON_STUDY.format(runner="t_cli_needs_nodes", worker="t_cli_sum"))
    (study / "model.py").write_text(MODEL)
    done = profit("run", str(study))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "run.runner: runner 't_cli_needs_nodes' needs the option 'nodes'" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_full_disk_before_the_runs_names_the_file_and_the_next_run_goes_on(tmp_path):
    """The study's table does not fit (a file-size limit stands in for a full disk): exit 4, one sentence
    naming the file; with room again, the next run starts without a 'profit clean'."""
    import resource

    study = make_study(tmp_path / "study", STUDY.format(ntrain=400, runner="fork"))
    limit = 64 * 1024  # the table of 400 runs (~130 kB) does not fit

    def limited():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead

    done = subprocess.run([PROFIT, "run", str(study)], capture_output=True, text=True, timeout=120, preexec_fn=limited)
    assert done.returncode == 4, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and "File too large: " in done.stderr and "profit-study.npy" in done.stderr
    assert done.stderr.endswith("; free some space and run again\n")
    assert not [name for name in os.listdir(study) if ".tmp-" in name or name.endswith(".new")]
    again = profit("run", str(study))
    assert again.returncode == 0, again.stdout + again.stderr
    assert "400 runs: 400 done" in again.stdout
