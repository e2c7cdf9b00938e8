"""The torch LRScheduler adapters: they follow the pure schedules, per epoch or per step, and resume."""

from __future__ import annotations

import io
import warnings
from itertools import pairwise

import pytest
import torch

import taso_tune
from taso_tune.errors import ConfigError
from taso_tune.lr_scheduler import TASO, ScheduledLR
from taso_tune.schedules import SCHEDULES, get_schedule, taso_lr

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
def test_state_dict_round_trip_continues_the_same_curve(name: str, through_bytes: bool) -> None:
    total, stop = 10, 4
    reference_opt = _optimizer(0.05, 0.2)
    reference = ScheduledLR(reference_opt, name, total)
    expected = []
    for _ in range(total):
        expected.append(_lrs(reference_opt))
        _advance(reference_opt, reference)

    first_opt = _optimizer(0.05, 0.2)
    first = ScheduledLR(first_opt, name, total)
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
    for _ in range(stop, total):
        got.append(_lrs(resumed_opt))
        _advance(resumed_opt, resumed)
    assert got == expected[stop:]
    assert resumed.total_epochs == total


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
def test_per_step_mode_meets_per_epoch_values_at_epoch_ends(name: str) -> None:
    total, steps_per_epoch = 6, 7
    fn = get_schedule(name)
    optimizer = _optimizer(0.05)
    scheduler = ScheduledLR(optimizer, name, total, steps_per_epoch=steps_per_epoch)
    in_force = []
    for _ in range(total * steps_per_epoch):
        in_force.append(optimizer.param_groups[0]["lr"])
        _advance(optimizer, scheduler)
    for epoch in range(1, total + 1):
        last_step_of_epoch = in_force[epoch * steps_per_epoch - 1]
        assert last_step_of_epoch == fn(epoch, total, lr_initial=0.05)
    # the very first step is already a fraction of the way into epoch 1
    assert in_force[0] == fn(1 / steps_per_epoch, total, lr_initial=0.05)


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
        ({"beta": 1.0}, "beta"),
        ({"lr_final": -0.1}, "lr_final"),
        ({"total_epochs": 0}, "total_epochs"),
        ({"steps_per_epoch": 0}, "steps_per_epoch"),
    ],
)
def test_taso_rejects_bad_arguments_by_name(kwargs: dict, field: str) -> None:
    args = {"total_epochs": 10, **kwargs}
    with pytest.raises(ConfigError, match=field):
        TASO(_optimizer(0.05), **args)


def test_scheduled_lr_rejects_unknown_schedule_and_bad_group_lr() -> None:
    with pytest.raises(ConfigError, match="schedule") as info:
        ScheduledLR(_optimizer(0.05), "exponential", 10)
    assert "taso" in str(info.value)
    with pytest.raises(ConfigError, match="lr_initial"):
        ScheduledLR(_optimizer(0.05, 0.0), "taso", 10)


def test_taso_is_importable_from_the_package_top_level() -> None:
    from taso_tune import TASO as top_level

    assert top_level is TASO
    assert taso_tune.TASO is TASO
    assert "TASO" in taso_tune.__all__
    with pytest.raises(AttributeError):
        taso_tune.NotAThing  # noqa: B018
