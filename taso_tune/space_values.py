"""The pieces a search-space file is made of: block values, settings sections and the YAML reader.

:class:`SchedulerSpec`, :class:`SearchSpec` and :class:`Resources` (re-exported by
``taso_tune.spaces``) are the ``scheduler:``, ``search:`` and ``resources:`` sections.

A value in a block is fixed (``lr: 0.05``), a grid (``{grid: [...]}``), a choice
(``{choice: [...]}``) or a distribution (``{uniform: [low, high]}``, ``{loguniform: [low, high]}``).
:func:`parse_value` turns the YAML form into a :class:`Value`; :meth:`Value.to_yaml` gives it back.
``taso_tune.spaces`` builds sweeps out of these; nothing here knows about Ray or Optuna.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import yaml

from taso_tune.errors import ConfigError

ValueKind = Literal["fixed", "grid", "choice", "uniform", "loguniform"]
VALUE_KINDS: tuple[str, ...] = ("grid", "choice", "uniform", "loguniform")
DISTRIBUTIONS: tuple[str, ...] = ("uniform", "loguniform")


def is_number(value: Any) -> bool:
    """A finite int or float (``True``/``False`` are not numbers here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class Value:
    """One field of a block: ``options`` holds the fixed value, the grid/choice values, or (low, high)."""

    kind: ValueKind
    options: tuple[Any, ...]

    @property
    def varied(self) -> bool:
        return self.kind != "fixed"

    @property
    def is_distribution(self) -> bool:
        return self.kind in DISTRIBUTIONS

    @property
    def fixed(self) -> Any:
        return self.options[0]

    def to_yaml(self) -> Any:
        """The value as written in a space file (plain data: lists, not tuples)."""
        if self.kind == "fixed":
            return _plain(self.fixed)
        return {self.kind: [_plain(v) for v in self.options]}

    def sample(self, rng: np.random.Generator) -> Any:
        """One draw for random search: a choice option, or a float from the distribution."""
        if self.kind == "choice":
            return _plain(self.options[int(rng.integers(len(self.options)))])
        low, high = self.options
        if self.kind == "uniform":
            return float(rng.uniform(low, high))
        return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def parse_value(field: str, raw: Any) -> Value:
    """Read one block value; ``field`` is its path (``blocks[1].lr``) for error messages."""
    if not isinstance(raw, Mapping):
        return Value("fixed", (_plain(raw),))
    if len(raw) != 1 or next(iter(raw)) not in VALUE_KINDS:
        keys = ", ".join(map(str, raw)) or "nothing"
        raise ConfigError(field, dict(raw), f"a value mapping holds exactly one of its kinds (found {keys})",
                          choices=VALUE_KINDS)  # fmt: skip
    kind, items = next(iter(raw.items()))
    where = f"{field}.{kind}"
    if not isinstance(items, (list, tuple)) or not items:
        raise ConfigError(where, items, "must be a non-empty list")
    if kind in ("grid", "choice"):
        for item in items:
            if isinstance(item, Mapping):
                raise ConfigError(where, item, "grid and choice options are plain values, not mappings")
        return Value(kind, tuple(_plain(v) for v in items))
    if len(items) != 2 or not all(is_number(v) for v in items):
        raise ConfigError(where, items, "must be [low, high], two numbers")
    low, high = items
    if not low < high:
        raise ConfigError(where, items, "needs low < high")
    if kind == "loguniform" and not low > 0:
        raise ConfigError(where, items, "needs low > 0 (it samples log(value))")
    return Value(kind, (low, high))


def format_value(value: Any) -> str:
    """A short, filesystem-safe text for ``value`` in a configuration id."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif value is None:
        text = "none"
    elif isinstance(value, float):
        text = repr(value)
        if len(text) > 10:  # sampled floats: six significant digits are plenty to tell them apart
            text = f"{value:.6g}"
    elif isinstance(value, (list, tuple)):
        text = "-".join(format_value(v) for v in value)
    else:
        text = str(value)
    return re.sub(r"[^A-Za-z0-9._+=-]", "-", text)


# --- the scheduler, search and resources settings ----------------------------------------------

SCHEDULER_TYPES = ("asha", "none", "budget-sh")
SEARCH_TYPES = ("grid", "random", "optuna")
SCHEDULER_KEYS = {"asha": ("type", "grace_period", "reduction_factor"), "none": ("type",),
                   "budget-sh": ("type", "reduction_factor", "min_epochs")}  # fmt: skip
SEARCH_KEYS = {"grid": ("type",), "random": ("type", "num_samples", "seed"),
                "optuna": ("type", "num_samples", "seed")}  # fmt: skip


def require_int(field_name: str, value: Any, lowest: int) -> None:
    if not is_int(value) or value < lowest:
        raise ConfigError(field_name, value, f"must be an integer >= {lowest}")


def require_keys(section: str, data: Mapping[str, Any], valid: tuple[str, ...], what: str) -> None:
    for key, value in data.items():
        if key not in valid:
            raise ConfigError(f"{section}.{key}" if section else str(key), value,
                              f"unknown key in {what}{did_you_mean(key, valid)}", choices=valid)  # fmt: skip


def _reset_unused(settings: Any, used: tuple[str, ...]) -> None:
    """Put the fields its type does not use back to their defaults, so that
    ``replace(scheduler, type="none")`` equals ``SchedulerSpec("none")`` (files may not set them)."""
    for name, spec_field in type(settings).__dataclass_fields__.items():
        if name not in used:
            object.__setattr__(settings, name, spec_field.default)


@dataclass(frozen=True)
class SchedulerSpec:
    """How trials are stopped early: ASHA, no early stopping, or budget-aware successive halving.

    ``budget-sh`` retrains each rung's survivors from scratch with a larger budget (TASO plans its
    decay from the total epochs, so a short run is a different schedule, not a prefix of the long one).
    """

    type: Literal["asha", "none", "budget-sh"] = "asha"
    grace_period: int = 1
    reduction_factor: float = 3.0
    min_epochs: int | None = None

    def __post_init__(self) -> None:
        if self.type not in SCHEDULER_TYPES:
            raise ConfigError("scheduler.type", self.type, "unknown scheduler", choices=SCHEDULER_TYPES)
        require_int("scheduler.grace_period", self.grace_period, 1)
        if not is_number(self.reduction_factor) or not self.reduction_factor > 1:
            raise ConfigError("scheduler.reduction_factor", self.reduction_factor, "must be a number > 1")
        object.__setattr__(self, "reduction_factor", float(self.reduction_factor))
        if self.min_epochs is not None:
            require_int("scheduler.min_epochs", self.min_epochs, 1)
        _reset_unused(self, SCHEDULER_KEYS[self.type])

    def first_budget(self, epochs: int) -> int:
        """budget-sh: the first rung's epochs r (``min_epochs``, default ``max(1, epochs // eta**2)``)."""
        if self.min_epochs is not None:
            return self.min_epochs
        return max(1, int(epochs // self.reduction_factor**2))

    def rung_epochs(self, epochs: int) -> list[int]:
        """budget-sh: the budgets r, r*eta, r*eta^2, ... below ``epochs``, then ``epochs`` itself.

        Strictly increasing ints. A last geometric budget within a factor sqrt(eta) of ``epochs`` is
        replaced by ``epochs`` (100 epochs, eta 3, r 11 gives [11, 33, 100], not [11, 33, 99, 100]).
        """
        eta = self.reduction_factor
        budgets: list[int] = []
        budget = float(self.first_budget(epochs))
        while budget < epochs:
            whole = max(int(budget), budgets[-1] + 1 if budgets else 1)
            if whole >= epochs:
                break
            budgets.append(whole)
            budget *= eta
        if len(budgets) > 1 and budgets[-1] * math.sqrt(eta) >= epochs:
            budgets.pop()
        return [*budgets, epochs]

    def to_dict(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in SCHEDULER_KEYS[self.type]
                if getattr(self, key, None) is not None}  # fmt: skip


@dataclass(frozen=True)
class SearchSpec:
    """How configurations are chosen: the full grid, random samples, or Optuna's proposals."""

    type: Literal["grid", "random", "optuna"] = "grid"
    num_samples: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.type not in SEARCH_TYPES:
            raise ConfigError("search.type", self.type, "unknown search", choices=SEARCH_TYPES)
        require_int("search.num_samples", self.num_samples, 1)
        if not is_int(self.seed):
            raise ConfigError("search.seed", self.seed, "must be an integer")
        _reset_unused(self, SEARCH_KEYS[self.type])

    def to_dict(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in SEARCH_KEYS[self.type]}


@dataclass(frozen=True)
class Resources:
    """Per-trial resources; ``gpus=None`` leaves the choice to the Ray layer
    (``DEFAULT_GPUS_PER_TRIAL[model]`` when the cluster has a GPU, else 0)."""

    cpus: float = 1.0
    gpus: float | None = None

    def __post_init__(self) -> None:
        for name, value in (("cpus", self.cpus), ("gpus", self.gpus)):
            if value is None and name == "gpus":
                continue
            lowest = "> 0" if name == "cpus" else ">= 0"
            if not is_number(value) or value < 0 or (name == "cpus" and value == 0):
                raise ConfigError(f"resources.{name}", value, f"must be a number {lowest}")
            if value > 1 and value != int(value):  # Ray's rule for resource amounts
                raise ConfigError(f"resources.{name}", value, "above 1 must be a whole number")

    def to_dict(self) -> dict[str, Any]:
        return {"cpus": self.cpus} if self.gpus is None else {"cpus": self.cpus, "gpus": self.gpus}


# --- YAML -------------------------------------------------------------------------------------------


class SpaceLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that rejects duplicate keys and reads ``5e-4`` as a number.

    YAML 1.1 (PyYAML) needs a dot in a float with an exponent, so ``lr: 5e-4`` would be the string
    ``"5e-4"``; learning rates are written that way often enough to accept it.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            try:
                first = seen.setdefault(key, line)
            except TypeError:
                continue  # an unhashable key: the base class reports it
            if first != line:
                raise ConfigError(f"line {line}", key, f"duplicate key (first set on line {first})")
        return super().construct_mapping(node, deep=deep)


SpaceLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+.0123456789"),
)


def read_yaml(path: str) -> Any:
    """Parse the YAML file at ``path``; a syntax error names the file and the line."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise ConfigError("space", path, "file not found") from None
    except (IsADirectoryError, UnicodeDecodeError, PermissionError) as err:
        raise ConfigError("space", path, f"cannot read the file ({type(err).__name__})") from None
    try:
        return yaml.load(text, Loader=SpaceLoader)  # noqa: S506 (SpaceLoader is a SafeLoader)
    except ConfigError as err:
        raise err.in_file(path) from None
    except yaml.YAMLError as err:
        raise _syntax_error(path, text, err) from None


def _syntax_error(path: str, text: str, err: yaml.YAMLError) -> ConfigError:
    """Where the YAML parser gave up: the problem's line, or the construct's start at end of file."""
    lines = text.splitlines()
    problem = getattr(err, "problem", None) or str(err)
    context = getattr(err, "context", None)
    mark = getattr(err, "problem_mark", None)
    context_mark = getattr(err, "context_mark", None)
    if mark is None or mark.line >= len(lines) or not lines[mark.line].strip():
        mark = context_mark or mark
    if context:
        problem = f"{context}: {problem}"
    if mark is None:
        return ConfigError("yaml", None, f"not valid YAML: {problem}", file=path)
    snippet = lines[mark.line].strip() if mark.line < len(lines) else ""
    return ConfigError(f"line {mark.line + 1}", snippet, f"not valid YAML: {problem}", file=path)


def did_you_mean(name: Any, valid: Iterable[str]) -> str:
    """`` (did you mean 'momentum'?)`` for a near-miss of a valid name, else an empty string."""
    close = difflib.get_close_matches(str(name), list(valid), n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""
