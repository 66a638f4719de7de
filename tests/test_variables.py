"""Variable kinds of a study and their sampling."""

import numpy as np
import pytest

from profit.run.errors import ConfigError
from profit.variables import input_config, output_config, parse_variables, sample_inputs


def test_every_kind_and_its_samples():
    variables = parse_variables(
        {
            "a": "Halton()",
            "b": "Uniform(2, 4)",
            "c": "LogUniform(1e-3, 1e-1)",
            "d": "Normal(5, 0.1)",
            "e": "Linear(0, 1)",
            "k": "Constant(3)",
            "n": 7,
            "m": {"class": "Uniform", "constraints": [10, 20], "dtype": "float32"},
            "t": "Independent(0, 1, 4)",
            "f": "Output",
            "g": "Output(t)",
        },
        "profit.yaml",
    )
    rows = sample_inputs(variables, 50, seed=1)
    assert rows.dtype.names == ("a", "b", "c", "d", "e", "k", "n", "m")
    assert ((0 <= rows["a"]) & (rows["a"] <= 1)).all() and ((2 <= rows["b"]) & (rows["b"] <= 4)).all()
    assert ((1e-3 <= rows["c"]) & (rows["c"] <= 1e-1)).all()
    assert abs(rows["d"].mean() - 5) < 0.1
    np.testing.assert_array_equal(rows["e"], np.linspace(0, 1, 50))
    assert (rows["k"] == 3).all() and (rows["n"] == 7).all() and rows["n"].dtype == np.int64
    assert rows["m"].dtype == np.float32 and ((10 <= rows["m"]) & (rows["m"] <= 20)).all()
    assert len(np.unique(rows["a"])) == 50  # a low-discrepancy sequence, not repeats
    np.testing.assert_array_equal(rows, sample_inputs(variables, 50, seed=1))  # a seed reproduces the study
    assert not np.array_equal(rows["b"], sample_inputs(variables, 50, seed=2)["b"])
    assert set(input_config(variables)) == set(rows.dtype.names)
    assert output_config(variables) == {
        "f": {"dtype": np.float64, "size": (1, 1)},
        "g": {"dtype": np.float64, "size": (1, 4)},
    }


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ("LogUniform(0, 1)", "LogUniform needs low and high > 0"),
        ("Normal(0, -1)", "Normal needs sigma >= 0"),
        ("Constant()", "Constant takes value"),
        ("Uniform(0, 1, 2)", "Uniform takes low, high"),
        ("Independent(0, 1, 2.5)", "Independent takes start, stop and a whole number of points"),
        ({"constraints": [0, 1]}, "a variable mapping needs 'class'"),
        ({"class": "Uniform", "range": [0, 1]}, "unknown key 'range'"),
        ({"class": "Uniform", "dtype": "flaot"}, "dtype 'flaot' is not a numpy type"),
        (True, "True is not a variable kind"),
    ],
)
def test_bad_variable(spec, fragment):
    with pytest.raises(ConfigError, match="^profit.yaml: variable 'x': ") as error:
        parse_variables({"x": spec, "f": "Output"}, "profit.yaml")
    assert fragment in str(error.value)


def test_a_study_needs_an_input_and_an_output():
    with pytest.raises(ConfigError, match="has no output"):
        parse_variables({"x": "Uniform(0, 1)"}, "profit.yaml")
    with pytest.raises(ConfigError, match="has no input"):
        parse_variables({"f": "Output"}, "profit.yaml")
