"""profit: a run system for parameter studies.

:class:`profit.Study` is a study on disk (made, grown, run, exported); the run
system it stands on lives in :mod:`profit.run` (see its docstring for the data flow).
"""

__version__ = "0.1.0"

TYPE_CHECKING = False  # (typing costs every worker process its import)
if TYPE_CHECKING:
    from .study import Study


def __getattr__(name: str) -> object:
    # Imported on first use: worker processes import this package and stay lean.
    if name == "Study":
        from .study import Study

        return Study
    raise AttributeError(f"module 'profit' has no attribute {name!r}")


__all__ = ["Study", "__version__"]
