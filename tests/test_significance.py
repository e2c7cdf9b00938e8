"""The one verdict of the results, each optimizer's pick against the reference: values against a case
computed by hand, the report's table and forest plot, the exported interval, the edge cases, and one
sweep read by the summary, the report and the export, which must all say the same."""

from __future__ import annotations

import math
import re
import subprocess
from html import escape
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats
from test_report import CHROMIUM_FLAGS, ERROR_HOOK, _chromium
from test_results import write_fixture_experiment

from taso_tune.core.errors import ConfigError
from taso_tune.results.experiment import Experiment, load_experiment
from taso_tune.results.export import defaults_from_experiment
from taso_tune.results.report import render_report, report_figures, write_report
from taso_tune.results.significance import (
    forest_plot,
    paired_comparisons,
    reference_text,
    significance_html,
)
from taso_tune.results.summary import format_summary

SEEDS = (0, 1, 2, 3)
# config -> (optimizer, val_acc per seed, test_acc per seed); None: the seed diverged
CASE = {
    "taso_a": ("taso", [0.95, 0.95, 0.95, 0.95], [0.90, 0.92, 0.94, 0.96]),
    "adam_b": ("adam", [0.85, 0.85, 0.85, 0.85], [0.80, 0.83, 0.85, 0.88]),
    "adagrad_c": ("adagrad", [0.90, None, 0.90, 0.90], [0.91, None, 0.95, 0.97]),
    "adagrad_worse": (
        "adagrad",
        [0.50, 0.50, 0.50, 0.50],
        [0.99, 0.99, 0.99, 0.99],
    ),  # not its family's pick
}
CASE_FAMILIES = ("taso", "adam", "adagrad", "rmsprop")  # rmsprop: declared, never run
T_975_DF3 = 3.182446305284263  # Student t, 97.5% quantile, 3 degrees of freedom (tables)
T_9875_DF3 = 4.176535  # Student t, 98.75% quantile, 3 degrees of freedom: Holm's first of two


@pytest.fixture
def case(tmp_path: Path) -> Experiment:
    """Four seeds per configuration, built on one row of the fixture experiment (10 classes)."""
    seeds = {
        config_id: {
            "optimizer": optimizer,
            "values": [
                {
                    "status": "diverged" if v is None else "complete",
                    "val_acc": math.nan if v is None else v,
                    "test_acc": math.nan if t is None else t,
                }
                for v, t in zip(val, test, strict=True)
            ],
        }
        for config_id, (optimizer, val, test) in CASE.items()
    }
    return _seed_experiment(tmp_path, seeds)


def _seed_experiment(
    tmp_path: Path, configs: dict, *, drop_hparams: bool = False, **space
) -> Experiment:
    """An experiment of one row per configuration and seed (``SEEDS``), built on one row of the
    fixture experiment (10 classes): ``configs`` maps a config id to its optimizer and, per seed,
    the fields that row sets (status, metrics, hyperparameters)."""
    fixture = load_experiment(str(write_fixture_experiment(tmp_path)))
    template = {
        k: v
        for k, v in fixture.trials.iloc[6].to_dict().items()
        if not (drop_hparams and k.startswith("hp."))
    }
    rows = [
        {
            **template,
            "trial_id": f"{config_id}_{seed}",
            "config_id": config_id,
            "optimizer": config["optimizer"],
            "seed": seed,
            **fields,
        }
        for config_id, config in configs.items()
        for seed, fields in zip(SEEDS, config["values"], strict=True)
    ]
    space = {
        **fixture.space,
        "seeds": len(SEEDS),
        "seeds_per_trial": "all",
        "scheduler": "none",
        **space,
    }
    return Experiment(fixture.path, space, pd.DataFrame(rows), fixture.epochs.iloc[0:0])


def test_values_match_the_hand_computed_case(case: Experiment) -> None:
    table = paired_comparisons(case).set_index("optimizer")
    assert list(table.index) == [
        "taso",
        "adam",
        "adagrad",
    ]  # by mean val_acc: .95, .85, .70 (a seed at chance, .10)
    assert table.loc["taso", "verdict"] == "reference" and pd.isna(table.loc["taso", "difference"])
    # adam - taso per seed: -0.10, -0.09, -0.09, -0.08: mean -0.09, std sqrt(0.0002 / 3)
    adam = table.loc["adam"]
    std = math.sqrt(0.0002 / 3)
    # adam's p is the smaller of two: Holm doubles it, so its interval is at 1 - 0.05 / 2
    half = T_9875_DF3 * std / 2
    assert adam["difference"] == pytest.approx(-0.09)
    assert adam["confidence"] == pytest.approx(0.975)
    assert (adam["ci_low"], adam["ci_high"]) == (
        pytest.approx(-0.09 - half, abs=1e-6),
        pytest.approx(-0.09 + half, abs=1e-6),
    )
    t_adam = -0.09 / (std / 2)
    assert adam["p_value"] == pytest.approx(2 * stats.t.sf(abs(t_adam), 3))
    # adagrad's pick: its diverged seed 1 scores chance level, 0.10, against taso's 0.92
    # differences 0.01, -0.82, 0.01, 0.01: mean -0.1975, std sqrt(0.516675 / 3)
    adagrad = table.loc["adagrad"]
    assert adagrad["config_id"] == "adagrad_c" and adagrad["n"] == 4
    std_c = math.sqrt((3 * 0.2075**2 + 0.6225**2) / 3)
    assert adagrad["difference"] == pytest.approx(-0.1975)
    p_c = 2 * stats.t.sf(0.1975 / (std_c / 2), 3)
    assert adagrad["p_value"] == pytest.approx(p_c)
    # Holm over two: the smaller p doubled, the larger kept (and never below the smaller's)
    p_a = adam["p_value"]
    assert adam["p_holm"] == pytest.approx(min(1.0, 2 * p_a))
    assert adagrad["p_holm"] == pytest.approx(max(p_c, 2 * p_a))
    assert adam["verdict"] == "worse" and adagrad["verdict"] == "no difference shown"
    assert adagrad["mean"] == pytest.approx((0.91 + 0.10 + 0.95 + 0.97) / 4)
    # adagrad's p_holm is its own p (larger than adam's doubled): the 95% interval, cut to [-1, 1]
    assert adagrad["p_holm"] == pytest.approx(p_c) and adagrad["confidence"] == pytest.approx(0.95)
    half_c = T_975_DF3 * std_c / 2
    assert (adagrad["ci_low"], adagrad["ci_high"]) == (
        pytest.approx(max(-1.0, -0.1975 - half_c)),
        pytest.approx(-0.1975 + half_c),
    )
    assert (table["selected_on"] == "val_acc").all() and (table["compared_on"] == "test_acc").all()


def test_table_and_forest_plot_in_the_report(case: Experiment) -> None:
    html = significance_html(case)
    assert "-9.00" in html and "worse" in html and "no difference shown at 5%" in html
    assert "Reference: taso (taso_a), the best pick on val_acc" in html
    assert "picked on val_acc, compared on test_acc" in html
    assert f"[{(-0.09 - T_9875_DF3 * math.sqrt(0.0002 / 3) / 2) * 100:+.2f}," in html
    assert "Holm-adjusted interval (excludes 0 exactly when the verdict says better/worse" in html
    assert "margin ±0.5 points" in html and "not shown equivalent within ±0.5 points" in html
    assert "tie" not in html
    fig = forest_plot(case)
    xs = sorted(x for trace in fig.data for x in trace.x)
    assert xs == [pytest.approx(-19.75), pytest.approx(-9.0)]
    worse = next(trace for trace in fig.data if trace.name == "worse")
    assert worse.error_x.arrayminus[0] == pytest.approx(
        T_9875_DF3 * math.sqrt(0.0002 / 3) / 2 * 100, abs=1e-4
    )
    page = render_report(case)
    assert 'id="significance"' in page and "significance" in report_figures(case)


def test_export_carries_the_paired_interval(case: Experiment) -> None:
    optimizers = defaults_from_experiment(case)["optimizers"]
    adam = optimizers["adam"]["versus_best"]
    assert (
        adam["metric"] == "test_acc" and adam["against"] == "taso_a" and adam["verdict"] == "worse"
    )
    assert adam["difference"] == pytest.approx(-0.09) and len(adam["holm_interval"]) == 2
    assert adam["holm_interval"][0] == pytest.approx(
        -0.09 - T_9875_DF3 * math.sqrt(0.0002 / 3) / 2, abs=1e-6
    )
    assert adam["interval_confidence"] == pytest.approx(0.975)
    assert optimizers["taso"]["versus_best"] == {"metric": "test_acc", "reference": True}
    assert isinstance(adam["p_holm"], float) and optimizers["adam"]["verdict"] == "worse"
    assert adam["equivalence"]["margin"] == 0.005 and adam["equivalence"]["equivalent"] is False


def test_nothing_to_compare_with_one_family_or_one_seed(case: Experiment, tmp_path: Path) -> None:
    taso = case.trials[case.trials["optimizer"] == "taso"]
    single = Experiment(case.path, case.space, taso, case.epochs)
    assert list(paired_comparisons(single)["verdict"]) == ["reference"]
    assert forest_plot(single) is None
    assert "at least two optimizer families" in significance_html(single)
    one_seed = case.trials[case.trials["seed"] == 0]
    solo = Experiment(case.path, {**case.space, "seeds": 1}, one_seed, case.epochs)
    table = paired_comparisons(solo)
    assert list(table["verdict"]) == ["reference", "not compared", "not compared"]
    assert set(table["reason"][1:]) == {"fewer than 2 seeds"} and forest_plot(solo) is None
    with pytest.raises(ConfigError, match="accuracies"):
        paired_comparisons(case, metric="test_loss")


def test_unpaired_seeds_are_not_tested(case: Experiment) -> None:
    trials = case.trials.copy()
    trials.loc[trials["optimizer"] == "adam", "seed"] += 10  # adam ran on other seeds
    table = paired_comparisons(Experiment(case.path, case.space, trials, case.epochs)).set_index(
        "optimizer"
    )
    assert table.loc["adam", "verdict"] == "not compared" and pd.isna(table.loc["adam", "p_holm"])
    assert table.loc["adam", "reason"] == "not run over the reference's seeds"
    assert table.loc["adagrad", "p_holm"] == pytest.approx(
        table.loc["adagrad", "p_value"]
    )  # one test: no correction


def test_forest_plot_draws_in_headless_chromium(case: Experiment, tmp_path: Path) -> None:
    chromium = _chromium()
    out = tmp_path / "report.html"
    write_report(case, str(out))
    page = tmp_path / "checked.html"
    page.write_text(out.read_text().replace("<head>", "<head>\n" + ERROR_HOOK, 1))
    run = subprocess.run(
        [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    section = run.stdout[run.stdout.index('id="significance"') :]
    section = section[: section.index("</section>")]
    assert 'class="plot-container plotly"' in section, "the forest plot did not draw"
    assert "errorbar" in section or "errorbars" in section
    html_tag = re.search(r"<html[^>]*>", run.stdout).group(0)
    assert "data-console-errors" not in html_tag, html_tag


# --- one sweep, one verdict ---------------------------------------------------------------------

# config -> (optimizer, lr, val_acc per seed, test_acc per seed). taso is the best on validation;
# rmsprop is below it on validation and above it on test, seed by seed; adam's seed 2 is at chance.
SWEEP = {
    "taso_lr=0.05": ("taso", 0.05, [0.95, 0.95, 0.95, 0.95], [0.90, 0.91, 0.92, 0.93]),
    "rmsprop_lr=0.005": ("rmsprop", 0.005, [0.94, 0.94, 0.94, 0.94], [0.92, 0.935, 0.94, 0.955]),
    "adam_lr=0.002": ("adam", 0.002, [0.90, 0.91, 0.12, 0.92], [0.89, 0.90, 0.13, 0.91]),
}
SWEEP_BLOCKS = [
    {"optimizer": "taso", "lr": {"grid": [0.02, 0.05, 0.1]}},  # the pick is interior
    {"optimizer": "rmsprop", "lr": {"grid": [0.001, 0.005]}},  # the pick is the largest
    {"optimizer": "adam", "lr": {"grid": [0.001, 0.002, 0.005]}},  # interior
]


@pytest.fixture
def sweep(tmp_path: Path) -> Experiment:
    seeds = {
        config_id: {
            "optimizer": optimizer,
            "values": [
                {"status": "complete", "val_acc": v, "test_acc": t, "hp.lr": lr}
                for v, t in zip(val, test, strict=True)
            ],
        }
        for config_id, (optimizer, lr, val, test) in SWEEP.items()
    }
    return _seed_experiment(tmp_path, seeds, drop_hparams=True, blocks=SWEEP_BLOCKS)


def _intervals(text: str) -> list[tuple[float, float, bool]]:
    """Every ``[a, b]`` of a text, and whether it is a signed one (a difference)."""
    return [
        (float(low), float(high), low[0] in "+-")
        for low, high in re.findall(r"\[([+-]?\d+\.\d+), ([+-]?\d+\.\d+)\]", text)
    ]


def test_one_sweep_gives_one_verdict_in_summary_report_and_export(sweep: Experiment) -> None:
    # rmsprop - taso on test, seed by seed: +0.02, +0.025, +0.02, +0.025: mean 0.0225, std
    # sqrt(4 · 0.0025² / 3); its p is the smaller of two, so Holm doubles it and its interval is at 97.5%
    diffs = [0.02, 0.025, 0.02, 0.025]
    std = float(np.std(diffs, ddof=1))
    assert std == pytest.approx(math.sqrt(4 * 0.0025**2 / 3))
    p = stats.ttest_rel([0.92, 0.935, 0.94, 0.955], [0.90, 0.91, 0.92, 0.93]).pvalue
    assert 2 * p < 0.05
    half = stats.t.ppf(1 - 0.025 / 2, 3) * std / 2
    low, high = 0.0225 - half, 0.0225 + half
    shown = f"+2.25 [{low * 100:+.2f}, {high * 100:+.2f}]"
    words = "better (on test_acc; the reference was picked on val_acc)"

    summary = format_summary(sweep)
    report = render_report(sweep)
    document = defaults_from_experiment(sweep)
    rmsprop = document["optimizers"]["rmsprop"]

    # the same verdict and the same interval everywhere
    assert f"verdict: {words}: {shown} points on test_acc" in summary
    assert escape(words) in report and shown in report
    assert rmsprop["verdict"] == "better" and rmsprop["versus_best"]["verdict"] == "better"
    assert rmsprop["versus_best"]["difference"] == pytest.approx(0.0225)
    assert rmsprop["versus_best"]["holm_interval"] == [pytest.approx(low), pytest.approx(high)]
    assert rmsprop["versus_best"]["p_holm"] == pytest.approx(2 * p)
    comparison = document["provenance"]["comparison"]
    assert (comparison["reference"], comparison["selected_on"], comparison["compared_on"]) == (
        "taso_lr=0.05",
        "val_acc",
        "test_acc",
    )
    assert document["optimizers"]["taso"]["verdict"] == "reference"
    assert document["optimizers"]["adam"]["verdict"] == "no difference shown"
    assert "no difference shown at 5%" in summary and "no difference shown at 5%" in report
    # the interval's label in every output; no verdict from overlap
    label = "Holm-adjusted interval (excludes 0 exactly when the verdict says better/worse"
    assert label in summary and label in report and label in comparison["interval"]
    page = re.sub(r"<script.*?</script>", "", report, flags=re.DOTALL)  # plotly.js says "tie"
    for text in (summary, page, yaml.safe_dump(document)):
        assert not re.search(r"\btie\b", text)

    # adam's seed 2 is at chance: flagged in every table, and no interval leaves [0, 100]
    assert "at chance 1/4" in summary and "at chance 1/4" in report
    assert "at chance 1/4" in significance_html(sweep)  # the report's verdict table too
    assert document["optimizers"]["adam"]["val_acc"]["at_chance"] == 1
    assert document["optimizers"]["adam"]["test_acc"]["at_chance"] == 1
    assert document["optimizers"]["rmsprop"]["val_acc"]["at_chance"] == 0
    for text in (summary, report):
        found = _intervals(text)
        assert any(not signed and high == 100.0 for _, high, signed in found)  # adam's, cut
        for low_, high_, signed in found:
            assert (-100.0 if signed else 0.0) <= low_ <= high_ <= 100.0, (low_, high_)
    for entry in document["optimizers"].values():
        for metric in ("val_acc", "test_acc"):
            assert 0.0 <= entry[metric]["ci95"][0] <= entry[metric]["ci95"][1] <= 1.0

    # TOST beside each comparison, with its margin
    assert "not shown equivalent within ±0.5 points (TOST Holm-adjusted p=" in report
    assert "margin ±0.5 points" in report
    assert rmsprop["versus_best"]["equivalence"]["margin"] == 0.005
    assert comparison["equivalence_margin"] == 0.005

    # the grid-edge warning: rmsprop's lr is the largest tried, taso's and adam's are interior
    edge = "lr 0.005 is the largest value tried; the best may lie beyond"
    assert edge in report and edge in summary and rmsprop["grid_edges"] == [edge]
    assert "lr 0.05 is" not in report and "lr 0.002 is" not in report
    assert document["optimizers"]["taso"]["grid_edges"] == []


def test_the_transfer_table_prints_the_holm_adjusted_interval_of_its_verdict(
    case: Experiment,
) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from reproduction_fashion import transfer_table

    # the digits defaults lose 0.01, 0.02, 0.02, 0.03 on taso's seeds and nothing elsewhere
    trials = case.trials.copy()
    lost = {0: 0.01, 1: 0.02, 2: 0.02, 3: 0.03}
    taso = trials["config_id"] == "taso_a"
    trials.loc[taso, "test_acc"] -= trials.loc[taso, "seed"].map(lost)
    transferred = Experiment(case.path, case.space, trials, case.epochs)
    table = transfer_table(case, transferred)
    assert "Holm-adjusted interval" in table and "95% interval" not in table
    # taso's p is the smallest of three (the others' differences are 0, p = 1): its interval is at
    # 1 - 0.05 / 3, the one that matches its Holm-adjusted verdict
    std = math.sqrt(0.0002 / 3)
    half = stats.t.ppf(1 - 0.05 / 6, 3) * std / 2
    taso_row = next(line for line in table.splitlines() if line.startswith("| taso"))
    assert f"[{(0.02 - half) * 100:+.2f}, {(0.02 + half) * 100:+.2f}]" in taso_row
    assert "tuning helps" in taso_row
    p = stats.ttest_rel([0.90, 0.92, 0.94, 0.96], [0.89, 0.90, 0.92, 0.93]).pvalue
    assert f"{3 * p:.3f}" in taso_row
    assert "it is not simultaneous" in table


def test_select_on_test_compares_on_validation_the_split_it_did_not_use(sweep: Experiment) -> None:
    # rmsprop is the best on test; the picks are compared on validation, which chose nothing
    table = paired_comparisons(sweep, "test").set_index("optimizer")
    assert table.loc["rmsprop", "verdict"] == "reference"
    assert (table["selected_on"] == "test_acc").all() and (table["compared_on"] == "val_acc").all()
    # adam - rmsprop on validation: -0.04, -0.03, -0.82, -0.02
    assert table.loc["adam", "difference"] == pytest.approx((-0.04 - 0.03 - 0.82 - 0.02) / 4)
    # taso - rmsprop on validation is +0.01 on every seed: no spread, not compared
    assert table.loc["taso", "verdict"] == "not compared"
    text = reference_text(table.reset_index())
    assert "over the 1 pick compared (picked on test_acc, compared on val_acc)" in text
    assert "not held out" not in text
    # without a validation split there is no other split: the fallback says it is not held out
    no_val = sweep.trials.assign(val_acc=math.nan)
    alone = paired_comparisons(Experiment(sweep.path, sweep.space, no_val, sweep.epochs), "test")
    assert (alone["compared_on"] == "test_acc").all()
    assert "picked and compared on test_acc (not held out)" in reference_text(alone)


def test_the_reference_alone_has_no_other_pick_to_compare(case: Experiment) -> None:
    taso = case.trials[case.trials["optimizer"] == "taso"]
    table = paired_comparisons(Experiment(case.path, case.space, taso, case.epochs))
    text = reference_text(table)
    assert text.endswith("no other family's pick to compare") and "0 picks" not in text
    one_seed = case.trials[case.trials["seed"] == 0]
    solo = paired_comparisons(
        Experiment(case.path, {**case.space, "seeds": 1}, one_seed, case.epochs)
    )
    assert "could be compared" in reference_text(solo) and "0 picks" not in reference_text(solo)


def test_the_export_commands_table_carries_the_tost_text(sweep: Experiment) -> None:
    from taso_tune.cli.report import format_defaults_table

    document = defaults_from_experiment(sweep)
    table = format_defaults_table(document)
    rmsprop = next(line for line in table.splitlines() if line.strip().startswith("rmsprop"))
    tost = document["optimizers"]["rmsprop"]["versus_best"]["equivalence"]
    assert tost["p_holm"] >= tost["p_value"]
    assert (
        f"not shown equivalent within ±0.5 points (TOST Holm-adjusted p={tost['p_holm']:.3g}, n=4)"
        in rmsprop
    )
    # the summary prints the same words
    assert f"(TOST Holm-adjusted p={tost['p_holm']:.3g}, n=4)" in format_summary(sweep)


def test_the_confirmation_tables_state_only_what_their_rows_carry(case: Experiment) -> None:
    """The confirmation study's tables and generated findings: the pre-declared reference (taso),
    the Holm-adjusted interval beside each verdict, TOST at the stated margin, the budgets as run,
    and each finding naming its table and rows."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from confirmation_tables import readme_findings, render_confirmation

    # the declared families: those of the space, rmsprop among them although it has no trial
    blocks = [{"optimizer": o, "lr": {"grid": [0.01, 0.05, 0.1]}} for o in CASE_FAMILIES]
    selection = Experiment(case.path, {**case.space, "blocks": blocks}, case.trials, case.epochs)
    picks = case.trials[case.trials["config_id"] != "adagrad_worse"]
    confirmation = Experiment(case.path, selection.space, picks, case.epochs)
    document = defaults_from_experiment(selection)
    text, sentences = render_confirmation(
        selection, confirmation, document, [("taso-tune sweep s", 90.0)], "taso"
    )
    adam_row = next(line for line in text.splitlines() if line.startswith("| adam | 4 | 84.00"))
    # adam - taso: -0.09 with the 97.5% interval (Holm's first of two), as in the hand-computed case
    half = T_9875_DF3 * math.sqrt(0.0002 / 3) / 2
    assert f"-9.00 [{(-0.09 - half) * 100:+.2f}, {(-0.09 + half) * 100:+.2f}]" in adam_row
    assert "| 97.5% |" in adam_row and "| worse |" in adam_row
    assert "not shown equivalent within ±0.5 points" in adam_row
    assert "| no difference shown at 5% |" in next(
        line for line in text.splitlines() if line.startswith("| adagrad | 4 | 73.25")
    )
    assert "over n=4 seeds (table C2, row taso)" in text  # not "fresh": they overlap
    findings = text.split("#### Findings")[1].split("####")[0]
    # adagrad had two configurations, taso and adam one each: the budgets are said to be unequal
    budgets = "unequal numbers of configurations (adagrad 2, adam 1, rmsprop 0, taso 1; table C1)"
    assert budgets in findings
    assert "Not compared (table C3): rmsprop (no pick)." in findings
    assert "| rmsprop | 0 | — |" in text and "not compared (no pick)" in text
    assert (
        "Shown worse than taso at 5% (Holm over the 2 comparisons; table C3, rows adam)" in findings
    )
    assert "No family was shown better than taso at 5%" in findings
    assert "No difference from taso was shown for adagrad (table C3)" in findings
    assert "which is not the same as equal" in findings
    assert "No family was shown equivalent to taso within ±0.5 points" in findings
    assert "Seeds flagged in table C2: adagrad" in findings
    # the seeds come from the results, and the study says when they are not fresh
    assert "the selection on 0-3, the confirmation on\n0-3 (seeds [0, 1, 2, 3] in common)" in text
    assert "1.5 min" in text
    # the README's findings are the same generated sentences, pointing at the doc's tables
    readme = readme_findings(sentences, confirmation, document, "taso")
    assert "[docs/reproduction.md](docs/reproduction.md)" in readme
    for line in findings.strip().splitlines()[1:]:  # after the heading's rest
        assert line in readme


def test_the_confirmation_stops_on_an_edge_pick_or_a_family_without_one(case: Experiment) -> None:
    """Before its confirmation runs, the study checks that every family of the space has an interior
    pick: adam's only rate is the smallest of its grid, rmsprop was declared and never ran."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from confirmation import selection_problems

    lr = float(case.trials.loc[case.trials["optimizer"] == "adam", "hp.lr"].iloc[0])
    blocks = [
        {"optimizer": "taso"},
        {"optimizer": "adagrad"},
        {"optimizer": "adam", "lr": {"grid": [lr, lr * 2, lr * 4]}},
        {"optimizer": "rmsprop", "lr": {"grid": [0.001, 0.002]}},
    ]
    selection = Experiment(case.path, {**case.space, "blocks": blocks}, case.trials, case.epochs)
    problems = selection_problems(selection, defaults_from_experiment(selection))
    assert problems == [
        "rmsprop: no pick",
        f"adam: lr {lr:g} is the smallest value tried; the best may lie beyond",
    ]
    # the same picks inside their grids, every family run: nothing stops the confirmation
    blocks[2] = {"optimizer": "adam", "lr": {"grid": [lr / 2, lr, lr * 2]}}
    del blocks[3]
    selection = Experiment(case.path, {**case.space, "blocks": blocks}, case.trials, case.epochs)
    assert selection_problems(selection, defaults_from_experiment(selection)) == []


def test_a_tie_on_the_mean_is_named_wherever_a_pick_is(tmp_path: Path) -> None:
    # adam_y and taso_x share a mean over the seeds, and so does taso_z within taso's family
    # (dyadic values: exact sums, so the order of equal means is config-id order): each is ahead
    # of the other by no finding, which the summary, the report and the export say
    configs = {
        "taso_x": ("taso", [0.75, 0.875, 0.625, 0.75]),
        "taso_z": ("taso", [0.875, 0.75, 0.75, 0.625]),
        "adam_y": ("adam", [0.625, 0.75, 0.75, 0.875]),
        "adagrad_w": ("adagrad", [0.5, 0.625, 0.5, 0.625]),
    }
    experiment = _seed_experiment(
        tmp_path,
        {
            config_id: {
                "optimizer": optimizer,
                "values": [{"status": "complete", "val_acc": v, "test_acc": v} for v in values],
            }
            for config_id, (optimizer, values) in configs.items()
        },
    )
    best = experiment.best()
    assert list(best["config_id"]) == ["adam_y", "taso_x", "adagrad_w"]
    assert [tuple(t) for t in best["tied_picks"]] == [("taso_x",), ("adam_y",), ()]
    assert [tuple(t) for t in best["tied_in_family"]] == [(), ("taso_z",), ()]

    reference = (
        "Reference: adam (adam_y), the best pick on val_acc, tied there with taso (taso_x) (the "
        "same mean up to rounding: which one is the reference is not a finding);"
    )
    family_tie = (
        "tied on val_acc with taso_z: the same mean up to rounding, so the pick among them is not "
        "a finding"
    )
    summary = format_summary(experiment)
    assert reference in summary and family_tie in summary
    assert summary.count("tied on val_acc") == 1  # adam and adagrad tie with none of their own
    page = render_report(experiment)
    assert escape(reference) in page and escape(family_tie) in page

    document = defaults_from_experiment(experiment)
    assert document["provenance"]["comparison"]["reference_tied_with"] == ["taso_x"]
    assert {k: v["tied_with"] for k, v in document["optimizers"].items()} == {
        "adagrad": [],
        "adam": [],
        "taso": ["taso_z"],
    }
    assert "tied" not in format_summary(
        experiment.__class__(
            experiment.path,
            experiment.space,
            experiment.trials[experiment.trials["config_id"].isin(["adam_y", "adagrad_w"])],
            experiment.epochs,
        )
    )
