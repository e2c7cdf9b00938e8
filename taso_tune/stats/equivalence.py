"""Equivalence of two configurations run over the same seeds: two one-sided t-tests (TOST).

"No difference shown" is not "the same": a paired test that fails to reject says only that the seeds
cannot tell the two apart. Two settings are called equivalent only when TOST rejects both
"a is worse than b by the margin or more" and "a is better by the margin or more" at ``level``, which
is the same as the ``1 - 2 level`` interval of the mean difference lying inside ``(-margin, margin)``
(Schuirmann 1987). The margin is the user's statement of what difference does not matter, in the
metric's own units, and every output that says "equivalent" shows it.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

from scipy import stats

from taso_tune.core.errors import ConfigError
from taso_tune.stats.paired import DEFAULT_LEVEL, paired_difference


@dataclass(frozen=True)
class Equivalence:
    """TOST of the per-seed differences ``a - b`` against ``(-margin, margin)``."""

    n: int
    mean: float
    margin: float
    ci_low: float  # the 1 - 2 level interval of the mean difference: inside the margin iff
    ci_high: float  # equivalent
    p_value: float  # the larger of the two one-sided p-values
    level: float

    @property
    def equivalent(self) -> bool:
        """Whether both one-sided tests reject at ``level``: a difference within the margin."""
        return self.p_value < self.level

    def describe(self, unit: str = "", scale: float = 1.0) -> str:
        """``equivalent within ±0.5 points (TOST p=0.004, n=5)`` or ``not shown equivalent within
        ±0.1 ...``: the margin always shown, times ``scale`` (100 for an accuracy in points)."""
        words = "equivalent" if self.equivalent else "not shown equivalent"
        return (
            f"{words} within ±{self.margin * scale:g}{unit} (TOST p={self.p_value:.3g}, n={self.n})"
        )


def paired_equivalence(
    a: Sequence[float] | Mapping[Hashable, float],
    b: Sequence[float] | Mapping[Hashable, float],
    margin: float,
    level: float = DEFAULT_LEVEL,
) -> Equivalence:
    """TOST for paired seeds: is the mean of ``a - b`` within ``(-margin, margin)`` at ``level``?

    Pairs the seeds as :func:`~taso_tune.stats.paired.paired_difference` does (the same seeds on both
    sides, at least 2). With no spread at all, the difference is equivalent exactly when it lies
    inside the margin.
    """
    if (
        isinstance(margin, bool)
        or not isinstance(margin, (int, float))
        or not (math.isfinite(margin) and margin > 0)
    ):
        raise ConfigError("margin", margin, "must be a finite number > 0")
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 0.5:
        raise ConfigError("level", level, "must be in (0, 0.5)")
    diff = paired_difference(a, b, confidence=1 - 2 * level)
    se = diff.std / math.sqrt(diff.n)
    if se == 0:
        p_value = 0.0 if abs(diff.mean) < margin else 1.0
    else:
        df = diff.n - 1
        p_lower = float(stats.t.sf((diff.mean + margin) / se, df))  # H0: mean <= -margin
        p_upper = float(stats.t.cdf((diff.mean - margin) / se, df))  # H0: mean >= +margin
        p_value = max(p_lower, p_upper)
    return Equivalence(diff.n, diff.mean, float(margin), diff.ci_low, diff.ci_high, p_value, level)
