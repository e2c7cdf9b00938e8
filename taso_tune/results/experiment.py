"""Read an experiment folder into tidy pandas frames and aggregate over seeds.

Nothing here retrains or imports Ray: it asks the one reader of an experiment folder
(:mod:`taso_tune.experiment.reader`) for what the trials reported (each trial's checked
:class:`~taso_tune.core.records.TrialReport` records) and Ray Tune's status of each trial, from a
local folder or a storage URI. Damaged results are refused by name, never read as numbers.

A trial holds every seed of one configuration (``per_seed`` in each report). Two frames: ``trials``
(one row per seed of each trial: configuration, seed, status, final metrics, epochs run, node) and
``epochs`` (one row per seed and epoch: every metric the seed reported). Aggregation over seeds
(:mod:`taso_tune.results.aggregate`) follows the one statistics rule of :mod:`taso_tune.stats.seeds`.
"""

from __future__ import annotations

import math
import posixpath
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import pandas as pd

from taso_tune.core.errors import ConfigError
from taso_tune.core.records import (
    COOLDOWN_PREFIX,
    EPOCH_FIELDS,
    HELD_OUT_METRICS,
    METRICS,
    EpochRecord,
    TrialReport,
    TrialStatus,
)
from taso_tune.experiment.reader import ExperimentReader, TrialResults
from taso_tune.results.aggregate import SelectOn, aggregate, best_per_optimizer
from taso_tune.spaces import SweepSpec, load_space_dict

EPOCH_COLUMNS = (*(f for f in EPOCH_FIELDS if f != "total_epochs"), "diverged")
#: A trial's rung report under cooldown-asha: its main run's means beside its branches' scores.
COOLDOWN_COLUMNS = (
    "cooldown_epochs",
    *HELD_OUT_METRICS,
    *(f"{COOLDOWN_PREFIX}{m}{s}" for m in HELD_OUT_METRICS for s in ("", "_std")),
)


@dataclass
class Experiment:
    """One experiment's results: where it is, its space (``SweepSpec.to_dict()``: the resolved space
    as the space file holds it; empty without one), and the two frames."""

    path: str
    space: dict
    trials: pd.DataFrame
    epochs: pd.DataFrame
    #: ``scheduler: cooldown-asha``: one row per trial and rung, what its cooldown branches scored
    #: (:data:`COOLDOWN_COLUMNS`: their mean over the seeds, as the scheduler judged it); empty otherwise
    cooldowns: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def name(self) -> str:
        return posixpath.basename(self.path.rstrip("/"))

    @property
    def final_trials(self) -> pd.DataFrame:
        """The trials that compare configurations at the planned length: all of them, except in a
        budget-aware successive-halving sweep, where only the last rung's trials ran that long."""
        rungs = self.trials["rung"].dropna()
        if rungs.empty:
            return self.trials
        return self.trials[self.trials["rung"] == rungs.max()]

    @cached_property
    def spec(self) -> SweepSpec | None:
        """:attr:`space` as a :class:`SweepSpec` (``None`` when the experiment has no space file)."""
        return load_space_dict(self.space, source=self.path) if self.space else None

    @property
    def planned_seeds(self) -> int:
        """Seeds per configuration the space planned (the most any trial carried, if no space)."""
        if self.spec is not None:
            return self.spec.seeds
        return int(self.trials.groupby("config_id")["seed"].nunique().max())

    @property
    def per_seed_stopping(self) -> bool:
        """Whether ASHA stopped seeds one by one (``scheduler.per_seed``): a biased baseline."""
        return self.spec is not None and self.spec.scheduler.per_seed

    @property
    def finished_trials(self) -> int:
        """How many trials (a configuration with all its seeds, or one seed with
        ``seeds_per_trial: 1``) finished: every seed complete, stopped early or diverged."""
        ended = self.trials["status"].isin(["complete", "stopped-early", "diverged"])
        return int(
            ended.groupby([self.trials["rung"], self.trials["trial_id"]], dropna=False).all().sum()
        )

    @cached_property
    def aggregated(self) -> pd.DataFrame:
        """:func:`~taso_tune.results.aggregate.aggregate` of :attr:`final_trials`: per configuration
        n of the planned seeds, mean, std and interval by the one statistics rule, and the verdicts.
        Computed once; the frames are read-only."""
        mode = self.spec.mode if self.spec is not None else "max"
        return aggregate(self.final_trials, self.planned_seeds, mode)

    def best(self, select_on: SelectOn = "val") -> pd.DataFrame:
        """Each family's best comparable configuration, best first (:func:`best_per_optimizer`)."""
        return best_per_optimizer(self.aggregated, select_on)


def _seed_status(
    records: list[EpochRecord], planned: int, tune_status: str, has_error: bool
) -> TrialStatus:
    """How one seed of a trial ended, from its own records and its trial's Ray Tune status."""
    last = records[-1] if records else None
    if last is not None and last["status"] == "diverged":
        return "diverged"
    if last is not None and last["epoch"] == planned:
        return "complete"
    if tune_status == "ERROR" or (has_error and tune_status != "RUNNING"):
        return "errored"
    if tune_status == "TERMINATED":
        return "stopped-early"
    return "unfinished"


def _seed_records(reports: list[TrialReport], seed: str) -> list[EpochRecord]:
    """One seed's records from its trial's reports, each epoch once (a diverged seed is repeated
    frozen)."""
    by_epoch: dict[int, EpochRecord] = {}
    for report in reports:
        own = report["per_seed"].get(seed)
        if own is not None:
            by_epoch[own["epoch"]] = own
    return [by_epoch[k] for k in sorted(by_epoch)]


def load_experiment(path: str) -> Experiment:
    """Read the experiment folder ``path`` (local or URI) into an :class:`Experiment`.

    Raises:
        ConfigError: no such folder, no trial results yet, a space file that is not a space, or
            damaged results (:class:`~taso_tune.core.errors.DamagedResults`: the file, the line
            and the field).
    """
    reader = ExperimentReader(path)
    if not reader.exists():
        raise ConfigError("experiment", path, "no such experiment folder")
    spec = reader.space()
    trial_rows: list[dict[str, Any]] = []
    epoch_rows: list[dict[str, Any]] = []
    cooldown_rows: list[dict[str, Any]] = []
    for trial in reader.all_trials():
        _add_rows(trial, trial_rows, epoch_rows)
        cooldown_rows += _cooldown_rows(trial)
    if not trial_rows:
        raise ConfigError("experiment", path, "contains no trial results yet")
    trials = (
        pd.DataFrame(trial_rows)
        .sort_values(["config_id", "seed"], kind="stable")
        .reset_index(drop=True)
    )
    epochs = pd.DataFrame(epoch_rows).sort_values(["config_id", "seed", "epoch"], kind="stable")
    space = spec.to_dict() if spec is not None else {}
    cooldowns = pd.DataFrame(cooldown_rows)
    if not cooldowns.empty:
        cooldowns = cooldowns.sort_values(["config_id", "epoch"], kind="stable")
    return Experiment(path, space, trials, epochs.reset_index(drop=True), cooldowns)


def _cooldown_rows(trial: TrialResults) -> list[dict[str, Any]]:
    """The trial's rung reports under cooldown-asha, one per epoch (a report repeated by a resume
    counts once, the last)."""
    by_epoch = {report["epoch"]: report for report in trial.reports if "cooldown_epochs" in report}
    return [
        {
            "trial_id": trial.trial_id,
            "config_id": report["config_id"],
            "optimizer": report["optimizer"],
            "epoch": epoch,
            **{c: report.get(c, math.nan) for c in COOLDOWN_COLUMNS},
        }
        for epoch, report in sorted(by_epoch.items())
    ]


def _add_rows(
    trial: TrialResults, trial_rows: list[dict[str, Any]], epoch_rows: list[dict[str, Any]]
) -> None:
    """One trial row per seed of ``trial``, one epoch row per seed and epoch."""
    last = trial.reports[-1]
    for seed in last["seeds"]:
        own = _seed_records(trial.reports, str(seed))
        status = _seed_status(own, last["planned_epochs"], trial.tune_status, trial.has_error)
        row = _trial_row(trial, own[-1] if own else None, seed, status)
        trial_rows.append(row)
        for rec in own:
            epoch_rows.append(
                {
                    "trial_id": trial.trial_id,
                    "rung": trial.rung,
                    "config_id": last["config_id"],
                    "optimizer": last["optimizer"],
                    "seed": seed,
                    **{c: rec.get(c) for c in EPOCH_COLUMNS},
                    "diverged": rec["status"] == "diverged",
                }
            )


def _trial_row(
    trial: TrialResults, own: EpochRecord | None, seed: int, status: TrialStatus
) -> dict[str, Any]:
    """One seed of a trial: its labels (from the trial's last report) and its own final metrics."""
    last = trial.reports[-1]
    sizes = last["split_sizes"]
    row: dict[str, Any] = {
        "trial_id": trial.trial_id,
        "trial_name": trial.name,
        "config_id": last["config_id"],
        "optimizer": last["optimizer"],
        "seed": seed,
        "seeds_in_trial": len(last["seeds"]),
        "model": last["model"],
        "dataset": last["dataset"],
        "batch_size": last["batch_size"],
        "num_classes": last["num_classes"],
        **{f"{split}_size": sizes.get(split) for split in ("train", "val", "test")},
        "planned_epochs": last["planned_epochs"],
        "epochs_run": own["epoch"] if own is not None else 0,
        "status": status,
        "node": last.get("node_ip"),  # Tune's key beside the report
        "node_id": last["node_id"],
        "wall_seconds": last.get("time_total_s"),  # Tune's
    }
    row.update({m: (own or {}).get(m, math.nan) for m in METRICS})
    row.update({f"hp.{k}": (tuple(v) if isinstance(v, list) else v) for k, v in last["hp"].items()})
    row["rung"] = trial.rung
    return row
