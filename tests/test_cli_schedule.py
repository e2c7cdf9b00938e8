"""`taso-tune schedule NAME`: any schedule, per epoch or per step, as a table or CSV; and the
granularity options of `taso-tune train`."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from taso_tune.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _csv_rows(text: str) -> list[dict[str, str]]:
    lines = text.splitlines()
    assert lines[0] == "epoch,step,lr"
    return list(csv.DictReader(io.StringIO(text)))


def _lrs(text: str) -> list[float]:
    return [float(row["lr"]) for row in _csv_rows(text)]


def test_any_schedule_per_epoch(capsys: pytest.CaptureFixture[str]) -> None:
    # cosine over 4 epochs: p = 0, 1/3, 2/3, 1 -> (1 + cos(pi p)) / 2 = 1, 0.75, 0.25, 0
    assert main(["schedule", "cosine", "--epochs", "4", "--lr-initial", "1", "--csv"]) == 0
    rows = _csv_rows(capsys.readouterr().out)
    assert [(r["epoch"], r["step"]) for r in rows] == [("1", ""), ("2", ""), ("3", ""), ("4", "")]
    assert [float(r["lr"]) for r in rows] == pytest.approx([1.0, 0.75, 0.25, 0.0], abs=1e-15)
    # the plain table: epoch and lr columns, as for TASO
    assert main(["schedule", "linear", "--epochs", "3", "--lr-initial", "1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split() == ["epoch", "lr"]
    assert [line.split() for line in lines[1:]] == [["1", "1"], ["2", "0.5"], ["3", "0"]]


def test_wsd_per_step_ends_at_lr_final(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schedule", "wsd", "--epochs", "3", "--steps-per-epoch", "10", "--csv"]) == 0
    rows = _csv_rows(capsys.readouterr().out)
    assert len(rows) == 30
    assert (rows[0]["epoch"], rows[0]["step"], rows[-1]["epoch"], rows[-1]["step"]) == (
        "1",
        "1",
        "3",
        "10",
    )
    # 29 intervals: warmup round(1.45) = 1 update at 0.05 / 2, decay round(5.8) = 6 updates to 0
    lrs = [float(r["lr"]) for r in rows]
    assert lrs[0] == 0.025 and lrs[1] == 0.05 and lrs[23] == 0.05
    assert lrs[24:] == pytest.approx([0.05 * k / 6 for k in (5, 4, 3, 2, 1, 0)], abs=1e-15)
    assert lrs[-1] == 0.0
    # with lr_final set, it ends there
    assert (
        main(
            [
                "schedule",
                "wsd",
                "--epochs",
                "3",
                "--steps-per-epoch",
                "10",
                "--csv",
                "--lr-final",
                "0.001",
            ]
        )
        == 0
    )
    assert _lrs(capsys.readouterr().out)[-1] == 0.001


def test_per_step_table_has_a_step_column(capsys: pytest.CaptureFixture[str]) -> None:
    # linear over 2 epochs x 3 steps: p = 0, 0.2, ..., 1 -> 0.1 (1 - p)
    assert (
        main(
            ["schedule", "linear", "--epochs", "2", "--steps-per-epoch", "3", "--lr-initial", "0.1"]
        )
        == 0
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split() == ["epoch", "step", "lr"]
    got = [(int(e), int(s), float(lr)) for e, s, lr in (line.split() for line in lines[1:])]
    assert got == [(1, 1, 0.1), (1, 2, 0.08), (1, 3, 0.06), (2, 1, 0.04), (2, 2, 0.02), (2, 3, 0.0)]


def test_set_gives_the_schedules_parameters(capsys: pytest.CaptureFixture[str]) -> None:
    # step over 4 epochs, milestones (0.3, 0.6), gamma 0.5: p = 0, 1/3, 2/3, 1 passes 0, 1, 2, 2
    argv = [
        "schedule",
        "step",
        "--epochs",
        "4",
        "--lr-initial",
        "1",
        "--csv",
        "--set",
        "milestones=[0.3, 0.6]",
        "--set",
        "gamma=0.5",
    ]
    assert main(argv) == 0
    assert _lrs(capsys.readouterr().out) == [1.0, 0.5, 0.25, 0.25]
    # TASO's own flags and --set agree: Eq. (1) at k = beta * k_t is lr_initial / 2 + lr_final
    assert (
        main(["schedule", "--epochs", "10", "--set", "beta=0.5", "--set", "alpha=20", "--csv"]) == 0
    )
    via_set = _lrs(capsys.readouterr().out)
    assert (
        main(["schedule", "taso", "--epochs", "10", "--beta", "0.5", "--alpha", "20", "--csv"]) == 0
    )
    assert _lrs(capsys.readouterr().out) == via_set
    assert via_set[4] == pytest.approx(0.025 + 0.0025, rel=1e-15)


def test_taso_stays_the_default_schedule(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schedule", "--epochs", "100", "--csv"]) == 0
    rows = _csv_rows(capsys.readouterr().out)
    assert len(rows) == 100 and float(rows[69]["lr"]) == 0.0275  # exactly Eq. (1) at k = 70


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (["exponential"], "schedule"),
        (["cosine", "--set", "alpha=3"], "alpha"),
        (["cosine", "--alpha", "3"], "alpha"),
        (["constant", "--lr-final", "0"], "lr_final"),
        (["cosine", "--lr-final", "0.05"], "lr_final"),  # not below lr_initial 0.05
        (["step", "--set", "gamma=.inf"], "gamma"),
        (["step", "--set", "gamma=2"], "gamma"),
        (["step", "--set", "milestones=[0.75, 0.5]"], "milestones"),
        (["step", "--set", "milestones=0.5"], "milestones"),
        (["wsd", "--set", "warmup=0.5", "--set", "decay=0.6"], "decay"),
        (["wsd", "--set", "warmup=.nan"], "warmup"),
        (["--lr-initial", "inf"], "lr_initial"),
        (["cosine", "--epochs", "0"], "epochs"),
        (["cosine", "--steps-per-epoch", "0"], "steps_per_epoch"),
        (["--set", "beta"], "--set"),
    ],
)
def test_schedule_bad_input_exits_2_with_one_line(
    argv: list[str], field: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["schedule", *argv]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("taso-tune schedule: error: ")
    assert field in lines[0]
    assert captured.out == ""


def test_unknown_schedule_lists_the_names(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schedule", "exponential"]) == 2
    err = capsys.readouterr().err
    assert "valid choices: constant, cosine, linear, step, taso, wsd" in err


def test_schedule_help_lists_parameters_and_no_empty_defaults(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["schedule", "--help"])
    text = capsys.readouterr().out
    assert "wsd       lr_final=0.0, warmup=0.05, decay=0.2" in text
    assert "step      milestones=(0.5, 0.75), gamma=0.1" in text
    assert "(default: taso)" in text and "(default: 0.05)" in text and "(default: 100)" in text
    assert "(default: None)" not in text and "(default: False)" not in text


def test_piping_into_head_ends_quietly() -> None:
    # 100 000 rows: far more than a pipe buffer, so the writer meets the closed pipe
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    argv = [
        sys.executable,
        "-m",
        "taso_tune.cli",
        "schedule",
        "--epochs",
        "100",
        "--steps-per-epoch",
        "1000",
        "--csv",
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # what `head -1` does
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 0
    assert first == b"epoch,step,lr\n"
    assert err == b""


FAST = ["--device", "cpu", "--threads", "1", "--train-limit", "300", "--epochs", "1"]


@pytest.mark.parametrize(
    ("flags", "granularity"),
    [
        ([], "auto"),
        (["--schedule-per-step"], "step"),
        (["--schedule-granularity", "epoch"], "epoch"),
    ],
)
def test_train_granularity_flags(tmp_path: Path, flags: list[str], granularity: str) -> None:
    out = tmp_path / "run"
    assert main(["train", "--optimizer", "sgd_cosine", "--out", str(out), *FAST, *flags]) == 0
    assert yaml.safe_load((out / "config.yaml").read_text())["schedule_granularity"] == granularity


def test_train_rejects_an_unknown_granularity(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["train", "--schedule-granularity", "batch"])
    assert info.value.code == 2
    assert "--schedule-granularity" in capsys.readouterr().err
