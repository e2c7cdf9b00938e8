"""Optimizer recipes: every recipe builds and trains, defaults follow the paper, bad input is named."""

from __future__ import annotations

import importlib
import math
from typing import Any

import pytest
import torch

from taso_tune.core.errors import ConfigError
from taso_tune.schedules.lr_scheduler import TASO, ScheduledLR
from taso_tune.schedules.maths import get_schedule
from taso_tune.training.optimizers import (
    OPTIMIZERS,
    build_optimizer,
    resolve_granularity,
    resolve_hparams,
    set_mode,
)

ALL_RECIPES = sorted(OPTIMIZERS)
NON_FINITE = [math.inf, -math.inf, math.nan]


def _tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))


@pytest.mark.parametrize("name", ALL_RECIPES)
def test_every_recipe_builds_and_one_step_changes_parameters(name: str) -> None:
    model = _tiny_model()
    optimizer, scheduler = build_optimizer(
        name, model.parameters(), total_epochs=10, steps_per_epoch=4
    )
    recipe = OPTIMIZERS[name]
    assert type(optimizer) is getattr(importlib.import_module(recipe.package), recipe.torch_class)
    assert isinstance(scheduler, ScheduledLR)
    assert scheduler.schedule == recipe.schedule
    set_mode(optimizer, training=True)  # as the training loop does before its steps
    before = [p.detach().clone() for p in model.parameters()]
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    scheduler.step()
    changed = [not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True)]
    assert all(changed)
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize("name", ALL_RECIPES)
def test_every_recipe_starts_at_its_default_lr_on_its_schedule(name: str) -> None:
    recipe = OPTIMIZERS[name]
    optimizer, scheduler = build_optimizer(
        name, _tiny_model().parameters(), total_epochs=10, steps_per_epoch=4
    )
    hp = resolve_hparams(name)
    params = {k: hp[k] for k in recipe.schedule_fields}
    updates = 40 if recipe.granularity == "step" else 10  # 10 epochs x 4 steps, or 10 epochs
    assert scheduler.total_updates == updates
    expected = get_schedule(recipe.schedule)(1, updates, lr_initial=hp["lr"], **params)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(expected, rel=1e-15)
    assert optimizer.param_groups[0]["initial_lr"] == hp["lr"]


@pytest.mark.parametrize("name", ALL_RECIPES)
def test_every_recipe_resolves_defaults_and_accepts_its_own_fields(name: str) -> None:
    defaults = resolve_hparams(name)
    assert set(defaults) == set(OPTIMIZERS[name].defaults)
    assert resolve_hparams(name, {"lr": 0.123})["lr"] == 0.123
    assert resolve_hparams(name, {"lr": 1})["lr"] == 1.0  # ints are accepted for floats
    assert isinstance(resolve_hparams(name, {"lr": 1})["lr"], float)


def test_taso_defaults_follow_the_paper() -> None:
    hp = resolve_hparams("taso")
    assert hp == {
        "lr": 0.05,
        "momentum": 0.9,
        "nesterov": False,
        "weight_decay": 1e-4,
        "alpha": 25.0,
        "beta": 0.7,
        "lr_final": None,
    }
    optimizer, scheduler = build_optimizer("taso", _tiny_model().parameters(), total_epochs=100)
    group = optimizer.param_groups[0]
    assert type(optimizer) is torch.optim.SGD
    assert (group["momentum"], group["nesterov"], group["weight_decay"]) == (0.9, False, 1e-4)
    assert isinstance(scheduler, TASO)
    assert scheduler.params == {"alpha": 25.0, "beta": 0.7, "lr_final": None}
    # epoch 1, lr_final None -> 0.05 / 20: 0.05 / (1 + exp(25 * (0.01 - 0.7))) + 0.0025 = 0.0525
    assert group["lr"] == pytest.approx(0.0525, rel=1e-6)


@pytest.mark.parametrize(("name", "amsgrad"), [("adam", False), ("amsgrad", True)])
def test_adam_and_amsgrad_defaults(name: str, amsgrad: bool) -> None:
    optimizer, _ = build_optimizer(name, _tiny_model().parameters(), total_epochs=10)
    group = optimizer.param_groups[0]
    assert type(optimizer) is torch.optim.Adam
    assert group["betas"] == (0.9, 0.99)
    assert group["amsgrad"] is amsgrad
    assert (group["lr"], group["eps"], group["weight_decay"]) == (0.0005, 1e-8, 0.0)


def test_amsgrad_flag_cannot_be_overridden_away() -> None:
    with pytest.raises(ConfigError, match="amsgrad"):
        resolve_hparams("amsgrad", {"amsgrad": False})


@pytest.mark.parametrize("centered", [False, True])
def test_rmsprop_defaults_and_centered_option(centered: bool) -> None:
    overrides = {"centered": True} if centered else {}
    optimizer, _ = build_optimizer("rmsprop", _tiny_model().parameters(), 10, overrides)
    group = optimizer.param_groups[0]
    assert type(optimizer) is torch.optim.RMSprop
    assert group["alpha"] == 0.99  # the recipe's rho is torch's alpha
    assert group["centered"] is centered
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (0.0005, 0.0, 0.0)


def test_rmsprop_rho_override_reaches_torch_alpha() -> None:
    optimizer, _ = build_optimizer("rmsprop", _tiny_model().parameters(), 10, {"rho": 0.9})
    assert optimizer.param_groups[0]["alpha"] == 0.9


def test_adagrad_defaults() -> None:
    optimizer, _ = build_optimizer("adagrad", _tiny_model().parameters(), total_epochs=10)
    group = optimizer.param_groups[0]
    assert type(optimizer) is torch.optim.Adagrad
    assert (group["lr"], group["lr_decay"], group["weight_decay"]) == (0.05, 0.0, 0.0)


def test_overrides_reach_the_torch_optimizer_and_schedule() -> None:
    overrides = {"lr": 0.1, "momentum": 0.5, "nesterov": True, "alpha": 50, "beta": 0.5}
    optimizer, scheduler = build_optimizer("taso", _tiny_model().parameters(), 20, overrides)
    group = optimizer.param_groups[0]
    assert (group["momentum"], group["nesterov"], group["initial_lr"]) == (0.5, True, 0.1)
    assert scheduler.params["alpha"] == 50.0 and scheduler.params["beta"] == 0.5


def test_sgd_step_milestones_accept_lists() -> None:
    hp = resolve_hparams("sgd_step", {"milestones": [0.3, 0.6], "gamma": 0.5})
    assert hp["milestones"] == (0.3, 0.6)
    _, scheduler = build_optimizer(
        "sgd_step", _tiny_model().parameters(), 10, hp, steps_per_epoch=3
    )
    assert scheduler.params == {"milestones": (0.3, 0.6), "gamma": 0.5}


# TASO follows the paper (Eq. (1) at k = 1..k_t: per epoch); constant-lr recipes have nothing to
# update; the annealing baselines update every step so a short plan still ends at lr_final.
GRANULARITIES = {
    "taso": "epoch",
    "sgd": "epoch",
    "adam": "epoch",
    "amsgrad": "epoch",
    "rmsprop": "epoch",
    "adagrad": "epoch",
    "sgd_cosine": "step",
    "sgd_linear": "step",
    "sgd_step": "step",
    "sgd_wsd": "step",
    "adamw_cosine": "step",
    "sgd_schedulefree": "epoch",  # no schedule: a constant lr, the optimizer averages its iterates
    "adamw_schedulefree": "epoch",
}


def test_every_recipe_records_its_default_granularity() -> None:
    assert {name: OPTIMIZERS[name].granularity for name in ALL_RECIPES} == GRANULARITIES


@pytest.mark.parametrize("name", ALL_RECIPES)
@pytest.mark.parametrize("granularity", ["auto", "epoch", "step"])
def test_granularity_auto_is_the_recipes_own_and_the_others_force_it(
    name: str, granularity: str
) -> None:
    _, scheduler = build_optimizer(
        name, _tiny_model().parameters(), 10, steps_per_epoch=5, granularity=granularity
    )
    want = GRANULARITIES[name] if granularity == "auto" else granularity
    assert resolve_granularity(name, granularity) == want
    assert scheduler.granularity == want
    assert scheduler.steps_per_epoch == (5 if want == "step" else None)
    assert scheduler.total_updates == (50 if want == "step" else 10)


def test_per_step_schedule_needs_the_steps_per_epoch() -> None:
    _, scheduler = build_optimizer(
        "taso", _tiny_model().parameters(), 10, steps_per_epoch=5, granularity="step"
    )
    assert scheduler.current_epoch() == pytest.approx(
        0.2
    )  # update 1 of 50 is a fifth of an epoch in
    with pytest.raises(ConfigError, match="steps_per_epoch"):
        build_optimizer("sgd_cosine", _tiny_model().parameters(), 10)
    _, per_epoch = build_optimizer(
        "sgd_cosine", _tiny_model().parameters(), 10, granularity="epoch"
    )
    assert per_epoch.granularity == "epoch"
    with pytest.raises(ConfigError, match="steps_per_epoch"):
        build_optimizer("sgd_cosine", _tiny_model().parameters(), 10, steps_per_epoch=0)


def test_unknown_granularity_lists_the_choices() -> None:
    with pytest.raises(ConfigError, match="schedule_granularity") as info:
        resolve_granularity("taso", "batch")  # type: ignore[arg-type]
    assert info.value.choices == ["auto", "epoch", "step"]


def test_unknown_optimizer_lists_valid_names() -> None:
    with pytest.raises(ConfigError, match="optimizer") as info:
        resolve_hparams("lamb")
    assert info.value.choices == ALL_RECIPES
    for name in ALL_RECIPES:
        assert name in str(info.value)
    with pytest.raises(ConfigError, match="optimizer"):
        build_optimizer("lamb", _tiny_model().parameters(), 10)


@pytest.mark.parametrize("name", ALL_RECIPES)
def test_unknown_field_lists_the_recipes_fields(name: str) -> None:
    with pytest.raises(ConfigError, match="badfield") as info:
        resolve_hparams(name, {"badfield": 1})
    assert info.value.choices == sorted(OPTIMIZERS[name].defaults)
    assert "lr" in str(info.value) and name in str(info.value)


@pytest.mark.parametrize(
    ("name", "overrides", "field"),
    [
        ("taso", {"lr": "abc"}, "lr"),
        ("taso", {"lr": True}, "lr"),
        ("taso", {"lr": None}, "lr"),
        ("taso", {"nesterov": 1}, "nesterov"),
        ("rmsprop", {"centered": "yes"}, "centered"),
        ("sgd_step", {"milestones": 0.5}, "milestones"),
        ("sgd_step", {"milestones": ["a"]}, "milestones"),
        ("taso", {"lr": 0}, "lr"),
        ("taso", {"lr": -0.1}, "lr"),
        ("adam", {"eps": 0.0}, "eps"),
        ("taso", {"alpha": 0}, "alpha"),
        ("taso", {"beta": 0}, "beta"),
        ("taso", {"beta": 1.5}, "beta"),
        ("taso", {"lr_final": -1.0}, "lr_final"),
        ("sgd", {"momentum": -0.9}, "momentum"),
        ("sgd", {"weight_decay": -1e-4}, "weight_decay"),
        ("adam", {"beta1": 1.0}, "beta1"),
        ("adam", {"beta2": -0.1}, "beta2"),
        ("rmsprop", {"rho": 1.0}, "rho"),
        ("adagrad", {"lr_decay": -1.0}, "lr_decay"),
        ("sgd_step", {"gamma": 0.0}, "gamma"),
        ("sgd_wsd", {"warmup": 1.0}, "warmup"),
        # non-finite values, which a check written `not value > 0` lets through
        *(("taso", {"lr": v}, "lr") for v in NON_FINITE),
        *(("adam", {"eps": v}, "eps") for v in NON_FINITE),
        *(("sgd", {"weight_decay": v}, "weight_decay") for v in NON_FINITE),
        *(("sgd", {"momentum": v}, "momentum") for v in NON_FINITE),
        *(("adagrad", {"lr_decay": v}, "lr_decay") for v in NON_FINITE),
        *(("adam", {"beta1": v}, "beta1") for v in NON_FINITE),
        *(("adam", {"beta2": v}, "beta2") for v in NON_FINITE),
        *(("rmsprop", {"rho": v}, "rho") for v in NON_FINITE),
        *(("taso", {"alpha": v}, "alpha") for v in NON_FINITE),
        *(("taso", {"beta": v}, "beta") for v in NON_FINITE),
        *(("taso", {"lr_final": v}, "lr_final") for v in NON_FINITE),
        *(("sgd_cosine", {"lr_final": v}, "lr_final") for v in NON_FINITE),
        *(("sgd_step", {"gamma": v}, "gamma") for v in NON_FINITE),
        *(("sgd_step", {"milestones": [0.5, v]}, "milestones") for v in NON_FINITE),
        *(("sgd_wsd", {"warmup": v}, "warmup") for v in NON_FINITE),
        *(("sgd_wsd", {"decay": v}, "decay") for v in NON_FINITE),
        # physically meaningless values
        ("sgd", {"momentum": 1.0}, "momentum"),
        ("taso", {"momentum": 1.5}, "momentum"),
        ("rmsprop", {"momentum": 1.0}, "momentum"),
        ("taso", {"lr_final": 0.05}, "lr_final"),  # = the default lr 0.05
        ("taso", {"lr": 0.01, "lr_final": 0.02}, "lr_final"),
        ("sgd_cosine", {"lr_final": 0.1}, "lr_final"),
        ("adamw_cosine", {"lr": 0.001, "lr_final": 0.001}, "lr_final"),
        ("sgd_linear", {"lr_final": 0.06}, "lr_final"),
        ("sgd_wsd", {"lr_final": 0.05}, "lr_final"),
        ("sgd_step", {"gamma": 1.5}, "gamma"),
        ("sgd_step", {"milestones": [0.75, 0.5]}, "milestones"),
        ("sgd_step", {"milestones": [0.5, 0.5]}, "milestones"),
        ("sgd_step", {"milestones": [0.0, 0.5]}, "milestones"),
        ("sgd_step", {"milestones": [0.5, 1.0]}, "milestones"),
        ("sgd_wsd", {"decay": 0.0}, "decay"),
        ("sgd_wsd", {"warmup": 0.5, "decay": 0.6}, "decay"),  # warmup + decay > 1
    ],
)
def test_bad_types_and_ranges_are_rejected_by_name(
    name: str, overrides: dict[str, Any], field: str
) -> None:
    # resolve_hparams is what a TrainConfig (and so a search space) checks, before any trial starts
    with pytest.raises(ConfigError, match=field) as info:
        resolve_hparams(name, overrides)
    assert info.value.field == field
    with pytest.raises(ConfigError, match=field):
        build_optimizer(name, _tiny_model().parameters(), 10, overrides, steps_per_epoch=3)


def test_taso_default_lr_final_passes_the_below_lr_check_at_any_lr() -> None:
    # lr_final None means lr / 20, always below lr
    for lr in (1e-6, 0.05, 10.0):
        assert resolve_hparams("taso", {"lr": lr})["lr_final"] is None
    assert resolve_hparams("taso", {"lr": 0.1, "lr_final": 0.0999})["lr_final"] == 0.0999
    assert resolve_hparams("sgd", {"momentum": 0.0})["momentum"] == 0.0  # [0, 1): 0 is allowed


@pytest.mark.parametrize("name", ["taso", "sgd", "sgd_cosine"])
def test_nesterov_without_momentum_is_rejected(name: str) -> None:
    with pytest.raises(ConfigError, match="nesterov"):
        resolve_hparams(name, {"nesterov": True, "momentum": 0.0})
    assert resolve_hparams(name, {"nesterov": False, "momentum": 0.0})["momentum"] == 0.0
