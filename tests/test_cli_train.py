"""`taso-tune train` and `taso-tune schedule` through ``cli.main``: files written, errors, the table."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml

from taso_tune.cli import main
from taso_tune.cli.train import parse_assignments
from taso_tune.core.errors import ConfigError
from taso_tune.schedules.maths import taso_lr
from taso_tune.training.run import TrainConfig

FAST = ["--device", "cpu", "--threads", "1", "--train-limit", "300"]


def test_train_writes_metrics_and_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    argv = [
        "train",
        "--epochs",
        "2",
        "--seed",
        "5",
        "--lr",
        "0.1",
        "--set",
        "momentum=0.5",
        "--out",
        str(out),
    ]
    assert main(argv + FAST) == 0

    with open(out / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    for column in (
        "epoch",
        "lr",
        "train_loss",
        "train_acc",
        "val_loss",
        "val_acc",
        "test_acc",
        "status",
    ):
        assert column in rows[0]
    assert float(rows[0]["lr"]) == pytest.approx(taso_lr(1, 2, lr_initial=0.1), rel=1e-12)
    assert 0 <= float(rows[-1]["test_acc"]) <= 1
    assert rows[-1]["status"] == "complete"

    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["epochs"] == 2 and saved["seed"] == 5 and saved["train_limit"] == 300
    assert saved["lr"] == 0.1 and saved["momentum"] == 0.5 and saved["alpha"] == 25.0
    assert TrainConfig.from_flat(saved).to_flat() == saved

    printed = capsys.readouterr().out
    assert "epoch   1/2" in printed and "complete" in printed and str(out) in printed
    assert "lenet5 (61,706 parameters)" in printed


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        (["--alpha", "0"], "alpha"),
        (["--beta", "1.5"], "beta"),
        (["--lr", "-1"], "lr"),
        (["--model", "alexnet"], "model"),
        (["--optimizer", "lamb"], "optimizer"),
        (["--dataset", "imagenet"], "dataset"),
        (["--epochs", "0"], "epochs"),
        (["--batch-size", "0"], "batch_size"),
        (["--val-fraction", "1.0"], "val_fraction"),
        (["--dataset", "mnist"], "data_root"),
        (["--dataset", "mnist", "--data-root", "missing-folder"], "data_root"),
        (["--set", "badfield=1"], "badfield"),
        (["--set", "momentum"], "--set"),
        (["--set", "milestones=[0.5"], "--set"),
        (["--set", "nesterov=1"], "nesterov"),
    ],
)
def test_train_bad_input_exits_2_with_one_line_and_no_files(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    field: str,
) -> None:
    monkeypatch.chdir(tmp_path)  # so a default output folder would show up here too
    out = tmp_path / "out"
    assert main(["train", "--epochs", "1", "--out", str(out), *FAST, *extra]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("taso-tune train: error: ")
    assert field in lines[0]
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_missing_data_root_error_says_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "data"
    argv = [
        "train",
        "--dataset",
        "mnist",
        "--data-root",
        str(missing),
        "--out",
        str(tmp_path / "o"),
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "MNIST/raw" in err and "--download" in err


def test_parse_assignments_reads_yaml_scalars() -> None:
    assert parse_assignments(
        ["momentum=0", "nesterov=true", "milestones=[0.5, 0.75]", "lr=0.1"]
    ) == {
        "momentum": 0,
        "nesterov": True,
        "milestones": [0.5, 0.75],
        "lr": 0.1,
    }
    assert parse_assignments(None) == {}


def test_parse_assignments_reads_exponent_numbers_without_a_dot() -> None:
    # plain YAML 1.1 would keep "5e-4" as a string and the optimizer would reject it
    got = parse_assignments(
        ["weight_decay=5e-4", "lr=1E-3", "eps=-2e+1", "milestones=[5e-1, 0.75]"]
    )
    assert got == {"weight_decay": 5e-4, "lr": 1e-3, "eps": -20.0, "milestones": [0.5, 0.75]}
    assert parse_assignments(["name=e5", "other=1e"]) == {"name": "e5", "other": "1e"}


@pytest.mark.parametrize("item", ["=1", "momentum", "milestones=[0.5", "lr=: x"])
def test_parse_assignments_rejects_malformed_items(item: str) -> None:
    with pytest.raises(ConfigError, match="--set"):
        parse_assignments([item])


def test_train_accepts_exponent_notation(tmp_path: Path) -> None:
    out = tmp_path / "run"
    argv = ["train", "--epochs", "1", "--set", "weight_decay=5e-4", "--out", str(out), *FAST]
    assert main(argv) == 0
    assert yaml.safe_load((out / "config.yaml").read_text())["weight_decay"] == 5e-4


def _table(text: str) -> list[tuple[int, float]]:
    lines = text.strip().splitlines()
    assert lines[0].split() == ["epoch", "lr"]
    return [(int(k), float(v)) for k, v in (line.split() for line in lines[1:])]


def test_schedule_table_matches_taso_lr(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            ["schedule", "--epochs", "30", "--lr-initial", "0.1", "--alpha", "50", "--beta", "0.5"]
        )
        == 0
    )
    rows = _table(capsys.readouterr().out)
    assert [k for k, _ in rows] == list(range(1, 31))
    for k, lr in rows:
        assert lr == pytest.approx(taso_lr(k, 30, lr_initial=0.1, alpha=50, beta=0.5), rel=1e-5)


def test_schedule_defaults_and_lr_final(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schedule"]) == 0
    rows = _table(capsys.readouterr().out)
    assert len(rows) == 100
    assert rows[69][1] == pytest.approx(
        0.0275, rel=1e-5
    )  # k = beta * k_t: lr_initial/2 + lr_initial/20
    assert main(["schedule", "--epochs", "10", "--lr-final", "0"]) == 0
    rows = _table(capsys.readouterr().out)
    assert rows[-1][1] == pytest.approx(taso_lr(10, 10, lr_initial=0.05, lr_final=0.0), rel=1e-5)


def test_schedule_warns_on_heuristic_and_rejects_bad_values(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.warns(UserWarning, match="heuristic"):
        assert main(["schedule", "--epochs", "10", "--alpha", "10", "--beta", "0.3"]) == 0
    capsys.readouterr()
    assert main(["schedule", "--alpha", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "alpha" in err[0]
    assert main(["schedule", "--lr-initial", "-1"]) == 2
    assert "lr_initial" in capsys.readouterr().err
    assert main(["schedule", "--epochs", "0"]) == 2
    captured = capsys.readouterr()
    assert "epochs" in captured.err and captured.out == ""


@pytest.mark.parametrize(
    "argv", [["--help"], ["train", "--help"], ["schedule", "--help"], ["--version"]]
)
def test_help_and_version_exit_0(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 0
    assert "taso-tune" in capsys.readouterr().out


def test_help_lists_the_train_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    for option in ("--model", "--dataset", "--optimizer", "--alpha", "--beta", "--set", "--out"):
        assert option in text


def test_argparse_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["train", "--epochs", "many"])
    assert info.value.code == 2
    assert "--epochs" in capsys.readouterr().err
