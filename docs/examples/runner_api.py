"""A function evaluated by a Runner (docs/python-api.md). Run by tests/test_docs.py."""

import tempfile

import numpy as np

from profit.run import Runner, RunState, Worker


@Worker.wrap("model")  # inputs: u, v (the parameters); output: f (the function's name)
def f(u, v):
    if v > 0.9:
        raise ValueError(f"v = {v} is out of the model's range")
    return u * np.exp(-v)


runner = Runner["fork"](
    interface={
        "class": "memmap",
        "size": 100,
        "input_config": {"u": {"dtype": np.float64}, "v": {"dtype": np.float64}},
        "output_config": {"f": {"dtype": np.float64, "size": (1, 1)}},
    },
    worker="model",
    work_dir=tempfile.mkdtemp(),
    parallel=2,
)
params = np.zeros(100, dtype=[("u", "f8"), ("v", "f8")])
params["u"] = np.linspace(0, 1, 100)
params["v"] = np.linspace(0, 1, 100)
runner.spawn_array(params, wait=True)

outputs = runner.interface.output["f"]  # every run in its row (NaN where it failed)
states = runner.interface.internal["STATE"]  # values of RunState
for run_id, status in list(runner.failed.items())[:2]:
    print(status)  # e.g. "run 90: failed (ValueError: v = 0.909... is out of the model's range (at ...))"
done = states == RunState.DONE
assert np.allclose(outputs[done].ravel(), params["u"][done] * np.exp(-params["v"][done]))
assert set(runner.failed) == set(np.flatnonzero(params["v"] > 0.9))
assert np.isnan(outputs[~done]).all()
runner.close()
