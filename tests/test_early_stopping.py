"""The early-stopping comparison (epochs, regret, rank correlation, top-5 fate) on hand-checked data."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from test_results import write_fixture_experiment

from taso_tune.results.experiment import load_experiment
from taso_tune.results.studies.early_stopping import asha_rungs, compare, to_markdown, true_scores
from taso_tune.results.studies.early_stopping_page import write_comparison_page


@pytest.fixture
def full(tmp_path: Path):
    return load_experiment(str(write_fixture_experiment(tmp_path)))


def test_asha_rungs_follow_grace_times_eta_powers() -> None:
    assert asha_rungs(2, 3, 20) == [2, 6, 18]
    assert asha_rungs(1, 3, 3) == [1]
    assert asha_rungs(3, 3, 15) == [3, 9]


def test_true_scores_are_final_mean_validation_accuracy(full) -> None:
    truth = true_scores(full)
    # by the statistics rule: taso alpha 10 (0.90, 0.92) 0.91, adagrad 0.05 (0.70, 0.75, 0.80 and a
    # diverged seed at 0.10) 0.5875; taso alpha 25 (0.88, 0.86; a seed missing) has no true score
    assert list(truth.index[:2]) == ["taso_alpha=10_beta=0.5", "adagrad_lr=0.05"]
    assert "taso_alpha=25_beta=0.7" not in truth
    assert truth["adagrad_lr=0.05"] == pytest.approx(0.5875)
    assert truth.iloc[0] == pytest.approx(0.91)


def test_regret_and_epochs_of_a_method_that_stopped_the_best_configuration(full) -> None:
    # an early-stopping run that stopped both seeds of the truly best configuration after epoch 1
    trials = full.trials.copy()
    best = trials["config_id"] == "taso_alpha=10_beta=0.5"
    trials.loc[best, "status"] = "stopped-early"
    trials.loc[best, "epochs_run"] = 1
    asha = replace(full, trials=trials)

    result = compare(full, {"asha": asha}, asha_rung_epochs=[1, 2])
    summary = result.summary.set_index("method")
    assert summary.loc["full", "regret_points"] == pytest.approx(0.0)
    # the next comparable configuration (taso alpha 25 is missing a seed, so it is never the pick)
    assert summary.loc["asha", "pick"] == "adagrad_lr=0.05"
    assert summary.loc["asha", "regret_points"] == pytest.approx(100 * (0.91 - 0.5875))
    full_epochs = int(full.trials["epochs_run"].sum())
    assert summary.loc["asha", "epochs"] == full_epochs - 4  # two trials ran 1 epoch instead of 3
    assert summary.loc["asha", "share_of_full"] == pytest.approx((full_epochs - 4) / full_epochs)

    corr = result.rank_correlation
    assert list(corr["rung_epochs"]) == [1, 2] and (corr["method"] == "asha").all()
    assert corr["spearman"].isna().all()  # 4 configurations: too few for a rank correlation

    top5 = result.top5.set_index("config_id")
    assert top5.loc["taso_alpha=10_beta=0.5", "asha_seeds_stopped"] == "2/2"
    assert "taso_alpha=25_beta=0.7" not in top5.index  # a seed missing: no true score

    text = to_markdown(result)
    assert "| asha |" in text and "regret_points" in text and "n/a (< 5 configurations)" in text


def test_each_pick_is_judged_against_the_true_best_by_the_one_rule(full) -> None:
    from scipy import stats

    from taso_tune.results.studies.early_stopping import pick_verdicts

    trials = full.trials
    kept = trials[
        trials["config_id"].isin(["taso_alpha=10_beta=0.5", "adagrad_lr=0.05"])
        & (trials["seed"] < 2)
    ]
    two = replace(full, trials=kept)
    # seeds 0, 1: taso (0.90, 0.92) is the true best, adagrad (0.70, 0.75): differences -0.20,
    # -0.17, mean -0.185, std 0.0212132; one comparison, so its Holm interval is the 95% t interval
    # -0.185 ± 12.706205 * 0.0212132 / sqrt(2) = [-0.375593, 0.005593]: it contains 0, and the
    # verdict says no difference shown (p = 0.0547 by scipy), the two in step
    found = pick_verdicts(
        two, {"full": "taso_alpha=10_beta=0.5", "asha": "adagrad_lr=0.05", "none": None}
    )
    assert found["full"].verdict == "reference"
    adagrad = found["asha"]
    assert adagrad.p_value == pytest.approx(stats.ttest_rel([0.70, 0.75], [0.90, 0.92]).pvalue)
    assert adagrad.p_holm == pytest.approx(adagrad.p_value) and adagrad.p_value > 0.05
    assert adagrad.difference == pytest.approx(-0.185)
    assert (adagrad.ci_low, adagrad.ci_high) == (
        pytest.approx(-0.375593, abs=1e-6),
        pytest.approx(0.005593, abs=1e-6),
    )
    assert adagrad.verdict == "no difference shown"
    assert found["none"].verdict == "not compared"
    # a method that stopped the true best early picks adagrad
    stopped = replace(two, trials=kept[kept["config_id"] == "adagrad_lr=0.05"])
    summary = compare(two, {"asha": stopped}).summary
    row = summary.set_index("method").loc["asha"]
    # the regret's interval is the difference's turned round, in points
    assert row["regret_holm_interval"] == "[-0.56, +37.56]"
    assert row["verdict_vs_true_best"] == "no difference shown at 5%"
    assert summary.set_index("method").loc["full", "verdict_vs_true_best"] == (
        "reference (best on val_acc)"
    )


def test_comparison_page_is_written_with_its_plotly(full, tmp_path: Path) -> None:
    page = write_comparison_page(
        compare(full, {"asha": full}, asha_rung_epochs=[1]), str(tmp_path / "out" / "cmp.html")
    )
    html = Path(page).read_text()
    assert "Epochs and regret" in html and 'src="plotly.min.js"' in html
    assert (tmp_path / "out" / "plotly.min.js").stat().st_size > 1_000_000


def test_the_truly_best_has_every_seed_and_seeds_follow_the_one_rule(full) -> None:
    import pandas as pd

    from taso_tune.results.experiment import Experiment
    from taso_tune.results.studies.early_stopping import pick_verdicts

    # b looks best on its two complete seeds (0.955) but its seed 2 errored at 0.50; a ran all three
    template = full.trials.iloc[0].to_dict()
    values = {"a": [0.90, 0.91, 0.92], "b": [0.95, 0.96, 0.50]}
    rows = [
        {
            **template,
            "trial_id": f"{config_id}_{seed}",
            "config_id": config_id,
            "seed": seed,
            "status": "errored" if (config_id, seed) == ("b", 2) else "complete",
            "val_acc": value,
        }
        for config_id, seeds in values.items()
        for seed, value in enumerate(seeds)
    ]
    space = {**full.space, "seeds": 3, "seeds_per_trial": "all", "scheduler": "none"}
    three = Experiment(full.path, space, pd.DataFrame(rows), full.epochs.iloc[0:0])
    truth = true_scores(three)
    assert list(truth.index) == ["a"] and truth["a"] == pytest.approx(0.91)
    found = pick_verdicts(three, {"full": "a", "asha": "b"})
    assert found["full"].verdict == "reference"
    # b's errored seed is missing, never read at its last value: b is not paired with a
    assert found["asha"].verdict == "not compared"
    assert found["asha"].reason == "not run over the reference's seeds"
    summary = compare(three, {"asha": three}).summary.set_index("method")
    assert summary.loc["full", "pick"] == "a" and summary.loc["full", "regret_points"] == 0.0


def test_the_regret_bound_is_one_sided_and_branch_epochs_count(full) -> None:
    import math

    import pandas as pd
    from scipy import stats

    trials = full.trials
    kept = trials[
        trials["config_id"].isin(["taso_alpha=10_beta=0.5", "adagrad_lr=0.05"])
        & (trials["seed"] < 2)
    ]
    two = replace(full, trials=kept)
    stopped = replace(two, trials=kept[kept["config_id"] == "adagrad_lr=0.05"])
    summary = compare(two, {"asha": stopped}).summary.set_index("method")
    # regrets 0.20 and 0.17: mean 0.185, std 0.0212132, n 2; the one-sided 95% bound adds
    # t(0.95, 1) standard errors, not the two-sided 97.5% quantile
    bound = 0.185 + stats.t.ppf(0.95, 1) * 0.0212132 / math.sqrt(2)
    assert summary.loc["asha", "regret_bound_95"] == pytest.approx(100 * bound, abs=1e-3)
    assert summary.loc["full", "regret_bound_95"] == 0.0  # the true best itself
    # cooldown-asha: the branches' epochs count, and each rung's branch scores are what it saw
    branches = pd.DataFrame(
        [
            {"config_id": c, "epoch": 1, "cooldown_epochs": 2, "cooldown_val_acc": v}
            for c, v in (("taso_alpha=10_beta=0.5", 0.9), ("adagrad_lr=0.05", 0.5))
        ]
    )
    cooled = replace(two, cooldowns=branches)
    result = compare(two, {"cooldown-asha": cooled})
    row = result.summary.set_index("method").loc["cooldown-asha"]
    assert row["epochs"] == int(kept["epochs_run"].sum()) + 4
    corr = result.rank_correlation
    assert list(corr["method"]) == ["cooldown-asha"] and list(corr["configs"]) == [2]


def test_top_k_keeps_the_best_after_one_rung_and_runs_them_to_the_end(full) -> None:
    from taso_tune.results.studies.early_stopping import top_k

    at_one = full.epochs[full.epochs["epoch"] == 1].groupby("config_id")["val_acc"].mean()
    best_at_one = sorted(at_one.index, key=lambda c: (-at_one[c], c))[:2]
    baseline = top_k(full, 1, 2)
    assert list(baseline.kept) == best_at_one
    trials = full.trials
    extra = (trials.loc[trials["config_id"].isin(best_at_one), "epochs_run"] - 1).clip(lower=0)
    assert baseline.epochs == int(trials["epochs_run"].clip(upper=1).sum() + extra.sum())
    truth = true_scores(full)
    assert baseline.pick == next(c for c in truth.index if c in best_at_one)
    result = compare(full, {}, baseline=baseline)
    assert "top2" in set(result.summary["method"])
    assert set(result.top5["top2"]) <= {"kept to the end", "dropped at epoch 1"}
