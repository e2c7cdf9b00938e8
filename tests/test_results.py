"""Reading an experiment folder and aggregating over seeds, against numbers worked out by hand.

The fixture experiment is written here in Ray Tune's on-disk format (a folder per trial with
``params.json`` and ``result.json`` JSON lines, an ``experiment_state-*.json`` with the trial
statuses, ``error.txt`` for an errored trial) so the tests need no Ray. The report and export tests
import :func:`write_fixture_experiment` from this module.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from taso_tune.core.errors import ConfigError, DamagedResults
from taso_tune.core.records import METRICS, SPACE_FILE
from taso_tune.core.report_checks import check_trial_report
from taso_tune.results.aggregate import (
    aggregate,
    best_per_optimizer,
    selection_metric,
    status_counts,
)
from taso_tune.results.experiment import load_experiment
from taso_tune.results.summary import format_summary
from taso_tune.stats.seeds import format_interval, format_mean_std

PLANNED = 3
TASO_HP = {"lr": 0.05, "momentum": 0.9, "nesterov": False, "weight_decay": 1e-4, "lr_final": None}
ADAGRAD_HP = {"lr_decay": 0.0, "eps": 1e-10, "weight_decay": 0.0}
#: Final metrics (val_acc, test_acc, val_loss, test_loss) of each trial; train_* follow from them.
TRIALS = [
    # config_id, optimizer, hp, seed, epochs run, Ray Tune status, final metrics, how it ended
    (
        "taso_alpha=10_beta=0.5",
        "taso",
        {**TASO_HP, "alpha": 10.0, "beta": 0.5},
        0,
        3,
        "TERMINATED",
        (0.90, 0.80, 0.30, 0.50),
        "complete",
    ),
    (
        "taso_alpha=10_beta=0.5",
        "taso",
        {**TASO_HP, "alpha": 10.0, "beta": 0.5},
        1,
        3,
        "TERMINATED",
        (0.92, 0.84, 0.26, 0.46),
        "complete",
    ),
    (
        "taso_alpha=25_beta=0.7",
        "taso",
        {**TASO_HP, "alpha": 25.0, "beta": 0.7},
        0,
        3,
        "TERMINATED",
        (0.88, 0.86, 0.34, 0.40),
        "complete",
    ),
    (
        "taso_alpha=25_beta=0.7",
        "taso",
        {**TASO_HP, "alpha": 25.0, "beta": 0.7},
        1,
        3,
        "TERMINATED",
        (0.86, 0.88, 0.38, 0.36),
        "complete",
    ),
    # stopped by ASHA after epoch 1; its (high) numbers must not enter any aggregate
    (
        "taso_alpha=25_beta=0.7",
        "taso",
        {**TASO_HP, "alpha": 25.0, "beta": 0.7},
        2,
        1,
        "TERMINATED",
        (0.99, 0.99, 0.01, 0.01),
        "stopped",
    ),
    (
        "adagrad_lr=0.05",
        "adagrad",
        {**ADAGRAD_HP, "lr": 0.05},
        0,
        3,
        "TERMINATED",
        (0.70, 0.72, 0.90, 0.88),
        "complete",
    ),
    (
        "adagrad_lr=0.05",
        "adagrad",
        {**ADAGRAD_HP, "lr": 0.05},
        1,
        3,
        "TERMINATED",
        (0.75, 0.74, 0.80, 0.82),
        "complete",
    ),
    (
        "adagrad_lr=0.05",
        "adagrad",
        {**ADAGRAD_HP, "lr": 0.05},
        2,
        3,
        "TERMINATED",
        (0.80, 0.79, 0.70, 0.71),
        "complete",
    ),
    (
        "adagrad_lr=0.05",
        "adagrad",
        {**ADAGRAD_HP, "lr": 0.05},
        3,
        2,
        "TERMINATED",
        (0.10, 0.10, 9.00, 9.00),
        "diverged",
    ),
    (
        "adagrad_lr=0.01",
        "adagrad",
        {**ADAGRAD_HP, "lr": 0.01},
        0,
        3,
        "TERMINATED",
        (0.60, 0.62, 1.10, 1.05),
        "complete",
    ),
    (
        "adagrad_lr=0.01",
        "adagrad",
        {**ADAGRAD_HP, "lr": 0.01},
        1,
        1,
        "ERROR",
        (0.20, 0.20, 2.00, 2.00),
        "errored",
    ),
]


def _records(index: int, spec: tuple) -> list[dict]:
    config_id, optimizer, hp, seed, epochs_run, _, final, ending = spec
    trial_id = f"abcde_{index:05d}"
    val_acc, test_acc, val_loss, test_loss = final
    records = []
    for epoch in range(1, epochs_run + 1):
        behind = epochs_run - epoch  # earlier epochs: a little worse than the last one
        last = epoch == epochs_run
        status = (
            {"complete": "complete", "diverged": "diverged"}.get(ending, "running")
            if last
            else "running"
        )
        own = {
            "epoch": epoch,
            "total_epochs": PLANNED,
            "lr": hp["lr"] * (1 - 0.25 * (epoch - 1)),
            "train_loss": math.nan
            if ending == "diverged" and last
            else val_loss - 0.1 + 0.1 * behind,
            "train_acc": val_acc + 0.02 - 0.1 * behind,
            "val_loss": val_loss + 0.1 * behind,
            "val_acc": val_acc - 0.1 * behind,
            "test_loss": test_loss + 0.1 * behind,
            "test_acc": test_acc - 0.1 * behind,
            "epoch_seconds": 1.5,
            "images_per_second": 1000.0,
            "status": status,
        }
        # a trial of one seed (seeds_per_trial: 1) reports its seed's numbers as the means
        records.append(
            {
                **own,
                "per_seed": {str(seed): own},
                "seeds_diverged": int(status == "diverged"),
                "config_id": config_id,
                "optimizer": optimizer,
                "seeds": [seed],
                "planned_epochs": PLANNED,
                "model": "lenet5",
                "dataset": "digits",
                "batch_size": 64,
                "num_classes": 10,
                "split_sizes": {"train": 1293, "val": 144, "test": 360},
                "node_id": f"node{1 + index % 2}",
                "hp": hp,
                "diverged": ending == "diverged" and last,
                "done": last,
                "training_iteration": epoch,
                "trial_id": trial_id,
                "time_total_s": 1.5 * epoch,
                "node_ip": f"10.0.0.{1 + index % 2}",
                "hostname": "node",
                "pid": 100 + index,
                "config": {
                    "trial": {"config_id": config_id, "optimizer": optimizer, "seeds": [seed]}
                },
            }
        )
    return records


def write_fixture_experiment(root: Path, name: str = "fixture") -> Path:
    """Write the fixture experiment under ``root/name`` in Ray Tune's layout and return its path."""
    path = root / name
    path.mkdir(parents=True)
    trial_data = []
    for index, spec in enumerate(TRIALS):
        records = _records(index, spec)
        trial_id = records[0]["trial_id"]
        folder = path / f"{spec[0]}_s{spec[3]}_{trial_id}"
        folder.mkdir()
        (folder / "params.json").write_text(json.dumps({"trial": records[0]["config"]["trial"]}))
        (folder / "result.json").write_text("".join(json.dumps(r) + "\n" for r in records))
        if spec[7] == "errored":
            (folder / "error.txt").write_text("RuntimeError: CUDA out of memory (fixture)\n")
        trial_data.append([json.dumps({"trial_id": trial_id, "status": spec[5]}), json.dumps({})])
    (path / "experiment_state-2026-01-01_00-00-00.json").write_text(
        json.dumps({"trial_data": trial_data})
    )
    space = {
        "name": name,
        "description": "hand-written fixture",
        "train": {"model": "lenet5", "dataset": "digits", "epochs": PLANNED},
        "metric": "val_acc",
        "mode": "max",
        "seeds": 2,
        "seeds_per_trial": 1,
        "scheduler": {"type": "asha", "grace_period": 1, "reduction_factor": 3, "per_seed": True},
        "blocks": [  # the families of TRIALS
            {"optimizer": "taso", "alpha": {"grid": [10, 25]}, "beta": {"grid": [0.5, 0.7]}},
            {"optimizer": "adagrad", "lr": {"grid": [0.05, 0.01]}},
        ],
    }
    (path / SPACE_FILE).write_text(yaml.safe_dump(space))
    return path


@pytest.fixture
def experiment(tmp_path: Path):
    return load_experiment(str(write_fixture_experiment(tmp_path)))


def _row(frame: pd.DataFrame, config_id: str) -> pd.Series:
    return frame.set_index("config_id").loc[config_id]


def test_trials_and_epochs_frames(experiment) -> None:
    trials = experiment.trials
    assert len(trials) == len(TRIALS)
    assert len(experiment.epochs) == sum(spec[4] for spec in TRIALS)
    assert status_counts(trials) == {"complete": 8, "diverged": 1, "errored": 1, "stopped-early": 1}
    by_seed = trials.set_index(["config_id", "seed"])
    assert by_seed.loc[("taso_alpha=25_beta=0.7", 2), "status"] == "stopped-early"
    assert by_seed.loc[("taso_alpha=25_beta=0.7", 2), "epochs_run"] == 1
    assert by_seed.loc[("adagrad_lr=0.05", 3), "status"] == "diverged"
    assert by_seed.loc[("adagrad_lr=0.01", 1), "status"] == "errored"
    assert by_seed.loc[("taso_alpha=10_beta=0.5", 1), "val_acc"] == 0.92
    assert by_seed.loc[("taso_alpha=10_beta=0.5", 1), "hp.alpha"] == 10.0
    assert set(trials["node"]) == {"10.0.0.1", "10.0.0.2"}
    assert experiment.space["name"] == "fixture"


def test_aggregate_follows_the_one_statistics_rule(experiment) -> None:
    agg = aggregate(experiment.final_trials, experiment.planned_seeds)
    assert list(agg["config_id"]) == [
        "adagrad_lr=0.01",
        "adagrad_lr=0.05",
        "taso_alpha=10_beta=0.5",
        "taso_alpha=25_beta=0.7",
    ]
    taso_a = _row(agg, "taso_alpha=10_beta=0.5")  # 2 of 2 planned seeds complete
    assert (taso_a["n"], taso_a["planned"], taso_a["comparable"], taso_a["status"]) == (
        2,
        2,
        True,
        "",
    )
    assert taso_a["val_acc_mean"] == pytest.approx(0.91)
    assert taso_a["val_acc_std"] == pytest.approx(0.01414213562373095)  # sqrt(2 * 0.01**2 / 1)
    # t_{0.975, 1} = 12.706205; half width 12.706205 * 0.0141421 / sqrt(2) = 0.127062: the t
    # interval [0.782938, 1.037062] passes 100%; an accuracy's stops at 1
    assert (taso_a["val_acc_ci_low"], taso_a["val_acc_ci_high"]) == (pytest.approx(0.782938), 1.0)
    # a loss's stays as it is above 0: val loss 0.30, 0.26 give 0.28 ± 12.706205 * 0.0282843 / sqrt(2)
    assert (taso_a["val_loss_ci_low"], taso_a["val_loss_ci_high"]) == (
        pytest.approx(0.28 - 0.254124, abs=1e-6),
        pytest.approx(0.28 + 0.254124, abs=1e-6),
    )
    assert taso_a["test_acc_mean"] == pytest.approx(0.82)
    assert taso_a["val_loss_mean"] == pytest.approx(0.28)


def test_a_diverged_seed_counts_at_chance_level(experiment) -> None:
    adagrad = _row(aggregate(experiment.final_trials, experiment.planned_seeds), "adagrad_lr=0.05")
    assert (adagrad["n"], adagrad["planned"], adagrad["diverged"], adagrad["comparable"]) == (
        4,
        4,
        1,
        True,
    )
    assert adagrad["status"] == "diverged 1/4; at chance 1/4" and adagrad["at_chance"] == 1
    assert adagrad["val_acc_mean"] == pytest.approx(
        (0.70 + 0.75 + 0.80 + 0.10) / 4
    )  # 1 / 10 classes
    assert adagrad["val_acc_std"] == pytest.approx(0.327554, abs=1e-6)  # sqrt(0.321875 / 3)
    # a loss: the worst complete value of the sweep (adagrad_lr=0.01's 1.10)
    assert adagrad["val_loss_mean"] == pytest.approx((0.90 + 0.80 + 0.70 + 1.10) / 4)


def test_configurations_missing_seeds_are_not_compared(experiment) -> None:
    agg = aggregate(experiment.final_trials, experiment.planned_seeds)
    taso_b = _row(agg, "taso_alpha=25_beta=0.7")  # ASHA stopped its third seed after one epoch
    assert (taso_b["n"], taso_b["planned"], taso_b["comparable"]) == (2, 3, False)
    assert taso_b["status"] == "not compared: 2 of 3 seeds" and taso_b["stopped_early"] == 1
    single = _row(agg, "adagrad_lr=0.01")  # its second seed errored: n = 1, no std, not compared
    assert (single["n"], single["comparable"]) == (1, False)
    assert pd.isna(single["val_acc_std"]) and pd.isna(single["val_acc_ci_low"])  # never 0
    assert single["status"] == "not compared: 1 of 2 seeds"


def test_best_per_optimizer_ranks_only_comparable_configurations(experiment) -> None:
    agg = aggregate(experiment.final_trials, experiment.planned_seeds)
    on_val = best_per_optimizer(agg, "val").set_index("optimizer")
    on_test = best_per_optimizer(agg, "test").set_index("optimizer")["config_id"]
    assert on_val.loc["taso", "config_id"] == "taso_alpha=10_beta=0.5"
    # on test taso_alpha=25 has the higher mean (0.87 > 0.82) but is missing a seed: never the pick
    assert on_test["taso"] == "taso_alpha=10_beta=0.5"
    assert on_val.loc["adagrad", "config_id"] == on_test["adagrad"] == "adagrad_lr=0.05"
    assert list(best_per_optimizer(agg, "val")["optimizer"]) == ["taso", "adagrad"]  # best first
    # a rank is an order, never a verdict (the one rule's verdicts are in test_significance.py)
    assert (on_val.loc["taso", "rank"], on_val.loc["adagrad", "rank"]) == (1, 2)
    assert "verdict" not in on_val.columns


def test_a_configuration_with_diverged_seeds_is_not_picked_over_a_stable_one() -> None:
    rows = [
        {
            "config_id": cid,
            "optimizer": "sgd",
            "seed": seed,
            "model": "lenet5",
            "dataset": "digits",
            "planned_epochs": 3,
            "num_classes": 10,
            "status": status,
            "trial_id": f"{cid}-{seed}",
            **{m: value for m in METRICS},
        }
        for cid, ends in (
            ("spiky", [("complete", 0.99), ("diverged", 0.0), ("diverged", 0.0)]),
            ("stable", [("complete", 0.98)] * 3),
        )
        for seed, (status, value) in enumerate(ends)
    ]
    agg = aggregate(pd.DataFrame(rows), planned=3)
    assert _row(agg, "spiky")["val_acc_mean"] == pytest.approx((0.99 + 0.1 + 0.1) / 3)
    assert best_per_optimizer(agg)["config_id"].tolist() == ["stable"]


def test_selection_metric_rejects_unknown_split() -> None:
    assert selection_metric("val") == "val_acc" and selection_metric("test") == "test_acc"
    with pytest.raises(ConfigError, match="--select-on"):
        selection_metric("train")  # type: ignore[arg-type]


def test_format_summary_states_n_of_planned_intervals_and_verdicts(experiment) -> None:
    text = format_summary(experiment, "val")
    assert "selected on val_acc" in text
    assert "91.00 ± 1.41 (n=2) [78.29, 100.00]" in text  # the t interval cut at 100
    assert "Reference: taso (taso_alpha=10_beta=0.5), the best pick on val_acc" in text
    assert "n=2/2 seeds  [taso_alpha=10_beta=0.5]" in text
    assert "verdict: reference (best on val_acc)" in text
    # adagrad ran seeds 0-3, the reference 0-1: not paired, so not compared
    assert "n=4/4 seeds; diverged 1/4; at chance 1/4  [adagrad_lr=0.05]" in text
    assert "verdict: not compared (not run over the reference's seeds)" in text
    assert "tie" not in text
    assert "not compared: 2 of 4 configurations" in text
    assert "stopped-early 1" in text and "diverged 1" in text and "errored 1" in text
    assert "± 0.00" not in text and "how to read these numbers" in text
    assert "biased baseline" in text  # the fixture is a per-seed ASHA sweep


def test_format_mean_std_never_prints_a_zero_std_for_one_seed() -> None:
    assert format_mean_std(0.9198, 0.0019, 5) == "91.98 ± 0.19 (n=5)"
    assert format_mean_std(0.36, 0.02, 3, scale=1.0) == "0.36 ± 0.02 (n=3)"
    assert format_mean_std(0.986, None, 1) == "98.60 ± — (n=1)"
    assert format_mean_std(0.986, float("nan"), 1) == "98.60 ± — (n=1)"  # a table's empty cell
    assert format_interval(float("nan"), float("nan")) == "—"


def test_missing_or_empty_experiment_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such experiment folder"):
        load_experiment(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no trial results"):
        load_experiment(str(tmp_path / "empty"))


def write_budget_sh_experiment(root: Path) -> Path:
    """A budget-aware successive-halving experiment: rung 0 (1 epoch, two configurations) and
    rung 1 (3 epochs, the survivor), each a Tune run in its own folder."""
    path = root / "bsh"
    path.mkdir()
    rung_trials = {
        0: [(c, o, h, s, 1, "TERMINATED", f, "complete") for c, o, h, s, _, _, f, e in TRIALS[:4]],
        1: [spec for spec in TRIALS[:2]],
    }
    for rung, specs in rung_trials.items():
        folder = path / f"rung-{rung}-{1 if rung == 0 else PLANNED}ep"
        folder.mkdir()
        for index, spec in enumerate(specs):
            records = _records(100 * rung + index, spec)
            for rec in records:
                rec["planned_epochs"] = rec["total_epochs"] = spec[4]
            trial = folder / f"{spec[0]}_s{spec[3]}_{records[0]['trial_id']}"
            trial.mkdir()
            (trial / "result.json").write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_budget_sh_compares_the_last_rung_only(tmp_path: Path) -> None:
    experiment = load_experiment(str(write_budget_sh_experiment(tmp_path)))
    assert sorted(experiment.trials["rung"].unique()) == [0, 1]
    assert set(experiment.final_trials["rung"]) == {1}
    agg = aggregate(experiment.final_trials, experiment.planned_seeds)
    assert list(agg["config_id"]) == ["taso_alpha=10_beta=0.5"]
    assert agg["val_acc_mean"].iloc[0] == pytest.approx(0.91)


# --- damaged results are refused by name -------------------------------------------------------------


def damage_result(experiment: Path, line: int, field: str, value: object) -> Path:
    """Set ``field`` of line ``line`` of the first trial's ``result.json`` (a 3-epoch trial) to
    ``value``, as a hand or a faulty disk could, and return that file."""
    result = sorted(experiment.glob("*/result.json"))[0]
    lines = result.read_text().splitlines()
    record = json.loads(lines[line - 1])
    record[field] = value
    lines[line - 1] = json.dumps(record)
    result.write_text("\n".join(lines) + "\n")
    return result


def test_a_type_damaged_record_is_refused_naming_file_line_and_field(tmp_path: Path) -> None:
    experiment = write_fixture_experiment(tmp_path)
    result = damage_result(experiment, 2, "val_acc", "0.9x")  # mid-file: line 3 follows
    with pytest.raises(DamagedResults) as caught:
        load_experiment(str(experiment))
    assert str(caught.value) == (f"{result}: line 2: val_acc: must be a number (got '0.9x')")
    assert isinstance(caught.value, ConfigError)


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("test_acc", math.inf, "test_acc: must be finite"),
        ("epoch", True, "epoch: must be an integer"),
        ("seeds", [0, "1"], "seeds: item '1': must be an integer"),
        ("split_sizes", {"train": 1.5}, "split_sizes: train: must be an integer"),
        ("diverged", "no", "diverged: must be true or false"),
        ("config_id", None, "config_id: must be text"),
        ("per_seed", [], "per_seed: must be a mapping"),
    ],
)
def test_each_damaged_field_is_named(field: str, value: object, problem: str) -> None:
    record = _records(0, TRIALS[0])[1]
    record[field] = value
    with pytest.raises(DamagedResults, match=rf"^f\.json: line 7: {re.escape(problem)}"):
        check_trial_report(record, "f.json", 7)


def test_a_seeds_record_is_checked_too() -> None:
    record = _records(0, TRIALS[0])[1]
    record["per_seed"]["0"] = {**record["per_seed"]["0"], "status": "exploded"}
    with pytest.raises(DamagedResults, match=r"line 4: per_seed\.0\.status: must be one of"):
        check_trial_report(record, "f.json", 4)
    del record["per_seed"]["0"]["status"]
    with pytest.raises(DamagedResults, match=r"line 4: per_seed\.0\.status: is missing"):
        check_trial_report(record, "f.json", 4)
    record = _records(0, TRIALS[0])[1]
    del record["node_id"]
    with pytest.raises(DamagedResults, match=r"line 4: node_id: is missing"):
        check_trial_report(record, "f.json", 4)


def test_a_diverged_seeds_record_is_accepted() -> None:
    """What a trial reports once every seed diverged: the loss that ended a seed may be NaN or inf
    (the divergence rule), and the trial's lr is NaN (no seed runs on to have one)."""
    record = _records(0, TRIALS[0])[-1]
    own = {
        **record["per_seed"]["0"],
        "train_loss": math.inf,
        "test_loss": math.nan,
        "val_loss": math.nan,
        "images_per_second": math.nan,
        "status": "diverged",
    }
    record.update(
        per_seed={"0": own},
        lr=math.nan,
        train_loss=math.nan,
        diverged=True,
        seeds_diverged=1,
    )
    reread = json.loads(json.dumps(record))  # through JSON as Tune writes it: NaN, Infinity
    assert check_trial_report(reread, "f.json", 3) is reread
    record["diverged"] = False  # a seed still running: its trial has an lr
    with pytest.raises(DamagedResults, match=r"line 3: lr: must be finite"):
        check_trial_report(json.loads(json.dumps(record)), "f.json", 3)


def test_a_cut_last_line_still_reads(tmp_path: Path) -> None:
    experiment = write_fixture_experiment(tmp_path)
    whole = load_experiment(str(experiment)).trials
    result = sorted(experiment.glob("*/result.json"))[0]
    result.write_text(result.read_text() + '{"epoch": 4, "val_acc": 0.9')  # the driver killed here
    assert load_experiment(str(experiment)).trials.equals(whole)


def _frame(experiment, statuses_and_values: dict[int, tuple[str, float, float, float]], **extra):
    """One configuration over seeds: seed -> (status, train_acc, val_acc, test_acc)."""
    template = experiment.trials.iloc[0].to_dict()
    return pd.DataFrame(
        [
            {
                **template,
                "trial_id": f"t{seed}",
                "config_id": "c",
                "seed": seed,
                "status": status,
                "train_acc": train,
                "val_acc": val,
                "test_acc": test,
                **extra,
            }
            for seed, (status, train, val, test) in statuses_and_values.items()
        ]
    )


def test_at_chance_counts_the_held_out_accuracies_only(experiment) -> None:
    from taso_tune.results.aggregate import aggregate

    # seed 2's training accuracy is at chance (0.15 < 0.19 on 10 classes); its val and test are not
    trials = _frame(
        experiment,
        {
            0: ("complete", 0.95, 0.90, 0.89),
            1: ("complete", 0.96, 0.91, 0.90),
            2: ("complete", 0.15, 0.92, 0.91),
        },
    )
    row = aggregate(trials, 3).iloc[0]
    assert row["train_acc_summary"].at_chance == 1  # the metric's own count is kept
    assert row["at_chance"] == 0 and "at chance" not in row["status"]


def test_a_complete_seed_without_a_value_is_named_apart_from_diverged(experiment) -> None:
    from taso_tune.results.aggregate import aggregate
    from taso_tune.results.export import _stat

    trials = _frame(
        experiment,
        {
            0: ("complete", 0.95, 0.90, 0.89),
            1: ("complete", 0.96, math.nan, math.nan),
            2: ("diverged", math.nan, math.nan, math.nan),
        },
    )
    row = aggregate(trials, 3).iloc[0]
    # both scored at chance (0.10); one diverged, one finished without a finite value
    assert row["val_acc_mean"] == pytest.approx((0.90 + 0.10 + 0.10) / 3)
    assert row["status"] == "diverged 1/3; no finite value 1/3; at chance 2/3"
    record = _stat(row, "val_acc")
    assert (record["diverged"], record["no_value"], record["at_chance"]) == (1, 1, 2)


def test_unknown_classes_count_no_seed_at_chance(experiment) -> None:
    from taso_tune.results.aggregate import aggregate
    from taso_tune.results.export import _stat
    from taso_tune.stats.seeds import AT_CHANCE_UNKNOWN

    # 0.05 would be "at chance" only against a made-up chance level of 0 (bar 10%)
    trials = _frame(
        experiment,
        {
            0: ("complete", 0.95, 0.90, 0.89),
            1: ("complete", 0.96, 0.05, 0.06),
            2: ("complete", 0.97, 0.92, 0.91),
        },
        num_classes=None,
    )
    row = aggregate(trials, 3).iloc[0]
    assert row["at_chance"] is None and row["val_acc_summary"].at_chance is None
    assert row["status"] == AT_CHANCE_UNKNOWN == "at chance not counted (number of classes unknown)"
    assert _stat(row, "val_acc")["at_chance"] is None
    assert row["val_acc_ci_low"] >= 0.0  # still an accuracy: its interval stays inside [0, 1]
