"""Optimizer recipes: every recipe builds and trains, defaults follow the paper, bad input is named."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from taso_tune.errors import ConfigError
from taso_tune.lr_scheduler import TASO, ScheduledLR
from taso_tune.optimizers import OPTIMIZERS, build_optimizer, resolve_hparams
from taso_tune.schedules import get_schedule

ALL_RECIPES = sorted(OPTIMIZERS)


def _tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))


@pytest.mark.parametrize("name", ALL_RECIPES)
def test_every_recipe_builds_and_one_step_changes_parameters(name: str) -> None:
    model = _tiny_model()
    optimizer, scheduler = build_optimizer(name, model.parameters(), total_epochs=10)
    recipe = OPTIMIZERS[name]
    assert type(optimizer) is getattr(torch.optim, recipe.torch_class)
    assert isinstance(scheduler, ScheduledLR)
    assert scheduler.schedule == recipe.schedule
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
    optimizer, scheduler = build_optimizer(name, _tiny_model().parameters(), total_epochs=10)
    hp = resolve_hparams(name)
    params = {k: hp[k] for k in recipe.schedule_fields}
    expected = get_schedule(recipe.schedule)(1, 10, lr_initial=hp["lr"], **params)
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
    _, scheduler = build_optimizer("sgd_step", _tiny_model().parameters(), 10, hp)
    assert scheduler.params == {"milestones": (0.3, 0.6), "gamma": 0.5}


def test_per_step_schedule_is_passed_through() -> None:
    _, scheduler = build_optimizer("taso", _tiny_model().parameters(), 10, steps_per_epoch=5)
    assert scheduler.steps_per_epoch == 5
    assert scheduler.current_epoch() == pytest.approx(0.2)


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
    ],
)
def test_bad_types_and_ranges_are_rejected_by_name(
    name: str, overrides: dict[str, Any], field: str
) -> None:
    with pytest.raises(ConfigError, match=field) as info:
        build_optimizer(name, _tiny_model().parameters(), 10, overrides)
    assert info.value.field == field


@pytest.mark.parametrize("name", ["taso", "sgd", "sgd_cosine"])
def test_nesterov_without_momentum_is_rejected(name: str) -> None:
    with pytest.raises(ConfigError, match="nesterov"):
        resolve_hparams(name, {"nesterov": True, "momentum": 0.0})
    assert resolve_hparams(name, {"nesterov": False, "momentum": 0.0})["momentum"] == 0.0
