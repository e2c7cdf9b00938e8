"""Checks of a SweepSpec that look at several of its fields together (seeds, scheduler, packing);
the spec passes them its fields, so this module sits below it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from taso_tune.core.errors import ConfigError
from taso_tune.spaces.sections import SchedulerSpec, SearchSpec
from taso_tune.spaces.values import Value, is_int


def check_seeds(
    seeds: int, seed_start: Any, seed_list: tuple[Any, ...] | None, seeds_per_trial: Any
) -> None:
    """The ``seeds`` forms (a count, a count and a start, a list) and ``seeds_per_trial``."""
    if not is_int(seed_start) or seed_start < 0:
        raise ConfigError("seeds.start", seed_start, "must be an integer >= 0")
    if seed_list is not None:
        if not all(is_int(s) and s >= 0 for s in seed_list) or len(set(seed_list)) != len(
            seed_list
        ):
            raise ConfigError(
                "seeds", list(seed_list), "a list of seeds holds distinct integers >= 0"
            )
        if len(seed_list) != seeds:
            raise ConfigError(
                "seeds",
                list(seed_list),
                f"lists {len(seed_list)} seeds, not {seeds}",
            )
    if seeds_per_trial not in ("all", 1):
        raise ConfigError(
            "seeds_per_trial",
            seeds_per_trial,
            "how a configuration's seeds share trials",
            choices=["all", 1],
        )


def check_scheduler(
    scheduler: SchedulerSpec,
    search: SearchSpec,
    *,
    epochs: int,
    seeds: int,
    seeds_per_trial: Any,
    metric: str,
    max_concurrent: int | None = None,
) -> None:
    """The scheduler against the planned epochs, the search, how seeds share trials, the metric and
    the cap on trials at once."""
    if scheduler.type == "cooldown-asha":
        if seeds_per_trial == 1 and seeds > 1:
            raise ConfigError(
                "seeds_per_trial",
                1,
                "cooldown-asha judges a configuration by its seeds' mean; keep seeds_per_trial: all",
            )
        if metric.startswith("train_"):
            raise ConfigError(
                "metric",
                metric,
                "cooldown-asha scores its branches on held-out data: use a val_ or test_ metric",
            )
    if scheduler.type == "top-k" and seeds_per_trial == 1 and seeds > 1:
        raise ConfigError(
            "seeds_per_trial",
            1,
            "top-k keeps configurations by their seeds' mean; keep seeds_per_trial: all",
        )
    if scheduler.type == "top-k" and max_concurrent is not None:
        raise ConfigError(
            "max_concurrent",
            max_concurrent,
            "top-k pauses every trial at its rung until all have reached it, and Ray Tune counts "
            "a paused trial against max_concurrent, so the sweep would wait forever; remove "
            "max_concurrent (as many trials run at once as resources.cpus and resources.gpus "
            "per trial let the cluster hold)",
        )
    if scheduler.type == "asha" and seeds_per_trial == 1 and seeds > 1 and not scheduler.per_seed:
        raise ConfigError(
            "seeds_per_trial",
            1,
            "under ASHA each seed would be stopped on its own, so a "
            "configuration's mean would be over the seeds that happened to survive; keep "
            "seeds_per_trial: all (every seed of a configuration in one trial, judged by "
            "their mean), or set scheduler.per_seed: true to run that biased baseline on purpose",
        )
    if scheduler.per_seed and seeds_per_trial != 1:
        raise ConfigError("scheduler.per_seed", True, "per-seed ASHA needs seeds_per_trial: 1")
    if scheduler.type in ("asha", "cooldown-asha", "top-k") and scheduler.grace_period >= epochs:
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
        if search.type == "optuna":
            raise ConfigError(
                "scheduler.type",
                "budget-sh",
                "needs a list of configurations (search grid or random), not optuna",
            )


def check_packing(
    seed_packing: str,
    train: Mapping[str, Any],
    blocks: Sequence[Mapping[str, Value]],
    *,
    seeds: int,
    seeds_per_trial: int | str,
) -> None:
    """``seed_packing: stacked`` against ``compile: true``: the stacked model cannot be compiled,
    so every trial of two or more seeds would fail; refused here, before Ray starts (a trial of one
    seed trains it alone, compiled)."""
    if seed_packing != "stacked" or seeds < 2 or seeds_per_trial == 1:
        return
    if train.get("compile") is True:
        raise ConfigError(
            "train.compile",
            True,
            "is not supported with seed_packing: stacked (use seed_packing: separate or auto)",
        )
    for i, block in enumerate(blocks):
        value = block.get("compile")
        if value is not None and any(option is True for option in value.options):
            raise ConfigError(
                f"blocks[{i}].compile",
                True,
                "is not supported with seed_packing: stacked (use seed_packing: separate or auto)",
            )
