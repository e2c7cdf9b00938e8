"""The Ray Tune trainable around :class:`taso_tune.training.seeds.SeedRuns`.

One trial = one configuration with all its seeds, trained side by side (or one seed, with
``seeds_per_trial: 1``). Each epoch it calls ``tune.report`` with each metric's mean over the seeds
(what ASHA or Optuna judge), its std, and every seed's record; every ``checkpoint_every`` epochs (and
at the last one) the report carries a checkpoint of every seed's whole run (model, optimizer,
schedule, RNG, epoch), so a restarted trial continues exactly where it stopped. A seed whose loss
blows up stops and is scored at chance level; the trial ends when every seed has finished or
diverged (ASHA does not stop a trial that reports NaN, so none is reported for a diverged seed).

:func:`train_trial` is the whole trial; :class:`TrialActor` is the actor Ray Tune runs it in (Tune's
function-trainable runner, as ``tune.with_parameters`` would build for the function) with one
difference: its ``repr`` is the trial name (or, with ``reuse_actors``, the Tune run's), which Ray
shows as the actor's name in the dashboard's Actors view and as the prefix of its log lines.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Collection, Mapping
from typing import Any

import ray
import torch
from ray import tune
from ray._private.ray_constants import (
    LOG_PREFIX_ACTOR_NAME,  # Ray's log-monitor protocol (ray pinned to 2.60)
)
from ray.train._internal.session import get_session
from ray.tune.result import RESULT_DUPLICATE
from ray.tune.trainable.function_trainable import FunctionTrainable

from taso_tune.core.records import STATE_FILE, TrialLabels, TrialReport
from taso_tune.core.storage import storage_full
from taso_tune.experiment import layout
from taso_tune.spaces.spec import GPU_CHECKPOINT_MIN_SECONDS
from taso_tune.training.data.sets import ImageData
from taso_tune.training.packing import seed_training
from taso_tune.training.run import TrainConfig
from taso_tune.training.seeds import cooldown_summary, epoch_summary
from taso_tune.tuning.interrupts import wait_for_stop
from taso_tune.tuning.observe import live_metrics
from taso_tune.tuning.trials import TrialSource

#: Where a trial that ``resume --rerun-lost`` trains again starts: the checkpoint its lost trial's
#: folder still holds (in the flat config: a path or URI, resolved by the rerun's trial source from
#: the experiment-relative name the record keeps; ``None``: from the start). Tune's own checkpoint
#: comes first.
FROM_CHECKPOINT = layout.FROM_CHECKPOINT
#: Keys of a trial's flat config that describe it but are not training fields.
LABEL_KEYS = ("config_id", "block", "seeds", FROM_CHECKPOINT)

DataKey = tuple[str, str | None, float, int | None, int | None, float | None]

#: Test-only switch: a trial given GPUs trains on the CPU (for clusters whose GPUs are fake resources,
#: as in the tests with Ray's fake autoscaler); its start line still shows the GPUs Ray gave it.
TRAIN_ON_CPU_ENV = "TASO_TUNE_TEST_TRAIN_ON_CPU"
#: Test-only switch: the path of a marker file; while it does not exist, the first trial to fork a
#: cooldown branch creates it and its worker process is SIGKILLed while the branch trains.
KILL_IN_COOLDOWN_ENV = "TASO_TUNE_TEST_KILL_IN_COOLDOWN"


def data_key(flat: Mapping[str, Any]) -> DataKey:
    """What identifies the data a configuration trains on (several configurations share it)."""
    return (
        flat.get("dataset", TrainConfig.dataset),
        flat.get("data_root"),
        float(flat.get("val_fraction", TrainConfig.val_fraction)),
        flat.get("train_limit"),
        flat.get("image_size"),
        flat.get("data_memory_gb"),
    )


def train_config_of(flat: Mapping[str, Any], cpus: float, device: str = "auto") -> TrainConfig:
    """The :class:`TrainConfig` of a trial; torch threads follow the trial's CPU resources and the
    device its GPU resources (a trial given no GPU never touches one)."""
    values = {k: v for k, v in flat.items() if k not in LABEL_KEYS}
    values.setdefault("threads", max(1, int(cpus)))
    if values.get("device", "auto") == "auto":
        values["device"] = device
    return TrainConfig.from_flat(values)


def _quiet_shutdown(unraisable: Any, default: Any = sys.__unraisablehook__) -> None:
    """``sys.unraisablehook`` of a trial's worker: Ray's SIGTERM handler shuts a worker down by raising
    ``SystemExit``; when the signal lands in code that cannot raise (a weakref callback, a
    finalizer), Python would print it as an ignored exception with a traceback, which the driver
    then shows amid the sweep's output. That one case is dropped; anything else is printed."""
    if not isinstance(unraisable.exc_value, SystemExit):
        default(unraisable)


def _load_state(checkpoint: tune.Checkpoint | None) -> dict[str, Any] | None:
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as folder:
        return torch.load(os.path.join(folder, STATE_FILE), map_location="cpu", weights_only=True)


def train_trial(
    config: dict[str, Any],
    *,
    datasets: Mapping[DataKey, ImageData],
    experiment: str,
    checkpoint_every: int = 1,
    checkpoint_min_seconds: float | None = None,
    seed_packing: str = "auto",
    cpus: float = 1.0,
    device: str = "auto",
    source: TrialSource,
    cooldowns: Mapping[int, int] | None = None,
    checkpoint_epochs: Collection[int] = (),
) -> None:
    """Ray Tune function trainable: train every seed of one configuration, report each epoch.

    ``cooldowns`` (``scheduler: cooldown-asha``, :meth:`~taso_tune.spaces.sections.SchedulerSpec.cooldown_plan`)
    maps a rung's epoch to the epochs of the throwaway cooldown branches the seeds fork there; the
    rung's report then holds their scores (:func:`~taso_tune.training.seeds.cooldown_summary`) and,
    with the same state as without them, the main run's own metrics and checkpoint.
    ``checkpoint_epochs`` (:meth:`~taso_tune.spaces.sections.SchedulerSpec.checkpoint_epochs`) are
    epochs whose report carries a checkpoint whatever ``checkpoint_every`` says."""
    # Ray logs a line for every persisted checkpoint; at one checkpoint an epoch that drowns the output
    logging.getLogger("ray.train._internal.storage").setLevel(logging.WARNING)
    sys.unraisablehook = _quiet_shutdown
    flat = source.flat_config(config)
    gpus = _gpus_seen()
    if os.environ.get(TRAIN_ON_CPU_ENV) == "1":
        device = "cpu"
    train_config = train_config_of(flat, cpus, device)
    checkpoint_min_seconds = checkpoint_age(checkpoint_min_seconds, device)
    data = datasets[data_key(flat)]
    checkpoint = tune.get_checkpoint()
    if checkpoint is None and flat.get(FROM_CHECKPOINT):
        checkpoint = tune.Checkpoint(flat[FROM_CHECKPOINT])
    runs = seed_training(
        train_config, flat["seeds"], data, _load_state(checkpoint), packing=seed_packing
    )
    labels = trial_labels(flat, train_config, data)
    # one line at the start, under the trial's name in the logs (a resumed trial says where it resumes)
    print(
        f"seeds {list(flat['seeds'])}: {runs.epoch} of {train_config.epochs} epochs done, training on "
        f"{train_config.device}, seeds {runs.packing}{gpus}",
        flush=True,
    )
    for note in runs.model_notes:
        print(f"{train_config.model}: {note}", flush=True)
    saved_at = time.monotonic()
    gauges = live_metrics.TrialGauges(
        experiment, tune.get_context().get_trial_name(), train_config.optimizer
    )
    cooldowns = cooldowns or {}
    while runs.status == "running":
        records = runs.step_epoch()
        metrics: TrialReport = {
            **epoch_summary(records, runs.num_classes),
            **labels,
            "diverged": runs.status == "diverged",
        }
        if runs.status == "running" and runs.epoch in cooldowns:
            _kill_in_cooldown_for_tests()
            branches, trained = runs.cooldown(cooldowns[runs.epoch])
            metrics.update(cooldown_summary(branches, records, runs.num_classes, trained))
        gauges.update(metrics)
        now = time.monotonic()
        if runs.epoch in checkpoint_epochs or checkpoint_due(
            runs.epoch,
            checkpoint_every,
            now - saved_at,
            checkpoint_min_seconds,
            last=runs.status != "running",
        ):
            with tempfile.TemporaryDirectory() as folder:
                try:
                    save_state(runs.state_dict(), os.path.join(folder, STATE_FILE))
                    tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))
                except (OSError, RuntimeError) as err:  # a full disk is no trial failure
                    full = storage_full(err)
                    if full is None:
                        raise
                    wait_for_stop(full)
            saved_at = now
        else:
            tune.report(metrics)


def _kill_in_cooldown_for_tests() -> None:
    """:data:`KILL_IN_COOLDOWN_ENV`: SIGKILL this worker a moment into the cooldown branch it is about
    to train, once per marker file."""
    marker = os.environ.get(KILL_IN_COOLDOWN_ENV)
    if not marker:
        return
    try:
        with open(marker, "x") as handle:
            handle.write(f"{os.getpid()}\n")
    except FileExistsError:
        return
    threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGKILL)).start()


def save_state(state: Mapping[str, Any], path: str) -> None:
    """``torch.save`` into a file opened here, not by path: on a full disk (the node's temporary
    folder, often the storage's own disk) torch then fails with the ``ENOSPC`` error as its
    cause, which :func:`~taso_tune.core.storage.storage_full` finds; given a path, it fails with
    a bare ``RuntimeError`` ("unexpected pos") that would spend the trial's retries."""
    with open(path, "wb") as handle:
        torch.save(state, handle)


def _gpus_seen() -> str:
    """What the trial was given of GPUs, for its start line: Ray's share and ``CUDA_VISIBLE_DEVICES``."""
    share = sum(
        amount
        for name, amount in ray.get_runtime_context().get_assigned_resources().items()
        if name == "GPU" or name.startswith("GPU_group_") and name.count("_") == 2
    )
    if not share:
        return ""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    return f" (GPU share {share:g}, CUDA_VISIBLE_DEVICES={visible})"


def checkpoint_age(min_seconds: float | None, device: str) -> float:
    """The space's ``checkpoint_min_seconds``, or where it leaves it unset, the device's default:
    :data:`GPU_CHECKPOINT_MIN_SECONDS` for a trial on a GPU, 0 (every due epoch) on the CPU."""
    if min_seconds is not None:
        return float(min_seconds)
    return GPU_CHECKPOINT_MIN_SECONDS if device == "cuda" else 0.0


def checkpoint_due(
    epoch: int, every: int, age_seconds: float, min_seconds: float, *, last: bool
) -> bool:
    """Whether the report of ``epoch`` carries a checkpoint: always after the last epoch; otherwise
    every ``every`` epochs, unless the previous checkpoint is younger than ``min_seconds`` (short
    epochs then checkpoint about every ``min_seconds``, and a resumed trial loses at most about that
    much plus one epoch)."""
    if last:
        return True
    return epoch % every == 0 and age_seconds >= min_seconds


def trial_labels(flat: Mapping[str, Any], config: TrainConfig, data: ImageData) -> TrialLabels:
    """Who the trial is: its configuration, seeds, data and node (reported with every epoch)."""
    return {
        "config_id": flat.get("config_id", ""),
        "optimizer": config.optimizer,
        "seeds": [int(s) for s in flat["seeds"]],
        "planned_epochs": config.epochs,
        "model": config.model,
        "dataset": config.dataset,
        "batch_size": config.batch_size,
        "num_classes": data.info.num_classes,
        "split_sizes": data.sizes(),
        "node_id": ray.get_runtime_context().get_node_id(),
        # the resolved optimizer fields (recipe defaults included), for results and export
        "hp": {k: list(v) if isinstance(v, tuple) else v for k, v in config.hparams.items()},
        "diverged": False,
    }


class TrialActor(FunctionTrainable):
    """The actor of one trial: runs :func:`train_trial` with the sweep's parameters.

    Ray reads an actor's ``repr`` once, when the actor is created, for its name in the dashboard and
    its log prefix. Where the sweep does not reuse actors between trials (``reuse_actors: false``,
    or ``auto`` for long trials: :mod:`~taso_tune.tuning.actors`), every actor is named after the
    one trial it runs. Where it does, one actor runs trial after trial: it is named after the
    experiment (a trial's name would be wrong for the next), and it tells Ray's log monitor each
    trial's name as the trial starts (the line Ray itself writes at an actor's start), so log lines
    carry the trial they come from.
    """

    _name = "train_trial"

    def setup(self, config: dict[str, Any], **params: Any) -> None:
        # ``params``: what ``tune.with_parameters`` fetched from the object store (the data sets, ...)
        self._reused = bool(params.pop("reuse_actors", False))
        self._params = params
        super().setup(config)

    def reset_config(self, new_config: dict[str, Any]) -> bool:
        reset = super().reset_config(new_config)
        if reset:  # before Tune restores the trial's checkpoint, so its line carries the trial
            self._announce_trial()
        return reset

    def _announce_trial(self) -> None:
        if self._reused:
            for stream in (sys.stdout, sys.stderr):
                print(f"{LOG_PREFIX_ACTOR_NAME}{self.trial_name}", file=stream, flush=True)

    def _trainable_func(self, config: dict[str, Any]) -> None:
        self._announce_trial()  # the actor's first trial: after Ray's own line at the actor's start
        train_trial(config, **self._params)
        get_session().report({RESULT_DUPLICATE: True})  # Tune's marker of a function that returned

    def __repr__(self) -> str:
        if getattr(self, "_reused", False):
            return f"{self._params.get('experiment', 'sweep')} (trials one after another)"
        return self.trial_name
