"""The label registries of the component kinds."""

import pytest

from profit.run import Runner, RunnerInterface, Worker, WorkerInterface
from profit.run.errors import ConfigError, UnknownLabelError
from profit.run.local import ForkRunner, LocalRunner, MemmapRunnerInterface, MemmapWorkerInterface


def test_builtin_labels():
    assert Runner["fork"] is ForkRunner and Runner["local"] is LocalRunner
    assert RunnerInterface["memmap"] is MemmapRunnerInterface
    assert WorkerInterface["memmap"] is MemmapWorkerInterface
    assert {"fork", "local"} <= Runner.labels
    assert ForkRunner.label == "fork"


def test_each_kind_has_its_own_registry():
    assert "memmap" not in Runner.labels
    assert "fork" not in RunnerInterface.labels
    assert "t_sum" in Worker.labels and "t_sum" not in Runner.labels


def test_unknown_label_lists_known_ones():
    with pytest.raises(UnknownLabelError) as error:
        Runner["nope"]
    message = str(error.value)
    assert "unknown Runner label 'nope'" in message
    assert "'fork'" in message and "'local'" in message
    assert isinstance(error.value, KeyError)


def test_register_custom_runner_with_class_keyword():
    class MyRunner(ForkRunner, label="test_mine"):
        pass

    assert Runner["test_mine"] is MyRunner
    assert MyRunner.label == "test_mine"
    assert "test_mine" in Runner.labels


def test_a_label_cannot_be_taken_by_another_class():
    with pytest.raises(ConfigError, match="already registered"):

        class Thief(Runner, label="fork"):
            pass

    assert Runner["fork"] is ForkRunner


def test_wrap_registers_a_worker_with_inputs_and_outputs():
    @Worker.wrap("test_wrapped")
    def model(a, b) -> ["y", "z"]:  # noqa: F821  (output names, not types: what Worker.wrap reads)
        return a, b

    cls = Worker["test_wrapped"]
    assert cls.label == "test_wrapped"
    assert cls.inputs == ("a", "b") and cls.outputs == ("y", "z")
    assert issubclass(cls, Worker)

    @Worker.wrap("test_wrapped_default")
    def energy(x):
        return x

    assert Worker["test_wrapped_default"].outputs == ("energy",)
