"""Trial resources decided by what the cluster can have, on Ray's fake autoscaler.

The head has no CPU or GPU and GPU worker types scale from 0, as in the shipped cluster files: the
sweep's trials must ask for GPUs, the autoscaler must add a GPU type (not a CPU type), and each trial
must receive its GPU share and ``CUDA_VISIBLE_DEVICES``. The fake GPUs are only resources, so the
trials then train on the CPU through the test-only switch ``TASO_TUNE_TEST_TRAIN_ON_CPU``. A resume
keeps the device the sweep started with and refuses another device kind unless told to.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import ray
from fake_autoscaler import fake_autoscaling_cluster, node_types_of
from sweep_helpers import result_records, shutdown_ray, trial_dirs, write_space

from taso_tune.cli import main
from taso_tune.core.errors import ConfigError
from taso_tune.core.records import RESOURCES_FILE
from taso_tune.experiment.reader import read_space
from taso_tune.spaces import load_space
from taso_tune.spaces.spec import GPU_CHECKPOINT_MIN_SECONDS
from taso_tune.tuning.preflight import connect
from taso_tune.tuning.resources import (
    keep_resources,
    node_types_gpus,
    resolve_resources,
    saved_resources,
)
from taso_tune.tuning.trainable import TRAIN_ON_CPU_ENV, checkpoint_age
from taso_tune.tuning.trials import GridTrials

ROOT = Path(__file__).resolve().parent.parent
CLUSTER_FILES = [
    ROOT / "cluster" / "aws-gpu.yaml",
    ROOT / "cluster" / "gcp-gpu.yaml",
    ROOT / "cluster" / "kuberay" / "raycluster.yaml",
]
NODE_TYPES = {
    "cpu_only": {"resources": {"CPU": 2}, "min_workers": 0, "max_workers": 2},
    "gpu_1x": {"resources": {"CPU": 2, "GPU": 1}, "min_workers": 0, "max_workers": 2},
}


def _space(tmp_path: Path, **top) -> Path:
    return write_space(
        tmp_path / "space.yaml",
        [{"optimizer": "taso", "lr": {"grid": [0.02, 0.05]}}],
        name="gpu",
        train={"epochs": 1},
        seeds=2,
        **top,
    )


def test_node_types_with_gpus_are_read_from_a_cluster_configuration() -> None:
    gpus = node_types_gpus(
        {
            "head": {"resources": {"CPU": 0, "GPU": 0}, "max_workers": 0},
            "cpu": {"resources": {"CPU": 8}, "max_workers": 4},
            "gpu": {"resources": {"CPU": 8, "GPU": 4}, "min_workers": 0, "max_workers": 2},
        }
    )
    assert gpus == {"cpu": 0.0, "gpu": 4.0}


def test_checkpoint_age_default_follows_the_device(tmp_path: Path) -> None:
    unset = load_space(_space(tmp_path))
    assert unset.checkpoint_min_seconds is None
    assert checkpoint_age(unset.checkpoint_min_seconds, "cuda") == GPU_CHECKPOINT_MIN_SECONDS
    assert checkpoint_age(unset.checkpoint_min_seconds, "cpu") == 0.0
    # a value the space sets wins on either device, 0 included, and survives the written space
    every_epoch = load_space(_space(tmp_path, checkpoint_min_seconds=0))
    assert every_epoch.to_dict()["checkpoint_min_seconds"] == 0
    assert checkpoint_age(every_epoch.checkpoint_min_seconds, "cuda") == 0.0


@pytest.mark.ray
@pytest.mark.parametrize("cluster_file", CLUSTER_FILES, ids=lambda p: p.name)
def test_each_shipped_cluster_file_gets_gpu_trials(cluster_file: Path, tmp_path: Path) -> None:
    """The node types of each shipped file, on the fake autoscaler: a sweep's trials ask for the
    model's GPU share, and the node the autoscaler adds for one is of a GPU type."""
    types = node_types_of(cluster_file)
    gpu_types = {name for name, t in types.items() if t["resources"].get("GPU", 0) > 0}
    assert gpu_types and all(t["min_workers"] == 0 for t in types.values()), types
    # fake nodes with the file's GPUs; CPUs capped: a fake node runs on this machine
    for t in types.values():
        t["resources"]["CPU"] = min(t["resources"].get("CPU", 0), 2)
    with fake_autoscaling_cluster(types) as cluster:
        connect(cluster.address)
        assert ray.cluster_resources().get("GPU", 0) == 0  # no GPU node yet
        resources = resolve_resources(GridTrials(load_space(_space(tmp_path))))
        assert (resources.gpus, resources.device) == (0.125, "cuda")  # lenet5's share

        @ray.remote(num_cpus=resources.cpus, num_gpus=resources.gpus)
        def visible() -> str | None:
            import os

            return os.environ.get("CUDA_VISIBLE_DEVICES")

        assert ray.get(visible.remote(), timeout=120) == "0"
        launched = cluster.launched_types()
        assert launched and set(launched) <= gpu_types, launched


@pytest.mark.ray
def test_a_sweep_on_an_autoscaling_cluster_trains_with_gpus_and_resume_keeps_them(
    tmp_path: Path, capsys
) -> None:
    space = _space(tmp_path)
    storage = tmp_path / "runs"
    experiment = storage / "gpu"
    try:
        with fake_autoscaling_cluster(NODE_TYPES, {TRAIN_ON_CPU_ENV: "1"}) as cluster:
            assert (
                main(["sweep", str(space), "--storage", str(storage), "--address", cluster.address])
                == 0
            )
            saved = json.loads((experiment / RESOURCES_FILE).read_text())
            assert saved == {
                "cpus": 1.0,
                "gpus": 0.125,
                "device": "cuda",
                "packing": saved["packing"],
            }
            assert cluster.launched_types() and set(cluster.launched_types()) == {"gpu_1x"}
            # each trial saw its share of a GPU, and trained on the CPU through the test switch
            starts = [
                line
                for line in cluster.worker_log_text().splitlines()
                if "epochs done, training on" in line
            ]
            assert len(starts) == 2, starts
            assert all(
                "training on cpu" in line and "(GPU share 0.125, CUDA_VISIBLE_DEVICES=0)" in line
                for line in starts
            ), starts
            for d in trial_dirs(experiment):
                assert result_records(d)[-1]["epoch"] == 1

            # a resume on this cluster continues with the saved resources
            shutdown_ray()
            spec = read_space(str(experiment))
            kept = keep_resources(str(experiment), spec, cluster.address)
            assert (kept.resources.cpus, kept.resources.gpus) == (1.0, 0.125)
            shutdown_ray()
    finally:
        shutdown_ray()

    # on a machine with no GPU the same experiment is refused, with one line, unless told to
    try:
        with pytest.raises(ConfigError) as refused:
            keep_resources(str(experiment), spec, None)
        assert "ran on cuda and this cluster would run them on cpu" in str(refused.value)
        assert "--allow-device-change" in str(refused.value)
        assert "\n" not in str(refused.value)
        kept = keep_resources(str(experiment), spec, None, allow_device_change=True)
        assert kept.resources.gpus == 0.0
        assert saved_resources(str(experiment)).device == "cpu"
    finally:
        shutdown_ray()
