"""The torch LRScheduler adapters: they follow the pure schedules, per epoch or per step, and resume."""

from __future__ import annotations

import io
import math
import warnings
from itertools import pairwise

import pytest
import torch

import taso_tune
from taso_tune.core.errors import ConfigError
from taso_tune.schedules.lr_scheduler import TASO, ScheduledLR
from taso_tune.schedules.maths import SCHEDULES, get_schedule, taso_lr

ALL_SCHEDULES = sorted(SCHEDULES)


def _optimizer(*lrs: float) -> torch.optim.Optimizer:
    groups = [{"params": [torch.nn.Parameter(torch.zeros(2))], "lr": lr} for lr in lrs]
    return torch.optim.SGD(groups, lr=lrs[0], momentum=0.9)


def _advance(optimizer: torch.optim.Optimizer, scheduler: ScheduledLR) -> None:
    optimizer.step()  # no gradients: a no-op, but keeps torch's step-order check quiet
    scheduler.step()


def _lrs(optimizer: torch.optim.Optimizer) -> list[float]:
    return [group["lr"] for group in optimizer.param_groups]


@pytest.mark.parametrize("name", ALL_SCHEDULES)
def test_lr_in_force_during_each_epoch_equals_the_pure_function(name: str) -> None:
    total = 12
    optimizer = _optimizer(0.05)
    scheduler = ScheduledLR(optimizer, name, total)
    fn = get_schedule(name)
    for k in range(1, total + 1):  # k = 1 before any step()
        expected = fn(k, total, lr_initial=0.05)
        assert optimizer.param_groups[0]["lr"] == pytest.approx(expected, rel=1e-15)
        assert scheduler.get_last_lr() == pytest.approx([expected], rel=1e-15)
        assert scheduler.current_epoch() == k
        _advance(optimizer, scheduler)


def test_taso_scheduler_matches_taso_lr_with_its_parameters() -> None:
    optimizer = _optimizer(0.1)
    scheduler = TASO(optimizer, total_epochs=20, alpha=50, beta=0.5, lr_final=0.001)
    for k in range(1, 21):
        expected = taso_lr(k, 20, lr_initial=0.1, lr_final=0.001, alpha=50, beta=0.5)
        assert optimizer.param_groups[0]["lr"] == pytest.approx(expected, rel=1e-15)
        _advance(optimizer, scheduler)


def _roundtrip(state: dict) -> dict:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("name", ALL_SCHEDULES)
@pytest.mark.parametrize("through_bytes", [False, True], ids=["in_memory", "torch_save"])
@pytest.mark.parametrize("steps_per_epoch", [None, 3], ids=["per_epoch", "per_step"])
def test_state_dict_round_trip_continues_the_same_curve(
    name: str, through_bytes: bool, steps_per_epoch: int | None
) -> None:
    total, stop = 10, 4
    updates = total * (steps_per_epoch or 1)
    reference_opt = _optimizer(0.05, 0.2)
    reference = ScheduledLR(reference_opt, name, total, steps_per_epoch=steps_per_epoch)
    expected = []
    for _ in range(updates):
        expected.append(_lrs(reference_opt))
        _advance(reference_opt, reference)

    first_opt = _optimizer(0.05, 0.2)
    first = ScheduledLR(first_opt, name, total, steps_per_epoch=steps_per_epoch)
    for _ in range(stop):
        _advance(first_opt, first)
    sched_state, opt_state = first.state_dict(), first_opt.state_dict()
    if through_bytes:
        sched_state, opt_state = _roundtrip(sched_state), _roundtrip(opt_state)
    del first, first_opt

    # a fresh scheduler built with other settings: the loaded state must win
    resumed_opt = _optimizer(0.05, 0.2)
    resumed = ScheduledLR(resumed_opt, name, total + 5)
    resumed_opt.load_state_dict(opt_state)
    resumed.load_state_dict(sched_state)
    got = []
    for _ in range(stop, updates):
        got.append(_lrs(resumed_opt))
        _advance(resumed_opt, resumed)
    assert got == expected[stop:]
    assert (resumed.total_epochs, resumed.steps_per_epoch, resumed.granularity) == (
        total,
        steps_per_epoch,
        "epoch" if steps_per_epoch is None else "step",
    )


def test_taso_state_dict_restores_its_own_hyperparameters() -> None:
    optimizer = _optimizer(0.05)
    scheduler = TASO(optimizer, total_epochs=10, alpha=50, beta=0.5, lr_final=0.001)
    for _ in range(3):
        _advance(optimizer, scheduler)
    state = _roundtrip(scheduler.state_dict())

    fresh_opt = _optimizer(0.05)
    fresh = TASO(fresh_opt, total_epochs=100)  # defaults alpha 25, beta 0.7, lr_final None
    fresh.load_state_dict(state)
    assert fresh.params == {"alpha": 50, "beta": 0.5, "lr_final": 0.001}
    for k in range(5, 11):  # step() moves to epoch 5 first: 3 steps done, the 4th is taken here
        _advance(fresh_opt, fresh)
        expected = taso_lr(k, 10, lr_initial=0.05, lr_final=0.001, alpha=50, beta=0.5)
        assert fresh_opt.param_groups[0]["lr"] == pytest.approx(expected, rel=1e-15)


def test_two_param_groups_each_follow_their_own_taso_curve() -> None:
    optimizer = _optimizer(0.1, 0.004)
    scheduler = TASO(optimizer, total_epochs=50)
    for k in range(1, 51):
        high, low = _lrs(optimizer)
        # lr_final None -> each group's own initial lr / 20
        assert high == pytest.approx(taso_lr(k, 50, lr_initial=0.1, lr_final=0.005), rel=1e-15)
        assert low == pytest.approx(taso_lr(k, 50, lr_initial=0.004, lr_final=0.0002), rel=1e-15)
        assert high / low == pytest.approx(25.0, rel=1e-12)
        _advance(optimizer, scheduler)
    assert scheduler.get_last_lr()[0] == pytest.approx(0.005, rel=0.05)
    assert scheduler.get_last_lr()[1] == pytest.approx(0.0002, rel=0.05)


@pytest.mark.parametrize("name", ALL_SCHEDULES)
def test_two_param_groups_for_every_schedule(name: str) -> None:
    optimizer = _optimizer(0.1, 0.01)
    scheduler = ScheduledLR(optimizer, name, 8)
    fn = get_schedule(name)
    for k in range(1, 9):
        expected = [fn(k, 8, lr_initial=0.1), fn(k, 8, lr_initial=0.01)]
        assert _lrs(optimizer) == pytest.approx(expected, rel=1e-15)
        _advance(optimizer, scheduler)


@pytest.mark.parametrize("name", ALL_SCHEDULES)
def test_per_step_mode_evaluates_the_schedule_at_every_update(name: str) -> None:
    total, steps_per_epoch = 6, 7
    fn = get_schedule(name)
    optimizer = _optimizer(0.05)
    scheduler = ScheduledLR(optimizer, name, total, steps_per_epoch=steps_per_epoch)
    assert (scheduler.granularity, scheduler.total_updates) == ("step", 42)
    for step in range(total * steps_per_epoch):  # global step s runs at update s + 1 of 42
        assert scheduler.current_update() == step + 1
        assert optimizer.param_groups[0]["lr"] == fn(step + 1, 42, lr_initial=0.05)
        _advance(optimizer, scheduler)
    per_epoch = ScheduledLR(_optimizer(0.05), name, total)
    assert (per_epoch.granularity, per_epoch.total_updates) == ("epoch", 6)


# The golden plans of tests/test_schedules.py through the adapter, lr_initial 1, default parameters:
# plan A = 4 epochs updated per epoch (p = 0, 1/3, 2/3, 1), plan B = 2 epochs x 3 steps updated per
# step (p = 0, 0.2, ..., 1). TASO: Eq. (1) at u/U; cosine (1 + cos(pi p)) / 2; linear 1 - p; step
# 0.1 ** (milestones 0.5, 0.75 passed); wsd: one decay update at the end, no warmup (rounds to 0).
ADAPTER_GOLDEN: list[tuple[str, int | None, list[float]]] = [
    (
        "taso",
        None,
        [1.0499869928715335, 1.0433071490757151, 0.27270013882530885, 0.0505527786369236],
    ),
    (
        "taso",
        3,
        [
            1.0499983804058308,
            1.0498955467677858,
            1.0433071490757151,
            0.7470592839654073,
            0.08444519566621117,
            0.0505527786369236,
        ],
    ),
    ("constant", None, [1.0, 1.0, 1.0, 1.0]),
    ("constant", 3, [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]),
    ("cosine", None, [1.0, 0.75, 0.25, 0.0]),
    (
        "cosine",
        3,
        [1.0, 0.9045084971874737, 0.6545084971874737, 0.3454915028125263, 0.09549150281252629, 0.0],
    ),
    ("linear", None, [1.0, 2 / 3, 1 / 3, 0.0]),
    ("linear", 3, [1.0, 0.8, 0.6, 0.4, 0.2, 0.0]),
    ("step", None, [1.0, 1.0, 0.1, 0.01]),
    ("step", 3, [1.0, 1.0, 1.0, 0.1, 0.01, 0.01]),
    ("wsd", None, [1.0, 1.0, 1.0, 0.0]),
    ("wsd", 3, [1.0, 1.0, 1.0, 1.0, 1.0, 0.0]),
]


@pytest.mark.parametrize(("name", "steps_per_epoch", "expected"), ADAPTER_GOLDEN)
def test_adapter_golden_values_per_epoch_and_per_step(
    name: str, steps_per_epoch: int | None, expected: list[float]
) -> None:
    epochs = 4 if steps_per_epoch is None else 2
    optimizer = _optimizer(1.0)
    scheduler = ScheduledLR(optimizer, name, epochs, steps_per_epoch=steps_per_epoch)
    in_force = []
    for _ in range(len(expected)):
        in_force.append(optimizer.param_groups[0]["lr"])
        _advance(optimizer, scheduler)
    assert in_force == pytest.approx(expected, rel=1e-12, abs=1e-15)


# lr_final each decaying schedule's defaults mean at lr_initial 0.05 (step: after its last milestone)
DEFAULT_FINALS = {"taso": 0.05 / 20, "cosine": 0.0, "linear": 0.0, "step": 0.05 * 0.01, "wsd": 0.0}
GRANULARITY_PLANS = [(epochs, None) for epochs in (1, 2, 3)] + [
    (epochs, steps) for epochs in (1, 2, 3) for steps in (1, 3, 8)
]


@pytest.mark.parametrize(("epochs", "steps_per_epoch"), GRANULARITY_PLANS, ids=lambda v: str(v))
@pytest.mark.parametrize("name", sorted(DEFAULT_FINALS))
def test_last_update_of_the_plan_is_at_lr_final(
    name: str, epochs: int, steps_per_epoch: int | None
) -> None:
    optimizer = _optimizer(0.05)
    scheduler = ScheduledLR(optimizer, name, epochs, steps_per_epoch=steps_per_epoch)
    updates = scheduler.total_updates
    for _ in range(updates - 1):
        _advance(optimizer, scheduler)
    assert scheduler.current_update() == updates  # the plan's last update is in force
    last = optimizer.param_groups[0]["lr"]
    assert abs(last - DEFAULT_FINALS[name]) / 0.05 <= 1 / updates


def test_taso_per_step_reaches_exactly_the_final_value_at_the_last_step() -> None:
    total, steps_per_epoch = 10, 13
    optimizer = _optimizer(0.05)
    scheduler = TASO(optimizer, total_epochs=total, steps_per_epoch=steps_per_epoch)
    in_force = []
    for _ in range(total * steps_per_epoch):
        in_force.append(optimizer.param_groups[0]["lr"])
        _advance(optimizer, scheduler)
    assert in_force[-1] == taso_lr(total, total, lr_initial=0.05)
    assert all(b < a for a, b in pairwise(in_force))  # smooth, strictly decreasing
    per_epoch = [taso_lr(k, total, lr_initial=0.05) for k in range(1, total + 1)]
    assert in_force[steps_per_epoch - 1 :: steps_per_epoch] == per_epoch


def test_taso_warns_about_the_heuristic_at_construction() -> None:
    with pytest.warns(UserWarning, match="heuristic"):
        TASO(_optimizer(0.05), total_epochs=10, alpha=10, beta=0.3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TASO(_optimizer(0.05), total_epochs=10, alpha=25, beta=0.7)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": math.inf}, "alpha"),
        ({"beta": 1.0}, "beta"),
        ({"beta": math.nan}, "beta"),
        ({"lr_final": -0.1}, "lr_final"),
        ({"lr_final": 0.05}, "lr_final"),  # not below the group's lr
        ({"lr_final": math.inf}, "lr_final"),
        ({"total_epochs": 0}, "total_epochs"),
        ({"total_epochs": 2.5}, "total_epochs"),
        ({"steps_per_epoch": 0}, "steps_per_epoch"),
        ({"steps_per_epoch": 1.5}, "steps_per_epoch"),
    ],
)
def test_taso_rejects_bad_arguments_by_name(kwargs: dict, field: str) -> None:
    args = {"total_epochs": 10, **kwargs}
    with pytest.raises(ConfigError, match=field) as info:
        TASO(_optimizer(0.05), **args)
    assert info.value.field == field


def test_scheduled_lr_rejects_unknown_schedule_and_bad_group_lr() -> None:
    with pytest.raises(ConfigError, match="schedule") as info:
        ScheduledLR(_optimizer(0.05), "exponential", 10)
    assert "taso" in str(info.value)
    with pytest.raises(ConfigError, match="lr_initial"):
        ScheduledLR(_optimizer(0.05, 0.0), "taso", 10)
    # an absolute lr_final checked against every group's own initial lr
    with pytest.raises(ConfigError, match="lr_final"):
        ScheduledLR(_optimizer(0.05, 0.001), "cosine", 10, lr_final=0.002)
    with pytest.raises(ConfigError, match="warmup"):
        ScheduledLR(_optimizer(0.05), "wsd", 10, warmup=math.inf)


def test_taso_is_importable_from_the_package_top_level() -> None:
    from taso_tune import TASO as top_level

    assert top_level is TASO
    assert taso_tune.TASO is TASO
    assert "TASO" in taso_tune.__all__
    with pytest.raises(AttributeError):
        taso_tune.NotAThing  # noqa: B018
