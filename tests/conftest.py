"""Shared pytest fixtures: a scratch data root and the bundled digits data set, loaded once."""

from __future__ import annotations

from pathlib import Path

import pytest

from taso_tune.data import ImageData, load_dataset


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
