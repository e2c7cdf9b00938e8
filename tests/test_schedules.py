"""The pure learning-rate schedules: hand-computed golden values from Eq. (1), properties, errors."""

from __future__ import annotations

import math
import subprocess
import sys
import warnings
from itertools import pairwise
from typing import Any

import pytest

from taso_tune.core.errors import ConfigError
from taso_tune.schedules.maths import (
    SCHEDULES,
    check_schedule_params,
    check_taso_params,
    get_schedule,
    plan_progress,
    schedule_parameters,
    schedule_table,
    taso_lr,
    wsd_lr,
)

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


# --- golden values for every schedule on two small plans ------------------------------------------
# lr_initial 1 (so each value reads as a multiple of it), every other parameter at its default.
# Plan A: 4 epochs updated per epoch, U = 4 updates. Plan B: 2 epochs x 3 steps updated per step,
# U = 6 updates. The annealing schedules run on progress p = (u - 1) / (U - 1):
#   plan A: p = 0, 1/3, 2/3, 1            plan B: p = 0, 0.2, 0.4, 0.6, 0.8, 1
#
# taso, k/k_t = u/U, lr_final = 1/20 = 0.05, lr = 1 / (1 + exp(25 (u/U - 0.7))) + 0.05:
#   A: z = -11.25, -5, 1.25, 7.5; exp(z) = 1.30073e-5, 6.73795e-3, 3.49034, 1808.04
#      -> 1.0499869929, 1.0433071491, 0.2727001388, 0.0505527786
#   B: z = -13.333, -9.1667, -5, -0.8333, 3.3333, 7.5; exp(z) = 1.61960e-6, 1.04464e-4, 6.73795e-3,
#      0.434598, 28.0316, 1808.04 -> 1.0499983804, 1.0498955468, 1.0433071491, 0.7470592840,
#      0.0844451957, 0.0505527786
# cosine, lr_final 0, lr = (1 + cos(pi p)) / 2:
#   A: (1 + 1)/2, (1 + 1/2)/2, (1 - 1/2)/2, 0 = 1, 0.75, 0.25, 0
#   B: cos(0.2 pi) = 0.80901699, cos(0.4 pi) = 0.30901699 -> 1, 0.90450850, 0.65450850, 0.34549150,
#      0.09549150, 0
# linear, lr_final 0, lr = 1 - p: A: 1, 2/3, 1/3, 0; B: 1, 0.8, 0.6, 0.4, 0.2, 0
# step, milestones (0.5, 0.75), gamma 0.1: milestones passed (p >= m) A: 0, 0, 1, 2; B: 0, 0, 0, 1, 2, 2
# wsd, warmup 0.05, decay 0.2, placed on the U - 1 intervals and rounded to whole updates:
#   A: decay round(0.2 * 3 = 0.6) = 1 update, warmup round(0.15) = 0 -> 1, 1, 1, 0
#   B: decay round(0.2 * 5 = 1.0) = 1 update, warmup round(0.25) = 0 -> 1, 1, 1, 1, 1, 0
GOLDEN_PLANS: list[tuple[str, int, list[float]]] = [
    (
        "taso",
        4,
        [
            1.049986992871533524,
            1.0433071490757151444,
            0.272700138825308853,
            0.050552778636923599516,
        ],
    ),
    (
        "taso",
        6,
        [
            1.0499983804058307769,
            1.0498955467677857685,
            1.0433071490757151444,
            0.74705928396540727928,
            0.084445195666211173098,
            0.050552778636923599516,
        ],
    ),
    ("constant", 4, [1.0, 1.0, 1.0, 1.0]),
    ("constant", 6, [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]),
    ("cosine", 4, [1.0, 0.75, 0.25, 0.0]),
    (
        "cosine",
        6,
        [
            1.0,
            0.90450849718747371,
            0.65450849718747371,
            0.34549150281252629,
            0.095491502812526288,
            0.0,
        ],
    ),
    ("linear", 4, [1.0, 2 / 3, 1 / 3, 0.0]),
    ("linear", 6, [1.0, 0.8, 0.6, 0.4, 0.2, 0.0]),
    ("step", 4, [1.0, 1.0, 0.1, 0.01]),
    ("step", 6, [1.0, 1.0, 1.0, 0.1, 0.01, 0.01]),
    ("wsd", 4, [1.0, 1.0, 1.0, 0.0]),
    ("wsd", 6, [1.0, 1.0, 1.0, 1.0, 1.0, 0.0]),
]


@pytest.mark.parametrize(("name", "total", "expected"), GOLDEN_PLANS)
def test_every_schedule_golden_values_on_small_plans(
    name: str, total: int, expected: list[float]
) -> None:
    fn = get_schedule(name)
    got = [fn(u, total, lr_initial=1.0) for u in range(1, total + 1)]
    assert got == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_schedule_table_lays_the_plans_out_by_epoch_and_step() -> None:
    # plan A per epoch: step is None; plan B per step: (epoch, step) = (1,1) (1,2) (1,3) (2,1) (2,2) (2,3)
    rows = schedule_table("linear", 4, lr_initial=1.0)
    assert [(e, s) for e, s, _ in rows] == [(1, None), (2, None), (3, None), (4, None)]
    assert [lr for _, _, lr in rows] == pytest.approx([1.0, 2 / 3, 1 / 3, 0.0])
    rows = schedule_table("linear", 2, lr_initial=1.0, steps_per_epoch=3)
    assert [(e, s) for e, s, _ in rows] == [(1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (2, 3)]
    assert [lr for _, _, lr in rows] == pytest.approx([1.0, 0.8, 0.6, 0.4, 0.2, 0.0])
    # TASO per epoch is Eq. (1) at k = 1..k_t exactly; per step the same function at u / U
    assert [lr for *_, lr in schedule_table("taso", 100, lr_initial=0.05)][69] == 0.0275
    taso_b = [lr for *_, lr in schedule_table("taso", 2, lr_initial=1.0, steps_per_epoch=3)]
    assert taso_b == pytest.approx(GOLDEN_PLANS[1][2], rel=1e-12)


# Non-default parameters, lr_initial 0.1.
OTHER_GOLDEN = [
    # cosine over U = 11 (p = 0.1 steps), lr_final 0.01: 0.01 + 0.09 (1 + cos(pi p)) / 2
    ("cosine", 11, {"lr_final": 0.01}, 6, 0.055),  # p = 0.5: 0.01 + 0.045
    ("cosine", 11, {"lr_final": 0.01}, 11, 0.01),
    # linear over U = 6, lr_final 0.02: 0.02 + 0.08 (1 - p)
    ("linear", 6, {"lr_final": 0.02}, 2, 0.084),  # p = 0.2
    ("linear", 6, {"lr_final": 0.02}, 6, 0.02),
    # step over U = 101 (p = (u - 1) / 100): milestones (0.3, 0.6), gamma 0.5
    ("step", 101, {"milestones": (0.3, 0.6), "gamma": 0.5}, 30, 0.1),  # p = 0.29
    (
        "step",
        101,
        {"milestones": (0.3, 0.6), "gamma": 0.5},
        31,
        0.05,
    ),  # p = 0.30, the milestone itself
    ("step", 101, {"milestones": (0.3, 0.6), "gamma": 0.5}, 61, 0.025),
    ("step", 101, {"milestones": (0.3, 0.6), "gamma": 0.5}, 101, 0.025),
    # wsd over U = 6 (5 intervals), warmup 0.25, decay 0.5, lr_final 0.01:
    #   decay round(2.5) = 3 updates (u = 4, 5, 6), warmup round(1.25) = 1 update (u = 1), peak u = 2..3
    #   u=1: 0.1 * 1/2 = 0.05; u=2,3: 0.1; u=4: 0.01 + 0.09 * 2/3 = 0.07; u=5: 0.04; u=6: 0.01
    ("wsd", 6, {"warmup": 0.25, "decay": 0.5, "lr_final": 0.01}, 1, 0.05),
    ("wsd", 6, {"warmup": 0.25, "decay": 0.5, "lr_final": 0.01}, 2, 0.1),
    ("wsd", 6, {"warmup": 0.25, "decay": 0.5, "lr_final": 0.01}, 3, 0.1),
    ("wsd", 6, {"warmup": 0.25, "decay": 0.5, "lr_final": 0.01}, 4, 0.07),
    ("wsd", 6, {"warmup": 0.25, "decay": 0.5, "lr_final": 0.01}, 5, 0.04),
    ("wsd", 6, {"warmup": 0.25, "decay": 0.5, "lr_final": 0.01}, 6, 0.01),
    ("constant", 7, {}, 7, 0.1),
]


@pytest.mark.parametrize(("name", "total", "params", "update", "expected"), OTHER_GOLDEN)
def test_other_schedules_golden_values(
    name: str, total: int, params: dict[str, Any], update: int, expected: float
) -> None:
    got = get_schedule(name)(update, total, lr_initial=0.1, **params)
    assert got == pytest.approx(expected, rel=1e-9)


def test_wsd_default_over_20_epochs_per_epoch() -> None:
    # 19 intervals: decay round(3.8) = 4 updates (u = 17..20), warmup round(0.95) = 1 update (u = 1)
    #   u=1: 1/2; u=2..16: 1; u=17..20: (20 - u) / 4 = 0.75, 0.5, 0.25, 0
    got = [wsd_lr(u, 20, lr_initial=1.0) for u in range(1, 21)]
    assert got == pytest.approx([0.5] + [1.0] * 15 + [0.75, 0.5, 0.25, 0.0])


def test_wsd_of_three_epochs_decays_and_of_one_update_trains_at_lr_initial() -> None:
    # 3 epochs per epoch: 2 intervals, decay round(0.4) -> at least 1 update, warmup round(0.1) = 0
    assert [wsd_lr(u, 3, lr_initial=1.0) for u in (1, 2, 3)] == [1.0, 1.0, 0.0]
    # 3 epochs x 10 steps: 29 intervals, decay round(5.8) = 6 (u = 25..30), warmup round(1.45) = 1
    got = [wsd_lr(u, 30, lr_initial=1.0) for u in range(1, 31)]
    assert got == pytest.approx([0.5] + [1.0] * 23 + [5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6, 0.0])
    # a plan of one update: nothing to anneal; lr_final 0 for the whole run would not train
    for name in ("cosine", "linear", "step", "wsd"):
        assert get_schedule(name)(1, 1, lr_initial=1.0) == 1.0


@pytest.mark.parametrize("total", range(2, 40))
@pytest.mark.parametrize(
    ("warmup", "decay"), [(0.05, 0.2), (0.0, 0.01), (0.5, 0.5), (0.3, 0.7), (0.9, 0.1)]
)
def test_wsd_always_decays_to_lr_final_and_reaches_its_peak(
    total: int, warmup: float, decay: float
) -> None:
    lrs = [
        wsd_lr(u, total, lr_initial=1.0, lr_final=0.1, warmup=warmup, decay=decay)
        for u in range(1, total + 1)
    ]
    assert lrs[-1] == 0.1  # exactly lr_final
    assert lrs[-2] > 0.1  # the decay holds at least the last update: it ends there, from above
    assert 1.0 in lrs  # the plateau keeps at least one update at lr_initial
    peak = lrs.index(1.0)
    assert lrs[: peak + 1] == sorted(lrs[: peak + 1])
    assert all(b <= a for a, b in pairwise(lrs[peak:]))


def test_wsd_without_warmup_over_the_whole_plan_is_linear() -> None:
    for total in (2, 3, 10):
        wsd = [
            wsd_lr(u, total, lr_initial=0.1, lr_final=0.01, warmup=0.0, decay=1.0)
            for u in range(1, total + 1)
        ]
        linear = [
            get_schedule("linear")(u, total, lr_initial=0.1, lr_final=0.01)
            for u in range(1, total + 1)
        ]
        assert wsd == pytest.approx(linear, rel=1e-12)


def test_plan_progress_runs_from_the_first_update_to_the_last() -> None:
    assert [plan_progress(u, 5) for u in range(1, 6)] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert plan_progress(1, 1) == 0.0  # one update: the first, at p = 0
    assert plan_progress(6, 5) == 1.0  # a scheduler is stepped once past the last update
    assert plan_progress(0, 5) == 0.0


# --- the end of every plan ------------------------------------------------------------------------

# (schedule, params, lr_final those params mean), lr_initial 0.05
FINALS: list[tuple[str, dict[str, Any], float]] = [
    ("taso", {}, 0.05 / 20),
    ("taso", {"lr_final": 0.001}, 0.001),
    ("cosine", {}, 0.0),
    ("cosine", {"lr_final": 0.01}, 0.01),
    ("linear", {}, 0.0),
    ("linear", {"lr_final": 0.01}, 0.01),
    ("step", {}, 0.05 * 0.1**2),  # the value after the last milestone
    ("step", {"milestones": (0.9,), "gamma": 0.5}, 0.025),
    ("wsd", {}, 0.0),
    ("wsd", {"lr_final": 0.01, "warmup": 0.3, "decay": 0.1}, 0.01),
]
PLANS = [(epochs, None) for epochs in (1, 2, 3)] + [
    (epochs, steps) for epochs in (1, 2, 3) for steps in (1, 2, 5, 17)
]


@pytest.mark.parametrize(("epochs", "steps_per_epoch"), PLANS, ids=lambda v: str(v))
@pytest.mark.parametrize(("name", "params", "lr_final"), FINALS)
def test_last_update_of_every_plan_is_at_lr_final(
    name: str, params: dict[str, Any], lr_final: float, epochs: int, steps_per_epoch: int | None
) -> None:
    rows = schedule_table(name, epochs, lr_initial=0.05, steps_per_epoch=steps_per_epoch, **params)
    updates = len(rows)
    assert updates == epochs * (steps_per_epoch or 1)
    assert abs(rows[-1][2] - lr_final) / 0.05 <= 1 / updates
    if name != "taso" and updates > 1:
        assert rows[-1][2] == pytest.approx(lr_final, abs=1e-15)  # the annealing baselines: exactly


# --- properties over every schedule ----------------------------------------------------------------


def _curve(name: str, total: int) -> list[float]:
    fn = get_schedule(name)
    return [fn(u, total, lr_initial=0.05) for u in range(1, total + 1)]


@pytest.mark.parametrize("name", ALL_SCHEDULES)
@pytest.mark.parametrize("total", [1, 2, 7, 100, 300])
def test_every_schedule_is_finite_and_positive_before_its_last_update(
    name: str, total: int
) -> None:
    lrs = _curve(name, total)
    assert all(math.isfinite(lr) and lr >= 0 for lr in lrs)
    assert all(lr > 0 for lr in lrs[:-1])  # only the last update may reach a lr_final of 0


@pytest.mark.parametrize("name", ALL_SCHEDULES)
def test_every_schedule_starts_at_lr_initial_scale_and_never_exceeds_it(name: str) -> None:
    lrs = _curve(name, 100)
    # TASO adds lr_final on top of the sigmoid, so its first value is lr_initial + lr_initial/20
    ceiling = 0.05 * (1 + 1 / 20) if name == "taso" else 0.05
    assert max(lrs) <= ceiling * (1 + 1e-12)


@pytest.mark.parametrize("name", ALL_SCHEDULES)
@pytest.mark.parametrize("total", [3, 10, 100, 400])
def test_every_schedule_is_non_increasing_after_warmup(name: str, total: int) -> None:
    lrs = _curve(name, total)
    peak = lrs.index(max(lrs))
    # only wsd warms up (5% of the plan by default); every other schedule peaks at the first update
    if name == "wsd":
        assert peak <= round(0.05 * (total - 1))
        assert lrs[: peak + 1] == sorted(lrs[: peak + 1])
    else:
        assert peak == 0
    after = lrs[peak:]
    assert all(b <= a for a, b in pairwise(after)), after


def test_taso_is_strictly_decreasing() -> None:
    lrs = _curve("taso", 200)
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
    "update": 1,
    "total_updates": 100,
    "lr_initial": 0.05,
    "lr_final": 0.0025,
    "alpha": 25.0,
    "beta": 0.7,
}
NON_FINITE = [math.inf, -math.inf, math.nan]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("alpha", 0.0),
        ("alpha", -1.0),
        *(("alpha", v) for v in NON_FINITE),
        ("beta", 0.0),
        ("beta", -0.2),
        ("beta", 1.0),
        ("beta", 1.5),
        *(("beta", v) for v in NON_FINITE),
        ("lr_initial", 0.0),
        ("lr_initial", -0.05),
        ("lr_initial", "0.05"),
        *(("lr_initial", v) for v in NON_FINITE),
        ("lr_final", -1e-9),
        ("lr_final", 0.05),  # = lr_initial
        ("lr_final", 0.5),  # > lr_initial
        *(("lr_final", v) for v in NON_FINITE),
        ("total_updates", 0),
        ("total_updates", -3),
        ("total_updates", 2.5),
        ("total_updates", True),
        ("update", -1),
        *(("update", v) for v in NON_FINITE),
    ],
)
def test_taso_rejects_each_invalid_field_by_name(field: str, value: Any) -> None:
    kwargs = {**VALID_TASO, field: value}
    update, total = kwargs.pop("update"), kwargs.pop("total_updates")
    with pytest.raises(ConfigError, match=field) as info:
        taso_lr(update, total, **kwargs)
    assert info.value.field == field


def test_taso_default_lr_final_is_always_below_lr_initial() -> None:
    # lr_final None is lr_initial / 20, so the lr_final < lr_initial check cannot trip on it
    assert taso_lr(100, 100, lr_initial=1e-300) > 0
    assert taso_lr(100, 100, lr_initial=1e300) < 1e300


def test_messages_say_finite_for_non_finite_values() -> None:
    with pytest.raises(ConfigError) as info:
        taso_lr(1, 10, lr_initial=math.inf)
    assert str(info.value) == "lr_initial: must be a finite number > 0 (got inf)"
    with pytest.raises(ConfigError) as info:
        taso_lr(1, 10, lr_initial=0.1, beta=1.5)
    assert str(info.value) == "beta: must be in (0, 1) (got 1.5)"
    with pytest.raises(ConfigError) as info:
        taso_lr(1, 10, lr_initial=0.1, lr_final=0.2)
    assert str(info.value) == "lr_final: must be below lr_initial (0.1) (got 0.2)"


@pytest.mark.parametrize("name", ALL_SCHEDULES)
@pytest.mark.parametrize(
    ("field", "value"),
    [("lr_initial", 0.0), ("lr_initial", math.inf), ("total_updates", 0), ("update", math.nan)],
)
def test_every_schedule_rejects_bad_common_fields(name: str, field: str, value: float) -> None:
    kwargs: dict[str, Any] = {"lr_initial": 0.1, "total_updates": 10, "update": 1, field: value}
    with pytest.raises(ConfigError, match=field) as info:
        get_schedule(name)(kwargs.pop("update"), kwargs.pop("total_updates"), **kwargs)
    assert info.value.field == field


@pytest.mark.parametrize(
    ("name", "field", "value"),
    [
        *(
            (name, "lr_final", v)
            for name in ("cosine", "linear", "wsd")
            for v in (-0.1, 0.1, 0.2, *NON_FINITE)
        ),
        ("step", "gamma", 0.0),
        ("step", "gamma", -0.5),
        ("step", "gamma", 1.5),
        *(("step", "gamma", v) for v in NON_FINITE),
        ("step", "milestones", (0.5, 1.5)),
        ("step", "milestones", (0.0, 0.5)),
        ("step", "milestones", (0.5, 1.0)),
        ("step", "milestones", (0.75, 0.5)),  # not increasing
        ("step", "milestones", (0.5, 0.5)),  # not strictly increasing
        ("step", "milestones", (0.5, math.nan)),
        ("step", "milestones", (math.inf,)),
        ("step", "milestones", 0.5),  # not a list
        ("step", "milestones", "0.5"),
        ("wsd", "warmup", 1.0),
        ("wsd", "warmup", -0.1),
        *(("wsd", "warmup", v) for v in NON_FINITE),
        ("wsd", "decay", 0.0),
        ("wsd", "decay", 1.5),
        *(("wsd", "decay", v) for v in NON_FINITE),
    ],
)
def test_schedule_specific_fields_are_validated(name: str, field: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=field) as info:
        get_schedule(name)(1, 10, lr_initial=0.1, **{field: value})
    assert info.value.field == field


def test_wsd_warmup_and_decay_together_must_fit_the_plan() -> None:
    wsd_lr(1, 10, lr_initial=0.1, warmup=0.4, decay=0.6)  # = 1: allowed
    with pytest.raises(ConfigError, match="decay") as info:
        wsd_lr(1, 10, lr_initial=0.1, warmup=0.5, decay=0.6)
    assert info.value.field == "decay" and "warmup + decay" in str(info.value)


@pytest.mark.parametrize(
    ("alpha", "beta", "field"),
    [
        (0, 0.7, "alpha"),
        (math.inf, 0.7, "alpha"),
        (25, 0, "beta"),
        (25, 1, "beta"),
        (25, math.nan, "beta"),
    ],
)
def test_check_taso_params_rejects_bad_values(alpha: float, beta: float, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        check_taso_params(alpha, beta)


def test_unknown_schedule_lists_choices() -> None:
    with pytest.raises(ConfigError, match="schedule") as info:
        get_schedule("exponential")
    assert info.value.choices == ALL_SCHEDULES
    for name in ALL_SCHEDULES:
        assert name in str(info.value)


def test_schedule_parameters_are_read_from_the_functions() -> None:
    assert schedule_parameters("taso") == {"lr_final": None, "alpha": 25.0, "beta": 0.7}
    assert schedule_parameters("constant") == {}
    assert schedule_parameters("step") == {"milestones": (0.5, 0.75), "gamma": 0.1}
    assert schedule_parameters("wsd") == {"lr_final": 0.0, "warmup": 0.05, "decay": 0.2}


def test_check_schedule_params_names_unknown_parameters_and_checks_values() -> None:
    check_schedule_params("wsd", lr_initial=0.1, warmup=0.1)
    with pytest.raises(ConfigError, match="alpha") as info:
        check_schedule_params("cosine", lr_initial=0.1, alpha=3.0)
    assert info.value.choices == ["lr_final"]
    with pytest.raises(ConfigError, match="lr_final"):
        check_schedule_params("cosine", lr_initial=0.1, lr_final=0.1)
    with pytest.raises(ConfigError, match="epochs"):
        schedule_table("cosine", 0, lr_initial=0.1)
    with pytest.raises(ConfigError, match="steps_per_epoch"):
        schedule_table("cosine", 2, lr_initial=0.1, steps_per_epoch=0)


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
    code = "import sys, taso_tune, taso_tune.schedules.maths; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
