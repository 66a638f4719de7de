"""Every public class and function of profit has a docstring, in one style (Google, as napoleon reads it).

The public objects are those of every module of the package (not private modules, ``__main__`` or
``profit.ui``): each class and function defined in the module whose name does not start with ``_``,
and each public method and property defined in such a class's own body.
"""

import ast
import builtins
import importlib
import inspect
import pkgutil
import re
import sys
import textwrap

import profit
from profit.run import errors
from profit.run.command import CommandWorker
from profit.run.dask import DaskRunner
from profit.run.executor import Executor
from profit.run.fork import ForkRunner
from profit.run.functions import FunctionWorker
from profit.run.interface import RunnerInterface, WorkerInterface
from profit.run.local import LocalRunner
from profit.run.memmap import MemmapRunnerInterface, MemmapWorkerInterface
from profit.run.pool import PoolRunner
from profit.run.runner import Runner
from profit.run.slurm import SlurmRunner
from profit.run.worker import Worker
from profit.run.zeromq import ZeroMQRunnerInterface, ZeroMQWorkerInterface
from profit.study import Study

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


# --- one style: Google (Args:, Returns:, Raises:) for every public function ----------------------------


# The checked objects: a class stands for its constructor (its docstring documents the parameters).
API = {
    "Study": [Study.load, Study.open, Study.create, Study.extend, Study.check_inputs, Study.run, Study.export]
    + [Study.executor, Study.clean],
    "Runner": [Runner, Runner.from_config, Runner.fill, Runner.fill_output, Runner.spawn, Runner.respawn]
    + [Runner.spawn_array, Runner.drive, Runner.poll, Runner.status, Runner.wait_some, Runner.wait, Runner.wait_all]
    + [Runner.cancel, Runner.cancel_all, Runner.close],
    "runners": [ForkRunner, LocalRunner, PoolRunner, SlurmRunner, DaskRunner],
    "Executor": [Executor, Executor.submit, Executor.map, Executor.starmap, Executor.__call__, Executor.shutdown],
    "Worker": [Worker, Worker.wrap, Worker.from_env, Worker.from_config, Worker.own_options],
    "interfaces": [RunnerInterface, RunnerInterface.use_store, RunnerInterface.row_buffer, RunnerInterface.resize]
    + [RunnerInterface.forked_worker_interface, RunnerInterface.state, RunnerInterface.transmitted]
    + [RunnerInterface.reason, RunnerInterface.mark, WorkerInterface, WorkerInterface.fail]
    + [MemmapRunnerInterface, MemmapRunnerInterface.resize, MemmapWorkerInterface]
    + [ZeroMQRunnerInterface, ZeroMQWorkerInterface],
    "workers": [CommandWorker, FunctionWorker],
}


def _generated(name: str, obj) -> bool:
    """Whether a decorator made the object (a class, the function it wraps, a method it adds): it is found
    under a name other than its own, or it (a class: its ``__init__``) is defined in a function's body.
    The decorator documents what it makes."""
    init = vars(obj).get("__init__") if inspect.isclass(obj) else obj
    local = "<locals>" in getattr(init, "__qualname__", "")
    return local or name != f"{obj.__module__}.{obj.__qualname__}"


def _checked():
    """The API above, and every public class and function (not a property) of the package, but those a
    decorator made."""
    objects = [obj for objects in API.values() for obj in objects]
    for name, obj in _public_objects():
        if isinstance(obj, property) or obj in objects or _generated(name, obj):
            continue
        objects.append(obj)
    return objects


CHECKED = _checked()
SECTION = re.compile(
    r"^(\s*)(Args|Arguments|Parameters|Keyword Arguments|Returns|Yields|Raises|Attributes|Note|Example)s?:\s*$"
)


def _name(obj) -> str:
    return f"{obj.__module__}.{obj.__qualname__}"


def _section(obj, title: str) -> list[str]:
    """The entries (first words before ':') of a docstring's ``title:`` section."""
    lines = inspect.cleandoc(obj.__doc__ or "").splitlines()
    for index, line in enumerate(lines):
        match = SECTION.match(line)
        if match and match.group(2) == title:
            indent = len(match.group(1))
            body = []
            for entry in lines[index + 1 :]:
                if entry.strip() and len(entry) - len(entry.lstrip()) <= indent:
                    break
                body.append(entry)
            depth = min((len(entry) - len(entry.lstrip()) for entry in body if entry.strip()), default=0)
            names = []
            for entry in body:
                found = re.match(r"^\**([\w.]+)\s*(\(.*?\))?\s*:", entry[depth:]) if entry.strip() else None
                if found and len(entry) - len(entry.lstrip()) == depth:
                    names.append(found.group(1))
            return names
    return []


def _parameters(obj) -> list[str]:
    function = obj.__init__ if inspect.isclass(obj) else obj
    skipped = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    names = [p.name for p in inspect.signature(function).parameters.values() if p.kind not in skipped]
    return [name for name in names if name not in ("self", "cls")]


def _owner(function):
    """The class in whose body a method is defined (None for a function of a module)."""
    owner = sys.modules[function.__module__]
    for part in function.__qualname__.split(".")[:-1]:
        owner = getattr(owner, part, None)
    return owner if inspect.isclass(owner) else None


def _documented_parameters(obj) -> list[str]:
    """The parameters a docstring names: its Args: entries, with two rules for what is documented elsewhere.

    A class documents its constructor in its own docstring or ``__init__``'s, in ``Args:`` or (a
    dataclass, whose fields are its parameters) ``Attributes:``; a class that inherits ``__init__``
    also in those of the class it inherits it from. A method without an ``Args:`` section that
    overrides a base class's method takes its parameters from the base's docstring.
    """
    if inspect.isclass(obj):
        definer = next((cls for cls in obj.__mro__ if "__init__" in vars(cls)), obj)
        names = []
        for cls in {obj, definer}:
            names += _section(cls, "Args") + _section(cls, "Attributes") + _section(vars(cls).get("__init__"), "Args")
        return names
    names = _section(obj, "Args")
    owner = _owner(obj)
    if not names and owner is not None:
        for base in owner.__mro__[1:]:
            member = vars(base).get(obj.__name__)
            if isinstance(member, (staticmethod, classmethod)):
                member = member.__func__
            if inspect.isfunction(member) and _section(member, "Args"):
                return _section(member, "Args")
    return names


def test_every_public_function_documents_each_parameter_in_an_args_section():
    missing = []
    for obj in CHECKED:
        documented = _documented_parameters(obj)
        absent = [name for name in _parameters(obj) if name not in documented]
        if absent:
            missing.append(f"{_name(obj)}: {', '.join(absent)}")
    assert not missing, "no entry in the Args: section for:\n" + "\n".join(missing)


def _raised(function) -> set[str]:
    """The names of the exception types ``raise``d in the function's own body (not nested functions)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    names: set[str] = set()

    def visit(node, top):
        if not top and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            return
        if isinstance(node, ast.Raise) and node.exc is not None:
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            name = exc.attr if isinstance(exc, ast.Attribute) else getattr(exc, "id", None)
            if name and name[0].isupper():
                names.add(name)
        for child in ast.iter_child_nodes(node):
            visit(child, False)

    visit(tree.body[0], True)
    return names


def test_every_public_function_documents_what_it_raises_in_a_raises_section():
    """Every exception type of :mod:`profit.run.errors` (or a built-in one) raised in a checked function's own
    body (a class's: its own ``__init__``'s) is named in its Raises: section (what callees raise is not
    checked; nor AssertionError, which marks the unreachable)."""
    missing = []
    for obj in CHECKED:
        init = vars(obj).get("__init__") if inspect.isclass(obj) else None
        if inspect.isclass(obj) and not (inspect.isfunction(init) and not init.__code__.co_filename.startswith("<")):
            continue  # (an inherited or generated constructor: checked where it is written, if anywhere)
        function = obj.__init__ if inspect.isclass(obj) else obj
        documented = set(_section(obj, "Raises")) | set(_section(function, "Raises"))
        types = {name for name in _raised(function) if hasattr(errors, name) or hasattr(builtins, name)}
        types.discard("AssertionError")  # (raise AssertionError("unreachable"): no error a caller meets)
        absent = sorted(types - documented)
        if absent:
            missing.append(f"{_name(obj)}: {', '.join(absent)}")
    assert not missing, "raised but not in the Raises: section:\n" + "\n".join(missing)


# Headings of the other spellings napoleon would accept: the one style is "Args:" (and "Returns:", "Raises:").
OTHER_HEADINGS = re.compile(r"^\s*(Parameters|Arguments|Keyword Arguments|Keyword Args|Params)\b.*:\s*$", re.M)


def test_every_docstring_heads_its_parameters_args():
    objects = [(module.__name__, module) for module in _modules()] + list(_public_objects())
    other = [name for name, obj in objects if OTHER_HEADINGS.search(_doc(obj))]
    assert not other, "parameters headed otherwise than 'Args:' in:\n" + "\n".join(other)
