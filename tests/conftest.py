"""Shared pytest fixtures: a scratch data root, the bundled digits data set loaded once, and Ray shut
down after a test that started it."""

from __future__ import annotations

from pathlib import Path

import pytest

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
    from sweep_helpers import shutdown_ray

    shutdown_ray()
