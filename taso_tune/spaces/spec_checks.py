"""Checks of a SweepSpec that look at several of its fields together (seeds, scheduler, packing)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from taso_tune.core.errors import ConfigError
from taso_tune.spaces.values import is_int

if TYPE_CHECKING:
    from taso_tune.spaces.spec import SweepSpec


def check_seeds(spec: SweepSpec) -> None:
    """The ``seeds`` forms and ``seeds_per_trial``."""
    if not is_int(spec.seed_start) or spec.seed_start < 0:
        raise ConfigError("seeds.start", spec.seed_start, "must be an integer >= 0")
    if spec.seed_list is not None:
        if not all(is_int(s) and s >= 0 for s in spec.seed_list) or len(set(spec.seed_list)) != len(
            spec.seed_list
        ):
            raise ConfigError(
                "seeds", list(spec.seed_list), "a list of seeds holds distinct integers >= 0"
            )
        if len(spec.seed_list) != spec.seeds:
            raise ConfigError(
                "seeds",
                list(spec.seed_list),
                f"lists {len(spec.seed_list)} seeds, not {spec.seeds}",
            )
    if spec.seeds_per_trial not in ("all", 1):
        raise ConfigError(
            "seeds_per_trial",
            spec.seeds_per_trial,
            "how a configuration's seeds share trials",
            choices=["all", 1],
        )


def check_scheduler(spec: SweepSpec) -> None:
    """The scheduler against the epochs, the search and how seeds share trials."""
    epochs, scheduler = spec.epochs, spec.scheduler
    if (
        scheduler.type == "asha"
        and spec.seeds_per_trial == 1
        and spec.seeds > 1
        and not scheduler.per_seed
    ):
        raise ConfigError(
            "seeds_per_trial",
            1,
            "under ASHA each seed would be stopped on its own, so a "
            "configuration's mean would be over the seeds that happened to survive; keep "
            "seeds_per_trial: all (every seed of a configuration in one trial, judged by "
            "their mean), or set scheduler.per_seed: true to run that biased baseline on purpose",
        )
    if scheduler.per_seed and spec.seeds_per_trial != 1:
        raise ConfigError("scheduler.per_seed", True, "per-seed ASHA needs seeds_per_trial: 1")
    if scheduler.type == "asha" and scheduler.grace_period >= epochs:
        raise ConfigError(
            "scheduler.grace_period",
            scheduler.grace_period,
            f"must be less than the epochs ({epochs})",
        )
    if scheduler.type == "budget-sh":
        if scheduler.min_epochs is not None and scheduler.min_epochs > epochs:
            raise ConfigError(
                "scheduler.min_epochs",
                scheduler.min_epochs,
                f"must be at most the epochs ({epochs})",
            )
        if spec.search.type == "optuna":
            raise ConfigError(
                "scheduler.type",
                "budget-sh",
                "needs a list of configurations (search grid or random), not optuna",
            )


def check_packing(spec: SweepSpec) -> None:
    """``seed_packing: stacked`` against ``compile: true``: the stacked model cannot be compiled,
    so every trial of two or more seeds would fail; refused here, before Ray starts (a trial of one
    seed trains it alone, compiled)."""
    if spec.seed_packing != "stacked" or spec.seeds < 2 or spec.seeds_per_trial == 1:
        return
    if spec.train.get("compile") is True:
        raise ConfigError(
            "train.compile",
            True,
            "is not supported with seed_packing: stacked (use seed_packing: separate or auto)",
        )
    for i, block in enumerate(spec.blocks):
        value = block.get("compile")
        if value is not None and any(option is True for option in value.options):
            raise ConfigError(
                f"blocks[{i}].compile",
                True,
                "is not supported with seed_packing: stacked (use seed_packing: separate or auto)",
            )
