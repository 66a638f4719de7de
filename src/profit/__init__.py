"""profit: a run system for parameter studies.

The run system lives in :mod:`profit.run`; see its docstring for the data flow.
"""

__version__ = "0.1.0"
