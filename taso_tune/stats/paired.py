"""Paired comparisons of configurations trained on the same seeds: the difference of means with its
t interval and paired t-test, Holm's correction across comparisons, and a bootstrap interval over
seeds for any statistic. The one-configuration rule is in ``stats.seeds``; the one verdict rule,
built on these, in ``stats.verdict``."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from taso_tune.core.errors import ConfigError
from taso_tune.stats.seeds import (
    DEFAULT_CONFIDENCE,
    Interval,
    check_confidence,
    check_count,
    finite_array,
    t_interval,
)

#: Significance level of the verdicts (:mod:`taso_tune.stats.verdict`) and of TOST.
DEFAULT_LEVEL = 0.05


@dataclass(frozen=True)
class PairedDifference:
    """Mean of the per-seed differences ``a - b`` with its t interval and paired t-test p-value.

    ``p_value`` is NaN where the t-test is undefined: differences with no spread (all equal, up to
    rounding) and not all 0 (:attr:`undefined`)."""

    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float
    p_value: float
    confidence: float

    @property
    def undefined(self) -> bool:
        """Whether the t-test is undefined: the per-seed differences have no spread, and are not 0."""
        return bool(np.isnan(self.p_value))


def _pair(
    a: Sequence[float] | Mapping[Hashable, float], b: Sequence[float] | Mapping[Hashable, float]
) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(a, Mapping) != isinstance(b, Mapping):
        raise ConfigError(
            "b",
            type(b).__name__,
            "pair a mapping with a mapping (seed -> value), or a sequence with a sequence",
        )
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        if set(a) != set(b):
            unpaired = sorted(map(repr, set(a) ^ set(b)))
            raise ConfigError(
                "seeds", unpaired, "the two configurations were not run over the same seeds"
            )
        seeds = list(a)
        a, b = [a[s] for s in seeds], [b[s] for s in seeds]
    x, y = finite_array(a, "a"), finite_array(b, "b")
    if len(x) != len(y):
        raise ConfigError(
            "seeds",
            (len(x), len(y)),
            "paired samples need one value per seed on both sides, in the same seed order",
        )
    if len(x) < 2:
        raise ConfigError("n", len(x), "a paired comparison needs at least 2 seeds")
    return x, y


def paired_difference(
    a: Sequence[float] | Mapping[Hashable, float],
    b: Sequence[float] | Mapping[Hashable, float],
    confidence: float = DEFAULT_CONFIDENCE,
) -> PairedDifference:
    """Compare two configurations run over the same seeds: the mean of ``a - b`` seed by seed, its t
    interval (df = n - 1) and the two-sided paired t-test p-value (``scipy.stats.ttest_rel``).

    ``a`` and ``b`` are sequences in the same seed order, or mappings seed -> value (paired by
    seed). Score diverged seeds at chance level before pairing, as :func:`summarize` does. When the
    differences have no spread (equal up to rounding), ``std`` is 0 and the p-value 1 for
    differences of 0, NaN otherwise (:attr:`PairedDifference.undefined`).
    """
    confidence = check_confidence(confidence)
    x, y = _pair(a, b)
    differences = x - y
    n = len(differences)
    mean = float(differences.mean())
    std = float(differences.std(ddof=1))
    # accuracies are counts over a test set: seeds each exactly one image apart differ only by
    # rounding, which would give a t statistic of 1e16 and p = 0 from no evidence at all
    rounding = 8 * np.finfo(float).eps * max(1.0, float(np.abs(x).max()), float(np.abs(y).max()))
    if np.ptp(differences) <= rounding:
        std = 0.0
        mean = 0.0 if abs(mean) <= rounding else mean
    low, high = t_interval(mean, std, n, confidence)
    if std == 0.0:
        # the t statistic is 0/0 or ±inf: identical differences of 0 are no evidence of a
        # difference (p = 1); identical non-zero ones leave the t-test undefined (p = NaN), since
        # the t distribution's spread is estimated from the very spread that is missing
        p_value = 1.0 if mean == 0.0 else float("nan")
    else:
        p_value = float(stats.ttest_rel(x, y).pvalue)
    return PairedDifference(n, mean, std, low, high, p_value, confidence)


def regret_upper_bound(
    reference: Mapping[Hashable, float],
    pick: Mapping[Hashable, float],
    confidence: float = DEFAULT_CONFIDENCE,
) -> float:
    """A one-sided upper confidence bound (at ``confidence``) on the regret ``reference - pick``, paired
    by seed: the mean difference plus ``t(confidence, n - 1)`` standard errors, the upper end of the
    two-sided interval at ``2 * confidence - 1``. A pick whose bound is below a margin lost less than
    that margin, at that confidence; differences with no spread give their mean."""
    confidence = check_confidence(confidence)
    return paired_difference(reference, pick, confidence=2 * confidence - 1).ci_high


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm–Bonferroni step-down adjusted p-values, in the order given.

    Sorted ascending, the i-th smallest of m p-values (1-based) becomes ``(m - i + 1) · p``, made
    monotone by a running maximum and capped at 1. Controls the family-wise error rate under any
    dependence. (scipy's ``false_discovery_control`` does Benjamini–Hochberg, not Holm.)
    """
    p = np.asarray(p_values, dtype=float)
    if p.ndim != 1 or not np.all((p >= 0.0) & (p <= 1.0)):
        raise ConfigError(
            "p_values", p_values, "must be a flat sequence of probabilities in [0, 1]"
        )
    m = len(p)
    order = np.argsort(p, kind="stable")
    stepped = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    adjusted = np.empty(m)
    adjusted[order] = stepped
    return [float(v) for v in adjusted]


def bootstrap_interval(
    values: Sequence[float],
    statistic: Callable[..., float] = np.mean,
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = 9999,
    seed: int = 0,
) -> Interval:
    """Percentile-bootstrap interval of ``statistic`` over seeds, resampling the seeds with
    replacement (``scipy.stats.bootstrap``); the same ``seed`` gives the same interval.

    ``statistic`` takes an array (and may take ``axis=``, as numpy reductions do, to run vectorised).
    With few seeds the percentile interval is too narrow; prefer :func:`summarize`'s t interval for
    a mean and keep this for statistics without one (median, a quantile, a ratio).
    """
    confidence = check_confidence(confidence)
    resamples = check_count(resamples, "resamples", 1)
    sample = finite_array(values, "values")
    if len(sample) < 2:
        raise ConfigError("values", values, "a bootstrap needs at least 2 seeds")
    result = stats.bootstrap(
        (sample,),
        statistic,
        n_resamples=resamples,
        confidence_level=confidence,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return Interval(float(result.confidence_interval.low), float(result.confidence_interval.high))
