"""The HTML report of an experiment: the paper's figures and tables, drawn from saved results.

Each figure is one function of an :class:`~taso_tune.results.Experiment` returning a plotly
``go.Figure`` (or ``None`` when the sweep has nothing to show for it), so a notebook can call any of
them alone; :func:`write_report` puts them together with the tables of
:mod:`taso_tune.results.report_tables` into one HTML page. Nothing here retrains: every number
comes from the trials' saved results, and configurations are compared on complete trials only (mean
± sample std over seeds, with n).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from typing import Literal

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from taso_tune.core.errors import ConfigError
from taso_tune.core.storage import write_text_atomic
from taso_tune.results.aggregate import SelectOn, selection_metric
from taso_tune.results.experiment import Experiment
from taso_tune.results.report_tables import render_page, varied_hyperparameters
from taso_tune.results.significance import forest_plot
from taso_tune.stats.seeds import MISSING_TEXT, format_mean_std

PlotlyJS = Literal["inline", "directory"]
#: The file ``--plotlyjs directory`` writes beside the report (plotly's own name for it).
PLOTLYJS_FILE = "plotly.min.js"
STATUS_COLORS = {
    "complete": "#2ca02c",
    "stopped-early": "#ff7f0e",
    "diverged": "#d62728",
    "errored": "#7f7f7f",
    "unfinished": "#17becf",
}
#: Hyperparameters drawn on a log axis in the parallel-coordinates view.
LOG_HPARAMS = ("lr", "lr_final", "weight_decay", "eps")
CURVE_PANELS = (
    ("val_acc", "validation accuracy (%)"),
    ("test_acc", "test accuracy (%)"),
    ("val_loss", "validation loss"),
    ("test_loss", "test loss"),
)


def optimizer_colors(optimizers: Iterable[str]) -> dict[str, str]:
    """A fixed colour per optimizer family (sorted by name, so every figure agrees)."""
    palette = qualitative.Plotly
    return {name: palette[i % len(palette)] for i, name in enumerate(sorted(set(optimizers)))}


def _rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def add_band(
    fig: go.Figure,
    x: Sequence[float],
    mean: Sequence[float],
    std: Sequence[float],
    *,
    name: str,
    color: str,
    row: int | None = None,
    col: int | None = None,
    showlegend: bool = True,
) -> None:
    """Add a mean line with a shaded ± std band (the paper's "shadow areas") to ``fig``. Where the
    std is NaN (one seed: no std) no band is drawn and the hover says "± —", never "± 0"."""
    x, mean, std = (
        np.asarray(x, dtype=float),
        np.asarray(mean, dtype=float),
        np.asarray(std, dtype=float),
    )
    keep = np.isfinite(mean)  # e.g. no validation split: nothing to draw
    x, mean, std = x[keep], mean[keep], std[keep]
    banded = np.isfinite(std)
    bx, bmean, bstd = x[banded], mean[banded], std[banded]
    where = {"row": row, "col": col} if row is not None else {}
    fig.add_trace(
        go.Scatter(
            x=np.concatenate([bx, bx[::-1]]),
            y=np.concatenate([bmean + bstd, (bmean - bstd)[::-1]]),
            mode="lines",
            fill="toself",
            fillcolor=_rgba(color, 0.2),
            line={"width": 0},
            hoverinfo="skip",
            legendgroup=name,
            showlegend=False,
        ),
        **where,
    )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=mean,
            mode="lines",
            name=name,
            line={"color": color, "width": 2},
            legendgroup=name,
            showlegend=showlegend,
            customdata=[f"{v:.2g}" if math.isfinite(v) else MISSING_TEXT for v in std],
            hovertemplate="epoch %{x}: %{y:.4g} ± %{customdata}",
        ),
        **where,
    )


def seed_curve(experiment: Experiment, config_id: str, metric: str) -> pd.DataFrame:
    """Per epoch: mean, sample std (ddof=1) and n of ``metric`` over the complete seeds of
    configuration ``config_id`` (what each learning curve draws)."""
    return _curve(_complete_epochs(experiment, config_id), metric)


def _complete_epochs(experiment: Experiment, config_id: str) -> pd.DataFrame:
    """The epoch records of the complete compared trials of ``config_id``."""
    trials = experiment.final_trials
    done = trials[(trials["config_id"] == config_id) & (trials["status"] == "complete")]
    keys = pd.DataFrame(
        {
            "trial_id": done["trial_id"],
            "seed": done["seed"],
            "rung": done["rung"].astype(float).fillna(-1),
        }
    )
    epochs = experiment.epochs.assign(rung=experiment.epochs["rung"].astype(float).fillna(-1))
    return epochs.merge(keys, on=["trial_id", "seed", "rung"])


def _curve(rows: pd.DataFrame, metric: str) -> pd.DataFrame:
    values = pd.to_numeric(rows[metric], errors="coerce").groupby(rows["epoch"])
    # one seed has no std: NaN, drawn as no band (its n is in the legend), never as ± 0
    curve = pd.DataFrame({"mean": values.mean(), "std": values.std(ddof=1), "n": values.count()})
    return curve.reset_index()


def _empty(title: str, message: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_layout(title=title, height=200, xaxis={"visible": False}, yaxis={"visible": False})
    return fig


def learning_curves(experiment: Experiment, select_on: SelectOn = "val") -> go.Figure:
    """Validation and test accuracy and loss per epoch of each optimizer's best configuration
    (chosen on ``select_on``): mean over seeds with a ± std band, like the paper's Figs. 4-6."""
    title = f"Learning curves of each optimizer's best configuration (selected on {selection_metric(select_on)})"
    best = experiment.best(select_on)
    if best.empty:
        return _empty(title, "no configuration has all its planned seeds finished yet")
    colors = optimizer_colors(experiment.trials["optimizer"])
    fig = make_subplots(
        rows=2,
        cols=2,
        subplot_titles=[label for _, label in CURVE_PANELS],
        shared_xaxes=True,
        vertical_spacing=0.1,
    )
    for _, row in best.iterrows():
        name = f"{row['config_id']} (n={row['n']}/{row['planned']})"
        for i, (metric, _) in enumerate(CURVE_PANELS):
            curve = seed_curve(experiment, row["config_id"], metric)
            scale = 100.0 if metric.endswith("_acc") else 1.0
            add_band(
                fig,
                curve["epoch"],
                curve["mean"] * scale,
                curve["std"] * scale,
                name=name,
                color=colors[row["optimizer"]],
                row=i // 2 + 1,
                col=i % 2 + 1,
                showlegend=i == 0,
            )
    fig.update_xaxes(title_text="epoch", row=2)
    fig.update_layout(
        title=title, height=700, legend={"orientation": "h", "y": -0.12}, hovermode="x unified"
    )
    return fig


def learning_rates(experiment: Experiment) -> go.Figure:
    """The learning rate each trial actually used in each epoch, log scale (the paper's Figs. 1, 3)."""
    epochs = experiment.epochs.dropna(subset=["lr"])
    colors = optimizer_colors(experiment.trials["optimizer"])
    fig = go.Figure()
    shown: set[str] = set()
    for _, rows in epochs.groupby(["trial_id", epochs["rung"].fillna(-1)], sort=False):
        optimizer = rows["optimizer"].iloc[0]
        label = f"{rows['config_id'].iloc[0]} seed {rows['seed'].iloc[0]}"
        fig.add_trace(
            go.Scatter(
                x=rows["epoch"],
                y=rows["lr"],
                mode="lines",
                name=optimizer,
                legendgroup=optimizer,
                showlegend=optimizer not in shown,
                line={"color": colors[optimizer], "width": 1.5},
                opacity=0.7,
                hovertemplate=f"{label}<br>epoch %{{x}}: lr %{{y:.3g}}<extra></extra>",
            )
        )
        shown.add(optimizer)
    fig.update_yaxes(type="log", title_text="learning rate (log scale)", exponentformat="power")
    fig.update_xaxes(title_text="epoch")
    fig.update_layout(title="Learning rate used per epoch, every trial", height=450)
    return fig


def _axis(label: str, values: pd.Series, log: bool = False) -> dict:
    """One parallel-coordinates dimension; booleans become false/true, missing values an "n/a" tick
    under the range (a hyperparameter another optimizer family does not have)."""
    if values.map(lambda v: isinstance(v, (bool, np.bool_))).any():
        numeric = values.map(lambda v: float(v) if isinstance(v, (bool, np.bool_)) else math.nan)
        ticks = {0.0: "false", 1.0: "true"}
    else:
        numeric = pd.to_numeric(values, errors="coerce").astype(float)
        if log:
            numeric = np.log10(numeric.where(numeric > 0))
        found = sorted(numeric.dropna().unique())
        ticks = (
            {v: (f"{10**v:.3g}" if log else f"{v:.4g}") for v in found} if len(found) <= 8 else {}
        )
    present = numeric.dropna()
    if len(present) < len(numeric):
        low, high = (present.min(), present.max()) if len(present) else (0.0, 1.0)
        missing = low - 0.25 * ((high - low) or 1.0)
        numeric = numeric.fillna(missing)
        ticks[missing] = "n/a"
    dimension = {"label": label, "values": numeric.tolist()}
    if ticks:
        dimension.update(tickvals=list(ticks), ticktext=list(ticks.values()))
    return dimension


def parallel_coordinates(experiment: Experiment, select_on: SelectOn = "val") -> go.Figure:
    """One line per configuration (complete trials, mean over seeds): optimizer, the numeric
    hyperparameters that vary (log lr) and the mean selection accuracy, coloured by it."""
    metric = selection_metric(select_on)
    title = f"Hyperparameters against mean {metric} (one line per compared configuration)"
    agg = experiment.aggregated
    agg = agg[agg["comparable"].astype(bool)] if not agg.empty else agg
    if agg.empty:
        return _empty(title, "no configuration has complete trials yet")
    families = sorted(agg["optimizer"].unique())
    dims = [
        {
            "label": "optimizer",
            "values": [families.index(o) for o in agg["optimizer"]],
            "tickvals": list(range(len(families))),
            "ticktext": families,
        }
    ]
    columns = list(dict.fromkeys(["hp.lr", *varied_hyperparameters(agg)]))
    for column in columns:
        if column in agg and not agg[column].map(lambda v: isinstance(v, tuple)).any():
            dims.append(
                _axis(
                    column[3:] + (" (log)" if column[3:] in LOG_HPARAMS else ""),
                    agg[column],
                    log=column[3:] in LOG_HPARAMS,
                )
            )
    score = agg[f"{metric}_mean"] * 100
    dims.append({"label": f"{metric} mean (%)", "values": score.tolist()})
    line = {
        "color": score.tolist(),
        "colorscale": "Viridis",
        "showscale": True,
        "colorbar": {"title": {"text": f"{metric} (%)"}},
    }
    fig = go.Figure(go.Parcoords(line=line, dimensions=dims))
    fig.update_layout(
        title={"text": title, "y": 0.97}, height=480, margin={"l": 80, "r": 80, "t": 110}
    )
    return fig


def stopped_at(experiment: Experiment) -> pd.DataFrame:
    """Trials that did not run their planned epochs, with the epoch they stopped at (for ASHA, the
    rung that stopped them) and why (stopped-early, diverged, errored, unfinished)."""
    trials = experiment.trials
    out = trials[trials["epochs_run"] < trials["planned_epochs"]]
    return out[
        ["trial_name", "config_id", "optimizer", "seed", "epochs_run", "planned_epochs", "status"]
    ]


def early_stopping(experiment: Experiment) -> go.Figure:
    """How far each seed run got. ASHA and plain sweeps: epochs run against planned per seed run,
    coloured by status, and how many seed runs stopped at each epoch (the ASHA rung). Budget-aware
    successive halving: each configuration's last rung, and the configurations each rung budget
    trained."""
    if experiment.trials["rung"].notna().any():
        return _rung_budgets(experiment)
    trials = experiment.trials.sort_values(["optimizer", "config_id", "seed"])
    trials = trials.assign(label=trials["config_id"] + " s" + trials["seed"].astype(str))
    fig = make_subplots(
        rows=1,
        cols=2,
        column_widths=[0.62, 0.38],
        horizontal_spacing=0.22,
        subplot_titles=["epochs run of planned, per seed run", "seed runs stopped at each epoch"],
    )
    fig.add_trace(
        go.Bar(
            y=trials["label"],
            x=trials["planned_epochs"],
            orientation="h",
            name="planned",
            marker_color="rgba(0,0,0,0.08)",
            hoverinfo="skip",
        ),
        row=1,
        col=1,
    )
    for status, rows in trials.groupby("status", sort=True):
        fig.add_trace(
            go.Bar(
                y=rows["label"],
                x=rows["epochs_run"],
                orientation="h",
                name=status,
                marker_color=STATUS_COLORS.get(status, "#333333"),
                legendgroup=status,
            ),
            row=1,
            col=1,
        )
    stopped = stopped_at(experiment)
    _stacked_counts(fig, stopped, row=1, col=2)
    if stopped.empty:
        # an axis without traces is not drawn, so place the note in paper coordinates
        fig.add_annotation(
            text="every trial ran its planned epochs",
            showarrow=False,
            xref="paper",
            yref="paper",
            x=sum(fig.layout.xaxis2.domain) / 2,
            y=sum(fig.layout.yaxis2.domain) / 2,
        )
    fig.update_layout(
        barmode="overlay",
        title="Early stopping: how far each trial got",
        bargap=0.15,
        height=max(350, 90 + 16 * len(trials)),
    )
    fig.update_xaxes(title_text="epochs run", row=1, col=1)
    fig.update_xaxes(title_text="stopped after epoch", type="category", row=1, col=2)
    fig.update_yaxes(autorange="reversed", tickfont={"size": 9}, row=1, col=1)
    fig.update_yaxes(title_text="trials", row=1, col=2)
    return fig


def _stacked_counts(fig: go.Figure, stopped: pd.DataFrame, row: int, col: int) -> None:
    """Bars of trials per epoch they stopped at, one trace per status stacked by hand (``base``),
    since the figure's bar mode is overlay for the per-trial panel."""
    epochs = sorted(int(e) for e in stopped["epochs_run"].unique())
    below = dict.fromkeys(epochs, 0)
    for status, rows in stopped.groupby("status", sort=True):
        counts = rows["epochs_run"].astype(int).value_counts()
        x = [e for e in epochs if e in counts]
        fig.add_trace(
            go.Bar(
                x=[str(e) for e in x],
                y=[int(counts[e]) for e in x],
                base=[below[e] for e in x],
                name=status,
                legendgroup=status,
                showlegend=False,
                marker_color=STATUS_COLORS.get(status, "#333333"),
            ),
            row=row,
            col=col,
        )
        for e in x:
            below[e] += int(counts[e])


def _rung_budgets(experiment: Experiment) -> go.Figure:
    trials = experiment.trials
    rungs = trials.groupby("rung").agg(
        budget=("planned_epochs", "max"), configs=("config_id", "nunique")
    )
    last = (
        trials.sort_values("rung")
        .groupby("config_id")
        .tail(1)
        .sort_values(["optimizer", "config_id"])
    )
    colors = optimizer_colors(trials["optimizer"])
    fig = make_subplots(
        rows=1,
        cols=2,
        column_widths=[0.6, 0.4],
        horizontal_spacing=0.22,
        subplot_titles=["last rung budget reached, per configuration", "configurations per rung"],
    )
    for optimizer, rows in last.groupby("optimizer", sort=True):
        fig.add_trace(
            go.Bar(
                y=rows["config_id"],
                x=rows["planned_epochs"],
                orientation="h",
                name=optimizer,
                marker_color=colors[optimizer],
            ),
            row=1,
            col=1,
        )
    fig.add_trace(
        go.Bar(
            x=[
                f"rung {int(r)}: {int(b)} epochs"
                for r, b in zip(rungs.index, rungs["budget"], strict=True)
            ],
            y=rungs["configs"],
            name="configurations",
            marker_color="#636efa",
            showlegend=False,
        ),
        row=1,
        col=2,
    )
    fig.update_layout(
        title="Budget-aware successive halving: rung budgets", height=max(350, 90 + 18 * len(last))
    )
    fig.update_xaxes(title_text="epochs (rung budget)", row=1, col=1)
    fig.update_yaxes(autorange="reversed", tickfont={"size": 9}, row=1, col=1)
    return fig


def alpha_beta_heatmap(experiment: Experiment, select_on: SelectOn = "val") -> go.Figure | None:
    """Mean selection accuracy of TASO over its alpha x beta grid (the paper's Table V), or ``None``
    when the sweep does not vary both. A cell with several configurations (another hyperparameter
    varied too) shows the best of them."""
    agg = experiment.aggregated
    taso = (
        agg[(agg["optimizer"] == "taso") & agg["comparable"].astype(bool)] if not agg.empty else agg
    )
    if (
        taso.empty
        or "hp.alpha" not in taso
        or taso["hp.alpha"].nunique() < 2
        or taso["hp.beta"].nunique() < 2
    ):
        return None
    metric = selection_metric(select_on)
    cells = (
        taso.sort_values(f"{metric}_mean", ascending=False).groupby(["hp.alpha", "hp.beta"]).head(1)
    )
    alphas, betas = sorted(taso["hp.alpha"].unique()), sorted(taso["hp.beta"].unique())
    z = np.full((len(alphas), len(betas)), np.nan)
    text = np.full(z.shape, "", dtype=object)
    for _, row in cells.iterrows():
        i, j = alphas.index(row["hp.alpha"]), betas.index(row["hp.beta"])
        z[i, j] = row[f"{metric}_mean"] * 100
        text[i, j] = format_mean_std(row[f"{metric}_mean"], row[f"{metric}_std"], row["n"]).replace(
            " (", "<br>("
        )
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=[f"{b:g}" for b in betas],
            y=[f"{a:g}" for a in alphas],
            text=text,
            texttemplate="%{text}",
            colorscale="Viridis",
            colorbar={"title": {"text": f"{metric} (%)"}},
            hovertemplate="alpha %{y}, beta %{x}: %{z:.2f}%<extra></extra>",
        )
    )
    fig.update_layout(
        title=f"TASO: mean {metric} over alpha x beta (Table V)",
        height=420,
        xaxis={"title": {"text": "beta"}, "type": "category"},
        yaxis={"title": {"text": "alpha"}, "type": "category"},
    )
    return fig


def cooldown_branches(experiment: Experiment) -> go.Figure | None:
    """``scheduler: cooldown-asha``: each configuration's main curve (the mean over its seeds of the
    sweep's metric, epoch by epoch) with, at each rung, the score of its cooldown branches, which the
    scheduler judged instead; ``None`` for other sweeps."""
    branches = experiment.cooldowns
    metric = experiment.spec.metric if experiment.spec is not None else "val_acc"
    column = f"cooldown_{metric}"
    if branches.empty or column not in branches or metric not in experiment.epochs:
        return None
    curves = experiment.epochs.groupby(["config_id", "epoch"])[metric].mean().reset_index()
    fig, palette = go.Figure(), qualitative.Dark24
    for i, (config_id, rows) in enumerate(curves.groupby("config_id", sort=True)):
        color = palette[i % len(palette)]
        fig.add_trace(
            go.Scatter(
                x=rows["epoch"],
                y=rows[metric],
                mode="lines",
                name=config_id,
                legendgroup=config_id,
                line={"color": color},
                hovertemplate=f"{config_id}, epoch %{{x}}: {metric} %{{y:.4f}}<extra>main run</extra>",
            )
        )
        rung = branches[branches["config_id"] == config_id]
        fig.add_trace(
            go.Scatter(
                x=rung["epoch"],
                y=rung[column],
                mode="markers",
                name=f"{config_id}: cooldown",
                legendgroup=config_id,
                showlegend=False,
                marker={"color": color, "symbol": "diamond", "size": 9},
                customdata=rung["cooldown_epochs"],
                hovertemplate=(
                    f"{config_id}, rung at epoch %{{x}}: branches' {metric} %{{y:.4f}} "
                    "(%{customdata} branch epochs)<extra>cooldown</extra>"
                ),
            )
        )
    fig.update_layout(
        title=f"Cooldown branches: {metric} the scheduler judged at each rung (diamonds) "
        "beside each configuration's main run (lines, mean over seeds)",
        height=460,
        xaxis={"title": {"text": "epoch"}},
        yaxis={"title": {"text": metric}},
    )
    return fig


def report_figures(experiment: Experiment, select_on: SelectOn = "val") -> dict[str, go.Figure]:
    """Every figure of the report, by section id, in page order (absent ones left out): the first
    one carries plotly.js."""
    figures = {
        "significance": forest_plot(experiment, select_on),
        "learning-curves": learning_curves(experiment, select_on),
        "learning-rates": learning_rates(experiment),
        "alpha-beta": alpha_beta_heatmap(experiment, select_on),
        "parallel-coordinates": parallel_coordinates(experiment, select_on),
        "early-stopping": early_stopping(experiment),
        "cooldown-branches": cooldown_branches(experiment),
    }
    return {key: fig for key, fig in figures.items() if fig is not None}


def _figure_html(fig: go.Figure, include_plotlyjs: bool | str) -> str:
    fig.update_layout(template="plotly_white")
    if fig.layout.margin.t is None:
        fig.update_layout(margin={"t": 70})
    return fig.to_html(
        full_html=False,
        include_plotlyjs=include_plotlyjs,
        config={"displaylogo": False, "responsive": True},
    )


def render_report(
    experiment: Experiment, select_on: SelectOn = "val", plotlyjs: PlotlyJS = "inline"
) -> str:
    """The report as one HTML document; ``plotlyjs`` inline embeds plotly.js (one self-contained file),
    ``directory`` loads it from ``plotly.min.js`` beside the page."""
    if plotlyjs not in ("inline", "directory"):
        raise ConfigError("--plotlyjs", plotlyjs, "unknown mode", choices=["inline", "directory"])
    figures = report_figures(experiment, select_on)
    first = True if plotlyjs == "inline" else "directory"
    html = {
        key: _figure_html(fig, first if i == 0 else False)
        for i, (key, fig) in enumerate(figures.items())
    }
    return render_page(experiment, select_on, html)


def write_report(
    experiment: Experiment, out: str, select_on: SelectOn = "val", plotlyjs: PlotlyJS = "inline"
) -> str:
    """Write the report of ``experiment`` to ``out`` atomically (with ``plotly.min.js`` beside it in
    ``directory`` mode) and return the path written."""
    page = render_report(experiment, select_on, plotlyjs)
    if plotlyjs == "directory":
        write_plotlyjs_beside(out)
    write_text_atomic(out, page)
    return out


def write_plotlyjs_beside(page: str) -> None:
    """Write plotly's ``plotly.min.js`` beside ``page`` (a page written with ``include_plotlyjs=
    "directory"`` loads it from there), unless the same version is already there."""
    js_path = os.path.join(os.path.dirname(os.path.abspath(page)), PLOTLYJS_FILE)
    js = get_plotlyjs()
    if not os.path.isfile(js_path) or os.path.getsize(js_path) != len(js.encode()):
        write_text_atomic(js_path, js)
