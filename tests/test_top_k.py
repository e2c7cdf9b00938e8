"""scheduler: top-k: one synchronous rung that keeps the best ceil(trials / eta) configurations."""

from __future__ import annotations

import math
import re
import tempfile
from pathlib import Path

import pytest
import ray
from ray import tune
from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler
from sweep_helpers import (
    kill_sweep_when,
    per_seed_records,
    result_records,
    shutdown_ray,
    trial_dirs,
    write_space,
)

from taso_tune.cli import main
from taso_tune.core.errors import ConfigError
from taso_tune.results.experiment import load_experiment
from taso_tune.results.studies.early_stopping import top_k
from taso_tune.spaces import load_space, load_space_dict
from taso_tune.spaces.sections import SchedulerSpec
from taso_tune.tuning import run_sweep
from taso_tune.tuning.schedulers import TopK

#: Ray Tune's line when a trial restores a checkpoint: (the trial its log prefix names, the folder)
RESTORED = re.compile(
    r"\(([^()\s]+) pid=\d+\)\S* Restored on \S+ from checkpoint: .*?path=\S*?/([^/]+)/checkpoint_\d+"
)


class FakeTrial:
    def __init__(self, number: int, status: str = Trial.PENDING, last: dict | None = None):
        self.trial_id = f"t_{number:05d}"
        self.status = status
        self.last_result = last or {}

    def set_status(self, status: str) -> None:
        self.status = status


class FakeController:
    def __init__(self, trials: list[FakeTrial]):
        self.trials = trials
        self.stopped: list[str] = []
        self.saved: list[str] = []

    def get_trials(self) -> list[FakeTrial]:
        return self.trials

    def stop_trial(self, trial: FakeTrial) -> None:
        trial.status = Trial.TERMINATED
        self.stopped.append(trial.trial_id)

    def _mark_trial_to_checkpoint(self, trial: FakeTrial) -> None:
        self.saved.append(trial.trial_id)


def _top_k(metric: str, mode: str, *, keep: int, trials: int) -> TopK:
    scheduler = TopK(rung=2, keep=keep, trials=trials)
    assert scheduler.set_search_properties(metric, mode)
    return scheduler


def _report(
    scheduler: TopK, controller: FakeController, trial: FakeTrial, value: float, metric="val_acc"
) -> str:
    trial.status = Trial.RUNNING
    decision = scheduler.on_trial_result(controller, trial, {"epoch": 2, metric: value})
    trial.last_result = {"epoch": 2, metric: value}
    trial.status = {
        TrialScheduler.PAUSE: Trial.PAUSED,
        TrialScheduler.STOP: Trial.TERMINATED,
    }.get(decision, Trial.RUNNING)
    return decision


def test_the_space_field_and_its_checks() -> None:
    spec = SchedulerSpec("top-k", grace_period=2, reduction_factor=3)
    assert spec.kept(13) == 5 and spec.kept(12) == 4 and spec.kept(1) == 1
    assert spec.checkpoint_epochs() == {2}
    assert SchedulerSpec("asha", grace_period=2).checkpoint_epochs() == frozenset()
    assert spec.to_dict() == {"type": "top-k", "grace_period": 2, "reduction_factor": 3.0}
    base = {
        "name": "t",
        "train": {"model": "lenet5", "dataset": "digits", "epochs": 4},
        "seeds": 2,
        "blocks": [{"optimizer": "adam", "lr": 0.001}],
    }
    with pytest.raises(ConfigError, match="grace_period.*less than the epochs"):
        load_space_dict({**base, "scheduler": {"type": "top-k", "grace_period": 4}})
    with pytest.raises(ConfigError, match="seeds_per_trial.*top-k"):
        load_space_dict({**base, "seeds_per_trial": 1, "scheduler": {"type": "top-k"}})
    with pytest.raises(ConfigError, match="scheduler.cooldown"):
        load_space_dict({**base, "scheduler": {"type": "top-k", "cooldown": 0.5}})
    with pytest.raises(ConfigError, match="max_concurrent.*wait forever"):
        load_space_dict({**base, "max_concurrent": 2, "scheduler": {"type": "top-k"}})


def test_trials_wait_at_the_rung_until_all_are_there_then_the_best_go_on() -> None:
    trials = [FakeTrial(i) for i in range(5)]
    controller = FakeController(trials)
    scheduler = _top_k("val_acc", "max", keep=2, trials=5)
    assert scheduler.on_trial_result(controller, trials[0], {"epoch": 1, "val_acc": 0.9}) == (
        TrialScheduler.CONTINUE
    )
    for number, acc in enumerate((0.5, 0.9, 0.7, 0.8)):
        assert _report(scheduler, controller, trials[number], acc) == TrialScheduler.PAUSE
        # a paused trial is never chosen while one is still on its way to the rung
        assert scheduler.choose_trial_to_run(controller) is trials[number + 1]
    assert _report(scheduler, controller, trials[4], 0.6) == TrialScheduler.STOP
    assert sorted(controller.stopped) == ["t_00000", "t_00002"]  # 0.5 and 0.7 wait no more
    assert controller.saved == controller.stopped  # their new status goes into Tune's state
    assert scheduler.choose_trial_to_run(controller) is trials[1]
    trials[1].status = Trial.RUNNING
    assert scheduler.choose_trial_to_run(controller) is trials[3]
    trials[3].status = Trial.RUNNING
    assert scheduler.choose_trial_to_run(controller) is None
    assert scheduler.on_trial_result(controller, trials[1], {"epoch": 3, "val_acc": 0.1}) == (
        TrialScheduler.CONTINUE
    )


def test_trials_that_end_before_the_rung_count_but_are_never_kept() -> None:
    trials = [FakeTrial(i, Trial.RUNNING) for i in range(4)]
    controller = FakeController(trials)
    scheduler = _top_k("val_loss", "min", keep=2, trials=4)
    for trial in trials:
        scheduler.on_trial_add(controller, trial)
    trials[0].status = Trial.TERMINATED  # diverged at epoch 1, its loss not a number
    scheduler.on_trial_complete(controller, trials[0], {"epoch": 1, "val_loss": math.nan})
    trials[1].status = Trial.ERROR  # Ray Tune retries it: not counted, and added again
    scheduler.on_trial_error(controller, trials[1])
    trials[1].status = Trial.PENDING
    scheduler.on_trial_add(controller, trials[1])
    assert trials[1].status == Trial.PENDING  # a retry is left to Ray Tune to start
    assert _report(scheduler, controller, trials[2], 9.0, "val_loss") == TrialScheduler.PAUSE
    trials[1].status = Trial.RUNNING
    scheduler.on_trial_error(controller, trials[1])  # failed for good, before the rung
    assert scheduler.choose_trial_to_run(controller) is None  # trials[3] is still on its way
    assert _report(scheduler, controller, trials[3], 8.0, "val_loss") == TrialScheduler.CONTINUE
    # the two trials at the rung are kept, the worse loss too: ended trials take no place
    assert scheduler.choose_trial_to_run(controller) is trials[2]
    assert controller.stopped == []


def test_a_restored_driver_keeps_the_same_trials() -> None:
    # before the kill: 5 trials scored at the rung, the best 2 kept, one of them already past it,
    # the losers stopped; the restored scheduler reads it all from the trials' last results
    trials = [
        FakeTrial(0, Trial.TERMINATED, {"epoch": 2, "val_acc": 0.5}),
        FakeTrial(1, Trial.PENDING, {"epoch": 5, "val_acc": 0.95}),
        FakeTrial(2, Trial.TERMINATED, {"epoch": 2, "val_acc": 0.7}),
        FakeTrial(3, Trial.PENDING, {"epoch": 2, "val_acc": 0.8}),
        FakeTrial(4, Trial.PENDING, {"epoch": 2, "val_acc": 0.6}),  # dropped, not yet stopped
        FakeTrial(5, Trial.TERMINATED, {"epoch": 1, "val_acc": 0.99}),  # diverged after epoch 1
    ]
    controller = FakeController(trials)
    scheduler = _top_k("val_acc", "max", keep=2, trials=6)
    for trial in trials:
        scheduler.on_trial_add(controller, trial)
    assert trials[3].status == Trial.PAUSED  # Tune starts pending trials without asking
    assert trials[1].status == Trial.PENDING  # kept and past the rung: it goes on
    assert scheduler.choose_trial_to_run(controller) is trials[1]
    trials[1].status = Trial.RUNNING
    assert scheduler.choose_trial_to_run(controller) is trials[3]
    assert controller.stopped == ["t_00004"]


def _space(tmp_path: Path, name: str, scheduler, **top) -> Path:
    return write_space(
        tmp_path / f"{name}.yaml",
        [
            {"optimizer": "taso", "lr": {"grid": [0.02, 0.05, 0.1]}},
            {"optimizer": "sgd_wsd", "lr": 0.05},
            {"optimizer": "adam", "lr": 0.001},
        ],
        name=name,
        train={"epochs": 4, "train_limit": 400, "val_fraction": 0.25},
        seeds=2,
        scheduler=scheduler,
        **top,
    )


def _rung_and_last(experiment: Path) -> dict[str, tuple[float, int]]:
    """config id -> (its seeds' mean val_acc at the rung, epoch 2; the last epoch it trained)."""
    out = {}
    for trial in trial_dirs(experiment):
        records = result_records(trial)
        rung = next(r["val_acc"] for r in records if r["epoch"] == 2)
        out[records[-1]["config_id"]] = (rung, records[-1]["epoch"])
    return out


def _assert_best_three_kept(trials: dict[str, tuple[float, int]]) -> set[str]:
    kept = {c for c, (_, last) in trials.items() if last == 4}
    dropped = {c for c, (_, last) in trials.items() if last == 2}
    assert len(kept) == 3 and kept | dropped == set(trials)
    assert min(trials[c][0] for c in kept) >= max(trials[c][0] for c in dropped)
    return kept


@pytest.mark.ray
def test_top_k_keeps_what_the_full_sweep_ranks_best_at_the_rung(tmp_path: Path, capfd) -> None:
    storage = tmp_path / "runs"
    chosen = {"type": "top-k", "grace_period": 2, "reduction_factor": 2}
    for name, scheduler in (("none", "none"), ("topk", chosen)):
        try:
            run_sweep(
                load_space(str(_space(tmp_path, name, scheduler))),
                str(storage),
                name=name,
            )
        finally:
            shutdown_ray()
    trials = _rung_and_last(storage / "topk")
    kept = _assert_best_three_kept(trials)
    expected = top_k(load_experiment(str(storage / "none")), 2, 3)  # the study's reading
    boundary = sorted((score for score, _ in trials.values()), reverse=True)[2:4]
    if boundary[0] != boundary[1]:  # equal scores at the boundary: either may be kept
        assert kept == set(expected.kept)
    full, kept = per_seed_records(storage / "none"), per_seed_records(storage / "topk")
    assert kept and all(record == full[key] for key, record in kept.items())  # bit for bit
    for trial in trial_dirs(storage / "topk"):
        epochs = [r["epoch"] for r in result_records(trial)]
        assert epochs == sorted(set(epochs))  # no epoch trained twice across the pause
    # a kept trial resumes in an actor another trial used: Tune's line on the restore carries it
    captured = capfd.readouterr()
    restores = RESTORED.findall(captured.out + captured.err)
    assert restores and all(folder.startswith(f"{name}_") for name, folder in restores), restores
    statuses = load_experiment(str(storage / "topk")).trials["status"]
    assert sorted(statuses) == ["complete"] * 6 + ["stopped-early"] * 4  # a row per seed


@pytest.mark.ray
def test_a_killed_driver_resumes_top_k_with_the_same_trials_kept(tmp_path: Path) -> None:
    space = _space(tmp_path, "killed", {"type": "top-k", "grace_period": 2, "reduction_factor": 2})
    storage = tmp_path / "runs"
    experiment = storage / "killed"
    kill_sweep_when(  # trials paused at the rung, others not there yet
        space,
        storage,
        lambda dirs: sum(any(r["epoch"] == 2 for r in result_records(d)) for d in dirs) >= 2,
        "two trials at the rung",
    )
    try:
        assert main(["resume", str(experiment)]) == 0
    finally:
        shutdown_ray()
    for trial in trial_dirs(experiment):
        epochs = [r["epoch"] for r in result_records(trial)]
        assert len(epochs) - len(set(epochs)) <= 1, (trial.name, epochs)  # the one in flight
    _assert_best_three_kept(_rung_and_last(experiment))


@pytest.mark.ray
def test_top_k_with_optuna_on_worker_nodes(tmp_path: Path, worker_nodes_only) -> None:
    space = write_space(
        tmp_path / "space.yaml",
        [{"optimizer": "taso", "lr": {"loguniform": [0.01, 0.2]}, "beta": {"uniform": [0.5, 0.8]}}],
        name="optuna-topk",
        train={"epochs": 4, "train_limit": 400, "val_fraction": 0.25},
        seeds=2,
        scheduler={"type": "top-k", "grace_period": 2, "reduction_factor": 2},
        search={"type": "optuna", "num_samples": 4, "seed": 3},
    )
    outcome = run_sweep(
        load_space(str(space)), str(tmp_path / "runs"), address=worker_nodes_only.address
    )
    assert outcome.errored == 0 and outcome.trials == 4
    head = worker_nodes_only.head_node.node_id
    trials, nodes = {}, set()
    for trial in trial_dirs(Path(outcome.experiment_path)):
        records = result_records(trial)
        nodes |= {r["node_id"] for r in records}
        rung = next(r["val_acc"] for r in records if r["epoch"] == 2)
        trials[records[-1]["config_id"]] = (rung, records[-1]["epoch"])
    assert nodes and head not in nodes  # every trial on a worker node
    kept = {c for c, (_, last) in trials.items() if last == 4}
    dropped = {c for c, (_, last) in trials.items() if last == 2}
    assert len(kept) == 2 and len(dropped) == 2
    assert min(trials[c][0] for c in kept) >= max(trials[c][0] for c in dropped)


def _scripted(config: dict) -> None:
    """A scripted trial of 4 epochs that checkpoints every epoch and resumes from its checkpoint;
    ``fail_once``: a marker file it creates the first time, failing before the rung (epoch 2)."""
    start = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            start = int(Path(folder, "epoch").read_text())
    for epoch in range(start + 1, 5):
        marker = config.get("fail_once")
        if marker and epoch == 2 and not Path(marker).exists():
            Path(marker).write_text("failed once")
            raise RuntimeError("a transient failure before the rung")
        with tempfile.TemporaryDirectory() as folder:
            Path(folder, "epoch").write_text(str(epoch))
            report = {"epoch": epoch, "val_acc": config["score"], "resumed_from": start}
            tune.report(report, checkpoint=tune.Checkpoint.from_directory(folder))


@pytest.mark.ray
def test_a_trial_retried_before_the_rung_competes_with_its_retry(tmp_path: Path) -> None:
    marker = str(tmp_path / "failed-once")
    configs = [{"score": s} for s in (0.5, 0.6, 0.7)] + [{"score": 0.9, "fail_once": marker}]
    tuner = tune.Tuner(
        _scripted,
        param_space=tune.grid_search(configs),
        tune_config=tune.TuneConfig(
            metric="val_acc", mode="max", scheduler=TopK(rung=2, keep=2, trials=4)
        ),
        run_config=tune.RunConfig(
            storage_path=str(tmp_path),
            name="retried",
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=1),
        ),
    )
    # the workers import this file's trainable from the tests folder
    ray.init(num_cpus=2, runtime_env={"env_vars": {"PYTHONPATH": str(Path(__file__).parent)}})
    try:
        results = tuner.fit()
    finally:
        shutdown_ray()
    assert Path(marker).exists()
    last = {r.config["score"]: r.metrics["epoch"] for r in results}
    assert last == {0.5: 2, 0.6: 2, 0.7: 4, 0.9: 4}  # the retried trial kept, on its retry's score
    resumed = {r.config["score"]: r.metrics["resumed_from"] for r in results}
    assert resumed[0.9] >= 1  # its retry went on from a checkpoint, not from the start
