"""The :class:`SweepSpec`: a validated search space, what to train and how to search it.

A space is a union of blocks; each block is its own grid (plus, for random and Optuna search,
distributions). Everything is validated when the spec is built, before any trial starts: every
configuration goes through :meth:`TrainConfig.from_flat`, and every error names the file, the field
path (``blocks[2].lr``) and the bad value. The format is documented in ``docs/search-spaces.md``.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from taso_tune.core.errors import ConfigError
from taso_tune.core.records import METRICS, SEED_PACKINGS, SeedPacking
from taso_tune.spaces.expansion import configurations, count_configurations
from taso_tune.spaces.sections import Resources, SchedulerSpec, SearchSpec
from taso_tune.spaces.spec_checks import check_packing, check_scheduler, check_seeds
from taso_tune.spaces.validation import Block, parse_blocks, validate_blocks, validate_train
from taso_tune.spaces.values import require_int
from taso_tune.training.run import TrainConfig

_NAME = re.compile(r"[A-Za-z0-9_.-]+")
#: The most trials a space may hold unless it (or ``--max-trials``) says otherwise: a larger grid is
#: usually a typo, and checking it alone takes minutes before Ray starts.
DEFAULT_MAX_TRIALS = 10_000
#: ``checkpoint_min_seconds`` of a trial on a GPU when the space leaves it unset: a 5-seed ResNet18
#: or VGG19 checkpoint is 450-800 MB (1-3 s to write, more to upload) against a GPU epoch of seconds;
#: one every 5 minutes keeps that under a few percent (docs/benchmarks.md). On the CPU: 0 (off).
GPU_CHECKPOINT_MIN_SECONDS = 300.0
#: ``reuse_actors``: ``true`` (one actor runs trial after trial), ``false`` (an actor per trial) or
#: ``auto``, chosen by how much training a trial plans (:mod:`taso_tune.tuning.actors`).
ReuseActors = bool | Literal["auto"]
REUSE_ACTORS = ("auto", "true", "false")


@dataclass(frozen=True)
class SweepSpec:
    """A validated search space: what to train (``train`` + ``blocks``) and how to search it.

    Construct it with :func:`~taso_tune.spaces.load_space` or ``load_space_dict``, or directly:
    ``blocks`` may be given in their YAML form (plain values and ``{grid: [...]}``-style mappings)
    and are held parsed, as :class:`~taso_tune.spaces.values.Value` objects; :meth:`to_dict` gives
    the YAML form back.
    """

    name: str
    train: Mapping[str, Any]
    blocks: tuple[Block, ...]
    source: str | None = field(default=None, compare=False)
    description: str = ""
    seeds: int = 1
    seed_start: int = 0
    seed_list: tuple[int, ...] | None = None
    seeds_per_trial: Literal["all", 1] = "all"
    metric: str = "val_acc"
    mode: Literal["max", "min"] = "max"
    scheduler: SchedulerSpec = SchedulerSpec()
    search: SearchSpec = SearchSpec()
    resources: Resources = Resources()
    max_concurrent: int | None = None
    checkpoint_every: int = 1
    checkpoint_min_seconds: float | None = (
        None  # None: by device (GPU_CHECKPOINT_MIN_SECONDS on a GPU)
    )
    seed_packing: SeedPacking = "auto"
    reuse_actors: ReuseActors = "auto"
    max_failures: int = 2
    max_trials: int = DEFAULT_MAX_TRIALS

    def __post_init__(self) -> None:
        try:
            self._validate()
        except ConfigError as err:
            if err.file is None and self.source:
                raise err.in_file(self.source) from None
            raise

    def _validate(self) -> None:
        if (
            not isinstance(self.name, str)
            or not _NAME.fullmatch(self.name)
            or self.name in (".", "..")
        ):
            raise ConfigError(
                "name",
                self.name,
                "must be letters, digits, '_', '.' or '-' (not . or ..): "
                "the experiment's folder inside the storage",
            )
        if not isinstance(self.description, str):
            raise ConfigError("description", self.description, "must be text")
        require_int("seeds", self.seeds, 1)
        check_seeds(self.seeds, self.seed_start, self.seed_list, self.seeds_per_trial)
        require_int("checkpoint_every", self.checkpoint_every, 1)
        seconds = self.checkpoint_min_seconds
        if seconds is not None and (
            isinstance(seconds, bool)
            or not isinstance(seconds, (int, float))
            or not 0 <= seconds < float("inf")
        ):
            raise ConfigError("checkpoint_min_seconds", seconds, "must be a number of seconds >= 0")
        if self.seed_packing not in SEED_PACKINGS:
            raise ConfigError(
                "seed_packing", self.seed_packing, "unknown seed packing", choices=SEED_PACKINGS
            )
        if not isinstance(self.reuse_actors, bool) and self.reuse_actors != "auto":
            raise ConfigError(
                "reuse_actors",
                self.reuse_actors,
                "must be auto, true or false",
                choices=REUSE_ACTORS,
            )
        require_int("max_failures", self.max_failures, 0)
        require_int("max_trials", self.max_trials, 1)
        if self.max_concurrent is not None:
            require_int("max_concurrent", self.max_concurrent, 1)
        if self.metric not in METRICS:
            raise ConfigError("metric", self.metric, "unknown metric", choices=METRICS)
        expected = "min" if self.metric.endswith("_loss") else "max"
        if self.mode != expected:
            raise ConfigError(
                "mode",
                self.mode,
                f"contradicts metric {self.metric!r}, which is "
                f"{'minimised' if expected == 'min' else 'maximised'}",
                choices=[expected],
            )
        for name, kind in (
            ("scheduler", SchedulerSpec),
            ("search", SearchSpec),
            ("resources", Resources),
        ):
            if not isinstance(getattr(self, name), kind):
                raise ConfigError(name, getattr(self, name), f"must be a {kind.__name__}")
        object.__setattr__(self, "train", validate_train(self.train))
        blocks = parse_blocks(self.blocks, self.search.type)
        self._check_size(
            blocks
        )  # before every configuration is checked, which takes long for huge grids
        object.__setattr__(
            self, "blocks", validate_blocks(blocks, self.train, self.search.type, self.metric)
        )
        check_scheduler(
            self.scheduler,
            self.search,
            epochs=self.epochs,
            seeds=self.seeds,
            seeds_per_trial=self.seeds_per_trial,
            metric=self.metric,
            max_concurrent=self.max_concurrent,
        )
        check_packing(
            self.seed_packing,
            self.train,
            self.blocks,
            seeds=self.seeds,
            seeds_per_trial=self.seeds_per_trial,
        )

    def _check_size(self, blocks: tuple[Block, ...]) -> None:
        """Refuse more trials than :attr:`max_trials`, counted without making the configurations."""
        if self.search.type == "optuna":
            configs, what = self.search.num_samples, "Optuna proposals"
        else:
            configs, what = count_configurations(blocks, self.search.num_samples), "configurations"
        trials = configs * self.seeds
        if trials > self.max_trials:
            raise ConfigError(
                "blocks",
                trials,
                f"the space makes {configs} {what} x {self.seeds} "
                f"seeds = {trials} training runs, more than the cap of {self.max_trials}: check the "
                f"grids, or raise the cap with --max-trials {trials} (max_trials: in the file)",
            )

    @property
    def seed_values(self) -> tuple[int, ...]:
        """The seeds every configuration trains with: the list, else ``seed_start`` .. ``+ seeds - 1``."""
        if self.seed_list is not None:
            return self.seed_list
        return tuple(range(self.seed_start, self.seed_start + self.seeds))

    @property
    def epochs(self) -> int:
        """The planned epochs: ``train.epochs`` (default 20), or the most any block asks for."""
        planned = [self.train.get("epochs", TrainConfig.epochs)]
        for block in self.blocks:
            if "epochs" in block:
                planned.extend(block["epochs"].options)
        return max(planned)

    def configurations(self) -> list[dict[str, Any]]:
        """Every configuration (before seeds): see :func:`~taso_tune.spaces.expansion.configurations`."""
        return configurations(self.blocks, self.train, self.search, source=self.source)

    def trials(self) -> list[dict[str, Any]]:
        """:meth:`configurations` times :attr:`seed_values`, each with ``seed`` (config-major order)."""
        return [
            {**config, "seed": seed}
            for config in self.configurations()
            for seed in self.seed_values
        ]

    def to_dict(self) -> dict[str, Any]:
        """The resolved space as plain YAML-able data; ``load_space_dict(to_dict())`` gives an equal spec."""
        data: dict[str, Any] = {"name": self.name}
        if self.description:
            data["description"] = self.description
        data.update(
            train=copy.deepcopy(dict(self.train)),
            metric=self.metric,
            mode=self.mode,
            seeds=self._seeds_yaml(),
            resources=self.resources.to_dict(),
            scheduler=self.scheduler.to_dict(),
            search=self.search.to_dict(),
        )
        if self.seeds_per_trial != "all":
            data["seeds_per_trial"] = self.seeds_per_trial
        if self.max_concurrent is not None:
            data["max_concurrent"] = self.max_concurrent
        if self.max_trials != DEFAULT_MAX_TRIALS:
            data["max_trials"] = self.max_trials
        if self.checkpoint_min_seconds is not None:
            data["checkpoint_min_seconds"] = self.checkpoint_min_seconds
        if self.seed_packing != "auto":
            data["seed_packing"] = self.seed_packing
        data["reuse_actors"] = self.reuse_actors
        data.update(
            checkpoint_every=self.checkpoint_every,
            max_failures=self.max_failures,
            blocks=[{k: v.to_yaml() for k, v in block.items()} for block in self.blocks],
        )
        return data

    def _seeds_yaml(self) -> Any:
        if self.seed_list is not None:
            return list(self.seed_list)
        return {"count": self.seeds, "start": self.seed_start} if self.seed_start else self.seeds
