"""The variable kinds (docs/variables.md), parsed and sampled as a study does.

Run by tests/test_docs.py.
"""

import numpy as np

from profit.variables import parse_variables, sample_inputs

variables = parse_variables(
    {
        "u": "Halton()",  # quasi-random in [0, 1]
        "w": "Halton(0, 10)",  # the second Halton dimension (base 3), in [0, 10]
        "v": "Uniform(0, 10)",
        "k": "LogUniform(1e-3, 1)",
        "n": "Normal(0, 1)",
        "x": "Linear(0, 1)",
        "c": 3,  # a Constant: an integer stays an integer
        "m": {"class": "Uniform", "constraints": [0, 1], "dtype": "float32"},
        "t": "Independent(0, 1, 11)",  # an axis: 11 points, not an input
        "f": "Output",
        "g": "Output(t)",  # 11 values per run
    },
    "profit.yaml",
)
rows = sample_inputs(variables, runs=5, seed=2026)
print(rows.dtype)
assert rows.dtype.names == ("u", "w", "v", "k", "n", "x", "c", "m")  # t, f, g are not inputs
assert list(rows["u"]) == [0.5, 0.25, 0.75, 0.125, 0.625]  # base 2, from the point 1 on
assert np.allclose(rows["w"], 10 * np.array([1 / 3, 2 / 3, 1 / 9, 4 / 9, 7 / 9]))  # base 3
assert list(rows["x"]) == [0.0, 0.25, 0.5, 0.75, 1.0]  # spread over the runs
assert rows.dtype["c"] == np.int64 and (rows["c"] == 3).all()
assert rows.dtype["m"] == np.float32
assert ((rows["k"] >= 1e-3) & (rows["k"] <= 1)).all()

# A study grown from 5 to 8 runs has the rows a study of 8 has from the start
# (Linear aside: it spreads over the runs, so a study that has it cannot grow by sampling).
sampled = {name: variable for name, variable in variables.items() if variable.kind != "Linear"}
first, more = sample_inputs(sampled, 5, seed=2026), sample_inputs(sampled, 8, seed=2026, start=5)
assert (np.concatenate([first, more]) == sample_inputs(sampled, 8, seed=2026)).all()
