"""Quick start: evaluate a small model at 500 parameter sets with the default runner.

The model is a damped oscillator's amplitude at time t=5 for a frequency ``omega``
and damping ``zeta``. Run it with ``make demo`` or ``python examples/quickstart/study.py``.
"""

import math
import tempfile
import time

import numpy as np

from profit.run import Runner, RunState, Worker


@Worker.wrap("oscillator", ["amplitude", "energy"])
def oscillator(omega, zeta):
    """Amplitude and energy of a damped oscillator at t = 5."""
    t = 5.0
    amplitude = math.exp(-zeta * omega * t) * math.cos(omega * math.sqrt(max(0.0, 1 - zeta**2)) * t)
    return amplitude, 0.5 * omega**2 * amplitude**2


def main(runs: int = 500) -> None:
    rng = np.random.default_rng(2026)
    params = np.zeros(runs, dtype=[("omega", "f8"), ("zeta", "f8")])
    params["omega"] = rng.uniform(0.5, 3.0, runs)
    params["zeta"] = rng.uniform(0.0, 0.5, runs)

    work_dir = tempfile.mkdtemp(prefix="profit-quickstart-")
    runner = Runner["fork"](
        interface={
            "class": "memmap",
            "size": runs,
            "input_config": {"omega": {"dtype": np.float64}, "zeta": {"dtype": np.float64}},
            "output_config": {
                "amplitude": {"dtype": np.float64, "size": (1, 1)},
                "energy": {"dtype": np.float64, "size": (1, 1)},
            },
        },
        worker="oscillator",
        work_dir=work_dir,
    )
    started = time.perf_counter()
    runner.spawn_array(params, wait=True, progress=True)
    elapsed = time.perf_counter() - started

    states = runner.interface.internal["STATE"][:runs]
    done = int(np.count_nonzero(states == RunState.DONE))
    print(f"\n{runner!r} with the memmap interface in {work_dir}")
    print(f"runs: {runs}, done: {done}, failed: {len(runner.failed)}  ({runs / elapsed:.0f} runs/s)")
    for run_id, status in sorted(runner.failed.items())[:5]:
        print(f"  failed run {run_id}: {status.reason}")
    out = runner.output_data
    print(f"amplitude: min {out['amplitude'].min():+.4f}  max {out['amplitude'].max():+.4f}")
    print("first runs (omega, zeta -> amplitude, energy):")
    for (omega, zeta), (amp, energy) in list(zip(runner.input_data, out))[:3]:
        print(f"  {omega:.3f}, {zeta:.3f} -> {amp:+.5f}, {energy:.5f}")
    # The check a scientist would do: every output is the model at its own inputs.
    expected = np.array([oscillator.function(o, z) for o, z in runner.input_data])
    assert np.allclose(np.stack([out["amplitude"], out["energy"]], axis=1), expected)
    print("every output matches its inputs")


if __name__ == "__main__":
    main()
