"""profit.Study from Python (docs/python-api.md). Run by tests/test_docs.py.

Needs pandas and xarray for to_dataframe and to_xarray (extras "pandas", "xarray").
"""

import os
import tempfile

from profit import Study

folder = tempfile.mkdtemp()
model = os.path.join(folder, "model.py")
with open(model, "w") as file:
    file.write(
        "import math\n"
        "from profit.run import Worker\n\n"
        "@Worker.wrap('model')  # inputs u, v (its parameters); output f (its name)\n"
        "def f(u, v):\n"
        "    return u * math.exp(-v)\n"
    )

# Made from Python: writes my_study/profit.yaml, checked as a study file is.
study = Study.create(
    os.path.join(folder, "my_study"),
    inputs={"u": "Uniform(0, 1)", "v": "Halton(0, 2)"},
    outputs=["f"],
    run={"runner": "pool", "worker": "model"},
    include=[model],
    ntrain=20,
    seed=1,
)
study.run()  # resumable, as `profit run`
results = study.results()  # one row per run, in run order
print(results["u"][:3], results["f"][:3], results["state"][:3])

study.extend(10)  # 10 more sampled runs
study.run()  # runs only those 10
frame = study.to_dataframe()  # pandas: u, v, f, state, reason, duration, ...
data = study.to_xarray()  # xarray: dimension run
study.export(os.path.join(folder, "all.csv"))  # .csv .txt .npy .hdf5 .parquet .nc

status = Study.open(os.path.join(folder, "my_study")).status()
print(f"{status.total} runs: {status.done} done, {status.failed} failed")
assert status.total == 30 and status.done == 30
assert len(frame) == 30 and data.sizes["run"] == 30
