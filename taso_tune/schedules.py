"""Learning-rate schedules as pure functions of training progress (no torch).

Every schedule has the signature ``f(epoch, total_epochs, *, lr_initial, **params) -> float`` where
``epoch`` is 1-based and may be fractional (per-step use: ``(global_step + 1) / steps_per_epoch``).
The value returned is the learning rate in force *during* that epoch.

TASO, Eq. (1) of Macedo et al., "Training Aware Sigmoidal Optimizer"::

    eps(k) = eps_i / (1 + exp(alpha * (k / k_t - beta))) + eps_f

with ``eps_i`` = ``lr_initial``, ``eps_f`` = ``lr_final`` (default ``lr_initial / 20``, the paper's
recommendation), ``k`` = ``epoch`` and ``k_t`` = ``total_epochs``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

from taso_tune.errors import ConfigError, Registry

#: The paper's heuristic: both alpha*beta and alpha*(1-beta) above this keep the endpoints within 5%.
TASO_HEURISTIC_MIN = 6.0
TASO_FINAL_DIVISOR = 20.0


def _check_common(epoch: float, total_epochs: int, lr_initial: float) -> None:
    if total_epochs < 1:
        raise ConfigError("total_epochs", total_epochs, "must be >= 1")
    if not lr_initial > 0:
        raise ConfigError("lr_initial", lr_initial, "must be > 0")
    if epoch < 0:
        raise ConfigError("epoch", epoch, "must be >= 0")


def _check_lr_final(lr_final: float) -> None:
    if not lr_final >= 0:
        raise ConfigError("lr_final", lr_final, "must be >= 0")


def _check_alpha_beta(alpha: float, beta: float) -> None:
    if not alpha > 0:
        raise ConfigError("alpha", alpha, "must be > 0")
    if not 0 < beta < 1:
        raise ConfigError("beta", beta, "must be in the open interval (0, 1)")


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


def taso_lr(
    epoch: float,
    total_epochs: int,
    *,
    lr_initial: float,
    lr_final: float | None = None,
    alpha: float = 25.0,
    beta: float = 0.7,
) -> float:
    """TASO learning rate for 1-based ``epoch`` of ``total_epochs``, Eq. (1) of the paper."""
    _check_common(epoch, total_epochs, lr_initial)
    _check_alpha_beta(alpha, beta)
    if lr_final is None:
        lr_final = lr_initial / TASO_FINAL_DIVISOR
    _check_lr_final(lr_final)
    return lr_initial * _sigmoid_of_negative(alpha * (epoch / total_epochs - beta)) + lr_final


def constant_lr(epoch: float, total_epochs: int, *, lr_initial: float) -> float:
    """The same learning rate throughout (the paper's Table IV search)."""
    _check_common(epoch, total_epochs, lr_initial)
    return lr_initial


def _progress(epoch: float, total_epochs: int) -> float:
    """Fraction of training done before ``epoch`` starts: 0 in epoch 1, (k_t-1)/k_t in the last."""
    return min(max((epoch - 1.0) / total_epochs, 0.0), 1.0)


def cosine_lr(
    epoch: float, total_epochs: int, *, lr_initial: float, lr_final: float = 0.0
) -> float:
    """Cosine annealing from ``lr_initial`` towards ``lr_final`` over the planned run."""
    _check_common(epoch, total_epochs, lr_initial)
    _check_lr_final(lr_final)
    p = _progress(epoch, total_epochs)
    return lr_final + (lr_initial - lr_final) * 0.5 * (1.0 + math.cos(math.pi * p))


def linear_lr(
    epoch: float, total_epochs: int, *, lr_initial: float, lr_final: float = 0.0
) -> float:
    """Budget-aware linear decay to ``lr_final`` (Li et al., 2019): zero at the end by default."""
    _check_common(epoch, total_epochs, lr_initial)
    _check_lr_final(lr_final)
    p = _progress(epoch, total_epochs)
    return lr_final + (lr_initial - lr_final) * (1.0 - p)


def step_lr(
    epoch: float,
    total_epochs: int,
    *,
    lr_initial: float,
    milestones: tuple[float, ...] = (0.5, 0.75),
    gamma: float = 0.1,
) -> float:
    """Step decay: multiply by ``gamma`` at each milestone (fractions of the planned run)."""
    _check_common(epoch, total_epochs, lr_initial)
    if not 0 < gamma <= 1:
        raise ConfigError("gamma", gamma, "must be in (0, 1]")
    for m in milestones:
        if not 0 < m < 1:
            raise ConfigError("milestones", milestones, "each milestone must be in (0, 1)")
    p = _progress(epoch, total_epochs)
    passed = sum(1 for m in milestones if p >= m)
    return lr_initial * gamma**passed


def wsd_lr(
    epoch: float,
    total_epochs: int,
    *,
    lr_initial: float,
    lr_final: float = 0.0,
    warmup: float = 0.05,
    decay: float = 0.2,
) -> float:
    """Warmup-stable-decay: linear warmup, a constant plateau, then linear decay over the last part.

    ``warmup`` and ``decay`` are fractions of the planned run; like TASO it is training aware.
    """
    _check_common(epoch, total_epochs, lr_initial)
    _check_lr_final(lr_final)
    if not 0 <= warmup < 1:
        raise ConfigError("warmup", warmup, "must be in [0, 1)")
    if not 0 < decay <= 1 or warmup + decay > 1:
        raise ConfigError("decay", decay, "must be in (0, 1] with warmup + decay <= 1")
    p = _progress(epoch, total_epochs)
    if warmup > 0 and p < warmup:
        return lr_initial * (p + 1.0 / total_epochs) / (warmup + 1.0 / total_epochs)
    decay_start = 1.0 - decay
    if p < decay_start:
        return lr_initial
    q = (p - decay_start) / decay
    return lr_final + (lr_initial - lr_final) * (1.0 - q)


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
