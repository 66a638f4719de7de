"""Every name and signature of the seed page of profit.run.local exists exactly."""

import inspect

import pytest

import profit.run.local as local
from profit.run.interface import RunnerInterface, WorkerInterface
from profit.run.runner import Runner

SIGNATURES = {
    "LocalRunner": "(command='profit-worker', parallel='all', **kwargs)",
    "ForkRunner": "(parallel='all', **kwargs)",
    "MemmapRunnerInterface": (
        "(size, input_config, output_config, *, path: str = 'interface.npy', logger_parent: logging.Logger = None)"
    ),
    "MemmapWorkerInterface": "(run_id: int, *, path='interface.npy', logger_parent: logging.Logger = None)",
}

MEMBERS = {
    "LocalRunner": (Runner, ["config", "__repr__", "spawn", "poll", "cancel"]),
    "ForkRunner": (Runner, ["spawn", "poll", "cancel"]),
    "MemmapRunnerInterface": (RunnerInterface, ["config", "resize", "clean"]),
    "MemmapWorkerInterface": (WorkerInterface, ["config", "time", "retrieve", "transmit", "clean"]),
}


@pytest.mark.parametrize("name", SIGNATURES)
def test_signature(name):
    cls = getattr(local, name)
    # eval_str: annotations naming logging are strings, so that worker processes need not import it.
    assert str(inspect.signature(cls, eval_str=True)) == SIGNATURES[name]


@pytest.mark.parametrize("name", MEMBERS)
def test_members_and_base(name):
    cls = getattr(local, name)
    base, members = MEMBERS[name]
    assert issubclass(cls, base)
    for member in members:
        assert member in cls.__dict__, f"{name}.{member} is not defined by the class itself"
    for prop in ("config", "time"):
        if prop in members:
            assert isinstance(cls.__dict__[prop], property)


@pytest.mark.parametrize("cls", [local.LocalRunner, local.ForkRunner])
def test_spawn_signature(cls):
    assert str(inspect.signature(cls.spawn)) == "(self, params=None, wait=False)"
    assert str(inspect.signature(cls.poll)) == "(self, run_id)"
    assert str(inspect.signature(cls.cancel)) == "(self, run_id)"


def test_runner_contract_signature():
    assert str(inspect.signature(Runner)) == (
        "(*, interface: 'RunnerInterface | Mapping', worker: 'str | Mapping', work_dir: 'str' = '.', "
        "debug: 'bool' = False, parallel: 'int' = 0, sleep: 'float' = 0.1, logfile: 'str' = 'runner.log', "
        "logger: 'logging.Logger | None' = None, timeout: 'float | None' = None, retries: 'int' = 0)"
    )
