"""The one verdict rule: each candidate against a reference named up front, paired by seed,
Holm-corrected over the declared family of comparisons, on one metric.

Every output that says whether one configuration is better than another (the summary, the report,
the export, the studies) asks :func:`compare_to_reference`, and writes its answer with
:func:`verdict_text`, :func:`format_difference` and :func:`equivalence_text`. The rule:

* The **reference** is chosen before any comparison (the caller's: in the results, the overall best
  on the selection metric). Each **candidate** is compared with it seed by seed: the mean of the
  per-seed differences ``candidate - reference``, the two-sided paired t-test
  (:func:`~taso_tune.stats.paired.paired_difference`), and Holm's correction over the candidates
  actually compared (:func:`~taso_tune.stats.paired.holm`).
* The **words** are "better" or "worse" (Holm-adjusted p below ``level``, 5% by default), "no
  difference shown" (otherwise: the seeds cannot tell the two apart, which is not "the same"), and
  "not compared" (the two were not run over the same seeds, or over fewer than 2, or their per-seed
  differences are all the same non-zero number: no spread, where the t-test is undefined). The
  reference itself is "reference". Overlapping intervals are never a verdict.
* The **interval** beside a verdict matches it. For a comparison with raw p-value ``p`` and
  Holm-adjusted ``p_holm`` it is the paired t interval at confidence ``1 - level · p / p_holm``
  (``1 - level / (m - k + 1)`` when ``p = 0``, at Holm step ``k`` of ``m``). By the duality of the
  t-test and the t interval, it excludes 0 exactly when ``p_holm < level``, i.e. exactly when the
  verdict says better or worse. It is not a simultaneous interval for the whole family
  (:data:`INTERVAL_LABEL`, which every output prints). It is cut to the range the difference can
  take (:func:`~taso_tune.stats.seeds.bounded`), which keeps both its coverage and whether it
  contains 0.
* **Equivalence** is only ever TOST's word (:mod:`taso_tune.stats.equivalence`), at a margin the
  output shows: "equivalent within ±0.5 points" or "not shown equivalent", its p-values
  Holm-adjusted over the same family as the verdicts.

Pure: numpy and scipy through the modules it builds on, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

from taso_tune.core.errors import ConfigError
from taso_tune.stats.equivalence import Equivalence, paired_equivalence
from taso_tune.stats.paired import DEFAULT_LEVEL, holm, paired_difference
from taso_tune.stats.seeds import (
    MISSING_TEXT,
    Interval,
    Mode,
    bounded,
    check_confidence,
    check_mode,
    format_interval,
    t_interval,
)

VerdictWord = Literal["reference", "better", "worse", "no difference shown", "not compared"]
VERDICT_WORDS: tuple[VerdictWord, ...] = (
    "reference",
    "better",
    "worse",
    "no difference shown",
    "not compared",
)
#: The equivalence margin of the outputs: half a point of accuracy, as a fraction.
DEFAULT_MARGIN = 0.005
#: Why a pair whose per-seed differences are all the same non-zero number is not compared.
NO_SPREAD = "the per-seed differences have no spread; the t-test is undefined"
#: What every output calls the interval beside a verdict.
INTERVAL_LABEL = (
    "Holm-adjusted interval (excludes 0 exactly when the verdict says better/worse; "
    "not simultaneous)"
)

__all__ = [
    "DEFAULT_LEVEL",
    "DEFAULT_MARGIN",
    "INTERVAL_LABEL",
    "NO_SPREAD",
    "VERDICT_WORDS",
    "ReferenceComparison",
    "VerdictWord",
    "compare_pairs",
    "compare_to_reference",
    "equivalence_text",
    "format_difference",
    "holm_confidences",
    "paired_verdict",
    "verdict_text",
]


@dataclass(frozen=True)
class ReferenceComparison:
    """One candidate against the reference (:func:`compare_to_reference`).

    ``difference`` is the mean of ``candidate - reference`` over the shared seeds; ``ci_low`` and
    ``ci_high`` its Holm-adjusted interval at ``confidence``; ``p_value`` the paired t-test's and
    ``p_holm`` after Holm's correction; ``equivalence`` the TOST at the stated margin, Holm-adjusted
    over the same family. All are ``None`` for a comparison not made, whose ``reason`` says why.
    """

    verdict: VerdictWord
    n: int
    difference: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    confidence: float | None = None
    p_value: float | None = None
    p_holm: float | None = None
    equivalence: Equivalence | None = None
    reason: str = ""


def paired_verdict(
    adjusted_p: float, difference: float, *, mode: Mode, level: float = DEFAULT_LEVEL
) -> VerdictWord:
    """ "better" / "worse" for ``a`` against ``b`` when ``adjusted_p < level``, else "no difference
    shown".

    ``difference`` is the mean of ``a - b``; its sign means better for ``mode="max"`` when positive,
    for ``mode="min"`` when negative. A NaN p-value shows no difference.
    """
    mode = check_mode(mode)
    level = check_confidence(level, "level")
    if not (adjusted_p < level) or difference == 0.0:
        return "no difference shown"
    a_higher = difference > 0.0
    return "better" if a_higher == (mode == "max") else "worse"


def holm_confidences(p_values: list[float], level: float = DEFAULT_LEVEL) -> list[float]:
    """The confidence of each comparison's Holm-adjusted interval, in the order given:
    ``1 - level · p / p_holm``, or ``1 - level / (m - k + 1)`` for ``p = 0`` at Holm step ``k``
    (1-based, ascending p) of ``m``. Its t interval excludes 0 exactly when ``p_holm < level``."""
    level = check_confidence(level, "level")
    adjusted = holm(p_values)
    m = len(p_values)
    steps = np.empty(m, dtype=int)
    steps[np.argsort(np.asarray(p_values, dtype=float), kind="stable")] = np.arange(1, m + 1)
    out = []
    for p, p_holm, step in zip(p_values, adjusted, steps, strict=True):
        share = p / p_holm if p > 0.0 else 1.0 / (m - int(step) + 1)
        out.append(1.0 - level * share)
    return out


def compare_to_reference(
    reference: Mapping[Hashable, float],
    candidates: Mapping[str, Mapping[Hashable, float]],
    *,
    mode: Mode = "max",
    level: float = DEFAULT_LEVEL,
    bounds: Interval | None = None,
    margin: float | None = None,
) -> dict[str, ReferenceComparison]:
    """The one verdict rule (module docstring): each of ``candidates`` (name -> seed -> value)
    against ``reference`` (seed -> value), paired by seed, Holm-corrected over the candidates
    compared, at ``level``.

    ``mode`` says which way is better (``"max"`` for an accuracy). ``bounds`` is the range a
    difference can take (:data:`~taso_tune.stats.seeds.ACCURACY_DIFFERENCE_RANGE` for an accuracy),
    ``margin`` the TOST margin in the metric's units (``None``: no equivalence test). Score a
    diverged seed at chance level before calling, as every statistic of taso-tune does.
    """
    return compare_pairs(
        {name: (values, reference) for name, values in candidates.items()},
        mode=mode,
        level=level,
        bounds=bounds,
        margin=margin,
    )


def compare_pairs(
    pairs: Mapping[str, tuple[Mapping[Hashable, float], Mapping[Hashable, float]]],
    *,
    mode: Mode = "max",
    level: float = DEFAULT_LEVEL,
    bounds: Interval | None = None,
    margin: float | None = None,
) -> dict[str, ReferenceComparison]:
    """The one verdict rule over a declared family of pairs (name -> (``a``, ``b``), each seed ->
    value): ``a`` against ``b`` for each, paired by seed, Holm-corrected over the pairs compared.
    :func:`compare_to_reference` is the family whose ``b`` is always the reference; a study that
    compares each family with its own baseline (tuned against transferred settings) asks this.

    A pair not run over the same seeds, over fewer than 2, or whose per-seed differences have no
    spread but are not 0 (the t-test is undefined there: its spread is estimated from the missing
    one) is "not compared", with its ``reason``, and is left out of Holm's family. TOST at
    ``margin`` is Holm-adjusted over the same family.
    """
    mode = check_mode(mode)
    level = check_confidence(level, "level")
    if margin is not None and (
        isinstance(margin, bool)
        or not isinstance(margin, (int, float))
        or not (math.isfinite(margin) and margin > 0)
    ):
        raise ConfigError("margin", margin, "must be a finite number > 0")
    out: dict[str, ReferenceComparison] = {}
    tested = {}
    for name, (values, base) in pairs.items():
        if set(values) != set(base):
            out[name] = ReferenceComparison(
                "not compared", len(values), reason="not run over the reference's seeds"
            )
        elif len(values) < 2:
            out[name] = ReferenceComparison(
                "not compared", len(values), reason="fewer than 2 seeds"
            )
        elif (diff := paired_difference(values, base)).undefined:
            out[name] = ReferenceComparison("not compared", diff.n, reason=NO_SPREAD)
        else:
            tested[name] = diff
    names = list(tested)
    p_values = [tested[name].p_value for name in names]
    equivalences: dict[str, Equivalence] = {}
    if margin is not None:
        raw = {name: paired_equivalence(*pairs[name], margin, level) for name in names}
        adjusted = holm([raw[name].p_value for name in names])
        equivalences = {
            name: paired_equivalence(*pairs[name], margin, level, p_holm=p_holm)
            for name, p_holm in zip(names, adjusted, strict=True)
        }
    for name, p_holm, confidence in zip(
        names, holm(p_values), holm_confidences(p_values, level), strict=True
    ):
        diff = tested[name]
        low, high = bounded(t_interval(diff.mean, diff.std, diff.n, confidence), bounds)
        out[name] = ReferenceComparison(
            paired_verdict(p_holm, diff.mean, mode=mode, level=level),
            diff.n,
            difference=diff.mean,
            ci_low=low,
            ci_high=high,
            confidence=confidence,
            p_value=diff.p_value,
            p_holm=p_holm,
            equivalence=equivalences.get(name),
        )
    return {name: out[name] for name in pairs}


# --- formatting ---------------------------------------------------------------------------------


def verdict_text(
    verdict: str,
    *,
    selected_on: str,
    compared_on: str,
    level: float = DEFAULT_LEVEL,
    reason: str = "",
) -> str:
    """A verdict as every output writes it: ``"reference (best on val_acc)"``, ``"better"``,
    ``"worse"``, ``"no difference shown at 5%"``, ``"not compared (why)"``.

    A "better" found on another metric than the one that picked the reference says so: the
    reference was the best on ``selected_on``, and the candidate beats it on ``compared_on``.
    """
    if verdict == "reference":
        return f"reference (best on {selected_on})"
    if verdict == "better" and selected_on != compared_on:
        return f"better (on {compared_on}; the reference was picked on {selected_on})"
    if verdict == "no difference shown":
        return f"no difference shown at {level:.0%}"
    if verdict == "not compared" and reason:
        return f"not compared ({reason})"
    return verdict


def format_difference(
    difference: float | None,
    low: float | None,
    high: float | None,
    scale: float = 100.0,
    digits: int = 2,
) -> str:
    """A difference with its Holm-adjusted interval: ``"+0.93 [+0.10, +1.50]"`` (points, for an
    accuracy); ``"—"`` without one."""
    interval = format_interval(low, high, scale, digits, signed=True)
    if difference is None or (isinstance(difference, float) and math.isnan(difference)):
        return interval
    return f"{difference * scale:+.{digits}f} {interval}"


def equivalence_text(equivalence: Equivalence | None, scale: float = 100.0) -> str:
    """TOST's answer as every output writes it, the margin shown: ``"equivalent within ±0.5 points
    (TOST p=0.004, n=5)"`` or ``"not shown equivalent within ±0.5 points (...)"``; ``"—"`` without
    one. ``scale=100`` writes an accuracy's margin in points."""
    if not isinstance(equivalence, Equivalence):  # None, or a table's empty cell
        return MISSING_TEXT
    return equivalence.describe(" points" if scale == 100.0 else "", scale)
