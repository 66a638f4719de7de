"""The documentation (docs/): its examples run, its study file reference names every option,
and the site builds without a warning, with the reference page of profit.run.local as the
seed page shows it.

The examples are files under docs/examples/, shown in the pages with ``literalinclude``: each
runs here as a program of its own. The build (about 5 s) skips where Sphinx is not installed
(``pip install -e '.[docs]'``; ``make docs`` installs it).
"""

import html
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import profit.run  # noqa: F401  (registers the built-in components)
from profit.run import Postprocessor, Preprocessor, Runner, RunnerInterface, Worker
from profit.run.config import _NOT_OPTIONS, accepted_options

DOCS = Path(__file__).resolve().parent.parent / "docs"
EXAMPLES = sorted(path.name for path in (DOCS / "examples").glob("*.py"))


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_runs(name, tmp_path):
    result = subprocess.run(
        [sys.executable, str(DOCS / "examples" / name)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert result.returncode == 0, f"docs/examples/{name} failed:\n{result.stdout}\n{result.stderr}"


def test_every_example_is_shown_in_a_page():
    pages = "".join(path.read_text() for path in DOCS.glob("*.md"))
    for name in EXAMPLES:
        assert f"examples/{name}" in pages, f"docs/examples/{name} is included by no page"


# --- the study file reference names every option of every built-in component, with its default ---

# Options a study fills in itself (never written under run:), besides the constructors' own.
FILLED_IN = set(_NOT_OPTIONS) | {"interface", "worker", "work_dir", "base_dir", "run_id", "logger"}
# Options of the function worker that its runner writes (the Executor's calls), not a user.
WRITTEN_BY_RUNNERS = {"signature", "fields", "calls", "results", "result_layout"}


def _defaults(cls):
    """The keyword options of ``cls`` and their defaults, along its constructors' MRO."""
    defaults = {}
    for klass in reversed(cls.__mro__):
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        for parameter in list(inspect.signature(init).parameters.values())[1:]:
            if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
                defaults[parameter.name] = parameter.default
    return defaults


def _components():
    for kind, base in (
        ("runner", Runner),
        ("interface", RunnerInterface),
        ("worker", Worker),
        ("pre", Preprocessor),
        ("post", Postprocessor),
    ):
        for label, cls in sorted(base._registry.items()):
            if cls.__module__.startswith("profit."):
                yield kind, label, cls


def _section(page: str, kind: str, label: str) -> str:
    """The part of the page under the heading ``### run.<kind>: `<label>` ``, up to the next heading."""
    match = re.search(rf"^#+ `run\.{kind}: {re.escape(label)}`.*?$(.*?)(?=^#|\Z)", page, re.M | re.S)
    assert match, f"docs/studyfile.md has no section '### `run.{kind}: {label}`'"
    return match.group(1)


def _rows(section: str) -> dict[str, str]:
    """The table rows of a section by the option they describe."""
    return {match.group(1): match.group(0) for match in re.finditer(r"^\| `(\w+)` \|.*$", section, re.M)}


def _shown(default) -> str | None:
    if default is None or default is inspect.Parameter.empty:
        return None
    if isinstance(default, bool):
        return "true" if default else "false"
    return str(default)


@pytest.mark.parametrize("kind, label, cls", list(_components()), ids=lambda value: getattr(value, "__name__", value))
def test_study_file_reference_lists_every_option(kind, label, cls):
    page = (DOCS / "studyfile.md").read_text()
    rows = _rows(_section(page, kind, label))
    # Options of every runner (every worker) stand in a section of their own.
    common = _rows(_section(page, kind, "*")) if f"`run.{kind}: *`" in page else {}
    accepted = accepted_options(cls)
    if accepted is None:  # a wrapped processor: the options it was registered with
        init = cls.__init__  # (Postprocessor.wrap keeps them as "defaults" in its closure)
        cells = dict(zip(init.__code__.co_freevars, init.__closure__ or ()))
        options = dict(cells["defaults"].cell_contents)
    else:
        everything = _defaults(cls)
        options = {name: everything.get(name) for name in accepted}
    for name, default in options.items():
        if name in FILLED_IN or name in WRITTEN_BY_RUNNERS:
            continue
        row = rows.get(name, common.get(name))
        assert row is not None, f"run.{kind} {label!r}: option {name!r} is missing from docs/studyfile.md"
        shown = _shown(default)
        if shown is not None and not isinstance(default, dict):
            assert f"`{shown}`" in row, f"run.{kind} {label!r}: {name!r} should show the default {shown!r}"
    for name in [*rows, *common]:
        assert name in options, f"run.{kind} {label!r}: docs/studyfile.md lists {name!r}, which it does not take"


# --- the site -------------------------------------------------------------------------------

# The seed page of profit.run.local: each class's signature and members, with their descriptions.
SEED = {
    "LocalRunner": (
        "(command='profit-worker', parallel='all', **kwargs)",
        "start Workers locally via the shell",
        ["config", "__repr__()", "spawn(params=None, wait=False)", "poll(run_id)", "cancel(run_id)"],
    ),
    "ForkRunner": (
        "(parallel='all', **kwargs)",
        "start Workers locally using forking (multiprocessing.Process)",
        ["spawn(params=None, wait=False)", "poll(run_id)", "cancel(run_id)"],
    ),
    "MemmapRunnerInterface": (
        "(size, input_config, output_config, *, path='interface.npy', logger_parent=None)",
        "Runner-Worker Interface using a memory mapped numpy array",
        ["config", "resize(size)", "clean()"],
    ),
    "MemmapWorkerInterface": (
        "(run_id, *, path='interface.npy', logger_parent=None)",
        "Runner-Worker Interface using a memory mapped numpy array",
        ["config", "time", "retrieve()", "transmit()", "clean()"],
    ),
}
DESCRIPTIONS = [
    "Return repr(self).",
    "Spawn a single run",
    "Check the status of the run directly",
    "Resizing the Interface",
    "retrieve the input",
    "transmit the output",
]


def _text(page: Path) -> str:
    """The rendered page as plain text (tags removed, entities decoded, spaces collapsed)."""
    body = page.read_text()
    body = body[body.index("<article") : body.index("</article>")]
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", "", body)))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    pytest.importorskip("sphinx", reason="Sphinx is not installed: pip install -e '.[docs]' (make docs does)")
    out = tmp_path_factory.mktemp("html")
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-E", "-q", "-W", "--keep-going", "-n", "-b", "html", str(DOCS), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert result.returncode == 0, f"the docs do not build without warnings:\n{result.stderr}"
    return out


def test_site_builds_without_warnings(site):
    for page in ("index", "installation", "first-study", "python-api", "studyfile", "templates", "platforms"):
        assert (site / f"{page}.html").exists(), page


def test_local_reference_page_shows_the_seed(site):
    text = _text(site / "api" / "local.html")
    for name, (signature, description, members) in SEED.items():
        assert f"class profit.run.local.{name}{signature}" in text, name
        assert description in text, name
        for member in members:
            # (a property shows its type: "property config: dict")
            assert re.search(rf"(property )?{re.escape(member)}(: \w+)?(\[source\])?¶", text), f"{name}.{member}"
    for description in DESCRIPTIONS:
        assert description in text
    assert "Bases: profit.run.runner.Runner" in text
    assert "Bases: profit.run.interface.RunnerInterface" in text
    assert "Bases: profit.run.interface.WorkerInterface" in text
