"""The ``scheduler:``, ``search:`` and ``resources:`` sections of a space file."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from taso_tune.core.errors import ConfigError
from taso_tune.spaces.values import is_int, is_number, require_int

SCHEDULER_TYPES = ("asha", "cooldown-asha", "top-k", "none", "budget-sh")
SEARCH_TYPES = ("grid", "random", "optuna")
#: cooldown-asha's default branch length, a fraction of the rung's epochs (docs/early-stopping.md).
DEFAULT_COOLDOWN = 0.25
SCHEDULER_KEYS = {
    "asha": ("type", "grace_period", "reduction_factor", "per_seed"),
    "cooldown-asha": ("type", "grace_period", "reduction_factor", "cooldown"),
    "top-k": ("type", "grace_period", "reduction_factor"),
    "none": ("type",),
    "budget-sh": ("type", "reduction_factor", "min_epochs"),
}
SEARCH_KEYS = {
    "grid": ("type",),
    "random": ("type", "num_samples", "seed"),
    "optuna": ("type", "num_samples", "seed"),
}


def _reset_unused(settings: Any, used: tuple[str, ...]) -> None:
    """Put the fields its type does not use back to their defaults, so that
    ``replace(scheduler, type="none")`` equals ``SchedulerSpec("none")`` (files may not set them)."""
    for name, spec_field in type(settings).__dataclass_fields__.items():
        if name not in used:
            object.__setattr__(settings, name, spec_field.default)


@dataclass(frozen=True)
class SchedulerSpec:
    """How trials are stopped early: ASHA, no early stopping, or budget-aware successive halving.

    ``budget-sh`` retrains each rung's survivors from scratch with a larger budget (TASO plans its
    decay from the total epochs, so a short run is a different schedule, not a prefix of the long one).
    ``cooldown-asha`` is ASHA's rungs and halving, but at each rung every trial is judged by a
    throwaway cooldown branch forked from its run (its schedule's decay compressed into ``cooldown``
    times the rung's epochs), not by its un-decayed metric; the main run goes on unchanged.
    ``top-k`` waits until every trial has trained ``grace_period`` epochs of its real run, keeps the
    best ``ceil(trials / reduction_factor)`` and runs them to the end (one synchronous rung: which
    trials it keeps does not depend on the order they report in).
    """

    type: Literal["asha", "cooldown-asha", "top-k", "none", "budget-sh"] = "asha"
    grace_period: int = 1
    reduction_factor: float = 3.0
    min_epochs: int | None = None
    #: cooldown-asha: a branch's epochs as a fraction of its rung's epochs (at least one epoch)
    cooldown: float = DEFAULT_COOLDOWN
    #: ASHA with one seed per trial, stopping seeds one by one: a biased baseline, kept for the
    #: early-stopping study; a space must ask for it (with ``seeds_per_trial: 1``).
    per_seed: bool = False

    def __post_init__(self) -> None:
        if self.type not in SCHEDULER_TYPES:
            raise ConfigError(
                "scheduler.type", self.type, "unknown scheduler", choices=SCHEDULER_TYPES
            )
        require_int("scheduler.grace_period", self.grace_period, 1)
        if not is_number(self.reduction_factor) or not self.reduction_factor > 1:
            raise ConfigError(
                "scheduler.reduction_factor", self.reduction_factor, "must be a number > 1"
            )
        object.__setattr__(self, "reduction_factor", float(self.reduction_factor))
        if self.min_epochs is not None:
            require_int("scheduler.min_epochs", self.min_epochs, 1)
        if not is_number(self.cooldown) or not 0 < self.cooldown <= 1:
            raise ConfigError("scheduler.cooldown", self.cooldown, "must be a number in (0, 1]")
        object.__setattr__(self, "cooldown", float(self.cooldown))
        if not isinstance(self.per_seed, bool):
            raise ConfigError("scheduler.per_seed", self.per_seed, "must be true or false")
        _reset_unused(self, SCHEDULER_KEYS[self.type])

    def first_budget(self, epochs: int) -> int:
        """budget-sh: the first rung's epochs r (``min_epochs``, default ``max(1, epochs // eta**2)``)."""
        if self.min_epochs is not None:
            return self.min_epochs
        return max(1, int(epochs // self.reduction_factor**2))

    def rung_epochs(self, epochs: int) -> list[int]:
        """budget-sh: the budgets r, r*eta, r*eta^2, ... below ``epochs``, then ``epochs`` itself.

        Strictly increasing ints. A last geometric budget within a factor sqrt(eta) of ``epochs`` is
        replaced by ``epochs`` (100 epochs, eta 3, r 11 gives [11, 33, 100], not [11, 33, 99, 100]).
        """
        eta = self.reduction_factor
        budgets: list[int] = []
        budget = float(self.first_budget(epochs))
        while budget < epochs:
            whole = max(int(budget), budgets[-1] + 1 if budgets else 1)
            if whole >= epochs:
                break
            budgets.append(whole)
            budget *= eta
        if len(budgets) > 1 and budgets[-1] * math.sqrt(eta) >= epochs:
            budgets.pop()
        return [*budgets, epochs]

    def asha_rungs(self, epochs: int) -> list[int]:
        """asha, cooldown-asha: the epochs at which trials are compared, ``grace_period * eta**k``
        below ``epochs`` (rounded up: a trial is compared at its first report at or past a rung)."""
        # Ray's own milestones (ray.tune.schedulers.async_hyperband._Bracket, one bracket), to the bit
        grace, eta = self.grace_period, self.reduction_factor
        count = int(math.log(epochs / grace) / math.log(eta) + 1) if epochs > grace else 0
        milestones = (grace * eta**k for k in range(count))
        return sorted({math.ceil(m) for m in milestones if math.ceil(m) < epochs})

    def cooldown_plan(self, epochs: int) -> dict[int, int]:
        """cooldown-asha: each rung's epochs -> the epochs of the cooldown branches forked there,
        ``ceil(cooldown * rung)`` but never more than the run has left (empty for other types)."""
        if self.type != "cooldown-asha":
            return {}
        return {
            rung: min(max(1, math.ceil(round(self.cooldown * rung, 9))), epochs - rung)
            for rung in self.asha_rungs(epochs)
        }

    def kept(self, trials: int) -> int:
        """top-k: how many of ``trials`` run past the rung, ``ceil(trials / reduction_factor)``."""
        return math.ceil(round(trials / self.reduction_factor, 9))

    def checkpoint_epochs(self) -> frozenset[int]:
        """The epochs whose report must carry a checkpoint whatever ``checkpoint_every`` says:
        top-k's rung, where a trial is paused until every trial has reached it (and resumes from
        that checkpoint if it is kept)."""
        return frozenset({self.grace_period}) if self.type == "top-k" else frozenset()

    def to_dict(self) -> dict[str, Any]:
        return {
            key: getattr(self, key)
            for key in SCHEDULER_KEYS[self.type]
            if getattr(self, key, None) is not None
            and not (key == "per_seed" and not self.per_seed)
        }


@dataclass(frozen=True)
class SearchSpec:
    """How configurations are chosen: the full grid, random samples, or Optuna's proposals."""

    type: Literal["grid", "random", "optuna"] = "grid"
    num_samples: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.type not in SEARCH_TYPES:
            raise ConfigError("search.type", self.type, "unknown search", choices=SEARCH_TYPES)
        require_int("search.num_samples", self.num_samples, 1)
        if not is_int(self.seed):
            raise ConfigError("search.seed", self.seed, "must be an integer")
        _reset_unused(self, SEARCH_KEYS[self.type])

    def to_dict(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in SEARCH_KEYS[self.type]}


@dataclass(frozen=True)
class Resources:
    """Per-trial resources; ``gpus=None`` leaves the choice to the Ray layer
    (``tuning.tuner.DEFAULT_GPUS_PER_TRIAL[model]`` when the cluster has a GPU, else 0)."""

    cpus: float = 1.0
    gpus: float | None = None

    def __post_init__(self) -> None:
        for name, value in (("cpus", self.cpus), ("gpus", self.gpus)):
            if value is None and name == "gpus":
                continue
            lowest = "> 0" if name == "cpus" else ">= 0"
            if not is_number(value) or value < 0 or (name == "cpus" and value == 0):
                raise ConfigError(f"resources.{name}", value, f"must be a number {lowest}")
            if value > 1 and value != int(value):  # Ray's rule for resource amounts
                raise ConfigError(f"resources.{name}", value, "above 1 must be a whole number")

    def to_dict(self) -> dict[str, Any]:
        return {"cpus": self.cpus} if self.gpus is None else {"cpus": self.cpus, "gpus": self.gpus}
