"""Shared pytest fixtures: a scratch data root, the bundled digits data set loaded once, and Ray shut
down after a test that started it."""

from __future__ import annotations

from pathlib import Path

import pytest
from ray.cluster_utils import Cluster
from sweep_helpers import shutdown_ray

from taso_tune.training.data.sets import ImageData, load_dataset


@pytest.fixture
def tmp_data_root(tmp_path: Path) -> Path:
    """An empty, existing folder to use as ``data_root`` (write data-set files under it)."""
    root = tmp_path / "data"
    root.mkdir()
    return root


@pytest.fixture(scope="session")
def digits_data() -> ImageData:
    """scikit-learn's digits with the default 10% validation split; treat as read-only."""
    return load_dataset("digits")


@pytest.fixture
def ray_cleanup():
    """Shut Ray down (and forget RAY_ADDRESS) after the test."""
    yield
    shutdown_ray()


@pytest.fixture
def worker_nodes_only(monkeypatch):
    """A head with no CPUs and two worker nodes: every trial runs on a worker node."""
    monkeypatch.setenv(
        "TASO_TUNE_SHARED_STORAGE", "1"
    )  # every node of this cluster shares this disk
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    for _ in range(2):
        cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    try:
        yield cluster
    finally:
        shutdown_ray()
        cluster.shutdown()
