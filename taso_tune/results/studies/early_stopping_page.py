"""A page comparing early-stopping methods: tables and plots of an ``early_stopping.Comparison``."""

from __future__ import annotations

import html

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from taso_tune.core.storage import write_text_atomic
from taso_tune.results.report import write_plotlyjs_beside
from taso_tune.results.studies.early_stopping import Comparison


def comparison_figure(comparison: Comparison) -> go.Figure:
    """Left: share of the full sweep's epochs and regret per method. Right: rank correlation of each
    rung's scores with the final ranking, by rung budget."""
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("Cost and regret", "Rung ranking vs final ranking"),
        specs=[[{"secondary_y": True}, {}]],
    )
    s = comparison.summary
    fig.add_trace(
        go.Bar(x=s["method"], y=100 * s["share_of_full"], name="epochs (% of full)"), row=1, col=1
    )
    fig.add_trace(
        go.Scatter(
            x=s["method"],
            y=s["regret_points"],
            name="regret (acc. points)",
            mode="markers",
            marker={"size": 14, "symbol": "diamond"},
        ),
        row=1,
        col=1,
        secondary_y=True,
    )
    for method, rows in comparison.rank_correlation.groupby("method", sort=False):
        fig.add_trace(
            go.Scatter(
                x=rows["rung_epochs"],
                y=rows["spearman"],
                mode="lines+markers",
                name=f"{method} rungs",
            ),
            row=1,
            col=2,
        )
    fig.update_yaxes(title_text="% of the full sweep's epochs", row=1, col=1)
    fig.update_yaxes(title_text="regret (points)", row=1, col=1, secondary_y=True)
    fig.update_xaxes(title_text="rung budget (epochs)", row=1, col=2)
    fig.update_yaxes(title_text="Spearman with final ranking", range=[-1, 1], row=1, col=2)
    fig.update_layout(height=450, margin={"t": 60})
    return fig


def write_comparison_page(
    comparison: Comparison, out: str, plotlyjs: str | bool = "directory"
) -> str:
    """Write the comparison as one HTML page (tables and the figure) atomically; returns ``out``.

    ``directory`` (the default) loads ``plotly.min.js`` from beside the page and writes it there;
    ``True`` embeds it."""
    if plotlyjs == "directory":
        write_plotlyjs_beside(out)
    tables = "".join(
        f"<h2>{html.escape(title)}</h2>{frame.to_html(index=False, float_format=lambda v: f'{v:.4g}', border=0)}"
        for title, frame in (
            ("Epochs and regret", comparison.summary),
            ("Rank correlation per rung", comparison.rank_correlation),
            ("True top-5 configurations", comparison.top5),
        )
    )
    figure = comparison_figure(comparison).to_html(full_html=False, include_plotlyjs=plotlyjs)
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Early stopping comparison</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:right}</style></head><body>"
        "<h1>Early stopping: full sweep vs ASHA vs budget-aware successive halving</h1>"
        f"{figure}{tables}</body></html>"
    )
    write_text_atomic(out, page)
    return out
