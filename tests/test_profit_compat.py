"""proFit 0.6 reads the files we write as it reads its own, and our Halton inputs are its Halton inputs.

The tests that execute proFit's own code need its source unpacked at ``/tmp/p06dl/src/profit`` (proFit
cannot be installed beside us: its dependencies are heavy); they are skipped without it. The layout
tests below them check the same facts with h5py alone.

What proFit 0.6 does (``profit/util/file_handler.py``): ``HDF5Handler.save`` writes a structured array
as one dataset per field, and the arrays it saves (``Variables.named_input``/``named_output``) have the
shape ``(runs, 1)``, so a scalar variable's dataset is ``(runs, 1)``. ``HDF5Handler.load`` (the default
``as_type="dtype"``, ``hdf2numpy``) makes a float field of *every* key of the file and copies each key
into it: a group, or a dataset of strings, beside the variables makes it fail. Our run states and
reasons are therefore attributes of the file, which it never looks at.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types

import numpy as np
import pytest

from profit import datafiles
from profit.exports import export
from profit.variables import parse_variables, sample_inputs

PROFIT_06 = "/tmp/p06dl/src/profit"
needs_profit_06 = pytest.mark.skipif(
    not os.path.isdir(PROFIT_06), reason=f"proFit 0.6's source is not unpacked at {PROFIT_06}"
)

STATES = ["done", "failed", "done", "pending"]
REASON = "exited with code 3; stderr ends: boom"


def results() -> np.ndarray:
    """Four runs of a study with the inputs u, v and the output f: one failed, one pending (NaN outputs)."""
    array = np.zeros(4, [("u", "f8"), ("v", "f8"), ("f", "f8"), ("state", "U7"), ("reason", "U40")])
    array["u"] = [0.5, 0.25, 0.75, 0.125]
    array["v"] = [2 + 1 / 3, 2 + 2 / 3, 2 + 1 / 9, 2 + 4 / 9]
    array["f"] = [1.5, np.nan, 0.1, np.nan]
    array["state"] = STATES
    array["reason"] = ["", REASON, "", ""]
    return array


def _load_module(monkeypatch, name: str, path: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def file_handler(monkeypatch):
    """proFit 0.6's ``profit.util.file_handler``, executed from its source.

    It imports ``profit.util.base_class`` (``CustomABC``, its class registry) and, when loading,
    ``profit.util.util`` (``check_ndim``): both numpy-only modules, loaded from proFit's source under
    their names for the test's duration. Our own package ``profit`` stays in place (it has no ``util``).
    """
    package = types.ModuleType("profit.util")
    package.__path__ = []  # a package, so that its submodules import
    monkeypatch.setitem(sys.modules, "profit.util", package)
    _load_module(monkeypatch, "profit.util.base_class", f"{PROFIT_06}/util/base_class.py")
    _load_module(monkeypatch, "profit.util.util", f"{PROFIT_06}/util/util.py")
    return _load_module(monkeypatch, "profit.util.file_handler", f"{PROFIT_06}/util/file_handler.py")


def assert_same_table(ours: np.ndarray, theirs: np.ndarray) -> None:
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
    for name in theirs.dtype.names:
        np.testing.assert_array_equal(ours[name], theirs[name])  # NaN equals NaN here


@needs_profit_06
def test_profits_loader_reads_our_export_as_its_own_file(tmp_path, file_handler):
    handler = file_handler.FileHandler
    ours, theirs = str(tmp_path / "ours.hdf5"), str(tmp_path / "theirs.hdf5")
    export(ours, results(), inputs=["u", "v"], outputs=["f"])
    # proFit's own file of the same runs: its named arrays are (runs, 1)
    named = np.rec.fromarrays([results()[name].reshape(-1, 1) for name in ("u", "v", "f")], names="u,v,f")
    handler.save(theirs, named)
    loaded = handler.load(ours)
    assert_same_table(loaded, handler.load(theirs))
    assert loaded.shape == (4, 1) and loaded.dtype.names == ("f", "u", "v")  # (h5py lists keys by name)
    np.testing.assert_array_equal(loaded["f"][:, 0], results()["f"])
    as_dict = handler.load(ours, as_type="dict")
    assert sorted(as_dict) == ["f", "u", "v"] and as_dict["u"].shape == (4, 1)


@needs_profit_06
def test_profits_loader_reads_our_input_and_output_files(tmp_path, file_handler):
    handler = file_handler.FileHandler
    inputs = np.zeros(4, [("u", "f8"), ("v", "f4"), ("n", "i8")])
    inputs["u"], inputs["v"], inputs["n"] = [0.5, 0.25, 0.75, 0.125], [1, 2, 3, 4], [5, 6, 7, 2**40]
    path = str(tmp_path / "input.hdf5")
    datafiles.write(path, inputs, notes=[f"run 1 failed: {REASON}"], states=STATES)
    loaded = handler.load(path)
    assert loaded.shape == (4, 1) and sorted(loaded.dtype.names) == ["n", "u", "v"]
    for name in ("u", "v", "n"):
        np.testing.assert_array_equal(loaded[name][:, 0], inputs[name].astype(float))
    outputs = str(tmp_path / "output.hdf5")
    export(outputs, results(), inputs=[], outputs=["f"])
    np.testing.assert_array_equal(handler.load(outputs)["f"][:, 0], results()["f"])


@needs_profit_06
def test_a_group_beside_the_variables_trips_profits_loader(tmp_path, file_handler):
    """Why the states are not a group ``profit/`` (our earlier layout) nor datasets."""
    h5py = pytest.importorskip("h5py")
    path = str(tmp_path / "grouped.hdf5")
    with h5py.File(path, "w") as file:
        file["u"] = np.zeros((4, 1))
        file.create_group("profit")["state"] = np.array(STATES, dtype="S")
    with pytest.raises(ValueError, match="could not convert string to float"):  # (the group's key names)
        file_handler.FileHandler.load(path)


@needs_profit_06
def test_our_halton_inputs_are_profits(monkeypatch):
    """proFit's ``halton(n, dim)`` (profit/util/halton.py), scaled as its ``InputVariable.generate_values``
    does: ``(high - low) * point + low``, one dimension per Halton variable in their order."""
    halton = _load_module(monkeypatch, "profit06_halton", f"{PROFIT_06}/util/halton.py").halton
    spec = {"a": "Halton()", "u": "Uniform(0, 1)", "b": "Halton(2, 3)", "c": "Halton(-1, 5)", "d": "Halton()"}
    variables = parse_variables({**spec, "f": "Output"}, "profit.yaml")
    rows = sample_inputs(variables, 2000, seed=None)
    points = halton(2000, 4)
    for column, (name, low, high) in enumerate([("a", 0, 1), ("b", 2, 3), ("c", -1, 5), ("d", 0, 1)]):
        np.testing.assert_array_equal(rows[name], (high - low) * points[:, column] + low)  # bit for bit
    grown = sample_inputs(variables, 2000, seed=None, start=1500)
    np.testing.assert_array_equal(grown["c"], (5 - -1) * points[1500:, 2] + -1)


# --- the layout, with h5py alone ---------------------------------------------------------------------


def test_export_layout_is_profits_with_the_bookkeeping_as_attributes(tmp_path):
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "out.hdf5"
    export(path, results(), inputs=["u", "v"], outputs=["f"])
    with h5py.File(path, "r") as file:
        assert sorted(file) == ["f", "u", "v"]  # only datasets, one per variable: no group, no extra dataset
        for name in ("u", "v", "f"):
            assert isinstance(file[name], h5py.Dataset) and file[name].shape == (4, 1)
            assert file[name].dtype == np.float64
            np.testing.assert_array_equal(file[name][()][:, 0], results()[name])
        assert file.attrs["state"].tolist() == STATES
        assert file.attrs["reason"].tolist() == ["", REASON, "", ""]
        # what proFit's loader does with the file: a float column of each key, (runs, 1)
        table = np.zeros((4, 1), [(key, float) for key in file])
        for key in file:
            table[key] = file[key][()]
        np.testing.assert_array_equal(table["u"][:, 0], results()["u"])


def test_datafiles_layout_is_profits_with_states_and_notes_as_attributes(tmp_path):
    h5py = pytest.importorskip("h5py")
    inputs = np.zeros(3, [("u", "f8"), ("g", "f8", (2,))])
    inputs["u"], inputs["g"] = [1.0, 2.0, 3.0], [[1, 2], [3, 4], [5, 6]]
    path = str(tmp_path / "in.hdf5")
    datafiles.write(path, inputs, notes=[f"run 1 failed: {REASON}"], states=STATES[:3])
    with h5py.File(path, "r") as file:
        assert sorted(file) == ["g", "u"]
        assert file["u"].shape == (3, 1) and file["g"].shape == (3, 2)
        np.testing.assert_array_equal(file["g"][()], inputs["g"])
        assert file.attrs["state"].tolist() == STATES[:3]
        assert file.attrs["reason"].tolist() == [f"run 1 failed: {REASON}"]
    datafiles.write(path, inputs)  # nothing to say: no attributes
    with h5py.File(path, "r") as file:
        assert list(file.attrs) == []
