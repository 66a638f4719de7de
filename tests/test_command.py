"""External simulations: the command worker with its pre- and postprocessors, on every runner."""

import json
import os
import stat
import sys

import numpy as np
import pytest
from helpers import outputs

from profit.run import Postprocessor, RunState
from profit.run.command import substitute
from profit.run.errors import ConfigError

EXAMPLE = os.path.join(os.path.dirname(__file__), os.pardir, "examples", "external")


def write_program(path, body):
    """An executable Python script (with this interpreter, so CI needs nothing else)."""
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def template(tmp_path):
    """A template whose program reads u and v from input.txt and prints u+v and u-v."""
    folder = tmp_path / "template"
    folder.mkdir()
    (folder / "input.txt").write_text("u = {u}\nv = {v}\n")
    write_program(
        folder / "simulation",
        "values = dict(line.split(' = ') for line in open('input.txt').read().splitlines())\n"
        "u, v = float(values['u']), float(values['v'])\n"
        "print(u + v, u - v)\n",
    )
    return folder


def command_worker(template, post="numpytxt", command="./simulation", **pre_options):
    return {
        "class": "command",
        "command": command,
        "pre": {"class": "template", "path": str(template), **pre_options},
        "post": post,
    }


def test_numpytxt_result(make_runner, template):
    runner = make_runner(command_worker(template), output_config=outputs("f", "g"))
    runner.spawn({"u": 0.1, "v": 0.2}, wait=True)
    assert runner.status(0).state is RunState.DONE, runner.status(0)
    # Values are written so that they read back exactly: 0.1 + 0.2 computed by the program.
    assert runner.output_data["f"][0] == 0.1 + 0.2
    assert runner.output_data["g"][0] == 0.1 - 0.2
    assert not os.path.exists(os.path.join(runner.work_dir, "run_000"))  # cleaned after success


def test_vector_output_over_consecutive_columns(make_runner, tmp_path):
    folder = tmp_path / "template"
    folder.mkdir()
    # "names" lists the file's columns; "comment" is not an output, so its column is skipped.
    write_program(folder / "simulation", "print(1.5, 'converged', 10, 20, 30)\n")
    worker = command_worker(folder, post={"class": "numpytxt", "names": ["f", "comment", "g"]})
    runner = make_runner(worker, output_config={**outputs("f"), **outputs("g", length=3)})
    runner.spawn({"u": 0.0, "v": 0.0}, wait=True)
    assert runner.status(0).state is RunState.DONE, runner.status(0)
    assert runner.output_data["g"].tolist() == [[10.0, 20.0, 30.0]]
    assert runner.output_data["f"].tolist() == [1.5]
    write_program(folder / "simulation", "print(1.5, 'converged', 10, 'inf?', 30)\n")
    runner.spawn({"u": 0.0, "v": 0.0}, wait=True)
    assert "output file 'stdout', field 'g': cannot read 'inf?' as a number" in runner.status(1).reason


def test_json_template_with_literal_braces_and_json_output(make_runner, tmp_path):
    folder = tmp_path / "template"
    folder.mkdir()
    (folder / "params.json").write_text('{"u": {{u}}, "v": {{ v }}, "meta": {"w": "{w}", "list": [1, 2]}}')
    write_program(
        folder / "simulation",
        "import json\n"
        "p = json.load(open('params.json'))\n"
        "json.dump({'f': p['u'] * p['v'], 'g': [p['u'], p['v'], p['meta']['w']]}, open('out.json', 'w'))\n",
    )
    worker = command_worker(folder, post={"class": "json", "path": "out.json"})
    runner = make_runner(worker, output_config={**outputs("f"), **outputs("g", length=3)})
    runner.spawn({"u": 2.0, "v": 3.0}, wait=True)
    status = runner.status(0)
    assert status.state is RunState.FAILED  # {w} is not an input: it stays "{w}", which is not a number
    assert "output file 'out.json', field 'g': 'g' takes a vector of 3 floats, got [2.0, 3.0, '{w}']" in status.reason
    (folder / "params.json").write_text('{"u": {{u}}, "v": {{ v }}, "meta": {"w": 7, "list": [1, 2]}}')
    runner.spawn({"u": 2.0, "v": 3.0}, wait=True)
    assert runner.status(1).state is RunState.DONE, runner.status(1)
    assert runner.output_data["f"].tolist() == [6.0]
    assert runner.output_data["g"].tolist() == [[2.0, 3.0, 7.0]]


def test_hdf5_output(make_runner, tmp_path):
    pytest.importorskip("h5py")
    folder = tmp_path / "template"
    folder.mkdir()
    write_program(
        folder / "simulation",
        "import h5py\nwith h5py.File('out.hdf5', 'w') as f:\n    f['f'] = [4.5]\n    f['g'] = [1.0, 2.0]\n",
    )
    worker = command_worker(folder, post={"class": "hdf5", "path": "out.hdf5"})
    runner = make_runner(worker, output_config={**outputs("f"), **outputs("g", length=2)})
    runner.spawn({"u": 0.0, "v": 0.0}, wait=True)
    assert runner.status(0).state is RunState.DONE, runner.status(0)
    assert runner.output_data["f"].tolist() == [4.5]
    assert runner.output_data["g"].tolist() == [[1.0, 2.0]]


def test_failing_command_keeps_its_run_directory(make_runner, tmp_path):
    folder = tmp_path / "template"
    folder.mkdir()
    write_program(
        folder / "simulation",
        "import sys\nprint('starting')\nprint('warning: mesh coarse', file=sys.stderr)\n"
        "print('error: diverged at step 12', file=sys.stderr)\nsys.exit(3)\n",
    )
    runner = make_runner(command_worker(folder))
    runner.spawn({"u": 0.0, "v": 0.0}, wait=True)
    status = runner.status(0)
    run_dir = os.path.join(os.path.realpath(runner.work_dir), "run_000")
    assert status.state is RunState.FAILED
    assert "command './simulation' exited with code 3" in status.reason
    assert "stderr ends: warning: mesh coarse | error: diverged at step 12" in status.reason
    assert f"run directory kept: {run_dir}" in status.reason
    assert (open(os.path.join(run_dir, "stdout")).read()) == "starting\n"
    assert np.isnan(runner.interface.output["f"][0])  # not post-processed as if it were good


def test_command_killed_by_a_signal(make_runner, tmp_path):
    folder = tmp_path / "template"
    folder.mkdir()
    write_program(folder / "simulation", "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n")
    runner = make_runner(command_worker(folder))
    runner.spawn({"u": 0.0, "v": 0.0}, wait=True)
    assert "SIGSEGV" in runner.status(0).reason


@pytest.mark.parametrize(
    "program, post, fragment",
    [
        ("pass", "numpytxt", "output file 'stdout' is empty"),
        ("open('x', 'w')", {"class": "json", "path": "out.json"}, "output file 'out.json' does not exist"),
        ("print('{\"g\": 1}')", "json", "output file 'stdout' has no field 'f' (it has g)"),
        ("print('[1, 2')", "json", "output file 'stdout' is not valid JSON"),
        ("print(1, 2)", "numpytxt", "output file 'stdout' has 2 values; expected 1 (columns: f)"),
        ("print('abc')", "numpytxt", "output file 'stdout', field 'f': cannot read 'abc' as a number"),
        ("print(1, 2)\nprint(3, 4)", "numpytxt", "output file 'stdout' has 2 rows; expected one row"),
    ],
)
def test_unreadable_output_fails_the_run_and_names_file_and_field(make_runner, tmp_path, program, post, fragment):
    folder = tmp_path / "template"
    folder.mkdir()
    write_program(folder / "simulation", program + "\n")
    runner = make_runner(command_worker(folder, post=post))
    runner.spawn({"u": 0.0, "v": 0.0}, wait=True)
    status = runner.status(0)
    assert status.state is RunState.FAILED
    assert fragment in status.reason
    assert "run directory kept" in status.reason


def test_wrong_vector_length_in_json(make_runner, tmp_path):
    folder = tmp_path / "template"
    folder.mkdir()
    write_program(folder / "simulation", "print('{\"g\": [1, 2]}')\n")
    runner = make_runner(command_worker(folder, post="json"), output_config=outputs("g", length=3))
    runner.spawn({"u": 0.0, "v": 0.0}, wait=True)
    assert "output file 'stdout', field 'g': 'g' takes 3 values, got 2" in runner.status(0).reason


def test_template_files_links_and_param_files(make_runner, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "mesh.dat").write_text("mesh {u}\n")
    folder = tmp_path / "template"
    (folder / "sub").mkdir(parents=True)
    (folder / "input.txt").write_text("u={u} v={v:.2f} other={other}\n")
    (folder / "sub" / "more.txt").write_text("{u}\n")
    (folder / "blob.bin").write_bytes(b"\xff\xfe{u}\x00binary")
    os.symlink("../shared/mesh.dat", folder / "mesh.dat")
    os.symlink("input.txt", folder / "sub" / "alias.txt")
    write_program(folder / "simulation", "print(1.0)\n")
    worker = command_worker(folder, command="./simulation", clean=False)
    runner = make_runner(worker)
    runner.spawn({"u": 1.25, "v": 2.0}, wait=True)
    run_dir = os.path.join(runner.work_dir, "run_000")
    assert open(os.path.join(run_dir, "input.txt")).read() == "u=1.25 v=2.00 other={other}\n"
    assert open(os.path.join(run_dir, "sub", "more.txt")).read() == "1.25\n"
    assert open(os.path.join(run_dir, "blob.bin"), "rb").read() == b"\xff\xfe{u}\x00binary"
    # Relative links become absolute, pointing where they pointed from the template.
    assert os.readlink(os.path.join(run_dir, "mesh.dat")) == str(shared / "mesh.dat")
    assert os.readlink(os.path.join(run_dir, "sub", "alias.txt")) == str(folder / "sub" / "input.txt")
    assert (shared / "mesh.dat").read_text() == "mesh {u}\n"  # a linked file is not filled in
    # param_files: only the named file is filled in.
    worker = command_worker(folder, command="./simulation", clean=False, param_files=["more.txt"])
    runner = make_runner(worker, work_dir="restricted")
    runner.spawn({"u": 3.5, "v": 0.0}, wait=True)
    run_dir = os.path.join(runner.work_dir, "run_000")
    assert open(os.path.join(run_dir, "input.txt")).read() == "u={u} v={v:.2f} other={other}\n"
    assert open(os.path.join(run_dir, "sub", "more.txt")).read() == "3.5\n"


def test_template_path_is_relative_to_the_study_directory(make_runner, template, monkeypatch):
    monkeypatch.setenv("PROFIT_BASE_DIR", str(template.parent))
    runner = make_runner(command_worker("template"), output_config=outputs("f", "g"))
    runner.spawn({"u": 1.0, "v": 1.0}, wait=True)
    assert runner.output_data["f"].tolist() == [2.0]


def test_missing_template_directory(make_runner, tmp_path):
    runner = make_runner(command_worker(tmp_path / "nothing"))
    runner.spawn({"u": 1.0, "v": 1.0}, wait=True)
    assert f"template directory {tmp_path / 'nothing'} does not exist" in runner.status(0).reason


def test_command_line_is_not_templated(make_runner, template):
    worker = command_worker(template, command="echo '{u}' > cmdline.txt && ./simulation", clean=False)
    runner = make_runner(worker, output_config=outputs("f", "g"))
    runner.spawn({"u": 1.0, "v": 1.0}, wait=True)
    assert open(os.path.join(runner.work_dir, "run_000", "cmdline.txt")).read() == "{u}\n"


def test_stale_run_directory_is_replaced(make_runner, template):
    runner = make_runner(command_worker(template), output_config=outputs("f", "g"))
    stale = os.path.join(runner.work_dir, "run_000")
    os.makedirs(stale)
    open(os.path.join(stale, "old.txt"), "w").close()
    runner.spawn({"u": 1.0, "v": 1.0}, wait=True)
    assert runner.status(0).state is RunState.DONE
    assert not os.path.exists(stale)


def test_custom_processors_registered_with_wrap(make_runner):
    worker = {
        "class": "command",
        "command": "cat inputs.txt",
        "pre": {"class": "t_write_inputs"},
        "post": {"class": "t_product", "scale": 2.0},
    }
    runner = make_runner(worker)
    runner.spawn({"u": 3.0, "v": 4.0}, wait=True)
    assert runner.status(0).state is RunState.DONE, runner.status(0)
    assert runner.output_data["f"].tolist() == [24.0]


def test_wrapped_processor_refuses_unknown_options():
    with pytest.raises(
        ConfigError, match=r"postprocessor 't_product' has no option 'scael'; its options are 'path', 'scale'"
    ):
        Postprocessor["t_product"](scael=2)


@pytest.mark.parametrize(
    "text, values, expected",
    [
        ("{u} {v}", {"u": 0.1, "v": 2}, "0.1 2"),
        ("{u}{uu}", {"u": 1, "uu": 2}, "12"),
        ("${HOME} {x} {u:.1e}", {"u": 12345.0}, "${HOME} {x} 1.2e+04"),
        ('{"a": {{u}}, "b": {u}}', {"u": 1.5}, '{"a": 1.5, "b": {u}}'),
        ("{u}", {"u": 1 / 3}, repr(1 / 3)),
    ],
)
def test_substitute(text, values, expected):
    assert substitute(text, values) == expected


def test_example_study_runs(runner_label, tmp_path):
    sys.path.insert(0, EXAMPLE)
    try:
        import run_study
    finally:
        sys.path.remove(EXAMPLE)
    runner = run_study.make_runner(3, str(tmp_path / "study"), runner=runner_label)
    runner.spawn_array(
        np.array([(1.0, 0.1), (2.0, 0.0), (-1.0, 0.0)], dtype=[("omega", "f8"), ("zeta", "f8")]), wait=True
    )
    states = [runner.status(i).state for i in range(3)]
    assert states == [RunState.DONE, RunState.DONE, RunState.FAILED]
    assert "omega must be positive, got -1.0" in runner.status(2).reason
    amplitude, x = runner.output_data["amplitude"], runner.output_data["x"]
    assert x.shape == (2, 5) and amplitude[1] == pytest.approx(abs(np.cos(2.0 * 5)), abs=0.02)
    json.dumps(runner.config)


def test_spaces_inside_double_braces_are_layout_also_after_a_format():
    from profit.run.command import substitute

    assert substitute('{"v": {{ v:.2e }}, "keep": {x}}', {"v": 1.5}) == '{"v": 1.50e+00, "keep": {x}}'
