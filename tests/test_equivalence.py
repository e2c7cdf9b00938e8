"""TOST (two one-sided t-tests) against golden values.

The golden values are worked out by hand for the differences d = a - b = (0.1, -0.2, 0.3, -0.2, 0.1):
mean 0.02, sample std sqrt(0.188 / 4) = 0.2167948, standard error 0.2167948 / sqrt(5) = 0.0969536,
4 degrees of freedom. Margin 0.5: t = (0.02 + 0.5) / se = 5.363390 and (0.02 - 0.5) / se = -4.950822,
one-sided p-values 0.0029165 and 0.0038783 (Student's t with 4 df), TOST p = 0.0038783 < 0.05:
equivalent. Margin 0.1: t = 1.237705 and -0.825137, p = 0.1417555 and 0.2278298: not shown
equivalent. The 90% interval is 0.02 -+ 2.1318468 x se = [-0.1866902, 0.2266902]: inside (-0.5, 0.5),
not inside (-0.1, 0.1), as the tests say.
"""

from __future__ import annotations

import pytest

from taso_tune.core.errors import ConfigError
from taso_tune.stats.equivalence import paired_equivalence

A = [90.1, 89.7, 90.4, 90.0, 89.9]
B = [90.0, 89.9, 90.1, 90.2, 89.8]


def test_tost_equivalent_within_a_wide_margin():
    result = paired_equivalence(A, B, margin=0.5)
    assert result.n == 5
    assert result.mean == pytest.approx(0.02, abs=1e-12)
    assert result.p_value == pytest.approx(0.0038783291, rel=1e-6)
    assert (result.ci_low, result.ci_high) == pytest.approx((-0.1866902145, 0.2266902145), rel=1e-6)
    assert result.equivalent
    assert result.describe(" points") == "equivalent within ±0.5 points (TOST p=0.00388, n=5)"


def test_tost_not_shown_equivalent_within_a_narrow_margin():
    result = paired_equivalence(A, B, margin=0.1)
    assert result.p_value == pytest.approx(0.2278297700, rel=1e-6)
    assert not result.equivalent
    assert result.describe().startswith("not shown equivalent within ±0.1 (TOST p=0.228")


def test_tost_is_symmetric_and_pairs_by_seed():
    forward = paired_equivalence(
        dict(zip("abcde", A, strict=True)), dict(zip("abcde", B, strict=True)), 0.5
    )
    backward = paired_equivalence(B, A, 0.5)
    assert forward.p_value == pytest.approx(backward.p_value)
    assert backward.mean == pytest.approx(-0.02)


def test_tost_with_no_spread_is_decided_by_the_margin():
    assert paired_equivalence([1.0, 1.0, 1.0], [0.9, 0.9, 0.9], 0.2).equivalent
    assert not paired_equivalence([1.0, 1.0, 1.0], [0.5, 0.5, 0.5], 0.2).equivalent


@pytest.mark.parametrize("margin", [0, -0.5, float("inf"), float("nan"), True, "0.5"])
def test_tost_margin_must_be_positive_and_finite(margin):
    with pytest.raises(ConfigError, match="^margin: must be a finite number > 0"):
        paired_equivalence(A, B, margin)


@pytest.mark.parametrize("level", [0, 0.5, 1.2])
def test_tost_level_must_be_below_a_half(level):
    with pytest.raises(ConfigError, match="^level: must be in"):
        paired_equivalence(A, B, 0.5, level=level)
