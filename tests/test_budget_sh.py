"""Budget-aware successive halving on real Ray: rungs train complete shorter runs, the top 1/eta go on."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from sweep_helpers import result_records, shutdown_ray, tensorboard_hparams, trial_dirs, write_space

from taso_tune.cli import main
from taso_tune.core.records import BUDGET_SH_FILE
from taso_tune.results.experiment import load_experiment
from taso_tune.schedules.maths import taso_lr
from taso_tune.tuning.budget_sh import survivors


def test_survivors_keep_the_top_third_by_mean() -> None:
    scores = {"a": 0.9, "b": 0.5, "c": 0.7, "d": 0.95, "e": 0.1, "f": 0.6}
    assert survivors(scores, 3, "max") == ["d", "a"]
    assert survivors(scores, 3, "min") == ["e", "b"]
    assert survivors({"x": 1.0}, 3, "max") == ["x"]


@pytest.mark.ray
def test_budget_sh_end_to_end_and_resume(tmp_path: Path, capsys) -> None:
    space = write_space(
        tmp_path / "space.yaml",
        [
            {"optimizer": "taso", "lr": {"grid": [0.02, 0.05, 0.1]}, "beta": {"grid": [0.5, 0.7]}},
            {"optimizer": "sgd", "lr": 2, "momentum": 0.9},
        ],  # diverges: scored at chance level, and is no error
        name="bsh",
        train={"epochs": 9},
        seeds=2,
        max_concurrent=2,
    )
    storage = tmp_path / "runs"
    experiment = storage / "bsh"
    try:
        assert (
            main(["sweep", str(space), "--storage", str(storage), "--scheduler", "budget-sh"]) == 0
        )
    finally:
        shutdown_ray()
    state = json.loads((experiment / BUDGET_SH_FILE).read_text())
    assert state["budgets"] == [1, 3, 9]
    assert [len(r["configs"]) for r in state["rungs"]] == [7, 3, 1]
    # the diverged configuration's seeds count at chance level (1 / 10 classes), as everywhere else
    assert state["rungs"][0]["scores"]["sgd"] == pytest.approx(0.1)
    assert all(r["done"] for r in state["rungs"])
    # the survivors of each rung are its best by mean score over seeds
    for earlier, later in zip(state["rungs"], state["rungs"][1:], strict=False):
        assert later["configs"] == survivors(earlier["scores"], 3, "max")
    assert state["winner"] == state["rungs"][-1]["configs"][0]

    for index, budget in enumerate(state["budgets"]):
        rung_dir = experiment / f"rung-{index}-{budget}ep"
        dirs = trial_dirs(rung_dir)
        assert len(dirs) == len(state["rungs"][index]["configs"])  # one trial holds both seeds
        for d in dirs:
            assert result_records(d)[-1]["seeds"] == [0, 1]
        for d in dirs:
            records = result_records(d)
            if records[-1]["diverged"]:  # every seed blew up: the trial ended itself
                continue
            # each rung trains a complete run of its budget: the schedule decays before it is judged
            assert [r["epoch"] for r in records] == list(range(1, budget + 1))
            assert records[-1]["planned_epochs"] == budget
            if records[-1]["optimizer"] != "taso":
                continue
            hp = records[-1]["hp"]
            expected = taso_lr(
                budget, budget, lr_initial=hp["lr"], alpha=hp["alpha"], beta=hp["beta"]
            )
            assert records[-1]["lr"] == pytest.approx(expected)

    # TensorBoard's HParams view: a row per trial of each rung, its rung before its name
    _, groups = tensorboard_hparams(experiment)
    assert sorted(g.name for g in groups) == sorted(
        f"{rung.name}/{d.name.rsplit('_', 2)[0]}"
        for rung in experiment.glob("rung-*")
        for d in trial_dirs(rung)
    )
    assert len(groups) == 7 + 3 + 1

    loaded = load_experiment(str(experiment))
    assert set(loaded.trials["rung"]) == {0, 1, 2}
    assert set(loaded.final_trials["config_id"]) == {state["winner"]}
    out = capsys.readouterr().out
    assert f"budget-sh: winner {state['winner']}" in out
    assert "best configuration per optimizer" in out

    # interrupted during the last rung: resume keeps the finished rungs and reruns only that one
    first_rung = {d.name: len(result_records(d)) for d in trial_dirs(experiment / "rung-0-1ep")}
    state["rungs"][-1]["done"] = False
    del state["winner"]
    (experiment / BUDGET_SH_FILE).write_text(json.dumps(state))
    shutil.rmtree(experiment / "rung-2-9ep")
    try:
        assert main(["resume", str(experiment)]) == 0
    finally:
        shutdown_ray()
    assert {
        d.name: len(result_records(d)) for d in trial_dirs(experiment / "rung-0-1ep")
    } == first_rung
    assert len(trial_dirs(experiment / "rung-2-9ep")) == 1
    assert (
        json.loads((experiment / BUDGET_SH_FILE).read_text())["winner"]
        == state["rungs"][-1]["configs"][0]
    )
