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


def van_der_corput(index, base):
    """The radical inverse of ``index`` in ``base``, written out: digits least significant first."""
    value, denominator = 0.0, 1.0
    while index > 0:
        index, digit = divmod(index, base)
        denominator *= base
        value += digit / denominator
    return value


HALTON = {"a": "Halton()", "u": "Uniform(0, 1)", "b": "Halton(2, 3)", "c": "Halton(-1, 5)", "f": "Output"}


def test_halton_is_profits_sequence():
    # proFit 0.6 (profit/util/halton.py, util/variable.py): the Halton variables in their order are the
    # dimensions in the bases 2, 3, 5, ...; the point 0 is skipped; each is scaled to (low, high)
    variables = parse_variables(HALTON, "profit.yaml")
    rows = sample_inputs(variables, 40, seed=None)
    assert rows["a"][:4].tolist() == [0.5, 0.25, 0.75, 0.125]
    assert rows["b"][:3].tolist() == [2 + 1 / 3, 2 + 2 / 3, 2 + 1 / 9]
    for index in range(40):
        assert rows["a"][index] == van_der_corput(index + 1, 2)
        assert rows["b"][index] == (3 - 2) * van_der_corput(index + 1, 3) + 2
        assert rows["c"][index] == (5 - -1) * van_der_corput(index + 1, 5) + -1
    # no seed: the same study gets the same Halton inputs every time, whatever its seed
    for seed in (None, 1, 2):
        again = sample_inputs(variables, 40, seed=seed)
        for name in "abc":
            np.testing.assert_array_equal(again[name], rows[name])


def test_halton_dimensions_follow_the_order_of_the_halton_variables():
    variables = parse_variables(
        {"x": "Halton()", "n": "Normal(0, 1)", "y": "Halton()", "z": "Halton()", "f": "Output"}, "p"
    )
    rows = sample_inputs(variables, 20, seed=3)
    for name, base in (("x", 2), ("y", 3), ("z", 5)):
        assert rows[name].tolist() == [van_der_corput(index, base) for index in range(1, 21)]


def test_halton_prefix_is_stable_and_a_study_grows_along_the_sequence():
    variables = parse_variables(HALTON, "profit.yaml")
    np.testing.assert_array_equal(sample_inputs(variables, 300, seed=4)[:200], sample_inputs(variables, 200, seed=4))
    whole = sample_inputs(variables, 300, seed=4)
    grown = sample_inputs(variables, 300, seed=4, start=200)
    np.testing.assert_array_equal(grown, whole[200:])
    assert grown["a"][0] == van_der_corput(201, 2) and grown["b"][0] == van_der_corput(201, 3) + 2
