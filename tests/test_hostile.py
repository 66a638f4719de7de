"""Hostile or absurd study files: ``profit run`` answers with exit 2 and one short sentence that
names the file and the key; never an internal error (exit 3), a traceback, a swap storm or a hang.

Where memory matters, the child runs under a 2 GB address-space limit: a regression is then
a fast failure (MemoryError, exit 3), not a machine that swaps for minutes.
"""

import math
import random
import re
import resource
import subprocess
import sys
import time

import numpy as np
import pytest
from helpers import PROFIT, STUDY, make_study, profit

from profit.run import options
from profit.run.errors import ConfigError
from profit.studyfile import StudyFile

BASE = STUDY.format(ntrain=2, runner="fork")
GIGABYTES = 1 << 30


def _two_gigabytes():
    resource.setrlimit(resource.RLIMIT_AS, (2 * GIGABYTES, 2 * GIGABYTES))


def _run_bounded(folder, *args, limit=_two_gigabytes, timeout=60):
    """``profit run FOLDER`` (or ``args``) under a 2 GB address-space limit; (result, seconds)."""
    started = time.monotonic()
    result = subprocess.run(
        [PROFIT, *(args or ("run", str(folder)))],
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=limit,
    )
    return result, time.monotonic() - started


def _one_sentence(result, *fragments):
    """Exit 2, one line on stderr starting with 'profit: ', holding every fragment, short."""
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr[-2000:]
    line = lines[0]
    assert line.startswith("profit: "), line
    assert "Traceback" not in result.stderr and "internal error" not in line, line
    assert len(line) < 400, line
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    return line


def _study(tmp_path, yaml):
    return make_study(tmp_path / "study", yaml)


# --- 1. a YAML alias bomb ----------------------------------------------------------------------

LAUGHS = "".join(
    f"  - &{name} [{', '.join([f'*{before}'] * 9) if before else ', '.join(['lol'] * 9)}]\n"
    for before, name in zip([None, *"abcdefgh"], "abcdefghi")
)
BOMB = "ntrain: 2\nseed:\n" + LAUGHS  # 9**9 "lol"s (a billion laughs), some 600 bytes


def test_an_alias_bomb_is_refused_fast_and_small(tmp_path):
    assert len(BOMB) < 700
    study = _study(tmp_path, BOMB + BASE.split("\n", 2)[2])
    result, seconds = _run_bounded(study)
    line = _one_sentence(result, "profit.yaml line", "alias", "'seed'")
    assert "lol" not in line
    assert seconds < 20


def test_a_value_quoted_in_a_message_is_cut(tmp_path):
    """Aliases under the bound still make a large value: its message quotes only its start."""
    study = _study(tmp_path, BASE.replace("seed: 11", "seed: &a [" + ", ".join(["x" * 50] * 50) + "]"))
    line = _one_sentence(_run_bounded(study)[0], "profit.yaml: seed")
    assert "..." in line and len(line) < 200


@pytest.mark.parametrize(
    "replace, fragment",
    [
        (("Uniform(0, 1)", "Uniform(" + "1" * 100_000 + ")"), "variable 'u'"),
        (("Uniform(0, 1)", "{class: " + "Q" * 100_000 + "}"), "unknown kind"),
        (("command: ./simulation", "command: [" + "1, " * 50_000 + "1]"), "run.command"),
        (("seed: 11", "seed: " + "1" * 5000), "profit.yaml line 2"),  # more digits than Python prints
    ],
)
def test_huge_values_give_a_short_sentence(tmp_path, replace, fragment):
    study = _study(tmp_path, BASE.replace(*replace))
    _one_sentence(_run_bounded(study)[0], fragment)


def test_a_huge_study_file_is_refused(tmp_path):
    study = _study(tmp_path, BASE + "# " + "x" * (2 << 20) + "\n")
    _one_sentence(_run_bounded(study)[0], "profit.yaml", "larger than")


def test_shown_cuts_any_value():
    assert "..." in options.shown("x" * 1000) and len(options.shown("x" * 1000)) <= 80
    assert len(options.shown(list(range(10**6)))) <= 80
    assert options.shown(10**10000)  # (more digits than repr gives)
    assert options.shown(2.5) == "2.5"


# --- 2. deep nesting ----------------------------------------------------------------------------


@pytest.mark.parametrize("opening", ["[", "{a: ", "- "])
def test_deep_nesting_is_one_sentence(tmp_path, opening):
    if opening == "- ":
        nested = "".join("  " * depth + "-\n" for depth in range(200))
        yaml = BASE.replace("seed: 11", "seed:\n" + nested)
    else:
        yaml = BASE.replace("seed: 11", "seed: " + opening * 100_000)
    study = _study(tmp_path, yaml)
    result, seconds = _run_bounded(study)
    _one_sentence(result, "profit.yaml line", "nested more than", "'seed'")
    assert seconds < 30


def test_recursive_alias_is_refused(tmp_path):
    study = _study(tmp_path, BASE.replace("seed: 11", "seed: &a [1, *a]"))
    _one_sentence(_run_bounded(study)[0], "profit.yaml line", "alias", "'seed'")


# --- 3. duplicate keys --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "yaml, fragments",
    [
        (BASE + "ntrain: 3\n", ["line 11", "'ntrain'", "first on line 1"]),
        (BASE.replace("  g: Output\n", "  g: Output\n  u: Normal(0, 1)\n"), ["line 8", "'u'", "first on line 4"]),
        (BASE.replace("  runner: fork\n", "  runner: fork\n  runner: local\n"), ["line 10", "'runner'"]),
    ],
)
def test_a_key_given_twice_is_refused(tmp_path, yaml, fragments):
    study = _study(tmp_path, yaml)
    _one_sentence(_run_bounded(study)[0], "profit.yaml", "given twice", *fragments)


def test_merge_keys_still_work(tmp_path):
    yaml = BASE.replace("run:\n  runner: fork\n", "defaults: &d {runner: fork}\nrun:\n  <<: *d\n")
    yaml = yaml.replace("defaults: &d {runner: fork}\n", "").replace("  <<: *d\n", "  <<: {runner: fork}\n")
    study = _study(tmp_path, yaml)
    result = profit("run", str(study))
    assert result.returncode == 0, result.stderr


# --- 4. ntrain beyond the machine ---------------------------------------------------------------


@pytest.mark.parametrize("ntrain", [10**9, 10**12, 10**18])
def test_an_ntrain_beyond_disk_or_memory_is_refused(tmp_path, ntrain):
    study = _study(tmp_path, BASE.replace("ntrain: 2", f"ntrain: {ntrain}"))
    result, seconds = _run_bounded(study)
    _one_sentence(result, f"profit.yaml: ntrain {ntrain} needs about", "lower ntrain")
    assert seconds < 20
    assert not (study / "profit-study.npy").exists()


def test_an_ntrain_of_a_real_study_passes(tmp_path):
    """10**6 runs need some 330 MB: only checked here (not run)."""
    study = _study(tmp_path, BASE.replace("ntrain: 2", "ntrain: 1000000"))
    assert StudyFile.load(str(study)).ntrain == 10**6


def test_a_vector_output_counts_in_the_row(tmp_path, monkeypatch):
    import profit.studyfile as studyfile

    monkeypatch.setattr(studyfile, "_free_bytes", lambda directory: (10**9, directory))
    yaml = BASE.replace("ntrain: 2", "ntrain: 1000000").replace(
        "  g: Output\n", "  g: Output(t)\n  t: Independent(0, 1, 1000)\n"
    )
    study = _study(tmp_path, yaml)
    with pytest.raises(ConfigError, match=r"ntrain 1000000 needs about 8\.\d+ GB for the study table, but only 1 GB"):
        StudyFile.load(str(study))


# --- 5. NaN, infinity and other numbers that are none -------------------------------------------


@pytest.mark.parametrize(
    "replace, fragments",
    [
        (("command: ./simulation", "command: ./simulation\n  timeout: .nan"), ["timeout", "nan"]),
        (("command: ./simulation", "command: ./simulation\n  timeout: .inf"), ["timeout", "inf"]),
        (("command: ./simulation", "command: ./simulation\n  timeout: 1.0e+300"), ["timeout", "at most"]),
        (("command: ./simulation", "command: ./simulation\n  retries: .nan"), ["retries", "nan"]),
        (("command: ./simulation", "command: ./simulation\n  retries: 2.5"), ["retries", "2.5"]),
        (("command: ./simulation", "command: ./simulation\n  retries: true"), ["retries", "True"]),
        (("command: ./simulation", "command: ./simulation\n  retries: 100000000000000000000000"), ["retries", "2**63"]),
        (("runner: fork", "runner: {class: fork, sleep: .nan}"), ["sleep", "nan"]),
        (("runner: fork", "runner: {class: fork, sleep: -.inf}"), ["sleep", "-inf"]),
        (("runner: fork", "runner: {class: fork, parallel: .nan}"), ["parallel", "nan"]),
        (("runner: fork", "runner: {class: fork, parallel: 2.5}"), ["parallel", "2.5"]),
        (("seed: 11", "seed: .nan"), ["seed", "nan"]),
        (("seed: 11", "seed: .inf"), ["seed", "inf"]),
        (("seed: 11", "seed: 100000000000000000000000000000"), ["seed", "2**63"]),
        (("ntrain: 2", "ntrain: .inf"), ["ntrain", "inf"]),
        (("Uniform(0, 1)", "Uniform(nan, 1)"), ["variable 'u'", "nan"]),
        (("Uniform(0, 1)", "Uniform(0, inf)"), ["variable 'u'", "inf"]),
        (("Uniform(0, 1)", "Uniform(0, 1e999)"), ["variable 'u'", "finite"]),
        (("Uniform(0, 1)", "Normal(0, inf)"), ["variable 'u'", "Normal"]),
        (("Uniform(0, 1)", "Uniform(1, 0)"), ["variable 'u'", "low <= high"]),
        (("Uniform(0, 1)", "Uniform(0, )"), ["variable 'u'", "empty argument"]),
        (("Uniform(0, 1)", "Uniform(, 1)"), ["variable 'u'", "empty argument"]),
        (("Uniform(0, 1)", "Uniform(-1e308, 1e308)"), ["variable 'u'", "spans more"]),
        (("Uniform(0, 1)", "LogUniform(0, 1)"), ["variable 'u'", "> 0"]),
        (("Uniform(0, 1)", "Constant(nan)"), ["variable 'u'", "nan"]),
        (("Uniform(0, 1)", ".nan"), ["variable 'u'", "finite"]),
        (("Uniform(0, 1)", "100000000000000000000000"), ["variable 'u'", "64-bit"]),
        (("Uniform(0, 1)", "{class: Uniform, constraints: [.nan, 1]}"), ["variable 'u'", "nan"]),
        (("Uniform(0, 1)", "{class: Uniform, dtype: [a, b]}"), ["variable 'u'", "dtype"]),
        (("Uniform(0, 1)", "{class: Uniform, dtype: U10}"), ["variable 'u'", "dtype"]),
        (("  g: Output\n", "  g: Output(t)\n  t: Independent(0, 1, 1e9)\n"), ["variable 't'", "at most"]),
        (("  g: Output\n", "  g: Output(t)\n  t: Independent(0, nan, 10)\n"), ["variable 't'", "nan"]),
    ],
)
def test_numbers_that_are_none_are_refused(tmp_path, replace, fragments):
    assert replace[0] in BASE
    study = _study(tmp_path, BASE.replace(*replace))
    result, seconds = _run_bounded(study, timeout=30)
    _one_sentence(result, *fragments)
    assert seconds < 20


@pytest.mark.parametrize("value", [True, 2.5, math.nan, -1, 2**63, 10**100, "3", None])
def test_whole_number_refuses(value):
    with pytest.raises(ConfigError, match="must be a whole number"):
        options.whole_number(value, "x")


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 0, -1, True, 1e300, "1", 10**400])
def test_seconds_refuses(value):
    with pytest.raises(ConfigError, match="must be"):
        options.seconds(value, "timeout")


def test_good_numbers_pass():
    assert options.whole_number(np.int64(3), "x") == 3
    assert options.whole_number(2**63 - 1, "x") == 2**63 - 1
    assert options.seconds(0.5, "x") == 0.5
    assert options.optional_seconds(None, "x") is None


# --- 6. parallel beyond the descriptor limit ----------------------------------------------------


def _descriptors(count, hard=None):
    def limit():
        _two_gigabytes()
        resource.setrlimit(resource.RLIMIT_NOFILE, (count, hard or resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

    return limit


def test_parallel_beyond_the_descriptor_limit_is_refused(tmp_path):
    study = _study(tmp_path, BASE.replace("runner: fork", "runner: {class: fork, parallel: 100}"))
    result, _ = _run_bounded(study, limit=_descriptors(256, hard=256))
    _one_sentence(result, "parallel 100", "256", "ulimit -n", "at most 48")


def test_parallel_beyond_the_soft_descriptor_limit_raises_it_within_the_hard_one(tmp_path):
    study = _study(tmp_path, BASE.replace("runner: fork", "runner: {class: fork, parallel: 100}"))
    result, _ = _run_bounded(study, limit=_descriptors(256, hard=4096))
    assert result.returncode == 0, result.stderr


def test_parallel_within_the_descriptor_limit_runs(tmp_path):
    study = _study(tmp_path, BASE.replace("runner: fork", "runner: {class: fork, parallel: 40}"))
    result, _ = _run_bounded(study, limit=_descriptors(256))
    assert result.returncode == 0, result.stderr


def test_parallel_all_stays_within_the_descriptor_limit(monkeypatch):
    monkeypatch.setattr(options, "usable_cpus", lambda: 10_000)
    monkeypatch.setattr(options, "descriptor_limit", lambda: 1024)
    assert options.parallel("all") == (1024 - 64) // 4
    with pytest.raises(ConfigError, match=r"parallel 1000 needs about 4064 file descriptors.*ulimit -n"):
        options.parallel(1000)


# --- 7. variable names beyond ASCII -------------------------------------------------------------


def test_a_latin1_variable_name_runs_end_to_end(tmp_path):
    study = _study(tmp_path, BASE.replace("  u: Uniform(0, 1)\n", "  u: Uniform(0, 1)\n  é: Uniform(2, 3)\n"))
    (study / "template" / "input.txt").write_text("u = {u}\nv = {v}\né = {é}\n")
    result = profit("run", str(study))
    assert result.returncode == 0, result.stderr
    assert (study / "input.txt").read_text(encoding="utf-8").splitlines()[0].split()[1:] == ["u", "é", "v"]
    rows = np.load(study / "profit-study.npy")
    assert "é" in rows.dtype.names and np.all((rows["é"] >= 2) & (rows["é"] <= 3))
    assert profit("export", str(study), str(tmp_path / "all.csv")).returncode == 0
    assert (tmp_path / "all.csv").read_text(encoding="utf-8").startswith("u,é,v,")


def test_a_variable_name_beyond_latin1_runs_end_to_end(tmp_path):
    """The study's table holds such a name in a UTF-8 header (.npy format 3.0)."""
    study = _study(tmp_path, BASE.replace("  u: Uniform(0, 1)\n", "  u: Uniform(0, 1)\n  λ: Uniform(2, 3)\n"))
    (study / "template" / "input.txt").write_text("u = {u}\nv = {v}\nλ = {λ}\n", encoding="utf-8")
    result = profit("run", str(study))
    assert result.returncode == 0, result.stderr
    rows = np.load(study / "profit-study.npy")
    assert "λ" in rows.dtype.names and np.all((rows["λ"] >= 2) & (rows["λ"] <= 3))
    assert (rows["STATE"] == 2).all()


# --- 8. damaged files of the study --------------------------------------------------------------


@pytest.fixture
def ran(tmp_path):
    study = _study(tmp_path, STUDY.format(ntrain=5, runner="fork"))
    result = profit("run", str(study))
    assert result.returncode == 0, result.stderr
    return study


@pytest.mark.parametrize(
    "content",
    [
        b"[1, 2, 3]",
        b'"text"',
        b"null",
        b"7",
        b"[" * 100_000,
        random.Random(1).randbytes(600),
    ],
)
def test_a_damaged_study_record_is_one_sentence(ran, content):
    (ran / "profit-study.json").write_bytes(content)
    _one_sentence(profit("run", str(ran)), "profit-study.json", "--restart")
    status = profit("status", str(ran))
    assert status.returncode in (0, 2) and "Traceback" not in status.stderr and "internal error" not in status.stderr


def test_random_bytes_for_the_study_table_are_one_sentence(ran):
    (ran / "profit-study.npy").write_bytes(random.Random(2).randbytes(5000))
    for command in ("run", "status"):
        _one_sentence(profit(command, str(ran)), "profit-study.npy")
    _one_sentence(profit("export", str(ran), str(ran / "all.csv")), "profit-study.npy")


def _scramble(path, start):
    data = bytearray(path.read_bytes())
    rng = random.Random(3)
    for index in range(start, len(data)):
        data[index] = rng.getrandbits(8)
    path.write_bytes(bytes(data))


def test_a_scrambled_table_header_is_one_sentence(ran):
    _scramble(ran / "profit-study.npy", 60)
    for command in ("status", "run"):
        _one_sentence(profit(command, str(ran)), "profit-study.npy")


def test_scrambled_table_rows_are_one_sentence(ran):
    table = ran / "profit-study.npy"
    _scramble(table, np.load(table, mmap_mode="r").offset)
    for command in ("status", "run"):
        _one_sentence(profit(command, str(ran)), "profit-study.npy")
    _one_sentence(profit("export", str(ran), str(ran / "all.csv")), "profit-study.npy")


# --- 9. an include file that exits -------------------------------------------------------------


@pytest.mark.parametrize("code, shown", [("sys.exit(5)", "sys.exit(5)"), ("raise SystemExit('bye')", "'bye'")])
def test_an_include_that_exits_is_one_sentence(tmp_path, code, shown):
    study = _study(tmp_path, BASE + "include: [custom.py]\n")
    (study / "custom.py").write_text(f"import sys\n\n{code}\n")
    _one_sentence(profit("run", str(study)), "custom.py", shown, "line 3")


# --- 10. Ctrl-C while profit starts -------------------------------------------------------------

# A frame of profit's own code in a traceback (not the interpreter's start-up, which runs before any of it).
PROFIT_FRAME = re.compile(r'File "[^"]*/profit/[^"]*\.py"')

# Starts the console script the way its launcher does, with a tripwire among the import finders: the
# first time the module named in argv[1] is looked up, the process sends itself SIGINT, which is what a
# Ctrl-C landing at that moment of the start-up does. With "--list", it prints what the command imports.
TRIPWIRE = """
import os, signal, sys

target = sys.argv.pop(1)
seen = []


class Tripwire:
    def find_spec(self, name, path=None, module=None):
        seen.append(name)
        if name == target:
            os.kill(os.getpid(), signal.SIGINT)
        return None


sys.meta_path.insert(0, Tripwire())
if target == "--list":
    import profit.console

    first = len(seen)
    import profit.cli

    print("\\n".join(dict.fromkeys(seen[first:])))
else:
    from profit.console import entry_point

    sys.argv[0] = "profit"
    entry_point()
"""


def _start_with_tripwire(target, *args):
    return subprocess.run([sys.executable, "-c", TRIPWIRE, target, *args], capture_output=True, text=True, timeout=120)


def test_ctrl_c_while_starting_is_one_line(tmp_path):
    """Ctrl-C landing while profit imports its command (at a dozen moments from the first import to the
    last): profit says 'interrupted' and exits 130, with no traceback and before any run."""
    study = _study(tmp_path, STUDY.format(ntrain=2, runner="fork"))
    listed = _start_with_tripwire("--list")
    assert listed.returncode == 0, listed.stderr
    imported = listed.stdout.split()
    assert "numpy" in imported and "profit.cli" in imported, imported
    moments = sorted({imported[round(i * (len(imported) - 1) / 11)] for i in range(12)})
    for target in moments:
        result = _start_with_tripwire(target, "run", str(study))
        assert not PROFIT_FRAME.search(result.stderr), (target, result.stderr)
        assert (result.returncode, result.stderr, result.stdout) == (130, "profit: interrupted\n", ""), target
    assert not (study / "profit-study.npy").exists(), "a run began although every Ctrl-C came before it"


if __name__ == "__main__":  # (for a manual run of one test)
    sys.exit(pytest.main([__file__, "-q", *sys.argv[1:]]))
