"""scheduler: cooldown-asha: ASHA judging every trial at a rung by throwaway cooldown branches forked
from its run, the branch's lr the rest of its schedule's decay compressed."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import ray
import torch
from ray import tune
from sweep_helpers import (
    TIMING_FIELDS,
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
from taso_tune.results.report import report_figures
from taso_tune.schedules.maths import cooldown_lr, decay_start, taso_lr, wsd_lr
from taso_tune.spaces import load_space, load_space_dict
from taso_tune.spaces.sections import SchedulerSpec
from taso_tune.training.run import Run, TrainConfig
from taso_tune.training.seeds import SeedRuns, cooldown_summary
from taso_tune.training.stacked import StackedRuns
from taso_tune.tuning import run_sweep
from taso_tune.tuning.schedulers import build_scheduler
from taso_tune.tuning.trainable import KILL_IN_COOLDOWN_ENV


# --- the cooldown's learning rate -------------------------------------------------------------------
def test_cooldown_runs_the_rest_of_the_decay_compressed() -> None:
    # cosine from update 3 of 10: its remaining decay, first step at the lr of update 3, last at 0
    lrs = [
        cooldown_lr("cosine", j, 5, update=3, total_updates=10, lr_initial=1.0) for j in range(5)
    ]
    assert lrs[0] == pytest.approx(0.5 * (1 + math.cos(math.pi * 2 / 9)))
    assert lrs[-1] == 0.0 and all(b < a for a, b in zip(lrs, lrs[1:], strict=False))
    # WSD on its plateau: its linear decay from the peak, whatever the fork's update
    wsd = [cooldown_lr("wsd", j, 5, update=2, total_updates=21, lr_initial=1.0) for j in range(5)]
    assert wsd == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.0])
    assert decay_start("wsd", 21) == 17.0 and wsd_lr(17, 21, lr_initial=1.0) == 1.0
    # TASO before its drop: the window centred on beta, so the sigmoid falls mid-cooldown
    assert decay_start("taso", 20, beta=0.7) == pytest.approx(8.0)
    taso = [
        cooldown_lr("taso", j, 11, update=2, total_updates=20, lr_initial=1.0) for j in range(11)
    ]
    assert taso[0] == pytest.approx(taso_lr(8, 20, lr_initial=1.0))
    assert taso[5] == pytest.approx(taso_lr(14, 20, lr_initial=1.0))  # at beta: half-way down
    assert taso[-1] == pytest.approx(taso_lr(20, 20, lr_initial=1.0))
    assert taso[0] > 0.99 and taso[-1] < 0.06
    # past the window's start the branch starts where the run is
    late = cooldown_lr("taso", 0, 4, update=15, total_updates=20, lr_initial=1.0)
    assert late == pytest.approx(taso_lr(15, 20, lr_initial=1.0))


def test_a_constant_rate_has_no_cooldown() -> None:
    assert decay_start("constant", 10) is None
    with pytest.raises(ConfigError, match="no decay"):
        cooldown_lr("constant", 0, 3, update=1, total_updates=10, lr_initial=0.1)


# --- a branch leaves its run as it was ----------------------------------------------------------------
def _records(run: Run, epochs: int) -> list[dict]:
    return [
        {k: v for k, v in run.step_epoch().items() if k not in TIMING_FIELDS} for _ in range(epochs)
    ]


@pytest.mark.parametrize(
    ("optimizer", "lr"),
    [
        ("taso", 0.05),
        ("sgd_wsd", 0.05),
        ("sgd_cosine", 0.05),
        ("adam", 1e-3),
        ("adamw_schedulefree", 1e-3),
    ],
)
def test_a_branch_never_changes_its_run(optimizer: str, lr: float) -> None:
    config = TrainConfig(
        optimizer=optimizer, epochs=5, hparams={"lr": lr}, train_limit=300, val_fraction=0.25
    )
    plain = Run(config)
    expected = _records(plain, 5)
    branched = Run(config)
    got = _records(branched, 2)
    before = got[-1]["val_loss"], got[-1]["val_acc"]
    score = branched.cooldown(2)
    got += _records(branched, 3)
    assert got == expected  # every metric, lr and loss bit for bit, on the CPU
    assert score["val"] != before  # the branch trained: annealed, or at adam's own rate


def test_a_stacked_branch_never_changes_its_runs() -> None:
    config = TrainConfig(optimizer="taso", epochs=4, hparams={"lr": 0.05}, train_limit=300)
    plain = StackedRuns(config, [0, 1])
    expected = [plain.step_epoch() for _ in range(4)]
    runs = StackedRuns(config, [0, 1])
    got = [runs.step_epoch() for _ in range(2)]
    branches, trained = runs.cooldown(1)
    got += [runs.step_epoch() for _ in range(2)]
    strip = [
        {s: {k: v for k, v in r.items() if k not in TIMING_FIELDS} for s, r in e.items()}
        for e in got
    ]
    want = [
        {s: {k: v for k, v in r.items() if k not in TIMING_FIELDS} for s, r in e.items()}
        for e in expected
    ]
    assert strip == want and trained == 2 and set(branches) == {0, 1}


def test_cooldown_scores_follow_the_one_statistics_rule() -> None:
    config = TrainConfig(optimizer="taso", epochs=4, hparams={"lr": 0.05}, train_limit=300)
    runs = SeedRuns(config, [0, 1])
    records = runs.step_epoch()
    branches, trained = runs.cooldown(1)
    summary = cooldown_summary(branches, records, runs.num_classes, trained)
    accs = [branches[s]["val_acc"] for s in (0, 1)]
    assert summary["cooldown_epochs"] == 2
    assert summary["cooldown_val_acc"] == pytest.approx(sum(accs) / 2)
    assert summary["cooldown_val_acc_std"] == pytest.approx(torch.tensor(accs).std().item())
    # a seed whose branch blew up is scored at chance level, as a diverged seed always is
    branches[1] = {**branches[1], "val_loss": math.nan, "val_acc": math.nan}
    broken = cooldown_summary(branches, records, runs.num_classes, trained)
    assert broken["cooldown_val_acc"] == pytest.approx((accs[0] + 0.1) / 2)


# --- the space --------------------------------------------------------------------------------------
def test_the_rungs_are_rays_milestones_to_the_bit() -> None:
    # Ray's milestone 25 * 1.6**2 is 64.00000000000001: it judges at epoch 65, and so must the branches
    spec = SchedulerSpec("cooldown-asha", grace_period=25, reduction_factor=1.6)
    assert spec.asha_rungs(100) == [25, 40, 65]
    assert SchedulerSpec("asha", reduction_factor=2.5).asha_rungs(10) == [1, 3, 7]
    assert SchedulerSpec("asha").asha_rungs(9) == [1, 3]  # epoch 9 is max_t: the end, no rung
    # a fraction that floats just above a whole number of epochs does not add one
    assert SchedulerSpec("cooldown-asha", cooldown=0.07, grace_period=100).cooldown_plan(1000) == {
        100: 7,
        300: 21,
        900: 63,
    }


def test_the_cooldown_plan_follows_ashas_rungs() -> None:
    spec = SchedulerSpec("cooldown-asha", grace_period=2, reduction_factor=3)
    assert spec.asha_rungs(20) == [2, 6, 18]
    assert spec.cooldown_plan(20) == {2: 1, 6: 2, 18: 2}  # never longer than what the run has left
    assert SchedulerSpec("cooldown-asha", cooldown=0.5).cooldown_plan(10) == {1: 1, 3: 2, 9: 1}
    assert SchedulerSpec("asha").cooldown_plan(10) == {}


def _space(**changes) -> dict:
    space = {
        "name": "c",
        "train": {"model": "lenet5", "dataset": "digits", "epochs": 6},
        "seeds": 2,
        "scheduler": {"type": "cooldown-asha", "grace_period": 1},
        "blocks": [{"optimizer": "taso", "lr": 0.05}],
    }
    space.update(changes)
    return space


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"scheduler": {"type": "cooldown-asha", "cooldown": 0}}, "scheduler.cooldown", "(0, 1]"),
        ({"scheduler": {"type": "cooldown-asha", "cooldown": 1.5}}, "scheduler.cooldown", "(0, 1]"),
        ({"scheduler": {"type": "cooldown-asha", "grace_period": 6}}, "grace_period", "less than"),
        ({"metric": "train_acc"}, "metric", "held-out"),
        ({"seeds_per_trial": 1}, "seeds_per_trial", "seeds' mean"),
    ],
)
def test_bad_cooldown_spaces_are_refused(changes: dict, field: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_space_dict(_space(**changes))
    assert field in str(err.value) and words in str(err.value)


# --- on real Ray ------------------------------------------------------------------------------------
def _scripted(config: dict) -> None:
    """A trial of a scripted curve: ``late`` decays at its end (low until then, best at the end),
    the others plateau early; a rung's report carries the cooldown score a branch would give."""
    late = config["config"]["late"]
    plateau = config["config"].get("plateau", 0.0)
    for epoch in range(1, 9):
        metric = (0.3 if epoch < 8 else 0.9) if late else plateau
        report = {"epoch": epoch, "val_acc": metric}
        if epoch in (1, 2, 4):  # grace 1, eta 2, max_t 8
            report["cooldown_val_acc"] = 0.88 if late else plateau
        tune.report(report)


def _best_scripted(scheduler: str, tmp_path: Path) -> dict:
    spec = load_space_dict(
        _space(
            train={"model": "lenet5", "dataset": "digits", "epochs": 8},
            scheduler={"type": scheduler, "grace_period": 1, "reduction_factor": 2},
        )
    )
    configs = [{"late": False, "plateau": p} for p in (0.78, 0.8, 0.82)] + [{"late": True}]
    tuner = tune.Tuner(
        _scripted,
        param_space={"config": tune.grid_search(configs)},
        tune_config=tune.TuneConfig(
            metric="val_acc",
            mode="max",
            scheduler=build_scheduler(spec, 1),
            max_concurrent_trials=1,
        ),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name=scheduler, verbose=0),
    )
    # the workers import this file's trainable from the tests folder
    ray.init(num_cpus=2, runtime_env={"env_vars": {"PYTHONPATH": str(Path(__file__).parent)}})
    try:
        results = tuner.fit()
    finally:
        shutdown_ray()
    return results.get_best_result(scope="last").config["config"]


@pytest.mark.ray
def test_a_late_decaying_schedule_wins_under_cooldown_asha_and_not_under_asha(
    tmp_path: Path,
) -> None:
    assert _best_scripted("asha", tmp_path) == {"late": False, "plateau": 0.82}
    assert _best_scripted("cooldown-asha", tmp_path) == {"late": True}


BLOCKS = [
    {"optimizer": "taso", "lr": {"grid": [0.02, 0.05]}},
    {"optimizer": "sgd_wsd", "lr": 0.05},
    {"optimizer": "adam", "lr": 0.001},
]
TRAIN = {"epochs": 6, "train_limit": 400, "val_fraction": 0.25}


@pytest.mark.ray
def test_the_main_runs_equal_those_of_scheduler_none(tmp_path: Path) -> None:
    storage = tmp_path / "runs"
    scheduler = {"type": "cooldown-asha", "grace_period": 1, "reduction_factor": 2}
    for name, chosen in (("none", "none"), ("cooldown", scheduler)):
        path = write_space(
            tmp_path / f"{name}.yaml",
            BLOCKS,
            name=name,
            train=TRAIN,
            seeds=2,
            scheduler=chosen,
            max_concurrent=2,
        )
        try:
            run_sweep(load_space(str(path)), str(storage), name=name)
        finally:
            shutdown_ray()
    full, cooled = per_seed_records(storage / "none"), per_seed_records(storage / "cooldown")
    assert cooled and set(cooled) <= set(full)
    for key, record in cooled.items():
        assert record == full[key], key  # bit for bit, branches or not
    cooled_experiment = load_experiment(str(storage / "cooldown"))
    frame = cooled_experiment.cooldowns
    assert set(frame["epoch"]) == {1, 2, 4} and frame["cooldown_val_acc"].notna().all()
    assert "cooldown-branches" in report_figures(cooled_experiment)
    assert "cooldown-branches" not in report_figures(load_experiment(str(storage / "none")))
    rungs = {1: 1, 2: 1, 4: 1}
    for trial in trial_dirs(storage / "cooldown"):
        records = result_records(trial)
        for record in records:
            assert ("cooldown_val_acc" in record) == (record["epoch"] in rungs), record["epoch"]
            if record["epoch"] in rungs:  # every seed's branch trains, adam's at its own rate
                assert record["cooldown_epochs"] == 2


@pytest.mark.ray
def test_a_killed_driver_resumes_with_no_rung_trained_again(tmp_path: Path) -> None:
    space = write_space(
        tmp_path / "space.yaml",
        [{"optimizer": "taso", "lr": {"grid": [0.02, 0.05, 0.1]}}],
        name="killed",
        train={"epochs": 10, "train_limit": 400, "val_fraction": 0.25},
        seeds=2,
        scheduler={"type": "cooldown-asha", "grace_period": 2, "reduction_factor": 2},
        max_concurrent=2,
    )
    storage = tmp_path / "runs"
    experiment = storage / "killed"
    kill_sweep_when(  # past the rung at epoch 4, before the one at 8
        space,
        storage,
        lambda dirs: any(r["epoch"] >= 5 for d in dirs for r in result_records(d)),
        "a trial past its second rung",
    )
    # a trial whose actor had just started when the driver died has no report yet
    last_before = {
        d.name: max([0] + [r["epoch"] for r in result_records(d)]) for d in trial_dirs(experiment)
    }
    try:
        assert main(["resume", str(experiment)]) == 0
    finally:
        shutdown_ray()
    for trial in trial_dirs(experiment):
        records = result_records(trial)
        rung_reports = [r["epoch"] for r in records if "cooldown_val_acc" in r]
        for rung in set(rung_reports):
            if rung_reports.count(rung) > 1:  # only the epoch in flight at the kill comes again
                assert rung == last_before.get(trial.name), (trial.name, rung_reports)
        epochs = [r["epoch"] for r in records]
        assert len(epochs) - len(set(epochs)) <= 1, (trial.name, epochs)
    trials = load_experiment(str(experiment)).trials
    assert set(trials["status"]) <= {"complete", "stopped-early"}


@pytest.mark.ray
def test_a_trial_killed_in_its_branch_retries_from_its_checkpoint(
    tmp_path: Path, monkeypatch
) -> None:
    marker = tmp_path / "killed-once"
    monkeypatch.setenv(KILL_IN_COOLDOWN_ENV, str(marker))
    path = write_space(
        tmp_path / "space.yaml",
        [{"optimizer": "taso", "lr": 0.05}],
        name="branch-kill",
        train={"epochs": 5, "train_limit": 400, "val_fraction": 0.25},
        seeds=2,
        scheduler={"type": "cooldown-asha", "grace_period": 2, "cooldown": 1.0},
        max_failures=2,
    )
    try:
        outcome = run_sweep(load_space(str(path)), str(tmp_path / "runs"))
    finally:
        shutdown_ray()
    assert marker.exists()  # the worker was killed in its branch at epoch 2
    assert outcome.errored == 0
    (trial,) = trial_dirs(tmp_path / "runs" / "branch-kill")
    records = result_records(trial)
    assert [r["epoch"] for r in records] == [1, 2, 3, 4, 5]  # epoch 2 again after the retry
    restored = [r for r in records if r["iterations_since_restore"] < r["training_iteration"]]
    assert restored and restored[0]["epoch"] == 2  # from epoch 1's checkpoint
    assert "cooldown_val_acc" in records[1]


@pytest.mark.ray
def test_cooldown_asha_with_optuna_on_worker_nodes(tmp_path: Path, worker_nodes_only) -> None:
    space = write_space(
        tmp_path / "space.yaml",
        [{"optimizer": "taso", "lr": {"loguniform": [0.01, 0.2]}, "beta": {"uniform": [0.5, 0.8]}}],
        name="optuna-cooldown",
        train={"epochs": 4, "train_limit": 400, "val_fraction": 0.25, "batch_size": 16},
        seeds=2,
        scheduler={"type": "cooldown-asha", "grace_period": 1, "reduction_factor": 2},
        search={"type": "optuna", "num_samples": 4, "seed": 3},
        max_concurrent=2,
    )
    outcome = run_sweep(
        load_space(str(space)), str(tmp_path / "runs"), address=worker_nodes_only.address
    )
    assert outcome.errored == 0 and outcome.trials == 4
    head = worker_nodes_only.head_node.node_id
    nodes, last = set(), []
    for trial in trial_dirs(Path(outcome.experiment_path)):
        records = result_records(trial)
        nodes |= {r["node_id"] for r in records}
        last.append(records[-1]["epoch"])
        for record in records:  # judged at rungs 1 and 2 by branches, never at epoch 3
            assert ("cooldown_val_acc" in record) == (record["epoch"] in (1, 2)), record["epoch"]
        assert 0.01 <= records[0]["hp"]["lr"] <= 0.2  # Optuna's proposal, trained as proposed
    assert nodes and head not in nodes  # every trial on a worker node
    assert 4 in last and min(last) < 4  # halving stopped some, kept some
    experiment = load_experiment(outcome.experiment_path)
    assert set(experiment.trials["status"]) <= {"complete", "stopped-early"}
    assert experiment.cooldowns["cooldown_val_acc"].notna().all()
