"""check_study: a study whose every run would fail is refused before anything is written or run,
with one sentence naming the study file and the key; a sound study passes. And a wrapped
function that returns the wrong number of values fails its run (never "done" with NaN columns)."""

import math
import textwrap

import pytest
from helpers import SCALAR_INPUTS, make_study, outputs

from profit.run import Preprocessor, Runner, RunState, Worker
from profit.run.config import check_options
from profit.run.errors import ConfigError
from profit.studyfile import StudyFile
from profit.validate import check_study

VARIABLES = """\
ntrain: 2
variables:
  u: Uniform(0, 1)
  v: Uniform(0, 1)
  f: Output
  g: Output
"""


def study_dir(tmp_path, yaml, template=False, name="profit.yaml"):
    """A study directory with ``yaml`` (after VARIABLES) as its study file; with a template if asked."""
    folder = tmp_path / "study"
    if template:
        make_study(folder, "")
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(VARIABLES + textwrap.dedent(yaml))
    return folder


def check(folder, name="profit.yaml"):
    check_study(StudyFile.load(str(folder / name)))


def refusal(folder, name="profit.yaml"):
    """The one-sentence message that refuses the study in ``folder``."""
    with pytest.raises(ConfigError) as refused:
        check(folder, name)
    message = str(refused.value)
    assert "\n" not in message
    return message


# --- 1. the template directory ---------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    ["echo 1", "python3 -c 'print(1, 2)'", "/bin/echo 1 2", "../simulation", "$PROFIT_BASE_DIR/simulation", "sim"],
)
def test_a_command_that_needs_no_template_runs_without_one(tmp_path, command):
    check(study_dir(tmp_path, f"run:\n  command: {command}\n"))


def test_a_program_in_the_run_directory_with_its_template(tmp_path, monkeypatch):
    folder = study_dir(tmp_path, "run:\n  command: ./simulation\n", template=True)
    monkeypatch.chdir(tmp_path)  # the template is found relative to the study, not the current directory
    check(folder)


@pytest.mark.parametrize("command", ["./simulation", "./bin/sim --fast", "bin/sim", "OMP_NUM_THREADS=2 ./simulation"])
def test_a_program_in_the_run_directory_without_a_template(tmp_path, command):
    folder = study_dir(tmp_path, f"run:\n  command: {command}\n")
    message = refusal(folder)
    assert message.startswith(
        f"profit.yaml: run.pre.path: the template directory template does not exist ({folder / 'template'}), "
        f"but run.command {command!r} runs "
    )
    assert "create template/ holding" in message and "or set run.pre: {class: template, path:" in message


def test_the_default_command_needs_the_template(tmp_path):
    message = refusal(study_dir(tmp_path, "run:\n  worker: command\n"))
    assert message.startswith("profit.yaml: run.pre.path: the template directory template does not exist")
    assert "run.command (default './simulation') runs ./simulation from the run directory" in message


def test_a_command_given_in_the_worker_mapping(tmp_path):
    message = refusal(study_dir(tmp_path, "run:\n  worker: {class: command, command: ./sim}\n"))
    assert "run.worker.command './sim' runs ./sim from the run directory" in message


def test_an_explicit_template_path_must_exist(tmp_path):
    folder = study_dir(tmp_path, "run:\n  pre: {class: template, path: tmpl}\n  command: echo 1\n")
    assert refusal(folder) == (
        f"profit.yaml: run.pre.path: the template directory tmpl does not exist ({folder / 'tmpl'}); "
        f"create it, or set run.pre.path to the directory that holds the simulation's files (relative to {folder})"
    )
    (folder / "tmpl").write_text("a file")
    assert "run.pre.path: the template directory tmpl is not a directory" in refusal(folder)
    (folder / "tmpl").unlink()
    (folder / "tmpl").mkdir()
    check(folder)


def test_an_explicit_template_path_in_the_worker_mapping(tmp_path):
    folder = study_dir(tmp_path, "run:\n  worker: {class: command, pre: {class: template, path: t}, command: ./s}\n")
    assert refusal(folder).startswith("profit.yaml: run.worker.pre.path: the template directory t does not exist")


def test_another_preprocessor_needs_no_template(tmp_path):
    # t_write_inputs: registered by tests/workers.py, which conftest loads as an include file
    check(study_dir(tmp_path, "run:\n  pre: t_write_inputs\n  command: ./simulation\n"))


def test_options_the_component_does_not_take_are_left_to_the_option_check(tmp_path):
    """A typo in an option is the runner's option check's to name, not a missing template."""
    folder = study_dir(tmp_path, "run:\n  pre: {class: template, pth: tmpl}\n  command: ./simulation\n")
    check(folder)
    with pytest.raises(ConfigError, match="profit.yaml: run.pre: preprocessor 'template' has no option 'pth'"):
        check_options(Preprocessor["template"], {"pth": "tmpl"}, "preprocessor", where="profit.yaml: run.pre")
    folder = study_dir(tmp_path, "run:\n  worker: {class: command, comand: ./simulation}\n")
    check(folder)
    with pytest.raises(ConfigError, match="has no option 'comand'; did you mean 'command'"):
        check_options(Worker["command"], {"comand": "./simulation"}, "worker", where="profit.yaml: run.worker")


# --- 2. a wrapped function -------------------------------------------------------------------

MODEL = """\
from profit.run import Worker

@Worker.wrap("{label}"{outputs})
def f({parameters}):
    return {values}
"""


def wrapped_study(tmp_path, label, parameters="u, v", outputs="", values="u + v, u - v", variables=""):
    folder = study_dir(tmp_path, f"{variables}include: model.py\nrun:\n  worker: {label}\n")
    model = MODEL.format(label=label, outputs=outputs, parameters=parameters, values=values)
    (folder / "model.py").write_text(model)
    return folder


def test_a_wrapped_function_records_its_inputs_and_outputs(tmp_path):
    check(wrapped_study(tmp_path, "t_validation_sound", outputs=', ["f", "g"]'))
    cls = Worker["t_validation_sound"]
    assert cls.wrapped_inputs == ("u", "v") and cls.wrapped_outputs == ("f", "g")


def test_a_parameter_that_is_not_an_input(tmp_path):
    folder = wrapped_study(tmp_path, "t_validation_w", parameters="u, w", outputs=', ["f", "g"]')
    assert refusal(folder) == (
        "profit.yaml: run.worker: the function f of worker 't_validation_w' takes 'w', which is not an input of "
        "the study (inputs: u, v); rename its parameters after the inputs, or pass inputs=[...] to Worker.wrap"
    )


def test_an_output_that_is_not_an_output_of_the_study(tmp_path):
    folder = wrapped_study(tmp_path, "t_validation_h", outputs=', ["f", "h"]')
    assert refusal(folder).startswith(
        "profit.yaml: run.worker: the function f of worker 't_validation_h' returns 'h', which is not an output "
        "of the study (outputs: f, g)"
    )


def test_an_output_of_the_study_the_function_does_not_return(tmp_path):
    folder = wrapped_study(tmp_path, "t_validation_only_f", values="u + v")  # its output: f (its name)
    assert refusal(folder) == (
        "profit.yaml: run.worker: the function f of worker 't_validation_only_f' returns no value for output 'g' "
        "of the study (it returns f); name every output in Worker.wrap('t_validation_only_f', ['f', 'g']) and "
        "return a value for each"
    )


# --- 3. the columns of the numpytxt postprocessor --------------------------------------------


@pytest.mark.parametrize("names", ["[f, g]", "[f, IGNORE, g]", "[IGNORE, g, f]", "[f, comment, g]"])
def test_names_that_read_every_output(tmp_path, names):
    # proFit skips every column that is not an output; IGNORE is the name for it.
    check(study_dir(tmp_path, f"run:\n  command: echo 1 2\n  post: {{class: numpytxt, names: {names}}}\n"))


def test_a_misspelt_column_leaves_an_output_unread(tmp_path):
    folder = study_dir(tmp_path, "run:\n  command: echo 1 2\n  post: {class: numpytxt, names: [f, gg]}\n")
    assert refusal(folder) == (
        "profit.yaml: run.post.names: the output 'g' of the study is not among the columns [f, gg], so no run "
        "would read it; did you mean 'g' instead of 'gg'?; name each column after its output, and a column to "
        "skip IGNORE"
    )


def test_a_missing_column(tmp_path):
    folder = study_dir(
        tmp_path, "run:\n  worker: {class: command, command: echo 1, post: {class: numpytxt, names: [f]}}\n"
    )
    assert refusal(folder).startswith(
        "profit.yaml: run.worker.post.names: the output 'g' of the study is not among the columns [f]"
    )


def test_names_must_be_a_list(tmp_path):
    folder = study_dir(tmp_path, "run:\n  command: echo 1 2\n  post: {class: numpytxt, names: f g}\n")
    assert refusal(folder) == (
        "profit.yaml: run.post.names must be a list of the output file's columns, e.g. [f, g], got 'f g'"
    )


def test_names_of_another_postprocessor_are_its_own_business(tmp_path):
    check(study_dir(tmp_path, "run:\n  command: echo 1 2\n  post: {class: json, path: out.json}\n"))


# --- 5. the input and output files -----------------------------------------------------------


@pytest.mark.parametrize(
    "files, run, fragment",
    [
        ("{output: profit-study.npy}", "", "files.output: profit-study.npy is the study's state profit-study.npy"),
        ("{input: profit-study.npy}", "", "files.input: profit-study.npy is the study's state profit-study.npy"),
        ("{output: interface.npy}", "", "files.output: interface.npy is the interface file interface.npy"),
        (
            "{output: iface.npy}",
            "  interface: {class: memmap, path: iface.npy}\n",
            "files.output: iface.npy is the interface file iface.npy",
        ),
        (
            "{output: run.txt}",
            "  runner: {class: fork, logfile: run.txt}\n",
            "files.output: run.txt is the runner's log run.txt",
        ),
        ("{input: data.txt, output: data.txt}", "", "files.output: data.txt is also files.input"),
    ],
)
def test_files_that_are_profits_own(tmp_path, files, run, fragment):
    message = refusal(study_dir(tmp_path, f"files: {files}\nrun:\n  command: echo 1 2\n{run}"))
    assert message.startswith(f"profit.yaml: {fragment}")


def test_files_in_the_work_directory(tmp_path):
    folder = study_dir(tmp_path, "run_dir: work\nfiles: {output: work/profit-study.npy}\nrun:\n  command: echo 1 2\n")
    assert refusal(folder).startswith("profit.yaml: files.output: work/profit-study.npy is the study's state")
    # The same name beside the study file, away from the work directory, is the user's.
    folder = study_dir(tmp_path, "run_dir: work\nfiles: {output: profit-study.npy}\nrun:\n  command: echo 1 2\n")
    check(folder)


def test_the_study_file_itself(tmp_path):
    folder = study_dir(tmp_path, "files: {output: study.txt}\nrun:\n  command: echo 1 2\n", name="study.txt")
    assert refusal(folder, "study.txt") == (
        f"study.txt: files.output: study.txt is the study file study.txt ({folder / 'study.txt'}), "
        "which profit keeps for itself; choose another file name, e.g. output.txt"
    )


@pytest.mark.parametrize("output", ["profit.yaml", "runner.log", "profit-study.json", "profit-study.lock"])
def test_names_of_profits_own_files_with_other_extensions_are_refused_on_loading(tmp_path, output):
    folder = study_dir(tmp_path, f"files: {{output: {output}}}\nrun:\n  command: echo 1 2\n")
    with pytest.raises(ConfigError, match=f"profit.yaml: files.output is '.*{output}'; use one of the extensions"):
        check(folder)


# --- a wrapped function that returns the wrong number of values fails its run -----------------


@Worker.wrap("t_validation_three_for_two", ["f", "g"])
def three_for_two(u, v):
    return u, v, u + v


@Worker.wrap("t_validation_one_for_two", "f")
def one_for_two(u, v):
    return u + v


@Worker.wrap("t_validation_three_for_one", "f")
def three_for_one(u, v):
    return u, v, u + v


@Worker.wrap("t_validation_none", "f")
def returns_none(u, v):
    return None


@pytest.mark.parametrize("interface", ["memmap", "zeromq"])
@pytest.mark.parametrize(
    "worker, names, reason",
    [
        (
            "t_validation_three_for_two",
            ("f", "g"),
            "WorkerOutputError: function three_for_two returned 3 values; expected 2 (one for each output: f, g)",
        ),
        (
            "t_validation_one_for_two",
            ("f", "g"),
            "WorkerOutputError: function one_for_two returns no value for output 'g' of the study (it returns f); "
            "name every output of the study in Worker.wrap(label, [...]) and return a value for each",
        ),
        (
            "t_validation_three_for_one",
            ("f",),
            "WorkerOutputError: function three_for_one returned 3 values; expected 1 (one for each output: f)",
        ),
        (
            "t_validation_none",
            ("f",),
            "WorkerOutputError: function returns_none returned None; expected 1 (one for each output: f)",
        ),
    ],
)
def test_a_wrong_number_of_values_fails_the_run(tmp_path, interface, worker, names, reason):
    config = {"class": interface, "size": 2, "input_config": SCALAR_INPUTS, "output_config": outputs(*names)}
    with Runner["fork"](interface=config, worker=worker, work_dir=str(tmp_path / "work")) as runner:
        runner.spawn({"u": 1.0, "v": 2.0}, wait=True)
        status = runner.status(0)
        assert status.state is RunState.FAILED
        assert status.reason == reason
        assert all(math.isnan(runner.interface.output[name][0]) for name in names)


def test_a_command_only_study_runs_without_a_template(tmp_path):
    """What check_study lets through must run: `command: echo 1` with no template directory."""
    worker = {"class": "command", "command": "echo 1", "base_dir": str(tmp_path)}
    config = {"class": "memmap", "size": 1, "input_config": SCALAR_INPUTS, "output_config": outputs("f")}
    with Runner["fork"](interface=config, worker=worker, work_dir=str(tmp_path / "work")) as runner:
        runner.spawn({"u": 1.0, "v": 2.0}, wait=True)
        assert runner.status(0).state is RunState.DONE, runner.status(0).reason
