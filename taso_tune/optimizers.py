"""Optimizer recipes: a registry that builds ``(torch optimizer, lr schedule)`` from a flat dict.

Defaults follow the paper and, where it is silent, the authors' code (see the README, "Where taso-tune departs from the paper"):
TASO is SGD with momentum 0.9 (not Nesterov) and weight decay 1e-4 under the TASO schedule;
Adam/AMSGrad use betas (0.9, 0.99); RMSProp decay 0.99; Adagrad torch defaults. The ``sgd_*``
recipes and ``adamw_cosine`` are the schedules a reviewer would compare TASO with (beyond the paper).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from taso_tune.errors import ConfigError, Registry
from taso_tune.lr_scheduler import TASO, ScheduledLR

_SGD = {"lr": 0.05, "momentum": 0.9, "nesterov": False, "weight_decay": 1e-4}
_ADAM = {"lr": 0.0005, "beta1": 0.9, "beta2": 0.99, "eps": 1e-8, "weight_decay": 0.0}


@dataclass(frozen=True)
class Recipe:
    """How to build one optimizer family: the torch class, its defaults, and its lr schedule."""

    name: str
    torch_class: str
    defaults: Mapping[str, Any]
    schedule: str = "constant"
    schedule_fields: tuple[str, ...] = ()
    description: str = ""
    fixed: Mapping[str, Any] = field(default_factory=dict)

    def torch_kwargs(self, hp: Mapping[str, Any]) -> dict[str, Any]:
        kw = {k: v for k, v in hp.items() if k not in self.schedule_fields}
        if "beta1" in kw:
            kw["betas"] = (kw.pop("beta1"), kw.pop("beta2"))
        if "rho" in kw:
            kw["alpha"] = kw.pop("rho")  # torch's RMSprop calls the decay rate alpha
        return {**kw, **self.fixed}


OPTIMIZERS: Registry = Registry("optimizer")


def _add(recipe: Recipe) -> None:
    OPTIMIZERS[recipe.name] = recipe


_add(Recipe("taso", "SGD", {**_SGD, "alpha": 25.0, "beta": 0.7, "lr_final": None}, "taso",
            ("alpha", "beta", "lr_final"), "SGD + TASO sigmoid schedule (the paper)"))  # fmt: skip
_add(Recipe("sgd", "SGD", dict(_SGD), description="SGD, constant lr (the paper's Table IV search)"))
_add(Recipe("sgd_cosine", "SGD", {**_SGD, "lr_final": 0.0}, "cosine", ("lr_final",),
            "SGD + cosine annealing"))  # fmt: skip
_add(Recipe("sgd_linear", "SGD", {**_SGD, "lr_final": 0.0}, "linear", ("lr_final",),
            "SGD + budget-aware linear decay to zero"))  # fmt: skip
_add(Recipe("sgd_step", "SGD", {**_SGD, "milestones": (0.5, 0.75), "gamma": 0.1}, "step",
            ("milestones", "gamma"), "SGD + step decay at fractions of the run"))  # fmt: skip
_add(Recipe("sgd_wsd", "SGD", {**_SGD, "lr_final": 0.0, "warmup": 0.05, "decay": 0.2}, "wsd",
            ("lr_final", "warmup", "decay"), "SGD + warmup-stable-decay"))  # fmt: skip
_add(Recipe("adam", "Adam", dict(_ADAM), description="Adam, betas (0.9, 0.99)"))
_add(Recipe("amsgrad", "Adam", dict(_ADAM), description="Adam with the AMSGrad fix",
            fixed={"amsgrad": True}))  # fmt: skip
_add(Recipe("rmsprop", "RMSprop",
            {"lr": 0.0005, "rho": 0.99, "centered": False, "momentum": 0.0, "eps": 1e-8, "weight_decay": 0.0},
            description="RMSProp (plain or centered)"))  # fmt: skip
_add(Recipe("adagrad", "Adagrad", {"lr": 0.05, "lr_decay": 0.0, "eps": 1e-10, "weight_decay": 0.0},
            description="Adagrad"))  # fmt: skip
_add(Recipe("adamw_cosine", "AdamW",
            {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.01, "lr_final": 0.0},
            "cosine", ("lr_final",), "AdamW + cosine annealing"))  # fmt: skip

_POSITIVE = {"lr", "eps", "alpha"}
_NON_NEGATIVE = {"weight_decay", "momentum", "lr_decay", "lr_final"}
_UNIT_OPEN = {"beta"}
_UNIT_HALF_OPEN = {"beta1", "beta2", "rho"}  # [0, 1)


def _coerce(name: str, field_name: str, default: Any, value: Any) -> Any:
    """Check a value against the type of its default (ints accepted for floats)."""
    if value is None:
        if default is None:
            return None
        raise ConfigError(field_name, value, f"must not be empty for optimizer {name!r}")
    if isinstance(default, bool) or field_name in ("nesterov", "centered"):
        if not isinstance(value, bool):
            raise ConfigError(field_name, value, "must be true or false")
        return value
    if isinstance(default, tuple):
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, (int, float)) for v in value):
            raise ConfigError(field_name, value, "must be a list of numbers")
        return tuple(float(v) for v in value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(field_name, value, "must be a number")
    return float(value)


def resolve_hparams(name: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The recipe's defaults with ``overrides`` applied, every field checked.

    Unknown optimizer names and unknown fields fail with the list of valid choices.
    """
    recipe: Recipe = OPTIMIZERS.get_or_fail(name, "optimizer")
    hp = dict(recipe.defaults)
    for key, value in (overrides or {}).items():
        if key not in recipe.defaults:
            raise ConfigError(key, value, f"not a field of optimizer {name!r}", choices=sorted(recipe.defaults))
        hp[key] = _coerce(name, key, recipe.defaults[key], value)
    for key, value in hp.items():
        if value is None or isinstance(value, (bool, tuple)):
            continue
        if key in _POSITIVE and not value > 0:
            raise ConfigError(key, value, "must be > 0")
        if key in _NON_NEGATIVE and not value >= 0:
            raise ConfigError(key, value, "must be >= 0")
        if key in _UNIT_OPEN and not 0 < value < 1:
            raise ConfigError(key, value, "must be in the open interval (0, 1)")
        if key in _UNIT_HALF_OPEN and not 0 <= value < 1:
            raise ConfigError(key, value, "must be in [0, 1)")
    if hp.get("nesterov") and not hp.get("momentum"):
        raise ConfigError("nesterov", True, "Nesterov momentum needs momentum > 0")
    return hp


def build_optimizer(
    name: str,
    parameters: Iterable[torch.nn.Parameter],
    total_epochs: int,
    hparams: Mapping[str, Any] | None = None,
    *,
    steps_per_epoch: int | None = None,
    fused: bool = False,
) -> tuple[torch.optim.Optimizer, ScheduledLR]:
    """Build the optimizer and its lr schedule for recipe ``name``.

    ``steps_per_epoch`` switches the schedule to per-step updates (call ``scheduler.step()`` after
    every optimizer step); without it the schedule steps once per epoch, as in the paper.
    ``fused`` asks torch for its fused CUDA implementation where the class has one.
    """
    recipe: Recipe = OPTIMIZERS.get_or_fail(name, "optimizer")
    hp = resolve_hparams(name, hparams)
    cls = getattr(torch.optim, recipe.torch_class)
    kwargs = recipe.torch_kwargs(hp)
    if fused and recipe.torch_class in ("SGD", "Adam", "AdamW", "Adagrad"):
        kwargs["fused"] = True
    optimizer = cls(parameters, **kwargs)
    sched_params = {k: hp[k] for k in recipe.schedule_fields}
    if recipe.schedule == "taso":
        scheduler: ScheduledLR = TASO(optimizer, total_epochs, steps_per_epoch=steps_per_epoch, **sched_params)
    else:
        scheduler = ScheduledLR(
            optimizer, recipe.schedule, total_epochs, steps_per_epoch=steps_per_epoch, **sched_params
        )
    return optimizer, scheduler
