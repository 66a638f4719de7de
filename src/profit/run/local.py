"""Local Runner & Memory-map Interface

* LocalRunner: start Workers locally via the shell (subprocess.Popen)
* ForkRunner: start Workers locally with forking (the fork start method, explicitly)
* MemmapInterface: share data using a memory-mapped, structured array (using numpy)

The names of proFit's module ``profit.run.local``; each backend lives in a
module of its own (:mod:`profit.run.shell`, :mod:`profit.run.fork`,
:mod:`profit.run.memmap`).
"""

from .fork import ForkRunner
from .memmap import MemmapRunnerInterface, MemmapWorkerInterface
from .shell import LocalRunner

__all__ = ["LocalRunner", "ForkRunner", "MemmapRunnerInterface", "MemmapWorkerInterface"]
