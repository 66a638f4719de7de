"""profit.exports: aligned results written to every format, read back with the tools people use."""

from __future__ import annotations

import importlib.util
import os
import sys

import numpy as np
import pytest

from profit import datafiles
from profit.exports import EXPORT_FORMATS, export, states_file, to_dataframe, to_xarray
from profit.run.errors import ConfigError

INPUTS = ["x", "n"]
OUTPUTS = ["f", "g", "h"]
AXIS = np.linspace(0, 1, 11)
GRIDS = {"g": ("t", AXIS)}
REASON = 'exit 3, see #log\nline 2 "quoted"'
SAFE_REASON = "exit 3; see #log line 2 'quoted'"  # as the .csv files have it
STATES = ["done", "failed", "pending", "done"]


@pytest.fixture
def results() -> np.ndarray:
    """Four runs: done, failed (a reason with a comma, a newline, quotes and a #), pending, done."""
    dtype = [
        ("x", "f8"),
        ("n", "i8"),
        ("f", "f8"),
        ("g", "f8", (11,)),
        ("h", "f8", (2,)),
        ("state", "U9"),
        ("reason", f"U{len(REASON)}"),
        ("attempts", "u4"),
        ("started", "f8"),
        ("ended", "f8"),
        ("duration", "f8"),
    ]
    array = np.zeros(4, dtype)
    array["x"] = [0.1, 1 / 3, 2.5e-300, -7.0]
    array["n"] = [1, 2, 3, 2**40]
    array["f"] = [np.pi, np.nan, np.nan, 1e22]
    array["g"] = [np.sin(AXIS), np.full(11, np.nan), np.full(11, np.nan), AXIS / 3]
    array["h"] = [[0.5, -0.0], [np.nan, np.nan], [np.nan, np.nan], [1e-5, 2.0]]
    array["state"] = STATES
    array["reason"] = ["", REASON, "", ""]
    array["attempts"] = [1, 3, 0, 1]
    array["started"] = [1718000000.123456, 1718000001.5, np.nan, 1718000002.25]
    array["ended"] = [1718000003.654321, 1718000009.0, np.nan, 1718000004.0]
    array["duration"] = array["ended"] - array["started"]
    return array


def spread(results: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
    """The columns of ``names`` as the text formats have them (a vector ``g`` as ``g_0``, ``g_1`` ...)."""
    columns = {}
    for name in names:
        field = results[name]
        if field.ndim > 1:
            columns.update((f"{name}_{index}", field[:, index]) for index in range(field.shape[1]))
        else:
            columns[name] = field
    return columns


def assert_exact(actual, expected) -> None:
    """Equal values, bit for bit (NaN where NaN), whatever the dtype."""
    np.testing.assert_array_equal(np.asarray(actual, dtype=float), np.asarray(expected, dtype=float), strict=False)


def test_csv_reads_back_exactly_with_pandas_and_numpy(tmp_path, results):
    import pandas as pd

    path = str(tmp_path / "results.csv")
    export(path, results, inputs=INPUTS, outputs=OUTPUTS, grids=GRIDS)
    numbers = spread(results, INPUTS + OUTPUTS + ["attempts", "started", "ended", "duration"])
    assert open(path).readline().strip().split(",") == [*numbers, "state", "reason"]
    assert len(open(path).read().splitlines()) == 1 + len(results)  # the reason's newline is gone

    frame = pd.read_csv(path)
    for name, values in numbers.items():
        assert_exact(frame[name], values)
    assert frame["n"].tolist() == [1, 2, 3, 2**40]  # integers stay integers, exactly
    assert frame["state"].tolist() == STATES
    assert frame["reason"][1] == SAFE_REASON and frame["reason"].drop(1).isna().all()  # '' reads as NaN
    assert frame.loc[1, [name for name in numbers if name.startswith(("f", "g_", "h_"))]].isna().all()

    table = np.genfromtxt(path, delimiter=",", names=True)
    assert table.dtype.names == (*numbers, "state", "reason")
    for name, values in numbers.items():
        assert_exact(table[name], values)
    assert np.isnan(table["state"]).all() and np.isnan(table["reason"]).all()  # text: NaN for numpy


def test_txt_is_profits_layout_with_the_states_beside_it(tmp_path, results):
    import pandas as pd

    path = str(tmp_path / "results.txt")
    export(path, results, inputs=INPUTS, outputs=OUTPUTS, grids=GRIDS)
    numbers = spread(results, INPUTS + OUTPUTS)
    lines = open(path).read().splitlines()
    assert lines[0] == "# " + " ".join(numbers)
    assert lines[-1] == f"# run 1 failed: {REASON.replace(chr(10), ' ')}"  # one comment line
    assert lines[1].split()[:2] == ["0.1", "1.0"]  # as datafiles.write has them: every number a float
    table = np.genfromtxt(path, names=True)
    assert table.dtype.names == tuple(numbers)
    for name, values in numbers.items():
        assert_exact(table[name], values)

    states = pd.read_csv(states_file(path), keep_default_na=False)
    assert states_file(path) == str(tmp_path / "results.states.csv")
    assert states.columns.tolist() == ["run", "state", "reason"]
    assert states["run"].tolist() == [0, 1, 2, 3]
    assert states["state"].tolist() == STATES
    assert states["reason"].tolist() == ["", SAFE_REASON, "", ""]


def test_txt_of_the_outputs_is_what_datafiles_writes(tmp_path, results):
    """A study's output file (only the outputs) keeps the bytes datafiles.write gives it."""
    export(str(tmp_path / "output.txt"), results, inputs=[], outputs=OUTPUTS)
    outputs = np.zeros(len(results), [(name, results.dtype[name]) for name in OUTPUTS])
    for name in OUTPUTS:
        outputs[name] = results[name]
    datafiles.write(str(tmp_path / "legacy.txt"), outputs, notes=[f"run 1 failed: {REASON}"])
    assert (tmp_path / "output.txt").read_bytes() == (tmp_path / "legacy.txt").read_bytes()
    assert sorted(os.listdir(tmp_path)) == ["legacy.txt", "output.states.csv", "output.txt"]  # no temporary left


def test_npy_holds_the_variables_and_the_states_go_beside_it(tmp_path, results):
    path = str(tmp_path / "results.npy")
    export(path, results, inputs=INPUTS, outputs=OUTPUTS, grids=GRIDS)
    saved = np.load(path)
    assert saved.dtype.names == (*INPUTS, *OUTPUTS)  # proFit's layout: nothing but the variables
    for name in saved.dtype.names:
        assert_exact(saved[name], results[name])
    states = np.genfromtxt(tmp_path / "results.states.csv", delimiter=",", names=True, dtype=None, encoding="utf-8")
    assert states["state"].tolist() == results["state"].tolist()

    export(path, results, inputs=[], outputs=["f"])  # a part: those fields
    assert np.load(path).dtype.names == ("f",)


@pytest.mark.parametrize("extension", [".hdf5", ".h5"])
def test_hdf5_has_a_dataset_per_variable_the_axis_and_the_bookkeeping_as_attributes(tmp_path, results, extension):
    h5py = pytest.importorskip("h5py")
    path = str(tmp_path / f"results{extension}")
    export(path, results, inputs=INPUTS, outputs=OUTPUTS, grids=GRIDS)
    with h5py.File(path, "r") as file:
        assert sorted(file) == sorted([*INPUTS, *OUTPUTS, "t"])  # only the variables and the axis: no group
        for name in ["x", "n", "f"]:  # a scalar variable as proFit writes it: (runs, 1)
            assert file[name].shape == (4, 1)
            assert_exact(file[name][()][:, 0], results[name])
        for name in ["g", "h"]:
            assert_exact(file[name][()], results[name])
        assert file["g"].shape == (4, 11) and np.isnan(file["g"][1]).all()
        assert_exact(file["t"][()], AXIS)
        assert file["g"].dims[1]["t"] == file["t"]  # the axis is the grid's dimension scale
        attrs = file.attrs
        assert sorted(attrs) == sorted(["state", "reason", "attempts", "started", "ended", "duration"])
        assert attrs["state"].tolist() == STATES
        assert attrs["reason"].tolist() == ["", REASON, "", ""]  # the reason as it is
        assert attrs["attempts"].tolist() == [1, 3, 0, 1]
        for name in ("started", "ended", "duration"):
            assert_exact(attrs[name], results[name])


def test_hdf5_holds_the_bookkeeping_of_many_runs(tmp_path):
    h5py = pytest.importorskip("h5py")
    runs = 100_000  # attributes beyond HDF5's 64 KiB of compact storage
    results = np.zeros(runs, [("x", "f8"), ("f", "f8"), ("state", "U6"), ("reason", "U20")])
    results["state"], results["reason"] = "failed", "exited with code 1"
    export(tmp_path / "r.hdf5", results, inputs=["x"], outputs=["f"])
    with h5py.File(tmp_path / "r.hdf5", "r") as file:
        assert len(file.attrs["reason"]) == runs and file.attrs["state"][-1] == "failed"


def test_parquet_is_the_data_frame(tmp_path, results):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    path = str(tmp_path / "results.parquet")
    export(path, results, inputs=INPUTS, outputs=OUTPUTS, grids=GRIDS)
    frame = pd.read_parquet(path)
    pd.testing.assert_frame_equal(frame, to_dataframe(results, inputs=INPUTS, outputs=OUTPUTS))
    assert frame["state"].tolist() == STATES and frame["reason"].tolist() == ["", REASON, "", ""]
    assert frame.loc[1].filter(like="g[").isna().all()
    assert_exact(frame.loc[0].filter(like="g["), results["g"][0])


def test_netcdf_reads_back_with_xarray(tmp_path, results):
    xr = pytest.importorskip("xarray")
    path = str(tmp_path / "results.nc")
    export(path, results, inputs=INPUTS, outputs=OUTPUTS, grids=GRIDS)
    with xr.open_dataset(path) as opened:
        dataset = opened.load()
    assert dict(dataset.sizes) == {"run": 4, "t": 11, "h_index": 2}
    assert dataset["run"].values.tolist() == [0, 1, 2, 3]
    assert_exact(dataset["t"].values, AXIS)
    assert dataset["g"].dims == ("run", "t") and dataset["h"].dims == ("run", "h_index")
    for name in INPUTS + OUTPUTS + ["attempts", "started", "ended", "duration"]:
        assert_exact(dataset[name].values, results[name])
    assert dataset["state"].values.tolist() == STATES
    assert dataset["reason"].values.tolist() == ["", REASON, "", ""]
    assert dataset["started"].dtype == np.float64  # a timestamp, not decoded into a date


def test_to_dataframe(results):
    pytest.importorskip("pandas")
    frame = to_dataframe(results, inputs=INPUTS, outputs=OUTPUTS)
    vectors = [f"g[{index}]" for index in range(11)] + ["h[0]", "h[1]"]
    assert frame.columns.tolist() == [
        "x",
        "n",
        "f",
        *vectors,
        "state",
        "reason",
        "attempts",
        "started",
        "ended",
        "duration",
    ]
    assert frame.index.name == "run" and frame.index.tolist() == [0, 1, 2, 3]
    assert frame.filter(like="g[").columns.tolist() == vectors[:11]
    assert_exact(frame.filter(like="g[").to_numpy(), results["g"])
    assert frame["n"].tolist() == [1, 2, 3, 2**40]
    assert frame["started"].dtype == np.float64
    assert_exact(frame["started"], results["started"])
    assert frame["state"].tolist() == STATES and frame["reason"][1] == REASON


def test_to_xarray(results):
    pytest.importorskip("xarray")
    dataset = to_xarray(results, inputs=INPUTS, outputs=OUTPUTS, grids=GRIDS)
    assert dataset["run"].values.tolist() == [0, 1, 2, 3]
    assert set(dataset.coords) == {"run", "t"}
    assert_exact(dataset["t"].values, AXIS)
    assert dataset["g"].dims == ("run", "t") and dataset["h"].dims == ("run", "h_index")
    for name in INPUTS + ["f", "state", "reason", "attempts", "started", "ended", "duration"]:
        assert dataset[name].dims == ("run",)
    assert_exact(dataset["g"].sel(run=0).values, np.sin(AXIS))
    assert np.isnan(dataset["g"].sel(run=1).values).all()
    assert dataset["reason"].values.tolist() == ["", REASON, "", ""]
    assert "units" not in dataset["started"].attrs  # nothing decodes it into a date


def test_export_replaces_a_file_whole_or_not_at_all(tmp_path, results, monkeypatch):
    path = tmp_path / "results.npy"
    path.write_bytes(b"old")

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        export(str(path), results, inputs=INPUTS, outputs=OUTPUTS)
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["results.npy"]


def blocked(monkeypatch, module):
    """Make ``import module`` fail, as where it is not installed."""
    monkeypatch.setitem(sys.modules, module, None)


@pytest.mark.parametrize(
    ("name", "module", "extra"),
    [
        ("x.parquet", "pandas", "parquet"),
        ("x.parquet", "pyarrow", "parquet"),
        ("x.nc", "xarray", "netcdf"),
        ("x.hdf5", "h5py", "hdf5"),
        ("x.h5", "h5py", "hdf5"),
    ],
)
def test_a_missing_library_is_one_sentence_naming_the_file_and_the_extra(
    tmp_path, results, monkeypatch, name, module, extra
):
    blocked(monkeypatch, module)
    path = str(tmp_path / name)
    with pytest.raises(ConfigError) as error:
        export(path, results, inputs=INPUTS, outputs=OUTPUTS, grids=GRIDS)
    assert str(error.value) == f"writing {path!r} needs {module}: pip install 'profit-run[{extra}]'"
    assert os.listdir(tmp_path) == []  # nothing written, no temporary file left


def test_a_missing_netcdf_engine_is_one_sentence(tmp_path, results, monkeypatch):
    pytest.importorskip("xarray")
    find_spec = importlib.util.find_spec
    engines = {"netCDF4", "h5netcdf", "scipy"}
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in engines else find_spec(name, *a))
    path = str(tmp_path / "x.nc")
    with pytest.raises(ConfigError, match=r"^writing .*x\.nc' needs a netCDF library for xarray .*\[netcdf\]'$"):
        export(path, results, inputs=INPUTS, outputs=OUTPUTS)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    ("function", "module", "extra"), [(to_dataframe, "pandas", "pandas"), (to_xarray, "xarray", "xarray")]
)
def test_to_frames_without_their_library(results, monkeypatch, function, module, extra):
    blocked(monkeypatch, module)
    with pytest.raises(ConfigError) as error:
        function(results, inputs=INPUTS, outputs=OUTPUTS)
    assert str(error.value) == f"profit.exports.{function.__name__} needs {module}: pip install 'profit-run[{extra}]'"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ({"path": "x.xlsx"}, r"x\.xlsx': use one of the extensions \.csv, \.txt"),
        ({"outputs": ["f", "nope"]}, r"'nope' is not a field of the results"),
        ({"inputs": [], "outputs": []}, r"nothing to write"),
        ({"outputs": ["f", "state"]}, r"'state' is the runs' bookkeeping"),
        ({"grids": {"g": ("t", np.linspace(0, 1, 5))}}, r"output 'g' has 11 value\(s\) per run but its grid 't'"),
        ({"grids": {"f": ("t", AXIS)}}, r"output 'f' has a single value\(s\) per run"),
        ({"grids": {"q": ("t", AXIS)}}, r"grids has 'q', which is not one of the outputs"),
        ({"grids": {"g": ("x", AXIS)}}, r"the grid axis 'x' of output 'g' has the name of a field"),
    ],
)
def test_mistakes_are_config_errors(tmp_path, results, call, message):
    arguments = {"path": "x.csv", "inputs": INPUTS, "outputs": OUTPUTS, "grids": GRIDS, **call}
    with pytest.raises(ConfigError, match=message):
        export(str(tmp_path / arguments.pop("path")), results, **arguments)
    assert os.listdir(tmp_path) == []


def test_every_format_is_listed():
    assert EXPORT_FORMATS == (".csv", ".txt", ".npy", ".hdf5", ".h5", ".parquet", ".nc", ".in", ".out", ".pkl")


def test_no_runs_yet(tmp_path, results):
    """A study without runs exports empty files that read back empty."""
    import pandas as pd

    empty = results[:0]
    for extension in EXPORT_FORMATS:
        export(str(tmp_path / f"empty{extension}"), empty, inputs=INPUTS, outputs=OUTPUTS, grids=GRIDS)
    assert len(pd.read_csv(tmp_path / "empty.csv")) == 0
    assert len(np.load(tmp_path / "empty.npy")) == 0
    assert (tmp_path / "empty.states.csv").read_text() == "run,state,reason\n"


def test_netcdf3_refuses_integers_it_cannot_hold_exactly(tmp_path, results):
    pytest.importorskip("xarray")
    if importlib.util.find_spec("netCDF4") or importlib.util.find_spec("h5netcdf"):
        pytest.skip("a netCDF4 engine is installed: 64-bit integers fit")
    results["n"][3] = 2**60
    with pytest.raises(ConfigError, match=r"'n' has integers beyond 2\*\*53, which scipy's netCDF3 cannot hold"):
        export(str(tmp_path / "x.nc"), results, inputs=INPUTS, outputs=OUTPUTS)
    assert os.listdir(tmp_path) == []
