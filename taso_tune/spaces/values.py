"""The values of a search-space block, and the small checks every part of a space shares.

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

from taso_tune.core.errors import ConfigError

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
        raise ConfigError(
            field,
            dict(raw),
            f"a value mapping holds exactly one of its kinds (found {keys})",
            choices=VALUE_KINDS,
        )
    kind, items = next(iter(raw.items()))
    where = f"{field}.{kind}"
    if not isinstance(items, (list, tuple)) or not items:
        raise ConfigError(where, items, "must be a non-empty list")
    if kind in ("grid", "choice"):
        for item in items:
            if isinstance(item, Mapping):
                raise ConfigError(
                    where, item, "grid and choice options are plain values, not mappings"
                )
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


def require_int(field_name: str, value: Any, lowest: int) -> None:
    if not is_int(value) or value < lowest:
        raise ConfigError(field_name, value, f"must be an integer >= {lowest}")


def require_keys(section: str, data: Mapping[str, Any], valid: tuple[str, ...], what: str) -> None:
    for key, value in data.items():
        if key not in valid:
            raise ConfigError(
                f"{section}.{key}" if section else str(key),
                value,
                f"unknown key in {what}{did_you_mean(key, valid)}",
                choices=valid,
            )


def did_you_mean(name: Any, valid: Iterable[str]) -> str:
    """`` (did you mean 'momentum'?)`` for a near-miss of a valid name, else an empty string."""
    close = difflib.get_close_matches(str(name), list(valid), n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""
