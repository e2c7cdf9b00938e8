"""The one verdict of the results: each optimizer family's pick against the reference, paired by seed.

The reference is named up front: the overall best configuration on the selection metric. Every other
family's pick is compared with it on one metric, :func:`compared_metric` (the held-out split the
selection did not use when the results have it: test accuracy after selection on validation,
validation accuracy after selection on test; else the selection metric), by the one rule of
:mod:`taso_tune.stats.verdict`: the per-seed differences, the paired t-test, Holm's correction over
the picks compared, "better" / "worse" / "no difference shown" at 5%, the Holm-adjusted interval
that matches the verdict, and TOST at a stated margin. The summary, the report, the export and the
command line all read :func:`paired_comparisons`, so they give one verdict.

Pairing is sound because every configuration of a sweep trains on the same seeds, and seed ``s``
gives the same initialisation (``torch.manual_seed(s)`` before the model is built) and the same data
order and augmentation (a generator seeded with ``s``) whatever the optimizer, as long as the model,
data set and batch size are the same: comparing seed by seed removes the share of the spread that
comes from the seed. A diverged seed counts at chance level, as in every other statistic of
taso-tune.
"""

from __future__ import annotations

import math
from dataclasses import fields
from html import escape

import pandas as pd
import plotly.graph_objects as go

from taso_tune.core.errors import ConfigError
from taso_tune.results.aggregate import SelectOn, selection_metric
from taso_tune.results.experiment import Experiment
from taso_tune.stats.seeds import (
    ACCURACY_DIFFERENCE_RANGE,
    MISSING_TEXT,
    diverged_score,
    format_interval,
)
from taso_tune.stats.verdict import (
    DEFAULT_LEVEL,
    DEFAULT_MARGIN,
    INTERVAL_LABEL,
    compare_to_reference,
    equivalence_text,
    format_difference,
    verdict_text,
)

#: The metric compared after selection on each split, when the results have it: the other split,
#: which the selection never saw (test accuracy after selection on validation, as the paper's
#: final tables report; validation accuracy after the paper's selection on test).
HELD_OUT = {"val": "test_acc", "test": "val_acc"}
#: The statuses whose seeds have a final value (a diverged one scored at chance).
FINISHED = ("complete", "diverged")
COLUMNS = [
    "optimizer",
    "config_id",
    "n",
    "mean",
    "difference",
    "ci_low",
    "ci_high",
    "confidence",
    "p_value",
    "p_holm",
    "verdict",
    "reason",
    "equivalence",
    "selected_on",
    "compared_on",
    "status",
    "tied_picks",
]
VERDICT_COLORS = {"better": "#2ca02c", "worse": "#d62728", "no difference shown": "#7f7f7f"}


def seed_values(experiment: Experiment, config_id: str, metric: str) -> dict[int, float]:
    """``metric`` per finished seed of ``config_id``'s final trials, by the one statistics rule
    (:func:`~taso_tune.results.aggregate.aggregate`'s): a diverged seed, or a complete one without
    a finite value, at chance level; a seed errored, unfinished or stopped early is missing (left
    out, never read at its last value), so a configuration with one is not paired with another
    that ran every seed."""
    trials = experiment.final_trials
    rows = trials[(trials["config_id"] == config_id) & trials["status"].isin(FINISHED)]
    values: dict[int, float] = {}
    for _, row in rows.iterrows():
        value = pd.to_numeric(pd.Series([row.get(metric)]), errors="coerce").iloc[0]
        if row["status"] == "diverged" or not math.isfinite(value):
            value = diverged_score(metric, num_classes=int(row["num_classes"]))
        values[int(row["seed"])] = float(value)
    return values


def compared_metric(experiment: Experiment, select_on: SelectOn = "val") -> str:
    """The one metric the picks are compared on: the split the selection did not use, when some
    seed recorded it (test accuracy after selection on validation, validation accuracy after
    selection on test), so the reference is not judged on the numbers that picked it (the winner's
    curse); else the selection metric, which the outputs then call "not held out"."""
    selected = selection_metric(select_on)  # refuses an unknown split by name
    held_out = HELD_OUT[select_on]
    trials = experiment.final_trials
    if held_out in trials and pd.to_numeric(trials[held_out], errors="coerce").notna().any():
        return held_out
    return selected


def paired_comparisons(
    experiment: Experiment,
    select_on: SelectOn = "val",
    metric: str | None = None,
    level: float = DEFAULT_LEVEL,
    margin: float = DEFAULT_MARGIN,
) -> pd.DataFrame:
    """One row per optimizer family's pick, best first: the first is the reference (``verdict``
    "reference"); each other carries the one rule's verdict against it on ``metric``
    (:func:`compared_metric` when ``None``): the mean of the paired differences (``difference``,
    this pick minus the reference) with its Holm-adjusted interval (``ci_low``, ``ci_high``, at
    ``confidence``), the paired t-test ``p_value``, the Holm-adjusted ``p_holm``, the verdict and,
    for a pick not compared, the ``reason``; ``equivalence`` is the TOST at ``margin`` (an
    :class:`~taso_tune.stats.equivalence.Equivalence`). ``selected_on`` and ``compared_on`` name
    the two metrics, ``status`` the pick's notes (seeds diverged or at chance), ``tied_picks`` the
    other picks with the same mean on ``selected_on``. Empty when no family has a pick.
    """
    metric = compared_metric(experiment, select_on) if metric is None else metric
    if not metric.endswith("_acc"):
        raise ConfigError(
            "metric",
            metric,
            "paired comparisons are of accuracies",
            choices=["val_acc", "test_acc"],
        )
    best = experiment.best(select_on)
    if best.empty:
        return pd.DataFrame(columns=COLUMNS)
    values = {
        row.config_id: seed_values(experiment, row.config_id, metric) for row in best.itertuples()
    }
    reference = best.iloc[0]["config_id"]
    verdicts = compare_to_reference(
        values[reference],
        {c: v for c, v in values.items() if c != reference},
        mode="max",
        level=level,
        bounds=ACCURACY_DIFFERENCE_RANGE,
        margin=margin,
    )
    rows = []
    for row in best.itertuples():
        mine = values[row.config_id]
        out = {
            "optimizer": row.optimizer,
            "config_id": row.config_id,
            "n": len(mine),
            "mean": sum(mine.values()) / len(mine),
            "verdict": "reference",
            "reason": "",
            "selected_on": selection_metric(select_on),
            "compared_on": metric,
            "status": row.status,
            "tied_picks": row.tied_picks,
        }
        if row.config_id != reference:
            # every field of the comparison but its n (the row's own, counted above)
            found = verdicts[row.config_id]
            out.update({f.name: getattr(found, f.name) for f in fields(found) if f.name != "n"})
        rows.append(out)
    return pd.DataFrame(rows, columns=COLUMNS).astype({"equivalence": object})


def comparison_text(row, level: float = DEFAULT_LEVEL) -> str:
    """A row of :func:`paired_comparisons` as every output words it: the verdict, and for a pick
    compared, the difference with its Holm-adjusted interval and the equivalence test."""
    words = verdict_text(
        row["verdict"],
        selected_on=row["selected_on"],
        compared_on=row["compared_on"],
        level=level,
        reason=row["reason"],
    )
    if _missing(row["difference"]):
        return words
    return (
        f"{words}: {format_difference(row['difference'], row['ci_low'], row['ci_high'])} points "
        f"on {row['compared_on']}; {equivalence_text(row['equivalence'])}"
    )


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _points(value: float | None, sign: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING_TEXT
    return f"{value * 100:+.2f}" if sign else f"{value * 100:.2f}"


def _p(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING_TEXT
    return "&lt; 0.001" if value < 0.001 else f"{value:.3f}"


def reference_text(table: pd.DataFrame) -> str:
    """The sentence that names the reference and the rule before any verdict (``table``: a
    non-empty :func:`paired_comparisons`)."""
    reference = table.iloc[0]
    compared = int(table["p_holm"].notna().sum())
    selected_on, compared_on = reference["selected_on"], reference["compared_on"]
    held_out = (
        f"picked on {selected_on}, compared on {compared_on}"
        if selected_on != compared_on
        else f"picked and compared on {compared_on} (not held out)"
    )
    optimizer_of = dict(zip(table["config_id"], table["optimizer"], strict=True))
    ties = ", ".join(f"{optimizer_of[c]} ({c})" for c in reference["tied_picks"])
    tie = (
        f", tied there with {ties} (the same mean up to rounding: which one is the reference is "
        "not a finding)"
        if ties
        else ""
    )
    lead = (
        f"Reference: {reference['optimizer']} ({reference['config_id']}), the best pick on "
        f"{selected_on}{tie}; "
    )
    if len(table) < 2:
        return f"{lead}no other family's pick to compare"
    if compared == 0:
        return f"{lead}no other family's pick could be compared with it (each says why)"
    return (
        f"{lead}each other family's pick against it, paired by seed, Holm-corrected over "
        f"the {compared} pick{'s' if compared != 1 else ''} compared ({held_out})"
    )


def significance_html(
    experiment: Experiment,
    select_on: SelectOn = "val",
    metric: str | None = None,
    margin: float = DEFAULT_MARGIN,
) -> str:
    """The report's table of :func:`paired_comparisons`, with the reference named first and what the
    interval and the words mean."""
    table = paired_comparisons(experiment, select_on, metric, margin=margin)
    if len(table) < 2:
        return (
            '<p class="muted">Needs at least two optimizer families whose picks have every planned '
            "seed finished, with 2 or more seeds.</p>"
        )
    compared_on = table.iloc[0]["compared_on"]
    head = (
        "optimizer",
        "configuration",
        "n",
        f"{compared_on} mean (%)",
        "difference to the reference (points)",
        "Holm-adjusted interval (points)",
        "p (paired t)",
        "p (Holm)",
        "verdict at 5%",
        f"equivalence (TOST, margin ±{margin * 100:g} points)",
        "notes",
    )
    cells = []
    for _, row in table.iterrows():
        values = (
            escape(row["optimizer"]),
            f"<code>{escape(row['config_id'])}</code>",
            str(row["n"]),
            _points(row["mean"]),
            _points(row["difference"], True),
            format_interval(row["ci_low"], row["ci_high"], signed=True),
            _p(row["p_value"]),
            _p(row["p_holm"]),
            escape(
                verdict_text(
                    row["verdict"],
                    selected_on=row["selected_on"],
                    compared_on=row["compared_on"],
                    reason=row["reason"],
                )
            ),
            escape(equivalence_text(row["equivalence"])),
            escape(row["status"]),
        )
        numeric = {2, 3, 4, 5, 6, 7}
        cells.append(
            "".join(
                f'<td class="num">{v}</td>' if i in numeric else f"<td>{v}</td>"
                for i, v in enumerate(values)
            )
        )
    rows = "".join(f"<tr>{c}</tr>" for c in cells)
    header = "".join(f"<th>{h}</th>" for h in head)
    lead = f'<p class="note">{escape(reference_text(table))}.</p>'
    note = (
        f'<p class="muted">The same seed gives the same initialisation and data order to every '
        "optimizer, so the per-seed differences are paired; a diverged seed counts at chance level. "
        "Difference of means, two-sided paired t-test, Holm's correction over the picks compared. "
        f"The interval is the {escape(INTERVAL_LABEL)}: the paired t interval at confidence "
        "1 - 0.05 · p / p<sub>Holm</sub>, cut to [-100, 100] points. <i>no difference shown</i>: "
        "these seeds cannot tell the two apart, which is not <i>the same</i>; only TOST says "
        f"<i>equivalent</i>, within the margin of ±{margin * 100:g} points shown. "
        "<i>not compared</i>: the two did not run over the same seeds, or over fewer than 2.</p>"
    )
    return f"{lead}<table><tr>{header}</tr>{rows}</table>{note}"


def forest_plot(
    experiment: Experiment, select_on: SelectOn = "val", metric: str | None = None
) -> go.Figure | None:
    """Each family's difference to the reference (points) with its Holm-adjusted interval, a line at
    0; ``None`` when there is nothing to compare."""
    table = paired_comparisons(experiment, select_on, metric)
    compared = table[table["difference"].notna()] if not table.empty else table
    if compared.empty:
        return None
    reference = table.iloc[0]
    compared_on = reference["compared_on"]
    fig = go.Figure()
    for verdict, rows in compared.groupby("verdict", sort=False):
        diff = rows["difference"].astype(float) * 100
        fig.add_trace(
            go.Scatter(
                x=diff,
                y=[f"{o} ({c})" for o, c in zip(rows["optimizer"], rows["config_id"], strict=True)],
                mode="markers",
                name=verdict,
                marker={"size": 10, "color": VERDICT_COLORS.get(verdict, "#1f77b4")},
                error_x={
                    "type": "data",
                    "symmetric": False,
                    "array": rows["ci_high"].astype(float) * 100 - diff,
                    "arrayminus": diff - rows["ci_low"].astype(float) * 100,
                },
                customdata=rows["p_holm"],
                hovertemplate="%{y}: %{x:+.2f} points, p (Holm) %{customdata:.3g}<extra></extra>",
            )
        )
    fig.add_vline(x=0, line={"color": "#444", "dash": "dash"})
    fig.update_xaxes(
        title_text=(
            f"difference in {compared_on} to the reference {reference['optimizer']} "
            f"({reference['config_id']}), points"
        )
    )
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(
        title=(
            f"Paired differences to the reference on {compared_on}, with Holm-adjusted intervals "
            "(each excludes 0 exactly when its verdict says better/worse; not simultaneous)"
        ),
        height=160 + 50 * len(compared),
        legend={"title": {"text": "verdict at 5%"}},
    )
    return fig
