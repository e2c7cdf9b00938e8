"""Optimizer recipes: a registry that builds ``(torch optimizer, lr schedule)`` from a flat dict.

Defaults follow the paper and, where it is silent, the authors' code (see the README, "Where taso-tune departs from the paper"):
TASO is SGD with momentum 0.9 (not Nesterov) and weight decay 1e-4 under the TASO schedule;
Adam/AMSGrad use betas (0.9, 0.99); RMSProp decay 0.99; Adagrad torch defaults. The ``sgd_*``
recipes and ``adamw_cosine`` are the schedules a reviewer would compare TASO with (beyond the paper);
``sgd_schedulefree`` and ``adamw_schedulefree`` are Schedule-Free SGD and AdamW (Defazio et al. 2024,
PyPI's ``schedulefree``), which need no planned horizon at all. Their ``warmup`` is a fraction of the
run's optimizer steps, as WSD's is; the training loop switches them between training and evaluation
mode (:func:`set_mode`): each epoch trains at the optimizer's own iterate and is evaluated, and saved,
at its averaged weights. A BatchNorm model keeps the running statistics of the training iterate.

Each recipe also says how often its schedule updates the lr by default (``Recipe.granularity``):
TASO once per epoch, as the paper evaluates Eq. (1) at k = 1..k_t; the annealing baselines once per
optimizer step, so a short plan still anneals smoothly and its last step runs at ``lr_final``
(updated per epoch, the whole last epoch would); constant-lr recipes per epoch (nothing changes).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from taso_tune.core.checks import NON_NEGATIVE, POSITIVE, UNIT_HALF_OPEN, Range, check_number
from taso_tune.core.errors import ConfigError, Registry
from taso_tune.schedules.lr_scheduler import TASO, ScheduledLR
from taso_tune.schedules.maths import (
    SCHEDULE_GRANULARITIES,
    TASO_ALPHA,
    TASO_BETA,
    Granularity,
    ScheduleGranularity,
    check_schedule_params,
)

_SGD = {"lr": 0.05, "momentum": 0.9, "nesterov": False, "weight_decay": 1e-4}
_ADAM = {"lr": 0.0005, "beta1": 0.9, "beta2": 0.99, "eps": 1e-8, "weight_decay": 0.0}


@dataclass(frozen=True)
class Recipe:
    """How to build one optimizer family: the torch class, its defaults, its lr schedule, and how
    often that schedule updates the lr unless a run asks otherwise (``granularity``)."""

    name: str
    torch_class: str
    defaults: Mapping[str, Any]
    schedule: str = "constant"
    schedule_fields: tuple[str, ...] = ()
    description: str = ""
    fixed: Mapping[str, Any] = field(default_factory=dict)
    granularity: Granularity = "epoch"
    package: str = "torch.optim"  # where torch_class lives

    @property
    def schedule_free(self) -> bool:
        """Whether the optimizer averages its own iterates (no schedule; train/eval modes)."""
        return self.package == "schedulefree"

    def torch_kwargs(self, hp: Mapping[str, Any]) -> dict[str, Any]:
        kw = {k: v for k, v in hp.items() if k not in self.schedule_fields}
        if "beta1" in kw:
            kw["betas"] = (kw.pop("beta1"), kw.pop("beta2"))
        if "rho" in kw:
            kw["alpha"] = kw.pop("rho")  # torch's RMSprop calls the decay rate alpha
        if self.schedule_free:
            kw.pop("warmup")  # a share of the run: build_optimizer turns it into warmup_steps
        return {**kw, **self.fixed}


OPTIMIZERS: Registry = Registry("optimizer")


def _add(recipe: Recipe) -> None:
    OPTIMIZERS[recipe.name] = recipe


_add(
    Recipe(
        "taso",
        "SGD",
        {**_SGD, "alpha": TASO_ALPHA, "beta": TASO_BETA, "lr_final": None},
        "taso",
        ("alpha", "beta", "lr_final"),
        "SGD + TASO sigmoid schedule (the paper)",
    )
)
_add(Recipe("sgd", "SGD", dict(_SGD), description="SGD, constant lr (the paper's Table IV search)"))
_add(
    Recipe(
        "sgd_cosine",
        "SGD",
        {**_SGD, "lr_final": 0.0},
        "cosine",
        ("lr_final",),
        "SGD + cosine annealing",
        granularity="step",
    )
)
_add(
    Recipe(
        "sgd_linear",
        "SGD",
        {**_SGD, "lr_final": 0.0},
        "linear",
        ("lr_final",),
        "SGD + budget-aware linear decay to zero",
        granularity="step",
    )
)
_add(
    Recipe(
        "sgd_step",
        "SGD",
        {**_SGD, "milestones": (0.5, 0.75), "gamma": 0.1},
        "step",
        ("milestones", "gamma"),
        "SGD + step decay at fractions of the run",
        granularity="step",
    )
)
_add(
    Recipe(
        "sgd_wsd",
        "SGD",
        {**_SGD, "lr_final": 0.0, "warmup": 0.05, "decay": 0.2},
        "wsd",
        ("lr_final", "warmup", "decay"),
        "SGD + warmup-stable-decay",
        granularity="step",
    )
)
_add(Recipe("adam", "Adam", dict(_ADAM), description="Adam, betas (0.9, 0.99)"))
_add(
    Recipe(
        "amsgrad",
        "Adam",
        dict(_ADAM),
        description="Adam with the AMSGrad fix",
        fixed={"amsgrad": True},
    )
)
_add(
    Recipe(
        "rmsprop",
        "RMSprop",
        {
            "lr": 0.0005,
            "rho": 0.99,
            "centered": False,
            "momentum": 0.0,
            "eps": 1e-8,
            "weight_decay": 0.0,
        },
        description="RMSProp (plain or centered)",
    )
)
_add(
    Recipe(
        "adagrad",
        "Adagrad",
        {"lr": 0.05, "lr_decay": 0.0, "eps": 1e-10, "weight_decay": 0.0},
        description="Adagrad",
    )
)
_add(
    Recipe(
        "adamw_cosine",
        "AdamW",
        {
            "lr": 0.001,
            "beta1": 0.9,
            "beta2": 0.999,
            "eps": 1e-8,
            "weight_decay": 0.01,
            "lr_final": 0.0,
        },
        "cosine",
        ("lr_final",),
        "AdamW + cosine annealing",
        granularity="step",
    )
)

_add(
    Recipe(
        "sgd_schedulefree",
        "SGDScheduleFree",
        {"lr": 1.0, "momentum": 0.9, "weight_decay": 1e-4, "warmup": 0.05},
        description="Schedule-Free SGD (Defazio et al. 2024): no schedule, no horizon",
        package="schedulefree",
    )
)
_add(
    Recipe(
        "adamw_schedulefree",
        "AdamWScheduleFree",
        {
            "lr": 0.0025,
            "beta1": 0.9,
            "beta2": 0.999,
            "eps": 1e-8,
            "weight_decay": 0.0,
            "warmup": 0.05,
        },
        description="Schedule-Free AdamW (Defazio et al. 2024): no schedule, no horizon",
        package="schedulefree",
    )
)

#: The torch optimizers' numeric fields and their ranges. The schedule's fields (alpha, beta,
#: lr_final, milestones, gamma, warmup, decay) are checked by the schedule itself.
_RANGES: dict[str, Range] = {
    "lr": POSITIVE,
    "eps": POSITIVE,
    "weight_decay": NON_NEGATIVE,
    "lr_decay": NON_NEGATIVE,
    "momentum": UNIT_HALF_OPEN,  # heavy-ball momentum >= 1 never forgets a gradient
    "beta1": UNIT_HALF_OPEN,
    "beta2": UNIT_HALF_OPEN,
    "rho": UNIT_HALF_OPEN,
    "warmup": UNIT_HALF_OPEN,  # a schedule-free recipe's share of the run's steps
}


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
        if not isinstance(value, (list, tuple)) or not all(
            isinstance(v, (int, float)) for v in value
        ):
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
            raise ConfigError(
                key, value, f"not a field of optimizer {name!r}", choices=sorted(recipe.defaults)
            )
        hp[key] = _coerce(name, key, recipe.defaults[key], value)
    for key, value in hp.items():
        if key in _RANGES:
            check_number(key, value, _RANGES[key])
    if hp.get("nesterov") and not hp.get("momentum"):
        raise ConfigError("nesterov", True, "Nesterov momentum needs momentum > 0")
    # lr is the schedule's lr_initial: lr_final < lr, milestones, warmup + decay <= 1, ...
    check_schedule_params(
        recipe.schedule, lr_initial=hp["lr"], **{k: hp[k] for k in recipe.schedule_fields}
    )
    return hp


def resolve_granularity(name: str, granularity: ScheduleGranularity = "auto") -> Granularity:
    """How often recipe ``name``'s schedule updates the lr: ``granularity``, or the recipe's own for ``auto``."""
    recipe: Recipe = OPTIMIZERS.get_or_fail(name, "optimizer")
    if granularity not in SCHEDULE_GRANULARITIES:
        raise ConfigError(
            "schedule_granularity",
            granularity,
            "unknown granularity",
            choices=SCHEDULE_GRANULARITIES,
        )
    return recipe.granularity if granularity == "auto" else granularity


def build_optimizer(
    name: str,
    parameters: Iterable[torch.nn.Parameter],
    total_epochs: int,
    hparams: Mapping[str, Any] | None = None,
    *,
    steps_per_epoch: int | None = None,
    granularity: ScheduleGranularity = "auto",
    fused: bool = False,
) -> tuple[torch.optim.Optimizer, ScheduledLR]:
    """Build the optimizer and its lr schedule for recipe ``name``.

    ``granularity`` says how often the schedule updates the lr (``auto``: the recipe's own, see
    ``Recipe.granularity``); ``scheduler.granularity`` tells the caller when to call
    ``scheduler.step()``: after every optimizer step (``"step"``) or after every epoch (``"epoch"``).
    Per step needs ``steps_per_epoch``, the optimizer steps in an epoch.
    ``fused`` asks torch for its fused CUDA implementation where the class has one.
    """
    recipe: Recipe = OPTIMIZERS.get_or_fail(name, "optimizer")
    hp = resolve_hparams(name, hparams)
    per_step = resolve_granularity(name, granularity) == "step"
    if per_step and steps_per_epoch is None:
        raise ConfigError(
            "steps_per_epoch",
            None,
            f"optimizer {name!r} updates its lr every step: "
            "give the optimizer steps per epoch, or granularity 'epoch'",
        )
    steps = steps_per_epoch if per_step else None
    cls = getattr(importlib.import_module(recipe.package), recipe.torch_class)
    kwargs = recipe.torch_kwargs(hp)
    if recipe.schedule_free:
        if steps_per_epoch is None:
            raise ConfigError(
                "steps_per_epoch",
                None,
                f"optimizer {name!r} warms up over a share of the run's steps: give the optimizer "
                "steps per epoch",
            )
        kwargs["warmup_steps"] = round(hp["warmup"] * total_epochs * steps_per_epoch)
    if fused and recipe.torch_class in ("SGD", "Adam", "AdamW", "Adagrad"):
        kwargs["fused"] = True
    optimizer = cls(parameters, **kwargs)
    sched_params = {k: hp[k] for k in recipe.schedule_fields}
    if recipe.schedule == "taso":
        scheduler: ScheduledLR = TASO(
            optimizer, total_epochs, steps_per_epoch=steps, **sched_params
        )
    else:
        scheduler = ScheduledLR(
            optimizer, recipe.schedule, total_epochs, steps_per_epoch=steps, **sched_params
        )
    return optimizer, scheduler


def set_mode(optimizer: torch.optim.Optimizer, training: bool) -> None:
    """Put a schedule-free optimizer in training mode (before its steps) or evaluation mode (its
    averaged weights: before evaluating or saving the model); other optimizers have no modes."""
    switch = getattr(optimizer, "train" if training else "eval", None)
    if callable(switch):
        switch()
