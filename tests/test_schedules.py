"""The pure learning-rate schedules: hand-computed golden values from Eq. (1), properties, errors."""

from __future__ import annotations

import math
import subprocess
import sys
import warnings
from itertools import pairwise
from typing import Any

import pytest

from taso_tune.errors import ConfigError
from taso_tune.schedules import SCHEDULES, check_taso_params, get_schedule, taso_lr

ALL_SCHEDULES = sorted(SCHEDULES)

# --- golden values --------------------------------------------------------------------------------
# Eq. (1) with lr_initial 0.05, alpha 25, beta 0.7, k_t 100, lr_final = 0.05 / 20 = 0.0025:
#   k=1:   z = 25 * (1/100 - 0.7)   = -17.25, exp(z) = 3.2241867e-08
#          lr = 0.05 / (1 + 3.2241867e-08) + 0.0025 = 0.0524999983879...
#   k=50:  z = 25 * (0.5 - 0.7)     = -5,     exp(z) = 0.006737947
#          lr = 0.05 / 1.006737947 + 0.0025 = 0.0521653574...
#   k=70:  z = 0                             -> lr = 0.05 / 2 + 0.0025 = 0.0275 exactly
#   k=80:  z = 25 * 0.1 = 2.5,       exp(z) = 12.182493961
#          lr = 0.05 / 13.182493961 + 0.0025 = 0.0062929090...
#   k=100: z = 25 * 0.3 = 7.5,       exp(z) = 1808.0424145
#          lr = 0.05 / 1809.0424145 + 0.0025 = 0.0025276389...
TASO_GOLDEN = [
    (1, 0.052499998387906685),
    (50, 0.05216535745378577),
    (70, 0.0275),
    (80, 0.0062929090010621705),
    (100, 0.00252763893184618),
]


@pytest.mark.parametrize(("epoch", "expected"), TASO_GOLDEN)
def test_taso_golden_values(epoch: int, expected: float) -> None:
    got = taso_lr(epoch, 100, lr_initial=0.05, alpha=25, beta=0.7)
    assert got == pytest.approx(expected, rel=1e-12)


def test_taso_default_lr_final_is_a_twentieth_and_explicit_lr_final_is_added() -> None:
    # at k = beta * k_t the sigmoid is exactly 1/2
    assert taso_lr(70, 100, lr_initial=0.05) == pytest.approx(0.025 + 0.0025, rel=1e-15)
    assert taso_lr(70, 100, lr_initial=0.05, lr_final=0.0) == pytest.approx(0.025, rel=1e-15)
    assert taso_lr(70, 100, lr_initial=0.05, lr_final=0.01) == pytest.approx(0.035, rel=1e-15)


def test_taso_golden_alpha10_beta05() -> None:
    # 10 epochs, lr_initial 1, lr_final 0: k=1 -> 1/(1+exp(10*(0.1-0.5))) = 1/(1+e^-4) = 0.98201379
    #                                      k=10 -> 1/(1+exp(10*(1-0.5)))  = 1/(1+e^5)  = 0.00669285
    kw: dict[str, Any] = {"lr_initial": 1.0, "lr_final": 0.0, "alpha": 10, "beta": 0.5}
    assert taso_lr(1, 10, **kw) == pytest.approx(0.9820137900379085, rel=1e-12)
    assert taso_lr(10, 10, **kw) == pytest.approx(0.0066928509242848554, rel=1e-12)


# Other schedules, lr_initial 0.1; progress p = (k - 1) / k_t.
OTHER_GOLDEN = [
    # cosine, k_t 10: p=0 -> 0.1; p=0.5 -> 0.05; p=0.9 -> 0.05 * (1 + cos(0.9 pi)) = 0.0024471742
    ("cosine", 10, {}, 1, 0.1),
    ("cosine", 10, {}, 6, 0.05),
    ("cosine", 10, {}, 10, 0.0024471741852423),
    ("cosine", 10, {"lr_final": 0.01}, 6, 0.055),
    # linear, k_t 10: 0.1 * (1 - p)
    ("linear", 10, {}, 1, 0.1),
    ("linear", 10, {}, 10, 0.01),
    ("linear", 10, {"lr_final": 0.02}, 6, 0.06),
    # step, k_t 100, milestones (0.5, 0.75), gamma 0.1
    ("step", 100, {}, 50, 0.1),
    ("step", 100, {}, 51, 0.01),
    ("step", 100, {}, 76, 0.001),
    # wsd, k_t 100, warmup 0.05, decay 0.2: warmup lr = 0.1 * (p + 0.01) / 0.06
    ("wsd", 100, {}, 1, 0.1 * 0.01 / 0.06),
    ("wsd", 100, {}, 5, 0.1 * 0.05 / 0.06),
    ("wsd", 100, {}, 6, 0.1),
    ("wsd", 100, {}, 81, 0.1),
    ("wsd", 100, {}, 100, 0.005),  # p = 0.99 -> q = 0.95 -> 0.1 * 0.05
    ("constant", 7, {}, 7, 0.1),
]


@pytest.mark.parametrize(("name", "total", "params", "epoch", "expected"), OTHER_GOLDEN)
def test_other_schedules_golden_values(
    name: str, total: int, params: dict[str, Any], epoch: int, expected: float
) -> None:
    got = get_schedule(name)(epoch, total, lr_initial=0.1, **params)
    assert got == pytest.approx(expected, rel=1e-9)


# --- properties over every schedule ----------------------------------------------------------------


def _curve(name: str, total: int, points_per_epoch: int = 1) -> list[float]:
    fn = get_schedule(name)
    steps = range(1, total * points_per_epoch + 1)
    return [fn(s / points_per_epoch, total, lr_initial=0.05) for s in steps]


@pytest.mark.parametrize("name", ALL_SCHEDULES)
@pytest.mark.parametrize("total", [1, 2, 7, 100])
def test_every_schedule_is_positive_and_finite(name: str, total: int) -> None:
    for lr in _curve(name, total, points_per_epoch=3):
        assert math.isfinite(lr)
        assert lr > 0


@pytest.mark.parametrize("name", ALL_SCHEDULES)
def test_every_schedule_starts_at_lr_initial_scale_and_never_exceeds_it(name: str) -> None:
    lrs = _curve(name, 100)
    # TASO adds lr_final on top of the sigmoid, so its first value is lr_initial + lr_initial/20
    ceiling = 0.05 * (1 + 1 / 20) if name == "taso" else 0.05
    assert max(lrs) <= ceiling * (1 + 1e-12)


@pytest.mark.parametrize("name", ALL_SCHEDULES)
@pytest.mark.parametrize("total", [3, 10, 100])
def test_every_schedule_is_non_increasing_after_warmup(name: str, total: int) -> None:
    lrs = _curve(name, total, points_per_epoch=4)
    peak = lrs.index(max(lrs))
    # only wsd warms up (5% of the run by default); every other schedule peaks at the start
    if name == "wsd":
        assert peak <= math.ceil(0.05 * total + 1) * 4
        assert lrs[: peak + 1] == sorted(lrs[: peak + 1])
    else:
        assert peak == 0
    after = lrs[peak:]
    assert all(b <= a for a, b in pairwise(after)), after


@pytest.mark.parametrize("name", ["cosine", "linear", "step", "wsd"])
def test_decaying_schedules_end_well_below_their_start(name: str) -> None:
    lrs = _curve(name, 100)
    assert lrs[-1] < 0.1 * max(lrs)


def test_taso_is_strictly_decreasing() -> None:
    lrs = _curve("taso", 100, points_per_epoch=2)
    assert all(b < a for a, b in pairwise(lrs))


# Eqs. (2)-(7): with alpha*beta > 6 and alpha*(1-beta) > 6 the sigmoid part of eps(k) is within 5% of
# lr_initial at k=1 and within 5% of zero at k=k_t, i.e. lr(1) ~ lr_initial + lr_final, lr(k_t) ~ lr_final.
HEURISTIC_PAIRS = [
    (a, b)
    for a in (10, 25, 50, 100, 1000)
    for b in (0.1, 0.3, 0.5, 0.7, 0.9)
    if a * b > 6 and a * (1 - b) > 6
]


@pytest.mark.parametrize(("alpha", "beta"), HEURISTIC_PAIRS)
def test_taso_endpoints_within_five_percent_when_heuristic_holds(alpha: float, beta: float) -> None:
    lr_initial, lr_final, total = 0.05, 0.0025, 100
    first = taso_lr(1, total, lr_initial=lr_initial, lr_final=lr_final, alpha=alpha, beta=beta)
    last = taso_lr(total, total, lr_initial=lr_initial, lr_final=lr_final, alpha=alpha, beta=beta)
    assert abs(first - (lr_initial + lr_final)) < 0.05 * lr_initial
    assert abs(last - lr_final) < 0.05 * lr_initial
    assert last >= lr_final


def test_taso_endpoint_drifts_when_heuristic_fails() -> None:
    # alpha 10, beta 0.3: alpha*beta = 3 < 6; at k=1 the sigmoid is 1/(1+exp(10*(0.01-0.3))) = 0.9478,
    # more than 5% below lr_initial
    sigmoid_first = taso_lr(1, 100, lr_initial=1.0, lr_final=0.0, alpha=10, beta=0.3)
    assert sigmoid_first == pytest.approx(1 / (1 + math.exp(-2.9)), rel=1e-12)
    assert sigmoid_first < 0.95


def test_taso_is_safe_for_huge_alpha() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_taso_params(1e6, 0.7)
        lrs = [taso_lr(k, 100, lr_initial=0.05, alpha=1e6, beta=0.7) for k in range(1, 101)]
        tiny = taso_lr(1, 100, lr_initial=0.05, alpha=1e300, beta=0.5)
    assert all(math.isfinite(lr) for lr in lrs + [tiny])
    # a step function: lr_initial + lr_final before beta * k_t, exactly half at it, lr_final after
    assert lrs[0] == pytest.approx(0.0525, rel=1e-15)
    assert lrs[69] == pytest.approx(0.0275, rel=1e-15)
    assert lrs[70] == pytest.approx(0.0025, rel=1e-15)
    assert lrs[99] == pytest.approx(0.0025, rel=1e-15)


# --- errors ---------------------------------------------------------------------------------------

VALID_TASO: dict[str, Any] = {
    "epoch": 1,
    "total_epochs": 100,
    "lr_initial": 0.05,
    "lr_final": 0.0025,
    "alpha": 25.0,
    "beta": 0.7,
}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("alpha", 0.0),
        ("alpha", -1.0),
        ("alpha", math.nan),
        ("beta", 0.0),
        ("beta", -0.2),
        ("beta", 1.0),
        ("beta", 1.5),
        ("lr_initial", 0.0),
        ("lr_initial", -0.05),
        ("lr_final", -1e-9),
        ("total_epochs", 0),
        ("total_epochs", -3),
        ("epoch", -1),
    ],
)
def test_taso_rejects_each_invalid_field_by_name(field: str, value: float) -> None:
    kwargs = {**VALID_TASO, field: value}
    epoch, total = kwargs.pop("epoch"), kwargs.pop("total_epochs")
    with pytest.raises(ConfigError, match=field) as info:
        taso_lr(epoch, total, **kwargs)
    assert info.value.field == field


@pytest.mark.parametrize("name", ALL_SCHEDULES)
@pytest.mark.parametrize(("field", "value"), [("lr_initial", 0.0), ("total_epochs", 0)])
def test_every_schedule_rejects_bad_common_fields(name: str, field: str, value: float) -> None:
    kwargs: dict[str, Any] = {"lr_initial": 0.1, "total_epochs": 10, field: value}
    with pytest.raises(ConfigError, match=field):
        get_schedule(name)(1, kwargs.pop("total_epochs"), **kwargs)


@pytest.mark.parametrize(
    ("name", "field", "value"),
    [
        ("cosine", "lr_final", -0.1),
        ("linear", "lr_final", -0.1),
        ("step", "gamma", 0.0),
        ("step", "gamma", 2.0),
        ("step", "milestones", (0.5, 1.5)),
        ("wsd", "warmup", 1.0),
        ("wsd", "decay", 0.0),
        ("wsd", "lr_final", -0.1),
    ],
)
def test_schedule_specific_fields_are_validated(name: str, field: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=field):
        get_schedule(name)(1, 10, lr_initial=0.1, **{field: value})


@pytest.mark.parametrize(("alpha", "beta", "field"), [(0, 0.7, "alpha"), (25, 0, "beta"), (25, 1, "beta")])
def test_check_taso_params_rejects_bad_values(alpha: float, beta: float, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        check_taso_params(alpha, beta)


def test_unknown_schedule_lists_choices() -> None:
    with pytest.raises(ConfigError, match="schedule") as info:
        get_schedule("exponential")
    assert info.value.choices == ALL_SCHEDULES
    for name in ALL_SCHEDULES:
        assert name in str(info.value)


# --- the paper's heuristic ------------------------------------------------------------------------


@pytest.mark.parametrize(("alpha", "beta"), [(10, 0.3), (10, 0.7), (5, 0.5)])
def test_heuristic_warning_when_violated(alpha: float, beta: float) -> None:
    with pytest.warns(UserWarning, match="heuristic"):
        check_taso_params(alpha, beta)


@pytest.mark.parametrize(("alpha", "beta"), [(25, 0.7), (25, 0.3), (50, 0.5)])
def test_no_heuristic_warning_for_conforming_pairs(alpha: float, beta: float) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_taso_params(alpha, beta)


def test_schedule_maths_imports_no_torch() -> None:
    code = "import sys, taso_tune, taso_tune.schedules; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
