"""Learning-rate schedules as pure functions of training progress (no torch).

Every schedule has the signature ``f(update, total_updates, *, lr_initial, **params) -> float``: the
learning rate in force from lr update ``update`` (1-based) of a plan of ``total_updates`` updates
until the next. A plan updates the lr once per epoch (``total_updates`` = the planned epochs, and
``update`` is the epoch ``k``) or once per optimizer step (``total_updates`` = epochs x steps per
epoch). ``update`` is normally an integer; a fractional one interpolates.

TASO, Eq. (1) of Macedo et al., "Training Aware Sigmoidal Optimizer"::

    eps(k) = eps_i / (1 + exp(alpha * (k / k_t - beta))) + eps_f

with ``eps_i`` = ``lr_initial``, ``eps_f`` = ``lr_final`` (default ``lr_initial / 20``, the paper's
recommendation) and ``k / k_t`` = ``update / total_updates``: per epoch that is exactly the paper's
epoch ``k`` of ``k_t`` (its first update at ``1 / k_t``, its last at ``k_t / k_t`` = 1); per step it is
Eq. (1) at the fractional epoch ``k = update / steps_per_epoch``.

The annealing baselines (``cosine``, ``linear``, ``step``, ``wsd``) are defined on the plan's progress
``p = (update - 1) / (total_updates - 1)``: the first update runs at ``p = 0`` (``lr_initial``) and the
last at ``p = 1`` (``lr_final``), so every plan, however short, ends its decay. A plan of a single
update runs at ``p = 0``, i.e. at ``lr_initial``: there is nothing to anneal, and ``lr_final``
(0 by default) for the whole run would not train at all.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable, Sequence
from itertools import pairwise
from typing import Any, Literal, get_args

from taso_tune.core.checks import (
    NON_NEGATIVE,
    POSITIVE,
    UNIT_HALF_OPEN,
    UNIT_LEFT_OPEN,
    UNIT_OPEN,
    check_integer,
    check_number,
)
from taso_tune.core.errors import ConfigError, Registry

#: How often a plan updates the lr: after every epoch, or after every optimizer step.
Granularity = Literal["epoch", "step"]
#: A run's choice of granularity: ``auto`` is its optimizer recipe's own.
ScheduleGranularity = Literal["auto", "epoch", "step"]
SCHEDULE_GRANULARITIES: tuple[str, ...] = get_args(ScheduleGranularity)

#: The paper's heuristic: both alpha*beta and alpha*(1-beta) above this keep the endpoints within 5%.
TASO_HEURISTIC_MIN = 6.0
TASO_FINAL_DIVISOR = 20.0
#: The paper's defaults for the sigmoid's steepness and the fraction of the run where it drops.
TASO_ALPHA = 25.0
TASO_BETA = 0.7


def _check_common(update: float, total_updates: int, lr_initial: float) -> None:
    check_integer("total_updates", total_updates, 1)
    check_number("lr_initial", lr_initial, POSITIVE)
    check_number("update", update, NON_NEGATIVE)


def _check_lr_final(lr_final: float, lr_initial: float) -> None:
    check_number("lr_final", lr_final, NON_NEGATIVE)
    if lr_final >= lr_initial:
        raise ConfigError("lr_final", lr_final, f"must be below lr_initial ({lr_initial:g})")


def _check_alpha_beta(alpha: float, beta: float) -> None:
    check_number("alpha", alpha, POSITIVE)
    check_number("beta", beta, UNIT_OPEN)


def check_taso_params(alpha: float, beta: float) -> None:
    """Validate alpha and beta; warn (not fail) when the paper's heuristic does not hold."""
    _check_alpha_beta(alpha, beta)
    if alpha * beta < TASO_HEURISTIC_MIN or alpha * (1 - beta) < TASO_HEURISTIC_MIN:
        warnings.warn(
            f"TASO alpha={alpha}, beta={beta}: the paper's heuristic asks alpha*beta and "
            f"alpha*(1-beta) both above {TASO_HEURISTIC_MIN:g} (here {alpha * beta:g} and "
            f"{alpha * (1 - beta):g}); the effective initial/final learning rates may drift "
            "more than 5% from lr_initial/lr_final",
            stacklevel=3,
        )


def _sigmoid_of_negative(z: float) -> float:
    """1 / (1 + exp(z)) without overflow for large |z|."""
    if z >= 0:
        e = math.exp(-z)
        return e / (1.0 + e)
    return 1.0 / (1.0 + math.exp(z))


def plan_progress(update: float, total_updates: int) -> float:
    """Progress ``p`` of ``update`` in a plan of ``total_updates``: 0 at the first, 1 at the last.

    Clamped to [0, 1] (a scheduler is stepped once past the plan's last update). A plan of one
    update is at ``p = 0`` throughout.
    """
    if total_updates == 1:
        return 0.0
    return min(max((update - 1.0) / (total_updates - 1), 0.0), 1.0)


def taso_lr(
    update: float,
    total_updates: int,
    *,
    lr_initial: float,
    lr_final: float | None = None,
    alpha: float = TASO_ALPHA,
    beta: float = TASO_BETA,
) -> float:
    """TASO learning rate at ``update`` of ``total_updates``, Eq. (1) with k / k_t = update / total_updates."""
    _check_common(update, total_updates, lr_initial)
    _check_alpha_beta(alpha, beta)
    if lr_final is None:
        lr_final = lr_initial / TASO_FINAL_DIVISOR
    _check_lr_final(lr_final, lr_initial)
    return lr_initial * _sigmoid_of_negative(alpha * (update / total_updates - beta)) + lr_final


def constant_lr(update: float, total_updates: int, *, lr_initial: float) -> float:
    """The same learning rate throughout (the paper's Table IV search)."""
    _check_common(update, total_updates, lr_initial)
    return lr_initial


def cosine_lr(
    update: float, total_updates: int, *, lr_initial: float, lr_final: float = 0.0
) -> float:
    """Cosine annealing from ``lr_initial`` at the first update to ``lr_final`` at the last."""
    _check_common(update, total_updates, lr_initial)
    _check_lr_final(lr_final, lr_initial)
    p = plan_progress(update, total_updates)
    return lr_final + (lr_initial - lr_final) * 0.5 * (1.0 + math.cos(math.pi * p))


def linear_lr(
    update: float, total_updates: int, *, lr_initial: float, lr_final: float = 0.0
) -> float:
    """Budget-aware linear decay (Li et al., 2019): ``lr_initial`` first, ``lr_final`` (0) last."""
    _check_common(update, total_updates, lr_initial)
    _check_lr_final(lr_final, lr_initial)
    p = plan_progress(update, total_updates)
    return lr_final + (lr_initial - lr_final) * (1.0 - p)


def _check_milestones(milestones: Sequence[float]) -> None:
    if isinstance(milestones, (str, bytes)) or not isinstance(milestones, Sequence):
        raise ConfigError("milestones", milestones, "must be a list of numbers")
    for m in milestones:
        check_number("milestones", m, UNIT_OPEN)
    if any(b <= a for a, b in pairwise(milestones)):
        raise ConfigError("milestones", milestones, "must be strictly increasing")


def step_lr(
    update: float,
    total_updates: int,
    *,
    lr_initial: float,
    milestones: Sequence[float] = (0.5, 0.75),
    gamma: float = 0.1,
) -> float:
    """Step decay: multiply by ``gamma`` from the first update at or past each milestone.

    ``milestones`` are fractions of the plan's progress ``p``, strictly increasing in (0, 1). The last
    update (``p = 1``) is past them all, so the plan ends at ``lr_initial * gamma ** len(milestones)``,
    the step schedule's final lr.
    """
    _check_common(update, total_updates, lr_initial)
    check_number("gamma", gamma, UNIT_LEFT_OPEN)
    _check_milestones(milestones)
    p = plan_progress(update, total_updates)
    passed = sum(1 for m in milestones if p >= m)
    return lr_initial * gamma**passed


def _nearest_count(x: float) -> int:
    """The whole number of updates nearest ``x`` (halves round up, unlike ``round``)."""
    return math.floor(x + 0.5)


def wsd_lr(
    update: float,
    total_updates: int,
    *,
    lr_initial: float,
    lr_final: float = 0.0,
    warmup: float = 0.05,
    decay: float = 0.2,
) -> float:
    """Warmup-stable-decay: a linear warmup, a plateau at ``lr_initial``, a linear decay to ``lr_final``.

    ``warmup`` and ``decay`` are fractions of the plan's progress ``p`` (``warmup + decay <= 1``),
    placed on the plan's ``U - 1`` intervals between updates and rounded to whole updates:

    - the decay takes ``D`` = the nearest count to ``decay * (U - 1)``, but at least one update, so
      every plan of two or more updates decays; they fall linearly from the plateau, the last at
      exactly ``lr_final``;
    - the plateau keeps at least one update at ``lr_initial`` (the peak);
    - the warmup takes ``W`` = the nearest count to ``warmup * (U - 1)`` of the updates left: a
      warmup shorter than half an update interval (a short plan updated per epoch) is no warmup.
      Its updates rise as ``lr_initial * u / (W + 1)``, reaching the peak at update ``W + 1``.

    With ``warmup = 0`` and ``decay = 1`` this is ``linear``. Like TASO it is training aware.
    """
    _check_common(update, total_updates, lr_initial)
    _check_lr_final(lr_final, lr_initial)
    check_number("warmup", warmup, UNIT_HALF_OPEN)
    check_number("decay", decay, UNIT_LEFT_OPEN)
    if warmup + decay > 1:
        raise ConfigError("decay", decay, f"warmup + decay must be <= 1 (warmup is {warmup:g})")
    if total_updates == 1:
        return lr_initial
    intervals = total_updates - 1
    decay_updates = min(max(_nearest_count(decay * intervals), 1), intervals)
    warmup_updates = min(_nearest_count(warmup * intervals), intervals - decay_updates)
    u = min(max(update, 1.0), float(total_updates))
    if u <= warmup_updates:
        return lr_initial * u / (warmup_updates + 1)
    peak_end = total_updates - decay_updates
    if u <= peak_end:
        return lr_initial
    return lr_final + (lr_initial - lr_final) * (total_updates - u) / decay_updates


ScheduleFn = Callable[..., float]

SCHEDULES: Registry = Registry(
    "schedule",
    {
        "taso": taso_lr,
        "constant": constant_lr,
        "cosine": cosine_lr,
        "linear": linear_lr,
        "step": step_lr,
        "wsd": wsd_lr,
    },
)


def get_schedule(name: str) -> ScheduleFn:
    """The schedule function registered as ``name``; fails listing the valid names."""
    return SCHEDULES.get_or_fail(name, "schedule")


def schedule_parameters(name: str) -> dict[str, Any]:
    """The parameters of schedule ``name`` beyond ``lr_initial``, with their defaults."""
    signature = inspect.signature(get_schedule(name))
    return {
        p.name: p.default
        for p in signature.parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name != "lr_initial"
    }


def check_schedule_params(name: str, *, lr_initial: float, **params: Any) -> None:
    """Validate ``params`` for schedule ``name`` at ``lr_initial`` before any update is computed.

    Unknown parameters fail with the schedule's parameter names; the values are checked by the
    schedule itself (evaluated once), so the checks live in one place.
    """
    known = schedule_parameters(name)
    for key, value in params.items():
        if key not in known:
            raise ConfigError(
                key, value, f"not a parameter of schedule {name!r}", choices=sorted(known)
            )
    get_schedule(name)(1, 1, lr_initial=lr_initial, **params)


def schedule_table(
    name: str,
    total_epochs: int,
    *,
    lr_initial: float,
    steps_per_epoch: int | None = None,
    **params: Any,
) -> list[tuple[int, int | None, float]]:
    """Every update of a plan as ``(epoch, step, lr)``, both 1-based.

    Without ``steps_per_epoch`` the plan updates once per epoch and ``step`` is ``None``; with it, once
    per optimizer step, ``step`` counting within the epoch.
    """
    check_integer("epochs", total_epochs, 1)
    check_schedule_params(name, lr_initial=lr_initial, **params)
    fn = get_schedule(name)
    if steps_per_epoch is None:
        return [
            (k, None, fn(k, total_epochs, lr_initial=lr_initial, **params))
            for k in range(1, total_epochs + 1)
        ]
    check_integer("steps_per_epoch", steps_per_epoch, 1)
    total = total_epochs * steps_per_epoch
    return [
        (
            epoch,
            step,
            fn((epoch - 1) * steps_per_epoch + step, total, lr_initial=lr_initial, **params),
        )
        for epoch in range(1, total_epochs + 1)
        for step in range(1, steps_per_epoch + 1)
    ]


def decay_start(name: str, total_updates: int, **params: Any) -> float | None:
    """The update of a plan where schedule ``name`` starts to decay, or ``None`` for one that never
    does (``constant``).

    ``cosine``, ``linear`` and ``step`` decay from their first update; ``wsd`` from the end of its
    plateau; ``taso`` has no sharp start, so its decay window is the one centred on its drop at
    ``beta``: from ``(2 beta - 1) k_t`` (the first update when ``beta <= 0.5``) to the end, over which
    the sigmoid falls from within ``exp(-alpha (1 - beta))`` of ``lr_initial`` to ``lr_final``.
    """
    check_integer("total_updates", total_updates, 1)
    get_schedule(name)
    if name == "constant":
        return None
    if name == "taso":
        beta = params.get("beta", TASO_BETA)
        return max(1.0, (2.0 * beta - 1.0) * total_updates)
    if name == "wsd" and total_updates > 1:
        decay = params.get("decay", 0.2)
        decay_updates = min(max(_nearest_count(decay * (total_updates - 1)), 1), total_updates - 1)
        return float(total_updates - decay_updates)
    return 1.0


def cooldown_lr(
    name: str,
    step: int,
    steps: int,
    *,
    update: float,
    total_updates: int,
    lr_initial: float,
    **params: Any,
) -> float:
    """The lr of step ``step`` (0-based) of a cooldown of ``steps`` steps forked from a plan at update
    ``update``: the rest of the schedule's decay, compressed into the cooldown.

    The cooldown runs the schedule from the later of ``update`` and its :func:`decay_start` to the
    plan's last update, evenly over its steps: its first step at the lr the schedule has there, its
    last at the schedule's final lr. TASO's sigmoid drop, WSD's linear decay, cosine and linear to
    their end all keep their shape. ``constant`` has no decay to compress (a ``ConfigError``).
    """
    check_integer("steps", steps, 1)
    start = decay_start(name, total_updates, **params)
    if start is None:
        raise ConfigError("schedule", name, "has no decay to cool down with")
    begin = max(float(update), start)
    fraction = min(max(step, 0), steps - 1) / max(steps - 1, 1)
    at = begin + (total_updates - begin) * fraction
    return get_schedule(name)(at, total_updates, lr_initial=lr_initial, **params)
