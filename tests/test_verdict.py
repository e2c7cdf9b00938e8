"""The one verdict rule against values computed here step by step with scipy, and the property that
makes its interval honest: it excludes 0 exactly when the verdict says better or worse.

The golden case: a reference over seeds 0-3 and three candidates over the same seeds.

- ``up``: differences +0.01, +0.02, +0.02, +0.03: mean 0.02, std sqrt(0.0002 / 3);
- ``mixed``: differences -0.10, +0.05, -0.02, +0.03: mean -0.01, std sqrt(0.0134 / 3);
- ``close``: differences +0.001, -0.001, +0.0005, -0.0005: mean 0, std sqrt(2.5e-6 / 3).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from taso_tune.core.errors import ConfigError
from taso_tune.stats.equivalence import paired_equivalence
from taso_tune.stats.seeds import ACCURACY_DIFFERENCE_RANGE
from taso_tune.stats.verdict import (
    INTERVAL_LABEL,
    compare_to_reference,
    equivalence_text,
    format_difference,
    holm_confidences,
    verdict_text,
)

REFERENCE = {0: 0.90, 1: 0.92, 2: 0.94, 3: 0.96}
DIFFERENCES = {
    "up": [0.01, 0.02, 0.02, 0.03],
    "mixed": [-0.10, 0.05, -0.02, 0.03],
    "close": [0.001, -0.001, 0.0005, -0.0005],
}
CANDIDATES = {
    name: {seed: REFERENCE[seed] + d for seed, d in zip(REFERENCE, diffs, strict=True)}
    for name, diffs in DIFFERENCES.items()
}


def _by_hand(name: str) -> tuple[float, float, float]:
    """Mean, sample std and paired t-test p-value of a candidate's differences."""
    d = np.array(DIFFERENCES[name])
    x = np.array(list(CANDIDATES[name].values()))
    y = np.array(list(REFERENCE.values()))
    return float(d.mean()), float(d.std(ddof=1)), float(stats.ttest_rel(x, y).pvalue)


def test_golden_values_of_the_one_rule() -> None:
    found = compare_to_reference(
        REFERENCE, CANDIDATES, bounds=ACCURACY_DIFFERENCE_RANGE, margin=0.005
    )
    assert list(found) == ["up", "mixed", "close"]
    mean_up, std_up, p_up = _by_hand("up")
    mean_mixed, std_mixed, p_mixed = _by_hand("mixed")
    mean_close, std_close, p_close = _by_hand("close")
    assert std_up == pytest.approx(math.sqrt(0.0002 / 3))
    assert std_mixed == pytest.approx(math.sqrt(0.0134 / 3))
    assert std_close == pytest.approx(math.sqrt(2.5e-6 / 3))
    # Holm over three: ascending up < mixed < close (p about 0.016, 0.78 and 1: close's mean is 0),
    # times 3, 2 and 1, made monotone and capped at 1
    assert p_up < p_mixed < p_close == pytest.approx(1.0)
    holm_up = 3 * p_up
    holm_mixed = min(1.0, max(holm_up, 2 * p_mixed))
    holm_close = min(1.0, max(holm_mixed, p_close))
    assert found["up"].p_holm == pytest.approx(holm_up)
    assert found["mixed"].p_holm == pytest.approx(holm_mixed)
    assert found["close"].p_holm == pytest.approx(holm_close)
    # the verdicts at 5%: 3 · 0.016 < 0.05
    assert holm_up < 0.05
    assert [found[n].verdict for n in CANDIDATES] == [
        "better",
        "no difference shown",
        "no difference shown",
    ]
    # the interval at 1 - 0.05 · p / p_holm: up's is the 1 - 0.05 / 3 interval
    for name, mean, std, p, p_holm in (
        ("up", mean_up, std_up, p_up, holm_up),
        ("mixed", mean_mixed, std_mixed, p_mixed, holm_mixed),
        ("close", mean_close, std_close, p_close, holm_close),
    ):
        confidence = 1 - 0.05 * p / p_holm
        half = stats.t.ppf((1 + confidence) / 2, 3) * std / 2
        comparison = found[name]
        assert comparison.confidence == pytest.approx(confidence)
        assert (comparison.ci_low, comparison.ci_high) == (
            pytest.approx(mean - half),
            pytest.approx(mean + half),
        )
        assert comparison.difference == pytest.approx(mean) and comparison.n == 4
        assert comparison.p_value == pytest.approx(p)
    assert found["up"].confidence == pytest.approx(1 - 0.05 / 3)
    assert found["up"].ci_low > 0  # better: the interval excludes 0
    assert found["mixed"].ci_low < 0 < found["mixed"].ci_high
    # TOST at ±0.005: only "close" is shown equivalent (its p by hand: t = 0.005 / se)
    se_close = std_close / 2
    p_tost = max(
        stats.t.sf((mean_close + 0.005) / se_close, 3),
        stats.t.cdf((mean_close - 0.005) / se_close, 3),
    )
    assert found["close"].equivalence.p_value == pytest.approx(p_tost)
    assert found["close"].equivalence.equivalent
    assert not found["up"].equivalence.equivalent
    # TOST is Holm-adjusted over the same family of three: close's p is the smallest, tripled
    raw = {n: paired_equivalence(CANDIDATES[n], REFERENCE, 0.005).p_value for n in CANDIDATES}
    assert raw["close"] < min(raw["up"], raw["mixed"])
    assert found["close"].equivalence.p_holm == pytest.approx(3 * p_tost)
    assert found["close"].equivalence == paired_equivalence(
        CANDIDATES["close"], REFERENCE, 0.005, p_holm=found["close"].equivalence.p_holm
    )
    assert "TOST Holm-adjusted p=" in equivalence_text(found["close"].equivalence)


def test_tost_is_holm_adjusted_over_the_family() -> None:
    # one candidate alone is equivalent at its raw TOST p; among four comparisons Holm multiplies
    # its p by 4, which no longer clears 5%, and its interval widens past the margin to match
    reference = {0: 0.90, 1: 0.92, 2: 0.94, 3: 0.96}
    near = {
        s: v + d for (s, v), d in zip(reference.items(), [0.003, -0.001, 0.004, 0.0], strict=True)
    }
    alone = compare_to_reference(reference, {"near": near}, margin=0.005)["near"].equivalence
    assert alone.equivalent and 0.0125 < alone.p_value < 0.05
    others = {
        f"far{i}": {s: v - 0.05 - 0.01 * i + 0.001 * s for s, v in reference.items()}
        for i in range(3)
    }
    family = compare_to_reference(reference, {"near": near, **others}, margin=0.005)
    tost = family["near"].equivalence
    assert tost.p_value == pytest.approx(alone.p_value)
    assert tost.p_holm == pytest.approx(min(1.0, 4 * alone.p_value)) and not tost.equivalent
    assert tost.ci_low <= -0.005 or tost.ci_high >= 0.005  # the matching interval leaves the margin
    assert alone.ci_low > -0.005 and alone.ci_high < 0.005
    assert "not shown equivalent within ±0.5 points (TOST Holm-adjusted p=" in equivalence_text(
        tost
    )


def test_differences_without_spread_are_not_compared() -> None:
    # three seeds each exactly one test image (of 10,000) apart: the differences are one number up
    # to rounding, the t statistic 0/0 or a rounding artefact, and the t-test undefined
    reference = {0: 0.9012, 1: 0.9137, 2: 0.8954}
    one_image = {s: round(v + 0.0001, 4) for s, v in reference.items()}
    found = compare_to_reference(
        reference,
        {
            "one_image": one_image,
            "mixed": {
                s: v + d for (s, v), d in zip(reference.items(), [-0.1, 0.05, 0.02], strict=True)
            },
        },
        bounds=ACCURACY_DIFFERENCE_RANGE,
        margin=0.005,
    )
    apart = found["one_image"]
    assert apart.verdict == "not compared" and apart.p_value is None and apart.ci_low is None
    assert apart.reason == "the per-seed differences have no spread; the t-test is undefined"
    assert verdict_text(
        apart.verdict, selected_on="val_acc", compared_on="test_acc", reason=apart.reason
    ) == ("not compared (the per-seed differences have no spread; the t-test is undefined)")
    assert found["mixed"].p_holm == pytest.approx(found["mixed"].p_value)  # a family of one
    # identical values: differences of 0, "no difference shown" (p = 1)
    same = compare_to_reference(reference, {"same": dict(reference)})["same"]
    assert same.verdict == "no difference shown" and same.p_value == 1.0
    assert (same.ci_low, same.ci_high) == (0.0, 0.0)


def test_a_p_value_of_zero_takes_the_holm_step_confidence() -> None:
    assert holm_confidences([0.0, 0.0, 0.5]) == [
        pytest.approx(1 - 0.05 / 3),
        pytest.approx(1 - 0.05 / 2),
        pytest.approx(0.95),
    ]


def test_the_interval_excludes_0_exactly_when_the_verdict_says_better_or_worse() -> None:
    rng = np.random.default_rng(2024)
    checked = {"better": 0, "worse": 0, "no difference shown": 0}
    for _ in range(1500):
        seeds = range(int(rng.integers(2, 8)))
        reference = {s: float(rng.uniform(0.5, 0.99)) for s in seeds}
        shift = rng.normal(0, 0.02, size=int(rng.integers(1, 6)))
        candidates = {
            f"c{i}": {s: v + float(rng.normal(mu, 0.015)) for s, v in reference.items()}
            for i, mu in enumerate(shift)
        }
        mode = "max" if rng.random() < 0.5 else "min"
        found = compare_to_reference(
            reference, candidates, mode=mode, bounds=ACCURACY_DIFFERENCE_RANGE
        )
        for comparison in found.values():
            excludes_zero = comparison.ci_low > 0 or comparison.ci_high < 0
            assert excludes_zero == (comparison.verdict in ("better", "worse")), comparison
            assert -1 <= comparison.ci_low <= comparison.difference <= comparison.ci_high <= 1
            checked[comparison.verdict] += 1
    assert min(checked.values()) > 50  # every verdict was exercised


def test_not_compared_when_the_seeds_differ_or_are_too_few() -> None:
    found = compare_to_reference(
        REFERENCE,
        {"other_seeds": {s + 10: v for s, v in REFERENCE.items()}, "up": CANDIDATES["up"]},
    )
    assert found["other_seeds"].verdict == "not compared"
    assert found["other_seeds"].reason == "not run over the reference's seeds"
    assert found["other_seeds"].p_holm is None and found["other_seeds"].ci_low is None
    # only the comparison made enters Holm's family: one test, no correction
    assert found["up"].p_holm == pytest.approx(found["up"].p_value)
    one = compare_to_reference({0: 0.9}, {"a": {0: 0.8}})
    assert one["a"].verdict == "not compared" and one["a"].reason == "fewer than 2 seeds"
    with pytest.raises(ConfigError, match="^margin:"):
        compare_to_reference(REFERENCE, CANDIDATES, margin=0)
    with pytest.raises(ConfigError, match="^mode:"):
        compare_to_reference(REFERENCE, CANDIDATES, mode="up")  # type: ignore[arg-type]


def test_one_wording_of_the_verdicts() -> None:
    kw = {"selected_on": "val_acc", "compared_on": "test_acc"}
    assert verdict_text("reference", **kw) == "reference (best on val_acc)"
    assert (
        verdict_text("better", **kw) == "better (on test_acc; the reference was picked on val_acc)"
    )
    assert verdict_text("better", selected_on="test_acc", compared_on="test_acc") == "better"
    assert verdict_text("worse", **kw) == "worse"
    assert verdict_text("no difference shown", **kw) == "no difference shown at 5%"
    assert verdict_text("not compared", reason="fewer than 2 seeds", **kw) == (
        "not compared (fewer than 2 seeds)"
    )
    assert format_difference(0.0093, 0.0053, 0.0132) == "+0.93 [+0.53, +1.32]"
    assert format_difference(-0.01, -0.02, 0.001) == "-1.00 [-2.00, +0.10]"
    assert format_difference(None, None, None) == "—"
    equivalent = paired_equivalence(CANDIDATES["close"], REFERENCE, 0.005)
    assert equivalence_text(equivalent).startswith("equivalent within ±0.5 points (TOST p=")
    assert equivalence_text(None) == "—"
    assert "excludes 0 exactly when the verdict says better/worse; not simultaneous" in (
        INTERVAL_LABEL
    )
    for word in ("tie", "same"):
        assert word not in INTERVAL_LABEL
