"""On real Ray: a trial is a configuration with all its seeds, judged by their mean.

The seeds of a configuration stop together under ASHA; a configuration whose mean is best survives
even when one of its seeds alone would be cut; one diverging seed does not stop its siblings.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import ray
from ray import tune
from sweep_helpers import result_records, trial_dirs, write_space

from taso_tune.cli import main
from taso_tune.core.records import SPACE_FILE
from taso_tune.results.experiment import load_experiment
from taso_tune.spaces import load_space_dict
from taso_tune.training.seeds import epoch_summary
from taso_tune.tuning.schedulers import build_scheduler

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.ray
def test_quickstart_under_asha_ranks_only_configurations_with_all_seeds(
    tmp_path: Path, ray_cleanup, capsys
) -> None:
    storage = tmp_path / "runs"
    assert (
        main(
            [
                "sweep",
                str(REPO / "search_spaces/quickstart.yaml"),
                "--storage",
                str(storage),
                "--epochs",
                "4",
                "--scheduler",
                "asha",
                "--name",
                "q",
            ]
        )
        == 0
    )
    experiment = storage / "q"
    assert (experiment / SPACE_FILE).exists()
    dirs = trial_dirs(experiment)
    assert len(dirs) == 13  # one trial per configuration, not per seed
    for d in dirs:
        records = result_records(d)
        assert records and records[0]["epoch"] == 1
        last = records[-1]
        assert {"lr", "train_loss", "val_acc", "test_acc", "config_id", "optimizer"} <= last.keys()
        assert last["seeds"] == [0, 1, 2] and set(last["per_seed"]) == {"0", "1", "2"}
        assert d.name.startswith(last["config_id"] + "_")  # the trial's name is the configuration
    loaded = load_experiment(str(experiment))
    trials = loaded.trials
    # the seeds of a configuration stop together: one epoch count and one ending per configuration
    assert (trials.groupby("config_id")["epochs_run"].nunique() == 1).all()
    assert (trials.groupby("config_id")["status"].nunique() == 1).all()
    assert (trials["status"] == "stopped-early").any(), "ASHA stopped no configuration"
    assert (trials.loc[trials["status"] == "stopped-early", "epochs_run"] < 4).all()
    assert (trials["status"] == "complete").any()
    assert set(trials["status"]) <= {"complete", "stopped-early"}
    agg = loaded.aggregated
    ranked = agg[agg["comparable"].astype(bool)]
    assert (ranked["n"] == 3).all() and (
        agg.loc[~agg["comparable"].astype(bool), "status"] != ""
    ).all()
    assert set(loaded.best()["config_id"]) <= set(ranked["config_id"])
    out = capsys.readouterr().out
    assert "n=3/3 seeds" in out and "how to read these numbers" in out
    assert "best configuration per optimizer" in out and str(experiment) in out
    # short trials (4 epochs of 1,294 images, 3 seeds) share actor processes by default
    assert "actors: reused between trials, which are short (15,528 training images each" in out
    assert len({result_records(d)[-1]["pid"] for d in dirs}) < len(dirs)
    report = (experiment / "report.html").read_text()
    for text in (out, report):  # one seed never shows a std, let alone 0
        assert not re.search(r"± (?!—)\S+ \(n=1\)", text) and not re.search(
            r"± nan|\[nan|nan\]", text
        )
    assert "(n=3)" in report
    # the status table counts seed runs, and says how many trials they ran in
    status = re.search(r'<section id="status">.*?</section>', report, re.S).group(0)
    assert "<h2>Seed runs by status</h2>" in status and "all seed runs" in status
    assert '<td class="num">39</td><td class="num">13</td>' in status, status


#: Per-seed validation accuracy of four scripted configurations, the same at every epoch. "a" has the
#: best mean (0.7) but the worst single seed (0.3).
SCRIPT = {
    "b": (0.62, 0.62, 0.62),
    "c": (0.60, 0.60, 0.60),
    "d": (0.55, 0.55, 0.55),
    "a": (0.9, 0.9, 0.3),
}


def _scripted(config: dict) -> None:
    values = SCRIPT[config["trial"]["config_id"]]
    seeds = config["trial"]["seeds"]
    for epoch in range(1, 5):
        records = {
            s: {
                "epoch": epoch,
                "total_epochs": 4,
                "lr": 0.1,
                "val_acc": values[s],
                "val_loss": 1 - values[s],
                "test_acc": values[s],
                "test_loss": 1 - values[s],
                "train_acc": values[s],
                "train_loss": 1 - values[s],
                "epoch_seconds": 0.0,
                "images_per_second": 0.0,
                "status": "running" if epoch < 4 else "complete",
            }
            for s in seeds
        }
        tune.report(
            {**epoch_summary(records, num_classes=10), "config_id": config["trial"]["config_id"]}
        )


# the workers import this module's functions by value: tests/ is not on their path
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _asha_epochs(tmp_path: Path, per_seed: bool) -> dict[str, int]:
    """Epochs each trial ran under our ASHA (grace 1, eta 2, 4 epochs), trials one at a time in order."""
    spec = load_space_dict(
        {
            "name": "scripted",
            "train": {"epochs": 4},
            "seeds": 3,
            "blocks": [{"optimizer": "sgd"}],
            "scheduler": {"type": "asha", "grace_period": 1, "reduction_factor": 2},
        }
    )
    groups = [(s,) for s in range(3)] if per_seed else [(0, 1, 2)]
    trials = [{"config_id": cid, "seeds": list(g)} for cid in SCRIPT for g in groups]
    tuner = tune.Tuner(
        _scripted,
        param_space={"trial": tune.grid_search(trials)},
        tune_config=tune.TuneConfig(
            metric="val_acc",
            mode="max",
            scheduler=build_scheduler(spec, 1),
            max_concurrent_trials=1,
        ),
        run_config=tune.RunConfig(name="scripted", storage_path=str(tmp_path), verbose=0),
    )
    results = tuner.fit()
    return {
        f"{r.config['trial']['config_id']}{r.config['trial']['seeds']}": r.metrics["epoch"]
        for r in results
    }


@pytest.mark.ray
def test_asha_judges_a_configuration_by_its_mean_over_seeds(tmp_path: Path, ray_cleanup) -> None:
    together = _asha_epochs(tmp_path / "together", per_seed=False)
    assert together["a[0, 1, 2]"] == 4  # mean 0.7, the best: it survives with all its seeds
    alone = _asha_epochs(tmp_path / "alone", per_seed=True)
    assert alone["a[2]"] < 4  # judged alone, its 0.3 seed is cut: the configuration loses a seed
    assert alone["a[0]"] == 4


@pytest.mark.ray
def test_one_diverging_seed_does_not_stop_its_siblings(tmp_path: Path, ray_cleanup) -> None:
    # SGD at lr 1 on LeNet5/digits: seed 2 blows up in its first epoch, seeds 0, 1 and 3 train on
    space = write_space(
        tmp_path / "space.yaml",
        [{"optimizer": "sgd", "lr": 1.0, "momentum": 0.9}],
        name="spiky",
        train={"epochs": 3},
        seeds=4,
    )
    assert main(["sweep", str(space), "--storage", str(tmp_path / "runs")]) == 0
    loaded = load_experiment(str(tmp_path / "runs" / "spiky"))
    trials = loaded.trials.set_index("seed")
    assert set(trials["status"]) == {"diverged", "complete"}, trials["status"]
    assert (trials.loc[trials["status"] == "complete", "epochs_run"] == 3).all()
    assert (trials.loc[trials["status"] == "diverged", "epochs_run"] < 3).all()
    row = loaded.aggregated.iloc[0]
    diverged = int((trials["status"] == "diverged").sum())
    assert (row["n"], row["diverged"], row["comparable"]) == (4, diverged, True)
    complete = trials.loc[trials["status"] == "complete", "val_acc"]
    assert row["val_acc_mean"] == pytest.approx((complete.sum() + 0.1 * diverged) / 4)
