"""proFit's ways of defining workers: a worker script of its own, PROFIT_INCLUDES from the caller,
``Kind.register(label)``, processors on plain dicts, a runner without a worker."""

import json
import shlex
import sys
import warnings

import numpy as np
import pytest
from helpers import SCALAR_INPUTS, TESTS, outputs

from profit.run import Postprocessor, Preprocessor, Runner, Worker
from profit.run.errors import ConfigError, UnknownLabelError
from profit.run.includes import load_includes, worker_includes


def memmap(size=2, output_config=None):
    return {
        "class": "memmap",
        "size": size,
        "input_config": SCALAR_INPUTS,
        "output_config": output_config or outputs("f"),
    }


SCRIPT = """
from profit.run import Worker


@Worker.register("{label}")
class MyWorker(Worker):
    def work(self):
        self.interface.retrieve()
        self.interface.output["f"] = self.interface.input["u"] * 10 + self.interface.input["v"]
        self.interface.transmit()


if __name__ == "__main__":
    MyWorker.from_env().work()
"""


def worker_script(folder, label):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "my_worker.py"
    path.write_text(SCRIPT.format(label=label))
    return path


def run_script_worker(tmp_path, label):
    work_dir = tmp_path / "study"
    worker_script(work_dir, label)
    command = f"{shlex.quote(sys.executable)} my_worker.py"
    with Runner["local"](command=command, worker=label, interface=memmap(), work_dir=str(work_dir)) as runner:
        assert runner.worker_config["class"] == label
        runner.spawn({"u": 1.0, "v": 2.0}, wait=True)
        assert not runner.failed, {run: status.reason for run, status in runner.failed.items()}
        return float(runner.interface.output["f"][0])


def test_custom_worker_script_defines_its_label(tmp_path):
    # proFit's "custom worker 1": the label exists only in the script the runner's command runs.
    assert "t_compat_script" not in Worker.labels
    assert run_script_worker(tmp_path, "t_compat_script") == 12.0


def test_custom_worker_script_that_is_also_an_include_file(tmp_path):
    # The script is loaded through include: here and in the worker (PROFIT_INCLUDES), where it
    # also runs as __main__: the same class from the same file registers twice, without an error.
    load_includes(str(worker_script(tmp_path / "study", "t_compat_included")))
    assert "t_compat_included" in Worker.labels
    assert run_script_worker(tmp_path, "t_compat_included") == 12.0


def test_an_unknown_label_is_still_refused_where_the_runner_builds_the_worker(tmp_path):
    with pytest.raises(UnknownLabelError, match="t_compat_nowhere"):
        Runner["fork"](worker="t_compat_nowhere", interface=memmap(), work_dir=str(tmp_path))
    with pytest.raises(UnknownLabelError, match="t_compat_nowhere"):
        Runner["local"](worker="t_compat_nowhere", interface=memmap(), work_dir=str(tmp_path))


# --- PROFIT_INCLUDES of the caller -------------------------------------------------------------

ENV_INCLUDE = """
import json
import os

from profit.run import Worker


@Worker.wrap("{label}", "f")
def exported(u, v):
    # 1 when the programs this worker starts would see this file in PROFIT_INCLUDES
    return float(__file__ in json.loads(os.environ.get("PROFIT_INCLUDES", "[]")))
"""


@pytest.mark.parametrize("runner_label", ["fork", "local"])
def test_profit_includes_of_the_caller_are_honoured(tmp_path, monkeypatch, runner_label):
    label = f"t_compat_env_{runner_label}"
    path = tmp_path / f"env_include_{runner_label}.py"
    path.write_text(ENV_INCLUDE.format(label=label))
    monkeypatch.setenv("PROFIT_INCLUDES", json.dumps([str(path)]))
    with Runner[runner_label](worker=label, interface=memmap(), work_dir=str(tmp_path / "study")) as runner:
        includes = json.loads(runner.worker_environment()["PROFIT_INCLUDES"])
        assert str(path) in includes
        assert set(includes) >= {*worker_includes({})}  # merged with what this process loaded
        runner.spawn({"u": 1.0, "v": 2.0}, wait=True)
        assert not runner.failed, {run: status.reason for run, status in runner.failed.items()}
        assert runner.interface.output["f"][0] == 1.0


def test_a_plain_path_in_profit_includes(tmp_path):
    path = tmp_path / "plain.py"
    path.write_text("")
    assert worker_includes({"PROFIT_INCLUDES": str(path)})[0] == str(path)
    with pytest.raises(ConfigError, match="PROFIT_INCLUDES"):
        worker_includes({"PROFIT_INCLUDES": "[1, 2"})


# --- Kind.register(label) ----------------------------------------------------------------------


def test_register_as_a_class_decorator():
    @Worker.register("t_compat_registered")
    class Mine(Worker):
        def work(self):
            pass

    assert Worker["t_compat_registered"] is Mine and Mine.label == "t_compat_registered"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Worker.register("t_compat_registered")(Mine)  # again: nothing to warn about
    with pytest.raises(ConfigError, match="not a Worker"):
        Worker.register("t_compat_wrong_kind")(Postprocessor["json"])


def test_a_user_class_replaces_a_builtin_label_with_one_warning():
    builtin = Postprocessor["json"]
    try:
        with pytest.warns(UserWarning, match="Postprocessor label 'json'.*replaces"):

            @Postprocessor.register("json")
            class MyJSON(Postprocessor):
                def retrieve(self, data):
                    pass

        assert Postprocessor["json"] is MyJSON
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            Postprocessor.register("json")(MyJSON)
    finally:
        Postprocessor._registry["json"] = builtin
        builtin.label = "json"
    # The class keyword still refuses to take a label silently.
    with pytest.raises(ConfigError, match="already registered"):

        class Thief(Postprocessor, label="json"):
            def retrieve(self, data):
                pass

    assert Postprocessor["json"] is builtin


# --- processors on plain dicts -----------------------------------------------------------------


def test_template_preprocessor_takes_a_dict(tmp_path):
    template = tmp_path / "template"
    template.mkdir()
    (template / "input.txt").write_text("u = {u}\nv = {v}\n")
    pre = Preprocessor["template"](str(tmp_path / "run_000"), path="template", base_dir=str(tmp_path), clean=False)
    pre.prepare({"u": 1.5, "v": 2})
    try:
        assert (tmp_path / "run_000" / "input.txt").read_text() == "u = 1.5\nv = 2\n"
    finally:
        pre.post()


@pytest.mark.parametrize(
    "label, text",
    [("json", '{"f": 1.5, "g": 2}'), ("numpytxt", "1.5 2\n")],
)
def test_postprocessors_fill_a_dict(tmp_path, label, text):
    path = tmp_path / "out.txt"
    path.write_text(text)
    data = {"f": 0.0, "g": 0.0}
    Postprocessor[label](path=str(path)).retrieve(data)
    assert data == {"f": 1.5, "g": 2.0}


# --- a runner without a worker -----------------------------------------------------------------


def test_a_runner_without_a_worker_gets_the_command_worker(tmp_path):
    with Runner["fork"](interface=memmap(), work_dir=str(tmp_path)) as runner:
        assert runner.worker_config["class"] == "command"


def test_a_study_file_with_a_custom_worker_script(tmp_path):
    """`profit run` on proFit's custom worker pattern: the label is defined only in the script."""
    from helpers import profit

    from profit import Study

    folder = tmp_path / "study"
    script = worker_script(folder, "study_only_label")
    (folder / "profit.yaml").write_text(
        "ntrain: 3\nvariables:\n  u: Uniform(0, 1)\n  v: Uniform(0, 1)\n  f: Output\n"
        f"run:\n  runner: {{class: local, command: {sys.executable} {script}}}\n  worker: study_only_label\n"
    )
    done = profit("run", str(folder))
    assert done.returncode == 0, done.stdout + done.stderr
    results = Study.load(folder).results()
    np.testing.assert_array_equal(results["f"], results["u"] * 10 + results["v"])


def test_a_runner_writes_its_logfile_as_in_profit(tmp_path):
    load_includes([str(TESTS / "workers.py")])
    with Runner["fork"](interface=memmap(), worker="t_raise", work_dir=str(tmp_path), logfile="mine.log") as runner:
        runner.spawn({"u": 1.0, "v": 2.0}, wait=True)
    text = (tmp_path / "mine.log").read_text()
    assert "run 0 failed" in text  # the runner's own records, in the file its logfile names
