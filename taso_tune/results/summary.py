"""The plain-text summary a sweep prints at its end (and ``taso-tune report`` users read in logs)."""

from __future__ import annotations

from taso_tune.results.aggregate import (
    SelectOn,
    hyperparameter_columns,
    not_compared,
    present,
    run_counts,
    selection_metric,
    tie_note,
)
from taso_tune.results.experiment import Experiment
from taso_tune.results.grid_edges import pick_edge_warnings
from taso_tune.results.significance import comparison_text, paired_comparisons, reference_text
from taso_tune.stats.seeds import format_interval, format_mean_std
from taso_tune.stats.verdict import INTERVAL_LABEL

READING_NOTE = (
    "how to read these numbers: mean ± sample std over n of the planned seeds, percent; [a, b] is the\n"
    "95% t interval of the mean, cut to [0, 100] for an accuracy; '—' where fewer than 2 seeds leave\n"
    "no std; a diverged seed counts at chance level; 'at chance k/n': seeds diverged or under a tenth\n"
    "of the way from chance to perfect accuracy, which the t interval does not model; a configuration\n"
    "is compared only when all its planned seeds finished. verdict: each family's pick against the\n"
    "reference, paired by seed, Holm-corrected: better, worse or no difference shown at 5%, with the\n"
    f"difference in points and its {INTERVAL_LABEL};\n"
    "only TOST says equivalent, within the margin it shows."
)


def _pick_lines(row, select_on: SelectOn, verdict: str, edges: list[str]) -> list[str]:
    metric = selection_metric(select_on)

    def stat(name: str) -> str:
        return (
            f"{name} {format_mean_std(row[f'{name}_mean'], row[f'{name}_std'], row['n'])} "
            f"{format_interval(row[f'{name}_ci_low'], row[f'{name}_ci_high'])}"
        )

    hps = ", ".join(
        f"{c[3:]}={row[c]}" for c in hyperparameter_columns(row.to_frame().T) if present(row[c])
    )
    note = f"; {row['status']}" if row["status"] else ""
    tie = tie_note(row, select_on)
    return [
        f"  {row['optimizer']:<13} {stat(metric)}  {stat('test_acc' if metric != 'test_acc' else 'val_acc')}",
        f"  {'':<13} n={row['n']}/{row['planned']} seeds{note}  [{row['config_id']}]",
        *([f"  {'':<13} {tie}"] if tie else []),
        f"  {'':<13} verdict: {verdict}",
        f"  {'':<13} {hps}",
        *(f"  {'':<13} warning: {edge}" for edge in edges),
    ]


def _why_not(row) -> str:
    """Why a configuration is not compared, in a few words."""
    if row["stopped_early"]:
        return "stopped early by the scheduler"
    if row["n"] < row["planned"] and row["complete"] + row["diverged"] < row["planned"]:
        return "with seeds errored or unfinished"
    return "incomplete"


def format_summary(experiment: Experiment, select_on: SelectOn = "val") -> str:
    """Seed counts by status, epochs run, each optimizer's pick (or why it has none), the
    configurations not compared, and how to read the numbers."""
    aggregated = experiment.aggregated
    metric = selection_metric(select_on)
    best = experiment.best(select_on)
    counts = run_counts(experiment.trials)
    by_status = ", ".join(f"{k} {v}" for k, v in counts.by_status.items())
    lines = [
        f"experiment {experiment.path}",
        f"seeds: {counts.seed_runs} ({by_status}) in {counts.trials} trials; epochs run "
        f"{counts.epochs_run} of {counts.epochs_planned} planned ({counts.share_run:.0%})",
    ]
    if experiment.per_seed_stopping:
        lines.append(
            "warning: ASHA stopped seeds one by one (scheduler.per_seed): a biased baseline, whose "
            "configurations rarely keep all their seeds"
        )
    lines.append(f"best configuration per optimizer (selected on {metric}):")
    comparisons = paired_comparisons(experiment, select_on).set_index("config_id", drop=False)
    if len(comparisons):
        lines.append(f"  {reference_text(comparisons)}")
    for optimizer in [
        *best["optimizer"],
        *sorted(set(aggregated["optimizer"]) - set(best["optimizer"])),
    ]:
        picked = best[best["optimizer"] == optimizer]
        if len(picked):
            row = picked.iloc[0]
            verdict = comparison_text(comparisons.loc[row["config_id"]])
            lines += _pick_lines(row, select_on, verdict, pick_edge_warnings(experiment.spec, row))
        else:
            rows = aggregated[aggregated["optimizer"] == optimizer]
            lines.append(
                f"  {optimizer:<13} none compared: no configuration of {len(rows)} ran all "
                f"{experiment.planned_seeds} seeds to the end"
            )
    left = not_compared(aggregated)
    if len(left):
        reasons = ", ".join(
            f"{v} {k}" for k, v in left.apply(_why_not, axis=1).value_counts().items()
        )
        lines.append(
            f"not compared: {len(left)} of {len(aggregated)} configurations ({reasons}); "
            "the report lists each"
        )
    lines.append(READING_NOTE)
    return "\n".join(lines)
