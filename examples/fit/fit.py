"""Fit an external simulation to data with an optimizer, then sample its posterior.

The simulation is the damped oscillator of ``examples/external`` (a separate
program: ``template/simulation``), run once per evaluation in a scratch
directory. scipy's ``differential_evolution`` finds the best parameters,
emcee's ensemble sampler (if installed) samples around them; both evaluate
through one :class:`profit.run.Executor`, so every evaluation is a run with a
state, a reason, a timeout and a log, on the runner of your choice.

The executor is bound to a study directory (``study/`` next to this file):
every evaluation is recorded there, and running the script again answers the
evaluations it has already made from there at once (delete ``study/`` or pass
``--fresh`` to start over).

Usage::

    python examples/fit/fit.py [--runner fork|pool|local] [--maxiter 20] [--steps 40] [--fresh]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SIMULATION = os.path.join(HERE, os.pardir, "external", "template", "simulation")
TRUE = (1.7, 0.12)  # omega, zeta of the "measurement"
NOISE = 0.01


def simulate(omega: float, zeta: float) -> np.ndarray:
    """Run the external program; x at t = 1..5."""
    with tempfile.TemporaryDirectory() as scratch:
        with open(os.path.join(scratch, "params.json"), "w") as file:
            json.dump({"omega": omega, "zeta": zeta}, file)
        done = subprocess.run(
            [sys.executable, SIMULATION], cwd=scratch, capture_output=True, text=True, check=False, timeout=60
        )
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip() or f"simulation exited with code {done.returncode}")
    return np.array(done.stdout.split()[1:], dtype=float)


MEASURED = simulate(*TRUE) + np.random.default_rng(7).normal(0.0, NOISE, 5)


def misfit(theta: np.ndarray) -> float:
    """Sum of squared residuals of the simulation at ``theta = (omega, zeta)`` against the measurement."""
    return float(np.sum((simulate(float(theta[0]), float(theta[1])) - MEASURED) ** 2))


BOUNDS = [(0.5, 3.0), (0.0, 0.5)]


def log_prob(theta: np.ndarray) -> float:
    """Gaussian likelihood with a flat prior on the bounds."""
    if not all(low <= value <= high for value, (low, high) in zip(theta, BOUNDS)):
        return -np.inf
    return -0.5 * misfit(theta) / NOISE**2


def main(argv: list[str] | None = None) -> int:
    from scipy.optimize import differential_evolution

    from profit.run import Executor

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runner", default="pool", help="runner label (default: pool)")
    parser.add_argument("--maxiter", type=int, default=20, help="generations of differential evolution")
    parser.add_argument("--steps", type=int, default=40, help="steps of the sampler (0: no sampling)")
    parser.add_argument("--study", default=os.path.join(HERE, "study"), help="where evaluations are recorded")
    parser.add_argument("--fresh", action="store_true", help="forget the evaluations recorded before")
    arguments = parser.parse_args(argv)

    with Executor(arguments.runner, study=arguments.study, fresh=arguments.fresh, timeout=60) as executor:
        best = differential_evolution(
            misfit,
            BOUNDS,
            workers=executor,
            updating="deferred",
            maxiter=arguments.maxiter,
            popsize=8,
            seed=1,
            polish=False,
        )
        print(
            f"differential evolution: omega = {best.x[0]:.4f}, zeta = {best.x[1]:.4f} (true {TRUE}), "
            f"misfit {best.fun:.2e} after {best.nfev} evaluations"
        )
        if arguments.steps:
            sample(executor, best.x, arguments.steps)
        stats = executor.stats
        print(
            f"{stats['done'] + stats['recalled']} evaluations: {stats['done']} run, {stats['recalled']} answered "
            f"from {arguments.study}, {stats['failed']} failed"
        )
    return 0


def sample(executor: object, best: np.ndarray, steps: int) -> None:
    """Sample the posterior around ``best`` with emcee (if installed), evaluating through ``executor``."""
    try:
        import emcee
    except ImportError:
        print("(emcee is not installed: pip install emcee, to sample the posterior too)")
        return
    walkers = 8
    start = best + 1e-3 * np.random.default_rng(1).normal(size=(walkers, 2))
    np.random.seed(2)  # (emcee draws from numpy's global generator: fixed, a second run is answered from the study)
    sampler = emcee.EnsembleSampler(walkers, 2, log_prob, pool=executor)
    sampler.run_mcmc(start, steps, progress=False)
    chain = sampler.get_chain(discard=steps // 2, flat=True)
    mean, spread = chain.mean(axis=0), chain.std(axis=0)
    print(f"emcee: omega = {mean[0]:.4f} ± {spread[0]:.4f}, zeta = {mean[1]:.4f} ± {spread[1]:.4f}")


if __name__ == "__main__":
    sys.exit(main())
