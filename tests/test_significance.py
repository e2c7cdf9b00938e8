"""Paired comparisons of each optimizer's pick against the best one: values against a case computed
by hand, the report's table and forest plot, the exported interval, and the edge cases."""

from __future__ import annotations

import math
import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats
from test_report import CHROMIUM_FLAGS, ERROR_HOOK, _chromium
from test_results import write_fixture_experiment

from taso_tune.core.errors import ConfigError
from taso_tune.results.experiment import Experiment, load_experiment
from taso_tune.results.export import defaults_from_experiment
from taso_tune.results.report import render_report, report_figures, write_report
from taso_tune.results.significance import forest_plot, paired_comparisons, significance_html

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
T_975_DF3 = 3.182446305284263  # Student t, 97.5% quantile, 3 degrees of freedom (tables)


@pytest.fixture
def case(tmp_path: Path) -> Experiment:
    """Four seeds per configuration, built on one row of the fixture experiment (10 classes)."""
    fixture = load_experiment(str(write_fixture_experiment(tmp_path)))
    template = fixture.trials.iloc[6].to_dict()
    rows = []
    for config_id, (optimizer, val, test) in CASE.items():
        for seed, v, t in zip(SEEDS, val, test, strict=True):
            rows.append(
                {
                    **template,
                    "trial_id": f"{config_id}_{seed}",
                    "config_id": config_id,
                    "optimizer": optimizer,
                    "seed": seed,
                    "status": "diverged" if v is None else "complete",
                    "val_acc": math.nan if v is None else v,
                    "test_acc": math.nan if t is None else t,
                }
            )
    space = {**fixture.space, "seeds": len(SEEDS), "seeds_per_trial": "all", "scheduler": "none"}
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
    half = T_975_DF3 * std / 2
    assert adam["difference"] == pytest.approx(-0.09)
    assert (adam["ci_low"], adam["ci_high"]) == (
        pytest.approx(-0.09 - half),
        pytest.approx(-0.09 + half),
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
    assert adam["verdict"] == "worse" and adagrad["verdict"] == "tie"
    assert adagrad["mean"] == pytest.approx((0.91 + 0.10 + 0.95 + 0.97) / 4)


def test_table_and_forest_plot_in_the_report(case: Experiment) -> None:
    html = significance_html(case)
    assert "-9.00" in html and "worse" in html and "tie" in html and "reference" in html
    assert f"[{(-0.09 - T_975_DF3 * math.sqrt(0.0002 / 3) / 2) * 100:+.2f}," in html
    fig = forest_plot(case)
    xs = sorted(x for trace in fig.data for x in trace.x)
    assert xs == [pytest.approx(-19.75), pytest.approx(-9.0)]
    worse = next(trace for trace in fig.data if trace.name == "worse")
    assert worse.error_x.arrayminus[0] == pytest.approx(T_975_DF3 * math.sqrt(0.0002 / 3) / 2 * 100)
    page = render_report(case)
    assert 'id="significance"' in page and "significance" in report_figures(case)


def test_export_carries_the_paired_interval(case: Experiment) -> None:
    optimizers = defaults_from_experiment(case)["optimizers"]
    adam = optimizers["adam"]["versus_best"]
    assert (
        adam["metric"] == "test_acc" and adam["against"] == "taso_a" and adam["verdict"] == "worse"
    )
    assert adam["difference"] == pytest.approx(-0.09) and len(adam["ci95"]) == 2
    assert adam["ci95"][0] == pytest.approx(-0.09 - T_975_DF3 * math.sqrt(0.0002 / 3) / 2)
    assert optimizers["taso"]["versus_best"] == {"metric": "test_acc", "reference": True}
    assert isinstance(adam["p_holm"], float)


def test_nothing_to_compare_with_one_family_or_one_seed(case: Experiment, tmp_path: Path) -> None:
    taso = case.trials[case.trials["optimizer"] == "taso"]
    single = Experiment(case.path, case.space, taso, case.epochs)
    assert paired_comparisons(single).empty and forest_plot(single) is None
    assert "at least two optimizer families" in significance_html(single)
    one_seed = case.trials[case.trials["seed"] == 0]
    solo = Experiment(case.path, {**case.space, "seeds": 1}, one_seed, case.epochs)
    assert paired_comparisons(solo).empty
    with pytest.raises(ConfigError, match="accuracies"):
        paired_comparisons(case, metric="test_loss")


def test_unpaired_seeds_are_not_tested(case: Experiment) -> None:
    trials = case.trials.copy()
    trials.loc[trials["optimizer"] == "adam", "seed"] += 10  # adam ran on other seeds
    table = paired_comparisons(Experiment(case.path, case.space, trials, case.epochs)).set_index(
        "optimizer"
    )
    assert table.loc["adam", "verdict"] == "not paired" and pd.isna(table.loc["adam", "p_holm"])
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
