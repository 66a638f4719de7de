"""profit.run.Executor given to libraries that take an executor or a pool: scipy, emcee, adaptive.

Each library must get the same answer through the executor as it would get alone.
"""

import executor_models as models
import numpy as np
import pytest

from profit.run import Executor, RunState


def evaluations_done(study):
    """How many evaluations the executors bound to ``study`` recorded as done (all functions)."""
    tables = list((study / "evaluations").glob("*/evaluations.npy"))
    return sum(int(np.count_nonzero(np.load(table)["STATE"] == RunState.DONE)) for table in tables)


def seeded(optimize, seed):
    """A fixed seed for differential_evolution: ``rng`` (scipy >= 1.15), else ``seed``."""
    import inspect

    parameters = inspect.signature(optimize.differential_evolution).parameters
    return {"rng": np.random.default_rng(seed)} if "rng" in parameters else {"seed": seed}


def test_scipy_differential_evolution_with_the_executor_as_workers(tmp_path):
    optimize = pytest.importorskip("scipy.optimize")
    with Executor("pool", parallel=2, study=tmp_path) as executor:
        result = optimize.differential_evolution(
            optimize.rosen,
            [(-2.0, 2.0), (-2.0, 2.0)],
            workers=executor,
            updating="deferred",
            popsize=10,
            tol=1e-8,
            polish=False,
            **seeded(optimize, 3),
        )
    assert result.success, result.message
    np.testing.assert_allclose(result.x, [1.0, 1.0], atol=1e-3)
    assert result.fun < 1e-6
    # Every evaluation went through the executor; near the end trial vectors repeat (the population is
    # all [1, 1]) and the study answers those from its record: fewer runs than evaluations.
    assert result.nfev / 2 < evaluations_done(tmp_path) <= result.nfev


def test_scipy_gives_the_same_result_with_and_without_the_executor():
    optimize = pytest.importorskip("scipy.optimize")
    bounds = [(-2.0, 2.0), (-2.0, 2.0)]
    options = dict(updating="deferred", popsize=6, maxiter=15, polish=False)
    alone = optimize.differential_evolution(optimize.rosen, bounds, **seeded(optimize, 5), **options)
    with Executor("fork", parallel=2) as executor:
        pooled = optimize.differential_evolution(
            optimize.rosen, bounds, workers=executor, **seeded(optimize, 5), **options
        )
    np.testing.assert_array_equal(pooled.x, alone.x)
    assert pooled.fun == alone.fun and pooled.nfev == alone.nfev


def test_emcee_gives_the_same_chain_with_the_executor_as_pool(tmp_path):
    emcee = pytest.importorskip("emcee")
    nwalkers, ndim, steps = 8, 2, 40

    def sample(pool):
        np.random.seed(42)  # the sampler copies the global random state when it is made
        sampler = emcee.EnsembleSampler(nwalkers, ndim, models.log_prob, pool=pool)
        sampler.run_mcmc(p0, steps)
        return sampler.get_chain(), sampler.get_log_prob()

    np.random.seed(7)
    p0 = np.random.randn(nwalkers, ndim)
    chain, log_prob = sample(None)
    with Executor("pool", parallel=2, study=tmp_path) as executor:
        pooled_chain, pooled_log_prob = sample(executor)
    assert evaluations_done(tmp_path) >= nwalkers * steps  # (the walkers' log_prob went through the executor)
    assert chain.shape == (steps, nwalkers, ndim)
    np.testing.assert_array_equal(pooled_chain, chain)
    np.testing.assert_array_equal(pooled_log_prob, log_prob)
    assert len(np.unique(chain[:, 0, 0])) > 5  # (the walkers moved: the chain is not trivially equal)


def test_adaptive_learner_reaches_its_loss_goal_through_the_executor():
    adaptive = pytest.importorskip("adaptive")
    with Executor("pool", parallel=2) as executor:
        assert executor._max_workers == executor.size == 2
        learner = adaptive.Learner1D(models.peak, bounds=(-1.0, 1.0))
        adaptive.BlockingRunner(learner, executor=executor, loss_goal=0.02, ntasks=executor._max_workers)
    assert learner.loss() <= 0.02
    assert learner.npoints > 10
    for x, y in learner.data.items():
        assert y == models.peak(x)
