"""What a person watches of a real sweep on a local Ray: Ray Tune's status table names the trials
(the best one included), and TensorBoard's HParams view, read by TensorBoard's own plugin, holds
every optimizer's hyperparameters with one row per trial named after it."""

from __future__ import annotations

import io
import re
from contextlib import redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest
from sweep_helpers import (
    hparam_values,
    result_records,
    shutdown_ray,
    tensorboard_hparams,
    trial_dirs,
    write_space,
)

from taso_tune.cli import main
from taso_tune.core.records import HPARAMS_FILE

#: One configuration of each optimizer of the quickstart, TASO's at two learning rates.
BLOCKS = [
    {"optimizer": "taso", "lr": {"grid": [0.05, 0.1]}},
    {"optimizer": "amsgrad"},
    {"optimizer": "rmsprop"},
    {"optimizer": "adagrad"},
]
NAMES = {"taso_lr=0.05", "taso_lr=0.1", "amsgrad", "rmsprop", "adagrad"}
#: Each optimizer's own fields, beside lr, weight_decay and the labels every trial has.
OWN_FIELDS = {
    "taso": {"alpha", "beta", "momentum", "nesterov"},
    "amsgrad": {"beta1", "beta2", "eps"},
    "rmsprop": {"rho", "centered", "momentum", "eps"},
    "adagrad": {"lr_decay", "eps"},
}


@dataclass(frozen=True)
class Sweep:
    experiment: Path
    out: str  # what the sweep printed


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Sweep:
    root = tmp_path_factory.mktemp("watch")
    space = write_space(
        root / "space.yaml", BLOCKS, name="watch", train={"epochs": 2}, max_concurrent=2
    )
    out = io.StringIO()
    try:
        with redirect_stdout(out):
            code = main(["sweep", str(space), "--storage", str(root / "runs"), "--no-report"])
    finally:
        shutdown_ray()
    assert code == 0, out.getvalue()[-3000:]
    return Sweep(root / "runs" / "watch", out.getvalue())


@pytest.mark.ray
def test_rays_status_table_names_the_trials_and_the_best_one(sweep: Sweep) -> None:
    assert "== Status ==" in sweep.out
    best = re.findall(r"^Current best trial: (.*)$", sweep.out, flags=re.MULTILINE)
    assert best, sweep.out[-3000:]
    for line in best:
        name = line.split(",")[0]
        assert name in NAMES, line
        assert re.search(r", val_acc \d\.\d{4} over 1 seed at epoch [12]/2$", line), line
    # no trial id (Tune's ``12670_00011``) where a name belongs
    assert not re.search(r"Current best trial: [0-9a-f]{5}_\d{5}", sweep.out)
    rows = {m.group(1) for m in re.finditer(r"^\| (\S+)\s+\| TERMINATED ", sweep.out, re.M)}
    assert rows == NAMES, sweep.out[-3000:]


@pytest.mark.ray
def test_tensorboard_shows_every_optimizers_hyperparameters(sweep: Sweep) -> None:
    assert (sweep.experiment / HPARAMS_FILE).is_file()
    experiment, groups = tensorboard_hparams(sweep.experiment)
    planned = {info.name for info in experiment.hparam_infos}
    assert set().union(*OWN_FIELDS.values()) | {"trial", "optimizer", "lr", "seeds"} <= planned
    ticked = {info.name for info in experiment.hparam_infos if info.differs}
    assert ticked == {"trial", "optimizer", "lr"}  # lr is the only field the space varies
    rows = {group.name: group for group in groups}
    assert set(rows) == NAMES  # the Trial ID column: the trials' names
    for folder in trial_dirs(sweep.experiment):
        last = result_records(folder)[-1]
        name = folder.name.rsplit("_", 2)[0]  # the folder: NAME_<trial id>
        row = hparam_values(rows[name])
        assert row["trial"] == name and row["optimizer"] == last["optimizer"]
        assert OWN_FIELDS[last["optimizer"]] <= set(row) <= planned
        shown = {k: v for k, v in last["hp"].items() if v is not None}
        assert {k: row[k] for k in shown} == pytest.approx(shown)
        metrics = {m.name.tag: m.value for m in rows[name].metric_values}
        assert metrics["ray/tune/val_acc"] == pytest.approx(last["val_acc"], rel=1e-6)
        assert rows[name].sessions[0].status == 1  # STATUS_SUCCESS
