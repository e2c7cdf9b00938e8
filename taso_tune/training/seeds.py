"""All seeds of one configuration trained side by side, epoch by epoch: what one Ray trial runs.

:class:`SeedTraining` is what a trial asks of its seeds; :class:`SeedRuns` trains them one after
another, :class:`~taso_tune.training.stacked.StackedRuns` as one stacked model, and
:func:`~taso_tune.training.packing.seed_training` builds the one a trial uses.

The seeds share every hyperparameter and the data; each has its own initialisation, data order and
RNG (:class:`~taso_tune.training.run.Run` keeps its own), so seed ``s`` here gives the same numbers as a
run of that seed alone. A seed that diverges stops; the others go on. :func:`epoch_summary` is what
a scheduler judges: the mean over seeds at the same epoch, a diverged seed scored at chance level
(the rule of :mod:`taso_tune.stats.seeds`), so a configuration continues or stops as a whole.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Literal, Protocol

from taso_tune.core.errors import ConfigError
from taso_tune.core.records import (
    HELD_OUT_METRICS,
    METRICS,
    CooldownScores,
    EpochRecord,
    EpochSummary,
    RunStatus,
)
from taso_tune.stats.seeds import diverged_score, summarize
from taso_tune.training.data.sets import ImageData
from taso_tune.training.device import DeviceSetup
from taso_tune.training.run import Run, TrainConfig

Packing = Literal["separate", "stacked"]


class SeedTraining(Protocol):
    """What a trial asks of its seeds, however they are packed
    (:func:`~taso_tune.training.packing.seed_training` builds one): :class:`SeedRuns` trains them
    one after another, :class:`~taso_tune.training.stacked.StackedRuns` as one stacked model."""

    #: how the seeds are packed, as a trial reports it
    packing: Packing
    #: what the model's stem was adapted to the data, in words (torchvision models)
    model_notes: list[str]

    @property
    def status(self) -> RunStatus:
        """``running`` while any seed trains; ``diverged`` when every seed diverged; else
        ``complete``."""
        ...

    @property
    def epoch(self) -> int:
        """The most epochs any seed has done."""
        ...

    @property
    def num_classes(self) -> int: ...

    def step_epoch(self) -> dict[int, EpochRecord]:
        """Train the next epoch of every running seed; every seed's latest record, by seed (a
        diverged seed keeps its last one)."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Everything to continue exactly here: the class built with it as ``state`` resumes."""
        ...

    def cooldown(self, epochs: int) -> tuple[dict[int, dict[str, float]], int]:
        """Every running seed's throwaway cooldown branch of ``epochs`` epochs
        (:meth:`~taso_tune.training.run.Run.cooldown`): its held-out metrics by seed (NaN for a
        branch that diverged), and the epochs the branches trained in all; the seeds' runs are left
        as they were."""
        ...


def check_seeds(seeds: Sequence[int]) -> tuple[int, ...]:
    """A trial's seeds: a non-empty list of distinct seeds."""
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError("seeds", list(seeds), "must be a non-empty list of distinct seeds")
    return tuple(seeds)


def check_packing(state: Mapping[str, Any] | None, packing: Packing, seeds: Sequence[int]) -> None:
    """Refuse a checkpoint written by the other packing or for other seeds (a checkpoint of seeds
    trained one after another, written before it recorded its packing, holds no ``packing``)."""
    if state is None:
        return
    written = state.get("packing", "separate")
    if written != packing or list(state.get("seeds", seeds)) != list(seeds):
        raise ConfigError(
            "seed_packing",
            packing,
            "the checkpoint was written by another seed packing or "
            "other seeds; resume with the packing and seeds it was written with",
        )


class SeedRuns:
    """The runs of ``config`` for each of ``seeds`` (``config.seed`` is ignored), one after another
    each epoch, on one device set-up and one copy of the data.

    ``state_dict()`` holds every seed's whole run; ``SeedRuns(config, seeds, data, state)``
    continues each exactly where it stopped. ``setup`` is the device set-up (``config``'s when
    ``None``).
    """

    packing: Packing = "separate"

    def __init__(
        self,
        config: TrainConfig,
        seeds: Sequence[int],
        data: ImageData | None = None,
        state: Mapping[str, Any] | None = None,
        *,
        setup: DeviceSetup | None = None,
    ) -> None:
        self.config, self.seeds = config, check_seeds(seeds)
        check_packing(state, self.packing, self.seeds)
        self.setup = setup or DeviceSetup.of(config)
        self.data = self.setup.data(config, data)  # once for every seed
        runs_state = (state or {}).get("runs", {})
        self.runs = {
            seed: Run(
                replace(config, seed=seed), self.data, runs_state.get(str(seed)), setup=self.setup
            )
            for seed in self.seeds
        }
        self.model_notes = self.runs[self.seeds[0]].model_notes  # the same for every seed
        #: each seed's latest record (a diverged seed keeps its last one)
        self.last: dict[int, EpochRecord] = {
            int(k): v for k, v in (state or {}).get("last", {}).items()
        }

    @property
    def status(self) -> RunStatus:
        return runs_status(run.status for run in self.runs.values())

    @property
    def epoch(self) -> int:
        """Epochs done by the seeds still training (or the most any seed did)."""
        return max(run.epoch for run in self.runs.values())

    @property
    def num_classes(self) -> int:
        return self.data.info.num_classes

    def step_epoch(self) -> dict[int, EpochRecord]:
        """Train the next epoch of every running seed; every seed's latest record, by seed."""
        if self.status != "running":
            raise RuntimeError(f"runs are {self.status}; nothing left to train")
        for seed, run in self.runs.items():
            if run.status == "running":
                self.last[seed] = run.step_epoch()
        return {seed: self.last[seed] for seed in self.seeds}

    def cooldown(self, epochs: int) -> tuple[dict[int, dict[str, float]], int]:
        branches, trained = {}, 0
        for seed, run in self.runs.items():
            if run.status == "running":
                evaluated = run.cooldown(epochs)
                trained += epochs
                branches[seed] = {
                    f"{split}_{name}": value
                    for split, (loss, acc) in evaluated.items()
                    for name, value in (("loss", loss), ("acc", acc))
                }
        return branches, trained

    def state_dict(self) -> dict[str, Any]:
        return {
            "packing": self.packing,
            "seeds": list(self.seeds),
            "runs": {str(seed): run.state_dict() for seed, run in self.runs.items()},
            "last": {str(seed): dict(record) for seed, record in self.last.items()},
        }


def runs_status(statuses: Iterable[RunStatus]) -> RunStatus:
    """The status of a configuration's seeds together: running while any seed trains; diverged when
    every seed diverged; else complete."""
    seen = set(statuses)
    if "running" in seen:
        return "running"
    return "diverged" if seen == {"diverged"} else "complete"


def chance_scores(records: Mapping[int, EpochRecord], num_classes: int) -> dict[str, float]:
    """What a diverged seed scores on each metric this epoch, by the one rule
    (:func:`taso_tune.stats.seeds.diverged_score`): the complete seeds a trial can see are its own
    seeds that have finished, so until they have a loss scores ln(classes)."""
    return {
        metric: diverged_score(
            metric,
            num_classes=num_classes,
            complete=[
                float(r[metric])
                for r in records.values()
                if r["status"] == "complete" and metric in r
            ],
        )
        for metric in METRICS
    }


def epoch_summary(records: Mapping[int, EpochRecord], num_classes: int) -> EpochSummary:
    """The trial's report for an epoch: each metric's mean over the seeds (``<metric>``) and, with two
    or more seeds, its std (``<metric>_std``); diverged seeds scored by :func:`chance_scores`; the
    epoch, the lr, how many seeds diverged, and every seed's own record under ``per_seed``."""
    running = [r for r in records.values() if r["status"] != "diverged"]
    diverged = len(records) - len(running)
    chance = chance_scores(records, num_classes)
    summary: EpochSummary = {  # type: ignore[typeddict-item]  (the metrics follow)
        "epoch": max(int(r["epoch"]) for r in records.values()),
        "lr": float(running[0]["lr"]) if running else math.nan,
    }
    for metric in METRICS:
        if not all(metric in r for r in records.values()):
            continue  # no validation split
        values = [float(r[metric]) for r in running]
        finite = [v for v in values if math.isfinite(v)]
        stats = summarize(
            finite,
            len(records),
            diverged=diverged + len(values) - len(finite),
            chance=chance[metric],
        )
        summary[metric] = stats.mean
        if stats.std is not None:
            summary[f"{metric}_std"] = stats.std
    if running:  # the trial's time on the epoch, and its seeds' mean throughput
        summary["epoch_seconds"] = sum(float(r["epoch_seconds"]) for r in running)
        summary["images_per_second"] = sum(float(r["images_per_second"]) for r in running) / len(
            running
        )
    summary["seeds_diverged"] = diverged
    summary["per_seed"] = {str(seed): dict(record) for seed, record in records.items()}
    return summary


def cooldown_summary(
    branches: Mapping[int, Mapping[str, float]],
    records: Mapping[int, EpochRecord],
    num_classes: int,
    trained: int,
) -> CooldownScores:
    """What a trial reports of its cooldown branches at a rung, by the one statistics rule: each
    held-out metric's mean over the seeds as ``cooldown_<metric>`` (its std with two or more seeds),
    a seed that diverged in the main run or in its branch scored at chance level like any diverged
    seed (:func:`chance_scores`), and ``cooldown_epochs``, the epochs the branches trained."""
    chance = chance_scores(records, num_classes)
    summary: CooldownScores = {"cooldown_epochs": trained}  # type: ignore[typeddict-item]
    for metric in HELD_OUT_METRICS:
        if not all(metric in r for r in records.values()):
            continue  # no validation split
        # a branch that diverged scores NaN on every metric (its accuracy too), so it is at chance
        values = [float(b[metric]) for b in branches.values() if metric in b]
        finite = [v for v in values if math.isfinite(v)]
        stats = summarize(
            finite,
            len(records),
            diverged=len(records) - len(finite),
            chance=chance[metric],
        )
        summary[f"cooldown_{metric}"] = stats.mean  # type: ignore[literal-required]
        if stats.std is not None:
            summary[f"cooldown_{metric}_std"] = stats.std  # type: ignore[literal-required]
    return summary
