"""Measure what early stopping costs in answer quality: full sweep vs ASHA vs budget-aware SH.

The ground truth is a sweep with every trial run to the end (no early stopping). For each early-
stopping method run on the same space this computes, from saved results only:

- epochs consumed, and their share of the full sweep's;
- the configuration it picks (best mean validation accuracy among its complete trials) and its
  regret: the true final mean validation accuracy of the truly best configuration minus that of the
  pick, both read from the full sweep (accuracy points);
- how well each rung ranks configurations: Spearman correlation between the scores a rung sees and
  the final ranking (ASHA's rung at epoch r sees the epoch-r metric of trials planned for the full
  length; a budget-sh rung sees complete runs of r epochs);
- which of the true top-5 configurations the method dropped before the end, per optimizer family.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from taso_tune.results.experiment import Experiment

METRIC = "val_acc"


@dataclass
class Comparison:
    """The frames of an early-stopping comparison (see the module docstring)."""

    summary: pd.DataFrame
    rank_correlation: pd.DataFrame
    top5: pd.DataFrame


def true_scores(full: Experiment) -> pd.Series:
    """Final mean validation accuracy per configuration in the full sweep, best first."""
    agg = full.aggregated.set_index("config_id")  # a full sweep: every trial is compared
    return agg[f"{METRIC}_mean"].sort_values(ascending=False)


def _pick(experiment: Experiment) -> str:
    ranked = experiment.aggregated.sort_values([f"{METRIC}_mean", "config_id"], ascending=[False, True])
    return str(ranked.iloc[0]["config_id"])


def asha_rungs(grace_period: int, reduction_factor: float, max_t: int) -> list[int]:
    """The epochs at which ASHA (one bracket) compares trials: grace * eta^k below max_t."""
    rungs, r = [], float(grace_period)
    while r < max_t:
        rungs.append(int(r))
        r *= reduction_factor
    return rungs


def _spearman(a: pd.Series, b: pd.Series) -> float:
    joined = pd.concat([a, b], axis=1, join="inner").dropna()
    if len(joined) < 3:
        return float("nan")
    return float(joined.iloc[:, 0].rank().corr(joined.iloc[:, 1].rank()))


def _asha_correlations(full: Experiment, truth: pd.Series, rungs: list[int]) -> list[dict]:
    rows = []
    for epoch in rungs:
        at = full.epochs[full.epochs["epoch"] == epoch].groupby("config_id")[METRIC].mean()
        rows.append({"method": "asha", "rung_epochs": epoch, "configs": len(at), "spearman": _spearman(at, truth)})
    return rows


def _budget_sh_correlations(bsh: Experiment, truth: pd.Series) -> list[dict]:
    rows = []
    for _rung, trials in bsh.trials.groupby("rung"):
        done = trials[trials["status"] == "complete"]
        scores = done.groupby("config_id")[METRIC].mean()
        rows.append({"method": "budget-sh", "rung_epochs": int(trials["planned_epochs"].max()),
                     "configs": trials["config_id"].nunique(), "spearman": _spearman(scores, truth)})  # fmt: skip
    return rows


def _top5_fate(truth: pd.Series, full: Experiment, asha: Experiment | None, bsh: Experiment | None) -> pd.DataFrame:
    top = list(truth.index[:5])
    optimizer = full.trials.drop_duplicates("config_id").set_index("config_id")["optimizer"]
    rows = []
    for config_id in top:
        row = {"config_id": config_id, "optimizer": optimizer[config_id], "true_val_acc": truth[config_id]}
        if asha is not None:
            trials = asha.trials[asha.trials["config_id"] == config_id]
            row["asha_seeds_stopped"] = f"{int((trials['status'] == 'stopped-early').sum())}/{len(trials)}"
        if bsh is not None:
            reached = bsh.trials.loc[bsh.trials["config_id"] == config_id, "planned_epochs"]
            final = int(bsh.trials["planned_epochs"].max())
            last = int(reached.max()) if len(reached) else 0
            row["budget_sh_dropped_after"] = "kept to the end" if last == final else f"{last}-epoch rung"
        rows.append(row)
    return pd.DataFrame(rows)


def compare(
    full: Experiment,
    asha: Experiment | None = None,
    budget_sh: Experiment | None = None,
    *,
    asha_rung_epochs: list[int] | None = None,
) -> Comparison:
    """Compare early-stopping runs against the full sweep ``full`` on the same space."""
    truth = true_scores(full)
    full_epochs = int(full.trials["epochs_run"].sum())
    test = full.aggregated.set_index("config_id")["test_acc_mean"]
    rows, correlations = [], []
    for method, experiment in (("full", full), ("asha", asha), ("budget-sh", budget_sh)):
        if experiment is None:
            continue
        pick = _pick(experiment)
        epochs = int(experiment.trials["epochs_run"].sum())
        rows.append({
            "method": method,
            "epochs": epochs,
            "share_of_full": epochs / full_epochs,
            "pick": pick,
            "pick_true_val_acc": truth.get(pick, float("nan")),
            "regret_points": 100 * (truth.iloc[0] - truth.get(pick, float("nan"))),
            "pick_test_acc": test.get(pick, float("nan")),
        })  # fmt: skip
    if asha is not None and asha_rung_epochs:
        correlations += _asha_correlations(full, truth, asha_rung_epochs)
    if budget_sh is not None:
        correlations += _budget_sh_correlations(budget_sh, truth)
    return Comparison(pd.DataFrame(rows), pd.DataFrame(correlations), _top5_fate(truth, full, asha, budget_sh))


def _markdown(frame: pd.DataFrame, floats: dict[str, str]) -> str:
    cols = list(frame.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in frame.iterrows():
        cells = [format(row[c], floats[c]) if c in floats and row[c] == row[c] else str(row[c]) for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def to_markdown(comparison: Comparison) -> str:
    """The three tables as Markdown (for docs/early-stopping.md)."""
    summary = _markdown(comparison.summary, {"share_of_full": ".0%", "pick_true_val_acc": ".4f",
                                             "regret_points": ".2f", "pick_test_acc": ".4f"})  # fmt: skip
    corr = _markdown(comparison.rank_correlation, {"spearman": ".2f"})
    top5 = _markdown(comparison.top5, {"true_val_acc": ".4f"})
    return (f"### Epochs and regret\n\n{summary}\n\n### Rank correlation of each rung with the final ranking\n\n"
            f"{corr}\n\n### The true top-5 configurations: what early stopping did to them\n\n{top5}\n")  # fmt: skip
