"""Every public class and function of profit has a docstring, in one style (Google, as napoleon reads it).

The public objects are those of every module of the package (not private modules, ``__main__`` or
``profit.ui``): each class and function defined in the module whose name does not start with ``_``,
and each public method and property defined in such a class's own body.
"""

import importlib
import inspect
import pkgutil

import profit

SKIPPED = ("profit.ui",)


def _modules():
    for info in pkgutil.walk_packages(profit.__path__, "profit."):
        last = info.name.rsplit(".", 1)[-1]
        if last.startswith("_") or info.name.startswith(SKIPPED):
            continue
        yield importlib.import_module(info.name)


def _doc(obj) -> str:
    return (getattr(obj, "__doc__", None) or "").strip()


def _public_objects():
    """(qualified name, object) of every public class, function, method and property."""
    for module in _modules():
        for name, obj in vars(module).items():
            if name.startswith("_") or not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            if getattr(obj, "__module__", None) != module.__name__:
                continue
            yield f"{module.__name__}.{name}", obj
            if not inspect.isclass(obj):
                continue
            for member_name, member in vars(obj).items():
                if member_name.startswith("_"):
                    continue
                if isinstance(member, (staticmethod, classmethod)):
                    member = member.__func__
                if isinstance(member, property) or inspect.isfunction(member):
                    yield f"{module.__name__}.{name}.{member_name}", member


def test_every_public_class_and_function_has_a_docstring():
    objects = list(_public_objects())
    assert len(objects) > 400  # (the walk found the package)
    missing = [name for name, obj in objects if not _doc(obj)]
    assert not missing, f"{len(missing)} of {len(objects)} public objects have no docstring:\n" + "\n".join(missing)
