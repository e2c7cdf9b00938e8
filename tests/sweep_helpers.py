"""Shared helpers for the tests that run real sweeps: small space files and Ray clean-up."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import ray
import yaml


def write_space(path: Path, blocks: list[dict[str, Any]], **top: Any) -> Path:
    """Write a small LeNet5-on-digits space file; ``top`` overrides top-level keys."""
    space: dict[str, Any] = {
        "name": "tiny",
        "train": {"model": "lenet5", "dataset": "digits", "epochs": 4, "batch_size": 128},
        "seeds": 1,
        "resources": {"cpus": 1},
        "scheduler": "none",
        "search": "grid",
        "blocks": blocks,
    }
    train = top.pop("train", None)
    if train:
        space["train"].update(train)
    space.update(top)
    path.write_text(yaml.safe_dump(space, sort_keys=False))
    return path


def result_records(trial_dir: Path) -> list[dict[str, Any]]:
    """Every line of a trial's result.json, in order (repeats included)."""
    lines = (trial_dir / "result.json").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def trial_dirs(experiment: Path) -> list[Path]:
    return sorted(p for p in experiment.iterdir() if (p / "result.json").exists())


def shutdown_ray() -> None:
    if ray.is_initialized():
        ray.shutdown()
    os.environ.pop("RAY_ADDRESS", None)
