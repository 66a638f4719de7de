"""Workers built from the environment, include files, and the profit-worker command."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from profit.run import Worker
from profit.run.errors import ConfigError
from profit.run.includes import load_includes, loaded_includes
from profit.run.local import MemmapRunnerInterface


@pytest.fixture
def interface(tmp_path):
    return MemmapRunnerInterface(
        4,
        {"u": {"dtype": np.float64}, "v": {"dtype": np.float64}},
        {"f": {"dtype": np.float64, "size": (1, 1)}},
        path=str(tmp_path / "interface.npy"),
    )


def environment(interface, run_id, **extra):
    return {
        "PROFIT_RUN_ID": str(run_id),
        "PROFIT_WORKER": json.dumps({"class": "t_sum"}),
        "PROFIT_INTERFACE": json.dumps(interface.config),
        **extra,
    }


def test_from_env_adds_the_array_id(interface):
    worker = Worker.from_env(environment(interface, 1, PROFIT_ARRAY_ID="2"))
    assert worker.run_id == 3
    assert type(worker) is Worker["t_sum"]


def test_profit_worker_computes_one_run(interface, tmp_path):
    interface.input[2] = (20.0, 0.5)
    env = {
        **os.environ,
        **environment(interface, 2),
        "PROFIT_INCLUDES": json.dumps([os.path.join(os.path.dirname(__file__), "workers.py")]),
    }
    worker = os.path.join(os.path.dirname(sys.executable), "profit-worker")
    done = subprocess.run([worker], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert interface.internal["DONE"][2] and interface.output["f"][2] == 20.5
    assert 0 <= interface.internal["TIME"][2] < 5


def test_include_file_is_loaded_once_and_listed(tmp_path):
    path = tmp_path / "custom.py"
    path.write_text("from profit.run import Worker\n@Worker.wrap('test_included')\ndef g(x):\n    return x\n")
    load_includes([str(path)])
    load_includes(str(path))
    assert loaded_includes().count(str(path)) == 1
    assert "test_included" in Worker.labels


def test_include_file_that_fails_to_import(tmp_path):
    path = tmp_path / "broken.py"
    path.write_text("x = 1\nraise RuntimeError('no licence server')\n")
    with pytest.raises(
        ConfigError,
        match=r"include file .*broken\.py failed to import: RuntimeError: no licence server \(line 2 of broken\.py\)",
    ):
        load_includes([str(path)])


def test_missing_include_file(tmp_path):
    with pytest.raises(ConfigError, match="include file .*nothere.py does not exist"):
        load_includes([str(tmp_path / "nothere.py")])


def test_wrap_from_future_annotations(tmp_path):
    path = tmp_path / "future.py"
    path.write_text(
        "from __future__ import annotations\n"
        "from profit.run import Worker\n"
        "@Worker.wrap('test_future')\n"
        "def h(x) -> ['a', 'b']:\n    return x, x\n"
    )
    load_includes([str(path)])
    assert Worker["test_future"].outputs == ("a", "b")
