"""The tables and page layout of the HTML report (:mod:`taso_tune.results.report` draws the figures).

The results tables follow the paper's Tables I-X: grouped by optimizer, the hyperparameters that vary
as columns, accuracy and loss as ``mean (± std)`` over the n seeds that completed, and the best
configuration of each optimizer in bold. Every verdict in them is the one rule's
(:mod:`taso_tune.results.significance`): a family's pick against the reference; a rank is an order.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

import pandas as pd

from taso_tune import __version__
from taso_tune.core.records import INTERRUPTED_FILE, TRIAL_STATUSES
from taso_tune.core.storage import read_experiment_file
from taso_tune.results.aggregate import (
    SelectOn,
    hyperparameter_columns,
    present,
    run_counts,
    selection_metric,
    tie_note,
    with_ranks,
)
from taso_tune.results.experiment import Experiment
from taso_tune.results.grid_edges import pick_edge_warnings
from taso_tune.results.significance import (
    comparison_text,
    paired_comparisons,
    reference_text,
    significance_html,
)
from taso_tune.stats.seeds import format_interval, format_mean_std
from taso_tune.stats.verdict import INTERVAL_LABEL

#: Table columns after the hyperparameters: (metric, heading, scale, digits).
METRIC_COLUMNS = (
    ("val_acc", "validation accuracy (%)", 100.0, 2),
    ("val_loss", "validation loss", 1.0, 3),
    ("test_acc", "test accuracy (%)", 100.0, 2),
    ("test_loss", "test loss", 1.0, 3),
)
STATUS_ORDER = TRIAL_STATUSES
HP_LABELS = {
    "lr": "learning rate",
    "lr_final": "final learning rate",
    "weight_decay": "weight decay",
}
SECTION_TITLES = {
    "learning-curves": "Learning curves",
    "significance": "Is the best really better? Paired comparisons over seeds",
    "learning-rates": "Learning rate schedules",
    "alpha-beta": "TASO alpha x beta",
    "parallel-coordinates": "Hyperparameters against the metric",
    "early-stopping": "Early stopping",
    "cooldown-branches": "Early stopping: the cooldown branches each rung judged",
}
STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1400px;
       padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; padding-bottom: .2em; }
table { border-collapse: collapse; margin: .8em 0 1.2em; font-size: .92em; }
th, td { border-bottom: 1px solid #e4e4e4; padding: .3em .8em; text-align: left; }
th { background: #f6f6f6; } td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.best td { background: #f3f8ff; } .note { background: #fff8e1; padding: .6em 1em; border-left: 4px solid #f0b400; }
.muted { color: #777; } code { background: #f3f3f3; padding: 0 .25em; }
"""


def format_hparam(value: Any) -> str:
    """A hyperparameter value as the tables print it: ``0.0005``, ``true``, ``0.5, 0.75``, ``–``."""
    if not present(value):
        return "–"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return ", ".join(format_hparam(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    classes: Sequence[str] = (),
    align: bool = True,
) -> str:
    """An HTML table; cells are given as HTML (escape text before passing it)."""
    head = (
        f"<thead><tr>{''.join(f'<th>{h}</th>' for h in headers)}</tr></thead>"
        if any(headers)
        else ""
    )
    body = []
    for i, row in enumerate(rows):
        css = f' class="{classes[i]}"' if i < len(classes) and classes[i] else ""
        cells = "".join(
            f'<td class="num">{c}</td>' if align and _numeric(c) else f"<td>{c}</td>" for c in row
        )
        body.append(f"<tr{css}>{cells}</tr>")
    return f"<table>{head}<tbody>{''.join(body)}</tbody></table>"


def _numeric(cell: str) -> bool:
    text = cell.replace("<b>", "").replace("</b>", "")
    return bool(text) and (text[0].isdigit() or text in ("n/a", "–"))


def configuration_summary(experiment: Experiment, select_on: SelectOn = "val") -> pd.DataFrame:
    """One row per configuration of the compared trials: its hyperparameters, n of the planned
    seeds, each metric by the one statistics rule, and its rank within its optimizer family."""
    return with_ranks(experiment.aggregated, select_on, by_optimizer=True)


def pick_verdicts(experiment: Experiment, select_on: SelectOn = "val") -> dict[str, str]:
    """Each family pick's verdict against the reference, worded by the one rule, by config id."""
    return {
        row["config_id"]: comparison_text(row)
        for _, row in paired_comparisons(experiment, select_on).iterrows()
    }


def varied_hyperparameters(frame: pd.DataFrame) -> list[str]:
    """The ``hp.*`` columns that take more than one value within some optimizer family of
    ``frame`` (a field another family lacks does not count as varied)."""
    columns = hyperparameter_columns(frame)
    return [
        c
        for c in columns
        if frame[c].map(format_hparam).groupby(frame["optimizer"]).nunique().max() > 1
    ]


def _metric_cells(row: Mapping[str, Any], bold: str | None = None) -> list[str]:
    cells = []
    for metric, _, scale, digits in METRIC_COLUMNS:
        mean = row.get(f"{metric}_mean")
        if mean is None or (isinstance(mean, float) and math.isnan(mean)):
            text = "–"
        else:
            text = escape(
                format_mean_std(mean, row.get(f"{metric}_std"), int(row["n"]), scale, digits)
            )
            text += "<br>" + escape(
                format_interval(
                    row.get(f"{metric}_ci_low"), row.get(f"{metric}_ci_high"), scale, digits
                )
            )
        cells.append(f"<b>{text}</b>" if metric == bold and text != "–" else text)
    return cells


def _seeds_cell(row: Mapping[str, Any]) -> str:
    return f"{int(row['n'])}/{int(row['planned'])}"


def results_tables_html(experiment: Experiment, select_on: SelectOn = "val") -> str:
    """One table per optimizer family, like the paper's Tables I-V: every configuration, the varied
    hyperparameters as columns, mean (± std) over its n complete seeds, its rank in the family, the
    family's pick in bold with its verdict against the reference."""
    summary = configuration_summary(experiment, select_on)
    metric = selection_metric(select_on)
    verdicts = pick_verdicts(experiment, select_on)
    parts = []
    for optimizer, rows in summary.groupby("optimizer", sort=True):
        hps = varied_hyperparameters(rows) or ["hp.lr"]
        headers = [escape(HP_LABELS.get(c[3:], c[3:])) for c in hps] + ["seeds n/planned"]
        headers += [h for _, h, _, _ in METRIC_COLUMNS]
        headers += ["rank in family", "verdict against the reference (the family's pick)", "notes"]
        body, classes = [], []
        for _, row in _by_values(rows, hps).iterrows():
            best = row["config_id"] in verdicts
            rank = (
                "not compared" if row["rank"] is None or pd.isna(row["rank"]) else int(row["rank"])
            )
            cells = [escape(format_hparam(row[c])) for c in hps] + [_seeds_cell(row)]
            cells += _metric_cells(row, metric if best else None) + [
                str(rank),
                escape(verdicts.get(row["config_id"], "")),
                escape(row["status"]),
            ]
            body.append(cells)
            classes.append("best" if best else "")
        parts.append(f"<h3>{escape(optimizer)}</h3>" + _table(headers, body, classes))
    return "\n".join(parts)


def _by_values(rows: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Rows ordered by their hyperparameter values (0.0005 before 0.001), else by configuration id."""
    try:
        return rows.sort_values([*columns, "config_id"], kind="stable")
    except TypeError:  # values of mixed types (e.g. None and numbers) do not order
        return rows.sort_values("config_id", kind="stable")


def best_table_html(experiment: Experiment, select_on: SelectOn = "val") -> str:
    """The best configuration of each optimizer (the paper's Tables VI-X), best first, with the one
    rule's verdict against the reference and the notes: seeds at chance, a pick on its grid's edge."""
    best = experiment.best(select_on)
    if best.empty:
        return '<p class="muted">No configuration has all its planned seeds finished yet.</p>'
    comparisons = paired_comparisons(experiment, select_on)
    verdicts = pick_verdicts(experiment, select_on)
    headers = ["optimizer", "configuration", "hyperparameters", "seeds n/planned"]
    headers += [h for _, h, _, _ in METRIC_COLUMNS]
    headers += ["verdict against the reference (Holm-adjusted interval, points)", "notes"]
    rows = []
    for i, row in best.iterrows():
        hps = ", ".join(
            f"{c[3:]}={format_hparam(row[c])}"
            for c in _lr_first(hyperparameter_columns(best))
            if present(row[c])
        )
        cells = [
            escape(row["optimizer"]),
            f"<code>{escape(row['config_id'])}</code>",
            escape(hps),
            _seeds_cell(row),
        ]
        cells += _metric_cells(row, selection_metric(select_on) if i == 0 else None)
        notes = [row["status"], tie_note(row, select_on), *pick_edge_warnings(experiment.spec, row)]
        rows.append(
            cells
            + [
                escape(verdicts[row["config_id"]]),
                "<br>".join(escape(note) for note in notes if note),
            ]
        )
    lead = f'<p class="note">{escape(reference_text(comparisons))}.</p>'
    return lead + _table(headers, rows)


def _lr_first(columns: Sequence[str]) -> list[str]:
    return sorted(columns, key=lambda c: c != "hp.lr")


def selection_note_html(select_on: SelectOn = "val") -> str:
    """Which split picked the best configurations, said plainly."""
    if select_on == "test":
        return (
            '<p class="note"><b>Selected on test accuracy.</b> This is the paper\'s protocol: it tunes '
            "on the test set, so the test accuracies of the selected configurations are optimistic "
            "estimates, not held-out results.</p>"
        )
    return (
        '<p class="note"><b>Selected on validation accuracy</b> (the split held out of the training '
        "set); test accuracy is reported, never used to choose. <code>--select-on test</code> "
        "reproduces the paper's protocol, which tuned on the test set.</p>"
    )


def status_table_html(experiment: Experiment) -> str:
    """Seed runs by status (a trial trains one or more seeds, each with its own status), the seed
    runs and trials in all, and epochs run of planned."""
    counts = run_counts(experiment.trials)
    headers = [escape(s) for s in STATUS_ORDER if s in counts.by_status] + [
        "all seed runs",
        "in trials",
        "epochs run of planned",
    ]
    cells = [str(counts.by_status[s]) for s in STATUS_ORDER if s in counts.by_status]
    cells += [
        str(counts.seed_runs),
        str(counts.trials),
        f"{counts.epochs_run} of {counts.epochs_planned} ({counts.share_run:.0%})",
    ]
    return _table(headers, [cells])


def provenance_html(experiment: Experiment) -> str:
    """Where the results come from: the space, its description, the folder, what was trained."""
    space, trials = experiment.space or {}, experiment.trials
    counts = run_counts(trials)
    scheduler = space.get("scheduler", {})
    items = [
        ("space", space.get("name", "–")),
        ("description", space.get("description", "–")),
        ("experiment", experiment.path),
        (
            "model / data set",
            ", ".join(
                sorted(
                    {f"{m} / {d}" for m, d in zip(trials["model"], trials["dataset"], strict=True)}
                )
            ),
        ),
        (
            "planned epochs",
            ", ".join(str(int(e)) for e in sorted(trials["planned_epochs"].dropna().unique())),
        ),
        (
            "seeds per configuration",
            f"{experiment.planned_seeds}: {sorted(trials['seed'].unique().tolist())}",
        ),
        ("scheduler", scheduler.get("type", "–") if isinstance(scheduler, dict) else scheduler),
        ("sweep metric", f"{space.get('metric', '–')} ({space.get('mode', 'max')})"),
        (
            "configurations / trials / seed runs",
            f"{trials['config_id'].nunique()} / {counts.trials} / {counts.seed_runs}",
        ),
        (
            "report written",
            f"{_dt.datetime.now(_dt.UTC):%Y-%m-%d %H:%M} UTC by taso-tune {__version__}",
        ),
    ]
    return _table(
        ["", ""], [[f"<b>{escape(k)}</b>", escape(str(v))] for k, v in items], align=False
    )


STATISTICS_NOTE = (
    "<p>Accuracy and loss are the mean ± sample standard deviation (ddof=1) over n of the planned "
    "seeds, with the 95% t interval of the mean below, cut to the metric's range (an accuracy's to "
    "[0, 100], a loss's at 0); \u2014 where fewer than two seeds leave no standard deviation. A "
    "diverged seed counts at chance level (1 / classes; for a loss, the worst value the sweep saw). "
    "<i>at chance k/n</i>: seeds that diverged or stayed under a tenth of the way from chance to "
    "perfect accuracy; the t interval assumes roughly normal seeds, which such a seed breaks. A "
    "configuration is compared only when every planned seed finished (complete or diverged); the "
    "others are listed as not compared, never picked. A rank orders by mean; the only verdicts are "
    "each family pick's against the reference (the best pick), paired by seed and Holm-corrected: "
    f"<i>better</i>, <i>worse</i> or <i>no difference shown</i> at 5%, beside the "
    f"{escape(INTERVAL_LABEL)}. Overlapping intervals are not a verdict.</p>"
)


def per_seed_warning_html(experiment: Experiment) -> str:
    """The warning a per-seed ASHA sweep (the biased baseline) carries."""
    if not experiment.per_seed_stopping:
        return ""
    return (
        '<p class="note"><b>Per-seed early stopping.</b> ASHA judged each seed on its own '
        "(scheduler.per_seed), so the seeds that survived are the ones that looked best early: a "
        "biased baseline kept for the early-stopping study. Configurations missing seeds are not "
        "compared.</p>"
    )


def partial_banner_html(experiment: Experiment) -> str:
    """The note at the top of the report of a sweep a signal stopped (``taso_tune_interrupted.json``,
    written by the driver, removed when a resume completes): which signal, when, and how many of the
    planned trials finished. Empty for a sweep that ran to the end."""
    text = read_experiment_file(experiment.path, INTERRUPTED_FILE)
    if text is None:
        return ""
    try:
        record = json.loads(text)
    except ValueError:
        record = {}
    record = record if isinstance(record, dict) else {}
    finished = experiment.finished_trials
    planned = record.get("planned_trials")
    of = (
        f" of {planned} planned"
        if isinstance(planned, int) and not isinstance(planned, bool)
        else ""
    )
    when = f" ({escape(str(record['interrupted_at']))})" if record.get("interrupted_at") else ""
    return (
        f'<p class="note" id="partial"><b>Partial results.</b> The sweep was stopped by '
        f"{escape(str(record.get('signal', 'a signal')))}{when}: {finished}{of} trials finished. "
        "Configurations with unfinished seeds are not compared yet; <code>taso-tune resume "
        f"{escape(experiment.path)}</code> continues it.</p>"
    )


def render_page(experiment: Experiment, select_on: SelectOn, figures: Mapping[str, str]) -> str:
    """The whole HTML document: provenance, selection rule, status, the tables and ``figures``
    (section id -> figure HTML, plotly.js included by the first)."""

    def figure(key: str) -> str:
        if key not in figures:
            return ""
        return f'<section id="{key}"><h2>{SECTION_TITLES[key]}</h2>{figures[key]}</section>'

    title = f"taso-tune report: {escape(experiment.name)}"
    body = [
        f"<h1>{title}</h1>",
        partial_banner_html(experiment),
        f'<section id="provenance"><h2>Provenance</h2>{provenance_html(experiment)}</section>',
        f'<section id="selection"><h2>Selection</h2>{selection_note_html(select_on)}'
        f"{STATISTICS_NOTE}{per_seed_warning_html(experiment)}</section>",
        f'<section id="status"><h2>Seed runs by status</h2>{status_table_html(experiment)}</section>',
        f'<section id="best"><h2>Best configuration per optimizer</h2>{best_table_html(experiment, select_on)}</section>',
        f'<section id="significance"><h2>{SECTION_TITLES["significance"]}</h2>'
        f"{significance_html(experiment, select_on)}{figures.get('significance', '')}</section>",
        figure("learning-curves"),
        figure("learning-rates"),
        f'<section id="results"><h2>Results per configuration</h2>{results_tables_html(experiment, select_on)}</section>',
        figure("alpha-beta"),
        figure("parallel-coordinates"),
        figure("early-stopping"),
        figure("cooldown-branches"),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(part for part in body if part)
        + "\n</body>\n</html>\n"
    )
