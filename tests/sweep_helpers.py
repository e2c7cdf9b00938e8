"""Shared helpers for the tests that run real sweeps: small space files and Ray clean-up."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest
import ray
import yaml

from taso_tune.spaces import load_space


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


#: Fields of a seed's record that are measured times, not results.
TIMING_FIELDS = ("epoch_seconds", "images_per_second")


def per_seed_records(experiment: Path) -> dict[tuple[str, int, str], dict[str, Any]]:
    """(config id, epoch, seed) -> that seed's record, timings left out, over every trial."""
    out = {}
    for trial in trial_dirs(experiment):
        for record in result_records(trial):
            for seed, one in record["per_seed"].items():
                key = (record["config_id"], one["epoch"], seed)
                out[key] = {k: v for k, v in one.items() if k not in TIMING_FIELDS}
    return out


def trial_dirs(experiment: Path) -> list[Path]:
    return sorted(p for p in experiment.iterdir() if (p / "result.json").exists())


def shutdown_ray() -> None:
    if ray.is_initialized():
        ray.shutdown()
    os.environ.pop("RAY_ADDRESS", None)


def tensorboard_hparams(logdir: Path):
    """What TensorBoard's HParams view shows of ``logdir``, read by TensorBoard's own plugin (its
    event multiplexer, data provider and request handlers, as ``tensorboard --logdir`` serves them):
    ``(experiment, session groups)``, the ``api_pb2`` messages of its GetExperiment and
    ListSessionGroups answers (every status allowed)."""
    from tensorboard import context
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import (
        api_pb2,
        backend_context,
        get_experiment,
        list_session_groups,
    )

    events = plugin_event_multiplexer.EventMultiplexer()
    events.AddRunsFromDirectory(str(logdir))
    events.Reload()
    provider = data_provider.MultiplexerDataProvider(events, str(logdir))
    plugin = backend_context.Context(
        base_plugin.TBContext(logdir=str(logdir), data_provider=provider)
    )
    request = context.RequestContext()
    experiment = get_experiment.Handler(request, plugin, "", api_pb2.GetExperimentRequest()).run()
    groups = list_session_groups.Handler(
        request,
        plugin,
        "",
        api_pb2.ListSessionGroupsRequest(
            start_index=0, slice_size=1000, allowed_statuses=list(api_pb2.Status.values())
        ),
    ).run()
    return experiment, list(groups.session_groups)


def hparam_values(group) -> dict[str, Any]:
    """A session group's hparams as Python values (numbers as floats)."""
    return {name: getattr(value, value.WhichOneof("kind")) for name, value in group.hparams.items()}


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL the driver first (the fault under test), then anything it started."""
    children = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    for child in children:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(children, timeout=30)
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # daemons that left the tree but kept the group
    except ProcessLookupError:
        pass


def kill_sweep_when(
    space: Path,
    storage: Path,
    ready: Callable[[list[Path]], bool],
    waiting_for: str,
    poll_seconds: float = 0.1,
) -> None:
    """Run ``taso-tune sweep SPACE --storage STORAGE`` as a driver of its own and SIGKILL it
    (:func:`kill_tree`) once ``ready`` holds for the experiment's trial folders; fail the test if it
    ends first or 240 s pass (``waiting_for`` says what never happened)."""
    experiment = storage / load_space(str(space)).name
    proc = subprocess.Popen(
        [sys.executable, "-m", "taso_tune.cli", "sweep", str(space), "--storage", str(storage)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            if ready(trial_dirs(experiment) if experiment.exists() else []):
                return
            assert proc.poll() is None, "the sweep ended before it could be killed"
            time.sleep(poll_seconds)
        pytest.fail(f"never happened: {waiting_for}")
    finally:
        kill_tree(proc)
