"""profit.Study end to end: made from Python or YAML, run on each local runner, grown, resumed, exported."""

import os

import numpy as np
import pytest
from helpers import TESTS, profit

from profit import Study
from profit.run.errors import ConfigError

WORKERS = str(TESTS / "workers.py")


def executions(folder):
    """The u of every execution of the t_counted worker, in order."""
    log = folder / "executions.log"
    return [float(line) for line in log.read_text().split()] if log.exists() else []


def yaml_study(folder, ntrain=6, runner="fork", seed=5):
    """A study of the t_counted worker: u may be negative (those runs fail until `fixed` exists)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "profit.yaml").write_text(
        f"ntrain: {ntrain}\n"
        f"seed: {seed}\n"
        f"include: {WORKERS}\n"
        "variables:\n"
        "  u: Uniform(-1, 1)\n"
        "  v: Normal(0, 1)\n"
        "  w: Halton()\n"
        "  f: Output\n"
        "run:\n"
        f"  runner: {runner}\n"
        "  worker: t_counted\n"
    )
    return folder


@pytest.mark.parametrize(
    ("runner", "interface"), [("fork", "memmap"), ("pool", "memmap"), ("local", "memmap"), ("fork", "zeromq")]
)
def test_python_study_runs_on_each_local_runner_with_aligned_results(tmp_path, runner, interface):
    study = Study.create(
        tmp_path / "s",
        inputs={"u": "Uniform(-1, 1)", "v": "Halton(0, 2)"},
        outputs=["f"],
        run={"runner": {"class": runner, "parallel": 2}, "interface": interface, "worker": "t_counted"},
        ntrain=12,
        seed=3,
        include=[WORKERS],
    )
    report = study.run()
    results = study.results()
    assert len(results) == 12 == report.status.total
    failed = results["u"] < 0  # t_counted raises for negative u
    assert failed.any() and (~failed).any()
    np.testing.assert_array_equal(results["f"][~failed], results["u"][~failed] + results["v"][~failed])
    assert np.isnan(results["f"][failed]).all()
    assert set(results["state"][failed]) == {"failed"} and set(results["state"][~failed]) == {"done"}
    assert all("is negative" in reason for reason in results["reason"][failed])
    assert (results["attempts"] == 1).all()
    assert (results["ended"] >= results["started"]).all() and (results["duration"] >= 0).all()
    assert report.failed_kept == report.status.failed == failed.sum()
    # The study's files are exports of the table: the output file has NaN rows where runs failed.
    exported = np.genfromtxt(study.file.output_file, names=True)
    np.testing.assert_array_equal(exported["f"], results["f"])


def test_failed_runs_run_again_only_when_asked(tmp_path):
    folder = yaml_study(tmp_path / "s", ntrain=8)
    first = profit("run", str(folder))
    assert first.returncode == 1, first.stderr
    results = Study.load(folder).results()
    failed = int((results["state"] == "failed").sum())
    assert failed and f"{failed} failed runs kept; --retry-failed runs them again" in first.stdout
    assert len(executions(folder)) == 8

    again = profit("run", str(folder))
    assert again.returncode == 1 and len(executions(folder)) == 8  # nothing ran: failures are kept

    (folder / "fixed").touch()
    retried = profit("run", "--retry-failed", str(folder))
    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert len(executions(folder)) == 8 + failed  # only the failed ones, once each
    results = Study.load(folder).results()
    assert (results["state"] == "done").all()
    np.testing.assert_array_equal(results["f"], results["u"] + results["v"])
    assert (results["attempts"][results["u"] < 0] == 2).all()


def test_raising_ntrain_keeps_every_run_and_continues_the_samples(tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "fixed").touch()
    folder = yaml_study(tmp_path / "s", ntrain=6)
    assert profit("run", str(folder)).returncode == 0
    before = Study.load(folder).results()

    text = (folder / "profit.yaml").read_text().replace("ntrain: 6", "ntrain: 10")
    (folder / "profit.yaml").write_text(text)
    grown = profit("run", str(folder))
    assert grown.returncode == 0, grown.stderr
    assert "ntrain grew from 6 to 10: 4 new runs" in grown.stdout
    after = Study.load(folder).results()
    assert len(after) == 10
    np.testing.assert_array_equal(after[:6], before)  # inputs, outputs, times: untouched
    assert len(executions(folder)) == 10  # the first six did not run again

    # The same study made with ntrain 10 from the start samples the same inputs.
    fresh = yaml_study(tmp_path / "fresh", ntrain=10)
    (fresh / "fixed").touch()
    assert profit("run", str(fresh)).returncode == 0
    fresh_rows = Study.load(fresh).results()
    for name in ("u", "v", "w"):
        np.testing.assert_array_equal(after[name], fresh_rows[name])


def test_changed_variables_are_refused_and_nothing_is_written(tmp_path):
    folder = yaml_study(tmp_path / "s", ntrain=4)
    profit("run", str(folder))
    table = (folder / "profit-study.npy").read_bytes()
    text = (folder / "profit.yaml").read_text().replace("Uniform(-1, 1)", "Uniform(-2, 2)")
    (folder / "profit.yaml").write_text(text)
    refused = profit("run", str(folder))
    assert refused.returncode == 2
    message = refused.stderr.strip()
    assert message.count("\n") == 0 and "u: u: Uniform(-1.0, 1.0)" in message and "--restart" in message
    assert (folder / "profit-study.npy").read_bytes() == table


def test_inputs_table_adds_runs_with_the_given_values(tmp_path):
    folder = yaml_study(tmp_path / "s", ntrain=3)
    (folder / "fixed").touch()
    assert profit("run", str(folder)).returncode == 0
    (folder / "more.csv").write_text("u,v,w\n0.25,1.5,0.0\n10,20,30\n")
    added = profit("run", "--inputs", str(folder / "more.csv"), str(folder))
    assert added.returncode == 0, added.stderr
    results = Study.load(folder).results()
    assert len(results) == 5
    np.testing.assert_array_equal(results["u"][3:], [0.25, 10.0])
    np.testing.assert_array_equal(results["f"][3:], [1.75, 30.0])
    assert len(executions(folder)) == 5

    (folder / "bad.csv").write_text("u,v\n1,2\n")
    refused = profit("run", "--inputs", str(folder / "bad.csv"), str(folder))
    assert refused.returncode == 2 and "lacks w" in refused.stderr
    assert len(Study.load(folder).results()) == 5


def test_a_study_of_given_parameter_sets_from_python(tmp_path):
    table = np.zeros(4, [("u", "f8"), ("v", "f8")])
    table["u"], table["v"] = [1, 2, 3, 4], 0.5
    study = Study.create(tmp_path / "s", inputs=table, outputs=["f"], run={"worker": "t_counted"}, include=[WORKERS])
    study.run()
    np.testing.assert_array_equal(study.results()["f"], [1.5, 2.5, 3.5, 4.5])
    new = study.extend({"u": [5.0], "v": [0.25]})
    assert list(new) == [4]
    with pytest.raises(ConfigError, match="take their values from tables"):
        study.extend(3)  # Input variables have no sampler
    study.run()
    assert Study.open(tmp_path / "s").results()["f"][4] == 5.25
    assert len(executions(tmp_path / "s")) == 5


def test_extend_by_a_number_samples_more_runs(tmp_path):
    study = Study.create(
        tmp_path / "s",
        inputs={"u": "Uniform(0, 1)", "v": 2},
        outputs={"f": None},
        run={"worker": "t_counted"},
        ntrain=3,
        seed=1,
        include=[WORKERS],
    )
    study.run()
    first = study.results()
    assert list(study.extend(2)) == [3, 4]
    assert study.status().pending == 2
    study.run()
    results = study.results()
    np.testing.assert_array_equal(results[:3], first)
    assert (results["state"] == "done").all() and len(executions(tmp_path / "s")) == 5


def test_a_failed_restart_leaves_the_study_as_it_was(tmp_path):
    folder = yaml_study(tmp_path / "s", ntrain=4)
    (folder / "fixed").touch()
    assert profit("run", str(folder)).returncode == 0
    before = Study.load(folder).results()
    text = (folder / "profit.yaml").read_text()
    (folder / "profit.yaml").write_text(text.replace("runner: fork", "runner: {class: fork, paralel: 2}"))
    refused = profit("run", "--restart", str(folder))
    assert refused.returncode == 2 and "paralel" in refused.stderr
    (folder / "profit.yaml").write_text(text)
    again = profit("run", str(folder))
    assert again.returncode == 0
    np.testing.assert_array_equal(Study.load(folder).results(), before)
    assert len(executions(folder)) == 4


def test_dataframe_and_xarray_views(tmp_path):
    pytest.importorskip("pandas")
    xarray = pytest.importorskip("xarray")
    study = Study.create(
        tmp_path / "s",
        inputs={"u": "Uniform(-1, 1)", "v": 1, "t": "Independent(0, 1, 3)"},
        outputs={"f": "t"},
        run={"worker": "t_vector", "include": [WORKERS]},
        ntrain=4,
        seed=2,
    )
    study.run()
    frame = study.to_dataframe()
    assert list(frame.filter(like="f[").columns) == ["f[0]", "f[1]", "f[2]"]
    assert {"u", "v", "state", "reason", "attempts", "started", "ended", "duration"} <= set(frame.columns)
    dataset = study.to_xarray()
    assert isinstance(dataset, xarray.Dataset)
    assert dataset["f"].dims == ("run", "t")
    np.testing.assert_array_equal(dataset["t"].values, [0, 0.5, 1])
    np.testing.assert_array_equal(dataset["f"].values, study.results()["f"])


def test_export_command_writes_every_run(tmp_path):
    pandas = pytest.importorskip("pandas")
    folder = yaml_study(tmp_path / "s", ntrain=5)
    profit("run", str(folder))
    done = profit("export", str(folder), str(tmp_path / "all.csv"))
    assert done.returncode == 0, done.stderr
    frame = pandas.read_csv(tmp_path / "all.csv")
    results = Study.load(folder).results()
    np.testing.assert_array_equal(frame["u"], results["u"])
    np.testing.assert_array_equal(frame["f"], results["f"])  # NaN where failed
    assert list(frame["state"]) == list(results["state"])


def test_status_of_a_study_from_python(tmp_path):
    folder = yaml_study(tmp_path / "s", ntrain=4)
    study = Study.load(folder)
    assert study.status().total == 0
    assert not os.path.exists(folder / "profit-study.npy")  # loading writes nothing
    study.run()
    status = study.status()
    assert status.total == 4 and status.done + status.failed == 4 and status.running_pid is None


def test_a_table_replaced_behind_its_record_is_never_continued(tmp_path):
    """An interrupted --restart: the new table is in place, the record still describes the old one."""
    from profit.store import StudyTable

    folder = yaml_study(tmp_path / "s", ntrain=4)
    (folder / "fixed").touch()
    assert profit("run", str(folder)).returncode == 0
    study = Study.load(folder)
    inputs = np.array(study.results()[study.input_names])
    inputs["u"] += 0.5  # other inputs, as a restart with a fresh seed draws them
    StudyTable.create(str(folder / "profit-study.npy"), inputs, np.dtype([("f", "f8")]))
    refused = profit("run", str(folder))
    assert refused.returncode == 2 and "was a --restart interrupted?" in refused.stderr
    assert len(executions(folder)) == 4
    assert profit("run", "--restart", str(folder)).returncode == 0


def test_an_interrupted_first_creation_starts_afresh(tmp_path):
    """The table is in place but the record was never written: nothing ran, so the study simply starts."""
    folder = yaml_study(tmp_path / "s", ntrain=3)
    (folder / "fixed").touch()
    assert profit("run", str(folder)).returncode == 0
    for name in ("profit-study.json", "executions.log"):
        (folder / name).unlink()
    table = np.load(folder / "profit-study.npy", mmap_mode="r+")
    table["STATE"] = 0  # as created: every run pending
    table.flush()
    del table
    again = profit("run", str(folder))
    assert again.returncode == 0, again.stderr
    assert len(executions(folder)) == 3


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"run": "  command: ./simulation\n"}, "run.pre.path: the template directory template does not exist"),
        ({"worker": "t_wrong_count"}, "run.worker"),  # it takes u, v but returns f and g; the study has f only
        ({"run": "  command: echo 1\n  post: {class: numpytxt, names: [ff]}\n"}, "run.post.names"),
        ({"files": "files: {output: profit-study.npy}\n"}, "files.output"),
        ({"files": "files: {input: data.txt, output: data.txt}\n"}, "files.output"),
        ({"run": "  worker: {class: t_sum, speed: 3}\n"}, "speed"),
    ],
)
def test_a_study_every_run_of_which_would_fail_is_refused_before_anything_is_written(tmp_path, change, fragment):
    folder = tmp_path / "s"
    folder.mkdir()
    run = change.get("run", f"  worker: {change.get('worker', 't_counted')}\n")
    (folder / "profit.yaml").write_text(
        f"ntrain: 3\ninclude: {WORKERS}\nvariables:\n  u: Uniform(0, 1)\n  v: Uniform(0, 1)\n  f: Output\n"
        + change.get("files", "")
        + "run:\n"
        + run
    )
    done = profit("run", str(folder))
    assert done.returncode == 2, done.stdout + done.stderr
    assert fragment in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert done.stderr.startswith("profit: profit.yaml")
    assert sorted(path.name for path in folder.iterdir()) == ["profit.yaml"]


def test_a_study_of_the_first_build_is_converted_with_its_results(tmp_path):
    """profit-study.npy as the first build kept it (a ledger) and its record: runs done stay done."""
    import json

    from helpers import STUDY, make_study

    from profit.migrate import old_fingerprint
    from profit.studyfile import StudyFile

    folder = make_study(tmp_path / "s", STUDY.format(ntrain=4, runner="fork"))
    file = StudyFile.load(str(folder))
    ledger = np.zeros(
        4,
        [("u", "f8"), ("v", "f8"), ("f", "f8"), ("g", "f8"), ("STATE", "u1"), ("REASON", "S256"), ("TIME", "f8")]
        + [("ATTEMPTS", "u4"), ("PID", "i8"), ("PSTART", "u8")],
    )
    ledger["u"], ledger["v"] = [0.1, 0.2, 0.3, 0.4], 2.5
    ledger["f"], ledger["g"] = np.nan, np.nan
    ledger["STATE"] = [2, 3, 1, 0]  # done, failed, running when the runner died, pending
    ledger["f"][0], ledger["g"][0], ledger["TIME"][0], ledger["ATTEMPTS"][:3] = 99.0, 98.0, 1.7, 1
    ledger["REASON"][1] = b"exited with code 4"
    np.save(folder / "profit-study.npy", ledger)
    record = {"fingerprint": old_fingerprint(file, 4), "runs": 4, "study": file.path, "finished": 1.8e9}
    (folder / "profit-study.json").write_text(json.dumps(record))

    done = profit("run", str(folder))
    assert done.returncode == 1, done.stdout + done.stderr  # the failed run stays failed
    assert "converted the study state of an earlier version of profit (1 runs done are kept)" in done.stdout
    results = Study.load(folder).results()
    assert (results["f"][0], results["g"][0]) == (99.0, 98.0)  # kept, not computed again
    assert list(results["state"]) == ["done", "failed", "done", "done"]
    assert results["reason"][1] == "exited with code 4"
    np.testing.assert_array_equal(results["f"][2:], results["u"][2:] + results["v"][2:])
    runs = [line.split()[1] for line in (folder / "executions.log").read_text().splitlines() if line[:5] == "start"]
    assert sorted(map(float, runs)) == [0.3, 0.4]


def test_an_old_study_whose_variables_changed_is_refused(tmp_path):
    import json

    from helpers import STUDY, make_study

    folder = make_study(tmp_path / "s", STUDY.format(ntrain=2, runner="fork"))
    np.save(folder / "profit-study.npy", np.zeros(2, [("u", "f8"), ("STATE", "u1")]))
    (folder / "profit-study.json").write_text(json.dumps({"fingerprint": "0123456789abcdef", "runs": 2}))
    refused = profit("run", str(folder))
    assert refused.returncode == 2 and "made by an earlier version of profit" in refused.stderr


def test_create_checks_everything_before_it_writes(tmp_path):
    with pytest.raises(ConfigError, match="bogus"):
        Study.create(
            tmp_path / "s",
            inputs={"u": "Uniform(0, 1)", "v": 1},
            outputs=["f"],
            run={"runner": {"class": "fork", "bogus": 1}, "worker": "t_counted"},
            include=[WORKERS],
        )
    assert not (tmp_path / "s").exists()
    with pytest.raises(ConfigError, match="taken by the columns profit adds"):
        Study.create(tmp_path / "s", inputs={"u": "Uniform(0, 1)", "state": 1}, outputs=["f"])
    study = Study.create(  # the corrected call goes through
        tmp_path / "s",
        inputs={"u": "Uniform(0, 1)", "v": 1},
        outputs=["f"],
        run={"worker": "t_counted"},
        include=[WORKERS],
        ntrain=2,
    )
    assert study.run().status.done == 2
    with pytest.raises(ConfigError, match="keeps for itself"):
        study.export(study.table_path)


def test_an_extension_cut_off_before_its_record_is_completed_keeps_the_right_inputs(tmp_path, monkeypatch):
    from profit.store import Meta

    folder = yaml_study(tmp_path / "s", ntrain=3)
    (folder / "fixed").touch()
    study = Study.load(folder)
    study.run()
    save = Meta.save

    def cut_off(self, **changes):
        if changes.get("growing", 0) is None:  # the table grew; the record of it is never completed
            raise KeyboardInterrupt
        save(self, **changes)

    monkeypatch.setattr(Meta, "save", cut_off)
    with pytest.raises(KeyboardInterrupt):
        study.extend(2)
    monkeypatch.setattr(Meta, "save", save)
    Study.load(folder).run()
    results = Study.load(folder).results()
    grown = yaml_study(tmp_path / "fresh", ntrain=5)
    (grown / "fixed").touch()
    Study.load(grown).run()
    np.testing.assert_array_equal(results["u"], Study.load(grown).results()["u"])  # the continued samples
    np.testing.assert_array_equal(results["f"], results["u"] + results["v"])
    assert len(executions(folder)) == 5


@pytest.mark.parametrize("cut", ["before the table", "after the table"])
def test_a_restart_cut_off_leaves_the_old_study_or_the_new_one_whole(tmp_path, monkeypatch, cut):
    from profit.store import Meta, StudyTable

    folder = yaml_study(tmp_path / "s", ntrain=3, seed=None)
    (folder / "profit.yaml").write_text((folder / "profit.yaml").read_text().replace("seed: None\n", ""))
    (folder / "fixed").touch()
    Study.load(folder).run()
    old = Study.load(folder).results()
    create, save = StudyTable.create, Meta.save

    def create_then_cut(*args, **kwargs):
        if cut == "before the table":
            raise KeyboardInterrupt
        return create(*args, **kwargs)

    def save_then_cut(self, **changes):
        if not changes and cut == "after the table":  # the record of the new table
            raise KeyboardInterrupt
        save(self, **changes)

    monkeypatch.setattr(StudyTable, "create", create_then_cut)
    monkeypatch.setattr(Meta, "save", save_then_cut)
    with pytest.raises(KeyboardInterrupt):
        Study.load(folder).run(restart=True)
    monkeypatch.undo()
    Study.load(folder).run()  # no --restart demanded
    results = Study.load(folder).results()
    if cut == "before the table":
        np.testing.assert_array_equal(results, old)  # the old study, untouched
        assert len(executions(folder)) == 3
    else:
        assert not np.array_equal(results["u"], old["u"])  # the new study (a fresh seed), run whole
        assert (results["state"] == "done").all() and len(executions(folder)) == 6
    np.testing.assert_array_equal(results["f"], results["u"] + results["v"])


def test_a_changed_simulation_is_never_continued_without_a_word(tmp_path):
    from helpers import STUDY, make_study

    folder = make_study(tmp_path / "s", STUDY.format(ntrain=3, runner="fork"))
    assert profit("run", str(folder)).returncode == 0
    program = folder / "template" / "simulation"
    program.write_text(program.read_text().replace("print(u + v, u * v)", "print(u - v, u * v)"))
    (folder / "profit.yaml").write_text((folder / "profit.yaml").read_text().replace("ntrain: 3", "ntrain: 4"))
    refused = profit("run", str(folder))
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert "the template template changed since 3 runs of this study finished" in refused.stderr
    assert "--restart" in refused.stderr and "--keep-results" in refused.stderr
    assert len(Study.load(folder).results()) == 3  # nothing written
    kept = profit("run", "--keep-results", str(folder))
    assert kept.returncode == 0, kept.stderr
    results = Study.load(folder).results()
    np.testing.assert_array_equal(results["f"][:3], results["u"][:3] + results["v"][:3])  # kept, knowingly
    assert results["f"][3] == results["u"][3] - results["v"][3]  # the new run: the new simulation
    assert profit("run", str(folder)).returncode == 0  # recorded: no more questions


def test_allow_failures_exits_0_with_the_failures_recorded(tmp_path):
    folder = yaml_study(tmp_path / "s", ntrain=6)
    done = profit("run", "--allow-failures", str(folder))
    assert done.returncode == 0 and "failed runs kept" in done.stdout
    assert (Study.load(folder).results()["state"] == "failed").any()


def test_status_into_a_closed_pipe_exits_quietly(tmp_path):
    """As `profit status | head -1` when head has gone: a pipe whose reading end is closed."""
    import subprocess

    from helpers import PROFIT

    folder = yaml_study(tmp_path / "s", ntrain=3)
    profit("run", str(folder))
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        status = subprocess.run([PROFIT, "status", str(folder)], stdout=write_end, stderr=subprocess.PIPE, text=True)
    finally:
        os.close(write_end)
    assert status.returncode == 0 and status.stderr == ""


def test_clean_keeps_every_result_and_the_next_run_runs_nothing_again(tmp_path):
    folder = yaml_study(tmp_path / "s", ntrain=4)
    (folder / "fixed").touch()
    assert profit("run", str(folder)).returncode == 0
    before = Study.load(folder).results()
    assert profit("clean", str(folder)).returncode == 0
    again = profit("run", str(folder))
    assert again.returncode == 0 and "4 runs done before, 0 to run" in again.stdout
    np.testing.assert_array_equal(Study.load(folder).results(), before)
    assert len(executions(folder)) == 4


def test_a_timed_out_run_names_where_it_left_its_traces(tmp_path):
    from helpers import STUDY, make_study

    yaml = STUDY.format(ntrain=1, runner="fork") + "  timeout: 0.5\n"
    folder = make_study(tmp_path / "s", yaml, sleep=30)
    done = profit("run", str(folder))
    assert done.returncode == 1, done.stdout + done.stderr
    reason = Study.load(folder).results()["reason"][0]
    assert reason.startswith("timed out after 0.5 s (") and "run directory kept: run_000" in reason
    assert (folder / "run_000" / "stdout").exists()
    if "its log: " in reason:  # (named only where the worker wrote one before it was cut off)
        assert (folder / "log" / "run_000.log").exists()


def test_an_empty_stdout_fails_its_run_without_a_warning_on_the_terminal(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / "profit.yaml").write_text(
        "ntrain: 3\nvariables:\n  u: Uniform(0, 1)\n  f: Output\nrun:\n  command: 'true'\n"
    )
    done = profit("run", str(folder))
    assert done.returncode == 1
    assert "Warning" not in done.stdout + done.stderr
    reasons = Study.load(folder).results()["reason"]
    assert all(
        reason.startswith("OutputError: output file 'stdout' is empty; run directory kept") for reason in reasons
    )


def test_template_warnings_are_said_once_per_study(tmp_path):
    from helpers import STUDY, make_study

    folder = make_study(tmp_path / "s", STUDY.format(ntrain=2, runner="fork"))
    (folder / "template" / "input.txt").write_text("u = {u}\nv = 0.5\n")  # v is used nowhere
    first = profit("run", str(folder))
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("warning: profit.yaml: input v is used by no template file") == 1
    second = profit("run", str(folder))
    assert "warning:" not in second.stdout


def test_files_the_runs_write_are_no_part_of_the_model(tmp_path):
    from helpers import STUDY, make_study

    yaml = STUDY.format(ntrain=2, runner="fork").replace(
        "  command: ./simulation\n", "  command: ./simulation out.txt\n"
    )
    folder = make_study(tmp_path / "s", yaml + "  pre: {class: template, clean: false}\n")
    assert profit("run", str(folder)).returncode == 0
    (folder / "run_000" / "out.txt").write_text("written by a run")
    (folder / "profit.yaml").write_text((folder / "profit.yaml").read_text().replace("ntrain: 2", "ntrain: 3"))
    grown = profit("run", str(folder))
    assert grown.returncode == 0, grown.stderr  # no question about a changed model


def test_a_script_the_command_names_is_part_of_the_model(tmp_path):
    from helpers import STUDY, make_study

    folder = make_study(tmp_path / "s", STUDY.format(ntrain=2, runner="fork"))
    (folder / "helper.py").write_text("print(1)\n")
    text = (folder / "profit.yaml").read_text()
    (folder / "profit.yaml").write_text(text.replace("./simulation", "./simulation $PROFIT_BASE_DIR/helper.py"))
    assert profit("run", str(folder)).returncode == 0
    (folder / "helper.py").write_text("print(2)\n")
    (folder / "profit.yaml").write_text((folder / "profit.yaml").read_text().replace("ntrain: 2", "ntrain: 3"))
    refused = profit("run", str(folder))
    assert refused.returncode == 2 and "the file helper.py changed" in refused.stderr
