"""A plain function wherever a Worker label is accepted (the Python API of the runners).

The function is called once per run with one argument per input; its parameters
name the inputs, its return annotation (or name) the outputs. Forked workers
(fork, pool) find it in the runner's memory, the local runner's workers import
it by name or unpickle it. The interface config is inferred from the function
when it is not given, and the parameters may be a structured array, a sequence
of mappings or a pandas DataFrame.
"""

import functools
import os
import subprocess
import sys
import textwrap

import function_models
import numpy as np
import pandas as pd
import pytest
from helpers import SCALAR_INPUTS, TESTS, outputs

from profit.run import Runner, Worker
from profit.run.config import build_interface, function_interface, worker_config
from profit.run.errors import ConfigError, ParameterError
from profit.run.state import RunState

FORKED = ["fork", "pool"]
ALL = ["fork", "pool", "local"]


def make(label, work_dir, worker, **options):
    """A runner of ``label`` with two workers at most (the pool forks no more)."""
    return Runner[label](worker=worker, work_dir=str(work_dir), parallel=2, **options)


def rows(count):
    """count (u, v) rows: u = 0, 1, 2, ..., v = 0.5, 1.5, 2.5, ... (no two rows alike)."""
    table = np.zeros(count, dtype=[("u", "f8"), ("v", "f8")])
    table["u"] = np.arange(count)
    table["v"] = np.arange(count) + 0.5
    return table


def fields(dtype):
    """A record's fields as (name, dtype) pairs (the interface's records carry offsets of their own)."""
    return [(name, dtype[name].str) for name in dtype.names]


def assert_all_done(runner, count):
    assert runner.failed == {}
    assert [runner.status(run_id).state for run_id in range(count)] == [RunState.DONE] * count


# --- a plain function on every runner ------------------------------------------------------------


@pytest.mark.parametrize("label", ALL)
def test_a_module_function_runs_on_every_runner_with_outputs_aligned(label, tmp_path):
    table = rows(7)
    with make(label, tmp_path, function_models.model) as runner:  # interface: memmap, inferred
        runner.spawn_array(table, wait=True)
        assert_all_done(runner, 7)
        data_in, data_out = runner.interface.input[:7], runner.interface.output[:7]
        assert list(data_out.dtype.names) == ["f", "g"]
        np.testing.assert_array_equal(data_in["u"], table["u"])
        np.testing.assert_array_equal(data_out["f"], table["u"] + table["v"])
        np.testing.assert_array_equal(data_out["g"], table["u"] * table["v"])


def test_the_local_runner_imports_a_module_function_by_name(tmp_path):
    with make("local", tmp_path, function_models.model) as runner:
        assert runner.worker_config["function"] == "function_models:model"
        assert runner.worker_config["path"] == str(TESTS)
        assert not os.path.exists(tmp_path / ".profit-functions")  # nothing pickled


@pytest.mark.parametrize("label", FORKED)
def test_a_closure_reaches_forked_workers_through_memory(label, tmp_path):
    offset = 100.0

    def shifted(u, v):
        return u + v + offset

    table = rows(5)
    with make(label, tmp_path, shifted) as runner:
        assert runner.worker_config["function"].startswith("@")  # no import, no pickle
        runner.spawn_array(table, wait=True)
        assert_all_done(runner, 5)
        np.testing.assert_array_equal(runner.interface.output["shifted"][:5], table["u"] + table["v"] + offset)
    assert not os.path.exists(tmp_path / ".profit-functions")


def test_a_closure_reaches_the_local_runner_pickled(tmp_path):
    pytest.importorskip("cloudpickle")
    offset = 7.0

    def shifted(u, v) -> "f":  # noqa: F821
        return u - v + offset

    table = rows(3)
    with make("local", tmp_path, shifted) as runner:
        reference = runner.worker_config["function"]
        assert reference.startswith("pickle:") and os.path.dirname(reference[7:]) == str(tmp_path / ".profit-functions")
        runner.spawn_array(table, wait=True)
        assert_all_done(runner, 3)
        np.testing.assert_array_equal(runner.interface.output["f"][:3], table["u"] - table["v"] + offset)


def test_a_function_of_a_scripts_main_runs_on_the_local_runner(tmp_path):
    pytest.importorskip("cloudpickle")
    script = tmp_path / "script.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys
            from profit.run import Runner

            def model(u, v) -> "f":
                return 3 * u + v

            if __name__ == "__main__":
                with Runner["local"](worker=model, work_dir=sys.argv[1], parallel=2) as runner:
                    runner.spawn_array([{"u": 1, "v": 2}, {"u": 4, "v": 0.5}], wait=True)
                    print(dict(runner.failed), runner.interface.output["f"][:2].tolist())
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "work")], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[-2] == "{} [5.0, 12.5]"


def test_a_function_that_cannot_be_sent_is_refused_in_one_sentence_without_cloudpickle(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "cloudpickle", None)  # import cloudpickle now raises ImportError

    def local_model(u, v):
        return u + v

    with pytest.raises(ConfigError, match="define it in a module") as refused:
        make("local", tmp_path / "closure", local_model)
    assert "\n" not in str(refused.value)

    def main_model(u, v):
        return u + v

    # Plain pickle would send a function of __main__ by name (which a worker's __main__ lacks): refused too.
    main_model.__module__ = "__main__"
    main_model.__qualname__ = "main_model"
    with pytest.raises(ConfigError, match=r"defined in __main__.*define it in a module") as refused:
        make("local", tmp_path / "main", main_model)
    assert "\n" not in str(refused.value)


# --- functions of other shapes, and configs ------------------------------------------------------


@pytest.mark.parametrize("label", [*FORKED, "local"])
def test_a_partial_and_a_callable_object_are_functions_too(label, tmp_path):
    table = rows(4)
    with make(label, tmp_path / "partial", functools.partial(function_models.scaled, 3.0)) as runner:
        assert runner.worker_config["inputs"] == ["u", "v"]
        runner.spawn_array(table, wait=True)
        assert_all_done(runner, 4)
        np.testing.assert_array_equal(runner.interface.output["f"][:4], 3.0 * (table["u"] + table["v"]))
    with make(label, tmp_path / "object", function_models.Affine(2.0)) as runner:
        runner.spawn_array(table, wait=True)
        assert_all_done(runner, 4)
        np.testing.assert_array_equal(runner.interface.output["h"][:4], 2.0 * table["u"] + table["v"])


@pytest.mark.parametrize(
    "worker",
    [
        {"class": function_models.model, "outputs": ["p", "q"]},
        {"class": "function", "function": function_models.model, "outputs": ["p", "q"]},
    ],
    ids=["class", "function"],
)
def test_a_function_in_a_worker_config_with_outputs_of_its_own(worker, tmp_path):
    with make("fork", tmp_path, worker) as runner:
        assert runner.worker_config["outputs"] == ["p", "q"]
        runner.spawn({"u": 2.0, "v": 5.0}, wait=True)
        assert_all_done(runner, 1)
        assert runner.interface.output[0].tolist() == (7.0, 10.0)


def test_a_lambda_without_outputs_is_refused_with_a_hint(tmp_path):
    with pytest.raises(ConfigError, match="cannot name its output; give its outputs"):
        make("fork", tmp_path, lambda u, v: u + v)
    with make("fork", tmp_path, {"class": lambda u, v: u + v, "outputs": ["f"]}) as runner:
        runner.spawn({"u": 1.0, "v": 2.0}, wait=True)
        assert runner.interface.output["f"][0] == 3.0


def test_a_worker_class_stands_for_its_label():
    sum_worker = Worker["t_sum"]  # (tests/workers.py)
    assert worker_config(sum_worker)["class"] == "t_sum"
    assert worker_config({"class": sum_worker, "debug": True})["class"] == "t_sum"

    class Unlabelled(sum_worker):  # inherits the label "t_sum", which names its base class
        pass

    with pytest.raises(ConfigError, match="has no label of its own"):
        worker_config(Unlabelled)
    with pytest.raises(ConfigError, match="is a class but not a Worker"):
        worker_config(dict)


def test_a_label_a_custom_worker_program_defines_stays_a_label():
    config = worker_config({"class": "defined_by_my_script", "x": 1}, resolve=False)
    assert config["class"] == "defined_by_my_script" and config["x"] == 1


# --- the interface config inferred ---------------------------------------------------------------


def test_the_interface_config_is_inferred_from_the_function(tmp_path):
    with make("fork", tmp_path, function_models.typed) as runner:
        interface = runner.interface
        assert fields(interface.input.dtype) == [("n", "<i8"), ("flag", "|b1"), ("x", "<f8")]
        assert fields(interface.output.dtype) == [("y", "<f8")]
        assert interface.size == 0  # it grows with the runs
        runner.spawn_array([{"n": 3, "flag": True, "x": 0.25}, {"n": -1, "flag": False, "x": 2.0}], wait=True)
        assert_all_done(runner, 2)
        assert runner.interface.output["y"][:2].tolist() == [31.25, -8.0]


def test_an_interface_config_keeps_what_it_gives(tmp_path):
    given = {"class": "memmap", "path": "mine.npy", "input_config": {"u": {"dtype": "int32"}, "v": {"dtype": "f4"}}}
    with make("fork", tmp_path, {"class": function_models.model, "outputs": ["f", "g"]}, interface=given) as runner:
        assert fields(runner.interface.input.dtype) == [("u", "<i4"), ("v", "<f4")]
        assert runner.interface.output.dtype.names == ("f", "g")
        runner.spawn({"u": 2, "v": 0.5}, wait=True)
        assert runner.interface.output[0].tolist() == (2.5, 1.0)
        assert os.path.exists(tmp_path / "mine.npy")  # (made with the first run)


def test_without_a_function_worker_a_missing_interface_key_stays_an_error(tmp_path):
    with pytest.raises(ConfigError, match="a label alone is not enough here"):
        build_interface("memmap", str(tmp_path), None, function_interface(worker_config("t_sum")))
    with pytest.raises(ConfigError, match="a label alone is not enough here"):
        Runner["fork"](worker="t_sum", work_dir=str(tmp_path))  # (the interface memmap by default)
    with pytest.raises(ConfigError, match="lacks size, input_config, output_config"):
        Runner["fork"](worker="t_sum", interface={"class": "memmap"}, work_dir=str(tmp_path))


def test_a_function_named_by_reference_with_inputs_and_outputs_infers_floats():
    config = worker_config(
        {"class": "function", "function": "function_models:model", "inputs": ["u"], "outputs": ["f"]}
    )
    assert function_interface(config) == {
        "size": 0,
        "input_config": {"u": {"dtype": "float64"}},
        "output_config": {"f": {"dtype": "float64"}},
    }
    assert function_interface({**config, "call": "executor"}) is None


# --- parameters as tables ---------------------------------------------------------------------------


def _tables(count):
    table = rows(count)
    return {
        "structured": table,
        "mappings": [{"u": float(row["u"]), "v": float(row["v"])} for row in table],
        "dataframe": pd.DataFrame({"u": table["u"], "v": table["v"]}, index=np.arange(count) * 10 + 3),
        "dataframe_columns_swapped": pd.DataFrame({"v": table["v"], "u": table["u"]}),
    }


@pytest.mark.parametrize("kind", list(_tables(1)))
@pytest.mark.parametrize("label", FORKED)
def test_spawn_array_takes_a_table_of_any_kind(kind, label, tmp_path):
    expected = rows(6)
    with make(label, tmp_path, function_models.model) as runner:
        runner.spawn_array(_tables(6)[kind], wait=True)
        assert_all_done(runner, 6)
        assert runner.interface.input[:6].tolist() == expected.tolist()
        np.testing.assert_array_equal(runner.interface.output["f"][:6], expected["u"] + expected["v"])


def test_fill_takes_a_dataframe_and_spawn_a_single_row(tmp_path):
    table = rows(4)
    frame = pd.DataFrame({"u": table["u"], "v": table["v"]})
    with make("fork", tmp_path, function_models.model) as runner:
        runner.fill(frame)
        runner.drive(range(4))
        runner.next_run_id = 4
        runner.spawn(frame.iloc[2], wait=True)  # a Series: one row
        runner.spawn(frame.iloc[[3]], wait=True)  # a one-row DataFrame
        runner.spawn(table[1:2], wait=True)  # a one-row structured array
        assert_all_done(runner, 7)
        assert runner.interface.input[:7].tolist() == table[[0, 1, 2, 3, 2, 3, 1]].tolist()
        np.testing.assert_array_equal(
            runner.interface.output["g"][:7], runner.interface.input["u"][:7] * table["v"][[0, 1, 2, 3, 2, 3, 1]]
        )


def test_bad_tables_give_the_parameter_sentences(tmp_path):
    with make("fork", tmp_path, function_models.model) as runner:
        with pytest.raises(ParameterError, match=r"params for run 0: 'w' is not an input"):
            runner.spawn_array(pd.DataFrame({"u": [1.0], "v": [2.0], "w": [3.0]}))
        with pytest.raises(ParameterError, match=r"params for run 1: 'v' is missing"):
            runner.spawn_array([{"u": 1.0, "v": 2.0}, {"u": 1.0}])
        with pytest.raises(ParameterError, match=r"input 'u' of run 0: cannot convert 'x'"):
            runner.fill(pd.DataFrame({"u": ["x"], "v": [2.0]}))
        with pytest.raises(ParameterError, match="must be many parameter sets"):
            runner.spawn_array({"u": [1.0], "v": [2.0]})
        with pytest.raises(ParameterError, match="one parameter set, got a table of 2 rows"):
            runner.spawn(pd.DataFrame({"u": [1.0, 2.0], "v": [2.0, 3.0]}))
        assert runner.next_run_id == 0 and runner.runs == {}  # nothing started


def test_the_worker_process_never_imports_pandas(tmp_path):
    with make("local", tmp_path, function_models.pandas_loaded) as runner:
        runner.spawn_array(pd.DataFrame({"u": [1.0, 2.0], "v": [0.0, 0.0]}), wait=True)
        assert_all_done(runner, 2)
        assert runner.interface.output["pandas_loaded"][:2].tolist() == [0.0, 0.0]


def test_a_runner_with_an_interface_config_still_takes_a_function(tmp_path):
    interface = {"class": "memmap", "size": 3, "input_config": SCALAR_INPUTS, "output_config": outputs("f", "g")}
    with make("pool", tmp_path, function_models.model, interface=interface) as runner:
        assert runner.interface.size == 3
        runner.spawn_array(rows(3), wait=True)
        assert_all_done(runner, 3)


# --- a study -----------------------------------------------------------------------------------------


def test_a_study_takes_a_module_function_by_its_importable_name(tmp_path):
    import profit

    study = profit.Study.create(
        tmp_path / "study",
        inputs={"u": "Uniform(0, 1)", "v": "Uniform(0, 1)"},
        outputs=["f", "g"],
        run={"worker": function_models.model},
        ntrain=5,
        seed=3,
    )
    text = (tmp_path / "study" / "profit.yaml").read_text()
    assert "function: function_models:model" in text and f"path: {TESTS}" in text
    report = study.run()
    assert report.status.failed == 0 and report.ran == 5
    results = study.results()
    np.testing.assert_array_equal(results["f"], results["u"] + results["v"])
    np.testing.assert_array_equal(results["g"], results["u"] * results["v"])


def test_a_study_refuses_a_function_it_cannot_name_in_one_sentence(tmp_path):
    import profit

    def local_model(u, v):
        return u + v

    with pytest.raises(
        ConfigError, match="cannot be imported by name.*define it at the top level of a module"
    ) as refused:
        profit.Study.create(
            tmp_path / "study", inputs={"u": 1.0, "v": 2.0}, outputs=["local_model"], run={"worker": local_model}
        )
    assert "\n" not in str(refused.value)
    assert not (tmp_path / "study" / "profit.yaml").exists()
