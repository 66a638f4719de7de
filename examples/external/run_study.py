"""An external program as the simulation: template directory in, a text row out.

Each run gets a copy of ``template/`` in ``study/run_NNN`` with the inputs
written into ``params.json`` (it contains ``{{omega}}``-style placeholders
because JSON has braces of its own), runs ``./simulation`` there and reads its
stdout with the ``numpytxt`` postprocessor: the amplitude and a vector of five
samples. Run it with ``python examples/external/run_study.py``.
"""

import os
import sys
import time

import numpy as np

from profit.run import Runner

HERE = os.path.dirname(os.path.abspath(__file__))


def make_runner(runs: int, work_dir: str, runner: str = "fork", **options) -> Runner:
    """The runner of this study: command worker, template preprocessor, numpytxt postprocessor."""
    return Runner[runner](
        interface={
            "class": "memmap",
            "size": runs,
            "input_config": {"omega": {"dtype": np.float64}, "zeta": {"dtype": np.float64}},
            "output_config": {
                "amplitude": {"dtype": np.float64, "size": (1, 1)},
                "x": {"dtype": np.float64, "size": (1, 5)},
            },
        },
        worker={
            "class": "command",
            "command": "./simulation",
            "pre": {"class": "template", "path": os.path.join(HERE, "template")},
            "post": {"class": "numpytxt", "names": ["amplitude", "x"]},
        },
        work_dir=work_dir,
        **options,
    )


def main(runs: int = 50) -> int:
    rng = np.random.default_rng(7)
    params = np.zeros(runs, dtype=[("omega", "f8"), ("zeta", "f8")])
    params["omega"] = rng.uniform(0.5, 3.0, runs)
    params["zeta"] = rng.uniform(0.0, 0.5, runs)
    params["omega"][-1] = -1.0  # one bad parameter set: the simulation refuses it
    runner = make_runner(runs, os.path.join(HERE, "study"))
    started = time.perf_counter()
    runner.spawn_array(params, wait=True, progress=True)
    elapsed = time.perf_counter() - started
    print(
        f"\n{runs} runs of ./simulation in {elapsed:.1f} s; "
        f"done {runs - len(runner.failed)}, failed {len(runner.failed)}"
    )
    for run_id, status in runner.failed.items():
        print(f"  run {run_id}: {status.reason}")
    print("first result:", runner.output_data[0])
    runner.clean()
    return 0


if __name__ == "__main__":
    sys.exit(main())
