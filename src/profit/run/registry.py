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

import os
import sys
from _collections_abc import Mapping  # (collections.abc itself imports collections: see _record.Field)
from abc import ABCMeta

from .errors import ConfigError, UnknownLabelError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import logging
    from collections.abc import Callable, KeysView
    from typing import TypeVar

    _C = TypeVar("_C", bound="Component")

# A lean profit-worker process (profit._worker_main) registers the built-in variants late:
# this hook, called with a kind (or the class taking a label) and the label, completes them
# before a lookup misses, the labels are listed (label None) or an include file takes a
# built-in label, so that nobody can tell. None once they are registered.
deferred_builtins: Callable[[RegistryMeta, str | None], None] | None = None


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
            if deferred_builtins is not None:
                deferred_builtins(cls, None)
                return cls[label]
            raise UnknownLabelError(cls._kind, label, cls._registry) from None

    def resolve(cls: type[_C], spec: object, what: str) -> tuple[type[_C], dict]:  # type: ignore[misc]
        """A label or a config ``{"class": label, **options}`` -> (the class, its options).

        Args:
            spec: A label or a config.
            what: Names the config key in the error for anything else.

        Raises:
            ConfigError: ``spec`` is neither a label nor a config.
        """
        if isinstance(spec, str):
            return cls[spec], {}
        if isinstance(spec, Mapping) and "class" in spec:
            return cls[spec["class"]], {key: value for key, value in spec.items() if key != "class"}
        raise ConfigError(f"{what} config {spec!r} must be a label or a mapping with a 'class' key")

    @property
    def labels(cls) -> KeysView[str]:
        """The registered labels of this component kind (a set-like view)."""
        if deferred_builtins is not None:
            deferred_builtins(cls, None)
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
        cls._take_label(label, replace=False)

    @classmethod
    def register(cls, label: str) -> Callable[[type[_C]], type[_C]]:
        """proFit's class decorator: register ``subclass`` under ``label`` in this kind's registry::

            @Worker.register("mine")
            class Mine(Worker): ...

        Unlike the class keyword, it may replace a label that another class holds
        (a user's variant of a built-in one), with a warning.

        Args:
            label: The label.

        Raises:
            ConfigError: The label is not a non-empty string.
        """
        if not isinstance(label, str) or not label:
            raise ConfigError(f"{cls._kind}.register: a component label must be a non-empty string, got {label!r}")

        def decorator(subclass: type[_C]) -> type[_C]:
            if not (isinstance(subclass, type) and issubclass(subclass, Component)):
                raise ConfigError(f"{cls._kind}.register({label!r}) decorates a {cls._kind} class, not {subclass!r}")
            if subclass._registry is not cls._registry:
                raise ConfigError(
                    f"{cls._kind}.register({label!r}): {subclass.__qualname__} is a {subclass._kind}, not a {cls._kind}"
                )
            subclass._take_label(label, replace=True)
            return subclass

        return decorator

    @classmethod
    def _take_label(cls, label: str, *, replace: bool) -> None:
        if deferred_builtins is not None:
            deferred_builtins(cls, label)
        previous = cls._registry.get(label)
        # Re-defining the same class (a reloaded include file, a test run twice, a worker
        # script that is also an include file) replaces it; a different class may not take
        # a label silently: with ``register`` it replaces it with a warning, else it is refused.
        if previous is not None and previous is not cls and not _same_definition(previous, cls):
            if not replace:
                raise ConfigError(
                    f"{cls._kind} label {label!r} is already registered by "
                    f"{previous.__module__}.{previous.__qualname__}; choose another label for "
                    f"{cls.__module__}.{cls.__qualname__} (or replace it: @{cls._kind}.register({label!r}))"
                )
            _warn_replaced(cls._kind, label, previous, cls)
        cls._registry[label] = cls
        cls.label = label

    @property
    def logger(self) -> logging.Logger:
        """The component's logger: a child of ``logger_parent`` if it was given one, else ``profit.run.<kind>``."""
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


def _source_file(cls: type) -> str | None:
    """The file that defines ``cls`` (its module's ``__file__``), resolved; None if unknown."""
    path = getattr(sys.modules.get(cls.__module__), "__file__", None)
    return os.path.realpath(path) if isinstance(path, str) else None


def _same_definition(previous: type, cls: type) -> bool:
    """The same class defined again: the same qualified name, from the same module or the same file
    (a script run as ``__main__`` that is also loaded as an include file)."""
    if previous.__qualname__ != cls.__qualname__:
        return False
    if previous.__module__ == cls.__module__:
        return True
    source = _source_file(cls)
    return source is not None and source == _source_file(previous)


_warned: set[tuple[str, str, str, str]] = set()


def _warn_replaced(kind: str, label: str, previous: type, cls: type) -> None:
    """Warn (once for each replacement) that ``cls`` replaces ``previous`` for ``label``."""
    key = (kind, label, f"{previous.__module__}.{previous.__qualname__}", f"{cls.__module__}.{cls.__qualname__}")
    if key in _warned:
        return
    _warned.add(key)
    import warnings

    warnings.warn(f"{kind} label {label!r}: {key[3]} replaces {key[2]}", stacklevel=4)
