"""Schedule-Free SGD and AdamW: the recipes build PyPI's schedulefree optimizers with the fields the
recipes name (golden values: the same steps as the package's own optimizer), the loop switches their
modes, checkpoints resume them exactly, and stacked seeds give each seed's numbers."""

from __future__ import annotations

import io

import pytest
import schedulefree
import torch

from taso_tune.training.data.sets import load_dataset
from taso_tune.training.optimizers import build_optimizer, set_mode
from taso_tune.training.run import Run, TrainConfig
from taso_tune.training.seeds import SeedRuns
from taso_tune.training.stacked import StackedRuns

TIMINGS = ("epoch_seconds", "images_per_second")


def _tiny() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))


def _steps(model: torch.nn.Module, optimizer: torch.optim.Optimizer, n: int = 12) -> list:
    generator = torch.Generator().manual_seed(1)
    optimizer.train()
    for _ in range(n):
        x, y = (
            torch.randn(16, 4, generator=generator),
            torch.randint(0, 3, (16,), generator=generator),
        )
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    optimizer.eval()
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize(
    ("recipe", "package_class", "kwargs"),
    [
        (
            "sgd_schedulefree",
            schedulefree.SGDScheduleFree,
            {"lr": 0.5, "momentum": 0.9, "weight_decay": 1e-4, "warmup_steps": 2},
        ),
        (
            "adamw_schedulefree",
            schedulefree.AdamWScheduleFree,
            {
                "lr": 0.01,
                "betas": (0.9, 0.999),
                "eps": 1e-8,
                "weight_decay": 0.0,
                "warmup_steps": 2,
            },
        ),
    ],
)
def test_the_recipes_step_as_the_package_does(recipe, package_class, kwargs):
    """10 epochs x 4 steps with warmup 0.05 is round(2.0) = 2 warmup steps, as given by hand."""
    ours_model, theirs_model = _tiny(), _tiny()
    ours, _ = build_optimizer(
        recipe, ours_model.parameters(), 10, {"lr": kwargs["lr"], "warmup": 0.05}, steps_per_epoch=4
    )
    assert type(ours) is package_class
    theirs = package_class(theirs_model.parameters(), **kwargs)
    for a, b in zip(_steps(ours_model, ours), _steps(theirs_model, theirs), strict=True):
        assert torch.equal(a, b)


def test_set_mode_leaves_other_optimizers_alone():
    model = _tiny()
    optimizer, _ = build_optimizer("taso", model.parameters(), 10, steps_per_epoch=4)
    set_mode(optimizer, training=False)  # SGD has no modes: nothing happens
    assert "train_mode" not in optimizer.param_groups[0]


@pytest.fixture(scope="module")
def digits():
    torch.set_num_threads(1)
    return load_dataset("digits", train_limit=240)


def _config(recipe: str, epochs: int = 3) -> TrainConfig:
    return TrainConfig(
        model="lenet5",
        dataset="digits",
        optimizer=recipe,
        epochs=epochs,
        batch_size=32,
        threads=1,
        hparams={"lr": 0.01 if recipe.startswith("adamw") else 0.5},
    )


def _drop_timings(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in TIMINGS}


@pytest.mark.parametrize("recipe", ["sgd_schedulefree", "adamw_schedulefree"])
def test_a_checkpoint_resumes_exactly(digits, recipe):
    whole = Run(_config(recipe), digits)
    expected = [_drop_timings(whole.step_epoch()) for _ in range(3)]
    first = Run(_config(recipe), digits)
    first.step_epoch()
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    resumed = Run(_config(recipe), digits, torch.load(buffer, weights_only=True))
    got = [_drop_timings(r) for r in (resumed.step_epoch(), resumed.step_epoch())]
    assert got == expected[1:]
    assert expected[-1]["train_loss"] < expected[0]["train_loss"]  # it learns


@pytest.mark.parametrize("recipe", ["sgd_schedulefree", "adamw_schedulefree"])
def test_stacked_seeds_give_the_numbers_of_separate_runs(digits, recipe):
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # as the stacked-seed equality tests: rounding 1e-16
    try:
        config = _config(recipe, epochs=2)
        separate = SeedRuns(config, [0, 1], digits)
        stacked = StackedRuns(config, [0, 1], digits)
        for _ in range(2):
            a, b = separate.step_epoch(), stacked.step_epoch()
            for seed in (0, 1):
                for key in ("train_loss", "val_loss", "test_loss"):
                    assert a[seed][key] == pytest.approx(b[seed][key], rel=1e-9), (seed, key)
                for key in ("train_acc", "val_acc", "test_acc"):
                    assert a[seed][key] == b[seed][key], (seed, key)
    finally:
        torch.set_default_dtype(before)


@pytest.mark.parametrize("recipe", ["sgd_schedulefree", "adamw_schedulefree"])
def test_the_free_space_check_measures_a_schedule_free_checkpoint(digits, recipe):
    """The driver's free-space estimate steps each configuration's optimizer once, as the loop does."""
    from taso_tune.tuning.preflight import checkpoint_bytes

    flat = {"model": "lenet5", "dataset": "digits", "optimizer": recipe, "epochs": 2, "seeds": [0]}
    assert checkpoint_bytes(flat, digits, cpus=1) > 100_000  # LeNet5's weights, z and averages
