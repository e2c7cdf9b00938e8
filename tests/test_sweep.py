"""Sweeps on real Ray: divergence, Optuna, and bad input refused early (the quickstart end to end is
in test_seed_trials.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sweep_helpers import write_space

from taso_tune.cli import main
from taso_tune.results.experiment import load_experiment

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.ray
def test_diverging_configuration_is_marked_and_the_sweep_goes_on(
    tmp_path: Path, ray_cleanup
) -> None:
    space = write_space(
        tmp_path / "space.yaml",
        [{"optimizer": "sgd", "lr": 2, "momentum": 0.9}, {"optimizer": "taso", "lr": 0.05}],
        train={"epochs": 3},
    )
    rc = main(["sweep", str(space), "--storage", str(tmp_path / "runs")])
    assert rc == 0
    trials = load_experiment(str(tmp_path / "runs" / "tiny")).trials.set_index("optimizer")
    assert trials.loc["sgd", "status"] == "diverged"
    assert trials.loc["sgd", "epochs_run"] < 3  # it stopped itself
    assert trials.loc["taso", "status"] == "complete"


@pytest.mark.ray
def test_optuna_search_with_seeds(tmp_path: Path, ray_cleanup) -> None:
    space = write_space(
        tmp_path / "space.yaml",
        [{"optimizer": "taso", "lr": {"loguniform": [0.01, 0.2]}, "beta": {"uniform": [0.5, 0.8]}}],
        name="opt",
        train={"epochs": 2},
        seeds=2,
        search={"type": "optuna", "num_samples": 2},
    )
    assert main(["sweep", str(space), "--storage", str(tmp_path / "runs")]) == 0
    trials = load_experiment(str(tmp_path / "runs" / "opt")).trials
    assert len(trials) == 4
    assert sorted(trials["seed"]) == [0, 0, 1, 1]
    assert (trials["status"] == "complete").all()
    assert trials["hp.lr"].between(0.01, 0.2).all()
    # each proposed configuration was trained with both seeds
    assert (trials.groupby("config_id")["seed"].nunique() == 2).all()


BAD_SPACES = {
    "unknown top-level key": ({"schedular": "asha"}, "schedular"),
    "unknown optimizer": ({"blocks": [{"optimizer": "adamax"}]}, "optimizer"),
    "unknown block field": ({"blocks": [{"optimizer": "taso", "momentm": 0.9}]}, "momentm"),
    "alpha <= 0": ({"blocks": [{"optimizer": "taso", "alpha": 0}]}, "alpha"),
    "beta outside (0, 1)": ({"blocks": [{"optimizer": "taso", "beta": 1.5}]}, "beta"),
    "negative lr": ({"blocks": [{"optimizer": "adam", "lr": -1}]}, "lr"),
    "empty grid": ({"blocks": [{"optimizer": "adam", "lr": {"grid": []}}]}, "lr"),
    "zero seeds": ({"seeds": 0}, "seeds"),
    "unknown model": ({"train": {"model": "alexnet"}}, "model"),
    "missing data root": (
        {"train": {"dataset": "mnist", "data_root": "/no/such/folder"}},
        "data_root",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_SPACES))
def test_bad_space_files_exit_2_and_start_nothing(tmp_path: Path, capsys, case: str) -> None:
    changes, field = BAD_SPACES[case]
    blocks = (
        changes.pop("blocks", [{"optimizer": "taso"}])
        if "blocks" in changes
        else [{"optimizer": "taso"}]
    )
    space = write_space(
        tmp_path / "bad.yaml", blocks, **{k: v for k, v in changes.items() if k != "blocks"}
    )
    storage = tmp_path / "runs"
    assert main(["sweep", str(space), "--storage", str(storage)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert field in err and "bad.yaml" in err
    assert not storage.exists()


BAD_FLAGS = {
    "no such file": (["sweep", "{tmp}/missing.yaml"], "missing.yaml"),
    "zero epochs": (["sweep", "{space}", "--epochs", "0"], "epochs"),
    "zero seeds flag": (["sweep", "{space}", "--seeds", "0"], "seeds"),
    "negative cpus": (["sweep", "{space}", "--cpus-per-trial", "-1"], "cpus"),
    "negative gpus": (["sweep", "{space}", "--gpus-per-trial", "-0.5"], "gpus"),
    "zero max concurrent": (["sweep", "{space}", "--max-concurrent", "0"], "--max-concurrent"),
    "grace period past epochs": (
        ["sweep", "{space}", "--scheduler", "asha", "--epochs", "1"],
        "grace_period",
    ),
    "space and defaults together": (["sweep", "{space}", "--defaults", "{space}"], "FILE"),
    "model without defaults": (["sweep", "{space}", "--model", "vgg19"], "--model"),
    "resume of a missing folder": (["resume", "{tmp}/nothing-here"], "EXPERIMENT"),
}


@pytest.mark.parametrize("case", sorted(BAD_FLAGS))
def test_bad_flags_exit_2_and_start_nothing(tmp_path: Path, capsys, case: str) -> None:
    argv, field = BAD_FLAGS[case]
    space = write_space(
        tmp_path / "ok.yaml", [{"optimizer": "taso"}], scheduler={"type": "asha", "grace_period": 1}
    )
    storage = tmp_path / "runs"
    argv = [a.format(tmp=tmp_path, space=space) for a in argv]
    if argv[0] == "sweep":
        argv += ["--storage", str(storage)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert field in err
    assert not storage.exists()


def test_existing_experiment_is_refused(tmp_path: Path, capsys) -> None:
    space = write_space(tmp_path / "ok.yaml", [{"optimizer": "taso"}])
    (tmp_path / "runs" / "tiny").mkdir(parents=True)
    assert main(["sweep", str(space), "--storage", str(tmp_path / "runs")]) == 2
    assert "taso-tune resume" in capsys.readouterr().err


def test_dry_run_lists_trials_and_starts_nothing(tmp_path: Path, capsys) -> None:
    storage = tmp_path / "runs"
    assert (
        main(
            [
                "sweep",
                str(REPO / "search_spaces/quickstart.yaml"),
                "--dry-run",
                "--storage",
                str(storage),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "13 configurations; seeds [0, 1, 2], 3 per trial = 13 trials" in out
    assert "taso_lr=0.05_beta=0.7" in out
    assert not storage.exists()
