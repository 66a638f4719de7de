"""profit.run.Executor: a concurrent.futures.Executor over a runner (docs/python-api.md).

Run by tests/test_docs.py.
"""

import math

from profit.run import Executor, RunFailed


def simulate(omega, zeta=0.0):
    if omega <= 0:
        raise ValueError(f"omega must be positive, got {omega}")
    return math.exp(-zeta * omega * 5.0) * math.cos(omega * 5.0)


with Executor("pool", parallel=2, timeout=60, retries=1) as executor:
    future = executor.submit(simulate, 1.5, zeta=0.1)  # a concurrent.futures.Future
    print(future.result())
    values = list(executor.map(simulate, [0.5, 1.0, 2.0], [0.1, 0.2, 0.3]))  # in input order
    assert values == [simulate(0.5, 0.1), simulate(1.0, 0.2), simulate(2.0, 0.3)]

    try:
        executor.submit(simulate, -1.0).result()
    except RunFailed as failure:  # its reason, state, run_id and log (the end of the run's log)
        print(failure.reason)
        assert "omega must be positive" in failure.reason

with Executor("fork", parallel=2, nan_on_failure=True) as executor:
    assert math.isnan(list(executor.map(simulate, [-1.0]))[0])  # NaN instead of RunFailed
