"""Measure what early stopping costs in answer quality: the full sweep against ASHA (a configuration
judged by its mean over seeds), per-seed ASHA (the biased baseline), budget-aware SH, cooldown-asha
(ASHA judging cooldown branches) and the top-k baseline (the best k configurations after one rung of
un-decayed training, run to the end).

The ground truth is a sweep with every trial run to the end (no early stopping). For each early-
stopping method run on the same space this computes, from saved results only:

- epochs consumed (cooldown branches' epochs counted), and their share of the full sweep's;
- the configuration it picks (the best comparable one: every planned seed finished, by the one
  statistics rule) and its regret: the true final mean validation accuracy of the truly best
  configuration (the full sweep's best comparable one, as :meth:`Experiment.best` picks) minus
  that of the pick, both read from the full sweep (accuracy points);
- the one verdict rule (:mod:`taso_tune.stats.verdict`) on each pick against that truly best
  configuration, the reference: paired by seed on the full sweep's validation accuracy,
  Holm-corrected over the distinct picks, with the regret's Holm-adjusted interval. "worse" says the
  method lost accuracy; "no difference shown" says these seeds cannot tell (not that it lost none);
- a one-sided 95% upper bound on each pick's regret, paired by seed
  (:func:`~taso_tune.stats.paired.regret_upper_bound`): what the pick lost at most, at that
  confidence (0 for the true best itself);
- how well each rung ranks configurations: Spearman correlation between what the method actually saw
  at the rung (ASHA and top-k: the mean of the seeds that reached epoch r, un-decayed; budget-sh:
  complete runs of r epochs; cooldown-asha: the scores of the cooldown branches forked at epoch r)
  and the final ranking; not given for fewer than 5 configurations;
- which of the true top-5 configurations the method dropped before the end.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from taso_tune.results.experiment import Experiment
from taso_tune.results.significance import seed_values
from taso_tune.stats.paired import regret_upper_bound
from taso_tune.stats.seeds import ACCURACY_DIFFERENCE_RANGE, format_interval
from taso_tune.stats.verdict import ReferenceComparison, compare_to_reference, verdict_text

METRIC = "val_acc"


@dataclass
class Comparison:
    """The frames of an early-stopping comparison (see the module docstring)."""

    summary: pd.DataFrame
    rank_correlation: pd.DataFrame
    top5: pd.DataFrame


#: Fewer configurations than this make a rank correlation meaningless.
MIN_CORRELATED = 5


def true_scores(full: Experiment) -> pd.Series:
    """Final mean validation accuracy per comparable configuration of the full sweep (every planned
    seed finished; diverged seeds at chance level), best first, equal means in config-id order: the
    ranking :meth:`Experiment.best` picks from. A configuration with a seed errored or unfinished
    has no true score, and is never the truly best."""
    agg = full.aggregated
    agg = agg[agg["comparable"].astype(bool)].set_index("config_id").sort_index()
    return agg[f"{METRIC}_mean"].astype(float).sort_values(ascending=False, kind="stable")


def _pick(experiment: Experiment) -> str | None:
    best = experiment.best("val")
    return str(best.iloc[0]["config_id"]) if len(best) else None


def pick_verdicts(full: Experiment, picks: dict[str, str | None]) -> dict[str, ReferenceComparison]:
    """The one verdict rule on each method's pick (method -> config id) against the truly best
    configuration of the full sweep, paired by seed on its final validation accuracy, Holm-corrected
    over the distinct picks other than the reference; a pick of the reference itself is "reference",
    a method with no pick or a pick without every seed of the full sweep "not compared". The values
    per seed are :func:`~taso_tune.results.significance.seed_values`', the rule of every other
    verdict."""
    truth = true_scores(full)
    if truth.empty:
        return {
            method: ReferenceComparison(
                "not compared", 0, reason="no configuration of the full sweep ran every seed"
            )
            for method in picks
        }
    reference = truth.index[0]
    in_full = set(full.trials["config_id"])
    seeds = {
        c: seed_values(full, c, METRIC)
        for c in dict.fromkeys([reference, *picks.values()])
        if c is not None and c in in_full
    }
    candidates = {c: v for c, v in seeds.items() if c != reference}
    found = compare_to_reference(seeds[reference], candidates, bounds=ACCURACY_DIFFERENCE_RANGE)
    out = {}
    for method, pick in picks.items():
        if pick is None:
            out[method] = ReferenceComparison("not compared", 0, reason="no configuration compared")
        elif pick == reference:
            out[method] = ReferenceComparison("reference", len(seeds[reference]))
        elif pick not in found:
            out[method] = ReferenceComparison("not compared", 0, reason="not in the full sweep")
        else:
            out[method] = found[pick]
    return out


@dataclass(frozen=True)
class TopK:
    """The top-k baseline, read off the full sweep (its trials' first ``rung`` epochs are those of a
    run stopped there: training is deterministic on the CPU): every configuration trains ``rung``
    epochs, un-decayed; the ``k`` best by their mean go on to the end; the best of those is the pick."""

    rung: int
    k: int
    kept: tuple[str, ...]
    pick: str | None
    epochs: int


def top_k(full: Experiment, rung: int, k: int) -> TopK:
    """:class:`TopK` of ``full`` at epoch ``rung`` keeping ``k`` configurations (ties by config id)."""
    at = full.epochs[full.epochs["epoch"] == rung].groupby("config_id")[METRIC].mean()
    kept = tuple(sorted(at.index, key=lambda c: (-at[c], c))[:k])
    truth = true_scores(full)
    finalists = [c for c in truth.index if c in kept]
    trials = full.trials
    epochs = int(trials["epochs_run"].clip(upper=rung).sum()) + int(
        (trials.loc[trials["config_id"].isin(kept), "epochs_run"] - rung).clip(lower=0).sum()
    )
    return TopK(rung, k, kept, finalists[0] if finalists else None, epochs)


def _branch_epochs(experiment: Experiment) -> int:
    branches = experiment.cooldowns
    return int(branches["cooldown_epochs"].sum()) if "cooldown_epochs" in branches else 0


def asha_rungs(grace_period: int, reduction_factor: float, max_t: int) -> list[int]:
    """The epochs at which ASHA (one bracket) compares trials: grace * eta^k below max_t."""
    rungs, r = [], float(grace_period)
    while r < max_t:
        rungs.append(int(r))
        r *= reduction_factor
    return rungs


def _spearman(a: pd.Series, b: pd.Series) -> float:
    joined = pd.concat([a, b], axis=1, join="inner").dropna()
    if len(joined) < MIN_CORRELATED:
        return float("nan")
    return float(joined.iloc[:, 0].rank().corr(joined.iloc[:, 1].rank()))


def _asha_correlations(
    method: str, asha: Experiment, truth: pd.Series, rungs: list[int]
) -> list[dict]:
    """What ASHA saw at each rung of its own run: the mean over the seeds that reached the epoch."""
    rows = []
    for epoch in rungs:
        at = asha.epochs[asha.epochs["epoch"] == epoch].groupby("config_id")[METRIC].mean()
        rows.append(
            {
                "method": method,
                "rung_epochs": epoch,
                "configs": len(at),
                "spearman": _spearman(at, truth),
            }
        )
    return rows


def _cooldown_correlations(cooled: Experiment, truth: pd.Series) -> list[dict]:
    """What cooldown-asha saw at each rung: the branches' score of each configuration reaching it."""
    branches = cooled.cooldowns
    rows = []
    for epoch, at in branches.groupby("epoch", sort=True) if len(branches) else []:
        scores = at.groupby("config_id")[f"cooldown_{METRIC}"].mean()
        rows.append(
            {
                "method": "cooldown-asha",
                "rung_epochs": int(epoch),
                "configs": len(scores),
                "spearman": _spearman(scores, truth),
            }
        )
    return rows


def _budget_sh_correlations(bsh: Experiment, truth: pd.Series) -> list[dict]:
    rows = []
    for _rung, trials in bsh.trials.groupby("rung"):
        done = trials[trials["status"] == "complete"]
        scores = done.groupby("config_id")[METRIC].mean()
        rows.append(
            {
                "method": "budget-sh",
                "rung_epochs": int(trials["planned_epochs"].max()),
                "configs": trials["config_id"].nunique(),
                "spearman": _spearman(scores, truth),
            }
        )
    return rows


def _top5_fate(
    truth: pd.Series, full: Experiment, methods: dict[str, Experiment], baseline: TopK | None
) -> pd.DataFrame:
    top = list(truth.index[:5])
    optimizer = full.trials.drop_duplicates("config_id").set_index("config_id")["optimizer"]
    bsh = methods.get("budget-sh")
    rows = []
    for config_id in top:
        row = {
            "config_id": config_id,
            "optimizer": optimizer[config_id],
            "true_val_acc": truth[config_id],
        }
        for method in ("asha", "asha-per-seed", "cooldown-asha"):
            if method in methods:
                trials = methods[method].trials[methods[method].trials["config_id"] == config_id]
                stopped = int((trials["status"] == "stopped-early").sum())
                row[f"{method}_seeds_stopped"] = f"{stopped}/{len(trials)}"
        if baseline is not None:
            row[f"top{baseline.k}"] = (
                "kept to the end"
                if config_id in baseline.kept
                else f"dropped at epoch {baseline.rung}"
            )
        if bsh is not None:
            reached = bsh.trials.loc[bsh.trials["config_id"] == config_id, "planned_epochs"]
            final = int(bsh.trials["planned_epochs"].max())
            last = int(reached.max()) if len(reached) else 0
            row["budget_sh_dropped_after"] = (
                "kept to the end" if last == final else f"{last}-epoch rung"
            )
        rows.append(row)
    return pd.DataFrame(rows)


def compare(
    full: Experiment,
    methods: dict[str, Experiment],
    *,
    asha_rung_epochs: list[int] | None = None,
    baseline: TopK | None = None,
) -> Comparison:
    """Compare early-stopping runs (``{"asha": ..., "asha-per-seed": ..., "budget-sh": ...,
    "cooldown-asha": ...}``, any subset) and the top-k ``baseline`` (:func:`top_k`) against the full
    sweep ``full`` on the same space."""
    truth = true_scores(full)
    full_epochs = int(full.trials["epochs_run"].sum())
    test = full.aggregated.set_index("config_id")["test_acc_mean"]
    rows, correlations = [], []
    everyone = {"full": full, **methods}
    picks = {method: _pick(experiment) for method, experiment in everyone.items()}
    epochs_of = {
        m: int(e.trials["epochs_run"].sum()) + _branch_epochs(e) for m, e in everyone.items()
    }
    if baseline is not None:
        name = f"top{baseline.k}"
        picks[name], epochs_of[name] = baseline.pick, baseline.epochs
    verdicts = pick_verdicts(full, picks)
    reference = truth.index[0] if len(truth) else None
    for method, pick in picks.items():
        epochs = epochs_of[method]
        found = verdicts[method]
        regret = (
            # the regret is the reference minus the pick: the difference's interval, turned round
            format_interval(-found.ci_high, -found.ci_low, signed=True)
            if found.ci_low is not None
            else "n/a"
        )
        rows.append(
            {
                "method": method,
                "epochs": epochs,
                "share_of_full": epochs / full_epochs,
                "pick": pick or "none compared",
                "pick_true_val_acc": truth.get(pick, float("nan")),
                "regret_points": (
                    100 * (truth.iloc[0] - truth.get(pick, float("nan")))
                    if len(truth)
                    else float("nan")
                ),
                "regret_holm_interval": regret,
                "regret_bound_95": _regret_bound(full, reference, pick),
                "verdict_vs_true_best": verdict_text(
                    found.verdict, selected_on=METRIC, compared_on=METRIC, reason=found.reason
                ),
                "pick_test_acc": test.get(pick, float("nan")),
            }
        )
    for method in ("asha", "asha-per-seed"):
        if method in methods and asha_rung_epochs:
            correlations += _asha_correlations(method, methods[method], truth, asha_rung_epochs)
    if "budget-sh" in methods:
        correlations += _budget_sh_correlations(methods["budget-sh"], truth)
    if "cooldown-asha" in methods:
        correlations += _cooldown_correlations(methods["cooldown-asha"], truth)
    if baseline is not None:
        (row,) = _asha_correlations(f"top{baseline.k}", full, truth, [baseline.rung])
        correlations.append(row)
    return Comparison(
        pd.DataFrame(rows),
        pd.DataFrame(correlations),
        _top5_fate(truth, full, methods, baseline),
    )


def _regret_bound(full: Experiment, reference: str | None, pick: str | None) -> float:
    """The one-sided 95% upper bound on the pick's regret in accuracy points (0 for the reference
    itself; NaN where the two cannot be paired on every seed)."""
    if reference is None or pick is None:
        return float("nan")
    if pick == reference:
        return 0.0
    ours, best = seed_values(full, pick, METRIC), seed_values(full, reference, METRIC)
    if not ours or set(ours) != set(best) or len(ours) < 2:
        return float("nan")
    return 100 * regret_upper_bound(best, ours)


def _markdown(frame: pd.DataFrame, floats: dict[str, str]) -> str:
    cols = list(frame.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in frame.iterrows():
        cells = [
            (format(row[c], floats[c]) if row[c] == row[c] else "—")
            if c in floats and row[c] is not None
            else str(row[c])
            for c in cols
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def to_markdown(comparison: Comparison) -> str:
    """The three tables as Markdown (for docs/early-stopping.md)."""
    summary = _markdown(
        comparison.summary,
        {
            "share_of_full": ".0%",
            "pick_true_val_acc": ".4f",
            "regret_points": ".2f",
            "regret_bound_95": ".2f",
            "pick_test_acc": ".4f",
        },
    )
    corr = _markdown(comparison.rank_correlation, {"spearman": ".2f"}).replace(
        "| — |", "| n/a (< 5 configurations) |"
    )
    top5 = _markdown(comparison.top5, {"true_val_acc": ".4f"})
    return (
        f"### Epochs and regret\n\n{summary}\n\n### Rank correlation of each rung with the final ranking\n\n"
        f"{corr}\n\n### The true top-5 configurations: what early stopping did to them\n\n{top5}\n"
    )
