"""Is each optimizer's pick really better or worse than the best one? Paired comparisons over seeds.

Every configuration of a sweep trains on the same seeds, and seed ``s`` gives the same initialisation
(``torch.manual_seed(s)`` before the model is built) and the same data order and augmentation (a
generator seeded with ``s``) whatever the optimizer, as long as the model, data set and batch size
are the same. So the per-seed results of two configurations are paired: comparing them seed by seed
removes the share of the spread that comes from the seed. For each optimizer family's pick (chosen
on the selection metric) against the overall pick, :func:`paired_comparisons` gives the difference
of means on a held-out metric (test accuracy by default) with its 95% t interval, the paired t-test,
Holm's correction across the comparisons and a verdict at 5%: better, worse or tie. A diverged seed
counts at chance level, as in every other statistic of taso-tune.
"""

from __future__ import annotations

import math
from html import escape

import pandas as pd
import plotly.graph_objects as go

from taso_tune.core.errors import ConfigError
from taso_tune.results.aggregate import SelectOn, selection_metric
from taso_tune.results.experiment import Experiment
from taso_tune.stats.paired import DEFAULT_LEVEL, holm, paired_difference, paired_verdict
from taso_tune.stats.seeds import MISSING_TEXT, diverged_score

#: The metric compared by default: held out from the selection, as the paper's final tables report.
COMPARED_METRIC = "test_acc"
COLUMNS = [
    "optimizer",
    "config_id",
    "n",
    "mean",
    "difference",
    "ci_low",
    "ci_high",
    "p_value",
    "p_holm",
    "verdict",
]
VERDICT_COLORS = {"better": "#2ca02c", "worse": "#d62728", "tie": "#7f7f7f"}


def seed_values(experiment: Experiment, config_id: str, metric: str) -> dict[int, float]:
    """``metric`` per seed of ``config_id``'s final trials: a diverged seed at chance level."""
    trials = experiment.final_trials
    rows = trials[trials["config_id"] == config_id]
    values: dict[int, float] = {}
    for _, row in rows.iterrows():
        value = pd.to_numeric(pd.Series([row.get(metric)]), errors="coerce").iloc[0]
        if row["status"] == "diverged" or not math.isfinite(value):
            value = diverged_score(metric, num_classes=int(row["num_classes"]))
        values[int(row["seed"])] = float(value)
    return values


def paired_comparisons(
    experiment: Experiment,
    select_on: SelectOn = "val",
    metric: str = COMPARED_METRIC,
    level: float = DEFAULT_LEVEL,
) -> pd.DataFrame:
    """One row per optimizer family's pick (best first): its mean ``metric`` over seeds and, for all
    but the overall pick (``verdict`` "reference"), the paired difference to it (``difference``,
    ``ci_low``, ``ci_high``: this family minus the reference), the paired t-test ``p_value``, the
    Holm-adjusted ``p_holm`` and the verdict at ``level``. Empty with fewer than two families, or
    when the picks have under 2 seeds. Families not run over the reference's seeds are "not paired".
    """
    if not metric.endswith("_acc"):
        raise ConfigError(
            "metric",
            metric,
            "paired comparisons are of accuracies",
            choices=["val_acc", "test_acc"],
        )
    best = experiment.best(select_on)
    if len(best) < 2 or int(best["n"].min()) < 2:
        return pd.DataFrame(columns=COLUMNS)
    values = {
        row.config_id: seed_values(experiment, row.config_id, metric) for row in best.itertuples()
    }
    reference = best.iloc[0]["config_id"]
    rows, tests = [], []
    for row in best.itertuples():
        mine = values[row.config_id]
        out = {
            "optimizer": row.optimizer,
            "config_id": row.config_id,
            "n": len(mine),
            "mean": sum(mine.values()) / len(mine),
            "difference": None,
            "ci_low": None,
            "ci_high": None,
            "p_value": None,
            "p_holm": None,
            "verdict": "reference" if row.config_id == reference else "not paired",
        }
        if row.config_id != reference and set(mine) == set(values[reference]):
            diff = paired_difference(mine, values[reference])
            out.update(
                difference=diff.mean, ci_low=diff.ci_low, ci_high=diff.ci_high, p_value=diff.p_value
            )
            tests.append(len(rows))
        rows.append(out)
    for i, adjusted in zip(tests, holm([rows[i]["p_value"] for i in tests]), strict=True):
        rows[i]["p_holm"] = adjusted
        rows[i]["verdict"] = paired_verdict(
            adjusted, rows[i]["difference"], mode="max", level=level
        )
    return pd.DataFrame(rows, columns=COLUMNS)


def _points(value: float | None, sign: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING_TEXT
    return f"{value * 100:+.2f}" if sign else f"{value * 100:.2f}"


def _p(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING_TEXT
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def significance_html(
    experiment: Experiment, select_on: SelectOn = "val", metric: str = COMPARED_METRIC
) -> str:
    """The report's table of :func:`paired_comparisons`, with what it compares and how."""
    table = paired_comparisons(experiment, select_on, metric)
    if table.empty:
        return (
            '<p class="muted">Needs at least two optimizer families whose picks have every planned '
            "seed finished, with 2 or more seeds.</p>"
        )
    head = (
        "optimizer",
        "configuration",
        "n",
        f"{metric} mean (%)",
        "difference to the best (points)",
        "95% interval",
        "p (paired t)",
        "p (Holm)",
        "verdict at 5%",
    )
    cells = []
    for row in table.itertuples():
        interval = (
            MISSING_TEXT
            if row.ci_low is None or pd.isna(row.ci_low)
            else f"[{_points(row.ci_low, True)}, {_points(row.ci_high, True)}]"
        )
        values = (
            escape(row.optimizer),
            f"<code>{escape(row.config_id)}</code>",
            str(row.n),
            _points(row.mean),
            _points(row.difference, True),
            interval,
            _p(row.p_value),
            _p(row.p_holm),
            escape(row.verdict),
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
    note = (
        f'<p class="muted">Each family\'s pick (selected on {selection_metric(select_on)}) against the overall '
        f"pick, on {metric}, seed by seed: the same seed gives the same initialisation and data order "
        "to every optimizer, so the differences are paired. Difference of means with its 95% t interval, "
        "two-sided paired t-test, Holm-corrected across the comparisons; a diverged seed at chance level. "
        '"tie": no difference at 5% after correction (not: no difference).</p>'
    )
    return f"<table><tr>{header}</tr>{rows}</table>{note}"


def forest_plot(
    experiment: Experiment, select_on: SelectOn = "val", metric: str = COMPARED_METRIC
) -> go.Figure | None:
    """Each family's difference to the overall pick (points) with its 95% interval, a line at 0;
    ``None`` when there is nothing to compare."""
    table = paired_comparisons(experiment, select_on, metric)
    compared = table[table["difference"].notna()] if not table.empty else table
    if compared.empty:
        return None
    reference = table[table["verdict"] == "reference"].iloc[0]
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
        title_text=f"difference in {metric} to {reference['optimizer']} ({reference['config_id']}), points"
    )
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(
        title=f"Paired differences to the best pick with 95% intervals ({metric})",
        height=160 + 50 * len(compared),
        legend={"title": {"text": "verdict at 5%"}},
    )
    return fig
