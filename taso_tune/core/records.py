"""The data contract between the layers: the epoch record the training loop yields, the labels a
trial reports beside it, the status words, and the files taso-tune writes into an experiment folder.

Every column list (results frames, report tables, progress table, Prometheus gauges) derives from
:class:`EpochRecord` and :class:`TrialLabels`, so a new metric is added in one place. Imports no
torch and no ray: every layer may read it.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

#: A training run's state after an epoch.
RunStatus = Literal["running", "complete", "diverged"]
#: How a trial trains its seeds: as one stacked model, one after another each epoch, or by device
#: (``auto``: stacked on CUDA, separate on the CPU).
SeedPacking = Literal["auto", "stacked", "separate"]
SEED_PACKINGS: tuple[str, ...] = ("auto", "stacked", "separate")
#: How a seed of a configuration ended, as the results layer reads it.
TrialStatus = Literal["complete", "stopped-early", "diverged", "errored", "unfinished"]
TRIAL_STATUSES: tuple[str, ...] = TrialStatus.__args__


class EpochRecord(TypedDict):
    """One epoch of one training run (:meth:`taso_tune.training.run.Run.step_epoch`)."""

    epoch: int  # epochs done, 1-based
    total_epochs: int  # the planned length the schedule was built for
    lr: float  # in force during the epoch
    val_acc: NotRequired[float]  # only with a validation split
    val_loss: NotRequired[float]
    test_acc: float
    test_loss: float
    train_acc: float
    train_loss: float  # mean over the epoch's batches
    epoch_seconds: float  # training and evaluation
    images_per_second: float  # training throughput
    status: RunStatus


class TrialLabels(TypedDict):
    """Who reported an epoch: the configuration, its seeds and where it ran (reported every epoch).

    A trial trains every seed of one configuration (or one seed with ``seeds_per_trial: 1``); beside
    the labels it reports each metric's mean over the seeds, ``<metric>_std``, ``seeds_diverged`` and
    every seed's own :class:`EpochRecord` under ``per_seed`` (keyed by the seed as text).
    """

    config_id: str
    optimizer: str
    seeds: list[int]
    planned_epochs: int
    model: str
    dataset: str
    batch_size: int
    num_classes: int
    split_sizes: dict[str, int]  # images in train / val / test
    node_id: str
    hp: dict[str, Any]  # the optimizer's resolved fields, recipe defaults included
    diverged: bool  # every seed diverged: the trial ended


class EpochSummary(TypedDict):
    """A configuration's epoch over its seeds (:func:`taso_tune.training.seeds.epoch_summary`).

    Each metric is the mean over the seeds, a diverged seed scored at chance level; ``<metric>_std``
    is there only with two or more seeds. ``per_seed`` holds every seed's own record, keyed by the
    seed as text.
    """

    epoch: int
    lr: float
    train_loss: float
    train_acc: float
    test_loss: float
    test_acc: float
    val_loss: NotRequired[float]
    val_acc: NotRequired[float]
    train_loss_std: NotRequired[float]
    train_acc_std: NotRequired[float]
    test_loss_std: NotRequired[float]
    test_acc_std: NotRequired[float]
    val_loss_std: NotRequired[float]
    val_acc_std: NotRequired[float]
    epoch_seconds: NotRequired[float]  # the seeds' time on the epoch, added up
    images_per_second: NotRequired[float]  # the seeds' mean training throughput
    seeds_diverged: int
    per_seed: dict[str, EpochRecord]


class CooldownScores(TypedDict):
    """What a trial under ``scheduler: cooldown-asha`` adds to its report at a rung: its seeds'
    throwaway cooldown branches scored on each held-out metric, the mean over the seeds
    (:func:`taso_tune.training.seeds.cooldown_summary`), which the scheduler judges instead of the
    un-decayed main run. Only the report of a rung epoch holds them."""

    cooldown_epochs: NotRequired[int]  # epochs the branches trained, over all seeds
    cooldown_val_acc: NotRequired[float]
    cooldown_val_loss: NotRequired[float]
    cooldown_test_acc: NotRequired[float]
    cooldown_test_loss: NotRequired[float]
    cooldown_val_acc_std: NotRequired[float]
    cooldown_val_loss_std: NotRequired[float]
    cooldown_test_acc_std: NotRequired[float]
    cooldown_test_loss_std: NotRequired[float]


class TrialReport(EpochSummary, TrialLabels, CooldownScores):
    """What a trial reports each epoch: its epoch summary and its labels. Tune writes one a line to
    the trial's ``result.json``, beside Tune's own keys (``training_iteration``, ``trial_id``, ...)."""


EPOCH_FIELDS: tuple[str, ...] = tuple(EpochRecord.__annotations__)
LABEL_FIELDS: tuple[str, ...] = tuple(TrialLabels.__annotations__)
SUMMARY_FIELDS: tuple[str, ...] = tuple(EpochSummary.__annotations__)
#: The metrics every epoch record carries, and that a sweep may optimise.
METRICS: tuple[str, ...] = tuple(k for k in EPOCH_FIELDS if k.endswith(("_acc", "_loss")))
#: The metrics measured on data the run does not train on: what a cooldown branch is scored on.
HELD_OUT_METRICS: tuple[str, ...] = tuple(m for m in METRICS if not m.startswith("train_"))
#: The prefix of a cooldown branch's score of a metric in a trial's report (:class:`CooldownScores`).
COOLDOWN_PREFIX = "cooldown_"
#: One line on each epoch field, for gauges and documentation.
FIELD_DESCRIPTIONS: dict[str, str] = {
    "epoch": "Epochs the trial has completed",
    "total_epochs": "Planned epochs of the run",
    "lr": "Learning rate in force during the trial's latest epoch",
    "val_acc": "Validation accuracy of the trial's latest epoch",
    "val_loss": "Validation loss of the trial's latest epoch",
    "test_acc": "Test accuracy of the trial's latest epoch",
    "test_loss": "Test loss of the trial's latest epoch",
    "train_acc": "Training accuracy of the trial's latest epoch",
    "train_loss": "Mean training loss of the trial's latest epoch",
    "epoch_seconds": "Seconds of the latest epoch, evaluation included",
    "images_per_second": "Training throughput of the latest epoch",
    "status": "running, complete or diverged",
}

# Our files in an experiment folder; the whole layout, Ray Tune's names and the rung folders
# included, is :mod:`taso_tune.experiment.layout`.

#: The resolved search space, written beside the results when a sweep starts.
SPACE_FILE = "taso_tune_space.yaml"
#: Inside each checkpoint: the whole training run (model, optimizer, schedule, RNG, epoch).
STATE_FILE = "run_state.pt"
#: Budget-aware successive halving keeps its rung bookkeeping here.
BUDGET_SH_FILE = "taso_tune_budget_sh.json"
#: What each trial of the sweep asks for and runs on (CPUs, GPUs, device, seed packing), for resume.
RESOURCES_FILE = "taso_tune_resources.json"
#: Who drives the experiment now (host, pid, start time): one sweep or resume at a time.
LOCK_FILE = "taso_tune.lock"
#: Written when a signal stopped the sweep (signal, time, planned trials); removed when it completes.
INTERRUPTED_FILE = "taso_tune_interrupted.json"
#: Written by ``resume --rerun-lost`` when Ray Tune's state of the experiment's run is lost: the
#: finished trials kept, and the lost ones trained again (each from its last checkpoint, if any).
RERUN_FILE = "taso_tune_rerun.json"
#: TensorBoard's experiment-level HParams summary: every hyperparameter any trial can have, with
#: its domain (an event file; TensorBoard reads files whose names hold ``tfevents``).
HPARAMS_FILE = "events.out.tfevents.taso_tune_hparams"
