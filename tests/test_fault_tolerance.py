"""Nothing is lost on faults: a killed driver resumes, a killed worker node's trials continue elsewhere."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
import ray
from ray.cluster_utils import Cluster
from sweep_helpers import kill_sweep_when, result_records, shutdown_ray, trial_dirs, write_space

from taso_tune.cli import main
from taso_tune.results.experiment import load_experiment
from taso_tune.spaces import load_space
from taso_tune.tuning import run_sweep

EPOCHS = 12


def _complete(trial_dir: Path) -> bool:
    records = result_records(trial_dir)
    return bool(records) and records[-1]["epoch"] == records[-1]["planned_epochs"]


@pytest.mark.ray
def test_sigkilled_sweep_resumes_without_retraining_finished_trials(tmp_path: Path) -> None:
    lrs = [0.01, 0.02, 0.03, 0.05, 0.07]
    space = write_space(
        tmp_path / "space.yaml",
        [{"optimizer": "taso", "lr": {"grid": lrs}}],
        name="killed",
        train={"epochs": EPOCHS},
        seeds=2,
        max_concurrent=2,
    )
    storage = tmp_path / "runs"
    experiment = storage / "killed"

    def two_done_one_running(dirs: list[Path]) -> bool:
        done = [d for d in dirs if _complete(d)]
        running = [d for d in dirs if not _complete(d) and len(result_records(d)) >= 2]
        return len(done) >= 2 and bool(running)

    kill_sweep_when(
        space, storage, two_done_one_running, "two trials finished and one running", 0.2
    )

    before = {d.name: len(result_records(d)) for d in trial_dirs(experiment)}
    finished_before = {d.name for d in trial_dirs(experiment) if _complete(d)}
    assert len(finished_before) < len(lrs)

    try:
        assert main(["resume", str(experiment)]) == 0
    finally:
        shutdown_ray()

    trials = load_experiment(str(experiment)).trials
    assert len(trials) == 2 * len(
        lrs
    )  # a row per seed; one trial holds both seeds of a configuration
    assert (trials["status"] == "complete").all(), trials[["trial_name", "status", "epochs_run"]]
    for d in trial_dirs(experiment):
        records = result_records(d)
        epochs = [r["epoch"] for r in records]
        if d.name in finished_before:
            assert len(records) == before[d.name], (
                f"{d.name} finished before the kill but trained again"
            )
        elif d.name in before:
            # continued from its last checkpoint: at most the epoch in flight is repeated
            assert len(epochs) <= EPOCHS + 1 and sorted(set(epochs)) == list(range(1, EPOCHS + 1))
            restored = [
                r for r in records if r["iterations_since_restore"] < r["training_iteration"]
            ]
            if restored:  # every seed came back from the checkpoint, one epoch after another
                for seed in ("0", "1"):
                    seen = [r["per_seed"][seed]["epoch"] for r in records]
                    assert all(
                        b <= a + 1 for a, b in zip(seen, seen[1:], strict=False)
                    )  # no epoch skipped
                    assert sorted(set(seen)) == list(range(1, EPOCHS + 1))
                    assert restored[0]["per_seed"][seed]["epoch"] == restored[0]["epoch"]


@pytest.fixture
def three_node_cluster():
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    os.environ["TASO_TUNE_SHARED_STORAGE"] = "1"  # every node of this cluster shares this disk
    try:
        yield cluster, workers
    finally:
        os.environ.pop("TASO_TUNE_SHARED_STORAGE", None)
        shutdown_ray()
        cluster.shutdown()


@pytest.mark.ray
def test_multi_node_sweep_survives_a_dead_worker_node(tmp_path: Path, three_node_cluster) -> None:
    cluster, workers = three_node_cluster
    victim = workers[0]
    space = write_space(
        tmp_path / "space.yaml",
        [{"optimizer": "taso", "lr": {"grid": [0.01, 0.02, 0.05, 0.1, 0.2, 0.3]}}],
        name="nodes",
        train={"epochs": 20},
        max_failures=3,
    )
    storage = tmp_path / "runs"
    experiment = storage / "nodes"
    outcome: dict = {}
    runner = threading.Thread(
        target=lambda: outcome.setdefault(
            "result", run_sweep(load_space(str(space)), str(storage), address=cluster.address)
        )
    )
    runner.start()
    on_victim: set[str] = set()
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and runner.is_alive():
        for d in trial_dirs(experiment) if experiment.exists() else []:
            records = result_records(d)
            if (
                len(records) >= 3
                and not _complete(d)
                and records[-1].get("node_id") == victim.node_id
            ):
                on_victim.add(d.name)
        if on_victim:
            cluster.remove_node(victim)
            break
        time.sleep(0.2)
    runner.join(timeout=300)
    assert not runner.is_alive(), "the sweep did not finish after the node died"
    assert on_victim, "no trial ran on the worker node before it was killed"

    trials = load_experiment(str(experiment)).trials
    assert (trials["status"] == "complete").all(), trials[["trial_name", "status", "epochs_run"]]
    assert trials["node_id"].nunique() >= 2, "trials ran on a single node"
    for name in on_victim:
        records = result_records(experiment / name)
        restored = [r for r in records if r["iterations_since_restore"] < r["training_iteration"]]
        assert restored, f"{name} restarted from scratch instead of its checkpoint"
        assert records[-1]["node_id"] != victim.node_id
    assert ray.is_initialized()
