"""The training loop: config validation, reproducibility, exact resume, divergence, the paper's LeNet5 check."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from taso_tune.core.errors import ConfigError
from taso_tune.schedules.maths import taso_lr
from taso_tune.training.data.sets import ImageData
from taso_tune.training.run import Run, TrainConfig, fit

TIMING_KEYS = {"epoch_seconds", "images_per_second"}
RECORD_KEYS = {
    "epoch",
    "total_epochs",
    "lr",
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "test_loss",
    "test_acc",
    "epoch_seconds",
    "images_per_second",
    "status",
}


def _config(**overrides: Any) -> TrainConfig:
    base: dict[str, Any] = {
        "model": "lenet5",
        "dataset": "digits",
        "epochs": 3,
        "device": "cpu",
        "threads": 1,
    }
    return TrainConfig(**{**base, **overrides})


def _without_timings(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in records]


# --- TrainConfig ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"model": "alexnet"}, "model"),
        ({"dataset": "imagenet"}, "dataset"),
        ({"optimizer": "lamb"}, "optimizer"),
        ({"epochs": 0}, "epochs"),
        ({"epochs": 2.5}, "epochs"),
        ({"epochs": True}, "epochs"),
        ({"batch_size": 0}, "batch_size"),
        ({"threads": 0}, "threads"),
        ({"seed": "one"}, "seed"),
        ({"val_fraction": 1.0}, "val_fraction"),
        ({"val_fraction": -0.1}, "val_fraction"),
        ({"device": "tpu"}, "device"),
        ({"schedule_granularity": "batch"}, "schedule_granularity"),
        ({"schedule_granularity": True}, "schedule_granularity"),
        ({"hparams": {"lr": -0.1}}, "lr"),
        ({"hparams": {"alpha": 0}}, "alpha"),
        ({"hparams": {"badfield": 1}}, "badfield"),
        ({"optimizer": "adam", "hparams": {"momentum": 0.9}}, "momentum"),
    ],
)
def test_config_errors_name_the_field(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError, match=field) as info:
        _config(**overrides)
    assert info.value.field == field


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_config_rejects_cuda_without_cuda() -> None:
    with pytest.raises(ConfigError, match="device"):
        _config(device="cuda")


def test_config_is_frozen_and_resolves_hparams() -> None:
    config = _config(hparams={"lr": 0.1})
    assert config.hparams["lr"] == 0.1
    assert config.hparams["alpha"] == 25.0 and config.hparams["momentum"] == 0.9
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.epochs = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    "config",
    [
        TrainConfig(),
        TrainConfig(optimizer="sgd_step", hparams={"milestones": [0.3, 0.6], "gamma": 0.5}, seed=4),
        TrainConfig(
            optimizer="rmsprop", hparams={"centered": True}, val_fraction=0.0, train_limit=100
        ),
        TrainConfig(
            optimizer="taso", hparams={"lr_final": 0.001, "beta": 0.5}, schedule_granularity="step"
        ),
    ],
)
def test_flat_round_trip(config: TrainConfig) -> None:
    flat = config.to_flat()
    assert "hparams" not in flat
    assert set(config.hparams) <= set(flat)
    assert TrainConfig.from_flat(flat) == config
    # the flat form is plain YAML (tuples become lists), as written beside every result
    assert TrainConfig.from_flat(yaml.safe_load(yaml.safe_dump(flat))) == config


def test_from_flat_reads_the_old_per_step_flag() -> None:
    # configs written before schedule_granularity (a sweep being resumed) hold a boolean flag
    assert TrainConfig.from_flat({"schedule_per_step": True}).schedule_granularity == "step"
    assert TrainConfig.from_flat({"schedule_per_step": False}).schedule_granularity == "epoch"
    assert TrainConfig().schedule_granularity == "auto"


def test_from_flat_splits_own_fields_from_hparams() -> None:
    config = TrainConfig.from_flat({"optimizer": "adam", "epochs": 4, "lr": 0.001, "beta2": 0.999})
    assert config.epochs == 4
    assert config.hparams["lr"] == 0.001 and config.hparams["beta2"] == 0.999
    nested = TrainConfig.from_flat({"optimizer": "adam", "hparams": {"lr": 0.002}})
    assert nested.hparams["lr"] == 0.002
    with pytest.raises(ConfigError, match="not_a_field"):
        TrainConfig.from_flat({"optimizer": "adam", "not_a_field": 1})


# --- training runs --------------------------------------------------------------------------------


def test_records_have_every_metric_and_follow_the_schedule(digits_data: ImageData) -> None:
    config = _config(epochs=3)
    records = list(fit(config, digits_data))
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert [r["status"] for r in records] == ["running", "running", "complete"]
    for k, record in enumerate(records, start=1):
        assert set(record) == RECORD_KEYS
        assert record["total_epochs"] == 3
        assert record["lr"] == pytest.approx(taso_lr(k, 3, lr_initial=0.05), rel=1e-12)
        for key in ("train_loss", "val_loss", "test_loss"):
            assert math.isfinite(record[key]) and record[key] > 0
        for key in ("train_acc", "val_acc", "test_acc"):
            assert 0.0 <= record[key] <= 1.0
        assert record["epoch_seconds"] > 0 and record["images_per_second"] > 0
    assert records[-1]["train_loss"] < records[0]["train_loss"]


def test_no_validation_keys_without_a_validation_split() -> None:
    records = list(fit(_config(epochs=1, val_fraction=0.0, train_limit=200)))
    assert "val_acc" not in records[0] and "val_loss" not in records[0]
    assert records[0]["status"] == "complete"


def test_same_seed_same_metrics_other_seed_other_metrics(digits_data: ImageData) -> None:
    first = _without_timings(list(fit(_config(seed=3), digits_data)))
    again = _without_timings(list(fit(_config(seed=3), digits_data)))
    other = _without_timings(list(fit(_config(seed=4), digits_data)))
    assert first == again
    assert [r["train_loss"] for r in first] != [r["train_loss"] for r in other]


@pytest.mark.parametrize("via_file", [False, True], ids=["in_memory", "torch_save"])
def test_resumed_run_matches_a_run_never_stopped(
    digits_data: ImageData, tmp_path: Path, via_file: bool
) -> None:
    config = _config(epochs=4, seed=1)
    uninterrupted = _without_timings(list(fit(config, digits_data)))

    stopped = Run(config, digits_data)
    first_half = [stopped.step_epoch(), stopped.step_epoch()]
    state = stopped.state_dict()
    del stopped
    if via_file:
        path = tmp_path / "run.pt"
        torch.save(state, path)
        state = torch.load(path, map_location="cpu", weights_only=True)
    torch.manual_seed(999)  # global RNG noise between stop and resume must not matter

    resumed = Run(config, digits_data, state)
    assert resumed.epoch == 2 and resumed.status == "running"
    second_half = list(fit(config, digits_data, state))
    assert _without_timings(first_half + second_half) == uninterrupted
    assert second_half[-1]["status"] == "complete"


def test_resume_with_per_step_schedule(digits_data: ImageData) -> None:
    config = _config(epochs=2, seed=2, schedule_granularity="step")
    uninterrupted = _without_timings(list(fit(config, digits_data)))
    stopped = Run(config, digits_data)
    first = stopped.step_epoch()
    second = list(fit(config, digits_data, stopped.state_dict()))
    assert _without_timings([first, *second]) == uninterrupted
    steps = len(stopped.train_batches)
    # per step, the lr in force at the first step of epoch e is update (e - 1) * steps + 1 of 2 * steps
    assert first["lr"] == pytest.approx(taso_lr(1, 2 * steps, lr_initial=0.05), rel=1e-12)
    assert second[0]["lr"] == pytest.approx(
        taso_lr(steps + 1, 2 * steps, lr_initial=0.05), rel=1e-12
    )


def test_a_baseline_recipe_updates_its_lr_every_step_by_default(digits_data: ImageData) -> None:
    run = Run(_config(optimizer="sgd_linear", epochs=2), digits_data)
    steps = len(run.train_batches)  # 1294 training images // 64 = 20 full batches
    assert steps == 20
    assert (run.scheduler.granularity, run.scheduler.total_updates) == ("step", 40)
    record = run.step_epoch()
    assert record["lr"] == 0.05  # update 1: p = 0
    # after one epoch 20 updates are done; update 21 of 40 is in force: p = 20/39, lr = 0.05 * 19/39
    assert run.scheduler.current_update() == 21
    assert run.current_lr() == pytest.approx(0.024358974358974, rel=1e-12)
    # per epoch (asked for) the second epoch would be the plan's last update, at lr_final 0
    per_epoch = Run(
        _config(optimizer="sgd_linear", epochs=2, schedule_granularity="epoch"), digits_data
    )
    per_epoch.step_epoch()
    assert per_epoch.scheduler.granularity == "epoch" and per_epoch.current_lr() == 0.0
    # TASO keeps the paper's once-per-epoch update: after epoch 1 the lr is Eq. (1) at k = 2 of 2
    taso = Run(_config(optimizer="taso", epochs=2), digits_data)
    taso.step_epoch()
    assert taso.scheduler.granularity == "epoch"
    assert taso.current_lr() == pytest.approx(taso_lr(2, 2, lr_initial=0.05), rel=1e-15)


def test_last_step_of_a_baseline_plan_runs_at_lr_final() -> None:
    config = _config(
        optimizer="sgd_cosine",
        epochs=1,
        hparams={"lr_final": 0.001},
        train_limit=320,
        val_fraction=0.0,
    )
    run = Run(config)  # loads digits itself, so train_limit applies
    lrs: list[float] = []
    # the lr each optimizer step uses, read just before the step
    run.optimizer.register_step_pre_hook(
        lambda optimizer, *_: lrs.append(optimizer.param_groups[0]["lr"])
    )
    run.step_epoch()
    # 320 images // 64 = 5 steps, p = 0, 1/4, 1/2, 3/4, 1: 0.001 + 0.049 (1 + cos(pi p)) / 2 with
    # cos(pi/4) = 0.70710678: 0.05, 0.001 + 0.049 * 0.85355339, 0.0255, 0.001 + 0.049 * 0.14644661, 0.001
    assert lrs == pytest.approx([0.05, 0.04282411614, 0.0255, 0.00817588386, 0.001], rel=1e-9)
    assert lrs[-1] == pytest.approx(0.001, abs=1e-15)


def test_state_dict_records_the_config(digits_data: ImageData) -> None:
    config = _config(epochs=1)
    run = Run(config, digits_data)
    run.step_epoch()
    state = run.state_dict()
    assert state["epoch"] == 1 and state["status"] == "complete"
    assert TrainConfig.from_flat(state["config"]) == config
    with pytest.raises(RuntimeError, match="complete"):
        run.step_epoch()


def test_diverging_run_ends_with_status_diverged(digits_data: ImageData) -> None:
    config = _config(optimizer="sgd", hparams={"lr": 1e6}, epochs=5)
    records = list(fit(config, digits_data))  # no exception
    assert records[-1]["status"] == "diverged"
    assert len(records) < 5
    assert not math.isfinite(records[-1]["train_loss"])
    assert all(r["status"] == "running" for r in records[:-1])


def test_lenet5_taso_on_digits_reaches_95_percent(digits_data: ImageData) -> None:
    # the paper's defaults (lr 0.05, alpha 25, beta 0.7), 20 epochs
    records = list(fit(_config(epochs=20, seed=0), digits_data))
    assert len(records) == 20 and records[-1]["status"] == "complete"
    assert records[-1]["test_acc"] >= 0.95
    # TASO's late decay: the last lr is close to lr_final = 0.05 / 20
    assert records[-1]["lr"] == pytest.approx(0.0025, rel=0.05)
