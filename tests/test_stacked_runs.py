"""Seeds packed as one stacked model: the same numbers as separate runs, exact resume, one diverging
seed handled, BatchNorm statistics per seed, the switch, and a real sweep that uses it."""

from __future__ import annotations

import io
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from sweep_helpers import result_records, trial_dirs, write_space

from taso_tune.cli import main
from taso_tune.core.errors import ConfigError
from taso_tune.spaces import load_space
from taso_tune.training.data.sets import load_dataset
from taso_tune.training.device import DeviceSetup
from taso_tune.training.packing import STACKED_ON_CUDA, resolve_packing, seed_training
from taso_tune.training.run import TrainConfig
from taso_tune.training.seeds import SeedRuns
from taso_tune.training.stacked import StackedRuns
from taso_tune.tuning.trainable import checkpoint_due

SEEDS = [0, 1, 2]
METRIC_KEYS = ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread before anything is loaded or built, as in a trial worker with 1 CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def digits(one_thread):
    return load_dataset("digits")


@pytest.fixture
def float64():
    """Models, batches and losses in float64. In float32 the batched kernels round differently from
    the per-seed ones (about 1e-7 a step) and training amplifies that: after 2-3 epochs the runs part
    by up to a few images, by an amount that depends on the processor and the memory layout. In
    float64 the rounding is 1e-16, so the stack must give each seed's numbers to 1e-9 or better; a
    real difference in the maths (a seed's gradient, its data order, its BatchNorm statistics)
    shows at once."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


def lenet(epochs: int = 3, **hparams) -> TrainConfig:
    return TrainConfig(
        model="lenet5",
        dataset="digits",
        optimizer="taso",
        epochs=epochs,
        threads=1,
        hparams=hparams,
    )


def _same(a: dict, b: dict, rel: float = 1e-9) -> None:
    """The same record up to float64 rounding: losses to ``rel``, accuracies exactly."""
    for key in METRIC_KEYS:
        if key.endswith("_acc"):
            assert a[key] == b[key], key
        else:
            assert a[key] == pytest.approx(b[key], rel=rel), key
    assert a["epoch"] == b["epoch"] and a["status"] == b["status"]


def test_lenet5_seeds_give_the_numbers_of_separate_runs(digits, float64) -> None:
    separate, stacked = SeedRuns(lenet(), SEEDS, digits), StackedRuns(lenet(), SEEDS, digits)
    for _ in range(3):
        a, b = separate.step_epoch(), stacked.step_epoch()
        for seed in SEEDS:
            _same(a[seed], b[seed])  # measured: 1e-15 relative on the losses after 3 epochs
    assert stacked.status == "complete" and stacked.epoch == 3


@pytest.mark.parametrize("model", ["resnet18", "vgg19"])
def test_batchnorm_models_at_tiny_size_and_their_running_statistics_per_seed(
    model: str, float64
) -> None:
    """Tiny: 16 training images (one step an epoch), 4 validation and 16 test images, in float64
    (the full-size networks at 28x28 in float64 cost about a minute a model on two cores)."""
    data = load_dataset("synthetic", train_limit=20, val_fraction=0.2)
    data = replace(data, x_test=data.x_test[:16], y_test=data.y_test[:16])
    config = TrainConfig(
        model=model,
        dataset="synthetic",
        optimizer="taso",
        epochs=2,
        batch_size=16,
        threads=1,
        train_limit=20,
        val_fraction=0.2,
        hparams={"lr": 0.002},
    )
    separate, stacked = SeedRuns(config, [0, 1], data), StackedRuns(config, [0, 1], data)
    for _ in range(2):
        a, b = separate.step_epoch(), stacked.step_epoch()
        for seed in (0, 1):
            _same(a[seed], b[seed])  # measured: 1e-15 relative
    for i, seed in enumerate((0, 1)):
        for name, value in separate.runs[
            seed
        ].module.named_buffers():  # every BatchNorm, every seed
            if value.is_floating_point():
                torch.testing.assert_close(stacked.buffers[name][i], value, rtol=1e-9, atol=1e-12)
            else:
                assert (
                    int(stacked.buffers[name][i]) == int(value) == 2
                )  # 1 step x 2 epochs, per seed
    first = next(n for n in stacked.buffers if n.endswith("running_mean"))
    assert not torch.allclose(
        stacked.buffers[first][0], stacked.buffers[first][1]
    )  # each seed its own


@pytest.mark.parametrize("model", ["resnet18", "vgg19"])
def test_batchnorm_models_under_bf16_autocast(model: str) -> None:
    """The stack under bf16 autocast (what CUDA trains in), here on the CPU, one epoch at the tiny
    size above: the same training loss at the same initial weights, and the same held-out numbers
    after one optimizer step, as each seed alone.

    bf16 keeps 8 significant bits, a relative rounding of up to 2^-9 (0.2%) per operation, and the
    stack's batched kernels (convolutions grouped by seed, BatchNorm's vmap rule) round in other
    places than the per-seed kernels: measured up to 0.2% apart on the training loss and 0.01% on
    the held-out losses, so the losses must agree to 1%, far below what a seed trained on another
    seed's data or gradient would show (float64 above checks that exactly). An accuracy on 16
    images may flip one image whose two top logits are closer than that rounding (measured: none).
    The autocast is entered around every forward, as on CUDA: one held open across steps would keep
    its bf16 copies of the weights from before the step."""
    data = load_dataset("synthetic", train_limit=20, val_fraction=0.2)
    data = replace(data, x_test=data.x_test[:16], y_test=data.y_test[:16])
    config = TrainConfig(
        model=model,
        dataset="synthetic",
        optimizer="taso",
        epochs=1,
        batch_size=16,
        threads=1,
        train_limit=20,
        val_fraction=0.2,
        hparams={"lr": 0.002},
    )
    bf16 = DeviceSetup(torch.device("cpu"), torch.contiguous_format, torch.bfloat16)
    separate = SeedRuns(config, [0, 1], data, setup=bf16).step_epoch()
    stacked = StackedRuns(config, [0, 1], data, setup=bf16).step_epoch()
    assert not torch.is_autocast_enabled("cpu")  # each forward's autocast ended with it
    for seed in (0, 1):
        a, b = separate[seed], stacked[seed]
        for key in METRIC_KEYS:
            if key.endswith("_acc"):
                assert a[key] == pytest.approx(b[key], abs=1 / 16 + 1e-12), (seed, key)
            else:
                assert a[key] == pytest.approx(b[key], rel=1e-2), (seed, key)
        assert a["status"] == b["status"] == "complete"


def test_resume_is_exact(digits) -> None:
    uninterrupted = StackedRuns(lenet(), SEEDS, digits)
    expected = [uninterrupted.step_epoch() for _ in range(3)]
    first = StackedRuns(lenet(), SEEDS, digits)
    first.step_epoch()
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    resumed = StackedRuns(lenet(), SEEDS, digits, torch.load(buffer, weights_only=True))
    assert resumed.epoch == 1
    for epoch in (1, 2):
        got = resumed.step_epoch()
        for seed in SEEDS:
            assert {k: got[seed][k] for k in METRIC_KEYS} == {
                k: expected[epoch][seed][k] for k in METRIC_KEYS
            }


def test_a_checkpoint_of_another_packing_is_refused(digits) -> None:
    separate = SeedRuns(lenet(), SEEDS, digits)
    separate.step_epoch()
    with pytest.raises(ConfigError, match="seed_packing"):
        StackedRuns(lenet(), SEEDS, digits, separate.state_dict())
    stacked = StackedRuns(lenet(), SEEDS, digits)
    with pytest.raises(ConfigError, match="other seeds"):
        StackedRuns(lenet(), [0, 1], digits, stacked.state_dict())


def test_one_diverging_seed_leaves_the_others_as_they_were(digits) -> None:
    clean = StackedRuns(lenet(), SEEDS, digits)
    broken = StackedRuns(lenet(), SEEDS, digits)
    clean.step_epoch(), broken.step_epoch()
    with torch.no_grad():  # seed 1's weights blow up (as with a far too high learning rate)
        for tensor in broken.params.values():
            tensor[1].fill_(float("inf"))
    for epoch in (2, 3):
        a, b = clean.step_epoch(), broken.step_epoch()
        assert (
            b[1]["status"] == "diverged" and b[1]["epoch"] == 2
        )  # stopped at the epoch it diverged
        assert not math.isfinite(b[1]["train_loss"]) or b[1]["train_loss"] > 1e4
        for seed in (0, 2):
            assert {k: a[seed][k] for k in METRIC_KEYS} == {k: b[seed][k] for k in METRIC_KEYS}, (
                epoch
            )
        assert broken.status == ("running" if epoch < 3 else "complete")
    assert broken.statuses == {0: "complete", 1: "diverged", 2: "complete"}


def test_packing_resolution_and_bad_values() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert (
        resolve_packing("auto", cpu, 3) == "separate"
        and resolve_packing("auto", cuda, 3) == "stacked"
    )
    assert (
        resolve_packing("stacked", cpu, 3) == "stacked"
        and resolve_packing("stacked", cpu, 1) == "separate"
    )
    assert resolve_packing("separate", cuda, 3) == "separate"
    with pytest.raises(ConfigError, match="choose from|auto"):
        resolve_packing("packed", cpu, 3)
    with pytest.raises(ConfigError, match="compile"):
        StackedRuns(TrainConfig(compile=True, epochs=1), [0, 1])


def test_auto_stacks_only_what_cannot_break_or_slow_a_trial() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")  # the resolver needs no GPU
    assert STACKED_ON_CUDA == {"lenet5"}  # no model measured faster stacked on a GPU yet
    assert resolve_packing("auto", cuda, 3, model="lenet5", compile=False) == "stacked"
    for model in ("vgg19", "resnet18"):  # BatchNorm, adaptive pooling: unmeasured on a GPU
        assert resolve_packing("auto", cuda, 3, model=model, compile=False) == "separate"
        assert resolve_packing("stacked", cuda, 3, model=model, compile=False) == "stacked"
    # auto never combines the stack with compile, which it does not support
    assert resolve_packing("auto", cuda, 3, model="lenet5", compile=True) == "separate"
    assert resolve_packing("auto", cpu, 3, model="lenet5", compile=True) == "separate"
    assert resolve_packing("separate", cuda, 3, model="lenet5", compile=True) == "separate"
    # asked for by name it stays an error, when the stack is built (and in the space, below)
    assert resolve_packing("stacked", cpu, 2, model="lenet5", compile=True) == "stacked"
    with pytest.raises(ConfigError, match="compile"):
        seed_training(TrainConfig(compile=True, epochs=1), [0, 1], packing="stacked")


def test_one_factory_builds_the_seeds_of_a_trial(digits) -> None:
    config = lenet(epochs=1)
    auto = seed_training(replace(config, device="cpu"), SEEDS, digits)
    assert isinstance(auto, SeedRuns) and auto.packing == "separate"  # auto on the CPU
    stacked = seed_training(config, SEEDS, digits, packing="stacked")
    assert isinstance(stacked, StackedRuns) and stacked.packing == "stacked"
    one = seed_training(config, [4], digits, packing="stacked")
    assert isinstance(one, SeedRuns) and one.packing == "separate"  # one seed trains alone
    with pytest.raises(ConfigError, match="seed_packing"):  # a stacked checkpoint, resumed separate
        seed_training(config, SEEDS, digits, stacked.state_dict(), packing="separate")


def test_stacked_with_compile_is_refused_before_ray_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    in_train = write_space(
        tmp_path / "train.yaml",
        [{"optimizer": "taso"}],
        seeds=2,
        seed_packing="stacked",
        train={"compile": True},
    )
    assert main(["sweep", str(in_train), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "train.compile" in err and "True" in err and "seed_packing" in err, err
    in_block = write_space(
        tmp_path / "block.yaml",
        [{"optimizer": "taso"}, {"optimizer": "adam", "compile": True}],
        seeds=2,
    )
    assert main(["sweep", str(in_block), "--seed-packing", "stacked", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "blocks[1].compile" in err and str(in_block) in err, err
    # auto falls back to separate, and one seed per trial trains alone: both load
    assert load_space(str(in_block)).seed_packing == "auto"
    alone = write_space(
        tmp_path / "alone.yaml",
        [{"optimizer": "taso"}],
        seeds=1,
        seed_packing="stacked",
        train={"compile": True},
    )
    assert load_space(str(alone)).seed_packing == "stacked"


def test_checkpoint_rule_on_epochs_and_time() -> None:
    assert checkpoint_due(2, 1, 0.0, 0.0, last=False)  # off: every epoch
    assert not checkpoint_due(3, 2, 100.0, 0.0, last=False)  # not a checkpoint epoch
    assert not checkpoint_due(2, 1, 4.9, 5.0, last=False)  # the last one is too young
    assert checkpoint_due(2, 1, 5.0, 5.0, last=False)
    assert checkpoint_due(7, 5, 0.0, 60.0, last=True)  # the last epoch's is always written


def test_space_and_flag_validate_the_packing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_space(
        tmp_path / "s.yaml",
        [{"optimizer": "taso"}],
        seeds=2,
        seed_packing="stacked",
        checkpoint_min_seconds=5,
    )
    spec = load_space(str(path))
    assert spec.seed_packing == "stacked" and spec.checkpoint_min_seconds == 5
    assert spec.to_dict()["seed_packing"] == "stacked"
    bad = write_space(tmp_path / "bad.yaml", [{"optimizer": "taso"}], seed_packing="packed")
    assert main(["sweep", str(bad), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "seed_packing" in err and "'packed'" in err and str(bad) in err, err
    assert main(["sweep", str(path), "--seed-packing", "vmap", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "--seed-packing" in err and "separate" in err, err
    slow = write_space(tmp_path / "slow.yaml", [{"optimizer": "taso"}], checkpoint_min_seconds=-1)
    assert main(["sweep", str(slow), "--dry-run"]) == 2
    assert "checkpoint_min_seconds" in capsys.readouterr().err


@pytest.mark.ray
def test_a_sweep_with_stacked_seeds_on_real_ray(tmp_path: Path, ray_cleanup, capsys) -> None:
    path = write_space(
        tmp_path / "s.yaml",
        [{"optimizer": "taso", "lr": {"grid": [0.02, 0.05]}}],
        seeds=2,
        train={"epochs": 2},
        max_concurrent=2,
    )
    storage = tmp_path / "runs"
    assert (
        main(
            [
                "sweep",
                str(path),
                "--storage",
                str(storage),
                "--name",
                "st",
                "--seed-packing",
                "stacked",
                "--no-report",
            ]
        )
        == 0
    )
    dirs = trial_dirs(storage / "st")
    assert len(dirs) == 2
    for d in dirs:
        records = result_records(d)
        assert [r["epoch"] for r in records] == [1, 2] and set(records[-1]["per_seed"]) == {
            "0",
            "1",
        }
        per_seed = records[-1]["per_seed"].values()
        assert all(r["status"] == "complete" for r in per_seed)
        # stacked: one step for both seeds, so they report one shared time (separate runs time their own)
        assert len({r["epoch_seconds"] for r in per_seed}) == 1


@pytest.mark.parametrize(
    "optimizer", ["adam", "amsgrad", "adamw_cosine", "rmsprop", "adagrad", "sgd_cosine"]
)
def test_one_optimizer_step_over_the_stack_is_each_seeds_step(
    digits, float64, optimizer: str
) -> None:
    """Every recipe's optimizer is elementwise (none clips or scales by a norm), per-step schedules
    included, so one step over the stack is each seed's own step, at each optimizer's defaults.
    (In float32 Adagrad's first step, g / (|g| + 1e-10), turns a rounding-sized gradient into a
    full step, so there the runs part visibly; in float64 they do not.)"""
    config = TrainConfig(model="lenet5", dataset="digits", optimizer=optimizer, epochs=2, threads=1)
    separate, stacked = SeedRuns(config, [0, 1], digits), StackedRuns(config, [0, 1], digits)
    for _ in range(config.epochs):
        want, got = separate.step_epoch(), stacked.step_epoch()
        for seed in (0, 1):
            _same(got[seed], want[seed])
