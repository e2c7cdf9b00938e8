"""Aggregate an experiment's seeds per configuration by the one statistics rule, and rank.

Every number a user reads (summary, report, export) comes from :func:`aggregate`: per configuration
the n of its planned seeds, each metric's mean, sample std (``None`` with n < 2, never 0) and 95% t
interval inside the metric's range, a diverged seed scored at chance level (1 / classes for an
accuracy; for a loss, the worst value the sweep saw), the seeds at chance, and whether it can be
compared at all (every planned seed finished). Only comparable configurations are ranked or picked
(:func:`taso_tune.stats.seeds.rank`); a rank is an order by mean, and whether a pick differs from
another is the one verdict rule's question (:mod:`taso_tune.results.significance`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd

from taso_tune.core.errors import ConfigError
from taso_tune.core.records import METRICS
from taso_tune.stats.seeds import SeedSummary, diverged_score, rank, status_text, summarize

SelectOn = Literal["val", "test"]


def hyperparameter_columns(frame: pd.DataFrame) -> list[str]:
    """The ``hp.*`` columns, in a stable order."""
    return [c for c in frame.columns if c.startswith("hp.")]


def present(value: Any) -> bool:
    """Whether a hyperparameter cell holds a value (not None, not NaN: a field the family lacks)."""
    return not (value is None or (isinstance(value, float) and math.isnan(value)))


def selection_metric(select_on: SelectOn = "val") -> str:
    """The metric that picks the best configuration: validation accuracy (our default) or test
    accuracy (the paper's protocol, which tuned on the test set)."""
    if select_on not in ("val", "test"):
        raise ConfigError("--select-on", select_on, "unknown split", choices=["val", "test"])
    return f"{select_on}_acc"


#: The accuracies whose seeds at chance a row reports: the held-out ones, which the summary, the
#: report and the export show (training accuracy is none of theirs).
JUDGED_ACCURACIES = ("val_acc", "test_acc")


def _chance(metric: str, group: pd.DataFrame, trials: pd.DataFrame) -> tuple[float, bool]:
    """A diverged seed's score on ``metric`` (:func:`~taso_tune.stats.seeds.diverged_score`): a loss
    against every complete seed of the sweep; and whether the data set's number of classes, hence
    an accuracy's chance level, is known."""
    classes = pd.to_numeric(group["num_classes"], errors="coerce").dropna()
    done = pd.to_numeric(trials.loc[trials["status"] == "complete", metric], errors="coerce")
    num_classes = int(classes.iloc[0]) if len(classes) else None
    return diverged_score(metric, num_classes=num_classes, complete=done), num_classes is not None


def aggregate(
    trials: pd.DataFrame, planned: int, mode: str = "max", metrics: Sequence[str] = METRICS
) -> pd.DataFrame:
    """One row per configuration of ``trials`` (one row per seed) with ``planned`` seeds each.

    Columns: config_id, optimizer, model, dataset, epochs, the hp.* columns, planned, n, complete,
    diverged, at_chance, stopped_early, comparable, status (e.g. "not compared: 3 of 5 seeds;
    diverged 1/3; at chance 1/3"; a complete seed without a finite value is "no finite value"), and
    per metric ``_mean``, ``_std``, ``_ci_low``, ``_ci_high``
    (``None`` where undefined; an accuracy's interval inside [0, 1], a loss's above 0) and
    ``_summary`` (the :class:`~taso_tune.stats.seeds.SeedSummary`). ``at_chance`` is the most seeds
    at chance on validation or test accuracy, whichever the sweep recorded (``None`` when the
    number of classes is unknown: no chance level to measure against). ``mode`` is the sweep's (for reference only:
    accuracies are maximised, losses minimised).
    """
    if trials.empty:
        return pd.DataFrame(columns=["config_id", "optimizer", "n", "planned", "comparable"])
    rows = []
    for config_id, group in trials.groupby("config_id", sort=True):
        first = group.iloc[0]
        row: dict[str, Any] = {
            "config_id": config_id,
            "optimizer": first["optimizer"],
            "model": first["model"],
            "dataset": first["dataset"],
            "epochs": first["planned_epochs"],
        }
        row.update({c: first[c] for c in hyperparameter_columns(trials)})
        complete = group[group["status"] == "complete"]
        diverged = int((group["status"] == "diverged").sum())
        count = max(planned, len(group))
        for metric in metrics:
            values = [
                v for v in pd.to_numeric(complete[metric], errors="coerce") if math.isfinite(v)
            ]
            no_value = len(complete) - len(values)
            accuracy = metric.endswith("_acc")
            chance, known = (
                _chance(metric, group, trials) if diverged or no_value or accuracy else (None, True)
            )
            summary = summarize(
                values,
                count,
                diverged=diverged,
                no_value=no_value,
                chance=chance,
                kind="accuracy" if accuracy else "loss",
                chance_known=known,
            )
            row.update(
                {
                    f"{metric}_mean": summary.mean,
                    f"{metric}_std": summary.std,
                    f"{metric}_ci_low": summary.ci_low,
                    f"{metric}_ci_high": summary.ci_high,
                    f"{metric}_summary": summary,
                }
            )
        flagged = _most_at_chance([row[f"{m}_summary"] for m in recorded_metrics(trials, metrics)])
        row.update(
            planned=count,
            n=flagged.n,
            complete=len(complete),
            diverged=diverged,
            at_chance=flagged.at_chance,
            stopped_early=int((group["status"] == "stopped-early").sum()),
            comparable=flagged.comparable,
            status=status_text(flagged),
        )
        rows.append(row)
    return pd.DataFrame(rows)


def recorded_metrics(trials: pd.DataFrame, metrics: Sequence[str] = METRICS) -> list[str]:
    """The held-out accuracies (:data:`JUDGED_ACCURACIES`) of ``metrics`` that some seed of
    ``trials`` recorded (a sweep without a validation split has no ``val_acc``): the ones whose
    seeds at chance a row reports, as the summary, the report and the export show them."""
    recorded = [
        m
        for m in metrics
        if m in JUDGED_ACCURACIES
        and m in trials
        and pd.to_numeric(trials[m], errors="coerce").notna().any()
    ]
    return recorded or [next((m for m in metrics if m in JUDGED_ACCURACIES), metrics[0])]


def _most_at_chance(summaries: Sequence[SeedSummary]) -> SeedSummary:
    return max(summaries, key=lambda s: -1 if s.at_chance is None else s.at_chance)


def with_ranks(
    aggregated: pd.DataFrame, select_on: SelectOn = "val", by_optimizer: bool = False
) -> pd.DataFrame:
    """``aggregated`` with ``rank`` (1, 2, ... by mean selection accuracy; ``None`` for a
    configuration not compared) and ``tied_with`` (the configurations ranked with the same mean),
    over all configurations or within each optimizer family. A rank is an order, not a verdict
    (:func:`taso_tune.stats.seeds.rank`)."""
    column = f"{selection_metric(select_on)}_summary"
    out = aggregated.copy()
    out["rank"] = None
    out["tied_with"] = [() for _ in range(len(out))]
    if out.empty or column not in out:
        return out
    groups = out.groupby("optimizer").groups.values() if by_optimizer else [out.index]
    for index in groups:
        summaries = {out.at[i, "config_id"]: out.at[i, column] for i in index}
        by_id = {row.config_id: row for row in rank(summaries, "max")}
        for i in index:
            ranked = by_id[out.at[i, "config_id"]]
            out.at[i, "rank"] = ranked.rank
            out.at[i, "tied_with"] = ranked.tied_with
    return out


def best_per_optimizer(aggregated: pd.DataFrame, select_on: SelectOn = "val") -> pd.DataFrame:
    """Each optimizer family's best comparable configuration (highest mean selection accuracy over
    all its planned seeds), best first, with its overall ``rank``; the first is the reference every
    other pick is compared with (:func:`taso_tune.results.significance.paired_comparisons`).

    A pick whose mean equals another's (:func:`taso_tune.stats.seeds.tied`) is ahead of it by an
    order that is not a finding: ``tied_in_family`` names the configurations of its own family with
    its mean, ``tied_picks`` the other families' picks with its mean (for the reference, the picks
    it heads without a higher mean)."""
    key = f"{selection_metric(select_on)}_mean"
    if aggregated.empty or key not in aggregated:
        return aggregated.iloc[0:0]
    judged = with_ranks(aggregated, select_on)
    ranked = judged[judged["comparable"]].sort_values("rank", kind="stable")
    best = ranked.groupby("optimizer", sort=False).head(1).reset_index(drop=True)
    family = dict(zip(judged["config_id"], judged["optimizer"], strict=True))
    picks = set(best["config_id"])
    best["tied_in_family"] = [
        tuple(c for c in row.tied_with if family[c] == row.optimizer) for row in best.itertuples()
    ]
    best["tied_picks"] = [
        tuple(c for c in row.tied_with if c in picks) for row in best.itertuples()
    ]
    return best


def tie_note(pick: pd.Series, select_on: SelectOn = "val") -> str:
    """What a pick of :func:`best_per_optimizer` says of the configurations of its family tied with
    it; empty when none is."""
    tied = pick["tied_in_family"]
    if not tied:
        return ""
    return (
        f"tied on {selection_metric(select_on)} with {', '.join(tied)}: the same mean up to "
        "rounding, so the pick among them is not a finding"
    )


def not_compared(aggregated: pd.DataFrame) -> pd.DataFrame:
    """The configurations left out of every ranking: not all planned seeds finished."""
    if aggregated.empty:
        return aggregated
    return aggregated[~aggregated["comparable"].astype(bool)].reset_index(drop=True)


def status_counts(trials: pd.DataFrame) -> dict[str, int]:
    """How many seeds ended each way."""
    return {k: int(v) for k, v in trials["status"].value_counts().sort_index().items()}


@dataclass(frozen=True)
class RunCounts:
    """What an experiment's seed runs amount to: how many ended each way, the seed runs and the
    trials they ran in, and the epochs run of those planned."""

    by_status: dict[str, int]
    seed_runs: int
    trials: int
    epochs_run: int
    epochs_planned: int

    @property
    def share_run(self) -> float:
        """Epochs run over epochs planned (0 when none were planned)."""
        return self.epochs_run / max(self.epochs_planned, 1)


def run_counts(trials: pd.DataFrame) -> RunCounts:
    """:class:`RunCounts` of an experiment's seed-run table (:attr:`Experiment.trials`)."""
    return RunCounts(
        by_status=status_counts(trials),
        seed_runs=len(trials),
        trials=int(trials["trial_id"].nunique()),
        epochs_run=int(trials["epochs_run"].sum()),
        epochs_planned=int(trials["planned_epochs"].sum()),
    )
