"""Range checks for numeric user input, shared by the schedules and the optimizer recipes.

One helper, so every field rejects the same things the same way: booleans and non-numbers, the
non-finite values (``inf``, ``-inf``, ``nan``: a comparison such as ``not value > 0`` lets ``inf``
through) and values outside the field's range. No torch here: the schedule maths uses it.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

from taso_tune.core.errors import ConfigError


@dataclass(frozen=True)
class Range:
    """The allowed values of a numeric field: a real interval, ``low``/``high`` of ``None`` leave
    that side unbounded. (A confidence interval is :class:`taso_tune.stats.seeds.Interval`.)"""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value: float) -> bool:
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def describe(self) -> str:
        """``> 0``, ``>= 0``, ``in [0, 1)``: how the error message states the range."""
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {self.low:g}" if self.low is not None else ""
        if self.low is None:
            return f"{'<' if self.high_open else '<='} {self.high:g}"
        left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
        return f"in {left}{self.low:g}, {self.high:g}{right}"


POSITIVE = Range(0.0, low_open=True)
NON_NEGATIVE = Range(0.0)
UNIT_OPEN = Range(0.0, 1.0, low_open=True, high_open=True)  # (0, 1)
UNIT_HALF_OPEN = Range(0.0, 1.0, high_open=True)  # [0, 1)
UNIT_LEFT_OPEN = Range(0.0, 1.0, low_open=True)  # (0, 1]


def check_number(field: str, value: Any, allowed: Range = Range()) -> float:
    """``value`` as a float if it is a finite real number in ``allowed``; else a ConfigError naming ``field``."""
    where = allowed.describe()
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ConfigError(field, value, f"must be a finite number {where}".rstrip())
    if value not in allowed:
        raise ConfigError(field, value, f"must be {where}")
    return float(value)


def check_integer(field: str, value: Any, lowest: int) -> int:
    """``value`` if it is an integer (not a bool) >= ``lowest``; else a ConfigError naming ``field``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < lowest:
        raise ConfigError(field, value, f"must be an integer >= {lowest}")
    return int(value)
