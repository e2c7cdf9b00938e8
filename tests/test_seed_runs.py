"""All seeds of a configuration side by side: the same numbers as separate runs, exact resume, one
diverging seed scored at chance while its siblings go on, and the epoch summary a scheduler judges."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from taso_tune.training.run import TrainConfig, fit
from taso_tune.training.seeds import SeedRuns, chance_scores, epoch_summary

CONFIG = TrainConfig(
    model="lenet5",
    dataset="digits",
    optimizer="taso",
    epochs=3,
    batch_size=64,
    train_limit=400,
    device="cpu",
    threads=1,
)
SEEDS = (0, 1, 2)


def _metrics(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in ("epoch_seconds", "images_per_second")}


@pytest.fixture(scope="module")
def data():
    from taso_tune.training.data.sets import load_dataset

    return load_dataset("digits", train_limit=400)


def test_each_seed_equals_its_run_alone(data) -> None:
    runs = SeedRuns(CONFIG, SEEDS, data)
    together = [runs.step_epoch() for _ in range(CONFIG.epochs)]
    assert runs.status == "complete" and runs.epoch == CONFIG.epochs
    for seed in SEEDS:
        alone = list(fit(replace(CONFIG, seed=seed), data))
        assert [_metrics(epoch[seed]) for epoch in together] == [_metrics(r) for r in alone]
    # different seeds, different runs
    assert together[-1][0]["train_loss"] != together[-1][1]["train_loss"]


def test_resume_from_a_state_dict_is_exact(data) -> None:
    straight = SeedRuns(CONFIG, SEEDS, data)
    expected = [straight.step_epoch() for _ in range(CONFIG.epochs)]
    first = SeedRuns(CONFIG, SEEDS, data)
    first.step_epoch()
    resumed = SeedRuns(CONFIG, SEEDS, data, first.state_dict())
    assert resumed.epoch == 1
    rest = [resumed.step_epoch() for _ in range(CONFIG.epochs - 1)]
    for got, want in zip(rest, expected[1:], strict=True):
        assert {s: _metrics(r) for s, r in got.items()} == {s: _metrics(r) for s, r in want.items()}


def test_one_diverging_seed_stops_alone_and_scores_chance(
    data, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = SeedRuns(CONFIG, SEEDS, data)
    victim = runs.runs[1]
    real_step = victim.step_epoch

    def blow_up():
        record = real_step()
        victim.status = "diverged"
        return {**record, "train_loss": math.inf, "status": "diverged"}

    monkeypatch.setattr(victim, "step_epoch", blow_up)
    first = runs.step_epoch()
    assert runs.status == "running" and first[1]["status"] == "diverged"
    second = runs.step_epoch()
    assert second[1] == first[1]  # frozen at its last record
    assert second[0]["epoch"] == second[2]["epoch"] == 2  # its siblings go on
    summary = epoch_summary(second, num_classes=10)
    assert summary["seeds_diverged"] == 1 and summary["epoch"] == 2
    expected = (second[0]["val_acc"] + 0.1 + second[2]["val_acc"]) / 3
    assert summary["val_acc"] == pytest.approx(expected)
    runs.step_epoch()
    assert runs.status == "complete"  # two seeds complete, one diverged


def _record(epoch: int, val_acc: float, val_loss: float, status: str = "running") -> dict:
    return {
        "epoch": epoch,
        "total_epochs": 4,
        "lr": 0.05,
        "val_acc": val_acc,
        "val_loss": val_loss,
        "test_acc": val_acc,
        "test_loss": val_loss,
        "train_acc": val_acc,
        "train_loss": val_loss,
        "epoch_seconds": 1.0,
        "images_per_second": 1.0,
        "status": status,
    }


def test_epoch_summary_by_hand() -> None:
    records = {
        0: _record(2, 0.90, 0.30),
        1: _record(2, 0.80, 0.50),
        2: _record(1, 0.0, math.nan, "diverged"),
    }
    summary = epoch_summary(records, num_classes=10)
    # val_acc: 0.90, 0.80 and the diverged seed at 1/10: mean 0.6, std sqrt(((.3)^2+(.2)^2+(.5)^2)/2)
    assert summary["val_acc"] == pytest.approx(0.6)
    assert summary["val_acc_std"] == pytest.approx(math.sqrt(0.19))
    # val_loss: the diverged seed at the worse of the others' worst (0.5) and ln(10) = 2.302585
    assert chance_scores(records, 10)["val_loss"] == pytest.approx(math.log(10))
    assert summary["val_loss"] == pytest.approx((0.30 + 0.50 + math.log(10)) / 3)
    assert summary["epoch"] == 2 and summary["lr"] == 0.05 and summary["seeds_diverged"] == 1
    assert set(summary["per_seed"]) == {"0", "1", "2"}
    one = epoch_summary({5: _record(3, 0.7, 0.4)}, num_classes=10)
    assert one["val_acc"] == pytest.approx(0.7) and "val_acc_std" not in one  # no std from one seed


@pytest.mark.parametrize("packing", ["separate", "stacked"])
def test_the_seeds_of_a_trial_share_one_copy_of_the_data(data, packing: str) -> None:
    from taso_tune.training.packing import seed_training

    runs = seed_training(CONFIG, SEEDS, data, packing=packing)
    shared = runs.data.x_train.data_ptr()
    assert runs.setup.device == runs.data.x_train.device
    if packing == "separate":
        # every seed's run reads the trial's one copy, and trains on the trial's device set-up
        for run in runs.runs.values():
            assert run.data.x_train.data_ptr() == shared and run.setup is runs.setup
            assert run.data.x_val.data_ptr() == runs.data.x_val.data_ptr()
            assert run.train_batches.x.data_ptr() == shared
    else:
        for batches in runs.batches:
            assert batches.x.data_ptr() == shared


def test_seeds_must_be_distinct(data) -> None:
    from taso_tune.core.errors import ConfigError

    with pytest.raises(ConfigError, match="seeds"):
        SeedRuns(CONFIG, (1, 1), data)
