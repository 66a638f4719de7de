"""The ``variables:`` of a study: inputs to sample, outputs to collect.

Each variable is written as users of proFit write it::

    variables:
      u: Halton()              # quasi-random in [0, 1] (or Halton(a, b))
      v: Uniform(0, 10)        # random, uniform
      k: LogUniform(1e-3, 1)   # random, uniform in log space
      n: Normal(0, 1)          # random, normal (mu, sigma)
      x: Linear(0, 1)          # evenly spaced over the runs
      c: Constant(3)           # or simply: c: 3
      w: Input                 # given by tables (profit run --inputs, Study.extend)
      t: Independent(0, 1, 11) # the axis of a vector output (not an input)
      f: Output                # a scalar output
      g: Output(t)             # a vector output over t (11 values)
      m: {class: Uniform, constraints: [0, 1], dtype: float32}

``Halton`` draws proFit's deterministic Halton sequence: the variables of kind
``Halton``, in the order they are written, are the dimensions 1, 2, 3, ... in
the prime bases 2, 3, 5, ...; run ``i`` (counted from 0) takes point ``i + 1``
(the all-zero point 0 is skipped, so the first value of the first dimension is
0.5), scaled to ``low + (high - low) * point``. The same study always gets the
same Halton inputs, whatever its seed. The random kinds draw from numpy's
``Generator``; a study's ``seed`` makes them reproducible.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping

import numpy as np

from .run.errors import ConfigError
from .run.options import shown

_SPEC = re.compile(r"^\s*([A-Za-z_]\w*)\s*(?:\((.*)\))?\s*$", re.DOTALL)

# kind -> (defaults of its numeric parameters, what they mean)
INPUT_KINDS = {
    "Halton": ((0.0, 1.0), "low, high"),
    "Uniform": ((0.0, 1.0), "low, high"),
    "LogUniform": ((None, None), "low, high (both > 0)"),
    "Normal": ((0.0, 1.0), "mu, sigma"),
    "Linear": ((0.0, 1.0), "start, stop"),
    "Constant": ((None,), "value"),
    "Input": ((), "nothing (its values come from tables)"),
}
OTHER_KINDS = ("Independent", "Output")
# Columns that results and exports add beside the variables (profit.Study.results, profit.exports).
RESULT_COLUMNS = frozenset({"state", "reason", "attempts", "started", "ended", "duration", "run", "profit"})
# The most points an Independent axis (the length of a vector output) may have.
MAX_POINTS = 10**6
# The dtypes a variable may have: booleans, integers, floats.
DTYPE_KINDS = "biuf"


class Variable:
    """One variable: its name, kind, numeric parameters, dtype, and (outputs) its axis.

    Args:
        name: Its name.
        kind: Its kind (``Uniform``, ``Output``...).
        args: Its numeric parameters.
        dtype: Its dtype.
        over: (Outputs) its axis: the input it is a vector over.
    """

    def __init__(self, name: str, kind: str, args: tuple = (), dtype: str = "float64", over: str | None = None):
        self.name, self.kind, self.args, self.dtype, self.over = name, kind, args, np.dtype(dtype), over

    @property
    def is_input(self) -> bool:
        """Whether the variable is an input (its kind is one of the input kinds)."""
        return self.kind in INPUT_KINDS

    def __repr__(self) -> str:
        inner = self.over if self.kind == "Output" and self.over else ", ".join(map(repr, self.args))
        return f"{self.name}: {self.kind}({inner})"


def parse_variables(spec: object, where: str) -> dict[str, Variable]:
    """Parse the ``variables`` mapping; ``where`` (the file name) goes into every message.

    Args:
        spec: The ``variables`` mapping.
        where: The file name (goes into every message).

    Raises:
        ConfigError: The mapping or a variable in it is invalid.
    """
    if not isinstance(spec, Mapping) or not spec:
        raise ConfigError(f"{where}: 'variables' must map variable names to kinds, e.g. 'u: Uniform(0, 1)'")
    variables = {}
    for name, value in spec.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ConfigError(f"{where}: variable name {shown(name)} is not valid; use letters, digits and _")
        if name in RESULT_COLUMNS:
            raise ConfigError(
                f"{where}: variable name {name!r} is taken by the columns profit adds to results "
                f"({', '.join(sorted(RESULT_COLUMNS))}); rename the variable"
            )
        variables[name] = _parse_one(name, value, f"{where}: variable {shown(name)}")
    for variable in variables.values():
        if variable.kind == "Output" and variable.over is not None:
            axis = variables.get(variable.over)
            if axis is None or axis.kind != "Independent":
                raise ConfigError(
                    f"{where}: variable {shown(variable.name)} is Output({_cut(variable.over)}), but "
                    f"{shown(variable.over)} is not an Independent variable; add e.g. "
                    f"'{_cut(variable.over)}: Independent(0, 1, 10)'"
                )
    if not any(v.is_input for v in variables.values()):
        raise ConfigError(f"{where}: 'variables' has no input (e.g. 'u: Uniform(0, 1)')")
    if not any(v.kind == "Output" for v in variables.values()):
        raise ConfigError(f"{where}: 'variables' has no output (e.g. 'f: Output')")
    return variables


def _cut(text: str, limit: int = 80) -> str:
    """``text`` cut to about ``limit`` characters, for messages."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _parse_one(name: str, value: object, where: str) -> Variable:
    if isinstance(value, bool):
        raise ConfigError(f"{where}: {value!r} is not a variable kind")
    if isinstance(value, int) and not -(2**63) <= value < 2**63:
        raise ConfigError(f"{where}: the constant {shown(value)} does not fit a 64-bit integer")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where}: the constant {shown(value)} is not a finite number")
    if isinstance(value, (int, float)):
        return Variable(name, "Constant", (float(value),), "int64" if isinstance(value, int) else "float64")
    dtype = "float64"
    if isinstance(value, Mapping):
        unknown = set(value) - {"class", "kind", "constraints", "dtype", "over", "dependent"}
        if unknown:
            raise ConfigError(
                f"{where}: unknown key {shown(sorted(map(str, unknown))[0])}; a variable mapping takes class, "
                "constraints, dtype"
            )
        kind = value.get("class", value.get("kind"))
        args = value.get("constraints", ())
        args = tuple(args) if isinstance(args, (list, tuple)) else (args,)
        dtype = value.get("dtype", dtype)
        over = value.get("over")
        dependent = value.get("dependent")  # proFit's name: the Independent variable(s) of an Output
        if dependent is not None and over is None:
            axes = [dependent] if isinstance(dependent, str) else dependent
            if not isinstance(axes, list) or len(axes) != 1 or not isinstance(axes[0], str):
                raise ConfigError(f"{where}: dependent must name one Independent variable, e.g. dependent: [t]")
            over = axes[0]
        if not isinstance(kind, str):
            raise ConfigError(
                f"{where}: a variable mapping needs 'class', e.g. {{class: Uniform, constraints: [0, 1]}}"
            )
        text = f"{kind}({', '.join(map(str, args))})" if kind != "Output" else (f"Output({over})" if over else "Output")
    elif isinstance(value, str):
        text = value
    else:
        raise ConfigError(f"{where}: {shown(value)} is not a variable; write e.g. 'Uniform(0, 1)' or 'Output'")
    match = _SPEC.match(text)
    if not match:
        raise ConfigError(f"{where}: cannot read {shown(text)}; write e.g. 'Uniform(0, 1)', 'Halton()' or 'Output'")
    kind, inner = match.group(1), (match.group(2) or "").strip()
    if kind not in INPUT_KINDS and kind not in OTHER_KINDS:
        close = difflib.get_close_matches(kind, [*INPUT_KINDS, *OTHER_KINDS], n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"{where}: unknown kind {shown(kind)}{hint} (kinds: {', '.join([*INPUT_KINDS, *OTHER_KINDS])})"
        )
    try:
        numpy_dtype = np.dtype(dtype)
    except Exception:  # whatever numpy makes of a list or a mapping
        numpy_dtype = None
    if numpy_dtype is None or numpy_dtype.kind not in DTYPE_KINDS or numpy_dtype.fields is not None:
        raise ConfigError(f"{where}: dtype {shown(dtype)} is not a numpy type of numbers (e.g. float64, int64)")
    if kind == "Output":
        if inner and not inner.isidentifier():
            raise ConfigError(f"{where}: Output({_cut(inner)}) must name an Independent variable, e.g. Output(t)")
        return Variable(name, kind, (), dtype, inner or None)
    args = _numbers(inner, where, kind)
    if kind == "Independent":
        if len(args) != 3 or args[2] < 1 or args[2] != int(args[2]):
            raise ConfigError(
                f"{where}: Independent takes start, stop and a whole number of points, got {shown(inner)}"
            )
        if args[2] > MAX_POINTS:
            raise ConfigError(
                f"{where}: Independent has {args[2]:.0f} points; an axis may have at most {MAX_POINTS} "
                "(each run stores a value per point)"
            )
        return Variable(name, kind, (args[0], args[1], int(args[2])), dtype)
    defaults, meaning = INPUT_KINDS[kind]
    if len(args) > len(defaults) or any(d is None for d in defaults[len(args) :]):
        raise ConfigError(f"{where}: {kind} takes {meaning}, got {shown(inner) if inner else 'nothing'}")
    args = args + tuple(defaults[len(args) :])
    if kind == "LogUniform" and min(args) <= 0:
        raise ConfigError(f"{where}: LogUniform needs low and high > 0, got {shown(inner)}")
    if kind == "Normal" and args[1] < 0:
        raise ConfigError(f"{where}: Normal needs sigma >= 0, got {shown(inner)}")
    if kind in ("Uniform", "LogUniform", "Halton") and args[0] > args[1]:
        raise ConfigError(f"{where}: {kind} needs low <= high, got {shown(inner)}; swap them")
    if kind in ("Uniform", "Halton", "Linear") and not math.isfinite(args[1] - args[0]):
        raise ConfigError(f"{where}: {kind}({_cut(inner)}) spans more than a float can hold; narrow it")
    return Variable(name, kind, args, dtype)


def _numbers(inner: str, where: str, kind: str) -> tuple:
    if not inner:
        return ()
    parts = inner.split(",")
    written = _cut(inner)
    if any(not part.strip() for part in parts):
        raise ConfigError(f"{where}: {kind}({written}) has an empty argument; write numbers, e.g. {kind}(0, 1)")
    try:
        values = [float(part) for part in parts]
    except ValueError:
        raise ConfigError(f"{where}: {kind}({written}) takes numbers, e.g. {kind}(0, 1)") from None
    if not all(math.isfinite(value) for value in values):
        raise ConfigError(f"{where}: {kind}({written}) takes finite numbers (not nan or inf), e.g. {kind}(0, 1)")
    return tuple(values)


def new_seed() -> int:
    """A fresh random seed for a study that names none."""
    entropy: int = np.random.SeedSequence().entropy  # type: ignore[assignment]  # (drawn: an int)
    return entropy % 2**63


def _primes(count: int) -> list[int]:
    """The first ``count`` prime numbers: the bases of the Halton dimensions."""
    primes: list[int] = []
    candidate = 2
    while len(primes) < count:
        if all(candidate % prime for prime in primes if prime * prime <= candidate):
            primes.append(candidate)
        candidate += 1
    return primes


def radical_inverse(indices: np.ndarray, base: int) -> np.ndarray:
    """The van der Corput radical inverse of each of ``indices`` (integers >= 0) in ``base``.

    The digits of an index, least significant first, become the digits after the point; they are
    summed in that order (digit / base**k, k = 1, 2, ...), the arithmetic of proFit 0.6's Halton
    sequence, so that the values are bit for bit the same as proFit's.

    Args:
        indices: Integers >= 0.
        base: The base.
    """
    rest = np.asarray(indices, dtype=np.int64).copy()
    values = np.zeros(rest.shape)
    denominator = 1.0
    while rest.any():
        rest, digit = np.divmod(rest, base)
        denominator *= base
        values += digit / denominator
    return values


def sample_inputs(variables: Mapping[str, Variable], runs: int, seed: int | None, start: int = 0) -> np.ndarray:
    """Rows ``start .. runs-1`` of the study's inputs, as a structured array.

    Every random sampler draws its own stream (from ``seed`` and the variable's
    place) and ``Halton`` takes the points ``start + 1 .. runs`` of proFit's
    sequence (no seed), so the first rows never depend on how many follow: the
    rows of a study grown from 200 to 300 runs are those of a study of 300 from
    the start. ``Linear`` spreads its values over ``runs`` and cannot be continued
    that way (a study refuses to grow one by sampling); ``Input`` values come from tables, not
    from a sampler.

    Args:
        variables: The study's variables.
        runs: The study's runs.
        seed: The random samplers' seed (None: a fresh one).
        start: The first row.

    Raises:
        ConfigError: An input is ``Input`` (its values come from tables).
    """
    inputs = [v for v in variables.values() if v.is_input]
    count = max(runs - start, 0)
    rows = np.zeros(count, dtype=[(v.name, v.dtype) for v in inputs])
    if count == 0:
        return rows
    given = [v.name for v in inputs if v.kind == "Input"]
    if given:
        raise ConfigError(
            f"inputs {', '.join(given)} take their values from tables (--inputs or Study.extend), not from "
            "a sampler; set ntrain to 0 or give them a sampling kind such as Uniform(0, 1)"
        )
    if seed is None:  # (a study saves the seed it drew, to continue the same streams when it grows)
        seed = new_seed()
    entropy = [seed]
    halton = [v for v in inputs if v.kind == "Halton"]
    points = np.arange(start + 1, runs + 1)  # proFit skips the point 0 (all zeros)
    for base, variable in zip(_primes(len(halton)), halton):
        low, high = variable.args
        rows[variable.name] = (high - low) * radical_inverse(points, base) + low
    for index, variable in enumerate(inputs, start=1):
        a, *rest = variable.args or (None,)
        # A stream of its own per variable: drawing `runs` values and keeping the last
        # ones continues the stream exactly (each value takes the next draws).
        rng = np.random.default_rng([*entropy, index])
        if variable.kind == "Uniform":
            rows[variable.name] = rng.uniform(a, rest[0], runs)[start:]
        elif variable.kind == "LogUniform":
            rows[variable.name] = np.exp(rng.uniform(np.log(a), np.log(rest[0]), runs))[start:]
        elif variable.kind == "Normal":
            rows[variable.name] = rng.normal(a, rest[0], runs)[start:]
        elif variable.kind == "Linear":
            rows[variable.name] = np.linspace(a, rest[0], runs)[start:]
        elif variable.kind == "Constant":
            rows[variable.name] = a
    return rows


def input_config(variables: Mapping[str, Variable]) -> dict:
    """The interface's input config: ``{name: {"dtype": type}}``.

    Args:
        variables: The study's variables.
    """
    return {v.name: {"dtype": v.dtype.type} for v in variables.values() if v.is_input}


def output_config(variables: Mapping[str, Variable]) -> dict:
    """The interface's output config: ``{name: {"dtype": type, "size": (1, n)}}``.

    Args:
        variables: The study's variables.
    """
    config = {}
    for variable in variables.values():
        if variable.kind == "Output":
            length = variables[variable.over].args[2] if variable.over else 1
            config[variable.name] = {"dtype": variable.dtype.type, "size": (1, length)}
    return config
