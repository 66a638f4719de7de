"""Label registries for the run system's component kinds.

Each kind (Runner, Worker, RunnerInterface, WorkerInterface, Preprocessor,
Postprocessor) is a base class declared with ``registry=True``; it keeps its own
``{label: class}`` mapping. A variant registers itself with a class keyword::

    class MyRunner(Runner, label="mine"):
        ...

    Runner["mine"] is MyRunner      # lookup; an unknown label lists the known ones
    "mine" in Runner.labels         # set-like view of the labels
    MyRunner.label == "mine"
"""

from __future__ import annotations

from abc import ABCMeta
from collections.abc import KeysView, Mapping

from .errors import ConfigError, UnknownLabelError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import logging
    from typing import TypeVar

    _C = TypeVar("_C", bound="Component")


class RegistryMeta(ABCMeta):
    """Metaclass giving component kinds ``Kind[label]`` and ``Kind.labels``."""

    # Set on each kind by Component.__init_subclass__ (declared here for type checkers).
    _registry: dict[str, type[Component]]
    _kind: str

    # Kind[label] and Kind.resolve(...) give subclasses of Kind. mypy accepts a self-type on a
    # metaclass method only as an unbounded type[T], which could not reach _registry: hence [misc].
    def __getitem__(cls: type[_C], label: str) -> type[_C]:  # type: ignore[misc]
        try:
            # A kind's registry holds its own variants only (Component.__init_subclass__).
            return cls._registry[label]  # type: ignore[return-value]
        except (KeyError, TypeError):
            raise UnknownLabelError(cls._kind, label, cls._registry) from None

    def resolve(cls: type[_C], spec: object, what: str) -> tuple[type[_C], dict]:  # type: ignore[misc]
        """A label or a config ``{"class": label, **options}`` -> (the class, its options).

        ``what`` names the config key in the error for anything else.
        """
        if isinstance(spec, str):
            return cls[spec], {}
        if isinstance(spec, Mapping) and "class" in spec:
            return cls[spec["class"]], {key: value for key, value in spec.items() if key != "class"}
        raise ConfigError(f"{what} config {spec!r} must be a label or a mapping with a 'class' key")

    @property
    def labels(cls) -> KeysView[str]:
        """The registered labels of this component kind (a set-like view)."""
        return cls._registry.keys()


class Component(metaclass=RegistryMeta):
    """Base of every registrable component.

    ``registry=True`` starts a new kind with its own registry; ``label=...``
    registers a variant in the registry of the kind it derives from.

    ``logger`` is made on first use (a child of ``_logger_parent`` if one was
    given, else ``profit.run.<kind>``), so that a worker process that logs
    nothing never imports logging. Assigning ``self.logger`` works as usual.
    """

    # class attributes
    label: str | None = None
    _registry: dict[str, type[Component]] = {}
    _kind: str = "component"

    def __init_subclass__(cls, label: str | None = None, registry: bool = False, **kwargs: object):
        super().__init_subclass__(**kwargs)
        if registry:
            cls._registry = {}
            cls._kind = cls.__name__
        if label is None:
            return
        if not isinstance(label, str) or not label:
            raise ConfigError(f"{cls.__qualname__}: a component label must be a non-empty string, got {label!r}")
        previous = cls._registry.get(label)
        # Re-defining the same class (a reloaded include file, a test run twice)
        # replaces it; a different class may not steal a label silently.
        if previous is not None and (previous.__module__, previous.__qualname__) != (cls.__module__, cls.__qualname__):
            raise ConfigError(
                f"{cls._kind} label {label!r} is already registered by "
                f"{previous.__module__}.{previous.__qualname__}; choose another label for "
                f"{cls.__module__}.{cls.__qualname__}"
            )
        cls._registry[label] = cls
        cls.label = label

    @property
    def logger(self) -> logging.Logger:
        logger = self.__dict__.get("_logger")
        if logger is None:
            from ._lazy import logging

            parent = self.__dict__.get("_logger_parent")
            suffix = self._kind.lower()
            logger = parent.getChild(suffix) if parent is not None else logging.getLogger(f"profit.run.{suffix}")
            self._logger = logger
        return logger

    @logger.setter
    def logger(self, logger: logging.Logger) -> None:
        self._logger = logger
