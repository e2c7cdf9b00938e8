"""Equivalence of two configurations run over the same seeds: two one-sided t-tests (TOST).

"No difference shown" is not "the same": a paired test that fails to reject says only that the seeds
cannot tell the two apart. Two settings are called equivalent only when TOST rejects both
"a is worse than b by the margin or more" and "a is better by the margin or more" at ``level``, which
is the same as the ``1 - 2 level`` interval of the mean difference lying inside ``(-margin, margin)``
(Schuirmann 1987). The margin is the user's statement of what difference does not matter, in the
metric's own units, and every output that says "equivalent" shows it.

Several equivalence tests of one family (each candidate against one reference) are Holm-adjusted
together, as the verdicts are (:func:`~taso_tune.stats.verdict.compare_to_reference`): pass each
test's adjusted p-value as ``p_holm``, and it decides, with the interval that matches it.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

from scipy import stats

from taso_tune.core.errors import ConfigError
from taso_tune.stats.paired import DEFAULT_LEVEL, paired_difference
from taso_tune.stats.seeds import is_number, t_interval


@dataclass(frozen=True)
class Equivalence:
    """TOST of the per-seed differences ``a - b`` against ``(-margin, margin)``."""

    n: int
    mean: float
    margin: float
    ci_low: float  # the interval of the mean difference at 1 - 2 level (1 - 2 level · p / p_holm
    ci_high: float  # when Holm-adjusted): inside the margin iff equivalent
    p_value: float  # the larger of the two one-sided p-values
    level: float
    p_holm: float | None = None  # p_value after Holm's correction over its family, if any

    @property
    def equivalent(self) -> bool:
        """Whether both one-sided tests reject at ``level`` (after Holm's correction, when made): a
        difference within the margin."""
        return (self.p_value if self.p_holm is None else self.p_holm) < self.level

    def describe(self, unit: str = "", scale: float = 1.0) -> str:
        """``equivalent within ±0.5 points (TOST p=0.004, n=5)``, ``not shown equivalent within
        ±0.1 ...``, or with Holm's correction ``(TOST Holm-adjusted p=0.008, n=5)``: the margin
        always shown, times ``scale`` (100 for an accuracy in points)."""
        return equivalence_words(
            self.equivalent, self.margin, self.p_value, self.n, self.p_holm, unit, scale
        )


def equivalence_words(
    equivalent: bool,
    margin: float,
    p_value: float,
    n: int,
    p_holm: float | None = None,
    unit: str = "",
    scale: float = 1.0,
) -> str:
    """TOST's answer in words (:meth:`Equivalence.describe`), from its numbers alone: what an output
    that stored them (an exported defaults file) prints."""
    words = "equivalent" if equivalent else "not shown equivalent"
    p = f"p={p_value:.3g}" if p_holm is None else f"Holm-adjusted p={p_holm:.3g}"
    return f"{words} within ±{margin * scale:g}{unit} (TOST {p}, n={n})"


def paired_equivalence(
    a: Sequence[float] | Mapping[Hashable, float],
    b: Sequence[float] | Mapping[Hashable, float],
    margin: float,
    level: float = DEFAULT_LEVEL,
    p_holm: float | None = None,
) -> Equivalence:
    """TOST for paired seeds: is the mean of ``a - b`` within ``(-margin, margin)`` at ``level``?

    Pairs the seeds as :func:`~taso_tune.stats.paired.paired_difference` does (the same seeds on both
    sides, at least 2). With no spread at all, the difference is equivalent exactly when it lies
    inside the margin. ``p_holm``, this test's p-value after Holm's correction over its family
    (:func:`~taso_tune.stats.paired.holm` of the family's ``p_value``), decides instead of the raw
    one, and the interval is then at ``1 - 2 level · p / p_holm``, which lies inside the margin
    exactly when ``p_holm < level``.
    """
    if (
        isinstance(margin, bool)
        or not isinstance(margin, (int, float))
        or not (math.isfinite(margin) and margin > 0)
    ):
        raise ConfigError("margin", margin, "must be a finite number > 0")
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 0.5:
        raise ConfigError("level", level, "must be in (0, 0.5)")
    if p_holm is not None and (not is_number(p_holm) or not 0.0 <= p_holm <= 1.0):
        raise ConfigError("p_holm", p_holm, "must be a probability in [0, 1]")
    diff = paired_difference(a, b, confidence=1 - 2 * level)
    se = diff.std / math.sqrt(diff.n)
    if se == 0:
        p_value = 0.0 if abs(diff.mean) < margin else 1.0
    else:
        df = diff.n - 1
        p_lower = float(stats.t.sf((diff.mean + margin) / se, df))  # H0: mean <= -margin
        p_upper = float(stats.t.cdf((diff.mean - margin) / se, df))  # H0: mean >= +margin
        p_value = max(p_lower, p_upper)
    low, high = diff.ci_low, diff.ci_high
    if p_holm is not None and 0.0 < p_value < p_holm:
        # the interval whose inclusion in the margin matches the adjusted decision
        low, high = t_interval(diff.mean, diff.std, diff.n, 1 - 2 * level * p_value / p_holm)
    return Equivalence(diff.n, diff.mean, float(margin), low, high, p_value, level, p_holm)
