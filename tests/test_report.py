"""The HTML report: every section from the fixture experiment, the figures' numbers, the CLI, and
a real headless Chromium that opens the page from disk and draws every figure without errors."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_results import damage_result, write_budget_sh_experiment, write_fixture_experiment

from taso_tune.cli import main
from taso_tune.results.experiment import Experiment, load_experiment
from taso_tune.results.report import (
    PLOTLYJS_FILE,
    alpha_beta_heatmap,
    early_stopping,
    learning_curves,
    learning_rates,
    parallel_coordinates,
    render_report,
    report_figures,
    seed_curve,
    write_report,
)

SECTIONS = (
    "provenance",
    "selection",
    "status",
    "best",
    "learning-curves",
    "learning-rates",
    "results",
    "alpha-beta",
    "parallel-coordinates",
    "early-stopping",
)
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # parcoords draws with WebGL: allow the software renderer for this local, trusted file
    "--enable-unsafe-swiftshader",
    "--virtual-time-budget=5000",
    "--enable-logging=stderr",
    "--v=0",
)
#: Put first in <head>: records console.error calls and uncaught errors on <html data-console-errors>,
#: because this Chromium logs every console level as INFO:CONSOLE.
ERROR_HOOK = """<script>(function () { var seen = [];
function keep(m) { seen.push(String(m)); document.documentElement.setAttribute("data-console-errors", JSON.stringify(seen)); }
var original = console.error; console.error = function () { keep(Array.prototype.join.call(arguments, " ")); return original.apply(console, arguments); };
window.addEventListener("error", function (e) { keep(e.message); });
window.addEventListener("unhandledrejection", function (e) { keep("Unhandled rejection " + e.reason); });
})();</script>"""


@pytest.fixture
def experiment(tmp_path: Path) -> Experiment:
    return load_experiment(str(write_fixture_experiment(tmp_path)))


@pytest.fixture
def complete(experiment: Experiment) -> Experiment:
    """The fixture without the seed ASHA stopped: both TASO configurations have their 2 planned seeds."""
    trials = experiment.trials
    kept = ~((trials["config_id"] == "taso_alpha=25_beta=0.7") & (trials["seed"] == 2))
    return Experiment(experiment.path, experiment.space, trials[kept], experiment.epochs)


def test_report_has_every_section(experiment: Experiment, complete: Experiment) -> None:
    for section in SECTIONS:
        assert f'<section id="{section}">' in render_report(complete), section
    html = render_report(experiment)
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    assert "Selected on validation accuracy" in html
    assert experiment.path in html and "hand-written fixture" in html  # provenance
    assert re.search(r"<th>stopped-early</th>.*<th>diverged</th>.*<th>errored</th>", html)
    # results tables: per optimizer, varied hyperparameters as columns, best (on val) in bold
    assert "<h3>taso</h3>" in html and "<h3>adagrad</h3>" in html
    assert "<th>alpha</th><th>beta</th><th>seeds n/planned</th>" in html
    # taso alpha 10: val 0.90, 0.92; its t interval [78.29, 103.71] cut at 100
    assert "<b>91.00 ± 1.41 (n=2)<br>[78.29, 100.00]</b>" in html
    assert (
        "<b>58.75 ± 32.76 (n=4)" in html
    )  # adagrad lr 0.05: 0.70, 0.75, 0.80 and a diverged seed at 0.10
    assert (
        "diverged 1/4; at chance 1/4" in html
        and "not compared: 2 of 3 seeds" in html
        and "not compared: 1 of 2 seeds" in html
    )
    # the one rule's verdicts (adagrad ran other seeds than the reference), ranks, no "tie"
    assert "reference (best on val_acc)" in html
    assert "not compared (not run over the reference&#x27;s seeds)" in html
    assert "<th>rank in family</th>" in html and "tie with best" not in html
    assert "± 0.00" not in html
    # one seed: no std and no interval, shown as "—" (a table's empty cell is NaN, never printed)
    assert "± — (n=1)<br>—" in html and not re.search(r"± (?!—)\S+ \(n=1\)", html)
    assert not re.search(r"± nan|\[nan|nan\]", html)
    assert "Per-seed early stopping" in html  # the fixture is the biased baseline


def test_select_on_test_says_it_is_the_papers_protocol(complete: Experiment) -> None:
    html = render_report(complete, select_on="test")
    assert "Selected on test accuracy" in html and "paper's protocol" in html
    assert "tunes on the test set" in html
    assert "<b>87.00 ± 1.41 (n=2)" in html  # now taso alpha 25: test 0.86, 0.88
    assert "<b>91.00 ± 1.41 (n=2)" not in html


def test_learning_curves_are_mean_and_std_over_complete_seeds(experiment: Experiment) -> None:
    curve = seed_curve(experiment, "taso_alpha=10_beta=0.5", "val_acc").set_index("epoch")
    assert list(curve.index) == [1, 2, 3]
    assert curve.loc[3, "mean"] == pytest.approx(0.91)
    assert curve.loc[3, "std"] == pytest.approx(0.01414213562373095)
    assert curve.loc[1, "mean"] == pytest.approx(0.71)
    assert (curve["n"] == 2).all()
    stopped_excluded = seed_curve(experiment, "taso_alpha=25_beta=0.7", "val_acc").set_index(
        "epoch"
    )
    assert stopped_excluded.loc[1, "n"] == 2 and stopped_excluded.loc[1, "mean"] == pytest.approx(
        0.67
    )
    fig = learning_curves(experiment, "val")
    lines = [t for t in fig.data if t.showlegend]
    assert sorted(t.name for t in lines) == [
        "adagrad_lr=0.05 (n=4/4)",
        "taso_alpha=10_beta=0.5 (n=2/2)",
    ]
    assert len(fig.data) == 2 * 2 * 4  # (band + line) x 2 optimizers x 4 panels


def test_a_one_seed_curve_has_no_band_and_no_zero_std(experiment: Experiment) -> None:
    import math

    import plotly.graph_objects as go

    from taso_tune.results.report import add_band

    one = seed_curve(experiment, "taso_alpha=10_beta=0.5", "val_acc").assign(std=math.nan)
    fig = go.Figure()
    add_band(fig, one["epoch"], one["mean"], one["std"], name="one seed", color="#1f77b4")
    band, line = fig.data
    assert len(band.x) == 0 and len(band.y) == 0  # no band where there is no std
    assert list(line.customdata) == ["—"] * 3 and "± %{customdata}" in line.hovertemplate
    two = seed_curve(experiment, "taso_alpha=10_beta=0.5", "val_acc")
    epochs = experiment.epochs
    alone = epochs[
        (epochs["config_id"] == "taso_alpha=10_beta=0.5") & (epochs["seed"] == epochs["seed"].min())
    ]
    from taso_tune.results.report import _curve

    assert _curve(alone, "val_acc")["std"].isna().all()  # n=1: NaN, never 0
    fig = go.Figure()
    add_band(fig, two["epoch"], two["mean"], two["std"], name="two seeds", color="#1f77b4")
    assert len(fig.data[0].x) == 6 and fig.data[1].customdata[-1] == "0.014"


def test_learning_rates_one_line_per_trial_on_a_log_axis(experiment: Experiment) -> None:
    fig = learning_rates(experiment)
    assert fig.layout.yaxis.type == "log"
    assert len(fig.data) == len(experiment.trials)
    assert sorted(t.name for t in fig.data if t.showlegend) == ["adagrad", "taso"]


def test_parallel_coordinates_axes(complete: Experiment) -> None:
    dims = parallel_coordinates(complete, "val").data[0].dimensions
    labels = [d.label for d in dims]
    assert labels == ["optimizer", "lr (log)", "alpha", "beta", "val_acc mean (%)"]
    assert sorted(dims[1].values) == pytest.approx(
        [-1.30103] * 3, abs=1e-4
    )  # adagrad lr 0.01 not compared
    assert "n/a" in dims[2].ticktext  # adagrad has no alpha


def test_alpha_beta_heatmap_only_when_both_vary(
    experiment: Experiment, complete: Experiment
) -> None:
    assert alpha_beta_heatmap(experiment, "val") is None  # alpha 25 is missing a seed: not compared
    fig = alpha_beta_heatmap(complete, "val")
    assert fig is not None
    assert list(fig.data[0].y) == ["10", "25"] and list(fig.data[0].x) == ["0.5", "0.7"]
    assert fig.data[0].z[0][0] == pytest.approx(91.0) and fig.data[0].z[1][1] == pytest.approx(87.0)
    one = complete.trials["config_id"] != "taso_alpha=25_beta=0.7"
    single = Experiment(complete.path, complete.space, complete.trials[one], complete.epochs)
    assert alpha_beta_heatmap(single, "val") is None
    assert "alpha-beta" not in report_figures(single)


def test_early_stopping_view(experiment: Experiment, tmp_path: Path) -> None:
    fig = early_stopping(experiment)
    stopped = {t.name: (list(t.x), list(t.y), list(t.base)) for t in fig.data if t.xaxis == "x2"}
    # x: the epoch each trial stopped after; trials stopping after the same epoch stack (base)
    assert stopped == {
        "diverged": (["2"], [1], [0]),
        "errored": (["1"], [1], [0]),
        "stopped-early": (["1"], [1], [1]),
    }
    budget = early_stopping(load_experiment(str(write_budget_sh_experiment(tmp_path))))
    rungs = [t for t in budget.data if t.xaxis == "x2"][0]
    assert list(rungs.x) == ["rung 0: 1 epochs", "rung 1: 3 epochs"] and list(rungs.y) == [2, 1]


def test_write_report_directory_mode_is_small_and_atomic(
    experiment: Experiment, tmp_path: Path
) -> None:
    out = tmp_path / "site" / "report.html"
    assert write_report(experiment, str(out), plotlyjs="directory") == str(out)
    html = out.read_text()
    assert (
        f'src="{PLOTLYJS_FILE}"' in html and (out.parent / PLOTLYJS_FILE).stat().st_size > 1_000_000
    )
    assert out.stat().st_size < 300_000
    assert sorted(p.name for p in out.parent.iterdir()) == [
        PLOTLYJS_FILE,
        "report.html",
    ]  # no temp file
    inline = tmp_path / "inline.html"
    write_report(experiment, str(inline))
    assert inline.stat().st_size > 3_000_000  # plotly.js embedded: one self-contained file
    assert not re.search(r'<script[^>]+src="https?:', inline.read_text())


def test_cli_report_and_errors(experiment: Experiment, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", experiment.path, "--plotlyjs", "directory"]) == 0
    assert os.path.isfile(os.path.join(experiment.path, "report.html"))
    assert "report written to" in capsys.readouterr().out
    assert main(["report", experiment.path + "-missing"]) == 2
    assert "no such experiment folder" in capsys.readouterr().err
    assert main(["report", "s3://bucket/exp"]) == 2
    assert "-o/--output" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["report", experiment.path, "--plotlyjs", "cdn"])


def _chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail(
            "chromium is not installed: run `make browser` (Debian package `chromium`) to run the browser test"
        )
    return path


def test_report_draws_in_headless_chromium(complete: Experiment, tmp_path: Path) -> None:
    chromium = _chromium()
    out = tmp_path / "report.html"
    write_report(complete, str(out))
    figures = len(report_figures(complete))
    assert figures == 5
    page = tmp_path / "report-checked.html"  # the same page with the error hook first in <head>
    page.write_text(out.read_text().replace("<head>", "<head>\n" + ERROR_HOOK, 1))
    screenshot = tmp_path / "report.png"
    run = subprocess.run(
        [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            f"--screenshot={screenshot}",
            "--window-size=1400,3000",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    dom, log = run.stdout, run.stderr
    assert run.returncode == 0, log[-2000:]
    assert dom.count('class="plot-container plotly"') == figures, "a figure did not draw"
    assert dom.count('class="main-svg"') >= figures
    html_tag = re.search(r"<html[^>]*>", dom).group(0)
    assert "data-console-errors" not in html_tag, html_tag
    console = [line for line in log.splitlines() if "CONSOLE" in line]
    assert not [line for line in console if "Uncaught" in line or "ERROR:CONSOLE" in line], console
    assert (
        screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 20_000
    )


def test_report_renders_before_any_trial_completes(experiment: Experiment) -> None:
    running = experiment.trials.assign(status="unfinished")
    html = render_report(Experiment(experiment.path, experiment.space, running, experiment.epochs))
    assert "No configuration has all its planned seeds finished yet." in html
    assert (
        "no configuration has all its planned seeds finished yet" in html
    )  # the learning-curve placeholder
    assert '<section id="alpha-beta">' not in html and '<section id="early-stopping">' in html


def test_report_layer_imports_no_ray() -> None:
    code = "import sys, taso_tune.results.report, taso_tune.cli.report; assert 'ray' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_report_refuses_damaged_results_and_writes_nothing(tmp_path: Path, capsys) -> None:
    experiment = write_fixture_experiment(tmp_path)
    result = damage_result(experiment, 2, "val_acc", "0.9x")
    out = tmp_path / "out" / "report.html"
    out.parent.mkdir()
    for args in (["-o", str(out)], []):  # a named output, and the default one in the experiment
        assert main(["report", str(experiment), *args]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"{result}: line 2: val_acc: must be a number" in err[0], err
    assert list(out.parent.iterdir()) == [] and not (experiment / "report.html").exists()


def test_report_reads_past_a_cut_last_line(tmp_path: Path) -> None:
    experiment = write_fixture_experiment(tmp_path)
    result = sorted(experiment.glob("*/result.json"))[0]
    result.write_text(result.read_text() + '{"epoch": 4, "val_a')  # the driver killed here
    assert main(["report", str(experiment), "-o", str(tmp_path / "r.html")]) == 0
    assert (tmp_path / "r.html").exists()
