"""Safe growth: adding runs beyond the interface's size while workers are in flight."""

import os

import numpy as np
from helpers import params

from profit.run import _npyfile


def test_growth_with_workers_in_flight(make_runner, gate_for):
    runner = make_runner("t_gate", size=2, parallel=3)  # spawn does not throttle; a pool has 3 workers
    gate = gate_for(runner)
    rows = params(2)
    inode = os.stat(runner.interface.path).st_ino if runner.interface.label == "memmap" else None
    runner.spawn(rows[0])
    runner.spawn(rows[1])
    # Both workers are running and wait at the gate when the interface grows (twice).
    more = params(7, seed=1)
    for row in more:
        runner.spawn(row)
    assert runner.interface.size >= 9
    assert list(runner.runs) == list(range(9))  # all active (a pool's beyond its workers wait)
    gate.release(9)
    runner.wait_all(timeout=30)
    everything = np.concatenate([rows, more])
    assert runner.failed == {}
    np.testing.assert_allclose(runner.output_data["f"], everything["u"] + everything["v"])
    if inode is not None:
        assert os.stat(runner.interface.path).st_ino == inode  # grown in place, not recreated
        saved = np.load(runner.interface.path)
        assert len(saved) == runner.interface.size
        np.testing.assert_allclose(saved["f"][:9], everything["u"] + everything["v"])
        assert np.isnan(saved["f"][9:]).all()  # new rows start without results


def test_npy_growth_keeps_existing_mappings_valid(tmp_path):
    path = str(tmp_path / "grow.npy")
    dtype = np.dtype([("x", "f8"), ("DONE", "?")])
    layout = _npyfile.create(path, dtype, 3)
    old = _npyfile.map_rows(path, layout)
    old["x"] = [1.0, 2.0, 3.0]
    grown = _npyfile.grow(path, layout, 10**6, initialize=lambda rows: rows["x"].fill(-1.0))
    assert grown.offset == layout.offset
    old["x"][2] = 30.0  # a worker writing through its old mapping after the growth
    loaded = np.load(path, mmap_mode="r")
    assert loaded.shape == (10**6,)
    assert loaded["x"][:4].tolist() == [1.0, 2.0, 30.0, -1.0]
    assert _npyfile.read_layout(path) == grown
