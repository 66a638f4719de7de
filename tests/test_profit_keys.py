"""Keys and study files proFit accepts: they work here too, or say once that they have no effect."""

import numpy as np
from helpers import STUDY, make_study, profit

from profit import Study


def test_run_clean_removes_the_run_directories_of_runs_that_succeeded(tmp_path):
    yaml = STUDY.format(ntrain=3, runner="fork") + "  clean: true\n"
    study = make_study(tmp_path / "study", yaml)
    assert profit("run", str(study)).returncode == 0
    assert not list(study.glob("run_*"))
    yaml = STUDY.format(ntrain=3, runner="fork") + "  clean: false\n"
    kept = make_study(tmp_path / "kept", yaml)
    assert profit("run", str(kept)).returncode == 0
    assert len(list(kept.glob("run_*"))) == 3


def test_config_file_key_is_noted_once_and_has_no_effect(tmp_path):
    study = make_study(tmp_path / "study", "config_file: other.yaml\n" + STUDY.format(ntrain=2, runner="fork"))
    done = profit("run", str(study))
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("'config_file' has no effect here") == 1


def test_an_output_with_profits_dependent_key(tmp_path):
    folder = tmp_path / "study"
    folder.mkdir()
    (folder / "profit.yaml").write_text(
        "ntrain: 2\nvariables:\n  u: Uniform(0, 1)\n  t: Independent(0, 1, 3)\n"
        "  f: {kind: Output, dependent: [t]}\nrun:\n  command: echo 1 2 3\n"
    )
    assert profit("run", str(folder)).returncode == 0
    results = Study.load(folder).results()
    assert results["f"].shape == (2, 3)
    np.testing.assert_array_equal(results["f"], [[1, 2, 3], [1, 2, 3]])


def test_a_study_file_written_in_python(tmp_path):
    folder = tmp_path / "study"
    folder.mkdir()
    (folder / "profit_config.py").write_text(
        "import math\n\nntrain = 2\nvariables = {'u': 'Uniform(0, 1)', 'f': 'Output'}\n"
        "run = {'command': 'echo %s' % math.pi}\n"
    )
    done = profit("run", str(folder / "profit_config.py"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert (Study.load(folder / "profit_config.py").results()["f"] == float(f"{np.pi}")).all()


def test_profits_other_data_file_names(tmp_path):
    import pickle

    yaml = STUDY.format(ntrain=3, runner="fork").replace(
        "run:\n", "files: {input: input.in, output: output.pkl}\nrun:\n"
    )
    study = make_study(tmp_path / "study", yaml)
    assert profit("run", str(study)).returncode == 0
    inputs = np.genfromtxt(study / "input.in", names=True)  # proFit's .in: its text layout
    with open(study / "output.pkl", "rb") as file:
        outputs = pickle.load(file)  # proFit's .pkl: the pickled structured array
    np.testing.assert_array_equal(outputs["f"], inputs["u"] + inputs["v"])
    assert (study / "output.states.csv").exists()
    text = make_study(
        tmp_path / "text", STUDY.format(ntrain=2, runner="fork").replace("run:\n", "files: {output: o.out}\nrun:\n")
    )
    assert profit("run", str(text)).returncode == 0
    assert np.genfromtxt(text / "o.out", names=True).dtype.names == ("f", "g")
