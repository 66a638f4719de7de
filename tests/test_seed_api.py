"""Every name, parameter and default of the seed page of profit.run.local exists exactly.

Compared as parameter names, kinds and defaults (not as signature strings), so
annotations may be precise without changing the contract.
"""

import inspect

import pytest

import profit.run.local as local
from profit.run.interface import RunnerInterface, WorkerInterface
from profit.run.runner import Runner

P = inspect.Parameter
SELF = ("self", P.POSITIONAL_OR_KEYWORD, P.empty)

# (name, kind, default) of each parameter, as the seed page shows them.
SIGNATURES = {
    "LocalRunner": [
        ("command", P.POSITIONAL_OR_KEYWORD, "profit-worker"),
        ("parallel", P.POSITIONAL_OR_KEYWORD, "all"),
        ("kwargs", P.VAR_KEYWORD, P.empty),
    ],
    "ForkRunner": [("parallel", P.POSITIONAL_OR_KEYWORD, "all"), ("kwargs", P.VAR_KEYWORD, P.empty)],
    "MemmapRunnerInterface": [
        ("size", P.POSITIONAL_OR_KEYWORD, P.empty),
        ("input_config", P.POSITIONAL_OR_KEYWORD, P.empty),
        ("output_config", P.POSITIONAL_OR_KEYWORD, P.empty),
        ("path", P.KEYWORD_ONLY, "interface.npy"),
        ("logger_parent", P.KEYWORD_ONLY, None),
    ],
    "MemmapWorkerInterface": [
        ("run_id", P.POSITIONAL_OR_KEYWORD, P.empty),
        ("path", P.KEYWORD_ONLY, "interface.npy"),
        ("logger_parent", P.KEYWORD_ONLY, None),
    ],
}

# Methods and properties the seed page lists for each class, with their parameters.
MEMBERS = {
    "LocalRunner": (
        Runner,
        {"config": None, "__repr__": [SELF], "spawn": "spawn", "poll": "poll", "cancel": "cancel"},
    ),
    "ForkRunner": (Runner, {"spawn": "spawn", "poll": "poll", "cancel": "cancel"}),
    "MemmapRunnerInterface": (
        RunnerInterface,
        {"config": None, "resize": [SELF, ("size", *SELF[1:])], "clean": [SELF]},
    ),
    "MemmapWorkerInterface": (
        WorkerInterface,
        {"config": None, "time": None, "retrieve": [SELF], "transmit": [SELF], "clean": [SELF]},
    ),
}
RUNNER_METHODS = {
    "spawn": [SELF, ("params", P.POSITIONAL_OR_KEYWORD, None), ("wait", P.POSITIONAL_OR_KEYWORD, False)],
    "poll": [SELF, ("run_id", P.POSITIONAL_OR_KEYWORD, P.empty)],
    "cancel": [SELF, ("run_id", P.POSITIONAL_OR_KEYWORD, P.empty)],
}
# First lines of the seed's descriptions, which our docstrings keep.
DESCRIPTIONS = {
    "LocalRunner": "start Workers locally via the shell",
    "ForkRunner": "start Workers locally using forking",
    "MemmapRunnerInterface": "Runner-Worker Interface using a memory mapped numpy array",
    "MemmapWorkerInterface": "Runner-Worker Interface using a memory mapped numpy array",
}


def parameters(callable_):
    return [(p.name, p.kind, p.default) for p in inspect.signature(callable_).parameters.values()]


@pytest.mark.parametrize("name", SIGNATURES)
def test_constructor_parameters(name):
    assert parameters(getattr(local, name)) == SIGNATURES[name]


@pytest.mark.parametrize("name", MEMBERS)
def test_members_base_and_description(name):
    cls = getattr(local, name)
    base, members = MEMBERS[name]
    assert issubclass(cls, base)
    assert cls.__doc__.startswith(DESCRIPTIONS[name])
    for member, expected in members.items():
        attribute = inspect.getattr_static(cls, member)
        if expected is None:
            assert isinstance(attribute, property), f"{name}.{member} is not a property"
        else:
            expected = RUNNER_METHODS[expected] if isinstance(expected, str) else expected
            assert parameters(getattr(cls, member)) == expected, f"{name}.{member}"


def test_spawn_and_poll_keep_the_seed_descriptions():
    assert Runner.spawn.__doc__.startswith("Spawn a single run")
    assert Runner.poll.__doc__.startswith("Check the status of the run directly")


def test_runner_contract_parameters():
    assert parameters(Runner) == [
        ("interface", P.KEYWORD_ONLY, "memmap"),  # proFit's default (a label alone: enough for a function worker)
        ("worker", P.KEYWORD_ONLY, "command"),  # proFit's default: the command worker
        ("work_dir", P.KEYWORD_ONLY, "."),
        ("debug", P.KEYWORD_ONLY, False),
        ("parallel", P.KEYWORD_ONLY, 0),
        ("sleep", P.KEYWORD_ONLY, 0.1),
        ("logfile", P.KEYWORD_ONLY, "runner.log"),
        ("logger", P.KEYWORD_ONLY, None),
        ("timeout", P.KEYWORD_ONLY, None),
        ("retries", P.KEYWORD_ONLY, 0),
    ]


def test_the_seed_module_holds_exactly_the_seed_classes():
    assert sorted(local.__all__) == sorted(SIGNATURES)
