"""``taso-tune optimizers``: the recipes, their defaults and schedules, read from the registry."""

from __future__ import annotations

import pytest

from taso_tune.cli import main
from taso_tune.training.optimizers import OPTIMIZERS


def test_lists_every_recipe_with_its_schedule_and_defaults(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["optimizers"]) == 0
    out = capsys.readouterr().out
    for name, recipe in OPTIMIZERS.items():
        assert f"{name}: {recipe.description}" in out
        assert f"torch.optim.{recipe.torch_class}, schedule {recipe.schedule}" in out
    assert "alpha=25.0, beta=0.7, lr_final=lr/20" in out  # TASO's defaults, as the paper gives them
    assert "fixed: amsgrad=True" in out


def test_one_recipe_and_an_unknown_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["optimizers", "sgd_wsd"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("sgd_wsd:") and "warmup=0.05" in out and "taso:" not in out
    assert main(["optimizers", "tasso"]) == 2
    err = capsys.readouterr().err
    assert "unknown optimizer" in err and "'tasso'" in err and "taso" in err


def test_train_help_points_at_a_command_that_exists(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "taso-tune optimizers" in capsys.readouterr().out
