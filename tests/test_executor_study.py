"""The executor bound to a profit.Study, its counts, dynesty's pool, and the fit example as shipped."""

import os
import subprocess
import sys

import executor_models as models
import numpy as np
import pytest
from helpers import TESTS

from profit import Study
from profit.run import Executor

EXAMPLE = TESTS.parent / "examples" / "fit" / "fit.py"


def test_a_study_executor_records_its_evaluations_in_the_study_directory(tmp_path):
    study = Study.create(
        tmp_path / "study",
        inputs={"x": "Uniform(0, 1)"},
        outputs=["square"],
        ntrain=3,
        run={"runner": "pool", "worker": models.square},
    )
    with study.executor(parallel=2) as executor:
        assert executor.size == 2
        assert list(executor.map(models.square, [1.0, 2.0, 3.0])) == [1.0, 4.0, 9.0]
        assert executor.stats == {"done": 3, "failed": 0, "cancelled": 0, "recalled": 0, "lanes": 1}
    recorded = list((tmp_path / "study").rglob("evaluations.npy"))
    assert len(recorded) == 1 and recorded[0].is_relative_to(study.directory)
    with study.executor(parallel=2) as executor:  # the same calls again: answered from the study
        assert list(executor.map(models.square, [3.0, 2.0, 4.0])) == [9.0, 4.0, 16.0]
        assert executor.stats["done"] == 1 and executor.stats["recalled"] == 2


def test_stats_count_failures_and_cancels(tmp_path):
    with Executor("fork", parallel=2, nan_on_failure=True) as executor:
        values = list(executor.map(models.fail_above, [1.0, 5.0, 2.0], [3.0, 3.0, 3.0]))
        assert values[0] == 1.0 and np.isnan(values[1]) and values[2] == 2.0
        assert executor.stats["done"] == 2 and executor.stats["failed"] == 1


def test_dynesty_samples_through_the_executor_as_its_pool():
    dynesty = pytest.importorskip("dynesty")
    with Executor("pool", parallel=2) as executor:
        sampler = dynesty.NestedSampler(
            models.gaussian_loglike,
            models.box_prior,
            2,
            pool=executor,
            queue_size=executor.size,
            nlive=40,
            rstate=np.random.default_rng(3),
        )
        sampler.run_nested(dlogz=0.5, print_progress=False)
        evaluations = executor.stats["done"]
    # The evidence of a normalised unit Gaussian under a flat prior on the box [-5, 5]^2: 1 / 100.
    assert abs(sampler.results.logz[-1] - np.log(1 / 100)) < 0.5
    # The likelihood ran through the executor: the live points, and at least one call per iteration.
    assert evaluations >= 40 + sampler.results.niter


def test_the_fit_example_runs_and_a_second_run_is_answered_from_its_study(tmp_path):
    pytest.importorskip("scipy")
    command = [sys.executable, str(EXAMPLE), "--maxiter", "2", "--steps", "3", "--study", str(tmp_path / "fit")]
    env = {**os.environ, "PYTHONPATH": str(TESTS.parent / "src")}
    first = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
    assert first.returncode == 0, first.stderr
    assert "differential evolution: omega =" in first.stdout and first.stderr == ""
    ran = first.stdout.strip().splitlines()[-1]
    assert " 0 run," not in ran and ", 0 failed" in ran
    second = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
    assert second.returncode == 0, second.stderr
    assert second.stdout.splitlines()[0] == first.stdout.splitlines()[0]  # the same fit
    assert ": 0 run," in second.stdout.strip().splitlines()[-1]


def test_the_calls_of_a_bound_method_share_one_lane_and_each_gets_its_own_result(tmp_path):
    model = models.Scaler(10.0)
    with Executor("fork", parallel=2) as executor:
        futures = [executor.submit(model.scale, float(i)) for i in range(30)]
        assert [future.result(timeout=60) for future in futures] == [[i * 10.0] for i in range(30)]
        assert executor.stats["lanes"] == 1
    other = models.Scaler(3.0)  # the same method of another object is another function
    with Executor("fork", parallel=2, study=tmp_path) as executor:
        assert list(executor.map(model.scale, [1.0, 2.0])) == [[10.0], [20.0]]
        assert list(executor.map(other.scale, [1.0, 2.0])) == [[3.0], [6.0]]
        assert executor.stats["done"] == 4


def test_a_set_argument_is_recalled_by_an_executor_in_another_process(tmp_path):
    script = tmp_path / "tags.py"
    script.write_text(
        "import sys\n"
        f"sys.path[:0] = [{str(TESTS)!r}]\n"
        "import executor_models as models\n"
        "from profit.run import Executor\n"
        "with Executor('fork', parallel=2, study=sys.argv[1]) as executor:\n"
        "    value = executor.submit(models.count_tags, {'alpha', 'beta', 'gamma', 'delta', 'epsilon'}).result()\n"
        "    print(value, executor.stats['done'], executor.stats['recalled'])\n"
    )
    env = {**os.environ, "PYTHONPATH": str(TESTS.parent / "src")}
    outputs = []
    for seed in ("1", "2"):  # (another hash seed: a set of strings pickles in another order)
        done = subprocess.run(
            [sys.executable, str(script), str(tmp_path / "study")],
            capture_output=True,
            text=True,
            timeout=120,
            env={**env, "PYTHONHASHSEED": seed},
        )
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout.split())
    assert outputs == [["5", "1", "0"], ["5", "0", "1"]]


def test_idle_lanes_are_closed_when_many_functions_pass_through(tmp_path):
    import functools

    before = set(_children())  # (other tests' processes are not this executor's)
    with Executor("pool", parallel=1) as executor:
        for offset in range(40):  # a partial made for each call: a function of its own each time
            assert executor.submit(functools.partial(models.add, float(offset)), 1.0).result(timeout=60) == offset + 1.0
        children = set(_children()) - before
    assert executor.stats["lanes"] == 40
    assert len(children) <= 2 * 16  # at most MAX_OPEN_LANES pools of one worker (and their exits in flight)


def _children():
    return [int(pid) for pid in os.listdir("/proc") if pid.isdigit() and _parent(int(pid)) == os.getpid()]


def _parent(pid):
    try:
        with open(f"/proc/{pid}/stat") as file:
            return int(file.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def test_an_argument_plain_pickle_cannot_send_is_named_in_one_sentence(monkeypatch):
    import threading

    from profit.run.errors import ConfigError
    from profit.run.functions import pickled

    monkeypatch.setitem(sys.modules, "cloudpickle", None)  # import cloudpickle now raises ImportError
    with pytest.raises(ConfigError) as refused:
        pickled(threading.Lock(), what="an argument of f")
    message = str(refused.value)
    assert message.startswith("an argument of f cannot be sent to a worker: plain pickle fails (TypeError")
    assert "__main__" not in message and "fork" not in message and "\n" not in message


def pickled_results(folder):
    return sorted(path.name for path in folder.rglob("results/*.pkl"))


def test_array_results_travel_in_the_row_once_their_layout_is_known(tmp_path):
    with Executor("fork", parallel=2, study=tmp_path) as executor:
        first = executor.submit(models.pair, 0.5).result(timeout=60)  # (its layout is learned from it)
        values = list(executor.map(models.pair, [float(i) for i in range(20)]))
        assert executor.stats["lanes"] == 2
    assert first.dtype == np.float32 and first.tolist() == [0.5, 1.0]
    for i, value in enumerate(values):
        assert value.dtype == np.float32 and value.shape == (2,) and value.tolist() == [i, 2 * i]
    assert len(pickled_results(tmp_path)) == 1  # only the first went through a file
    # Another executor answers all of them from the study, the first from the elder lane's store.
    with Executor("fork", parallel=2, study=tmp_path) as executor:
        again = [executor.submit(models.pair, 0.5), *[executor.submit(models.pair, float(i)) for i in range(20)]]
        assert [future.result(timeout=60).tolist() for future in again] == [[0.5, 1.0]] + [
            [i, 2 * i] for i in range(20)
        ]
        assert executor.stats["done"] == 0 and executor.stats["recalled"] == 21


def test_array_results_of_another_shape_than_learned_still_come_back_right():
    with Executor("pool", parallel=2) as executor:
        assert executor.submit(models.ragged, 3).result(timeout=60).tolist() == [0, 1, 2]
        values = list(executor.map(models.ragged, [3, 5, 1, 3]))
    assert [value.tolist() for value in values] == [[0, 1, 2], [0, 1, 2, 3, 4], [0], [0, 1, 2]]
    assert all(value.dtype == np.int64 for value in values)


def test_clean_all_removes_what_the_study_executor_recorded(tmp_path):
    study = Study.create(
        tmp_path / "study",
        inputs={"x": "Uniform(0, 1)"},
        outputs=["square"],
        ntrain=2,
        run={"runner": "fork", "worker": models.square},
    )
    with study.executor(parallel=1) as executor:
        assert executor.submit(models.square, 3.0).result(timeout=60) == 9.0
    evaluations = os.path.join(study.directory, "evaluations")
    assert os.path.isdir(evaluations)
    study.clean(all=False)
    assert os.path.isdir(evaluations)  # (a plain clean keeps results)
    assert "evaluations" in study.clean(all=True)
    assert not os.path.exists(evaluations)
