"""The Python API: ``taso_tune.sweep(space, model=..., dataset=..., storage=...)`` runs what the
command line runs, with callables checked as their import strings are."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
import ray
from sweep_helpers import shutdown_ray
from test_own_model import USER_MODULE

import taso_tune
from taso_tune.core.errors import ConfigError

SPACE = {
    "name": "api",
    "train": {"model": "lenet5", "dataset": "digits", "epochs": 2, "batch_size": 8},
    "seeds": 2,
    "resources": {"cpus": 1},
    "scheduler": "none",
    "blocks": [{"optimizer": "taso", "lr": {"grid": [0.05, 0.1]}}],
}


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    folder = tmp_path / "userpkg"
    folder.mkdir()
    (folder / "api_nets.py").write_text(textwrap.dedent(USER_MODULE))
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.delitem(sys.modules, "api_nets", raising=False)
    import api_nets

    return api_nets


@pytest.mark.ray
def test_sweep_from_python_with_callables(tmp_path, user_module):
    try:
        result = taso_tune.sweep(
            SPACE, model=user_module.mlp, dataset=user_module.tensors, storage=str(tmp_path)
        )
    finally:
        shutdown_ray()
    assert result.experiment == str(tmp_path / "api")
    assert result.outcome.trials == 2 and result.outcome.errored == 0
    assert "best configuration per optimizer" in result.summary
    assert result.defaults and Path(result.defaults).exists()
    saved = (tmp_path / "api" / "taso_tune_space.yaml").read_text()
    assert "model: api_nets:mlp" in saved and "dataset: api_nets:tensors" in saved


def test_a_callable_defined_in_a_function_is_refused_before_ray_starts(tmp_path):
    def model(num_classes, in_channels, image_size):
        raise AssertionError("never called")

    with pytest.raises(ConfigError, match="^model: must be defined at the top of an importable"):
        taso_tune.sweep(SPACE, model=model, storage=str(tmp_path))
    assert not ray.is_initialized() and not (tmp_path / "api").exists()


def test_bad_spaces_are_refused_by_name(tmp_path):
    with pytest.raises(ConfigError, match="^space: must be a space file's path or a dict"):
        taso_tune.sweep(42, storage=str(tmp_path))
    with pytest.raises(ConfigError, match="^space: seeds: "):
        taso_tune.sweep({**SPACE, "seeds": -1}, storage=str(tmp_path))
    with pytest.raises(ConfigError, match="train.model: unknown model"):
        taso_tune.sweep(SPACE, model="alexnet", storage=str(tmp_path))
    assert not ray.is_initialized()


def test_a_model_argument_that_a_block_would_override_is_refused_before_ray_starts(tmp_path):
    space = {
        **SPACE,
        "blocks": [{"optimizer": "taso"}, {"optimizer": "adam", "model": {"grid": ["vgg19"]}}],
    }
    with pytest.raises(ConfigError, match=r"^space: blocks\[1\]\.model: sets the model that"):
        taso_tune.sweep(space, model="resnet18", storage=str(tmp_path))
    with pytest.raises(ConfigError, match=r"^space: blocks\[0\]\.dataset: sets the dataset"):
        taso_tune.sweep(
            {**SPACE, "blocks": [{"optimizer": "taso", "dataset": "synthetic"}]},
            dataset="digits",
            storage=str(tmp_path),
        )
    assert not ray.is_initialized() and not (tmp_path / "api").exists()
    # without the argument the block's model stands
    assert taso_tune.api.space_of(space).blocks[1]["model"].options == ("vgg19",)
