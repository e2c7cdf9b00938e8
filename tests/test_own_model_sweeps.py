"""Sweeps on the user's own model and data, on real Ray: a user package outside the source tree shipped
to a several-node cluster, an image folder of PNGs with a torchvision model, and bad input refused
before Ray starts."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
import ray
import yaml
from sweep_helpers import result_records, shutdown_ray, trial_dirs, write_space
from test_own_model import USER_MODULE, write_image_folder

from taso_tune.cli import main
from taso_tune.results.experiment import load_experiment
from taso_tune.spaces import load_space
from taso_tune.tuning import prepare, run_sweep

pytestmark = pytest.mark.ray


@pytest.fixture
def user_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """``mine.nets`` in a folder on this process's ``sys.path`` only: Ray's workers cannot import it
    unless the sweep ships it (Ray adds only the driver's working directory to their path)."""
    package = tmp_path / "userpkg" / "mine"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "nets.py").write_text(textwrap.dedent(USER_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path / "userpkg"))
    for name in [m for m in sys.modules if m == "mine" or m.startswith("mine.")]:
        monkeypatch.delitem(sys.modules, name)
    return "mine.nets"


def test_the_users_package_reaches_every_worker_node_only_when_shipped(
    tmp_path, user_package, worker_nodes_only, monkeypatch
):
    space = write_space(
        tmp_path / "space.yaml",
        [{"optimizer": "taso", "lr": {"grid": [0.05, 0.1]}}],
        name="shipped",
        train={
            "model": f"{user_package}:mlp",
            "dataset": f"{user_package}:tensors",
            "epochs": 2,
            "batch_size": 8,
        },
        max_failures=0,
    )
    address = worker_nodes_only.address

    with monkeypatch.context() as not_shipped:
        not_shipped.setattr(prepare, "runtime_env", lambda names: None)
        outcome = run_sweep(load_space(str(space)), str(tmp_path / "bare"), address=address)
    shutdown_ray()
    assert outcome.errored == 2  # the premise: without shipping, the workers cannot import it
    errors = [(d / "error.txt").read_text() for d in trial_dirs(Path(outcome.experiment_path))]
    assert all("No module named 'mine'" in text for text in errors), errors

    outcome = run_sweep(load_space(str(space)), str(tmp_path / "runs"), address=address)
    assert outcome.errored == 0 and outcome.trials == 2
    trials = load_experiment(outcome.experiment_path).trials
    assert (trials["status"] == "complete").all()
    head = worker_nodes_only.head_node.node_id
    assert head not in set(trials["node_id"])  # trained on the worker nodes


def test_an_image_folder_with_a_torchvision_model(tmp_path, ray_cleanup, capsys):
    root = write_image_folder(tmp_path / "pets", per_class=8, size=12)
    space = write_space(
        tmp_path / "space.yaml",
        [{"optimizer": "taso", "lr": {"grid": [0.05]}}, {"optimizer": "adam", "lr": 0.001}],
        name="pets",
        train={
            "model": "torchvision/resnet18",
            "dataset": "imagefolder",
            "data_root": str(root),
            "image_size": 12,
            "epochs": 2,
            "batch_size": 4,
            "val_fraction": 0.25,
        },
        seeds=2,
    )
    storage = tmp_path / "runs"
    assert main(["sweep", str(space), "--storage", str(storage)]) == 0
    out = capsys.readouterr().out
    assert "torchvision/resnet18: first convolution (conv1) takes 1 channel(s), not 3" in out
    trials = load_experiment(str(storage / "pets")).trials
    assert len(trials) == 4 and (trials["status"] == "complete").all()
    for trial in trial_dirs(storage / "pets"):
        assert result_records(trial)[-1]["split_sizes"] == {"train": 12, "val": 4, "test": 16}


@pytest.mark.parametrize(
    ("train", "expected"),
    [
        ({"model": "mine.nets:raises"}, "train.model: the factory raised RuntimeError"),
        ({"model": "mine.nets:wrong_width"}, "must return (batch, num_classes) = [2, 10]"),
        ({"model": "mine.absent:mlp"}, "module 'mine.absent' does not import"),
        ({"dataset": "mine.nets:labels_out_of_range"}, "label 3 is outside [0, 3)"),
        ({"dataset": "imagefolder", "data_root": "NOWHERE"}, "no such folder"),
        (
            {"model": "mine.nets:with_dropout", "seed_packing": "stacked"},
            "seed_packing: model 'mine.nets:with_dropout' cannot train its seeds stacked",
        ),
    ],
)
def test_bad_models_and_loaders_are_refused_before_ray_starts(
    tmp_path, user_package, capsys, train, expected
):
    train = {k: str(tmp_path / v) if v == "NOWHERE" else v for k, v in train.items()}
    top = {"seed_packing": train.pop("seed_packing"), "seeds": 2} if "seed_packing" in train else {}
    space = write_space(
        tmp_path / "space.yaml", [{"optimizer": "taso"}], name="bad", train=train, **top
    )
    storage = tmp_path / "runs"
    assert main(["sweep", str(space), "--storage", str(storage)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0] and str(space) in err[0], err
    assert not ray.is_initialized()
    assert not (storage / "bad").exists()


def test_the_users_package_end_to_end_asha_report_export_apply_and_resume(
    tmp_path, user_package, ray_cleanup, capsys
):
    """A seeded ASHA sweep of the user's factory and loader, its report and exported defaults, the
    defaults applied to a second pair (the user's model on the bundled digits), and a resume that
    says which of the user's modules it imports."""
    space = write_space(
        tmp_path / "space.yaml",
        [{"optimizer": "taso", "lr": {"grid": [0.05, 0.1]}}, {"optimizer": "adam", "lr": 0.001}],
        name="own",
        train={
            "model": f"{user_package}:mlp",
            "dataset": f"{user_package}:tensors",
            "epochs": 3,
            "batch_size": 8,
        },
        seeds=2,
        scheduler={"type": "asha", "grace_period": 1, "reduction_factor": 2},
    )
    storage = tmp_path / "runs"
    experiment = storage / "own"
    assert main(["sweep", str(space), "--storage", str(storage)]) == 0
    assert (experiment / "report.html").exists()
    assert main(["export", str(experiment), "-o", str(tmp_path / "defaults.yaml")]) == 0
    defaults = yaml.safe_load((tmp_path / "defaults.yaml").read_text())
    assert defaults["provenance"]["model"] == "mine.nets:mlp"
    assert defaults["provenance"]["dataset"] == "mine.nets:tensors"
    capsys.readouterr()
    code = main(
        [
            "apply",
            str(tmp_path / "defaults.yaml"),
            "--model",
            f"{user_package}:mlp",
            "--dataset",
            "digits",
            "--storage",
            str(storage),
            "--name",
            "own-digits",
        ]
    )
    assert code == 0
    applied = load_experiment(str(storage / "own-digits")).trials
    assert set(applied["dataset"]) == {"digits"} and (applied["status"] == "complete").all()
    assert set(applied["optimizer"]) == set(defaults["optimizers"])
    capsys.readouterr()
    assert main(["resume", str(experiment)]) == 0
    out = capsys.readouterr().out
    assert f"{experiment}: its space names your code; resuming imports mine.nets" in out
    assert "nothing to resume" in out


def test_a_timm_model_sweeps_when_the_extra_is_installed(tmp_path, ray_cleanup):
    pytest.importorskip("timm")
    space = write_space(
        tmp_path / "space.yaml",
        [{"optimizer": "taso"}],
        name="timm",
        train={"model": "timm/resnet10t", "epochs": 1, "batch_size": 16, "train_limit": 64},
    )
    storage = tmp_path / "runs"
    assert main(["sweep", str(space), "--storage", str(storage)]) == 0
    trials = load_experiment(str(storage / "timm")).trials
    assert list(trials["model"]) == ["timm/resnet10t"] and list(trials["status"]) == ["complete"]
